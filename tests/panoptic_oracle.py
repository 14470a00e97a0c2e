"""A literal numpy port of panopticapi's pq_compute_single_core (np.unique style), and random scenes."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

VOID = 0
OFFSET = 256 * 256 * 256


def _segments(img, things, categories, crowd=None):
    """(H, W, 2) -> id map (0 = VOID) and panopticapi-style segments_info {id: info}."""
    cat, inst = img[..., 0].astype(np.int64), img[..., 1].astype(np.int64)
    known = np.isin(cat, list(categories))
    inst = np.where(np.isin(cat, list(things)), inst, 0)
    cr = np.zeros(cat.shape, bool) if crowd is None else np.asarray(crowd, bool)
    inst = np.where(cr, 0, inst)
    keys = np.stack([cat, inst, cr.astype(np.int64)], -1)[known]
    uniq, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    ids = np.zeros(cat.shape, np.int64)
    ids[known] = inverse.reshape(-1) + 1
    info = {
        k + 1: {"category_id": int(u[0]), "iscrowd": int(u[2]), "area": int(n)}
        for k, (u, n) in enumerate(zip(uniq, counts))
    }
    return ids, info


def pq_oracle(pred, gt, things, stuffs, crowd=None):
    categories = set(things) | set(stuffs)
    pan_gt, gt_segms = _segments(gt, things, categories, crowd)
    pan_pred, pred_segms = _segments(pred, things, categories)
    pq_stat = defaultdict(lambda: {"tp": 0, "fp": 0, "fn": 0, "iou": 0.0})

    pan_gt_pred = pan_gt.astype(np.uint64) * OFFSET + pan_pred.astype(np.uint64)
    gt_pred_map = {}
    labels, labels_cnt = np.unique(pan_gt_pred, return_counts=True)
    for label, intersection in zip(labels, labels_cnt):
        gt_pred_map[(int(label // OFFSET), int(label % OFFSET))] = int(intersection)

    gt_matched, pred_matched = set(), set()
    for (gt_label, pred_label), intersection in gt_pred_map.items():
        if gt_label not in gt_segms or pred_label not in pred_segms:
            continue
        if gt_segms[gt_label]["iscrowd"] == 1:
            continue
        if gt_segms[gt_label]["category_id"] != pred_segms[pred_label]["category_id"]:
            continue
        union = (pred_segms[pred_label]["area"] + gt_segms[gt_label]["area"] - intersection
                 - gt_pred_map.get((VOID, pred_label), 0))
        iou = intersection / union
        if iou > 0.5:
            stat = pq_stat[gt_segms[gt_label]["category_id"]]
            stat["tp"] += 1
            stat["iou"] += iou
            gt_matched.add(gt_label)
            pred_matched.add(pred_label)

    crowd_labels_dict = {}
    for gt_label, gt_info in gt_segms.items():
        if gt_label in gt_matched:
            continue
        if gt_info["iscrowd"] == 1:
            crowd_labels_dict[gt_info["category_id"]] = gt_label
            continue
        pq_stat[gt_info["category_id"]]["fn"] += 1

    for pred_label, pred_info in pred_segms.items():
        if pred_label in pred_matched:
            continue
        intersection = gt_pred_map.get((VOID, pred_label), 0)
        if pred_info["category_id"] in crowd_labels_dict:
            intersection += gt_pred_map.get((crowd_labels_dict[pred_info["category_id"]], pred_label), 0)
        if intersection / pred_info["area"] > 0.5:
            continue
        pq_stat[pred_info["category_id"]]["fp"] += 1

    pq = sq = rq = 0.0
    n = 0
    for c in sorted(categories):
        s = pq_stat[c]
        if s["tp"] + s["fp"] + s["fn"] == 0:
            continue
        n += 1
        denom = s["tp"] + 0.5 * s["fp"] + 0.5 * s["fn"]
        pq += s["iou"] / denom
        sq += s["iou"] / s["tp"] if s["tp"] else 0.0
        rq += s["tp"] / denom
    return (1.0, 1.0, 1.0) if n == 0 else (pq / n, sq / n, rq / n)


def random_scene(rng, h=None, w=None, things=(1, 2, 3), stuffs=(10, 11), void_cats=(50,),
                 with_crowd=True, pred_void=True):
    """GT of painted rectangles (things, stuff background, void), a perturbed prediction and a crowd mask."""
    h = h or int(rng.integers(8, 48))
    w = w or int(rng.integers(8, 48))
    gt = np.zeros((h, w, 2), np.int64)
    gt[..., 0] = rng.choice(list(stuffs))
    for _ in range(int(rng.integers(0, 4))):  # stuff and void regions
        y, x = rng.integers(0, h), rng.integers(0, w)
        gt[y : y + rng.integers(2, h), x : x + rng.integers(2, w), 0] = rng.choice(list(stuffs) + list(void_cats))
        gt[..., 1] = np.where(np.isin(gt[..., 0], list(things)), gt[..., 1], rng.integers(0, 5))
    for k in range(int(rng.integers(0, 8))):
        y, x = rng.integers(0, h), rng.integers(0, w)
        sl = np.s_[y : y + rng.integers(2, max(3, h // 2)), x : x + rng.integers(2, max(3, w // 2))]
        gt[sl] = (rng.choice(list(things)), k + 1)
    crowd = None
    if with_crowd and rng.random() < 0.5:
        crowd = np.zeros((h, w), bool)
        thing_ids = np.unique(gt[..., 1][np.isin(gt[..., 0], list(things))])
        if thing_ids.size:
            chosen = rng.choice(thing_ids)
            crowd = (gt[..., 1] == chosen) & np.isin(gt[..., 0], list(things))
    pred = gt.copy()
    pred[..., 0] = np.where(np.isin(pred[..., 0], list(void_cats)), rng.choice(list(stuffs)), pred[..., 0])
    for _ in range(int(rng.integers(0, 6))):  # perturbations: shifted/relabelled/split blobs
        y, x = rng.integers(0, h), rng.integers(0, w)
        sl = np.s_[y : y + rng.integers(1, max(2, h // 2)), x : x + rng.integers(1, max(2, w // 2))]
        r = rng.random()
        if r < 0.4:
            pred[sl] = (rng.choice(list(things)), rng.integers(1, 10))
        elif r < 0.7:
            pred[sl + (0,)] = rng.choice(list(stuffs) + list(things))
        elif r < 0.85 and pred_void:
            pred[sl + (0,)] = -1  # unlabeled prediction
        else:
            pred[sl + (1,)] = rng.integers(0, 10)
    return pred, gt, crowd
