#!/usr/bin/env bash
# Copies the study's summaries (never checkpoints) from $STUDY (default
# /work/study) into experiments/synthetic-study/ of this repository:
# sweeps/<name>/summary.{md,json,png,svg} and compare/<ds-setting>/compare.*.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
STUDY="${STUDY:-/work/study}"
DEST="$REPO/experiments/synthetic-study"
for d in "$STUDY"/sweeps/*/; do
    [ -f "$d/summary.json" ] || continue
    n=$(basename "$d")
    mkdir -p "$DEST/sweeps/$n"
    cp "$d"/summary.{md,json,png,svg} "$DEST/sweeps/$n/"
done
for d in "$STUDY"/compare/*/; do
    [ -f "$d/compare.md" ] || continue
    n=$(basename "$d")
    mkdir -p "$DEST/compare/$n"
    cp "$d"/compare.{md,json,png,svg} "$DEST/compare/$n/"
done
echo "copied into $DEST"
