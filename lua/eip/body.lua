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
  v = v:gsub("[%c]+", " ")
  if #v > max then v = v:sub(1, max) .. "..." end
  return v
end

-- Each shape: a function returning code, message, request_id from a decoded table.
local SHAPES = {
  function(t) -- EIP / VPC: {"code":"VPC.0306","message":"..."}
    return t.code, t.message, t.request_id
  end,
  function(t) -- API gateway: {"error_code":"APIGW.0301","error_msg":"...","request_id":"..."}
    return t.error_code, t.error_msg, t.request_id
  end,
  function(t) -- nested: {"error":{"code":"...","message":"..."}}
    local e = t.error
    if type(e) == "table" then return e.code or e.error_code, e.message or e.error_msg, e.request_id end
    if type(e) == "string" then return nil, e end
  end,
  function(t) -- OpenStack Neutron: {"NeutronError":{"type":"...","message":"...","detail":""}}
    local e = t.NeutronError
    if type(e) == "table" then return e.type, e.message end
  end,
}

--- Decode an error body. Returns a table { code=, message=, request_id= } with at least one
-- field, or nil when the body carries nothing usable.
function M.decode_error(body)
  if type(body) ~= "string" or body == "" then return nil end
  local t = json.decode(body)
  if type(t) ~= "table" then return nil end
  for _, shape in ipairs(SHAPES) do
    local code, message, request_id = shape(t)
    code, message = text(code, MAX_CODE), text(message, MAX_MESSAGE)
    if code or message then
      return { code = code, message = message, request_id = text(request_id, 128) }
    end
  end
  return nil
end

--- Decode a success body (show, list, create). Returns the table, or nil and a reason.
function M.decode(body)
  if type(body) ~= "string" or body == "" then return nil, "empty body" end
  local t = json.decode(body)
  if type(t) ~= "table" then return nil, "body is not a JSON object" end
  return t
end

return M
