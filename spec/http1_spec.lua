-- eip.transport.http1, the cosocket transport's response reader, driven without nginx: its
-- source is a list of strings (or a generator) and its clock a counter, so the limits of the
-- transport contract (lua/eip/transport/init.lua) can be pushed without waiting. A property
-- spec feeds it thousands of random and mutated answers; a differential one serves mutated
-- answers to libcurl (through the emulator's raw injection) and checks the reader answers alike.
local http1 = require "eip.transport.http1"
local contract = require "eip.transport"
local emulator = require "spec.support.emulator"

local LIMITS = contract.LIMITS

-- A source over `pieces` (a list of strings, or a function(k) -> k-th piece or nil). opts:
-- ending ("closed" default, "hang": every later read waits its whole wait, or an error text),
-- tick (seconds the clock moves per piece). Returns the exchange's clock and receive function,
-- and a table counting what was handed out.
local function source(pieces, opts)
  opts = opts or {}
  local clock, k, pending = 0, 0, nil
  local stats = { bytes = 0, reads = 0 }
  local function piece()
    k = k + 1
    if type(pieces) == "function" then return pieces(k) end
    return pieces[k]
  end
  local function now() return clock end
  local function recv(_, max, wait)
    assert(type(max) == "number" and max >= 1, "max must be a positive number")
    assert(type(wait) == "number" and wait > 0, "wait must be a positive number")
    stats.reads = stats.reads + 1
    if pending == nil then pending = piece() end
    if pending == nil then
      if opts.ending == "hang" then
        clock = clock + wait
        return nil, "timeout"
      end
      return nil, opts.ending or "closed"
    end
    local data = pending
    if #data > max then
      data, pending = data:sub(1, max), data:sub(max + 1)
    else
      pending = nil
    end
    clock = clock + (opts.tick or 0)
    stats.bytes = stats.bytes + #data
    return data
  end
  return now, recv, stats
end

-- Reads one answer from pieces. req: timeout, body_cap, low_speed_*. Returns resp, ok, reusable,
-- and the source's stats.
local function read(pieces, req, opts)
  local now, recv, stats = source(pieces, opts)
  local x = http1.exchange(req or {}, now)
  x.recv = recv
  http1.begin(x)
  local ok, reusable = http1.read(x, (opts and opts.method) or "DELETE")
  return http1.finish(x), ok, reusable, stats
end

-- Splits s into pieces of the sizes `sizes()` gives.
local function split(s, sizes)
  local out, i = {}, 1
  while i <= #s do
    local n = sizes()
    out[#out + 1] = s:sub(i, i + n - 1)
    i = i + n
  end
  return out
end

local CAPTURED = { "request_id", "retry_after", "content_type", "location", "date", "subject_token" }
local OUTCOME = { "status", "body", "truncated", "curl_code", "error_kind", "request_id", "retry_after",
  "content_type", "location", "date", "subject_token" }

local function assert_contract_shape(resp, ok, label)
  assert.is_number(resp.status, label)
  assert.is_string(resp.body, label)
  assert.is_boolean(resp.truncated, label)
  assert.is_number(resp.elapsed, label)
  if ok then
    assert.is_nil(resp.curl_code, label)
  else
    assert.is_number(resp.curl_code, label)
    assert.is_string(resp.curl_error, label)
    assert.equal(contract.error_kind(resp.curl_code, resp.curl_error), resp.error_kind, label)
  end
  for _, f in ipairs(CAPTURED) do
    local v = resp[f]
    if v ~= nil then
      assert.is_string(v, label)
      assert.is_true(#v > 0, label)
      assert.is_true(#v < LIMITS.header_line, label)
      if f ~= "subject_token" then assert.is_true(#v <= contract.CAPTURED_MAX, label) end
    end
  end
end

-- Chunks framed every way the reader takes them: sizes of 1 to 8 hex digits, lower and upper
-- case, on its one-step path; 9 digits, an extension, a bare LF or CRs before the LF after the
-- data, on its general one.
local MIXED_CHUNKS = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nA\r\n0123456789\r\n"
  .. "00000001\r\nz\r\n000000001\r\ny\r\n2;x=1\r\nqq\r\n1\r\nw\n1\r\nv\r\r\nb\r\nhello world\r\n0\r\n\r\n"
local MIXED_BODY = "abc0123456789zyqqwvhello world"

describe("http1 reader", function()
  it("reads a 204 in one read and allows the connection to be reused", function()
    local resp, ok, reusable, stats = read{ "HTTP/1.1 204 No Content\r\nX-Request-Id: abc\r\nServer: x\r\n\r\n" }
    assert.is_true(ok)
    assert.is_true(reusable)
    assert.equal(204, resp.status)
    assert.equal("abc", resp.request_id)
    assert.equal("", resp.body)
    assert.is_false(resp.truncated)
    assert.equal(1, stats.reads)
  end)

  it("reads Content-Length, chunked and close-delimited bodies", function()
    local resp, ok, reusable = read{ "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello" }
    assert.is_true(ok and reusable)
    assert.equal("hello", resp.body)
    resp, ok, reusable = read{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      .. "5;x=y\r\nhello\r\n6\r\n world\r\n0\r\n\r\n" }
    assert.is_true(ok and reusable)
    assert.equal("hello world", resp.body)
    resp, ok, reusable = read{ "HTTP/1.0 500 Oops\r\n\r\nuntil ", "close" }
    assert.is_true(ok)
    assert.is_false(reusable)
    assert.equal("until close", resp.body)
  end)

  it("does not reuse a connection that said close, nor one with bytes after the answer", function()
    local _, ok, reusable = read{ "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n" }
    assert.is_true(ok)
    assert.is_false(reusable)
    _, ok, reusable = read{ "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA" }
    assert.is_true(ok)
    assert.is_false(reusable)
  end)

  it("skips interim answers and keeps only the final answer's headers", function()
    local resp, ok = read{ "HTTP/1.1 100 Continue\r\nX-Request-Id: early\r\nLocation: /x\r\nDate: early\r\n\r\n"
      .. "HTTP/1.1 201 Created\r\nX-Request-Id: final\r\ndate:  Sun, 06 Nov 1994 08:49:37 GMT \r\n"
      .. "Retry-After: 1\r\nContent-Length: 0\r\n\r\n" }
    assert.is_true(ok)
    assert.equal(201, resp.status)
    assert.equal("final", resp.request_id)
    assert.is_nil(resp.location)
    assert.equal("Sun, 06 Nov 1994 08:49:37 GMT", resp.date)
    -- (kept beside a Retry-After only, what it is read for: as the C core)
    resp = read{ "HTTP/1.1 204 No Content\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n" }
    assert.is_nil(resp.date)
  end)

  -- (no final answer: an interim one's status and headers were reported with the failure)
  it("keeps nothing of an interim answer when no final head follows it", function()
    local interim = "HTTP/1.1 100 Continue\r\nX-Request-Id: early\r\nRetry-After: 5\r\n"
    for _, c in ipairs{ { { interim .. "\r\n" }, 52 }, { { interim .. "\r\n" }, 28, "hang" },
        { { interim }, 28, "hang" }, { { interim .. "no colon\r\n\r\n" }, 8 } } do
      local resp, ok = read(c[1], { timeout = 5 }, { ending = c[3] })
      assert.is_nil(ok)
      assert.same({ 0, c[2] }, { resp.status, resp.curl_code })
      assert.is_nil(resp.request_id)
      assert.is_nil(resp.retry_after)
    end
  end)

  it("keeps the subject token whole, up to the header line limit, and cuts other values to 255", function()
    local token = string.rep("T", LIMITS.header_line - #"X-Subject-Token: " - 3)
    local resp, ok = read({ "HTTP/1.1 201 Created\r\nX-Subject-Token: " .. token .. "\r\nX-Request-Id: "
      .. string.rep("r", 1000) .. "\r\nContent-Length: 0\r\n\r\n" }, {})
    assert.is_true(ok, resp.curl_error)
    assert.equal(token, resp.subject_token)
    assert.equal(string.rep("r", contract.CAPTURED_MAX - 3) .. "...", resp.request_id)
  end)

  it("answers the same whatever the pieces the answer comes in", function()
    local answers = {
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nX-Request-Id: r\r\nTransfer-Encoding: chunked\r\n\r\n"
        .. "5\r\nhello\r\n1;e=1\r\n!\r\n0\r\nX-T: 1\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 11\r\nRetry-After: 3\r\n\r\n{\"a\":\"bcd\"}",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
      "HTTP/1.1 200 OK\nX-Request-Id: lf-only\nContent-Length: 2\n\nok",
      MIXED_CHUNKS,
    }
    for _, s in ipairs(answers) do
      local whole = read{ s }
      for at = 1, #s - 1 do
        local resp = read{ s:sub(1, at), s:sub(at + 1) }
        for _, f in ipairs(OUTCOME) do assert.equal(whole[f], resp[f], f .. " split at " .. at) end
      end
      local resp = read(split(s, function() return 1 end))
      for _, f in ipairs(OUTCOME) do assert.equal(whole[f], resp[f], f .. " byte by byte") end
    end
  end)

  -- A head whole in one read and plain (CRLF lines, each with a colon, none folded, no NUL, no
  -- lone CR) is read in one pass; any other way it arrives, line by line. Both must agree,
  -- right up to the limits, whatever the heads (byte by byte, the plain reader never runs).
  it("reads a plain head whole in one pass as it reads it line by line", function()
    local long = LIMITS.header_line - 2 -- a line of this many bytes plus CRLF is one over the limit
    local heads = {
      "HTTP/1.1 204 No Content\r\nServer: nginx\r\nDate: x\r\nConnection: keep-alive\r\n\r\n",
      "HTTP/1.1 204 No Content\r\n\r\n",
      "HTTP/1.0 204 No Content\r\nConnection: Keep-Alive\r\n\r\n",
      "HTTP/1.0 204 No Content\r\n\r\n",
      "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n",
      "HTTP/1.1 200 OK\r\nCONTENT-LENGTH: 2\r\nx-request-id:  a b \r\nContent-Type:\r\n\r\nok",
      "HTTP/1.1 200 OK\r\nContent-Length: 2x\r\nContent-Length: +3\r\n\r\nabc",
      "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\nuntil close",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
      "HTTP/1.1 204 No Content\r\n:empty name\r\nX-Request-Id: a\rb\r\n\r\n",
      "HTTP/1.1 204 No Content\r\nX\rY: a\r\n\r\n",
      "HTTP/1.1 204 No Content\r\nNo colon\r\n\r\n",
      "HTTP/1.1 204 No Content\r\nA: 1\r\n folded\r\n\r\n",
      "HTTP/1.1 204 No Content\r\nA: 1\nB: 2\r\n\r\n",
      "HTTP/1.1 204 No Content\r\nA: \0\r\n\r\n",
      "HTTP/1.1 2040 No\r\n\r\n",
      "HTTP/1.1 099 No\r\n\r\n",
      "HTTP/2 204\r\n\r\n",
      "http/1.1 204 No Content\r\n\r\n",
      "HTTP/1.1 101 Switching\r\nUpgrade: x\r\n\r\n",
      "HTTP/1.1 429 Too Many\r\nRetry-After: 7\r\nLocation: /x\r\nX-Subject-Token: t\r\n\r\n",
      "HTTP/1.1 204 No Content\r\nX-A: " .. string.rep("a", long - 5) .. "\r\n\r\n",
      "HTTP/1.1 204 No Content\r\nX-A: " .. string.rep("a", long - 6) .. "\r\n\r\n",
      "HTTP/1.1 204 " .. string.rep("a", long - 13) .. "\r\n\r\n",
      "HTTP/1.1 204 " .. string.rep("a", long - 14) .. "\r\n\r\n",
      "HTTP/1.1 204 No Content\r\n" .. string.rep("X-B: " .. string.rep("b", 9993) .. "\r\n", 31) .. "\r\n",
      "HTTP/1.1 204 No Content\r\n" .. string.rep("X-B: " .. string.rep("b", 9993) .. "\r\n", 30)
        .. "X-C: " .. string.rep("c", 6860) .. "\r\n\r\n",
    }
    -- Reads of 64 KiB could never hold a whole head with a line at the limit: larger ones here.
    local read_size = http1.READ_SIZE
    http1.READ_SIZE = 1048576
    finally(function() http1.READ_SIZE = read_size end)
    for n, s in ipairs(heads) do
      local label = "head " .. n .. ": " .. s:sub(1, 60)
      local whole, ok, reusable = read({ s }, {})
      local bytes, ok2, reusable2 = read(split(s, function() return 1 end), {})
      for _, f in ipairs(OUTCOME) do assert.equal(bytes[f], whole[f], label .. ": " .. f) end
      assert.equal(ok2, ok, label)
      assert.equal(reusable2, reusable, label)
    end
  end)

  -- The contract's status line: "HTTP/1.0" or "HTTP/1.1", one or more SP, three digits 100-599,
  -- then the end of the line or SP. Anything else as the first line of a head, interim or
  -- final, is code 1 with nothing of the answer kept: libcurl 7.88 alone took "http/1.1 500" for
  -- HTTP/1.0 200 and "HTTP/2 4294967500" for 204, a delete's false success.
  describe("status lines", function()
    local REFUSED = {
      "http/1.1 500 Internal Server Error", "Http/1.1 404 Not Found", "HTTP/x 503", "HTTP/a.1 404", "HTTP/+1.1 404",
      "HTTP/-1.1 404", "HTTP/2 204", "HTTP/2 4294967500 x", "HTTP/2 20", "HTTP/2 -404", "HTTP/2 2040", "HTTP/20 204",
      "HTTP/2.0 204", "HTTP/3 204", "HTTP/1.2 204", "HTTP/0.9 204", "HTTP/1 204", "HTTP/1.1", "HTTP/1.1 ",
      "HTTP/1.1 2040", "HTTP/1.1 0204", "HTTP/1.1 099 x", "HTTP/1.1 20", "HTTP/1.1 +204", "HTTP/1.1 204x",
      "HTTP/1.1 204;x", "HTTP/1.1 204\t", "HTTP/1.1\t204", "HTTP/1.1 \t204", "HTTP/1.1 204\r", "HTTP/1.1 1O4",
      "HTTP/1.1204", "HTTP 200 OK", " HTTP/1.1 204", "HTTP/1.1 600 Weird", "HTTP/1.1 999", "HTTP/1.0 700 x",
    }
    local ACCEPTED = {
      { "HTTP/1.1 200 OK", 200 }, { "HTTP/1.0 404", 404 }, { "HTTP/1.1 500", 500 }, { "HTTP/1.1 503 ", 503 },
      { "HTTP/1.1   409  spaced  out ", 409 }, { "HTTP/1.1 599 Odd", 599 }, { "HTTP/1.1 100 Continue", 100 },
      { "HTTP/1.1 103", 103 }, { "HTTP/1.0 200 \r", 200 },
    }

    -- The answer whose first line is `line`, alone or after an interim answer with its own
    -- captured header.
    local function answers(line)
      local final = line .. "\r\nX-Request-Id: final\r\nContent-Length: 2\r\n\r\nok"
      return { final, "HTTP/1.1 100 Continue\r\nX-Request-Id: interim\r\n\r\n" .. final }
    end

    it("refuses any other first line of a head, interim or final: code 1, nothing of the answer kept", function()
      for _, line in ipairs(REFUSED) do
        for n, s in ipairs(answers(line)) do
          for _, pieces in ipairs{ { s }, split(s, function() return 1 end) } do
            local label = string.format("%q (%s, in %d pieces)", line, n == 1 and "final" or "after a 100", #pieces)
            local resp, ok, reusable = read(pieces, {})
            assert.is_nil(ok, label)
            assert.is_nil(reusable, label)
            assert.same({ 0, 1, "protocol", "" }, { resp.status, resp.curl_code, resp.error_kind, resp.body }, label)
            assert.is_nil(resp.request_id, label)
            assert_contract_shape(resp, false, label)
          end
        end
      end
    end)

    it("says libcurl's text where libcurl refuses the line by itself, the contract's where it would not", function()
      local function text(line) return read({ line .. "\r\n\r\n" }, {}).curl_error end
      assert.equal("Unsupported status line in response (wanted HTTP/1.0 or HTTP/1.1, then a code 100-599)",
        text("http/1.1 500 Internal Server Error"))
      assert.equal(text("http/1.1 500 Internal Server Error"), text("HTTP/2 204"))
      assert.equal(text("http/1.1 500 Internal Server Error"), text("HTTP/1.1 204x"))
      assert.equal("Unsupported HTTP version (1.2) in response", text("HTTP/1.2 204"))
      assert.equal("Unsupported HTTP version (3.0) in response", text("HTTP/3 204"))
      assert.equal("Unsupported response code in HTTP response", text("HTTP/1.1 2040"))
      assert.equal("Received HTTP/0.9 when not allowed", text("SSH-2.0-OpenSSH_9.2p1"))
    end)

    it("takes HTTP/1.0 and HTTP/1.1 with one or more SP and a code 100-599, CRLF or LF", function()
      for _, c in ipairs(ACCEPTED) do
        for _, eol in ipairs{ "\r\n", "\n" } do
          local s = c[1] .. eol .. "X-Request-Id: final\r\nContent-Length: 2\r\n\r\nok"
          if c[2] < 200 then s = c[1] .. eol .. "X-Request-Id: interim\r\n\r\nHTTP/1.1 200 OK\r\n"
            .. "X-Request-Id: final\r\nContent-Length: 2\r\n\r\nok" end
          local label = string.format("%q", c[1] .. eol)
          local resp, ok = read({ s }, {})
          assert.is_true(ok, label .. ": " .. tostring(resp.curl_error))
          assert.same({ c[2] < 200 and 200 or c[2], "final", "ok" }, { resp.status, resp.request_id, resp.body }, label)
        end
      end
    end)

    it("fails on a 101 (we never ask for an upgrade), with or without bytes after its head", function()
      for _, s in ipairs{ "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
          "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\nnot http any more",
          "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 101 Switching Protocols\r\n\r\n" } do
        local resp, ok, reusable = read({ s }, {})
        assert.is_nil(ok, s)
        assert.is_nil(reusable, s)
        assert.same({ 0, 1, "protocol", "" }, { resp.status, resp.curl_code, resp.error_kind, resp.body }, s)
        assert.equal("Switching Protocols (101) answered, though no protocol upgrade was asked for", resp.curl_error)
      end
      -- A proxy's 101 to CONNECT is its refusal, which the cosocket transport reports as such.
      local resp, ok, reusable = read({ "HTTP/1.1 101 Switching Protocols\r\n\r\n" }, {}, { method = "CONNECT" })
      assert.is_true(ok)
      assert.is_false(reusable)
      assert.equal(101, resp.status)
    end)

    it("reads a plain 204 on the fast path, in one read, reusable", function()
      for _, line in ipairs{ "HTTP/1.1 204 No Content", "HTTP/1.1 204", "HTTP/1.0 204 x" } do
        local resp, ok, reusable, stats = read{ line .. "\r\nConnection: keep-alive\r\n\r\n" }
        assert.is_true(ok and reusable, line)
        assert.equal(204, resp.status, line)
        assert.equal(1, stats.reads, line)
      end
    end)
  end)

  -- RFC 9112 6.3, as libcurl 7.88 reads it: a Transfer-Encoding that leaves the answer unchunked
  -- overrides Content-Length (before or after it); the body ends at the close.
  it("reads until close, never reusing the connection, when a Transfer-Encoding leaves the answer unchunked",
    function()
      for _, te in ipairs{ "identity", "", ",", "IDENTITY , identity" } do
        for _, order in ipairs{ "te first", "length first" } do
          local te_line, cl_line = "Transfer-Encoding: " .. te .. "\r\n", "Content-Length: 2\r\n"
          local head = "HTTP/1.1 200 OK\r\n" .. (order == "te first" and te_line .. cl_line or cl_line .. te_line)
          local label = string.format("%q, %s", te, order)
          local resp, ok, reusable = read({ head .. "\r\nhel", "lo" }, {})
          assert.is_true(ok, label)
          assert.is_false(reusable, label)
          assert.equal("hello", resp.body, label)
        end
      end
      -- chunked after such a header: chunked, but the connection is still not reused (libcurl
      -- closes it on the first header).
      local resp, ok, reusable = read{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n"
        .. "Transfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n2\r\nok\r\n0\r\n\r\n" }
      assert.is_true(ok)
      assert.is_false(reusable)
      assert.equal("ok", resp.body)
      -- chunked alone: framed, reusable.
      resp, ok, reusable = read{ "HTTP/1.1 200 OK\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\n\r\n"
        .. "2\r\nok\r\n0\r\n\r\n" }
      assert.is_true(ok and reusable)
      assert.equal("ok", resp.body)
    end)

  -- libcurl 7.88 lets a Content-Length that overflows change no length (the last valid one,
  -- before or after it, counted; without one the body ended at the close), and reads the last of
  -- two that differ: whose length the answer has would be the reader's guess. Both are refused
  -- (8) as the head is read, as the C core refuses them: the source hangs after the answer, as
  -- a server that keeps its connection open, and nothing waits for it.
  it("refuses a Content-Length that overflows, or two that differ, at once (8)", function()
    local big = "Content-Length: 99999999999999999999\r\n"
    for _, case in ipairs{
      { "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n" .. big, 200, "too large" },
      { "HTTP/1.1 409 Conflict\r\nContent-Length: 5\r\n" .. big, 409, "too large" },
      { "HTTP/1.1 200 OK\r\n" .. big .. "Content-Length: 5\r\n", 200, "too large" },
      { "HTTP/1.1 200 OK\r\n" .. big, 200, "too large" },
      { "HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\nContent-Length: 4\r\n", 404, "values that differ" },
      { "HTTP/1.1 404 Not Found\r\nContent-Length: 5, 4\r\n", 404, "values that differ" },
      -- (2^53 + 1 and 2^53: one double under LuaJIT and 5.1, compared as digits)
      { "HTTP/1.1 404 Not Found\r\nContent-Length: 9007199254740993\r\nContent-Length: 9007199254740992\r\n", 404,
        "values that differ" },
    } do
      local s = case[1] .. "\r\nhello"
      for _, pieces in ipairs{ { s }, split(s, function() return 1 end) } do
        local label = string.format("%q in %d pieces", case[1], #pieces)
        local resp, ok = read(pieces, { timeout = 5 }, { ending = "hang" })
        assert.is_nil(ok, label)
        assert.same({ case[2], 8, "Weird server reply: Content-Length " .. case[3] },
          { resp.status, resp.curl_code, resp.curl_error }, label)
      end
    end
    -- The same length twice is that length.
    local resp, ok = read{ "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 05, +5\r\n\r\nhello" }
    assert.is_true(ok)
    assert.equal("hello", resp.body)
  end)

  -- (LuaJIT's "%d" of a number near 2^63 said "-9223372036854775808 bytes remaining")
  it("says how many bytes a length near 2^63 left outstanding, under every interpreter", function()
    for _, cut in ipairs{ "", "hello" } do
      local resp, ok = read{ "HTTP/1.1 200 OK\r\nContent-Length: 9223372036854775807\r\n\r\n" .. cut }
      assert.is_nil(ok)
      assert.equal(18, resp.curl_code)
      assert.matches("^transfer closed with 92233720368547758%d%d bytes remaining to read$", resp.curl_error)
    end
  end)

  -- libcurl 7.88 keeps one close flag per connection through all the heads of an answer: a close
  -- announced by an interim head (Connection: close, or HTTP/1.0 without keep-alive) holds for an
  -- HTTP/1.1 final head, whatever it says; an HTTP/1.0 final head decides alone (closing unless
  -- it says keep-alive). Each outcome here is libcurl's (its next request on a new connection or
  -- not).
  it("does not reuse a connection that an interim answer said to close", function()
    local close_100 = "HTTP/1.1 100 Continue\r\nConnection: close\r\n\r\n"
    local cases = {
      { close_100 .. "HTTP/1.1 204 No Content\r\n\r\n", 204, false },
      { close_100 .. "HTTP/1.1 204 No Content\r\nConnection: keep-alive\r\n\r\n", 204, false },
      { close_100 .. "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 200, false },
      { "HTTP/1.1 100 Continue\r\nConnection: Close\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n"
        .. "HTTP/1.1 204 No Content\r\n\r\n", 204, false },
      { "HTTP/1.0 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", 204, false },
      { close_100 .. "HTTP/1.0 204 No Content\r\nConnection: keep-alive\r\n\r\n", 204, true },
      { "HTTP/1.0 100 Continue\r\nConnection: keep-alive\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", 204, true },
      { "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", 204, true },
    }
    for _, case in ipairs(cases) do
      local s = case[1]
      for _, pieces in ipairs{ { s }, split(s, function() return 1 end) } do
        local label = string.format("%q in %d pieces", s, #pieces)
        local resp, ok, reusable = read(pieces, { timeout = 5 }, { ending = "hang" })
        assert.is_true(ok, label .. ": " .. tostring(resp.curl_error))
        assert.equal(case[3], reusable, label)
        assert.equal(case[2], resp.status, label)
      end
    end
    -- The next exchange in the same (released) table starts afresh.
    local now, recv = source{ cases[1][1] }
    local x = http1.exchange({}, now)
    x.recv = recv
    http1.begin(x)
    assert.same({ true, false }, { http1.read(x, "DELETE") })
    http1.release(x)
    now, recv = source{ "HTTP/1.1 204 No Content\r\n\r\n" }
    x = http1.exchange({}, now, x)
    x.recv = recv
    http1.begin(x)
    assert.same({ true, true }, { http1.read(x, "DELETE") })
  end)

  describe("limits", function()
    local function endless(prefix, piece)
      return function(k)
        if k == 1 then return prefix end
        return piece
      end
    end

    it("stops an endless header line at the line limit, having read no more than the limit and one read", function()
      local resp, ok, _, stats = read(endless("HTTP/1.1 200 OK\r\nX-Flood: ", string.rep("a", 8192)))
      assert.is_nil(ok)
      assert.equal(27, resp.curl_code)
      assert.equal("protocol", resp.error_kind)
      assert.equal(200, resp.status)
      assert.is_true(stats.bytes <= LIMITS.header_line + http1.READ_SIZE, stats.bytes .. " bytes read")
    end)

    it("stops an endless status line too (status 0)", function()
      local resp = read(endless("HTTP/1.1 200 ", string.rep("O", 4096)))
      assert.equal(27, resp.curl_code)
      assert.equal(0, resp.status)
    end)

    it("takes a line one byte under the limit, and refuses one at the limit", function()
      local function answer(len)
        return "HTTP/1.1 200 OK\r\nX-Big: " .. string.rep("b", len - 9) .. "\r\nContent-Length: 2\r\n\r\nok"
      end
      local resp, ok = read{ answer(LIMITS.header_line - 1) }
      assert.is_true(ok, resp.curl_error)
      assert.equal("ok", resp.body)
      resp, ok = read{ answer(LIMITS.header_line) }
      assert.is_nil(ok)
      assert.equal(27, resp.curl_code)
    end)

    it("stops a header flood at the block limit", function()
      local resp, _, _, stats = read(endless("HTTP/1.1 200 OK\r\n", "X-Pad: " .. string.rep("p", 1000) .. "\r\n"))
      assert.equal(56, resp.curl_code)
      assert.equal("protocol", resp.error_kind)
      assert.matches("Too large response headers", resp.curl_error)
      assert.is_true(stats.bytes <= LIMITS.header_block + 2 * 1009, stats.bytes .. " bytes read")
    end)

    it("counts interim heads into the block limit", function()
      local resp = read(endless("", "HTTP/1.1 100 Continue\r\nX-Pad: " .. string.rep("q", 1000) .. "\r\n\r\n"))
      assert.equal(56, resp.curl_code)
    end)

    it("allows 16 hex digits in a chunk size, not 17", function()
      local function answer(hex)
        return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" .. hex .. "\r\nabc\r\n0\r\n\r\n"
      end
      local resp, ok = read{ answer(string.rep("0", 15) .. "3") }
      assert.is_true(ok, resp.curl_error)
      assert.equal("abc", resp.body)
      resp = read{ answer(string.rep("0", 16) .. "3") }
      assert.equal(56, resp.curl_code)
      assert.matches("Too long hexadecimal number", resp.curl_error)
    end)

    it("takes a trailer line of 4093 bytes, not 4094 (libcurl 7.88's trailer buffer)", function()
      for _, eol in ipairs{ "\r\n", "\n" } do
        local function answer(len)
          return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: "
            .. string.rep("t", len - 5) .. eol .. "\r\n"
        end
        local resp, ok = read{ answer(LIMITS.trailer_line) }
        assert.is_true(ok, resp.curl_error)
        assert.equal("abc", resp.body)
        resp = read{ answer(LIMITS.trailer_line + 1) }
        assert.equal(56, resp.curl_code)
        assert.equal("protocol", resp.error_kind)
      end
    end)

    it("skips an endless chunk extension without keeping it, until the deadline", function()
      collectgarbage()
      local base, peak = collectgarbage("count"), 0
      local piece = string.rep("e", 8192)
      local pieces = function(k)
        peak = math.max(peak, collectgarbage("count"))
        if k == 1 then return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;" end
        return piece
      end
      -- 8192 pieces of 8 KiB (64 MiB) pass before the fake clock reaches the 1 s deadline.
      local resp, _, _, stats = read(pieces, { timeout = 1 }, { tick = 1 / 8192 })
      assert.equal(28, resp.curl_code)
      assert.equal("timeout", resp.error_kind)
      assert.is_true(stats.bytes > 32 * 1024 * 1024, stats.bytes .. " bytes read")
      assert.is_true(peak - base < 16 * 1024, string.format("memory grew by %.0f KiB", peak - base))
    end)

    it("cuts the body at body_cap and stops reading", function()
      local resp, ok, reusable, stats = read(function(k)
        if k == 1 then return "HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n" end
        return string.rep("x", 4096)
      end, { body_cap = 10000 })
      assert.is_true(ok)
      assert.is_false(reusable)
      assert.is_true(resp.truncated)
      assert.equal(10000, #resp.body)
      assert.is_true(stats.bytes < 10000 + 2 * 4096 + 100, stats.bytes .. " bytes read")
    end)

    it("keeps a body of tiny chunks in a few parts, joined as they come, whole and in order", function()
      -- 349526 chunks of 3 bytes, all different: 1 MiB of body, which was 349526 strings and
      -- table entries; now the parts are joined 64 at a time (http1.PARTS_JOIN).
      local n, chunks, want = 349526, {}, {}
      for i = 1, n do
        want[i] = string.char(i % 256, math.floor(i / 256) % 256, math.floor(i / 65536) % 256)
        chunks[i] = "3\r\n" .. want[i] .. "\r\n"
      end
      local now, recv = source{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" .. table.concat(chunks)
        .. "0\r\n\r\n" }
      local x = http1.exchange({ body_cap = 2 * 1024 * 1024 }, now)
      local most = 0
      x.recv = function(...)
        if x.parts and #x.parts > most then most = #x.parts end
        return recv(...)
      end
      http1.begin(x)
      local ok, reusable = http1.read(x, "GET")
      local resp = http1.finish(x)
      assert.is_true(ok and reusable, resp.curl_error)
      assert.is_false(resp.truncated)
      assert.is_true(resp.body == table.concat(want), "the body is not the chunks' data in order")
      assert.is_true(most <= 6000, most .. " parts") -- n / 64 + 64
      -- Every framing, on either path, gives the same body.
      resp, ok = read{ MIXED_CHUNKS }
      assert.is_true(ok, resp.curl_error)
      assert.equal(MIXED_BODY, resp.body)
    end)

    it("bounds the whole exchange by timeout, not each read", function()
      -- A byte every 0.5 s: each read is quick, the exchange is not.
      local answer = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" .. string.rep("s", 100)
      local resp = read(split(answer, function() return 1 end), { timeout = 3 }, { tick = 0.5 })
      assert.equal(28, resp.curl_code)
      assert.matches("timed out", resp.curl_error)
    end)

    it("aborts a trickle below low_speed_limit for low_speed_time", function()
      local answer = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" .. string.rep("s", 1000)
      local pieces = split(answer, function() return 1 end)
      pieces[1] = answer:sub(1, 40) -- the head at once, then a byte every 0.1 s: 10 bytes/s
      for i = 2, 40 do pieces[i] = "" end
      local resp = read(pieces, { timeout = 60, low_speed_limit = 100, low_speed_time = 2 }, { tick = 0.1 })
      assert.equal(28, resp.curl_code)
      assert.matches("too slow", resp.curl_error)
      assert.is_true(resp.elapsed < 2 * 2 + 3, "aborted after " .. resp.elapsed .. " s")
    end)

    it("takes fractional low-speed settings", function()
      local resp = read({ "HTTP/1.1 200 OK\r\n" }, { timeout = 5, low_speed_limit = 0.5, low_speed_time = 0.25 },
        { ending = "hang" })
      assert.equal(28, resp.curl_code)
      assert.matches("too slow", resp.curl_error)
    end)

    it("waits for a silent server no longer than the deadline, in reads no longer than the window", function()
      local resp = read({ "HTTP/1.1 200 OK\r\n" }, { timeout = 10, low_speed_limit = 1, low_speed_time = 1 },
        { ending = "hang" })
      assert.equal(28, resp.curl_code)
      assert.is_true(resp.elapsed < 1 * 2 + 3, "gave up after " .. resp.elapsed .. " s (deadline 10 s)")
      resp = read({ "HTTP/1.1 200 OK\r\n" }, { timeout = 5 }, { ending = "hang" })
      assert.equal(28, resp.curl_code)
      assert.is_true(resp.elapsed >= 5 and resp.elapsed < 5 + 3, "gave up after " .. resp.elapsed .. " s")
    end)
  end)

  describe("failures", function()
    local CHUNKED = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    local CASES = {
      { "nothing at all", {}, 52, "reset" },
      { "part of a status line, then the end", { "HTT" }, 52, "reset" },
      { "a receive error", { "HTTP/1.1 200 OK\r\n" }, 56, "reset", { ending = "connection reset by peer" } },
      { "the end inside a Content-Length body", { "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc" }, 18, "reset" },
      { "the end inside a chunked body", { CHUNKED .. "5\r\nab" }, 18, "reset" },
      { "not HTTP", { "SSH-2.0-OpenSSH\r\n" }, 1, "protocol" },
      { "an unsupported version", { "HTTP/1.2 200 OK\r\n\r\n" }, 1, "protocol" },
      { "an HTTP/2 status line", { "HTTP/2 204\r\n\r\n" }, 1, "protocol" },
      { "a lowercase status line", { "http/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n" }, 1,
        "protocol" },
      { "a 101 Switching Protocols", { "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n" }, 1, "protocol" },
      { "a status under 100", { "HTTP/1.1 099 Odd\r\n\r\n" }, 1, "protocol" },
      { "a header without a colon", { "HTTP/1.1 200 OK\r\nno colon\r\n\r\n" }, 8, "protocol" },
      { "a NUL byte in a header", { "HTTP/1.1 200 OK\r\nX: a\0b\r\n\r\n" }, 8, "protocol" },
      { "an invalid Content-Length", { "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n" }, 8, "protocol" },
      { "a folded first header", { "HTTP/1.1 200 OK\r\n X: y\r\n\r\n" }, 43, "protocol" },
      { "a non-hex chunk size", { CHUNKED .. "zz\r\n" }, 56, "protocol" },
      { "chunk data without its CRLF", { CHUNKED .. "1\r\nab" }, 56, "protocol" },
      { "a gzip transfer encoding", { "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxx" }, 61, "protocol" },
    }
    it("quotes an unknown transfer encoding as sent (capped), so a secret echoed there is still redacted", function()
      local te = "Tok-MIIsecretValue" .. string.rep("x", 100)
      local resp = read({ "HTTP/1.1 200 OK\r\nTransfer-Encoding: " .. te .. "\r\n\r\nxx" }, {})
      assert.equal(61, resp.curl_code)
      assert.equal("Unrecognized transfer encoding: " .. te:sub(1, 64) .. "...", resp.curl_error)
    end)

    for _, c in ipairs(CASES) do
      it("is a structured failure: " .. c[1], function()
        local resp, ok = read(c[2], {}, c[5])
        assert.is_nil(ok)
        assert.equal(c[3], resp.curl_code, resp.curl_error)
        assert.equal(c[4], resp.error_kind)
        assert_contract_shape(resp, false, c[1])
      end)
    end
  end)

  describe("fuzzing", function()
    local SEEDS = {
      "HTTP/1.1 204 No Content\r\nX-Request-Id: abc\r\nServer: x\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\nX-Request-Id: r1\r\n\r\n"
        .. "{\"a\":\"bcd\"}",
      "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\nX-Request-Id: r2\r\n\r\n5\r\nhello\r\n"
        .. "6;ext=1\r\n world\r\n0\r\nX-T: 1\r\n\r\n",
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nX-Subject-Token: MIItoken\r\nContent-Length: 2\r\n\r\n{}",
      "HTTP/1.0 500 Oops\r\nContent-Type: text/plain\r\n\r\nuntil close body",
      "HTTP/1.1 429 Too Many\r\nRetry-After: 7\r\nLocation: http://x/\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
        .. "Content-Length: 0\r\n\r\n",
    }
    local TOKENS = { "\r", "\n", "\r\n", ":", " ", "\t", "0", "1", "9", "f", "g", "-", "+", ".", "HTTP/",
      "HTTP/1.1 ", "chunked", "Content-Length", "Transfer-Encoding", "\0", "\255", ";", ",", "X-Request-Id",
      "Connection: close", "100 Continue\r\n\r\n" }

    -- A fixed-seed generator, independent of math.random's state and version: the classic
    -- LCG state * 1103515245 + 12345 mod 2^31, the multiplier split in 16838 * 2^16 + 20077 so
    -- that no product passes 2^53 and doubles (Lua 5.1, 5.2, LuaJIT) compute it exactly as
    -- 5.3+ integers do.
    local function rng(seed)
      local state = seed
      return function(a, b)
        state = ((state * 16838) % 32768 * 65536 + state * 20077 + 12345) % 2147483648
        return a + math.floor(state / 65536) % (b - a + 1)
      end
    end

    local function mutate(R, s)
      for _ = 1, R(1, 4) do
        local op, p = R(1, 6), R(1, #s + 1)
        if op == 1 then s = s:sub(1, p - 1) .. s:sub(p + R(1, 4))
        elseif op == 2 then s = s:sub(1, p - 1) .. TOKENS[R(1, #TOKENS)] .. s:sub(p)
        elseif op == 3 then s = s:sub(1, p - 1) .. string.char(R(0, 255)) .. s:sub(p + 1)
        elseif op == 4 then s = s:sub(1, p)
        elseif op == 5 then
          local q = R(1, #s + 1)
          s = s:sub(1, p - 1) .. s:sub(q, q + R(0, 10)) .. s:sub(p)
        else s = s:gsub("\r\n", "\n", 1) end
      end
      return s
    end

    local function random_bytes(R)
      local out = {}
      for i = 1, R(0, 300) do out[i] = string.char(R(0, 255)) end
      return table.concat(out)
    end

    it("answers 6000 random and mutated answers with a response or a structured failure", function()
      local R = rng(20261202)
      local kinds = {}
      for n = 1, 6000 do
        local s = n % 6 == 0 and random_bytes(R) or mutate(R, SEEDS[R(1, #SEEDS)])
        local cap = R(1, 3) == 1 and R(1, 20) or 1048576
        local label = string.format("case %d: %q", n, s)
        local ok_call, resp, ok = pcall(read, split(s, function() return R(1, 40) end), { body_cap = cap, timeout = 2 })
        assert(ok_call, label .. " raised: " .. tostring(resp))
        assert_contract_shape(resp, ok, label)
        assert.is_true(#resp.body <= cap, label)
        if resp.truncated then assert.equal(cap, #resp.body, label) end
        -- The same bytes in one piece give the same answer.
        local whole = read({ s }, { body_cap = cap, timeout = 2 })
        for _, f in ipairs(OUTCOME) do
          assert.equal(whole[f], resp[f], label .. ": " .. f .. " depends on the pieces")
        end
        kinds[resp.error_kind or "ok"] = (kinds[resp.error_kind or "ok"] or 0) + 1
      end
      -- The mutations reach every kind a server can cause.
      for _, k in ipairs{ "ok", "reset", "protocol" } do assert.is_true((kinds[k] or 0) > 100, k) end
    end)

    describe("against libcurl", function()
      local emu, curl

      setup(function()
        emu = emulator.start()
        curl = require("eip.transport.curl")
      end)

      teardown(function()
        if emu then emu:stop() end
      end)

      -- Answers on which the two cannot agree, as the contract says: a NUL byte in a head
      -- (libcurl 7.88 drops the rest of that read), a transfer encoding libcurl decodes. (A
      -- header line starting with HTTP/ is a header to both: the C core knows status lines by
      -- their place.)
      local function comparable(s)
        local head = s:match("^(.-)\r?\n\r?\n") or s
        if head:find("\0", 1, true) then return false end
        for value in s:lower():gmatch("\ntransfer%-encoding:([^\n]*)") do
          for token in value:gmatch("[^,]+") do
            token = token:match("^[ \t]*(.-)[ \t\r]*$")
            if token ~= "" and token ~= "chunked" and token ~= "identity" then return false end
          end
        end
        return true
      end

      it("reads 300 mutated answers as libcurl does (status, headers, body, curl code, kind)", function()
        local R = rng(7)
        local compared = 0
        for n = 1, 400 do
          local s = mutate(R, SEEDS[R(1, #SEEDS)])
          if comparable(s) and compared < 300 then
            compared = compared + 1
            local cap = R(1, 3) == 1 and R(1, 20) or 1048576
            emu:inject{ action = "raw", raw = s }
            local t = curl.new{}
            -- (Every answer ends with the close: a timeout, here only a machine's stall, is no case.)
            local c = t:send{ method = "GET", url = emu.url .. "/fuzz", headers = {}, timeout = 10, connect_timeout = 5,
              body_cap = cap }
            t:close()
            local pieces = split(s, function() return R(1, 40) end)
            local l = read(pieces, { body_cap = cap, timeout = 10 }, { method = "GET" })
            local label = string.format("case %d: %q\nlibcurl: %s", n, s, tostring(c.curl_error))
            for _, f in ipairs(OUTCOME) do assert.equal(c[f], l[f], label .. "\n" .. f) end
          end
        end
        assert.equal(300, compared)
      end)
    end)
  end)
end)
