"""PNG plots of a demo run: the tuning curve, reward distributions, and the grid tasks draw their predictions in."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def tuning_curve(history: dict, references: dict, headline: str, reward_name: str, path: str) -> None:
    """Held-out headline metric and mean reward against tuning steps (the paper's reward progression).

    ``references``: name -> (headline value, mean reward) drawn as horizontal lines; the
    curve starts from the first of them (the MLE checkpoint). The curve is measured on
    the evaluation subset, the lines on the whole held-out split.
    """
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    start = next(iter(references.values()))
    panels = (
        (axes[0], "headline", f"held-out {headline}"),
        (axes[1], "reward", f"held-out mean {reward_name}"),
    )
    for col, (ax, key, label) in enumerate(panels):
        ax.plot([0] + history["step"], [start[col]] + history[key], marker="o", label="reward tuning")
        for (name, values), (color, style) in zip(references.items(), (("gray", "--"), ("tab:red", ":"))):
            ax.axhline(values[col], color=color, ls=style, label=name)
        ax.set_xlabel("tuning step")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def reward_distributions(per_image: dict[str, np.ndarray], reward_name: str, path: str) -> None:
    """Histogram of per-image held-out rewards for each model."""
    fig, ax = plt.subplots(figsize=(6, 3.8))
    top = max(float(v.max()) for v in per_image.values())
    bins = np.linspace(min(0.0, min(float(v.min()) for v in per_image.values())), top + 1e-9, 25)
    for name, values in per_image.items():
        ax.hist(values, bins=bins, alpha=0.5, label=f"{name} (mean {values.mean():.2f})")
    ax.set_xlabel(f"per-image {reward_name} (held-out)")
    ax.set_ylabel("images")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def grid(
    n: int, draw, path: str, cols: int = 4, size: float = 2.6, col_titles: list[str] | None = None
) -> None:
    """A PNG of ``n`` panels in rows of ``cols``; ``draw(ax, i)`` fills panel i (axes off)."""
    rows = max(1, (n + cols - 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i < n:
            draw(ax, i)
    for ax, title in zip(axes[0], col_titles or []):
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
