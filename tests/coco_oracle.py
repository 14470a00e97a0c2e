"""pycocotools / faster-coco-eval as oracles, plus generators of COCO-like cases."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest


def xyxy_to_xywh(boxes) -> list[list[float]]:
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    return [[x1, y1, x2 - x1, y2 - y1] for x1, y1, x2, y2 in b.tolist()]


def _datasets(preds, gts):
    labels = set()
    images, gt_anns, dets = [], [], []
    for i, (p, g) in enumerate(zip(preds, gts)):
        images.append({"id": i + 1, "width": 1000, "height": 1000})
        crowd = g.get("iscrowd", np.zeros(len(g["labels"]), int))
        xywh = xyxy_to_xywh(g["boxes"])
        area = g.get("area")
        for k, (box, label) in enumerate(zip(xywh, np.asarray(g["labels"]).tolist())):
            gt_anns.append(
                {
                    "id": len(gt_anns) + 1,
                    "image_id": i + 1,
                    "category_id": int(label),
                    "bbox": box,
                    "area": float(box[2] * box[3] if area is None else area[k]),
                    "iscrowd": int(crowd[k]),
                }
            )
            labels.add(int(label))
        for box, score, label in zip(
            xyxy_to_xywh(p["boxes"]), np.asarray(p["scores"]).tolist(), np.asarray(p["labels"]).tolist()
        ):
            dets.append({"image_id": i + 1, "category_id": int(label), "bbox": box, "score": float(score)})
            labels.add(int(label))
    categories = [{"id": c, "name": str(c)} for c in sorted(labels)]
    return {"images": images, "annotations": gt_anns, "categories": categories}, dets


def run_cocoeval(coco_cls, eval_cls, preds, gts, iou_thrs=None, max_dets=None, eval_kwargs=None):
    gt_data, dets = _datasets(preds, gts)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = coco_cls()
        coco_gt.dataset = gt_data
        coco_gt.createIndex()
        if dets:
            coco_dt = coco_gt.loadRes(dets)
        else:
            coco_dt = coco_cls()
            coco_dt.dataset = {
                "images": gt_data["images"],
                "annotations": [],
                "categories": gt_data["categories"],
            }
            coco_dt.createIndex()
        ev = eval_cls(coco_gt, coco_dt, iouType="bbox", **(eval_kwargs or {}))
        if iou_thrs is not None:
            ev.params.iouThrs = np.asarray(iou_thrs, np.float64)
        if max_dets is not None:
            ev.params.maxDets = [1, 10, max_dets]
        ev.evaluate()
        ev.accumulate()
    return ev


def pycoco_image_ap(pred, gt, iou_thrs=None, max_dets=100) -> float:
    """COCO AP of one image over all thresholds at max_dets; -1 when COCO has no value."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if len(gt["labels"]) == 0:
        return -1.0
    ev = run_cocoeval(COCO, COCOeval, [pred], [gt], iou_thrs, max_dets)
    s = ev.eval["precision"][:, :, :, 0, -1]
    valid = s[s > -1]
    return float(np.mean(valid)) if valid.size else -1.0


def pycoco_stats(preds, gts) -> np.ndarray:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    ev = run_cocoeval(COCO, COCOeval, preds, gts)
    with contextlib.redirect_stdout(io.StringIO()):
        ev.summarize()
    return np.asarray(ev.stats)


def faster_coco_stats(preds, gts) -> np.ndarray:
    from faster_coco_eval import COCO, COCOeval_faster

    ev = run_cocoeval(COCO, COCOeval_faster, preds, gts, eval_kwargs={"print_function": lambda *a: None})
    ev.summarize()
    return np.asarray(ev.stats[:12])


def random_image(rng: np.random.Generator, n_gt=None, n_pred=None, n_classes=None, adversarial=True):
    """A COCO-like (pred, gt) pair in xyxy, with ties, crowds, duplicates and tiny boxes."""
    n_classes = n_classes or int(rng.integers(1, 5))
    classes = rng.choice(80, size=n_classes, replace=False)
    n_gt = int(rng.integers(0, 12)) if n_gt is None else n_gt
    size = 640.0
    wh = rng.uniform(2, 200, size=(n_gt, 2))
    xy = rng.uniform(0, size - 200, size=(n_gt, 2))
    if adversarial and rng.random() < 0.5:  # integer boxes make exact IoU ties
        wh, xy = np.round(wh / 4) * 4, np.round(xy / 4) * 4
    gt_boxes = np.concatenate([xy, xy + wh], axis=1)
    gt_labels = rng.choice(classes, size=n_gt)
    crowd = (rng.random(n_gt) < (0.15 if adversarial else 0.0)).astype(int)
    gt = {"boxes": gt_boxes, "labels": gt_labels, "iscrowd": crowd}

    n_pred = int(rng.integers(0, 25)) if n_pred is None else n_pred
    boxes, labels = [], []
    for _ in range(n_pred):
        if n_gt and rng.random() < 0.7:
            k = rng.integers(n_gt)
            jitter = rng.normal(0, rng.choice([0.5, 3, 10]), size=4)
            if adversarial and rng.random() < 0.2:
                jitter = np.round(jitter)
            b = gt_boxes[k] + jitter
            label = gt_labels[k] if rng.random() < 0.85 else rng.choice(classes)
        else:
            xy0 = rng.uniform(0, size - 50, 2)
            b = np.concatenate([xy0, xy0 + rng.uniform(0, 120, 2)])
            label = rng.choice(classes)
        b[2:] = np.maximum(b[2:], b[:2])  # degenerate boxes allowed, negative not
        if adversarial and rng.random() < 0.05:
            b[2] = b[0]  # zero width
        boxes.append(b)
        labels.append(label)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    scores = rng.random(n_pred)
    if adversarial and rng.random() < 0.5:
        scores = np.round(scores * 4) / 4  # many ties
    pred = {"boxes": boxes, "scores": scores, "labels": np.asarray(labels, np.int64).reshape(-1)}
    return pred, gt


# ------------------------------------------------------------ COCO files


def random_coco_dataset(
    rng: np.random.Generator, n_images: int = 40, n_categories: int = 6, n_dets_max: int = 30
):
    """A COCO instances dict and results list with what pycocotools is sensitive to.

    Unsorted, sparse image / category / annotation ids; categories without
    GT; crowd GTs; ``ignore`` keys that disagree with ``iscrowd`` (pycocotools
    overwrites them); mask areas unlike the box areas; equal scores across
    images; results in shuffled file order; an image with more than 100
    detections of one category; images without annotations or results.
    """
    image_ids = rng.choice(np.arange(1, 10 * n_images), n_images, replace=False)
    cat_ids = rng.choice(np.arange(1, 200), n_categories, replace=False)
    images = [{"id": int(i), "width": 640, "height": 480} for i in image_ids]
    categories = [{"id": int(c), "name": f"cat{c}"} for c in cat_ids]
    anns, dets = [], []
    ann_ids = rng.choice(np.arange(1, 100 * n_images), 20 * n_images, replace=False)
    for n, img in enumerate(image_ids):
        classes = rng.choice(cat_ids[:-1], size=int(rng.integers(1, 4)))  # the last category has no GT
        pred, gt = random_image(rng, n_gt=int(rng.integers(0, 12)), n_pred=int(rng.integers(0, n_dets_max)))
        remap = {
            int(c): int(classes[k % len(classes)])
            for k, c in enumerate(np.unique(np.concatenate([gt["labels"], pred["labels"]])))
        }
        for k, box in enumerate(xyxy_to_xywh(gt["boxes"])):
            ann = {
                "id": int(ann_ids[len(anns)]),
                "image_id": int(img),
                "category_id": remap[int(gt["labels"][k])],
                "bbox": box,
                "iscrowd": int(gt["iscrowd"][k]),
                "area": float(box[2] * box[3] * rng.uniform(0.3, 1.0))
                if rng.random() < 0.7
                else float(rng.uniform(0, 3 * 96**2)),
            }
            if rng.random() < 0.3:
                ann["ignore"] = int(rng.integers(0, 2))
            anns.append(ann)
        for k, box in enumerate(xyxy_to_xywh(pred["boxes"])):
            label = remap[int(pred["labels"][k])] if rng.random() < 0.95 else int(cat_ids[-1])
            dets.append(
                {"image_id": int(img), "category_id": label, "bbox": box, "score": float(pred["scores"][k])}
            )
        if n == 0 and len(gt["labels"]):  # over maxDets: 120 detections of one category
            box0 = xyxy_to_xywh(gt["boxes"])[0]
            for _ in range(120):
                jitter = (
                    np.asarray(box0) + np.concatenate([rng.normal(0, 3, 2), np.abs(rng.normal(0, 3, 2))])
                ).tolist()
                dets.append(
                    {
                        "image_id": int(img),
                        "category_id": remap[int(gt["labels"][0])],
                        "bbox": jitter,
                        "score": float(np.round(rng.random(), 1)),
                    }
                )
    order = rng.permutation(len(dets))
    dets = [dets[i] for i in order]
    anns = [anns[i] for i in rng.permutation(len(anns))]
    return {"images": images, "annotations": anns, "categories": categories}, dets


def pycoco_files_eval(gt_data, dets, max_dets=None, area_ranges=None, summarize=True):
    """pycocotools' COCOeval on a GT dict and results list (deep-copied: loadRes mutates them)."""
    import copy

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    return _files_eval(
        COCO, COCOeval, copy.deepcopy(gt_data), copy.deepcopy(dets), max_dets, area_ranges, summarize
    )


def faster_coco_files_eval(gt_data, dets):
    import copy

    from faster_coco_eval import COCO, COCOeval_faster

    return _files_eval(
        COCO,
        COCOeval_faster,
        copy.deepcopy(gt_data),
        copy.deepcopy(dets),
        None,
        None,
        True,
        {"print_function": lambda *a: None},
    )


def _files_eval(coco_cls, eval_cls, gt_data, dets, max_dets, area_ranges, summarize, eval_kwargs=None):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        coco_gt = coco_cls()
        coco_gt.dataset = gt_data
        coco_gt.createIndex()
        if dets:
            coco_dt = coco_gt.loadRes(dets)
        else:  # pycocotools' loadRes raises on an empty list: an empty results object
            coco_dt = coco_cls()
            coco_dt.dataset = {
                "images": gt_data["images"],
                "annotations": [],
                "categories": gt_data["categories"],
            }
            coco_dt.createIndex()
        ev = eval_cls(coco_gt, coco_dt, iouType="bbox", **(eval_kwargs or {}))
        if max_dets is not None:
            ev.params.maxDets = list(max_dets)
        if area_ranges is not None:
            ev.params.areaRng = [list(r) for r in area_ranges]
        ev.evaluate()
        ev.accumulate()
        start = out.tell()
        if summarize:
            ev.summarize()
    ev.printed = out.getvalue()[start:].splitlines()
    return ev


def recall_oracle(pred, gt, thresholds, weights, duplicate_weight, iou_threshold=0.5):
    """A numpy port of big_vision's released reward, step by step, with pycocotools' IoU."""
    from pycocotools import mask as mask_utils

    lp, lg = np.asarray(pred["labels"]), np.asarray(gt["labels"])
    n, m = len(lp), len(lg)
    if n and m:
        iou_all = np.asarray(mask_utils.iou(xyxy_to_xywh(pred["boxes"]), xyxy_to_xywh(gt["boxes"]), [0] * m))
    else:
        iou_all = np.zeros((n, m))
    rewards, match_iou = [], None
    for thr in thresholds:
        iou = np.where(iou_all > thr, iou_all, 0.0) * (lp[:, None] == lg[None, :])
        if m:
            iou = iou * np.eye(m)[np.argmax(iou, axis=1)]
        matches_idx = np.argmax(iou, axis=0) if n else np.zeros(m, int)
        matches_iou = iou[matches_idx, np.arange(m)] if n else np.zeros(m)
        matches_idx = np.where(matches_iou > 0, matches_idx, -1)
        match_reward = np.sum((matches_idx >= 0) * weights[lg])
        matches_mask = (np.arange(n)[:, None] == matches_idx[None, :]).astype(float)
        nms = np.sum((iou > 0) * (1 - matches_mask) * weights[lp][:, None])
        rewards.append(match_reward - duplicate_weight * nms)
        if thr == iou_threshold:
            match_iou = iou.sum(axis=1)
    return float(np.mean(rewards)), match_iou


_xyxy_to_xywh = xyxy_to_xywh  # the name tests/test_trl.py imports


def per_class_reference(ev):
    """Per-category AP / AP50 / AP75 / AR from pycocotools' eval arrays, as pycocotools averages."""
    p = ev.eval["precision"][:, :, :, 0, -1]
    r = ev.eval["recall"][:, :, 0, -1]

    def mean(s):
        s = s[s > -1]
        return float(np.mean(s)) if s.size else -1.0

    return {
        int(c): {
            "ap": mean(p[:, :, k]),
            "ap50": mean(p[0, :, k]),
            "ap75": mean(p[5, :, k]),
            "ar100": mean(r[:, k]),
        }
        for k, c in enumerate(ev.params.catIds)
    }


def assert_per_class_close(ours, ref):
    """Per-class dicts equal to 1e-9, key by key."""
    assert ours.keys() == ref.keys()
    for c in ref:
        for key in ref[c]:
            assert ours[c][key] == pytest.approx(ref[c][key], abs=1e-9), (c, key)
