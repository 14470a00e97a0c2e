"""Instance masks: COCO run-length encoding, polygons and mask IoU, exactly as pycocotools.

A mask is given as any of:

- a COCO RLE dict ``{"size": [h, w], "counts": ...}``, ``counts`` either
  compressed (COCO's string, ``str`` or ``bytes``) or uncompressed (a list of
  run lengths, background first, summing to ``h * w``);
- a dense binary array (H, W) (bool, or numbers that are all 0 or 1; numpy,
  lists, torch or jax);
- a COCO polygon list ``[[x1, y1, x2, y2, ...], ...]`` where an image size is
  given (:func:`from_polygons`, :func:`from_coco_segmentation`).

Pixels are numbered column by column (Fortran order) as in COCO. Functions
that take several masks take a sequence of the above, or a stacked (N, H, W)
array (the torchvision / torchmetrics layout: item i is ``masks[i]``).
Outputs are pycocotools' own: compressed RLE dicts with ``bytes`` counts,
uint8 arrays (H, W) or (H, W, N).

Every result equals pycocotools.mask's (``encode``, ``decode``, ``area``,
``toBbox``, ``merge``, ``frPyObjects``, ``iou``) on valid input; the few
places where pycocotools silently returns garbage raise a clear error here
instead (counts that do not sum to h * w, masks of different sizes compared,
polygons with fewer than 3 points: see :func:`from_polygons`).

Example:
    >>> import numpy as np
    >>> from rewards import masks
    >>> a = np.zeros((4, 5), bool); a[1:3, 1:4] = True
    >>> rle = masks.encode(a)
    >>> rle
    {'size': [4, 5], 'counts': b'5220003'}
    >>> masks.area(rle), masks.to_bbox(rle).tolist()
    (6, [1.0, 1.0, 3.0, 2.0])
    >>> square = masks.from_polygons([[0.5, 0.5, 2.5, 0.5, 2.5, 2.5, 0.5, 2.5]], 4, 5)
    >>> masks.area(square)  # the pixels whose centres are inside: columns 1-2, rows 1-2
    4
    >>> masks.iou([square], [rle]).round(4)
    array([[0.6667]])
"""

from __future__ import annotations

import itertools
import operator
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, NamedTuple

import numpy as np

from rewards import _mask_kernels as _k
from rewards._inputs import int_option, to_numpy

__all__ = [
    "area",
    "compress",
    "decode",
    "decompress",
    "encode",
    "from_coco_segmentation",
    "from_polygons",
    "iou",
    "merge",
    "to_bbox",
]

Rle = dict[str, Any]  # {"size": [h, w], "counts": bytes | str | list[int]}
Degenerate = Literal["raise", "pycocotools"]

_MAX_PIXELS = 2**32  # pycocotools' counts are C uint
# rleFrPoly casts 5 * coordinate to a C int; beyond this it is undefined there (and the
# outline walk, one step per fifth of a pixel, would take seconds per edge).
_COORD_LIMIT = 4.0e8


class _Masks(NamedTuple):
    """N masks as canonical foreground runs (see ``rewards._mask_kernels``).

    starts, ends: uint32 (R,) run bounds in column-major pixel indices;
    offsets: int64 (N + 1,); heights, widths, areas: int64 (N,);
    boxes: float64 (N, 4) pycocotools ``toBbox`` boxes [x, y, w, h].
    """

    starts: np.ndarray
    ends: np.ndarray
    offsets: np.ndarray
    heights: np.ndarray
    widths: np.ndarray
    areas: np.ndarray
    boxes: np.ndarray

    def __len__(self) -> int:
        return self.heights.size


def _mask_set(starts, ends, offsets, heights, widths) -> _Masks:
    n = heights.size
    areas = np.empty(n, np.int64)
    boxes = np.empty((n, 4), np.float64)
    _k.mask_stats(starts, ends, offsets, heights, areas, boxes)
    return _Masks(starts, ends, offsets, heights, widths, areas, boxes)


def _empty_set() -> _Masks:
    z = np.zeros(0, np.int64)
    return _mask_set(np.zeros(0, np.uint32), np.zeros(0, np.uint32), np.zeros(1, np.int64), z, z)


def _concat_sets(sets: Sequence[_Masks]) -> _Masks:
    """One mask set holding ``sets`` one after another."""
    if len(sets) == 1:
        return sets[0]
    if not sets:
        return _empty_set()
    run_base = np.cumsum([0] + [s.starts.size for s in sets[:-1]])
    offsets = np.concatenate([sets[0].offsets[:1]] + [s.offsets[1:] + b for s, b in zip(sets, run_base)])
    return _Masks(
        np.concatenate([s.starts for s in sets]),
        np.concatenate([s.ends for s in sets]),
        offsets,
        *(np.concatenate([getattr(s, f) for s in sets]) for f in ("heights", "widths", "areas", "boxes")),
    )


def _take(masks: _Masks, order: np.ndarray) -> _Masks:
    """The masks ``order`` (int64 indices) of a mask set, in that order."""
    starts, ends, offsets = _k.gather_runs(masks.starts, masks.ends, masks.offsets, order)
    return _Masks(
        starts,
        ends,
        offsets,
        masks.heights[order],
        masks.widths[order],
        masks.areas[order],
        masks.boxes[order],
    )


# ---------------------------------------------------------------------------
# Input parsing: RLE dicts, dense arrays, polygons -> one mask set.
# ---------------------------------------------------------------------------


def _size(rle: Mapping, name: str) -> tuple[int, int]:
    size = rle.get("size")
    try:
        h, w = (int(v) for v in size)  # type: ignore[union-attr]
        ok = all(float(v) == int(v) for v in size) and h >= 0 and w >= 0  # type: ignore[union-attr]
    except (TypeError, ValueError):
        ok = False
    if not ok or isinstance(size, (str, bytes)):
        raise ValueError(
            f"`{name}['size']` must be [height, width] (two non-negative integers), got {size!r}"
        )
    if h * w >= _MAX_PIXELS:
        raise ValueError(f"`{name}['size']` {[h, w]} has h * w >= 2**32 pixels (COCO counts are 32-bit)")
    return h, w


def _image_size(height: Any, width: Any) -> tuple[int, int]:
    h = height if type(height) is int and height >= 0 else int_option(height, "height", low=0)
    w = width if type(width) is int and width >= 0 else int_option(width, "width", low=0)
    if h * w >= _MAX_PIXELS:
        raise ValueError(f"`height` * `width` = {h * w} must be < 2**32 (COCO counts are 32-bit)")
    return h, w


_DECODE_ERRORS = {
    _k.BAD_CHAR: "holds a character outside COCO's alphabet '0'..'o'",
    _k.TRUNCATED: "ends in the middle of a value (truncated string)",
    _k.NEGATIVE: "decodes to a negative run length",
    _k.TOO_LARGE: "decodes to a run length >= 2**32",
}


def _runs_from_counts(counts, counts_offsets, heights, widths, name_of: Callable[[int], str]) -> tuple:
    r_max = counts.size // 2 + heights.size
    starts = np.empty(r_max, np.uint32)
    ends = np.empty(r_max, np.uint32)
    offsets = np.empty(heights.size + 1, np.int64)
    bad, code = _k.counts_to_runs(counts, counts_offsets, heights, widths, starts, ends, offsets)
    if code != _k.OK:
        name = f"{name_of(bad)}['counts']"
        if code == _k.NEGATIVE:
            raise ValueError(f"`{name}` holds a negative run length")
        c = counts[counts_offsets[bad] : counts_offsets[bad + 1]]
        h, w = int(heights[bad]), int(widths[bad])
        raise ValueError(
            f"`{name}` sums to {int(c.sum())} but size [{h}, {w}] has {h * w} pixels: "
            "the run lengths must cover the image exactly"
        )
    return starts[: offsets[-1]].copy(), ends[: offsets[-1]].copy(), offsets


def _from_compressed(strings: list, heights, widths, name_of: Callable[[int], str]) -> tuple:
    """Runs of compressed COCO count strings (``str`` or ``bytes``); ``name_of(k)`` names item k."""
    try:
        blobs = [x.encode("ascii") if type(x) is str else bytes(x) for x in strings]
    except UnicodeEncodeError:
        bad = next(k for k, x in enumerate(strings) if isinstance(x, str) and not x.isascii())
        raise ValueError(f"`{name_of(bad)}['counts']` {_DECODE_ERRORS[_k.BAD_CHAR]}") from None
    str_offsets = np.zeros(len(blobs) + 1, np.int64)
    np.cumsum(np.fromiter(map(len, blobs), np.int64, count=len(blobs)), out=str_offsets[1:])
    buf = np.frombuffer(b"".join(blobs), np.uint8)
    counts = np.empty(buf.size, np.int64)
    counts_offsets = np.empty(len(blobs) + 1, np.int64)
    bad, code = _k.decode_strings(buf, str_offsets, counts, counts_offsets)
    if code != _k.OK:
        raise ValueError(f"`{name_of(bad)}['counts']` {_DECODE_ERRORS[code]}")
    return _runs_from_counts(counts, counts_offsets, heights, widths, name_of)


# Per-thread run buffers that the rewards' own packing reuses (``scratch`` below): fresh
# buffers of this size cost page faults on every call (~10% of a segm reward). Capped so a
# one-off huge batch does not stay resident: beyond the cap, buffers are allocated per call.
_SCRATCH_MAX_RUNS = 1 << 20  # per buffer: 4 MiB


class _Scratch(threading.local):
    def __init__(self) -> None:
        self.runs: dict[str, tuple[np.ndarray, np.ndarray]] = {}


_SCRATCH = _Scratch()


def _run_buffers(n: int, scratch: str | None) -> tuple[np.ndarray, np.ndarray]:
    """uint32 (starts, ends) buffers of at least ``n`` entries: fresh, or this thread's ``scratch`` pair.

    A mask set built in scratch buffers is valid only until the next use of
    the same key in this thread: for temporaries that never leave the call
    that made them (the rewards pack a batch, score it and drop it).
    """
    if scratch is None or n > _SCRATCH_MAX_RUNS:
        return np.empty(n, np.uint32), np.empty(n, np.uint32)
    buffers = _SCRATCH.runs.get(scratch)
    if buffers is None or buffers[0].size < n:
        size = min(max(n, 2 * buffers[0].size if buffers else n), _SCRATCH_MAX_RUNS)
        buffers = np.empty(size, np.uint32), np.empty(size, np.uint32)
        _SCRATCH.runs[scratch] = buffers
    return buffers


def _pack_compressed(
    items: Sequence[Any],
    names: Callable[[int], str],
    heights: Any = None,
    widths: Any = None,
    scratch: str | None = None,
) -> _Masks | None:
    """The mask set of compressed RLE dicts (a model's usual output), or None for any other input.

    :func:`_pack`'s fast path for this one form: whole columns at once and one
    kernel from the bytes to the mask set, instead of a per-item dispatch.
    None (the caller's item-by-item path then names what is wrong) unless
    every item is a mapping whose ``"size"`` is valid (and equals ``heights[i],
    widths[i]`` when given) and whose ``"counts"`` are all ``str`` or all
    ``bytes``. Malformed counts raise the error :func:`_from_compressed` raises.
    ``scratch``: see :func:`_run_buffers`.
    """
    if not items or not isinstance(items[0], Mapping):
        return None  # e.g. dense torch masks, which warn when indexed by a string
    try:
        # Any item that is not a mapping with both keys (a polygon list, a dense array) fails here.
        counts = list(map(_COUNTS, items))
        size_list = list(map(_SIZE, items))
        # Usually every mask has the image's size: one comparison pass instead of an array of lists.
        s0 = size_list[0]
        same = size_list.count(s0) == len(size_list)
        if same and type(s0) is list and len(s0) == 2 and type(s0[0]) is int and type(s0[1]) is int:
            if s0[0] < 0 or s0[1] < 0 or s0[0] * s0[1] >= _MAX_PIXELS:
                return None
            h, w = np.full(len(items), s0[0], np.int64), np.full(len(items), s0[1], np.int64)
            sizes = None
        else:
            sizes = np.array([s0]).repeat(len(size_list), axis=0) if same else np.array(size_list)
    except Exception:
        return None
    if sizes is not None:
        if sizes.shape != (len(items), 2) or sizes.dtype.kind not in "iu":
            return None
        sizes = sizes.astype(np.int64)
        if (sizes < 0).any() or (sizes[:, 0] * sizes[:, 1] >= _MAX_PIXELS).any():
            return None
        h, w = np.ascontiguousarray(sizes[:, 0]), np.ascontiguousarray(sizes[:, 1])
    if heights is not None and ((h != np.asarray(heights)).any() or (w != np.asarray(widths)).any()):
        return None
    try:
        joined = _join_strings(counts)
    except TypeError:  # not all strings (uncompressed counts)
        return None
    return _compressed_set(counts, joined, h, w, names, scratch)


def _join_strings(counts: list) -> bytes | None:
    """Compressed count strings (``str`` / ``bytes``) joined by ``_k.SEPARATOR``; None if one is not ASCII.

    The join checks the kinds too (str.join fails on bytes, bytes.join on
    str): raises TypeError when an item is neither.
    """
    try:
        try:
            return _SEPARATOR.join(counts).encode("ascii")
        except TypeError:
            try:
                return _SEPARATOR_BYTES.join(counts)
            except TypeError:  # str and bytes mixed, or not strings
                if not all(type(x) is str or type(x) is bytes for x in counts):
                    raise
                return _SEPARATOR_BYTES.join(x.encode("ascii") if type(x) is str else x for x in counts)
    except UnicodeEncodeError:
        return None  # _from_compressed names the string


def _compressed_set(
    counts: list,
    joined: bytes | None,
    h: np.ndarray,
    w: np.ndarray,
    names: Callable[[int], str],
    scratch: str | None = None,
) -> _Masks:
    """The mask set of compressed count strings ``counts`` (``joined``: :func:`_join_strings`) of sizes (h, w).

    One kernel from the bytes to the mask set; malformed counts raise the
    error :func:`_from_compressed` raises (which string, why). ``scratch``:
    see :func:`_run_buffers`.
    """
    if joined is not None:
        buf = np.frombuffer(joined, np.uint8)
        # A string of c bytes holds at most (c + 1) // 2 foreground runs.
        starts, ends = _run_buffers(buf.size // 2 + len(counts), scratch)
        r, offsets, areas, boxes, _, code = _k.strings_to_mask_set(buf, h, w, starts, ends)
        if code == _k.OK:
            return _Masks(starts[:r], ends[:r], offsets, h, w, areas, boxes)
    # Bad counts: the two-step decoder raises the error it always has (which string, why).
    starts, ends, offsets = _from_compressed(counts, h, w, names)
    return _mask_set(starts, ends, offsets, h, w)


_SEPARATOR = chr(_k.SEPARATOR)
_SEPARATOR_BYTES = _SEPARATOR.encode("ascii")
_COUNTS = operator.itemgetter("counts")
_SIZE = operator.itemgetter("size")


def _from_uncompressed(count_lists: list, heights, widths, name_of: Callable[[int], str]) -> tuple:
    """Runs of uncompressed COCO counts (integer sequences); ``name_of(k)`` names item k."""
    arrays = []
    for k, c in enumerate(count_lists):
        a = np.asarray(c) if type(c) is list else to_numpy(c, f"{name_of(k)}['counts']")
        if a.ndim != 1 or (a.size and a.dtype.kind not in "iu"):
            raise ValueError(
                f"`{name_of(k)}['counts']` must be a flat list of integer run lengths "
                f"(or a compressed COCO string), got {a.dtype} array of shape {a.shape}"
            )
        arrays.append(a.astype(np.int64, copy=False))
    counts_offsets = np.zeros(len(arrays) + 1, np.int64)
    np.cumsum([a.size for a in arrays], out=counts_offsets[1:])
    counts = np.concatenate(arrays) if arrays else np.zeros(0, np.int64)
    return _runs_from_counts(counts, counts_offsets, heights, widths, name_of)


def _binary_uint8(a: np.ndarray, name: str, item_names: Callable[[int], str] | None = None) -> np.ndarray:
    """A dense mask, or an (N, H, W) stack whose item i errors call ``item_names(i)``, as uint8 0/1.

    bool needs no check and uint8 is checked by the kernel; other numbers here.
    """
    if a.dtype == np.bool_:
        return a.view(np.uint8)
    if a.dtype.kind not in "fiu":
        raise ValueError(f"`{name}` must be a binary mask (bool or 0/1 numbers), got dtype {a.dtype}")
    if a.dtype != np.uint8 and a.size:
        bad = (a != 0) & (a != 1)
        if bad.any():
            where = item_names(int(np.flatnonzero(bad.reshape(len(a), -1).any(1))[0])) if item_names else name
            raise ValueError(
                f"`{where}` must hold only 0 and 1 (threshold scores or probabilities first, e.g. `mask > 0.5`)"
            )
    return a.astype(np.uint8, copy=False)


def _from_dense_stack(stack: np.ndarray, names: Callable[[int], str]) -> _Masks:
    """Mask set of a dense (N, H, W) uint8 0/1 stack."""
    n, h, w = stack.shape
    if h * w >= _MAX_PIXELS:
        raise ValueError(f"`{names(0)}` has h * w >= 2**32 pixels (COCO counts are 32-bit)")
    column_major = np.ascontiguousarray(stack.transpose(0, 2, 1)).reshape(n, h * w)
    starts, ends, offsets, bad = _k.dense_to_runs(column_major)
    if bad >= 0:
        raise ValueError(
            f"`{names(bad)}` must hold only 0 and 1 (threshold scores or probabilities first, e.g. `mask > 0.5`)"
        )
    return _mask_set(starts, ends, offsets, np.full(n, h, np.int64), np.full(n, w, np.int64))


def _check_polygon_parts(segm: Any, name: str, degenerate: Degenerate) -> list:
    """Polygons of one object as float64 coordinate arrays, validated under the ``degenerate`` rules.

    An odd trailing coordinate (allowed with ``degenerate="pycocotools"``) is dropped, as
    pycocotools passes ``int(len / 2)`` points.
    """
    if type(segm) is not list and (isinstance(segm, (str, bytes, Mapping)) or not hasattr(segm, "__len__")):
        raise ValueError(
            f"`{name}` must be a list of polygons [[x1, y1, ...], ...], got {type(segm).__name__}"
        )
    arrays = []
    for j, p in enumerate(segm):
        where = f"{name}[{j}]"
        if type(p) is not list and (isinstance(p, (str, bytes, Mapping)) or not hasattr(p, "__len__")):
            raise ValueError(
                f"`{where}` must be a list of coordinates [x1, y1, x2, y2, ...], got {type(p).__name__}"
            )
        n = len(p)
        if degenerate == "pycocotools":
            # frPyObjects dispatches on the first part's length: 4 numbers go to its box
            # reader (which then fails on a list), fewer are 'input type is not supported'.
            if j == 0 and n <= 4:
                raise ValueError(
                    f"`{name}[0]` has {n} numbers: pycocotools rejects a polygon list whose first "
                    "polygon has 4 numbers or fewer"
                )
        elif n % 2:
            raise ValueError(
                f"`{where}` has an odd number of coordinates ({n}): expected x1, y1, x2, y2, ..."
            )
        elif n < 6:
            raise ValueError(
                f"`{where}` has {n // 2} point(s): a polygon needs at least 3 "
                "(pass degenerate='pycocotools' to rasterise it as pycocotools would)"
            )
        try:
            a = np.asarray(p, np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"`{where}` must hold numbers, got {p!r:.60}") from None
        if a.ndim != 1:
            raise ValueError(f"`{where}` must be a flat list of coordinates, got shape {a.shape}")
        if a.size and not (a.min() >= -_COORD_LIMIT and a.max() <= _COORD_LIMIT):  # NaN fails too
            if not np.isfinite(a).all():
                raise ValueError(f"`{where}` contains NaN or infinite coordinates")
            raise ValueError(f"`{where}` has a coordinate beyond +-{_COORD_LIMIT:g}")
        arrays.append(a[: n // 2 * 2])
    return arrays


def _polygon_arrays(objects: list, name_of: Callable[[int], str], degenerate: Degenerate) -> tuple:
    """(xy float64 (K, 2), poly_offsets, obj_offsets) of polygon objects, validated.

    The fast path converts everything at once; any doubt sends every object
    through :func:`_check_polygon_parts`, which names the faulty part.
    """
    xy = None
    try:
        if all(type(s) is list for s in objects):
            parts = [p for s in objects for p in s]
            if all(type(p) is list for p in parts):
                lengths = np.fromiter(map(len, parts), np.int64, count=len(parts))
                obj_offsets = np.zeros(len(objects) + 1, np.int64)
                np.cumsum([len(s) for s in objects], out=obj_offsets[1:])
                if degenerate == "raise":
                    ok = bool(((lengths % 2 == 0) & (lengths >= 6)).all())
                else:
                    firsts = obj_offsets[:-1][np.diff(obj_offsets) > 0]
                    ok = bool((lengths[firsts] > 4).all())
                if ok:
                    # pycocotools passes int(len / 2) points: an odd trailing coordinate is dropped.
                    flat = (
                        itertools.chain.from_iterable(
                            p if n % 2 == 0 else p[:-1] for p, n in zip(parts, lengths.tolist())
                        )
                        if degenerate == "pycocotools"
                        else itertools.chain.from_iterable(parts)
                    )
                    xy = np.fromiter(flat, np.float64, count=int((lengths // 2).sum()) * 2)
                    if not (np.abs(xy) <= _COORD_LIMIT).all():  # NaN fails this too
                        xy = None
    except (TypeError, ValueError):
        xy = None
    if xy is None:  # slow path: validate (naming the faulty part), then convert part by part
        checked = [_check_polygon_parts(s, name_of(k), degenerate) for k, s in enumerate(objects)]
        parts = [p for s in checked for p in s]
        lengths = np.fromiter((p.size for p in parts), np.int64, count=len(parts))
        obj_offsets = np.zeros(len(objects) + 1, np.int64)
        np.cumsum([len(s) for s in checked], out=obj_offsets[1:])
        xy = np.concatenate(parts or [np.zeros(0)])
    poly_offsets = np.zeros(lengths.size + 1, np.int64)
    np.cumsum(lengths // 2, out=poly_offsets[1:])
    return xy.reshape(-1, 2), poly_offsets, obj_offsets


def _from_polygons(
    objects: list, heights, widths, name_of: Callable[[int], str], degenerate: Degenerate
) -> tuple:
    """Runs of COCO polygon objects (each the union of its parts); ``name_of(k)`` names object k."""
    xy, poly_offsets, obj_offsets = _polygon_arrays(objects, name_of, degenerate)
    return _k.polygons_to_runs(xy, poly_offsets, obj_offsets, heights, widths)


def _is_dense(x: Any) -> bool:
    return hasattr(x, "shape") and hasattr(x, "dtype") or hasattr(x, "detach")


def _pack(
    items: Sequence[Any],
    names: Callable[[int], str],
    heights: Sequence[int] | np.ndarray | None = None,
    widths: Sequence[int] | np.ndarray | None = None,
    degenerate: Degenerate = "raise",
    scratch: str | None = None,
) -> _Masks:
    """One mask set from masks in any form (the packer the COCO evaluation calls).

    Parameters
    ----------
    items : sequence of N masks
        Each an RLE dict (compressed or not), a dense (H, W) binary array, or
        (when ``heights``/``widths`` are given) a COCO polygon list.
    names : callable
        ``names(i)`` is how errors name item i, e.g. ``lambda i: f"gts[{i}]"``.
    heights, widths : int sequences (N,) or None
        Image size of each item: required for polygons; an RLE or dense mask
        of another size is an error.
    degenerate : "raise" or "pycocotools"
        Polygons with fewer than 3 points: see :func:`from_polygons`.
    scratch : str or None
        A key of this thread's reusable run buffers (:func:`_run_buffers`):
        the result is then valid only until the next use of that key.

    Returns
    -------
    _Masks
        Item i is mask i, whatever its form.
    """
    n = len(items)
    if heights is None or (len(heights) == n and len(widths) == n):  # type: ignore[arg-type]
        fast = _pack_compressed(items, names, heights, widths, scratch)
        if fast is not None:
            return fast
    hs = None if heights is None else np.asarray(heights, np.int64).tolist()
    ws = None if widths is None else np.asarray(widths, np.int64).tolist()
    if hs is not None and (len(hs) != n or len(ws) != n):  # type: ignore[arg-type]
        raise ValueError(f"heights ({len(hs)}) and widths ({len(ws)}) must have one entry per mask ({n})")  # type: ignore[arg-type]
    # Per kind: item positions, payloads, heights, widths (one Python pass; kernels per kind).
    groups: dict[str, tuple[list, list, list, list]] = {
        k: ([], [], [], []) for k in ("compressed", "uncompressed", "polygons", "dense")
    }
    dense_sets = []
    for i, item in enumerate(items):
        if type(item) is dict or isinstance(item, Mapping):
            if "counts" not in item or "size" not in item:
                raise ValueError(
                    f"`{names(i)}` must be an RLE dict with keys 'size' and 'counts', got keys {sorted(item)}"
                )
            size = item["size"]
            if (
                type(size) is list
                and len(size) == 2
                and type(size[0]) is int
                and type(size[1]) is int
                and size[0] >= 0
                and size[1] >= 0
                and size[0] * size[1] < _MAX_PIXELS
            ):
                h, w = size
            else:
                h, w = _size(item, names(i))
            if hs is not None and (h != hs[i] or w != ws[i]):  # type: ignore[index]
                raise ValueError(f"`{names(i)}` has size [{h}, {w}] but its image is [{hs[i]}, {ws[i]}]")  # type: ignore[index]
            counts = item["counts"]
            group = groups["compressed" if isinstance(counts, (str, bytes, bytearray)) else "uncompressed"]
        elif type(item) is list or type(item) is tuple:
            if hs is None:
                raise ValueError(
                    f"`{names(i)}` looks like a polygon list: polygons need the image size "
                    "(use masks.from_polygons(polygons, height, width))"
                )
            group = groups["polygons"]
            counts, h, w = item, hs[i], ws[i]  # type: ignore[index]
        elif _is_dense(item):
            name = names(i)
            a = to_numpy(item, name)
            if a.ndim != 2:
                raise ValueError(f"`{name}` must be a 2-D (H, W) mask, got shape {a.shape}")
            if hs is not None and a.shape != (hs[i], ws[i]):  # type: ignore[index]
                raise ValueError(f"`{name}` has shape {a.shape} but its image is [{hs[i]}, {ws[i]}]")  # type: ignore[index]
            groups["dense"][0].append(i)
            dense_sets.append(_from_dense_stack(_binary_uint8(a, name)[None], lambda _: name))  # noqa: B023 (called now)
            continue
        else:
            raise ValueError(
                f"`{names(i)}` must be an RLE dict, a dense (H, W) mask or a polygon list, got {type(item).__name__}"
            )
        group[0].append(i)
        group[1].append(counts)
        group[2].append(h)
        group[3].append(w)
    sets: list[_Masks] = []
    positions: list[list[int]] = []
    for kind, (idx, payload, h_list, w_list) in groups.items():
        if not idx:
            continue
        positions.append(idx)
        if kind == "dense":
            sets.append(_concat_sets(dense_sets))
            continue

        def name_of(k: int, idx: list[int] = idx) -> str:
            return names(idx[k])

        h_arr = np.asarray(h_list, np.int64)
        w_arr = np.asarray(w_list, np.int64)
        if kind == "compressed":
            try:
                joined = _join_strings(payload)
            except TypeError:  # e.g. bytearray mixed with str: the two-step path converts them
                runs = _from_compressed(payload, h_arr, w_arr, name_of)
            else:
                sets.append(_compressed_set(payload, joined, h_arr, w_arr, name_of))
                continue
        elif kind == "uncompressed":
            runs = _from_uncompressed(payload, h_arr, w_arr, name_of)
        else:
            runs = _from_polygons(payload, h_arr, w_arr, name_of, degenerate)
        starts, ends, offsets = runs
        sets.append(_mask_set(starts, ends, offsets, h_arr, w_arr))
    if not sets:
        return _empty_set()
    packed = _concat_sets(sets)
    if len(sets) > 1:
        packed = _take(packed, np.argsort(np.concatenate(positions), kind="stable"))
    return packed


def _as_masks(x: Any, name: str) -> tuple[_Masks, bool]:
    """A mask set from one mask or a sequence / (N, H, W) stack of masks; and whether it was one."""
    if isinstance(x, _Masks):
        return x, False
    if isinstance(x, Mapping):
        return _pack([x], lambda _: name), True
    if _is_dense(x):
        a = to_numpy(x, name)
        if a.ndim == 2:
            return _from_dense_stack(_binary_uint8(a, name)[None], lambda _: name), True
        if a.ndim == 3:
            item_names = lambda i: f"{name}[{i}]"  # noqa: E731
            return _from_dense_stack(_binary_uint8(a, name, item_names), item_names), False
        raise ValueError(
            f"`{name}` must be a (H, W) mask or an (N, H, W) stack of masks, got shape {a.shape}"
        )
    if isinstance(x, (str, bytes)) or not hasattr(x, "__len__"):
        raise TypeError(f"`{name}` must be a mask or a sequence of masks, got {type(x).__name__}")
    return _pack(x, lambda i: f"{name}[{i}]"), False


# ---------------------------------------------------------------------------
# Outputs.
# ---------------------------------------------------------------------------


def _counts(masks: _Masks) -> tuple[np.ndarray, np.ndarray]:
    counts = np.empty(2 * masks.starts.size + len(masks), np.int64)
    counts_offsets = np.empty(len(masks) + 1, np.int64)
    _k.runs_to_counts(
        masks.starts, masks.ends, masks.offsets, masks.heights, masks.widths, counts, counts_offsets
    )
    return counts, counts_offsets


def _to_rles(masks: _Masks, compressed: bool = True) -> list[Rle]:
    sizes = zip(masks.heights.tolist(), masks.widths.tolist())
    flat: list[int] | bytes
    if not compressed:
        counts, counts_offsets = _counts(masks)
        flat = counts.tolist()
        bounds = counts_offsets.tolist()
    else:
        buf, str_offsets = _k.runs_to_strings(
            masks.starts, masks.ends, masks.offsets, masks.heights, masks.widths
        )
        flat = buf.tobytes()
        bounds = str_offsets.tolist()
    return [{"size": [h, w], "counts": flat[a:b]} for (h, w), a, b in zip(sizes, bounds[:-1], bounds[1:])]


def _dense(masks: _Masks) -> np.ndarray:
    """(H, W, N) uint8, Fortran order (pycocotools' decode layout); all masks one size."""
    if len(masks) == 0:
        return np.zeros((0, 0, 0), np.uint8)
    h, w = int(masks.heights[0]), int(masks.widths[0])
    out = np.zeros((len(masks), w * h), np.uint8)
    _k.runs_to_dense(masks.starts, masks.ends, masks.offsets, out)
    return out.reshape(len(masks), w, h).transpose(2, 1, 0)


def _check_same_size(masks: _Masks, name: str) -> None:
    if len(masks) == 0:
        return
    bad = np.flatnonzero((masks.heights != masks.heights[0]) | (masks.widths != masks.widths[0]))
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"`{name}[{i}]` has size [{masks.heights[i]}, {masks.widths[i]}] but `{name}[0]` has "
            f"[{masks.heights[0]}, {masks.widths[0]}]: all masks must have the same size"
        )


# ---------------------------------------------------------------------------
# Public API.
# ---------------------------------------------------------------------------


def encode(mask: Any, *, compressed: bool = True) -> Rle | list[Rle]:
    """COCO RLE of a dense binary mask (H, W), or of each of pycocotools' (H, W, N) masks.

    Same layout and output as ``pycocotools.mask.encode``: (H, W) gives one
    dict, (H, W, N) a list of N dicts (mask i is ``mask[:, :, i]``). Counts are
    compressed ``bytes`` unless ``compressed=False`` (a list of ints).

        >>> import numpy as np
        >>> from rewards import masks
        >>> m = np.array([[0, 1, 1], [0, 1, 0]], np.uint8)
        >>> masks.encode(m)
        {'size': [2, 3], 'counts': b'231'}
        >>> masks.encode(m, compressed=False)  # column by column: 0 0 | 1 1 | 1 0
        {'size': [2, 3], 'counts': [2, 3, 1]}
        >>> len(masks.encode(np.zeros((2, 3, 4), bool)))
        4
    """
    a = to_numpy(mask, "mask")
    if a.ndim == 2:
        stack = _binary_uint8(a, "mask")[None]
        return _to_rles(_from_dense_stack(stack, lambda _: "mask"), compressed)[0]
    if a.ndim == 3:
        item_names = lambda i: f"mask[:, :, {i}]"  # noqa: E731
        stack = _binary_uint8(a.transpose(2, 0, 1), "mask", item_names)
        return _to_rles(_from_dense_stack(stack, item_names), compressed)
    raise ValueError(f"`mask` must be (H, W) or pycocotools' (H, W, N), got shape {a.shape}")


def decode(rles: Any) -> np.ndarray:
    """Dense uint8 mask (H, W) of one RLE, or (H, W, N) of a list (``pycocotools.mask.decode``).

    >>> from rewards import masks
    >>> masks.decode({"size": [2, 3], "counts": [2, 3, 1]})
    array([[0, 1, 1],
           [0, 1, 0]], dtype=uint8)
    >>> masks.decode([{"size": [2, 3], "counts": b"231"}] * 2).shape
    (2, 3, 2)
    """
    m, single = _as_masks(rles, "rles")
    _check_same_size(m, "rles")
    dense = _dense(m)
    return dense[:, :, 0] if single else dense


def area(masks: Any) -> int | np.ndarray:
    """Foreground pixel count of a mask (int) or of each of several (int64 (N,)).

    >>> from rewards import masks
    >>> masks.area({"size": [2, 3], "counts": b"231"})
    3
    >>> masks.area([{"size": [2, 3], "counts": [6]}, {"size": [2, 3], "counts": [0, 6]}])
    array([0, 6])
    """
    m, single = _as_masks(masks, "masks")
    return int(m.areas[0]) if single else m.areas.copy()


def to_bbox(masks: Any) -> np.ndarray:
    """Tight box ``[x, y, w, h]`` (float64 (4,), or (N, 4)) as ``pycocotools.mask.toBbox``.

    An empty mask gives ``[0, 0, 0, 0]``.

        >>> from rewards import masks
        >>> masks.to_bbox({"size": [2, 3], "counts": b"231"})
        array([1., 0., 2., 2.])
    """
    m, single = _as_masks(masks, "masks")
    return m.boxes[0].copy() if single else m.boxes.copy()


def merge(masks: Any, intersect: bool = False) -> Rle:
    """Union (or intersection) of masks of one size, as ``pycocotools.mask.merge``.

    >>> from rewards import masks
    >>> a = {"size": [2, 3], "counts": [2, 3, 1]}
    >>> b = {"size": [2, 3], "counts": [0, 1, 5]}
    >>> masks.merge([a, b], intersect=False) == masks.encode(masks.decode(a) | masks.decode(b))
    True
    >>> masks.area(masks.merge([a, b], intersect=True))
    0
    """
    m, single = _as_masks(masks, "masks")
    if single:
        return _to_rles(m)[0]
    if len(m) == 0:
        raise ValueError("`masks` is empty: nothing to merge")
    _check_same_size(m, "masks")
    members = np.arange(len(m), dtype=np.int64)
    fn = _k.intersect_runs if intersect else _k.union_runs
    starts, ends = fn(m.starts, m.ends, m.offsets, members)
    offsets = np.array([0, starts.size], np.int64)
    return _to_rles(_mask_set(starts, ends, offsets, m.heights[:1], m.widths[:1]))[0]


def from_polygons(
    polygons: Sequence[Sequence[float]], height: int, width: int, *, degenerate: Degenerate = "raise"
) -> Rle:
    """RLE of a COCO polygon object (its parts merged) as pycocotools rasterises it.

    ``polygons`` is COCO's ``[[x1, y1, x2, y2, ...], ...]``: one object, the
    union of its parts (what ``frPyObjects`` then ``merge`` give, as COCO's
    ``annToRLE`` does). Rasterisation is pycocotools' ``rleFrPoly``: pixel
    (x, y) is inside when the point (x, y) is, with the outline upsampled 5x
    and rounded as C does, so edges are half-open (the rectangle 0..4 x 0..2
    covers columns 0-3, rows 0-1); parts outside the image are clipped.
    An empty list gives an empty mask (pycocotools fails on it).

    ``degenerate``: pycocotools accepts some polygons with fewer than 3
    points: it rejects a list whose *first* part has 4 numbers or fewer,
    but rasterises later 1- or 2-point parts (a point draws nothing, a
    segment a sliver at most) and drops an odd trailing coordinate.
    ``"raise"`` (default) rejects every part with fewer than 3 points or an
    odd number of coordinates; ``"pycocotools"`` reproduces pycocotools (use
    it to evaluate COCO files exactly as pycocotools does).

        >>> from rewards import masks
        >>> rle = masks.from_polygons([[0, 0, 4, 0, 4, 2, 0, 2]], 4, 6)
        >>> masks.decode(rle)
        array([[1, 1, 1, 1, 0, 0],
               [1, 1, 1, 1, 0, 0],
               [0, 0, 0, 0, 0, 0],
               [0, 0, 0, 0, 0, 0]], dtype=uint8)
        >>> masks.from_polygons([[0, 0, 4, 0]], 4, 6)
        Traceback (most recent call last):
        ...
        ValueError: `polygons[0]` has 2 point(s): a polygon needs at least 3 (pass degenerate='pycocotools' to rasterise it as pycocotools would)
        >>> masks.area(masks.from_polygons([[0, 0, 4, 0, 4, 2, 0, 2], [0, 0, 4, 2]], 4, 6,
        ...                                 degenerate="pycocotools"))  # the segment adds nothing
        8
    """
    if degenerate not in ("raise", "pycocotools"):
        raise ValueError(f"`degenerate` must be 'raise' or 'pycocotools', got {degenerate!r}")
    h, w = _image_size(height, width)
    if isinstance(polygons, (str, bytes, Mapping)) or not hasattr(polygons, "__len__"):
        raise ValueError(
            f"`polygons` must be a list of polygons [[x1, y1, ...], ...], got {type(polygons).__name__}"
        )
    parts = _check_polygon_parts(polygons, "polygons", degenerate)
    poly_offsets = np.array([0, *itertools.accumulate(p.size // 2 for p in parts)], np.int64)
    xy = np.concatenate(parts).reshape(-1, 2) if parts else np.zeros((0, 2))
    buf = _k.polygon_object_to_string(xy, poly_offsets, h, w)
    return {"size": [h, w], "counts": buf.tobytes()}


def from_coco_segmentation(
    segmentation: Any, height: int, width: int, *, degenerate: Degenerate = "raise"
) -> Rle:
    """Compressed RLE of a COCO annotation's ``segmentation``, as pycocotools' ``annToRLE``.

    Polygons are rasterised (:func:`from_polygons`), uncompressed RLE is
    compressed, compressed RLE is checked and returned in canonical form. The
    RLE's size must equal (height, width), the annotation's image size.

        >>> from rewards import masks
        >>> masks.from_coco_segmentation({"size": [2, 3], "counts": [2, 3, 1]}, 2, 3)
        {'size': [2, 3], 'counts': b'231'}
        >>> masks.from_coco_segmentation([[0, 0, 2, 0, 2, 2]], 2, 3)
        {'size': [2, 3], 'counts': b'213'}
        >>> masks.from_coco_segmentation({"size": [2, 3], "counts": [2, 2, 1]}, 2, 3)
        Traceback (most recent call last):
        ...
        ValueError: `segmentation['counts']` sums to 5 but size [2, 3] has 6 pixels: the run lengths must cover the image exactly
    """
    if degenerate not in ("raise", "pycocotools"):
        raise ValueError(f"`degenerate` must be 'raise' or 'pycocotools', got {degenerate!r}")
    h, w = _image_size(height, width)
    if not isinstance(segmentation, (Mapping, list, tuple)):
        raise ValueError(
            f"`segmentation` must be a polygon list or an RLE dict, got {type(segmentation).__name__}"
        )
    m = _pack([segmentation], lambda _: "segmentation", [h], [w], degenerate)
    return _to_rles(m)[0]


def compress(rle: Any) -> Rle:
    """The compressed form (COCO string as ``bytes``) of an RLE dict or dense mask.

    >>> from rewards import masks
    >>> masks.compress({"size": [3, 4], "counts": [1, 10, 1]})
    {'size': [3, 4], 'counts': b'1:1'}
    """
    m, single = _as_masks(rle, "rle")
    out = _to_rles(m, compressed=True)
    return out[0] if single else out  # type: ignore[return-value]


def decompress(rle: Any) -> Rle:
    """The uncompressed form (``counts`` a list of run lengths) of an RLE dict or dense mask.

    >>> from rewards import masks
    >>> masks.decompress({"size": [3, 4], "counts": "1:1"})
    {'size': [3, 4], 'counts': [1, 10, 1]}
    """
    m, single = _as_masks(rle, "rle")
    out = _to_rles(m, compressed=False)
    return out[0] if single else out  # type: ignore[return-value]


def iou(dts: Any, gts: Any, iscrowd: Sequence[bool] | np.ndarray | None = None) -> np.ndarray:
    """Mask IoU matrix (D, G) float64, as ``pycocotools.mask.iou(dts, gts, iscrowd)``.

    ``dts``, ``gts``: sequences of masks (RLE dicts or dense (H, W) arrays,
    mixed freely) or (N, H, W) stacks. Against a crowd ground truth
    (``iscrowd[g]`` true) the denominator is the detection's own area, so
    a detection inside a crowd region scores 1. All masks must have one
    size (pycocotools returns -1 for mismatched pairs; this raises). Empty
    inputs give an empty (D, G) matrix (pycocotools returns ``[]``).

        >>> import numpy as np
        >>> from rewards import masks
        >>> a = np.zeros((4, 4), bool); a[:2, :2] = True
        >>> b = np.zeros((4, 4), bool); b[:2, :] = True
        >>> masks.iou([a], [b, b], iscrowd=[False, True])
        array([[0.5, 1. ]])
    """
    d, _ = _as_masks(dts, "dts")
    g, _ = _as_masks(gts, "gts")
    crowd = np.zeros(len(g), np.uint8)
    if iscrowd is not None:
        c = to_numpy(iscrowd, "iscrowd")
        if c.shape != (len(g),):
            raise ValueError(f"`iscrowd` must have one flag per ground truth ({len(g)}), got shape {c.shape}")
        crowd = c.astype(bool).astype(np.uint8)
    one = np.zeros(1, np.int64)
    out, _ = _iou_blocks(
        d, g, np.arange(len(d)), one, one + len(d), np.arange(len(g)), one, one + len(g), crowd,
        dt_names=lambda i: f"dts[{i}]", gt_names=lambda i: f"gts[{i}]",
    )  # fmt: skip
    return out.reshape(len(d), len(g))


def _iou_blocks(
    dts: _Masks,
    gts: _Masks,
    dt_index: np.ndarray,
    dt_start: np.ndarray,
    dt_count: np.ndarray,
    gt_index: np.ndarray,
    gt_start: np.ndarray,
    gt_count: np.ndarray,
    gt_crowd: np.ndarray,
    dt_names: Callable[[int], str] | None = None,
    gt_names: Callable[[int], str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """IoU matrices of many (detections, ground truths) blocks in one kernel call.

    What a COCO segm evaluation calls once for every (image, category) block
    at once, with both sides packed once by :func:`_pack`. The arguments
    mirror ``rewards._coco_kernels.Blocks``: pass ``det_order, det_start,
    det_count, gt_order, gt_start, gt_count``, and the result is laid out as
    its ``iou_start`` says.

    Parameters
    ----------
    dts, gts : _Masks
        Mask sets (the same object may serve as both).
    dt_index : int64 (D,)
        Indices into ``dts`` (each block's rows, in row order: e.g. by
        descending score).
    dt_start, dt_count : int64 (B,)
        Block b's rows are ``dt_index[dt_start[b]:dt_start[b] + dt_count[b]]``
        (gaps allowed: detections beyond maxDets simply are not counted).
    gt_index, gt_start, gt_count : int64 (G,), (B,), (B,)
        The same for the columns, indices into ``gts``.
    gt_crowd : bool or uint8 (len(gts),)
        Crowd flag of every mask of ``gts`` (indexed like ``gts``, not like
        ``gt_index``).
    dt_names, gt_names : callable, optional
        ``dt_names(i)`` names mask i of ``dts`` in errors (default "detection mask i").

    Returns
    -------
    (ious, offsets) : float64 (sum_b D_b * G_b,), int64 (B + 1,)
        Block b is ``ious[offsets[b]:offsets[b + 1]].reshape(dt_count[b], gt_count[b])``:
        row d, column g, as ``pycocotools.mask.iou(dts, gts, iscrowd)``.

    Raises
    ------
    ValueError
        When a block pairs masks of different sizes.
    """
    dt_index, dt_start, dt_count, gt_index, gt_start, gt_count = (
        np.ascontiguousarray(a, np.int64)
        for a in (dt_index, dt_start, dt_count, gt_index, gt_start, gt_count)
    )
    crowd = np.ascontiguousarray(gt_crowd).astype(np.uint8, copy=False)
    if not (dt_start.shape == dt_count.shape == gt_start.shape == gt_count.shape) or dt_start.ndim != 1:
        raise ValueError("dt_start, dt_count, gt_start and gt_count must all be (B,)")
    if crowd.shape != (len(gts),):
        raise ValueError(f"gt_crowd {crowd.shape} must have one flag per ground-truth mask ({len(gts)})")
    offsets = np.zeros(dt_start.size + 1, np.int64)
    np.cumsum(dt_count * gt_count, out=offsets[1:])
    out = np.empty(offsets[-1], np.float64)
    b, di, gi = _k.iou_blocks(
        dts.starts, dts.ends, dts.offsets, dts.heights, dts.widths, dts.areas, dts.boxes,
        gts.starts, gts.ends, gts.offsets, gts.heights, gts.widths, gts.areas, gts.boxes,
        dt_index, dt_start, dt_count, gt_index, gt_start, gt_count, crowd, out, offsets,
    )  # fmt: skip
    if b >= 0:
        d = int(dt_index[dt_start[b] + di])
        g = int(gt_index[gt_start[b] + gi])
        dn = dt_names(d) if dt_names else f"detection mask {d}"
        gn = gt_names(g) if gt_names else f"ground-truth mask {g}"
        raise ValueError(
            f"`{dn}` has size [{dts.heights[d]}, {dts.widths[d]}] but `{gn}` has "
            f"[{gts.heights[g]}, {gts.widths[g]}]: masks compared must have the same size"
        )
    return out, offsets
