--- The nginx cosocket transport: HTTP/1.1 over ngx.socket.tcp, so a request handler that calls
-- the EIP API yields to nginx's event loop while it waits instead of blocking the worker.
--
-- Same contract as eip.transport.curl: M.new{ ca_file, insecure, user_agent } and
-- :send(req) -> the response table of the C core (status, request_id, retry_after,
-- content_type, location, body, truncated, elapsed, new_connections, and curl_code/curl_error
-- when no usable answer came). Failures carry the libcurl code of the equivalent failure, so
-- eip.errors classifies them exactly as it does for the libcurl transport.
--
-- Differences that come from nginx, not from us:
--  * host names are resolved by nginx's `resolver` directive (none configured: every name fails
--    with curl code 6); IP literals need no resolver;
--  * TLS peers are verified against `lua_ssl_trusted_certificate` (with `lua_ssl_verify_depth`);
--    the `ca_file` option applies to the libcurl transport only, as nginx has no per-socket
--    trust store. `insecure = true` turns verification off here too;
--  * idle connections live in nginx's per-worker cosocket pool (`lua_socket_pool_size`,
--    `lua_socket_keepalive_timeout`), keyed by scheme, host, port, SNI name and verify flag.
-- Only usable where cosockets are (see eip.transport); redirects are never followed.
local M = {}

local Transport = {}
Transport.__index = Transport

local MAX_HEADER_LINES = 100     -- more than this in one response head: a broken or hostile peer
local MAX_VALUE = 255            -- captured header values are truncated like the C core's (256 - NUL)
local READ_PIECE = 65536         -- read-until-close bodies are received in pieces of this size
local MAX_ATTEMPTS = 4           -- one fresh connection after up to 3 stale pooled ones

local CAPTURED = {
  ["x-request-id"] = "request_id", ["retry-after"] = "retry_after",
  ["content-type"] = "content_type", ["location"] = "location",
}

local function ngx_api()
  -- The nginx API is a global of the nginx Lua VM; rawget keeps this module loadable (and
  -- luacheck-clean) where it is absent.
  return rawget(_G, "ngx")
end

--- opts: ca_file (ignored here, see above), insecure, user_agent
function M.new(opts)
  opts = opts or {}
  return setmetatable({
    insecure = opts.insecure and true or false,
    user_agent = opts.user_agent,
  }, Transport)
end

-- URL -----------------------------------------------------------------------------------------

local DEFAULT_PORT = { http = 80, https = 443 }

-- Splits an absolute http(s) URL (already validated by eip.validate) into its parts.
local function parse_url(url)
  local scheme, authority, target = url:match("^(%a[%w+.-]*)://([^/?#]*)(.*)$")
  scheme = scheme and scheme:lower()
  if not DEFAULT_PORT[scheme] then
    return nil, "Unsupported protocol in " .. tostring(url)
  end
  local host, port = authority:match("^(%[[%x:.]+%]):?(%d*)$")
  if not host then
    host, port = authority:match("^([^:]+):?(%d*)$")
  end
  if not host then
    return nil, "URL has no valid host"
  end
  port = tonumber(port) or DEFAULT_PORT[scheme]
  if target == "" then target = "/" end
  local host_header = host
  if port ~= DEFAULT_PORT[scheme] then host_header = host .. ":" .. port end
  return {
    scheme = scheme, host = host, port = port, target = target, host_header = host_header,
    tls = scheme == "https",
    -- SNI and certificate names never carry the brackets of an IPv6 literal.
    server_name = host:gsub("^%[(.*)%]$", "%1"),
  }
end

-- Request ---------------------------------------------------------------------------------------

-- Header lines come from the Lua layer, which validated them; a CR, LF or NUL here would still
-- let a caller smuggle a second header, so they are checked once more at the edge, as in C.
local function check_header(i, h)
  if type(h) ~= "string" or h:find("[\r\n%z]") or not h:find(":", 1, true) then
    error("eip.transport.cosocket: header " .. i .. " is not a single 'Name: value' line", 3)
  end
end

local function has_header(headers, lname)
  for _, h in ipairs(headers) do
    if h:match("^([^:]*)"):lower() == lname then return true end
  end
  return false
end

local function request_text(self, req, u)
  local headers = req.headers or {}
  local lines = { req.method .. " " .. u.target .. " HTTP/1.1" }
  -- A signed request carries its own Host (the one it signed); as libcurl does, a caller's
  -- Host replaces ours rather than doubling it (nginx answers 400 to a duplicate Host).
  if not has_header(headers, "host") then lines[2] = "Host: " .. u.host_header end
  if self.user_agent and not has_header(headers, "user-agent") then
    lines[#lines + 1] = "User-Agent: " .. self.user_agent
  end
  for i, h in ipairs(headers) do
    check_header(i, h)
    lines[#lines + 1] = h
  end
  local body = req.body
  -- libcurl sends a length for every body, and an empty one for POST and PUT without a body.
  if body ~= nil or req.method == "POST" or req.method == "PUT" then
    body = body or ""
    lines[#lines + 1] = "Content-Length: " .. #body
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = body or ""
  return table.concat(lines, "\r\n")
end

-- Exchange state ------------------------------------------------------------------------------

-- One send(): a deadline for the whole exchange, as libcurl's CURLOPT_TIMEOUT.
local function new_exchange(req)
  local ngx = ngx_api()
  ngx.update_time()
  local timeout = tonumber(req.timeout) or 30
  local connect_timeout = tonumber(req.connect_timeout) or 10
  local cap = tonumber(req.body_cap) or 1024 * 1024
  local started = ngx.now()
  return {
    ngx = ngx, started = started, deadline = started + timeout, timeout = timeout,
    connect_timeout = math.min(connect_timeout, timeout), cap = math.max(1, math.floor(cap)),
    received = 0, -- response bytes received on the current connection
    ls_limit = tonumber(req.low_speed_limit) or 0, ls_time = tonumber(req.low_speed_time) or 0,
    ls_start = started, ls_bytes = 0,
    resp = { status = 0, body = "", truncated = false, new_connections = 0 },
  }
end

-- Milliseconds left before the deadline; at least 1 (a 0 would mean "nginx's default").
local function remaining_ms(x)
  x.ngx.update_time()
  local left = (x.deadline - x.ngx.now()) * 1000
  return left >= 1 and math.floor(left) or 1
end

local function expired(x)
  x.ngx.update_time()
  return x.ngx.now() >= x.deadline
end

-- A failure to return: curl code and a libcurl-like text (never contains request headers).
local function fail(x, code, text)
  x.resp.curl_code = code
  x.resp.curl_error = text
  return nil
end

-- libcurl's low-speed abort (CURLOPT_LOW_SPEED_LIMIT / _TIME), approximated: the average rate
-- over each window of low_speed_time seconds must reach low_speed_limit bytes/s, and no read
-- waits longer than low_speed_time. Like libcurl's, it is a timeout (28).
local function low_speed_on(x)
  return x.ls_limit > 0 and x.ls_time > 0
end

local function too_slow(x)
  return fail(x, 28, string.format("Operation too slow. Less than %d bytes/sec transferred the last %d seconds",
    x.ls_limit, x.ls_time))
end

-- Milliseconds the next read may wait.
local function read_wait_ms(x)
  local ms = remaining_ms(x)
  if low_speed_on(x) then ms = math.max(1, math.min(ms, math.floor(x.ls_time * 1000))) end
  return ms
end

-- Accounts n received bytes; false when a window closed below the limit.
local function progress(x, n)
  x.received = x.received + n
  if not low_speed_on(x) then return true end
  x.ngx.update_time()
  local now = x.ngx.now()
  x.ls_bytes = x.ls_bytes + n
  local span = now - x.ls_start
  if span >= x.ls_time then
    if x.ls_bytes < x.ls_limit * span then return false end
    x.ls_start, x.ls_bytes = now, 0
  end
  return true
end

local function timeout_text(x)
  return string.format("Operation timed out after %d milliseconds with %d bytes received",
    math.floor(x.timeout * 1000 + 0.5), x.received)
end

-- Maps a cosocket receive error onto libcurl's code for the same situation.
local function receive_failure(x, err, partial_body)
  if err == "too slow" or (err == "timeout" and low_speed_on(x) and not expired(x)) then
    return too_slow(x)
  end
  if err == "timeout" then
    return fail(x, 28, timeout_text(x))
  end
  if err == "closed" then
    if x.received == 0 then
      return fail(x, 52, "Empty reply from server")
    end
    if partial_body then
      return fail(x, 18, partial_body)
    end
  end
  return fail(x, 56, "Recv failure: " .. tostring(err))
end

-- One line of the head (or of chunk framing), without its CRLF.
local function receive_line(x, sock)
  sock:settimeout(read_wait_ms(x))
  local line, err, partial = sock:receive("*l")
  if not line then
    x.received = x.received + #(partial or "")
    return nil, err
  end
  if not progress(x, #line + 2) then return nil, "too slow" end
  return line
end

-- Up to max bytes, as soon as any arrive.
local function receive_some(x, sock, max)
  sock:settimeout(read_wait_ms(x))
  local data, err = sock:receiveany(max)
  if not data then return nil, err end
  if not progress(x, #data) then return nil, "too slow" end
  return data
end

-- Connecting ----------------------------------------------------------------------------------

local function pool_name(self, u)
  local name = "eip:" .. u.scheme .. ":" .. u.host .. ":" .. u.port
  if u.tls then
    name = name .. ":" .. u.server_name .. (self.insecure and ":noverify" or ":verify")
  end
  return name
end

local function connect_failure(x, u, err)
  err = tostring(err)
  if err == "timeout" then
    return fail(x, 28, string.format("Connection timed out after %d milliseconds",
      math.floor(x.connect_timeout * 1000 + 0.5)))
  end
  if err:find("resolve", 1, true) or err:find("resolver", 1, true) then
    return fail(x, 6, "Could not resolve host: " .. u.server_name .. " (" .. err .. ")")
  end
  return fail(x, 7, string.format("Failed to connect to %s port %d: %s", u.server_name, u.port, err))
end

local function tls_failure(x, err)
  err = tostring(err)
  if err == "timeout" then
    return fail(x, 28, timeout_text(x))
  end
  -- libcurl reports a peer it cannot verify as 60 and any other handshake failure as 35; both
  -- classify as "tls", not retryable.
  if err:find("verif", 1, true) or err:find("certificate", 1, true) then
    return fail(x, 60, "SSL certificate problem: " .. err)
  end
  return fail(x, 35, "SSL handshake failed: " .. err)
end

-- Returns a connected (and, for https, handshaken) socket and whether it came from the pool.
local function open(self, x, u)
  local sock = x.ngx.socket.tcp()
  sock:settimeout(math.min(remaining_ms(x), math.floor(x.connect_timeout * 1000 + 0.5)))
  local ok, err = sock:connect(u.host, u.port, { pool = pool_name(self, u) })
  if not ok then
    if expired(x) then return fail(x, 28, timeout_text(x)) end
    return connect_failure(x, u, err)
  end
  local reused = (sock:getreusedtimes() or 0) > 0
  if not reused then
    x.resp.new_connections = x.resp.new_connections + 1
    if u.tls then
      sock:settimeout(remaining_ms(x))
      local session, herr = sock:sslhandshake(nil, u.server_name, not self.insecure)
      if not session then
        sock:close()
        return tls_failure(x, herr)
      end
    end
  end
  return sock, reused
end

-- Response head ---------------------------------------------------------------------------------

local function trim_value(v)
  v = v:gsub("^[ \t]+", ""):gsub("[ \t]+$", "")
  return #v > MAX_VALUE and v:sub(1, MAX_VALUE) or v
end

-- Reads one status line and its header lines into x (the captured headers of an earlier
-- interim answer are forgotten, as in C). Returns the framing headers, or nil after fail().
local function read_head(x, sock)
  local line, err = receive_line(x, sock)
  if not line then return receive_failure(x, err) end
  local major, minor, status = line:match("^HTTP/(%d)%.(%d) (%d%d%d)")
  if not status then
    return fail(x, 8, "Weird server reply (not an HTTP/1.x status line)")
  end
  local resp = x.resp
  resp.status = tonumber(status)
  resp.request_id, resp.retry_after, resp.content_type, resp.location = nil, nil, nil, nil
  local head = { version = tonumber(major) * 10 + tonumber(minor) }
  for _ = 1, MAX_HEADER_LINES + 1 do
    local h, herr = receive_line(x, sock)
    if not h then return receive_failure(x, herr) end
    if h == "" then return head end
    local name, value = h:match("^([^:%s]+)%s*:(.*)$")
    if name then
      name = name:lower()
      if CAPTURED[name] then
        resp[CAPTURED[name]] = trim_value(value)
      elseif head[name] == nil then
        head[name] = trim_value(value):lower()
      end
    end
  end
  return fail(x, 8, "Weird server reply (more than " .. MAX_HEADER_LINES .. " header lines)")
end

-- Reads heads until a final (non-1xx) answer.
local function read_final_head(x, sock)
  while true do
    local head = read_head(x, sock)
    if not head then return nil end
    if x.resp.status >= 200 or x.resp.status == 101 then return head end
  end
end

-- Response body ---------------------------------------------------------------------------------

-- Keeps at most the cap; returns true when the body is complete within it.
local function keep(x, parts, data)
  local room = x.cap - x.kept
  if #data > room then
    data = data:sub(1, room)
    x.resp.truncated = true
  end
  parts[#parts + 1] = data
  x.kept = x.kept + #data
  return not x.resp.truncated
end

local function read_length(x, sock, parts, length)
  -- Never read past the cap: the rest would only cost time for bytes we throw away.
  local want, got = math.min(length, x.cap - x.kept), 0
  while got < want do
    local data, err = receive_some(x, sock, math.min(READ_PIECE, want - got))
    if not data then
      return receive_failure(x, err, string.format("transfer closed with %d bytes remaining to read",
        length - got))
    end
    got = got + #data
    keep(x, parts, data)
  end
  if length > want then x.resp.truncated = true end
  return true
end

local function read_chunked(x, sock, parts)
  local outstanding = "transfer closed with outstanding read data remaining"
  while true do
    local line, err = receive_line(x, sock)
    if not line then return receive_failure(x, err, outstanding) end
    local size = tonumber(line:match("^%s*(%x+)"), 16)
    if not size then return fail(x, 56, "Recv failure: invalid chunk size") end
    if size == 0 then break end
    if not read_length(x, sock, parts, size) then return nil end
    if x.resp.truncated then return true end
    local crlf, cerr = receive_line(x, sock)
    if crlf ~= "" then return receive_failure(x, cerr or "bad chunk end", outstanding) end
  end
  for _ = 1, MAX_HEADER_LINES do -- trailers, up to the empty line
    local line, err = receive_line(x, sock)
    if not line then return receive_failure(x, err, outstanding) end
    if line == "" then return true end
  end
  return fail(x, 8, "Weird server reply (too many trailer lines)")
end

local function read_until_close(x, sock, parts)
  while true do
    -- One byte more than the room left tells a body of exactly the cap from a longer one.
    local data, err = receive_some(x, sock, math.min(READ_PIECE, x.cap - x.kept + 1))
    if not data then
      if err == "closed" then return true end
      return receive_failure(x, err)
    end
    if not keep(x, parts, data) then return true end
  end
end

-- Reads the body the head announces. Returns true when done (complete or truncated) and
-- whether the connection may be reused, or nil after fail().
local function read_body(x, sock, method, head)
  local status = x.resp.status
  if method == "HEAD" or status == 204 or status == 304 or status < 200 then
    return true, true
  end
  local parts = {}
  x.kept = 0
  local ok, reusable
  if (head["transfer-encoding"] or ""):find("chunked", 1, true) then
    ok, reusable = read_chunked(x, sock, parts), true
  elseif head["content-length"] then
    local length = tonumber(head["content-length"]:match("^%d+$"))
    if not length then return fail(x, 8, "Weird server reply (invalid Content-Length)") end
    ok, reusable = read_length(x, sock, parts, length), true
  else
    ok, reusable = read_until_close(x, sock, parts), false
  end
  x.resp.body = table.concat(parts)
  return ok, reusable and not x.resp.truncated
end

-- Sending ---------------------------------------------------------------------------------------

local function keepalive_allowed(head)
  local conn = head.connection or ""
  if conn:find("close", 1, true) then return false end
  return head.version >= 11 or conn:find("keep-alive", 1, true) ~= nil
end

-- One attempt on one connection. Returns "done", "retry" (a pooled connection turned out to be
-- dead before any answer: libcurl retries those on a fresh connection, and so do we) or
-- nil after fail().
local function attempt(self, x, req, u, payload)
  local sock, reused = open(self, x, u)
  if not sock then return nil end
  x.received = 0
  sock:settimeout(remaining_ms(x))
  local sent, serr = sock:send(payload)
  if not sent then
    sock:close()
    if reused and serr ~= "timeout" then return "retry" end
    if serr == "timeout" then return fail(x, 28, timeout_text(x)) end
    return fail(x, 55, "Send failure: " .. tostring(serr))
  end
  local head = read_final_head(x, sock)
  if not head then
    sock:close()
    local code = x.resp.curl_code
    if reused and x.received == 0 and (code == 52 or code == 56) then
      x.resp.curl_code, x.resp.curl_error, x.resp.status = nil, nil, 0
      return "retry"
    end
    return nil
  end
  local ok, reusable = read_body(x, sock, req.method, head)
  if ok and reusable and keepalive_allowed(head) then
    sock:setkeepalive()
  else
    sock:close()
  end
  return ok and "done" or nil
end

local function finish(x)
  x.ngx.update_time()
  x.resp.elapsed = x.ngx.now() - x.started
  return x.resp
end

--- req: method, url, headers (list of "Name: value"), body, timeout, connect_timeout, body_cap,
-- low_speed_limit, low_speed_time.
function Transport:send(req)
  local x = new_exchange(req)
  local u, uerr = parse_url(req.url)
  if not u then
    fail(x, 1, uerr)
    return finish(x)
  end
  local payload = request_text(self, req, u)
  for _ = 1, MAX_ATTEMPTS do
    if attempt(self, x, req, u, payload) ~= "retry" then break end
  end
  if x.resp.status == 0 and not x.resp.curl_code then
    fail(x, 52, "Empty reply from server") -- every attempt met a dead pooled connection
  end
  return finish(x)
end

--- Nothing to release: idle connections belong to nginx's pool, the others are closed.
function Transport:close() -- luacheck: ignore self
end

M.name = "cosocket"
M._parse_url = parse_url -- for the specs
return M
