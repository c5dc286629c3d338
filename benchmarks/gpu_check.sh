#!/usr/bin/env bash
# One short GPU loan, run from the repository root: (1) the FID extractor's validation (10,000 real training vs
# 10,000 real test images), (2) the gpu-smoke profile end to end without DVC, (3) training throughput of the
# default 35.7M UNet in whatever time is left. Needs the .gpu/ that `bash benchmarks/gpu_study.sh prepare ARCHIVE`
# fills (the CIFAR-10 archive, the FID weights packed as fp16, .gpu/site). Everything it reports lands in $OUT.
set -u
source benchmarks/loan.sh
export PYTHONPATH="$PWD/.gpu/site:$PYTHONPATH"
python benchmarks/fp16_weights.py unpack .gpu/inception.pack .gpu/inception-fp16.pt || exit 1
python -c "import torch, torchvision, torchmetrics; print(torch.__version__, torchvision.__version__, torchmetrics.__version__)" \
  | tee -a "$OUT/gpu.txt"
timeout 90 python benchmarks/fid_real_vs_real.py --data .gpu/cifar10-jpeg.tar.gz --n 10000 \
  --weights .gpu/inception-fp16.pt 2>&1 | quiet | tee "$OUT/fid_real.log"
s0=$(date +%s)
timeout "$(( $(left) - 15 ))" python -m dreaming_data.cli quickstart --profile gpu-smoke --no-dvc \
  --data-path .gpu/cifar10-jpeg.tar.gz -S eval.fid_weights=.gpu/inception-fp16.pt 2>&1 | quiet | tee "$OUT/smoke.log"
echo "smoke wall: $(( $(date +%s) - s0 )) s" | tee -a "$OUT/smoke.log"
tar czf "$OUT/results.tgz" metrics reports plots .dreaming-data 2>/dev/null
t=$(( $(left) - 5 ))
if [ "$t" -gt 120 ]; then
  timeout "$t" python benchmarks/ddpm_throughput.py --params params.yaml --batches 512 64 --sample-batch 0 \
    --seconds 5 2>&1 | grep -v -E "Warning|warnings.warn" | tee "$OUT/bench.log"
fi
ls -la "$OUT"
