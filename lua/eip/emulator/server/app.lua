-- Entry points of the EIP emulator inside nginx (see nginx.conf.in).
local api = require "eip.emulator.server.api"
local control = require "eip.emulator.server.control"
local inject = require "eip.emulator.server.inject"
local store = require "eip.emulator.server.store"
local util = require "eip.emulator.server.util"
local watchdog = require "eip.emulator.server.watchdog"

local M = {}

local CONTROL_PREFIX = "/__emulator/"

function M.init_worker(owner_pid, prefix)
  util.seed_random()
  store.init()
  watchdog.start(owner_pid, prefix)
end

local function lowered_headers()
  local out = {}
  for name, value in pairs(ngx.req.get_headers(200)) do
    out[name:lower()] = value
  end
  return out
end

-- (`path`: the one to log when nginx's $uri is not the request's, false for none)
local function record(method, body, role, path)
  store.record_request{
    method = method,
    endpoint = role,
    uri = ngx.var.request_uri,
    path = path == nil and ngx.var.uri or path or nil,
    headers = lowered_headers(),
    body = body,
    connection = tonumber(ngx.var.connection),
    time = ngx.now(),
  }
end

-- Acts on an injected rule (or nil). True when it answered the request; false when the request
-- is to be handled as usual (no rule, or one that only slows it or spoils its answer).
local function apply(rule)
  if not rule then
    return false
  elseif rule.action == "lose_answer" then
    ngx.ctx.lose_answer = true -- util.send_* close the connection instead of answering
  elseif rule.action == "garble_answer" then
    ngx.ctx.garble_answer = true -- util.send_* send an unreadable head instead of the answer
  elseif rule.action == "slow" then
    if rule.delay and rule.delay > 0 then ngx.sleep(rule.delay) end
  else
    inject.perform(rule)
    return true
  end
  return false
end

-- Answers an API request (see M.handle): logs it, then applies the injected rule that is due,
-- else lets eip.emulator.server.api answer.
local function answer(method, path, body, role)
  record(method, body, role)
  -- The injected rule whose place is the request's arrival (transport faults, the gateway's own
  -- answers); else the one whose place is the service, once api.handle routed and authenticated
  -- the request (see inject.lua): a service's answer never comes before the gateway's 401 or 404.
  -- One rule per request, as ever: one that only slowed the request leaves the next for the next.
  local endpoint = api.endpoint_of(path)
  local rule = inject.take(method, path, "gateway", endpoint)
  if apply(rule) then return end
  return api.handle(method, path, body, role, not rule and function()
    return apply(inject.take(method, path, "service", endpoint))
  end or nil)
end

-- What nginx refused before any Lua ran (see eip.emulator.server.nginx_conf), by its status, as
-- the gateway answers it (APIGW.0201 each, and its status): a body over client_max_body_size (the
-- gateway's limit is 12 MB), a URI or a header over the gateway's limits, a request not HTTP, a
-- Transfer-Encoding nginx does not implement, an HTTP version it does not speak.
-- The metadata service, which is no gateway, answers nginx's reason in plain text.
local REFUSED = {
  [400] = { "API request error", "Bad Request" },
  [413] = { "Request entity too large", "Request Entity Too Large" },
  [414] = { "Request URI too large", "Request-URI Too Large" },
  [494] = { "Request headers too large", "Request Header Or Cookie Too Large" },
  [501] = { "API request error", "Not Implemented" },
  [505] = { "API request error", "HTTP Version Not Supported" },
}

-- Where nginx sends the refused requests it has no URI for (see nginx_conf).
local REFUSED_URI = "/.refused"

-- Answers a request nginx refused with `status` (REFUSED's). Logged, with no body; one sent to
-- REFUSED_URI with the method of its request line (it comes as GET) and the path sent (none
-- when nginx could not read it). Bytes without a request line's method (no HTTP: a TLS hello
-- sent to the plain port) are no request: answered, not logged (what a client sent counts
-- only what reached the API).
local function refused_answer(path, role, status)
  local method, logged = ngx.req.get_method(), nil
  if ngx.var.uri == REFUSED_URI then
    method, logged = (ngx.var.request or ""):match("^(%u+) "), path ~= "" and path
  end
  if method then record(method, "", role, logged) end
  local what = REFUSED[status]
  if role == "metadata" then return util.send_text(status, what[2]) end
  return util.gateway_error(status, "APIGW.0201", what[1])
end

--- Answers a request that came to the endpoint `role` models (see
-- eip.emulator.server.nginx_conf): "api", "iam", "metadata", or "any" (all three on one port).
-- The control routes (/__emulator/) answer on every port. `refused`: the status nginx refused the
-- request with before any Lua ran (400, 413, 414, 494, 501 or 505; see eip.emulator.server.nginx_conf).
function M.handle(role, refused)
  role = role or "any"
  local method = ngx.req.get_method()
  -- The path as it was sent (not nginx's $uri, which merges slashes, resolves dot segments and
  -- decodes escapes): the gateway matches it literally, so "/v2.0//p/bandwidths/x" or ".." in it
  -- is no API (404 APIGW.0101) there, and must be here. An absolute-form target (through a
  -- forward proxy) keeps its path only.
  -- (none when nginx refused a request line it could not read)
  local path = (ngx.var.request_uri or ""):gsub("^%a[%w+.-]*://[^/]*", ""):match("^[^?#]*")
  local request_id = util.random_hex(16)
  ngx.ctx.request_id = request_id
  if role ~= "metadata" then -- the metadata service is no API gateway: neither header
    -- IAM names its answers with X-IAM-Trace-Id, the API gateway with X-Request-Id.
    local iam = role ~= "api" and api.endpoint_of(path) == "iam"
    ngx.header[iam and "X-IAM-Trace-Id" or "X-Request-Id"] = request_id
    ngx.header["Server"] = "api-gateway" -- what the real endpoint calls itself
  end
  if refused then return refused_answer(path, role, refused) end
  local body = util.read_body()
  local control_route = path:sub(1, #CONTROL_PREFIX) == CONTROL_PREFIX
  -- A write the store has no room for is answered in JSON (507), never nginx's HTML error page
  -- (each handler makes its own writes all or nothing; see store.atomically).
  local ok, err = xpcall(function()
    if control_route then return control.handle(method, path, body) end
    return answer(method, path, body, role)
  end, function(e)
    return store.is_full(e) and e or debug.traceback(tostring(e), 2)
  end)
  if ok then return end
  if not store.is_full(err) or ngx.headers_sent then error(err, 0) end
  if control_route then return util.send_json(507, { error = tostring(err) }) end
  return api.store_full(err)
end

return M
