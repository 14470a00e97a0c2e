"""PNG plots of a demo run: the tuning curve, reward distributions, predictions on held-out images."""

from __future__ import annotations

import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from reference_training.data import CLASS_NAMES  # noqa: E402


def tuning_curve(history: dict, references: dict, headline: str, reward_name: str, path: str) -> None:
    """Held-out headline metric and mean reward against tuning steps (the paper's reward progression).

    ``references``: name -> (headline value, mean reward) drawn as horizontal lines; the
    curve starts from the first of them (the MLE checkpoint). The curve is measured on
    the evaluation subset, the lines on the whole held-out split.
    """
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    start = next(iter(references.values()))
    panels = ((axes[0], "headline", f"held-out {headline}"), (axes[1], "reward", f"held-out mean {reward_name}"))
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


def prediction_grid(images: np.ndarray, preds, path: str, n: int = 16) -> None:
    """Held-out images with the tuned model's predicted boxes (label, score) or caption."""
    n = min(n, len(images))
    cols = 4
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.6 * rows))
    size = images.shape[1]
    for i, ax in enumerate(np.atleast_1d(axes).ravel()):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(images[i])
        if isinstance(preds, list):  # captions
            ax.set_title("\n".join(textwrap.wrap(preds[i], 34)), fontsize=6)
            continue
        for (y0, x0, y1, x1), label, score, ok in zip(preds["boxes"][i], preds["labels"][i], preds["scores"][i], preds["valid"][i]):
            if not ok:
                continue
            ax.add_patch(plt.Rectangle((x0 * size - 0.5, y0 * size - 0.5), (x1 - x0) * size, (y1 - y0) * size,
                                       fill=False, color="white", lw=1))
            ax.text(x0 * size, y0 * size, f"{CLASS_NAMES[label][:4]} {score:.2f}", color="yellow", fontsize=6, va="bottom")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
