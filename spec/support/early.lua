-- A server that speaks first, for spec/early_bytes_spec.lua (plain Lua 5.4 + LuaSocket), in a
-- process of its own on 127.0.0.1: on its first connection it writes an answer at once, before
-- any request (a 204, X-Request-Id "early"), then reads the first request and answers it (a 204,
-- X-Request-Id "first": as many bytes as the early one), and answers a request that still comes
-- there 204 "reused"; every later connection's requests are answered 204 "fresh".
--
--   local early = require "spec.support.early"
--   local s = early.start()    -- s.port, s:stop()
local M = {}

local SOURCE = debug.getinfo(1, "S").source

local function answer(id) return "HTTP/1.1 204 No Content\r\nX-Request-Id: " .. id .. "\r\n\r\n" end

local function read_request(c)
  while true do
    local line = c:receive("*l")
    if not line then return false end
    if line == "" then return true end
  end
end

local function serve(owner_pid)
  local socket = require "socket"
  local server = assert(socket.bind("127.0.0.1", 0))
  local _, port = server:getsockname()
  io.stdout:write(port, "\n")
  io.stdout:flush()
  local c = assert(server:accept())
  c:settimeout(10)
  c:send(answer("early"))
  if read_request(c) then c:send(answer("first")) end
  server:settimeout(0.2)
  c:settimeout(0.2)
  local conns = { c }
  while io.open("/proc/" .. owner_pid .. "/stat", "r") do
    local accepted = server:accept()
    if accepted then
      accepted:settimeout(0.2)
      conns[#conns + 1] = accepted
    end
    for i = #conns, 1, -1 do
      local line, err = conns[i]:receive("*l")
      if line then
        if read_request(conns[i]) then
          conns[i]:send(answer(conns[i] == c and "reused" or "fresh"))
        end
      elseif err == "closed" then
        table.remove(conns, i)
      end
    end
  end
end

--- Starts one (see above). Returns it with `port`, `stop`.
function M.start()
  return require("spec.support.child").start(SOURCE, {}, "early")
end

-- Run as a script (`lua5.4 early.lua serve OWNER_PID`): the server.
if not pcall(debug.getlocal, 4, 1) and arg and arg[1] == "serve" then
  serve(tonumber(arg[2]))
  os.exit(0)
end

return M
