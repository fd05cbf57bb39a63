--- The pipeline: how one operation (see eip.ops) becomes requests, and answers become a
-- result or an error. Every call the library makes goes through the same steps:
--
--   validate      (the caller: eip.client checks ids and options; a usage error sends nothing)
--   build         method, URL, query, body, timeouts of one attempt
--   authenticate  the credential provider (eip.auth) adds X-Auth-Token or signs the request;
--                 then the header lines the transport takes
--   send          the transport (eip.transport): libcurl, or cosockets inside nginx
--   map           2xx -> the response; otherwise an eip error (status table, error body,
--                 retryable as eip.retry says)
--   decide        eip.retry: done, wait and try again, refresh credentials once, or fail;
--                 a final failure may still be an acceptable outcome (op.recover)
--
-- A runner holds what every call of one client shares (endpoint, timeouts, policy, transport,
-- credential provider). `runner:run(op)` drives one operation to its end, sleeping between
-- attempts; batches drive many at once through `runner:call(op)`, whose `request`, `response`
-- and `failure` steps are the same ones `run` uses, so single calls, batches and the IAM token
-- request share every rule. @module eip.pipeline
local core = require "eip.core"
local errors = require "eip.errors"
local validate = require "eip.validate"
local body = require "eip.body"
local log = require "eip.log"
local retry = require "eip.retry"
local ops = require "eip.ops"

local M = {}

local monotime = core.monotime
local blank_controls = core.blank_controls
local plain_text = core.plain_text
local secret_ranges = core.secret_ranges
local min, max = math.min, math.max
local type = type
local byte, sub = string.byte, string.sub

-- pcall that a caller's transport may yield through on every Lua (see errors.yielding).
local yielding = errors.yielding

-- The headers every request starts with, shared by all requests and never modified. Each also
-- holds its line as the transport takes it, so the lines are not built again for every call.
-- Accept is not signed: a proxy may rewrite it without breaking the signature.
local CONTENT_TYPE = { "Content-Type", "application/json", line = "Content-Type: application/json" }
local ACCEPT = { "Accept", "application/json", signed = false, line = "Accept: application/json" }

local Runner = {}
Runner.__index = Runner

--- A runner for one client.
-- @tparam table cfg endpoint, host, base_path, project_id (nil: learnt from the provider),
--   provider, transport, timeout, connect_timeout, deadline, low_speed_limit, low_speed_time,
--   max_body, policy, sleep, log, proxies (eip.proxy settings: the proxy of each request),
--   secrets (secret values the client holds outside its provider: proxy credentials),
--   reuse_requests (true: the transport keeps no request after send returns, as the built-in
--   ones do, so a call fills the same request table at every attempt), and for batches
--   ca_file, insecure, user_agent
-- The runner's optional fields that a call reads, false when not set: Lua 5.4 reads an absent
-- field through a slower path (luaV_finishget) than a present one, and writes one (to nil, or
-- over nil) through a slower one still; a call made dozens of such reads and writes.
local OPTIONAL = { "log", "on_request", "on_response", "bucket", "endpoint_proxy", "deadline", "secrets",
  "project_missing", "multi_busy", "multi_owner", "outstanding", "outstanding_owners", "outstanding_due",
  "warned_clear", "multi_handle", "shared_headers", "fetch_once", "fetch_budget", "project_fetch" }
-- The same for the provider's fields a call reads (see eip.auth): kept in the provider itself,
-- its class's value (a method) or false.
local PROVIDER_READS = { "header", "refused", "fallible", "rejected", "strikes", "doubts", "flying", "held",
  "shared", "unanswered", "unsent", "owners" }

--- Whether runners take the lane (see Runner:run) when they may; false: every call goes the
-- general way (specs compare the two).
M.lane = true

function M.new(cfg)
  for _, k in ipairs(OPTIONAL) do
    if cfg[k] == nil then cfg[k] = false end
  end
  cfg.spare_calls, cfg.nspare_calls = {}, 0 -- see Runner:run
  cfg.closing = false -- see Runner:close
  -- The calls running (see Runner:counted), counted per coroutine, held weakly (Runner:close).
  cfg.running_in = setmetatable({}, { __mode = "k" })
  -- (how a call is protected: errors.yielding where something of the caller's may yield through
  -- it, a transport or a sleep; pcall where nothing can, on Lua 5.1 inside a coroutine too)
  if cfg.protect == nil then cfg.protect = yielding end
  cfg.callbacks = setmetatable({}, { __mode = "k" }) -- callbacks running, per coroutine (Runner:callback)
  local provider = cfg.provider
  if provider then
    for _, k in ipairs(PROVIDER_READS) do
      if rawget(provider, k) == nil then provider[k] = provider[k] or false end
    end
  end
  -- The lane (see Runner:run): "token" for a token that never changes, "signed" for keys that
  -- never change (AK/SK given, not the metadata service's; no counts shared between nginx
  -- workers), with a transport that has a lane (the libcurl one's sends in C; the automatic
  -- one's inside nginx, by cosockets, in Lua and yielding, token only) and keeps nothing of a
  -- request, and nothing that watches, paces or bounds a call. (A lane that yields is not
  -- counted as a call running: a close meanwhile frees the handles at once, and a cosocket
  -- exchange holds none; a retry after it makes the transport's instance again.)
  local transport = cfg.transport
  local kind = M.lane and provider and type(transport) == "table" and type(transport.lane) == "function"
    and cfg.reuse_requests == true and not provider.fallible and not provider.due and not provider.passed
    and not (cfg.log or cfg.on_request or cfg.on_response or cfg.bucket or cfg.deadline or cfg.endpoint_proxy
      or cfg.secrets) and provider.kind
  cfg.lane = kind == "token" and provider.header and not provider.refused and not provider.rejected and "token"
    or kind == "aksk" and provider.signer and not provider.shared and "signed" or false
  cfg.lane_send = false
  return setmetatable(cfg, Runner)
end

---------------------------------------------------------------------------------------------
-- Redaction

local REDACTED = "<redacted>"
-- What replaces a whole text that held a secret in disguise (escaped, encoded, split).
local DISGUISED = "<redacted: the text held a credential>"

local redact = validate.redact -- (see Runner:clean)

local function byte_of(hex) return string.char(tonumber(hex, 16)) end

-- The UTF-8 of a code point below 2^21 (utf8.char is not in Lua 5.1 nor LuaJIT).
local function utf8_of(cp)
  local char, floor = string.char, math.floor
  if cp < 0x80 then return char(cp) end
  if cp < 0x800 then return char(0xC0 + floor(cp / 64), 0x80 + cp % 64) end
  if cp < 0x10000 then return char(0xE0 + floor(cp / 4096), 0x80 + floor(cp / 64) % 64, 0x80 + cp % 64) end
  return char(0xF0 + floor(cp / 262144), 0x80 + floor(cp / 4096) % 64, 0x80 + floor(cp / 64) % 64, 0x80 + cp % 64)
end

-- JSON's \uXXXX, and its surrogate pairs, as UTF-8: how a serializer that escapes all but
-- ASCII (Python's json.dumps) writes a password of other letters.
local function unicode_of(hex) return utf8_of(tonumber(hex, 16)) end
local function pair_of(hi, lo)
  return utf8_of(0x10000 + (tonumber(hi, 16) - 0xD800) * 1024 + tonumber(lo, 16) - 0xDC00)
end

-- An HTML/XML numeric character reference (&#77; &#x4D;) as UTF-8, as an HTML error page may
-- write each character of a text it quotes; one out of Unicode's range is left as it is.
local function entity_of(digits, hex)
  local cp = tonumber(digits, hex and 16 or 10)
  if not cp or cp > 0x10FFFF then return nil end
  return utf8_of(cp)
end
local function decimal_entity(d) return #d <= 7 and entity_of(d, false) or nil end
local function hex_entity(h) return #h <= 6 and entity_of(h, true) or nil end

-- HTML's named references of the characters an escaper writes so (Python's html.escape, PHP's
-- htmlspecialchars: & < > " '), in any case (HTML reads &AMP; too); other names are left.
local NAMED = { amp = "&", lt = "<", gt = ">", quot = '"', apos = "'" }
local function named_entity(name) return NAMED[name:lower()] end

local escape_controls = core.escape_controls

-- JSON's escapes of control characters (\n \r \t \b \f) are removed, as the characters are: a
-- secret split by line breaks and quoted as JSON inside JSON reads "\n" after one decoding.
local JSON_CONTROLS = { n = "", r = "", t = "", b = "", f = "" }
local function unescaped(c) return JSON_CONTROLS[c] or c end

-- s as it reads once its disguises are taken off: control characters removed, C1 ones included
-- (a secret split by a line break), character references decoded (&#77; &#x4D; &amp;), JSON
-- escapes undone (\" \\ \/ \uXXXX; \n and the like removed), C's and Python's \xNN read as bytes,
-- percent-encoding decoded (twice: an encoded "%"). With `latin`, \u0080-\u00FF are single
-- bytes, as a server that read a Latin-1 secret's bytes as characters writes them; else UTF-8.
local function undisguised(s, latin)
  s = escape_controls(s, true)
  if s:find("&", 1, true) then
    s = s:gsub("&#[xX](%x+);", hex_entity):gsub("&#(%d+);", decimal_entity):gsub("&(%a+);", named_entity)
  end
  if latin then s = s:gsub("\\u00(%x%x)", byte_of) end
  s = s:gsub("\\u([dD][89abAB]%x%x)\\u([dD][c-fC-F]%x%x)", pair_of):gsub("\\u(%x%x%x%x)", unicode_of)
    :gsub("\\x(%x%x)", byte_of):gsub("\\(.)", unescaped)
  return (s:gsub("%%(%x%x)", byte_of):gsub("%%(%x%x)", byte_of))
end

-- Does piece of text hold 8 consecutive bytes of v? Every window of v is looked for, or every
-- fourth one when text and v are both long (a piece of 11 bytes or more is then still found).
local function holds_window(text, v)
  local step = #text * #v > 4000000 and 4 or 1
  for i = 1, #v - 7, step do
    if text:find(v:sub(i, i + 7), 1, true) then return true end
  end
  return false
end

-- Escapes undone at most this many times over: JSON quoted inside JSON (a server echoing the
-- request body in its message) escapes twice, and a log of that a third time.
local UNDISGUISE_LEVELS = 4

-- Does s, undisguised once or more, hold a piece of a secret of the list (8 bytes or more of it,
-- anywhere: a disguised copy may also be cut anywhere; or of its other forms, in another case,
-- base64 or hex: the C core's index, core.secret_ranges), or, for a short one, the secret as the
-- whole value?
local function disguised_as(s, secrets, latin)
  local u = s
  for level = 1, UNDISGUISE_LEVELS do
    local before = u
    u = undisguised(u, latin)
    if level > 1 and u == before then break end -- nothing more to undo
    -- (the secrets as they are, in their other forms too: the C index)
    if secret_ranges(u, secrets) then return true end
    for _, secret in pairs(secrets) do
      -- A secret may itself hold what reads as an escape ("\\", "%41"): its undisguised form too.
      local plain = undisguised(secret, latin)
      if plain ~= secret and ((#plain >= 8 and holds_window(u, plain)) or u == plain) then return true end
    end
  end
  return false
end

-- (\u00e9 is "é" in UTF-8 to most servers, the byte E9 to one that read a Latin-1 secret:
-- both are looked for)
local function disguises(s, secrets)
  return disguised_as(s, secrets, false) or (s:find("\\u00[89a-fA-F]%x") ~= nil and disguised_as(s, secrets, true))
end

-- s with every whole copy of a secret of the list (none: false) replaced by a space.
local function without_copies(s, secrets)
  if not secrets then return s end
  for _, v in pairs(secrets) do
    if #v > 0 then
      local parts, from = nil, 1
      while true do
        local i, j = s:find(v, from, true)
        if not i then break end
        parts = parts or {}
        parts[#parts + 1] = s:sub(from, i - 1)
        from = j + 1
      end
      if parts then
        parts[#parts + 1] = s:sub(from)
        s = table.concat(parts, " ")
      end
    end
  end
  return s
end

-- A text cut by a bound ("..." at its end: eip.body's 512 bytes of a message, the debug log's
-- 2 KB of a body) whose last 3 to 7 bytes before the mark are the start of a secret: those bytes
-- redacted (fewer than 8 of a secret are found nowhere else; at a cut they are likely its start).
-- A raw tail of up to CUT_TAIL bytes is looked at: 7 bytes of a secret, escaped (as JSON quoted
-- in JSON escapes a '/' as \\\/).
local CUT_TAIL = 28

-- The same in hex (16 digits or more are found anywhere: src/secrets.c): the last 6 to 15 hex
-- digits before the mark, in either case, that begin the hex of a secret's bytes.
local HEX_CUT_MIN, HEX_CUT_MAX = 6, 15

local function hex_of(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

-- s (cut: n bytes and the mark) with its last hex digits redacted where they begin a secret's hex.
local function cut_hex_start(s, n, secrets)
  local digits = sub(s, max(1, n - HEX_CUT_MAX + 1), n):match("%x*$"):lower()
  if #digits < HEX_CUT_MIN then return s end
  for _, v in pairs(secrets) do
    if #v >= 8 then
      local start = hex_of(sub(v, 1, 8))
      for k = #digits, HEX_CUT_MIN, -1 do
        if sub(digits, -k) == sub(start, 1, k) then return sub(s, 1, n - k) .. REDACTED .. "..." end
      end
    end
  end
  return s
end

local function cut_start(s, secrets)
  if not secrets then return s end
  local n = #s - 3
  for k = math.min(CUT_TAIL, n), 3, -1 do
    local raw = sub(s, n - k + 1, n)
    local u = raw
    if select(2, blank_controls(raw)) then -- (an escape, or a control character: C1 included)
      -- An escape the cut went through (a lone '\', '\u00', '\x4', '%2') ends the tail: left out.
      u = u:gsub("\\u%x?%x?%x?$", ""):gsub("\\x%x?$", ""):gsub("%%%x?$", "")
      local slashes = u:match("\\+$")
      if slashes and #slashes % 2 == 1 then u = sub(u, 1, -2) end
      for _ = 1, UNDISGUISE_LEVELS do
        local before = u
        u = undisguised(u)
        if u == before then break end
      end
    end
    if #u >= 3 and #u <= 7 then
      for _, v in pairs(secrets) do
        if #v >= 8 and u == sub(v, 1, #u) then return sub(s, 1, n - k) .. REDACTED .. "..." end
      end
    end
  end
  return cut_hex_start(s, n, secrets)
end

--- Server-provided text made safe to show: control characters (terminal escapes, CR, LF, and
-- the invisible ones: zero-width spaces, bidi marks and overrides)
-- become spaces, and every secret the provider holds, and the runner's own `secrets` (proxy
-- credentials), becomes `<redacted>` (a proxy or service may echo a header back), and so does
-- every piece of one of 8 bytes or more, wherever it starts (a copy cut short, or with its start
-- cut off: see src/secrets.h), and of its lower- and upper-case, base64 and hex forms. A secret
-- shorter than 8 bytes cannot be told apart from ordinary
-- words inside a text, so it is redacted only where it is the whole value. Text that holds a
-- secret only in disguise (JSON-, C- or percent-escaped, split by control characters) is replaced
-- whole.
function Runner:clean(s)
  if type(s) ~= "string" then return s end
  local secrets, own = self.provider.secrets, self.secrets
  if byte(s, -1) == 46 and sub(s, -3) == "..." then s = cut_start(cut_start(s, secrets), own) end
  -- What servers send (request ids, codes, messages) is left as it is: the C core says so in one
  -- pass (see core.plain_text), where the rules below cost a request id about a microsecond.
  -- A runner with secrets of its own (proxy credentials) goes through the rules.
  if not own and plain_text(s, secrets) then return s end
  local blanked, escapes = blank_controls(s) -- in C: s:find("%c") alone cost a request id 5k instructions
  -- Text with escapes or control characters that holds a secret in any form but whole plain
  -- copies is replaced whole. Looked at before anything is redacted: redacting the plain part
  -- of an escaped copy first would leave the rest beside it ('Pa/ss\"' of 'Pa/ss"word-...').
  if escapes then
    local rest = without_copies(without_copies(s, secrets), own)
    if disguises(rest, secrets) or (own and disguises(rest, own)) then return DISGUISED end
  end
  local text = redact(blanked, secrets)
  if own then text = redact(text, own) end
  return text
end

--- A resource id (validate.secret_id: one that holds a secret of this client's is refused, the
-- value not shown: an SK or token pasted where an id goes would be sent in a URL and shown on
-- every result line).
-- @raise a `usage` @{eip.error} naming `name`
function Runner:id(name, v)
  return validate.secret_id(name, v, self.provider.secrets, self.secrets)
end

---------------------------------------------------------------------------------------------
-- build

-- Unreserved characters kept, everything else %XX: the same encoding the signer uses, so
-- the query that is signed is the query that is sent.
local function encode(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

local function query_string(query)
  if not query or #query == 0 then return "" end
  local parts = {}
  for i, kv in ipairs(query) do parts[i] = encode(kv[1]) .. "=" .. encode(kv[2]) end
  return "?" .. table.concat(parts, "&")
end

-- The request of one attempt of op, before authentication: one table that is what the signer
-- reads (path, query, host, ...) and, once its header lines are set, what the transport takes
-- (the contract of eip.transport; extra fields are ignored there). `req`: the table of an
-- earlier attempt to fill again (see Runner:run), or nil for a new one.
local function build(self, op, attempts, timeout, req)
  -- Absent values are false (not nil) where the contract allows it, so that filling the table
  -- again only overwrites fields (see OPTIONAL); the body stays nil, written only on a change.
  local url, host, signed_path, query = op.url, self.host, false, op.query or false
  local proxy = self.endpoint_proxy
  if url then
    local sent_path
    host, sent_path = url:match("^%a+://([^/]+)([^?]*)")
    -- An endpoint given with a base path (an IAM endpoint behind a path-routing gateway): the
    -- path sent is what is signed, as for the API endpoint's base path below.
    if sent_path ~= op.path and sent_path ~= "" then signed_path = sent_path end
    proxy = self.proxies and self.proxies:decide(url)
  else
    url = query and self.endpoint .. op.path .. query_string(query) or self.endpoint .. op.path
    if self.base_path ~= "" then signed_path = self.base_path .. op.path end -- false: the path is signed
  end
  if op.timeout and op.timeout < timeout then timeout = op.timeout end
  local connect_timeout = self.connect_timeout
  if connect_timeout > timeout then connect_timeout = timeout end
  local payload = op.body
  -- A signed request is never sent again by the transport itself: each send is a signature the
  -- gateway checks (and may refuse, unseen when the connection died); a dead kept-alive
  -- connection is this attempt's failure, counted, and the retry is the pipeline's.
  local no_resend = op.auth ~= false and self.provider.rejected ~= false
  local body_cap = self.max_body
  if op.body_cap and op.body_cap > body_cap then body_cap = op.body_cap end -- a credentials step's
  if not req then -- a table constructor sizes it once
    return { method = op.method, url = url, headers = false, body = payload, timeout = timeout,
      connect_timeout = connect_timeout, low_speed_limit = self.low_speed_limit, low_speed_time = self.low_speed_time,
      body_cap = body_cap, path = op.path, query = query, host = host, signed_path = signed_path,
      project_id = self.project_id, proxy = proxy or false, attempts = attempts, no_auth = op.auth == false,
      secret_answer = op.secret_answer or false, op_name = op.name, no_resend = no_resend }
  end
  req.method, req.url, req.headers, req.timeout = op.method, url, false, timeout
  if req.body ~= payload then req.body = payload end
  req.connect_timeout, req.low_speed_limit = connect_timeout, self.low_speed_limit
  req.low_speed_time, req.body_cap = self.low_speed_time, body_cap
  req.path, req.query, req.host, req.signed_path = op.path, query, host, signed_path
  req.project_id, req.proxy, req.attempts, req.no_auth = self.project_id, proxy or false, attempts, op.auth == false
  req.secret_answer, req.op_name, req.no_resend = op.secret_answer or false, op.name, no_resend
  return req
end

---------------------------------------------------------------------------------------------
-- authenticate, and the header lines the transport takes

-- The "Name: value" lines of headers[i..n], as multiple values: a table constructor around
-- them sizes the list once (filling an empty table grows it three times for three headers,
-- a measurable part of a call's Lua time).
local function header_lines(headers, i, n)
  if i > n then return end
  local h = headers[i]
  return h.line or (h[1] .. ": " .. h[2]), header_lines(headers, i + 1, n)
end

-- What every request of a runner with this content type shares (transports and providers
-- only read it): `headers`, the {content type, Accept} list a provider is given when the op
-- adds no header of its own, and `lines`, the lines of a request whose headers never change
-- (a token's), made on first use.
local function shared(self, content_type)
  local cache = self.shared_headers
  if not cache then
    cache = {}
    self.shared_headers = cache
  end
  local s = cache[content_type]
  if not s then
    s = { headers = { content_type, ACCEPT } }
    cache[content_type] = s
  end
  return s
end

-- Authenticates req (provider: nil for an op sent without credentials) and sets its header
-- lines; `extra`: the op's own headers; `halt`: the call's (see M.halt), for the credentials
-- fetched first. Raises what the provider raises (IAM could not give a token).
local function authenticate(self, req, content_type, provider, extra, halt)
  local headers
  if extra then
    headers = { content_type, ACCEPT }
    for i = 1, #extra do headers[#headers + 1] = extra[i] end
  else
    local cache = self.shared_headers -- (shared's common case inline)
    local s = cache and cache[content_type] or shared(self, content_type)
    if provider and provider.header then
      local lines = s.lines
      if not lines then
        lines = { header_lines({ content_type, ACCEPT, provider.header }, 1, 3) }
        s.lines = lines
      end
      req.headers = lines
      return
    end
    headers = s.headers
  end
  if provider then
    req.headers = provider:lines(req, headers, self, halt)
  else
    req.headers = { header_lines(headers, 1, #headers) }
  end
end

local function clean(self) return function(s) return self:clean(s) end end

---------------------------------------------------------------------------------------------
-- map

-- The response on 2xx; else nil and the eip error, its retryability set by the policy. Logs
-- the response when debugging.
local function map(self, req, resp, op)
  -- The answer of an op that brings a token (IAM's X-Subject-Token) may repeat it (a body, an
  -- echoing gateway's request id): a credential from now on, redacted before anything of it is
  -- shown. One place, replaced by the next such answer (the token itself then has a place of its
  -- own). Another server's header of that name is no credential of this client's.
  local fresh = op.brings_token and resp.subject_token
  if fresh and fresh ~= "" and self.provider.secrets then self.provider.secrets.answered = fresh end
  if op.secret_answer then
    -- An answer that brings credentials the client does not know yet (the metadata service's
    -- session token, its temporary keys) may echo them in a header, which no redaction would
    -- catch before they are read from its body: none of its headers is kept to be shown (the
    -- metadata service sends no request id; its answers are read by status and body alone).
    resp.request_id, resp.content_type, resp.retry_after, resp.location, resp.date = nil, nil, nil, nil, nil
  end
  local request_id = resp.request_id -- the one header every answer's consumers show
  if request_id then resp.request_id = self:clean(request_id) end
  -- The transport's text may quote the server (an unknown transfer encoding): cleaned before
  -- the debug log sees it.
  if resp.curl_code then resp.curl_error = self:clean(resp.curl_error) end
  if self.log then log.response(self.log, resp, clean(self), req.secret_answer) end
  local err
  if resp.curl_code then
    err = errors.transport(req, resp, resp.curl_error)
  else
    local status = resp.status
    if status >= 200 and status < 300 then return resp end
    local decoded = body.decode_error(resp.body) or (op.plain_errors and body.plain_error(resp.body)) or nil
    if decoded then
      decoded.code, decoded.message = self:clean(decoded.code), self:clean(decoded.message)
      decoded.request_id, decoded.raw_message = self:clean(decoded.request_id), self:clean(decoded.raw_message)
      if decoded.encoded_authorization_message or decoded.details then
        decoded.encoded_authorization_message = self:clean(decoded.encoded_authorization_message)
        decoded.details = self:clean(decoded.details)
      end
    end
    resp.retry_after, resp.date = self:clean(resp.retry_after), self:clean(resp.date)
    local code = decoded and decoded.code
    local entry = code and core.error_code(code, status)
    -- (final: the retry policy takes the code for one no retry fixes, whatever the status, where
    -- the status alone would be retried: its advice to retry is then not what happened)
    local final = entry and retry.FINAL_CODE_KINDS[entry.kind] and retry.status_retryable(status)
    err = errors.http(req, resp, core.status(status), decoded, entry, final)
  end
  err.retryable = retry.retryable(err)
  return nil, err
end

---------------------------------------------------------------------------------------------
-- One operation's attempts: request -> (transport) -> response | failure -> decide

local Call = {}
Call.__index = Call

--- The state of one operation being run: attempts made, whether its credentials were
-- refreshed, its deadline (counted from its first request).
function Runner:call(op)
  -- Every field named here, so the table is sized once (false: not yet known). Not a tail
  -- call: see "LuaJIT" in eip.transport.http1.
  local call = setmetatable({ runner = self, op = op, attempts = 0, refreshed = false, started = false,
    deadline = false, epoch = false, req = false, last_error = false, unanswered = false, seq = false,
    shared_seq = false, seq_prefix = false, outstanding = false }, Call)
  return call
end

--- Starts the call's clock: its elapsed time, and its deadline when the client has one.
function Call:start()
  local now = monotime()
  self.started = now
  if self.runner.deadline then self.deadline = now + self.runner.deadline end
  -- An operation's own deadline (monotonic; a wait's reads end with the wait), when sooner.
  local at = self.op.deadline_at
  if at and (self.deadline == false or at < self.deadline) then self.deadline = at end
end

--- Signed requests (AK/SK, the metadata service's keys) a client has in flight at most, fewer by
-- the refused signatures it has counted in a row (see eip.auth): when the key starts being
-- refused (a clock stepped, a key disabled or rotated), every request in flight is refused too,
-- and five in a row lock the key for every user of it. Counted for the client, whatever sends
-- them: a batch, several batches at once, single calls of many requests at once inside nginx.
-- Token requests are not counted.
M.SIGNED_IN_FLIGHT_MAX = 4
local SIGNED_IN_FLIGHT_MAX = M.SIGNED_IN_FLIGHT_MAX
--- How long a call waits before it looks again for room to send a signed request (seconds).
M.SIGNED_WAIT_STEP = 0.01

--- call's place is no longer its coroutine's to free: its request goes out now, or the place is
-- given back (see free_abandoned).
local function disown(provider, call)
  local unsent = provider.unsent
  if unsent and unsent[call] then
    unsent[call] = nil
    provider.owners[call] = nil
  end
end

--- Gives back the place call holds, if any (see admit).
local function release(provider, call)
  local flying = provider.flying
  if flying and flying[call] then
    flying[call] = nil
    disown(provider, call)
    local held = provider.held
    local place = held and held[call]
    if place then
      held[call] = nil
      provider.shared:give(place[1], place[2])
    end
  end
end

local WEAK_VALUES = { __mode = "v" }
local co_running, co_status = coroutine.running, coroutine.status

--- Outside nginx, the places taken by a call whose request has not gone out yet are recorded
-- with the coroutine that runs it (provider.unsent, and provider.owners, held weakly): such a
-- call may yield before its request goes (in on_request, a hook of a scheduler's; while its
-- credentials are renewed), and its coroutine may then be closed (coroutine.close) or dropped.
-- Nothing of its request went out, and nothing will: its place is free. A coroutine merely
-- suspended keeps its place (it may be resumed and send). Not inside nginx, where nginx hands
-- the threads of ended requests to new ones and coroutine.status reads another request's
-- state (see eip.auth's "Where the fetch runs"): there such a place frees itself when its
-- time is up, as a place whose request went out does.
local function free_abandoned(provider, unsent)
  local owners = provider.owners
  for call in pairs(unsent) do
    local co = owners[call]
    if co == nil or co_status(co) == "dead" then release(provider, call) end
  end
end

--- Outside nginx, when places are held by calls whose request has not gone out (see
-- free_abandoned): a full garbage collection, so that the coroutines among them that were dropped
-- (not resumed, not closed) are collected, and their places come back at the next signing_room.
-- A wait for a place allocates nothing: without this the collector never ran for it, and four
-- dropped coroutines held a call for its whole timeout, which then failed not sent. Returns
-- whether it collected (rare: no place free, and places held that way).
function M.collect_dropped(provider)
  local unsent = provider.unsent
  if not unsent or next(unsent) == nil or rawget(_G, "ngx") ~= nil then return false end
  collectgarbage()
  return true
end
local collect_dropped = M.collect_dropped

--- Records the coroutine that took call's place, outside nginx and off the main thread (see
-- free_abandoned).
local function owned(provider, call)
  if rawget(_G, "ngx") ~= nil then return end
  local co, main = co_running()
  if co == nil or main then return end
  local unsent = provider.unsent
  if not unsent then
    unsent = {}
    provider.unsent, provider.owners = unsent, setmetatable({}, WEAK_VALUES)
  end
  unsent[call] = true
  provider.owners[call] = co
end

--- How many more signed requests the provider may have in flight now, fewer by the refusals and
-- the requests without an answer counted in a row (eip.auth): math.huge for a provider
-- that does not sign (or that refuses to: the call's request says so). A request holds its place
-- from its admission until its answer is taken, or at most until its timeout (and a second) has
-- passed: a request whose caller went away (an nginx request ended while it waited) must not
-- hold it for ever. With shared counts (the client option signing_dict: eip.signing), the places
-- and refusals of every worker of the nginx count. Second result: how many are in flight; third:
-- the prefix of the shared counts, if any.
function M.signing_room(provider)
  if not provider.rejected then return math.huge, 0 end
  -- (before the shared counts are read: a place given back there is not counted)
  local unsent = provider.unsent
  if unsent and next(unsent) ~= nil then free_abandoned(provider, unsent) end
  local prefix, shared_n
  if provider.shared then prefix, shared_n = provider:sync() end
  -- (a hold whose time is up: lifted here, as the place of the one request it lets go is taken)
  if provider.refused and provider.lift then provider:lift() end
  if provider.refused then return math.huge, 0 end
  local flying, n = provider.flying, 0
  if flying and next(flying) ~= nil then
    local now = monotime()
    for call, expires in pairs(flying) do
      -- (Not counted as unanswered: its answer may be waiting to be read, behind a batch's
      -- on_result that took longer than the request's timeout. So a caller that went away, an
      -- nginx request ended, leaves no doubt: a limit, said in the README.)
      if expires <= now then release(provider, call) else n = n + 1 end
    end
  end
  if shared_n and shared_n > n then n = shared_n end
  return SIGNED_IN_FLIGHT_MAX - (provider.strikes or 0) - (provider.doubts or 0) - n, n, prefix
end
local signing_room = M.signing_room
M.release = release

--- Takes a place for the next signed request of call (see signing_room), held at most `timeout`
-- seconds and one more: true when taken, or when none is needed (a provider that does not
-- sign, or refuses to); false when none is free. Given back when the call's answer is taken,
-- or when its request is not sent after all.
function M.admit(provider, call, timeout)
  if not provider.rejected then return true end
  release(provider, call)
  local room, _, prefix = signing_room(provider)
  if room == math.huge then return true end
  if room <= 0 then return false end
  local ttl = timeout + 1
  if prefix then
    local key, mine = provider.shared:take(prefix,
      SIGNED_IN_FLIGHT_MAX - (provider.strikes or 0) - (provider.doubts or 0), ttl)
    if key == false then return false end
    if key then -- nil: the dict cannot count; this worker counts on its own
      local held = provider.held
      if not held then
        held = {}
        provider.held = held
      end
      held[call] = { key, mine }
    end
  end
  local flying = provider.flying
  if not flying then
    flying = {}
    provider.flying = flying
  end
  flying[call] = monotime() + ttl
  owned(provider, call)
  -- Numbered in the order taken: a success clears the refusals counted only when its request
  -- was taken after the last of them (see eip.auth's accepted).
  call.seq, call.shared_seq = provider:next_seq(prefix)
  call.seq_prefix = prefix or false
  return true
end
local admit = M.admit

--- The least time a retry is sent with (seconds): a retry whose deadline leaves less is not sent.
-- An attempt with a timeout of a few milliseconds would not get its answer, yet may act: a
-- delete reported failed that was carried out.
M.MIN_ATTEMPT_TIME = 0.05
local MIN_ATTEMPT_TIME = M.MIN_ATTEMPT_TIME

--- Would a retry of this call, started `wait` seconds from now, leave its deadline less than
-- MIN_ATTEMPT_TIME? (A call not yet sent never is: its deadline starts at its first request.)
function Call:past_deadline(wait)
  local deadline = self.deadline
  return deadline ~= false and self.attempts > 0 and deadline - (monotime() + wait) < MIN_ATTEMPT_TIME
end

-- The client's deadline (seconds) for the error of a call whose time ran out, or nil when what
-- ran out was the time of a wait its operation reads for (op.in_wait), which ended first.
local function named_deadline(call)
  local op = call.op
  if op.in_wait and call.deadline == op.deadline_at then return nil end
  return call.runner.deadline
end

-- Attempt number `attempts` left less than MIN_ATTEMPT_TIME of the call's deadline: not sent
-- (a request with a timeout of a few milliseconds could end in a timeout while it is carried
-- out). Its place given back; a retry ends with its last error, a first attempt with
-- `late_error`(op, named_deadline). Returns nil and that error, as Call:request does.
local function too_late(self, attempts, late_error)
  self.attempts = attempts - 1
  release(self.runner.provider, self)
  if attempts > 1 then return nil, self.last_error end
  local late = late_error(self.op, named_deadline(self))
  late.elapsed = monotime() - self.started
  return nil, late
end

-- The error a call ends with when its cancel function stopped it before its next attempt.
local function cancelled(call)
  local err = errors.cancelled(call.op, call.attempts, call.last_error or nil, call.unanswered and true)
  local now = monotime()
  err.elapsed = now - (call.started or now)
  return err
end

--- How long after its timeout an attempt handed to the transport may still be waited for by a
-- caller (seconds): past that, one that has had no on_response is taken for abandoned (see
-- Runner:abandoned), as a signing place is freed (see M.admit).
M.ABANDONED_MARGIN = 1

local watch -- (see below)

--- Counts call's attempt, about to be handed to the transport with `timeout`, as outstanding
-- until its on_response (Call:observed): a fresh entry (the call's state is used again by later
-- calls) with what on_response needs, the time past which it is taken for abandoned, and,
-- outside nginx off the main thread, its coroutine (held weakly; inside nginx the coroutines
-- of ended requests serve new ones: see request_of). Inside nginx the worker's timer watches
-- the runner (see watch).
local function outstanding(runner, call, timeout)
  local op = call.op
  local now = monotime()
  local entry = { due = now + timeout + M.ABANDONED_MARGIN, operation = op.name, method = op.method,
    path = op.path, bandwidth_id = op.resource, attempt = call.attempts }
  local entries = runner.outstanding
  if not entries then
    entries = {}
    runner.outstanding, runner.outstanding_owners = entries, setmetatable({}, WEAK_VALUES)
  end
  entries[entry] = true
  local due = runner.outstanding_due
  if not due or entry.due < due then runner.outstanding_due = entry.due end
  local ngx = rawget(_G, "ngx")
  if ngx == nil then
    local co, main = co_running()
    if co and not main then runner.outstanding_owners[entry] = co end
  else
    watch(ngx, runner, entry.due, now)
  end
  call.outstanding = entry
end

--- Call's attempt, counted as outstanding, no longer is, without an on_response: the transport
-- raised (a caller's bug), or never had it (a batch's driver could not start it).
function M.forget(runner, call)
  local entry = call.outstanding
  if entry then
    call.outstanding = false
    runner.outstanding[entry], runner.outstanding_owners[entry] = nil, nil
  end
end

--- Call's outstanding attempt belongs to `holder` (a batch: eip.batch's Run), held weakly: while
-- the holder lives and is not `waiting` for its transfers, it may take its answers later than
-- their time (an on_result, a login, a hook of its own that yields), and they are not taken for
-- abandoned. Outside nginx off the main thread, the coroutine's liveness says it already.
function M.hold(runner, call, holder)
  local entry = call.outstanding
  if entry and runner.outstanding_owners[entry] == nil then runner.outstanding_owners[entry] = holder end
end

-- What the C core raised while a request was made (its signer out of memory: "eip.core: ..."):
-- an eip error of the transport, nothing sent. Anything else is raised again, as it came (a
-- bug keeps its traceback).
local function core_refusal(op, err)
  if not (type(err) == "string" and err:find("eip.core: ", 1, true)) then error(err, 0) end
  return errors.unmade(err, { method = op.method, path = op.path, bandwidth_id = op.resource })
end

--- Builds and authenticates the next attempt. Returns the transport's request, or nil and the
-- eip error of the credentials step (IAM refused or unreachable: give it to `failure` with
-- `from_credentials`). Raises what is not an eip error (a bug keeps its traceback). `halt` (see
-- M.halt): what may stop the credentials step (a login, a wait for another call's); stopped
-- there, or asked again once the credentials came and stopping then, the call sends nothing
-- of this attempt and the error is errors.cancelled's (`cancelled = true`).
function Call:request(halt)
  local runner, op = self.runner, self.op
  if self.deadline and self:past_deadline(0) then
    -- A retry whose deadline passed while it waited (a batch's rate, pause or free slot): not
    -- sent, the call ends with the last attempt's error, as when a backoff would pass it.
    release(runner.provider, self)
    return nil, self.last_error
  end
  local attempts = self.attempts + 1
  self.attempts = attempts
  -- (Call:start, inline; Runner:run starts it before a rate wait)
  if attempts == 1 and not self.started then
    local now = monotime()
    self.started = now
    if runner.deadline then self.deadline = now + runner.deadline end
    local at = op.deadline_at
    if at and (self.deadline == false or at < self.deadline) then self.deadline = at end
  end
  local timeout, deadline = runner.timeout, self.deadline
  if deadline then
    local left = deadline - monotime()
    -- (a first attempt whose time went before it: a project's lookup, an operation's own
    -- deadline that others used, a wait's reads; a retry's is checked above)
    if left < MIN_ATTEMPT_TIME and attempts == 1 then return too_late(self, 1, errors.deadline_before_request) end
    timeout = max(0.001, min(timeout, left))
  end
  local req = build(runner, op, attempts, timeout, runner.reuse_requests and self.req or nil)
  local content_type = op.content_type or CONTENT_TYPE
  if req.no_auth then
    authenticate(runner, req, content_type, nil, op.headers)
  else
    local provider = runner.provider
    if provider.refused then -- too many 401s in a row: sending again could lock the key
      local err = provider:refusal()
      if err then
        release(provider, self)
        self.attempts = attempts - 1 -- nothing sent: attempts counts what was
        -- A retry ends with its last error (its earlier attempt went out: not "not sent"), as
        -- when a token cannot be had below; a call that sent nothing, with a copy of the last
        -- 401 (or of another worker's: signing_dict), as this call's.
        if attempts > 1 then return nil, self.last_error end
        err.method, err.path, err.bandwidth_id = op.method, op.path, op.resource
        return nil, err
      end
    end
    if provider.fallible then -- it may have to ask IAM for a token first
      local ok, err = errors.held(authenticate, runner, req, content_type, provider, op.headers, halt)
      if not ok then
        if not errors.is_error(err) then err = core_refusal(op, err) end
        -- Nothing was sent for this attempt: attempts counts what was. A call that sent
        -- nothing at all ends not sent, with the credentials' error (a copy: a failure IAM
        -- gave is held and given to other calls too); a retry ends with its last error. One
        -- its halt stopped (kind "interrupted": the caller's doing) ends as cancelled.
        self.attempts = attempts - 1
        release(provider, self)
        if halt and err.kind == "interrupted" then return nil, cancelled(self) end
        if attempts > 1 then return nil, self.last_error end
        return nil, errors.unsent_copy(err, op.resource)
      end
      -- Credentials fetched or waited for meanwhile (a login of seconds): asked again before
      -- this request goes out, so that a stop heard while they came sends nothing after it.
      if halt and halt.asked then
        local stop = halt.stop()
        halt.asked = false
        if stop then
          self.attempts = attempts - 1
          release(provider, self)
          return nil, cancelled(self)
        end
      end
      -- The credentials' time counts in the call's deadline: the attempt gets what is left.
      if deadline then
        local left = deadline - monotime()
        if left < MIN_ATTEMPT_TIME then return too_late(self, attempts, errors.deadline_after_credentials) end
        if left < req.timeout then
          req.timeout = left
          if req.connect_timeout > left then req.connect_timeout = left end
        end
      end
    else
      -- (authenticate's common case inline: a token's lines, made once per content type)
      local extra = op.headers
      local cache = not extra and provider.header and runner.shared_headers
      local s = cache and cache[content_type]
      local lines = s and s.lines
      if lines then
        req.headers = lines
      elseif provider.signer then -- (keys: the C signer may run out of memory)
        local ok, err = pcall(authenticate, runner, req, content_type, provider, extra)
        if not ok then
          err = core_refusal(op, err)
          self.attempts = attempts - 1 -- nothing sent
          release(provider, self)
          if attempts > 1 then return nil, self.last_error end
          return nil, err
        end
      else
        authenticate(runner, req, content_type, provider, extra)
      end
    end
    self.epoch = provider.epoch
    local flying = provider.flying
    if flying and provider.fallible and flying[self] then
      -- The place is held from now on for as long as this attempt may take: fetching
      -- credentials may have taken part of the time it was taken for.
      local ttl = req.timeout + 1
      flying[self] = monotime() + ttl
      local place = provider.held and provider.held[self]
      if place and not provider.shared:keep(place[1], place[2], ttl) then
        -- Its time ran out while the credentials were fetched (a slow metadata service), and
        -- another call may hold it now: the request is not sent (it would be a fifth in flight).
        release(provider, self)
        self.attempts = attempts - 1
        if attempts > 1 then return nil, self.last_error end
        return nil, errors.no_signing_place(op, "its place ran out while its credentials were renewed")
      end
    end
  end
  self.req = req
  if runner.log then
    log.request(runner.log, req, clean(runner))
    if req.proxy and not runner.warned_clear and log.clear_through_proxy(runner.log, req) then
      runner.warned_clear = true -- once per client
    end
  end
  if runner.on_request then self:announced() end
  if runner.on_response then
    -- Attempts of earlier calls that went out and whose callers are gone, reported first; then
    -- this one counted as outstanding until its on_response (see Runner:abandoned).
    local due = runner.outstanding_due
    if due and monotime() >= due then runner:abandoned() end
    outstanding(runner, self, req.timeout)
  end
  -- (nothing yields from here until the transport has it: see free_abandoned)
  local provider = runner.provider
  if provider and provider.unsent then disown(provider, self) end
  return req
end

-- What an attempt the transport sent twice (resp.resent) reads as: a first send reset unanswered.
local RESENT = { kind = "transport", reason = "reset" }

-- The gateway's code of a signature it refused, under both prefixes: a refusal at any status
-- (see Call:response).
local REFUSED_SIGNATURE = retry.REFUSED_SIGNATURE

--- Maps the transport's response to the outcome of this attempt: "done" and the result, or
-- what `failure` says (`halt`: as for failure).
-- A response that breaks the transport contract (a transport of the caller's: nil, no status, a
-- status that is no HTTP one) as the transport failure it is: nothing can be read from it, and
-- the request may have gone out (unknown: could have acted).
-- HTTP_STATUS[v]: the integer v is when it is a whole number in 100..599 (an integer, or a float
-- of one: Lua reads t[204.0] as t[204]); false or nil for anything else (a string, NaN, 204.5,
-- nil). One index, where type(), the bounds and math.floor were three C calls of every answer.
local HTTP_STATUS = {}
for i = 1, 599 do HTTP_STATUS[i] = i >= 100 and i end

local function well_formed(resp)
  if type(resp) ~= "table" then return false end
  local code = resp.curl_code
  -- (a whole number in int range: "%d" and the error tables read it)
  if code ~= nil then
    return type(code) == "number" and code == math.floor(code) and code > -2 ^ 31 and code < 2 ^ 31
  end
  if not HTTP_STATUS[resp.status] then return false end
  local b, id = resp.body, resp.request_id
  return (b == nil or b == "" or type(b) == "string") and (id == nil or type(id) == "string")
end

-- A transport failure of kind "other" (libcurl's 2: not retried): `what` breaks the contract,
-- `detail` says how.
local function contract_broken(what, detail)
  return { status = 0, curl_code = 2, error_kind = "other", curl_error = what .. " the transport contract (see "
    .. "eip.transport): " .. detail }
end

local function broken(resp)
  return contract_broken("the transport's response breaks", type(resp) == "table" and "status "
    .. type(resp.status) .. (type(resp.status) == "number" and (" " .. tostring(resp.status)) or "")
    or "a " .. type(resp))
end

-- The bytes of what a transport's send raised that its failure keeps, as eip.body keeps of a
-- server's message: more is cut, "..." at the end (Runner:clean redacts a secret cut there).
local RAISED_MAX = 512

-- The fields of the contract's response (eip.transport), each with its type; and the C
-- multi's `caller_away` (a batch reads it of any driver's answer).
local RESPONSE_FIELDS = { status = "number", request_id = "string", retry_after = "string",
  content_type = "string", location = "string", date = "string", subject_token = "string", body = "string",
  truncated = "boolean", elapsed = "number", new_connections = "number", resent = "boolean",
  interrupted = "boolean", held_back = "boolean", unsent = "boolean", curl_code = "number",
  curl_error = "string", error_kind = "string", proxy_status = "number", caller_away = "boolean" }

-- A plain copy of resp's contract fields, or a string saying which field breaks the contract.
local function copy_fields(resp)
  local copy = {}
  for name, kind in pairs(RESPONSE_FIELDS) do
    local v = resp[name]
    if v ~= nil and type(v) ~= kind then
      return string.format("field %s is a %s, not a %s", name, type(v), kind)
    end
    copy[name] = v
  end
  return copy
end

--- The response of a transport of the caller's (the option `transport`), as the built-in ones
-- make theirs: a plain table of the contract's fields, each of the type the contract gives it
-- (others dropped). Reading it may raise (a table whose __index does) and its fields may be of
-- any type (a curl_error whose __tostring raises): such a response breaks the contract, and is
-- the failure that says so (kind "other", not retried, may have acted), never a raw error of
-- the caller's reaching the caller. Anything but a table is left for Call:response to say so.
-- @param resp what the transport's send returned
-- @treturn table|any the copy, the failure, or resp when no table
function M.plain(resp)
  if type(resp) ~= "table" then return resp end
  local ok, copy = pcall(copy_fields, resp)
  if ok and type(copy) == "table" then return copy end
  local why = ok and copy or "reading it raised " .. errors.text(copy)
  if #why > RAISED_MAX then why = body.cut(why, RAISED_MAX) .. "..." end
  return contract_broken("the transport's response breaks", why)
end

--- What a pcall of a transport's send gave, as the response read: what it raised (M.raised),
-- or, from a transport of the caller's (`callers`), its plain copy (M.plain).
-- @tparam boolean ok pcall's first value
-- @param resp pcall's second value
-- @tparam boolean callers the runner's callers_transport
function M.answer_of(ok, resp, callers)
  if not ok then return M.raised(resp) end
  if callers then return M.plain(resp) end
  return resp
end

--- The response that stands for what a transport's send raised (a transport of the caller's,
-- which the contract says never raises: a bug, a module that failed to load): a failure of kind
-- "other", not retried, whose request may have gone out (eip.could_have_acted says yes), its
-- text what was raised (any value, nil too), cut to RAISED_MAX bytes (between UTF-8 characters) and redacted as every
-- transport's text is where the response is read (see map). The caller gets that request's
-- eip error, never the raw value; a batch reports it on that id's entry and goes on.
-- @param value what send raised
-- @treturn table a failure response (see eip.transport)
function M.raised(value)
  local text = errors.text(value)
  if #text > RAISED_MAX then text = body.cut(text, RAISED_MAX) .. "..." end -- (UTF-8 stays UTF-8)
  return contract_broken("the transport's send raised an error, which breaks", text)
end

-- (what on_response is told of an answer whose reading raised something that is no eip error)
local UNREPORTED = { kind = "http" }

function Call:response(resp, halt)
  local runner = self.runner
  -- (well_formed's common case inline: an answer without curl_code, its body empty)
  if not (type(resp) == "table" and resp.curl_code == nil and HTTP_STATUS[resp.status] and resp.body == ""
      and (resp.request_id == nil or type(resp.request_id) == "string")) and not well_formed(resp) then
    resp = broken(resp)
  end
  -- Held back, or aborted, by a caught interrupt (eip.core.catch_interrupts: the first Ctrl-C
  -- says stop, the one that aborts may come first) while its connection was still being made:
  -- nothing of it went out (the C core's on_prereq; unsent). No attempt, and it cannot have
  -- been carried out: the call ends as one its cancel stopped before the next attempt.
  if (resp.held_back or resp.interrupted) and resp.unsent then
    self:take_back(resp.elapsed, "fail")
    return "fail", cancelled(self)
  end
  -- The transport sent the request again after a kept-alive connection died unanswered: the
  -- first send may have been carried out, as an attempt without an answer may (a delete's 404
  -- then reads as lost_answer).
  if resp.resent and not self.unanswered then self.unanswered = RESENT end
  local op = self.op
  local answer, err
  -- (a caller's transport's 204.0 is the integer 204: Lua 5.3+ would write "204.0" in messages)
  local status = HTTP_STATUS[resp.status]
  if status then resp.status = status else status = resp.status end
  if resp.curl_code == nil and status >= 200 and status < 300 and not op.brings_token and not op.secret_answer
      and not runner.log then
    -- (map's common case inline: a 2xx, nothing to log, no token in it)
    local request_id = resp.request_id
    if request_id then resp.request_id = runner:clean(request_id) end
    answer = resp
  else
    answer, err = map(runner, self.req, resp, op)
  end
  -- A second caught Ctrl-C aborted it in flight (the eip command: see resp.interrupted), as a
  -- batch aborts its requests: never retried, and it may have been carried out.
  if err and resp.interrupted then err = errors.interrupted(op, self.attempts) end
  -- (op.usable_status: a status whose answers op.unusable always takes, not asked then)
  if answer and op.unusable and answer.status ~= op.usable_status then
    local why = op:unusable(answer)
    if why then answer, err = nil, errors.protocol(answer, op.method, op.path, why) end
  end
  local provider = runner.provider
  if provider.rejected and not self.req.no_auth and not resp.curl_code then
    -- Signatures the gateway refused in a row (see eip.auth): counted, reset by an answer that
    -- passed the check (a success, or the service's own error: not a load balancer's 503 page)
    -- to a request taken after the last refusal (its number, seq). Each for the key that signed
    -- this request (its epoch): not for keys that replaced it since. A 401 of the service's own
    -- (VPC.0009: real-name authentication) passed the check. The gateway's code of a refused
    -- signature, APIGW.0301 (APIG.0301 on newer gateways), is one at any status (a 403 of a
    -- gateway in front of it). Counted before the place is given back: another request must not
    -- take it while the count still says fewer refusals.
    local checked = err ~= nil and errors.credentials_checked(err)
    if (resp.status == 401 or err ~= nil and REFUSED_SIGNATURE[err.code]) and not checked then
      provider:rejected(err, self.epoch)
    elseif (provider.strikes or provider.doubts) and (answer or checked) then
      provider:accepted(self.epoch, self.seq, self.shared_seq, self.seq_prefix)
    elseif resp.status >= 500 and not checked and provider.unanswered then
      -- A 5xx page without the service's code (a load balancer's 502 when the gateway's answer
      -- broke off): it may relay a lost 401 (eip.auth's "Answers lost").
      provider:unanswered(self.epoch)
    end
  elseif provider.unanswered and not self.req.no_auth and not resp.unsent
      and (not resp.proxy_status or resp.resent) then
    -- No answer to read after the request went out (a timeout, a reset, garbage after any status
    -- line, an abort, a 401 whose body broke off): the gateway may have refused it unseen
    -- (eip.auth's "Answers lost"). Counted before the place is given back, as a refusal is.
    -- One aborted (resp.interrupted: a Ctrl-C, a halt) was the caller's doing, as a batch's abort.
    provider:unanswered(self.epoch, resp.interrupted == true)
  end
  if provider.flying then release(provider, self) end
  -- (an IAM token that got an answer other than a 401 passed: see eip.auth's Iam:refresh)
  if provider.passed and resp.status ~= 401 and not resp.curl_code and not self.req.no_auth then
    provider:passed(self.epoch)
  end
  if answer then
    if runner.on_response then
      -- An answer the operation cannot use after all (a 2xx without what it needs; a listing
      -- page over max_body, asked again in smaller pages) is reported too: it went out.
      local ok, value = pcall(op.result, op, answer, self.attempts, monotime() - self.started)
      if not ok then
        self:observed(resp, errors.is_error(value) and value or UNREPORTED, "fail")
        error(value, 0)
      end
      self:observed(resp, nil, "done")
      return "done", value
    end
    return "done", op:result(answer, self.attempts, monotime() - self.started)
  end
  -- (on_response comes before a credentials refresh's own requests: failure gives it then)
  local action, value, reported = self:failure(err, false, resp, halt)
  if runner.on_response and not reported then self:observed(resp, err, action) end
  return action, value
end

---------------------------------------------------------------------------------------------
-- Hooks: on_request(info) before each attempt, on_response(info) after it (client options).
-- The info names the attempt, never a credential: operation, method, path, bandwidth_id,
-- attempt; after it also status, code, outcome ("ok", "http", the transport kind, "proxy", or
-- "interrupted"),
-- elapsed, bytes, request_id, retry (whether another attempt is planned) and resent (sent twice:
-- a kept-alive connection died unanswered); abandoned (its caller went away with it: reported
-- late, see Runner:abandoned). A hook that raises
-- does not break the call: its error goes to the debug log.

-- Lua 5.1's main coroutine, which coroutine.running() gives as nil.
local MAIN = {}

local function notify(runner, hook, info)
  local ok, why = runner:callback(hook, info)
  if not ok and runner.log then
    -- What a hook raised may itself fail to show (a __tostring that raises): still not the call's failure.
    runner.log("eip: a hook raised an error: " .. runner:clean(errors.text(why)))
  end
end

-- Inside nginx, the request a coroutine runs for (its ngx.ctx; false elsewhere): nginx reuses
-- the coroutines of ended requests, and one killed inside a callback (a client abort, ngx.exit
-- from another thread) never counted its way out of it, so a count is the request's, not only
-- the coroutine's.
-- (A function of its own, not a closure made per call: a hook runs on every attempt, and
-- LuaJIT cannot compile the making of a closure.)
local function ctx_of(ngx) return ngx.ctx end
local function request_of()
  local ngx = rawget(_G, "ngx")
  if not ngx then return false end
  local ok, ctx = pcall(ctx_of, ngx)
  return ok and ctx or false
end

--- Calls fn(...) protected, as code of the caller's running inside the library (a hook, a
-- batch's on_result): a signed call it makes while the client's places are all taken fails at
-- once rather than wait, since what holds them cannot go on until fn returns. Counted per
-- coroutine, and inside nginx per request (request_of): the other requests' calls wait as
-- usual. Returns pcall's first two.
function Runner:callback(fn, ...)
  local co = coroutine.running() or MAIN
  local depth, request = self.callbacks, request_of()
  local entry = depth[co]
  if not entry or entry.request ~= request then
    entry = { n = 0, request = request }
    depth[co] = entry
  end
  entry.n = entry.n + 1
  local ok, value = pcall(fn, ...)
  entry.n = entry.n - 1
  if entry.n <= 0 and depth[co] == entry then depth[co] = nil end
  -- (the interpreter's Ctrl-C, raised in whatever Lua code ran, here the caller's: raised on, so
  -- that the call ends and nothing more is sent, as the sleep's does: see eip.client)
  if not ok and errors.interpreter_interrupt(value) then error(value, 0) end
  return ok, value
end

--- Is code of the caller's running inside the library on this coroutine, for this request (see
-- Runner:callback)?
function Runner:reentered()
  local entry = self.callbacks[coroutine.running() or MAIN]
  return entry ~= nil and entry.n > 0 and entry.request == request_of()
end

--- Would waiting for a signing place here stop the worker? Inside nginx, in a phase without
-- cosockets, a wait is the system's sleep: the worker serves nothing meanwhile, and its own
-- requests that hold places (if any) cannot go on to give them back; places other workers hold
-- (signing_dict) may stay taken for as long as their batches run. `blocking`:
-- eip.transport.blocking, set by eip.client.
function Runner:stuck()
  local blocking = self.blocking
  return blocking ~= nil and blocking() == true
end

--- Would waiting for a signing place here stop what holds one? Where nothing can yield
-- (Runner:stuck), but not in nginx's master (init_by_lua) nor in a worker's init_worker_by_lua
-- outside a timer: the process serves no request of its own there, so the places are held by
-- other processes (signing_dict), which go on and give them back while it waits (the system's
-- sleep, within the call's timeout, as outside nginx). A reload's start-up check in init_by_lua,
-- made while the workers had four signed requests in flight, failed at once, and nginx kept its
-- old configuration. `starting`: eip.transport.starting, set by eip.client.
function Runner:wait_stops()
  if not self:stuck() then return false end
  local starting = self.starting
  return not (starting and starting())
end

local STUCK = "it was called where nginx cannot yield (log_by_lua, a filter, set_by_lua...): a wait would stop "
  .. "the worker (and this worker's requests that hold places),"
M.STUCK = STUCK

function Call:announced()
  local op = self.op
  notify(self.runner, self.runner.on_request, { operation = op.name, method = op.method, path = op.path,
    bandwidth_id = op.resource, attempt = self.attempts })
end

function Call:observed(resp, err, action)
  local entry = self.outstanding
  if entry then
    self.outstanding = false
    local runner = self.runner
    -- Already reported as abandoned (its caller outlived the time it was given: see
    -- Runner:abandoned): each attempt gets one on_response.
    if not runner.outstanding[entry] then return end
    runner.outstanding[entry], runner.outstanding_owners[entry] = nil, nil
  end
  local op = self.op
  local outcome = "ok"
  if err then
    outcome = (err.kind == "transport" and err.reason) or (err.kind == "proxy" and "proxy")
      or (err.kind == "interrupted" and "interrupted") or "http"
  end
  -- (a request a batch dropped before any of it was sent: its on_request had come)
  if resp.dropped_unsent then outcome = "not_sent" end
  notify(self.runner, self.runner.on_response, { operation = op.name, method = op.method, path = op.path,
    bandwidth_id = op.resource, attempt = self.attempts, status = resp.status ~= 0 and resp.status or nil,
    code = err and err.code, outcome = outcome, elapsed = resp.elapsed, bytes = #(resp.body or ""),
    request_id = resp.request_id, retry = action == "retry", resent = resp.resent or nil,
    not_sent = resp.dropped_unsent or nil })
end

--- Ends the debug log's lines of the call's attempt that got no answer to show (held back, or
-- aborted): its request was logged as it was handed to the transport, and `what` says what
-- became of it. Nothing when not logging.
function Call:log_end(what)
  local log_fn, req = self.runner.log, self.req
  if log_fn and req then log_fn(string.format("eip: < %s %s %s", req.method, self.runner:clean(req.url), what)) end
end

--- Takes back the call's attempt of which nothing went out (held back, aborted or dropped
-- before any of it was sent, `elapsed` seconds after it began): on_response hears "not_sent"
-- (its on_request had come), it is no attempt, and its signing place is given back. `action`:
-- what the call does next ("fail", or "retry" for one started again), for on_response's retry.
function Call:take_back(elapsed, action)
  local runner = self.runner
  self:log_end(action == "retry" and "not sent: nothing of it went out, started again"
    or "not sent: held back, nothing of it went out")
  if runner.on_response then self:observed({ status = 0, elapsed = elapsed, dropped_unsent = true }, nil, action) end
  self.attempts = self.attempts - 1
  release(runner.provider, self)
end

-- Is the owner of an outstanding attempt (see outstanding, M.hold) known to be alive: a
-- coroutine not dead, or a batch that lives and is not waiting for its transfers (which, taken
-- in time, would have been observed)? nil: none, or collected.
local function alive(owner)
  if owner == nil then return false end
  if type(owner) == "thread" then return co_status(owner) ~= "dead" end
  return not owner.waiting
end

--- Reports the outstanding attempts (see outstanding) that are abandoned: handed to the
-- transport, their on_response never given, past their time (their timeout and
-- ABANDONED_MARGIN) and with no owner known to be alive. Their caller went away with them:
-- inside nginx, a request that ended (its client hung up with lua_check_client_abort on, an
-- ngx.exit from another light thread) ended its coroutine wherever it was; outside nginx, a
-- coroutine closed or collected in flight (a scheduler that gave up on it). The request may have
-- been carried out: on_response hears of it as "interrupted", with `abandoned = true`, no
-- status and no elapsed (not known), in this coroutine. Called as an attempt of any of the
-- runner's calls starts (Call:request), when one may be due. An attempt whose caller was only
-- late (a transport past its timeout) is not reported again once it is observed.
function Runner:abandoned()
  local entries, owners = self.outstanding, self.outstanding_owners
  local now = monotime()
  local found, due = nil, false
  for entry in pairs(entries) do
    local at = entry.due
    if at <= now then
      if not alive(owners[entry]) then
        found = found or {}
        found[#found + 1] = entry
      else
        at = now + M.ABANDONED_MARGIN -- (looked at again then, not at every call meanwhile)
      end
    end
    if at > now and (not due or at < due) then due = at end
  end
  self.outstanding_due = due
  if not found then return end
  -- (out of the lists first: a hook may call the client, which looks here again)
  for _, entry in ipairs(found) do entries[entry], owners[entry] = nil, nil end
  for _, entry in ipairs(found) do
    notify(self, self.on_response, { operation = entry.operation, method = entry.method, path = entry.path,
      bandwidth_id = entry.bandwidth_id, attempt = entry.attempt, outcome = "interrupted", bytes = 0,
      retry = false, abandoned = true })
  end
end

-- Inside nginx, one timer of the worker's at a time reports the abandoned attempts of every
-- runner that has outstanding ones once their time is up (Runner:abandoned), so that they do not
-- wait for the client's next call (which may never come: a client used once an hour). `watched`:
-- those runners (held weakly: a client dropped takes its entries with it); `watch_at`: when the
-- armed timer fires (false: none armed); `watch_generation`: the armed timer's number (one that
-- an earlier arming replaced reports, but arms no other). A timer that nginx refuses (all of
-- lua_max_pending_timers taken) or never runs (all of lua_max_running_timers busy) is tried
-- again no sooner than a second, or its time, later; meanwhile the next call reports them.
local watched = setmetatable({}, { __mode = "k" })
local watch_at, watch_generation = false, 0

local arm

-- The timer: Runner:abandoned for each watched runner with an entry due (a snapshot of them:
-- hooks may yield, and other calls watch more runners meanwhile), then armed again for the
-- earliest entry left, unless nginx is exiting (premature: entries not due are lost with the
-- worker, as a killed worker's are).
local function watching(premature, generation)
  local current = generation == watch_generation
  if current then watch_at = false end
  local runners = {}
  for runner in pairs(watched) do runners[#runners + 1] = runner end
  local next_at = false
  for _, runner in ipairs(runners) do
    local due = runner.outstanding_due
    if due and monotime() >= due then runner:abandoned() end
    due = runner.outstanding_due
    if not due then
      watched[runner] = nil
    elseif not next_at or due < next_at then
      next_at = due
    end
  end
  if next_at and current and not premature and not watch_at then arm(rawget(_G, "ngx"), next_at, monotime()) end
end

-- Arms the timer for `at` (monotonic seconds; `now`: the time now).
arm = function(ngx, at, now)
  watch_generation = watch_generation + 1
  local ok, made = pcall(ngx.timer.at, max(0, at - now), watching, watch_generation)
  watch_at = (ok and made) and at or now + 1
end

-- runner has an attempt outstanding until `due` (inside nginx): watched, the timer armed for it
-- unless one fires first.
watch = function(ngx, runner, due, now)
  watched[runner] = true
  if not watch_at or due < watch_at or now > watch_at then arm(ngx, due, now) end
end

-- A uniform wait in [a, b]: from OpenSSL's generator (core.random), which differs between
-- processes; math.random starts from the same state in every process but on Lua 5.4 (every
-- nginx worker, every restart alike: clients that failed together would retry together).
local core_random = core.random
local function jitter(a, b)
  return a + (b - a) * (core_random() or math.random())
end

-- The final outcome of a failure: an acceptable one (op.recover) is "done".
local function final(self, err)
  local recover = self.op.recover
  local value = recover and recover(self.op, err)
  if value ~= nil then return "done", value end
  return "fail", err
end

--- Ends a call whose deadline passed before its retry could start: its final outcome from the
-- last attempt's error ("done", value | "fail", err).
function Call:expire()
  local err = self.last_error
  local now = monotime()
  err.attempts, err.elapsed = self.attempts, now - (self.started or now)
  return final(self, err)
end

--- After a failed attempt (err, an eip error): "retry" and the seconds to wait first (0: at
-- once), or the final outcome ("done", value | "fail", err). `from_credentials`: the failure
-- came from the credentials step, which had its own attempts: final. `resp`: the attempt's
-- answer, whose on_response is given here before a credentials refresh sends anything (third
-- result: true then). `halt`: what may stop that refresh (see M.halt).
function Call:failure(err, from_credentials, resp, halt)
  local runner = self.runner
  self.last_error = err
  -- An earlier attempt may have acted (also when this one was not even sent: a refused key).
  if self.unanswered and self.unanswered ~= err then err.earlier_unanswered = true end
  if not from_credentials then
    -- An earlier attempt that may have been carried out without its answer arriving: the op
    -- may read this attempt's failure in that light (a delete's 404: most likely done).
    local earlier = self.unanswered
    if earlier and self.op.after_unanswered then self.op:after_unanswered(err, earlier) end
    if not earlier and errors.may_have_acted(err) then self.unanswered = err end
  end
  local now = monotime()
  err.attempts, err.elapsed = self.attempts, now - (self.started or now)
  if from_credentials then return final(self, err) end
  if self.op.once_unanswered and errors.may_have_acted(err) then return final(self, err) end
  local provider = runner.provider
  local policy = runner.policy
  -- Throttling, or a service unavailable (a retryable 5xx), that asks not to come back within
  -- retry_after_cap: said on the error, for whoever sends the next request (a batch stops, a
  -- wait ends, the eip command's drains stop).
  if retry.throttled_beyond(err, policy.retry_after_cap, os.time()) then
    err.throttled_beyond = true
  elseif retry.unavailable_beyond(err, policy.retry_after_cap, os.time()) then
    err.unavailable_beyond = true
  end
  if self.op.max_attempts and self.op.max_attempts < policy.max_attempts then
    policy = setmetatable({ max_attempts = self.op.max_attempts }, { __index = policy })
  end
  local action, delay = retry.decide(err, {
    attempts = self.attempts, refreshed = self.refreshed,
    can_refresh = provider.refresh ~= nil and self.op.auth ~= false,
    credentials_changed = self.epoch ~= false and self.epoch ~= provider.epoch,
    left = self.deadline and self.deadline - monotime() - MIN_ATTEMPT_TIME or nil,
  }, policy, os.time(), jitter)
  if action == "refresh" or action == "again" then
    self.refreshed = true
    if action == "refresh" then
      -- This attempt's on_response first, then the refresh's requests with their own: hooks see
      -- each request end before the next starts (a retry planned; one not sent if it fails).
      local reported = resp ~= nil and runner.on_response ~= nil
        and not (provider.will_refresh and not provider:will_refresh())
      if reported then self:observed(resp, err, "retry") end
      local ok, why = errors.held(provider.refresh, provider, runner, halt)
      if not ok then
        if not errors.is_error(why) then error(why, 0) end
        -- The call ends with its own error (the 401, its attempts, an earlier attempt that may
        -- have acted), the refresh's failure as its cause: ending with IAM's or the metadata
        -- service's error instead lost what this call had sent (a delete whose first answer
        -- was lost read as certainly not done).
        err.cause = why
        local action_, value = final(self, err)
        return action_, value, reported
      end
      -- The same credentials came back: a resend would be refused again.
      if why == false then
        local action_, value = final(self, err)
        return action_, value, reported
      end
      return "retry", 0, reported
    end
    return "retry", 0
  end
  -- A wait that would leave the retry too little of the deadline (MIN_ATTEMPT_TIME): the retry
  -- would not be sent after it (Call:request), so the last error is raised now, not after it.
  if not action or (self.deadline and (monotime() + delay >= self.deadline or self:past_deadline(delay))) then
    return final(self, err)
  end
  if runner.log then runner.log(string.format("eip: retrying in %.2f s after: %s", delay, tostring(err))) end
  return "retry", delay
end

---------------------------------------------------------------------------------------------
-- Running

-- The states of finished calls a runner keeps for its next ones: as many as it ran at once,
-- up to this many.
local SPARE_CALLS_MAX = 32

-- A finished call's state, kept for a later call (see Runner:run).
local function spare(self, call)
  local n = self.nspare_calls
  if n < SPARE_CALLS_MAX then
    n = n + 1
    self.spare_calls[n], self.nspare_calls = call, n
  end
end

--- How often, at least, a call (and a batch: eip.batch) with a cancel function asks it while it
-- waits (seconds), so that Ctrl-C is heard at once: also while its credentials are fetched or
-- waited for (see M.halt).
M.CANCEL_INTERVAL = 0.25
local CANCEL_INTERVAL = M.CANCEL_INTERVAL

--- What may stop a call's credentials step (eip.auth: an IAM token, the metadata service's keys,
-- the project id, fetched or waited for while another call fetches them): `stop()` true-ish
-- sends nothing more (no further attempt of the fetch, not the call's own request) and ends a
-- wait for another call's fetch at once (that fetch goes on: its outcome is the others', and
-- kept); `abort()` (optional: a batch's "abort") true-ish also aborts the fetch's request in
-- flight, over libcurl (see send_in_pieces). Each is asked at least every CANCEL_INTERVAL while
-- the step waits. `asked` is set once either was: the step did something that took time, and
-- the call asks `stop` again before its own request goes out (Call:request).
-- @tparam function stop
-- @tparam[opt] function abort
-- @treturn table { stop = function, abort = function | nil, asked = boolean }
function M.halt(stop, abort)
  local halt = { asked = false }
  halt.stop = function()
    halt.asked = true
    return stop()
  end
  if abort then
    halt.abort = function()
      halt.asked = true
      return abort()
    end
  end
  return halt
end

-- Can a request in flight be aborted between pieces of its wait (send_in_pieces): the client's
-- transport is libcurl (the automatic one where nginx cannot yield), its send not replaced by a
-- caller watching it (it is given every request).
local function abortable(self)
  local transport = self.transport
  if type(transport) ~= "table" or rawget(transport, "send") ~= nil then return false end
  if transport.name == "curl" then return true end
  return transport.name == "auto" and self:stuck()
end

-- Sends request over a libcurl multi handle of its own (closed after), in pieces of
-- CANCEL_INTERVAL, asking abort() after each: the transport's send would block until the
-- answer or the timeout (a login to an IAM that does not answer: the whole timeout). Returns the
-- response; or, when abort() said so, nil and whether any of the request had been sent (an
-- answer that came meanwhile is taken, not aborted). Raises what the multi raises (a bug).
local function send_in_pieces(self, request, abort)
  local multi = self:multi(true)
  local ok, resp, sent = pcall(function()
    multi:limit(1)
    local slot, why = multi:start(request)
    if not slot then error("eip: cannot start a request: " .. tostring(why), 0) end
    while true do
      local done, answer = multi:next(CANCEL_INTERVAL)
      if done then return answer end
      if abort() then
        done, answer = multi:next(0)
        if done then return answer end
        return nil, not multi:cancel()[slot]
      end
    end
  end)
  multi:close()
  if not ok then error(resp, 0) end
  return resp, sent
end

--- Sleeps `seconds` with the runner's sleep. With `cancel` (a function: true-ish to stop), in
-- pieces of at most CANCEL_INTERVAL, asking it before each (the caller asks it again after the
-- last, before what it waited for); a piece the sleep ends early (core.sleep on a caught Ctrl-C)
-- counts as slept: the pieces are counted, not timed, so that a sleep that returns at once
-- cannot make a caller spin. Returns true when cancel asked to stop.
function Runner:pause(seconds, cancel)
  if not cancel then
    if seconds > 0 then self.sleep(seconds) end
    return false
  end
  local left = seconds
  while left > 0 do
    if cancel() then return true end
    local piece = left < CANCEL_INTERVAL and left or CANCEL_INTERVAL
    self.sleep(piece)
    left = left - piece
  end
  return false
end

-- Ends a call before its next attempt: its state kept for later calls, the error raised.
local function ended(self, call, err)
  spare(self, call)
  error(err, 0)
end

-- A call of a client with a rate: reserves the slot of its next attempt and waits for it. Nil
-- when the attempt may go; else the call's final outcome ("done", value | "fail", err): its
-- deadline would pass before the slot (the last attempt's error, as when a backoff would pass it;
-- before the first attempt an error of its own: nothing was sent), or cancel asked to stop.
local function rate_wait(self, call, bucket, cancel)
  local wait, deadline = nil, call.deadline
  if deadline then
    -- A slot later than now must leave the attempt MIN_ATTEMPT_TIME to be answered in.
    local left, later = deadline - monotime(), nil
    if left > 0 then wait, later = bucket:take_within(max(0, left - MIN_ATTEMPT_TIME)) end
    if not wait then
      if call.attempts > 0 then return call:expire() end
      local err = errors.deadline_before_send(call.op, named_deadline(call), later or 0)
      err.elapsed = monotime() - call.started
      return "fail", err
    end
  else
    wait = bucket:take()
  end
  if wait > 0 and self:pause(wait, cancel) then return "fail", cancelled(call) end
  return nil
end

-- A signed call of a client with no room for another signed request in flight (see
-- signing_room): waits for room, in steps of SIGNED_WAIT_STEP. Nil when the attempt may go;
-- else the call's final outcome: its deadline passed first, or, without one, its `timeout` (the
-- last attempt's error; before the first attempt one of its own: nothing was sent), or cancel
-- asked to stop. The wait counts in the call's time, as the rate's does. A batch that keeps its
-- places (each freed place taken again for its next id, in this worker or another) would
-- otherwise hold a call beside it until the batch ends. (Runner:run collected the coroutines
-- dropped with a place before it came here; collected once more before it fails: see
-- collect_dropped.)
local function signing_wait(self, call, cancel)
  local provider = self.provider
  if not call.started then call:start() end
  local deadline = call.deadline
  local bound, why = deadline, "the deadline (%g s) passed"
  if not deadline then
    bound, why = monotime() + self.timeout, "no place came free within its timeout (%g s)"
  end
  local last = false -- (the collection before failing made: see collect_dropped)
  while true do
    if admit(provider, call, self.timeout) then
      -- A place that came too late (a step that overslept): the attempt would have no time.
      if not deadline or deadline - monotime() >= MIN_ATTEMPT_TIME then return nil end
      release(provider, call)
    end
    -- After the next step, the attempt must still have MIN_ATTEMPT_TIME to be answered in.
    if monotime() + M.SIGNED_WAIT_STEP + MIN_ATTEMPT_TIME >= bound then
      -- (once more before failing: a coroutine dropped while this call waited; see collect_dropped)
      if last or not collect_dropped(provider) then
        if call.attempts > 0 then return call:expire() end
        local err = errors.no_signing_place(call.op, string.format(why, deadline and self.deadline or self.timeout))
        err.elapsed = monotime() - call.started
        return "fail", err
      end
      last = true
    elseif self:pause(M.SIGNED_WAIT_STEP, cancel) then
      return "fail", cancelled(call)
    end
  end
end

-- A call whose provider must fetch credentials before it signs (eip.auth's Metadata:due,
-- Iam:due): fetches them before it takes a signing place or a slot of the rate, its clock
-- started (the fetch counts in its deadline). Nil when it may go on; else "fail" and the
-- credentials' error as Call:request gives it (nothing sent): errors.cancelled's when `halt`
-- (M.halt) stopped the fetch, deadline_after_credentials' when they left the first attempt
-- less than MIN_ATTEMPT_TIME of the deadline.
local function keys_first(self, call, halt)
  if not call.started then call:start() end
  local deadline = call.deadline
  -- (`ends`: the deadline itself, which the metadata service's keys in their last second are
  -- waited out within; a request's `timeout`, as the renewal made as it is signed gets, is not)
  local left = deadline and { timeout = max(0, deadline - monotime()), ends = deadline } or nil
  local ok, err = errors.held(self.provider.ensure, self.provider, self, left, halt)
  if ok then
    if not deadline or deadline - monotime() >= MIN_ATTEMPT_TIME then return nil end
    if call.attempts > 0 then return call:expire() end
    err = errors.deadline_after_credentials(call.op, named_deadline(call))
    err.elapsed = monotime() - call.started
    return "fail", err
  end
  if not errors.is_error(err) then error(err, 0) end
  if halt and err.kind == "interrupted" then return "fail", cancelled(call) end
  if call.attempts > 0 then return call:expire() end
  local copy = errors.unsent_copy(err, call.op.resource)
  copy.elapsed = monotime() - call.started
  return "fail", copy
end
M.keys_first = keys_first

-- Must keys be fetched (keys_first) before op's request takes a signing place or a slot of the
-- rate: a provider that fetches says so (eip.auth's Metadata:due, Iam:due), unless nothing can wait
-- (Runner:stuck).
local function keys_due(self, op)
  return op.auth ~= false and self.provider.due ~= nil and self.provider:due() and not self:stuck()
end
M.keys_due = keys_due

-- The lane's sender (see Runner:run), made at its first use from the request Call:request
-- makes of a first attempt, its URL the endpoint: built, then its token's header lines, or what
-- the provider's signer signs each request with (the lines of the same headers, Host, the
-- project; the endpoint's base path before the path signed). { C function, session, prepared,
-- finish, the transport's own send, token (true: nothing to check before a send), project }
-- (see eip.transport.curl's lane); false, and the runner's lane off, when the transport has
-- none for it (the automatic one inside nginx signs the general way).
local function lane_sender(self, op)
  local req = build(self, op, 1, self.timeout)
  local content_type, signing = op.content_type or CONTENT_TYPE, nil
  if self.lane == "signed" then
    req.headers = nil
    signing = { signer = self.provider.signer, host = req.host, project_id = req.project_id or nil,
      base_path = self.base_path, headers = shared(self, content_type).headers }
  else
    authenticate(self, req, content_type, self.provider, op.headers)
  end
  req.url = self.endpoint
  -- (a lane that could not be made, the C core out of memory for its copy of the request: this
  -- call goes the general way, which answers such a failure as a transport error; the next
  -- call tries again)
  local made, send, session, prepared, finish, own_send = pcall(self.transport.lane, self.transport, req, signing)
  if not made then return false end
  if not send then
    self.lane = false
    return false
  end
  local lane = { send, session, prepared, finish, own_send, self.lane == "token", self.project_id }
  self.lane_send = lane
  return lane
end

-- May a signed request go by the lane now? Only while nothing of the key's guard is at work: no
-- refusal counted or held, no other signed request in flight (a batch's, or a call a hook made),
-- so that the general way would have sent it at once too (see M.admit).
local function signing_idle(self, lane)
  local provider = self.provider
  local flying = provider.flying
  return not provider.strikes and not provider.doubts and not provider.refused
    and not (flying and next(flying) ~= nil)
    and lane[7] == self.project_id
end

-- Frees the runner's handles: the transport's connections, the multi handle's (see Runner:close).
local function free_handles(self)
  self.closing = false
  local multi = self.multi_handle
  if multi then
    self.multi_handle = false
    multi:close()
  end
  -- A transport of the caller's whose close raises (the contract says it never does) fails
  -- nothing: the client is closed all the same, and what it raised goes to the debug log. (pcall
  -- on every Lua: close never raises, on Lua 5.1 inside a coroutine too.)
  local transport = self.transport
  local ok, why = pcall(transport.close, transport)
  if not ok and self.log then
    self.log("eip: the transport's close raised an error: " .. self:clean(errors.text(why)))
  end
end

-- The calls running (see Runner:counted) less those that never leave: a call whose coroutine
-- died inside it (closed, or ended by an error nothing caught) or was collected. Returns them.
local function forget_ended(running_in)
  for co in pairs(running_in) do
    if co ~= MAIN and co_status(co) == "dead" then running_in[co] = nil end
  end
  return running_in
end

-- A call of the runner's now running on this coroutine (see Runner:counted): the coroutine,
-- for `left`.
local function entered(self)
  local co = co_running() or MAIN
  local running_in = self.running_in
  running_in[co] = (running_in[co] or 0) + 1
  return co
end

-- What a counted call returns (see Runner:counted): pcall's results, once the call, on
-- coroutine `co`, has left; the last to leave a closed runner frees its handles.
local function left(self, co, ok, ...)
  local running_in = self.running_in
  local k = (running_in[co] or 1) - 1
  running_in[co] = k > 0 and k or nil
  -- (free_handles: what a transport of the caller's close raises goes to the log, not to this call)
  if self.closing and next(forget_ended(running_in)) == nil then pcall(free_handles, self) end
  if not ok then error((...), 0) end
  return ...
end

--- Calls fn(...) as one of the runner's calls running (every public method of the client is
-- one, and Runner:run past its lane): counted from here until it returns or raises, so that a
-- close() made meanwhile (from a hook, a sleep, a cancel, a drain's confirm or on_batch, a
-- coroutine of a scheduler's while this one waits) frees the handles only once the last such
-- call has left (see Runner:close). Returns what fn returns; raises what it raises. (On Lua 5.1,
-- in a coroutine, with a transport or a sleep of the caller's, nothing is caught, as
-- errors.yielding says: a call that raised there is counted until its coroutine has ended.)
function Runner:counted(fn, ...)
  return left(self, entered(self), self.protect(fn, ...))
end

-- Runner:run past the lane: `first` is the lane's answer (false: none), sent `first_started`.
local function general(self, op, cancel, abort, first, first_started)
  local call
  local n = self.nspare_calls
  if n > 0 then
    call = self.spare_calls[n]
    self.spare_calls[n], self.nspare_calls = false, n - 1
    call.op, call.attempts, call.refreshed, call.started = op, 0, false, false
    call.deadline, call.epoch, call.last_error, call.unanswered = false, false, false, false
  else
    call = self:call(op)
  end
  local transport = self.transport
  -- (own: a rate of the op's own besides the client's, taken first: a batch's, which its wait's
  -- reads keep to; see eip.bandwidths' wait_gone)
  local bucket, own = self.bucket, op.bucket
  if bucket or own then call:start() end -- the wait for the rate counts in the call's time
  -- (what may stop the call's credentials step: only a provider that fetches has one)
  -- (a single call's cancel, without an abort of its own, aborts a login in flight too: it is
  -- no destructive request, and a hanging IAM would hold the call to its timeout)
  local halt = cancel and self.provider.fallible and M.halt(cancel, abort or cancel) or nil
  while true do
    local action, value
    if bucket or own then -- the client's rate: every request it sends, retries included
      -- Keys to fetch first (see below), before the rate's slot is taken: a call whose keys
      -- cannot be had sends nothing, and must not use up the rate (other workers' budget too,
      -- with rate_dict) to say so.
      if cancel and cancel() then ended(self, call, cancelled(call)) end
      if keys_due(self, op) then action, value = keys_first(self, call, halt) end
      if not action and own then action, value = rate_wait(self, call, own, cancel) end
      if not action and bucket then action, value = rate_wait(self, call, bucket, cancel) end
    end
    if not action and cancel and cancel() then ended(self, call, cancelled(call)) end
    if not action and keys_due(self, op) then action, value = keys_first(self, call, halt) end
    if not action and op.auth ~= false and self.provider.rejected and not admit(self.provider, call, self.timeout)
        and not (collect_dropped(self.provider) and admit(self.provider, call, self.timeout)) then
      if self:reentered() then -- what holds the places waits for this call: fail now
        action, value = "fail", errors.no_signing_place(call.op, "it was called from a hook or a batch's on_result")
      elseif self:wait_stops() then
        action, value = "fail", errors.no_signing_place(call.op, STUCK)
      else
        action, value = signing_wait(self, call, cancel)
      end
    end
    if action == "done" then
      spare(self, call)
      return value
    end
    if action then ended(self, call, value) end
    local request, err = call:request(halt)
    local answered = first -- (the lane's answer is the first request's only)
    first = false
    if request then
      -- What a transport of the caller's raises (a bug, a module that failed to load) is this
      -- attempt's failure (M.raised), read as any answer is: its signing place given back, its
      -- on_response told; the request may have gone out.
      local resp = answered
      if answered then -- the lane's answer: its request was this one, sent when the lane started
        call.started = first_started
      elseif abort and abortable(self) then
        local sent
        local t0 = monotime()
        resp, sent = send_in_pieces(self, request, abort)
        if not resp and not sent then
          -- Aborted before any of it went out: as a call cancelled before this attempt. Its
          -- on_response first, with the attempt its on_request was told (then taken back).
          call:take_back(monotime() - t0, "fail")
          ended(self, call, cancelled(call))
        end
        -- Aborted in flight: read as the C core's abort by an interrupt (an "interrupted" error,
        -- never retried; with AK/SK, a signed request without an answer). Its time is counted as
        -- an answer's is (on_response's elapsed: metrics' histogram).
        resp = resp or { status = 0, curl_code = 42, interrupted = true, elapsed = monotime() - t0,
          curl_error = "Aborted while in flight: the call's cancel said abort" }
      else
        local ok
        ok, resp = yielding(transport.send, transport, request)
        resp = M.answer_of(ok, resp, self.callers_transport)
      end
      action, value = call:response(resp, halt)
    else
      action, value = call:failure(err, true)
    end
    if action == "done" then
      -- (spare, inline: the state kept for the next call)
      local kept = self.nspare_calls
      if kept < SPARE_CALLS_MAX then
        kept = kept + 1
        self.spare_calls[kept], self.nspare_calls = call, kept
      end
      return value
    end
    if action == "fail" then ended(self, call, value) end
    if self:pause(value, cancel) then ended(self, call, cancelled(call)) end
  end
end

--- Runs op to its end through the client's transport, sleeping between attempts. Returns the
-- op's result; raises the final eip error. The state of the call (and, with reuse_requests, its
-- request table, some 20 fields) is kept for the runner's later calls: one call after another
-- allocate neither again, and nor do calls that run at once (light threads inside nginx, an
-- IAM token fetched inside a call), each taking a kept state of its own.
--
-- With the client's `rate`, the call's clock (its `deadline`, its `elapsed`) starts before it
-- waits for its first slot: a slot the deadline would pass first is not waited for. `cancel`
-- (optional, a function: true-ish to stop, as a batch's `cancel` option) is asked before each
-- attempt and at least every CANCEL_INTERVAL of the waits before one (backoff, Retry-After, the
-- rate): when it says stop, the call ends with an "interrupted" error (errors.cancelled) and
-- nothing more is sent. It is asked while the call's credentials are fetched, or waited for,
-- too, and again before the request goes out once they came (see M.halt). `abort` (optional, a
-- function: true-ish to abort; a batch's credentials step gives it) is asked at least every
-- CANCEL_INTERVAL while an attempt is in flight over libcurl, which it then aborts: the call
-- ends with errors.cancelled's error when nothing of it had been sent, else with an
-- "interrupted" one (it may have been carried out).
function Runner:run(op, cancel, abort)
  local first, first_started = false, false
  local lane = self.lane and op.lane and not cancel and not op.deadline_at
    and (self.lane_send or lane_sender(self, op))
  -- (a transport whose send was replaced, by a caller watching it, is given every request)
  if lane and self.transport.send == lane[5] and (lane[6] or signing_idle(self, lane)) then
    -- The lane: the common call (a delete with a token or keys, nothing that watches, paces or
    -- bounds it; see M.new) sends its first attempt without a call's state, the request prepared
    -- once (in C for libcurl; lane_sender: the one the general way builds, its URL the endpoint's
    -- and the op's path; signed there when it is to be). Its answer is read as the general way reads it
    -- when it has the op's usable status; any other, a transport failure included, is handed
    -- to the general way below as its first attempt's answer (false: the lane sent nothing, the
    -- general way sends it: the automatic transport's, whose picked transport's send a caller
    -- replaced; nil: the automatic transport's lane raised, what it raised its second value,
    -- read as what a transport's send raises is, M.raised).
    local usable = op.usable_status
    -- (a request id that Runner:clean would change comes back in the response: M.new's
    -- conditions leave the provider's secrets the only ones it looks for)
    local status, request_id, took = lane[1](lane[2], lane[3], op.path, usable, self.provider.secrets)
    if status == usable then return op:lane_result(status, request_id, 1, took) end
    first, first_started = status == nil and M.raised(request_id) or lane[4](status), monotime() - took
  end
  -- From here on code of the caller's may run (a hook, the sleep between attempts, a cancel): the
  -- call counts as running, so that a close() it makes waits for it (as Runner:counted counts, but
  -- not through it: LuaJIT cannot compile the passing on of its varargs, and this is every
  -- delete's path inside nginx; spec/openresty_process_spec.lua watches it).
  return left(self, entered(self), self.protect(general, self, op, cancel, abort, first, first_started))
end

local delete_path, deleted, DELETED_STATUS = ops.delete_path, ops.deleted, ops.DELETED_STATUS

--- Runner:run(ops.delete_bandwidth(project_id, id, missing_ok)), with no cancel or abort: by the
-- lane, once it is made (a first delete made it), without the op, which is made only when the
-- lane's answer does not end the call (a sequential delete makes no table but its result).
function Runner:run_delete(project_id, id, missing_ok)
  local lane = self.lane and self.lane_send
  if lane and self.transport.send == lane[5] and (lane[6] or signing_idle(self, lane)) then
    -- (Runner:run's lane, its conditions written out, not called: spec/lane_spec.lua counts one
    -- function of this module per delete by the lane; an op of ops.delete_bandwidth's has no
    -- deadline_at)
    local status, request_id, took = lane[1](lane[2], lane[3], delete_path(project_id, id), DELETED_STATUS,
      self.provider.secrets)
    if status == DELETED_STATUS then return deleted(id, status, request_id, 1, took) end
    local op = ops.delete_bandwidth(project_id, id, missing_ok)
    local first = status == nil and M.raised(request_id) or lane[4](status)
    return left(self, entered(self), self.protect(general, self, op, nil, nil, first, monotime() - took))
  end
  return self:run(ops.delete_bandwidth(project_id, id, missing_ok))
end

--- The project id for paths, found once: with IAM and no configured project, from the token's
-- scope (which fetches a token); with AK/SK, by asking IAM for the project named after the
-- region (`lookup`: { region, iam_endpoint }). `halt` (optional, see M.halt): what may stop
-- that fetch, or a wait for another call's (an "interrupted" error then, nothing more sent).
function Runner:project(halt)
  local project = self.project_id
  if project then return project end
  local lookup = self.lookup
  if lookup then
    -- Once for the client's calls at the same time (nginx's requests, a scheduler's coroutines):
    -- each looked it up on its own, a signed request to IAM each. `fetch_once` (eip.auth's, the
    -- client gives it: fetch_once(holder, runner, fetch, fresh, req, halt)) makes the others wait for it,
    -- its failure theirs; `project_fetch` is the holder.
    local op = ops.iam_projects(lookup.iam_endpoint, lookup.region, lookup.instead)
    local once = self.fetch_once
    if not once then
      project = self:run(op, halt and halt.stop, halt and halt.abort)
    else
      local holder = self.project_fetch
      if not holder then
        holder = { fetching = false, fetch_what = "project id", fetch_method = "GET",
          fetch_path = ops.IAM_PROJECTS_PATH, budget = self.fetch_budget }
        self.project_fetch = holder
      end
      -- (the fetch's own halt: none when it runs in a timer of nginx's, for every call)
      once(holder, self, function(_, runner, h) runner.project_id = runner:run(op, h and h.stop, h and h.abort) end,
        function() return self.project_id ~= nil end, nil, halt)
      project = self.project_id -- (set: a failed lookup raised)
    end
  else
    self.provider:ensure(self, nil, halt)
    project = self.provider.project_id
    if project == nil then
      -- (the metadata service's keys name no project; an IAM token scoped to a domain neither)
      error(self.project_missing or errors.usage("project_id", "is required: IAM's token names no project "
        .. "(a token scoped to a domain, or an answer without token.project.id): give project_id"), 0)
    end
  end
  self.project_id = project
  return project
end

--- The libcurl multi handle for concurrent requests (made on first use, kept for the
-- connections it caches, released by close); `fresh`: a new one, not kept (the caller closes it).
function Runner:multi(fresh)
  local multi = not fresh and self.multi_handle
  if not multi then
    -- The TLS settings and user agent of the transport single calls go through (a caller's
    -- libcurl transport has its own: a batch must verify as they do), else the client's.
    local settings = type(self.transport) == "table" and rawget(self.transport, "opts")
    if type(settings) ~= "table" then settings = self end
    -- (its settings checked when the client was made: what it raises is the C core's, memory
    -- running out; an eip error of the transport before anything is sent, as eip.new's)
    local made
    made, multi = pcall(core.multi, { ca_file = settings.ca_file, insecure = settings.insecure,
      user_agent = settings.user_agent })
    if not made then error(errors.unmade(multi, nil, "cannot make libcurl's multi handle"), 0) end
    if not fresh then self.multi_handle = multi end
  end
  return multi
end

--- Releases the transport's connections and the multi handle's: now, or, while calls of the
-- runner are running (see Runner:counted), once the last of them has left. Freed under a call
-- running, its next request would raise from the C core ("session is closed"), not an eip
-- error, and a drain would lose what it had moved. A call whose coroutine died inside it
-- (closed) is not waited for; one suspended for good (dropped, an nginx request killed) leaves
-- them to the garbage collector (the C handles' __gc). Closing again is harmless.
function Runner:close()
  -- Only calls that may still come back are waited for (forget_ended); the last of them to leave
  -- looks again (left): a coroutine may have died inside its call meanwhile.
  if next(forget_ended(self.running_in)) ~= nil then
    self.closing = true
  else
    free_handles(self)
  end
end

return M
