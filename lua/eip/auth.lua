--- Credentials: where they come from and how a request carries them.
--
-- Resolution order: explicit options (token | ak + sk [+ security_token] | auth = {...}),
-- then the environment variables the official SDKs read (HUAWEICLOUD_SDK_AK / _SK /
-- _SECURITY_TOKEN), then OS_AUTH_TOKEN. Each resolves to a provider:
--   provider.kind                      "token" | "aksk" | "iam"
--   provider:apply(req, client)        adds the auth headers to req.headers (pairs)
--   provider:refresh_after_401(client, err) true when it obtained fresh credentials (IAM only)
--   provider.secrets                   every secret value it holds, for redaction
-- Secret values stay inside providers, which clients keep outside their own tables.
local core = require "eip.core"
local errors = require "eip.errors"
local validate = require "eip.validate"
local json = require "cjson.safe"
local time = require "eip.time"

local M = {}

local raise = errors.raise_usage

M.ENV = {
  ak = "HUAWEICLOUD_SDK_AK",
  sk = "HUAWEICLOUD_SDK_SK",
  security_token = "HUAWEICLOUD_SDK_SECURITY_TOKEN",
  project_id = "HUAWEICLOUD_SDK_PROJECT_ID",
  region = "HUAWEICLOUD_SDK_REGION",
  token = "OS_AUTH_TOKEN",
}

-- os.getenv, treating empty values as unset (an exported-but-empty variable is a common
-- leftover in shells and CI configurations).
local function env(getenv, name)
  local v = getenv(name)
  if v == "" then return nil end
  return v
end

---------------------------------------------------------------------------------------------
-- Token: X-Auth-Token on every request.

local Token = {}
Token.__index = Token

local function token_provider(token, source)
  local t = validate.secret(source, token)
  -- The header is built once: the line form saves a concatenation of a kilobytes-long token
  -- on every call.
  local header = { "X-Auth-Token", t, line = "X-Auth-Token: " .. t }
  return setmetatable({ kind = "token", header = header, secrets = { t } }, Token)
end

function Token:apply(req)
  req.headers[#req.headers + 1] = self.header
end

function Token.refresh_after_401() return false end

---------------------------------------------------------------------------------------------
-- AK/SK: SDK-HMAC-SHA256 over the request as it is sent.

local Aksk = {}
Aksk.__index = Aksk

local function aksk_provider(ak, sk, security_token, names)
  local p = setmetatable({
    kind = "aksk",
    ak = validate.secret(names.ak, ak),
    sk = validate.secret(names.sk, sk),
  }, Aksk)
  if security_token ~= nil then p.security_token = validate.secret(names.security_token, security_token) end
  p.secrets = { p.sk, p.security_token }
  return p
end

--- Adds X-Sdk-Date (UTC now), Host (exactly as sent), X-Project-Id, X-Security-Token and
-- Authorization. Called for every attempt, so a retried request carries a fresh date.
function Aksk:apply(req, client)
  local h = req.headers
  h[#h + 1] = { "Host", req.host }
  h[#h + 1] = { "X-Sdk-Date", core.sdk_date() }
  h[#h + 1] = { "X-Project-Id", client.project_id }
  if self.security_token then h[#h + 1] = { "X-Security-Token", self.security_token } end
  local to_sign = {}
  for i = 1, #h do
    if h[i].signed ~= false then to_sign[#to_sign + 1] = h[i] end
  end
  local auth = core.sign{
    -- the path as sent, with the endpoint's base path
    method = req.method, path = req.signed_path or req.path, query = req.query, headers = to_sign,
    body = req.body, ak = self.ak, sk = self.sk,
  }
  h[#h + 1] = { "Authorization", auth }
end

function Aksk.refresh_after_401() return false end

---------------------------------------------------------------------------------------------
-- IAM password authentication: POST /v3/auth/tokens, cached until shortly before expiry.

local Iam = {}
Iam.__index = Iam

local IAM_PATH = "/v3/auth/tokens"

M.IAM_OPTIONS = { username = true, password = true, domain = true, project = true, project_id = true,
  iam_endpoint = true }

local function iam_provider(a, region)
  validate.options("auth", a, M.IAM_OPTIONS)
  local p = setmetatable({ kind = "iam" }, Iam)
  p.username = validate.string("auth.username", a.username)
  p.password = validate.secret("auth.password", a.password)
  p.domain = validate.string("auth.domain", a.domain)
  if (a.project == nil) == (a.project_id == nil) then
    raise("auth.project", "or auth.project_id is required (exactly one: the project to scope the token to)")
  end
  if a.project ~= nil then p.project = validate.id("auth.project", a.project) end
  if a.project_id ~= nil then p.project_id = validate.id("auth.project_id", a.project_id) end
  if a.iam_endpoint ~= nil then
    p.iam_endpoint = validate.endpoint("auth.iam_endpoint", a.iam_endpoint)
  else
    -- Project names are region names ("cn-north-4", or "cn-north-4_sub" for sub-projects).
    local r = region or (p.project and p.project:match("^[^_]+"))
    if not r then raise("auth.iam_endpoint", "is required when neither region nor auth.project names a region") end
    p.iam_endpoint = "https://iam." .. validate.region("region", r) .. ".myhuaweicloud.com"
  end
  p.secrets = { p.password }
  return p
end

function Iam:body()
  local scope = self.project_id and { id = self.project_id } or { name = self.project }
  return json.encode{ auth = {
    identity = { methods = { "password" }, password = { user = {
      name = self.username, password = self.password, domain = { name = self.domain } } } },
    scope = { project = scope },
  } }
end

--- Obtains a token (client:_send does the HTTP exchange and raises mapped errors).
function Iam:fetch(client)
  local resp = client:_send{
    method = "POST", url = self.iam_endpoint .. IAM_PATH, path = IAM_PATH,
    headers = { { "Content-Type", "application/json;charset=utf8" } },
    body = self:body(), no_auth = true,
  }
  local token = resp.subject_token
  if not token or token == "" then
    error(errors.protocol(resp, "POST", IAM_PATH, "IAM answered without an X-Subject-Token header"), 0)
  end
  local decoded = json.decode(resp.body)
  local t = type(decoded) == "table" and type(decoded.token) == "table" and decoded.token or {}
  local now = os.time()
  local expires = time.parse_iso8601(t.expires_at) or (now + 3600) -- unknown expiry: assume an hour
  -- Refresh ahead of expiry: 10 minutes, or half the lifetime for short-lived tokens.
  local margin = math.min(600, math.max(0, (expires - now) / 2))
  self.token, self.refresh_at = token, expires - margin
  self.secrets[2] = token
  if not client.project_id and type(t.project) == "table" and type(t.project.id) == "string" then
    client.project_id = validate.id("project_id", t.project.id)
  end
  self.fetches = (self.fetches or 0) + 1
end

function Iam:ensure(client)
  if not self.token or os.time() >= self.refresh_at then self:fetch(client) end
end

function Iam:apply(req, client)
  self:ensure(client)
  req.headers[#req.headers + 1] = { "X-Auth-Token", self.token }
end

--- A 401 with a cached token: fetch a new one once; the caller retries the call once. Not
-- when the 401 came from IAM itself (a wrong password): asking again would only count as
-- another failed login.
function Iam:refresh_after_401(client, err)
  if err and err.path == IAM_PATH then return false end
  self.token = nil
  self:fetch(client)
  return true
end

---------------------------------------------------------------------------------------------
-- Resolution.

local function explicit(opts, region)
  local groups = {}
  if opts.token ~= nil then groups[#groups + 1] = "token" end
  if opts.ak ~= nil or opts.sk ~= nil or opts.security_token ~= nil then groups[#groups + 1] = "ak/sk" end
  if opts.auth ~= nil then groups[#groups + 1] = "auth" end
  if #groups > 1 then
    raise(groups[1] == "token" and "token" or "auth", "and %s are exclusive: give one way to authenticate",
      table.concat(groups, " and "))
  end
  if opts.token ~= nil then return token_provider(opts.token, "token") end
  if groups[1] == "ak/sk" then
    if opts.ak == nil then raise("ak", "is required with sk") end
    if opts.sk == nil then raise("sk", "is required with ak") end
    return aksk_provider(opts.ak, opts.sk, opts.security_token,
      { ak = "ak", sk = "sk", security_token = "security_token" })
  end
  if opts.auth ~= nil then return iam_provider(opts.auth, region) end
end

local function from_env(getenv)
  local E = M.ENV
  local ak, sk, st = env(getenv, E.ak), env(getenv, E.sk), env(getenv, E.security_token)
  if ak or sk then
    if not ak then raise(E.ak, "is not set but %s is", E.sk) end
    if not sk then raise(E.sk, "is not set but %s is", E.ak) end
    return aksk_provider(ak, sk, st, { ak = E.ak, sk = E.sk, security_token = E.security_token })
  end
  local token = env(getenv, E.token)
  if token then return token_provider(token, E.token) end
end

--- Returns the provider for these options, or raises a usage error listing what was looked for.
function M.resolve(opts, region, getenv)
  local p = explicit(opts, region) or from_env(getenv or os.getenv)
  if p then return p end
  raise("credentials", "not found: looked for the options token, ak + sk, auth = {username, password, "
    .. "domain, project}, then the environment variables %s + %s (+ %s), then %s",
    M.ENV.ak, M.ENV.sk, M.ENV.security_token, M.ENV.token)
end

--- The environment variable for `name` (a key of M.ENV), empty counted as unset.
function M.env(name, getenv)
  return env(getenv or os.getenv, M.ENV[name])
end

return M
