"""Colorization: a grid of palette tokens painted over the input's own lightness, tuned for vividness.

Data: ``colorization_data`` (scenes whose object colours the gray input
cannot tell; a dull colour is each kind's most likely one, so a likelihood
model's greedy decoding paints dull objects).

Representation: one token per ``cell_size`` x ``cell_size`` cell, in raster
order, naming an entry of ``colorization_data.PALETTE``: a CIELAB (a, b)
chroma pair (neutral, or 12 hues at 30 degree steps on three chroma rings,
14 / 30 / 50). Decoding paints each pixel with L* read from its own gray
input pixel and (a, b) of its cell's token, converted to sRGB (clipped to
the gamut). Encoding takes each pixel's nearest palette entry and the
majority entry of the cell. So the lightness is always exact and the
colour is exact where a cell lies inside one region; the ceiling
(``ceiling()``: the ground truth encoded and decoded, reported in
summary.json's ablations) is lost at cells that straddle an edge and where
a vivid entry leaves the sRGB gamut at a pixel's lightness (clipped).

Metrics (held-out, greedy decoding): ``reward`` (mean
``colorfulness_reward``, the tuning reward), ``m3`` (mean Hasler-Suesstrunk
colorfulness), ``hue_entropy_image`` / ``hue_entropy_set`` (entropy of the
chroma-weighted 12-bin HSV hue histogram of each image, averaged, and of
all images pooled; divided by log 12, so in [0, 1]), ``ab_error`` (mean
per-pixel CIELAB (a, b) distance to the ground truth), ``psnr`` (mean
per-image sRGB PSNR, dB), ``background_chroma`` / ``object_chroma`` (mean
CIELAB chroma of the predicted background / object pixels: the ground
truth's backgrounds are muted, about 10, so a tuned model that raises
``background_chroma`` buys vividness by painting the backgrounds, reward
hacking).

Tuning: REINFORCE with ``colorfulness_reward_batch`` (N samples per image,
leave-one-out baseline), plus a fidelity anchor (``auxiliary_loss``):
``anchor_weight`` x the cross-entropy of the ground-truth tokens under the
same teacher-forced pass. With the reward alone (``anchor_weight = 0``)
tuning finds the reward's cheapest maximum within ~40 steps: every cell,
muted backgrounds included, in one vivid colour (reward 6x the MLE's, hue
entropy 0, background chroma ~48): reward hacking. The anchor holds the
colours the gray input determines (the backgrounds: their texture names
them) and leaves the reward to choose among the plausible colours of the
objects, where the MLE model hedges towards the dull mode.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from reference_training import colorization_data as cd
from reference_training import sequence
from reference_training.colorization_data import ColourScenes
from reference_training.tasks import TaskBase
from reference_training.tasks.panoptic import GridGrammar, check_cell_grid
from rewards import colorization

_HUE_BINS = 12


class PaletteGridCodec:
    """Colour images <-> one palette token per cell (raster order); BOS is the last token.

    Example:
        >>> codec = PaletteGridCodec(size=8, cell=4)
        >>> scenes = cd.make_scenes(1, seed=0, size=8, max_objects=1)
        >>> tokens = codec.encode(scenes.colour)
        >>> tokens.shape, codec.decode(tokens, scenes.images).shape
        ((1, 4), (1, 8, 8, 3))
    """

    def __init__(self, size: int, cell: int):
        self.size, self.cell, self.grid = size, cell, size // cell
        self.length = self.grid * self.grid
        self.vocab_size = len(cd.PALETTE) + 1  # + BOS

    def encode(self, colour: np.ndarray) -> np.ndarray:
        """(B, H, W, 3) uint8 colour images -> (B, grid * grid) tokens: the cell's majority nearest entry."""
        b, g, c = len(colour), self.grid, self.cell
        ab = cd.rgb_to_lab(colour)[..., 1:]
        nearest = ((ab[..., None, :] - cd.PALETTE) ** 2).sum(-1).argmin(-1)  # (B, H, W)
        cells = nearest.reshape(b, g, c, g, c).transpose(0, 1, 3, 2, 4).reshape(b * g * g, c * c)
        n = len(cd.PALETTE)
        counts = np.bincount((np.arange(b * g * g)[:, None] * n + cells).ravel(), minlength=b * g * g * n)
        return counts.reshape(b, g * g, n).argmax(-1)

    def decode(self, tokens: np.ndarray, gray: np.ndarray) -> np.ndarray:
        """(B, grid * grid) tokens and (B, H, W, 3) uint8 gray inputs -> (B, H, W, 3) uint8 colour images."""
        t = np.minimum(np.asarray(tokens), len(cd.PALETTE) - 1).reshape(-1, self.grid, self.grid)
        ab = cd.PALETTE[t].repeat(self.cell, 1).repeat(self.cell, 2)
        lightness = cd.GRAY_LIGHTNESS[gray[..., 0]]
        return cd.lab_to_rgb(np.concatenate([lightness[..., None], ab], -1))


def hue_histograms(images: np.ndarray) -> np.ndarray:
    """(B, 12) chroma-weighted HSV hue histograms of (B, H, W, 3) uint8 images (bins of 30 degrees)."""
    x = images.reshape(len(images), -1, 3).astype(np.float64) / 255.0
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    high, low = x.max(-1), x.min(-1)
    chroma = high - low
    safe = np.where(chroma > 0, chroma, 1.0)
    sextant = np.where(
        high == r, ((g - b) / safe) % 6, np.where(high == g, (b - r) / safe + 2, (r - g) / safe + 4)
    )
    bins = np.minimum((sextant * 2).astype(np.int64), _HUE_BINS - 1)
    rows = np.arange(len(images))[:, None] * _HUE_BINS
    return np.bincount((rows + bins).ravel(), chroma.ravel(), len(images) * _HUE_BINS).reshape(-1, _HUE_BINS)


def normalised_entropy(hist: np.ndarray) -> np.ndarray:
    """Entropy of each row of ``hist`` (..., 12) over log 12; 0 for an all-zero (gray) row."""
    total = hist.sum(-1, keepdims=True)
    p = hist / np.where(total > 0, total, 1.0)
    return -(p * np.log(np.where(p > 0, p, 1.0))).sum(-1) / np.log(_HUE_BINS)


def colour_metrics(pred: np.ndarray, scenes: ColourScenes) -> tuple[dict[str, float], np.ndarray]:
    """The held-out metrics (see the module doc) of predicted colour images, and per-image rewards."""
    per_image = colorization.colorfulness_reward_batch(pred)
    hist = hue_histograms(pred)
    lab, truth = cd.rgb_to_lab(pred), cd.rgb_to_lab(scenes.colour)
    chroma = np.hypot(lab[..., 1], lab[..., 2])
    mse = ((pred.astype(np.float64) - scenes.colour) ** 2).mean(axis=(1, 2, 3))
    background = ~scenes.objects
    return {
        "reward": float(per_image.mean()),
        "m3": float(colorization.colorfulness_batch(pred).mean()),
        "hue_entropy_image": float(normalised_entropy(hist).mean()),
        "hue_entropy_set": float(normalised_entropy(hist.sum(0))),
        "ab_error": float(np.hypot(*(lab[..., 1:] - truth[..., 1:]).transpose(3, 0, 1, 2)).mean()),
        "psnr": float((10 * np.log10(255.0**2 / np.maximum(mse, 1e-10))).mean()),
        "background_chroma": float(chroma[background].mean()) if background.any() else 0.0,
        "object_chroma": float(chroma[scenes.objects].mean()) if scenes.objects.any() else 0.0,
    }, per_image


class ColorizationTask(TaskBase):
    """Palette tokens per cell over the input's lightness; reward: ``colorfulness_reward`` (vividness)."""

    name = "colorization"
    description = "colorization of generated gray scenes with ambiguous colours; colorfulness reward"
    headline = "reward"
    metrics = (
        "reward",
        "m3",
        "hue_entropy_image",
        "hue_entropy_set",
        "ab_error",
        "psnr",
        "background_chroma",
        "object_chroma",
    )
    reward_name = "colorfulness reward"
    # Weight of the fidelity anchor in tuning (see ``auxiliary_loss``); 0: the reward alone.
    anchor_weight = 0.5
    presets = {
        # Sized for a shared 2-core machine (see the README for what it measured).
        "default": dict(
            n_train=2000,
            n_heldout=128,
            image_size=32,
            patch_size=4,
            cell_size=4,
            max_objects=4,
            dim=64,
            heads=4,
            encoder_layers=2,
            decoder_layers=2,
            pretrain_steps=1200,
            tune_steps=100,
            tune_batch=8,
            samples=4,
            temperature=1.0,
            tune_lr=6e-5,
            eval_every=20,
            eval_images=64,
            checkpoint_every=20,
        ),
        "smoke": dict(cell_size=8, max_objects=3),
    }

    @classmethod
    def check_config(cls, cfg) -> None:
        check_cell_grid(cfg)

    def __init__(self, cfg, out_dir: str | None = None):
        self.cfg = cfg
        train, self.heldout = cd.make_splits(
            cfg.n_train, cfg.n_heldout, cfg.seed, cfg.image_size, cfg.max_objects
        )
        self.codec = PaletteGridCodec(cfg.image_size, cfg.cell_size)
        self.train = replace(train, tokens=self.codec.encode(train.colour))
        self.vocab_size = self.codec.vocab_size
        self.grammar = GridGrammar(self.codec.length, self.vocab_size)
        self.grid_positions = self.codec.grid

    def batch(self, rng: np.random.Generator, size: int) -> ColourScenes:
        return self.train.subset(rng.integers(0, len(self.train), size))

    def mle_targets(self, scenes: ColourScenes, rng: np.random.Generator):
        tokens = torch.from_numpy(scenes.tokens)
        return tokens, torch.ones_like(tokens, dtype=torch.bool)

    def reward(self, tokens, probs, scenes: ColourScenes, samples: int):
        """``colorfulness_reward_batch`` of the decoded samples (one call for all B * samples images);
        the info is the ground-truth tokens of each sample's image (for the fidelity anchor)."""
        pred = self.codec.decode(tokens.cpu().numpy(), np.repeat(scenes.images, samples, axis=0))
        truth = torch.from_numpy(np.repeat(scenes.tokens, samples, axis=0)).to(tokens.device)
        return colorization.colorfulness_reward_batch(pred), truth

    def train_head(self, tokens: torch.Tensor):
        if not self.anchor_weight:
            return None
        return lambda model, logits, hidden: logits  # the anchor reads the REINFORCE pass's own logits

    def auxiliary_loss(self, tokens: torch.Tensor, logits, truth) -> torch.Tensor | float:
        """The fidelity anchor: ``anchor_weight`` x the cross-entropy of the ground-truth palette tokens.

        Without it the colorfulness reward alone is maximised by painting everything, muted
        backgrounds included, in one vivid colour (measured: see the README); the anchor keeps
        the colours the gray input does determine (backgrounds) and leaves the reward to choose
        among the plausible ones (objects).
        """
        if logits is None:
            return 0.0
        logp = self.grammar.log_probs(logits)
        return -self.anchor_weight * logp.gather(-1, truth.unsqueeze(-1)).mean()

    def predict(self, model, images: np.ndarray) -> np.ndarray:
        """Greedy colour images (B, H, W, 3) uint8."""
        out, start = [], 0
        for tokens, _ in sequence.greedy_batches(model, self.grammar, images):
            stop = start + len(tokens)
            out.append(self.codec.decode(tokens.cpu().numpy(), images[start:stop]))
            start = stop
        return np.concatenate(out)

    def evaluate(self, model, scenes: ColourScenes):
        return colour_metrics(self.predict(model, scenes.images), scenes)

    def ceiling(self, scenes: ColourScenes) -> dict[str, float]:
        """The metrics of the ground truth encoded and decoded: what this representation can reach."""
        return colour_metrics(self.codec.decode(self.codec.encode(scenes.colour), scenes.images), scenes)[0]

    def ablations(self, evaluate, models: dict) -> dict[str, float]:
        truth = colour_metrics(self.heldout.colour, self.heldout)[0]
        ceiling = self.ceiling(self.heldout)
        return {
            **{
                f"ground_truth_{k}": truth[k]
                for k in ("reward", "m3", "hue_entropy_set", "background_chroma")
            },
            **{f"ceiling_{k}": v for k, v in ceiling.items()},
        }

    def picture(self, models: dict, scenes: ColourScenes, path: str, n: int = 10) -> None:
        """Rows of held-out images: gray input | MLE | tuned | ground truth."""
        from reference_training import plots

        images = scenes.images[:n]
        columns = [
            ("gray input", images),
            ("MLE", self.predict(models["MLE"], images)),
            ("tuned", self.predict(models["tuned"], images)),
            ("ground truth", scenes.colour[:n]),
        ]

        def draw(ax, i):
            row, col = divmod(i, len(columns))
            ax.imshow(columns[col][1][row], interpolation="nearest")

        plots.grid(
            len(images) * len(columns),
            draw,
            path,
            cols=len(columns),
            size=1.6,
            col_titles=[title for title, _ in columns],
        )
