-- Transport failures: no usable answer. Each ends in a "transport" error with libcurl's
-- code and text, within the configured timeout, and the client stays usable.
local eip = require "eip"
local emulator = require "spec.support.emulator"
local socket = require "socket"

describe("transport errors", function()
  local emu, client

  setup(function()
    emu = emulator.start()
  end)

  teardown(function()
    if client then client:close() end
    emu:stop()
  end)

  before_each(function()
    emu:reset()
    if client then client:close() end
    -- Seconds for the calls that must pass (still_usable), little next to a hung server's 120.
    client = eip.new{ endpoint = emu.url, project_id = emu.project_id, token = emu.token,
      timeout = 3, connect_timeout = 3, max_attempts = 1 }
  end)

  local function transport_error(c, id)
    local ok, err = pcall(c.delete_bandwidth, c, id or "bw-1")
    assert.is_false(ok)
    assert.is_true(eip.is_error(err), tostring(err))
    assert.equal("transport", err.kind)
    assert.is_nil(err.status)
    assert.is_number(err.curl_code)
    assert.is_string(err.curl_error)
    assert.equal("DELETE", err.method)
    -- (a request that never went out says so: unsent)
    assert.matches("^eip: DELETE /v2%.0/.* %-> transport error: .*%(curl %d+%)"
      .. (err.unsent and " %[not sent%]$" or "$"), tostring(err))
    return err
  end

  local function still_usable()
    local id = emu:create_bandwidth{ size = 1 }
    assert.equal(204, client:delete_bandwidth(id).status)
  end

  it("reports a refused connection (nothing listens on the port)", function()
    local port = require("spec.support.host").closed_port()
    local c = eip.new{ endpoint = "http://127.0.0.1:" .. port, project_id = emu.project_id, token = emu.token,
      max_attempts = 1 }
    local err = transport_error(c)
    c:close()
    assert.equal(7, err.curl_code)
    assert.equal("connect", err.reason)
    assert.is_true(err.retryable)
    assert.is_true(err.unsent)
  end)

  it("times out when the server never answers, within the timeout", function()
    emu:inject{ method = "DELETE", action = "hang" }
    local t0 = socket.gettime()
    local err = transport_error(client)
    local took = socket.gettime() - t0
    assert.equal(28, err.curl_code)
    assert.equal("timeout", err.reason)
    assert.is_true(err.retryable)
    assert.is_nil(err.unsent, "the server read the request")
    assert.is_true(eip.could_have_acted(err))
    assert.is_true(took < 3 + 3, "took " .. took .. " s (timeout 3 s)")
    still_usable()
  end)

  it("reports a connection closed before any answer", function()
    emu:inject{ method = "DELETE", action = "drop" }
    local err = transport_error(client)
    assert.equal(52, err.curl_code)
    assert.equal("reset", err.reason)
    assert.is_true(err.retryable)
    assert.is_nil(err.unsent)
    still_usable()
  end)

  it("reports a connection closed in the middle of the body", function()
    emu:inject{ method = "DELETE", action = "reset_mid_body", status = 500,
      body = '{"code":"VPC.0302","message":"' .. string.rep("x", 2000) .. '"}' }
    local err = transport_error(client)
    assert.is_true(err.curl_code == 18 or err.curl_code == 56, "curl code " .. err.curl_code)
    assert.equal("reset", err.reason)
    still_usable()
  end)

  -- (a name no DNS server is asked about: a server that dropped the query had it time out)
  it("reports DNS failures as not retryable", function()
    local c = eip.new{ endpoint = "http://" .. require("spec.support.dns").never_asked("no-such-host", "invalid"),
      project_id = emu.project_id, token = emu.token, timeout = 5 }
    local err = transport_error(c)
    c:close()
    assert.equal(6, err.curl_code)
    assert.equal("dns", err.reason)
    assert.is_false(err.retryable)
    assert.is_true(err.unsent)
  end)

  it("verifies TLS certificates by default: a plain-HTTP server on an https URL fails cleanly", function()
    -- Default attempts: a TLS failure must end the call at once (the message names no attempts).
    -- A generous timeout: under valgrind, loading the CA bundle alone can take seconds.
    local c = eip.new{ endpoint = "https://127.0.0.1:" .. emu.port, project_id = emu.project_id,
      token = emu.token, timeout = 30 }
    local err = transport_error(c)
    c:close()
    assert.equal(35, err.curl_code)
    assert.equal("tls", err.reason)
    assert.is_false(err.retryable)
  end)

  it("never shows the token in a transport error", function()
    emu:inject{ method = "DELETE", action = "drop" }
    local err = transport_error(client)
    assert.is_nil(tostring(err):find(emu.token, 1, true))
    for _, v in pairs(err) do
      if type(v) == "string" then assert.is_nil(v:find(emu.token, 1, true)) end
    end
  end)
end)

-- A kept-alive connection that dies after the request went out, the server gone a moment: libcurl
-- connects again to send it again, before the C core hears of the resend, and that connection is
-- refused. The request went out once all the same: it may have acted (it read "never reached the
-- server", and the retry's 404 as "did not exist"); a POST is the contract's 52.
describe("a request whose resend finds the server gone", function()
  local vanishing = require "spec.support.vanishing"
  local ID = "3fa1e2b4-1111-4222-8333-444455556666"

  local function client_of(server, extra)
    local opts = { endpoint = "http://127.0.0.1:" .. server.port, project_id = "p0123", token = "tok-abcdef-123456",
      backoff_base = 0.5 }
    for k, v in pairs(extra or {}) do opts[k] = v end
    return eip.new(opts)
  end

  it("a DELETE: may have acted, and the retry's 404 is its lost answer", function()
    local s = vanishing.start('{"bandwidth":{"id":"' .. ID .. '"}}', 0.3)
    finally(function() s:stop() end)
    local c = client_of(s)
    assert.equal(ID, c:show_bandwidth(ID).id) -- (leaves a kept-alive connection)
    local ok, err = pcall(c.delete_bandwidth, c, ID)
    c:close()
    assert.is_false(ok)
    assert.is_true(eip.could_have_acted(err), tostring(err))
    assert.is_true(err.attempts >= 2, tostring(err)) -- (a retry may find it still gone)
  end)

  it("a POST: 52, not sent again, may have acted", function()
    local s = vanishing.start('{"bandwidth":{"id":"' .. ID .. '"}}', 0.3)
    finally(function() s:stop() end)
    local c = client_of(s)
    assert.equal(ID, c:show_bandwidth(ID).id)
    local ok, err = pcall(c.create_bandwidth, c, { name = "bw", size = 5 })
    c:close()
    assert.is_false(ok)
    assert.same({ "transport", "reset", 52, 1 }, { err.kind, err.reason, err.curl_code, err.attempts }, tostring(err))
    assert.is_true(eip.could_have_acted(err))
  end)
end)

-- ca_file is the whole trust store (the cosocket transport's lua_ssl_trusted_certificate is):
-- libcurl, given CURLOPT_CAINFO alone, still looks a certificate's issuer up in its built-in
-- CA directory (Debian's /etc/ssl/certs), so any public CA would be trusted beside the private
-- one. What the process opens there, seen by strace, is the proof.
describe("ca_file (libcurl)", function()
  local host = require "spec.support.host"
  local tls = require "spec.support.tls"

  it("replaces the system store: no issuer is looked up in the system's CA directory", function()
    assert(host.execute("command -v strace >/dev/null"), "strace is missing: make deps")
    local emu = emulator.start()
    local pki = tls.make_pki()
    local front = tls.start(emu, pki)
    local trace = os.tmpname()
    local script = string.format([[
      local t = require("eip.transport.curl").new{ ca_file = %q }
      local r = t:send{ method = "GET", url = %q, headers = {}, timeout = 5 }
      io.write(tostring(r.curl_code), " ", tostring(r.unsent))]], pki.ca, front.url("untrusted") .. "/x")
    local out = host.run(string.format("LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH=%s strace -f -qq "
      .. "-e trace=open,openat,stat,newfstatat,access -o %s %s -e %s 2>/dev/null",
      host.quote(host.cpath .. ";;"), host.quote(trace), host.lua, host.quote(script)))
    front:stop()
    emu:stop()
    pki:remove()
    local f = assert(io.open(trace))
    local opened = f:read("*a")
    f:close()
    os.remove(trace)
    assert.equal("60 true", out, "the untrusted certificate is refused, before anything is sent")
    assert.truthy(opened:find(pki.ca, 1, true), "the trace shows the ca_file read")
    assert.is_nil(opened:find("/etc/ssl/certs/[%x]+%.%d"), "an issuer was looked up in the system's directory")
  end)
end)

-- eip.transport.new is a caller's building block: its options are checked there, each named
-- (a number as ca_file once reached the C core, whose message named neither the module nor why).
describe("eip.transport.new", function()
  it("refuses options of the wrong type, naming them", function()
    local transport = require "eip.transport"
    for _, case in ipairs{ { 5, "options must be a table" }, { { ca_file = 5 }, "ca_file must be a non-empty string" },
        { { ca_file = "" }, "ca_file must be a non-empty string" },
        { { insecure = "yes" }, "insecure must be true or false" },
        { { user_agent = "a\r\nX: 1" }, "user_agent must be a string without control characters" } } do
      local ok, err = pcall(transport.new, case[1])
      assert.is_false(ok)
      assert.matches("^eip%.transport: " .. case[2]:gsub("%p", "%%%0"), err)
    end
    local t = transport.new{ insecure = false, user_agent = "ua" }
    t:close()
  end)

  -- The concrete transports are made by callers too (the README gives the client
  -- `transport = require("eip.transport.cosocket").new()` under OpenResty): an `insecure` read
  -- from a string ("false", "0") or a number is no explicit opt-out, and once turned
  -- verification off, every request (the token with it) going to any certificate.
  it("concrete transports refuse an insecure that is not a boolean: no opt-out by accident", function()
    for _, name in ipairs{ "curl", "cosocket" } do
      local concrete = require("eip.transport." .. name)
      for _, value in ipairs{ "false", 0, "no", {} } do
        local ok, err = pcall(concrete.new, { insecure = value })
        assert.is_false(ok, name .. ": insecure = " .. tostring(value))
        assert.matches("^eip%.transport%." .. name .. ": insecure must be true or false, got a " .. type(value), err)
      end
      for _, value in ipairs{ true, false } do
        local t = concrete.new{ insecure = value }
        t:close()
      end
      concrete.new{}:close()
      -- Options that are no table: a message naming them, not Lua's "attempt to index".
      for _, value in ipairs{ 5, "insecure", true } do
        local ok, err = pcall(concrete.new, value)
        assert.is_false(ok)
        assert.matches("^eip%.transport%." .. name .. ": options must be a table, got a " .. type(value), err)
      end
    end
  end)
end)
