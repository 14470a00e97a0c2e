"""The recipe: token grammars, MLE step, sampling, REINFORCE steps, greedy evaluation.

Everything here uses the public APIs of ``rewards`` and ``rewards.adapters`` only.
The sequence machinery (grammar-masked log-probs, KV-cache sampling, the
policy-gradient loss) serves both tasks; detection adds the box reward and
the IoU supervision of the confidence tokens.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from rewards.adapters import torch as rt
from rewards.adapters.box_tokens import PAD, TOKENS_PER_BOX, BoxTokenizer
from reference_training.data import Scenes
from reference_training.model import Seq2Seq, unwrap
from rewards import detection


# Per box, three numbers for each of its first five tokens (see Grammar.token_certainty).
CERTAINTY_FEATURES = 3 * (TOKENS_PER_BOX - 1)


class SequenceGrammar:
    """Which tokens each output position may hold (``allowed``, (L, V)) and where a sequence ends.

    Applied to the logits in training and decoding alike, so every sampled
    sequence is well formed and the model spends no capacity on syntax.
    The base grammar (captions) allows any token but BOS, and PAD ends.
    """

    def __init__(self, length: int, vocab_size: int):
        self.length = length
        self.allowed = torch.ones(length, vocab_size, dtype=torch.bool)
        self.allowed[:, vocab_size - 1] = False  # BOS is input only
        self.is_confidence = torch.zeros(length, dtype=torch.bool)

    def to(self, device: torch.device | str) -> "SequenceGrammar":
        """Keeps the grammar's masks on the device of the logits they apply to."""
        self.allowed, self.is_confidence = self.allowed.to(device), self.is_confidence.to(device)
        return self

    @property
    def scores_boxes(self) -> bool:
        return bool(self.is_confidence.any())

    def is_end(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return tokens == PAD

    def scores_continuation(self, pos: int) -> bool:
        return False

    def log_probs(self, logits: torch.Tensor, start: int = 0, temperature: float = 1.0) -> torch.Tensor:
        allowed = self.allowed[start : start + logits.shape[-2]]
        return F.log_softmax(logits.masked_fill(~allowed, float("-inf")) / temperature, dim=-1)

    def end_positions(self, tokens: torch.Tensor) -> torch.Tensor:
        """Index of each sequence's end token (the last position if it never ends)."""
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        ends = self.is_end(tokens, positions[None])
        last = torch.full((tokens.shape[0],), tokens.shape[1] - 1, device=tokens.device)
        return torch.where(ends.any(1), ends.float().argmax(1), last)

    def mask(self, tokens: torch.Tensor) -> torch.Tensor:
        """Positions up to and including the end token."""
        return torch.arange(tokens.shape[1], device=tokens.device)[None] <= self.end_positions(tokens)[:, None]


class Grammar(SequenceGrammar):
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
        self.is_confidence = (torch.arange(self.length) % TOKENS_PER_BOX == 5) & (torch.arange(self.length) < self.length - 1)

    def is_end(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return (tokens == PAD) & (positions % TOKENS_PER_BOX == 0)

    def scores_continuation(self, pos: int) -> bool:
        return pos % TOKENS_PER_BOX == 0 and pos < self.length - 1

    def token_certainty(self, logp: torch.Tensor, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """How sure the decoder was of each token: untempered log-probs (..., V) -> (..., 3).

        log p(token); for a coordinate, the spread of its distribution around the
        token (mean absolute distance, in units of 4 bins); at a box start, log
        p(not ending). A box whose coordinates the decoder hesitated over tends
        to overlap its object poorly, which is what the confidence must rank.
        """
        slot = positions % TOKENS_PER_BOX
        chosen = logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1).clamp(min=-20.0)
        coords = logp[..., self.codec.coord_offset : self.codec.class_offset].exp()
        distance = (torch.arange(self.codec.n_bins, device=logp.device) - (tokens - self.codec.coord_offset).unsqueeze(-1)).abs()
        spread = (coords * distance).sum(-1) / 4
        not_end = torch.log1p(-logp[..., PAD].exp().clamp(max=1 - 1e-6))
        zero = torch.zeros_like(chosen)
        return torch.stack([chosen, torch.where(slot < 4, spread, zero), torch.where(slot == 0, not_end, zero)], -1)

    @staticmethod
    def head_inputs(states: torch.Tensor, certainty: torch.Tensor) -> torch.Tensor:
        """The confidence head's input: the decoder state (..., D) at a box's confidence slot
        followed by the certainty (..., TOKENS_PER_BOX - 1, 3) of the box's other tokens."""
        return torch.cat([states, certainty.flatten(-2)], -1)

    def confidence_inputs(self, logits: torch.Tensor, hidden: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Confidence-head inputs of every box slot of teacher-forced sequences, detached:
        (N, K, D + CERTAINTY_FEATURES) from logits (N, L, V), hidden states (N, L, D), tokens (N, L)."""
        n, k = tokens.shape[0], (self.length - 1) // TOKENS_PER_BOX
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


def model_device(model) -> torch.device:
    return next(unwrap(model).parameters()).device


def teacher_inputs(tokens: torch.Tensor, bos: int) -> torch.Tensor:
    return torch.cat([torch.full_like(tokens[:, :1], bos), tokens[:, :-1]], dim=1)


def mle_loss(model: Seq2Seq, grammar: SequenceGrammar, images: np.ndarray, targets: torch.Tensor,
             mask: torch.Tensor) -> torch.Tensor:
    """Teacher-forced cross-entropy over the target tokens up to and including the end token."""
    device = model_device(model)
    targets, mask = targets.to(device), mask.to(device)
    logits = model(torch.from_numpy(images).to(device), teacher_inputs(targets, unwrap(model).bos))
    logp = grammar.log_probs(logits).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return -torch.where(mask, logp, torch.zeros_like(logp)).sum() / mask.sum()


@torch.no_grad()
def generate(model: Seq2Seq, grammar: Grammar, images: torch.Tensor, samples: int = 1,
             temperature: float = 1.0, greedy: bool = False, generator: torch.Generator | None = None):
    """Decodes (B * samples, L) tokens with a KV cache; samples of an image are adjacent.

    Returns tokens and, per position, the probability of the chosen token,
    except where ``grammar.scores_continuation(pos)`` (box starts): there it is
    the probability of not ending. Confidence slots always hold the
    high-confidence token; their probability is the box's confidence, read by the
    confidence head from the decoder state and the certainty of the box's tokens.
    """
    model, device = unwrap(model), model_device(model)
    memory = model.encode(images.to(device))
    n = images.shape[0] * samples
    caches = model.new_caches(n)
    token = torch.full((n, 1), model.bos, dtype=torch.long, device=device)
    done = torch.zeros(n, dtype=torch.bool, device=device)
    tokens = torch.zeros(n, grammar.length, dtype=torch.long, device=device)
    probs = torch.zeros(n, grammar.length, device=device)
    certainty = torch.zeros(n, grammar.length, 3, device=device) if grammar.scores_boxes else None
    confidence_slots = grammar.is_confidence.tolist()
    for pos in range(grammar.length):
        at = torch.tensor(pos, device=device)
        logits, hidden = model.decode(token, memory, caches, start=pos, hidden=True)
        logp = grammar.log_probs(logits, start=pos, temperature=temperature)[:, -1]
        if confidence_slots[pos]:
            # Read, not sampled: the confidence is a score from the confidence head. Writing the
            # token MLE always saw keeps the rest of the sequence in distribution whatever it says.
            choice = torch.full((n,), grammar.codec.high_confidence, dtype=torch.long, device=device)
            inputs = grammar.head_inputs(hidden[:, -1], certainty[:, pos - TOKENS_PER_BOX + 1 : pos])
            logp = torch.full_like(logp, float("-inf"))
            logp[:, grammar.codec.high_confidence] = F.logsigmoid(model.confidence(inputs).squeeze(-1))
        elif greedy:
            choice = logp.argmax(-1)
        else:
            choice = torch.multinomial(logp.exp(), 1, generator=generator).squeeze(-1)
        choice = torch.where(done, torch.full_like(choice, PAD), choice)
        if certainty is not None and not confidence_slots[pos]:
            untempered = logp if temperature == 1.0 else grammar.log_probs(logits, start=pos)[:, -1]
            certainty[:, pos] = grammar.token_certainty(untempered, choice, at)
        tokens[:, pos] = choice
        probs[:, pos] = logp.gather(-1, choice[:, None]).squeeze(-1).exp()
        if grammar.scores_continuation(pos):
            probs[:, pos] = 1.0 - logp[:, PAD].exp()
        done |= grammar.is_end(choice, at)
        token = choice[:, None]
        if done.all():
            break
    return tokens, probs


def policy_gradient_loss(model, grammar: SequenceGrammar, images: torch.Tensor, tokens: torch.Tensor,
                         rewards: np.ndarray, samples: int):
    """REINFORCE with the leave-one-out baseline over each image's N samples; also returns the
    confidence logits at the grammar's confidence slots (None if it has none).

    Tokens after a sequence's end and confidence tokens (trained by their own
    supervision) are left out of log p(y).
    """
    device = model_device(model)
    images, tokens = images.to(device), tokens.to(device)
    inputs = (lambda logits, hidden: grammar.confidence_inputs(logits, hidden, tokens)) if grammar.scores_boxes else None
    out = model(images, teacher_inputs(tokens, unwrap(model).bos), confidence_inputs=inputs)
    logits, confidence = out if grammar.scores_boxes else (out, None)
    mask = grammar.mask(tokens) & ~grammar.is_confidence[None]
    seq_logp = rt.sequence_logprob(grammar.log_probs(logits), tokens, mask)
    rewards = torch.from_numpy(np.asarray(rewards, np.float32)).to(device).view(-1, samples)
    return rt.reinforce_loss(seq_logp.view(-1, samples), rewards), confidence


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


def sample_rewards(preds: dict, gts: dict, kind: str, class_weights: np.ndarray, duplicate_weight: float) -> np.ndarray:
    """One batch call of the task reward for all B * N sampled sequences."""
    if kind == "map":
        return detection.map_reward_padded(preds, gts, box_format="yxyx")
    return detection.recall_reward_padded(
        preds, gts, box_format="yxyx", class_weights=class_weights, duplicate_weight=duplicate_weight
    )


def reinforce_step(model, grammar, scenes: Scenes, *, samples: int, temperature: float, reward: str,
                   class_weights: np.ndarray, duplicate_weight: float, confidence_weight: float,
                   generator: torch.Generator):
    """Samples N sequences per image, scores them in one reward call, returns (loss, mean reward).

    All N samples of an image stay in this process, so the leave-one-out
    baseline needs no communication under data parallelism.
    """
    images = torch.from_numpy(scenes.images)
    model.eval()
    tokens, probs = generate(model, grammar, images, samples, temperature, generator=generator)
    model.train()
    preds = decode_predictions(tokens, probs, grammar.codec)
    gts = ground_truth(scenes, samples)
    rewards = sample_rewards(preds, gts, reward, class_weights, duplicate_weight)
    match = detection.match_iou_padded(preds, gts, box_format="yxyx", iou_threshold=0.5)

    loss, confidence = policy_gradient_loss(model, grammar, images, tokens, rewards, samples)
    k = preds["valid"].shape[1]
    in_sequence = torch.arange(k, device=tokens.device)[None] < (grammar.end_positions(tokens) // TOKENS_PER_BOX)[:, None]
    # The IoU supervision trains the confidence head on detached decoder states: pushing its
    # gradient through the shared decoder was measured to degrade the boxes of greedy
    # decoding within a few dozen steps. Logits over (pad, low, high); pad is ruled out.
    conf_logits = torch.stack([torch.full_like(confidence, -30.0), torch.zeros_like(confidence), confidence], -1)
    iou = torch.from_numpy(match).float().to(tokens.device)
    per_box = rt.iou_confidence_loss(conf_logits, iou, in_sequence, reduction="none")
    conf_loss = (per_box * in_sequence).sum() / in_sequence.sum().clamp(min=1)
    return loss + confidence_weight * conf_loss, float(rewards.mean())


def predict(model, grammar, images: np.ndarray, batch_size: int = 128) -> dict:
    """Greedy decoding of many images into padded predictions (boxes yxyx in [0, 1])."""
    model.eval()
    parts = []
    for i in range(0, len(images), batch_size):
        tokens, probs = generate(model, grammar, torch.from_numpy(images[i : i + batch_size]), greedy=True)
        parts.append(decode_predictions(tokens, probs, grammar.codec))
    model.train()
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def evaluate(model, grammar, scenes: Scenes, class_weights: np.ndarray, duplicate_weight: float) -> tuple[dict, np.ndarray]:
    """Held-out COCO metrics, mean recall reward and boxes per image; also per-image rewards."""
    preds = predict(model, grammar, scenes.images)
    size = scenes.images.shape[1]
    as_list = lambda boxes, valid: [b[v] * size for b, v in zip(boxes, valid)]  # noqa: E731
    pred_boxes, gt_boxes = as_list(preds["boxes"], preds["valid"]), as_list(scenes.boxes, scenes.valid)
    stats = detection.coco_eval(
        [{"boxes": b, "scores": s[v], "labels": lab[v]} for b, s, lab, v in zip(pred_boxes, preds["scores"], preds["labels"], preds["valid"])],
        [{"boxes": b, "labels": lab[v]} for b, lab, v in zip(gt_boxes, scenes.labels, scenes.valid)],
        box_format="yxyx",
    )
    per_image = sample_rewards(preds, ground_truth(scenes), "recall", class_weights, duplicate_weight)
    metrics = {
        **{k: float(v) for k, v in stats.items()},
        "recall_reward": float(per_image.mean()),
        "boxes_per_image": float(preds["valid"].sum(1).mean()),
    }
    return metrics, per_image
