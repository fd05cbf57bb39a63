--- Decoding Huawei Cloud error bodies into { code, message, request_id }.
-- Every shape in reference/eip-api-facts.md is understood; anything else (empty, HTML,
-- truncated or hostile JSON) decodes to nil, and the caller falls back on the status table.
local cjson = require "cjson.safe"

local M = {}

-- A private decoder: shallow nesting limit, so a hostile body cannot exhaust the C stack,
-- and settings that never affect other users of cjson in the same Lua state.
local json = cjson.new()
local MAX_DEPTH = 32
json.decode_max_depth(MAX_DEPTH)

local MAX_CODE, MAX_MESSAGE = 64, 512

--- s cut to at most `max` bytes, never inside a UTF-8 character: a cut that falls inside one is
-- made before it (up to 3 bytes fewer), so that a text that was UTF-8 stays UTF-8, and so does
-- the JSON made of it (RFC 8259; a strict reader refuses a whole document for half a character).
-- @tparam string s
-- @tparam integer max
-- @treturn string
function M.cut(s, max)
  if #s <= max then return s end
  local n = max
  -- (bytes 0x80-0xBF continue a character; at most 3 of them follow its first byte)
  while n > max - 3 and n > 0 do
    local b = s:byte(n + 1)
    if b < 0x80 or b > 0xBF then break end
    n = n - 1
  end
  return s:sub(1, n)
end

local function text(v, max)
  if type(v) == "number" then -- a code sent as a number: 401, not "401.0" (JSON numbers decode as floats)
    v = (v == math.floor(v) and math.abs(v) < 2 ^ 53) and string.format("%d", v) or tostring(v)
  end
  if type(v) ~= "string" or v == "" then return nil end
  -- Control characters stay for the pipeline's clean, which blanks them after looking for a
  -- secret they might split (see eip.pipeline).
  if #v > max then v = M.cut(v, max) .. "..." end
  return v
end

-- The pairs an error object may carry, in the order the official SDKs try them: the gateway's
-- error_code/error_msg first, then the services' code/message, then the camelCase form some
-- services use. A Neutron error (nested: {"NeutronError":{...}}) calls its code "type", a key
-- that at the top of a body may mean something else (a problem document's URI): it is tried
-- there only when no object in the body has a code of its own.
local PAIRS = { { "error_code", "error_msg" }, { "code", "message" }, { "errorCode", "errorMsg" } }
local TYPE_PAIR = { { "type", "message" } }
local MESSAGE_KEYS = { "error_msg", "message", "errorMsg" }

-- An empty code is no code (the SDKs skip such a pair and read the next).
local function is_code(v) return (type(v) == "string" and v ~= "") or type(v) == "number" end

-- code, message, request_id of the first of `pairs` whose code t holds, or nil.
local function coded(t, pairs)
  for _, p in ipairs(pairs) do
    if is_code(t[p[1]]) then return t[p[1]], t[p[2]], t.request_id end
  end
  return nil
end

-- Is m a message: a string, or a JSON object or list (some services send one), not empty?
local function is_message(m)
  return (type(m) == "string" and m ~= "") or (type(m) == "table" and next(m) ~= nil)
end

-- message, request_id of the first message t holds (a bare "error" string last), or nil.
local function message_only(t)
  for _, k in ipairs(MESSAGE_KEYS) do
    local m = t[k]
    if is_message(m) then return m, t.request_id end
  end
  if type(t.error) == "string" and t.error ~= "" then return t.error, t.request_id end
  return nil
end

-- The objects under t's keys, "error" first, then the others in sorted order (so that the
-- answer never depends on table order).
local function nested(t)
  local keys = {}
  for k, v in pairs(t) do
    if type(k) == "string" and type(v) == "table" and k ~= "error" then keys[#keys + 1] = k end
  end
  table.sort(keys)
  if type(t.error) == "table" then table.insert(keys, 1, "error") end
  local objects = {}
  for i, k in ipairs(keys) do objects[i] = t[k] end
  return objects
end

-- Objects looked into below the top of a body, at most: the official Go SDK looks for a pair at
-- any depth; a body is bounded (max_body, the decoder's depth), and so is this search.
local MAX_OBJECTS = 256

-- The pair in an object deeper than those under the top's keys: a pair of the SDKs' (not
-- Neutron's "type", which only its own shape holds, one level down), the shallowest first, and
-- at each depth in the order of `nested` under each parent (parents in that order too). Returns
-- code, message, request_id and the object, or nil.
local function deeper(level)
  local seen = #level
  while #level > 0 and seen < MAX_OBJECTS do
    local next_level = {}
    for _, parent in ipairs(level) do
      for _, o in ipairs(nested(parent)) do
        seen = seen + 1
        if seen > MAX_OBJECTS then return nil end
        local code, message, request_id = coded(o, PAIRS)
        if code ~= nil then return code, message, request_id, o end
        next_level[#next_level + 1] = o
      end
    end
    level = next_level
  end
  return nil
end

-- The pair an error body t carries: a code at its top, else in an object under one of its keys
-- (a partial pair at the top never hides a whole one below it), else deeper (see `deeper`),
-- else a Neutron "type" at the top; failing any code, the first message, at the top then below.
-- Returns code, message, request_id (any may be nil), and the object the code is in; or nil.
local function find_pair(t)
  local code, message, request_id = coded(t, PAIRS)
  if code ~= nil then return code, message, request_id, t end
  local below = nested(t)
  for _, o in ipairs(below) do
    code, message, request_id = coded(o, PAIRS)
    if code == nil then code, message, request_id = coded(o, TYPE_PAIR) end
    if code ~= nil then return code, message, request_id or t.request_id, o end
  end
  local where
  code, message, request_id, where = deeper(below)
  if code ~= nil then return code, message, request_id or t.request_id, where end
  code, message, request_id = coded(t, TYPE_PAIR)
  if code ~= nil then return code, message, request_id, t end
  message, request_id = message_only(t)
  if message ~= nil then return nil, message, request_id end
  for _, o in ipairs(below) do
    message, request_id = message_only(o)
    if message ~= nil then return nil, message, request_id or t.request_id end
  end
  return nil
end

-- The value of key at the top of t, else in `where` (the object the pair is in), else in the
-- first object below the top that has one.
local function found(t, key, where)
  if t[key] ~= nil then return t[key] end
  if where and where[key] ~= nil then return where[key] end
  for _, o in ipairs(nested(t)) do
    if o[key] ~= nil then return o[key] end
  end
  return nil
end

local MAX_AUTHORIZATION, MAX_DETAILS = 4096, 512

-- A body without the UTF-8 byte order mark it may start with: RFC 8259 lets a parser ignore
-- one, and cjson refuses it (a 404 VPC.0306 behind one would read as a body without a code).
local function without_bom(body)
  if body:byte(1) == 0xEF and body:sub(1, 3) == "\239\187\191" then return body:sub(4) end
  return body
end

-- Where the JSON string whose opening quote is at s[i] closes (its escapes skipped), or nil.
local function string_end(s, i)
  repeat
    i = s:find('["\\]', i + 1)
    if not i then return nil end
    local escape = s:byte(i) == 92
    if escape then i = i + 1 end
  until not escape
  return i
end

-- Where the JSON object or array that opens s (after blanks) closes, or nil: its brackets
-- counted, strings (and the escapes in them) skipped; nil as soon as they nest deeper than the
-- decoder reads. Whether what it spans is JSON is the decoder's to say.
local function first_value_end(s)
  local i = s:find("[^ \t\n\r]")
  if not i or not s:find("^[{%[]", i) then return nil end
  local depth = 0
  while true do
    i = s:find('[{}%[%]"]', i)
    if not i then return nil end
    local c = s:byte(i)
    if c == 34 then -- a string: to its closing quote
      i = string_end(s, i)
      if not i then return nil end
    else
      depth = depth + ((c == 123 or c == 91) and 1 or -1)
      if depth == 0 then return i end
      if depth > MAX_DEPTH then return nil end
    end
    i = i + 1
  end
end

-- The most bytes before what follows a first value that first_value_end counts through: a string
-- that breaks off after it, which cjson names where it broke rather than where it began (any
-- other token is named where it begins). Error documents are small; a Lua pass costs about 0.1 s
-- of CPU per MiB.
local SCAN_MAX = 64 * 1024

-- The JSON value of an error body: the whole body, else its first value (as the official Go SDK
-- decodes one: a json-iterator Decoder, which leaves what follows unread), and then true: more
-- came after it. Nil when neither is JSON. The decoder finds where a first value ends, in C: it
-- reads it whole, then says where the token after it is ("Expected the end but found T_OBJ_BEGIN
-- at character 14"); nothing else it says is looked into (a body cut at max_body, JSON broken
-- early: no Lua pass over it).
local function decode_first(body)
  local t, why = json.decode(body)
  -- (cjson reads up to a NUL byte, never inside a value it decodes: one after it is more)
  if t ~= nil then return t, body:find("\0", 1, true) ~= nil end
  local at = type(why) == "string" and tonumber(why:match("^Expected the end but found .* at character (%d+)$"))
  if not at then return nil end
  local head = body:sub(1, at - 1)
  t = json.decode(head)
  if t == nil and #head <= SCAN_MAX then
    local e = first_value_end(head)
    t = e and json.decode(head:sub(1, e))
  end
  if t == nil then return nil end
  return t, true
end

--- Decode an error body. Returns a table { code=, message=, request_id=, raw_message=,
-- encoded_authorization_message=, details=, trailing= } with a code or a message, or nil when
-- the body carries nothing usable. A body with more after its JSON value (a second value,
-- text) is read by that first value, as the official Go SDK reads it, with `trailing = true`:
-- it is no one error document, and a 404 of it says nothing is gone (see eip.errors). A message
-- that is itself a JSON error document (the EIP service wraps Neutron's that way) is decoded:
-- `message` is the inner message, `raw_message` the text as sent.
-- `encoded_authorization_message` (why a policy denied the request, encoded: the official SDKs
-- read it) and `details` (a list or object as compact JSON) come from the top or the object the
-- pair is in, bounded.
function M.decode_error(body)
  if type(body) ~= "string" or body == "" then return nil end
  local t, trailing = decode_first(without_bom(body))
  if type(t) ~= "table" then return nil end
  local code, message, request_id, where = find_pair(t)
  -- A message sent as a JSON object or list: kept as compact JSON (bounded, and redacted by the
  -- caller, as any message), and read as a JSON error document inside a string message is.
  local document = type(message) == "table" and message
  if document then message = next(document) ~= nil and json.encode(document) or nil end
  code, message = text(code, MAX_CODE), text(message, MAX_MESSAGE)
  if not code and not message then return nil end
  local out = { code = code, message = message, request_id = text(request_id, 128), trailing = trailing or nil,
    encoded_authorization_message = text(found(t, "encoded_authorization_message", where), MAX_AUTHORIZATION) }
  local details = found(t, "details", where)
  if type(details) == "table" then details = json.encode(details) end
  out.details = text(details, MAX_DETAILS)
  local raw = document or (type(message) == "string" and message:find("^%s*{") and json.decode(message))
  if type(raw) == "table" then
    local _, inner = find_pair(raw)
    inner = text(inner, MAX_MESSAGE)
    if inner then out.message, out.raw_message = inner, message end
  end
  return out
end

--- The text of an error body that is neither JSON nor markup, as a decoded error's `{ message
-- = ... }` (trimmed, bounded as a message is), or nil: what a service that answers its errors in
-- plain text said (the ECS metadata service: "Please configure Cloud Service Agency first").
-- Its control characters stay for the pipeline's clean, as a decoded message's do.
function M.plain_error(body)
  if type(body) ~= "string" then return nil end
  local s = without_bom(body):match("^%s*(.-)%s*$")
  if s == "" or s:find("^[<{%[]") then return nil end
  return { message = text(s, MAX_MESSAGE) }
end

--- Whether the value of `key` in the JSON object `body` is (after blanks) a list, `[`: cjson
-- decodes `{}` as it decodes `[]`, an empty table, which a caller that wants a list cannot tell
-- apart. The object's last member of that name, as cjson keeps it, its name read as cjson reads
-- it (escapes included); strings skipped with their escapes. False for anything else (no such
-- member, or a body that is no JSON object: the decoder says so first).
-- @tparam string body a body the decoder read as a JSON object
-- @tparam string key the member's name
-- @treturn boolean
-- @raise never
function M.member_is_list(body, key)
  if type(body) ~= "string" or type(key) ~= "string" then return false end
  local s, depth, list = without_bom(body), 0, false
  local i = s:find("[^ \t\n\r]")
  while i do
    i = s:find('[{}%[%]"]', i)
    if not i then break end
    local c = s:byte(i)
    if c == 34 then -- a string: to its closing quote; at depth 1 followed by ':', a member's name
      local from = i
      i = string_end(s, i)
      if not i then return false end
      if depth == 1 then
        local colon, value = s:match("^[ \t\n\r]*():[ \t\n\r]*()", i + 1)
        if colon then
          local name = s:sub(from, i)
          if name:find("\\", 1, true) then name = json.decode(name) else name = name:sub(2, -2) end
          if name == key then list = s:byte(value) == 91 end
        end
      end
    else
      depth = depth + ((c == 123 or c == 91) and 1 or -1)
      if depth == 0 then break end -- (the object's end: what follows a NUL is no part of it)
    end
    i = i + 1
  end
  return list
end

--- What a JSON null decodes to (cjson's null, a light userdata).
M.null = json.null

--- Decode a success body (show, list, create). Returns the table, or nil and a reason: a body
-- with anything but blanks after its JSON value is none (cjson refuses text there, and reads
-- up to a NUL byte, never inside a value it decodes: one after it is more).
function M.decode(body)
  if type(body) ~= "string" or body == "" then return nil, "empty body" end
  local t = json.decode(without_bom(body))
  if type(t) ~= "table" then return nil, "body is not a JSON object" end
  if body:find("\0", 1, true) then return nil, "the answer has more after its JSON value" end
  return t
end

return M
