-- eip.sign reproduces every signing vector byte for byte: the exact Authorization the official
-- Huawei Cloud SDK signer computes (spec/fixtures/aksk-vectors.json, see spec/support/vectors.lua).
local eip = require "eip"
local raised = require("spec.support.assertions").raised
local vectors = require("spec.support.vectors").all_aksk()

describe("eip.sign", function()
  it("has vectors to check", function()
    assert.is_true(#vectors >= 5)
  end)

  for _, v in ipairs(vectors) do
    it("reproduces the SDK's Authorization for " .. v.name, function()
      local auth, canonical = eip.sign{
        method = v.method, url = v.url, headers = v.headers, query = v.query,
        body = v.body, ak = v.ak, sk = v.sk,
      }
      assert.equal(v.expected_authorization, auth)
      assert.is_string(canonical)
      assert.is_nil(canonical:find(v.sk, 1, true))
      assert.equal(v.method, canonical:match("^[^\n]+"))
    end)
  end

  it("takes the query from the URL as well as from the query table", function()
    local v = vectors[3]
    assert.is_table(v.query)
    local url = v.url .. "?limit=" .. v.query.limit .. "&marker=" .. v.query.marker
    local auth = eip.sign{ method = v.method, url = url, headers = v.headers, ak = v.ak, sk = v.sk }
    assert.equal(v.expected_authorization, auth)
  end)

  it("signs the Host with its port exactly as it is sent", function()
    local v = vectors[2]
    assert.matches(":8080/", v.url)
    local h = {}
    for k, val in pairs(v.headers) do h[k] = val end
    h.Host = "127.0.0.1" -- without the port: a different signature
    local auth = eip.sign{ method = v.method, url = v.url, headers = h, ak = v.ak, sk = v.sk }
    assert.are_not.equal(v.expected_authorization, auth)
  end)

  -- curl and Python send no default port in Host: signed with it, their request was refused.
  it("signs a URL's default port as clients send it, without it; refuses a path with an encoded slash", function()
    local v = vectors[1]
    local function sign(url, host)
      local h = {}
      for k, val in pairs(v.headers) do h[k] = val end
      h.Host = host
      return eip.sign{ method = "GET", url = url, headers = h, ak = v.ak, sk = v.sk }
    end
    assert.equal(sign("https://vpc.example.com/v1/p"), sign("https://vpc.example.com:443/v1/p"))
    assert.equal(sign("http://vpc.example.com/v1/p"), sign("http://vpc.example.com:80/v1/p"))
    assert.are_not.equal(sign("https://vpc.example.com/v1/p"), sign("https://vpc.example.com:80/v1/p"))
    assert.are_not.equal(sign("https://vpc.example.com/v1/p"),
      sign("https://vpc.example.com/v1/p", "vpc.example.com:443"))
    for _, url in ipairs{ "https://vpc.example.com/v1/p/a%2Fb", "https://vpc.example.com/v1/p/a%2fb" } do
      local ok, err = pcall(sign, url)
      assert.is_false(ok)
      assert.same({ "usage", "url" }, { err.kind, err.argument })
    end
  end)

  -- The official signers sort the query as it is (decoded), then encode it: `a{` after `aa`,
  -- though `a%7B` sorts before. The emulator's verifier sorted the encoded pairs, and refused
  -- what the SDKs (and eip.sign) signed.
  it("sorts the query as the official signers do, and the emulator's verifier agrees", function()
    local v = vectors[1]
    local emu = require("spec.support.emulator").start()
    local url = emu.url .. "/v1/p?aa=1&a%7B=2&k=%7B&k=x"
    local auth, canonical = eip.sign{ method = "GET", url = url, headers = v.headers, ak = v.ak, sk = v.sk }
    local verified = emu:verify{ method = "GET", url = url, headers = v.headers, ak = v.ak, sk = v.sk }
    emu:stop()
    assert.equal("aa=1&a%7B=2&k=x&k=%7B", canonical:match("^[^\n]*\n[^\n]*\n([^\n]*)\n"))
    assert.equal(canonical, verified.canonical)
    assert.equal(auth, verified.authorization)
  end)

  -- The official signers sign a declared X-Sdk-Content-Sha256 as it is, not just UNSIGNED-PAYLOAD:
  -- eip.sign hashed the body instead, a signature the gateway refuses.
  it("signs a declared X-Sdk-Content-Sha256 for the body's hash, and the emulator's verifier agrees", function()
    local v = vectors[1]
    local declared = ("0123456789abcdef"):rep(4)
    local emu = require("spec.support.emulator").start()
    local function sign(value, body)
      local h = { ["X-Sdk-Content-Sha256"] = value }
      for k, val in pairs(v.headers) do h[k] = val end
      local opts = { method = "POST", url = emu.url .. "/v1/p", headers = h, body = body, ak = v.ak, sk = v.sk }
      local auth, canonical = eip.sign(opts)
      local verified = emu:verify(opts)
      assert.equal(canonical, verified.canonical)
      assert.equal(auth, verified.authorization)
      return canonical:match("[^\n]*$")
    end
    local ok, why = pcall(function()
      assert.equal(declared, sign(" " .. declared .. "\t", "{}")) -- trimmed, as the header is signed
      assert.equal(declared, sign(declared, nil)) -- without a body too, as the Go and Node.js SDKs
      assert.equal("UNSIGNED-PAYLOAD", sign("UNSIGNED-PAYLOAD", nil))
      -- an empty value declares nothing: the body is hashed
      assert.equal("44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", sign(" ", "{}"))
    end)
    emu:stop()
    assert(ok, why)
  end)

  -- The Go SDK signs (and sends) a path's raw bytes, UTF-8 or not; the Python SDK's signer reads
  -- them as UTF-8 with U+FFFD for the rest (README, Signing on its own): raw is what is sent.
  it("signs a path escape as the byte it stands for, UTF-8 or not, as the emulator's verifier does", function()
    local v = vectors[1]
    local emu = require("spec.support.emulator").start()
    local opts = { method = "GET", url = emu.url .. "/v1/%7e%c3%a9%ff/x", headers = v.headers, ak = v.ak, sk = v.sk }
    local auth, canonical = eip.sign(opts)
    local verified = emu:verify(opts)
    emu:stop()
    assert.equal("/v1/~%C3%A9%FF/x/", canonical:match("^[^\n]*\n([^\n]*)"))
    assert.equal(canonical, verified.canonical)
    assert.equal(auth, verified.authorization)
  end)

  -- tostring wrote 10.0 as "10.0" on Lua 5.3+ and "10" on 5.1 and LuaJIT: the same call signed
  -- differently by version, a 401 (one of five that lock the key) for the one its HTTP client
  -- did not spell alike.
  it("never quotes the SK or a security token put in the wrong place", function()
    local v = vectors[1]
    local token = "temporary-security-token-0123456789"
    local function headers()
      local h = { ["X-Security-Token"] = token }
      for k, val in pairs(v.headers) do h[k] = val end
      return h
    end
    local cases = {
      { method = v.sk, url = v.url, headers = headers(), ak = v.ak, sk = v.sk },
      { method = token, url = v.url, headers = headers(), ak = v.ak, sk = v.sk },
      { method = v.method, url = v.url, headers = headers(), ak = v.ak, sk = v.sk, [v.sk] = 1 },
      { method = v.method, url = v.url, headers = headers(), ak = v.ak, sk = v.sk, [token] = 1 },
    }
    for i, opts in ipairs(cases) do
      local ok, err = pcall(eip.sign, opts)
      assert.is_false(ok, i)
      assert.equal("usage", err.kind, i)
      local text = tostring(err)
      assert.is_nil(text:find(v.sk, 1, true), text)
      assert.is_nil(text:find(token, 1, true), text)
      assert.is_nil(text:find(v.sk:sub(1, 8), 1, true), text)
    end
  end)

  -- eip.sign reads its options as Lua indexes them (an SK inherited through __index signs), but
  -- knew as a secret only an SK set in the table itself: one inherited, pasted as the method too,
  -- was quoted whole.
  it("never quotes an SK the options inherit through __index", function()
    local v = vectors[1]
    collectgarbage() -- (the secrets of the calls before are held weakly: gone, as in a fresh process)
    collectgarbage()
    local defaults = { url = v.url, headers = v.headers, ak = v.ak, sk = v.sk }
    for _, case in ipairs{ { "method", { method = v.sk } }, { "options", { method = v.method, [v.sk] = 1 } } } do
      local err = raised(eip.sign, setmetatable(case[2], { __index = defaults }))
      assert.same({ "usage", case[1] }, { err.kind, err.argument })
      assert.is_nil(tostring(err):find(v.sk:sub(1, 8), 1, true), tostring(err))
    end
    -- (and signs as the same options given plainly)
    local plain = { method = v.method, url = v.url, headers = v.headers, ak = v.ak, sk = v.sk }
    assert.equal(eip.sign(plain), eip.sign(setmetatable({ method = v.method }, { __index = defaults })))
  end)

  it("signs a whole number as its digits on every Lua version, and refuses other numbers", function()
    local v = vectors[3]
    local url = v.url .. "?limit=" .. v.query.limit .. "&marker=" .. v.query.marker
    local want = eip.sign{ method = v.method, url = v.url, query = v.query, headers = v.headers, ak = v.ak, sk = v.sk }
    assert.equal(v.expected_authorization, want)
    local as_float = { marker = v.query.marker, limit = tonumber(v.query.limit) + 0.0 }
    assert.equal(want, eip.sign{ method = v.method, url = v.url, query = as_float, headers = v.headers,
      ak = v.ak, sk = v.sk })
    assert.equal(want, eip.sign{ method = v.method, url = url, headers = v.headers, ak = v.ak, sk = v.sk })
    for _, bad in ipairs{ 1.5, 0 / 0, math.huge, -math.huge, 2 ^ 53 } do
      for _, where in ipairs{ "query", "headers" } do
        local opts = { method = v.method, url = v.url, query = { limit = "1" }, headers = {}, ak = v.ak, sk = v.sk }
        for k, val in pairs(v.headers) do opts.headers[k] = val end
        opts[where]["X-Count"] = bad
        local ok, err = pcall(eip.sign, opts)
        assert.is_false(ok, tostring(bad))
        assert.same({ "usage", where }, { err.kind, err.argument }, tostring(bad))
      end
    end
  end)

  -- More query parameters (or headers) than the signer takes was a usage error naming the
  -- headers, whose text was the C function's "bad argument #1 to 'eip.core.sign' (...)".
  it("names the query, or the headers, when it holds more entries than can be signed", function()
    local v = vectors[1]
    local many = {}
    for i = 1, 300 do many["k" .. i] = "v" end
    local err = raised(eip.sign, { method = "GET", url = v.url, headers = v.headers, query = many, ak = v.ak,
      sk = v.sk })
    assert.same({ "usage", "query" }, { err.kind, err.argument })
    err = raised(eip.sign, { method = "GET", url = v.url .. "?" .. string.rep("a=1&", 300), headers = v.headers,
      ak = v.ak, sk = v.sk })
    assert.same({ "usage", "query" }, { err.kind, err.argument })
    local headers = { ["X-Sdk-Date"] = "20261124T023138Z" }
    for i = 1, 300 do headers["X-H" .. i] = "v" end
    err = raised(eip.sign, { method = "GET", url = v.url, headers = headers, ak = v.ak, sk = v.sk })
    assert.same({ "usage", "headers" }, { err.kind, err.argument })
    assert.is_nil(tostring(err):find("eip.core.sign", 1, true), tostring(err))
    -- (a plain table is walked whole: the message counts its entries, and a value of a wrong
    -- type among them is that error, whatever the order pairs walks them in)
    assert.matches("302 headers (Host included), more than 256", tostring(err), 1, true)
    headers["X-Bad"] = 1.5
    err = raised(eip.sign, { method = "GET", url = v.url, headers = headers, ak = v.ak, sk = v.sk })
    assert.matches("must map strings to strings", tostring(err), 1, true)
    headers["X-Bad"] = nil
    -- as many as it takes are signed (256 of each, Host among the headers)
    for k in pairs(many) do
      if tonumber(k:sub(2)) > 256 then many[k] = nil end
    end
    for i = 255, 300 do headers["X-H" .. i] = nil end
    assert.is_string(eip.sign{ method = "GET", url = v.url, headers = headers, query = many, ak = v.ak, sk = v.sk })
  end)

  -- A canonical request past the signer's bound (1 MiB) was a usage error naming `options`,
  -- whichever argument made it that long.
  it("names the url, the query or the headers when it makes the canonical request too long", function()
    local v = vectors[1]
    local function kib(n, c) return string.rep(c or "a", n * 1024) end
    local function headers(extra)
      local h = { ["X-Sdk-Date"] = v.headers["X-Sdk-Date"] }
      for k, value in pairs(extra or {}) do h[k] = value end
      return h
    end
    local cases = {
      { "url", v.url .. "/" .. kib(1100) }, { "query", v.url, { q = kib(1100) } },
      { "headers", v.url, nil, { X = kib(1100) } },
      -- (two that are too long together: the one that gives it more, a space as the %20 it is sent as)
      { "query", v.url, { q = kib(300, " ") }, { X = kib(400) } },
      { "url", v.url .. "?q=" .. kib(600), nil, { X = kib(500) } },
      { "headers", v.url .. "/" .. kib(400), nil, { X = kib(700) } },
    }
    for _, c in ipairs(cases) do
      local err = raised(eip.sign, { method = "GET", url = c[2], query = c[3], headers = headers(c[4]), ak = v.ak,
        sk = v.sk })
      assert.same({ "usage", c[1] }, { err.kind, err.argument }, c[1] .. " " .. #c[2])
      assert.matches("canonical request", err.message, 1, true)
    end
    -- (together within the bound: signed)
    assert.is_string(eip.sign{ method = "GET", url = v.url .. "/" .. kib(400), headers = headers{ X = kib(400) },
      ak = v.ak, sk = v.sk })
  end)

  it("rejects bad input with usage errors that never show the SK", function()
    local v = vectors[1]
    local cases = {
      { "url", { method = "DELETE", url = "ftp://x/y", headers = v.headers, ak = v.ak, sk = v.sk } },
      { "sk", { method = "DELETE", url = v.url, headers = v.headers, ak = v.ak, sk = "" } },
      { "ak", { method = "DELETE", url = v.url, headers = v.headers, sk = v.sk } },
      { "headers", { method = "DELETE", url = v.url, headers = {}, ak = v.ak, sk = v.sk } }, -- no X-Sdk-Date
      { "options", { method = "DELETE", url = v.url, headers = v.headers, ak = v.ak, sk = v.sk, extra = 1 } },
      { "headers", { method = "DELETE", url = v.url, headers = "x", ak = v.ak, sk = v.sk } },
      -- signed in lower case, it matched no request: the SDKs sign (and send) it in upper case
      { "method", { method = "delete", url = v.url, headers = v.headers, ak = v.ak, sk = v.sk } },
    }
    -- A date of the right shape that is no date (month 13, 30 February, 24 o'clock) was signed:
    -- the official signers sign none (Go dates the request now instead, Python raises), and the
    -- gateway's refusal of it counts toward the key's lock.
    for _, date in ipairs{ "20261324T023138Z", "20260230T023138Z", "20250229T000000Z", "20261124T243138Z",
        "20261124T026038Z", "20261124T023160Z", "20261100T023138Z", "20260015T000000Z" } do
      local headers = { ["Content-Type"] = "application/json", ["X-Sdk-Date"] = date }
      cases[#cases + 1] = { "headers", { method = "DELETE", url = v.url, headers = headers, ak = v.ak, sk = v.sk } }
    end
    for _, date in ipairs{ "20240229T235959Z", "20000229T000000Z", "20261231T235959Z" } do
      assert.matches("^SDK%-HMAC%-SHA256 ", eip.sign{ method = "DELETE", url = v.url, ak = v.ak, sk = v.sk,
        headers = { ["X-Sdk-Date"] = date } }, 1, false, date)
    end
    -- (its message said "X-Sdk-Date is not YYYYMMDDTHHMMSSZ" of a date of exactly that shape)
    local range_err = raised(eip.sign, { method = "DELETE", url = v.url, ak = v.ak, sk = v.sk,
      headers = { ["X-Sdk-Date"] = "20261324T023138Z" } })
    assert.matches("X-Sdk-Date is no date and time that exist", tostring(range_err), 1, true)
    for _, c in ipairs(cases) do
      local ok, err = pcall(eip.sign, c[2])
      assert.is_false(ok)
      assert.is_true(eip.is_error(err), tostring(err))
      assert.equal("usage", err.kind)
      assert.equal(c[1], err.argument)
      assert.is_nil(tostring(err):find(v.sk, 1, true))
    end
  end)
end)
