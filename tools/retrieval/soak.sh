#!/usr/bin/env bash
# Soak test of `dbl serve` (issue 25 §5): mixed load with wrk on an index
# while, at the same time, other clients
#   - stall (part of a request head, or a head and part of a body, then nothing),
#   - disconnect mid-request (curl --max-time far below a search),
#   - send over-limit bodies (declared Content-Length over --body-limit, with
#     and without Expect: 100-continue),
#   - flood the server with 100 near-limit bodies at once every 5 s,
# and a file of a second served index ("spare", a copy) is replaced half-way.
# Well-formed requests go to index "g" only: every one must answer 200.
# At the end: SIGTERM, and the server must exit 0 within the deadline.
#
#   tools/retrieval/soak.sh IDX [SECONDS=600] [OUT_DIR=/tmp/dbl-soak]
#
# Prints one JSON line per load (wrk: requests, p50/p99 ms, non-2xx, timeouts),
# the server's peak and final RSS, what the adversaries got, and the shutdown
# time; exits 1 if a well-formed request failed, the spare index was not
# answered 503 after its file changed, or shutdown was not clean and timely.
# Needs wrk, curl and bash (/dev/tcp).
set -u
cd "$(dirname "$0")/../.."
IDX=$1
SECS=${2:-600}
W=${3:-/tmp/dbl-soak}
DBL=${DBL:-target/release/dbl}
PORT=${PORT:-18090}
URL=http://127.0.0.1:$PORT
LUA=tools/retrieval/load.lua
DEADLINE=10
rm -rf "$W" && mkdir -p "$W"
# The spare copy sits beside IDX: an index records its run relative to its
# own folder (`../run`), which a copy elsewhere could not resolve.
SPARE="${IDX%/}.soak-spare"
rm -rf "$SPARE" && cp -r "$IDX" "$SPARE"
trap 'rm -rf "$SPARE"' EXIT

# Query bodies: captions of the gallery as text queries, image rows for i2t.
n_img=$(sed -n 's/.*"n_images": *\([0-9]*\).*/\1/p' "$IDX/manifest.json")
head -n 500 "$IDX/captions.txt" | sed 's/\\/\\\\/g; s/"/\\"/g' |
    awk '{printf "{\"text\": \"%s\", \"k\": 10, \"index\": \"g\"}\n", $0}' > "$W/t2i.jsonl"
awk -v n="$n_img" 'BEGIN {srand(7); for (i = 0; i < 500; i++)
    printf "{\"image_row\": %d, \"k\": 10, \"index\": \"g\"}\n", int(rand() * n)}' > "$W/i2t.jsonl"
head -c $((5 << 20)) /dev/zero | tr '\0' ' ' > "$W/big.json"

"$DBL" serve --index "g=$IDX" --index "spare=$SPARE" --addr "127.0.0.1:$PORT" \
    --workers 2 --queue 64 --header-timeout 5 --body-timeout 5 \
    --shutdown-deadline "$DEADLINE" > "$W/serve.out" 2> "$W/serve.err" &
SP=$!
for _ in $(seq 1 600); do curl -sf "$URL/healthz" > /dev/null && break; sleep 1; done
curl -sf "$URL/healthz" > /dev/null || { echo "server did not start"; cat "$W/serve.err"; exit 1; }

END=$(( $(date +%s) + SECS ))
alive() { [ "$(date +%s)" -lt "$END" ]; }

# RSS every second.
( while alive; do grep VmRSS "/proc/$SP/status" | awk '{print $2}'; sleep 1; done ) > "$W/rss.kb" &
# Stallers: 20 connections at a time that send part of a head, 20 part of a body.
stall() { # what
    while alive; do
        for _ in $(seq 1 20); do
            (
                exec 3<> "/dev/tcp/127.0.0.1/$PORT" || exit 0
                if [ "$1" = head ]; then
                    printf 'POST /v1/search/images HTTP/1.1\r\nHost: x\r\n' >&3
                else
                    printf 'POST /v1/search/images HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"te' >&3
                fi
                sleep 8
            ) 2> /dev/null &
        done
        wait
    done
}
stall head &
stall body &
# Disconnectors: give up 20 ms into a search.
( while alive; do
    curl -s -o /dev/null --max-time 0.02 -H 'Content-Type: application/json' \
        -d '{"text": "a dog runs on the grass", "k": 10, "index": "g"}' "$URL/v1/search/images"
    echo "$?"
done ) > "$W/disconnect.codes" &
# Over-limit bodies: declared 5 MiB > 4 MiB limit, with and without Expect.
( while alive; do
    curl -s -o /dev/null -w '%{http_code}\n' --max-time 10 -H 'Content-Type: application/json' \
        --data-binary "@$W/big.json" "$URL/v1/search/images"
    curl -s -o /dev/null -w '%{http_code}\n' --max-time 10 -H 'Content-Type: application/json' \
        -H 'Expect: 100-continue' --data-binary "@$W/big.json" "$URL/v1/search/images"
    sleep 0.2
done ) > "$W/overlimit.codes" &
# Floods: every 5 s, 100 clients at once each send a 3.9 MiB body (within the
# limit; spaces, so 400 once read): the body budget (64 MiB) admits some and
# answers 503 to the rest, so the server's RSS stays bounded.
head -c $((3900 << 10)) /dev/zero | tr '\0' ' ' > "$W/near.json"
( while alive; do
    for _ in $(seq 1 100); do
        curl -s -o /dev/null -w '%{http_code}\n' --max-time 30 -H 'Expect:' \
            -H 'Content-Type: application/json' --data-binary "@$W/near.json" \
            "$URL/v1/search/captions" &
    done
    wait
    sleep 5
done ) > "$W/flood.codes" &
# Half-way: replace a file of the spare index (a new inode, same bytes).
( sleep $((SECS / 2))
  cp "$SPARE/images_global.npy" "$SPARE/images_global.npy.new"
  mv "$SPARE/images_global.npy.new" "$SPARE/images_global.npy"
  sleep 2
  curl -s -o /dev/null -w '%{http_code}\n' -H 'Content-Type: application/json' \
      -d '{"text": "a dog", "k": 3, "index": "spare"}' "$URL/v1/search/images" > "$W/spare.code"
  curl -s "$URL/healthz" > "$W/healthz.json" ) &

# The measured load: text -> image and image -> text at once.
BODY_FILE="$W/t2i.jsonl" wrk -t1 -c4 -d"${SECS}s" --timeout 10s -s "$LUA" "$URL/v1/search/images" \
    > "$W/wrk_t2i.txt" 2>&1 &
WT=$!
BODY_FILE="$W/i2t.jsonl" wrk -t1 -c4 -d"${SECS}s" --timeout 10s -s "$LUA" "$URL/v1/search/captions" \
    > "$W/wrk_i2t.txt" 2>&1 &
WI=$!
wait $WT $WI
sleep 1
RSS_FINAL=$(grep VmRSS "/proc/$SP/status" | awk '{print $2}')
curl -s "$URL/metrics" > "$W/metrics.txt"
T0=$(date +%s.%N)
kill -TERM $SP
wait $SP
CODE=$?
T1=$(date +%s.%N)
wait 2> /dev/null

fail=0
for d in t2i i2t; do
    line=$(sed -n 's/^JSON //p' "$W/wrk_$d.txt")
    echo "$d: $line"
    echo "$line" | grep -q '"errors_status": 0, "errors_timeout": 0' || fail=1
    grep -q "Socket errors" "$W/wrk_$d.txt" && { grep "Socket errors" "$W/wrk_$d.txt"; fail=1; }
done
echo "rss_kb: peak $(sort -n "$W/rss.kb" | tail -1), first $(head -1 "$W/rss.kb"), final $RSS_FINAL"
echo "over-limit answers: $(sort "$W/overlimit.codes" | uniq -c | tr '\n' ' ')"
echo "flood answers (3.9 MiB bodies): $(sort "$W/flood.codes" | uniq -c | tr '\n' ' ')"
echo "disconnects: $(wc -l < "$W/disconnect.codes") (curl exit codes: $(sort "$W/disconnect.codes" | uniq -c | tr '\n' ' '))"
echo "spare after replace: $(cat "$W/spare.code" 2> /dev/null) healthz: $(head -c 300 "$W/healthz.json" 2> /dev/null)"
grep -q '^503$' "$W/spare.code" || fail=1
grep -v '^413$' "$W/overlimit.codes" | grep -q . && fail=1
grep '^dbl_requests_in_flight' "$W/metrics.txt"
printf 'shutdown: exit %s after %.2f s (deadline %s s)\n' "$CODE" "$(echo "$T1 - $T0" | bc)" "$DEADLINE"
[ "$CODE" = 0 ] || fail=1
[ "$(echo "$T1 - $T0 < $DEADLINE + 2" | bc)" = 1 ] || fail=1
tail -n 3 "$W/serve.err"
[ "$fail" = 0 ] && echo "soak: PASS" || echo "soak: FAIL"
exit "$fail"
