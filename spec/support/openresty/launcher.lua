-- Starts the OpenResty "app" for spec/openresty_spec.lua (plain Lua 5.4): a private nginx
-- running examples/openresty/nginx.conf, derived for the test run, and pointed at an emulator.
--
--   local launcher = require "spec.support.openresty.launcher"
--   local app = launcher.start(emu, { timeout = 1 })   -- app.port, app.url, app:stop(), ...
--
-- The derivation keeps the example's http block, init_by_lua code and admin location as they
-- are, and changes only what a test run must: one worker, the module paths of this checkout,
-- the port, the prefix, no resolver (endpoints are IP literals), a trust store of one certificate
-- (see UNTRUSTING_CA), and test-only settings and locations (http.conf.in, server.conf.in)
-- inserted next to the example's. Each edit must match exactly as often as expected, so a
-- change of the example that breaks it fails loudly here.
local nginx = require "spec.support.nginx"
local emulator = require "spec.support.emulator"

local M = {}

local HERE = nginx.dir_of(debug.getinfo(1, "S").source)
M.REPO = HERE:gsub("/spec/support/openresty$", "")
M.EXAMPLE = M.REPO .. "/examples/openresty/nginx.conf"
M.LUAJIT_CORE = M.REPO .. "/build/luajit/eip/core.so"
-- lua_ssl_trusted_certificate unless a start gives its own: a CA of no server's. The specs reach
-- no public server; and lua-nginx-module 0.10.23 loads the bundle once per location (the test
-- locations are some forty): the system's 144 certificates took seconds of CPU at each start,
-- and five legs of the matrix starting the app at once took past nginx.START_TIMEOUT (10 s).
M.UNTRUSTING_CA = M.REPO .. "/spec/fixtures/untrusting-ca.pem"

-- Replace `old` (a Lua pattern) by `new` (plain text); it must match `count` times.
local function edit(text, old, new, count)
  local out, n = text:gsub(old, function() return new end)
  if n ~= count then
    error(string.format("openresty launcher: expected %d match(es) of %q in %s, found %d",
      count, old, M.EXAMPLE, n), 0)
  end
  return out
end

local function read(path)
  return assert(nginx.read_file(path), "cannot read " .. path)
end

-- The example turned into a template for nginx.render (standard fields + REPO, HERE).
-- trusted_certificate: a PEM bundle for lua_ssl_trusted_certificate (default: M.UNTRUSTING_CA);
-- resolver: "127.0.0.1:PORT" of a DNS server for cosockets (default: none, IP literals only).
function M.derive(trusted_certificate, resolver)
  local text = read(M.EXAMPLE)
  assert(not text:find("@", 1, true), "the example must not contain '@' (template marker)")
  text = edit(text, "\nworker_processes auto;",
    "\nworker_processes @WORKERS@;\n@USER_DIRECTIVE@\n# A graceful stop must not wait for hung requests.\n"
    .. "worker_shutdown_timeout 1s;", 1)
  text = edit(text, "\nload_module /usr/lib/nginx/modules/", "\nload_module @MODULES_DIR@/", 2)
  text = edit(text, 'lua_package_path "[^"]*";',
    'lua_package_path "@REPO@/lua/?.lua;@REPO@/lua/?/init.lua;@HERE@/?.lua;;";', 1)
  text = edit(text, 'lua_package_cpath "[^"]*";', 'lua_package_cpath "@REPO@/build/luajit/?.so;;";', 1)
  if resolver then
    assert(resolver:match("^127%.0%.0%.1:%d+$"), "resolver: 127.0.0.1:PORT")
    text = edit(text, "\n%s*resolver [^\n]*;", "\n    resolver " .. resolver .. " ipv6=off;", 1)
  else
    text = edit(text, "\n%s*resolver [^\n]*;", "\n    # (test run: no resolver; endpoints are IP literals)", 1)
  end
  trusted_certificate = trusted_certificate or M.UNTRUSTING_CA
  assert(not trusted_certificate:find('[@"\\%c]'), "trusted_certificate: a plain path")
  text = edit(text, "\n(%s*)lua_ssl_trusted_certificate [^\n]*;",
    '\n    lua_ssl_trusted_certificate "' .. trusted_certificate .. '";', 1)
  text = edit(text, "\nhttp {\n", "\nhttp {\n" .. read(HERE .. "/http.conf.in"), 1)
  text = edit(text, "\n(%s*)listen 127%.0%.0%.1:8080;",
    "\n        listen 127.0.0.1:@PORT@@LISTEN_OPTS@;" .. read(HERE .. "/server.conf.in"), 1)
  return text
end

-- Ready once /ping answers with this instance's name: with reuseport (several workers), another
-- nginx listening the same way could take a port probed free before this one bound it, and
-- answer for it.
local function pings(port, instance)
  local resp = emulator.http{ port = port, path = "/ping", timeout = 0.5 }
  return resp ~= nil and resp.status == 200 and (resp.body or ""):find(instance, 1, true) ~= nil
end

local START_OPTIONS = { timeout = true, max_attempts = true, token = true, project_id = true, endpoint = true,
  ak = true, sk = true, security_token = true, trusted_certificate = true, resolver = true, workers = true,
  env = true }

-- Start the app against emulator `emu`. opts: timeout (EIP_TIMEOUT, default 1), max_attempts
-- (EIP_MAX_ATTEMPTS, default: the library's), token (false: no EIP_TOKEN), project_id, endpoint (default: the
-- emulator's), ak, sk, security_token (given as the official SDKs' environment variables, and
-- then no EIP_TOKEN: the app signs its requests), trusted_certificate (the PEM bundle nginx
-- verifies TLS peers of cosockets with), resolver ("127.0.0.1:PORT": nginx's DNS server for
-- cosockets, see spec/support/dns.lua), workers (default 1), env (more variables, over these:
-- "" for one that must be empty). Raises with nginx's log when it fails.
function M.start(emu, opts)
  opts = opts or {}
  for k in pairs(opts) do
    assert(START_OPTIONS[k], "openresty launcher: unknown option " .. tostring(k))
  end
  assert(nginx.file_exists(M.LUAJIT_CORE), M.LUAJIT_CORE .. " is missing: run `make luajit`")
  local template = M.derive(opts.trusted_certificate, opts.resolver)
  local env = {
    EIP_ENDPOINT = opts.endpoint or emu.url,
    EIP_PROJECT_ID = opts.project_id or emu.project_id,
    EIP_TOKEN = not opts.ak and opts.token ~= false and (opts.token or emu.token) or nil,
    HUAWEICLOUD_SDK_AK = opts.ak,
    HUAWEICLOUD_SDK_SK = opts.sk,
    HUAWEICLOUD_SDK_SECURITY_TOKEN = opts.security_token,
    EIP_TIMEOUT = tostring(opts.timeout or 1),
    EIP_MAX_ATTEMPTS = opts.max_attempts and tostring(opts.max_attempts) or nil,
  }
  for name, value in pairs(opts.env or {}) do env[name] = value end
  local instance = string.format("app-%d-%d-%d", os.time(), math.random(1, 1e9), math.floor(os.clock() * 1e6))
  return nginx.start{
    name = "app", label = "eip openresty app", error_log = "logs/error.log",
    config = function(fields) return nginx.render(template, fields) end,
    -- (several workers: each its own listening socket, the kernel spreading connections over
    -- them, so that a spec's requests reach every worker; one worker alone may accept them all)
    fields = { REPO = M.REPO, HERE = HERE, WORKERS = tostring(opts.workers or 1),
      LISTEN_OPTS = (opts.workers or 1) > 1 and " reuseport" or "", INSTANCE = instance },
    env = env,
    ready = function(port) return pings(port, instance) end,
  }
end

--- The start of a private nginx's configuration for the OpenResty specs' own apps: `workers`
-- worker processes, the Lua module loaded, everything under the private prefix, `main`
-- (directives of the main context, optional) and an http block left open, for the app's
-- settings and servers (and the closing brace).
function M.head(workers, main)
  return "@USER_DIRECTIVE@\nworker_processes " .. workers .. ";\n" .. (main and main .. "\n" or "") .. [=[
pid @PREFIX@/nginx.pid;
error_log @PREFIX@/error.log warn;
load_module @MODULES_DIR@/ndk_http_module.so;
load_module @MODULES_DIR@/ngx_http_lua_module.so;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path @PREFIX@/tmp/client_body;
    proxy_temp_path @PREFIX@/tmp/proxy;
    fastcgi_temp_path @PREFIX@/tmp/fastcgi;
    uwsgi_temp_path @PREFIX@/tmp/uwsgi;
    scgi_temp_path @PREFIX@/tmp/scgi;
]=]
end

return M
