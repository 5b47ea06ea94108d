-- flood.lua - wrk script of tests/e2e/soak.test.mjs: sign-ins with a wrong
-- password for ever new logins, counted by status (see mixed.lua).
local threads = {}
local n = 0
counts = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function request()
  n = n + 1
  return wrk.format("POST", "/api/v1/login", { ["Content-Type"] = "application/json" },
                    string.format('{"login":"flood.%d.%d","password":"not the password"}', id or 0, n))
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
