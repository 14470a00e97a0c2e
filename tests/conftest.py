"""Suite-wide collection rules.

Test modules that import a framework (torch, jax, trl/transformers) at the top are left out,
with a line in the header, when that framework is not installed: the core's tests must run
in an environment with numpy and numba alone (CI runs them under numpy 1.26 that way).
"""

from __future__ import annotations

import importlib.util
import pathlib
import re

_FRAMEWORKS = ("torch", "jax", "trl", "transformers", "torchmetrics", "optax")
_TOP_IMPORT = re.compile(r"^(?:import|from)\s+(" + "|".join(_FRAMEWORKS) + r")\b", re.M)
_missing = {name for name in _FRAMEWORKS if importlib.util.find_spec(name) is None}
_left_out: list[str] = []


def pytest_ignore_collect(collection_path: pathlib.Path, config) -> bool | None:
    if collection_path.suffix != ".py" or not collection_path.name.startswith("test_"):
        return None
    needed = set(_TOP_IMPORT.findall(collection_path.read_text(encoding="utf-8")))
    if needed & _missing:
        _left_out.append(f"{collection_path.name} (needs {', '.join(sorted(needed & _missing))})")
        return True
    return None


def pytest_report_header(config) -> list[str]:
    return [f"frameworks not installed: {', '.join(sorted(_missing))}"] if _missing else []


def pytest_terminal_summary(terminalreporter) -> None:
    if _left_out:
        terminalreporter.write_line("modules left out for a missing framework: " + "; ".join(_left_out))
