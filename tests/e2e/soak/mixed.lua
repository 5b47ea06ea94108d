-- mixed.lua - wrk script of tests/e2e/soak.test.mjs: a signed-in pupil's
-- mixed GETs (own record through guard, policy and audit; session;
-- sessions; health; metrics; an unknown path), one session cookie.
-- Counts answers by status; done() prints them on one line.
local cookie = os.getenv("SOAK_COOKIE") or ""
local record = os.getenv("SOAK_RECORD") or "/api/v1/students/0"
local paths = { record, "/api/v1/session", "/api/v1/sessions", "/healthz", record,
                "/metrics", "/api/v1/no-such-route" }
local threads = {}
local i = 0
counts = {}

function setup(thread)
  table.insert(threads, thread)
end

function request()
  i = i + 1
  return wrk.format("GET", paths[(i % #paths) + 1], { ["Cookie"] = cookie })
end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
  local agg = {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("counts")) do agg[k] = (agg[k] or 0) + v end
  end
  local parts = {}
  for k, v in pairs(agg) do table.insert(parts, string.format('"%d":%d', k, v)) end
  local e = summary.errors
  io.write(string.format('SOAK {"statuses":{%s},"errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d},' ..
                         '"requests":%d,"p50_ms":%.1f,"p99_ms":%.1f,"max_ms":%.1f}\n',
                         table.concat(parts, ","), e.connect, e.read, e.write, e.timeout,
                         summary.requests, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
                         latency.max / 1000))
end
