#!/usr/bin/env bash
# cnnkit on CuPy against PyTorch eager (cuDNN) on one GPU: training steps of M3 at batch 256
# and of a CIFAR-size ResNet-18 (benchmarks/specs/resnet18-cifar.txt), then inference.
# About 3-5 minutes on one H100 (well under 8); every command has its own time limit.
#
#   benchmarks/gpu.sh                 # on a machine with a GPU, CuPy and torch (CUDA)
#   benchmarks/gpu.sh --device cpu    # dry run of the same commands on the CPU, tiny batches
#
# Environment: PYTHON (default python3) must have torch, cupy and numpy, typer and rich.
# Results go to stdout; copy them into benchmarks/RESULTS.md with the date and the machine.
set -euo pipefail

DEVICE=gpu
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE="$2"; shift 2 ;;
    --device=*) DEVICE="${1#*=}"; shift ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "gpu.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

if [ "$DEVICE" = gpu ]; then
  "$PYTHON" - <<'PY' || { echo "gpu.sh: needs a CUDA GPU with CuPy and torch (CUDA); try --device cpu" >&2; exit 1; }
import cupy, torch
assert torch.cuda.is_available(), "torch sees no CUDA device"
print("GPU:", torch.cuda.get_device_name(), "| CuPy", cupy.__version__, "| torch", torch.__version__)
PY
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  BIG=256; STEPS="--steps 30 --warmup 5"; LIMIT=150
else
  BIG=8; STEPS="--steps 2 --warmup 1"; LIMIT=300
fi

run() {  # a command under its own time limit; a failure is reported and the script goes on
  echo; echo "\$ $*"
  timeout "$LIMIT" "$@" || echo "gpu.sh: exit status $? from: $*" >&2
}

# strict float32 on both sides (TF32 off: cuDNN would use it by default, CuPy would not)
run "$PYTHON" -m benchmarks.train_step m3 resnet18-cifar --batch "$BIG" --device "$DEVICE" $STEPS
run "$PYTHON" -m benchmarks.inference m3 resnet18-cifar --batch "$BIG" --device "$DEVICE" $STEPS
if [ "$DEVICE" = gpu ]; then
  # TF32 tensor cores on both sides (PyTorch's default for convolutions)
  run env CUPY_TF32=1 "$PYTHON" -m benchmarks.train_step m3 resnet18-cifar --batch "$BIG" \
    --device gpu --tf32 $STEPS
fi
