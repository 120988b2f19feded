-- POST a JSON chat request; report percentiles and non-2xx responses as one JSON line.
--
-- Environment:
--   WRK_BODIES  comma-separated paths of JSON request bodies; with more than one, requests
--               cycle through them (a mixed load)
--   WRK_AUTH    optional bearer token (sent as "Authorization: Bearer <token>")
local function read_file(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("*a")
  f:close()
  return text
end

local bodies = {}
for path in string.gmatch(os.getenv("WRK_BODIES") or "", "[^,]+") do
  table.insert(bodies, read_file(path))
end
assert(#bodies > 0, "WRK_BODIES names no body")

wrk.method = "POST"
wrk.body = bodies[1]
wrk.headers["Content-Type"] = "application/json"
local auth = os.getenv("WRK_AUTH")
if auth and auth ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. auth
end

-- formatted in init(), once wrk has set the Host header's value
local requests = {}
local next_index = 0
if #bodies > 1 then
  function request()
    next_index = next_index % #requests + 1
    return requests[next_index]
  end
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  non2xx = 0
  statuses = {}
  for i, body in ipairs(bodies) do
    requests[i] = wrk.format(nil, nil, nil, body)
  end
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    statuses[status] = (statuses[status] or 0) + 1
  end
end

function done(summary, latency, requests)
  local non2xx_total = 0
  local merged = {}
  for _, thread in ipairs(threads) do
    non2xx_total = non2xx_total + thread:get("non2xx")
    for status, count in pairs(thread:get("statuses")) do
      merged[status] = (merged[status] or 0) + count
    end
  end
  local by_status = {}
  for status, count in pairs(merged) do
    by_status[#by_status + 1] = string.format('"%d":%d', status, count)
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"non2xx":%d,"non2xx_by_status":{%s},'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"latency_us":{"min":%d,"mean":%.1f,"stdev":%.1f,"max":%d,'
      .. '"p50":%d,"p90":%d,"p99":%d,"p999":%d}}\n',
    summary.requests, summary.duration, summary.bytes, non2xx_total,
    table.concat(by_status, ","),
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9)))
end
