"""Compiled ROUGE-L over word ids (pycocoevalcap ``rouge/rouge.py`` rules).

Per candidate: the longest common subsequence (LCS) with each reference,
precision = LCS / len(candidate), recall = LCS / len(reference), the maxima of
each over the references (taken separately, as the COCO code does), then
``(1 + beta^2) P R / (R + beta^2 P)``, or 0 when either maximum is 0.
"""

from __future__ import annotations

import numpy as np

from rewards._numba import kernel


@kernel
def _lcs(a, b, row):
    """Length of the LCS of int arrays ``a`` and ``b``; ``row`` is scratch of size len(b) + 1."""
    for j in range(row.size):
        row[j] = 0
    for i in range(a.size):
        diagonal = 0  # row[j - 1] of the previous row
        for j in range(1, b.size + 1):
            above = row[j]
            if a[i] == b[j - 1]:
                row[j] = diagonal + 1
            elif row[j - 1] > above:
                row[j] = row[j - 1]
            diagonal = above
    return row[b.size]


@kernel
def rouge_l_groups(words, offsets, group_refs, group_cands, beta_squared, out):
    """ROUGE-L of every candidate against its group's references.

    Parameters
    ----------
    words : int64 (W,)
        Word ids of all captions (candidates and references) concatenated;
        equal ids are equal tokens.
    offsets : int64 (C + 1,)
        Caption c is ``words[offsets[c]:offsets[c + 1]]``.
    group_refs : int64 (G + 1,)
        Group k's references are captions ``group_refs[k]:group_refs[k + 1]``
        (each group has at least one).
    group_cands : int64 (G + 1,)
        Group k's candidates are captions ``group_cands[k]:group_cands[k + 1]``;
        candidate captions are numbered first, so these also index ``out``.
    beta_squared : float
        The F-measure's beta squared (1.2 ** 2 in pycocoevalcap).
    out : float64 (number of candidates,)
        Receives each candidate's ROUGE-L.
    """
    longest = 1
    for c in range(offsets.size - 1):
        longest = max(longest, offsets[c + 1] - offsets[c])
    row = np.zeros(longest + 1, np.int64)
    for k in range(group_refs.size - 1):
        for c in range(group_cands[k], group_cands[k + 1]):
            cand = words[offsets[c] : offsets[c + 1]]
            prec_max = 0.0
            rec_max = 0.0
            for r in range(group_refs[k], group_refs[k + 1]):
                ref = words[offsets[r] : offsets[r + 1]]
                # the COCO code's my_lcs runs over the longer sequence's rows
                lcs = _lcs(ref, cand, row) if ref.size >= cand.size else _lcs(cand, ref, row)
                if cand.size:  # only token lists can be empty: a string splits to at least [""]
                    prec_max = max(prec_max, lcs / float(cand.size))
                if ref.size:
                    rec_max = max(rec_max, lcs / float(ref.size))
            if prec_max != 0 and rec_max != 0:
                out[c] = ((1 + beta_squared) * prec_max * rec_max) / float(rec_max + beta_squared * prec_max)
            else:
                out[c] = 0.0
