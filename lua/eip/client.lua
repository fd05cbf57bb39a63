--- The client: options, then one pipeline per call:
--   validate -> build -> authenticate -> send -> map (result table or eip error).
local core = require "eip.core"
local errors = require "eip.errors"
local validate = require "eip.validate"
local body = require "eip.body"
local auth = require "eip.auth"
local log = require "eip.log"
local retry = require "eip.retry"

local M = {}

local Client = {}
Client.__index = Client
Client.__name = "eip.client"

local VERSION = core._VERSION
local USER_AGENT = "lua-eip/" .. VERSION
local DEFAULT_TIMEOUT = 30
local DEFAULT_CONNECT_TIMEOUT = 10
local DEFAULT_MAX_BODY = 1024 * 1024

-- Credentials live outside the client table, keyed weakly by the client, so printing,
-- serialising or inspecting a client can never show them.
local providers = setmetatable({}, { __mode = "k" })

M.OPTIONS = {
  endpoint = true, region = true, project_id = true,
  token = true, ak = true, sk = true, security_token = true, auth = true,
  timeout = true, connect_timeout = true, deadline = true, low_speed_limit = true, low_speed_time = true,
  max_attempts = true, backoff_base = true, backoff_cap = true, retry_after_cap = true, sleep = true,
  missing_ok = true, ca_file = true, insecure = true, max_body = true, debug = true, log = true,
}

local CALL_OPTIONS = { missing_ok = true }

local function endpoint_for(opts, getenv)
  if opts.endpoint ~= nil and opts.region ~= nil then
    errors.raise_usage("endpoint", "and region are exclusive: give one of them")
  end
  if opts.endpoint ~= nil then return validate.endpoint("endpoint", opts.endpoint) end
  local region = opts.region or auth.env("region", getenv)
  if region ~= nil then
    return "https://vpc." .. validate.region(opts.region and "region" or auth.ENV.region, region)
      .. ".myhuaweicloud.com", region
  end
  errors.raise_usage("endpoint", "is required (or region = \"cn-north-4\", or %s)", auth.ENV.region)
end

--- eip.new(opts): see README for every option. `getenv` is for tests (default os.getenv).
function M.new(opts, getenv)
  validate.options("options", opts, M.OPTIONS)
  local self = setmetatable({}, Client)
  local region
  self.endpoint, region = endpoint_for(opts, getenv)
  self.host, self.base_path = self.endpoint:match("^%a+://([^/]+)(.*)$")
  local provider = auth.resolve(opts, region, getenv)
  providers[self] = provider
  self.auth = provider.kind
  local project_id = opts.project_id or auth.env("project_id", getenv)
  if project_id ~= nil then
    self.project_id = validate.id(opts.project_id and "project_id" or auth.ENV.project_id, project_id)
  elseif provider.kind == "iam" and provider.project_id then
    self.project_id = provider.project_id
  elseif provider.kind ~= "iam" then -- IAM learns it from the token's scope on first use
    errors.raise_usage("project_id", "is required (option project_id or %s)", auth.ENV.project_id)
  end
  self.timeout = validate.number("timeout", opts.timeout or DEFAULT_TIMEOUT, 0.001, 86400)
  self.connect_timeout = validate.number("connect_timeout",
    opts.connect_timeout or math.min(DEFAULT_CONNECT_TIMEOUT, self.timeout), 0.001, 86400)
  if opts.deadline ~= nil then self.deadline = validate.number("deadline", opts.deadline, 0.001, 86400) end
  -- Abort a transfer slower than low_speed_limit bytes/s for low_speed_time seconds: a server
  -- trickling bytes cannot hold a call until the whole-request timeout.
  self.low_speed_limit = validate.integer("low_speed_limit", opts.low_speed_limit or 100, 0, 1e9)
  self.low_speed_time = validate.integer("low_speed_time", opts.low_speed_time or 10, 0, 86400)
  local D = retry.DEFAULTS
  self.policy = {
    max_attempts = validate.integer("max_attempts", opts.max_attempts or D.max_attempts, 1, 20),
    backoff_base = validate.number("backoff_base", opts.backoff_base or D.backoff_base, 0, 60),
    backoff_cap = validate.number("backoff_cap", opts.backoff_cap or D.backoff_cap, 0, 3600),
    retry_after_cap = validate.number("retry_after_cap", opts.retry_after_cap or D.retry_after_cap, 0, 3600),
    throttle_min = D.throttle_min, throttle_max = D.throttle_max,
  }
  self.max_attempts = self.policy.max_attempts
  if opts.sleep ~= nil and type(opts.sleep) ~= "function" then
    errors.raise_usage("sleep", "must be a function(seconds), got %s", type(opts.sleep))
  end
  self.sleep = opts.sleep
  self.missing_ok = opts.missing_ok ~= nil and validate.boolean("missing_ok", opts.missing_ok) or false
  self.max_body = validate.integer("max_body", opts.max_body or DEFAULT_MAX_BODY, 1024, 64 * 1024 * 1024)
  if opts.ca_file ~= nil then self.ca_file = validate.string("ca_file", opts.ca_file) end
  self.insecure = opts.insecure ~= nil and validate.boolean("insecure", opts.insecure) or false
  self.log = log.sink(opts.debug, opts.log)
  local transport = require "eip.transport"
  self.transport = transport.new{ ca_file = self.ca_file, insecure = self.insecure, user_agent = USER_AGENT }
  self.sleep = self.sleep or transport.sleep or core.sleep
  return self
end

function Client:__tostring()
  return string.format("eip.client(%s, project %s, %s auth)", self.endpoint, self.project_id or "?", self.auth)
end

-- Server-provided text is scrubbed of every secret this client holds, in case a proxy or
-- service echoes a header back in an error message. Secrets shorter than 8 bytes are not
-- searched for: they could not be told apart from ordinary words.
local function scrub(self, s)
  if type(s) ~= "string" then return s end
  for _, secret in pairs(providers[self].secrets) do
    if #secret >= 8 then
      local out, from = {}, 1
      while true do
        local at = s:find(secret, from, true)
        if not at then break end
        out[#out + 1] = s:sub(from, at - 1)
        out[#out + 1] = "<redacted>"
        from = at + #secret
      end
      out[#out + 1] = s:sub(from)
      s = table.concat(out)
    end
  end
  return s
end

--- One HTTP exchange and its mapping. req: method, url, path (for errors), headers as
-- {name, value} pairs, body. Returns the transport's response on 2xx; raises an eip error
-- otherwise. Sets req.elapsed.
function Client:_send(req)
  local lines = {}
  for i, h in ipairs(req.headers) do lines[i] = h[1] .. ": " .. h[2] end
  if self.log then log.request(self.log, req, lines, scrub, self) end
  local resp = self.transport:send{
    method = req.method,
    url = req.url,
    headers = lines,
    body = req.body,
    timeout = req.timeout or self.timeout,
    connect_timeout = math.min(self.connect_timeout, req.timeout or self.timeout),
    low_speed_limit = self.low_speed_limit,
    low_speed_time = self.low_speed_time,
    body_cap = self.max_body,
  }
  req.attempts = req.attempts or 1
  if self.log then log.response(self.log, resp, scrub, self) end
  if resp.curl_code then
    error(errors.transport(req, resp, resp.curl_error), 0)
  end
  if resp.status >= 200 and resp.status < 300 then
    return resp
  end
  local decoded = body.decode_error(resp.body)
  if decoded then
    decoded.code, decoded.message = scrub(self, decoded.code), scrub(self, decoded.message)
  end
  local err = errors.http(req, resp, core.status(resp.status), decoded)
  -- A non-retryable status can carry a "busy, try again" code (409 VPC.0512).
  if err.code and retry.RETRYABLE_CODES[err.code] then err.retryable = true end
  error(err, 0)
end

-- Unreserved characters kept, everything else %XX: the same encoding the signer uses, so
-- the query that is signed is the query that is sent.
local function encode(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

local function query_string(query)
  if not query or #query == 0 then return "" end
  local parts = {}
  for i, kv in ipairs(query) do parts[i] = encode(kv[1]) .. "=" .. encode(kv[2]) end
  return "?" .. table.concat(parts, "&")
end

--- An API call: authenticate, send, and retry what the policy says is transient (see
-- eip.retry), within max_attempts and the deadline. A 401 with an IAM token fetches a new
-- token once and repeats the call at once. call: method, path (below the endpoint), body
-- (a JSON string), query (a list of {name, value} pairs). Returns the response, attempts, elapsed seconds; raises the last error.
function Client:_call(call)
  local provider = providers[self]
  local started = core.monotime()
  local deadline = self.deadline and started + self.deadline
  local attempts, refreshed = 0, false
  while true do
    attempts = attempts + 1
    local timeout = self.timeout
    if deadline then timeout = math.max(0.001, math.min(timeout, deadline - core.monotime())) end
    local req = {
      method = call.method, path = call.path, body = call.body, query = call.query,
      url = self.endpoint .. call.path .. query_string(call.query), host = self.host,
      signed_path = self.base_path .. call.path,
      -- Accept is not signed: a proxy may rewrite it without breaking the signature.
      headers = { { "Content-Type", "application/json" }, { "Accept", "application/json", signed = false } },
      attempts = attempts, timeout = timeout,
    }
    local ok, resp = pcall(function()
      provider:apply(req, self)
      return self:_send(req)
    end)
    local elapsed = core.monotime() - started
    if ok then return resp, attempts, elapsed end
    local err = resp
    if not errors.is_error(err) then error(err, 0) end -- a bug, not an answer: keep its traceback
    err.attempts, err.elapsed = attempts, elapsed
    if err.status == 401 and not refreshed and provider:refresh_after_401(self) then
      refreshed = true -- a fresh token: try again now, outside the retry budget
    else
      local delay = retry.delay(err, attempts - (refreshed and 1 or 0), self.policy, os.time(), function(a, b)
        return a + (b - a) * math.random()
      end)
      if not delay or (deadline and core.monotime() + delay >= deadline) then error(err, 0) end
      if self.log then self.log(string.format("eip: retrying in %.2f s after: %s", delay, tostring(err))) end
      self.sleep(delay)
    end
  end
end

--- client:delete_bandwidth(id [, { missing_ok = bool }])
-- -> { ok, deleted, status, reason, bandwidth_id, request_id, attempts, elapsed }
-- With missing_ok, a 404 is a result { ok = true, deleted = false, status = 404, ... }:
-- the bandwidth is gone either way (perhaps deleted by an earlier attempt whose answer was lost).
function Client:delete_bandwidth(bandwidth_id, call_opts)
  validate.id("bandwidth_id", bandwidth_id)
  local missing_ok = self.missing_ok
  if call_opts ~= nil then
    validate.options("call options", call_opts, CALL_OPTIONS)
    if call_opts.missing_ok ~= nil then missing_ok = validate.boolean("missing_ok", call_opts.missing_ok) end
  end
  local provider = providers[self]
  if not self.project_id then provider:ensure(self) end -- IAM: the token names the project
  local ok, resp, attempts, elapsed = pcall(self._call, self, {
    method = "DELETE",
    path = "/v2.0/" .. self.project_id .. "/bandwidths/" .. bandwidth_id,
  })
  if not ok then
    local err = resp
    if not (missing_ok and errors.is_error(err) and err.status == 404) then error(err, 0) end
    return {
      ok = true, deleted = false, status = 404, reason = err.reason, code = err.code,
      message = err.message, bandwidth_id = bandwidth_id, request_id = err.request_id,
      attempts = err.attempts, elapsed = err.elapsed,
    }
  end
  return {
    ok = true,
    deleted = true,
    status = resp.status,
    reason = core.status(resp.status).reason,
    bandwidth_id = bandwidth_id,
    request_id = resp.request_id,
    attempts = attempts,
    elapsed = elapsed,
  }
end

--- Releases the connection now rather than at garbage collection.
function Client:close()
  self.transport:close()
end

M.VERSION = VERSION
M.USER_AGENT = USER_AGENT
M.Client = Client
return M
