"""Oracles of rewards.colorization in plain numpy: the published M3 and the reward as specified.

``reward_batch`` is a vectorised numpy port of the reward kernel of commit
6bae340 (the scalar float64 HSV loop): same hue and chroma expressions, same
bins (``min(int(hue * 2), 11)``), chroma-weighted histogram, same entropy
formula; only the order of float sums differs. It is the reference the
compiled kernels must match to 1e-9.
"""

from __future__ import annotations

import math

import numpy as np

HUE_BINS = 12


def _scaled(images):
    a = np.asarray(images)
    x = a.astype(np.float64)
    return x * 255.0 if a.dtype.kind == "f" else x


def m3(img):
    """Hasler and Suesstrunk's M3, straight from the paper, in float64."""
    x = _scaled(img)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    rg, yb = r - g, 0.5 * (r + g) - b
    return np.sqrt(rg.std() ** 2 + yb.std() ** 2) + 0.3 * np.sqrt(rg.mean() ** 2 + yb.mean() ** 2)


def hue_bins(pixels):
    """HSV hue bin (0..11) and chroma (0..255 scale) of (..., 3) float64 pixels; bin -1 for gray."""
    r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    hi = np.maximum(np.maximum(r, g), b)
    lo = np.minimum(np.minimum(r, g), b)
    chroma = hi - lo
    safe = np.where(chroma > 0, chroma, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        hue_r = (g - b) / safe
        hue_r = np.where(hue_r < 0, hue_r + 6.0, hue_r)
        hue_g = (b - r) / safe + 2.0
        hue_b = (r - g) / safe + 4.0
    hue = np.where(hi == r, hue_r, np.where(hi == g, hue_g, hue_b))
    k = np.minimum((hue * (HUE_BINS / 6.0)).astype(np.int64), HUE_BINS - 1)
    return np.where(chroma > 0, k, -1), chroma


def reward_batch(images):
    """The colorfulness reward of each image of a (B, H, W, 3) batch (uint8, or float in [0, 1])."""
    x = _scaled(images)
    b = x.shape[0]
    pixels = x.reshape(b, -1, 3)
    k, chroma = hue_bins(pixels)
    colored = k >= 0
    index = (np.arange(b)[:, None] * HUE_BINS + k)[colored]
    hist = np.bincount(index, weights=chroma[colored], minlength=b * HUE_BINS).reshape(b, HUE_BINS)
    total = hist.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = hist / total[:, None]
        entropy = -np.where(hist > 0, p * np.log(np.where(hist > 0, p, 1.0)), 0.0).sum(axis=1)
        out = total / (pixels.shape[1] * 255.0) * (0.5 + 0.5 * entropy / math.log(HUE_BINS))
    return np.where(total > 0, np.minimum(out, 1.0), 0.0)
