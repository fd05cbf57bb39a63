-- Destructive work that fails loudly on mistakes and does nothing it cannot undo: only the EIP
-- service's VPC.0306 counts as "already gone", a batch stops at the first authentication
-- failure (the key must never be locked), a drain never turns a bandwidth that cannot be
-- deleted into new bills, repeated and interrupted work is reported exactly, and no server text
-- carries a secret or a terminal escape to the reader.
local eip = require "eip"
local fixture = require "spec.support.fixture"
local raised = require("spec.support.assertions").raised
local socket = require "socket"

local SHORT_TOKEN = "tk-9a7" -- a short secret: redacted where it is a whole value
-- A token as long as a real one (several KB) whose bytes also need escaping in JSON and in URLs:
-- every bound on server text (255 bytes of a header, 512 of a message) falls inside it.
local LONG_TOKEN = "MIIlong" .. string.rep("Tok/en\\\"+%-=.", 300) .. "end"
-- And one of letters only, as most are: its copies are found without undoing escapes.
local PLAIN_TOKEN = "MIIplain" .. string.rep("TokenABCdef", 300)

-- Does text hold any 8 consecutive bytes of secret (a piece of it, however cut)?
-- `it` for cases that need a coroutine to yield through pcall: Lua 5.2 on and LuaJIT (as in
-- nginx); not Lua 5.1 (the README says what it cannot do).
local it_yielding = require("spec.support.coroutines").yields_through_pcall() and it or function() end

local function holds_piece(text, secret)
  for i = 1, #secret - 7 do
    if text:find(secret:sub(i, i + 7), 1, true) then return secret:sub(i, i + 7) end
  end
  return nil
end

-- The hex of s's bytes, in lower case.
local function hex_of(s)
  return (s:gsub(".", function(ch) return string.format("%02x", ch:byte()) end))
end

local function percent_encoded(v)
  return (v:gsub("[^%w]", function(c) return string.format("%%%02X", c:byte()) end))
end

describe("safety", function()
  local fx = fixture.emulator{ tokens = { [SHORT_TOKEN] = "0a1b2c3d4e5f60718293a4b5c6d7e8f9",
    [LONG_TOKEN] = "0a1b2c3d4e5f60718293a4b5c6d7e8f9", [PLAIN_TOKEN] = "0a1b2c3d4e5f60718293a4b5c6d7e8f9" } }
  local emu

  setup(function() emu = fx.start() end)
  teardown(fx.stop)
  before_each(fx.reset)

  local function create(n, fields) return emu:create_bandwidths(n, fields) end

  local function api_requests(method) return fixture.count_requests(emu, method) end

  describe("missing_ok", function()
    it("accepts only the EIP service's 404 VPC.0306", function()
      local c = fx.client{ missing_ok = true }
      local res = c:delete_bandwidth("3fa1e2b4-1111-2222-3333-444455556666")
      assert.same({ true, false, 404, "VPC.0306" }, { res.ok, res.deleted, res.status, res.code })
    end)

    -- Bandwidth ids are UUIDs. The documents give the delete no answer for a malformed id, and
    -- "does not exist" for a bandwidth's name would otherwise read as "already deleted".
    it("is an error for a 404 VPC.0306 about an id that is not shaped like one (a name)", function()
      local c = fx.client{ missing_ok = true, max_attempts = 1 }
      local results, summary
      local names = { "prod-shared-bw", "3fa1e2b4-1111-2222-3333-44445555666", "3fa1e2b4111122223333444455556666",
        "3FA1E2B4-1111-2222-3333-444455556666" } -- an upper-cased copy of an id: is the lookup case-blind?
      for _, id in ipairs(names) do
        emu:inject{ method = "DELETE", status = 404, body = { code = "VPC.0306", message = "No Eip bandwidth exist." } }
        local err = raised(c.delete_bandwidth, c, id)
        assert.same({ "http", 404, "VPC.0306" }, { err.kind, err.status, err.code })
        assert.matches("is not one (a name, or a cut-off or mistyped id?): nothing was deleted", err.advice, 1, true)
        emu:inject{ method = "DELETE", status = 404, body = { code = "VPC.0306", message = "No Eip bandwidth exist." } }
        results, summary = c:delete_bandwidths({ id }, { missing_ok = true })
        assert.same({ false, 0, 1 }, { results[1].ok, summary.missing, summary.failed })
      end
      emu:inject{ method = "DELETE", status = 404, body = { code = "VPC.0306", message = "No Eip bandwidth exist." } }
      local res = c:delete_bandwidth("3fa1e2b4-1111-2222-3333-444455556666")
      assert.same({ true, false }, { res.ok, res.deleted })
    end)

    -- AK/SK keys act in every project of the account: keys sent to another project of it (a
    -- project id left over from other work) find no such bandwidth there. The result says
    -- which project it was missing from.
    it("says which project a bandwidth was missing from: keys act in every project of the account", function()
      local id = create(1)[1]
      local c = eip.new{ endpoint = emu.url, project_id = emu.other_project_id, ak = emu.ak, sk = emu.sk,
        missing_ok = true }
      local res = c:delete_bandwidth(id)
      c:close()
      assert.same({ true, false, "VPC.0306", emu.other_project_id }, { res.ok, res.deleted, res.code, res.project_id })
      assert.is_not_nil(emu:get_bandwidth(id), "the bandwidth still exists, in its own project")
    end)

    it("is an error for the gateway's 404 (a wrong base path), with advice naming the cause", function()
      local id = create(1)[1]
      local c = fx.client{ endpoint = emu.url .. "/eip", missing_ok = true }
      local err = raised(c.delete_bandwidth, c, id)
      assert.same({ "http", 404, "APIGW.0101" }, { err.kind, err.status, err.code })
      assert.matches("^No such API at this endpoint", err.advice)
      assert.matches("the bandwidth may well exist: never count this 404 as deleted", err.advice)
      assert.equal("config", err.code_kind)
      assert.is_not_nil(emu:get_bandwidth(id), "the bandwidth still exists")
    end)

    it("is an error when the endpoint is another service's (IAM's, the metadata service's)", function()
      local id = create(1)[1]
      local c = fx.client{ endpoint = emu.iam_url, missing_ok = true }
      local err = raised(c.delete_bandwidth, c, id)
      assert.same({ "http", 404, "APIGW.0101", "config" }, { err.kind, err.status, err.code, err.code_kind })
      c = fx.client{ endpoint = emu.metadata_url, missing_ok = true }
      err = raised(c.delete_bandwidth, c, id)
      assert.same({ "http", 404 }, { err.kind, err.status })
      assert.is_nil(err.code)
      assert.is_not_nil(emu:get_bandwidth(id), "the bandwidth still exists")
      -- and a batch neither reads them as gone
      local results, summary = fx.client{ endpoint = emu.iam_url, missing_ok = true }:delete_bandwidths{ id }
      assert.same({ false, 0, 0, 1 }, { results[1].ok, summary.deleted, summary.missing, summary.failed })
    end)

    it("is an error for a 404 with another code or with no error body", function()
      local c = fx.client{ missing_ok = true, max_attempts = 1 }
      emu:inject{ method = "DELETE", status = 404, body = { code = "VPC.9404", message = "elsewhere" } }
      local err = raised(c.delete_bandwidth, c, "bw-1")
      assert.equal("VPC.9404", err.code)
      assert.matches("carries VPC.9404, not the EIP service's VPC.0306", err.advice)
      emu:inject{ method = "DELETE", status = 404, body = "<html>Not Found</html>", content_type = "text/html" }
      err = raised(c.delete_bandwidth, c, "bw-1")
      assert.is_nil(err.code)
      assert.matches("no EIP error body", err.advice)
      local results, summary = c:delete_bandwidths({ fixture.absent_id(2) }, { missing_ok = true, concurrency = 1 })
      assert.equal(1, summary.missing) -- no injection left: a real VPC.0306, which missing_ok accepts
      assert.is_false(results[1].deleted)
    end)

    it("refuses an endpoint that holds an API version path, sending nothing", function()
      for _, path in ipairs{ "/v2.0", "/v1", "/v3", "/api/V2.0" } do
        local err = raised(eip.new, fx.options{ endpoint = emu.url .. path })
        assert.equal("endpoint", err.argument)
        assert.matches("must not contain an API version path", err.message)
      end
      local err = raised(eip.new, fx.options{ token = fixture.NONE, auth = { username = "u", password = "p",
        domain = "d", project = "cn-north-4", iam_endpoint = emu.url .. "/v3" } })
      assert.equal("auth.iam_endpoint", err.argument)
      fx.client{ endpoint = emu.url .. "/eip-base" } -- other base paths stay allowed
      assert.equal(0, emu:stats().requests)
    end)
  end)

  describe("a batch after an authentication failure", function()
    it("with a wrong SK sends one request for 50 ids and reports the rest not sent", function()
      local ids = create(50)
      emu:reset_counters()
      local c = fx.client{ token = fixture.NONE, ak = emu.ak, sk = "wrong-secret-key-0000000000000000000000" }
      local results, summary = c:delete_bandwidths(ids, { concurrency = 8 })
      assert.equal(1, api_requests())
      assert.equal(1, emu:stats().auth_failures)
      assert.same({ 0, 1, 49, "auth" }, { summary.deleted, summary.failed, summary.not_sent, summary.stopped })
      assert.equal(401, results[1].status)
      for i = 2, 50 do
        assert.is_true(results[i].not_sent, "id " .. i)
        assert.equal("not_sent", results[i].kind)
        assert.equal(401, results[i].cause.status)
      end
      assert.equal(50, #emu:bandwidths())
    end)

    it("with a bad token stops after the first answer", function()
      local ids = create(20)
      emu:reset_counters()
      local c = fx.client{ token = "revoked-token-0123456789" }
      local _, summary = c:delete_bandwidths(ids, { concurrency = 8 })
      assert.equal(1, api_requests())
      assert.same({ 1, 19 }, { summary.failed, summary.not_sent })
    end)

    it("stops on a 403 that refuses the account (VPC.2701), letting what is in flight finish", function()
      local ids = create(10)
      emu:reset_counters()
      -- What the client did, in order: "send" per attempt, the status (or outcome) per answer;
      -- and the most requests it had in flight at once.
      local events, in_flight, most = {}, 0, 0
      local c = fx.client{ max_attempts = 1,
        on_request = function()
          events[#events + 1] = "send"
          in_flight = in_flight + 1
          most = math.max(most, in_flight)
        end,
        on_response = function(info)
          events[#events + 1] = info.status or info.outcome
          in_flight = in_flight - 1
        end }
      -- The first id succeeds (the batch opens up), the second is refused: the account is frozen.
      emu:inject{ method = "DELETE", path = emu:delete_path(ids[2]), status = 403,
        body = { code = "VPC.2701", message = "Token not allowed to do this action." } }
      local results, summary = c:delete_bandwidths(ids, { concurrency = 2 })
      assert.equal("auth", summary.stopped)
      assert.equal(403, results[2].status)
      assert.is_true(summary.not_sent > 0)
      assert.equal(summary.total, summary.deleted + summary.failed + summary.not_sent)
      -- Nothing starts once the 403 is read; what was in flight (at most `concurrency`) finishes.
      local refused
      for i, e in ipairs(events) do
        if e == 403 then refused = i end
        if refused then
          assert.are_not.equal("send", e, "a request sent after the 403: " .. table.concat(events, " "))
        end
      end
      assert.is_number(refused)
      local sent, answered = 0, 0
      for _, e in ipairs(events) do if e == "send" then sent = sent + 1 else answered = answered + 1 end end
      assert.equal(sent, answered)
      assert.equal(sent, api_requests("DELETE"))
      assert.is_true(most <= 2, most .. " in flight at once (concurrency 2)")
    end)

    -- VPC.0502 (op_restricted: in arrears or frozen, as VPC.2701 says) refuses the account,
    -- not one bandwidth: every other id would be refused alike. It once sent all of them.
    it("stops on a 403 that says the account is restricted (VPC.0502)", function()
      local ids = create(6)
      emu:reset_counters()
      emu:inject{ method = "DELETE", path = emu:delete_path(ids[1]), status = 403,
        body = { code = "VPC.0502", message = "Tenant status is op_restricted." } }
      local c = fx.client{ max_attempts = 1 }
      local results, summary = c:delete_bandwidths(ids, { concurrency = 1 })
      assert.same({ "auth", 403, 1, 5 }, { summary.stopped, results[1].status, summary.failed, summary.not_sent })
      assert.equal(1, api_requests("DELETE"))
      assert.is_true(eip.is_auth_failure(results[1]))
    end)

    -- A fine-grained policy can deny one resource and allow the next (an enterprise project's
    -- permissions): its 403 is that id's failure, and the batch goes on. A 403 locks no key.
    it("a policy's 403 (VPC.2201, VPC.0010) fails its id only: the batch goes on", function()
      for _, code in ipairs{ "VPC.2201", "VPC.0010" } do
        emu:reset()
        local ids = create(6)
        local c = fx.client{ max_attempts = 1 }
        emu:inject{ method = "DELETE", path = emu:delete_path(ids[2]), status = 403,
          body = { code = code, message = "Policy doesn't allow vpc:bandwidths:delete to be performed" } }
        local results, summary = c:delete_bandwidths(ids, { concurrency = 2 })
        assert.is_nil(summary.stopped, code)
        assert.same({ 5, 1, 0 }, { summary.deleted, summary.failed, summary.not_sent }, code)
        assert.same({ 403, code }, { results[2].status, results[2].code })
        assert.is_false(eip.is_auth_failure(results[2]))
        assert.is_not_nil(emu:get_bandwidth(ids[2]))
      end
    end)

    it("the first request goes alone until one gets an answer: a dropped one checked no key", function()
      local ids = create(20)
      emu:inject{ method = "DELETE", action = "drop" }
      local c = fx.client{ token = fixture.NONE, ak = emu.ak, sk = "wrong-secret-key-0000000000000000000000",
        backoff_base = 0.01, backoff_cap = 0.01 }
      local _, summary = c:delete_bandwidths(ids, { concurrency = 8 })
      assert.equal("auth", summary.stopped)
      assert.same({ 1, 0 }, { emu:stats().auth_failures, emu:stats().aksk_locks })
    end)

    -- A load balancer's page (or the gateway's own error) comes before the check of the
    -- signature: it proves nothing about the key, so the probe goes on alone.
    it("the first request goes alone until an answer from behind the credentials' check", function()
      local pages = { { content_type = "text/html", body = "<html><body>503 Service Unavailable</body></html>" },
        { body = { code = 503, message = "no healthy upstream" } }, { body = { code = "ELB.503", message = "busy" } } }
      for _, page in ipairs(pages) do
        emu:reset()
        local ids = create(10)
        emu:set_knobs{ aksk_lock_after = 5 }
        emu:inject{ method = "DELETE", status = 503, content_type = page.content_type, body = page.body }
        local c = fx.client{ token = fixture.NONE, ak = emu.ak, sk = "wrong-secret-key-0000000000000000000000",
          backoff_base = 0.01, backoff_cap = 0.01 }
        local _, summary = c:delete_bandwidths(ids, { concurrency = 8 })
        assert.equal("auth", summary.stopped)
        assert.same({ 1, 0 }, { emu:stats().auth_failures, emu:stats().aksk_locks }, tostring(page.body))
        -- and the key still works
        local good = fx.client{ token = fixture.NONE, ak = emu.ak, sk = emu.sk }
        assert.equal(204, good:delete_bandwidth(ids[1]).status)
      end
    end)

    -- Nor is it nothing: a load balancer answers 502 when the gateway's answer broke off, and
    -- that answer may have been a 401 (eip.auth's "Answers lost"): counted as possibly refused.
    it("a load balancer's page between refused signatures does not reset their count, and counts", function()
      local c = fx.client{ token = fixture.NONE, ak = emu.ak, sk = "wrong-secret-key-0000000000000000000000",
        max_attempts = 1 }
      for _ = 1, 2 do
        assert.equal(401, raised(c.delete_bandwidth, c, "bw-1").status)
        emu:inject{ method = "DELETE", status = 502, content_type = "text/html", body = "<html>502</html>" }
        assert.equal(502, raised(c.delete_bandwidth, c, "bw-1").status)
      end
      local err = raised(c.delete_bandwidth, c, "bw-1")
      assert.same({ true, 0 }, { err.not_sent, err.attempts or 0 })
      assert.matches("refused %(401: 2%) or got no answer %(2%)", tostring(err))
      assert.equal(2, emu:stats().auth_failures)
    end)

    it("a drain sends no more remove calls (and no verifying GET) after a refused one", function()
      local eips = {}
      for i = 1, 150 do eips[i] = "eip-" .. i end
      local id = emu:create_bandwidth{ size = 5, publicip_ids = eips }
      emu:inject{ method = "POST", path = "/remove$", status = 401,
        body = { error_code = "APIGW.0301", error_msg = "Incorrect IAM authentication information" } }
      emu:reset_counters()
      local c = fx.client{ max_attempts = 1 }
      local err = raised(c.drain_and_delete_bandwidth, c, id, { charge_mode = "bandwidth", size = 1 })
      assert.same({ 401, "remove", 0, 150, 0 }, { err.status, err.stage, #err.moved, #err.not_moved, #err.uncertain })
      assert.equal(2, api_requests(), "the show and the refused remove only")
    end)
  end)

  describe("AK/SK signatures refused in a row", function()
    it("send nothing more after three, so the key is never locked", function()
      local c = fx.client{ token = fixture.NONE, ak = emu.ak, sk = "wrong-secret-key-0000000000000000000000",
        max_attempts = 1 }
      for _ = 1, 3 do
        local e = raised(c.delete_bandwidth, c, "bw-1")
        assert.same({ 401, true }, { e.status, eip.is_auth_failure(e) })
      end
      local err = raised(c.delete_bandwidth, c, "bw-4")
      assert.equal(401, err.status)
      assert.is_true(err.not_sent)
      assert.equal(0, err.attempts, "nothing sent")
      -- the copy of the last 401 is this call's, not the call that got it
      assert.same({ "DELETE", "bw-4" }, { err.method, err.bandwidth_id })
      assert.matches("/bandwidths/bw%-4$", err.path)
      assert.is_false(eip.is_auth_failure(raised(fx.client().delete_bandwidth, fx.client(), "bw-1")), "a 404")
      assert.matches("five in a row lock the key", err.advice)
      assert.equal(3, emu:stats().auth_failures)
      assert.equal(0, emu:stats().aksk_locks)
      -- the right key still works from another client: it was never locked
      local good = fx.client{ token = fixture.NONE, ak = emu.ak, sk = emu.sk }
      assert.equal(204, good:delete_bandwidth(create(1)[1]).status)
    end)

    -- The gateway's code for a signature it refused, APIGW.0301, comes with a 401; at another
    -- status (a 403 from a gateway in front of it) it is the same refusal, counted the same.
    -- Newer gateways send it with the prefix APIG. (src/codes.c has both).
    for _, code in ipairs{ "APIGW.0301", "APIG.0301" } do
      it("count the gateway's " .. code .. " at any status as a refused signature", function()
        emu:inject{ method = "DELETE", status = 403, times = -1,
          body = { error_code = code, error_msg = "Incorrect IAM authentication information" } }
        emu:reset_counters()
        local c = fx.client{ token = fixture.NONE, ak = emu.ak, sk = emu.sk, max_attempts = 1 }
        for _ = 1, 3 do assert.equal(403, raised(c.delete_bandwidth, c, "bw-1").status) end
        local err = raised(c.delete_bandwidth, c, "bw-4")
        assert.same({ true, 0 }, { err.not_sent, err.attempts or 0 })
        assert.matches("were refused %(403%)", err.advice)
        assert.equal(3, api_requests())
      end)

      -- Counted as a refused signature, it is an authentication failure too: a batch stops at the
      -- first (it once sent two more, one at a time, each a refusal of the key's five).
      it("stop a batch at the first " .. code .. ", whatever its status", function()
        local ids = create(6)
        emu:inject{ method = "DELETE", status = 400, times = -1,
          body = { error_code = code, error_msg = "Incorrect IAM authentication information" } }
        emu:reset_counters()
        local c = fx.client{ token = fixture.NONE, ak = emu.ak, sk = emu.sk, max_attempts = 1 }
        local results, summary = c:delete_bandwidths(ids, { concurrency = 4 })
        assert.same({ "auth", 1, 5 }, { summary.stopped, summary.failed, summary.not_sent })
        assert.same({ 400, true }, { results[1].status, eip.is_auth_failure(results[1]) })
        assert.same({ "not_sent", "auth" }, { results[2].kind, results[2].stopped })
        assert.equal(1, api_requests())
      end)
    end

    -- Time does not reset the gateway's count: a long-lived client (an nginx worker's) whose
    -- refusal expired would lock the key with two more failures.
    it("never sign again with a refused key, however long the client lives", function()
      local c = fx.client{ token = fixture.NONE, ak = emu.ak, sk = "wrong-secret-key-0000000000000000000000",
        max_attempts = 1 }
      for _ = 1, 3 do raised(c.delete_bandwidth, c, "bw-1") end
      local core = require "eip.core"
      local monotime = core.monotime
      core.monotime = function() return monotime() + 3600 end -- an hour later
      local ok, err = pcall(raised, c.delete_bandwidth, c, "bw-1")
      core.monotime = monotime
      assert(ok, err)
      assert.is_true(err.not_sent)
      assert.same({ 3, 0 }, { emu:stats().auth_failures, emu:stats().aksk_locks })
    end)

    -- The key starts being refused mid-batch (a clock stepped, a key disabled): every request in
    -- flight is refused too, so a batch keeps at most four signed ones in flight.
    it("a batch whose key starts being refused mid-way never has five signatures refused", function()
      local ids = create(40)
      emu:set_knobs{ aksk_lock_after = 5 }
      local c = fx.client{ token = fixture.NONE, ak = emu.ak, sk = emu.sk }
      local n = 0
      local _, summary = c:delete_bandwidths(ids, { concurrency = 8, on_result = function()
        n = n + 1
        if n == 1 then emu:set_clock_offset(3600) end -- X-Sdk-Date an hour off from now on
      end })
      emu:set_clock_offset(0)
      assert.equal("auth", summary.stopped)
      assert.is_true(emu:stats().auth_failures <= 4, "refused: " .. emu:stats().auth_failures)
      assert.equal(0, emu:stats().aksk_locks)
      local good = fx.client{ token = fixture.NONE, ak = emu.ak, sk = emu.sk }
      assert.equal(204, good:delete_bandwidth(ids[40]).status, "the key still works")
    end)

    -- A batch aborted with requests in flight gives their places back: the client's next call
    -- goes at once (were they held until their timeout, 11 s, the deadline of 3 s would pass
    -- first and the call fail not sent). Each of them went out and its answer is never read:
    -- counted as possibly refused (see the next specs), two leave two places.
    it("a batch aborted mid-way leaves the client's signing places free", function()
      local ids = create(9)
      emu:inject{ method = "DELETE", action = "slow", delay = 2, times = 8 }
      emu:reset_counters()
      local c = fx.client{ token = fixture.NONE, ak = emu.ak, sk = emu.sk, timeout = 10, deadline = 3,
        max_attempts = 1 }
      local _, summary = c:delete_bandwidths({ ids[1], ids[2], ids[3], ids[4], ids[5], ids[6], ids[7], ids[8] },
        { concurrency = 2, cancel = function()
          if emu:stats().requests >= 2 then return "abort" end
        end })
      assert.equal("aborted", summary.stopped)
      assert.equal(204, c:delete_bandwidth(ids[9]).status)
    end)

    -- A signed request that went out and got no answer may have been refused all the same: the
    -- gateway counted it, its 401 lost on the way back. Counted as such, the key is never
    -- locked, whether the answers are lost to single calls or to a batch's probes.
    it("counts a signed request whose answer was lost as possibly refused: never five refused", function()
      local wrong = "wrong-secret-key-0000000000000000000000"
      for _, lost in ipairs{ 2, 3, 4 } do
        emu:reset()
        emu:set_knobs{ aksk_lock_after = 5 }
        local ids = create(5)
        emu:inject{ method = "DELETE", action = "lose_answer", times = lost }
        local c = fx.client{ token = fixture.NONE, ak = emu.ak, sk = wrong, backoff_base = 0.01, backoff_cap = 0.01 }
        for i = 1, 4 do pcall(c.delete_bandwidth, c, ids[i]) end
        local last = raised(c.delete_bandwidth, c, ids[5])
        assert.is_true(last.not_sent, tostring(last))
        assert.same({ 0 }, { emu:stats().aksk_locks }, lost .. " lost")
        assert.is_true(emu:stats().auth_failures <= 4, lost .. " lost: " .. emu:stats().auth_failures .. " refused")
        -- a batch of the same, every probe's answer lost first
        emu:reset()
        emu:set_knobs{ aksk_lock_after = 5 }
        ids = create(5)
        emu:inject{ method = "DELETE", action = "lose_answer", times = lost }
        c = fx.client{ token = fixture.NONE, ak = emu.ak, sk = wrong, backoff_base = 0.01, backoff_cap = 0.01 }
        local results = c:delete_bandwidths(ids, { concurrency = 8 })
        assert.same({ 0 }, { emu:stats().aksk_locks }, lost .. " lost, batch")
        assert.is_true(emu:stats().auth_failures <= 4, lost .. " lost, batch: " .. emu:stats().auth_failures)
        for i, r in ipairs(results) do assert.is_false(r.ok == true, i) end
        emu:reset() -- (answers still to lose: the batch sent fewer)
        local good = fx.client{ token = fixture.NONE, ak = emu.ak, sk = emu.sk }
        assert.equal(204, good:delete_bandwidth(create(1)[1]).status, "the key still works")
      end
    end)

    -- A kept-alive connection that dies before any answer: the transports send an idempotent
    -- request again by themselves, but each send of a signed one is a signature the gateway
    -- checks (and may refuse unseen). Not sent again: this attempt's failure, counted. And an
    -- answer garbled after any status line is no answer: counted too.
    it("a signed request is never sent again by the transport, and a garbled answer counts", function()
      local wrong = "wrong-secret-key-0000000000000000000000"
      for _, action in ipairs{ "lose_answer", "garble_answer" } do
        emu:reset()
        emu:set_knobs{ aksk_lock_after = 5 }
        local c = fx.client{ token = fixture.NONE, ak = emu.ak, sk = wrong, max_attempts = 1 }
        assert.equal(401, raised(c.delete_bandwidth, c, "bw-1").status) -- (a kept-alive connection now)
        for _ = 1, 2 do
          emu:inject{ method = "DELETE", action = action }
          local e = raised(c.delete_bandwidth, c, "bw-1")
          assert.same({ "transport", 1 }, { e.kind, e.attempts }, action .. ": " .. tostring(e))
        end
        assert.equal(3, emu:stats().auth_failures, action .. ": one signature per call")
        assert.equal(401, raised(c.delete_bandwidth, c, "bw-1").status) -- two refused, two unanswered: four
        local last = raised(c.delete_bandwidth, c, "bw-1")
        assert.is_true(last.not_sent, action .. ": " .. tostring(last))
        assert.same({ 4, 0 }, { emu:stats().auth_failures, emu:stats().aksk_locks }, action)
      end
    end)

    -- An on_result that takes longer than the requests' timeout: the places of the requests in
    -- flight run out while their answers wait to be read. They are no answers lost: counted as
    -- such, three of them held a good key for 5 minutes.
    it("a slow on_result: answers waiting to be read are no answers lost", function()
      local ids = create(12)
      local c = fx.client{ token = fixture.NONE, ak = emu.ak, sk = emu.sk, timeout = 1 }
      local n = 0
      local results, summary = c:delete_bandwidths(ids, { concurrency = 4, on_result = function()
        n = n + 1
        if n == 2 then require("eip.core").sleep(2.5) end
      end })
      assert.equal(12, summary.deleted, tostring(results[5]))
      assert.equal(204, c:delete_bandwidth(create(1)[1]).status)
    end)

    -- A batch the caller ended with signed requests in flight (its on_result raised, its cancel
    -- said "abort"): each counts as a request without an answer, but three of them start no
    -- hold (nothing says an endpoint or a network is failing): the one place they leave lets the
    -- next request go at once, and its success clears the count.
    it("a batch the caller aborts with three signed requests in flight holds nothing", function()
      for _, mode in ipairs{ "raise", "abort" } do
        local ids = create(8)
        -- The first goes alone (the probe), then the second's result comes while three stay in
        -- flight: ended by on_result's error then, or by cancel's "abort" once three are (the
        -- hooks count them; concurrency 3 there, so that no fourth starts meanwhile).
        emu:inject{ method = "DELETE", path = emu:delete_path(ids[1]), status = 204 }
        emu:inject{ method = "DELETE", path = emu:delete_path(ids[2]), action = "slow", delay = 0.3 }
        emu:inject{ method = "DELETE", action = "slow", delay = 3, times = 3 }
        local flying = 0
        local c = fx.client{ token = fixture.NONE, ak = emu.ak, sk = emu.sk,
          on_request = function() flying = flying + 1 end, on_response = function() flying = flying - 1 end }
        local n, opts = 0, { concurrency = mode == "raise" and 4 or 3 }
        opts.on_result = function()
          n = n + 1
          if mode == "raise" and n == 2 then error("a caller's bug", 0) end
        end
        if mode == "abort" then opts.cancel = function() return n >= 2 and flying == 3 and "abort" or nil end end
        local ok, res = pcall(c.delete_bandwidths, c, ids, opts)
        if mode == "raise" then
          assert.same({ false, "a caller's bug" }, { ok, res })
        else
          assert(ok, res)
          local aborted = 0
          for _, r in ipairs(res) do
            if r.kind == "interrupted" and not r.cancelled then aborted = aborted + 1 end
          end
          assert.equal(3, aborted, "three were in flight")
        end
        local res1 = c:delete_bandwidth(ids[8], { missing_ok = true })
        assert.is_true(res1.ok, mode)
        c:close()
      end
    end)

    -- Four in flight, their answers lost: the third starts the hold, and the fourth, which comes
    -- during it, counts too (it was dropped, and the hold then let one more go: the fifth).
    it("an answer lost during the hold counts: four without an answer stop for good", function()
      local ids = create(5)
      emu:inject{ method = "DELETE", path = emu:delete_path(ids[1]), status = 204 } -- (the probe passes)
      emu:inject{ method = "DELETE", action = "lose_answer", times = 4 }
      local c = fx.client{ token = fixture.NONE, ak = emu.ak, sk = emu.sk, max_attempts = 1 }
      local results = c:delete_bandwidths(ids, { concurrency = 4 })
      assert.equal(204, results[1].status)
      for i = 2, 5 do assert.equal("transport", results[i].kind, i) end
      local core = require "eip.core"
      local monotime = core.monotime
      core.monotime = function() return monotime() + 301 end
      local ok, err = pcall(raised, c.delete_bandwidth, c, create(1)[1])
      core.monotime = monotime
      assert(ok, err)
      assert.same({ "refused", "unanswered", true }, { err.kind, err.reason, err.not_sent })
      assert.matches("signs nothing more", tostring(err))
      assert.equal(5, emu:stats().requests)
    end)

    -- Signing stopped partway through a batch (answers lost: nothing more is signed) stops the
    -- batch as a refused key does: the id refused ends so, those after it are not_sent, and the
    -- summary says why.
    it("a batch whose signing stopped says so: summary.stopped is \"unanswered\"", function()
      local ids = create(7)
      emu:inject{ method = "DELETE", path = emu:delete_path(ids[1]), status = 204 } -- (the probe passes)
      emu:inject{ method = "DELETE", action = "lose_answer", times = 3 }
      local c = fx.client{ token = fixture.NONE, ak = emu.ak, sk = emu.sk, max_attempts = 1 }
      local results, summary = c:delete_bandwidths(ids, { concurrency = 1 })
      assert.same({ "unanswered", 1, 3, 3 }, { summary.stopped, summary.deleted, summary.failed, summary.not_sent })
      for i = 2, 4 do assert.equal("transport", results[i].kind, i) end
      assert.same({ "refused", "unanswered", true }, { results[5].kind, results[5].reason, results[5].not_sent })
      for i = 6, 7 do
        local r = results[i]
        assert.same({ "not_sent", true, "unanswered", "refused", "unanswered" },
          { r.kind, r.not_sent, r.stopped, r.cause.kind, r.cause.reason }, i)
      end
      assert.equal(4, emu:stats().requests)
    end)

    -- Three signed requests in a row without an answer (an endpoint that hangs) and no refusal:
    -- nothing signed for a while (the gateway's count may stand at three), then one request,
    -- whose success clears the count; a request that never went out (a refused connection)
    -- counts for nothing. (The one after the hold lost too makes four: nothing more, ever.)
    it("after three signed requests in a row without an answer, holds, then lets one go", function()
      local ids = create(4)
      emu:inject{ method = "DELETE", action = "hang", times = 3 }
      local flying, most = 0, 0
      local c = fx.client{ token = fixture.NONE, ak = emu.ak, sk = emu.sk, timeout = 0.3, max_attempts = 2,
        backoff_base = 0.01, backoff_cap = 0.01,
        on_request = function()
          flying = flying + 1
          most = math.max(most, flying)
        end,
        on_response = function() flying = flying - 1 end }
      for i, attempts in ipairs{ 2, 1 } do -- (the second's retry held: its last error stands)
        local e = raised(c.delete_bandwidth, c, ids[i])
        assert.same({ "transport", "timeout", attempts }, { e.kind, e.reason, e.attempts })
      end
      local held = raised(c.delete_bandwidth, c, ids[3])
      assert.same({ "refused", "unanswered", true, 0, false },
        { held.kind, held.reason, held.not_sent, held.attempts or 0, eip.could_have_acted(held) })
      assert.matches("Nothing is signed for 300 s", tostring(held))
      assert.equal(3, emu:stats().requests)
      local results, summary = c:delete_bandwidths({ ids[3], ids[4] })
      assert.same({ "refused", "not_sent", "unanswered" }, { results[1].kind, results[2].kind, summary.stopped })
      assert.equal(3, emu:stats().requests, "nothing sent while held")
      local core = require "eip.core"
      local monotime = core.monotime
      core.monotime = function() return monotime() + 301 end
      local ok, err = pcall(function()
        -- one at a time after the hold; an answer that passed the check clears the count
        most = 0
        local res = c:delete_bandwidths({ ids[3], ids[4] }, { concurrency = 8 })
        assert.same({ 204, 204 }, { res[1].status, res[2].status })
        assert.equal(1, most, "one at a time until one is answered")
      end)
      core.monotime = monotime
      assert(ok, err)
      -- A refused connection: nothing went out, nothing counted.
      local closed = fx.client{ endpoint = "http://127.0.0.1:" .. require("spec.support.host").closed_port(),
        token = fixture.NONE, ak = emu.ak, sk = emu.sk, max_attempts = 1 }
      for _ = 1, 6 do
        local e = raised(closed.delete_bandwidth, closed, ids[1])
        assert.same({ "transport", "connect", true }, { e.kind, e.reason, e.unsent })
      end
    end)

    -- Deletes ids[1..5] in a batch of an AK/SK client (each answered after 0.5 s) whose
    -- on_request hook runs nested(c) once, as the fifth delete starts: the probe went alone,
    -- then four at once, so every signing place is taken. Returns the batch's summary.
    local function batch_calling_from_hook(ids, nested)
      emu:inject{ method = "DELETE", action = "slow", delay = 0.5, times = -1 }
      local c
      local sent = 0
      c = fx.client{ token = fixture.NONE, ak = emu.ak, sk = emu.sk, timeout = 3, max_attempts = 1,
        on_request = function(info)
          if info.operation ~= "delete_bandwidth" then return end
          sent = sent + 1
          if sent == 5 then nested(c) end
        end }
      local _, summary = c:delete_bandwidths({ ids[1], ids[2], ids[3], ids[4], ids[5] }, { concurrency = 8 })
      return summary
    end

    -- A hook runs while its call holds a place: a signed call it makes when the four are taken
    -- (a batch's, here) fails at once, not sent, rather than wait for places its own batch
    -- cannot give back until the hook returns.
    it("a signed call from a hook, with every place taken, fails at once and sends nothing", function()
      local ids = create(6)
      local nested
      local summary = batch_calling_from_hook(ids, function(c) nested = { pcall(c.show_bandwidth, c, ids[6]) } end)
      assert.equal(5, summary.deleted)
      assert.is_false(nested[1])
      local err = nested[2]
      assert.same({ true, 0 }, { err.not_sent, err.attempts }, tostring(err))
      assert.matches("called from a hook or a batch's on_result while this client had 4 signed requests", err.message)
      for _, r in ipairs(emu:requests()) do assert.not_equal("GET", r.method) end
    end)

    it("a batch run from a hook, with every place taken, sends nothing and ends at once", function()
      local ids = create(7)
      local inner
      local summary = batch_calling_from_hook(ids, function(c)
        local results, s = c:delete_bandwidths({ ids[6], ids[7] })
        inner = { results = results, summary = s }
      end)
      assert.equal(5, summary.deleted)
      assert.same({ 0, 2 }, { inner.summary.deleted, inner.summary.not_sent })
      assert.matches("its batch was run from a hook or a batch's on_result", inner.results[1].message)
      assert.is_not_nil(emu:get_bandwidth(ids[6]))
      assert.is_not_nil(emu:get_bandwidth(ids[7]))
    end)

    -- Calls whose coroutine yields in on_request (a scheduler's) and is then closed, or dropped,
    -- held their places though nothing was sent: the next call waited its whole timeout for one
    -- and ended not sent. A dead coroutine's places are free; a suspended one's stay held (its
    -- call may go on), so the four in flight still bound the live ones.
    it_yielding("places taken by coroutines that died before their requests went out are free", function()
      local ids = create(10)
      local pausing = true
      local c = fx.client{ token = fixture.NONE, ak = emu.ak, sk = emu.sk, timeout = 1, max_attempts = 1,
        on_request = function() if pausing then coroutine.yield("paused") end end }
      local function paused(id)
        local co = coroutine.create(function() return c:delete_bandwidth(id) end)
        assert.same({ true, "paused" }, { coroutine.resume(co) })
        return co
      end
      local function no_place(id)
        pausing = false
        local e = raised(c.delete_bandwidth, c, id)
        pausing = true
        assert.is_true(e.not_sent, tostring(e))
        assert.matches("no place came free within its timeout %(1 s%) while this client had 4 signed", e.message)
      end
      local cos = {}
      for i = 1, 4 do cos[i] = paused(ids[i]) end
      no_place(ids[10]) -- four suspended: live, each may go on
      local close = coroutine.close -- luacheck: ignore 143 (Lua 5.4)
      if close then
        assert.is_true(close(cos[1]))
        assert.is_true(close(cos[2]))
      else
        cos[1], cos[2] = nil, nil
      end
      cos[3] = nil -- (collected: it can never go on either)
      collectgarbage()
      collectgarbage()
      pausing = false
      local t0 = socket.gettime()
      assert.equal(204, c:delete_bandwidth(ids[5]).status)
      assert.is_true(socket.gettime() - t0 < 0.5, "waited " .. (socket.gettime() - t0) .. " s for a place")
      pausing = true
      -- Four places again, taken now: cos[4]'s, taken at the start, may reach its expiry (the
      -- timeout and a second) while the next call waits, on a loaded machine.
      if close then assert.is_true(close(cos[4])) else cos[4] = nil end
      collectgarbage()
      for i = 6, 9 do cos[i] = paused(ids[i]) end
      no_place(ids[10])
      pausing = false
      for i = 6, 9 do
        local ok, res = coroutine.resume(cos[i])
        assert.is_true(ok, tostring(res))
        assert.equal(204, res.status)
      end
      for i = 1, 4 do assert.is_not_nil(emu:get_bandwidth(ids[i]), "nothing was sent for " .. i) end
    end)

    -- Coroutines dropped (neither resumed nor closed) in on_request give their places back only
    -- once collected, and a wait for a place allocates nothing: the collector never ran, so the
    -- next call waited its whole timeout (30 s by default) and failed not sent. With no place
    -- free and places held so, a full collection comes first.
    it_yielding("places of coroutines dropped before their requests went out come back at once", function()
      local ids = create(9)
      local pausing = true
      local c = fx.client{ token = fixture.NONE, ak = emu.ak, sk = emu.sk, timeout = 5, max_attempts = 1,
        on_request = function() if pausing then coroutine.yield("paused") end end }
      local function dropped(id)
        local co = coroutine.create(function() return c:delete_bandwidth(id) end)
        local ok, what = coroutine.resume(co)
        assert.same({ true, "paused" }, { ok, what })
      end
      for i = 1, 4 do dropped(ids[i]) end
      pausing = false
      local t0 = socket.gettime()
      assert.equal(204, c:delete_bandwidth(ids[5]).status)
      assert.is_true(socket.gettime() - t0 < 1, "waited " .. (socket.gettime() - t0) .. " s for a place")
      -- A batch likewise, its four places at once.
      pausing = true
      for i = 1, 4 do dropped(ids[i]) end
      pausing = false
      t0 = socket.gettime()
      local _, summary = c:delete_bandwidths({ ids[6], ids[7], ids[8], ids[9] }, { concurrency = 4 })
      assert.same({ 4, 0 }, { summary.deleted, summary.not_sent })
      assert.is_true(socket.gettime() - t0 < 1, "the batch waited " .. (socket.gettime() - t0) .. " s for places")
      for i = 1, 4 do assert.is_not_nil(emu:get_bandwidth(ids[i]), "nothing was sent for " .. i) end
    end)

    -- Where nothing can yield, a signed call that finds no place free fails at once: a wait would
    -- stop the worker's own requests that hold places. Not in nginx's master (init_by_lua) nor in
    -- init_worker_by_lua, where the process serves no request: there the places are the
    -- workers', given back as their answers come. A reload's start-up check in init_by_lua, made
    -- while the workers had four signed requests in flight, failed at once, and nginx kept its
    -- old configuration. (The phase is the transport's word; the four requests are calls paused
    -- in on_request, let go by the first wait for a place.)
    it_yielding("in init_by_lua and init_worker_by_lua a signed call waits for a place, elsewhere fails", function()
      local transport = require "eip.transport"
      local phase = transport.phase
      local ids = create(25)
      local n = 0
      local function next_id()
        n = n + 1
        return ids[n]
      end
      -- Four calls holding the places, paused before their requests, and the phase `name`: the
      -- call then made, and a batch of one, as the waits for a place let the four go.
      local function holding_places(name, call)
        local pausing, paused, waits = true, {}, 0
        local c = fx.client{ token = fixture.NONE, ak = emu.ak, sk = emu.sk, timeout = 2, max_attempts = 1,
          on_request = function() if pausing then coroutine.yield("paused") end end,
          sleep = function()
            waits = waits + 1
            pausing = false
            for i, co in pairs(paused) do
              paused[i] = nil
              local ok, res = coroutine.resume(co)
              assert(ok and res.status == 204, tostring(res))
            end
          end }
        for i = 1, 4 do
          local id = next_id()
          paused[i] = coroutine.create(function() return c:delete_bandwidth(id) end)
          assert.same({ true, "paused" }, { coroutine.resume(paused[i]) })
        end
        pausing = false
        transport.phase = function() return name end
        local ok, res = pcall(call, c, next_id())
        transport.phase = phase
        assert(ok, tostring(res))
        return res, waits
      end
      local ok, err = pcall(function()
        for _, name in ipairs{ "init", "init_worker" } do
          local res, waits = holding_places(name, function(c, id) return c:delete_bandwidth(id) end)
          assert.equal(204, res.status, name)
          assert.is_true(waits > 0, name)
          local results = holding_places(name, function(c, id) return c:delete_bandwidths({ id }) end)
          assert.is_true(results[1].ok, name .. ": " .. tostring(results[1]))
        end
        local e = holding_places("log", function(c, id) return select(2, pcall(c.delete_bandwidth, c, id)) end)
        assert.same({ true, 0 }, { e.not_sent, e.attempts }, tostring(e))
        assert.matches("called where nginx cannot yield", e.message)
      end)
      transport.phase = phase
      assert(ok, err)
    end)

    -- Four signed requests in flight when the key starts failing (here the clock, an hour off):
    -- all four refused, one short of the gateway's lock. The advice said "the last 3": the
    -- operator must know that one more refused signature, from anything using the key, locks it.
    it("says how many signatures in a row were refused when a batch had more in flight", function()
      local ids = create(20)
      local c = fx.client{ token = fixture.NONE, ak = emu.ak, sk = emu.sk, max_attempts = 1 }
      local n = 0
      local ok, err = pcall(function()
        local results, summary = c:delete_bandwidths(ids, { concurrency = 4, on_result = function()
          n = n + 1
          if n == 2 then emu:set_clock_offset(3600) end
        end })
        local refused = 0
        for _, r in ipairs(results) do if r.status == 401 then refused = refused + 1 end end
        assert.equal("auth", summary.stopped)
        local e = raised(c.delete_bandwidth, c, ids[20])
        assert.is_true(e.not_sent)
        assert.equal(refused, emu:stats().auth_failures)
        assert.matches("the last " .. refused .. " signatures with this AK/SK were refused", e.advice)
        assert.is_true(refused >= 3 and refused <= 4, refused)
        assert.equal(0, emu:stats().aksk_locks)
      end)
      emu:set_clock_offset(0)
      assert(ok, err)
    end)

    -- A batch aborted while its request was still in the TLS handshake (a server that takes
    -- connections and never answers the handshake): nothing of it was sent, so no signature the
    -- gateway could have refused unseen. Each such abort counted as an answer lost: three held
    -- the key for 300 s, four stopped it for good. Reported as not sent, could not have acted.
    it("an abort before the request went out is no answer lost, and says nothing was sent", function()
      local silent = assert(socket.bind("127.0.0.1", 0)) -- (the kernel completes the connects)
      local _, port = silent:getsockname()
      local c = fx.client{ token = fixture.NONE, ak = emu.ak, sk = emu.sk, max_attempts = 1,
        endpoint = "https://127.0.0.1:" .. port }
      local ok, err = pcall(function()
        for round = 1, 4 do
          local deadline = socket.gettime() + 0.3
          local results, summary = c:delete_bandwidths({ "bw-" .. round }, {
            cancel = function() if socket.gettime() > deadline then return "abort" end end })
          local r = results[1]
          assert.same({ "aborted", 1, 0, "interrupted", true, true, false },
            { summary.stopped, summary.not_sent, summary.failed, r.kind, r.cancelled, r.not_sent,
              eip.could_have_acted(r) }, tostring(r))
          assert.matches("nothing was sent", tostring(r))
        end
      end)
      silent:close()
      assert(ok, err)
      -- not held: the next call goes out (and finds no server now)
      local e = raised(c.delete_bandwidth, c, "bw-5")
      assert.same({ "transport", "connect" }, { e.kind, e.reason }, tostring(e))
    end)

    it("count only in a row: another answer in between resets the count", function()
      local c = fx.client{ token = fixture.NONE, ak = emu.ak, sk = emu.sk, max_attempts = 1 }
      for round = 1, 3 do
        for _ = 1, 2 do
          emu:inject{ method = "DELETE", status = 401, body = { error_code = "APIGW.0301", error_msg = "x" } }
          assert.equal(401, raised(c.delete_bandwidth, c, "bw-" .. round).status)
        end
        assert.equal(404, raised(c.delete_bandwidth, c, fixture.absent_id(round)).status) -- accepted signature
      end
      assert.equal(9, api_requests())
    end)

    it("the emulator models the gateway's lock: five failures lock the AK, even for a good signature", function()
      emu:set_knobs{ aksk_lock_seconds = 60 }
      for _ = 1, 5 do
        local c = fx.client{ token = fixture.NONE, ak = emu.ak, sk = "wrong-secret-key-0000000000000000000000",
          max_attempts = 1 }
        raised(c.delete_bandwidth, c, "bw-1")
      end
      assert.equal(1, emu:stats().aksk_locks)
      local good = fx.client{ token = fixture.NONE, ak = emu.ak, sk = emu.sk, max_attempts = 1 }
      local err = raised(good.delete_bandwidth, good, "bw-1")
      assert.equal(401, err.status)
      assert.matches("AK access failed to reach the limit,forbidden", err.message, 1, true)
    end)
  end)

  describe("drain", function()
    local terms = { charge_mode = "bandwidth", size = 1 }

    it("refuses a prepaid bandwidth after the show, naming the order, and changes nothing", function()
      local id = emu:create_bandwidth{ size = 10, publicip_ids = { "eip-1", "eip-2" },
        billing_info = "CS2611250930XYZ:0a1b2c3d4e5f:cn-north-4:35f2b308f5d64441a6fa7999fbcd4321" }
      emu:reset_counters()
      local c = fx.client()
      local err = raised(c.drain_and_delete_bandwidth, c, id, terms)
      assert.same({ "refused", "prepaid", "CS2611250930XYZ" }, { err.kind, err.reason, err.order_id })
      assert.matches("unsubscribe", err.message)
      assert.matches("^eip: refused: ", tostring(err))
      assert.equal(1, api_requests("GET"))
      assert.equal(1, api_requests())
      assert.equal(2, #emu:get_bandwidth(id).publicip_info)
      assert.equal("refused", raised(c.plan_drain, c, id, terms).kind)
      -- A billing_info with no order id before its first colon: still refused, as such (on Lua
      -- 5.1 a raw format error once came out instead).
      id = emu:create_bandwidth{ size = 10, publicip_ids = { "eip-3" }, billing_info = ":0a1b2c3d4e5f:cn-north-4" }
      err = raised(c.drain_and_delete_bandwidth, c, id, terms)
      assert.same({ "refused", "prepaid" }, { err.kind, err.reason })
      assert.matches("(order not given)", err.message, 1, true)
    end)

    -- Only a string billing_info was read as prepaid: an object or a number passed as
    -- pay-per-use, and the drain moved the EIPs onto new bills before a delete refused 409.
    it("moves nothing when the show's billing_info is no string (it cannot tell prepaid)", function()
      for i, billing in ipairs{ { order_id = "CS2026" }, 12345, true } do
        local eip_id = "eip-b" .. i
        local id = emu:create_bandwidth{ size = 10, publicip_ids = { eip_id } }
        emu:inject{ method = "GET", path = "/bandwidths/", status = 200, body = { bandwidth = { id = id,
          share_type = "WHOLE", status = "NORMAL", billing_info = billing,
          publicip_info = { { publicip_id = eip_id } } } } }
        emu:reset_counters()
        local c = fx.client()
        local err = raised(c.drain_and_delete_bandwidth, c, id, terms)
        assert.same({ "http", "Unusable Answer", "show" }, { err.kind, err.reason, err.stage })
        assert.same({ {}, {}, {} }, { err.moved, err.not_moved, err.uncertain })
        assert.matches("billing_info", err.message)
        assert.equal(1, api_requests())
        assert.equal(1, #emu:get_bandwidth(id).publicip_info)
      end
    end)

    -- A missing or mistyped share_type or status read as "dedicated" or "frozen": a refusal
    -- saying something false of the bandwidth, with a Lua table's address in its message.
    it("moves nothing when the show's share_type or status is no string, and says the answer is unusable", function()
      for i, fields in ipairs{ { status = "NORMAL" }, { share_type = { a = 1 }, status = "NORMAL" },
          { share_type = "WHOLE" }, { share_type = "WHOLE", status = { "NORMAL" } } } do
        local eip_id = "eip-s" .. i
        local id = emu:create_bandwidth{ size = 10, publicip_ids = { eip_id } }
        local shown = { id = id, publicip_info = { { publicip_id = eip_id } } }
        for k, v in pairs(fields) do shown[k] = v end
        emu:inject{ method = "GET", path = "/bandwidths/", status = 200, body = { bandwidth = shown } }
        emu:reset_counters()
        local c = fx.client()
        local err = raised(c.drain_and_delete_bandwidth, c, id, terms)
        assert.same({ "http", "Unusable Answer", "show" }, { err.kind, err.reason, err.stage })
        assert.matches(fields.share_type == "WHOLE" and "status" or "share_type", err.message)
        assert.is_nil(err.message:find("table: ", 1, true), err.message)
        assert.equal(1, api_requests())
        assert.equal(1, #emu:get_bandwidth(id).publicip_info)
      end
    end)

    -- Any status but NORMAL is refused (reason "frozen"), and the message says which: the real
    -- service shows a new bandwidth as CREATING until it is ready (Huawei's Terraform provider
    -- waits from CREATING to NORMAL after a create), which is no freeze, and must not send the
    -- user to look for arrears.
    for status, frozen in pairs{ FREEZED = true, CREATING = false } do
      it("refuses a bandwidth in status " .. status .. " after the show", function()
        local id = emu:create_bandwidth{ size = 10, status = status, publicip_ids = { "eip-1" } }
        emu:reset_counters()
        local c = fx.client()
        local err = raised(c.drain_and_delete_bandwidth, c, id, terms)
        assert.same({ "refused", "frozen", status }, { err.kind, err.reason, err.bandwidth_status })
        assert.truthy(err.message:find("status " .. status .. ", not NORMAL", 1, true), err.message)
        assert.equal(frozen, err.message:find("arrears", 1, true) ~= nil, err.message)
        assert.equal(1, api_requests())
      end)
    end

    it("removes IPv6 ports as 5_dualStack", function()
      local id = emu:create_bandwidth{ size = 10,
        publicip_ids = { "eip-v4", { publicip_id = "port-v6", ip_version = 6 } } }
      local c = fx.client()
      local plan = c:plan_drain(id, terms)
      assert.same({ 4, 6 }, { plan.eips[1].ip_version, plan.eips[2].ip_version })
      local res = c:drain_and_delete_bandwidth(id, terms)
      assert.is_true(res.deleted)
      assert.same({ "eip-v4", "port-v6" }, res.removed)
      local body
      for _, r in ipairs(emu:requests()) do
        if r.method == "POST" then body = require("cjson").decode(r.body) end
      end
      assert.equal("5_dualStack", body.bandwidth.publicip_info[2].publicip_type)
      assert.is_nil(body.bandwidth.publicip_info[1].publicip_type)
    end)

    it("the emulator refuses an IPv6 port removed without 5_dualStack", function()
      local id = emu:create_bandwidth{ size = 10, publicip_ids = { { publicip_id = "port-v6", ip_version = 6 } } }
      local c = fx.client{ max_attempts = 1 }
      local err = raised(c.remove_eips_from_bandwidth, c, id, { "port-v6" }, terms)
      assert.same({ 400, "VPC.0323" }, { err.status, err.code })
    end)

    -- The insert page's example shows a dual-stack port as ip_version 4, publicip_type
    -- 5_dualStack, an IPv4-mapped address: the emulator enforced the rule only for ip_version 6,
    -- so a client that forgot the type for such a port passed against it.
    it("removes a dual-stack port shown as ip_version 4 as 5_dualStack; the emulator requires it", function()
      local dual = { publicip_id = "port-ds", ip_version = 4, publicip_type = "5_dualStack" }
      local id = emu:create_bandwidth{ size = 10, publicip_ids = { dual } }
      local c = fx.client{ max_attempts = 1 }
      local err = raised(c.remove_eips_from_bandwidth, c, id, { "port-ds" }, terms)
      assert.same({ 400, "VPC.0323" }, { err.status, err.code })
      local res = c:drain_and_delete_bandwidth(id, terms)
      assert.same({ true, { "port-ds" } }, { res.deleted, res.removed })
    end)

    it("asks confirm with the plan; a no changes nothing", function()
      local id = emu:create_bandwidth{ size = 10, publicip_ids = { "eip-1" } }
      local seen
      emu:reset_counters()
      local c = fx.client()
      local err = raised(c.drain_and_delete_bandwidth, c, id, { charge_mode = "traffic", size = 2,
        confirm = function(plan) seen = plan; return false end })
      assert.same({ "refused", "not_confirmed" }, { err.kind, err.reason })
      assert.same({ id, 1, "eip-1", 2, "traffic", 2 }, { seen.bandwidth_id, #seen.eips, seen.eips[1].publicip_id,
        seen.size, seen.charge_mode, seen.requests })
      assert.equal(1, api_requests())
      local res = c:drain_and_delete_bandwidth(id, { charge_mode = "traffic", size = 2,
        confirm = function() return true end })
      assert.is_true(res.deleted)
    end)

    -- Ctrl-C at the eip command's question ends the read of the answer: not a "no" of the user's
    -- (refused, not_confirmed), but an interruption, as a cancel after the show.
    it("a confirm that does not approve while cancel says stop is interrupted, not refused", function()
      local id = emu:create_bandwidth{ size = 10, publicip_ids = { "eip-1", "eip-2" } }
      local stop = false
      emu:reset_counters()
      local c = fx.client()
      local err = raised(c.drain_and_delete_bandwidth, c, id, { charge_mode = "traffic", size = 2,
        cancel = function() return stop end, confirm = function() stop = true; return nil end })
      assert.same({ "interrupted", true, "show", {}, { "eip-1", "eip-2" } },
        { err.kind, err.cancelled, err.stage, err.moved, err.not_moved })
      assert.matches("interrupted at the confirmation: nothing was moved or deleted", err.message, 1, true)
      assert.equal(1, api_requests())
      assert.equal(2, #emu:get_bandwidth(id).publicip_info)
    end)
  end)

  describe("repeated, cancelled and awaited work", function()
    it("sends a repeated id once; every position gets the outcome", function()
      local a, b = emu:create_bandwidth{ size = 1 }, emu:create_bandwidth{ size = 1 }
      emu:reset_counters()
      local c = fx.client()
      local seen = {}
      local results, summary = c:delete_bandwidths({ a, b, a, a }, { concurrency = 4,
        on_result = function(i) seen[#seen + 1] = i end })
      assert.equal(2, api_requests("DELETE"))
      for i = 1, 4 do assert.equal(204, results[i].status, "position " .. i) end
      assert.is_true(results[1] ~= results[3], "a table per position")
      assert.same({ 4, 4, 2 }, { summary.deleted, #seen, summary.repeated })
    end)

    it("stops when on_result returns eip.STOP: the ids not sent are listed", function()
      local ids = create(10)
      local c = fx.client()
      local results, summary = c:delete_bandwidths(ids, { concurrency = 1,
        on_result = function(i) if i == 3 then return eip.STOP end end })
      assert.same({ 3, 7, "cancelled" }, { summary.deleted, summary.not_sent, summary.stopped })
      for i = 4, 10 do
        assert.is_true(results[i].not_sent)
        assert.matches("the batch was cancelled", tostring(results[i]))
      end
      assert.equal(7, #emu:bandwidths())
    end)

    it("asks the cancel function between requests: abort ends what is in flight", function()
      local ids = create(6)
      for i = 2, 6 do emu:inject{ method = "DELETE", path = emu:delete_path(ids[i]), action = "hang" } end
      local c = fx.client{ max_attempts = 1 }
      -- Asked once per turn of the batch's loop: the probe goes alone until it is answered (one
      -- turn or more, on a slow machine); after its result, one turn starts ids 2-4 (which hang
      -- through the turn's wait), the next aborts.
      local asked, probed = 0, nil
      local results, summary = c:delete_bandwidths(ids, { concurrency = 3,
        on_result = function(i) if i == 1 then probed = asked end end,
        cancel = function()
          asked = asked + 1
          if probed and asked >= probed + 2 then return "abort" end
        end })
      assert.equal("aborted", summary.stopped)
      assert.equal(204, results[1].status)
      for i = 2, 4 do assert.equal("interrupted", results[i].kind, "in flight: " .. i) end
      for i = 5, 6 do assert.is_true(results[i].not_sent, "never sent: " .. i) end
      assert.same({ 1, 3, 2 }, { summary.deleted, summary.failed, summary.not_sent })
    end)

    -- An answer that came before the abort is reported as the server gave it: a 204 that had
    -- arrived is a deleted bandwidth, not an interrupted request.
    it("abort still reports the answers that had arrived", function()
      local ids = create(3)
      emu:inject{ method = "DELETE", path = emu:delete_path(ids[2]), action = "slow", delay = 0.3 }
      emu:inject{ method = "DELETE", path = emu:delete_path(ids[3]), action = "hang" }
      local c = fx.client{ max_attempts = 1 }
      -- The probe goes alone until answered; after its result, one turn starts ids 2-3 (nothing
      -- answers within the turn's wait), and at the next, id 2's answer arrives while the cancel
      -- function is asked, which then aborts.
      local asked, probed = 0, nil
      local results, summary = c:delete_bandwidths(ids, { concurrency = 3,
        on_result = function(i) if i == 1 then probed = asked end end,
        cancel = function()
          asked = asked + 1
          if not probed or asked < probed + 2 then return nil end
          -- id 2's answer: the emulator deletes it once its 0.3 s are over, and the 204 follows
          -- at once (half a second for it to arrive).
          local deadline = socket.gettime() + 10
          while emu:get_bandwidth(ids[2]) do
            assert(socket.gettime() < deadline, "id 2 was not deleted")
            socket.sleep(0.05)
          end
          socket.sleep(0.5)
          return "abort"
        end })
      assert.equal("aborted", summary.stopped)
      assert.is_nil(emu:get_bandwidth(ids[2]))
      assert.same({ 204, 204, "interrupted" }, { results[1].status, results[2].status, results[3].kind })
      assert.same({ 2, 1 }, { summary.deleted, summary.failed })
    end)

    -- A delete of a bandwidth still readable `visible_for` seconds after its 204, waited for
    -- `wait` seconds at most: its result.
    local function deleted_with_wait(visible_for, wait)
      emu:set_knobs{ deleted_visible_for = visible_for }
      local c = fx.client{ sleep = require("eip.core").sleep }
      return c:delete_bandwidth(create(1)[1], { wait = wait })
    end

    it("waits after the 204 until the bandwidth can no longer be read", function()
      local res = deleted_with_wait(1.2, 30)
      assert.is_true(res.deleted)
      assert.is_true(res.waited >= 1, "readable for 1.2 s after the 204, waited " .. res.waited)
      assert.is_true(api_requests("GET") >= 2)
    end)

    -- The pause that would run past the end is cut short: a last read before the end (a wait
    -- of 3.4 s once read at 0, 0.5 and 1.5 s and gave up there, its next pause past the end).
    it("reads once more before its end: a bandwidth gone within the wait is no wait_timeout #once", function()
      local res = deleted_with_wait(2.2, 2.8)
      assert.is_true(res.deleted)
      assert.is_true(res.waited >= 2.2 and res.waited < 2.8, "waited " .. res.waited)
      assert.equal(4, api_requests("GET"), "at 0, 0.5, 1.5 and before 2.8 s")
    end)

    it("a wait that ends first is a wait_timeout error, not a failed delete", function()
      emu:set_knobs{ deleted_visible_for = 30 }
      local id = create(1)[1]
      local c = fx.client{ sleep = function() end }
      local err = raised(c.delete_bandwidth, c, id, { wait = 2 })
      assert.same({ "wait_timeout", true, id }, { err.kind, err.deleted, err.bandwidth_id })
      assert.is_nil(emu:get_bandwidth(id))
      assert.equal("wait", raised(c.delete_bandwidth, c, id, { wait = "long" }).argument)
    end)

    -- The eip command leaves a wait's time out of a delete's: an interrupted wait says how long
    -- it had waited, as a finished one does.
    it("a wait its cancel ends says how long it waited", function()
      emu:set_knobs{ deleted_visible_for = 30 }
      local id = create(1)[1]
      local c = fx.client{}
      local started
      local err = raised(c.drain_and_delete_bandwidth, c, id, { charge_mode = "bandwidth", size = 1, wait = 10,
        cancel = function()
        started = started or socket.gettime()
        return socket.gettime() - started > 0.6
      end })
      assert.same({ "interrupted", true }, { err.kind, err.deleted })
      assert.is_number(err.waited)
      assert.is_true(err.waited >= 0.4 and err.waited < 5, tostring(err.waited))
    end)

    -- A wait shorter than a read is given (50 ms) would end before its first read went out: the
    -- delete, done, would come back as a "not sent" transport error.
    it("a wait shorter than a read can be is a usage error, and nothing is sent", function()
      local c = fx.client{}
      local id = create(1)[1]
      emu:reset_counters()
      for _, wait in ipairs{ 0, 0.01, 0.049 } do
        assert.same({ "usage", "wait" }, { raised(c.delete_bandwidth, c, id, { wait = wait }).kind,
          raised(c.delete_bandwidth, c, id, { wait = wait }).argument })
        assert.equal("wait", raised(c.delete_bandwidths, c, { id }, { wait = wait }).argument)
      end
      assert.equal(0, api_requests())
      assert.is_table(emu:get_bandwidth(id))
      -- The least wait reads once: its first read is given the least time an attempt needs.
      local res = c:delete_bandwidth(id, { wait = 0.05 })
      assert.same({ 204, "number" }, { res.status, type(res.waited) })
      assert.equal(2, api_requests(), "the delete and one read")
    end)

    -- A refused key while waiting ends the wait (nothing more is signed), but the delete went
    -- through: the error says so.
    it("a batch's wait signs nothing more after a refused read", function()
      emu:set_knobs{ deleted_visible_for = 30 }
      local ids = create(6)
      local c = fx.client{ sleep = function() end }
      emu:inject{ method = "GET", status = 401, times = -1,
        body = { error_code = "APIGW.0301", error_msg = "Incorrect IAM authentication information" } }
      local results, summary = c:delete_bandwidths(ids, { wait = 10 })
      assert.equal(6, summary.deleted)
      assert.equal(1, api_requests("GET"), "one refused read, then nothing more")
      -- The id whose read was refused has that 401; each one after it a wait not sent, for it.
      local read = 0
      for i, res in ipairs(results) do
        assert.same({ true, res.bandwidth_id }, { res.deleted, ids[i] }, "id " .. i)
        assert.equal(ids[i], res.wait_error.bandwidth_id)
        if res.wait_error.status == 401 then
          read = read + 1
        else
          assert.same({ true, "auth", 401 }, { res.wait_error.not_sent, res.wait_error.stopped,
            res.wait_error.cause.status }, "id " .. i)
          assert.matches("/bandwidths/" .. ids[i], res.wait_error.path, 1, true)
        end
      end
      assert.equal(1, read)
    end)

    -- A batch stopped by an authentication failure sends nothing more: no wait's GET either.
    it("a batch stopped by an authentication failure waits for nothing", function()
      emu:set_knobs{ deleted_visible_for = 30 }
      local ids = create(3)
      local c = fx.client{ sleep = function() end, max_attempts = 1 }
      emu:inject{ method = "DELETE", path = emu:delete_path(ids[2]), status = 401,
        body = { error_code = "APIGW.0301", error_msg = "Incorrect IAM authentication information" } }
      local results, summary = c:delete_bandwidths(ids, { wait = 10, concurrency = 1 })
      assert.same({ "auth", 1, 1, 1 }, { summary.stopped, summary.deleted, summary.failed, summary.not_sent })
      assert.equal(0, api_requests("GET"), "no read after the refusal")
      assert.same({ true, "auth" }, { results[1].wait_error.not_sent, results[1].wait_error.stopped })
    end)

    -- A wait's reads end with the wait (each read's retries once took attempts x timeout), and a
    -- wait whose reads all failed says so, not that the bandwidth could still be read.
    it("a wait whose reads hang ends with the wait, with the reads' error", function()
      emu:set_knobs{ deleted_visible_for = 30 }
      local id = create(1)[1]
      local c = fx.client{ timeout = 5, sleep = function() end }
      emu:inject{ method = "GET", action = "hang", times = -1 }
      local t0 = socket.gettime()
      local err = raised(c.delete_bandwidth, c, id, { wait = 1 })
      local took = socket.gettime() - t0
      assert.is_true(took < 4, "the wait of 1 s took " .. took .. " s (reads of 5 s each, retried)")
      assert.same({ "transport", "timeout", true, "wait" }, { err.kind, err.reason, err.deleted, err.stage })
      assert.is_nil(emu:get_bandwidth(id))
    end)

    -- Also when another stop came first (on_result's STOP) and the refused delete came back after it.
    it("a batch with a refused delete waits for nothing, whatever stopped it first", function()
      emu:set_knobs{ deleted_visible_for = 30 }
      local ids = create(3)
      local c = fx.client{ sleep = function() end, max_attempts = 1 }
      -- (The first id goes alone, the batch's probe of the credentials; the next two at once.)
      emu:inject{ method = "DELETE", path = emu:delete_path(ids[2]), status = 401, delay = 0.3,
        body = { error_code = "APIGW.0301", error_msg = "Incorrect IAM authentication information" } }
      local results, summary = c:delete_bandwidths(ids, { wait = 10, concurrency = 2,
        on_result = function(_, id) if id == ids[3] then return eip.STOP end end })
      assert.same({ "cancelled", 2, 401 }, { summary.stopped, summary.deleted, results[2].status })
      assert.equal(0, api_requests("GET"), "no read after the refusal")
      for _, i in ipairs{ 1, 3 } do
        assert.same({ true, 401 }, { results[i].wait_error.not_sent, results[i].wait_error.cause.status })
      end
    end)

    it("a wait that a refused key ends says the delete went through", function()
      emu:set_knobs{ deleted_visible_for = 30 }
      local id = create(1)[1]
      local c = fx.client{ sleep = function() end }
      emu:inject{ method = "GET", status = 401,
        body = { error_code = "APIGW.0301", error_msg = "Incorrect IAM authentication information" } }
      local err = raised(c.delete_bandwidth, c, id, { wait = 10 })
      assert.same({ 401, true, "wait", id }, { err.status, err.deleted, err.stage, err.bandwidth_id })
      assert.is_nil(emu:get_bandwidth(id))
      -- a drain: its show passes, its wait's first read is refused; what it moved stays said
      local drained = emu:create_bandwidth{ size = 5, publicip_ids = { "eip-w1", "eip-w2" } }
      emu:inject{ method = "GET", action = "slow", delay = 0 }
      emu:inject{ method = "GET", status = 401,
        body = { error_code = "APIGW.0301", error_msg = "Incorrect IAM authentication information" } }
      err = raised(c.drain_and_delete_bandwidth, c, drained, { charge_mode = "bandwidth", size = 1, wait = 10 })
      assert.same({ 401, true, "wait" }, { err.status, err.deleted, err.stage })
      table.sort(err.moved)
      assert.same({ "eip-w1", "eip-w2" }, err.moved)
      assert.equal(204, err.result.status)
    end)

    -- The gateway's 404 for a read that never reached the service (or a 400, a 405) will not
    -- change: the wait ends at once with it, not minutes later saying the bandwidth could
    -- still be read; a 5xx is read again.
    it("a wait ends at once on an answer that reading again would not change", function()
      local c = fx.client{ sleep = function() end }
      for _, answer in ipairs{
        { 404, { error_code = "APIGW.0101", error_msg = "The API does not exist or has not been published" } },
        { 400, { code = "VPC.0301", message = "invalid" } }, { 405, { code = "x", message = "y" } } } do
        emu:reset()
        emu:set_knobs{ deleted_visible_for = 30 }
        local id = create(1)[1]
        emu:inject{ method = "GET", status = answer[1], body = answer[2], times = -1 }
        local err = raised(c.delete_bandwidth, c, id, { wait = 10 })
        assert.same({ "http", answer[1], true, "wait", id }, { err.kind, err.status, err.deleted, err.stage,
          err.bandwidth_id }, tostring(answer[1]))
        assert.equal(1, api_requests("GET"), "one read, not polled until the time is up")
        -- The delete acted: said by could_have_acted (it said "certainly not" for an answered
        -- 4xx of the read) and first in tostring (which showed the GET's 4xx alone).
        assert.is_true(eip.could_have_acted(err))
        assert.matches("^eip: deleted %(204%), then the wait's GET ", tostring(err))
      end
      emu:reset()
      emu:set_knobs{ deleted_visible_for = 30 }
      local id = create(1)[1]
      emu:inject{ method = "GET", status = 503, body = { code = "VPC.0302", message = "busy" }, times = 3 }
      local err = raised(c.delete_bandwidth, c, id, { wait = 2 })
      assert.same({ "wait_timeout", true }, { err.kind, err.deleted })
      assert.is_true(api_requests("GET") > 3, "a 503 is read again")
    end)

    it("a drain whose wait ends first keeps what it moved on the error, with its result", function()
      emu:set_knobs{ deleted_visible_for = 30 }
      local id = emu:create_bandwidth{ size = 5, publicip_ids = { "eip-1", "eip-2" } }
      local c = fx.client{ sleep = function() end }
      local err = raised(c.drain_and_delete_bandwidth, c, id, { charge_mode = "bandwidth", size = 1, wait = 2 })
      assert.same({ "wait_timeout", true, "wait" }, { err.kind, err.deleted, err.stage })
      -- (said once: "deleted (204), then the wait's ... -> deleted (204), but ..." said it twice)
      local _, said = tostring(err):gsub("deleted %(204%)", "")
      assert.equal(1, said, tostring(err))
      table.sort(err.moved)
      assert.same({ { "eip-1", "eip-2" }, {}, {} }, { err.moved, err.not_moved, err.uncertain })
      assert.same({ 204, true, id }, { err.result.status, err.result.deleted, err.result.bandwidth_id })
      assert.equal(err.moved, err.result.removed)
      assert.is_nil(emu:get_bandwidth(id))
    end)
  end)

  -- Functions of the caller's that the library calls mid-way: what they raise, or answer oddly,
  -- never turns what was sent into a raw error or a failure it was not.
  describe("the caller's functions", function()
    it("a log that raises changes nothing: the delete's 204 is its result", function()
      local id = create(1)[1]
      local c = fx.client{ log = function(line) if line:find("^eip: <") then error("disk full") end end }
      assert.equal(204, c:delete_bandwidth(id).status)
      assert.is_nil(emu:get_bandwidth(id))
    end)

    -- Also inside a coroutine (on Lua 5.1 a log is still called with pcall there).
    it("a log that raises inside a coroutine changes nothing: a delete's 204, a batch's results", function()
      local ids = create(3)
      local c = fx.client{ log = function(line) if line:find("^eip: <") then error("disk full") end end }
      local co = coroutine.create(function()
        local res = c:delete_bandwidth(ids[1])
        local results, summary = c:delete_bandwidths{ ids[2], ids[3] }
        return res, results, summary
      end)
      local ok, res, results, summary = coroutine.resume(co)
      assert.is_true(ok, tostring(res))
      assert.same({ 204, 2, 204 }, { res.status, summary.deleted, results[2].status })
      for _, id in ipairs(ids) do assert.is_nil(emu:get_bandwidth(id)) end
    end)

    it("a sleep that raises is replaced by the library's own for that wait", function()
      local id = create(1)[1]
      local lines = {}
      local c = fx.client{ backoff_base = 0.01, backoff_cap = 0.01, sleep = function() error("no sleep here") end,
        log = function(line) lines[#lines + 1] = line end }
      emu:inject{ method = "DELETE", status = 503 }
      local res = c:delete_bandwidth(id)
      assert.same({ 204, 2 }, { res.status, res.attempts })
      assert.truthy(table.concat(lines, "\n"):find("the sleep option raised an error", 1, true))
    end)

    -- Ctrl-C under lua or luajit (no catch_interrupts) raises "interrupted!" in the Lua code that
    -- runs next: the caller's sleep, in a retry's wait. Taken for a broken sleep, it was replaced
    -- by the library's own, the whole wait slept again, and the delete sent after the Ctrl-C.
    it("a Ctrl-C raised inside the sleep ends the call: nothing more is sent", function()
      local id = create(1)[1]
      local c = fx.client{ backoff_base = 0.01, backoff_cap = 0.01, sleep = function() error("interrupted!") end }
      emu:inject{ method = "DELETE", status = 503 }
      local ok, err = pcall(c.delete_bandwidth, c, id)
      assert.is_false(ok)
      assert.equal("string", type(err))
      assert.truthy(err:find("interrupted!$"), err)
      assert.equal(1, fixture.count_requests(emu, "DELETE"))
      assert.is_table(emu:get_bandwidth(id), "not deleted")
    end)

    -- The same Ctrl-C in a hook or in the log, the other functions of the caller's that run in
    -- the middle of a call (the interpreter raises it in whatever Lua code runs next).
    it("a Ctrl-C raised inside a hook or the log ends the call: nothing more is sent", function()
      local ids = create(2)
      for i, opts in ipairs{
        { on_response = function() error("interrupted!") end },
        { debug = true, log = function(line)
          if line:find("^eip: < 503") then error("stdin:1: interrupted!") end
        end },
      } do
        emu:reset_counters()
        opts.backoff_base, opts.backoff_cap = 0.01, 0.01
        local c = fx.client(opts)
        emu:inject{ method = "DELETE", status = 503 }
        local ok, err = pcall(c.delete_bandwidth, c, ids[i])
        assert.is_false(ok, i)
        assert.equal("string", type(err), i)
        assert.truthy(err:find("interrupted!$"), err)
        assert.equal(1, fixture.count_requests(emu, "DELETE"), i)
        assert.is_table(emu:get_bandwidth(ids[i]), "not deleted")
      end
    end)

    -- A coroutine scheduler's sleep (copas and the like) yields: guarded, it still does, also on
    -- Lua 5.1, which cannot yield across pcall.
    it("a sleep that yields to a scheduler still yields", function()
      local id = create(1)[1]
      local lines = {}
      local c = fx.client{ backoff_base = 0.01, backoff_cap = 0.01, sleep = function(s) coroutine.yield(s) end,
        log = function(line) lines[#lines + 1] = line end }
      emu:inject{ method = "DELETE", status = 503 }
      local co = coroutine.create(function() return c:delete_bandwidth(id) end)
      local yields, ok, value = 0, coroutine.resume(co)
      while ok and coroutine.status(co) == "suspended" do
        yields = yields + 1
        ok, value = coroutine.resume(co)
      end
      assert.is_true(ok, tostring(value))
      assert.same({ 204, 1 }, { value.status, yields })
      assert.is_nil(table.concat(lines, "\n"):find("raised", 1, true))
    end)

    -- A scheduler that keeps the thread that waits and resumes that one (copas's sleep, a
    -- socket wait): the caller's function must run on the caller's own thread. On Lua 5.1 it
    -- once ran in a coroutine of the library's: the scheduler resumed that one, and the call
    -- stayed suspended for ever (after its DELETE was sent).
    local function scheduler()
      local waiting = {}
      local s = {}
      function s.wait(value)
        waiting[#waiting + 1] = { coroutine.running(), value }
        return coroutine.yield()
      end
      function s.run(fn)
        local task = coroutine.create(fn)
        local outcome = { coroutine.resume(task) }
        local rounds = 0
        while #waiting > 0 and rounds < 100 do
          rounds = rounds + 1
          local w = table.remove(waiting, 1)
          local ok, err = coroutine.resume(w[1], w[2])
          if w[1] == task then outcome = { ok, err } end
        end
        return coroutine.status(task), outcome, rounds
      end
      return s
    end

    it("a sleep that waits on a scheduler keeping its thread: the call ends, on every Lua", function()
      local id = create(1)[1]
      local sched = scheduler()
      local c = fx.client{ backoff_base = 0.01, backoff_cap = 0.01, sleep = function() sched.wait() end }
      emu:inject{ method = "DELETE", status = 503 }
      local status, outcome, rounds = sched.run(function() return c:delete_bandwidth(id) end)
      assert.equal("dead", status)
      assert.is_true(outcome[1], tostring(outcome[2]))
      assert.same({ 204, 2, 1 }, { outcome[2].status, outcome[2].attempts, rounds })
    end)

    -- A client whose transport waits on the scheduler for its answer; sends() counts what it sent.
    local function scheduled_client(sched)
      local n = 0
      local t = { send = function()
        n = n + 1
        return sched.wait{ status = 204, body = "", request_id = "scheduled", elapsed = 0, new_connections = 0 }
      end, close = function() end }
      return eip.new{ endpoint = emu.url, token = emu.token, project_id = emu.project_id, max_attempts = 1,
        transport = t }, function() return n end
    end

    it("a transport that waits on a scheduler keeping its thread: one send, its answer, on every Lua", function()
      local sched = scheduler()
      local c, sends = scheduled_client(sched)
      local status, outcome = sched.run(function() return c:delete_bandwidth("bw-1") end)
      assert.equal("dead", status)
      assert.is_true(outcome[1], tostring(outcome[2]))
      assert.same({ 204, "scheduled", 1 }, { outcome[2].status, outcome[2].request_id, sends() })
    end)

    -- A batch runs its requests under pcall (what is in flight is cancelled when one raises):
    -- a transport yields through it where a coroutine can yield through pcall (see it_yielding).
    it_yielding("a batch's transport that waits on a scheduler keeping its thread: one send per id", function()
      local sched = scheduler()
      local c, sends = scheduled_client(sched)
      local results, summary = nil, nil
      local status, outcome = sched.run(function()
        results, summary = c:delete_bandwidths{ "bw-1", "bw-2" }
        return true
      end)
      assert.equal("dead", status)
      assert.is_true(outcome[1], tostring(outcome[2]))
      assert.same({ 2, 0, 2 }, { summary.deleted, summary.failed, sends() })
      assert.equal("scheduled", results[2].request_id)
    end)

    -- A function that yields only inside a coroutine ("else block"), called from the main thread:
    -- it must not be made to think it is in one (a raw "attempt to yield" error on Lua 5.1).
    it("a sleep and a transport that yield only inside a coroutine work from the main thread", function()
      local function in_coroutine()
        local co, main = coroutine.running()
        return co ~= nil and not main
      end
      local id = create(1)[1]
      local c = fx.client{ backoff_base = 0.01, backoff_cap = 0.01,
        sleep = function() if in_coroutine() then coroutine.yield() end end }
      emu:inject{ method = "DELETE", status = 503 }
      local res = c:delete_bandwidth(id)
      assert.same({ 204, 2 }, { res.status, res.attempts })
      local sends = 0
      local t = { send = function()
        sends = sends + 1
        if in_coroutine() then coroutine.yield() end
        return { status = 204, body = "", request_id = "blocked", elapsed = 0, new_connections = 0 }
      end, close = function() end }
      local tc = eip.new{ endpoint = emu.url, token = emu.token, project_id = emu.project_id, max_attempts = 1,
        transport = t }
      assert.same({ 204, "blocked" }, { tc:delete_bandwidth("bw-1").status, tc:delete_bandwidth("bw-2").request_id })
      local _, summary = tc:delete_bandwidths{ "bw-3", "bw-4" }
      assert.same({ 2, 4 }, { summary.deleted, sends })
    end)

    it("a batch's cancel that raises stops it: the rest not sent, no raw error", function()
      local ids = create(4)
      local c = fx.client{}
      local asked = 0
      local results, summary = c:delete_bandwidths(ids, { concurrency = 1, cancel = function()
        asked = asked + 1
        if asked > 2 then error("oops") end
      end })
      assert.equal("cancelled", summary.stopped)
      assert.equal(summary.total, summary.deleted + summary.not_sent)
      assert.is_true(summary.not_sent > 0)
      for _, r in ipairs(results) do assert.is_table(r) end
    end)

    -- show_bandwidth and list_bandwidths passed the caller's cancel on as it was: what it raised
    -- came out as a raw string, before the first request or in a backoff after a 503.
    it("a show's or a listing's cancel that raises stops it as interrupted, not a raw error", function()
      local id = create(1)[1]
      local c = fx.client{}
      local function boom() error("boom") end
      local calls = { function() return c:show_bandwidth(id, { cancel = boom }) end,
        function() return c:list_bandwidths{ cancel = boom } end }
      for _, call in ipairs(calls) do
        emu:reset_counters()
        local err = raised(call)
        assert.same({ "interrupted", true }, { err.kind, err.cancelled })
        assert.equal(0, api_requests())
      end
      -- In the backoff after a 503: the first answer read, then a stop, nothing more sent.
      local asked = 0
      emu:inject{ method = "GET", status = 503, body = { code = "VPC.0001", message = "busy" } }
      emu:reset_counters()
      local err = raised(c.show_bandwidth, c, id, { cancel = function()
        asked = asked + 1
        if asked > 1 then error("boom") end
      end })
      assert.same({ "interrupted", true }, { err.kind, err.cancelled })
      assert.equal(1, api_requests())
    end)

    it("only true confirms a drain: a prompt's \"n\" or a raise refuses it, nothing moved", function()
      local c = fx.client{}
      for i, answer in ipairs{ "n", "no", 0, "false", false, function() error("closed tty") end } do
        local id = emu:create_bandwidth{ size = 5, publicip_ids = { "c" .. i .. "a", "c" .. i .. "b" } }
        local err = raised(c.drain_and_delete_bandwidth, c, id, { charge_mode = "bandwidth", size = 1,
          confirm = function(plan) return type(answer) == "function" and answer(plan) or answer end })
        assert.same({ "refused", "not_confirmed" }, { err.kind, err.reason }, tostring(answer))
        assert.equal(2, #emu:get_bandwidth(id).publicip_info, "nothing moved")
      end
    end)

    -- A clock that stands still (os.clock in a process that sleeps, a frozen test clock) or goes
    -- back: what was slept for is due all the same; no wait is stretched by the step.
    it("a rate with a clock that stands still or goes back never holds a call or a batch", function()
      local ids = create(5)
      local asked, slept = 0, 0
      local c = fx.client{ rate = 20, clock = function() return 0 end, sleep = function(s) slept = slept + s end }
      local _, summary = c:delete_bandwidths(ids, { cancel = function()
        asked = asked + 1
        if asked > 2000 then return "abort" end -- (the old code waited here forever)
      end })
      assert.same({ 5, nil }, { summary.deleted, summary.stopped })
      assert.is_true(slept < 1, slept .. " s slept")
      local t, waits = 1000, {}
      local back = fx.client{ rate = 5, clock = function() t = t - 100; return t end,
        sleep = function(s) waits[#waits + 1] = s end }
      for _, id in ipairs(create(3)) do assert.equal(204, back:delete_bandwidth(id).status) end
      for _, w in ipairs(waits) do assert.is_true(w <= 0.2 + 1e-9, w .. " s waited") end
    end)

    -- A close() while a call of the client's runs (from its hook, its on_result, its sleep, or
    -- another coroutine while the call waits) freed the connections under it: the call's next
    -- request raised the C core's "session is closed", a raw string (a batch's multi likewise).
    -- The client is closed at once (a new call is a usage error), the call runs to its end, and
    -- the connections are freed once it returns.
    local function state(c) return tostring(c.transport.session):match("%((%a+)%)") end

    it("closing the client from its own hook or on_result: the call goes on, the client closes after", function()
      local id = create(1)[1]
      local c, inner
      c = fx.client{ on_request = function()
        c:close()
        inner = select(2, pcall(c.show_bandwidth, c, id))
      end }
      assert.equal(204, c:delete_bandwidth(id).status)
      assert.same({ "usage", "client" }, { inner.kind, inner.argument }, "a new call on it: closed")
      assert.is_true(c.closed)
      assert.equal("closed", state(c))
      c = fx.client()
      local results, summary = c:delete_bandwidths(create(3), { on_result = function(i)
        if i == 1 then c:close() end
      end })
      assert.same({ 3, 3 }, { summary.deleted, #results })
      assert.same({ true, "closed" }, { c.closed, state(c) })
      c:close() -- (again: harmless)
    end)

    it("closing the client from its sleep between retries: the retry goes, the call ends as it would", function()
      local id = create(1)[1]
      local c
      c = fx.client{ sleep = function() c:close() end, backoff_base = 0.01 }
      emu:inject{ method = "DELETE", status = 503, times = 1 }
      local res = c:delete_bandwidth(id)
      assert.same({ 204, 2 }, { res.status, res.attempts })
      assert.same({ true, "closed" }, { c.closed, state(c) })
      -- (one id: its retry is what the batch waits for, with nothing in flight, so it sleeps; with
      -- others in flight it waits on their transfers instead, and under load never slept)
      local ids = create(1)
      c = fx.client{ sleep = function() c:close() end, backoff_base = 0.01 }
      emu:inject{ method = "DELETE", status = 503, times = 1 }
      local _, summary = c:delete_bandwidths(ids, { concurrency = 2 })
      assert.same({ 1, 0 }, { summary.deleted, summary.failed })
      assert.is_true(c.closed)
    end)

    -- A scheduler's coroutine waits in on_request; another closes the client meanwhile.
    it_yielding("closed by another coroutine while a call waits: the call, resumed, ends as it would", function()
      local id = create(1)[1]
      local c = fx.client{ on_request = function() coroutine.yield("waiting") end }
      local co = coroutine.create(function() return c:delete_bandwidth(id) end)
      assert.same({ true, "waiting" }, { coroutine.resume(co) })
      c:close()
      assert.is_true(c.closed)
      assert.equal("open", state(c), "its call still runs")
      local ok, res = coroutine.resume(co)
      assert(ok, res)
      assert.equal(204, res.status)
      assert.equal("closed", state(c))
      assert.is_nil(emu:get_bandwidth(id))
    end)

    -- A call whose coroutine died inside it never leaves: counted as running for good, it held
    -- a close back until the client itself was collected (a module's client: never). And on
    -- Lua 5.1 inside a coroutine a call that raised was not protected, so it stayed counted.
    it("frees the handles at close once every call has ended, however it ended", function()
      local id = create(1)[1]
      local c = fx.client()
      local co = coroutine.create(function()
        return pcall(c.show_bandwidth, c, fixture.absent_id(7)) -- (raises a 404 inside the coroutine)
      end)
      local ok, caught, err = coroutine.resume(co)
      assert.same({ true, false, 404 }, { ok, caught, err.status })
      c:close()
      assert.equal("closed", state(c), "a call that raised in a coroutine")
      if rawget(coroutine, "close") then -- (Lua 5.4: a coroutine closed inside a call)
        c = fx.client{ on_request = function() coroutine.yield("waiting") end }
        co = coroutine.create(function() return c:delete_bandwidth(id) end)
        assert.same({ true, "waiting" }, { coroutine.resume(co) })
        assert.is_true(rawget(coroutine, "close")(co))
        c:close()
        assert.equal("closed", state(c), "a call whose coroutine was closed inside it")
      end
    end)

    -- close() while two calls sleep in a scheduler; one's coroutine then ends inside its call
    -- (closed, or on Lua 5.1 its sleep's raise uncaught): the other, the last to leave, frees the
    -- handles. The dead one was still counted there, and the transport stayed open for good.
    it("frees the handles when the last call leaves, another's coroutine having ended in its call", function()
      local kill
      if rawget(coroutine, "close") then
        kill = function(co) assert.is_true(rawget(coroutine, "close")(co)) end
      elseif not require("spec.support.coroutines").yields_through_pcall() then
        kill = function(co) assert.is_false((coroutine.resume(co, "raise"))) end
      else
        return -- (LuaJIT: only the collector ends such a coroutine)
      end
      local ids = create(2)
      local c = fx.client{ backoff_base = 0.01, backoff_cap = 0.01, sleep = function()
        if coroutine.yield("sleeping") == "raise" then error("the scheduler gave up") end
      end }
      emu:inject{ method = "DELETE", status = 503, times = 2 }
      local a = coroutine.create(function() return c:delete_bandwidth(ids[1]) end)
      local b = coroutine.create(function() return c:delete_bandwidth(ids[2]) end)
      assert.same({ true, "sleeping" }, { coroutine.resume(a) })
      assert.same({ true, "sleeping" }, { coroutine.resume(b) })
      c:close()
      assert.equal("open", state(c), "its calls still run")
      kill(b)
      local ok, res = coroutine.resume(a)
      assert(ok, res)
      assert.equal(204, res.status)
      assert.equal("closed", state(c), "the last call left")
    end)

    -- Inside nginx, coroutines of ended requests are reused, and one killed inside a callback (a
    -- client abort, ngx.exit from another thread) never counted its way out: the next request
    -- on it must not be taken for code running inside a callback (its signed calls would fail).
    -- Where nothing can yield, a signed call that finds no place free refuses to wait, whoever
    -- holds the places: a wait there is the system's sleep, and places other workers hold
    -- (signing_dict) may stay taken for as long as their batch runs (the worker froze 9 s).
    it("is stuck wherever nothing can yield, and only there", function()
      local pipeline = require "eip.pipeline"
      local provider = { secrets = {}, flying = {} }
      local r = pipeline.new{ endpoint = "http://127.0.0.1:9", host = "127.0.0.1:9", base_path = "",
        project_id = "p", provider = provider }
      r.blocking = function() return true end
      assert.is_true(r:stuck(), "no place held here: the rest by other workers")
      r.blocking = function() return false end
      assert.is_false(r:stuck(), "where it can yield, it waits")
      r.blocking = nil
      assert.is_false(r:stuck(), "outside nginx")
    end)

    -- (A callback that yields stands in for the killed request: see it_yielding.)
    it_yielding("counts a callback per request inside nginx: a killed request's count is not the next one's", function()
      local pipeline = require "eip.pipeline"
      local r = pipeline.new{ endpoint = "http://127.0.0.1:9", host = "127.0.0.1:9", base_path = "",
        project_id = "p", provider = { secrets = {} } }
      local first, second = {}, {}
      local fake = { ctx = first }
      rawset(_G, "ngx", fake)
      local ok, err = pcall(function()
        -- A callback that never returns (its request "killed"), asking each time it is resumed.
        local co = coroutine.create(function()
          r:callback(function()
            while true do coroutine.yield(r:reentered()) end
          end)
        end)
        assert.same({ true, true }, { coroutine.resume(co) }, "inside its callback")
        fake.ctx = second -- the coroutine now runs another request
        assert.same({ true, false }, { coroutine.resume(co) }, "the next request is not inside one")
        fake.ctx = first
        assert.same({ true, true }, { coroutine.resume(co) }, "(the first request's count stands)")
      end)
      rawset(_G, "ngx", nil)
      assert(ok, err)
      assert.is_false(r:reentered(), "outside nginx, on the main thread")
    end)

    it("could_have_acted and is_auth_failure read a value that is no eip error raw", function()
      local strict = setmetatable({ kind = "http", status = 409 }, { __index = function() error("INDEX BOOM") end })
      assert.is_false(eip.could_have_acted(strict)) -- its own fields, read raw: an answered 4xx
      assert.is_true(eip.could_have_acted("lua/x.lua:1: attempt to index a nil value")) -- unknown
      assert.is_false(eip.could_have_acted(nil))
      assert.is_false(eip.is_auth_failure(strict))
      assert.is_true(eip.is_auth_failure(setmetatable({ kind = "http", status = 401 }, getmetatable(strict))))
      -- Fields of other types (another library's error, decoded JSON) raised inside the handler.
      for _, odd in ipairs{ { kind = "http", path = "/v3/auth/tokens" }, { kind = "http", status = "403" },
        { kind = "http", status = 403, code = 5 }, { kind = "http", status = "401", path = "/v3/auth/tokens" } } do
        assert.same({ true, false }, { pcall(eip.is_auth_failure, odd) })
        local ok, acted = pcall(eip.could_have_acted, odd)
        assert.same({ true, "boolean" }, { ok, type(acted) })
      end
    end)

    -- A transport of the caller's may yield (to a scheduler of its own), on every Lua: the
    -- library calls it where a coroutine can yield through it (on Lua 5.1 not through a pcall).
    it("lets a transport of the caller's yield, on every Lua", function()
      local t = { send = function()
        coroutine.yield("waiting")
        return { status = 204, body = "", request_id = "yielded", elapsed = 0, new_connections = 0 }
      end, close = function() end }
      local c = eip.new{ endpoint = emu.url, token = emu.token, project_id = emu.project_id, max_attempts = 1,
        transport = t }
      local co = coroutine.create(function() return c:delete_bandwidth("bw-1") end)
      assert.same({ true, "waiting" }, { coroutine.resume(co) })
      local ok, res = coroutine.resume(co)
      assert.is_true(ok, tostring(res))
      assert.same({ 204, "yielded" }, { res.status, res.request_id })
    end)

    -- A whole-number status sent as a float (204.0) is that status: Lua 5.3+ would write "200.0"
    -- in the message, the result and the error.
    it("reads a caller's transport's whole-number float status as its integer", function()
      for _, status in ipairs{ 204.0, 200.0 } do
        local t = { send = function() return { status = status, body = "", request_id = "r1" } end,
          close = function() end }
        local c = eip.new{ endpoint = emu.url, token = emu.token, project_id = emu.project_id, max_attempts = 1,
          transport = t }
        local ok, res = pcall(c.delete_bandwidth, c, "bw-1")
        assert.equal(status == 204.0, ok)
        assert.equal(string.format("%d", status), tostring(res.status))
        if not ok then assert.matches("this 200 OK does not say", tostring(res), 1, true) end
      end
    end)

    -- Raising nil or false tells no bug apart either (pcall gives nil, which could_have_acted
    -- reads as "no"): the same failure, that may have acted. In a batch too, each id its entry.
    it("a transport of the caller's that answers no response is a transport failure, not a raw error", function()
      local RAISE_NIL, RAISE_FALSE = {}, {}
      for _, answer in ipairs{ false, {}, { status = "204" }, { status = 204.5 }, { status = 99 },
          { status = 204, body = 5 }, { curl_code = "7" }, { status = 404, body = "", request_id = {} },
          { status = 204, body = "", request_id = 7 }, RAISE_NIL, RAISE_FALSE } do
        local function send()
          if answer == RAISE_NIL then error() elseif answer == RAISE_FALSE then error(false) end
          return answer or nil
        end
        local c = eip.new{ endpoint = emu.url, token = emu.token, project_id = emu.project_id, max_attempts = 1,
          transport = { send = send, close = function() end } }
        local err = raised(c.delete_bandwidth, c, "bw-1")
        assert.same({ "transport", "other", true }, { err.kind, err.reason, eip.could_have_acted(err) })
        assert.matches("breaks the transport contract", tostring(err), 1, true)
        local results, summary = c:delete_bandwidths{ "bw-1", "bw-2" }
        assert.equal(2, summary.failed)
        for _, r in ipairs(results) do
          assert.same({ "transport", true }, { r.kind, eip.could_have_acted(r) })
        end
      end
    end)

    -- A response whose reading raises (an __index that raises for the fields it lacks), or
    -- whose fields are of other types than the contract's (a curl_error whose __tostring raises
    -- made tostring of the error raise; `resent = "yes"` passed as a success): the same failure,
    -- never the caller's raw error, in a single call and in a batch (whose results were all lost).
    -- A field the contract does not name is dropped, whatever it holds. (A review found it.)
    it("a caller's transport's response that raises when read or has fields of other types is that failure", function()
      local strict = setmetatable({ status = 204, body = "" }, { __index = function(_, k) error("no field " .. k) end })
      local bad_text = setmetatable({}, { __tostring = function() error("tostring raised") end })
      for _, answer in ipairs{ strict, { status = 0, curl_code = 7, curl_error = bad_text },
          { status = 0, curl_code = 7, curl_error = {} }, { status = 204, body = "", resent = "yes" },
          { status = 429, body = "", retry_after = {} }, { status = 204, body = "", elapsed = "1" },
          { status = 204, body = {} } } do
        local c = eip.new{ endpoint = emu.url, token = emu.token, project_id = emu.project_id, max_attempts = 1,
          transport = { send = function() return answer end, close = function() end } }
        local err = raised(c.delete_bandwidth, c, "bw-1")
        assert.same({ "transport", "other", true }, { err.kind, err.reason, eip.could_have_acted(err) })
        assert.matches("the transport's response breaks the transport contract", tostring(err), 1, true)
        local results, summary = c:delete_bandwidths{ "bw-1", "bw-2" }
        assert.equal(2, summary.failed)
        for _, r in ipairs(results) do
          assert.same({ "transport", "other" }, { r.kind, r.reason })
        end
      end
      local function client(answer)
        return eip.new{ endpoint = emu.url, token = emu.token, project_id = emu.project_id, max_attempts = 1,
          transport = { send = function() return answer end, close = function() end } }
      end
      local c = client({ status = 204, body = {} })
      assert.matches("field body is a table, not a string", tostring(raised(c.delete_bandwidth, c, "bw-1")), 1, true)
      c = client(strict)
      assert.matches("reading it raised .*no field", tostring(raised(c.delete_bandwidth, c, "bw-1")))
      c = client({ status = 204, body = "", request_id = "r1", mine = bad_text })
      assert.same({ true, "r1" }, { c:delete_bandwidth("bw-1").deleted, c:delete_bandwidth("bw-1").request_id })
    end)

    -- The contract says a transport never raises; a caller's may (a bug, a module that failed
    -- to load). Its error is that request's: a structured transport failure that may have acted
    -- (it may have been sent), its text kept (cut, redacted), in a single call and a batch alike:
    -- the batch's results for the other ids are kept. (Lua 5.1 in a coroutine: see the README.)
    it("a transport of the caller's whose send raises fails that request with an eip error", function()
      local LONG = string.rep("x", 5000)
      for _, value in ipairs{ "stack broke near " .. emu.token, { mine = true }, LONG } do
        local sent = 0
        local send = function(_, req)
          sent = sent + 1
          if req.url:find("bw-2", 1, true) then error(value, 0) end
          return { status = 204, body = "", request_id = "r" .. sent, elapsed = 0, new_connections = 0 }
        end
        local lines, outcomes = {}, {}
        local c = eip.new{ endpoint = emu.url, token = emu.token, project_id = emu.project_id, max_attempts = 3,
          transport = { send = send, close = function() end }, log = function(l) lines[#lines + 1] = l end,
          on_response = function(info) outcomes[#outcomes + 1] = info.outcome end }
        local err = raised(c.delete_bandwidth, c, "bw-2")
        assert.is_true(eip.is_error(err), tostring(err))
        assert.same({ "transport", "other", 1, false, true, 1 },
          { err.kind, err.reason, err.attempts, err.retryable, eip.could_have_acted(err), sent })
        assert.matches("the transport's send raised an error, which breaks the transport contract", tostring(err), 1,
          true)
        assert.same({ "other" }, outcomes) -- (on_response told: the transport failure's kind)
        assert.is_nil(tostring(err):find(emu.token, 1, true))
        assert.is_nil(table.concat(lines, "\n"):find(emu.token, 1, true))
        if value == LONG then assert.is_true(#err.message < 700, #err.message) end
        if type(value) == "string" and value ~= LONG then
          assert.matches("stack broke near <redacted>", err.message, 1, true)
        end
        local results, summary = c:delete_bandwidths{ "bw-1", "bw-2", "bw-3" }
        assert.same({ 2, 1, 0 }, { summary.deleted, summary.failed, summary.not_sent })
        assert.same({ true, "transport", true }, { results[1].ok, results[2].kind, results[3].ok })
        assert.is_true(eip.could_have_acted(results[2]))
        assert.is_nil(tostring(results[2]):find(emu.token, 1, true))
      end
    end)

    -- What send raised is cut to 512 bytes as a server's message is (c44f529): between UTF-8
    -- characters, not inside one (half of one left a message no strict JSON reader takes).
    it("cuts what a transport's send raised between UTF-8 characters", function()
      local valid_utf8 = require("eip.emulator.server.params").valid_utf8
      for _, char in ipairs{ "é", "带", "😀" } do
        for pad = 0, 3 do
          local value = string.rep("m", pad) .. string.rep(char, 600)
          local c = eip.new{ endpoint = emu.url, token = emu.token, project_id = emu.project_id,
            transport = { send = function() error(value, 0) end, close = function() end } }
          local err = raised(c.delete_bandwidth, c, "bw-1")
          local kept = err.message:match("%(see eip%.transport%): (.*)%.%.%.$")
          assert.is_true(kept ~= nil and valid_utf8(kept) and #kept > 512 - #char and #kept <= 512, char .. pad)
          assert.equal(value:sub(1, #kept), kept)
          assert.is_true(valid_utf8(err.message), char .. pad)
        end
      end
    end)

    -- The same in a coroutine whose transport yielded first (Lua 5.2 on, LuaJIT; Lua 5.1 cannot
    -- catch it there without breaking the yield: the README says so).
    it_yielding("a send that yields, then raises, in a coroutine fails that request with an eip error", function()
      local t = { send = function()
        coroutine.yield("waiting")
        error("broke near " .. emu.token, 0)
      end, close = function() end }
      local c = eip.new{ endpoint = emu.url, token = emu.token, project_id = emu.project_id, transport = t }
      local co = coroutine.create(function() return pcall(c.delete_bandwidth, c, "bw-1") end)
      assert.same({ true, "waiting" }, { coroutine.resume(co) })
      local _, ok, err = coroutine.resume(co)
      assert.is_false(ok)
      assert.same({ "transport", "other", true }, { err.kind, err.reason, eip.could_have_acted(err) })
      assert.matches("broke near <redacted>", err.message, 1, true)
    end)

    -- Nor does close: the client is closed all the same, what it raised goes to the log (redacted).
    it("client:close() does not raise what a transport of the caller's close raises", function()
      local lines = {}
      local c = eip.new{ endpoint = emu.url, token = emu.token, project_id = emu.project_id,
        transport = { send = function() end, close = function() error("close broke near " .. emu.token, 0) end },
        log = function(l) lines[#lines + 1] = l end }
      assert.same({ true }, { pcall(c.close, c) })
      assert.is_true(c.closed)
      local text = table.concat(lines, "\n")
      assert.matches("the transport's close raised an error: close broke near <redacted>", text, 1, true)
      local quiet = eip.new{ endpoint = emu.url, token = emu.token, project_id = emu.project_id,
        transport = { send = function() end, close = function() error({}) end } }
      assert.same({ true }, { pcall(quiet.close, quiet) })
    end)

    it("a clock that returns no number, or raises, is a usage error naming clock at eip.new", function()
      for _, clock in ipairs{ function() return nil end, function() return 0 / 0 end,
                              function() return math.huge end, function() error("broken") end } do
        local err = raised(fx.client, { rate = 5, clock = clock })
        assert.same({ "usage", "clock" }, { err.kind, err.argument })
      end
      assert.equal(0, api_requests())
    end)

    -- A clock whose numbers are huge (a nanosecond clock taken for seconds: 1.7e18) leaves a
    -- double no room for the rate's fractions of a second: every request went at once.
    it("keeps the rate with a clock whose readings are huge", function()
      local c = fx.client{ rate = 5, clock = function() return 1e16 + socket.gettime() end }
      local ids = create(6)
      local t0 = socket.gettime()
      for i = 1, 6 do assert.equal(204, c:delete_bandwidth(ids[i]).status) end
      assert.is_true(socket.gettime() - t0 >= 0.9, "6 deletes at 5/s took " .. (socket.gettime() - t0) .. " s")
    end)

    it("a clock that breaks mid-call never turns what was sent into a usage error", function()
      -- It works when read at eip.new, then returns nothing: the delete went out and acted,
      -- its answer lost; the call must say it could have acted, and a batch keep its results.
      local function breaking()
        local reads = 0
        return function()
          reads = reads + 1
          if reads > 1 then return nil end
          return 100
        end
      end
      local lines = {}
      local c = fx.client{ rate = 1000, clock = breaking(), timeout = 1, max_attempts = 1,
        log = function(l) lines[#lines + 1] = l end }
      local id = emu:create_bandwidth{ size = 5 }
      emu:inject{ method = "DELETE", action = "lose_answer" }
      local err = raised(c.delete_bandwidth, c, id)
      assert.equal("transport", err.kind)
      assert.is_true(eip.could_have_acted(err))
      assert.is_nil(emu:get_bandwidth(id))
      assert.matches("the clock option", table.concat(lines, "\n"), 1, true)
      local b = fx.client{ rate = 1000, clock = breaking() }
      local ids = { emu:create_bandwidth{ size = 5 }, emu:create_bandwidth{ size = 5 } }
      local results, summary = b:delete_bandwidths(ids, { concurrency = 1 })
      assert.same({ 2, 0 }, { summary.deleted, summary.failed })
      assert.same({ true, true }, { results[1].ok, results[2].ok })
    end)
  end)

  describe("server text", function()
    it("loses control characters and every secret, in errors, tostring and logs", function()
      local lines = {}
      local c = fx.client{ max_attempts = 1, log = function(l) lines[#lines + 1] = l end }
      emu:inject{ method = "DELETE", status = 500, headers = { ["X-Request-Id"] = "req-" .. emu.token },
        body = { code = "VPC.0302", message = "token " .. emu.token .. "\27[2J\r echoed" } }
      local err = raised(c.delete_bandwidth, c, "bw-1")
      local text = tostring(err) .. " " .. err.request_id .. " " .. err.message .. table.concat(lines, "\n")
      assert.is_nil(text:find(emu.token, 1, true))
      assert.is_nil(text:find("[\27\r]"))
      assert.equal("req-<redacted>", err.request_id)
      assert.matches("^token <redacted> %[2J  echoed$", err.message)
    end)

    -- A server may echo a credential whole, cut to a bound, JSON-escaped inside a message that
    -- is itself JSON, percent-encoded, or split by a line break: no piece of it may reach a
    -- person, in the error, its tostring, the debug log or the hooks.
    local ECHOES = {
      { "whole, in every captured header and the message", function(t)
          return { ["X-Request-Id"] = t, ["Retry-After"] = t, ["Location"] = t },
            { code = "VPC.0302", message = t } end },
      { "cut short by the bounds (headers 255 bytes, a message 512)", function(t)
          return { ["X-Request-Id"] = "id-" .. t }, { code = "VPC.0302", message = string.rep("m", 480) .. t } end },
      { "JSON-escaped inside a message that is itself a JSON document", function(t)
          return nil, { error_code = "VPC.0302",
            error_msg = require("cjson").encode{ error = { message = "pw " .. t } } } end },
      { "percent-encoded", function(t)
          return { ["X-Request-Id"] = percent_encoded(t):sub(1, 200) },
            { code = "VPC.0302", message = "bad " .. percent_encoded(t) } end },
      { "split by a line break", function(t)
          return nil, { code = "VPC.0302", message = "echo " .. t:sub(1, 12) .. "\n" .. t:sub(13, 400) } end },
      { "with its start cut off (and then cut to the bounds)", function(t)
          return { ["X-Request-Id"] = "id-" .. t:sub(5) }, { code = "VPC.0302", message = "tail " .. t:sub(5) } end },
      { "in two halves, one in the code and one in the message", function(t)
          local half = math.floor(#t / 2)
          return nil, { code = t:sub(1, half), message = "then " .. t:sub(half + 1) .. " end" } end },
      { "in pieces of 8 bytes from its middle", function(t)
          local mid = math.floor(#t / 2)
          return { ["X-Request-Id"] = "a" .. t:sub(mid, mid + 7) .. "b" },
            { code = "VPC.0302", message = "x " .. t:sub(mid - 20, mid - 13) .. " y " .. t:sub(mid + 30, mid + 37) }
        end },
      { "where the debug log cuts a body (2 KB)", function(t)
          return nil, { code = "VPC.0302", message = "m", detail = string.rep("d", 1990) .. t } end },
    }
    for _, token in ipairs{ LONG_TOKEN, PLAIN_TOKEN } do
      for _, case in ipairs(ECHOES) do
        it("leaves no piece of a long token (" .. token:sub(1, 8) .. ") echoed " .. case[1], function()
          local lines, infos = {}, {}
          local c = fx.client{ token = token, max_attempts = 1, log = function(l) lines[#lines + 1] = l end,
            on_response = function(info) infos[#infos + 1] = info end }
          local headers, body = case[2](token)
          emu:inject{ method = "DELETE", status = 403, headers = headers, body = body }
          local err = raised(c.delete_bandwidth, c, "bw-1")
          local seen = { tostring(err), table.concat(lines, "\n") }
          for _, k in ipairs{ "request_id", "retry_after", "message", "raw_message", "code" } do
            seen[#seen + 1] = tostring(err[k])
            for _, info in ipairs(infos) do seen[#seen + 1] = tostring(info[k]) end
          end
          local text = table.concat(seen, "\n")
          assert.is_nil(holds_piece(text, token), text:sub(1, 2000))
          assert.equal(403, err.status) -- the answer is still mapped
        end)
      end
    end

    -- Forms a server may echo a secret in besides its bytes: base64 (a gateway quoting a header
    -- it decoded as Basic, a log line), hex (a server dumping the bytes it got), lower or upper
    -- case, or split by invisible characters (a zero-width space every 4 bytes shows the token
    -- whole on a terminal). A bidi override would make a terminal show text in another order:
    -- blanked like any control character.
    it("leaves no piece of a token echoed in base64, in hex, in another case, as character references, or split "
      .. "by invisible characters", function()
      local mime = require "mime"
      -- (a token of random letters, digits and signs, not a repeated pattern: each form's
      -- pieces are its own)
      local chars, seed, t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-=", 7, {}
      for i = 1, 1200 do
        seed = (seed * 1103515245 + 12345) % 2147483648
        t[i] = chars:sub(seed % #chars + 1, seed % #chars + 1)
      end
      local token = "MIIE" .. table.concat(t)
      -- (a token the emulator takes: the echoes are the EIP service's, which answers only a
      -- request the gateway authenticated)
      local tokens = { [token] = emu.project_id }
      for known, project in pairs(emu.tokens) do tokens[known] = project end
      emu:set_tokens(tokens)
      finally(function() emu:set_tokens(emu.tokens) end)
      local zw = "\226\128\139" -- U+200B
      local split = token:sub(1, 40):gsub("(....)", "%1" .. zw)
      local forms = {
        { "base64", mime.b64("token=" .. token) },
        { "base64, another start", mime.b64("x" .. token) },
        { "URL-safe base64", (mime.b64("xy" .. token):gsub("[+/]", { ["+"] = "-", ["/"] = "_" })) },
        { "hex", hex_of(token) },
        { "upper-case hex", hex_of(token):upper() },
        { "hex, from a byte's second digit", hex_of("x" .. token):sub(2) },
        { "lower case", token:lower() },
        { "upper case", token:upper() },
        -- (an HTML page quoting it)
        { "numeric character references", (token:sub(1, 60):gsub(".", function(ch)
          return "&#" .. ch:byte() .. ";" end)) },
        { "hex character references", (token:sub(1, 60):gsub(".", function(ch)
          return string.format("&#x%X;", ch:byte()) end)) },
      }
      local c = fx.client{ token = token, max_attempts = 1 }
      for _, f in ipairs(forms) do
        emu:inject{ method = "DELETE", status = 403, headers = { ["X-Request-Id"] = f[2]:sub(1, 200) },
          body = { code = "VPC.0302", message = "echo " .. f[2] } }
        local err = raised(c.delete_bandwidth, c, "bw-1")
        local text = tostring(err) .. "\n" .. err.request_id
        -- no 8 characters of the echoed form are left (but for the edges of a base64 text)
        local shown = 0
        for i = 1, #f[2] - 11 do
          if text:find(f[2]:sub(i, i + 11), 1, true) then shown = shown + 1 end
        end
        assert.equal(0, shown, f[1] .. ": " .. text)
      end
      emu:inject{ method = "DELETE", status = 403,
        body = { code = "VPC.0302", message = "echo " .. split .. " \226\128\174reversed\226\128\172" } }
      local err = raised(c.delete_bandwidth, c, "bw-1")
      assert.matches("<redacted", err.message)
      assert.is_nil(tostring(err):find("\226\128", 1, true), tostring(err))
      assert.is_nil(holds_piece(tostring(err):gsub("%s", ""), token), tostring(err))
      -- in another case and split (a bidi mark, a line break every 7 bytes): the disguise check
      -- knows the other forms too; it knew the secret's own bytes only
      for _, sep in ipairs{ "\226\128\142", "\n" } do
        local upper_split = token:sub(1, 70):upper():gsub("(.......)", "%1" .. sep)
        emu:inject{ method = "DELETE", status = 403, body = { code = "VPC.0302", message = "bad " .. upper_split } }
        err = raised(c.delete_bandwidth, c, "bw-1")
        assert.equal("<redacted: the text held a credential>", err.message)
      end
    end)

    -- A header value is cut at 255 bytes: the 3 to 7 bytes of a token just before the cut were
    -- shown ("...AAAMIIEt"), the cut being unmarked where the other bounds mark theirs.
    it("redacts the first bytes of a token that a header's bound cuts", function()
      local c = fx.client{ token = LONG_TOKEN, max_attempts = 1 }
      for kept = 3, 7 do
        local pad = string.rep("A", 252 - kept)
        emu:inject{ method = "DELETE", status = 403,
          headers = { ["X-Request-Id"] = pad .. LONG_TOKEN, ["Location"] = pad .. LONG_TOKEN } }
        local err = raised(c.delete_bandwidth, c, "bw-1")
        assert.equal(pad .. "<redacted>...", err.request_id, kept .. " bytes")
        assert.is_nil(tostring(err):find(LONG_TOKEN:sub(1, kept), 1, true), tostring(err))
      end
    end)

    -- The same in hex, where a piece is 16 digits (8 bytes): the 6 to 15 digits (3 to 7 bytes, in
    -- either case) of a token's start before a header's bound or a message's, which marks its cut.
    it("redacts the first hex digits of a token that a bound cuts", function()
      local c = fx.client{ token = LONG_TOKEN, max_attempts = 1 }
      local hex = hex_of(LONG_TOKEN)
      for kept = 6, 15 do
        local digits = kept % 2 == 0 and hex or hex:upper()
        local pad, long_pad = string.rep("z", 252 - kept), string.rep("z", 512 - kept)
        emu:inject{ method = "DELETE", status = 403, headers = { ["X-Request-Id"] = pad .. digits },
          body = { code = "VPC.0302", message = long_pad .. digits } }
        local err = raised(c.delete_bandwidth, c, "bw-1")
        assert.equal(pad .. "<redacted>...", err.request_id, kept .. " digits")
        assert.equal(long_pad .. "<redacted>...", err.message, kept .. " digits")
      end
      -- (not the digits of its middle, nor fewer than 6: those are anybody's)
      for _, tail in ipairs{ hex:sub(3, 14), hex:sub(1, 5) } do
        local kept = string.rep("z", 252 - #tail) .. tail
        emu:inject{ method = "DELETE", status = 403, headers = { ["X-Request-Id"] = kept .. hex } }
        local err = raised(c.delete_bandwidth, c, "bw-1")
        assert.equal(kept .. "...", err.request_id)
      end
    end)

    -- The error and the debug log of a delete whose IAM login (password `pw`) is refused with a
    -- 400 saying `message`.
    local function refused_login(pw, message)
      emu:inject{ method = "POST", path = "/v3/auth/tokens", status = 400,
        body = { error = { code = "1100", message = message } } }
      local lines = {}
      local c = eip.new{ endpoint = emu.url, auth = emu:iam_auth{ password = pw }, max_attempts = 1,
        log = function(l) lines[#lines + 1] = l end }
      local err = raised(c.delete_bandwidth, c, "bw-1")
      c:close()
      return err, table.concat(lines, "\n")
    end

    -- IAM (or a gateway) quoting the request's JSON inside its own JSON message escapes it twice:
    -- a password with a '/' or '"' in every 8 bytes of it reads "Adm\\\/n2024x" in the raw body.
    -- A password made of a word ("Password@2024"): its lower-case form holds "password", which
    -- IAM's refusal uses. The word stays; the password, in any case, does not.
    it("keeps the words a password shares with the message that refuses it", function()
      local pw = "Password@2024"
      local err, log = refused_login(pw, "The username or password is wrong: PASSWORD@2024 rejected")
      assert.matches("The username or password is wrong", err.message, 1, true)
      assert.is_nil(err.message:find("ASSWORD@2024", 1, true), err.message)
      assert.is_nil(log:find("ASSWORD@2024", 1, true), log)
    end)

    it("leaves no piece of a password echoed escaped twice or three times, in the error or the log", function()
      local cjson = require "cjson"
      local pw = 'Adm/n20"4x'
      for levels = 2, 3 do
        local echoed = cjson.encode{ auth = { identity = { password = { user = { password = pw } } } } }
        for _ = 2, levels do echoed = cjson.encode{ error = { message = "bad request: " .. echoed } } end
        local err, log = refused_login(pw, "the body was " .. echoed)
        local seen = { tostring(err), log }
        for _, k in ipairs{ "message", "raw_message", "details" } do
          seen[#seen + 1] = type(err[k]) == "table" and cjson.encode(err[k]) or tostring(err[k])
        end
        local text = table.concat(seen, "\n"):gsub("\\", "")
        assert.is_nil(holds_piece(text, pw), levels .. " levels: " .. text:sub(1, 2000))
      end
    end)

    -- A token split by line breaks (a server wrapping it every few bytes) is found once they are
    -- taken out; quoted as JSON inside JSON, the breaks read "\n" after the first decoding, and
    -- that escape was undone as the letter n: the pieces stayed apart, 7 bytes each, readable.
    it("leaves no piece of a token split by line breaks and escaped as JSON inside JSON", function()
      local cjson = require "cjson"
      local token = "Zq9Tokx4ValueXYZ123456abc"
      local tokens = { [token] = emu.project_id }
      for known, project in pairs(emu.tokens) do tokens[known] = project end
      emu:set_tokens(tokens)
      finally(function() emu:set_tokens(emu.tokens) end)
      local c = fx.client{ token = token, max_attempts = 1 }
      for _, sep in ipairs{ "\n", "\r\n", "\t" } do
        local split = token:gsub("(.......)", "%1" .. sep)
        emu:inject{ method = "DELETE", status = 403,
          body = { code = "VPC.0302", message = "upstream said " .. cjson.encode{ error = "bad token " .. split } } }
        local err = raised(c.delete_bandwidth, c, "bw-1")
        assert.equal("<redacted: the text held a credential>", err.message, (sep:gsub("%c", string.byte)))
      end
    end)

    -- An HTML page (or a message made for one) escapes a password's &, <, >, " and ' as named
    -- references (Python's html.escape, PHP's htmlspecialchars): with one of them in every 8
    -- bytes, no piece of its own bytes was left to find, and it read whole ("P@s&amp;w0rd&lt;...").
    it("leaves no piece of a password echoed with HTML's named character references", function()
      local pw = "P@s&w0rd<24>Ab\"cd'e&Z"
      local named = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&apos;" }
      local html = pw:gsub("[&<>\"']", named)
      for _, echoed in ipairs{ html, (html:gsub("&%a+;", string.upper)), (html:gsub("&", "&amp;")) } do
        local err, log = refused_login(pw, "login refused for " .. echoed)
        local text = tostring(err) .. "\n" .. tostring(err.message) .. "\n" .. log
        assert.is_nil(text:find(echoed:sub(1, 10), 1, true), text:sub(1, 2000))
        assert.is_nil(text:find(echoed:sub(-10), 1, true), text:sub(1, 2000))
      end
    end)

    -- A serializer that escapes all but ASCII (Python's json.dumps) writes a password of other
    -- letters as \uXXXX (a surrogate pair past U+FFFF): it passed through, readable by anyone.
    it("leaves no piece of a non-ASCII password echoed as JSON \\u escapes (UTF-8 or Latin-1)", function()
      local function code_points(v) -- UTF-8 -> code points (valid input only)
        local cps, i = {}, 1
        while i <= #v do
          local b, n = v:byte(i), 0
          if b >= 0xF0 then n = 3 elseif b >= 0xE0 then n = 2 elseif b >= 0xC0 then n = 1 end
          local cp = n == 0 and b or b % (2 ^ (6 - n))
          for k = 1, n do cp = cp * 64 + v:byte(i + k) % 64 end
          cps[#cps + 1], i = cp, i + n + 1
        end
        return cps
      end
      local function ascii_json(v)
        local out = {}
        for _, cp in ipairs(code_points(v)) do
          if cp < 0x80 then
            out[#out + 1] = string.char(cp)
          elseif cp < 0x10000 then
            out[#out + 1] = string.format("\\u%04x", cp)
          else
            local c = cp - 0x10000
            out[#out + 1] = string.format("\\u%04x\\u%04x", 0xD800 + math.floor(c / 1024), 0xDC00 + c % 1024)
          end
        end
        return '{"password": "' .. table.concat(out) .. '"}'
      end
      local function unescaped(text)
        return (text:gsub("\\u(%x%x%x%x)", function(h) return "<" .. tonumber(h, 16) .. ">" end))
      end
      -- (a Latin-1 password, its bytes read as characters by the server: \u00e9 is the byte E9)
      local function latin_json(v)
        return '{"password": "' .. v:gsub("[\128-\255]", function(c) return string.format("\\u%04x", c:byte()) end)
          .. '"}'
      end
      for _, case in ipairs{ { "\208\191\208\176\209\128\208\190\208\187\209\140-42", ascii_json },
          { "P\195\164ssw\195\182rd-\195\156n", ascii_json },
          { "k\240\159\148\145y\240\159\148\145z\240\159\148\145w", ascii_json },
          { "P\233ssw\246rd\252ber\223ig", latin_json } } do
        local pw = case[1]
        local escaped = case[2](pw)
        local err, log = refused_login(pw, "bad login: " .. escaped)
        local text = tostring(err) .. "\n" .. tostring(err.message) .. "\n" .. log
        local inner = escaped:match('"password": "(.*)"')
        assert.is_nil(text:find(inner:sub(1, 12), 1, true), unescaped(text):sub(1, 2000))
      end
    end)

    -- A bound that cuts a text a few bytes into a secret leaves fewer than 8 bytes of it, which
    -- no piece search finds: at a cut, they are taken for its start.
    it("leaves not even the first bytes of a password where a bound cuts a message or a logged body", function()
      -- { where, the password, how it is written in the body, bytes before it in the cut text }:
      -- the password starts at byte cut[4] + 1 of the text cut at 512 (a message) or 2048 bytes
      -- (a logged body), so 5 to 7 of its bytes (escaped or not) are kept
      for _, cut in ipairs{ { "message", "Pq7Word2024", "Pq7Word2024", 505 },
          { "logged body", "Pq7Word2024", "Pq7Word2024", 2043 },
          { "logged body, JSON-escaped", "Pq/Word2024", "Pq\\/Word2024", 2041 },
          { "logged body, cut inside an escape", 'Pq/Wo"rd2024', 'Pq\\/Wo\\"rd2024', 2041 } } do
        local pw = cut[2]
        local body
        if cut[1] == "message" then
          body = { error = { code = "1101", message = string.rep("m", cut[4]) .. pw } }
        else
          local head = '{"error":{"code":"1101","message":"no"},"pad":"'
          body = head .. string.rep("m", cut[4] - #head) .. cut[3] .. '"}'
        end
        emu:inject{ method = "POST", path = "/v3/auth/tokens", status = 401, body = body }
        local lines = {}
        local c = eip.new{ endpoint = emu.url, auth = emu:iam_auth{ password = pw }, max_attempts = 1,
          log = function(l) lines[#lines + 1] = l end }
        local err = raised(c.delete_bandwidth, c, "bw-1")
        c:close()
        local text = table.concat({ tostring(err), tostring(err.message), tostring(err.raw_message),
          table.concat(lines, "\n") }, "\n"):gsub("\\", "")
        for k = 3, #pw do
          assert.is_nil(text:find(pw:sub(1, k) .. "...", 1, true), cut[1] .. ": " .. k .. " bytes")
        end
      end
    end)

    -- max_body is a bound too: a body it cut (logged whole when it is at most 2 KB, marked
    -- "[truncated]") ended with the first 3 to 7 bytes of a token the server echoed there.
    it("leaves not even the first bytes of a token where max_body cuts a logged body", function()
      for kept = 3, 7 do
        emu:inject{ method = "DELETE", status = 503, headers = { ["Content-Type"] = "text/plain" },
          body = string.rep("m", 1024 - kept) .. LONG_TOKEN }
        local lines = {}
        local c = fx.client{ token = LONG_TOKEN, max_attempts = 1, max_body = 1024,
          log = function(l) lines[#lines + 1] = l end }
        local err = raised(c.delete_bandwidth, c, "bw-1")
        c:close()
        assert.is_true(err.truncated)
        local log = table.concat(lines, "\n")
        assert.matches("<redacted>... [truncated]", log, 1, true)
        assert.is_nil(log:find("m" .. LONG_TOKEN:sub(1, kept), 1, true), kept .. " bytes: " .. log:sub(-200))
      end
    end)

    it("never shows credentials given inside an endpoint URL, and sends nothing", function()
      local before = emu:stats().requests
      for _, opts in ipairs{ { endpoint = "http://admin:S3cretPw-long@127.0.0.1:9" },
          -- a password holding '/', '?' or '#' (the authority would seem to end there), no scheme
          { endpoint = "https://admin:S3cretPw/long@vpc.example.com" },
          { endpoint = "https://admin:S3cretPw#long@vpc.example.com" },
          { endpoint = "admin:S3cretPw-long@vpc.example.com" },
          { endpoint = "http://127.0.0.1:9", auth = { username = "u", password = "pw-long-secret", domain = "d",
            project_id = "p", iam_endpoint = "https://svc:S3cretPw-long@iam.example.com" } } } do
        opts.project_id = emu.project_id
        if not opts.auth then opts.token = emu.token end
        local err = raised(eip.new, opts)
        assert.equal("usage", err.kind)
        assert.matches("must not hold credentials", tostring(err), 1, true)
        assert.is_nil(tostring(err):find("S3cretPw", 1, true))
      end
      -- (the URL is shown with its credentials redacted: which endpoint it was stays readable)
      local err = raised(eip.new, { endpoint = "https://admin:S3cretPw-long@vpc.example.com", token = emu.token,
        project_id = emu.project_id })
      assert.matches('got "https://<redacted>@vpc.example.com"', tostring(err), 1, true)
      assert.equal(before, emu:stats().requests)
    end)

    it("keeps server text in a transport's error out of the debug log as it came", function()
      local lines = {}
      local c = fx.client{ max_attempts = 1, log = function(l) lines[#lines + 1] = l end,
        transport = { send = function()
          return { status = 0, curl_code = 61, error_kind = "protocol",
            curl_error = "Unrecognized transfer encoding: " .. emu.token .. "\27[2J" }
        end, close = function() end } }
      local err = raised(c.delete_bandwidth, c, "bw-1")
      local text = table.concat(lines, "\n") .. tostring(err) .. err.message
      assert.is_nil(text:find(emu.token, 1, true), text)
      assert.is_nil(text:find("\27", 1, true), text)
    end)

    it("cleans the server's fields in a drain's refusal", function()
      local id = emu:create_bandwidth{ size = 1, publicip_ids = { "eip-1" } }
      emu:inject{ method = "GET", status = 200, body = { bandwidth = { id = id, share_type = "WHOLE", size = 1,
        status = "FROZEN " .. emu.token .. "\27[2J", publicip_info = {} } } }
      local c = fx.client()
      local err = raised(c.drain_and_delete_bandwidth, c, id, { charge_mode = "bandwidth", size = 1 })
      assert.equal("frozen", err.reason)
      for _, text in ipairs{ err.message, err.bandwidth_status, tostring(err) } do
        assert.is_nil(text:find(emu.token, 1, true), text)
        assert.is_nil(text:find("\27", 1, true), text)
      end
    end)

    -- The API's objects are returned as the server sent them; client:clean is what a program
    -- (the eip command) passes their strings through before showing them.
    it("client:clean scrubs a text as errors are scrubbed, also on a closed client", function()
      local token = "tok/Qz8v+L2mX9pR4wN7s-Hb3"
      local c = fx.client{ token = token }
      assert.equal("name <redacted> [2J  end", c:clean("name " .. token .. "\27[2J\r end"))
      assert.equal("<redacted: the text held a credential>", c:clean("pw " .. percent_encoded(token)))
      -- An escaped copy: its part beside the escape is shorter than a piece the redaction finds
      -- alone ("tok\/" and "Qz8v..."), so the text goes whole, not redacted around the escape.
      assert.equal("<redacted: the text held a credential>", c:clean('{"msg":"bad ' .. token:gsub("/", "\\/") .. '"}'))
      -- Every byte escaped as C and Python write bytes (b'\x74\x6f...'), in either case, as the
      -- %XX and \uXXXX forms are; and the start of such a copy where a bound cut it, the cut
      -- inside an escape too. They were shown as they came.
      local function x_escaped(s, f) return (s:gsub(".", function(ch) return f:format(ch:byte()) end)) end
      for _, f in ipairs{ "\\x%02x", "\\x%02X" } do
        assert.equal("<redacted: the text held a credential>", c:clean("bad b'" .. x_escaped(token, f) .. "'"), f)
        assert.equal("id <redacted>...", c:clean("id " .. x_escaped(token:sub(1, 5), f) .. "..."), f)
        assert.equal("id <redacted>...", c:clean("id " .. x_escaped(token:sub(1, 5), f) .. "\\x5..."), f)
      end
      -- Split by C1 controls too (NEL, CSI; in UTF-8 or as lone bytes) into pieces shorter than
      -- the redaction finds alone: once blanked, they showed with spaces between them.
      for _, sep in ipairs{ "\194\133", "\194\155", "\155", "\133" } do
        local split = "msg " .. token:sub(1, 7) .. sep .. token:sub(8, 14) .. sep .. token:sub(15, 21) .. sep
          .. token:sub(22)
        assert.equal("<redacted: the text held a credential>", c:clean(split), string.format("%q", sep))
      end
      for _, text in ipairs{ token:sub(1, 12) .. "\n" .. token:sub(13), "cut " .. token:sub(1, 14) } do
        local shown = c:clean(text)
        assert.is_nil(holds_piece(shown, token), "a piece of the token is left")
        assert.is_nil(shown:find("%c"), "a control character is left")
      end
      assert.equal("web-1", c:clean("web-1"))
      assert.equal(12, c:clean(12))
      c:close()
      assert.equal("x <redacted>", c:clean("x " .. token))
      local err = raised(c.clean, "text")
      assert.equal("usage", err.kind)
      assert.matches("with a colon", err.message)
      assert.equal(0, api_requests())
    end)

    it("redacts a short secret where it is a whole value", function()
      local c = fx.client{ token = SHORT_TOKEN, max_attempts = 1 }
      emu:inject{ method = "DELETE", status = 500, headers = { ["X-Request-Id"] = SHORT_TOKEN },
        body = { code = "VPC.0302", message = SHORT_TOKEN } }
      local err = raised(c.delete_bandwidth, c, "bw-1")
      assert.same({ "<redacted>", "<redacted>" }, { err.request_id, err.message })
      assert.is_nil(tostring(err):find(SHORT_TOKEN, 1, true))
    end)
  end)
  it("shows server text unchanged only where the full redaction rules would (the C fast path)", function()
    -- Runner:clean hands plain text (no control character, no escape, no trace of a secret) to
    -- core.plain_text and returns it as it is. A runner with an own (empty) secret list always
    -- takes the full rules: both must agree on every text, and the fast path must be taken.
    local pipeline = require "eip.pipeline"
    local function runner(secrets, own)
      return pipeline.new{ endpoint = "http://127.0.0.1:9", host = "127.0.0.1:9", base_path = "",
        project_id = "p", provider = { secrets = secrets }, secrets = own }
    end
    local cases = {
      { "bench-token-0123456789abcdef" }, { "SKsecret0000000000000", "tok-XYZ-1234567890" },
      { SHORT_TOKEN }, { "exactly8" }, { nil, "second-only-secret" }, { PLAIN_TOKEN, LONG_TOKEN },
    }
    local fast_taken, rules_needed = 0, 0
    for _, secrets in ipairs(cases) do
      local fast, full = runner(secrets, nil), runner(secrets, {})
      local texts = { "", "0123456789abcdef0123456789abcdef", "VPC.0306", "Bandwidth not found.",
        "a%2Fb", "a\\b", "line\nbreak", "esc\27[31m", "tab\there", "del\127" }
      for i = 1, 2 do
        local secret = secrets[i]
        if secret then
          texts[#texts + 1] = secret
          texts[#texts + 1] = "x" .. secret .. "y"
          texts[#texts + 1] = percent_encoded(secret)
          for k = 1, math.min(#secret, 12) do
            texts[#texts + 1] = "id " .. secret:sub(1, k) -- a copy cut short at the end
            texts[#texts + 1] = secret:sub(1, k) .. " id"
            texts[#texts + 1] = "id " .. secret:sub(1, k) .. "..."
          end
          texts[#texts + 1] = "pre " .. secret:sub(2, 9) .. " post" -- a piece, not the start
        end
      end
      for _, text in ipairs(texts) do
        local want = full:clean(text)
        assert.equal(want, fast:clean(text), string.format("%q", text))
        -- (A text cut by a bound, "..." at its end, has a few bytes of a secret's start redacted
        -- before either path: see cut_start in eip.pipeline.)
        if require("eip.core").plain_text(text, secrets) and text:sub(-3) ~= "..." then
          fast_taken = fast_taken + 1
          assert.equal(text, want)
        else
          rules_needed = rules_needed + 1
        end
      end
    end
    assert.is_true(fast_taken > 20 and rules_needed > 50, fast_taken .. " fast, " .. rules_needed .. " by the rules")
  end)
end)
