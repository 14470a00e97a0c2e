"""Compiled recall reward of the paper (big_vision's released detection reward).

The released code masks the IoU matrix at each threshold t and re-runs two
argmax passes. Both are threshold-free in disguise: a prediction's best GT
above t is its overall best same-class GT whenever that IoU exceeds t, and a
GT's best remaining prediction is likewise fixed. So the matching runs once
and each threshold only compares the matched IoUs with t.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from rewards._boxes import box_iou
from rewards._numba import kernel


@kernel
def _best_gt(boxes, labels, gt_boxes, gt_labels, best_gt, best_iou):
    """Each prediction's best same-class GT (first index on ties) and its IoU (0 if none).

    Args: ``boxes`` float64 (N, 4) xywh, ``labels`` int64 (N,), ``gt_boxes``
    float64 (M, 4), ``gt_labels`` int64 (M,); ``best_gt`` int64 (N,) and
    ``best_iou`` float64 (N,) are written.
    """
    for p in range(labels.size):
        best_gt[p] = 0
        best_iou[p] = 0.0
        for g in range(gt_labels.size):
            if labels[p] == gt_labels[g]:
                v = box_iou(boxes, p, gt_boxes, g, False)
                if v > best_iou[p]:
                    best_iou[p] = v
                    best_gt[p] = g


@kernel
def image_recall_reward(
    boxes, labels, weights, gt_boxes, gt_labels, gt_weights, thresholds, duplicate_weight, normalize
):
    """The recall reward of one image.

    Args:
        boxes: float64 (N, 4) xywh predictions; labels: int64 (N,) any values;
            weights: float64 (N,) each prediction's class weight.
        gt_boxes: float64 (M, 4) xywh; gt_labels: int64 (M,); gt_weights: float64 (M,).
        thresholds: float64 (T,) IoU thresholds (a pair counts when IoU > t).
        duplicate_weight: float, penalty per duplicate, times its class weight.
        normalize: bool, divide by the GT weight mass (0 when it is 0).
    """
    n = labels.size
    m = gt_labels.size
    if m == 0:  # nothing to find and nothing to duplicate (also: best_gt would index an empty table)
        return 0.0
    best_gt = np.empty(n, np.int64)
    best_iou = np.empty(n)
    _best_gt(boxes, labels, gt_boxes, gt_labels, best_gt, best_iou)
    # Each GT's match: its best prediction among those that chose it (first index on ties).
    top = np.zeros(m)
    match = np.full(m, -1, np.int64)
    for p in range(n):
        g = best_gt[p]
        if best_iou[p] > top[g]:
            top[g] = best_iou[p]
            match[g] = p
    total = 0.0
    for t in thresholds:
        found = 0.0
        for g in range(m):
            if top[g] > t:
                found += gt_weights[g]
        duplicates = 0.0
        for p in range(n):
            if best_iou[p] > t and match[best_gt[p]] != p:
                duplicates += weights[p]
        total += found - duplicate_weight * duplicates
    reward = total / thresholds.size
    if normalize:
        mass = 0.0
        for g in range(m):
            mass += gt_weights[g]
        reward = reward / mass if mass > 0 else 0.0
    return reward


@kernel
def recall_batch(
    boxes,
    labels,
    weights,
    offsets,
    gt_boxes,
    gt_labels,
    gt_weights,
    gt_offsets,
    thresholds,
    duplicate_weight,
    normalize,
    out,
):
    """``image_recall_reward`` of every image of a packed batch.

    Args:
        boxes, labels, weights: the (P, ...) predictions of all images (see
            ``image_recall_reward``); offsets: int64 (B + 1,) image ``b`` owns
            rows ``offsets[b]:offsets[b + 1]``.
        gt_boxes, gt_labels, gt_weights, gt_offsets: the same for the GTs.
        thresholds, duplicate_weight, normalize: as in ``image_recall_reward``.
        out: float64 (B,), written.
    """
    for b in prange(out.size):
        p0, p1 = offsets[b], offsets[b + 1]
        g0, g1 = gt_offsets[b], gt_offsets[b + 1]
        out[b] = image_recall_reward(
            boxes[p0:p1],
            labels[p0:p1],
            weights[p0:p1],
            gt_boxes[g0:g1],
            gt_labels[g0:g1],
            gt_weights[g0:g1],
            thresholds,
            duplicate_weight,
            normalize,
        )


@kernel
def match_iou_batch(boxes, labels, offsets, gt_boxes, gt_labels, gt_offsets, threshold, out):
    """Per prediction, the IoU of its best same-class GT when above ``threshold``, else 0.

    Args: packed predictions ``boxes`` float64 (P, 4) xywh, ``labels`` int64
    (P,), ``offsets`` int64 (B + 1,); GTs likewise; ``threshold`` float;
    ``out`` float64 (P,), written.
    """
    for b in prange(offsets.size - 1):
        p0, p1 = offsets[b], offsets[b + 1]
        g0, g1 = gt_offsets[b], gt_offsets[b + 1]
        best_gt = np.empty(p1 - p0, np.int64)
        _best_gt(boxes[p0:p1], labels[p0:p1], gt_boxes[g0:g1], gt_labels[g0:g1], best_gt, out[p0:p1])
        for p in range(p0, p1):
            if out[p] <= threshold:
                out[p] = 0.0
