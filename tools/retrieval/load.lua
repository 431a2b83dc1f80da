-- wrk script: POSTs JSON bodies, one per line of the file in env BODY_FILE,
-- each thread cycling through them from its own offset; prints one JSON line
-- with QPS and latency percentiles at the end.
--   BODY_FILE=q.jsonl wrk -t2 -c4 -d30s -s load.lua http://127.0.0.1:8080/v1/search/images
local bodies = {}
for line in io.lines(os.getenv("BODY_FILE")) do
  if #line > 0 then bodies[#bodies + 1] = line end
end
local counter = 0
local i = 0

function setup(thread)
  counter = counter + 1
  thread:set("i", counter * 7919)
end

function request()
  i = i + 1
  local body = bodies[(i % #bodies) + 1]
  return wrk.format("POST", nil, { ["Content-Type"] = "application/json" }, body)
end

function done(summary, latency, requests)
  io.write(string.format(
    "JSON {\"requests\": %d, \"duration_s\": %.3f, \"qps\": %.2f, \"p50_ms\": %.2f, \"p90_ms\": %.2f, " ..
    "\"p99_ms\": %.2f, \"max_ms\": %.2f, \"errors_status\": %d, \"errors_timeout\": %d}\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1e3, latency:percentile(90) / 1e3, latency:percentile(99) / 1e3,
    latency.max / 1e3, summary.errors.status, summary.errors.timeout))
end
