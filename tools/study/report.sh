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
# True when a sibling sweep <base>-e<M> with M above this sweep's cap (the
# -e<N> suffix; none: the phase-1 cap) has finished seeds. dir: a sweep folder.
superseded() {
    local name base cap other m
    name=$(basename "$1")
    if [[ "$name" =~ ^(.*)-e([0-9]+)$ ]]; then
        base="${BASH_REMATCH[1]}"
        cap="${BASH_REMATCH[2]}"
    else
        base="$name"
        cap=0
    fi
    for other in "$STUDY/sweeps/$base"-e*/; do
        m=$(basename "$other")
        m="${m##*-e}"
        [[ "$m" =~ ^[0-9]+$ ]] || continue
        if [ "$m" -gt "$cap" ] && compgen -G "${other%/}/seed*/test.json" > /dev/null; then
            return 0
        fi
    done
    return 1
}
for ds in default hard; do
    for setting in main sum; do
        dirs=()
        for d in "$STUDY/sweeps/$ds-$setting-"*/; do
            compgen -G "$d/seed*/test.json" > /dev/null || continue
            # A sweep rerun with a higher epoch cap (<name>-e<N>: MSS and OAS
            # in phases 2 and 3) replaces the capped one in the comparison.
            if superseded "${d%/}"; then
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
