"""task-rewards: exact, fast per-example task rewards for REINFORCE tuning.

Framework-agnostic (numpy + numba). Each ``X_reward(pred, gt, ...)`` scores
one example; ``X_reward_batch(preds, gts, ...)`` runs one compiled kernel over
a whole batch. Submodules load on first use, so ``import rewards`` is cheap and
command-line entry points (``python -m rewards.detection``) start fast.

    >>> import rewards
    >>> gt = {"boxes": [[0, 0, 10, 10]], "labels": [1]}
    >>> pred = {"boxes": [[0, 0, 10, 10]], "scores": [0.9], "labels": [1]}
    >>> round(rewards.map_reward(pred, gt), 9)
    1.0

Framework adapters live in ``rewards.adapters.torch`` / ``rewards.adapters.jax``
(they import their framework; this package never does).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from rewards._version import __version__

# Public name -> submodule that defines it (optax-style flat namespace, loaded lazily).
_EXPORTS = {
    "class_weights_from_counts": "detection",
    "coco_eval": "detection",
    "coco_eval_files": "detection",
    "CocoEvaluator": "detection",
    "CocoEvalResult": "detection",
    "map_reward": "detection",
    "map_reward_batch": "detection",
    "match_iou": "detection",
    "match_iou_batch": "detection",
    "recall_reward": "detection",
    "recall_reward_batch": "detection",
    "PanopticQuality": "panoptic",
    "pq_reward": "panoptic",
    "pq_reward_batch": "panoptic",
    "pq_eval": "panoptic",
    "pq_compute": "panoptic",
    "PQAccumulator": "panoptic",
    "PanopticEval": "panoptic",
    "PQStats": "panoptic",
    "ClassPQ": "panoptic",
    "load_coco_panoptic": "panoptic",
    "DocumentFrequencies": "captioning",
    "cider_reward": "captioning",
    "cider_reward_batch": "captioning",
    "document_frequencies": "captioning",
    "tokenize": "captioning",
    "bleu": "captioning",
    "bleu_batch": "captioning",
    "rouge_l": "captioning",
    "rouge_l_batch": "captioning",
    "coco_caption_eval": "captioning",
    "CaptionEval": "captioning",
    "tokenize_captions": "captioning",
    "coco_references": "captioning",
    "colorfulness": "colorization",
    "colorfulness_batch": "colorization",
    "colorfulness_reward": "colorization",
    "colorfulness_reward_batch": "colorization",
    "KernelCacheWarning": "_numba",
}
_SUBMODULES = ("captioning", "colorization", "detection", "masks", "panoptic", "adapters")

__all__ = ["__version__", *_SUBMODULES[:-1], *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"rewards.{name}")
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"rewards.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'rewards' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # static checkers and IDEs see the eager imports
    from rewards import captioning, colorization, detection, masks, panoptic
    from rewards._numba import KernelCacheWarning
    from rewards.captioning import (
        CaptionEval,
        DocumentFrequencies,
        bleu,
        bleu_batch,
        cider_reward,
        cider_reward_batch,
        coco_caption_eval,
        coco_references,
        document_frequencies,
        rouge_l,
        rouge_l_batch,
        tokenize,
        tokenize_captions,
    )
    from rewards.colorization import (
        colorfulness,
        colorfulness_batch,
        colorfulness_reward,
        colorfulness_reward_batch,
    )
    from rewards.detection import (
        CocoEvalResult,
        CocoEvaluator,
        class_weights_from_counts,
        coco_eval,
        coco_eval_files,
        map_reward,
        map_reward_batch,
        match_iou,
        match_iou_batch,
        recall_reward,
        recall_reward_batch,
    )
    from rewards.panoptic import (
        ClassPQ,
        PanopticEval,
        PanopticQuality,
        PQAccumulator,
        PQStats,
        load_coco_panoptic,
        pq_compute,
        pq_eval,
        pq_reward,
        pq_reward_batch,
    )
