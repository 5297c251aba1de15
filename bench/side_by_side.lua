-- wrk script for bench/side_by_side.py: one request per token, cycling through a file of tokens.
--
-- Configured through the environment (wrk passes no options of its own to a script's init):
--   SBS_TOKENS  a file with one token per line (one line: the same token on every request)
--   SBS_SHAPE   verify: POST {"token": "<token>"} as JSON
--               auth:   GET with Authorization: Bearer <token>
--               issue:  POST {"userId": "u1"} with Authorization: Bearer <token> (an API key)
-- At the end it prints one line, SBS_RESULT {...}, with exact figures (microseconds) that the
-- Python side reads instead of wrk's rounded human output.

local tokens = {}
local shape = "verify"
local cached = nil
local index = 0
-- a global, so that done() can read it from each thread's own Lua state via thread:get
wraps = 0

local threads = {}

local function build(token)
  if shape == "auth" then
    return wrk.format("GET", nil, { ["Authorization"] = "Bearer " .. token })
  elseif shape == "issue" then
    return wrk.format("POST", nil, {
      ["Authorization"] = "Bearer " .. token,
      ["Content-Type"] = "application/json",
    }, '{"userId": "u1"}')
  end
  return wrk.format("POST", nil, { ["Content-Type"] = "application/json" },
    '{"token": "' .. token .. '"}')
end

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  shape = os.getenv("SBS_SHAPE") or "verify"
  local path = os.getenv("SBS_TOKENS")
  for line in io.lines(path) do
    if #line > 0 then
      tokens[#tokens + 1] = line
    end
  end
  if #tokens == 0 then
    error("no tokens in " .. path)
  end
  -- one token: build the request once, so the load generator spends nothing per request
  if #tokens == 1 then
    cached = build(tokens[1])
  end
end

function request()
  if cached then
    return cached
  end
  index = index + 1
  if index > #tokens then
    -- a fresh run that wraps around sends tokens the server has already seen
    index = 1
    wraps = wraps + 1
  end
  return build(tokens[index])
end

function done(summary, latency, requests)
  local wrapped = 0
  for _, thread in ipairs(threads) do
    wrapped = wrapped + (thread:get("wraps") or 0)
  end
  local errors = summary.errors
  io.write(string.format(
    'SBS_RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, '
      .. '"status": %d, "connect": %d, "read": %d, "write": %d, "timeout": %d, "wraps": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    errors.status, errors.connect, errors.read, errors.write, errors.timeout, wrapped))
end
