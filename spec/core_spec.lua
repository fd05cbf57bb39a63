-- eip.core called directly, as only the Lua layer normally does: what a server can make it
-- store (X-Subject-Token, whole up to libcurl's header-line limit) and what it does with
-- numbers no caller should pass (huge, NaN, infinite): a Lua error naming the argument or a
-- documented clamp, never a conversion C leaves undefined. `make check-asan` runs this file
-- against a core built with UBSan (float-cast-overflow included).
local core = require "eip.core"
local emulator = require "spec.support.emulator"

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
    return (s or session):request{ method = "DELETE", url = url .. "bw-1", headers = auth }
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
    m:start{ method = "DELETE", url = url .. "bw-9", headers = auth }
    local _, resp = m:next(5)
    assert.equal(404, resp.status)
    assert.is_nil(resp.subject_token)
    m:close()
  end)
end)
