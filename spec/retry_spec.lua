-- Retries, backoff, Retry-After, deadlines and idempotent delete, driven by faults the
-- emulator injects. Sleeps are recorded by a pluggable sleep, so no test waits for a backoff
-- unless it is about real time (the deadline and the trickling server).
local eip = require "eip"
local fixture = require "spec.support.fixture"
local raised = require("spec.support.assertions").raised
local socket = require "socket"

describe("retries", function()
  local fx = fixture.emulator()
  local emu, slept

  setup(function() emu = fx.start() end)
  teardown(fx.stop)
  before_each(function()
    fx.reset()
    slept = {}
  end)

  local function new(extra)
    local opts = { sleep = function(s) slept[#slept + 1] = s end }
    for k, v in pairs(extra or {}) do opts[k] = v end
    return fx.client(opts)
  end


  -- Full jitter spreads clients that failed together: on Lua 5.1, 5.2, 5.3 and LuaJIT every
  -- process drew the same waits (math.random unseeded: every nginx worker, every restart alike).
  it("draws its backoff differently in every process", function()
    local host = require "spec.support.host"
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write(string.format([[
      package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
      package.cpath = %q .. ";" .. package.cpath
      local eip = require "eip"
      local waits = {}
      local c = eip.new{ endpoint = %q, project_id = %q, token = %q, max_attempts = 4,
        sleep = function(s) waits[#waits + 1] = string.format("%%.6f", s) end }
      pcall(c.delete_bandwidth, c, "bw-1")
      io.write(table.concat(waits, " "))
    ]], host.cpath, emu.url, emu.project_id, emu.token))
    f:close()
    emu:inject{ method = "DELETE", status = 503, times = -1 }
    local runs = {}
    for i = 1, 2 do
      local p = assert(io.popen(host.lua .. " " .. script))
      runs[i] = p:read("*a")
      p:close()
    end
    os.remove(script)
    assert.matches("^[%d.]+ [%d.]+ [%d.]+$", runs[1])
    assert.are_not.equal(runs[1], runs[2])
  end)

  it("retries 503, 503 then succeeds, backing off with full jitter", function()
    local id = emu:create_bandwidth{ size = 1 }
    emu:inject{ method = "DELETE", status = 503, times = 2 }
    local c = new()
    local res = c:delete_bandwidth(id)
    c:close()
    assert.equal(204, res.status)
    assert.equal(3, res.attempts)
    assert.equal(2, #slept)
    assert.is_true(slept[1] >= 0 and slept[1] <= 0.5, "first backoff " .. slept[1])
    assert.is_true(slept[2] >= 0 and slept[2] <= 1.0, "second backoff " .. slept[2])
    assert.equal(3, emu:stats().requests)
  end)

  for _, status in ipairs{ 408, 429, 500, 502, 503, 504 } do
    it("retries a " .. status, function()
      local id = emu:create_bandwidth{ size = 1 }
      emu:inject{ method = "DELETE", status = status, headers = { ["Retry-After"] = "0" } }
      local c = new()
      assert.equal(2, c:delete_bandwidth(id).attempts)
      c:close()
    end)
  end

  for _, status in ipairs{ 400, 401, 403, 404, 405, 409, 501 } do
    it("never retries a " .. status, function()
      emu:inject{ method = "DELETE", status = status, body = '{"code":"VPC.0001","message":"x"}' }
      local c = new()
      local err = raised(c.delete_bandwidth, c, "bw-1")
      c:close()
      assert.equal(status, err.status)
      assert.equal(1, err.attempts)
      assert.equal(0, #slept)
      assert.equal(1, emu:stats().requests)
    end)
  end

  it("retries 409 VPC.0512 (resource busy) and then succeeds", function()
    local id = emu:create_bandwidth{ size = 1 }
    emu:inject{ method = "DELETE", status = 409,
      body = '{"code":"VPC.0512","message":"Resource busy, try again later."}' }
    local c = new()
    local res = c:delete_bandwidth(id)
    c:close()
    assert.equal(204, res.status)
    assert.equal(2, res.attempts)
  end)

  it("retries 400 VPC.0004 (the error-code table: try later) and then succeeds", function()
    local id = emu:create_bandwidth{ size = 1 }
    emu:inject{ method = "DELETE", status = 400,
      body = { code = "VPC.0004", message = "VPC does not active,please try later." } }
    local c = new()
    local res = c:delete_bandwidth(id)
    c:close()
    assert.same({ 204, 2 }, { res.status, res.attempts })
  end)

  it("never retries a code the table calls wrong input, even with a retryable status", function()
    emu:inject{ method = "DELETE", status = 503, body = { code = "VPC.0301", message = "bandwidthId is invalid." } }
    local c = new()
    local err = raised(c.delete_bandwidth, c, "bw-1")
    c:close()
    -- (retried or not by what the code means with any status; but described by its status: the
    -- table documents VPC.0301 with 400 only, so the 503 has no code_kind)
    assert.same({ 503, 1, false }, { err.status, err.attempts, err.retryable })
    assert.is_nil(err.code_kind)
    assert.equal(0, #slept)
  end)

  -- A code documented with several statuses, at one it is not documented with, is read as its row
  -- of the answer's class (4xx, 5xx): 502/503/504 VPC.0514 were read as its first row, the 409 (quota),
  -- and not retried, though its 500s are backend failures (and a 500 VPC.0514 was retried); a 429
  -- VPC.0504 was read as its first row, the 500 (backend), and retried, though as a 4xx it is the
  -- 404 "Floating IP could not be found" (a 429 VPC.0306 is not retried).
  it("reads a code at a status it is not documented with as its row of that class", function()
    for _, status in ipairs{ 500, 502, 503, 504 } do
      local id = emu:create_bandwidth{ size = 1 }
      emu:inject{ method = "DELETE", status = status, body = { code = "VPC.0514", message = "Neutron Error." } }
      local c = new()
      local res = c:delete_bandwidth(id)
      c:close()
      assert.same({ 204, 2 }, { res.status, res.attempts }, tostring(status))
    end
    for _, case in ipairs{ { 429, "VPC.0504" }, { 408, "VPC.0504" }, { 429, "VPC.0304" }, { 429, "VPC.0514" } } do
      emu:inject{ method = "DELETE", status = case[1], body = { code = case[2], message = "x" } }
      local c = new()
      local err = raised(c.delete_bandwidth, c, "bw-1")
      c:close()
      assert.same({ case[1], 1, false }, { err.status, err.attempts, err.retryable }, case[2])
    end
  end)

  it("does not retry 409 for a bandwidth that still holds EIPs", function()
    local id = emu:create_bandwidth{ size = 1, publicip_ids = { "eip-1" } }
    local c = new()
    local err = raised(c.delete_bandwidth, c, id)
    c:close()
    assert.equal(409, err.status)
    assert.equal(1, err.attempts)
  end)

  it("honours Retry-After in seconds", function()
    local id = emu:create_bandwidth{ size = 1 }
    emu:inject{ method = "DELETE", status = 429, headers = { ["Retry-After"] = "3" } }
    local c = new()
    assert.equal(204, c:delete_bandwidth(id).status)
    c:close()
    assert.same({ 3 }, slept)
  end)

  it("honours Retry-After as an HTTP-date", function()
    local id = emu:create_bandwidth{ size = 1 }
    -- 10 s ahead in whole seconds: the wait is 10 s less the seconds the call took to get it
    -- (the sleep records, nothing waits).
    local at = os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() + 10)
    emu:inject{ method = "DELETE", status = 503, headers = { ["Retry-After"] = at } }
    local c = new()
    assert.equal(204, c:delete_bandwidth(id).status)
    c:close()
    assert.equal(1, #slept)
    assert.is_true(slept[1] >= 5 and slept[1] <= 10, "waited " .. slept[1])
  end)

  -- eip.retry_after: a caller retrying on its own (or relaying it, as the OpenResty example does)
  -- reads the wait as the library does, never the raw header ("7, 10", "soon", a date).
  it("gives a failed call's Retry-After in seconds through eip.retry_after", function()
    local c = new{ max_attempts = 1 }
    local server_now = os.time() - 1000 -- (its clock, not the local one)
    emu:inject{ method = "DELETE", status = 503, headers = {
      Date = os.date("!%a, %d %b %Y %H:%M:%S GMT", server_now),
      ["Retry-After"] = os.date("!%a, %d %b %Y %H:%M:%S GMT", server_now + 20) } }
    local err = raised(c.delete_bandwidth, c, emu:create_bandwidth{ size = 1 })
    c:close()
    local wait = eip.retry_after(err)
    assert.is_true(wait >= 19 and wait <= 20, tostring(wait))
    assert.equal(10, eip.retry_after{ retry_after = "7, 10" })
    assert.same({ nil, nil, nil }, { eip.retry_after{ retry_after = "soon" }, eip.retry_after("x"),
      eip.retry_after(setmetatable({}, { __index = function() error("boom") end })) })
  end)

  -- An HTTP-date is the server's clock: read against the answer's Date (RFC 9110 10.2.3, 6.6.1),
  -- not the local clock. A local clock ahead of the server's retried a 429 at once; one behind it
  -- waited too long (here: past retry_after_cap, so not at all).
  it("reads an HTTP-date Retry-After against the answer's Date, not the local clock", function()
    local c = new()
    for _, skew in ipairs{ -1000, 1000 } do
      slept = {}
      local date = os.time() + skew
      emu:inject{ method = "DELETE", status = 429, headers = {
        Date = os.date("!%a, %d %b %Y %H:%M:%S GMT", date),
        ["Retry-After"] = os.date("!%a, %d %b %Y %H:%M:%S GMT", date + 10) } }
      assert.equal(204, c:delete_bandwidth(emu:create_bandwidth{ size = 1 }).status, skew)
      assert.same({ 10 }, slept, skew)
    end
    -- an unusable Date: the local clock, as before
    slept = {}
    emu:inject{ method = "DELETE", status = 429, headers = { Date = "yesterday",
      ["Retry-After"] = os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() + 10) } }
    assert.equal(204, c:delete_bandwidth(emu:create_bandwidth{ size = 1 }).status)
    assert.is_true(slept[1] >= 5 and slept[1] <= 10, "waited " .. tostring(slept[1]))
    c:close()
  end)

  -- RFC 9110 5.6.7: the obsolete forms are HTTP-dates too; read as absent, they were retried
  -- after 2-5 s however long the server asked for.
  it("honours Retry-After in the RFC 850 and asctime forms of HTTP-date", function()
    for _, form in ipairs{ "!%A, %d-%b-%y %H:%M:%S GMT", "!%a %b %e %H:%M:%S %Y" } do
      emu:reset()
      slept = {}
      local id = emu:create_bandwidth{ size = 1 }
      emu:inject{ method = "DELETE", status = 429, headers = { ["Retry-After"] = os.date(form, os.time() + 10) } }
      local c = new()
      assert.equal(204, c:delete_bandwidth(id).status)
      assert.equal(1, #slept, form)
      assert.is_true(slept[1] >= 5 and slept[1] <= 10, form .. ": waited " .. slept[1])
      -- Beyond retry_after_cap: raised at once, and a batch would stop.
      emu:inject{ method = "DELETE", status = 429, headers = { ["Retry-After"] = os.date(form, os.time() + 100) } }
      local err = raised(c.delete_bandwidth, c, emu:create_bandwidth{ size = 1 })
      c:close()
      assert.same({ 429, 1, true }, { err.status, err.attempts, err.throttled_beyond }, form)
    end
  end)

  -- Repeated Retry-After headers: the last won, so "60" then "1" waited 1 s and sent again
  -- within the 60 the server had asked for. The longest of them is taken now (waiting longer
  -- never sends what the server asked to hold).
  it("takes the longest of repeated Retry-After headers", function()
    for _, case in ipairs{ { 429, { "60", "1" } }, { 503, { "1", "60" } }, { 503, { "2", "abc" } },
        { 429, { "abc", "3" } } } do
      emu:reset()
      slept = {}
      local id = emu:create_bandwidth{ size = 1 }
      emu:inject{ method = "DELETE", action = "raw", raw = "HTTP/1.1 " .. case[1] .. " X\r\nContent-Length: 0\r\n"
        .. "Retry-After: " .. case[2][1] .. "\r\nRetry-After: " .. case[2][2] .. "\r\n\r\n" }
      local c = new()
      local label = case[1] .. " " .. table.concat(case[2], "|")
      local ok, res = pcall(c.delete_bandwidth, c, id)
      c:close()
      if case[2][1] == "60" or case[2][2] == "60" then
        assert.is_false(ok, label)
        assert.same({ case[1], 1 }, { res.status, res.attempts }, label)
        assert.equal(1, emu:stats().requests, label)
        assert.same({}, slept, label)
      else
        assert.is_true(ok, label .. ": " .. tostring(res))
        assert.same({ tonumber(case[2][1]) or tonumber(case[2][2]) }, slept, label)
      end
    end
    -- So many that the list is cut at 255 bytes, the longest last: what was cut may have been the
    -- longest, and is not waited less for (85 "1"s and a 3600 waited 1 s and sent again).
    emu:reset()
    slept = {}
    local id = emu:create_bandwidth{ size = 1 }
    emu:inject{ method = "DELETE", action = "raw", raw = "HTTP/1.1 503 X\r\nContent-Length: 0\r\n"
      .. string.rep("Retry-After: 1\r\n", 85) .. "Retry-After: 3600\r\n\r\n" }
    local c = new()
    local err = raised(c.delete_bandwidth, c, id)
    c:close()
    assert.same({ 503, 1, true }, { err.status, err.attempts, err.unavailable_beyond })
    assert.matches("%.%.%.$", err.retry_after)
    assert.equal(1, emu:stats().requests)
    assert.same({}, slept)
  end)

  it("waits 2-5 s on a 429 without Retry-After, as Huawei advises", function()
    local id = emu:create_bandwidth{ size = 1 }
    emu:inject{ method = "DELETE", status = 429,
      body = '{"error_code":"APIGW.0308","error_msg":"The throttling threshold has been reached"}' }
    local c = new()
    assert.equal(204, c:delete_bandwidth(id).status)
    c:close()
    assert.equal(1, #slept)
    assert.is_true(slept[1] >= 2 and slept[1] <= 5, "waited " .. slept[1])
  end)

  -- Throttling is what the answer says, not only its status (eip.retry.throttled): the gateway's
  -- APIGW.0308 behind a 503 (or a 409) is the same limit, and an early retry counts against it.
  it("waits 2-5 s on any throttling answer without Retry-After: APIGW.0308 with a 503 or 409", function()
    for _, case in ipairs{ { 503, "APIGW.0308" }, { 409, "APIG.0308" } } do
      emu:reset()
      slept = {}
      local id = emu:create_bandwidth{ size = 1 }
      emu:inject{ method = "DELETE", status = case[1],
        body = { error_code = case[2], error_msg = "The throttling threshold has been reached" } }
      local c = new()
      assert.equal(204, c:delete_bandwidth(id).status)
      c:close()
      assert.equal(1, #slept, case[1])
      assert.is_true(slept[1] >= 2 and slept[1] <= 5, case[1] .. " " .. case[2] .. ": waited " .. slept[1])
    end
  end)

  -- A limit per minute, used up: two retries 2-5 s apart were refused again, and the call failed
  -- within 10 s of a window of 60. The window it states (its last 3 s jittered), at most
  -- retry_after_cap; the advised 2-5 s when the call's deadline leaves no time for it (a retry
  -- after that pause may find the budget back: none at all was the worse answer).
  it("waits for the window a throttling answer states, at most retry_after_cap, without Retry-After", function()
    for _, case in ipairs{ { "limit:600,time:1 minute", {}, 30 }, { "limit:600,time:1 minute",
        { retry_after_cap = 3600 }, 60 }, { "limit:20,time:10 seconds", {}, 10 },
        { "limit:600,time:1 minute", { retry_after_cap = 4 }, 5 }, { "limit:100,time:1 second", {}, 5 },
        { "limit:600,time:1 minute", { deadline = 10 }, 5 } } do
      emu:reset()
      slept = {}
      local id = emu:create_bandwidth{ size = 1 }
      emu:inject{ method = "DELETE", status = 429, body = { error_code = "APIGW.0308",
        error_msg = "The throttling threshold has been reached: policy user over ratelimit," .. case[1] } }
      local c = new(case[2])
      assert.equal(204, c:delete_bandwidth(id).status)
      c:close()
      local what = case[1] .. ", " .. require("cjson").encode(case[2]) .. ": waited " .. tostring(slept[1])
      assert.equal(1, #slept, what)
      assert.is_true(slept[1] >= math.max(2, case[3] - 3) and slept[1] <= case[3], what)
    end
  end)

  -- A wait of 10 s whose read is throttled per minute: the window leaves it no time, and it once
  -- ended at once, raised as that 429 (a read after the advised pause may find the budget back).
  it("reads again after the advised pause when a wait is shorter than the window a throttling states", function()
    local id = emu:create_bandwidth{ size = 1 }
    emu:inject{ method = "GET", status = 429, body = { error_code = "APIGW.0308",
      error_msg = "The throttling threshold has been reached: policy user over ratelimit,limit:600,time:1 minute" } }
    local c = new()
    local res = c:delete_bandwidth(id, { wait = 10 })
    c:close()
    assert.same({ 204, true }, { res.status, res.deleted })
    assert.is_number(res.waited)
    assert.equal(1, #slept)
    assert.is_true(slept[1] >= 2 and slept[1] <= 5, "waited " .. slept[1])
  end)

  it("does not wait for a Retry-After beyond retry_after_cap: the error is raised with it", function()
    emu:inject{ method = "DELETE", status = 503, headers = { ["Retry-After"] = "3600" } }
    local c = new{ retry_after_cap = 60 }
    local err = raised(c.delete_bandwidth, c, "bw-1")
    c:close()
    assert.equal(503, err.status)
    assert.equal("3600", err.retry_after)
    assert.equal(1, err.attempts)
    assert.equal(0, #slept)
  end)

  it("raises at once for a Retry-After of any size beyond the cap, and backs off for an unusable one", function()
    for _, huge in ipairs{ "99999", "99999999999", "99999999999999999999", string.rep("9", 200) } do
      emu:reset()
      slept = {}
      emu:inject{ method = "DELETE", status = 503, headers = { ["Retry-After"] = huge } }
      local c = new()
      local err = raised(c.delete_bandwidth, c, "bw-1")
      c:close()
      assert.equal(503, err.status, huge)
      assert.equal(huge, err.retry_after)
      assert.equal(1, err.attempts, huge)
      assert.equal(1, emu:stats().requests, huge)
      assert.same({}, slept, huge)
    end
    -- Negative or not a number: as if absent, so the usual backoff.
    for _, bad in ipairs{ "-5", "soon" } do
      emu:reset()
      slept = {}
      local id = emu:create_bandwidth{ size = 1 }
      emu:inject{ method = "DELETE", status = 503, headers = { ["Retry-After"] = bad } }
      local c = new()
      assert.equal(2, c:delete_bandwidth(id).attempts, bad)
      c:close()
      assert.equal(1, #slept, bad)
      assert.is_true(slept[1] >= 0 and slept[1] <= 0.5, bad .. ": waited " .. slept[1])
    end
  end)

  it("keeps the last answer's status, code, message and request id when attempts run out", function()
    emu:inject{ method = "DELETE", status = 503, body = '{"code":"VPC.A","message":"first"}' }
    emu:inject{ method = "DELETE", status = 502, body = '{"code":"VPC.B","message":"second"}' }
    emu:inject{ method = "DELETE", status = 504, body = '{"code":"VPC.C","message":"third"}' }
    local c = new()
    local err = raised(c.delete_bandwidth, c, "bw-1")
    c:close()
    local reqs = emu:requests()
    assert.equal(3, #reqs)
    assert.equal(504, err.status)
    assert.equal("VPC.C", err.code)
    assert.equal("third", err.message)
    assert.equal(3, err.attempts)
    assert.is_string(err.request_id)
    -- (a 502 or 503 of a service may follow work done: the message says what the last one hides)
    assert.is_true(err.earlier_unanswered)
    assert.matches("after 3 attempts; an earlier attempt went out unanswered and may have been carried out$",
      tostring(err))
  end)

  -- A cancel function (a drain's: Ctrl-C in the eip command) is asked before each attempt and
  -- during every wait before one, backoffs as well as Retry-After: a stop sends nothing more.
  it("sends no retry once a cancel function says stop during the backoff; an unanswered 5xx is said", function()
    local id = emu:create_bandwidth{ size = 1 }
    emu:inject{ method = "DELETE", status = 502, times = 2 }
    local c = new{ backoff_base = 2, backoff_cap = 2 }
    local err = raised(c.drain_and_delete_bandwidth, c, id, { charge_mode = "bandwidth", size = 1,
      cancel = function() return #slept > 0 and "stop" or nil end })
    c:close()
    assert.same({ "interrupted", true, "delete", 1, 502 }, { err.kind, err.cancelled, err.stage, err.attempts,
      err.cause.status })
    assert.is_true(err.earlier_unanswered, "the 502's delete may have been carried out")
    assert.is_true(#slept <= 1 and (slept[1] or 0) <= 0.25, "one piece of the backoff at most")
    assert.equal(2, emu:stats().requests, "the show and one delete")
    assert.is_not_nil(emu:get_bandwidth(id))
  end)

  it("retries transport failures: a dropped connection, then success", function()
    local id = emu:create_bandwidth{ size = 1 }
    emu:inject{ method = "DELETE", action = "drop" }
    local c = new()
    local res = c:delete_bandwidth(id)
    c:close()
    assert.equal(204, res.status)
    assert.equal(2, res.attempts)
  end)

  it("retries a reset in the middle of the body", function()
    local id = emu:create_bandwidth{ size = 1 }
    emu:inject{ method = "DELETE", action = "reset_mid_body", status = 500, body_size = 100000 }
    local c = new()
    assert.equal(2, c:delete_bandwidth(id).attempts)
    c:close()
  end)

  it("gives up on a refused port after max_attempts", function()
    local port = require("spec.support.host").closed_port()
    local c = eip.new{ endpoint = "http://127.0.0.1:" .. port, project_id = emu.project_id, token = emu.token,
      max_attempts = 4, sleep = function(x) slept[#slept + 1] = x end }
    local err = raised(c.delete_bandwidth, c, "bw-1")
    c:close()
    assert.equal("transport", err.kind)
    assert.equal("connect", err.reason)
    assert.equal(4, err.attempts)
    assert.equal(3, #slept)
  end)

  it("does not retry TLS or DNS failures", function()
    local c = eip.new{ endpoint = "https://127.0.0.1:" .. emu.port, project_id = emu.project_id,
      token = emu.token, sleep = function(x) slept[#slept + 1] = x end }
    local err = raised(c.delete_bandwidth, c, "bw-1")
    c:close()
    assert.equal("tls", err.reason)
    assert.equal(1, err.attempts)
  end)

  describe("missing_ok", function()
    it("turns a 404 into a result with deleted = false", function()
      local c = new{ missing_ok = true }
      local res = c:delete_bandwidth(fixture.absent_id(1))
      c:close()
      assert.is_true(res.ok)
      assert.is_false(res.deleted)
      assert.equal(404, res.status)
      assert.equal("VPC.0306", res.code)
      assert.equal(fixture.absent_id(1), res.bandwidth_id)
      assert.is_string(res.request_id)
      assert.equal(1, res.attempts)
    end)

    it("reports deleted = true for a real delete", function()
      local c = new{ missing_ok = true }
      assert.is_true(c:delete_bandwidth(emu:create_bandwidth{ size = 1 }).deleted)
      c:close()
    end)

    it("is overridable per call", function()
      local c = new()
      assert.is_false(c:delete_bandwidth(fixture.absent_id(2), { missing_ok = true }).deleted)
      assert.equal(404, raised(c.delete_bandwidth, c, fixture.absent_id(2)).status)
      c:close()
      c = new{ missing_ok = true }
      assert.equal(404, raised(c.delete_bandwidth, c, fixture.absent_id(2), { missing_ok = false }).status)
      assert.equal("call options", raised(c.delete_bandwidth, c, fixture.absent_id(2), { missing = true }).argument)
      c:close()
    end)

    it("covers an earlier attempt that deleted the bandwidth but whose answer was lost", function()
      local id = emu:create_bandwidth{ size = 1 }
      emu:inject{ method = "DELETE", action = "lose_answer" }
      local c = new{ missing_ok = true }
      local res = c:delete_bandwidth(id)
      c:close()
      assert.is_true(res.ok)
      assert.is_false(res.deleted)
      assert.equal(2, res.attempts)
      assert.is_true(res.lost_answer, "the first attempt's answer was lost: most likely it deleted it")
      assert.is_nil(emu:get_bandwidth(id))
    end)

    -- On a kept-alive connection libcurl (and the cosocket transport) sends the request again
    -- by itself, within the one attempt: the transport says so (resent), and the 404 reads the same.
    it("covers a lost answer on a kept-alive connection, which the transport sent again itself", function()
      local id = emu:create_bandwidth{ size = 1 }
      local c = new{ missing_ok = true }
      assert.is_false(c:delete_bandwidth(fixture.absent_id(3)).deleted) -- a kept-alive connection now
      emu:inject{ method = "DELETE", action = "lose_answer" }
      local res = c:delete_bandwidth(id)
      c:close()
      assert.same({ true, false, 1, true }, { res.ok, res.deleted, res.attempts, res.lost_answer })
      assert.is_nil(emu:get_bandwidth(id))
    end)

    -- A create is never sent twice: the kept-alive connection's death is the call's failure.
    it("never sends a create twice, even when a kept-alive connection dies under it", function()
      local c = new()
      assert.is_false(c:delete_bandwidth(fixture.absent_id(3), { missing_ok = true }).deleted)
      emu:inject{ method = "POST", action = "lose_answer" }
      local err = raised(c.create_bandwidth, c, { name = "once", size = 5 })
      c:close()
      assert.same({ "transport", "reset", 1 }, { err.kind, err.reason, err.attempts })
      local named = 0
      for _, b in ipairs(emu:bandwidths()) do
        if b.name == "once" then named = named + 1 end
      end
      assert.equal(1, named, "one bandwidth, one bill")
    end)

    -- The rule, public for callers that read first (the eip command's dry run of a drain).
    it("eip.is_missing is missing_ok's rule: the service's 404 VPC.0306 for a UUID-shaped id only", function()
      local c = new()
      local gone = fixture.absent_id(2)
      local err = raised(c.delete_bandwidth, c, gone)
      assert.is_true(eip.is_missing(err, gone))
      assert.is_false(eip.is_missing(err, "my-bandwidth"), "a name, no id the cloud makes")
      assert.is_false(eip.is_missing({ kind = "http", status = 404, code = "VPC.0306" }, gone), "no eip error")
      emu:inject{ method = "DELETE", status = 404, body = { error_code = "APIGW.0101", error_msg = "no such API" } }
      assert.is_false(eip.is_missing(raised(c.delete_bandwidth, c, gone), gone), "the gateway's 404")
      c:close()
    end)

    it("says so on the 404 without missing_ok: the bandwidth is gone, most likely by this call", function()
      local id = emu:create_bandwidth{ size = 1 }
      emu:inject{ method = "DELETE", action = "lose_answer" }
      local c = new()
      local err = raised(c.delete_bandwidth, c, id)
      c:close()
      assert.same({ 404, "VPC.0306", 2, true }, { err.status, err.code, err.attempts, err.lost_answer })
      assert.matches("^The bandwidth is gone%. An earlier attempt of this delete got no usable answer %(reset%) "
        .. "and most likely deleted it", err.advice)
    end)

    -- An id missing_ok does not take (upper-cased): its 404 after a lost answer is an error whose
    -- advice agrees with could_have_acted, with or without missing_ok.
    it("says an id not shaped like the cloud's may have been deleted, never that nothing was", function()
      for _, missing_ok in ipairs{ true, false } do
        emu:inject{ method = "DELETE", action = "lose_answer" }
        local c = new{ missing_ok = missing_ok }
        local err = raised(c.delete_bandwidth, c, "A0000000-0000-4000-8000-000000000002")
        c:close()
        assert.same({ 404, "VPC.0306", 2, true, true }, { err.status, err.code, err.attempts, err.lost_answer,
          eip.could_have_acted(err) })
        assert.matches("got no usable answer %(reset%) and may have deleted the bandwidth", err.advice)
        assert.matches("missing_ok does not take it as deleted", err.advice)
        assert.not_matches("nothing was deleted", err.advice)
        assert.not_matches("this is a result", err.advice)
      end
    end)

    it("does not say so when no earlier attempt could have acted: a 429, a refused connection", function()
      emu:inject{ method = "DELETE", status = 429, body = { error_code = "APIGW.0308", error_msg = "slow down" } }
      local c = new{ backoff_base = 0.01, backoff_cap = 0.01 }
      local err = raised(c.delete_bandwidth, c, fixture.absent_id(2))
      assert.same({ 404, 2 }, { err.status, err.attempts })
      assert.is_nil(err.lost_answer)
      assert.is_nil(c:delete_bandwidth(fixture.absent_id(2), { missing_ok = true }).lost_answer)
      c:close()
    end)

    it("still raises other errors", function()
      local c = new{ missing_ok = true, max_attempts = 1 }
      emu:inject{ method = "DELETE", status = 500 }
      assert.equal(500, raised(c.delete_bandwidth, c, "bw-1").status)
      c:close()
    end)
  end)

  describe("time limits (real time)", function()
    it("bounds the whole call by the deadline, backoffs included", function()
      -- A second attempt comes within 1 s of the first, seconds before the deadline; without
      -- one, 20 attempts and their backoffs would take about 10 s.
      emu:inject{ method = "DELETE", status = 503, times = -1 }
      local c = eip.new{ endpoint = emu.url, project_id = emu.project_id, token = emu.token,
        max_attempts = 20, backoff_base = 1, backoff_cap = 1, deadline = 3 }
      local t0 = socket.gettime()
      local err = raised(c.delete_bandwidth, c, "bw-1")
      local took = socket.gettime() - t0
      c:close()
      assert.equal(503, err.status)
      assert.is_true(err.attempts >= 2, "attempts " .. err.attempts)
      assert.is_true(took < 3 + 3, "took " .. took .. " s (deadline 3 s)")
    end)

    it("raises at once when a wait would leave the retry less than 50 ms of the deadline", function()
      -- The retry would not be sent after the wait (too little time to be answered in): the
      -- wait was slept all the same, the error only raised after it.
      emu:inject{ method = "DELETE", status = 503, headers = { ["Retry-After"] = "1" }, times = -1 }
      local waits = {}
      local c = eip.new{ endpoint = emu.url, project_id = emu.project_id, token = emu.token, deadline = 1.02,
        sleep = function(s) waits[#waits + 1] = s; socket.sleep(s) end }
      local t0 = socket.gettime()
      local err = raised(c.delete_bandwidth, c, "bw-1")
      local took = socket.gettime() - t0
      c:close()
      assert.equal(503, err.status)
      assert.equal(1, err.attempts)
      assert.same({}, waits)
      assert.is_true(took < 0.5, "took " .. took)
    end)

    it("cuts an attempt short when the deadline comes first: headers that never come", function()
      emu:inject{ method = "DELETE", action = "hang", times = -1 }
      local c = eip.new{ endpoint = emu.url, project_id = emu.project_id, token = emu.token,
        timeout = 30, deadline = 1 }
      local t0 = socket.gettime()
      local err = raised(c.delete_bandwidth, c, "bw-1")
      local took = socket.gettime() - t0
      c:close()
      assert.equal("transport", err.kind)
      assert.equal("timeout", err.reason)
      assert.is_true(took < 3, "took " .. took)
    end)

    it("aborts a server that sends one byte a second (low-speed limit)", function()
      emu:inject{ method = "DELETE", action = "trickle", status = 200, body_size = 100, trickle_interval = 1 }
      local c = eip.new{ endpoint = emu.url, project_id = emu.project_id, token = emu.token,
        timeout = 60, low_speed_limit = 100, low_speed_time = 2, max_attempts = 1 }
      local t0 = socket.gettime()
      local err = raised(c.delete_bandwidth, c, "bw-1")
      local took = socket.gettime() - t0
      assert.equal("transport", err.kind)
      assert.equal("timeout", err.reason)
      assert.is_true(took < 10, "took " .. took)
      -- and the client is still usable
      emu:reset()
      assert.equal(204, c:delete_bandwidth(emu:create_bandwidth{ size = 1 }).status)
      c:close()
    end)

    it("keeps memory bounded on a 20 MiB error body and stays usable", function()
      emu:inject{ method = "DELETE", status = 502, body_size = 20 * 1024 * 1024 }
      local c = eip.new{ endpoint = emu.url, project_id = emu.project_id, token = emu.token, max_attempts = 1 }
      local err = raised(c.delete_bandwidth, c, "bw-1")
      assert.equal(502, err.status)
      assert.is_true(err.truncated)
      assert.equal(204, c:delete_bandwidth(emu:create_bandwidth{ size = 1 }).status)
      c:close()
    end)

    it("sleeps with the default sleep when none is given (a real backoff)", function()
      local id = emu:create_bandwidth{ size = 1 }
      emu:inject{ method = "DELETE", status = 503, headers = { ["Retry-After"] = "1" } }
      local c = eip.new{ endpoint = emu.url, project_id = emu.project_id, token = emu.token }
      local t0 = socket.gettime()
      local res = c:delete_bandwidth(id)
      local took = socket.gettime() - t0
      c:close()
      assert.equal(2, res.attempts)
      assert.is_true(took >= 0.9, "took " .. took)
      assert.is_true(res.elapsed >= 0.9)
    end)
  end)
end)
