"""Detection: boxes as tokens, tuned with the paper's recall reward (or per-example mAP).

A box is six tokens: y0, x0, y1, x1 (``n_bins`` coordinate bins), class,
confidence. The confidence slot is not sampled: the task adds a confidence
head to the model that reads the decoder state and how certain the decoder
was of the box's tokens, trained in tuning by the paper's IoU supervision.
Box score = p(not ending) x p(class) x confidence.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from reference_training import data as shapes
from reference_training import sequence
from reference_training.data import CLASS_NAMES, Scenes, class_counts
from reference_training.model import Seq2Seq, unwrap
from reference_training.sequence import PAD, SequenceGrammar
from reference_training.tasks import TaskBase
from rewards import detection
from rewards.adapters import torch as rt
from rewards.adapters.box_tokens import TOKENS_PER_BOX, BoxTokenizer

# Per box, three numbers for each of its first five tokens (see BoxGrammar.token_certainty).
CERTAINTY_FEATURES = 3 * (TOKENS_PER_BOX - 1)


class BoxGrammar(SequenceGrammar):
    """Box sequences: coordinates, class, confidence per box; PAD at a box start ends."""

    def __init__(self, codec: BoxTokenizer, max_objects: int, vocab_size: int):
        self.codec = codec
        self.length = TOKENS_PER_BOX * max_objects + 1
        allowed = torch.zeros(self.length, vocab_size, dtype=torch.bool)
        coords = slice(codec.coord_offset, codec.class_offset)
        for pos in range(self.length):
            slot = pos % TOKENS_PER_BOX
            if pos == self.length - 1:
                allowed[pos, PAD] = True
            elif slot < 4:
                allowed[pos, coords] = True
                allowed[pos, PAD] = slot == 0
            elif slot == 4:
                allowed[pos, codec.class_offset : codec.vocab_size] = True
            else:
                allowed[pos, 1 : 1 + codec.n_confidence] = True
        self.allowed = allowed
        positions = torch.arange(self.length)
        self.is_read = (positions % TOKENS_PER_BOX == 5) & (positions < self.length - 1)  # confidence slots
        self._read_slots = self.is_read.tolist()

    def is_end(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return (tokens == PAD) & (positions % TOKENS_PER_BOX == 0)

    def scores_continuation(self, pos: int) -> bool:
        return pos % TOKENS_PER_BOX == 0 and pos < self.length - 1

    def token_certainty(
        self, logp: torch.Tensor, tokens: torch.Tensor, positions: torch.Tensor
    ) -> torch.Tensor:
        """How sure the decoder was of each token: untempered log-probs (..., V) -> (..., 3).

        log p(token); for a coordinate, the spread of its distribution around the
        token (mean absolute distance, in units of 4 bins); at a box start, log
        p(not ending). A box whose coordinates the decoder hesitated over tends
        to overlap its object poorly, which is what the confidence must rank.
        """
        slot = positions % TOKENS_PER_BOX
        chosen = logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1).clamp(min=-20.0)
        coords = logp[..., self.codec.coord_offset : self.codec.class_offset].exp()
        distance = (
            torch.arange(self.codec.n_bins, device=logp.device)
            - (tokens - self.codec.coord_offset).unsqueeze(-1)
        ).abs()
        spread = (coords * distance).sum(-1) / 4
        not_end = torch.log1p(-logp[..., PAD].exp().clamp(max=1 - 1e-6))
        zero = torch.zeros_like(chosen)
        return torch.stack(
            [chosen, torch.where(slot < 4, spread, zero), torch.where(slot == 0, not_end, zero)], -1
        )

    @staticmethod
    def head_inputs(states: torch.Tensor, certainty: torch.Tensor) -> torch.Tensor:
        """The confidence head's input: the decoder state (..., D) at a box's confidence slot
        followed by the certainty (..., TOKENS_PER_BOX - 1, 3) of the box's other tokens."""
        return torch.cat([states, certainty.flatten(-2)], -1)

    def confidence_inputs(
        self, logits: torch.Tensor, hidden: torch.Tensor, tokens: torch.Tensor
    ) -> torch.Tensor:
        """Confidence-head inputs of every whole box of teacher-forced sequences, detached:
        (N, K, D + CERTAINTY_FEATURES) from logits (N, T, V), hidden states (N, T, D), tokens (N, T);
        K = T // TOKENS_PER_BOX (sequences may be trimmed after their ends: ``sequence.trim``)."""
        n, k = tokens.shape[0], min(tokens.shape[1], self.length - 1) // TOKENS_PER_BOX
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        certainty = self.token_certainty(self.log_probs(logits.detach()), tokens, positions)
        per_box = certainty[:, : k * TOKENS_PER_BOX].reshape(n, k, TOKENS_PER_BOX, 3)[:, :, :-1]
        states = hidden[:, TOKENS_PER_BOX - 1 : k * TOKENS_PER_BOX : TOKENS_PER_BOX].detach()
        return self.head_inputs(states, per_box)

    def targets(self, scenes: Scenes) -> tuple[torch.Tensor, torch.Tensor]:
        """Target tokens (B, L) with the end PAD, and the loss mask (up to and including the end)."""
        tokens = self.codec.encode(scenes.boxes, scenes.labels, scenes.valid)
        tokens = np.concatenate([tokens, np.zeros((len(tokens), 1), np.int64)], axis=1)
        n_tokens = TOKENS_PER_BOX * scenes.valid.sum(1) + 1
        mask = np.arange(self.length)[None] < n_tokens[:, None]
        return torch.from_numpy(tokens), torch.from_numpy(mask)

    # Decoding: the certainty of each box's tokens feeds the confidence head at its confidence slot.
    def decoding_state(self, n: int, device: torch.device) -> torch.Tensor:
        return torch.zeros(n, self.length, 3, device=device)

    def read_token(self, model: Seq2Seq, pos: int, hidden: torch.Tensor, logp: torch.Tensor, certainty):
        if not self._read_slots[pos]:
            return None
        # Read, not sampled: the confidence is a score from the confidence head. Writing the
        # token MLE always saw keeps the rest of the sequence in distribution whatever it says.
        n = hidden.shape[0]
        choice = torch.full((n,), self.codec.high_confidence, dtype=torch.long, device=hidden.device)
        inputs = self.head_inputs(hidden, certainty[:, pos - TOKENS_PER_BOX + 1 : pos])
        logp = torch.full_like(logp, float("-inf"))
        logp[:, self.codec.high_confidence] = F.logsigmoid(model.confidence(inputs).squeeze(-1))
        return choice, logp

    def observe(self, certainty, pos, logits, logp, choice, temperature) -> None:
        untempered = logp if temperature == 1.0 else self.log_probs(logits, start=pos)[:, -1]
        certainty[:, pos] = self.token_certainty(untempered, choice, torch.tensor(pos, device=logp.device))


def confidence_head(dim: int) -> nn.Module:
    """Reads the decoder's state at a box's confidence slot (and how certain the decoder was of
    the box's tokens): the logit of "high" vs "low" confidence. Trained (on detached inputs)
    by the IoU supervision of reward tuning; starts at p(high) = 0.5 for every box."""
    head = nn.Sequential(nn.Linear(dim + CERTAINTY_FEATURES, dim), nn.GELU(), nn.Linear(dim, 1))
    nn.init.zeros_(head[2].weight)
    nn.init.zeros_(head[2].bias)
    return head


def box_scores(probs: torch.Tensor) -> np.ndarray:
    """Score of each box: p(not ending here) * p(class token) * p(high confidence).

    All three come from the decoding pass: a box the model was unsure to emit
    at all, unsure of the class of, or expects to overlap its object poorly
    ranks low.
    """
    k = probs.shape[1] // TOKENS_PER_BOX
    p = probs[:, : k * TOKENS_PER_BOX].view(-1, k, TOKENS_PER_BOX)
    return (p[..., 0] * p[..., 4] * p[..., 5]).cpu().numpy()


def decode_predictions(tokens: torch.Tensor, probs: torch.Tensor, codec: BoxTokenizer) -> dict:
    decoded = codec.decode(tokens.cpu().numpy())
    decoded["scores"] = np.where(decoded["valid"], box_scores(probs), 0.0)
    return decoded


def ground_truth(scenes: Scenes, repeat: int = 1) -> dict:
    rep = lambda a: np.repeat(a, repeat, axis=0)  # noqa: E731
    return {"boxes": rep(scenes.boxes), "labels": rep(scenes.labels), "valid": rep(scenes.valid)}


def with_confidence_of(model: Seq2Seq, donor: Seq2Seq) -> Seq2Seq:
    """A copy of ``model`` whose confidence head is ``donor``'s (ablations of the tuning gain)."""
    out = copy.deepcopy(unwrap(model))
    out.confidence.load_state_dict(unwrap(donor).confidence.state_dict())
    return out


class DetectionTask(TaskBase):
    """Boxes as tokens; reward: the paper's recall reward (or per-example mAP) plus IoU supervision."""

    name = "detection"
    description = (
        "boxes of generated shapes; recall reward (or --reward map) + IoU supervision of box confidence"
    )
    headline = "map"
    metrics = ("map", "map_50", "map_75", "mar_100", "recall_reward", "boxes_per_image")
    headline_scale = (100.0, " points")
    reward_name = "recall reward"
    # 48-px scenes of up to 6 shapes: 0.64x the compute of 64 px / 8 shapes per step. Boxes in
    # raster order: MLE learns in 2000 steps what random order does not reach in 2400. Tuning
    # peaks after 80-100 steps (later ones trade box quality away); 80 keeps the demo inside 5
    # minutes when the cores run 8% slower than usual. README: "Time, before and after".
    presets = {
        "default": dict(
            image_size=48,
            max_objects=6,
            lr=2e-3,
            pretrain_steps=2000,
            object_order="raster",
            tune_steps=80,
            tune_lr=2e-5,
            reward="map",
        )
    }

    def __init__(self, cfg, out_dir: str | None = None):
        self.cfg = cfg
        self.train, self.heldout = shapes.make_splits(
            cfg.n_train, cfg.n_heldout, cfg.seed, cfg.image_size, cfg.max_objects
        )
        self.codec = BoxTokenizer(n_classes=len(CLASS_NAMES), n_bins=cfg.n_bins)
        self.vocab_size = self.codec.vocab_size + 1  # + BOS
        self.grammar = BoxGrammar(self.codec, cfg.max_objects, self.vocab_size)
        self.class_weights = detection.class_weights_from_counts(class_counts(self.train))
        self.coord_tokens = (self.codec.coord_offset, self.codec.n_bins)

    def model_extras(self, dim: int) -> dict[str, nn.Module]:
        return {"confidence": confidence_head(dim)}

    def tune_param_groups(self, model: nn.Module, lr: float) -> list[dict]:
        # The confidence head starts untrained (MLE has no confidence signal) and only reads
        # detached features, so it can learn much faster than the policy may move.
        head = list(model.confidence.parameters())
        rest = [p for n, p in model.named_parameters() if not n.startswith("confidence.")]
        return [{"params": rest, "lr": lr}, {"params": head, "lr": self.cfg.confidence_lr}]

    def batch(self, rng: np.random.Generator, size: int) -> Scenes:
        return shapes.sample_batch(self.train, rng, size)

    def mle_targets(self, scenes: Scenes, rng: np.random.Generator):
        return self.grammar.targets(shapes.order_objects(scenes, self.cfg.object_order))

    def train_head(self, tokens: torch.Tensor):
        grammar, k = self.grammar, (self.grammar.length - 1) // TOKENS_PER_BOX

        def confidence(model, logits, hidden):
            """Confidence logits (N, K) of every box slot; slots trimmed away (after every
            sequence's end, so outside the IoU loss's mask) are 0."""
            out = model.confidence(grammar.confidence_inputs(logits, hidden, tokens)).squeeze(-1)
            return F.pad(out, (0, k - out.shape[1]))

        return confidence

    def _rewards(self, preds: dict, gts: dict, kind: str) -> np.ndarray:
        if kind == "map":
            return detection.map_reward_padded(preds, gts, box_format="yxyx")
        return detection.recall_reward_padded(
            preds,
            gts,
            box_format="yxyx",
            class_weights=self.class_weights,
            duplicate_weight=self.cfg.duplicate_weight,
        )

    def reward(self, tokens, probs, scenes: Scenes, samples: int):
        preds = decode_predictions(tokens, probs, self.codec)
        gts = ground_truth(scenes, samples)
        rewards = self._rewards(preds, gts, self.cfg.reward)
        match = detection.match_iou_padded(preds, gts, box_format="yxyx", iou_threshold=0.5)
        return rewards, (preds, match)

    def auxiliary_loss(self, tokens: torch.Tensor, confidence: torch.Tensor, info: Any) -> torch.Tensor:
        """The paper's IoU supervision of the confidence head (on detached decoder states: pushing its
        gradient through the shared decoder was measured to degrade greedy boxes within a few dozen steps)."""
        preds, match = info
        k = preds["valid"].shape[1]
        in_sequence = (
            torch.arange(k, device=tokens.device)[None]
            < (self.grammar.end_positions(tokens) // TOKENS_PER_BOX)[:, None]
        )
        # Logits over (pad, low, high); pad is ruled out.
        conf_logits = torch.stack(
            [torch.full_like(confidence, -30.0), torch.zeros_like(confidence), confidence], -1
        )
        iou = torch.from_numpy(match).float().to(tokens.device)
        per_box = rt.iou_confidence_loss(conf_logits, iou, in_sequence, reduction="none")
        conf_loss = (per_box * in_sequence).sum() / in_sequence.sum().clamp(min=1)
        return self.cfg.confidence_weight * conf_loss

    def predict(self, model, images: np.ndarray) -> dict:
        """Greedy decoding of many images into padded predictions (boxes yxyx in [0, 1])."""
        parts = [
            decode_predictions(t, p, self.codec)
            for t, p in sequence.greedy_batches(model, self.grammar, images)
        ]
        return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}

    def evaluate(self, model, scenes: Scenes):
        """Held-out COCO metrics, mean recall reward and boxes per image; also per-image rewards."""
        preds = self.predict(model, scenes.images)
        size = scenes.images.shape[1]
        as_list = lambda boxes, valid: [b[v] * size for b, v in zip(boxes, valid)]  # noqa: E731
        pred_boxes, gt_boxes = as_list(preds["boxes"], preds["valid"]), as_list(scenes.boxes, scenes.valid)
        stats = detection.coco_eval(
            [
                {"boxes": b, "scores": s[v], "labels": lab[v]}
                for b, s, lab, v in zip(pred_boxes, preds["scores"], preds["labels"], preds["valid"])
            ],
            [{"boxes": b, "labels": lab[v]} for b, lab, v in zip(gt_boxes, scenes.labels, scenes.valid)],
            box_format="yxyx",
        )
        per_image = self._rewards(preds, ground_truth(scenes), "recall")
        metrics = {
            **{k: float(v) for k, v in stats.items()},
            "recall_reward": float(per_image.mean()),
            "boxes_per_image": float(preds["valid"].sum(1).mean()),
        }
        return metrics, per_image

    def ablations(self, evaluate, models: dict) -> dict[str, float]:
        """Where the gain comes from: the MLE boxes ranked by the tuned confidence head, and the
        tuned boxes ranked by the untrained (MLE) head."""
        mle, tuned = models["MLE"], models["tuned"]
        return {
            f"mle_boxes_tuned_confidence_{self.headline}": evaluate(with_confidence_of(mle, tuned))[
                self.headline
            ],
            f"tuned_boxes_untrained_confidence_{self.headline}": evaluate(with_confidence_of(tuned, mle))[
                self.headline
            ],
        }

    def picture(self, models: dict, scenes: Scenes, path: str, n: int = 16) -> None:
        """Held-out images with the tuned model's boxes (class, score)."""
        from reference_training import plots

        images = scenes.images[:n]
        preds = self.predict(models["tuned"], images)
        size = images.shape[1]

        def draw(ax, i):
            ax.imshow(images[i])
            for (y0, x0, y1, x1), label, score, ok in zip(
                preds["boxes"][i], preds["labels"][i], preds["scores"][i], preds["valid"][i]
            ):
                if ok:
                    ax.add_patch(
                        plots.plt.Rectangle(
                            (x0 * size - 0.5, y0 * size - 0.5),
                            (x1 - x0) * size,
                            (y1 - y0) * size,
                            fill=False,
                            color="white",
                            lw=1,
                        )
                    )
                    ax.text(
                        x0 * size,
                        y0 * size,
                        f"{CLASS_NAMES[label][:4]} {score:.2f}",
                        color="yellow",
                        fontsize=6,
                        va="bottom",
                    )

        plots.grid(len(images), draw, path)
