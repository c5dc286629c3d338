# Shared by the one-loan GPU scripts (source it from the repository root): the environment, $OUT, a time budget
# (left: seconds remaining of $BUDGET), a filter for progress-bar noise, and the GPU's name in $OUT/gpu.txt.
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
OUT="${OUT:-/tmp/gpu-out}"
BUDGET="${BUDGET:-570}"
mkdir -p "$OUT"
t0=$(date +%s)
left() { echo $(( BUDGET - ($(date +%s) - t0) )); }
quiet() { tr '\r' '\n' | grep --line-buffered -v -E "it/s\]|step/s\]|img/s\]|^\s*$|Warning|warnings.warn"; }
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
else
  echo "no nvidia-smi on this machine" | tee "$OUT/gpu.txt"
fi
