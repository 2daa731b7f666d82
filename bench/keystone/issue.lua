-- POST /v3/auth/tokens, project-scoped, the catalog included (as `openstack token issue` asks).
-- env: KS_METHOD password|token; for password KS_USER, KS_PASSWORD; for token KS_TOKEN; KS_PROJECT.
-- The body is fixed, so wrk builds the request once and spends no Lua time per request.
local function need(name)
  local v = os.getenv(name)
  if v == nil or v == "" then error(name .. " is not set") end
  return v
end

local scope = '"scope":{"project":{"name":"' .. need("KS_PROJECT") .. '","domain":{"id":"default"}}}'
local identity
if need("KS_METHOD") == "token" then
  identity = '{"methods":["token"],"token":{"id":"' .. need("KS_TOKEN") .. '"}}'
else
  identity = '{"methods":["password"],"password":{"user":{"name":"' .. need("KS_USER") ..
    '","domain":{"id":"default"},"password":"' .. need("KS_PASSWORD") .. '"}}}'
end

wrk.method = "POST"
wrk.path = "/v3/auth/tokens"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"auth":{"identity":' .. identity .. ',' .. scope .. '}}'
