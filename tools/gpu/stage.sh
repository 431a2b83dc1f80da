#!/usr/bin/env bash
# tools/gpu/stage.sh [DEST] — builds what tools/gpu/check.sh needs on a GPU machine that
# has no Rust toolchain, and copies it to DEST (default ./.gpu, git-ignored by the
# caller): bin/dbl and bin/cuda_parity (release, --features cuda, stripped), the model
# fixtures, the peer (tools/reference, tools/bench/{configs,flops}.py) and tools/gpu.
# Then, on the GPU machine, from the folder holding DEST:  bash DEST/tools/gpu/check.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
DEST=${1:-.gpu}
cargo build --release --features cuda --bin dbl
PARITY=$(cargo test --release --features cuda --test cuda_parity --no-run --message-format=json \
  | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "cuda_parity" and m.get("executable"):
        print(m["executable"])')
rm -rf "$DEST"
mkdir -p "$DEST/bin" "$DEST/fixtures" "$DEST/tools/bench" "$DEST/tools/gpu"
cp target/release/dbl "$DEST/bin/dbl"
cp "$PARITY" "$DEST/bin/cuda_parity"
strip "$DEST/bin/dbl" "$DEST/bin/cuda_parity"
cp tests/fixtures/model/*.safetensors "$DEST/fixtures/"
cp -r tools/reference "$DEST/tools/reference"
cp tools/bench/configs.py tools/bench/flops.py "$DEST/tools/bench/"
cp tools/gpu/*.sh tools/gpu/*.py "$DEST/tools/gpu/"
find "$DEST" -name __pycache__ -prune -exec rm -rf {} +
du -sh "$DEST"
