"""Compiled panoptic quality: one pass over the pixels, then the panopticapi rules.

The pass run-length encodes each pixel's (gt segment, pred segment) key pair;
pixels come in long runs, so only the runs (thousands, not the 300k pixels)
go through a small open-addressing hash table that numbers the segments.
No per-pixel sort (np.unique) and one write per run.
"""

from __future__ import annotations

import numpy as np

from rewards._numba import kernel
from numba import prange

# Error codes returned to Python, which raises the ValueError.
OK = 0
UNKNOWN_PRED_CATEGORY = 1
INSTANCE_OUT_OF_RANGE = 2

_EMPTY = -1
_INT32_MIN = -(2**31)
_INT32_MAX = 2**31 - 1


@kernel(inline=True)
def _hash_slot(keys, key):
    mask = keys.size - 1
    i = ((key * -7046029254386353131) >> 17) & mask  # Fibonacci hashing
    while keys[i] != _EMPTY and keys[i] != key:
        i = (i + 1) & mask
    return i


@kernel
def _grown(keys, vals):
    new_keys = np.full(keys.size * 2, _EMPTY, np.int64)
    new_vals = np.zeros(keys.size * 2, np.int64)
    for i in range(keys.size):
        if keys[i] != _EMPTY:
            j = _hash_slot(new_keys, keys[i])
            new_keys[j] = keys[i]
            new_vals[j] = vals[i]
    return new_keys, new_vals


@kernel(inline=True)
def _segment_key(category, instance, is_crowd):
    return ((category * 2 + is_crowd) << 32) | (instance & 0xFFFFFFFF)


@kernel
def _runs(pred, gt, crowd, category_index, is_thing, run_gkey, run_pkey, run_len):
    """Run-length encodes the pixels' (gt segment key, pred segment key) pairs.

    Keys are -1 for VOID. Returns (error, error_value, number of runs). The
    hot loop touches no table and reassigns no array (both cost in numba).
    """
    n_pix = pred.shape[0]
    has_crowd = crowd.size > 0
    n_cat = category_index.size
    n_runs = 0
    last_g = -2
    last_p = -2
    for q in range(n_pix):
        c = gt[q, 0]
        ci = category_index[c] if 0 <= c < n_cat else -1
        if ci < 0:
            gkey = -1
        else:
            inst = gt[q, 1]
            if inst < _INT32_MIN or inst > _INT32_MAX:
                return INSTANCE_OUT_OF_RANGE, inst, 0
            cr = 1 if has_crowd and crowd[q] else 0
            if cr == 1 or not is_thing[ci]:
                inst = 0
            gkey = _segment_key(ci, inst, cr)
        c = pred[q, 0]
        if c < 0:
            pkey = -1
        else:
            ci = category_index[c] if c < n_cat else -1
            if ci < 0:
                return UNKNOWN_PRED_CATEGORY, c, 0
            inst = pred[q, 1]
            if inst < _INT32_MIN or inst > _INT32_MAX:
                return INSTANCE_OUT_OF_RANGE, inst, 0
            if not is_thing[ci]:
                inst = 0
            pkey = _segment_key(ci, inst, 0)
        if gkey == last_g and pkey == last_p:
            run_len[n_runs - 1] += 1
        else:
            run_gkey[n_runs] = gkey
            run_pkey[n_runs] = pkey
            run_len[n_runs] = 1
            n_runs += 1
            last_g = gkey
            last_p = pkey
    return OK, 0, n_runs


@kernel
def _segment_ids(run_keys, n_runs):
    """Dense segment index per run (0 = VOID) and each segment's key."""
    tab_k = np.full(64, _EMPTY, np.int64)
    tab_v = np.zeros(64, np.int64)
    keys = np.empty(n_runs + 1, np.int64)
    seg = np.empty(n_runs, np.int64)
    n = 1
    for r in range(n_runs):
        key = run_keys[r]
        if key == -1:
            seg[r] = 0
            continue
        slot = _hash_slot(tab_k, key)
        if tab_k[slot] == _EMPTY:
            tab_k[slot] = key
            tab_v[slot] = n
            keys[n] = key
            n += 1
            if 2 * n > tab_k.size:
                tab_k, tab_v = _grown(tab_k, tab_v)
                slot = _hash_slot(tab_k, key)
        seg[r] = tab_v[slot]
    return seg, keys[:n]


@kernel
def _pixel_pair_counts(pred, gt, crowd, category_index, is_thing):
    """Segments of gt and pred and their pixel-pair counts.

    Returns (error, error_value, gt_keys, pred_keys, inter): ``gt_keys[s]`` /
    ``pred_keys[s]`` is the key of segment s >= 1 (segment 0 is VOID) and
    ``inter[g, p]`` counts the pixels shared by gt segment g and pred segment p.
    """
    n_pix = pred.shape[0]
    # np.empty leaves pages untouched: only the runs actually written cost memory.
    run_gkey = np.empty(n_pix, np.int64)
    run_pkey = np.empty(n_pix, np.int64)
    run_len = np.empty(n_pix, np.int64)
    err, value, n_runs = _runs(pred, gt, crowd, category_index, is_thing, run_gkey, run_pkey, run_len)
    if err != OK:
        empty = np.zeros(1, np.int64)
        return err, value, empty, empty, np.zeros((1, 1), np.int64)
    g_seg, gt_keys = _segment_ids(run_gkey, n_runs)
    p_seg, pred_keys = _segment_ids(run_pkey, n_runs)
    inter = np.zeros((gt_keys.size, pred_keys.size), np.int64)
    for r in range(n_runs):
        inter[g_seg[r], p_seg[r]] += run_len[r]
    return OK, 0, gt_keys, pred_keys, inter


@kernel
def image_pq(pred, gt, crowd, category_index, is_thing, n_categories, result):
    """PQ, SQ, RQ of one image into result[0:3]; returns (error, value)."""
    err, value, gt_keys, pred_keys, inter = _pixel_pair_counts(
        pred, gt, crowd, category_index, is_thing
    )
    if err != OK:
        return err, value
    n_g = gt_keys.size
    n_p = pred_keys.size
    gt_area = inter.sum(axis=1)
    pred_area = inter.sum(axis=0)
    gt_cat = np.full(n_g, -1, np.int64)
    gt_crowd = np.zeros(n_g, np.bool_)
    pred_cat = np.full(n_p, -1, np.int64)
    for g in range(1, n_g):
        gt_cat[g] = gt_keys[g] >> 33
        gt_crowd[g] = (gt_keys[g] >> 32) & 1
    for p in range(1, n_p):
        pred_cat[p] = pred_keys[p] >> 33
    tp = np.zeros(n_categories, np.int64)
    fp = np.zeros(n_categories, np.int64)
    fn = np.zeros(n_categories, np.int64)
    iou_sum = np.zeros(n_categories)
    gt_matched = np.zeros(n_g, np.bool_)
    pred_matched = np.zeros(n_p, np.bool_)
    for g in range(1, n_g):
        if gt_crowd[g]:
            continue
        for p in range(1, n_p):
            if inter[g, p] == 0 or gt_cat[g] != pred_cat[p]:
                continue
            union = pred_area[p] + gt_area[g] - inter[g, p] - inter[0, p]
            iou = inter[g, p] / union
            if iou > 0.5:
                tp[gt_cat[g]] += 1
                iou_sum[gt_cat[g]] += iou
                gt_matched[g] = True
                pred_matched[p] = True
    crowd_segment = np.zeros(n_categories, np.int64)  # 0: none
    for g in range(1, n_g):
        if gt_crowd[g]:
            crowd_segment[gt_cat[g]] = g
        elif not gt_matched[g]:
            fn[gt_cat[g]] += 1
    for p in range(1, n_p):
        if pred_matched[p]:
            continue
        ignorable = inter[0, p]
        if crowd_segment[pred_cat[p]] > 0:
            ignorable += inter[crowd_segment[pred_cat[p]], p]
        if ignorable / pred_area[p] > 0.5:
            continue
        fp[pred_cat[p]] += 1
    pq = 0.0
    sq = 0.0
    rq = 0.0
    n = 0
    for c in range(n_categories):
        if tp[c] + fp[c] + fn[c] == 0:
            continue
        n += 1
        denom = tp[c] + 0.5 * fp[c] + 0.5 * fn[c]
        pq += iou_sum[c] / denom
        sq += iou_sum[c] / tp[c] if tp[c] > 0 else 0.0
        rq += tp[c] / denom
    if n == 0:
        result[0] = result[1] = result[2] = 1.0
    else:
        result[0] = pq / n
        result[1] = sq / n
        result[2] = rq / n
    return OK, 0


@kernel
def pq_batch(pred, gt, crowd, offsets, category_index, is_thing, n_categories, out, errors):
    """Images are pixel ranges of flat (N, 2) arrays; out (B, 3) = pq, sq, rq; errors (B, 2)."""
    has_crowd = crowd.size > 0
    for b in prange(offsets.size - 1):
        lo, hi = offsets[b], offsets[b + 1]
        crowd_b = crowd[lo:hi] if has_crowd else crowd[:0]
        err, value = image_pq(pred[lo:hi], gt[lo:hi], crowd_b, category_index, is_thing, n_categories, out[b])
        errors[b, 0] = err
        errors[b, 1] = value
