-- wrk script: POST /v1/route, each request with the next prompt of a file of JSON bodies
-- (one `{"prompt": ...}` a line), and one machine-readable result line at the end.
--
--   wrk --latency -t1 -c16 -d10s -s bench/route.lua http://127.0.0.1:8700 -- BODIES.jsonl
--
-- Used by bench/bench_production.py, which writes BODIES from the prompts it measures.

local bodies = {}
local next_body = 0
local headers = { ["Content-Type"] = "application/json" }

function init(args)
  local path = args[1]
  if path == nil then
    error("route.lua: give the file of JSON bodies after --, e.g. -- bodies.jsonl")
  end
  for line in io.lines(path) do
    if #line > 0 then
      bodies[#bodies + 1] = line
    end
  end
  if #bodies == 0 then
    error("route.lua: no bodies in " .. path)
  end
  -- each thread starts at its own place in the list
  next_body = math.random(#bodies) - 1
end

function request()
  next_body = next_body % #bodies + 1
  return wrk.format("POST", "/v1/route", headers, bodies[next_body])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_RESULT {\"requests\": %d, \"duration_us\": %d, \"non_2xx\": %d, \"connect\": %d, "
      .. "\"read\": %d, \"write\": %d, \"timeout\": %d, \"p50_us\": %d, \"p99_us\": %d, "
      .. "\"max_us\": %d}\n",
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
