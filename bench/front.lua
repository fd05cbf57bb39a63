--- What the two nginx benchmarks (bench/openresty.lua, timed; bench/openresty_profile.lua,
-- counted) share: the upstream that answers the deletes, the front's template fields, its rows,
-- and wrk's load with every answer checked. Lua 5.4 (the benchmarks' interpreter).
--
--   local front = require "bench.front"
--   local up = front.upstream()                      -- nginx answering 204 to DELETE, 405 else
--   nginx.start{ template = front.TEMPLATE, fields = front.fields(up.port), ... }
--   front.ROWS                                       -- { key, path, label } of each location
--   local script = front.script(dir)                 -- wrk's script: every request a DELETE
--   local rate, requests = front.wrk(url, seconds, script, threads, connections [, timeout])
local nginx = require "spec.support.nginx"
local server = require "bench.server"

local M = {}

M.TEMPLATE = "bench/openresty.conf.in"
M.ID = "bw-bench-0001"

local PROJECT = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
local TOKEN = "bench-token-0123456789abcdef" -- the upstream does not check it
local USER_AGENT = "lua-eip/" .. require("eip.core")._VERSION -- what the client sends

--- The front's locations (bench/openresty.conf.in), lua-eip's first and the floor second.
M.ROWS = {
  { key = "eip", path = "/eip/", label = "lua-eip `client:delete_bandwidth` (cosocket transport, token auth)" },
  { key = "proxy", path = "/proxy/",
    label = "nginx `proxy_pass`, `upstream {}` with `keepalive`, the same header lines (floor)" },
  { key = "cosocket", path = "/cosocket/",
    label = "a cosocket in a few lines of Lua, the same request, only the status read (reference)" },
  { key = "bare", path = "/bare/", label = "nginx `proxy_pass` as above, Host only (reference)" },
}

--- The upstream both benchmarks send to: 204 to a DELETE on the delete route, 405 to any other
-- method (so a row that sent something else shows non-2xx answers).
function M.upstream()
  return server.start("benchup", "if ($request_method != DELETE) { return 405; } return 204;")
end

--- The front template's fields, for an upstream on upstream_port.
function M.fields(upstream_port)
  return { REPO = server.REPO, UPSTREAM_PORT = tostring(upstream_port), PROJECT = PROJECT, TOKEN = TOKEN,
    USER_AGENT = USER_AGENT }
end

--- wrk's script in dir: every request a DELETE, as an admin client would send it.
function M.script(dir)
  local path = dir .. "/delete.lua"
  nginx.write_file(path, 'wrk.method = "DELETE"\n')
  return path
end

--- One wrk run against url (BENCH_WRK, default wrk); returns requests/s and requests, after
-- checking that every answer was a 2xx and no socket failed. timeout: seconds wrk waits for an
-- answer before it counts a socket error (default wrk's 2 s).
function M.wrk(url, seconds, script, threads, connections, timeout)
  local cmd = string.format("%s -t%d -c%d -d%ds --timeout %ds -s %s %s 2>&1",
    nginx.shell_quote(os.getenv("BENCH_WRK") or "wrk"), threads, connections, seconds, timeout or 2,
    nginx.shell_quote(script), nginx.shell_quote(url))
  local out = nginx.capture(cmd)
  local rate = tonumber(out:match("Requests/sec:%s*([%d.]+)"))
  local requests = tonumber(out:match("(%d+) requests in"))
  if not (rate and requests and requests > 0) then error("bench: `" .. cmd .. "` printed:\n" .. out, 0) end
  local bad = out:match("Non%-2xx or 3xx responses: (%d+)")
  local socket_errors = out:match("Socket errors:[^\n]*")
  if bad or socket_errors then
    error("bench: " .. url .. ": " .. (bad and (bad .. " non-2xx answers") or socket_errors) .. "\n" .. out, 0)
  end
  return rate, requests
end

return M
