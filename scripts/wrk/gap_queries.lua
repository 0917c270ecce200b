-- wrk script for scripts/bench_api.py: GET requests rotating over a list of paths.
--
--   GAPWATCH_WRK_PATHS=paths.txt wrk -t2 -c50 -d30s --latency -s gap_queries.lua URL
--   wrk ... -s gap_queries.lua URL -- paths.txt          (the same, path as an argument)
--   wrk ... -s gap_queries.lua URL -- paths.txt 1000     (think time, mean 1000 ms)
--   wrk ... -s gap_queries.lua URL -- paths.txt 0 token  (with an API token, see below)
--
-- paths.txt holds one request path per line (e.g. /v1/icbs/QOP/indicators/
-- ed_attendance_rate?by=imd_quintile&window=28d). Every thread pre-builds its requests
-- and walks the list from its own starting point, so the threads do not ask for the
-- same URL at the same moment. A file with one line sends the same URL every time.
--
-- Every /v1 endpoint but /v1/public needs a bearer token. The third argument (or
-- GAPWATCH_WRK_TOKEN_FILE) names a file holding one: its first line is sent as
-- "Authorization: Bearer <token>" with every request. scripts/bench_api.py writes one
-- for the API it starts; against the local stack, use the token `scripts/stack up` left
-- in run/dev-token. The token is read from a file, never given on the command line
-- (where `ps` would show it), and never printed.
--
-- Responses outside 200-299 are counted per status code. wrk's own "Non-2xx or 3xx
-- responses" line counts only codes >= 400, so the script counts every non-2xx itself.
-- done() prints one line "GAPWATCH_WRK {json}" after wrk's report, with those counts
-- and exact latency percentiles in microseconds.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_number", #threads)
end

local function read_paths(args)
  local file = args[1] or os.getenv("GAPWATCH_WRK_PATHS")
  if file == nil or file == "" then
    error("give the paths file: -- paths.txt, or GAPWATCH_WRK_PATHS=paths.txt")
  end
  local paths = {}
  for line in io.lines(file) do
    if line ~= "" then
      paths[#paths + 1] = line
    end
  end
  if #paths == 0 then
    error("no paths in " .. file)
  end
  return paths
end

local function read_token(args)
  local file = args[3] or os.getenv("GAPWATCH_WRK_TOKEN_FILE")
  if file == nil or file == "" then
    return nil
  end
  local handle = io.open(file, "r")
  if handle == nil then
    error("cannot read the token file " .. file)
  end
  local token = (handle:read("*l") or ""):match("^%s*(.-)%s*$")
  handle:close()
  if token == "" then
    error("no token in " .. file)
  end
  return token
end

function init(args)
  local paths = read_paths(args)
  local token = read_token(args)
  local headers = nil
  if token ~= nil then
    headers = { ["Authorization"] = "Bearer " .. token }
  end
  requests = {}
  for i, path in ipairs(paths) do
    requests[i] = wrk.format("GET", path, headers)
  end
  -- Each thread starts at its own point of the list: thread k at (k - 1) x 0.618 of
  -- the way round (the golden ratio spreads any number of threads evenly).
  local k = thread_number or 1
  position = math.floor((k - 1) * 0.6180339887 * #requests) % #requests
  responses = 0
  non_2xx = 0
  statuses = {}
  -- Optional think time (args[2], mean ms): each connection pauses before every request
  -- for an exponentially distributed time, so the connections act as independent users.
  -- A fixed pause would keep them in step: all would ask at the same moment every cycle.
  -- Pauses stop at 4 s: uvicorn closes a connection idle for 5 s (timeout_keep_alive),
  -- which wrk would count as a read error.
  local think = tonumber(args[2] or os.getenv("GAPWATCH_WRK_THINK_MS") or "0") or 0
  if think > 0 then
    math.randomseed(k)
    delay = function()
      return math.min(4000, math.floor(-think * math.log(1 - math.random())))
    end
  end
end

function request()
  position = position % #requests + 1
  return requests[position]
end

function response(status, headers, body)
  responses = responses + 1
  if status < 200 or status > 299 then
    non_2xx = non_2xx + 1
    local key = tostring(status)
    statuses[key] = (statuses[key] or 0) + 1
  end
end

function done(summary, latency, requests_stats)
  local total_responses, total_non_2xx, by_status = 0, 0, {}
  for _, thread in ipairs(threads) do
    total_responses = total_responses + (thread:get("responses") or 0)
    total_non_2xx = total_non_2xx + (thread:get("non_2xx") or 0)
    for status, count in pairs(thread:get("statuses") or {}) do
      by_status[status] = (by_status[status] or 0) + count
    end
  end
  local parts = {}
  for status, count in pairs(by_status) do
    parts[#parts + 1] = string.format('"%s":%d', status, count)
  end
  local e = summary.errors
  io.write(string.format(
    'GAPWATCH_WRK {"responses":%d,"non_2xx":%d,"non_2xx_by_status":{%s},'
      .. '"requests":%d,"duration_us":%d,"bytes":%d,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"latency_us":{"min":%d,"mean":%.1f,"stdev":%.1f,"p50":%d,"p75":%d,"p90":%d,'
      .. '"p99":%d,"p99_9":%d,"max":%d}}\n',
    total_responses, total_non_2xx, table.concat(parts, ","),
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.stdev,
    latency:percentile(50), latency:percentile(75), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max
  ))
end
