#!/usr/bin/env bash
# The power study of issue #30 (EXPERIMENTS.md "Evidence with power"),
# resumable across sessions and machines:
#
#   setsid nohup nice -n 19 tools/study/power.sh >> /work/study2/log 2>&1 < /dev/null &
#
# Everything heavy lives in $STUDY (default /work/study2), outside the
# repository: a copy of dbl built from the protocol's commit (DBL_COMMIT) on the first run
# (bin/dbl, bin/commit), a copy of configs/synthetic, the data
# (data/hard: `dbl synth --hard --train 800 --dev $DEV --test $TEST --seed 0`),
# one `dbl sweep` folder per dbl row (sweeps/<row>) and one run folder per
# PyTorch seed (pytorch/<row>/seed<s>).
# After each finished seed its small record (per-epoch dev and test rSum of
# both branches, best-on-dev, the late-epoch estimate; no checkpoint) is
# copied to experiments/power-study/<row>/seed<s>.json in the repository
# (tools/study/power_extract.py); a seed with that file is skipped, so a
# fresh machine with a checkout continues where the last one stopped (an
# unfinished seed on a machine that is gone starts over). One driver at a
# time (flock). The order, fixed before any run was looked at: for s in 0..9,
# dbl hard/sum OSS-RM seed s then PyTorch hard/sum OSS-RM seed s (s < 5);
# then dbl hard/main OSS-RM, hard/sum OSS-AM, hard/main OSS-AM, seeds 0..9 each.
# At the end it writes experiments/power-study/report.md (power_report.py).
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
STUDY="${STUDY:-/work/study2}"
DEST="${DEST:-$REPO/experiments/power-study}"
DEV="${DEV:-500}"
TEST="${TEST:-1000}"
SEEDS="${SEEDS:-10}"
TORCH_SEEDS="${TORCH_SEEDS:-5}"
CAP="${CAP:-24}"
BURN_IN="${BURN_IN:-5}"
PY="${PY:-/work/venv/bin/python}"
# The protocol's commit (EXPERIMENTS.md §4): the dbl binary of every dbl seed.
DBL_COMMIT="${DBL_COMMIT:-fa0f1a44080b24b2742b8ac39cf00f1e6dfa5194}"
# Smoke tests only (e.g. EXTRA_SETS="max_steps_per_epoch=2", with DEST and STUDY elsewhere).
EXTRA_SETS="${EXTRA_SETS:-}"
TORCH_EXTRA="${TORCH_EXTRA:-}"
mkdir -p "$STUDY" "$DEST"
exec 9>"$STUDY/lock"
if ! flock -n 9; then
    echo "$(date -u +%FT%TZ) another driver holds $STUDY/lock; exiting"
    exit 0
fi
log() { echo "$(date -u +%FT%TZ) $*"; }

if [ ! -x "$STUDY/bin/dbl" ]; then
    # Every dbl seed is trained by the binary of one commit, the protocol's
    # (DBL_COMMIT), whatever the checkout's HEAD: later commits restructured the
    # training code, and a study must not mix binaries. A fresh machine builds
    # that commit from a detached worktree under $STUDY. DBL_BIN: a binary
    # already built from DBL_COMMIT (saves the build).
    want="$(git -C "$REPO" rev-parse "$DBL_COMMIT^{commit}")"
    bin="${DBL_BIN:-}"
    if [ -z "$bin" ]; then
        src="$STUDY/src"
        if [ "$(git -C "$src" rev-parse HEAD 2>/dev/null)" != "$want" ]; then
            rm -rf "$src"
            git -C "$REPO" worktree prune
            git -C "$REPO" worktree add --detach "$src" "$want"
        fi
        log "building dbl at $want in $src"
        (cd "$src" && CARGO_TARGET_DIR="$STUDY/target" cargo build --release --bin dbl)
        bin="$STUDY/target/release/dbl"
    fi
    mkdir -p "$STUDY/bin"
    cp "$bin" "$STUDY/bin/dbl.tmp" && mv "$STUDY/bin/dbl.tmp" "$STUDY/bin/dbl"
    echo "$want" > "$STUDY/bin/commit"
fi
if [ ! -d "$STUDY/configs" ]; then
    cp -r "$REPO/configs/synthetic" "$STUDY/configs.tmp" && mv "$STUDY/configs.tmp" "$STUDY/configs"
fi
DBL="$STUDY/bin/dbl"
COMMIT="$(cat "$STUDY/bin/commit")"
for rec in "$DEST"/hard-*/seed*.json; do
    [ -f "$rec" ] || continue
    used="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["commit"])' "$rec")"
    if [ "$used" != "$COMMIT" ]; then
        echo "$(date -u +%FT%TZ) $rec was trained by dbl at $used but $DBL is from $COMMIT;" \
            "remove $STUDY/bin and rerun (it builds DBL_COMMIT)" >&2
        exit 1
    fi
done
log "power study start: dbl from commit $COMMIT, dev $DEV / test $TEST images, $SEEDS seeds"
data="$STUDY/data/hard"
if [ ! -f "$data/.done" ]; then
    rm -rf "$data"
    log "generating $data"
    "$DBL" synth --out "$data" --hard --train 800 --dev "$DEV" --test "$TEST" --seed 0
    touch "$data/.done"
fi

record() { # impl dir row seed: copy the seed's record into the repository
    local out="$DEST/$3/seed$4.json"
    mkdir -p "$DEST/$3"
    python3 "$REPO/tools/study/power_extract.py" "$1" "$2" --row "$3" --commit "$5" > "$out.tmp"
    mv "$out.tmp" "$out"
    log "recorded $out"
}

dbl_seed() { # setting name seed
    local row="hard-$1-$2" s=$3
    [ -f "$DEST/$row/seed$s.json" ] && return 0
    local extra=()
    for kv in $EXTRA_SETS; do extra+=(--set "$kv"); done
    log "dbl $row seed $s"
    local t0=$SECONDS
    "$DBL" sweep --config "$STUDY/configs/$1/$2.toml" --seeds "$s" \
        --set "data=\"$data\"" --set "epochs=$CAP" --set "test_after_epoch=$BURN_IN" \
        "${extra[@]}" --out "$STUDY/sweeps/$row"
    log "dbl $row seed $s done in $((SECONDS - t0)) s (this invocation)"
    record dbl "$STUDY/sweeps/$row/seed$s" "$row" "$s" "$COMMIT"
}

torch_seed() { # seed: the PyTorch port, hard/sum OSS-RM
    local row="pytorch-hard-sum-oss_rm" s=$1
    [ -f "$DEST/$row/seed$s.json" ] && return 0
    if ! "$PY" -c "import torch" 2>/dev/null; then
        log "no torch in $PY; $row seed $s left for a later run"
        return 0
    fi
    log "pytorch $row seed $s"
    local t0=$SECONDS
    # shellcheck disable=SC2086
    "$PY" "$REPO/tools/reference/train_oss.py" --data "$data" --out "$STUDY/pytorch/$row/seed$s" \
        --seed "$s" --epochs "$CAP" --patience 2 --lr 1e-3 --batch 32 --embed 256 --threads 2 \
        --base sum --peer relative --test-after-epoch "$BURN_IN" $TORCH_EXTRA
    log "pytorch $row seed $s done in $((SECONDS - t0)) s (this invocation)"
    record pytorch "$STUDY/pytorch/$row/seed$s" "$row" "$s" "$(git -C "$REPO" rev-parse HEAD)"
}

# The contested row first, its PyTorch replication interleaved; then the others.
for ((s = 0; s < SEEDS; s++)); do
    dbl_seed sum oss_rm "$s"
    if [ "$s" -lt "$TORCH_SEEDS" ]; then torch_seed "$s"; fi
done
for row in "main oss_rm" "sum oss_am" "main oss_am"; do
    for ((s = 0; s < SEEDS; s++)); do
        # shellcheck disable=SC2086
        dbl_seed $row "$s"
    done
done
python3 "$REPO/tools/study/power_report.py" --dest "$DEST"
log "power study complete"
