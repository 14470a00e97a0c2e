"""Compiled COCO evaluation: pycocotools' computeIoU, evaluateImg and accumulate, split as they are.

Data flow (every array C-contiguous, one dtype signature per kernel):

1. ``layout_blocks`` groups each image's detections and ground truths (GT) by
   category into *blocks*, one per (image, category) holding a detection or a
   GT: pycocotools' ``evalImgs`` entries. It returns a :class:`Blocks`.
2. The IoU of every block, a ``(det_count, gt_count)`` row-major matrix (rows:
   detections by descending score, columns: GTs in input order) stored at
   ``iou_start`` in one flat float64 array: pycocotools' ``computeIoU``.
   ``box_ious`` fills it for boxes; any other source of overlap (instance
   masks, keypoint OKS) fills the same layout and skips ``box_ious``.
3. ``evaluate_blocks``: the greedy matching of ``evaluateImg`` per area range
   and IoU threshold, from the flat IoU array only.
4. ``accumulate``: pycocotools' ``accumulate`` over all images of a category
   (the dataset statistics), or ``image_average_precision``: the same curve per
   image (the per-example ``map_reward``).

Index conventions: ``P`` detections and ``G`` GTs in flat arrays, ``B``
images, ``NB`` blocks, ``A`` area ranges, ``T`` IoU thresholds, ``R`` recall
points, ``K`` categories, ``M`` max-detection settings.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from rewards._boxes import box_iou
from rewards._numba import kernel

# Values of the (A, T, P) int8 status array written by ``evaluate_blocks``.
FALSE_POSITIVE = np.int8(0)
TRUE_POSITIVE = np.int8(1)
IGNORED = np.int8(2)  # matched to an ignored GT, out of the area range unmatched, or beyond max_det
# pycocotools adds np.spacing(1) to the precision denominator.
_PRECISION_EPS = np.spacing(1.0)
_INSERTION_RUN = 8  # _stable_order merges insertion-sorted runs of this length
# numpy's pairwise summation: blocks of this many elements are summed with 8 accumulators.
_PAIRWISE_BLOCK = 128


class Blocks(NamedTuple):
    """The (image, category) blocks of a packed batch (all int64).

    Fields:
        det_order: (P,) detection indices grouped by image, then category
            ascending, then score descending (ties in input order, as
            pycocotools' mergesort). A block's detections are
            ``det_order[det_start[k] : det_start[k] + det_count[k]]``.
        det_rank: (P,) each detection's rank by score within its block.
        gt_order: (G,) GT indices grouped by image, then category, in input order.
        image: (NB,) the block's image (index into the batch offsets).
        label: (NB,) the block's category.
        det_start: (NB,) start of the block in ``det_order``.
        det_count: (NB,) detections kept: min(block size, max_det).
        gt_start: (NB,) start of the block in ``gt_order``.
        gt_count: (NB,) GTs of the block.
        iou_start: (NB + 1,) offset of the block's IoU matrix in the flat IoU
            array; ``iou_start[-1]`` is that array's size.
    """

    det_order: np.ndarray
    det_rank: np.ndarray
    gt_order: np.ndarray
    image: np.ndarray
    label: np.ndarray
    det_start: np.ndarray
    det_count: np.ndarray
    gt_start: np.ndarray
    gt_count: np.ndarray
    iou_start: np.ndarray


@kernel
def _stable_order(major, minor):
    """Indices sorting by (major, minor) ascending, ties in input order (pycocotools' mergesort ties).

    Args: ``major`` int64 (n,), ``minor`` float64 (n,). Insertion-sorted runs
    of ``_INSERTION_RUN``, then a bottom-up merge sort (written out rather than
    ``np.argsort(kind="mergesort")``, whose generic code compiles for seconds).
    The keys move with the indices, so comparisons read them in order rather
    than through the index (a dependent load per comparison).
    """
    n = major.size
    order = np.empty(n, np.int64)
    key_a = np.empty(n, np.int64)
    key_b = np.empty(n, np.float64)
    for i in range(n):
        order[i] = i
        key_a[i] = major[i]
        key_b[i] = minor[i]
    for lo in range(0, n, _INSERTION_RUN):
        hi = min(lo + _INSERTION_RUN, n)
        for i in range(lo + 1, hi):
            xa, xb, xi = key_a[i], key_b[i], order[i]
            j = i
            while j > lo and (xa < key_a[j - 1] or (xa == key_a[j - 1] and xb < key_b[j - 1])):
                key_a[j], key_b[j], order[j] = key_a[j - 1], key_b[j - 1], order[j - 1]
                j -= 1
            key_a[j], key_b[j], order[j] = xa, xb, xi
    if n <= _INSERTION_RUN:
        return order
    scratch_a = np.empty(n, np.int64)
    scratch_b = np.empty(n, np.float64)
    scratch = np.empty(n, np.int64)
    width = _INSERTION_RUN
    while width < n:
        for lo in range(0, n, 2 * width):
            mid = min(lo + width, n)
            hi = min(lo + 2 * width, n)
            i = lo
            j = mid
            k = lo
            while i < mid and j < hi:
                # Take the right only when strictly before: ties keep input order.
                if key_a[j] < key_a[i] or (key_a[j] == key_a[i] and key_b[j] < key_b[i]):
                    scratch_a[k], scratch_b[k], scratch[k] = key_a[j], key_b[j], order[j]
                    j += 1
                else:
                    scratch_a[k], scratch_b[k], scratch[k] = key_a[i], key_b[i], order[i]
                    i += 1
                k += 1
            while i < mid:
                scratch_a[k], scratch_b[k], scratch[k] = key_a[i], key_b[i], order[i]
                i += 1
                k += 1
            while j < hi:
                scratch_a[k], scratch_b[k], scratch[k] = key_a[j], key_b[j], order[j]
                j += 1
                k += 1
        key_a, scratch_a = scratch_a, key_a
        key_b, scratch_b = scratch_b, key_b
        order, scratch = scratch, order
        width *= 2
    return order


@kernel
def layout_blocks(det_labels, det_scores, det_offsets, gt_labels, gt_offsets, max_det):
    """Groups a packed batch into (image, category) blocks; returns the fields of :class:`Blocks`.

    Args:
        det_labels: int64 (P,) category of each detection.
        det_scores: float64 (P,) score of each detection.
        det_offsets: int64 (B + 1,) image ``b`` owns detections ``det_offsets[b]:det_offsets[b + 1]``.
        gt_labels: int64 (G,) category of each GT.
        gt_offsets: int64 (B + 1,) image ``b`` owns GTs ``gt_offsets[b]:gt_offsets[b + 1]``.
        max_det: int, detections kept per block (pycocotools' ``maxDets[-1]``).
    """
    n_det = det_labels.size
    n_gt = gt_labels.size
    det_order = np.empty(n_det, np.int64)
    det_rank = np.empty(n_det, np.int64)
    gt_order = np.empty(n_gt, np.int64)
    cap = n_det + n_gt
    image = np.empty(cap, np.int64)
    label = np.empty(cap, np.int64)
    det_start = np.empty(cap, np.int64)
    det_count = np.empty(cap, np.int64)
    gt_start = np.empty(cap, np.int64)
    gt_count = np.empty(cap, np.int64)
    iou_start = np.empty(cap + 1, np.int64)
    nb = 0
    n_iou = 0
    for b in range(det_offsets.size - 1):
        p0, p1 = det_offsets[b], det_offsets[b + 1]
        g0, g1 = gt_offsets[b], gt_offsets[b + 1]
        do = _stable_order(det_labels[p0:p1], -det_scores[p0:p1])
        go = _stable_order(gt_labels[g0:g1], np.zeros(g1 - g0))
        nd_all = p1 - p0
        ng_all = g1 - g0
        i = 0
        j = 0
        while i < nd_all or j < ng_all:
            if j < ng_all and (i == nd_all or gt_labels[g0 + go[j]] <= det_labels[p0 + do[i]]):
                lab = gt_labels[g0 + go[j]]
            else:
                lab = det_labels[p0 + do[i]]
            i_end = i
            while i_end < nd_all and det_labels[p0 + do[i_end]] == lab:
                i_end += 1
            j_end = j
            while j_end < ng_all and gt_labels[g0 + go[j_end]] == lab:
                j_end += 1
            nd = min(i_end - i, max_det)
            image[nb] = b
            label[nb] = lab
            det_start[nb] = p0 + i
            det_count[nb] = nd
            gt_start[nb] = g0 + j
            gt_count[nb] = j_end - j
            iou_start[nb] = n_iou
            n_iou += nd * (j_end - j)
            for r in range(i_end - i):
                det_order[p0 + i + r] = p0 + do[i + r]
                det_rank[p0 + do[i + r]] = r
            for r in range(j_end - j):
                gt_order[g0 + j + r] = g0 + go[j + r]
            nb += 1
            i = i_end
            j = j_end
    iou_start[nb] = n_iou
    return (
        det_order,
        det_rank,
        gt_order,
        image[:nb].copy(),
        label[:nb].copy(),
        det_start[:nb].copy(),
        det_count[:nb].copy(),
        gt_start[:nb].copy(),
        gt_count[:nb].copy(),
        iou_start[: nb + 1].copy(),
    )


@kernel
def box_ious(blocks, det_boxes, gt_boxes, gt_crowd, out):
    """pycocotools' computeIoU for boxes: fills the flat IoU array of ``blocks``.

    Args:
        blocks: :class:`Blocks` from ``layout_blocks``.
        det_boxes: float64 (P, 4) xywh.
        gt_boxes: float64 (G, 4) xywh.
        gt_crowd: bool (G,); against a crowd GT the union is the detection's area.
        out: float64 (blocks.iou_start[-1],), written.
    """
    for k in range(blocks.image.size):
        nd = blocks.det_count[k]
        ng = blocks.gt_count[k]
        o = blocks.iou_start[k]
        for d in range(nd):
            di = blocks.det_order[blocks.det_start[k] + d]
            for g in range(ng):
                gi = blocks.gt_order[blocks.gt_start[k] + g]
                out[o + d * ng + g] = box_iou(det_boxes, di, gt_boxes, gi, gt_crowd[gi])


@kernel
def evaluate_blocks(blocks, ious, det_area, gt_area, gt_crowd, thresholds, area_lo, area_hi, status):
    """pycocotools' evaluateImg for every block, area range and IoU threshold.

    Args:
        blocks: :class:`Blocks`.
        ious: float64 flat IoU array laid out by ``blocks`` (``box_ious`` or another source).
        det_area: float64 (P,) detection areas (box area for bbox; results' area in pycocotools).
        gt_area: float64 (G,) GT areas (the annotation's ``area``).
        gt_crowd: bool (G,); crowd GTs are ignored and may match many detections.
        thresholds: float64 (T,) IoU thresholds.
        area_lo, area_hi: float64 (A,) area ranges, inclusive at both ends.
        status: int8 (A, T, P), written for the kept detections of every block
            (FALSE_POSITIVE / TRUE_POSITIVE / IGNORED); others are left as they are.
    """
    max_ng = 1
    max_nd = 1
    for k in range(blocks.image.size):
        max_ng = max(max_ng, blocks.gt_count[k])
        max_nd = max(max_nd, blocks.det_count[k])
    gtind = np.empty(max_ng, np.int64)  # columns of the block, non-ignored GTs first (stable)
    gt_ignore = np.empty(max_ng, np.bool_)
    crowd = np.empty(max_ng, np.bool_)
    taken = np.empty(max_ng, np.bool_)
    out_of_area = np.empty(max_nd, np.bool_)
    for k in range(blocks.image.size):
        nd = blocks.det_count[k]
        ng = blocks.gt_count[k]
        if nd == 0:
            continue
        o = blocks.iou_start[k]
        d0 = blocks.det_start[k]
        g0 = blocks.gt_start[k]
        top = -1.0  # the block's largest IoU: no match at a threshold above it
        for q in range(nd * ng):
            v = ious[o + q]
            if not v <= top:  # larger, or NaN (which `v < best` below lets match: never skip then)
                top = v if v == v else np.inf
        for a in range(area_lo.size):
            lo = area_lo[a]
            hi = area_hi[a]
            c = 0
            for second in range(2):
                for g in range(ng):
                    gi = blocks.gt_order[g0 + g]
                    ignore = gt_crowd[gi] or gt_area[gi] < lo or gt_area[gi] > hi
                    if ignore == (second == 1):
                        gtind[c] = g
                        gt_ignore[c] = ignore
                        crowd[c] = gt_crowd[gi]
                        c += 1
            for d in range(nd):
                di = blocks.det_order[d0 + d]
                out_of_area[d] = det_area[di] < lo or det_area[di] > hi
            for t in range(thresholds.size):
                if top < min(thresholds[t], 1 - 1e-10):  # every detection unmatched
                    for d in range(nd):
                        status[a, t, blocks.det_order[d0 + d]] = IGNORED if out_of_area[d] else FALSE_POSITIVE
                    continue
                taken[:ng] = False
                for d in range(nd):
                    best = min(thresholds[t], 1 - 1e-10)
                    m = -1
                    row = o + d * ng
                    for q in range(ng):
                        if taken[q] and not crowd[q]:
                            continue
                        # Once holding a regular match, stop at the first ignored GT (they sort last).
                        if m > -1 and not gt_ignore[m] and gt_ignore[q]:
                            break
                        v = ious[row + gtind[q]]
                        if v < best:
                            continue
                        best = v
                        m = q
                    di = blocks.det_order[d0 + d]
                    if m == -1:
                        status[a, t, di] = IGNORED if out_of_area[d] else FALSE_POSITIVE
                    else:
                        status[a, t, di] = IGNORED if gt_ignore[m] else TRUE_POSITIVE
                        taken[m] = True


@kernel(inline=True)
def _precision_curve(rc, pr, k, recall_thresholds, samples, start, stride, write_zeros=True):
    """pycocotools' interpolated precision at each recall point, from the ``k`` true-positive points.

    ``rc[:k]``/``pr[:k]`` are recall and precision at each true positive (see
    ``_add_detection``); they are made monotone in place and
    ``samples[start + r * stride]`` receives the precision at the first point
    whose recall reaches recall point ``r``, or 0 past the end (left
    unwritten when ``write_zeros`` is False). Returns how many recall points
    received a true positive's precision (the others are 0).

    pycocotools keeps a point per detection, but recall only rises at true
    positives and precision only falls between them, so its envelope at a
    true positive and its ``searchsorted(rc, r, "left")`` sample are those of
    the true-positive points alone: the same floats, with no division per
    false positive.
    """
    for q in range(k - 1, 0, -1):
        if pr[q] > pr[q - 1]:
            pr[q - 1] = pr[q]
    # Recall point r takes the first point i with rc[i] >= r: walk the points, filling as they reach.
    n_recall = recall_thresholds.size
    r = 0
    for i in range(k):
        reach = rc[i]
        value = pr[i]
        while r < n_recall and recall_thresholds[r] <= reach:
            samples[start + r * stride] = value
            r += 1
    filled = r
    if write_zeros:
        while r < n_recall:
            samples[start + r * stride] = 0.0
            r += 1
    return filled


@kernel(inline=True)
def _add_detection(s, tp, fp, n_positive, rc, pr, k):
    """Adds one detection of status ``s`` (in score order) to the curve; returns (tp, fp, k).

    A true positive appends its (recall, precision) point as pycocotools
    computes it; a false positive only counts; an ignored detection adds
    neither (pycocotools repeats the previous point, which changes nothing).
    """
    if s == TRUE_POSITIVE:
        tp += 1.0
        rc[k] = tp / n_positive
        pr[k] = tp / (fp + tp + _PRECISION_EPS)
        return tp, fp, k + 1
    if s == FALSE_POSITIVE:
        fp += 1.0
    return tp, fp, k


@kernel(inline=True)
def _pairwise_leaf(a, start, n):
    """numpy's pairwise sum of at most ``_PAIRWISE_BLOCK`` elements: 8 accumulators, then the rest."""
    if n < 8:
        res = 0.0
        for i in range(start, start + n):
            res += a[i]
        return res
    r0, r1, r2, r3 = a[start], a[start + 1], a[start + 2], a[start + 3]
    r4, r5, r6, r7 = a[start + 4], a[start + 5], a[start + 6], a[start + 7]
    i = 8
    while i < n - n % 8:
        j = start + i
        r0 += a[j]
        r1 += a[j + 1]
        r2 += a[j + 2]
        r3 += a[j + 3]
        r4 += a[j + 4]
        r5 += a[j + 5]
        r6 += a[j + 6]
        r7 += a[j + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[start + i]
        i += 1
    return res


@kernel(inline=True)
def _known_zero(s, m, zero_from, block, stride):
    """Whether ``a[s:s + m]`` lies in the zero tails of :func:`pairwise_sum_zero_tails`'s regions."""
    if zero_from.size == 0:
        return False
    t = s // block
    while t * block < s + m:
        if max(s, t * block) < t * block + zero_from[t] * stride:
            return False
        t += 1
    return True


@kernel
def pairwise_sum(a, start, n):
    """Sum of ``a[start:start + n]`` in numpy's pairwise order (``np.sum`` to the last bit).

    numpy halves a range (at a multiple of 8) until it is at most 128 long.
    Written as a post-order walk with an explicit stack: numba cannot load a
    cached self-recursive function.
    """
    return pairwise_sum_zero_tails(a, start, n, np.zeros(0, np.int64), 1, 1)


@kernel
def pairwise_sum_zero_tails(a, start, n, zero_from, block, stride):
    """:func:`pairwise_sum` of ``a[start:start + n]`` that skips the leaves it knows are zero.

    Args:
        a, start, n: as :func:`pairwise_sum`.
        zero_from: int64 (T,) region ``t`` is ``a[start + t * block : start + (t + 1) * block]``,
            and its elements from ``zero_from[t] * stride`` on are 0.0 (an empty array: no
            knowledge, every leaf is summed).
        block, stride: int, as above (``image_average_precision``: ``R * K`` and ``K``,
            the recall points past every category's last true positive are zero).

    A leaf (at most 128 elements) inside the zero tails sums to 0.0 without
    being read; adding 0.0 is exact, so the result is bit for bit
    :func:`pairwise_sum`'s.
    """
    if n <= _PAIRWISE_BLOCK:
        if _known_zero(0, n, zero_from, block, stride):
            return 0.0
        return _pairwise_leaf(a, start, n)
    node_start = np.empty(128, np.int64)
    node_n = np.empty(128, np.int64)
    node_phase = np.zeros(128, np.int64)
    values = np.empty(128)
    top = 0
    n_values = 0
    node_start[0] = start
    node_n[0] = n
    node_phase[0] = 0
    while top >= 0:
        s = node_start[top]
        m = node_n[top]
        if m <= _PAIRWISE_BLOCK:
            if _known_zero(s - start, m, zero_from, block, stride):
                values[n_values] = 0.0
            else:
                values[n_values] = _pairwise_leaf(a, s, m)
            n_values += 1
            top -= 1
            continue
        half = m // 2
        half -= half % 8
        if node_phase[top] == 0:
            node_phase[top] = 1
            top += 1
            node_start[top], node_n[top], node_phase[top] = s, half, 0
        elif node_phase[top] == 1:
            node_phase[top] = 2
            top += 1
            node_start[top], node_n[top], node_phase[top] = s + half, m - half, 0
        else:
            n_values -= 1
            values[n_values - 1] = values[n_values - 1] + values[n_values]
            top -= 1
    return values[0]


@kernel
def image_average_precision(
    blocks,
    status,
    det_offsets,
    gt_crowd,
    gt_area,
    area_lo,
    area_hi,
    recall_thresholds,
    penalize_absent,
    out,
):
    """COCO AP of each image alone (pycocotools' stats[0] of a one-image dataset).

    Args:
        blocks: :class:`Blocks` of the batch.
        status: int8 (1, T, P) from ``evaluate_blocks`` with one area range.
        det_offsets: int64 (B + 1,) detections of each image.
        gt_crowd: bool (G,); gt_area: float64 (G,).
        area_lo, area_hi: float64 (1,) the area range of ``status``.
        recall_thresholds: float64 (R,).
        penalize_absent: bool; a category predicted but without a positive GT
            scores 0 and counts in the mean (COCO leaves it out).
        out: float64 (B,), written. Where COCO has no value (no category with
            a positive GT): 1.0 for an image without detections, else 0.0.

    The mean is numpy's pairwise mean over the (T, R, K) precision samples in
    pycocotools' order, so a perfect image scores exactly 1.0 as in pycocotools.
    """
    n_thresholds = status.shape[1]
    n_recall = recall_thresholds.size
    nb = blocks.image.size
    # Scratch sized by the largest image.
    max_blocks = 0
    max_nd = 1
    k = 0
    while k < nb:
        k0 = k
        while k < nb and blocks.image[k] == blocks.image[k0]:
            max_nd = max(max_nd, blocks.det_count[k])
            k += 1
        max_blocks = max(max_blocks, k - k0)
    samples = np.empty(n_thresholds * n_recall * max(max_blocks, 1))
    zero_from = np.empty(n_thresholds, np.int64)  # per threshold: recall points from here on are 0
    n_positive = np.empty(max(max_blocks, 1), np.int64)
    rc = np.empty(max_nd)
    pr = np.empty(max_nd)
    out[:] = 0.0
    k = 0
    for b in range(out.size):
        k0 = k
        while k < nb and blocks.image[k] == b:
            k += 1
        n_scored = 0
        for kk in range(k0, k):
            npos = 0
            for g in range(blocks.gt_count[kk]):
                gi = blocks.gt_order[blocks.gt_start[kk] + g]
                if not (gt_crowd[gi] or gt_area[gi] < area_lo[0] or gt_area[gi] > area_hi[0]):
                    npos += 1
            n_positive[kk - k0] = npos
            if npos > 0 or (penalize_absent and blocks.det_count[kk] > 0):
                n_scored += 1
        if n_scored == 0:
            out[b] = 1.0 if det_offsets[b + 1] == det_offsets[b] else 0.0
            continue
        total = n_thresholds * n_recall * n_scored
        for q in range(total):  # (a memset) only the true positives' precisions are written below
            samples[q] = 0.0
        # Threshold by threshold: the samples of one threshold (R * n_scored) stay in cache.
        for t in range(n_thresholds):
            j = 0
            reach = 0
            for kk in range(k0, k):
                npos = n_positive[kk - k0]
                if npos == 0 and not (penalize_absent and blocks.det_count[kk] > 0):
                    continue
                start = t * n_recall * n_scored + j
                j += 1
                if npos == 0:  # penalized absent category: all 0
                    continue
                tp = 0.0
                fp = 0.0
                n = 0
                for d in range(blocks.det_count[kk]):
                    di = blocks.det_order[blocks.det_start[kk] + d]
                    tp, fp, n = _add_detection(status[0, t, di], tp, fp, npos, rc, pr, n)
                filled = _precision_curve(rc, pr, n, recall_thresholds, samples, start, n_scored, False)
                reach = max(reach, filled)
            zero_from[t] = reach
        out[b] = pairwise_sum_zero_tails(samples, 0, total, zero_from, n_recall * n_scored, n_scored) / total


@kernel
def accumulate(
    order, category_starts, det_rank, status, n_positive, max_dets, recall_thresholds, precision, recall
):
    """pycocotools' accumulate: precision and recall per threshold, category, area range and max_dets.

    Args:
        order: int64 (N,) the detections to accumulate, grouped by category,
            then by score descending, ties by (image, rank): pycocotools'
            mergesort of the image-ordered concatenation.
        category_starts: int64 (K + 1,) category ``c`` owns ``order[category_starts[c]:category_starts[c + 1]]``.
        det_rank: int64 (P,) rank of each detection in its (image, category) block.
        status: int8 (A, T, P) from ``evaluate_blocks``.
        n_positive: int64 (A, K) non-ignored GTs per area range and category.
        max_dets: int64 (M,) ascending.
        recall_thresholds: float64 (R,).
        precision: float64 (T * R * K * A * M,) the C-order flattening of
            pycocotools' (T, R, K, A, M) precision, written where the category
            has a positive GT (the caller fills -1, COCO's "absent").
        recall: float64 (T, K, A, M), written likewise.
    """
    n_thresholds = status.shape[1]
    n_recall = recall_thresholds.size
    n_cat = category_starts.size - 1
    n_area = status.shape[0]
    n_max = max_dets.size
    for c in range(n_cat):
        s0, s1 = category_starts[c], category_starts[c + 1]
        n = s1 - s0
        rc = np.empty(max(n, 1))
        pr = np.empty(max(n, 1))
        # The category's detections as contiguous rows (the status gather is the memory-bound part).
        local = np.empty((n_thresholds, max(n, 1)), np.int8)
        # Positions (in score order) of the detections within each max_dets limit.
        within = np.empty((max_dets.size, max(n, 1)), np.int64)
        n_within = np.zeros(max_dets.size, np.int64)
        for q in range(n):
            r = det_rank[order[s0 + q]]
            for mi in range(max_dets.size):
                if r < max_dets[mi]:
                    within[mi, n_within[mi]] = q
                    n_within[mi] += 1
        for a in range(status.shape[0]):
            npos = n_positive[a, c]
            if npos == 0:
                continue
            for q in range(n):
                d = order[s0 + q]
                for t in range(n_thresholds):
                    local[t, q] = status[a, t, d]
            for mi in range(max_dets.size):
                for t in range(n_thresholds):
                    tp = 0.0
                    fp = 0.0
                    k = 0
                    for j in range(n_within[mi]):
                        tp, fp, k = _add_detection(local[t, within[mi, j]], tp, fp, npos, rc, pr, k)
                    recall[t, c, a, mi] = tp / npos
                    start = (((t * n_recall) * n_cat + c) * n_area + a) * n_max + mi
                    _precision_curve(rc, pr, k, recall_thresholds, precision, start, n_cat * n_area * n_max)
