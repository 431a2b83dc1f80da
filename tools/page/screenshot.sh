#!/usr/bin/env bash
# Regenerates docs/search-page.png, the README's picture of the search page,
# from a trained run, with the browser test's own WebDriver code
# (tests/search_page.rs, `screenshot_of_a_trained_index`): it serves an
# index of the test split of a `dbl demo` folder's seed-0 run (the DBL
# target branch), types the split's first caption, submits, opens the first
# hit's explanation and saves the screenshot.
#
#   tools/page/screenshot.sh [DEMO_DIR=target/page-demo] [OUT=docs/search-page.png]
#
# A DEMO_DIR without results.json is first filled by `dbl demo --quick`
# (about 2 minutes on 2 cores: 2 epochs on the easy synthetic data); give the
# folder of a full `dbl demo` run to picture that instead. Needs Debian's
# chromium and chromium-driver.
set -euo pipefail
cd "$(dirname "$0")/../.."
DEMO=${1:-target/page-demo}
OUT=${2:-docs/search-page.png}
TARGET=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet
DBL=$TARGET/release/dbl
if [ ! -e "$DEMO/results.json" ]; then
  "$DBL" demo --quick --out "$DEMO"
fi
IDX=$DEMO/page-index
rm -rf "$IDX"
"$DBL" index build --run "$DEMO/oss/seed0" --images "$DEMO/data/test_ims.npy" \
  --captions "$DEMO/data/test_caps.txt" --out "$IDX"
QUERY=$(head -n 1 "$DEMO/data/test_caps.txt")
case $OUT in /*) ABS=$OUT ;; *) ABS=$PWD/$OUT ;; esac
DBL_PAGE_INDEX=$(realpath "$IDX") DBL_PAGE_QUERY=$QUERY DBL_PAGE_SCREENSHOT=$ABS \
  cargo test --release --quiet --test search_page -- --ignored --exact screenshot_of_a_trained_index
echo "wrote $OUT (index $IDX, query: $QUERY)"
