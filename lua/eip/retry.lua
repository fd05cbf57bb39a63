--- The retry policy: which failures are worth another attempt, and how long to wait first.
-- Pure functions over error tables and numbers, so the single call, batches and OpenResty
-- share them; the caller owns the clock and the sleep.
local time = require "eip.time"

local M = {}

M.DEFAULTS = {
  max_attempts = 3,
  backoff_base = 0.5,     -- seconds: the first retry waits up to this (full jitter)
  backoff_cap = 8,        -- seconds: no computed backoff waits longer
  retry_after_cap = 30,   -- seconds: a longer Retry-After is not waited for; the error is raised
  throttle_min = 2,       -- seconds: a 429 without Retry-After waits 2-5 s, as Huawei advises
  throttle_max = 5,
}

-- Error codes that make a non-retryable status worth retrying: "resource busy, try again".
M.RETRYABLE_CODES = { ["VPC.0512"] = true }

--- Is this eip error worth another attempt? Transport errors by their reason (refused,
-- reset, timeout; never DNS or TLS), http errors by the status table (408, 429, 500, 502,
-- 503, 504) or a busy code. Never 401: repeated bad signatures lock an AK/SK pair.
function M.retryable(err)
  if type(err) ~= "table" then return false end
  if err.kind == "transport" then return err.retryable == true end
  if err.kind ~= "http" then return false end
  if err.status == 401 or err.status == 403 then return false end
  if err.code and M.RETRYABLE_CODES[err.code] then return true end
  return err.retryable == true
end

--- Seconds to wait from a Retry-After value: delta-seconds ("120") or an HTTP-date
-- ("Wed, 21 Oct 2015 07:28:00 GMT"), relative to `now` (Unix seconds). nil when unusable.
function M.parse_retry_after(v, now)
  if type(v) ~= "string" then return nil end
  v = v:match("^%s*(.-)%s*$")
  if v:find("^%d+$") then
    local n = tonumber(v)
    return n <= 1e9 and n or nil
  end
  local t = time.parse_http_date(v)
  if not t then return nil end
  return math.max(0, t - now)
end

--- Seconds to wait before attempt `attempt + 1` after `err`, or nil to stop.
-- policy: the DEFAULTS fields; random: function(a, b) -> uniform number in [a, b].
function M.delay(err, attempt, policy, now, random)
  if attempt >= policy.max_attempts or not M.retryable(err) then return nil end
  local ra = M.parse_retry_after(err.retry_after, now)
  if ra then
    if ra > policy.retry_after_cap then return nil end -- the server asks for more than we may wait
    return ra
  end
  if err.status == 429 then
    return random(policy.throttle_min, policy.throttle_max)
  end
  -- Exponential backoff with full jitter: spreads clients that failed together.
  local ceiling = math.min(policy.backoff_cap, policy.backoff_base * 2 ^ (attempt - 1))
  return random(0, ceiling)
end

return M
