-- GET /v3/auth/tokens with a different subject token on every request, read from a file
-- (one token a line). Thread t of T sends tokens OFFSET+t, OFFSET+t+T, ... so that no two
-- threads send the same token and the whole run walks the file in order, wrapping at its end.
-- env: KS_AUTH_TOKEN, KS_TOKEN_FILE, KS_TOKEN_OFFSET [0], KS_THREADS (wrk's -t),
--      KS_POSITION_FILE: where done() writes the offset the next run should start from.
local function need(name)
  local v = os.getenv(name)
  if v == nil or v == "" then error(name .. " is not set") end
  return v
end

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local tokens, count, stride, base
local headers = { ["X-Auth-Token"] = need("KS_AUTH_TOKEN") }

function init(args)
  tokens = {}
  for line in io.lines(need("KS_TOKEN_FILE")) do
    if line ~= "" then tokens[#tokens + 1] = line end
  end
  count = #tokens
  if count == 0 then error("no tokens in " .. need("KS_TOKEN_FILE")) end
  stride = tonumber(need("KS_THREADS"))
  base = tonumber(os.getenv("KS_TOKEN_OFFSET") or "0") + id
  -- global, not local: done() reads it through thread:get
  sent = 0
end

function request()
  headers["X-Subject-Token"] = tokens[(base + sent * stride) % count + 1]
  sent = sent + 1
  return wrk.format("GET", "/v3/auth/tokens", headers)
end

function done(summary, latency, requests)
  -- The thread that went furthest decides where the next run starts: no token is sent twice
  -- before the walk comes round again.
  local furthest = 0
  for _, t in ipairs(threads) do
    local n = t:get("sent")
    if n > furthest then furthest = n end
  end
  local offset = tonumber(os.getenv("KS_TOKEN_OFFSET") or "0") + furthest * #threads
  local f = assert(io.open(need("KS_POSITION_FILE"), "w"))
  f:write(tostring(offset), "\n")
  f:close()
end
