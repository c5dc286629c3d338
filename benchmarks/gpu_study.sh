#!/usr/bin/env bash
# The GPU study in one short GPU batch job on an offline node (a fixed software image without DVC, a hard time limit,
# a few files back), then the default configuration's projection and DDPM throughput with the time left.
#
#   bash benchmarks/gpu_study.sh prepare ARCHIVE   # here, before the job: fills the git-ignored .gpu/ (checks its size)
#   bash benchmarks/gpu_study.sh                   # on the GPU machine, from the repository root, with .gpu carried
#   bash benchmarks/gpu_study.sh -S KEY=VALUE ...  # extra overrides for every step (a tiny CPU rehearsal)
#
# prepare: the CIFAR-10 image-folder archive, the FID Inception weights packed to ~37 MB (fp16; features ~3e-3
# relative off the fp32 file's, so FID/KID are close to, not exactly, the standard numbers: benchmarks/fp16_weights.py),
# the pure-Python packages the job imports that the GPU image lacks (.gpu/site: ruamel.yaml), and the commit (the GPU
# machine gets no .git). What travels, the tree and .gpu/, must stay under CARRY_LIMIT bytes.
# The job writes to $OUT at most six files, none in a folder: gpu.txt, study.log, results-gpu-study.tgz (the results
# folder so far, refreshed after every finished stage, so a job cut short still returns each stage that finished:
# `dreaming-data results unpack` takes it), and, with the time left, projection-default.json, projection.log and
# bench.log. BUDGET (seconds, default 570) bounds the whole job.
set -u
CARRY_LIMIT=$(( 62 * 1024 * 1024 ))
if [ "${1:-}" = prepare ]; then
  archive="${2:?usage: gpu_study.sh prepare ARCHIVE}"
  rm -rf .gpu && mkdir -p .gpu/site
  cp "$archive" .gpu/cifar10-jpeg.tar.gz || exit 1
  PYTHONPATH="$PWD/src" python benchmarks/fp16_weights.py pack .gpu/inception.pack || exit 1
  python - <<'PY' || exit 1
import shutil
from importlib.metadata import distribution
from pathlib import Path
for name in ("ruamel.yaml",):  # on the job's path, not on the GPU image; pure Python
    for f in distribution(name).files:
        if "__pycache__" not in f.parts and f.suffix != ".pth":
            (Path(".gpu/site") / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f.locate(), Path(".gpu/site") / f)
PY
  git rev-parse HEAD > .gpu/commit
  [ -z "$(git status --porcelain --untracked-files=no)" ] || echo "warning: uncommitted changes travel too"
  tree=$( (git ls-files -co --exclude-standard -z | xargs -0 cat) | wc -c)
  carried=$(( tree + $(find .gpu -type f -print0 | xargs -0 cat | wc -c) ))
  echo "carried: the tree $tree bytes + .gpu/ = $carried bytes (limit $CARRY_LIMIT)"
  [ "$carried" -le "$CARRY_LIMIT" ] || { echo "error: $carried bytes would travel, over $CARRY_LIMIT" >&2; exit 1; }
  exit 0
fi
export DREAMING_DATA_COMMIT="$(cat .gpu/commit 2>/dev/null)"
source benchmarks/loan.sh
export PYTHONPATH="$PWD/.gpu/site:$PYTHONPATH"
python benchmarks/fp16_weights.py unpack .gpu/inception.pack .gpu/inception-fp16.pt || exit 1
s0=$(date +%s)
timeout "$(( $(left) - 20 ))" python -m dreaming_data.cli quickstart --profile gpu-study --no-dvc \
  --data-path .gpu/cifar10-jpeg.tar.gz -S eval.fid_weights=.gpu/inception-fp16.pt \
  --archive "$OUT/results-gpu-study.tgz" "$@" 2>&1 | quiet | tee "$OUT/study.log"
echo "study wall: $(( $(date +%s) - s0 )) s" | tee -a "$OUT/study.log"
rm -f "$OUT"/.*.tmp  # an archive cut mid-write
t=$(( $(left) - 5 ))
if [ "$t" -gt 60 ]; then
  timeout "$t" python benchmarks/project_default.py --seconds 2 ${PROJECTION_ARGS:-} --out "$OUT/projection-default.json" \
    -S data.source=folder -S data.path=.gpu/cifar10-jpeg.tar.gz -S eval.fid_weights=.gpu/inception-fp16.pt "$@" \
    2>&1 | quiet | tee "$OUT/projection.log"
fi
t=$(( $(left) - 5 ))
if [ "$t" -gt 30 ]; then  # the default 35.7M UNet: a training step at the report's batch 64, guided sampling at 2,048
  timeout "$t" python benchmarks/ddpm_throughput.py --params params.yaml --batches 64 --sample-batch 2048 \
    --seconds 5 ${BENCH_ARGS:-} 2>&1 | quiet | tee "$OUT/bench.log"
fi
ls -la "$OUT"
