"""Colorization rewards: Hasler and Suesstrunk's colorfulness and a bounded vividness reward.

Images are (H, W, 3) sRGB: uint8 in 0..255 as is, floats in [0, 1] scaled by
255. Batches are (B, H, W, 3). The batch functions run one fused pass per
image (parallel over images) without making float copies of the batch.

Example:
    >>> import numpy as np
    >>> from rewards import colorization
    >>> gray = np.full((8, 8, 3), 128, np.uint8)
    >>> colorization.colorfulness(gray), colorization.colorfulness_reward(gray)
    (0.0, 0.0)
    >>> red = np.zeros((8, 8, 3), np.uint8); red[..., 0] = 255
    >>> round(colorization.colorfulness(red), 2), round(colorization.colorfulness_reward(red), 2)
    (85.53, 0.5)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rewards._numba import kernel
from numba import prange

from rewards._inputs import to_numpy

__all__ = ["colorfulness", "colorfulness_batch", "colorfulness_reward", "colorfulness_reward_batch"]

HUE_BINS = 12
# Weight of hue variety in the reward: a vivid single-hue image keeps half its chroma.
HUE_VARIETY_WEIGHT = 0.5

_OK = 0
_OUT_OF_RANGE = 1


def _images(x: Any, name: str, batched: bool) -> np.ndarray:
    a = to_numpy(x, name)
    want = 4 if batched else 3
    shape = "(B, H, W, 3)" if batched else "(H, W, 3)"
    if a.ndim != want or a.shape[-1] != 3:
        raise ValueError(f"`{name}` must have shape {shape} of RGB pixels, got {a.shape}")
    if a.dtype == np.uint8:
        return a
    if a.dtype.kind == "f":
        return a if a.dtype in (np.float32, np.float64) else a.astype(np.float32)
    raise ValueError(f"`{name}` must be uint8 (0..255) or float in [0, 1], got dtype {a.dtype}")


@kernel(inline=True)
def _rgb(img, y, x, scale):
    return img[y, x, 0] * scale, img[y, x, 1] * scale, img[y, x, 2] * scale


@kernel(inline=True)
def _in_unit_range(img, y, x):
    """A float pixel's channels all lie in [0, 1] (NaN fails)."""
    for c in range(3):
        v = img[y, x, c]
        if not (v >= 0.0 and v <= 1.0):
            return False
    return True


@kernel
def _image_colorfulness(img, scale, is_float):
    """M3 in one pass: shifted sums keep the variance exact for near-constant images."""
    h, w = img.shape[0], img.shape[1]
    r0, g0, b0 = _rgb(img, 0, 0, scale)
    k_rg = r0 - g0
    k_yb = 0.5 * (r0 + g0) - b0
    s_rg = 0.0
    s_yb = 0.0
    q_rg = 0.0
    q_yb = 0.0
    for y in range(h):
        for x in range(w):
            if is_float and not _in_unit_range(img, y, x):
                return _OUT_OF_RANGE, 0.0
            r, g, b = _rgb(img, y, x, scale)
            rg = r - g - k_rg
            yb = 0.5 * (r + g) - b - k_yb
            s_rg += rg
            s_yb += yb
            q_rg += rg * rg
            q_yb += yb * yb
    n = h * w
    m_rg = s_rg / n
    m_yb = s_yb / n
    var_rg = max(q_rg / n - m_rg * m_rg, 0.0)
    var_yb = max(q_yb / n - m_yb * m_yb, 0.0)
    mu_rg = m_rg + k_rg
    mu_yb = m_yb + k_yb
    return _OK, math.sqrt(var_rg + var_yb) + 0.3 * math.sqrt(mu_rg * mu_rg + mu_yb * mu_yb)


@kernel
def _image_reward(img, scale, is_float):
    """Mean chroma times (w + (1 - w) * normalised chroma-weighted hue entropy)."""
    h, w = img.shape[0], img.shape[1]
    hist = np.zeros(HUE_BINS)
    total = 0.0
    for y in range(h):
        for x in range(w):
            if is_float and not _in_unit_range(img, y, x):
                return _OUT_OF_RANGE, 0.0
            r, g, b = _rgb(img, y, x, scale)
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
    if total == 0.0:
        return _OK, 0.0
    entropy = 0.0
    for k in range(HUE_BINS):
        if hist[k] > 0:
            p = hist[k] / total
            entropy -= p * math.log(p)
    variety = entropy / math.log(HUE_BINS)
    mean_chroma = total / (h * w * 255.0)
    # min(): rounding in the entropy can land a hair above 1 for a perfectly even histogram.
    return _OK, min(1.0, mean_chroma * (HUE_VARIETY_WEIGHT + (1.0 - HUE_VARIETY_WEIGHT) * variety))


@kernel
def _image_colorfulness_uint8(img):
    """M3 of a uint8 image with exact integer sums (rg = R - G, 2 yb = R + G - 2B)."""
    flat = img.reshape(-1)
    n = flat.size // 3
    s_rg = 0
    q_rg = 0
    s_yb2 = 0
    q_yb2 = 0
    for p in range(n):
        r = np.int64(flat[3 * p])
        g = np.int64(flat[3 * p + 1])
        b = np.int64(flat[3 * p + 2])
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
    return _OK, math.sqrt(var_rg + var_yb) + 0.3 * math.sqrt(mu_rg * mu_rg + mu_yb * mu_yb)


@kernel
def _colorfulness_batch(images, scale, is_float, out, errors):
    for i in prange(images.shape[0]):
        if is_float:
            errors[i], out[i] = _image_colorfulness(images[i], scale, is_float)
        else:
            errors[i], out[i] = _image_colorfulness_uint8(images[i])


@kernel
def _reward_batch(images, scale, is_float, out, errors):
    for i in prange(images.shape[0]):
        errors[i], out[i] = _image_reward(images[i], scale, is_float)


def _run(kernel, images: np.ndarray, name: str, batched: bool) -> np.ndarray:
    batch = np.ascontiguousarray(images if batched else images[None])
    is_float = batch.dtype.kind == "f"
    if batch.shape[1] * batch.shape[2] == 0:
        raise ValueError(f"`{name}` has no pixels (shape {images.shape})")
    out = np.empty(batch.shape[0])
    errors = np.zeros(batch.shape[0], np.int64)
    kernel(batch, 255.0 if is_float else 1.0, is_float, out, errors)
    if errors.any():
        where = f"{name}[{int(np.flatnonzero(errors)[0])}]" if batched else name
        raise ValueError(f"`{where}` is a float image with values outside [0, 1] (or NaN)")
    return out


def colorfulness(image: Any) -> float:
    """Hasler and Suesstrunk's (2003) colorfulness M3 on the 0..255 scale.

    rg = R - G, yb = (R + G) / 2 - B (signed), population std and mean over
    pixels; M3 = sqrt(std_rg² + std_yb²) + 0.3 sqrt(mean_rg² + mean_yb²).
    (A widely copied version takes |rg| and |yb|: that is not M3.)

    Example:
        >>> import numpy as np
        >>> img = np.zeros((2, 2, 3)); img[0, 0] = (1.0, 0.0, 0.0)  # float in [0, 1]
        >>> round(colorfulness(img), 3)
        144.834
    """
    return float(_run(_colorfulness_batch, _images(image, "image", False), "image", False)[0])


def colorfulness_batch(images: Any) -> np.ndarray:
    """``colorfulness`` of each image of a (B, H, W, 3) batch; float64 (B,).

    Example:
        >>> import numpy as np
        >>> colorfulness_batch(np.zeros((3, 4, 4, 3), np.uint8)).tolist()
        [0.0, 0.0, 0.0]
    """
    return _run(_colorfulness_batch, _images(images, "images", True), "images", True)


def colorfulness_reward(image: Any) -> float:
    """A tuning reward in [0, 1] that discourages gray and promotes vivid, varied colour.

    reward = mean_chroma * (0.5 + 0.5 * hue_variety), where per pixel
    chroma = (max(R, G, B) - min(R, G, B)) / 255 (HSV chroma, 0 exactly for
    any gray), and hue_variety = H(p) / log(12), the entropy of the
    chroma-weighted histogram p of HSV hue over 12 bins of 30 degrees.

    Why each term: mean chroma is the saturation level, zero for any gray
    image, and scales down when an image is desaturated towards gray; the
    chroma weighting keeps near-gray noise from counting as hue variety;
    the entropy rewards many hues over one, and the 0.5 floor keeps a vivid
    single-hue image (a red car) worth half its chroma. It depends only on
    the pixel distribution: invariant to image size and pixel order.

    Example:
        >>> import numpy as np
        >>> one_hue = np.zeros((2, 2, 3), np.uint8); one_hue[..., 0] = 255
        >>> many = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [255, 255, 0]]], np.uint8)
        >>> colorfulness_reward(one_hue) < colorfulness_reward(many) <= 1.0
        True
    """
    return float(_run(_reward_batch, _images(image, "image", False), "image", False)[0])


def colorfulness_reward_batch(images: Any) -> np.ndarray:
    """``colorfulness_reward`` of each image of a (B, H, W, 3) batch; float64 (B,)."""
    return _run(_reward_batch, _images(images, "images", True), "images", True)
