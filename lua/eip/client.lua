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

-- The headers every request starts with, shared by all requests and never modified. Each also
-- holds its line as the transport takes it, so _wire does not build it again for every call.
-- Accept is not signed: a proxy may rewrite it without breaking the signature.
local CONTENT_TYPE = { "Content-Type", "application/json", line = "Content-Type: application/json" }
local ACCEPT = { "Accept", "application/json", signed = false, line = "Accept: application/json" }

-- Reason phrases by status, from the C table. core.status builds a whole entry (descriptions,
-- advice: a kilobyte of strings) and a result needs only its reason: memoised, since statuses
-- are three-digit numbers, the table stays small.
local reasons = setmetatable({}, { __index = function(t, status)
  local reason = core.status(status).reason
  t[status] = reason
  return reason
end })

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

--- Raises a usage error unless `self` is an open client: catches `client.method(...)` written
-- with a dot, and calls on a closed client. Public methods start with it.
function M.check(self, method)
  if getmetatable(self) ~= Client then
    errors.raise_usage("client", "must be an eip client: call it as client:%s(...), with a colon", method)
  end
  if self.closed then errors.raise_usage("client", "is closed: client:close() was called before %s", method) end
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

-- The "Name: value" lines of headers[i..n], as multiple values: a table constructor around
-- them sizes the list once (filling an empty table grows it three times for three headers,
-- a measurable part of a call's Lua time).
local function header_lines(headers, i, n)
  if i > n then return end
  local h = headers[i]
  return h.line or (h[1] .. ": " .. h[2]), header_lines(headers, i + 1, n)
end

local min = math.min

--- The transport's request for req (method, url, path, headers as {name, value} pairs, body,
-- timeout): header lines, timeouts and caps. Logs the request when debugging.
function Client:_wire(req)
  local headers = req.headers
  local lines = { header_lines(headers, 1, #headers) }
  if self.log then log.request(self.log, req, lines, scrub, self) end
  local timeout = req.timeout or self.timeout
  return {
    method = req.method,
    url = req.url,
    headers = lines,
    body = req.body,
    timeout = timeout,
    connect_timeout = min(self.connect_timeout, timeout),
    low_speed_limit = self.low_speed_limit,
    low_speed_time = self.low_speed_time,
    body_cap = self.max_body,
  }
end

--- Maps the transport's response to req: the response on 2xx, else nil and the eip error.
-- Logs the response when debugging.
function Client:_map(req, resp)
  req.attempts = req.attempts or 1
  if self.log then log.response(self.log, resp, scrub, self) end
  if resp.curl_code then
    return nil, errors.transport(req, resp, resp.curl_error)
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
  return nil, err
end

--- One HTTP exchange and its mapping (_wire, the transport, _map). Returns the transport's
-- response on 2xx; raises the eip error otherwise.
function Client:_send(req)
  local resp, err = self:_map(req, self.transport:send(self:_wire(req)))
  if not resp then error(err, 0) end
  return resp
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

local function jitter(a, b)
  return a + (b - a) * math.random()
end

--- Attempt `attempts` of a call as a request, authenticated now (provider:apply adds the
-- credentials and, with AK/SK, signs it: callers build it right before sending it). The
-- attempt's timeout is cut to what is left of `deadline` (a monotime), if any.
function Client:_request(call, attempts, deadline)
  local timeout = self.timeout
  if deadline then timeout = math.max(0.001, math.min(timeout, deadline - core.monotime())) end
  local req = {
    method = call.method, path = call.path, body = call.body, query = call.query,
    url = self.endpoint .. call.path .. query_string(call.query), host = self.host,
    signed_path = self.base_path ~= "" and self.base_path .. call.path or nil, -- nil: the path is signed
    headers = { CONTENT_TYPE, ACCEPT },
    attempts = attempts, timeout = timeout,
  }
  providers[self]:apply(req, self)
  return req
end

--- What follows a failed attempt (err, with err.attempts set): nil when err is final; else
-- the seconds to wait before the next attempt, and true when a fresh IAM token was just
-- obtained after a 401 (try again at once; once per call, outside the retry budget).
-- `refreshed`: whether this call already did that. Logs the decision to retry.
function Client:_after_failure(err, attempts, refreshed, deadline)
  if err.status == 401 and not refreshed and providers[self]:refresh_after_401(self, err) then
    return 0, true
  end
  local delay = retry.delay(err, attempts - (refreshed and 1 or 0), self.policy, os.time(), jitter)
  if not delay or (deadline and core.monotime() + delay >= deadline) then return nil end
  if self.log then self.log(string.format("eip: retrying in %.2f s after: %s", delay, tostring(err))) end
  return delay, false
end

local function attempt(self, call, attempts, deadline)
  return self:_send(self:_request(call, attempts, deadline))
end

--- An API call: authenticate, send, and retry what the policy says is transient (see
-- eip.retry), within max_attempts and the deadline. A 401 with an IAM token fetches a new
-- token once and repeats the call at once. call: method, path (below the endpoint), body
-- (a JSON string), query (a list of {name, value} pairs). Returns the response, attempts and
-- elapsed seconds; raises the last error.
function Client:_call(call)
  local started = core.monotime()
  local deadline = self.deadline and started + self.deadline
  local attempts, refreshed = 0, false
  while true do
    attempts = attempts + 1
    local ok, resp = pcall(attempt, self, call, attempts, deadline)
    local elapsed = core.monotime() - started
    if ok then return resp, attempts, elapsed end
    local err = resp
    if not errors.is_error(err) then error(err, 0) end -- a bug, not an answer: keep its traceback
    err.attempts, err.elapsed = attempts, elapsed
    local delay, refresh = self:_after_failure(err, attempts, refreshed, deadline)
    if not delay then error(err, 0) end
    if refresh then
      refreshed = true
    else
      self.sleep(delay)
    end
  end
end

--- The project id; with IAM and no configured project_id, learnt from the token's scope
-- (which fetches a token).
function Client:_project_id()
  if not self.project_id then providers[self]:ensure(self) end
  return self.project_id
end

--- The call deleting a (validated) bandwidth id.
function Client:_delete_call(bandwidth_id)
  return { method = "DELETE", path = "/v2.0/" .. self:_project_id() .. "/bandwidths/" .. bandwidth_id }
end

--- The outcome of a delete call that returned (ok = true: value is the response) or raised
-- (value is the error): the result table, or nil and the error. With missing_ok, a 404 is
-- a result { ok = true, deleted = false, status = 404, ... }: the bandwidth is gone either
-- way (perhaps deleted by an earlier attempt whose answer was lost).
function Client:_delete_result(bandwidth_id, missing_ok, ok, value, attempts, elapsed) -- luacheck: ignore 212/self
  if not ok then
    local err = value
    if not (missing_ok and errors.is_error(err) and err.status == 404) then return nil, err end
    return {
      ok = true, deleted = false, status = 404, reason = err.reason, code = err.code,
      message = err.message, bandwidth_id = bandwidth_id, request_id = err.request_id,
      attempts = err.attempts, elapsed = err.elapsed,
    }
  end
  return {
    ok = true,
    deleted = true,
    status = value.status,
    reason = reasons[value.status],
    bandwidth_id = bandwidth_id,
    request_id = value.request_id,
    attempts = attempts,
    elapsed = elapsed,
  }
end

--- client:delete_bandwidth(id [, { missing_ok = bool }])
-- -> { ok, deleted, status, reason, bandwidth_id, request_id, attempts, elapsed }
-- With missing_ok, a 404 is a result { ok = true, deleted = false, status = 404, ... }.
function Client:delete_bandwidth(bandwidth_id, call_opts)
  M.check(self, "delete_bandwidth")
  validate.id("bandwidth_id", bandwidth_id)
  local missing_ok = self.missing_ok
  if call_opts ~= nil then
    validate.options("call options", call_opts, CALL_OPTIONS)
    if call_opts.missing_ok ~= nil then missing_ok = validate.boolean("missing_ok", call_opts.missing_ok) end
  end
  local ok, value, attempts, elapsed = pcall(self._call, self, self:_delete_call(bandwidth_id))
  local res, err = self:_delete_result(bandwidth_id, missing_ok, ok, value, attempts, elapsed)
  if not res then error(err, 0) end
  return res
end

--- Releases the connection now rather than at garbage collection.
function Client:close()
  if getmetatable(self) ~= Client then M.check(self, "close") end
  if self.closed then return end -- closing twice is harmless
  self.closed = true
  self.transport:close()
end

M.VERSION = VERSION
M.USER_AGENT = USER_AGENT
M.Client = Client
return M
