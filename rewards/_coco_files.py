"""COCO instances and results json files -> packed arrays, with pycocotools' loadRes semantics.

Reading: the standard library's ``json`` (C scanner) with the cyclic garbage
collector paused. Measured on the 5000-image / 36k-GT / 100k-detection
benchmark files it is the largest single phase of the command line (about a
quarter: benchmarks/test_coco_files_bench.py prints the breakdown), but no
faster parser ships with numpy or numba, and the remaining gain did not
justify a new dependency. ``.gz`` files are read through gzip.

Packing: images in ascending id order (pycocotools' ``params.imgIds``); each
image's GTs and detections keep their file order (pycocotools' tie order).
Every field is checked on whole columns first; only when a column is bad is
the list walked again to name the first bad entry: ``file: annotations[12]["bbox"] ...``.
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

import numpy as np

from rewards import masks as _masks
from rewards._detection_inputs import PackedGroundTruth, PackedPredictions, compressed_rles
from rewards._inputs import offsets_from_lengths
from rewards._json_files import read_json_file


class CocoGroundTruth(NamedTuple):
    """A COCO instances ground truth, packed by image (ascending image id)."""

    name: str  # file name (or "gt") used in messages
    image_ids: np.ndarray  # (B,) int64 ascending
    categories: np.ndarray  # (K,) int64 ascending
    category_names: dict[int, str]
    packed: PackedGroundTruth  # boxes xywh; images in ``image_ids`` order
    annotation_ids: np.ndarray  # (G,) int64, in packed order
    masks: Any = None  # rewards.masks._Masks of the GTs in packed order (segm only)
    heights: np.ndarray | None = None  # (B,) int64 image sizes, ``image_ids`` order (segm only)
    widths: np.ndarray | None = None


def read_json(source: Any, default_name: str) -> tuple[Any, str]:
    """The parsed json of a path (``.gz`` allowed) or an already-loaded object, and its name."""
    if isinstance(source, (str, os.PathLike)):
        return read_json_file(source), os.fspath(source)
    return source, default_name


def _where(name: str, section: str | None, i: int, key: str | None = None) -> str:
    s = f"{name}: {section}[{i}]" if section else f"{name}: [{i}]"
    return s + (f'["{key}"]' if key is not None else "")


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def _explain(items: list, name: str, section: str | None, key: str, kind: str) -> None:
    """Walks ``items`` and raises the error of the first bad ``key``; kind: int | number | flag | bbox."""
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ValueError(f"{_where(name, section, i)} must be an object, got {type(item).__name__}")
        if key not in item:
            raise ValueError(f"{_where(name, section, i)} is missing the key {key!r}")
        v = item[key]
        where = _where(name, section, i, key)
        if kind == "int" and not _is_int(v):
            raise ValueError(f"{where} must be an integer, got {v!r}")
        if kind == "int" and not -(2**63) <= v < 2**63:
            raise ValueError(f"{where} {v} does not fit int64")
        if kind in ("number", "flag") and not (_is_number(v) or (kind == "flag" and isinstance(v, bool))):
            raise ValueError(f"{where} must be a number, got {v!r}")
        if kind in ("number", "flag") and not np.isfinite(v):
            raise ValueError(f"{where} must be finite, got {v!r}")
        if kind == "bbox":
            if not isinstance(v, (list, tuple)) or len(v) != 4 or not all(_is_number(x) for x in v):
                raise ValueError(f"{where} must be a list of 4 numbers [x, y, width, height], got {v!r}")
            if not all(np.isfinite(x) for x in v):
                raise ValueError(f"{where} contains NaN or infinite values: {v!r}")
            if v[2] < 0 or v[3] < 0:
                raise ValueError(f"{where} has a negative width or height: {v!r}")
    raise AssertionError(
        f"{name}: {section}[...][{key!r}] was rejected but no entry is bad"
    )  # pragma: no cover


def _column(
    items: list, name: str, section: str | None, key: str, kind: str, default: Any = None
) -> np.ndarray:
    """One field of every item as an array (int64 / float64 / bool), or the error naming the first bad item."""
    try:
        if default is None:
            values = [item[key] for item in items]
        else:
            values = [item.get(key, default) for item in items]
        a = np.array(values)
    except (KeyError, TypeError, AttributeError, ValueError, OverflowError):
        _explain(items, name, section, key, kind)
    n = len(items)
    if n == 0:
        return np.zeros(
            (0, 4) if kind == "bbox" else 0, {"int": np.int64, "flag": np.bool_}.get(kind, np.float64)
        )
    if kind == "bbox":
        ok = a.shape == (n, 4) and a.dtype.kind in "fi"
        if ok:
            a = a.astype(np.float64, copy=False)
            ok = bool(np.isfinite(a).all() and (a[:, 2:] >= 0).all())
        if not ok:
            _explain(items, name, section, key, kind)
        return a
    if a.shape != (n,):
        _explain(items, name, section, key, kind)
    if kind == "int":
        if a.dtype.kind != "i":
            _explain(items, name, section, key, kind)
        return a.astype(np.int64, copy=False)
    good = a.dtype.kind in ("fib" if kind == "flag" else "fi")
    if not (good and np.isfinite(a.astype(np.float64, copy=False)).all()):
        _explain(items, name, section, key, kind)
    return a.astype(np.bool_ if kind == "flag" else np.float64, copy=False)


def _list_section(data: Any, name: str, section: str) -> list:
    if section not in data:
        raise ValueError(f"{name} is missing the key {section!r}")
    items = data[section]
    if not isinstance(items, list):
        raise ValueError(f'{name}: "{section}" must be a list, got {type(items).__name__}')
    return items


def _unique_ids(ids: np.ndarray, name: str, section: str) -> np.ndarray:
    """Sorted ids; a repeated id is an error naming both entries."""
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    dup = np.flatnonzero(sorted_ids[1:] == sorted_ids[:-1])
    if dup.size:
        first, second = sorted(order[dup[0] : dup[0] + 2].tolist())
        raise ValueError(
            f'{name}: {section}[{second}]["id"] repeats the id {int(ids[second])} of {section}[{first}]'
        )
    return sorted_ids


def _index_of(
    values: np.ndarray,
    table: np.ndarray,
    what: str,
    name: str,
    section: str | None,
    key: str,
    table_name: str,
) -> np.ndarray:
    """Positions of ``values`` in the sorted ``table``; an unknown value is an error naming its entry."""
    idx = np.searchsorted(table, values)
    idx_clipped = np.minimum(idx, max(table.size - 1, 0))
    bad = (idx >= table.size) | (table[idx_clipped] != values) if table.size else np.ones(values.size, bool)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{_where(name, section, i, key)} {int(values[i])} is not {what} of {table_name}")
    return idx


def _segmentations(items: list, rows: np.ndarray, name: str, section: str | None) -> list:
    """The ``segmentation`` of ``items[rows]``, or the error naming the first item without one."""
    try:
        return [items[i]["segmentation"] for i in rows.tolist()]
    except KeyError:
        for i in rows.tolist():
            if "segmentation" not in items[i]:
                raise ValueError(f"{_where(name, section, i)} is missing the key 'segmentation'") from None
        raise  # pragma: no cover


def _pack_masks(
    items: list, rows: np.ndarray, name: str, section: str | None, heights, widths, degenerate
) -> Any:
    """The masks of ``items[rows]`` (polygons or RLE) on images of the given sizes, in ``rows`` order."""
    names = rows.tolist()
    segmentations = _segmentations(items, rows, name, section)

    def name_of(k: int) -> str:
        return _where(name, section, names[k], "segmentation")

    packed = compressed_rles(segmentations, name_of)
    if packed is not None:
        bad = np.flatnonzero((packed.heights != heights) | (packed.widths != widths))
        if not bad.size:
            return packed
    # Other forms, or a size to name: the general packer (it checks each size against its image).
    return _masks._pack(segmentations, name_of, heights, widths, degenerate)


def load_ground_truth(source: Any, iou_type: str = "bbox") -> CocoGroundTruth:
    """A COCO instances json (path or loaded dict) -> :class:`CocoGroundTruth`.

    As pycocotools: a GT is ignored when ``iscrowd`` is set (any ``ignore``
    key is overwritten by it); ``area`` is the annotation's own (mask) area.
    Differences, each an error there or here: ``iscrowd`` defaults to 0 and
    ``area`` to the box area when absent (pycocotools raises KeyError);
    repeated image, category or annotation ids, annotations of unknown images
    or categories, and malformed values are errors (pycocotools silently
    drops or overwrites them).

    ``iou_type="segm"`` also packs each annotation's ``segmentation`` as
    pycocotools' ``annToRLE`` (polygons rasterised on the image's ``height``
    x ``width``, which every image then needs; RLE kept; the degenerate
    polygons pycocotools accepts are accepted); an RLE of another size than
    its image is an error (pycocotools would score it -1 against everything).
    A missing ``area`` then defaults to the mask area, a missing ``bbox`` to the mask's box.
    """
    data, name = read_json(source, "gt")
    if not isinstance(data, dict):
        raise ValueError(
            f"{name} must hold a COCO object with images, annotations and categories, "
            f"got {type(data).__name__}"
        )
    images = _list_section(data, name, "images")
    categories = _list_section(data, name, "categories")
    anns = _list_section(data, name, "annotations")
    raw_image_ids = _column(images, name, "images", "id", "int")
    image_ids = _unique_ids(raw_image_ids, name, "images")
    cat_ids_file = _column(categories, name, "categories", "id", "int")
    cat_ids = _unique_ids(cat_ids_file, name, "categories")
    names = {int(c): str(item.get("name", c)) for c, item in zip(cat_ids_file.tolist(), categories)}
    ann_ids = _column(anns, name, "annotations", "id", "int")
    _unique_ids(ann_ids, name, "annotations")
    image_index = _index_of(
        _column(anns, name, "annotations", "image_id", "int"),
        image_ids,
        "the id of an image",
        name,
        "annotations",
        "image_id",
        f'{name}\'s "images"',
    )
    labels = _column(anns, name, "annotations", "category_id", "int")
    _index_of(
        labels, cat_ids, "the id of a category", name, "annotations", "category_id", f'{name}\'s "categories"'
    )
    # segm reads no GT box (pycocotools neither): without one, the mask's box stands in.
    boxes = None
    if iou_type != "segm" or all("bbox" in a for a in anns):
        boxes = _column(anns, name, "annotations", "bbox", "bbox")
    crowd = _column(anns, name, "annotations", "iscrowd", "flag", default=0)
    area = _column(anns, name, "annotations", "area", "number", default=-1.0)
    order = np.argsort(image_index, kind="stable")
    mask_set = heights = widths = None
    if iou_type == "segm":
        heights = _image_sizes(images, name, "height")
        widths = _image_sizes(images, name, "width")
        image_order = np.argsort(raw_image_ids, kind="stable")
        heights, widths = heights[image_order], widths[image_order]
        at = image_index[order]
        mask_set = _pack_masks(anns, order, name, "annotations", heights[at], widths[at], "pycocotools")
    if boxes is None:
        assert mask_set is not None
        boxes = np.empty((len(anns), 4))
        boxes[order] = mask_set.boxes
    missing_area = np.array([("area" not in a) for a in anns], bool) if (area == -1.0).any() else None
    if missing_area is not None and missing_area.any():
        if mask_set is None:
            area[missing_area] = boxes[missing_area, 2] * boxes[missing_area, 3]
        else:
            area[order[missing_area[order]]] = mask_set.areas[missing_area[order]]
    offsets = offsets_from_lengths(np.bincount(image_index, minlength=image_ids.size))
    packed = PackedGroundTruth(
        np.ascontiguousarray(boxes[order]), labels[order], crowd[order], area[order], offsets
    )
    return CocoGroundTruth(name, image_ids, cat_ids, names, packed, ann_ids[order], mask_set, heights, widths)


def _image_sizes(images: list, name: str, key: str) -> np.ndarray:
    sizes = _column(images, name, "images", key, "int")
    bad = np.flatnonzero(sizes < 0)
    if bad.size:
        raise ValueError(f"{_where(name, 'images', int(bad[0]), key)} must be >= 0, got {int(sizes[bad[0]])}")
    return sizes


def load_results(source: Any, gt: CocoGroundTruth) -> PackedPredictions:
    """A COCO results json (path or loaded list) -> packed detections in ``gt``'s image order.

    As pycocotools' ``loadRes``: the results must be a list; results for
    images absent from the GT are an error; a result's area is its box area
    (any ``area``, ``id`` or ``iscrowd`` key is ignored). Also an error here:
    a category absent from the GT's categories (pycocotools silently skips
    it), a bbox that is not 4 finite numbers with non-negative size, a score
    that is not a finite number. An empty list is valid: no detections.
    """
    data, name = read_json(source, "results")
    if not isinstance(data, list):
        raise ValueError(f"{name} must hold a list of results, got {type(data).__name__}")
    if data and isinstance(data[0], dict) and "bbox" not in data[0] and "segmentation" in data[0]:
        raise ValueError(
            f"{name} holds segmentation results; iou_type='bbox' needs a \"bbox\" in every result "
            "(use iou_type='segm')"
        )
    image_index, labels, scores = _result_columns(data, name, gt)
    boxes = _column(data, name, None, "bbox", "bbox")
    order = np.argsort(image_index, kind="stable")
    offsets = offsets_from_lengths(np.bincount(image_index, minlength=gt.image_ids.size))
    return PackedPredictions(np.ascontiguousarray(boxes[order]), scores[order], labels[order], offsets)


def load_segm_results(source: Any, gt: CocoGroundTruth) -> tuple[PackedPredictions, Any]:
    """A COCO segm results json -> (packed detections, their masks), in ``gt``'s image order.

    ``gt`` must be loaded with ``iou_type="segm"``. As pycocotools' ``loadRes``
    for segmentations: a result's area is its mask area and its box the
    mask's ``toBbox`` (any ``bbox``, ``area`` or ``iscrowd`` key is ignored);
    ``segmentation`` is an RLE dict (compressed or not; a polygon list is
    rasterised on the image size, where pycocotools' loadRes fails). A mask
    whose size differs from its image's is an error (pycocotools scores it -1).
    """
    data, name = read_json(source, "results")
    if not isinstance(data, list):
        raise ValueError(f"{name} must hold a list of results, got {type(data).__name__}")
    image_index, labels, scores = _result_columns(data, name, gt)
    order = np.argsort(image_index, kind="stable")
    offsets = offsets_from_lengths(np.bincount(image_index, minlength=gt.image_ids.size))
    at = image_index[order]
    assert gt.heights is not None and gt.widths is not None
    mask_set = _pack_masks(data, order, name, None, gt.heights[at], gt.widths[at], "raise")
    packed = PackedPredictions(np.ascontiguousarray(mask_set.boxes), scores[order], labels[order], offsets)
    return packed, mask_set


def _result_columns(data: list, name: str, gt: CocoGroundTruth) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image index into ``gt.image_ids``, category id, score) of every result, checked."""
    image_index = _index_of(
        _column(data, name, None, "image_id", "int"),
        gt.image_ids,
        "an image",
        name,
        None,
        "image_id",
        f"the ground truth {gt.name}",
    )
    labels = _column(data, name, None, "category_id", "int")
    _index_of(labels, gt.categories, "a category", name, None, "category_id", f"the ground truth {gt.name}")
    scores = _column(data, name, None, "score", "number")
    return image_index, labels, scores
