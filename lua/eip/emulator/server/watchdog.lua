--- Runs inside an nginx the project starts (the emulator, the OpenResty test app, the
-- benchmark's servers), on its LuaJIT. Every second each worker checks two things:
--
--   * its master still lives (a killed master leaves its workers serving forever as orphans):
--     if not, the worker quits;
--   * the process that launched this nginx (owner_pid) still lives (a killed test run, or
--     os.exit without closing the Lua state that started it): if not, the private prefix is
--     removed and the master (or, without one, this process) asked to quit gracefully.
--     owner_pid 0 (a detached emulator, or no /proc to look in) leaves this check out.
-- @module eip.emulator.server.watchdog
-- luacheck: globals ngx
local M = {}

local INTERVAL = 1 -- seconds between checks
local SIGQUIT = 3
local PREFIX_PATTERN = "^/[%w/._-]*/eip%-%w+%.%w+$" -- only the launchers' mktemp directories

--- Starts the checks in this worker. @tparam integer owner_pid @tparam string prefix
function M.start(owner_pid, prefix)
  local ffi = require "ffi"
  pcall(ffi.cdef, "int kill(int pid, int sig);")
  pcall(ffi.cdef, "int getppid(void);")
  pcall(ffi.cdef, "int getpid(void);")
  local proc = io.open("/proc/self/stat", "r")
  if proc then proc:close() end
  local owner = proc and owner_pid and owner_pid > 0 and owner_pid or nil
  local master = require("ngx.process").get_master_pid() -- nil without a master process
  -- With master_process off (`make bench-openresty-profile` runs nginx so, under callgrind) the
  -- "master" is this process itself: there is no other to outlive, and none to ask to quit.
  if master == ffi.C.getpid() then master = nil end
  if not (owner or master) then return end
  ngx.timer.every(INTERVAL, function(premature)
    if premature then
      return
    end
    if master and ffi.C.getppid() ~= master then
      ngx.log(ngx.WARN, "watchdog: the master process ", master, " is gone, shutting down")
      ffi.C.kill(ffi.C.getpid(), SIGQUIT)
      return
    end
    if not owner then
      return
    end
    local f = io.open("/proc/" .. owner .. "/stat", "r")
    if f then
      f:close()
      return
    end
    ngx.log(ngx.WARN, "watchdog: launching process ", owner, " is gone, shutting down")
    -- Open files (error.log) keep working once unlinked.
    if prefix:match(PREFIX_PATTERN) then
      os.execute("rm -rf '" .. prefix .. "'")
    end
    ffi.C.kill(master or ffi.C.getpid(), SIGQUIT)
  end)
end

return M
