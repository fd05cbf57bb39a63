-- client:delete_bandwidths against the EIP emulator: concurrency over a few reused
-- connections, input order, per-entry results and summary, missing_ok, on_result, per-id
-- retries that do not stall the batch, authentication, and argument checking.
local eip = require "eip"
local fixture = require "spec.support.fixture"
local core = require "eip.core"

describe("delete_bandwidths", function()
  local fx = fixture.emulator()
  local emu, slept

  setup(function() emu = fx.start() end)
  teardown(fx.stop)
  before_each(function()
    fx.reset()
    slept = {}
  end)

  local function new(extra)
    local opts = { backoff_base = 0.01, sleep = function(s) slept[#slept + 1] = s end }
    for k, v in pairs(extra or {}) do opts[k] = v end
    return fx.client(opts)
  end

  local function create(n, fields) return emu:create_bandwidths(n, fields) end

  local function path_of(id) return emu:delete_path(id) end

  local function usage(f, ...)
    local ok, err = pcall(f, ...)
    assert.is_false(ok, "expected a usage error")
    assert.is_true(eip.is_error(err), tostring(err))
    assert.equal("usage", err.kind)
    return err
  end

  it("deletes 100 ids at concurrency 8 over at most 8 connections, results in input order", function()
    local ids = create(100)
    emu:reset_counters()
    local c = new()
    local results, summary = c:delete_bandwidths(ids, { concurrency = 8 })
    c:close()
    assert.equal(100, #results)
    for i, res in ipairs(results) do
      assert.is_true(res.ok)
      assert.is_true(res.deleted)
      assert.equal(204, res.status)
      assert.equal("No Content", res.reason)
      assert.equal(ids[i], res.bandwidth_id)
      assert.equal(1, res.attempts)
      assert.matches("^%x+$", res.request_id)
      assert.is_number(res.elapsed)
    end
    assert.same({ deleted = 100, missing = 0, failed = 0, total = 100 },
      { deleted = summary.deleted, missing = summary.missing, failed = summary.failed, total = summary.total })
    assert.is_true(summary.elapsed > 0)
    local stats = emu:stats()
    assert.equal(100, stats.requests)
    assert.is_true(stats.connections >= 1 and stats.connections <= 8, "connections: " .. stats.connections)
    assert.equal(0, #emu:bandwidths())
  end)

  it("keeps its connections across batches (one multi handle per client)", function()
    -- Answers slow enough that four deletes are always in flight together: the first batch then
    -- opens all four connections (instant answers could let it do with fewer, whatever the
    -- machine's load), and the second must open none.
    emu:inject{ method = "DELETE", action = "slow", delay = 0.05, times = -1 }
    local c = new()
    c:delete_bandwidths(create(12), { concurrency = 4 })
    local after_first = emu:stats().connections
    c:delete_bandwidths(create(12), { concurrency = 4 })
    c:close()
    assert.equal(4, after_first)
    assert.equal(after_first, emu:stats().connections)
  end)

  -- A batch whose coroutine yielded in on_result and was then dropped (or closed) kept the
  -- client's multi taken for ever: every later batch took a multi of its own, new connections
  -- each time. (Yielding across the batch's pcall needs Lua 5.2+ or LuaJIT.)
  it("gives the client's multi back when a batch is abandoned in a coroutine", function()
    if _VERSION == "Lua 5.1" and not rawget(_G, "jit") then return end
    emu:inject{ method = "DELETE", action = "slow", delay = 0.05, times = -1 }
    for _, drop in ipairs{ "collect", "close" } do
      local close = rawget(coroutine, "close") -- (Lua 5.4)
      if drop == "close" and not close then break end
      local c = new()
      local ids = create(12)
      local co = coroutine.create(function()
        c:delete_bandwidths(ids, { concurrency = 4, on_result = function() coroutine.yield() end })
      end)
      assert.is_true(coroutine.resume(co))
      assert.equal("suspended", coroutine.status(co))
      if drop == "close" then close(co) end
      co = nil -- luacheck: ignore 311
      collectgarbage()
      collectgarbage()
      c:delete_bandwidths(create(4), { concurrency = 4 })
      local after_first = emu:stats().connections
      for _ = 1, 2 do
        local _, summary = c:delete_bandwidths(create(4), { concurrency = 4 })
        assert.equal(4, summary.deleted)
      end
      assert.equal(after_first, emu:stats().connections, drop .. ": later batches reuse the connections")
      c:close()
    end
  end)

  -- A sleep of a scheduler's (copas and the like) that yields, the batch run in a coroutine. On
  -- Lua 5.1, which cannot yield through the batch's own pcall, a retry's backoff raised "attempt
  -- to yield across" out of the batch, its results lost (the deletes done); a wait's read
  -- retried got that raw string as its wait_error. Such a sleep is replaced there, as one that
  -- raises is; elsewhere it yields.
  it("a sleep that yields to a scheduler: on Lua 5.1 the library's own instead, no raw error", function()
    local logged = {}
    local c = new{ sleep = function() coroutine.yield("sleeping") end,
      log = function(line) logged[#logged + 1] = line end }
    local function scheduled(f)
      local co = coroutine.create(f)
      local function step(ok, ...)
        assert(ok, tostring((...)))
        if coroutine.status(co) == "dead" then return ... end
        return step(coroutine.resume(co))
      end
      return step(coroutine.resume(co))
    end
    emu:inject{ method = "DELETE", status = 503, times = 1 }
    local results, summary = scheduled(function() return c:delete_bandwidths(create(2), { concurrency = 1 }) end)
    assert.same({ 2, 0 }, { summary.deleted, summary.failed })
    assert.equal(2, results[1].attempts)
    emu:inject{ method = "GET", status = 503, times = 1 }
    results = scheduled(function() return c:delete_bandwidths(create(1), { wait = 5 }) end)
    assert.is_true(results[1].deleted)
    assert.is_nil(results[1].wait_error)
    assert.is_number(results[1].waited)
    c:close()
    local replaced = 0
    for _, line in ipairs(logged) do
      if line:find("sleep option raised", 1, true) then replaced = replaced + 1 end
    end
    -- (the wait's read, alone, always slept before its retry; the batch's retry may have waited
    -- for the other id's answer instead)
    if _VERSION == "Lua 5.1" and not rawget(_G, "jit") then
      assert.is_true(replaced >= 1, "the sleep replaced on Lua 5.1")
    else
      assert.equal(0, replaced)
    end
  end)

  -- An on_result that blocks (the eip command writing to a terminal held by Ctrl-S, a pipe whose
  -- reader paused) longer than the timeout: the answers that arrived meanwhile waited in their
  -- sockets, and requests started just before were not even sent; once the batch went on, they
  -- were timed out (their retries met 404, lost answers: FAILED?, one DELETE more each). The
  -- same for the low-speed window, judged over the time nobody read.
  it("an on_result that blocks past the timeout loses none of the answers that arrived meanwhile #once", function()
    for _, limits in ipairs{ { timeout = 1.2, low_speed_time = 0, block = 2 },
        { timeout = 10, low_speed_time = 1, block = 2 } } do
      fx.reset()
      emu:inject{ method = "DELETE", action = "slow", delay = 0.1, times = -1 }
      local ids = create(30)
      emu:reset_counters()
      local c = new{ timeout = limits.timeout, low_speed_time = limits.low_speed_time, low_speed_limit = 1000 }
      local n = 0
      local results, summary = c:delete_bandwidths(ids, { concurrency = 8, on_result = function()
        n = n + 1
        if n == 10 then core.sleep(limits.block) end
      end })
      c:close()
      for i, res in ipairs(results) do
        assert.same({ true, 1 }, { res.deleted, res.attempts }, ids[i] .. ": " .. tostring(res.message))
      end
      assert.same({ 30, 0 }, { summary.deleted, summary.failed })
      assert.equal(30, emu:stats().requests, "no DELETE sent twice")
    end
    -- A server that does not answer still times out on time, and the time spent away moves no
    -- deadline: a signed request's signing place lasts its timeout and a second (a transfer
    -- outliving it let a batch put eight signed requests in flight), and the client's deadline
    -- is the whole call's.
    fx.reset()
    emu:inject{ method = "DELETE", action = "slow", delay = 4, times = -1 }
    local c = new{ timeout = 30, deadline = 1, max_attempts = 1 }
    local asked = 0
    local results = c:delete_bandwidths(create(2), { concurrency = 2, cancel = function()
      asked = asked + 1
      if asked == 3 then core.sleep(0.6) end
    end })
    c:close()
    for _, res in ipairs(results) do
      assert.same({ "transport", "timeout" }, { res.kind, res.reason })
      assert.is_true(res.elapsed < 1.3, res.elapsed .. " s: ended at the deadline")
    end
  end)

  -- On a new connection a start only begins the connect: a caller away past the timeout then
  -- had the request sent when it came back, and timed out at once (the server acting on it, its
  -- answer lost; a signed one outliving its signing place, a fifth in flight).
  it("a request whose timeout passed before it went out is not sent late #once", function()
    local id = create(1)[1]
    emu:reset_counters()
    local m = core.multi{ user_agent = "lua-eip-spec" }
    m:limit(1)
    m:start{ method = "DELETE", url = emu.url .. "/v2.0/" .. emu.project_id .. "/bandwidths/" .. id,
      headers = { "X-Auth-Token: " .. emu.token }, timeout = 0.5, connect_timeout = 0.5 }
    core.sleep(0.8)
    local _, resp = m:next(5)
    m:close()
    assert.equal(0, emu:stats().requests, "nothing sent")
    assert.equal(28, resp.curl_code)
    assert.matches("before the request was sent", resp.curl_error, 1, true)
    assert.is_true(resp.unsent)
    assert.is_true(resp.caller_away, "timed out for the time its caller was away")
    assert.is_table(emu:get_bandwidth(id))
    -- A transfer libcurl had already ended (a refused connection) keeps its own outcome: it was
    -- taken for one unsent past its deadline, a timeout that could have acted.
    m = core.multi{ user_agent = "lua-eip-spec" }
    m:start{ method = "DELETE", url = "http://127.0.0.1:" .. require("spec.support.host").closed_port() .. "/x",
      headers = {}, timeout = 0.5, connect_timeout = 0.5 }
    core.sleep(0.8)
    _, resp = m:next(5)
    m:close()
    assert.equal(7, resp.curl_code, resp.curl_error)
    assert.is_nil(resp.caller_away)
  end)

  -- A TLS handshake that never ends (a listener that takes the connection and says nothing): the
  -- request never goes out. Watched all along, its timeout is its own; its caller away past it
  -- (before the handshake could even begin), it timed out for that absence alone.
  it("says caller_away only of an unsent timeout its caller's absence caused #once", function()
    local server = assert(require("socket").bind("127.0.0.1", 0))
    local _, port = server:getsockname()
    local url = "https://127.0.0.1:" .. port .. "/x"
    for _, away in ipairs{ false, true } do
      local m = core.multi{ user_agent = "lua-eip-spec" }
      m:start{ method = "DELETE", url = url, headers = {}, timeout = 0.4, connect_timeout = 0.4 }
      if away then core.sleep(0.7) end
      local slot, resp = m:next(5)
      m:close()
      assert.equal(1, slot)
      assert.same({ 28, true }, { resp.curl_code, resp.unsent }, resp.curl_error)
      assert.equal(away or nil, resp.caller_away, "away: " .. tostring(away))
    end
    server:close()
  end)

  -- A wall clock (ngx.now, os.time) that NTP steps back while a retry waits: the retry is due
  -- after its backoff all the same. It waited for the clock to catch up (20 s here, an hour
  -- there), a sleep of the backoff at a time.
  it("sends a retry after its backoff though the caller's clock stepped back meanwhile", function()
    local ids = create(2)
    -- (a backoff of several of the cancel's pieces: the step comes in the first)
    emu:inject{ method = "DELETE", path = path_of(ids[1]), status = 503, headers = { ["Retry-After"] = "1" },
      body = { code = "VPC.0001", message = "x" } }
    local off = 0
    local c = new{ clock = function() return 1.7e9 + core.monotime() + off end,
      sleep = function(s) off = -20; core.sleep(s) end }
    local t0 = core.monotime()
    local _, summary = c:delete_bandwidths(ids, { concurrency = 1, cancel = function()
      if core.monotime() - t0 > 15 then return "abort" end
    end })
    c:close()
    assert.same({ 2, nil }, { summary.deleted, summary.stopped })
    assert.is_true(core.monotime() - t0 < 5, "took " .. (core.monotime() - t0) .. " s")
  end)

  -- The same for a slot of the rate the batch took and waits for: the third id's slot, taken
  -- while the second was in flight, was waited for by the caller's clock alone, and a step back
  -- of 1000 s there held the batch for 1000 s (the sleep recorded here does not sleep).
  it("waits for a slot of its rate no longer though the caller's clock stepped back meanwhile", function()
    local ids = create(3)
    local off, n = 0, 0
    local c = new{ clock = function() return 1.7e9 + core.monotime() + off end }
    local _, summary = c:delete_bandwidths(ids, { rate = 1, concurrency = 2, on_result = function()
      n = n + 1
      if n == 2 then off = -1000 end
    end })
    c:close()
    assert.equal(3, summary.deleted)
    for _, s in ipairs(slept) do assert.is_true(s < 5, "slept " .. s .. " s for a slot of 1 request/s") end
  end)

  -- A batch's wait is one time shared by its ids: once the first still-readable id has spent
  -- it, the others read no more. Each got a first read of its own (60 ms and a GET apiece),
  -- and 40 ids took 2.8 s of a 0.5 s wait.
  it("sends no read after the batch's one time for its wait is spent", function()
    local ids = create(20)
    emu:set_knobs{ deleted_visible_for = 30 }
    emu:inject{ method = "GET", action = "slow", delay = 0.2, times = -1 }
    emu:reset_counters()
    local c = new{ sleep = core.sleep, max_attempts = 1 }
    local t0 = core.monotime()
    local results, summary = c:delete_bandwidths(ids, { concurrency = 8, wait = 0.5 })
    local took = core.monotime() - t0
    c:close()
    assert.equal(20, summary.deleted)
    assert.is_true(took < 1.5, "took " .. took .. " s")
    assert.is_true(fixture.count_requests(emu, "GET") <= 3, fixture.count_requests(emu, "GET") .. " reads")
    assert.is_true(results[1].still_readable or results[1].wait_error ~= nil)
  end)

  -- Short absences, many of them (a cancel that takes a few milliseconds, asked every 0.25 s) add
  -- up to more than a handshake's margin, but no absence made it time out: a connection that
  -- never comes times out as it would anyway, once, and is no restart.
  -- Restarted "with the time its call has left": an id put back to wait for the batch's rate had
  -- its clock started again (a reset meant for keys fetched just before), and went out after
  -- its deadline, its elapsed without the first 0.9 s.
  it("restarts a request its caller was away for within its deadline, a rate's wait included", function()
    local sends = 0
    local transport = { name = "stub", close = function() end }
    function transport.send()
      sends = sends + 1
      if sends == 1 then
        local stop = core.monotime() + 0.9
        while core.monotime() < stop do end
        return { status = 0, curl_code = 28, unsent = true, caller_away = true, elapsed = 0.9,
          curl_error = "Connection timed out" }
      end
      return { status = 204, body = "", request_id = "req" .. sends, elapsed = 0.01, new_connections = 0 }
    end
    local function sleep(s)
      local e = core.monotime() + s
      while core.monotime() < e do end
    end
    local c = eip.new{ endpoint = "https://vpc.example.com", project_id = "p1", token = "tok", transport = transport,
      deadline = 1, max_attempts = 1, sleep = sleep }
    local results = c:delete_bandwidths({ "11111111-2222-3333-4444-555555555555" }, { rate = 1, concurrency = 1,
      adaptive = false })
    c:close()
    local r = results[1]
    assert.same({ 1, "transport", true }, { sends, r.kind, r.not_sent }, tostring(r))
    assert.matches("deadline (1 s)", r.message, 1, true)
  end)

  -- The C multi is set up as the caller's libcurl transport is, not from the client's own
  -- options: a transport verifying against a private CA made the batch verify against the
  -- system store (or not at all, with the client's insecure), where every single call refused.
  it("verifies TLS as the caller's libcurl transport does, whatever the client's own settings", function()
    local tls = require "spec.support.tls"
    local pki = tls.make_pki()
    local front = tls.start(emu, pki)
    local ok, err = pcall(function()
      local transport = require("eip.transport").new{ ca_file = pki.ca }
      local function client(port, insecure)
        return eip.new{ endpoint = "https://127.0.0.1:" .. port, project_id = emu.project_id, token = emu.token,
          transport = transport, insecure = insecure, max_attempts = 1, metadata_url = false }
      end
      local ids = create(2)
      -- An untrusted certificate: refused by a single call and by the batch alike.
      local c = client(front.ports.untrusted, true)
      local single_ok, single = pcall(c.delete_bandwidth, c, ids[1])
      local results = c:delete_bandwidths({ ids[2] })
      assert.same({ false, "tls" }, { single_ok, single.reason })
      assert.same({ false, "tls" }, { results[1].ok, results[1].reason }, tostring(results[1]))
      assert.is_table(emu:get_bandwidth(ids[2]), "the batch deleted through an untrusted certificate")
      -- The transport's CA: trusted by the batch too (not the system store, which lacks it).
      c = client(front.ports.trusted, false)
      results = c:delete_bandwidths(ids)
      assert.same({ true, true }, { results[1].ok, results[2].ok }, tostring(results[1]))
    end)
    front:stop()
    pki:remove()
    assert(ok, err)
  end)

  -- A caller watching every request of a libcurl transport it wraps (its send replaced, the
  -- rest the transport's: name "curl" too) was bypassed by a batch, which sent through the C
  -- multi itself; single calls leave their lane for it. It now gets the batch's requests too.
  it("sends through a caller's send that wraps a libcurl transport", function()
    local inner = require("eip.transport").new{}
    local seen = 0
    local wrapper = setmetatable({ send = function(_, req) seen = seen + 1; return inner:send(req) end },
      { __index = inner })
    local c = new{ transport = wrapper }
    local ids = create(3)
    local results, summary = c:delete_bandwidths(ids)
    assert.same({ 3, true }, { summary.deleted, results[1].ok })
    assert.equal(3, seen, "every DELETE went through the caller's send")
    c:delete_bandwidth(create(1)[1])
    assert.equal(4, seen, "and a single call's")
    c:close()
  end)

  it("says caller_away of no timeout that short absences only added up to", function()
    local server = assert(require("socket").bind("127.0.0.1", 0))
    local _, port = server:getsockname()
    local outcomes = {}
    local c = eip.new{ endpoint = "https://127.0.0.1:" .. port, project_id = "p", token = "t0ken-1234",
      timeout = 1, max_attempts = 1, metadata_url = false,
      on_response = function(info) outcomes[#outcomes + 1] = info.outcome end }
    local t0 = core.monotime()
    local results = c:delete_bandwidths({ "00000000-0000-4000-8000-000000000001" }, { cancel = function()
      local busy = core.monotime() + 0.02
      while core.monotime() < busy do end
    end })
    local took = core.monotime() - t0
    c:close()
    server:close()
    assert.same({ "transport", "timeout", 1 }, { results[1].kind, results[1].reason, results[1].attempts })
    assert.same({ "timeout" }, outcomes)
    assert.is_true(took < 2.5, "took " .. took .. " s: restarted")
  end)

  -- An abort takes the answers that arrived first, driving the transfers: one still waiting for
  -- its new connection went out then, after the abort, and deleted its bandwidth.
  it("an abort lets no request whose connection was still being made go out", function()
    local ids = create(3)
    -- (the second id's answer closes its connection: the third needs a new one)
    emu:inject{ method = "DELETE", path = path_of(ids[2]), action = "raw",
      raw = "HTTP/1.1 204 No Content\r\nConnection: close\r\nContent-Length: 0\r\n\r\n" }
    emu:reset_counters()
    local abort = false
    local c = new{ timeout = 5, max_attempts = 1, on_request = function()
      local busy = core.monotime() + 0.002
      while core.monotime() < busy do end
    end }
    -- What had reached the server when cancel said abort (the client waits in cancel: what it
    -- sent before has arrived 0.3 s later, and it sends nothing meanwhile).
    local at_abort
    local results, summary = c:delete_bandwidths(ids, { concurrency = 2,
      on_result = function(i) if i == 2 then abort = true end end,
      cancel = function()
        if not abort then return nil end
        if not at_abort then
          core.sleep(0.3)
          at_abort = emu:stats().requests
        end
        return "abort"
      end })
    c:close()
    assert.equal("aborted", summary.stopped)
    assert.same({ 204, 204 }, { results[1].status, results[2].status })
    assert.equal(at_abort, emu:stats().requests, "a delete went out after the abort")
    if at_abort == 2 then
      -- (the common case: the third was still being connected when the abort came)
      assert.same({ "interrupted", true, true }, { results[3].kind, results[3].cancelled, results[3].not_sent },
        tostring(results[3]))
      assert.is_false(eip.could_have_acted(results[3]))
      assert.is_table(emu:get_bandwidth(ids[3]))
    else
      -- (on a loaded machine it may have gone out before: then it is reported as it went)
      assert.equal(3, at_abort)
      assert.is_true(results[3].status == 204 or eip.could_have_acted(results[3]), tostring(results[3]))
    end
  end)

  -- A stop used to let a request still waiting for its new connection go out after it (only
  -- "abort" held it back): the user said stop, and a bandwidth was deleted after that.
  for _, how in ipairs{ "cancel", "on_result" } do
    it("a stop (" .. how .. ") lets no request whose connection was still being made go out", function()
      local ids = create(3)
      emu:inject{ method = "DELETE", path = path_of(ids[2]), action = "raw",
        raw = "HTTP/1.1 204 No Content\r\nConnection: close\r\nContent-Length: 0\r\n\r\n" }
      emu:reset_counters()
      local stop, at_stop, responses = false, nil, {}
      local c = new{ timeout = 5, max_attempts = 1, on_request = function()
        local busy = core.monotime() + 0.002
        while core.monotime() < busy do end
      end, on_response = function(info) responses[#responses + 1] = info.outcome end }
      -- (the client waits at the stop: what it sent before has arrived 0.3 s later)
      local function stopping()
        if not at_stop then
          core.sleep(0.3)
          at_stop = emu:stats().requests
        end
      end
      local results, summary = c:delete_bandwidths(ids, { concurrency = 2,
        on_result = function(i)
          if i == 2 then
            stop = true
            if how == "on_result" then stopping(); return eip.STOP end
          end
        end,
        cancel = function()
          if not stop or how ~= "cancel" then return nil end
          stopping()
          return "stop"
        end })
      c:close()
      assert.equal("cancelled", summary.stopped)
      assert.same({ 204, 204 }, { results[1].status, results[2].status })
      -- A short moment for a request sent late to arrive: none may.
      core.sleep(0.2)
      assert.equal(at_stop, emu:stats().requests, "a delete went out after the stop")
      if at_stop == 2 then
        -- (the common case: the third was still being connected when the stop came)
        assert.same({ "not_sent", true, "cancelled" }, { results[3].kind, results[3].not_sent, results[3].stopped },
          tostring(results[3]))
        assert.equal(0, results[3].attempts)
        assert.is_false(eip.could_have_acted(results[3]))
        assert.is_table(emu:get_bandwidth(ids[3]))
        assert.equal(1, summary.not_sent, "summary")
        -- (on_response heard of it as not sent, if its on_request had come)
        for k = 3, #responses do assert.equal("not_sent", responses[k]) end
      else
        -- (on a loaded machine it may have gone out before: then it is reported as it went)
        assert.equal(3, at_stop)
        assert.is_true(results[3].status == 204 or eip.could_have_acted(results[3]), tostring(results[3]))
      end
    end)
  end

  -- A request that needs a new connection is only begun by its start: its caller away past the
  -- timeout just after (a batch's on_result or cancel blocked: a terminal held by Ctrl-S) had it
  -- time out never sent, the id failed (an attempt counted, a timeout in the metrics). It goes
  -- again as if it had not been started; a call whose deadline passed meanwhile ends not sent.
  it("starts again a request that timed out unsent while the caller was away #once", function()
    local real_multi = core.multi
    -- The client's multi, whose first `away` starts are followed by the caller's absence.
    local function multi_away(away)
      return function(cfg)
        local m = real_multi(cfg)
        local w = {}
        for _, name in ipairs{ "limit", "next", "pending", "cancel", "close" } do
          w[name] = function(_, ...) return m[name](m, ...) end
        end
        function w.start(_, req)
          local slot, why = m:start(req)
          if slot and away > 0 then
            away = away - 1
            core.sleep(0.7)
          end
          return slot, why
        end
        return w
      end
    end
    local ok, err = pcall(function()
      for _, auth in ipairs{ "token", "aksk" } do
        fx.reset()
        local ids = create(3)
        emu:reset_counters()
        local outcomes = {}
        local opts = { timeout = 0.4, max_attempts = 1,
          on_response = function(info) outcomes[#outcomes + 1] = info.outcome end }
        if auth == "aksk" then opts.token, opts.ak, opts.sk = fixture.NONE, emu.ak, emu.sk end
        core.multi = multi_away(2)
        local c = new(opts)
        local results, summary = c:delete_bandwidths(ids, { concurrency = 2 })
        c:close()
        core.multi = real_multi
        for i, res in ipairs(results) do
          assert.same({ true, 1 }, { res.deleted, res.attempts }, auth .. " " .. i .. ": " .. tostring(res.message))
        end
        assert.equal(3, summary.deleted, auth)
        assert.equal(3, emu:stats().requests, auth .. ": each id sent once")
        assert.same({ "not_sent", "not_sent", "ok", "ok", "ok" }, outcomes, auth)
      end
      -- The call's deadline passed while the caller was away: not sent, said so.
      fx.reset()
      local ids = create(1)
      emu:reset_counters()
      core.multi = multi_away(1)
      local c = new{ timeout = 0.4, deadline = 0.6, max_attempts = 1 }
      local results = c:delete_bandwidths(ids)
      c:close()
      core.multi = real_multi
      local e = results[1]
      assert.same({ false, "transport", "timeout", true }, { e.ok, e.kind, e.reason, e.not_sent }, tostring(e))
      assert.equal(0, emu:stats().requests, "nothing sent")
      assert.is_false(eip.could_have_acted(e))
    end)
    core.multi = real_multi
    assert(ok, err)
  end)

  it("gives the right entry for missing, invalid, 409, 503-then-204 and plain ids, and the summary", function()
    local plain = create(2)
    local busy = emu:create_bandwidth{ size = 1, publicip_ids = { "eip-1" } }
    local flaky = emu:create_bandwidth{ size = 1 }
    local missing = "3fa1e2b4-1111-2222-3333-444455556666"
    emu:inject{ method = "DELETE", path = path_of(flaky), status = 503, headers = { ["Retry-After"] = "0" } }
    emu:reset_counters()
    local ids = { plain[1], missing, "../x", busy, 42, flaky, "", plain[2] }
    local c = new()
    local results, summary = c:delete_bandwidths(ids, { concurrency = 3 })
    c:close()
    assert.equal(#ids, #results)
    assert.equal(204, results[1].status)
    assert.is_true(results[1].ok)
    assert.equal(404, results[2].status)
    assert.equal("VPC.0306", results[2].code)
    assert.is_false(results[2].ok)
    assert.is_true(eip.is_error(results[2]))
    for _, i in ipairs{ 3, 5, 7 } do
      assert.is_true(eip.is_error(results[i]))
      assert.equal("usage", results[i].kind)
      assert.equal("bandwidth_id", results[i].argument)
      assert.is_false(results[i].ok)
      assert.equal(0, results[i].attempts)
    end
    assert.equal(409, results[4].status)
    assert.equal(1, results[4].attempts)
    assert.is_false(results[4].ok)
    assert.equal(204, results[6].status)
    assert.equal(2, results[6].attempts)
    assert.equal(204, results[8].status)
    assert.equal(3, summary.deleted)
    assert.equal(0, summary.missing)
    assert.equal(5, summary.failed)
    assert.equal(8, summary.total)
    assert.equal(6, emu:stats().requests) -- 5 valid ids, one of them twice; nothing for invalid ids
  end)

  it("treats a 404 as a result with missing_ok (option of the call, or of the client)", function()
    local ids = { emu:create_bandwidth{ size = 1 }, "3fa1e2b4-1111-2222-3333-444455556666" }
    local c = new()
    local results, summary = c:delete_bandwidths(ids, { missing_ok = true })
    assert.is_true(results[1].deleted)
    assert.is_true(results[2].ok)
    assert.is_false(results[2].deleted)
    assert.equal(404, results[2].status)
    assert.equal("VPC.0306", results[2].code)
    assert.equal(ids[2], results[2].bandwidth_id)
    assert.same({ 1, 1, 0, 2 }, { summary.deleted, summary.missing, summary.failed, summary.total })
    c:close()
    local c2 = new{ missing_ok = true }
    local _, s2 = c2:delete_bandwidths({ ids[1] })
    local r3 = c2:delete_bandwidths({ ids[1] }, { missing_ok = false })
    c2:close()
    assert.same({ 0, 1, 0 }, { s2.deleted, s2.missing, s2.failed })
    assert.is_false(r3[1].ok)
  end)

  it("calls on_result once per id, as it finishes, with the entry of the results", function()
    local ids = create(20)
    ids[5] = "bad id"
    local seen, count = {}, 0
    local c = new()
    local results = c:delete_bandwidths(ids, { concurrency = 4, on_result = function(i, id, entry)
      count = count + 1
      assert.is_nil(seen[i], "called twice for " .. i)
      seen[i] = { id = id, entry = entry }
    end })
    c:close()
    assert.equal(20, count)
    for i = 1, 20 do
      assert.equal(ids[i], seen[i].id)
      assert.equal(results[i], seen[i].entry)
    end
  end)

  it("retries per id, within max_attempts, without retrying the others", function()
    local ids = create(4)
    emu:inject{ method = "DELETE", path = path_of(ids[2]), status = 503, times = 2 }
    emu:inject{ method = "DELETE", path = path_of(ids[3]), status = 502, times = -1 }
    emu:reset_counters()
    local c = new()
    local results, summary = c:delete_bandwidths(ids, { concurrency = 2 })
    c:close()
    assert.equal(1, results[1].attempts)
    assert.equal(3, results[2].attempts)
    assert.equal(204, results[2].status)
    assert.equal(502, results[3].status)
    assert.equal(3, results[3].attempts)
    assert.is_true(results[3].retryable)
    assert.equal(1, results[4].attempts)
    assert.same({ 3, 1 }, { summary.deleted, summary.failed })
    assert.equal(1 + 3 + 3 + 1, emu:stats().requests)
  end)

  it("does not stall the batch while one id waits for its Retry-After", function()
    -- A Retry-After of 3 s: the other ids, a few milliseconds of work, have seconds to finish
    -- before the retry, and a batch that waited for it would finish them 3 s late.
    local ids = create(6)
    emu:inject{ method = "DELETE", path = path_of(ids[1]), status = 503, headers = { ["Retry-After"] = "3" } }
    local order, t0 = {}, core.monotime()
    local finished_at = {}
    local c = new{ sleep = core.sleep } -- real waits: the spec is about time
    local results = c:delete_bandwidths(ids, { concurrency = 2, on_result = function(i)
      order[#order + 1] = i
      finished_at[i] = core.monotime() - t0
    end })
    c:close()
    assert.equal(204, results[1].status)
    assert.equal(2, results[1].attempts)
    assert.equal(1, order[#order], "the retried id finishes last")
    for i = 2, 6 do
      assert.is_true(finished_at[i] < 2.5, "id " .. i .. " waited for id 1: " .. finished_at[i])
    end
    assert.is_true(finished_at[1] >= 2.9, "Retry-After honoured: " .. finished_at[1])
  end)

  it("sends a retry when it is due even while other requests are in flight", function()
    -- id 2 answers at once, id 1's retry is due after 2 s, id 3 answers after 5 s (well within
    -- its timeout): seconds between each of them, whatever the machine's load.
    local ids = create(3)
    emu:inject{ method = "DELETE", path = path_of(ids[1]), status = 503, headers = { ["Retry-After"] = "2" } }
    emu:inject{ method = "DELETE", path = path_of(ids[3]), status = 204, delay = 5 }
    local order, finished_at, t0 = {}, {}, core.monotime()
    local c = new{ timeout = 15 }
    local results = c:delete_bandwidths(ids, { concurrency = 3, on_result = function(i)
      order[#order + 1] = i
      finished_at[i] = core.monotime() - t0
    end })
    c:close()
    assert.same({ 2, 1, 3 }, order)
    assert.equal(2, results[1].attempts)
    assert.is_true(finished_at[1] >= 1.9 and finished_at[1] < 4.5, "retried at " .. finished_at[1])
    assert.equal(0, #slept, "waited in the multi handle, not in sleep")
  end)

  it("uses the client's sleep when only backoffs are left to wait for", function()
    local ids = create(1)
    emu:inject{ method = "DELETE", path = path_of(ids[1]), status = 503, headers = { ["Retry-After"] = "8" } }
    local c = new()
    local t0 = core.monotime()
    local results = c:delete_bandwidths(ids)
    c:close()
    assert.equal(204, results[1].status)
    assert.equal(1, #slept)
    assert.is_true(slept[1] > 7 and slept[1] <= 8, "slept " .. slept[1])
    assert.is_true(core.monotime() - t0 < 4, "the recording sleep returns at once, and so does the batch")
  end)

  it("asks cancel during a backoff too: the wait goes in pieces, and a stop is heard at once", function()
    -- The sleep records (no real wait): what is slept is the Retry-After, 8 s, less the time id 2
    -- took meanwhile.
    local ids = create(2)
    emu:inject{ method = "DELETE", path = path_of(ids[1]), status = 503, headers = { ["Retry-After"] = "8" } }
    local c = new()
    local asked, during = 0, 0
    local results = c:delete_bandwidths(ids, { concurrency = 1, cancel = function()
      asked = asked + 1
      if #slept > 0 then during = during + 1 end
    end })
    assert.equal(204, results[1].status)
    local total = 0
    for _, s in ipairs(slept) do
      assert.is_true(s <= require("eip.batch").CANCEL_INTERVAL, "a piece of " .. s .. " s")
      total = total + s
    end
    assert.is_true(total > 6 and total <= 8, "slept " .. total .. " s in all")
    assert.is_true(during >= #slept, "asked after each piece")
    -- Told to stop during the backoff, the batch ends there: the waiting retry ends with its 503.
    emu:inject{ method = "DELETE", path = path_of(ids[2]), status = 503, headers = { ["Retry-After"] = "2" } }
    slept = {}
    results = c:delete_bandwidths({ ids[2] }, { cancel = function()
      if #slept > 0 then return "stop" end
    end })
    c:close()
    assert.equal(1, #slept)
    assert.same({ 503, "cancelled" }, { results[1].status, results[1].stopped })
  end)

  -- A stopped batch starts nothing more, and sends nothing again: a DELETE in flight whose
  -- kept-alive connection then died unanswered was sent again by the transport (libcurl's resend,
  -- or the C core's) after the stop, and the bandwidth deleted. It ends as the reset it was (it
  -- may have been carried out). The stop: cancel's "stop", or on_result's eip.STOP.
  it("a stop heard while a delete is in flight keeps the transport from sending it again #once", function()
    for _, how in ipairs{ "cancel", "on_result" } do
      fx.reset()
      -- The first id goes alone; then the second (on the first's connection, which dies 1 s
      -- later without an answer) and the third, whose answer comes at 0.3 s and stops the batch.
      local ids = create(3)
      emu:inject{ method = "DELETE", path = path_of(ids[2]), action = "drop", delay = 1 }
      emu:inject{ method = "DELETE", path = path_of(ids[3]), action = "slow", delay = 0.3 }
      emu:reset_counters()
      local c = new{ max_attempts = 1 }
      local third_done = false
      local opts = { concurrency = 2, adaptive = false, on_result = function(_, id)
        if id ~= ids[3] then return end
        third_done = true
        if how == "on_result" then return eip.STOP end
      end }
      if how == "cancel" then opts.cancel = function() if third_done then return "stop" end end end
      local results, summary = c:delete_bandwidths(ids, opts)
      c:close()
      assert.equal(3, emu:stats().requests, how .. ": the dropped DELETE was not sent again")
      assert.is_table(emu:get_bandwidth(ids[2]), how)
      assert.equal("cancelled", summary.stopped, how)
      assert.same({ 204, 204 }, { results[1].status, results[3].status }, how)
      local err = results[2]
      assert.same({ false, "transport", "reset" }, { err.ok, err.kind, err.reason }, how .. ": " .. tostring(err))
      assert.is_nil(err.not_sent, how)
      assert.is_nil(err.unsent, how)
      assert.is_true(eip.could_have_acted(err), how)
      assert.matches("not sent again: the caller stopped sending", err.curl_error, 1, true)
    end
  end)

  -- A 503 that is no throttling: its Retry-After past retry_after_cap ends that id at once, and,
  -- since RFC 9110 reads it as how long the service expects to be unavailable, nothing more is
  -- sent (the others once went on into the outage, each failed, each a delete that may have
  -- acted). It is no throttling: not counted as such, and nothing waited for.
  it("ends an id whose 503 asks for more than retry_after_cap at once, and sends no other", function()
    local ids = create(3)
    emu:inject{ method = "DELETE", path = path_of(ids[1]), status = 503, headers = { ["Retry-After"] = "120" } }
    local c = new()
    local results, summary = c:delete_bandwidths(ids, { concurrency = 1 })
    c:close()
    assert.same({ 503, 1 }, { results[1].status, results[1].attempts })
    assert.same({ "not_sent", "not_sent" }, { results[2].kind, results[3].kind })
    assert.same({ 0, 1, 2, 0 }, { summary.deleted, summary.failed, summary.not_sent, summary.throttled })
    assert.equal("unavailable", summary.stopped)
    assert.equal(0, #slept)
  end)

  it("respects the deadline per id: a Retry-After past it ends that id", function()
    -- A deadline of 5 s (id 2's delete has seconds to succeed in), a Retry-After of 20 s (below
    -- retry_after_cap: only the deadline rules it out).
    local ids = create(2)
    emu:inject{ method = "DELETE", path = path_of(ids[1]), status = 503, headers = { ["Retry-After"] = "20" } }
    local c = new{ deadline = 5 }
    local results, summary = c:delete_bandwidths(ids)
    c:close()
    assert.equal(503, results[1].status)
    assert.equal(1, results[1].attempts)
    assert.equal(204, results[2].status)
    assert.same({ 1, 1 }, { summary.deleted, summary.failed })
    assert.equal(0, #slept)
  end)

  -- While every answer is a timeout the batch sends one request at a time (it probes): the
  -- retries of the others wait for that slot, and end when their deadline comes, not when the
  -- slot frees (reported 2.0 s after their first send with a deadline of 1.6).
  it("ends a retry waiting for a free slot at its deadline", function()
    local ids = create(3)
    emu:inject{ method = "DELETE", action = "slow", delay = 10, times = -1 }
    local c = fx.client{ timeout = 1, deadline = 1.6, max_attempts = 3, backoff_base = 0.01 }
    local ended = {}
    local results = c:delete_bandwidths(ids, { concurrency = 4, on_result = function(_, _, r)
      ended[#ended + 1] = r.elapsed
    end })
    c:close()
    for i, r in ipairs(results) do
      assert.same({ "transport", "timeout" }, { r.kind, r.reason }, "id " .. i)
      assert.is_true(r.elapsed <= 1.6 + 0.1, "id " .. i .. " ended after " .. r.elapsed .. " s")
    end
    assert.equal(3, #ended)
  end)

  -- (The deadlines are monotonic whatever the client's clock: with os.time as the clock the
  -- wait for that deadline read 0, and the batch spun on a core until the slot freed.)
  it("waits for a slot without spinning when the client's clock is not the monotonic one", function()
    local ids = create(2)
    emu:inject{ method = "DELETE", path = path_of(ids[1]), status = 503, body = { code = "VPC.0001", message = "x" } }
    emu:inject{ method = "DELETE", path = path_of(ids[2]), action = "slow", delay = 2 }
    local c = fx.client{ deadline = 20, backoff_base = 0.05, backoff_cap = 0.05, clock = os.time }
    local cpu = os.clock()
    local _, summary = c:delete_bandwidths(ids, { concurrency = 1, adaptive = false })
    cpu = os.clock() - cpu
    c:close()
    assert.equal(2, summary.deleted)
    assert.is_true(cpu < 1, "the batch used " .. cpu .. " s of CPU waiting 2 s")
  end)

  it("reports transport failures per id", function()
    -- The first id: it is sent alone on a fresh connection (libcurl itself resends a request
    -- whose reused connection turns out closed).
    local ids = create(3)
    emu:inject{ method = "DELETE", path = path_of(ids[1]), action = "drop" }
    local c = new{ max_attempts = 1 }
    local results = c:delete_bandwidths(ids, { concurrency = 3 })
    c:close()
    assert.equal("transport", results[1].kind)
    assert.is_false(results[1].ok)
    assert.equal(204, results[2].status)
    assert.equal(204, results[3].status)
  end)

  it("signs every request with AK/SK", function()
    local ids = create(10)
    local c = eip.new{ endpoint = emu.url, project_id = emu.project_id, ak = emu.ak, sk = emu.sk }
    local _, summary = c:delete_bandwidths(ids, { concurrency = 16 })
    c:close()
    assert.equal(10, summary.deleted)
    assert.equal(0, emu:stats().auth_failures)
    -- (at most 4 signed requests in flight, whatever was asked: the summary says what was allowed)
    assert.same({ 4, 4 }, { summary.concurrency, summary.concurrency_min })
  end)

  it("fetches one new IAM token when the batch meets 401s, and repeats those ids", function()
    local c = eip.new{ endpoint = emu.url, auth = emu:iam_auth() }
    c:delete_bandwidths(create(1))
    emu:expire_tokens()
    local results, summary = c:delete_bandwidths(create(6), { concurrency = 3 })
    c:close()
    assert.equal(6, summary.deleted)
    assert.equal(2, emu:stats().tokens_issued)
    for _, res in ipairs(results) do assert.is_true(res.attempts <= 2) end
  end)

  -- The first id's delete was not sent either (it needed the token): IAM's 401 is its error,
  -- with not_sent and no attempt.
  it("stops after a refused IAM login: one token request, no id sent", function()
    local c = eip.new{ endpoint = emu.url, project_id = emu.project_id,
      auth = emu:iam_auth{ password = "definitely-wrong-password" } }
    local results, summary = c:delete_bandwidths({ "bw-1", "bw-2", "bw-3" })
    c:close()
    assert.same({ 0, 3, "auth" }, { summary.failed, summary.not_sent, summary.stopped })
    assert.same({ 401, "/v3/auth/tokens", true, 0 }, { results[1].status, results[1].path, results[1].not_sent,
      results[1].attempts })
    assert.is_true(eip.is_auth_failure(results[1]))
    for i = 2, 3 do
      local err = results[i]
      assert.is_true(eip.is_error(err))
      assert.equal("not_sent", err.kind)
      assert.is_true(err.not_sent)
      assert.is_false(err.ok)
      assert.equal(401, err.cause.status)
      assert.matches("not sent: stopped after an authentication failure", tostring(err))
    end
    assert.is_true(results[2] ~= results[3], "one error table per entry")
    assert.equal(1, emu:stats().requests)
  end)

  -- AK/SK with a region and no project id: the project is looked up first (GET /v3/projects,
  -- signed). When that fails, no delete goes out: every id is not sent, none failed.
  describe("when the project cannot be looked up", function()
    local function aksk_client(sk, extra)
      local env = { HUAWEICLOUD_SDK_AK = emu.ak, HUAWEICLOUD_SDK_SK = sk, HUAWEICLOUD_SDK_REGION = "cn-north-4",
        HUAWEICLOUD_SDK_IAM_ENDPOINT = emu.iam_url }
      local opts = { endpoint = emu.url, metadata_url = false }
      for k, v in pairs(extra or {}) do opts[k] = v end
      return require("eip.client").new(opts, function(name) return env[name] end)
    end

    local function all_not_sent(results, ids, reason, status)
      for i, err in ipairs(results) do
        assert.is_true(eip.is_error(err), "entry " .. i)
        assert.same({ "not_sent", true, false, reason, status, ids[i] },
          { err.kind, err.not_sent, err.ok, err.stopped, err.cause.status, err.bandwidth_id }, "entry " .. i)
        assert.equal("/v2.0/{project_id}/bandwidths/" .. ids[i], err.path)
      end
    end

    it("a refused key (401) leaves every id not sent, the batch stopped for authentication", function()
      local ids = create(5)
      ids[6] = ids[1]
      emu:reset_counters()
      local c = aksk_client("wrong-secret-key-0000000000000000000000")
      local results, summary = c:delete_bandwidths(ids, { concurrency = 8 })
      c:close()
      assert.same({ 0, 0, 6, 1, "auth" }, { summary.deleted, summary.failed, summary.not_sent, summary.repeated,
        summary.stopped })
      all_not_sent(results, ids, "auth", 401)
      assert.matches("not sent: stopped after an authentication failure", tostring(results[1]))
      assert.is_true(results[1] ~= results[6], "one error table per entry")
      assert.same({ 1, 1 }, { emu:stats().requests, emu:stats().auth_failures }, "the look-up alone")
      for _, id in ipairs(ids) do assert.is_not_nil(emu:get_bandwidth(id)) end
    end)

    it("IAM failing (503) leaves every id not sent too, the batch stopped for the project", function()
      local ids = create(3)
      emu:reset_counters()
      emu:inject{ method = "GET", path = "^/v3/projects", status = 503, times = -1 }
      local c = aksk_client(emu.sk, { max_attempts = 1 })
      local results, summary = c:delete_bandwidths(ids)
      c:close()
      assert.same({ 0, 0, 3, "project" }, { summary.deleted, summary.failed, summary.not_sent, summary.stopped })
      all_not_sent(results, ids, "project", 503)
      assert.matches("not sent: the project id could not be looked up", tostring(results[1]))
      assert.equal(1, emu:stats().requests)
    end)

    -- A sleep of a scheduler's (it yields), the batch run in a coroutine: on Lua 5.1 the look-up's
    -- retry raised "attempt to yield across" out of the batch, a raw error (its pcall was not the
    -- library's `held` one). The sleep is replaced there, as in the batch's own requests.
    it("retries the look-up with a sleep that yields to a scheduler, on Lua 5.1 too", function()
      local ids = create(2)
      emu:inject{ method = "GET", path = "^/v3/projects", status = 503, times = 1 }
      local c = aksk_client(emu.sk, { backoff_base = 0.01, sleep = function() coroutine.yield() end })
      local co = coroutine.create(function() return c:delete_bandwidths(ids) end)
      local ok, results, summary
      repeat ok, results, summary = coroutine.resume(co) until not ok or coroutine.status(co) == "dead"
      c:close()
      assert(ok, tostring(results))
      assert.same({ 2, 0, 0 }, { summary.deleted, summary.failed, summary.not_sent })
    end)

    -- An on_result that said STOP to an invalid id's entry (reported before anything is sent)
    -- stopped the deletes, but the project's look-up, a signed request to IAM, still went out.
    it("sends no look-up after an on_result stopped the batch at an invalid id's entry", function()
      local ids = create(2)
      ids[3] = ids[1]
      emu:reset_counters()
      local c = aksk_client(emu.sk)
      local results, summary = c:delete_bandwidths({ "bad id!", ids[1], ids[2], ids[3] },
        { on_result = function() return eip.STOP end })
      c:close()
      assert.same({ 0, 1, 3, 1, "cancelled" }, { summary.deleted, summary.failed, summary.not_sent, summary.repeated,
        summary.stopped })
      assert.equal("usage", results[1].kind)
      for i = 2, 4 do
        assert.same({ "not_sent", true, "cancelled" }, { results[i].kind, results[i].not_sent, results[i].stopped }, i)
      end
      assert.equal(0, emu:stats().requests)
    end)
  end)

  -- The batch's cancel is asked while the client logs in (an IAM token, the metadata service's
  -- keys, the project's look-up), and again before the request that needed the login goes out.
  -- It was not: the login ran to its end (or its timeout), and the delete went out after an
  -- abort, or every id was the login's timeout with the abort never recorded.
  describe("with a cancel, while the client logs in", function()
    local function token_requests() return fixture.count_requests(emu, "POST") end

    -- A cancel that answers `answer` once `after` seconds have passed.
    local function after(seconds, answer)
      local t0 = core.monotime()
      return function()
        if core.monotime() - t0 >= seconds then return answer end
      end
    end

    local function all_not_sent(results, summary, n, reason)
      assert.same({ 0, 0, n, reason }, { summary.deleted, summary.failed, summary.not_sent, summary.stopped })
      for i, err in ipairs(results) do
        assert.same({ "not_sent", reason }, { err.kind, err.stopped }, "entry " .. i .. ": " .. tostring(err))
      end
    end

    it("an abort ends the login at once, sends no delete, and leaves the client able to log in", function()
      local delay = 6
      -- (with the project given, the login is the first delete's; without, the project's look-up)
      for _, case in ipairs{ { "slow", emu.project_id }, { "slow" }, { "hang", emu.project_id }, { "hang" } } do
        fx.reset()
        local ids = create(6)
        emu:inject{ method = "POST", path = "^/v3/auth/tokens", action = case[1], delay = delay }
        local c = fx.client{ token = fixture.NONE, project_id = case[2] or fixture.NONE, auth = emu:iam_auth(),
          timeout = 3 }
        local t0 = core.monotime()
        local results, summary = c:delete_bandwidths(ids, { concurrency = 4, cancel = after(0.3, "abort") })
        local took = core.monotime() - t0
        local what = case[1] .. (case[2] and ", project given" or "")
        all_not_sent(results, summary, 6, "aborted")
        -- (a generous bound: the login alone takes its timeout, 3 s)
        assert.is_true(took < 2.5, what .. ": took " .. took .. " s")
        assert.same({ 1, 0 }, { token_requests(), fixture.count_requests(emu, "DELETE") }, what)
        -- Nothing held of the aborted login: the next batch logs in and deletes.
        local _, again = c:delete_bandwidths(ids, { concurrency = 4 })
        assert.same({ 6, 0 }, { again.deleted, again.failed }, what)
      end
    end)

    it("a stop lets the login finish and keeps its token, and sends nothing after it", function()
      local ids = create(4)
      emu:inject{ method = "POST", path = "^/v3/auth/tokens", action = "slow", delay = 1 }
      local c = fx.client{ token = fixture.NONE, auth = emu:iam_auth() }
      local results, summary = c:delete_bandwidths(ids, { concurrency = 4, cancel = after(0.2, "stop") })
      all_not_sent(results, summary, 4, "cancelled")
      assert.equal(0, fixture.count_requests(emu, "DELETE"))
      local _, again = c:delete_bandwidths(ids)
      assert.same({ 4, 0 }, { again.deleted, again.failed })
      assert.equal(1, token_requests(), "the token of the login that finished")
    end)

    it("asks again once the credentials came, whatever sends the requests", function()
      -- A transport of the caller's (one request at a time, through its send): the login it
      -- sends cannot be aborted, but no delete follows it.
      local ids = create(3)
      emu:inject{ method = "POST", path = "^/v3/auth/tokens", action = "slow", delay = 1 }
      local real = require("eip.transport").new{}
      local c = fx.client{ token = fixture.NONE, project_id = emu.project_id, auth = emu:iam_auth(),
        transport = { name = "recording", send = function(_, req) return real:send(req) end,
          close = function() real:close() end } }
      local results, summary = c:delete_bandwidths(ids, { cancel = after(0.2, "abort") })
      all_not_sent(results, summary, 3, "aborted")
      assert.same({ 1, 0 }, { token_requests(), fixture.count_requests(emu, "DELETE") })
    end)

    -- A login aborted after it went out may have been checked all the same (a wrong password
    -- counted): from the second in a row, the next logins are held, as after logins that timed
    -- out; a caller aborting each batch against a slow IAM does not get round the lockout's
    -- count. A login stopped after IAM answered (a 429) is no login without an answer.
    it("logins aborted in flight count towards the holds; one stopped after an answer does not", function()
      local ids = create(2)
      emu:inject{ method = "POST", path = "^/v3/auth/tokens", action = "hang", times = -1 }
      local c = fx.client{ token = fixture.NONE, project_id = emu.project_id, auth = emu:iam_auth(), timeout = 3 }
      for i = 1, 2 do
        local results, summary = c:delete_bandwidths(ids, { cancel = after(0.3, "abort") })
        all_not_sent(results, summary, 2, "aborted")
        assert.equal(i, token_requests())
      end
      local t0 = core.monotime()
      local results, summary = c:delete_bandwidths(ids, { cancel = after(0.3, "abort") })
      assert.same({ 0, 2 }, { summary.deleted, summary.not_sent })
      assert.equal(2, token_requests(), "a third login went out after two aborted in a row")
      assert.matches("the last 2 logins went out and got no answer", tostring(results[1]), 1, true)
      assert.is_true(core.monotime() - t0 < 2.5)
      assert.equal(0, fixture.count_requests(emu, "DELETE"))

      fx.reset()
      ids = create(2)
      emu:inject{ method = "POST", path = "^/v3/auth/tokens", status = 429, headers = { ["Retry-After"] = "2" },
        body = { error_msg = "busy", error_code = "APIGW.0308" } }
      c = fx.client{ token = fixture.NONE, project_id = emu.project_id, auth = emu:iam_auth(), timeout = 3,
        max_attempts = 3 }
      summary = select(2, c:delete_bandwidths(ids, { cancel = after(0.3, "stop") }))
      assert.same({ 0, "cancelled", 1 }, { summary.deleted, summary.stopped, token_requests() })
      emu:inject{ method = "POST", path = "^/v3/auth/tokens", action = "hang", times = -1 }
      summary = select(2, c:delete_bandwidths(ids, { cancel = after(0.3, "abort") }))
      assert.same({ "aborted", 2 }, { summary.stopped, token_requests() })
      -- (the 429 counted, this one would be the second in a row, and the next login held)
      summary = select(2, c:delete_bandwidths(ids, { cancel = after(0.3, "abort") }))
      assert.same({ "aborted", 3 }, { summary.stopped, token_requests() })
    end)

    -- A single call's cancel ends a login in flight too (it is no destructive request): a
    -- hanging IAM held the call to its timeout, its cancel never asked meanwhile.
    it("a single call's cancel ends a hanging login at once", function()
      local id = create(1)[1]
      emu:inject{ method = "POST", path = "^/v3/auth/tokens", action = "hang", times = -1 }
      local c = fx.client{ token = fixture.NONE, project_id = emu.project_id, auth = emu:iam_auth(), timeout = 10 }
      for _, call in ipairs{ function(cancel) return c:show_bandwidth(id, { cancel = cancel }) end,
        function(cancel) return c:list_bandwidths{ cancel = cancel } end } do
        local t0 = core.monotime()
        local ok, err = pcall(call, after(0.3, true))
        assert.is_false(ok)
        assert.equal("interrupted", err.kind, tostring(err))
        assert.is_true(core.monotime() - t0 < 5, "took " .. (core.monotime() - t0) .. " s")
      end
    end)

    it("an abort ends the fetch of the metadata service's keys too", function()
      local ids = create(3)
      emu:inject{ method = "PUT", path = "^/meta%-data/latest/api/token$", action = "slow", delay = 2.5 }
      local c = fx.client{ token = fixture.NONE, metadata_url = emu.metadata_url }
      local t0 = core.monotime()
      local results, summary = c:delete_bandwidths(ids, { cancel = after(0.3, "abort") })
      all_not_sent(results, summary, 3, "aborted")
      assert.is_true(core.monotime() - t0 < 2, "took " .. core.monotime() - t0 .. " s")
      assert.equal(0, fixture.count_requests(emu, "DELETE"))
      local _, again = c:delete_bandwidths(ids)
      assert.same({ 3, 0 }, { again.deleted, again.failed })
    end)

    it("a single call's cancel is asked again once the login came: nothing sent after it", function()
      local id = create(1)[1]
      emu:inject{ method = "POST", path = "^/v3/auth/tokens", action = "slow", delay = 1, times = 2 }
      -- (the project given: the login is the call's own; not given: the project's look-up)
      for _, project in ipairs{ emu.project_id, fixture.NONE } do
        local c = fx.client{ token = fixture.NONE, project_id = project, auth = emu:iam_auth() }
        local stop = after(0.2, true)
        for _, call in ipairs{ function() return c:show_bandwidth(id, { cancel = stop }) end,
            function() return c:list_bandwidths{ cancel = stop } end } do
          local ok, err = pcall(call)
          assert.is_false(ok)
          assert.same({ "interrupted", true, true }, { err.kind, err.cancelled, err.not_sent }, tostring(err))
        end
      end
      assert.equal(0, fixture.count_requests(emu, "GET"))
    end)
  end)

  it("does not stop as after a refused login when IAM throttles (429) its token requests", function()
    local c = eip.new{ endpoint = emu.url, project_id = emu.project_id, auth = emu:iam_auth(), max_attempts = 1 }
    emu:inject{ method = "POST", path = "^/v3/auth/tokens", status = 429, times = -1,
      body = { error_code = "APIGW.0308", error_msg = "The throttling threshold has been reached: "
        .. "policy user over ratelimit,limit:5,time:1 second" } }
    local results, summary = c:delete_bandwidths({ "bw-1", "bw-2", "bw-3" })
    c:close()
    assert.is_nil(summary.stopped)
    assert.same({ 0, 3 }, { summary.failed, summary.not_sent }) -- no token: no delete sent
    for i = 1, 3 do
      assert.equal("http", results[i].kind)
      assert.equal(429, results[i].status)
      assert.is_true(results[i].retryable)
      assert.same({ true, 0 }, { results[i].not_sent, results[i].attempts })
    end
    assert.is_true(results[1] ~= results[2], "one error table per entry")
  end)

  -- A batch run from another's on_result, on the same client, while that one has requests in
  -- flight: each reports every id of its own (on one shared multi handle the inner batch took
  -- the outer's answers, and the outer never reported those ids).
  it("runs a batch from another's on_result, each reporting every id of its own", function()
    local ids = create(8)
    emu:inject{ method = "DELETE", action = "slow", delay = 0.3, times = -1 }
    local c = new()
    local inner
    local results, summary = c:delete_bandwidths({ ids[1], ids[2], ids[3], ids[4], ids[5], ids[6] },
      { concurrency = 3, on_result = function(i)
        if i == 2 and not inner then -- the probe (1) went alone; 3 and 4 are in flight now
          local r, s = c:delete_bandwidths({ ids[7], ids[8] })
          inner = { results = r, summary = s }
        end
      end })
    c:close()
    for i = 1, 6 do assert.is_table(results[i], "outer result " .. i) end
    assert.same({ 6, 0 }, { summary.deleted, summary.failed })
    assert.same({ 2, 0 }, { inner.summary.deleted, inner.summary.failed })
    for _, id in ipairs(ids) do assert.is_nil(emu:get_bandwidth(id)) end
  end)

  it("re-raises an error of on_result after aborting the transfers; the client stays usable", function()
    local c = new()
    local ok, err = pcall(c.delete_bandwidths, c, create(10), { concurrency = 4, on_result = function(i)
      if i >= 1 then error({ mine = true }) end
    end })
    assert.is_false(ok)
    assert.same({ mine = true }, err)
    local _, summary = c:delete_bandwidths(create(5), { concurrency = 4 })
    assert.equal(5, summary.deleted)
    assert.equal(204, c:delete_bandwidth(emu:create_bandwidth{ size = 1 }).status)
    c:close()
  end)

  it("an on_result raising nil or false ends the batch with an error that could have acted", function()
    -- (raised as it was, nil would read as "nothing happened" to eip.could_have_acted, though a
    -- delete went out and acted)
    for _, value in ipairs{ "nil", "false" } do
      local c = new()
      local ids = create(3)
      local ok, err = pcall(c.delete_bandwidths, c, ids, { concurrency = 1, on_result = function()
        if value == "false" then error(false) end
        error(nil)
      end })
      assert.is_false(ok)
      assert.same({ "interrupted", true }, { err.kind, eip.could_have_acted(err) })
      assert.matches("on_result raised " .. value, tostring(err), 1, true)
      -- (the delete it was told of: "DELETE ? ->" named none)
      assert.matches("DELETE /v2.0/" .. emu.project_id .. "/bandwidths/" .. ids[1]:gsub("%p", "%%%0") .. " %->",
        tostring(err))
      assert.is_nil(emu:get_bandwidth(ids[1]))
      c:close()
    end
  end)

  it("runs through any other transport one request at a time", function()
    local ids = create(5)
    ids[3] = "3fa1e2b4-1111-2222-3333-444455556666"
    local real, sent = require("eip.transport").new{}, 0
    local c = new{ transport = { name = "recording", send = function(_, req) sent = sent + 1; return real:send(req) end,
      close = function() real:close() end } }
    local results, summary = c:delete_bandwidths(ids, { concurrency = 8, missing_ok = true })
    c:close()
    assert.equal(5, sent)
    assert.same({ 4, 1, 0, 5 }, { summary.deleted, summary.missing, summary.failed, summary.total })
    assert.equal(ids[5], results[5].bandwidth_id)
  end)

  describe("with wait", function()
    local function gets() return fixture.count_requests(emu, "GET") end

    -- Deleted bandwidths that stay readable: each wait runs out after one read (wait = 0.2: no
    -- pause leaves the 0.25 s a last read keeps before the end).
    it("waits for a repeated id once: its positions get the same outcome, counted once", function()
      emu:set_knobs{ deleted_visible_for = 30 }
      local ids = create(3)
      ids[4] = ids[1]
      emu:reset_counters()
      local c = fx.client()
      local results, summary = c:delete_bandwidths(ids, { concurrency = 4, wait = 0.2 })
      c:close()
      assert.same({ 4, 1 }, { summary.deleted, summary.repeated }, "deleted counts positions")
      assert.equal(3, summary.still_readable, "three bandwidths could still be read")
      assert.equal(3, gets(), "one read each")
      assert.same({ true, true }, { results[1].still_readable, results[4].still_readable })
      assert.equal(results[1].waited, results[4].waited)
    end)

    -- Inside nginx there is no Ctrl-C: the cancel option is how a caller ends a wait of up to
    -- 600 s. Asked before each read and during the pauses, a stop ends the waiting at once. It
    -- says stop from a little after the first read was answered: during the pause after it
    -- (0.5 s, asked every 0.25 s), however long the deletes before it took.
    it("asks cancel while it waits: a stop ends the waiting at once", function()
      emu:set_knobs{ deleted_visible_for = 30 }
      local ids = create(3)
      emu:reset_counters()
      local read_at
      local c = fx.client{ on_response = function(info)
        if info.method == "GET" then read_at = read_at or core.monotime() end
      end }
      local t0 = core.monotime()
      local results, summary = c:delete_bandwidths(ids, { wait = 10, cancel = function()
        if read_at and core.monotime() - read_at > 0.1 then return "stop" end
      end })
      local took = core.monotime() - t0
      c:close()
      assert.equal(3, summary.deleted)
      assert.is_true(took < 6, "the wait went on after the stop (wait = 10): " .. took .. " s")
      assert.equal(0, summary.still_readable)
      for i, res in ipairs(results) do
        assert.same({ true }, { res.deleted, res.waited, res.still_readable, res.wait_error }, "entry " .. i)
      end
      assert.equal(1, gets(), "the first read only")
    end)

    -- A stop after a repeated id's first position was waited for: its later position, after the
    -- stop, still gets that outcome (it had neither `waited` nor `still_readable`).
    it("gives a repeated id's later positions its outcome when a stop ends the waiting", function()
      local ids = create(2)
      ids[3] = ids[1]
      local gone
      local c = fx.client{ on_response = function(info)
        if info.method == "GET" and info.bandwidth_id == ids[1] and info.status == 404 then gone = true end
      end }
      local results = c:delete_bandwidths(ids, { wait = 5, cancel = function() return gone and "stop" or nil end })
      c:close()
      assert.is_number(results[1].waited)
      assert.is_nil(results[2].waited, "not waited for after the stop")
      assert.equal(results[1].waited, results[3].waited)
    end)
  end)

  it("returns empty results for an empty list, sending nothing", function()
    local c = new()
    local results, summary = c:delete_bandwidths({})
    c:close()
    assert.same({}, results)
    assert.same({ 0, 0, 0, 0 }, { summary.deleted, summary.missing, summary.failed, summary.total })
    assert.equal(0, emu:stats().requests)
  end)

  -- The client's deadline bounds each id's call from its first send: a batch of slow deletes
  -- with deadline = 1 ran for as long as its ids took one after another (a review's audit). The
  -- batch's own deadline bounds it: what was in flight ends by it, no id starts after it.
  describe("with a deadline of its own", function()
    it("starts no id after it, lets what is in flight end, and says so", function()
      local ids = create(24)
      emu:inject{ method = "DELETE", action = "slow", delay = 2, times = -1 }
      emu:reset_counters()
      local c = fx.client{ max_attempts = 1, timeout = 5 }
      local t0 = core.monotime()
      local results, summary = c:delete_bandwidths(ids, { concurrency = 8, deadline = 1 })
      local took = core.monotime() - t0
      c:close()
      assert.is_true(took < 3.5, "ended with the answer in flight at its deadline, no later: " .. took)
      assert.equal("deadline", summary.stopped)
      -- (the first goes alone, its answer after the deadline: not cut, and nothing else was sent)
      assert.same({ 1, 0, 23 }, { summary.deleted, summary.failed, summary.not_sent })
      assert.is_true(results[1].deleted)
      for i = 2, 24 do
        assert.same({ "not_sent", "deadline" }, { results[i].kind, results[i].stopped })
      end
      local deletes = 0
      for _, r in ipairs(emu:requests()) do if r.method == "DELETE" then deletes = deletes + 1 end end
      assert.equal(1, deletes)
    end)

    -- A login (or the metadata service's keys) that takes the batch past its deadline: no delete
    -- starts after it (one went out a second after the deadline: a review).
    it("starts no delete once a login took it past the deadline", function()
      local ids = create(3)
      emu:inject{ method = "POST", path = "^/v3/auth/tokens", action = "slow", delay = 2 }
      emu:reset_counters()
      local c = fx.client{ token = fixture.NONE, auth = emu:iam_auth(), timeout = 5 }
      local results, summary = c:delete_bandwidths(ids, { deadline = 1, concurrency = 1 })
      c:close()
      assert.same({ 0, 3, "deadline" }, { summary.deleted, summary.not_sent, summary.stopped })
      for i = 1, 3 do assert.equal("deadline", results[i].stopped) end
      for _, r in ipairs(emu:requests()) do assert.not_equal("DELETE", r.method) end
    end)

    it("bounds each id's retries and the wait after the deletes", function()
      local ids = create(2)
      emu:set_knobs{ deleted_visible_for = 30 }
      emu:inject{ method = "DELETE", path = ids[2]:gsub("%p", "%%%0") .. "$", status = 503,
        headers = { ["Retry-After"] = "5" },
        body = { code = "VPC.0302", message = "busy" }, times = -1 }
      local c = fx.client{ max_attempts = 3 }
      local t0 = core.monotime()
      local results, summary = c:delete_bandwidths(ids, { concurrency = 2, deadline = 1.5, wait = 30 })
      local took = core.monotime() - t0
      c:close()
      assert.is_true(took < 3, "the retry after 5 s and the 30 s wait cut at the deadline: " .. took)
      assert.is_true(results[1].deleted)
      -- (the wait began at the deadline, its last 50 ms: one read at most, or none, said so)
      local w = results[1]
      assert.is_true(w.still_readable == true or (w.wait_error ~= nil and w.wait_error.not_sent == true),
        tostring(w.wait_error))
      assert.same({ "http", 503, 1, "deadline" }, { results[2].kind, results[2].status, results[2].attempts,
        results[2].stopped })
      assert.equal("deadline", summary.stopped)
    end)
  end)

  it("raises usage errors for a non-list and for bad options, before sending anything", function()
    local c = new()
    for _, bad in ipairs{ "bw-1", 42, { a = "bw-1" }, { "bw-1", nil, "bw-3" }, { [0] = "bw-1" } } do
      assert.equal("ids", usage(c.delete_bandwidths, c, bad).argument)
    end
    assert.equal("ids", usage(c.delete_bandwidths, c).argument)
    for _, n in ipairs{ 0, 65, 1.5, -1, "8" } do
      assert.equal("concurrency", usage(c.delete_bandwidths, c, { "bw-1" }, { concurrency = n }).argument)
    end
    assert.equal("options", usage(c.delete_bandwidths, c, { "bw-1" }, { concurency = 8 }).argument)
    assert.equal("options", usage(c.delete_bandwidths, c, { "bw-1" }, "fast").argument)
    assert.equal("on_result", usage(c.delete_bandwidths, c, { "bw-1" }, { on_result = true }).argument)
    assert.equal("missing_ok", usage(c.delete_bandwidths, c, { "bw-1" }, { missing_ok = "yes" }).argument)
    for _, d in ipairs{ 0, -1, 0 / 0, 1 / 0, "5", 86401 } do
      assert.equal("deadline", usage(c.delete_bandwidths, c, { "bw-1" }, { deadline = d }).argument)
    end
    local results = c:delete_bandwidths({ fixture.absent_id(1) }, { concurrency = 64, missing_ok = true })
    assert.is_false(results[1].deleted)
    results = c:delete_bandwidths({ fixture.absent_id(1) }, { concurrency = 1.0, missing_ok = true })
    assert.is_false(results[1].deleted)
    c:close()
    assert.equal(2, emu:stats().requests)
  end)

  -- A proxy's elements (__index, __len, __pairs) were seen by Lua 5.2+ and not by Lua 5.1 and
  -- LuaJIT: the same batch deleted every id on one, and on the other sent nothing and reported
  -- success (total 0, failed 0); a proxy with __index alone did so on every version.
  it("refuses a list whose ids are behind a metatable, the same on every Lua version; a list class is fine", function()
    local c = new()
    local a, b = emu:create_bandwidth{ size = 1 }, emu:create_bandwidth{ size = 1 }
    local real = { a, b }
    local proxies = {
      setmetatable({}, { __index = real }),
      setmetatable({}, { __index = real, __len = function() return #real end,
        __pairs = function() return next, real, nil end }),
      setmetatable({ a }, { __index = function(_, i) return i == 2 and b or nil end }),
    }
    for i, proxy in ipairs(proxies) do
      local err = usage(c.delete_bandwidths, c, proxy)
      assert.equal("ids", err.argument, i)
      assert.matches("behind a metatable", err.message, 1, true)
    end
    local strict = setmetatable({ a }, { __index = function() error("no such key") end })
    assert.matches("cannot be read", usage(c.delete_bandwidths, c, strict).message, 1, true)
    assert.equal(0, emu:stats().requests)
    local List = { first = function(self) return self[1] end }
    List.__index = List
    local results, summary = c:delete_bandwidths(setmetatable({ a, b }, List))
    c:close()
    assert.same({ 2, 2 }, { summary.deleted, summary.total })
    assert.is_true(results[2].deleted)
  end)
end)
