#!/usr/bin/env bash
# The synthetic-data study of EXPERIMENTS.md (issue #11 §4), resumable.
#
#   setsid nice -n 15 tools/study/run.sh >> /work/study/log 2>&1 &
#
# Everything it writes lives in $STUDY (default /work/study), outside any
# worktree, so it survives across sessions: bin/dbl (a copy of the binary,
# taken on the first run), configs/ (a copy of configs/synthetic, taken on the
# first run: a sweep refuses a changed config), data/{default,hard}, sweeps/…,
# compare/…. Run it again to continue: finished seeds are skipped and an
# interrupted seed resumes from its last checkpoint (dbl sweep). One driver at
# a time (flock). tools/study/collect.sh copies the summaries into the repo.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
STUDY="${STUDY:-/work/study}"
TRAIN_IMAGES="${TRAIN_IMAGES:-800}"
# Extra space-separated key=value overrides for every sweep (smoke tests only,
# e.g. EXTRA_SETS="model.backbone=tiny max_steps_per_epoch=2"; empty for the study).
EXTRA_SETS="${EXTRA_SETS:-}"
mkdir -p "$STUDY"
exec 9>"$STUDY/lock"
if ! flock -n 9; then
    echo "$(date -u +%FT%TZ) another driver holds $STUDY/lock; exiting"
    exit 0
fi
log() { echo "$(date -u +%FT%TZ) $*"; }

if [ ! -x "$STUDY/bin/dbl" ]; then
    (cd "$REPO" && cargo build --release)
    mkdir -p "$STUDY/bin"
    cp "$REPO/target/release/dbl" "$STUDY/bin/dbl.tmp" && mv "$STUDY/bin/dbl.tmp" "$STUDY/bin/dbl"
    git -C "$REPO" rev-parse HEAD > "$STUDY/bin/commit"
fi
if [ ! -d "$STUDY/configs" ]; then
    cp -r "$REPO/configs/synthetic" "$STUDY/configs.tmp" && mv "$STUDY/configs.tmp" "$STUDY/configs"
fi
DBL="$STUDY/bin/dbl"
log "study driver start: binary from commit $(cat "$STUDY/bin/commit" 2>/dev/null || echo '?')"

# Data: the calibrated default and the harder variant, 800 training images each.
for ds in default hard; do
    d="$STUDY/data/$ds"
    if [ ! -f "$d/.done" ]; then
        rm -rf "$d"
        flag=""; [ "$ds" = hard ] && flag="--hard"
        log "generating $d"
        "$DBL" synth --out "$d" --train "$TRAIN_IMAGES" --seed 0 $flag
        touch "$d/.done"
    fi
done

sweep() { # dataset setting config seeds
    local ds=$1 setting=$2 name=$3 seeds=$4
    local out="$STUDY/sweeps/$ds-$setting-$name"
    log "sweep $out seeds $seeds"
    local t0=$SECONDS
    local extra=()
    for kv in $EXTRA_SETS; do extra+=(--set "$kv"); done
    "$DBL" sweep --config "$STUDY/configs/$setting/$name.toml" --seeds "$seeds" \
        --set "data=\"$STUDY/data/$ds\"" "${extra[@]}" --out "$out"
    log "sweep $out done in $((SECONDS - t0)) s (this invocation)"
}

# Most informative first: baseline (the OSS anchor) vs OSS-RM / OSS-AM, 5 seeds.
for ds in default hard; do
    sweep $ds main oss_rm 0..5
    sweep $ds main oss_am 0..5
done
# MSS, OAS, OSS K = 3: 3 seeds.
for ds in default hard; do
    sweep $ds main mss_am 0..3
    sweep $ds main oas_am 0..3
    sweep $ds main oss_k3_am 0..3
done
# Second setting: sum over negatives throughout, 3 seeds (to fit the 4-hour budget).
for ds in default hard; do
    sweep $ds sum oss_rm 0..3
    sweep $ds sum oss_am 0..3
done

for ds in default hard; do
    for setting in main sum; do
        dirs=$(ls -d "$STUDY/sweeps/$ds-$setting-"* 2>/dev/null || true)
        [ -n "$dirs" ] && "$DBL" sweep compare $dirs --out "$STUDY/compare/$ds-$setting"
    done
done
log "study complete"
