"""What the command-line entry points (``python -m rewards.<task>``) share."""

from __future__ import annotations

import sys


def load_numba_without_scipy() -> None:
    """Spares this process numba's import of scipy.linalg (measured 0.3-0.7 s of a 1.5 s run).

    The first kernel load makes numba import ``numba.np.arraymath``, which
    imports scipy.linalg when scipy is installed, only to offer BLAS to
    ``np.dot`` in compiled code. No reward kernel uses BLAS, and this process
    runs only our kernels, so scipy is hidden for that one import.
    """
    if "scipy" in sys.modules or "numba.np.arraymath" in sys.modules:
        return
    sys.modules["scipy"] = None  # type: ignore[assignment]  # makes `import scipy...` raise ImportError
    try:
        import numba.np.arraymath  # noqa: F401
    finally:
        del sys.modules["scipy"]
