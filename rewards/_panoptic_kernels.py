"""Compiled panoptic quality: one pass over the pixels, then the panopticapi rules.

The pass run-length encodes each pixel's (gt segment, pred segment) key pair,
comparing raw pixel values with the previous pixel's first, so the category
lookup (a binary search in the sorted category ids: no table indexed by
category id, any int64 id works) runs once per run, not per pixel. One
open-addressing hash table sums the runs' pixels per distinct (gt key, pred
key) pair; the pairs' keys are then numbered into segments. Memory and time
are linear in pixels and runs, never in (gt segments x pred segments).

Segment keys (int64): ``((category_index * 2 + crowd) << 32) | (instance & 0xFFFFFFFF)``,
``-1`` for VOID (GT pixels of an unscored category, predicted pixels with a
negative category). Instance ids are kept only where they name a segment:
things, and stuff when ``separate_stuff`` (COCO segment-id semantics); crowd
pixels of one category are one region.

Every entry point documents its arguments; errors are returned as codes
(``OK`` / ``ERR_*``) with the offending value, and the Python wrapper raises.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from rewards._numba import kernel

OK = 0
ERR_UNKNOWN_PRED_CATEGORY = 1
ERR_INSTANCE_RANGE = 2
ERR_UNKNOWN_SEGMENT = 3

_EMPTY = -1
_INT32_MIN = -(2**31)
_INT32_MAX = 2**31 - 1


@kernel(inline=True)
def _hash_slot(keys, key):
    mask = keys.size - 1
    # keys differ in their high bits (category) or low bits (instance): mix both into the low bits
    h = key ^ (key >> 29)
    h *= -7046029254386353131
    i = (h ^ (h >> 32)) & mask
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


@kernel
def _numbered(run_keys, n_runs, void_is_zero, capacity):
    """Dense number per distinct key of ``run_keys[:n_runs]`` and each number's key.

    With ``void_is_zero`` the key -1 gets number 0 and others start at 1.
    ``capacity``: expected number of distinct keys (the table starts at twice
    that, rounded up to a power of two, and grows when needed).
    Returns (number per run (n_runs,), key per number (n,)).
    """
    size = 64
    while size < 2 * capacity:
        size *= 2
    tab_k = np.full(size, _EMPTY, np.int64)
    tab_v = np.zeros(size, np.int64)
    keys = np.empty(n_runs + 1, np.int64)
    number = np.empty(n_runs, np.int64)
    n = 0
    if void_is_zero:
        keys[0] = -1
        n = 1
    last_key = -2
    last_number = 0
    for r in range(n_runs):
        key = run_keys[r]
        if key == last_key:  # neighbouring runs often share a segment: skip the table
            number[r] = last_number
            continue
        if void_is_zero and key == -1:
            number[r] = 0
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
        number[r] = tab_v[slot]
        last_key = key
        last_number = number[r]
    return number, keys[:n]


@kernel(inline=True)
def _category_index(categories, c):
    """Index of ``c`` in the sorted ``categories``, or -1."""
    lo = 0
    hi = categories.size
    while lo < hi:
        mid = (lo + hi) >> 1
        if categories[mid] < c:
            lo = mid + 1
        else:
            hi = mid
    if lo < categories.size and categories[lo] == c:
        return lo
    return -1


@kernel(inline=True)
def _key(ci, inst, crowd):
    return ((ci * 2 + crowd) << 32) | (inst & 0xFFFFFFFF)


@kernel
def _pixel_runs(
    pred, gt, crowd, packed_pred, packed_gt, categories, is_thing, separate_stuff, run_gkey, run_pkey, run_len
):
    """Run-length encodes one image's (gt key, pred key) pairs; returns (error, value, n_runs).

    pred, gt: (N, 2) int32/int64 (category, instance) per pixel; crowd: (N,)
    bool or empty; packed_pred, packed_gt: (N,) int64 views of int32 pred/gt
    (one load compares a whole pixel) or both empty; the run_* buffers hold
    at least N entries.
    """
    n_pix = pred.shape[0]
    has_crowd = crowd.size > 0
    packed = packed_pred.size > 0
    n_runs = 0
    last_gc = last_gi = last_pc = last_pi = 0
    last_gp = last_pp = 0
    last_cr = False
    for q in range(n_pix):
        cr = has_crowd and crowd[q]
        if packed:
            gp = packed_gt[q]
            pp = packed_pred[q]
            if n_runs > 0 and gp == last_gp and pp == last_pp and cr == last_cr:
                run_len[n_runs - 1] += 1
                continue
            last_gp, last_pp = gp, pp
        gc = gt[q, 0]
        gi = gt[q, 1]
        pc = pred[q, 0]
        pi = pred[q, 1]
        if not packed:
            if (
                n_runs > 0
                and gc == last_gc
                and gi == last_gi
                and pc == last_pc
                and pi == last_pi
                and cr == last_cr
            ):
                run_len[n_runs - 1] += 1
                continue
            last_gc, last_gi, last_pc, last_pi = gc, gi, pc, pi
        last_cr = cr
        ci = _category_index(categories, gc)
        if ci < 0:
            gkey = -1
        elif cr:
            gkey = _key(ci, 0, 1)
        elif is_thing[ci] or separate_stuff:
            if gi < _INT32_MIN or gi > _INT32_MAX:
                return ERR_INSTANCE_RANGE, gi, 0
            gkey = _key(ci, gi, 0)
        else:
            gkey = _key(ci, 0, 0)
        if pc < 0:
            pkey = -1
        else:
            ci = _category_index(categories, pc)
            if ci < 0:
                return ERR_UNKNOWN_PRED_CATEGORY, pc, 0
            if is_thing[ci] or separate_stuff:
                if pi < _INT32_MIN or pi > _INT32_MAX:
                    return ERR_INSTANCE_RANGE, pi, 0
                pkey = _key(ci, pi, 0)
            else:
                pkey = _key(ci, 0, 0)
        if n_runs > 0 and gkey == run_gkey[n_runs - 1] and pkey == run_pkey[n_runs - 1]:
            run_len[n_runs - 1] += 1
        else:
            run_gkey[n_runs] = gkey
            run_pkey[n_runs] = pkey
            run_len[n_runs] = 1
            n_runs += 1
    return OK, 0, n_runs


@kernel(inline=True)
def _pair_slot(tab_g, tab_p, tab_v, g, p):
    mask = tab_v.size - 1
    h = (g ^ (g >> 29)) * -7046029254386353131 + p
    h = (h ^ (h >> 29)) * -7046029254386353131
    i = (h ^ (h >> 32)) & mask
    while tab_v[i] >= 0 and (tab_g[i] != g or tab_p[i] != p):
        i = (i + 1) & mask
    return i


@kernel
def _pairs(run_gkey, run_pkey, run_len, n_runs):
    """The distinct (gt key, pred key) pairs of ``run_*[:n_runs]`` and their pixel counts.

    One hash probe per run (consecutive runs never repeat a pair; runs far apart
    often do). Returns (pair gt keys, pair pred keys, pixel counts), each (P,) int64.
    """
    size = 64
    tab_g = np.empty(size, np.int64)
    tab_p = np.empty(size, np.int64)
    tab_v = np.full(size, -1, np.int64)  # pair index, -1 = empty slot
    pair_g = np.empty(n_runs, np.int64)
    pair_p = np.empty(n_runs, np.int64)
    inter = np.empty(n_runs, np.int64)
    n = 0
    for r in range(n_runs):
        g = run_gkey[r]
        p = run_pkey[r]
        i = _pair_slot(tab_g, tab_p, tab_v, g, p)
        if tab_v[i] >= 0:
            inter[tab_v[i]] += run_len[r]
            continue
        tab_g[i] = g
        tab_p[i] = p
        tab_v[i] = n
        pair_g[n] = g
        pair_p[n] = p
        inter[n] = run_len[r]
        n += 1
        if 2 * n > size:
            size *= 2
            tab_g = np.empty(size, np.int64)
            tab_p = np.empty(size, np.int64)
            tab_v = np.full(size, -1, np.int64)
            for k in range(n):
                j = _pair_slot(tab_g, tab_p, tab_v, pair_g[k], pair_p[k])
                tab_g[j] = pair_g[k]
                tab_p[j] = pair_p[k]
                tab_v[j] = k
    return pair_g[:n], pair_p[:n], inter[:n]


@kernel
def _image_stats(run_gkey, run_pkey, run_len, n_runs, counts, iou_sum):
    """Adds one image's per-category TP/FP/FN and sum of TP IoUs (panopticapi's
    pq_compute_single_core) into ``counts`` (C, 3) int64 / ``iou_sum`` (C,) float64.

    ``run_*[:n_runs]`` are the image's runs from ``_pixel_runs``. Returns the
    category indices this image changed (possibly repeated), int64.
    """
    # sparse intersections: one entry per (gt segment, pred segment) pair that shares pixels
    pair_gkey, pair_pkey, inter = _pairs(run_gkey, run_pkey, run_len, n_runs)
    n_pairs = inter.size
    pair_g, g_keys = _numbered(pair_gkey, n_pairs, True, 0)
    pair_p, p_keys = _numbered(pair_pkey, n_pairs, True, 0)
    n_g = g_keys.size
    n_p = p_keys.size
    gt_area = np.zeros(n_g, np.int64)
    pred_area = np.zeros(n_p, np.int64)
    void_inter = np.zeros(n_p, np.int64)  # |p ∩ VOID|
    for k in range(n_pairs):
        g = pair_g[k]
        p = pair_p[k]
        gt_area[g] += inter[k]
        pred_area[p] += inter[k]
        if g == 0:
            void_inter[p] += inter[k]
    gt_matched = np.zeros(n_g, np.bool_)
    pred_matched = np.zeros(n_p, np.bool_)
    touched = np.empty(n_pairs + n_g + n_p, np.int64)  # at most one entry per pair (TP), gt (FN), pred (FP)
    n_touched = 0
    for k in range(n_pairs):
        g = pair_g[k]
        p = pair_p[k]
        if g == 0 or p == 0:
            continue
        if (g_keys[g] >> 32) & 1:  # crowd
            continue
        c = g_keys[g] >> 33
        if c != p_keys[p] >> 33:
            continue
        iou = inter[k] / (pred_area[p] + gt_area[g] - inter[k] - void_inter[p])
        if iou > 0.5:
            counts[c, 0] += 1
            iou_sum[c] += iou
            gt_matched[g] = True
            pred_matched[p] = True
            touched[n_touched] = c
            n_touched += 1
    for g in range(1, n_g):
        if not gt_matched[g] and not (g_keys[g] >> 32) & 1:
            c = g_keys[g] >> 33
            counts[c, 2] += 1
            touched[n_touched] = c
            n_touched += 1
    # |p ∩ crowd region of p's category|: there is one crowd segment per category
    ignorable = void_inter.copy()
    for k in range(n_pairs):
        g = pair_g[k]
        p = pair_p[k]
        if g > 0 and p > 0 and (g_keys[g] >> 32) & 1 and g_keys[g] >> 33 == p_keys[p] >> 33:
            ignorable[p] += inter[k]
    for p in range(1, n_p):
        if pred_matched[p] or ignorable[p] / pred_area[p] > 0.5:
            continue
        c = p_keys[p] >> 33
        counts[c, 1] += 1
        touched[n_touched] = c
        n_touched += 1
    return touched[:n_touched]


@kernel
def _image_result(touched, img_counts, img_iou, counts, iou_sum, out):
    """One image's PQ, SQ, RQ into ``out`` (3,); moves its per-category sums
    ``img_counts``/``img_iou`` (left zeroed) into the dataset's ``counts``/``iou_sum``.

    Only the ``touched`` categories can be non-zero: each is visited once, so
    the cost follows the image's segments, not the number of categories.
    """
    pq = 0.0
    sq = 0.0
    rq = 0.0
    n = 0
    for c in touched:
        tp, fp, fn = img_counts[c, 0], img_counts[c, 1], img_counts[c, 2]
        if tp + fp + fn == 0:
            continue  # already visited
        n += 1
        denom = tp + 0.5 * fp + 0.5 * fn
        pq += img_iou[c] / denom
        sq += img_iou[c] / tp if tp > 0 else 0.0
        rq += tp / denom
        counts[c, 0] += tp
        counts[c, 1] += fp
        counts[c, 2] += fn
        iou_sum[c] += img_iou[c]
        img_counts[c, 0] = img_counts[c, 1] = img_counts[c, 2] = 0
        img_iou[c] = 0.0
    if n == 0:
        out[:] = 1.0
    else:
        out[0] = pq / n
        out[1] = sq / n
        out[2] = rq / n


@kernel
def pq_images(
    pred,
    gt,
    crowd,
    packed_pred,
    packed_gt,
    offsets,
    categories,
    is_thing,
    separate_stuff,
    out,
    counts,
    iou_sum,
    errors,
):
    """Per-image PQ/SQ/RQ and dataset sums for a batch of images stored back to back.

    Parameters
    ----------
    pred, gt : (N, 2) int32 or int64 (same dtype)
        (category_id, instance_id) of every pixel of every image, images
        concatenated in row-major order. A predicted negative category is
        "no prediction"; a GT category missing from ``categories`` is VOID.
    crowd : (N,) bool, or (0,) for "no crowd anywhere"
        GT crowd pixels.
    packed_pred, packed_gt : (N,) int64, or both (0,)
        For int32 pred/gt: the same memory viewed as one int64 per pixel, so
        the run detection compares a pixel in one load (``_pixels_packed``).
    offsets : (B + 1,) int64
        Image b is pixels ``offsets[b]:offsets[b + 1]`` (``_inputs.offsets_from_lengths``).
    categories : (C,) int64, sorted, unique
        Category ids scored (things and stuff together).
    is_thing : (C,) bool
        Whether ``categories[i]`` is a thing.
    separate_stuff : bool
        Stuff pixels with different instance ids are different segments (COCO
        segment-id semantics) instead of one segment per stuff category.
    out : (B, 3) float64, written
        PQ, SQ, RQ of each image (mean over its categories with TP + FP + FN > 0;
        1.0 when there is none).
    counts : (C, 3) int64, added to
        TP, FP, FN per category summed over the images (panopticapi's PQStat).
    iou_sum : (C,) float64, added to
        Sum of the IoUs of the true positives per category.
    errors : (B, 2) int64, written
        (``OK`` or ``ERR_*`` code, offending value) per image; an image with an
        error adds nothing.
    """
    n_images = offsets.size - 1
    has_crowd = crowd.size > 0
    packed = packed_pred.size > 0
    max_pix = 1
    for b in range(n_images):
        max_pix = max(max_pix, offsets[b + 1] - offsets[b])
    # np.empty leaves pages untouched: only the runs actually written cost memory.
    run_gkey = np.empty(max_pix, np.int64)
    run_pkey = np.empty(max_pix, np.int64)
    run_len = np.empty(max_pix, np.int64)
    n_cat = categories.size
    img_counts = np.zeros((n_cat, 3), np.int64)
    img_iou = np.zeros(n_cat)
    for b in prange(n_images):
        lo, hi = offsets[b], offsets[b + 1]
        crowd_b = crowd[lo:hi] if has_crowd else crowd[:0]
        pp = packed_pred[lo:hi] if packed else packed_pred[:0]
        gp = packed_gt[lo:hi] if packed else packed_gt[:0]
        err, value, n_runs = _pixel_runs(
            pred[lo:hi],
            gt[lo:hi],
            crowd_b,
            pp,
            gp,
            categories,
            is_thing,
            separate_stuff,
            run_gkey,
            run_pkey,
            run_len,
        )
        errors[b, 0] = err
        errors[b, 1] = value
        if err != OK:
            out[b, :] = 1.0
            continue
        touched = _image_stats(run_gkey, run_pkey, run_len, n_runs, img_counts, img_iou)
        _image_result(touched, img_counts, img_iou, counts, iou_sum, out[b])


@kernel
def ids_to_panoptic(ids, segment_ids, segment_category, segment_crowd, panoptic, crowd, area):
    """COCO segment-id map -> (category, segment id) per pixel, crowd mask and areas.

    Parameters
    ----------
    ids : (N,) int32
        Segment id of every pixel (R + 256 G + 256² B of the PNG; 0 = VOID).
    segment_ids : (S,) int64, sorted, unique, all > 0
        The ids listed in ``segments_info``.
    segment_category, segment_crowd : (S,) int64 / (S,) bool
        Category id and iscrowd of ``segment_ids[s]``.
    panoptic : (N, 2) int32 or int64, written
        (category, segment id); VOID pixels get (-1, 0).
    crowd : (N,) bool, written
        Pixels of crowd segments.
    area : (S,) int64, written
        Pixel count of each listed segment.

    Returns (``OK`` or ``ERR_UNKNOWN_SEGMENT``, offending id).
    """
    area[:] = 0
    last = -1
    s = -1
    for q in range(ids.size):
        v = ids[q]
        if v != last:
            last = v
            s = -1 if v == 0 else _category_index(segment_ids, v)
            if v != 0 and s < 0:
                return ERR_UNKNOWN_SEGMENT, v
        if s < 0:
            panoptic[q, 0] = -1
            panoptic[q, 1] = 0
            crowd[q] = False
        else:
            panoptic[q, 0] = segment_category[s]
            panoptic[q, 1] = v
            crowd[q] = segment_crowd[s]
            area[s] += 1
    return OK, 0
