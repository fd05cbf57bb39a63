-- OpenResty: a batch, or a delete's wait, running when its worker begins to exit (`nginx -s
-- reload` or `-s quit`).
--
-- nginx lets a worker that has been told to exit finish what it is doing, and a batch in an
-- ngx.timer went on sending every id it had left, for as long as that took (an old worker kept
-- alive, running the code the reload replaced), or until worker_shutdown_timeout killed it
-- mid-request, its results lost. A batch now hears the exit as a cancel's "stop": what is in
-- flight finishes and is reported, the ids not sent are `not_sent` with `stopped = "exiting"`,
-- a wait after the deletes reads no more (a single delete's wait neither: an `interrupted`
-- error, `deleted = true`), and the worker exits.
--
-- The app is a private nginx whose timer runs one batch (or one delete) against the emulator:
-- QUIT is sent to it once the emulator has received a few of its requests. The timer writes the
-- outcome to a file of the spec's.
local cjson = require "cjson"
local socket = require "socket"
local nginx = require "spec.support.nginx"
local emulator = require "spec.support.emulator"
local launcher = require "spec.support.openresty.launcher"

local APP = launcher.head(1) .. [[
    lua_package_path "@REPO@/lua/?.lua;@REPO@/lua/?/init.lua;;";
    lua_package_cpath "@REPO@/build/luajit/?.so;;";
    init_worker_by_lua_block {
        require("eip.emulator.server.watchdog").start(@OWNER_PID@, "@PREFIX@")
        local cjson = require "cjson"
        local opts = cjson.decode([=[@OPTS@]=])
        -- (when: "timer", at once; "exit_worker", begun in exit_worker_by_lua; "premature", in a
        -- timer nginx runs early at the exit)
        local when = opts.when or "timer"
        opts.when = nil
        local function work()
            local eip = require "eip"
            local client = eip.new{ endpoint = "@API@", project_id = "@PROJECT@", token = "@TOKEN@", timeout = 5 }
            local ids = cjson.decode([=[@IDS@]=])
            local single = opts.single -- (one delete_bandwidth of the first id, with the other options;
            opts.single = nil         -- "drain": drain_and_delete_bandwidth)
            local ok, results, summary
            if single then
                local call = single == "drain" and client.drain_and_delete_bandwidth or client.delete_bandwidth
                local done, res = pcall(call, client, ids[1], opts)
                ok, results, summary = true, { res }, {} -- (an error, of a wait, is its entry)
                if not done and type(res) ~= "table" then ok, results = false, res end
            else
                ok, results, summary = pcall(client.delete_bandwidths, client, ids, opts)
            end
            local out = { ok = ok, exiting = ngx.worker.exiting() }
            if ok then
                out.summary, out.results = summary, {}
                for i, r in ipairs(results) do
                    out.results[i] = { ok = r.ok, kind = r.kind, stopped = r.stopped, deleted = r.deleted,
                        waited = r.waited, still_readable = r.still_readable, bandwidth_id = r.bandwidth_id,
                        message = r.message }
                end
            else
                out.error = tostring(results)
            end
            local f = assert(io.open("@OUT@", "w"))
            f:write(cjson.encode(out))
            f:close()
        end
        package.loaded.exitwork = { when = when, work = work }
        if when == "timer" then
            ngx.timer.at(0, work)
        elseif when == "premature" then
            ngx.timer.at(3600, function(premature) if premature then work() end end)
        end
    }
    exit_worker_by_lua_block {
        local w = package.loaded.exitwork
        if w and w.when == "exit_worker" then w.work() end
    }
    server { listen 127.0.0.1:@PORT@; location / { return 204; } }
}
]]

local function read_file(path)
  local f = io.open(path)
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return text
end

-- Polls until pred() or `seconds` passed; pred's last value.
local function wait_for(pred, seconds)
  local deadline = socket.gettime() + seconds
  local v = pred()
  while not v and socket.gettime() < deadline do
    socket.sleep(0.02)
    v = pred()
  end
  return v
end

describe("OpenResty: batches and waits when the worker begins to exit #openresty", function()
  local emu, app, out

  setup(function()
    assert(nginx.file_exists(launcher.LUAJIT_CORE), launcher.LUAJIT_CORE .. " is missing: run `make luajit`")
    emu = emulator.start()
  end)

  teardown(function()
    if app then app:stop() end
    if emu then emu:stop() end
    if out then os.remove(out) end
  end)

  before_each(function()
    emu:reset()
    out = os.tmpname()
    os.remove(out)
  end)

  after_each(function()
    if app then app:stop() end
    app = nil
  end)

  -- The app's batch over `ids` with `opts`; QUIT once `ready()` says so; the outcome the timer
  -- wrote, and whether nginx exited within `seconds` of the QUIT.
  local function run(ids, opts, ready, seconds)
    app = nginx.start{ name = "exitapp", label = "exit spec app", config = function(fields)
      fields.REPO, fields.API, fields.PROJECT, fields.TOKEN = launcher.REPO, emu.url, emu.project_id, emu.token
      fields.IDS, fields.OPTS, fields.OUT = cjson.encode(ids), cjson.encode(opts), out
      return nginx.render(APP, fields)
    end }
    assert(wait_for(ready, 20), "the batch never got going")
    assert(os.execute("kill -QUIT " .. app.pid))
    local exited = wait_for(function() return not app:alive() end, seconds)
    local text = wait_for(function() return read_file(out) end, 1)
    return text and cjson.decode(text), exited
  end

  local function reads()
    local n = 0
    for _, r in ipairs(emu:requests()) do
      if r.method == "GET" then n = n + 1 end
    end
    return n
  end

  local function deletes()
    local got = {}
    for _, r in ipairs(emu:requests()) do
      if r.method == "DELETE" then got[#got + 1] = r.uri:match("([^/]+)$") end
    end
    return got
  end

  it("sends no more: what was in flight is reported, the rest not_sent (\"exiting\"), the worker exits",
    function()
    local ids = emu:create_bandwidths(30)
    emu:inject{ method = "DELETE", action = "slow", delay = 0.2, times = -1 }
    local o, exited = run(ids, { concurrency = 2 }, function() return #deletes() >= 4 end, 10)
    assert.is_truthy(o, "the timer wrote no outcome")
    assert.is_true(o.ok, o.error)
    assert.is_true(exited, "nginx was still running 10 s after QUIT")
    assert.is_true(o.exiting, "the batch ended before the worker was told to exit")
    local s = o.summary
    assert.equal("exiting", s.stopped)
    assert.equal(30, s.deleted + s.not_sent + s.failed, cjson.encode(s))
    assert.is_true(s.not_sent >= 20, "the batch went on: " .. cjson.encode(s))
    -- Every id the API received is reported deleted; every other one not_sent, stopped "exiting".
    local received = {}
    for _, id in ipairs(deletes()) do received[id] = (received[id] or 0) + 1 end
    for i, r in ipairs(o.results) do
      if received[ids[i]] then
        assert.same({ true, true }, { r.ok, r.deleted }, "entry " .. i)
        assert.equal(1, received[ids[i]], "sent once: " .. ids[i])
      else
        assert.same({ false, "not_sent", "exiting" }, { r.ok, r.kind, r.stopped }, "entry " .. i)
      end
    end
    assert.equal(s.deleted, #deletes())
  end)

  it("ends a wait after the deletes: no read after the exit, the worker exits long before the wait would",
    function()
    local ids = emu:create_bandwidths(3)
    emu:set_knobs{ deleted_visible_for = 60 }
    local o, exited = run(ids, { concurrency = 3, wait = 60 }, function() return reads() >= 1 end, 10)
    assert.is_truthy(o, "the timer wrote no outcome")
    assert.is_true(o.ok, o.error)
    assert.is_true(exited, "nginx was still running 10 s after QUIT: the wait went on")
    assert.same({ 3, 0 }, { o.summary.deleted, o.summary.not_sent })
    assert.is_nil(o.summary.stopped) -- (every id was sent before the exit)
    local still = 0
    for _, r in ipairs(o.results) do
      assert.is_true(r.deleted)
      if r.still_readable then still = still + 1 end
    end
    assert.is_true(still <= 1, "ids waited for after the exit: " .. cjson.encode(o.results))
    local n = reads()
    socket.sleep(0.5)
    assert.equal(n, reads(), "reads after nginx exited")
  end)

  it("ends a single delete's wait: an interrupted error, deleted, no read after the exit", function()
    local id = emu:create_bandwidth{ size = 1 }
    emu:set_knobs{ deleted_visible_for = 60 }
    local o, exited = run({ id }, { single = true, wait = 60 }, function() return reads() >= 1 end, 10)
    assert.is_truthy(o, "the timer wrote no outcome")
    assert.is_true(o.ok, o.error)
    assert.is_true(exited, "nginx was still running 10 s after QUIT: the wait went on")
    local r = o.results[1]
    assert.same({ "interrupted", true }, { r.kind, r.deleted }, r.message)
    assert.is_number(r.waited)
    local n = reads()
    socket.sleep(0.5)
    assert.equal(n, reads(), "reads after nginx exited")
  end)

  -- Work begun while the worker exits is the caller's deliberate last work (a flush of pending
  -- deletes in exit_worker_by_lua, or in a timer nginx runs early at the exit): it goes on. (The
  -- exit's watch once stopped it before its first request: every id not_sent, "exiting".)
  it("lets a batch begun while the worker exits send every id (exit_worker_by_lua, a premature timer)", function()
    for _, when in ipairs{ "exit_worker", "premature" } do
      emu:reset()
      os.remove(out)
      local ids = emu:create_bandwidths(4)
      local o, exited = run(ids, { when = when, concurrency = 2 }, function()
        local sock = socket.tcp()
        sock:settimeout(1)
        local ok = sock:connect("127.0.0.1", app.port) and sock:send("GET / HTTP/1.0\r\n\r\n")
          and sock:receive("*l")
        sock:close()
        return ok and ok:find(" 204 ") ~= nil
      end, 10)
      assert.is_truthy(o, when .. ": no outcome written")
      assert.is_true(o.ok, o.error)
      assert.is_true(exited, when)
      assert.is_true(o.exiting, when .. ": begun while exiting")
      assert.same({ 4, 0 }, { o.summary.deleted, o.summary.not_sent }, when)
      assert.is_nil(o.summary.stopped, when)
      assert.equal(4, #deletes(), when)
      app:stop()
      app = nil
    end
  end)

  -- A reload while the deletes were still in flight: the wait after them began once the worker
  -- was exiting, and read on to its end (30 s of reads from the old worker), taken for work begun
  -- during the exit. The exit's watch starts with the call.
  it("reads nothing after deletes that were in flight at the exit (a batch's wait, a single call's, a drain's)",
    function()
    for _, single in ipairs{ false, true, "drain" } do
      emu:reset()
      os.remove(out)
      local ids = emu:create_bandwidths(single and 1 or 4)
      emu:set_knobs{ deleted_visible_for = 60 }
      emu:inject{ method = "DELETE", action = "slow", delay = 0.5, times = -1 }
      local what = single == "drain" and "a drain's wait" or single and "a single call's wait" or "a batch's wait"
      local opts = single == "drain" and { single = "drain", wait = 30, charge_mode = "bandwidth", size = 5 }
        or single and { single = true, wait = 30 } or { concurrency = 2, wait = 30 }
      local o, exited = run(ids, opts, function()
        return #deletes() >= 1
      end, 10)
      assert.is_truthy(o, what .. ": no outcome written")
      assert.is_true(o.ok, o.error)
      assert.is_true(exited, what .. ": nginx was still running 10 s after QUIT: the wait went on")
      -- (a drain reads the bandwidth once before its delete: its plan)
      assert.equal(single == "drain" and 1 or 0, reads(), what .. ": reads after the exit")
      if single then
        assert.same({ "interrupted", true }, { o.results[1].kind, o.results[1].deleted }, what)
      else
        assert.equal("exiting", o.summary.stopped, what)
        for i, r in ipairs(o.results) do
          assert.is_nil(r.still_readable, what .. ": entry " .. i)
        end
      end
      app:stop()
      app = nil
    end
  end)
end)
