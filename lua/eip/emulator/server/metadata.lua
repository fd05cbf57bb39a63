-- The ECS instance metadata service, as the official SDKs' metadata credential provider uses it
-- (cloud-facts: "ECS instance metadata"):
--   PUT /meta-data/latest/api/token   X-Metadata-Token-Ttl-Seconds: N -> 200, a session token
--   GET /openstack/latest/securitykey  X-Metadata-Token: <token> ->
--       {"credential":{"access","secret","securitytoken","expires_at"}}
-- Each securitykey answer is the last temporary AK/SK pair it issued while that one is valid (as
-- the real service hands out the same keys until it renews them), else a new pair of the default
-- project, valid for the knob metadata_credential_ttl (then the gateway refuses it): a client
-- must refresh before expires_at. With the knob metadata_same_keys = 0 every answer is a new
-- pair (a service renewing its keys at each fetch). The knob
-- metadata_token_status (default 200) makes the token route answer 404, 405 or 503 instead, as
-- on a service without the token endpoint (then no token is required).
local store = require "eip.emulator.server.store"
local util = require "eip.emulator.server.util"

local M = {}

local plain = util.send_text

-- PUT /meta-data/latest/api/token
function M.token(method)
  if method ~= "PUT" then return plain(405, "Method Not Allowed") end
  local status = store.knob("metadata_token_status")
  if status ~= 200 then return plain(status, "no token service") end
  local ttl = tonumber(ngx.req.get_headers()["x-metadata-token-ttl-seconds"])
  if not ttl or ttl < 1 or ttl > 21600 then
    return plain(400, "X-Metadata-Token-Ttl-Seconds must be 1..21600")
  end
  local token = util.random_hex(24)
  store.put_metadata_token(token, ttl)
  store.count("metadata_tokens_issued")
  plain(200, token)
end

-- GET /openstack/latest/securitykey
function M.securitykey(method)
  if method ~= "GET" then return plain(405, "Method Not Allowed") end
  if store.knob("metadata_token_status") == 200 then
    local token = ngx.req.get_headers()["x-metadata-token"]
    if type(token) ~= "string" or not store.metadata_token(token) then
      return plain(401, "a valid X-Metadata-Token is required")
    end
  end
  local cred, expires
  if store.knob("metadata_same_keys") ~= 0 then cred, expires = store.last_temporary_credential() end
  if not cred then
    local ttl = store.knob("metadata_credential_ttl")
    expires = store.now() + ttl
    cred = { ak = "EMUTMP" .. util.random_hex(7):upper(), sk = util.random_hex(20),
      security_token = "emu-sts-" .. util.random_hex(48), project_id = store.default_project() }
    store.put_temporary_credential(cred, ttl, expires)
  end
  store.count("metadata_credentials_issued")
  util.send_json(200, { credential = { access = cred.ak, secret = cred.sk, securitytoken = cred.security_token,
    -- With microseconds, as the official SDKs' own tests of this answer have it
    -- ("2020-01-08T03:50:07.574000Z"; Go's time.Parse takes a fraction its layout leaves out).
    expires_at = os.date("!%Y-%m-%dT%H:%M:%S", math.floor(expires))
      .. string.format(".%06dZ", math.floor((expires % 1) * 1e6)) } })
end

return M
