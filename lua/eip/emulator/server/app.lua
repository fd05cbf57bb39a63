-- Entry points of the EIP emulator inside nginx (see nginx.conf.in).
local api = require "eip.emulator.server.api"
local control = require "eip.emulator.server.control"
local inject = require "eip.emulator.server.inject"
local store = require "eip.emulator.server.store"
local util = require "eip.emulator.server.util"

local M = {}

local CONTROL_PREFIX = "/__emulator/"
local WATCH_INTERVAL = 1 -- seconds between checks that the launching process still lives
local SIGQUIT = 3

-- If the process that launched us dies without stopping us (killed test run, os.exit without
-- closing the Lua state), remove our private prefix and shut nginx down gracefully instead of
-- leaving both behind. owner_pid 0 (the detached CLI mode) disables this.
local function watch_owner(owner_pid, prefix)
  local ffi = require "ffi"
  pcall(ffi.cdef, "int kill(int pid, int sig);")
  local master = require("ngx.process").get_master_pid()
  local function check(premature)
    if premature then
      return
    end
    local f = io.open("/proc/" .. owner_pid .. "/stat", "r")
    if f then
      f:close()
      return
    end
    ngx.log(ngx.WARN, "emulator: launching process ", owner_pid, " is gone, shutting down")
    -- Open files (error.log) keep working once unlinked; only launcher-made dirs are removed.
    if prefix:match("^/[%w/._-]*/eip%-emulator%.[%w]+$") then
      os.execute("rm -rf '" .. prefix .. "'")
    end
    ffi.C.kill(master, SIGQUIT)
  end
  ngx.timer.every(WATCH_INTERVAL, check)
end

-- A worker whose master is gone (killed: no graceful stop reached it) shuts itself down
-- instead of serving forever as an orphan. Detached emulators too.
local function watch_master()
  local ffi = require "ffi"
  pcall(ffi.cdef, "int kill(int pid, int sig);")
  pcall(ffi.cdef, "int getppid(void);")
  pcall(ffi.cdef, "int getpid(void);")
  local master = require("ngx.process").get_master_pid()
  if not master then return end -- no master process (master_process off)
  ngx.timer.every(WATCH_INTERVAL, function(premature)
    if premature or ffi.C.getppid() == master then
      return
    end
    ngx.log(ngx.WARN, "emulator: the master process ", master, " is gone, shutting down")
    ffi.C.kill(ffi.C.getpid(), SIGQUIT)
  end)
end

function M.init_worker(owner_pid, prefix)
  util.seed_random()
  local proc = io.open("/proc/self/stat", "r") -- the watchdog needs /proc
  if proc then
    proc:close()
  end
  if owner_pid and owner_pid > 0 and proc then
    watch_owner(owner_pid, prefix)
  end
  watch_master()
end

local function lowered_headers()
  local out = {}
  for name, value in pairs(ngx.req.get_headers(200)) do
    out[name:lower()] = value
  end
  return out
end

local function record(method, body)
  store.record_request{
    method = method,
    uri = ngx.var.request_uri,
    path = ngx.var.uri,
    headers = lowered_headers(),
    body = body,
    connection = tonumber(ngx.var.connection),
    time = ngx.now(),
  }
end

function M.handle()
  local request_id = util.random_hex(16)
  ngx.ctx.request_id = request_id
  ngx.header["X-Request-Id"] = request_id
  ngx.header["Server"] = "api-gateway" -- what the real endpoint calls itself
  local method = ngx.req.get_method()
  local path = ngx.var.uri
  local body = util.read_body()
  if path:sub(1, #CONTROL_PREFIX) == CONTROL_PREFIX then
    return control.handle(method, path, body)
  end
  record(method, body)
  local rule = inject.take(method, path)
  if rule and rule.action == "lose_answer" then
    ngx.ctx.lose_answer = true -- util.send_* close the connection instead of answering
  elseif rule and rule.action == "slow" then
    if rule.delay and rule.delay > 0 then ngx.sleep(rule.delay) end
  elseif rule then
    return inject.perform(rule)
  end
  return api.handle(method, path, body)
end

return M
