#!/usr/bin/env bash
# The CUDA path on one card, sized for under five minutes: every section of benchmarks/gpu_proof.py, one JSON document.
# Usage (from anywhere, on a machine with a CUDA GPU and the venv installed): benchmarks/gpu_proof.sh [OUT.json]
# Default output: $OUT/gpu_proof.json when OUT is set (the device tool's folder), else ./gpu_proof.json.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
out=${1:-${OUT:-.}/gpu_proof.json}
$PY -c "import torch; assert torch.cuda.is_available(), 'no CUDA device: run benchmarks/gpu_proof.py --device cpu instead'"
OPENBLAS_NUM_THREADS=1 exec $PY benchmarks/gpu_proof.py --device "${GAN_DEVICE:-cuda}" --out "$out"
