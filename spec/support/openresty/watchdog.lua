-- Runs inside the test app nginx (LuaJIT). If the process that launched this nginx dies
-- without stopping it (killed test run, os.exit without closing the Lua state), remove the
-- private prefix and shut nginx down gracefully instead of leaving both behind.
-- luacheck: globals ngx
local M = {}

local INTERVAL = 1 -- seconds between checks that the launching process still lives
local SIGQUIT = 3
local PREFIX_PATTERN = "^/[%w/._-]*/eip%-%w+%.%w+$" -- only the runner's mktemp directories

function M.start(owner_pid, prefix)
  if not owner_pid or owner_pid <= 0 or not io.open("/proc/self/stat", "r") then
    return -- detached, or no /proc to watch with
  end
  local ffi = require "ffi"
  pcall(ffi.cdef, "int kill(int pid, int sig);")
  pcall(ffi.cdef, "int getppid(void);")
  pcall(ffi.cdef, "int getpid(void);")
  local master = require("ngx.process").get_master_pid()
  ngx.timer.every(INTERVAL, function(premature)
    if premature then
      return
    end
    if master and ffi.C.getppid() ~= master then
      -- The master was killed: this worker would otherwise serve forever as an orphan.
      ngx.log(ngx.WARN, "watchdog: the master process ", master, " is gone, shutting down")
      ffi.C.kill(ffi.C.getpid(), SIGQUIT)
      return
    end
    local f = io.open("/proc/" .. owner_pid .. "/stat", "r")
    if f then
      f:close()
      return
    end
    ngx.log(ngx.WARN, "watchdog: launching process ", owner_pid, " is gone, shutting down")
    -- Open files (error.log) keep working once unlinked.
    if prefix:match(PREFIX_PATTERN) then
      os.execute("rm -rf '" .. prefix .. "'")
    end
    if master then
      ffi.C.kill(master, SIGQUIT)
    end
  end)
end

return M
