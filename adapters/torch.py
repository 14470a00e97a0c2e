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

Precision: rewards, baselines and advantages are computed in float32, or in
the log-probabilities' dtype when that is wider (float64): a bfloat16 or
float16 policy gets the same gradient as a float32 one, to its own precision.
Arguments other than the gradient source (``rewards``, ``baseline``,
``tokens``, ``mask``, ``match_iou``, ``valid``) may be tensors on any device,
numpy arrays or nested lists; they are moved to the device of ``logits``,
``seq_logprob`` or ``conf_logits``.

Value checks (NaN or infinite rewards, out-of-vocabulary tokens at unmasked
positions, IoUs outside [0, 1]) raise ``ValueError`` naming the argument and
the index. They read one boolean from the device per call (a synchronisation
point on GPU).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

import numpy as np
import torch
import torch.nn.functional as F

from rewards._inputs import int_option, to_numpy
from rewards.adapters._shared import (
    REDUCTIONS,
    Baseline,
    Reduction,
    batch_shape,
    call_host,
    check_confidence_args,
    check_finite_values,
    check_float_logprob,
    check_iou_values,
    check_reinforce_args,
    check_rewards,
    check_sequence_args,
    check_token_range,
    flatten,
    real_values,
)

__all__ = [
    "ArrayLike",
    "iou_confidence_loss",
    "loo_baseline",
    "reinforce_loss",
    "sequence_logprob",
    "wrap_reward",
]

#: What the non-gradient arguments accept: a tensor, a numpy array or a (nested) list of numbers.
ArrayLike: TypeAlias = torch.Tensor | np.ndarray | Sequence[Any] | float


def _tensor(x: Any, name: str, device: torch.device | None = None) -> torch.Tensor:
    """``x`` as a tensor (numpy arrays and lists converted), moved to ``device`` when given."""
    if not isinstance(x, torch.Tensor):
        a = to_numpy(x, name)
        if a.dtype.kind not in "biuf":
            raise TypeError(f"`{name}` must hold numbers, got dtype {a.dtype}")
        if a.dtype.kind == "u" and a.dtype != np.uint8:  # torch lacks most wide unsigned ops
            a = a.astype(np.int64)
        x = torch.from_numpy(np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("=")))
    return x if device is None else x.to(device)


def _real(x: Any, name: str, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Rewards or baselines: real numbers as a constant ``dtype`` tensor on ``device``."""
    if isinstance(x, torch.Tensor):
        if x.dtype.is_complex:
            raise TypeError(f"`{name}` must hold real numbers, got dtype {x.dtype}")
    else:
        x = real_values(to_numpy(x, name), name).astype(np.float64)
    return torch.as_tensor(x, device=device).detach().to(dtype)


def _check_finite(x: torch.Tensor, name: str) -> None:
    if not bool(torch.isfinite(x).all()):
        check_finite_values(x.detach().cpu().double().numpy(), name)


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.promote_types(x.dtype, torch.float32)


def _reduce(x: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return x.mean()
    if reduction == "sum":
        return x.sum()
    return x


def sequence_logprob(logits: torch.Tensor, tokens: ArrayLike, mask: ArrayLike) -> torch.Tensor:
    """log p(y) = sum over t of mask_t * log softmax(logits_t)[y_t]; shape (...).

    logits (..., T, V) float; tokens (..., T) int; mask (..., T) bool or float
    (nonzero counts). Computed in float32 (float64 for float64 logits).

    Masked-out positions are never read: they may hold any value, such as
    Hugging Face's ignore index -100, the vocabulary size, or a token the
    logits rule out. A token outside [0, V) at an unmasked position raises
    ``ValueError`` naming its index (``rewards.adapters.jax`` does the same
    in eager mode).

    Example:
        >>> import torch
        >>> logits = torch.zeros(1, 3, 4)                       # uniform over V = 4
        >>> tokens = torch.tensor([[2, 1, -100]]); mask = tokens != -100
        >>> sequence_logprob(logits, tokens, mask).tolist()     # 2 * log(1/4)
        [-2.7725887298583984]
    """
    tokens = _tensor(tokens, "tokens", logits.device)
    mask = _tensor(mask, "mask", logits.device)
    check_sequence_args(logits, tokens, mask)
    vocab = logits.shape[-1]
    read = mask != 0
    if bool((read & ((tokens < 0) | (tokens >= vocab))).any()):
        check_token_range(tokens.cpu().numpy(), read.cpu().numpy(), vocab)
    safe = torch.where(read, tokens, torch.zeros_like(tokens)).long()
    logp = F.log_softmax(logits.to(_compute_dtype(logits)), dim=-1).gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    # where, not multiply: masked positions may hold tokens of probability 0 (log p = -inf).
    return torch.where(read, logp, torch.zeros_like(logp)).sum(-1)


def _loo(rewards: torch.Tensor) -> torch.Tensor:
    return (rewards.sum(dim=1, keepdim=True) - rewards) / (rewards.shape[1] - 1)


def loo_baseline(rewards: ArrayLike) -> torch.Tensor:
    """Leave-one-out baseline of rewards (B, N): b_i = (sum_j r_j - r_i) / (N - 1).

    Float32 (float64 for a float64 tensor) on the rewards' device; lists and
    numpy arrays accepted. NaN or infinite rewards raise ``ValueError``.

    Example:
        >>> loo_baseline([[1.0, 0.0, 0.5]]).tolist()
        [[0.25, 0.75, 0.5]]
    """
    device, dtype = torch.device("cpu"), torch.float32
    if isinstance(rewards, torch.Tensor):
        device = rewards.device
        dtype = torch.float64 if rewards.dtype == torch.float64 else torch.float32
    r = _real(rewards, "rewards", device, dtype)
    check_rewards(r, min_samples=2)
    _check_finite(r, "rewards")
    return _loo(r)


def reinforce_loss(
    seq_logprob: torch.Tensor,
    rewards: ArrayLike,
    *,
    baseline: Baseline | ArrayLike = "loo",
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """REINFORCE loss -(r - b) * log p(y) with the advantage (r - b) held constant.

    seq_logprob: (B, N) floating point (the gradient flows through it);
    rewards: (B, N) real numbers (tensor, numpy array or list). baseline:
    "loo" (leave-one-out over the N samples, the default), "mean" (mean of
    the N, biased), "none", or an array (B,), (B, 1) or (B, N) such as the
    greedy decode's reward (self-critical training). reduction: "mean" over
    all B*N samples, "sum", or "none" for the (B, N) per-sample losses.

    Rewards and baseline are used in float32 (float64 when ``seq_logprob``
    is), never in a bfloat16/float16 ``seq_logprob``'s dtype; the loss has
    that float32/float64 dtype. NaN or infinite rewards or baselines raise
    ``ValueError`` naming the entry.

    Example:
        >>> import torch
        >>> logp = torch.zeros(1, 2, requires_grad=True, dtype=torch.bfloat16)
        >>> reinforce_loss(logp, [[1.0, 0.0]]).backward()
        >>> logp.grad.tolist()   # -(r - b) / (B N) with the leave-one-out b = [0, 1]
        [[-0.5, 0.5]]
    """
    if not isinstance(seq_logprob, torch.Tensor):
        raise TypeError(
            f"`seq_logprob` must be a torch.Tensor (it carries the gradient), got {type(seq_logprob).__name__}"
        )
    check_float_logprob(seq_logprob)
    dtype = _compute_dtype(seq_logprob)
    r = _real(rewards, "rewards", seq_logprob.device, dtype)
    given = None if isinstance(baseline, str) else _real(baseline, "baseline", seq_logprob.device, dtype)
    kind = check_reinforce_args(seq_logprob, r, baseline if given is None else given, reduction)
    _check_finite(r, "rewards")
    if given is not None:
        _check_finite(given, "baseline")
        b = given.reshape(given.shape[0], -1)
    elif kind == "loo":
        b = _loo(r)
    elif kind == "mean":
        b = r.mean(dim=1, keepdim=True)
    else:
        b = torch.zeros_like(r)
    advantage = (r - b).detach()
    return _reduce(-advantage * seq_logprob.to(dtype), reduction)


def iou_confidence_loss(
    conf_logits: torch.Tensor, match_iou: ArrayLike, valid: ArrayLike, *, reduction: Reduction = "mean"
) -> torch.Tensor:
    """The paper's supervision of each box's confidence token towards its IoU.

    Soft cross-entropy of log_softmax(conf_logits) over its last axis against
    the target (pad, low, high) = (1, 0, 0) for padded boxes and
    (0, 1 - IoU, IoU) for valid ones. conf_logits (..., C >= 3) are the
    logits at the confidence positions (the first three classes are pad,
    low, high); match_iou (...) the IoUs, e.g. the numpy output of
    ``rewards.detection.match_iou_padded``; valid (...) bool (float: nonzero
    is valid). IoUs of padded boxes are never read (they may be NaN); a valid
    box's IoU must lie in [0, 1], else ``ValueError`` naming it. Returns the
    mean (or the sum, or the per-box losses with ``reduction="none"``).

    Example:
        >>> import torch
        >>> conf_logits = torch.zeros(1, 2, 3)               # uniform over (pad, low, high)
        >>> iou_confidence_loss(conf_logits, [[0.8, float("nan")]], [[True, False]], reduction="none").tolist()
        [[1.0986123085021973, 1.0986123085021973]]
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"`reduction` must be one of {REDUCTIONS}, got {reduction!r}")
    match_iou = _tensor(match_iou, "match_iou", conf_logits.device)
    valid = _tensor(valid, "valid", conf_logits.device)
    check_confidence_args(conf_logits, match_iou, valid)
    v = valid != 0
    if bool((v & ~((match_iou >= 0) & (match_iou <= 1))).any()):
        check_iou_values(match_iou.detach().cpu().double().numpy(), v.cpu().numpy())
    iou = match_iou.detach().to(_compute_dtype(conf_logits))
    logp = F.log_softmax(conf_logits.to(iou.dtype), dim=-1)[..., :3]
    zero = torch.zeros_like(iou)
    # where, not multiply: a padded box's IoU (NaN from padding, say) is never read.
    target = torch.stack(
        [torch.where(v, zero, zero + 1), torch.where(v, 1 - iou, zero), torch.where(v, iou, zero)], dim=-1
    )
    return _reduce(-(target * logp).sum(-1), reduction)


def wrap_reward(fn: Callable[..., Any], *, batch_dims: int = 1) -> Callable[..., torch.Tensor]:
    """Turns a numpy batch reward into a function of tensors.

    ``fn(*args) -> (batch,)`` scores axis 0 of its array arguments, which may
    be arrays or dicts (lists, tuples) of arrays: e.g.
    ``functools.partial(rewards.detection.recall_reward_padded, box_format="yxyx")``
    called with padded ``preds`` and ``gts`` dicts. Bind options with
    ``functools.partial``: every argument leaf is an array with the batch axes.
    The wrapped function takes tensors on any device (or arrays) whose first
    ``batch_dims`` axes are batch axes, runs ``fn`` on the host under
    ``no_grad`` (bfloat16 widened to float32), checks that it returned one
    real number per example, and returns float32 rewards of the batch shape
    on the first tensor's device.

    Example:
        >>> import numpy as np, torch
        >>> brightness = wrap_reward(lambda imgs: imgs.reshape(len(imgs), -1).mean(1), batch_dims=2)
        >>> brightness(torch.ones(2, 3, 4, 4)).shape
        torch.Size([2, 3])
        >>> from rewards.detection import recall_reward_padded
        >>> reward = wrap_reward(recall_reward_padded)
        >>> box = torch.tensor([[[0.0, 0.0, 1.0, 1.0]]])     # (B=1, K=1, 4)
        >>> one = {"boxes": box, "labels": torch.zeros(1, 1, dtype=torch.long), "valid": torch.ones(1, 1, dtype=torch.bool)}
        >>> reward(one, one).tolist()
        [1.0]
    """
    batch_dims = int_option(batch_dims, "batch_dims", low=1)

    @functools.wraps(fn)
    def wrapped(*args: Any) -> torch.Tensor:
        leaves, paths, rebuild = flatten(args)
        device = next((x.device for x in leaves if isinstance(x, torch.Tensor)), torch.device("cpu"))
        with torch.no_grad():
            arrays = [to_numpy(x, path) for x, path in zip(leaves, paths)]
        batch_shape(arrays, paths, batch_dims)
        return torch.from_numpy(call_host(fn, arrays, paths, rebuild, batch_dims)).to(device)

    return wrapped
