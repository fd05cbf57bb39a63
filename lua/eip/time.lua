--- Calendar arithmetic for the timestamps the API sends (IAM expiry, Retry-After dates),
-- independent of the local time zone and of os.time's interpretation of tables.
-- Works in Lua 5.1 (LuaJIT) too: no integer division operator.
local M = {}

local floor = math.floor

--- Days since 1970-01-01 of a proleptic Gregorian date.
function M.days_from_civil(y, m, d)
  y = m <= 2 and y - 1 or y
  local era = floor((y >= 0 and y or y - 399) / 400)
  local yoe = y - era * 400
  local doy = floor((153 * (m + (m > 2 and -3 or 9)) + 2) / 5) + d - 1
  return era * 146097 + yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy - 719468
end

local function epoch(y, mo, d, h, mi, s)
  return M.days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s
end

local MONTH_DAYS = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }

local function leap(y)
  return y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0)
end

-- Unix seconds of a date whose fields (numbers) are in range (a 31 November or a 24:00 is garbage,
-- not a day later), or nil. Seconds up to 60: a leap second.
local function in_range(y, m, d, h, mi, sec)
  if m < 1 or m > 12 or d < 1 or h > 23 or mi > 59 or sec > 60 then return nil end
  if d > MONTH_DAYS[m] + ((m == 2 and leap(y)) and 1 or 0) then return nil end
  return epoch(y, m, d, h, mi, sec)
end

--- Unix seconds of an ISO 8601 time such as 2026-11-25T08:00:00.000000Z (fractions dropped),
-- with `Z` or a UTC offset (`+08:00`, `-0500`); nil if unparsable, a field out of range (a month
-- 13, an hour 24: a garbled expiry is unknown, not a date months away), and without a zone (a
-- local time of some unknown place: eight hours off read as UTC, keys used past their expiry).
function M.parse_iso8601(s)
  if type(s) ~= "string" then return nil end
  local y, mo, d, h, mi, sec, zone = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)T(%d%d):(%d%d):(%d%d)(.*)$")
  if not y then return nil end
  zone = zone:gsub("^%.%d+", "", 1) -- (a fraction: dropped; digits without the dot are no time)
  local offset = 0
  if zone ~= "Z" and zone ~= "z" then
    local sign, oh, om = zone:match("^([+-])(%d%d):?(%d%d)$")
    if not sign or tonumber(oh) > 23 or tonumber(om) > 59 then return nil end
    offset = (tonumber(oh) * 3600 + tonumber(om) * 60) * (sign == "-" and -1 or 1)
  end
  local t = in_range(tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi), tonumber(sec))
  return t and t - offset
end

local MONTHS = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6, Jul = 7, Aug = 8, Sep = 9,
  Oct = 10, Nov = 11, Dec = 12 }
local DAY_NAMES = { Monday = true, Tuesday = true, Wednesday = true, Thursday = true, Friday = true,
  Saturday = true, Sunday = true }
-- Unix seconds of a date with a month's name whose fields are in range (see in_range), or nil.
local function checked(y, mon, d, h, mi, sec)
  local m = MONTHS[mon]
  d = tonumber(d)
  if not m or not d then return nil end
  return in_range(tonumber(y), m, d, tonumber(h), tonumber(mi), tonumber(sec))
end

--- Unix seconds of an HTTP-date, in any of the three forms a recipient must accept (RFC 9110
-- 5.6.7): IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), the obsolete RFC 850 form ("Sunday,
-- 06-Nov-94 08:49:37 GMT") and asctime's ("Sun Nov  6 08:49:37 1994", always GMT). An RFC 850
-- two-digit year is of the century that puts the date at most 50 years after `now` (one that
-- would be further ahead is the past century's, as RFC 9110 says).
-- @tparam string s the date
-- @tparam[opt] number now Unix seconds, for an RFC 850 year (default: `os.time()`)
-- @treturn ?number Unix seconds; nil when s is in none of the three forms, or a field is out of
--   range
function M.parse_http_date(s, now)
  if type(s) ~= "string" or #s > 40 then return nil end -- (the longest form has 37 characters)
  local d, mon, y, h, mi, sec = s:match("^%a%a%a, (%d%d) (%a%a%a) (%d%d%d%d) (%d%d):(%d%d):(%d%d) GMT$")
  if d then return checked(y, mon, d, h, mi, sec) end
  mon, d, h, mi, sec, y = s:match("^%a%a%a (%a%a%a) ([ %d]%d) (%d%d):(%d%d):(%d%d) (%d%d%d%d)$")
  if mon then return checked(y, mon, d, h, mi, sec) end
  local day
  day, d, mon, y, h, mi, sec = s:match("^(%a+), (%d%d)%-(%a%a%a)%-(%d%d) (%d%d):(%d%d):(%d%d) GMT$")
  if not day or not DAY_NAMES[day] then return nil end
  local today = os.date("!*t", floor(now or os.time())) -- (5.3+: a float has no integer form)
  local century = today.year - today.year % 100
  local t = checked(century + tonumber(y), mon, d, h, mi, sec)
  -- "Appears to be more than 50 years in the future": past the same instant 50 years on.
  if t and t > epoch(today.year + 50, today.month, today.day, today.hour, today.min, today.sec) then
    t = checked(century - 100 + tonumber(y), mon, d, h, mi, sec)
  end
  return t
end

return M
