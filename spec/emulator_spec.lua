-- The EIP emulator itself, exercised over plain sockets (no eip client involved).
-- luacheck: std +busted
local cjson = require "cjson"
local socket = require "socket"
local emulator = require "spec.support.emulator"
local nginx = require "spec.support.nginx"
local host = require "spec.support.host"

local function nginx_running(pid)
  local f = io.popen("pgrep -x nginx 2>/dev/null; pgrep -f 'nginx: (master|worker)' 2>/dev/null")
  local out = f:read("*a")
  f:close()
  for found in out:gmatch("%d+") do
    if tonumber(found) == pid then
      -- a pgrep hit may be a zombie that the init process has not reaped yet
      local stat = io.open("/proc/" .. found .. "/stat")
      local state = stat and stat:read("*a"):match("%)%s+(%a)")
      if stat then stat:close() end
      if state and state ~= "Z" then
        return true
      end
    end
  end
  return false
end

local function dir_exists(path)
  return host.execute("test -d '" .. path .. "'")
end

describe("EIP emulator #once", function()
  local emu

  setup(function()
    emu = emulator.start()
  end)

  teardown(function()
    emu:stop()
  end)

  before_each(function()
    emu:reset()
  end)

  -- An API call with the default token unless headers say otherwise; to the VPC endpoint
  -- unless `port` says otherwise.
  local function call(method, path, body, headers, port)
    headers = headers or { ["X-Auth-Token"] = emu.token }
    if body ~= nil and type(body) ~= "string" then
      body = cjson.encode(body)
    end
    local resp = assert(emulator.http{ port = port or emu.port, method = method, path = path,
      headers = headers, body = body })
    local ok, decoded = pcall(cjson.decode, resp.body)
    resp.json = ok and decoded or nil
    return resp
  end

  local function v1(rest) return "/v1/" .. emu.project_id .. "/bandwidths" .. (rest or "") end
  local function v2(rest) return "/v2.0/" .. emu.project_id .. "/bandwidths" .. (rest or "") end

  local function assert_vpc_error(resp, status, code)
    assert.equal(status, resp.status, resp.body)
    assert.equal(code, resp.json.code)
    assert.is_string(resp.json.message)
    assert.equal("application/json;charset=UTF-8", resp.headers["content-type"])
  end

  local function assert_gateway_error(resp, status, code)
    assert.equal(status, resp.status, resp.body)
    assert.equal(code, resp.json.error_code)
    assert.is_string(resp.json.error_msg)
    assert.equal(resp.headers["x-request-id"], resp.json.request_id)
  end

  describe("launcher", function()
    it("exposes url, port, two token/project pairs", function()
      assert.equal("http://127.0.0.1:" .. emu.port, emu.url)
      assert.equal("emu-token-1f2e3d4c5b6a", emu.token)
      assert.equal("0a1b2c3d4e5f60718293a4b5c6d7e8f9", emu.project_id)
      assert.is_string(emu.other_token)
      assert.matches("^%x+$", emu.other_project_id)
      assert.equal(32, #emu.other_project_id)
      assert.are_not.equal(emu.project_id, emu.other_project_id)
    end)

    it("exposes a permanent and a temporary AK/SK pair, realistic in shape", function()
      assert.equal(20, #emu.ak)
      assert.equal(40, #emu.sk)
      assert.equal(20, #emu.temp_ak)
      assert.equal(40, #emu.temp_sk)
      assert.are_not.equal(emu.ak, emu.temp_ak)
      assert.is_true(#emu.security_token >= 100)
      assert.is_true(#emu.iam.password >= 8)
    end)

    it("rejects unknown start options", function()
      assert.has_error(function() emulator.start{ tokenz = {} } end,
        "eip emulator: unknown start option 'tokenz'")
    end)

    -- (8080.0 is 8080: Lua 5.3+ wrote "listen 127.0.0.1:8080.0", and nginx did not start)
    it("starts on a port given as a whole float, and refuses one that is no port", function()
      local port = require("eip.emulator.nginx").free_port()
      local other = emulator.start{ port = port + 0.0 }
      finally(function() other:stop() end)
      assert.equal("http://127.0.0.1:" .. string.format("%d", port), other.url)
      for _, bad in ipairs{ port + 0.5, 0, 65536, "8080" } do
        assert.has_error(function() emulator.start{ port = bad } end,
          "eip emulator: port must be an integer in 1..65535, got " .. tostring(bad))
      end
    end)

    it("accepts extra tokens, stops cleanly, leaves no nginx and no prefix behind", function()
      local other = emulator.start{ tokens = { ["extra-token"] = "11112222333344445555666677778888" } }
      assert.are_not.equal(emu.port, other.port)
      local resp = assert(emulator.http{ port = other.port,
        path = "/v1/11112222333344445555666677778888/bandwidths",
        headers = { ["X-Auth-Token"] = "extra-token" } })
      assert.equal(200, resp.status)
      local pid, prefix = other.pid, other.prefix
      assert.is_true(nginx_running(pid))
      other:stop()
      other:stop() -- a second stop is harmless
      assert.is_false(nginx_running(pid))
      assert.is_false(dir_exists(prefix))
      assert.is_nil(emulator.http{ port = other.port, path = "/__emulator/health", timeout = 0.5 })
    end)

    it("refuses a port another emulator holds rather than taking that one for its own", function()
      local before = emu:stats().requests
      local ok, err = pcall(emulator.start, { port = emu.port, tokens = { ["stray-token"] = emu.project_id } })
      assert.is_false(ok)
      assert.matches("Address already in use", tostring(err), 1, true)
      -- the running one was not configured by the failed start
      local resp = assert(emulator.http{ port = emu.port, path = v1(), headers = { ["X-Auth-Token"] = "stray-token" } })
      assert.equal(401, resp.status)
      assert.equal(before + 1, emu:stats().requests)
    end)

    it("starts on a fixed port even when one of its other ports was taken meanwhile (tried again)", function()
      local runner = require "eip.emulator.nginx"
      local pick, calls = runner.free_port_besides, 0
      runner.free_port_besides = function(taken) -- the first IAM port picked is the running emulator's
        calls = calls + 1
        if calls == 1 then taken[emu.port] = true; return emu.port end
        return pick(taken)
      end
      local ok, other = pcall(emulator.start, { port = runner.free_port() })
      runner.free_port_besides = pick
      assert.is_true(ok, tostring(other))
      finally(function() other:stop() end)
      assert.are_not.equal(emu.port, other.iam_port)
      assert.is_true(calls > 3, "a second attempt picked its ports anew")
      assert.equal(200, assert(emulator.http{ port = other.port, path = "/__emulator/health" }).status)
    end)

    -- `make bench-openresty-profile` runs nginx under callgrind this way.
    it("runs a private nginx under a wrapper command when asked", function()
      local marker = os.tmpname()
      os.remove(marker)
      -- The wrapper leaves a file, then becomes nginx ("$@": nginx and its arguments).
      local inst = nginx.start{ name = "wrapped", label = "wrapped nginx",
        wrapper = { "sh", "-c", 'echo wrapped > "$0"; exec "$@"', marker },
        config = function(f)
          local temp = ""
          for _, kind in ipairs{ "client_body", "proxy", "fastcgi", "uwsgi", "scgi" } do
            temp = temp .. kind .. "_temp_path " .. f.PREFIX .. "/tmp/" .. kind .. ";\n"
          end
          return f.USER_DIRECTIVE .. "\nworker_processes 1;\npid " .. f.PREFIX .. "/nginx.pid;\n"
            .. "error_log " .. f.PREFIX .. "/error.log warn;\nevents { worker_connections 16; }\n"
            .. "http {\naccess_log off;\n" .. temp .. "server { listen 127.0.0.1:" .. f.PORT .. "; return 204; }\n}\n"
        end }
      finally(function()
        inst:stop()
        os.remove(marker)
      end)
      assert.equal("wrapped\n", nginx.read_file(marker))
      assert.equal(204, emulator.http{ port = inst.port, path = "/" }.status)
      -- Its working directory is its private prefix, not the caller's: nginx's LuaJIT looks for
      -- modules in ./ first (./cjson.so: another user's, in a /tmp the caller started it from).
      assert.equal(inst.prefix, nginx.capture("readlink /proc/" .. inst.pid .. "/cwd"))
      assert.has_error(function() nginx.start{ name = "x", config = tostring, wrapper = "valgrind" } end,
        "nginx.start: option 'wrapper' must be a table")
    end)

    it("a worker whose master was killed shuts itself down instead of serving as an orphan", function()
      local other = emulator.start()
      local workers = {}
      for pid in nginx.capture("pgrep -P " .. other.pid):gmatch("%d+") do workers[#workers + 1] = tonumber(pid) end
      assert.is_true(#workers >= 1)
      os.execute("kill -KILL " .. other.pid)
      -- Each worker notices within its check interval (1 s); 15 s is only the give-up point.
      local gone = nginx.wait_until(socket.gettime() + 15, function()
        for _, w in ipairs(workers) do
          if nginx_running(w) then return false end
        end
        return true
      end)
      other:stop()
      assert.is_true(gone, "an orphaned worker kept running")
      assert.is_nil(emulator.http{ port = other.port, path = "/__emulator/health", timeout = 0.5 })
    end)

    it("stop_all stops every instance; stop is quick even while a request hangs", function()
      local a, b = emulator.start(), emulator.start()
      a:inject{ action = "hang" }
      local sock = socket.tcp()
      sock:settimeout(0.3)
      assert(sock:connect("127.0.0.1", a.port))
      sock:send("GET /v1/x/bandwidths HTTP/1.1\r\nHost: x\r\n\r\n")
      local line, err = sock:receive("*l")
      assert.is_nil(line)
      assert.equal("timeout", err)
      local t0 = socket.gettime()
      emulator.stop_all()
      assert.is_true(socket.gettime() - t0 < 3)
      sock:close()
      assert.is_false(nginx_running(a.pid))
      assert.is_false(nginx_running(b.pid))
      assert.is_false(nginx_running(emu.pid)) -- the shared instance too: start a new one
      emu = emulator.start()
    end)

    it("stops with <close> (Lua 5.4; elsewhere its __close metamethod is called as Lua 5.4 would)", function()
      local pid
      local function started(scoped)
        pid = scoped.pid
        assert.is_true(nginx_running(pid))
      end
      if _VERSION == "Lua 5.4" then
        -- <close> is Lua 5.4 syntax: compiled here only, so that this file loads everywhere.
        assert(load([[
          local emulator, started = ...
          do
            local scoped <close> = emulator.start()
            started(scoped)
          end]]))(emulator, started)
      else
        local scoped = emulator.start()
        started(scoped)
        getmetatable(scoped).__close(scoped, nil)
      end
      assert.is_false(nginx_running(pid))
    end)

    it("has detached instances: started in a directory, attached to, stopped", function()
      local dir = os.tmpname()
      os.remove(dir)
      local started = emulator.start_detached(dir)
      local port = started.port
      assert.is_true(nginx_running(started.pid))
      local attached = assert(emulator.attach(dir))
      assert.equal(port, attached.port)
      assert.equal(started.pid, attached.pid)
      -- Detached instances accept the same credentials as the others (AK/SK and IAM included).
      local resp = assert(emulator.http{ port = port, path = "/v1/" .. emu.project_id .. "/bandwidths",
        headers = attached:sign{ path = "/v1/" .. emu.project_id .. "/bandwidths" } })
      assert.equal(200, resp.status)
      assert.equal(started.pid, emulator.stop_detached(dir))
      assert.is_false(nginx_running(started.pid))
      local none, why = emulator.attach(dir)
      assert.is_nil(none)
      assert.matches("no emulator runs in", why)
      assert.is_nil(emulator.stop_detached(dir))
      assert.is_nil(emulator.http{ port = port, path = "/__emulator/health", timeout = 0.5 })
      os.execute("rm -rf '" .. dir .. "'")
    end)
  end)

  describe("a full store", function()
    -- nginx's shared dict makes room for a new item by evicting the least recently used ones:
    -- the configured tokens, or a bandwidth nobody deleted (then 404 VPC.0306, "gone").
    it("refuses a seed it has no room for, and forgets nothing it holds", function()
      local full = emulator.start()
      local ids, resp = {}, nil
      for _ = 1, 60 do
        resp = assert(emulator.http{ port = full.port, method = "POST", path = "/__emulator/bandwidths",
          body = cjson.encode{ eips = 10000 } })
        if resp.status ~= 201 then break end
        ids[#ids + 1] = cjson.decode(resp.body).id
      end
      assert.equal(507, resp.status, resp.body:sub(1, 200))
      assert.matches("full", cjson.decode(resp.body).error)
      assert.is_true(#ids > 0)
      for _, id in ipairs(ids) do
        assert.is_table(full:get_bandwidth(id), id)
      end
      assert.equal(#ids, full:stats().bandwidths)
      local listed = assert(emulator.http{ port = full.port, path = "/v1/" .. full.project_id .. "/bandwidths?limit=1",
        headers = { ["X-Auth-Token"] = full.token } })
      assert.equal(200, listed.status, listed.body:sub(1, 200))
      -- (and what it refused left nothing half-made behind)
      full:reset()
      assert.equal(201, assert(emulator.http{ port = full.port, method = "POST", path = "/__emulator/bandwidths",
        body = cjson.encode{ eips = 2 } }).status)
      full:stop()
    end)

    -- The API's own writes raised a Lua error there: nginx's HTML 500 page, and a remove that had
    -- made some of its dedicated bandwidths left their EIPs in two bandwidths at once.
    it("answers an API write it has no room for with a JSON 507 and applies none of it", function()
      local full = emulator.start()
      finally(function() full:stop() end)
      local ids, info = {}, {}
      for i = 1, 100 do
        ids[i] = "eip-t" .. i
        info[i] = { publicip_id = ids[i] }
      end
      local target = full:create_bandwidth{ size = 20, publicip_ids = ids }
      local per = full:create_bandwidth{ size = 5, share_type = "PER", publicip_ids = { "eip-p" } }
      -- (throttling off for the writes below: each second's window is a key to write; the knob's
      -- own key is made now, while there is room, and set in place when the store is full)
      full:set_knobs{ throttle_rate = 0 }
      full:inject{ path = "^/injected$", status = 418, body = "teapot", times = 2 }
      local function fill(sizes)
        for _, n in ipairs(sizes) do
          repeat
            local resp = assert(emulator.http{ port = full.port, method = "POST", path = "/__emulator/bandwidths",
              body = cjson.encode{ eips = n } })
          until resp.status ~= 201
        end
      end
      local function assert_full(resp)
        assert_vpc_error(resp, 507, "EMU.0507")
        assert.matches("store is full", resp.json.message)
      end
      fill{ 10000, 1000, 100, 10 } -- room left for some dedicated bandwidths, not for 100
      local before = full:stats().bandwidths
      assert_full(call("POST", v2("/" .. target .. "/remove"),
        { bandwidth = { publicip_info = info, charge_mode = "traffic", size = 5 } }, nil, full.port))
      assert.same(ids, (function()
        local held = {}
        for i, ip in ipairs(full:get_bandwidth(target).publicip_info) do held[i] = ip.publicip_id end
        return held
      end)())
      assert.equal(before, full:stats().bandwidths)
      fill{ 1, 0 }
      -- small keys too: the metadata service's tokens (its answer to one it cannot keep is the same 507)
      local resp
      repeat
        resp = assert(emulator.http{ port = tonumber(full.metadata_url:match(":(%d+)$")), method = "PUT",
          path = "/meta-data/latest/api/token", headers = { ["X-Metadata-Token-Ttl-Seconds"] = "60" } })
      until resp.status ~= 200
      assert.equal(507, resp.status, resp.body:sub(1, 200))
      assert.equal("EMU.0507", cjson.decode(resp.body).code)
      -- What a client's test relies on is not skipped: with throttling on, a request whose
      -- second's window has no room is refused (let through uncounted, a test that the client
      -- keeps under the rate passed for nothing), and so is a failed signature it cannot count
      -- (an access key never locked); the statistics are counted all the same (made at start).
      full:set_knobs{ throttle_rate = 1000 }
      assert_full(call("GET", v1("?limit=1"), nil, nil, full.port))
      full:set_knobs{ throttle_rate = 0 }
      local signed = full:sign{ path = v1() } -- (well-formed, one hex digit wrong)
      signed.Authorization = signed.Authorization:gsub("Signature=(%x)", function(c)
        return "Signature=" .. (c == "0" and "1" or "0")
      end)
      assert_full(call("GET", v1(), nil, signed, full.port))
      assert_gateway_error(call("GET", v1(), nil, { ["X-Auth-Token"] = "not-a-token" }, full.port), 401, "APIGW.0301")
      assert.equal(1, full:stats().auth_failures)
      -- a rule it has no room for is refused, and those queued stay (they were all dropped: the
      -- test that had injected them saw normal answers); so do the tokens a new set replaces
      local function control(method, route, body)
        return assert(emulator.http{ port = full.port, method = method, path = "/__emulator/" .. route,
          body = cjson.encode(body) })
      end
      resp = control("POST", "inject", { path = "^/other$", status = 503, body = ("x"):rep(5000) })
      assert.equal(507, resp.status, resp.body:sub(1, 200))
      assert.matches("store is full", cjson.decode(resp.body).error)
      assert.equal(1, full:stats().pending_injections)
      for _ = 1, 2 do
        assert.equal(418, assert(emulator.http{ port = full.port, path = "/injected" }).status)
      end
      assert.equal(0, full:stats().pending_injections)
      resp = control("PUT", "tokens", { tokens = { [full.token] = full.project_id, more = ("t"):rep(5000) } })
      assert.equal(507, resp.status, resp.body:sub(1, 200))
      before = full:stats().bandwidths
      assert_full(call("POST", v2(), { bandwidth = { name = "x", size = 10 } }, nil, full.port))
      assert.equal(before, full:stats().bandwidths)
      -- an insert frees the EIP's dedicated bandwidth first: done, or refused with nothing lost
      resp = call("POST", v2("/" .. target .. "/insert"),
        { bandwidth = { publicip_info = { { publicip_id = "eip-p" } } } }, nil, full.port)
      if resp.status == 507 then
        assert_full(resp)
        assert.equal("eip-p", full:get_bandwidth(per).publicip_info[1].publicip_id)
        assert.equal(100, #full:get_bandwidth(target).publicip_info)
      else
        assert.equal(200, resp.status, resp.body)
        assert.is_nil(full:get_bandwidth(per))
        assert.equal("eip-p", full:get_bandwidth(target).publicip_info[101].publicip_id)
      end
      -- The request log is skipped: the request is answered.
      resp = call("GET", v1("?limit=1"), nil, nil, full.port)
      assert.equal(200, resp.status, resp.body:sub(1, 200))
      -- ... but a log with gaps is not passed off as the whole one (a test reading its last
      -- entry read an older request's)
      local ok, err = pcall(full.requests, full)
      assert.is_false(ok)
      assert.matches("not in its log: its store was full", tostring(err))
      -- ... nor a count of connections that falls short (a test that a client reuses its
      -- connection passed for nothing): those requests came on connections it could not mark
      local stats = full:stats()
      assert.is_true(stats.uncounted_connections > 0)
      assert.is_number(stats.bandwidths) -- (the rest reads as ever)
      ok, err = pcall(function() return stats.connections end)
      assert.is_false(ok)
      assert.matches("connections not counted: its store was full", tostring(err))
      nginx.write_file(full.prefix .. "/emulator.port", full.port .. "\n") -- (eip-emulator status says so)
      local out, code = host.run(host.lua_command .. " bin/eip-emulator status --dir " .. host.quote(full.prefix))
      assert.equal(0, code, out)
      assert.matches("served on connections its full store did not count", out)
    end)
  end)

  describe("every response", function()
    it("carries a 32-hex X-Request-Id, fresh each time, and the JSON content type", function()
      local a = call("GET", v1())
      local b = call("GET", "/nowhere")
      assert.matches("^%x+$", a.headers["x-request-id"])
      assert.equal(32, #a.headers["x-request-id"])
      assert.equal(32, #b.headers["x-request-id"])
      assert.are_not.equal(a.headers["x-request-id"], b.headers["x-request-id"])
      assert.equal("application/json;charset=UTF-8", a.headers["content-type"])
      assert.equal(tostring(#a.body), a.headers["content-length"])
    end)
  end)

  describe("create shared bandwidth", function()
    -- (a name that is no UTF-8 made every later page of the listing unreadable to strict readers)
    it("refuses a name that is not UTF-8", function()
      assert.equal(400, call("POST", v2(), { bandwidth = { name = "a\255\254", size = 10 } }).status)
      assert.equal(200, call("POST", v2(), { bandwidth = { name = "共享带宽", size = 10 } }).status)
    end)

    it("answers 200 with the documented BandwidthResp", function()
      local resp = call("POST", v2(), { bandwidth = { name = "bw-1", size = 10 } })
      assert.equal(200, resp.status)
      local bw = resp.json.bandwidth
      assert.matches("^%x+%-%x+%-4%x+%-[89ab]%x+%-%x+$", bw.id)
      assert.equal(36, #bw.id)
      assert.equal("bw-1", bw.name)
      assert.equal(10, bw.size)
      assert.equal("WHOLE", bw.share_type)
      assert.equal("share", bw.bandwidth_type)
      assert.equal("bandwidth", bw.charge_mode)
      assert.equal("NORMAL", bw.status)
      assert.equal(emu.project_id, bw.tenant_id)
      assert.equal("", bw.billing_info) -- only prepaid bandwidths carry an order there
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$", bw.created_at)
      assert.matches('"publicip_info":%[%]', resp.body) -- an array, even when empty
      assert.same(bw, emu:get_bandwidth(bw.id))
    end)

    it("coerces a decimal or string size, as documented", function()
      local resp = call("POST", v2(), { bandwidth = { name = "bw", size = "12.7" } })
      assert.equal(12, resp.json.bandwidth.size)
    end)

    it("refuses bad input with 400 EIP.7901", function()
      assert_vpc_error(call("POST", v2(), "{not json"), 400, "EIP.7901")
      assert_vpc_error(call("POST", v2(), { bandwidth = { name = "bad name!", size = 10 } }), 400, "EIP.7901")
      -- (letters, digits, Chinese: not any character beyond ASCII)
      for _, name in ipairs{ "\240\159\152\128", "a\194\160b", "caf\195\169" } do
        assert_vpc_error(call("POST", v2(), { bandwidth = { name = name, size = 10 } }), 400, "EIP.7901")
      end
      assert.equal(200, call("POST", v2(), { bandwidth = { name = "共享带宽-1", size = 10 } }).status)
      assert_vpc_error(call("POST", v2(), { bandwidth = { name = "bw", size = 1 } }), 400, "EIP.7901")
      assert_vpc_error(call("POST", v2(), { bandwidth = { size = 10 } }), 400, "EIP.7901")
    end)

    -- Seeding takes the API's own name rule: no seeded bandwidth shows a name the cloud refuses.
    it("is seeded only with a name the API takes", function()
      for _, name in ipairs{ "", "bad name!", ("n"):rep(65), "a\255" } do
        assert.has_error(function() emu:create_bandwidth{ name = name } end, nil, name)
      end
      assert.equal(0, #emu:bandwidths())
      local id = emu:create_bandwidth{ name = ("带"):rep(64) }
      assert.equal(("带"):rep(64), emu:get_bandwidth(id).name)
    end)
  end)

  describe("show bandwidth", function()
    it("answers 200 with the bandwidth and its EIPs", function()
      local id = emu:create_bandwidth{ name = "seeded", size = 20, publicip_ids = { "eip-1" } }
      local resp = call("GET", v1("/" .. id))
      assert.equal(200, resp.status)
      local bw = resp.json.bandwidth
      assert.equal(id, bw.id)
      assert.equal(1, #bw.publicip_info)
      local ip = bw.publicip_info[1]
      assert.equal("eip-1", ip.publicip_id)
      assert.matches("^%d+%.%d+%.%d+%.%d+$", ip.publicip_address)
      assert.equal(4, ip.ip_version)
      assert.equal("5_bgp", ip.publicip_type)
    end)

    it("answers 404 VPC.0306 for an unknown id or another project's bandwidth", function()
      assert_vpc_error(call("GET", v1("/3fa1e2b4-1111-4222-8333-444455556666")), 404, "VPC.0306")
      local theirs = emu:create_bandwidth{ size = 5, project_id = emu.other_project_id }
      assert_vpc_error(call("GET", v1("/" .. theirs)), 404, "VPC.0306")
    end)

    -- Documented for ShowBandwidth: what is not a bandwidth id at all (a name) is a 400.
    it("answers 400 VPC.0301 for an id that is not a UUID", function()
      assert_vpc_error(call("GET", v1("/my-bandwidth-name")), 400, "VPC.0301")
    end)

    -- A bandwidth seeded with an id of its own is listed and deleted: it is shown too (a drain
    -- of it, a wait after its delete, read it).
    it("shows a bandwidth seeded with an id of its own, as it lists and deletes it", function()
      emu:create_bandwidth{ id = "bw-1", size = 5 }
      local resp = call("GET", v1("/bw-1"))
      assert.equal(200, resp.status, resp.body)
      assert.equal("bw-1", resp.json.bandwidth.id)
      assert.equal(204, call("DELETE", "/v2.0/" .. emu.project_id .. "/bandwidths/bw-1").status)
      assert_vpc_error(call("GET", v1("/bw-1")), 400, "VPC.0301")
    end)

    -- emu:get_bandwidth put the id in its control path as it was: "x?y" read bandwidth x, "a/b"
    -- none, "50%" or one with a space failed (400).
    it("get_bandwidth reads a seeded id whatever its characters, and only that one", function()
      emu:create_bandwidth{ id = "x", size = 1 }
      for _, id in ipairs{ "a/b", "x?y", "x#y", "50%", "a b", "%41" } do
        emu:create_bandwidth{ id = id, size = 5 }
        assert.same({ id, 5 }, { emu:get_bandwidth(id).id, emu:get_bandwidth(id).size }, id)
      end
      assert.is_nil(emu:get_bandwidth("x/"))
    end)
  end)

  describe("list bandwidths", function()
    it("filters by enterprise_project_id (all_granted_eps: every one), 400 VPC.0011 for a bad one", function()
      local eps = "5e8c1b2a-0f3d-4c6e-9a7b-1d2e3f4a5b6c"
      local a = emu:create_bandwidth{ size = 5, enterprise_project_id = eps }
      emu:create_bandwidth{ size = 5 }
      local function ids(query)
        local resp = call("GET", v1("?" .. query))
        assert.equal(200, resp.status, resp.body)
        local out = {}
        for i, bw in ipairs(resp.json.bandwidths) do out[i] = bw.id end
        return out
      end
      assert.same({ a }, ids("enterprise_project_id=" .. eps))
      assert.equal(2, #ids("enterprise_project_id=all_granted_eps"))
      assert.equal(1, #ids("enterprise_project_id=0"))
      assert_vpc_error(call("GET", v1("?enterprise_project_id=nope")), 400, "VPC.0011")
      -- (a parameter without a value: a 500 HTML page once, which a client would retry)
      assert_vpc_error(call("GET", v1("?enterprise_project_id")), 400, "VPC.0011")
    end)

    it("pages with marker and limit, oldest first, and filters by share_type", function()
      local ids = {}
      for i = 1, 5 do
        ids[i] = emu:create_bandwidth{ name = "bw-" .. i, size = 5, share_type = i == 3 and "PER" or "WHOLE" }
      end
      emu:create_bandwidth{ size = 5, project_id = emu.other_project_id }
      local all = call("GET", v1()).json.bandwidths
      assert.equal(5, #all)
      local page1 = call("GET", v1("?limit=2")).json.bandwidths
      assert.same({ ids[1], ids[2] }, { page1[1].id, page1[2].id })
      local page2 = call("GET", v1("?limit=2&marker=" .. ids[2])).json.bandwidths
      assert.same({ ids[3], ids[4] }, { page2[1].id, page2[2].id })
      local whole = call("GET", v1("?share_type=WHOLE&marker=" .. ids[2])).json.bandwidths
      assert.same({ ids[4], ids[5] }, { whole[1].id, whole[2].id })
      local empty = call("GET", v1("?marker=" .. ids[5]))
      assert.equal('{"bandwidths":[]}', empty.body)
    end)

    it("refuses a bad limit (400 VPC.0301) and an unknown marker (404 VPC.0306)", function()
      assert_vpc_error(call("GET", v1("?limit=abc")), 400, "VPC.0301")
      -- (0..intmax, the SDKs' int32: one above is refused, the largest read)
      assert_vpc_error(call("GET", v1("?limit=2147483648")), 400, "VPC.0301")
      assert.equal(200, call("GET", v1("?limit=2147483647")).status)
      assert_vpc_error(call("GET", v1("?share_type=BOTH")), 400, "VPC.0301")
      assert_vpc_error(call("GET", v1("?marker=nope")), 404, "VPC.0306")
    end)
  end)

  describe("delete shared bandwidth", function()
    -- The real API can still show a bandwidth for a while after its 204: read, and listed.
    it("keeps a deleted bandwidth readable and listed for deleted_visible_for seconds", function()
      emu:set_knobs{ deleted_visible_for = 30 }
      local first = emu:create_bandwidth{ size = 5 }
      local id = emu:create_bandwidth{ size = 5 }
      local last = emu:create_bandwidth{ size = 5 }
      assert.equal(204, call("DELETE", v2("/" .. id)).status)
      assert.equal(200, call("GET", v1("/" .. id)).status)
      local listed = {}
      for i, bw in ipairs(call("GET", v1()).json.bandwidths) do listed[i] = bw.id end
      assert.same({ first, id, last }, listed, "in its place")
      local after = call("GET", v1("?marker=" .. id))
      assert.equal(200, after.status, after.body)
      assert.equal(last, after.json.bandwidths[1].id)
      assert.is_nil(emu:get_bandwidth(id), "gone from the store")
      assert.equal(2, #emu:bandwidths())
    end)

    -- The real service makes a bandwidth CREATING, then NORMAL; a change meanwhile is refused
    -- (modelled: 409 VPC.0512, busy), and the retry that comes after it succeeds. (The busy
    -- answers go to one CREATING for a minute, not to one a loaded machine may see turn NORMAL
    -- before they are sent; another, CREATING for 50 ms, turns NORMAL.)
    it("shows a new bandwidth CREATING for creating_for seconds, refusing changes with 409 VPC.0512", function()
      emu:set_knobs{ creating_for = 60 }
      local made = call("POST", v2(), { bandwidth = { name = "new", size = 5 } })
      assert.equal(200, made.status, made.body)
      assert.equal("CREATING", made.json.bandwidth.status)
      local id = made.json.bandwidth.id
      assert.equal("CREATING", call("GET", v1("/" .. id)).json.bandwidth.status)
      assert.equal("CREATING", call("GET", v1()).json.bandwidths[1].status)
      local busy = call("DELETE", v2("/" .. id))
      assert_vpc_error(busy, 409, "VPC.0512")
      assert.equal("Resource status is busy, try it again later.", busy.json.message)
      local held = emu:create_bandwidth{ size = 5, share_type = "PER", publicip_ids = { "eip-c" } }
      local info = { publicip_info = { { publicip_id = "eip-c" } } }
      assert_vpc_error(call("POST", v2("/" .. id .. "/insert"), { bandwidth = info }), 409, "VPC.0512")
      assert_vpc_error(call("POST", v2("/" .. id .. "/remove"), { bandwidth = { publicip_info = info.publicip_info,
        charge_mode = "bandwidth", size = 5 } }), 409, "VPC.0512")
      assert.is_table(emu:get_bandwidth(held), "the EIP stayed where it was")
      emu:set_knobs{ creating_for = 0.05 }
      made = call("POST", v2(), { bandwidth = { name = "soon", size = 5 } })
      assert.equal("CREATING", made.json.bandwidth.status)
      id = made.json.bandwidth.id
      local deadline = socket.gettime() + 10
      while call("GET", v1("/" .. id)).json.bandwidth.status == "CREATING" do
        assert(socket.gettime() < deadline, "still CREATING")
        socket.sleep(0.05)
      end
      assert.equal("NORMAL", emu:get_bandwidth(id).status)
      assert.equal(204, call("DELETE", v2("/" .. id)).status)
      emu:reset()
      assert.equal("NORMAL", call("POST", v2(), { bandwidth = { name = "new", size = 5 } }).json.bandwidth.status,
        "reset: NORMAL at once again")
    end)

    it("answers 204 with an empty body, then 404 VPC.0306", function()
      local id = emu:create_bandwidth{ size = 5 }
      local resp = call("DELETE", v2("/" .. id))
      assert.equal(204, resp.status)
      assert.equal("", resp.body)
      assert.is_nil(resp.headers["content-type"])
      assert.is_nil(emu:get_bandwidth(id))
      assert_vpc_error(call("DELETE", v2("/" .. id)), 404, "VPC.0306")
    end)

    -- As the show: an id that is not a UUID (a name given for an id) is a 400, never the 404
    -- of a missing bandwidth, which missing_ok would take for "already deleted".
    it("answers 400 VPC.0301 for an id that is not a UUID, 404 VPC.0306 for an unknown UUID", function()
      for _, id in ipairs{ "my-bandwidth", "bw-1", "3fa1e2b4-1111-4222-8333-44445555666" } do
        assert_vpc_error(call("DELETE", v2("/" .. id)), 400, "VPC.0301")
      end
      assert_vpc_error(call("DELETE", v2("/3fa1e2b4-1111-4222-8333-444455556666")), 404, "VPC.0306")
    end)

    it("refuses a shared bandwidth that still holds EIPs with 409 VPC.0304", function()
      local id = emu:create_bandwidth{ size = 5, publicip_ids = { "eip-a" } }
      assert_vpc_error(call("DELETE", v2("/" .. id)), 409, "VPC.0304")
      assert.is_table(emu:get_bandwidth(id))
    end)

    it("refuses a dedicated (PER) bandwidth with 400 VPC.0301", function()
      local id = emu:create_bandwidth{ size = 5, share_type = "PER", publicip_ids = { "eip-p" } }
      assert_vpc_error(call("DELETE", v2("/" .. id)), 400, "VPC.0301")
    end)

    -- Modelled: the docs give no code for it (VPC.0525 is the EIP delete's, for a prepaid EIP).
    it("refuses a yearly/monthly bandwidth with 409 VPC.0304, even without EIPs", function()
      local id = emu:create_bandwidth{ size = 5, billing_info = "CS2012345678:order" }
      local resp = call("DELETE", v2("/" .. id))
      assert_vpc_error(resp, 409, "VPC.0304")
      assert.matches("unsubscribe", resp.json.message)
      assert.is_table(emu:get_bandwidth(id))
    end)
  end)

  describe("remove EIPs from a shared bandwidth", function()
    local function remove_body(ids)
      local info = {}
      for i, id in ipairs(ids) do info[i] = { publicip_id = id } end
      return { bandwidth = { publicip_info = info, charge_mode = "traffic", size = 5 } }
    end

    -- What the cloud refuses: an id that is no bandwidth id (as show and delete answer it, never
    -- "gone"), numbers standard JSON does not have, a size written in hexadecimal.
    it("answers 400 for an id that is no UUID, a NaN or hexadecimal size", function()
      assert_vpc_error(call("POST", v2("/my-bandwidth/remove"), remove_body{ "eip-a" }), 400, "VPC.0301")
      local id = emu:create_bandwidth{ size = 20, publicip_ids = { "eip-a" } }
      for _, size in ipairs{ "NaN", '"0x10"', "Infinity" } do
        local resp = call("POST", v2("/" .. id .. "/remove"),
          '{"bandwidth":{"publicip_info":[{"publicip_id":"eip-a"}],"charge_mode":"traffic","size":' .. size .. '}}')
        assert.equal(400, resp.status, size .. ": " .. resp.body)
      end
      assert.equal(1, #emu:get_bandwidth(id).publicip_info)
    end)

    it("answers 204; each EIP leaves for a dedicated bandwidth; then the delete succeeds", function()
      local id = emu:create_bandwidth{ size = 20, publicip_ids = { "eip-a", "eip-b" } }
      local resp = call("POST", v2("/" .. id .. "/remove"), remove_body{ "eip-a", "eip-b" })
      assert.equal(204, resp.status)
      assert.equal("", resp.body)
      assert.equal(0, #emu:get_bandwidth(id).publicip_info)
      local per = call("GET", v1("?share_type=PER")).json.bandwidths
      assert.equal(2, #per)
      assert.equal("eip-a", per[1].publicip_info[1].publicip_id)
      assert.equal(5, per[1].size)
      assert.equal("traffic", per[1].charge_mode)
      assert.equal(204, call("DELETE", v2("/" .. id)).status)
    end)

    it("refuses more than 100 EIPs, a non-member EIP, and an unknown bandwidth", function()
      local id = emu:create_bandwidth{ size = 20, publicip_ids = { "eip-a" } }
      local many = {}
      for i = 1, 101 do many[i] = "eip-" .. i end
      assert_vpc_error(call("POST", v2("/" .. id .. "/remove"), remove_body(many)), 400, "EIP.7901")
      assert_vpc_error(call("POST", v2("/00000000-0000-4000-8000-000000000009/remove"), remove_body{ "eip-a" }),
        404, "VPC.0306")
      assert.equal(1, #emu:get_bandwidth(id).publicip_info)
    end)

    -- As insert: an id that names no EIP of the project is the documented 400 VPC.0301 "Invalid
    -- publicip_id"; an EIP another bandwidth holds cannot be removed from this one (400 VPC.0323).
    it("refuses an id that names no EIP (VPC.0301), one held elsewhere (VPC.0323); changes nothing", function()
      local id = emu:create_bandwidth{ size = 20, publicip_ids = { "eip-a" } }
      local other = emu:create_bandwidth{ size = 20, publicip_ids = { "eip-b" } }
      local foreign = emu:create_bandwidth{ size = 20, project_id = emu.other_project_id,
        publicip_ids = { "eip-f" } }
      for _, ids in ipairs{ { "eip-zz" }, { "eip-a", "eip-zz" }, { "eip-f" } } do
        local resp = call("POST", v2("/" .. id .. "/remove"), remove_body(ids))
        assert_vpc_error(resp, 400, "VPC.0301")
        assert.equal("Invalid publicip_id", resp.json.message)
      end
      assert_vpc_error(call("POST", v2("/" .. id .. "/remove"), remove_body{ "eip-a", "eip-b" }), 400, "VPC.0323")
      assert.equal("eip-a", emu:get_bandwidth(id).publicip_info[1].publicip_id)
      assert.equal("eip-b", emu:get_bandwidth(other).publicip_info[1].publicip_id)
      assert.equal("eip-f", emu:get_bandwidth(foreign).publicip_info[1].publicip_id)
      assert.equal(3, #emu:bandwidths())
    end)
  end)

  describe("insert EIPs into a shared bandwidth", function()
    local function insert_body(ids)
      local info = {}
      for i, id in ipairs(ids) do info[i] = { publicip_id = id } end
      return { bandwidth = { publicip_info = info } }
    end

    it("answers 200 with the bandwidth; each EIP's dedicated bandwidth is absorbed", function()
      local id = emu:create_bandwidth{ size = 20 }
      local per = emu:create_bandwidth{ size = 5, share_type = "PER", publicip_ids = { "eip-p" } }
      local sbgp = emu:create_bandwidth{ size = 1, share_type = "PER",
        publicip_ids = { { publicip_id = "eip-q", publicip_type = "5_sbgp" } } }
      local resp = call("POST", v2("/" .. id .. "/insert"), insert_body{ "eip-p", "eip-q" })
      assert.equal(200, resp.status)
      local info = resp.json.bandwidth.publicip_info
      assert.same({ "eip-p", "eip-q" }, { info[1].publicip_id, info[2].publicip_id })
      assert.equal("5_sbgp", info[2].publicip_type) -- the EIP keeps what it is
      assert.is_nil(emu:get_bandwidth(per))
      assert.is_nil(emu:get_bandwidth(sbgp))
      assert_vpc_error(call("POST", v2("/" .. id .. "/insert"), insert_body{ "eip-p" }), 400, "VPC.0323")
    end)

    -- Nothing changes a frozen bandwidth (cloud-facts): not even by taking its EIP away.
    it("refuses an EIP whose dedicated bandwidth is frozen (400 VPC.0323) and changes nothing", function()
      local id = emu:create_bandwidth{ size = 20 }
      local frozen = emu:create_bandwidth{ size = 5, share_type = "PER", status = "FREEZED",
        publicip_ids = { "eip-f" } }
      assert_vpc_error(call("POST", v2("/" .. id .. "/insert"), insert_body{ "eip-f" }), 400, "VPC.0323")
      assert.equal("eip-f", emu:get_bandwidth(frozen).publicip_info[1].publicip_id)
      assert.equal(0, #emu:get_bandwidth(id).publicip_info)
    end)

    -- Insert moves EIPs the project has; it never makes one. An id that names no EIP is the
    -- documented 400 VPC.0301 "Invalid publicip_id", and nothing of the call is applied.
    it("refuses an id that names no EIP (400 VPC.0301) and changes nothing, nor creates one", function()
      local id = emu:create_bandwidth{ size = 20 }
      local per = emu:create_bandwidth{ size = 5, share_type = "PER", publicip_ids = { "eip-p" } }
      local other = emu:create_bandwidth{ size = 5, share_type = "PER", publicip_ids = { "eip-o" },
        project_id = emu.other_project_id }
      for _, ids in ipairs{ { "eip-nowhere" }, { "eip-p", "eip-nowhere" }, { "eip-o" } } do
        local resp = call("POST", v2("/" .. id .. "/insert"), insert_body(ids))
        assert_vpc_error(resp, 400, "VPC.0301")
        assert.equal("Invalid publicip_id", resp.json.message)
      end
      assert.equal(0, #emu:get_bandwidth(id).publicip_info)
      assert.equal("eip-p", emu:get_bandwidth(per).publicip_info[1].publicip_id)
      assert.equal("eip-o", emu:get_bandwidth(other).publicip_info[1].publicip_id)
      assert.equal(3, #emu:bandwidths()) -- no EIP (nor its bandwidth) came into being
    end)
  end)

  describe("authentication and routing", function()
    it("answers 401 APIGW.0301 without a token or with an unknown one, never echoing it", function()
      assert_gateway_error(call("GET", v1(), nil, {}), 401, "APIGW.0301")
      local resp = call("GET", v1(), nil, { ["X-Auth-Token"] = "secret-wrong-token" })
      assert_gateway_error(resp, 401, "APIGW.0301")
      assert.matches("^Incorrect IAM authentication information: ", resp.json.error_msg)
      assert.is_nil(resp.body:find("secret-wrong-token", 1, true))
    end)

    it("answers 400 VPC.0007 when the URL project is not the token's", function()
      local resp = call("GET", v1(), nil, { ["X-Auth-Token"] = emu.other_token })
      assert_vpc_error(resp, 400, "VPC.0007")
      assert.equal("urlTenantId is not equal tokenTenantId", resp.json.message)
      assert.equal(200, call("GET", "/v1/" .. emu.other_project_id .. "/bandwidths", nil,
        { ["X-Auth-Token"] = emu.other_token }).status)
    end)

    it("answers 404 APIGW.0101 for an unknown route, and for a wrong method", function()
      assert_gateway_error(call("GET", "/v3/whatever"), 404, "APIGW.0101")
      -- The path as sent, as the gateway matches it: a doubled slash or a dot segment is no API
      -- (nginx's own $uri would have cleaned them up into a route).
      local id = emu:create_bandwidth{ size = 1 }
      for _, path in ipairs{ "/v2.0//" .. emu.project_id .. "/bandwidths/" .. id,
          "//v2.0/" .. emu.project_id .. "/bandwidths/" .. id,
          "/v2.0/" .. emu.project_id .. "/bandwidths/x/../" .. id,
          "/v2.0/" .. emu.project_id .. "/bandwidths/%2e%2e/bandwidths/" .. id } do
        assert_gateway_error(call("DELETE", path), 404, "APIGW.0101")
      end
      assert.is_not_nil(emu:get_bandwidth(id))
      -- The gateway matches method and path together: a method no API has there is no API.
      for _, method in ipairs{ "PUT", "GET", "POST" } do
        local resp = call(method, v2("/some-id"), "{}")
        assert_gateway_error(resp, 404, "APIGW.0101")
        assert.is_nil(resp.headers["allow"])
      end
      -- (nginx itself refuses TRACE before any Lua runs: an HTML 405 without X-Request-Id)
      assert_gateway_error(call("TRACE", v2("/" .. id)), 404, "APIGW.0101")
    end)

    it("answers a body over its limit as the gateway does, on every port: 413 APIGW.0201", function()
      -- (nginx refuses it by its Content-Length alone: its own HTML 413, without X-Request-Id)
      local big = { ["X-Auth-Token"] = emu.token, ["Content-Length"] = "17825792" } -- (17 MiB)
      for _, port in ipairs{ emu.port, emu.iam_port, emu.any_port } do
        assert_gateway_error(call("DELETE", v2("/x"), nil, big, port), 413, "APIGW.0201")
      end
      local resp = call("DELETE", v2("/x"), nil, big, emu.metadata_port)
      assert.same({ 413, "text/plain" }, { resp.status, resp.headers["content-type"] })
      assert.equal(4, emu:stats().requests)
    end)

    -- nginx refused a URI or a header over its own 8 KB buffers, and a request it could not
    -- read, with its HTML page and no X-Request-Id. The gateway's limits are 32 KB for the URI
    -- and for a header, 128 KB for all of them; over them it answers APIGW.0201 in JSON.
    it("answers a URI or headers over the gateway's limits, or a request it cannot read, as the gateway does",
      function()
      local big, near = ("a"):rep(33 * 1024), ("b"):rep(30 * 1024)
      assert_gateway_error(call("DELETE", v2("/" .. big)), 414, "APIGW.0201")
      assert_gateway_error(call("GET", v2(), nil, { ["X-Auth-Token"] = emu.token, ["X-Big"] = big }), 494,
        "APIGW.0201")
      assert_gateway_error(call("GET", v2(), nil, { ["X-Auth-Token"] = emu.token, A = near, B = near, C = near,
        D = near, E = near }), 494, "APIGW.0201")
      -- (under them, the API answers: 9 KB was over nginx's default buffer)
      assert.equal(200, call("GET", v1("?name=" .. ("c"):rep(9000)), nil, { ["X-Auth-Token"] = emu.token,
        ["X-Near"] = near }).status)
      -- `request` sent as it is: the gateway's JSON with its X-Request-Id, and `status`.
      local function refused_raw(request, status)
        local sock = socket.tcp()
        sock:settimeout(5)
        assert(sock:connect("127.0.0.1", emu.port))
        assert(sock:send(request))
        local raw = sock:receive("*a")
        sock:close()
        local request_id = raw:match("\r\n[Xx]%-[Rr]equest%-[Ii]d: (%x+)\r\n")
        assert.matches("^HTTP/1.1 " .. status .. " ", raw)
        assert.same({ error_code = "APIGW.0201", error_msg = "API request error", request_id = request_id },
          cjson.decode(raw:match("\r\n\r\n(.*)$")), request)
      end
      -- A request line nginx cannot read: no URI, no method it knows.
      refused_raw("DE\1ETE / HTTP/1.1\r\nHost: x\r\n\r\n", 400)
      -- (logged as sent, the unreadable one not: no request reached the API)
      local log = emu:requests()
      assert.same({ "DELETE", "GET", "GET", "GET" }, { log[1].method, log[2].method, log[3].method,
        log[4].method })
      assert.equal(4, #log)
      -- A Transfer-Encoding nginx does not implement (501), an HTTP version it does not speak (505):
      -- nginx's HTML page, no X-Request-Id, before.
      refused_raw("DELETE " .. v2("/x") .. " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501)
      refused_raw("GET " .. v2() .. " HTTP/2.0\r\nHost: x\r\n\r\n", 505)
      log = emu:requests()
      assert.same({ 6, "DELETE", "GET" }, { #log, log[5].method, log[6].method })
      -- The metadata service is no gateway: plain text, as for a body too large.
      local resp = call("GET", "/" .. big, nil, {}, emu.metadata_port)
      assert.same({ 414, "text/plain" }, { resp.status, resp.headers["content-type"] })
    end)

    it("answers each endpoint's routes on its own port only, as the cloud's three hosts do", function()
      local id = emu:create_bandwidth{ size = 5 }
      emu:reset_counters()
      local login = cjson.encode{ auth = { identity = { methods = { "password" }, password = { user = {
        name = emu.iam.username, password = emu.iam.password, domain = { name = emu.iam.domain } } } },
        scope = { project = { name = emu.iam.project } } } }
      local json = { ["Content-Type"] = "application/json" }
      local meta = { ["X-Metadata-Token-Ttl-Seconds"] = "60" }
      assert.are_not.equal(emu.port, emu.iam_port)
      assert.are_not.equal(emu.port, emu.metadata_port)
      assert.are_not.equal(emu.iam_port, emu.metadata_port)
      -- The VPC endpoint: its own API; IAM's and the metadata service's routes are no API of its.
      assert_gateway_error(call("POST", "/v3/auth/tokens", login, json), 404, "APIGW.0101")
      assert_gateway_error(call("GET", "/v3/projects?name=cn-north-4"), 404, "APIGW.0101")
      assert_gateway_error(call("PUT", "/meta-data/latest/api/token", nil, meta), 404, "APIGW.0101")
      assert.equal(200, call("GET", v1("/" .. id)).status)
      -- IAM: tokens; a bandwidth call (an endpoint mixed up) is no API of its, nor is metadata.
      local resp = call("POST", "/v3/auth/tokens", login, json, emu.iam_port)
      assert.equal(201, resp.status, resp.body)
      assert.is_string(resp.headers["x-iam-trace-id"])
      local projects = "/v3/projects?name=cn-north-4" -- signed for IAM's host
      resp = call("GET", projects, nil, emu:sign{ path = projects, port = emu.iam_port }, emu.iam_port)
      assert.equal(200, resp.status, resp.body)
      assert.equal(emu.project_id, resp.json.projects[1].id)
      assert_gateway_error(call("DELETE", v2("/" .. id), nil, nil, emu.iam_port), 404, "APIGW.0101")
      assert_gateway_error(call("PUT", "/meta-data/latest/api/token", nil, meta, emu.iam_port), 404, "APIGW.0101")
      -- The metadata service: its routes; anything else a plain 404 (no gateway there).
      assert.equal(200, call("PUT", "/meta-data/latest/api/token", nil, meta, emu.metadata_port).status)
      resp = call("DELETE", v2("/" .. id), nil, nil, emu.metadata_port)
      assert.equal(404, resp.status)
      assert.is_nil(resp.json)
      assert.same({ "9", nil }, { resp.headers["content-length"], resp.headers["x-request-id"] })
      assert.equal(404, call("POST", "/v3/auth/tokens", login, json, emu.metadata_port).status)
      -- Nothing was deleted by the misdirected calls; the log says where each came.
      assert.is_table(emu:get_bandwidth(id))
      local where = {}
      for _, r in ipairs(emu:requests()) do where[#where + 1] = r.endpoint .. " " .. r.method end
      assert.same({ "api POST", "api GET", "api PUT", "api GET", "iam POST", "iam GET", "iam DELETE", "iam PUT",
        "metadata PUT", "metadata DELETE", "metadata POST" }, where)
      -- One port for everything (a detached instance's, the TLS front's upstream).
      assert.equal(201, call("POST", "/v3/auth/tokens", login, json, emu.any_port).status)
      assert.equal(200, call("GET", v1("/" .. id), nil, nil, emu.any_port).status)
      assert.equal(200, call("PUT", "/meta-data/latest/api/token", nil, meta, emu.any_port).status)
    end)
  end)

  describe("AK/SK signatures", function()
    local VECTORS = require("spec.support.vectors").all_aksk()

    local function sdk_date(offset)
      return os.date("!%Y%m%dT%H%M%SZ", os.time() + (offset or 0))
    end

    -- Send a request signed by emu:sign (opts as for it); `send` overrides what goes out.
    local function signed_call(opts, send)
      send = send or {}
      local headers = emu:sign(opts)
      for name, value in pairs(send.headers or {}) do
        headers[name] = value or nil
      end
      return call(opts.method or "GET", send.path or opts.path, send.body or opts.body, headers)
    end

    local function assert_refused(resp, reason)
      assert_gateway_error(resp, 401, "APIGW.0301")
      assert.equal("Incorrect IAM authentication information: " .. reason, resp.json.error_msg)
    end

    for _, v in ipairs(VECTORS) do
      it("the emulator's signer reproduces the SDK's Authorization for " .. v.name, function()
        local answer = emu:verify{ method = v.method, url = v.url, headers = v.headers, query = v.query,
          body = v.body, ak = v.ak, sk = v.sk }
        assert.equal(v.expected_authorization, answer.authorization)
        assert.equal(v.method, answer.canonical:match("^[^\n]+"))
        assert.matches("^SDK%-HMAC%-SHA256\n" .. v.headers["X-Sdk-Date"] .. "\n%x+$", answer.string_to_sign)
        assert.is_nil(answer.canonical:find(v.sk, 1, true))
      end)
    end

    it("builds the documented canonical request (URI with trailing /, sorted query, body hash)", function()
      local v = VECTORS[3]
      local answer = emu:verify{ method = v.method, url = v.url, headers = v.headers, query = v.query,
        ak = v.ak, sk = v.sk }
      assert.equal(table.concat({
        "GET", "/v2.0/0a1b2c3d4e5f/bandwidths/", "limit=10&marker=3fa1e2b4-1111-2222-3333-444455556666",
        "content-type:application/json\nhost:vpc.ap-southeast-1.myhuaweicloud.com\n"
          .. "x-project-id:0a1b2c3d4e5f\nx-sdk-date:20261124T023138Z\n",
        "content-type;host;x-project-id;x-sdk-date",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
      }, "\n"), answer.canonical)
      -- a query in the url is the same as a query table; segments are percent-encoded
      local again = emu:verify{ method = "GET", ak = v.ak, sk = v.sk, headers = v.headers,
        url = "https://h/v1/a b/x%7e?marker=3fa1e2b4-1111-2222-3333-444455556666&limit=10" }
      assert.equal("/v1/a%20b/x~/", again.canonical:match("^GET\n([^\n]+)"))
      assert.equal("limit=10&marker=3fa1e2b4-1111-2222-3333-444455556666",
        again.canonical:match("^[^\n]+\n[^\n]+\n([^\n]+)"))
    end)

    it("accepts correctly signed requests: list with a query, create with a body, delete", function()
      local id = emu:create_bandwidth{ size = 5 }
      assert.equal(200, signed_call{ path = v1("?limit=1&marker=" .. id) }.status)
      local created = signed_call{ method = "POST", path = v2(), body = '{"bandwidth":{"name":"ak","size":5}}',
        headers = { ["Content-Type"] = "application/json" } }
      assert.equal(200, created.status, created.body)
      local resp = signed_call{ method = "DELETE", path = v2("/" .. id) }
      assert.equal(204, resp.status, resp.body)
      assert.is_nil(emu:get_bandwidth(id))
      assert.equal(0, emu:stats().auth_failures)
    end)

    it("refuses a tampered signature, a wrong SK or an unknown AK with 401 APIGW.0301", function()
      local headers = emu:sign{ path = v1() }
      local last = headers.Authorization:sub(-1)
      headers.Authorization = headers.Authorization:sub(1, -2) .. (last == "0" and "1" or "0")
      assert_refused(call("GET", v1(), nil, headers), "verify aksk signature fail")
      local resp = signed_call{ path = v1(), sk = "WrongSecretKeyWrongSecretKeyWrongSecret0" }
      assert_refused(resp, "verify aksk signature fail")
      assert.is_nil(resp.body:find(emu.sk, 1, true))
      assert_refused(signed_call{ path = v1(), ak = "EMUAKUNKNOWN00000000" },
        "Get secretKey failed,ak:EMUAKUNKNOWN00000000,err:ak not exist") -- (the gateway's words)
      assert.equal(3, emu:stats().auth_failures)
    end)

    -- (a signer that lists them otherwise signs its canonical headers in another order than it says)
    it("refuses SignedHeaders that are not the lower-case names, sorted", function()
      local headers = emu:sign{ path = v1() }
      local names = headers.Authorization:match("SignedHeaders=([^,]+)")
      assert.equal(200, call("GET", v1(), nil, headers).status)
      for _, bad in ipairs{ names:gsub("x%-sdk%-date", "X-Sdk-Date"), table.concat({ "x-sdk-date", names }, ";") } do
        local changed = { }
        for k, v in pairs(headers) do changed[k] = v end
        changed.Authorization = headers.Authorization:gsub("SignedHeaders=[^,]+", function()
          return "SignedHeaders=" .. bad end)
        assert_refused(call("GET", v1(), nil, changed), "SignedHeaders must be the lower-case header names, sorted")
      end
      -- (the emulator's own signer lists a choice of names as they must be)
      assert.equal(200, signed_call{ path = v1(), signed_headers = { "X-Sdk-Date", "x-project-id", "host" } }.status)
    end)

    it("refuses a request changed after signing: path, query, body, a signed header", function()
      assert_refused(signed_call({ path = v1("?limit=1") }, { path = v1("?limit=2") }), "verify aksk signature fail")
      assert_refused(signed_call({ method = "POST", path = v2(), body = '{"bandwidth":{"name":"a","size":5}}' },
        { body = '{"bandwidth":{"name":"b","size":5}}' }), "verify aksk signature fail")
      assert_refused(signed_call({ path = v1(), headers = { ["Content-Type"] = "application/json" } },
        { headers = { ["Content-Type"] = "text/plain" } }), "verify aksk signature fail")
      assert_refused(signed_call({ path = v1(), headers = { ["Content-Type"] = "application/json" } },
        { headers = { ["Content-Type"] = false } }), "signed header content-type is missing")
    end)

    -- As the gateway does: the official Go signer signs no Host, and is accepted.
    it("refuses a signature that leaves out x-sdk-date, and takes one without host", function()
      assert.equal(200, signed_call{ path = v1(), signed_headers = { "x-project-id", "x-sdk-date" } }.status)
      assert_refused(signed_call{ path = v1(), signed_headers = { "host", "x-project-id" } },
        "x-sdk-date is not a signed header")
      assert.equal(200, signed_call{ path = v1(), signed_headers = { "host", "x-sdk-date" } }.status)
    end)

    it("refuses an X-Sdk-Date more than 15 minutes from the emulator's clock, or malformed", function()
      local skewed = "x-sdk-date is more than 15 minutes from the server time"
      assert_refused(signed_call{ path = v1(), date = sdk_date(-16 * 60) }, skewed)
      assert_refused(signed_call{ path = v1(), date = sdk_date(16 * 60) }, skewed)
      assert.equal(200, signed_call{ path = v1(), date = sdk_date(-14 * 60) }.status)
      local malformed = "x-sdk-date is missing or not YYYYMMDDTHHMMSSZ"
      assert_refused(signed_call{ path = v1(), date = "2026-11-24T02:31:38Z" }, malformed)
      assert_refused(signed_call{ path = v1(), date = "20261324T023138Z" }, malformed)
      emu:set_clock_offset(20 * 60) -- the server's clock ahead: a client with a correct clock fails
      local resp = signed_call{ path = v1() }
      emu:set_clock_offset(0)
      assert_refused(resp, skewed)
      assert.equal(200, signed_call{ path = v1() }.status)
    end)

    it("temporary credentials need their security token, sent and signed", function()
      assert.equal(200, signed_call{ path = v1(), temporary = true }.status)
      assert_refused(signed_call{ path = v1(), ak = emu.temp_ak, sk = emu.temp_sk },
        "x-security-token is required for temporary credentials")
      assert_refused(signed_call{ path = v1(), temporary = true,
        signed_headers = { "host", "x-project-id", "x-sdk-date" } }, "x-security-token is not a signed header")
      local resp = signed_call{ path = v1(), temporary = true, security_token = "gQ5jbi1ub3J0aC00-not-the-token" }
      assert_refused(resp, "x-security-token is invalid or expired")
      assert.is_nil(resp.body:find(emu.security_token, 1, true))
      assert_refused(signed_call{ path = v1(), security_token = emu.security_token },
        "x-security-token sent with a permanent access key")
    end)

    it("takes the project from X-Project-Id: required, one of the account's, and the URL's", function()
      local resp = signed_call{ path = v1(), project_id = emu.other_project_id }
      assert_vpc_error(resp, 400, "VPC.0007")
      resp = signed_call{ path = "/v1/" .. emu.other_project_id .. "/bandwidths" }
      assert_vpc_error(resp, 400, "VPC.0007")
      assert.equal("urlTenantId is not equal tokenTenantId", resp.json.message)
      -- Keys are an IAM user's, valid in every project of the account: the other project's list
      -- holds none of this project's bandwidths.
      local mine = emu:create_bandwidth{ size = 1 }
      resp = signed_call{ path = "/v1/" .. emu.other_project_id .. "/bandwidths", project_id = emu.other_project_id }
      assert.equal(200, resp.status)
      for _, bw in ipairs(resp.json.bandwidths) do assert.not_equal(mine, bw.id) end
      local foreign = "00112233445566778899aabbccddeeff"
      resp = signed_call{ path = "/v1/" .. foreign .. "/bandwidths", project_id = foreign }
      assert_vpc_error(resp, 400, "VPC.0007")
      assert.equal("X-Project-Id is not a project of this access key's account", resp.json.message)
      assert_refused(signed_call({ path = v1(), signed_headers = { "host", "x-sdk-date" } },
        { headers = { ["X-Project-Id"] = false } }), "x-project-id is required with AK/SK")
    end)

    it("refuses a request that carries both a token and a signature", function()
      local resp = signed_call({ path = v1() }, { headers = { ["X-Auth-Token"] = emu.token } })
      assert_refused(resp, "both x-auth-token and an authorization signature were sent")
      assert_refused(call("GET", v1(), nil, { Authorization = "Bearer x" }),
        "authorization is not an SDK-HMAC-SHA256 signature")
    end)

    it("takes extra AK/SK pairs and IAM users as start options", function()
      local project = "11112222333344445555666677778888"
      local other = emulator.start{
        aksk = { EXTRAAK0000000000001 = { sk = "ExtraSecretKeyExtraSecretKeyExtraSecret1", project_id = project } },
        users = { { username = "extra", password = "Extra-Passw0rd", domain = "extra-domain",
          project = "eu-west-0", project_id = project } },
      }
      finally(function() other:stop() end)
      local headers = other:sign{ path = "/v1/" .. project .. "/bandwidths", ak = "EXTRAAK0000000000001",
        sk = "ExtraSecretKeyExtraSecretKeyExtraSecret1", project_id = project }
      local resp = assert(emulator.http{ port = other.port, path = "/v1/" .. project .. "/bandwidths",
        headers = headers })
      assert.equal(200, resp.status, resp.body)
      resp = assert(emulator.http{ port = other.iam_port, method = "POST", path = "/v3/auth/tokens",
        body = cjson.encode{ auth = { identity = { methods = { "password" }, password = { user = {
          name = "extra", password = "Extra-Passw0rd", domain = { name = "extra-domain" } } } },
          scope = { project = { name = "eu-west-0" } } } } })
      assert.equal(201, resp.status, resp.body)
      assert.equal(200, assert(emulator.http{ port = other.port, path = "/v1/" .. project .. "/bandwidths",
        headers = { ["X-Auth-Token"] = resp.headers["x-subject-token"] } }).status)
      -- the defaults are still there
      assert.equal(200, assert(emulator.http{ port = other.port, path = v1(),
        headers = other:sign{ path = v1() } }).status)
      -- Each key is its account's: the extra domain's key acts in no project of the default
      -- domain (X-Project-Id refused), and its project lookup lists only its own account's.
      local victim = other:create_bandwidth{ size = 5 }
      local path = "/v2.0/" .. other.project_id .. "/bandwidths/" .. victim
      resp = assert(emulator.http{ port = other.port, method = "DELETE", path = path,
        headers = other:sign{ method = "DELETE", path = path, ak = "EXTRAAK0000000000001",
          sk = "ExtraSecretKeyExtraSecretKeyExtraSecret1", project_id = other.project_id } })
      assert.equal(400, resp.status, resp.body)
      assert.matches("not a project of this access key's account", resp.body, 1, true)
      assert.is_not_nil(other:get_bandwidth(victim))
      for _, case in ipairs{ { "EXTRAAK0000000000001", "ExtraSecretKeyExtraSecretKeyExtraSecret1", project },
          { other.ak, other.sk, other.project_id } } do
        local lookup = "/v3/projects?name=eu-west-0" -- signed for IAM's host
        resp = assert(emulator.http{ port = other.iam_port, path = lookup,
          headers = other:sign{ path = lookup, port = other.iam_port, ak = case[1], sk = case[2] } })
        assert.equal(200, resp.status, resp.body)
        local ids = {}
        for _, p in ipairs(cjson.decode(resp.body).projects) do ids[#ids + 1] = p.id end
        assert.same(case[1] == other.ak and {} or { project }, ids, case[1])
      end
    end)

    -- A knob value that makes no sense is refused, as an unknown knob is, rather than taken: a
    -- metadata token route answering 0 (nginx sends 200) or 201 hands out "no token service" as
    -- the token, and a rate of 0.5 requests a second throttles every request.
    it("set_knobs refuses a metadata token status no service sends and a count that is no integer", function()
      for _, knobs in ipairs{ { metadata_token_status = 0 }, { metadata_token_status = 201 },
          { metadata_token_status = 404.5 }, { metadata_token_status = 600 }, { throttle_rate = 0.5 },
          { aksk_lock_after = 2.5 } } do
        local ok, err = pcall(emu.set_knobs, emu, knobs)
        assert.is_false(ok, next(knobs))
        assert.matches("HTTP 400", err)
      end
      emu:set_knobs{ metadata_token_status = 503, throttle_rate = 3, aksk_lock_after = 2 }
      assert.equal(503, call("PUT", "/meta-data/latest/api/token", nil, { ["X-Metadata-Token-Ttl-Seconds"] = "60" },
        emu.metadata_port).status)
    end)

    -- nginx's shared dict keeps a key with no lifetime (0) for good: a knob of 0 seconds must
    -- make a lock or a temporary key that ends at once, not one that never does.
    it("a knob of 0 seconds: the AK lock and the metadata keys end at once, not never", function()
      emu:set_knobs{ aksk_lock_after = 1, aksk_lock_seconds = 0, metadata_credential_ttl = 0, metadata_same_keys = 1 }
      local path = v1()
      assert.equal(401, call("GET", path, nil, emu:sign{ path = path, sk = ("w"):rep(40) }).status)
      assert.equal(200, call("GET", path, nil, emu:sign{ path = path }).status)
      assert.equal(0, emu:stats().aksk_locks) -- (a lock of no time locks nothing)
      local token = call("PUT", "/meta-data/latest/api/token", nil, { ["X-Metadata-Token-Ttl-Seconds"] = "60" },
        emu.metadata_port).body
      local keys = {}
      for i = 1, 2 do
        socket.sleep(0.01)
        keys[i] = call("GET", "/openstack/latest/securitykey", nil, { ["X-Metadata-Token"] = token },
          emu.metadata_port).json.credential
      end
      assert.are_not.equal(keys[1].access, keys[2].access) -- (the first had expired)
      local signed = emu:sign{ path = path, ak = keys[1].access, sk = keys[1].secret,
        security_token = keys[1].securitytoken }
      assert.equal(401, call("GET", path, nil, signed).status)
    end)
  end)

  describe("IAM tokens", function()
    local function login(overrides)
      overrides = overrides or {}
      local project = overrides.project_id and { id = overrides.project_id }
        or { name = overrides.project or emu.iam.project }
      local body = { auth = {
        identity = { methods = { "password" }, password = { user = {
          name = overrides.username or emu.iam.username,
          password = overrides.password or emu.iam.password,
          domain = { name = overrides.domain or emu.iam.domain } } } },
        scope = { project = project } } }
      return call("POST", "/v3/auth/tokens", overrides.body or body, { ["Content-Type"] = "application/json" },
        emu.iam_port)
    end

    -- The fields of a UTC time, as os.time reads them (local time), without daylight saving:
    -- differences are exact whatever the zone and the date (a DST change within a token's 24 h
    -- would otherwise make them 23 or 25 h), and compare with os.time(os.date("!*t")).
    local function epoch(iso)
      local y, mo, d, h, mi, s = iso:match("^(%d+)%-(%d+)%-(%d+)T(%d+):(%d+):(%d+)%.%d+Z$")
      return os.time{ year = y, month = mo, day = d, hour = h, min = mi, sec = s, isdst = false }
    end

    local function assert_iam_refused(resp, message)
      assert.equal(401, resp.status, resp.body)
      assert.same({ code = 401, message = message, title = "Unauthorized" }, resp.json.error)
    end

    it("exposes the default IAM user of the default project", function()
      assert.same({ "domain", "password", "project", "project_id", "username" }, (function()
        local keys = {}
        for k in pairs(emu.iam) do keys[#keys + 1] = k end
        table.sort(keys)
        return keys
      end)())
      assert.equal(emu.project_id, emu.iam.project_id)
    end)

    it("issues a token: 201, X-Subject-Token, the documented body; it works for its project", function()
      local resp = login()
      assert.equal(201, resp.status, resp.body)
      local token = resp.headers["x-subject-token"]
      assert.is_true(#token >= 100)
      assert.is_nil(resp.body:find(token, 1, true))
      local t = resp.json.token
      local stamp = "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%d%d%d%dZ$"
      assert.matches(stamp, t.expires_at)
      assert.matches(stamp, t.issued_at)
      assert.equal(24 * 3600, epoch(t.expires_at) - epoch(t.issued_at))
      assert.same({ "password" }, t.methods)
      assert.equal(emu.project_id, t.project.id)
      assert.equal(emu.iam.project, t.project.name)
      assert.equal(emu.iam.username, t.user.name)
      assert.equal(emu.iam.domain, t.user.domain.name)
      assert.is_nil(resp.body:find(emu.iam.password, 1, true))
      assert.equal(200, call("GET", v1(), nil, { ["X-Auth-Token"] = token }).status)
      assert_vpc_error(call("GET", "/v1/" .. emu.other_project_id .. "/bandwidths", nil,
        { ["X-Auth-Token"] = token }), 400, "VPC.0007")
      assert.are_not.equal(token, login().headers["x-subject-token"]) -- a new token each time
      assert.equal(2, emu:stats().tokens_issued)
    end)

    it("scopes by project id, or to another project of the user", function()
      local resp = login{ project_id = emu.other_project_id }
      assert.equal(201, resp.status, resp.body)
      assert.equal(emu.other_project_id, resp.json.token.project.id)
      assert.equal(200, call("GET", "/v1/" .. emu.other_project_id .. "/bandwidths", nil,
        { ["X-Auth-Token"] = resp.headers["x-subject-token"] }).status)
    end)

    it("refuses a wrong password, user or domain with 401, never echoing the password", function()
      local resp = login{ password = "Wrong-Passw0rd-secret" }
      assert_iam_refused(resp, "The username or password is wrong.")
      assert.is_nil(resp.body:find("Wrong-Passw0rd-secret", 1, true))
      assert.is_nil(resp.headers["x-subject-token"])
      assert_iam_refused(login{ username = "nobody" }, "The username or password is wrong.")
      assert_iam_refused(login{ domain = "other-domain" }, "The username or password is wrong.")
      assert.equal(3, emu:stats().auth_failures)
      assert.equal(0, emu:stats().tokens_issued)
    end)

    it("refuses an unknown project with 401 and a malformed body with 400", function()
      assert_iam_refused(login{ project = "no-such-region" }, "The request you have made requires authentication.")
      assert_iam_refused(login{ project_id = "00000000000000000000000000000000" },
        "The request you have made requires authentication.")
      local resp = login{ body = '{"auth":{"identity":{"methods":["token"]}}}' }
      assert.equal(400, resp.status)
      assert.equal("Bad Request", resp.json.error.title)
      assert.equal(405, call("GET", "/v3/auth/tokens", nil, nil, emu.iam_port).status)
    end)

    -- "policy user over ratelimit": the gateway counts the user's requests, whatever token of
    -- theirs each carries (a refreshed one, one per nginx worker).
    it("throttles the tokens issued to one user in one window", function()
      local t1, t2 = login().headers["x-subject-token"], login().headers["x-subject-token"]
      assert.is_truthy(t1 and t2 and t1 ~= t2)
      emu:set_knobs{ throttle_rate = 2, throttle_retry_after = 0 }
      local statuses
      for _ = 1, 5 do -- three calls at the start of one second of the gateway's clock
        local next_second = math.floor(socket.gettime()) + 1
        repeat socket.sleep(0.01) until socket.gettime() >= next_second
        statuses = {}
        for i, token in ipairs{ t1, t2, t1 } do
          statuses[i] = call("GET", v1(), nil, { ["X-Auth-Token"] = token }).status
        end
        if math.floor(socket.gettime()) == next_second then break end
        statuses = nil
      end
      emu:set_knobs{ throttle_rate = 0 }
      assert.same({ 200, 200, 429 }, statuses)
    end)

    it("expire_tokens: issued tokens answer 401 APIGW.0301 afterwards, new ones work", function()
      local old = login().headers["x-subject-token"]
      assert.is_true(emu:expire_tokens() >= 1) -- earlier tests' tokens too: reset keeps them
      local resp = call("GET", v1(), nil, { ["X-Auth-Token"] = old })
      assert_gateway_error(resp, 401, "APIGW.0301")
      assert.equal("Incorrect IAM authentication information: the token has expired", resp.json.error_msg)
      assert.equal(200, call("GET", v1()).status) -- configured tokens never expire
      local new = login().headers["x-subject-token"]
      assert.equal(200, call("GET", v1(), nil, { ["X-Auth-Token"] = new }).status)
      assert.equal(1, emu:stats().auth_failures)
    end)

    it("set_token_ttl: expires_at follows it, and a token stops working when it passes", function()
      emu:set_token_ttl(3) -- seconds for the call that must still pass with it
      local ok, err = pcall(function()
        local resp = login()
        local t = resp.json.token
        assert.equal(3, epoch(t.expires_at) - epoch(t.issued_at))
        local token = resp.headers["x-subject-token"]
        assert.equal(200, call("GET", v1(), nil, { ["X-Auth-Token"] = token }).status)
        socket.sleep(3.1)
        assert_gateway_error(call("GET", v1(), nil, { ["X-Auth-Token"] = token }), 401, "APIGW.0301")
      end)
      emu:set_token_ttl(24 * 3600)
      assert(ok, err)
    end)

    it("reset keeps issued tokens but restores the default TTL and clock", function()
      local token = login().headers["x-subject-token"]
      emu:set_token_ttl(5)
      emu:set_clock_offset(3600)
      emu:reset()
      assert.equal(200, call("GET", v1(), nil, { ["X-Auth-Token"] = token }).status)
      local t = login().json.token
      assert.equal(24 * 3600, epoch(t.expires_at) - epoch(t.issued_at))
      assert.is_true(math.abs(epoch(t.issued_at) - os.time(os.date("!*t"))) < 60)
    end)
  end)

  describe("injection", function()
    -- emulator.http asked LuaSocket for the 0 bytes of an empty body, which waits for more: an
    -- injected 503 without a body read as "closed" (or "timeout" on a kept-alive connection).
    it("emulator.http reads an answer whose body is empty (Content-Length: 0)", function()
      emu:inject{ path = "^/empty$", status = 503, times = 2 }
      local resp = assert(emulator.http{ port = emu.port, path = "/empty", timeout = 0.5 })
      assert.same({ 503, "0", "" }, { resp.status, resp.headers["content-length"], resp.body })
      resp = assert(emulator.http{ port = emu.port, path = "/empty", timeout = 0.5, keepalive = true })
      assert.same({ 503, "" }, { resp.status, resp.body })
      resp = assert(emulator.http{ port = emu.port, path = "/nowhere", sock = resp.sock })
      assert.equal(404, resp.status) -- (and the connection is still good for the next request)
    end)

    -- (cjson decodes every number as a float: Lua 5.3+ wrote the counts "1.0")
    it("inject and expire_tokens answer their counts as integers", function()
      assert.equal("1", tostring(emu:inject{ path = "^/counted$", status = 503 }))
      assert.equal("2", tostring(emu:inject{ path = "^/counted$", status = 503 }))
      assert.matches("^%d+$", tostring(emu:expire_tokens()))
      assert.equal("2", tostring(emu:stats().pending_injections))
    end)

    it("respond: status, JSON body, headers; consumed after `times`; matched by method and path", function()
      emu:inject{ method = "DELETE", path = "/bandwidths/[^/]+$", times = 2, status = 503,
        body = { code = "VPC.0302", message = "Neutron Error." }, headers = { ["Retry-After"] = 2 } }
      assert.equal(200, call("GET", v1()).status) -- other method: not consumed
      for _ = 1, 2 do
        local resp = call("DELETE", v2("/x"))
        assert_vpc_error(resp, 503, "VPC.0302")
        assert.equal("2", resp.headers["retry-after"])
        assert.equal(32, #resp.headers["x-request-id"])
      end
      assert_vpc_error(call("DELETE", v2("/x")), 400, "VPC.0301") -- the emulator's own answer again
      assert.equal(0, emu:stats().pending_injections)
    end)

    -- The cloud's gateway routes and authenticates before the EIP service answers anything: an
    -- injected service error (a body with a VPC./EIP. code) must not answer a request the
    -- gateway refuses, as it did when every rule answered on arrival.
    it("respond with a service error: only after routing and authentication; pending until then", function()
      local id = emu:create_bandwidth{ size = 5 }
      emu:inject{ method = "DELETE", status = 503, body = { code = "VPC.0302", message = "Neutron Error." },
        times = -1 }
      assert_gateway_error(call("DELETE", v2("/" .. id), nil, { ["X-Auth-Token"] = "garbage" }), 401, "APIGW.0301")
      assert_gateway_error(call("DELETE", v2("/" .. id), nil, {}), 401, "APIGW.0301")
      assert_gateway_error(call("DELETE", "/anything/at/all"), 404, "APIGW.0101")
      local no_method = call("DELETE", v1("/" .. id)) -- no DELETE there: the gateway's words for a method
      assert_gateway_error(no_method, 404, "APIGW.0101")
      assert.equal("The API does not exist.", no_method.json.error_msg)
      assert.equal(1, emu:stats().pending_injections)
      for _ = 1, 2 do assert_vpc_error(call("DELETE", v2("/" .. id)), 503, "VPC.0302") end
      -- (the service's answer replaces the service's own checks, the project's too)
      local other = "/v2.0/" .. emu.other_project_id .. "/bandwidths/" .. id
      assert_vpc_error(call("DELETE", other), 503, "VPC.0302")
      assert.is_not_nil(emu:get_bandwidth(id))
      -- Signed with AK/SK: a failed signature is the gateway's 401, and still counts toward the lock.
      emu:set_knobs{ aksk_lock_after = 3 }
      local path = v2("/" .. id)
      for _ = 1, 3 do
        local resp = call("DELETE", path, nil, emu:sign{ method = "DELETE", path = path, sk = ("w"):rep(40) })
        assert_gateway_error(resp, 401, "APIGW.0301")
      end
      local locked = call("DELETE", path, nil, emu:sign{ method = "DELETE", path = path })
      assert_gateway_error(locked, 401, "APIGW.0301")
      -- (the gateway's own words for a locked key: the API gateway's FAQ and the signing guide's)
      assert.equal("Incorrect IAM authentication information: AK access failed to reach the limit,forbidden.",
        locked.json.error_msg)
    end)

    it("a service's answer on IAM's and the metadata service's routes: only on their own endpoint", function()
      emu:inject{ method = "POST", path = "^/v3/auth/tokens$", status = 503,
        body = { code = "IAM.0001", message = "x" }, answered_by = "service" }
      assert_gateway_error(call("POST", "/v3/auth/tokens", "{}"), 404, "APIGW.0101") -- the VPC endpoint's port
      assert.equal(503, call("POST", "/v3/auth/tokens", "{}", {}, emu.iam_port).status)
      emu:inject{ method = "GET", path = "^/v3/projects$", status = 503, body = { code = "IAM.0002", message = "x" },
        answered_by = "service" }
      local refused = call("GET", "/v3/projects", nil, {}, emu.iam_port)
      assert.same({ 401, "APIGW.0301" }, { refused.status, refused.json.error_code })
      local signed = emu:sign{ path = "/v3/projects", port = emu.iam_port }
      assert.equal(503, call("GET", "/v3/projects", nil, signed, emu.iam_port).status)
      local token = "/meta-data/latest/api/token"
      emu:inject{ method = "PUT", path = "^/meta%-data/latest/api/token$", status = 503, body = "busy",
        answered_by = "service" }
      assert_gateway_error(call("PUT", token, nil, {}), 404, "APIGW.0101")
      assert.equal(503, call("PUT", token, nil, {}, emu.metadata_port).status)
      assert.equal(0, emu:stats().pending_injections)
    end)

    -- A rule taken for the EIP service's by its body's code alone is never IAM's or the metadata
    -- service's answer (they send no VPC./EIP. code): their requests pass it by, and it waits for
    -- the first request that reaches the EIP service.
    it("an EIP service error by its code alone: IAM's and the metadata service's requests pass it by", function()
      emu:inject{ status = 503, body = { code = "VPC.0302", message = "Neutron Error." } }
      local login = call("POST", "/v3/auth/tokens", "{}", {}, emu.iam_port)
      assert.is_true(login.status ~= 503, "IAM answered with the EIP service's rule") -- (its own 400)
      local token = call("PUT", "/meta-data/latest/api/token", nil, {}, emu.metadata_port)
      assert.is_true(token.status ~= 503, "the metadata service answered with the EIP service's rule")
      assert.equal(1, emu:stats().pending_injections)
      assert_vpc_error(call("DELETE", v2("/" .. emu:create_bandwidth{ size = 20 })), 503, "VPC.0302")
      assert.equal(0, emu:stats().pending_injections)
      -- (the same when the rule says it is the service's: an EIP code is never IAM's)
      emu:inject{ status = 503, body = { code = "VPC.0302", message = "Neutron Error." }, answered_by = "service" }
      assert.is_true(call("POST", "/v3/auth/tokens", "{}", {}, emu.iam_port).status ~= 503)
      assert.equal(1, emu:stats().pending_injections)
    end)

    -- What the gateway (or a load balancer before it) sends, and faults of the connection, come
    -- before routing and authentication, as they always did.
    it("respond from the gateway, and transport faults: on arrival, whatever the request", function()
      local bad = { ["X-Auth-Token"] = "garbage" }
      local function gateway(status, code, resp)
        assert.same({ status, code }, { resp.status, resp.json.error_code })
      end
      emu:inject{ method = "DELETE", status = 429, body = { error_code = "APIGW.0308", error_msg = "slow down" } }
      gateway(429, "APIGW.0308", call("DELETE", v2("/x"), nil, bad))
      emu:inject{ method = "DELETE", status = 429, body = { code = "VPC.0302", message = "x" } } -- a 429 all the same
      assert.equal(429, call("DELETE", v2("/x"), nil, bad).status)
      emu:inject{ method = "DELETE", status = 502, body = "<html>bad gateway</html>", content_type = "text/html" }
      assert.equal(502, call("DELETE", "/anything/at/all", nil, bad).status)
      emu:inject{ method = "DELETE", status = 503, body = "busy", content_type = "text/plain" }
      assert.equal(503, call("DELETE", "/anything/at/all", nil, bad).status)
      -- (a load balancer's body in the code/message shape, but no code of the EIP service's)
      for _, body in ipairs{ { code = "ELB.503", message = "busy" }, { code = 503, message = "no upstream" } } do
        emu:inject{ method = "DELETE", status = 503, body = body }
        assert.equal(503, call("DELETE", "/anything/at/all", nil, bad).status)
      end
      emu:inject{ method = "DELETE", status = 401, body = { error_code = "APIGW.0301", error_msg = "x" } }
      gateway(401, "APIGW.0301", call("DELETE", v2("/x"))) -- with the right token, too
      emu:inject{ method = "DELETE", action = "drop" }
      local resp, err = emulator.http{ port = emu.port, method = "DELETE", path = "/anything", headers = bad }
      assert.same({ nil, "closed" }, { resp, err })
      assert.equal(0, emu:stats().pending_injections)
    end)

    it("answered_by says where a rule answers; the FIFO order holds across both places", function()
      local bad = { ["X-Auth-Token"] = "garbage" }
      emu:inject{ method = "DELETE", status = 204, answered_by = "service" }
      assert_gateway_error(call("DELETE", v2("/x"), nil, bad), 401, "APIGW.0301")
      assert.equal(204, call("DELETE", v2("/x")).status)
      emu:inject{ method = "DELETE", status = 503, body = { code = "VPC.0302", message = "x" },
        answered_by = "gateway" }
      assert_vpc_error(call("DELETE", "/anything/at/all", nil, bad), 503, "VPC.0302")
      -- A service rule first: the gateway's rule behind it waits its turn.
      emu:inject{ method = "DELETE", status = 503, body = { code = "VPC.0302", message = "x" } }
      emu:inject{ method = "DELETE", status = 502, body = "<html>502</html>" }
      assert_gateway_error(call("DELETE", v2("/x"), nil, bad), 401, "APIGW.0301")
      assert.equal(2, emu:stats().pending_injections)
      assert_vpc_error(call("DELETE", v2("/x")), 503, "VPC.0302")
      assert.equal(502, call("DELETE", v2("/x"), nil, bad).status)
      -- One rule per request: one that only slowed it leaves the service's rule for the next.
      local id = emu:create_bandwidth{ size = 5 }
      emu:inject{ method = "DELETE", action = "slow", delay = 0 }
      emu:inject{ method = "DELETE", status = 503, body = { code = "VPC.0302", message = "x" } }
      assert.equal(204, call("DELETE", v2("/" .. id)).status)
      assert_vpc_error(call("DELETE", v2("/" .. id)), 503, "VPC.0302")
      assert.has_error(function() emu:inject{ answered_by = "cdn" } end)
      local rules = cjson.decode(assert(emulator.http{ port = emu.port, path = "/__emulator/inject" }).body).rules
      assert.same({}, rules)
    end)

    it("respond: raw body, content type, removed X-Request-Id, rules in FIFO order", function()
      emu:inject{ status = 502, body = "<html>bad gateway</html>", content_type = "text/html",
        headers = { ["X-Request-Id"] = false } }
      emu:inject{ status = 204, body = "" }
      local resp = call("GET", v1())
      assert.equal(502, resp.status)
      assert.equal("<html>bad gateway</html>", resp.body)
      assert.equal("text/html", resp.headers["content-type"])
      assert.is_nil(resp.headers["x-request-id"])
      assert.equal(204, call("GET", v1()).status)
      emu:inject{ status = 401, body = "{}", no_request_id = true }
      assert.is_nil(call("GET", v1()).headers["x-request-id"])
    end)

    it("respond: body_size streams N filler bytes of valid JSON; chunked leaves out Content-Length", function()
      emu:inject{ status = 503, body_size = 1000000 }
      local resp = call("DELETE", v2("/x"))
      assert.equal(503, resp.status)
      assert.equal(1000000, #resp.body)
      assert.equal("1000000", resp.headers["content-length"])
      assert.equal(1000000 - 13, #resp.json.filler)
      emu:inject{ status = 200, body = { ok = true }, chunked = true }
      resp = call("GET", v1())
      assert.equal("chunked", resp.headers["transfer-encoding"])
      assert.is_true(resp.json.ok)
    end)

    it("delay: waits before acting", function()
      emu:inject{ status = 500, body = "{}", delay = 0.3 }
      local t0 = socket.gettime()
      assert.equal(500, call("GET", v1()).status)
      assert.is_true(socket.gettime() - t0 >= 0.25)
    end)

    it("slow: handles the request as usual, after the delay", function()
      local id = emu:create_bandwidth{ size = 5 }
      emu:inject{ method = "DELETE", action = "slow", delay = 0.2 }
      assert.equal(204, call("DELETE", v2("/" .. id)).status)
      assert.is_nil(emu:get_bandwidth(id))
      assert_vpc_error(call("DELETE", v2("/" .. id)), 404, "VPC.0306") -- used up: as usual again
    end)

    it("drop: closes the connection without any answer", function()
      emu:inject{ action = "drop" }
      local resp, err = emulator.http{ port = emu.port, path = v1(), headers = { ["X-Auth-Token"] = emu.token } }
      assert.is_nil(resp)
      assert.equal("closed", err)
      assert.equal(1, emu:stats().requests) -- it still counts as an API request
    end)

    it("reset_mid_body: promises more than it sends, then closes", function()
      emu:inject{ action = "reset_mid_body", status = 500, body_size = 10000 }
      local sock = socket.tcp()
      sock:settimeout(2)
      assert(sock:connect("127.0.0.1", emu.port))
      sock:send("GET " .. v1() .. " HTTP/1.1\r\nHost: x\r\n\r\n")
      local data, err, partial = sock:receive("*a")
      sock:close()
      data = data or partial
      assert.is_nil(err)
      assert.matches("^HTTP/1%.1 500", data)
      assert.matches("Content%-Length: 10000\r\n", data)
      local body = data:match("\r\n\r\n(.*)$")
      assert.equal(5000, #body)
    end)

    it("hang: never sends the headers", function()
      emu:inject{ action = "hang" }
      local t0 = socket.gettime()
      local resp, err = emulator.http{ port = emu.port, path = v1(), timeout = 0.3 }
      assert.is_nil(resp)
      assert.equal("timeout", err)
      assert.is_true(socket.gettime() - t0 < 3)
      assert.equal(200, call("GET", v1()).status) -- the server is still fine
    end)

    it("trickle: sends the body one byte per trickle_interval", function()
      emu:inject{ action = "trickle", status = 200, body = '{"a":1}', trickle_interval = 0.05 }
      local t0 = socket.gettime()
      local resp = call("GET", v1())
      assert.is_true(socket.gettime() - t0 >= 0.3)
      assert.equal(200, resp.status)
      assert.equal('{"a":1}', resp.body)
    end)

    it("refuses malformed rules", function()
      assert.has_error(function() emu:inject{ acton = "drop" } end)
      assert.has_error(function() emu:inject{ action = "explode" } end)
      assert.has_error(function() emu:inject{ status = 700 } end)
      assert.has_error(function() emu:inject{ path = "[" } end)
      -- (string.find reads a pattern only as far as its subject takes it: each of these finds
      -- nothing in "" and raises on a path; queued, it answered every such request a 500)
      for _, path in ipairs({ "bandwidths/[", "/x[^", "/[%", "/x%", "/(x", "/(x)y)", "/(x)%2", "/(x%1)", "/%0",
        "/%b", "/%bx", "/%fx", "/%f[x", ("()"):rep(33) }) do
        assert.has_error(function() emu:inject{ path = path } end, nil, path)
      end
      assert.equal(0, emu:stats().pending_injections)
      -- (valid ones, however odd, are taken: a ")" without "(" is no pattern at all, but plain text)
      for _, path in ipairs({ "/x)", "^/v2%.0/[^/]+/bandwidths/(%x+)%-[]%]]*%1%b()%f[%w]x()$", "[%a-]+%-?$" }) do
        emu:inject{ path = path, status = 503 }
      end
      assert.equal(3, emu:stats().pending_injections)
      assert.equal(503, call("DELETE", "/v2.0/p/bandwidths/ab-]]ab(x)x").status)
      assert.equal(2, emu:stats().pending_injections)
    end)
  end)

  describe("accounting", function()
    it("counts API requests and distinct connections, not control calls; reset clears them", function()
      call("GET", v1())
      call("GET", "/nowhere")
      emu:create_bandwidth{ size = 5 }
      emu:get_bandwidth("x")
      local stats = emu:stats()
      assert.equal(2, stats.requests)
      assert.equal(2, stats.connections)
      emu:reset()
      stats = emu:stats()
      assert.equal(0, stats.requests)
      assert.equal(0, stats.connections)
    end)

    it("counts one connection for requests over one keep-alive connection", function()
      local headers = { ["X-Auth-Token"] = emu.token }
      local resp = assert(emulator.http{ port = emu.port, path = v1(), headers = headers, keepalive = true })
      for _ = 1, 4 do
        resp = assert(emulator.http{ port = emu.port, path = v1(), headers = headers, keepalive = true,
          sock = resp.sock })
        assert.equal(200, resp.status)
      end
      resp.sock:close()
      local stats = emu:stats()
      assert.equal(5, stats.requests)
      assert.equal(1, stats.connections)
      emu:reset_counters()
      assert.equal(0, emu:stats().requests)
    end)

    it("logs method, uri, lower-case headers and body, oldest first, the last 200 only", function()
      call("POST", v2(), { bandwidth = { name = "logged", size = 5 } },
        { ["X-Auth-Token"] = emu.token, ["X-Custom-Header"] = "Yes" })
      call("GET", v1("?limit=1"))
      local log = emu:requests()
      assert.equal(2, #log)
      assert.equal("POST", log[1].method)
      assert.equal(v2(), log[1].uri)
      assert.equal(emu.token, log[1].headers["x-auth-token"])
      assert.equal("Yes", log[1].headers["x-custom-header"])
      assert.equal("logged", cjson.decode(log[1].body).bandwidth.name)
      assert.equal(v1("?limit=1"), log[2].uri)
      local sock
      for i = 1, 205 do
        local resp = assert(emulator.http{ port = emu.port, path = "/n/" .. i, keepalive = true, sock = sock })
        sock = resp.sock
      end
      sock:close()
      log = emu:requests()
      assert.equal(200, #log)
      assert.equal("/n/6", log[1].uri)
      assert.equal("/n/205", log[200].uri)
    end)
  end)
end)

-- The store and the fault injection's queue, in this process, against a stand-in for nginx's
-- shared dict that is full as nginx's is (lua-nginx-module's ngx_http_lua_ffi_shdict_store): a
-- write of a value of the old one's size reuses its place, an incr changes a number in place,
-- and any other write frees the old value first, then finds room only where a value of the new
-- one's size was freed ("no memory"; safe_set never evicts).
describe("emulator store in a full shared dict #once", function()
  local MODULES = { "eip.emulator.server.store", "eip.emulator.server.inject" }
  local store, inject, dict, saved_ngx

  local function size_of(v) return type(v) == "string" and #v or type(v) end

  local function full_dict()
    local items, room, d = {}, {}, { full = false }
    function d.get(_, k) return items[k] end
    function d.ttl() return 0 end
    function d.get_keys()
      local keys = {}
      for k in pairs(items) do keys[#keys + 1] = k end
      return keys
    end
    function d:delete(k)
      if items[k] ~= nil and self.full then room[size_of(items[k])] = (room[size_of(items[k])] or 0) + 1 end
      items[k] = nil
    end
    function d.flush_expired() end
    function d:safe_set(k, v)
      if items[k] ~= nil and size_of(items[k]) == size_of(v) then
        items[k] = v
        return true
      end
      self:delete(k)
      if self.full then
        if (room[size_of(v)] or 0) == 0 then return false, "no memory" end
        room[size_of(v)] = room[size_of(v)] - 1
      end
      items[k] = v
      return true
    end
    function d:safe_add(k, v)
      if items[k] ~= nil then return false, "exists" end
      return self:safe_set(k, v)
    end
    function d.incr(_, k, by)
      if type(items[k]) ~= "number" then return nil, "not found" end
      items[k] = items[k] + by
      return items[k]
    end
    return d
  end

  before_each(function()
    dict = full_dict()
    saved_ngx = rawget(_G, "ngx")
    rawset(_G, "ngx", { shared = { emulator = dict }, now = os.time, log = function() end, ERR = 4 })
    for _, name in ipairs(MODULES) do package.loaded[name] = nil end
    store, inject = require(MODULES[1]), require(MODULES[2])
  end)

  after_each(function()
    for _, name in ipairs(MODULES) do package.loaded[name] = nil end
    rawset(_G, "ngx", saved_ngx)
  end)

  local function queue(rule)
    return inject.add(assert(inject.validate(rule)))
  end

  local function paths()
    local out = {}
    for i, rule in ipairs(store.get_rules()) do out[i] = ("%sx%d"):format(rule.path, rule.times) end
    return out
  end

  -- The queue was one value rewritten at each take: one that shrank lost every rule in it.
  it("takes each queued rule as often as it says, never losing or repeating one", function()
    queue{ path = "^/a$", status = 418, times = 2 }
    queue{ path = "^/b$", status = 419, body = { code = "VPC.0302" } }
    queue{ path = "^/c$", status = 420, times = -1 }
    dict.full = true
    assert.equal(418, inject.take("GET", "/a", "gateway", "api").status)
    assert.same({ "^/a$x1", "^/b$x1", "^/c$x-1" }, paths())
    assert.equal(418, inject.take("GET", "/a", "gateway", "api").status)
    assert.is_nil(inject.take("GET", "/a", "gateway", "api"))
    assert.is_nil(inject.take("GET", "/b", "gateway", "api")) -- (the service's: left pending)
    assert.equal(419, inject.take("GET", "/b", "service", "api").status)
    for _ = 1, 3 do assert.equal(420, inject.take("GET", "/c", "gateway", "api").status) end
    assert.same({ "^/c$x-1" }, paths())
  end)

  -- A rule added to a full store dropped the queue and answered 507: the faults queued before
  -- it never came, and the test saw normal answers.
  it("refuses a rule it has no room for, and keeps those queued before it", function()
    queue{ path = "^/a$", status = 418 }
    dict.full = true
    local ok, err = pcall(queue, { path = "^/b$", status = 503, body = ("x"):rep(100) })
    assert.is_false(ok)
    assert.is_true(store.is_full(err), tostring(err))
    assert.same({ "^/a$x1" }, paths())
    assert.equal(418, inject.take("GET", "/a", "gateway", "api").status)
    assert.same({}, paths())
    dict.full = false
    assert.equal(1, queue{ path = "^/b$", status = 503 })
  end)

  -- Any write of a new size freed the old value: a refused one lost what the key held (the
  -- configured tokens: every request was then 401).
  it("keeps what a key held when a new value of it does not fit", function()
    store.set_tokens({ ["emu-token"] = "p1" }, "p1")
    store.set_users({ { username = "u" } })
    dict.full = true
    local ok, err = pcall(store.set_tokens, { ["emu-token"] = "p1", other = "p2" }, "p2-longer")
    assert.is_false(ok)
    assert.is_true(store.is_full(err), tostring(err))
    assert.is_nil(tostring(err):find("store.lua:", 1, true), err) -- (no Lua position in the answer)
    assert.equal("p1", store.project_of_token("emu-token"))
    assert.is_nil(store.project_of_token("other"))
    assert.equal("p1", store.default_project())
    assert.is_false(pcall(store.set_users, {}))
    assert.same({ { username = "u" } }, store.users())
  end)

  -- A full store let a request through uncounted (a test that the client keeps under
  -- throttle_rate passed for nothing), and a failed signature it had no room to count or lock
  -- was a plain 401 (a test that the key is never locked passed for nothing); the statistics
  -- made then were not counted either (stats.throttled 0 after a 429).
  it("refuses a throttle window or a failed signature it cannot count, and counts the statistics", function()
    rawget(_G, "ngx").now = function() return 1000 end
    store.init()
    assert.is_false(store.over_rate("u", 1))
    for _ = 1, 4 do assert.is_false(store.ak_failed("AK")) end
    dict.full = true
    local function refused(fn, ...)
      local ok, err = pcall(fn, ...)
      assert.is_false(ok)
      assert.is_true(store.is_full(err), tostring(err))
    end
    refused(store.over_rate, "v", 1) -- a new window
    refused(store.ak_failed, "AK2") -- a new count
    refused(store.ak_failed, "AK") -- the lock
    assert.is_false(store.ak_locked("AK"))
    assert.is_true(store.over_rate("u", 1)) -- (a window that exists counts in place)
    store.count("auth_failures")
    local stats = store.stats()
    assert.equal(1, stats.throttled)
    assert.equal(1, stats.auth_failures)
    dict.full = false
    assert.is_true(store.ak_failed("AK")) -- (the refused one was not counted: this is the fifth)
    assert.is_true(store.ak_locked("AK"))
    assert.equal(1, store.stats().aksk_locks)
    store.reset()
    assert.same({ 0, 0 }, { store.stats().throttled, dict:get("throttled") })
  end)
end)
