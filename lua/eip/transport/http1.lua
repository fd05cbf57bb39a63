--- eip.transport.http1: reads one HTTP/1.1 response, bounded, from any byte source.
--
-- The reader of the cosocket transport, kept apart from nginx so that it runs anywhere (a spec
-- feeds it strings, random bytes included). It fills the response table of the transport
-- contract (lua/eip/transport/init.lua) and keeps every limit written there: a header line
-- shorter than 100 KiB, 300 KiB of headers per answer, 16 hex digits per chunk size, the body cap,
-- one deadline for the whole exchange, the low-speed abort. For the same bytes it answers what
-- the C core answers (status, captured headers, body, curl code): libcurl 7.88, held to the
-- contract's status-line rule; where the two cannot agree the contract says so. It never
-- raises for anything the source delivers.
--
-- Driving it:
--   local x = http1.exchange(req, now)   -- req: timeout, low_speed_limit, low_speed_time, body_cap
--                                        -- now(): seconds, monotonic enough (ngx.now, a fake clock)
--   x.recv = function(x, max, wait) ... end   -- 1..max bytes within `wait` seconds, or nil and
--                                             -- "timeout", "closed" or any other error text
--   http1.begin(x)                            -- before each attempt (a fresh connection)
--   local ok, reusable = http1.read(x, method)   -- ok: an answer (maybe truncated) is in x.resp;
--                                                -- nil: x.resp carries curl_code/curl_error/error_kind
--   local resp = http1.finish(x)
--
-- Parsing works on one buffer string with a read position: one receive usually brings the
-- whole answer, and each line is then found with string.find, without a substring per line
-- (only captured values and header names are cut out). A line that spans reads is collected in
-- a list, so an endless line costs linear time and at most LIMITS.header_line bytes.
--
-- LuaJIT (inside nginx): each request is a coroutine that yields in its socket calls, so the
-- JIT compiles the code of a request piecewise, starting at the entry of whichever function
-- got hot. A function it cannot compile so is retried a few times and then blacklisted, and
-- from then on every trace that calls it is abandoned as well: one such function can leave the
-- whole request path interpreted (`jit.v` shows it as "blacklisted at <function>"). So the
-- functions on the request path (here, in eip.transport.cosocket, eip.transport, eip.pipeline
-- and eip.ops) avoid what LuaJIT cannot compile from a function's entry:
--  * ending in a tail call of a builtin (`return sub(s, i, j)`, `return setmetatable(t, mt)`,
--    `return rawget(_G, "ngx")`): the value is put in a local and returned;
--  * a small function called through pcall on every request, which returns straight into
--    pcall (eip.transport's Auto reads the nginx phase without one). The cosocket exchange
--    keeps its pcall: it yields before it returns, and `jit.v` shows no abort at its entry;
--  * making a closure (its upvalues are closed as the function returns: UCLO): what makes one
--    once (eip.transport.cosocket's peek API) is a function apart from what every request calls.
-- spec/openresty_process_spec.lua runs many deletes under `jit.v` and fails on such an abort.
local contract = require "eip.transport"

local M = {}

local LIMITS = contract.LIMITS
local HEADER_LINE_MAX = LIMITS.header_line
local HEADER_BLOCK_MAX = LIMITS.header_block
local CHUNK_HEX_MAX = LIMITS.chunk_hex
local TRAILER_LINE_MAX = LIMITS.trailer_line
local CAPTURED_MAX = contract.CAPTURED_MAX
local error_kind = contract.error_kind

--- Bytes asked for per receive (a source may return fewer).
M.READ_SIZE = 65536

local find, sub, byte, lower, match = string.find, string.sub, string.byte, string.lower, string.match
local gmatch = string.gmatch
local concat = table.concat
local floor, min, tonumber, format = math.floor, math.min, tonumber, string.format

local CR, LF, SP, HT = 13, 10, 32, 9

-- Headers the reader looks at: captured ones (response field name) and framing ones ("="
-- prefix). Common spellings are listed so that most lines need no lower().
local HEADERS = {}
for name, field in pairs{
  ["x-request-id"] = "request_id", ["retry-after"] = "retry_after", ["content-type"] = "content_type",
  ["location"] = "location", ["date"] = "date", ["x-subject-token"] = "subject_token",
  -- IAM's request id: request_id when no X-Request-Id comes (before or after it), as in the C core
  ["x-iam-trace-id"] = "trace_id",
  ["content-length"] = "=length", ["transfer-encoding"] = "=te", ["connection"] = "=connection",
} do
  HEADERS[name] = field
  HEADERS[name:gsub("^%l", string.upper):gsub("%-%l", string.upper)] = field
end
HEADERS["X-Request-ID"] = "request_id"
HEADERS["X-IAM-Trace-Id"] = "trace_id"
-- Lengths of the names above: any other name is skipped without a substring.
local NAME_LENGTHS = {}
for name in pairs(HEADERS) do NAME_LENGTHS[#name] = true end

local CAPTURED_FIELDS = { "request_id", "retry_after", "content_type", "location", "date", "subject_token" }

-- Exchange -------------------------------------------------------------------------------------

local function number_or(v, default)
  if type(v) ~= "number" then v = tonumber(v) end
  if v == nil or v ~= v then return default end
  return v
end

-- A table with room for n fields: LuaJIT's table.new where there is one.
local new_table = (function()
  local ok, new = pcall(require, "table.new")
  if ok then return function(n) return new(0, n) end end
  return function() return {} end
end)()

--- A new exchange for req (timeout, low_speed_limit, low_speed_time, body_cap) with clock `now`.
-- Its `resp` is the contract's response table, filled as the exchange goes. `x`: optional, the
-- table of a finished exchange given to @{release}, filled again instead of a new one (a
-- transport keeps a few: a table of some thirty fields per request is otherwise garbage).
function M.exchange(req, now, x)
  local started = now()
  local timeout = number_or(req.timeout, 30)
  if timeout <= 0 then timeout = 30 end
  local cap = floor(number_or(req.body_cap, 1048576))
  if cap < 1 then cap = 1 end
  local ls_limit, ls_time = number_or(req.low_speed_limit, 0), number_or(req.low_speed_time, 0)
  -- Room for every field of the reader and a transport's few, so that it is sized once.
  x = x or new_table(32)
  x.now, x.started, x.timeout, x.deadline, x.cap = now, started, timeout, started + timeout, cap
  x.ls_on, x.ls_limit, x.ls_time, x.ls_start, x.ls_bytes = ls_limit > 0 and ls_time > 0, ls_limit, ls_time, started, 0
  x.buf, x.pos, x.received, x.body_bytes = "", 1, 0, 0
  x.lines_seen, x.stored_header, x.head_cut, x.parts, x.kept = 0, false, false, false, 0
  x.nul_s, x.nul_from, x.nul_at, x.proxy, x.line_came, x.trailer_bytes = false, 0, false, false, false, 0
  x.head_state = x.head_state or false
  x.resp = { status = 0, body = "", truncated = false, new_connections = 0, elapsed = 0 }
  return x
end

--- Drops what a finished exchange x still holds (its last buffer, its response), so that x can
-- be given to @{exchange} again.
function M.release(x)
  x.buf, x.nul_s, x.parts, x.resp = "", false, false, false
end

--- Readies x for an attempt on a fresh connection: the buffer and counters start empty.
function M.begin(x)
  x.buf, x.pos, x.received, x.body_bytes = "", 1, 0, 0
end

--- What both transports say of an answer whose connection closed inside its final head.
M.CUT_HEAD = "Weird server reply: the connection closed inside the response's head"

--- Records a failure (curl code, text, kind) in x.resp; returns nil. Through a proxy (x.proxy
-- set by the transport), the kind says so (see the contract's error_kind).
function M.fail(x, code, text)
  local resp = x.resp
  resp.curl_code, resp.curl_error = code, text
  resp.error_kind = error_kind(code, text, x.proxy, resp.proxy_status)
  return nil
end
local fail = M.fail

--- Forgets a failure recorded in x.resp (before a retry on a fresh connection).
function M.clear_failure(x)
  local resp = x.resp
  resp.curl_code, resp.curl_error, resp.error_kind = nil, nil, nil
end

--- Forgets what an answer said (status, captured headers, body): a proxy's answer is never
-- the API's.
function M.clear_answer(x)
  local resp = x.resp
  resp.status, resp.body, resp.truncated = 0, "", false
  for k = 1, #CAPTURED_FIELDS do resp[CAPTURED_FIELDS[k]] = nil end
end

-- A first line of a head that is no status line the contract accepts: a failure with code 1,
-- and nothing of the answer kept (not even an interim answer's status), as in the C core.
-- Returns nil.
local function refuse(x, text)
  M.clear_answer(x)
  return fail(x, 1, text)
end

--- Seconds left before the deadline of the whole exchange (may be <= 0).
function M.remaining(x)
  return x.deadline - x.now()
end

--- Sets resp.elapsed and returns resp. (`date` only beside a `retry_after`, what it is read for:
-- as the C core, which builds no string for it on every answer.)
function M.finish(x)
  local resp = x.resp
  resp.elapsed = x.now() - x.started
  if resp.retry_after == nil then resp.date = nil end
  return resp
end

local function timed_out(x)
  return fail(x, 28, format("Operation timed out after %d milliseconds with %d bytes received",
    floor(x.timeout * 1000 + 0.5), x.body_bytes))
end
M.timed_out = timed_out

local function too_slow(x)
  return fail(x, 28, format("Operation too slow. Less than %g bytes/sec transferred the last %g seconds",
    x.ls_limit, x.ls_time))
end

-- Receiving ------------------------------------------------------------------------------------

-- One wait for up to max bytes: the data; or nil, "closed" at the end of the stream; nil, nil
-- after a failure was recorded (timeout, too slow, receive error); or false when a low-speed
-- window ended with nothing received and the wait goes on.
local function receive_once(x, max)
  local now = x.now()
  local wait = x.deadline - now
  if wait <= 0 then return nil, timed_out(x) end
  local window_end
  if x.ls_on then
    window_end = x.ls_start + x.ls_time
    if window_end - now < wait then wait = window_end - now end
    if wait < 0.001 then wait = 0.001 end
  end
  local data, err = x.recv(x, max, wait)
  if data then
    local n = #data
    x.received = x.received + n
    if not x.ls_on then return data end
    x.ls_bytes = x.ls_bytes + n
  elseif err == "closed" then
    return nil, "closed"
  elseif err ~= "timeout" then
    return nil, fail(x, 56, "Recv failure: " .. tostring(err))
  elseif not x.ls_on then
    return nil, timed_out(x)
  end
  -- Low speed: at the end of each window of low_speed_time seconds, the window's bytes must
  -- reach low_speed_limit per second.
  now = x.now()
  if now >= window_end then
    local span = now - x.ls_start
    if x.ls_bytes < x.ls_limit * span then return nil, too_slow(x) end
    x.ls_start, x.ls_bytes = now, 0
  end
  if data then return data end
  if now >= x.deadline then return nil, timed_out(x) end
  return false
end

-- One receive of up to max bytes. Returns as receive_once, never false. The loop is entered
-- only for a wait that goes on: see "LuaJIT" above.
local function receive(x, max)
  local data, why = receive_once(x, max)
  while data == false do data, why = receive_once(x, max) end
  return data, why
end

-- Lines ------------------------------------------------------------------------------------------

-- Does the start of a first line rule out an HTTP status line? libcurl decides from the first
-- bytes, before the line is complete ("Received HTTP/0.9 when not allowed").
local function not_http(s, i, n)
  if n > 5 then n = 5 end
  return lower(sub(s, i, i + n - 1)) ~= sub("http/", 1, n)
end

local NOT_HTTP = "Received HTTP/0.9 when not allowed"
local BAD_ARGUMENT = "A libcurl function was given a bad argument"
local LINE_TOO_LONG = format("Response header line too long (%d bytes or more)", HEADER_LINE_MAX)
local TRAILER_TOO_LONG = "Trailer line too long in chunked-encoding"
local TRAILERS_TOO_LARGE = "Too large response trailers"
local TRAILER_BLOCK_MAX = LIMITS.trailer_block

-- The next line. Returns s, i, j, len: the line is s[i..j] (without its LF; a CR before the LF
-- is kept) and len its length with the LF. Or nil, "closed" (the stream ended first), or
-- nil, nil after a failure was
-- recorded: the line reached `limit` (code `code`, text `text`), a receive failed, or `first`
-- is set and the line cannot be a status line.
local function next_line(x, limit, code, text, first)
  local buf, pos = x.buf, x.pos
  local e = find(buf, "\n", pos, true)
  if e then
    local len = e - pos + 1
    if len >= limit then return nil, fail(x, code, text) end
    if first and not_http(buf, pos, len) then return nil, refuse(x, NOT_HTTP) end
    x.pos = e + 1
    return buf, pos, e - 1, len
  end
  -- The line spans reads: collect its pieces.
  local n = #buf - pos + 1
  local parts = { n > 0 and sub(buf, pos) or nil }
  x.buf, x.pos = "", 1
  local prefix_checked = not first
  while true do
    if not prefix_checked and n > 0 then
      if not_http(concat(parts), 1, n) then return nil, refuse(x, NOT_HTTP) end
      prefix_checked = n >= 5
    end
    if n >= limit then return nil, fail(x, code, text) end -- it cannot end in time any more
    local data, why = receive(x, M.READ_SIZE)
    if not data then
      return nil, why
    end
    e = find(data, "\n", 1, true)
    if e then
      local len = n + e
      if len >= limit then return nil, fail(x, code, text) end
      parts[#parts + 1] = sub(data, 1, e)
      x.buf, x.pos = data, e + 1
      local line = concat(parts)
      if first and not_http(line, 1, len) then return nil, refuse(x, NOT_HTTP) end
      return line, 1, len - 1, len
    end
    parts[#parts + 1] = data
    n = n + #data
  end
end

-- Skips everything up to and including the next LF, keeping nothing (chunk extensions: libcurl
-- skips them without limit, and so do we; only the deadline bounds them). true, or as receive.
local function skip_line(x)
  while true do
    local e = find(x.buf, "\n", x.pos, true)
    if e then
      x.pos = e + 1
      return true
    end
    x.buf, x.pos = "", 1
    local data, why = receive(x, M.READ_SIZE)
    if not data then return nil, why end
    x.buf = data
  end
end

-- One more receive appended to what is left of the buffer (a few bytes of chunk framing).
-- true, or as receive.
local function more(x)
  local data, why = receive(x, M.READ_SIZE)
  if not data then return nil, why end
  local pos, buf = x.pos, x.buf
  if pos > #buf then
    x.buf = data
  else
    x.buf = sub(buf, pos) .. data
  end
  x.pos = 1
  return true
end

-- Status line ------------------------------------------------------------------------------------

-- sscanf's %Nd at s[i..j]: skips white space, then an optional sign and up to `width`
-- characters (sign included) of digits. Returns value, next index; or nil, "eof" when only white
-- space was left (sscanf's input failure), nil when no digit came.
local function scan_int(s, i, j, width)
  while i <= j do
    local c = byte(s, i)
    if c ~= SP and (c < 9 or c > 13) then break end
    i = i + 1
  end
  if i > j then return nil, "eof" end
  local sign, k = 1, i
  local c = byte(s, k)
  if k <= j and (c == 43 or c == 45) then
    if c == 45 then sign = -1 end
    k = k + 1
  end
  local last = min(j, i + width - 1)
  local value, digits = 0, 0
  while k <= last do
    c = byte(s, k)
    if c < 48 or c > 57 then break end
    value, digits, k = value * 10 + (c - 48), digits + 1, k + 1
  end
  if digits == 0 then return nil end
  return sign * value, k
end

-- The contract's status line (lua/eip/transport/init.lua): "HTTP/1.0" or "HTTP/1.1", one or more
-- SP, three digits 100-599 (no HTTP status is any other), then the end of the line or SP (a reason
-- phrase, possibly empty); anything else as the first line of a head, interim or final, fails with
-- code 1. The C core (src/http.c, eip_http_status_code) holds every status line libcurl hands it to
-- the same rule, with the same texts.
local BAD_STATUS = "Unsupported status line in response (wanted HTTP/1.0 or HTTP/1.1, then a code 100-599)"
local SWITCHING = "Switching Protocols (101) answered, though no protocol upgrade was asked for"

-- The common case, "HTTP/1.1 204 No Content", by bytes (no pattern, no substring): status,
-- version (10 or 11) of s[i..j] (its LF excluded, a CR before it kept); or nil when s[i..j] is
-- any other line, one SP before the code or not, valid or not.
local function plain_status(s, i, j)
  local h, t1, t2, p, slash, one, dot, minor, sp, d1, d2, d3 = byte(s, i, i + 11)
  if h == 72 and t1 == 84 and t2 == 84 and p == 80 and slash == 47 and one == 49 and dot == 46 and sp == SP
      and j >= i + 11 then
    local after = i + 12 <= j and byte(s, i + 12) or nil
    if (minor == 48 or minor == 49) and d1 >= 49 and d1 <= 53 and d2 >= 48 and d2 <= 57 and d3 >= 48
        and d3 <= 57 and (not after or after == SP or (after == CR and i + 12 == j)) then
      return (d1 - 48) * 100 + (d2 - 48) * 10 + d3 - 48, minor - 38
    end
  end
  return nil
end

-- libcurl 7.88's own refusal of a status line s[i..j] (sscanf " HTTP/%1d.%1d%c%3d%c" and its
-- fallbacks), for its text: the C core reports libcurl's text for a line libcurl refuses by
-- itself, its own (BAD_STATUS) for one libcurl takes and the contract does not ("http/1.1 500"
-- is libcurl's HTTP/1.0 200, "HTTP/2 204" its HTTP/2 204). Returns that text, or nil when
-- libcurl takes the line. The line is known to start with "http/" in any case.
local function libcurl_refusal(s, i, j)
  if sub(s, i, i + 4) ~= "HTTP/" then return nil end
  local major, k = scan_int(s, i + 5, j, 1)
  if not major then
    -- sscanf gives EOF (-1) when the line ends there, 0 when something else follows.
    if k == "eof" then return "Unsupported HTTP version in response" end
    return nil
  end
  local nc, version, sep, status, digit4 = 1, 0, nil, nil, nil
  if k <= j and byte(s, k) == 46 then -- "."
    local v, k2 = scan_int(s, k + 1, j, 1)
    if v then
      nc, version = 2, v
      if k2 <= j then
        sep, nc = byte(s, k2), 3
        local st, k3 = scan_int(s, k2 + 1, j, 3)
        if st then
          nc, status = 4, st
          if k3 <= j then digit4, nc = byte(s, k3), 5 end
        end
      end
    end
  end
  if nc == 1 and major >= 2 and match(sub(s, i + 5, j), "^[23]%s*[+-]?%d") then
    -- " HTTP/%1[23] %d": taken for HTTP/2, refused for HTTP/3 (no QUIC).
    if major == 2 then return nil end
    return format("Unsupported HTTP version (%d.0) in response", major)
  end
  if (digit4 and digit4 >= 48 and digit4 <= 57) or (nc >= 4 and status < 100) then
    return "Unsupported response code in HTTP response"
  end
  if nc >= 4 and sep == SP then
    local v = major * 10 + version
    if v == 10 or v == 11 or v == 20 then return nil end
    return format("Unsupported HTTP version (%d.%d) in response", major, version)
  end
  return "Unsupported HTTP version in response"
end

-- The status line s[i..j] by the contract's rule: status, version (10 or 11); or nil and the
-- text of the failure (code 1).
local function parse_status(s, i, j)
  local plain, plain_version = plain_status(s, i, j)
  if plain then return plain, plain_version end
  -- More than one SP before the code, or a refusal: off the fast path.
  local minor, code, k = match(s, "^HTTP/1%.([01]) +([1-5]%d%d)()", i)
  if minor and k <= j + 1 then
    local after = byte(s, k)
    if k > j or after == SP or (after == CR and k == j) then
      return tonumber(code), minor == "1" and 11 or 10
    end
  end
  return nil, libcurl_refusal(s, i, j) or BAD_STATUS
end

-- Header lines ------------------------------------------------------------------------------------

-- s[i..j] without the blanks around it (and the CR before the LF); "" when nothing is left.
local function trimmed(s, i, j)
  while i <= j do
    local c = byte(s, i)
    if c ~= SP and c ~= HT then break end
    i = i + 1
  end
  while j >= i do
    local c = byte(s, j)
    if c ~= SP and c ~= HT and c ~= CR and c ~= LF then break end
    j = j - 1
  end
  local v = sub(s, i, j) -- not a tail call: see "LuaJIT" above
  return v
end

-- The field name of the header whose name is s[i..c-1] (c: its colon), or nil when it is none
-- of ours.
local function field_of(s, i, c)
  if not NAME_LENGTHS[c - i] then return nil end -- most names: no substring made
  local name = sub(s, i, c - 1)
  return HEADERS[name] or HEADERS[lower(name)]
end

-- Stores the value after the colon at c (to j) as resp[field], as the C core does: blanks around
-- it removed, cut to CAPTURED_MAX bytes except the subject token, nothing when empty. A subject
-- token with a byte outside 0x21-0x7e (a control character, a blank inside) is no token: not
-- kept, as if absent (sent back as X-Auth-Token, it could not be a single header line). A
-- repeated header's last value wins, but Retry-After's are all kept, joined with ", " and the
-- whole cut as one value (the retry policy waits for the longest: the last alone, "60" then
-- "1", waited 1 s and sent again); an empty one adds nothing.
local function capture(x, field, s, c, j)
  local value = trimmed(s, c + 1, j)
  if field == "retry_after" and x.resp.retry_after then
    if value == "" then return end
    value = x.resp.retry_after .. ", " .. value
  end
  if value == "" then
    value = nil
  elseif field == "subject_token" then
    if find(value, "[^\33-\126]") then value = nil end
  elseif #value > CAPTURED_MAX then
    -- (the cut marked, as the C core marks it: see eip.transport's CAPTURED_MAX)
    value = sub(value, 1, CAPTURED_MAX - 3) .. "..."
  end
  if field == "trace_id" then
    if x.resp.request_id ~= nil then return end
    field = "request_id"
  end
  x.resp[field] = value
end

-- The texts of Content-Length values refused, the same as the C core's (src/http.c).
local LENGTHS_DIFFER = "Weird server reply: Content-Length values that differ"
local LENGTH_TOO_LARGE = "Weird server reply: Content-Length too large"

-- One Content-Length value as libcurl reads it (strtoll): blanks, an optional +, digits (anything
-- after them ignored). Returns the length and its digits without leading zeros (compared as
-- text: LuaJIT's and 5.1's numbers are doubles, equal for lengths 2^53 apart); false when it
-- does not fit in 63 bits; nil when it has no digits.
local function length_of(v)
  local digits = match(v, "^[ \t]*%+?(%d+)")
  if not digits then return nil end
  digits = match(digits, "^0*(%d-)$")
  if #digits > 19 or (#digits == 19 and digits > "9223372036854775807") then return false end
  return tonumber(digits) or 0, digits
end

-- A Content-Length line's value: its length and digits, nil when invalid (libcurl reads the
-- first element: no digits, a minus sign), or false and the refusal's text when an element (of
-- a list, "5, 2") is too large or says another length than `seen` (the head's digits so far) or
-- the first (see the C core's check_content_length: whose length would the answer have?).
local function content_length(v, seen)
  local n, digits = length_of(v)
  if n == nil then return nil end
  if n == false then return false, LENGTH_TOO_LARGE end
  if seen ~= nil and digits ~= seen then return false, LENGTHS_DIFFER end
  if find(v, ",", 1, true) then
    for element in gmatch(v, ",([^,]*)") do
      local m, other = length_of(element)
      if m == false then return false, LENGTH_TOO_LARGE end
      if m ~= nil and other ~= digits then return false, LENGTHS_DIFFER end
    end
  end
  return n, digits
end

local header_value

-- One header line s[i..j] of the head whose state is h. Returns true, or nil after fail().
local function header_line(x, h, s, i, j)
  local c = find(s, ":", i, true)
  if not c or c > j then
    -- libcurl: a folded continuation (a line starting with a blank, not the first header) is
    -- allowed and ignored; any other line needs a colon.
    local first = byte(s, i)
    if (first == SP or first == HT) and h.lines > 2 then return true end
    return fail(x, 8, "Header without colon")
  end
  -- libcurl 7.88 also stores every header (its headers API) and fails with 43 on a line it
  -- cannot store: a folded one with no header before it, or one without a colon before its
  -- first CR.
  local cr = find(s, "\r", i, true)
  if cr and cr > j + 1 then cr = nil end
  local first = byte(s, i)
  if first == SP or first == HT then
    if not x.stored_header then return fail(x, 43, BAD_ARGUMENT) end
    return true -- a continuation: never one of ours
  end
  if cr and cr < c then return fail(x, 43, BAD_ARGUMENT) end
  x.stored_header = true
  return header_value(x, h, s, i, c, j)
end

-- A complete header line can be read by both the general and the plain reader (below): the
-- value of the header line s[i..j] whose colon is at c, for the head h. true, or nil after fail().
header_value = function(x, h, s, i, c, j)
  local field = field_of(s, i, c)
  if not field then return true end
  if byte(field, 1) ~= 61 then -- not "=": a captured header
    capture(x, field, s, c, j)
    return true
  end
  local value = sub(s, c + 1, j)
  if field == "=connection" then
    if value == " keep-alive\r" then -- what nginx and most servers send
      h.keep_alive = true
      return true
    end
    value = lower(value)
    if find(value, "close", 1, true) then h.close = true end
    if find(value, "keep-alive", 1, true) then h.keep_alive = true end
  elseif h.bodyless and not (h.head and field == "=length") then
    -- 1xx, 204, 304: libcurl ignores their Content-Length and Transfer-Encoding; an answer to HEAD
    -- has its Content-Length checked (invalid: 8; overflowing: the connection closed)
    return true
  elseif field == "=length" then
    local n, digits = content_length(value, h.length_digits)
    if n == nil then return fail(x, 8, "Invalid Content-Length: value") end
    if not n then return fail(x, 8, digits) end
    h.length, h.length_digits = n, digits
  elseif field == "=te" then
    -- Only chunked and identity are read, and at most five codings that are not chunked (as
    -- libcurl 7.88 counts them): anything else fails at once, as the C core fails it for the
    -- libcurl transport (which would read an empty body under an unknown coding).
    for token in value:gmatch("[^,]+") do
      local original = trimmed(token, 1, #token)
      local t = lower(original)
      if t == "chunked" then
        h.chunked = true
      elseif t == "identity" then
        h.codings = h.codings + 1
        if h.codings > 5 then return fail(x, 61, "Reject response due to more than 5 content encodings") end
      elseif t ~= "" then
        -- As sent (capped): the message quotes it, and the pipeline's redaction of any secret
        -- a server echoes there is case-sensitive.
        return fail(x, 61, "Unrecognized transfer encoding: " .. sub(original, 1, 64)
          .. (#original > 64 and "..." or ""))
      end
    end
    -- RFC 9112 6.3, as libcurl 7.88 does it: a Transfer-Encoding that leaves the answer
    -- unchunked ("identity", empty, ...) overrides any Content-Length, before or after it;
    -- the body ends when the connection closes, which is never reused.
    if not h.chunked then h.close, h.no_length = true, true end
  end
  return true
end

-- A count of bytes as "%d" says it, for any length a head may announce: LuaJIT's "%d" of a
-- number at or near 2^63 (a double) overflows; such a number is a float in Lua 5.3+ only when it
-- is no integer.
local math_type = rawget(math, "type") -- (Lua 5.3+)
local function count_text(n)
  if n < 2 ^ 53 or (math_type and math_type(n) == "integer") then return format("%d", n) end
  return format("%.0f", n)
end

-- The stream ended inside the head h of the final answer, after its status line: libcurl takes
-- the answer as it is (status and headers so far, no body) unless the head announced a body.
local function ended_in_head(x, h)
  if h.bodyless then return false end
  if h.chunked then return fail(x, 18, "transfer closed with outstanding read data remaining") end
  if h.length and h.length > 0 then
    return fail(x, 18, "transfer closed with " .. count_text(h.length) .. " bytes remaining to read")
  end
  return false
end

-- Is there a NUL byte in s[i..j]? Each buffer is searched once for the lines it holds (not
-- once per line to its end): x.nul_at is the first NUL of x.nul_s at or after x.nul_from.
local function nul_in(x, s, i, j)
  local at
  if x.nul_s == s and x.nul_from <= i then
    at = x.nul_at
    if at and at < i then
      at = find(s, "\0", i, true) or false
      x.nul_from, x.nul_at = i, at
    end
  else
    at = find(s, "\0", i, true) or false
    x.nul_s, x.nul_from, x.nul_at = s, i, at
  end
  return at and at <= j
end

-- The state of a head whose status line said `status` (length is absent until a valid
-- Content-Length comes).
local function new_head(x, status, version, method)
  local resp = x.resp
  if resp.status ~= 0 then -- an earlier head of this exchange (an interim answer) captured some
    for k = 1, #CAPTURED_FIELDS do resp[CAPTURED_FIELDS[k]] = nil end
  end
  resp.status = status
  local h = x.head_state -- one per exchange, reused by every head it reads
  if not h then
    h = new_table(8)
    x.head_state = h
  end
  -- CONNECT: the head only (a 2xx has no body; after any other answer the connection is
  -- closed, its body unread).
  h.version, h.lines, h.length, h.length_digits = version, 1, nil, nil
  h.bodyless = status == 204 or status == 304 or method == "HEAD" or method == "CONNECT"
    or (status >= 100 and status < 200)
  -- libcurl keeps one close flag per connection through all the heads of an answer: a close
  -- announced by an interim head (Connection: close, or HTTP/1.0 without keep-alive) holds for
  -- an HTTP/1.1 head after it; an HTTP/1.0 head is closing anyway unless it says keep-alive.
  h.close = version >= 11 and x.closing
  h.keep_alive, h.chunked, h.codings, h.no_length = false, false, 0, false
  h.head = method == "HEAD" and status >= 200 and status ~= 204 and status ~= 304
  return h
end

-- The header line at i of a plain head (below) whose blank line is at stop: returns where the
-- next line starts; nil when the line is not plain; false after fail(). i itself when it is
-- past stop, nil or false (so that calls can follow one another).
local function plain_line(x, h, buf, i, stop)
  if not i or i > stop then return i end
  local e = find(buf, "\n", i, true)
  local j, first = e - 1, byte(buf, i)
  if e - i + 1 >= HEADER_LINE_MAX or byte(buf, j) ~= CR or first == SP or first == HT then return nil end
  local c = find(buf, ":", i, true)
  if not c or c > j or find(buf, "\r", i, true) ~= j then return nil end
  h.lines = h.lines + 1
  if not header_value(x, h, buf, i, c, j) then return false end
  return e + 1
end

-- A final answer's head that is whole in the buffer and plain, read in one pass: an HTTP/1.x
-- status line, then header lines each ending in CRLF, with a colon and no other CR, none
-- starting with a blank, no NUL, all within the limits (what servers send). The outcome is the
-- one of the line-by-line reading below, which reads any other head: returns h; false after
-- fail() (an invalid Content-Length); or nil when the head is not such a one (the status and
-- captured fields it may have set are set again by the line-by-line reading).
local function plain_head(x, method)
  local buf, pos = x.buf, x.pos
  local stop = find(buf, "\r\n\r\n", pos, true)
  if not stop or stop + 4 - pos > HEADER_BLOCK_MAX or nul_in(x, buf, pos, stop + 3) then return nil end
  local e = find(buf, "\n", pos, true)
  if e - pos + 1 >= HEADER_LINE_MAX or byte(buf, e - 1) ~= CR then return nil end
  local status, version = plain_status(buf, pos, e - 1)
  if not status or status < 200 then return nil end
  local h = new_head(x, status, version, method)
  -- The first eight header lines (all of most heads) one after the other, any more in a loop
  -- that most heads never enter: see "LuaJIT" above.
  local i = e + 1
  i = plain_line(x, h, buf, i, stop)
  i = plain_line(x, h, buf, i, stop)
  i = plain_line(x, h, buf, i, stop)
  i = plain_line(x, h, buf, i, stop)
  i = plain_line(x, h, buf, i, stop)
  i = plain_line(x, h, buf, i, stop)
  i = plain_line(x, h, buf, i, stop)
  i = plain_line(x, h, buf, i, stop)
  while i and i <= stop do i = plain_line(x, h, buf, i, stop) end
  if not i then return i end
  local lines = h.lines
  x.pos, x.lines_seen, x.stored_header, x.line_came = stop + 4, lines + 1, lines > 1, true
  return h
end

-- Reads heads until a final (non-1xx) answer. Returns the head state h, or nil after fail(),
-- or false when the stream ended inside the head after its status line (see ended_in_head).
local function read_head(x, method)
  local resp = x.resp
  if x.pos > #x.buf then -- nothing buffered: the first read (as next_line would make it)
    local data, why = receive(x, M.READ_SIZE)
    if not data then
      if why == "closed" then return fail(x, 52, "Empty reply from server") end
      return nil
    end
    x.buf, x.pos = data, 1
  end
  local h = plain_head(x, method)
  if h then return h end
  if h == false then return nil end
  local block = 0
  while true do
    local s, i, j, len = next_line(x, HEADER_LINE_MAX, 27, LINE_TOO_LONG, h == nil)
    if not s then
      if i ~= "closed" then return nil end -- a failure was recorded
      -- libcurl: nothing counts as an answer before a line of a final head ("Empty reply").
      if x.lines_seen == 0 or h == nil then return fail(x, 52, "Empty reply from server") end
      return ended_in_head(x, h)
    end
    x.lines_seen, x.line_came = x.lines_seen + 1, true
    block = block + len
    if h == nil then
      local status, version = parse_status(s, i, j)
      if not status then return refuse(x, version) end
      -- We never ask for an upgrade: a 101 is a protocol violation (a proxy's 101 to CONNECT is
      -- its refusal, reported as such by the cosocket transport).
      if status == 101 and method ~= "CONNECT" then return refuse(x, SWITCHING) end
      h = new_head(x, status, version, method)
      if nul_in(x, s, i, j) then return fail(x, 8, "Nul byte in header") end
    else
      local first = byte(s, i)
      if i > j or first == CR then -- the empty line: end of this head
        if block > HEADER_BLOCK_MAX then
          return fail(x, 56, format("Too large response headers: %d > %d", block, HEADER_BLOCK_MAX))
        end
        local status = resp.status
        if status < 100 or status >= 200 or status == 101 then return h end
        -- An interim answer: the final one follows, on a connection closed after it if this one
        -- said so.
        x.closing = h.close or (h.version < 11 and not h.keep_alive)
        h, x.lines_seen = nil, 0
      else
        h.lines = h.lines + 1
        if nul_in(x, s, i, j) then return fail(x, 8, "Nul byte in header") end
        if not header_line(x, h, s, i, j) then return nil end
      end
    end
    if block > HEADER_BLOCK_MAX then
      return fail(x, 56, format("Too large response headers: %d > %d", block, HEADER_BLOCK_MAX))
    end
  end
end

-- Body -----------------------------------------------------------------------------------------

-- The body's parts are joined as they come, PARTS_JOIN at a time while they are small (under
-- PARTS_JOIN_BYTES together): a body of tiny chunks (a hostile server's 3-byte chunks up to the
-- cap) would otherwise be a string and a table entry per chunk, 350k of them for 1 MiB, with the
-- memory and collector time that go with them. Joined, the parts stay a few per 64 of them, and a
-- large part (a whole read) is never copied more than once before the final join.
local PARTS_JOIN, PARTS_JOIN_BYTES = 64, 65536
M.PARTS_JOIN = PARTS_JOIN

-- Adds data to the body, up to the cap. Returns true while the body still fits.
local function keep(x, data)
  local room = x.cap - x.kept
  local n = #data
  x.body_bytes = x.body_bytes + n
  if n > room then
    data = sub(data, 1, room)
    x.resp.truncated = true
  end
  local parts, i, kept = x.parts, x.nparts + 1, #data
  parts[i] = data
  x.kept = x.kept + kept
  local from, bytes = x.group_from, x.group_bytes + kept
  if i - from >= PARTS_JOIN then
    if bytes < PARTS_JOIN_BYTES then
      local j = from + 1
      parts[j] = concat(parts, "", j, i)
      for k = i, j + 1, -1 do parts[k] = nil end
      i = j
    end
    x.group_from, bytes = i, 0
  end
  x.nparts, x.group_bytes = i, bytes
  return room >= n
end

-- Takes up to n bytes of the buffer (a receive first when it is empty). Returns the data, or as
-- receive.
local function take(x, n)
  local buf, pos = x.buf, x.pos
  local avail = #buf - pos + 1
  if avail <= 0 then
    local data, why = receive(x, n < M.READ_SIZE and n or M.READ_SIZE)
    if not data then return nil, why end
    buf, pos, avail = data, 1, #data
    x.buf = data
  end
  if avail <= n then
    x.pos = pos + avail
    return pos == 1 and buf or sub(buf, pos)
  end
  x.pos = pos + n
  return sub(buf, pos, pos + n - 1)
end

-- `length` bytes of body. true when done (complete or truncated), or nil after fail().
local function read_length(x, length)
  local left = length
  while left > 0 do
    local data, why = take(x, left)
    if not data then
      if why == "closed" then
        return fail(x, 18, "transfer closed with " .. count_text(left) .. " bytes remaining to read")
      end
      return nil
    end
    left = left - #data
    if not keep(x, data) then return true end
  end
  return true
end

local OUTSTANDING = "transfer closed with outstanding read data remaining"

local function chunk_failure(x, why)
  if why == "closed" then return fail(x, 18, OUTSTANDING) end
  return nil
end

-- The hex digits of a chunk size (libcurl: at most 16, at least one, no leading blank), then the
-- rest of the line skipped. Returns the size, or nil after fail().
local function chunk_size(x)
  while true do
    local buf, pos = x.buf, x.pos
    local s, e = find(buf, "^%x+", pos)
    local digits = s and e - s + 1 or 0
    if digits > CHUNK_HEX_MAX then
      return fail(x, 56, "Too long hexadecimal number in chunked-encoding")
    end
    if (e or pos - 1) < #buf then -- a byte that is not a hex digit follows
      if digits == 0 then return fail(x, 56, "Illegal or missing hexadecimal sequence in chunked-encoding") end
      local hex = match(sub(buf, s, e), "^0*(.-)$")
      if #hex == 16 and byte(hex, 1) > 55 then -- over 2^63 - 1 ("8" is 56)
        return fail(x, 56, "Illegal or missing hexadecimal sequence in chunked-encoding")
      end
      x.pos = e + 1
      local ok, why = skip_line(x)
      if not ok then return chunk_failure(x, why) end
      return hex == "" and 0 or tonumber(hex, 16)
    end
    local ok, why = more(x) -- the buffer ends inside the digits
    if not ok then return chunk_failure(x, why) end
  end
end

-- After chunk data: any CRs, then an LF. true, or nil after fail().
local function chunk_end(x)
  while true do
    local buf, pos = x.buf, x.pos
    local c = byte(buf, pos)
    while c == CR do
      pos = pos + 1
      c = byte(buf, pos)
    end
    x.pos = pos
    if c == LF then
      x.pos = pos + 1
      return true
    end
    if c ~= nil then return fail(x, 56, "Malformed encoding found in chunked-encoding") end
    local ok, why = more(x)
    if not ok then return chunk_failure(x, why) end
  end
end

-- One byte at x.pos + off, reading more when the buffer ends there. The byte, or nil and as
-- receive.
local function byte_at(x, off)
  local c = byte(x.buf, x.pos + off)
  if c then return c end
  local ok, why = more(x)
  if not ok then return nil, why end
  return byte(x.buf, x.pos + off)
end

-- One trailer, s[i..j], as libcurl stores it (its header callback and headers store): a NUL or a
-- line without a colon fails (43), a folded one joins the one before it, captured ones are
-- captured.
local function trailer(x, s, i, j)
  local z = find(s, "\0", i, true)
  if z and z <= j then return fail(x, 43, "Failed reading the chunked-encoded stream") end
  local first = byte(s, i)
  if (first == SP or first == HT) and x.stored_header then return true end
  local c = find(s, ":", i, true)
  if not c or c > j then return fail(x, 43, "Failed reading the chunked-encoded stream") end
  x.stored_header = true
  local field = field_of(s, i, c)
  if field and byte(field, 1) ~= 61 then capture(x, field, s, c, j) end
  return true
end

-- Trailer lines up to the empty one, following libcurl 7.88's states: a trailer ends at a CR or
-- an LF and is stored then; a CR must be followed by an LF; the empty line ends the body once
-- its CR came (the stream may end there). Captured headers among trailers are captured, as the
-- C core's header callback sees them; nothing else is kept.
local function trailers(x)
  while true do
    local c1, why = byte_at(x, 0)
    if not c1 then return chunk_failure(x, why) end
    if c1 == LF then
      x.pos = x.pos + 1
      return true
    end
    if c1 == CR then
      local c2, why2 = byte_at(x, 1)
      if not c2 then return why2 == "closed" or nil end
      if c2 ~= LF then return fail(x, 56, "Malformed encoding found in chunked-encoding") end
      x.pos = x.pos + 2
      return true
    end
    local e = find(x.buf, "[\r\n]", x.pos)
    while not e do
      if #x.buf - x.pos + 1 > TRAILER_LINE_MAX + 2 then return fail(x, 56, TRAILER_TOO_LONG) end
      local ok, why3 = more(x)
      if not ok then return chunk_failure(x, why3) end
      e = find(x.buf, "[\r\n]", x.pos)
    end
    local buf, pos = x.buf, x.pos
    if e - pos > TRAILER_LINE_MAX then return fail(x, 56, TRAILER_TOO_LONG) end
    -- All of them bounded too (an endless stream of trailers), each line with a CRLF, as the C
    -- core counts what libcurl hands it.
    x.trailer_bytes = x.trailer_bytes + (e - pos) + 2
    if x.trailer_bytes > TRAILER_BLOCK_MAX then return fail(x, 56, TRAILERS_TOO_LARGE) end
    if not trailer(x, buf, pos, e - 1) then return nil end
    x.pos = e
    if byte(buf, e) == CR then
      local c2, why4 = byte_at(x, 1)
      if not c2 then return chunk_failure(x, why4) end
      if c2 ~= LF then return fail(x, 56, "Malformed encoding found in chunked-encoding") end
      x.pos = x.pos + 1
    end
    x.pos = x.pos + 1
  end
end

-- The value of each hex digit, by byte.
local HEX_DIGIT = {}
for i = 0, 15 do
  HEX_DIGIT[byte(format("%x", i))], HEX_DIGIT[byte(format("%X", i))] = i, i
end

local function read_chunked(x)
  while true do
    -- The common case in one step: a size line of at most 8 hex digits and its CRLF, then the
    -- whole chunk and its CRLF, in the buffer. It reads what chunk_size, take and chunk_end would,
    -- without their calls: a body of tiny chunks costs a few operations per chunk.
    -- Byte by byte rather than with a pattern, which LuaJIT would not compile.
    local buf, pos = x.buf, x.pos
    local size, e = HEX_DIGIT[byte(buf, pos)], pos + 1
    if size then
      local d = HEX_DIGIT[byte(buf, e)]
      while d and e - pos < 8 do
        size, e = size * 16 + d, e + 1
        d = HEX_DIGIT[byte(buf, e)]
      end
      if byte(buf, e) ~= CR or byte(buf, e + 1) ~= LF then size = nil end
      e = e + 1 -- the LF
    end
    if size and size > 0 and byte(buf, e + size + 1) == CR and byte(buf, e + size + 2) == LF then
      x.pos = e + size + 3
      if not keep(x, sub(buf, e + 1, e + size)) then return true end
    else
      size = chunk_size(x)
      if not size then return nil end
      if size == 0 then return trailers(x) end
      local left = size
      while left > 0 do
        local data, why = take(x, left)
        if not data then return chunk_failure(x, why) end
        left = left - #data
        if not keep(x, data) then return true end
      end
      if not chunk_end(x) then return nil end
    end
  end
end

local function read_until_close(x)
  while true do
    local data, why = take(x, M.READ_SIZE)
    if not data then return why == "closed" or nil end
    if not keep(x, data) then return true end
  end
end

--- Reads the answer to a `method` request from x's source into x.resp. Returns true and whether
-- the connection may be reused when an answer came (complete or truncated; x.head_cut is set
-- when the stream ended inside its head, which libcurl takes as it is), or nil when it
-- failed (x.resp has curl_code, curl_error, error_kind; and the status, headers and partial
-- body of an answer that broke off). Never raises for anything the source delivers. A final
-- head of status `stop_status` (optional) ends the read there: its body is not read, and the
-- connection is not reused.
function M.read(x, method, stop_status)
  x.lines_seen, x.stored_header, x.head_cut, x.closing, x.line_came = 0, false, false, false, false
  local h = read_head(x, method)
  if h == false then -- ended inside the head (x.head_cut tells)
    x.head_cut = true
    -- A proxy's answer to CONNECT is read as libcurl reads it: as it is (see the cosocket
    -- transport). An answer of the API's is not: inside an interim head, no answer came (as
    -- after a whole one); inside the final one, it is unusable whatever its status line said
    -- (a 204 cut short is no delete done), where libcurl 7.88 would take it (the C core
    -- refuses it the same way).
    if method == "CONNECT" then return true, false end
    if x.resp.status < 200 then
      M.clear_answer(x)
      return fail(x, 52, "Empty reply from server")
    end
    return fail(x, 8, M.CUT_HEAD)
  end
  if not h then
    -- A failure before any final head (inside or after an interim one: a timeout, a close, a
    -- limit): no answer came, and the interim one's status and headers are not the answer's
    -- (the C core clears them the same way). A proxy's answer to CONNECT stays as it is.
    if x.resp.status < 200 and method ~= "CONNECT" then M.clear_answer(x) end
    return nil
  end
  local status = x.resp.status
  if status == stop_status then return true, false end -- (its body is not read)
  if h.bodyless then
    return true, x.pos > #x.buf and status ~= 101 and not h.close and (h.version >= 11 or h.keep_alive == true)
  end
  x.parts, x.kept, x.nparts, x.group_from, x.group_bytes = {}, 0, 0, 0, 0
  local ok, framed
  if h.chunked then
    ok, framed = read_chunked(x), true
  elseif h.length and not h.no_length then
    ok, framed = read_length(x, h.length), true
  else -- no length, one too large to read, or a Transfer-Encoding without chunked: the body
    -- ends when the connection closes
    ok, framed = read_until_close(x), false
  end
  local parts = x.parts
  x.resp.body = #parts == 1 and parts[1] or concat(parts)
  x.parts = false
  if not ok then return nil end
  return true, framed and not x.resp.truncated and x.pos > #x.buf and not h.close
    and (h.version >= 11 or h.keep_alive == true)
end

return M
