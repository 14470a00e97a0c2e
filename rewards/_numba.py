"""How every compiled kernel of ``rewards`` is built: one decorator, one cache policy.

Kernels are compiled on first call (never at import) and cached on disk, so a
process pays the compile once per machine. Where the cache lives, in numba's
own order of preference:

1. ``NUMBA_CACHE_DIR`` when the user sets it;
2. the package's ``__pycache__`` when it is writable (a source checkout,
   a user install);
3. numba's per-user cache directory (``~/.cache/numba`` on Linux);
4. otherwise (read-only site-packages and no writable home: containers,
   ``nobody``) a directory ``task-rewards-numba-<uid>`` under the system
   temporary directory, announced by one :class:`KernelCacheWarning`. It is
   used only if this user owns it and nobody else can write to it (numba's
   cache files are pickles: a folder planted by another user could run code).

If that is not possible either, kernels compile in memory in each process,
announced by one :class:`KernelCacheWarning`, instead of failing at import.
The fallback applies to this package's files only: other numba users in the
process see numba's behaviour unchanged.

Kernels are serial (``parallel=False``) and release the GIL (``nogil=True``):
numba's parallel layers are unsafe in the places rewards run (GNU OpenMP
aborts fork-started children such as DataLoader workers; the workqueue layer
aborts concurrent threads). Measured on 2 shared cores, serial kernels also
compiled up to 2.9x faster per family (as fast at worst) than with
``parallel=True``, and ran most batch functions much faster, none more than 4%
slower (README, "Where rewards run").
Callers who want more cores call the batch functions from threads: the
kernels release the GIL.
"""

from __future__ import annotations

import os
import stat
import tempfile
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import numba

F = TypeVar("F", bound=Callable[..., Any])

_PACKAGE_DIR = os.path.abspath(os.path.dirname(__file__)) + os.sep


class KernelCacheWarning(RuntimeWarning):
    """The compiled-kernel cache fell back to a temporary directory, or to no cache."""


def _fallback_cache_root() -> str:
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    return os.path.join(tempfile.gettempdir(), f"task-rewards-numba-{uid}")


def _private_directory(path: str) -> bool:
    """``path`` is (now) a directory that only this user can write.

    The cache holds pickles that numba loads and runs: in a shared temporary
    directory, a folder another user created (or can write to) could plant
    code, so such a folder is never used.
    """
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        info = os.lstat(path)
    except OSError:
        return False
    if not stat.S_ISDIR(info.st_mode):
        return False
    if hasattr(os, "getuid") and (info.st_uid != os.getuid() or info.st_mode & 0o022):
        return False
    return True


def _make_fallback_locator() -> type | None:
    try:
        from numba.core import caching
    except ImportError:  # pragma: no cover - numba moved its internals
        return None
    base = getattr(caching, "UserProvidedCacheLocator", None) or getattr(
        caching, "_UserProvidedCacheLocator", None
    )
    if base is None:  # pragma: no cover
        return None

    class TempDirCacheLocator(base):  # type: ignore[misc, valid-type]
        """numba's user-provided locator, pointed at a temporary directory, for our files only."""

        _warned = False

        def __init__(self, py_func: Any, py_file: str) -> None:
            self._py_file = py_file
            self._lineno = py_func.__code__.co_firstlineno
            subpath = self.get_suitable_cache_subpath(py_file)
            self._cache_path = os.path.join(_fallback_cache_root(), subpath)

        @classmethod
        def from_function(cls, py_func: Any, py_file: str) -> Any:
            if not os.path.abspath(py_file).startswith(_PACKAGE_DIR):
                return None
            if not os.path.exists(py_file):
                return None
            try:
                if not _private_directory(_fallback_cache_root()):
                    return None
                self = cls(py_func, py_file)
                self.ensure_cache_path()
            except OSError:  # includes no usable temporary directory at all
                return None
            if not cls._warned:
                cls._warned = True
                warnings.warn(
                    "task-rewards: no writable numba cache location (package directory and "
                    f"home are read-only); compiled kernels are cached in {_fallback_cache_root()}. "
                    "Set NUMBA_CACHE_DIR to choose a persistent directory.",
                    KernelCacheWarning,
                    stacklevel=2,
                )
            return self

    return TempDirCacheLocator


def _install_fallback_locator() -> None:
    try:
        from numba.core import caching
    except ImportError:  # pragma: no cover
        return
    # Newer numba (0.68 here) calls it CacheImpl, older _CacheImpl; subclasses share its list.
    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl", None)
    classes = getattr(impl, "_locator_classes", None)
    if not isinstance(classes, list):  # pragma: no cover
        return
    if any(getattr(c, "__name__", "") == "TempDirCacheLocator" for c in classes):
        return
    locator = _make_fallback_locator()
    if locator is not None:
        classes.append(locator)


_install_fallback_locator()
_uncached_warned = False


def kernel(fn: F | None = None, *, inline: bool = False) -> Any:
    """``numba.njit`` with this package's policy: cached, serial, GIL released.

    Use as ``@kernel`` or ``@kernel(inline=True)`` (small helpers numba should
    inline into their callers). Loops written with ``numba.prange`` run
    serially; the batch kernels keep ``prange`` to mark the loop over examples
    as independent.
    """

    def build(f: F) -> F:
        global _uncached_warned
        options: dict[str, Any] = {"nogil": True}
        if inline:
            options["inline"] = "always"
        try:
            return numba.njit(cache=True, **options)(f)
        except RuntimeError as err:  # no cache locator at all
            if not _uncached_warned:
                _uncached_warned = True
                warnings.warn(
                    f"task-rewards: kernels cannot be cached on disk ({err}); they are compiled "
                    "in memory in every process. Set NUMBA_CACHE_DIR to a writable directory.",
                    KernelCacheWarning,
                    stacklevel=3,
                )
            return numba.njit(cache=False, **options)(f)

    if fn is not None:
        return build(fn)
    return build
