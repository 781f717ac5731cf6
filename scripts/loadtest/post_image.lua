-- wrk script: POSTs one image file to /v1/infer and counts status codes.
-- Configured through the environment: SHOAL_LT_IMAGE (file), SHOAL_LT_PATH (path + query),
-- SHOAL_LT_TOKEN (bearer token, optional).
local f = assert(io.open(os.getenv("SHOAL_LT_IMAGE"), "rb"))
local body = f:read("*a")
f:close()
wrk.method = "POST"
wrk.path = os.getenv("SHOAL_LT_PATH")
wrk.body = body
wrk.headers["Content-Type"] = "application/octet-stream"
local token = os.getenv("SHOAL_LT_TOKEN")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  codes = {}
end

function response(status, headers, body)
  codes[status] = (codes[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    local c = t:get("codes")
    for k, v in pairs(c) do total[k] = (total[k] or 0) + v end
  end
  local keys = {}
  for k in pairs(total) do table.insert(keys, k) end
  table.sort(keys)
  for _, k in ipairs(keys) do io.write(string.format("status %d: %d\n", k, total[k])) end
  io.write(string.format("latency_us p50 %d p90 %d p99 %d max %d\n", latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency.max))
  io.write(string.format("requests %d duration_s %.1f rps %.2f socket_errors connect %d read %d write %d timeout %d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout))
end
