-- A server that goes away mid-request, for the specs (plain Lua 5.4 + LuaSocket), in a process
-- of its own on 127.0.0.1: its first request on a connection is answered 200 with `first_body`
-- (kept alive); the next request on that connection is read, then the listening socket and the
-- connection are closed (a resend finds the port refusing), and `pause` seconds later it listens
-- on the same port again and answers every request 404 VPC.0306 (a delete that the request it
-- lost had carried out).
--
--   local vanishing = require "spec.support.vanishing"
--   local s = vanishing.start('{"bandwidth":{"id":"bw-1"}}', 0.3)
--   local s = vanishing.start('{"bandwidth":{"id":"bw-1"}}', 0.3, pki)   -- https (LuaSec), the
--                                          -- "trusted" certificate of spec/support/tls.lua's pki
--   s.port, s:stop()
local M = {}

local SOURCE = debug.getinfo(1, "S").source

-- Reads a request head and its body (Content-Length); nil when the connection closed.
local function read_request(c)
  local head, length = {}, 0
  while true do
    local line = c:receive("*l")
    if not line then return nil end
    if line == "" then break end
    head[#head + 1] = line
    local n = line:lower():match("^content%-length:%s*(%d+)")
    if n then length = tonumber(n) end
  end
  if length > 0 and not c:receive(length) then return nil end
  return head[1]
end

local function answer(c, status, body)
  c:send(string.format("HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
    .. "X-Request-Id: vanishing\r\n\r\n%s", status, #body, body))
end

-- The accepted connection, TLS when `tls` (LuaSec's server parameters) is given.
local function wrapped(plain, tls)
  if not plain or not tls then return plain end
  local conn = require("ssl").wrap(plain, tls)
  if conn and conn:dohandshake() then return conn end
  plain:close()
  return nil
end

local function serve(first_body, pause, owner_pid, pki_dir)
  local socket = require "socket"
  local tls = pki_dir ~= "" and { mode = "server", protocol = "any", key = pki_dir .. "/trusted.key",
    certificate = pki_dir .. "/trusted.crt", options = { "all", "no_sslv3" } } or nil
  local server = assert(socket.bind("127.0.0.1", 0))
  local _, port = server:getsockname()
  io.stdout:write(port, "\n")
  io.stdout:flush()
  local plain = assert(server:accept())
  plain:settimeout(10)
  local c = assert(wrapped(plain, tls), "the first connection's handshake failed")
  if read_request(c) then answer(c, "200 OK", first_body) end
  read_request(c) -- the request it will never answer
  server:close()
  c:close()
  plain:close()
  socket.sleep(pause)
  server = assert(socket.bind("127.0.0.1", port))
  server:settimeout(1)
  local gone = '{"code":"VPC.0306","message":"No Eip bandwidth exist with id."}'
  while io.open("/proc/" .. owner_pid .. "/stat", "r") do
    local accepted = server:accept()
    if accepted then
      accepted:settimeout(5)
      local conn = wrapped(accepted, tls)
      while conn and read_request(conn) do answer(conn, "404 Not Found", gone) end
      accepted:close()
    end
  end
end

--- Starts one: `first_body` answers the first request, then the next is lost (see above) and
-- after `pause` seconds every request is answered 404 VPC.0306; over TLS with `pki`'s trusted
-- certificate when given. Returns it with `port`, `stop`.
function M.start(first_body, pause, pki)
  return require("spec.support.child").start(SOURCE, { first_body, tostring(pause), pki and pki.dir or "" },
    "vanishing")
end

-- Run as a script (`lua5.4 vanishing.lua serve OWNER_PID FIRST_BODY PAUSE PKI_DIR`): the server.
if not pcall(debug.getlocal, 4, 1) and arg and arg[1] == "serve" then
  serve(arg[3], tonumber(arg[4]), tonumber(arg[2]), arg[5] or "")
  os.exit(0)
end

return M
