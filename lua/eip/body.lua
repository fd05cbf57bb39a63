--- Decoding Huawei Cloud error bodies into { code, message, request_id }.
-- Every shape in reference/eip-api-facts.md is understood; anything else (empty, HTML,
-- truncated or hostile JSON) decodes to nil, and the caller falls back on the status table.
local cjson = require "cjson.safe"

local M = {}

-- A private decoder: shallow nesting limit, so a hostile body cannot exhaust the C stack,
-- and settings that never affect other users of cjson in the same Lua state.
local json = cjson.new()
json.decode_max_depth(32)

local MAX_CODE, MAX_MESSAGE = 64, 512

local function text(v, max)
  if type(v) == "number" then v = tostring(v) end
  if type(v) ~= "string" or v == "" then return nil end
  -- Control characters stay for the pipeline's clean, which blanks them after looking for a
  -- secret they might split (see eip.pipeline).
  if #v > max then v = v:sub(1, max) .. "..." end
  return v
end

-- The pairs an error object may carry, in the order the official SDKs try them: the gateway's
-- error_code/error_msg first, then the services' code/message, then the camelCase form some
-- services use. A Neutron error calls its code "type".
local PAIRS = {
  { "error_code", "error_msg" }, { "code", "message" }, { "errorCode", "errorMsg" }, { "type", "message" },
}

local function is_code(v) return type(v) == "string" or type(v) == "number" end

-- code, message, request_id of the first pair t holds with a code, else of the first with a
-- message only, or nil.
local function pair_of(t)
  for _, p in ipairs(PAIRS) do
    if is_code(t[p[1]]) then return t[p[1]], t[p[2]], t.request_id end
  end
  for _, p in ipairs(PAIRS) do
    if type(t[p[2]]) == "string" then return nil, t[p[2]], t.request_id end
  end
  if type(t.error) == "string" then return nil, t.error, t.request_id end
  return nil
end

-- The first pair of t, or of an object under any of its keys ("error" first, then the others
-- in sorted order, so that the answer never depends on table order).
local function find_pair(t)
  local code, message, request_id = pair_of(t)
  if code ~= nil or message ~= nil then return code, message, request_id end
  local keys = {}
  for k, v in pairs(t) do
    if type(k) == "string" and type(v) == "table" and k ~= "error" then keys[#keys + 1] = k end
  end
  table.sort(keys)
  if type(t.error) == "table" then table.insert(keys, 1, "error") end
  for _, k in ipairs(keys) do
    code, message, request_id = pair_of(t[k])
    if code ~= nil or message ~= nil then return code, message, request_id or t.request_id end
  end
  return nil
end

--- Decode an error body. Returns a table { code=, message=, request_id=, raw_message= } with at
-- least one field, or nil when the body carries nothing usable. A message that is itself a JSON
-- error document (the EIP service wraps Neutron's that way) is decoded: `message` is the inner
-- message, `raw_message` the text as sent.
function M.decode_error(body)
  if type(body) ~= "string" or body == "" then return nil end
  local t = json.decode(body)
  if type(t) ~= "table" then return nil end
  local code, message, request_id = find_pair(t)
  code, message = text(code, MAX_CODE), text(message, MAX_MESSAGE)
  if not code and not message then return nil end
  local out = { code = code, message = message, request_id = text(request_id, 128) }
  local raw = type(message) == "string" and message:find("^%s*{") and json.decode(message)
  if type(raw) == "table" then
    local _, inner = find_pair(raw)
    inner = text(inner, MAX_MESSAGE)
    if inner then out.message, out.raw_message = inner, message end
  end
  return out
end

--- Decode a success body (show, list, create). Returns the table, or nil and a reason.
function M.decode(body)
  if type(body) ~= "string" or body == "" then return nil, "empty body" end
  local t = json.decode(body)
  if type(t) ~= "table" then return nil, "body is not a JSON object" end
  return t
end

return M
