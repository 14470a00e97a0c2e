"""Panoptic quality reward with the COCO panoptic rules (cocodataset/panopticapi).

An image is an int array (H, W, 2) of (category_id, instance_id) per pixel,
the convention of torchmetrics and UViM. ``things`` and ``stuffs`` are the
category ids to score. GT pixels of any other category are VOID; predicted
pixels with a negative category are "no prediction" (panopticapi's id 0).
Stuff instance ids are ignored (one segment per stuff class). ``crowd`` is an
optional bool (H, W) mask of GT crowd pixels: the crowd pixels of one
category form that category's crowd region.

Example:
    >>> import numpy as np
    >>> from rewards import panoptic
    >>> gt = np.zeros((4, 4, 2), np.int64); gt[:, 2:, 0] = 1  # stuff 0 left, thing 1 right
    >>> pred = gt.copy(); pred[0, 2, 0] = 0  # one pixel wrong: IoUs 8/9 (stuff), 7/8 (thing)
    >>> round(panoptic.pq_reward(pred, gt, things={1}, stuffs={0}), 4)
    0.8819
    >>> panoptic.pq_reward_batch(np.stack([gt, pred]), np.stack([gt, gt]), things={1}, stuffs={0}).round(4).tolist()
    [1.0, 0.8819]
"""

from __future__ import annotations

from typing import Any, Iterable, NamedTuple, Sequence

import numpy as np

from rewards import _panoptic_kernels as kernels
from rewards._inputs import check_batch_lengths, to_numpy

__all__ = [
    "PanopticQuality",
    "panoptic_from_id_map",
    "panoptic_from_rgb",
    "pq_reward",
    "pq_reward_batch",
]

VOID_CATEGORY = -1


class PanopticQuality(NamedTuple):
    """Panoptic quality and its factors, each averaged over the scored categories."""

    pq: float
    sq: float
    rq: float


def _categories(things: Iterable[int], stuffs: Iterable[int]) -> tuple[np.ndarray, np.ndarray, int]:
    """Dense lookup category id -> index (or -1), and which indices are things."""
    things_list = sorted({int(c) for c in things})
    stuffs_list = sorted({int(c) for c in stuffs})
    overlap = set(things_list) & set(stuffs_list)
    if overlap:
        raise ValueError(f"`things` and `stuffs` overlap on categories {sorted(overlap)}")
    every = things_list + stuffs_list
    if not every:
        raise ValueError("`things` and `stuffs` are both empty: nothing to score")
    if min(every) < 0:
        raise ValueError(f"category ids in `things`/`stuffs` must be >= 0, got {min(every)}")
    lookup = np.full(max(every) + 1, -1, np.int64)
    lookup[every] = np.arange(len(every))
    is_thing = np.zeros(len(every), np.bool_)
    is_thing[: len(things_list)] = True
    return lookup, is_thing, len(every)


def _image(x: Any, name: str) -> np.ndarray:
    a = to_numpy(x, name)
    if a.ndim != 3 or a.shape[-1] != 2:
        raise ValueError(f"`{name}` must have shape (H, W, 2) of (category_id, instance_id), got {a.shape}")
    if a.dtype.kind not in "iu":
        raise ValueError(f"`{name}` must be an integer array, got dtype {a.dtype}")
    return a


def _pixels(a: np.ndarray) -> np.ndarray:
    """(…, 2) -> contiguous (N, 2), int32 or int64 (the two compiled variants)."""
    dtype = a.dtype if a.dtype in (np.int32, np.int64) else np.int64
    return np.ascontiguousarray(a, dtype=dtype).reshape(-1, 2)


def _crowd(x: Any, shape: tuple, name: str) -> np.ndarray:
    c = to_numpy(x, name)
    if c.shape != shape:
        raise ValueError(f"`{name}` must have shape {shape} to match the images, got {c.shape}")
    if c.dtype.kind not in "biu":
        raise ValueError(f"`{name}` must be a bool mask, got dtype {c.dtype}")
    return np.ascontiguousarray(c, dtype=np.bool_).reshape(-1)


def _run(pred_px, gt_px, crowd_px, offsets, things, stuffs, where):
    lookup, is_thing, n_categories = _categories(things, stuffs)
    n_images = offsets.size - 1
    out = np.empty((n_images, 3))
    errors = np.zeros((n_images, 2), np.int64)
    if pred_px.dtype != gt_px.dtype:
        pred_px, gt_px = pred_px.astype(np.int64), gt_px.astype(np.int64)
    kernels.pq_batch(pred_px, gt_px, crowd_px, offsets, lookup, is_thing, n_categories, out, errors)
    bad = np.flatnonzero(errors[:, 0])
    if bad.size:
        i = int(bad[0])
        name = where(i)
        code, value = errors[i]
        if code == kernels.UNKNOWN_PRED_CATEGORY:
            raise ValueError(
                f"`{name[0]}` contains category {value}, which is neither in `things` nor in `stuffs` "
                "(use a negative category for unlabeled pixels)"
            )
        raise ValueError(f"`{name[0]}` or `{name[1]}` has instance id {value} outside the int32 range")
    return out


def pq_reward(
    pred: Any,
    gt: Any,
    *,
    things: Iterable[int],
    stuffs: Iterable[int],
    crowd: Any = None,
    return_sq_rq: bool = False,
) -> float | PanopticQuality:
    """Panoptic quality of one image under the COCO panoptic rules.

    * A GT and a predicted segment of the same category match when IoU > 0.5,
      GT not crowd; union = |p| + |g| - |p ∩ g| - |p ∩ VOID|.
    * FN: unmatched non-crowd GT segments. FP: unmatched predicted segments,
      except those more than half on VOID plus the same category's crowd.
    * PQ_c = sum IoU(TP) / (TP + FP/2 + FN/2); the reward is the mean over
      categories with TP + FP + FN > 0, and 1.0 when there is nothing to score.

    ``return_sq_rq=True`` returns ``PanopticQuality(pq, sq, rq)`` (each a mean
    over the same categories, as panopticapi reports them).

    Example:
        >>> import numpy as np
        >>> gt = np.zeros((2, 2, 2), np.int64)
        >>> pq_reward(gt, gt, things=[], stuffs=[0], return_sq_rq=True)
        PanopticQuality(pq=1.0, sq=1.0, rq=1.0)
    """
    p = _image(pred, "pred")
    g = _image(gt, "gt")
    if p.shape != g.shape:
        raise ValueError(f"`pred` has shape {p.shape} but `gt` has shape {g.shape}")
    crowd_px = _crowd(crowd, g.shape[:2], "crowd") if crowd is not None else np.zeros(0, np.bool_)
    offsets = np.array([0, g.shape[0] * g.shape[1]], np.int64)
    out = _run(_pixels(p), _pixels(g), crowd_px, offsets, things, stuffs, lambda i: ("pred", "gt"))
    result = PanopticQuality(*map(float, out[0]))
    return result if return_sq_rq else result.pq


def pq_reward_batch(
    preds: Any,
    gts: Any,
    *,
    things: Iterable[int],
    stuffs: Iterable[int],
    crowd: Any = None,
    return_sq_rq: bool = False,
) -> np.ndarray:
    """``pq_reward`` of each image, one parallel compiled pass over all pixels.

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
    stacked = isinstance(preds, np.ndarray) or hasattr(preds, "shape")
    if stacked:
        p = to_numpy(preds, "preds")
        g = to_numpy(gts, "gts")
        if p.ndim != 4 or p.shape[-1] != 2:
            raise ValueError(f"`preds` must have shape (B, H, W, 2), got {p.shape}")
        if g.shape != p.shape:
            raise ValueError(f"`preds` has shape {p.shape} but `gts` has shape {g.shape}")
        for a, name in ((p, "preds"), (g, "gts")):
            if a.dtype.kind not in "iu":
                raise ValueError(f"`{name}` must be an integer array, got dtype {a.dtype}")
        sizes = [p.shape[1] * p.shape[2]] * p.shape[0]
        pred_px, gt_px = _pixels(p), _pixels(g)
        if crowd is not None:
            crowd_px = _crowd(crowd, p.shape[:3], "crowd")
        else:
            crowd_px = np.zeros(0, np.bool_)
    else:
        n = check_batch_lengths(preds, gts, "preds", "gts")
        ps = [_image(x, f"preds[{i}]") for i, x in enumerate(preds)]
        gs = [_image(x, f"gts[{i}]") for i, x in enumerate(gts)]
        for i, (a, b) in enumerate(zip(ps, gs)):
            if a.shape != b.shape:
                raise ValueError(f"`preds[{i}]` has shape {a.shape} but `gts[{i}]` has shape {b.shape}")
        sizes = [a.shape[0] * a.shape[1] for a in ps]
        pred_px = _pixels(np.concatenate([a.reshape(-1, 2) for a in ps])) if n else np.zeros((0, 2), np.int64)
        gt_px = _pixels(np.concatenate([b.reshape(-1, 2) for b in gs])) if n else np.zeros((0, 2), np.int64)
        if crowd is not None:
            if len(crowd) != n:
                raise ValueError(f"`crowd` has {len(crowd)} masks but `preds` has {n} images")
            crowd_px = np.concatenate([
                np.zeros(s, np.bool_) if c is None else _crowd(c, gs[i].shape[:2], f"crowd[{i}]")
                for i, (c, s) in enumerate(zip(crowd, sizes))
            ]) if n else np.zeros(0, np.bool_)
        else:
            crowd_px = np.zeros(0, np.bool_)
    offsets = np.zeros(len(sizes) + 1, np.int64)
    np.cumsum(sizes, out=offsets[1:])
    out = _run(pred_px, gt_px, crowd_px, offsets, things, stuffs, lambda i: (f"preds[{i}]", f"gts[{i}]"))
    return out if return_sq_rq else out[:, 0].copy()


# ---------------------------------------------------------------- converters


def panoptic_from_id_map(
    id_map: Any, segments_info: Sequence[dict]
) -> tuple[np.ndarray, np.ndarray]:
    """COCO panoptic annotation (id map + segments_info) -> our ((H, W, 2), crowd (H, W)).

    ``id_map`` (H, W) holds a segment id per pixel (0 = unlabeled);
    ``segments_info`` lists dicts with "id", "category_id" and optional
    "iscrowd". Unlabeled pixels get category -1 (VOID); the instance id is the
    segment id.

    Example:
        >>> import numpy as np
        >>> ids = np.array([[0, 5], [7, 7]])
        >>> pan, crowd = panoptic_from_id_map(ids, [{"id": 5, "category_id": 3}, {"id": 7, "category_id": 9, "iscrowd": 1}])
        >>> pan[..., 0].tolist(), crowd.tolist()
        ([[-1, 3], [9, 9]], [[False, False], [True, True]])
    """
    ids = to_numpy(id_map, "id_map")
    if ids.ndim != 2 or ids.dtype.kind not in "iu":
        raise ValueError(f"`id_map` must be an integer (H, W) array, got {ids.dtype} {ids.shape}")
    seg_ids = np.array([int(s["id"]) for s in segments_info] + [0], np.int64)
    if len(set(seg_ids.tolist())) != seg_ids.size:
        raise ValueError("`segments_info` has duplicate ids (or uses the reserved id 0)")
    cats = np.array([int(s["category_id"]) for s in segments_info] + [VOID_CATEGORY], np.int64)
    crowds = np.array([bool(s.get("iscrowd", 0)) for s in segments_info] + [False])
    order = np.argsort(seg_ids)
    pos = np.searchsorted(seg_ids[order], ids)
    pos = np.minimum(pos, seg_ids.size - 1)
    found = seg_ids[order][pos] == ids
    if not found.all():
        missing = np.unique(ids[~found])[:5].tolist()
        raise ValueError(f"`id_map` has segment ids {missing} missing from `segments_info`")
    idx = order[pos]
    panoptic = np.stack([cats[idx], ids.astype(np.int64)], axis=-1)
    return panoptic, crowds[idx]


def panoptic_from_rgb(png: Any, segments_info: Sequence[dict]) -> tuple[np.ndarray, np.ndarray]:
    """COCO panoptic PNG as an RGB array (H, W, 3), id = R + 256 G + 256² B, -> our form.

    Example:
        >>> import numpy as np
        >>> rgb = np.zeros((1, 2, 3), np.uint8); rgb[0, 1] = (1, 1, 0)  # id 257
        >>> pan, _ = panoptic_from_rgb(rgb, [{"id": 257, "category_id": 4}])
        >>> pan.tolist()
        [[[-1, 0], [4, 257]]]
    """
    rgb = to_numpy(png, "png")
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise ValueError(f"`png` must have shape (H, W, 3), got {rgb.shape}")
    rgb = rgb.astype(np.int64)
    ids = rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]
    return panoptic_from_id_map(ids, segments_info)
