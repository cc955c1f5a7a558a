#!/usr/bin/env bash
# One GPU, under 5 minutes: the CUDA tests, then the training benchmark on the device (both configurations).
# Usage (from the repository root, on a machine with a CUDA GPU and the venv installed): benchmarks/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
$PY -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(0))"
OPENBLAS_NUM_THREADS=1 $PY -m pytest -q tests/core/training/test_cuda.py
OPENBLAS_NUM_THREADS=1 $PY benchmarks/bench_canonical.py --device cuda --rounds 5 --window-seconds 3
