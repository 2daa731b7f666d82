-- GET /v3/auth/tokens: the caller's token validates the same subject token every time.
-- env: KS_AUTH_TOKEN (caller), KS_SUBJECT_TOKEN (the token validated).
local function need(name)
  local v = os.getenv(name)
  if v == nil or v == "" then error(name .. " is not set") end
  return v
end

wrk.method = "GET"
wrk.path = "/v3/auth/tokens"
wrk.headers["X-Auth-Token"] = need("KS_AUTH_TOKEN")
wrk.headers["X-Subject-Token"] = need("KS_SUBJECT_TOKEN")
