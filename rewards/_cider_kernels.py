"""Compiled CIDEr-D and BLEU n-gram matches over n-gram ids (the COCO caption code's rules).

Every n-gram is an integer id per order n (see captioning.py), so a caption
is four sorted id arrays; tf-idf vectors are (ids, values) pairs and the
clipped dot product is a merge of two sorted arrays. The same merges give
BLEU's matches (pycocoevalcap ``bleu_scorer.cook_test``): a candidate's count
of each n-gram clipped by its largest count in any one reference.
"""

from __future__ import annotations

import math

import numpy as np

from rewards._numba import kernel

MAX_N = 4


@kernel(inline=True)
def _n_ngrams(offsets, caption):
    """Number of n-grams of all orders of caption ``caption`` (``offsets`` as in ``cider_groups``)."""
    total = 0
    for n in range(MAX_N):
        total += offsets[n, caption + 1] - offsets[n, caption]
    return total


@kernel
def _vectorize(
    ngrams,
    offsets,
    caption,
    df,
    df_start,
    df_size,
    log_n_images,
    keys,
    values,
    counts,
    starts,
    norms,
):
    """tf-idf vector of one caption: per order n, sorted unique ids in keys[starts[n]:starts[n+1]].

    ``ngrams``, ``offsets``, ``df``, ``df_start``, ``df_size``, ``log_n_images``
    are ``cider_groups``' arguments (each caption's ids of one order sorted)
    and ``caption`` the caption's index.
    Outputs: ``keys`` (int64) / ``values`` (float64 tf-idf) / ``counts`` (int64
    term frequency) have room for all the caption's n-grams; ``starts`` (int64 (MAX_N + 1,)) and ``norms`` (float64
    (MAX_N,), each order's vector norm). Returns the caption's length in
    bigrams (the COCO code's "length").
    """
    pos = 0
    for n in range(MAX_N):
        starts[n] = pos
        seg = ngrams[offsets[n, caption] : offsets[n, caption + 1]]  # sorted by the caller
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
            counts[pos] = j - i
            norm += value * value
            pos += 1
            i = j
        norms[n] = math.sqrt(norm)
    starts[MAX_N] = pos
    return offsets[1, caption + 1] - offsets[1, caption]


@kernel
def _clipped_dot(keys_h, values_h, keys_r, values_r, counts_r, best_h):
    """sum over the hypothesis' n-grams of min(h, r) * r (r = 0 where absent).

    Sorted unique int64 ids ``keys_h`` / ``keys_r`` with their float64 tf-idf
    ``values_h`` / ``values_r`` (hypothesis, reference); ``best_h`` (int64, per
    hypothesis n-gram) is raised to the reference's count ``counts_r`` where
    the n-gram occurs in the reference (BLEU's largest reference count).
    """
    total = 0.0
    i = 0
    j = 0
    while i < keys_h.size and j < keys_r.size:
        if keys_h[i] == keys_r[j]:
            total += min(values_h[i], values_r[j]) * values_r[j]
            best_h[i] = max(best_h[i], counts_r[j])
            i += 1
            j += 1
        elif keys_h[i] < keys_r[j]:
            i += 1
        else:
            j += 1
    return total


@kernel
def cider_groups(
    ngrams, offsets, group_refs, group_cands, df, df_start, df_size, log_n_images, sigma, out, matches
):
    """CIDEr-D and BLEU n-gram matches of each candidate against its group's references.

    Each group's reference vectors are built once and reused for all its
    candidates (the N samples of one image). Groups run one after another:
    the scratch arrays are shared.

    Parameters
    ----------
    ngrams : int64 (total n-grams,)
        N-gram ids of every caption and order: an id numbers an n-gram within
        its order n (words by vocabulary index; see ``captioning._ngram_ids``),
        each caption's ids of one order in ascending order (the caller sorts
        the whole corpus in numpy at once: far cheaper than a compiled sort per
        caption, and no sort to compile). Ids below ``df_size[n - 1]`` are
        known to the document frequencies.
    offsets : int64 (MAX_N, C + 1)
        Caption c's order-n ids are ``ngrams[offsets[n - 1, c]:offsets[n - 1, c + 1]]``
        (C captions: candidates first, then references).
    group_refs : int64 (G + 1,)
        Group k's references are captions ``group_refs[k]:group_refs[k + 1]`` (at least one).
    group_cands : int64 (G + 1,)
        Group k's candidates are captions ``group_cands[k]:group_cands[k + 1]``;
        candidates are numbered from 0, so these also index ``out``.
    df : int64 (sum of df_size,)
        Document frequency of every known n-gram, all orders concatenated.
    df_start : int64 (MAX_N,)
        Where order n's frequencies start in ``df``.
    df_size : int64 (MAX_N,)
        How many n-grams of order n have a frequency (ids at or above get df 0).
    log_n_images : float
        log of the number of reference images the frequencies count.
    sigma : float
        Standard deviation of the length penalty (6 in the COCO code), > 0.
    out : float64 (number of candidates,)
        Receives each candidate's CIDEr-D (0..10 scale).
    matches : int64 (number of candidates, MAX_N)
        Receives, per candidate and order, BLEU's clipped matches: the sum over
        its distinct n-grams of min(count in it, largest count in one reference).
    """
    # scratch sized once for the largest caption and the largest group's references
    longest = 1
    for c in range(offsets.shape[1] - 1):
        longest = max(longest, _n_ngrams(offsets, c))
    most_refs = 1
    most_ref_ngrams = 1
    for k in range(group_refs.size - 1):
        most_refs = max(most_refs, group_refs[k + 1] - group_refs[k])
        total = 0
        for r in range(group_refs[k], group_refs[k + 1]):
            total += _n_ngrams(offsets, r)
        most_ref_ngrams = max(most_ref_ngrams, total)
    ref_keys = np.empty(most_ref_ngrams, np.int64)
    ref_values = np.empty(most_ref_ngrams)
    ref_counts = np.empty(most_ref_ngrams, np.int64)
    ref_starts = np.empty((most_refs, MAX_N + 1), np.int64)
    ref_norms = np.empty((most_refs, MAX_N))
    ref_lengths = np.empty(most_refs, np.int64)
    keys = np.empty(longest, np.int64)
    values = np.empty(longest)
    counts = np.empty(longest, np.int64)
    best = np.empty(longest, np.int64)
    starts = np.empty(MAX_N + 1, np.int64)
    norms = np.empty(MAX_N)
    score = np.empty(MAX_N)
    for k in range(group_refs.size - 1):
        r0, r1 = group_refs[k], group_refs[k + 1]
        n_refs = r1 - r0
        base = 0
        for q in range(n_refs):
            r = r0 + q
            size = _n_ngrams(offsets, r)
            ref_lengths[q] = _vectorize(
                ngrams,
                offsets,
                r,
                df,
                df_start,
                df_size,
                log_n_images,
                ref_keys[base : base + size],
                ref_values[base : base + size],
                ref_counts[base : base + size],
                ref_starts[q],
                ref_norms[q],
            )
            for n in range(MAX_N + 1):
                ref_starts[q, n] += base
            base += size
        for c in range(group_cands[k], group_cands[k + 1]):
            length = _vectorize(
                ngrams,
                offsets,
                c,
                df,
                df_start,
                df_size,
                log_n_images,
                keys,
                values,
                counts,
                starts,
                norms,
            )
            score[:] = 0.0
            best[: starts[MAX_N]] = 0
            for q in range(n_refs):
                delta = float(length - ref_lengths[q])
                penalty = math.exp(-(delta * delta) / (2 * sigma * sigma))
                for n in range(MAX_N):
                    val = _clipped_dot(
                        keys[starts[n] : starts[n + 1]],
                        values[starts[n] : starts[n + 1]],
                        ref_keys[ref_starts[q, n] : ref_starts[q, n + 1]],
                        ref_values[ref_starts[q, n] : ref_starts[q, n + 1]],
                        ref_counts[ref_starts[q, n] : ref_starts[q, n + 1]],
                        best[starts[n] : starts[n + 1]],
                    )
                    if norms[n] != 0 and ref_norms[q, n] != 0:
                        val /= norms[n] * ref_norms[q, n]
                    score[n] += val * penalty
            out[c] = score.mean() / n_refs * 10.0
            for n in range(MAX_N):
                matched = 0
                for pos in range(starts[n], starts[n + 1]):
                    matched += min(counts[pos], best[pos])
                matches[c, n] = matched
