-- Emulator state, kept in the lua_shared_dict "emulator" so that it survives between requests
-- and is visible to control calls. nginx runs one worker and shared-dict calls never yield, so a
-- read-modify-write below cannot interleave with another request.
--
-- Keys:  tokens (JSON {token = project_id})   default_project
--        seq (ordering of bandwidths, numbering of synthesized EIP addresses)
--        bw:<id> (JSON {seq = n, bw = bandwidth})   eip:<publicip_id> (id of its bandwidth)
--        requests, connections, conn:<serial>   log_seq, log:<slot> (ring of LOG_SIZE)
--        inject (JSON array of pending rules)
local json = require "emulator.json"

local dict = ngx.shared.emulator

local M = {}

M.LOG_SIZE = 200
local LOG_BODY_MAX = 64 * 1024
-- Connection markers expire so that a long benchmark does not fill the dict with them.
local CONN_TTL = 3600

local function get_json(key)
  local text = dict:get(key)
  if text == nil then
    return nil
  end
  return (json.decode(text))
end

local function set_json(key, value)
  local ok, err = dict:set(key, json.encode(value))
  if not ok then
    error("emulator store: cannot set " .. key .. ": " .. tostring(err))
  end
end

-- Tokens -------------------------------------------------------------------------------------

function M.set_tokens(tokens, default_project)
  set_json("tokens", tokens)
  if default_project then
    dict:set("default_project", default_project)
  end
end

function M.project_of_token(token)
  local tokens = get_json("tokens") or {}
  return tokens[token]
end

function M.default_project()
  return dict:get("default_project")
end

-- Bandwidths ---------------------------------------------------------------------------------

function M.next_seq()
  return (dict:incr("seq", 1, 0))
end

-- Decoding loses the difference between [] and {}: mark the array fields again.
local function bandwidth_of(rec)
  if not rec then
    return nil
  end
  local bw = rec.bw
  bw.publicip_info = json.array(bw.publicip_info)
  bw.bandwidth_rules = json.array(bw.bandwidth_rules)
  return bw
end

function M.get_bandwidth(id)
  return bandwidth_of(get_json("bw:" .. id))
end

function M.put_bandwidth(bw)
  local rec = get_json("bw:" .. bw.id)
  set_json("bw:" .. bw.id, { seq = rec and rec.seq or M.next_seq(), bw = bw })
  for _, ip in ipairs(bw.publicip_info) do
    dict:set("eip:" .. ip.publicip_id, bw.id)
  end
end

function M.delete_bandwidth(id)
  local bw = M.get_bandwidth(id)
  if not bw then
    return
  end
  for _, ip in ipairs(bw.publicip_info) do
    if dict:get("eip:" .. ip.publicip_id) == id then
      dict:delete("eip:" .. ip.publicip_id)
    end
  end
  dict:delete("bw:" .. id)
end

-- Every bandwidth, oldest first; optionally only those of one project.
function M.all_bandwidths(project_id)
  local recs = {}
  for _, key in ipairs(dict:get_keys(0)) do
    if key:sub(1, 3) == "bw:" then
      local rec = get_json(key)
      if rec and (project_id == nil or rec.bw.tenant_id == project_id) then
        recs[#recs + 1] = rec
      end
    end
  end
  table.sort(recs, function(a, b) return a.seq < b.seq end)
  local out = {}
  for i, rec in ipairs(recs) do
    out[i] = bandwidth_of(rec)
  end
  return out
end

-- The bandwidth that holds EIP publicip_id, and the EIP's entry in it. The eip: index may be
-- stale (an EIP that left a bandwidth), so the answer is checked against the bandwidth itself.
function M.find_eip(publicip_id)
  local id = dict:get("eip:" .. publicip_id)
  local bw = id and M.get_bandwidth(id)
  for _, ip in ipairs(bw and bw.publicip_info or {}) do
    if ip.publicip_id == publicip_id then
      return bw, ip
    end
  end
  return nil
end

-- Request accounting -------------------------------------------------------------------------

local function cap_body(body)
  if #body > LOG_BODY_MAX then
    return body:sub(1, LOG_BODY_MAX), true
  end
  return body, nil
end

function M.record_request(entry)
  dict:incr("requests", 1, 0)
  if dict:add("conn:" .. entry.connection, true, CONN_TTL) then
    dict:incr("connections", 1, 0)
  end
  local seq = dict:incr("log_seq", 1, 0)
  entry.seq = seq
  entry.body, entry.body_truncated = cap_body(entry.body)
  set_json("log:" .. (seq % M.LOG_SIZE), entry)
end

function M.stats()
  return {
    requests = dict:get("requests") or 0,
    connections = dict:get("connections") or 0,
  }
end

-- The logged requests, oldest first.
function M.requests()
  local last = dict:get("log_seq") or 0
  local out = {}
  for seq = math.max(1, last - M.LOG_SIZE + 1), last do
    local entry = get_json("log:" .. (seq % M.LOG_SIZE))
    if entry and entry.seq == seq then
      out[#out + 1] = entry
    end
  end
  return out
end

-- Injections ---------------------------------------------------------------------------------

function M.get_rules()
  return get_json("inject") or {}
end

function M.set_rules(rules)
  if #rules == 0 then
    dict:delete("inject")
  else
    set_json("inject", rules)
  end
end

function M.has_rules()
  return dict:get("inject") ~= nil
end

-- Reset --------------------------------------------------------------------------------------

-- Forget counters, connection markers and the request log; keep bandwidths and injections.
function M.reset_counters()
  for _, key in ipairs(dict:get_keys(0)) do
    if key:sub(1, 5) == "conn:" or key:sub(1, 4) == "log:" then
      dict:delete(key)
    end
  end
  dict:delete("requests")
  dict:delete("connections")
  dict:delete("log_seq")
end

-- Forget everything but the configured tokens.
function M.reset()
  local tokens = dict:get("tokens")
  local default_project = dict:get("default_project")
  dict:flush_all()
  dict:flush_expired()
  if tokens then
    dict:set("tokens", tokens)
  end
  if default_project then
    dict:set("default_project", default_project)
  end
end

return M
