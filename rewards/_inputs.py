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
    if isinstance(x, np.ndarray) and x.dtype.kind != "V":
        return x
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor
        x = x.detach().cpu()
        if str(x.dtype) in _TORCH_WIDEN:  # numpy has no bfloat16: widen exactly
            x = x.float()
        x = x.numpy()
    try:
        a = np.asarray(x)
    except (ValueError, TypeError) as err:
        raise ValueError(f"`{name}` could not be converted to an array: {err}") from None
    if a.dtype.kind == "V" and a.dtype.name in ("bfloat16", "float8_e4m3fn", "float8_e5m2"):  # ml_dtypes
        a = a.astype(np.float32)
    return a


_TORCH_WIDEN = ("torch.bfloat16", "torch.float8_e4m3fn", "torch.float8_e5m2")


def real_option(
    value: Any, name: str, *, low: float | None = None, high: float | None = None, low_inclusive: bool = True
) -> float:
    """A finite real scalar option (bool and strings rejected), within [low, high].

    >>> real_option(0.3, "duplicate_weight")
    0.3
    >>> real_option("0.3", "duplicate_weight")
    Traceback (most recent call last):
    ...
    TypeError: `duplicate_weight` must be a real number, got str '0.3'
    """
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"`{name}` must be a real number, got {type(value).__name__} {value!r}")
    out = float(value)
    if not np.isfinite(out):
        raise ValueError(f"`{name}` must be finite, got {value!r}")
    if low is not None and (out < low or (out == low and not low_inclusive)):
        bound = ">=" if low_inclusive else ">"
        raise ValueError(f"`{name}` must be {bound} {low}, got {value!r}")
    if high is not None and out > high:
        raise ValueError(f"`{name}` must be <= {high}, got {value!r}")
    return out


def int_option(value: Any, name: str, *, low: int | None = None, high: int | None = None) -> int:
    """An integer scalar option: ints, or floats with an integral value (bool rejected).

    >>> int_option(100.0, "max_dets", low=1)
    100
    >>> int_option(float("inf"), "max_dets", low=1)
    Traceback (most recent call last):
    ...
    ValueError: `max_dets` must be a whole number, got inf
    """
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"`{name}` must be an integer, got {type(value).__name__} {value!r}")
    if isinstance(value, (float, np.floating)) and (not np.isfinite(value) or value != int(value)):
        raise ValueError(f"`{name}` must be a whole number, got {value!r}")
    out = int(value)
    if low is not None and out < low:
        raise ValueError(f"`{name}` must be >= {low}, got {value!r}")
    if high is not None and out > high:
        raise ValueError(f"`{name}` must be <= {high}, got {value!r}")
    return out


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
        raise ValueError(f"`{first_name}` has {len(first)} examples but `{second_name}` has {len(second)}")
    return len(first)


def offsets_from_lengths(lengths: Any) -> np.ndarray:
    """Offsets (B+1,) into a flat array from per-example lengths (B,)."""
    offsets = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets
