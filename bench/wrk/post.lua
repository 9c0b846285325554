-- wrk script for `make bench`: POST validly signed webhook deliveries, each one a new event.
--
-- The harness signs the bodies ahead and writes, per wrk thread, one file of complete HTTP requests,
-- all of the same length. Signing here, in Lua (HMAC-SHA256 in LuaJIT), would spend load-generator
-- CPU on the same two cores as the server under test; reading the next fixed-size record from a
-- buffered file keeps wrk about as cheap as with a static request, and costs nothing up front.
--
-- Usage: wrk -s post.lua <url> -- <path prefix> <record length>   (thread N reads "<prefix>.N")
-- done() prints one line, "BENCH_RESULT {json}", which the harness parses.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

local file, size

function init(args)
  -- args[0] is the URL; our own arguments follow.
  file = assert(io.open(args[1] .. "." .. id, "rb"))
  file:setvbuf("full", 1048576)
  size = assert(tonumber(args[2]))
  sent, repeated, wrapped = 0, 0, false
end

function request()
  local req = file:read(size)
  if req == nil then
    -- Out of fresh bodies: start over, and count every request from now on as a repeat, so the
    -- harness can tell the edge's duplicate path from its storing path.
    file:seek("set", 0)
    req, wrapped = file:read(size), true
  end
  sent = sent + 1
  if wrapped then
    repeated = repeated + 1
  end
  return req
end

function done(summary, latency, requests)
  local sent, repeated = 0, 0
  for _, thread in ipairs(threads) do
    sent = sent + thread:get("sent")
    repeated = repeated + thread:get("repeated")
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"duration_us": %d, "requests": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "max": %d, "mean": %.1f}, ' ..
    '"sent": %d, "repeated": %d}\n',
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    sent, repeated))
end
