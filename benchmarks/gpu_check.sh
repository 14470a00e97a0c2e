#!/usr/bin/env bash
# GPU check of the reference trainer (issue 21): run on a machine with CUDA, from anywhere:
#   bash benchmarks/gpu_check.sh            # uses $PYTHON, else .venv/bin/python, else makes .venv-gpu
# 1. the smoke preset of every registered task on --device cuda (pretrain -> tune -> evaluate -> pictures);
# 2. one full demo on CUDA (task $DEMO_TASK, default detection) with its wall time;
# 3. a 2-process torchrun (nccl) tuning run with a replica check, when 2 or more GPUs are visible.
# Any failure exits non-zero. Outputs go to $OUT (default runs/gpu_check); timings to $OUT/timings.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then
    PY=.venv/bin/python
  else
    # A CUDA build of torch comes from the default index (the Makefile pins the CPU wheel instead).
    python3 -m venv .venv-gpu
    .venv-gpu/bin/python -m pip install -q --upgrade pip
    .venv-gpu/bin/python -m pip install -q -e ".[torch,train]"
    PY=.venv-gpu/bin/python
  fi
fi
if ! "$PY" -c "import rewards.adapters, reference_training" 2>/dev/null; then
  # The wheel maps adapters/ to rewards.adapters; a bare source tree on PYTHONPATH lacks that link.
  echo "gpu_check: $PY cannot import rewards.adapters and reference_training. Install the package" \
    "(pip install -e '.[torch,train]'), or, offline with torch already there, link the source tree:" \
    "ln -s ../adapters rewards/adapters; export PYTHONPATH=\$PWD" >&2
  exit 1
fi
OUT=${OUT:-runs/gpu_check}
DEMO_TASK=${DEMO_TASK:-detection}
rm -rf "$OUT"
mkdir -p "$OUT"

"$PY" - <<'PYEOF'
import sys, torch
if not torch.cuda.is_available():
    sys.exit(f"gpu_check: torch {torch.__version__} sees no CUDA device (torch.version.cuda = {torch.version.cuda})")
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.device_count()} GPU(s): "
      + ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())))
PYEOF

TASKS=$("$PY" -c "from reference_training.tasks import TASKS; print(' '.join(TASKS))")
for task in $TASKS; do
  echo "== smoke preset: $task on cuda"
  "$PY" -m reference_training demo --task "$task" --preset smoke --device cuda --out "$OUT/smoke_$task"
  test -s "$OUT/smoke_$task/summary.json"
done

echo "== full demo: $DEMO_TASK on cuda"
start=$(date +%s)
"$PY" -m reference_training demo --task "$DEMO_TASK" --device cuda --out "$OUT/demo_$DEMO_TASK"
end=$(date +%s)
echo "demo $DEMO_TASK on cuda: $((end - start)) s wall" | tee -a "$OUT/timings.txt"

GPUS=$("$PY" -c "import torch; print(torch.cuda.device_count())")
if [ "$GPUS" -ge 2 ]; then
  echo "== torchrun: 2 processes (nccl)"
  "$PY" -m torch.distributed.run --standalone --nproc_per_node=2 -m reference_training tune --preset smoke \
    --device cuda --init "$OUT/smoke_detection/mle.pt" --out "$OUT/ddp" --check-replicas | tee "$OUT/ddp.log"
  grep -q "replicas identical across 2 ranks" "$OUT/ddp.log"
else
  echo "== torchrun skipped: $GPUS GPU visible (needs 2)" | tee -a "$OUT/timings.txt"
fi
echo "gpu_check: all passed"
