"""Colorization data: generated scenes whose colours the gray image cannot tell, and CIELAB helpers.

A scene is a textured background of one of four muted natural tones (sky,
grass, sand, stone: each with its own texture, so the gray image names it)
under 1 to ``max_objects`` shapes of the four kinds of ``data.py``. Each
shape takes one of its kind's four colours (``KIND_COLOURS``): a dull one
(gray, brown, olive) with probability 0.4, else one of three vivid ones.
The object's lightness is drawn independently of its colour, so the gray
input carries no hint of which one it is: the best a likelihood model can do
is to learn the four-way distribution, and its greedy decoding takes the
dull mode. Colours are CIELAB (a, b) entries of ``PALETTE``, the same
palette the colorization task's tokens name, so the representation's
ceiling (see ``tasks/colorization.py``) is lost only at cells that straddle
an edge and where a colour leaves the sRGB gamut.

Everything is a pure function of the seed.

Example:
    >>> scenes = make_scenes(2, seed=0, size=32, max_objects=3)
    >>> scenes.images.shape, scenes.colour.shape, scenes.objects.dtype
    ((2, 32, 32, 3), (2, 32, 32, 3), dtype('bool'))
    >>> bool((scenes.images[..., 0] == scenes.images[..., 2]).all())  # the input is gray
    True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reference_training.data import CLASS_NAMES, _shape_mask

# ------------------------------------------------------------------ CIELAB (D65, sRGB)

_RGB_TO_XYZ = np.array(
    [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]]
)
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)
_WHITE = np.array([0.95047, 1.0, 1.08883])
_DELTA = 6 / 29


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB uint8 (..., 3) -> CIELAB (..., 3) float64 (L in 0..100).

    Example:
        >>> np.round(rgb_to_lab(np.array([255, 0, 0], np.uint8)), 2).tolist()
        [53.24, 80.09, 67.2]
    """
    c = np.asarray(rgb, np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    t = linear @ _RGB_TO_XYZ.T / _WHITE
    f = np.where(t > _DELTA**3, np.cbrt(t), t / (3 * _DELTA**2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """CIELAB (..., 3) -> sRGB uint8 (..., 3); colours outside the sRGB gamut are clipped per channel.

    Example:
        >>> lab_to_rgb(rgb_to_lab(np.array([12, 200, 77], np.uint8))).tolist()
        [12, 200, 77]
    """
    lab = np.asarray(lab, np.float64)
    fy = (lab[..., 0] + 16) / 116
    f = np.stack([fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200], -1)
    t = np.where(f > _DELTA, f**3, 3 * _DELTA**2 * (f - 4 / 29)) * _WHITE
    linear = np.clip(t @ _XYZ_TO_RGB.T, 0.0, 1.0)
    c = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)
    return np.round(c * 255).astype(np.uint8)


# L* of each gray level: the decoder reads the input's lightness through this table.
GRAY_LIGHTNESS = rgb_to_lab(np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, 1))[:, 0]


def gray_of(lightness: np.ndarray) -> np.ndarray:
    """The gray uint8 level (...) whose L* is nearest to ``lightness`` (...): the colorization input."""
    return lab_to_rgb(np.stack([lightness, np.zeros_like(lightness), np.zeros_like(lightness)], -1))[..., 0]


# ------------------------------------------------------------------ palette

HUES = 12  # ab-plane angles 0, 30, ..., 330 degrees
CHROMAS = (14.0, 30.0, 50.0)  # muted, medium, vivid (CIELAB chroma)


def _palette() -> np.ndarray:
    angles = np.deg2rad(np.arange(HUES) * 360 / HUES)
    rings = [np.stack([c * np.cos(angles), c * np.sin(angles)], -1) for c in CHROMAS]
    return np.concatenate([np.zeros((1, 2))] + rings)


# (a, b) of code 0 (neutral) and of code 1 + ring * HUES + hue for each chroma ring.
PALETTE = _palette()


def code(hue: int, ring: int) -> int:
    """The palette code of ``hue`` (0..11, 30 degree steps in the ab plane) on chroma ``ring`` (0..2)."""
    return 1 + ring * HUES + hue


NEUTRAL = 0
# Per kind: a dull colour (probability 0.4) first, then three vivid ones (0.2 each).
KIND_COLOURS = np.array(
    [
        [NEUTRAL, code(1, 2), code(9, 2), code(3, 2)],  # rectangle: gray | red, blue, yellow
        [code(2, 0), code(1, 2), code(5, 2), code(3, 2)],  # ellipse: brown | red, green, yellow
        [NEUTRAL, code(2, 2), code(7, 2), code(11, 2)],  # triangle: gray | orange, cyan, magenta
        [code(4, 0), code(11, 2), code(10, 2), code(6, 2)],  # cross: olive | magenta, violet, teal
    ]
)
KIND_PROBS = np.array([0.4, 0.2, 0.2, 0.2])
BACKGROUND_NAMES = ("sky", "grass", "sand", "stone")
# Muted tones: (palette code, base L*); each has its own texture.
BACKGROUNDS = ((code(8, 0), 72.0), (code(4, 0), 48.0), (code(2, 0), 66.0), (NEUTRAL, 55.0))


@dataclass(frozen=True)
class ColourScenes:
    """A split: images (S, H, W, 3) uint8 gray inputs; colour (S, H, W, 3) uint8 ground truth;
    objects (S, H, W) bool (pixels of shapes; the rest is background); tokens (S, L): the ground
    truth encoded once (set by the task)."""

    images: np.ndarray
    colour: np.ndarray
    objects: np.ndarray
    tokens: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, idx) -> ColourScenes:
        tokens = None if self.tokens is None else self.tokens[idx]
        return ColourScenes(self.images[idx], self.colour[idx], self.objects[idx], tokens)


def _background_lightness(kind: int, rng: np.random.Generator, size: int) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    base = BACKGROUNDS[kind][1] + rng.uniform(-5, 5)
    if kind == 0:  # sky: smooth vertical gradient
        shade = 14 * (0.5 - yy / size) + rng.normal(0, 0.7, (size, size))
    elif kind == 1:  # grass: coarse noise
        shade = rng.normal(0, 5, (size, size))
    elif kind == 2:  # sand: diagonal stripes
        shade = 5 * np.sin((xx + yy) * rng.uniform(0.6, 1.0)) + rng.normal(0, 1, (size, size))
    else:  # stone: blotches
        shade = 6 * np.sign(np.sin(xx * rng.uniform(0.3, 0.5)) * np.sin(yy * rng.uniform(0.3, 0.5)))
    return base + shade


def render_scene(rng: np.random.Generator, size: int, max_objects: int):
    """One scene: gray input (size, size, 3) uint8, colour (size, size, 3) uint8, objects (size, size) bool."""
    background = int(rng.integers(len(BACKGROUNDS)))
    lightness = _background_lightness(background, rng, size)
    ab = np.broadcast_to(PALETTE[BACKGROUNDS[background][0]], (size, size, 2)).copy()
    objects = np.zeros((size, size), bool)
    for _ in range(int(rng.integers(1, max_objects + 1))):
        kind = int(rng.integers(len(CLASS_NAMES)))
        sh, sw = (int(v) for v in rng.integers(size // 5, size // 2 + 1, size=2))
        y0, x0 = int(rng.integers(0, size - sh + 1)), int(rng.integers(0, size - sw + 1))
        mask = _shape_mask(kind, size, size, y0, x0, sh, sw, rng)
        colour = KIND_COLOURS[kind, rng.choice(len(KIND_PROBS), p=KIND_PROBS)]
        # Lightness independent of the colour: the gray input cannot tell the colours apart.
        lightness[mask] = rng.uniform(40, 75) + rng.normal(0, 1.5, int(mask.sum()))
        ab[mask] = PALETTE[colour]
        objects |= mask
    lightness = np.clip(lightness, 5, 95)
    colour = lab_to_rgb(np.concatenate([lightness[..., None], ab], -1))
    # The input is the ground truth's own lightness, rendered gray.
    gray = gray_of(rgb_to_lab(colour)[..., 0])
    return np.repeat(gray[..., None], 3, -1), colour, objects


def make_scenes(n: int, seed: int, size: int, max_objects: int) -> ColourScenes:
    """``n`` scenes from one seed."""
    rng = np.random.default_rng(seed)
    parts = [render_scene(rng, size, max_objects) for _ in range(n)]
    return ColourScenes(*(np.stack(p) for p in zip(*parts)))


def make_splits(n_train: int, n_heldout: int, seed: int, size: int, max_objects: int):
    """Train and held-out splits from disjoint seeds derived from ``seed`` (as data.make_splits)."""
    return make_scenes(n_train, seed * 2 + 1, size, max_objects), make_scenes(
        n_heldout, seed * 2 + 2, size, max_objects
    )
