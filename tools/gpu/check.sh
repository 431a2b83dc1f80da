#!/usr/bin/env bash
# tools/gpu/check.sh [smoke|full] — the GPU check of issue #16, run ON the GPU machine
# (NVIDIA driver, CUDA 13 libraries, PyTorch; no Rust, no network). Needs, relative to
# the root it runs from (the repository, or the folder tools/gpu/stage.sh fills):
#   bin/dbl          release build with --features cuda (else target/release/dbl)
#   bin/cuda_parity  the tests/cuda_parity.rs test binary (stage.sh builds it)
#   fixtures/        tests/fixtures/model/* (else tests/fixtures/model)
#   tools/reference/bench_peer.py, tools/bench/{configs,flops}.py, tools/gpu/*.py
# Steps: GPU/driver/CUDA facts; parity (GPU vs CPU engine and PyTorch fixtures, 1e-5);
# measured ceilings (f32 GEMM TF32 off, copy); timings dbl vs the PyTorch peer
# (bench_peer.py --device cuda), each a JSON line in $OUT/results.jsonl; the table last.
# smoke: a 200 x 1000 split; full: F30K-shaped 1000 x 5000 (scan, vse) and the
# COCO-5K-shaped 5000 x 25000 (dbl; the peer on its first 1000 captions, its loop being
# ~25x slower). Writes to $OUT (default ./gpu-out). Budget: smoke < 3 min, full < 8 min.
set -uo pipefail
MODE=${1:-full}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=${OUT:-$ROOT/gpu-out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/check.log") 2>&1
DBL=$ROOT/bin/dbl
[ -x "$DBL" ] || DBL=$ROOT/target/release/dbl
PARITY=$ROOT/bin/cuda_parity
if [ -d "$ROOT/fixtures" ]; then export DBL_FIXTURES=$ROOT/fixtures; fi
PEER=$ROOT/tools/reference/bench_peer.py
RES=$OUT/results.jsonl
: >"$RES"
export PYTHONUNBUFFERED=1

# CUDA libraries for the dynamically loaded cuBLAS / NVRTC: the wheels next to PyTorch
# first (they match its CUDA), then a toolkit under /usr/local.
LIBS=$(python3 - <<'PY'
import glob, site
pats = [sp + "/nvidia/*/lib" for sp in site.getsitepackages()] + [sp + "/nvidia/*/lib" for sp in [site.getusersitepackages()]]
pats += ["/usr/local/cuda*/lib64", "/usr/local/cuda*/targets/x86_64-linux/lib"]
dirs = []
for p in pats:
    for d in sorted(glob.glob(p)):
        if (glob.glob(d + "/libnvrtc.so*") or glob.glob(d + "/libcublas.so*")) and d not in dirs:
            dirs.append(d)
print(":".join(dirs))
PY
)
export LD_LIBRARY_PATH=$LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

echo "== machine ($(date -u +%FT%TZ), mode $MODE)"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader || true
nvidia-smi | grep -m1 "CUDA Version" || true
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version())" || true
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
lscpu | grep -m1 "Model name" || true

echo "== parity (tests/cuda_parity.rs: GPU vs CPU engine and PyTorch fixtures, tol 1e-5)"
if [ -x "$PARITY" ]; then
  DBL_REQUIRE_GPU=1 timeout 240 "$PARITY" --nocapture --test-threads 1 2>&1 | tee "$OUT/parity.txt"
  echo "parity exit: ${PIPESTATUS[0]}"
else
  echo "no $PARITY (run tools/gpu/stage.sh)"
fi

echo "== ceilings (tools/gpu/peaks.py)"
timeout 120 python3 "$HERE/peaks.py" | tee "$OUT/peaks.json"

run_dbl() {  # config images captions warmup reps
  echo "-- dbl $1 $2 x $3"
  timeout 300 "$DBL" bench --device cuda --config "$1" --images "$2" --captions "$3" \
    --warmup "$4" --reps "$5" --threads 1 --json | tee -a "$RES"
}
run_peer() {  # config images captions warmup reps timeout
  echo "-- pytorch $1 $2 x $3"
  timeout "$6" python3 "$PEER" --device cuda --config "$1" --images "$2" --captions "$3" \
    --warmup "$4" --reps "$5" --threads 1 --json | tee -a "$RES"
  local rc=${PIPESTATUS[0]}
  [ "$rc" = 124 ] && echo "pytorch $1 $2 x $3: stopped after $6 s (timeout)"
}

echo "== timings"
if [ "$MODE" = smoke ]; then
  run_dbl scan-score 200 1000 1 3
  run_peer scan-score 200 1000 0 1 120
  run_dbl vse-score 200 1000 1 3
else
  run_dbl scan-score 1000 5000 1 3
  run_dbl vse-score 1000 5000 1 3
  run_peer vse-score 1000 5000 0 3 60
  run_dbl scan-score 5000 25000 0 1
  run_dbl scan-score 5000 1000 1 3
  run_peer scan-score 1000 5000 0 1 150
  run_peer scan-score 5000 1000 0 1 100
fi
echo "== table"
python3 "$HERE/summary.py" "$RES" "$OUT/peaks.json" | tee "$OUT/summary.txt"
