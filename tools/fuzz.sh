#!/usr/bin/env bash
# Coverage-guided fuzzing of every parser of untrusted input (issue 13):
#   tools/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
# Targets: npy_header vocab_json safetensors_model tokenizer config_toml
# http_request (requests to `dbl serve`'s router; needs an index: DBL_FUZZ_INDEX,
# or a tiny one is trained and built here under fuzz/target/http-index).
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
    targets=(npy_header vocab_json safetensors_model tokenizer config_toml http_request)
fi
if [[ " ${targets[*]} " == *" http_request "* ]] && [ -z "${DBL_FUZZ_INDEX:-}" ]; then
    # A tiny scan-ave run (2 training steps) and its index of the synthetic
    # test split: enough to reach every handler and both search stages.
    w="$PWD/fuzz/target/http-index"
    if [ ! -f "$w/idx/manifest.json" ]; then
        rm -rf "$w" && mkdir -p "$w"
        cargo build --release --quiet
        dbl="${CARGO_TARGET_DIR:-target}/release/dbl"
        "$dbl" synth --out "$w/data" --train 20 --dev 12 --test 12 --seed 0
        printf '%s\n' "data = \"$w/data\"" "out = \"$w/run\"" "epochs = 1" \
            "max_steps_per_epoch = 2" "batch_size = 8" "threads = 1" \
            'regime = "baseline"' "[model]" 'backbone = "scan-ave"' \
            "embed = 16" "word_dim = 8" "sim_dim = 8" > "$w/run.toml"
        "$dbl" train --config "$w/run.toml"
        "$dbl" index build --run "$w/run" --images "$w/data/test_ims.npy" \
            --captions "$w/data/test_caps.txt" --out "$w/idx" --threads 1
    fi
    export DBL_FUZZ_INDEX="$w/idx"
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
cd fuzz
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    echo "== $t: ${secs}s"
    # Its own target dir (fuzz/target): a CARGO_TARGET_DIR in the environment
    # would send the instrumented build elsewhere and rebuild everything.
    env -u CARGO_TARGET_DIR nice -n 15 cargo fuzz run -s none --jobs 1 "$t" "corpus/$t" -- \
        -max_total_time="$secs" -max_len=65536 -rss_limit_mb=4096 \
        -print_final_stats=1 2>&1 | tail -n 25 || echo "== $t: stopped with a finding (see fuzz/artifacts/$t)"
done
