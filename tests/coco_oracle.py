"""pycocotools / faster-coco-eval as oracles, plus generators of COCO-like cases."""

from __future__ import annotations

import contextlib
import io

import numpy as np


def _xyxy_to_xywh(boxes) -> list[list[float]]:
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    return [[x1, y1, x2 - x1, y2 - y1] for x1, y1, x2, y2 in b.tolist()]


def _datasets(preds, gts):
    labels = set()
    images, gt_anns, dets = [], [], []
    for i, (p, g) in enumerate(zip(preds, gts)):
        images.append({"id": i + 1, "width": 1000, "height": 1000})
        crowd = g.get("iscrowd", np.zeros(len(g["labels"]), int))
        xywh = _xyxy_to_xywh(g["boxes"])
        area = g.get("area")
        for k, (box, label) in enumerate(zip(xywh, np.asarray(g["labels"]).tolist())):
            gt_anns.append({
                "id": len(gt_anns) + 1, "image_id": i + 1, "category_id": int(label), "bbox": box,
                "area": float(box[2] * box[3] if area is None else area[k]),
                "iscrowd": int(crowd[k]),
            })
            labels.add(int(label))
        for box, score, label in zip(
            _xyxy_to_xywh(p["boxes"]), np.asarray(p["scores"]).tolist(), np.asarray(p["labels"]).tolist()
        ):
            dets.append({"image_id": i + 1, "category_id": int(label), "bbox": box, "score": float(score)})
            labels.add(int(label))
    categories = [{"id": c, "name": str(c)} for c in sorted(labels)]
    return {"images": images, "annotations": gt_anns, "categories": categories}, dets


def _run(coco_cls, eval_cls, preds, gts, iou_thrs=None, max_dets=None, eval_kwargs=None):
    gt_data, dets = _datasets(preds, gts)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = coco_cls()
        coco_gt.dataset = gt_data
        coco_gt.createIndex()
        if dets:
            coco_dt = coco_gt.loadRes(dets)
        else:
            coco_dt = coco_cls()
            coco_dt.dataset = {"images": gt_data["images"], "annotations": [], "categories": gt_data["categories"]}
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
    ev = _run(COCO, COCOeval, [pred], [gt], iou_thrs, max_dets)
    s = ev.eval["precision"][:, :, :, 0, -1]
    valid = s[s > -1]
    return float(np.mean(valid)) if valid.size else -1.0


def pycoco_stats(preds, gts) -> np.ndarray:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    ev = _run(COCO, COCOeval, preds, gts)
    with contextlib.redirect_stdout(io.StringIO()):
        ev.summarize()
    return np.asarray(ev.stats)


def faster_coco_stats(preds, gts) -> np.ndarray:
    from faster_coco_eval import COCO, COCOeval_faster

    ev = _run(COCO, COCOeval_faster, preds, gts, eval_kwargs={"print_function": lambda *a: None})
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
