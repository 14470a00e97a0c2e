"""JAX adapters: the REINFORCE estimator and numpy rewards inside ``jax.jit``.

Same names and semantics as ``rewards.adapters.torch``.

Example (one REINFORCE gradient, N = 4 samples for each of B = 2 inputs):
    >>> import jax, jax.numpy as jnp
    >>> from rewards.adapters import jax as rj
    >>> tokens = jnp.zeros((2, 4, 5), jnp.int32); mask = jnp.ones((2, 4, 5), bool)
    >>> rewards = jnp.array([[1.0, 0.0, 0.5, 0.5], [0.2, 0.2, 0.2, 0.8]])
    >>> loss = lambda logits: rj.reinforce_loss(rj.sequence_logprob(logits, tokens, mask), rewards)
    >>> jax.grad(loss)(jnp.zeros((2, 4, 5, 10))).shape
    (2, 4, 5, 10)

Under multi-device ``jit`` a callback runs once, on the host, with the full
(gathered) arrays. To score each device's shard where it lives, call the
wrapped reward inside ``jax.shard_map`` over the batch axis:

    reward = rj.wrap_reward(my_numpy_reward)
    per_shard = jax.shard_map(reward, mesh=mesh, in_specs=P("data"), out_specs=P("data"))

Each shard then runs its own callback on its local sample groups; keep all
N samples of an input on one shard so the leave-one-out baseline stays local.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from rewards.adapters._shared import (
    batch_shape,
    call_host,
    check_confidence_args,
    check_reinforce_args,
    check_rewards,
    check_sequence_args,
)

__all__ = ["iou_confidence_loss", "loo_baseline", "reinforce_loss", "sequence_logprob", "wrap_reward"]


def _reduce(x: jax.Array, reduction: str) -> jax.Array:
    if reduction == "mean":
        return x.mean()
    if reduction == "sum":
        return x.sum()
    return x


def sequence_logprob(logits: jax.Array, tokens: jax.Array, mask: jax.Array) -> jax.Array:
    """log p(y) = sum over t of mask_t * log softmax(logits_t)[y_t]; shape (...)."""
    check_sequence_args(logits, tokens, mask)
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    logp = jnp.take_along_axis(logp, tokens[..., None].astype(jnp.int32), axis=-1)[..., 0]
    # where, not multiply: masked positions may hold tokens of probability 0 (log p = -inf).
    return jnp.where(mask.astype(bool), logp, 0.0).sum(-1)


def loo_baseline(rewards: jax.Array) -> jax.Array:
    """Leave-one-out baseline of rewards (B, N): b_i = (sum_j r_j - r_i) / (N - 1)."""
    check_rewards(rewards, min_samples=2)
    rewards = jnp.asarray(rewards)
    return (rewards.sum(axis=1, keepdims=True) - rewards) / (rewards.shape[1] - 1)


def reinforce_loss(
    seq_logprob: jax.Array,
    rewards: jax.Array,
    *,
    baseline: str | jax.Array = "loo",
    reduction: str = "mean",
) -> jax.Array:
    """REINFORCE loss -(r - b) * log p(y), the advantage under ``stop_gradient``.

    See ``rewards.adapters.torch.reinforce_loss``: same baselines ("loo", "mean",
    "none" or an array) and reductions ("mean", "sum", "none").
    """
    kind = check_reinforce_args(seq_logprob, rewards, baseline, reduction)
    rewards = jax.lax.stop_gradient(jnp.asarray(rewards, seq_logprob.dtype))
    if kind == "loo":
        b = loo_baseline(rewards)
    elif kind == "mean":
        b = rewards.mean(axis=1, keepdims=True)
    elif kind == "none":
        b = jnp.zeros_like(rewards)
    else:
        b = jnp.asarray(baseline, rewards.dtype)
        b = b.reshape(b.shape[0], -1)
    advantage = jax.lax.stop_gradient(rewards - b)
    return _reduce(-advantage * seq_logprob, reduction)


def iou_confidence_loss(
    conf_logits: jax.Array, match_iou: jax.Array, valid: jax.Array, *, reduction: str = "mean"
) -> jax.Array:
    """Soft cross-entropy of each box's confidence token towards (pad, 1 - IoU, IoU).

    See ``rewards.adapters.torch.iou_confidence_loss``.
    """
    check_confidence_args(conf_logits, match_iou, valid)
    logp = jax.nn.log_softmax(conf_logits.astype(jnp.float32), axis=-1)[..., :3]
    v = valid.astype(logp.dtype)
    iou = jax.lax.stop_gradient(match_iou.astype(logp.dtype))
    target = jnp.stack([1.0 - v, v * (1.0 - iou), v * iou], axis=-1)
    return _reduce(-(target * logp).sum(-1), reduction)


def wrap_reward(fn: Callable[..., Any], *, batch_dims: int = 1) -> Callable[..., jax.Array]:
    """Turns a numpy batch reward into a JAX function that works under ``jit`` and ``vmap``.

    ``fn(*arrays) -> (batch,)`` scores axis 0 of its arguments. The wrapped
    function takes arrays whose first ``batch_dims`` axes are batch axes and
    returns float32 rewards of that shape, computed on the host through
    ``jax.pure_callback(..., vmap_method="broadcast_all")``: under ``vmap``
    the callback receives the vmapped axes in front and scores them all in
    one call.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> mean_pixel = wrap_reward(lambda imgs: imgs.reshape(len(imgs), -1).mean(1))
        >>> jax.jit(mean_pixel)(jnp.ones((3, 4, 4))).tolist()
        [1.0, 1.0, 1.0]
    """

    @functools.wraps(fn)
    def wrapped(*args: Any) -> jax.Array:
        args = [jnp.asarray(a) for a in args]
        lead = batch_shape(args, batch_dims)
        traced_rank = args[0].ndim

        def host(*arrays):
            arrays = [np.asarray(a) for a in arrays]
            extra = arrays[0].ndim - traced_rank  # axes added by vmap
            return call_host(fn, arrays, extra + batch_dims)

        return jax.pure_callback(
            host, jax.ShapeDtypeStruct(lead, jnp.float32), *args, vmap_method="broadcast_all"
        )

    return wrapped
