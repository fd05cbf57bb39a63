--- The transport contract, and the choice of transport for where the code runs.
--
-- A transport sends one HTTP/1.1 request and returns what came back as one table. Both speak
-- HTTP/1.1 only, also to a TLS server that offers HTTP/2 (libcurl is told so; cosockets offer
-- no ALPN), so that the bounds and failures below hold for every server. Two exist,
-- and both honour this contract, which is written here and nowhere else;
-- `spec/transport_conformance_spec.lua` runs one list of cases through both and compares them:
--
--  * `eip.transport.curl`: libcurl through the C core; blocking. Everywhere outside nginx.
--  * `eip.transport.cosocket`: nginx cosockets, the answer read by `eip.transport.http1`; yields
--    to nginx's event loop. Inside nginx, in the phases that allow cosockets.
--
-- A transport is an object with @{transport:send}, @{transport:close} and `name` ("curl" or
-- "cosocket"), made by `T.new{ ca_file = path?, insecure = bool?, user_agent = string? }` (see
-- @{new}). The option `transport` of @{eip.new} takes any object honouring the same contract:
-- for tests, recording, or an HTTP stack of your own. It is given a @{request} and returns a
-- @{response}.
--
-- **It never raises** for anything a server or the network does: garbage, endless lines,
-- resets, TLS failures all come back as a failure @{response}. Only caller bugs raise (a bad
-- header line).
--
-- **Limits a server may hit**
--
-- @{LIMITS}, the same in both transports (libcurl 7.88's own bounds):
--
--     header_line   102400  a header or status line, line end included, must be shorter than
--                           this (libcurl's CURL_MAX_HTTP_HEADER): 27 "protocol" (libcurl >= 8.6: 100)
--     header_block  307200  bytes of all header lines of one answer, interim answers and line
--                           ends included: more is 56 "Too large response headers", "protocol"
--     chunk_hex     16      hex digits of a chunk size: more is 56 "protocol"; chunk extensions
--                           are skipped without being kept (memory stays bounded; time is
--                           bounded by `timeout`, as in libcurl)
--     trailer_line  4093    bytes of one chunked trailer line, its line end excluded (libcurl
--                           7.88 keeps it with a CRLF and a NUL in 4096 bytes): more is 56 "protocol"
--     trailer_block 307200  bytes of all trailer lines of one body, line ends included (libcurl
--                           keeps each in its header store): more is 56 "Too large response
--                           trailers", "protocol"
--     body_cap      (req)   body bytes kept: more sets `truncated`, not a failure
--     timeout       (req)   the whole exchange, not each read: 28 "timeout"
--     low speed     (req)   28 "timeout" (curl_error says "too slow")
--
-- **Failures: what happened, curl_code, error_kind (both transports)**
--
--     host name cannot be resolved                           6  dns
--     connection refused or unreachable                      7  connect
--     connect, whole-exchange or low-speed timeout           28 timeout
--     closed before any answer ("Empty reply from server")   52 reset
--     closed in the middle of a body                         18 reset
--     reset by peer while receiving / sending                56 / 55 reset
--     TLS handshake failed (not TLS, no common protocol)     35 tls
--     certificate not trusted, or not for this host or IP    60 tls
--     a status line the rule below refuses (the first line   1  protocol
--       of any head, interim or final); a 101 answer
--     header line without a colon, NUL byte in the head,     8  protocol
--       invalid Content-Length; in a head with a body,
--       Content-Length values that differ (two lines, or
--       a list: "5, 2") or one over 2^63 - 1 (libcurl 7.88
--       reads the last, or skips one too large: the body
--       would be the reader's guess)
--     a header libcurl 7.88 cannot store (a folded line      43 protocol
--       first, no colon before a CR; a trailer without one,
--       or with a NUL byte)
--     header line too long (LIMITS.header_line)              27 protocol
--     header block too large (LIMITS.header_block)           56 protocol
--     broken chunked framing (bad or too long chunk size,    56 protocol
--       no CRLF after chunk data, trailer line too long,
--       trailers too large)
--     a transfer coding other than chunked or identity, or   61 protocol
--       more than 5 codings not chunked, in a head with a
--       body (not a 204 or 304), whatever the body
--     through a proxy (the request's `proxy` set):
--       the proxy's name cannot be resolved                  5  proxy
--       the proxy refused the connection, or is unreachable  7  proxy
--       the proxy answered CONNECT with a non-2xx status     56 proxy ("CONNECT tunnel
--                                                               failed, response N"; proxy_status N)
--       the proxy answered a plain-http request with 407     56 proxy ("Received HTTP code
--         (its status line says it: the body, whether cut      407 from proxy"; proxy_status 407)
--         short or trickled, is not waited for)
--       the proxy's non-2xx answer to CONNECT broke off       56 proxy (as above: its status
--         after its status line (closed, a NUL, too large)      line says it)
--       (a timeout, a reset or a TLS failure through a proxy keeps its own kind)
--     anything else                                          KINDS, or "other"
--
-- **Status lines** (both transports, the same rule and texts): the first line of each head (the
-- answer's first line, and the first after the blank line ending an interim 1xx head) is a status
-- line, and must be `HTTP/1.0` or `HTTP/1.1`, then one or more SP, then exactly three digits
-- 100-599, then the end of the line or SP (a reason phrase, possibly empty). Anything else there
-- -- lowercase `http/`, another version (`HTTP/2 204`, `HTTP/3`, `HTTP/1.2`, no version), a
-- fourth digit, a code under 100 or over 599 (HTTP has none: no class to read it by), a sign, a
-- tab, junk after the digits -- is a failure with code 1 ("protocol"), whether the head is
-- interim or final; so is a 101 (Switching Protocols: we never ask for an upgrade; a proxy's 101
-- to CONNECT is a refusal like any non-2xx, see the table). Nothing of that answer is kept
-- (status 0, no captured header, body ""), and the connection is not reused. libcurl 7.88 alone
-- is more lenient (it takes `http/1.1 500` for HTTP/1.0 200, `HTTP/2 4294967500` for 204): the C
-- core holds every status line libcurl hands it to this rule. The failure's text is libcurl's
-- where libcurl refuses the line by itself ("Unsupported HTTP version (1.2) in response",
-- "Received HTTP/0.9 when not allowed", ...), else "Unsupported status line in response (...)" or
-- "Switching Protocols (101) answered, ...".
--
-- **Transfer-Encoding** (RFC 9112 6.3, as libcurl 7.88 reads it): `chunked` among its codings
-- makes the body chunked. A Transfer-Encoding header that leaves the answer unchunked (say
-- `identity`, empty, or `,`) overrides any Content-Length, before or after it: the body is
-- read until the connection closes, and the connection is not reused (nor when a later
-- Transfer-Encoding header says `chunked`: the body is then chunked). Any other coding
-- (gzip, libcurl's `none`, an unknown one), or a sixth `identity`, fails with 61 as the head is
-- read, in both transports: the C core refuses the line before libcurl reads a body.
--
-- **Where the transports differ (and why)**
--
--  * Host names: cosockets resolve them with nginx's `resolver` directive only (none: 6),
--    within nginx's `resolver_timeout` (default 30 s), which `timeout` and `connect_timeout` do
--    not shorten: set it no longer than the connect_timeout you use (the example: 5 s). A lookup
--    it gives up on is 28 "Resolving timed out" ("timeout", tried again), as libcurl's. libcurl
--    uses the system resolver, within connect_timeout, even when the DNS server never answers
--    (glibc would wait 5 s x 2 tries): a lookup still running is left to its thread, which ends
--    on its own (CURLOPT_QUICK_EXIT, libcurl 7.87 or later: an older one waits for it when the
--    transfer is cleaned up). IP literals need neither, nor localhost and any *.localhost:
--    both transports take such a name for 127.0.0.1, then ::1 (libcurl's own rule).
--  * Dead pooled connections (closed or reset by the server before a whole line of an answer:
--    nothing, or a status line cut short; libcurl counts whole lines only), for
--    an idempotent request (see `resent`): the cosocket transport closes each and takes the
--    next, as many as the pool holds, until a live or fresh connection answers, within
--    `timeout`; libcurl sends it again on another connection (by itself five times in a
--    handle's life, then once more per request by the C core: see "Resends" in src/http.c). Either
--    way `resent` says so; a request of any other method, or with `no_resend`, fails there (52
--    or 55, "reset"). So does any request of the libcurl transport once a caught interrupt
--    (eip.core.catch_interrupts) says stop: nothing goes out again after the first Ctrl-C.
--  * Pooled connections that received anything while idle (a late duplicate answer, the late
--    body of a 204, a 408 before a close) or were closed or reset since: never used, in both
--    transports. What is there is no answer to the next request. The cosocket transport looks
--    at a pooled socket before sending on it (nginx's pool would find it only when the event
--    loop runs, not between two sends without a yield); the libcurl transport finds it just
--    before sending (its prerequest callback looks at the socket) and aborts before anything is
--    sent. Either sends on a fresh connection instead: not a resend, also for a POST. (Over
--    TLS, bytes OpenSSL holds after an answer that ended where a read filled nginx's buffer are
--    seen for a lua_socket_buffer_size of whole KiB only: see recv in eip.transport.cosocket.)
--  * Bytes that came beyond an answer's end in the same read: the cosocket transport never
--    reuses such a connection. libcurl 7.88 drops them unseen, keeping the connection; the C
--    core finds them, and then does not reuse it either: after a chunked body, which it decodes
--    itself (libcurl hands it the body as it came, bytes after its end included), over TLS too;
--    after an answer without a body ("204 ...\r\n\r\n{}"), by comparing the kernel's count of
--    the bytes received with the heads' when the next request is to go out on it (the one look
--    also finds what came while it was idle, and an end or a reset), without TLS only. Over
--    TLS, after an answer without a
--    body, it cannot tell (after a body of a Content-Length, libcurl closes the connection
--    itself).
--  * An answer that comes while a large request body is still going out (a 413 or a 500 before
--    the server reads the body): libcurl reads it at once; the cosocket transport sends the
--    whole request first, so a server that stops reading meanwhile ends in a timeout (28) or a
--    reset (55). The API's request bodies are a few hundred bytes, sent in one write.
--  * Trust store: `ca_file` is libcurl's; cosockets use `lua_ssl_trusted_certificate`. nginx's
--    cosocket pool is the worker's, not a location's: a TLS connection verified in one location
--    may be reused in another whose `lua_ssl_trusted_certificate` (or `lua_ssl_verify_depth`)
--    is narrower, without that store being consulted (as nginx's own upstream keepalive does).
--    Give every location that calls the same endpoint the same trust settings (set them at the
--    `http` level).
--  * A reset over TLS inside nginx: nginx's TLS layer reads a reset after bytes of an answer as
--    the connection's close (receive says "closed"), so what a close there means is reported: a
--    head cut short 8, a body cut short 18, a body read until the close ends there (an HTTP/1.0
--    answer without a length: that body). libcurl says 56 "reset" for each (retried as a reset
--    is); over plain TCP both say 56.
--  * curl_error texts are alike, not identical; compare curl_code and error_kind.
--  * Over-long header line: libcurl 7.88 says 27 "Out of memory" (newer libcurl says 100,
--    CURLE_TOO_LARGE); the cosocket transport says 27 with a clearer text. Both "protocol".
--  * A NUL byte in a head: the cosocket transport always fails with 8; libcurl 7.88 does too,
--    except at the start of a line, where it drops the rest of that read (what follows then
--    depends on how the bytes arrived: a close after it is the cut head below, 8 in the final
--    head and 52 in an interim one; more bytes after it are read as libcurl reads them).
--  * The connection closed inside a head (after its status line, before its blank line): no
--    answer in either, whatever the status line said (libcurl 7.88 took a final head as it
--    stood: a 204 cut short read as a delete done): 8 "Weird server reply" inside the final
--    head (its status kept), 52 "Empty reply from server" inside an interim one (none kept).
--  * Chunked trailers: captured headers in them are captured by both (the C core reads them as
--    libcurl 7.88 would have stored them and handed them to its header callback); their lines
--    are bounded by LIMITS.trailer_line in both, all of them by LIMITS.trailer_block (each line
--    counted with a CRLF, as libcurl hands it over).
--  * Proxies: the proxy's host name is resolved as any other (nginx's `resolver` for cosockets).
--    The answer to CONNECT is read by eip.transport.http1 with the same bounds and rules as any
--    head, within connect_timeout; its body, if any, is never read: the connection is closed
--    after a refusal, in both (libcurl would read it to its end, its timeouts unchecked
--    meanwhile: the C core aborts once the refusal's status is known, and ends any transfer
--    past the request's timeout, whatever libcurl is doing). A proxy that closes before or inside its
--    CONNECT answer (but a refusal's, after its status line: see the table), or answers garbage,
--    is 56 "reset" in both ("Proxy CONNECT aborted", "CONNECT tunnel failed, response 0"), the
--    request never sent. A CONNECT answer whose head
--    breaks a rule of the table above (a line without a colon, ...) fails as that row says over
--    cosockets; libcurl's own CONNECT reader is more lenient and may take the tunnel. Odd
--    answers to CONNECT that no proxy gives, where the two part (no request is sent either way,
--    TLS is verified either way): an interim 100 before the 200 (libcurl: 56 proxy, response
--    100; cosockets: the tunnel), bytes after a 200's head (libcurl hands them to TLS, 35; the
--    cosocket transport drops them and verifies TLS on what follows), a non-HTTP line kept open
--    (libcurl waits out connect_timeout, 28; cosockets fail at once, 56 "response 0"). Idle
--    tunnels are pooled by nginx per endpoint, verification and proxy (its credentials as a
--    hash), plain proxy connections per proxy.
--
-- **Choosing the transport**
--
-- Inside nginx (OpenResty or nginx + lua-nginx-module) the choice is made per send(), from
-- `ngx.get_phase()`, because a client made in one phase (say init_by_lua, shared by every
-- request of a worker) is used in others. Cosockets are available in rewrite, access, content,
-- timer (`ngx.timer.*` callbacks, including those started from init_worker_by_lua) and ssl_cert.
-- Everywhere else -- init_by_lua\*, init_worker_by_lua\* (outside a timer), set_by_lua\*,
-- header_filter_by_lua\*, body_filter_by_lua\*, log_by_lua\*, balancer_by_lua\*,
-- ssl_session_store_by_lua\*, exit_worker_by_lua\* -- nginx forbids cosockets; in
-- ssl_client_hello_by_lua\* and ssl_session_fetch_by_lua\* nginx allows them, but only
-- OpenResty's patched OpenSSL can resume a handshake whose callback yielded (with stock nginx
-- and OpenSSL, as Debian's, the call is abandoned at its first wait: no answer, no error). In all
-- of them lua-eip falls back to libcurl: the call
-- works, but it **blocks the whole worker** (every other request it serves) until the answer
-- comes or the timeout fires. Prefer starting an `ngx.timer.at(0, ...)` from those phases and
-- calling lua-eip inside the timer.
--
-- Note for init_by_lua: a client that made calls there (libcurl, in the master) can be kept for
-- the workers: the C core drops the connections a worker inherits at the fork and the worker
-- opens its own (README: OpenResty); no worker ever sends on the master's connection.
-- @module eip.transport

--- The request a transport's @{transport:send} is given.
-- @table request
-- @tfield string method "DELETE", "GET", "POST", ...: an RFC 9110 token, else a caller bug that
--   raises
-- @tfield string url absolute http(s) URL, already validated; an IP literal host is verified
--   against the certificate's IP addresses, a name against its DNS names, never its common name:
--   both transports refuse a certificate with no subjectAltName at all whose common name is the
--   host, by name as by address, as current TLS clients do (public CAs no longer issue such;
--   libcurl 7.88 on its own takes it: the C core has OpenSSL check the names too, unless libcurl
--   runs on another TLS backend, as the README's Requirements say); a wildcard matches only as a
--   whole first label ("*.example.com"), never a partial one ("a*.example.com"), by both
-- @tfield {string,...} headers "Name: value" lines; a CR, LF or NUL in one, or a line whose name
--   before the colon is not a token, is a caller bug and raises (it is never a failure table)
-- @tfield string body the body, or nil; sent with its Content-Length (POST and PUT always
--   carry one)
-- @tfield number timeout seconds for the WHOLE exchange: connect, TLS, send and every read (30)
-- @tfield number connect_timeout seconds to connect, TLS handshake included, within `timeout` (10)
-- @tfield integer low_speed_limit with `low_speed_time`: abort (28) when fewer than this many
--   bytes/s arrive for low_speed_time seconds; 0 turns it off (0, 0). Both transports check
--   windows of low_speed_time from the request's start, every byte received counted (the
--   head's too: libcurl's own check counts body bytes only, so the C core makes it; libcurl
--   counts a head's line once it is whole, so the C core also reads the kernel's count of the
--   socket's bytes, TCP_INFO (from what it was when the request went out, over whole windows
--   too), and a window is too slow only when neither reached the limit: one head
--   line longer than a window's due counts as it comes. Not over TLS, whose records
--   add bytes on the wire (one byte per record would read as 23), nor where the kernel does
--   not say (systems other than Linux): there libcurl counts a head line when it is whole and
--   a chunked body's bytes without their chunk framing, which the cosocket transport counts,
--   the one difference between the transports: each ends in 28, within the timeout)
-- @tfield integer low_speed_time see `low_speed_limit`
-- @tfield integer body_cap bytes of body kept (1 MiB)
-- @tfield boolean no_resend true: never sent again by the transport itself, whatever its method
--   (a kept-alive connection that dies before any answer is a failure, 52 or 55 "reset", as
--   for a POST; not `resent`). The client sets it on signed requests (AK/SK): each send is a
--   signature the gateway checks, and five refused in a row lock the key
-- @tfield table progress nil, or a table whose `sent` the transport sets to true once anything
--   of the request may have been written to a connection (the cosocket transport as it starts
--   writing; the libcurl transport when it returns, unless the response says `unsent`). A batch
--   inside nginx reads it for a light thread it aborts: one that had sent nothing yet (still
--   connecting, in a TLS handshake) could not have been acted on. Its `halted`, set by that
--   batch when it stops, says the request is not to be sent again from then on: a kept-alive
--   connection that dies before any answer is then the attempt's failure (52 or 55, "reset"),
--   as for `no_resend`, rather than a delete sent after the stop. Its `halt_sends`, set when
--   that batch stops or aborts, says nothing of the request is to go out at all if nothing has yet: the
--   transport answers `unsent` and `held_back` (42) instead of writing it.
-- @tfield table proxy nil or false: straight to the URL's host. Neither transport ever reads
--   the environment (http_proxy, ALL_PROXY, no_proxy) by itself: the client decides, in Lua,
--   once (`eip.proxy`: the option, else the environment; never for loopback, 0.0.0.0, :: or
--   link-local hosts), and puts the decision here. Otherwise a read-only table, the same for every
--   request through that proxy: `url` ("http://host:port", never credentials), `host` and
--   `port` (an IPv6 address in brackets), `name` ("host:port", for messages), `user` and
--   `password` (the Basic credentials, decoded: both absent, or both set), `authorization`
--   ("Basic <base64 of user:password>" when credentials are given: sent as
--   Proxy-Authorization to the proxy only). https URLs ALWAYS go through a CONNECT tunnel
--   ("CONNECT host:port HTTP/1.1", Host, Proxy-Authorization, User-Agent, Proxy-Connection:
--   Keep-Alive), then TLS to the URL's host inside it, verified exactly as without a proxy
--   (SNI and certificate name or IP checks): the proxy sees the CONNECT line and encrypted
--   bytes, never the request. http URLs are sent to the proxy with an absolute-form target
--   ("DELETE http://host:port/path HTTP/1.1"), plus Proxy-Authorization and
--   Proxy-Connection: the proxy sees everything, headers included.

--- What a transport's @{transport:send} returns: the answer, or a failure. A failure can come
-- with what arrived before it: the status and captured headers of an answer whose body then
-- broke off, and that partial body. No other fields are set.
-- @table response
-- @tfield integer status status of the final answer (interim 1xx answers are skipped); 0 when
--   no status line of a final answer came (a failure after an interim answer keeps nothing of
--   it: neither its status nor its headers)
-- @tfield string request_id `X-Request-Id` of the final answer (the last one when repeated),
--   blanks around it removed, cut to @{CAPTURED_MAX} bytes (the last three then "...": the
--   client's clean redacts the start of a secret just before such a mark); nil when absent or
--   empty. Without
--   one, the first `X-IAM-Trace-Id` (IAM's name for it), the same way
-- @tfield string retry_after `Retry-After`, the same way, but when repeated every non-empty
--   value in order, joined with ", " (RFC 9110's combining of field lines: "60, 1"), the whole
--   cut as one value; the retry policy waits for the longest (eip.retry.parse_retry_after)
-- @tfield string content_type `Content-Type`, the same way
-- @tfield string location `Location`, the same way
-- @tfield string date `Date`, the same way, with a `retry_after` only: the server's clock,
--   against which the retry policy reads an HTTP-date `Retry-After` (eip.retry.parse_retry_after)
-- @tfield string subject_token `X-Subject-Token`, the FULL value (IAM tokens run to kilobytes;
--   its line is bounded by LIMITS.header_line like any other); nil when absent or empty
-- @tfield string body the body, "" when none; at most body_cap bytes
-- @tfield boolean truncated true when the body went past body_cap: the first body_cap bytes
--   are kept, the rest is not read and the connection is not reused
-- @tfield number elapsed seconds the exchange took
-- @tfield integer new_connections connections opened for it (0: a pooled or kept-alive one was
--   reused)
-- @tfield boolean resent true when the request went out on a kept-alive connection that died
--   before any answer and was sent again on another (the first send may have been carried
--   out); only an idempotent method (GET, HEAD, PUT, DELETE, OPTIONS) is: any other fails
--   there (52, "reset"). nil otherwise. (libcurl before 7.80 cannot say so: nil.)
-- @tfield boolean interrupted libcurl's single requests only: true when a second caught
--   interrupt (eip.core.catch_interrupts: Ctrl-C, SIGTERM, SIGHUP) aborted it in flight
--   (curl_code 42); the server may or may not have acted on it, unless `unsent` says nothing
--   of it went out. nil otherwise. (The first caught interrupt holds a single request back if
--   nothing of it has gone out yet: `unsent` and `held_back`, 42, as a batch's halt_sends.)
-- @tfield boolean held_back on failure only: true when the request was held back before any of
--   it went out, with `unsent` and curl_code 42: its `progress.halt_sends` was set while its
--   connection was being made (a batch stopped), or (libcurl's single requests) a first caught
--   interrupt said stop. nil otherwise
-- @tfield boolean unsent on failure only: true when nothing of the request was written to a
--   connection (to the server, or to a plain-http proxy): its name did not resolve, the
--   connection, the TLS handshake or the proxy's tunnel failed or timed out, or the request's
--   time ran out before it could go. The server cannot have acted on it, whatever the failure's
--   kind (a timeout, a "reset" proxy). nil when any of it may have gone out, and always with
--   libcurl before 7.80 (no prerequest callback: unknown). The same in both transports.
-- @tfield integer curl_code on failure only: the CURLcode libcurl gives for it (the cosocket
--   transport reports the same code for the same failure; see the table above)
-- @tfield string curl_error on failure only: one line saying what happened; never contains
--   request headers
-- @tfield string error_kind on failure only: @{error_kind}(curl_code, curl_error, req.proxy,
--   proxy_status), one of @{KIND_NAMES}
-- @tfield integer proxy_status through a proxy, on failure only: the status of the PROXY's own
--   answer that ended the exchange: a CONNECT answered with anything but 2xx, or a 407 to a
--   plain-http request (the EIP API never answers 407). Then `status` is 0 and nothing of the
--   proxy's answer is kept (no captured header, body ""). A proxy's answer is never reported
--   as the API's.

--- Sends one request and returns what came back: a method of every transport. It only reads
-- the request. The built-in transports keep nothing of it once send returns, so the client
-- fills the same table again for its next attempt or call; a transport given as the option
-- `transport` always gets a table of its own, which it may keep.
-- @function transport:send
-- @tparam request req the @{request}
-- @treturn response the @{response}: an answer, or a failure its fields describe
-- @raise a Lua error for a caller's bug only, a @{request} that breaks its own rules: a method
--   that is no token, a header line holding CR, LF or NUL or whose name before the colon is no
--   token (or without a colon), a field of another type than the @{request} says, a `proxy`
--   table without the fields it lists; never for anything a server or the network does. (A
--   transport given as the option `transport` that raises all the same fails that request: the
--   client reads it as a failure @{response} of kind "other", curl_code 2, that may have been
--   sent, its text what was raised.)

--- Releases what the transport holds (libcurl's connection); a method of every transport.
-- The transport is not used after it. Returns nothing.
-- @function transport:close
-- @raise never (a transport given as the option `transport` whose close raises all the same:
--   `client:close()` does not raise it, and writes it to the client's debug log)
local M = {}

--- The bounds a server may hit, in bytes (see the contract above).
M.LIMITS = {
  header_line = 102400,  -- a header line, its line end included, must be shorter
  header_block = 307200, -- all header lines of one answer, interim ones included
  chunk_hex = 16,        -- hex digits of a chunk size
  trailer_line = 4093,   -- one trailer line of a chunked body, its line end excluded
  trailer_block = 307200, -- all trailer lines of one chunked body, line ends included
}

--- Captured header values other than X-Subject-Token are cut to this many bytes.
M.CAPTURED_MAX = 255

--- The error kinds, in the order of the contract's table.
M.KIND_NAMES = { "dns", "connect", "timeout", "reset", "tls", "protocol", "proxy", "other" }

-- CURLcode -> error kind (M.KINDS below).
local KINDS = {
  [5] = "dns",        -- could not resolve proxy
  [6] = "dns",        -- could not resolve host
  [7] = "connect",    -- could not connect (refused, unreachable)
  [28] = "timeout",   -- connect, whole exchange or low speed
  [16] = "reset",     -- HTTP/2 framing error
  [18] = "reset",     -- partial body: the peer closed mid-transfer
  [52] = "reset",     -- empty reply: closed before any answer
  [55] = "reset",     -- send failure
  [56] = "reset",     -- receive failure (refined: see error_kind)
  [92] = "reset",     -- HTTP/2 stream error
  [35] = "tls",       -- handshake failed
  [51] = "tls",       -- peer certificate name mismatch (older libcurl; now 60)
  [53] = "tls", [54] = "tls", [58] = "tls", [59] = "tls", [64] = "tls", [66] = "tls",
  [60] = "tls",       -- peer certificate cannot be verified (untrusted, wrong name)
  [77] = "tls",       -- CA file problem
  [80] = "tls", [83] = "tls", [90] = "tls", [91] = "tls", [98] = "tls",
  [1] = "protocol",   -- not HTTP/1.x ("Received HTTP/0.9", unsupported version or code)
  [43] = "protocol",  -- libcurl 7.88: a header it cannot store (a fold with nothing before it,
                      -- no colon before a CR, a trailer without a colon)
  [8] = "protocol",   -- weird server reply (header without colon, NUL, bad Content-Length)
  [27] = "protocol",  -- libcurl 7.88: a header line over CURL_MAX_HTTP_HEADER ("Out of memory")
  [61] = "protocol",  -- bad (transfer) content encoding
  [100] = "protocol", -- CURLE_TOO_LARGE (libcurl >= 8.6: header line or block too large)
}

--- CURLcode -> error kind, for the codes of the failures table above and their kin
-- (`KINDS[60] == "tls"`). Codes not listed are "other". A code libcurl gives for more than
-- one thing is refined by @{error_kind} from the text: 56 (a reset, or a broken answer).
-- @table KINDS
M.KINDS = KINDS

--- Through a proxy, the codes that can only be about the proxy (libcurl connects to nothing
-- else): its name did not resolve, it refused or could not be reached.
-- @table PROXY_CODES
M.PROXY_CODES = { [5] = true, [7] = true }

local PROXY_CODES = M.PROXY_CODES
local find = string.find

--- The error kind of a failure: KINDS[code], except that 56 with libcurl's texts for a broken
-- answer ("Too large response headers", "... in chunked-encoding") is "protocol", not "reset";
-- that 27 with the C core's own texts ("out of memory (...)", "cannot sign", "the URL was
-- refused": a request it could not make, or an answer it could not keep) is "other"; and that
-- through a proxy a failure the proxy's own answer caused (`proxy_status`) or one of
-- @{PROXY_CODES} is "proxy".
-- @tparam integer code the CURLcode (`curl_code`)
-- @tparam[opt] string text libcurl's text for it (`curl_error`)
-- @tparam[opt] table proxy the request's `proxy` (or any true value): the request went
--   through a proxy
-- @tparam[opt] integer proxy_status the status of the proxy's own answer that ended it
-- @treturn string one of @{KIND_NAMES}; "other" for a code not in @{KINDS}
-- @raise never
function M.error_kind(code, text, proxy, proxy_status)
  if proxy and (proxy_status or PROXY_CODES[code]) then return "proxy" end
  if code == 56 and type(text) == "string"
      and (find(text, "chunked-encod", 1, true) or find(text, "Too large response headers", 1, true)
        or find(text, "Too large response trailers", 1, true)) then
    return "protocol"
  end
  -- (27 with the C core's own texts, lower case: a request it could not make, memory running
  -- out, or an answer it could not keep; libcurl's text for a header line too long is "Out of memory")
  if code == 27 and type(text) == "string" and (find(text, "^out of memory") or find(text, "^cannot start")
      or find(text, "^cannot sign") or find(text, "^the URL was refused")) then
    return "other"
  end
  return KINDS[code] or "other"
end

--- The contract's response for a request that could not be made, nothing of it sent: the C
-- core out of memory for a handle, a copy of the request or its signature (`why`: what it
-- raised or said, its "eip.core: " prefix dropped). curl_code 27 (CURLE_OUT_OF_MEMORY),
-- `error_kind` "other", `unsent`.
-- @tparam string why the C core's error (or whatever it raised: a value whose tostring raises is
--   said as "out of memory")
-- @treturn table the response
-- @raise never
function M.unmade(why)
  local told, text = pcall(tostring, why)
  text = told and type(text) == "string" and text:gsub("^.-eip%.core: ", "") or "out of memory"
  return { status = 0, curl_code = 27, curl_error = text, error_kind = "other", unsent = true, body = "",
    elapsed = 0, new_connections = 0 }
end

--- The nginx phases (`ngx.get_phase()` names) in which `ngx.socket.tcp` and `ngx.sleep` are
-- allowed: there lua-eip uses cosockets; elsewhere it falls back to libcurl.
-- (Not ssl_client_hello nor ssl_session_fetch: see "Choosing the transport" above. Under
-- OpenResty a transport = require("eip.transport.cosocket").new() given to the client yields there.)
M.COSOCKET_PHASES = {
  server_rewrite = true, rewrite = true, access = true, content = true, timer = true, ssl_cert = true,
}

local function ngx_api()
  -- The nginx API is a global of the nginx Lua VM; rawget keeps plain Lua (and luacheck) happy.
  local ngx = rawget(_G, "ngx")
  if type(ngx) == "table" and type(ngx.get_phase) == "function" then
    return ngx
  end
  return nil
end

--- The current nginx phase.
-- @treturn ?string `ngx.get_phase()` ("content", "timer", "init", ...), nil outside nginx
-- @raise never
function M.phase()
  local ngx = ngx_api()
  if not ngx then return nil end
  local ok, phase = pcall(ngx.get_phase)
  return ok and phase or nil
end

-- Can the running code yield: is there no C function between it and the start of its coroutine
-- (but pcall and xpcall, which LuaJIT yields through)? In a phase that allows cosockets, code
-- may still run where it cannot: in a dofile, a module's top level run by require, a callback
-- of string.gsub or table.sort. There a light thread spawned panicked nginx's Lua VM, an
-- ngx.sleep raised "attempt to yield across C-call boundary", and a cosocket's failed yield left
-- the request such that a later wait in it crashed the worker. nginx's coroutine table has no
-- isyieldable: the C core's lua_isyieldable (LuaJIT 2.1) answers; where it cannot (an
-- interpreter without it), the stack is looked at.
local getinfo, pcall_, xpcall_ = debug.getinfo, pcall, xpcall
-- (the core's, loaded at the first look: nil until then, false when it has none or cannot load)
local core_yieldable = nil
-- function -> whether it is a C function no yield goes through (looked up once per function).
local BLOCKS = setmetatable({}, { __mode = "k" })
local function frames_yield()
  if core_yieldable == nil then
    local ok, core = pcall(require, "eip.core")
    core_yieldable = ok and type(core) == "table" and type(core.yieldable) == "function" and core.yieldable or false
  end
  if core_yieldable then
    local answer = core_yieldable()
    if answer ~= nil then return answer end
  end
  local level = 3 -- (the caller's caller and up)
  while true do
    local info = getinfo(level, "f")
    if info == nil then return true end
    local f = info.func
    local blocks = f ~= nil and BLOCKS[f] -- (nil: Lua 5.1's mark of tail calls)
    if blocks == nil then
      blocks = f ~= pcall_ and f ~= xpcall_ and getinfo(f, "S").what == "C"
      BLOCKS[f] = blocks
    end
    if blocks then return false end
    level = level + 1
  end
end

--- Can the code yield to nginx here: inside nginx, in a phase that allows cosockets, in a frame
-- that can yield?
-- @treturn boolean true there (server_rewrite, rewrite, access, content, timer, ssl_cert, but not
--   inside a dofile, a require or a callback of string.gsub, table.sort...), false elsewhere and
--   outside nginx
-- @raise never
function M.yieldable()
  return M.COSOCKET_PHASES[M.phase()] == true and frames_yield()
end

--- Would a wait here block the whole nginx worker: inside nginx, in a phase without cosockets
-- (log_by_lua, the filters, set_by_lua, init...), where a sleep is the system's?
-- @treturn boolean
-- @raise never
function M.blocking()
  return M.phase() ~= nil and not M.yieldable()
end

-- The phases in which the process serves no request of its own: nginx's master (init_by_lua)
-- and a worker before it serves any (init_worker_by_lua, outside a timer).
local STARTING_PHASES = { init = true, init_worker = true }

--- Is the running code inside nginx, where the process serves no request yet: in nginx's master
-- (init_by_lua), or in init_worker_by_lua outside a timer? A wait there stops no request of its
-- own.
-- @treturn boolean
-- @raise never
function M.starting()
  return STARTING_PHASES[M.phase()] == true
end

local new_semaphore

--- A new ngx.semaphore (inside nginx, with lua-resty-core), else nil (nginx-lua without it, or
-- outside nginx): the caller polls then.
-- @treturn ?table
-- @raise never
function M.semaphore()
  if new_semaphore == nil then
    local ok, sema = pcall(require, "ngx.semaphore")
    new_semaphore = ok and type(sema) == "table" and sema.new or false
  end
  return new_semaphore and new_semaphore() or nil
end

--- The transport a send would use here and now.
-- @treturn string "cosocket" where @{yieldable}, else "curl"
-- @raise never
function M.current()
  return M.yieldable() and "cosocket" or "curl"
end

-- The automatic transport: one lazily made instance of each concrete transport, picked per
-- send(). Outside nginx this is the libcurl transport with one more table lookup per call.
local Auto = {}
Auto.__index = Auto
Auto.name = "auto"

-- The instance of `name`, made at its first use; nil and what its making raised when it could not
-- be made (the libcurl transport's C handle, memory running out; the options were checked by new).
function Auto:get(name)
  local t = self.instances[name]
  if not t then
    local made
    made, t = pcall(require("eip.transport." .. name).new, self.opts)
    if not made then return nil, t end
    self.instances[name] = t
  end
  return t
end

-- The transport of a request (named in auto.last, "cosocket" or "curl", for diagnostics).
-- The choice is @{current}'s, made here in one step: it runs before every request. An Auto
-- is made only inside nginx, so the nginx API is there; its get_phase is called straight, not
-- through pcall as in @{phase}: LuaJIT cannot compile a function that returns into pcall on
-- its own, gives up on it after a few tries, and then on every trace that calls it, which
-- left this whole send interpreted. (resty.core's get_phase raises only for a request nginx
-- has no context for, where no cosocket could be used either.)
local function picked(auto)
  local phase = rawget(_G, "ngx").get_phase()
  -- (in a frame that cannot yield, cosockets fail, and the failed yield left nginx's state of the
  -- request such that a later wait in it crashed the worker: libcurl there, as in the phases
  -- without cosockets)
  local name = M.COSOCKET_PHASES[phase] and frames_yield() and "cosocket" or "curl"
  auto.last = name
  return auto.instances[name] or auto:get(name)
end

function Auto:send(req)
  local t, why = picked(self)
  if not t then return M.unmade(why) end -- (nothing sent)
  return t:send(req)
end

-- (this module's own send, for the pipeline's check that a caller did not replace it: on the
-- instance, or on the class before the lane was made)
local auto_send = Auto.send

local function finished(resp) return resp end

-- What eip.pipeline's lane sends with (see eip.transport.curl's Transport:lane): for a token's
-- requests, the lane of the transport send() would pick for each request, that transport's own
-- made at its first use (again for an instance made after a close); nil for signed ones, which
-- go the general way inside nginx. Returns `lane, self, prepared, finish, send` as the others
-- (finish: nothing more, each lane's own was applied). The lane's answer is false (nothing
-- sent: the request goes the general way) when the picked transport's send is not its module's
-- own (a caller replaced it, on the instance or the class, to watch it: it sees every request);
-- nil and what it raised when the picked lane raised (the request may have gone out).
function Auto:lane(req, signing)
  if signing ~= nil then return nil end
  -- (req is the pipeline's, made for the lane alone; each transport's lane keeps its own copy)
  local lanes = setmetatable({}, { __mode = "k" }) -- transport -> { lane, its self, prepared, finish }
  local function send(auto, _, path, usable, secrets)
    local t = picked(auto)
    -- (a transport, or its lane, that could not be made: nothing sent, the general way says why)
    if not t then return false, nil, 0 end
    local l = lanes[t]
    if not l then
      local made, lane, its, prepared, finish, own = pcall(t.lane, t, req)
      if not made then return false, nil, 0 end
      l = { lane, its, prepared, finish, own }
      lanes[t] = l
    end
    if t.send ~= l[5] then return false, nil, 0 end
    -- (what the lane raises, memory running out, say: nil and the value, which the pipeline
    -- reads as the general way reads what a transport's send raises)
    local ok, status, request_id, took = pcall(l[1], l[2], l[3], path, usable, secrets)
    if not ok then return nil, status, 0 end
    if request_id == nil and type(status) == "table" then status = l[4](status) end
    return status, request_id, took
  end
  return send, self, false, finished, auto_send
end

-- Closes the libcurl session, if one was made (the cosocket transport holds nothing).
function Auto:close()
  for _, t in pairs(self.instances) do
    t:close()
  end
  self.instances = {}
end

--- The options of a transport's constructor, checked as @{new} checks them (the libcurl and
-- cosocket transports' constructors check theirs with it too).
-- @tparam string who the constructor, as its errors name it ("eip.transport.curl", ...)
-- @tparam[opt] table opts `ca_file`, `insecure`, `user_agent` (see @{new}); nil: none
-- @treturn table a copy holding `ca_file`, `insecure` and `user_agent`
-- @raise a Lua error (a string starting with `who`), at the constructor's caller, when `opts` is
--   no table (or one whose metamethods raise), `ca_file` no non-empty string, `insecure` no
--   boolean, or `user_agent` no string or one holding a control character
function M.settings(who, opts)
  opts = opts or {}
  if type(opts) ~= "table" then error(who .. ": options must be a table, got a " .. type(opts), 3) end
  -- (read once, protected: what an __index of the caller's raises is this error, not its own)
  local read, ca_file, insecure, ua = pcall(function() return opts.ca_file, opts.insecure, opts.user_agent end)
  if not read then error(who .. ": options cannot be read: a metamethod of them raised an error", 3) end
  if ua ~= nil and (type(ua) ~= "string" or ua:find("%c")) then
    error(who .. ": user_agent must be a string without control characters (CR, LF, NUL...)", 3)
  end
  if ca_file ~= nil and (type(ca_file) ~= "string" or ca_file == "") then
    error(who .. ": ca_file must be a non-empty string (a PEM file's path), got a " .. type(ca_file), 3)
  end
  -- (a string such as "false", or a number, would be true to Lua: verification off by accident)
  if insecure ~= nil and type(insecure) ~= "boolean" then
    error(who .. ": insecure must be true or false, got a " .. type(insecure), 3)
  end
  return { ca_file = ca_file, insecure = insecure, user_agent = ua }
end

--- The transport for where the code runs (what @{eip.new} uses by default): outside nginx the
-- libcurl transport itself; inside, one that picks cosockets or libcurl at each send, from
-- the phase (its `last` names the one the last send used).
-- @tparam[opt] table opts options:
-- @tparam[opt] string opts.ca_file PEM bundle to verify servers with (libcurl only: nginx
--   verifies cosockets against `lua_ssl_trusted_certificate`); default: the system store
-- @tparam[opt=false] boolean opts.insecure true: no certificate and no host verification
-- @tparam[opt] string opts.user_agent the `User-Agent` header (no control character)
-- @treturn table a transport: @{transport:send}, @{transport:close}, `name`
-- @raise a Lua error: a string starting "eip.transport:" when `opts` is no table, when `ca_file`
--   is no non-empty string, `insecure` no boolean, or `user_agent` no string or one holding a
--   control character; outside nginx, `require`'s own ("module 'eip.core' not found: ...") when
--   the C core cannot be loaded
function M.new(opts)
  local copy = M.settings("eip.transport", opts)
  if not ngx_api() then
    return require("eip.transport.curl").new(copy)
  end
  -- Both loaded now (a client made in init_by_lua, by nginx's master, hands them to the workers):
  -- loaded at a first request instead, by a worker that cannot read the tree the master could
  -- (a tree only root reads, workers as nobody), every request failed after a start that passed.
  -- (pcall: one that cannot load says so at its first use, as before.)
  pcall(require, "eip.transport.cosocket")
  pcall(require, "eip.transport.curl")
  return setmetatable({ opts = copy, instances = {} }, Auto)
end

-- Sleeping ------------------------------------------------------------------------------------

-- A non-busy OS sleep for where nginx cannot yield, from whatever is at hand: the C core's
-- sleep when it has one, else LuaJIT's FFI (poll with no descriptors), else LuaSocket.
local function os_sleep(seconds)
  local ok_core, core = pcall(require, "eip.core")
  if ok_core and type(core.sleep) == "function" then
    return core.sleep(seconds)
  end
  local ok_ffi, ffi = pcall(require, "ffi")
  if ok_ffi then
    pcall(ffi.cdef, "int poll(void *fds, unsigned long nfds, int timeout);")
    ffi.C.poll(nil, 0, math.floor(seconds * 1000 + 0.5))
    return
  end
  local ok_socket, socket = pcall(require, "socket")
  if ok_socket and socket.sleep then
    return socket.sleep(seconds)
  end
  error("eip.transport.sleep: no sleep available (need the C core's sleep, LuaJIT or LuaSocket)", 2)
end

--- Sleeps: `ngx.sleep` (it yields: the worker serves others meanwhile) where nginx allows it,
-- else an OS sleep (it blocks this thread, without burning CPU). The default `sleep` of
-- @{eip.new}. Returns nothing.
-- @tparam number seconds how long, >= 0
-- @raise a Lua error when `seconds` is not a number >= 0
function M.sleep(seconds)
  if type(seconds) ~= "number" or seconds ~= seconds or seconds < 0 then
    error("eip.transport.sleep: seconds must be a number >= 0", 2)
  end
  if seconds == 0 then return end
  if M.yieldable() then
    return ngx_api().sleep(seconds)
  end
  return os_sleep(seconds)
end

return M
