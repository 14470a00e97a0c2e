"""COCO caption files: the ground-truth captions json and a results list, read as COCOEvalCap reads them.

Kept apart from ``rewards.captioning`` so that ``python -m rewards.captioning``
never imports that module a second time. Every error names the file and the
image (and the entry's index).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from rewards._json_files import read_json_file


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def read_ground_truth(path: str | os.PathLike) -> tuple[list, dict[Any, list[str]]]:
    """(image ids in the file's ``images`` order, captions per image in annotation order).

    Images listed in ``images`` without a caption are kept (with no captions);
    without an ``images`` list, the order is that of first appearance in
    ``annotations``.
    """
    data = read_json_file(path)
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        raise ValueError(f"{path}: not a COCO captions file (needs an 'annotations' list)")
    captions: dict[Any, list[str]] = {}
    images = data.get("images")
    if isinstance(images, list):
        for k, img in enumerate(images):
            if not isinstance(img, dict) or not _is_int(img.get("id")):
                raise ValueError(f"{path}: images[{k}] needs an integer 'id', got {img!r}")
            captions.setdefault(int(img["id"]), [])
    for k, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict) or not _is_int(ann.get("image_id")):
            raise ValueError(f"{path}: annotations[{k}] needs an integer 'image_id', got {ann!r}")
        caption = ann.get("caption")
        if not isinstance(caption, str):
            raise ValueError(
                f"{path}: annotations[{k}] (image {ann['image_id']}) has a {type(caption).__name__} "
                f"'caption', expected a string"
            )
        captions.setdefault(int(ann["image_id"]), []).append(caption)
    return list(captions), captions


def read_results(path: str | os.PathLike) -> dict[Any, str]:
    """The results list ``[{"image_id", "caption"}, ...]`` as {image_id: caption}, in file order.

    A second result for the same image is an error (pycocoevalcap's scorers
    assert one caption per image and stop).
    """
    data = read_json_file(path)
    if not isinstance(data, list):
        raise ValueError(
            f"{path}: a results file is a list of {{'image_id', 'caption'}} objects, "
            f"got {type(data).__name__}"
        )
    if not data:
        raise ValueError(f"{path}: the results list is empty")
    out: dict[Any, str] = {}
    for k, res in enumerate(data):
        if not isinstance(res, dict) or not _is_int(res.get("image_id")):
            raise ValueError(f"{path}: entry {k} needs an integer 'image_id', got {res!r}")
        image_id = int(res["image_id"])
        caption = res.get("caption")
        if not isinstance(caption, str):
            raise ValueError(
                f"{path}: entry {k} (image {image_id}) has a {type(caption).__name__} "
                f"'caption', expected a string"
            )
        if image_id in out:
            raise ValueError(
                f"{path}: entry {k} is a second result for image {image_id} "
                f"(COCOEvalCap scores exactly one caption per image)"
            )
        out[image_id] = caption
    return out


def evaluation_pairs(gt_path: str | os.PathLike, results_path: str | os.PathLike):
    """(image ids, reference captions per image, result caption per image) as COCOEvalCap evaluates them.

    The images are those of the results file, in the ground truth's image
    order (``COCO.loadRes`` keeps the ground truth's ``images`` list filtered
    to the result images). A result for an image absent from the ground truth,
    or for an image without reference captions, is an error.
    """
    order, references = read_ground_truth(gt_path)
    results = read_results(results_path)
    for image_id in results:
        if image_id not in references:
            raise ValueError(
                f"{results_path}: image {image_id} is not in the ground truth {gt_path} "
                f"(pycocotools: 'Results do not correspond to current coco set')"
            )
        if not references[image_id]:
            raise ValueError(f"{gt_path}: image {image_id} has a result but no reference caption")
    image_ids = [i for i in order if i in results]
    return image_ids, [references[i] for i in image_ids], [results[i] for i in image_ids]
