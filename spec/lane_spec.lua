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

-- The case's answers, injected into the emulator: `secret` is the client's own (its token, SK
-- or security token) where a case's request id is to hold it ("TOKEN"); `path`, a pattern of the
-- request paths they are for (default: every delete's).
local function inject(emu, case, secret, path)
  for _, rule in ipairs(case[2]) do
    local r = {}
    for k, v in pairs(rule) do r[k] = v end
    if r.headers and r.headers["X-Request-Id"] == "TOKEN" then r.headers = { ["X-Request-Id"] = "rid-" .. secret } end
    r.method, r.path = "DELETE", path or "/bandwidths/"
    emu:inject(r)
  end
end

-- The requests the emulator saw, in a form two runs of a case share (`first`: the id of a
-- delete before the case's).
local function wire_of(emu, id, first)
  local wire = {}
  for _, r in ipairs(emu:requests()) do
    local uri = r.uri:gsub(id:gsub("%p", "%%%0"), "ID")
    if first then uri = uri:gsub(first:gsub("%p", "%%%0"), "FIRST") end
    wire[#wire + 1] = r.method .. " " .. uri .. " "
      .. tostring(r.headers["x-auth-token"] == emu.token) .. " "
      .. tostring((r.headers.authorization or ""):match("^SDK%-HMAC%-SHA256 Access=[^,]+, SignedHeaders=[^,]+"))
      .. " " .. tostring(r.headers["x-security-token"] == emu.security_token)
  end
  return wire
end

-- The two passes of a case (the lane's, the general way's) gave the same outcome, the same
-- number of deletes and the same requests.
local function alike(got, sent, wire)
  assert.same(got[2], got[1])
  assert.equal(sent[2], sent[1])
  assert.same(wire[2], wire[1])
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
        inject(emu, case, credentials == "token" and token_piece or opts_secret(credentials))
        local ok, v = pcall(client.delete_bandwidth, client, id, case.call)
        got[pass], sent[pass] = outcome(ok, v, id), fixture.count_requests(emu, "DELETE")
        wire[pass] = wire_of(emu, id)
        if type(v) == "table" then
          for _, secret in ipairs{ emu.token, emu.sk, emu.temp_sk, emu.security_token } do
            assert.is_nil(tostring(v.request_id):find(secret, 1, true), "no secret is shown")
            assert.is_nil(tostring(v):find(secret, 1, true), "no secret is shown")
          end
        end
      end
      alike(got, sent, wire)
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

-- Inside nginx the automatic transport has a lane too: a token's delete in a phase with
-- cosockets goes by the cosocket transport's (in Lua; it yields, as every cosocket exchange),
-- in one without by libcurl's. The same cases, in an nginx request (spec/support/openresty's
-- /t/client: a client of the request's own; `first`, a delete before, made its lane).
describe("the pipeline's lane inside nginx #openresty", function()
  local cjson = require "cjson"
  local emulator = require "spec.support.emulator"
  local launcher = require "spec.support.openresty.launcher"
  local fx = fixture.emulator()
  local emu, app

  setup(function()
    emu = fx.start()
    app = launcher.start(emu, { timeout = 5 })
  end)
  teardown(function()
    if app then app:stop() end
    fx.stop()
  end)

  local function run(body)
    local resp, err = emulator.http{ port = app.port, method = "POST", path = "/t/client", body = cjson.encode(body),
      headers = { ["Content-Type"] = "application/json" }, timeout = 15 }
    assert(resp, "app request failed: " .. tostring(err) .. "\n" .. app:log_tail(20))
    assert.equal(200, resp.status, resp.body .. "\n" .. app:log_tail(20))
    return cjson.decode(resp.body)
  end

  it("is taken by a token's delete in a request, not by a signed one", function()
    local function calls(credentials, lane)
      fx.reset()
      local options = { endpoint = emu.url, project_id = emu.project_id, timeout = 5 }
      for k, v in pairs(credentials) do options[k] = v end
      local ids = emu:create_bandwidths(2, { size = 5 })
      local out = run{ options = options, first = ids[1], id = ids[2], lane = lane, count = true }
      assert(out.ok, cjson.encode(out) .. app:log_tail(20))
      assert.equal("cosocket", out.transport)
      return out.pipeline_calls
    end
    assert.equal(1, calls{ token = emu.token }) -- Runner:run_delete alone
    local general = calls({ token = emu.token }, false)
    assert(general > 3, general)
    assert.is_true(calls{ ak = emu.ak, sk = emu.sk } > 3)
  end)

  it("is not taken by a client whose transport's send a caller replaced, before its first use or after", function()
    -- (the automatic transport's class's, or that of the cosocket transport it holds; on the
    -- instance, the pipeline's check sees it): the caller's send sees every request, as with libcurl
    for _, where in ipairs{ "class", "inner" } do
      for _, late in ipairs{ false, true } do
        fx.reset()
        local ids = emu:create_bandwidths(2, { size = 5 })
        local out = run{ options = { endpoint = emu.url, project_id = emu.project_id, token = emu.token, timeout = 5 },
          first = ids[1], id = ids[2], watch = where, late = late }
        local what = where .. (late and ", late" or "")
        assert(out.ok, what .. ": " .. cjson.encode(out))
        assert.equal("cosocket", out.transport, what)
        assert.equal(late and 1 or 2, out.watched, what)
        assert.equal(2, fixture.count_requests(emu, "DELETE"), what)
      end
    end
  end)

  it("reads an error its transport raised as the general way does: a transport failure, not a raw error", function()
    -- (memory running out inside the cosocket exchange, say: the general way reads what a
    -- transport's send raises as that request's failure; the lane's send is its send too)
    local got = {}
    for pass, lane in ipairs{ true, false } do
      fx.reset()
      local ids = emu:create_bandwidths(2, { size = 5 })
      local out = run{ options = { endpoint = emu.url, project_id = emu.project_id, token = emu.token, timeout = 5 },
        first = ids[1], id = ids[2], lane = lane, fail = "not enough memory" }
      assert.is_false(out.ok)
      assert.is_true(out.is_error, out.error.text)
      got[pass] = { out.error.kind, out.error.curl_code, out.error.curl_error, out.error.attempts }
    end
    assert.same(got[2], got[1])
    assert.equal("transport", got[1][1])
  end)

  local KINDS = { { "token" }, { "token", made = true }, { "AK/SK" } }
  for _, case in ipairs(cases) do for _, kind in ipairs(KINDS) do
    it("reads " .. case[1] .. " as the general way does, with the same requests sent (" .. kind[1]
        .. (kind.made and ", the lane made by a delete before" or "") .. ")", function()
      local got, sent, wire = {}, {}, {}
      for pass, lane in ipairs{ true, false } do
        fx.reset()
        local options = { endpoint = emu.url, project_id = emu.project_id, timeout = 5, backoff_base = 0.01,
          backoff_cap = 0.02 }
        if kind[1] == "token" then options.token = emu.token else options.ak, options.sk = emu.ak, emu.sk end
        for k, v in pairs(case.opts or {}) do options[k] = v end
        -- (a delete of another client's first: the worker's pool then holds a connection to the
        -- emulator in both passes, whatever the case before left; a request on it that finds it
        -- dead is sent again by the transport, one on a new connection is the pipeline's retry)
        run{ options = options, id = emu:create_bandwidth{ size = 5 } }
        emu:reset_counters()
        local first = kind.made and emu:create_bandwidth{ size = 5 } or nil
        local id = case.absent and fixture.absent_id(7) or emu:create_bandwidth{ size = 5 }
        -- (the case's answers are for its own id, not the delete before)
        inject(emu, case, kind[1] == "token" and emu.token or emu.sk, emu:delete_path(id))
        local out = run{ options = options, id = id, lane = lane, first = first, call = case.call }
        assert.equal("cosocket", out.transport)
        got[pass] = outcome(out.ok, out.ok and out.result or out.error, id)
        -- (tostring's line, its request id's hex digits aside: the emulator makes one per answer;
        -- a timeout's says what outcome's message says)
        local text = out.error and out.error.curl_code ~= 28 and out.error.text
        got[pass].text = text and (outcome(false, text, id).raised:gsub("%x%x%x%x%x%x%x%x+", "X"))
        sent[pass], wire[pass] = fixture.count_requests(emu, "DELETE"), wire_of(emu, id, first)
        for _, secret in ipairs{ emu.token, emu.sk } do
          assert.is_nil(cjson.encode(out):find(secret, 1, true), "no secret is shown")
        end
      end
      alike(got, sent, wire)
    end)
  end end
end)
