-- Test controls under /__emulator/ (JSON in and out). These requests are not API requests:
-- they are neither counted nor logged nor subject to injections.
--
--   GET  /__emulator/health            {ok, pid, master_pid}
--   POST /__emulator/reset             forget bandwidths, injections, counters, log (not auth)
--   POST /__emulator/reset_counters    forget counters and log only
--   PUT  /__emulator/tokens            {token = project_id} or
--                                      {tokens = {...}, default_project_id = "..."}
--   POST /__emulator/bandwidths        seed one: {name, size, share_type, publicip_ids, project_id,
--                                      id, charge_mode, status, ...} -> {id, bandwidth};
--                                      eips = n instead of publicip_ids: n EIPs with new ids;
--                                      an entry of publicip_ids: an id, or {publicip_id,
--                                      ip_version (4|6), publicip_type}; 507 when it does
--                                      not fit in the store (which never evicts)
--   GET  /__emulator/bandwidths[/id]   every bandwidth, or one (404 if unknown)
--   POST /__emulator/inject            queue one rule (see inject.lua) -> {pending}; 507 when it
--                                      does not fit (those queued stay, as every write refused
--                                      here leaves what the store held)
--   GET  /__emulator/inject            {rules}
--   GET  /__emulator/stats             {requests, connections, bandwidths, pending_injections,
--                                      tokens_issued, auth_failures, ...}; no connections once
--                                      a full store left some uncounted (uncounted_connections)
--   GET  /__emulator/requests          {requests = [oldest .. newest], missing = n: left out, store full}
--   PUT  /__emulator/aksk              {aksk = {ak = {sk, project_id, security_token?}}} (replaces)
--   PUT  /__emulator/users             {users = [{username, password, domain,
--                                      projects = {name = id}}]} (replaces)
--   PUT  /__emulator/token_ttl         {seconds = n}: lifetime of tokens issued from now on
--   POST /__emulator/expire_tokens     every token issued so far expires now -> {expired = n}
--   PUT  /__emulator/clock             {offset = seconds}: the emulator's clock vs real time
--   POST /__emulator/verify            {method, url, headers, query?, body?, ak, sk,
--                                      signed_headers?} -> {authorization, signature, canonical,
--                                      string_to_sign, signed_headers}, signed by aksk.lua
--
-- reset keeps the authentication setup: tokens (configured and issued), AK/SK pairs and users;
-- it restores the default token TTL (24 h) and clock offset (0).
local aksk = require "eip.emulator.server.aksk"
local inject = require "eip.emulator.server.inject"
local json = require "eip.emulator.server.json"
local model = require "eip.emulator.server.model"
local params = require "eip.emulator.server.params"
local store = require "eip.emulator.server.store"
local util = require "eip.emulator.server.util"

local M = {}

local function fail(status, message)
  util.send_json(status, { error = message })
end

local function health()
  util.send_json(200, {
    ok = true, pid = ngx.worker.pid(), master_pid = require("ngx.process").get_master_pid(),
  })
end

local function reset()
  store.reset()
  util.send_json(200, { ok = true })
end

local function valid_token_map(map)
  if type(map) ~= "table" then
    return false
  end
  for token, project in pairs(map) do
    if type(token) ~= "string" or type(project) ~= "string" or token == "" then
      return false
    end
  end
  return true
end

local function set_tokens(body)
  local req = json.decode(body)
  if type(req) ~= "table" then
    return fail(400, "body must be a JSON object")
  end
  local map, default_project = req, nil
  if type(req.tokens) == "table" then
    map, default_project = req.tokens, req.default_project_id
  end
  if not valid_token_map(map) then
    return fail(400, "tokens must map token strings to project id strings")
  end
  store.set_tokens(map, default_project)
  util.send_json(200, { ok = true })
end

local SEED_FIELDS = {
  name = true, size = true, share_type = true, publicip_ids = true, project_id = true, id = true,
  charge_mode = true, status = true, bandwidth_type = true, enterprise_project_id = true,
  billing_info = true, eips = true,
}

local MAX_SEEDED_EIPS = 10000

local function check_seed(req)
  for key in pairs(req) do
    if not SEED_FIELDS[key] then
      return nil, "unknown field " .. tostring(key)
    end
  end
  if req.share_type ~= "WHOLE" and req.share_type ~= "PER" then
    return nil, "share_type must be WHOLE or PER"
  end
  if type(req.publicip_ids) ~= "table" then
    return nil, "publicip_ids must be a list"
  end
  if req.eips ~= nil and not (util.is_integer(req.eips) and req.eips >= 0 and req.eips <= MAX_SEEDED_EIPS) then
    return nil, "eips must be an integer in 0.." .. MAX_SEEDED_EIPS
  end
  if req.eips ~= nil and #req.publicip_ids > 0 then
    return nil, "give publicip_ids or eips, not both"
  end
  if req.share_type == "PER" and math.max(#req.publicip_ids, req.eips or 0) > 1 then
    return nil, "a PER bandwidth holds at most one EIP"
  end
  -- The API's own rules (params.lua), so that no seeded name is one the API would refuse. A
  -- shared size below the create's 5 Mbit/s stays seedable: that range is only the default one
  -- ("默认5Mbit/s~2000Mbit/s", each region configures its own), and the specs' fixtures are
  -- 1 Mbit/s bandwidths. (The eip-emulator command, for people, keeps to the default range.)
  if req.name ~= nil and not params.valid_name(req.name) then
    return nil, "name must be " .. params.NAME_RULE .. ", as the API takes"
  end
  if not util.is_integer(req.size) or req.size < params.DEDICATED_MIN or req.size > params.SIZE_MAX then
    return nil, "size must be an integer in " .. params.DEDICATED_MIN .. ".." .. params.SIZE_MAX
  end
  if type(req.project_id) ~= "string" then
    return nil, "project_id missing and no default project configured"
  end
  if req.id and (type(req.id) ~= "string" or store.get_bandwidth(req.id)) then
    return nil, "id must be a string not already in use"
  end
  return true
end

-- Seeded EIPs: ids, or { publicip_id =, ip_version = 6 } for the IPv6 port of a dual-stack
-- shared bandwidth.
local function seed_eips(ids)
  local eips = {}
  for i, entry in ipairs(ids) do
    local id, version, kind = entry, 4, nil
    if type(entry) == "table" then id, version, kind = entry.publicip_id, entry.ip_version or 4, entry.publicip_type end
    if type(id) ~= "string" or store.find_eip(id) or (version ~= 4 and version ~= 6)
        or (kind ~= nil and type(kind) ~= "string") then
      return nil, "publicip id " .. tostring(id) .. " is not a string, is already in a bandwidth, "
        .. "or has an ip_version other than 4 or 6 or a publicip_type that is no string"
    end
    eips[i] = model.new_eip(id, kind, version)
    -- (a dual-stack port as the insert page's example shows it: ip_version 4, IPv4-mapped)
    if kind == "5_dualStack" and version == 4 then eips[i].publicip_address = "::ffff:" .. eips[i].publicip_address end
  end
  return eips
end

local function seed(body)
  local req = json.decode(body)
  if type(req) ~= "table" then
    return fail(400, "body must be a JSON object")
  end
  req.share_type = req.share_type or "WHOLE"
  req.publicip_ids = req.publicip_ids or {}
  req.size = req.size or 10
  req.project_id = req.project_id or store.default_project()
  local ok, err = check_seed(req)
  if not ok then
    return fail(400, err)
  end
  local eips
  local ids = req.publicip_ids
  if req.eips then
    ids = {}
    for i = 1, req.eips do ids[i] = util.uuid() end
  end
  req.eips = nil
  local bw, refused
  ok, err = store.atomically(function()
    eips, refused = seed_eips(ids)
    if not eips then return end
    req.publicip_info = eips
    req.name = req.name or ("seeded-" .. store.next_seq())
    bw = model.new_bandwidth(req)
    store.put_bandwidth(bw)
  end)
  if not ok then
    -- The store is full (or failed otherwise): every write of the seed was undone, and what the
    -- store held is all there still (store.lua never evicts).
    if not store.is_full(err) then error(err, 0) end
    return fail(507, store.FULL .. ": this bandwidth and its " .. #ids .. " EIP(s) do not fit; "
      .. "reset it, or seed fewer or smaller bandwidths")
  end
  if not eips then
    return fail(400, refused)
  end
  util.send_json(201, { id = bw.id, bandwidth = bw })
end

local function show(id)
  local bw = store.get_bandwidth(id)
  if not bw then
    return fail(404, "no bandwidth " .. id)
  end
  util.send_json(200, { bandwidth = bw })
end

local function add_rule(body)
  local rule, err = inject.validate(json.decode(body))
  if not rule then
    return fail(400, err)
  end
  util.send_json(200, { pending = inject.add(rule) })
end

local function stats()
  local s = store.stats()
  s.bandwidths = #store.all_bandwidths()
  s.pending_injections = #store.get_rules()
  util.send_json(200, s)
end

-- Authentication setup ----------------------------------------------------------------------

local function nonempty(v)
  return type(v) == "string" and v ~= ""
end

local function check_aksk(map)
  if type(map) ~= "table" then
    return nil, "aksk must be an object {ak = {sk, project_id, security_token?}}"
  end
  for ak, cred in pairs(map) do
    if not (nonempty(ak) and type(cred) == "table" and nonempty(cred.sk) and nonempty(cred.project_id)
        and (cred.security_token == nil or nonempty(cred.security_token))) then
      return nil, "each aksk entry needs a string sk and project_id (and optionally security_token)"
    end
  end
  return true
end

local function set_aksk(body)
  local req = json.decode(body)
  local map = type(req) == "table" and req.aksk
  local ok, err = check_aksk(map)
  if not ok then
    return fail(400, err)
  end
  store.set_aksk(map)
  util.send_json(200, { ok = true })
end

local function check_user(user)
  if type(user) ~= "table" or not (nonempty(user.username) and nonempty(user.password)
      and nonempty(user.domain) and type(user.projects) == "table") then
    return false
  end
  for name, id in pairs(user.projects) do
    if not (nonempty(name) and nonempty(id)) then
      return false
    end
  end
  return true
end

local function set_users(body)
  local req = json.decode(body)
  local list = type(req) == "table" and req.users
  if type(list) ~= "table" then
    return fail(400, "users must be a list")
  end
  for _, user in ipairs(list) do
    if not check_user(user) then
      return fail(400, "each user needs username, password, domain and projects {name = id}")
    end
  end
  store.set_users(list)
  util.send_json(200, { ok = true })
end

-- A number field of a JSON body within [min, max], or nil.
local function number_field(body, key, min, max)
  local req = json.decode(body)
  local v = type(req) == "table" and req[key]
  if type(v) ~= "number" or v < min or v > max then
    return nil
  end
  return v
end

local YEAR = 366 * 24 * 3600

local function set_token_ttl(body)
  local seconds = number_field(body, "seconds", 0, 10 * YEAR)
  if not seconds then
    return fail(400, "seconds must be a number in 0..10 years")
  end
  store.set_token_ttl(seconds)
  util.send_json(200, { ok = true })
end

local function set_clock(body)
  local offset = number_field(body, "offset", -10 * YEAR, 10 * YEAR)
  if not offset then
    return fail(400, "offset must be a number of seconds within 10 years")
  end
  store.set_clock_offset(offset)
  util.send_json(200, { ok = true, now = store.now() })
end

-- Knobs that are counts (an integer), and the metadata token route's status: 200, or an error
-- status (404, 405, 503: a service without the token route); a 0 or a 201 would hand out its
-- body as the token.
local INTEGER_KNOBS = { aksk_lock_after = true, throttle_rate = true, metadata_token_status = true }

local function knob_error(name, value)
  if INTEGER_KNOBS[name] and not util.is_integer(value) then
    return name .. " must be an integer"
  end
  if name == "metadata_token_status" and value ~= 200 and not (value >= 400 and value <= 599) then
    return "metadata_token_status must be 200 or an error status (400-599), such as 404, 405 or 503"
  end
  return nil
end

-- PUT knobs: { name = value } for names of store.KNOBS (numbers >= 0).
local function set_knobs(body)
  local req = json.decode(body)
  if type(req) ~= "table" then
    return fail(400, "body must be a JSON object")
  end
  for name, value in pairs(req) do
    if store.KNOBS[name] == nil or type(value) ~= "number" or value < 0 or value > 10 * YEAR then
      return fail(400, "unknown knob " .. tostring(name) .. " or not a number of at least 0")
    end
    local why = knob_error(name, value)
    if why then return fail(400, why) end
  end
  for name, value in pairs(req) do
    store.set_knob(name, value)
  end
  util.send_json(200, { ok = true })
end

local function verify(body)
  local answer, err = aksk.compute(json.decode(body))
  if not answer then
    return fail(400, err)
  end
  util.send_json(200, answer)
end

-- "METHOD path" -> handler(body, capture)
local ROUTES = {
  ["GET health"] = health,
  ["POST reset"] = reset,
  ["POST reset_counters"] = function()
    store.reset_counters()
    util.send_json(200, { ok = true })
  end,
  ["PUT tokens"] = set_tokens,
  ["POST tokens"] = set_tokens,
  ["POST bandwidths"] = seed,
  ["GET bandwidths"] = function()
    util.send_json(200, { bandwidths = json.array(store.all_bandwidths()) })
  end,
  ["POST inject"] = add_rule,
  ["GET inject"] = function()
    util.send_json(200, { rules = json.array(store.get_rules()) })
  end,
  ["GET stats"] = stats,
  ["GET requests"] = function()
    local requests, missing = store.requests()
    util.send_json(200, { requests = json.array(requests), missing = missing })
  end,
  ["PUT aksk"] = set_aksk,
  ["PUT users"] = set_users,
  ["PUT token_ttl"] = set_token_ttl,
  ["POST expire_tokens"] = function()
    util.send_json(200, { expired = store.expire_issued_tokens() })
  end,
  ["PUT clock"] = set_clock,
  ["PUT knobs"] = set_knobs,
  ["PUT projects"] = function(body)
    local req = json.decode(body)
    if type(req) ~= "table" or type(req.projects) ~= "table" then
      return fail(400, "body must be {projects = [{name, id}, ...]}")
    end
    store.set_projects(req.projects)
    util.send_json(200, { ok = true })
  end,
  ["POST verify"] = verify,
}

function M.handle(method, path, body)
  local rest = path:sub(#"/__emulator/" + 1)
  local id = rest:match("^bandwidths/([^/]+)$")
  if id and method == "GET" then
    return show(ngx.unescape_uri(id)) -- (the path as sent: emu:get_bandwidth escapes the id)
  end
  local handler = ROUTES[method .. " " .. rest]
  if not handler then
    return fail(404, "no control route " .. method .. " " .. path)
  end
  return handler(body)
end

return M
