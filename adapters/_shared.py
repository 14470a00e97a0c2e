"""Framework-free pieces of the adapters: argument checks and the host call of a numpy reward.

Both ``rewards.adapters.torch`` and ``rewards.adapters.jax`` validate with these functions
(they only read ``.shape``/``.dtype``) and run rewards through ``call_host``,
so the two frameworks accept and reject exactly the same inputs.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

BASELINES = ("loo", "mean", "none")
REDUCTIONS = ("mean", "sum", "none")


def dtype_kind(x: Any) -> str:
    """'b', 'i', 'u', 'f' or 'c' for numpy, torch and jax dtypes alike."""
    dtype = x.dtype
    name = str(dtype).replace("torch.", "")
    if name == "bool":
        return "b"
    if name.startswith(("float", "bfloat", "half")):
        return "f"
    if name.startswith("uint"):
        return "u"
    if name.startswith("int"):
        return "i"
    if name.startswith("complex"):
        return "c"
    return np.dtype(dtype).kind


def check_sequence_args(logits, tokens, mask) -> None:
    ls, ts, ms = tuple(logits.shape), tuple(tokens.shape), tuple(mask.shape)
    if len(ls) < 2:
        raise ValueError(f"`logits` must have shape (..., T, V), got {ls}")
    if ts != ls[:-1]:
        raise ValueError(f"`tokens` must have shape {ls[:-1]} to match `logits` {ls}, got {ts}")
    if ms != ts:
        raise ValueError(f"`mask` must have shape {ts} to match `tokens`, got {ms}")
    if dtype_kind(tokens) not in "iu":
        raise ValueError(f"`tokens` must hold integer token ids, got dtype {tokens.dtype}")
    if dtype_kind(mask) not in "bf":
        raise ValueError(f"`mask` must be bool (or float 0/1), got dtype {mask.dtype}")
    if dtype_kind(logits) != "f":
        raise ValueError(f"`logits` must be floating point, got dtype {logits.dtype}")


def check_rewards(rewards, min_samples: int = 1) -> None:
    shape = tuple(rewards.shape)
    if len(shape) != 2:
        raise ValueError(f"`rewards` must have shape (B, N): N samples per input, got {shape}")
    if shape[1] < min_samples:
        raise ValueError(
            f"`rewards` has N={shape[1]} samples per input; the leave-one-out baseline needs N >= 2"
        )


def check_reinforce_args(seq_logprob, rewards, baseline, reduction) -> str:
    """Validates and returns which baseline: 'loo', 'mean', 'none' or 'array'."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"`reduction` must be one of {REDUCTIONS}, got {reduction!r}")
    check_rewards(rewards)
    if tuple(seq_logprob.shape) != tuple(rewards.shape):
        raise ValueError(
            f"`seq_logprob` has shape {tuple(seq_logprob.shape)} but `rewards` has {tuple(rewards.shape)}"
        )
    if isinstance(baseline, str):
        if baseline not in BASELINES:
            raise ValueError(f"`baseline` must be one of {BASELINES} or an array, got {baseline!r}")
        if baseline == "loo":
            check_rewards(rewards, min_samples=2)
        return baseline
    shape = tuple(baseline.shape)
    b, n = tuple(rewards.shape)
    if shape not in ((b, n), (b, 1), (b,)):
        raise ValueError(
            f"`baseline` array must have shape ({b}, {n}), ({b}, 1) or ({b},) to match `rewards`, got {shape}"
        )
    return "array"


def check_confidence_args(conf_logits, match_iou, valid) -> None:
    cs, ms, vs = tuple(conf_logits.shape), tuple(match_iou.shape), tuple(valid.shape)
    if len(cs) < 1 or cs[-1] < 3:
        raise ValueError(f"`conf_logits` must have shape (..., C) with C >= 3 (pad, low, high), got {cs}")
    if ms != cs[:-1]:
        raise ValueError(f"`match_iou` must have shape {cs[:-1]} to match `conf_logits`, got {ms}")
    if vs != ms:
        raise ValueError(f"`valid` must have shape {ms} to match `match_iou`, got {vs}")
    if dtype_kind(valid) not in "bf":
        raise ValueError(f"`valid` must be bool (or float 0/1), got dtype {valid.dtype}")


def batch_shape(args: Sequence[Any], batch_dims: int) -> tuple:
    """The shared leading batch shape of the reward's array arguments."""
    if not args:
        raise ValueError("the wrapped reward needs at least one array argument")
    lead = tuple(args[0].shape[:batch_dims])
    if len(lead) != batch_dims:
        raise ValueError(f"argument 0 has shape {tuple(args[0].shape)}: fewer than batch_dims={batch_dims} axes")
    for i, a in enumerate(args[1:], start=1):
        if tuple(a.shape[:batch_dims]) != lead:
            raise ValueError(
                f"argument {i} has leading shape {tuple(a.shape[:batch_dims])} but argument 0 has {lead}"
            )
    return lead


def call_host(fn: Callable, arrays: Sequence[np.ndarray], n_lead: int) -> np.ndarray:
    """Runs a numpy batch reward on arrays whose first ``n_lead`` axes are batch axes.

    The batch axes are merged into one for ``fn`` (which scores axis 0) and
    split again; the result is float32 of the batch shape.
    """
    lead = tuple(arrays[0].shape[:n_lead])
    size = int(np.prod(lead, dtype=np.int64))
    flat = [np.asarray(a).reshape((size,) + tuple(a.shape[n_lead:])) for a in arrays]
    out = np.asarray(fn(*flat))
    if out.shape != (size,):
        name = getattr(fn, "__name__", repr(fn))
        raise ValueError(
            f"reward function `{name}` returned shape {out.shape}; expected ({size},): one reward per example"
        )
    return out.astype(np.float32).reshape(lead)
