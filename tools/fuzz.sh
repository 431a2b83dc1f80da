#!/usr/bin/env bash
# Coverage-guided fuzzing of every parser of untrusted input (issue 13):
#   tools/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
# Targets: npy_header vocab_json safetensors_model tokenizer config_toml
# (HTTP request bodies: dbl has no HTTP server yet; add a target with it).
# Uses cargo-fuzz (libFuzzer) without a sanitizer (`-s none`). cargo-fuzz
# passes nightly-only flags; on stable Rust RUSTC_BOOTSTRAP=1 allows them.
# Corpora: fuzz/corpus/TARGET (seeded from tests/fixtures where useful);
# crashes: fuzz/artifacts/TARGET. A crasher found becomes a regression test
# in the normal suite (tests/fuzz_regressions.rs), minimised with
# `cargo fuzz tmin`. Runs one job, niced.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-600}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(npy_header vocab_json safetensors_model tokenizer config_toml)
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
cd fuzz
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    echo "== $t: ${secs}s"
    nice -n 15 cargo fuzz run -s none --jobs 1 "$t" "corpus/$t" -- \
        -max_total_time="$secs" -max_len=65536 -rss_limit_mb=4096 \
        -print_final_stats=1 2>&1 | tail -n 25 || echo "== $t: stopped with a finding (see fuzz/artifacts/$t)"
done
