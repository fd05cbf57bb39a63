-- Hooks and metrics: on_request / on_response see every attempt of every request the library
-- makes (IAM, show, list, remove, delete; single calls and batches), never a secret, and a hook
-- that raises does not break the call; the debug log's request URLs hold no secret; eip.metrics
-- counts them for Prometheus, and inside nginx every worker counts into one lua_shared_dict.
local cjson = require "cjson"
local socket = require "socket"
local eip = require "eip"
local fixture = require "spec.support.fixture"
local emulator = require "spec.support.emulator"

-- A recorder of both hooks: seen = { {"request", info}, {"response", info}, ... }.
local function recorder()
  local r = { seen = {} }
  r.on_request = function(info) r.seen[#r.seen + 1] = { "request", info } end
  r.on_response = function(info) r.seen[#r.seen + 1] = { "response", info } end
  return r
end

describe("a client's hooks and debug log", function()
  local fx = fixture.emulator()
  local emu

  setup(function() emu = fx.start() end)
  teardown(fx.stop)
  before_each(fx.reset)

  describe("hooks", function()
    it("see every attempt of a retried call, and whether a retry follows", function()
      local r = recorder()
      local c = fx.client{ on_request = r.on_request, on_response = r.on_response, sleep = function() end }
      local id = emu:create_bandwidth{ size = 1 }
      emu:inject{ method = "DELETE", status = 503, body = { code = "VPC.0302", message = "Neutron Error." } }
      c:delete_bandwidth(id)
      assert.equal(4, #r.seen)
      local a, b, c2, d = r.seen[1], r.seen[2], r.seen[3], r.seen[4]
      assert.same({ "request", "delete_bandwidth", "DELETE", id, 1 }, { a[1], a[2].operation, a[2].method,
        a[2].bandwidth_id, a[2].attempt })
      assert.same({ "response", 503, "VPC.0302", "http", true, 1 }, { b[1], b[2].status, b[2].code, b[2].outcome,
        b[2].retry, b[2].attempt })
      assert.same({ "request", 2 }, { c2[1], c2[2].attempt })
      assert.same({ "response", 204, "ok", false, 2 }, { d[1], d[2].status, d[2].outcome, d[2].retry, d[2].attempt })
      assert.is_number(d[2].elapsed)
      assert.is_string(d[2].request_id)
      assert.equal("/v2.0/" .. emu.project_id .. "/bandwidths/" .. id, d[2].path)
    end)

    it("see IAM, show, list, remove and batches, and nothing secret", function()
      local r = recorder()
      local c = eip.new{ endpoint = emu.url, auth = emu:iam_auth(), on_request = r.on_request,
        on_response = r.on_response }
      local id = emu:create_bandwidth{ size = 5, publicip_ids = { "eip-1" } }
      c:show_bandwidth(id)
      c:list_bandwidths()
      c:remove_eips_from_bandwidth(id, { "eip-1" }, { charge_mode = "bandwidth", size = 1 })
      c:delete_bandwidths({ id, "gone-1" }, { missing_ok = true })
      c:close()
      local ops = {}
      for _, s in ipairs(r.seen) do
        if s[1] == "response" then ops[s[2].operation] = (ops[s[2].operation] or 0) + 1 end
      end
      assert.same({ iam_token = 1, show_bandwidth = 1, list_bandwidths = 2, remove_eips_from_bandwidth = 1,
        delete_bandwidth = 2 }, ops)
      local text = cjson.encode(r.seen)
      for _, secret in ipairs{ emu.iam.password, emu.token, "MIIemu" } do
        assert.is_nil(text:find(secret, 1, true), "a secret reached a hook")
      end
    end)

    -- A 401 that makes a new IAM token: its on_response came only after the whole token request
    -- (hooks saw the delete, the token's request and answer, then the delete's 401).
    it("see a 401's answer before the new token's request", function()
      local r = recorder()
      local c = eip.new{ endpoint = emu.url, auth = emu:iam_auth(), on_request = r.on_request,
        on_response = r.on_response }
      assert.equal(204, c:delete_bandwidth(emu:create_bandwidth{ size = 1 }).status)
      emu:expire_tokens()
      r.seen = {}
      assert.equal(204, c:delete_bandwidth(emu:create_bandwidth{ size = 1 }).status)
      c:close()
      local order = {}
      for _, e in ipairs(r.seen) do
        order[#order + 1] = e[1] .. " " .. e[2].operation .. (e[2].status and (" " .. e[2].status) or "")
      end
      assert.same({ "request delete_bandwidth", "response delete_bandwidth 401", "request iam_token",
        "response iam_token 201", "request delete_bandwidth", "response delete_bandwidth 204" }, order)
    end)

    -- A 401 whose new token will not be asked for (the token a 401 made, never passed): no
    -- retry follows, and on_response says so (it said retry = true).
    it("say no retry follows a 401 whose credentials will not be renewed", function()
      local r = recorder()
      local c = eip.new{ endpoint = emu.url, project_id = emu.project_id, auth = emu:iam_auth(), max_attempts = 1,
        on_response = r.on_response }
      emu:inject{ method = "DELETE", status = 401, times = -1,
        body = { error_code = "APIGW.0301", error_msg = "Incorrect IAM authentication information" } }
      pcall(c.delete_bandwidth, c, fixture.absent_id(1)) -- 401, a new token, 401
      r.seen = {}
      local ok, err = pcall(c.delete_bandwidth, c, fixture.absent_id(2))
      c:close()
      assert.same({ false, 401, 1 }, { ok, err.status, err.attempts })
      local seen = r.seen[1][2]
      assert.same({ "delete_bandwidth", 401, false }, { seen.operation, seen.status, seen.retry })
      assert.equal(1, #r.seen)
    end)

    it("that raise do not break the call; their error goes to the debug log", function()
      local lines = {}
      local c = fx.client{ on_request = function() error("hook bug " .. emu.token) end,
        on_response = function() error({ "not even a string" }) end,
        log = function(line) lines[#lines + 1] = line end }
      assert.equal(204, c:delete_bandwidth(emu:create_bandwidth{ size = 1 }).status)
      local text = table.concat(lines, "\n")
      assert.matches("a hook raised an error: .*hook bug <redacted>", text)
      assert.matches("a hook raised an error: table", text)
      assert.is_nil(text:find(emu.token, 1, true))
    end)

    it("that raise a value which cannot be shown still do not break the call", function()
      local unshowable = setmetatable({}, { __tostring = function() error("boom") end })
      local lines = {}
      local c = fx.client{ on_response = function() error(unshowable) end,
        log = function(line) lines[#lines + 1] = line end }
      assert.equal(204, c:delete_bandwidth(emu:create_bandwidth{ size = 1 }).status)
      local _, summary = c:delete_bandwidths({ emu:create_bandwidth{ size = 1 }, emu:create_bandwidth{ size = 1 } })
      assert.equal(2, summary.deleted)
      assert.matches("a hook raised an error: a table whose __tostring failed", table.concat(lines, "\n"))
    end)

    it("are usage errors when not functions", function()
      for _, hook in ipairs{ "on_request", "on_response" } do
        local ok, err = pcall(eip.new, fx.options{ [hook] = "print" })
        assert.is_false(ok)
        assert.equal(hook, err.argument)
      end
    end)

    -- Each request that went out has its on_response: a listing page over max_body (asked
    -- again in smaller pages), a batch aborted with requests in flight, a batch whose on_result
    -- raised. Each once had none (9 of 18 list pages; the aborted ones), and metrics missed them.
    it("report every request that went out, also those whose answer was not used or not waited for", function()
      local counts = function(r)
        local n = { request = 0, response = 0 }
        for _, e in ipairs(r.seen) do n[e[1]] = n[e[1]] + 1 end
        return n
      end
      local r = recorder()
      local c = fx.client{ on_request = r.on_request, on_response = r.on_response, max_body = 4096 }
      for _ = 1, 8 do
        local eips = {}
        for j = 1, 20 do eips[j] = string.format("eip-%s-%02d", tostring(math.random(1e9)), j) end
        emu:create_bandwidth{ size = 5, publicip_ids = eips }
      end
      emu:reset_counters()
      local list, info = c:list_bandwidths()
      assert.same({ 8, true }, { #list, info.smaller_pages ~= nil })
      local n = counts(r)
      assert.same({ emu:stats().requests, emu:stats().requests }, { n.request, n.response })
      local cut = 0
      for _, e in ipairs(r.seen) do if e[1] == "response" and e[2].outcome == "http" then cut = cut + 1 end end
      assert.is_true(cut > 0, "the pages over max_body are reported")

      for _, how in ipairs{ "abort", "raise", "abort, then raise" } do
        r = recorder()
        local ids = emu:create_bandwidths(4)
        emu:reset_counters()
        for i = 2, 4 do emu:inject{ method = "DELETE", path = emu:delete_path(ids[i]), action = "slow", delay = 2 } end
        local done = 0
        local bc = fx.client{ on_request = r.on_request, on_response = r.on_response }
        -- (the first goes alone; the three slow ones are in flight once four were sent)
        pcall(bc.delete_bandwidths, bc, ids, { concurrency = 4,
          cancel = function() return how:find("^abort") and counts(r).request == 4 and "abort" or nil end,
          on_result = function(_, _, entry)
            done = done + 1
            if how == "raise" and done == 2 then error("the caller's own failure", 0) end
            -- (raised while the abort's jobs are finished: they were reported once, not again)
            if how == "abort, then raise" and entry.kind == "interrupted" then error("the caller's own failure", 0) end
          end })
        n = counts(r)
        assert.same({ 4, 4 }, { n.request, n.response }, how)
        local interrupted = 0
        for _, e in ipairs(r.seen) do
          if e[1] == "response" and e[2].outcome == "interrupted" then interrupted = interrupted + 1 end
        end
        assert.equal(how == "raise" and 2 or 3, interrupted, how)
      end
    end)

    -- A kept-alive connection that died unanswered: the request went out twice. The hook says
    -- so (once reported as one attempt, nothing more), and metrics count the resend.
    it("say when a request went out twice (a dead kept-alive connection), and metrics count it", function()
      local metrics, lines = eip.metrics(), {}
      local r = recorder()
      local c = fx.client{ on_response = function(info) r.on_response(info); metrics.on_response(info) end,
        log = function(l) lines[#lines + 1] = l end }
      local id = emu:create_bandwidth{ size = 1 }
      c:show_bandwidth(id) -- a kept-alive connection
      emu:inject{ method = "DELETE", action = "drop" }
      assert.equal(204, c:delete_bandwidth(id).status)
      -- (the debug log says so too: one "> DELETE" line went out twice)
      assert.matches("^eip: < 204 %([^)]*%), sent again on a new connection", lines[#lines])
      local last = r.seen[#r.seen][2]
      assert.same({ "delete_bandwidth", 204, true, 1 }, { last.operation, last.status, last.resent, last.attempt })
      assert.matches('eip_resends_total{operation="delete_bandwidth"} 1\n', metrics:render(), 1, true)
      assert.is_nil(metrics:render():find("eip_retries_total", 1, true))
    end)

    -- A retry planned and never sent (its rate slot past the deadline) is no retry for metrics.
    it("count no retry that was never sent", function()
      local metrics = eip.metrics()
      local t = { now = 1000 }
      local c = fx.client{ on_response = metrics.on_response, rate = 0.5, deadline = 1.5,
        clock = function() return t.now end, sleep = function(s) t.now = t.now + s end }
      local id = emu:create_bandwidth{ size = 1 }
      emu:reset_counters()
      emu:inject{ method = "DELETE", status = 503, headers = { ["Retry-After"] = "0" } }
      local ok, err = pcall(c.delete_bandwidth, c, id)
      assert.same({ false, 503, 1 }, { ok, err.status, err.attempts })
      assert.equal(1, emu:stats().requests)
      assert.is_nil(metrics:render():find("eip_retries_total", 1, true))
    end)

    -- A request whose caller went away with it (here a coroutine closed in flight: a scheduler
    -- that gave up; inside nginx a request that ended, see spec/openresty_spec.lua) never came
    -- back to the pipeline: its on_response comes at the client's next call once its time is up
    -- (its timeout and a second), "interrupted", `abandoned`, without status or elapsed.
    describe("of a request whose caller went away with it", function()
      local function responses(r)
        local out = {}
        for _, e in ipairs(r.seen) do
          if e[1] == "response" then out[#out + 1] = e[2] end
        end
        return out
      end

      local function outcomes(r)
        local out = {}
        for i, info in ipairs(responses(r)) do out[i] = info.outcome end
        return out
      end

      -- (coroutine.close: Lua 5.4; elsewhere the coroutine is dropped, and collected)
      local function gone(co)
        local close = rawget(coroutine, "close")
        if close then assert(close(co)) end
        collectgarbage()
        collectgarbage()
      end

      local function sorted(list)
        table.sort(list)
        return list
      end

      it("come at the next call once its time is up, not while its coroutine may resume", function()
        local r = recorder()
        local real = require("eip.transport").new{}
        local park = false
        -- (the answer came; the caller's scheduler then holds, closes or drops the coroutine)
        local c = fx.client{ on_response = r.on_response, timeout = 0.3, max_attempts = 1, transport = {
          send = function(_, req)
            local resp = real:send(req)
            if park then coroutine.yield() end
            return resp
          end,
          close = function() real:close() end } }
        local ids = emu:create_bandwidths(6)
        local function parked(id)
          park = true
          local co = coroutine.create(function() return c:delete_bandwidth(id) end)
          assert(coroutine.resume(co))
          park = false
          assert.equal("suspended", coroutine.status(co))
          return co
        end
        local closed, held = parked(ids[1]), parked(ids[2])
        parked(ids[3]) -- (dropped: collected)
        gone(closed)
        closed = nil -- luacheck: ignore 311
        collectgarbage()
        c:delete_bandwidth(ids[4]) -- (before their time: not yet)
        assert.same({ "ok" }, outcomes(r))
        socket.sleep(1.4)
        c:delete_bandwidth(ids[5])
        local seen = responses(r)
        assert.same({ "ok", "interrupted", "interrupted", "ok" }, outcomes(r))
        assert.same(sorted{ ids[1], ids[3] }, sorted{ seen[2].bandwidth_id, seen[3].bandwidth_id })
        for i = 2, 3 do
          local info = seen[i]
          assert.same({ "delete_bandwidth", "DELETE", 1, true, false },
            { info.operation, info.method, info.attempt, info.abandoned, info.retry })
          assert.is_nil(info.status)
          assert.is_nil(info.elapsed)
          assert.equal("/v2.0/" .. emu.project_id .. "/bandwidths/" .. info.bandwidth_id, info.path)
        end
        -- The coroutine merely held is resumed: its own answer, once.
        local resumed, result = coroutine.resume(held)
        assert.same({ true, 204 }, { resumed, result.status })
        c:delete_bandwidth(ids[6])
        assert.same({ "ok", "interrupted", "interrupted", "ok", "ok", "ok" }, outcomes(r))
        assert.equal(ids[2], responses(r)[5].bandwidth_id)
        -- metrics count them, outside the latency histogram (their duration is not known)
        local metrics = eip.metrics()
        for _, info in ipairs(responses(r)) do metrics.on_response(info) end
        local text = metrics:render()
        assert.matches('eip_requests_total{operation="delete_bandwidth",outcome="interrupted",status="none"} 2\n',
          text, 1, true)
        assert.matches('eip_request_duration_seconds_count{operation="delete_bandwidth"} 4\n', text, 1, true)
      end)

      -- (Yielding across the batch's pcall needs Lua 5.2+ or LuaJIT.)
      it("come for a batch whose coroutine went away in its on_result, its requests in flight", function()
        if _VERSION == "Lua 5.1" and not rawget(_G, "jit") then return end
        local r = recorder()
        local c = fx.client{ on_response = r.on_response, timeout = 0.3, max_attempts = 1 }
        local ids = emu:create_bandwidths(5)
        -- (the first goes alone; then the second answers while the two slow ones are in flight)
        for i = 3, 4 do emu:inject{ method = "DELETE", path = emu:delete_path(ids[i]), action = "slow", delay = 1 } end
        local co = coroutine.create(function()
          return c:delete_bandwidths({ ids[1], ids[2], ids[3], ids[4] }, { concurrency = 4,
            on_result = function(i) if i == 2 then coroutine.yield() end end })
        end)
        assert(coroutine.resume(co))
        assert.equal("suspended", coroutine.status(co))
        gone(co)
        co = nil -- luacheck: ignore 311
        collectgarbage()
        assert.same({ "ok", "ok" }, outcomes(r))
        socket.sleep(1.4)
        c:delete_bandwidth(ids[5])
        local seen = responses(r)
        assert.same({ "ok", "ok", "interrupted", "interrupted", "ok" }, outcomes(r))
        assert.same(sorted{ ids[3], ids[4] }, sorted{ seen[3].bandwidth_id, seen[4].bandwidth_id })
        assert.same({ true, true }, { seen[3].abandoned, seen[4].abandoned })
      end)

      -- A batch that takes its answers later than their time (its on_result runs that long) is
      -- still there to give their on_response: a call meanwhile reports none of them.
      it("do not come for a batch that takes its answers late, alive", function()
        local r = recorder()
        local c = fx.client{ on_response = r.on_response, timeout = 0.3, max_attempts = 1 }
        local ids = emu:create_bandwidths(4)
        local other = emu:create_bandwidth{ size = 1 }
        c:delete_bandwidths({ ids[1], ids[2], ids[3], ids[4] }, { concurrency = 4,
          on_result = function(i)
            if i == 2 then
              socket.sleep(1.4)
              c:show_bandwidth(other)
            end
          end })
        -- (one may be put back once, "not_sent": it timed out unsent while on_result held the batch)
        local per_id = {}
        for _, info in ipairs(responses(r)) do
          assert.is_nil(info.abandoned, cjson.encode(info))
          if not info.not_sent then per_id[info.bandwidth_id] = (per_id[info.bandwidth_id] or 0) + 1 end
        end
        for _, id in ipairs(ids) do assert.equal(1, per_id[id], id) end
        assert.equal(1, per_id[other])
      end)
    end)
  end)

  describe("the debug log", function()
    -- A listing's marker is the last id of the page before: what the server sent, in the URL.
    it("shows a request's URL without a secret, a listing's marker that echoes the token included", function()
      emu:inject{ method = "GET", path = "/bandwidths$", status = 200,
        body = { bandwidths = { { id = emu.token, name = "x" } } } }
      emu:inject{ method = "GET", path = "/bandwidths$", status = 200, body = '{"bandwidths":[]}' }
      local lines = {}
      local c = fx.client{ log = function(l) lines[#lines + 1] = l end }
      assert.equal(1, #c:list_bandwidths())
      local text = table.concat(lines, "\n")
      assert.is_nil(text:find(emu.token, 1, true), "the token reached the debug log")
      assert.matches("eip: > GET [^\n]*/bandwidths%?limit=1000&marker=<redacted>\n", text)
      local sent = {}
      for _, r in ipairs(emu:requests()) do
        if not r.uri:find("^/__emulator") then sent[#sent + 1] = r.uri end
      end
      assert.equal(2, #sent)
      assert.truthy(sent[2]:find("marker=" .. emu.token, 1, true), "the marker is sent as the server gave it")
    end)

    -- A long body is shown cut to 2048 bytes: between UTF-8 characters, so that a line of a body
    -- that was UTF-8 stays UTF-8 (a sink writing JSON lines).
    it("cuts a long body it shows between UTF-8 characters", function()
      -- (the cut at byte 2048 of the body falls 2 bytes into a character)
      emu:inject{ method = "DELETE", path = "/bandwidths/", status = 400,
        body = '{"code":"VPC.0007","message":"' .. string.rep("a", 2001) .. string.rep("带", 40) .. '"}' }
      local lines = {}
      local c = fx.client{ log = function(l) lines[#lines + 1] = l end, max_attempts = 1 }
      assert.is_false(pcall(c.delete_bandwidth, c, fixture.absent_id(1)))
      local text = table.concat(lines, "\n")
      local shown = text:match("a([\128-\255]*)%.%.%. %(%d+ bytes%)")
      assert.is_string(shown, text)
      assert.is_true(#shown % 3 == 0, "a character cut: " .. #shown .. " bytes")
    end)

    -- A request is logged as it is handed to the transport: one then held back or aborted before
    -- any of it went out, or a batch's aborted in flight, got no line after its "> DELETE", which
    -- read as a delete sent and never answered. (A batch's aborted before any of it went out: see
    -- eip.metrics' "counts no attempt for a request a batch dropped".)
    it("says how a request held back or aborted ended", function()
      local path = ("/v2.0/" .. emu.project_id .. "/bandwidths/" .. fixture.absent_id(1)):gsub("%-", "%%-")
      local lines = {}
      local c = fx.client{ log = function(l) lines[#lines + 1] = l end, transport = { name = "holding",
        send = function() return { status = 0, curl_code = 42, held_back = true, unsent = true } end,
        close = function() end } }
      local ok, err = pcall(c.delete_bandwidth, c, fixture.absent_id(1))
      assert.same({ false, true }, { ok, err.not_sent })
      assert.matches("^eip: < DELETE http://[^/]+" .. path .. " not sent: held back", lines[#lines])
      -- In flight, when on_result raised: it went out, and may have acted.
      -- (the first goes alone; the third is in flight when the second's on_result raises)
      local ids = emu:create_bandwidths(3)
      emu:inject{ method = "DELETE", path = emu:delete_path(ids[3]), action = "slow", delay = 2 }
      lines = {}
      c = fx.client{ log = function(l) lines[#lines + 1] = l end }
      pcall(c.delete_bandwidths, c, ids, { on_result = function(i) if i == 2 then error("mine", 0) end end })
      assert.matches("^eip: < DELETE [^ ]+" .. ids[3]:gsub("%-", "%%-") .. " aborted in flight", lines[#lines])
    end)

    -- The metadata service's answers bring credentials the client does not know before reading
    -- them: a header echoing them (a request id) reaches neither the log nor a hook.
    it("shows no header of the metadata service's answers, which may echo the credentials they bring", function()
      local sk, st = "Zq9TempSecretKeyFromMetadata0000000000ab", "SecTokFromMetadataXYZ0123456789abcdefghij"
      local session = "MetaSessTok-0123456789abcdefABCDEF0123456789"
      local ak = "EMUAK7TEMPORARY00002"
      emu:set_aksk{ [ak] = { sk = sk, project_id = emu.project_id, security_token = st } }
      emu:inject{ method = "PUT", path = "^/meta%-data/latest/api/token$", status = 200, body = session,
        headers = { ["X-Request-Id"] = "rid-" .. session, ["Location"] = "/" .. session } }
      emu:inject{ method = "GET", path = "^/openstack/latest/securitykey$", status = 200,
        headers = { ["X-Request-Id"] = "rid-" .. sk .. "-" .. st, ["Content-Type"] = "text/" .. sk },
        body = { credential = { access = ak, secret = sk, securitytoken = st,
          expires_at = "2099-01-01T00:00:00.000000Z" } } }
      local lines, r = {}, recorder()
      local c = eip.new{ endpoint = emu.url, project_id = emu.project_id, metadata_url = emu.metadata_url,
        log = function(l) lines[#lines + 1] = l end, on_response = r.on_response }
      assert.equal(204, c:delete_bandwidth(emu:create_bandwidth{ size = 1 }).status)
      c:close()
      local ops = {}
      for _, s in ipairs(r.seen) do ops[#ops + 1] = s[2].operation end
      assert.same({ "metadata_token", "metadata_credentials", "delete_bandwidth" }, ops)
      local all = cjson.encode(r.seen) .. table.concat(lines, "\n")
      for _, secret in ipairs{ sk, st, session } do
        assert.is_nil(all:find(secret:sub(1, 12), 1, true), "a credential reached the log or a hook")
      end
    end)
  end)
end)

describe("eip.metrics", function()
  local fx = fixture.emulator()
  local emu

  setup(function() emu = fx.start() end)
  teardown(fx.stop)
  before_each(fx.reset)

  it("counts attempts by operation, outcome and status, with a latency histogram", function()
    local metrics = eip.metrics()
    local c = fx.client{ on_response = metrics.on_response, sleep = function() end }
    local ids = emu:create_bandwidths(3)
    emu:inject{ method = "DELETE", path = emu:delete_path(ids[1]), status = 503 }
    c:delete_bandwidths(ids, { concurrency = 1 })
    pcall(c.delete_bandwidth, c, fixture.absent_id(1))
    local text = metrics:render()
    assert.matches('eip_requests_total{operation="delete_bandwidth",outcome="ok",status="204"} 3\n', text, 1, true)
    assert.matches('eip_requests_total{operation="delete_bandwidth",outcome="http",status="503"} 1\n', text, 1, true)
    assert.matches('eip_requests_total{operation="delete_bandwidth",outcome="http",status="404"} 1\n', text, 1, true)
    assert.matches('eip_retries_total{operation="delete_bandwidth"} 1\n', text, 1, true)
    assert.matches('eip_request_duration_seconds_bucket{operation="delete_bandwidth",le="+Inf"} 5\n', text, 1, true)
    assert.matches('eip_request_duration_seconds_count{operation="delete_bandwidth"} 5\n', text, 1, true)
    -- (a status sent as a float, by a caller's transport on Lua 5.3+, is the same series)
    metrics:observe{ operation = "delete_bandwidth", outcome = "ok", status = 204.0, elapsed = 0.001 }
    assert.matches('eip_requests_total{operation="delete_bandwidth",outcome="ok",status="204"} 4\n', metrics:render(),
      1, true)
    assert.matches("# TYPE eip_request_duration_seconds histogram\n", text, 1, true)
    -- buckets are cumulative and in increasing order
    local last = -1
    for n in text:gmatch('_bucket{operation="delete_bandwidth",le="[^"]+"} (%d+)') do
      assert.is_true(tonumber(n) >= last)
      last = tonumber(n)
    end
  end)

  -- A histogram's buckets are all there from its first observation, empty ones at 0: one that
  -- appears later (a first fast call after slow ones) is a new series, whose first count rate()
  -- misses, and histogram_quantile reads the buckets missing below a count as [0, le].
  it("renders every bucket of an operation's histogram, empty ones at 0", function()
    local metrics = eip.metrics()
    metrics:observe{ operation = "delete_bandwidth", outcome = "ok", status = 204, elapsed = 3, attempt = 1 }
    local text = metrics:render()
    local les = {}
    for le, n in text:gmatch('_bucket{operation="delete_bandwidth",le="([^"]+)"} (%d+)') do
      les[#les + 1] = le .. "=" .. n
    end
    assert.same({ "0.005=0", "0.01=0", "0.025=0", "0.05=0", "0.1=0", "0.25=0", "0.5=0", "1=0", "2.5=0", "5=1",
      "10=1", "+Inf=1" }, les)
  end)

  -- A script may set a locale (os.setlocale("") under LANG=de_DE.UTF-8, for its dates): Lua 5.1
  -- to 5.4 then write numbers with its decimal point, "0,005", which the text format does not
  -- read (LuaJIT writes "." always). The render writes "." whatever the locale, and orders the
  -- buckets all the same (Lua 5.1 reads "0.005" as no number under such a locale). A locale of
  -- the checkout's own, compiled by localedef (Debian's locales), in a child process.
  it("renders numbers with a decimal point whatever locale a script set", function()
    local host = require "spec.support.host"
    local nginx = require "spec.support.nginx"
    local dir = nginx.capture("mktemp -d")
    local ok = host.execute("localedef -i de_DE -f UTF-8 " .. host.quote(dir .. "/de_DE.UTF-8") .. " >/dev/null 2>&1")
    assert(ok, "localedef could not compile de_DE.UTF-8 (Debian's locales package)")
    local out, code = host.run_script([[
      assert(os.setlocale("de_DE.UTF-8"), "the locale")
      assert(string.format("%.1f", 0.5) == "0,5" or rawget(_G, "jit"), "a comma locale: " .. string.format("%.1f", 0.5))
      local eip = require "eip"
      local metrics = eip.metrics()
      metrics:observe{ operation = "delete_bandwidth", outcome = "ok", status = 204, elapsed = 0.0125, attempt = 1 }
      metrics:observe{ operation = "delete_bandwidth", outcome = "ok", status = 204, elapsed = 0.3, attempt = 1 }
      io.write(metrics:render())
      local c = eip.new{ endpoint = "http://127.0.0.1:1", project_id = "p1", token = "t0k3n-for-the-locale" }
      local _, err = pcall(c.delete_bandwidth, c, "bw-1", { wait = 0.01 })
      io.write("usage: ", tostring(err.message), "\n")
    ]], "LOCPATH=" .. host.quote(dir) .. " " .. host.lua_command)
    host.execute("rm -rf " .. host.quote(dir))
    assert.equal(0, code, out)
    local les = {}
    for le in out:gmatch('_bucket{operation="delete_bandwidth",le="([^"]+)"}') do les[#les + 1] = le end
    assert.same({ "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf" }, les)
    assert.matches('eip_request_duration_seconds_sum{operation="delete_bandwidth"} 0.312500\n', out, 1, true)
    assert.matches('eip_request_duration_seconds_bucket{operation="delete_bandwidth",le="0.025"} 1\n', out, 1, true)
    assert.matches("usage: .*0%.05", out)
    assert.is_nil(out:find("%d,%d"), out)
  end)

  -- Inside nginx the workers count into the shared dict while one renders it: whatever a render
  -- reads in the middle of another worker's observe, the buckets it shows stay cumulative (each at
  -- most the next), and the count is the +Inf bucket's, as the text format wants (a count read
  -- after another worker's observe had been one more).
  it("renders cumulative buckets, and the +Inf bucket's count, while another worker counts", function()
    local function check(text)
      local last = -1
      for n in text:gmatch('_bucket{operation="delete_bandwidth",le="[^"]+"} (%d+)') do
        assert.is_true(tonumber(n) >= last, text)
        last = tonumber(n)
      end
      local count = text:match('_count{operation="delete_bandwidth"} (%d+)')
      if count then assert.equal(last, tonumber(count), text) end
    end
    -- A shared dict whose keys come highest bucket first, and in which another worker counts
    -- (`between`) as each value is read or added.
    local values, between, busy = {}, nil, false
    local dict = {
      incr = function(_, key, by, init)
        values[key] = (values[key] or init or 0) + by
        if between and not busy then busy = true; between("incr"); busy = false end
        return values[key]
      end,
      get = function(_, key)
        local v = values[key]
        if between and not busy then busy = true; between("get"); busy = false end
        return v
      end,
      get_keys = function()
        local keys = {}
        for k in pairs(values) do keys[#keys + 1] = k end
        table.sort(keys, function(a, b) return a > b end)
        return keys
      end,
    }
    local saved = rawget(_G, "ngx")
    rawset(_G, "ngx", { shared = { eip_metrics = dict } })
    local ok, metrics = pcall(eip.metrics, { dict = "eip_metrics" })
    rawset(_G, "ngx", saved)
    assert(ok, metrics)
    local slow = { operation = "delete_bandwidth", outcome = "ok", status = 204, elapsed = 3, attempt = 1 }
    local fast = { operation = "delete_bandwidth", outcome = "ok", status = 204, elapsed = 0.001, attempt = 1 }
    metrics:observe(slow)
    -- a render in the middle of an observe, after each of its additions
    between = function(what) if what == "incr" then check(metrics:render()) end end
    metrics:observe(fast)
    -- an observe in the middle of a render, after each value it reads
    between = function(what) if what == "get" then metrics:observe(fast) end end
    check(metrics:render())
  end)

  -- A batch's cancel that answers "abort" from its (n+1)-th question on.
  local function aborting_after(n)
    local asked = 0
    return function()
      asked = asked + 1
      return asked > n and "abort" or nil
    end
  end

  -- A batch aborted while its request waits for a proxy's CONNECT: nothing of it went out. Its
  -- on_response says so (it pairs the on_request that came); metrics count no attempt sent.
  it("counts no attempt for a request a batch dropped before any of it was sent", function()
    local proxy = require("spec.support.proxy").start{ misbehave = { ["silent.test"] = "silent" } }
    local metrics, r, lines = eip.metrics(), recorder(), {}
    local c = eip.new{ endpoint = "https://silent.test", project_id = emu.project_id, token = emu.token,
      timeout = 10, proxy = proxy.url, on_request = r.on_request, log = function(l) lines[#lines + 1] = l end,
      on_response = function(info) r.on_response(info); metrics.on_response(info) end }
    local results = c:delete_bandwidths({ fixture.absent_id(1) }, { cancel = aborting_after(5) })
    c:close()
    proxy:stop()
    assert.same({ "interrupted", true, true }, { results[1].kind, results[1].not_sent, results[1].cancelled })
    -- (the debug log's "> DELETE" says so too: it read as a delete sent)
    assert.matches("^eip: < DELETE https://silent.test/v2.0/[^ ]+ not sent: aborted before any of it went out",
      lines[#lines])
    assert.equal(2, #r.seen)
    assert.same({ "request", "response" }, { r.seen[1][1], r.seen[2][1] })
    assert.same({ "not_sent", true }, { r.seen[2][2].outcome, r.seen[2][2].not_sent })
    local text = metrics:render()
    assert.is_nil(text:find("eip_requests_total", 1, true), text)
    assert.is_nil(text:find("eip_request_duration_seconds_count", 1, true), text)
  end)

  -- A batch's IAM login (sent over a multi handle of its own, which its cancel may abort) aborted
  -- while in flight: its on_response had no elapsed, so the histogram missed the attempt that
  -- requests_total counted.
  it("times an IAM login a batch's cancel aborted in flight", function()
    emu:inject{ method = "POST", path = "^/v3/auth/tokens", action = "slow", delay = 2 }
    local metrics, r = eip.metrics(), recorder()
    local c = eip.new{ endpoint = emu.url, project_id = emu.project_id, auth = emu:iam_auth(), timeout = 5,
      on_request = r.on_request, on_response = function(info) r.on_response(info); metrics.on_response(info) end }
    local results = c:delete_bandwidths(emu:create_bandwidths(1), { cancel = aborting_after(3) })
    c:close()
    assert.same({ "not_sent", true }, { results[1].kind, results[1].not_sent })
    assert.equal(2, #r.seen)
    local info = r.seen[2][2]
    assert.same({ "response", "iam_token", "interrupted" }, { r.seen[2][1], info.operation, info.outcome })
    assert.is_number(info.elapsed)
    assert.is_true(info.elapsed > 0.2 and info.elapsed < 2, "elapsed " .. info.elapsed)
    local text = metrics:render()
    assert.matches('eip_requests_total{operation="iam_token",outcome="interrupted",status="none"} 1\n', text, 1, true)
    assert.matches('eip_request_duration_seconds_count{operation="iam_token"} 1\n', text, 1, true)
  end)

  -- The same login aborted before any of it was sent (IAM behind a proxy that never answers the
  -- CONNECT): on_response said attempt 0 of the attempt on_request had called 1.
  it("gives an IAM login aborted before it was sent the attempt number on_request gave", function()
    local proxy = require("spec.support.proxy").start{ misbehave = { ["silent.test"] = "silent" } }
    local r = recorder()
    local c = eip.new{ endpoint = "https://silent.test", project_id = emu.project_id, timeout = 10, proxy = proxy.url,
      auth = emu:iam_auth{ iam_endpoint = "https://silent.test" }, on_request = r.on_request,
      on_response = r.on_response }
    local results = c:delete_bandwidths({ fixture.absent_id(1) }, { cancel = aborting_after(4) })
    c:close()
    proxy:stop()
    assert.same({ "not_sent", true }, { results[1].kind, results[1].not_sent })
    assert.equal(2, #r.seen)
    local asked_info, answered = r.seen[1][2], r.seen[2][2]
    assert.same({ "iam_token", 1 }, { asked_info.operation, asked_info.attempt })
    assert.same({ "iam_token", 1, "not_sent", true }, { answered.operation, answered.attempt, answered.outcome,
      answered.not_sent })
    assert.is_number(answered.elapsed)
  end)
end)

describe("OpenResty: /metrics of the example", function()
  local fx = fixture.emulator()
  local emu, app
  local launcher = require "spec.support.openresty.launcher"

  setup(function()
    emu = fx.start()
    app = launcher.start(emu, { timeout = 5, workers = 2, max_attempts = 1 })
  end)
  teardown(function()
    if app then app:stop() end
    fx.stop()
  end)

  local function call(method, path, body)
    local resp = assert(emulator.http{ port = app.port, method = method, path = path, timeout = 10,
      body = body and cjson.encode(body) or nil, headers = body and { ["Content-Type"] = "application/json" } })
    assert.equal(200, resp.status, resp.body)
    return resp
  end

  it("says a method called with a dot is one, and keeps no duration that is not finite", function()
    local metrics = eip.metrics()
    for _, m in ipairs{ "render", "observe" } do
      local ok, err = pcall(metrics[m])
      assert.is_false(ok)
      assert.same({ "usage", m }, { err.kind, err.argument })
    end
    metrics:observe{ operation = "delete_bandwidth", outcome = "ok", status = 204, elapsed = 1 / 0 }
    metrics:observe{ operation = "delete_bandwidth", outcome = "ok", status = 204, elapsed = 0 / 0 }
    metrics:observe{ operation = "delete_bandwidth", outcome = "ok", status = 204, elapsed = 0.5 }
    local text = metrics:render()
    assert.truthy(text:find('eip_requests_total{operation="delete_bandwidth",outcome="ok",status="204"} 3', 1, true),
      text)
    assert.truthy(text:find('eip_request_duration_seconds_count{operation="delete_bandwidth"} 1', 1, true), text)
  end)

  it("counts the calls of both workers together", function()
    -- Each worker deletes 3 bandwidths and 2 that do not exist, at the same time.
    local ids = {}
    for worker = 1, 2 do
      ids[worker] = emu:create_bandwidths(3)
      ids[worker][4], ids[worker][5] = fixture.absent_id(worker * 10 + 1), fixture.absent_id(worker * 10 + 2)
    end
    local generation = cjson.decode(call("POST", "/t/shared_rate", { admin = true, ids = ids }).body).generation
    local results
    local deadline = socket.gettime() + 20
    repeat
      socket.sleep(0.05)
      results = cjson.decode(call("GET", "/t/shared_rate?generation=" .. generation).body)
      assert(socket.gettime() < deadline, "the workers did not finish")
    until results["0"] and results["1"]
    assert.same({ 3, 2, 3, 2 },
      { results["0"].deleted, results["0"].failed, results["1"].deleted, results["1"].failed })
    local resp = call("GET", "/metrics")
    assert.matches("^text/plain", resp.headers["content-type"])
    assert.matches('eip_requests_total{operation="delete_bandwidth",outcome="ok",status="204"} 6\n', resp.body, 1, true)
    assert.matches('eip_requests_total{operation="delete_bandwidth",outcome="http",status="404"} 4\n', resp.body, 1,
      true)
    assert.matches('eip_request_duration_seconds_count{operation="delete_bandwidth"} 10\n', resp.body, 1, true)
  end)
end)
