"""Panoptic segmentation: a coarse class-and-instance token grid, tuned with panoptic quality.

Data: generated scenes whose background is split between two "stuff"
regions of distinct tone and texture (sky, grass, sand) and whose "things"
are the shapes of ``data.py`` (four kinds) occluding each other; the
ground truth is an exact (H, W, 2) map of (category, instance) per pixel
with void pixels (slivers of shapes hidden below ``MIN_VISIBLE``, and a
one-pixel band along the stuff boundary) and crowd regions (clusters of
small shapes of one kind, one crowd segment), as in COCO panoptic.

Representation (the CPU-sized stand-in for UViM's learned guiding code): one
token per ``cell_size`` x ``cell_size`` cell of the image, in raster order:
void, a stuff category, or (thing kind, instance slot). Slots are numbered
in raster order of the instances' first cells, so a new instance always
takes the next free slot. A cell's token is the majority label of its
pixels (crowd cells encode as void); decoding paints each cell's label on
all its pixels. The reward and the evaluation score that full-resolution
map against the exact ground truth, so the representation has a ceiling:
the PQ of the ground truth encoded and decoded (``ceiling()``, reported in
summary.json).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from reference_training import sequence
from reference_training.data import CLASS_NAMES, PALETTES, _shape_mask
from reference_training.sequence import SequenceGrammar
from reference_training.tasks import TaskBase
from rewards import panoptic

STUFF_NAMES = ("sky", "grass", "sand")
THINGS = tuple(range(len(CLASS_NAMES)))  # category ids of the shape kinds: 0..3
STUFFS = tuple(len(CLASS_NAMES) + i for i in range(len(STUFF_NAMES)))  # 4, 5, 6
VOID = -1
_IDS = 64  # instance ids per image the codec accepts
MIN_VISIBLE = 0.3  # instances hidden below this fraction of their area become void
# Muted tones, far from the shapes' saturated palettes; each stuff also has its own texture.
STUFF_TONES = np.array([[125, 150, 185], [80, 110, 70], [175, 155, 115]], np.float64)


@dataclass(frozen=True)
class PanopticScenes:
    """images (S, H, W, 3) uint8; panoptic (S, H, W, 2) int32 (category, instance); crowd (S, H, W) bool;
    tokens (S, L): the maps encoded once (training split)."""

    images: np.ndarray
    panoptic: np.ndarray
    crowd: np.ndarray
    tokens: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, idx) -> PanopticScenes:
        tokens = None if self.tokens is None else self.tokens[idx]
        return PanopticScenes(self.images[idx], self.panoptic[idx], self.crowd[idx], tokens)


def _stuff_texture(kind: int, rng: np.random.Generator, size: int) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    if kind == 0:  # sky: smooth vertical gradient
        shade = 12 * (yy / size - 0.5) + rng.normal(0, 2, (size, size))
    elif kind == 1:  # grass: coarse noise
        shade = rng.normal(0, 10, (size, size))
    else:  # sand: diagonal stripes
        shade = 10 * np.sin((xx + yy) * rng.uniform(0.6, 1.0)) + rng.normal(0, 3, (size, size))
    return STUFF_TONES[kind] * rng.uniform(0.9, 1.1) + shade[..., None]


def render_scene(rng: np.random.Generator, size: int, max_objects: int):
    """One scene: image (size, size, 3) uint8, panoptic map (size, size, 2) int32, crowd (size, size) bool."""
    yy, xx = np.mgrid[:size, :size]
    # Two stuff regions split by a wavy line at a random angle.
    angle, phase = rng.uniform(0, 2 * np.pi), rng.uniform(0, 2 * np.pi)
    u = (yy - size / 2) * np.cos(angle) + (xx - size / 2) * np.sin(angle)
    w = -(yy - size / 2) * np.sin(angle) + (xx - size / 2) * np.cos(angle)
    side = (
        u
        - rng.uniform(-size / 4, size / 4)
        - rng.uniform(1, size / 10) * np.sin(w * rng.uniform(0.05, 0.2) + phase)
    )
    a, b = rng.choice(len(STUFF_NAMES), 2, replace=False)
    low = side < 0
    image = np.where(low[..., None], _stuff_texture(a, rng, size), _stuff_texture(b, rng, size))
    category = np.where(low, STUFFS[a], STUFFS[b]).astype(np.int32)
    category[np.abs(side) < 0.5] = VOID  # annotators leave the boundary unlabeled
    instance = np.zeros((size, size), np.int32)
    crowd = np.zeros((size, size), bool)
    owner = np.full((size, size), -1)
    objects = []  # (kind, full mask area, is crowd)
    if rng.random() < 0.3:  # a crowd: a cluster of small shapes of one kind, labelled as one segment
        kind, colour = int(rng.integers(len(CLASS_NAMES))), int(rng.integers(PALETTES.shape[1]))
        cy, cx = rng.integers(size // 4, 3 * size // 4, 2)
        area = 0
        for _ in range(int(rng.integers(4, 7))):
            s = int(rng.integers(size // 12, size // 7))
            y0 = int(np.clip(cy + rng.integers(-size // 6, size // 6), 0, size - s))
            x0 = int(np.clip(cx + rng.integers(-size // 6, size // 6), 0, size - s))
            mask = _shape_mask(kind, size, size, y0, x0, s, s, rng)
            image[mask] = PALETTES[kind, colour]
            owner[mask] = len(objects)
            area += mask.sum()
        objects.append((kind, area, True))
    for _ in range(int(rng.integers(1, max_objects + 1))):
        kind = int(rng.integers(len(CLASS_NAMES)))
        sh, sw = (int(v) for v in rng.integers(size // 5, size // 2, size=2))
        y0, x0 = int(rng.integers(0, size - sh)), int(rng.integers(0, size - sw))
        mask = _shape_mask(kind, size, size, y0, x0, sh, sw, rng)
        if mask.sum() < 4:
            continue
        image[mask] = PALETTES[kind, int(rng.integers(PALETTES.shape[1]))]
        owner[mask] = len(objects)
        objects.append((kind, mask.sum(), False))
    next_id = 1
    for k, (kind, area, is_crowd) in enumerate(objects):
        visible = owner == k
        if not visible.any():
            continue
        if not is_crowd and visible.sum() < max(4, MIN_VISIBLE * area):
            category[visible], instance[visible] = VOID, 0
            continue
        category[visible], instance[visible] = kind, next_id
        crowd[visible] = is_crowd
        next_id += 1
    pan = np.stack([category, instance], -1)
    return np.clip(image, 0, 255).astype(np.uint8), pan, crowd


def make_scenes(n: int, seed: int, size: int, max_objects: int) -> PanopticScenes:
    rng = np.random.default_rng(seed)
    parts = [render_scene(rng, size, max_objects) for _ in range(n)]
    return PanopticScenes(*(np.stack(p) for p in zip(*parts)))


def make_splits(n_train: int, n_heldout: int, seed: int, size: int, max_objects: int):
    """Train and held-out splits from disjoint seeds derived from ``seed`` (as data.make_splits)."""
    return make_scenes(n_train, seed * 2 + 1, size, max_objects), make_scenes(
        n_heldout, seed * 2 + 2, size, max_objects
    )


class GridCodec:
    """Panoptic maps <-> one token per cell, raster order.

    Tokens: 0 void; 1 .. n_stuff the stuff categories; then thing kind k with
    instance slot j at ``thing_offset + k * slots + j``; BOS last.
    """

    def __init__(self, size: int, cell: int, slots: int):
        self.size, self.cell, self.grid, self.slots = size, cell, size // cell, slots
        self.thing_offset = 1 + len(STUFFS)
        self.vocab_size = self.thing_offset + len(THINGS) * slots + 1  # + BOS
        self.length = self.grid * self.grid

    def encode(self, pan: np.ndarray, crowd: np.ndarray) -> np.ndarray:
        """(B, H, W, 2) maps and (B, H, W) crowd masks -> (B, grid * grid) tokens (cell majority)."""
        b, g, c = len(pan), self.grid, self.cell
        # One small label per pixel: 0 void or crowd, 1.. stuff, then (kind, instance id) pairs.
        cat, inst = pan[..., 0].astype(np.int64), pan[..., 1].astype(np.int64)
        if inst.max(initial=0) >= _IDS:
            raise ValueError(f"instance ids must be < {_IDS} per image")
        is_thing = (cat >= 0) & (cat < len(THINGS)) & ~crowd
        label = np.where(cat >= len(THINGS), cat - len(THINGS) + 1, 0)
        label = np.where(is_thing, self.thing_offset + cat * _IDS + inst, label)
        n_labels = self.thing_offset + len(THINGS) * _IDS
        cells = label.reshape(b, g, c, g, c).transpose(0, 1, 3, 2, 4).reshape(b, g * g, c * c)
        flat = (np.arange(b * g * g).reshape(b, g * g, 1) * n_labels + cells).ravel()
        counts = np.bincount(flat, minlength=b * g * g * n_labels).reshape(b, g * g, n_labels)
        majority = counts.argmax(-1)  # ties: the smaller label (void, then stuff, then things)
        tokens = np.where(majority < self.thing_offset, majority, 0)
        for i in range(b):
            thing = majority[i] >= self.thing_offset
            if not thing.any():
                continue
            labels, first, inverse = np.unique(majority[i][thing], return_index=True, return_inverse=True)
            rank = np.argsort(np.argsort(first))  # slots in raster order of each instance's first cell
            slot = np.minimum(rank, self.slots - 1)[inverse]  # more instances than slots share the last
            kind = (labels[inverse] - self.thing_offset) // _IDS
            tokens[i][thing] = self.thing_offset + kind * self.slots + slot
        return tokens

    def decode(self, tokens: np.ndarray) -> np.ndarray:
        """(B, grid * grid) tokens -> (B, H, W, 2) int32 maps at full resolution (void: category -1)."""
        t = np.asarray(tokens).reshape(-1, self.grid, self.grid)
        stuff = (t >= 1) & (t < self.thing_offset)
        thing = (t >= self.thing_offset) & (t < self.vocab_size - 1)
        cat = np.where(stuff, t - 1 + len(THINGS), VOID)
        cat = np.where(thing, (t - self.thing_offset) // self.slots, cat)
        inst = np.where(thing, (t - self.thing_offset) % self.slots + 1, 0)
        pan = np.stack([cat, inst], -1).astype(np.int32)
        return pan.repeat(self.cell, 1).repeat(self.cell, 2)


class GridGrammar(SequenceGrammar):
    """Fixed length (one token per cell), any token but BOS, no end token."""

    def is_end(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(tokens, dtype=torch.bool)


class PanopticTask(TaskBase):
    """Cell tokens decoded to a full-resolution panoptic map; reward: panoptic quality (COCO rules)."""

    name = "panoptic"
    description = "panoptic maps of generated scenes (stuff + shapes, void, crowd); PQ reward"
    headline = "pq"
    metrics = ("pq", "pq_things", "pq_stuff", "sq", "rq", "pq_reward")
    headline_scale = (100.0, " points")
    reward_name = "per-image PQ"
    presets = {
        # Sized for a shared 2-core machine. Measured (README): held-out PQ 0.601 after MLE (the
        # representation's ceiling is 0.645); tuning moved it by -0.4 points (-1.3 with tune_batch 8 x 4
        # samples, T 0.7, lr 1e-4): the +3 aimed at was not reached.
        "default": dict(
            n_train=2000,
            n_heldout=128,
            image_size=64,
            patch_size=8,
            cell_size=8,
            max_objects=5,
            pretrain_steps=1000,
            tune_steps=80,
            tune_batch=16,
            samples=8,
            temperature=0.5,
            tune_lr=5e-5,
            eval_every=20,
            eval_images=64,
            checkpoint_every=20,
        ),
        "smoke": dict(cell_size=8, max_objects=3),
    }

    @classmethod
    def check_config(cls, cfg) -> None:
        if cfg.image_size % cfg.cell_size:
            raise ValueError(f"--cell-size {cfg.cell_size} must divide --image-size {cfg.image_size}")

    def __init__(self, cfg, out_dir: str | None = None):
        self.cfg = cfg
        train, self.heldout = make_splits(
            cfg.n_train, cfg.n_heldout, cfg.seed, cfg.image_size, cfg.max_objects
        )
        # Slots: a crowd never takes one; a scene has at most max_objects instances.
        self.codec = GridCodec(cfg.image_size, cfg.cell_size, cfg.max_objects)
        self.train = replace(train, tokens=self.codec.encode(train.panoptic, train.crowd))
        self.vocab_size = self.codec.vocab_size
        self.grammar = GridGrammar(self.codec.length, self.vocab_size)
        self.grid_positions = self.codec.grid
        self.options = dict(things=THINGS, stuffs=STUFFS)

    def batch(self, rng: np.random.Generator, size: int) -> PanopticScenes:
        return self.train.subset(rng.integers(0, len(self.train), size))

    def mle_targets(self, scenes: PanopticScenes, rng: np.random.Generator):
        tokens = torch.from_numpy(scenes.tokens)
        return tokens, torch.ones_like(tokens, dtype=torch.bool)

    def reward(self, tokens, probs, scenes: PanopticScenes, samples: int):
        preds = self.codec.decode(tokens.cpu().numpy())
        gts = np.repeat(scenes.panoptic, samples, axis=0)
        crowd = np.repeat(scenes.crowd, samples, axis=0)
        return panoptic.pq_reward_batch(preds, gts, crowd=crowd, **self.options), None

    def predict(self, model, images: np.ndarray) -> np.ndarray:
        """Greedy full-resolution maps (B, H, W, 2)."""
        return np.concatenate(
            [
                self.codec.decode(t.cpu().numpy())
                for t, _ in sequence.greedy_batches(model, self.grammar, images)
            ]
        )

    def _metrics(self, preds: np.ndarray, scenes: PanopticScenes) -> tuple[dict[str, float], np.ndarray]:
        result = panoptic.pq_eval(preds, scenes.panoptic, crowd=scenes.crowd, **self.options)
        per_image = panoptic.pq_reward_batch(preds, scenes.panoptic, crowd=scenes.crowd, **self.options)
        return {
            "pq": result.all.pq,
            "pq_things": result.things.pq,
            "pq_stuff": result.stuff.pq,
            "sq": result.all.sq,
            "rq": result.all.rq,
            "pq_reward": float(per_image.mean()),
        }, per_image

    def evaluate(self, model, scenes: PanopticScenes):
        """Dataset-level PQ (panopticapi's pq_compute) of greedy maps, and per-image PQ rewards."""
        return self._metrics(self.predict(model, scenes.images), scenes)

    def ceiling(self, scenes: PanopticScenes) -> dict[str, float]:
        """The metrics of the ground truth encoded and decoded: the best this representation can score."""
        return self._metrics(self.codec.decode(self.codec.encode(scenes.panoptic, scenes.crowd)), scenes)[0]

    def ablations(self, evaluate, models: dict) -> dict[str, float]:
        return {f"ceiling_{k}": v for k, v in self.ceiling(self.heldout).items()}

    def picture(self, models: dict, scenes: PanopticScenes, path: str, n: int = 8) -> None:
        """Rows of held-out images: image | ground truth | MLE | tuned (void black, crowd hatched)."""
        from reference_training import plots

        images = scenes.images[:n]
        maps = {name: self.predict(models[name], images) for name in ("MLE", "tuned")}
        columns = [
            ("image", None),
            ("ground truth", scenes.panoptic[:n]),
            ("MLE", maps["MLE"]),
            ("tuned", maps["tuned"]),
        ]

        def draw(ax, i):
            row, col = divmod(i, len(columns))
            title, pan = columns[col]
            if pan is None:
                ax.imshow(images[row])
                return
            ax.imshow(colourise(pan[row]))
            if col == 1 and scenes.crowd[row].any():
                ax.contourf(scenes.crowd[row], levels=[0.5, 1.5], colors="none", hatches=["////"])

        plots.grid(
            len(images) * len(columns),
            draw,
            path,
            cols=len(columns),
            size=1.9,
            col_titles=[title for title, _ in columns],
        )


def colourise(pan: np.ndarray) -> np.ndarray:
    """RGB picture of a (H, W, 2) map: stuff in its tone, each thing instance its own shade of its kind."""
    cat, inst = pan[..., 0], pan[..., 1]
    out = np.zeros(pan.shape[:2] + (3,), np.uint8)
    for c in np.unique(cat):
        where = cat == c
        if c in STUFFS:
            out[where] = STUFF_TONES[c - len(THINGS)]
        elif c in THINGS:
            shade = 0.55 + 0.45 * ((inst[where] * 0.37) % 1.0)
            out[where] = (PALETTES[c, 0][None] * shade[:, None]).astype(np.uint8)
    return out
