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
  -- A timeout's text says which clock saw it first, libcurl's or the C core's backstop a few ms
  -- later (a loaded machine delays either): the same timeout to both paths.
  if v.curl_code == 28 then t.message, t.curl_error = "timed out", "timed out" end
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

  -- How many functions of eip.pipeline one call of f runs: the lane runs Runner:run alone (and
  -- its check of the keys' guard when it signs), the general way a call's every step. (LuaJIT
  -- calls no hook inside a compiled trace: its compiler is off meanwhile.)
  local jit = rawget(_G, "jit")
  local function counted(f)
    local n = 0
    if jit then jit.off(); jit.flush() end
    debug.sethook(function()
      if debug.getinfo(2, "S").source:find("eip/pipeline%.lua$") then n = n + 1 end
    end, "c")
    local ok, err = pcall(f)
    debug.sethook()
    if jit then jit.on() end
    assert(ok, err)
    return n
  end

  -- The same after a first call of f (what is made once is made then).
  local function pipeline_calls(f)
    f()
    return counted(f)
  end

  it("is taken by a token's delete, and not by a client that watches its calls", function()
    local ids = emu:create_bandwidths(16)
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
    -- A send a caller replaced to watch it (the transport's or its class's), before the lane's
    -- first use or after: the caller's sees every request.
    for _, where in ipairs{ "instance", "class" } do
      for _, early in ipairs{ true, false } do
        local c, sent = fx.client(), 0
        local t, name = c.transport, "send"
        if where == "class" then t = getmetatable(c.transport) end
        local own = rawget(t, name)
        local function wrap()
          local f = t[name]
          t[name] = function(...) sent = sent + 1; return f(...) end
        end
        if early then wrap() else c:delete_bandwidth(ids[i + 1]); i = i + 1; wrap() end
        local ok, n = pcall(pipeline_calls, deleting(c))
        t[name] = own
        assert(ok, n)
        assert.is_true(n > 3, where)
        assert.equal(2, sent, where)
      end
    end
    assert.equal(16, fixture.count_requests(emu, "DELETE"))
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
    { "a hang past the timeout", { { action = "hang" } }, opts = { timeout = 0.15, max_attempts = 1 } },
    { "request id with the token (or SK, or security token) in it",
      { { status = 204, headers = { ["X-Request-Id"] = "TOKEN" } } } },
    { "request id cut off", { { status = 204, headers = { ["X-Request-Id"] = "0123456789abcdef..." } } } },
    { "request id with an escape", { { status = 204, headers = { ["X-Request-Id"] = "ab%2Fcd" } } } },
    { "no request id", { { status = 204, no_request_id = true } } },
  }

  -- The credentials each case runs with: the lane signs keys' requests in C, a temporary pair's
  -- with its security token, the emulator checking every signature as the gateway does.
  local function opts_secret(credentials)
    return credentials == "AK/SK" and emu.sk or emu.security_token
  end

  local CREDENTIALS = {
    token = function() return {} end,
    ["AK/SK"] = function() return { token = fixture.NONE, ak = emu.ak, sk = emu.sk } end,
    ["temporary AK/SK"] = function()
      return { token = fixture.NONE, ak = emu.temp_ak, sk = emu.temp_sk, security_token = emu.security_token }
    end,
  }

  -- Each kind of credentials, and whether the client deleted once before (made: the lane was
  -- made then, and a delete goes by Runner:run_delete's; else Runner:run's makes it).
  local KINDS = { { "token" }, { "AK/SK" }, { "temporary AK/SK" }, { "token", made = true },
    { "AK/SK", made = true } }
  for _, case in ipairs(cases) do for _, kind in ipairs(KINDS) do
    local credentials = kind[1]
    it("reads " .. case[1] .. " as the general way does, with the same requests sent (" .. credentials
        .. (kind.made and ", the lane made by a delete before" or "") .. ")", function()
      local got, sent, wire = {}, {}, {}
      for pass, lane in ipairs{ true, false } do
        fx.reset()
        pipeline.lane = lane
        token_piece = emu.token
        local opts = CREDENTIALS[credentials]()
        opts.backoff_base, opts.backoff_cap = 0.01, 0.02
        for k, v in pairs(case.opts or {}) do opts[k] = v end
        local client = fx.client(opts)
        if kind.made then
          client:delete_bandwidth(emu:create_bandwidth{ size = 5 })
          emu:reset_counters() -- (its request forgotten: the wire is the case's alone)
        end
        local id = case.absent and fixture.absent_id(7) or emu:create_bandwidth{ size = 5 }
        for _, rule in ipairs(case[2]) do
          local r = {}
          for k, v in pairs(rule) do r[k] = v end
          if r.headers and r.headers["X-Request-Id"] == "TOKEN" then -- the client's own secret
            local secret = credentials == "token" and token_piece or opts_secret(credentials)
            r.headers = { ["X-Request-Id"] = "rid-" .. secret }
          end
          r.method, r.path = "DELETE", "/bandwidths/"
          emu:inject(r)
        end
        local ok, v = pcall(client.delete_bandwidth, client, id, case.call)
        got[pass], sent[pass] = outcome(ok, v, id), fixture.count_requests(emu, "DELETE")
        wire[pass] = {}
        for _, r in ipairs(emu:requests()) do
          wire[pass][#wire[pass] + 1] = r.method .. " " .. r.uri:gsub(id:gsub("%p", "%%%0"), "ID") .. " "
            .. tostring(r.headers["x-auth-token"] == emu.token) .. " "
            .. tostring((r.headers.authorization or ""):match("^SDK%-HMAC%-SHA256 Access=[^,]+, SignedHeaders=[^,]+"))
            .. " " .. tostring(r.headers["x-security-token"] == emu.security_token)
        end
        if type(v) == "table" then
          for _, secret in ipairs{ emu.token, emu.sk, emu.temp_sk, emu.security_token } do
            assert.is_nil(tostring(v.request_id):find(secret, 1, true), "no secret is shown")
            assert.is_nil(tostring(v):find(secret, 1, true), "no secret is shown")
          end
        end
      end
      assert.same(got[2], got[1])
      assert.equal(sent[2], sent[1])
      assert.same(wire[2], wire[1])
    end)
  end end

  it("leaves hooks, a log, a rate, a deadline and keys with a refusal counted the general way", function()
    local ids = emu:create_bandwidths(2)
    -- How many functions of eip.pipeline a delete runs, after `before` (a first delete).
    local function steps(opts, before)
      local client = fx.client(opts)
      ;(before or client.delete_bandwidth)(client, ids[1])
      local n = counted(function() pcall(client.delete_bandwidth, client, ids[2]) end)
      fx.reset()
      ids = emu:create_bandwidths(2)
      return n
    end
    local aksk = function() return { token = fixture.NONE, ak = emu.ak, sk = emu.sk } end
    for name, opts in pairs{
      on_response = { on_response = function() end },
      log = { debug = true, log = function() end },
      rate = { rate = 1000 },
      deadline = { deadline = 30 },
    } do
      assert.is_true(steps(opts) > 3, name)
    end
    assert.equal(1, steps{})
    assert.equal(2, steps(aksk())) -- (Runner:run, and its check that the keys' guard is idle)
    -- A signature the gateway refused: the keys' refusals are counted from then on, and every
    -- signed request goes the general way (its places, its counts) until one passes.
    local refused = function(client)
      emu:inject{ method = "DELETE", status = 401, body = { error_code = "APIGW.0301", error_msg = "Incorrect" } }
      pcall(client.delete_bandwidth, client, ids[1])
    end
    local o = aksk()
    o.max_attempts = 1
    assert.is_true(steps(o, refused) > 3)
    -- A delete from a batch's on_result, while the batch's other signed requests are in flight.
    local inner
    local batch = function(client)
      local more = emu:create_bandwidths(4)
      client:delete_bandwidths(more, { concurrency = 4, on_result = function()
        if not inner then inner = counted(function() pcall(client.delete_bandwidth, client, ids[1]) end) end
      end })
    end
    steps(aksk(), batch)
    assert.is_true(inner > 3, "a signed delete beside a batch's requests in flight")
    assert.is_table(eip)
  end)
end)
