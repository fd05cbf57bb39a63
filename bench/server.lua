--- The benchmark's servers: a private nginx on 127.0.0.1 from bench/nginx.conf.in (run by
-- spec/support/nginx.lua, stopped by its caller, and by a watchdog if the caller dies first).
--
--   local server = require "bench.server"
--   local inst = server.start("benchfast", "return 204;")          -- http
--   local inst = server.start("benchtls", "return 204;", pki)      -- https, pki from
--                                                                  -- spec.support.tls.make_pki()
--   inst.url ("http://127.0.0.1:PORT" or "https://..."), inst.ca (https: the CA file), inst:stop()
local nginx = require "spec.support.nginx"

local M = {}

--- The checkout the benchmark runs from: its lua/ holds the watchdog the servers load.
M.REPO = (nginx.dir_of("@bench/server.lua"):gsub("/bench$", ""))

--- Starts one. handler: the delete route's directives; pki: serve https with its "trusted"
-- certificate (IP 127.0.0.1, DNS localhost), TLS 1.2 and 1.3.
function M.start(name, handler, pki)
  local fields = { REPO = M.REPO, HANDLER = handler, LISTEN_OPTS = "", TLS = "" }
  if pki then
    fields.LISTEN_OPTS = " ssl"
    fields.TLS = string.format("ssl_certificate %s/trusted.crt; ssl_certificate_key %s/trusted.key; "
      .. "ssl_protocols TLSv1.2 TLSv1.3;", pki.dir, pki.dir)
  end
  local inst = nginx.start{ name = name, template = "bench/nginx.conf.in", label = "bench " .. name .. " server",
    fields = fields }
  if pki then
    inst.url, inst.ca = "https://127.0.0.1:" .. inst.port, pki.ca
  end
  return inst
end

return M
