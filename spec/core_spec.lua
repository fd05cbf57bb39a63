-- eip.core called directly, as only the Lua layer normally does: what a server can make it
-- store (X-Subject-Token, whole up to libcurl's header-line limit) and what it does with
-- numbers no caller should pass (huge, NaN, infinite): a Lua error naming the argument or a
-- documented clamp, never a conversion C leaves undefined. `make check-asan` runs this file
-- against a core built with UBSan (float-cast-overflow included).
local core = require "eip.core"
local emulator = require "spec.support.emulator"
local host = require "spec.support.host"
local absent_id = require("spec.support.fixture").absent_id

-- The extreme integers of Lua 5.3+; 5.1, 5.2 and LuaJIT have doubles only, of the same size.
local MAXINTEGER = math.maxinteger or 2 ^ 63 -- luacheck: ignore 143 (5.3+)
local MININTEGER = math.mininteger or -2 ^ 63 -- luacheck: ignore 143 (5.3+)

-- libcurl refuses a header line of CURL_MAX_HTTP_HEADER (102400) bytes or more, CRLF included:
-- "X-Subject-Token: " + value + CRLF, so the longest value it delivers has 102380 bytes.
local LONGEST_TOKEN = 102400 - #"X-Subject-Token: " - 2 - 1

-- A token whose every position matters (a uniform one would hide a shifted or cut copy).
local function token_of(n)
  local digits = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
  local parts, len = {}, 0
  local i = 0
  while len < n do
    i = i + 1
    local piece = ("%d:%s."):format(i, digits:sub(i % 62 + 1))
    parts[#parts + 1] = piece
    len = len + #piece
  end
  return table.concat(parts):sub(1, n)
end

describe("require \"eip\" without its C core", function()
  it("names the interpreter and the command that builds its core (" .. host.lua .. ")", function()
    local out, code = host.run("env LUA_PATH='lua/?.lua;lua/?/init.lua' LUA_CPATH='/nonexistent/?.so' "
      .. host.lua .. [[ -e 'require "eip"' 2>&1]])
    assert.is_not.equal(0, code)
    assert.matches("eip: the C core (eip.core) for " .. host.lua .. " is not on package.cpath", out, 1, true)
    assert.matches("make LUA=" .. host.lua, out, 1, true)
    assert.matches("module 'eip.core' not found", out, 1, true) -- the places looked at stay shown
  end)
end)

describe("eip.core X-Subject-Token", function()
  local emu, session, url, auth

  setup(function()
    emu = emulator.start()
    session = core.session{}
    url = emu.url .. "/v2.0/" .. emu.project_id .. "/bandwidths/"
    auth = { "X-Auth-Token: " .. emu.token }
  end)

  teardown(function()
    session:close()
    emu:stop()
  end)

  before_each(function() emu:reset() end)

  local function answer_with_token(token)
    emu:inject{ method = "DELETE", status = 201, headers = { ["X-Subject-Token"] = token } }
  end

  local function delete(s)
    return (s or session):request{ method = "DELETE", url = url .. absent_id(1), headers = auth }
  end

  it("captures tokens whole, up to the longest header line libcurl accepts", function()
    for _, n in ipairs{ 1, 4096, 32767, 32768, 100000, LONGEST_TOKEN } do
      local token = token_of(n)
      answer_with_token(token)
      local resp = delete()
      assert.is_nil(resp.curl_code, resp.curl_error)
      assert.equal(201, resp.status)
      assert.equal(n, #resp.subject_token)
      assert.is_true(resp.subject_token == token, "token of " .. n .. " bytes differs")
    end
  end)

  it("gives no token to the answer after one that had one", function()
    answer_with_token(token_of(50000))
    assert.equal(50000, #delete().subject_token)
    local resp = delete()
    assert.equal(404, resp.status)
    assert.is_nil(resp.subject_token)
    answer_with_token("short")
    assert.equal("short", delete().subject_token)
  end)

  it("reports a longer header line as libcurl's refusal, a transport error", function()
    answer_with_token(token_of(LONGEST_TOKEN + 1))
    local resp = delete()
    assert.equal(27, resp.curl_code)
    assert.matches("header line of 102400 bytes", resp.curl_error, 1, true)
    assert.is_nil(resp.subject_token)
    -- and the session goes on
    answer_with_token("next")
    assert.equal("next", delete().subject_token)
  end)

  it("captures tokens whole in every slot of a multi", function()
    local m = core.multi{}
    m:limit(4)
    local want = {}
    for i = 1, 4 do
      local token = token_of(90000 + i)
      emu:inject{ method = "DELETE", path = "/bw%-" .. i .. "$", status = 201,
        headers = { ["X-Subject-Token"] = token } }
      local slot = assert(m:start{ method = "DELETE", url = url .. "bw-" .. i, headers = auth })
      want[slot] = token
    end
    local got = 0
    while m:pending() > 0 do
      local slot, resp = m:next(5)
      assert.is_number(slot)
      assert.is_nil(resp.curl_code, resp.curl_error)
      assert.is_true(resp.subject_token == want[slot], "slot " .. slot .. ": token differs")
      got = got + 1
    end
    assert.equal(4, got)
    -- A slot reused for an answer without the header reports none.
    m:start{ method = "DELETE", url = url .. absent_id(9), headers = auth }
    local _, resp = m:next(5)
    assert.equal(404, resp.status)
    assert.is_nil(resp.subject_token)
    m:close()
  end)
end)

describe("eip.core numbers out of range", function()
  local NAN = 0 / 0
  -- Every numeric argument gets each of these; what it must do is in eip_core.c's header.
  local HOSTILE = { 1e300, -1e300, NAN, math.huge, -math.huge }
  local function show(x) return x ~= x and "NaN" or tostring(x) end

  local emu, session, url, auth

  setup(function()
    emu = emulator.start()
    session = core.session{}
    url = emu.url .. "/v2.0/" .. emu.project_id .. "/bandwidths/" .. absent_id(1)
    auth = { "X-Auth-Token: " .. emu.token }
  end)

  teardown(function()
    session:close()
    emu:stop()
  end)

  -- session:request(fields), or multi:start(fields) when a multi is given (they share the
  -- request reader, so both must check alike).
  local function request(fields, multi)
    local req = { method = "DELETE", url = url, headers = auth }
    for k, v in pairs(fields) do req[k] = v end
    if multi then return multi:start(req) end
    return session:request(req)
  end

  -- The error must name what was wrong, so a caller can tell which argument to fix.
  local function raises(pattern, f, ...)
    local ok, err = pcall(f, ...)
    assert.is_false(ok, "no error for " .. pattern)
    assert.matches(pattern, tostring(err))
  end

  it("core.status: beyond +-1e6, NaN and the infinities are the 'unknown' entry (clamp)", function()
    for _, x in ipairs(HOSTILE) do
      local s = core.status(x)
      assert.equal(-1, s.code, show(x))
      assert.equal("unknown", s.class)
    end
    assert.equal(-1, core.status(MAXINTEGER).code)
    assert.equal(-1, core.status(MININTEGER).code)
    assert.equal(404, core.status(404).code)
  end)

  it("core.sdk_date: outside 0..253402300799 is an error naming the argument", function()
    -- Lua 5.3+ names a function called through pcall after its place in package.loaded; 5.1,
    -- 5.2 and LuaJIT say '?'.
    local SDK_DATE = (_VERSION == "Lua 5.1" or _VERSION == "Lua 5.2") and "%?" or "[%w.]*sdk_date"
    for _, x in ipairs(HOSTILE) do
      raises("bad argument #1 to '" .. SDK_DATE .. "' %(seconds must be in 0%.%.253402300799", core.sdk_date, x)
    end
    for _, x in ipairs{ -1, 253402300800, MAXINTEGER, MININTEGER } do
      raises("seconds must be in", core.sdk_date, x)
    end
    assert.equal("19700101T000000Z", core.sdk_date(0))
    assert.equal("99991231T235959Z", core.sdk_date(253402300799))
    assert.equal("99991231T235959Z", core.sdk_date(253402300799.9))
  end)

  it("core.sleep: 0, negative, NaN and -inf return at once (clamp)", function()
    for _, x in ipairs{ -1e300, NAN, -math.huge, 0, -1 } do
      local t0 = core.monotime()
      core.sleep(x)
      assert.is_true(core.monotime() - t0 < 3, show(x))
    end
  end)

  it("core.sleep: 1e300 and inf wait a day at most, still sleeping, not failing (clamp)", function()
    -- In a child (the wait would be a day), with the plain build like cli_spec's children:
    -- killed by `timeout` while asleep is exit 124; an error or a return would be 1 or 0. The
    -- child says when it goes to sleep: killed before that (a slow start), it proved nothing,
    -- and runs again with longer.
    for _, x in ipairs{ "1e300", "math.huge" } do
      local out, code
      for _, limit in ipairs{ 1, 5, 20 } do
        local cmd = ("LUA_CPATH='%s' timeout %d %s -e "
          .. "'local core = require(\"eip.core\"); io.write(\"asleep\\n\"); io.flush(); core.sleep(%s)' 2>&1")
          :format(host.cpath, limit, host.lua, x)
        out, code = host.run(cmd)
        if out ~= "" then break end
      end
      assert.equal(124, code, x .. ": " .. out)
      assert.equal("asleep\n", out, x)
    end
  end)

  it("timeout and connect_timeout: NaN is an error naming the field", function()
    for _, k in ipairs{ "timeout", "connect_timeout" } do
      raises("field '" .. k .. "' must be a number of seconds, not NaN", request, { [k] = NAN })
    end
  end)

  it("timeout and connect_timeout: below 1 ms is 1 ms, above a year a year (clamp)", function()
    for _, k in ipairs{ "timeout", "connect_timeout" } do
      for _, x in ipairs{ 1e300, math.huge } do
        local resp = request{ [k] = x }
        assert.equal(404, resp.status, k .. "=" .. show(x) .. ": " .. tostring(resp.curl_error))
      end
      for _, x in ipairs{ -1e300, -math.huge, 0 } do
        -- 1 ms: on loopback the answer may or may not come in time; never an error raised
        local resp = request{ [k] = x }
        assert.is_true(resp.status == 404 or resp.curl_code == 28, k .. "=" .. show(x))
      end
    end
  end)

  it("low_speed_time, low_speed_limit, body_cap: out of range is an error naming the field", function()
    local ranges = {
      low_speed_time = "0%.%.31536000", low_speed_limit = "0%.%.2147483647", body_cap = "1%.%.1073741824",
    }
    for k, range in pairs(ranges) do
      for _, x in ipairs(HOSTILE) do
        raises("field '" .. k .. "' must be a number in " .. range, request, { [k] = x })
      end
    end
    raises("field 'low_speed_time'", request, { low_speed_time = 31536001 })
    raises("field 'low_speed_limit'", request, { low_speed_limit = 2147483648 })
    raises("field 'body_cap'", request, { body_cap = 0 })
    raises("field 'body_cap'", request, { body_cap = 2 ^ 30 + 1 })
    -- the bounds themselves are accepted
    assert.equal(404, request{ low_speed_time = 31536000, low_speed_limit = 1 }.status)
    assert.equal(404, request{ low_speed_time = 0, low_speed_limit = 2147483647 }.status)
    assert.equal(404, request{ body_cap = 1 }.status)
    assert.equal(404, request{ body_cap = 2 ^ 30 }.status)
  end)

  it("multi:start checks the same fields as session:request", function()
    local m = core.multi{}
    raises("field 'timeout' must be a number of seconds, not NaN", request, { timeout = NAN }, m)
    for _, x in ipairs(HOSTILE) do
      raises("field 'low_speed_limit'", request, { low_speed_limit = x }, m)
      raises("field 'body_cap'", request, { body_cap = x }, m)
    end
    assert.equal(0, m:pending())
    m:close()
  end)

  it("multi:limit: anything but an integer in 1..64 is an error", function()
    local m = core.multi{}
    for _, x in ipairs(HOSTILE) do
      raises("limit must be an integer in 1%.%.64", m.limit, m, x)
    end
    raises("limit must be an integer in 1%.%.64", m.limit, m, 1.5)
    m:limit(64)
    m:close()
  end)

  it("multi:next: NaN, <= 0 and -inf collect only what is ready; huge waits are capped (clamp)", function()
    local m = core.multi{}
    for _, x in ipairs(HOSTILE) do
      -- nothing in flight: returns at once whatever the timeout
      local t0 = core.monotime()
      assert.is_nil(m:next(x))
      assert.is_true(core.monotime() - t0 < 3, show(x))
    end
    -- one request in flight: a huge timeout still returns as soon as it ends
    assert.is_number(m:start{ method = "DELETE", url = url, headers = auth })
    local slot, resp = m:next(1e300)
    assert.equal(1, slot)
    assert.equal(404, resp.status)
    m:close()
  end)
end)

describe("eip.core one session, requests of every kind", function()
  local emu, session

  setup(function()
    emu = emulator.start()
    session = core.session{}
  end)

  teardown(function()
    session:close()
    emu:stop()
  end)

  -- The handle keeps its options between requests and sets only what changed (src/http.c):
  -- each request must still go out exactly as asked, whatever the one before it was.
  it("sends each request as asked, whatever the one before was: method, body, headers", function()
    emu:reset()
    emu:inject{ status = 204, times = 100 }
    local sequence = {
      { "DELETE" }, { "DELETE" }, { "GET" }, { "POST", '{"a":1}' }, { "DELETE" }, { "PUT" }, { "DELETE", "{}" },
      { "DELETE" }, { "POST" }, { "GET" }, { "GET" }, { "DELETE" }, { "PUT", '{"b":2}' }, { "DELETE" },
    }
    for i, s in ipairs(sequence) do
      local resp = session:request{ method = s[1], url = emu.url .. "/conformance/seq/" .. i, body = s[2],
        headers = { "X-Auth-Token: " .. emu.token, "X-Step: " .. i }, timeout = 20 + i % 3,
        connect_timeout = 10 + i % 2, low_speed_time = i % 2 * 5, low_speed_limit = i % 2 * 10 }
      assert.equal(204, resp.status, tostring(resp.curl_error))
    end
    local log = emu:requests()
    assert.equal(#sequence, #log)
    for i, s in ipairs(sequence) do
      local r = log[i]
      assert.equal(s[1], r.method, "request " .. i)
      assert.equal("/conformance/seq/" .. i, r.uri, "request " .. i)
      assert.equal(tostring(i), r.headers["x-step"])
      local with_body = s[2] or s[1] == "POST" or s[1] == "PUT" -- POST and PUT always carry a length
      assert.equal(with_body and tostring(#(s[2] or "")) or nil, r.headers["content-length"], "request " .. i)
      assert.equal(s[2] or "", r.body or "", "request " .. i)
    end
  end)

  -- A URL under the endpoint of the one before only replaces the path and query libcurl parsed
  -- for it (src/http.c, set_url); anything else is given to libcurl as a string. Either way the
  -- request target and Host on the wire must be what libcurl makes of the URL as given: escapes
  -- as sent (never lower-cased), dot segments removed, a fragment never sent.
  local function url_sequence(base, other)
    return {
      { base .. "/conformance/url/1", "/conformance/url/1" },
      { base .. "/conformance/url/2", "/conformance/url/2" },
      { base .. "/conformance/url?limit=10&marker=bw-2", "/conformance/url?limit=10&marker=bw-2" },
      { base .. "/conformance/url/3", "/conformance/url/3" },
      { base .. "/conformance/url?marker=a%2Fb%3D", "/conformance/url?marker=a%2Fb%3D" },
      { base .. "/conformance/url/4", "/conformance/url/4" },
      { base .. "/conformance/x/../url/5", "/conformance/url/5" },
      { base .. "/conformance/url/6#part", "/conformance/url/6" },
      { other .. "/conformance/url/7", "/conformance/url/7", true },
      { other .. "/conformance/url/8", "/conformance/url/8", true },
      { base .. "/conformance/url/9", "/conformance/url/9" },
      { base .. "/conformance/url/10?a=1", "/conformance/url/10?a=1" },
    }
  end

  local function check_wire(sequence)
    local log = emu:requests()
    assert.equal(#sequence, #log)
    for i, s in ipairs(sequence) do
      assert.equal(s[2], log[i].uri, "request " .. i .. ": " .. s[1])
      assert.equal((s[3] and "localhost:" or "127.0.0.1:") .. emu.port, log[i].headers.host, "request " .. i)
    end
  end

  it("sends each URL as asked, whatever the one before was: paths, queries, escapes, another host", function()
    emu:reset()
    emu:inject{ status = 204, times = 100 }
    local sequence = url_sequence(emu.url, "http://localhost:" .. emu.port)
    for _, s in ipairs(sequence) do
      local resp = session:request{ method = "DELETE", url = s[1], headers = { "X-Auth-Token: " .. emu.token } }
      assert.equal(204, resp.status, tostring(resp.curl_error))
    end
    check_wire(sequence)
    -- The same through one slot of a multi, which reuses its handle as a session does.
    emu:reset()
    emu:inject{ status = 204, times = 100 }
    local m = core.multi{}
    m:limit(1)
    for _, s in ipairs(sequence) do
      assert(m:start{ method = "DELETE", url = s[1], headers = { "X-Auth-Token: " .. emu.token } })
      local _, resp = m:next(5)
      assert.equal(204, resp.status, tostring(resp.curl_error))
    end
    m:close()
    check_wire(sequence)
  end)

  -- eip.pipeline's lane (src/eip_core.c, "prepared requests"): a request read once, then sent
  -- to its url .. a path; the usable answer as values, any other as session:request's table.
  it("session:lane sends the prepared request to url .. path; a usable answer as values, others as the table",
      function()
    emu:reset()
    local token = emu.token
    local prepared = session:prepare{ method = "DELETE", url = emu.url .. "/lane", timeout = 5,
      headers = { "X-Auth-Token: " .. token, "X-Step: lane" } }
    emu:inject{ status = 204, headers = { ["X-Request-Id"] = "rid-0123456789abcdef" } }
    local status, request_id, took = session:lane(prepared, "/a/1", 204)
    assert.equal(204, status)
    assert.equal("rid-0123456789abcdef", request_id)
    assert.is_true(took >= 0 and took < 5)
    -- No request id: nil. Another status than the usable one, or a transport error: the table.
    emu:inject{ status = 204, no_request_id = true, times = 2 }
    local st, rid = session:lane(prepared, "/a/2", 204)
    assert.equal(204, st)
    assert.is_nil(rid)
    st, rid = session:lane(prepared, "/a/2b", 204, {})
    assert.equal(204, st)
    assert.is_nil(rid)
    emu:inject{ status = 200, body = "{}" }
    local resp, none, took2 = session:lane(prepared, "/a/3", 204)
    assert.equal(200, resp.status)
    assert.equal("{}", resp.body)
    assert.is_nil(none)
    assert.is_number(took2)
    -- A request id with a trace of a secret of the list, one that is cut off ("...") or that
    -- holds an escape: the table (eip.pipeline reads it the general way, redacting it).
    for _, odd in ipairs{ "id-" .. token:sub(1, 12), "abc...", "a%2Fb" } do
      emu:inject{ status = 204, headers = { ["X-Request-Id"] = odd } }
      local r = session:lane(prepared, "/a/4", 204, { token })
      assert.equal("table", type(r), odd)
      assert.equal(odd, r.request_id)
    end
    -- Without the list, a request id is what came.
    emu:inject{ status = 204, headers = { ["X-Request-Id"] = "abc..." } }
    assert.equal("abc...", select(2, session:lane(prepared, "/a/5", 204)))
    -- A path longer than the C core's stack buffer (built in the heap).
    local long = "/" .. string.rep("p", 5000)
    emu:inject{ status = 204 }
    assert.equal(204, (session:lane(prepared, long, 204)))
    -- In between, requests of session:request to other URLs with other headers go out as asked,
    -- and the prepared one after them as prepared.
    emu:inject{ status = 204, times = 3 }
    local other = session:request{ method = "GET", url = emu.url .. "/other", headers = { "X-Step: other" } }
    assert.equal(204, other.status)
    emu:inject{ status = 204 }
    assert.equal(204, (session:lane(prepared, "/a/6", 204)))
    local log = emu:requests()
    local uris = {}
    for i, r in ipairs(log) do uris[i] = r.method .. " " .. r.uri .. " " .. tostring(r.headers["x-step"]) end
    assert.same({ "DELETE /lane/a/1 lane", "DELETE /lane/a/2 lane", "DELETE /lane/a/2b lane", "DELETE /lane/a/3 lane",
      "DELETE /lane/a/4 lane", "DELETE /lane/a/4 lane", "DELETE /lane/a/4 lane", "DELETE /lane/a/5 lane",
      "DELETE /lane" .. long .. " lane", "GET /other other", "DELETE /lane/a/6 lane" }, uris)
    assert.equal(token, log[#log].headers["x-auth-token"])
  end)

  it("session:lane signs as signer:headers does: the same lines in order, a base path, a security token",
      function()
    emu:reset()
    local hostport = "127.0.0.1:" .. emu.port
    local entries = { { "Content-Type", "application/json", line = "Content-Type: application/json" },
      { "Accept", "application/json", signed = false, line = "Accept: application/json" } }
    for _, case in ipairs{ { base = "", token = nil }, { base = "/gw/eip", token = "security-token-xyz" } } do
      emu:reset()
      local signer = core.signer("AKLANE0000000000", "SKlane-secret-0123456789", case.token)
      local prepared = session:prepare({ method = "DELETE", url = emu.url .. "/lane", timeout = 5 },
        { signer = signer, host = hostport, project_id = "p-0123", base_path = case.base, headers = entries })
      emu:inject{ status = 204, times = 2 }
      local t0 = os.time()
      assert.equal(204, (session:lane(prepared, "/v2.0/p-0123/bandwidths/b1", 204)))
      local t1 = os.time()
      local got = emu:requests()[1]
      -- The lines signer:headers makes for that path (the base path before it) in that second.
      local want
      for now = t0, t1 do
        local lines = signer:headers("DELETE", case.base .. "/v2.0/p-0123/bandwidths/b1", nil, nil, hostport, "p-0123",
          entries, now)
        if lines[#lines] == "Authorization: " .. got.headers.authorization then want = lines end
      end
      assert.is_table(want, "the lane's signature is signer:headers' for the same request")
      local names = {}
      for i, line in ipairs(want) do
        local name, value = line:match("^([^:]+): (.*)$")
        names[i] = name
        assert.equal(value, got.headers[name:lower()], name)
      end
      assert.same(case.token and { "Content-Type", "Accept", "Host", "X-Sdk-Date", "X-Project-Id",
        "X-Security-Token", "Authorization" } or { "Content-Type", "Accept", "Host", "X-Sdk-Date", "X-Project-Id",
        "Authorization" }, names)
      assert.equal("/lane/v2.0/p-0123/bandwidths/b1", got.uri)
      -- Refused: lines given beside signing, a signer that is no signer, a line with CR/LF.
      assert.has_error(function()
        session:prepare({ method = "DELETE", url = emu.url, headers = { "A: b" } },
          { signer = signer, host = hostport, headers = entries })
      end, "eip.core: field 'headers' must be nil in a signed prepared request (signing.headers)")
      assert.has_error(function()
        session:prepare({ method = "DELETE", url = emu.url }, { signer = {}, host = hostport, headers = entries })
      end, "eip.core: signing.signer must be a core.signer")
      assert.has_error(function()
        session:prepare({ method = "DELETE", url = emu.url },
          { signer = signer, host = "h\r\nX: y", headers = entries })
      end)
    end
  end)

  it("session:prepare refuses what session:request refuses, a proxy and a body; lane a path with NUL", function()
    local url = emu.url
    assert.has_error(function() session:prepare{ url = url } end)
    assert.has_error(function() session:prepare{ method = "DELETE", url = url, headers = { "bad line" } } end)
    assert.has_error(function() session:prepare{ method = "DELETE", url = url, body = "{}" } end,
      "eip.core: field 'body' must be nil in a prepared request")
    assert.has_error(function()
      session:prepare{ method = "DELETE", url = url, proxy = { url = "http://127.0.0.1:9" } }
    end, "eip.core: field 'proxy' must be false or nil in a prepared request (it goes direct)")
    local prepared = session:prepare{ method = "DELETE", url = url }
    assert.has_error(function() session:lane(prepared, "/a\0b", 204) end,
      "eip.core: field 'path' must not contain a NUL byte")
    assert.has_error(function() session:lane({}, "/a", 204) end)
    assert.has_error(function() session:lane(prepared, "/a") end)
    assert.equal("eip.core.prepared", tostring(prepared))
  end)

  it("core.clean_id: core.is_id and no piece of either list's secrets, as validate.secret_id checks", function()
    local secret, more = "secret-0123456789", { "proxy-password-xyz" }
    for _, v in ipairs{ "bw-1", "3fa1e2b4-1111-2222-3333-444455556666", "secret-0", "ecret-0123456789",
        "proxy-pa", "roxy-password", "a b", "", ".", "..", string.rep("a", 64), string.rep("a", 65), 12 } do
      local want = core.is_id(v) and not core.secret_ranges(v, { secret })
        and not core.secret_ranges(v, more)
      assert.equal(want, core.clean_id(v, { secret }, more), tostring(v))
      assert.equal(core.is_id(v) and not core.secret_ranges(v, { secret }), core.clean_id(v, { secret }, false),
        tostring(v))
      assert.equal(core.is_id(v) and not core.secret_ranges(v, { secret }), core.clean_id(v, { secret }), tostring(v))
    end
    assert.has_error(function() core.clean_id("x") end)
  end)

  it("core.is_id: 1 to 64 bytes of [0-9A-Za-z._-], not . or .., byte for byte as the pattern says", function()
    for _, ok in ipairs{ "a", "3fa1e2b4-1111-2222-3333-444455556666", "bw_1.2-X", "...", ".a", "a..", ("z"):rep(64) } do
      assert.is_true(core.is_id(ok), ok)
    end
    for _, bad in ipairs{ "", ".", "..", ("z"):rep(65), "a b", "a/b", "a\0b", "a\n", "é", "a~", "a%2F" } do
      assert.is_false(core.is_id(bad), bad)
    end
    -- Not strings: false, a number included (Lua would convert it to "12").
    for _, v in ipairs{ 12, true, {}, core.is_id } do assert.is_false(core.is_id(v)) end
    assert.is_false(core.is_id(nil))
    assert.is_false(core.is_id())
    -- Every byte, alone and inside an id, against the pattern eip.validate used before.
    for b = 0, 255 do
      local c = string.char(b)
      local want = c:find("^[0-9A-Za-z._-]$") ~= nil
      assert.equal(want and c ~= ".", core.is_id(c), "byte " .. b)
      assert.equal(want, core.is_id("id" .. c .. "x"), "byte " .. b)
    end
  end)

  it("core.secret_ranges: every piece of every secret, extended as far as it matches, merged", function()
    local secret, other = "secret-0123456789", "ANOTHER-long-secret"
    local function ranges(s, list) return core.secret_ranges(s, list or { secret, other }) end
    assert.is_nil(ranges("nothing here"))
    assert.same({ 4, 20 }, ranges("id secret-0123456789 end"))
    assert.same({ 4, 13 }, ranges("id secret-012 cut")) -- cut short
    assert.same({ 4, 13 }, ranges("id 0123456789 tail")) -- its start cut off
    assert.same({ 3, 12 }, ranges("x cret-01234 y")) -- a piece of its middle
    assert.same({ 1, 17, 19, 37 }, ranges("secret-0123456789 ANOTHER-long-secret"))
    assert.same({ 1, 36 }, ranges("secret-0123456789ANOTHER-long-secret"), "touching pieces merge")
    assert.same({ 1, 5 }, ranges("short", { "short" })) -- a short secret: the whole text only
    assert.is_nil(ranges("a short one", { "short" }))
    assert.is_nil(ranges("x", { false, 12 }), "values that are not strings are skipped")
    -- The index follows the list as it changes: a value replaced, added, removed.
    local list = { "first-secret-value" }
    assert.is_not_nil(ranges("first-secret-value", list))
    list[1] = "2nd-PASSWORD-XYZ-123" -- (nothing in common with the first, in any case)
    assert.is_nil(ranges("first-secret-value", list))
    assert.is_not_nil(ranges("2nd-PASSWORD-XYZ-123", list))
    list.retired1 = "first-secret-value"
    assert.is_not_nil(ranges("first-secret-value", list))
    list.retired1 = nil
    assert.is_nil(ranges("first-secret-value", list))
    -- Every piece of 8 bytes of a long secret, wherever it starts.
    local bytes, x = {}, 12345
    for i = 1, 3000 do
      x = (x * 1103515245 + 12345) % 2147483648
      bytes[i] = string.char(33 + math.floor(x / 65536) % 94)
    end
    local long = table.concat(bytes)
    for from = 1, #long - 7, 97 do
      local piece = long:sub(from, from + 7)
      assert.same({ 3, 10 }, ranges("> " .. piece .. " <", { long }), "piece at " .. from)
    end
  end)

  it("core.plain_text: no control character, no escape, no trace of a secret in the list", function()
    assert.is_true(core.plain_text("0123456789abcdef", {}))
    assert.is_true(core.plain_text("", {}))
    for _, bad in ipairs{ "a\nb", "a\0b", "\27[m", "a\127", "a%2F", "a\\b" } do
      assert.is_false(core.plain_text(bad, {}), bad)
    end
    local secret = "secret-0123456789"
    assert.is_true(core.plain_text("id secret-", { secret })) -- 7 bytes of its start: no trace
    assert.is_false(core.plain_text("id secret-0", { secret })) -- 8: perhaps a copy cut short
    assert.is_false(core.plain_text("secret-0 id", { secret }))
    assert.is_false(core.plain_text("ecret-0123456789", { secret })) -- its end: a copy with its start cut off
    assert.is_false(core.plain_text("id 23456789", { secret })) -- its last 8 bytes
    assert.is_true(core.plain_text("id 3456789", { secret })) -- 7 bytes of its end: no trace
    assert.is_false(core.plain_text("x cret-01234 y", { secret })) -- 10 bytes from its middle
    assert.is_false(core.plain_text("x cret-012 y", { secret })) -- 8 bytes from its middle
    assert.is_true(core.plain_text("x cret-01 y", { secret })) -- 7: ordinary words may hold as much
    assert.is_false(core.plain_text("short", { "short" })) -- a short secret: only the whole value
    assert.is_true(core.plain_text("shorter", { "short" }))
    assert.is_false(core.plain_text("x", { nil, "x" }), "holes in the list are skipped")
    assert.is_false(core.plain_text("x", { "a-long-secret", "b-long-secret", "x" }), "any number of secrets")
    assert.is_false(core.plain_text("x", { false }), "a secret that is not a string")
    assert.is_false(core.plain_text("12", { 12 }))
    assert.has_error(function() core.plain_text(nil, {}) end)
    assert.has_error(function() core.plain_text("x") end)
  end)

  it("core.blank_controls: control characters become spaces; a clean string comes back as it is", function()
    local clean = "0123456789abcdef ~!é"
    assert.equal(clean, core.blank_controls(clean))
    assert.equal("", core.blank_controls(""))
    assert.equal("a b c d e  f", core.blank_controls("a\0b\nc\rd\27e\127\31f"))
    -- Lua's %c in the C locale (C0 and DEL), and the C1 controls: a lone byte 0x80-0x9F, or
    -- U+0080-U+009F in UTF-8 (C2 80..C2 9F: one space for the pair); CSI (U+009B) is ESC [
    -- to a terminal. A continuation byte a lead byte announced is text.
    for b = 0, 255 do
      local c = string.char(b)
      local want = (b < 32 or b == 127 or (b >= 0x80 and b <= 0x9F)) and " " or c
      assert.equal("x" .. want .. "y", core.blank_controls("x" .. c .. "y"), "byte " .. b)
    end
    assert.equal("a b", core.blank_controls("a\194\155b"))
    local utf8_text = "\195\169 \228\184\173 \240\159\152\128"
    assert.equal(utf8_text, core.blank_controls(utf8_text))
    assert.equal("\226\128\155", core.blank_controls("\226\128\155")) -- (U+201B: its 0x9B continues it)
    -- A lead byte announces only what UTF-8 allows after it (no overlong form, no surrogate,
    -- nothing past U+10FFFF): a 0x9B after E0, F4, or in E0 82 9B, is a control.
    for _, t in ipairs{ "a\224\155[2J", "a\244\155[2J", "a\224\130\155[2J", "a\237\160\155" } do
      assert.is_nil(core.blank_controls(t):find("[\128-\159]"), string.format("%q", t))
    end
    assert.equal("\237\159\191", core.blank_controls("\237\159\191")) -- (U+D7FF)
    -- Invisible format characters count too: a secret split by zero-width spaces reads whole on
    -- a terminal, and bidi overrides reorder what it shows. Their neighbours are text.
    local formats = { "\194\173", "\216\156", "\226\128\139", "\226\128\143", "\226\128\168", "\226\128\174",
      "\226\129\160", "\226\129\164", "\226\129\166", "\226\129\175", "\239\187\191",
      -- (U+034F, U+180E, U+3164, U+FE0F, U+FFA0, U+E0020 a tag, U+E0100, U+1D173)
      "\205\143", "\225\160\142", "\227\133\164", "\239\184\143", "\239\190\160", "\243\160\128\160",
      "\243\160\132\128", "\240\157\133\179" }
    -- (those that live inside a character or a word are removed rather than blanked: ❤ and its
    -- U+FE0F, an emoji sequence's joiner, a soft hyphen)
    local joins = { ["\194\173"] = true, ["\226\128\139"] = true, ["\205\143"] = true, ["\225\160\142"] = true,
      ["\239\184\143"] = true, ["\239\187\191"] = true, ["\243\160\128\160"] = true, ["\243\160\132\128"] = true,
      ["\226\129\160"] = true }
    for _, f in ipairs(formats) do
      assert.equal(joins[f] and "ab" or "a b", core.blank_controls("a" .. f .. "b"), string.format("%q", f))
      assert.equal("ab", core.escape_controls("a" .. f .. "b", true), string.format("%q", f))
    end
    assert.equal("\226\157\164 \240\159\145\168\240\159\145\169",
      core.blank_controls("\226\157\164\239\184\143 \240\159\145\168\226\128\141\240\159\145\169"))
    for _, t in ipairs{ "\194\172", "\216\155", "\226\128\138", "\226\128\144", "\226\128\175", "\226\129\165",
      "\226\129\176", "\239\187\190", "\226\128\148", "\239\184\144", "\243\160\130\128",
      "\226\157\164" } do -- (their neighbours, an em dash, a heart: U+2764)
      assert.equal("a" .. t .. "b", core.blank_controls("a" .. t .. "b"), string.format("%q", t))
    end
    assert.equal("a\\194\\155b", core.escape_controls("a\194\155b"))
    assert.equal("ab", core.escape_controls("a\194\155\27b", true)) -- (strip)
    assert.equal("x\\194\\155y\\27", core.escape_controls("x\194\155y\27"))
    assert.has_error(function() core.blank_controls({}) end)
    -- Its second result: could the text hide a secret (a control character, a % or \ escape)?
    assert.same({ "abc-123", false }, { core.blank_controls("abc-123") })
    assert.same({ "a%2Fb", true }, { core.blank_controls("a%2Fb") })
    assert.same({ "a\\\"b", true }, { core.blank_controls("a\\\"b") })
    assert.same({ "a b", true }, { core.blank_controls("a\nb") })
  end)
end)

-- Whether the calling code can yield, where nginx's coroutine table has no isyieldable
-- (eip.transport: no cosocket, light thread or ngx.sleep where it cannot). nil where the
-- interpreter cannot tell (Lua 5.1, 5.2).
describe("core.yieldable", function()
  it("says whether the caller can yield: not on the main thread, nor in a gsub callback", function()
    local top, in_co, in_gsub = core.yieldable(), nil, nil
    coroutine.wrap(function()
      in_co = core.yieldable()
      local _ = ("x"):gsub("x", function() in_gsub = core.yieldable() end)
    end)()
    if _VERSION == "Lua 5.1" and not rawget(_G, "jit") or _VERSION == "Lua 5.2" then
      assert.same({ true, true, true }, { top == nil, in_co == nil, in_gsub == nil })
    else
      assert.same({ false, true, false }, { top, in_co, in_gsub })
    end
  end)
end)
