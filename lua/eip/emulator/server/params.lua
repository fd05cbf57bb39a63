-- What the EIP API takes for a bandwidth's name and size, in one place: the API's handlers
-- (api.lua) refuse the rest with 400 EIP.7901, and seeding (the control route in control.lua,
-- and the eip-emulator command, eip.emulator.cli) checks with the same functions, so that what
-- is seeded is never what the API itself would refuse. Plain Lua, no ngx: the command loads it
-- outside nginx.
local M = {}

-- Sizes in Mbit/s: a shared bandwidth's, as its create documents ("默认5Mbit/s~2000Mbit/s"),
-- and a dedicated one's (an EIP's own, as remove makes them: from 1).
M.SHARED_MIN, M.DEDICATED_MIN, M.SIZE_MAX = 5, 1, 2000

-- What a valid name is, in words, for the messages that refuse one.
M.NAME_RULE = "1-64 characters: letters, digits, Chinese, '_', '-' or '.'"

-- Is s well-formed UTF-8 (no stray continuation byte, no truncated or overlong sequence, no
-- surrogate, nothing above U+10FFFF)?
function M.valid_utf8(s)
  local i, n = 1, #s
  while i <= n do
    local a = s:byte(i)
    local len, lo, hi
    lo, hi = 0x80, 0xBF
    if a < 0x80 then
      len = 1
    elseif a >= 0xC2 and a <= 0xDF then
      len = 2
    elseif a >= 0xE0 and a <= 0xEF then
      len = 3
      if a == 0xE0 then lo = 0xA0 elseif a == 0xED then hi = 0x9F end
    elseif a >= 0xF0 and a <= 0xF4 then
      len = 4
      if a == 0xF0 then lo = 0x90 elseif a == 0xF4 then hi = 0x8F end
    else
      return false
    end
    for k = 1, len - 1 do
      local b = s:byte(i + k)
      if not b then return false end
      if k == 1 and (b < lo or b > hi) or k > 1 and (b < 0x80 or b > 0xBF) then return false end
    end
    i = i + len
  end
  return true
end

-- Number of UTF-8 characters in s (continuation bytes are not counted).
function M.utf8_len(s)
  local _, continuation = s:gsub("[\128-\191]", "")
  return #s - continuation
end

-- The code point of the well-formed UTF-8 character c.
local function code_point(c)
  local a = c:byte(1)
  if #c == 1 then return a end
  local cp = a % (2 ^ (7 - #c))
  for k = 2, #c do cp = cp * 64 + c:byte(k) % 64 end
  return cp
end

-- Chinese, as the docs' "中文": the CJK Unified Ideographs and their Extension A.
local function chinese(cp)
  return (cp >= 0x4E00 and cp <= 0x9FFF) or (cp >= 0x3400 and cp <= 0x4DBF)
end

-- Documented: 1-64 characters of digits, letters, Chinese, "_", "-", ".".
function M.valid_name(name)
  if type(name) ~= "string" or not M.valid_utf8(name) then return false end
  local n = 0
  for c in name:gmatch("[%z\1-\127\194-\244][\128-\191]*") do
    n = n + 1
    if #c == 1 then
      if not c:find("^[%w_%-%.]$") then return false end
    elseif not chinese(code_point(c)) then
      return false
    end
  end
  return n >= 1 and n <= 64
end

-- A size as the API takes it, at least `min`: documented, a decimal (10.2) or a string ("10")
-- is coerced to an integer. Returns the integer, or nil when it is no size or out of range.
function M.coerce_size(size, min)
  -- (a number, or a string of decimal digits: not "0x10", which tonumber reads as 16)
  local n = (type(size) == "number" or (type(size) == "string" and size:find("^%s*%d+%.?%d*%s*$")))
    and tonumber(size)
  if not n or n ~= n then
    return nil
  end
  n = math.floor(n)
  if n < min or n > M.SIZE_MAX then
    return nil
  end
  return n
end

return M
