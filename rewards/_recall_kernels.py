"""Compiled recall reward of the paper (big_vision's released detection reward)."""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from rewards._boxes import box_iou


@numba.njit(cache=True)
def _same_class_ious(boxes, labels, gt_boxes, gt_labels):
    ious = np.zeros((labels.size, gt_labels.size))
    for p in range(labels.size):
        for g in range(gt_labels.size):
            if labels[p] == gt_labels[g]:
                ious[p, g] = box_iou(boxes[p], gt_boxes[g], False)
    return ious


@numba.njit(cache=True)
def _best_gt(ious, threshold, best_gt, best_iou):
    """Each prediction keeps its best GT above the threshold (first index on ties)."""
    for p in range(ious.shape[0]):
        best_gt[p] = 0
        best_iou[p] = 0.0
        for g in range(ious.shape[1]):
            v = ious[p, g]
            if v > threshold and v > best_iou[p]:
                best_iou[p] = v
                best_gt[p] = g


@numba.njit(cache=True)
def _gt_match(best_gt, best_iou, n_gt, match):
    """Each GT takes its best remaining prediction (first index on ties), -1 if none."""
    match[:] = -1
    top = np.zeros(n_gt)
    for p in range(best_gt.size):
        if best_iou[p] > top[best_gt[p]]:
            top[best_gt[p]] = best_iou[p]
            match[best_gt[p]] = p


@numba.njit(cache=True)
def image_recall_reward(
    boxes, labels, gt_boxes, gt_labels, thresholds, weights, duplicate_weight, normalize
):
    n = labels.size
    m = gt_labels.size
    ious = _same_class_ious(boxes, labels, gt_boxes, gt_labels)
    best_gt = np.empty(n, np.int64)
    best_iou = np.empty(n)
    match = np.empty(m, np.int64)
    total = 0.0
    for t in range(thresholds.size):
        _best_gt(ious, thresholds[t], best_gt, best_iou)
        _gt_match(best_gt, best_iou, m, match)
        found = 0.0
        for g in range(m):
            if match[g] >= 0:
                found += weights[gt_labels[g]]
        duplicates = 0.0
        for p in range(n):
            if best_iou[p] > 0 and match[best_gt[p]] != p:
                duplicates += weights[labels[p]]
        total += found - duplicate_weight * duplicates
    reward = total / thresholds.size
    if normalize:
        mass = 0.0
        for g in range(m):
            mass += weights[gt_labels[g]]
        reward = reward / mass if mass > 0 else 0.0
    return reward


@numba.njit(parallel=True, cache=True)
def recall_batch(
    boxes, labels, offsets, gt_boxes, gt_labels, gt_offsets,
    thresholds, weights, duplicate_weight, normalize, out,
):
    for b in prange(out.size):
        p0, p1 = offsets[b], offsets[b + 1]
        g0, g1 = gt_offsets[b], gt_offsets[b + 1]
        out[b] = image_recall_reward(
            boxes[p0:p1], labels[p0:p1], gt_boxes[g0:g1], gt_labels[g0:g1],
            thresholds, weights, duplicate_weight, normalize,
        )


@numba.njit(parallel=True, cache=True)
def match_iou_batch(boxes, labels, offsets, gt_boxes, gt_labels, gt_offsets, threshold, out):
    """Per prediction, the IoU of its best same-class GT when above ``threshold``, else 0."""
    for b in prange(offsets.size - 1):
        p0, p1 = offsets[b], offsets[b + 1]
        g0, g1 = gt_offsets[b], gt_offsets[b + 1]
        ious = _same_class_ious(boxes[p0:p1], labels[p0:p1], gt_boxes[g0:g1], gt_labels[g0:g1])
        best_gt = np.empty(p1 - p0, np.int64)
        _best_gt(ious, threshold, best_gt, out[p0:p1])
