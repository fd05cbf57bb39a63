--- The client: options, then one pipeline per call:
--   validate -> build -> authenticate -> send -> map (result table or eip error).
local core = require "eip.core"
local errors = require "eip.errors"
local validate = require "eip.validate"
local body = require "eip.body"

local M = {}

local Client = {}
Client.__index = Client
Client.__name = "eip.client"

local VERSION = core._VERSION
local USER_AGENT = "lua-eip/" .. VERSION
local DEFAULT_TIMEOUT = 30
local DEFAULT_CONNECT_TIMEOUT = 10
local DEFAULT_MAX_BODY = 1024 * 1024

-- Secrets live outside the client table, keyed weakly by the client, so printing,
-- serialising or inspecting a client can never show them.
local secrets = setmetatable({}, { __mode = "k" })

M.OPTIONS = {
  endpoint = true, region = true, project_id = true, token = true,
  timeout = true, connect_timeout = true, max_attempts = true,
  ca_file = true, insecure = true, max_body = true,
}

local function endpoint_for(opts)
  if opts.endpoint ~= nil and opts.region ~= nil then
    errors.raise_usage("endpoint", "and region are exclusive: give one of them")
  end
  if opts.endpoint ~= nil then return validate.endpoint("endpoint", opts.endpoint) end
  if opts.region ~= nil then
    return "https://vpc." .. validate.region("region", opts.region) .. ".myhuaweicloud.com"
  end
  errors.raise_usage("endpoint", "is required (or give region = \"cn-north-4\")")
end

--- eip.new(opts): see README for every option.
function M.new(opts)
  validate.options("options", opts, M.OPTIONS)
  local self = setmetatable({}, Client)
  self.endpoint = endpoint_for(opts)
  self.project_id = validate.id("project_id", opts.project_id)
  if opts.token == nil then
    errors.raise_usage("token", "is required (an IAM token, sent as X-Auth-Token)")
  end
  secrets[self] = { token = validate.secret("token", opts.token) }
  self.timeout = validate.number("timeout", opts.timeout or DEFAULT_TIMEOUT, 0.001, 86400)
  self.connect_timeout = validate.number("connect_timeout",
    opts.connect_timeout or math.min(DEFAULT_CONNECT_TIMEOUT, self.timeout), 0.001, 86400)
  self.max_attempts = validate.integer("max_attempts", opts.max_attempts or 1, 1, 1)
  self.max_body = validate.integer("max_body", opts.max_body or DEFAULT_MAX_BODY, 1024, 64 * 1024 * 1024)
  if opts.ca_file ~= nil then self.ca_file = validate.string("ca_file", opts.ca_file) end
  self.insecure = opts.insecure ~= nil and validate.boolean("insecure", opts.insecure) or false
  self.transport = require("eip.transport").new{
    ca_file = self.ca_file, insecure = self.insecure, user_agent = USER_AGENT,
  }
  return self
end

function Client:__tostring()
  return string.format("eip.client(%s, project %s)", self.endpoint, self.project_id)
end

local function auth_headers(self, headers)
  headers[#headers + 1] = "X-Auth-Token: " .. secrets[self].token
  return headers
end

-- Server-provided text is scrubbed of every secret this client holds, in case a proxy or
-- service echoes a header back in an error message. Secrets shorter than 8 bytes are not
-- searched for: they could not be told apart from ordinary words.
local function scrub(self, s)
  if type(s) ~= "string" then return s end
  for _, secret in pairs(secrets[self]) do
    local out, from = {}, 1
    if #secret < 8 then from = #s + 1 end
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
  return s
end

--- Sends one request and maps the answer. Returns the C response table on 2xx, raises an
-- eip error otherwise. `call` carries method, path, body.
function Client:_exchange(call)
  local headers = auth_headers(self, {
    "Accept: application/json",
    "Content-Type: application/json",
  })
  local resp = self.transport:send{
    method = call.method,
    url = self.endpoint .. call.path,
    headers = headers,
    body = call.body,
    timeout = self.timeout,
    connect_timeout = self.connect_timeout,
    body_cap = self.max_body,
  }
  call.attempts = 1
  call.elapsed = resp.elapsed
  if resp.curl_code then
    error(errors.transport(call, resp, resp.curl_error), 0)
  end
  if resp.status >= 200 and resp.status < 300 then
    return resp
  end
  local info = core.status(resp.status)
  local decoded = body.decode_error(resp.body)
  if decoded then
    decoded.code, decoded.message = scrub(self, decoded.code), scrub(self, decoded.message)
  end
  error(errors.http(call, resp, info, decoded), 0)
end

--- client:delete_bandwidth(id) -> { ok, status, reason, bandwidth_id, request_id, attempts, elapsed }
function Client:delete_bandwidth(bandwidth_id)
  validate.id("bandwidth_id", bandwidth_id)
  local call = {
    method = "DELETE",
    path = "/v2.0/" .. self.project_id .. "/bandwidths/" .. bandwidth_id,
  }
  local resp = self:_exchange(call)
  return {
    ok = true,
    status = resp.status,
    reason = core.status(resp.status).reason,
    bandwidth_id = bandwidth_id,
    request_id = resp.request_id,
    attempts = call.attempts,
    elapsed = call.elapsed,
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
