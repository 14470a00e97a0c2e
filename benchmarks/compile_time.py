"""First-call cost of the numba kernels: a cold compile, then a load from numba's on-disk cache.

Run: python benchmarks/compile_time.py
Each family is timed in a fresh interpreter (import excluded) with an empty
NUMBA_CACHE_DIR (cold), then again with the cache that run left (warm).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

FAMILIES = {
    "detection map_reward": "from rewards import detection as d; b=[[0,0,1,1]]; f=lambda: d.map_reward({'boxes': b, 'scores': [1.0], 'labels': [0]}, {'boxes': b, 'labels': [0]})",
    "detection recall_reward": "from rewards import detection as d; b=[[0,0,1,1]]; f=lambda: d.recall_reward({'boxes': b, 'scores': [1.0], 'labels': [0]}, {'boxes': b, 'labels': [0]})",
    "detection coco_eval": "from rewards import detection as d; b=[[0,0,1,1]]; f=lambda: d.coco_eval([{'boxes': b, 'scores': [1.0], 'labels': [0]}], [{'boxes': b, 'labels': [0]}])",
    "panoptic pq_reward": "import numpy as np; from rewards import panoptic as p; g=np.zeros((4,4,2),np.int64); f=lambda: p.pq_reward(g, g, things=[1], stuffs=[0])",
    "captioning cider_reward": "from rewards import captioning as c; df=c.document_frequencies([['a cat']]); f=lambda: c.cider_reward('a cat', ['a cat'], df)",
    "colorization colorfulness": "import numpy as np; from rewards import colorization as c; x=np.zeros((4,4,3),np.uint8); f=lambda: c.colorfulness(x)",
    "colorization reward": "import numpy as np; from rewards import colorization as c; x=np.zeros((4,4,3),np.uint8); f=lambda: c.colorfulness_reward(x)",
}

SNIPPET = "{setup}\nimport time\nt = time.perf_counter(); f(); print(time.perf_counter() - t)"


def first_call_seconds(setup: str, cache_dir: str) -> float:
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir}
    out = subprocess.run([sys.executable, "-c", SNIPPET.format(setup=setup)], env=env, check=True,
                         capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def measure() -> dict[str, tuple[float, float]]:
    results = {}
    for name, setup in FAMILIES.items():
        with tempfile.TemporaryDirectory() as cache:
            cold = first_call_seconds(setup, cache)
            warm = first_call_seconds(setup, cache)
        results[name] = (cold, warm)
    return results


if __name__ == "__main__":
    print(f"{'kernel family':28s} {'cold compile (s)':>18s} {'cache load (s)':>16s}")
    for name, (cold, warm) in measure().items():
        print(f"{name:28s} {cold:18.2f} {warm:16.3f}")
