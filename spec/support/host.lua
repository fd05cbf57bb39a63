-- The Lua the specs run under, and how to run commands from it on every version.
--
-- `make test-matrix` runs the whole suite under Lua 5.1, 5.2, 5.3, 5.4 and LuaJIT (see .busted):
-- a spec that starts another Lua process (bin/eip, the demo, an installed rock) starts the same
-- interpreter with the core built for it, and reads exit statuses the same way everywhere.
--
--   local host = require "spec.support.host"
--   host.lua          "lua5.1" ... "lua5.4", or "luajit": the command of this interpreter
--   host.version      "5.1" ... "5.4" (LuaJIT: "5.1"): LuaRocks' --lua-version
--   host.cpath        "build/<host.lua>/?.so": the checkout's core for this interpreter
--   host.luarocks     "luarocks --lua-version=5.4" (for LuaJIT with luajit as the interpreter)
--   host.execute(cmd) -> ok, exit status (os.execute returns a wait status in 5.1 / LuaJIT)
--   host.run(cmd)     -> stdout, exit status (io.popen's close tells none in 5.1 / LuaJIT)
--   host.rock_copy()  a temporary copy of what `luarocks make` builds from
--   host.quote(s)     the string as one shell word
--   host.ROOT         the checkout (absolute)
--   host.closed_port() a 127.0.0.1 port where a connection is refused, for the whole run
local nginx = require "spec.support.nginx"
local socket = require "socket"

local M = {}

M.luajit = rawget(_G, "jit") ~= nil
M.version = _VERSION:match("%d+%.%d+")
M.lua = M.luajit and "luajit" or "lua" .. M.version
M.cpath = "build/" .. M.lua .. "/?.so"

M.quote = nginx.shell_quote

-- Sockets bound and never listening: their ports refuse connections, and no other server (of
-- another matrix leg, say) can take them, as it could a port found free and let go.
local held = {}

--- A port of 127.0.0.1 on which every connection is refused until this process ends.
function M.closed_port()
  local s = assert(socket.tcp())
  assert(s:bind("127.0.0.1", 0))
  held[#held + 1] = s
  local _, port = s:getsockname()
  return tonumber(port)
end

--- Runs `cmd` (through the shell) and returns what it wrote to stdout and its exit status.
function M.run(cmd)
  local out = os.tmpname()
  local p = assert(io.popen("(" .. cmd .. ") >" .. M.quote(out) .. "; echo $?"))
  local code = tonumber(p:read("*a"):match("(%d+)%s*$"))
  p:close()
  local text = nginx.read_file(out) or ""
  os.remove(out)
  return text, code
end

M.ROOT = nginx.capture("pwd")

--- This run's interpreter with the checkout's modules and its core: a command to which a script's
-- path is appended.
M.lua_command = "env LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH=" .. M.quote(M.cpath .. ";;") .. " " .. M.lua

--- Runs the Lua text `script` as a file given to `command` (default M.lua_command; build/oom-host,
-- or the interpreter with a preload, elsewhere): what it wrote to stdout and stderr, its exit
-- status.
function M.run_script(script, command)
  local path = os.tmpname()
  nginx.write_file(path, script)
  local out, code = M.run((command or M.lua_command) .. " " .. M.quote(path) .. " 2>&1")
  os.remove(path)
  return out, code
end

-- LuaRocks for this interpreter. For LuaJIT, spec/fixtures/luarocks-luajit.lua (through
-- LUAROCKS_CONFIG_5_1, for that command only) names luajit as the 5.1 interpreter.
if M.luajit then
  M.luarocks = "LUAROCKS_CONFIG_5_1=" .. M.quote(M.ROOT .. "/spec/fixtures/luarocks-luajit.lua")
    .. " luarocks --lua-version=5.1"
else
  M.luarocks = "luarocks --lua-version=" .. M.version
end

--- Runs `cmd` through the shell. Returns whether it exited with status 0, and the status
-- (128 + the signal's number when a signal ended it).
function M.execute(cmd)
  local a, how, c = os.execute(cmd)
  local code
  if type(a) == "number" then -- Lua 5.1, LuaJIT: system()'s wait status
    code = a % 256 == 0 and math.floor(a / 256) or 128 + a % 128
  else
    code = how == "signal" and 128 + c or c
  end
  return code == 0, code
end

--- A new temporary directory holding what `luarocks make` reads (and `make clean` with it):
-- builds there leave the checkout as it is, and the legs of the matrix never share objects.
function M.rock_copy()
  local dir = nginx.capture("mktemp -d")
  assert(M.execute("cp -R Makefile mk eip-scm-1.rockspec src lua bin doc " .. M.quote(dir)), "cannot copy the checkout")
  -- What an earlier `luarocks make` left in the checkout (ignored by git) is not the source.
  assert(M.execute("rm -f " .. M.quote(dir) .. "/src/*.o"), "cannot clean the copy")
  return dir
end

return M
