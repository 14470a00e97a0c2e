"""Detection rewards: exact COCO mAP, the paper's recall reward, whole-dataset COCO eval.

Per image, a prediction is ``{"boxes": (N, 4), "scores": (N,), "labels": (N,)}``
and a ground truth ``{"boxes": (M, 4), "labels": (M,)}`` with optional
``"iscrowd": (M,)`` and ``"area": (M,)`` (COCO's annotation area; defaults to
the box area). Arrays may be numpy, lists, torch tensors or jax arrays
(bfloat16 / float8 are widened exactly); the examples may be any Mapping.

Decisions on edge inputs: no boxes is ``[]`` or shape (0, 4) (another width,
even when empty, is an error); labels are any int64 values (uint64 beyond
int64 is an error rather than a wrap to a negative id); a box whose size
overflows float64 (coordinates near +-1e308) is an error; a GT whose area is
outside the area range (e.g. a negative ``area``) is ignored, as in
pycocotools. Whole COCO files: ``coco_eval_files`` and ``python -m
rewards.detection GT.json RESULTS.json`` (``--help``).

Instance masks: every reward and evaluation takes ``iou_type="segm"``; the
objects are then each example's ``"masks"`` (a list of COCO RLE dicts or
dense (H, W) masks, or an (N, H, W) stack; see ``rewards.masks``) instead of
``"boxes"``, overlap is pycocotools' mask IoU, a detection's area its mask
area and a GT's area ``"area"`` when given, else its mask area. All masks of
one example must have one size (the image's).

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
    >>> square = np.zeros((1, 8, 8), bool); square[0, 2:6, 2:6] = True
    >>> shifted = np.roll(square, 1, axis=2)  # IoU 12 / 20 = 0.6: found at .5, .55 and .6
    >>> segm_gt = {"masks": square, "labels": [1]}
    >>> segm_pred = {"masks": shifted, "scores": [0.9], "labels": [1]}
    >>> round(detection.map_reward(segm_pred, segm_gt, iou_type="segm"), 4)
    0.3
"""

from __future__ import annotations

if __name__ == "__main__":  # `python -m rewards.detection`: the CLI uses the importable module, not this copy
    import sys

    from rewards._detection_cli import main

    sys.exit(main())

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from rewards import _coco_eval, _coco_files, _recall_kernels
from rewards import masks as _masks
from rewards._coco_eval import IouType, MaxDetsRule
from rewards._detection_inputs import (
    BoxFormat,
    ExampleMasks,
    PackedGroundTruth,
    PackedPredictions,
    check_box_format,
    check_fits_int64,
    check_labels_nonnegative,
    pack_ground_truth,
    pack_padded_ground_truth,
    pack_padded_predictions,
    pack_predictions,
    unpad_mask_examples,
    with_masks,
)
from rewards._inputs import (
    as_float_array,
    check_batch_lengths,
    int_option,
    offsets_from_lengths,
    real_option,
    to_numpy,
)

__all__ = [
    "COCO_IOU_THRESHOLDS",
    "COCO_STAT_KEYS",
    "CocoEvalResult",
    "CocoEvaluator",
    "class_weights_from_counts",
    "coco_eval",
    "coco_eval_files",
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
COCO_IOU_THRESHOLDS = _coco_eval.IOU_THRESHOLDS
COCO_RECALL_THRESHOLDS = _coco_eval.RECALL_THRESHOLDS
COCO_AREA_RANGES = dict(zip(_coco_eval.AREA_LABELS, _coco_eval.AREA_RANGES))
COCO_MAX_DETS = _coco_eval.MAX_DETS
COCO_STAT_KEYS = _coco_eval.STAT_KEYS

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


class _MaskPair(NamedTuple):
    """The masks of packed predictions and ground truths (``iou_type="segm"``)."""

    dts: ExampleMasks
    gts: ExampleMasks

    def ious(self, blocks: Any, g: PackedGroundTruth) -> np.ndarray:
        return _coco_eval.mask_ious(blocks, self.dts.masks, self.gts.masks, g, self.dts.name, self.gts.name)

    @property
    def det_area(self) -> np.ndarray:
        return self.dts.masks.areas.astype(np.float64)


def _pack_pair_masks(
    preds, gts, single, reuse=False
) -> tuple[PackedPredictions, PackedGroundTruth, _MaskPair]:
    """Packs examples whose objects are ``"masks"``: boxes are the masks' boxes, a GT's area its mask's.

    ``reuse``: the masks may live in per-thread buffers (see ``with_masks``):
    only for a reward, which drops them before it returns.
    """
    names = ("pred", "gt") if single else ("preds", "gts")
    check_batch_lengths(preds, gts, *names)
    dts = with_masks(preds, names[0], single, reuse)
    gtm = with_masks(gts, names[1], single, reuse)
    p = pack_predictions(preds, "xywh", names[0], single, masks=dts)
    g = pack_ground_truth(gts, "xywh", names[1], single, masks=gtm)
    _check_image_sizes(dts, gtm)
    return p, g, _MaskPair(dts, gtm)


def _check_image_sizes(dts: ExampleMasks, gts: ExampleMasks) -> None:
    """Every mask of an example has that example's size (the first GT's, else the first prediction's)."""
    present = [(m.masks.heights, m.masks.widths) for m in (dts, gts) if len(m.masks)]
    if present:  # the usual batch: one image size throughout
        h0, w0 = present[0][0][0], present[0][1][0]
        if all((h == h0).all() and (w == w0).all() for h, w in present):
            return
    n = dts.offsets.size - 1
    sizes = []
    for m in (dts, gts):
        counts = np.diff(m.offsets)
        first = np.minimum(m.offsets[:-1], max(len(m.masks) - 1, 0))
        sizes.append((counts, first, m.masks.heights, m.masks.widths))
    ref_h = np.zeros(n, np.int64)
    ref_w = np.zeros(n, np.int64)
    for counts, first, h, w in sizes:  # the GT's size wins: it is written last
        has = counts > 0
        ref_h[has], ref_w[has] = h[first[has]], w[first[has]]
    for m, (counts, _, h, w) in zip((gts, dts), sizes[::-1]):
        example = np.repeat(np.arange(n), counts)
        bad = np.flatnonzero((h != ref_h[example]) | (w != ref_w[example]))
        if bad.size:
            k = int(bad[0])
            i = int(example[k])
            ref = gts if sizes[1][0][i] else dts
            raise ValueError(
                f"`{m.name(k)}` has size [{h[k]}, {w[k]}] but `{ref.name(int(ref.offsets[i]))}` has "
                f"[{ref_h[i]}, {ref_w[i]}]: the masks of one image must have its size"
            )


def _pack_any(preds, gts, box_format, single, iou_type, reuse=False):
    _coco_eval.check_iou_type(iou_type)
    if iou_type == "segm":
        return _pack_pair_masks(preds, gts, single, reuse)
    return (*_pack_pair(preds, gts, box_format, single), None)


def _best_gt_masks(
    p: PackedPredictions, g: PackedGroundTruth, masks: _MaskPair
) -> tuple[np.ndarray, np.ndarray]:
    """Each prediction's best same-class GT by mask IoU (first in GT order on ties) and that IoU (0 if none).

    The mask analogue of ``_recall_kernels._best_gt``: no crowd rule (the
    recall reward has no crowd notion), every prediction counts. Returns
    (best GT as a packed GT index, -1 where the IoU is 0; best IoU), both (P,).
    """
    blocks = _coco_eval.layout(p, g, 2**62)
    crowd = np.zeros(len(masks.gts.masks), np.uint8)
    ious, _ = _masks._iou_blocks(
        masks.dts.masks, masks.gts.masks, blocks.det_order, blocks.det_start, blocks.det_count,
        blocks.gt_order, blocks.gt_start, blocks.gt_count, crowd, masks.dts.name, masks.gts.name,
    )  # fmt: skip
    best_iou = np.zeros(p.labels.size)
    best_gt = np.full(p.labels.size, -1, np.int64)
    rows = blocks.det_count * (blocks.gt_count > 0)
    if ious.size:
        # One row per detection of a block with GTs; row r spans ious[row_start[r]:...+width[r]].
        width = np.repeat(blocks.gt_count, rows)
        within = np.arange(width.size) - np.repeat(offsets_from_lengths(rows)[:-1], rows)
        row_start = np.repeat(blocks.iou_start[:-1], rows) + within * width
        det = blocks.det_order[np.repeat(blocks.det_start, rows) + within]
        gt_first = np.repeat(blocks.gt_start, rows)
        top = np.maximum.reduceat(ious, row_start)
        row_of = np.repeat(np.arange(row_start.size), width)
        column = np.arange(ious.size) - row_start[row_of]
        first = np.minimum.reduceat(np.where(ious == top[row_of], column, ious.size), row_start)
        found = top > 0
        best_iou[det[found]] = top[found]
        best_gt[det[found]] = blocks.gt_order[gt_first[found] + first[found]]
    return best_gt, best_iou


def _recall_from_best(
    best_gt, best_iou, p, g, weights, gt_weights, thresholds, duplicate_weight, normalize
) -> np.ndarray:
    """``_recall_kernels.image_recall_reward`` of every image from each prediction's best GT (same sums, same order)."""
    n_images = p.offsets.size - 1
    # Each GT's match: the best prediction among those that chose it (first index on ties).
    chose = np.flatnonzero(best_gt >= 0)
    order = chose[np.lexsort((chose, -best_iou[chose], best_gt[chose]))]
    first = np.ones(order.size, bool)
    first[1:] = best_gt[order[1:]] != best_gt[order[:-1]]
    top = np.zeros(g.labels.size)
    match = np.full(g.labels.size, -1, np.int64)
    top[best_gt[order[first]]] = best_iou[order[first]]
    match[best_gt[order[first]]] = order[first]
    gt_image = np.repeat(np.arange(n_images), np.diff(g.offsets))
    det_image = np.repeat(np.arange(n_images), np.diff(p.offsets))
    duplicate = np.zeros(p.labels.size, bool)
    duplicate[chose] = match[best_gt[chose]] != chose
    total = np.zeros(n_images)
    for t in thresholds.tolist():
        found = np.bincount(gt_image, gt_weights * (top > t), minlength=n_images)
        dup = np.bincount(det_image, weights * (duplicate & (best_iou > t)), minlength=n_images)
        total += found - duplicate_weight * dup
    reward = total / thresholds.size
    if normalize:
        mass = np.bincount(gt_image, gt_weights, minlength=n_images)
        reward = np.where(mass > 0, reward / np.where(mass > 0, mass, 1.0), 0.0)
    reward[np.diff(g.offsets) == 0] = 0.0
    return reward


# --------------------------------------------------------------------- mAP


def _map(preds, gts, box_format, iou_thresholds, max_dets, penalize_absent_classes, single, iou_type):
    p, g, masks = _pack_any(preds, gts, box_format, single, iou_type, reuse=True)
    return _map_packed(p, g, iou_thresholds, max_dets, penalize_absent_classes, masks)


def _map_packed(p, g, iou_thresholds, max_dets, penalize_absent_classes, masks=None):
    thresholds = _thresholds(iou_thresholds)
    max_det = int_option(max_dets, "max_dets", low=1, high=2**62)
    blocks = _coco_eval.layout(p, g, max_det)
    lo, hi = COCO_AREA_RANGES["all"]
    if masks is None:
        ious = _coco_eval.box_ious(blocks, p, g)
        det_area = p.boxes[:, 2] * p.boxes[:, 3]
    else:
        ious, det_area = masks.ious(blocks, g), masks.det_area
    status = _coco_eval.match(p, g, blocks, ious, det_area, thresholds, np.array([lo]), np.array([hi]))
    return _coco_eval.image_average_precision(p, g, blocks, status, (lo, hi), bool(penalize_absent_classes))


def map_reward(
    pred: Prediction,
    gt: GroundTruth,
    *,
    box_format: BoxFormat = "xyxy",
    iou_thresholds: Sequence[float] | None = None,
    max_dets: int = 100,
    penalize_absent_classes: bool = False,
    iou_type: IouType = "bbox",
) -> float:
    """COCO box AP@[.5:.95] of one image: pycocotools ``COCOeval.stats[0]`` to 1e-9.

    The image is evaluated as a one-image COCO dataset: per category, the top
    ``max_dets`` detections by score are matched greedily, AP is the
    101-point interpolated precision, averaged over ``iou_thresholds`` (COCO's
    0.50:0.05:0.95 by default) and over categories that have a non-crowd GT.
    The mean is pycocotools' own: numpy's pairwise mean over the (threshold,
    recall point, category) precision samples, so the value equals
    pycocotools' bit for bit. Its precision is tp / (tp + fp + 2.2e-16): a
    perfect single detection scores 0.9999999999999998 there and here.
    A GT whose area is outside [0, 1e10] (e.g. a negative ``area``) is
    ignored, as in pycocotools.

    Values where COCO has none (it returns -1):
      * no category with a non-crowd GT: 1.0 when there is no prediction, else 0.0.
    ``penalize_absent_classes=True`` closes COCO's reward-hacking hole: a
    category that is predicted but absent from the GT scores 0 and counts in
    the mean (COCO leaves it out, so such false positives cost nothing).
    ``iou_type="segm"``: masks instead of boxes (see the module docstring),
    pycocotools' ``COCOeval(iouType="segm")`` of the one image.

    Example:
        >>> gt = {"boxes": [[0, 0, 10, 10]], "labels": [3]}
        >>> map_reward({"boxes": [[0, 0, 10, 10]], "scores": [1.0], "labels": [3]}, gt)
        0.9999999999999998
        >>> round(map_reward({"boxes": [[0, 0, 10, 10]], "scores": [1.0], "labels": [3]}, gt), 9)
        1.0
    """
    return float(
        _map([pred], [gt], box_format, iou_thresholds, max_dets, penalize_absent_classes, True, iou_type)[0]
    )


def map_reward_batch(
    preds: Sequence[Prediction],
    gts: Sequence[GroundTruth],
    *,
    box_format: BoxFormat = "xyxy",
    iou_thresholds: Sequence[float] | None = None,
    max_dets: int = 100,
    penalize_absent_classes: bool = False,
    iou_type: IouType = "bbox",
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
    return _map(preds, gts, box_format, iou_thresholds, max_dets, penalize_absent_classes, False, iou_type)


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
    smoothing = real_option(smoothing, "smoothing", low=0.0)
    if n.ndim != 1 or n.size == 0:
        raise ValueError(f"`counts` must be a non-empty 1-D array, got shape {n.shape}")
    if (n < 0).any():
        raise ValueError("`counts` must be non-negative")
    denom = n + smoothing * n.sum()
    if (denom <= 0).any():
        raise ValueError("`counts` with zero entries need `smoothing` > 0 and a positive total")
    w = 1.0 / denom
    return n.size * w / w.sum()


def _box_weights(class_weights: Any, p: PackedPredictions, g: PackedGroundTruth, names) -> tuple:
    """Each box's class weight (P,), (G,): memory follows the boxes, never the label values."""
    if class_weights is None:
        return np.ones(p.labels.size), np.ones(g.labels.size)
    w = as_float_array(class_weights, "class_weights")
    if w.ndim != 1:
        raise ValueError(f"`class_weights` must be 1-D (indexed by label), got shape {w.shape}")
    if (w < 0).any():
        raise ValueError(
            f"`class_weights` must be non-negative, got {w[w < 0][0]!r} at label {int(np.flatnonzero(w < 0)[0])}"
        )
    for labels, packed, name in ((p.labels, p, names[0]), (g.labels, g, names[1])):
        check_labels_nonnegative(labels, packed.offsets, name)
        if labels.size and labels.max() >= w.size:
            raise ValueError(
                f"`class_weights` has {w.size} entries but a label is {int(labels.max())}; "
                "labels must index class_weights"
            )
    return w[p.labels], w[g.labels]


def _recall(
    preds, gts, box_format, iou_thresholds, class_weights, duplicate_weight, normalize, single, iou_type
):
    p, g, masks = _pack_any(preds, gts, box_format, single, iou_type, reuse=True)
    names = ("pred", "gt") if single else ("preds", "gts")
    return _recall_packed(p, g, names, iou_thresholds, class_weights, duplicate_weight, normalize, masks)


def _recall_packed(p, g, names, iou_thresholds, class_weights, duplicate_weight, normalize, masks=None):
    thresholds = _thresholds(iou_thresholds)
    duplicate_weight = real_option(duplicate_weight, "duplicate_weight")
    weights, gt_weights = _box_weights(class_weights, p, g, names)
    if masks is not None:
        best_gt, best_iou = _best_gt_masks(p, g, masks)
        return _recall_from_best(
            best_gt, best_iou, p, g, weights, gt_weights, thresholds, duplicate_weight, bool(normalize)
        )
    out = np.empty(p.offsets.size - 1)
    _recall_kernels.recall_batch(
        p.boxes,
        p.labels,
        weights,
        p.offsets,
        g.boxes,
        g.labels,
        gt_weights,
        g.offsets,
        thresholds,
        duplicate_weight,
        bool(normalize),
        out,
    )
    return out


def recall_reward(
    pred: Prediction,
    gt: GroundTruth,
    *,
    box_format: BoxFormat = "xyxy",
    iou_thresholds: Sequence[float] | None = None,
    class_weights: Sequence[float] | None = None,
    duplicate_weight: float = 0.3,
    normalize: bool = False,
    iou_type: IouType = "bbox",
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
    default to 1; they must be non-negative (a negative weight would reward
    missing that class), and every label must index them. Without
    ``class_weights`` labels may be any int64 value (memory follows the number
    of boxes, not the label values). ``normalize=True`` divides by the GT weight mass, giving a
    value in [-duplicate_weight * ..., 1]; with no GT it returns 0. ``iou_type="segm"``: the same
    matching on mask IoU (masks instead of boxes, see the module docstring).

    Example:
        >>> gt = {"boxes": [[0, 0, 10, 10]], "labels": [0]}
        >>> pred = {"boxes": [[0, 0, 10, 10], [0, 0, 10, 10]], "scores": [0.9, 0.8], "labels": [0, 0]}
        >>> round(recall_reward(pred, gt), 6)  # found (1) minus 0.3 * one duplicate
        0.7
    """
    return float(
        _recall(
            [pred],
            [gt],
            box_format,
            iou_thresholds,
            class_weights,
            duplicate_weight,
            normalize,
            True,
            iou_type,
        )[0]
    )


def recall_reward_batch(
    preds: Sequence[Prediction],
    gts: Sequence[GroundTruth],
    *,
    box_format: BoxFormat = "xyxy",
    iou_thresholds: Sequence[float] | None = None,
    class_weights: Sequence[float] | None = None,
    duplicate_weight: float = 0.3,
    normalize: bool = False,
    iou_type: IouType = "bbox",
) -> np.ndarray:
    """``recall_reward`` of each (pred, gt) pair in one parallel compiled pass; float64 (B,).

    Example:
        >>> gt = {"boxes": [[0, 0, 10, 10]], "labels": [0]}
        >>> pred = {"boxes": [[0, 0, 10, 10]], "scores": [0.9], "labels": [0]}
        >>> recall_reward_batch([pred, pred], [gt, gt]).tolist()
        [1.0, 1.0]
    """
    return _recall(
        preds, gts, box_format, iou_thresholds, class_weights, duplicate_weight, normalize, False, iou_type
    )


def _match_iou(preds, gts, box_format, iou_threshold, single, iou_type):
    return _match_iou_packed(*_pack_any(preds, gts, box_format, single, iou_type, reuse=True), iou_threshold)


def _match_iou_packed(p, g, masks, iou_threshold):
    threshold = real_option(iou_threshold, "iou_threshold", low=0.0, high=1.0)
    if masks is not None:
        _, best_iou = _best_gt_masks(p, g, masks)
        return np.where(best_iou > threshold, best_iou, 0.0), p.offsets
    out = np.empty(p.labels.size)
    _recall_kernels.match_iou_batch(
        p.boxes, p.labels, p.offsets, g.boxes, g.labels, g.offsets, threshold, out
    )
    return out, p.offsets


def match_iou(
    pred: Prediction,
    gt: GroundTruth,
    *,
    box_format: BoxFormat = "xyxy",
    iou_threshold: float = 0.5,
    iou_type: IouType = "bbox",
) -> np.ndarray:
    """Per prediction, the IoU of its best same-class GT if above ``iou_threshold``, else 0.

    This is the released reward's ``match_iou`` (duplicates keep their IoU too);
    the paper trains each box's confidence token towards (pad, 1 - IoU, IoU).
    ``iou_type="segm"``: mask IoU of ``"masks"`` (see the module docstring).

    Example:
        >>> gt = {"boxes": [[0, 0, 10, 10]], "labels": [0]}
        >>> pred = {"boxes": [[0, 0, 10, 5], [50, 50, 60, 60]], "scores": [0.9, 0.8], "labels": [0, 0]}
        >>> match_iou(pred, gt, iou_threshold=0.4).tolist()
        [0.5, 0.0]
    """
    return _match_iou([pred], [gt], box_format, iou_threshold, True, iou_type)[0]


def match_iou_batch(
    preds: Sequence[Prediction],
    gts: Sequence[GroundTruth],
    *,
    box_format: BoxFormat = "xyxy",
    iou_threshold: float = 0.5,
    iou_type: IouType = "bbox",
) -> list[np.ndarray]:
    """``match_iou`` of each pair, computed in one compiled pass; a list of (N_i,) arrays.

    Example:
        >>> gt = {"boxes": [[0, 0, 10, 10]], "labels": [0]}
        >>> pred = {"boxes": [[0, 0, 10, 5]], "scores": [0.9], "labels": [0]}
        >>> [a.tolist() for a in match_iou_batch([pred, pred], [gt, gt], iou_threshold=0.4)]
        [[0.5], [0.5]]
        >>> match_iou_batch([], [])
        []
    """
    flat, offsets = _match_iou(preds, gts, box_format, iou_threshold, False, iou_type)
    return [flat[offsets[i] : offsets[i + 1]] for i in range(offsets.size - 1)]


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
        raise ValueError(f"`preds` has {p.offsets.size - 1} examples but `gts` has {g.offsets.size - 1}")
    return p, g


_PADDED_GT_KEYS = {"labels": ("iu", True), "iscrowd": ("biu", False), "area": ("fiu", False)}


def _pack_padded_any(preds, gts, box_format, iou_type, scores_optional=False):
    """Packed padded inputs, and their masks for ``iou_type="segm"`` (else None).

    Padded masks (B, K, H, W) become per-example (N, H, W) stacks of the valid
    entries, packed as the list form is: one path, the same checks and values.
    """
    _coco_eval.check_iou_type(iou_type)
    if iou_type == "bbox":
        if scores_optional:
            preds = _with_default_scores(preds)
        return (*_pack_padded_pair(preds, gts, box_format), None)
    pred_keys = {"scores": ("fiu", not scores_optional), "labels": ("iu", True)}
    pred_examples = unpad_mask_examples(preds, "preds", pred_keys)
    gt_examples = unpad_mask_examples(gts, "gts", _PADDED_GT_KEYS)
    if scores_optional:
        for ex in pred_examples:
            ex.setdefault("scores", np.zeros(len(ex["masks"])))
    return _pack_pair_masks(pred_examples, gt_examples, False)


def map_reward_padded(
    preds: Mapping[str, Any],
    gts: Mapping[str, Any],
    *,
    box_format: BoxFormat = "xyxy",
    iou_thresholds: Sequence[float] | None = None,
    max_dets: int = 100,
    penalize_absent_classes: bool = False,
    iou_type: IouType = "bbox",
) -> np.ndarray:
    """``map_reward_batch`` on padded arrays, e.g. a decoded batch of token sequences.

    ``preds``: {"boxes": (B, K, 4), "scores": (B, K), "labels": (B, K),
    "valid": (B, K) bool}; ``gts``: {"boxes": (B, M, 4), "labels": (B, M),
    "valid": (B, M)} plus optional "iscrowd"/"area" (B, M). Entries where
    ``valid`` is False are never read. Returns float64 (B,).
    ``iou_type="segm"``: dense masks instead of boxes, ``"masks"`` (B, K, H, W)
    and (B, M, H, W) (e.g. a query-based model's thresholded masks); the valid
    entries are scored as ``map_reward_batch(..., iou_type="segm")`` scores
    them (errors name ``preds[b]["masks"][i]``, i counting valid entries).

    Example:
        >>> import numpy as np
        >>> preds = {"boxes": np.array([[[0, 0, 10, 10], [0, 0, 0, 0]]]), "scores": np.ones((1, 2)),
        ...          "labels": np.zeros((1, 2), int), "valid": np.array([[True, False]])}
        >>> gts = {"boxes": np.array([[[0, 0, 10, 10]]]), "labels": np.zeros((1, 1), int), "valid": np.ones((1, 1), bool)}
        >>> map_reward_padded(preds, gts).round(6).tolist()
        [1.0]
    """
    p, g, masks = _pack_padded_any(preds, gts, box_format, iou_type)
    return _map_packed(p, g, iou_thresholds, max_dets, penalize_absent_classes, masks)


def recall_reward_padded(
    preds: Mapping[str, Any],
    gts: Mapping[str, Any],
    *,
    box_format: BoxFormat = "xyxy",
    iou_thresholds: Sequence[float] | None = None,
    class_weights: Sequence[float] | None = None,
    duplicate_weight: float = 0.3,
    normalize: bool = False,
    iou_type: IouType = "bbox",
) -> np.ndarray:
    """``recall_reward_batch`` on padded arrays (see ``map_reward_padded``, also for masks; scores are optional).

    Example:
        >>> import numpy as np
        >>> preds = {"boxes": np.array([[[0, 0, 10, 10], [0, 0, 10, 10]]]), "labels": np.zeros((1, 2), int),
        ...          "valid": np.array([[True, True]])}
        >>> gts = {"boxes": np.array([[[0, 0, 10, 10]]]), "labels": np.zeros((1, 1), int), "valid": np.ones((1, 1), bool)}
        >>> recall_reward_padded(preds, gts).round(6).tolist()  # found, minus 0.3 for the duplicate
        [0.7]
    """
    p, g, masks = _pack_padded_any(preds, gts, box_format, iou_type, scores_optional=True)
    return _recall_packed(
        p, g, ("preds", "gts"), iou_thresholds, class_weights, duplicate_weight, normalize, masks
    )


def match_iou_padded(
    preds: Mapping[str, Any],
    gts: Mapping[str, Any],
    *,
    box_format: BoxFormat = "xyxy",
    iou_threshold: float = 0.5,
    iou_type: IouType = "bbox",
) -> np.ndarray:
    """``match_iou`` of every padded prediction: float64 (B, K), 0 where not valid (masks: see ``map_reward_padded``).

    Example:
        >>> import numpy as np
        >>> preds = {"boxes": np.array([[[0, 0, 10, 5], [7, 7, 9, 9]]]), "labels": np.zeros((1, 2), int),
        ...          "valid": np.array([[True, False]])}
        >>> gts = {"boxes": np.array([[[0, 0, 10, 10]]]), "labels": np.zeros((1, 1), int), "valid": np.ones((1, 1), bool)}
        >>> match_iou_padded(preds, gts, iou_threshold=0.4).tolist()
        [[0.5, 0.0]]
    """
    p, g, masks = _pack_padded_any(preds, gts, box_format, iou_type, scores_optional=True)
    flat, _ = _match_iou_packed(p, g, masks, iou_threshold)
    valid = to_numpy(preds["valid"], 'preds["valid"]').astype(bool)
    out = np.zeros(valid.shape)
    out[valid] = flat
    return out


# ------------------------------------------------------------- dataset eval


@dataclass
class CocoEvalResult:
    """The result of a whole-dataset COCO evaluation (``coco_eval_files``, ``CocoEvaluator.compute``).

    Attributes:
        stats: float64 (12,) pycocotools' ``COCOeval.stats`` order (keys in ``COCO_STAT_KEYS``);
            -1 where no category has a positive GT, as in pycocotools.
        per_class: {category_id: {"ap", "ap50", "ap75", "ar100"}}: AP@[.5:.95],
            AP@.5, AP@.75 and AR at the last ``max_dets``, area "all"; -1 for a
            category without a positive GT.
        per_image: {image_id: AP of that image alone} (``map_reward`` of its
            detections against its GT, at the last ``max_dets``), when asked for.
        precision: float64 (T, R, K, A, M) and recall (T, K, A, M): pycocotools' ``eval`` arrays.
        categories: int64 (K,) the evaluated category ids; category_names: {id: name}.
        max_dets, max_dets_rule, area_ranges: the settings used.

    Example:
        >>> ev = CocoEvaluator()
        >>> ev.update([{"boxes": [[0, 0, 10, 10]], "scores": [0.9], "labels": [1]}],
        ...           [{"boxes": [[0, 0, 10, 10]], "labels": [1]}])
        >>> result = ev.compute()
        >>> result.stats[:2].round(9).tolist(), result.per_class[1]["ar100"]  # AP: tp / (tp + fp + 2e-16)
        ([1.0, 1.0], 1.0)
        >>> print(result.summary().splitlines()[0])
         Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 1.000
    """

    stats: np.ndarray
    per_class: dict[int, dict[str, float]]
    per_image: dict[int, float] | None
    precision: np.ndarray
    recall: np.ndarray
    categories: np.ndarray
    category_names: dict[int, str]
    max_dets: tuple[int, int, int]
    max_dets_rule: MaxDetsRule
    area_ranges: tuple[tuple[float, float], ...]
    lines: list[str] = field(repr=False)

    def as_dict(self) -> dict[str, float]:
        """The 12 stats by name (``COCO_STAT_KEYS``), as ``coco_eval`` returns them."""
        return dict(zip(COCO_STAT_KEYS, self.stats.tolist()))

    def summary(self) -> str:
        """pycocotools' ``summarize()`` printout: the same 12 lines, the same numbers."""
        return "\n".join(self.lines)

    def per_class_table(self) -> str:
        """A per-category table of AP, AP50, AP75 and AR at the last max_dets."""
        head = f"{'category':>8}  {'name':<20} {'AP':>6} {'AP50':>6} {'AP75':>6} {'AR' + str(self.max_dets[-1]):>6}"
        rows = [head]
        for c, v in self.per_class.items():
            name = self.category_names.get(c, str(c))[:20]
            rows.append(
                f"{c:>8}  {name:<20} {v['ap']:6.3f} {v['ap50']:6.3f} {v['ap75']:6.3f} {v['ar100']:6.3f}"
            )
        return "\n".join(rows)

    def to_json(self) -> dict[str, Any]:
        """What ``--json-out`` writes: stats, per_class, per_image (when computed) and the settings."""
        out: dict[str, Any] = {
            "stats": self.stats.tolist(),
            "stat_keys": list(COCO_STAT_KEYS),
            "per_class": {str(c): v for c, v in self.per_class.items()},
        }
        if self.per_image is not None:
            out["per_image"] = {str(i): v for i, v in self.per_image.items()}
        out["max_dets"] = list(self.max_dets)
        out["max_dets_rule"] = self.max_dets_rule
        out["area_ranges"] = dict(zip(_coco_eval.AREA_LABELS, map(list, self.area_ranges)))
        return out


def _select_images(packed: Any, order: np.ndarray, masks: Any = None) -> tuple[Any, Any]:
    """A packed batch (PackedPredictions / PackedGroundTruth) with its images in ``order``, and its masks."""
    offsets = packed.offsets
    lengths = np.diff(offsets)[order]
    new_offsets = offsets_from_lengths(lengths)
    rows = np.repeat(offsets[:-1][order] - new_offsets[:-1], lengths) + np.arange(new_offsets[-1])
    selected = type(packed)(*(np.ascontiguousarray(f[rows]) for f in packed[:-1]), new_offsets)
    return selected, None if masks is None else _masks._take(masks, rows)


def _concat_packed(parts: list) -> Any:
    if len(parts) == 1:
        return parts[0]
    lengths = np.concatenate([np.diff(p.offsets) for p in parts])
    fields = [np.concatenate([p[i] for p in parts]) for i in range(len(parts[0]) - 1)]
    return type(parts[0])(*fields, offsets_from_lengths(lengths))


def _evaluate_packed(
    p, g, image_ids, categories, category_names, params, per_image, masks: _MaskPair | None = None
) -> CocoEvalResult:
    blocks = _coco_eval.layout(p, g, params.max_dets[-1])
    if masks is None:
        ious, det_area = _coco_eval.box_ious(blocks, p, g), p.boxes[:, 2] * p.boxes[:, 3]
    else:
        ious, det_area = masks.ious(blocks, g), masks.det_area
    ev, blocks, status = _coco_eval.evaluate(
        p, g, categories, params, blocks=blocks, ious=ious, det_area=det_area
    )
    values = _coco_eval.stats(ev)
    per_image_ap = None
    if per_image:
        lo, hi = COCO_AREA_RANGES["all"]
        if params.area_ranges[0] == (lo, hi):
            status_all = status[:1]
        else:
            status_all = _coco_eval.match(
                p,
                g,
                blocks,
                ious,
                det_area,
                COCO_IOU_THRESHOLDS,
                np.array([lo]),
                np.array([hi]),
            )
        ap = _coco_eval.image_average_precision(p, g, blocks, status_all)
        per_image_ap = dict(zip(image_ids.tolist(), ap.tolist()))
    return CocoEvalResult(
        values,
        _coco_eval.per_class(ev),
        per_image_ap,
        ev.precision,
        ev.recall,
        categories,
        category_names,
        params.max_dets,
        params.max_dets_rule,
        params.area_ranges,
        _coco_eval.summary_lines(ev, values),
    )


class CocoEvaluator:
    """COCO bbox evaluation accumulated over batches and processes: ``update``, ``merge``, ``compute``.

    ``update(preds, gts, image_ids=None)`` adds images (the per-image dicts
    of ``map_reward``); the evaluator is picklable and ``merge`` folds others
    into it, e.g. after ``torch.distributed.all_gather_object``; ``compute()``
    returns the :class:`CocoEvalResult` of all images, equal to one
    evaluation of the whole dataset in one process.

    Image order decides pycocotools' tie-breaking between equal scores of
    different images. With ``image_ids`` (one int per image, unique over all
    merged evaluators) images are evaluated in ascending id, as pycocotools
    does, whatever the batching or the process split. Without them, images
    are numbered in the order they were added (self's, then each merged
    evaluator's, in ``merge`` order). Give ids to all batches or to none.

    Settings (``max_dets``, ``area_ranges``, ``max_dets_rule``, ``iou_type``)
    are those of :func:`coco_eval_files`; with ``iou_type="segm"`` the dicts
    carry ``"masks"`` (see the module docstring), kept as run-lengths. ``categories`` (default: every GT
    label seen) are the evaluated categories, pycocotools' ``catIds``:
    detections of any other label are not counted.

    Example:
        >>> import pickle
        >>> gt = {"boxes": [[0, 0, 10, 10]], "labels": [1]}
        >>> hit = {"boxes": [[0, 0, 10, 10]], "scores": [0.9], "labels": [1]}
        >>> miss = {"boxes": [[50, 50, 60, 60]], "scores": [0.8], "labels": [1]}
        >>> rank0, rank1 = CocoEvaluator(), CocoEvaluator()
        >>> rank0.update([hit], [gt], image_ids=[0]); rank1.update([miss], [gt], image_ids=[1])
        >>> merged = rank0.merge(pickle.loads(pickle.dumps(rank1)))
        >>> bool(merged.compute().stats[0] == coco_eval([hit, miss], [gt, gt])["map"])
        True
    """

    def __init__(
        self,
        *,
        box_format: BoxFormat = "xyxy",
        iou_type: IouType = "bbox",
        max_dets: Sequence[int] = COCO_MAX_DETS,
        area_ranges: Any = None,
        max_dets_rule: MaxDetsRule = "consistent",
        categories: Sequence[int] | None = None,
    ) -> None:
        self.params = _coco_eval.make_params(max_dets, area_ranges, max_dets_rule, iou_type)
        check_box_format(box_format)
        self.box_format = box_format
        self.categories = None if categories is None else _category_ids(categories)
        # (predictions, ground truths, image ids or None, (detection masks, GT masks) or None)
        self._batches: list[tuple[PackedPredictions, PackedGroundTruth, np.ndarray | None, Any]] = []

    def __len__(self) -> int:
        return sum(b[0].offsets.size - 1 for b in self._batches)

    def update(
        self, preds: Sequence[Prediction], gts: Sequence[GroundTruth], image_ids: Sequence[int] | None = None
    ) -> None:
        """Adds a batch of images: ``preds[i]`` and ``gts[i]`` are image ``image_ids[i]``."""
        p, g, masks = _pack_any(preds, gts, self.box_format, False, self.params.iou_type)
        if masks is not None:
            masks = (masks.dts.masks, masks.gts.masks)
        ids = None
        if image_ids is not None:
            ids = to_numpy(image_ids, "image_ids")
            if ids.ndim != 1 or ids.size != p.offsets.size - 1 or (ids.size and ids.dtype.kind not in "iu"):
                raise ValueError(
                    f"`image_ids` must be {p.offsets.size - 1} integers (one per image), "
                    f"got shape {ids.shape} dtype {ids.dtype}"
                )
            check_fits_int64(ids, "image_ids")
            ids = ids.astype(np.int64)
        self._batches.append((p, g, ids, masks))

    def merge(self, *others: CocoEvaluator) -> CocoEvaluator:
        """Folds the images of ``others`` into this evaluator (in place) and returns it."""
        for i, other in enumerate(others):
            if not isinstance(other, CocoEvaluator):
                raise TypeError(f"`others[{i}]` must be a CocoEvaluator, got {type(other).__name__}")
            if self.categories is None or other.categories is None:
                same_categories = self.categories is None and other.categories is None
            else:
                same_categories = np.array_equal(self.categories, other.categories)
            if other.params != self.params or other.box_format != self.box_format or not same_categories:
                raise ValueError(f"`others[{i}]` was built with different settings; merge needs equal ones")
            if other is not self:
                self._batches.extend(other._batches)
        return self

    def compute(self, per_image: bool = False) -> CocoEvalResult:
        """The evaluation of every image added so far (``per_image``: also each image's AP)."""
        batches = self._batches
        segm = self.params.iou_type == "segm"
        if not batches:
            p, g = _pack_pair([], [], self.box_format, False)
            batches = [(p, g, None, (_masks._empty_set(), _masks._empty_set()) if segm else None)]
        with_ids = [b[2] is not None for b in batches]
        if any(with_ids) and not all(with_ids):
            raise ValueError(
                "`image_ids` were given for some batches but not others; give them for all or none"
            )
        p = _concat_packed([b[0] for b in batches])
        g = _concat_packed([b[1] for b in batches])
        dt_masks = gt_masks = None
        if segm:
            dt_masks = _masks._concat_sets([b[3][0] for b in batches])
            gt_masks = _masks._concat_sets([b[3][1] for b in batches])
        if all(with_ids):
            ids = np.concatenate([b[2] for b in batches])
            order = np.argsort(ids, kind="stable")
            ids = ids[order]
            dup = np.flatnonzero(ids[1:] == ids[:-1])
            if dup.size:
                raise ValueError(f"`image_ids` repeats the image id {int(ids[dup[0]])}")
            p, dt_masks = _select_images(p, order, dt_masks)
            g, gt_masks = _select_images(g, order, gt_masks)
        else:
            ids = np.arange(p.offsets.size - 1)
        categories = np.unique(g.labels) if self.categories is None else self.categories
        names = {c: str(c) for c in categories.tolist()}
        masks = None
        if segm:
            masks = _MaskPair(_file_masks(dt_masks, "preds"), _file_masks(gt_masks, "gts"))
        return _evaluate_packed(p, g, ids, categories, names, self.params, per_image, masks)


def _category_ids(categories: Any) -> np.ndarray:
    c = to_numpy(categories, "categories")
    if c.ndim != 1 or (c.size and c.dtype.kind not in "iu"):
        raise ValueError(f"`categories` must be a 1-D sequence of integer ids, got {c.dtype} {c.shape}")
    check_fits_int64(c, "categories")
    return np.unique(c.astype(np.int64))


def coco_eval(
    preds: Sequence[Prediction],
    gts: Sequence[GroundTruth],
    *,
    box_format: BoxFormat = "xyxy",
    iou_type: IouType = "bbox",
    max_dets: Sequence[int] = COCO_MAX_DETS,
    area_ranges: Any = None,
    max_dets_rule: MaxDetsRule = "consistent",
) -> dict[str, float]:
    """The 12 ``COCOeval(iouType="bbox" or "segm").stats`` of a whole dataset, to 1e-9.

    Image ``i`` of the dataset is ``(preds[i], gts[i])``. Keys: map, map_50,
    map_75, map_small, map_medium, map_large, mar_1, mar_10, mar_100,
    mar_small, mar_medium, mar_large. As in COCO, a value is -1 when no
    category has a non-ignored GT in that area range. GT area is
    ``gt["area"]`` when given, else the box (``iou_type="segm"``: mask) area. The evaluated categories
    are the GT labels (pycocotools' ``catIds``). Settings as in
    :func:`coco_eval_files`; for per-class values, batches or processes use
    :class:`CocoEvaluator`.

    Example:
        >>> gt = {"boxes": [[0, 0, 10, 10]], "labels": [1]}
        >>> pred = {"boxes": [[0, 0, 10, 10]], "scores": [0.5], "labels": [1]}
        >>> stats = coco_eval([pred], [gt]); round(stats["map"], 9), stats["map_large"]
        (1.0, -1.0)
    """
    ev = CocoEvaluator(
        box_format=box_format,
        iou_type=iou_type,
        max_dets=max_dets,
        area_ranges=area_ranges,
        max_dets_rule=max_dets_rule,
    )
    ev.update(preds, gts)
    return ev.compute().as_dict()


def coco_eval_files(
    gt_json: str | os.PathLike[str] | Mapping[str, Any],
    results_json: str | os.PathLike[str] | Sequence[Mapping[str, Any]],
    *,
    iou_type: IouType = "bbox",
    max_dets: Sequence[int] = COCO_MAX_DETS,
    area_ranges: Any = None,
    max_dets_rule: MaxDetsRule = "consistent",
    per_image: bool = False,
) -> CocoEvalResult:
    """pycocotools' ``COCO(gt); loadRes(results); COCOeval(..., iou_type)`` evaluate/accumulate/summarize, exact.

    ``gt_json``: a COCO instances file (``.json`` or ``.json.gz``) or its
    loaded dict; ``results_json``: a COCO results file or its loaded list of
    ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}``. The 12
    stats, the per-class and (``per_image=True``) per-image values equal
    pycocotools' to 1e-9 (same slices, same means).

    Loading follows pycocotools' ``loadRes``: results of images absent from
    the GT are an error, a result's area is its box area, a GT's ``ignore``
    is its ``iscrowd``. Also errors here (pycocotools drops or overwrites
    silently): results of categories absent from the GT, repeated ids,
    a bbox that is not 4 finite numbers, a non-finite score, a missing key;
    each message names the file, the list index and the key. GT ``iscrowd``
    defaults to 0 and ``area`` to the box area. pycocotools counts a match
    to an annotation of id 0 as a false positive (it uses 0 for "unmatched");
    here id 0 is an ordinary id. An empty results list (pycocotools raises)
    gives what pycocotools computes for no detections: 0 for every stat
    whose area range has a positive GT, else -1.

    ``max_dets``: three ascending limits (sorted, as pycocotools does). With
    ``max_dets_rule="consistent"`` (default) stats[0] uses the last one, as
    every other AP stat does; ``"pycocotools"`` reproduces pycocotools'
    summarize, whose stats[0] always reads ``maxDets == 100`` (-1 when 100
    is not among them; cocoapi #558) and prints ``maxDets=100``. The two agree
    for the default (1, 10, 100). ``area_ranges``: 4 (low, high) pairs for
    all / small / medium / large (or a dict with those keys), inclusive, as
    pycocotools' ``areaRng``; they behave the same under both rules.
    ``iou_type="segm"``: instance masks, as pycocotools' segm evaluation.
    Each GT's ``segmentation`` (polygons, uncompressed or compressed RLE) is
    read as ``annToRLE`` does, on its image's ``height`` x ``width`` (needed
    then); area ranges use the GT's ``area`` (default: its mask area); a
    result needs ``segmentation`` (an RLE dict; a polygon list is rasterised
    too) instead of ``bbox``, and its area is its mask area. Errors name the
    file, entry and key: polygons pycocotools rejects (a first part of 4
    numbers or fewer; in results any part with fewer than 3 points or an odd
    number of coordinates), RLE counts that do not sum to h * w, a mask whose
    size is not its image's (pycocotools scores it -1 against everything).

    Example:
        >>> gt = {"images": [{"id": 7}], "categories": [{"id": 1, "name": "cat"}],
        ...       "annotations": [{"id": 1, "image_id": 7, "category_id": 1,
        ...                        "bbox": [0, 0, 10, 10], "area": 100, "iscrowd": 0}]}
        >>> results = [{"image_id": 7, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.9}]
        >>> r = coco_eval_files(gt, results, per_image=True)
        >>> [round(float(v), 9) for v in (r.stats[0], r.per_class[1]["ap50"], r.per_image[7])]
        [1.0, 1.0, 1.0]
        >>> gt["images"][0].update(height=20, width=20)
        >>> gt["annotations"][0]["segmentation"] = [[0, 0, 10, 0, 10, 10, 0, 10]]
        >>> import numpy as np
        >>> from rewards import masks
        >>> found = np.zeros((20, 20), bool); found[:10, :11] = True  # IoU 100 / 110
        >>> segm = [{"image_id": 7, "category_id": 1, "score": 0.9, "segmentation": masks.encode(found)}]
        >>> r = coco_eval_files(gt, segm, iou_type="segm")
        >>> [round(float(v), 9) for v in (r.stats[0], r.stats[1], r.stats[2])]  # found at IoU .5 to .9
        [0.9, 1.0, 1.0]
    """
    params = _coco_eval.make_params(max_dets, area_ranges, max_dets_rule, iou_type)
    gt = _coco_files.load_ground_truth(gt_json, iou_type)
    masks = None
    if iou_type == "segm":
        p, dt_masks = _coco_files.load_segm_results(results_json, gt)
        masks = _MaskPair(_file_masks(dt_masks, "results"), _file_masks(gt.masks, gt.name))
    else:
        p = _coco_files.load_results(results_json, gt)
    return _evaluate_packed(
        p, gt.packed, gt.image_ids, gt.categories, gt.category_names, params, per_image, masks
    )


def _file_masks(m: Any, name: str) -> ExampleMasks:
    """Masks of a COCO file (size errors are caught at loading: naming by index suffices)."""
    return ExampleMasks(m, np.array([0, len(m)], np.int64), name, True)
