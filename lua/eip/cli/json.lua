--- The JSON encoder of the `eip` command: one value per line, keys sorted so that lines are
-- stable and diffable (what the commands print with `--json`).
--
-- Lists stay lists when empty: cjson 2.1.0 (Debian) decodes `[]` as an empty object, so the
-- fields the API documents as arrays are named here and written as `[]`. Numbers are written
-- as Lua 5.3+ integers, whole numbers below 2^53 with every digit (cjson decodes the API's
-- integers as floats), others with 14 significant digits where those read back as the same
-- number (0.1, not 0.1000000000000000055), else 17; NaN and infinities as `null`. Strings are always valid UTF-8: each
-- byte of a string (a server's text) that is no part of a well-formed UTF-8 sequence is written
-- `\ufffd`, the replacement character; well-formed sequences pass unchanged, but for the C1
-- controls and the invisible characters the table and text formats blank (a bidi override, a
-- zero-width space: eip.core's control characters), which are escaped as the C0 controls are.
-- @module eip.cli.json
local core = require "eip.core"
local validate = require "eip.validate"

local M = {}

-- Fields that are arrays even when empty.
local ARRAY_KEYS = { publicip_info = true, bandwidth_rules = true, moved = true, not_moved = true,
  uncertain = true, removed = true }

local ESCAPES = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }

-- Absent before Lua 5.3 (LuaJIT, 5.1), where every number is a float.
local math_type = math.type -- luacheck: ignore 143

-- The length (2 to 4) of the well-formed UTF-8 sequence that starts at byte `i` of `s`, or nil
-- (Unicode table 3-7: no overlong form, no surrogate, nothing above U+10FFFF).
local function sequence_at(s, i)
  local a, b, c, d = s:byte(i, i + 3)
  if a >= 0xC2 and a <= 0xDF then
    if b and b >= 0x80 and b <= 0xBF then return 2 end
    return nil
  end
  local lo, hi = 0x80, 0xBF -- the range of the second byte
  if a >= 0xE0 and a <= 0xEF then
    if a == 0xE0 then lo = 0xA0 elseif a == 0xED then hi = 0x9F end
    if b and b >= lo and b <= hi and c and c >= 0x80 and c <= 0xBF then return 3 end
    return nil
  end
  if a >= 0xF0 and a <= 0xF4 then
    if a == 0xF0 then lo = 0x90 elseif a == 0xF4 then hi = 0x8F end
    if b and b >= lo and b <= hi and c and c >= 0x80 and c <= 0xBF and d and d >= 0x80 and d <= 0xBF then
      return 4
    end
  end
  return nil
end

-- The JSON escape of the well-formed sequence of `size` bytes at `i` of `s`: `\uXXXX`, or a
-- surrogate pair above U+FFFF.
local function escaped(s, i, size)
  local cp = s:byte(i) % (size == 2 and 0x20 or size == 3 and 0x10 or 0x08)
  for k = i + 1, i + size - 1 do cp = cp * 64 + s:byte(k) % 64 end
  if cp < 0x10000 then return string.format("\\u%04x", cp) end
  cp = cp - 0x10000
  return string.format("\\u%04x\\u%04x", 0xD800 + math.floor(cp / 1024), 0xDC00 + cp % 1024)
end

-- `s` with each byte that is no part of a well-formed UTF-8 sequence written `\ufffd` (U+FFFD):
-- a strict reader (Python's json) rejects a whole output for one such byte of a server's text.
-- The C1 controls (U+0080-U+009F: CSI, U+009B, starts a terminal's escape sequence as ESC [
-- does) are escaped as the C0 ones are: the same string, decoded; so are the invisible
-- characters (a bidi override reorders what a terminal shows: core.escape_controls finds them).
local function valid_utf8(s)
  local i = s:find("[\128-\255]")
  if not i then return s end -- all ASCII: the common case
  local parts, start = {}, 1
  local controls = core.escape_controls(s) ~= s -- (else no sequence needs a look: CJK text)
  while i do
    local size = sequence_at(s, i)
    local char = size and controls and s:sub(i, i + size - 1)
    if char and core.escape_controls(char) ~= char then
      parts[#parts + 1] = s:sub(start, i - 1)
      parts[#parts + 1] = escaped(s, i, size)
      i = i + size
      start = i
    elseif size then
      i = i + size
    else
      parts[#parts + 1] = s:sub(start, i - 1)
      parts[#parts + 1] = "\\ufffd"
      i = i + 1
      start = i
    end
    i = s:find("[\128-\255]", i)
  end
  if start == 1 then return s end
  parts[#parts + 1] = s:sub(start)
  return table.concat(parts)
end

-- A string as JSON: the registered secrets' pieces redacted first (validate.scrub_pieces: done
-- on the escaped text, a piece could end inside an escape and leave it broken), then quotes,
-- backslashes and control characters escaped, valid UTF-8.
local function encode_string(s)
  s = validate.scrub_pieces(s)
  return '"' .. valid_utf8((s:gsub('[%c"\\]', function(c)
    return ESCAPES[c] or string.format("\\u%04x", c:byte())
  end))) .. '"'
end

local function encode_number(v)
  if v ~= v or v == math.huge or v == -math.huge then return "null" end
  if math_type and math_type(v) == "integer" then return tostring(v) end
  -- (cjson decodes the API's integers as floats: written whole, every digit, up to 2^53)
  if v == math.floor(v) and v > -2 ^ 53 and v < 2 ^ 53 then return string.format("%.0f", v) end
  local short = string.format("%.14g", v)
  if tonumber(short) == v then return short end
  return string.format("%.17g", v) -- (the shortest form would lose the value: every digit)
end

local function encode(v, as_array)
  local t = type(v)
  if t == "string" then return encode_string(v) end
  if t == "boolean" then return tostring(v) end
  if t == "number" then return encode_number(v) end
  if t ~= "table" then return "null" end
  -- (a field that is a list, empty: `[]`, not `{}`; such a field holding an object is written as
  -- the object it is, not as an empty list; an empty object, decoded as the same table as an
  -- empty list, is written `[]`)
  if #v > 0 or (as_array and next(v) == nil) then
    local parts = {}
    for i = 1, #v do parts[i] = encode(v[i]) end
    return "[" .. table.concat(parts, ",") .. "]"
  end
  local keys = {}
  for k in pairs(v) do
    if type(k) == "string" then keys[#keys + 1] = k end
  end
  table.sort(keys)
  local parts = {}
  for i, k in ipairs(keys) do parts[i] = encode_string(k) .. ":" .. encode(v[k], ARRAY_KEYS[k]) end
  return "{" .. table.concat(parts, ",") .. "}"
end

--- Encode a value as one line of JSON.
-- Tables with a non-empty sequence part are arrays; others are objects of their string keys
-- (other keys are dropped). Functions, userdata and nil are `null`. Each byte of a string that
-- is no part of a well-formed UTF-8 sequence is written `\ufffd` (U+FFFD).
-- @param v the value: table, string, number, boolean or nil
-- @treturn string the JSON text, without a newline
function M.encode(v)
  return encode(v)
end

return M
