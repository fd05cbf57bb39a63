-- TLS fixtures for the specs (plain Lua 5.4): a private certificate authority made with the
-- `openssl` command, and a private nginx that serves TLS with its certificates in front of an
-- EIP emulator (each TLS server proxies to the emulator, so the whole API works over https).
--
--   local tls = require "spec.support.tls"
--   local pki = tls.make_pki()          -- pki.dir, pki.ca (PEM of the test CA), pki:remove()
--   local front = tls.start(emu, pki)   -- front.ports.trusted / .untrusted / .wrong_name, front:stop(),
--                                       -- front.protocols(n): what the trusted server's requests spoke
--
-- The servers, all on 127.0.0.1 (no SNI is sent for an IP literal, so each has its port):
--   trusted     a certificate of the test CA for IP 127.0.0.1, DNS localhost and DNS
--               vpc-xx...x.proxied.test (M.PROXIED_NAME: a name only the test proxy resolves,
--               for requests that must go through it: see spec/support/proxy.lua)
--   untrusted   a certificate for the same names, issued by another CA nobody trusts
--   wrong_name  a certificate of the test CA for other names only (DNS wrong.example, IP 127.0.0.2)
--   ip_only     a certificate of the test CA whose subjectAltName is IP 127.0.0.1 alone, its common
--               name localhost (a name is matched against DNS entries only, once there is a SAN)
--   cn_only     a certificate of the test CA with no subjectAltName, its common name localhost
--   cn_only_ip  a certificate of the test CA with no subjectAltName, its common name 127.0.0.1
--   wildcards   a certificate of the test CA for DNS f*.partial.localhost (a partial wildcard, which
--               both transports refuse, as libcurl does) and DNS *.full.localhost (M.WILDCARD_HOSTS;
--               every *.localhost name is loopback to both transports, no resolver asked)
local nginx = require "spec.support.nginx"
local host = require "spec.support.host"
local dns = require "spec.support.dns"

local M = {}

--- A host name that is no loopback name and that nothing resolves but the test proxy: no DNS
-- server is asked about it (dns.never_asked), so a request sent directly fails at once, on any
-- machine (a DNS server that dropped the query had it time out instead).
M.PROXIED_NAME = dns.never_asked("vpc", "proxied.test")

--- Names of the `wildcards` server: `partial` matched by its partial wildcard entry alone
-- (f*.partial.localhost), `full` by its full one (*.full.localhost).
M.WILDCARD_HOSTS = { partial = "foo.partial.localhost", full = "foo.full.localhost" }

local q = nginx.shell_quote

local function run(cmd)
  local ok = host.execute(cmd .. " >/dev/null 2>&1")
  if not ok then
    error("tls fixture: command failed: " .. cmd, 0)
  end
end

local function key(path)
  run("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out " .. q(path))
end

-- A self-signed CA certificate.
local function make_ca(dir, name)
  key(dir .. "/" .. name .. ".key")
  run(string.format("openssl req -x509 -new -key %s -out %s -days 2 -subj %s"
    .. " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign",
    q(dir .. "/" .. name .. ".key"), q(dir .. "/" .. name .. ".crt"), q("/CN=lua-eip test " .. name)))
end

-- A server certificate for `san` (an openssl subjectAltName value; nil: none), issued by CA `ca`;
-- its common name `cn` ("lua-eip test <name>" by default).
local function make_leaf(dir, name, ca, san, cn)
  local base = dir .. "/" .. name
  key(base .. ".key")
  nginx.write_file(base .. ".ext", (san and ("subjectAltName=" .. san .. "\n") or "") .. "extendedKeyUsage=serverAuth\n"
    .. "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n")
  run(string.format("openssl req -new -key %s -out %s -subj %s", q(base .. ".key"), q(base .. ".csr"),
    q("/CN=" .. (cn or ("lua-eip test " .. name)))))
  run(string.format("openssl x509 -req -in %s -CA %s -CAkey %s -CAcreateserial -days 2 -out %s -extfile %s",
    q(base .. ".csr"), q(dir .. "/" .. ca .. ".crt"), q(dir .. "/" .. ca .. ".key"), q(base .. ".crt"),
    q(base .. ".ext")))
end

local Pki = {}
Pki.__index = Pki

--- Removes the directory of the fixture.
function Pki:remove()
  if self.dir:match("^/[%w/._-]*/eip%-pki%.%w+$") then
    os.execute("rm -rf " .. q(self.dir))
  end
end

--- Makes the CA, the other CA and the server certificates in a private temp directory.
function M.make_pki()
  local base = os.getenv("TMPDIR")
  if not base or base == "" then base = "/tmp" end
  local dir = nginx.capture("mktemp -d " .. q(base .. "/eip-pki.XXXXXXXX"))
  assert(dir:match("^/[%w/._-]*/eip%-pki%.%w+$"), "mktemp -d failed")
  local self = setmetatable({ dir = dir }, Pki)
  local ok, err = pcall(function()
    make_ca(dir, "ca")
    make_ca(dir, "other-ca")
    make_leaf(dir, "trusted", "ca", "IP:127.0.0.1,DNS:localhost,DNS:" .. M.PROXIED_NAME)
    make_leaf(dir, "untrusted", "other-ca", "IP:127.0.0.1,DNS:localhost")
    make_leaf(dir, "wrong_name", "ca", "DNS:wrong.example,IP:127.0.0.2")
    make_leaf(dir, "ip_only", "ca", "IP:127.0.0.1", "localhost")
    make_leaf(dir, "cn_only", "ca", nil, "localhost")
    make_leaf(dir, "cn_only_ip", "ca", nil, "127.0.0.1")
    make_leaf(dir, "wildcards", "ca", "DNS:f*.partial.localhost,DNS:*.full.localhost")
  end)
  if not ok then
    self:remove()
    error(err, 0)
  end
  self.ca = dir .. "/ca.crt"
  return self
end

M.SERVERS = { "trusted", "untrusted", "wrong_name", "ip_only", "cn_only", "cn_only_ip", "wildcards" }

-- The trusted server also offers HTTP/2 (ALPN "h2", as real API gateways do) and logs the
-- protocol of each request it served: the transports must speak HTTP/1.1 all the same.
local function server_block(name, port, pki, upstream_port, prefix)
  local h2, log = "", ""
  if name == "trusted" then
    h2, log = " http2", "        access_log " .. prefix .. "/logs/protocols.log protocol;\n"
  end
  return string.format([[
    server {
        listen 127.0.0.1:%d ssl%s;
%s        ssl_certificate %s/%s.crt;
        ssl_certificate_key %s/%s.key;
        location / {
            proxy_pass http://127.0.0.1:%d;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host 127.0.0.1:%d;
            proxy_buffering off;
        }
    }
]], port, h2, log, pki.dir, name, pki.dir, name, upstream_port, upstream_port)
end

local function config(fields, pki, upstream_port, ports)
  -- PORT (picked by the runner, retried when taken) is the trusted server's; the others get
  -- fresh free ports on every attempt.
  ports.trusted = tonumber(fields.PORT)
  local taken = { [ports.trusted] = true }
  for i = 2, #M.SERVERS do
    ports[M.SERVERS[i]] = nginx.free_port_besides(taken)
  end
  local servers = {}
  for _, name in ipairs(M.SERVERS) do
    servers[#servers + 1] = server_block(name, ports[name], pki, upstream_port, fields.PREFIX)
  end
  return nginx.render([[
@USER_DIRECTIVE@
worker_processes 1;
pid @PREFIX@/nginx.pid;
error_log @PREFIX@/error.log warn;
worker_shutdown_timeout 1s;
events { worker_connections 256; }
http {
    access_log off;
    log_format protocol $server_protocol;
    client_body_temp_path @PREFIX@/tmp/client_body;
    proxy_temp_path @PREFIX@/tmp/proxy;
    fastcgi_temp_path @PREFIX@/tmp/fastcgi;
    uwsgi_temp_path @PREFIX@/tmp/uwsgi;
    scgi_temp_path @PREFIX@/tmp/scgi;
    large_client_header_buffers 4 64k;
    proxy_buffer_size 64k;
    proxy_buffers 8 64k;
]], fields) .. table.concat(servers) .. "}\n"
end

--- Starts the TLS front of emulator `emu`. Returns the nginx instance with `ports` and `url(name)`.
function M.start(emu, pki)
  local ports = {}
  local inst = nginx.start{
    name = "tls", label = "eip tls front",
    config = function(fields) return config(fields, pki, emu.any_port, ports) end, -- every route: one upstream
  }
  inst.ports = ports
  function inst.url(name) -- luacheck: ignore self
    return "https://127.0.0.1:" .. ports[name]
  end
  --- The protocols of the requests the trusted server answered so far, oldest first
  -- ("HTTP/1.1", "HTTP/2.0"). nginx logs a request after answering it: this waits (up to 10 s)
  -- for at least `least` lines.
  function inst.protocols(least)
    local deadline = os.time() + 10
    local lines
    repeat
      lines = {}
      for line in (nginx.read_file(inst.prefix .. "/logs/protocols.log") or ""):gmatch("[^\n]+") do
        lines[#lines + 1] = line
      end
      if #lines >= (least or 0) then break end
      host.execute("sleep 0.02")
    until os.time() > deadline
    return lines
  end
  return inst
end

return M
