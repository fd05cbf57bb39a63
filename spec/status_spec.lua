-- The status map: every code in the four seed documents maps as documented, over the wire
-- and through eip.status(); codes in no table get a class-based entry.
local eip = require "eip"
local fixture = require "spec.support.fixture"

-- The union of the seeds' tables, written out here independently of the C table.
local SEED_CODES = {
  ["000"] = { 204, 400, 401, 403, 404, 405, 406, 407, 408, 409, 500, 501, 502, 503, 504 },
  ["001"] = { 100, 101, 200, 201, 202, 203, 204, 205, 206, 300, 301, 302, 303, 304, 305, 306,
              400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415,
              416, 417, 422, 429, 500, 501, 502, 503, 504, 505 },
  ["003"] = { 200, 201, 204, 400, 401, 403, 404, 405, 406, 407, 408, 409, 500, 501, 502, 503, 504 },
  ["004"] = { 200, 201, 202, 204, 400, 401, 403, 404, 405, 406, 407, 408, 409, 413, 415,
              500, 501, 502, 503, 504 },
}

local REASONS = {
  [100] = "Continue", [101] = "Switching Protocols", [200] = "OK", [201] = "Created",
  [202] = "Accepted", [203] = "Non-Authoritative Information", [204] = "No Content",
  [205] = "Reset Content", [206] = "Partial Content", [300] = "Multiple Choices",
  [301] = "Moved Permanently", [302] = "Found", [303] = "See Other", [304] = "Not Modified",
  [305] = "Use Proxy", [400] = "Bad Request", [401] = "Unauthorized",
  [402] = "Payment Required", [403] = "Forbidden", [404] = "Not Found",
  [405] = "Method Not Allowed", [406] = "Not Acceptable", [407] = "Proxy Authentication Required",
  [408] = "Request Timeout", [409] = "Conflict", [410] = "Gone", [411] = "Length Required",
  [412] = "Precondition Failed", [416] = "Range Not Satisfiable", [417] = "Expectation Failed",
  [422] = "Unprocessable Content", [429] = "Too Many Requests", [500] = "Internal Server Error",
  [501] = "Not Implemented", [502] = "Bad Gateway", [503] = "Service Unavailable",
  [504] = "Gateway Timeout", [505] = "HTTP Version Not Supported",
}

local RETRYABLE = { [408] = true, [429] = true, [500] = true, [502] = true, [503] = true, [504] = true }
local CLASSES = { "informational", "success", "redirect", "client_error", "server_error" }

local all, seeds_of = {}, {}
for seed, codes in pairs(SEED_CODES) do
  for _, code in ipairs(codes) do
    if not seeds_of[code] then all[#all + 1] = code; seeds_of[code] = {} end
    seeds_of[code][#seeds_of[code] + 1] = seed
  end
end
table.sort(all)

describe("eip.status", function()
  it("covers the union of the seeds: 100-101, 200-206, 300-306, 400-417, 422, 429, 500-505", function()
    assert.equal(42, #all)
    assert.equal(#all, #eip.statuses())
    for i, s in ipairs(eip.statuses()) do assert.equal(all[i], s.code) end
  end)

  for _, code in ipairs(all) do
    it(string.format("maps %d as documented", code), function()
      local s = eip.status(code)
      assert.equal(code, s.code)
      if REASONS[code] then assert.equal(REASONS[code], s.reason) end
      assert.equal(CLASSES[math.floor(code / 100)], s.class)
      assert.equal(RETRYABLE[code] == true, s.retryable)
      assert.is_true(s.documented)
      assert.is_true(#s.description > 0)
      assert.is_true(#s.description_zh > 0)
      assert.is_true(#s.advice > 0)
      table.sort(seeds_of[code])
      assert.equal(table.concat(seeds_of[code], ","), s.seeds)
    end)
  end

  it("follows the EIP documents where seeds disagree: 503 is retryable", function()
    local s = eip.status(503)
    assert.is_true(s.retryable)
    assert.matches("000", s.seeds)
    assert.matches("001", s.seeds)
  end)

  it("keeps the seeds' own names where they differ from the standard phrase", function()
    assert.equal("ServerTimeout", eip.status(504).seed_name)
    assert.equal("overLimit", eip.status(413).seed_name)
    assert.equal("badMediaType", eip.status(415).seed_name)
  end)

  it("gives codes in no table a class-based entry", function()
    local cases = {
      { 418, "client_error", false }, { 451, "client_error", false }, { 299, "success", false },
      { 399, "redirect", false }, { 199, "informational", false },
      { 520, "server_error", true }, { 599, "server_error", true },
      { 600, "unknown", false }, { 99, "unknown", false }, { 0, "unknown", false }, { -1, "unknown", false },
    }
    for _, c in ipairs(cases) do
      local s = eip.status(c[1])
      assert.equal(c[1], s.code)
      assert.equal(c[2], s.class, "class of " .. c[1])
      assert.equal(c[3], s.retryable, "retryable of " .. c[1])
      assert.is_false(s.documented)
      assert.equal("", s.seeds)
      assert.is_true(#s.reason > 0 and #s.advice > 0 and #s.description > 0)
    end
  end)

  it("accepts integral floats and rejects non-numbers with a usage error", function()
    assert.equal(404, eip.status(404.0).code)
    for _, bad in ipairs{ "404", 404.5, {}, true } do
      local ok, err = pcall(eip.status, bad)
      assert.is_false(ok)
      assert.equal("usage", err.kind)
      assert.equal("code", err.argument)
    end
  end)
end)

describe("eip.status of a number that is no status", function()
  -- math.huge was "got nil" (math.tointeger(inf) is nil), 2^31 an entry of code -1 (the C
  -- core asks for anything beyond +-1e6 as -1): each is a usage error showing the number.
  local cases = {
    { math.huge, "got inf$" }, { -math.huge, "got %-inf$" }, { 0 / 0, "got nan$" },
    { 2 ^ 31, "got 2147483648$" }, { -2 ^ 31, "got %-2147483648$" }, { 1e20, "got 1e%+20$" },
    { 404.5, "got 404%.5$" }, { 1000001, "got 1000001$" }, { -1000001, "got %-1000001$" },
  }
  if math.maxinteger then -- luacheck: ignore 143 (Lua 5.3+)
    cases[#cases + 1] = { math.maxinteger, "got 9223372036854775807$" } -- luacheck: ignore 143
    cases[#cases + 1] = { math.mininteger, "got %-9223372036854775808$" } -- luacheck: ignore 143
  end
  for _, c in ipairs(cases) do
    it("raises a usage error for " .. tostring(c[1]), function()
      local ok, err = pcall(eip.status, c[1])
      assert.is_false(ok)
      assert.equal("usage", err.kind)
      assert.equal("code", err.argument)
      assert.matches("^code must be an integer HTTP status %(%-1000000%.%.1000000%), " .. c[2], err.message)
    end)
  end

  it("answers for every code up to the bounds with the code asked for", function()
    for _, code in ipairs{ 1000000, -1000000, 1e6, 999, 0 } do
      local s = eip.status(code)
      assert.equal(code, s.code)
      assert.equal("unknown", s.class)
    end
  end)
end)

describe("every seed status over the wire", function()
  local fx = fixture.emulator()
  local emu, client

  setup(function()
    emu = fx.start()
    client = fx.client{ max_attempts = 1 }
  end)
  teardown(fx.stop)

  -- 1xx cannot be a final answer over HTTP/1.1 (libcurl waits for the real one), so the
  -- informational codes are covered through eip.status() above only.
  for _, code in ipairs(all) do
    if code >= 200 then
      it(string.format("a %d answer maps to the table entry", code), function()
        local no_body = code == 204 or code == 205 or code == 304
        emu:inject{ method = "DELETE", status = code,
          body = no_body and "" or '{"code":"VPC.9999","message":"injected ' .. code .. '"}' }
        local ok, res = pcall(client.delete_bandwidth, client, "bw-status")
        local s = eip.status(code)
        if code == 204 then
          assert.is_true(ok, tostring(res))
          assert.equal(code, res.status)
          assert.equal(s.reason, res.reason)
        elseif code < 300 then -- a delete is done only on 204: another 2xx is unusable
          assert.is_false(ok)
          assert.equal("http", res.kind)
          assert.equal(code, res.status)
          assert.equal("Unusable Answer", res.reason)
          assert.is_false(res.retryable)
          assert.matches(code .. " " .. s.reason .. " does not say the bandwidth was deleted", res.message, 1, true)
        else
          assert.is_false(ok)
          assert.equal("http", res.kind)
          assert.equal(code, res.status)
          assert.equal(s.reason, res.reason)
          assert.equal(s.class, res.class)
          assert.equal(s.retryable, res.retryable)
          assert.equal(s.description, res.description)
          if code == 404 then -- VPC.9999 is not the service's "no such bandwidth" (VPC.0306)
            assert.matches("^Not a missing bandwidth: the answer carries VPC.9999", res.advice)
          else
            assert.equal(s.advice, res.advice)
          end
          if not no_body then
            assert.equal("VPC.9999", res.code)
            assert.equal("injected " .. code, res.message)
          end
        end
      end)
    end
  end
end)
