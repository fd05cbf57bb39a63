-- Emulator state, kept in the lua_shared_dict "emulator" so that it survives between requests
-- and is visible to control calls. nginx runs one worker and shared-dict calls never yield, so a
-- read-modify-write below cannot interleave with another request.
--
-- Keys:  tokens (JSON {token = project_id})   default_project
--        aksk (JSON {ak = {sk, project_id, security_token?}})   users (JSON list, see iam.lua)
--        itok:<token> (JSON {project_id, expires_at, expired?}: tokens issued by IAM)
--        token_ttl, clock_offset (seconds)   tokens_issued, auth_failures, ... (COUNTERS, made at start)
--        seq (ordering of bandwidths, numbering of synthesized EIP addresses)
--        bw:<id> (JSON {seq = n, bw = bandwidth})   eip:<publicip_id> (id of its bandwidth)
--        requests, connections, conn:<serial>   log_seq, log:<slot> (ring of LOG_SIZE)
--        inject_head, inject_tail, inject:<n> (JSON rule), inject_times:<n> (pending rules, see below)
--        knob:<name> (test knobs, see M.KNOBS)   gone:<id> (JSON bandwidth: deleted, still readable)
--        creating:<id> (a bandwidth the API made, CREATING until it expires: the creating_for knob)
--        akfail:<ak> (failed signatures in a row)   aklock:<ak> (locked; expires by itself)
--        thr:<second>:<user> (requests in a throttle window, see M.over_rate)
local json = require "eip.emulator.server.json"

local dict = ngx.shared.emulator

local M = {}

M.LOG_SIZE = 200
local LOG_BODY_MAX = 64 * 1024
-- Connection markers expire so that a long benchmark does not fill the dict with them.
local CONN_TTL = 3600

-- Writes never evict: a full dict's set() makes room by dropping the least recently used items,
-- which would silently forget the configured tokens, or a bandwidth nobody deleted (then answered
-- 404 VPC.0306, "gone"). safe_set refuses instead; put raises then (M.FULL in the message).
-- A refused safe_set has dropped the key's old value all the same when the new one is of
-- another size (lua-nginx-module frees the old value before it looks for room for the new):
-- put writes the old one back, in the room it left.
M.FULL = "the emulator's store is full"

--- Is `err` (an error raised by a write here) the store's refusal to make room?
function M.is_full(err)
  return tostring(err):find(M.FULL, 1, true) ~= nil
end

-- While M.atomically runs: key -> { value, ttl } as it was before the first write (value false:
-- there was none), so that a write refused half-way can be undone.
local journal

-- The value of key and its time to live (nil, 0: none); noted in the journal if there is one.
local function remember(key)
  local value = dict:get(key)
  local ttl = value ~= nil and dict:ttl(key) or 0
  if journal and journal[key] == nil then
    journal[key] = { value = value == nil and false or value, ttl = ttl }
  end
  return value, ttl
end

local function refuse(key, err)
  error("emulator store: cannot set " .. key .. ": " .. tostring(err) .. " (" .. M.FULL .. ")", 0)
end

local function put(key, value, ttl)
  local old, old_ttl = remember(key)
  -- (the dict keeps a key of lifetime 0, or one under its 1 ms resolution, for good: a lifetime
  -- given, a knob's of 0 s say, is at least 1 ms)
  local ok, err = dict:safe_set(key, value, ttl and math.max(ttl, 0.001) or 0)
  if not ok then
    if old ~= nil and not dict:safe_set(key, old, old_ttl) then
      ngx.log(ngx.ERR, "emulator store: could not restore ", key, " after: ", tostring(err))
    end
    refuse(key, err)
  end
end

local function del(key)
  remember(key)
  dict:delete(key)
end

-- dict:incr with an initial value evicts as set() does when the key is new: add it safely first
-- (raises when there is no room). A number that exists changes in place: that needs no room.
local function incr(key, ttl)
  if journal then remember(key) end
  local n = dict:incr(key, 1)
  if n then return n end
  local ok, err = dict:safe_add(key, 0, ttl or 0)
  if not ok and err ~= "exists" then refuse(key, err) end
  return (dict:incr(key, 1))
end

-- The statistics (see M.stats) and the request log's numbering: made at start (M.init) and
-- never deleted (reset sets them to 0 in place), so that counting needs no room, even in a full
-- store, and a statistic a test reads is never short.
local COUNTERS = { "requests", "connections", "uncounted_connections", "log_seq", "tokens_issued", "auth_failures",
  "aksk_locks", "metadata_tokens_issued", "metadata_credentials_issued", "project_lookups", "throttled" }
local IS_COUNTER = {}
for _, name in ipairs(COUNTERS) do IS_COUNTER[name] = true end

--- Makes the counters, while the store has room (nginx's init_worker; those there stay as they are).
function M.init()
  for _, name in ipairs(COUNTERS) do
    local ok, err = dict:safe_add(name, 0)
    if not ok and err ~= "exists" then refuse(name, err) end
  end
end

--- Runs fn(...) (which must not yield: no ngx.sleep, no socket) so that its writes here happen
-- all or not at all: when it raises, every key it wrote is as it was before (keys it made are
-- deleted first, which makes room for those it changed). Returns true, or false and the error.
function M.atomically(fn, ...)
  assert(journal == nil, "emulator store: atomically does not nest")
  journal = {}
  local ok, err = pcall(fn, ...)
  local undo = journal
  journal = nil
  if not ok then
    for key, old in pairs(undo) do
      if old.value == false then dict:delete(key) end
    end
    for key, old in pairs(undo) do
      if old.value ~= false and not dict:safe_set(key, old.value, old.ttl or 0) then
        ngx.log(ngx.ERR, "emulator store: could not restore ", key, " after: ", tostring(err))
      end
    end
  end
  return ok, err
end

-- M.atomically(fn), raising its error (M.FULL in it when a write was refused).
local function all_or_nothing(fn)
  local ok, err = M.atomically(fn)
  if not ok then error(err, 0) end
end

local function get_json(key)
  local text = dict:get(key)
  if text == nil then
    return nil
  end
  return (json.decode(text))
end

local function set_json(key, value)
  put(key, json.encode(value))
end

-- Tokens -------------------------------------------------------------------------------------

function M.set_tokens(tokens, default_project)
  all_or_nothing(function()
    set_json("tokens", tokens)
    if default_project then
      put("default_project", default_project)
    end
  end)
end

function M.project_of_token(token)
  local tokens = get_json("tokens") or {}
  return tokens[token]
end

function M.default_project()
  return dict:get("default_project")
end

-- AK/SK credentials and IAM users --------------------------------------------------------------

function M.set_aksk(map)
  set_json("aksk", map)
end

-- { sk, project_id, security_token? } of access key ak, or nil: a configured pair, or a
-- temporary one the metadata service issued and that has not expired yet.
function M.credential(ak)
  local map = get_json("aksk") or {}
  return map[ak] or get_json("mdcred:" .. ak)
end

-- A temporary pair of the metadata service, valid for `ttl` seconds until `expires` (the
-- emulator's clock); also the last one issued (see last_temporary_credential).
function M.put_temporary_credential(cred, ttl, expires)
  all_or_nothing(function()
    put("mdcred:" .. cred.ak, json.encode(cred), ttl)
    put("mdlast", json.encode({ cred = cred, expires = expires }), ttl)
  end)
end

-- The last temporary pair issued and its expiry, while it is valid; or nil.
function M.last_temporary_credential()
  local text = dict:get("mdlast")
  if not text then return nil end
  local last = json.decode(text)
  return last.cred, last.expires
end

function M.put_metadata_token(token, ttl)
  put("mdtok:" .. token, true, ttl)
end

function M.metadata_token(token)
  return dict:get("mdtok:" .. token) ~= nil
end

-- IAM projects the AK/SK lookup lists: configured ({ {name, id}, ... }), else those of the
-- account of a key whose own project is `of_project`: every project of the IAM users of the
-- domain that holds it (an access key is an IAM user's, valid in every project of its account,
-- never another account's). A project no user holds (or none given) stands for every user's.
function M.set_projects(list)
  set_json("projects", list)
end

function M.projects(of_project)
  local list = get_json("projects")
  if list then return list end
  local users, domain = M.users(), nil
  for _, user in ipairs(of_project and users or {}) do
    for _, id in pairs(user.projects or {}) do
      if id == of_project then domain = user.domain end
    end
  end
  list = {}
  local seen = {}
  for _, user in ipairs(users) do
    if domain == nil or user.domain == domain then
      for name, id in pairs(user.projects or {}) do
        if not seen[id] then
          seen[id] = true
          list[#list + 1] = { name = name, id = id }
        end
      end
    end
  end
  return list
end

function M.set_users(list)
  set_json("users", list)
end

function M.users()
  return get_json("users") or {}
end

-- Issued tokens and the emulator's clock -------------------------------------------------------

M.DEFAULT_TOKEN_TTL = 24 * 3600 -- documented: "Token的有效期为24小时"

function M.token_ttl()
  return dict:get("token_ttl") or M.DEFAULT_TOKEN_TTL
end

function M.set_token_ttl(seconds)
  put("token_ttl", seconds)
end

-- The emulator's clock: real time plus a settable offset, so that a test can put the server's
-- clock ahead of or behind the client's (X-Sdk-Date skew, token expiry).
function M.now()
  return ngx.now() + (dict:get("clock_offset") or 0)
end

function M.set_clock_offset(seconds)
  put("clock_offset", seconds)
end

function M.put_issued_token(token, record)
  set_json("itok:" .. token, record)
end

function M.issued_token(token)
  return get_json("itok:" .. token)
end

-- Mark every issued token expired (they stay known, so that the answer says "expired"): all of
-- them, or none when the store is full. Returns how many were still valid.
function M.expire_issued_tokens()
  local n, now = 0, M.now()
  all_or_nothing(function()
    for _, key in ipairs(dict:get_keys(0)) do
      if key:sub(1, 5) == "itok:" then
        local rec = get_json(key)
        if rec and not rec.expired and now < rec.expires_at then
          rec.expired = true
          set_json(key, rec)
          n = n + 1
        end
      end
    end
  end)
  return n
end

-- (a counter of M.init: counted in place, even in a full store)
function M.count(name)
  incr(name)
end

-- Bandwidths ---------------------------------------------------------------------------------

function M.next_seq()
  return incr("seq")
end

-- Decoding loses the difference between [] and {}: mark the array fields again. A bandwidth
-- still being made (see M.put_creating) reads CREATING; its record keeps the status it will have.
local function bandwidth_of(rec)
  if not rec then
    return nil
  end
  local bw = rec.bw
  if dict:get("creating:" .. bw.id) then bw.status = "CREATING" end
  bw.publicip_info = json.array(bw.publicip_info)
  bw.bandwidth_rules = json.array(bw.bandwidth_rules)
  return bw
end

function M.get_bandwidth(id)
  return bandwidth_of(get_json("bw:" .. id))
end

-- (Its writes are undone when one is refused only inside M.atomically, where every caller runs it.)
function M.put_bandwidth(bw)
  del("gone:" .. bw.id) -- made again under the id of a deleted one: only this one now
  local rec = get_json("bw:" .. bw.id)
  set_json("bw:" .. bw.id, { seq = rec and rec.seq or M.next_seq(), bw = bw })
  for _, ip in ipairs(bw.publicip_info) do
    put("eip:" .. ip.publicip_id, bw.id)
  end
end

-- Bandwidth `id` reads CREATING for `seconds` (the creating_for knob): a mark that expires by
-- itself. (At least a millisecond: the dict counts milliseconds, and a time of 0 never expires.)
function M.put_creating(id, seconds)
  put("creating:" .. id, true, math.max(seconds, 0.001))
end

-- Returns the place the bandwidth had in creation order (its seq), or nil when there was none.
function M.delete_bandwidth(id)
  local rec = get_json("bw:" .. id)
  local bw = bandwidth_of(rec)
  if not bw then
    return nil
  end
  for _, ip in ipairs(bw.publicip_info) do
    if dict:get("eip:" .. ip.publicip_id) == id then
      del("eip:" .. ip.publicip_id)
    end
  end
  del("bw:" .. id)
  return rec.seq
end

-- Every bandwidth, oldest first; optionally only those of one project; with_gone: also those
-- deleted but still readable (what the API lists for a while after their 204).
function M.all_bandwidths(project_id, with_gone)
  local recs = {}
  for _, key in ipairs(dict:get_keys(0)) do
    if key:sub(1, 3) == "bw:" or (with_gone and key:sub(1, 5) == "gone:") then
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

-- (a full store logs what it has room for: the request is answered all the same)
function M.record_request(entry)
  incr("requests")
  local marked, err = dict:safe_add("conn:" .. entry.connection, true, CONN_TTL)
  if marked then
    incr("connections")
  elseif err ~= "exists" then
    incr("uncounted_connections") -- (no room for its mark: a new connection or not, see M.stats)
  end
  local seq = incr("log_seq")
  entry.seq = seq
  entry.body, entry.body_truncated = cap_body(entry.body)
  -- (an entry a full store has no room for is left out of the log; the request is answered)
  local key = "log:" .. (seq % M.LOG_SIZE)
  if not dict:safe_set(key, json.encode(entry)) then dict:delete(key) end
end

-- connections is left out once a request came on a connection a full store had no room to mark
-- (uncounted_connections: how many): the count could fall short, and a test of connection reuse
-- pass for nothing.
function M.stats()
  local out = {}
  for _, name in ipairs(COUNTERS) do
    if name ~= "log_seq" then out[name] = dict:get(name) or 0 end
  end
  if out.uncounted_connections > 0 then out.connections = nil end
  return out
end

-- The logged requests, oldest first, and how many of them a full store left out (see
-- record_request: a log with gaps must not pass for the whole one).
function M.requests()
  local last = dict:get("log_seq") or 0
  local out, missing = {}, 0
  for seq = math.max(1, last - M.LOG_SIZE + 1), last do
    local entry = get_json("log:" .. (seq % M.LOG_SIZE))
    if entry and entry.seq == seq then
      out[#out + 1] = entry
    else
      missing = missing + 1
    end
  end
  return out, missing
end

-- Injections ---------------------------------------------------------------------------------

-- A rule each: inject:<n> (its JSON, never written again) and inject_times:<n> (its times, -1:
-- until reset), for n from inject_head (none before it is pending) to inject_tail (the last
-- queued). Taking a rule changes a number in place or deletes: it needs no room, so a full store
-- never loses nor repeats a rule (one value holding the queue, written anew at each take, was
-- dropped whole when the store had no room for its new size).

--- Queue a rule (nothing of it when the store is full: raises, M.FULL in the message).
function M.add_rule(rule)
  all_or_nothing(function()
    local n = incr("inject_tail")
    if dict:get("inject_head") == nil then put("inject_head", n) end
    put("inject:" .. n, json.encode(rule))
    put("inject_times:" .. n, rule.times)
  end)
end

--- The pending rules, in the order they were queued, and the place of each (for take_rule).
function M.get_rules()
  local rules, places = {}, {}
  for n = dict:get("inject_head") or 1, dict:get("inject_tail") or 0 do
    local text, times = dict:get("inject:" .. n), dict:get("inject_times:" .. n)
    if text and times then
      local rule = json.decode(text)
      rule.times = times
      places[#rules + 1] = n
      rules[#rules + 1] = rule
    end
  end
  return rules, places
end

function M.has_rules()
  return (dict:get("inject_tail") or 0) >= (dict:get("inject_head") or 1)
end

--- The rule at `place` answers once more: one time fewer, gone after its last.
function M.take_rule(place)
  local key = "inject_times:" .. place
  local times = dict:get(key)
  if times == nil or times < 0 then return end
  if times > 1 then
    dict:incr(key, -1)
    return
  end
  dict:delete("inject:" .. place)
  dict:delete(key)
  local head, tail = dict:get("inject_head") or 1, dict:get("inject_tail") or 0
  local n = head
  while n <= tail and dict:get("inject_times:" .. n) == nil do n = n + 1 end
  if n > head then dict:incr("inject_head", n - head) end
end

-- Knobs: behaviour of the real cloud that tests turn on (reset restores the defaults) ---------

--- name -> default. deleted_visible_for: seconds a deleted bandwidth can still be read and listed;
-- creating_for: seconds a bandwidth the API's create made reads CREATING (and refuses changes);
-- aksk_lock_after / aksk_lock_seconds: failed signatures in a row that lock an AK, and for how
-- long (Huawei Cloud: 5 and 300).
M.KNOBS = { deleted_visible_for = 0, creating_for = 0, aksk_lock_after = 5, aksk_lock_seconds = 300,
  metadata_credential_ttl = 3600, metadata_token_status = 200, metadata_same_keys = 1, throttle_rate = 0,
  throttle_retry_after = 0 }

function M.knob(name)
  local v = dict:get("knob:" .. name)
  if v == nil then return M.KNOBS[name] end
  return v
end

function M.set_knob(name, value)
  put("knob:" .. name, value)
end

-- A deleted bandwidth that stays readable for `seconds` (the real API shows it for a while
-- after the 204).
function M.put_gone(bw, seconds, seq)
  put("gone:" .. bw.id, json.encode({ seq = seq or M.next_seq(), bw = bw }), seconds)
end

function M.get_gone(id)
  return bandwidth_of(get_json("gone:" .. id))
end

-- Throttling ----------------------------------------------------------------------------------

--- One more request of `user` in this second's window: true when it is over `limit` (the
-- gateway's "policy user over ratelimit, limit:N, time:1 second": fixed one-second windows).
-- Raises (M.FULL in the message) when a new window does not fit: a request let through
-- uncounted would pass a test that the client keeps under the rate for nothing.
function M.over_rate(user, limit)
  if incr("thr:" .. math.floor(M.now()) .. ":" .. user, 3) <= limit then return false end
  M.count("throttled")
  return true
end

-- AK locks ------------------------------------------------------------------------------------

--- Is `ak` locked (too many failed signatures in a row)?
function M.ak_locked(ak)
  return dict:get("aklock:" .. ak) ~= nil
end

--- A failed signature of an existing AK; locks it at aksk_lock_after in a row. Returns true
-- when this failure locked it. Raises (M.FULL in the message) when the failure or the lock does
-- not fit, leaving the count as it was: a key left unlocked would pass a test for nothing.
function M.ak_failed(ak)
  local key = "akfail:" .. ak
  if incr(key) < M.knob("aksk_lock_after") then return false end
  local seconds = M.knob("aksk_lock_seconds")
  if seconds < 0.001 then -- (a lock of no time locks nothing; the dict would keep it for good)
    dict:delete(key)
    return false
  end
  local ok, err = dict:safe_set("aklock:" .. ak, true, seconds)
  if not ok then
    dict:incr(key, -1)
    refuse("aklock:" .. ak, err)
  end
  dict:delete(key)
  M.count("aksk_locks")
  return true
end

--- A good signature: the count of failures in a row starts again.
function M.ak_succeeded(ak)
  dict:delete("akfail:" .. ak)
end

-- Reset --------------------------------------------------------------------------------------

-- The counters back to 0, in place (made again if one is missing).
local function zero_counters()
  for _, name in ipairs(COUNTERS) do
    local ok, err = dict:safe_set(name, 0)
    if not ok then refuse(name, err) end
  end
end

-- Forget counters, connection markers and the request log; keep bandwidths and injections.
function M.reset_counters()
  for _, key in ipairs(dict:get_keys(0)) do
    if key:sub(1, 5) == "conn:" or key:sub(1, 4) == "log:" then
      dict:delete(key)
    end
  end
  zero_counters()
end

-- What reset keeps: the authentication setup (configured and issued tokens, AK/SK pairs, users),
-- which a test suite configures once in setup(). The token TTL and the clock offset are test
-- knobs like injections: reset restores their defaults, so a test that turns one cannot leak it.
local KEEP = { tokens = true, default_project = true, aksk = true, users = true }

-- Forget bandwidths, injections, counters, the log and the knobs; keep the authentication setup.
function M.reset()
  for _, key in ipairs(dict:get_keys(0)) do
    if not (KEEP[key] or IS_COUNTER[key] or key:sub(1, 5) == "itok:") then
      dict:delete(key)
    end
  end
  dict:flush_expired()
  zero_counters()
end

return M
