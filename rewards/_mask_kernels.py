"""Compiled instance-mask kernels: pycocotools' maskApi rules on run-lengths.

Representation (a *mask set*): N binary masks of sizes (h_i, w_i), pixels
numbered in column-major (Fortran) order as COCO does, ``p = x * h + y``.
Mask i is the union of its foreground runs ``[starts[r], ends[r])`` for
``r`` in ``offsets[i]:offsets[i + 1]``; runs are sorted, non-empty, and
neither overlap nor touch (the canonical form: the same mask always has the
same runs). COCO's RLE ``counts`` alternate background and foreground run
lengths starting with background; the canonical counts (what pycocotools'
own encoders produce) have every count but the first > 0.

Arrays (uint32 run bounds: COCO's counts are C ``uint``, so h * w < 2**32):

- ``starts``, ``ends``: uint32 (R,), run bounds as above;
- ``offsets``: int64 (N + 1,), mask i's runs are ``offsets[i]:offsets[i + 1]``;
- ``heights``, ``widths``: int64 (N,);
- ``boxes``: float64 (N, 4), ``[x, y, w, h]`` of the tight pixel box as
  pycocotools' ``rleToBbox`` returns it (zeros for an empty mask).

Why foreground runs and not counts: an intersection only needs the
foreground, and sorted runs let a pair of masks skip, by binary search, the
runs before their boxes overlap.

Every kernel reads the uint32 bounds into int64 before any arithmetic
(uint32 differences would wrap).
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from rewards._numba import kernel

# Error codes returned by the validating kernels (the Python layer turns them into messages).
OK = 0
BAD_CHAR = 1  # compressed counts: a byte outside '0'..'o' (48..111)
TRUNCATED = 2  # compressed counts: the last value is cut off (continuation bit set)
NEGATIVE = 3  # a count < 0 (after undoing the compressed delta)
TOO_LARGE = 4  # a count >= 2**32, or a compressed value longer than 64 bits
BAD_SUM = 5  # counts do not sum to h * w

_SCALE = 5.0  # rleFrPoly's upsampling factor
SEPARATOR = 44  # ",": outside the compressed alphabet '0'..'o'; separates strings for strings_to_mask_set


@kernel
def _grow(buf, n, need):
    """int64 ``buf`` with room for ``n + need`` entries (doubling; the first ``n`` entries kept)."""
    if n + need <= buf.size:
        return buf
    bigger = np.empty(max(2 * buf.size, n + need), np.int64)
    for k in range(n):  # loops, not slice assignment: numba compiles those ~2 s slower
        bigger[k] = buf[k]
    return bigger


# ---------------------------------------------------------------------------
# Compressed counts (pycocotools' rleToString / rleFrString).
# ---------------------------------------------------------------------------


@kernel
def decode_strings(buf, str_offsets, counts, counts_offsets):
    """Decodes many compressed COCO count strings.

    Parameters
    ----------
    buf : uint8 (C,)
        All strings' bytes, concatenated.
    str_offsets : int64 (N + 1,)
        String i is ``buf[str_offsets[i]:str_offsets[i + 1]]``.
    counts : int64 (C,)
        Output: the counts (a string of c bytes holds at most c counts).
    counts_offsets : int64 (N + 1,)
        Output: string i's counts are ``counts[counts_offsets[i]:counts_offsets[i + 1]]``.

    Returns
    -------
    (index, code) : the first string that failed and why (``OK``: none, index -1).

    Notes
    -----
    The format (maskApi.c): each count becomes 5-bit groups, low first, one
    byte each as ``48 + group`` with bit 0x20 set while more groups follow;
    bit 0x10 of the last group is the sign. From the fourth count on, the
    value stored is the difference to the count two places earlier.
    """
    m = 0
    counts_offsets[0] = 0
    for i in range(str_offsets.size - 1):
        p = str_offsets[i]
        end = str_offsets[i + 1]
        first = m
        while p < end:
            x = np.int64(0)
            k = 0
            more = True
            while more:
                if p >= end:
                    return i, TRUNCATED
                c = np.int64(buf[p]) - 48
                if c < 0 or c > 63:
                    return i, BAD_CHAR
                if k >= 12:  # 13 groups exceed 64 bits
                    return i, TOO_LARGE
                x |= (c & 0x1F) << (5 * k)
                more = (c & 0x20) != 0
                p += 1
                k += 1
                if not more and (c & 0x10) != 0:
                    x |= np.int64(-1) << (5 * k)
            if m - first > 2:
                x += counts[m - 2]
            if x < 0:
                return i, NEGATIVE
            if x >= 4294967296:
                return i, TOO_LARGE
            counts[m] = x
            m += 1
        counts_offsets[i + 1] = m
    return -1, OK


@kernel
def encode_strings(counts, counts_offsets, buf, str_offsets):
    """Compressed COCO strings of many count lists (inverse of :func:`decode_strings`).

    Parameters
    ----------
    counts : int64 (M,)
        All masks' counts, each in [0, 2**32).
    counts_offsets : int64 (N + 1,)
        Mask i's counts are ``counts[counts_offsets[i]:counts_offsets[i + 1]]``.
    buf : uint8 (7 * M,)
        Output bytes (a count takes at most 7 bytes: 35 bits with the sign).
    str_offsets : int64 (N + 1,)
        Output: string i is ``buf[str_offsets[i]:str_offsets[i + 1]]``.
    """
    p = 0
    str_offsets[0] = 0
    for i in range(counts_offsets.size - 1):
        c0 = counts_offsets[i]
        for j in range(c0, counts_offsets[i + 1]):
            x = counts[j]
            if j - c0 > 2:
                x -= counts[j - 2]
            more = True
            while more:
                c = x & 0x1F
                x >>= 5  # arithmetic shift: negative deltas end in all ones
                more = x != -1 if (c & 0x10) != 0 else x != 0
                if more:
                    c |= 0x20
                buf[p] = c + 48
                p += 1
        str_offsets[i + 1] = p


# ---------------------------------------------------------------------------
# Counts <-> runs, dense <-> runs, per-mask statistics.
# ---------------------------------------------------------------------------


@kernel
def counts_to_runs(counts, counts_offsets, heights, widths, starts, ends, offsets):
    """Canonical foreground runs of masks given as COCO counts.

    Parameters
    ----------
    counts : int64 (M,)
        All masks' counts (background first), each >= 0; zero-length runs
        anywhere are allowed and vanish in the output.
    counts_offsets : int64 (N + 1,)
        Mask i's counts are ``counts[counts_offsets[i]:counts_offsets[i + 1]]``.
    heights, widths : int64 (N,)
        Mask sizes; the counts of mask i must sum to ``heights[i] * widths[i]``.
    starts, ends : uint32 (M // 2 + N,)
        Output run bounds (at most one run per foreground count).
    offsets : int64 (N + 1,)
        Output: mask i's runs are ``offsets[i]:offsets[i + 1]``.

    Returns
    -------
    (index, code) : the first mask that failed (``NEGATIVE`` or ``BAD_SUM``), or (-1, ``OK``).
    """
    r = 0
    offsets[0] = 0
    for i in range(heights.size):
        pos = np.int64(0)
        first = r
        for j in range(counts_offsets[i], counts_offsets[i + 1]):
            c = counts[j]
            if c < 0:
                return i, NEGATIVE
            if (j - counts_offsets[i]) % 2 == 1 and c > 0:
                if r > first and np.int64(ends[r - 1]) == pos:
                    ends[r - 1] = pos + c  # a zero-length background run joined two runs
                else:
                    starts[r] = pos
                    ends[r] = pos + c
                    r += 1
            pos += c
            if pos > heights[i] * widths[i]:
                return i, BAD_SUM
        if pos != heights[i] * widths[i]:
            return i, BAD_SUM
        offsets[i + 1] = r
    return -1, OK


@kernel
def runs_to_counts(starts, ends, offsets, heights, widths, counts, counts_offsets):
    """Canonical COCO counts of a mask set (inverse of :func:`counts_to_runs`).

    ``counts`` is int64 (2 R + N,); ``counts_offsets`` int64 (N + 1,) receives
    where mask i's counts are. A mask starting with foreground starts with a
    0 count; an empty mask is ``[h * w]``; no count after the first is 0.
    """
    m = 0
    counts_offsets[0] = 0
    for i in range(offsets.size - 1):
        pos = np.int64(0)
        for r in range(offsets[i], offsets[i + 1]):
            s = np.int64(starts[r])
            e = np.int64(ends[r])
            counts[m] = s - pos
            counts[m + 1] = e - s
            m += 2
            pos = e
        total = heights[i] * widths[i]
        if pos < total or m == counts_offsets[i]:
            counts[m] = total - pos
            m += 1
        counts_offsets[i + 1] = m


@kernel
def runs_to_strings(starts, ends, offsets, heights, widths):
    """Compressed COCO strings of a mask set: (buf uint8, str_offsets int64 (N + 1,)).

    String i is ``buf[str_offsets[i]:str_offsets[i + 1]]``: :func:`runs_to_counts`
    then :func:`encode_strings` in one call.
    """
    n = heights.size
    counts = np.empty(2 * starts.size + n, np.int64)
    counts_offsets = np.empty(n + 1, np.int64)
    runs_to_counts(starts, ends, offsets, heights, widths, counts, counts_offsets)
    buf = np.empty(7 * counts_offsets[n], np.uint8)
    str_offsets = np.empty(n + 1, np.int64)
    encode_strings(counts, counts_offsets, buf, str_offsets)
    return buf[: str_offsets[n]], str_offsets


@kernel
def mask_stats(starts, ends, offsets, heights, areas, boxes):
    """Areas and ``rleToBbox`` boxes of a mask set.

    ``areas`` int64 (N,) and ``boxes`` float64 (N, 4) are outputs. A run that
    crosses a column boundary covers the last row of one column and the first
    of the next, so the box then spans every row.
    """
    for i in prange(offsets.size - 1):
        h = heights[i]
        a = np.int64(0)
        x0 = np.int64(-1)
        x1 = np.int64(-1)
        y0 = h
        y1 = np.int64(-1)
        for r in range(offsets[i], offsets[i + 1]):
            s = np.int64(starts[r])
            e = np.int64(ends[r]) - 1
            a += e - s + 1
            xs, xe = s // h, e // h
            if x0 < 0:
                x0 = xs
            x1 = xe
            if xs < xe:
                y0 = 0
                y1 = h - 1
            else:
                y0 = min(y0, s - xs * h)
                y1 = max(y1, e - xe * h)
        areas[i] = a
        if a == 0:
            for c in range(4):
                boxes[i, c] = 0.0
        else:
            boxes[i, 0] = x0
            boxes[i, 1] = y0
            boxes[i, 2] = x1 - x0 + 1
            boxes[i, 3] = y1 - y0 + 1


@kernel
def _read_count(buf, p, end):
    """The compressed count starting at ``buf[p]`` (before the delta): (value, next p, code).

    ``code`` is ``OK``, or why the bytes before ``end`` hold no valid count
    (``BAD_CHAR``, ``TRUNCATED``, ``TOO_LARGE``).
    """
    c = np.int64(buf[p]) - 48
    p += 1
    if c < 0 or c > 63:
        return np.int64(0), p, BAD_CHAR
    x = c & 0x1F
    k = 1
    while c & 0x20:
        if p >= end:
            return np.int64(0), p, TRUNCATED
        c = np.int64(buf[p]) - 48
        if c < 0 or c > 63:
            return np.int64(0), p, BAD_CHAR
        if k >= 12:  # 13 groups exceed 64 bits
            return np.int64(0), p, TOO_LARGE
        x |= (c & 0x1F) << (5 * k)
        p += 1
        k += 1
    if c & 0x10:
        x |= np.int64(-1) << (5 * k)
    return x, p, OK


@kernel
def strings_to_mask_set(buf, heights, widths, starts, ends):
    """:func:`decode_strings`, :func:`counts_to_runs` and :func:`mask_stats` in one pass.

    The path of compressed RLE (a model's usual output, COCO results files):
    the counts go straight from the bytes to runs, never stored, and the
    boxes come from the (column, row) position tracked along the way.

    Parameters
    ----------
    buf : uint8 (C,)
        The N strings joined by ``SEPARATOR`` (``b",".join(strings)``: the
        string boundaries cost nothing to find, and a lengths array costs a
        Python pass over the strings). A string holding the separator is an
        error (``BAD_CHAR``).
    heights, widths : int64 (N,)
        Mask sizes; the counts of mask i must sum to ``heights[i] * widths[i]``.
    starts, ends : uint32 (at least C // 2 + N,)
        Output: the runs, in ``[:n_runs]`` (a string of c bytes holds at most c
        counts, so at most (c + 1) // 2 foreground runs). Given by the caller,
        which may reuse them (the rewards reuse per-thread buffers: fresh
        memory costs page faults that add ~10% to a segm reward).

    Returns
    -------
    (n_runs, offsets, areas, boxes, index, code)
        The mask set is ``starts[:n_runs], ends[:n_runs], offsets, heights,
        widths, areas, boxes``, with ``(-1, OK)``; or a string failed
        (``index``, ``code`` != ``OK``; the outputs are then meaningless). The
        failure found is not always the one the two-step path reports first:
        callers rerun that path for the message.

    Notes
    -----
    Written for speed (it is most of a segm reward's cost): counts are read
    in (background, foreground) pairs, a one-byte count (most of them) inline
    and longer ones by :func:`_read_count`; the box's rows come from the
    start of the column holding the run, advanced without a division in the
    usual case (the next run lies in the same or the next column).
    """
    n = heights.size
    offsets = np.zeros(n + 1, np.int64)
    areas = np.zeros(n, np.int64)
    boxes = np.zeros((n, 4), np.float64)
    r = 0
    end = buf.size
    p = 0
    for i in range(n):
        if i > 0:  # string i - 1 ended at a separator (checked below), or at the end of buf
            if p >= end:
                return r, offsets, areas, boxes, i - 1, BAD_CHAR  # fewer strings than masks
            p += 1
        h = heights[i]
        total = h * widths[i]
        first = r
        pos = np.int64(0)  # pixels covered so far
        area = np.int64(0)
        y0 = h
        y1 = np.int64(-1)
        full = False  # a run crossed a column: the box spans every row
        col_start = np.int64(0)  # first pixel of a column at or before the current run
        j = 0  # index of the next background count
        bg_prev = np.int64(0)  # the previous pair's counts (the delta base two counts back)
        fg_prev = np.int64(0)
        while p < end:
            c = np.int64(buf[p]) - 48
            if np.uint64(c) < 32:  # one group, the usual case: sign-extend its 5 bits
                bg = (c ^ 0x10) - 0x10
                p += 1
            elif c == SEPARATOR - 48:  # the end of the string
                break
            else:
                bg, p, code = _read_count(buf, p, end)
                if code != OK:
                    return r, offsets, areas, boxes, i, code
            if j >= 4:  # from the fourth count on, counts are deltas to the count two back
                bg += bg_prev
            bg_prev = bg
            s = pos + bg
            c = np.int64(buf[p]) - 48 if p < end else SEPARATOR - 48
            if np.uint64(c) < 32:
                fg = (c ^ 0x10) - 0x10
                p += 1
            elif c == SEPARATOR - 48:  # the string ends on a background count
                if np.uint64(bg) >= 4294967296:  # negative, or too large
                    return r, offsets, areas, boxes, i, NEGATIVE if bg < 0 else TOO_LARGE
                pos = s
                break
            else:
                fg, p, code = _read_count(buf, p, end)
                if code != OK:
                    return r, offsets, areas, boxes, i, code
            if j >= 2:
                fg += fg_prev
            fg_prev = fg
            e = s + fg
            # One test for the pair: both counts in [0, 2**32) and within the image (pos <= s <= e).
            if (np.uint64(bg) | np.uint64(fg)) >= 4294967296 or e > total:
                if np.uint64(bg) >= 4294967296:
                    return r, offsets, areas, boxes, i, NEGATIVE if bg < 0 else TOO_LARGE
                if s > total:
                    return r, offsets, areas, boxes, i, BAD_SUM
                if np.uint64(fg) >= 4294967296:
                    return r, offsets, areas, boxes, i, NEGATIVE if fg < 0 else TOO_LARGE
                return r, offsets, areas, boxes, i, BAD_SUM
            j += 2
            pos = e
            if fg > 0:  # (h > 0 here: a 0-pixel mask has only zero counts)
                area += fg
                # A zero-length background run joins two runs (bg > 0 cannot: s > pos >= the last end).
                if bg == 0 and r > first and np.int64(ends[r - 1]) == s:
                    ends[r - 1] = e
                else:
                    starts[r] = s
                    ends[r] = e
                    r += 1
                if not full:
                    d = s - col_start
                    if d >= h:
                        if d < 2 * h:  # the next column: no division
                            col_start += h
                        else:
                            col_start += (d // h) * h
                    if e - col_start > h:  # the run's last pixel is in a later column
                        full = True
                    else:
                        y0 = min(y0, s - col_start)
                        y1 = max(y1, e - 1 - col_start)
        if pos != total:
            return r, offsets, areas, boxes, i, BAD_SUM
        offsets[i + 1] = r
        areas[i] = area
        if area > 0:  # else the zeros of rleToBbox's empty mask
            x0 = np.int64(starts[first]) // h
            x1 = (np.int64(ends[r - 1]) - 1) // h
            if full:
                y0 = 0
                y1 = h - 1
            boxes[i, 0] = x0
            boxes[i, 1] = y0
            boxes[i, 2] = x1 - x0 + 1
            boxes[i, 3] = y1 - y0 + 1
    if p != end:  # more separators than strings: one held a separator
        return r, offsets, areas, boxes, n - 1, BAD_CHAR
    return r, offsets, areas, boxes, -1, OK


@kernel
def dense_to_runs(masks):
    """Canonical runs of N dense masks.

    Parameters
    ----------
    masks : uint8 (N, P)
        Mask i's pixels in column-major order (P = h * w).

    Returns
    -------
    (starts, ends, offsets, bad) : the run arrays, and the first mask holding
    a value other than 0 and 1 (-1 if none).
    """
    n, npix = masks.shape
    offsets = np.zeros(n + 1, np.int64)
    for i in range(n):  # first pass: count runs, validate
        runs = 0
        prev = np.uint8(0)
        for p in range(npix):
            v = masks[i, p]
            if v > 1:
                return np.empty(0, np.uint32), np.empty(0, np.uint32), offsets, i
            if v == 1 and prev == 0:
                runs += 1
            prev = v
        offsets[i + 1] = offsets[i] + runs
    starts = np.empty(offsets[n], np.uint32)
    ends = np.empty(offsets[n], np.uint32)
    for i in prange(n):
        r = offsets[i]
        prev = np.uint8(0)
        for p in range(npix):
            v = masks[i, p]
            if v != prev:
                if v == 1:
                    starts[r] = p
                else:
                    ends[r] = p
                    r += 1
                prev = v
        if prev == 1:
            ends[r] = npix
    return starts, ends, offsets, -1


@kernel
def runs_to_dense(starts, ends, offsets, out):
    """Fills ``out`` uint8 (N, P) (zeros on entry) with the masks, column-major pixels."""
    for i in prange(offsets.size - 1):
        for r in range(offsets[i], offsets[i + 1]):
            for p in range(np.int64(starts[r]), np.int64(ends[r])):
                out[i, p] = 1


# ---------------------------------------------------------------------------
# Union, intersection, gathering.
# ---------------------------------------------------------------------------


@kernel
def _union2(a_s, a_e, b_s, b_e):
    """Union of two sorted, non-overlapping run lists (int64 bounds), canonical: (starts, ends)."""
    out_s = np.empty(a_s.size + b_s.size, np.int64)
    out_e = np.empty(a_s.size + b_s.size, np.int64)
    i = 0
    j = 0
    n = 0
    while i < a_s.size or j < b_s.size:
        if j >= b_s.size or (i < a_s.size and a_s[i] <= b_s[j]):
            s, e = a_s[i], a_e[i]
            i += 1
        else:
            s, e = b_s[j], b_e[j]
            j += 1
        if n > 0 and s <= out_e[n - 1]:  # overlapping or touching: one run
            if e > out_e[n - 1]:
                out_e[n - 1] = e
        else:
            out_s[n] = s
            out_e[n] = e
            n += 1
    return out_s[:n], out_e[:n]


@kernel
def union_runs(starts, ends, offsets, members):
    """The union of masks ``members`` (int64 (K >= 1,)) of a mask set: (starts, ends) uint32."""
    a0, a1 = offsets[members[0]], offsets[members[0] + 1]
    cur_s = starts[a0:a1].astype(np.int64)
    cur_e = ends[a0:a1].astype(np.int64)
    for k in range(1, members.size):
        b0, b1 = offsets[members[k]], offsets[members[k] + 1]
        cur_s, cur_e = _union2(cur_s, cur_e, starts[b0:b1].astype(np.int64), ends[b0:b1].astype(np.int64))
    return cur_s.astype(np.uint32), cur_e.astype(np.uint32)


@kernel
def intersect_runs(starts, ends, offsets, members):
    """The intersection of masks ``members`` (int64 (K >= 1,)): (starts, ends) uint32."""
    a0, a1 = offsets[members[0]], offsets[members[0] + 1]
    cur_s = starts[a0:a1].astype(np.int64)
    cur_e = ends[a0:a1].astype(np.int64)
    for k in range(1, members.size):
        b0, b1 = offsets[members[k]], offsets[members[k] + 1]
        out_s = np.empty(cur_s.size + b1 - b0, np.int64)
        out_e = np.empty(cur_s.size + b1 - b0, np.int64)
        n = 0
        i, j = 0, b0
        while i < cur_s.size and j < b1:
            s = max(cur_s[i], np.int64(starts[j]))
            e = min(cur_e[i], np.int64(ends[j]))
            if e > s:  # runs of one canonical mask never touch, so neither do the pieces
                out_s[n] = s
                out_e[n] = e
                n += 1
            if cur_e[i] < np.int64(ends[j]):
                i += 1
            else:
                j += 1
        cur_s, cur_e = out_s[:n], out_e[:n]
    return cur_s.astype(np.uint32), cur_e.astype(np.uint32)


@kernel
def gather_runs(starts, ends, offsets, order):
    """The mask set's masks in the order ``order`` (int64 (K,)): (starts, ends, offsets)."""
    new_offsets = np.zeros(order.size + 1, np.int64)
    for k in range(order.size):
        new_offsets[k + 1] = new_offsets[k] + offsets[order[k] + 1] - offsets[order[k]]
    out_s = np.empty(new_offsets[-1], np.uint32)
    out_e = np.empty(new_offsets[-1], np.uint32)
    for k in prange(order.size):
        a = offsets[order[k]]
        n = new_offsets[k + 1] - new_offsets[k]
        for m in range(n):
            out_s[new_offsets[k] + m] = starts[a + m]
            out_e[new_offsets[k] + m] = ends[a + m]
    return out_s, out_e, new_offsets


# ---------------------------------------------------------------------------
# Polygons (pycocotools' rleFrPoly, parts merged as frPyObjects + merge do).
# ---------------------------------------------------------------------------


@kernel
def _boundary_index(u, v, pu, pv, h, w):
    """rleFrPoly's boundary point between consecutive upsampled points, or -1 for none.

    When the outline moves from column pu to u (upsampled units), C computes
    xd = (c + .5) / 5 - .5 with c = u moving left, u - 1 moving right, and keeps
    the point when xd is a whole pixel column in [0, w - 1], i.e. when
    c = 5 x + 2; its row is yd = ceil(clamp((min(v, pv) + .5) / 5 - .5, 0, h)).
    Both are done here in integers: (m + .5) / 5 - .5 = (m - 2) / 5, which
    is either whole (and exact in floating point) or at least 1/5 away from
    a whole number. The point is returned as its pixel index x * h + y.
    """
    if u == pu:
        return -1
    c = u if u < pu else u - 1
    if c % 5 != 2:  # Python modulo: also right for negative c
        return -1
    x = (c - 2) // 5
    if x < 0 or x > w - 1:
        return -1
    m = v if v < pv else pv
    y = -((2 - m) // 5)  # ceil((m - 2) / 5)
    if y < 0:
        y = 0
    elif y > h:
        y = h
    return x * h + y


@kernel
def _column(xs, s, t):
    """A steep edge's upsampled column at step t: C's ``(int)(xs + s * t + .5)``."""
    return np.int64(xs + s * t + 0.5)


@kernel
def _walk_outline(x, y, h, w, pts):
    """One polygon's boundary points (rleFrPoly's), stored in ``pts``; returns their count.

    ``x``, ``y``: int64 (k + 1,) upsampled vertices, closed (last = first).
    C walks every edge one upsampled unit at a time along its longer axis,
    rounding the other coordinate with ``(int)(a + .5)`` (truncation toward
    zero), and tests consecutive points of the whole walk with
    :func:`_boundary_index`. Only steps onto an image pixel column can keep a
    point, so this visits just those steps (one in five on a shallow edge,
    found by a corrected guess on a steep one), with the same floating-point
    expressions, and tests each edge's first point against the previous
    edge's last as C does. Points come out in no particular order.
    """
    n = 0
    have_prev = False
    pu = np.int64(0)
    pv = np.int64(0)
    for j in range(x.size - 1):
        xs, xe, ys, ye = x[j], x[j + 1], y[j], y[j + 1]
        dx = abs(xe - xs)
        dy = abs(ys - ye)
        flip = (dx >= dy and xs > xe) or (dx < dy and ys > ye)
        if flip:
            xs, xe = xe, xs
            ys, ye = ye, ys
        if dx == 0 and dy == 0:
            # A repeated vertex: one point (C divides 0 by 0 for its row, but that row
            # is never read: the neighbouring points share its column).
            if have_prev:
                idx = _boundary_index(xs, ys, pu, pv, h, w)
                if idx >= 0:
                    if n < pts.size:  # else only counted: the caller retries with room
                        pts[n] = idx
                    n += 1
            pu, pv, have_prev = xs, ys, True
        elif dx >= dy:
            # Shallow edge: the column moves one unit every step, so only the steps onto
            # columns c = 5 x + 2 of the image can keep a point. Between the points at
            # t = c - xs and t + 1 (in either walking direction) the column test sees c
            # and the rows min(v(t), v(t + 1)); those steps are visited directly, in any
            # order (the points are sorted afterwards), with the same rounding of v.
            s = np.float64(ye - ys) / dx
            t0 = dx if flip else 0  # the edge's first point, tested against the previous edge's last
            if have_prev:
                idx = _boundary_index(t0 + xs, np.int64(ys + s * t0 + 0.5), pu, pv, h, w)
                if idx >= 0:
                    if n < pts.size:  # else only counted: the caller retries with room
                        pts[n] = idx
                    n += 1
            lo = max(xs, np.int64(2))
            hi = min(xs + dx - 1, 5 * (w - 1) + 2)
            for c in range(lo + (2 - lo) % 5, hi + 1, 5):
                t = c - xs
                va = np.int64(ys + s * t + 0.5)
                vb = np.int64(ys + s * (t + 1) + 0.5)
                m = va if va < vb else vb
                row = -((2 - m) // 5)  # as in _boundary_index
                if row < 0:
                    row = 0
                elif row > h:
                    row = h
                if n < pts.size:
                    pts[n] = (c - 2) // 5 * h + row
                n += 1
            t1 = 0 if flip else dx  # the edge's last point
            pu, pv, have_prev = t1 + xs, np.int64(ys + s * t1 + 0.5), True
        elif (abs(xs) + dy) * dy >= 2**50:
            # A steep edge so long and far out that rounding could move its column by two
            # in one step: walk it one step at a time, as C does.
            s = np.float64(xe - xs) / dy
            for d in range(dy + 1):
                t = dy - d if flip else d
                u = _column(xs, s, t)
                if have_prev:
                    idx = _boundary_index(u, t + ys, pu, pv, h, w)
                    if idx >= 0:
                        if n < pts.size:  # else only counted: the caller retries with room
                            pts[n] = idx
                        n += 1
                pu, pv, have_prev = u, t + ys, True
        else:
            # Steep edge: the row moves every step and the column u(t) (monotone in t,
            # changing by at most one a step: |s| < 1 - 1/dy, and the rounding error of
            # xs + s t is far smaller here) only now and then. For each image column
            # c = 5 x + 2 the walk crosses between c and c + 1, the crossing step is found
            # from a guess corrected by exact evaluations of u; its rows are t and t + 1.
            s = np.float64(xe - xs) / dy
            t0 = dy if flip else 0  # the edge's first point, tested against the previous edge's last
            if have_prev:
                idx = _boundary_index(_column(xs, s, t0), t0 + ys, pu, pv, h, w)
                if idx >= 0:
                    if n < pts.size:  # else only counted: the caller retries with room
                        pts[n] = idx
                    n += 1
            ua = _column(xs, s, 0)
            ub = _column(xs, s, dy)
            lo = max(min(ua, ub), np.int64(2))
            hi = min(max(ua, ub) - 1, 5 * (w - 1) + 2)
            for c in range(lo + (2 - lo) % 5, hi + 1, 5):
                # tb: the first t in [1, dy] where u is past c (c + 1 when s > 0, c when s < 0).
                guess = min(max((c + 0.5 - xs) / s, 1.0), np.float64(dy))
                tb = np.int64(math.ceil(guess))
                if s > 0:
                    while tb > 1 and _column(xs, s, tb - 1) > c:
                        tb -= 1
                    while tb <= dy and _column(xs, s, tb) <= c:
                        tb += 1
                else:
                    while tb > 1 and _column(xs, s, tb - 1) <= c:
                        tb -= 1
                    while tb <= dy and _column(xs, s, tb) > c:
                        tb += 1
                m = ys + tb - 1  # the lower of the two rows, v(tb - 1)
                row = -((2 - m) // 5)  # as in _boundary_index
                if row < 0:
                    row = 0
                elif row > h:
                    row = h
                if n < pts.size:
                    pts[n] = (c - 2) // 5 * h + row
                n += 1
            t1 = 0 if flip else dy  # the edge's last point
            pu, pv, have_prev = _column(xs, s, t1), t1 + ys, True
    return n


@kernel
def _polygon_points(xy, h, w, pts):
    """Boundary pixel indices of one polygon (xy float64 (k, 2)), unsorted; returns (pts, n).

    ``pts`` is a scratch buffer, returned (grown if needed) with the points in
    ``pts[:n]``. Vertices are upsampled 5x and rounded with C's
    ``(int)(5 v + .5)``, as rleFrPoly does.
    """
    k = xy.shape[0]
    x = np.empty(k + 1, np.int64)
    y = np.empty(k + 1, np.int64)
    for j in range(k):
        x[j] = np.int64(_SCALE * xy[j, 0] + 0.5)
        y[j] = np.int64(_SCALE * xy[j, 1] + 0.5)
    x[k] = x[0]
    y[k] = y[0]
    # Within an edge the walk moves monotonically, at most one column a step, so it keeps
    # at most one point in five, plus one where it joins the previous edge.
    bound = 0
    for j in range(k):
        bound += max(abs(x[j + 1] - x[j]), abs(y[j + 1] - y[j])) // 5 + 2
    if bound > pts.size:
        pts = np.empty(bound, np.int64)
    n = _walk_outline(x, y, h, w, pts)
    if n > pts.size:  # the bound failed: walk again with room for every point
        pts = np.empty(n, np.int64)
        n = _walk_outline(x, y, h, w, pts)
    return pts, n


@kernel
def _sort_points(pts, n, h):
    """``pts[:n]`` (pixel indices x * h + y) sorted: a counting sort on the column x, then
    insertion sort within each column (a polygon crosses a column a few times only)."""
    out = np.empty(n, np.int64)
    if n == 0:
        return out
    x0 = pts[0] // h
    x1 = x0
    for k in range(n):
        x = pts[k] // h
        x0 = min(x0, x)
        x1 = max(x1, x)
    start = np.zeros(x1 - x0 + 2, np.int64)
    for k in range(n):
        start[pts[k] // h - x0 + 1] += 1
    for c in range(1, start.size):
        start[c] += start[c - 1]
    for k in range(n):
        c = pts[k] // h - x0
        out[start[c]] = pts[k]
        start[c] += 1
    # start[c] is now the end of column c's bucket: insertion sort each bucket.
    lo = 0
    for c in range(start.size - 1):
        hi = start[c]
        for k in range(lo + 1, hi):
            v = out[k]
            j = k
            while j > lo and out[j - 1] > v:
                out[j] = out[j - 1]
                j -= 1
            out[j] = v
        lo = hi
    return out


@kernel
def polygons_to_runs(xy, poly_offsets, obj_offsets, heights, widths):
    """Canonical runs of objects made of polygons, each the union of its polygons' masks.

    Parameters
    ----------
    xy : float64 (K, 2)
        All polygon vertices (x, y), concatenated.
    poly_offsets : int64 (P + 1,)
        Polygon q's vertices are ``xy[poly_offsets[q]:poly_offsets[q + 1]]``.
    obj_offsets : int64 (N + 1,)
        Object i's polygons are ``obj_offsets[i]:obj_offsets[i + 1]``.
    heights, widths : int64 (N,)
        Image size of each object.

    Returns
    -------
    (starts, ends, offsets) : the mask set's run arrays.

    Notes
    -----
    A polygon's mask is the parity of its boundary points in column-major
    order (pycocotools sorts them and takes differences as RLE counts), so
    its runs are consecutive pairs of the sorted points, the last one closed
    at h * w when their number is odd.
    """
    n_obj = heights.size
    offsets = np.zeros(n_obj + 1, np.int64)
    out_s = np.empty(64, np.int64)
    out_e = np.empty(64, np.int64)
    pts = np.empty(64, np.int64)
    r = 0
    for i in range(n_obj):
        h, w = heights[i], widths[i]
        total = h * w
        first = r
        q0, q1 = obj_offsets[i], obj_offsets[i + 1]
        for q in range(q0, q1):
            if total == 0:
                continue
            pts, n = _polygon_points(xy[poly_offsets[q] : poly_offsets[q + 1]], h, w, pts)
            p = _sort_points(pts, n, h)
            out_s = _grow(out_s, r, n // 2 + 1)
            out_e = _grow(out_e, r, n // 2 + 1)
            part_first = r
            for k in range(0, n, 2):
                s = p[k]
                e = p[k + 1] if k + 1 < n else total
                if e == s:
                    continue
                if r > part_first and s == out_e[r - 1]:  # two boundary points in one pixel
                    out_e[r - 1] = e
                else:
                    out_s[r] = s
                    out_e[r] = e
                    r += 1
            if part_first > first and r > part_first:
                # Parts may overlap or touch: the union with the parts before, canonical.
                us, ue = _union2(
                    out_s[first:part_first], out_e[first:part_first], out_s[part_first:r], out_e[part_first:r]
                )
                for m in range(us.size):
                    out_s[first + m] = us[m]
                    out_e[first + m] = ue[m]
                r = first + us.size
        offsets[i + 1] = r
    return out_s[:r].astype(np.uint32), out_e[:r].astype(np.uint32), offsets


# ---------------------------------------------------------------------------
# IoU (pycocotools' rleIou, crowd rule included).
# ---------------------------------------------------------------------------


@kernel
def _first_ending_after(ends, lo, hi, value):
    """The first run r in [lo, hi) with ends[r] > value (hi if none).

    A few steps of linear scan first (two masks that overlap usually begin
    in nearly the same column), then a binary search.
    """
    near = min(hi, lo + 8)
    while lo < near and np.int64(ends[lo]) <= value:
        lo += 1
    if lo < near:
        return lo
    while lo < hi:
        mid = (lo + hi) // 2
        if np.int64(ends[mid]) > value:
            hi = mid
        else:
            lo = mid + 1
    return lo


@kernel
def _intersection_pair(a_starts, a_ends, a0, a1, b_starts, b_ends, b0, b1):
    """Pixels shared by runs a0:a1 of one set and b0:b1 of another (same mask size)."""
    if a0 == a1 or b0 == b1:
        return np.int64(0)
    lo = max(np.int64(a_starts[a0]), np.int64(b_starts[b0]))
    # Skip the runs that end before the later mask begins.
    i = _first_ending_after(a_ends, a0, a1, lo)
    j = _first_ending_after(b_ends, b0, b1, lo)
    inter = np.int64(0)
    while i < a1 and j < b1:
        ea = np.int64(a_ends[i])
        eb = np.int64(b_ends[j])
        s = max(np.int64(a_starts[i]), np.int64(b_starts[j]))
        # Branches, not a branch-free advance: the next loads would wait on the comparison,
        # while the predictor (which mask ends first repeats along a shared edge) runs ahead.
        # On equal ends both advance (canonical runs never touch).
        if ea < eb:
            inter += max(ea - s, 0)
            i += 1
        elif eb < ea:
            inter += max(eb - s, 0)
            j += 1
        else:
            inter += max(ea - s, 0)
            i += 1
            j += 1
    return inter


@kernel
def _boxes_overlap(dt_boxes, d, gt_boxes, g):
    """pycocotools' pre-test: bbIou of the two masks' boxes is > 0."""
    iw = min(dt_boxes[d, 0] + dt_boxes[d, 2], gt_boxes[g, 0] + gt_boxes[g, 2]) - max(
        dt_boxes[d, 0], gt_boxes[g, 0]
    )
    if iw <= 0:
        return False
    ih = min(dt_boxes[d, 1] + dt_boxes[d, 3], gt_boxes[g, 1] + gt_boxes[g, 3]) - max(
        dt_boxes[d, 1], gt_boxes[g, 1]
    )
    return ih > 0


@kernel
def iou_blocks(
    dt_starts,
    dt_ends,
    dt_offsets,
    dt_heights,
    dt_widths,
    dt_areas,
    dt_boxes,
    gt_starts,
    gt_ends,
    gt_offsets,
    gt_heights,
    gt_widths,
    gt_areas,
    gt_boxes,
    dt_index,
    dt_start,
    dt_count,
    gt_index,
    gt_start,
    gt_count,
    gt_crowd,
    out,
    out_offsets,
):
    """IoU matrices of many (detections, ground truths) blocks, pycocotools' ``rleIou``.

    Parameters
    ----------
    dt_starts, dt_ends, dt_offsets, dt_heights, dt_widths, dt_areas, dt_boxes
        The detections' mask set (module docstring; areas int64 (N_dt,)).
    gt_starts, gt_ends, gt_offsets, gt_heights, gt_widths, gt_areas, gt_boxes
        The ground truths' mask set (may be the same arrays as the detections').
    dt_index : int64 (D,)
        Masks of the detection set (rows of the blocks, e.g. by descending score).
    dt_start, dt_count : int64 (B,)
        Block b's detections are ``dt_index[dt_start[b]:dt_start[b] + dt_count[b]]``
        (D_b = dt_count[b]; blocks may leave gaps, e.g. detections beyond maxDets).
    gt_index, gt_start, gt_count : int64 (G,), int64 (B,), int64 (B,)
        The same for the ground truths (the columns).
    gt_crowd : uint8 (N_gt,)
        1 where a mask of the ground-truth set is a crowd region (indexed like the set).
    out : float64 (sum_b D_b * G_b,)
        Output: block b, row-major (D_b, G_b), at ``out[out_offsets[b]:out_offsets[b + 1]]``.
    out_offsets : int64 (B + 1,)
        Where each block starts in ``out``.

    Returns
    -------
    (block, d, g) : the first pair whose masks differ in size (positions
    within the block), or (-1, -1, -1).

    Notes
    -----
    IoU = |d ∩ g| / |d ∪ g|, or |d ∩ g| / |d| against a crowd region; 0 when
    the intersection is empty (pycocotools also skips pairs whose boxes do
    not overlap, which changes nothing but time).
    """
    for b in range(dt_start.size):
        d0 = dt_start[b]
        g0 = gt_start[b]
        ng = gt_count[b]
        base = out_offsets[b]
        for di in range(dt_count[b]):
            d = dt_index[d0 + di]
            for gi in range(ng):
                g = gt_index[g0 + gi]
                if dt_heights[d] != gt_heights[g] or dt_widths[d] != gt_widths[g]:
                    return b, di, gi
                value = 0.0
                if _boxes_overlap(dt_boxes, d, gt_boxes, g):
                    inter = _intersection_pair(
                        dt_starts,
                        dt_ends,
                        dt_offsets[d],
                        dt_offsets[d + 1],
                        gt_starts,
                        gt_ends,
                        gt_offsets[g],
                        gt_offsets[g + 1],
                    )
                    if inter > 0:
                        if gt_crowd[g]:
                            union = dt_areas[d]
                        else:
                            union = dt_areas[d] + gt_areas[g] - inter
                        value = np.float64(inter) / np.float64(union)
                out[base + di * ng + gi] = value
    return -1, -1, -1


@kernel
def polygon_object_to_string(xy, poly_offsets, h, w):
    """The compressed COCO string (uint8 bytes) of one polygon object of an h x w image.

    :func:`polygons_to_runs` then :func:`runs_to_strings` in a single call (one
    dispatch: this is the per-annotation path, where call overhead dominates).
    """
    obj_offsets = np.zeros(2, np.int64)
    obj_offsets[1] = poly_offsets.size - 1
    heights = np.full(1, h, np.int64)
    widths = np.full(1, w, np.int64)
    starts, ends, offsets = polygons_to_runs(xy, poly_offsets, obj_offsets, heights, widths)
    buf, _ = runs_to_strings(starts, ends, offsets, heights, widths)
    return buf
