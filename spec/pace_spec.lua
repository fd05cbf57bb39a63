-- Going as fast as the API allows and no faster: the client's token bucket (through a pluggable
-- clock and sleep: no timing thresholds), the batch's rate, the concurrency cut on a throttling
-- answer and its recovery, the batch-wide Retry-After, and the emulator's own throttling.
local cjson = require "cjson"
local eip = require "eip"
local pace = require "eip.pace"
local fixture = require "spec.support.fixture"
local raised = require("spec.support.assertions").raised
-- Cases whose coroutine must yield through pcall: not Lua 5.1 (the README says what it cannot do).
local it_yielding = require("spec.support.coroutines").yields_through_pcall() and it or function() end

-- A clock that only moves when the code sleeps: every wait shows in `slept`.
local function fake_time()
  local t = { now = 1000, slept = {} }
  t.clock = function() return t.now end
  t.sleep = function(s)
    t.slept[#t.slept + 1] = s
    t.now = t.now + s
  end
  t.total = function()
    local sum = 0
    for _, s in ipairs(t.slept) do sum = sum + s end
    return sum
  end
  return t
end

local function close_to(want, got, what)
  assert.is_true(math.abs(want - got) < 1e-6, (what or "") .. ": want " .. want .. ", got " .. got)
end

-- A lua_shared_dict's operations the bucket uses, as the real one does them (each atomic), on
-- `store`; `step`, when given, is called after each: another worker's turn.
local function dict_stand_in(step)
  local store = {}
  step = step or function() end
  local function done(...)
    step()
    return ...
  end
  return {
    get = function(_, k) return done(store[k]) end,
    incr = function(_, k, v, init)
      store[k] = (store[k] or init) + v
      return done(store[k])
    end,
    set = function(_, k, v)
      store[k] = v
      return done(true)
    end,
    safe_add = function(_, k, v)
      if store[k] ~= nil then return done(false, "exists") end
      store[k] = v
      return done(true)
    end,
    delete = function(_, k)
      store[k] = nil
      return done()
    end,
  }, store
end

describe("the token bucket", function()
  it("spaces requests 1/rate apart after a burst", function()
    local t = fake_time()
    local b = pace.new{ rate = 4, burst = 2, clock = t.clock }
    local waits = {}
    for i = 1, 5 do
      waits[i] = b:take()
      t.now = t.now + waits[i]
    end
    for i, want in ipairs{ 0, 0, 0.25, 0.25, 0.25 } do close_to(want, waits[i], "request " .. i) end
  end)

  it("does not save up more than a burst while idle", function()
    local t = fake_time()
    local b = pace.new{ rate = 10, clock = t.clock }
    b:take()
    t.now = t.now + 60
    assert.equal(0, b:take())
    close_to(0.1, b:take(), "the second of a burst of one")
    close_to(0.2, b:wait(), "the third, two slots on")
  end)

  -- Inside nginx the bucket is kept in a lua_shared_dict, whose incr fails when the dict is full
  -- ("no memory") or the key holds something else ("not a number": another user of the dict).
  -- A stand-in for the dict, and for the nginx of four workers it belongs to.
  it("goes on at this worker's share of the rate when the shared dict cannot hold the bucket", function()
    for _, why in ipairs{ "no memory", "not a number" } do
      local dict = {
        get = function() if why == "not a number" then return "someone else's" end end,
        incr = function() return nil, why end,
        set = function() return false, why end,
      }
      local saved = rawget(_G, "ngx")
      rawset(_G, "ngx", { shared = { eip_rate = dict }, worker = { count = function() return 4 end } })
      local ok, err = pcall(function()
        local t = fake_time()
        local b = pace.new{ rate = 10, dict = "eip_rate", clock = t.clock }
        local waits = {}
        for i = 1, 3 do
          waits[i] = b:take()
          t.now = t.now + waits[i]
        end
        -- four workers sharing 10 requests/s: 2.5 each, 0.4 s apart
        for i, want in ipairs{ 0, 0.4, 0.4 } do close_to(want, waits[i], why .. ": request " .. i) end
        close_to(0.4, b:wait(), why .. ": the next one")
        assert.equal(why, b.unshared)
      end)
      rawset(_G, "ngx", saved)
      assert(ok, err)
    end
  end)

  -- The shared state of a lua_shared_dict, through a stand-in that does what the real one does
  -- (`step`, when given, is called after each operation: another worker's turn).
  local function with_dict(fn, step)
    local dict, store = dict_stand_in(step)
    local saved = rawget(_G, "ngx")
    -- nginx's clock is the wall clock: the bucket must not use it.
    rawset(_G, "ngx", { shared = { eip_rate = dict }, worker = { count = function() return 2 end },
      now = function() return 1.7e9 end, update_time = function() end })
    local ok, err = pcall(fn, store)
    rawset(_G, "ngx", saved)
    assert(ok, err)
  end

  it("keeps a shared bucket on the machine's monotonic clock, not nginx's wall clock", function()
    with_dict(function()
      local b = pace.new{ rate = 10, dict = "eip_rate" }
      assert.equal(require("eip.core").monotime, b.clock)
    end)
  end)

  it("starts again from now when the shared state lies ahead of any queue (another clock's)", function()
    with_dict(function(store)
      local t = fake_time()
      local b = pace.new{ rate = 10, dict = "eip_rate", clock = t.clock }
      local queue = pace.QUEUE_MAX * 0.1
      -- Wall-clock microseconds left by an earlier version across a reload, and a state an hour
      -- ahead (a wall clock stepped back by an hour, or another user of the key).
      for _, ahead in ipairs{ 1.7e9 - t.now, 3600, queue + 1 } do
        store["eip:pace"] = math.floor((t.now + ahead) * 1e6)
        assert.equal(0, b:wait(), ahead .. " s ahead: wait")
        assert.equal(0, b:take(), ahead .. " s ahead: take")
        close_to(0.1, b:take(), ahead .. " s ahead: the next slot")
        close_to(0.2, b:wait(), ahead .. " s ahead: the one after")
      end
      -- A real queue is kept, however long: all but one of QUEUE_MAX requests waiting at once.
      store["eip:pace"] = nil
      local last
      for _ = 1, pace.QUEUE_MAX - 1 do last = b:take() end
      close_to(queue - 0.2, last, "the last of the queue")
      close_to(queue - 0.1, b:wait(), "after the queue")
    end)
  end)

  -- A burst lets the state run up to burst - 1 intervals ahead of the clock before anyone
  -- waits: with a burst over QUEUE_MAX, every burst's state was read as another clock's and
  -- reset, so a shared bucket at 100/s with burst = 10000 let 20,000 requests go at once.
  it("keeps a shared bucket's queue after a burst larger than QUEUE_MAX", function()
    with_dict(function()
      local t = fake_time()
      local burst = pace.QUEUE_MAX + 100
      local b = pace.new{ rate = 100, burst = burst, dict = "eip_rate", clock = t.clock }
      local at_once, last = 0, nil
      for _ = 1, burst + pace.QUEUE_MAX - 1 do -- (all but one of a queue of QUEUE_MAX)
        last = b:take()
        if last == 0 then at_once = at_once + 1 end
      end
      assert.equal(burst, at_once, "requests let go at once")
      close_to((pace.QUEUE_MAX - 1) * 0.01, last, "the last of the queue after them")
    end)
  end)

  -- The shared state counted whole microseconds: a rate's interval was rounded to one, 700,000
  -- requests a second (any rate allowed is, up to 1e6) went at 1,000,000, 43% over; 300,000 at
  -- 333,333. The interval is added as it is.
  it("keeps a shared bucket's rate however high: its interval is not rounded to a microsecond", function()
    with_dict(function()
      for _, rate in ipairs{ 7e5, 3e5, 1.5e5, 1e6 } do
        local t = fake_time()
        local b = pace.new{ rate = rate, dict = "eip_rate", key = "eip:pace:" .. rate, clock = t.clock }
        local wait
        for _ = 1, 1001 do wait = b:take() end
        assert.is_true(math.abs(wait - 1000 / rate) < 1e-6 * 1000 / rate,
          rate .. "/s: the 1001st waits " .. wait .. " s, not " .. 1000 / rate)
      end
    end)
  end)

  -- Workers that come back together to a shared state left idle each found it idle, and each set
  -- it to now: all went together, whatever the burst (three workers of a burst of one: three
  -- requests at once). Their dict operations interleaved in every order: round and round, and at
  -- random; the waits are never shorter than one bucket's for as many requests one after another.
  it("lets at most the burst go together when workers find the shared state idle at once", function()
    local ok, err = pcall(function()
      for _, burst in ipairs{ 1, 2 } do
        for _, workers in ipairs{ 3, 4 } do
          for schedule = 0, 40 do
            local t = fake_time()
            local running, pick
            if schedule == 0 then pick = function(n, last) return last % n + 1 end
            else
              math.randomseed(schedule)
              pick = function(n) return math.random(n) end
            end
            with_dict(function(store)
              store["eip:pace"] = math.floor((t.now - 60) * 1e6) -- idle for a minute
              local threads, waits = {}, {}
              for w = 1, workers do
                local b = pace.new{ rate = 10, burst = burst, dict = "eip_rate", clock = t.clock }
                threads[w] = coroutine.create(function()
                  local wait = b:take() -- (then counted: other workers take theirs meanwhile)
                  waits[#waits + 1] = wait
                end)
              end
              local last = 0
              while #threads > 0 do
                last = pick(#threads, last)
                running = threads[last]
                assert(coroutine.resume(running))
                if coroutine.status(running) == "dead" then
                  table.remove(threads, last)
                  last = last - 1
                end
              end
              table.sort(waits)
              for k, wait in ipairs(waits) do
                local serial = math.max(0, (k - burst) * 0.1)
                assert.is_true(wait > serial - 1e-9, string.format("burst %d, %d workers, schedule %d: request %d "
                  .. "waits %.3f s, not %.3f", burst, workers, schedule, k, wait, serial))
              end
            end, function()
              local _, main = coroutine.running()
              if running and not main then coroutine.yield() end
            end)
          end
        end
      end
    end)
    assert(ok, err)
  end)

  it("bounds a wait when the caller's clock went back: a wait is never over QUEUE_MAX slots", function()
    local t = fake_time()
    local b = pace.new{ rate = 10, clock = t.clock }
    b:take()
    t.now = t.now - 3600
    assert.equal(0, b:take())
    close_to(0.1, b:take(), "then 1/rate apart again")
  end)

  -- A wait() that saw the step back kept it to itself: the take after it (take_within, a call
  -- with a deadline) found the old state 62 s ahead, and every call failed unsent until the
  -- clock caught up.
  it("starts again from now when the caller's clock went back, also for a slot within a limit", function()
    local t = fake_time()
    local b = pace.new{ rate = 1, clock = t.clock }
    b:take()
    b:take()
    t.now = t.now - 60
    assert.equal(0, b:wait(), "wait")
    assert.equal(0, b:take_within(5), "the slot now")
    close_to(1, b:take_within(5), "then 1/rate apart again")
  end)

  -- A bucket of this process's own holds real reservations only: one more than QUEUE_MAX waiting
  -- at once (an nginx worker's many requests, each a call), or a queue that a raised rate puts
  -- beyond QUEUE_MAX of its new intervals, was reset, and the next request went at once beside
  -- those waiting.
  it("keeps a queue of its own however long, and across a raised rate", function()
    local t = fake_time()
    local b = pace.new{ rate = 1, clock = t.clock }
    for _ = 1, pace.QUEUE_MAX + 1 do b:take() end
    close_to(pace.QUEUE_MAX + 1, b:take(), "the request after QUEUE_MAX + 1 waiting")
    b = pace.new{ rate = 1, clock = t.clock }
    for _ = 1, 10 do b:take() end
    b:set_rate(1000)
    close_to(10, b:take(), "after 10 waiting at 1/s, the rate raised to 1000/s")
    close_to(10.001, b:take(), "then 1/1000 s apart")
  end)

  -- A slot deferred (Bucket:defer: a batch's own, its request held by the client's bucket) while
  -- a caller's clock stood ahead, which then stepped back: the defer did not keep the reading, so
  -- the next take saw no step and waited as long as the clock had been ahead.
  it("starts again from now after a clock that was ahead at a defer stepped back", function()
    local t = fake_time()
    local b = pace.new{ rate = 1, clock = t.clock }
    assert.equal(0, b:take())
    t.now = t.now + 3600
    b:defer(0.5)
    t.now = t.now - 3600 + 1
    close_to(0, b:take(), "the take after the step back")
    close_to(1, b:take(), "then 1/rate apart")
  end)

  it("reserves a slot within a limit only: a later one is not taken, and stays for the next", function()
    local t = fake_time()
    local b = pace.new{ rate = 1, clock = t.clock }
    assert.equal(0, b:take_within(0.5))
    close_to(1, b:take_within(1.5), "the next slot, 1 s on")
    local none, later = b:take_within(1.5)
    assert.is_nil(none)
    close_to(2, later, "the slot that was not taken")
    close_to(2, b:wait(), "nothing reserved")
    t.now = t.now + 1
    close_to(1, b:take_within(1.5), "a second later, the same slot is within the limit")
  end)
end)

describe("rates and throttling against the emulator", function()
  local fx = fixture.emulator()
  local emu

  setup(function() emu = fx.start() end)
  teardown(fx.stop)
  before_each(fx.reset)

  -- The gateway's throttling answer (429 APIGW.0308, Retry-After: 0) to the delete of id, once.
  local function throttle_once(id, message)
    emu:inject{ method = "DELETE", path = emu:delete_path(id), status = 429, headers = { ["Retry-After"] = "0" },
      body = { error_code = "APIGW.0308", error_msg = message } }
  end

  -- A client at `rate` on a clock that only moves when it sleeps.
  local function paced_client(rate)
    local t = fake_time()
    return fx.client{ rate = rate, clock = t.clock, sleep = t.sleep }
  end

  it("spaces a client's calls, retries included", function()
    local t = fake_time()
    local c = fx.client{ rate = 10, clock = t.clock, sleep = t.sleep }
    local ids = emu:create_bandwidths(4)
    emu:reset_counters()
    emu:inject{ method = "DELETE", status = 503, headers = { ["Retry-After"] = "0" } }
    assert.equal(2, c:delete_bandwidth(ids[1]).attempts) -- the 503, then the delete
    for i = 2, 4 do c:delete_bandwidth(ids[i]) end
    -- 5 requests at 10/s: 4 waits of 0.1 s (the retry's own backoff is 0: Retry-After: 0).
    close_to(0.4, t.total(), "paced")
    assert.equal(5, emu:stats().requests)
  end)

  it("spaces a batch at its own rate", function()
    local t = fake_time()
    local c = fx.client{ clock = t.clock, sleep = t.sleep }
    local ids = emu:create_bandwidths(20)
    local _, summary = c:delete_bandwidths(ids, { concurrency = 8, rate = 50 })
    assert.equal(20, summary.deleted)
    close_to(19 * 0.02, t.total(), "20 requests at 50/s")
    assert.equal(50, summary.rate)
  end)

  -- The reads of a batch's wait are the batch's requests too: after deletes at the batch's rate
  -- they went at once, one after the other (20 GETs within 2 ms after a batch at 5/s; a batch
  -- of 1000 ids, as fast as the API answered).
  it("spaces the reads of a batch's wait at the batch's rate", function()
    local t = fake_time()
    local c = fx.client{ clock = t.clock, sleep = t.sleep }
    local ids = emu:create_bandwidths(10)
    local results, summary = c:delete_bandwidths(ids, { concurrency = 8, rate = 50, wait = 10 })
    assert.equal(10, summary.deleted)
    for i = 1, 10 do assert.is_number(results[i].waited, "id " .. i) end
    assert.equal(10, fixture.count_requests(emu, "GET"))
    close_to(19 * 0.02, t.total(), "10 deletes and 10 reads at 50/s")
  end)

  it("cuts its concurrency and rate on a throttling answer, then raises the concurrency again", function()
    local ids = emu:create_bandwidths(60)
    emu:inject{ method = "DELETE", path = emu:delete_path(ids[2]), status = 429, headers = { ["Retry-After"] = "0" },
      body = { error_code = "APIGW.0308", error_msg = "The throttling threshold has been reached: policy user "
        .. "over ratelimit,limit:400,time:1 second" } }
    local c = fx.client()
    local _, summary = c:delete_bandwidths(ids, { concurrency = 8 })
    assert.same({ 60, 0, 1 }, { summary.deleted, summary.failed, summary.throttled })
    assert.equal(4, summary.concurrency_min, "halved")
    assert.equal(8, summary.concurrency, "raised back by one per clean round")
    close_to(380, summary.rate, "95% of the stated limit")
  end)

  it("never goes above the rate the caller set, and gives the client its rate back", function()
    local c = paced_client(20)
    local function throttled_batch(limit)
      local ids = emu:create_bandwidths(10)
      throttle_once(ids[2], "policy user over ratelimit,limit:" .. limit .. ",time:1 second")
      local _, summary = c:delete_bandwidths(ids, { concurrency = 4 })
      assert.same({ 10, 1 }, { summary.deleted, summary.throttled })
      return summary
    end
    close_to(20, throttled_batch(100).rate, "a stated limit above the client's rate leaves it")
    close_to(9.5, throttled_batch(10).rate, "95% of a stated limit below it")
    local _, summary = c:delete_bandwidths(emu:create_bandwidths(5), { concurrency = 4 })
    close_to(20, summary.rate, "the client's own rate, after the batches")
  end)

  -- A limit per minute, used up: the batch paused a second (the per-second window), then sent on
  -- at 95% of the rate, each request in the rest of that minute refused and counted against the
  -- limit, an id failed once its attempts were. It pauses for the window the answer states, at
  -- most retry_after_cap; a per-second one still for a second.
  it("pauses for the window a throttling answer states, at most retry_after_cap", function()
    -- (and a second when the throttled id's deadline leaves its retry less than the window: it
    -- would have ended unsent after the pause, failed)
    for _, case in ipairs{ { "limit:600,time:1 minute", {}, 30 }, { "limit:600,time:1 minute",
        { retry_after_cap = 3600 }, 60 }, { "limit:600,time:1 second", {}, 1 },
        { "limit:600,time:1 minute", { deadline = 10 }, 1 } } do
      local t = fake_time()
      local c = fx.client{ clock = t.clock, sleep = t.sleep, retry_after_cap = case[2].retry_after_cap,
        deadline = case[2].deadline }
      local ids = emu:create_bandwidths(6)
      emu:inject{ method = "DELETE", path = emu:delete_path(ids[2]), status = 429,
        body = { error_code = "APIGW.0308", error_msg = "The throttling threshold has been reached: policy user "
          .. "over ratelimit," .. case[1] } }
      local _, summary = c:delete_bandwidths(ids, { concurrency = 1 })
      c:close()
      assert.same({ 6, 1 }, { summary.deleted, summary.throttled }, case[1])
      -- (the pause, then the ids after it at 95% of the rate, the throttled one retried among them:
      -- its own wait, the window's too, jittered within its last 3 s, or the advised 2-5 s after
      -- a second's pause)
      local what = case[1] .. ", " .. cjson.encode(case[2]) .. ": slept " .. t.total()
      assert.is_true(t.total() >= case[3] and t.total() < case[3] + 6, what)
    end
  end)

  -- Two answers of one burst, two policies: a per-second limit's cut the concurrency and paused a
  -- second, and the per-minute one, within the cut's cooldown, was not heard: the ids after the
  -- second went into that minute's used-up window.
  it("pauses for the longer window of two throttling answers of one burst", function()
    local t = fake_time()
    local ids = emu:create_bandwidths(10)
    for i, window in ipairs{ "limit:600,time:1 second", "limit:600,time:1 minute" } do
      emu:inject{ method = "DELETE", path = emu:delete_path(ids[i + 1]), status = 429, body = {
        error_code = "APIGW.0308", error_msg = "The throttling threshold has been reached: policy user over "
          .. "ratelimit," .. window } }
    end
    -- (the deletes the emulator had received at each sleep, by the fake time it began at)
    local seen = {}
    local c = fx.client{ clock = t.clock, sleep = function(s)
      seen[#seen + 1] = { at = t.now - 1000, deletes = fixture.count_requests(emu, "DELETE") }
      t.sleep(s)
    end }
    local _, summary = c:delete_bandwidths(ids, { concurrency = 4 })
    c:close()
    assert.same({ 10, 2 }, { summary.deleted, summary.throttled })
    -- The first id alone (the probe), then four at once: two refused, two deleted. Nothing more
    -- went out before the minute's pause (30 s, retry_after_cap) was nearly over.
    local first = seen[1].deletes
    assert.equal(5, first)
    for _, s in ipairs(seen) do
      if s.at < 26 then assert.equal(first, s.deletes, "a delete sent at " .. s.at .. " s") end
    end
  end)

  -- A stated limit is the gateway's word, not a rate to take as it comes: "limit:0" states
  -- nothing usable (a rate of 0 made every wait NaN, read as none: the batch ran unpaced), and
  -- one request an hour would hold the batch for hours, past every bound the caller set.
  it("takes no rate from a stated limit of 0, and stops at one slower than retry_after_cap", function()
    local t = fake_time()
    local c = fx.client{ rate = 20, clock = t.clock, sleep = t.sleep }
    local ids = emu:create_bandwidths(10)
    throttle_once(ids[2], "policy user over ratelimit,limit:0,time:1 second")
    local _, summary = c:delete_bandwidths(ids, { concurrency = 4 })
    assert.same({ 10, 1 }, { summary.deleted, summary.throttled })
    assert.is_true(summary.rate > 0 and summary.rate <= 20, "the measured rate: " .. summary.rate)
    assert.is_true(t.total() >= 8 / 20, "paced: " .. t.total())

    ids = emu:create_bandwidths(10)
    throttle_once(ids[2], "policy user over ratelimit,limit:1,time:1 hour")
    local results
    results, summary = c:delete_bandwidths(ids, { concurrency = 4 })
    assert.equal("throttled", summary.stopped)
    assert.is_true(summary.not_sent > 0, "ids never sent")
    for _, r in ipairs(results) do
      if r.not_sent then
        assert.equal("throttled", r.stopped)
        assert.same({ 429, "APIGW.0308" }, { r.cause.status, r.cause.code })
        assert.matches("retry_after_cap", r.message)
      end
    end
    assert.is_true(t.total() < 60, "not waited for: " .. t.total())

    -- A daily limit as well, a batch that does not adapt as well; and a per-second limit is
    -- never one to stop at, whatever retry_after_cap (0 included).
    for _, case in ipairs{ { "limit:1000,time:1 day", {}, "throttled" },
        { "limit:1,time:1 hour", { adaptive = false }, "throttled" },
        { "limit:100,time:1 second", { retry_after_cap = 0 }, nil } } do
      local client_opts = { rate = 20, clock = t.clock, sleep = t.sleep, retry_after_cap = case[2].retry_after_cap }
      local pc = fx.client(client_opts)
      ids = emu:create_bandwidths(10)
      throttle_once(ids[2], "policy user over ratelimit," .. case[1])
      _, summary = pc:delete_bandwidths(ids, { concurrency = 4, adaptive = case[2].adaptive })
      assert.equal(case[3], summary.stopped, case[1])
      if not case[3] then assert.equal(10, summary.deleted, case[1]) end
    end
  end)

  -- A Retry-After of an hour is the same word as a limit of one request an hour: the batch went
  -- on at one request a second (the window), each refused and counted against the limit.
  it("stops at a Retry-After longer than retry_after_cap, and its wait reads nothing", function()
    local t = fake_time()
    local c = fx.client{ clock = t.clock, sleep = t.sleep }
    local ids = emu:create_bandwidths(12)
    emu:reset_counters()
    emu:inject{ method = "DELETE", path = emu:delete_path(ids[2]), status = 429,
      headers = { ["Retry-After"] = "3600" }, body = { error_code = "APIGW.0308",
        error_msg = "The throttling threshold has been reached" } }
    local results, summary = c:delete_bandwidths(ids, { concurrency = 1, wait = 20 })
    assert.same({ "throttled", 1, 1, 10 }, { summary.stopped, summary.deleted, summary.failed, summary.not_sent })
    assert.equal(2, fixture.count_requests(emu, "DELETE"))
    -- The deleted id is not read: every read would be throttled too.
    assert.equal(0, fixture.count_requests(emu, "GET"))
    local w = results[1].wait_error
    assert.same({ "not_sent", "throttled", 429 }, { w.kind, w.stopped, w.cause.status })
    for i = 3, 12 do assert.same({ "not_sent", "throttled" }, { results[i].kind, results[i].stopped }) end
  end)

  -- An HTTP-date Retry-After is the server's clock, read against the answer's Date: a local clock
  -- behind the server's made 10 s read as 1010, past retry_after_cap, and the batch stopped.
  it("reads an HTTP-date Retry-After against the answer's Date", function()
    local t = fake_time()
    local c = fx.client{ clock = t.clock, sleep = t.sleep }
    local ids = emu:create_bandwidths(4)
    local date = os.time() + 1000
    emu:inject{ method = "DELETE", path = emu:delete_path(ids[2]), status = 429,
      headers = { Date = os.date("!%a, %d %b %Y %H:%M:%S GMT", date),
        ["Retry-After"] = os.date("!%a, %d %b %Y %H:%M:%S GMT", date + 10) } }
    local _, summary = c:delete_bandwidths(ids, { concurrency = 1 })
    c:close()
    assert.same({ nil, 4, 0, 1 }, { summary.stopped, summary.deleted, summary.failed, summary.throttled })
    assert.is_true(t.total() >= 10 and t.total() < 12, "slept " .. t.total())
  end)

  -- RFC 9110: a 503's Retry-After says how long the service expects to be unavailable. One longer
  -- than retry_after_cap failed its own id only: the batch sent every other id into the outage,
  -- each failed, each of which may have acted (a 429 with the same header stopped it).
  it("stops at a retryable 5xx whose Retry-After is longer than retry_after_cap; its wait reads nothing", function()
    for _, status in ipairs{ 503, 500 } do
      emu:reset()
      local t = fake_time()
      local c = fx.client{ clock = t.clock, sleep = t.sleep }
      local ids = emu:create_bandwidths(12)
      emu:inject{ method = "DELETE", path = emu:delete_path(ids[2]), status = status,
        headers = { ["Retry-After"] = "3600" } }
      local results, summary = c:delete_bandwidths(ids, { concurrency = 1, wait = 20 })
      c:close()
      assert.same({ "unavailable", 1, 1, 10 }, { summary.stopped, summary.deleted, summary.failed, summary.not_sent },
        status)
      assert.equal(2, fixture.count_requests(emu, "DELETE"))
      assert.equal(0, fixture.count_requests(emu, "GET"))
      assert.same({ status, 1, true }, { results[2].status, results[2].attempts, results[2].unavailable_beyond })
      assert.is_nil(results[2].throttled_beyond)
      local w = results[1].wait_error
      assert.same({ "not_sent", "unavailable", status }, { w.kind, w.stopped, w.cause.status })
      for i = 3, 12 do
        assert.same({ "not_sent", "unavailable" }, { results[i].kind, results[i].stopped })
        assert.matches("retry_after_cap", results[i].message)
      end
    end
    -- Within the cap, or a 5xx that is not retried (501): that id's own, the batch goes on.
    for _, case in ipairs{ { 503, "2", 12, 0 }, { 501, "3600", 11, 1 } } do
      emu:reset()
      local t = fake_time()
      local c = fx.client{ clock = t.clock, sleep = t.sleep }
      local ids = emu:create_bandwidths(12)
      emu:inject{ method = "DELETE", path = emu:delete_path(ids[2]), status = case[1],
        headers = { ["Retry-After"] = case[2] } }
      local _, summary = c:delete_bandwidths(ids, { concurrency = 1 })
      c:close()
      assert.same({ nil, case[3], case[4], 0 }, { summary.stopped, summary.deleted, summary.failed, summary.not_sent },
        case[1])
    end
  end)

  -- One request an hour, with a Retry-After of 0 beside it: the call resent it at once, up to
  -- max_attempts times, each refused and counted (without the Retry-After, once).
  it("does not retry a call throttled to one request an hour, whatever short Retry-After comes with it", function()
    local c = fx.client{ sleep = function() end }
    for _, ra in ipairs{ "0", "5", false } do
      local id = emu:create_bandwidth{ size = 1 }
      emu:reset_counters()
      emu:inject{ method = "DELETE", status = 429, times = -1, headers = { ["Retry-After"] = ra or nil },
        body = { error_code = "APIGW.0308", error_msg = "The throttling threshold has been reached: policy user "
          .. "over ratelimit,limit:1,time:1 hour" } }
      local ok, err = pcall(c.delete_bandwidth, c, id)
      assert.is_false(ok)
      assert.same({ 429, 1, true }, { err.status, err.attempts, err.throttled_beyond }, tostring(ra))
      assert.equal(1, fixture.count_requests(emu, "DELETE"))
      emu:reset()
    end
  end)

  -- A wait whose read is throttled for longer than retry_after_cap ends there: it read on for
  -- the whole wait, every read refused and counted. So does one whose read meets a 503 saying
  -- the service is away for longer (RFC 9110's Retry-After): it read on into the outage.
  it("ends a wait whose read is throttled, or unavailable, beyond retry_after_cap", function()
    local c = fx.client{ sleep = function() end }
    for _, case in ipairs{
        { 429, "throttled_beyond", body = { error_code = "APIGW.0308",
          error_msg = "The throttling threshold has been reached: policy user over ratelimit,limit:1,time:1 hour" } },
        { 503, "unavailable_beyond", headers = { ["Retry-After"] = "3600" } } } do
      emu:reset()
      local id = emu:create_bandwidth{ size = 1 }
      emu:set_knobs{ deleted_visible_for = 60 }
      emu:inject{ method = "GET", status = case[1], times = -1, body = case.body, headers = case.headers }
      local ok, err = pcall(c.delete_bandwidth, c, id, { wait = 20 })
      assert.is_false(ok)
      assert.same({ case[1], "wait", true, true }, { err.status, err.stage, err.deleted, err[case[2]] })
      assert.equal(1, fixture.count_requests(emu, "GET"))
    end
  end)

  -- A read throttled with a Retry-After within retry_after_cap but longer than the wait has left
  -- (or throttled without one: Huawei's 2-5 s) is not retried by its call; the wait read again
  -- after its own pause all the same (0.5, 1, 2 s), each read refused and counted, and a batch's
  -- later ids were each read at once after it. No read goes before the server said it may.
  it("reads nothing a wait's throttled read asked not to before the wait ends", function()
    local c = fx.client{ sleep = function() end }
    local throttled = { error_code = "APIGW.0308", error_msg = "The throttling threshold has been reached: "
      .. "policy user over ratelimit,limit:5,time:1 second" }
    for _, case in ipairs{ { "20", 10 }, { false, 1.5 } } do
      emu:reset()
      emu:set_knobs{ deleted_visible_for = 60 }
      local ids = emu:create_bandwidths(4)
      emu:inject{ method = "GET", status = 429, times = -1, body = throttled,
        headers = { ["Retry-After"] = case[1] or nil } }
      local err = raised(c.delete_bandwidth, c, ids[1], { wait = case[2] })
      assert.same({ 429, "wait", true }, { err.status, err.stage, err.deleted }, tostring(case[1]))
      assert.equal(1, fixture.count_requests(emu, "GET"), tostring(case[1]))
      emu:reset_counters()
      local results = c:delete_bandwidths({ ids[2], ids[3], ids[4] }, { wait = case[2], concurrency = 1 })
      assert.equal(1, fixture.count_requests(emu, "GET"), "the batch's reads: " .. tostring(case[1]))
      assert.equal(429, results[1].wait_error.status)
      for i = 2, 3 do
        assert.same({ 204, true, 429 }, { results[i].status, results[i].wait_error.not_sent,
          results[i].wait_error.cause.status }, "id " .. i)
      end
    end
  end)

  -- A batch whose last answer was throttled (its Retry-After, or the window an adaptive cut pauses
  -- for) sent its wait's first read at once, refused and counted: the wait keeps to that pause too.
  it("sends no read of a batch's wait before the pause its last throttling answer asked for", function()
    local throttled = { error_code = "APIGW.0308", error_msg = "The throttling threshold has been reached" }
    for _, case in ipairs{ { wait = 30, gets = 1 }, { wait = 2, gets = 0 } } do
      emu:reset()
      local t, sent = fake_time(), {}
      local c = fx.client{ clock = t.clock, sleep = t.sleep,
        on_request = function(req) sent[#sent + 1] = { req.method, t.now } end }
      local ids = emu:create_bandwidths(2)
      emu:inject{ method = "DELETE", path = emu:delete_path(ids[2]), status = 429, times = -1, body = throttled,
        headers = { ["Retry-After"] = "3" } }
      local results = c:delete_bandwidths(ids, { concurrency = 1, adaptive = false, wait = case.wait })
      assert.same({ 204, 429 }, { results[1].status, results[2].status })
      assert.equal(case.gets, fixture.count_requests(emu, "GET"), "wait " .. case.wait)
      local last = sent[#sent]
      if case.gets == 1 then
        assert.equal("GET", last[1])
        assert.is_true(last[2] - sent[#sent - 1][2] > 2.9, "the read " .. last[2] - sent[#sent - 1][2] .. " s after")
        assert.is_number(results[1].waited)
      else
        assert.same({ true, true, 429 }, { results[1].wait_error.not_sent, results[1].wait_error.deleted,
          results[1].wait_error.cause.status })
      end
    end
  end)

  -- Adapting slowed the client's own bucket, given its rate back when the batch returned: a
  -- batch nginx ended (its downstream client gone, its thread killed) runs nothing after, and
  -- every later call of that worker's client kept the cut rate. The batch adapts a bucket of
  -- its own now: the client's calls keep the client's rate meanwhile.
  it("adapts a rate of the batch's own: the client's calls keep theirs while the batch runs", function()
    local t = fake_time()
    local c = fx.client{ rate = 20, clock = t.clock, sleep = t.sleep }
    local ids = emu:create_bandwidths(8)
    local extra = emu:create_bandwidths(3)
    throttle_once(ids[2], "policy user over ratelimit,limit:1,time:1 second")
    local n, slept = 0, nil
    local _, summary = c:delete_bandwidths(ids, { concurrency = 1, on_result = function()
      n = n + 1
      if n == 4 then -- after the cut (the batch's rate: under one a second)
        local before = t.total()
        for _, id in ipairs(extra) do assert.equal(204, c:delete_bandwidth(id).status) end
        slept = t.total() - before
      end
    end })
    assert.same({ 8, 1 }, { summary.deleted, summary.throttled })
    assert.is_true(summary.rate < 1, "the batch's rate: " .. summary.rate)
    assert.is_true(slept <= 3 / 20 + 1e-9, "three calls at the client's 20/s slept " .. slept)
  end)

  -- A caller's clock stepped back after a cut (a wall clock NTP stepped): the cut's one-second
  -- cooldown was read on it, and held for as long as the step, so the next throttling answer (a
  -- limit of 100/s) changed nothing and the batch went on at 380/s for an hour.
  it("cuts again on a throttling answer though the caller's clock stepped back since the last cut", function()
    local t = fake_time()
    local c = fx.client{ clock = t.clock, sleep = t.sleep }
    local ids = emu:create_bandwidths(6)
    throttle_once(ids[2], "policy user over ratelimit,limit:400,time:1 second")
    throttle_once(ids[5], "policy user over ratelimit,limit:100,time:1 second")
    local n = 0
    local _, summary = c:delete_bandwidths(ids, { concurrency = 1, on_result = function()
      n = n + 1
      if n == 3 then t.now = t.now - 3600 end
    end })
    assert.same({ 6, 2 }, { summary.deleted, summary.throttled })
    close_to(95, summary.rate, "95% of the limit the second answer stated")
  end)

  -- A batch's request took a slot of its own rate and one of the client's at once, and went at
  -- the later: the other slot had passed by then, so the client's next call went together with
  -- it (20 requests/s, two at the same instant), or the batch's next request came early.
  it("sends a request of a batch cut below the client's rate at its slot of both", function()
    local t = fake_time()
    local starts, batch_ids = {}, {}
    local ids = emu:create_bandwidths(20)
    local c = fx.client{ rate = 20, clock = t.clock, sleep = t.sleep, on_request = function(r)
      starts[#starts + 1] = { t.now, batch_ids[r.bandwidth_id], r.bandwidth_id == ids[2] and r.attempt == 2 }
    end }
    local extra = emu:create_bandwidths(40)
    for _, id in ipairs(ids) do batch_ids[id] = true end
    throttle_once(ids[2], "policy user over ratelimit,limit:10,time:1 second")
    local n = 0
    local _, summary = c:delete_bandwidths(ids, { concurrency = 1, on_result = function()
      n = n + 1
      -- the client's own calls meanwhile: none after some results, one or two after others
      for k = 1, n % 3 do assert.equal(204, c:delete_bandwidth(extra[2 * n + k - 2]).status) end
    end })
    assert.same({ 20, 1 }, { summary.deleted, summary.throttled })
    close_to(9.5, summary.rate, "95% of the stated limit")
    local last_batch, cut = nil, false
    for i = 2, #starts do
      local gap = starts[i][1] - starts[i - 1][1]
      assert.is_true(gap > 1 / 20 - 1e-9, "request " .. i .. ": " .. gap .. " s after the one before")
    end
    for i = 1, #starts do -- (from the throttled one's retry: the batch's rate was cut at its answer)
      cut = cut or starts[i][3]
      if cut and starts[i][2] then
        if last_batch then
          local gap = starts[i][1] - last_batch
          assert.is_true(gap > 1 / 9.5 - 1e-9, "the batch's request " .. i .. ": " .. gap .. " s after its last")
        end
        last_batch = starts[i][1]
      end
    end
  end)

  -- A batch cut below the client's rate (a bucket of its own) while its next request waited for
  -- the slot it had taken of the client's bucket: that slot became the request's shared one, but
  -- the request took another of the client's when it came (one wasted, and its wait again).
  it("takes one slot of the client's bucket per request when its rate is cut during a wait", function()
    for _, concurrency in ipairs{ 1, 2, 4 } do
      local t = fake_time()
      local real_new, buckets = pace.new, {}
      pace.new = function(o)
        local b = real_new(o)
        buckets[#buckets + 1] = b
        return b
      end
      local ok, c = pcall(fx.client, { rate = 20, clock = t.clock, sleep = t.sleep })
      pace.new = real_new
      assert(ok, c)
      local takes, take = 0, buckets[1].take
      buckets[1].take = function(self)
        takes = takes + 1
        return take(self)
      end
      local ids = emu:create_bandwidths(10)
      emu:reset_counters()
      throttle_once(ids[2], "policy user over ratelimit,limit:10,time:1 second")
      local _, summary = c:delete_bandwidths(ids, { concurrency = concurrency })
      assert.same({ 10, 1 }, { summary.deleted, summary.throttled })
      assert.equal(emu:stats().requests, takes, "the client's slots taken, concurrency " .. concurrency)
      c:close()
    end
  end)

  -- A slot taken before a throttling pause and waited for across it: the request went with that
  -- slot at the pause's end, long passed, and the next request's slot came at once: two went
  -- together into the gateway's first window after the pause. Its slot of the client's 20/s
  -- (adaptive or not: its rate cut to 9.5/s when the answer came, that slot became the shared
  -- one); or its slot of the batch's own 10/s, the shared one (a dict's, as with rate_dict) to
  -- be taken when it came. A slot the pause passes is given up: the slots are taken again then.
  it("sends no two requests together at the end of a pause that passed the slot taken", function()
    for _, case in ipairs{ { gap = 1 / 20 }, { adaptive = true, gap = 1 / 9.5 }, { rate = 10, gap = 1 / 10 } } do
      local t = fake_time()
      local starts, real_new, client_bucket = {}, pace.new, nil
      pace.new = function(o)
        client_bucket = client_bucket or real_new(o)
        return client_bucket
      end
      local ok, c = pcall(fx.client, { rate = 20, clock = t.clock, sleep = t.sleep,
        on_request = function() starts[#starts + 1] = t.now end })
      pace.new = real_new
      assert(ok, c)
      if case.rate then client_bucket.dict, client_bucket.key = dict_stand_in(), "eip:pace" end
      local ids = emu:create_bandwidths(8)
      emu:inject{ method = "DELETE", path = emu:delete_path(ids[2]), status = 429,
        headers = not case.adaptive and { ["Retry-After"] = "1" } or {},
        body = { error_code = "APIGW.0308", error_msg = "policy user over ratelimit,limit:10,time:1 second" } }
      local _, summary = c:delete_bandwidths(ids, { concurrency = 4, adaptive = case.adaptive or false,
        rate = case.rate })
      assert.same({ 8, 1 }, { summary.deleted, summary.throttled })
      assert.equal(9, #starts)
      -- (the pause ends by the monotonic clock too, which ran on while the answers came)
      assert.is_true(starts[3] - starts[2] > 0.99, "paused: " .. starts[3] - starts[2])
      for i = 4, #starts do
        local gap = starts[i] - starts[i - 1]
        assert.is_true(gap > case.gap - 1e-9, "at " .. case.gap .. " s apart, request " .. i .. ": "
          .. gap .. " s after the one before")
      end
    end
  end)

  -- A pause shorter than the wait for the slot taken before it: the loop slept for the pause,
  -- and took what it slept for as the slot too. The request went at the pause's end, a second
  -- before its slot (the client's 0.5/s: two requests 1 s apart).
  it("sends a request whose slot lies past a pause at its slot, not at the pause's end", function()
    local t = fake_time()
    local starts = {}
    local c = fx.client{ rate = 0.5, clock = t.clock, sleep = t.sleep,
      on_request = function() starts[#starts + 1] = t.now end }
    local ids = emu:create_bandwidths(4)
    emu:inject{ method = "DELETE", path = emu:delete_path(ids[2]), status = 429, headers = { ["Retry-After"] = "1" },
      body = { error_code = "APIGW.0308", error_msg = "policy user over ratelimit" } }
    local _, summary = c:delete_bandwidths(ids, { concurrency = 2, adaptive = false })
    assert.same({ 4, 1 }, { summary.deleted, summary.throttled })
    assert.equal(5, #starts)
    for i = 2, #starts do
      local gap = starts[i] - starts[i - 1]
      assert.is_true(gap > 2 - 1e-3, "request " .. i .. ": " .. gap .. " s after the one before")
    end
  end)

  -- A batch kept the slot it took while its requests in flight were answered; a call of the
  -- client's made from on_result meanwhile took the next slot and slept for it, and the batch's
  -- request went as that call returned, its own slot long passed: two requests at one instant
  -- at rate = 1 (GET@4 DELETE@4).
  it("sends no request of a batch together with a call made from on_result at the client's rate", function()
    local t = fake_time()
    local starts = {}
    local c = fx.client{ rate = 1, clock = t.clock, sleep = t.sleep, on_request = function()
      starts[#starts + 1] = t.now
    end }
    local ids, others = emu:create_bandwidths(4), emu:create_bandwidths(4)
    local n = 0
    local _, summary = c:delete_bandwidths(ids, { concurrency = 2, on_result = function()
      n = n + 1
      c:show_bandwidth(others[n])
    end })
    assert.equal(4, summary.deleted)
    assert.equal(8, #starts)
    for i = 2, #starts do
      assert.is_true(starts[i] - starts[i - 1] >= 1 - 1e-9, "request " .. i .. " at " .. starts[i] - 1000
        .. ", the one before at " .. starts[i - 1] - 1000)
    end
  end)

  -- Another coroutine calling the client without pause took the next slot each time the batch
  -- slept for its own: the batch gave up a slot that had not passed (the other's came after it),
  -- took another, and sent nothing while the other went on (GET@2 GET@4 ... DELETE@21).
  -- (not on Lua 5.1: the batch's sleep there cannot yield to the other coroutine through the
  -- library's pcall, and is replaced by the library's own, as the README says)
  it_yielding("sends a batch's request at its slot though another coroutine took the next one meanwhile", function()
    local t, starts = fake_time(), {}
    local transport = { name = "stub", close = function() end }
    function transport.send()
      starts[#starts + 1] = t.now - 1000
      return { status = 204, body = "", request_id = "r", elapsed = 0, new_connections = 0 }
    end
    local c = eip.new{ endpoint = "https://vpc.example.com", project_id = "p1", token = "tok", transport = transport,
      rate = 1, clock = t.clock, sleep = function(s) coroutine.yield(s) end, max_attempts = 1 }
    local ids = { "11111111-2222-3333-4444-555555555551", "11111111-2222-3333-4444-555555555552" }
    local tasks = {
      { at = t.now, co = coroutine.create(function() c:delete_bandwidths(ids, { concurrency = 1 }) end) },
      { at = t.now, co = coroutine.create(function() for _ = 1, 6 do pcall(c.list_bandwidths, c) end end) },
    }
    local batch_end
    repeat
      local next_task
      for _, task in ipairs(tasks) do
        if coroutine.status(task.co) ~= "dead" and (not next_task or task.at < next_task.at) then next_task = task end
      end
      if next_task then
        t.now = math.max(t.now, next_task.at)
        local ok, s = coroutine.resume(next_task.co)
        assert(ok, s)
        if s then next_task.at = t.now + s end
        if next_task == tasks[1] and coroutine.status(next_task.co) == "dead" then batch_end = t.now - 1000 end
      end
    until not next_task
    c:close()
    assert.equal(8, #starts)
    assert.is_true(batch_end <= 1, "the batch ended at " .. tostring(batch_end))
    for i = 2, #starts do assert.is_true(starts[i] - starts[i - 1] >= 1 - 1e-9, table.concat(starts, " ")) end
  end)

  it("gives the client its rate back when on_result raises", function()
    local c = paced_client(20)
    local ids = emu:create_bandwidths(8)
    throttle_once(ids[2], "policy user over ratelimit,limit:10,time:1 second")
    local n = 0
    local ok, err = pcall(c.delete_bandwidths, c, ids, { concurrency = 4, on_result = function()
      n = n + 1
      if n == 4 then error("the caller's own failure", 0) end
    end })
    assert.same({ false, "the caller's own failure" }, { ok, err })
    local _, summary = c:delete_bandwidths(emu:create_bandwidths(3), { concurrency = 4 })
    close_to(20, summary.rate, "the client's own rate")
  end)

  it("measures what the server accepted at each cut that states no limit", function()
    local c = paced_client(100)
    local ids = emu:create_bandwidths(300)
    for _, k in ipairs{ 100, 250 } do throttle_once(ids[k], "The throttling threshold has been reached") end
    local _, summary = c:delete_bandwidths(ids, { concurrency = 8 })
    assert.same({ 300, 2 }, { summary.deleted, summary.throttled })
    -- each cut: 90% of the answers accepted in the second before it (about 100, then about 90)
    assert.is_true(summary.rate > 50 and summary.rate <= 90, "rate " .. summary.rate)
  end)

  -- A cut that states no limit took 90% of the rate in use, its floor of 1/s undone by that
  -- cap: each refusal of an endless throttling cut it again, the spacing grew by 1/0.9 a
  -- request, and 30 ids took 12 722 s (60 ids: years).
  it("keeps to a floor of 1 request a second under throttling that never ends and states no limit", function()
    local t = fake_time()
    local c = fx.client{ clock = t.clock, sleep = t.sleep }
    local ids = emu:create_bandwidths(30)
    emu:reset_counters()
    emu:inject{ method = "DELETE", status = 429, times = -1, body = { error_code = "APIGW.0308",
      error_msg = "The throttling threshold has been reached" } }
    local _, summary = c:delete_bandwidths(ids, { concurrency = 8 })
    assert.same({ 0, 30 }, { summary.deleted, summary.failed })
    assert.equal(90, fixture.count_requests(emu, "DELETE"), "3 attempts an id")
    assert.is_true(summary.rate >= 1, "rate " .. summary.rate)
    -- (90 requests at 1/s at least, with their pauses and backoffs: minutes, not hours)
    assert.is_true(t.total() < 600, "took " .. t.total() .. " s of the batch's clock")
  end)

  -- APIGW.0308 is throttling whatever its status (retry.throttled): the batch read only 429 and
  -- 503, so a 409 APIGW.0308 with a Retry-After of an hour stopped nothing (every id sent on,
  -- refused, counted against the limit), and a short one cut nothing.
  it("takes APIGW.0308 for throttling whatever its status: it stops, and it cuts", function()
    for _, status in ipairs{ 409, 400 } do
      local ids = emu:create_bandwidths(6)
      emu:reset_counters()
      emu:inject{ method = "DELETE", status = status, times = -1, headers = { ["Retry-After"] = "3600" },
        body = { error_code = "APIGW.0308", error_msg = "The throttling threshold has been reached" } }
      local c = fx.client{ sleep = function() end }
      local results, summary = c:delete_bandwidths(ids, { concurrency = 1 })
      assert.same({ "throttled", 1, 5 }, { summary.stopped, summary.failed, summary.not_sent }, status)
      assert.equal(1, fixture.count_requests(emu, "DELETE"), status)
      assert.same({ "not_sent", "throttled" }, { results[6].kind, results[6].stopped }, status)
      emu:reset()
    end
    local t = fake_time()
    local c = fx.client{ clock = t.clock, sleep = t.sleep }
    local ids = emu:create_bandwidths(20)
    emu:inject{ method = "DELETE", path = emu:delete_path(ids[2]), status = 409, headers = { ["Retry-After"] = "0" },
      body = { error_code = "APIGW.0308", error_msg = "The throttling threshold has been reached" } }
    local _, summary = c:delete_bandwidths(ids, { concurrency = 8 })
    assert.same({ 20, 1 }, { summary.deleted, summary.throttled })
    assert.equal(4, summary.concurrency_min, "halved")
  end)

  it("keeps its concurrency with adaptive = false", function()
    local ids = emu:create_bandwidths(10)
    emu:inject{ method = "DELETE", path = emu:delete_path(ids[2]), status = 429, headers = { ["Retry-After"] = "0" },
      body = { error_code = "APIGW.0308", error_msg = "limit:400,time:1 second" } }
    local _, summary = fx.client():delete_bandwidths(ids, { concurrency = 8, adaptive = false })
    assert.same({ 10, 8, 8 }, { summary.deleted, summary.concurrency, summary.concurrency_min })
    assert.is_nil(summary.rate)
  end)

  it("honours a Retry-After for the whole batch, not only for the id that got it", function()
    local ids = emu:create_bandwidths(12)
    emu:inject{ method = "DELETE", path = emu:delete_path(ids[3]), status = 429, headers = { ["Retry-After"] = "1" },
      body = { error_code = "APIGW.0308", error_msg = "throttled" } }
    -- Timed on the client (the server's clock stamps a request when its worker gets to it, late
    -- when that worker stalls): when each attempt started, and when the 429 was read.
    local monotime = require("eip.core").monotime
    local starts, refused_at = {}, nil
    local c = fx.client{
      on_request = function() starts[#starts + 1] = monotime() end,
      on_response = function(info)
        if info.status == 429 then refused_at = refused_at or monotime() end
      end }
    local _, summary = c:delete_bandwidths(ids, { concurrency = 4, adaptive = false })
    assert.equal(12, summary.deleted)
    assert.is_number(refused_at)
    assert.equal(13, #starts)
    local later = 0
    for _, t in ipairs(starts) do
      local after = t - refused_at
      assert.is_false(after > 0 and after < 0.95, "a request started " .. after .. " s after the Retry-After: 1")
      if after > 0 then later = later + 1 end
    end
    assert.is_true(later >= 1, "the retry of the refused id came after the pause")
  end)

  it("stays within a throttled emulator's limit: every id deleted, few refusals", function()
    emu:set_knobs{ throttle_rate = 30 }
    local ids = emu:create_bandwidths(90)
    emu:reset_counters()
    local c = fx.client()
    local _, summary = c:delete_bandwidths(ids, { concurrency = 8 })
    assert.same({ 90, 0 }, { summary.deleted, summary.failed })
    assert.equal(summary.throttled, emu:stats().throttled)
    assert.is_true(summary.throttled <= 20, "refused " .. summary.throttled)
    assert.is_true(summary.rate <= 30 * 0.95 + 1e-6)
  end)

  it("the emulator throttles per user with the real answer", function()
    emu:set_knobs{ throttle_rate = 2, throttle_retry_after = 3 }
    local c = fx.client{ max_attempts = 1 }
    -- The gateway counts in whole seconds of its clock (this machine's): the three calls go at
    -- the start of one. A try that a stalled machine spread over two (the gateway's times of
    -- the requests say so) proves nothing: the next goes at the start of a fresh second.
    local socket = require "socket"
    local outcomes, err
    for _ = 1, 5 do
      local ids = emu:create_bandwidths(3)
      emu:reset_counters()
      local next_second = math.floor(socket.gettime()) + 1
      repeat socket.sleep(0.01) until socket.gettime() >= next_second
      outcomes = {}
      for i = 1, 3 do
        local ok, e = pcall(c.delete_bandwidth, c, ids[i])
        outcomes[i], err = ok, e
      end
      local sent = emu:requests()
      if #sent == 3 and math.floor(sent[1].time) == math.floor(sent[3].time) then break end
      outcomes = nil
    end
    assert.is_table(outcomes, "five tries, each spread over two of the gateway's seconds")
    assert.same({ true, true, false }, outcomes)
    assert.same({ 429, "APIGW.0308", "3" }, { err.status, err.code, err.retry_after })
    assert.equal("The throttling threshold has been reached: policy user over ratelimit,limit:2,time:1 second",
      err.message)
    assert.equal(1, emu:stats().throttled)
  end)

  -- `deadline` is seconds for the whole call: the wait for the rate's slot included. Calls that
  -- all come at the same instant (the clock stands still, as for requests served at once inside
  -- nginx), at 1 request/s with a deadline of 1.5 s: the first goes now, the second in 1 s, and
  -- those whose slot lies 2 s ahead are not waited for, nor sent.
  it("counts the wait for the rate in the deadline: a slot past it is neither waited for nor sent", function()
    local now, slept = 1000, {}
    local c = fx.client{ rate = 1, deadline = 1.5, clock = function() return now end,
      sleep = function(s) slept[#slept + 1] = s end }
    local ids = emu:create_bandwidths(4)
    emu:reset_counters()
    assert.equal(204, c:delete_bandwidth(ids[1]).status)
    assert.equal(204, c:delete_bandwidth(ids[2]).status)
    for i = 3, 4 do
      local err = raised(c.delete_bandwidth, c, ids[i])
      assert.same({ "transport", "timeout", true, 0, ids[i] }, { err.kind, err.reason, err.not_sent, err.attempts,
        err.bandwidth_id })
      assert.matches("not sent: the deadline %(1%.5 s%) would pass before the rate limit lets the request go",
        err.message)
    end
    assert.equal(1, #slept)
    close_to(1, slept[1], "the second call's wait")
    assert.equal(2, emu:stats().requests)
    -- The slots those calls did not take are free: a second on, the next call waits 1 s, not 3.
    now = now + 1
    assert.equal(204, c:delete_bandwidth(ids[3]).status)
    close_to(1, slept[2], "the third call's wait")
  end)

  it("does not wait for a retry's slot that the deadline would pass: the last error is raised", function()
    local now, slept = 1000, {}
    local c = fx.client{ rate = 0.5, deadline = 1.5, clock = function() return now end,
      sleep = function(s) slept[#slept + 1] = s end }
    local id = emu:create_bandwidth{ size = 1 }
    emu:reset_counters()
    emu:inject{ method = "DELETE", status = 503, headers = { ["Retry-After"] = "0" } }
    local err = raised(c.delete_bandwidth, c, id)
    assert.same({ "http", 503, 1 }, { err.kind, err.status, err.attempts })
    assert.same({}, slept)
    assert.equal(1, emu:stats().requests)
  end)

  -- A wait's reads end with the wait, which gives them a time of their own even where the client
  -- has no `deadline`: a read whose slot of the rate lies past the wait's end is not sent. Its
  -- error was made for the client's deadline, and formatted that missing deadline: a raw
  -- "bad argument #2 to 'format'" after a delete that went through.
  it("does not send a wait's read whose slot lies past the wait, in a client without a deadline", function()
    local t = fake_time()
    local c = fx.client{ rate = 0.1, clock = t.clock, sleep = t.sleep }
    local ids = emu:create_bandwidths(3)
    emu:reset_counters()
    local err = raised(c.delete_bandwidth, c, ids[1], { wait = 1 })
    assert.same({ "transport", "timeout", true, true, "wait", ids[1] }, { err.kind, err.reason, err.not_sent,
      err.deleted, err.stage, err.bandwidth_id })
    assert.matches("not sent: the wait's end would pass before the rate limit lets the request go", err.message,
      1, true)
    assert.equal(1, fixture.count_requests(emu)) -- the delete
    t.now = t.now + 10
    local results = c:delete_bandwidths({ ids[2], ids[3] }, { wait = 1, concurrency = 1 })
    for i = 1, 2 do
      assert.same({ 204, "transport", true }, { results[i].status, results[i].wait_error.kind,
        results[i].wait_error.not_sent }, "id " .. i)
    end
  end)

  -- In a client whose `deadline` ends after the wait, such a read's error quoted that deadline,
  -- which had not passed: what stopped the read was the wait's end. A deadline that ends first
  -- is the one named.
  it("names the wait's end, not a later deadline, for a wait's read whose slot lies past it", function()
    for _, case in ipairs{ { 30, "the wait's end would pass" }, { 0.5, "the deadline (0.5 s) would pass" } } do
      local t = fake_time()
      local c = fx.client{ rate = 0.1, deadline = case[1], clock = t.clock, sleep = t.sleep }
      local id = emu:create_bandwidth{ size = 1 }
      emu:reset_counters()
      local err = raised(c.delete_bandwidth, c, id, { wait = 1 })
      assert.same({ "transport", "timeout", true, true, "wait" }, { err.kind, err.reason, err.not_sent, err.deleted,
        err.stage }, tostring(err))
      assert.matches("not sent: " .. case[2] .. " before the rate limit lets the request go", err.message, 1, true)
      assert.equal(1, fixture.count_requests(emu)) -- the delete
    end
  end)

  -- The same in a batch, where the retry waits for the rate's slot in the batch's loop: not
  -- sent after its deadline (or with no time left to be answered in), but ended with its error.
  it("ends a batch's retry whose slot the deadline would pass with its last error, unsent", function()
    local now, slept = 1000, {}
    local c = fx.client{ rate = 0.5, deadline = 1.5, clock = function() return now end,
      sleep = function(s)
        slept[#slept + 1] = s
        now = now + s
      end }
    local id = emu:create_bandwidth{ size = 1 }
    emu:reset_counters()
    emu:inject{ method = "DELETE", status = 503, headers = { ["Retry-After"] = "0" } }
    local results, summary = c:delete_bandwidths({ id })
    local err = results[1]
    assert.same({ "http", 503, 1, false }, { err.kind, err.status, err.attempts, err.ok })
    assert.is_nil(err.earlier_unanswered)
    assert.same({ 0, 1 }, { summary.deleted, summary.failed })
    assert.same({}, slept)
    assert.equal(1, emu:stats().requests)
  end)

  -- An IAM password client's login takes a slot like any request. A call took its slot first,
  -- then logged in as its request was signed: the login went in the next slot and the delete
  -- right behind it (its slot passed meanwhile), two requests together; the same at each renewal.
  -- Timed on a clock that only moves when the code sleeps: each request's start is exact.
  it("spaces an IAM login (the first, and a renewal) from the calls that wait for it", function()
    local real_time = os.time
    local ok, err = pcall(function()
      for _, mode in ipairs{ "calls", "batch", "renewal" } do
        emu:set_token_ttl(3600) -- renewed 600 s ahead of expiry
        local t = fake_time()
        local starts = {}
        local c = fx.client{ token = fixture.NONE, auth = emu:iam_auth(), rate = 10, clock = t.clock, sleep = t.sleep,
          on_request = function(r) starts[#starts + 1] = { r.method, t.now } end }
        local ids = emu:create_bandwidths(3)
        if mode == "renewal" then
          assert.equal(204, c:delete_bandwidth(emu:create_bandwidth{ size = 1 }).status)
          starts = {}
          os.time = function(x) return x and real_time(x) or real_time() + 3010 end -- luacheck: ignore 122
        end
        if mode == "batch" then
          local _, summary = c:delete_bandwidths(ids, { concurrency = 4 })
          assert.equal(3, summary.deleted)
        else
          for _, id in ipairs(ids) do assert.equal(204, c:delete_bandwidth(id).status) end
        end
        os.time = real_time -- luacheck: ignore 122
        assert.equal(4, #starts, mode)
        assert.equal("POST", starts[1][1], mode .. ": the login first")
        for i = 2, #starts do
          close_to(0.1, starts[i][2] - starts[i - 1][2], mode .. ": " .. starts[i][1] .. " " .. i .. " after "
            .. starts[i - 1][1])
        end
        fx.reset()
      end
    end)
    os.time = real_time -- luacheck: ignore 122
    assert(ok, err)
  end)

  it("refuses bad rate options before sending", function()
    assert.equal("rate", raised(eip.new, fx.options{ rate = 0 }).argument)
    assert.equal("burst", raised(eip.new, fx.options{ burst = 2 }).argument)
    assert.equal("rate_dict", raised(eip.new, fx.options{ rate = 5, rate_dict = "x" }).argument)
    assert.equal("clock", raised(eip.new, fx.options{ clock = 5 }).argument)
    local c = fx.client()
    assert.equal("rate", raised(c.delete_bandwidths, c, { "bw-1" }, { rate = -1 }).argument)
    assert.equal("adaptive", raised(c.delete_bandwidths, c, { "bw-1" }, { adaptive = "no" }).argument)
    assert.equal(0, emu:stats().requests)
  end)
end)
