"""Input coercion shared by every reward: arrays from numpy, lists, torch or jax.

Nothing here imports a framework: torch tensors are recognised by their
``detach``/``cpu`` methods and jax arrays convert through ``np.asarray``.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def to_numpy(x: Any, name: str) -> np.ndarray:
    """Returns ``x`` as a numpy array without copying when it already is one.

    Torch tensors (any device, with or without grad) are detached and moved to
    the host first; jax arrays, lists and scalars go through ``np.asarray``.
    """
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor
        x = x.detach().cpu().numpy()
    try:
        return np.asarray(x)
    except (ValueError, TypeError) as err:
        raise ValueError(f"`{name}` could not be converted to an array: {err}") from None


def as_int_array(x: Any, name: str) -> np.ndarray:
    """An integer (int64) array; float input is accepted only when empty."""
    a = to_numpy(x, name)
    if a.dtype.kind in "iu":
        return a.astype(np.int64, copy=False)
    if a.dtype == np.bool_:
        raise ValueError(f"`{name}` must hold integers, got dtype bool")
    if a.size == 0:
        return np.zeros(a.shape, np.int64)
    raise ValueError(f"`{name}` must hold integers, got dtype {a.dtype}")


def as_float_array(x: Any, name: str) -> np.ndarray:
    """A float64 array of finite numbers."""
    a = to_numpy(x, name)
    if a.dtype.kind not in "fiub":
        raise ValueError(f"`{name}` must be numeric, got dtype {a.dtype}")
    a = a.astype(np.float64, copy=False)
    check_finite(a, name)
    return a


def check_finite(a: np.ndarray, name: str) -> None:
    if a.size and not np.isfinite(a).all():
        raise ValueError(f"`{name}` contains NaN or infinite values")


def check_batch_lengths(first: Any, second: Any, first_name: str, second_name: str) -> int:
    """Both batches are sized sequences of equal length; returns that length."""
    for value, name in ((first, first_name), (second, second_name)):
        if not hasattr(value, "__len__") or isinstance(value, (str, bytes, dict)):
            raise TypeError(f"`{name}` must be a sequence of examples, got {type(value).__name__}")
    if len(first) != len(second):
        raise ValueError(
            f"`{first_name}` has {len(first)} examples but `{second_name}` has {len(second)}"
        )
    return len(first)


def offsets_from_lengths(lengths: Any) -> np.ndarray:
    """Offsets (B+1,) into a flat array from per-example lengths (B,)."""
    offsets = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets
