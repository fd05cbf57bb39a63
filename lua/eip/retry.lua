--- The retry policy: the one place that decides whether a failure is worth another attempt,
-- how long to wait first, and when credentials are refreshed instead.
--
-- Facts come from elsewhere (the status table in C says what a status means, eip.errors says
-- what kind of failure a transport reported); the decisions are all here:
--
--  * retryable statuses (408, 429, and 5xx but 501 and 505: gateways invent codes such as
--    520-524 for transient upstream faults), and the error-code table's verdict on a code:
--    transient ones (VPC.0004, 409 VPC.0512) are retried, wrong-input ones never;
--  * retryable transport failure kinds (connect, reset, timeout; never dns or tls: they fail
--    the same way next time);
--  * proxy failures: a proxy that refuses connections or cannot be reached is a connect
--    failure (retried: nothing reached the API, and proxies restart or sit behind a pool), so
--    is one that answers CONNECT with 502, 503 or 504 (it could not reach the endpoint, or is
--    overloaded); its 407 never is (and stops a batch: proxies often check directory
--    accounts, which lock after repeated failures), nor any other refusal or an unresolvable
--    proxy name;
--  * the 401/403 veto: never repeated as such, since Huawei Cloud locks an AK/SK pair after
--    5 failed signatures in a row;
--  * Retry-After (seconds or HTTP-date), capped; a throttling answer without it (429, or
--    APIGW.0308 whatever its status: see throttled) waits 2-5 s, as Huawei advises, or the
--    window of a limit it states when longer (window_wait), within the time the call has left;
--    otherwise exponential backoff with full jitter;
--  * the once-only credential refresh: a 401 answered to an IAM token makes one new token and
--    one more attempt, outside the attempt budget.
--
-- Pure functions over error tables and numbers: the caller owns the clock, the sleep and the
-- credentials. @module eip.retry
local time = require "eip.time"

local M = {}

--- Defaults of the client options of the same names.
M.DEFAULTS = {
  max_attempts = 3,
  backoff_base = 0.5,     -- seconds: the first retry waits up to this (full jitter)
  backoff_cap = 8,        -- seconds: no computed backoff waits longer
  retry_after_cap = 30,   -- seconds: a longer Retry-After is not waited for; the error is raised
  throttle_min = 2,       -- seconds: throttling without Retry-After waits 2-5 s, as Huawei advises
                          -- (or a stated limit's longer window: window_wait)
  throttle_max = 5,
}

--- Statuses below 500 worth another attempt: the request was not processed, or may succeed later.
M.STATUSES = { [408] = true, [429] = true }
--- Server errors that are not: the same request will fail the same way.
M.FINAL_SERVER_ERRORS = { [501] = true, [505] = true }

-- The error-code table (src/codes.c): a code the table marks transient ("try again later":
-- VPC.0004, VPC.0512, APIGW.0308) is retried whatever its status; one whose kind says the same
-- request can never succeed is never retried, whatever its status. At a status the code is not
-- documented with, its row of the same class (4xx, 5xx) is read, else its first: a 503 VPC.0514
-- is its 500 (backend: retried), not its first row, the 409 (quota).
local error_code = require("eip.core").error_code

--- Kinds of error codes (see the error-code table) that no retry can fix.
M.FINAL_CODE_KINDS = { invalid_input = true, config = true, auth = true, permission = true, not_found = true,
  conflict = true, quota = true }

--- Transport failure kinds worth another attempt (the request may never have arrived, and a
-- delete is idempotent anyway).
M.TRANSPORT_KINDS = { connect = true, reset = true, timeout = true }

--- Proxy failure reasons (eip.errors.proxy) worth another attempt.
M.PROXY_REASONS = { connect = true }
--- A proxy's answers to CONNECT worth another attempt: it could not reach the endpoint, or is
-- overloaded.
M.PROXY_STATUSES = { [502] = true, [503] = true, [504] = true }

--- Statuses that are never retried as such, whatever else the answer says.
M.AUTH_STATUSES = { [401] = true, [403] = true }

--- 403 codes that mean "these credentials may do nothing here" (EIP's; the gateway's are
-- APIGW.0301-0307 / APIG.0301-0307): an invalid token, an account frozen or in arrears
-- (VPC.2701), or restricted (VPC.0502: op_restricted, for the same reasons). A
-- fine-grained policy's refusals (VPC.0010, VPC.2201) are not among them: a policy may deny one
-- resource and allow the next (an enterprise project's permissions), and a 403 locks no key, so
-- they fail their own call only.
M.DENIED_CODES = { ["VPC.0008"] = true, ["VPC.2701"] = true, ["VPC.0502"] = true }

-- The IAM token request's path: its 4xx is a refused login.
local IAM_PATH = require("eip.ops").IAM_PATH

local function gateway_auth_code(code)
  return code:find("^APIGW%.030[1-7]$") ~= nil or code:find("^APIG%.030[1-7]$") ~= nil
end

--- The gateway's code of a signature (or token) it refused, under both prefixes (src/codes.c): a
-- refusal at any status (a 403, a 400 of a gateway in front of it), counted as one by eip.auth.
M.REFUSED_SIGNATURE = { ["APIGW.0301"] = true, ["APIG.0301"] = true }

--- Is err a definite authentication or authorisation failure: a 401, the gateway's refused
-- signature at any status (REFUSED_SIGNATURE), a 403 with a gateway or
-- account code (DENIED_CODES), a refused IAM login (not IAM's 408 or 429), no credentials found at all, or the
-- proxy's 407? After one, a batch starts no new request (Huawei Cloud locks an AK/SK pair after
-- 5 failed signatures in a row, proxies may lock the account they check, and every other id
-- would fail alike).
function M.halts(err)
  if type(err) ~= "table" then return false end
  if err.kind == "usage" and err.argument == "credentials" then return true end -- none anywhere
  if err.kind == "proxy" then return err.reason == "auth" end -- proxy credentials refused
  if err.kind ~= "http" then return false end
  local status, code = err.status, err.code
  -- (a table shaped like no eip error, handed to eip.is_auth_failure, raises nothing here)
  if type(status) ~= "number" then return false end
  if status == 401 or M.REFUSED_SIGNATURE[code] then return true end
  -- IAM's 4xx but throttling (429) and a request timeout (408): those may pass (eip.auth holds
  -- them a few seconds), and say nothing of the credentials.
  if err.path == IAM_PATH and status >= 400 and status < 500 then return not M.STATUSES[status] end
  if status == 403 and type(code) == "string" then return M.DENIED_CODES[code] == true or gateway_auth_code(code) end
  return false
end

--- Is a status, by itself, worth another attempt? (The `retryable` of eip.status entries.)
function M.status_retryable(status)
  if status >= 500 and status <= 599 then return not M.FINAL_SERVER_ERRORS[status] end
  return M.STATUSES[status] == true
end

--- Is this eip error worth another attempt?
function M.retryable(err)
  if type(err) ~= "table" then return false end
  if err.kind == "transport" then return M.TRANSPORT_KINDS[err.reason] == true end
  if err.kind == "proxy" then
    if err.reason == "status" then return M.PROXY_STATUSES[err.proxy_status] == true end
    return M.PROXY_REASONS[err.reason] == true
  end
  if err.kind ~= "http" then return false end
  if M.AUTH_STATUSES[err.status] then return false end
  local entry = err.code and error_code(err.code, err.status)
  if entry then
    if entry.transient then return true end
    if M.FINAL_CODE_KINDS[entry.kind] then return false end
  end
  return M.status_retryable(err.status)
end

--- Did the server throttle (429, or a code the error-code table calls throttled)? Batches
-- slow down on it (eip.batch).
function M.throttled(err)
  if type(err) ~= "table" or err.kind ~= "http" then return false end
  if err.status == 429 then return true end
  local entry = err.code and error_code(err.code, err.status)
  return entry ~= nil and (entry.kind == "throttled" or (entry.kind == "busy" and err.status == 503))
end

--- The limit a throttling answer states ("policy user over ratelimit,limit:100,time:1 second"):
-- requests per second (positive, finite), or nil (none, or one that allows nothing: "limit:0");
-- and the window it is counted in, in seconds (1 there; 60 for "time:1 minute").
function M.stated_limit(err)
  local n, per, unit = tostring(err.message or ""):match("limit:%s*(%d+)%s*,%s*time:%s*(%d+)%s*(%a+)")
  n, per = tonumber(n), tonumber(per)
  if not n or not per or n < 1 or per < 1 or n == math.huge or per == math.huge then return nil end
  local seconds = ({ second = 1, seconds = 1, minute = 60, minutes = 60, hour = 3600, hours = 3600, day = 86400,
    days = 86400 })[unit:lower()]
  if not seconds then return nil end
  return n / (per * seconds), per * seconds
end

-- Seconds to wait for one Retry-After value (no blanks around it), or nil (see
-- parse_retry_after).
local function one_retry_after(v, now)
  if v:find("^%d+$") then
    local n = tonumber(v) -- a float, or inf, for more digits than an integer holds
    return n <= 1e9 and n or math.huge
  end
  local t = time.parse_http_date(v, now)
  if not t then return nil end
  return math.max(0, t - now)
end

-- The HTTP-date forms with a comma of their own (after the day's name), at the start of a value.
local DATES_WITH_COMMA = { "^%a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT%s*",
  "^%a+, %d%d%-%a%a%a%-%d%d %d%d:%d%d:%d%d GMT%s*" }

--- Seconds to wait from a Retry-After value: delta-seconds ("120") or an HTTP-date
-- ("Wed, 21 Oct 2015 07:28:00 GMT", or its obsolete RFC 850 and asctime forms: see
-- eip.time.parse_http_date), relative to the answer's `Date` when it is an HTTP-date too (the
-- server's clock: RFC 9110 10.2.3 and 6.6.1; against the local clock, one ahead of the server's
-- retried at once, one behind it waited too long), else to `now`. Repeated headers come joined
-- ("60, 1": the transports keep every value): the longest wait among the usable values (a
-- server that says two things is kept waiting for the longer; the last alone sent again after
-- 1 s, within the 60 it had asked for, and none at all would be the shorter backoff).
-- @param v the header's value
-- @tparam number now Unix seconds
-- @param[opt] date the answer's `Date` header (the error's `date`): nil, or anything that is no
--   HTTP-date, reads a date in v against `now`
-- @treturn ?number seconds; `math.huge` for delta-seconds of more than 10^9 (however many
--   digits: over every `retry_after_cap`, so the error is raised at once, not retried sooner
--   than the server asked), and for a value cut short ("..."); nil when unusable (absent,
--   negative, fractional, neither form)
function M.parse_retry_after(v, now, date)
  if type(v) ~= "string" then return nil end
  -- (the answer's clock is read only for a value that may hold a date: delta-seconds have no letter)
  if date ~= nil and v:find("%a") then now = time.parse_http_date(date, now) or now end
  -- Cut short by the transports' bound (255 bytes, then "..."): the longest value may be the one
  -- lost (85 "1"s, then 3600), and a shorter wait than the server asked sends too soon. Taken
  -- as longer than any cap: not waited for, a batch starts nothing more.
  if v:find("%.%.%.%s*$") then return math.huge end
  local longest, at, n = nil, 1, #v
  while at <= n do
    local s = v:find("[^%s,]", at)
    if not s then break end
    -- A value ends at the next comma, but for the one inside a date of the forms that have it.
    local e
    for _, form in ipairs(DATES_WITH_COMMA) do
      local _, de = v:find(form, s)
      if de and (de == n or v:sub(de + 1, de + 1) == ",") then
        e = de
        break
      end
    end
    e = e or ((v:find(",", s, true) or n + 1) - 1)
    at = e + 1
    -- (blanks after it dropped one by one: a pattern's "%s*$" after a lazy match takes time
    -- quadratic in their number)
    while e > s and v:find("^%s", e) do e = e - 1 end
    local wait = one_retry_after(v:sub(s, e), now)
    if wait and (not longest or wait > longest) then longest = wait end
  end
  return longest
end

--- Does a throttling answer say not to come back within `cap` seconds: a Retry-After longer than
-- that, or a stated limit of one request per more than that (and per more than the second the
-- gateway counts in)? Then nothing should be sent again soon: a batch starts nothing more, a
-- wait reads no more (every request would be throttled again, and each counts against the limit).
-- @tparam table err the eip error
-- @tparam number cap seconds (the client's `retry_after_cap`)
-- @tparam number now Unix seconds (for an HTTP-date Retry-After without the answer's `date`)
-- @treturn boolean
function M.throttled_beyond(err, cap, now)
  if not M.throttled(err) then return false end
  local ra = M.parse_retry_after(err.retry_after, now, err.date)
  if ra and ra > cap then return true end
  local stated = M.stated_limit(err)
  return stated ~= nil and 1 / stated > math.max(cap, 1)
end

--- Does a server error worth another attempt (a 5xx but 501 and 505, not throttling: see
-- @{throttled_beyond}) ask not to come back within `cap` seconds, by a longer Retry-After?
-- RFC 9110 (10.2.3): a 503's Retry-After is how long the service expects to be unavailable, and
-- a 500's or 502's says the same of whatever answered. Then, as after such throttling, nothing
-- should be sent again soon: a batch starts nothing more, a wait reads no more (each request
-- would meet the same outage, and a delete answered with a 5xx may still have been carried out:
-- one more id to check by hand). A 5xx that is never retried (a 501, a code that no retry can
-- fix) says nothing of the service's state: it fails its own call only.
-- @tparam table err the eip error
-- @tparam number cap seconds (the client's `retry_after_cap`)
-- @tparam number now Unix seconds (for an HTTP-date Retry-After without the answer's `date`)
-- @treturn boolean
function M.unavailable_beyond(err, cap, now)
  if type(err) ~= "table" or err.kind ~= "http" or type(err.status) ~= "number" then return false end
  if err.status < 500 or err.status > 599 or M.throttled(err) or not M.retryable(err) then return false end
  local ra = M.parse_retry_after(err.retry_after, now, err.date)
  return ra ~= nil and ra > cap
end

--- Why err says to send nothing more soon, as the `stopped` of a batch it stops: "throttled"
-- (its `throttled_beyond`), "unavailable" (its `unavailable_beyond`), or nil.
-- @param err an eip error, or anything
-- @treturn ?string
function M.not_soon(err)
  if type(err) ~= "table" then return nil end
  if err.throttled_beyond then return "throttled" end
  if err.unavailable_beyond then return "unavailable" end
  return nil
end

--- Seconds a throttling answer without Retry-After asks not to come back within, beyond the
-- pause Huawei advises (the policy's throttle_min to throttle_max, 2-5 s): the window of the
-- limit it states when that is longer ("limit:600,time:1 minute": what the limit allowed in the
-- window is used up, and a request within it is refused again, and counted against it), at
-- most retry_after_cap (the longest wait a Retry-After may ask for), and less than `left`;
-- else nil, and the advised pause it is. (The window says how long the limit counts over, not
-- when it began: a request after the advised pause may find the budget back. So a call that
-- has not the window's time left, a deadline's, a wait's, tries again after that pause rather
-- than not at all.)
-- @tparam table err the eip error (throttling)
-- @tparam table policy the DEFAULTS fields, as configured
-- @tparam[opt] number left seconds the call has left for the wait and its next attempt (nil: no bound)
-- @treturn ?number seconds
function M.window_wait(err, policy, left)
  local _, window = M.stated_limit(err)
  local wait = window and math.min(window, policy.retry_after_cap)
  if wait and wait > policy.throttle_max and (left == nil or wait < left) then return wait end
  return nil
end

--- Seconds to wait before the attempt after `err`, which was attempt number `attempt`
-- (refreshes not counted), or nil when err is final.
-- @tparam table err the eip error (its `retryable` already set by @{retryable})
-- @tparam number attempt attempts made so far, the credential refresh not counted
-- @tparam table policy the DEFAULTS fields, as configured
-- @tparam number now Unix seconds (for HTTP-date Retry-After values without the answer's `date`)
-- @tparam function random `function(a, b)` -> a uniform number in [a, b]
-- @tparam[opt] number left seconds the call has left (its deadline's) for the wait and the next
--   attempt; nil: no bound
-- @treturn ?number seconds to wait, or nil
function M.delay(err, attempt, policy, now, random, left)
  if attempt >= policy.max_attempts or not err.retryable then return nil end
  -- Asked not to come back within retry_after_cap (a longer Retry-After, or a stated limit of one
  -- request per longer than that, whatever short Retry-After came with it): not waited for.
  if M.throttled_beyond(err, policy.retry_after_cap, now) then return nil end
  local ra = M.parse_retry_after(err.retry_after, now, err.date)
  if ra then
    if ra > policy.retry_after_cap then return nil end -- the server asks for more than we may wait
    return ra
  end
  -- Throttling by what the answer says, not its status alone: the gateway's APIGW.0308 behind a
  -- 503 is the same limit, and a retry within a second counts against it again.
  if M.throttled(err) then
    -- (a stated window's wait jittered as the advised pause is, below its end: calls throttled
    -- together do not all come back at one instant)
    local wait = M.window_wait(err, policy, left)
    if wait then
      return random(math.max(policy.throttle_min, wait - (policy.throttle_max - policy.throttle_min)), wait)
    end
    return random(policy.throttle_min, policy.throttle_max)
  end
  -- Exponential backoff with full jitter: spreads clients that failed together.
  local ceiling = math.min(policy.backoff_cap, policy.backoff_base * 2 ^ (attempt - 1))
  return random(0, ceiling)
end

--- What to do after a failed attempt.
-- @tparam table err the eip error
-- @tparam table state `{ attempts, refreshed, can_refresh, credentials_changed, left }`: attempts
--   made (including a refreshed one), whether this call already had its credential refresh,
--   whether its credentials can be refreshed (an IAM token), whether they changed since
--   this attempt was authenticated (another call refreshed them meanwhile), and the seconds
--   its deadline leaves for a wait and the next attempt (nil: none)
-- @tparam table policy as for @{delay}
-- @tparam number now Unix seconds
-- @tparam function random as for @{delay}
-- @treturn ?string "refresh" (get new credentials, then try again at once), "again" (try again
--   at once with the credentials as they are now), "wait" (after the returned seconds), or nil:
--   err is final
-- @treturn ?number seconds to wait, with "wait"
function M.decide(err, state, policy, now, random)
  -- A 401 whose code says new credentials cannot help (VPC.0009: real-name authentication)
  -- gets no refresh.
  if err.status == 401 and not state.refreshed and err.code_kind ~= "permission" then
    if state.credentials_changed then return "again" end
    if state.can_refresh then return "refresh" end
  end
  local delay = M.delay(err, state.attempts - (state.refreshed and 1 or 0), policy, now, random, state.left)
  if delay then return "wait", delay end
  return nil
end

return M
