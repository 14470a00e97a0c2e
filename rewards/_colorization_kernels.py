"""Compiled kernels of ``rewards.colorization``: M3 colorfulness and the hue-variety reward.

Every kernel takes a batch of images flattened to ``pixels``: a C-contiguous
(B, 3 * P) array, row i holding image i's P pixels in row-major order as
R, G, B, R, G, B, ... (``images.reshape(B, -1)`` of a (B, H, W, 3) batch).
uint8 rows hold values 0..255 as they are; float32/float64 rows hold values
in [0, 1] that the kernels scale by 255. Each batch kernel writes one value
per image to ``out`` (float64 (B,)) and an error code to ``errors``
(int64 (B,)): ``OK``, or ``ERR_OUT_OF_RANGE`` when a float image holds a value
outside [0, 1] or NaN (its ``out`` entry is then meaningless).

The uint8 reward kernel is exact integer arithmetic written without branches
so that LLVM vectorises it: more than 10x the scalar float64 loop it
replaced, and bit-identical to that loop on the same uint8 image. The float
kernels are plain scalar loops in float64, whatever the input's float width.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from rewards._numba import kernel

HUE_BINS = 12
# Weight of hue variety in the reward: a vivid single-hue image keeps half its chroma.
HUE_VARIETY_WEIGHT = 0.5

OK = 0
ERR_OUT_OF_RANGE = 1

# uint8 reward: pixels per packed-sum chunk, so that a 21-bit field (at most
# 255 per pixel) never carries into the next.
_STATS_CHUNK = 8192


@kernel(inline=True)
def _in_unit_range(r, g, b):
    """All three channels lie in [0, 1]; NaN fails every comparison."""
    return r >= 0.0 and r <= 1.0 and g >= 0.0 and g <= 1.0 and b >= 0.0 and b <= 1.0


# ------------------------------------------------------------------ M3


@kernel
def _m3_uint8(row):
    """M3 of one uint8 image row (3 * P,) with exact integer sums (rg = R - G, 2 yb = R + G - 2B)."""
    n = row.size // 3
    s_rg = 0
    q_rg = 0
    s_yb2 = 0
    q_yb2 = 0
    for p in range(n):
        r = np.int64(row[3 * p])
        g = np.int64(row[3 * p + 1])
        b = np.int64(row[3 * p + 2])
        rg = r - g
        yb2 = r + g - 2 * b
        s_rg += rg
        q_rg += rg * rg
        s_yb2 += yb2
        q_yb2 += yb2 * yb2
    # n^2 var = n q - s^2, exact in int64 up to ~2^21 pixels; float64 beyond.
    if n <= 2**21:
        var_rg = (n * q_rg - s_rg * s_rg) / (n * n)
        var_yb = (n * q_yb2 - s_yb2 * s_yb2) / (4.0 * n * n)
    else:
        var_rg = max(q_rg / n - (s_rg / n) ** 2, 0.0)
        var_yb = max(q_yb2 / (4.0 * n) - (s_yb2 / (2.0 * n)) ** 2, 0.0)
    mu_rg = s_rg / n
    mu_yb = s_yb2 / (2.0 * n)
    return OK, math.sqrt(var_rg + var_yb) + 0.3 * math.sqrt(mu_rg * mu_rg + mu_yb * mu_yb)


@kernel
def _m3_float(row):
    """M3 of one float image row (3 * P,) in [0, 1], in one pass.

    Sums are shifted by the first pixel's opponents so that the variance stays
    exact for near-constant images (the textbook E[x^2] - E[x]^2 cancels).
    """
    n = row.size // 3
    r0, g0, b0 = row[0] * 255.0, row[1] * 255.0, row[2] * 255.0
    k_rg = r0 - g0
    k_yb = 0.5 * (r0 + g0) - b0
    s_rg = 0.0
    s_yb = 0.0
    q_rg = 0.0
    q_yb = 0.0
    for p in range(n):
        if not _in_unit_range(row[3 * p], row[3 * p + 1], row[3 * p + 2]):
            return ERR_OUT_OF_RANGE, 0.0
        r, g, b = row[3 * p] * 255.0, row[3 * p + 1] * 255.0, row[3 * p + 2] * 255.0
        rg = r - g - k_rg
        yb = 0.5 * (r + g) - b - k_yb
        s_rg += rg
        s_yb += yb
        q_rg += rg * rg
        q_yb += yb * yb
    m_rg = s_rg / n
    m_yb = s_yb / n
    var_rg = max(q_rg / n - m_rg * m_rg, 0.0)
    var_yb = max(q_yb / n - m_yb * m_yb, 0.0)
    mu_rg = m_rg + k_rg
    mu_yb = m_yb + k_yb
    return OK, math.sqrt(var_rg + var_yb) + 0.3 * math.sqrt(mu_rg * mu_rg + mu_yb * mu_yb)


@kernel
def m3_batch_uint8(pixels, out, errors):
    """M3 colorfulness of each image.

    Parameters:
        pixels: uint8 (B, 3 * P), C-contiguous; row i is image i's RGB pixels (see module doc).
        out: float64 (B,), written: M3 on the 0..255 scale.
        errors: int64 (B,), written: ``OK`` (uint8 input cannot be out of range).
    """
    for i in prange(pixels.shape[0]):
        errors[i], out[i] = _m3_uint8(pixels[i])


@kernel
def m3_batch_float(pixels, out, errors):
    """M3 colorfulness of each image.

    Parameters:
        pixels: float32 or float64 (B, 3 * P), C-contiguous, values in [0, 1] (scaled by 255).
        out: float64 (B,), written: M3 on the 0..255 scale.
        errors: int64 (B,), written: ``OK``, or ``ERR_OUT_OF_RANGE`` for an image
            holding a value outside [0, 1] or NaN.
    """
    for i in prange(pixels.shape[0]):
        errors[i], out[i] = _m3_float(pixels[i])


# --------------------------------------------------------------- reward


@kernel(inline=True)
def _reward_from_histogram(hist, total, n_pixels):
    """mean chroma * (w + (1 - w) * normalised entropy of the chroma-weighted hue histogram).

    hist: float64 (HUE_BINS,) chroma summed per hue bin (0..255 scale);
    total: its sum; n_pixels: the image's pixel count.
    """
    if total == 0.0:
        return 0.0
    entropy = 0.0
    for k in range(HUE_BINS):
        if hist[k] > 0:
            p = hist[k] / total
            entropy -= p * math.log(p)
    variety = entropy / math.log(HUE_BINS)
    mean_chroma = total / (n_pixels * 255.0)
    # min(): rounding in the entropy can land a hair above 1 for a perfectly even histogram.
    return min(1.0, mean_chroma * (HUE_VARIETY_WEIGHT + (1.0 - HUE_VARIETY_WEIGHT) * variety))


@kernel
def _hue_chroma_stats_uint8(chunk, stats):
    """Chroma sums of a uint8 ``chunk`` of pixels that determine its hue histogram.

    The float kernel's bin is ``min(int(hue * 2), 11)`` with HSV's hue. In
    integers: with c = max - min and d the numerator of HSV's sextant formula
    (G - B, B - R or R - G for a maximum at R, G or B; R wins ties, then G),
    the bin is base + step with base 0, 4 or 8 and step = floor(2 d / c), in
    -2..2, wrapped into [0, 12). The float version gives the same bins because
    2 d / c is either a whole number (computed exactly) or at least 1 / 510
    from one, far beyond rounding. step is read off four comparisons:
    2 if d >= c; 1 if 2d >= c > d; 0 if c > 2d >= 0; -1 if 0 > d and
    -2d <= c; -2 if -2d > c. So the bins follow from five sums per maximum
    channel, of c over the pixels with: any d, d >= 0, 2d >= c, d >= c,
    -2d > c. Gray pixels (c = 0) add 0 wherever they land.

    No branches (every choice is a select) so that LLVM vectorises the loop;
    and the three channels share each sum as 21-bit fields of one int64
    (c shifted by 0, 21 or 42 bits), which keeps five accumulators instead of
    fifteen. A field holds at most 255 per pixel: chunks of up to
    ``_STATS_CHUNK`` pixels keep it below 2**21, so fields never carry.

    Parameters:
        chunk: uint8 (3 * Q,), Q <= _STATS_CHUNK consecutive RGB pixels of one image.
        stats: int64 (5,), written: the five packed sums, in the order above.
    """
    i32 = np.int32
    i64 = np.int64
    s_all = i64(0)
    s_pos = i64(0)
    s_half = i64(0)
    s_full = i64(0)
    s_neg_half = i64(0)
    for p in range(chunk.size // 3):
        r = i32(chunk[3 * p])
        g = i32(chunk[3 * p + 1])
        b = i32(chunk[3 * p + 2])
        hi = max(r, max(g, b))
        lo = min(r, min(g, b))
        c = i32(hi - lo)
        max_r = r == hi
        max_g = (not max_r) and (g == hi)
        d = i32(g - b) if max_r else (i32(b - r) if max_g else i32(r - g))
        v = i64(c) << (i64(0) if max_r else (i64(21) if max_g else i64(42)))
        d2 = i32(d + d)
        s_all += v
        s_pos += v if d >= 0 else i64(0)
        s_half += v if d2 >= c else i64(0)
        s_full += v if d >= c else i64(0)
        s_neg_half += v if -d2 > c else i64(0)
    stats[0] = s_all
    stats[1] = s_pos
    stats[2] = s_half
    stats[3] = s_full
    stats[4] = s_neg_half


@kernel
def _reward_uint8(row):
    """The reward of one uint8 row (3 * P,): packed chunk sums unpacked into the 12-bin histogram."""
    n = row.size // 3
    stats = np.zeros(5, np.int64)
    sums = np.zeros(HUE_BINS, np.int64)
    field = (1 << 21) - 1
    for start in range(0, n, _STATS_CHUNK):
        _hue_chroma_stats_uint8(row[3 * start : 3 * min(n, start + _STATS_CHUNK)], stats)
        for m in range(3):  # maximum at R, G, B: hue bins 0, 4, 8 and their neighbours
            s_all, s_pos, s_half, s_full, s_neg_half = (
                (stats[0] >> (21 * m)) & field,
                (stats[1] >> (21 * m)) & field,
                (stats[2] >> (21 * m)) & field,
                (stats[3] >> (21 * m)) & field,
                (stats[4] >> (21 * m)) & field,
            )
            base = 4 * m
            sums[base] += s_pos - s_half
            sums[base + 1] += s_half - s_full
            sums[base + 2] += s_full
            sums[(base + 11) % HUE_BINS] += s_all - s_pos - s_neg_half
            sums[(base + 10) % HUE_BINS] += s_neg_half
    hist = sums.astype(np.float64)  # integer sums below 2**53: exact
    return OK, _reward_from_histogram(hist, hist.sum(), n)


@kernel
def _reward_float(row):
    """The reward of one float row (3 * P,) in [0, 1]: HSV hue and chroma in float64."""
    n = row.size // 3
    hist = np.zeros(HUE_BINS)
    total = 0.0
    for p in range(n):
        if not _in_unit_range(row[3 * p], row[3 * p + 1], row[3 * p + 2]):
            return ERR_OUT_OF_RANGE, 0.0
        r, g, b = row[3 * p] * 255.0, row[3 * p + 1] * 255.0, row[3 * p + 2] * 255.0
        hi = max(r, g, b)
        lo = min(r, g, b)
        chroma = hi - lo
        if chroma <= 0.0:
            continue
        # HSV hue in sextants [0, 6)
        if hi == r:
            hue = (g - b) / chroma
            if hue < 0:
                hue += 6.0
        elif hi == g:
            hue = (b - r) / chroma + 2.0
        else:
            hue = (r - g) / chroma + 4.0
        k = min(int(hue * (HUE_BINS / 6.0)), HUE_BINS - 1)
        hist[k] += chroma
        total += chroma
    return OK, _reward_from_histogram(hist, total, n)


@kernel
def reward_batch_uint8(pixels, out, errors):
    """``colorfulness_reward`` of each image.

    Parameters:
        pixels: uint8 (B, 3 * P), C-contiguous; row i is image i's RGB pixels (see module doc).
        out: float64 (B,), written: the reward in [0, 1].
        errors: int64 (B,), written: ``OK``.
    """
    for i in prange(pixels.shape[0]):
        errors[i], out[i] = _reward_uint8(pixels[i])


@kernel
def reward_batch_float(pixels, out, errors):
    """``colorfulness_reward`` of each image.

    Parameters:
        pixels: float32 or float64 (B, 3 * P), C-contiguous, values in [0, 1].
        out: float64 (B,), written: the reward in [0, 1].
        errors: int64 (B,), written: ``OK``, or ``ERR_OUT_OF_RANGE`` for an image
            holding a value outside [0, 1] or NaN.
    """
    for i in prange(pixels.shape[0]):
        errors[i], out[i] = _reward_float(pixels[i])
