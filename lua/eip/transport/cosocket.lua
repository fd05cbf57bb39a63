--- The nginx cosocket transport: HTTP/1.1 over ngx.socket.tcp, so a request handler that calls
-- the EIP API yields to nginx's event loop while it waits instead of blocking the worker.
--
-- It honours the transport contract written in eip.transport (lua/eip/transport/init.lua), as
-- the libcurl transport does; the answer is read by eip.transport.http1, which keeps the
-- contract's limits. Nothing a server sends and no TLS failure raises out of send(): every
-- failure is a response table with curl_code, curl_error and error_kind.
--
-- What comes from nginx (the contract lists it too):
--  * host names are resolved by nginx's `resolver` directive (none configured: every name fails
--    with curl code 6; a lookup past `resolver_timeout`: 28, as libcurl's; a name no DNS query
--    can carry, a label over 63 bytes: 6 at once, as libcurl's); IP literals need no resolver,
--    nor localhost and *.localhost, which are 127.0.0.1 then ::1 (after a refusal, or 200 ms
--    without an answer), as in libcurl (see loopback and connect);
--  * TLS peers are verified against `lua_ssl_trusted_certificate` (with `lua_ssl_verify_depth`);
--    the `ca_file` option applies to the libcurl transport only, as nginx has no per-socket
--    trust store. `insecure = true` turns verification off here too;
--  * idle connections live in nginx's per-worker cosocket pool (`lua_socket_pool_size`,
--    `lua_socket_keepalive_timeout`), keyed by scheme, host, port and, for TLS, the verified
--    name and the verify flag -- not by the trust store, which Lua cannot read: a connection
--    verified under one location's `lua_ssl_trusted_certificate` serves any location of the
--    worker (see "Trust store" in the contract).
--
-- TLS and IP addresses: nginx checks a certificate's names with X509_check_host, which never
-- matches an IP address, so for an IP literal the handshake is made with verification on and no
-- server name (nginx verifies the chain; no SNI is sent, as libcurl sends none for an IP), and
-- the address is then checked against the certificate's IP entries here, with OpenSSL's
-- X509_check_ip_asc through LuaJIT's FFI. A name is checked by nginx and once more here,
-- against the certificate's DNS entries alone, never a partial wildcard (see HOST_FLAGS).
-- resty.core's sslhandshake raises "assertion failed!" for some verification failures and,
-- asked for no session (`false`), can even report success after a failed verification; so a
-- session is always asked for, the call is protected, and anything short of a verified session
-- fails closed (60).
--
-- Proxies (req.proxy, decided by the client: see the contract): an https URL is reached
-- through a CONNECT tunnel to the proxy (Proxy-Authorization: Basic when credentials are
-- given), whose answer is read by eip.transport.http1 with the usual bounds within the connect
-- timeout; then TLS to the URL's host inside the tunnel, verified exactly as above. An http URL
-- is sent to the proxy in absolute form. A proxy's refusal (a CONNECT answered non-2xx, a 407
-- to a plain request) is a failure with proxy_status, never an answer.
local http1 = require "eip.transport.http1"

local M = {}

local Transport = {}
Transport.__index = Transport

-- Connections tried by one send: pooled ones that turn out dead are closed and the next taken
-- (after a batch the pool may hold dozens that went stale together), until a live or fresh one
-- answers; the deadline bounds it too. A fresh connection is never "retry".
local MAX_ATTEMPTS = 1024

-- Methods a second send leaves as the first did (RFC 9110, 9.2.2): sent again after a kept-alive
-- connection died unanswered.
local IDEMPOTENT = { GET = true, HEAD = true, PUT = true, DELETE = true, OPTIONS = true }

local find, sub, byte, lower, match = string.find, string.sub, string.byte, string.lower, string.match
local floor, tostring, type, pcall = math.floor, tostring, type, pcall
local concat = table.concat

local function ngx_api()
  -- The nginx API is a global of the nginx Lua VM; rawget keeps this module loadable (and
  -- luacheck-clean) where it is absent. Not a tail call: see "LuaJIT" in eip.transport.http1.
  local ngx = rawget(_G, "ngx")
  return ngx
end

local WEAK_KEYS = { __mode = "k" }

--- A cosocket transport (the README's OpenResty: give it as the option `transport` where the
-- automatic choice would not take cosockets). opts: ca_file (ignored here, see above), insecure
-- (a boolean: a string such as "false", or a number, would be true to Lua and turn verification
-- off by accident), user_agent (no control character: it goes on the wire as it is, as in the C
-- core, which refuses one too)
-- @tparam[opt] table opts the options of eip.transport.new: `ca_file`, `insecure`, `user_agent`
-- @treturn table a transport honouring the contract (`send`, `close`, `name` "cosocket")
-- @raise a Lua error (a string) when the options are not as eip.transport.settings checks them
--   (`insecure` not a boolean, `user_agent` not a string without control characters, ...)
function M.new(opts)
  opts = require("eip.transport").settings("eip.transport.cosocket", opts)
  return setmetatable({
    insecure = opts.insecure and true or false,
    user_agent_line = opts.user_agent and ("User-Agent: " .. opts.user_agent) or nil,
    -- Header lists sent again and again, and the last target sent to (see Request, URL).
    memos = setmetatable({}, WEAK_KEYS), nmemos = 0, candidate = false, last_key = false, last_t = false,
  }, Transport)
end

-- URL -----------------------------------------------------------------------------------------

local DEFAULT_PORT = { http = 80, https = 443 }

-- Parsed authorities by "scheme://authority", so that a client sending to one endpoint parses
-- it once. Bounded: emptied when it holds too many.
local targets, ntargets = {}, 0
local TARGETS_MAX = 256

-- (a label longer than a DNS query carries: 64 bytes or more)
local LONG_LABEL = "[^.]" .. string.rep("[^.]", 63)

-- Is `bare` (a host without brackets) an IP literal, which needs no resolver?
local function is_ip(bare)
  return find(bare, ":", 1, true) ~= nil or match(bare, "^%d+%.%d+%.%d+%.%d+$") ~= nil
end

-- libcurl 7.88 takes localhost and any name ending in ".localhost", in any case, for 127.0.0.1
-- and then ::1, and asks no resolver (lib/hostip.c, Curl_resolv): the README's loopback, never
-- proxied. The addresses such a name is connected to here, in that order; nil for a name
-- nginx's resolver resolves.
local LOOPBACK = { "127.0.0.1", "[::1]" }

local function loopback(bare)
  local name = lower(bare)
  if name == "localhost" or sub(name, -10) == ".localhost" then return LOOPBACK end
  return nil
end

-- Is `bare` a host name no DNS query can carry (RFC 1035: labels of 1 to 63 bytes, 253 in all,
-- a final dot aside)? libcurl fails on such a name at once (6, or 5 for a proxy's: getaddrinfo
-- asks no server); nginx's resolver declines it too, but the cosocket's connect then waited out
-- its timeout (28, sent again). It fails at once here, as in libcurl. (Not a loopback name, which
-- no query is made for, whatever its labels.)
local function undeliverable(bare)
  if is_ip(bare) or loopback(bare) then return false end
  local name = sub(bare, -1) == "." and sub(bare, 1, -2) or bare
  return #name > 253 or find("." .. name .. ".", "..", 1, true) ~= nil or find(name, LONG_LABEL) ~= nil
end

local function parse_authority(scheme, authority)
  local host, port = match(authority, "^(%[[%x:.]+%]):?(%d*)$")
  if not host then
    host, port = match(authority, "^([^:@%[%]]+):?(%d*)$")
  end
  if not host then return nil end
  port = tonumber(port) or DEFAULT_PORT[scheme]
  if port < 1 or port > 65535 then return nil end
  local bare = (host:gsub("^%[(.*)%]$", "%1")) -- names and addresses never carry brackets
  local ip = is_ip(bare)
  local host_header = host
  if port ~= DEFAULT_PORT[scheme] then host_header = host .. ":" .. port end
  local base = "eip:" .. scheme .. ":" .. lower(bare) .. ":" .. port
  return {
    scheme = scheme, host = host, bare = bare, port = port, ip = ip, tls = scheme == "https",
    loopback = loopback(bare), undeliverable = undeliverable(bare),
    host_line = "Host: " .. host_header,
    -- Through a proxy: the CONNECT target (always with its port, as libcurl sends it), and the
    -- start of an absolute-form request target.
    authority = host .. ":" .. port, origin = scheme .. "://" .. host_header,
    -- The pool key says what was verified: a TLS connection made without verification must
    -- never serve a client that asked for it.
    pool = { [false] = { pool = base .. ":verify" }, [true] = { pool = base .. ":noverify" } },
  }
end

-- The target of an absolute http(s) URL (validated by eip.validate): its parsed authority and
-- the request target; or nil, curl code, text. A URL starting with the same "scheme://authority"
-- as the last one sent by this transport (a client sends to one endpoint) reuses its target
-- without matching the URL again.
local function target_of(self, url)
  if type(url) ~= "string" then return nil, 3, "URL is not a string" end
  local t, authority_end
  local last = self.last_key
  if last and find(url, last, 1, true) == 1 then
    local c = byte(url, #last + 1)
    if c == nil or c == 47 or c == 63 or c == 35 then -- the authority ends there: "/", "?", "#"
      t, authority_end = self.last_t, #last + 1
    end
  end
  if not t then
    local scheme_end
    scheme_end, authority_end = match(url, "^%a[%w+.-]*()://[^/?#]*()")
    if not scheme_end then return nil, 3, "URL using bad/illegal format or missing URL" end
    local key = sub(url, 1, authority_end - 1)
    t = targets[key]
    if not t then
      local scheme = lower(sub(url, 1, scheme_end - 1))
      if not DEFAULT_PORT[scheme] then
        return nil, 1, "Protocol \"" .. scheme .. "\" not supported or disabled in libcurl"
      end
      t = parse_authority(scheme, sub(url, scheme_end + 3, authority_end - 1))
      if not t then return nil, 3, "URL using bad/illegal format or missing URL" end
      if ntargets >= TARGETS_MAX then targets, ntargets = {}, 0 end
      targets[key], ntargets = t, ntargets + 1
    end
    self.last_key, self.last_t = key, t
  end
  local path = sub(url, authority_end)
  if path == "" or byte(path, 1) == 63 then path = "/" .. path end -- "?": libcurl adds the "/"
  local hash = find(path, "#", 1, true)
  if hash then path = sub(path, 1, hash - 1) end
  return t, path
end

-- Request -------------------------------------------------------------------------------------

local NO_HEADERS = {}

-- Header lines come from the Lua layer, which validated them; a CR, LF or NUL here would still
-- let a caller smuggle a second header, so they are checked once more at the edge, as in C.
-- A bad line is a caller bug, and raises.
-- RFC 9110 token characters, spelled out (%w would follow the C locale of the process).
local TCHAR = "[0-9A-Za-z!#%$%%&'%*%+%-%.%^_`|~]"
local TOKEN_COLON = "^" .. TCHAR .. "+:"
local TOKEN = "^" .. TCHAR .. "+$"

-- Methods seen to be tokens: a request's method goes on the wire as it is (checked once each;
-- the few the library sends are remembered, at most METHODS_MAX of them).
local method_ok, nmethods, METHODS_MAX = {}, 0, 16

local function check_method(method)
  if method_ok[method] then return end
  if type(method) ~= "string" or not find(method, TOKEN) then
    -- Level 3: the caller of send (check_method < send).
    error("eip.transport.cosocket: method must be an HTTP method (a token: letters, digits and !#$%&'*+-.^_`|~)", 3)
  end
  if nmethods < METHODS_MAX then method_ok[method], nmethods = true, nmethods + 1 end
end

local function check_header(i, h)
  -- A name of RFC 9110 token characters, then the colon; no CR, LF or NUL anywhere (as the C core).
  if type(h) ~= "string" or find(h, "[\r\n%z]") or not find(h, TOKEN_COLON) then
    -- Level 5: the caller of send (check_header < given < lines_of < send).
    error("eip.transport.cosocket: header " .. i .. " is not a single 'Name: value' line", 5)
  end
end

-- Checks the caller's lines, and says which of the headers libcurl would add they already
-- hold: a caller's Host, User-Agent or Accept replaces libcurl's rather than doubling it (nginx
-- answers 400 to a duplicate Host). Looked at by first letter, so most lines cost one byte
-- comparison.
local function given(headers)
  local host, ua, accept = false, false, false
  for i = 1, #headers do
    local h = headers[i]
    check_header(i, h)
    local c = byte(h, 1)
    if c == 72 or c == 104 then -- H
      host = host or lower(sub(h, 1, 5)) == "host:"
    elseif c == 85 or c == 117 then -- U
      ua = ua or lower(sub(h, 1, 11)) == "user-agent:"
    elseif c == 65 or c == 97 then -- A
      accept = accept or lower(sub(h, 1, 7)) == "accept:"
    end
  end
  return host, ua, accept
end

-- Header lists sent again and again. The pipeline hands every request of a token client the
-- same list: its lines are checked once, and the head they end is joined once per target. A
-- list is remembered from its second send on (a signed request's list is new each time and is
-- never remembered), as a copy its lines are compared with at every send (a list changed since
-- is checked again); at most MEMO_MAX lists, held weakly, and HEADS_MAX heads per list.
local MEMO_MAX, HEADS_MAX = 8, 16

-- What is known of a request's header lines: a memo { n, lines 1..n, host, ua, accept, block,
-- heads }, or a one-off { host, ua, accept } for a list seen for the first time. Raises for a
-- caller bug (see check_header).
local function lines_of(self, headers)
  local memo = self.memos[headers]
  if memo then
    local n = memo.n
    if #headers == n then
      local i = 1
      while i <= n and headers[i] == memo[i] do i = i + 1 end
      if i > n then return memo end
    end
  end
  local host, ua, accept = given(headers)
  if self.candidate ~= headers then
    self.candidate = headers -- seen once: remembered if it comes again
    return { host = host, ua = ua, accept = accept }
  end
  local n = #headers
  memo = { n = n, host = host, ua = ua, accept = accept, heads = {}, nheads = 0,
    block = n > 0 and (concat(headers, "\r\n", 1, n) .. "\r\n") or "" }
  for i = 1, n do memo[i] = headers[i] end
  if self.nmemos >= MEMO_MAX then self.memos, self.nmemos = setmetatable({}, WEAK_KEYS), 0 end
  self.memos[headers], self.nmemos = memo, self.nmemos + 1
  return memo
end

-- The lines libcurl adds before the caller's, in its order, put into out from out[n + 1]; returns
-- the new n. `known`: lines_of's answer (a caller's Host, User-Agent or Accept replaces
-- libcurl's); `plain`: the proxy of a plain-http request (its `via`, below).
local function added_lines(self, out, n, t, known, plain)
  if not known.host then
    out[n + 1], out[n + 2], n = t.host_line, "\r\n", n + 2
  end
  if plain and plain.auth_line then
    out[n + 1], out[n + 2], n = plain.auth_line, "\r\n", n + 2
  end
  if self.user_agent_line and not known.ua then
    out[n + 1], out[n + 2], n = self.user_agent_line, "\r\n", n + 2
  end
  if not known.accept then
    out[n + 1], n = "Accept: */*\r\n", n + 1
  end
  if plain then
    out[n + 1], n = "Proxy-Connection: Keep-Alive\r\n", n + 1
  end
  return n
end

-- For a remembered list sent straight to t: everything after the request target up to the end
-- of the caller's lines, joined once.
local function head_rest(self, memo, t)
  local rest = memo.heads[t]
  if rest then return rest end
  local parts = { " HTTP/1.1\r\n" }
  local n = added_lines(self, parts, 1, t, memo, nil)
  parts[n + 1] = memo.block
  rest = concat(parts)
  if memo.nheads >= HEADS_MAX then memo.heads, memo.nheads = {}, 0 end
  memo.heads[t], memo.nheads = rest, memo.nheads + 1
  return rest
end

-- The request as one string. ngx's send also takes a list of strings (and writes it with one
-- writev), but measures and copies it through the Lua C API, a few hundred instructions per
-- piece (it also walks the list with lua_next to check it: ~1.5k instructions for four pieces
-- under wrk), and a remembered list's request is usually interned already. Joining the
-- pieces in Lua costs a fraction of that. (A joined token request differs from the last only
-- in its id. LuaJIT hashes a string that long from sampled windows: ids of a few varying
-- bytes, bw-1 to bw-3000, can all fall between them and share one hash chain; UUIDs, the
-- cloud's ids, did not over 5 worker starts of 4000 each.) The pieces of a request that is
-- not a remembered list's go into one scratch list, which serves every send of the worker: it
-- is filled and joined without yielding.
local scratch = {}

-- `plain`: the proxy of a plain-http request (its `via`, below), which gets the absolute-form
-- target and the proxy's headers, in libcurl's order.
local function request_text(self, req, t, path, x, plain)
  local known, method, body = x.known, req.method, req.body
  -- libcurl sends a length for every body, and an empty one for POST and PUT without a body.
  local sized = body ~= nil or method == "POST" or method == "PUT"
  if known.block and not plain then -- a remembered list
    if not sized then return method .. " " .. path .. head_rest(self, known, t) .. "\r\n" end
    body = body or ""
    return method .. " " .. path .. head_rest(self, known, t) .. "Content-Length: " .. #body .. "\r\n\r\n" .. body
  end
  local out = scratch
  out[1], out[2], out[3], out[4] = method, " ", plain and (t.origin .. path) or path, " HTTP/1.1\r\n"
  local n = added_lines(self, out, 4, t, known, plain)
  local headers = req.headers or NO_HEADERS
  for i = 1, #headers do
    out[n + 1], out[n + 2], n = headers[i], "\r\n", n + 2
  end
  if sized then
    body = body or ""
    out[n + 1], out[n + 2], out[n + 3], out[n + 4], n = "Content-Length: ", tostring(#body), "\r\n\r\n", body, n + 4
  else
    out[n + 1], n = "\r\n", n + 1
  end
  local text = concat(out, "", 1, n)
  for i = 1, n do out[i] = nil end -- no string of a request outlives its send
  return text
end

-- Reading ---------------------------------------------------------------------------------------

local function ms(seconds)
  local v = floor(seconds * 1000 + 0.5)
  return v >= 1 and v or 1 -- 0 would mean "nginx's default"
end

-- The send and read timeout of the exchange's socket, in milliseconds: set only when it changed
-- (nginx's clock moves only when the worker waited, so the time left mostly has not).
local function set_timeout(x, sock, v)
  if v ~= x.sock_ms then
    sock:settimeout(v)
    x.sock_ms = v
  end
end

-- http1's source: one receiveany on the exchange's socket. `x.full`: the read may have filled
-- nginx's socket buffer (lua_socket_buffer_size: a size nginx is given in KiB, as its defaults
-- and examples are). Over TLS, OpenSSL may then hold more bytes already decrypted, where neither
-- nginx's pool nor a look at the descriptor (still_idle) finds them (nginx reads them only when
-- the socket says there is more): a connection whose answer ended with such a read is not kept
-- (one in about a thousand answers, by chance; a server that sends more than its answer,
-- always). A buffer of a size that is no multiple of 1 KiB is not recognised.
--
-- A timeout is looked at once more, for a millisecond: when something blocked the worker past
-- the timeout (another request's call in a phase without cosockets, over libcurl), nginx, back
-- in its loop, expires the read timer before epoll reports the answer that arrived meanwhile,
-- and a carried-out delete would read as a timeout. The second wait lets the loop see the
-- socket first (the C multi does the same: an answer waiting in its socket is taken, however
-- late the caller came back).
local function recv(x, max, wait)
  local sock = x.sock
  set_timeout(x, sock, ms(wait))
  local data, err, partial = sock:receiveany(max)
  if err == "timeout" then
    set_timeout(x, sock, 1)
    data, err, partial = sock:receiveany(max)
  end
  if data then
    local n = #data
    x.full = n >= 1024 and n % 1024 == 0
  end
  return data, err, partial
end

-- TLS ---------------------------------------------------------------------------------------------

-- OpenSSL, as linked into nginx, through LuaJIT's FFI: nil when it cannot be reached (then
-- verified TLS to an IP literal fails closed).
local openssl = false

local function ssl_api()
  if openssl ~= false then return openssl end
  openssl = nil
  local ok, ffi = pcall(require, "ffi")
  if not ok then return nil end
  -- Declared with void pointers, each on its own, so that other libraries' declarations of
  -- the same functions (lua-resty-openssl) neither clash with these nor break them.
  for _, decl in ipairs{
    "void *SSL_SESSION_get0_peer(void *s);",
    "int X509_check_ip_asc(void *x, const char *address, unsigned int flags);",
    "int X509_check_host(void *x, const char *name, size_t namelen, unsigned int flags, char **peername);",
    "void ngx_http_lua_ffi_ssl_free_session(void *sess);",
  } do
    pcall(ffi.cdef, decl)
  end
  local C = ffi.C
  local found = pcall(function()
    return C.SSL_SESSION_get0_peer, C.X509_check_ip_asc, C.X509_check_host
  end)
  if not found then return nil end
  local has_free = pcall(function() return C.ngx_http_lua_ffi_ssl_free_session end)
  openssl = { ffi = ffi, C = C, free = has_free }
  return openssl
end

-- Frees the session now rather than at the next garbage collection.
local function free_session(api, session)
  if api and api.free then
    api.ffi.gc(session, nil)
    api.C.ngx_http_lua_ffi_ssl_free_session(session)
  end
end

-- X509_check_host's flags, the C core's too (src/http.c's on_ssl_ctx sets them on libcurl's
-- OpenSSL). X509_CHECK_FLAG_NEVER_CHECK_SUBJECT (0x20): a name is matched against the
-- certificate's DNS entries alone, never its common name. Without it, OpenSSL falls back to the
-- common name whenever the subjectAltName holds no DNS entry: a certificate whose SAN names only
-- an IP address, its common name the host, was taken (libcurl refuses it), and so was one with
-- no SAN at all (which the contract says both transports refuse; X509_check_ip_asc never looks
-- at the common name). X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS (0x4): a wildcard is a whole first
-- label ("*.example.com"), never part of one: nginx's own check (default flags) took
-- "f*.example.com" for foo.example.com, which libcurl 7.88 refuses.
local HOST_FLAGS = 0x20 + 0x4

-- Is the verified session's certificate for t (its IP address, or its name)? true, or nil and
-- libcurl's text for the mismatch.
local function peer_matches(session, t)
  local api = ssl_api()
  if not api then
    return nil, "SSL: cannot check the certificate's names (OpenSSL functions not found in nginx)"
  end
  local ok, matched = pcall(function()
    local peer = api.C.SSL_SESSION_get0_peer(session)
    if peer == nil then return false end
    if t.ip then return api.C.X509_check_ip_asc(peer, t.bare, 0) == 1 end
    return api.C.X509_check_host(peer, t.bare, #t.bare, HOST_FLAGS, nil) == 1
  end)
  free_session(api, session)
  if ok and matched then return true end
  return nil, "SSL: no alternative certificate subject name matches target host name '" .. t.bare .. "'"
end

-- The text resty.core's sslhandshake left in its shared error-message pointer when it raised
-- "assertion failed!" (its second look at the handshake result found the failure the first
-- missed, and stored that failure's text there); nil when it cannot be read.
local function raised_handshake_error()
  local ok, text = pcall(function()
    local p = require("resty.core.base").get_errmsg_ptr()
    if p[0] == nil then return nil end
    return require("ffi").string(p[0])
  end)
  if ok and text ~= "" then return text end
  return nil
end

-- Handshake failures that are not about the certificate (libcurl: 35).
local NOT_CERTIFICATE = { ["handshake failed"] = true, closed = true, ["connection reset by peer"] = true,
  ["broken pipe"] = true, ["no verified session"] = true }

-- Maps a handshake failure onto libcurl's code. resty.core reports "<code>: <text>" when OpenSSL
-- gave a code (an X509 verification code such as "21: unable to verify the first certificate",
-- or an SSL library code before "handshake failed"), or the bare text. `raised`: err is the
-- text resty.core left behind when it raised, which for a certificate problem is X509's text.
local function tls_failure(x, err, verify, raised)
  err = tostring(err)
  if err == "timeout" then
    return http1.fail(x, 28, "SSL connection timeout")
  end
  local coded, text = match(err, "^(%d+): (.*)$")
  text = text or err
  if find(text, "host mismatch", 1, true) then
    return http1.fail(x, 60, "SSL: certificate subject name does not match target host name")
  end
  if verify and (coded or raised) and not NOT_CERTIFICATE[text] then
    return http1.fail(x, 60, "SSL certificate problem: " .. text)
  end
  return http1.fail(x, 35, "SSL handshake failed: " .. text)
end

-- The TLS handshake of a new connection, bounded by the connect timeout. true, or nil after
-- fail().
local function handshake(self, x, sock, t, connect_ms)
  local verify = not self.insecure
  sock:settimeout(connect_ms)
  -- An IP literal: no server name (no SNI, and nginx's name check cannot match an address).
  local ok, session, err = pcall(sock.sslhandshake, sock, nil, (not t.ip) and t.bare or nil, verify)
  if not ok then
    -- resty.core raised (see the top of this file): what failed is in its error-message pointer.
    local text = raised_handshake_error()
    return tls_failure(x, text or session, verify, text ~= nil or verify)
  end
  if not verify then
    if type(session) == "cdata" then free_session(ssl_api(), session) end
    if session == nil and err then return tls_failure(x, err, false, false) end
    return true
  end
  if type(session) ~= "cdata" then
    return tls_failure(x, err or "no verified session", true, false)
  end
  local matched, why = peer_matches(session, t)
  if not matched then return http1.fail(x, 60, why) end
  return true
end

-- Idle pooled connections -------------------------------------------------------------------------

-- nginx's pool finds a kept-alive connection that received something or was closed while idle
-- only when the worker's event loop runs its idle handler: a handler that sends again without
-- yielding in between (two deletes in a row, work between them) would be handed that connection,
-- and read a late duplicate answer as its own, or meet the server's close as a dead connection
-- (a resend said, a POST failed). So a reused socket is looked at before anything is sent on it:
-- recv with MSG_PEEK on its descriptor, which lua-nginx-module's
-- ngx_http_lua_ffi_socket_tcp_hack_fd gives when asked with -1 (it changes nothing then).
-- Without that function (another nginx Lua module), a one-byte read with a 1 ms timeout asks
-- the same, at that cost per reused connection. Over TLS, bytes OpenSSL holds already decrypted
-- are not on the descriptor: see `x.full` in recv above.
local peeking = false
--- Whether pooled connections are looked at through the descriptor (false: the 1 ms read, as
-- without the function; for tests).
M.PEEK = true

-- Made by a function of its own, apart from peek_api, which every reused connection calls: a
-- function that makes a closure closes its upvalues as it returns (UCLO), which LuaJIT cannot
-- compile, and each request's trace was cut there (some 6k instructions a request in nginx).
local function load_peek_api()
  local ok, ffi = pcall(require, "ffi")
  if not ok then return nil end
  -- Void pointers and each declaration on its own, as ssl_api does.
  pcall(ffi.cdef, "int ngx_http_lua_ffi_socket_tcp_hack_fd(void *u, int fd, unsigned char *err, size_t *errlen);")
  pcall(ffi.cdef, "long recv(int fd, void *buf, size_t n, int flags);")
  local C = ffi.C
  if not pcall(function() return C.ngx_http_lua_ffi_socket_tcp_hack_fd, C.recv end) then return nil end
  local linux = ffi.os == "Linux"
  return { ffi = ffi, C = C, byte = ffi.new("unsigned char[1]"), err = ffi.new("unsigned char[128]"),
    errlen = ffi.new("size_t[1]"), flags = linux and (2 + 0x40) or 2, -- MSG_PEEK (| MSG_DONTWAIT)
    again = linux and 11 or 35 } -- EAGAIN
end

local function peek_api()
  if peeking == false then peeking = load_peek_api() end
  return peeking
end

-- May a pooled connection be sent on: nothing arrived on it since its last answer, and it is not
-- closed? (Its read timeout is left at 1 ms by the fallback: x.sock_ms says so.)
local function still_idle(x, sock)
  local api = M.PEEK and peek_api()
  local u = api and sock[1]
  if u then
    api.errlen[0] = 128
    local fd = api.C.ngx_http_lua_ffi_socket_tcp_hack_fd(u, -1, api.err, api.errlen)
    if fd >= 0 then
      if api.C.recv(fd, api.byte, 1, api.flags) >= 0 then return false end -- bytes, or the server's close
      return api.ffi.errno() == api.again -- (else reset, or another error: dead)
    end
  end
  sock:settimeout(1)
  x.sock_ms = 1
  local data, err = sock:receiveany(1)
  return data == nil and err == "timeout"
end

-- Connecting ----------------------------------------------------------------------------------

-- `t`: what was connected to, the URL's target or a proxy's `via` (is_proxy).
local function connect_failure(x, t, err)
  err = tostring(err)
  if err == "timeout" then
    return http1.fail(x, 28, "Connection timed out after " .. ms(x.connect_timeout) .. " milliseconds")
  end
  if find(err, "resolve", 1, true) then
    if find(err, "Operation timed out", 1, true) then
      -- nginx's resolver gave up (resolver_timeout): no answer, which says nothing of the name.
      -- libcurl's 28 for its lookup cut off (a timeout, tried again), not 6 (never tried again).
      return http1.fail(x, 28, "Resolving timed out after " .. ms(x.now() - x.started) .. " milliseconds ("
        .. err .. ")")
    end
    if t.is_proxy then return http1.fail(x, 5, "Could not resolve proxy: " .. t.bare .. " (" .. err .. ")") end
    return http1.fail(x, 6, "Could not resolve host: " .. t.bare .. " (" .. err .. ")")
  end
  return http1.fail(x, 7, "Failed to connect to " .. t.bare .. " port " .. t.port .. ": " .. err)
end

-- libcurl's happy eyeballs: its second address family is tried once the first has not
-- connected within 200 ms (CURL_HET_DEFAULT), the first still waited for.
local EYEBALLS_MS = 200

-- sock:connect to `to` (a target or a via): its host, which nginx resolves, or a loopback name's
-- addresses in turn, as libcurl goes on to its second address family: ::1 after a refusal on
-- 127.0.0.1, or once 127.0.0.1 has not answered within 200 ms (and 127.0.0.1 again with what is
-- left when ::1 fails too). The first failure is the one told when all fail. `connect_ms`: the
-- connect timeout sock was given (ms), `rest` its send and read timeouts.
local function connect(x, sock, to, pool, connect_ms, rest)
  local addrs = to.loopback
  if not addrs then return sock:connect(to.host, to.port, pool) end
  local started, early = x.now(), connect_ms > EYEBALLS_MS
  if early then sock:settimeouts(EYEBALLS_MS, rest, rest) end
  local ok, err = sock:connect(addrs[1], to.port, pool)
  if ok then return ok, err end
  local timed_out = early and err == "timeout"
  if not timed_out and not find(tostring(err), "refused", 1, true) then return ok, err end
  for _, addr in ipairs(timed_out and { addrs[2], addrs[1] } or { addrs[2] }) do
    local left = connect_ms - (x.now() - started) * 1000
    if left < 1 then break end
    if early then sock:settimeouts(floor(left), rest, rest) end
    if sock:connect(addr, to.port, pool) then return 1 end
  end
  return ok, err
end

-- Seconds left to connect (TLS and the CONNECT exchange included), within the whole exchange;
-- `now`: the clock's time, when the caller just read it.
local function connect_left(x, now)
  now = now or x.now()
  local left, whole = x.connect_deadline - now, x.deadline - now
  return left < whole and left or whole
end

-- How to reach target t through `proxy` (req.proxy): the proxy's address, the pool of such
-- connections and the Proxy-Authorization line. Cached like targets. The pool says which
-- credentials a connection was made with (as a hash: nginx may log pool names), and, for a
-- tunnel, everything the direct connection's pool name says.
local vias, nvias = {}, 0

local function via(self, t, proxy)
  local auth = proxy.authorization
  local pool = t.tls and t.pool[self.insecure].pool or "eip:proxy"
  local key = pool .. "|" .. proxy.name .. "|" .. (auth or "")
  local v = vias[key]
  if v then return v end
  local id = proxy.name
  if auth then id = id .. ":" .. ngx_api().md5(auth) end
  local host = proxy.host
  local bare = host:gsub("^%[(.*)%]$", "%1")
  v = {
    host = host, port = tonumber(proxy.port), bare = bare, is_proxy = true, loopback = loopback(bare),
    undeliverable = undeliverable(bare),
    pool = { pool = pool .. ":via:" .. id },
    auth_line = auth and ("Proxy-Authorization: " .. auth) or nil,
  }
  if nvias >= TARGETS_MAX then vias, nvias = {}, 0 end
  vias[key], nvias = v, nvias + 1
  return v
end

-- The CONNECT exchange on a new connection to the proxy v, within the connect timeout: true
-- once the tunnel to t is up (nothing of the proxy's answer kept), or nil after fail().
local function tunnel(self, x, sock, t, v)
  local left = connect_left(x)
  if left <= 0 then return connect_failure(x, v, "timeout") end
  sock:settimeout(ms(left))
  local parts = { "CONNECT ", t.authority, " HTTP/1.1\r\nHost: ", t.authority, "\r\n" }
  if v.auth_line then parts[#parts + 1] = v.auth_line .. "\r\n" end
  if self.user_agent_line then parts[#parts + 1] = self.user_agent_line .. "\r\n" end
  parts[#parts + 1] = "Proxy-Connection: Keep-Alive\r\n\r\n"
  local sent, serr = sock:send(parts)
  if not sent then
    if serr == "timeout" then return connect_failure(x, v, "timeout") end
    return http1.fail(x, 55, "Send failure: " .. tostring(serr))
  end
  x.sock = sock
  local deadline = x.deadline
  if x.connect_deadline < deadline then x.deadline = x.connect_deadline end
  local ok = http1.read(x, "CONNECT")
  x.deadline, x.sock = deadline, nil
  local status, code = x.resp.status, x.resp.curl_code
  http1.clear_answer(x)
  if (not ok or x.head_cut) and status >= 100 and (status < 200 or status > 299) and code ~= 1 then
    -- A refusal whose head broke off or stalled (closed, a NUL, too large, nothing more): its
    -- status line said it, as libcurl reads it; not a reset or a timeout, which are retried with
    -- the credentials again.
    http1.clear_failure(x)
    x.resp.proxy_status = status
    return http1.fail(x, 56, "CONNECT tunnel failed, response " .. status)
  end
  if code == 28 then
    -- The connect timeout ran out, not the whole exchange's: libcurl's words for each case.
    http1.clear_failure(x)
    if x.connect_deadline < deadline then return http1.fail(x, 28, "Proxy CONNECT aborted due to timeout") end
    return connect_failure(x, v, "timeout")
  end
  if not ok or x.head_cut then
    http1.clear_failure(x)
    -- No answer, garbage or a 2xx head cut short: libcurl's texts and code (a reset, not a refusal).
    if code == 1 then return http1.fail(x, 56, "CONNECT tunnel failed, response 0") end
    return http1.fail(x, 56, "Proxy CONNECT aborted")
  end
  if status < 200 or status > 299 then
    x.resp.proxy_status = status
    return http1.fail(x, 56, "CONNECT tunnel failed, response " .. status)
  end
  http1.begin(x)
  return true
end

-- A connected (and, for https, verified) socket, whether it came from the pool, and then the
-- seconds that were left (nothing waited since: the clock is read once, each read of nginx's
-- clock is an FFI call); or nil after fail(). `v`: the proxy's via, when the request goes
-- through one.
local function open(self, x, t, v)
  local ngx = x.ngx
  local now = x.now()
  local left = x.deadline - now
  if left <= 0 then return http1.timed_out(x) end
  local to = v or t
  local connect_left_now = connect_left(x, now)
  if connect_left_now <= 0 then return connect_failure(x, to, "timeout") end
  if to.undeliverable then return connect_failure(x, to, "could not be resolved (no DNS query can carry the name)") end
  local sock, reused
  local rest = ms(left)
  for _ = 1, MAX_ATTEMPTS do
    sock = ngx.socket.tcp()
    -- Connect within the connect time left; send and read within the exchange's time left.
    sock:settimeouts(ms(connect_left_now), rest, rest)
    x.sock_ms = rest
    local ok, err = connect(x, sock, to, v and v.pool or t.pool[self.insecure], ms(connect_left_now), rest)
    if not ok then
      if http1.remaining(x) <= 0 then return http1.timed_out(x) end
      return connect_failure(x, to, err)
    end
    reused = (sock:getreusedtimes() or 0) > 0
    -- A pooled connection that is no longer idle: closed, and the next taken (nothing was sent:
    -- no resend).
    if not reused or still_idle(x, sock) then break end
    sock:close()
  end
  if not reused then
    x.sock_ms = false -- a tunnel and TLS set timeouts of their own
    x.resp.new_connections = x.resp.new_connections + 1
    if v and t.tls and not tunnel(self, x, sock, t, v) then
      sock:close()
      return nil
    end
    if t.tls then
      connect_left_now = connect_left(x)
      if connect_left_now <= 0 or not handshake(self, x, sock, t, ms(connect_left_now)) then
        if not x.resp.curl_code then connect_failure(x, t, "timeout") end
        sock:close()
        return nil
      end
    end
    x.sock_ms = false
  end
  return sock, reused, left
end

-- Exchange ----------------------------------------------------------------------------------------

-- Why a request is not sent again after its kept-alive connection died, or nil when it may be:
-- a method that is not idempotent, the contract's no_resend, or a caller that stopped sending
-- (progress.halted: a batch stopped while it was in flight).
local function not_again(req)
  if req.no_resend then return "it is signed, and each send is a signature the gateway checks" end
  if not IDEMPOTENT[req.method] then return "its method is not idempotent" end
  local progress = req.progress
  if progress and progress.halted then return "the caller stopped sending (its batch stopped)" end
  return nil
end

-- An attempt that is a resend refused (see not_again): the send before it went out, on a
-- kept-alive connection that died, and may have been carried out.
local function refused_resend(x, why)
  return http1.fail(x, 52, "Empty reply from server (a kept-alive connection died after the request was "
    .. "sent; not sent again: " .. why .. ")")
end

-- One attempt on one connection. Returns "done", "retry" (a pooled connection turned out to be
-- dead before any answer: libcurl retries those on a fresh connection, and so do we; not a
-- request that must not be sent again: no_resend, or a method that is not idempotent) or nil
-- after fail().
local function attempt(self, x, req, t, path)
  http1.begin(x)
  local v = x.proxy and via(self, t, x.proxy)
  local plain = v and not t.tls and v or nil
  local sock, reused, left = open(self, x, t, v)
  if not sock then return nil end
  x.sock = sock
  set_timeout(x, sock, ms(reused and left or http1.remaining(x)))
  local text = request_text(self, req, t, path, x, plain)
  -- A resend whose caller stopped while its new connection was being made: refused now, as it
  -- would have been had the stop come first.
  local stopped = x.sent and not_again(req)
  if stopped then
    sock:close()
    return refused_resend(x, stopped)
  end
  local progress = req.progress
  if progress and progress.halt_sends then
    -- (its caller stopped while its connection was being made: it never goes out)
    sock:close()
    x.resp.held_back = true
    return http1.fail(x, 42, "Not sent: its caller stopped sending before it could go out")
  end
  x.sent = true -- (from here on, any failure may follow a request that went out: see finish)
  if progress then progress.sent = true end
  local sent, serr = sock:send(text)
  if not sent then
    sock:close()
    -- A dead kept-alive connection: sent again on another, as libcurl does, unless the method
    -- is not idempotent (part of it may have gone out; libcurl refuses those too).
    if reused and serr ~= "timeout" then
      local why = not_again(req)
      if why then return http1.fail(x, 55, "Send failure: " .. tostring(serr) .. " (a kept-alive connection "
        .. "died; not sent again: " .. why .. ")") end
      x.resp.resent = true
      return "retry"
    end
    if serr == "timeout" then return http1.timed_out(x) end
    return http1.fail(x, 55, "Send failure: " .. tostring(serr))
  end
  local ok, reusable = http1.read(x, req.method, plain and 407 or nil)
  x.sock = nil
  if plain and x.resp.status == 407 then
    -- The proxy's own refusal, not the API's answer (which never is 407), whatever became of
    -- the rest of its head (its body is not read: one cut short or trickled was a reset or a
    -- timeout, retried with the credentials again).
    sock:close()
    http1.clear_failure(x)
    http1.clear_answer(x)
    x.resp.proxy_status = 407
    return http1.fail(x, 56, "Received HTTP code 407 from proxy")
  end
  if ok then
    if not (reusable and not (t.tls and x.full) and sock:setkeepalive()) then sock:close() end
    return "done"
  end
  sock:close()
  local code = x.resp.curl_code
  if reused and (x.received == 0 or not x.line_came) and (code == 52 or code == 56) then
    -- The request went out on a kept-alive connection that died before a whole line of an
    -- answer came (nothing, or a status line cut short): the server may have carried it out.
    -- An idempotent one is sent again, saying so, as libcurl 7.88 does (it counts whole lines
    -- only); any other (a create: a bill) is not.
    local why = not_again(req)
    if why then return refused_resend(x, why) end
    http1.clear_failure(x)
    x.resp.status = 0
    x.resp.resent = true
    return "retry"
  end
  return nil
end

-- Every attempt of one send (run protected: see send).
local function exchange(self, x, req, t, path)
  for _ = 1, MAX_ATTEMPTS do
    if attempt(self, x, req, t, path) ~= "retry" then break end
  end
  if x.resp.status == 0 and not x.resp.curl_code then
    http1.fail(x, 52, "Empty reply from server") -- every attempt met a dead pooled connection
  end
end

-- The states of finished exchanges, filled again by the next ones (see http1.exchange): a
-- worker keeps at most SPARE_MAX, as many as it ran at once before.
local spare, nspare = {}, 0
local SPARE_MAX = 32

-- nginx's cached clock, as a function LuaJIT can compile on its own. resty.core's ngx.now ends
-- in a tail call of tonumber, which LuaJIT cannot make a trace of: after a few tries it
-- blacklists ngx.now, and from then on every trace that calls it is abandoned too (much of the
-- request path left interpreted). The same FFI function, called and then returned, is
-- compiled; where it is not found (the stream module), ngx.now is called the same way.
local clock = false

local function clock_of(ngx)
  local ok, ffi = pcall(require, "ffi")
  if ok then
    pcall(ffi.cdef, "double ngx_http_lua_ffi_now(void);")
    local found, now = pcall(function() return ffi.C.ngx_http_lua_ffi_now end)
    if found then
      return function()
        local t = now()
        return t
      end
    end
  end
  local now = ngx.now
  return function()
    local t = now()
    return t
  end
end

-- The exchange's clock is nginx's cached one (ngx.now): fresh after every wait (the event loop
-- updates it), so the exchange updates it only where it starts and ends (ngx.update_time costs
-- a system call and the formatting of nginx's time strings).
local function new_exchange(req)
  local ngx = ngx_api()
  ngx.update_time()
  local old = false
  if nspare > 0 then
    old, spare[nspare], nspare = spare[nspare], nil, nspare - 1
  end
  clock = clock or clock_of(ngx)
  local x = http1.exchange(req, clock, old or nil)
  x.sock, x.sock_ms, x.known, x.full, x.sent = false, false, false, false, false
  local connect_timeout = tonumber(req.connect_timeout) or 10
  if connect_timeout <= 0 or connect_timeout > x.timeout then connect_timeout = x.timeout end
  x.connect_timeout = connect_timeout
  x.connect_deadline = x.started + connect_timeout
  x.ngx = ngx
  x.recv = recv
  return x
end

-- The response of x, which is then kept for a later exchange.
local function finish(x)
  local resp = http1.finish(x)
  -- A failure before the request was given to a socket (a name, a connect, a TLS handshake, a
  -- proxy's tunnel, a timeout meanwhile): the contract's `unsent`.
  if resp.curl_code and not x.sent then resp.unsent = true end
  http1.release(x)
  x.sock, x.known = false, false
  if nspare < SPARE_MAX then
    nspare = nspare + 1
    spare[nspare] = x
  end
  return resp
end

-- The text of a failure for `err`, raised out of an exchange: nginx's own words (with a path in
-- this library) for a transport used where cosockets cannot work, said in the user's; else
-- the raised text. (The failure path only: nothing is checked before a send.)
local DEFAULT_INSTEAD = "use the default transport (eip.transport.new), which uses libcurl there"
local function raised_text(err)
  local text = tostring(err)
  local context = match(text, "API disabled in the context of ([%w_]+)_by_lua")
  if context then
    return "cosockets are not available in nginx's " .. context .. " phase (" .. context .. "_by_lua): "
      .. DEFAULT_INSTEAD
  end
  if find(text, "attempt to yield across C-call boundary", 1, true) then
    return "a cosocket cannot wait here: nothing can yield inside a string.gsub or table.sort callback, a "
      .. "dofile or a module's top level run by require; call outside it, or " .. DEFAULT_INSTEAD
  end
  return "cosocket transport error: " .. text
end

-- Transport:send to `url` (req's own, or the lane's).
local function send_to(self, req, url)
  local x = new_exchange(req)
  local t, path_or_code, text = target_of(self, url)
  if not t then
    http1.fail(x, path_or_code, text)
    return finish(x)
  end
  check_method(req.method) -- raises for a caller bug, as the two below
  x.known = lines_of(self, req.headers or NO_HEADERS)
  local proxy = req.proxy
  if proxy then
    if type(proxy) ~= "table" or type(proxy.host) ~= "string" or not tonumber(proxy.port)
        or type(proxy.name) ~= "string" then
      error("eip.transport.cosocket: proxy must be a table with host, port and name (see eip.transport)", 2)
    end
    x.proxy = proxy
  end
  -- Nothing a server sends may raise out of here: an unforeseen error (a bug, or a library
  -- raising) still ends as a failure table, with its text.
  local ok, err = pcall(exchange, self, x, req, t, path_or_code)
  if not ok then
    if x.sock then pcall(x.sock.close, x.sock) end
    http1.fail(x, 2, raised_text(err))
  end
  x.ngx.update_time()
  return finish(x)
end

--- Sends req (see the contract in eip.transport) and returns the contract's response table.
-- Raises only for a caller bug (a header line with CR, LF or NUL, or without a colon).
-- @tparam table req the contract's request
-- @treturn table the contract's response
-- @raise a Lua error for a caller's bug only: a method that is no token, a bad header line, a
--   `proxy` that is not the contract's table
function Transport:send(req)
  -- (a tail call: a caller bug's error levels below count from the caller of send)
  return send_to(self, req, req.url)
end
-- (this module's own, which Transport:lane gives: a send a caller put on the class is not)
local own_send = Transport.send

-- The lane's send (see Transport:lane): the request prepared once, sent to base .. path by this
-- module's own send (not one a caller put on the instance: the pipeline checks the send it
-- calls, the automatic transport's), the prepared table unchanged (light threads share it
-- across their yields); the C core's lane's checks of the answer, in Lua.
local plain_text = false

local function lane(self, prepared, path, usable, secrets)
  local resp = send_to(self, prepared.req, prepared.base .. path)
  if resp.status == usable and not resp.curl_code and not resp.resent then
    local request_id = resp.request_id
    -- (a request id cut short, "...", may end a secret: the general way redacts it)
    if request_id == nil or not secrets
        or (sub(request_id, -3) ~= "..." and plain_text(request_id, secrets)) then
      return usable, request_id, resp.elapsed
    end
  end
  return resp, nil, resp.elapsed
end

local function finished(resp) return resp end

--- What eip.pipeline's lane sends with, as eip.transport.curl's `Transport:lane` (its contract
-- there): `req` (the contract's request, its url the part every request starts with) kept, each
-- request sent to url .. path. Returns `lane, self, prepared, finish, send`, or nil for a
-- request to be signed (`signing`: signed requests go the general way inside nginx). The lane
-- yields (it is a cosocket exchange), as this transport's send does.
-- @tparam table req the contract's request
-- @param signing nil, or what the C core signs with (then nil is returned)
-- @return the lane's function, this transport, the prepared request, finish, this module's send
-- @raise never
function Transport:lane(req, signing)
  if signing ~= nil then return nil end
  plain_text = plain_text or require("eip.core").plain_text
  local copy = {}
  for k, v in pairs(req) do copy[k] = v end
  return lane, self, { req = copy, base = req.url }, finished, own_send
end

--- Nothing to release: idle connections belong to nginx's pool, the others are closed.
-- Returns nothing.
-- @raise never
function Transport:close() -- luacheck: ignore self
end

M.name = "cosocket"
Transport.name = "cosocket"
return M
