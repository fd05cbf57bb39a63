-- The C core's and libcurl's own allocations running out (build/oom-host fails only Lua's):
-- build/failmalloc.so, preloaded into a Lua 5.4 child (test/c/failmalloc.c), fails them on
-- demand. Whatever fails, a call ends in an eip error (never a raw string), a batch reports every
-- id (it raised once, the results of the ids it had deleted lost), a request that could not be
-- made is said not sent and the bandwidth is still there, and no request goes out other than
-- the one asked for (a DELETE went out as a GET once libcurl could not copy its method; a handle
-- whose `proxy = false` or `ca_file` libcurl could not copy followed the environment's proxy, or
-- the system's CAs). #once: the child is Lua 5.4 whatever runs the specs.
local fixture = require "spec.support.fixture"
local host = require "spec.support.host"

local SHIM = "build/failmalloc.so"

-- Runs `script` in a Lua 5.4 child with the shim preloaded (`env`: more assignments before it;
-- `before`: shell commands first, a ulimit), the emulator's url, token and project in EMU_URL,
-- EMU_TOKEN, EMU_PROJECT: its output and exit status.
local function run(emu, script, env, before)
  assert(io.open(SHIM, "rb"), SHIM .. " is missing: make test builds it (make " .. SHIM .. ")"):close()
  return host.run_script(script, string.format("%s env EMU_URL=%s EMU_TOKEN=%s EMU_PROJECT=%s %s "
    .. "LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/?.so;build/lua5.4/?.so;;' LD_PRELOAD=%s lua5.4",
    before or "", host.quote(emu.url), host.quote(emu.token), host.quote(emu.project_id), env or "",
    host.quote(host.ROOT .. "/" .. SHIM)))
end

local PRELUDE = [[
  local fm = require "failmalloc"
  local eip = require "eip"
  local URL, TOKEN, PROJECT = os.getenv("EMU_URL"), os.getenv("EMU_TOKEN"), os.getenv("EMU_PROJECT")
  local function client(o)
    o = o or {}
    o.endpoint, o.project_id = URL, PROJECT
    if not o.ak then o.token = TOKEN end
    return eip.new(o)
  end
  -- Is the bandwidth still there (asked with memory back)?
  local function exists(c, id)
    local ok, err = pcall(c.show_bandwidth, c, id)
    if ok then return true end
    assert(eip.is_error(err) and err.status == 404, tostring(err))
    return false
  end
  local function describe(err)
    if eip.is_error(err) then
      return string.format("eip %s/%s unsent=%s", tostring(err.kind), tostring(err.reason), tostring(err.unsent))
    end
    return "RAW " .. type(err) .. " " .. tostring(err)
  end
]]

describe("the C core's and libcurl's memory running out #once", function()
  local fx = fixture.emulator()
  local emu

  setup(function() emu = fx.start() end)
  teardown(fx.stop)
  before_each(fx.reset)

  it("a batch reports every id, each as the emulator has it, wherever an allocation fails", function()
    local ids = {}
    for skip = 1, 120 do ids[skip] = emu:create_bandwidths(4) end
    local list = {}
    for i, four in ipairs(ids) do list[i] = "{'" .. table.concat(four, "','") .. "'}" end
    local out, code = run(emu, PRELUDE .. [[
      local batches = { ]] .. table.concat(list, ",") .. [[ }
      local probe = client()
      for n, batch in ipairs(batches) do
        -- (the first 60 with a token, the others signed with keys: the signer's allocations too)
        local skip, keys = (n - 1) % 60 + 1, n > 60
        local c = client(keys and { ak = "]] .. emu.ak .. [[", sk = "]] .. emu.sk .. [[" } or nil)
        fm.arm("core.so,libcurl", skip, 1)
        local ok, results = pcall(c.delete_bandwidths, c, batch, { concurrency = 4 })
        local _, failed = fm.disarm()
        if not ok then
          -- (the multi handle not made: an eip error before anything is sent, every id there)
          local all = true
          for _, id in ipairs(batch) do all = all and exists(probe, id) end
          if not (eip.is_error(results) and results.unsent and all) then print("raised", skip, describe(results)) end
          print("refused", skip)
        else
          for i, id in ipairs(batch) do
            local r, there = results[i], exists(probe, id)
            if r.ok and there then print("deleted yet there", skip, id) end
            if not r.ok and (r.unsent or r.not_sent) and not there then print("not sent yet gone", skip, id) end
            if not r.ok and not eip.is_error(r) then print("raw", skip, describe(r)) end
          end
          if failed > 0 then print("failed", skip) end
          print("reported", skip)
        end
        c:close()
      end
      print("done")
    ]])
    assert.equal(0, code, out)
    assert.matches("done\n$", out)
    assert.is_nil(out:find("raised", 1, true), out)
    assert.is_nil(out:find("yet", 1, true), out)
    assert.is_nil(out:find("raw", 1, true), out)
    assert.matches("failed", out) -- (some allocation did fail)
    assert.matches("refused", out) -- (the multi handle, the first few)
    local _, reported = out:gsub("reported", "")
    assert.is_true(reported > 100, out)
  end)

  it("a single delete, with a token and with keys, ends in an eip error or a result, never a raw one", function()
    local n = 40
    local batch = emu:create_bandwidths(2 * n)
    local out, code = run(emu, PRELUDE .. [[
      local ids = { ']] .. table.concat(batch, "','") .. [[' }
      local probe = client()
      for skip = 0, ]] .. (n - 1) .. [[ do
        for k, o in ipairs{ {}, { ak = "]] .. emu.ak .. [[", sk = "]] .. emu.sk .. [[" } } do
          -- (odd skips watched by an on_response hook: the general way, not the lane)
          if skip % 2 == 1 then o.on_response = function() end end
          local c, id = client(o), ids[2 * skip + k]
          fm.arm("core.so,libcurl", skip, 1)
          local ok, err = pcall(c.delete_bandwidth, c, id)
          fm.disarm()
          local there = exists(probe, id)
          if ok and there then print("deleted yet there", skip, k) end
          if not ok and not eip.is_error(err) then print("raw", skip, k, describe(err)) end
          if not ok and err.unsent and not there then print("not sent yet gone", skip, k) end
          c:close()
        end
      end
      print("done")
    ]])
    assert.equal(0, code, out)
    assert.matches("done\n$", out)
    assert.is_nil(out:find("yet", 1, true), out)
    assert.is_nil(out:find("raw", 1, true), out)
  end)

  it("a method libcurl could not copy: nothing sent, not a GET", function()
    local id = emu:create_bandwidth{ size = 5 }
    local out, code = run(emu, PRELUDE .. [[
      local c = client()
      fm.fail_strdup("DELETE", 1)
      local ok, err = pcall(c.delete_bandwidth, c, "]] .. id .. [[")
      fm.disarm()
      print(ok, describe(err), tostring(err))
      print("again", (pcall(c.delete_bandwidth, c, "]] .. id .. [[")))
    ]])
    assert.equal(0, code, out)
    assert.matches("^false\teip transport/other unsent=true\t", out)
    assert.matches("again\ttrue", out, 1, true)
    local methods = {}
    for _, r in ipairs(emu:requests()) do methods[#methods + 1] = r.method end
    assert.same({ "DELETE" }, methods)
  end)

  it("a handle whose proxy = false or ca_file libcurl could not copy is not made", function()
    -- (a CA file of its own path: libcurl copies its built-in bundle's path itself, at every
    -- handle's making, so a failed copy of that one would fail the handle whatever the code)
    local ca = os.tmpname()
    assert(io.open(ca, "w")):close()
    local out, code = run(emu, PRELUDE .. [[
      for _, case in ipairs{ { "", { proxy = false } }, { "]] .. ca .. [[", { ca_file = "]] .. ca .. [[" } } } do
        fm.fail_strdup(case[1], 1)
        local ok, err = pcall(client, case[2])
        fm.disarm()
        print(case[1], ok, describe(err))
      end
    ]], "http_proxy=http://127.0.0.1:" .. host.closed_port())
    os.remove(ca)
    assert.equal(0, code, out)
    assert.matches("^\tfalse\teip transport/other unsent=true\n", out)
    assert.matches("\n" .. ca:gsub("%p", "%%%0") .. "\tfalse\teip transport/other unsent=true\n", out)
  end)

  -- A request through a proxy, then one that goes direct on the same handle (the endpoint through
  -- a proxy, IAM or the metadata service in no_proxy): libcurl lets go of the proxy's string before
  -- it copies "", and left without one it follows http_proxy. The direct one fails, not sent.
  it("a handle going direct after a proxy, the copy of its no-proxy failing: nothing sent", function()
    local env_proxy = host.closed_port()
    local out, code = run(emu, PRELUDE .. [[
      local core = require "eip.core"
      local session = core.session{ user_agent = "oom" }
      local req = { method = "DELETE", url = URL .. "/v2.0/p/bandwidths/bw-1", headers = {}, timeout = 3,
        connect_timeout = 3, proxy = { url = "http://127.0.0.1:]] .. host.closed_port() .. [[" } }
      local first = session:request(req)
      req.proxy = nil
      fm.fail_strdup("", 1)
      local second = session:request(req)
      fm.disarm()
      local third = session:request(req)
      print(first.curl_code, second.curl_code, second.unsent, third.status, third.curl_code)
    ]], "http_proxy=http://127.0.0.1:" .. env_proxy)
    assert.equal(0, code, out)
    -- (the first: its proxy refuses; the second: not made, not sent; the third: direct, answered)
    assert.matches("^7\t27\ttrue\t401\tnil\n", out)
  end)

  -- Inside nginx, in a phase without cosockets, the automatic transport makes its libcurl one at
  -- its first use: one that cannot be made is a transport failure, nothing sent (it escaped as a
  -- raw string, or was read as an answer lost: may have acted).
  it("the automatic transport whose libcurl handle cannot be made: nothing sent", function()
    local id = emu:create_bandwidth{ size = 5 }
    local out, code = run(emu, [[
      -- (nginx's API as the automatic transport looks for it: a phase without cosockets)
      _G.ngx = { get_phase = function() return "log" end }
    ]] .. PRELUDE .. [[
      local transport = require "eip.transport"
      local req = { method = "DELETE", url = URL .. "/v2.0/" .. PROJECT .. "/bandwidths/]] .. id .. [[",
        headers = { "X-Auth-Token: " .. TOKEN }, timeout = 3, connect_timeout = 3 }
      local t = transport.new{}
      fm.arm("core.so", 0, 1) -- (the C session's own allocation)
      local ok, resp = pcall(t.send, t, req)
      fm.disarm()
      print("send", ok, type(resp) == "table" and resp.curl_code, type(resp) == "table" and resp.error_kind,
        type(resp) == "table" and resp.unsent)
      local lane_req = { method = "DELETE", url = URL, headers = { "X-Auth-Token: " .. TOKEN }, timeout = 3,
        connect_timeout = 3 }
      local t2 = transport.new{}
      local send, its = t2:lane(lane_req)
      fm.arm("core.so", 0, 1)
      print("lane", pcall(send, its, nil, "/v2.0/" .. PROJECT .. "/bandwidths/]] .. id .. [[", 204, nil))
      fm.disarm()
      print("again", t:send(req).status)
    ]])
    assert.equal(0, code, out)
    assert.matches("send\ttrue\t27\tother\ttrue\n", out, 1, true)
    assert.matches("lane\ttrue\tfalse\tnil\t0\n", out, 1, true)
    assert.matches("again\t204\n", out, 1, true)
  end)
end)

-- A process at its limit of file descriptors (ulimit -n, an nginx worker's
-- worker_rlimit_nofile): a delete fails as libcurl saw it (a connection, a resolver thread or a
-- CA file it could not open), not sent, and says why; with descriptors back, it goes.
describe("file descriptors running out #once", function()
  local fx = fixture.emulator()
  local emu

  setup(function() emu = fx.start() end)
  teardown(fx.stop)
  before_each(fx.reset)

  it("a delete that could not open a connection says so, and goes once one can be opened", function()
    local id = emu:create_bandwidth{ size = 5 }
    local out, code = run(emu, PRELUDE .. [[
      local c = client()
      local held = {}
      while true do
        local f = io.open("/dev/null", "r")
        if not f then break end
        held[#held + 1] = f
      end
      local ok, err = pcall(c.delete_bandwidth, c, "]] .. id .. [[")
      print(ok, describe(err), tostring(err))
      for _, f in ipairs(held) do f:close() end
      print("again", (pcall(c.delete_bandwidth, c, "]] .. id .. [[")))
    ]], "", "ulimit -n 64;")
    assert.equal(0, code, out)
    assert.matches("^false\teip transport/connect unsent=true\t", out)
    assert.matches("no file descriptor free", out, 1, true)
    assert.matches("again\ttrue", out)
  end)
end)

