"""Detection rewards: exact COCO mAP, the paper's recall reward, whole-dataset COCO eval.

Per image, a prediction is ``{"boxes": (N, 4), "scores": (N,), "labels": (N,)}``
and a ground truth ``{"boxes": (M, 4), "labels": (M,)}`` with optional
``"iscrowd": (M,)`` and ``"area": (M,)`` (COCO's annotation area; defaults to
the box area). Arrays may be numpy, lists, torch tensors or jax arrays.

Example:
    >>> import numpy as np
    >>> from rewards import detection
    >>> gt = {"boxes": [[10, 10, 50, 50], [60, 60, 90, 90]], "labels": [1, 2]}
    >>> pred = {"boxes": [[11, 10, 50, 52], [0, 0, 5, 5]], "scores": [0.9, 0.3], "labels": [1, 2]}
    >>> round(detection.map_reward(pred, gt), 4)  # class 1 found (AP .9), class 2 missed
    0.45
    >>> round(detection.recall_reward(pred, gt), 4)  # IoU .95: found at 9 of 10 thresholds
    0.9
    >>> detection.map_reward_batch([pred, pred], [gt, gt]).shape
    (2,)
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from rewards import _coco_kernels, _recall_kernels
from rewards._detection_inputs import (
    PackedGroundTruth,
    PackedPredictions,
    check_labels_nonnegative,
    pack_ground_truth,
    pack_padded_ground_truth,
    pack_padded_predictions,
    pack_predictions,
)
from rewards._inputs import as_float_array, check_batch_lengths

__all__ = [
    "COCO_IOU_THRESHOLDS",
    "class_weights_from_counts",
    "coco_eval",
    "map_reward",
    "map_reward_batch",
    "map_reward_padded",
    "match_iou",
    "match_iou_batch",
    "match_iou_padded",
    "recall_reward",
    "recall_reward_batch",
    "recall_reward_padded",
]

# The exact floats pycocotools uses (its Params.setDetParams).
COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
COCO_RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
COCO_AREA_RANGES = {
    "all": (0.0, 1e5**2),
    "small": (0.0, 32.0**2),
    "medium": (32.0**2, 96.0**2),
    "large": (96.0**2, 1e5**2),
}
COCO_MAX_DETS = (1, 10, 100)

Prediction = Mapping[str, Any]
GroundTruth = Mapping[str, Any]


def _thresholds(iou_thresholds: Any, name: str = "iou_thresholds") -> np.ndarray:
    if iou_thresholds is None:
        return COCO_IOU_THRESHOLDS
    t = np.atleast_1d(as_float_array(iou_thresholds, name))
    if t.ndim != 1 or t.size == 0:
        raise ValueError(f"`{name}` must be a non-empty 1-D sequence, got shape {t.shape}")
    if (t < 0).any() or (t > 1).any():
        raise ValueError(f"`{name}` must lie in [0, 1], got {t.tolist()}")
    return t


def _pack_pair(preds, gts, box_format, single) -> tuple[PackedPredictions, PackedGroundTruth]:
    names = ("pred", "gt") if single else ("preds", "gts")
    check_batch_lengths(preds, gts, *names)
    p = pack_predictions(preds, box_format, names[0], single)
    g = pack_ground_truth(gts, box_format, names[1], single)
    return p, g


# --------------------------------------------------------------------- mAP


def _map(preds, gts, box_format, iou_thresholds, max_dets, penalize_absent_classes, single):
    return _map_packed(*_pack_pair(preds, gts, box_format, single), iou_thresholds, max_dets, penalize_absent_classes)


def _map_packed(p, g, iou_thresholds, max_dets, penalize_absent_classes):
    thresholds = _thresholds(iou_thresholds)
    if int(max_dets) != max_dets or max_dets < 1:
        raise ValueError(f"`max_dets` must be a positive integer, got {max_dets!r}")
    out = np.empty(p.offsets.size - 1)
    lo, hi = COCO_AREA_RANGES["all"]
    _coco_kernels.map_batch(
        p.boxes, p.scores, p.labels, p.offsets, g.boxes, g.labels, g.crowd, g.area, g.offsets,
        thresholds, COCO_RECALL_THRESHOLDS, int(max_dets),
        np.array([lo]), np.array([hi]), bool(penalize_absent_classes), out,
    )
    return out


def map_reward(
    pred: Prediction,
    gt: GroundTruth,
    *,
    box_format: str = "xyxy",
    iou_thresholds: Sequence[float] | None = None,
    max_dets: int = 100,
    penalize_absent_classes: bool = False,
) -> float:
    """COCO box AP@[.5:.95] of one image: pycocotools ``COCOeval.stats[0]`` to 1e-9.

    The image is evaluated as a one-image COCO dataset: per category, the top
    ``max_dets`` detections by score are matched greedily, AP is the
    101-point interpolated precision, averaged over ``iou_thresholds`` (COCO's
    0.50:0.05:0.95 by default) and over categories that have a non-crowd GT.

    Values where COCO has none (it returns -1):
      * no category with a non-crowd GT: 1.0 when there is no prediction, else 0.0.
    ``penalize_absent_classes=True`` closes COCO's reward-hacking hole: a
    category that is predicted but absent from the GT scores 0 and counts in
    the mean (COCO leaves it out, so such false positives cost nothing).

    Example:
        >>> gt = {"boxes": [[0, 0, 10, 10]], "labels": [3]}
        >>> round(map_reward({"boxes": [[0, 0, 10, 10]], "scores": [1.0], "labels": [3]}, gt), 9)
        1.0
    """
    return float(
        _map([pred], [gt], box_format, iou_thresholds, max_dets, penalize_absent_classes, True)[0]
    )


def map_reward_batch(
    preds: Sequence[Prediction],
    gts: Sequence[GroundTruth],
    *,
    box_format: str = "xyxy",
    iou_thresholds: Sequence[float] | None = None,
    max_dets: int = 100,
    penalize_absent_classes: bool = False,
) -> np.ndarray:
    """``map_reward`` of each (pred, gt) pair, in one parallel compiled pass.

    Returns a float64 array (B,). Each pair is its own one-image dataset: the
    scores of one pair never depend on the others.

    Example:
        >>> gt = {"boxes": [[0, 0, 10, 10]], "labels": [0]}
        >>> hit = {"boxes": [[0, 0, 10, 10]], "scores": [0.9], "labels": [0]}
        >>> miss = {"boxes": [[20, 20, 30, 30]], "scores": [0.9], "labels": [0]}
        >>> map_reward_batch([hit, miss], [gt, gt]).round(9).tolist()  # COCO's precision has a 2e-16 epsilon
        [1.0, 0.0]
    """
    return _map(preds, gts, box_format, iou_thresholds, max_dets, penalize_absent_classes, False)


# ------------------------------------------------------------------ recall


def class_weights_from_counts(counts: Sequence[float], smoothing: float = 0.05) -> np.ndarray:
    """Per-class weights inversely proportional to smoothed class frequency.

    ``w_c = 1 / (n_c + smoothing * sum(n))``, rescaled so ``sum(w) == len(counts)``:
    rare classes weigh more, and ``smoothing`` caps how much. Index the result
    by label id. This is the paper's weighting of COCO classes.

    Example:
        >>> class_weights_from_counts([100, 100]).tolist()
        [1.0, 1.0]
        >>> w = class_weights_from_counts([900, 100]); bool(w[1] > w[0])
        True
    """
    n = as_float_array(counts, "counts")
    if n.ndim != 1 or n.size == 0:
        raise ValueError(f"`counts` must be a non-empty 1-D array, got shape {n.shape}")
    if (n < 0).any():
        raise ValueError("`counts` must be non-negative")
    if not np.isfinite(smoothing) or smoothing < 0:
        raise ValueError(f"`smoothing` must be a non-negative number, got {smoothing!r}")
    denom = n + smoothing * n.sum()
    if (denom <= 0).any():
        raise ValueError("`counts` with zero entries need `smoothing` > 0 and a positive total")
    w = 1.0 / denom
    return n.size * w / w.sum()


def _weights(class_weights: Any, labels_max: int) -> np.ndarray:
    if class_weights is None:
        return np.ones(max(labels_max + 1, 1))
    w = as_float_array(class_weights, "class_weights")
    if w.ndim != 1:
        raise ValueError(f"`class_weights` must be 1-D (indexed by label), got shape {w.shape}")
    if labels_max >= w.size:
        raise ValueError(
            f"`class_weights` has {w.size} entries but a label is {labels_max}; "
            "labels must index class_weights"
        )
    return w


def _recall(preds, gts, box_format, iou_thresholds, class_weights, duplicate_weight, normalize, single):
    p, g = _pack_pair(preds, gts, box_format, single)
    names = ("pred", "gt") if single else ("preds", "gts")
    return _recall_packed(p, g, names, iou_thresholds, class_weights, duplicate_weight, normalize)


def _recall_packed(p, g, names, iou_thresholds, class_weights, duplicate_weight, normalize):
    thresholds = _thresholds(iou_thresholds)
    if not np.isfinite(duplicate_weight):
        raise ValueError(f"`duplicate_weight` must be finite, got {duplicate_weight!r}")
    check_labels_nonnegative(p.labels, p.offsets, names[0])
    check_labels_nonnegative(g.labels, g.offsets, names[1])
    labels_max = max(p.labels.max(initial=-1), g.labels.max(initial=-1))
    weights = _weights(class_weights, int(labels_max))
    out = np.empty(p.offsets.size - 1)
    _recall_kernels.recall_batch(
        p.boxes, p.labels, p.offsets, g.boxes, g.labels, g.offsets,
        thresholds, weights, float(duplicate_weight), bool(normalize), out,
    )
    return out


def recall_reward(
    pred: Prediction,
    gt: GroundTruth,
    *,
    box_format: str = "xyxy",
    iou_thresholds: Sequence[float] | None = None,
    class_weights: Sequence[float] | None = None,
    duplicate_weight: float = 0.3,
    normalize: bool = False,
) -> float:
    """The paper's detection reward: weighted count of found objects minus duplicates.

    Per IoU threshold t (default 0.50:0.05:0.95): pairs of the same class with
    IoU > t count; each prediction keeps its best GT; each GT takes its best
    remaining prediction. ``reward_t = sum(w[gt label] for found GTs) -
    duplicate_weight * sum(w[pred label] for predictions that overlap a GT
    but are not its match)``; the reward is the mean over thresholds.

    Differences from big_vision's released code, on purpose: it stored the
    per-threshold results under keys ``f"{t:0.1f}"``, so 0.55, 0.65, 0.75,
    0.8 and 0.9 overwrote each other and only five thresholds counted (with
    weights 1, 2, 2, 3, 2 over .5, .6, .7, .85, .95); we average all of them.
    Its IoU adds 1e-9 to the union; ours is the exact COCO IoU. ``iscrowd`` is
    not used (the released reward has no crowd notion).

    ``class_weights`` (index by label, e.g. from ``class_weights_from_counts``)
    default to 1. ``normalize=True`` divides by the GT weight mass, giving a
    value in [-duplicate_weight * ..., 1]; with no GT it returns 0.

    Example:
        >>> gt = {"boxes": [[0, 0, 10, 10]], "labels": [0]}
        >>> pred = {"boxes": [[0, 0, 10, 10], [0, 0, 10, 10]], "scores": [0.9, 0.8], "labels": [0, 0]}
        >>> round(recall_reward(pred, gt), 6)  # found (1) minus 0.3 * one duplicate
        0.7
    """
    return float(
        _recall([pred], [gt], box_format, iou_thresholds, class_weights, duplicate_weight, normalize, True)[0]
    )


def recall_reward_batch(
    preds: Sequence[Prediction],
    gts: Sequence[GroundTruth],
    *,
    box_format: str = "xyxy",
    iou_thresholds: Sequence[float] | None = None,
    class_weights: Sequence[float] | None = None,
    duplicate_weight: float = 0.3,
    normalize: bool = False,
) -> np.ndarray:
    """``recall_reward`` of each (pred, gt) pair in one parallel compiled pass; float64 (B,).

    Example:
        >>> gt = {"boxes": [[0, 0, 10, 10]], "labels": [0]}
        >>> pred = {"boxes": [[0, 0, 10, 10]], "scores": [0.9], "labels": [0]}
        >>> recall_reward_batch([pred, pred], [gt, gt]).tolist()
        [1.0, 1.0]
    """
    return _recall(preds, gts, box_format, iou_thresholds, class_weights, duplicate_weight, normalize, False)


def _match_iou(preds, gts, box_format, iou_threshold, single):
    return _match_iou_packed(*_pack_pair(preds, gts, box_format, single), iou_threshold)


def _match_iou_packed(p, g, iou_threshold):
    threshold = float(_thresholds([iou_threshold], "iou_threshold")[0])
    out = np.empty(p.labels.size)
    _recall_kernels.match_iou_batch(
        p.boxes, p.labels, p.offsets, g.boxes, g.labels, g.offsets, threshold, out
    )
    return out, p.offsets


def match_iou(
    pred: Prediction, gt: GroundTruth, *, box_format: str = "xyxy", iou_threshold: float = 0.5
) -> np.ndarray:
    """Per prediction, the IoU of its best same-class GT if above ``iou_threshold``, else 0.

    This is the released reward's ``match_iou`` (duplicates keep their IoU too);
    the paper trains each box's confidence token towards (pad, 1 - IoU, IoU).

    Example:
        >>> gt = {"boxes": [[0, 0, 10, 10]], "labels": [0]}
        >>> pred = {"boxes": [[0, 0, 10, 5], [50, 50, 60, 60]], "scores": [0.9, 0.8], "labels": [0, 0]}
        >>> match_iou(pred, gt, iou_threshold=0.4).tolist()
        [0.5, 0.0]
    """
    return _match_iou([pred], [gt], box_format, iou_threshold, True)[0]


def match_iou_batch(
    preds: Sequence[Prediction],
    gts: Sequence[GroundTruth],
    *,
    box_format: str = "xyxy",
    iou_threshold: float = 0.5,
) -> list[np.ndarray]:
    """``match_iou`` of each pair, computed in one compiled pass; a list of (N_i,) arrays."""
    flat, offsets = _match_iou(preds, gts, box_format, iou_threshold, False)
    return np.split(flat, offsets[1:-1])


# ------------------------------------------------------------ padded arrays


def _with_default_scores(preds):
    """Rewards that ignore scores take padded predictions without them."""
    if isinstance(preds, Mapping) and "scores" not in preds and "boxes" in preds:
        return {**preds, "scores": np.zeros(np.shape(preds["boxes"])[:2])}
    return preds


def _pack_padded_pair(preds, gts, box_format):
    p = pack_padded_predictions(preds, box_format, "preds")
    g = pack_padded_ground_truth(gts, box_format, "gts")
    if p.offsets.size != g.offsets.size:
        raise ValueError(
            f"`preds` has {p.offsets.size - 1} examples but `gts` has {g.offsets.size - 1}"
        )
    return p, g


def map_reward_padded(
    preds: Mapping[str, Any],
    gts: Mapping[str, Any],
    *,
    box_format: str = "xyxy",
    iou_thresholds: Sequence[float] | None = None,
    max_dets: int = 100,
    penalize_absent_classes: bool = False,
) -> np.ndarray:
    """``map_reward_batch`` on padded arrays, e.g. a decoded batch of token sequences.

    ``preds``: {"boxes": (B, K, 4), "scores": (B, K), "labels": (B, K),
    "valid": (B, K) bool}; ``gts``: {"boxes": (B, M, 4), "labels": (B, M),
    "valid": (B, M)} plus optional "iscrowd"/"area" (B, M). Entries where
    ``valid`` is False are never read. Returns float64 (B,).

    Example:
        >>> import numpy as np
        >>> preds = {"boxes": np.array([[[0, 0, 10, 10], [0, 0, 0, 0]]]), "scores": np.ones((1, 2)),
        ...          "labels": np.zeros((1, 2), int), "valid": np.array([[True, False]])}
        >>> gts = {"boxes": np.array([[[0, 0, 10, 10]]]), "labels": np.zeros((1, 1), int), "valid": np.ones((1, 1), bool)}
        >>> map_reward_padded(preds, gts).round(6).tolist()
        [1.0]
    """
    p, g = _pack_padded_pair(preds, gts, box_format)
    return _map_packed(p, g, iou_thresholds, max_dets, penalize_absent_classes)


def recall_reward_padded(
    preds: Mapping[str, Any],
    gts: Mapping[str, Any],
    *,
    box_format: str = "xyxy",
    iou_thresholds: Sequence[float] | None = None,
    class_weights: Sequence[float] | None = None,
    duplicate_weight: float = 0.3,
    normalize: bool = False,
) -> np.ndarray:
    """``recall_reward_batch`` on padded arrays (see ``map_reward_padded``; scores are optional)."""
    preds = _with_default_scores(preds)
    p, g = _pack_padded_pair(preds, gts, box_format)
    return _recall_packed(p, g, ("preds", "gts"), iou_thresholds, class_weights, duplicate_weight, normalize)


def match_iou_padded(
    preds: Mapping[str, Any],
    gts: Mapping[str, Any],
    *,
    box_format: str = "xyxy",
    iou_threshold: float = 0.5,
) -> np.ndarray:
    """``match_iou`` of every padded prediction: float64 (B, K), 0 where not valid."""
    preds = _with_default_scores(preds)
    p, g = _pack_padded_pair(preds, gts, box_format)
    flat, _ = _match_iou_packed(p, g, iou_threshold)
    valid = np.asarray(preds["valid"], bool)
    out = np.zeros(valid.shape)
    out[valid] = flat
    return out


# ------------------------------------------------------------- dataset eval

COCO_STAT_KEYS = (
    "map", "map_50", "map_75", "map_small", "map_medium", "map_large",
    "mar_1", "mar_10", "mar_100", "mar_small", "mar_medium", "mar_large",
)


def _mean_valid(x: np.ndarray) -> float:
    valid = x[x > -1]
    return float(np.mean(valid)) if valid.size else -1.0


def coco_eval(
    preds: Sequence[Prediction], gts: Sequence[GroundTruth], *, box_format: str = "xyxy"
) -> dict[str, float]:
    """The 12 ``COCOeval(iouType="bbox").stats`` of a whole dataset, to 1e-9.

    Image ``i`` of the dataset is ``(preds[i], gts[i])``. Keys: map, map_50,
    map_75, map_small, map_medium, map_large, mar_1, mar_10, mar_100,
    mar_small, mar_medium, mar_large. As in COCO, a value is -1 when no
    category has a non-ignored GT in that area range. GT area is
    ``gt["area"]`` when given, else the box area.

    Example:
        >>> gt = {"boxes": [[0, 0, 10, 10]], "labels": [1]}
        >>> pred = {"boxes": [[0, 0, 10, 10]], "scores": [0.5], "labels": [1]}
        >>> stats = coco_eval([pred], [gt]); round(stats["map"], 9), stats["map_large"]
        (1.0, -1.0)
    """
    p, g = _pack_pair(preds, gts, box_format, False)
    thresholds = COCO_IOU_THRESHOLDS
    areas = np.array(list(COCO_AREA_RANGES.values()))
    max_dets = np.array(COCO_MAX_DETS, np.int64)
    n_det = p.scores.size
    status = np.empty((areas.shape[0], thresholds.size, n_det), np.int8)
    rank = np.empty(n_det, np.int64)
    _coco_kernels.evaluate_dataset_images(
        p.boxes, p.scores, p.labels, p.offsets, g.boxes, g.labels, g.crowd, g.area, g.offsets,
        thresholds, areas[:, 0].copy(), areas[:, 1].copy(), int(max_dets[-1]), status, rank,
    )
    # COCO evaluates the categories of the GT; others never count.
    categories = np.unique(g.labels)
    n_positive = np.empty((areas.shape[0], categories.size), np.int64)
    for a, (lo, hi) in enumerate(areas):
        positive = ~g.crowd & (g.area >= lo) & (g.area <= hi)
        idx = np.searchsorted(categories, g.labels[positive])
        n_positive[a] = np.bincount(idx, minlength=categories.size)

    image = np.repeat(np.arange(len(preds)), np.diff(p.offsets))
    keep = (rank < max_dets[-1]) & np.isin(p.labels, categories)
    kept = np.flatnonzero(keep)
    order_kept = np.lexsort((rank[kept], image[kept], -p.scores[kept], p.labels[kept]))
    order = kept[order_kept]
    category_starts = np.searchsorted(p.labels[order], categories, side="left")
    category_starts = np.append(category_starts, order.size).astype(np.int64)

    precision = np.empty((thresholds.size, categories.size, areas.shape[0]))
    recall = np.empty((thresholds.size, categories.size, areas.shape[0], max_dets.size))
    _coco_kernels.accumulate_dataset(
        order, category_starts, rank, status, n_positive, max_dets, COCO_RECALL_THRESHOLDS,
        precision, recall,
    )
    t50 = np.flatnonzero(thresholds == 0.5)
    t75 = np.flatnonzero(thresholds == 0.75)
    stats = [
        _mean_valid(precision[:, :, 0]),
        _mean_valid(precision[t50, :, 0]),
        _mean_valid(precision[t75, :, 0]),
        _mean_valid(precision[:, :, 1]),
        _mean_valid(precision[:, :, 2]),
        _mean_valid(precision[:, :, 3]),
        _mean_valid(recall[:, :, 0, 0]),
        _mean_valid(recall[:, :, 0, 1]),
        _mean_valid(recall[:, :, 0, 2]),
        _mean_valid(recall[:, :, 1, 2]),
        _mean_valid(recall[:, :, 2, 2]),
        _mean_valid(recall[:, :, 3, 2]),
    ]
    return dict(zip(COCO_STAT_KEYS, stats))
