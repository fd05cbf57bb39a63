--- The JSON encoder of the `eip` command: one value per line, keys sorted so that lines are
-- stable and diffable (what the commands print with `--json`).
--
-- Lists stay lists when empty: cjson 2.1.0 (Debian) decodes `[]` as an empty object, so the
-- fields the API documents as arrays are named here and written as `[]`. Numbers are written
-- as Lua 5.3+ integers, or with 14 significant digits (enough for times and sizes, without
-- 0.1000000000000000055); NaN and infinities as `null`.
-- @module eip.cli.json

local M = {}

-- Fields that are arrays even when empty.
local ARRAY_KEYS = { publicip_info = true, bandwidth_rules = true, moved = true, not_moved = true,
  uncertain = true, removed = true }

local ESCAPES = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }

-- Absent before Lua 5.3 (LuaJIT, 5.1), where every number is a float.
local math_type = math.type -- luacheck: ignore 143

local function encode_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return ESCAPES[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

local function encode_number(v)
  if v ~= v or v == math.huge or v == -math.huge then return "null" end
  if math_type and math_type(v) == "integer" then return tostring(v) end
  return string.format("%.14g", v)
end

local function encode(v, as_array)
  local t = type(v)
  if t == "string" then return encode_string(v) end
  if t == "boolean" then return tostring(v) end
  if t == "number" then return encode_number(v) end
  if t ~= "table" then return "null" end
  if as_array or #v > 0 then
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
-- (other keys are dropped). Functions, userdata and nil are `null`.
-- @param v the value: table, string, number, boolean or nil
-- @treturn string the JSON text, without a newline
function M.encode(v)
  return encode(v)
end

return M
