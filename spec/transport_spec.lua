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
    assert.matches("^eip: DELETE /v2%.0/.* %-> transport error: .*%(curl %d+%)$", tostring(err))
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
  end)

  it("times out when the server never answers, within the timeout", function()
    emu:inject{ method = "DELETE", action = "hang" }
    local t0 = socket.gettime()
    local err = transport_error(client)
    local took = socket.gettime() - t0
    assert.equal(28, err.curl_code)
    assert.equal("timeout", err.reason)
    assert.is_true(err.retryable)
    assert.is_true(took < 3 + 3, "took " .. took .. " s (timeout 3 s)")
    still_usable()
  end)

  it("reports a connection closed before any answer", function()
    emu:inject{ method = "DELETE", action = "drop" }
    local err = transport_error(client)
    assert.equal(52, err.curl_code)
    assert.equal("reset", err.reason)
    assert.is_true(err.retryable)
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

  it("reports DNS failures as not retryable", function()
    local c = eip.new{ endpoint = "http://no-such-host.invalid", project_id = emu.project_id,
      token = emu.token, timeout = 5 }
    local err = transport_error(c)
    c:close()
    assert.equal(6, err.curl_code)
    assert.equal("dns", err.reason)
    assert.is_false(err.retryable)
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
