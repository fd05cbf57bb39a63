-- The signing places and refusals that nginx workers share through a lua_shared_dict
-- (eip.signing, client option signing_dict), against a stand-in for the dict: the calls of
-- ngx.shared.DICT the module makes (get, add, set, incr, delete, expire, ttl), with time-to-live on
-- a clock the spec moves. The same code runs in real nginx in spec/openresty_rate_spec.lua.
local eip = require "eip"
local fixture = require "spec.support.fixture"
local raised = require("spec.support.assertions").raised
local socket = require "socket"

-- A dict whose entries live `ttl` seconds on the clock `now()`; `broken`: every write fails as
-- a full dict's does (no memory).
local function fake_dict(now)
  local store = {}
  local d = { store = store, broken = false }
  local function live(k)
    local e = store[k]
    if e and e.exp and now() >= e.exp then
      store[k] = nil
      return nil
    end
    return e
  end
  function d.get(_, k)
    local e = live(k)
    if e then return e.v end
    return nil
  end
  function d.add(_, k, v, ttl)
    if d.broken then return false, "no memory" end
    if live(k) then return false, "exists" end
    store[k] = { v = v, exp = ttl and ttl > 0 and now() + ttl or nil }
    return true
  end
  function d.set(_, k, v, ttl)
    if d.broken then return false, "no memory" end
    store[k] = { v = v, exp = ttl and ttl > 0 and now() + ttl or nil }
    return true
  end
  function d.ttl(_, k)
    local e = live(k)
    if not e then return nil, "not found" end
    return e.exp and e.exp - now() or 0
  end
  function d.incr(_, k, by, init, init_ttl)
    if d.broken then return nil, "no memory" end
    local e = live(k)
    if not e then
      if init == nil then return nil, "not found" end
      -- (init_ttl: the life of a key this makes; one that exists keeps its own)
      e = { v = init, exp = init_ttl and init_ttl > 0 and now() + init_ttl or nil }
      store[k] = e
    end
    if type(e.v) ~= "number" then return nil, "not a number" end
    e.v = e.v + by
    return e.v
  end
  function d.delete(_, k) store[k] = nil end
  function d.expire(_, k, ttl)
    local e = live(k)
    if e then e.exp = now() + ttl end
    return e ~= nil
  end
  return d
end

describe("signing places shared through a dict (eip.signing)", function()
  local t, dict, saved_ngx
  local signing = require "eip.signing"
  local pipeline = require "eip.pipeline"

  before_each(function()
    t = 1000
    dict = fake_dict(function() return t end)
    saved_ngx = rawget(_G, "ngx")
    local md5 = function(s) return ("%08x"):format(#s) .. s:sub(1, 8) end
    rawset(_G, "ngx", { shared = { eip_signing = dict }, md5 = md5, update_time = function() end,
      worker = { pid = function() return 4242 end } })
  end)
  after_each(function() rawset(_G, "ngx", saved_ngx) end)

  local keys = { ak = "AKSIGNINGSPEC0000001", sk = "sk-signing-spec-000000000" }

  -- Two clients of one key, each in a worker of its own (w.pid: the worker ngx.worker.pid says
  -- runs), and w.admit(p, who), which takes a place for a new call of p in worker `who`: the
  -- call, and whether it was admitted (w.sent counts those).
  local function two_workers()
    local auth = require "eip.auth"
    local w = { pid = 1, sent = 0 }
    rawget(_G, "ngx").worker.pid = function() return w.pid end
    local function worker()
      local p = auth.resolve({ ak = keys.ak, sk = keys.sk }, nil, function() end)
      p.shared = signing.new("eip_signing")
      return p
    end
    function w.admit(p, who)
      w.pid = who
      local call = {}
      local ok = pipeline.admit(p, call, 5)
      if ok then w.sent = w.sent + 1 end
      return call, ok
    end
    return worker(), worker(), w
  end

  it("hands out at most `max` places, each to one holder, freed by that holder only", function()
    local shared = signing.new("eip_signing")
    local prefix = shared:prefix(keys)
    local held = {}
    for i = 1, 4 do
      local key, mine = shared:take(prefix, 4, 30)
      assert.is_string(key, "place " .. i)
      held[i] = { key, mine }
    end
    assert.is_false(shared:take(prefix, 4, 30), "a fifth")
    local _, n = shared:read(prefix)
    assert.equal(4, n)
    -- fewer places when refusals were counted: three held, a max of three leaves none
    shared:give(held[4][1], held[4][2])
    assert.is_false(shared:take(prefix, 3, 30))
    assert.is_string((shared:take(prefix, 4, 30)))
  end)

  -- A name quoted cut to its first 40 bytes kept the first bytes of a credential pasted into it,
  -- too few for the scrub's 8-byte pieces: the name is checked whole first.
  it("names no dict by a quote holding a piece of a credential", function()
    local secrets = { "tok_SecretValue123" }
    require("eip.validate").register_secrets(secrets)
    local err = raised(signing.new, ("0"):rep(34) .. secrets[1])
    assert.same({ "usage", "signing_dict" }, { err.kind, err.argument })
    assert.is_nil(tostring(err):find("tok_", 1, true), tostring(err))
    assert.matches("holds a credential", tostring(err), 1, true)
    err = raised(signing.new, "eip_signin")
    assert.matches('"eip_signin"', tostring(err), 1, true)
  end)

  -- Two workers of one key: worker B reads the counts (three places held, no refusal: room for
  -- one), and before it takes its place worker A's request is refused (counted, its place given
  -- back) and A's next request takes that place. B's bound was worked out before the refusal:
  -- it took a fourth place, and the refusal and the four places in flight made five, which lock
  -- the key. The take looks again after its add now, and gives the place back.
  it("a worker whose counts went stale before its take does not make five with another's refusal", function()
    local A, B, w = two_workers()
    local admit = w.admit
    local a1 = admit(A, 1)
    admit(A, 1)
    admit(B, 2)
    local Shared = getmetatable(B.shared).__index
    local take = Shared.take
    local fired = false
    Shared.take = function(self, prefix, max, ttl)
      if self == B.shared and not fired then
        fired = true -- (B has read the counts; A's 401 and A's next request come now)
        w.pid = 1
        A:rejected({ kind = "http", status = 401, code = "APIGW.0301", message = "refused" }, 0)
        pipeline.release(A, a1)
        admit(A, 1)
        w.pid = 2
      end
      return take(self, prefix, max, ttl)
    end
    local ok, err = pcall(admit, B, 2)
    Shared.take = take
    assert(ok, err)
    assert.is_true(fired, "the case tested nothing")
    local strikes, held = B.shared:read(B.shared:prefix(keys))
    assert.equal(4, strikes + held, "a refusal and the places in flight")
    assert.equal(4, w.sent, "signed requests sent, the refused one included")
  end)

  -- Two workers of one key, four requests in flight when the key starts being refused: A's
  -- success (checked by the gateway before the change) and B's refusal are answered together.
  -- A's clear checked the number of the last refusal, then B counted its refusal, then A's
  -- clear set the count to none: the refusal was lost, two places opened where one should, and
  -- four more refusals (the two still in flight and two new requests) made five in a row.
  it("a refusal another worker counts while a success clears the count is not lost", function()
    local A, B, w = two_workers()
    local a1, b1 = w.admit(A, 1), w.admit(B, 2)
    w.admit(A, 1)
    w.admit(B, 2)
    assert.equal(4, w.sent)
    local prefix = A.shared:prefix(keys)
    local get, fired = dict.get, false
    dict.get = function(d, k)
      local v = get(d, k)
      if k == prefix .. "strike_seq" and w.pid == 1 and not fired then
        fired = true -- (A's clear has read it: B's refusal is counted now)
        w.pid = 2
        B:rejected({ kind = "http", status = 401, code = "APIGW.0301", message = "refused" }, 0)
        pipeline.release(B, b1)
        w.pid = 1
      end
      return v
    end
    w.pid = 1
    A:accepted(0, a1.seq, a1.shared_seq, a1.seq_prefix)
    pipeline.release(A, a1)
    dict.get = get
    assert.is_true(fired, "the case tested nothing")
    local strikes, held, _, doubts = A.shared:read(prefix)
    -- (B's refusal stands, as a refusal or as a doubt: with the two in flight, one more may go)
    assert.equal(3, (strikes or 0) + (doubts or 0) + held, "the refusal and the places in flight")
    assert.equal(1, pipeline.signing_room(A))
  end)

  -- Lost answers of other workers counted while a success clears the count are counted once:
  -- two of them counted just after the reset, and the doubt the clear adds back for a count it
  -- may have wiped, made three that nobody saw come: no hold was set, and the next lost answer
  -- refused the key for good (four), where three lost answers hold it first (README: Safety).
  it("lost answers counted while a success clears the count are not counted twice", function()
    local A, B, w = two_workers()
    local a1 = w.admit(A, 1)
    w.admit(B, 2)
    w.admit(B, 2)
    local prefix = A.shared:prefix(keys)
    local delete, fired = dict.delete, false
    dict.delete = function(d, k)
      delete(d, k)
      if k == prefix .. "hold" and w.pid == 1 and not fired then
        fired = true -- (A's clear has set the counts to none: B's two lost answers are counted now)
        w.pid = 2
        B:unanswered(0)
        B:unanswered(0)
        w.pid = 1
      end
    end
    w.pid = 1
    A:accepted(0, a1.seq, a1.shared_seq, a1.seq_prefix)
    dict.delete = delete
    assert.is_true(fired, "the case tested nothing")
    local _, _, refused, doubts, hold = A.shared:read(prefix)
    assert.is_false(refused)
    -- (two lost answers in a row: two doubts, no hold; a third would hold the key)
    assert.same({ 2 }, { doubts, hold })
  end)

  -- Two successes clearing at once took the same counts off twice: a refusal counted between
  -- the two was taken off with them (the second clear's count, below none, set back to none).
  it("clears one at a time: a refusal counted while two successes clear stays counted", function()
    local shared = signing.new("eip_signing")
    local prefix = shared:prefix(keys)
    for _ = 1, 3 do shared:next_seq(prefix) end
    shared:strike(prefix)
    shared:strike(prefix)
    local s4, s5 = shared:next_seq(prefix), shared:next_seq(prefix) -- taken after the refusals
    local incr, fired = dict.incr, false
    dict.incr = function(d, k, by, ...)
      if k == prefix .. "strikes" and by < 0 and not fired then
        fired = true -- (the first clear takes its two off now: the second clears, then a refusal)
        shared:clear(prefix, s5)
        shared:strike(prefix)
      end
      return incr(d, k, by, ...)
    end
    shared:clear(prefix, s4)
    dict.incr = incr
    assert.is_true(fired, "the case tested nothing")
    assert.equal(1, (shared:read(prefix)), "the refusal after the successes")
  end)

  it("frees a place whose holder went away when its time is up, and never another holder's", function()
    local shared = signing.new("eip_signing")
    local prefix = shared:prefix(keys)
    local gone = {}
    for i = 1, 4 do gone[i] = { shared:take(prefix, 4, 5) } end -- a batch aborted, a worker died
    assert.is_false(shared:take(prefix, 4, 5))
    t = t + 6 -- their time is up: whatever else goes on, each frees itself
    local now_held = {}
    for i = 1, 4 do now_held[i] = { shared:take(prefix, 4, 30) } end
    assert.is_string(now_held[4][1])
    -- the first holders giving back late must not free the new holders' places, nor hold them
    -- longer (a call whose credentials took longer than its place: it learns it is not sent)
    for i = 1, 4 do
      assert.is_false(shared:keep(gone[i][1], gone[i][2], 30))
      shared:give(gone[i][1], gone[i][2])
    end
    assert.is_true(shared:keep(now_held[1][1], now_held[1][2], 30))
    local _, n = shared:read(prefix)
    assert.equal(4, n)
    assert.is_false(shared:take(prefix, 4, 30))
  end)

  -- nginx's dict reckons a key's time to live from the worker's cached clock (ngx.now), which
  -- stands still while the worker blocks (a batch of log_by_lua on libcurl, a system sleep):
  -- places taken after seconds of that expired for every other worker before their requests
  -- were answered, or at once, and the other worker took them too (six in flight at the gateway).
  it("a place taken by a worker whose clock stood still lives its whole time for the others #openresty", function()
    local A, B, w = two_workers()
    local clocks = { [1] = t - 7, [2] = t } -- A blocked for 7 s: its ngx.now is that old
    local ngx = rawget(_G, "ngx")
    ngx.shared.eip_signing = fake_dict(function() return clocks[w.pid] end)
    A.shared, B.shared = signing.new("eip_signing"), signing.new("eip_signing")
    ngx.update_time = function() clocks[w.pid] = t end
    for _ = 1, 4 do
      local _, ok = w.admit(A, 1) -- each held 6 s (a timeout of 5)
      assert.is_true(ok)
    end
    local _, ok = w.admit(B, 2)
    assert.is_false(ok, "a fifth in flight")
    assert.equal(4, w.sent)
  end)

  it("reads no count when the dict could store none: the worker's own count stands", function()
    local shared = signing.new("eip_signing")
    local prefix = shared:prefix(keys)
    dict.broken = true
    assert.is_nil(shared:take(prefix, 4, 30))
    assert.is_nil(shared:strike(prefix))
    local strikes, n, refused = shared:read(prefix)
    assert.same({ nil, 0, false }, { strikes, n, refused })
  end)

  -- The workers' count of logins without an answer lives a quarter of an hour after the last of
  -- them: it lived that long after the first, and a row going on past it started again from one
  -- (four logins without an answer, in a row, within two minutes).
  it("counts logins without an answer in a row for a quarter of an hour after the last", function()
    local shared = signing.new("eip_signing")
    local prefix = "iam:spec:"
    assert.equal(1, shared:login_unknown(prefix))
    t = t + 800
    assert.equal(2, shared:login_unknown(prefix))
    t = t + 200 -- (past the first's quarter of an hour, within the last's)
    assert.equal(3, shared:login_unknown(prefix))
    shared:login_answered(prefix)
    assert.equal(1, shared:login_unknown(prefix))
  end)

  describe("in a client", function()
    local fx = fixture.emulator()
    local emu

    setup(function() emu = fx.start() end)
    teardown(fx.stop)
    before_each(fx.reset)

    local function client(extra)
      local opts = { endpoint = emu.url, project_id = emu.project_id, ak = emu.ak, sk = emu.sk, max_attempts = 1,
        timeout = 5, signing_dict = "eip_signing" }
      for k, v in pairs(extra or {}) do opts[k] = v end
      if opts.signing_dict == false then opts.signing_dict = nil end -- (false: a client without it)
      return eip.new(opts)
    end

    -- Two workers with one IAM user: A's login got no answer, then B's login passed (which
    -- restarts the count for all), then A's next login got no answer: the first since a login
    -- passed, held as the first is (a few seconds), not as a second in a row (a minute, for every
    -- worker). A went by its own count, which the success elsewhere had not restarted.
    it("a login another worker passed restarts a worker's count of logins without an answer", function()
      local auth = require "eip.auth"
      local saved = auth.TRANSIENT_FAILURE_HOLD
      auth.TRANSIENT_FAILURE_HOLD = 0.2
      finally(function() auth.TRANSIENT_FAILURE_HOLD = saved end)
      local function iam_client()
        return eip.new{ endpoint = emu.url, project_id = emu.project_id, auth = emu:iam_auth(), max_attempts = 1,
          timeout = 5, signing_dict = "eip_signing" }
      end
      local a, b = iam_client(), iam_client()
      local function logins() return fixture.count_requests(emu, "POST") end
      emu:inject{ method = "POST", path = "/v3/auth/tokens$", action = "lose_answer" }
      assert.equal("transport", raised(a.delete_bandwidth, a, fixture.absent_id(1)).kind)
      t = t + 1 -- (the dict's hold of A's failure passes)
      socket.sleep(0.3) -- (and A's own)
      emu:inject{ method = "DELETE", status = 204 }
      assert.equal(204, b:delete_bandwidth(fixture.absent_id(2)).status)
      emu:inject{ method = "POST", path = "/v3/auth/tokens$", action = "lose_answer" }
      assert.equal("transport", raised(a.delete_bandwidth, a, fixture.absent_id(3)).kind)
      t = t + 1
      socket.sleep(0.3)
      local before = logins()
      emu:inject{ method = "DELETE", status = 204 }
      assert.equal(204, a:delete_bandwidth(fixture.absent_id(4)).status)
      assert.equal(before + 1, logins(), "A logged in again")
    end)

    -- A dict that cannot count must not reset the worker's own count of refusals: three
    -- refused, then nothing more is signed, as without the dict.
    it("stops after three refusals when the dict cannot count them", function()
      dict.broken = true
      local c = client()
      emu:set_clock_offset(3600)
      local outcomes = {}
      for i = 1, 5 do
        local err = raised(c.delete_bandwidth, c, fixture.absent_id(i))
        outcomes[i] = err.not_sent and "not sent" or err.status
      end
      emu:set_clock_offset(0)
      assert.same({ 401, 401, 401, "not sent", "not sent" }, outcomes)
      assert.same({ 3, 0 }, { emu:stats().auth_failures, emu:stats().aksk_locks })
    end)

    -- Two clients of one key (two workers): the refusals of one count for the other, and once
    -- three were refused neither signs again.
    it("shares the refusals of a key between clients (workers)", function()
      local a, b = client(), client()
      emu:set_clock_offset(3600)
      assert.equal(401, raised(a.delete_bandwidth, a, fixture.absent_id(1)).status)
      assert.equal(401, raised(b.delete_bandwidth, b, fixture.absent_id(2)).status)
      assert.equal(401, raised(a.delete_bandwidth, a, fixture.absent_id(3)).status)
      local err = raised(b.delete_bandwidth, b, fixture.absent_id(4))
      emu:set_clock_offset(0)
      assert.same({ true, 401, 0 }, { err.not_sent, err.status, err.attempts })
      assert.same({ 3, 0 }, { emu:stats().auth_failures, emu:stats().aksk_locks })
    end)

    -- Signed requests without an answer (eip.auth's "Answers lost") count for every worker as
    -- refusals do: three in a row, from either, and neither signs for the hold; then one
    -- request, whichever worker sends it, and its success frees both.
    it("shares the signed requests without an answer: three hold every worker, then one goes", function()
      local a, b = client{ timeout = 0.3 }, client{ timeout = 0.3 }
      emu:inject{ method = "DELETE", action = "hang", times = 3 }
      for i, c in ipairs{ a, b, a } do
        local e = raised(c.delete_bandwidth, c, fixture.absent_id(i))
        assert.same({ "transport", "timeout" }, { e.kind, e.reason }, i)
      end
      for _, c in ipairs{ a, b } do
        local e = raised(c.delete_bandwidth, c, fixture.absent_id(5))
        assert.same({ "refused", "unanswered", true }, { e.kind, e.reason, e.not_sent })
      end
      assert.equal(3, emu:stats().requests)
      local core = require "eip.core"
      local monotime = core.monotime
      core.monotime = function() return monotime() + 301 end
      t = t + 301
      local ok, err = pcall(function()
        local prefix = signing.new("eip_signing"):prefix{ ak = emu.ak, sk = emu.sk }
        local _, _, _, doubts, hold = signing.new("eip_signing"):read(prefix)
        assert.same({ 3 }, { doubts, hold }, "one place after the hold")
        assert.equal(404, raised(b.delete_bandwidth, b, fixture.absent_id(6)).status)
        _, _, _, doubts = signing.new("eip_signing"):read(prefix)
        assert.equal(0, doubts, "an answer that passed the check clears them for every worker")
        assert.equal(404, raised(a.delete_bandwidth, a, fixture.absent_id(7)).status)
      end)
      core.monotime = monotime
      assert(ok, err)
      assert.same({ 0, 0 }, { emu:stats().auth_failures, emu:stats().aksk_locks })
    end)

    -- A success that comes after refusals answers a request taken before them (its answer
    -- slow, the gateway's 401s quick): the gateway may have checked it first, so it says
    -- nothing of the count in a row. It once cleared the refusals, freed the places they had
    -- closed, and let five in a row be refused: the key locked for every user of it.
    it("a late success of a request taken before the refusals does not clear them", function()
      for _, dict_name in ipairs{ false, "eip_signing" } do
        emu:reset()
        local late = fixture.absent_id(9)
        emu:inject{ method = "DELETE", path = emu:delete_path(late), status = 204 } -- (its check passed)
        local refused_meanwhile, a = 0, nil
        a = client{ signing_dict = dict_name, on_request = function(info)
          if info.bandwidth_id ~= late or refused_meanwhile > 0 then return end
          -- While the request is on its way (its place taken), two others are refused.
          emu:set_clock_offset(3600)
          for i = 1, 2 do
            if raised(a.delete_bandwidth, a, fixture.absent_id(i)).status == 401 then
              refused_meanwhile = refused_meanwhile + 1
            end
          end
        end }
        assert.equal(204, a:delete_bandwidth(late).status)
        assert.equal(2, refused_meanwhile)
        -- (and another worker's client of the key; without the dict, the same client)
        local b = dict_name and client() or a
        local outcomes = {}
        for i = 3, 6 do
          local err = raised(i % 2 == 0 and a.delete_bandwidth or b.delete_bandwidth, i % 2 == 0 and a or b,
            fixture.absent_id(i))
          outcomes[#outcomes + 1] = err.not_sent and "not sent" or err.status
        end
        emu:set_clock_offset(0)
        assert.same({ 401, "not sent", "not sent", "not sent" }, outcomes, tostring(dict_name))
        assert.same({ 3, 0 }, { emu:stats().auth_failures, emu:stats().aksk_locks }, tostring(dict_name))
      end
    end)

    -- The same when the dict stops counting midway (full): the late request had the dict's
    -- number (7, after six calls), the refused ones the worker's own (1, 2). Compared across
    -- the two counters, the late success cleared the count, and the key was locked.
    it("a late success does not clear the refusals when the dict stopped counting meanwhile", function()
      local late, a, hooked = fixture.absent_id(9), nil, false
      a = client{ on_request = function(info)
        if info.bandwidth_id ~= late or hooked then return end
        hooked = true
        dict.broken = true -- full from now on
        emu:set_clock_offset(3600)
        for i = 1, 2 do raised(a.delete_bandwidth, a, fixture.absent_id(i)) end
      end }
      for i = 1, 6 do
        local id = fixture.absent_id(20 + i)
        emu:inject{ method = "DELETE", path = emu:delete_path(id), status = 204 }
        a:delete_bandwidth(id)
      end
      emu:inject{ method = "DELETE", path = emu:delete_path(late), status = 204 }
      assert.equal(204, a:delete_bandwidth(late).status)
      local outcomes = {}
      for i = 3, 6 do
        local err = raised(a.delete_bandwidth, a, fixture.absent_id(i))
        outcomes[#outcomes + 1] = err.not_sent and "not sent" or err.status
      end
      emu:set_clock_offset(0)
      assert.same({ 401, "not sent", "not sent", "not sent" }, outcomes)
      assert.same({ 3, 0 }, { emu:stats().auth_failures, emu:stats().aksk_locks })
    end)

    -- Emptying the dict once the cause is fixed lets every worker sign again (the README's way):
    -- each client kept the refusal it counted, or read from the dict, for good. Not one the dict
    -- could not store: that worker counted on its own, and nothing says its count went back.
    it("a refusal kept in the dict is lifted in every client once the dict is emptied", function()
      local function flush()
        for k in pairs(dict.store) do dict.store[k] = nil end
      end
      local function outcome(c, n)
        local err = raised(c.delete_bandwidth, c, fixture.absent_id(n))
        return err.not_sent and "not sent" or err.status
      end
      -- Three refused (one client's own refusal, the other's read from the dict); then a
      -- refusal and three answers lost (refused "unanswered", for good).
      for _, case in ipairs{ "refused", "unanswered" } do
        flush()
        emu:reset()
        local a, b = client{ timeout = 0.3 }, client{ timeout = 0.3 }
        emu:set_clock_offset(3600)
        if case == "refused" then
          assert.same({ 401, 401, 401 }, { outcome(a, 1), outcome(b, 2), outcome(a, 3) })
          emu:set_clock_offset(0)
        else
          assert.equal(401, outcome(a, 1))
          emu:set_clock_offset(0)
          emu:inject{ method = "DELETE", action = "hang", times = 3 }
          for i = 2, 4 do assert.equal("transport", raised((i % 2 == 0 and a or b).delete_bandwidth,
            i % 2 == 0 and a or b, fixture.absent_id(i)).kind) end
        end
        local sent = emu:stats().requests
        local err_a = raised(a.delete_bandwidth, a, fixture.absent_id(5))
        local err_b = raised(b.delete_bandwidth, b, fixture.absent_id(6))
        assert.same({ true, true }, { err_a.not_sent, err_b.not_sent }, case)
        assert.matches("flush_all", tostring(err_a.advice or err_a.message), 1, true)
        assert.equal(sent, emu:stats().requests, case .. ": nothing sent while refused")
        flush()
        assert.same({ 404, 404, 404 }, { outcome(a, 7), outcome(b, 8), outcome(a, 9) }, case)
      end
      -- A refusal the dict could not store (its set failed; the counts before it were stored).
      flush()
      emu:reset()
      local set = dict.set
      dict.set = function(d, k, ...)
        if k:find("refused$") then return false, "no memory" end
        return set(d, k, ...)
      end
      local c = client()
      emu:set_clock_offset(3600)
      local outcomes = { outcome(c, 1), outcome(c, 2), outcome(c, 3), outcome(c, 4) }
      emu:set_clock_offset(0)
      dict.set = set
      flush()
      outcomes[5] = outcome(c, 5)
      assert.same({ 401, 401, 401, "not sent", "not sent" }, outcomes)
      assert.same({ 3, 0 }, { emu:stats().auth_failures, emu:stats().aksk_locks })
    end)

    -- Emptying the dict does not reset the gateway's count of refusals in a row: lifted with no
    -- count, two workers sent three more refused signatures, and the key locked (six in a row).
    -- One request goes first; refused too, the key is refused again one refusal later.
    it("a dict emptied before the cause was fixed costs one refused signature, never the lock", function()
      for k in pairs(dict.store) do dict.store[k] = nil end
      emu:reset()
      local function outcome(c, n)
        local err = raised(c.delete_bandwidth, c, fixture.absent_id(n))
        return err.not_sent and "not sent" or err.status
      end
      local a, b = client(), client()
      emu:set_clock_offset(3600)
      assert.same({ 401, 401, 401, "not sent" }, { outcome(a, 1), outcome(b, 2), outcome(a, 3), outcome(b, 4) })
      for k in pairs(dict.store) do dict.store[k] = nil end -- (the cause is not fixed yet)
      local seen = {}
      for i = 5, 10 do seen[#seen + 1] = outcome(i % 2 == 0 and a or b, i) end
      assert.same({ 401, "not sent", "not sent", "not sent", "not sent", "not sent" }, seen)
      assert.same({ 4, 0 }, { emu:stats().auth_failures, emu:stats().aksk_locks })
      emu:set_clock_offset(0) -- fixed now, and emptied again: one request, then all of them
      for k in pairs(dict.store) do dict.store[k] = nil end
      assert.same({ 404, 404, 404 }, { outcome(b, 11), outcome(a, 12), outcome(b, 13) })
      assert.same({ 4, 0 }, { emu:stats().auth_failures, emu:stats().aksk_locks })
    end)

    -- The places a client held go back when its calls end: a second client of the key finds
    -- them all free.
    -- Two workers with a wrong password: the first one's login failed (its answer lost: held for
    -- all) between the second's look at the dict and its taking the right to log in. The second
    -- then sent the wrong password too (seen once in CI). What the first met stands for it.
    it("a login failure another worker held between the look and the take stands: one login sent", function()
      emu:inject{ method = "POST", path = "/v3/auth/tokens$", action = "lose_answer", times = -1 }
      local auth = emu:iam_auth{ password = "a-wrong-password-of-the-spec" }
      local function iam_client()
        return eip.new{ endpoint = emu.url, auth = auth, max_attempts = 1, timeout = 5, signing_dict = "eip_signing" }
      end
      local a = iam_client()
      assert.equal("transport", raised(a.delete_bandwidth, a, "bw-1").kind)
      assert.equal(1, emu:stats().auth_failures)
      -- (the hold as the first worker wrote it, taken away until the second takes its turn)
      local held_key, held
      for k, e in pairs(dict.store) do
        if k:find("held$") then held_key, held = k, e end
      end
      assert.is_not_nil(held, "the first worker held its failure for all")
      dict.store[held_key] = nil
      local add = dict.add
      dict.add = function(d, k, ...)
        if k:find("login$") and held then dict.store[held_key], held = held, nil end
        return add(d, k, ...)
      end
      local b = iam_client()
      local err = raised(b.delete_bandwidth, b, "bw-1")
      dict.add = add
      assert.matches("another nginx worker's login", tostring(err))
      assert.equal(1, emu:stats().auth_failures, "one wrong password sent between the two")
    end)

    -- Another worker logs in with the same IAM user: a call that cannot yield (log_by_lua) does
    -- not wait for it, and fails not sent. One in nginx's master (init_by_lua) or in
    -- init_worker_by_lua, where the process serves no request, waits for it (the system's sleep):
    -- a reload's start-up check in init_by_lua, made while a worker logged in, failed at once, and
    -- nginx kept its old configuration. (The other worker's login: the key `login` taken at the
    -- call's first look, its login passed at the first wait.)
    it("in init_by_lua and init_worker_by_lua a login waits for another worker's, elsewhere fails", function()
      local transport = require "eip.transport"
      local ngx, sleep = rawget(_G, "ngx"), transport.sleep
      local function during_login(phase)
        local waits, other = 0, nil
        local add = dict.add
        dict.add = function(d, k, v, ttl)
          if not other and k:find(":login$") then
            other = k
            dict.store[k] = { v = "9999:1" }
            return false, "exists"
          end
          return add(d, k, v, ttl)
        end
        transport.sleep = function()
          waits = waits + 1
          dict.store[other] = nil
          dict.store[other:gsub("login$", "ok")] = { v = true, exp = t + 5 }
        end
        ngx.get_phase = function() return phase end
        local c = eip.new{ endpoint = emu.url, project_id = emu.project_id, auth = emu:iam_auth(), max_attempts = 1,
          timeout = 5, signing_dict = "eip_signing" }
        local ok, res = pcall(c.delete_bandwidth, c, emu:create_bandwidth())
        dict.add, transport.sleep, ngx.get_phase = add, sleep, nil
        for k in pairs(dict.store) do dict.store[k] = nil end
        return ok, res, waits
      end
      local ok, res, waits = during_login("log")
      assert.is_false(ok)
      assert.same({ true, 0 }, { res.not_sent, waits }, tostring(res))
      assert.matches("another nginx worker is logging in", tostring(res), 1, true)
      for _, phase in ipairs{ "init", "init_worker" } do
        ok, res, waits = during_login(phase)
        assert(ok, tostring(res))
        assert.same({ 204, 1 }, { res.status, waits }, phase)
      end
    end)

    -- The wait there is bounded by the call's time, its deadline among it (the time its
    -- credentials take counts in it): with deadline = 1 it waited the login's whole time (its
    -- timeout and a second, 21 s) for a worker whose login did not end, nginx's master blocked.
    it("in init_by_lua the wait for another worker's login ends with the call's deadline", function()
      local transport, core = require "eip.transport", require "eip.core"
      local ngx, sleep, monotime, add = rawget(_G, "ngx"), transport.sleep, core.monotime, dict.add
      local waited = 0
      dict.add = function(d, k, v, ttl)
        if k:find(":login$") then -- (another worker's login, that does not end)
          dict.store[k] = { v = "9999:1" }
          return false, "exists"
        end
        return add(d, k, v, ttl)
      end
      core.monotime = function() return monotime() + waited end
      transport.sleep = function(seconds) waited = waited + seconds end
      ngx.get_phase = function() return "init" end
      local c = eip.new{ endpoint = emu.url, project_id = emu.project_id, auth = emu:iam_auth(), max_attempts = 1,
        timeout = 20, deadline = 1, signing_dict = "eip_signing" }
      local ok, err = pcall(c.delete_bandwidth, c, emu:create_bandwidth())
      dict.add, transport.sleep, ngx.get_phase, core.monotime = add, sleep, nil, monotime
      for k in pairs(dict.store) do dict.store[k] = nil end
      assert.is_false(ok)
      assert.is_true(err.not_sent, tostring(err))
      assert.is_true(waited > 0.5 and waited < 1.1, "waited " .. waited .. " s")
    end)

    it("gives every place back once the calls are answered", function()
      local a = client()
      local _, summary = a:delete_bandwidths({ fixture.absent_id(1), fixture.absent_id(2), fixture.absent_id(3) },
        { missing_ok = true })
      assert.equal(3, summary.missing)
      local _, n = signing.new("eip_signing"):read(signing.new("eip_signing"):prefix({ ak = emu.ak, sk = emu.sk }))
      assert.equal(0, n)
    end)
  end)
end)
