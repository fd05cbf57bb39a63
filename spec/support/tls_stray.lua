-- A TLS server (LuaSec, a child process: spec/support/child.lua) that answers its first request
-- with a 204 whose head is exactly SIZE bytes, followed in the same write (so in the same TLS
-- record) by a stray 204 ("X-Request-Id: stray"), and every later request, on that connection or
-- another, with its own 404 ("X-Request-Id: own-answer"). One connection at a time. When SIZE is what a read of nginx's
-- fills, the stray bytes stay inside OpenSSL, where nginx's pool cannot see them.
--
--   local stray = require("spec.support.tls_stray").start(pki, size)   -- stray.port, stray:stop()
--   ...start(pki, size, "clean")   -- every answer the padded 204, no stray bytes
--   ...start(pki, 0, "chunked")    -- the first answer a chunked 409 ("X-Request-Id: first-answer",
--                                  -- body "{}"), the stray 204 after its end in the same write
--   ...start(pki, 0, "trickle")    -- a 200 head, then a body of one byte per TLS record, one
--                                  -- every 0.15 s (a slow loris: ~7 bytes/s, 23 times more on
--                                  -- the wire)
local M = {}

local function read_head(conn)
  local lines = {}
  while true do
    local line, err = conn:receive("*l")
    if not line then return nil, err end
    if line == "" then return lines end
    lines[#lines + 1] = line
  end
end

local function serve(owner_pid, dir, size, mode)
  local socket = require "socket"
  local ssl = require "ssl"
  local server = assert(socket.bind("127.0.0.1", 0))
  local _, port = server:getsockname()
  io.stdout:write(port, "\n")
  io.stdout:flush()
  local params = { mode = "server", protocol = "any", key = dir .. "/trusted.key",
    certificate = dir .. "/trusted.crt", options = { "all", "no_sslv3" } }
  server:settimeout(1)
  local first = true
  while true do
    local f = io.open("/proc/" .. owner_pid .. "/stat", "r")
    if not f then return end -- the spec process is gone
    f:close()
    local plain = server:accept()
    if plain then
      plain:settimeout(5)
      -- No Nagle: the stray bytes must leave with the answer, not wait for the client's ACK
      -- (a slow client, under valgrind, would otherwise have sent its next request first).
      plain:setoption("tcp-nodelay", true)
      local conn = ssl.wrap(plain, params)
      if conn and conn:dohandshake() then
        while read_head(conn) do
          if mode == "trickle" then
            conn:send("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nX-Request-Id: trickle\r\n\r\n")
            for _ = 1, 100 do
              if not conn:send("x") then break end
              socket.sleep(0.15)
            end
            break
          elseif first and mode == "chunked" then
            conn:send("HTTP/1.1 409 Conflict\r\nTransfer-Encoding: chunked\r\nX-Request-Id: first-answer\r\n\r\n"
              .. "2\r\n{}\r\n0\r\n\r\nHTTP/1.1 204 No Content\r\nX-Request-Id: stray\r\n\r\n")
            first = false
          elseif first or mode == "clean" then
            local head = "HTTP/1.1 204 No Content\r\nX-Request-Id: first-answer\r\nX-Pad: "
            head = head .. string.rep("p", size - #head - 4) .. "\r\n\r\n"
            conn:send(head .. (mode == "clean" and "" or "HTTP/1.1 204 No Content\r\nX-Request-Id: stray\r\n\r\n"))
            first = false
          else
            conn:send("HTTP/1.1 404 Not Found\r\nX-Request-Id: own-answer\r\nContent-Length: 0\r\n\r\n")
          end
        end
      end
      plain:close()
    end
  end
end

--- Starts the server with the trusted certificate of `pki` (spec/support/tls.lua). `mode`
-- "clean": every request gets the padded 204, and no stray bytes ever.
function M.start(pki, size, mode)
  return require("spec.support.child").start(debug.getinfo(1, "S").source,
    { pki.dir, tostring(size), mode or "stray" }, "tls stray server")
end

-- Run as a script (`lua5.4 tls_stray.lua serve OWNER_PID DIR SIZE`): the server itself.
if not pcall(debug.getlocal, 4, 1) and arg and arg[1] == "serve" then
  serve(tonumber(arg[2]), arg[3], tonumber(arg[4]), arg[5])
  os.exit(0)
end

return M
