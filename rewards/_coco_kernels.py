"""Compiled COCO bbox evaluation: pycocotools' evaluateImg and accumulate rules.

One image's matching (``evaluate_image``) is the shared core: the per-example
mAP reward accumulates it over that image alone, the whole-dataset evaluation
accumulates it over all images of a category.
"""

from __future__ import annotations

import numpy as np

from rewards._numba import kernel
from numba import prange

from rewards._boxes import box_iou

FALSE_POSITIVE = np.int8(0)
TRUE_POSITIVE = np.int8(1)
IGNORED = np.int8(2)
# pycocotools adds np.spacing(1) to the precision denominator.
_PRECISION_EPS = np.spacing(1.0)


_INSERTION_SORT_MAX = 64


@kernel
def _stable_order(major, minor):
    """Indices sorting by (major, minor) ascending, ties in input order.

    Insertion sort for the small per-image arrays (no allocation beyond the
    result), two stable mergesorts beyond that.
    """
    n = major.size
    if n > _INSERTION_SORT_MAX:
        by_minor = np.argsort(minor, kind="mergesort")
        return by_minor[np.argsort(major[by_minor], kind="mergesort")]
    order = np.empty(n, np.int64)
    for i in range(n):
        j = i
        while j > 0 and (
            major[order[j - 1]] > major[i]
            or (major[order[j - 1]] == major[i] and minor[order[j - 1]] > minor[i])
        ):
            order[j] = order[j - 1]
            j -= 1
        order[j] = i
    return order


@kernel
def order_detections(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Indices grouped by label (ascending), each group by score descending, ties in input order."""
    return _stable_order(labels, -scores)


@kernel
def order_ground_truth(labels: np.ndarray, ignore: np.ndarray) -> np.ndarray:
    """Indices grouped by label (ascending), non-ignored first in each group, ties in input order."""
    return _stable_order(labels, ignore.astype(np.int8))


@kernel
def _match(ious, gt_ignore, gt_crowd, det_out_of_area, threshold, gt_taken, status):
    """Greedy COCO matching of detections (rows, score order) at one IoU threshold."""
    nd, ng = ious.shape
    gt_taken[:] = False
    for d in range(nd):
        best = min(threshold, 1 - 1e-10)
        m = -1
        for g in range(ng):
            if gt_taken[g] and not gt_crowd[g]:
                continue
            # Once holding a regular match, stop at the first ignored GT (they sort last).
            if m > -1 and not gt_ignore[m] and gt_ignore[g]:
                break
            if ious[d, g] < best:
                continue
            best = ious[d, g]
            m = g
        if m == -1:
            status[d] = IGNORED if det_out_of_area[d] else FALSE_POSITIVE
        else:
            status[d] = IGNORED if gt_ignore[m] else TRUE_POSITIVE
            gt_taken[m] = True


@kernel
def evaluate_image(
    boxes, scores, labels, gt_boxes, gt_labels, gt_crowd, gt_area,
    thresholds, area_lo, area_hi, max_det, det_order, status, rank,
):
    """COCO evaluateImg for every category of one image.

    Writes ``status[a, t, d]`` (FALSE_POSITIVE / TRUE_POSITIVE / IGNORED) for
    area range ``a`` and threshold ``t``, and ``rank[d]``, the detection's rank
    by score within its category. Detections ranked ``>= max_det`` are left
    IGNORED: COCO drops them before matching.
    """
    n = scores.size
    m = gt_labels.size
    status[:] = IGNORED
    gt_taken = np.empty(m, np.bool_)
    gt_ignore = np.empty(m, np.bool_)
    # Scratch for one category block, sized for the largest possible block.
    ious_buf = np.empty((min(n, max_det), m))
    ign_buf = np.empty(m, np.bool_)
    crowd_buf = np.empty(m, np.bool_)
    out_of_area_buf = np.empty(min(n, max_det), np.bool_)
    block_status = np.empty(min(n, max_det), np.int8)
    for a in range(area_lo.size):
        for g in range(m):
            gt_ignore[g] = gt_crowd[g] or gt_area[g] < area_lo[a] or gt_area[g] > area_hi[a]
        gt_order = order_ground_truth(gt_labels, gt_ignore)
        i = 0
        j = 0
        while i < n:
            label = labels[det_order[i]]
            i_end = i
            while i_end < n and labels[det_order[i_end]] == label:
                i_end += 1
            while j < m and gt_labels[gt_order[j]] < label:
                j += 1
            j_end = j
            while j_end < m and gt_labels[gt_order[j_end]] == label:
                j_end += 1
            nd = min(i_end - i, max_det)
            ng = j_end - j
            if a == 0:
                for r in range(i_end - i):
                    rank[det_order[i + r]] = r
            ious = ious_buf[:nd, :ng]
            for g in range(ng):
                gi = gt_order[j + g]
                ign_buf[g] = gt_ignore[gi]
                crowd_buf[g] = gt_crowd[gi]
            for d in range(nd):
                di = det_order[i + d]
                det_area = boxes[di, 2] * boxes[di, 3]
                out_of_area_buf[d] = det_area < area_lo[a] or det_area > area_hi[a]
                for g in range(ng):
                    gi = gt_order[j + g]
                    ious[d, g] = box_iou(boxes, di, gt_boxes, gi, gt_crowd[gi])
            for t in range(thresholds.size):
                _match(ious, ign_buf[:ng], crowd_buf[:ng], out_of_area_buf[:nd], thresholds[t],
                       gt_taken[:ng], block_status[:nd])
                for d in range(nd):
                    status[a, t, det_order[i + d]] = block_status[d]
            i = i_end
            j = j_end


@kernel(inline=True)
def _count_at_most(table, x):
    """Number of entries of the sorted ``table`` that are <= x (a guess for uniform tables, then exact)."""
    n = table.size
    j = min(max(int(x * (n - 1)), 0), n)
    while j < n and table[j] <= x:
        j += 1
    while j > 0 and table[j - 1] > x:
        j -= 1
    return j


@kernel
def average_precision(status, n_positive, recall_thresholds, rc, pr):
    """COCO's interpolated AP (101 recall points) of detections in score order.

    Ignored detections add neither TP nor FP; they are skipped, which leaves
    the interpolated curve unchanged. ``rc``/``pr`` are scratch of len(status).
    COCO samples the monotone precision at searchsorted(rc, r, "left") for
    each recall point r: point q takes every r with rc[q-1] < r <= rc[q], so
    the sum is a weighted sum over curve points rather than over 101 samples.
    """
    tp = 0.0
    fp = 0.0
    k = 0
    for s in status:
        if s == IGNORED:
            continue
        if s == TRUE_POSITIVE:
            tp += 1.0
        else:
            fp += 1.0
        rc[k] = tp / n_positive
        pr[k] = tp / (fp + tp + _PRECISION_EPS)
        k += 1
    if tp == 0.0:
        return 0.0
    for q in range(k - 1, 0, -1):
        if pr[q] > pr[q - 1]:
            pr[q - 1] = pr[q]
    total = 0.0
    below = 0  # recall points already taken by earlier curve points
    for q in range(k):
        upto = _count_at_most(recall_thresholds, rc[q])
        if upto > below:
            total += pr[q] * (upto - below)
            below = upto
    return total / recall_thresholds.size


@kernel
def image_map(
    boxes, scores, labels, gt_boxes, gt_labels, gt_crowd, gt_area,
    thresholds, recall_thresholds, max_det, area_lo, area_hi, penalize_absent,
):
    """COCO AP averaged over thresholds and scored categories of one image."""
    n = scores.size
    det_order = order_detections(scores, labels)
    status = np.empty((1, thresholds.size, n), np.int8)
    rank = np.empty(n, np.int64)
    evaluate_image(
        boxes, scores, labels, gt_boxes, gt_labels, gt_crowd, gt_area,
        thresholds, area_lo, area_hi, max_det, det_order, status, rank,
    )
    gt_ignore = gt_crowd | (gt_area < area_lo[0]) | (gt_area > area_hi[0])
    positive_labels = np.sort(gt_labels[~gt_ignore])
    rc = np.empty(n)
    pr = np.empty(n)
    block = np.empty(n, np.int8)
    total = 0.0
    n_scored = 0
    i = 0
    j = 0
    n_pos_all = positive_labels.size
    while i < n or j < n_pos_all:
        if j < n_pos_all and (i == n or positive_labels[j] <= labels[det_order[i]]):
            label = positive_labels[j]
        else:
            label = labels[det_order[i]]
        i_end = i
        while i_end < n and labels[det_order[i_end]] == label:
            i_end += 1
        j_end = j
        while j_end < n_pos_all and positive_labels[j_end] == label:
            j_end += 1
        nd = min(i_end - i, max_det)
        n_positive = j_end - j
        if n_positive > 0:
            ap = 0.0
            for t in range(thresholds.size):
                for d in range(nd):
                    block[d] = status[0, t, det_order[i + d]]
                ap += average_precision(block[:nd], n_positive, recall_thresholds, rc, pr)
            total += ap / thresholds.size
            n_scored += 1
        elif penalize_absent and nd > 0:
            n_scored += 1
        i = i_end
        j = j_end
    if n_scored == 0:
        return 1.0 if n == 0 else 0.0
    return total / n_scored


@kernel
def map_batch(
    boxes, scores, labels, offsets, gt_boxes, gt_labels, gt_crowd, gt_area, gt_offsets,
    thresholds, recall_thresholds, max_det, area_lo, area_hi, penalize_absent, out,
):
    for b in prange(out.size):
        p0, p1 = offsets[b], offsets[b + 1]
        g0, g1 = gt_offsets[b], gt_offsets[b + 1]
        out[b] = image_map(
            boxes[p0:p1], scores[p0:p1], labels[p0:p1],
            gt_boxes[g0:g1], gt_labels[g0:g1], gt_crowd[g0:g1], gt_area[g0:g1],
            thresholds, recall_thresholds, max_det, area_lo, area_hi, penalize_absent,
        )


@kernel
def evaluate_dataset_images(
    boxes, scores, labels, offsets, gt_boxes, gt_labels, gt_crowd, gt_area, gt_offsets,
    thresholds, area_lo, area_hi, max_det, status, rank,
):
    """evaluate_image over every image; status (A, T, P) and rank (P,) in flat indices."""
    for b in prange(offsets.size - 1):
        p0, p1 = offsets[b], offsets[b + 1]
        g0, g1 = gt_offsets[b], gt_offsets[b + 1]
        det_order = order_detections(scores[p0:p1], labels[p0:p1])
        local_status = np.empty((area_lo.size, thresholds.size, p1 - p0), np.int8)
        evaluate_image(
            boxes[p0:p1], scores[p0:p1], labels[p0:p1],
            gt_boxes[g0:g1], gt_labels[g0:g1], gt_crowd[g0:g1], gt_area[g0:g1],
            thresholds, area_lo, area_hi, max_det, det_order, local_status, rank[p0:p1],
        )
        status[:, :, p0:p1] = local_status


@kernel
def accumulate_dataset(
    order, category_starts, rank, status, n_positive, max_dets, recall_thresholds,
    precision_out, recall_out,
):
    """COCO accumulate: per category, area range and maxDets, over all images.

    ``order`` lists detections grouped by category, then by score descending,
    ties by (image, rank): pycocotools' stable sort of the image-ordered
    concatenation. precision_out (T, C, A) is the mean over recall points at
    max_dets[-1]; recall_out (T, C, A, M). Categories without positives get -1.
    """
    n_thresholds = status.shape[1]
    for c in prange(category_starts.size - 1):
        s0, s1 = category_starts[c], category_starts[c + 1]
        block = np.empty(s1 - s0, np.int8)
        rc = np.empty(s1 - s0)
        pr = np.empty(s1 - s0)
        for a in range(status.shape[0]):
            npos = n_positive[a, c]
            for mi in range(max_dets.size):
                for t in range(n_thresholds):
                    if npos == 0:
                        recall_out[t, c, a, mi] = -1.0
                        if mi == max_dets.size - 1:
                            precision_out[t, c, a] = -1.0
                        continue
                    k = 0
                    tp = 0
                    for q in range(s0, s1):
                        d = order[q]
                        if rank[d] < max_dets[mi]:
                            block[k] = status[a, t, d]
                            tp += block[k] == TRUE_POSITIVE
                            k += 1
                    recall_out[t, c, a, mi] = tp / npos
                    if mi == max_dets.size - 1:
                        precision_out[t, c, a] = average_precision(
                            block[:k], npos, recall_thresholds, rc, pr
                        )
