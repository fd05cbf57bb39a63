--- Transport selection. A transport has one job: send(req) -> response table (the shape the
-- C core returns: status, request_id, retry_after, content_type, location, body, truncated,
-- elapsed, new_connections, and curl_code/curl_error when no usable answer came).
--
-- Two transports exist:
--  * eip.transport.curl     libcurl through the C core; blocking. Everywhere outside nginx.
--  * eip.transport.cosocket nginx cosockets; yields to nginx's event loop, never blocks the
--                           worker. Inside nginx, in the phases that allow cosockets.
--
-- Inside nginx (OpenResty or nginx + lua-nginx-module) the choice is made per send(), from
-- ngx.get_phase(), because a client made in one phase (say init_by_lua, shared by every
-- request of a worker) is used in others. Cosockets are available in rewrite, access, content,
-- timer (ngx.timer.* callbacks, including those started from init_worker_by_lua), ssl_cert,
-- ssl_session_fetch and ssl_client_hello. Everywhere else -- init_by_lua*, init_worker_by_lua*
-- (outside a timer), set_by_lua*, header_filter_by_lua*, body_filter_by_lua*, log_by_lua*,
-- balancer_by_lua*, ssl_session_store_by_lua*, exit_worker_by_lua* -- nginx forbids cosockets,
-- and lua-eip falls back to libcurl: the call works, but it BLOCKS the whole worker (every
-- other request it serves) until the answer comes or the timeout fires. Prefer starting an
-- ngx.timer.at(0, ...) from those phases and calling lua-eip inside the timer.
--
-- Note for init_by_lua: a libcurl connection opened in the master before nginx forks would
-- be shared by every worker; close such a client (client:close(), or use the one-shot
-- eip.delete_bandwidth{...}) before init_by_lua ends.
local M = {}

-- Phases (ngx.get_phase() names) in which ngx.socket.tcp and ngx.sleep are allowed.
M.COSOCKET_PHASES = {
  rewrite = true, access = true, content = true, timer = true,
  ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true,
}

local function ngx_api()
  -- The nginx API is a global of the nginx Lua VM; rawget keeps plain Lua (and luacheck) happy.
  local ngx = rawget(_G, "ngx")
  if type(ngx) == "table" and type(ngx.get_phase) == "function" then
    return ngx
  end
  return nil
end

--- The current nginx phase, or nil outside nginx.
function M.phase()
  local ngx = ngx_api()
  if not ngx then return nil end
  local ok, phase = pcall(ngx.get_phase)
  return ok and phase or nil
end

--- true when the code runs inside nginx in a phase that allows cosockets (and so yielding).
function M.yieldable()
  return M.COSOCKET_PHASES[M.phase()] == true
end

--- The name of the transport a send() would use here and now: "cosocket" or "curl".
function M.current()
  return M.yieldable() and "cosocket" or "curl"
end

-- The automatic transport: one lazily made instance of each concrete transport, picked per
-- send(). Outside nginx this is the libcurl transport with one more table lookup per call.
local Auto = {}
Auto.__index = Auto
Auto.name = "auto"

function Auto:get(name)
  local t = self.instances[name]
  if not t then
    t = require("eip.transport." .. name).new(self.opts)
    self.instances[name] = t
  end
  return t
end

-- self.last names the transport the last send() used ("cosocket" or "curl"), for diagnostics.
function Auto:send(req)
  local name = M.current()
  self.last = name
  return self:get(name):send(req)
end

--- Closes the libcurl session, if one was made (the cosocket transport holds nothing).
function Auto:close()
  for _, t in pairs(self.instances) do
    t:close()
  end
  self.instances = {}
end

--- Picks the transport for where the code runs. opts: ca_file, insecure, user_agent.
-- Outside nginx, the libcurl transport itself; inside, the automatic one.
function M.new(opts)
  opts = opts or {}
  local copy = { ca_file = opts.ca_file, insecure = opts.insecure, user_agent = opts.user_agent }
  if not ngx_api() then
    return require("eip.transport.curl").new(copy)
  end
  return setmetatable({ opts = copy, instances = {} }, Auto)
end

-- Sleeping ------------------------------------------------------------------------------------

-- A non-busy OS sleep for where nginx cannot yield, from whatever is at hand: the C core's
-- sleep when it has one, else LuaJIT's FFI (poll with no descriptors), else LuaSocket.
local function os_sleep(seconds)
  local ok_core, core = pcall(require, "eip.core")
  if ok_core and type(core.sleep) == "function" then
    return core.sleep(seconds)
  end
  local ok_ffi, ffi = pcall(require, "ffi")
  if ok_ffi then
    pcall(ffi.cdef, "int poll(void *fds, unsigned long nfds, int timeout);")
    ffi.C.poll(nil, 0, math.floor(seconds * 1000 + 0.5))
    return
  end
  local ok_socket, socket = pcall(require, "socket")
  if ok_socket and socket.sleep then
    return socket.sleep(seconds)
  end
  error("eip.transport.sleep: no sleep available (need the C core's sleep, LuaJIT or LuaSocket)", 2)
end

--- Sleeps `seconds`: ngx.sleep (yields: the worker serves others meanwhile) where nginx allows
-- it, else an OS sleep (blocks this thread, without burning CPU).
function M.sleep(seconds)
  if type(seconds) ~= "number" or seconds ~= seconds or seconds < 0 then
    error("eip.transport.sleep: seconds must be a number >= 0", 2)
  end
  if seconds == 0 then return end
  if M.yieldable() then
    return ngx_api().sleep(seconds)
  end
  return os_sleep(seconds)
end

return M
