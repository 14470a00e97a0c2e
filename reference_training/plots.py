"""PNG plots of a demo run: the tuning curve, reward distributions, predictions on held-out images."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from reference_training.data import CLASS_NAMES  # noqa: E402


def tuning_curve(history: dict, mle: dict, control: dict | None, path: str) -> None:
    """Held-out mAP and mean reward against tuning steps (the paper's reward progression)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, key, metric, label in ((axes[0], "map", "map", "held-out mAP"), (axes[1], "reward", "recall_reward", "held-out mean recall reward")):
        ax.plot([0] + history["step"], [mle[metric]] + history[key], marker="o", label="reward tuning")
        ax.axhline(mle[metric], color="gray", ls="--", label="MLE checkpoint")
        if control:
            ax.axhline(control[metric], color="tab:red", ls=":", label="MLE continued (same time)")
        ax.set_xlabel("tuning step")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def reward_distributions(per_image: dict[str, np.ndarray], path: str) -> None:
    """Histogram of per-image held-out rewards for each model."""
    fig, ax = plt.subplots(figsize=(6, 3.8))
    top = max(float(v.max()) for v in per_image.values())
    bins = np.linspace(min(0.0, min(float(v.min()) for v in per_image.values())), top + 1e-9, 25)
    for name, values in per_image.items():
        ax.hist(values, bins=bins, alpha=0.5, label=f"{name} (mean {values.mean():.2f})")
    ax.set_xlabel("per-image recall reward (held-out)")
    ax.set_ylabel("images")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def prediction_grid(images: np.ndarray, preds: dict, path: str, n: int = 16) -> None:
    """Held-out images with predicted boxes (label and score), tuned model."""
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
        for (y0, x0, y1, x1), label, score, ok in zip(preds["boxes"][i], preds["labels"][i], preds["scores"][i], preds["valid"][i]):
            if not ok:
                continue
            ax.add_patch(plt.Rectangle((x0 * size - 0.5, y0 * size - 0.5), (x1 - x0) * size, (y1 - y0) * size,
                                       fill=False, color="white", lw=1))
            ax.text(x0 * size, y0 * size, f"{CLASS_NAMES[label][:4]} {score:.2f}", color="yellow", fontsize=6, va="bottom")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
