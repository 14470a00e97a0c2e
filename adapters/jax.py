"""JAX adapters: the REINFORCE estimator and numpy rewards inside ``jax.jit``.

Same names, arguments and semantics as ``rewards.adapters.torch``.

Example (one REINFORCE gradient, N = 4 samples for each of B = 2 inputs):
    >>> import jax, jax.numpy as jnp
    >>> from rewards.adapters import jax as rj
    >>> tokens = jnp.zeros((2, 4, 5), jnp.int32); mask = jnp.ones((2, 4, 5), bool)
    >>> rewards = jnp.array([[1.0, 0.0, 0.5, 0.5], [0.2, 0.2, 0.2, 0.8]])
    >>> loss = lambda logits: rj.reinforce_loss(rj.sequence_logprob(logits, tokens, mask), rewards)
    >>> jax.grad(loss)(jnp.zeros((2, 4, 5, 10))).shape
    (2, 4, 5, 10)

Precision: rewards, baselines and advantages are float32 (or the
log-probabilities' dtype when wider), so bfloat16/float16 policies get
float32-accurate advantages.

Value checks and transformations. Where an argument's values are known when
the function is called (eager mode, or a constant closed over by ``jit`` /
``grad``), bad values raise ``ValueError`` naming the argument and index,
exactly as in ``rewards.adapters.torch``: NaN or infinite ``rewards`` or
``baseline``, a token outside [0, V) at an unmasked position, a valid box's
IoU outside [0, 1]. Under ``jit``/``vmap`` traced values cannot raise; the
result is NaN instead, never a silently wrong number:

- ``sequence_logprob``: NaN for a sequence with an out-of-range token at an
  unmasked position (eager mode raises);
- ``iou_confidence_loss``: NaN for a valid box whose IoU is outside [0, 1];
- ``reinforce_loss``: NaN or infinite traced rewards propagate into a NaN loss.

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
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

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
    dtype_kind,
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


def _concrete(x: Any, name: str = "x") -> np.ndarray | None:
    """``x``'s values when they are known now; None for a traced value (under jit, vmap, grad).

    Numpy arrays and lists are read as given, before jax narrows them
    (float64 -> float32, int64 -> int32 without x64), so checks see the
    caller's own values.
    """
    if isinstance(x, jax.core.Tracer):
        return None
    return np.asarray(x) if isinstance(x, jax.Array) else to_numpy(x, name)


def _array(x: Any, name: str) -> jax.Array:
    """A jax array (tracers kept); numpy arrays and lists converted, non-numbers a TypeError."""
    if isinstance(x, jax.Array):
        return x
    a = to_numpy(x, name)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"`{name}` must hold numbers, got dtype {a.dtype}")
    return jnp.asarray(a)


def _real(x: Any, name: str, dtype: Any) -> jax.Array:
    """Rewards or baselines: real numbers, as a ``dtype`` array without gradient."""
    if isinstance(x, jax.Array):
        if dtype_kind(x) not in "fiub":
            raise TypeError(f"`{name}` must hold real numbers, got dtype {x.dtype}")
    else:
        x = real_values(to_numpy(x, name), name)
    values = _concrete(x, name)
    if values is not None:
        check_finite_values(values.astype(np.float64), name)
    return jax.lax.stop_gradient(jnp.asarray(x).astype(dtype))


def _compute_dtype(x: Any) -> Any:
    return jnp.promote_types(x.dtype, jnp.float32)


def _reduce(x: jax.Array, reduction: str) -> jax.Array:
    if reduction == "mean":
        return x.mean()
    if reduction == "sum":
        return x.sum()
    return x


def sequence_logprob(logits: jax.Array, tokens: ArrayLike, mask: ArrayLike) -> jax.Array:
    """log p(y) = sum over t of mask_t * log softmax(logits_t)[y_t]; shape (...).

    Masked positions are never read (any value, -100 included). A token
    outside [0, V) at an unmasked position raises ``ValueError`` when the
    tokens are concrete, and makes that sequence's log-prob NaN under ``jit``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> tokens = jnp.array([[2, 1, -100]]); mask = tokens != -100
        >>> sequence_logprob(jnp.zeros((1, 3, 4)), tokens, mask).tolist()
        [-2.7725887298583984]
        >>> jax.jit(sequence_logprob)(jnp.zeros((1, 3, 4)), jnp.array([[2, 4, 0]]), jnp.ones((1, 3), bool)).tolist()
        [nan]
    """
    known_tokens, known_mask = _concrete(tokens, "tokens"), _concrete(mask, "mask")
    tokens = _array(tokens, "tokens")
    mask = _array(mask, "mask")
    check_sequence_args(logits, tokens, mask)
    vocab = logits.shape[-1]
    if known_tokens is not None and known_mask is not None:
        check_token_range(known_tokens, known_mask, vocab)
    read = mask != 0
    bad = read & ((tokens < 0) | (tokens >= vocab))
    safe = jnp.where(read & ~bad, tokens, 0).astype(jnp.int32)
    logp = jax.nn.log_softmax(logits.astype(_compute_dtype(logits)), axis=-1)
    logp = jnp.take_along_axis(logp, safe[..., None], axis=-1)[..., 0]
    logp = jnp.where(bad, jnp.nan, logp)
    # where, not multiply: masked positions may hold tokens of probability 0 (log p = -inf).
    return jnp.where(read, logp, 0.0).sum(-1)


def _loo(rewards: jax.Array) -> jax.Array:
    return (rewards.sum(axis=1, keepdims=True) - rewards) / (rewards.shape[1] - 1)


def loo_baseline(rewards: ArrayLike) -> jax.Array:
    """Leave-one-out baseline of rewards (B, N): b_i = (sum_j r_j - r_i) / (N - 1).

    Example:
        >>> loo_baseline([[1.0, 0.0, 0.5]]).tolist()
        [[0.25, 0.75, 0.5]]
    """
    dtype = (
        _compute_dtype(rewards)
        if isinstance(rewards, jax.Array) and dtype_kind(rewards) == "f"
        else jnp.float32
    )
    r = _real(rewards, "rewards", dtype)
    check_rewards(r, min_samples=2)
    return _loo(r)


def reinforce_loss(
    seq_logprob: jax.Array,
    rewards: ArrayLike,
    *,
    baseline: Baseline | ArrayLike = "loo",
    reduction: Reduction = "mean",
) -> jax.Array:
    """REINFORCE loss -(r - b) * log p(y), the advantage under ``stop_gradient``.

    See ``rewards.adapters.torch.reinforce_loss``: same baselines ("loo", "mean",
    "none" or an array) and reductions ("mean", "sum", "none"); rewards and
    baseline in float32 (or ``seq_logprob``'s wider dtype); lists accepted.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> jax.grad(lambda lp: reinforce_loss(lp, [[1.0, 0.0]]))(jnp.zeros((1, 2), jnp.bfloat16)).tolist()
        [[-0.5, 0.5]]
    """
    seq_logprob = _array(seq_logprob, "seq_logprob")
    check_float_logprob(seq_logprob)
    dtype = _compute_dtype(seq_logprob)
    r = _real(rewards, "rewards", dtype)
    given = None if isinstance(baseline, str) else _real(baseline, "baseline", dtype)
    kind = check_reinforce_args(seq_logprob, r, baseline if given is None else given, reduction)
    if given is not None:
        b = given.reshape(given.shape[0], -1)
    elif kind == "loo":
        b = _loo(r)
    elif kind == "mean":
        b = r.mean(axis=1, keepdims=True)
    else:
        b = jnp.zeros_like(r)
    advantage = jax.lax.stop_gradient(r - b)
    return _reduce(-advantage * seq_logprob.astype(dtype), reduction)


def iou_confidence_loss(
    conf_logits: jax.Array, match_iou: ArrayLike, valid: ArrayLike, *, reduction: Reduction = "mean"
) -> jax.Array:
    """Soft cross-entropy of each box's confidence token towards (pad, 1 - IoU, IoU).

    See ``rewards.adapters.torch.iou_confidence_loss``: numpy ``match_iou``
    (from ``match_iou_padded``) accepted; padded boxes' IoUs never read; a
    valid box's IoU outside [0, 1] raises when concrete, gives NaN under jit.

    Example:
        >>> import jax.numpy as jnp
        >>> round(float(iou_confidence_loss(jnp.zeros((1, 2, 3)), [[0.8, float("nan")]], [[True, False]])), 4)
        1.0986
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"`reduction` must be one of {REDUCTIONS}, got {reduction!r}")
    known_iou, known_valid = _concrete(match_iou, "match_iou"), _concrete(valid, "valid")
    match_iou = _array(match_iou, "match_iou")
    valid = _array(valid, "valid")
    check_confidence_args(conf_logits, match_iou, valid)
    if known_iou is not None and known_valid is not None:
        check_iou_values(known_iou, known_valid)
    v = valid != 0
    logp = jax.nn.log_softmax(conf_logits.astype(_compute_dtype(conf_logits)), axis=-1)[..., :3]
    iou = jax.lax.stop_gradient(match_iou.astype(logp.dtype))
    bad = v & ~((iou >= 0) & (iou <= 1))
    # where, not multiply: a padded box's IoU (NaN from padding, say) is never read.
    target = jnp.stack(
        [jnp.where(v, 0.0, 1.0), jnp.where(v, 1.0 - iou, 0.0), jnp.where(v, iou, 0.0)], axis=-1
    )
    per_box = jnp.where(bad, jnp.nan, -(target * logp).sum(-1))
    return _reduce(per_box, reduction)


def wrap_reward(fn: Callable[..., Any], *, batch_dims: int = 1) -> Callable[..., jax.Array]:
    """Turns a numpy batch reward into a JAX function that works under ``jit`` and ``vmap``.

    ``fn(*args) -> (batch,)`` scores axis 0 of its arguments, which may be
    arrays or dicts (lists, tuples) of arrays, e.g.
    ``functools.partial(rewards.detection.recall_reward_padded, box_format="yxyx")``
    with padded ``preds`` and ``gts`` dicts (bind options with ``partial``).
    The wrapped function takes arrays whose first ``batch_dims`` axes are
    batch axes and returns float32 rewards of that shape.

    With concrete inputs (eager mode) ``fn`` is called directly, so its
    exceptions reach you unchanged. Under ``jit``/``vmap`` it runs through
    ``jax.pure_callback(..., vmap_method="broadcast_all")`` (under ``vmap``
    the callback receives the vmapped axes in front and scores them all in
    one call). There an exception cannot cross the compiled code: jax raises
    ``jax.errors.JaxRuntimeError`` ("INTERNAL: CpuCallback error ...") whose
    message ends with ``RuntimeError: reward function `name` raised
    ValueError: ...``, the original error. The result's shape (one reward
    per example) and dtype (real numbers) are checked in both modes.

    Example:
        >>> import functools, jax, jax.numpy as jnp
        >>> mean_pixel = wrap_reward(lambda imgs: imgs.reshape(len(imgs), -1).mean(1))
        >>> jax.jit(mean_pixel)(jnp.ones((3, 4, 4))).tolist()
        [1.0, 1.0, 1.0]
        >>> from rewards.detection import recall_reward_padded
        >>> reward = jax.jit(wrap_reward(functools.partial(recall_reward_padded, box_format="yxyx")))
        >>> one = {"boxes": jnp.array([[[0.0, 0.0, 1.0, 1.0]]]), "labels": jnp.zeros((1, 1), int),
        ...        "valid": jnp.ones((1, 1), bool)}
        >>> reward(one, one).tolist()
        [1.0]
    """
    batch_dims = int_option(batch_dims, "batch_dims", low=1)

    @functools.wraps(fn)
    def wrapped(*args: Any) -> jax.Array:
        leaves, paths, rebuild = flatten(args)
        leaves = [x if isinstance(x, jax.Array) else to_numpy(x, path) for x, path in zip(leaves, paths)]
        lead = batch_shape(leaves, paths, batch_dims)
        known = [_concrete(x) for x in leaves]
        if all(k is not None for k in known):
            return jnp.asarray(call_host(fn, known, paths, rebuild, batch_dims))
        rank = leaves[0].ndim

        def host(*arrays: Any) -> np.ndarray:
            extra = np.ndim(arrays[0]) - rank  # axes added by vmap
            return call_host(fn, arrays, paths, rebuild, extra + batch_dims, in_callback=True)

        return jax.pure_callback(
            host, jax.ShapeDtypeStruct(lead, jnp.float32), *leaves, vmap_method="broadcast_all"
        )

    return wrapped
