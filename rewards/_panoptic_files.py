"""COCO panoptic files: json validation, PNG decoding, conversion to (category, segment id) maps.

Kept apart from ``rewards.panoptic`` (which re-exports the public names) so
that ``python -m rewards.panoptic`` never imports that module a second time.
Every error names the file, the image and the segment.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rewards import _panoptic_kernels as kernels
from rewards import _png
from rewards._inputs import to_numpy
from rewards._json_files import read_json_file

_MAX_SEGMENT_ID = 256**3 - 1
_INT32_MAX = 2**31 - 1


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def default_folder(json_path: str | os.PathLike) -> Path:
    """panopticapi's default PNG folder: the json path without ``.json`` (and ``.gz``)."""
    name = str(json_path)
    for suffix in (".gz", ".json"):
        name = name[: -len(suffix)] if name.endswith(suffix) else name
    return Path(name)


def _categories(raw: Any, where: str) -> dict[int, dict]:
    if not isinstance(raw, list):
        raise ValueError(f"{where}: 'categories' must be a list, got {type(raw).__name__}")
    out: dict[int, dict] = {}
    for k, cat in enumerate(raw):
        if not isinstance(cat, dict) or not _is_int(cat.get("id")):
            raise ValueError(f"{where}: categories[{k}] needs an integer 'id', got {cat!r}")
        if cat.get("isthing") not in (0, 1):
            raise ValueError(
                f"{where}: categories[{k}] (id {cat['id']}) needs 'isthing' 0 or 1, got {cat.get('isthing')!r}"
            )
        if int(cat["id"]) in out:
            raise ValueError(f"{where}: duplicate category id {cat['id']} (categories[{k}])")
        if not 0 <= int(cat["id"]) <= np.iinfo(np.int64).max:
            raise ValueError(f"{where}: category id {cat['id']} (categories[{k}]) must be in [0, 2**63)")
        out[int(cat["id"])] = cat
    return out


@dataclass
class CocoPanoptic:
    """A COCO panoptic json (validated) and its PNG folder; images decode on demand.

    ``annotations[i]`` has ``image_id``, ``file_name`` and ``segments_info``
    (each segment: ``id``, ``category_id``, ``iscrowd``, optional ``area``);
    ``categories`` maps id -> the json's category dict (None when the json
    has none); ``image(i)`` decodes image i.
    """

    json_path: Path
    folder: Path
    categories: dict[int, dict] | None
    annotations: list[dict]
    index: dict[Any, int] = field(repr=False)  # image_id -> position in annotations

    def __len__(self) -> int:
        return len(self.annotations)

    def png_path(self, i: int) -> Path:
        return self.folder / self.annotations[i]["file_name"]

    def image(self, i: int, check_area: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Image i as ((H, W, 2) (category_id, segment id), crowd (H, W) bool); VOID pixels are (-1, 0).

        Raises ValueError when the PNG and ``segments_info`` disagree (a segment
        in one and not the other; with ``check_area``, a json ``area`` that is
        not the segment's pixel count).
        """
        ann = self.annotations[i]
        path = self.png_path(i)
        try:
            ids = _png.read_ids(path)
        except FileNotFoundError:
            raise FileNotFoundError(
                f"{path}: PNG missing for image {ann['image_id']} of {self.json_path}"
            ) from None
        return _from_ids(
            ids,
            ann["segments_info"],
            check_area,
            lambda: f"image {ann['image_id']} ({path}, {self.json_path})",
        )


def _from_ids(
    ids: np.ndarray, segments: Sequence[Mapping], check_area: bool, where: Any
) -> tuple[np.ndarray, np.ndarray]:
    seg_ids = np.array([s["id"] for s in segments], np.int64)
    order = np.argsort(seg_ids, kind="stable")
    cats = np.array([s["category_id"] for s in segments], np.int64)
    crowd = np.array([bool(s.get("iscrowd", 0)) for s in segments], np.bool_)
    fits = cats.size == 0 or (cats.max(initial=0) <= _INT32_MAX and cats.min(initial=0) >= -_INT32_MAX)
    panoptic = np.empty((ids.size, 2), np.int32 if fits else np.int64)
    crowd_px = np.empty(ids.size, np.bool_)
    area = np.zeros(seg_ids.size, np.int64)
    err, value = kernels.ids_to_panoptic(
        np.ascontiguousarray(ids, np.int32).reshape(-1),
        seg_ids[order],
        cats[order],
        crowd[order],
        panoptic,
        crowd_px,
        area,
    )
    if err != kernels.OK:
        rgb = (value % 256, value // 256 % 256, value // 65536)
        raise ValueError(f"{where()}: segment id {value} (RGB {rgb}) is in the PNG but not in segments_info")
    counts = np.empty_like(area)
    counts[order] = area
    absent = seg_ids[counts == 0]
    if absent.size:
        raise ValueError(
            f"{where()}: segments_info lists segment id(s) {absent[:5].tolist()} absent from the PNG"
        )
    if check_area:
        for s, n in zip(segments, counts.tolist()):
            if "area" in s and s["area"] != n:
                raise ValueError(
                    f"{where()}: segment {s['id']} has area {s['area']} in the json but {n} pixels in the PNG"
                )
    return panoptic.reshape(*ids.shape, 2), crowd_px.reshape(ids.shape)


def load(
    json_path: str | os.PathLike,
    png_folder: str | os.PathLike | None = None,
    categories: Mapping[int, dict] | None = None,
) -> CocoPanoptic:
    json_path = Path(json_path)
    folder = default_folder(json_path) if png_folder is None else Path(png_folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: PNG folder of {json_path} does not exist")
    data = read_json_file(json_path)
    where = str(json_path)
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        raise ValueError(f"{where}: a COCO panoptic json holds a dict with an 'annotations' list")
    own = _categories(data["categories"], where) if "categories" in data else None
    known = dict(categories) if categories is not None else own
    annotations: list[dict] = []
    index: dict[Any, int] = {}
    for k, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict):
            raise ValueError(f"{where}: annotations[{k}] must be a dict, got {type(ann).__name__}")
        image_id = ann.get("image_id")
        if not _is_int(image_id) and not isinstance(image_id, str):
            raise ValueError(f"{where}: annotations[{k}] needs an 'image_id', got {image_id!r}")
        at = f"{where}: image {image_id!r} (annotations[{k}])"
        if image_id in index:
            raise ValueError(f"{at}: duplicate image_id (also annotations[{index[image_id]}])")
        if not isinstance(ann.get("file_name"), str):
            raise ValueError(f"{at}: needs a 'file_name' string, got {ann.get('file_name')!r}")
        segments = ann.get("segments_info")
        if not isinstance(segments, list):
            raise ValueError(f"{at}: needs a 'segments_info' list, got {type(segments).__name__}")
        seen: set[int] = set()
        for j, s in enumerate(segments):
            sat = f"{at}: segments_info[{j}]"
            if not isinstance(s, dict):
                raise ValueError(f"{sat} must be a dict, got {type(s).__name__}")
            for key in ("id", "category_id"):
                if key not in s:
                    raise ValueError(f"{sat} has no {key!r}")
                if not _is_int(s[key]):
                    raise ValueError(f"{sat}: {key!r} must be an integer, got {s[key]!r}")
            sid = int(s["id"])
            sat = f"{at}: segment {sid} (segments_info[{j}])"
            if not 0 < sid <= _MAX_SEGMENT_ID:
                raise ValueError(f"{sat}: segment ids are R + 256 G + 256² B of a PNG colour, in [1, 256**3)")
            if sid in seen:
                raise ValueError(f"{sat}: duplicate segment id")
            seen.add(sid)
            if s.get("iscrowd", 0) not in (0, 1):
                raise ValueError(f"{sat}: 'iscrowd' must be 0 or 1, got {s.get('iscrowd')!r}")
            if known is not None and int(s["category_id"]) not in known:
                raise ValueError(f"{sat}: unknown category_id {s['category_id']}")
        index[image_id] = len(annotations)
        annotations.append({"image_id": image_id, "file_name": ann["file_name"], "segments_info": segments})
    return CocoPanoptic(json_path, folder, own if own is not None else known, annotations, index)


def matched_images(gt: CocoPanoptic, pred: CocoPanoptic) -> list[tuple[int, int]]:
    """(gt index, pred index) per GT image; checks what must hold before any PNG is decoded."""
    missing = [a["image_id"] for a in gt.annotations if a["image_id"] not in pred.index]
    if missing:
        raise ValueError(
            f"{pred.json_path}: no prediction for {len(missing)} ground-truth image(s), e.g. image_id "
            f"{missing[0]!r} (panopticapi stops there too)"
        )
    extra = [a["image_id"] for a in pred.annotations if a["image_id"] not in gt.index]
    if extra:
        warnings.warn(
            f"{pred.json_path}: {len(extra)} predicted image(s) are not in the ground truth (e.g. image_id "
            f"{extra[0]!r}); they are ignored, as panopticapi does",
            UserWarning,
            stacklevel=3,
        )
    for a in gt.annotations:
        crowd_cats = [s["category_id"] for s in a["segments_info"] if s.get("iscrowd", 0) == 1]
        if len(crowd_cats) != len(set(crowd_cats)):
            twice = sorted({c for c in crowd_cats if crowd_cats.count(c) > 1})
            raise ValueError(
                f"{gt.json_path}: image {a['image_id']!r} has several crowd segments of category {twice[0]}; "
                "COCO has one per category and image (panopticapi would silently use only the last)"
            )
    pairs = [(i, pred.index[a["image_id"]]) for i, a in enumerate(gt.annotations)]
    for data, i in [(gt, i) for i, _ in pairs] + [(pred, j) for _, j in pairs]:
        if not data.png_path(i).is_file():
            raise FileNotFoundError(
                f"{data.png_path(i)}: PNG missing for image {data.annotations[i]['image_id']!r} of {data.json_path}"
            )
    return pairs


# ---------------------------------------------------------------- array converters


def panoptic_from_id_map(id_map: Any, segments_info: Sequence[Mapping]) -> tuple[np.ndarray, np.ndarray]:
    """COCO panoptic annotation (id map + segments_info) -> ((H, W, 2), crowd (H, W)); see rewards.panoptic."""
    ids = to_numpy(id_map, "id_map")
    if ids.ndim != 2 or ids.dtype.kind not in "iu":
        raise ValueError(f"`id_map` must be an integer (H, W) array, got {ids.dtype} {ids.shape}")
    if not isinstance(segments_info, Sequence) or isinstance(segments_info, (str, bytes)):
        raise TypeError(f"`segments_info` must be a list of dicts, got {type(segments_info).__name__}")
    for j, s in enumerate(segments_info):
        if not isinstance(s, Mapping):
            raise TypeError(f"`segments_info[{j}]` must be a dict, got {type(s).__name__}")
        for key in ("id", "category_id"):
            if key not in s:
                raise ValueError(f"`segments_info[{j}]` has no {key!r}")
            if not _is_int(s[key]):
                raise TypeError(f"`segments_info[{j}][{key!r}]` must be an integer, got {s[key]!r}")
        if not 0 < int(s["id"]) <= _MAX_SEGMENT_ID:
            raise ValueError(f"`segments_info[{j}]['id']` must be in [1, 256**3), got {s['id']}")
        if s.get("iscrowd", 0) not in (0, 1):
            raise ValueError(f"`segments_info[{j}]['iscrowd']` must be 0 or 1, got {s.get('iscrowd')!r}")
    seg_ids = [int(s["id"]) for s in segments_info]
    if len(set(seg_ids)) != len(seg_ids):
        raise ValueError("`segments_info` has duplicate segment ids")
    if ids.size and (ids.min() < 0 or ids.max() > _MAX_SEGMENT_ID):
        raise ValueError(f"`id_map` holds ids outside [0, 256**3): {int(ids.min())}..{int(ids.max())}")
    try:
        pan, crowd = _from_ids(ids, segments_info, False, lambda: "`id_map`")
    except ValueError as err:
        raise ValueError(str(err).replace("segments_info", "`segments_info`")) from None
    return pan.astype(np.int64), crowd


def panoptic_from_rgb(png: Any, segments_info: Sequence[Mapping]) -> tuple[np.ndarray, np.ndarray]:
    """COCO panoptic PNG as an uint8 RGB array (H, W, 3), id = R + 256 G + 256² B -> ((H, W, 2), crowd)."""
    rgb = to_numpy(png, "png")
    if rgb.ndim != 3 or rgb.shape[-1] not in (3, 4):
        raise ValueError(f"`png` must have shape (H, W, 3) (RGB, or RGBA), got {rgb.shape}")
    if rgb.dtype.kind not in "iu":
        raise ValueError(f"`png` must hold integer 0..255 colour values, got dtype {rgb.dtype}")
    if rgb.size and (rgb.min() < 0 or rgb.max() > 255):
        raise ValueError(f"`png` must hold 0..255 colour values, got {int(rgb.min())}..{int(rgb.max())}")
    rgb = rgb[..., :3].astype(np.int64)
    ids = rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]
    return panoptic_from_id_map(ids, segments_info)


# ---------------------------------------------------------------- examples


def write_dataset(
    folder: str | os.PathLike,
    name: str,
    images: Sequence[tuple[Any, np.ndarray, list]],
    categories: list[dict] | None = None,
) -> str:
    """Writes ``name``.json and the PNG folder ``name``/ from (image_id, id map, segments_info)."""
    folder = Path(folder)
    (folder / name).mkdir(parents=True, exist_ok=True)
    annotations = []
    for image_id, ids, segments in images:
        file_name = f"{image_id}.png"
        _png.write_rgb(folder / name / file_name, _png.ids_to_rgb(ids))
        annotations.append({"image_id": image_id, "file_name": file_name, "segments_info": segments})
    data: dict[str, Any] = {"annotations": annotations}
    if categories is not None:
        data["categories"] = categories
    path = folder / f"{name}.json"
    path.write_text(json.dumps(data))
    return str(path)


def write_example_dataset(folder: str | os.PathLike) -> tuple[str, str]:
    """Two 4x6 images (a person on sky); the prediction splits the sky 8 + 4 pixels in image 2.

    Returns (gt json path, prediction json path); PNG folders sit beside them.
    """
    categories = [{"id": 1, "name": "person", "isthing": 1}, {"id": 187, "name": "sky", "isthing": 0}]
    ids = np.full((4, 6), 10, np.int64)
    ids[:, 3:] = 20  # a person on the right half
    ids[0, 0] = 0  # one unlabeled pixel
    gt_segments = [
        {"id": 10, "category_id": 187, "iscrowd": 0, "area": 11},
        {"id": 20, "category_id": 1, "iscrowd": 0, "area": 12},
    ]
    split = ids.copy()
    split[2:, :3] = 11
    split[0, 0] = 10
    pred_segments = [
        {"id": 10, "category_id": 187},
        {"id": 11, "category_id": 187},
        {"id": 20, "category_id": 1},
    ]
    gt = write_dataset(folder, "gt", [(1, ids, gt_segments), (2, ids, gt_segments)], categories)
    pred = write_dataset(
        folder, "pred", [(1, np.where(ids == 0, 10, ids), gt_segments[:2]), (2, split, pred_segments)]
    )
    return gt, pred
