"""Ratios against the reference implementations, printed at the end of a benchmark run.

Each benchmark records its median time per item (image, caption, pair) under a
workload name; the summary divides the reference's time by ours.
"""

from __future__ import annotations

import pytest

_PER_ITEM: dict[str, dict[str, float]] = {}


def record(benchmark, workload: str, name: str, items: int) -> None:
    """Stores the median seconds per item of a finished ``benchmark`` run."""
    median = benchmark.stats.stats.median
    benchmark.extra_info["seconds_per_item"] = median / items
    benchmark.extra_info["items"] = items
    _PER_ITEM.setdefault(workload, {})[name] = median / items


@pytest.fixture
def recorder():
    return record


def pytest_terminal_summary(terminalreporter):
    if not _PER_ITEM:
        return
    tr = terminalreporter
    tr.section("task-rewards: time per item and speed-up of ours (same run)")
    for workload, times in _PER_ITEM.items():
        ours = {k: v for k, v in times.items() if k.startswith("ours")}
        refs = {k: v for k, v in times.items() if not k.startswith("ours")}
        for name, t in sorted(times.items(), key=lambda kv: kv[1]):
            tr.write_line(f"{workload:28s} {name:34s} {t * 1e6:12.2f} us/item")
        for o, to in ours.items():
            for r, tref in refs.items():
                tr.write_line(f"{workload:28s} {o} vs {r}: {tref / to:,.1f}x")
