--- The EIP emulator: a private nginx (with its Lua module) on 127.0.0.1 that models the EIP
-- API, for trying scripts offline and for test suites. This module starts and stops such
-- instances (through eip.emulator.nginx) and talks to their /__emulator/ control routes; the
-- modules under eip.emulator.server run inside nginx. The `eip-emulator` command
-- (eip.emulator.cli) drives it from a shell.
--
-- Needs, at run time, nginx with the Lua module (Debian: nginx, libnginx-mod-http-lua,
-- lua-resty-core, lua-cjson) and LuaSocket on the Lua side (Debian: lua-socket).
--
--   local emulator = require "eip.emulator"
--   local emu = emulator.start()          -- or emulator.start{ tokens = { [tok] = project } }
--   emu.url, emu.port, emu.token, emu.project_id, emu.other_token, emu.other_project_id
--   emu.iam_url, emu.metadata_url (and _port): IAM and the ECS metadata service, each on a port
--       of its own as in the cloud, where the VPC endpoint (emu.url) answers their routes with
--       404 APIGW.0101; emu.any_url: every route on one port (a detached instance's one port)
--   emu:reset(); emu:reset_counters(); emu:set_tokens{...}
--   emu:create_bandwidth{...}; emu:create_bandwidths(n); emu:get_bandwidth(id); emu:bandwidths()
--   emu:inject{...}; emu:delete_path(id) (an inject path pattern); emu:iam_auth{...} (auth option)
--   emu:stats(); emu:requests(); emu:stop()          emulator.stop_all()
--
-- Authentication beyond tokens (see eip.emulator.server.aksk and .iam):
--   emu.ak, emu.sk                               permanent AK/SK pair of emu.project_id
--   emu.temp_ak, emu.temp_sk, emu.security_token temporary credentials, same project
--   emu.iam = { username, password, domain, project (name), project_id }   IAM password login
--   emulator.start{ aksk = { [ak] = { sk=, project_id=, security_token=? } },
--                   users = { { username=, password=, domain=, project=, project_id= }, ... } }
--   emu:verify{ method, url, headers, query?, body?, ak, sk, signed_headers? }  the emulator's
--       own signature of a described request -> { authorization, canonical, string_to_sign, ... }
--   emu:sign{ method, path, ... } -> headers of a correctly signed request to this instance
--   emu:expire_tokens(); emu:set_token_ttl(s); emu:set_clock_offset(s); emu:set_aksk{...}
--   emu:set_knobs{ deleted_visible_for = s, creating_for = s, aksk_lock_after = n, aksk_lock_seconds = s }
--
-- Detached instances outlive the process that starts them (the `eip-emulator` command):
--   emulator.start_detached(dir [, port]) -> emu;  emulator.attach(dir) -> emu | nil, why;
--   emulator.stop_detached(dir) -> pid | nil
-- @module eip.emulator
local socket = require "socket"
local cjson = require "cjson"

local M = {}

M.DEFAULT_TOKEN = "emu-token-1f2e3d4c5b6a"
M.DEFAULT_PROJECT_ID = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
M.OTHER_TOKEN = "emu-token-other-7a6b5c4d3e2f"
M.OTHER_PROJECT_ID = "f9e8d7c6b5a4938271605f4e3d2c1b0a"
-- AK/SK pairs shaped like real ones (20-character AK, 40-character SK); test values only.
M.DEFAULT_AK = "EMUAK7PERMANENT00001"
M.DEFAULT_SK = "u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8dKLzd"
M.TEMP_AK = "EMUAK7TEMPORARY00002"
M.TEMP_SK = "ocJ2isAjIhKtJ0RlgLKOmxgJTeKdNnFRIBXuDL7D"
M.SECURITY_TOKEN = "gQ5jbi1ub3J0aC00emu-xtpYlSXpfKtHF4vUCsMehGAkWvj7FAc9QeWJKY40uvSwMFLZDe1f8rESQedUStPKR0"
  .. "CsTy4Qwb8DwkNhFdnXsiVpzz63FfkCzJr4i0B3JrTAwR4y9ojfljoQ"
-- The IAM user of the default project (it may also scope to OTHER_PROJECT_ID as OTHER_PROJECT).
M.IAM_USER = "emu-operator"
M.IAM_PASSWORD = "Emu-0perator!Passw0rd"
M.IAM_DOMAIN = "emu-domain"
M.IAM_PROJECT = "cn-north-4"
M.OTHER_PROJECT = "ap-southeast-1"

local CONTROL_TIMEOUT = 5   -- seconds for one control call

-- Processes, ports, configs: the generic private-nginx runner.
local nginx = require "eip.emulator.nginx"

-- The directory that holds eip/ (lua/ in a checkout, share/lua/5.x in a LuaRocks tree): the
-- package path of the emulator's nginx, which must be absolute.
local LUA_DIR = nginx.dir_of(debug.getinfo(1, "S").source):gsub("/eip/emulator$", "")

-- A tiny HTTP/1.1 client --------------------------------------------------------------------
-- socket.http forces its own 60 s timeout on every socket; control calls and the spec want
-- short, explicit ones, and the spec needs to reuse one connection for several requests.

local function read_chunked(sock)
  local parts = {}
  while true do
    local line, err = sock:receive("*l")
    if not line then
      return nil, err
    end
    local size = tonumber(line:match("^%x+"), 16)
    if not size then
      return nil, "bad chunk size"
    end
    if size == 0 then
      sock:receive("*l")
      return table.concat(parts)
    end
    local data, derr = sock:receive(size)
    if not data then
      return nil, derr
    end
    parts[#parts + 1] = data
    sock:receive("*l")
  end
end

local function read_head(sock)
  local line, err = sock:receive("*l")
  if not line then
    return nil, err
  end
  local status = tonumber(line:match("^HTTP/%d%.%d (%d%d%d)"))
  if not status then
    return nil, "bad status line: " .. line
  end
  local headers = {}
  while true do
    local h, herr = sock:receive("*l")
    if not h then
      return nil, herr
    end
    if h == "" then
      break
    end
    local name, value = h:match("^([^:]+):%s*(.-)%s*$")
    if name then
      headers[name:lower()] = value
    end
  end
  return status, headers
end

local function read_body(sock, method, status, headers)
  if method == "HEAD" or status == 204 or status == 304 or status < 200 then
    return ""
  end
  if (headers["transfer-encoding"] or ""):lower():find("chunked", 1, true) then
    return read_chunked(sock)
  end
  local length = tonumber(headers["content-length"])
  if length == 0 then
    return "" -- (LuaSocket's receive(0) waits for a byte that never comes)
  elseif length then
    return sock:receive(length)
  end
  local data, err, partial = sock:receive("*a")
  return data or partial, data == nil and err or nil
end

--- One request to 127.0.0.1, over a LuaSocket connection.
-- @tparam table opts the request:
-- @tparam integer opts.port the port
-- @tparam string opts.path the request target, query included
-- @tparam[opt="GET"] string opts.method
-- @tparam[opt] table opts.headers `{ name = value }` (none by default)
-- @tparam[opt] string opts.body sent with its Content-Length (none by default)
-- @tparam[opt=5] number opts.timeout seconds for each socket operation
-- @tparam[opt] table opts.sock an open connection to reuse (one a `keepalive` call returned)
-- @tparam[opt=false] boolean opts.keepalive leave the connection open and return it
-- @treturn ?table `{ status, headers (lower-case names), body, sock? }`, or nil
-- @treturn ?string why, when nil (the connection failed, or the answer was not HTTP)
-- @raise only for a caller's bug (`opts` no table, a header value neither a string nor a
--   number): what the server or
--   the network does comes back as nil and the error
function M.http(opts)
  local sock = opts.sock
  if not sock then
    sock = socket.tcp()
    sock:settimeout(opts.timeout or CONTROL_TIMEOUT)
    local ok, err = sock:connect("127.0.0.1", opts.port)
    if not ok then
      sock:close()
      return nil, "connect: " .. tostring(err)
    end
  end
  local method = opts.method or "GET"
  local body = opts.body or ""
  local lines = { method .. " " .. opts.path .. " HTTP/1.1", "Host: 127.0.0.1:" .. opts.port }
  local headers = opts.headers or {}
  for name, value in pairs(headers) do
    lines[#lines + 1] = name .. ": " .. value
  end
  if body ~= "" or method == "POST" or method == "PUT" then
    lines[#lines + 1] = "Content-Length: " .. #body
  end
  if not opts.keepalive then
    lines[#lines + 1] = "Connection: close"
  end
  local ok, err = sock:send(table.concat(lines, "\r\n") .. "\r\n\r\n" .. body)
  local status, resp_headers, resp_body
  if ok then
    status, resp_headers = read_head(sock)
    err = resp_headers
    if status then
      resp_body, err = read_body(sock, method, status, resp_headers)
    end
  end
  if not (status and resp_body) then
    sock:close()
    return nil, tostring(err)
  end
  if not opts.keepalive then
    sock:close()
    sock = nil
  end
  return { status = status, headers = resp_headers, body = resp_body, sock = sock }
end

-- Control calls ------------------------------------------------------------------------------

local Emulator = {}
Emulator.__index = Emulator

local function encode(value)
  return cjson.encode(value)
end

-- A count the emulator answered, as the integer it is: cjson decodes every number as a float,
-- which Lua 5.3+ writes "9.0" (anything else: as it is).
local tointeger = math.tointeger -- luacheck: ignore 143 (Lua 5.3+)
local function count(v)
  return tointeger and type(v) == "number" and tointeger(v) or v
end

-- A control call; raises on transport errors and on an unexpected status.
local function control(self, method, route, body, expect)
  local resp, err = M.http{
    port = self.port, path = "/__emulator/" .. route, method = method,
    headers = { ["Content-Type"] = "application/json" },
    body = body ~= nil and encode(body) or nil,
  }
  if not resp then
    error("eip emulator: " .. method .. " " .. route .. ": " .. err, 2)
  end
  local ok, decoded = pcall(cjson.decode, resp.body)
  if not ok then
    decoded = nil
  end
  if expect and resp.status ~= expect then
    local why = type(decoded) == "table" and decoded.error or resp.body
    error(string.format("eip emulator: %s %s: HTTP %d: %s", method, route, resp.status,
      tostring(why)), 2)
  end
  return decoded, resp.status
end

--- Forget bandwidths, injections, counters and the request log; restore the default token TTL
-- and clock offset. Tokens (configured and issued), AK/SK pairs and IAM users stay. Returns nothing.
-- @raise a Lua error ("eip emulator: ...") when the instance does not answer or
--   refuses the control call
function Emulator:reset()
  control(self, "POST", "reset", nil, 200)
end

--- Forget only the counters and the request log (e.g. after seeding through the API). Returns
-- nothing.
-- @raise a Lua error ("eip emulator: ...") when the instance does not answer or
--   refuses the control call
function Emulator:reset_counters()
  control(self, "POST", "reset_counters", nil, 200)
end

--- Configure the accepted tokens; replaces the current set. Returns nothing.
-- @tparam table tokens `{ [token] = project_id }`
-- @raise a Lua error ("eip emulator: ...") when the instance does not answer or
--   refuses the control call
function Emulator:set_tokens(tokens)
  control(self, "PUT", "tokens", { tokens = tokens, default_project_id = self.project_id }, 200)
end

--- Seed a bandwidth directly, without the API's checks of a create (see the README's emulator
-- section).
-- @tparam[opt] table fields `{ name, size, share_type = "WHOLE"|"PER", publicip_ids = {...},
--   eips = n, project_id, id, charge_mode, status, ... }` (see eip.emulator.server.control). The
--   name is one the API takes (1-64 letters, digits, Chinese, "_", "-", "."; default seeded-N),
--   the size 1..2000 (a shared one below the API's create minimum of 5 too)
-- @treturn string its id
-- @raise a Lua error ("eip emulator: ...") for fields the emulator refuses (HTTP
--   400 with its reason), or when the instance does not answer
function Emulator:create_bandwidth(fields)
  local req = {}
  for k, v in pairs(fields or {}) do
    req[k] = v
  end
  if req.publicip_ids and #req.publicip_ids == 0 then
    req.publicip_ids = nil -- cjson would send {} for an empty list
  end
  local answer = control(self, "POST", "bandwidths", req, 201)
  return answer.id
end

--- n shared bandwidths, each seeded as @{Emulator:create_bandwidth} seeds one.
-- @tparam integer n how many
-- @tparam[opt] table fields the fields of each (default `{ size = 1 }`)
-- @treturn {string,...} their ids, in order
-- @raise as @{Emulator:create_bandwidth} (those seeded before the failure stay)
function Emulator:create_bandwidths(n, fields)
  local ids = {}
  for i = 1, n do ids[i] = self:create_bandwidth(fields or { size = 1 }) end
  return ids
end

--- A Lua pattern (for inject's `path`) matching exactly the delete path of a bandwidth of the
-- instance's `project_id`. Sends nothing.
-- @tparam string id the bandwidth's id
-- @treturn string the pattern
-- @raise a Lua error when `id` is no string
function Emulator:delete_path(id)
  return "^/v2%.0/" .. self.project_id .. "/bandwidths/" .. id:gsub("%p", "%%%0") .. "$"
end

--- The client's `auth` option for this emulator's IAM user (`iam_endpoint` its IAM). Sends nothing.
-- @tparam[opt] table overrides fields that replace the user's (`{ password = "wrong" }`)
-- @treturn table `{ username, password, domain, project, iam_endpoint }`, for `eip.new`'s `auth`
-- @raise a Lua error when `overrides` is neither nil nor a table
function Emulator:iam_auth(overrides)
  local auth = { username = self.iam.username, password = self.iam.password, domain = self.iam.domain,
    project = self.iam.project, iam_endpoint = self.iam_url }
  for k, v in pairs(overrides or {}) do auth[k] = v end
  return auth
end

--- A stored bandwidth, of any project, as the API shows it.
-- @tparam string id the bandwidth's id
-- @treturn ?table the bandwidth, or nil when none has that id
-- @raise a Lua error ("eip emulator: ...") when the instance does not answer or
--   answers neither 200 nor 404
function Emulator:get_bandwidth(id)
  -- (one path segment, percent-encoded as the client encodes a query: a seeded id may hold '/', '?',
  -- '#', '%' or a space, which would read another route or bandwidth)
  local segment = id:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end)
  local answer, status = control(self, "GET", "bandwidths/" .. segment)
  if status == 404 then
    return nil
  end
  if status ~= 200 then
    error("eip emulator: GET bandwidths/" .. id .. ": HTTP " .. status, 2)
  end
  return answer.bandwidth
end

--- Every stored bandwidth, of every project, oldest first.
-- @treturn {table,...} the bandwidths, as the API shows them
-- @raise a Lua error ("eip emulator: ...") when the instance does not answer or
--   refuses the control call
function Emulator:bandwidths()
  return control(self, "GET", "bandwidths", nil, 200).bandwidths
end

--- Queue a fault-injection rule; rules are taken in the order they were queued, one per
-- request (see the README's emulator section).
-- @tparam table rule `{ method?, path? (a Lua pattern), status?, body?, action?, delay?, times?,
--   answered_by?, ... }`: see eip.emulator.server.inject
-- @treturn integer the number of rules pending
-- @raise a Lua error ("eip emulator: ...") for a rule the emulator refuses (HTTP 400
--   with its reason), or when the instance does not answer
function Emulator:inject(rule)
  return count(control(self, "POST", "inject", rule, 200).pending)
end

--- The counters since the start (or the last reset).
-- @treturn table `{ requests = n, connections = n, bandwidths = n, pending_injections = n,
--   tokens_issued = n, auth_failures = n (401s for bad tokens, signatures or IAM passwords), ... }`
-- @raise a Lua error ("eip emulator: ...") when the instance does not answer; and
--   reading `connections` raises when requests came on connections the emulator's store
--   was too full to mark (`uncounted_connections` of them): a count that falls short would pass
--   a test of connection reuse for nothing
function Emulator:stats()
  local stats = control(self, "GET", "stats", nil, 200)
  for k, v in pairs(stats) do stats[k] = count(v) end
  if stats.connections == nil then
    setmetatable(stats, { __index = function(_, key)
      if key == "connections" then
        error(string.format("eip emulator: connections not counted: its store was full when %d request(s) "
          .. "came on connections it could not mark (see the README's emulator section)",
          stats.uncounted_connections or 0), 2)
      end
    end })
  end
  return stats
end

--- The last 200 API requests, oldest first.
-- @treturn {table,...} `{ method, uri, path, headers, body, connection, endpoint, ... }` each
--   (`endpoint`: "api", "iam", "metadata" or "any")
-- @raise a Lua error ("eip emulator: ...") when the instance does not answer, or
--   when some of them are not in the log: the emulator's store was full when they
--   came (they were answered, not logged); a log with gaps would pass for the whole one
function Emulator:requests()
  local got = control(self, "GET", "requests", nil, 200)
  local missing = tonumber(got.missing) or 0
  if missing > 0 then
    error(string.format("eip emulator: %d of the last requests are not in its log: its store was full "
      .. "when they came (see the README's emulator section)", missing), 2)
  end
  return got.requests
end

--- Configure the accepted AK/SK pairs; replaces the current set (emu.aksk holds the one start
-- configured). Returns nothing.
-- @tparam table map `{ [ak] = { sk, project_id, security_token? } }`
-- @raise a Lua error ("eip emulator: ...") when the instance does not answer or
--   refuses the control call
function Emulator:set_aksk(map)
  control(self, "PUT", "aksk", { aksk = map }, 200)
end

--- Configure the IAM users; replaces the current set. Returns nothing.
-- @tparam {table,...} list `{ username, password, domain, project, project_id, projects? }` each,
--   as for the start option `users` (`projects`: more `{ [name] = id }` it may scope to)
-- @raise a Lua error ("eip emulator: ...") when the instance does not answer or
--   refuses the control call
function Emulator:set_users(list)
  local users = {}
  for i, user in ipairs(list) do
    local projects = {}
    for name, id in pairs(user.projects or {}) do
      projects[name] = id
    end
    if user.project and user.project_id then
      projects[user.project] = user.project_id
    end
    users[i] = { username = user.username, password = user.password, domain = user.domain,
      projects = projects }
  end
  control(self, "PUT", "users", { users = users }, 200)
end

--- Every token IAM issued so far expires now (configured tokens stay).
-- @treturn integer how many did
-- @raise a Lua error ("eip emulator: ...") when the instance does not answer or
--   refuses the control call
function Emulator:expire_tokens()
  return count(control(self, "POST", "expire_tokens", nil, 200).expired)
end

--- Lifetime of the tokens IAM issues from now on (reset restores it). Returns nothing.
-- @tparam number seconds the lifetime (default 86400: 24 h)
-- @raise a Lua error ("eip emulator: ...") when the instance does not answer or
--   refuses the control call
function Emulator:set_token_ttl(seconds)
  control(self, "PUT", "token_ttl", { seconds = seconds }, 200)
end

--- Put the emulator's clock `seconds` ahead of real time (negative: behind); 0 restores it.
-- It decides X-Sdk-Date skew and token expiry; reset restores it. Returns nothing.
-- @tparam number seconds the offset
-- @raise a Lua error ("eip emulator: ...") when the instance does not answer or
--   refuses the control call
function Emulator:set_clock_offset(seconds)
  control(self, "PUT", "clock", { offset = seconds }, 200)
end

--- Turn on behaviour of the real cloud (reset restores the defaults):
--   deleted_visible_for = s   a deleted bandwidth can still be read (GET) and listed for s seconds
--   creating_for = s          a bandwidth the API's create makes reads status CREATING for s
--                             seconds, then NORMAL (as the real one does for a while); meanwhile
--                             its delete, remove and insert answer 409 VPC.0512 (busy, modelled)
--   aksk_lock_after = n, aksk_lock_seconds = s   n failed signatures in a row lock an AK for s
--                             seconds (defaults: 5 and 300, as Huawei Cloud)
--   metadata_credential_ttl = s   lifetime of the metadata service's temporary keys (3600)
--   metadata_token_status = n     the metadata token route's status: 200, or an error (400-599:
--                                 404/405/503, a service without the token route)
--   metadata_same_keys = 0        the metadata service answers with new temporary keys each
--                                 time (default 1: the last keys it issued while they are valid,
--                                 as the real service does until it renews them)
--   throttle_rate = n             requests per second and user (token or AK) the gateway lets
--                                 through; the rest: 429 APIGW.0308 (0: no limit; stats.throttled)
--   throttle_retry_after = s      with throttle_rate: a Retry-After of s seconds on each 429
--
-- Returns nothing.
-- @tparam table knobs some of the knobs above; the others keep their values
-- @raise a Lua error ("eip emulator: ...") for a knob the emulator does not know or
--   a value it refuses (HTTP 400: a negative one, a count (n) that is no integer, another
--   metadata_token_status), or when the instance does not answer
function Emulator:set_knobs(knobs)
  control(self, "PUT", "knobs", knobs, 200)
end

--- The projects IAM lists for AK/SK lookups. Returns nothing.
-- @tparam {table,...} list `{ name =, id = }` each (default: every IAM user's projects)
-- @raise a Lua error ("eip emulator: ...") when the instance does not answer or
--   refuses the control call
function Emulator:set_projects(list)
  control(self, "PUT", "projects", { projects = list }, 200)
end

--- The emulator's own SDK-HMAC-SHA256 signature of a described request (to compare with
-- `eip.sign`'s).
-- @tparam table spec `{ method, url, headers = {name = value}, query? = {name = value}, body?,
--   ak, sk, signed_headers? = {names} }` (`signed_headers` default: every header given, plus
--   host from the url)
-- @treturn table `{ authorization, signature, canonical, string_to_sign, signed_headers }`
-- @raise a Lua error ("eip emulator: ...") for a spec the emulator cannot sign
--   (HTTP 400), or when the instance does not answer
function Emulator:verify(spec)
  return (control(self, "POST", "verify", spec, 200))
end

--- Headers for a request to this instance signed with AK/SK (by the emulator's implementation):
-- opts: method = "GET", path (with any query), headers? (extra, signed too), body?,
-- ak/sk/security_token (default: emu.ak/emu.sk; temporary = true: the temporary pair and its
-- token), project_id (X-Project-Id; default emu.project_id), date (X-Sdk-Date; default now),
-- signed_headers? (to leave some out), port (the Host signed for: default emu.port, the API's;
-- IAM's /v3/projects goes to emu.iam_port). Pass the result as emulator.http{ headers = ... }.
-- @tparam table opts the request, as above
-- @treturn table the headers `{ name = value }`, `Authorization` included
-- @raise a Lua error ("eip emulator: ...") when the instance does not answer the
--   signature's control call; a Lua error for `opts` that is no table
function Emulator:sign(opts)
  local headers = {}
  for name, value in pairs(opts.headers or {}) do
    headers[name] = value
  end
  local ak, sk, security_token = opts.ak or self.ak, opts.sk or self.sk, opts.security_token
  if opts.temporary then
    ak, sk = opts.ak or self.temp_ak, opts.sk or self.temp_sk
    security_token = security_token or self.security_token
  end
  headers["X-Sdk-Date"] = opts.date or os.date("!%Y%m%dT%H%M%SZ")
  headers["X-Project-Id"] = opts.project_id or self.project_id
  headers["X-Security-Token"] = security_token
  local base = opts.port and ("http://127.0.0.1:" .. opts.port) or self.url
  local answer = self:verify{ method = opts.method or "GET", url = base .. opts.path,
    headers = headers, body = opts.body, ak = ak, sk = sk, signed_headers = opts.signed_headers }
  headers["Authorization"] = answer.authorization
  return headers
end

-- Launching ----------------------------------------------------------------------------------

local live = {} -- instances started by this process and not yet stopped

-- Does an emulator answer on port (and, given its master's pid, is it that one: nginx retries a
-- taken port for a while before it exits, and meanwhile another emulator answers there)?
local function answers(port, pid)
  local resp = M.http{ port = port, path = "/__emulator/health", timeout = 0.5 }
  if resp == nil or resp.status ~= 200 then return false end
  if pid == nil then return true end
  local ok, health = pcall(cjson.decode, resp.body)
  return ok and type(health) == "table" and health.master_pid == pid
end

-- What the runner needs to start one emulator (see eip.emulator.nginx). `ports`: nil for one
-- port answering every route (detached instances); else a table that gets the ports of the
-- endpoints besides the API's (the runner's port): iam, metadata, and any (every route on one port,
-- for fronts that forward to a single upstream). They are picked anew at each attempt to start.
local function nginx_options(port, ports)
  local conf = require "eip.emulator.server.nginx_conf"
  return {
    config = function(fields)
      local main = tonumber(fields.PORT)
      if ports then
        local taken = { [main] = true }
        ports.iam, ports.metadata, ports.any = nginx.free_port_besides(taken), nginx.free_port_besides(taken),
          nginx.free_port_besides(taken)
        fields.SERVERS = conf.server(main, "api") .. conf.server(ports.iam, "iam")
          .. conf.server(ports.metadata, "metadata") .. conf.server(ports.any, "any")
      else
        fields.SERVERS = conf.server(main, "any")
      end
      return nginx.render(conf.template, fields)
    end,
    fields = { LUA_DIR = LUA_DIR }, ready = answers, port = port, label = "eip emulator",
  }
end

local START_OPTIONS = { tokens = true, port = true, aksk = true, users = true }

-- A port given (nil: a free one) as the integer nginx listens on: 8080.0 is 8080, which Lua 5.3+
-- would write "8080.0" into nginx's config and the instance's url. Raises at `level` otherwise.
local function port_of(port, level)
  if port == nil then return nil end
  if type(port) ~= "number" or port ~= math.floor(port) or port < 1 or port > 65535 then
    error("eip emulator: port must be an integer in 1..65535, got " .. tostring(port), level + 1)
  end
  return math.tointeger and math.tointeger(port) or port -- luacheck: ignore 143 (Lua 5.3+)
end

local function check_options(opts)
  for k in pairs(opts) do
    if not START_OPTIONS[k] then
      error("eip emulator: unknown start option '" .. tostring(k) .. "'", 3)
    end
  end
  if opts.tokens ~= nil and type(opts.tokens) ~= "table" then
    error("eip emulator: tokens must be a table { [token] = project_id }", 3)
  end
  if opts.aksk ~= nil and type(opts.aksk) ~= "table" then
    error("eip emulator: aksk must be a table { [ak] = { sk=, project_id=, security_token=? } }", 3)
  end
  if opts.users ~= nil and type(opts.users) ~= "table" then
    error("eip emulator: users must be a list of { username=, password=, domain=, project=, "
      .. "project_id= }", 3)
  end
end

local function token_set(extra)
  local tokens = { [M.DEFAULT_TOKEN] = M.DEFAULT_PROJECT_ID, [M.OTHER_TOKEN] = M.OTHER_PROJECT_ID }
  for token, project in pairs(extra or {}) do
    tokens[token] = project
  end
  return tokens
end

-- The default AK/SK pairs (permanent and temporary, both of the default project) plus extra.
local function aksk_set(extra)
  local set = {
    [M.DEFAULT_AK] = { sk = M.DEFAULT_SK, project_id = M.DEFAULT_PROJECT_ID },
    [M.TEMP_AK] = { sk = M.TEMP_SK, project_id = M.DEFAULT_PROJECT_ID,
      security_token = M.SECURITY_TOKEN },
  }
  for ak, cred in pairs(extra or {}) do
    set[ak] = cred
  end
  return set
end

-- The default IAM user plus extra users.
local function user_list(extra)
  local users = { {
    username = M.IAM_USER, password = M.IAM_PASSWORD, domain = M.IAM_DOMAIN,
    project = M.IAM_PROJECT, project_id = M.DEFAULT_PROJECT_ID,
    projects = { [M.OTHER_PROJECT] = M.OTHER_PROJECT_ID },
  } }
  for _, user in ipairs(extra or {}) do
    users[#users + 1] = user
  end
  return users
end

-- Send the authentication setup of a new instance.
local function configure(self)
  self:set_tokens(self.tokens)
  self:set_aksk(self.aksk)
  self:set_users(self.users)
end

--- Stop the instance: nginx is asked to quit, killed if it does not, reaped; the prefix goes.
-- Stopping twice is harmless. Returns nothing (a detached or attached instance: stopped as
-- @{stop_detached} stops it, its pid returned).
-- @raise never
function Emulator:stop()
  if self._stopped then
    return
  end
  self._stopped = true
  live[self] = nil
  if not self._nginx then return M.stop_detached(self.dir) end -- a detached instance
  self._nginx:stop() -- quit (or kill), reap, remove the prefix
end

Emulator.__close = Emulator.stop

-- An instance's table: where it listens and the credentials it accepts (the defaults plus
-- the start options').
local function instance(port, opts, fields, ports)
  ports = ports or { iam = port, metadata = port, any = port }
  local function url(p) return "http://127.0.0.1:" .. p end
  local self = setmetatable({
    url = url(port), port = port,
    iam_url = url(ports.iam), iam_port = ports.iam,
    metadata_url = url(ports.metadata), metadata_port = ports.metadata,
    any_url = url(ports.any), any_port = ports.any,
    token = M.DEFAULT_TOKEN, project_id = M.DEFAULT_PROJECT_ID,
    other_token = M.OTHER_TOKEN, other_project_id = M.OTHER_PROJECT_ID,
    tokens = token_set(opts.tokens),
    ak = M.DEFAULT_AK, sk = M.DEFAULT_SK, aksk = aksk_set(opts.aksk), users = user_list(opts.users),
    temp_ak = M.TEMP_AK, temp_sk = M.TEMP_SK, security_token = M.SECURITY_TOKEN,
    iam = { username = M.IAM_USER, password = M.IAM_PASSWORD, domain = M.IAM_DOMAIN,
      project = M.IAM_PROJECT, project_id = M.DEFAULT_PROJECT_ID },
  }, Emulator)
  for k, v in pairs(fields or {}) do self[k] = v end
  return self
end

--- Start an emulator, a child of this process (stopped by `emu:stop()`, `emulator.stop_all()`,
-- or when this Lua state closes).
-- @tparam[opt] table opts options:
-- @tparam[opt] table opts.tokens `{ [token] = project_id }` (added to the two defaults)
-- @tparam[opt] table opts.aksk `{ [ak] = { sk, project_id, security_token? } }` (added to the
--   defaults)
-- @tparam[opt] table opts.users `{ {username, password, domain, project, project_id}, ... }`
--   (added to the defaults)
-- @tparam[opt] integer opts.port the API's port (default: a free one)
-- @treturn table the instance (fields and methods: see the top of this file)
-- @raise a Lua error ("eip emulator: ...") for an unknown option or one of the
--   wrong type; nginx's runner's error when nginx (or its Lua module) does not start
function M.start(opts)
  opts = opts or {}
  check_options(opts)
  local ports = {}
  local launch_opts = nginx_options(port_of(opts.port, 2), ports)
  launch_opts.name = "emulator"
  local ok, inst = pcall(nginx.start, launch_opts)
  if not ok then
    error(inst, 2)
  end
  local self = instance(inst.port, opts, { pid = inst.pid, prefix = inst.prefix, _nginx = inst }, ports)
  -- The runner's instance carries its own finalizer guard (nginx is stopped when the Lua state
  -- closes without a stop).
  live[self] = true
  local err
  ok, err = pcall(configure, self)
  if not ok then
    self:stop()
    error(err, 2)
  end
  return self
end

--- Stop every instance this process started (as @{Emulator:stop}). Returns nothing.
-- @raise never
function M.stop_all()
  local all = {}
  for emu in pairs(live) do
    all[#all + 1] = emu
  end
  for _, emu in ipairs(all) do
    emu:stop()
  end
end

-- Detached instances (the eip-emulator command) ----------------------------------------------

local PORT_FILE = "emulator.port"

local function start_locked(dir, port)
  -- An nginx running here without the port file (written last, under the lock this start now
  -- holds) is what a start killed before it finished left: no one can reach it, and no start
  -- would ever finish it. It is stopped, as `stop` would, and this start begins anew.
  if nginx.master_of(dir) and not nginx.file_exists(dir .. "/" .. PORT_FILE) then
    nginx.stop_detached(dir, { PORT_FILE })
  end
  local ok, err, where = pcall(nginx.start_detached, dir, nginx_options(port), { PORT_FILE })
  if not ok then
    -- An nginx that started but never answered (its Lua side failed) must not stay behind;
    -- one that was already running is not ours to stop (and a directory that is not the
    -- emulator's is left alone by stop_detached).
    if not tostring(err):find("already running", 1, true) then nginx.stop_detached(dir, { PORT_FILE }) end
    error(err, 0)
  end
  port, dir = err, where
  local self = instance(port, {}, { dir = dir, pid = nginx.master_of(dir) })
  ok, err = pcall(configure, self)
  if not ok then
    nginx.stop_detached(dir, { PORT_FILE })
    error(err, 0)
  end
  nginx.write_file(dir .. "/" .. PORT_FILE, port .. "\n")
  return self
end

--- Start a daemonized emulator whose files (config, pid, logs) live in `dir`; it outlives this
-- process until `stop_detached(dir)`.
-- @tparam string dir its directory (created if needed)
-- @tparam[opt] integer port default: a free one
-- @treturn table the instance (its control methods work; its `stop` stops it as
--   @{stop_detached}); its `dir` is the directory's absolute path
-- @raise a Lua error when one already runs there, when `dir` holds files of those names that
--   the emulator did not write, when another user owns `dir` or could write in it (or move it:
--   a parent of another user's, or one others may write in without the sticky bit), when nginx
--   does not start, or when another start in `dir` does
--   not finish (two at once: one starts it, the other then raises that it already runs)
function M.start_detached(dir, port)
  port = port_of(port, 2)
  -- (under the directory's start lock to the end: its port file written, or what it began undone)
  local ok, self = pcall(nginx.with_start_lock, dir, "eip emulator", function(abs) return start_locked(abs, port) end)
  if not ok then error(self, 2) end
  return self
end

--- The detached emulator of `dir`, if one runs there and answers.
-- @tparam string dir its directory
-- @treturn ?table the instance, or nil
-- @treturn ?string why not, when nil
-- @raise never (but for a `dir` that is no string)
function M.attach(dir)
  local abs = nginx.absolute(dir)
  local port = tonumber(nginx.read_file(abs .. "/" .. PORT_FILE) or "")
  local pid = nginx.master_of(abs)
  if pid and not port then
    return nil, string.format("no emulator runs in %s: its nginx (pid %d) has no port file, a start's that was "
      .. "killed or is under way (a start replaces it; stop ends it)", dir, pid)
  end
  if not port or not pid then
    return nil, "no emulator runs in " .. dir
  end
  if not answers(port) then
    return nil, string.format("the emulator in %s (pid %d) does not answer on port %d", dir, pid, port)
  end
  return instance(port, {}, { dir = abs, pid = pid })
end

--- Stop the detached emulator of `dir` and remove its files (its logs stay). Only what
-- start_detached wrote is removed, and only its own nginx is signalled.
-- @tparam string dir its directory
-- @treturn ?integer the pid that was stopped, or nil when none ran (or `dir` is not the emulator's:
--   it is left alone)
-- @raise never
function M.stop_detached(dir)
  return nginx.stop_detached(dir, { PORT_FILE })
end

return M
