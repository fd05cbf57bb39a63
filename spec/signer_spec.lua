-- The client's signer (core.signer, used by eip.auth for every AK/SK request) signs exactly as
-- eip.sign does: the official SDK's Authorization for every vector, byte for byte, with the
-- lines it sends; a fresh X-Sdk-Date at every call; no key in any message.
local core = require "eip.core"
local eip = require "eip"
local time = require "eip.time"
local vectors = require("spec.support.vectors").all_aksk()
local unpack = table.unpack or unpack -- luacheck: ignore 113 143 (table.unpack: 5.2+; unpack: 5.1, LuaJIT)

local CONTENT_TYPE = { "Content-Type", "application/json", line = "Content-Type: application/json" }
local ACCEPT = { "Accept", "application/json", signed = false, line = "Accept: application/json" }

-- The Unix seconds of an X-Sdk-Date (YYYYMMDDTHHMMSSZ).
local function seconds_of(date)
  local y, mo, d, h, mi, s = date:match("^(%d%d%d%d)(%d%d)(%d%d)T(%d%d)(%d%d)(%d%d)Z$")
  return time.days_from_civil(tonumber(y), tonumber(mo), tonumber(d)) * 86400 + tonumber(h) * 3600
    + tonumber(mi) * 60 + tonumber(s)
end

-- A vector as the signer's arguments: host, path and query from its URL; its headers other
-- than those the signer adds itself, as entries sorted by name (any order signs the same).
local function arguments(v)
  local sign = require "eip.sign"
  local host, path, query = sign.split_url(v.url)
  for k, val in pairs(v.query or {}) do query[#query + 1] = { k, val } end
  local entries = {}
  for k, val in pairs(v.headers) do
    if k ~= "X-Sdk-Date" and k ~= "X-Project-Id" then entries[#entries + 1] = { k, val } end
  end
  table.sort(entries, function(a, b) return a[1] < b[1] end)
  return host, path, query, entries, v.headers["X-Project-Id"], seconds_of(v.headers["X-Sdk-Date"])
end

local function line_of(lines, name)
  for _, l in ipairs(lines) do
    local n, value = l:match("^([^:]+): (.*)$")
    if n == name then return value end
  end
end

describe("core.signer", function()
  it("has vectors to check", function()
    assert.is_true(#vectors >= 5)
  end)

  for _, v in ipairs(vectors) do
    it("reproduces the SDK's Authorization for " .. v.name .. ", with the lines it sends", function()
      local host, path, query, entries, project, now = arguments(v)
      local signer = core.signer(v.ak, v.sk)
      local lines = signer:headers(v.method, path, query, v.body, host, project, entries, now)
      assert.equal(v.expected_authorization, line_of(lines, "Authorization"))
      -- The entries first, in their order; then Host, X-Sdk-Date, X-Project-Id; Authorization last.
      local want = {}
      for i, e in ipairs(entries) do want[i] = e[1] .. ": " .. e[2] end
      want[#want + 1] = "Host: " .. host
      want[#want + 1] = "X-Sdk-Date: " .. v.headers["X-Sdk-Date"]
      if project then want[#want + 1] = "X-Project-Id: " .. project end
      want[#want + 1] = "Authorization: " .. v.expected_authorization
      assert.same(want, lines)
    end)
  end

  -- Temporary keys: the client gives the security token to the signer, which adds the header
  -- itself (the loop above passes it as an ordinary header).
  for _, v in ipairs(vectors) do
    local token = v.headers["X-Security-Token"]
    if token then
      it("reproduces the SDK's Authorization for " .. v.name .. " with the token given to the signer", function()
        local host, path, query, entries, project, now = arguments(v)
        local others = {}
        for _, e in ipairs(entries) do
          if e[1] ~= "X-Security-Token" then others[#others + 1] = e end
        end
        local lines = core.signer(v.ak, v.sk, token):headers(v.method, path, query, v.body, host, project, others, now)
        assert.equal(v.expected_authorization, line_of(lines, "Authorization"))
        assert.equal(token, line_of(lines, "X-Security-Token"))
      end)
    end
  end

  it("signs as eip.sign does what the client sends: an unsigned Accept, a base path, a query, a body", function()
    local v = vectors[1]
    local signer = core.signer(v.ak, v.sk)
    local cases = {
      { "DELETE", "/v2.0/p/bandwidths/3fa1e2b4-1111-2222-3333-444455556666", nil, nil },
      { "DELETE", "/base/v2.0/p/bandwidths/a b%c/é", nil, nil },
      { "GET", "/v1/p/bandwidths", { { "limit", "1000" }, { "marker", "x y" }, { "limit", "10" } }, nil },
      { "POST", "/v2.0/p/bandwidths/b/remove", nil, '{"bandwidth":{"size":5}}' },
      { "GET", "/v3/projects", { { "name", "cn-north-4" } }, nil },
    }
    for _, c in ipairs(cases) do
      for _, project in ipairs{ "0a1b2c3d4e5f60718293a4b5c6d7e8f9", false } do
        local lines = signer:headers(c[1], c[2], c[3], c[4], "vpc.cn-north-4.myhuaweicloud.com:443",
          project or nil, { CONTENT_TYPE, ACCEPT }, 1764000000)
        assert.equal("Accept: application/json", lines[2])
        local headers = { ["Content-Type"] = "application/json", ["X-Sdk-Date"] = core.sdk_date(1764000000),
          Host = "vpc.cn-north-4.myhuaweicloud.com:443", ["X-Project-Id"] = project or nil }
        local query = {}
        for _, kv in ipairs(c[3] or {}) do query[#query + 1] = kv end
        local auth = core.sign{ method = c[1], path = c[2], query = query, body = c[4], ak = v.ak, sk = v.sk,
          headers = (function()
            local list = {}
            for k, val in pairs(headers) do list[#list + 1] = { k, val } end
            return list
          end)() }
        assert.equal(auth, line_of(lines, "Authorization"), c[1] .. " " .. c[2])
        assert.is_nil(auth:find("accept", 1, true))
        assert.equal(project or nil, (line_of(lines, "X-Project-Id")))
      end
    end
  end)

  it("dates each call: the clock by default, a given second otherwise", function()
    local v = vectors[1]
    local signer = core.signer(v.ak, v.sk)
    local function sign(now)
      return signer:headers("DELETE", "/v2.0/p/bandwidths/b", nil, nil, "h", "p", { CONTENT_TYPE }, now)
    end
    local a, b = sign(1764000000), sign(1764000001)
    assert.equal("20251124T160000Z", line_of(a, "X-Sdk-Date"))
    assert.equal("20251124T160001Z", line_of(b, "X-Sdk-Date"))
    assert.are_not.equal(line_of(a, "Authorization"), line_of(b, "Authorization"))
    assert.same(a, sign(1764000000.9)) -- fractions of a second are dropped
    local before = os.time()
    local now = seconds_of(line_of(sign(), "X-Sdk-Date"))
    assert.is_true(now >= before and now <= os.time())
  end)

  it("sends and signs X-Security-Token for temporary keys", function()
    local signer = core.signer("AKTEMP", "SKTEMPsecret", "security-token-value")
    local lines = signer:headers("DELETE", "/v2.0/p/bandwidths/b", nil, nil, "h", "p", { CONTENT_TYPE }, 0)
    assert.equal("security-token-value", line_of(lines, "X-Security-Token"))
    assert.matches("SignedHeaders=content%-type;host;x%-project%-id;x%-sdk%-date;x%-security%-token,",
      line_of(lines, "Authorization"))
    local auth = core.sign{ method = "DELETE", path = "/v2.0/p/bandwidths/b", ak = "AKTEMP", sk = "SKTEMPsecret",
      headers = { { "Content-Type", "application/json" }, { "Host", "h" }, { "X-Sdk-Date", "19700101T000000Z" },
        { "X-Project-Id", "p" }, { "X-Security-Token", "security-token-value" } } }
    assert.equal(auth, line_of(lines, "Authorization"))
  end)

  it("follows a host or project that changes between calls", function()
    local signer = core.signer("AK", "SKsecret")
    for _, host in ipairs{ "a:1", "b:2", "a:1", string.rep("h", 300) } do
      for _, project in ipairs{ "p1", string.rep("p", 60), "p1" } do
        local lines = signer:headers("GET", "/", nil, nil, host, project, { CONTENT_TYPE }, 0)
        assert.equal(host, line_of(lines, "Host"))
        assert.equal(project, line_of(lines, "X-Project-Id"))
      end
    end
  end)

  it("refuses what cannot be signed, never showing a key", function()
    local sk = "SKsecretSKsecretSKsecret"
    for _, ak in ipairs{ "", "AK,1", "AK 1", "AK:1" } do
      local ok, err = pcall(core.signer, ak, sk)
      assert.is_false(ok)
      assert.matches("cannot sign: the AK", err)
      assert.is_nil(err:find(sk, 1, true))
    end
    assert.is_false((pcall(core.signer, "AK", "")))
    local signer = core.signer("AK", sk)
    assert.equal("eip.core.signer", tostring(signer))
    local bad = {
      { "DELETE", "/", nil, nil, "", "p", { CONTENT_TYPE } },               -- empty Host
      { "DEL ETE", "/", nil, nil, "h", "p", { CONTENT_TYPE } },            -- not a method
      { "GET", "/", nil, nil, "h", "p", { { "Bad Name", "v" } } },         -- not a header name
      { "GET", "/", nil, nil, "h", "p", { { "X-A", "a\r\nX-B: b" } } },    -- header injection
      { "GET", "/", nil, nil, "h", "p", { { "Host", "other" } } },         -- Host twice
      { "GET", "/", nil, nil, "h", "p\n", { CONTENT_TYPE } },              -- a project with LF
      { "GET", "/", nil, nil, "h", "p", { "not a pair" } },
    }
    for i, args in ipairs(bad) do
      local ok, err = pcall(signer.headers, signer, unpack(args, 1, 7))
      assert.is_false(ok, "case " .. i)
      assert.matches("^eip%.core: ", err)
      assert.is_nil(err:find(sk, 1, true))
    end
    assert.has_error(function() signer:headers("GET", "/", nil, nil, "h", "p", {}, -1) end)
  end)

  it("signs every attempt of a call anew: a retry carries the date it is sent at", function()
    local sent, reqs = {}, {}
    local transport = { close = function() end, send = function(_, req)
      sent[#sent + 1], reqs[#reqs + 1] = req.headers, req
      if #sent == 1 then -- the retry goes out in the next second
        local t0 = os.time()
        while os.time() == t0 do core.sleep(0.02) end
        return { status = 503, body = "", elapsed = 0, new_connections = 0 }
      end
      return { status = 204, body = "", elapsed = 0, new_connections = 0 }
    end }
    local c = eip.new{ endpoint = "http://127.0.0.1:9", project_id = "p", ak = "AKX", sk = "SKXsecret",
      transport = transport, backoff_base = 0, sleep = function() end }
    assert.equal(2, c:delete_bandwidth("b").attempts)
    -- A transport of the caller's own may keep what it is given: a table per attempt.
    assert.are_not.equal(reqs[1], reqs[2])
    assert.equal(1, reqs[1].attempts)
    assert.equal(2, reqs[2].attempts)
    local d1, d2 = line_of(sent[1], "X-Sdk-Date"), line_of(sent[2], "X-Sdk-Date")
    assert.is_true(seconds_of(d2) > seconds_of(d1))
    assert.are_not.equal(line_of(sent[1], "Authorization"), line_of(sent[2], "Authorization"))
    for _, lines in ipairs(sent) do
      local auth = core.sign{ method = "DELETE", path = "/v2.0/p/bandwidths/b", ak = "AKX", sk = "SKXsecret",
        headers = { { "Content-Type", "application/json" }, { "Host", "127.0.0.1:9" },
          { "X-Sdk-Date", line_of(lines, "X-Sdk-Date") }, { "X-Project-Id", "p" } } }
      assert.equal(auth, line_of(lines, "Authorization"))
    end
  end)

  it("is what the client signs with: eip.new refuses an AK that cannot be sent", function()
    local ok, err = pcall(eip.new, { endpoint = "http://127.0.0.1:9", project_id = "p", ak = "AK,X", sk = "SKsecret1" })
    assert.is_false(ok)
    assert.is_true(eip.is_error(err))
    assert.equal("usage", err.kind)
    assert.equal("ak", err.argument)
    assert.is_nil(tostring(err):find("SKsecret1", 1, true))
  end)
end)

-- An IAM endpoint given with a base path (a gateway that routes by path): the project lookup is
-- signed over the path it is sent to, as a request to the API endpoint's base path is. Signing
-- /v3/projects while sending /iam-proxy/v3/projects is a refused signature every time, and
-- refused signatures lock the key.
describe("the project lookup through an IAM endpoint with a base path", function()
  local fixture = require "spec.support.fixture"
  local fx = fixture.emulator()
  local emu
  setup(function() emu = fx.start() end)
  teardown(fx.stop)
  before_each(fx.reset)

  it("is signed over the path it is sent to", function()
    local c = require("eip.client").new({ region = "cn-north-4", ak = emu.ak, sk = emu.sk, max_attempts = 1 },
      function(name)
        return ({ HUAWEICLOUD_SDK_IAM_ENDPOINT = emu.iam_url .. "/iam-proxy" })[name]
      end)
    local ok, err = pcall(c.authenticate, c)
    c:close()
    assert.is_false(ok)
    assert.is_true(eip.is_error(err), tostring(err))
    local req = emu:requests()[1]
    assert.equal("/iam-proxy/v3/projects?name=cn-north-4", req.uri)
    local signed = req.headers.authorization:match("SignedHeaders=([^,]+)")
    local headers = {}
    for name in signed:gmatch("[^;]+") do headers[name] = req.headers[name] end
    local expected = eip.sign{ method = "GET", url = emu.iam_url .. req.uri, headers = headers, ak = emu.ak,
      sk = emu.sk }
    assert.equal(expected, req.headers.authorization)
  end)
end)
