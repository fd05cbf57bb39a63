-- What AK/SK signing adds to a call: the auth step of the pipeline (headers + X-Sdk-Date +
-- canonical request + SHA-256 + HMAC in C), timed in a tight loop, next to the token step.
--   make bench-sign        (or: LUA_PATH=... LUA_CPATH=... lua5.4 bench/sign_cost.lua [N])
local auth = require "eip.auth"

local N = tonumber(arg and arg[1]) or 200000
local PROJECT = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
local path = "/v2.0/" .. PROJECT .. "/bandwidths/3fa1e2b4-1111-2222-3333-444455556666"

local function run(provider)
  local t0 = os.clock()
  for _ = 1, N do
    local req = { method = "DELETE", path = path, host = "vpc.cn-north-4.myhuaweicloud.com", project_id = PROJECT,
      headers = { { "Content-Type", "application/json" }, { "Accept", "application/json", signed = false } } }
    req.headers = provider:lines(req, { { "Content-Type", "application/json" },
      { "Accept", "application/json", signed = false } })
  end
  return (os.clock() - t0) / N * 1e6
end

local none = function() return nil end
local aksk = auth.resolve({ ak = "AKEXAMPLE0000000", sk = "SKEXAMPLEsecretsecretSKEXAMPLEsecretsecre" }, nil, none)
local token = auth.resolve({ token = string.rep("MIIP", 1000) }, nil, none)
local t_token, t_aksk = run(token), run(aksk)
print(string.format("token auth step:  %6.2f us/request", t_token))
print(string.format("AK/SK auth step:  %6.2f us/request (signing adds %.2f us; CPU time, %d requests)",
  t_aksk, t_aksk - t_token, N))
