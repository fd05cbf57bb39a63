-- A tiny DNS responder for the specs (plain Lua + LuaSocket), so that nginx's `resolver`
-- can resolve host names in tests without any network: A queries for the names it was given
-- are answered with 127.0.0.1, every other name is NXDOMAIN (AAAA and others: no answer).
--
--   local dns = require "spec.support.dns"
--   local server = dns.start{ "localhost", "api.test" }  -- server.port (UDP, 127.0.0.1), server:stop()
--   dns.never_asked("no-such-host", "invalid")           -- a name no resolver is asked about
--
-- It runs as its own process (nginx asks it while the spec process waits on nginx), which exits
-- when stopped or when the process that started it is gone.
local M = {}

--- A host name that fails to resolve at once wherever the specs run, no DNS server asked: `first`
-- padded to a first label of 64 bytes, more than a DNS query carries (getaddrinfo fails without
-- a query: libcurl's 6, or 5 for a proxy; the cosocket transport's too), then "." and `rest`. A
-- name sent to the machine's DNS server is machine-dependent: a server that drops some queries
-- (one lookup in 30 here, one in 16 with five legs of the matrix asking) had libcurl time out on
-- it (28) instead, and a server that answers every name would resolve it.
function M.never_asked(first, rest)
  return first .. "-" .. string.rep("x", 63 - #first) .. "." .. rest
end

local SOURCE = debug.getinfo(1, "S").source

-- The responder's loop (runs in the child process).
local function serve(names, owner_pid)
  local socket = require "socket"
  local udp = assert(socket.udp())
  assert(udp:setsockname("127.0.0.1", 0))
  local _, port = udp:getsockname()
  io.stdout:write(port, "\n")
  io.stdout:flush()
  udp:settimeout(0.5)
  local known = {}
  for _, n in ipairs(names) do known[n:lower()] = true end
  while true do
    local query, ip, qport = udp:receivefrom()
    if query and #query >= 17 then
      -- The question: labels from byte 13, then QTYPE and QCLASS.
      local labels, i = {}, 13
      while i <= #query do
        local len = query:byte(i)
        if len == 0 then break end
        labels[#labels + 1] = query:sub(i + 1, i + len)
        i = i + len + 1
      end
      local question = query:sub(13, i + 4)
      local qtype = (query:byte(i + 1) or 0) * 256 + (query:byte(i + 2) or 0)
      local name = table.concat(labels, "."):lower()
      local found = known[name]
      local answer = ""
      if found and qtype == 1 then
        answer = "\192\12\0\1\0\1\0\0\0\60\0\4\127\0\0\1" -- pointer to the name, A, IN, TTL 60, 127.0.0.1
      end
      local flags = found and "\129\128" or "\129\131" -- response, RD, RA; NXDOMAIN when unknown
      udp:sendto(query:sub(1, 2) .. flags .. "\0\1" .. (answer ~= "" and "\0\1" or "\0\0") .. "\0\0\0\0"
        .. question .. answer, ip, qport)
    elseif not io.open("/proc/" .. owner_pid .. "/stat", "r") then
      return -- the spec process is gone
    end
  end
end

--- Starts a responder that knows `names` (a list). Returns it with `port` and `stop`.
function M.start(names)
  for _, n in ipairs(names) do assert(n:match("^[%w.-]+$"), "dns: bad name " .. n) end
  -- Required here: the child process (run as a script) needs none of the parent's helpers.
  return require("spec.support.child").start(SOURCE, names, "dns")
end

-- Run as a script (`lua5.4 dns.lua serve OWNER_PID NAME...`): the responder itself.
if not pcall(debug.getlocal, 4, 1) and arg and arg[1] == "serve" then
  local unpack = table.unpack or unpack -- luacheck: ignore 113 143 (table.unpack: 5.2+; unpack: 5.1, LuaJIT)
  serve({ select(3, unpack(arg)) }, tonumber(arg[2]))
  os.exit(0)
end

return M
