#!/usr/bin/env bash
# Second phase of the synthetic-data study (EXPERIMENTS.md §3, "Epoch cap"):
# the first phase capped every run at 4 epochs, and about half of the runs
# were still improving on dev at the cap. This phase raises the cap to
# $CAP epochs (patience 2 unchanged), resumable like tools/study/run.sh:
#
#   setsid nice -n 15 tools/study/extend.sh >> /work/study/log 2>&1 &
#
# Phase 3 raises the cap once more for the seeds that 12 epochs still cut
# short (OSS seeds that patience stopped are re-scored only; MSS/OAS rerun
# only where the 12-epoch sweep had such a seed):
#
#   CAP=24 PREV=12 setsid nice -n 15 tools/study/extend.sh >> /work/study/log 2>&1 &
#
# - OSS sweeps (baseline = the OSS anchor, RM, AM, K = 3; both settings, both
#   data sets): `dbl sweep --extend-epochs $CAP` on the same folders. Seeds
#   that reached the 4-epoch cap resume from their last checkpoint, exactly as
#   if the cap had been $CAP from the start; patience-stopped seeds stay.
# - MSS and OAS cannot be extended (MSS's EMA schedule spans all epochs, OAS
#   trains in two stages): new sweeps `<data>-main-{mss,oas}_am-e$CAP`, 3 seeds.
# It waits for the study lock (run.sh first), takes its own frozen binary
# ($STUDY/bin-extend/dbl) on the first run, and ends with tools/study/report.sh.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
STUDY="${STUDY:-/work/study}"
CAP="${CAP:-12}"
# The cap of the sweeps being superseded (4 in phase 1, 12 after phase 2).
PREV="${PREV:-4}"
# Smoke tests only, as in run.sh (must match what run.sh was given).
EXTRA_SETS="${EXTRA_SETS:-}"
extra=()
for kv in $EXTRA_SETS; do extra+=(--set "$kv"); done
exec 9>"$STUDY/lock"
flock 9
log() { echo "$(date -u +%FT%TZ) $*"; }
if [ ! -x "$STUDY/bin-extend/dbl" ]; then
    (cd "$REPO" && cargo build --release)
    mkdir -p "$STUDY/bin-extend"
    cp "$REPO/target/release/dbl" "$STUDY/bin-extend/dbl.tmp"
    mv "$STUDY/bin-extend/dbl.tmp" "$STUDY/bin-extend/dbl"
    git -C "$REPO" rev-parse HEAD > "$STUDY/bin-extend/commit"
fi
DBL="$STUDY/bin-extend/dbl"
log "extension driver start (cap $CAP): binary from commit $(cat "$STUDY/bin-extend/commit")"

run() { # log label, then the sweep command
    local label=$1; shift
    log "$label"
    local t0=$SECONDS
    "$DBL" sweep "$@" "${extra[@]}"
    log "$label done in $((SECONDS - t0)) s (this invocation)"
}
for setting in main sum; do
    for ds in default hard; do
        for name in oss_rm oss_am oss_k3_am; do
            out="$STUDY/sweeps/$ds-$setting-$name"
            [ -f "$out/sweep.json" ] || continue
            seeds=0..5
            [ "$setting" = sum ] || [ "$name" = oss_k3_am ] && seeds=0..3
            run "extend $out to $CAP epochs" --config "$STUDY/configs/$setting/$name.toml" \
                --seeds "$seeds" --set "data=\"$STUDY/data/$ds\"" --out "$out" --extend-epochs "$CAP"
        done
    done
done
# MSS/OAS at a cap above $PREV (phase 3: CAP=24 PREV=12) run again only if
# the cap-$PREV sweep had a seed that its cap ended before patience.
needed() { # sweep name without the -e suffix
    [ "$CAP" -gt "$PREV" ] || return 0
    local prev="$1-e$PREV"
    [ -d "$STUDY/sweeps/$prev" ] || return 0
    local cut
    cut=$(python3 "$REPO/tools/study/curves.py" --study "$STUDY" --only "$prev" --cap "$PREV" --cut-count)
    if [ "${cut:-1}" -gt 0 ]; then return 0; fi
    log "$prev: no seed reached its cap before patience; no rerun at $CAP"
    return 1
}
for ds in default hard; do
    needed "$ds-main-mss_am" &&
    run "sweep $ds-main-mss_am-e$CAP" --config "$STUDY/configs/main/mss_am.toml" --seeds 0..3 \
        --set "data=\"$STUDY/data/$ds\"" --set "epochs=$CAP" --out "$STUDY/sweeps/$ds-main-mss_am-e$CAP"
    needed "$ds-main-oas_am" &&
    run "sweep $ds-main-oas_am-e$CAP" --config "$STUDY/configs/main/oas_am.toml" --seeds 0..3 \
        --set "data=\"$STUDY/data/$ds\"" --set "epochs=$CAP" --set "oas.epochs=$CAP" \
        --out "$STUDY/sweeps/$ds-main-oas_am-e$CAP"
done
# A smoke test (EXTRA_SETS) must not copy its tables into the repository.
collect=1
[ -z "$EXTRA_SETS" ] || collect=0
DBL="$DBL" STUDY="$STUDY" COLLECT=$collect "$REPO/tools/study/report.sh"
log "extension complete"
