"""Built-in data: procedurally generated images of coloured shapes with exact boxes.

Each image holds 1 to ``max_objects`` shapes of four kinds (the class):
rectangle, ellipse, triangle, cross, each in a colour of its own palette, of random sizes, drawn in
random order over a textured background so that later shapes occlude
earlier ones. A box is the extent of the pixels of its shape that stay
visible; shapes hidden below ``min_visible`` of their area are dropped.
Everything is a pure function of the seed: the same seed gives the same
train and held-out splits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CLASS_NAMES = ("rectangle", "ellipse", "triangle", "cross")
# Each kind is painted from its own palette, so shape and colour both identify the class
# (class = kind x colour family): a model that must learn on 2 CPU cores in minutes gets a
# visible cue, and the task stays about finding and localising every object.
PALETTES = np.array(
    [
        [[230, 25, 75], [245, 130, 48]],  # rectangle: red, orange
        [[60, 180, 75], [170, 255, 60]],  # ellipse: green, lime
        [[0, 130, 200], [70, 240, 240]],  # triangle: blue, cyan
        [[240, 50, 230], [145, 30, 180]],  # cross: magenta, purple
    ],
    np.uint8,
)


@dataclass(frozen=True)
class Scenes:
    """A split: images (S, H, W, 3) uint8; boxes (S, K, 4) yxyx in [0, 1]; labels, colours, valid (S, K)."""

    images: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    valid: np.ndarray
    colours: np.ndarray
    refs: np.ndarray | None = None  # (S,) object array of reference caption lists (captioning)

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, idx) -> Scenes:
        refs = None if self.refs is None else self.refs[idx]
        return Scenes(
            self.images[idx], self.boxes[idx], self.labels[idx], self.valid[idx], self.colours[idx], refs
        )

    def with_refs(self, refs: list) -> Scenes:
        array = np.empty(len(refs), dtype=object)
        array[:] = refs  # each entry stays one list object: the N samples of an image share it
        return Scenes(self.images, self.boxes, self.labels, self.valid, self.colours, array)


def _shape_mask(kind: int, h: int, w: int, y0: int, x0: int, sh: int, sw: int, rng) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    y, x = (yy - y0) / max(sh, 1), (xx - x0) / max(sw, 1)  # unit square coordinates
    inside = (y >= 0) & (y < 1) & (x >= 0) & (x < 1)
    if kind == 0:  # rectangle
        return inside
    if kind == 1:  # ellipse
        return (y - 0.5) ** 2 + (x - 0.5) ** 2 < 0.25
    if kind == 2:  # triangle, apex up or down
        return inside & (
            (np.abs(x - 0.5) <= y / 2) if rng.random() < 0.5 else (np.abs(x - 0.5) <= (1 - y) / 2)
        )
    return inside & ((np.abs(x - 0.5) < 0.17) | (np.abs(y - 0.5) < 0.17))  # cross


def render_scene(rng: np.random.Generator, size: int, max_objects: int, min_visible: float = 0.3):
    """One image (size, size, 3) uint8 and its boxes yxyx in [0, 1] and labels, visible shapes only."""
    base = rng.integers(20, 90)
    image = (base + rng.integers(-12, 12, size=(size, size, 1))).clip(0, 255).repeat(3, -1).astype(np.uint8)
    owner = np.full((size, size), -1)
    kinds, areas, colours = [], [], []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        kind = int(rng.integers(len(CLASS_NAMES)))
        sh, sw = (int(v) for v in rng.integers(size // 8, size // 2, size=2))
        y0, x0 = int(rng.integers(0, size - sh)), int(rng.integers(0, size - sw))
        mask = _shape_mask(kind, size, size, y0, x0, sh, sw, rng)
        if mask.sum() < 4:
            continue
        colour = int(rng.integers(PALETTES.shape[1]))
        image[mask] = PALETTES[kind, colour]
        owner[mask] = len(kinds)
        kinds.append(kind)
        areas.append(mask.sum())
        colours.append(colour)
    boxes, labels, shades = [], [], []
    for k, (kind, area, colour) in enumerate(zip(kinds, areas, colours)):
        ys, xs = np.nonzero(owner == k)
        if ys.size < max(4, min_visible * area):
            continue
        boxes.append([ys.min() / size, xs.min() / size, (ys.max() + 1) / size, (xs.max() + 1) / size])
        labels.append(kind)
        shades.append(colour)
    return (
        image,
        np.asarray(boxes, np.float64).reshape(-1, 4),
        np.asarray(labels, np.int64),
        np.asarray(shades, np.int64),
    )


def make_scenes(n: int, seed: int, size: int = 64, max_objects: int = 8) -> Scenes:
    """``n`` scenes from one seed, padded to ``max_objects`` boxes."""
    rng = np.random.default_rng(seed)
    images = np.empty((n, size, size, 3), np.uint8)
    boxes = np.zeros((n, max_objects, 4))
    labels = np.zeros((n, max_objects), np.int64)
    colours = np.zeros((n, max_objects), np.int64)
    valid = np.zeros((n, max_objects), bool)
    for i in range(n):
        img, b, lab, col = render_scene(rng, size, max_objects)
        images[i] = img
        boxes[i, : len(b)] = b
        labels[i, : len(b)] = lab
        colours[i, : len(b)] = col
        valid[i, : len(b)] = True
    return Scenes(images, boxes, labels, valid, colours)


def make_splits(n_train: int, n_heldout: int, seed: int = 0, size: int = 64, max_objects: int = 8):
    """Train and held-out splits from disjoint seeds derived from ``seed``."""
    return (
        make_scenes(n_train, seed * 2 + 1, size, max_objects),
        make_scenes(n_heldout, seed * 2 + 2, size, max_objects),
    )


OBJECT_ORDERS = ("random", "area", "raster")


def _reorder(scenes: Scenes, keys: np.ndarray) -> Scenes:
    """Objects of each image sorted by ``keys`` (S, K) ascending; invalid slots go last."""
    order = np.argsort(np.where(scenes.valid, keys, np.inf), axis=1, kind="stable")
    take = lambda a: np.take_along_axis(a, order[..., None] if a.ndim == 3 else order, axis=1)  # noqa: E731
    return Scenes(
        scenes.images,
        take(scenes.boxes),
        take(scenes.labels),
        take(scenes.valid),
        take(scenes.colours),
        scenes.refs,
    )


def shuffle_objects(scenes: Scenes, rng: np.random.Generator) -> Scenes:
    """Random object order per image (valid boxes stay first): the sequence order carries no signal."""
    return _reorder(scenes, rng.random(scenes.valid.shape))


def order_objects(scenes: Scenes, order: str) -> Scenes:
    """Objects in the sequence order MLE is taught (one of ``OBJECT_ORDERS``).

    ``random``: as drawn (``sample_batch`` shuffles every batch: Pix2seq's choice); ``area``: the
    largest box first; ``raster``: by the box's top edge, then its left edge, in 1/16ths of the
    image (rows of boxes). Ties keep the incoming order.
    """
    boxes = scenes.boxes
    if order == "random":
        return scenes
    if order == "area":
        return _reorder(scenes, -(boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1]))
    if order == "raster":
        return _reorder(scenes, np.floor(boxes[..., 0] * 16) + boxes[..., 1])  # x0 < 1
    raise ValueError(f"object order must be one of {OBJECT_ORDERS}, got {order!r}")


def class_counts(scenes: Scenes) -> np.ndarray:
    return np.bincount(scenes.labels[scenes.valid], minlength=len(CLASS_NAMES))


def sample_batch(scenes: Scenes, rng: np.random.Generator, size: int) -> Scenes:
    """``size`` scenes drawn with replacement, objects in a random order."""
    return shuffle_objects(scenes.subset(rng.integers(0, len(scenes), size)), rng)
