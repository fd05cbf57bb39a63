-- eip.pipeline's lane: a token's delete through the libcurl transport, nothing watching, pacing or
-- bounding it, sends its first attempt from a request prepared in C, without a call's state
-- (Runner:run). It must be the general way in all but cost: every answer the cloud or a hostile
-- server can give reads the same with the lane as without it (pipeline.lane = false), on the
-- wire and in what the caller gets.
local eip = require "eip"
local pipeline = require "eip.pipeline"
local fixture = require "spec.support.fixture"

-- What a delete of `id` gave (its result, or its error), without what differs from one run to
-- the next (the id, which is made anew, reads ID; libcurl's milliseconds N).
local function outcome(ok, v, id)
  local t = {}
  local function same(x)
    if type(x) ~= "string" then return x end
    return (x:gsub(id:gsub("%p", "%%%0"), "ID"):gsub("%d+ milliseconds", "N milliseconds"))
  end
  if type(v) ~= "table" then return { raised = same(tostring(v)) } end
  for k, x in pairs(v) do
    if k ~= "elapsed" and k ~= "request_id" and k ~= "waited" and type(x) ~= "function" then
      t[k] = type(x) == "table" and outcome(true, x, id) or same(x)
    end
  end
  t.ok_call = ok
  -- The request id's shape only: the emulator makes a new one for every answer.
  if type(v.request_id) == "string" then t.request_id = v.request_id:gsub("%x", "x") end
  return t
end

describe("the pipeline's lane", function()
  local fx = fixture.emulator()
  local emu

  setup(function() emu = fx.start() end)
  teardown(function()
    pipeline.lane = true
    fx.stop()
  end)
  before_each(fx.reset)
  after_each(function() pipeline.lane = true end)

  -- How many functions of eip.pipeline one call of f runs (after a call that made what is made
  -- once): the lane runs Runner:run alone, the general way a call's every step.
  local function pipeline_calls(f)
    f()
    local n = 0
    debug.sethook(function()
      local info = debug.getinfo(2, "S")
      if info.source:find("eip/pipeline%.lua$") then n = n + 1 end
    end, "c")
    local ok, err = pcall(f)
    debug.sethook()
    assert(ok, err)
    return n
  end

  it("is taken by a token's delete, and not by a client that watches its calls", function()
    local ids = emu:create_bandwidths(11)
    local i = 0
    local function deleting(client) return function() i = i + 1; client:delete_bandwidth(ids[i]) end end
    assert.equal(1, pipeline_calls(deleting(fx.client())))
    pipeline.lane = false
    assert.is_true(pipeline_calls(deleting(fx.client())) > 3)
    pipeline.lane = true
    local seen = 0
    local watched = fx.client{ on_request = function() seen = seen + 1 end }
    assert.is_true(pipeline_calls(deleting(watched)) > 3)
    assert.equal(2, seen)
    -- A transport whose send a caller replaced (to watch it), before the lane's first use or after.
    for _, early in ipairs{ true, false } do
      local c, sent = fx.client(), 0
      local function wrap()
        local send = c.transport.send
        c.transport.send = function(...) sent = sent + 1; return send(...) end
      end
      if early then wrap() else c:delete_bandwidth(ids[i + 1]); i = i + 1; wrap() end
      assert.is_true(pipeline_calls(deleting(c)) > 3)
      assert.equal(2, sent)
    end
    assert.equal(11, fixture.count_requests(emu, "DELETE"))
  end)

  -- Each case: the injections before the call, the call's options, whether the bandwidth exists.
  local token_piece
  local cases = {
    { "204", {} },
    { "404 VPC.0306", {}, absent = true },
    { "404 with missing_ok", {}, absent = true, call = { missing_ok = true } },
    { "409 in use", { { status = 409, body = { NeutronError = { type = "BandwidthInUse",
      message = "Bandwidth is in use", detail = "" } } } } },
    { "500 then 204: retried", { { status = 500, body = { code = "VPC.0500", message = "internal" } } } },
    { "429 with Retry-After then 204", { { status = 429, headers = { ["Retry-After"] = "0" },
      body = { error_code = "APIGW.0308", error_msg = "throttled" } } } },
    { "503 twice then 204", { { status = 503, times = 2 } } },
    { "401 of the gateway", { { status = 401, body = { error_code = "APIGW.0301",
      error_msg = "Incorrect IAM authentication information" } } } },
    { "200: unusable", { { status = 200, body = "{}" } } },
    { "202: unusable", { { status = 202 } } },
    { "204 with a body", { { status = 204, body = "ignored" } } },
    { "answer lost after the delete", { { action = "lose_answer" } } },
    { "answer garbled after the delete", { { action = "garble_answer" } } },
    { "connection dropped", { { action = "drop" } } },
    { "reset in the body", { { action = "reset_mid_body", status = 500 } } },
    { "not HTTP at all", { { action = "raw", raw = "SSH-2.0-OpenSSH\r\n" } } },
    { "a hang past the timeout", { { action = "hang" } }, opts = { timeout = 0.3, max_attempts = 1 } },
    { "request id with the token in it", { { status = 204, headers = { ["X-Request-Id"] = "TOKEN" } } } },
    { "request id cut off", { { status = 204, headers = { ["X-Request-Id"] = "0123456789abcdef..." } } } },
    { "request id with an escape", { { status = 204, headers = { ["X-Request-Id"] = "ab%2Fcd" } } } },
    { "no request id", { { status = 204, no_request_id = true } } },
  }

  for _, case in ipairs(cases) do
    it("reads " .. case[1] .. " as the general way does, with the same requests sent", function()
      local got, sent, wire = {}, {}, {}
      for pass, lane in ipairs{ true, false } do
        fx.reset()
        pipeline.lane = lane
        token_piece = emu.token
        local id = case.absent and fixture.absent_id(7) or emu:create_bandwidth{ size = 5 }
        for _, rule in ipairs(case[2]) do
          local r = {}
          for k, v in pairs(rule) do r[k] = v end
          if r.headers and r.headers["X-Request-Id"] == "TOKEN" then
            r.headers = { ["X-Request-Id"] = "rid-" .. token_piece }
          end
          r.method, r.path = "DELETE", "/bandwidths/"
          emu:inject(r)
        end
        local opts = { backoff_base = 0.01, backoff_cap = 0.02 }
        for k, v in pairs(case.opts or {}) do opts[k] = v end
        local client = fx.client(opts)
        local ok, v = pcall(client.delete_bandwidth, client, id, case.call)
        got[pass], sent[pass] = outcome(ok, v, id), fixture.count_requests(emu, "DELETE")
        wire[pass] = {}
        for _, r in ipairs(emu:requests()) do
          wire[pass][#wire[pass] + 1] = r.method .. " " .. r.uri:gsub(id:gsub("%p", "%%%0"), "ID") .. " "
            .. tostring(r.headers["x-auth-token"] == emu.token)
        end
        if type(v) == "table" then
          assert.is_nil(tostring(v.request_id):find(emu.token, 1, true), "the token is never shown")
          assert.is_nil(tostring(v):find(emu.token, 1, true), "the token is never shown")
        end
      end
      assert.same(got[2], got[1])
      assert.equal(sent[2], sent[1])
      assert.same(wire[2], wire[1])
    end)
  end

  it("leaves a client's own transport, AK/SK, hooks, a log, a rate and a deadline the general way", function()
    local ids = emu:create_bandwidths(2)
    local function steps(opts)
      local client = fx.client(opts)
      local n = 0
      client:delete_bandwidth(ids[1])
      debug.sethook(function()
        if debug.getinfo(2, "S").source:find("eip/pipeline%.lua$") then n = n + 1 end
      end, "c")
      pcall(client.delete_bandwidth, client, ids[2])
      debug.sethook()
      fx.reset()
      ids = emu:create_bandwidths(2)
      return n
    end
    for name, opts in pairs{
      on_response = { on_response = function() end },
      log = { debug = true, log = function() end },
      rate = { rate = 1000 },
      deadline = { deadline = 30 },
      aksk = { token = fixture.NONE, ak = emu.ak, sk = emu.sk },
    } do
      assert.is_true(steps(opts) > 3, name)
    end
    assert.equal(1, steps{})
    assert.is_table(eip)
  end)
end)
