"""First-call cost of the numba kernels: a cold compile, then a load from numba's on-disk cache.

Run: python benchmarks/compile_time.py [--repeat N] [--variants]

Each reward family's first call is timed in a fresh interpreter (imports excluded)
with an empty NUMBA_CACHE_DIR (cold: what the first process on a machine pays),
then again in another fresh interpreter with the cache that run left (warm: what
every later process pays). The last row calls every family in one process (cold).
``--variants`` also times a second call with other input dtypes (float32 boxes,
int32 panoptic maps, float images): a new type signature compiles again, so the
public wrappers should hand each kernel one dtype.

Wall seconds are what a user waits; CPU seconds of the compiling process are shown
beside them because they hardly move when other work shares the cores.

Targets (issue 12): each family <= 5 s cold, all families <= 15 s in one process,
on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

# Setup (not timed) and the first call (timed) of each family, with the input types
# the public examples use (Python lists, uint8 images).
FAMILIES: dict[str, tuple[str, str]] = {
    "detection map_reward": (
        "from rewards import detection as d; b = [[0, 0, 1, 1]]; "
        "p = {'boxes': b, 'scores': [1.0], 'labels': [0]}; g = {'boxes': b, 'labels': [0]}",
        "d.map_reward(p, g)",
    ),
    "detection recall_reward": (
        "from rewards import detection as d; b = [[0, 0, 1, 1]]; "
        "p = {'boxes': b, 'scores': [1.0], 'labels': [0]}; g = {'boxes': b, 'labels': [0]}",
        "d.recall_reward(p, g)",
    ),
    "detection match_iou": (
        "from rewards import detection as d; b = [[0, 0, 1, 1]]; "
        "p = {'boxes': b, 'scores': [1.0], 'labels': [0]}; g = {'boxes': b, 'labels': [0]}",
        "d.match_iou(p, g)",
    ),
    "detection coco_eval": (
        "from rewards import detection as d; b = [[0, 0, 1, 1]]; "
        "p = {'boxes': b, 'scores': [1.0], 'labels': [0]}; g = {'boxes': b, 'labels': [0]}",
        "d.coco_eval([p], [g])",
    ),
    "panoptic pq_reward": (
        "import numpy as np; from rewards import panoptic as pan; xp = np.zeros((4, 4, 2), np.int64)",
        "pan.pq_reward(xp, xp, things=[1], stuffs=[0])",
    ),
    "captioning cider_reward": (
        "from rewards import captioning as c",
        "c.cider_reward('a cat', ['a cat'], c.document_frequencies([['a cat']]))",
    ),
    "colorization (both rewards)": (
        "import numpy as np; from rewards import colorization as col; xc = np.zeros((4, 4, 3), np.uint8)",
        "col.colorfulness(xc); col.colorfulness_reward(xc)",
    ),
}

# A second call with other dtypes, after the family's first call (--variants).
VARIANTS: dict[str, str] = {
    "detection map_reward": "import numpy as np; d.map_reward({'boxes': np.array(b, np.float32), "
    "'scores': np.ones(1, np.float32), 'labels': np.zeros(1, np.int32)}, "
    "{'boxes': np.array(b, np.float32), 'labels': np.zeros(1, np.int32)})",
    "detection recall_reward": "import numpy as np; d.recall_reward({'boxes': np.array(b, np.float32), "
    "'scores': np.ones(1, np.float32), 'labels': np.zeros(1, np.int32)}, "
    "{'boxes': np.array(b, np.float32), 'labels': np.zeros(1, np.int32)})",
    "panoptic pq_reward": "y = xp.astype(np.int32); pan.pq_reward(y, y, things=[1], stuffs=[0])",
    "colorization (both rewards)": "y = xc.astype(np.float32); col.colorfulness(y); col.colorfulness_reward(y); "
    "z = xc.astype(np.float64); col.colorfulness(z); col.colorfulness_reward(z)",
}

SNIPPET = """\
import time
{setup}
_wall, _cpu = time.perf_counter(), time.process_time()
{call}
print("FIRST", time.perf_counter() - _wall)
print("FIRST_CPU", time.process_time() - _cpu)
{variant}
"""

VARIANT_SNIPPET = """\
_wall, _cpu = time.perf_counter(), time.process_time()
{call}
print("VARIANT", time.perf_counter() - _wall)
print("VARIANT_CPU", time.process_time() - _cpu)
"""


def run(setup: str, call: str, cache_dir: str, variant: str = "") -> dict[str, float]:
    """Seconds of the first call (and of the variant call) in a fresh interpreter."""
    code = SNIPPET.format(
        setup=setup, call=call, variant=VARIANT_SNIPPET.format(call=variant) if variant else ""
    )
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["?"])[-1]
        print(f"  failed: {call[:60]}...: {last}", file=sys.stderr)
        return {"FIRST": float("nan")}
    times = {}
    for line in out.stdout.splitlines():
        key, _, value = line.partition(" ")
        if key in ("FIRST", "FIRST_CPU", "VARIANT", "VARIANT_CPU"):
            times[key] = float(value)
    return times


def _min(old: float | None, new: float) -> float:
    """The smaller of two timings; a failed run (NaN) stays visible as NaN."""
    return new if old is None or new != new or old != old else min(old, new)


def measure(repeat: int = 1, variants: bool = False) -> dict[str, dict[str, float]]:
    """Per family: cold and warm first-call seconds (min over ``repeat`` runs), variant seconds."""
    results: dict[str, dict[str, float]] = {}
    for name, (setup, call) in FAMILIES.items():
        row: dict[str, float] = {}
        for _ in range(repeat):
            with tempfile.TemporaryDirectory() as cache:
                cold = run(setup, call, cache, VARIANTS.get(name, "") if variants else "")
                warm = run(setup, call, cache)
            row["cold"] = _min(row.get("cold"), cold["FIRST"])
            row["cold_cpu"] = _min(row.get("cold_cpu"), cold.get("FIRST_CPU", float("nan")))
            row["warm"] = _min(row.get("warm"), warm["FIRST"])
            row["warm_cpu"] = _min(row.get("warm_cpu"), warm.get("FIRST_CPU", float("nan")))
            if "VARIANT" in cold:
                row["variant"] = _min(row.get("variant"), cold["VARIANT"])
                row["variant_cpu"] = _min(row.get("variant_cpu"), cold.get("VARIANT_CPU", float("nan")))
        results[name] = row
    setup_all = "; ".join(setup for setup, _ in FAMILIES.values())
    call_all = "; ".join(call for _, call in FAMILIES.values())
    row = {}
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as cache:
            cold = run(setup_all, call_all, cache)
            warm = run(setup_all, call_all, cache)
        row["cold"] = _min(row.get("cold"), cold["FIRST"])
        row["cold_cpu"] = _min(row.get("cold_cpu"), cold.get("FIRST_CPU", float("nan")))
        row["warm"] = _min(row.get("warm"), warm["FIRST"])
        row["warm_cpu"] = _min(row.get("warm_cpu"), warm.get("FIRST_CPU", float("nan")))
    results["all families, one process"] = row
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="runs per family; the minimum is shown")
    parser.add_argument("--variants", action="store_true", help="also time a second call with other dtypes")
    args = parser.parse_args()
    header = f"{'kernel family':30s} {'cold (s)':>9s} {'cold CPU (s)':>13s} {'cache load (s)':>15s} {'load CPU (s)':>13s}"
    print(header + (f" {'other dtypes (s)':>17s} {'their CPU (s)':>14s}" if args.variants else ""))
    results = measure(args.repeat, args.variants)
    for name, row in results.items():
        line = f"{name:30s} {row['cold']:9.2f} {row['cold_cpu']:13.2f} {row['warm']:15.3f} {row['warm_cpu']:13.3f}"
        if args.variants:
            if "variant" in row:
                line += f" {row['variant']:17.2f} {row['variant_cpu']:14.2f}"
        print(line)
    everything = results["all families, one process"]
    over = [name for name, row in results.items() if row is not everything and not row["cold_cpu"] <= 5]
    print(
        f"targets (cold CPU s): each family <= 5: {'met' if not over else 'over: ' + ', '.join(over)}; "
        f"all in one process <= 15: {'met' if everything['cold_cpu'] <= 15 else 'over'}"
    )


if __name__ == "__main__":
    main()
