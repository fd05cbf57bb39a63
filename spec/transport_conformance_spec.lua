-- The transport contract (the header of lua/eip/transport/init.lua), proven: ONE list of cases,
-- each run through both transports -- libcurl here (under every Lua of the matrix), cosockets
-- inside a real nginx (the OpenResty test app, spec/support/openresty/) -- and the two answers
-- compared field by field. The servers are the EIP emulator (its "raw" injection writes hostile
-- bytes), a TLS front with certificates of a CA made here by the `openssl` command
-- (spec/support/tls.lua), and the app, whose lua_ssl_trusted_certificate is that CA. Cases of
-- cosockets alone are tagged #openresty: `make test-matrix` runs them once, as nothing of them
-- runs in the Lua of a leg.
local cjson = require "cjson"
local socket = require "socket"
local eip = require "eip"
local contract = require "eip.transport"
local emulator = require "spec.support.emulator"
local launcher = require "spec.support.openresty.launcher"
local tls = require "spec.support.tls"
local dns = require "spec.support.dns"
local proxy = require "spec.support.proxy"
local host = require "spec.support.host"
local proxy_settings = require "eip.proxy"
local absent_id = require("spec.support.fixture").absent_id

-- "Ends within its timeout": a run may take this much longer than the case's timeout.
local SLACK = 3

-- Fields both transports must answer alike (the contract's response, elapsed and
-- new_connections aside; curl_error texts are alike, not identical). `date` is compared by its
-- presence only: the emulator's nginx writes its clock's second, which may pass between the runs
-- (a case's `expect` says what it must be).
local SAME = { "status", "request_id", "retry_after", "content_type", "location", "subject_token", "body",
  "truncated", "curl_code", "error_kind", "proxy_status", "unsent" }

local NONE = setmetatable({}, { __tostring = function() return "(absent)" end })

local HEAD = "HTTP/1.1 200 OK\r\n"
local LONG_TOKEN = "MIIconformance" .. string.rep("abcdefghijklmnopqrstuvwxyz0123456789-_", 431) -- 16392 bytes

-- Through a proxy: a name only the test proxies resolve (to 127.0.0.1), and their credentials.
local NAME = tls.PROXIED_NAME
local PROXY_USER, PROXY_SECRET = "conformance-user", "conformance-Secret-9"

describe("the transport contract, through both transports", function()
  local pki, emu, front, app, resolver, open_proxy, guarded_proxy, slow_proxy
  local silent_listeners = {} -- sockets that listen and never accept (closed in teardown)

  setup(function()
    pki = tls.make_pki()
    emu = emulator.start()
    front = tls.start(emu, pki)
    open_proxy = proxy.start{ names = { [NAME] = "127.0.0.1" }, deny = { "blocked.test" },
      misbehave = { ["drop.test"] = "drop", ["garbage.test"] = "garbage", ["cut.test"] = "cut",
        ["endless.test"] = "endless", ["silent.test"] = "silent", ["cut407.test"] = "cut407",
        ["short407.test"] = "short407", ["hang407.test"] = "hang407" } }
    slow_proxy = proxy.start{ names = { [NAME] = "127.0.0.1" }, misbehave = { [NAME] = "slow" } }
    guarded_proxy = proxy.start{ names = { [NAME] = "127.0.0.1" }, auth = PROXY_USER .. ":" .. PROXY_SECRET }
    -- Host names: libcurl resolves localhost from /etc/hosts; nginx asks this responder.
    resolver = dns.start{ "localhost" }
    app = launcher.start(emu, { timeout = 5, max_attempts = 1, trusted_certificate = pki.ca,
      resolver = "127.0.0.1:" .. resolver.port })
  end)

  teardown(function()
    for _, listener in ipairs(silent_listeners) do listener:close() end
    if app then app:stop() end
    if guarded_proxy then guarded_proxy:stop() end
    if slow_proxy then slow_proxy:stop() end
    if open_proxy then open_proxy:stop() end
    if resolver then resolver:stop() end
    if front then front:stop() end
    if emu then emu:stop() end
    if pki then pki:remove() end
  end)

  -- Runs -------------------------------------------------------------------------------------

  local function app_post(path, value, timeout)
    local resp, err = emulator.http{ port = app.port, method = "POST", path = path, body = cjson.encode(value),
      headers = { ["Content-Type"] = "application/json" }, timeout = timeout }
    assert(resp, "app request failed: " .. tostring(err) .. "\n" .. app:log_tail(20))
    assert.equal(200, resp.status, resp.body .. "\n" .. app:log_tail(20))
    return cjson.decode(resp.body)
  end

  -- The two transports, each as send(req, opts) -> response table.
  local TRANSPORTS = {
    { name = "libcurl", send = function(req, opts)
      local t = require("eip.transport.curl").new{ ca_file = pki.ca, insecure = opts.insecure,
        user_agent = "lua-eip-conformance" }
      local resp = t:send(req)
      t:close()
      return resp
    end },
    { name = "cosocket", send = function(req, opts)
      local r = {}
      for k, v in pairs(req) do r[k] = v end
      r.insecure, r.user_agent = opts.insecure, "lua-eip-conformance"
      local resp = app_post("/t/send", r, req.timeout + SLACK + 5)
      -- (what the transport set in req.progress, inside nginx, back in the caller's table)
      if type(req.progress) == "table" then req.progress.sent, resp.progress_sent = resp.progress_sent, nil end
      return resp
    end },
  }

  -- libcurl's multi interface, as a batch sends (lua/eip/batch.lua's C multi driver): each
  -- case through it too, its answer the single call's (the same easy-handle setup: TLS,
  -- protocols, redirects, proxies, timeouts, caps). About 20 s more per run;
  -- EIP_CONFORMANCE_MULTI=0 leaves it out.
  local MULTI_TOO = os.getenv("EIP_CONFORMANCE_MULTI") ~= "0"
  local MULTI = { name = "libcurl multi", send = function(req, opts)
    local m = require("eip.core").multi{ ca_file = pki.ca, insecure = opts.insecure,
      user_agent = "lua-eip-conformance" }
    assert(m:start(req))
    local give_up = socket.gettime() + req.timeout + SLACK + 5
    local slot, resp
    repeat slot, resp = m:next(1) until slot or socket.gettime() > give_up
    m:close()
    assert(slot, "libcurl multi: no answer")
    if resp.curl_code then
      resp.error_kind = contract.error_kind(resp.curl_code, resp.curl_error, req.proxy, resp.proxy_status)
    end
    if type(req.progress) == "table" and not resp.unsent then req.progress.sent = true end
    return resp
  end }

  local function api_url(path)
    return emu.url .. (path or "/conformance")
  end

  -- A path the emulator routes for `method` (a bandwidth's delete, or the remove of its EIPs):
  -- an answer injected as the EIP service's (a body with a VPC. code) comes only once the
  -- request was routed and authenticated, as in the cloud; to a made-up path the gateway's own
  -- 404 APIGW.0101 comes first.
  local function routed(method)
    return "/v2.0/" .. emu.project_id .. "/bandwidths/0c0f0c0f-0000-4000-8000-00000000c0f0"
      .. (method == "POST" and "/remove" or "")
  end

  -- The request of a case: DELETE with a token, and the case's own fields. Seconds for an
  -- exchange that must end otherwise than by its timeout; a case about the timeout sets 1 s.
  local function request_of(case)
    local req = {
      method = "DELETE", url = case.url and case.url() or api_url(),
      headers = { "X-Auth-Token: " .. emu.token, "Accept: application/json" },
      timeout = 5, connect_timeout = 5,
    }
    for k, v in pairs(case.req or {}) do req[k] = v end
    if case.proxy then req.proxy = case.proxy() end
    return req
  end

  -- req.proxy as the client makes it (eip.proxy), for the open proxy or, with credentials
  -- (a password: the right one by default), the guarded one.
  local function via_open()
    return proxy_settings.parse("proxy", open_proxy.url)
  end
  local function via_guarded(password)
    return function()
      return proxy_settings.parse("proxy", string.format("http://%s:%s@127.0.0.1:%d", PROXY_USER,
        password or PROXY_SECRET, guarded_proxy.port))
    end
  end
  local function proxied_url(port, path)
    return function() return (port == "emu" and ("http://" .. NAME .. ":" .. emu.port)
      or ("https://" .. NAME .. ":" .. front.ports[port])) .. (path or "/conformance") end
  end
  local function last_seen(p)
    local seen = p:seen()
    return seen[#seen] or {}
  end

  -- What every response of every transport must be, case or not.
  local function assert_shape(resp, label, req)
    assert.is_number(resp.status, label)
    assert.is_string(resp.body, label)
    assert.is_boolean(resp.truncated, label)
    assert.is_number(resp.elapsed, label)
    assert.is_number(resp.new_connections, label)
    assert.is_true(#resp.body <= (req.body_cap or 1048576), label .. ": body within body_cap")
    if resp.curl_code ~= nil then
      assert.is_number(resp.curl_code, label)
      assert.is_string(resp.curl_error, label)
      assert.is_nil(resp.curl_error:find(emu.token, 1, true), label .. ": curl_error shows a request header")
      assert.equal(contract.error_kind(resp.curl_code, resp.curl_error, req.proxy, resp.proxy_status), resp.error_kind,
        label .. ": error_kind")
      local known = false
      for _, k in ipairs(contract.KIND_NAMES) do known = known or k == resp.error_kind end
      assert.is_true(known, label .. ": error_kind " .. tostring(resp.error_kind) .. " is not in the contract")
      assert.is_true(resp.unsent == nil or resp.unsent == true, label .. ": unsent is true or absent")
    else
      assert.is_nil(resp.curl_error, label)
      assert.is_nil(resp.error_kind, label)
      assert.is_nil(resp.unsent, label .. ": unsent on an answer")
    end
  end

  local function run(case, transport)
    emu:reset()
    if case.arrange then case.arrange() end
    local req = request_of(case)
    req.progress = { sent = false }
    local t0 = socket.gettime()
    local resp = transport.send(req, case.opts or {})
    local took = socket.gettime() - t0
    local label = transport.name .. ", " .. case.name .. " [" .. tostring(resp.curl_error) .. "]"
    assert_shape(resp, label, req)
    -- unsent: the API (the emulator, behind the TLS front or a proxy too) saw nothing of it;
    -- and a failure after the emulator read the request is never unsent.
    local reached = #emu:requests()
    -- progress.sent: set once anything of the request may have been written, so exactly when
    -- the response is not unsent (what a batch inside nginx reads of a thread it aborts)
    assert.equal(not resp.unsent, req.progress.sent, label .. ": progress.sent")
    if resp.unsent then
      assert.equal(0, reached, label .. ": unsent, yet the emulator read the request")
    elseif resp.curl_code and reached > 0 then
      assert.is_nil(resp.unsent, label)
    end
    assert.is_true(took < req.timeout + SLACK,
      string.format("%s: took %.1f s, timeout %s s", label, took, tostring(req.timeout)))
    for k, want in pairs(case.expect or {}) do
      if want == NONE then
        assert.is_nil(resp[k], label .. ": " .. k)
      else
        assert.equal(want, resp[k], label .. ": " .. k)
      end
    end
    if case.check then case.check(resp, label) end
    return resp
  end

  local function inject(rule)
    return function() emu:inject(rule) end
  end

  local function raw(bytes, rule)
    rule = rule or {}
    rule.action, rule.raw = "raw", bytes
    return inject(rule)
  end

  -- The cases --------------------------------------------------------------------------------

  local trusted_logged = 0 -- lines in the TLS front's protocol log before the trusted case ran

  local CASES = {
    { name = "a 204 without a body",
      arrange = inject{ status = 204 },
      expect = { status = 204, body = "", truncated = false, curl_code = NONE },
      varies = { request_id = true },
      check = function(resp, label) assert.matches("^%x+$", resp.request_id, label) end },

    { name = "a 200 with a Content-Length body",
      arrange = inject{ status = 200, body = '{"bandwidth":{"id":"bw-1"}}' },
      expect = { status = 200, body = '{"bandwidth":{"id":"bw-1"}}', curl_code = NONE },
      varies = { request_id = true } },

    { name = "a 200 with a chunked body",
      arrange = inject{ status = 200, body = '{"bandwidth":{"id":"bw-2"}}', chunked = true },
      expect = { status = 200, body = '{"bandwidth":{"id":"bw-2"}}', curl_code = NONE },
      varies = { request_id = true } },

    { name = "an interim 100 Continue, then the final answer",
      arrange = raw("HTTP/1.1 100 Continue\r\nX-Request-Id: interim\r\n\r\n"
        .. "HTTP/1.1 204 No Content\r\nX-Request-Id: final\r\n\r\n"),
      expect = { status = 204, request_id = "final", curl_code = NONE } },

    -- A head the connection closed inside is no answer to act on: libcurl 7.88 took a final one
    -- as it stood (a line it drops unseen, with a NUL byte, included: a cut 204 read as a
    -- delete done), an interim one as a final 100.
    { name = "the connection closed inside the final head: unusable, whatever its status line said",
      arrange = raw("HTTP/1.1 204 No Content\r\nX-Request-Id: cut\r\n"),
      expect = { status = 204, curl_code = 8, error_kind = "protocol" } },

    { name = "a NUL line, then the close, inside the final head",
      arrange = raw("HTTP/1.1 204 No Content\r\nX-Request-Id: abc\r\n\0\r\n"),
      expect = { curl_code = 8, error_kind = "protocol" } },

    { name = "the connection closed inside an interim head: no answer came",
      arrange = raw("HTTP/1.1 100 Continue\r\nX-A: 1\r\n"),
      expect = { status = 0, curl_code = 52, error_kind = "reset" } },

    -- Interim answers are skipped: a failure before any final head came (after or inside an
    -- interim one) keeps nothing of the interim answer. Its status and request id were the
    -- response's: on_response and eip.metrics counted such a delete as a status 100.
    { name = "the connection closed after a whole interim head: nothing of it kept",
      arrange = raw("HTTP/1.1 100 Continue\r\nX-Request-Id: interim\r\nRetry-After: 5\r\n\r\n"),
      expect = { status = 0, curl_code = 52, error_kind = "reset", request_id = NONE, retry_after = NONE } },
    { name = "a header line without a colon inside an interim head: nothing of it kept",
      arrange = raw("HTTP/1.1 102 Processing\r\nX-Request-Id: interim\r\nno colon\r\n\r\n"),
      expect = { status = 0, curl_code = 8, error_kind = "protocol", request_id = NONE } },
    { name = "interim heads past LIMITS.header_block: nothing of them kept",
      arrange = raw("", { raw_repeat = "HTTP/1.1 100 Continue\r\nX-Request-Id: interim\r\nX-Pad: "
        .. string.rep("p", 1000) .. "\r\n\r\n" }),
      expect = { status = 0, curl_code = 56, error_kind = "protocol", request_id = NONE } },
    { name = "a timeout after an interim answer: nothing of it kept", once = true,
      req = { timeout = 1 },
      arrange = raw("HTTP/1.1 100 Continue\r\nX-Request-Id: interim\r\n\r\n", { raw_end = "hang" }),
      expect = { status = 0, curl_code = 28, error_kind = "timeout", request_id = NONE } },

    { name = "captured headers, with a 16 KiB X-Subject-Token in full",
      arrange = inject{ status = 201, body = "{}", content_type = "application/json;charset=UTF-8",
        headers = { ["X-Subject-Token"] = LONG_TOKEN, ["Retry-After"] = "7", Location = "http://elsewhere.invalid/x",
          ["X-Request-Id"] = "  padded-id  " } },
      expect = { status = 201, subject_token = LONG_TOKEN, retry_after = "7", location = "http://elsewhere.invalid/x",
        request_id = "padded-id", content_type = "application/json;charset=UTF-8", curl_code = NONE } },

    -- IAM answers name themselves with X-IAM-Trace-Id: the request id when no X-Request-Id comes.
    { name = "IAM's X-IAM-Trace-Id is the request id without an X-Request-Id",
      arrange = raw(HEAD .. "X-Iam-Trace-Id: trace-1\r\nContent-Length: 0\r\n\r\n"),
      expect = { status = 200, request_id = "trace-1", curl_code = NONE } },

    { name = "X-Request-Id beats X-IAM-Trace-Id, before or after it",
      arrange = raw("HTTP/1.1 100 Continue\r\nX-IAM-Trace-Id: interim\r\n\r\n"
        .. HEAD .. "X-Request-Id: req-1\r\nX-IAM-Trace-Id: trace-1\r\nX-Request-Id: req-2\r\n"
        .. "x-iam-trace-id: trace-2\r\nContent-Length: 0\r\n\r\n"),
      expect = { status = 200, request_id = "req-2", curl_code = NONE } },

    -- Repeated Retry-After lines: the last one alone was kept, so "60" then "1" waited 1 s and
    -- sent again. Every value now, joined in order (the retry policy waits for the longest),
    -- an empty one skipped, the whole cut as one value.
    { name = "repeated Retry-After: every non-empty value, in order, joined with a comma",
      arrange = raw(HEAD .. "Retry-After: 60\r\nRetry-After:\r\nX-Request-Id: r\r\nretry-after:  1 \r\n"
        .. "Retry-After: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: 0\r\n\r\n"),
      expect = { status = 200, retry_after = "60, 1, Sun, 06 Nov 1994 08:49:37 GMT", request_id = "r",
        curl_code = NONE } },
    { name = "repeated Retry-After past 255 bytes: cut as one value, the cut marked",
      arrange = raw(HEAD .. "Retry-After: " .. string.rep("9", 200) .. "\r\nRetry-After: " .. string.rep("8", 100)
        .. "\r\nRetry-After: 7\r\nContent-Length: 0\r\n\r\n"),
      expect = { status = 200, retry_after = string.rep("9", 200) .. ", " .. string.rep("8", 50) .. "...",
        curl_code = NONE } },
    { name = "repeated Retry-After of exactly 255 bytes, then one more: cut, the cut marked",
      arrange = raw(HEAD .. "Retry-After: " .. string.rep("9", 250) .. "\r\nRetry-After: 123\r\n"
        .. "Retry-After: 4\r\nContent-Length: 0\r\n\r\n"),
      expect = { status = 200, retry_after = string.rep("9", 250) .. ", ...", curl_code = NONE } },
    -- Date: the server's clock, against which the retry policy reads an HTTP-date Retry-After.
    { name = "Date is captured as the last value, blanks around it removed; an interim answer's is not",
      arrange = raw("HTTP/1.1 100 Continue\r\nDate: Mon, 07 Nov 1994 08:49:37 GMT\r\n\r\n"
        .. "HTTP/1.1 429 Too Many Requests\r\nDate: x\r\ndate:  Sun, 06 Nov 1994 08:49:37 GMT \r\n"
        .. "Retry-After: Sun, 06 Nov 1994 08:49:47 GMT\r\nContent-Length: 0\r\n\r\n"),
      expect = { status = 429, date = "Sun, 06 Nov 1994 08:49:37 GMT", retry_after = "Sun, 06 Nov 1994 08:49:47 GMT",
        curl_code = NONE } },
    { name = "an interim answer's Retry-After is not the final answer's",
      arrange = raw("HTTP/1.1 100 Continue\r\nRetry-After: 60\r\n\r\n"
        .. "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n"),
      expect = { status = 503, retry_after = "1", curl_code = NONE } },

    { name = "a captured value over 255 bytes is cut to 255, the cut marked (the subject token is not)",
      arrange = raw(HEAD .. "X-Request-Id: " .. string.rep("r", 300) .. "\r\nContent-Length: 0\r\n\r\n"),
      expect = { status = 200, request_id = string.rep("r", contract.CAPTURED_MAX - 3) .. "...", curl_code = NONE } },
    { name = "a captured value of exactly 255 bytes is kept whole",
      arrange = raw(HEAD .. "X-Request-Id: " .. string.rep("r", 255) .. "\r\nContent-Length: 0\r\n\r\n"),
      expect = { status = 200, request_id = string.rep("r", 255), curl_code = NONE } },

    { name = "a body over body_cap (Content-Length): truncated, the rest not read",
      req = { body_cap = 1024 },
      arrange = inject{ status = 500, body_size = 100000 },
      expect = { status = 500, truncated = true, curl_code = NONE },
      varies = { request_id = true },
      check = function(resp, label) assert.equal(1024, #resp.body, label) end },

    { name = "a body over body_cap (chunked): truncated",
      req = { body_cap = 1024 },
      arrange = inject{ status = 500, body_size = 100000, chunked = true },
      expect = { status = 500, truncated = true, curl_code = NONE },
      varies = { request_id = true },
      check = function(resp, label) assert.equal(1024, #resp.body, label) end },

    -- Kept as they come (joined, not a part each) by the cosocket transport's reader.
    { name = "a body of 40000 tiny chunks: whole",
      arrange = raw(HEAD .. "Transfer-Encoding: chunked\r\n\r\n" .. string.rep("3\r\nabc\r\n", 40000) .. "0\r\n\r\n"),
      expect = { status = 200, body = string.rep("abc", 40000), truncated = false, curl_code = NONE } },

    { name = "a body of tiny chunks over body_cap: truncated",
      req = { body_cap = 1000 },
      arrange = raw(HEAD .. "Transfer-Encoding: chunked\r\n\r\n" .. string.rep("3\r\nabc\r\n", 40000) .. "0\r\n\r\n"),
      expect = { status = 200, body = string.rep("abc", 333) .. "a", truncated = true, curl_code = NONE } },

    { name = "a body of exactly body_cap bytes is not truncated",
      req = { body_cap = 1024 },
      arrange = inject{ status = 500, body_size = 1024 },
      expect = { status = 500, truncated = false, curl_code = NONE },
      varies = { request_id = true } },

    { name = "a body delimited by closing the connection",
      arrange = raw(HEAD .. "Content-Type: text/plain\r\n\r\n" .. string.rep("z", 3000)),
      expect = { status = 200, body = string.rep("z", 3000), truncated = false, content_type = "text/plain",
        curl_code = NONE } },

    { name = "a body delimited by closing the connection, over body_cap",
      req = { body_cap = 1024 },
      arrange = raw(HEAD .. "\r\n" .. string.rep("z", 3000)),
      expect = { status = 200, body = string.rep("z", 1024), truncated = true, curl_code = NONE } },

    { name = "a redirect is returned as it is, never followed",
      arrange = inject{ status = 302, headers = { Location = "http://elsewhere.invalid/x" } },
      expect = { status = 302, location = "http://elsewhere.invalid/x", curl_code = NONE },
      varies = { request_id = true } },

    { name = "an endless header line: a structured failure at the 100 KiB line limit",
      arrange = raw(HEAD .. "X-Flood: ", { raw_repeat = string.rep("a", 8192) }),
      expect = { status = 200, curl_code = 27, error_kind = "protocol" } },

    { name = "a header line of 102399 bytes, one under the limit, is accepted",
      arrange = raw(HEAD .. "X-Big: " .. string.rep("b", 102399 - 9) .. "\r\nContent-Length: 2\r\n\r\nok"),
      expect = { status = 200, body = "ok", curl_code = NONE } },

    { name = "a header line of 102400 bytes",
      arrange = raw(HEAD .. "X-Big: " .. string.rep("b", 102400 - 9) .. "\r\nContent-Length: 2\r\n\r\nok"),
      expect = { status = 200, curl_code = 27, error_kind = "protocol" } },

    -- A line still short of the limit when the connection closes is a close, not a line too
    -- long (the cosocket transport called it too long one byte early: another kind, and no
    -- resend of a DELETE on a reused connection, as libcurl makes after a 52)
    { name = "a status line of 102399 bytes without its end, then the close: no answer came",
      arrange = raw("HTTP/1.1 204 " .. string.rep("a", 102399 - 13)),
      expect = { status = 0, curl_code = 52, error_kind = "reset" } },

    { name = "a header block over 300 KiB",
      arrange = raw(HEAD, { raw_repeat = "X-Pad: " .. string.rep("p", 1000) .. "\r\n" }),
      expect = { status = 200, curl_code = 56, error_kind = "protocol" } },

    { name = "a chunk size that is not hex",
      arrange = raw(HEAD .. "Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"),
      expect = { status = 200, body = "", curl_code = 56, error_kind = "protocol" } },

    { name = "an over-long chunk size (endless hex digits)",
      arrange = raw(HEAD .. "Transfer-Encoding: chunked\r\n\r\n", { raw_repeat = string.rep("1", 1000) }),
      expect = { status = 200, curl_code = 56, error_kind = "protocol" } },

    { name = "an endless chunk extension: skipped, not kept, until the timeout",
      req = { timeout = 1 },
      arrange = raw(HEAD .. "Transfer-Encoding: chunked\r\n\r\n3;", { raw_repeat = string.rep("e", 8192),
        raw_interval = 0.001 }),
      expect = { status = 200, body = "", curl_code = 28, error_kind = "timeout" } },

    { name = "chunk data not followed by CRLF",
      arrange = raw(HEAD .. "Transfer-Encoding: chunked\r\n\r\n3\r\nabcXX0\r\n\r\n"),
      expect = { status = 200, body = "abc", curl_code = 56, error_kind = "protocol" } },

    { name = "a chunked trailer line over LIMITS.trailer_line",
      arrange = raw(HEAD .. "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: "
        .. string.rep("t", contract.LIMITS.trailer_line - 4) .. "\r\n\r\n"),
      expect = { status = 200, body = "abc", curl_code = 56, error_kind = "protocol" } },

    { name = "a trailer line of 4094 bytes without its end, then the close: the body cut short",
      arrange = raw(HEAD .. "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX: "
        .. string.rep("a", 4094 - 3)),
      expect = { status = 200, body = "abc", curl_code = 18, error_kind = "reset" } },

    -- libcurl keeps every trailer line in its header store: an endless stream of them grew the
    -- memory (hundreds of MB) until the timeout, and the memory stayed held after the call.
    { name = "an endless stream of chunked trailers: refused past LIMITS.trailer_block",
      arrange = raw(HEAD .. "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n",
        { raw_repeat = "X-T: " .. string.rep("v", 4000) .. "\r\n" }),
      expect = { status = 200, body = "abc", curl_code = 56, error_kind = "protocol" } },

    -- (each line counts with its CRLF: 76 lines of 4007 bytes and one of 2668 are 307200)
    { name = "chunked trailers of LIMITS.trailer_block bytes in all: taken",
      arrange = raw(HEAD .. "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n"
        .. string.rep("X-T: " .. string.rep("v", 4000) .. "\r\n", 76) .. "X-Request-Id: "
        .. string.rep("r", 2652) .. "\r\n\r\n"),
      expect = { status = 200, body = "abc", request_id = string.rep("r", contract.CAPTURED_MAX - 3) .. "...",
        curl_code = NONE } },

    { name = "chunked trailers of one byte more than LIMITS.trailer_block: refused",
      arrange = raw(HEAD .. "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n"
        .. string.rep("X-T: " .. string.rep("v", 4000) .. "\r\n", 76) .. "X-Request-Id: "
        .. string.rep("r", 2653) .. "\r\n\r\n"),
      expect = { status = 200, body = "abc", curl_code = 56, error_kind = "protocol" } },

    -- The chunked framing as libcurl 7.88 reads it, byte for byte (the C core decodes the body
    -- itself, libcurl still checking the framing): extensions skipped, bare LFs, CRs before a
    -- chunk's LF, sizes of up to 16 digits, trailers with a colon, folded after a header line.
    { name = "chunk extensions, bare LF line ends and a request id among the trailers: whole",
      arrange = raw(HEAD .. "Transfer-Encoding: chunked\r\n\r\n3;ext=1\nabc\n2 ; x\r\nde\r\r\n"
        .. "0\nX-Request-Id: in-a-trailer\n\n"),
      expect = { status = 200, body = "abcde", request_id = "in-a-trailer", curl_code = NONE } },

    -- (libcurl 7.88 takes a body whose last line's LF never came, the connection closed)
    { name = "a chunked body closed after its last line's CR: whole",
      arrange = raw(HEAD .. "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\nX-Request-Id: t\r\n\r"),
      expect = { status = 200, body = "{}", request_id = "t", curl_code = NONE } },

    { name = "a chunk size of 16 digits, and a folded trailer after a header line: whole",
      arrange = raw(HEAD .. "Transfer-Encoding: chunked\r\n\r\n0000000000000003\r\nabc\r\n0\r\n"
        .. "X-T: 1\r\n folded\r\n\r\n"),
      expect = { status = 200, body = "abc", curl_code = NONE } },

    { name = "a chunk size of 17 digits",
      arrange = raw(HEAD .. "Transfer-Encoding: chunked\r\n\r\n00000000000000003\r\nabc\r\n0\r\n\r\n"),
      expect = { status = 200, body = "", curl_code = 56, error_kind = "protocol" } },

    { name = "a chunked trailer line without a colon",
      arrange = raw(HEAD .. "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nno colon here\r\n\r\n"),
      expect = { status = 200, body = "abc", curl_code = 43, error_kind = "protocol" } },

    { name = "a chunked trailer line with a NUL byte",
      arrange = raw(HEAD .. "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: a\0b\r\n\r\n"),
      expect = { status = 200, body = "abc", curl_code = 43, error_kind = "protocol" } },

    { name = "a header line without a colon",
      arrange = raw(HEAD .. "this is no header\r\nContent-Length: 2\r\n\r\nok"),
      expect = { status = 200, curl_code = 8, error_kind = "protocol" } },

    { name = "an invalid Content-Length",
      arrange = raw(HEAD .. "Content-Length: -1\r\n\r\nok"),
      expect = { status = 200, curl_code = 8, error_kind = "protocol" } },

    { name = "a garbage status line (not HTTP at all)",
      arrange = raw("SSH-2.0-OpenSSH_9.2p1\r\n\r\n"),
      expect = { status = 0, curl_code = 1, error_kind = "protocol" } },

    { name = "a garbage status line (HTTP/1.1 and no code)",
      arrange = raw("HTTP/1.1 abc\r\n\r\n"),
      expect = { status = 0, curl_code = 1, error_kind = "protocol" } },

    { name = "random bytes",
      arrange = raw("\0\1\2\255garbage\r\n\r\n\254\253"),
      expect = { status = 0, curl_code = 1, error_kind = "protocol" } },

    -- The contract's status line: HTTP/1.0 or HTTP/1.1, SP, a code 100-599, the line end or SP.
    -- libcurl 7.88 alone takes some others (an HTTP/0.9-style fallback, sscanf's wrapping
    -- %d): a delete answered so must never read as done.
    { name = "a lowercase status line (libcurl alone: HTTP/1.0 200) is no answer",
      arrange = raw("http/1.1 500 Internal Server Error\r\nX-Request-Id: lower\r\nContent-Length: 0\r\n\r\n"),
      expect = { status = 0, curl_code = 1, error_kind = "protocol", body = "", request_id = NONE } },

    { name = "a lowercase final status line after a 100 Continue: nothing of either answer kept",
      arrange = raw("HTTP/1.1 100 Continue\r\nX-Request-Id: interim\r\n\r\n"
        .. "http/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"),
      expect = { status = 0, curl_code = 1, error_kind = "protocol", body = "", request_id = NONE } },

    { name = "an HTTP/2 status line whose code wraps in libcurl's %d (4294967500: its 204)",
      arrange = raw("HTTP/2 4294967500 No Content\r\nContent-Length: 0\r\n\r\n"),
      expect = { status = 0, curl_code = 1, error_kind = "protocol", body = "" } },

    -- (600-999: HTTP has no such status, nor a class to read one by; the pipeline took it for a
    -- transport that broke its contract, "other" with libcurl's code 2)
    { name = "a status over 599 is no answer",
      arrange = raw("HTTP/1.1 600 Weird\r\nX-Request-Id: odd\r\nContent-Length: 0\r\n\r\n"),
      expect = { status = 0, curl_code = 1, error_kind = "protocol", body = "", request_id = NONE } },

    { name = "a 101 Switching Protocols, then the close",
      arrange = raw("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n"),
      expect = { status = 0, curl_code = 1, error_kind = "protocol", body = "" } },

    { name = "a 101 Switching Protocols, then other bytes",
      arrange = raw("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nX-Request-Id: up\r\n\r\nnot http"),
      expect = { status = 0, curl_code = 1, error_kind = "protocol", body = "", request_id = NONE } },

    -- A header line starting with HTTP/ inside a head is a header (status lines are known by
    -- their place): it forgets nothing captured before it.
    { name = "a header line starting with HTTP/ inside a head is a header, not a new answer",
      arrange = raw(HEAD .. "X-Request-Id: kept\r\nHTTP/1.1 500: x\r\nContent-Length: 2\r\n\r\nok"),
      expect = { status = 200, request_id = "kept", body = "ok", curl_code = NONE } },

    -- RFC 9112 6.3, libcurl 7.88's reading: a Transfer-Encoding that leaves the answer unchunked
    -- overrides Content-Length; the body ends at the close.
    { name = "Transfer-Encoding: identity with a Content-Length: read until the close",
      arrange = raw(HEAD .. "Transfer-Encoding: identity\r\nContent-Length: 2\r\n\r\nhello"),
      expect = { status = 200, body = "hello", curl_code = NONE } },

    { name = "a Content-Length, then an empty Transfer-Encoding: read until the close",
      arrange = raw(HEAD .. "Content-Length: 2\r\nTransfer-Encoding:\r\n\r\nhello"),
      expect = { status = 200, body = "hello", curl_code = NONE } },

    { name = "Transfer-Encoding: , with a Content-Length: read until the close",
      arrange = raw(HEAD .. "Transfer-Encoding: ,\r\nContent-Length: 2\r\n\r\nhello"),
      expect = { status = 200, body = "hello", curl_code = NONE } },

    -- Only chunked and identity are read: any other coding fails (61) before any body, whatever
    -- the body holds (libcurl alone would read an empty one under an unknown coding, decode gzip,
    -- take "none" for identity); and at most five codings that are not chunked, over all the
    -- head's Transfer-Encoding lines, as libcurl counts them. A 204 has no body: not read.
    { name = "Transfer-Encoding: none (libcurl's alias of identity) fails",
      arrange = raw("HTTP/1.1 500 X\r\nTransfer-Encoding: none\r\n\r\nhello"),
      expect = { status = 500, curl_code = 61, error_kind = "protocol" } },
    { name = "an unknown coding and an empty body fails",
      arrange = raw("HTTP/1.1 409 Conflict\r\nTransfer-Encoding: foo\r\nContent-Length: 0\r\n\r\n"),
      expect = { status = 409, curl_code = 61, error_kind = "protocol" } },
    { name = "gzip before chunked, an empty body, fails",
      arrange = raw("HTTP/1.1 404 Not Found\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"),
      expect = { status = 404, curl_code = 61, error_kind = "protocol" } },
    { name = "six identity codings over two lines fail",
      arrange = raw("HTTP/1.1 500 X\r\nTransfer-Encoding: identity, identity, identity\r\n"
        .. "Transfer-Encoding: identity,identity,identity\r\n\r\nhello"),
      expect = { status = 500, curl_code = 61, error_kind = "protocol" } },
    { name = "five identity codings are read",
      arrange = raw("HTTP/1.1 500 X\r\nTransfer-Encoding: identity, identity, identity, identity, identity\r\n"
        .. "\r\nhello"),
      expect = { status = 500, body = "hello", curl_code = NONE } },
    { name = "an answer to a HEAD with an unknown coding has no body to read",
      req = { method = "HEAD" },
      arrange = raw("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nX-Request-Id: head-te\r\n\r\n"),
      expect = { status = 200, request_id = "head-te", curl_code = NONE } },
    -- (libcurl, given HEAD as a custom method, waited for the body the length announced until
    -- the request's timeout: a correct answer to a HEAD read as a timeout)
    { name = "an answer to a HEAD with a Content-Length has no body to read",
      req = { method = "HEAD" },
      arrange = raw("HTTP/1.1 200 OK\r\nContent-Length: 5000\r\nX-Request-Id: head-cl\r\n\r\n"),
      expect = { status = 200, request_id = "head-cl", curl_code = NONE } },
    -- (libcurl checks an answer to a HEAD's Content-Length as any other's: only 1xx, 204 and
    -- 304 have theirs ignored; the cosocket transport took an invalid one as a success)
    { name = "an answer to a HEAD with an invalid Content-Length is unusable",
      req = { method = "HEAD" },
      arrange = raw("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"),
      expect = { status = 200, curl_code = 8, error_kind = "protocol" } },
    { name = "a 204 with an unknown coding is a 204",
      arrange = raw("HTTP/1.1 204 No Content\r\nTransfer-Encoding: foo\r\nX-Request-Id: te204\r\n\r\n"),
      expect = { status = 204, request_id = "te204", curl_code = NONE } },

    -- libcurl 7.88 lets a Content-Length that overflows change no length (the valid one before
    -- it counted), and reads the last of two that differ: whose length the answer has depends on
    -- the reader. Both are refused (8), at once: the server keeps the connection open.
    { name = "a valid Content-Length, then one that overflows: refused",
      req = { timeout = 2 },
      arrange = raw("HTTP/1.1 409 Conflict\r\nContent-Length: 5\r\n"
        .. "Content-Length: 99999999999999999999\r\n\r\nhello", { raw_end = "hang" }),
      expect = { status = 409, body = "", curl_code = 8, error_kind = "protocol" } },
    -- (a review's: read with the last length, the JSON whole, a 404 VPC.0306 read as the
    -- bandwidth's absence; read with the first, JSON and more)
    { name = "a 404 VPC.0306 with two Content-Lengths that differ: refused",
      req = { timeout = 2 },
      arrange = raw("HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 68\r\n"
        .. "Content-Length: 63\r\n\r\n" .. '{"code":"VPC.0306","message":"No Eip bandwidth exist with id."}XXXXX',
        { raw_end = "hang" }),
      expect = { status = 404, body = "", curl_code = 8, error_kind = "protocol" } },

    { name = "a server that never answers: the timeout",
      req = { timeout = 1 },
      arrange = inject{ action = "hang" },
      expect = { status = 0, curl_code = 28, error_kind = "timeout", unsent = NONE } },

    { name = "a head that never ends (a stalled server): the whole-exchange timeout",
      req = { timeout = 1 },
      arrange = raw(HEAD .. "X-Request-Id: slow\r\n", { raw_end = "hang" }),
      expect = { status = 200, curl_code = 28, error_kind = "timeout" } },

    { name = "a trickling body: the low-speed abort", once = true,
      req = { timeout = 10, low_speed_limit = 100, low_speed_time = 1 },
      arrange = inject{ action = "trickle", status = 500, body_size = 200, trickle_interval = 0.1 },
      expect = { status = 500, curl_code = 28, error_kind = "timeout" },
      varies = { request_id = true, body = true },
      check = function(resp, label) assert.matches("too slow", resp.curl_error, label) end },

    -- The head's bytes count (libcurl's own check counts the body's only, and failed a head
    -- that trickled in above the limit).
    { name = "a head trickling in above the low-speed limit: the answer", once = true,
      req = { timeout = 10, low_speed_limit = 100, low_speed_time = 1 },
      arrange = raw("HTTP/1.1 500 X\r\nContent-Length: 2\r\n", { raw_repeat = "X-Pad: " .. string.rep("p", 141)
        .. "\r\n", raw_interval = 0.25, raw_times = 10, raw_after = "X-Request-Id: slowhead\r\n\r\nok" }),
      expect = { status = 500, request_id = "slowhead", body = "ok", curl_code = NONE } },

    -- One line of it longer than a window's due (a long X-Subject-Token on a slow link): its
    -- bytes count as they come (libcurl counts a line once it is whole: it read as nothing).
    { name = "one head line trickling in above the low-speed limit over several windows: the answer", once = true,
      req = { timeout = 10, low_speed_limit = 100, low_speed_time = 1 },
      arrange = raw("HTTP/1.1 500 X\r\nContent-Length: 2\r\nX-Pad: ", { raw_repeat = string.rep("p", 40),
        raw_interval = 0.2, raw_times = 15, raw_after = "\r\nX-Request-Id: longline\r\n\r\nok" }),
      expect = { status = 500, request_id = "longline", body = "ok", curl_code = NONE } },

    -- The window counts from the request's start: bytes that came at once, then a long line
    -- trickling in below the limit, above it together. (The C core read the kernel's count
    -- first a quarter of a window in and judged the rest of the window alone: a 204 read as 28.)
    { name = "a head line trickling in below the low-speed limit after a burst that carries the window: the answer",
      once = true,
      req = { timeout = 10, low_speed_limit = 100, low_speed_time = 1 },
      arrange = raw("HTTP/1.1 204 No Content\r\nX-Pad: " .. string.rep("p", 80), { raw_repeat = "p",
        raw_interval = 0.03, raw_times = 40, raw_after = "\r\nX-Request-Id: burst\r\n\r\n" }),
      expect = { status = 204, request_id = "burst", curl_code = NONE } },

    { name = "a 204's head in one-byte segments just under the low-speed limit: the low-speed abort", once = true,
      req = { timeout = 10, low_speed_limit = 100, low_speed_time = 1 },
      arrange = raw("HTTP/1.1 204 No Content\r\nX-Pad: ", { raw_repeat = "p", raw_interval = 0.0125, raw_times = 400,
        raw_after = "\r\n\r\n" }),
      expect = { status = 204, curl_code = 28, error_kind = "timeout" },
      check = function(resp, label) assert.matches("too slow", resp.curl_error, label) end },

    { name = "a head trickling in below the low-speed limit: the low-speed abort", once = true,
      req = { timeout = 10, low_speed_limit = 100, low_speed_time = 1 },
      arrange = raw("HTTP/1.1 500 X\r\nContent-Length: 2\r\n", { raw_repeat = "X-Pad: pppppppppp\r\n",
        raw_interval = 0.25, raw_times = 20, raw_after = "\r\nok" }),
      expect = { status = 500, curl_code = 28, error_kind = "timeout" },
      check = function(resp, label) assert.matches("too slow", resp.curl_error, label) end },

    { name = "a connection closed in the middle of the body",
      arrange = inject{ action = "reset_mid_body", status = 500, body_size = 4000 },
      expect = { status = 500, curl_code = 18, error_kind = "reset" },
      varies = { request_id = true },
      check = function(resp, label) assert.equal(2000, #resp.body, label) end },

    { name = "a connection closed before any answer",
      arrange = inject{ action = "drop" },
      expect = { status = 0, curl_code = 52, error_kind = "reset", unsent = NONE } },

    { name = "a connection closed after the status line, with a Content-Length announced",
      arrange = raw(HEAD .. "Content-Length: 10\r\n"),
      expect = { status = 200, curl_code = 18, error_kind = "reset" } },

    { name = "a refused connection",
      url = function()
        return "http://127.0.0.1:" .. host.closed_port() .. "/x"
      end,
      expect = { status = 0, curl_code = 7, error_kind = "connect", unsent = true } },

    -- libcurl 7.88 takes localhost and any *.localhost (in any case) for 127.0.0.1, then ::1,
    -- asking no resolver (hostip.c); nginx's resolver here knows localhost alone, so over
    -- cosockets such a name was NXDOMAIN, a 6.
    { name = "a *.localhost name is loopback, asked of no resolver",
      url = function() return "http://API.localhost:" .. emu.port .. "/conformance" end,
      arrange = inject{ status = 204 },
      expect = { status = 204, curl_code = NONE },
      varies = { request_id = true },
      check = function(_, label)
        assert.equal("API.localhost:" .. emu.port, emu:requests()[1].headers.host, label .. ": Host")
      end },
    { name = "a *.localhost name with a label no DNS query carries is loopback still",
      url = function() return "http://" .. string.rep("l", 64) .. ".localhost:" .. emu.port .. "/conformance" end,
      arrange = inject{ status = 204 },
      expect = { status = 204, curl_code = NONE },
      varies = { request_id = true } },
    { name = "a *.localhost name on a closed port: refused on 127.0.0.1 and ::1",
      url = function() return "http://a.localhost:" .. host.closed_port() .. "/x" end,
      expect = { status = 0, curl_code = 7, error_kind = "connect", unsent = true } },
    -- libcurl's happy eyeballs: ::1 once 127.0.0.1 has not answered within 200 ms. 127.0.0.1's
    -- port drops every SYN (its listener's backlog is full), ::1's completes the connection and
    -- never answers: the request went out over ::1, then timed out (over cosockets it was a
    -- connect timeout on 127.0.0.1, unsent).
    { name = "localhost where 127.0.0.1 does not answer: ::1 after 200 ms", once = true,
      req = { timeout = 0.6, connect_timeout = 0.6 },
      url = function()
        local v4 = assert(socket.tcp())
        assert(v4:bind("127.0.0.1", 0))
        assert(v4:listen(0))
        local port = select(2, v4:getsockname())
        silent_listeners[#silent_listeners + 1] = v4
        for _ = 1, 3 do -- (the backlog filled: connections the listener never accepts)
          local c = assert(socket.tcp())
          c:settimeout(0)
          c:connect("127.0.0.1", port)
          silent_listeners[#silent_listeners + 1] = c
        end
        local v6 = assert(socket.tcp6())
        assert(v6:setoption("ipv6-v6only", true))
        assert(v6:bind("::1", port))
        assert(v6:listen(8))
        silent_listeners[#silent_listeners + 1] = v6
        return "http://localhost:" .. port .. "/x"
      end,
      expect = { status = 0, curl_code = 28, error_kind = "timeout", unsent = NONE } },

    -- The kernel completes the connection (the listening socket's backlog), nothing answers
    -- the TLS handshake: a timeout, yet nothing of the request went out.
    { name = "TLS to a server that never answers the handshake: the connect timeout, not sent", once = true,
      req = { timeout = 3, connect_timeout = 1 },
      url = function()
        local listener = assert(socket.bind("127.0.0.1", 0))
        silent_listeners[#silent_listeners + 1] = listener
        return "https://127.0.0.1:" .. select(2, listener:getsockname()) .. "/conformance"
      end,
      expect = { status = 0, curl_code = 28, error_kind = "timeout", unsent = true } },

    { name = "TLS to a trusted certificate with the IP address 127.0.0.1, verification on; the server "
        .. "offers HTTP/2 (ALPN h2), the transport speaks HTTP/1.1",
      url = function() return front.url("trusted") .. "/conformance" end,
      -- The front's log is shared by both transports' runs: each waits for a line of its own.
      arrange = function()
        trusted_logged = #front.protocols(0)
        emu:inject{ status = 204 }
      end,
      expect = { status = 204, curl_code = NONE },
      varies = { request_id = true },
      check = function(_, label)
        local seen = front.protocols(trusted_logged + 1)
        assert.is_true(#seen > trusted_logged, label)
        for _, p in ipairs(seen) do assert.equal("HTTP/1.1", p, label) end
      end },

    { name = "TLS to a certificate of an untrusted CA",
      url = function() return front.url("untrusted") .. "/conformance" end,
      expect = { status = 0, curl_code = 60, error_kind = "tls" } },

    { name = "TLS to a trusted certificate for other names",
      url = function() return front.url("wrong_name") .. "/conformance" end,
      expect = { status = 0, curl_code = 60, error_kind = "tls" } },

    { name = "TLS to an untrusted certificate with insecure = true",
      url = function() return front.url("untrusted") .. "/conformance" end,
      opts = { insecure = true },
      arrange = inject{ status = 204 },
      expect = { status = 204, curl_code = NONE },
      varies = { request_id = true } },

    { name = "TLS to a trusted certificate by host name (SNI, the name verified)",
      url = function() return "https://localhost:" .. front.ports.trusted .. "/conformance" end,
      arrange = inject{ status = 204 },
      expect = { status = 204, curl_code = NONE },
      varies = { request_id = true } },

    { name = "TLS by host name to a trusted certificate for other names",
      url = function() return "https://localhost:" .. front.ports.wrong_name .. "/conformance" end,
      expect = { status = 0, curl_code = 60, error_kind = "tls" } },

    { name = "TLS by host name to a certificate of an untrusted CA",
      url = function() return "https://localhost:" .. front.ports.untrusted .. "/conformance" end,
      expect = { status = 0, curl_code = 60, error_kind = "tls" } },

    -- A certificate with a subjectAltName is matched against its entries alone (RFC 6125, 6.4.4;
    -- libcurl): its common name localhost does not make up for a SAN that names only an address.
    { name = "TLS by host name to a certificate whose subjectAltName holds only an IP address",
      url = function() return "https://localhost:" .. front.ports.ip_only .. "/conformance" end,
      expect = { status = 0, curl_code = 60, error_kind = "tls", unsent = true } },

    { name = "TLS by IP address to a certificate whose subjectAltName holds only that address",
      url = function() return "https://127.0.0.1:" .. front.ports.ip_only .. "/conformance" end,
      arrange = inject{ status = 204 },
      expect = { status = 204, curl_code = NONE },
      varies = { request_id = true } },

    -- A certificate without a subjectAltName, its common name the host: a name is matched
    -- against DNS entries alone, an address against IP entries alone, never the common name
    -- (libcurl 7.88 fell back to it; the C core has OpenSSL check the names: src/http.c).
    { name = "TLS by host name to a certificate with no subjectAltName, its common name the host",
      url = function() return "https://localhost:" .. front.ports.cn_only .. "/conformance" end,
      expect = { status = 0, curl_code = 60, error_kind = "tls", unsent = true } },

    { name = "TLS by IP address to a certificate with no subjectAltName, its common name the address",
      url = function() return "https://127.0.0.1:" .. front.ports.cn_only_ip .. "/conformance" end,
      expect = { status = 0, curl_code = 60, error_kind = "tls", unsent = true } },

    -- Wildcards: a full first label (*.full.localhost) matches, a partial one (f*.partial.localhost)
    -- never does -- libcurl 7.88 refuses it; nginx's own check of a cosocket's name took it. The
    -- names are *.localhost, loopback to both transports with no resolver asked.
    { name = "TLS by host name to a certificate whose only entry for it is a partial wildcard (f*.)",
      url = function()
        return "https://" .. tls.WILDCARD_HOSTS.partial .. ":" .. front.ports.wildcards .. "/conformance"
      end,
      expect = { status = 0, curl_code = 60, error_kind = "tls", unsent = true } },

    { name = "TLS by host name to a certificate with a full wildcard (*.) for it",
      url = function()
        return "https://" .. tls.WILDCARD_HOSTS.full .. ":" .. front.ports.wildcards .. "/conformance"
      end,
      arrange = inject{ status = 204 },
      expect = { status = 204, curl_code = NONE },
      varies = { request_id = true } },

    -- (no DNS server is asked about it: one that dropped the query had libcurl time out, 28; a
    -- name the resolver answers NXDOMAIN for: the cosocket case further down)
    { name = "a host name that does not resolve",
      req = { timeout = 5 },
      url = function() return "http://" .. dns.never_asked("no-such-host", "invalid") .. "/conformance" end,
      expect = { status = 0, curl_code = 6, error_kind = "dns", unsent = true } },

    { name = "TLS to a server that does not speak it",
      url = function() return "https://127.0.0.1:" .. emu.port .. "/conformance" end,
      expect = { status = 0, curl_code = 35, error_kind = "tls" } },

    -- Through a proxy (req.proxy) -------------------------------------------------------------

    { name = "through a proxy, plain http in absolute form",
      url = proxied_url("emu"), proxy = via_open,
      arrange = inject{ status = 204 },
      expect = { status = 204, curl_code = NONE, proxy_status = NONE },
      varies = { request_id = true },
      check = function(_, label)
        assert.equal("DELETE http://" .. NAME .. ":" .. emu.port .. "/conformance HTTP/1.1", last_seen(open_proxy).line,
          label)
      end },

    { name = "through a proxy with credentials, https by CONNECT, the name verified inside the tunnel",
      url = proxied_url("trusted"), proxy = via_guarded(),
      arrange = inject{ status = 204, headers = { ["X-Request-Id"] = "from-the-api" } },
      expect = { status = 204, request_id = "from-the-api", curl_code = NONE, proxy_status = NONE },
      check = function(_, label)
        local seen = last_seen(guarded_proxy)
        assert.equal("CONNECT " .. NAME .. ":" .. front.ports.trusted .. " HTTP/1.1", seen.line, label)
        local basic = "Basic " .. proxy.base64(PROXY_USER .. ":" .. PROXY_SECRET)
        assert.is_true(seen.headers["proxy-authorization"] == basic, label .. ": the proxy got its credentials")
      end },

    { name = "through a proxy, CONNECT, then a certificate for other names",
      url = proxied_url("wrong_name"), proxy = via_open,
      expect = { status = 0, curl_code = 60, error_kind = "tls", proxy_status = NONE } },

    { name = "through a proxy, CONNECT, then a certificate with no subjectAltName, its common name the host",
      url = function() return "https://localhost:" .. front.ports.cn_only .. "/conformance" end, proxy = via_open,
      expect = { status = 0, curl_code = 60, error_kind = "tls", proxy_status = NONE, unsent = true },
      check = function(_, label)
        assert.equal("CONNECT localhost:" .. front.ports.cn_only .. " HTTP/1.1", last_seen(open_proxy).line, label)
      end },

    { name = "through a proxy, CONNECT, then a certificate of an untrusted CA",
      url = proxied_url("untrusted"), proxy = via_open,
      expect = { status = 0, curl_code = 60, error_kind = "tls", proxy_status = NONE } },

    { name = "a proxy's 407 to a plain-http request is the proxy's, not an answer",
      url = proxied_url("emu"), proxy = function() return proxy_settings.parse("proxy", guarded_proxy.url) end,
      expect = { status = 0, curl_code = 56, error_kind = "proxy", proxy_status = 407, request_id = NONE,
        content_type = NONE, body = "" } },

    { name = "a proxy's 407 to CONNECT (a wrong password)",
      url = proxied_url("trusted"), proxy = via_guarded("wrong-password"),
      expect = { status = 0, curl_code = 56, error_kind = "proxy", proxy_status = 407, request_id = NONE, body = "" } },

    { name = "a proxy's 403 to CONNECT",
      url = function() return "https://blocked.test:443/conformance" end, proxy = via_open,
      expect = { status = 0, curl_code = 56, error_kind = "proxy", proxy_status = 403, body = "" } },

    { name = "a proxy's 502 to CONNECT (a name it cannot resolve)",
      url = function() return "https://unknown.test:443/conformance" end, proxy = via_open,
      expect = { status = 0, curl_code = 56, error_kind = "proxy", proxy_status = 502, body = "" } },

    -- libcurl read a refusal's body to its end, never looking at its timeouts meanwhile: a
    -- proxy sending one without end held the call (and Ctrl-C) as long as it liked.
    { name = "a proxy's 407 to CONNECT with a body that never ends: refused at once",
      req = { timeout = 3 },
      url = function() return "https://endless.test:443/conformance" end, proxy = via_open,
      expect = { status = 0, curl_code = 56, error_kind = "proxy", proxy_status = 407, body = "" },
      check = function(resp, label) assert.is_true(resp.elapsed < 3, label .. ": within its timeout") end },

    -- The CONNECT exchange is part of connecting: it ends with the connect timeout, and says so
    -- (the cosocket transport named the whole timeout, 3000 ms).
    { name = "a proxy that never answers CONNECT: the connect timeout",
      req = { timeout = 3, connect_timeout = 1 },
      url = function() return "https://silent.test:443/conformance" end, proxy = via_open,
      expect = { status = 0, curl_code = 28, error_kind = "timeout", proxy_status = NONE, unsent = true },
      check = function(resp, label)
        assert.is_true(resp.elapsed < 2.5, label .. ": within the connect timeout")
        assert.matches("CONNECT", resp.curl_error, 1, true)
      end },

    { name = "a proxy that never answers CONNECT, the connect timeout the whole one", once = true,
      req = { timeout = 2, connect_timeout = 2 },
      url = function() return "https://silent.test:443/conformance" end, proxy = via_open,
      expect = { status = 0, curl_code = 28, error_kind = "timeout", proxy_status = NONE },
      check = function(resp, label)
        assert.is_true(resp.elapsed < 3, label .. ": within the connect timeout")
        -- (a batch's own deadline, the same instant, may say it first: same code and kind)
        if not (label:find("libcurl multi", 1, true) and resp.curl_error:find("timeout passed", 1, true)) then
          -- libcurl has two texts for it, whichever of its two checks of the one deadline runs
          -- first (its timer, or the CONNECT code woken at that instant): both name the connect
          -- phase, neither the whole exchange.
          local said = resp.curl_error
          assert.is_true(said:find("Connection timed out after", 1, true) ~= nil
            or (label:find("^libcurl") ~= nil and said == "Proxy CONNECT aborted due to timeout"),
            label .. ": " .. said)
        end
      end },

    { name = "a proxy that closes before answering CONNECT",
      url = function() return "https://drop.test:443/conformance" end, proxy = via_open,
      expect = { status = 0, curl_code = 56, error_kind = "reset", proxy_status = NONE, unsent = true } },

    { name = "a proxy that answers CONNECT with garbage",
      url = function() return "https://garbage.test:443/conformance" end, proxy = via_open,
      expect = { status = 0, curl_code = 56, error_kind = "reset", proxy_status = NONE } },

    -- The proxy's answer to CONNECT counts as received bytes for the low-speed check, as the
    -- API's head does (libcurl never hands it to the header callback).
    { name = "a proxy's answer to CONNECT trickling in above the low-speed limit: the API's answer", once = true,
      req = { timeout = 10, low_speed_limit = 100, low_speed_time = 1 },
      url = proxied_url("trusted"),
      proxy = function() return proxy_settings.parse("proxy", slow_proxy.url) end,
      arrange = inject{ status = 204, headers = { ["X-Request-Id"] = "after-a-slow-connect" } },
      expect = { status = 204, request_id = "after-a-slow-connect", curl_code = NONE, proxy_status = NONE } },

    { name = "a proxy that closes inside its answer to CONNECT",
      url = function() return "https://cut.test:443/conformance" end, proxy = via_open,
      expect = { status = 0, curl_code = 56, error_kind = "reset", proxy_status = NONE } },

    -- A refusal broken off was a reset over cosockets (libcurl read its status line): retried,
    -- and a batch went on sending the proxy its credentials.
    { name = "a proxy's 407 to CONNECT whose head is cut short: still the proxy's refusal",
      url = function() return "https://cut407.test:443/conformance" end, proxy = via_open,
      expect = { status = 0, curl_code = 56, error_kind = "proxy", proxy_status = 407, body = "" } },

    -- (over cosockets it was a timeout, at the connect timeout: retried with the credentials)
    { name = "a proxy's 407 to CONNECT whose head stalls: still the proxy's refusal, within the connect timeout",
      req = { timeout = 5, connect_timeout = 1 },
      url = function() return "https://hang407.test:443/conformance" end, proxy = via_open,
      expect = { status = 0, curl_code = 56, error_kind = "proxy", proxy_status = 407, body = "" },
      check = function(resp, label) assert.is_true(resp.elapsed < 2.5, label .. ": " .. resp.elapsed) end },

    -- A plain request's 407 whose body was cut short (or trickled) was a reset (or a timeout) in
    -- both, the proxy's body kept as the answer's, retried: its head says it all.
    { name = "a proxy's 407 to a plain request whose body is cut short: the proxy's, at its head",
      url = function() return "http://short407.test/conformance" end, proxy = via_open,
      expect = { status = 0, curl_code = 56, error_kind = "proxy", proxy_status = 407, request_id = NONE,
        body = "" } },

    { name = "a proxy's 407 to a plain request whose head is cut short: the proxy's",
      url = function() return "http://cut407.test/conformance" end, proxy = via_open,
      expect = { status = 0, curl_code = 56, error_kind = "proxy", proxy_status = 407, body = "" } },

    { name = "a proxy that closes before answering a plain request",
      url = function() return "http://drop.test/conformance" end, proxy = via_open,
      expect = { status = 0, curl_code = 52, error_kind = "reset", proxy_status = NONE } },

    { name = "a proxy that refuses the connection",
      url = proxied_url("trusted"),
      proxy = function() return proxy_settings.parse("proxy", "http://127.0.0.1:"
        .. host.closed_port()) end,
      expect = { status = 0, curl_code = 7, error_kind = "proxy", proxy_status = NONE } },

    { name = "a proxy whose name does not resolve",
      req = { timeout = 5 }, url = proxied_url("trusted"),
      proxy = function()
        return proxy_settings.parse("proxy", "http://" .. dns.never_asked("no-such-proxy", "invalid") .. ":3128")
      end,
      expect = { status = 0, curl_code = 5, error_kind = "proxy", proxy_status = NONE } },
  }

  -- More first lines the contract refuses, each alone and after an interim answer.
  for _, line in ipairs{ "Http/1.1 404 Not Found", "HTTP/x 503", "HTTP/a.1 404", "HTTP/+1.1 404", "HTTP/-1.1 404",
      "HTTP/2 204", "HTTP/2 20", "HTTP/2 -404", "HTTP/2 2040", "HTTP/20 204", "HTTP/3 204", "HTTP/1.2 404",
      "HTTP/0.9 404", "HTTP/1.1 2040", "HTTP/1.1 099 Low", "HTTP/1.1 204x", "HTTP/1.1 \t204", "HTTP/1.1204" } do
    for _, interim in ipairs{ "", "HTTP/1.1 100 Continue\r\nX-Request-Id: interim\r\n\r\n" } do
      CASES[#CASES + 1] = { name = string.format("the status line %q%s is refused", line,
          interim == "" and "" or " after a 100 Continue"),
        arrange = raw(interim .. line .. "\r\nX-Request-Id: refused\r\nContent-Length: 2\r\n\r\nok"),
        expect = { status = 0, curl_code = 1, error_kind = "protocol", body = "", request_id = NONE } }
    end
  end

  -- More hostile answers, each with what both transports answer (libcurl 7.88's reading, held
  -- to the contract): interim answers, framing, bodiless answers, header syntax, status lines,
  -- limits at their edge, captured headers. (A success: no curl_code.)
  local FINAL = "HTTP/1.1 204 No Content\r\nX-Request-Id: final\r\n\r\n"
  local I100, CHUNKED = "HTTP/1.1 100 Continue\r\n", HEAD .. "Transfer-Encoding: chunked\r\n\r\n"
  local TRAILERS = CHUNKED .. "3\r\nabc\r\n0\r\n"
  local REFUSED = { status = 0, curl_code = 1, error_kind = "protocol", body = "", request_id = NONE }
  local function conflict(lines) return "HTTP/1.1 409 Conflict\r\n" .. lines .. "\r\nhello" end
  local function empty(lines) return HEAD .. lines .. "Content-Length: 0\r\n\r\n" end
  local function ok_after(lines) return HEAD .. lines .. "Content-Length: 2\r\n\r\nok" end
  -- A head of `total` bytes (its lines ending in `eol`, the status line's and the blank one
  -- in CRLF), then "ok".
  local function head_of(total, eol, first)
    first = first or ""
    local fixed = #first + #HEAD + #"Content-Length: 2\r\n\r\n"
    local n, rest = math.floor((total - fixed) / 1000), (total - fixed) % 1000
    local filler = "X-P: " .. string.rep("p", 1000 - 5 - #eol) .. eol
    return first .. HEAD .. string.rep(filler, n - 1) .. "X-Q: " .. string.rep("q", 1000 + rest - 5 - #eol) .. eol
      .. "Content-Length: 2\r\n\r\nok"
  end
  local function trailers_of(last, eol)
    return TRAILERS .. string.rep("X-T: " .. string.rep("v", 4000) .. eol, 76) .. "X-Request-Id: "
      .. string.rep("r", last) .. eol .. eol
  end
  local CUT_ID = string.rep("r", contract.CAPTURED_MAX - 3) .. "..."
  for _, s in ipairs{
    { "a 103 Early Hints with headers, then the final answer", "HTTP/1.1 103 Early Hints\r\n"
      .. "Link: </a>; rel=preload\r\nX-Request-Id: hint\r\n\r\n" .. FINAL, { status = 204, request_id = "final" } },
    { "a 100, a 102 and a 103, then the final answer", I100 .. "\r\nHTTP/1.1 102 Processing\r\n\r\n"
      .. "HTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\n" .. FINAL, { status = 204, request_id = "final" } },
    { "500 interim answers, then the final answer", string.rep(I100 .. "\r\n", 500) .. FINAL,
      { status = 204, request_id = "final" } },
    { "an interim answer's Content-Length and unknown coding are not read", I100 .. "Content-Length: 5\r\n"
      .. "Transfer-Encoding: gzip\r\n\r\n" .. FINAL, { status = 204, request_id = "final", body = "" } },
    { "a 199 is an interim answer", "HTTP/1.1 199 Odd\r\n\r\n" .. FINAL, { status = 204, request_id = "final" } },
    { "an HTTP/1.0 100, then an HTTP/1.1 final answer", "HTTP/1.0 100 Continue\r\n\r\n" .. FINAL,
      { status = 204, request_id = "final" } },
    { "an interim answer in bare LF line ends", "HTTP/1.1 100 Continue\n\n" .. FINAL,
      { status = 204, request_id = "final" } },
    { "a folded line after a header in an interim head is skipped", I100 .. "X: a\r\n folded\r\n\r\n" .. FINAL,
      { status = 204, request_id = "final" } },
    { "a 103 as the only answer, then the close: no answer came",
      "HTTP/1.1 103 Early Hints\r\nLink: x\r\nX-Request-Id: hint\r\n\r\n",
      { status = 0, curl_code = 52, error_kind = "reset", request_id = NONE } },
    { "a 101 after a 100 is refused", I100 .. "\r\nHTTP/1.1 101 Switching Protocols\r\n\r\n", REFUSED },
    { "an HTTP/1.0 101 is refused", "HTTP/1.0 101 Switching Protocols\r\n\r\n" .. FINAL, REFUSED },
    { "a NUL byte in an interim head: nothing kept", I100 .. "X-Request-Id: interim\r\nX: a\0b\r\n\r\n" .. FINAL,
      { status = 0, curl_code = 8, error_kind = "protocol", request_id = NONE } },
    { "a folded first line in an interim head: nothing kept", I100 .. " folded\r\n\r\n" .. FINAL,
      { status = 0, curl_code = 8, error_kind = "protocol", request_id = NONE } },
    { "a CR inside a header name in an interim head: nothing kept", I100 .. "X\rY: a\r\n\r\n" .. FINAL,
      { status = 0, curl_code = 43, error_kind = "protocol", request_id = NONE } },
    { "a line too long in an interim head: nothing kept", I100 .. "X: " .. string.rep("a", 102400) .. "\r\n\r\n"
      .. FINAL, { status = 0, curl_code = 27, error_kind = "protocol", request_id = NONE } },

    { "Content-Length, then chunked: chunked", HEAD .. "Content-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n"
      .. "3\r\nabc\r\n0\r\n\r\n", { status = 200, body = "abc" } },
    { "chunked, then Content-Length: chunked", HEAD .. "Transfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n"
      .. "3\r\nabc\r\n0\r\n\r\n", { status = 200, body = "abc" } },
    { "two Content-Lengths, 5 then 2: refused", conflict("Content-Length: 5\r\nContent-Length: 2\r\n"),
      { status = 409, body = "", curl_code = 8, error_kind = "protocol" } },
    { "two Content-Lengths, 2 then 5: refused", conflict("Content-Length: 2\r\nContent-Length: 5\r\n"),
      { status = 409, body = "", curl_code = 8, error_kind = "protocol" } },
    { "two Content-Lengths, both 5: 5", conflict("Content-Length: 5\r\ncontent-length: +05\r\n"),
      { status = 409, body = "hello" } },
    { "Content-Length: 5, 2 is refused", conflict("Content-Length: 5, 2\r\n"),
      { status = 409, body = "", curl_code = 8, error_kind = "protocol" } },
    { "Content-Length: 5, 5 is 5", conflict("Content-Length: 5, 5\r\n"), { status = 409, body = "hello" } },
    { "Content-Length: 5x is 5", conflict("Content-Length: 5x\r\n"), { status = 409, body = "hello" } },
    { "Content-Length: +5 is 5", conflict("Content-Length: +5\r\n"), { status = 409, body = "hello" } },
    { "Content-Length with tabs and leading zeros", conflict("Content-Length:\t0000000000000000000000005\t\r\n"),
      { status = 409, body = "hello" } },
    { "Content-Length: 0x5 is 0", conflict("Content-Length: 0x5\r\n"), { status = 409, body = "" } },
    { "an empty Content-Length is invalid", conflict("Content-Length:\r\n"),
      { status = 409, body = "", curl_code = 8, error_kind = "protocol" } },
    { "Content-Length: -0 is invalid", conflict("Content-Length: -0\r\n"),
      { status = 409, body = "", curl_code = 8, error_kind = "protocol" } },
    { "Content-Length: abc is invalid", conflict("Content-Length: abc\r\n"),
      { status = 409, body = "", curl_code = 8, error_kind = "protocol" } },
    { "Content-Length 2^63 overflows: refused", conflict("Content-Length: 9223372036854775808\r\n"),
      { status = 409, body = "", curl_code = 8, error_kind = "protocol" } },
    { "Content-Length 2^63 - 1, then the close: the body cut short",
      conflict("Content-Length: 9223372036854775807\r\n"),
      { status = 409, body = "hello", curl_code = 18, error_kind = "reset" } },

    { "a chunk size of 2^63 - 1, then the close: the body cut short", CHUNKED .. "7fffffffffffffff\r\nabc",
      { status = 200, body = "abc", curl_code = 18, error_kind = "reset" } },
    { "a chunk size of 2^64 - 1", CHUNKED .. "ffffffffffffffff\r\nabc",
      { status = 200, body = "", curl_code = 56, error_kind = "protocol" } },
    { "a chunk size after a blank", CHUNKED .. " 3\r\nabc\r\n0\r\n\r\n",
      { status = 200, body = "", curl_code = 56, error_kind = "protocol" } },
    { "a negative chunk size", CHUNKED .. "-3\r\nabc\r\n0\r\n\r\n",
      { status = 200, body = "", curl_code = 56, error_kind = "protocol" } },
    { "an empty chunk size line", CHUNKED .. "\r\n3\r\nabc\r\n0\r\n\r\n",
      { status = 200, body = "", curl_code = 56, error_kind = "protocol" } },
    { "a chunk size of 0x3 is the last chunk, its data a trailer without a colon",
      CHUNKED .. "0x3\r\nabc\r\n0\r\n\r\n", { status = 200, body = "", curl_code = 43, error_kind = "protocol" } },
    { "a blank after a chunk size is an extension", CHUNKED .. "3 \r\nabc\r\n0\r\n\r\n",
      { status = 200, body = "abc" } },
    { "a chunk size line ended by a bare CR: its LF ends it", CHUNKED .. "3\rabc\r\n0\r\n\r\n",
      { status = 200, body = "0\r\n", curl_code = 18, error_kind = "reset" } },
    { "chunk data, then a bare CR", CHUNKED .. "3\r\nabc\r0\r\n\r\n",
      { status = 200, body = "abc", curl_code = 56, error_kind = "protocol" } },
    { "chunk data, then a bare LF", CHUNKED .. "3\r\nabc\n0\r\n\r\n", { status = 200, body = "abc" } },
    { "a chunked body closed before its last chunk", CHUNKED .. "3\r\nabc\r\n",
      { status = 200, body = "abc", curl_code = 18, error_kind = "reset" } },
    { "a chunked body closed after its last chunk's line", TRAILERS,
      { status = 200, body = "abc", curl_code = 18, error_kind = "reset" } },
    { "Transfer-Encoding: chunked, chunked", HEAD .. "Transfer-Encoding: chunked, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
      { status = 200, body = "abc" } },
    { "Transfer-Encoding: ChUnKeD", HEAD .. "Transfer-Encoding: ChUnKeD\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
      { status = 200, body = "abc" } },
    { "Transfer-Encoding: chunked;q=1 is an unknown coding", HEAD .. "Transfer-Encoding: chunked;q=1\r\n\r\n"
      .. "3\r\nabc\r\n0\r\n\r\n", { status = 200, body = "", curl_code = 61, error_kind = "protocol" } },
    { "a Transfer-Encoding or Content-Length among the trailers frames nothing",
      TRAILERS .. "Transfer-Encoding: gzip\r\nContent-Length: 9\r\n\r\n", { status = 200, body = "abc" } },

    { "a 204 with bytes after its head: no body", "HTTP/1.1 204 No Content\r\nX-Request-Id: b\r\n\r\n{\"x\":1}",
      { status = 204, body = "", request_id = "b" } },
    { "a 204 with a Content-Length and a body: no body", "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello",
      { status = 204, body = "" } },
    { "a 204 with an invalid Content-Length: not read", "HTTP/1.1 204 No Content\r\nContent-Length: x\r\n\r\n",
      { status = 204, body = "" } },
    { "a 204 with a chunked body: no body", "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      { status = 204, body = "" } },
    { "a 304 with a Content-Length and nothing after it", "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
      { status = 304, body = "" } },
    { "a 304 with an invalid Content-Length: not read", "HTTP/1.1 304 Not Modified\r\nContent-Length: x\r\n\r\n",
      { status = 304, body = "" } },
    { "a 304 with bytes after its head: no body", "HTTP/1.1 304 Not Modified\r\n\r\nhello",
      { status = 304, body = "" } },

    { "a folded line continues a captured header: its first line's value",
      ok_after("X-Request-Id: a\r\n folded\r\nX-Other: 1\r\n\tfolded\r\n"),
      { status = 200, request_id = "a", body = "ok" } },
    { "a folded Retry-After: its first line's value",
      "HTTP/1.1 503 X\r\nRetry-After: 5\r\n 6\r\nContent-Length: 0\r\n\r\n",
      { status = 503, retry_after = "5" } },
    { "a folded first header line has no colon", ok_after(" folded\r\n"),
      { status = 200, body = "", curl_code = 8, error_kind = "protocol" } },
    { "a Content-Length folded onto its next line is invalid", HEAD .. "Content-Length:\r\n 2\r\n\r\nok",
      { status = 200, body = "", curl_code = 8, error_kind = "protocol" } },
    { "a blank before the colon: not that header", ok_after("X-Request-Id : sp\r\n"),
      { status = 200, request_id = NONE, body = "ok" } },
    { "a blank before a Content-Length's colon: no length, read until the close",
      HEAD .. "Content-Length : 2\r\n\r\nokmore", { status = 200, body = "okmore" } },
    { "a blank inside a header name, an empty name: skipped", ok_after("X Request: sp\r\n: v\r\n"),
      { status = 200, body = "ok" } },
    { "a bare CR inside a captured value is kept", ok_after("X-Request-Id: a\rb\r\n"),
      { status = 200, request_id = "a\rb" } },
    { "a bare CR inside a header name", ok_after("X-A\rB: v\r\n"),
      { status = 200, body = "", curl_code = 43, error_kind = "protocol" } },
    { "bare CRs alone as line ends: no line ever ends", "HTTP/1.1 200 OK\rContent-Length: 2\r\rok",
      { status = 0, curl_code = 52, error_kind = "reset" } },
    { "bare LFs as line ends", "HTTP/1.1 200 OK\nX-Request-Id: lf\nContent-Length: 2\n\nok",
      { status = 200, request_id = "lf", body = "ok" } },
    { "a NUL byte in a header value", ok_after("X-Other: a\0b\r\n"),
      { status = 200, body = "", curl_code = 8, error_kind = "protocol" } },
    { "a NUL byte in a header name", ok_after("X-O\0ther: a\r\n"),
      { status = 200, body = "", curl_code = 8, error_kind = "protocol" } },
    { "a NUL byte in a 204's reason phrase: no delete done", "HTTP/1.1 204 No\0Content\r\n\r\n",
      { status = 204, body = "", curl_code = 8, error_kind = "protocol" } },
    { "control and 8-bit bytes in a captured value are kept", ok_after("X-Request-Id: \1\127\200\255\r\n"),
      { status = 200, request_id = "\1\127\200\255" } },
    { "5000 header lines", ok_after(string.rep("A: b\r\n", 5000)), { status = 200, body = "ok" } },

    { "a status line without a reason phrase", "HTTP/1.1 204\r\nX-Request-Id: bare\r\n\r\n",
      { status = 204, request_id = "bare" } },
    { "a status line with an empty reason phrase", "HTTP/1.1 204 \r\n\r\n", { status = 204 } },
    { "an HTTP/1.0 204", "HTTP/1.0 204 No Content\r\nX-Request-Id: ten\r\n\r\n", { status = 204, request_id = "ten" } },
    { "an HTTP/1.0 200 without a length: read until the close", "HTTP/1.0 200 OK\r\n\r\nuntil-the-close",
      { status = 200, body = "until-the-close" } },
    { "two SPs before the code", "HTTP/1.1  204 No Content\r\n\r\n", { status = 204 } },
    { "a status line ended by a bare LF", "HTTP/1.1 204 No Content\n\n", { status = 204 } },
    { "a reason phrase ending in a CR before the CRLF", "HTTP/1.1 204 No Content\r\r\n\r\n", { status = 204 } },
    { "a reason phrase in UTF-8", "HTTP/1.1 204 \195\137t\195\169\r\n\r\n", { status = 204 } },
    { "a code of two digits is refused", "HTTP/1.1 99 X\r\n\r\n", REFUSED },
    { "an empty line before the status line is refused", "\r\n" .. FINAL, REFUSED },
    { "a blank before the status line is refused", " " .. FINAL, REFUSED },
    { "ICY 200 is refused", "ICY 200 OK\r\n\r\n", REFUSED },
    { "RTSP/1.0 200 is refused", "RTSP/1.0 200 OK\r\n\r\n", REFUSED },

    { "a status line of 102399 bytes is accepted", "HTTP/1.1 204 " .. string.rep("a", 102399 - 15) .. "\r\n\r\n",
      { status = 204 } },
    { "a status line of 102400 bytes", "HTTP/1.1 204 " .. string.rep("a", 102400 - 15) .. "\r\n\r\n",
      { status = 0, curl_code = 27, error_kind = "protocol" } },
    { "a header line of 102399 bytes ended by a bare LF is accepted",
      HEAD .. "X-Big: " .. string.rep("b", 102399 - 8) .. "\nContent-Length: 2\r\n\r\nok",
      { status = 200, body = "ok" } },
    { "a header line of 102400 bytes ended by a bare LF",
      HEAD .. "X-Big: " .. string.rep("b", 102400 - 8) .. "\nContent-Length: 2\r\n\r\nok",
      { status = 200, body = "", curl_code = 27, error_kind = "protocol" } },
    { "a head of exactly LIMITS.header_block bytes", head_of(307200, "\r\n"), { status = 200, body = "ok" } },
    { "a head of LIMITS.header_block + 1 bytes", head_of(307201, "\r\n"),
      { status = 200, body = "", curl_code = 56, error_kind = "protocol" } },
    { "a head of exactly LIMITS.header_block bytes, bare LF line ends", head_of(307200, "\n"),
      { status = 200, body = "ok" } },
    { "a head of LIMITS.header_block + 1 bytes, bare LF line ends", head_of(307201, "\n"),
      { status = 200, body = "", curl_code = 56, error_kind = "protocol" } },
    { "heads of exactly LIMITS.header_block bytes, an interim one included", head_of(307200, "\r\n", I100 .. "\r\n"),
      { status = 200, body = "ok" } },
    { "heads of LIMITS.header_block + 1 bytes, an interim one included", head_of(307201, "\r\n", I100 .. "\r\n"),
      { status = 200, body = "", curl_code = 56, error_kind = "protocol" } },
    { "trailers of exactly LIMITS.trailer_block bytes, bare LF line ends (each counted with a CRLF)",
      trailers_of(2652, "\n"), { status = 200, body = "abc", request_id = CUT_ID } },
    { "trailers of LIMITS.trailer_block + 1 bytes, bare LF line ends", trailers_of(2653, "\n"),
      { status = 200, body = "abc", curl_code = 56, error_kind = "protocol" } },
    { "a trailer line of exactly LIMITS.trailer_line bytes", TRAILERS .. "X: " .. string.rep("t", 4090) .. "\r\n\r\n",
      { status = 200, body = "abc" } },
    { "a trailer line of exactly LIMITS.trailer_line bytes, a bare LF after it",
      TRAILERS .. "X: " .. string.rep("t", 4090) .. "\n\n", { status = 200, body = "abc" } },
    { "a trailer line of LIMITS.trailer_line + 1 bytes, a bare LF after it",
      TRAILERS .. "X: " .. string.rep("t", 4091) .. "\n\n",
      { status = 200, body = "abc", curl_code = 56, error_kind = "protocol" } },
    { "a bare CR inside a trailer", TRAILERS .. "X-T: a\rb\r\n\r\n",
      { status = 200, body = "abc", curl_code = 56, error_kind = "protocol" } },

    { "captured values: blanks and tabs around removed, no blank after the colon, any case of the name",
      empty("X-Request-Id:\t abc \t\r\nx-subject-token:tok\r\nLOCATION: /l\r\n"),
      { status = 200, request_id = "abc", subject_token = "tok", location = "/l" } },
    { "repeated captured values: the last, an empty last one none",
      empty("X-Request-Id: a\r\nX-Request-Id:   \r\nX-Subject-Token: t1\r\nX-Subject-Token:\r\nLocation: /a\r\n"
        .. "Location: /b\r\n"), { status = 200, request_id = NONE, subject_token = NONE, location = "/b" } },
    { "an empty captured value, then one", empty("X-Request-Id:\r\nX-Request-Id: b\r\nX-Subject-Token:\r\n"
      .. "X-Subject-Token: t2\r\n"), { status = 200, request_id = "b", subject_token = "t2" } },
    { "X-IAM-Trace-Id: the first non-empty one, behind an empty X-Request-Id",
      empty("X-Request-Id:\r\nX-IAM-Trace-Id:\r\nX-IAM-Trace-Id: t2\r\nX-IAM-Trace-Id: t3\r\n"),
      { status = 200, request_id = "t2" } },
    { "a captured value over 255 bytes is cut by bytes, UTF-8 or not", empty("X-Request-Id: "
      .. string.rep("\195\169", 200) .. "\r\n"), { status = 200, request_id = string.rep("\195\169", 126) .. "..." } },
    { "an interim answer's X-Subject-Token is not the final answer's",
      "HTTP/1.1 100 Continue\r\nX-Subject-Token: interim\r\n\r\n" .. empty(""),
      { status = 200, subject_token = NONE } },
    { "captured headers among the trailers are the last values",
      "HTTP/1.1 503 X\r\nRetry-After: 5\r\nContent-Type: x/y\r\nX-Request-Id: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        .. "0\r\nRetry-After: 9\r\nContent-Type: a/b\r\nX-Request-Id: t\r\nX-Subject-Token: tt\r\nLocation: /t\r\n\r\n",
      { status = 503, retry_after = "5, 9", content_type = "a/b", request_id = "t", subject_token = "tt",
        location = "/t" } },
  } do
    local expect = s[3]
    if expect.curl_code == nil then expect.curl_code = NONE end
    CASES[#CASES + 1] = { name = s[1], arrange = raw(s[2]), expect = expect }
  end

  -- (once: seconds of waiting on purpose, the transports' own timing, the same whatever
  -- interpreter drives the libcurl one: run in the full leg of the matrix only, see
  -- scripts/run-matrix)
  for _, case in ipairs(CASES) do
    it(case.name .. (case.once and " #once" or ""), function()
      local answers = {}
      for i, transport in ipairs(TRANSPORTS) do
        answers[i] = run(case, transport)
      end
      if MULTI_TOO then answers[3] = run(case, MULTI) end
      local a, b, m = answers[1], answers[2], answers[3]
      assert.equal(type(a.date), type(b.date), case.name .. ": date in one transport's answer only")
      if m then assert.equal(type(a.date), type(m.date), case.name .. ": date in a batch's answer only") end
      for _, k in ipairs(SAME) do
        if not (case.varies and case.varies[k]) then
          assert.equal(a[k], b[k], case.name .. ": " .. k .. " differs between libcurl and cosocket")
        elseif a[k] ~= nil or b[k] ~= nil then
          assert.equal(type(a[k]), type(b[k]), case.name .. ": type of " .. k)
        end
        if m and not (case.varies and case.varies[k]) then
          assert.equal(a[k], m[k], case.name .. ": " .. k .. " differs between a single call and a batch (multi)")
        end
      end
    end)
  end

  it("both put the same request on the wire: request line, Host, User-Agent, Accept, length, body", function()
    local seen = {}
    for i, transport in ipairs(TRANSPORTS) do
      emu:reset()
      emu:inject{ status = 204 }
      local body = '{"bandwidth":{"name":"wire","size":10}}'
      local resp = transport.send({ method = "POST", url = api_url("/conformance/wire?a=1&b=%2F"), body = body,
        headers = { "X-Auth-Token: " .. emu.token, "Content-Type: application/json" },
        timeout = 5, connect_timeout = 5 }, {})
      assert.equal(204, resp.status, transport.name .. ": " .. tostring(resp.curl_error))
      local log = emu:requests()
      assert.equal(1, #log)
      seen[i] = log[1]
      assert.equal(body, seen[i].body, transport.name)
    end
    local a, b = seen[1], seen[2]
    assert.equal(a.method, b.method)
    assert.equal(a.uri, b.uri)
    assert.same(a.headers, b.headers)
    assert.equal("lua-eip-conformance", a.headers["user-agent"])
    assert.equal("127.0.0.1:" .. emu.port, a.headers.host)
    -- A GET: no body, no Content-Length.
    for i, transport in ipairs(TRANSPORTS) do
      emu:reset()
      emu:inject{ status = 204 }
      transport.send({ method = "GET", url = api_url("/conformance/get"), headers = { "Accept: application/json" },
        timeout = 5, connect_timeout = 5 }, {})
      seen[i] = emu:requests()[1]
    end
    assert.same(seen[1].headers, seen[2].headers)
    assert.is_nil(seen[1].headers["content-length"])
    -- A GET with a body: sent with its length by both (libcurl's dropped it, a signed one then
    -- signed over a body that never went out).
    for i, transport in ipairs(TRANSPORTS) do
      emu:reset()
      emu:inject{ status = 204 }
      transport.send({ method = "GET", url = api_url("/conformance/get"), body = "PAYLOAD",
        headers = { "Accept: application/json" }, timeout = 5, connect_timeout = 5 }, {})
      seen[i] = emu:requests()[1]
      assert.same({ "GET", "PAYLOAD", "7" }, { seen[i].method, seen[i].body, seen[i].headers["content-length"] },
        transport.name)
    end
  end)

  -- What a caller puts on the wire as it is must be a token (the method, a header's name) or
  -- free of control characters (the user agent): both transports raise (a caller bug, never a
  -- failure table), and send nothing.
  it("both refuse a method or header name that is no token and a user agent with a CR, sending nothing", function()
    local METHOD, HEADER, UA = "must be an HTTP method", "is not a single 'Name: value' line", "control characters"
    local cases = {
      { method = "DEL ETE", says = METHOD }, { method = "DELETE /x HTTP/1.1\r\nX-Injected: 1\r\nX:", says = METHOD },
      { method = "", says = METHOD },
      { headers = { "Accept: application/json", " X-Folded: b" }, says = HEADER },
      { headers = { "X A: b" }, says = HEADER },
      { user_agent = "ua\r\nX-Injected-UA: yes", says = UA }, { user_agent = "ua\1", says = UA },
    }
    for _, case in ipairs(cases) do
      for _, transport in ipairs(TRANSPORTS) do
        emu:reset()
        emu:inject{ status = 204 }
        local req = { method = case.method or "DELETE", url = api_url("/conformance/refused"),
          headers = case.headers or { "Accept: application/json" }, timeout = 5, connect_timeout = 5 }
        local raised
        if transport.name == "libcurl" then
          local ok, err = pcall(function()
            local t = require("eip.transport.curl").new{ user_agent = case.user_agent or "lua-eip-conformance" }
            local ok_send, resp = pcall(t.send, t, req)
            t:close()
            if not ok_send then error(resp, 0) end
            return resp
          end)
          raised = not ok and tostring(err)
        else
          req.user_agent = case.user_agent or "lua-eip-conformance"
          raised = app_post("/t/send", req, 10).raised
        end
        assert.is_string(raised, transport.name .. " sent " .. cjson.encode(case))
        assert.matches(case.says, raised, 1, true)
        assert.equal(0, #emu:requests(), transport.name .. ": " .. cjson.encode(case))
      end
    end
  end)

  -- A token client hands the cosocket transport the same header list for every request: it is
  -- checked once and its part of the head joined once. What goes on the wire must not change,
  -- and a list changed in place must be checked and sent as it now is.
  it("a header list sent again and again goes on the wire as a new one, and is checked again once changed", function()
    emu:reset()
    emu:inject{ status = 204 }
    local req = { method = "DELETE", url = api_url("/conformance/again"), timeout = 5, connect_timeout = 5,
      headers = { "X-Auth-Token: " .. emu.token, "Accept: application/json" } }
    TRANSPORTS[1].send(req, {})
    local reference = emu:requests()[1]
    emu:reset()
    emu:inject{ status = 204, times = 10 }
    req.user_agent = "lua-eip-conformance"
    local out = app_post("/t/send_again", { req = req, times = 4, changes = {
      { 1, "X-Auth-Token: another-token-value" },
      { 2, "Accept: application/json\r\nX-Smuggled: 1" },
      { 2, "Accept: application/json" },
    } }, 10)
    assert.equal(7, #out)
    for i = 1, 5 do assert.equal(204, out[i].status, i .. ": " .. tostring(out[i].curl_error)) end
    assert.matches("header 2 is not a single 'Name: value' line", out[6].raised, 1, true)
    assert.equal(204, out[7].status)
    local log = emu:requests()
    assert.equal(6, #log, "the smuggling list was not sent")
    for i = 1, 4 do
      assert.equal(reference.method .. " " .. reference.uri, log[i].method .. " " .. log[i].uri, i)
      assert.same(reference.headers, log[i].headers, i)
    end
    assert.equal("another-token-value", log[5].headers["x-auth-token"])
    assert.equal("another-token-value", log[6].headers["x-auth-token"])
    assert.is_nil(log[6].headers["x-smuggled"])
  end)

  it("both put the same request on a proxy's wire: absolute form, and CONNECT", function()
    local function seen_by(p, req, opts)
      local out = {}
      for i, transport in ipairs(TRANSPORTS) do
        p:reset()
        emu:reset()
        emu:inject{ status = 204 }
        local resp = transport.send(req(), opts or {})
        assert.equal(204, resp.status, transport.name .. ": " .. tostring(resp.curl_error))
        local seen = p:seen()
        assert.equal(1, #seen, transport.name)
        out[i] = seen[1]
      end
      assert.equal(out[1].line, out[2].line)
      assert.same(out[1].headers, out[2].headers)
      return out[1]
    end
    local plain = seen_by(open_proxy, function()
      return { method = "POST", url = "http://" .. NAME .. ":" .. emu.port .. "/conformance/wire?a=1", body = "{}",
        headers = { "X-Auth-Token: " .. emu.token, "Content-Type: application/json" }, timeout = 5,
        connect_timeout = 5, proxy = via_open() }
    end)
    assert.equal("POST http://" .. NAME .. ":" .. emu.port .. "/conformance/wire?a=1 HTTP/1.1", plain.line)
    assert.equal("Keep-Alive", plain.headers["proxy-connection"])
    -- A tunnel nginx's pool cannot hold yet (a port and verify flag no case used through this
    -- proxy), so that the cosocket transport sends a CONNECT of its own.
    local port = front.ports.wrong_name
    local tunnel = seen_by(guarded_proxy, function()
      return { method = "DELETE", url = "https://" .. NAME .. ":" .. port .. "/conformance/wire",
        headers = { "X-Auth-Token: " .. emu.token }, timeout = 5, connect_timeout = 5, proxy = via_guarded()() }
    end, { insecure = true })
    assert.equal("CONNECT " .. NAME .. ":" .. port .. " HTTP/1.1", tunnel.line)
    assert.equal(NAME .. ":" .. port, tunnel.headers.host)
    assert.equal("lua-eip-conformance", tunnel.headers["user-agent"])
    assert.is_nil(guarded_proxy:raw():find(emu.token, 1, true), "the token went through the tunnel only")
  end)

  -- The libcurl transport parses an endpoint once and then only replaces the path and query
  -- (src/http.c, set_url): through a proxy, the absolute-form target must still be each URL's.
  it("one libcurl transport through a proxy: every request's absolute-form target is its own URL", function()
    open_proxy:reset()
    emu:reset()
    emu:inject{ status = 204, times = 10 }
    local base = "http://" .. NAME .. ":" .. emu.port
    local paths = { "/conformance/p/1", "/conformance/p/2", "/conformance/p?limit=5&marker=bw-2",
      "/conformance/p?marker=a%2Fb", "/conformance/p/3" }
    local t = require("eip.transport.curl").new{ user_agent = "lua-eip-conformance" }
    for _, path in ipairs(paths) do
      local resp = t:send{ method = "DELETE", url = base .. path, headers = { "X-Auth-Token: " .. emu.token },
        timeout = 5, connect_timeout = 5, proxy = via_open() }
      assert.equal(204, resp.status, tostring(resp.curl_error))
    end
    t:close()
    local seen = open_proxy:seen()
    assert.equal(#paths, #seen)
    for i, path in ipairs(paths) do
      assert.equal("DELETE " .. base .. path .. " HTTP/1.1", seen[i].line, "request " .. i)
    end
  end)

  -- The C core has OpenSSL check a certificate's names (src/http.c, on_ssl_ctx) on each new TLS
  -- connection, for the host of the request that makes it: one handle's kept-alive connection to
  -- a trusted server, on another port, does not carry over to a certificate with no
  -- subjectAltName, however often the two alternate.
  it("one libcurl transport: a connection kept to a trusted server does not carry over to a CN-only one", function()
    emu:reset()
    emu:inject{ status = 204, times = 3 }
    local t = require("eip.transport.curl").new{ ca_file = pki.ca, user_agent = "lua-eip-conformance" }
    local function send(server)
      return t:send{ method = "GET", url = "https://localhost:" .. front.ports[server] .. "/x", headers = {},
        timeout = 5, connect_timeout = 5 }
    end
    for round = 1, 3 do
      local ok = send("trusted")
      assert.equal(204, ok.status, tostring(ok.curl_error))
      assert.equal(round == 1 and 1 or 0, ok.new_connections, "round " .. round .. ": the trusted connection kept")
      local refused = send("cn_only")
      assert.same({ 0, 60, "tls", true }, { refused.status, refused.curl_code, refused.error_kind, refused.unsent },
        "round " .. round .. ": " .. tostring(refused.curl_error))
    end
    t:close()
    assert.equal(3, #emu:requests())
  end)

  -- resty.core reports a failed verification in one of two ways, depending on timing (an error
  -- value, or a raised "assertion failed!"): many handshakes meet both.
  it("each failed TLS verification over cosockets is a structured 60, however resty.core says it #openresty", function()
    for _ = 1, 10 do
      for _, name in ipairs{ "untrusted", "wrong_name" } do
        local resp = TRANSPORTS[2].send({ method = "GET", url = front.url(name) .. "/x", headers = {},
          timeout = 5, connect_timeout = 5 }, {})
        assert.equal(60, resp.curl_code, name .. ": " .. tostring(resp.curl_error))
        assert.equal("tls", resp.error_kind)
        assert.equal(0, resp.status)
      end
    end
  end)

  -- A name nginx's resolver asks about and is answered NXDOMAIN for (the responder knows only
  -- localhost): 6, or 5 for a proxy's name, as libcurl says of a name the system resolver does
  -- not find (the cases above take names no resolver is asked about, for libcurl's sake).
  it("a name nginx's resolver is told does not exist is a dns failure over cosockets #openresty", function()
    for _, case in ipairs{ { url = "http://no-such-host.invalid/x", code = 6, kind = "dns" },
        { url = front.url("trusted") .. "/x", proxy = "http://no-such-proxy.invalid:3128", code = 5,
          kind = "proxy" } } do
      local resp = TRANSPORTS[2].send({ method = "GET", url = case.url, headers = {}, timeout = 5, connect_timeout = 5,
        proxy = case.proxy and proxy_settings.parse("proxy", case.proxy) }, {})
      assert.same({ 0, case.code, case.kind, true }, { resp.status, resp.curl_code, resp.error_kind, resp.unsent },
        tostring(resp.curl_error))
      assert.matches("could not be resolved", resp.curl_error, 1, true)
    end
  end)

  -- A batch inside nginx that stops (or aborts) sets progress.halt_sends on its light threads: one
  -- whose connection is still being made (TCP, a TLS handshake, a proxy's tunnel) must send
  -- nothing once made. (The libcurl transport's batches halt the C multi instead: batch_spec.)
  it("a request whose caller stopped sending before it went out is held back, nothing sent #openresty", function()
    for _, case in ipairs{
      { name = "plain", url = function() return api_url(routed("DELETE")) end },
      { name = "tls", url = function() return front.url("trusted") .. routed("DELETE") end },
      { name = "proxy tunnel", url = proxied_url("trusted", routed("DELETE")), proxy = via_open },
    } do
      emu:reset()
      local req = request_of(case)
      req.progress = { sent = false, halt_sends = true }
      local resp = TRANSPORTS[2].send(req, {})
      local label = case.name .. " [" .. tostring(resp.curl_error) .. "]"
      assert.same({ 42, true, true, 0 }, { resp.curl_code, resp.unsent, resp.held_back, resp.status }, label)
      assert.is_false(req.progress.sent, label)
      assert.equal(0, #emu:requests(), label .. ": the emulator read it")
    end
  end)

  -- The same in a batch's light threads: a stop (not only an abort) while the first request's
  -- tunnel is still being opened (the slow proxy's CONNECT takes 2.5 s) sends nothing after it.
  it("a batch inside nginx that stops while its request is still connecting sends nothing #openresty", function()
    emu:reset()
    local ids = { emu:create_bandwidth{ size = 10 }, emu:create_bandwidth{ size = 10 } }
    -- (credentials of its own, which the slow proxy does not check: a pool of its own, so that no
    -- tunnel an earlier case left open serves the request at once)
    local out = app_post("/t/batch_abort", { endpoint = proxied_url("trusted", "")(), token = emu.token,
      project_id = emu.project_id, ids = ids, abort_after = 1, answer = "stop",
      proxy = "http://stop-case:stop-case-pw@127.0.0.1:" .. slow_proxy.port }, 30)
    socket.sleep(0.5) -- (a request sent late would have arrived by now)
    assert.equal("cancelled", out.summary.stopped, cjson.encode(out))
    for i, r in ipairs(out.results) do
      assert.same({ "not_sent", true, "cancelled", 0 }, { r.kind, r.not_sent, r.stopped, r.attempts },
        cjson.encode(out))
      assert.is_false(r.could_have_acted)
      assert.is_table(emu:get_bandwidth(ids[i]))
    end
    assert.equal(0, #emu:requests(), "a delete went out after the stop")
  end)

  -- Concurrency (cosockets only) ------------------------------------------------------------------

  it("concurrent sends that retry on dead pooled connections each resend their own request #openresty", function()
    local function batch(ids)
      return app_post("/t/batch", { ids = ids, concurrency = #ids }, 20)
    end
    local function shared(n)
      local ids = {}
      for i = 1, n do ids[i] = emu:create_bandwidth{ size = 10, share_type = "WHOLE" } end
      return ids
    end
    emu:reset()
    assert.equal(10, batch(shared(10)).summary.deleted) -- ten pooled connections now
    local ids = shared(10)
    emu:reset_counters()
    -- The batch's first delete goes alone (and succeeds); each of the other nine meets a pooled
    -- connection the server closes without answering, and is retried on a fresh connection
    -- while the others are in flight.
    for i = 2, 10 do
      emu:inject{ method = "DELETE", path = emu:delete_path(ids[i]), action = "drop" }
    end
    local out = batch(ids)
    assert.equal(10, out.summary.deleted, cjson.encode(out))
    local deleted = {}
    for _, r in ipairs(emu:requests()) do
      if r.method == "DELETE" then deleted[#deleted + 1] = r.path:match("[^/]+$") end
    end
    assert.equal(19, #deleted)
    for _, id in ipairs(ids) do assert.is_nil(emu:get_bandwidth(id), id .. " was not deleted") end
  end)

  -- A kept-alive connection that dies after the request went out, before any answer: the
  -- server may have carried it out (what lose_answer does). HTTP lets a client send an
  -- idempotent request again, and both transports do, saying so (resent); a POST (a create: a
  -- bill) is never sent twice: the failure stands, 52.
  -- Nor after a status line cut short (no whole line of an answer: libcurl 7.88 counts lines).
  local DEATHS = { { action = "lose_answer" }, { action = "raw", raw = "HTTP/1.1 500 Internal" },
    { action = "raw", raw = "H" } }
  -- (no_resend: a signed request, whose every send is a signature the gateway checks, is not
  -- sent again either, whatever its method)
  it("a reused connection that dies without an answer: DELETE is sent again (resent), POST is not", function()
    for _, variant in ipairs{ { "DELETE" }, { "POST" }, { "DELETE", no_resend = true } } do
      local method = variant[1]
      for _, transport in ipairs(TRANSPORTS) do
        for _, death in ipairs(DEATHS) do
          emu:reset()
          emu:inject{ method = "GET", status = 200, body = "{}" }
          local label = transport.name .. " " .. method .. (variant.no_resend and " no_resend " or " ")
            .. (death.raw or death.action)
          local first = { method = "GET", url = api_url(), headers = { "X-Auth-Token: " .. emu.token },
            timeout = 5, connect_timeout = 5 }
          local req = { method = method, url = api_url(), headers = { "X-Auth-Token: " .. emu.token },
            body = method == "POST" and "{}" or nil, timeout = 5, connect_timeout = 5, no_resend = variant.no_resend }
          local resps
          if transport.name == "libcurl" then
            local t = require("eip.transport.curl").new{ user_agent = "lua-eip-conformance" }
            assert.equal(200, t:send(first).status, label)
            emu:inject{ method = method, action = death.action, raw = death.raw }
            emu:inject{ method = method, status = 204 }
            resps = { t:send(req) }
            t:close()
          else
            local out = app_post("/t/send", first, 15)
            assert.equal(200, out.status, label)
            emu:inject{ method = method, action = death.action, raw = death.raw }
            emu:inject{ method = method, status = 204 }
            resps = { app_post("/t/send", req, 15) }
          end
          local resp = resps[1]
          local sent = 0
          for _, r in ipairs(emu:requests()) do
            if r.method == method then sent = sent + 1 end
          end
          if method == "DELETE" and not variant.no_resend then
            assert.same({ 204, true, 2 }, { resp.status, resp.resent, sent }, label)
          else
            assert.same({ 0, 52, 1 }, { resp.status, resp.curl_code, sent }, label)
            assert.is_nil(resp.resent, label)
            assert.equal("reset", resp.error_kind, label)
          end
        end
      end
    end
  end)

  -- The transports of the resend cases: both, and libcurl's multi interface (batches).
  local WITH_MULTI = { name = "libcurl multi" }
  local RESENDING = { TRANSPORTS[1], TRANSPORTS[2], WITH_MULTI }

  -- One session of `transport`: a GET that leaves a kept-alive connection, then `times` DELETEs
  -- (timeout `timeout`) against the emulator answering as `rules` say. The responses, and how
  -- many DELETEs the emulator saw.
  local function session(transport, rules, times, timeout)
    emu:reset()
    emu:inject{ method = "GET", status = 200, body = "{}" }
    for _, rule in ipairs(rules) do emu:inject(rule) end
    local first = { method = "GET", url = api_url(), headers = { "X-Auth-Token: " .. emu.token },
      timeout = 5, connect_timeout = 5 }
    local req = { method = "DELETE", url = api_url(), headers = { "X-Auth-Token: " .. emu.token },
      timeout = timeout, connect_timeout = timeout }
    local out = {}
    if transport.name == "libcurl" then
      local t = require("eip.transport.curl").new{ user_agent = "lua-eip-conformance" }
      assert.equal(200, t:send(first).status)
      for i = 1, times do out[i] = t:send(req) end
      t:close()
    elseif transport == WITH_MULTI then
      local m = require("eip.core").multi{ user_agent = "lua-eip-conformance" }
      m:start(first)
      assert.equal(200, select(2, m:next(5)).status)
      for i = 1, times do
        m:start(req)
        out[i] = select(2, m:next(10))
      end
      m:close()
    else
      assert.equal(200, app_post("/t/send", first, 15).status)
      out = app_post("/t/send_again", { req = req, times = times }, 30)
    end
    local sent = 0
    for _, r in ipairs(emu:requests()) do
      if r.method == "DELETE" then sent = sent + 1 end
    end
    return out, sent
  end

  -- Again and again in one session: libcurl 7.88 sends again by itself at most five times in a
  -- handle's life (its count is per handle, never reset after a success), so the sixth such
  -- delete failed with 56 where cosockets send it again. The libcurl transport sends what libcurl
  -- did not, once, on a fresh connection.
  it("a reused connection dying unanswered, eight times in one session: each DELETE sent again", function()
    local TIMES = 8
    local rules = {}
    for _ = 1, TIMES do
      rules[#rules + 1] = { method = "DELETE", action = "lose_answer" }
      rules[#rules + 1] = { method = "DELETE", status = 204 }
    end
    for _, transport in ipairs(RESENDING) do
      local resps, sent = session(transport, rules, TIMES, 5)
      for i = 1, TIMES do
        local resp = resps[i]
        assert.same({ 204, true }, { resp.status, resp.resent }, transport.name .. " delete " .. i .. ": "
          .. tostring(resp.curl_code) .. " " .. tostring(resp.curl_error))
      end
      assert.equal(2 * TIMES, sent, transport.name)
    end
  end)

  -- What the resend must never do: send again a request the server began to answer (an interim
  -- 102 came, then the close: libcurl itself does not resend it, 52), nor give a resend more time
  -- than the request has left (the cosocket transport keeps one deadline for all its sends).
  it("no resend after an interim answer; a resend within the request's own timeout #once", function()
    for _, transport in ipairs(RESENDING) do
      local out, sent = session(transport, { { method = "DELETE", action = "raw",
        raw = "HTTP/1.1 102 Processing\r\n\r\n", raw_end = "close" } }, 1, 5)
      assert.same({ 52, 1 }, { out[1].curl_code, sent }, transport.name .. ": after a 102")
      assert.is_nil(out[1].resent, transport.name)
      -- Five resends spend libcurl's own budget; the sixth is the C core's: it has 0.8 s of the
      -- request's 2 s left when the answer takes 1.2 s, and times out.
      local rules = {}
      for _ = 1, 5 do
        rules[#rules + 1] = { method = "DELETE", action = "lose_answer" }
        rules[#rules + 1] = { method = "DELETE", status = 204 }
      end
      rules[#rules + 1] = { method = "DELETE", action = "drop", delay = 1.2 }
      rules[#rules + 1] = { method = "DELETE", status = 204, delay = 1.2 }
      out = session(transport, rules, 6, 2)
      for i = 1, 5 do assert.equal(204, out[i].status, transport.name .. " " .. i) end
      assert.same({ 0, 28, true }, { out[6].status, out[6].curl_code, out[6].resent },
        transport.name .. ": the resend within the timeout")
      -- The first resend too (libcurl's own ran up to a second past the timeout: 2.9 s of 2).
      local monotime = require("eip.core").monotime
      local t0 = monotime()
      out = session(transport, { { method = "DELETE", action = "drop", delay = 1.2 },
        { method = "DELETE", status = 204, delay = 5 } }, 1, 2)
      local took = monotime() - t0
      assert.same({ 0, 28, true }, { out[1].status, out[1].curl_code, out[1].resent },
        transport.name .. ": the first resend within the timeout")
      assert.is_true(took < 2.5, transport.name .. ": took " .. took .. " s of a 2 s timeout")
    end
  end)

  -- An idle kept-alive connection that received something (a late duplicate answer, the late
  -- body of a 204, a 408 before a close) or was closed a moment after its answer: what is there
  -- is no answer to the next request, and a request sent on it may be lost. nginx's pool closes
  -- such a connection; libcurl 7.x would hand it out again (and read the stray 204 as the next
  -- delete's answer). Both send the next request on a fresh connection, once, and read its own
  -- answer; a POST is not counted as sent twice.
  local STRAY = "HTTP/1.1 204 No Content\r\nX-Request-Id: stray-answer\r\n\r\n"
  -- The first answer: a 409 with a body, or a 204 (without TLS, the look before reuse after an
  -- answer without a body is the kernel's count of bytes and the connection's state).
  local function answer_then(rule, bodiless)
    local body = '{"code":"VPC.0512","message":"busy"}'
    rule.action = "raw"
    rule.raw = "HTTP/1.1 409 Conflict\r\nContent-Type: application/json\r\nX-Request-Id: first-answer\r\n"
      .. "Content-Length: " .. #body .. "\r\n\r\n" .. body
    if bodiless then rule.raw = "HTTP/1.1 204 No Content\r\nX-Request-Id: first-answer\r\n\r\n" end
    rule.raw_wait = 0.2
    return rule
  end
  local STALE = {}
  for _, first in ipairs{ { "", false }, { "a 204, then ", true } } do
    STALE[#STALE + 1] = { first[1] .. "a stray answer while idle", function(method)
      return answer_then({ method = method, raw_repeat = STRAY, raw_times = 1, raw_end = "hang" }, first[2])
    end, first[2] and 204 or 409 }
    STALE[#STALE + 1] = { first[1] .. "a close a moment after the answer", function(method)
      return answer_then({ method = method, raw_end = "close" }, first[2])
    end, first[2] and 204 or 409 }
  end

  -- The first request's answer, then the second's own (not the stray one), each sent once.
  local function own_answers(first, second, method, label, status)
    assert.same({ status, "first-answer" }, { first.status, first.request_id }, label)
    assert.same({ 404, "its-own-answer" }, { second.status, second.request_id }, label)
    assert.is_nil(second.error_kind, label)
    assert.is_nil(second.resent, label)
    local sent = 0
    for _, r in ipairs(emu:requests()) do
      if r.method == method then sent = sent + 1 end
    end
    assert.equal(2, sent, label)
  end

  it("a pooled connection that received anything while idle is not used: the next request gets its own answer #once",
    function()
    for _, stale in ipairs(STALE) do
      for _, method in ipairs{ "DELETE", "POST" } do
        for _, transport in ipairs(TRANSPORTS) do
          emu:reset()
          local label = transport.name .. " " .. method .. ", " .. stale[1]
          local req = { method = method, url = api_url(routed(method)), headers = { "X-Auth-Token: " .. emu.token },
            body = method == "POST" and "{}" or nil, timeout = 5, connect_timeout = 5 }
          emu:inject(stale[2](method))
          emu:inject{ method = method, status = 404, body = { code = "VPC.0306", message = "gone" },
            headers = { ["X-Request-Id"] = "its-own-answer" } }
          local first, second
          if transport.name == "libcurl" then
            local t = require("eip.transport.curl").new{ user_agent = "lua-eip-conformance" }
            first = t:send(req)
            socket.sleep(0.6) -- the stray bytes, or the close, come meanwhile
            second = t:send(req)
            t:close()
          else
            first = app_post("/t/send", req, 15)
            socket.sleep(0.6)
            second = app_post("/t/send", req, 15)
          end
          own_answers(first, second, method, label, stale[3])
        end
      end
    end
  end)

  -- The same request sent twice through one transport (libcurl: one transport; cosockets: two
  -- requests to the app, or with `again` one request that sends both in one handler).
  local function send_twice(transport, req, again)
    if transport.name == "libcurl" then
      local t = require("eip.transport.curl").new{ user_agent = "lua-eip-conformance" }
      local first, second = t:send(req), t:send(req)
      t:close()
      return first, second
    end
    if again then
      local out = app_post("/t/send_again", { req = req, times = 2 }, 15)
      return out[1], out[2]
    end
    return app_post("/t/send", req, 10), app_post("/t/send", req, 10)
  end

  -- Bytes after an answer without a body, in the same read ("204 ...\r\n\r\n{}"): libcurl 7.88
  -- drops them unseen and kept the connection, so nothing was left for the look before reuse to
  -- find, and whatever came there next (here nothing: the server hangs) was read as the next
  -- request's answer. Neither transport uses such a connection again.
  it("a connection whose answer without a body came with bytes beyond it is not used again #once", function()
    for _, transport in ipairs(TRANSPORTS) do
      emu:reset()
      local req = { method = "DELETE", url = api_url(routed("DELETE")), headers = { "X-Auth-Token: " .. emu.token },
        timeout = 3, connect_timeout = 3 }
      emu:inject{ method = "DELETE", action = "raw", raw_end = "hang",
        raw = "HTTP/1.1 204 No Content\r\nX-Request-Id: first-answer\r\n\r\n{}" }
      emu:inject{ method = "DELETE", status = 404, body = { code = "VPC.0306", message = "gone" },
        headers = { ["X-Request-Id"] = "its-own-answer" } }
      local first, second = send_twice(transport, req, true)
      assert.same({ 204, "first-answer" }, { first.status, first.request_id }, transport.name)
      assert.same({ 404, "its-own-answer", 1 }, { second.status, second.request_id, second.new_connections },
        transport.name)
    end
  end)

  -- The same after the other answers a connection may be kept after: a body of a Content-Length
  -- (libcurl closes such a connection itself), an empty one, a 304, an HTTP/1.0 keep-alive, a
  -- final answer after an interim one; the bytes beyond an answer, or an interim head.
  it("a connection whose answer of any other shape came with bytes beyond it is not used again #once", function()
    for _, shape in ipairs{
      { 409, "HTTP/1.1 409 Conflict\r\nContent-Length: 2\r\nX-Request-Id: first-answer\r\n\r\n{}" .. STRAY },
      { 409, "HTTP/1.1 409 Conflict\r\nContent-Length: 0\r\nX-Request-Id: first-answer\r\n\r\n" .. STRAY },
      { 304, "HTTP/1.1 304 Not Modified\r\nX-Request-Id: first-answer\r\n\r\n" .. STRAY },
      { 204, "HTTP/1.0 204 No Content\r\nConnection: keep-alive\r\nX-Request-Id: first-answer\r\n\r\n" .. STRAY },
      { 204, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nX-Request-Id: first-answer\r\n\r\n" .. STRAY },
      { 204, "HTTP/1.1 204 No Content\r\nX-Request-Id: first-answer\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n" },
      { 204, "HTTP/1.1 204 No Content\r\nX-Request-Id: first-answer\r\n\r\n\r\n" },
    } do
      for _, transport in ipairs(TRANSPORTS) do
        emu:reset()
        local label = transport.name .. ": " .. shape[2]
        local req = { method = "DELETE", url = api_url(routed("DELETE")), headers = { "X-Auth-Token: " .. emu.token },
          timeout = 3, connect_timeout = 3 }
        emu:inject{ method = "DELETE", action = "raw", raw_end = "hang", raw = shape[2] }
        emu:inject{ method = "DELETE", status = 404, body = { code = "VPC.0306", message = "gone" },
          headers = { ["X-Request-Id"] = "its-own-answer" } }
        local first, second = send_twice(transport, req, true)
        assert.same({ shape[1], "first-answer" }, { first.status, first.request_id }, label)
        assert.same({ 404, "its-own-answer", 1 }, { second.status, second.request_id, second.new_connections }, label)
      end
    end
  end)

  -- Bytes after a chunked body's end, in the same read: libcurl 7.88 drops them unseen ("Leftovers
  -- after chunking") and keeps the connection, so a later answer there would be read as the next
  -- request's. The C core decodes chunked bodies itself and sees them; neither transport uses
  -- such a connection again, over TLS too (where no count of the socket's bytes could tell).
  it("a connection whose chunked answer came with bytes beyond its end is not used again, plain and TLS #once",
    function()
    for _, tls_on in ipairs{ false, true } do
      for _, transport in ipairs(TRANSPORTS) do
        emu:reset()
        local label = transport.name .. (tls_on and " over TLS" or "")
        -- (over TLS a server of its own: the TLS front re-frames the emulator's answers)
        local server = tls_on and require("spec.support.tls_stray").start(pki, 0, "chunked")
        local req = { method = "DELETE", headers = { "X-Auth-Token: " .. emu.token }, timeout = 3, connect_timeout = 3,
          url = tls_on and ("https://127.0.0.1:" .. server.port .. "/conformance") or api_url(routed("DELETE")) }
        emu:inject{ method = "DELETE", action = "raw", raw_end = "hang",
          raw = "HTTP/1.1 409 Conflict\r\nTransfer-Encoding: chunked\r\nX-Request-Id: first-answer\r\n\r\n"
            .. "2\r\n{}\r\n0\r\n\r\nHTTP/1.1 204 No Content\r\nX-Request-Id: stray\r\n\r\n" }
        emu:inject{ method = "DELETE", status = 404, body = { code = "VPC.0306", message = "gone" },
          headers = { ["X-Request-Id"] = "own-answer" } }
        local ok, first, second = pcall(function()
          if transport.name ~= "libcurl" then
            local out = app_post("/t/send_again", { req = req, times = 2 }, 15)
            return out[1], out[2]
          end
          local t = require("eip.transport.curl").new{ ca_file = pki.ca, user_agent = "lua-eip-conformance" }
          local a, b = t:send(req), t:send(req)
          t:close()
          return a, b
        end)
        if server then server:stop() end
        assert(ok, first)
        assert.same({ 409, "first-answer", "{}" }, { first.status, first.request_id, first.body }, label)
        assert.same({ 404, "own-answer", 1 }, { second.status, second.request_id, second.new_connections }, label)
      end
    end
  end)

  -- The same when the next request follows in the same nginx handler without a yield (two
  -- deletes in a row, work between them): nginx's pool looks at idle connections only when its
  -- event loop runs, so the transport looks itself before sending on a pooled one.
  it("a pooled connection that received anything while idle is not used, even without a yield #openresty",
    function()
    local cases = {}
    for _, stale in ipairs(STALE) do
      for _, method in ipairs{ "DELETE", "POST" } do
        -- no_peek: looked at by a one-byte read, as without lua-nginx-module's descriptor function
        for _, no_peek in ipairs{ false, true } do cases[#cases + 1] = { stale, method, no_peek } end
      end
    end
    for _, case in ipairs(cases) do
      local stale, method, no_peek = case[1], case[2], case[3]
      emu:reset()
      local label = method .. ", " .. stale[1] .. (no_peek and ", looked at by a read" or "")
      local req = { method = method, url = api_url(routed(method)), headers = { "X-Auth-Token: " .. emu.token },
        body = method == "POST" and "{}" or nil, timeout = 5, connect_timeout = 5 }
      emu:inject(stale[2](method))
      emu:inject{ method = method, status = 404, body = { code = "VPC.0306", message = "gone" },
        headers = { ["X-Request-Id"] = "its-own-answer" } }
      local out = app_post("/t/send_again", { req = req, times = 2, busy = 0.6, no_peek = no_peek }, 15)
      local first, second = out[1], out[2]
      own_answers(first, second, method, label, stale[3])
    end
  end)

  -- What the look before reuse must not cost: a healthy kept-alive connection (plain, or TLS with
  -- the server's session tickets and all) is used again, request after request.
  it("keeps a healthy connection: five requests, one connection, plain and TLS", function()
    for _, tls_on in ipairs{ false, true } do
      for _, transport in ipairs(TRANSPORTS) do
        emu:reset()
        local label = transport.name .. (tls_on and " over TLS" or "")
        local req = { method = "DELETE", headers = { "X-Auth-Token: " .. emu.token }, timeout = 5, connect_timeout = 5,
          url = tls_on and ("https://127.0.0.1:" .. front.ports.trusted .. "/conformance") or api_url() }
        for _ = 1, 5 do emu:inject{ method = "DELETE", status = 204 } end
        local out
        if transport.name == "libcurl" then
          local t = require("eip.transport.curl").new{ ca_file = pki.ca, user_agent = "lua-eip-conformance" }
          out = {}
          for i = 1, 5 do out[i] = t:send(req) end
          t:close()
        else
          out = app_post("/t/send_again", { req = req, times = 5 }, 15)
        end
        local opened = 0
        for i = 1, 5 do
          assert.equal(204, out[i].status, label)
          opened = opened + out[i].new_connections
        end
        assert.is_true(opened <= 1, label .. ": " .. opened .. " connections opened")
      end
    end
  end)

  -- Over TLS, stray bytes that came in the same record as an answer ending exactly where a read
  -- filled nginx's buffer (4 KiB here) stay inside OpenSSL, where neither nginx's pool nor a look
  -- at the socket finds them: such a connection is not kept. libcurl never keeps one either.
  it("over TLS, stray bytes in the record of an answer that filled a read: the next request gets its own answer",
    function()
    -- { head size, the app's location }: the default buffer (4 KiB) and one of 5 KiB. (Heads and
    -- stray bytes of at most 8 KiB: LuaSec writes 8 KiB at a time, and a stray record written
    -- apart may arrive after the next request went out, which no client can see.)
    for _, case in ipairs{ { 4096, "/t/send_again" }, { 1000, "/t/send_again" },
      { 5120, "/t/send_again_odd_buffer" } } do
      local size = case[1]
      for _, transport in ipairs(TRANSPORTS) do
        local label = transport.name .. ", a head of " .. size .. " bytes"
        local server = require("spec.support.tls_stray").start(pki, size)
        local req = { method = "DELETE", url = "https://127.0.0.1:" .. server.port .. "/conformance", headers = {},
          timeout = 5, connect_timeout = 5 }
        local ok, out = pcall(function()
          if transport.name ~= "libcurl" then return app_post(case[2], { req = req, times = 2 }, 15) end
          local t = require("eip.transport.curl").new{ ca_file = pki.ca, user_agent = "lua-eip-conformance" }
          local both = { t:send(req), t:send(req) }
          t:close()
          return both
        end)
        server:stop()
        assert(ok, out)
        assert.same({ 204, "first-answer" }, { out[1].status, out[1].request_id }, label)
        assert.same({ 404, "own-answer" }, { out[2].status, out[2].request_id }, label)
      end
    end
  end)

  -- What looking for stray bytes after such an answer must not cost: answers of one size, each
  -- read whole in one read of 1 KiB or more (a show's), keep their TLS connection.
  it("keeps a TLS connection whose answers each end on a long read, when nothing follows them", function()
    for _, size in ipairs{ 1500, 3000, 5000 } do
      local server = require("spec.support.tls_stray").start(pki, size, "clean")
      local req = { method = "DELETE", url = "https://127.0.0.1:" .. server.port .. "/conformance", headers = {},
        timeout = 5, connect_timeout = 5 }
      local ok, out = pcall(app_post, "/t/send_again", { req = req, times = 6 }, 15)
      server:stop()
      assert(ok, out)
      local opened = 0
      for i = 1, 6 do
        assert.equal(204, out[i].status, size .. " " .. i)
        opened = opened + out[i].new_connections
      end
      assert.equal(1, opened, "a head of " .. size .. " bytes: connections opened")
    end
  end)

  -- The low-speed check counts what is read: over TLS each record adds some 22 bytes on the wire,
  -- and a body of one byte per record read as 23 times its rate to a count of the socket's bytes
  -- (libcurl then held it to the timeout, where the cosocket transport cut it).
  it("over TLS, a body of one byte per record below the low-speed limit: the low-speed abort", function()
    local server = require("spec.support.tls_stray").start(pki, 0, "trickle")
    local req = { method = "DELETE", url = "https://127.0.0.1:" .. server.port .. "/conformance", headers = {},
      timeout = 8, connect_timeout = 5, low_speed_limit = 100, low_speed_time = 1 }
    local ok, err = pcall(function()
      for _, transport in ipairs(TRANSPORTS) do
        local resp
        if transport.name == "libcurl" then
          local t = require("eip.transport.curl").new{ ca_file = pki.ca, user_agent = "lua-eip-conformance" }
          resp = t:send(req)
          t:close()
        else
          resp = app_post("/t/send_again", { req = req, times = 1 }, 15)[1]
        end
        assert.same({ 28, "timeout" }, { resp.curl_code, resp.error_kind }, transport.name)
        assert.matches("too slow", resp.curl_error, 1, true)
        assert.is_true(resp.elapsed < 4, transport.name .. ": " .. resp.elapsed .. " s")
      end
    end)
    server:stop()
    assert(ok, err)
  end)

  -- A Connection: close in an interim 100 holds for the final answer (libcurl keeps one close
  -- flag per connection through all the heads): the connection is never used again. The server
  -- keeps it open and swallows what comes on it: a request sent on it would get no answer. (No
  -- case of the list: what it proves takes a second request.)
  it("a close announced by an interim answer: the next request goes on a new connection", function()
    for _, transport in ipairs(TRANSPORTS) do
      emu:reset()
      local label = transport.name
      local req = { method = "DELETE", url = api_url(routed("DELETE")), headers = { "X-Auth-Token: " .. emu.token },
        timeout = 2, connect_timeout = 2 }
      emu:inject{ method = "DELETE", action = "raw", raw_end = "hang",
        raw = "HTTP/1.1 100 Continue\r\nConnection: close\r\n\r\n"
          .. "HTTP/1.1 204 No Content\r\nX-Request-Id: first-answer\r\n\r\n" }
      emu:inject{ method = "DELETE", status = 404, body = { code = "VPC.0306", message = "gone" },
        headers = { ["X-Request-Id"] = "its-own-answer" } }
      local first, second = send_twice(transport, req)
      assert.same({ 204, "first-answer" }, { first.status, first.request_id }, label)
      assert.same({ 404, "its-own-answer" }, { second.status, second.request_id }, label)
      assert.is_nil(second.error_kind, label)
      local connections = {}
      for _, r in ipairs(emu:requests()) do
        if r.method == "DELETE" then connections[#connections + 1] = r.connection end
      end
      assert.equal(2, #connections, label)
      assert.are_not.equal(connections[1], connections[2], label)
    end
  end)

  -- libcurl's own resend (its first connection died without an answer) may pick a pooled
  -- connection that is stale: the request then goes out on a fresh one, still a resend (said;
  -- refused for a POST), never counted as a first send.
  it("a resend that meets a stale pooled connection is still a resend (libcurl multi)", function()
    for _, method in ipairs{ "DELETE", "POST" } do
      emu:reset()
      local m = require("eip.core").multi{ user_agent = "lua-eip-conformance" }
      m:limit(2)
      local function req(verb, path)
        return { method = verb, url = api_url(path), headers = { "X-Auth-Token: " .. emu.token }, timeout = 5,
          connect_timeout = 5, body = verb == "POST" and "{}" or nil }
      end
      -- two at once: two pooled connections; the second gets a stray answer while idle. libcurl
      -- hands out the first for the next request: its send is dropped, and the resend meets
      -- the second. (Were the stale one handed out first, the fresh connection's drop would end
      -- the request with 52: the assertions below would fail, not pass by chance.)
      emu:inject{ method = "GET", path = "/second$", action = "raw",
        raw = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", raw_repeat = STRAY, raw_times = 1, raw_wait = 0.2,
        raw_end = "hang" }
      -- (answered late: a start sends its request at once, and a quick answer would free the
      -- first connection for the second request, leaving one)
      emu:inject{ method = "GET", path = "/first$", status = 200, body = "{}", delay = 0.2 }
      m:start(req("GET", "/first"))
      m:start(req("GET", "/second"))
      for _ = 1, 2 do assert.equal(200, select(2, m:next(5)).status, method) end
      socket.sleep(0.6)
      emu:inject{ method = method, action = "drop" } -- the first send: no answer
      emu:inject{ method = method, status = 404, body = { code = "VPC.0306", message = "gone" },
        headers = { ["X-Request-Id"] = "its-own-answer" } }
      m:start(req(method, routed(method)))
      local _, resp = m:next(10)
      local sent = 0
      for _, r in ipairs(emu:requests()) do
        if r.method == method then sent = sent + 1 end
      end
      if method == "DELETE" then
        assert.same({ 404, "its-own-answer", true, 2 }, { resp.status, resp.request_id, resp.resent, sent })
      else
        assert.same({ 0, 52, 1 }, { resp.status, resp.curl_code, sent })
      end
      m:close()
    end
  end)

  -- The same through the client, whose single calls and batches keep connections of their own:
  -- a stray 204 on an idle connection is never a delete's answer.
  it("a delete on a pooled connection with a stray 204 is the server's own answer, single or batch", function()
    local client = eip.new{ endpoint = emu.url, token = emu.token, project_id = emu.project_id, max_attempts = 1,
      timeout = 5 }
    for _, how in ipairs{ "single", "batch" } do
      emu:reset()
      local missing = absent_id()
      local present = emu:create_bandwidth{ size = 10, share_type = "WHOLE" }
      emu:inject(answer_then{ method = "DELETE", path = emu:delete_path(present), raw_repeat = STRAY,
        raw_times = 1, raw_end = "hang" })
      local function delete(id)
        if how == "single" then
          local ok, res = pcall(client.delete_bandwidth, client, id)
          return ok, res
        end
        local results = client:delete_bandwidths({ id }, { concurrency = 1 })
        local r = results[1]
        return not eip.is_error(r), r
      end
      local ok, err = delete(present)
      assert.is_false(ok, how)
      assert.same({ 409, "VPC.0512" }, { err.status, err.code }, how)
      socket.sleep(0.6)
      ok, err = delete(missing)
      assert.is_false(ok, how .. ": a stray 204 was taken for the delete's answer")
      assert.same({ 404, "VPC.0306" }, { err.status, err.code }, how)
    end
    client:close()
  end)

  -- After a batch the pool holds many connections, which may go stale together (a load balancer
  -- failed over): each dead one is closed and the next taken, however many there are, until a
  -- live or fresh connection answers; the call's one attempt is not spent on them.
  it("a run of dead pooled connections is drained within one attempt #openresty", function()
    emu:reset()
    local ids = {}
    for i = 1, 11 do ids[i] = emu:create_bandwidth{ size = 10, share_type = "WHOLE" } end
    local first = {}
    for i = 1, 10 do first[i] = ids[i] end
    assert.equal(10, app_post("/t/batch", { ids = first, concurrency = 10 }, 20).summary.deleted) -- ten pooled
    emu:reset_counters()
    emu:inject{ method = "DELETE", path = emu:delete_path(ids[11]), action = "drop", times = 6 }
    local out = app_post("/t/batch", { ids = { ids[11] }, concurrency = 1 }, 20)
    assert.equal(1, out.summary.deleted, cjson.encode(out))
    assert.equal(1, out.attempts[1], "one attempt of the call: " .. cjson.encode(out))
    assert.equal(7, emu:stats().requests)
  end)

  -- The worker's memory -------------------------------------------------------------------------

  local function worker_rss_kb()
    local resp = assert(emulator.http{ port = app.port, path = "/t/rss", timeout = 5 })
    return cjson.decode(resp.body).rss_kb
  end

  it("the nginx worker stays small through endless lines, header floods, chunk extensions, trailers #openresty",
      function()
    local hostile = {}
    for _, case in ipairs(CASES) do
      if case.name:find("endless") or case.name:find("over 300 KiB") or case.name:find("over%-long chunk") then
        hostile[#hostile + 1] = case
      end
    end
    assert.equal(5, #hostile)
    local before = worker_rss_kb()
    for _ = 1, 3 do
      for _, case in ipairs(hostile) do run(case, TRANSPORTS[2]) end
    end
    local after = worker_rss_kb()
    print(string.format("\nconformance: nginx worker RSS %d kB before, %d kB after %d hostile exchanges",
      before, after, 3 * #hostile))
    assert.is_true(after - before < 32 * 1024, "the worker grew by " .. (after - before) .. " kB")
    assert.is_true(after < 256 * 1024, "the worker holds " .. after .. " kB")
  end)

  it("the app logged no Lua error through all of this", function()
    local log = app:log_tail(100000)
    assert.is_nil(log:find("runtime error", 1, true), log)
    assert.is_nil(log:find("entry thread aborted", 1, true), log)
  end)

  -- Through the public client ----------------------------------------------------------------------

  -- One delete_bandwidth with a client made from `options` (endpoint etc. filled in): here
  -- (libcurl), and in an nginx request handler (cosockets). Returns both outcomes as
  -- { ok, result | error, is_error }.
  local function both_clients(options, id, arrange)
    local function opts()
      local o = { project_id = emu.project_id, token = emu.token, timeout = 5, connect_timeout = 5,
        max_attempts = 1, ca_file = pki.ca }
      for k, v in pairs(options) do o[k] = v end
      if o.auth then o.token, o.project_id = nil, nil end
      return o
    end
    emu:reset()
    if arrange then arrange() end
    local c = eip.new(opts())
    local ok, res = pcall(c.delete_bandwidth, c, id)
    c:close()
    local here = { ok = ok, transport = "curl" }
    if ok then here.result = res else here.error, here.is_error = res, eip.is_error(res) end
    emu:reset()
    if arrange then arrange() end
    local there = app_post("/t/client", { options = opts(), id = id }, 15)
    return here, there
  end

  local function assert_same_failure(here, there, curl_code)
    for label, out in pairs{ libcurl = here, cosocket = there } do
      assert.is_false(out.ok, label)
      assert.is_true(out.is_error, label .. ": the caller must get an eip error table, got "
        .. tostring(out.error and out.error.text or out.error))
      assert.equal("transport", out.error.kind, label)
      assert.equal(curl_code, out.error.curl_code, label)
    end
    assert.equal("cosocket", there.transport)
    assert.equal(here.error.reason, there.error.reason)
    assert.equal(here.error.retryable, there.error.retryable)
  end

  local HOSTILE = {
    { "an endless header line", 27, raw(HEAD .. "X-Flood: ", { raw_repeat = string.rep("a", 8192) }) },
    { "a chunk size that is not hex", 56, raw(HEAD .. "Transfer-Encoding: chunked\r\n\r\nzz\r\n") },
    { "a garbage status line", 1, raw("SSH-2.0-OpenSSH_9.2p1\r\n\r\n") },
    -- libcurl 7.88 alone read these as 200 and 204: deleted = true, the bandwidth untouched.
    { "a lowercase status line", 1, raw("http/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n") },
    { "an HTTP/2 status line", 1, raw("HTTP/2 4294967500 No Content\r\nContent-Length: 0\r\n\r\n") },
    { "a 101 Switching Protocols", 1, raw("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n") },
    { "a header block over 300 KiB", 56, raw(HEAD, { raw_repeat = "X-Pad: " .. string.rep("p", 1000) .. "\r\n" }) },
  }

  for _, h in ipairs(HOSTILE) do
    it("client:delete_bandwidth raises an eip error, never a string: " .. h[1], function()
      local here, there = both_clients({ endpoint = emu.url }, "bw-hostile", h[3])
      assert_same_failure(here, there, h[2])
    end)
  end

  for _, name in ipairs{ "untrusted", "wrong_name" } do
    it("client:delete_bandwidth raises an eip error for TLS to the " .. name .. " certificate", function()
      local here, there = both_clients({ endpoint = front.url(name) }, "bw-tls")
      assert_same_failure(here, there, 60)
      assert.equal("tls", here.error.reason)
    end)
  end

  it("client:delete_bandwidth over https://127.0.0.1 (IP address in the certificate), verified", function()
    local ids = {}
    local here, there = both_clients({ endpoint = front.url("trusted") }, "bw-tls-ok", function()
      ids[#ids + 1] = emu:create_bandwidth{ size = 10, share_type = "WHOLE", id = "bw-tls-ok" }
    end)
    for label, out in pairs{ libcurl = here, cosocket = there } do
      assert.is_true(out.ok, label .. ": " .. tostring(out.error and (out.error.text or out.error)))
      assert.equal(204, out.result.status, label)
    end
    assert.equal(2, #ids)
  end)

  it("client:delete_bandwidth through a proxy: CONNECT inside nginx, the token never seen by the proxy", function()
    local url = string.format("http://%s:%s@127.0.0.1:%d", PROXY_USER, PROXY_SECRET, guarded_proxy.port)
    guarded_proxy:reset()
    local here, there = both_clients({ endpoint = "https://" .. NAME .. ":" .. front.ports.trusted, proxy = url },
      "bw-proxied", function() emu:create_bandwidth{ size = 10, share_type = "WHOLE", id = "bw-proxied" } end)
    for label, out in pairs{ libcurl = here, cosocket = there } do
      assert.is_true(out.ok, label .. ": " .. tostring(out.error and (out.error.text or out.error)))
      assert.equal(204, out.result.status, label)
    end
    -- Only the proxies resolve the name (nginx's resolver here knows localhost alone): both went
    -- through one. The cosocket call may reuse a tunnel an earlier case left in nginx's pool.
    assert.equal("cosocket", there.transport)
    local seen = guarded_proxy:seen()
    assert.is_true(#seen >= 1)
    for _, s in ipairs(seen) do assert.equal("CONNECT", s.method) end
    local received = guarded_proxy:raw()
    assert.is_nil(received:find(emu.token, 1, true))
    assert.is_nil(received:find("bw-proxied", 1, true))
  end)

  it("client:delete_bandwidth through a proxy that answers 407: the same proxy error in both", function()
    local here, there = both_clients({ endpoint = "https://" .. NAME .. ":" .. front.ports.trusted,
      proxy = guarded_proxy.url, max_attempts = 3 }, "bw-407")
    for label, out in pairs{ libcurl = here, cosocket = there } do
      assert.is_false(out.ok, label)
      assert.is_true(out.is_error, label)
      assert.equal("proxy", out.error.kind, label)
      assert.equal("auth", out.error.reason, label)
      assert.is_false(out.error.retryable, label)
      assert.matches("proxy authentication required", out.error.text or tostring(out.error), 1, true)
      assert.equal("127.0.0.1:" .. guarded_proxy.port, out.error.proxy, label)
      assert.equal(407, out.error.proxy_status, label)
    end
  end)

  it("IAM password login inside an nginx request handler, then a delete", function()
    local auth = emu:iam_auth()
    local here, there = both_clients({ endpoint = emu.url, auth = auth }, "bw-iam", function()
      emu:create_bandwidth{ size = 10, share_type = "WHOLE", id = "bw-iam" }
    end)
    for label, out in pairs{ libcurl = here, cosocket = there } do
      assert.is_true(out.ok, label .. ": " .. tostring(out.error and (out.error.text or out.error)))
      assert.equal(204, out.result.status, label)
    end
    local sent = emu:requests()
    assert.equal("POST", sent[1].method)
    assert.equal("/v3/auth/tokens", sent[1].path)
    assert.equal("DELETE", sent[2].method)
    assert.matches("^MIIemu", sent[2].headers["x-auth-token"])
  end)

  it("IAM login with a multi-KB token: the delete carries the whole token", function()
    -- 5959 bytes: real IAM tokens run to kilobytes; a request header line stays under nginx's 8 KiB.
    local token = "MIIlong" .. string.rep("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", 96)
    local expires = os.date("!%Y-%m-%dT%H:%M:%S.000000Z", os.time() + 86400)
    local tokens = { [token] = emu.project_id }
    for k, v in pairs(emu.tokens) do tokens[k] = v end
    emu:set_tokens(tokens)
    local auth = emu:iam_auth()
    local ok, err = pcall(function()
      local here, there = both_clients({ endpoint = emu.url, auth = auth }, "bw-long", function()
        emu:create_bandwidth{ size = 10, share_type = "WHOLE", id = "bw-long" }
        emu:inject{ method = "POST", path = "^/v3/auth/tokens$", status = 201,
          headers = { ["X-Subject-Token"] = token },
          body = { token = { expires_at = expires, project = { id = emu.project_id, name = emu.iam.project } } } }
      end)
      for label, out in pairs{ libcurl = here, cosocket = there } do
        assert.is_true(out.ok, label .. ": " .. tostring(out.error and (out.error.text or out.error)))
        assert.equal(204, out.result.status, label)
      end
      local sent = emu:requests()
      assert.equal("DELETE", sent[2].method)
      assert.equal(token, sent[2].headers["x-auth-token"])
    end)
    emu:set_tokens(emu.tokens)
    assert(ok, err)
  end)
end)
