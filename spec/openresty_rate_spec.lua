-- Inside nginx, several workers share one rate budget: the bucket lives in a lua_shared_dict
-- (rate_dict), so two workers deleting at once stay together under the limit that one would.
local cjson = require "cjson"
local socket = require "socket"
local fixture = require "spec.support.fixture"
local emulator = require "spec.support.emulator"
local launcher = require "spec.support.openresty.launcher"

describe("OpenResty: a rate shared by the workers #openresty", function()
  local fx = fixture.emulator()
  local emu, app

  setup(function()
    emu = fx.start()
    app = launcher.start(emu, { timeout = 5, workers = 2 })
  end)
  teardown(function()
    if app then app:stop() end
    fx.stop()
  end)
  before_each(fx.reset)

  local function call(method, path, body)
    local resp = assert(emulator.http{ port = app.port, method = method, path = path, timeout = 10,
      body = body and cjson.encode(body) or nil, headers = body and { ["Content-Type"] = "application/json" } })
    assert.equal(200, resp.status, resp.body .. "\n" .. app:log_tail(15))
    return cjson.decode(resp.body)
  end

  -- The summaries of both workers for the job of `generation` (see testapp's shared_rate), once
  -- both are there.
  local function job_results(generation)
    local results
    local deadline = socket.gettime() + 30
    repeat
      socket.sleep(0.1)
      results = call("GET", "/t/shared_rate?generation=" .. generation)
      assert(socket.gettime() < deadline, "the workers did not finish: " .. cjson.encode(results))
    until results["0"] and results["1"]
    return results
  end

  -- Both workers' batches, with the client's shared rate alone or also a rate of their own
  -- (the batch's rate adds a limit of its own; the shared budget still holds: one under its
  -- share of the budget took its shared slot with its own, went at its own, and together with
  -- the other worker's next request, 14 pairs of 30 requests)
  for _, case in ipairs{ { name = "the client's rate" }, { name = "a batch's rate as well", batch_rate = 18 },
    { name = "a batch's rate under its share", batch_rate = 4 } } do
  it("two workers at once keep together to the rate, and the gateway refuses nothing: " .. case.name, function()
    -- The gateway's limit: one request more in a second is refused. The budget leaves it 40%:
    -- requests late by a stall of the gateway's worker land in the next second's window, and
    -- only a stall of most of a second could crowd more than the limit into one. Workers that
    -- did not share it would go at twice the rate, well over the limit.
    local limit, rate, per_worker = 20, 12, 15
    emu:set_knobs{ throttle_rate = limit }
    local ids = { emu:create_bandwidths(per_worker), emu:create_bandwidths(per_worker) }
    emu:reset_counters()
    local results = job_results(call("POST", "/t/shared_rate", { rate = rate, batch_rate = case.batch_rate,
      ids = ids }).generation)
    for worker = 0, 1 do
      assert.equal(per_worker, results[tostring(worker)].deleted, "worker " .. worker)
    end
    assert.equal(0, emu:stats().throttled)
    -- Every one-second window of the gateway saw at most `rate` requests of both workers together.
    local per_second = {}
    for _, r in ipairs(emu:requests()) do
      if r.method == "DELETE" then
        local second = math.floor(r.time)
        per_second[second] = (per_second[second] or 0) + 1
      end
    end
    for second, n in pairs(per_second) do
      assert.is_true(n <= limit, n .. " requests in the second " .. second)
    end
    -- And no two went together: a worker never starts a request before the slot the shared
    -- bucket gave it, even when the other worker took the slot it had been waiting for. Timed
    -- where the requests start (both workers share one clock), not where the gateway's worker
    -- stamps them, late whenever it stalls. (A quarter of the interval leaves room for
    -- scheduling; the one pair allowed is the start, where both workers may find the bucket
    -- idle at once.)
    local times = {}
    for worker = 0, 1 do
      for _, t in ipairs(results[tostring(worker)].starts) do times[#times + 1] = t end
    end
    assert.equal(2 * per_worker, #times)
    table.sort(times)
    local together = 0
    for i = 2, #times do
      if times[i] - times[i - 1] < 0.25 / rate then together = together + 1 end
    end
    assert.is_true(together <= 1, together .. " pairs of requests went together")
  end)
  end

  -- Workers that came back together to the shared bucket left idle each found it idle and set it
  -- to now: all went together, whatever the burst. The real dict's operations, taking turns
  -- (see testapp's pace_idle): at most the burst go at once, the others one interval apart; at
  -- 700,000 requests a second too, whose interval (1.43 us) the dict once kept as 1 us.
  it("workers that find the shared bucket idle at once go at most its burst together", function()
    for _, case in ipairs{ { burst = 1, rate = 10 }, { burst = 2, rate = 10 }, { burst = 1, rate = 7e5 } } do
      local waits = call("GET", string.format("/t/pace_idle?workers=4&burst=%d&rate=%d", case.burst, case.rate)).waits
      assert.equal(4, #waits)
      for k, wait in ipairs(waits) do
        local serial = math.max(0, (k - case.burst) / case.rate)
        assert.is_true(math.abs(wait - serial) < 1e-3 / case.rate, cjson.encode(case) .. ": " .. cjson.encode(waits))
      end
    end
  end)

  -- Both workers sign with one key, each with a client of its own, at concurrency 8, and the key
  -- starts being refused (X-Sdk-Date an hour off) once the first requests went. Each client
  -- alone would keep four in flight: eight refused, a locked key. With signing_dict the workers
  -- share the four places and the three refusals: at most four refused together.
  it("two workers signing with one key share its four places and three refusals (signing_dict)", function()
    local per_worker = 20
    emu:set_knobs{ aksk_lock_after = 5 }
    local ids = { emu:create_bandwidths(per_worker), emu:create_bandwidths(per_worker) }
    emu:inject{ method = "DELETE", action = "slow", delay = 0.3, times = -1 }
    emu:reset_counters()
    local generation = call("POST", "/t/shared_rate", { ids = ids,
      aksk = { ak = emu.ak, sk = emu.sk, signing_dict = "eip_signing" } }).generation
    local deadline = socket.gettime() + 10
    while emu:stats().requests < 3 do
      assert(socket.gettime() < deadline, "the workers sent nothing")
      socket.sleep(0.01)
    end
    emu:set_clock_offset(3600)
    local results = job_results(generation)
    emu:set_clock_offset(0)
    local stats = emu:stats()
    assert.is_true(stats.auth_failures >= 1, "the key was never refused: the case tested nothing")
    assert.is_true(stats.auth_failures <= 4, "refused signatures: " .. stats.auth_failures .. " "
      .. cjson.encode(results) .. app:log_tail(30))
    assert.equal(0, stats.aksk_locks)
    for worker = 0, 1 do assert.equal("auth", results[tostring(worker)].stopped, "worker " .. worker) end
  end)

  -- Posts an IAM job (see testapp: each worker's client of its own, a batch of its ids) and
  -- returns the workers' summaries.
  local function iam_job(ids, iam)
    return job_results(call("POST", "/t/shared_rate", { ids = ids, iam = iam }).generation)
  end

  -- Each worker's client logged in once with a wrong password: as many failed logins as workers
  -- (five workers, a locked IAM user). With signing_dict the workers log in one at a time until
  -- one login has passed, and share what IAM said: a refusal, or a login without an answer (IAM
  -- may have counted it), held for all.
  it("two workers logging in with a wrong password send one login between them (signing_dict)", function()
    for _, lost in ipairs{ false, true } do
      fx.reset()
      if lost then emu:inject{ method = "POST", path = "/v3/auth/tokens$", action = "lose_answer", times = -1 } end
      local ids = { emu:create_bandwidths(3), emu:create_bandwidths(3) }
      emu:reset_counters()
      local results = iam_job(ids, { auth = emu:iam_auth{ password = "a-wrong-password-of-the-spec" },
        signing_dict = "eip_signing", timeout = 3 })
      local stats = emu:stats()
      assert.equal(1, stats.auth_failures, (lost and "lost: " or "") .. "failed logins "
        .. cjson.encode(results) .. app:log_tail(30))
      assert.equal(0, stats.tokens_issued)
      for worker = 0, 1 do
        local r = results[tostring(worker)]
        assert.same({ 0, 3 }, { r.deleted, r.not_sent + r.failed }, "worker " .. worker)
      end
    end
  end)

  -- A login that passed let every worker log in at once for 15 minutes: a password changed at
  -- IAM meanwhile (a rotation) was then sent, wrong, by every worker.
  it("a password changed at IAM after a login is still sent once between the workers (signing_dict)", function()
    local ids = { emu:create_bandwidths(1), emu:create_bandwidths(1) }
    local results = iam_job(ids, { auth = emu:iam_auth(), signing_dict = "eip_signing", timeout = 1 })
    assert.same({ 1, 1 }, { results["0"].deleted, results["1"].deleted }, cjson.encode(results))
    socket.sleep(2.2) -- (past the one attempt's time during which waiting workers go together)
    local iam = emu.iam
    local function user(password)
      return { { username = iam.username, password = password, domain = iam.domain, project = iam.project,
        project_id = emu.project_id } }
    end
    emu:set_users(user("a-new-password-set-in-the-console"))
    local ok, err = pcall(function()
      emu:inject{ method = "POST", path = "/v3/auth/tokens$", action = "slow", delay = 0.3, times = -1 }
      ids = { emu:create_bandwidths(2), emu:create_bandwidths(2) }
      emu:reset_counters()
      -- (the dict kept: a job flushes it, but for keep_dict)
      results = iam_job(ids, { auth = emu:iam_auth(), signing_dict = "eip_signing", timeout = 1, keep_dict = true })
      assert.equal(1, emu:stats().auth_failures, cjson.encode(results) .. app:log_tail(20))
    end)
    emu:set_users(user(iam.password))
    assert(ok, err)
  end)

  -- The workers waiting for a first login must not fail for it: the wait counts in what a call
  -- waits for a token (it failed "no IAM token after waiting 1.0 s" though IAM answered in time).
  it("two workers with a right password and a slow IAM both log in and delete (signing_dict)", function()
    fx.reset()
    emu:inject{ method = "POST", path = "/v3/auth/tokens$", action = "slow", delay = 0.7, times = -1 }
    local ids = { emu:create_bandwidths(3), emu:create_bandwidths(3) }
    local results = iam_job(ids, { auth = emu:iam_auth(), signing_dict = "eip_signing", timeout = 1 })
    for worker = 0, 1 do
      assert.equal(3, results[tostring(worker)].deleted, "worker " .. worker .. ": " .. cjson.encode(results))
    end
    assert.equal(2, emu:stats().tokens_issued)
  end)

  -- The logins take their slots of the shared rate like any request, before the calls that wait
  -- for them take theirs. Each call took its slot first, then waited for the login, which took
  -- the next free one: the deletes waiting for it went out at once behind it (their slots long
  -- passed), three requests within 2 ms in each worker.
  for _, case in ipairs{ { name = "single calls at once", calls = true }, { name = "a batch" } } do
  it("two workers' IAM logins and the calls waiting for them keep to the shared rate: " .. case.name, function()
    local rate = 4
    local ids = { emu:create_bandwidths(3), emu:create_bandwidths(3) }
    emu:reset_counters()
    local results = iam_job(ids, { auth = emu:iam_auth(), signing_dict = "eip_signing", rate = rate,
      calls = case.calls })
    local starts = {}
    for worker = 0, 1 do
      local r = results[tostring(worker)]
      assert.equal(3, r.deleted, "worker " .. worker .. ": " .. cjson.encode(results))
      for _, s in ipairs(r.starts) do starts[#starts + 1] = { method = s[1], time = s[2], worker = worker } end
    end
    assert.equal(8, #starts, cjson.encode(results)) -- a login and three deletes in each worker
    table.sort(starts, function(a, b) return a.time < b.time end)
    -- (as above: a quarter of the interval for scheduling; one pair allowed, at the start)
    local together = {}
    for i = 2, #starts do
      local a, b = starts[i - 1], starts[i]
      if b.time - a.time < 0.25 / rate then
        together[#together + 1] = string.format("%s (worker %d) and %s (worker %d) %.3f s apart", a.method, a.worker,
          b.method, b.worker, b.time - a.time)
      end
    end
    assert.is_true(#together <= 1, #together .. " pairs went together: " .. table.concat(together, "; "))
  end)
  end

  -- The same with the ECS metadata service's temporary keys, in single calls each worker's client
  -- makes at once, from its first: calls admitted before any key was fetched took no place in
  -- the workers' shared counts, and the 401s that came while a worker renewed its keys were
  -- counted in that worker alone (eight refused, a locked key).
  -- A shared client named `name` with `options` in each of the two workers.
  local function client_in_each_worker(name, options)
    local pids, n = {}, 0
    for _ = 1, 60 do -- (whichever worker answers)
      local made = call("POST", "/t/shared_client/" .. name, options)
      if not pids[made.pid] then pids[made.pid], n = true, n + 1 end
      if n == 2 then break end
    end
    assert.equal(2, n, "a client in each worker")
  end

  it("two workers signing with the metadata service's keys share places and refusals from the first call", function()
    emu:set_knobs{ aksk_lock_after = 5, metadata_same_keys = 1 }
    client_in_each_worker("meta", { endpoint = emu.url, project_id = emu.project_id, metadata_url = emu.metadata_url,
      timeout = 5, signing_dict = "eip_signing" })
    local ids = emu:create_bandwidths(40)
    emu:reset_counters()
    emu:set_clock_offset(3600) -- every signature refused from the first
    local socks = {}
    for i, id in ipairs(ids) do
      local sock = socket.tcp()
      sock:settimeout(5)
      assert(sock:connect("127.0.0.1", app.port))
      assert(sock:send("GET /t/shared/meta/" .. id .. " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"))
      socks[i] = sock
    end
    local answered = 0
    for _, sock in ipairs(socks) do
      sock:settimeout(20)
      local text = sock:receive("*a")
      sock:close()
      if text and text:find('"is_error":true', 1, true) then answered = answered + 1 end
    end
    emu:set_clock_offset(0)
    local stats = emu:stats()
    assert.equal(40, answered, "every call ended with an eip error")
    assert.is_true(stats.auth_failures >= 1, "the key was never refused: the case tested nothing")
    assert.is_true(stats.auth_failures <= 4, "refused signatures: " .. stats.auth_failures .. app:log_tail(30))
    assert.equal(0, stats.aksk_locks)
  end)

  -- Temporary keys refused three times, then due for renewal: the call that renewed them went out
  -- without a place (refused keys took none), beside four calls that took the new key's four
  -- places as soon as it came: five refused with the new key, locked. Renewed before the calls
  -- take their places now. (Every DELETE is answered 401 here: what counts is how many went out
  -- with each key.)
  it("renewed temporary keys of refused ones: their first requests keep to the four places too", function()
    emu:set_knobs{ aksk_lock_after = 5, metadata_same_keys = 1, metadata_credential_ttl = 4 }
    client_in_each_worker("renew", { endpoint = emu.url, project_id = emu.project_id,
      metadata_url = emu.metadata_url, timeout = 5, signing_dict = "eip_signing", max_attempts = 1 })
    emu:inject{ method = "DELETE", status = 401, times = -1,
      body = { error_code = "APIGW.0301", error_msg = "Incorrect IAM authentication information" } }
    local function burst(count)
      local socks = {}
      for i = 1, count do
        local sock = socket.tcp()
        sock:settimeout(5)
        assert(sock:connect("127.0.0.1", app.port))
        assert(sock:send("GET /t/shared/renew/" .. fixture.absent_id(i) .. " HTTP/1.1\r\nHost: 127.0.0.1\r\n"
          .. "Connection: close\r\n\r\n"))
        socks[i] = sock
      end
      for _, sock in ipairs(socks) do
        sock:settimeout(20)
        sock:receive("*a")
        sock:close()
      end
    end
    local started = socket.gettime()
    burst(12) -- the first keys: fetched, refused three times
    socket.sleep(math.max(0, started + 4.5 - socket.gettime())) -- they expired: the next fetch is a new pair
    burst(12)
    local by_key = {}
    for _, r in ipairs(emu:requests()) do
      local ak = r.method == "DELETE" and (r.headers.authorization or ""):match("Access=([^,]+)")
      if ak then by_key[ak] = (by_key[ak] or 0) + 1 end
    end
    local keys = 0
    for ak, sent in pairs(by_key) do
      keys = keys + 1
      assert.is_true(sent <= 4, sent .. " signed with " .. ak:sub(1, 8) .. "...")
    end
    assert.is_true(keys >= 2, "the keys were renewed")
  end)

  -- A key refused three times is signed with by no worker, until the dict is emptied once the
  -- cause is fixed (the README's way, and eip.signing's). Each worker's client kept its own
  -- refusal (its own, or the one it read from the dict) for good: the dict emptied, every call
  -- still failed at once, not sent, until nginx restarted.
  it("a key refused in the signing_dict signs again in every worker once the dict is emptied", function()
    emu:set_knobs{ aksk_lock_after = 5 }
    local function flush() assert.is_true(call("POST", "/t/dict_set", { dict = "eip_signing", flush = true }).ok) end
    flush() -- (other cases' refusals of the same key)
    client_in_each_worker("flush", { endpoint = emu.url, project_id = emu.project_id, ak = emu.ak, sk = emu.sk,
      timeout = 5, max_attempts = 1, signing_dict = "eip_signing" })
    local ids = emu:create_bandwidths(60)
    local next_id = 0
    local function delete()
      next_id = next_id + 1
      return call("GET", "/t/shared/flush/" .. ids[next_id])
    end
    -- Until both workers refused a call, not sent: one on its own refusals, the other on the
    -- dict's (the refusal each holds differs: its own, stored in the dict, or one read from it).
    emu:set_clock_offset(3600) -- every signature refused (X-Sdk-Date an hour off)
    local refused, outs = {}, {}
    local ok, err = pcall(function()
      while not (next(refused) and next(refused, next(refused))) do
        assert(next_id < 30, "both workers refused: " .. cjson.encode(outs))
        local out = delete()
        outs[#outs + 1] = out
        assert.is_false(out.ok, cjson.encode(out))
        if out.error.not_sent then refused[out.pid] = true end
      end
    end)
    emu:set_clock_offset(0)
    assert(ok, err)
    assert.equal(3, emu:stats().auth_failures, cjson.encode(outs))
    -- The clock fixed and the dict emptied: every call goes, in both workers.
    flush()
    local deleted = {}
    for _ = 1, 30 do
      local out = delete()
      assert.is_true(out.ok, cjson.encode(out) .. app:log_tail(10))
      assert.equal(204, out.status)
      deleted[out.pid] = true
      if next(deleted) and next(deleted, next(deleted)) then break end
    end
    assert.is_truthy(next(deleted) and next(deleted, next(deleted)), "both workers deleted")
    local stats = emu:stats()
    assert.same({ 3, 0 }, { stats.auth_failures, stats.aksk_locks })
  end)

  -- A metadata service whose clock is behind hands out keys that are due for renewal as they
  -- come: a call inside nginx fetched them again and again, for ever (thousands a second).
  it("temporary keys not fresh as they come are used, not fetched again and again", function()
    emu:set_clock_offset(-3600)
    local out = call("POST", "/t/client", { id = fixture.absent_id(1), options = { endpoint = emu.url,
      project_id = emu.project_id, metadata_url = emu.metadata_url, timeout = 3, max_attempts = 1 } })
    emu:set_clock_offset(0)
    assert.is_false(out.ok == true and out.result and out.result.deleted == true, "nothing was deleted")
    local issued = emu:stats().metadata_credentials_issued
    -- (the call's, the 401's renewal, whose keys are the same, each asked once more when they came
    -- in their last second by this clock: a handful, not thousands)
    assert.is_true(issued >= 1 and issued <= 4, issued .. " keys fetched for one call")
  end)

  -- The dict's incr fails when the key holds something else than a number (another user of the
  -- dict), or when the dict is full: the calls go on at each worker's share of the rate, never
  -- failing with a raw Lua error.
  it("a dict that cannot hold the bucket (its key taken by something else): the calls still go", function()
    assert.is_true(call("POST", "/t/dict_set", { dict = "eip_rate", key = "eip:pace", value = "not a number" }).ok)
    local ok, err = pcall(function()
      for _ = 1, 2 do -- whichever worker answers
        local id = emu:create_bandwidth{ size = 1 }
        local out = call("POST", "/t/client", { id = id, options = { endpoint = emu.url, project_id = emu.project_id,
          token = emu.token, timeout = 5, rate = 50, rate_dict = "eip_rate" } })
        assert.is_true(out.ok, cjson.encode(out))
        assert.equal(204, out.result.status)
        assert.is_nil(emu:get_bandwidth(id))
      end
    end)
    call("POST", "/t/dict_set", { dict = "eip_rate", key = "eip:pace", value = cjson.null })
    assert(ok, err)
  end)
end)
