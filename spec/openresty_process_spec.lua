-- OpenResty processes: what init_by_lua does in nginx's master before it forks the workers, and
-- what a worker holds while it reads an answer.
--
-- examples/openresty/nginx.conf checks its settings there: without credentials nginx does not
-- start (a usage error), rather than starting and asking the ECS metadata service at every
-- request.
--
-- A client made in init_by_lua, inside nginx with two workers: the master makes it and calls the
-- API with it (a start-up check), then forks the workers, each with a copy of the client's
-- libcurl handles and of their kept-alive connections. The C core must never let two processes
-- share a connection (src/http.c, "Fork safety" in src/http.h): each worker's first call through
-- libcurl (the log phase has no cosockets) opens connections of its own, and every answer is
-- the request's own. Without that, both workers sent on the master's connection at once and
-- read each other's answers. And a worker holds none of the master's connections from its start,
-- before any call (the fork closes the child's copies): a worker that never calls libcurl does not
-- keep them open after the master (or the server) closed them.
--
-- The API is a small nginx of this spec whose every answer is a 204 naming the request and the
-- connection it came on: X-Request-Id: <bandwidth id>@<connection number>.
--
-- A hostile answer of tiny chunks (3 bytes each, up to a body of 1 MiB) must cost a worker memory
-- in proportion to its bytes: the cosocket transport's reader (eip.transport.http1) joins the
-- chunks as they come, instead of keeping a string and a table entry per chunk (11 MB for 350k
-- of them). Its live memory is sampled while the answer is read.

-- The chunks of /chunks: 3 bytes each, all different (equal short strings are one string in
-- LuaJIT), CHUNKS of them: 1 MiB and 2 bytes of body.
local CHUNKS = 349526
local CHUNK_CODE = [[
local function chunk_data(i)
    return string.char(i % 256, math.floor(i / 256) % 256, math.floor(i / 65536) % 256)
end
]]
local cjson = require "cjson"
local socket = require "socket"
local nginx = require "spec.support.nginx"
local emulator = require "spec.support.emulator"
local launcher = require "spec.support.openresty.launcher"

local PROJECT = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"

-- What every nginx configuration here starts with (its http block left open).
local function head(workers)
  return launcher.head(workers, "worker_shutdown_timeout 1s;")
end

local ECHO = head(1) .. [[
    lua_package_path "@REPO@/lua/?.lua;;";
    keepalive_requests 100000;
    init_worker_by_lua_block { require("eip.emulator.server.watchdog").start(@OWNER_PID@, "@PREFIX@") }
    server {
        listen 127.0.0.1:@PORT@;
        # The tiny chunks, then a pause (the reader holds the whole body), then the last chunk.
        location = /chunks {
            content_by_lua_block {
                @CHUNK_CODE@
                local sock = assert(ngx.req.socket(true))
                local parts = {}
                for i = 1, @CHUNKS@ do parts[i] = "3\r\n" .. chunk_data(i) .. "\r\n" end
                sock:send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" .. table.concat(parts))
                ngx.sleep(0.3)
                sock:send("0\r\n\r\n")
            }
        }
        location ~ ^/v2\.0/[^/]+/bandwidths/(?<id>[^/]+)$ {
            content_by_lua_block {
                ngx.sleep(0.005) -- a little overlap between the workers' calls
                ngx.status = 204
                ngx.header["X-Request-Id"] = ngx.var.id .. "@" .. ngx.var.connection
                ngx.send_headers()
                ngx.eof()
            }
        }
    }
}
]]

local APP = head(2) .. [[
    lua_package_path "@REPO@/lua/?.lua;@REPO@/lua/?/init.lua;;";
    lua_package_cpath "@REPO@/build/luajit/?.so;;";
    lua_shared_dict outcomes 1m;

    init_by_lua_block {
        local eip = require "eip"
        local cjson = require "cjson"
        local function client(transport)
            return eip.new{ endpoint = "@API@", project_id = "@PROJECT@", token = "fork-test-token",
                max_attempts = 1, timeout = 5, transport = transport }
        end
        local app = {
            -- The default transport (libcurl where nginx has no cosockets), and libcurl itself
            -- (whose batches run in the C multi).
            clients = { auto = client(), curl = client(require("eip.transport.curl").new{}) },
        }
        -- The start-up calls, in the master, before the fork.
        local batch = app.clients.curl:delete_bandwidths({ "init-b1", "init-b2" })
        app.init = cjson.encode{
            auto = app.clients.auto:delete_bandwidth("init-auto").request_id,
            curl = app.clients.curl:delete_bandwidth("init-curl").request_id,
            batch = { batch[1].request_id, batch[2].request_id },
        }

        local function record(id, ok, res)
            ngx.shared.outcomes:set(id, cjson.encode{ ok = ok, worker = ngx.worker.pid(),
                request_id = ok and res.request_id or nil, error = not ok and tostring(res) or nil })
        end
        -- From log_by_lua: one delete, or a batch of comma-separated ids.
        function app.delete(which, id)
            local ok, res = pcall(app.clients[which].delete_bandwidth, app.clients[which], id)
            record(id, ok, res)
        end
        function app.batch(list)
            local ids = {}
            for id in list:gmatch("[^,]+") do ids[#ids + 1] = id end
            local ok, results = pcall(app.clients.curl.delete_bandwidths, app.clients.curl, ids, { concurrency = 3 })
            for i, id in ipairs(ids) do
                local r = ok and results[i]
                record(id, r and r.ok == true or false, r or results)
            end
        end
        -- The tiny chunks through the cosocket transport, the worker's live memory sampled (after
        -- a full collection) every few milliseconds meanwhile: its peak over the start, in KiB.
        @CHUNK_CODE@
        function app.chunks()
            local transport = require("eip.transport.cosocket").new{}
            local done, peak = false, 0
            collectgarbage()
            collectgarbage()
            local base = collectgarbage("count")
            local sampler = ngx.thread.spawn(function()
                while not done do
                    collectgarbage()
                    peak = math.max(peak, collectgarbage("count") - base)
                    ngx.sleep(0.005)
                end
            end)
            local resp = transport:send{ method = "GET", url = "@API@/chunks", headers = {}, timeout = 20,
                body_cap = 2097152 }
            done = true
            ngx.thread.wait(sampler)
            local want = {}
            for i = 1, @CHUNKS@ do want[i] = chunk_data(i) end
            ngx.say(cjson.encode{ status = resp.status, curl_code = resp.curl_code, curl_error = resp.curl_error,
                body_len = #resp.body, body_ok = resp.body == table.concat(want), peak_kib = peak })
        end
        -- At a worker's start, before any call: how many descriptors it holds connected to the
        -- API (the master's connections, if the fork left them to it).
        function app.count_held()
            local ffi = require "ffi"
            ffi.cdef "int getpeername(int fd, void *addr, unsigned int *len);"
            local api_port = tonumber(("@API@"):match(":(%d+)$"))
            local addr, len, held = ffi.new("uint8_t[128]"), ffi.new("unsigned int[1]"), 0
            for fd = 0, 4095 do
                len[0] = 128
                if ffi.C.getpeername(fd, addr, len) == 0 and ffi.cast("uint16_t *", addr)[0] == 2
                    and addr[2] * 256 + addr[3] == api_port then
                    held = held + 1
                end
            end
            ngx.shared.outcomes:set("held:" .. ngx.worker.pid(), held)
        end
        package.loaded.forkapp = app
    }
    init_worker_by_lua_block {
        require("eip.emulator.server.watchdog").start(@OWNER_PID@, "@PREFIX@")
        require("forkapp").count_held()
    }

    server {
        listen 127.0.0.1:@PORT@ reuseport;
        location = /init { content_by_lua_block { ngx.say(require("forkapp").init) } }
        location ~ ^/one/(?<which>auto|curl)/(?<id>[^/]+)$ {
            content_by_lua_block { ngx.say("the delete runs in the log phase") }
            log_by_lua_block { require("forkapp").delete(ngx.var.which, ngx.var.id) }
        }
        location ~ ^/batch/(?<ids>[^/]+)$ {
            content_by_lua_block { ngx.say("the batch runs in the log phase") }
            log_by_lua_block { require("forkapp").batch(ngx.var.ids) }
        }
        location = /chunks { content_by_lua_block { require("forkapp").chunks() } }
        location = /held {
            content_by_lua_block {
                local held = {}
                for _, key in ipairs(ngx.shared.outcomes:get_keys(0)) do
                    local pid = key:match("^held:(%d+)$")
                    if pid then held[pid] = ngx.shared.outcomes:get(key) end
                end
                ngx.say(require("cjson").encode(held))
            }
        }
        location ~ ^/outcome/(?<id>[^/]+)$ {
            content_by_lua_block { ngx.say(ngx.shared.outcomes:get(ngx.var.id) or "") }
        }
    }
}
]]

-- The spec API (ECHO: a 204 naming the request and its connection), started as `name`.
local function start_api(name, label)
  return nginx.start{ name = name, label = label, config = function(fields)
    fields.REPO, fields.CHUNK_CODE, fields.CHUNKS = launcher.REPO, CHUNK_CODE, CHUNKS
    return nginx.render(ECHO, fields)
  end }
end

-- An app of `template` calling `api`, with `extra` fields for the template's own placeholders.
local function start_app(name, label, template, api, extra)
  return nginx.start{ name = name, label = label, config = function(fields)
    fields.REPO, fields.API, fields.PROJECT = launcher.REPO, api.url, PROJECT
    for k, v in pairs(extra or {}) do fields[k] = v end
    return nginx.render(template, fields)
  end }
end

-- GET path of the app; the body.
local function get(port, path)
  local sock = socket.tcp()
  sock:settimeout(10)
  assert(sock:connect("127.0.0.1", port))
  assert(sock:send("GET " .. path .. " HTTP/1.0\r\nHost: app\r\n\r\n"))
  local text = sock:receive("*a")
  sock:close()
  local status, body = text:match("^HTTP/1%.%d (%d+).-\r\n\r\n(.*)$")
  assert.equal("200", status, text)
  return (body:gsub("\n$", ""))
end

-- The paths at once, each on a connection of its own (the requests are all sent before any
-- answer is read), so both workers call at the same time.
local function all_at_once(port, paths)
  local socks = {}
  for i = 1, #paths do
    local sock = socket.tcp()
    sock:settimeout(10)
    assert(sock:connect("127.0.0.1", port))
    socks[i] = sock
  end
  for i, path in ipairs(paths) do
    assert(socks[i]:send("GET " .. path .. " HTTP/1.0\r\nHost: app\r\n\r\n"))
  end
  for _, sock in ipairs(socks) do
    sock:receive("*a")
    sock:close()
  end
end

describe("OpenResty: the workers of an app whose client init_by_lua made #openresty", function()
  local api, app

  setup(function()
    assert(nginx.file_exists(launcher.LUAJIT_CORE), launcher.LUAJIT_CORE .. " is missing: run `make luajit`")
    api = start_api("forkapi", "fork spec API")
    app = start_app("forkapp", "fork spec app", APP, api, { CHUNK_CODE = CHUNK_CODE, CHUNKS = CHUNKS })
  end)

  teardown(function()
    if app then app:stop() end
    if api then api:stop() end
  end)

  it("a client made in init_by_lua opens connections of its own in each worker, every answer the request's own",
    function()
    local init = cjson.decode(get(app.port, "/init"))
    -- The master's connections: one per client, and the batch's (the C multi's).
    local master = {}
    for _, rid in ipairs{ init.auto, init.curl, init.batch[1], init.batch[2] } do
      local conn = rid:match("@(%d+)$")
      assert(conn, rid)
      master[conn] = true
    end

    local paths, ids = {}, {}
    for i = 1, 12 do
      for _, which in ipairs{ "auto", "curl" } do
        local id = which .. "-" .. i
        paths[#paths + 1] = "/one/" .. which .. "/" .. id
        ids[#ids + 1] = id
      end
    end
    for i = 1, 4 do
      local list = {}
      for j = 1, 3 do
        list[j] = "batch-" .. i .. "-" .. j
        ids[#ids + 1] = list[j]
      end
      paths[#paths + 1] = "/batch/" .. table.concat(list, ",")
    end
    all_at_once(app.port, paths)

    local outcomes, workers = {}, {}
    local deadline = socket.gettime() + 30
    for _, id in ipairs(ids) do
      local text
      repeat
        text = get(app.port, "/outcome/" .. id)
        if text == "" then
          assert(socket.gettime() < deadline, "no outcome for " .. id .. "\n" .. app:log_tail(20))
          socket.sleep(0.05)
        end
      until text ~= ""
      outcomes[id] = cjson.decode(text)
      workers[outcomes[id].worker] = true
    end

    local count = 0
    for _ in pairs(workers) do count = count + 1 end
    assert.equal(2, count, "both workers must have called")
    for _, id in ipairs(ids) do
      local o = outcomes[id]
      assert.is_true(o.ok, id .. ": " .. tostring(o.error))
      local own, conn = o.request_id:match("^(.-)@(%d+)$")
      assert.equal(id, own, "the answer of another request: " .. o.request_id)
      assert.is_nil(master[conn], id .. " went on the master's connection " .. tostring(conn))
    end
  end)

  it("a worker holds none of the master's connections from its start, before any call", function()
    local held, count
    local deadline = socket.gettime() + 10
    repeat
      held = cjson.decode(get(app.port, "/held"))
      count = 0
      for _ in pairs(held) do count = count + 1 end
      if count < 2 then
        assert(socket.gettime() < deadline, "the workers did not count\n" .. app:log_tail(20))
        socket.sleep(0.05)
      end
    until count >= 2
    for pid, n in pairs(held) do
      assert.equal(0, n, "worker " .. pid .. " holds " .. n .. " of the master's connections")
    end
  end)

  it("reads an answer of 350k tiny chunks through cosockets in memory proportional to its bytes", function()
    local r = cjson.decode(get(app.port, "/chunks"))
    assert.equal(200, r.status, r.curl_error)
    assert.is_nil(r.curl_code, r.curl_error)
    assert.equal(3 * CHUNKS, r.body_len)
    assert.is_true(r.body_ok)
    -- The body is 1 MiB: kept as it comes, joined, it stays near that (a string and a table entry
    -- per chunk were 17 MiB).
    assert.is_true(r.peak_kib < 4096, "the worker held " .. r.peak_kib .. " KiB while reading")
  end)
end)

describe("examples/openresty/nginx.conf without credentials #openresty", function()
  it("does not start: init_by_lua raises a usage error, the metadata service is never asked", function()
    -- A metadata service that would be asked if the example fell back to it.
    local metadata = assert(socket.bind("127.0.0.1", 0))
    local _, metadata_port = metadata:getsockname()
    local no_api = { url = "http://127.0.0.1:9", project_id = PROJECT }
    -- No EIP_TOKEN at all (empty, when this process has one: nginx would inherit it).
    local ok, err = pcall(launcher.start, no_api, { token = os.getenv("EIP_TOKEN") and "" or false, env = {
      OS_AUTH_TOKEN = "", HUAWEICLOUD_SDK_AK = "", HUAWEICLOUD_SDK_SK = "", HUAWEICLOUD_SDK_SECURITY_TOKEN = "",
      HUAWEICLOUD_SDK_CREDENTIALS_FILE = "/dev/null",
      EIP_METADATA_URL = "http://127.0.0.1:" .. metadata_port,
    } })
    metadata:close()
    if ok then err:stop() end
    assert.is_false(ok, "nginx started without credentials")
    assert.matches("init_by_lua error", err)
    assert.matches("credentials not found", err, 1, true)
    assert.matches("metadata_url = false", err, 1, true)
  end)
end)

-- The same in a plain LuaJIT process that forks (through the FFI), over TLS, where sharing would
-- also break the parent's connection: the child's own requests, or its freeing the inherited
-- session (a TLS close_notify on the parent's connection), would leave the parent a connection
-- the server has closed or whose TLS state is off. The parent's connection must go on serving it.
-- And a child that gives the connection's descriptor number to a file of its own (daemons close
-- what they do not know and open their own files) before it calls, then frees the session, must
-- find its file open and untouched: cleaning up the inherited handle would write a close_notify
-- to the file and close it.
describe("a session made before a fork, over TLS #openresty", function()
  local tls = require "spec.support.tls"
  local emu, pki, front

  setup(function()
    emu = emulator.start()
    pki = tls.make_pki()
    front = tls.start(emu, pki)
  end)

  teardown(function()
    if front then front:stop() end
    if pki then pki:remove() end
    if emu then emu:stop() end
  end)

  local SCRIPT = [=[
local core_dir, port, ca, user_path = ...
port = tonumber(port)
package.cpath = core_dir .. "/?.so;;"
local core = require "eip.core"
local ffi = require "ffi"
ffi.cdef [[
int fork(void);
int waitpid(int pid, int *status, int options);
void _exit(int status);
unsigned int alarm(unsigned int seconds);
int getpeername(int fd, void *addr, unsigned int *len);
int open(const char *path, int flags, int mode);
int dup2(int from, int to);
int close(int fd);
int fcntl(int fd, int cmd, ...);
long write(int fd, const void *buf, unsigned long n);
]]
local session = core.session{ ca_file = ca }
-- (With the low-speed check on: the child's new handle must have it on too.)
local function request(tag)
  local r = session:request{ method = "GET", url = "https://127.0.0.1:" .. port .. "/v2.0/p/bandwidths/" .. tag,
    headers = {}, timeout = 5, connect_timeout = 5, low_speed_limit = 100, low_speed_time = 1 }
  return string.format("%s %d %d %s\n", tag, r.status, r.new_connections, tostring(r.curl_code))
end
-- The descriptor connected to the server (its peer is the server's port), or -1.
local function connection_fd()
  local addr, len = ffi.new("uint8_t[128]"), ffi.new("unsigned int[1]")
  for fd = 0, 1023 do
    len[0] = 128
    if ffi.C.getpeername(fd, addr, len) == 0 and ffi.cast("uint16_t *", addr)[0] == 2
        and addr[2] * 256 + addr[3] == port then
      return fd
    end
  end
  return -1
end
io.stdout:write(request("parent"))
io.stdout:flush()
local fd = connection_fd()
local function child(fn)
  local pid = ffi.C.fork()
  if pid == 0 then
    ffi.C.alarm(20)
    fn()
    io.stdout:flush()
    ffi.C._exit(0)
  end
  ffi.C.waitpid(pid, nil, 0)
end
-- F_GETFD = 1: -1 once closed.
child(function() io.stdout:write("held ", fd, " ", ffi.C.fcntl(fd, 1), " ", connection_fd(), "\n") end)
child(function() io.stdout:write(request("child")) session:close() end)
child(function() -- a trickle: the low-speed abort (not the timeout)
  local r = session:request{ method = "GET", url = "https://127.0.0.1:" .. port .. "/v2.0/p/bandwidths/slow-child",
    headers = {}, timeout = 5, connect_timeout = 5, low_speed_limit = 100, low_speed_time = 1 }
  io.stdout:write("slow ", tostring(r.curl_code), " ", (tostring(r.curl_error):gsub(" ", "_")), "\n")
end)
io.stdout:write(request("parent-after-child"))
io.stdout:flush()
child(function() session:close() end)
io.stdout:write(request("parent-after-close"))
io.stdout:flush()
-- O_WRONLY|O_CREAT|O_TRUNC (Linux), 0600: the child's file on the connection's number.
child(function()
  local f = ffi.C.open(user_path, 577, 384)
  if f ~= fd then
    ffi.C.dup2(f, fd)
    ffi.C.close(f)
  end
  io.stdout:write(request("child-reuse"))
  session:close()
  io.stdout:write("reused ", tonumber(ffi.C.write(fd, "mine\n", 5)), "\n")
end)
io.stdout:write(request("parent-after-reuse"))
]=]

  it("is never used by the child: the parent's TLS connection goes on serving it", function()
    local path, user_path = os.tmpname(), os.tmpname()
    finally(function()
      os.remove(path)
      os.remove(user_path)
    end)
    local f = assert(io.open(path, "w"))
    f:write(SCRIPT)
    f:close()
    emu:inject{ method = "GET", path = "slow%-child", action = "trickle", status = 500, body_size = 100,
      trickle_interval = 0.1 }
    local core_dir = launcher.LUAJIT_CORE:gsub("/eip/core%.so$", "")
    local cmd = string.format("luajit %s %s %d %s %s 2>&1", nginx.shell_quote(path), nginx.shell_quote(core_dir),
      front.ports.trusted, nginx.shell_quote(pki.ca), nginx.shell_quote(user_path))
    local pipe = assert(io.popen(cmd))
    local out = pipe:read("*a")
    pipe:close()
    local lines = {}
    for tag, status, new, code in out:gmatch("(%S+) (%d+) (%d+) (%S+)\n") do
      lines[tag] = { status = tonumber(status), new = tonumber(new), code = code }
    end
    for _, tag in ipairs{ "parent", "child", "parent-after-child", "parent-after-close", "child-reuse",
        "parent-after-reuse" } do
      assert(lines[tag], "no line for " .. tag .. " in:\n" .. out)
      assert.equal("nil", lines[tag].code, out)
      assert.is_true(lines[tag].status > 0, out)
    end
    assert.matches("\nslow 28 Operation_too_slow", out, 1, true)
    assert.equal(1, lines.parent.new, out)
    assert.equal(1, lines.child.new, "the child must connect on its own:\n" .. out)
    assert.equal(1, lines["child-reuse"].new, "the child must connect on its own:\n" .. out)
    assert.equal(0, lines["parent-after-child"].new, "the parent's connection was broken:\n" .. out)
    assert.equal(0, lines["parent-after-close"].new, "the parent's connection was broken:\n" .. out)
    assert.equal(0, lines["parent-after-reuse"].new, "the parent's connection was broken:\n" .. out)
    -- A child holds none of the parent's connections from the fork on, before any call.
    local fd, getfd, other = out:match("held (%-?%d+) (%-?%d+) (%-?%d+)\n")
    assert(fd, "no held line in:\n" .. out)
    assert.is_true(tonumber(fd) >= 0, out)
    assert.equal("-1", getfd, "the child still holds the parent's connection (fd " .. fd .. "):\n" .. out)
    assert.equal("-1", other, "the child still holds a connection of the parent's:\n" .. out)
    -- The child's file, on the connection's number: open, and nothing but the child's own write.
    assert.equal("5", out:match("reused (%-?%d+)\n"), "the child's file was closed under it:\n" .. out)
    local file = assert(io.open(user_path, "rb"))
    local content = file:read("*a")
    file:close()
    assert.equal("mine\n", content, "something wrote to the child's file (" .. #content .. " bytes)")
  end)
end)

-- An app that loads lua-eip first where nginx lets no coroutine be made (init_worker_by_lua, the
-- log phase), with no init_by_lua before: `require "eip"` must not make one as it loads (it
-- once did, to learn whether pcall lets a yield through: "API disabled in the context of
-- init_worker_by_lua*", and no client at all). FIRST says where the module is first loaded.
local FIRST_LOAD = head(1) .. [[
    lua_package_path "@REPO@/lua/?.lua;@REPO@/lua/?/init.lua;;";
    lua_package_cpath "@REPO@/build/luajit/?.so;;";
    lua_shared_dict outcomes 1m;
    init_worker_by_lua_block {
        require("eip.emulator.server.watchdog").start(@OWNER_PID@, "@PREFIX@")
        if "@FIRST@" == "init_worker" then
            local ok, err = pcall(function()
                package.loaded.firstclient = require("eip").new{ endpoint = "@API@", token = "first-load-token",
                    project_id = "@PROJECT@", max_attempts = 1 }
            end)
            ngx.shared.outcomes:set("init_worker", ok and "loaded" or tostring(err))
        end
    }
    server {
        listen 127.0.0.1:@PORT@;
        location ~ ^/delete/(?<id>[^/]+)$ {
            content_by_lua_block {
                local res = package.loaded.firstclient:delete_bandwidth(ngx.var.id)
                ngx.say(res.status, " ", res.request_id)
            }
        }
        location ~ ^/log/(?<id>[^/]+)$ {
            content_by_lua_block { ngx.say("the delete runs in the log phase") }
            log_by_lua_block {
                local ok, res = pcall(function()
                    return require("eip").new{ endpoint = "@API@", token = "first-load-token",
                        project_id = "@PROJECT@", max_attempts = 1 }:delete_bandwidth(ngx.var.id)
                end)
                ngx.shared.outcomes:set("log", ok and (res.status .. " " .. res.request_id) or tostring(res))
            }
        }
        location ~ ^/outcome/(?<key>[^/]+)$ {
            content_by_lua_block { ngx.say(ngx.shared.outcomes:get(ngx.var.key) or "none yet") }
        }
    }
}
]]

describe("OpenResty: lua-eip loaded first where nginx forbids coroutines #openresty", function()
  local api, apps = nil, {}

  setup(function()
    assert(nginx.file_exists(launcher.LUAJIT_CORE), launcher.LUAJIT_CORE .. " is missing: run `make luajit`")
    api = start_api("firstapi", "first-load spec API")
    for _, first in ipairs{ "init_worker", "log" } do
      apps[first] = start_app("first" .. (first:gsub("_", "")), "first-load spec app (" .. first .. ")",
        FIRST_LOAD, api, { FIRST = first })
    end
  end)

  teardown(function()
    for _, app in pairs(apps) do app:stop() end
    if api then api:stop() end
  end)

  it("in init_worker_by_lua: the client made there deletes", function()
    local app = apps.init_worker
    assert.equal("loaded", get(app.port, "/outcome/init_worker"))
    assert.matches("^204 worker%-first@%d+$", get(app.port, "/delete/worker-first"))
  end)

  it("in log_by_lua: the delete made there goes through (libcurl)", function()
    local app = apps.log
    assert.equal("the delete runs in the log phase", get(app.port, "/log/log-first"))
    local outcome
    local deadline = socket.gettime() + 10
    repeat
      outcome = get(app.port, "/outcome/log")
      if outcome == "none yet" then socket.sleep(0.02) end
    until outcome ~= "none yet" or socket.gettime() > deadline
    assert.matches("^204 log%-first@%d+$", outcome)
  end)
end)

-- The request path compiles. Inside nginx a delete's code runs as LuaJIT traces; what LuaJIT cannot
-- compile (a closure's upvalues closed as a function returns, UCLO; see the rules at the top of
-- eip.transport.http1) cuts every request's trace there, and was once on the path of every pooled
-- connection: some 6k instructions a request. jit.v records the worker's traces while one
-- handler makes many deletes; no trace may be aborted in lua-eip's code for something LuaJIT
-- does not implement (NYI), but the returns into a lower frame that the README names.
local JIT_APP = head(1) .. [[
    lua_package_path "@REPO@/lua/?.lua;@REPO@/lua/?/init.lua;@JITLIB@/?.lua;;";
    lua_package_cpath "@REPO@/build/luajit/?.so;;";
    init_worker_by_lua_block {
        require("eip.emulator.server.watchdog").start(@OWNER_PID@, "@PREFIX@")
        package.loaded.jitclient = require("eip").new{ endpoint = "@API@", token = "jit-spec-token-0001",
            project_id = "@PROJECT@", max_attempts = 1 }
    }
    server {
        listen 127.0.0.1:@PORT@;
        location = /deletes {
            content_by_lua_block {
                local v = require "jit.v"
                local c, ok = package.loaded.jitclient, 0
                -- One delete first: what it loads (the transport's modules) runs its main chunk
                -- once, traced or not; only the request path is looked at.
                c:delete_bandwidth("3fa1e2b4-1111-2222-3333-000000000000")
                v.on("@PREFIX@/jitv.log")
                for i = 1, 400 do
                    if c:delete_bandwidth(string.format("3fa1e2b4-1111-2222-3333-%012d", i)).status == 204 then
                        ok = ok + 1
                    end
                end
                v.off()
                ngx.say(ok)
            }
        }
    }
}
]]

describe("OpenResty: the request path of a delete compiles #openresty", function()
  local api, app

  setup(function()
    assert(nginx.file_exists(launcher.LUAJIT_CORE), launcher.LUAJIT_CORE .. " is missing: run `make luajit`")
    local jitlib = nginx.capture("ls -d /usr/share/luajit*/jit/v.lua 2>/dev/null | head -1"):gsub("/jit/v%.lua%s*$", "")
    assert(jitlib ~= "", "LuaJIT's jit/v.lua not found (libluajit2-5.1-common)")
    api = start_api("jitapi", "jit spec API")
    app = start_app("jitapp", "jit spec app", JIT_APP, api, { JITLIB = jitlib })
  end)

  teardown(function()
    if app then app:stop() end
    if api then api:stop() end
  end)

  it("no trace aborted in lua-eip's code by what LuaJIT cannot compile, but a return into a lower frame",
    function()
    assert.equal("400", get(app.port, "/deletes"))
    local log = assert(nginx.read_file(app.prefix .. "/jitv.log"))
    local ours = {}
    for file in nginx.capture("cd " .. launcher.REPO .. "/lua && find eip -name '*.lua'"):gmatch("[^\n]+") do
      ours[file:match("[^/]+$")] = true
    end
    local bad = {}
    for line in log:gmatch("[^\n]+") do
      -- "[TRACE --- (12/stitch) cosocket.lua:700 -- NYI: ... at cosocket.lua:729]"
      local file, why = line:match("^%[TRACE %-%-%- [^%s]*%s?([%w_]+%.lua):%d+ %-%- (.-)%]$")
      if not file then file, why = line:match("^%[TRACE %-%-%- ([%w_]+%.lua):%d+ %-%- (.-)%]$") end
      -- (A loop met in a root trace, or a finalizer the collector ran while a trace was recorded,
      -- cuts nothing for good: LuaJIT starts its trace elsewhere, or again.)
      local cut = why and (why:find("^NYI:") or why:find("blacklisted", 1, true))
      if file and ours[file] and cut and not why:find("^NYI: return to lower frame") then bad[#bad + 1] = line end
    end
    assert.is_true(log:find("[TRACE", 1, true) ~= nil, "jit.v recorded nothing")
    assert.same({}, bad)
  end)
end)

-- A TLS handshake's Lua callbacks where stock nginx's OpenSSL cannot resume one that yielded
-- (ssl_client_hello_by_lua; ssl_session_fetch_by_lua the same): a cosocket there abandoned the
-- call, no answer and no error, the DELETE never sent and the handshake aborted. lua-eip uses
-- libcurl there (blocking, as in the log phase).
local HELLO_APP = head(1) .. [[
    lua_package_path "@REPO@/lua/?.lua;@REPO@/lua/?/init.lua;;";
    lua_package_cpath "@REPO@/build/luajit/?.so;;";
    lua_shared_dict outcomes 1m;
    init_worker_by_lua_block { require("eip.emulator.server.watchdog").start(@OWNER_PID@, "@PREFIX@") }
    server {
        listen 127.0.0.1:@PORT@ ssl;
        ssl_certificate @PKI@/trusted.crt;
        ssl_certificate_key @PKI@/trusted.key;
        ssl_client_hello_by_lua_block {
            local n = ngx.shared.outcomes:incr("hellos", 1, 0)
            local ok, res = pcall(function()
                return require("eip").new{ endpoint = "@API@", token = "hello-spec-token-0001",
                    project_id = "@PROJECT@", max_attempts = 1, timeout = 5 }:delete_bandwidth("hello-" .. n)
            end)
            ngx.shared.outcomes:set("hello", (ok and (res.status .. " " .. res.request_id) or tostring(res))
                .. " " .. require("eip.transport").current())
        }
        location = /outcome { content_by_lua_block { ngx.say(ngx.shared.outcomes:get("hello") or "none") } }
    }
}
]]

describe("OpenResty: a delete in ssl_client_hello_by_lua #openresty", function()
  local tls = require "spec.support.tls"
  local api, app, pki

  setup(function()
    assert(nginx.file_exists(launcher.LUAJIT_CORE), launcher.LUAJIT_CORE .. " is missing: run `make luajit`")
    pki = tls.make_pki()
    api = start_api("helloapi", "client hello spec API")
    app = start_app("helloapp", "client hello spec app", HELLO_APP, api, { PKI = pki.dir })
  end)

  teardown(function()
    if app then app:stop() end
    if api then api:stop() end
    if pki then pki:remove() end
  end)

  it("goes through libcurl, and the handshake goes on", function()
    local out = nginx.capture(string.format("curl -s --max-time 20 --cacert %s https://127.0.0.1:%d/outcome 2>&1",
      nginx.shell_quote(pki.ca), app.port))
    assert.matches("^204 hello%-1@%d+ curl\n?$", out)
  end)
end)
