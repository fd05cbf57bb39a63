-- JSON for the emulator (runs inside nginx/LuaJIT).
--
-- Decoding is cjson's. Encoding is our own because Debian's lua-cjson is upstream 2.1.0, which
-- has no empty-array marker: it would turn `publicip_info = {}` into `{}` where Huawei sends `[]`,
-- and clients that check types would then see an object. Keys are sorted so that answers are
-- byte-for-byte reproducible.
-- (an instance of its own: the request bodies it reads are the cloud's to refuse, and standard
-- JSON has no NaN, Infinity nor hexadecimal numbers, which cjson takes by default)
local cjson = require("cjson").new()
cjson.decode_invalid_numbers(false)

local M = {}

local array_mt = { __name = "json.array" }
M.null = cjson.null

-- Mark t (or a new table) as a JSON array, so that it encodes as [] even when empty.
function M.array(t)
  return setmetatable(t or {}, array_mt)
end

-- Decode a JSON text; returns value or nil, message (never raises).
function M.decode(text)
  if type(text) ~= "string" or text == "" then
    return nil, "empty body"
  end
  local ok, value = pcall(cjson.decode, text)
  if not ok then
    return nil, "invalid JSON"
  end
  return value
end

local escapes = {
  ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
}

local function encode_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return escapes[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

local function encode_number(n)
  if n ~= n or n == math.huge or n == -math.huge then
    return "null"
  end
  if n == math.floor(n) and math.abs(n) < 2 ^ 53 then
    return string.format("%d", n)
  end
  return string.format("%.17g", n)
end

-- A plain table is an array when its keys are exactly 1..n with n > 0.
local function is_sequence(t)
  local n = 0
  for _ in pairs(t) do
    n = n + 1
  end
  return n > 0 and n == #t
end

local encode_value

local function encode_array(t)
  local out = {}
  for i = 1, #t do
    out[i] = encode_value(t[i])
  end
  return "[" .. table.concat(out, ",") .. "]"
end

local function encode_object(t)
  local keys = {}
  for k in pairs(t) do
    keys[#keys + 1] = tostring(k)
  end
  table.sort(keys)
  local out = {}
  for i, k in ipairs(keys) do
    local v = t[k]
    if v == nil then
      v = t[tonumber(k)]
    end
    out[i] = encode_string(k) .. ":" .. encode_value(v)
  end
  return "{" .. table.concat(out, ",") .. "}"
end

encode_value = function(v)
  local kind = type(v)
  if v == nil or v == cjson.null then
    return "null"
  elseif kind == "boolean" then
    return tostring(v)
  elseif kind == "number" then
    return encode_number(v)
  elseif kind == "string" then
    return encode_string(v)
  elseif kind == "table" then
    if getmetatable(v) == array_mt or is_sequence(v) then
      return encode_array(v)
    end
    return encode_object(v)
  end
  error("cannot encode a " .. kind .. " as JSON")
end

M.encode = encode_value

return M
