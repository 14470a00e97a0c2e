"""Framework-free pieces of the adapters: argument checks, messages and the host call of a numpy reward.

``rewards.adapters.torch`` and ``rewards.adapters.jax`` validate with these
functions (shape checks read only ``.shape``/``.dtype``; value checks take
numpy arrays the framework module made concrete) and run rewards through
``call_host``, so the two frameworks accept and reject the same inputs with the
same messages.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, get_args

import numpy as np

from rewards._inputs import to_numpy

Baseline = Literal["loo", "mean", "none"]
Reduction = Literal["mean", "sum", "none"]
BASELINES: tuple[str, ...] = get_args(Baseline)
REDUCTIONS: tuple[str, ...] = get_args(Reduction)


def dtype_kind(x: Any) -> str:
    """'b', 'i', 'u', 'f' or 'c' for numpy, torch and jax dtypes alike ('O', 'U', ... otherwise)."""
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


def index_text(index: Sequence[int]) -> str:
    return "[" + ", ".join(str(int(i)) for i in index) + "]"


def first_true(bad: np.ndarray) -> tuple[int, ...]:
    """The index of the first True entry of a boolean array (C order)."""
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(bad.reshape(-1))), bad.shape))


# ------------------------------------------------------------ REINFORCE


def real_values(a: np.ndarray, name: str) -> np.ndarray:
    """A host array of rewards or baselines: real numbers (bool and ints read as 0/1 and counts)."""
    if a.dtype.kind not in "fiub":
        raise TypeError(f"`{name}` must hold real numbers, got dtype {a.dtype}")
    return a


def check_float_logprob(seq_logprob: Any) -> None:
    if dtype_kind(seq_logprob) != "f":
        raise ValueError(
            f"`seq_logprob` must be floating point (log-probabilities, e.g. from `sequence_logprob`), "
            f"got dtype {seq_logprob.dtype}"
        )


def check_finite_values(values: np.ndarray, name: str) -> None:
    """Raises naming the first NaN or infinite entry of a concrete (host) array."""
    finite = np.isfinite(values)
    if not finite.all():
        where = first_true(~finite)
        raise ValueError(f"`{name}{index_text(where)}` is {values[where]}: {name} must be finite")


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


def check_token_range(tokens: np.ndarray, mask: np.ndarray, vocab: int) -> None:
    """Unmasked tokens must be ids of ``logits``' last axis; masked ones may hold anything."""
    bad = (mask != 0) & ((tokens < 0) | (tokens >= vocab))
    if bad.any():
        where = first_true(bad)
        raise ValueError(
            f"`tokens{index_text(where)}` = {tokens[where]} is not a token id in [0, {vocab}) "
            f"(the last axis of `logits`) at an unmasked position; masked positions may hold "
            f"any value, e.g. -100"
        )


def check_rewards(rewards, min_samples: int = 1) -> None:
    shape = tuple(rewards.shape)
    if len(shape) != 2:
        raise ValueError(f"`rewards` must have shape (B, N): N samples per input, got {shape}")
    if shape[1] < min_samples:
        raise ValueError(
            f"`rewards` has N={shape[1]} samples per input; the leave-one-out baseline needs N >= 2"
        )


def check_reinforce_args(seq_logprob, rewards, baseline, reduction) -> str:
    """Validates shapes and options; returns which baseline: 'loo', 'mean', 'none' or 'array'."""
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(f"`reduction` must be one of {REDUCTIONS}, got {reduction!r}")
    check_float_logprob(seq_logprob)
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
    if dtype_kind(conf_logits) != "f":
        raise ValueError(f"`conf_logits` must be floating point, got dtype {conf_logits.dtype}")
    if ms != cs[:-1]:
        raise ValueError(f"`match_iou` must have shape {cs[:-1]} to match `conf_logits`, got {ms}")
    if dtype_kind(match_iou) not in "fiu":
        raise ValueError(f"`match_iou` must hold IoUs in [0, 1], got dtype {match_iou.dtype}")
    if vs != ms:
        raise ValueError(f"`valid` must have shape {ms} to match `match_iou`, got {vs}")
    if dtype_kind(valid) not in "bf":
        raise ValueError(f"`valid` must be bool (or float 0/1), got dtype {valid.dtype}")


def check_iou_values(match_iou: np.ndarray, valid: np.ndarray) -> None:
    """IoUs of valid boxes lie in [0, 1] (NaN fails); padded entries are never read."""
    bad = (valid != 0) & ~((match_iou >= 0) & (match_iou <= 1))
    if bad.any():
        where = first_true(bad)
        raise ValueError(f"`match_iou{index_text(where)}` = {match_iou[where]} is not an IoU in [0, 1]")


# --------------------------------------------------------- wrap_reward


def flatten(args: Sequence[Any]) -> tuple[list[Any], list[str], Callable[[Sequence[Any]], list[Any]]]:
    """The array leaves of positional arguments that may be dicts, lists or tuples of arrays.

    Returns the leaves, their paths for messages (``args[0]["boxes"]``) and a
    function that rebuilds the arguments from new leaves (dicts as dicts,
    tuples as tuples). Anything else is a leaf.
    """
    leaves: list[Any] = []
    paths: list[str] = []

    def walk(x: Any, path: str) -> Callable[[Any], Any]:
        if isinstance(x, Mapping):
            keys = list(x)
            parts = [walk(x[k], f"{path}[{k!r}]") for k in keys]
            return lambda it: {k: part(it) for k, part in zip(keys, parts)}
        # A list of arrays or dicts is a container; a (nested) list of numbers is one array.
        if isinstance(x, (list, tuple)) and any(isinstance(v, Mapping) or hasattr(v, "shape") for v in x):
            kind = type(x) if isinstance(x, tuple) else list
            parts = [walk(v, f"{path}[{i}]") for i, v in enumerate(x)]
            return lambda it: kind(part(it) for part in parts)
        leaves.append(x)
        paths.append(path)
        return lambda it: next(it)

    builders = [walk(a, f"args[{i}]") for i, a in enumerate(args)]

    def rebuild(new_leaves: Sequence[Any]) -> list[Any]:
        it = iter(new_leaves)
        return [build(it) for build in builders]

    return leaves, paths, rebuild


def batch_shape(leaves: Sequence[Any], paths: Sequence[str], batch_dims: int) -> tuple:
    """The shared leading batch shape of the reward's array arguments."""
    if not leaves:
        raise ValueError("the wrapped reward needs at least one array argument")
    lead = tuple(leaves[0].shape[:batch_dims])
    for leaf, path in zip(leaves, paths):
        shape = tuple(leaf.shape)
        if len(shape) < batch_dims:
            raise ValueError(
                f"`{path}` has shape {shape}: fewer than batch_dims={batch_dims} leading batch axes "
                "(bind options such as box_format with functools.partial, not as arguments)"
            )
        if shape[:batch_dims] != lead:
            raise ValueError(f"`{path}` has leading shape {shape[:batch_dims]} but `{paths[0]}` has {lead}")
    return lead


def fn_name(fn: Callable) -> str:
    inner = getattr(fn, "func", fn)  # functools.partial
    return getattr(inner, "__name__", repr(inner))


def call_host(
    fn: Callable,
    leaves: Sequence[Any],
    paths: Sequence[str],
    rebuild: Callable,
    n_lead: int,
    in_callback: bool = False,
) -> np.ndarray:
    """Runs a numpy batch reward on array leaves whose first ``n_lead`` axes are batch axes.

    The batch axes are merged into one for ``fn`` (which scores axis 0) and
    split again; the result is float32 of the batch shape. The reward's output
    is checked: real numbers, one per example. ``in_callback``: inside
    ``jax.pure_callback``, where jax keeps only the text of an exception, so
    ``fn``'s own errors are re-raised with its name in the message.
    """
    arrays = [to_numpy(leaf, path) for leaf, path in zip(leaves, paths)]  # bfloat16 widens here
    lead = tuple(arrays[0].shape[:n_lead])
    size = int(np.prod(lead, dtype=np.int64))
    flat = [a.reshape((size,) + a.shape[n_lead:]) for a in arrays]
    name = fn_name(fn)
    try:
        result = fn(*rebuild(flat))
    except Exception as err:
        if not in_callback:
            raise
        raise RuntimeError(f"reward function `{name}` raised {type(err).__name__}: {err}") from err
    out = to_numpy(result, f"the result of reward function `{name}`")
    if out.dtype.kind not in "fiub":
        raise TypeError(f"reward function `{name}` returned dtype {out.dtype}; expected real numbers")
    if out.shape != (size,):
        raise ValueError(
            f"reward function `{name}` returned shape {out.shape}; expected ({size},): one reward per example"
        )
    return out.astype(np.float32).reshape(lead)
