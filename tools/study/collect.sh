#!/usr/bin/env bash
# Copies the study's summaries (never checkpoints) from $STUDY (default
# /work/study) into experiments/synthetic-study/ of this repository:
# sweeps/<name>/summary.{md,json,png,svg} (and curves.{png,svg}) and
# compare/<ds-setting>/compare.*.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
STUDY="${STUDY:-/work/study}"
DEST="$REPO/experiments/synthetic-study"
copy() { # kind (sweeps|compare) stem (summary|compare)
    for d in "$STUDY/$1"/*/; do
        [ -f "$d/$2.md" ] || continue
        n=$(basename "$d")
        mkdir -p "$DEST/$1/$n"
        cp "$d/$2".{md,json,png,svg} "$DEST/$1/$n/"
        # A sweep's per-seed dev curves (dbl sweep writes them beside its summary).
        if [ -f "$d/curves.png" ]; then
            cp "$d"/curves.{png,svg} "$DEST/$1/$n/"
        fi
    done
}
copy sweeps summary
copy compare compare
echo "copied into $DEST"
