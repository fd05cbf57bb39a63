-- lua-eip inside OpenResty: a private nginx (the "app") runs examples/openresty/nginx.conf
-- (derived for the test run by spec/support/openresty/launcher.lua) against the EIP emulator,
-- with the C core built for LuaJIT (build/luajit). Everything is driven over HTTP from here.
local cjson = require "cjson"
local socket = require "socket"
local eip = require "eip"
local emulator = require "spec.support.emulator"
local launcher = require "spec.support.openresty.launcher"
local fixture = require "spec.support.fixture"
local absent = fixture.absent_id

describe("OpenResty #openresty", function()
  local emu, app

  setup(function()
    emu = emulator.start()
    -- One attempt per call, so each error case is one exchange (retries have their own case);
    -- seconds for the calls that must pass, the deletes kept waiting by the API included.
    app = launcher.start(emu, { timeout = 5, max_attempts = 1 })
  end)

  teardown(function()
    if app then app:stop() end
    if emu then emu:stop() end
  end)

  before_each(function()
    emu:reset()
  end)

  -- A request to the app; resp.json is the decoded body (nil when not JSON).
  local function request(method, path, body, timeout)
    local resp, err = emulator.http{ port = app.port, method = method, path = path, body = body,
      timeout = timeout or 10, headers = body and { ["Content-Type"] = "application/json" } or nil }
    assert(resp, "app request failed: " .. tostring(err) .. "\n" .. app:log_tail(20))
    local ok, decoded = pcall(cjson.decode, resp.body)
    resp.json = ok and decoded or nil
    return resp
  end

  local function delete(id)
    return request("DELETE", "/admin/bandwidths/" .. id)
  end

  local function shared_bandwidth(fields)
    fields = fields or {}
    fields.size = fields.size or 10
    fields.share_type = fields.share_type or "WHOLE"
    return emu:create_bandwidth(fields)
  end

  local function assert_error(resp, status, kind)
    assert.equal(status, resp.status, resp.body)
    assert.equal("application/json", resp.headers["content-type"])
    local e = resp.json.error
    assert.equal(kind, e.kind)
    assert.is_string(e.text)
    assert.is_nil(resp.body:find(emu.token, 1, true), "the token must never be shown")
    return e
  end

  describe("the admin endpoint of examples/openresty/nginx.conf", function()
    it("deletes a bandwidth: 200 with the result as JSON", function()
      local id = shared_bandwidth()
      local resp = delete(id)
      assert.equal(200, resp.status, resp.body)
      assert.is_true(resp.json.ok)
      assert.equal(204, resp.json.status)
      assert.equal("No Content", resp.json.reason)
      assert.equal(id, resp.json.bandwidth_id)
      assert.matches("^%x+$", resp.json.request_id)
      assert.equal(1, resp.json.attempts)
      assert.is_nil(emu:get_bandwidth(id))
      local sent = emu:requests()[1]
      assert.equal("DELETE", sent.method)
      assert.equal("/v2.0/" .. emu.project_id .. "/bandwidths/" .. id, sent.uri)
      assert.equal("127.0.0.1:" .. emu.port, sent.headers.host)
      assert.equal(eip.USER_AGENT or ("lua-eip/" .. eip._VERSION), sent.headers["user-agent"])
      assert.equal(emu.token, sent.headers["x-auth-token"])
    end)

    it("maps 404 to 404 with the error fields", function()
      local e = assert_error(delete(require("spec.support.fixture").absent_id(1)), 404, "http")
      assert.equal(404, e.status)
      assert.equal("VPC.0306", e.code)
      assert.equal("Not Found", e.reason)
      assert.is_false(e.retryable)
      assert.matches("^eip: DELETE /v2%.0/.* %-> 404 Not Found %(VPC%.0306: ", e.text)
    end)

    -- Answers about its own settings are no fault of the caller's id: the gateway's 404 (no such
    -- API: our endpoint is wrong), a 400 whose code is of the config kind (VPC.0007: the
    -- project is not our token's).
    it("maps the gateway's 404 and a 400 about its own settings to 502", function()
      for _, answer in ipairs{
        { 404, { error_code = "APIGW.0101", error_msg = "The API does not exist or has not been published" } },
        { 400, { code = "VPC.0007", message = "urlTenantId is not equal tokenTenantId" } } } do
        emu:inject{ method = "DELETE", status = answer[1], body = answer[2] }
        local id = shared_bandwidth()
        local e = assert_error(delete(id), 502, "http")
        assert.same({ answer[1], answer[2].error_code or answer[2].code }, { e.status, e.code })
        assert.is_table(emu:get_bandwidth(id))
      end
    end)

    -- A 404 VPC.0306 whose body goes on after its JSON value is not known to be the service's (no
    -- missing bandwidth: eip.is_missing): the answer could not be read, the bandwidth may well
    -- exist, and the caller's id (a lower-case UUID) is not wrong either.
    it("maps a 404 VPC.0306 whose body is in doubt to 502, not to a wrong id", function()
      emu:inject{ method = "DELETE", status = 404, answered_by = "service",
        body = '{"code":"VPC.0306","message":"No Eip bandwidth exist with id."}\n<html>proxy</html>' }
      local id = shared_bandwidth()
      local e = assert_error(delete(id), 502, "http")
      assert.same({ 404, "VPC.0306", true }, { e.status, e.code, e.trailing })
      assert.matches("[more after its JSON]", e.text, 1, true)
      assert.is_table(emu:get_bandwidth(id))
    end)

    it("maps 409 (bandwidth still holds EIPs) to 409", function()
      local id = shared_bandwidth{ publicip_ids = { "eip-in-use-1" } }
      local e = assert_error(delete(id), 409, "http")
      assert.equal(409, e.status)
      assert.equal("VPC.0304", e.code)
      assert.is_table(emu:get_bandwidth(id))
    end)

    it("maps a usage error to 400 without calling the API", function()
      emu:reset_counters()
      local e = assert_error(delete("bad%20id"), 400, "usage")
      assert.equal("bandwidth_id", e.argument)
      assert.equal(0, emu:stats().requests)
    end)

    -- The library's usage error says whether an id held a piece of a credential ("not shown"),
    -- and an id it takes goes to the API, whose answer differs: passed on, either let a caller
    -- find the token one character at a time. Only UUIDs are taken, every other id gets one text.
    it("answers every id that is no lower-case UUID with one text, nothing sent", function()
      local bodies = {}
      local piece = emu.token:sub(1, 12)
      for i, id in ipairs{ "n-" .. piece .. "!", "n-" .. ("x"):rep(12) .. "!", "n-" .. piece, "n-" .. ("x"):rep(12),
          ("0a6011db-8a63-4922-8878-e491cd613a85"):upper() } do
        local resp = delete(id)
        assert_error(resp, 400, "usage")
        bodies[i] = resp.body
      end
      for i = 2, #bodies do assert.equal(bodies[1], bodies[i]) end
      assert.equal(0, emu:stats().requests)
    end)

    -- VPC.0306 for an upper-cased id says nothing of the bandwidth meant: no 404 ("gone").
    it("sends no upper-cased id: 400, and the bandwidth is still there", function()
      local id = shared_bandwidth()
      assert_error(delete(id:upper()), 400, "usage")
      assert.equal(0, emu:stats().requests)
      assert.is_table(emu:get_bandwidth(id))
    end)

    it("passes the API's 400 on as 400", function()
      local id = shared_bandwidth{ share_type = "PER" }
      local e = assert_error(delete(id), 400, "http")
      assert.equal(400, e.status)
      assert.equal("VPC.0301", e.code)
    end)

    it("maps 401 (our token refused) to 502", function()
      emu:set_tokens{ [emu.other_token] = emu.other_project_id }
      local ok, resp = pcall(delete, shared_bandwidth())
      emu:set_tokens(emu.tokens)
      assert(ok, resp)
      local e = assert_error(resp, 502, "http")
      assert.equal(401, e.status)
      assert.is_string(e.code)
    end)

    it("maps 5xx to 502 and 429 to 503 with Retry-After", function()
      emu:inject{ method = "DELETE", status = 503, body = { code = "VPC.0512", message = "busy" } }
      assert.equal(503, assert_error(delete(absent(1)), 502, "http").status)
      emu:inject{ method = "DELETE", status = 429, headers = { ["Retry-After"] = "7" },
        body = { error_code = "APIGW.0308", error_msg = "throttled" } }
      local resp = delete(absent(1))
      assert.equal(429, assert_error(resp, 503, "http").status)
      assert.equal("7", resp.headers["retry-after"])
      -- The gateway's throttling sends no Retry-After: the example advises a few seconds.
      emu:inject{ method = "DELETE", status = 429,
        body = { error_code = "APIGW.0308", error_msg = "The throttling threshold has been reached" } }
      resp = delete(absent(1))
      assert.equal(429, assert_error(resp, 503, "http").status)
      assert.equal("5", resp.headers["retry-after"])
    end)

    -- The API's Retry-After is passed on as delta-seconds, the only form a caller can read without
    -- the API's clock: repeated headers come joined ("7, 10"), which is no Retry-After value; an
    -- unusable one ("soon") is no answer either: a throttled call gets the few seconds advised.
    it("passes a repeated or unusable Retry-After on as delta-seconds", function()
      local body = '{"error_code":"APIGW.0308","error_msg":"throttled"}'
      for sent, expected in pairs{ ["Retry-After: 7\r\nRetry-After: 10"] = "10", ["Retry-After: soon"] = "5" } do
        emu:inject{ method = "DELETE", action = "raw", raw = "HTTP/1.1 429 Too Many Requests\r\n" .. sent
          .. "\r\nContent-Type: application/json\r\nContent-Length: " .. #body .. "\r\n\r\n" .. body }
        local resp = delete(absent(1))
        assert.equal(429, assert_error(resp, 503, "http").status)
        assert.equal(expected, resp.headers["retry-after"], sent)
      end
    end)

    -- The API's message is cut at 512 bytes and the error's one line (`text`) at 300: a cut inside a
    -- character of a Chinese message left half of it, and the answer was JSON no strict reader
    -- takes (RFC 8259: UTF-8; Python's json refused the whole document).
    it("answers valid UTF-8 JSON for a long message in Chinese, cut between characters", function()
      local valid_utf8 = require("eip.emulator.server.params").valid_utf8
      -- ("带宽" is 6 bytes: 512 and 300 fall inside a character, 1 byte before the message's)
      local message = "x" .. string.rep("带宽", 100)
      emu:inject{ method = "DELETE", status = 400, body = { code = "VPC.0301", message = message } }
      local resp = delete(absent(1))
      local e = assert_error(resp, 400, "http")
      assert.is_true(valid_utf8(resp.body), "the answer is no UTF-8")
      assert.equal(message:sub(1, 511) .. "...", e.message)
      assert.matches("(VPC.0301: x带宽", e.text, 1, true)
    end)

    -- A path beside the admin endpoint's (a trailing slash, an id with a slash) is no static file
    -- of nginx's html/ directory, nor a method nginx's static module refuses (405 without Allow).
    it("answers 404 with a JSON error to every other path", function()
      for _, path in ipairs{ "/admin/bandwidths/" .. absent(1) .. "/", "/admin/bandwidths/a%2Fb", "/" } do
        local resp = request("DELETE", path)
        assert.equal(404, resp.status, path)
        assert.equal("application/json", resp.headers["content-type"], path)
        assert.is_table(resp.json and resp.json.error, path)
      end
      assert.equal(0, emu:stats().requests)
    end)

    -- An endpoint that deletes cloud resources must not answer strangers if its listen line is
    -- widened: only the loopback address itself may call it (here, a caller bound to 127.0.0.2).
    it("refuses callers other than 127.0.0.1 and ::1 (403), nothing sent", function()
      local id = shared_bandwidth()
      local sock = socket.tcp()
      assert(sock:bind("127.0.0.2", 0))
      sock:settimeout(5)
      assert(sock:connect("127.0.0.1", app.port))
      assert(sock:send("DELETE /admin/bandwidths/" .. id .. " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
      local line = sock:receive("*l")
      sock:close()
      assert.equal("HTTP/1.1 403 Forbidden", line)
      assert.is_table(emu:get_bandwidth(id))
      assert.equal(0, emu:stats().requests)
    end)

    it("answers 405 to other methods", function()
      local resp = request("GET", "/admin/bandwidths/bw-1")
      assert.equal(405, resp.status)
      assert.equal("DELETE", resp.headers["allow"])
    end)

    it("maps a timeout (the API hangs) to 504 within the client timeout (5 s)", function()
      emu:inject{ method = "DELETE", action = "hang" }
      local t0 = socket.gettime()
      local e = assert_error(delete(absent(1)), 504, "transport")
      local took = socket.gettime() - t0
      assert.equal("timeout", e.reason)
      assert.equal(28, e.curl_code)
      assert.is_true(e.retryable)
      assert.is_true(took >= 4.9 and took < 5 + 3, "took " .. took .. " s")
    end)

    it("maps a reset (closed before any answer) to 502, and recovers", function()
      emu:inject{ method = "DELETE", action = "drop", times = -1 }
      local e = assert_error(delete(absent(1)), 502, "transport")
      assert.equal("reset", e.reason)
      assert.equal(52, e.curl_code)
      emu:reset()
      assert.equal(200, delete(shared_bandwidth()).status)
    end)

    it("maps a connection closed mid-body to 502 (curl code 18)", function()
      emu:inject{ method = "DELETE", action = "reset_mid_body", status = 500,
        body = '{"code":"VPC.0302","message":"' .. string.rep("x", 2000) .. '"}' }
      local e = assert_error(delete(absent(1)), 502, "transport")
      assert.equal(18, e.curl_code)
      assert.equal("reset", e.reason)
    end)

    it("retries transient failures, waiting without blocking (a second app, default retries)", function()
      local retrying = launcher.start(emu, { timeout = 5 })
      local ok, err = pcall(function()
        emu:inject{ method = "DELETE", status = 503, times = 2,
          body = { code = "VPC.0512", message = "busy, try again later" } }
        local id = shared_bandwidth()
        local resp = assert(emulator.http{ port = retrying.port, method = "DELETE",
          path = "/admin/bandwidths/" .. id, timeout = 15 })
        assert.equal(200, resp.status, resp.body)
        assert.equal(3, cjson.decode(resp.body).attempts)
        assert.is_nil(emu:get_bandwidth(id))
      end)
      retrying:stop()
      assert(ok, err)
    end)

    it("signs requests with AK/SK from the SDK environment variables (and temporary credentials)", function()
      for _, creds in ipairs{ { ak = emu.ak, sk = emu.sk },
                              { ak = emu.temp_ak, sk = emu.temp_sk, security_token = emu.security_token } } do
        local signing = launcher.start(emu, { ak = creds.ak, sk = creds.sk, security_token = creds.security_token,
          timeout = 5 })
        local ok, err = pcall(function()
          local id = shared_bandwidth()
          local resp = assert(emulator.http{ port = signing.port, method = "DELETE",
            path = "/admin/bandwidths/" .. id, timeout = 5 })
          assert.equal(200, resp.status, resp.body)
          local reqs = emu:requests()
          local h = reqs[#reqs].headers
          assert.matches("^SDK%-HMAC%-SHA256 Access=" .. creds.ak, h.authorization)
          assert.is_nil(h["x-auth-token"])
          assert.equal(creds.security_token, h["x-security-token"])
          assert.is_nil(emu:get_bandwidth(id))
          -- and a refused signature maps like any 401
          emu:inject{ method = "DELETE", status = 401,
            body = { error_code = "APIGW.0301", error_msg = "Incorrect IAM authentication information" } }
          resp = assert(emulator.http{ port = signing.port, method = "DELETE",
            path = "/admin/bandwidths/" .. absent(2) })
          assert.equal(502, resp.status)
          assert.is_nil(resp.body:find(creds.sk, 1, true))
        end)
        signing:stop()
        assert(ok, err)
      end
    end)

    it("reuses one pooled connection for consecutive deletes", function()
      local ids = {}
      for i = 1, 5 do ids[i] = shared_bandwidth() end
      emu:reset_counters()
      for _, id in ipairs(ids) do
        assert.equal(200, delete(id).status)
      end
      local stats = emu:stats()
      assert.equal(5, stats.requests)
      assert.equal(1, stats.connections)
    end)

    -- EIP_TIMEOUT=5s became the default 30 s, EIP_MAX_ATTEMPTS=one the default 3, in silence:
    -- a number setting that is none stops nginx, naming it.
    it("does not start with a number setting that is no number, naming it", function()
      -- (the value is not quoted: a secret pasted into the wrong variable would be logged)
      for name, value in pairs{ EIP_TIMEOUT = "5s-not-shown", EIP_MAX_ATTEMPTS = "one-not-shown" } do
        local ok, err = pcall(launcher.start, emu, { env = { [name] = value } })
        if ok then err:stop() end
        assert.is_false(ok, name)
        assert.matches(name .. " must be a number", tostring(err), 1, true)
        assert.is_nil(tostring(err):find(value:sub(1, 3), 1, true), tostring(err))
      end
    end)

    -- A usage error of the app's own settings (here: AK/SK with a region whose project IAM does
    -- not know) is the app's failure, not the caller's: 500, not 400.
    it("answers 500, not 400, for a usage error that is not the caller's id", function()
      local signing = launcher.start(emu, { ak = emu.ak, sk = emu.sk, project_id = "", timeout = 5,
        env = { EIP_ENDPOINT = "", EIP_REGION = "ap-southeast-3", HUAWEICLOUD_SDK_IAM_ENDPOINT = emu.iam_url,
          HUAWEICLOUD_SDK_REGION_EIP_AP_SOUTHEAST_3 = emu.url } })
      local ok, err = pcall(function()
        local resp = assert(emulator.http{ port = signing.port, method = "DELETE",
          path = "/admin/bandwidths/" .. shared_bandwidth(), timeout = 15 })
        assert.equal(500, resp.status, resp.body)
        assert.equal("usage", cjson.decode(resp.body).error.kind)
      end)
      signing:stop()
      assert(ok, err)
    end)
  end)

  describe("the same contract as plain Lua", function()
    local function normalised(v)
      return cjson.decode(cjson.encode(v))
    end

    it("eip.statuses() and eip.status(code) are identical", function()
      assert.same(normalised(eip.statuses()), request("GET", "/t/statuses").json)
      for _, code in ipairs({ 200, 204, 404, 409, 429, 503, 299, 999, -1 }) do
        assert.same(normalised(eip.status(code)), request("GET", "/t/status/" .. code).json)
      end
    end)

    -- The plain-Lua client (libcurl) and the app (cosockets) facing the same situation.
    local function plain_error(id, timeout)
      local c = eip.new{ endpoint = emu.url, project_id = emu.project_id, token = emu.token,
        timeout = timeout or 5, max_attempts = 1 }
      local ok, err = pcall(c.delete_bandwidth, c, id)
      c:close()
      assert.is_false(ok)
      assert.is_true(eip.is_error(err), tostring(err))
      return err
    end

    local FIELDS = { "kind", "status", "reason", "code", "class", "retryable",
      "method", "path", "curl_code", "attempts" }

    local function assert_same_error(plain, app_error)
      for _, k in ipairs(FIELDS) do
        assert.equal(plain[k], app_error[k], "field " .. k)
      end
      -- A transport error's message is the transport's own text (libcurl's, or its cosocket
      -- equivalent): alike, not identical.
      if plain.kind == "http" then assert.equal(plain.message, app_error.message) end
      local strip = function(s) return (s:gsub(" request%-id=%x+", ""):gsub("%(curl %d+%).*", "")) end
      if plain.kind == "http" then
        assert.equal(strip(tostring(plain)), strip(app_error.text))
      end
    end

    it("raises the same http error", function()
      local plain = plain_error(absent(3))
      assert_same_error(plain, delete(absent(3)).json.error)
    end)

    it("raises the same transport errors (timeout, reset)", function()
      emu:inject{ method = "DELETE", action = "hang" }
      local plain = plain_error(absent(1), 1)
      emu:inject{ method = "DELETE", action = "hang" }
      assert_same_error(plain, delete(absent(1)).json.error)
      emu:reset()
      emu:inject{ method = "DELETE", action = "drop", times = -1 }
      plain = plain_error(absent(1))
      assert_same_error(plain, delete(absent(1)).json.error)
    end)

    -- libcurl says 28 "Resolving timed out" for a DNS server that never answers (a timeout, sent
    -- again: spec/dns_timeout_spec.lua); nginx's resolver says "could not be resolved (110:
    -- Operation timed out)", which read as a name that does not resolve (6, dns, never retried).
    it("takes a lookup nginx's resolver gave up on as a timeout, retried, as libcurl does", function()
      local resp = request("POST", "/t/client_silent_dns", cjson.encode{ id = absent(1), options = {
        endpoint = "http://api.silent.test:" .. emu.port, project_id = emu.project_id, token = emu.token,
        timeout = 2, max_attempts = 2, backoff_base = 0, backoff_cap = 0 } })
      local e = resp.json.error
      assert.is_true(resp.json.is_error, resp.body)
      assert.same({ "transport", "timeout", 28, true }, { e.kind, e.reason, e.curl_code, e.retryable }, resp.body)
      assert.matches("Resolving timed out after %d+ milliseconds .*%[not sent%] after 2 attempts", e.text)
    end)

    -- As outside nginx: a close() while a call runs marks the client closed at once and lets the
    -- call end as it would; the transport is released once it has (closed under the call, a
    -- fresh cosocket transport was made for its next attempt and never released).
    it("lets a call closed from its own hook end as it would, then releases the transport", function()
      local id, ids = shared_bandwidth(), emu:create_bandwidths(3)
      emu:inject{ method = "DELETE", status = 503, times = 1 }
      local out = request("POST", "/t/close_in_call", cjson.encode{ id = id, ids = ids,
        options = { endpoint = emu.url, project_id = emu.project_id, token = emu.token, backoff_base = 0.01 } }).json
      assert.same({ ok = true, status = 204, attempts = 2, closed = true, held = false, again = "usage" }, out.single)
      assert.same({ ok = true, deleted = 3, closed = true, held = false }, out.batch)
      assert.is_nil(emu:get_bandwidth(id))
    end)

    -- As outside nginx (spec/safety_spec.lua): a transport whose send raises fails that request
    -- with an eip error (its text redacted), never the raw value; a batch goes on with the other
    -- ids. A transport of the caller's (a batch: one request at a time through it) and the
    -- client's own with its send replaced (a batch: light threads, each calling it).
    it("fails the request whose transport's send raised with an eip error, the others deleted", function()
      for _, wrap in ipairs{ "caller", "auto" } do
        local ids = emu:create_bandwidths(5)
        local bad = ids[1]
        local resp = request("POST", "/t/raising_send", cjson.encode{ endpoint = emu.url, token = emu.token,
          project_id = emu.project_id, raise_for = bad, singles = { bad, ids[2] }, ids = { ids[3], bad, ids[4],
          ids[5] }, wrap = wrap })
        assert.equal(200, resp.status, resp.body .. app:log_tail(20))
        assert.is_nil(resp.body:find(emu.token, 1, true), wrap .. ": the token must never be shown")
        local out = resp.json
        for _, e in ipairs{ out.singles[1], out.batch[2] } do
          assert.same({ false, true, "transport", "other", true }, { e.ok, e.is_error, e.kind, e.reason,
            e.could_have_acted }, wrap .. ": " .. resp.body)
          assert.matches("the transport's send raised an error, which breaks the transport contract", e.message, 1,
            true)
          assert.matches("send broke near <redacted>", e.message, 1, true)
        end
        assert.same({ true, 204 }, { out.singles[2].ok, out.singles[2].status }, resp.body)
        for _, i in ipairs{ 1, 3, 4 } do assert.is_true(out.batch[i].ok, resp.body) end
        assert.same({ 3, 1, 0 }, { out.summary.deleted, out.summary.failed, out.summary.not_sent }, resp.body)
        for i = 2, 5 do assert.is_nil(emu:get_bandwidth(ids[i]), wrap .. ": " .. ids[i]) end
        assert.is_table(emu:get_bandwidth(bad))
      end
    end)
  end)

  -- The transport itself (cosockets against libcurl, case by case) is proven by
  -- spec/transport_conformance_spec.lua.

  describe("phases", function()
    it("selects libcurl in init_worker and cosockets in its timers", function()
      local seen = request("GET", "/t/seen").json
      -- The cosocket transport came from the master: a worker that could not read the tree failed
      -- every request after a start that passed.
      assert.same({ phase = "init_worker", transport = "curl", cosocket_loaded = true }, seen.init_worker)
      assert.same({ phase = "timer", transport = "cosocket" }, seen.timer)
    end)

    it("falls back to libcurl (blocking) in set_by_lua, and the call works", function()
      local id = shared_bandwidth()
      local out = request("GET", "/t/set/" .. id).json
      assert.is_true(out.ok, cjson.encode(out))
      assert.equal("set", out.phase)
      assert.equal("curl", out.transport)
      assert.equal(204, out.result.status)
      assert.is_nil(emu:get_bandwidth(id))
      out = request("GET", "/t/set/" .. id).json
      assert.is_false(out.ok)
      assert.equal(404, out.error.status)
    end)

    it("uses cosockets in server_rewrite_by_lua", function()
      local id = shared_bandwidth()
      local out = request("GET", "/t/server_rewrite/" .. id).json
      assert.is_true(out.ok, cjson.encode(out))
      assert.same({ "server_rewrite", "cosocket" }, { out.phase, out.transport })
      assert.is_nil(emu:get_bandwidth(id))
    end)

    it("uses cosockets in an ngx.timer callback", function()
      local id = shared_bandwidth()
      local out = request("GET", "/t/timer/" .. id).json
      assert.is_true(out.ok, cjson.encode(out))
      assert.equal("timer", out.phase)
      assert.equal("cosocket", out.transport)
      assert.is_nil(emu:get_bandwidth(id))
    end)

    -- The README gives a client eip.transport.cosocket itself for ssl_client_hello; used where
    -- nginx forbids cosockets (set_by_lua, log_by_lua...) or inside a callback that cannot yield,
    -- its call failed with nginx's raw words and a path in this library ("cosocket transport
    -- error: /.../cosocket.lua:729: API disabled in the context of log_by_lua*"). It says what
    -- happened and what to use instead; the request may have acted only where it went out.
    it("a client given the cosocket transport where it cannot work says why, in the user's words", function()
      local id = shared_bandwidth()
      local silent = assert(socket.bind("127.0.0.1", 0)) -- (the kernel completes the connects)
      local _, port = silent:getsockname()
      local resp = request("GET", "/t/explicit_cosocket/" .. id .. "?silent=" .. port)
      silent:close()
      assert.equal(200, resp.status, resp.body .. app:log_tail(20))
      local out = resp.json
      local log = request("GET", "/t/outcome/" .. id).json
      local function check(e, text, could_have_acted)
        assert.same({ false, "transport", "other", could_have_acted }, { e.ok, e.kind, e.reason, e.could_have_acted },
          resp.body)
        assert.matches(text, e.message, 1, true)
        assert.is_nil(e.message:find("%.lua"), e.message)
      end
      for phase, e in pairs{ set = out.set, log = log } do
        check(e, "cosockets are not available in nginx's " .. phase .. " phase (" .. phase .. "_by_lua): use "
          .. "the default transport (eip.transport.new), which uses libcurl there", false)
      end
      local cannot_wait = "a cosocket cannot wait here: nothing can yield inside a string.gsub or table.sort "
        .. "callback, a dofile or a module's top level run by require"
      check(out.gsub, cannot_wait, false)
      check(out.gsub_sent, cannot_wait, true)
      assert.equal("listed", out.show)
      assert.is_nil(emu:get_bandwidth(id), "the delete that went out was carried out")
    end)

    it("sleeps by yielding where it can, by an OS sleep elsewhere", function()
      local out = request("GET", "/t/sleep?s=0.2").json
      assert.is_true(out.yieldable)
      assert.is_true(out.slept >= 0.19, "slept " .. out.slept)
      out = request("GET", "/t/set_sleep?s=0.05").json
      assert.is_false(out.yieldable)
      assert.equal("set", out.phase)
      assert.is_true(out.slept >= 0.045, "slept " .. out.slept)
    end)
  end)

  describe("never blocks the worker", function()
    -- Opens a request on its own connection and returns without waiting for the answer.
    local function start_request(method, path, body)
      local sock = socket.tcp()
      sock:settimeout(5)
      assert(sock:connect("127.0.0.1", app.port))
      body = body or ""
      assert(sock:send(method .. " " .. path .. " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        .. "Content-Length: " .. #body .. "\r\n\r\n" .. body))
      sock:settimeout(0)
      return sock
    end

    -- Reads every socket until the peer closes it; returns { [sock] = { text, done_at } }.
    local function collect(socks, deadline)
      local out, pending = {}, {}
      for _, s in ipairs(socks) do
        out[s], pending[#pending + 1] = { parts = {} }, s
      end
      while #pending > 0 and socket.gettime() < deadline do
        local readable = socket.select(pending, nil, 0.5)
        for _, s in ipairs(readable) do
          local data, err, partial = s:receive(8192)
          local piece = data or partial
          if piece and piece ~= "" then table.insert(out[s].parts, piece) end
          if err == "closed" then
            out[s].done_at = socket.gettime()
            out[s].text = table.concat(out[s].parts)
            s:close()
            for i, p in ipairs(pending) do
              if p == s then table.remove(pending, i) break end
            end
          end
        end
      end
      for _, s in ipairs(pending) do s:close() end
      return out
    end

    -- The JSON body of an answer read off a raw socket (chunked, as ngx.say sends it).
    local function json_of(text)
      local head, body = assert(text, "no answer"):match("^(.-)\r\n\r\n(.*)$")
      if head:lower():find("transfer%-encoding: chunked") then
        local parts, pos = {}, 1
        while true do
          local size, from = body:match("^(%x+)[^\r\n]*\r\n()", pos)
          size = tonumber(size, 16)
          if not size or size == 0 then break end
          parts[#parts + 1] = body:sub(from, from + size - 1)
          pos = from + size + 2
        end
        body = table.concat(parts)
      end
      return cjson.decode(body)
    end

    -- Waits until the API has seen n requests (they are then waiting on it), within limit s.
    local function api_saw(n, limit, why)
      local deadline = socket.gettime() + limit
      while emu:stats().requests < n do
        assert(socket.gettime() < deadline, why)
        socket.sleep(0.01)
      end
    end

    -- The API answers each delete after 2 s: a worker that blocked on one would hold /ping
    -- that long; one that did not answers it in milliseconds.
    it("serves /ping in milliseconds while 50 deletes wait 2 s each on the API", function()
      local n, delay = 50, 2
      emu:inject{ method = "DELETE", status = 204, delay = delay, times = n }
      local t0 = socket.gettime()
      local socks = {}
      for i = 1, n do
        socks[i] = start_request("DELETE", "/admin/bandwidths/" .. absent(i))
      end
      api_saw(n, 10, "the deletes did not all reach the API at once: the worker blocked")
      local p0 = socket.gettime()
      local ping = assert(emulator.http{ port = app.port, path = "/ping", timeout = 10 })
      local ping_took = socket.gettime() - p0
      assert.equal(200, ping.status)
      local results = collect(socks, t0 + 30)
      local total, ok = 0, 0
      for _, r in pairs(results) do
        if r.text and r.text:match("^HTTP/1%.1 200 ") then ok = ok + 1 end
        if r.done_at then total = math.max(total, r.done_at - t0) end
      end
      print(string.format("\nopenresty: %d deletes (API delay %.0f ms each) done in %.3f s; "
        .. "/ping answered in %.1f ms meanwhile", n, delay * 1000, total, ping_took * 1000))
      assert.equal(n, ok)
      -- at once about one delay (plus the sending: up to the 10 s api_saw allows on a loaded
      -- machine); one at a time, 50 of them (100 s): the bound sits far from both
      assert.is_true(total < n * delay / 4, "50 deletes took " .. total .. " s: the worker blocked")
      assert.is_true(ping_took < delay / 2, "/ping took " .. ping_took .. " s: the worker blocked")
      assert.equal(n, emu:stats().requests)
    end)

    -- A wait held by a Retry-After yields: a single call's in the content phase (its reads 429
    -- with Retry-After: 1) and a batch's in a timer (its last delete 429 with Retry-After: 1, its
    -- first read kept to that), /ping answered meanwhile; reads no sooner than asked, and eip errors.
    it("holds a wait's reads to a Retry-After by yielding, in a request and in a timer", function()
      local single = emu:create_bandwidth{ size = 10, share_type = "WHOLE" }
      local ids = { emu:create_bandwidth{ size = 10, share_type = "WHOLE" },
        emu:create_bandwidth{ size = 10, share_type = "WHOLE" } }
      emu:set_knobs{ deleted_visible_for = 60 }
      emu:inject{ method = "DELETE", path = emu:delete_path(ids[2]), status = 429, headers = { ["Retry-After"] = "1" } }
      emu:inject{ method = "GET", path = single:gsub("%-", "%%-") .. "$", status = 429,
        headers = { ["Retry-After"] = "1" }, times = -1 }
      local options = { endpoint = emu.url, project_id = emu.project_id, token = emu.token, timeout = 5,
        max_attempts = 1 }
      local socks = { start_request("POST", "/t/wait", cjson.encode{ options = options, id = single, wait = 1.6 }),
        start_request("POST", "/t/wait?in=timer", cjson.encode{ options = options, ids = ids, wait = 1.3 }) }
      api_saw(3, 5, "the calls did not begin")
      local p0 = socket.gettime()
      assert.equal(200, assert(emulator.http{ port = app.port, path = "/ping", timeout = 10 }).status)
      local ping_took = socket.gettime() - p0
      local answers = collect(socks, socket.gettime() + 10)
      local one, batch = json_of(answers[socks[1]].text), json_of(answers[socks[2]].text)
      assert.is_true(ping_took < 0.5, "/ping took " .. ping_took .. " s: a wait blocked the worker")
      -- The single call: two reads a second apart (the second where the first's answer said), then
      -- the wait ends with that 429 (another read would come after the end), an eip error. (1.6 s:
      -- the second read goes as long as the first was answered within 0.5 s, however loaded.)
      assert.same({ "content", true, "http", 429, "wait", true }, { one.phase, one.is_error, one.error.kind,
        one.error.status, one.error.stage, one.error.deleted })
      local times = {}
      for _, r in ipairs(emu:requests()) do
        local which = r.uri:find(single, 1, true) and "single" or "batch"
        if r.method == "GET" then times[#times + 1] = { which, r.time } end
        if r.method == "DELETE" and r.uri:find(ids[2], 1, true) then times.refused = r.time end
      end
      local singles, batch_reads = {}, {}
      for _, t in ipairs(times) do table.insert(t[1] == "single" and singles or batch_reads, t[2]) end
      assert.equal(2, #singles, cjson.encode(times))
      -- (0.9: the emulator stamps requests with nginx's cached clock, a few ms off)
      assert.is_true(singles[2] - singles[1] >= 0.9, cjson.encode(times))
      -- The batch's wait: its first read no sooner than its last delete's answer asked.
      assert.equal("timer", batch.phase)
      assert.is_true(#batch_reads >= 1 and batch_reads[1] - times.refused >= 0.9, cjson.encode(times))
      assert.equal(429, batch.results[2].status)
      assert.is_true(batch.results[1].still_readable)
    end)

    -- In log_by_lua (no cosockets) a wait's pauses are the system's sleep, as the README says:
    -- /ping, sent while the wait pauses between its first two reads, is answered after its last.
    it("holds the worker through a wait's pauses in log_by_lua", function()
      local id = emu:create_bandwidth{ size = 10, share_type = "WHOLE" }
      emu:set_knobs{ deleted_visible_for = 60 }
      emu:reset_counters()
      local options = { endpoint = emu.url, project_id = emu.project_id, token = emu.token, timeout = 5,
        max_attempts = 1 }
      -- (0.8 s: a read, a pause of 0.5 s, a read, a pause cut short, a last read; then still readable.
      -- The answer read whole and its connection closed: nginx runs the log phase of a request with
      -- a body once the client has closed, up to lingering_timeout, 5 s, later.)
      assert.same({ later = true }, request("POST", "/t/wait?in=log", cjson.encode{ options = options, id = id,
        wait = 0.8, key = "log-wait" }).json)
      api_saw(2, 5, "the wait's first read was not sent")
      local p0 = socket.gettime()
      assert.equal(200, assert(emulator.http{ port = app.port, path = "/ping", timeout = 10 }).status)
      local p1 = socket.gettime()
      local reads = {}
      for _, r in ipairs(emu:requests()) do
        if r.method == "GET" then reads[#reads + 1] = r.time end
      end
      -- sent before the second read (in the first pause), answered after the last
      local times = cjson.encode{ ping = { p0, p1 }, reads = reads }
      assert.is_true(#reads >= 2 and p0 < reads[2], "/ping was not held by the wait's first pause: " .. times)
      assert.is_true(p1 >= reads[#reads], "/ping was answered before the wait ended: " .. times)
      local logged = request("GET", "/t/outcome/log-wait").json
      assert.same({ "log", true, "wait_timeout", true }, { logged.phase, logged.is_error, logged.error.kind,
        logged.error.deleted }, cjson.encode(logged))
      assert.equal(#reads, fixture.count_requests(emu, "GET"), "a read after /ping: " .. times)
    end)

    -- Another request's call in log_by_lua (no cosockets there: libcurl, blocking) holds the
    -- worker past a cosocket delete's timeout, and that delete's answer arrives meanwhile: when
    -- the worker comes back, nginx expires the read timer before epoll reports the socket. The
    -- 204 waiting there was thrown away: the delete, carried out, read as a timeout.
    -- A batch that stops while a delete is in flight lets it finish, but does not send it again:
    -- its kept-alive connection dying unanswered after the stop went out again on a new one,
    -- and the bandwidth was deleted after the caller said stop (as the libcurl transport did).
    it("sends nothing again in a batch's light threads after the batch stopped", function()
      assert.equal(200, request("POST", "/t/shared_client/stopping", cjson.encode{ endpoint = emu.url,
        project_id = emu.project_id, token = emu.token, metadata_url = false, timeout = 5,
        max_attempts = 1 }).status)
      -- The first id goes alone; then the second (on the first's connection, which dies 1 s
      -- later without an answer) and the third, answered at 0.3 s; the stop comes at 0.6 s.
      local ids = { shared_bandwidth(), shared_bandwidth(), shared_bandwidth() }
      emu:inject{ method = "DELETE", path = emu:delete_path(ids[2]), action = "drop", delay = 1 }
      emu:inject{ method = "DELETE", path = emu:delete_path(ids[3]), action = "slow", delay = 0.3 }
      emu:reset_counters()
      local out = request("POST", "/t/shared_batch/stopping", cjson.encode{ ids = ids, concurrency = 2,
        answer = "stop", after = 0.6 }, 30).json
      assert.same({ true, "cancelled" }, { out.ok, out.summary.stopped }, cjson.encode(out))
      assert.equal(3, fixture.count_requests(emu, "DELETE"), "the dropped DELETE was not sent again")
      assert.is_table(emu:get_bandwidth(ids[2]))
      assert.same({ "ok", "transport", "ok" }, { out.results[1].kind, out.results[2].kind, out.results[3].kind },
        cjson.encode(out))
    end)

    it("takes an answer that arrived while another request's log phase blocked the worker", function()
      for name, timeout in pairs{ late = 2, blocking = 3 } do
        assert.equal(200, request("POST", "/t/shared_client/" .. name, cjson.encode{ endpoint = emu.url,
          project_id = emu.project_id, token = emu.token, metadata_url = false, timeout = timeout,
          max_attempts = 1 }).status)
      end
      local a, b = emu:create_bandwidth{ size = 10, share_type = "WHOLE" },
        emu:create_bandwidth{ size = 10, share_type = "WHOLE" }
      emu:inject{ method = "DELETE", path = emu:delete_path(a), action = "slow", delay = 0.3 }
      emu:inject{ method = "DELETE", path = emu:delete_path(b), action = "hang" }
      emu:reset_counters()
      local t0 = socket.gettime()
      local sock = start_request("GET", "/t/shared/late/" .. a)
      api_saw(1, 10, "the first delete was not sent")
      -- B's log phase blocks the worker 3 s from before A's answer (0.3 s) to after A's timeout (2 s).
      assert.equal(200, request("GET", "/t/shared_log/blocking/" .. b, nil, 15).status)
      local out = json_of(collect({ sock }, t0 + 30)[sock].text)
      assert.is_true(socket.gettime() - t0 >= 2.5, "the worker was not blocked past A's timeout: nothing tested")
      assert.same({ true, 204 }, { out.ok, out.status }, cjson.encode(out))
      assert.is_nil(emu:get_bandwidth(a))
      local logged = request("GET", "/t/outcome/" .. b).json
      assert.same({ false, "log", "transport", "timeout" }, { logged.ok, logged.phase, logged.error.kind,
        logged.error.reason }, cjson.encode(logged))
    end)

    -- A light thread that ends while the batch's coroutine waits for something else (here a call
    -- its on_result makes; an IAM token renewed does the same) resumed that wait with its result:
    -- the result was lost and the batch waited for it for ever (lua-nginx-module #1439).
    it("runs a batch whose on_result makes a call while its requests are in flight", function()
      local ids = emu:create_bandwidths(20)
      emu:inject{ method = "DELETE", action = "slow", delay = 0.1, times = -1 }
      emu:inject{ method = "GET", action = "slow", delay = 0.15, times = -1 }
      emu:reset_counters()
      local sock = start_request("POST", "/t/batch", cjson.encode{ ids = ids, concurrency = 4, call_on_result = true })
      local result = collect({ sock }, socket.gettime() + 30)[sock]
      local body = assert(cjson.decode(assert(result.text, "no answer in 30 s"):match("\r\n\r\n(.*)$")))
      assert.equal(20, body.summary.deleted, result.text)
      for _, id in ipairs(ids) do assert.is_nil(emu:get_bandwidth(id)) end
    end)

    it("runs delete_bandwidths as light threads: 20 deletes of 2 s at concurrency 10", function()
      local n, delay = 20, 2
      emu:inject{ method = "DELETE", status = 204, delay = delay, times = n }
      emu:reset_counters()
      local ids = {}
      for i = 1, n do ids[i] = "bw-" .. i end
      ids[n + 1] = "../bad" -- a usage error for that entry, nothing sent for it
      local sock = start_request("POST", "/t/batch", cjson.encode{ ids = ids, concurrency = 10 })
      api_saw(1, 10, "the batch sent nothing") -- its first delete is waiting on the API
      local p0 = socket.gettime()
      local ping = assert(emulator.http{ port = app.port, path = "/ping", timeout = 10 })
      local ping_took = socket.gettime() - p0
      local result = collect({ sock }, socket.gettime() + 60)[sock]
      local body = cjson.decode(result.text:match("\r\n\r\n(.*)$"))
      print(string.format("\nopenresty: delete_bandwidths of %d (API delay %.0f ms each, concurrency 10) "
        .. "took %.3f s; /ping answered in %.1f ms meanwhile", n, delay * 1000, body.took, ping_took * 1000))
      assert.equal(200, ping.status)
      assert.equal(n, body.summary.deleted)
      assert.equal(1, body.summary.failed)
      assert.equal("usage", body.statuses[n + 1])
      assert.equal(n, emu:stats().requests)
      assert.is_true(emu:stats().connections <= 10)
      -- 3 delays at concurrency 10 (the first delete goes alone); one at a time would take 20
      assert.is_true(body.took < 6 * delay, "the batch took " .. body.took .. " s: it did not run concurrently")
      assert.is_true(ping_took < delay / 2, "/ping took " .. ping_took .. " s: the worker blocked")
    end)

    -- An abort while a light thread's request was still in its TLS handshake (a server that
    -- takes connections and never answers it): nothing was sent, as the C multi says of its own.
    -- The threads could not tell: every aborted request read as in flight, may have acted.
    it("a batch aborted before its request went out says nothing was sent", function()
      local silent = assert(socket.bind("127.0.0.1", 0)) -- (the kernel completes the connects)
      local _, port = silent:getsockname()
      local resp = request("POST", "/t/batch_abort", cjson.encode{ endpoint = "https://127.0.0.1:" .. port,
        token = emu.token, project_id = emu.project_id, ids = { "bw-1", "bw-2" }, abort_after = 0.5 }, 20)
      silent:close()
      assert.equal(200, resp.status, resp.body)
      local body = resp.json
      assert.equal("aborted", body.summary.stopped, resp.body)
      -- (the first id goes alone: the second was never started)
      assert.same({ kind = "interrupted", cancelled = true, not_sent = true, could_have_acted = false, attempts = 0 },
        body.results[1], resp.body)
      assert.same({ 2, 0 }, { body.summary.not_sent, body.summary.failed }, resp.body)
    end)

    -- In the content phase but inside a frame that cannot yield (a string.gsub callback; so a
    -- dofile, a require): a batch spawned light threads there and nginx's Lua VM panicked, a wait
    -- for the rate raised a raw "attempt to yield across C-call boundary", and a cosocket that
    -- failed to yield there (a delete, an IAM login) left the request such that its next wait on
    -- a semaphore crashed the worker. There every request now goes over libcurl, as in the
    -- phases without cosockets, and a wait is the system's.
    it("calls from a frame that cannot yield go over libcurl: no crash, no raw error", function()
      for _, iam in ipairs{ false, true } do
        local ids = emu:create_bandwidths(6)
        local resp = request("POST", "/t/unyieldable", cjson.encode{ endpoint = emu.url,
          token = not iam and emu.token or nil, project_id = emu.project_id, auth = iam and emu:iam_auth() or nil,
          ids = { ids[1], ids[2] }, single = ids[3], first = ids[4], after = { ids[5], ids[6] } }, 20)
        assert.equal(200, resp.status, resp.body .. app:log_tail(40))
        assert.same({ first = 204, batch = { deleted = 2, failed = 0 }, singles = { 204, 404 },
          after = { deleted = 2, failed = 0 } }, resp.json, resp.body)
        assert.equal(200, request("GET", "/ping").status)
      end
    end)

    -- Two batches and six single calls of one AK/SK client at once, the key refused from a
    -- moment on (X-Sdk-Date an hour off): every request in flight is refused then, and five
    -- refused in a row would lock the key. The client keeps at most four signed ones in flight
    -- whoever sends them, and signs nothing more after three refused: at most four refused.
    it("keeps an AK/SK key unlocked when two batches and single calls share a client", function()
      local ids = emu:create_bandwidths(46)
      emu:set_knobs{ aksk_lock_after = 5 }
      emu:inject{ method = "DELETE", action = "slow", delay = 0.3, times = -1 } -- then checked and carried out
      emu:reset_counters()
      local a, b, singles = {}, {}, {}
      for i = 1, 20 do a[i], b[i] = ids[i], ids[20 + i] end
      for i = 1, 6 do singles[i] = ids[40 + i] end
      local sock = start_request("POST", "/t/signed_load", cjson.encode{ endpoint = emu.url,
        project_id = emu.project_id, ak = emu.ak, sk = emu.sk, batches = { a, b }, singles = singles })
      api_saw(3, 10, "nothing was sent")
      emu:set_clock_offset(3600)
      local result = collect({ sock }, socket.gettime() + 60)[sock]
      emu:set_clock_offset(0)
      local body = assert(cjson.decode(result.text:match("\r\n\r\n(.*)$")), result.text)
      local stats = emu:stats()
      assert.is_true(stats.auth_failures >= 1, "the key was never refused: the case tested nothing")
      assert.is_true(stats.auth_failures <= 4, "refused signatures: " .. stats.auth_failures)
      assert.equal(0, stats.aksk_locks)
      assert.same({ "auth", "auth" }, { body.summaries[1].stopped, body.summaries[2].stopped })
    end)

    -- A batch takes each place it frees again for its next id: a call beside it (no deadline)
    -- waits at most its timeout for one, then ends not sent (it waited until the batch ended).
    it("has an AK/SK call beside a batch holding every place end not sent within its timeout", function()
      local ids = emu:create_bandwidths(41)
      emu:inject{ method = "DELETE", action = "slow", delay = 0.3, times = -1 }
      emu:reset_counters()
      local batch = {}
      for i = 1, 40 do batch[i] = ids[i] end
      local sock = start_request("POST", "/t/signed_load", cjson.encode{ endpoint = emu.url,
        project_id = emu.project_id, ak = emu.ak, sk = emu.sk, timeout = 1, batches = { batch },
        singles = { ids[41] }, single_after = 0.5 })
      local result = collect({ sock }, socket.gettime() + 30)[sock]
      local body = assert(cjson.decode(result.text:match("\r\n\r\n(.*)$")), result.text)
      assert.equal(40, body.summaries[1].deleted)
      local single = body.singles[1]
      assert.is_table(single, "the single call was sent once the batch ended")
      assert.is_true(single.not_sent)
      assert.matches("no place came free within its timeout %(1 s%) while this client had 4 signed", single.message)
      assert.is_true(single.ended < 2.5, "ended after " .. single.ended .. " s")
      assert.is_not_nil(emu:get_bandwidth(ids[41]))
    end)

    -- Six calls at once, the API slow: four go, two wait for a place, and their deadline passes
    -- first: not sent, saying why.
    it("has AK/SK calls that wait for a place end not sent when their deadline passes", function()
      local ids = emu:create_bandwidths(6)
      emu:inject{ method = "DELETE", action = "slow", delay = 2, times = -1 }
      emu:reset_counters()
      local sock = start_request("POST", "/t/signed_load", cjson.encode{ endpoint = emu.url,
        project_id = emu.project_id, ak = emu.ak, sk = emu.sk, deadline = 0.5, singles = ids })
      local result = collect({ sock }, socket.gettime() + 30)[sock]
      local body = assert(cjson.decode(result.text:match("\r\n\r\n(.*)$")), result.text)
      local waited, timed_out = 0, 0
      for _, r in ipairs(body.singles) do
        if r.not_sent then
          waited = waited + 1
          assert.matches("deadline %(0%.5 s%) passed while this client had 4 signed requests in flight", r.message)
        else
          assert.same({ "transport", "timeout" }, { r.kind, r.reason })
          timed_out = timed_out + 1
        end
      end
      assert.same({ 2, 4 }, { waited, timed_out })
      local deletes = 0
      for _, r in ipairs(emu:requests()) do
        if r.method == "DELETE" then deletes = deletes + 1 end
      end
      assert.equal(4, deletes)
    end)

    -- One IAM client serving many requests at once: while one of them fetches the token, the
    -- others wait for it (a wrong password: one login), each within its own bounds, wherever
    -- they run and however the request that fetches ends.
    describe("a token one request is fetching", function()
      local function shared_client(name, options)
        options.endpoint, options.metadata_url = emu.url, false
        assert.equal(200, request("POST", "/t/shared_client/" .. name, cjson.encode(options)).status)
      end

      local function token_requests()
        local n = 0
        for _, r in ipairs(emu:requests()) do
          if r.method == "POST" and r.uri:find("^/v3/auth/tokens") then n = n + 1 end
        end
        return n
      end

      local function slow_iam(delay)
        emu:inject{ method = "POST", path = "^/v3/auth/tokens", action = "slow", delay = delay }
      end

      -- No cosockets in log_by_lua: a wait there was an OS sleep that blocked the worker, and
      -- with it the request fetching the token, until the wait gave up (60 s).
      it("is not waited for in log_by_lua, which asks on its own (blocking, as calls there do)", function()
        shared_client("log", { auth = emu:iam_auth(), timeout = 5, max_attempts = 1 })
        local ids = { shared_bandwidth(), shared_bandwidth() }
        slow_iam(1.5)
        local t0 = socket.gettime()
        local fetching = start_request("GET", "/t/shared/log/" .. ids[1])
        local deadline = socket.gettime() + 10
        while token_requests() < 1 do -- until its token request is under way (IAM answers in 1.5 s)
          assert(socket.gettime() < deadline, "no token request")
          socket.sleep(0.01)
        end
        assert.equal(200, request("GET", "/t/shared_log/log/" .. ids[2]).status) -- then its log phase
        local ping = request("GET", "/ping", nil, 15) -- the worker is free once that log phase ended
        local ping_at = socket.gettime() - t0
        local a = collect({ fetching }, t0 + 30)[fetching]
        assert.equal(200, ping.status)
        assert.is_true(ping_at < 10, "/ping answered after " .. ping_at .. " s: the worker was blocked")
        local first = json_of(a.text)
        assert.is_true(first.ok, cjson.encode(first))
        assert.is_true(a.done_at - t0 < 10, "the fetching request took " .. (a.done_at - t0) .. " s")
        local logged = request("GET", "/t/outcome/" .. ids[2]).json
        assert.same({ true, "log", 204 }, { logged.ok, logged.phase, logged.status }, cjson.encode(logged))
        assert.equal(2, token_requests(), "the log phase's own login, and the fetching request's")
        assert.is_nil(emu:get_bandwidth(ids[1]))
        assert.is_nil(emu:get_bandwidth(ids[2]))
      end)

      -- The shared client `name` logging in with IAM, whose login takes 6 s, and n bandwidths:
      -- the ids, and the login's delay.
      local function logging_in_slowly(name, n)
        shared_client(name, { auth = emu:iam_auth(), project_id = emu.project_id, timeout = 10, max_attempts = 1 })
        local ids = {}
        for i = 1, n do ids[i] = shared_bandwidth() end
        slow_iam(6)
        return ids, 6
      end

      -- A batch's cancel is asked while the client logs in (the login runs in a timer, for every
      -- call): an abort ends the batch at once, nothing sent, and the login goes on for the call
      -- waiting beside it, which gets its token. The batch waited for the whole login, then sent
      -- a delete after the abort.
      it("is not waited for by a batch whose cancel aborts: nothing sent, the login kept for the others", function()
        local ids, delay = logging_in_slowly("abort", 7)
        local t0 = socket.gettime()
        local batch = start_request("POST", "/t/shared_batch/abort", cjson.encode{ ids = { ids[1], ids[2], ids[3],
          ids[4], ids[5], ids[6] }, concurrency = 4, answer = "abort", after = 0.5 })
        while token_requests() < 1 do
          assert(socket.gettime() < t0 + 10, "no login was sent")
          socket.sleep(0.02)
        end
        local single = start_request("GET", "/t/shared/abort/" .. ids[7])
        local results = collect({ batch, single }, t0 + 30)
        local out = json_of(results[batch].text)
        assert.same({ true, "aborted", 0, 6 }, { out.ok, out.summary.stopped, out.summary.deleted,
          out.summary.not_sent }, cjson.encode(out))
        for i, r in ipairs(out.results) do
          assert.same({ "not_sent", "aborted" }, { r.kind, r.stopped }, "entry " .. i)
        end
        -- (a generous bound: the login alone takes `delay`)
        assert.is_true(out.took < delay - 2, "the batch took " .. out.took .. " s: it waited for the login")
        local other = json_of(results[single].text)
        assert.same({ true, 204 }, { other.ok, other.status }, cjson.encode(other))
        assert.equal(1, token_requests(), "one login, its token the waiting call's")
        for _, r in ipairs(emu:requests()) do
          if r.method == "DELETE" then assert.equal("/v2.0/" .. emu.project_id .. "/bandwidths/" .. ids[7], r.uri) end
        end
        for i = 1, 6 do assert.is_not_nil(emu:get_bandwidth(ids[i]), "entry " .. i) end
      end)

      -- The outcome log_by_lua kept under `key`, once there.
      local function logged_outcome(key)
        local deadline = socket.gettime() + 30
        while true do
          local out = request("GET", "/t/outcome/" .. key, nil, 30).json
          if out ~= nil and out ~= cjson.null then return out end
          assert(socket.gettime() < deadline, "no outcome for " .. key)
          socket.sleep(0.05)
        end
      end

      -- In log_by_lua (no cosockets) the batch logs in itself, over libcurl: an abort ends that
      -- login at once (it blocked the worker until IAM answered, and a delete went out after
      -- the abort), and leaves nothing held for the next batch.
      it("is aborted in log_by_lua by a batch's cancel, nothing sent, nothing held", function()
        local ids, delay = logging_in_slowly("log_batch", 6)
        local query = "?ids=" .. table.concat(ids, ",") .. "&concurrency=4"
        assert.equal(200, request("GET", "/t/shared_batch_log/log_batch/aborted" .. query .. "&answer=abort&after=0.5",
          nil, 30).status)
        local out = logged_outcome("aborted")
        assert.same({ true, "log", "aborted", 0, 6 }, { out.ok, out.phase, out.summary.stopped, out.summary.deleted,
          out.summary.not_sent }, cjson.encode(out))
        for i, r in ipairs(out.results) do
          assert.same({ "not_sent", "aborted" }, { r.kind, r.stopped }, "entry " .. i)
        end
        assert.is_true(out.took < delay - 2, "the batch took " .. out.took .. " s: it waited for the login")
        assert.equal(0, fixture.count_requests(emu, "DELETE"))
        -- The next batch logs in (the aborted login left nothing held) and runs 4 at a time.
        assert.equal(200, request("GET", "/t/shared_batch_log/log_batch/next" .. query, nil, 30).status)
        out = logged_outcome("next")
        -- (there too as concurrently as asked: over libcurl's multi handle, not one at a time)
        assert.same({ true, 6, 0, 4 }, { out.ok, out.summary.deleted, out.summary.failed, out.summary.concurrency },
          cjson.encode(out))
        for i = 1, 6 do assert.is_nil(emu:get_bandwidth(ids[i]), "entry " .. i) end
      end)

      -- (Not a token's, a signing place's.) A signed call in log_by_lua, this worker's requests
      -- holding every place: a wait there is the system's sleep, which would stop those requests
      -- until their places expired (their timeout and a second), and their deletes, carried out,
      -- would read as timeouts. It fails at once instead, not sent.
      it("a signed call in log_by_lua with every place held by this worker fails at once, not sent", function()
        shared_client("stuck", { ak = emu.ak, sk = emu.sk, project_id = emu.project_id, timeout = 5,
          max_attempts = 1 })
        local ids = {}
        for i = 1, 5 do ids[i] = shared_bandwidth() end
        emu:inject{ method = "DELETE", action = "slow", delay = 1.5, times = 4 }
        emu:reset_counters()
        local t0 = socket.gettime()
        local socks = {}
        for i = 1, 4 do socks[i] = start_request("GET", "/t/shared/stuck/" .. ids[i]) end
        local deadline = socket.gettime() + 10
        while emu:stats().requests < 4 do -- the four deletes are at the API, each holding a place
          assert(socket.gettime() < deadline, "the four deletes were not sent")
          socket.sleep(0.01)
        end
        assert.equal(200, request("GET", "/t/shared_log/stuck/" .. ids[5]).status)
        local results = collect(socks, t0 + 30)
        for i = 1, 4 do
          local out = json_of(results[socks[i]].text)
          assert.same({ true, 204 }, { out.ok, out.status }, cjson.encode(out))
        end
        local logged = request("GET", "/t/outcome/" .. ids[5]).json
        assert.same({ false, "log", "transport", true }, { logged.ok, logged.phase, logged.error.kind,
          logged.error.not_sent }, cjson.encode(logged))
        assert.matches("where nginx cannot yield", logged.error.text, 1, true)
        assert.is_not_nil(emu:get_bandwidth(ids[5]))
      end)

      -- IAM that does not answer: the fetch runs in a timer, a turn after the calls asked for it,
      -- with their budget; each call gave up just before its timeout came, saying it had waited
      -- for another call in vain, and none said IAM had timed out. Now each says so.
      it("that times out is said to have timed out by every call that waited for it", function()
        shared_client("hang", { auth = emu:iam_auth(), timeout = 1, max_attempts = 1 })
        local ids = { shared_bandwidth(), shared_bandwidth(), shared_bandwidth() }
        emu:inject{ method = "POST", path = "^/v3/auth/tokens", action = "hang" }
        local t0 = socket.gettime()
        local socks = {}
        for i = 1, 3 do socks[i] = start_request("GET", "/t/shared/hang/" .. ids[i]) end
        local results = collect(socks, t0 + 30)
        for i = 1, 3 do
          local out = json_of(results[socks[i]].text)
          assert.same({ false, "transport", "/v3/auth/tokens" }, { out.ok, out.error.kind, out.error.path },
            cjson.encode(out))
          assert.matches("timed out", out.error.text, 1, true)
          assert.not_matches("after waiting", out.error.text)
        end
        assert.equal(1, token_requests())
      end)

      -- Temporary keys one request is fetching (none yet) or renewing: the calls that wait for
      -- them take no signing place meanwhile. Four such calls held all four: the others ended
      -- "no place came free" though nothing was in flight.
      it("temporary keys being fetched or renewed are waited for without holding a signing place", function()
        emu:set_knobs{ metadata_credential_ttl = 4 } -- renewed 2 s after they are fetched
        assert.equal(200, request("POST", "/t/shared_client/meta", cjson.encode{ endpoint = emu.url,
          project_id = emu.project_id, metadata_url = emu.metadata_url, timeout = 2, max_attempts = 1 }).status)
        for round = 1, 2 do
          local ids = {}
          for i = 1, 8 do ids[i] = shared_bandwidth() end
          -- (the first fetch, then a renewal, of 3 s: longer than the calls' timeout)
          emu:inject{ method = "PUT", path = "^/meta%-data/latest/api/token$", action = "slow", delay = 1.5 }
          emu:inject{ method = "GET", path = "^/openstack/latest/securitykey$", action = "slow", delay = 1.5 }
          local t0 = socket.gettime()
          local socks = {}
          for i = 1, 8 do socks[i] = start_request("GET", "/t/shared/meta/" .. ids[i]) end
          local results = collect(socks, t0 + 30)
          for i = 1, 8 do
            local out = json_of(results[socks[i]].text)
            assert.same({ true, 204 }, { out.ok, out.status }, "round " .. round .. ": " .. cjson.encode(out))
          end
          if round == 1 then socket.sleep(math.max(0, t0 + 5.2 - socket.gettime())) end -- renewal due
        end
        assert.equal(2, emu:stats().metadata_credentials_issued)
      end)

      -- The request that needed the token ends (ngx.exit) while its light thread waits for IAM:
      -- the fetch goes on (it runs in a timer), and the next call gets its token.
      it("goes on when the request that needed it ends, and serves the next call", function()
        shared_client("abandon", { auth = emu:iam_auth(), timeout = 5, max_attempts = 1 })
        local ids = { shared_bandwidth(), shared_bandwidth() }
        slow_iam(1)
        assert.equal(504, request("GET", "/t/shared_abandon/abandon/" .. ids[1]).status)
        local t0 = socket.gettime()
        local out = request("GET", "/t/shared/abandon/" .. ids[2], nil, 15).json
        local took = socket.gettime() - t0
        assert.is_true(out.ok, cjson.encode(out))
        assert.is_true(took < 10, "the next call took " .. took .. " s (its timeout: 5 s)")
        assert.equal(1, token_requests(), "one login for both")
        assert.is_nil(emu:get_bandwidth(ids[2]))
      end)

      -- Every timer nginx runs at once is the application's: the fetch's timer is accepted and
      -- never run. Each call waited its whole budget for a login never sent, and failed.
      it("is fetched by the call itself when nginx never runs the fetch's timer", function()
        shared_client("busy", { auth = emu:iam_auth(), timeout = 2, max_attempts = 1 })
        local id = shared_bandwidth()
        local hold = 2.5
        local t0 = socket.gettime()
        local out = request("GET", "/t/shared_busy/busy/" .. id .. "?hold=" .. hold, nil, 15).json
        assert.is_true(out.ok, cjson.encode(out))
        assert.is_true(out.took < 2, "took " .. out.took .. " s")
        assert.equal(1, token_requests())
        assert.is_nil(emu:get_bandwidth(id))
        -- the application's timers end before the next case
        local left = t0 + hold + 0.2 - socket.gettime()
        if left > 0 then socket.sleep(left) end
        assert.equal(1, token_requests(), "the timer nginx did not run fetched nothing later")
      end)

      -- nginx refuses the fetch's timer: the call that needed the token fetches it itself, and a
      -- call that waits for it must not take that fetch for a timer that never began (it sent a
      -- second login: two refused logins towards locking the IAM user).
      it("is waited for when nginx refuses its timer: a wrong password, one login", function()
        shared_client("no_timers", { auth = emu:iam_auth{ password = "not-the-password" }, timeout = 5,
          max_attempts = 1 })
        slow_iam(1.5)
        local t0 = socket.gettime()
        local first = start_request("GET", "/t/shared_no_timers/no_timers/bw-1?hold=3")
        while token_requests() < 1 do
          assert(socket.gettime() < t0 + 10, "no login was sent")
          socket.sleep(0.02)
        end
        local second = start_request("GET", "/t/shared/no_timers/bw-2")
        local results = collect({ first, second }, t0 + 30)
        for _, sock in ipairs{ first, second } do
          local out = json_of(results[sock].text)
          assert.same({ false, "http", 401 }, { out.ok, out.error.kind, out.error.status }, cjson.encode(out))
        end
        assert.equal(1, token_requests())
        -- the pending timers end before the next case
        local left = t0 + 3.2 - socket.gettime()
        if left > 0 then socket.sleep(left) end
      end)

      it("is waited for by the calls of ten requests at once: a wrong password, one login", function()
        -- (a password of its own: the case above's refusal is every client's in the worker)
        shared_client("wrong", { auth = emu:iam_auth{ password = "not-the-password-either" }, timeout = 5,
          max_attempts = 1 })
        slow_iam(0.5)
        local t0 = socket.gettime()
        local socks = {}
        for i = 1, 10 do socks[i] = start_request("GET", "/t/shared/wrong/bw-" .. i) end
        local results = collect(socks, t0 + 30)
        for _, sock in ipairs(socks) do
          local out = json_of(results[sock].text)
          assert.same({ false, true, "http", 401 }, { out.ok, out.is_error, out.error.kind, out.error.status },
            cjson.encode(out))
        end
        assert.equal(1, token_requests())
        for _, r in ipairs(emu:requests()) do assert.are_not.equal("DELETE", r.method) end
      end)
    end)

    -- nginx ends a request (its client hung up, with lua_check_client_abort on; ngx.exit from
    -- another light thread) and its coroutine with it, wherever it is: a delete whose request had
    -- gone out never came back to the pipeline, and its on_response never ran (metrics counted
    -- nothing of a request the API got, and may have carried out). It is reported, "interrupted",
    -- once its time is up (its timeout and a second after it was sent), by the worker's timer:
    -- until then it may be a call of another request of the worker still waiting for its answer.
    describe("an attempt whose request nginx ended", function()
      -- A shared client whose on_response keeps what it is told (/t/responses/<name>).
      local function recording_client(name)
        assert.equal(200, request("POST", "/t/shared_client/" .. name, cjson.encode{ endpoint = emu.url,
          token = emu.token, project_id = emu.project_id, metadata_url = false, timeout = 1, max_attempts = 1,
          record = true }).status)
      end

      local function responses(name)
        return request("GET", "/t/responses/" .. name).json
      end

      local function outcomes(seen)
        local out = {}
        for i, info in ipairs(seen) do out[i] = info.outcome end
        return out
      end

      -- Waits until the API has seen n DELETEs.
      local function deletes_seen(n)
        local deadline = socket.gettime() + 5
        while true do
          local seen = 0
          for _, r in ipairs(emu:requests()) do
            if r.method == "DELETE" then seen = seen + 1 end
          end
          if seen >= n then return end
          assert(socket.gettime() < deadline, "the API saw " .. seen .. " DELETEs, not " .. n)
          socket.sleep(0.01)
        end
      end

      -- One delete of the shared client `name`, answered.
      local function delete_with(name, id)
        local out = request("GET", "/t/shared/" .. name .. "/" .. id).json
        assert.same({ true, 204 }, { out.ok, out.status }, cjson.encode(out))
      end

      local function assert_interrupted(info, id)
        assert.same({ "delete_bandwidth", "DELETE", id, 1, "interrupted", true, false },
          { info.operation, info.method, info.bandwidth_id, info.attempt, info.outcome, info.abandoned, info.retry },
          cjson.encode(info))
        assert.is_nil(info.status)
        assert.is_nil(info.elapsed) -- (not known: metrics' histogram leaves it out)
      end

      it("gets its on_response, interrupted, when the client that asked for it hung up", function()
        recording_client("hangup")
        local ids = { shared_bandwidth(), shared_bandwidth(), shared_bandwidth() }
        emu:inject{ method = "DELETE", path = emu:delete_path(ids[1]), action = "slow", delay = 0.8 }
        local sock = start_request("GET", "/t/shared_hangup/hangup/" .. ids[1])
        deletes_seen(1)
        local sent_at = socket.gettime()
        sock:close() -- (nginx ends the request: 499)
        socket.sleep(0.2)
        -- Not yet: it could still be a call waiting for its answer.
        delete_with("hangup", ids[2])
        assert.same({ "ok" }, outcomes(responses("hangup")))
        -- Once its timeout (1 s) and a second have passed, without waiting for another call.
        socket.sleep(math.max(0, sent_at + 2.2 - socket.gettime()))
        local seen = responses("hangup")
        assert.same({ "ok", "interrupted" }, outcomes(seen))
        assert_interrupted(seen[2], ids[1])
        -- Once.
        delete_with("hangup", ids[3])
        assert.same({ "ok", "interrupted", "ok" }, outcomes(responses("hangup")))
      end)

      it("gets its on_response, interrupted, when another light thread ended the request", function()
        recording_client("exited")
        local ids = { shared_bandwidth(), shared_bandwidth() }
        emu:inject{ method = "DELETE", path = emu:delete_path(ids[1]), action = "slow", delay = 0.8 }
        local t0 = socket.gettime()
        assert.equal(504, request("GET", "/t/shared_abandon/exited/" .. ids[1]).status) -- (ngx.exit after 0.2 s)
        assert.same({}, responses("exited"))
        socket.sleep(math.max(0, t0 + 2.2 - socket.gettime()))
        local seen = responses("exited")
        assert.same({ "interrupted" }, outcomes(seen))
        assert_interrupted(seen[1], ids[1])
        delete_with("exited", ids[2])
        assert.same({ "interrupted", "ok" }, outcomes(responses("exited")))
      end)

      it("gets its on_response, interrupted, for each request of a batch whose client hung up", function()
        recording_client("batch")
        local ids = { shared_bandwidth(), shared_bandwidth(), shared_bandwidth() }
        -- (the batch's first request goes alone: answered, then the two slow ones go together)
        for i = 2, 3 do
          emu:inject{ method = "DELETE", path = emu:delete_path(ids[i]), action = "slow", delay = 0.8 }
        end
        local sock = start_request("POST", "/t/shared_batch_hangup/batch", cjson.encode{ ids = ids, concurrency = 4 })
        deletes_seen(3)
        local sent_at = socket.gettime()
        sock:close()
        socket.sleep(0.5)
        assert.same({ "ok" }, outcomes(responses("batch"))) -- (not yet)
        socket.sleep(math.max(0, sent_at + 2.2 - socket.gettime()))
        local seen = responses("batch")
        assert.same({ "ok", "interrupted", "interrupted" }, outcomes(seen))
        local reported = { seen[2].bandwidth_id, seen[3].bandwidth_id }
        table.sort(reported)
        local expected = { ids[2], ids[3] }
        table.sort(expected)
        assert.same(expected, reported)
        for i = 2, 3 do assert_interrupted(seen[i], seen[i].bandwidth_id) end
      end)
    end)
  end)
end)
