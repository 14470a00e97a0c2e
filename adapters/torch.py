"""PyTorch adapters: the REINFORCE estimator and numpy rewards on tensors.

Example (one REINFORCE step, N = 4 samples for each of B = 2 inputs):
    >>> import torch
    >>> from rewards.adapters import torch as rt
    >>> logits = torch.randn(2, 4, 5, 10, requires_grad=True)       # (B, N, T, V)
    >>> tokens = torch.randint(0, 10, (2, 4, 5))
    >>> mask = torch.ones(2, 4, 5, dtype=torch.bool)
    >>> rewards = torch.tensor([[1.0, 0.0, 0.5, 0.5], [0.2, 0.2, 0.2, 0.8]])
    >>> loss = rt.reinforce_loss(rt.sequence_logprob(logits, tokens, mask), rewards)
    >>> loss.backward()
    >>> rt.loo_baseline(rewards)[0].tolist()
    [0.3333333432674408, 0.6666666865348816, 0.5, 0.5]
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from rewards.adapters._shared import (
    batch_shape,
    call_host,
    check_confidence_args,
    check_reinforce_args,
    check_rewards,
    check_sequence_args,
)

__all__ = ["iou_confidence_loss", "loo_baseline", "reinforce_loss", "sequence_logprob", "wrap_reward"]


def _reduce(x: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return x.mean()
    if reduction == "sum":
        return x.sum()
    return x


def sequence_logprob(logits: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log p(y) = sum over t of mask_t * log softmax(logits_t)[y_t]; shape (...).

    logits (..., T, V), tokens (..., T) int, mask (..., T) bool or float
    (nonzero counts). Masked-out positions are never read, so they may hold
    any token, even one the logits rule out.
    """
    check_sequence_args(logits, tokens, mask)
    logp = F.log_softmax(logits.float(), dim=-1).gather(-1, tokens.long().unsqueeze(-1)).squeeze(-1)
    # where, not multiply: masked positions may hold tokens of probability 0 (log p = -inf).
    return torch.where(mask.bool(), logp, torch.zeros_like(logp)).sum(-1)


def loo_baseline(rewards: torch.Tensor) -> torch.Tensor:
    """Leave-one-out baseline of rewards (B, N): b_i = (sum_j r_j - r_i) / (N - 1)."""
    check_rewards(rewards, min_samples=2)
    rewards = torch.as_tensor(rewards)
    return (rewards.sum(dim=1, keepdim=True) - rewards) / (rewards.shape[1] - 1)


def reinforce_loss(
    seq_logprob: torch.Tensor,
    rewards: torch.Tensor,
    *,
    baseline: str | torch.Tensor = "loo",
    reduction: str = "mean",
) -> torch.Tensor:
    """REINFORCE loss -(r - b) * log p(y) with the advantage (r - b) held constant.

    seq_logprob, rewards: (B, N). baseline: "loo" (leave-one-out over the N
    samples, the default), "mean" (mean of the N, biased), "none", or a
    tensor (B,), (B, 1) or (B, N) such as the greedy decode's reward
    (self-critical training). reduction: "mean" over all B*N samples, "sum",
    or "none" for the (B, N) per-sample losses.
    """
    kind = check_reinforce_args(seq_logprob, rewards, baseline, reduction)
    rewards = torch.as_tensor(rewards, device=seq_logprob.device).detach().to(seq_logprob.dtype)
    if kind == "loo":
        b = loo_baseline(rewards)
    elif kind == "mean":
        b = rewards.mean(dim=1, keepdim=True)
    elif kind == "none":
        b = torch.zeros_like(rewards)
    else:
        b = torch.as_tensor(baseline, dtype=rewards.dtype, device=rewards.device).detach()
        b = b.reshape(b.shape[0], -1)
    advantage = (rewards - b).detach()
    return _reduce(-advantage * seq_logprob, reduction)


def iou_confidence_loss(
    conf_logits: torch.Tensor, match_iou: torch.Tensor, valid: torch.Tensor, *, reduction: str = "mean"
) -> torch.Tensor:
    """The paper's supervision of each box's confidence token towards its IoU.

    Soft cross-entropy of log_softmax(conf_logits) over its last axis against
    the target (pad, low, high) = (1, 0, 0) for padded boxes and
    (0, 1 - IoU, IoU) for sampled ones. conf_logits (..., C >= 3) are the
    logits at the confidence positions (the first three classes are pad,
    low, high); match_iou, valid (...). Returns the mean (or per-box losses).
    """
    check_confidence_args(conf_logits, match_iou, valid)
    logp = F.log_softmax(conf_logits.float(), dim=-1)[..., :3]
    v = valid.to(logp.dtype)
    iou = match_iou.to(logp.dtype).detach()
    target = torch.stack([1.0 - v, v * (1.0 - iou), v * iou], dim=-1)
    return _reduce(-(target * logp).sum(-1), reduction)


def wrap_reward(fn: Callable[..., Any], *, batch_dims: int = 1) -> Callable[..., torch.Tensor]:
    """Turns a numpy batch reward into a function of tensors.

    ``fn(*arrays) -> (batch,)`` scores axis 0 of its array arguments (e.g.
    ``rewards.detection.recall_reward_padded`` with options bound by
    ``functools.partial``). The wrapped function takes tensors on any device
    (or arrays) whose first ``batch_dims`` axes are batch axes, runs ``fn``
    on the host under ``no_grad``, and returns float32 rewards of the batch
    shape on the first tensor's device.

    Example:
        >>> import numpy as np, torch
        >>> brightness = wrap_reward(lambda imgs: imgs.reshape(len(imgs), -1).mean(1), batch_dims=2)
        >>> brightness(torch.ones(2, 3, 4, 4)).shape
        torch.Size([2, 3])
    """

    @functools.wraps(fn)
    def wrapped(*args: Any) -> torch.Tensor:
        device = next((a.device for a in args if isinstance(a, torch.Tensor)), torch.device("cpu"))
        with torch.no_grad():
            arrays = [a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a) for a in args]
        batch_shape(arrays, batch_dims)
        return torch.from_numpy(call_host(fn, arrays, batch_dims)).to(device)

    return wrapped
