#!/usr/bin/env bash
# The GPU study in one short GPU loan (issue 14), then the default configuration's projection (issue 13's "before").
#
#   bash benchmarks/gpu_study.sh prepare ARCHIVE   # here, before the loan: fills the git-ignored .gpu/ (~67 MB)
#   bash benchmarks/gpu_study.sh                   # on the GPU machine, from the repository root, with .gpu carried
#   bash benchmarks/gpu_study.sh -S KEY=VALUE ...  # extra overrides (a tiny CPU rehearsal: runtime.device=cpu, ...)
#
# prepare: the CIFAR-10 image-folder archive, the FID Inception weights rounded to fp16 so that both fit the 64 MiB a
# loan carries (loaded as fp32 again; relative feature difference ~3e-3 against the fp32 file, so FID/KID of this
# run are not the exact standard numbers), and the commit the tree is (the GPU machine gets no .git).
# The run: `quickstart --profile gpu-study --no-dvc --collect`, results/gpu-study-<gpu>-<date>/ copied to $OUT, then
# benchmarks/project_default.py on params.yaml with what time is left.
set -u
if [ "${1:-}" = prepare ]; then
  archive="${2:?usage: gpu_study.sh prepare ARCHIVE}"
  mkdir -p .gpu
  cp "$archive" .gpu/cifar10-jpeg.tar.gz
  python - <<'EOF'
import torch
from dreaming_data.quality import default_fid_weights
net = torch.jit.load(str(default_fid_weights()), map_location="cpu").half()
torch.jit.save(net, ".gpu/inception-fp16.pt")
EOF
  git rev-parse HEAD > .gpu/commit
  [ -z "$(git status --porcelain --untracked-files=no)" ] || echo "warning: uncommitted changes travel too"
  du -sh .gpu
  exit 0
fi
export DREAMING_DATA_COMMIT="$(cat .gpu/commit 2>/dev/null)"
source benchmarks/loan.sh
s0=$(date +%s)
timeout "$(( $(left) - 20 ))" python -m dreaming_data.cli quickstart --profile gpu-study --no-dvc --collect \
  --data-path .gpu/cifar10-jpeg.tar.gz -S eval.fid_weights=.gpu/inception-fp16.pt "$@" 2>&1 | quiet | tee "$OUT/study.log"
echo "study wall: $(( $(date +%s) - s0 )) s" | tee -a "$OUT/study.log"
cp -r results/gpu-study-* "$OUT/" 2>/dev/null
cp .dreaming-data/timing.jsonl "$OUT/" 2>/dev/null
t=$(( $(left) - 5 ))
if [ "$t" -gt 90 ]; then
  timeout "$t" python benchmarks/project_default.py --seconds 2 --out "$OUT/projection-default.json" \
    -S data.source=folder -S data.path=.gpu/cifar10-jpeg.tar.gz -S eval.fid_weights=.gpu/inception-fp16.pt \
    2>&1 | quiet | tee "$OUT/projection.log"
fi
ls -la "$OUT"
