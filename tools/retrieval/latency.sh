#!/usr/bin/env bash
# Latency and QPS of `dbl serve` on a built index (BENCHMARKS.md "Retrieval"):
#   tools/retrieval/latency.sh IDX Q_T2I.jsonl Q_I2T.jsonl [Q_T2I_K20.jsonl Q_T2I_K200.jsonl]
# Query files hold one JSON body per line, e.g. {"text": "...", "k": 10, "shortlist": 100}
# and {"image_row": N, "k": 10, "shortlist": 100}. Needs `wrk` and `curl`. Pauses the
# background study (tools/study/run.sh) while it measures, and resumes it on exit.
# The first 15 s per direction warm the mapped pages and are reported as "warm".
set -u
cd "$(dirname "$0")/../.."
IDX=$1 T2I=$2 I2T=$3 T2I20=${4:-} T2I200=${5:-}
DBL=${DBL:-target/release/dbl}
LUA=tools/retrieval/load.lua
PORT=${PORT:-18080}
URL=http://127.0.0.1:$PORT
pkill -STOP -f /work/study/bin/dbl || true
trap 'pkill -CONT -f /work/study/bin/dbl || true' EXIT
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), load before: $(cat /proc/loadavg)"
"$DBL" serve --index "g=$IDX" --addr "127.0.0.1:$PORT" --workers 2 &
SP=$!
for _ in $(seq 1 120); do curl -sf "$URL/healthz" >/dev/null && break; sleep 1; done
run() { # label body-file path threads connections duration
    local out
    out=$(BODY_FILE=$2 wrk -t"$4" -c"$5" -d"$6" -s "$LUA" "$URL$3" 2>&1 | sed -n 's/^JSON //p')
    echo "$1 c=$5 $6: $out  load=$(cut -d' ' -f1 /proc/loadavg)"
}
run warm-t2i "$T2I" /v1/search/images 1 1 15s
run warm-i2t "$I2T" /v1/search/captions 1 1 15s
[ -n "$T2I20" ] && run "t2i K=20" "$T2I20" /v1/search/images 1 1 15s
run "t2i K=100" "$T2I" /v1/search/images 1 1 20s
[ -n "$T2I200" ] && run "t2i K=200" "$T2I200" /v1/search/images 1 1 15s
run "t2i K=100" "$T2I" /v1/search/images 2 4 15s
run "i2t K=100" "$I2T" /v1/search/captions 1 1 20s
run "i2t K=100" "$I2T" /v1/search/captions 2 4 15s
echo "server VmHWM: $(grep VmHWM /proc/$SP/status)"
kill -TERM $SP; wait $SP; echo "serve exit: $?"
