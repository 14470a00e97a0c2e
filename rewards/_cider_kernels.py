"""Compiled CIDEr-D over n-gram ids (the COCO caption code's cider_scorer rules).

Every n-gram is an integer id per order n (see captioning.py), so a caption
is four sorted id arrays; tf-idf vectors are (ids, values) pairs and the
clipped dot product is a merge of two sorted arrays.
"""

from __future__ import annotations

import math

import numpy as np

from rewards._numba import kernel
from numba import prange

MAX_N = 4


@kernel(inline=True)
def _n_ngrams(offsets, caption):
    total = 0
    for n in range(MAX_N):
        total += offsets[n, caption + 1] - offsets[n, caption]
    return total


@kernel
def _vectorize(ngrams, offsets, caption, df, df_start, df_size, log_n_images, keys, values, starts, norms):
    """tf-idf vector of one caption: per order n, sorted unique ids in keys[starts[n]:starts[n+1]].

    ``keys``/``values`` have room for all the caption's n-grams; returns the
    caption's length in bigrams (the COCO code's "length").
    """
    pos = 0
    for n in range(MAX_N):
        starts[n] = pos
        seg = np.sort(ngrams[offsets[n, caption] : offsets[n, caption + 1]])
        norm = 0.0
        i = 0
        while i < seg.size:
            j = i
            while j < seg.size and seg[j] == seg[i]:
                j += 1
            g = seg[i]
            count = df[df_start[n] + g] if g < df_size[n] else 0
            value = (j - i) * (log_n_images - math.log(max(1.0, count)))
            keys[pos] = g
            values[pos] = value
            norm += value * value
            pos += 1
            i = j
        norms[n] = math.sqrt(norm)
    starts[MAX_N] = pos
    return offsets[1, caption + 1] - offsets[1, caption]


@kernel
def _clipped_dot(keys_h, values_h, keys_r, values_r):
    """sum over the hypothesis' n-grams of min(h, r) * r (r = 0 where absent)."""
    total = 0.0
    i = 0
    j = 0
    while i < keys_h.size and j < keys_r.size:
        if keys_h[i] == keys_r[j]:
            total += min(values_h[i], values_r[j]) * values_r[j]
            i += 1
            j += 1
        elif keys_h[i] < keys_r[j]:
            i += 1
        else:
            j += 1
    return total


@kernel
def cider_groups(
    ngrams, offsets, group_refs, group_cands, df, df_start, df_size, log_n_images, sigma, out
):
    """CIDEr-D of each candidate. Group k scores candidates group_cands[k]:[k+1]
    (caption indices) against references group_refs[k]:[k+1]; each group's
    reference vectors are built once and reused for all its candidates.
    """
    for k in prange(group_refs.size - 1):
        r0, r1 = group_refs[k], group_refs[k + 1]
        n_refs = r1 - r0
        total_ref = 0
        for r in range(r0, r1):
            total_ref += _n_ngrams(offsets, r)
        ref_keys = np.empty(total_ref, np.int64)
        ref_values = np.empty(total_ref)
        ref_starts = np.empty((n_refs, MAX_N + 1), np.int64)
        ref_norms = np.empty((n_refs, MAX_N))
        ref_lengths = np.empty(n_refs, np.int64)
        base = 0
        for q in range(n_refs):
            r = r0 + q
            size = _n_ngrams(offsets, r)
            ref_lengths[q] = _vectorize(
                ngrams, offsets, r, df, df_start, df_size, log_n_images,
                ref_keys[base : base + size], ref_values[base : base + size], ref_starts[q], ref_norms[q],
            )
            ref_starts[q] += base
            base += size
        for c in range(group_cands[k], group_cands[k + 1]):
            size = _n_ngrams(offsets, c)
            keys = np.empty(size, np.int64)
            values = np.empty(size)
            starts = np.empty(MAX_N + 1, np.int64)
            norms = np.empty(MAX_N)
            length = _vectorize(ngrams, offsets, c, df, df_start, df_size, log_n_images, keys, values, starts, norms)
            score = np.zeros(MAX_N)
            for q in range(n_refs):
                delta = float(length - ref_lengths[q])
                penalty = math.exp(-(delta * delta) / (2 * sigma * sigma))
                for n in range(MAX_N):
                    val = _clipped_dot(
                        keys[starts[n] : starts[n + 1]], values[starts[n] : starts[n + 1]],
                        ref_keys[ref_starts[q, n] : ref_starts[q, n + 1]],
                        ref_values[ref_starts[q, n] : ref_starts[q, n + 1]],
                    )
                    if norms[n] != 0 and ref_norms[q, n] != 0:
                        val /= norms[n] * ref_norms[q, n]
                    score[n] += val * penalty
            out[c] = score.mean() / n_refs * 10.0
