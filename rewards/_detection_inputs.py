"""Validation and packing of detection examples into flat arrays plus offsets.

A batch of ragged per-image dicts becomes a few contiguous arrays and an
offsets vector (B+1,), which is what the compiled kernels take. Checks that
are per example (keys, shapes, dtypes) run in the packing loop; value checks
(finite, non-negative sizes) run once on the concatenated arrays.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import numpy as np

from rewards._boxes import check_box_format, to_xywh
from rewards._inputs import offsets_from_lengths, to_numpy


class PackedPredictions(NamedTuple):
    boxes: np.ndarray  # (P, 4) float64 xywh
    scores: np.ndarray  # (P,) float64
    labels: np.ndarray  # (P,) int64
    offsets: np.ndarray  # (B + 1,) int64


class PackedGroundTruth(NamedTuple):
    boxes: np.ndarray  # (G, 4) float64 xywh
    labels: np.ndarray  # (G,) int64
    crowd: np.ndarray  # (G,) bool
    area: np.ndarray  # (G,) float64
    offsets: np.ndarray  # (B + 1,) int64


def _field(example: Any, key: str, where: str, required: bool = True) -> Any:
    if not isinstance(example, dict):
        raise TypeError(f"`{where}` must be a dict, got {type(example).__name__}")
    if key not in example:
        if required:
            raise ValueError(f"`{where}` is missing the key {key!r}")
        return None
    return to_numpy(example[key], f'{where}["{key}"]')


def _boxes(example: Any, where: str) -> np.ndarray:
    b = _field(example, "boxes", where)
    if b.size == 0:
        return np.zeros((0, 4), np.float64)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f'`{where}["boxes"]` must have shape (N, 4), got {b.shape}')
    if b.dtype.kind not in "fiu":
        raise ValueError(f'`{where}["boxes"]` must be numeric, got dtype {b.dtype}')
    return b


def _per_box(example: Any, key: str, where: str, n: int, kinds: str, required: bool = True):
    a = _field(example, key, where, required)
    if a is None:
        return None
    if a.size == 0 and n == 0:
        return a.reshape(0)
    if a.shape != (n,):
        raise ValueError(f'`{where}["{key}"]` must have shape ({n},) to match its boxes, got {a.shape}')
    if a.dtype.kind not in kinds:
        wanted = "integers" if kinds == "iu" else "numbers"
        raise ValueError(f'`{where}["{key}"]` must hold {wanted}, got dtype {a.dtype}')
    return a


def _concat(parts: list, dtype, shape_tail=()) -> np.ndarray:
    if not parts:
        return np.zeros((0, *shape_tail), dtype)
    return np.concatenate(parts).astype(dtype, copy=False)


def _first_bad_example(mask: np.ndarray, offsets: np.ndarray, where: str) -> str:
    """The name of the first example with a bad row: ``where[i]``, or ``where`` for one example."""
    i = int(np.searchsorted(offsets, np.flatnonzero(mask)[0], side="right") - 1)
    return example_name(where, i, offsets.size == 2)


def example_name(where: str, i: int, single: bool) -> str:
    return where if single else f"{where}[{i}]"


def _check_values(values: np.ndarray, offsets: np.ndarray, where: str, key: str) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        if bad.ndim > 1:
            bad = bad.any(axis=1)
        name = _first_bad_example(bad, offsets, where)
        raise ValueError(f'`{name}["{key}"]` contains NaN or infinite values')


def _to_xywh_checked(boxes: np.ndarray, offsets: np.ndarray, box_format: str, where: str):
    xywh = to_xywh(boxes, box_format)
    negative = (xywh[:, 2:] < 0).any(axis=1)
    if negative.any():
        name = _first_bad_example(negative, offsets, where)
        raise ValueError(
            f'`{name}["boxes"]` has a box with negative width or height '
            f"(box_format={box_format!r})"
        )
    return xywh


def pack_predictions(
    preds: Sequence[Any], box_format: str, where: str = "preds", single: bool = False
) -> PackedPredictions:
    check_box_format(box_format)
    boxes, scores, labels, lengths = [], [], [], []
    for i, p in enumerate(preds):
        name = example_name(where, i, single)
        b = _boxes(p, name)
        n = b.shape[0]
        scores.append(_per_box(p, "scores", name, n, "fiu"))
        labels.append(_per_box(p, "labels", name, n, "iu"))
        boxes.append(b)
        lengths.append(n)
    offsets = offsets_from_lengths(lengths)
    flat_boxes = _concat(boxes, np.float64, (4,))
    flat_scores = _concat(scores, np.float64)
    _check_values(flat_boxes, offsets, where, "boxes")
    _check_values(flat_scores, offsets, where, "scores")
    flat_labels = _concat(labels, np.int64)
    return PackedPredictions(
        _to_xywh_checked(flat_boxes, offsets, box_format, where), flat_scores, flat_labels, offsets
    )


def pack_ground_truth(
    gts: Sequence[Any], box_format: str, where: str = "gts", single: bool = False
) -> PackedGroundTruth:
    check_box_format(box_format)
    boxes, labels, crowd, area, lengths = [], [], [], [], []
    any_area = False
    for i, g in enumerate(gts):
        name = example_name(where, i, single)
        b = _boxes(g, name)
        n = b.shape[0]
        labels.append(_per_box(g, "labels", name, n, "iu"))
        c = _per_box(g, "iscrowd", name, n, "iub", required=False)
        crowd.append(np.zeros(n, bool) if c is None else c.astype(bool))
        a = _per_box(g, "area", name, n, "fiu", required=False)
        any_area |= a is not None
        area.append(a)
        boxes.append(b)
        lengths.append(n)
    offsets = offsets_from_lengths(lengths)
    flat_boxes = _concat(boxes, np.float64, (4,))
    _check_values(flat_boxes, offsets, where, "boxes")
    xywh = _to_xywh_checked(flat_boxes, offsets, box_format, where)
    box_area = xywh[:, 2] * xywh[:, 3]
    if any_area:
        area = [box_area[offsets[i] : offsets[i + 1]] if a is None else a for i, a in enumerate(area)]
        flat_area = _concat(area, np.float64)
        _check_values(flat_area, offsets, where, "area")
    else:
        flat_area = box_area
    return PackedGroundTruth(
        xywh, _concat(labels, np.int64), _concat(crowd, np.bool_), flat_area, offsets
    )


def check_labels_nonnegative(labels: np.ndarray, offsets: np.ndarray, where: str) -> None:
    bad = labels < 0
    if bad.any():
        name = _first_bad_example(bad, offsets, where)
        raise ValueError(f'`{name}["labels"]` contains negative labels')
