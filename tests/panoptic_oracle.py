"""A literal numpy port of panopticapi (evaluation.py: pq_compute_single_core + PQStat.pq_average), and scenes.

The port takes decoded segment-id maps instead of PNG paths; everything else is
panopticapi's code path (np.unique over gt * OFFSET + pred, dict lookups, the
same order of operations), including its quirks (the last crowd segment of a
category is that category's crowd region; GT areas come from segments_info).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

VOID = 0
OFFSET = 256 * 256 * 256


class PQStatCat:
    def __init__(self):
        self.iou = 0.0
        self.tp = 0
        self.fp = 0
        self.fn = 0


def pq_compute_single_image(pq_stat, gt_ids, gt_segments_info, pred_ids, pred_segments_info, categories):
    """panopticapi's loop body for one image; adds into ``pq_stat`` (defaultdict(PQStatCat))."""
    pan_gt = np.asarray(gt_ids, np.uint32)
    pan_pred = np.asarray(pred_ids, np.uint32)
    gt_segms = {el["id"]: dict(el) for el in gt_segments_info}
    pred_segms = {el["id"]: dict(el) for el in pred_segments_info}

    pred_labels_set = set(el["id"] for el in pred_segments_info)
    labels, labels_cnt = np.unique(pan_pred, return_counts=True)
    for label, label_cnt in zip(labels, labels_cnt):
        if label not in pred_segms:
            if label == VOID:
                continue
            raise KeyError(f"segment {label} in PNG and not in JSON")
        pred_segms[label]["area"] = label_cnt
        pred_labels_set.remove(label)
        if pred_segms[label]["category_id"] not in categories:
            raise KeyError(f"segment {label} has unknown category_id")
    if len(pred_labels_set) != 0:
        raise KeyError(f"segments {pred_labels_set} in JSON and not in PNG")

    pan_gt_pred = pan_gt.astype(np.uint64) * OFFSET + pan_pred.astype(np.uint64)
    gt_pred_map = {}
    labels, labels_cnt = np.unique(pan_gt_pred, return_counts=True)
    for label, intersection in zip(labels, labels_cnt):
        gt_id = label // OFFSET
        pred_id = label % OFFSET
        gt_pred_map[(gt_id, pred_id)] = intersection

    gt_matched = set()
    pred_matched = set()
    for label_tuple, intersection in gt_pred_map.items():
        gt_label, pred_label = label_tuple
        if gt_label not in gt_segms:
            continue
        if pred_label not in pred_segms:
            continue
        if gt_segms[gt_label]["iscrowd"] == 1:
            continue
        if gt_segms[gt_label]["category_id"] != pred_segms[pred_label]["category_id"]:
            continue
        union = (
            pred_segms[pred_label]["area"]
            + gt_segms[gt_label]["area"]
            - intersection
            - gt_pred_map.get((VOID, pred_label), 0)
        )
        iou = intersection / union
        if iou > 0.5:
            pq_stat[gt_segms[gt_label]["category_id"]].tp += 1
            pq_stat[gt_segms[gt_label]["category_id"]].iou += iou
            gt_matched.add(gt_label)
            pred_matched.add(pred_label)

    crowd_labels_dict = {}
    for gt_label, gt_info in gt_segms.items():
        if gt_label in gt_matched:
            continue
        if gt_info["iscrowd"] == 1:
            crowd_labels_dict[gt_info["category_id"]] = gt_label
            continue
        pq_stat[gt_info["category_id"]].fn += 1

    for pred_label, pred_info in pred_segms.items():
        if pred_label in pred_matched:
            continue
        intersection = gt_pred_map.get((VOID, pred_label), 0)
        if pred_info["category_id"] in crowd_labels_dict:
            intersection += gt_pred_map.get((crowd_labels_dict[pred_info["category_id"]], pred_label), 0)
        if intersection / pred_info["area"] > 0.5:
            continue
        pq_stat[pred_info["category_id"]].fp += 1
    return pq_stat


def pq_average(pq_stat, categories, isthing):
    """panopticapi's PQStat.pq_average; ``categories`` maps id -> {"isthing": 0/1}."""
    pq, sq, rq, n = 0, 0, 0, 0
    per_class_results = {}
    for label, label_info in categories.items():
        if isthing is not None:
            cat_isthing = label_info["isthing"] == 1
            if isthing != cat_isthing:
                continue
        iou = pq_stat[label].iou
        tp = pq_stat[label].tp
        fp = pq_stat[label].fp
        fn = pq_stat[label].fn
        if tp + fp + fn == 0:
            per_class_results[label] = {"pq": 0.0, "sq": 0.0, "rq": 0.0}
            continue
        n += 1
        pq_class = iou / (tp + 0.5 * fp + 0.5 * fn)
        sq_class = iou / tp if tp != 0 else 0
        rq_class = tp / (tp + 0.5 * fp + 0.5 * fn)
        per_class_results[label] = {"pq": pq_class, "sq": sq_class, "rq": rq_class}
        pq += pq_class
        sq += sq_class
        rq += rq_class
    if n == 0:  # panopticapi divides by zero here; ours reports 1.0 with n == 0
        return {"pq": 1.0, "sq": 1.0, "rq": 1.0, "n": 0}, per_class_results
    return {"pq": pq / n, "sq": sq / n, "rq": rq / n, "n": n}, per_class_results


def pq_compute(images, categories):
    """panopticapi's pq_compute result dict from [(gt_ids, gt_segments_info, pred_ids, pred_segments_info)]."""
    pq_stat = defaultdict(PQStatCat)
    for gt_ids, gt_info, pred_ids, pred_info in images:
        pq_compute_single_image(pq_stat, gt_ids, gt_info, pred_ids, pred_info, categories)
    results = {}
    for name, isthing in [("All", None), ("Things", True), ("Stuff", False)]:
        results[name], per_class = pq_average(pq_stat, categories, isthing)
        if name == "All":
            results["per_class"] = per_class
    return results


def to_coco(img, things, categories, crowd=None, separate_stuff=False):
    """(H, W, 2) (+ crowd mask) -> panopticapi's (id map, segments_info with area); unknown categories VOID.

    Things are segments per instance; stuff per instance with ``separate_stuff``,
    else one per category; crowd pixels of a category are one crowd segment.
    """
    cat, inst = img[..., 0].astype(np.int64), img[..., 1].astype(np.int64)
    known = np.isin(cat, list(categories))
    keep_instance = np.ones(cat.shape, bool) if separate_stuff else np.isin(cat, list(things))
    cr = np.zeros(cat.shape, bool) if crowd is None else np.asarray(crowd, bool)
    inst = np.where(keep_instance & ~cr, inst, 0)
    keys = np.stack([cat, inst, cr.astype(np.int64)], -1)[known]
    uniq, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    ids = np.zeros(cat.shape, np.int64)
    ids[known] = inverse.reshape(-1) + 1
    info = [
        {"id": k + 1, "category_id": int(u[0]), "iscrowd": int(u[2]), "area": int(n)}
        for k, (u, n) in enumerate(zip(uniq, counts))
    ]
    return ids, info


def categories_dict(things, stuffs):
    return {c: {"isthing": int(c in set(things))} for c in sorted(set(things) | set(stuffs))}


def pq_eval_oracle(preds, gts, things, stuffs, crowds=None, separate_stuff=False):
    """panopticapi's pq_compute result dict for (H, W, 2) arrays (and crowd masks)."""
    cats = categories_dict(things, stuffs)
    crowds = [None] * len(preds) if crowds is None else crowds
    images = []
    for pred, gt, crowd in zip(preds, gts, crowds):
        g_ids, g_info = to_coco(gt, things, cats, crowd, separate_stuff)
        p_ids, p_info = to_coco(pred, things, cats, None, separate_stuff)
        images.append((g_ids, g_info, p_ids, p_info))
    return pq_compute(images, cats)


def pq_oracle(pred, gt, things, stuffs, crowd=None, separate_stuff=False):
    """(pq, sq, rq) of one image: panopticapi's All row over that image alone."""
    row = pq_eval_oracle([pred], [gt], things, stuffs, [crowd], separate_stuff)["All"]
    return row["pq"], row["sq"], row["rq"]


def random_scene(
    rng, h=None, w=None, things=(1, 2, 3), stuffs=(10, 11), void_cats=(50,), with_crowd=True, pred_void=True
):
    """GT of painted rectangles (things, stuff background, void), a perturbed prediction and a crowd mask."""
    h = h or int(rng.integers(8, 48))
    w = w or int(rng.integers(8, 48))
    gt = np.zeros((h, w, 2), np.int64)
    gt[..., 0] = rng.choice(list(stuffs))
    for _ in range(int(rng.integers(0, 4))):  # stuff and void regions
        y, x = rng.integers(0, h), rng.integers(0, w)
        gt[y : y + rng.integers(2, h), x : x + rng.integers(2, w), 0] = rng.choice(
            list(stuffs) + list(void_cats)
        )
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


def half_iou_scene(rng):
    """A thing whose best prediction has IoU exactly 0.5 (no match) or just above, on a stuff background."""
    h, w = 8, 8
    gt = np.zeros((h, w, 2), np.int64)
    gt[..., 0] = 10
    gt[2:6, 2:6] = (1, 1)  # 16 pixels
    pred = gt.copy()
    pred[2:6, 2:6] = (10, 0)
    k = int(rng.integers(0, 2))
    pred[2:4, 2:6] = (1, 3)  # 8 of 16 pixels: IoU exactly 0.5
    if k:
        pred[4, 2] = (1, 3)  # 9/16 > 0.5
    return pred, gt, None
