"""Panoptic quality with the COCO panoptic rules (cocodataset/panopticapi): per image and per dataset.

An image is an int array (H, W, 2) of (category_id, instance_id) per pixel,
the convention of torchmetrics and UViM. ``things`` and ``stuffs`` are the
category ids to score (integers, any int64 value). GT pixels of any other
category are VOID; predicted pixels with a negative category are "no
prediction" (panopticapi's id 0). ``crowd`` is an optional bool (H, W) mask of
GT crowd pixels: the crowd pixels of one category form that category's crowd
region.

Stuff segments (``stuff_segments``): in the (H, W, 2) convention stuff
instance ids are ignored by default (``"merge"``: one segment per stuff
category, as torchmetrics and UViM score). COCO panoptic files give every
segment its own id and panopticapi scores two segments of one stuff category
separately: ``"separate"`` does that, and it is the default of the COCO file
entry points (:func:`load_coco_panoptic`, :func:`pq_compute`, the CLI).

Three levels:

* :func:`pq_reward` / :func:`pq_reward_batch`: the PQ of each image (the
  REINFORCE reward).
* :func:`pq_eval` (or :class:`PQAccumulator` for streaming): the dataset PQ
  that papers report (panopticapi's ``pq_compute`` + ``pq_average``):
  TP/FP/FN and IoU sums per category over all images, then PQ/SQ/RQ for All,
  Things and Stuff. It is not the mean of per-image rewards.
* :func:`pq_compute` and ``python -m rewards.panoptic``: the same from COCO
  panoptic json + PNG folders, printing panopticapi's table.

Example:
    >>> import numpy as np
    >>> from rewards import panoptic
    >>> gt = np.zeros((4, 4, 2), np.int64); gt[:, 2:, 0] = 1  # stuff 0 left, thing 1 right
    >>> pred = gt.copy(); pred[0, 2, 0] = 0  # one pixel wrong: IoUs 8/9 (stuff), 7/8 (thing)
    >>> round(panoptic.pq_reward(pred, gt, things={1}, stuffs={0}), 4)
    0.8819
    >>> panoptic.pq_reward_batch(np.stack([gt, pred]), np.stack([gt, gt]), things={1}, stuffs={0}).round(4).tolist()
    [1.0, 0.8819]
    >>> panoptic.pq_eval([gt, pred], [gt, gt], things={1}, stuffs={0}).all
    PQStats(pq=0.9409722222222222, sq=0.9409722222222222, rq=1.0, n=2)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Literal, NamedTuple, overload

import numpy as np

from rewards import _panoptic_files as files
from rewards import _panoptic_kernels as kernels
from rewards import _png
from rewards._inputs import check_batch_lengths, offsets_from_lengths, to_numpy
from rewards._panoptic_files import CocoPanoptic

__all__ = [
    "ClassPQ",
    "CocoPanoptic",
    "PQAccumulator",
    "PQStats",
    "PanopticEval",
    "PanopticQuality",
    "load_coco_panoptic",
    "main",
    "panoptic_from_id_map",
    "panoptic_from_rgb",
    "pq_compute",
    "pq_eval",
    "pq_reward",
    "pq_reward_batch",
]

StuffSegments = Literal["merge", "separate"]
VOID_CATEGORY = -1
_INT64_MAX = np.iinfo(np.int64).max
# Images are scored in groups of about this many pixels: one kernel call per group
# (small images: no per-image dispatch cost) without concatenating a whole dataset.
_GROUP_PIXELS = 1 << 22
_ALONE_PIXELS = 1 << 16


class PanopticQuality(NamedTuple):
    """Panoptic quality and its factors, each averaged over the scored categories."""

    pq: float
    sq: float
    rq: float


@dataclass(frozen=True)
class PQStats:
    """PQ, SQ, RQ averaged over ``n`` categories (panopticapi's ``pq_average`` row).

    Fractions in [0, 1]. When no category has TP + FP + FN > 0 (``n == 0``) all
    three are 1.0, as :func:`pq_reward` scores an image with nothing to score
    (panopticapi divides by zero there).
    """

    pq: float
    sq: float
    rq: float
    n: int


@dataclass(frozen=True)
class ClassPQ:
    """One category over the dataset: PQ = iou_sum / (tp + fp/2 + fn/2), SQ = iou_sum / tp,
    RQ = tp / (tp + fp/2 + fn/2); all 0.0 when tp + fp + fn == 0 (as panopticapi reports)."""

    pq: float
    sq: float
    rq: float
    tp: int
    fp: int
    fn: int
    iou_sum: float


@dataclass(frozen=True)
class PanopticEval:
    """Dataset-level panoptic quality: All / Things / Stuff rows and every category.

    ``per_class`` holds every scored category (in ``things``/``stuffs`` order
    of ids, or the GT json's order for COCO files).
    """

    all: PQStats
    things: PQStats
    stuff: PQStats
    per_class: dict[int, ClassPQ]
    is_thing: dict[int, bool] = field(default_factory=dict, repr=False)
    names: dict[int, str] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """panopticapi's ``pq_compute`` result: All/Things/Stuff {pq, sq, rq, n} and per_class {pq, sq, rq}.

        Example:
            >>> import numpy as np
            >>> gt = np.zeros((2, 2, 2), np.int64)
            >>> pq_eval([gt], [gt], things=[], stuffs=[0]).to_dict()["Stuff"]
            {'pq': 1.0, 'sq': 1.0, 'rq': 1.0, 'n': 1}
        """
        rows = {name: vars(getattr(self, attr)).copy() for name, attr in _ROWS}
        rows["per_class"] = {c: {"pq": s.pq, "sq": s.sq, "rq": s.rq} for c, s in self.per_class.items()}
        return rows

    def table(self, per_class: bool = False, names: Mapping[int, str] | None = None) -> str:
        """panopticapi's printed table (percentages, one decimal); ``per_class`` adds a row per category.

        Example:
            >>> import numpy as np
            >>> gt = np.zeros((2, 2, 2), np.int64)
            >>> print(pq_eval([gt], [gt], things=[1], stuffs=[0]).table())
                      |    PQ     SQ     RQ     N
            --------------------------------------
            All       | 100.0  100.0  100.0     1
            Things    | 100.0  100.0  100.0     0
            Stuff     | 100.0  100.0  100.0     1
        """
        lines = ["{:10s}| {:>5s}  {:>5s}  {:>5s} {:>5s}".format("", "PQ", "SQ", "RQ", "N"), "-" * 38]
        for name, attr in _ROWS:
            s = getattr(self, attr)
            lines.append(f"{name:10s}| {100 * s.pq:5.1f}  {100 * s.sq:5.1f}  {100 * s.rq:5.1f} {s.n:5d}")
        if per_class:
            lines += [
                "",
                f"{'category':28s}| {'PQ':>5s}  {'SQ':>5s}  {'RQ':>5s} {'TP':>6s} {'FP':>6s} {'FN':>6s}",
            ]
            lines.append("-" * 66)
            for c, s in self.per_class.items():
                name = (names if names is not None else self.names).get(c, "")
                label = f"{c} {name} ({'thing' if self.is_thing.get(c) else 'stuff'})"
                lines.append(
                    f"{label[:28]:28s}| {100 * s.pq:5.1f}  {100 * s.sq:5.1f}  {100 * s.rq:5.1f} "
                    f"{s.tp:6d} {s.fp:6d} {s.fn:6d}"
                )
        return "\n".join(lines)


_ROWS = (("All", "all"), ("Things", "things"), ("Stuff", "stuff"))


# ---------------------------------------------------------------- validation


def _category_ids(value: Any, name: str) -> list[int]:
    """A collection of integer category ids (>= 0, int64); str, floats and bools rejected."""
    if value is None or isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise TypeError(
            f"`{name}` must be a collection of integer category ids (set, list, array), "
            f"got {type(value).__name__} {value!r}"
        )
    items = to_numpy(value, name).ravel().tolist() if hasattr(value, "shape") else list(value)
    out = []
    for c in items:
        if isinstance(c, (bool, np.bool_)) or not isinstance(c, (int, np.integer)):
            raise TypeError(f"`{name}` holds {c!r} ({type(c).__name__}): category ids must be integers")
        c = int(c)
        if c < 0 or c > _INT64_MAX:
            raise ValueError(
                f"`{name}` holds category {c}: ids must be in [0, 2**63) (negative predicted categories "
                "mean 'no prediction')"
            )
        out.append(c)
    return out


class _Categories(NamedTuple):
    ids: np.ndarray  # (C,) int64 sorted: what the kernel searches
    is_thing: np.ndarray  # (C,) bool
    order: list[int]  # category ids in reporting order


def _categories(things: Any, stuffs: Any, order: Sequence[int] | None = None) -> _Categories:
    things_list = _category_ids(things, "things")
    stuffs_list = _category_ids(stuffs, "stuffs")
    overlap = set(things_list) & set(stuffs_list)
    if overlap:
        raise ValueError(f"`things` and `stuffs` overlap on categories {sorted(overlap)}")
    every = sorted(set(things_list) | set(stuffs_list))
    if not every:
        raise ValueError("`things` and `stuffs` are both empty: nothing to score")
    ids = np.array(every, np.int64)
    is_thing = np.isin(ids, np.array(things_list, np.int64))
    return _Categories(ids, is_thing, list(order) if order is not None else every)


def _stuff_mode(value: Any) -> bool:
    if value not in ("merge", "separate"):
        raise ValueError(f"`stuff_segments` must be 'merge' or 'separate', got {value!r}")
    return value == "separate"


def _image(x: Any, name: str) -> np.ndarray:
    a = to_numpy(x, name)
    if a.ndim != 3 or a.shape[-1] != 2:
        raise ValueError(f"`{name}` must have shape (H, W, 2) of (category_id, instance_id), got {a.shape}")
    return _integer_pixels(a, name)


def _integer_pixels(a: np.ndarray, name: str) -> np.ndarray:
    if a.dtype.kind not in "iu":
        raise ValueError(f"`{name}` must be an integer array, got dtype {a.dtype}")
    if a.dtype == np.uint64 and a.size and a.max() > _INT64_MAX:
        raise ValueError(
            f"`{name}` holds {int(a.max())}, beyond int64: uint64 values that wrap to negative would read "
            "as 'no prediction'"
        )
    return a


def _pixels(a: np.ndarray) -> np.ndarray:
    """(..., 2) -> contiguous (N, 2), int32 or int64 (the two compiled variants)."""
    dtype = a.dtype if a.dtype in (np.int32, np.int64) else np.int64
    return np.ascontiguousarray(a, dtype=dtype).reshape(-1, 2)


def _crowd(x: Any, shape: tuple, name: str) -> np.ndarray:
    c = to_numpy(x, name)
    if c.shape != shape:
        raise ValueError(f"`{name}` must have shape {shape} to match the images, got {c.shape}")
    if c.dtype.kind not in "biu":
        raise ValueError(f"`{name}` must be a bool mask, got dtype {c.dtype}")
    return np.ascontiguousarray(c, dtype=np.bool_).reshape(-1)


def _batch(
    preds: Any, gts: Any, crowd: Any
) -> Iterator[tuple[list[int], list[int], np.ndarray, np.ndarray, np.ndarray]]:
    """Validated groups of images: (image indices, pixels per image, pred pixels, gt pixels, crowd pixels or empty)."""
    if hasattr(preds, "shape") and hasattr(gts, "shape"):
        p = _integer_pixels(to_numpy(preds, "preds"), "preds")
        g = _integer_pixels(to_numpy(gts, "gts"), "gts")
        if p.ndim != 4 or p.shape[-1] != 2:
            raise ValueError(f"`preds` must have shape (B, H, W, 2), got {p.shape}")
        if g.shape != p.shape:
            raise ValueError(f"`preds` has shape {p.shape} but `gts` has shape {g.shape}")
        c = np.zeros(0, np.bool_) if crowd is None else _crowd(crowd, p.shape[:3], "crowd")
        p_px, g_px = _same_dtype(_pixels(p), _pixels(g))
        yield list(range(p.shape[0])), [p.shape[1] * p.shape[2]] * p.shape[0], p_px, g_px, c
        return
    n = check_batch_lengths(preds, gts, "preds", "gts")
    if crowd is not None and (not hasattr(crowd, "__len__") or len(crowd) != n):
        raise ValueError(f"`crowd` must hold one mask (or None) per image: {n} images")
    group: list[tuple[int, np.ndarray, np.ndarray, np.ndarray | None]] = []
    size = 0
    for i in range(n):
        a = _image(preds[i], f"preds[{i}]")
        b = _image(gts[i], f"gts[{i}]")
        if a.shape != b.shape:
            raise ValueError(f"`preds[{i}]` has shape {a.shape} but `gts[{i}]` has shape {b.shape}")
        ci = None if crowd is None or crowd[i] is None else _crowd(crowd[i], b.shape[:2], f"crowd[{i}]")
        pixels = a.shape[0] * a.shape[1]
        if pixels >= _ALONE_PIXELS:  # large: scored alone, without a concatenation copy
            if group:
                yield _concatenated(group)
                group, size = [], 0
            yield _concatenated([(i, a, b, ci)])
            continue
        group.append((i, a, b, ci))
        size += pixels
        if size >= _GROUP_PIXELS:
            yield _concatenated(group)
            group, size = [], 0
    if group:
        yield _concatenated(group)
    if n == 0:
        yield [], [], np.zeros((0, 2), np.int64), np.zeros((0, 2), np.int64), np.zeros(0, np.bool_)


def _same_dtype(p: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if p.dtype != g.dtype:
        return p.astype(np.int64), g.astype(np.int64)
    return p, g


def _concatenated(group: list) -> tuple[list[int], list[int], np.ndarray, np.ndarray, np.ndarray]:
    index = [i for i, *_ in group]
    sizes = [a.shape[0] * a.shape[1] for _, a, _, _ in group]
    if len(group) == 1:
        _, a, b, c = group[0]
        p_px, g_px = _same_dtype(_pixels(a), _pixels(b))
        return index, sizes, p_px, g_px, (np.zeros(0, np.bool_) if c is None else c)
    p_px = np.concatenate([_pixels(a) for _, a, _, _ in group])
    g_px = np.concatenate([_pixels(b) for _, _, b, _ in group])
    if all(c is None for *_, c in group):
        c_px = np.zeros(0, np.bool_)
    else:
        c_px = np.concatenate(
            [np.zeros(a.shape[0] * a.shape[1], np.bool_) if c is None else c for _, a, _, c in group]
        )
    p_px, g_px = _same_dtype(p_px, g_px)
    return index, sizes, p_px, g_px, c_px


def _packed(px: np.ndarray) -> np.ndarray:
    """int32 (N, 2) pixels viewed as one int64 per pixel (no copy); empty for int64 input."""
    return px.view(np.int64).reshape(-1) if px.dtype == np.int32 and px.shape[0] else np.zeros(0, np.int64)


def _score(p_px, g_px, c_px, sizes, cats: _Categories, separate: bool, counts, iou_sum, names) -> np.ndarray:
    """One kernel call over images stored back to back; raises the first image's error."""
    out = np.empty((len(sizes), 3))
    errors = np.zeros((len(sizes), 2), np.int64)
    packed_p, packed_g = _packed(p_px), _packed(g_px)
    kernels.pq_images(
        p_px,
        g_px,
        c_px,
        packed_p,
        packed_g,
        offsets_from_lengths(sizes),
        cats.ids,
        cats.is_thing,
        separate,
        out,
        counts,
        iou_sum,
        errors,
    )
    bad = np.flatnonzero(errors[:, 0])
    if bad.size:
        b = int(bad[0])
        code, value = (int(v) for v in errors[b])
        pred_name, gt_name = names(b)
        if code == kernels.ERR_UNKNOWN_PRED_CATEGORY:
            raise ValueError(
                f"`{pred_name}` contains category {value}, which is neither in `things` nor in `stuffs` "
                "(use a negative category for unlabeled pixels)"
            )
        raise ValueError(f"`{pred_name}` or `{gt_name}` has instance id {value} outside the int32 range")
    return out


def _run_batch(preds, gts, crowd, cats: _Categories, separate: bool, counts, iou_sum) -> np.ndarray:
    results = []
    for index, sizes, p_px, g_px, c_px in _batch(preds, gts, crowd):
        results.append(
            _score(
                p_px,
                g_px,
                c_px,
                sizes,
                cats,
                separate,
                counts,
                iou_sum,
                lambda b, index=index: (f"preds[{index[b]}]", f"gts[{index[b]}]"),
            )
        )
    return np.concatenate(results) if results else np.empty((0, 3))


def _empty_sums(cats: _Categories) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((cats.ids.size, 3), np.int64), np.zeros(cats.ids.size)


# ---------------------------------------------------------------- per image


@overload
def pq_reward(
    pred: Any,
    gt: Any,
    *,
    things: Iterable[int],
    stuffs: Iterable[int],
    crowd: Any = ...,
    stuff_segments: StuffSegments = ...,
    return_sq_rq: Literal[False] = ...,
) -> float: ...
@overload
def pq_reward(
    pred: Any,
    gt: Any,
    *,
    things: Iterable[int],
    stuffs: Iterable[int],
    crowd: Any = ...,
    stuff_segments: StuffSegments = ...,
    return_sq_rq: Literal[True],
) -> PanopticQuality: ...
@overload
def pq_reward(
    pred: Any,
    gt: Any,
    *,
    things: Iterable[int],
    stuffs: Iterable[int],
    crowd: Any = ...,
    stuff_segments: StuffSegments = ...,
    return_sq_rq: bool,
) -> float | PanopticQuality: ...


def pq_reward(
    pred: Any,
    gt: Any,
    *,
    things: Iterable[int],
    stuffs: Iterable[int],
    crowd: Any = None,
    stuff_segments: StuffSegments = "merge",
    return_sq_rq: bool = False,
) -> float | PanopticQuality:
    """Panoptic quality of one image under the COCO panoptic rules.

    * A GT and a predicted segment of the same category match when IoU > 0.5,
      GT not crowd; union = |p| + |g| - |p ∩ g| - |p ∩ VOID|.
    * FN: unmatched non-crowd GT segments. FP: unmatched predicted segments,
      except those more than half on VOID plus the same category's crowd.
    * PQ_c = sum IoU(TP) / (TP + FP/2 + FN/2); the reward is the mean over
      categories with TP + FP + FN > 0, and 1.0 when there is nothing to score.

    ``stuff_segments="separate"`` scores stuff pixels with different instance
    ids as different segments (COCO segment ids: panopticapi's numbers for
    images from :func:`panoptic_from_id_map`); the default ``"merge"`` makes
    one segment per stuff category (torchmetrics, UViM).
    ``return_sq_rq=True`` returns ``PanopticQuality(pq, sq, rq)`` (each a mean
    over the same categories, as panopticapi reports them).

    Inputs: int arrays of any integer dtype (uint64 values beyond int64 are
    rejected); instance ids must fit int32 where they name a segment; category
    ids are any integers >= 0 (memory does not depend on their values).

    Example:
        >>> import numpy as np
        >>> gt = np.zeros((2, 2, 2), np.int64)
        >>> pq_reward(gt, gt, things=[], stuffs=[0], return_sq_rq=True)
        PanopticQuality(pq=1.0, sq=1.0, rq=1.0)
        >>> pred = gt.copy(); pred[0, :, 1] = 7  # the stuff region split into two segments
        >>> pq_reward(pred, gt, things=[], stuffs=[0]), pq_reward(pred, gt, things=[], stuffs=[0], stuff_segments="separate")
        (1.0, 0.0)
    """
    p = _image(pred, "pred")
    g = _image(gt, "gt")
    if p.shape != g.shape:
        raise ValueError(f"`pred` has shape {p.shape} but `gt` has shape {g.shape}")
    c_px = _crowd(crowd, g.shape[:2], "crowd") if crowd is not None else np.zeros(0, np.bool_)
    cats = _categories(things, stuffs)
    separate = _stuff_mode(stuff_segments)
    p_px, g_px = _same_dtype(_pixels(p), _pixels(g))
    counts, iou_sum = _empty_sums(cats)
    out = _score(
        p_px, g_px, c_px, [g.shape[0] * g.shape[1]], cats, separate, counts, iou_sum, lambda b: ("pred", "gt")
    )
    result = PanopticQuality(*map(float, out[0]))
    return result if return_sq_rq else result.pq


def pq_reward_batch(
    preds: Any,
    gts: Any,
    *,
    things: Iterable[int],
    stuffs: Iterable[int],
    crowd: Any = None,
    stuff_segments: StuffSegments = "merge",
    return_sq_rq: bool = False,
) -> np.ndarray:
    """``pq_reward`` of each image, one compiled pass over all pixels.

    ``preds``/``gts``: stacked (B, H, W, 2) arrays, or sequences of (H_i, W_i, 2)
    arrays of different sizes. ``crowd``: (B, H, W) or a sequence of (H_i, W_i)
    masks (entries may be None). Returns float64 (B,), or (B, 3) columns
    pq, sq, rq with ``return_sq_rq=True``.

    Example:
        >>> import numpy as np
        >>> gt = np.zeros((3, 8, 8, 2), np.int32)
        >>> pq_reward_batch(gt, gt, things=[], stuffs=[0]).tolist()
        [1.0, 1.0, 1.0]
    """
    cats = _categories(things, stuffs)
    separate = _stuff_mode(stuff_segments)
    counts, iou_sum = _empty_sums(cats)
    out = _run_batch(preds, gts, crowd, cats, separate, counts, iou_sum)
    return out if return_sq_rq else out[:, 0].copy()


# ---------------------------------------------------------------- dataset level


def _average(cats: _Categories, counts: np.ndarray, iou_sum: np.ndarray) -> PanopticEval:
    """panopticapi's ``pq_average`` for All, Things and Stuff, plus every category."""
    index = {int(c): i for i, c in enumerate(cats.ids.tolist())}
    per_class: dict[int, ClassPQ] = {}
    is_thing: dict[int, bool] = {}
    for c in cats.order:
        i = index[c]
        tp, fp, fn = (int(v) for v in counts[i])
        iou = float(iou_sum[i])
        is_thing[c] = bool(cats.is_thing[i])
        if tp + fp + fn == 0:
            per_class[c] = ClassPQ(0.0, 0.0, 0.0, 0, 0, 0, 0.0)
            continue
        denom = tp + 0.5 * fp + 0.5 * fn
        per_class[c] = ClassPQ(iou / denom, iou / tp if tp else 0.0, tp / denom, tp, fp, fn, iou)

    def row(select: bool | None) -> PQStats:
        pq = sq = rq = 0.0
        n = 0
        for c, s in per_class.items():
            if (select is not None and is_thing[c] != select) or s.tp + s.fp + s.fn == 0:
                continue
            n += 1
            pq += s.pq
            sq += s.sq
            rq += s.rq
        return PQStats(1.0, 1.0, 1.0, 0) if n == 0 else PQStats(pq / n, sq / n, rq / n, n)

    return PanopticEval(row(None), row(True), row(False), per_class, is_thing)


class PQAccumulator:
    """Streaming :func:`pq_eval`: ``update`` batch after batch, ``compute`` the dataset result.

    Holds only the per-category sums (TP, FP, FN, IoU), never the images.

    Example:
        >>> import numpy as np
        >>> acc = PQAccumulator(things=[1], stuffs=[0])
        >>> gt = np.zeros((1, 4, 4, 2), np.int32)
        >>> acc.update(gt, gt)
        >>> acc.update([gt[0]], [gt[0]], crowd=[None])
        >>> acc.compute().per_class[0]
        ClassPQ(pq=1.0, sq=1.0, rq=1.0, tp=2, fp=0, fn=0, iou_sum=2.0)
    """

    def __init__(
        self, *, things: Iterable[int], stuffs: Iterable[int], stuff_segments: StuffSegments = "merge"
    ) -> None:
        self._cats = _categories(things, stuffs)
        self._separate = _stuff_mode(stuff_segments)
        self._counts, self._iou = _empty_sums(self._cats)

    def update(self, preds: Any, gts: Any, crowd: Any = None) -> None:
        """Adds a batch (as :func:`pq_reward_batch` takes it); a batch with bad input adds nothing."""
        counts, iou = _empty_sums(self._cats)
        _run_batch(preds, gts, crowd, self._cats, self._separate, counts, iou)
        self._counts += counts
        self._iou += iou

    def compute(self) -> PanopticEval:
        """The dataset result of everything added so far."""
        return _average(self._cats, self._counts, self._iou)


def pq_eval(
    preds: Any,
    gts: Any,
    *,
    things: Iterable[int],
    stuffs: Iterable[int],
    crowd: Any = None,
    stuff_segments: StuffSegments = "merge",
) -> PanopticEval:
    """Dataset-level panoptic quality (panopticapi's ``pq_compute`` + ``pq_average``) of arrays.

    Per category, IoUs of true positives and TP/FP/FN counts are summed over
    all images (one compiled pass per image, the rules of :func:`pq_reward`);
    then PQ_c = ΣIoU / (TP + FP/2 + FN/2), SQ_c = ΣIoU / TP, RQ_c = TP / (TP +
    FP/2 + FN/2), averaged over the categories with TP + FP + FN > 0 for All,
    Things and Stuff. Inputs as :func:`pq_reward_batch`. For one image the
    All row equals :func:`pq_reward` with ``return_sq_rq=True``.

    Example:
        >>> import numpy as np
        >>> gt = np.zeros((2, 4, 4, 2), np.int32); gt[:, :2, :, 0] = 1; gt[:, :2, :, 1] = 5
        >>> pred = gt.copy(); pred[1, :2, :, 0] = 0  # second image misses the thing
        >>> result = pq_eval(pred, gt, things=[1], stuffs=[0])
        >>> result.things, result.per_class[1].fn
        (PQStats(pq=0.6666666666666666, sq=1.0, rq=0.6666666666666666, n=1), 1)
    """
    acc = PQAccumulator(things=things, stuffs=stuffs, stuff_segments=stuff_segments)
    acc.update(preds, gts, crowd)
    return acc.compute()


# ---------------------------------------------------------------- COCO panoptic files


def load_coco_panoptic(
    json_path: str | os.PathLike,
    png_folder: str | os.PathLike | None = None,
    *,
    categories: Mapping[int, dict] | None = None,
) -> CocoPanoptic:
    """Reads and validates a COCO panoptic json (``.json`` or ``.json.gz``); PNGs decode on demand.

    ``png_folder`` defaults to the json path without ``.json`` (panopticapi's
    default). ``categories`` (id -> category dict) checks the segments'
    category ids when the json has no ``categories`` of its own (a
    prediction json). ``data.image(i)`` returns image i as ((H, W, 2)
    (category_id, segment id), crowd (H, W)); score such images with
    ``stuff_segments="separate"`` to get panopticapi's numbers.

    Errors (``ValueError``/``FileNotFoundError``) name the file, image and
    segment: a missing folder or PNG, duplicate image or segment ids, an
    unknown category id, a segment id outside [1, 256**3), a segment in the
    json but not in the PNG or the reverse, a PNG that is not 8-bit RGB(A).

    Example:
        >>> import tempfile
        >>> from rewards._panoptic_files import write_example_dataset
        >>> gt_json, _ = write_example_dataset(tempfile.mkdtemp())
        >>> gt = load_coco_panoptic(gt_json)
        >>> len(gt), sorted(gt.categories)
        (2, [1, 187])
        >>> pan, crowd = gt.image(0)
        >>> pan[0, :4].tolist(), bool(crowd.any())
        ([[-1, 0], [187, 10], [187, 10], [1, 20]], False)
    """
    return files.load(json_path, png_folder, categories)


def panoptic_from_id_map(id_map: Any, segments_info: Sequence[Mapping]) -> tuple[np.ndarray, np.ndarray]:
    """COCO panoptic annotation (id map + segments_info) -> our ((H, W, 2), crowd (H, W)).

    ``id_map`` (H, W) holds a segment id per pixel (0 = unlabeled);
    ``segments_info`` lists dicts with integer "id" and "category_id" and
    optional "iscrowd" (0/1). Unlabeled pixels get category -1 (VOID); the
    instance id is the segment id: score with ``stuff_segments="separate"``
    for panopticapi's numbers (several segments of one stuff category).
    A segment in the map but not in ``segments_info`` or the reverse, a
    missing key or a non-integer id raises naming ``segments_info[j]``.

    Example:
        >>> import numpy as np
        >>> ids = np.array([[0, 5], [7, 7]])
        >>> pan, crowd = panoptic_from_id_map(ids, [{"id": 5, "category_id": 3}, {"id": 7, "category_id": 9, "iscrowd": 1}])
        >>> pan[..., 0].tolist(), crowd.tolist()
        ([[-1, 3], [9, 9]], [[False, False], [True, True]])
    """
    return files.panoptic_from_id_map(id_map, segments_info)


def panoptic_from_rgb(png: Any, segments_info: Sequence[Mapping]) -> tuple[np.ndarray, np.ndarray]:
    """COCO panoptic PNG as an integer RGB(A) array (H, W, 3 or 4), id = R + 256 G + 256² B, -> our form.

    Colour values must be integers in 0..255 (float arrays are rejected:
    a float PNG array is a decoding mistake, not a segment map).

    Example:
        >>> import numpy as np
        >>> rgb = np.zeros((1, 2, 3), np.uint8); rgb[0, 1] = (1, 1, 0)  # id 257
        >>> pan, _ = panoptic_from_rgb(rgb, [{"id": 257, "category_id": 4}])
        >>> pan.tolist()
        [[[-1, 0], [4, 257]]]
    """
    return files.panoptic_from_rgb(png, segments_info)


@dataclass
class _Timing:
    load: float = 0.0
    decode: float = 0.0
    score: float = 0.0


def _load_kernels() -> None:
    """Loads (or compiles) the kernels of the COCO file path, so timings below exclude it."""
    ids = np.zeros(1, np.int32)
    pan = np.zeros((1, 2), np.int32)
    _png._unfilter_ids(np.zeros(4, np.uint8), 1, 1, 3, ids)
    kernels.ids_to_panoptic(
        ids,
        np.ones(1, np.int64),
        np.ones(1, np.int64),
        np.zeros(1, np.bool_),
        pan,
        np.zeros(1, np.bool_),
        np.zeros(1, np.int64),
    )
    cats = _categories([1], [])
    _score(pan, pan, np.zeros(0, np.bool_), [1], cats, True, *_empty_sums(cats), lambda b: ("", ""))


def pq_compute(
    gt_json_file: str | os.PathLike,
    pred_json_file: str | os.PathLike,
    gt_folder: str | os.PathLike | None = None,
    pred_folder: str | os.PathLike | None = None,
    *,
    workers: int | None = None,
    stuff_segments: StuffSegments = "separate",
    _timing: _Timing | None = None,
) -> PanopticEval:
    """panopticapi's ``pq_compute`` from COCO panoptic json + PNG folders, exactly, as a :class:`PanopticEval`.

    Folders default to the json path without ``.json`` (as panopticapi). Every
    segment id is its own segment (``stuff_segments="separate"``). Categories
    (and which are things) come from the GT json. ``workers`` threads decode
    and score PNG pairs (default: the CPU count, at most 8). Bad input raises
    ``ValueError`` naming the file, image and segment (see
    :func:`load_coco_panoptic`); besides: a GT image without a prediction, a
    predicted category missing from the GT categories, GT and prediction PNGs
    of different sizes, a GT segment whose json ``area`` differs from its PNG
    pixel count (panopticapi would use the json's). Predictions of images
    the GT lacks are ignored, as panopticapi does, with a ``UserWarning``.
    ``result.to_dict()`` is panopticapi's result dict.

    Example:
        >>> import tempfile, numpy as np
        >>> from rewards._panoptic_files import write_example_dataset
        >>> d = tempfile.mkdtemp()
        >>> gt_json, pred_json = write_example_dataset(d)  # image 2: the sky split into two segments
        >>> result = pq_compute(gt_json, pred_json, workers=1)
        >>> result.stuff.n, round(result.stuff.pq, 4), round(result.things.pq, 4)
        (1, 0.6182, 1.0)
    """
    workers = min(8, os.cpu_count() or 1) if workers is None else workers
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"`workers` must be a positive integer, got {workers!r}")
    separate = _stuff_mode(stuff_segments)
    gt = files.load(gt_json_file, gt_folder)
    if gt.categories is None:
        raise ValueError(f"{gt.json_path}: the ground truth json has no 'categories'")
    pred = files.load(pred_json_file, pred_folder, categories=gt.categories)
    pairs = files.matched_images(gt, pred)
    things = [c for c, info in gt.categories.items() if info["isthing"] == 1]
    stuffs = [c for c in gt.categories if c not in set(things)]
    cats = _categories(things, stuffs, order=list(gt.categories))
    timing = _timing if _timing is not None else _Timing()

    def one(pair: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, float, float]:
        t0 = time.perf_counter()
        g_pan, g_crowd = gt.image(pair[0], check_area=True)
        p_pan, _ = pred.image(pair[1])
        if g_pan.shape != p_pan.shape:
            raise ValueError(
                f"image {gt.annotations[pair[0]]['image_id']}: the prediction PNG "
                f"{pred.png_path(pair[1])} is {p_pan.shape[1]}x{p_pan.shape[0]} but the ground truth PNG "
                f"{gt.png_path(pair[0])} is {g_pan.shape[1]}x{g_pan.shape[0]} (width x height)"
            )
        t1 = time.perf_counter()
        counts, iou = _empty_sums(cats)
        name = (str(pred.png_path(pair[1])), str(gt.png_path(pair[0])))
        p_px, g_px = _same_dtype(p_pan.reshape(-1, 2), g_pan.reshape(-1, 2))
        has_crowd = any(s.get("iscrowd", 0) == 1 for s in gt.annotations[pair[0]]["segments_info"])
        _score(
            p_px,
            g_px,
            g_crowd.reshape(-1) if has_crowd else np.zeros(0, np.bool_),
            [g_crowd.size],
            cats,
            separate,
            counts,
            iou,
            lambda b: name,
        )
        return counts, iou, t1 - t0, time.perf_counter() - t1

    counts, iou_sum = _empty_sums(cats)
    parts: Iterable[tuple[np.ndarray, np.ndarray, float, float]]
    if workers == 1 or len(pairs) <= 1:
        parts = map(one, pairs)
    else:  # zlib and the kernels release the GIL: threads decode and score in parallel
        pool = ThreadPoolExecutor(workers)
        parts = pool.map(one, pairs)
    try:
        for c, s, t_decode, t_score in parts:
            counts += c
            iou_sum += s
            timing.decode += t_decode
            timing.score += t_score
    finally:
        if workers > 1 and len(pairs) > 1:
            pool.shutdown(cancel_futures=True)
    names = {c: str(info.get("name", "")) for c, info in gt.categories.items()}
    return replace(_average(cats, counts, iou_sum), names=names)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m rewards.panoptic``: panopticapi's ``pq_compute`` table from json + PNG folders.

    Exit status 0, or 2 with the error on stderr for bad input.

    Example:
        >>> import tempfile
        >>> from rewards._panoptic_files import write_example_dataset
        >>> d = tempfile.mkdtemp(); gt_json, pred_json = write_example_dataset(d)
        >>> main(["--gt-json", gt_json, "--pred-json", pred_json, "--workers", "1", "--no-timing"])
                  |    PQ     SQ     RQ     N
        --------------------------------------
        All       |  80.9   88.6   90.0     2
        Things    | 100.0  100.0  100.0     1
        Stuff     |  61.8   77.3   80.0     1
        0
    """
    parser = argparse.ArgumentParser(
        prog="python -m rewards.panoptic",
        description="COCO panoptic quality (PQ, SQ, RQ) of a prediction json + PNG folder against the ground "
        "truth, exactly as panopticapi's pq_compute.",
    )
    parser.add_argument("--gt-json", required=True, help="ground-truth panoptic json (may be .json.gz)")
    parser.add_argument("--gt-folder", help="ground-truth PNG folder (default: the json path without .json)")
    parser.add_argument("--pred-json", required=True, help="prediction panoptic json")
    parser.add_argument("--pred-folder", help="prediction PNG folder (default: the json path without .json)")
    parser.add_argument("--json-out", help="write panopticapi's result dict (fractions) to this file")
    parser.add_argument("--per-class", action="store_true", help="also print a row per category")
    parser.add_argument(
        "--workers", type=int, default=None, help="threads decoding PNGs (default: CPUs, max 8)"
    )
    parser.add_argument("--no-timing", action="store_true", help="do not print the time line")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    timing = _Timing()
    _load_kernels()
    timing.load = time.perf_counter() - start
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = pq_compute(
                args.gt_json,
                args.pred_json,
                args.gt_folder,
                args.pred_folder,
                workers=args.workers,
                _timing=timing,
            )
        for w in caught:
            print(f"warning: {w.message}", file=sys.stderr)
        print(result.table(per_class=args.per_class))
        if args.json_out:
            with open(args.json_out, "w") as f:
                json.dump(result.to_dict(), f, indent=1)
    except (ValueError, TypeError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not args.no_timing:
        print(
            f"Time elapsed: {time.perf_counter() - start:0.2f} seconds (kernel load {timing.load:0.2f} s; "
            f"PNG decoding {timing.decode:0.2f} s, scoring {timing.score:0.2f} s, summed over workers)"
        )
    return 0


if __name__ == "__main__":
    from rewards._cli import load_numba_without_scipy

    load_numba_without_scipy()
    sys.exit(main())
