"""Generic sequence machinery every task shares: grammar base, KV-cache sampling, MLE and policy-gradient losses.

Nothing here knows a task. A task's grammar (a ``SequenceGrammar`` subclass)
says which tokens each position may hold and where a sequence ends, and may
take over a position while decoding (``read_token``, e.g. detection's
confidence slots, read from its confidence head instead of sampled).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from reference_training.model import Seq2Seq, unwrap
from rewards.adapters import torch as rt

PAD = 0  # the end token of every grammar that has one (also BoxTokenizer's PAD and WordCodec's end)


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
        # Positions whose token is read from a model extra, not sampled: left out of log p(y).
        self.is_read = torch.zeros(length, dtype=torch.bool)

    def to(self, device: torch.device | str) -> SequenceGrammar:
        """Keeps the grammar's masks on the device of the logits they apply to."""
        for name, value in vars(self).items():
            if isinstance(value, torch.Tensor):
                setattr(self, name, value.to(device))
        return self

    def is_end(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return tokens == PAD

    def scores_continuation(self, pos: int) -> bool:
        """Whether ``probs`` at ``pos`` holds p(not ending) instead of p(token) (see ``generate``)."""
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
        return (
            torch.arange(tokens.shape[1], device=tokens.device)[None] <= self.end_positions(tokens)[:, None]
        )

    # Decoding hooks: the base grammar samples every position and keeps no state.
    def decoding_state(self, n: int, device: torch.device) -> Any:
        return None

    def read_token(self, model: Seq2Seq, pos: int, hidden: torch.Tensor, logp: torch.Tensor, state: Any):
        """None (sample the position), or (chosen tokens (n,), log-probs (n, V) to report for them)."""
        return None

    def observe(
        self,
        state: Any,
        pos: int,
        logits: torch.Tensor,
        logp: torch.Tensor,
        choice: torch.Tensor,
        temperature: float,
    ) -> None:
        """Called after each sampled (not read) position with its logits (n, 1, V) and tempered log-probs (n, V)."""


def model_device(model) -> torch.device:
    return next(unwrap(model).parameters()).device


def teacher_inputs(tokens: torch.Tensor, bos: int) -> torch.Tensor:
    return torch.cat([torch.full_like(tokens[:, :1], bos), tokens[:, :-1]], dim=1)


def mle_loss(
    model: Seq2Seq, grammar: SequenceGrammar, images: np.ndarray, targets: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Teacher-forced cross-entropy over the target tokens up to and including the end token."""
    device = model_device(model)
    # Positions past every target's end cannot change the loss (the decoder is causal): leave them out.
    used = int(mask.any(0).nonzero().max()) + 1 if mask.any() else 1
    targets, mask = targets[:, :used].to(device), mask[:, :used].to(device)
    logits = model(torch.from_numpy(images).to(device), teacher_inputs(targets, unwrap(model).bos))
    logp = grammar.log_probs(logits).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return -torch.where(mask, logp, torch.zeros_like(logp)).sum() / mask.sum()


@torch.no_grad()
def generate(
    model: Seq2Seq,
    grammar: SequenceGrammar,
    images: torch.Tensor,
    samples: int = 1,
    temperature: float = 1.0,
    greedy: bool = False,
    generator: torch.Generator | None = None,
):
    """Decodes (B * samples, L) tokens with a KV cache; samples of an image are adjacent.

    Returns tokens and, per position, the probability of the chosen token
    (where ``grammar.scores_continuation(pos)``: the probability of not
    ending; where the grammar reads a position: the probability it reports).
    """
    model, device = unwrap(model), model_device(model)
    memory = model.encode(images.to(device))
    n = images.shape[0] * samples
    caches = model.new_caches(n)
    token = torch.full((n, 1), model.bos, dtype=torch.long, device=device)
    done = torch.zeros(n, dtype=torch.bool, device=device)
    tokens = torch.zeros(n, grammar.length, dtype=torch.long, device=device)
    probs = torch.zeros(n, grammar.length, device=device)
    state = grammar.decoding_state(n, device)
    for pos in range(grammar.length):
        at = torch.tensor(pos, device=device)
        logits, hidden = model.decode(token, memory, caches, start=pos, hidden=True)
        logp = grammar.log_probs(logits, start=pos, temperature=temperature)[:, -1]
        read = grammar.read_token(model, pos, hidden[:, -1], logp, state)
        if read is not None:
            choice, logp = read
        elif greedy:
            choice = logp.argmax(-1)
        else:
            choice = torch.multinomial(logp.exp(), 1, generator=generator).squeeze(-1)
        choice = torch.where(done, torch.full_like(choice, PAD), choice)
        if read is None:
            grammar.observe(state, pos, logits, logp, choice, temperature)
        tokens[:, pos] = choice
        probs[:, pos] = logp.gather(-1, choice[:, None]).squeeze(-1).exp()
        if grammar.scores_continuation(pos):
            probs[:, pos] = 1.0 - logp[:, PAD].exp()
        done |= grammar.is_end(choice, at)
        token = choice[:, None]
        if done.all():
            break
    return tokens, probs


def sequence_logprob(grammar: SequenceGrammar, logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log p(y) (N,) of teacher-forced sequences: positions after the end and read positions left out."""
    mask = grammar.mask(tokens) & ~grammar.is_read[None, : tokens.shape[1]]
    return rt.sequence_logprob(grammar.log_probs(logits), tokens, mask)


def trim(grammar: SequenceGrammar, tokens: torch.Tensor) -> torch.Tensor:
    """``tokens`` without the positions after the last sequence's end (padding to every one of them):
    the causal decoder computes the same log-probs for what is kept, at a fraction of the cost."""
    return tokens[:, : int(grammar.end_positions(tokens).max()) + 1]


def policy_gradient_loss(seq_logp: torch.Tensor, rewards: np.ndarray, samples: int) -> torch.Tensor:
    """REINFORCE: -(r - b) log p(y), b = the mean reward of the image's other N - 1 samples (leave-one-out)."""
    rewards = torch.from_numpy(np.asarray(rewards, np.float32)).to(seq_logp.device).view(-1, samples)
    return rt.reinforce_loss(seq_logp.view(-1, samples), rewards)


def greedy_batches(model, grammar: SequenceGrammar, images: np.ndarray, batch_size: int = 128):
    """Greedy decoding of many images in batches: yields (tokens, probs) per batch (model in eval mode)."""
    model.eval()
    try:
        for i in range(0, len(images), batch_size):
            yield generate(model, grammar, torch.from_numpy(images[i : i + batch_size]), greedy=True)
    finally:
        model.train()
