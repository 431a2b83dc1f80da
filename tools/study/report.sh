#!/usr/bin/env bash
# Tables of the synthetic-data study (EXPERIMENTS.md §3) from its finished
# seeds, with this repository's dbl (it reads test records; it trains nothing):
#
#   tools/study/report.sh
#
# 1. `dbl sweep summarize` every sweep under $STUDY/sweeps;
# 2. `dbl sweep compare` per data set and setting, with the OSS-RM sweep's
#    anchor (the baseline: branch 0 trains on the plain triplet loss) as
#    `--baseline`, so that every target (MSS and OAS included) is also paired
#    by seed with an independently trained baseline;
#    A sweep superseded by a rerun with a higher epoch cap (<name>-e<N>)
#    is left out of the comparison (its own summary stays);
# 3. tools/study/collect.sh (copies the summaries into experiments/), unless
#    COLLECT=0 (smoke tests of the drivers).
# The training itself is tools/study/run.sh's, with its own frozen binary.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
STUDY="${STUDY:-/work/study}"
DBL="${DBL:-$REPO/target/release/dbl}"
[ -x "$DBL" ] || (cd "$REPO" && cargo build --release)
shopt -s nullglob
sweeps=("$STUDY"/sweeps/*/)
[ ${#sweeps[@]} -gt 0 ] || { echo "no sweeps under $STUDY/sweeps" >&2; exit 1; }
for d in "${sweeps[@]}"; do
    if compgen -G "$d/seed*/test.json" > /dev/null; then
        "$DBL" sweep summarize "$d" > /dev/null
    fi
done
for ds in default hard; do
    for setting in main sum; do
        dirs=()
        for d in "$STUDY/sweeps/$ds-$setting-"*/; do
            compgen -G "$d/seed*/test.json" > /dev/null || continue
            # A sweep rerun with a higher epoch cap (<name>-e<N>, MSS and OAS
            # in phase 2) replaces the capped one in the comparison.
            if [[ "$(basename "$d")" != *-e[0-9]* ]] &&
                compgen -G "${d%/}-e[0-9]*/seed*/test.json" > /dev/null; then
                continue
            fi
            dirs+=("${d%/}")
        done
        [ ${#dirs[@]} -gt 0 ] || continue
        base="$STUDY/sweeps/$ds-$setting-oss_rm"
        extra=()
        [ -f "$base/summary.json" ] && extra=(--baseline "$base")
        "$DBL" sweep compare "${dirs[@]}" "${extra[@]}" --out "$STUDY/compare/$ds-$setting" > /dev/null
        echo "compared $ds-$setting: ${#dirs[@]} sweeps"
    done
done
if [ "${COLLECT:-1}" = 1 ]; then
    "$REPO/tools/study/collect.sh"
fi
