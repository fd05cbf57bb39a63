--- Structured errors raised by lua-eip.
-- Every error is a table sharing one metatable, so `eip.is_error(e)` can tell ours from
-- anything else, and `tostring(e)` is one line a person can act on. Secret values never
-- reach these tables: callers pass only what is safe, and server-provided text is scrubbed
-- of every secret the client holds before it is stored.
local transport = require "eip.transport"
local error_kind = transport.error_kind

local M = {}

local Error = {}
Error.__index = Error
Error.__name = "eip.error"

local core = require "eip.core"
local blank_controls, core_escape_controls = core.blank_controls, core.escape_controls
local cut = require("eip.body").cut

--- The text of any value, as tostring gives it, without raising: a value of the caller's (an
-- error its callback raised) may have a __tostring that raises or returns no string (Lua 5.2+
-- raise then, LuaJIT hands the non-string on); its type is said instead.
-- @param v anything
-- @treturn string
local function text_of(v)
  local ok, s = pcall(tostring, v)
  if ok and type(s) == "string" then return s end
  return "a " .. type(v) .. " whose __tostring failed"
end
M.text = text_of

-- (C1 controls too: CSI, U+009B, moves a terminal's cursor as ESC [ does)
local function one_line(s, max)
  s = blank_controls((tostring(s):gsub("[%c]+", " ")))
  if #s > max then s = cut(s, max - 3) .. "..." end
  return s
end

function Error.__tostring(e)
  if e.kind == "usage" then
    return "eip: usage: " .. e.message
  end
  if e.kind == "refused" then
    return "eip: refused: " .. one_line(e.message or "?", 400)
  end
  -- (its message says what failed and why; the service's error is its cause)
  if e.kind == "credentials" then return "eip: " .. one_line(e.message or "?", 600) end
  -- (a wait's read that failed after the delete's 204: said first, the bandwidth is gone; the
  -- wait's own errors, wait_timeout and interrupted, say it in their message)
  local read_failed = e.stage == "wait" and e.deleted == true
    and (e.kind == "http" or e.kind == "transport" or e.kind == "proxy")
  local parts = { read_failed and "eip: deleted (204), then the wait's " or "eip: " }
  -- (a failure of no request, a client's libcurl handle it could not make, names none)
  if e.method or e.path or e.kind ~= "transport" then
    parts[2], parts[3], parts[4], parts[5] = e.method or "?", " ", e.path or "?", " -> "
  end
  if e.kind == "http" then
    parts[#parts + 1] = string.format("%d %s", e.status, e.reason or "")
    if e.code or e.message then
      local detail = e.code and e.message and (e.code .. ": " .. e.message) or (e.code or e.message)
      parts[#parts + 1] = " (" .. one_line(detail, 300) .. ")"
    end
    if e.truncated then parts[#parts + 1] = " [body truncated]" end
    -- (code and message are its first JSON value's: a 404 of it says nothing is gone)
    if e.trailing then parts[#parts + 1] = " [more after its JSON]" end
  elseif e.kind == "transport" then
    parts[#parts + 1] = "transport error: " .. one_line(e.message or "?", 300)
    if e.curl_code then parts[#parts + 1] = string.format(" (curl %d)", e.curl_code) end
    if e.proxy then parts[#parts + 1] = " via proxy " .. e.proxy end
    if e.unsent == true then parts[#parts + 1] = " [not sent]" end
  elseif e.kind == "proxy" then
    parts[#parts + 1] = "proxy error: " .. one_line(e.message or "?", 400)
    if e.curl_code then parts[#parts + 1] = string.format(" (curl %d)", e.curl_code) end
  else
    parts[#parts + 1] = one_line(e.message or e.kind or "?", 300)
  end
  -- The cause: of the library's own errors, whatever it is; of an answer's, an error of the
  -- library's (a 401 whose credentials' refresh failed), after it.
  local cause = e.cause
  local answer = e.kind == "http" or e.kind == "transport" or e.kind == "proxy"
  if cause and (not answer or getmetatable(cause) == Error) then
    local text = one_line(text_of(cause):gsub("^eip: ", ""), 300)
    parts[#parts + 1] = answer and ("; cause: " .. text) or (" (" .. text .. ")")
  end
  if e.request_id then parts[#parts + 1] = " request-id=" .. e.request_id end
  if e.attempts and e.attempts > 1 then parts[#parts + 1] = " after " .. e.attempts .. " attempts" end
  -- (the last attempt's failure, "[not sent]" or a proxy's refusal, says nothing of the earlier
  -- ones: one that went out unanswered may have been carried out, a delete may have deleted)
  if answer and e.earlier_unanswered then
    parts[#parts + 1] = "; an earlier attempt went out unanswered and may have been carried out"
  end
  return table.concat(parts)
end

--- Is value an error raised by lua-eip (a table with the shared metatable)?
function M.is_error(value)
  return type(value) == "table" and getmetatable(value) == Error
end

local function new(fields)
  return setmetatable(fields, Error)
end

--- s with each control byte written as a decimal escape (ESC as \27), as Lua 5.2+'s %q writes
-- them: a value a message quotes must not reach a terminal raw (Lua 5.1's %q leaves ESC, BEL
-- and DEL as they are).
-- @tparam string s
-- @treturn string
function M.escape_controls(s)
  -- (%q writes a newline as a backslash and a newline: that pair is \n, as describe() writes it;
  -- C1 controls, CSI among them, are escaped too: core.escape_controls)
  return core_escape_controls((s:gsub("\\\n", "\\n")))
end

-- What makes a usage error's message safe to show: eip.validate's scrub (every registered secret
-- of every client replaced), set when that module loads (it requires this one).
local usage_scrub = nil

--- Sets the function every usage error's message goes through (eip.validate's scrub).
function M.set_usage_scrub(f)
  usage_scrub = f
end

--- A usage error: bad arguments, nothing was sent. `argument` names the offending argument.
-- Its message never quotes a secret of any client: a value a caller quotes in it (an unknown
-- option's name, a repeated id) is scrubbed here, whoever made it.
-- (Not called `arg`: in Lua 5.1 a vararg function has an implicit local of that name.)
function M.usage(argument, fmt, ...)
  local msg = argument .. " " .. string.format(fmt, ...)
  if usage_scrub then msg = usage_scrub(msg) end
  msg = M.escape_controls(msg)
  return new{ kind = "usage", argument = argument, message = msg, retryable = false, attempts = 0 }
end

--- Raise a usage error (level 3 = the caller of the public function).
function M.raise_usage(argument, fmt, ...)
  error(M.usage(argument, fmt, ...), 3)
end

--- A shallow copy of an eip error, or of a result table: one outcome reported for several ids
-- gets a table each.
function M.copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return setmetatable(c, getmetatable(t))
end

--- An error of lua-eip made of `fields` (what another nginx worker kept of one: its string,
-- number and boolean fields).
-- @tparam table fields
-- @treturn table the error
function M.restore(fields)
  return new(fields)
end

local STOP_REASONS = {
  auth = "stopped after an authentication failure",
  unanswered = "stopped after signed requests (or logins) in a row got no answer: each may have been refused "
    .. "unseen, and the client sends no more of them for now (see cause)",
  cancelled = "the batch was cancelled",
  aborted = "the batch was aborted",
  project = "the project id could not be looked up",
  throttled = "the API throttles: it asks not to come back within retry_after_cap seconds (Retry-After, or a "
    .. "stated limit of one request per longer than that)",
  unavailable = "the service is unavailable: a server error asks not to come back within retry_after_cap "
    .. "seconds (Retry-After)",
  exiting = "nginx's worker is exiting (a reload or a graceful stop): the batch started no more requests",
}

--- The entry of an id a batch never sent: kind "not_sent", `not_sent = true`, `stopped` (why:
-- "auth", "unanswered", "cancelled", "aborted", "project", "throttled", "unavailable", "exiting",
-- "deadline") and `cause` (the eip
-- error that stopped it, if any).
function M.not_sent(op, reason, cause)
  return new{
    kind = "not_sent", not_sent = true, stopped = reason, cause = cause, retryable = false,
    message = "not sent: " .. (STOP_REASONS[reason] or reason), method = op.method, path = op.path,
    bandwidth_id = op.resource, attempts = 0,
  }
end

--- Credentials in use that could not be renewed: the ECS metadata service gave no new
-- temporary keys for the ones expiring (an outage, an agency detached). Kind "credentials",
-- nothing sent (`not_sent`, no attempt), `cause` the service's error; `retryable` when that is
-- (a 5xx, no answer: an outage passes; a refusal does not). Not a usage error: nothing the
-- caller gave is wrong, and the same call may go once the service answers. Its message is
-- scrubbed of every registered secret, as a usage error's is.
-- @tparam string message what failed and why
-- @tparam table cause the service's error (an eip error)
function M.credentials(message, cause)
  if usage_scrub then message = usage_scrub(message) end
  return new{
    kind = "credentials", message = M.escape_controls(message), cause = cause,
    retryable = cause.retryable == true, not_sent = true, attempts = 0,
    advice = "Nothing was sent. Send it again once the metadata service gives keys (an outage passes); "
      .. "if it refuses them, check the agency attached to this server.",
  }
end

--- The client refused to act, after reading the resource (one GET was sent; nothing changed):
-- kind "refused", `reason` ("dedicated", "prepaid", "frozen", "not_confirmed", "changed").
function M.refused(reason, message)
  return new{ kind = "refused", reason = reason, message = message, retryable = false, attempts = 1 }
end

--- A delete that succeeded (204) but whose bandwidth was still readable when the wait ended:
-- kind "wait_timeout", `deleted = true`, `waited` (seconds). Not a failed delete.
function M.wait_timeout(op, waited)
  return new{
    kind = "wait_timeout", deleted = true, waited = waited, retryable = false, method = op.method,
    path = op.path, bandwidth_id = op.resource,
    message = string.format("deleted (204), but the bandwidth could still be read after %.1f s", waited),
  }
end

--- The entry of a request aborted while in flight: kind "interrupted". The server may or may
-- not have acted on it.
function M.interrupted(op, attempts)
  return new{
    kind = "interrupted", retryable = false, method = op.method, path = op.path, bandwidth_id = op.resource,
    message = "aborted while in flight: the server may or may not have acted on it", attempts = attempts,
  }
end

--- A failure in a few words: an answer's status and code ("400 VPC.0323"), else its reason
-- ("timeout") or kind.
-- @tparam table err an eip error
-- @treturn string
function M.brief(err)
  if err.kind == "http" then return tostring(err.status) .. (err.code and (" " .. err.code) or "") end
  return tostring(err.reason or err.kind)
end

--- A call that its `cancel` function ended before its next attempt was sent (Ctrl-C in the
-- eip command): kind "interrupted", `cancelled = true`, `attempts` (how many were sent before),
-- `cause` (the last attempt's error, if any) and `earlier_unanswered` when one of them may have
-- been carried out without its answer arriving. Nothing was sent after the cancel; with no
-- attempt sent at all, `not_sent = true`.
function M.cancelled(op, attempts, cause, earlier_unanswered)
  local message = "interrupted before it was sent: nothing was sent"
  if attempts > 0 then
    local last = ""
    if cause and cause.kind == "http" then
      last = " (the last answered " .. M.brief(cause) .. ")"
    elseif cause and cause.kind then
      last = " (the last failed: " .. M.brief(cause) .. ")"
    end
    message = string.format("interrupted after %d attempt%s%s: no further attempt was sent", attempts,
      attempts == 1 and "" or "s", last)
  end
  return new{
    kind = "interrupted", cancelled = true, retryable = false, method = op.method, path = op.path,
    bandwidth_id = op.resource, attempts = attempts, cause = cause or nil,
    earlier_unanswered = earlier_unanswered or nil, not_sent = attempts == 0 or nil, message = message,
  }
end

-- A call of op that sent nothing because it could not wait any longer (its deadline, or what it
-- would wait for waits for it): a timeout, not sent, retryable.
local function unsent_timeout(op, message)
  return new{
    kind = "transport", reason = "timeout", not_sent = true, retryable = true, method = op.method,
    path = op.path, bandwidth_id = op.resource, attempts = 0, message = message,
  }
end

--- A call whose `deadline` would pass before the client's `rate` lets its first request go:
-- kind "transport", reason "timeout" (as when the deadline runs out during an attempt), with
-- `not_sent = true` and `attempts = 0`: nothing was sent. `wait`: the seconds the rate asked for.
-- (`deadline` nil or false: a wait's read, whose wait ends before the client's deadline, or
-- without one.)
function M.deadline_before_send(op, deadline, wait)
  local what = deadline and string.format("the deadline (%g s)", deadline) or "the wait's end"
  return unsent_timeout(op, string.format("not sent: %s would pass before the rate limit lets the request go "
    .. "(in %.2f s)", what, wait))
end

--- A wait's read not sent because an earlier read's answer (`cause`: throttling, a service
-- unavailable) asked not to come back for `hold` seconds, past the end of the wait: kind
-- "transport", reason "timeout", not sent, as a read whose wait had no time left.
function M.held_past_wait(op, hold, cause)
  local err = unsent_timeout(op, string.format("not sent: an earlier read's answer asked not to come back for "
    .. "%.1f s (its Retry-After, or the pause after throttling), past the end of the wait", hold))
  err.cause = cause
  return err
end

--- The error of a call whose time ran out before its first request could go (the client's
-- `deadline`, when given: a first call's project lookup took it; nil: that of a wait's read,
-- whose wait ends first).
function M.deadline_before_request(op, deadline)
  return unsent_timeout(op, deadline and string.format("not sent: less than 50 ms of the deadline (%g s) was left "
    .. "for its request", deadline) or "not sent: less than 50 ms of the wait was left for its request")
end

--- The error of a call whose `deadline` passed while its credentials were obtained (an IAM
-- token, the metadata service's keys): nothing was sent. (`deadline` nil: a wait's read, whose
-- wait ended first.)
function M.deadline_after_credentials(op, deadline)
  return unsent_timeout(op, deadline and string.format("not sent: the deadline (%g s) passed while its credentials "
    .. "were obtained", deadline) or "not sent: the wait ended while its credentials were obtained")
end

--- The error of a signed call not sent because the client already had as many signed requests
-- in flight as it sends at once (eip.pipeline's SIGNED_IN_FLIGHT_MAX, 4), and `why` it did not
-- wait for one to end (its deadline passed; it was called from a hook).
function M.no_signing_place(op, why)
  return unsent_timeout(op, "not sent: " .. why .. " while this client had 4 signed requests in flight, as many "
    .. "as it sends at once (a key refused mid-way must not be refused five times in a row)")
end

--- The error of a call that sent nothing because a step before its request failed (its
-- credentials, its project's look-up): a copy of that step's error, as the call's, `not_sent`
-- with no attempt. (The step's own attempts, and whether one of them went unanswered, are not
-- the call's.) `bandwidth_id`: the call's, set on the copy when the step's error names none.
function M.unsent_copy(err, bandwidth_id)
  local c = M.copy(err)
  c.not_sent, c.attempts, c.earlier_unanswered = true, 0, nil
  -- (the credentials' error is IAM's or the metadata service's: it names their request, and
  -- the bandwidth of the call that sent nothing would be named nowhere)
  if bandwidth_id ~= nil and c.bandwidth_id == nil then c.bandwidth_id = bandwidth_id end
  return c
end

--- The refusal of a client whose signed requests went unanswered (see eip.auth's "Answers
-- lost"): kind "refused", reason "unanswered", not sent. `strikes` refusals and `doubts` signed
-- requests without an answer came in a row; `hold`: the seconds nothing is signed (lost answers
-- only), nil for good (a refusal among them); `in_dict`: that refusal is kept in the workers'
-- signing_dict, and lifted when the dict is emptied (see eip.auth's sync).
function M.unanswered_signatures(strikes, doubts, hold, in_dict)
  local seen = strikes > 0 and string.format("were refused (401: %d) or got no answer (%d)", strikes, doubts)
    or "got no answer (timeouts, resets after they went out, garbled answers, aborts)"
  return new{
    kind = "refused", reason = "unanswered", retryable = false, not_sent = true,
    message = string.format("not sent: the last %d signed requests with this AK/SK %s, and the gateway may "
      .. "have refused each unseen: five refused in a row lock the key for 5 minutes. ", strikes + doubts, seen)
      .. (hold and string.format("Nothing is signed for %d s, then one request: if it gets no answer either, "
        .. "nothing more.", math.ceil(hold))
      or in_dict and "No worker of this nginx signs with it until its signing_dict is emptied: check the key, the "
        .. "clock (X-Sdk-Date) and the network, then empty it (flush_all) or restart nginx."
      or "This client signs nothing more with it: check the key, the clock (X-Sdk-Date) and the network, and make a "
        .. "new client."),
  }
end

--- The 401 a client stands for when another nginx worker's signatures with the same key were
-- refused three times in a row (the client option signing_dict): it signs nothing with the key
-- either (see eip.auth's refusal, which makes it `not_sent`).
function M.refused_elsewhere()
  return new{
    kind = "http", status = 401, reason = "Unauthorized", retryable = false,
    message = "signatures with this AK/SK were refused (or got no answer) in a row in this nginx, as many as "
      .. "the client allows before the key could be locked (signing_dict)",
  }
end

-- The reasons of a transport failure whose request may have gone out (see may_have_acted).
local ATTEMPT_MAY_HAVE_ACTED = { timeout = true, reset = true, protocol = true, other = true }

--- Could the request of a failed attempt have been acted on, although no usable answer came?
-- A timeout or a connection reset (it may have been sent and carried out), a garbled answer
-- (reason "protocol": it came after the request went out, a 204's head cut short among them),
-- a failure of no known kind (reason "other": a transport of the caller's that raised or broke
-- its contract, which may have sent the request first, as @{could_have_acted} says), a 5xx (the
-- gateway gave up waiting, or the service failed partway), or a 2xx the call cannot
-- use (a 202 Accepted: taken, perhaps still being carried out). Not a refused connection, a
-- name that did not resolve, any answer the service gave on purpose (4xx), nor a failure the
-- transport says came before the request went out (`unsent`: a connect or TLS handshake that
-- timed out, a proxy that closed before the tunnel was made).
-- @tparam table err an eip error
-- @treturn boolean
function M.may_have_acted(err)
  if err.kind == "transport" then return ATTEMPT_MAY_HAVE_ACTED[err.reason] == true and err.unsent ~= true end
  if err.kind == "interrupted" then return true end
  local status = err.kind == "http" and type(err.status) == "number" and err.status
  return status and ((status >= 500 and status < 600) or (status >= 200 and status < 300)) or false
end

-- The fields the predicates read (could_have_acted, retry.halts), read with rawget: a copy.
local READ_FIELDS = { "stage", "uncertain", "earlier_unanswered", "not_sent", "cancelled", "kind", "status",
  "reason", "argument", "code", "path", "deleted", "unsent" }

--- A copy of t's fields that could_have_acted and retry.halts read, read with rawget (t may be a
-- table of the caller's whose __index raises).
-- @tparam table t
-- @treturn table
function M.raw_fields(t)
  local copy = {}
  for _, k in ipairs(READ_FIELDS) do copy[k] = rawget(t, k) end
  return copy
end

-- Failures of a request that never reached the API: its name did not resolve, the connection
-- or the TLS handshake failed.
local NOT_SENT_REASONS = { dns = true, connect = true, tls = true }

--- Could the call whose last attempt failed with err have been carried out, wholly or in part?
-- Broader than @{may_have_acted}, which reads one attempt: yes after an earlier attempt without
-- an answer (`earlier_unanswered`), a timeout, a reset, a garbled answer (protocol), a 5xx or
-- anything unknown; no only for what says the service did nothing: a 4xx it answered, a request
-- that never reached it (DNS, connect, TLS, the proxy, or a failure the transport says came
-- before anything was sent: `unsent`), or one the client never sent. A drain's
-- error (`stage`) says which step failed: after its show (a GET) nothing changed; after a remove
-- call its GET told what moved, and only EIPs it lists as `uncertain` may have; its delete reads
-- as any call's. An error of a wait after the delete's 204 (`deleted = true`): yes, it acted.
-- @tparam table err an eip error (a table of the same fields is read raw; anything else, a raw
--   error of a bug, is unknown: yes; nil and false: no)
-- @treturn boolean
function M.could_have_acted(err)
  if err == nil or err == false then return false end
  if type(err) ~= "table" then return true end -- a raw error of a bug: unknown
  -- A table that is no eip error (one decoded from --json, the caller's own) is read raw: its
  -- __index may raise.
  if not M.is_error(err) then err = M.raw_fields(err) end
  -- A wait's error after the delete's 204 (deleted = true): it did act.
  if err.deleted == true then return true end
  local stage = err.stage
  if stage == "show" then return false end
  if stage == "remove" then return type(err.uncertain) == "table" and #err.uncertain > 0 end
  if err.earlier_unanswered then return true end
  -- Nothing of this call was sent (a refused key's copy, a deadline the rate would pass, a cancel
  -- before the first attempt), or nothing after attempts that all were answered (a cancel).
  if err.not_sent or err.cancelled then return false end
  local kind = err.kind
  if kind == "http" then
    return not (type(err.status) == "number" and err.status >= 400 and err.status < 500)
  end
  if kind == "transport" then return not (NOT_SENT_REASONS[err.reason] or err.unsent == true) end
  if kind == "proxy" or kind == "usage" or kind == "not_sent" or kind == "refused" or kind == "credentials" then
    return false
  end
  return true
end

--- Did the answer of a failed attempt come from behind the gateway's check of the credentials?
-- Only an error code of the service (VPC.xxxx, EIP.xxxx) says so: the gateway's own answers
-- (APIGW.*, APIG.*), other codes (a load balancer's {"code":503}, ELB.503) and answers without a
-- code (a 502/503 page, a proxy's) may come before or without that check. A batch probes with
-- one request until such an answer (or a success) comes, and only such an answer resets the
-- count of refused signatures (see eip.auth).
-- @tparam table err an eip error
-- @treturn boolean
function M.credentials_checked(err)
  local code = err.kind == "http" and err.code
  return type(code) == "string" and (code:find("^VPC%.%d") or code:find("^EIP%.%d")) ~= nil
end

--- The EIP service's "no such resource" codes: the only 404s that say something is gone.
M.NOT_FOUND_CODES = { ["VPC.0306"] = "bandwidth", ["VPC.0504"] = "EIP", ["VPC.0003"] = "VPC",
  ["VPC.0012"] = "enterprise project" }

-- Is a 404's body, read for its code, not the one whole error document a "no such resource"
-- must be: more came after its JSON value (`trailing`: which of them is the service's cannot be
-- told), or max_body cut it (what was not read may be more).
local function body_in_doubt(err)
  return err.trailing == true or err.truncated == true
end

--- Does err say that no such bandwidth exists: the EIP service's 404 VPC.0306 (not the gateway's
-- 404, an unknown code, or none), in a body that is that error document whole?
function M.bandwidth_gone(err)
  return err.kind == "http" and err.status == 404 and M.NOT_FOUND_CODES[err.code] == "bandwidth"
    and not body_in_doubt(err)
end

-- A bandwidth id as the cloud makes them: a UUID of lower-case hexadecimal digits (8-4-4-4-12).
-- An upper-cased copy of a live id is not one: whether the service's lookup ignores case is
-- undocumented, and its "does not exist" for it must not read as "already deleted".
local H = "[0-9a-f]"
local UUID = "^" .. H:rep(8) .. "%-" .. H:rep(4) .. "%-" .. H:rep(4) .. "%-" .. H:rep(4) .. "%-" .. H:rep(12) .. "$"

--- Would `missing_ok` take err, of a read or a delete of the bandwidth `id`, as "already gone"
-- (eip.ops' Delete.recover): bandwidth_gone, for an id shaped like the cloud's?
function M.missing(err, id)
  return M.bandwidth_gone(err) and type(id) == "string" and id:find(UUID) ~= nil
end

--- The codes of the API gateway's "no such API" 404 (older and newer gateways).
M.NO_SUCH_API_CODES = { ["APIGW.0101"] = true, ["APIG.0101"] = true }

-- Advice for a 404 that is not the service's "no such resource": whoever answered does not
-- know the path, so the resource may well exist.
local function stray_404_advice(code, truncated, trailing)
  if (truncated or trailing) and M.NOT_FOUND_CODES[code] then
    -- (see body_in_doubt)
    local what = M.NOT_FOUND_CODES[code]
    return "Not known to be a missing " .. what .. ": the answer's body carries " .. code .. " (no such " .. what
      .. ") but " .. (trailing and "more follows its JSON value" or "was cut at the client's max_body")
      .. ", so whether it is the EIP service's error document cannot be told. Read the " .. what .. " (GET); "
      .. "it may still exist. Do not treat this as deleted."
  end
  if truncated and not code then
    -- (its code may have been in the part not read: who sent it cannot be told)
    return "Not known to be a missing bandwidth: the answer's body was cut at the client's max_body before "
      .. "an error code could be read, so whether it is the EIP service's VPC.0306 (no such bandwidth) or "
      .. "another's 404 cannot be told. Raise max_body, or read the bandwidth with show_bandwidth; it may "
      .. "still exist. Do not treat this as deleted."
  end
  local origin
  if M.NO_SUCH_API_CODES[code] then
    origin = "the API gateway has no such API (" .. code .. ")"
  elseif code then
    origin = "the answer carries " .. code .. ", not the EIP service's VPC.0306"
  else
    origin = "the answer has no EIP error body (no VPC.0306), so the EIP service did not send it"
  end
  return "Not a missing bandwidth: " .. origin .. ". The endpoint, its base path (no /v1 or "
    .. "/v2.0: the client adds those), the region or the project id is likely wrong; the "
    .. "bandwidth may still exist. Do not treat this as deleted."
end

-- Said after the status's advice when the answer's code is in the error-code table with other
-- statuses only: the error describes the answer by its status (no code_kind), and names what the
-- code is documented as, so that a reader does not take it for that. With `final` (the row the
-- retry policy reads, entry's own: of the status's class when the code has one, is of a kind no
-- retry fixes), the whole advice: not retried, and as which row.
local function elsewhere_note(entry, status, final)
  local seen, statuses = {}, {}
  for _, v in ipairs(entry.variants or {}) do
    if not seen[v.status] then
      seen[v.status] = true
      statuses[#statuses + 1] = v.status .. " (" .. v.kind .. ")"
    end
  end
  -- (The retry policy reads the code whatever its status: one of a kind no retry fixes is not
  -- retried, which the status's advice, a 500's "retry with backoff", would contradict.)
  if final then
    -- (a 5xx may follow a request that was carried out: said, as the status's advice said it)
    local next_step = status >= 500 and "The request may have been carried out all the same: read the resource "
      .. "(GET) before sending it again." or "Check the request before sending it again."
    return ("Not retried: %s is documented only with %s, not with %d, and the retry policy reads it as its %d "
      .. "(%s), a kind no retry fixes; this answer is described by its status. %s"):format(entry.code,
      table.concat(statuses, ", "), status, entry.status, entry.kind, next_step)
  end
  return ("%s is documented only with %s, not with %d: this answer is described by its status, not as "
    .. "that."):format(entry.code, table.concat(statuses, ", "), status)
end

--- An error from a non-2xx answer. `info` is the status entry from the C table; `body`
-- the decoded error body fields ({code, message, request_id}) or nil; `entry` the error-code
-- table's entry for that code and status (core.error_code: at a status the code is not
-- documented with, its row of the status's class, else its first), or nil. A known code's
-- description, advice and kind say more than the status's. `retryable` is left for the retry
-- policy (eip.retry) to set; `final`: that policy takes the code, as that row, for one no retry
-- fixes, where the status alone would be retried (the advice of a code documented with other
-- statuses only then says it was not retried, instead of the status's advice to retry).
-- The modules of the error-code table whose rows suit an operation best, in order (the table's
-- first row of a code is often another API's: VPC.0301 400 is create EIP's first).
local OP_MODULES = {
  delete_bandwidth = { "show bandwidth", "update bandwidth" },
  show_bandwidth = { "show bandwidth" },
  list_bandwidths = { "list bandwidths" },
  remove_eips_from_bandwidth = { "add or remove EIPs of a shared bandwidth", "update bandwidth" },
  create_bandwidth = { "create shared bandwidth" },
}

-- Text compared loosely: lower case, spaces squeezed, no final period.
local function loose(s)
  return (s:lower():gsub("%s+", " "):gsub("^ ", ""):gsub("[ %.]+$", ""))
end

-- The module of the error-code table that is the operation's own (the delete's page lists no
-- code: it has none, and borrows the show's rows; see OP_MODULES).
local OWN_MODULE = { show_bandwidth = "show bandwidth", list_bandwidths = "list bandwidths",
  remove_eips_from_bandwidth = "add or remove EIPs of a shared bandwidth",
  create_bandwidth = "create shared bandwidth" }

-- An error's description from a code's row: "<module>: <message>", but for a row another API's
-- (an operation of the table's that is not this one: a delete's 404 read "show bandwidth:
-- ...", as if a show had failed), the message and whose row it is. Rows of every call (common,
-- API gateway) are no other API's.
local function described(row, op)
  local module = row.module
  if module == "common" or module == "API gateway" or module == OWN_MODULE[op] then
    return module .. ": " .. row.message
  end
  return row.message .. " (the error-code table's row for " .. module .. ")"
end

--- The row of a code's entry (core.error_code) that describes this answer best: among the rows
-- of its status, those whose message is the server's (when any is), then the one of the
-- operation's module (see OP_MODULES), else "common", else the first. None when the code has
-- no row of that status: what a code means with one status (VPC.0306 with 404: no such
-- bandwidth) is not what it means with another (a 500 carrying it is a failure inside).
-- @tparam table entry core.error_code's entry (with `variants`)
-- @tparam integer status the answer's status
-- @tparam ?string message the server's message
-- @tparam ?string op the operation's name (an eip.ops kind: "delete_bandwidth", ...)
-- @treturn ?table a row: { status, module, message, description_zh, advice, kind, ... }, or nil
function M.code_row(entry, status, message, op)
  local rows = {}
  for _, v in ipairs(entry.variants or {}) do
    if v.status == status then rows[#rows + 1] = v end
  end
  if #rows <= 1 then return rows[1] end
  if type(message) == "string" and message ~= "" then
    local said, same = loose(message), {}
    for _, v in ipairs(rows) do
      if loose(v.message) == said then same[#same + 1] = v end
    end
    if #same == 1 then return same[1] end
    if #same > 1 then rows = same end -- (several modules say the same words: the operation decides)
  end
  local modules = OP_MODULES[op] or {}
  for i = 1, #modules + 1 do
    local want = modules[i] or "common"
    for _, v in ipairs(rows) do
      if v.module == want then return v end
    end
  end
  return rows[1]
end

--- pcall(fn, ...) for a caller's function that may yield to a coroutine scheduler (a transport's
-- send, a sleep: copas and the like). Lua 5.2+ and LuaJIT yield through pcall. PUC Lua 5.1
-- cannot: there fn is called with pcall on the main thread (where nothing can yield: a yield
-- there is an error like any other), and unprotected inside a coroutine, on the caller's own
-- thread, so that a scheduler that resumes the thread it saw (copas and the like) resumes this
-- call, and fn runs once, whole; but with pcall inside `held`, which nothing yields through. The
-- price, on Lua 5.1 inside a coroutine only: what fn raises is not caught (a signing place its
-- call held is then given back when its time is up).
-- What has no reason to yield (a log sink, a cancel, a confirm) is called with pcall.
-- (No coroutine is made to find this out: `require "eip"` runs where nginx forbids making one,
-- in init_worker_by_lua, log_by_lua, the filters.)
-- @treturn boolean ok
-- @return what fn returned, or its error
M.yielding = pcall

--- pcall(fn, ...) for the library's own protection of a step that may call a caller's sleep or
-- transport (a batch, a drain, a wait, a login, a page of a listing). Lua 5.2+ and LuaJIT
-- yield through it: pcall. On PUC Lua 5.1 nothing yields through it either, so inside it
-- `yielding` calls protected too: a sleep or transport that yields there fails as any other
-- that raises (a sleep replaced by the library's own, a transport's send the request's failure)
-- rather than raising "attempt to yield across" past it as a raw error (a batch's results lost).
-- @treturn boolean ok
-- @return what fn returned, or its error
M.held = pcall

if _VERSION == "Lua 5.1" and not rawget(_G, "jit") then
  local running = coroutine.running
  local held_in = setmetatable({}, { __mode = "k" }) -- coroutine -> the `held` calls it is inside
  local function released(co, ...)
    local n = held_in[co] - 1
    held_in[co] = n > 0 and n or nil
    return ...
  end
  M.held = function(fn, ...)
    local co = running()
    if co == nil then return pcall(fn, ...) end
    held_in[co] = (held_in[co] or 0) + 1
    return released(co, pcall(fn, ...))
  end
  M.yielding = function(fn, ...)
    local co = running()
    if co == nil or held_in[co] then return pcall(fn, ...) end
    return true, fn(...)
  end
end

--- Is `e` the interpreter's Ctrl-C: the "interrupted!" that lua's and luajit's own SIGINT handler
-- raises in whatever Lua code runs next (a caller's sleep, say), where eip.core.catch_interrupts
-- is not on? Such a raise is no broken function of the caller's: it is raised on, as it was.
-- @param e what was raised
-- @treturn boolean
function M.interpreter_interrupt(e)
  return type(e) == "string" and e:find("interrupted!$") ~= nil
end

--- fn (an option of the caller's: a cancel, a confirm), called protected: what it raises is not
-- the call's failure (what was sent is still reported as it happened); it is logged (without
-- its text, which may hold anything) and `fallback` stands for its answer.
-- @tparam ?function fn the caller's function (nil: nil)
-- @tparam ?function logger the client's log sink
-- @tparam string name the option's name, for the log
-- @param fallback what a raise answers
-- @treturn ?function
function M.guarded(fn, logger, name, fallback)
  if fn == nil then return nil end
  return function(...)
    local ok, answer = pcall(fn, ...)
    if ok then return answer end
    if M.interpreter_interrupt(answer) then error(answer, 0) end -- (Ctrl-C: see interpreter_interrupt)
    if logger then logger("eip: the " .. name .. " option raised an error, taken as " .. tostring(fallback)) end
    return fallback
  end
end

--- `cancel` (a batch's or a wait's, or nil) with nginx's graceful exit heard too: inside nginx,
-- once the worker is exiting (`nginx -s reload` or `-s quit` began: ngx.worker.exiting), the function
-- returned says "stop" when `cancel` says nothing (and calls `heard`, if given), so that a batch
-- in a timer sends nothing more, lets what is in flight finish, and returns its results (the ids
-- left `not_sent`, stopped "exiting"), and a wait after a delete reads no more, instead of
-- keeping the old worker alive until the last id went or the wait ran out (or until
-- worker_shutdown_timeout kills it mid-request, the results lost). Only what began before the
-- exit: one begun while the worker exits (in exit_worker_by_lua, in a timer nginx runs early,
-- `premature`, at the exit) is the caller's deliberate last work, and goes on. Outside nginx,
-- or with an ngx that cannot tell (no ngx.worker.exiting, or one that raises): `cancel` itself.
function M.with_exit(cancel, heard)
  local ngx = rawget(_G, "ngx")
  local worker = type(ngx) == "table" and ngx.worker
  local exiting = type(worker) == "table" and worker.exiting
  if type(exiting) ~= "function" then return cancel end
  local ok, already = pcall(exiting)
  if not ok or already then return cancel end
  return function()
    local what = cancel and cancel()
    if what then return what end
    local told, yes = pcall(exiting)
    if told and yes then
      if heard then heard() end
      return "stop"
    end
    return nil
  end
end

function M.http(req, resp, info, body, entry, final)
  body = body or {}
  local advice, description = info.advice, info.description
  local known = entry
  entry = entry and M.code_row(entry, resp.status, body.message, req.op_name)
  local doubt = resp.status == 404 and M.NOT_FOUND_CODES[body.code]
    and body_in_doubt{ trailing = body.trailing, truncated = resp.truncated }
  if entry and not doubt then
    advice, description = entry.advice, described(entry, req.op_name)
  elseif resp.status == 404 and (doubt or not M.NOT_FOUND_CODES[body.code]) then
    entry = nil -- (no code_kind: "not_found" is not known)
    advice = stray_404_advice(body.code, resp.truncated, body.trailing)
  elseif known then
    if final then
      advice = elsewhere_note(known, resp.status, true)
    else
      advice = advice .. " " .. elsewhere_note(known, resp.status)
    end
  end
  return new{
    kind = "http",
    status = resp.status,
    reason = info.reason,
    description = description,
    description_zh = entry and entry.description_zh or nil,
    code_kind = entry and entry.kind or nil,
    class = info.class,
    advice = advice,
    code = body.code,
    message = body.message,
    raw_message = body.raw_message,
    encoded_authorization_message = body.encoded_authorization_message,
    details = body.details,
    request_id = resp.request_id or body.request_id,
    retry_after = resp.retry_after,
    date = resp.date,
    truncated = resp.truncated or nil,
    trailing = body.trailing,
    method = req.method,
    path = req.path,
    attempts = req.attempts,
    elapsed = req.elapsed,
  }
end

--- An answer that is 2xx but unusable (e.g. IAM without X-Subject-Token): an "http" error
-- carrying the status, since the server did answer.
-- (class: the status's, as for any http error; advice: what to do with an answer that says
-- neither that the request was carried out nor that it was not, by what the request was)
local UNUSABLE_ADVICE = {
  read = "A read changes nothing: check the endpoint and any proxy in between, and read again later.",
  delete = "The delete may have been carried out (by the server, or not at all by a proxy answering for it): "
    .. "check with show_bandwidth before deleting it again; check the endpoint and any proxy in between.",
  create = "The request may have been carried out (a create makes a bandwidth, and a bill): look before sending "
    .. "it again (list_bandwidths); check the endpoint and any proxy in between.",
  change = "The request may have been carried out: read the bandwidth back (show_bandwidth) before sending it "
    .. "again; check the endpoint and any proxy in between.",
  login = "A login changes nothing: check the IAM endpoint (auth.iam_endpoint, HUAWEICLOUD_SDK_IAM_ENDPOINT) "
    .. "and any proxy in between, which may be answering for IAM.",
  metadata = "Nothing was changed: check the metadata service's URL (metadata_url, EIP_METADATA_URL) and that "
    .. "this runs on an ECS whose agency gives temporary keys.",
}

local function unusable_advice(method, path)
  path = type(path) == "string" and path or ""
  if method == "GET" and not path:find("^/openstack/") then return UNUSABLE_ADVICE.read end
  if method == "DELETE" then return UNUSABLE_ADVICE.delete end
  if path:find("^/v3/auth/tokens") then return UNUSABLE_ADVICE.login end
  if path:find("^/meta%-data/") or path:find("^/openstack/") then return UNUSABLE_ADVICE.metadata end
  if method == "POST" and path:find("/bandwidths$") then return UNUSABLE_ADVICE.create end
  return UNUSABLE_ADVICE.change
end

function M.protocol(resp, method, path, message)
  local info = type(resp.status) == "number" and core.status(resp.status) or nil
  return new{
    kind = "http", status = resp.status, reason = "Unusable Answer", message = message,
    class = info and info.class or nil,
    description = "An answer this client cannot take as the call's result (see message).",
    advice = unusable_advice(method, path),
    request_id = resp.request_id, retryable = false, method = method, path = path, attempts = 1,
    truncated = resp.truncated or nil,
  }
end

-- What a proxy failure was (the `reason` of a "proxy" error), and what to tell about it.
local function proxy_failure(name, resp, detail)
  local status = resp.proxy_status
  if status == 407 then
    return "auth", "proxy authentication required (407 from the proxy " .. name .. "): check the user "
      .. "and password of the proxy setting"
  elseif status then
    return "status", string.format("the proxy %s refused the request with %d (%s)", name, status, detail)
  elseif resp.curl_code == 5 then
    return "dns", "cannot resolve the proxy " .. name .. " (" .. detail .. ")"
  end
  return "connect", "cannot connect to the proxy " .. name .. " (" .. detail .. ")"
end

--- An error when no usable answer came: refused, reset, timeout, DNS, TLS; or a proxy's
-- failure (kind "proxy": see M.proxy). `retryable` is left for the retry policy (eip.retry)
-- to set. A request sent through a proxy names it in `proxy` ("host:port", never credentials).
function M.transport(req, resp, message)
  local proxy = req.proxy and req.proxy.name or nil
  -- The transport contract's kind; a response of the C multi (batches) carries only the code.
  local kind = resp.error_kind or error_kind(resp.curl_code, resp.curl_error, req.proxy, resp.proxy_status)
  if kind == "proxy" then return M.proxy(req, resp, message) end
  return new{
    kind = "transport",
    status = nil,
    reason = kind,
    message = message,
    curl_code = resp.curl_code,
    curl_error = resp.curl_error,
    unsent = resp.unsent == true or nil,
    proxy = proxy,
    method = req.method,
    path = req.path,
    attempts = req.attempts,
    elapsed = req.elapsed,
  }
end

--- The error of a request, or a handle, the C core could not make (memory running out):
-- kind "transport", reason "other", `unsent` (see eip.transport's `unmade`). `req`: the
-- request's `method` and `path` (and `bandwidth_id`), when there was one.
-- @param why what the C core raised or said
-- @tparam[opt] table req
-- @tparam[opt] string what what could not be made, for the message ("the client's libcurl handle")
function M.unmade(why, req, what)
  local resp = transport.unmade(why)
  local e = M.transport(req or {}, resp, what and (what .. ": " .. resp.curl_error) or resp.curl_error)
  if req then e.bandwidth_id = req.bandwidth_id end
  return e
end

--- A proxy's failure, never an answer of the API: kind "proxy", `proxy` ("host:port"),
-- `reason` "auth" (it answered 407), "status" (it answered another non-2xx status to
-- CONNECT), "connect" (refused or unreachable) or "dns" (its name does not resolve), and
-- `proxy_status` when it answered. `retryable` is left for the retry policy (eip.retry).
function M.proxy(req, resp, message)
  local name = req.proxy and req.proxy.name or "?"
  local reason, text = proxy_failure(name, resp, message or resp.curl_error or "?")
  return new{
    kind = "proxy",
    reason = reason,
    proxy = name,
    proxy_status = resp.proxy_status,
    message = text,
    curl_code = resp.curl_code,
    curl_error = resp.curl_error,
    method = req.method,
    path = req.path,
    attempts = req.attempts,
    elapsed = req.elapsed,
  }
end

return M
