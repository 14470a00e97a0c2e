"""Reference trainer: MLE step time by torch thread count and OpenMP wait policy, quiet and shared.

    python -m benchmarks.trainer_threads            # all cores this process may use
    taskset -c 0,1 python -m benchmarks.trainer_threads   # as on a 2-core laptop

Each configuration runs in a fresh process (OMP_WAIT_POLICY is read when torch
loads). "shared" starts one busy-looping process per usable core beside it, as
when another job holds the cores. Prints the median step time of 12 detection
MLE steps (default preset) per configuration.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys

STEP = r"""
import os, sys, time
import numpy as np, torch
from reference_training import train
torch.set_num_threads(int(sys.argv[1]))
run = train.Run(train.config_from("default", task="detection"))
model = run.new_model()
opt = train.adamw(model.parameters(), lr=1e-4, weight_decay=0.0)
times = []
for step in range(15):
    rng, _ = run.step_rng("pretrain", step)
    t = time.perf_counter()
    loss = run.mle_loss(model, rng)
    opt.zero_grad(); loss.backward(); opt.step()
    times.append(time.perf_counter() - t)
print(1000 * float(np.median(times[3:])))
"""


def _busy() -> None:
    while True:
        pass


def step_ms(threads: int, policy: str | None) -> float:
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    out = subprocess.run(
        [sys.executable, "-c", STEP, str(threads)], env=env, check=True, capture_output=True, text=True
    )
    return float(out.stdout.split()[-1])


def main() -> None:
    cores = len(os.sched_getaffinity(0))
    configs = [(t, p) for t in sorted({1, cores}) for p in (None, "PASSIVE")]
    print(f"{cores} usable cores; median ms per detection MLE step (batch 32)")
    print(f"{'load':8}{'threads':>8}{'OMP_WAIT_POLICY':>18}{'ms/step':>10}")
    for load in ("quiet", "shared"):
        hogs = []
        if load == "shared":
            hogs = [multiprocessing.Process(target=_busy, daemon=True) for _ in range(cores)]
            for h in hogs:
                h.start()
        try:
            for threads, policy in configs:
                ms = step_ms(threads, policy)
                print(f"{load:8}{threads:>8}{policy or '(default)':>18}{ms:>10.0f}", flush=True)
        finally:
            for h in hogs:
                h.terminate()


if __name__ == "__main__":
    main()
