#!/usr/bin/env bash
# One short GPU loan, run from the repository root: throughput of the default 35.7M UNet (compiled, bf16), then the
# gpu-smoke profile end to end without DVC. Needs .gpu/cifar10-jpeg.tar.gz and .gpu/inception-fp16.pt (FID
# weights rounded to fp16 so that they travel; relative feature difference 3e-3 against fp32, measured on CPU).
set -u
export PYTHONPATH="$PWD/src" PYTHONUNBUFFERED=1
OUT="${OUT:-/tmp/gpu-out}"
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python -c "import torch, torchvision, torchmetrics; print(torch.__version__, torchvision.__version__, torchmetrics.__version__)"
timeout 200 python benchmarks/ddpm_throughput.py --params params.yaml --batches 128 512 --sample-batch 2048 \
  --seconds 6 2>&1 | grep -v Warning | tee "$OUT/bench.log"
timeout 70 python benchmarks/ddpm_throughput.py --params params.yaml --batches 64 --sample-batch 0 --seconds 6 \
  2>&1 | grep -v Warning | tee -a "$OUT/bench.log"
start=$(date +%s)
timeout "${SMOKE_TIMEOUT:-310}" python -m dreaming_data.cli quickstart --profile gpu-smoke --no-dvc \
  --data-path .gpu/cifar10-jpeg.tar.gz -S eval.fid_weights=.gpu/inception-fp16.pt 2>&1 \
  | tr '\r' '\n' | grep -v -E "it/s\]|step/s|img/s\]|^\s*$" | tee "$OUT/smoke.log"
echo "smoke wall: $(( $(date +%s) - start )) s" | tee -a "$OUT/smoke.log"
tar czf "$OUT/results.tgz" metrics reports plots 2>/dev/null
ls -la "$OUT"
