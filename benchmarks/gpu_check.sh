#!/usr/bin/env bash
# One short GPU loan, run from the repository root: the gpu-smoke profile end to end without DVC, then the
# throughput of the default 35.7M UNet (compiled, bf16) in whatever time is left. Needs .gpu/cifar10-jpeg.tar.gz
# and .gpu/inception-fp16.pt (FID weights rounded to fp16 so that they travel; relative feature difference
# 3e-3 against the fp32 file, measured on CPU).
set -u
export PYTHONPATH="$PWD/src" PYTHONUNBUFFERED=1
OUT="${OUT:-/tmp/gpu-out}"
BUDGET="${BUDGET:-570}"
mkdir -p "$OUT"
t0=$(date +%s)
left() { echo $(( BUDGET - ($(date +%s) - t0) )); }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python -c "import torch, torchvision, torchmetrics; print(torch.__version__, torchvision.__version__, torchmetrics.__version__)"
timeout "${SMOKE_TIMEOUT:-330}" python -m dreaming_data.cli quickstart --profile gpu-smoke --no-dvc \
  --data-path .gpu/cifar10-jpeg.tar.gz -S eval.fid_weights=.gpu/inception-fp16.pt 2>&1 \
  | tr '\r' '\n' | grep -v -E "it/s\]|step/s\]|img/s\]|^\s*$|Warning|warnings.warn" | tee "$OUT/smoke.log"
echo "smoke wall: $(( $(date +%s) - t0 )) s" | tee -a "$OUT/smoke.log"
tar czf "$OUT/results.tgz" metrics reports plots .dreaming-data 2>/dev/null
for batches in "128 512" "64"; do
  sample=2048; [ "$batches" = "64" ] && sample=0
  t=$(( $(left) - 5 )); [ "$t" -lt 30 ] && break
  timeout "$t" python benchmarks/ddpm_throughput.py --params params.yaml --batches $batches --sample-batch $sample \
    --seconds 5 2>&1 | grep -v -E "Warning|warnings.warn" | tee -a "$OUT/bench.log"
done
ls -la "$OUT"
