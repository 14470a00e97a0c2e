"""Whole-dataset COCO evaluation of packed arrays: parameters, evaluate, accumulate, summarize.

The public entry points (``rewards.detection.coco_eval``, ``coco_eval_files``,
``CocoEvaluator``) pack their inputs and call :func:`evaluate`; everything
after packing lives here.

Where another overlap plugs in (instance masks, issue 18): build the blocks
with :func:`layout`, fill a flat float64 IoU array in that layout (see
``rewards._coco_kernels``: one ``(det_count, gt_count)`` row-major matrix per
block, rows by descending score, columns in GT input order), and pass it as
``evaluate(..., blocks=blocks, ious=ious, det_area=...)`` with the detections'
mask areas: matching, accumulation and the summary are shared.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np

from rewards import _coco_kernels as K
from rewards._detection_inputs import PackedGroundTruth, PackedPredictions
from rewards._inputs import int_option

IouType = Literal["bbox", "segm"]
MaxDetsRule = Literal["consistent", "pycocotools"]

# The exact floats pycocotools uses (its Params.setDetParams).
IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
AREA_LABELS = ("all", "small", "medium", "large")
AREA_RANGES = ((0.0**2, 1e5**2), (0.0**2, 32.0**2), (32.0**2, 96.0**2), (96.0**2, 1e5**2))
MAX_DETS = (1, 10, 100)
STAT_KEYS = (
    "map",
    "map_50",
    "map_75",
    "map_small",
    "map_medium",
    "map_large",
    "mar_1",
    "mar_10",
    "mar_100",
    "mar_small",
    "mar_medium",
    "mar_large",
)


@dataclass(frozen=True)
class Params:
    """Validated evaluation settings (pycocotools' ``Params`` for bbox)."""

    max_dets: tuple[int, int, int] = MAX_DETS
    area_ranges: tuple[tuple[float, float], ...] = AREA_RANGES
    max_dets_rule: MaxDetsRule = "consistent"
    iou_type: IouType = "bbox"

    @property
    def area_lo(self) -> np.ndarray:
        return np.array([lo for lo, _ in self.area_ranges])

    @property
    def area_hi(self) -> np.ndarray:
        return np.array([hi for _, hi in self.area_ranges])


def make_params(
    max_dets: Sequence[int] = MAX_DETS,
    area_ranges: Any = None,
    max_dets_rule: str = "consistent",
    iou_type: str = "bbox",
) -> Params:
    """Checks the options shared by every dataset entry point; errors name the argument."""
    check_iou_type(iou_type)
    if max_dets_rule not in ("consistent", "pycocotools"):
        raise ValueError(f"`max_dets_rule` must be 'consistent' or 'pycocotools', got {max_dets_rule!r}")
    if isinstance(max_dets, (str, bytes)) or not hasattr(max_dets, "__len__") or len(max_dets) != 3:
        raise ValueError(
            f"`max_dets` must be 3 positive integers (the 12 COCO stats use three), got {max_dets!r}"
        )
    dets = sorted(int_option(m, f"max_dets[{i}]", low=1, high=2**62) for i, m in enumerate(max_dets))
    return Params(tuple(dets), _area_ranges(area_ranges), max_dets_rule, iou_type)  # type: ignore[arg-type]


def check_iou_type(iou_type: Any) -> None:
    if iou_type not in ("bbox", "segm"):
        raise ValueError(
            f"`iou_type` must be 'bbox' or 'segm', got {iou_type!r} (keypoints are not supported)"
        )


def _area_ranges(area_ranges: Any) -> tuple[tuple[float, float], ...]:
    if area_ranges is None:
        return AREA_RANGES
    if isinstance(area_ranges, dict):
        if set(area_ranges) != set(AREA_LABELS):
            raise ValueError(f"`area_ranges` must have the keys {AREA_LABELS}, got {sorted(area_ranges)}")
        area_ranges = [area_ranges[k] for k in AREA_LABELS]
    try:
        a = np.asarray(area_ranges, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"`area_ranges` must be 4 (low, high) pairs, got {area_ranges!r}") from None
    if a.shape != (4, 2):
        raise ValueError(f"`area_ranges` must be 4 (low, high) pairs for {AREA_LABELS}, got shape {a.shape}")
    if np.isnan(a).any() or (a[:, 0] > a[:, 1]).any():
        raise ValueError(f"`area_ranges` must hold (low, high) pairs with low <= high, got {a.tolist()}")
    return tuple((float(lo), float(hi)) for lo, hi in a)


class Evaluation(NamedTuple):
    """Accumulated results, in pycocotools' ``eval`` layout."""

    precision: np.ndarray  # (T, R, K, A, M), -1 where a category has no positive GT
    recall: np.ndarray  # (T, K, A, M), likewise
    categories: np.ndarray  # (K,) int64, ascending
    params: Params


def layout(p: PackedPredictions, g: PackedGroundTruth, max_det: int) -> K.Blocks:
    """The (image, category) blocks of packed detections and GTs (see ``_coco_kernels.Blocks``)."""
    return K.Blocks(*K.layout_blocks(p.labels, p.scores, p.offsets, g.labels, g.offsets, int(max_det)))


def box_ious(blocks: K.Blocks, p: PackedPredictions, g: PackedGroundTruth) -> np.ndarray:
    out = np.empty(int(blocks.iou_start[-1]))
    K.box_ious(blocks, p.boxes, g.boxes, g.crowd, out)
    return out


def mask_ious(
    blocks: K.Blocks,
    dt_masks: Any,
    gt_masks: Any,
    g: PackedGroundTruth,
    dt_names: Any = None,
    gt_names: Any = None,
) -> np.ndarray:
    """Mask IoUs in the blocks' layout: ``dt_masks`` / ``gt_masks`` (``rewards.masks._Masks``) in packed order."""
    from rewards.masks import _iou_blocks

    ious, _ = _iou_blocks(
        dt_masks, gt_masks, blocks.det_order, blocks.det_start, blocks.det_count,
        blocks.gt_order, blocks.gt_start, blocks.gt_count, g.crowd, dt_names, gt_names,
    )  # fmt: skip
    return ious


def match(
    p: PackedPredictions,
    g: PackedGroundTruth,
    blocks: K.Blocks,
    ious: np.ndarray,
    det_area: np.ndarray,
    thresholds: np.ndarray,
    area_lo: np.ndarray,
    area_hi: np.ndarray,
) -> np.ndarray:
    """Status (A, T, P) int8 of every detection (IGNORED beyond max_det)."""
    status = np.full((area_lo.size, thresholds.size, p.scores.size), K.IGNORED, np.int8)
    K.evaluate_blocks(blocks, ious, det_area, g.area, g.crowd, thresholds, area_lo, area_hi, status)
    return status


def evaluate(
    p: PackedPredictions,
    g: PackedGroundTruth,
    categories: np.ndarray,
    params: Params,
    *,
    blocks: K.Blocks | None = None,
    ious: np.ndarray | None = None,
    det_area: np.ndarray | None = None,
) -> tuple[Evaluation, K.Blocks, np.ndarray]:
    """pycocotools' evaluate + accumulate of images ``0..B-1`` in that order.

    ``categories`` (ascending int64) are the evaluated categories: detections
    of other categories are not counted (pycocotools' ``params.catIds``).
    Returns the evaluation, the blocks and the (A, T, P) status.
    """
    max_dets = np.array(params.max_dets, np.int64)
    if blocks is None:
        blocks = layout(p, g, max_dets[-1])
    if ious is None:
        ious = box_ious(blocks, p, g)
    if det_area is None:
        det_area = p.boxes[:, 2] * p.boxes[:, 3]
    area_lo, area_hi = params.area_lo, params.area_hi
    status = match(p, g, blocks, ious, det_area, IOU_THRESHOLDS, area_lo, area_hi)
    return accumulate(p, g, blocks, status, categories, params), blocks, status


def accumulate(
    p: PackedPredictions,
    g: PackedGroundTruth,
    blocks: K.Blocks,
    status: np.ndarray,
    categories: np.ndarray,
    params: Params,
) -> Evaluation:
    max_dets = np.array(params.max_dets, np.int64)
    area_lo, area_hi = params.area_lo, params.area_hi
    n_cat = categories.size
    n_positive = np.zeros((area_lo.size, n_cat), np.int64)
    known = np.isin(g.labels, categories)
    for a in range(area_lo.size):
        positive = known & ~g.crowd & (g.area >= area_lo[a]) & (g.area <= area_hi[a])
        n_positive[a] = np.bincount(np.searchsorted(categories, g.labels[positive]), minlength=n_cat)
    rank = blocks.det_rank
    kept = np.flatnonzero((rank < max_dets[-1]) & np.isin(p.labels, categories))
    image = np.repeat(np.arange(p.offsets.size - 1), np.diff(p.offsets))
    order = kept[np.lexsort((rank[kept], image[kept], -p.scores[kept], p.labels[kept]))]
    starts = np.append(np.searchsorted(p.labels[order], categories, side="left"), order.size)
    shape = (IOU_THRESHOLDS.size, RECALL_THRESHOLDS.size, n_cat, area_lo.size, max_dets.size)
    precision = -np.ones(shape)
    recall = -np.ones((shape[0], *shape[2:]))
    K.accumulate(
        order,
        starts.astype(np.int64),
        rank,
        status,
        n_positive,
        max_dets,
        RECALL_THRESHOLDS,
        precision.reshape(-1),
        recall,
    )
    return Evaluation(precision, recall, categories, params)


def _mean_valid(s: np.ndarray) -> float:
    """pycocotools' ``np.mean(s[s > -1])``, -1 when empty (the same summation order)."""
    valid = s[s > -1]
    return float(np.mean(valid)) if valid.size else -1.0


def _summaries(ev: Evaluation) -> list[tuple[bool, float | None, str, int, list[int]]]:
    """(ap, iou threshold, area label, printed max_dets, max_dets indices) of the 12 stats."""
    m = list(ev.params.max_dets)
    last = [len(m) - 1]
    if ev.params.max_dets_rule == "pycocotools":
        # stats[0] reads maxDets == 100, whatever the list holds (cocoapi #558).
        first = (100, [i for i, v in enumerate(m) if v == 100])
    else:
        first = (m[-1], last)
    return [
        (True, None, "all", *first),
        (True, 0.5, "all", m[2], [2]),
        (True, 0.75, "all", m[2], [2]),
        (True, None, "small", m[2], [2]),
        (True, None, "medium", m[2], [2]),
        (True, None, "large", m[2], [2]),
        (False, None, "all", m[0], [0]),
        (False, None, "all", m[1], [1]),
        (False, None, "all", m[2], [2]),
        (False, None, "small", m[2], [2]),
        (False, None, "medium", m[2], [2]),
        (False, None, "large", m[2], [2]),
    ]


def stats(ev: Evaluation) -> np.ndarray:
    """The 12 summary stats, computed as pycocotools' ``summarize`` does (same slices, same means)."""
    out = np.empty(12)
    for i, (ap, thr, area, _, mind) in enumerate(_summaries(ev)):
        aind = [AREA_LABELS.index(area)]
        s = ev.precision if ap else ev.recall
        if thr is not None:
            s = s[np.where(thr == IOU_THRESHOLDS)[0]]
        s = s[:, :, :, aind, mind] if ap else s[:, :, aind, mind]
        out[i] = _mean_valid(s)
    return out


def summary_lines(ev: Evaluation, values: np.ndarray) -> list[str]:
    """pycocotools' ``summarize()`` printout, line for line."""
    line = " {:<18} {} @[ IoU={:<9} | area={:>6s} | maxDets={:>3d} ] = {:0.3f}"
    out = []
    for (ap, thr, area, shown, _), value in zip(_summaries(ev), values):
        title, kind = ("Average Precision", "(AP)") if ap else ("Average Recall", "(AR)")
        iou = f"{IOU_THRESHOLDS[0]:0.2f}:{IOU_THRESHOLDS[-1]:0.2f}" if thr is None else f"{thr:0.2f}"
        out.append(line.format(title, kind, iou, area, shown, value))
    return out


def per_class(ev: Evaluation) -> dict[int, dict[str, float]]:
    """Per category: AP, AP50, AP75 and AR at the last max_dets, area "all" (-1 without positive GT)."""
    p = ev.precision[:, :, :, 0, -1]
    r = ev.recall[:, :, 0, -1]
    t50 = np.where(IOU_THRESHOLDS == 0.5)[0]
    t75 = np.where(IOU_THRESHOLDS == 0.75)[0]
    out = {}
    for k, c in enumerate(ev.categories.tolist()):
        out[c] = {
            "ap": _mean_valid(p[:, :, k]),
            "ap50": _mean_valid(p[t50, :, k]),
            "ap75": _mean_valid(p[t75, :, k]),
            "ar100": _mean_valid(r[:, k]),
        }
    return out


def image_average_precision(
    p: PackedPredictions,
    g: PackedGroundTruth,
    blocks: K.Blocks,
    status: np.ndarray,
    area: tuple[float, float] = AREA_RANGES[0],
    penalize_absent: bool = False,
) -> np.ndarray:
    """COCO AP of each image alone (``map_reward``) from one area range's (1, T, P) status."""
    out = np.empty(p.offsets.size - 1)
    K.image_average_precision(
        blocks,
        status,
        p.offsets,
        g.crowd,
        g.area,
        np.array([area[0]]),
        np.array([area[1]]),
        RECALL_THRESHOLDS,
        bool(penalize_absent),
        out,
    )
    return out
