#!/usr/bin/env bash
# Runs the kernels of src/engine/cuda/kernels.cu on the CPU (tools/gpu/emulate/harness.cpp,
# threads + barriers standing in for a block) against double-precision references.
# Needs g++ >= 12 (C++20 <barrier>); no GPU, no CUDA. Prints the scores and the worst error.
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed -E 's/extern __shared__ (\w+) (\w+)\[\];/\1* \2 = (\1*)g_dyn_smem;/' ../../../src/engine/cuda/kernels.cu >"$tmp/kernels_host.inc"
g++ -std=c++20 -O1 -pthread -w -I"$tmp" -I. harness.cpp -o "$tmp/harness"
"$tmp/harness"
