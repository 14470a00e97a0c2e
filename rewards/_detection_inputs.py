"""Validation and packing of detection examples into flat arrays plus offsets.

A batch of ragged per-image dicts becomes a few contiguous arrays and an
offsets vector (B+1,), which is what the compiled kernels take. Checks that
are per example (keys, shapes, dtypes) run in the packing loop; value checks
(finite, non-negative sizes) run once on the concatenated arrays.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from rewards._boxes import BoxFormat, check_box_format, to_xywh_inplace
from rewards._inputs import offsets_from_lengths, to_numpy

__all__ = ["BoxFormat", "PackedGroundTruth", "PackedPredictions"]
_INT64_MAX = np.iinfo(np.int64).max

_NOTHING = object()  # "no previous GT" (None is a user input to reject, not a sentinel)


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
    if not isinstance(example, Mapping):
        raise TypeError(f"`{where}` must be a dict (a Mapping), got {type(example).__name__}")
    if key not in example:
        if required:
            raise ValueError(f"`{where}` is missing the key {key!r}")
        return None
    return to_numpy(example[key], f'{where}["{key}"]')


def _boxes(example: Any, where: str) -> np.ndarray:
    b = _field(example, "boxes", where)
    if b.shape == (0,):  # an empty list
        return np.zeros((0, 4), np.float64)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f'`{where}["boxes"]` must have shape (N, 4), got {b.shape}')
    if b.dtype.kind not in "fiu":
        raise ValueError(f'`{where}["boxes"]` must be numeric, got dtype {b.dtype}')
    return b


def _per_box(
    example: Any, key: str, where: str, n: int, kinds: str, required: bool = True, objects: str = "boxes"
):
    a = _field(example, key, where, required)
    if a is None:
        return None
    if a.size == 0 and n == 0:
        return a.reshape(0)
    if a.shape != (n,):
        raise ValueError(f'`{where}["{key}"]` must have shape ({n},) to match its {objects}, got {a.shape}')
    if a.dtype.kind not in kinds:
        wanted = {"iu": "integers", "iub": "integers or booleans (0/1)"}.get(kinds, "numbers")
        raise ValueError(f'`{where}["{key}"]` must hold {wanted}, got dtype {a.dtype}')
    check_fits_int64(a, f'{where}["{key}"]')
    return a


def check_fits_int64(a: np.ndarray, name: str) -> None:
    """uint64 labels above 2**63 - 1 would wrap to negative ids: refuse them."""
    if a.dtype == np.uint64 and a.size and a.max() > _INT64_MAX:
        raise ValueError(f"`{name}` holds {int(a.max())}, which does not fit int64")


def _concat(parts: list, dtype, shape_tail=()) -> np.ndarray:
    if not parts:
        return np.zeros((0, *shape_tail), dtype)
    return np.concatenate(parts, dtype=dtype, casting="unsafe")


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


def _to_xywh_checked(boxes: np.ndarray, offsets: np.ndarray, box_format: BoxFormat, where: str):
    with np.errstate(over="ignore", invalid="ignore"):
        xywh = to_xywh_inplace(boxes, box_format)
    overflow: np.ndarray = ~np.isfinite(xywh).all(axis=1)
    if overflow.any():
        name = _first_bad_example(overflow, offsets, where)
        raise ValueError(
            f'`{name}["boxes"]` has a box whose size overflows float64 (|coordinates| near 1e308)'
        )
    negative = np.asarray((xywh[:, 2:] < 0).any(axis=1))
    if negative.any():
        name = _first_bad_example(negative, offsets, where)
        raise ValueError(
            f'`{name}["boxes"]` has a box with negative width or height (box_format={box_format!r})'
        )
    return xywh


def _objects(example: Any, name: str, n_masks: int):
    """(boxes or None, object count, what the objects are called in errors) of one example:
    its checked boxes, or (``n_masks`` >= 0) that many masks and no boxes."""
    if n_masks < 0:
        b = _boxes(example, name)
        return b, b.shape[0], "boxes"
    return None, n_masks, "masks"


def _checked_prediction(p: Any, name: str, n_masks: int = -1):
    """(boxes, scores, labels) of one prediction, or errors naming it; ``n_masks`` >= 0: no boxes, that many masks."""
    b, n, objects = _objects(p, name, n_masks)
    scores = _per_box(p, "scores", name, n, "fiu", objects=objects)
    return b, scores, _per_box(p, "labels", name, n, "iu", objects=objects).astype(np.int64)


def _checked_ground_truth(g: Any, name: str, n_masks: int = -1):
    """(boxes, labels, iscrowd, area) of one GT, or errors naming it; ``n_masks`` as :func:`_checked_prediction`."""
    b, n, objects = _objects(g, name, n_masks)
    labels = _per_box(g, "labels", name, n, "iu", objects=objects).astype(np.int64)
    crowd = _per_box(g, "iscrowd", name, n, "iub", required=False, objects=objects)
    area = _per_box(g, "area", name, n, "fiu", required=False, objects=objects)
    return b, labels, crowd, area


def _list_array(x: list) -> Any:
    """``np.asarray`` of a list (what the careful path's ``to_numpy`` makes of it), or None if that fails.

    The fast paths accept the array only when their checks pass, and then the
    careful path would have made the very same array.
    """
    try:
        return np.asarray(x)
    except Exception:  # the careful path converts again and names the error
        return None


def pack_predictions(
    preds: Sequence[Any],
    box_format: BoxFormat,
    where: str = "preds",
    single: bool = False,
    masks: ExampleMasks | None = None,
) -> PackedPredictions:
    """Packs prediction dicts; with ``masks`` (their packed ``"masks"``) the boxes are the masks' boxes."""
    check_box_format(box_format)
    count = len(preds)
    boxes, scores, labels = [None] * count, [None] * count, [None] * count
    lengths = np.empty(count, np.int64)
    n_masks = None if masks is None else np.diff(masks.offsets).tolist()
    ndarray = np.ndarray
    for i, p in enumerate(preds):
        # Fast path for well-formed numpy examples (inlined: this loop is the
        # batch's Python cost); anything else takes the careful path, which
        # converts or raises an error naming the example.
        try:
            s, lab = p["scores"], p["labels"]
            if n_masks is None:
                b = p["boxes"]
                n = b.shape[0]
                box_ok = type(b) is ndarray and b.shape == (n, 4) and b.dtype.kind in "fiu"
            else:
                n, box_ok = n_masks[i], True
            if type(s) is list:
                s = _list_array(s)
            if type(lab) is list:
                lab = _list_array(lab)
            fast = (
                box_ok
                and type(s) is ndarray
                and type(lab) is ndarray
                and s.shape == (n,)
                and lab.shape == (n,)
                and s.dtype.kind in "fiu"
                and lab.dtype.kind in "iu"
                and lab.dtype != np.uint64
            )
        except (KeyError, TypeError, AttributeError, IndexError):
            fast = False
        if not fast:
            name = example_name(where, i, single)
            b, s, lab = _checked_prediction(p, name, -1 if n_masks is None else n_masks[i])
        if n_masks is None:
            boxes[i] = b
            lengths[i] = b.shape[0]
        scores[i], labels[i] = s, lab
    if n_masks is not None:
        lengths[:] = n_masks
    offsets = offsets_from_lengths(lengths)
    if masks is None:
        flat_boxes = _concat(boxes, np.float64, (4,))
        _check_values(flat_boxes, offsets, where, "boxes")
    flat_scores = _concat(scores, np.float64)
    _check_values(flat_scores, offsets, where, "scores")
    flat_labels = _concat(labels, np.int64)
    if masks is not None:  # the masks' boxes: xywh, finite and non-negative by construction
        return PackedPredictions(masks.masks.boxes, flat_scores, flat_labels, offsets)
    return PackedPredictions(
        _to_xywh_checked(flat_boxes, offsets, box_format, where), flat_scores, flat_labels, offsets
    )


def pack_ground_truth(
    gts: Sequence[Any],
    box_format: BoxFormat,
    where: str = "gts",
    single: bool = False,
    masks: ExampleMasks | None = None,
) -> PackedGroundTruth:
    """Packs GT dicts; with ``masks`` the boxes are the masks' boxes and a missing area is the mask area."""
    check_box_format(box_format)
    count = len(gts)
    n_masks = None if masks is None else np.diff(masks.offsets).tolist()
    boxes: list[Any] = [None] * count
    labels: list[Any] = [None] * count
    crowd: list[Any] = [None] * count
    area: list[Any] = [None] * count
    lengths = np.empty(count, np.int64)
    ndarray = np.ndarray
    previous: Any = _NOTHING
    previous_fields: Any = None
    for i, g in enumerate(gts):
        if g is previous:  # the usual REINFORCE batch repeats each GT for its N samples
            fields = previous_fields
        else:
            try:
                lab = g["labels"]
                c, a = g.get("iscrowd"), g.get("area")
                if n_masks is None:
                    b = g["boxes"]
                    n = b.shape[0]
                    box_ok = type(b) is ndarray and b.shape == (n, 4) and b.dtype.kind in "fiu"
                else:
                    b, n, box_ok = None, n_masks[i], True
                if type(lab) is list:
                    lab = _list_array(lab)
                if type(c) is list:
                    c = _list_array(c)
                if type(a) is list:
                    a = _list_array(a)
                fast = (
                    box_ok
                    and type(lab) is ndarray
                    and lab.shape == (n,)
                    and lab.dtype.kind in "iu"
                    and lab.dtype != np.uint64
                    and (c is None or (type(c) is ndarray and c.shape == (n,) and c.dtype.kind in "iub"))
                    and (
                        a is None
                        or (
                            type(a) is ndarray
                            and a.shape == (n,)
                            and a.dtype.kind in "fiu"
                            and a.dtype != np.uint64
                        )
                    )
                )
            except (KeyError, TypeError, AttributeError, IndexError):
                fast = False
            if fast:
                fields = (b, lab, c, a)
            else:
                name = example_name(where, i, single)
                fields = _checked_ground_truth(g, name, -1 if n_masks is None else n_masks[i])
            previous, previous_fields = g, fields
        boxes[i], labels[i], crowd[i], area[i] = fields
        lengths[i] = fields[1].shape[0]
    offsets = offsets_from_lengths(lengths)
    if masks is None:
        flat_boxes = _concat(boxes, np.float64, (4,))
        _check_values(flat_boxes, offsets, where, "boxes")
        xywh = _to_xywh_checked(flat_boxes, offsets, box_format, where)
        flat_area = xywh[:, 2] * xywh[:, 3]
    else:  # the masks' boxes (xywh, valid by construction) and areas
        xywh = masks.masks.boxes
        flat_area = masks.masks.areas.astype(np.float64)
    if any(c is not None for c in crowd):
        flat_crowd = _concat(
            [np.zeros(len(b), bool) if c is None else c for b, c in zip(labels, crowd)], np.bool_
        )
    else:
        flat_crowd = np.zeros(flat_area.size, np.bool_)
    if any(a is not None for a in area):
        for i in range(count):
            if area[i] is not None:
                flat_area[offsets[i] : offsets[i + 1]] = area[i]
        _check_values(flat_area, offsets, where, "area")
    return PackedGroundTruth(xywh, _concat(labels, np.int64), flat_crowd, flat_area, offsets)


def check_labels_nonnegative(labels: np.ndarray, offsets: np.ndarray, where: str) -> None:
    bad = labels < 0
    if bad.any():
        name = _first_bad_example(bad, offsets, where)
        raise ValueError(f'`{name}["labels"]` contains negative labels')


def _padded_field(source: Any, key: str, where: str, shape: tuple, kinds: str, required: bool = True):
    if not isinstance(source, Mapping):
        raise TypeError(f"`{where}` must be a dict of padded arrays, got {type(source).__name__}")
    if key not in source:
        if required:
            raise ValueError(f"`{where}` is missing the key {key!r}")
        return None
    a = to_numpy(source[key], f'{where}["{key}"]')
    if a.shape != shape:
        raise ValueError(f'`{where}["{key}"]` must have shape {shape}, got {a.shape}')
    if a.dtype.kind not in kinds:
        wanted = {"b": "booleans", "iu": "integers", "biu": "integers or booleans (0/1)"}.get(
            kinds, "numbers"
        )
        raise ValueError(f'`{where}["{key}"]` must hold {wanted}, got dtype {a.dtype}')
    check_fits_int64(a, f'{where}["{key}"]')
    return a


def _padded_boxes(source: Any, where: str) -> np.ndarray:
    if not isinstance(source, Mapping):
        raise TypeError(f"`{where}` must be a dict of padded arrays, got {type(source).__name__}")
    if "boxes" not in source:
        raise ValueError(f"`{where}` is missing the key 'boxes'")
    b = to_numpy(source["boxes"], f'{where}["boxes"]')
    if b.ndim != 3 or b.shape[2] != 4:
        raise ValueError(f'`{where}["boxes"]` must have shape (B, K, 4), got {b.shape}')
    if b.dtype.kind not in "fiu":  # as the dict API: no bool, complex, str or object boxes
        raise ValueError(f'`{where}["boxes"]` must be numeric, got dtype {b.dtype}')
    return b


def _select(a: np.ndarray, valid: np.ndarray, dtype) -> np.ndarray:
    return np.ascontiguousarray(a[valid], dtype=dtype)


def pack_padded_predictions(preds: Any, box_format: BoxFormat, where: str = "preds") -> PackedPredictions:
    """Padded {"boxes": (B, K, 4), "scores": (B, K), "labels": (B, K), "valid": (B, K)} -> packed.

    Only the valid entries are read: padding may hold anything.
    """
    check_box_format(box_format)
    b = _padded_boxes(preds, where)
    shape = b.shape[:2]
    valid = _padded_field(preds, "valid", where, shape, "b")
    scores = _padded_field(preds, "scores", where, shape, "fiu")
    labels = _padded_field(preds, "labels", where, shape, "iu")
    offsets = offsets_from_lengths(valid.sum(axis=1))
    flat_boxes = _select(b, valid, np.float64)
    flat_scores = _select(scores, valid, np.float64)
    _check_values(flat_boxes, offsets, where, "boxes")
    _check_values(flat_scores, offsets, where, "scores")
    xywh = _to_xywh_checked(flat_boxes, offsets, box_format, where)
    return PackedPredictions(xywh, flat_scores, _select(labels, valid, np.int64), offsets)


def pack_padded_ground_truth(gts: Any, box_format: BoxFormat, where: str = "gts") -> PackedGroundTruth:
    """Padded {"boxes": (B, M, 4), "labels": (B, M), "valid": (B, M)[, "iscrowd", "area"]} -> packed."""
    check_box_format(box_format)
    b = _padded_boxes(gts, where)
    shape = b.shape[:2]
    valid = _padded_field(gts, "valid", where, shape, "b")
    labels = _padded_field(gts, "labels", where, shape, "iu")
    crowd = _padded_field(gts, "iscrowd", where, shape, "biu", required=False)
    area = _padded_field(gts, "area", where, shape, "fiu", required=False)
    offsets = offsets_from_lengths(valid.sum(axis=1))
    flat_boxes = _select(b, valid, np.float64)
    _check_values(flat_boxes, offsets, where, "boxes")
    xywh = _to_xywh_checked(flat_boxes, offsets, box_format, where)
    flat_area = xywh[:, 2] * xywh[:, 3] if area is None else _select(area, valid, np.float64)
    _check_values(flat_area, offsets, where, "area")
    flat_crowd = np.zeros(flat_area.size, np.bool_) if crowd is None else _select(crowd, valid, np.bool_)
    return PackedGroundTruth(xywh, _select(labels, valid, np.int64), flat_crowd, flat_area, offsets)


def unpad_mask_examples(source: Any, where: str, keys: dict[str, tuple[str, bool]]) -> list[dict[str, Any]]:
    """Padded masks {"masks": (B, K, H, W), "valid": (B, K), key: (B, K), ...} -> B example dicts.

    ``keys`` maps each per-object key to (dtype kinds, required). Example b
    holds ``source[key][b][valid[b]]`` for each key present, ``"masks"`` an
    (N_b, H, W) stack: the list form the segm rewards take, so padded and list
    inputs share one path (and its checks).
    """
    if not isinstance(source, Mapping):
        raise TypeError(f"`{where}` must be a dict of padded arrays, got {type(source).__name__}")
    if "masks" not in source:
        raise ValueError(f"`{where}` is missing the key 'masks' (iou_type='segm')")
    m = to_numpy(source["masks"], f'{where}["masks"]')
    if m.ndim != 4:
        raise ValueError(f'`{where}["masks"]` must have shape (B, K, H, W), got {m.shape}')
    shape = m.shape[:2]
    valid = _padded_field(source, "valid", where, shape, "b")
    fields = {
        k: _padded_field(source, k, where, shape, kinds, required) for k, (kinds, required) in keys.items()
    }
    examples = []
    for b in range(shape[0]):
        v = valid[b]
        ex = {"masks": m[b][v]}
        ex.update({k: a[b][v] for k, a in fields.items() if a is not None})
        examples.append(ex)
    return examples


class ExampleMasks(NamedTuple):
    """The masks of a batch of examples (``iou_type="segm"``), packed in example order."""

    masks: Any  # rewards.masks._Masks, mask k of example i at offsets[i] + k
    offsets: np.ndarray  # (B + 1,) int64
    where: str
    single: bool

    def name(self, k: int) -> str:
        """How errors name flat mask ``k``: ``preds[3]["masks"][1]``."""
        i = int(np.searchsorted(self.offsets, k, side="right") - 1)
        return f'{example_name(self.where, i, self.single)}["masks"][{k - int(self.offsets[i])}]'


def with_masks(examples: Sequence[Any], where: str, single: bool, reuse: bool = False) -> ExampleMasks:
    """Each example's ``"masks"``, packed (give them to :func:`pack_predictions` / :func:`pack_ground_truth`).

    ``"masks"``: a list of masks (RLE dicts or dense (H, W) arrays) or an
    (N, H, W) stack, one per label. A repeated example object (a REINFORCE
    batch's GT) is packed once. ``reuse``: the masks may live in this
    thread's buffers for ``where`` (``rewards.masks._run_buffers``), valid
    until the next such call: for masks that do not outlive the caller.
    """
    from rewards import masks as _masks

    count = len(examples)
    lengths = np.zeros(count, np.int64)
    # Lists of masks of all examples are packed in one call (its per-call cost dominates small
    # examples); stacks are packed per example. ``source[i]``: where example i's masks are.
    flat: list[Any] = []
    flat_starts: list[int] = []  # where each example's list begins in ``flat``, and its example
    flat_examples: list[int] = []
    stacks: list[Any] = []
    source: list[tuple[str, int]] = []
    previous: Any = _NOTHING
    for i, ex in enumerate(examples):
        if ex is previous:
            source.append(source[-1])
            lengths[i] = lengths[i - 1]
            continue
        if type(ex) is not dict and not isinstance(ex, Mapping):
            name = example_name(where, i, single)
            raise TypeError(f"`{name}` must be a dict (a Mapping), got {type(ex).__name__}")
        if "masks" not in ex:
            raise ValueError(
                f"`{example_name(where, i, single)}` is missing the key 'masks' (iou_type='segm')"
            )
        m = ex["masks"]
        if type(m) is list or type(m) is tuple:
            source.append(("flat", len(flat)))
            flat_starts.append(len(flat))
            flat_examples.append(i)
            flat.extend(m)
            n = len(m)
        else:
            key = f'{example_name(where, i, single)}["masks"]'
            packed, one = _masks._as_masks(m, key)
            if one:
                raise ValueError(f"`{key}` must be a list of masks or an (N, H, W) stack, got a single mask")
            source.append(("stack", len(stacks)))
            stacks.append(packed)
            n = len(packed)
        labels = ex.get("labels")
        if labels is not None:
            try:
                n_labels = len(labels)
            except TypeError:
                n_labels = -1
            if n_labels != n:
                name = example_name(where, i, single)
                raise ValueError(
                    f'`{name}["labels"]` must have one label per mask of `{name}["masks"]` ({n}), got {n_labels}'
                )
        lengths[i] = n
        previous = ex

    def flat_name(k: int) -> str:
        e = bisect.bisect_right(flat_starts, k) - 1
        return f'{example_name(where, flat_examples[e], single)}["masks"][{k - flat_starts[e]}]'

    flat_set = _masks._pack(flat, flat_name, scratch=where if reuse else None)
    if not stacks and len(flat) == int(lengths.sum()):
        packed_all = flat_set
    else:
        stack_base = np.cumsum([len(flat_set)] + [len(st) for st in stacks])
        rows = [
            np.arange(k, k + n) + (0 if kind == "flat" else stack_base[k] - k)
            for (kind, k), n in zip(source, lengths.tolist())
        ]
        order = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        packed_all = _masks._take(_masks._concat_sets([flat_set, *stacks]), order.astype(np.int64))
    return ExampleMasks(packed_all, offsets_from_lengths(lengths), where, single)


def compressed_rles(items: list, names: Callable[[int], str]) -> Any:
    """The mask set of compressed RLE dicts (a model's usual output), or None for any other input.

    ``rewards.masks._pack_compressed`` (named here for ``rewards._coco_files``).
    """
    from rewards import masks as _masks

    return _masks._pack_compressed(items, names)
