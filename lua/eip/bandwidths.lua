--- Shared-bandwidth operations beyond the delete: show, list, remove EIPs, and the
-- drain-then-delete workflow. Loading this module adds methods to `eip.client`'s Client, so
-- every client made by `eip.new` has them (`require "eip"` loads it).
--
--   client:show_bandwidth(id)                           -> bandwidth, meta
--   client:list_bandwidths{ share_type=, limit=, ... }  -> list, meta
--   client:remove_eips_from_bandwidth(id, eip_ids, { charge_mode=, size= })  -> summary
--   client:drain_and_delete_bandwidth(id, { charge_mode=, size= })          -> result
--
-- Every id and option is validated before any I/O (usage errors); answers are mapped by the
-- same pipeline as the delete (retries, structured errors, redaction).
-- @module eip.bandwidths
local cjson = require "cjson.safe"
local body = require "eip.body"
local errors = require "eip.errors"
local validate = require "eip.validate"
local client_mod = require "eip.client"
local Client = client_mod.Client

local M = {}

--- At most this many EIPs per remove call ("一次可批量操作100个EIP").
M.MAX_EIPS_PER_CALL = 100
--- Page size of `list_bandwidths` when none is given.
M.DEFAULT_PAGE = 1000
-- The docs allow 0..intmax for limit; 0 would mean "no limit" on some deployments, so at
-- least 1 is required to keep pages bounded.
local MAX_PAGE = 2147483647
local MAX_EIP_ID = 36      -- documented maximum length of publicip_id
local MAX_PAGES = 100000   -- a server that never ends its listing cannot hold us forever

-- A private encoder: settings never leak to other users of cjson in the same Lua state.
local json = cjson.new()

local CHARGE_MODES = { bandwidth = true, traffic = true }
local SHARE_TYPES = { WHOLE = true, PER = true }
local LIST_OPTIONS = { share_type = true, limit = true, enterprise_project_id = true }
local REMOVE_OPTIONS = { charge_mode = true, size = true, on_batch = true }
local DRAIN_OPTIONS = { charge_mode = true, size = true, on_batch = true, missing_ok = true }

-- The project id for paths. IAM password clients learn it from the token's scope on first use
-- (Client:_project_id, when eip.client has it); otherwise it must be known already.
local function project(self)
  if self.project_id then return self.project_id end
  if type(self._project_id) == "function" then return self:_project_id() end
  errors.raise_usage("project_id", "is required for this call (set project_id or %s)",
    "HUAWEICLOUD_SDK_PROJECT_ID")
end

-- Decode a 2xx JSON body and check the one field the caller needs; a body without it is an
-- unusable answer (an "http" error carrying the status).
local function decode(resp, method, path, field, want)
  local t, why = body.decode(resp.body)
  if t and type(t[field]) ~= want then why = "the answer has no " .. field .. " " .. want end
  if why then
    local err = errors.protocol(resp, method, path, why)
    error(err, 0)
  end
  return t[field]
end

local function meta(resp, attempts, elapsed)
  return { status = resp.status, request_id = resp.request_id, attempts = attempts, elapsed = elapsed }
end

--- Show one bandwidth: `GET /v1/{project_id}/bandwidths/{id}`.
-- @tparam string bandwidth_id the bandwidth's id
-- @treturn table the bandwidth as the API returns it (id, name, size, share_type,
--   publicip_info = { {publicip_id, publicip_address, ...} }, status, ...)
-- @treturn table `{ status, request_id, attempts, elapsed }` of the answer
-- @raise an eip error (`http` 404 `VPC.0306` when it does not exist)
function Client:show_bandwidth(bandwidth_id)
  client_mod.check(self, "show_bandwidth")
  validate.id("bandwidth_id", bandwidth_id)
  local path = "/v1/" .. project(self) .. "/bandwidths/" .. bandwidth_id
  local resp, attempts, elapsed = self:_call{ method = "GET", path = path }
  return decode(resp, "GET", path, "bandwidth", "table"), meta(resp, attempts, elapsed)
end

local function list_query(opts)
  validate.options("list options", opts, LIST_OPTIONS)
  local q = {}
  if opts.share_type ~= nil then
    if not SHARE_TYPES[opts.share_type] then
      errors.raise_usage("share_type", "must be \"WHOLE\" (shared) or \"PER\" (dedicated), got %s",
        type(opts.share_type) == "string" and string.format("%q", opts.share_type:sub(1, 20)) or type(opts.share_type))
    end
    q[#q + 1] = { "share_type", opts.share_type }
  end
  if opts.enterprise_project_id ~= nil then
    q[#q + 1] = { "enterprise_project_id", validate.id("enterprise_project_id", opts.enterprise_project_id) }
  end
  local limit = validate.integer("limit", opts.limit or M.DEFAULT_PAGE, 1, MAX_PAGE)
  return q, limit
end

--- List bandwidths: `GET /v1/{project_id}/bandwidths`, following `marker` pagination to the
-- end. The docs do not say whether a short page is the last one, so pages are requested until
-- one comes back empty (one extra request, never a missed bandwidth).
-- @tparam[opt] table opts `share_type` = "WHOLE" | "PER", `limit` = page size (1..2^31-1,
--   default 1000), `enterprise_project_id`
-- @treturn table the bandwidths, in the order the API returned them
-- @treturn table `{ pages, requests, attempts, elapsed }`
-- @raise an eip error; a server that repeats a page is an `http` error ("Unusable Answer")
function Client:list_bandwidths(opts)
  client_mod.check(self, "list_bandwidths")
  local q, limit = list_query(opts or {})
  local path = "/v1/" .. project(self) .. "/bandwidths"
  local all, seen, marker = {}, {}, nil
  local info = { pages = 0, requests = 0, attempts = 0, elapsed = 0 }
  while info.pages < MAX_PAGES do
    local query = { { "limit", tostring(limit) } }
    for _, kv in ipairs(q) do query[#query + 1] = kv end
    if marker then query[#query + 1] = { "marker", marker } end
    local resp, attempts, elapsed = self:_call{ method = "GET", path = path, query = query }
    info.requests, info.attempts = info.requests + 1, info.attempts + attempts
    info.elapsed = info.elapsed + elapsed
    local page = decode(resp, "GET", path, "bandwidths", "table")
    if #page == 0 then return all, info end
    info.pages = info.pages + 1
    for _, bw in ipairs(page) do
      local id = type(bw) == "table" and bw.id
      if type(id) ~= "string" or seen[id] then
        -- Without a fresh id the next marker would repeat a page forever.
        error(errors.protocol(resp, "GET", path, "the listing repeated or lacked a bandwidth id"), 0)
      end
      seen[id] = true
      all[#all + 1] = bw
    end
    marker = all[#all].id
  end
  error(errors.protocol({ status = 200 }, "GET", path, "the listing did not end after " .. MAX_PAGES .. " pages"), 0)
end

-- EIP ids: a non-empty list of distinct ids (strings, or { publicip_id =, publicip_type = }
-- for IPv6 ports). Returns the entries of the request body, in order.
local function eip_entries(eip_ids)
  if type(eip_ids) ~= "table" or #eip_ids == 0 then
    errors.raise_usage("eip_ids", "must be a non-empty list of EIP ids")
  end
  local entries, seen = {}, {}
  for i, v in ipairs(eip_ids) do
    local name = "eip_ids[" .. i .. "]"
    local entry = type(v) == "table" and v or { publicip_id = v }
    validate.id(name, entry.publicip_id)
    if #entry.publicip_id > MAX_EIP_ID then
      errors.raise_usage(name, "must be at most %d characters, got %d", MAX_EIP_ID, #entry.publicip_id)
    end
    if entry.publicip_type ~= nil then validate.id(name .. ".publicip_type", entry.publicip_type) end
    if seen[entry.publicip_id] then errors.raise_usage(name, "repeats %q", entry.publicip_id) end
    seen[entry.publicip_id] = true
    entries[i] = { publicip_id = entry.publicip_id, publicip_type = entry.publicip_type }
  end
  return entries
end

-- charge_mode and size of the dedicated bandwidth each removed EIP gets (billing!): both
-- required, so nobody is charged for a default they never chose.
local function removal_terms(opts, known)
  validate.options("options", opts, known)
  if not CHARGE_MODES[opts.charge_mode] then
    errors.raise_usage("charge_mode", "must be \"bandwidth\" or \"traffic\" (billing of the dedicated "
      .. "bandwidth each removed EIP gets)")
  end
  local size = validate.integer("size", opts.size, 1, 2000)
  if opts.on_batch ~= nil and type(opts.on_batch) ~= "function" then
    errors.raise_usage("on_batch", "must be a function(progress), got %s", type(opts.on_batch))
  end
  return opts.charge_mode, size
end

local function ids_of(entries, from, to)
  local out = {}
  for i = from, to do out[#out + 1] = entries[i].publicip_id end
  return out
end

-- After a failed remove batch: which of its EIPs are still in the bandwidth? One GET, best
-- effort. Returns still_present (set) or nil when the GET failed too.
local function still_present(self, bandwidth_id)
  local ok, bw = pcall(self.show_bandwidth, self, bandwidth_id)
  if not ok or type(bw.publicip_info) ~= "table" then return nil end
  local set = {}
  for _, ip in ipairs(bw.publicip_info) do
    if type(ip) == "table" and ip.publicip_id then set[ip.publicip_id] = true end
  end
  return set
end

-- A failed batch: sort its EIPs by what the verifying GET shows. Returns moved, not_moved,
-- uncertain (lists).
local function settle(self, bandwidth_id, batch_ids)
  local present = still_present(self, bandwidth_id)
  if not present then return {}, {}, batch_ids end
  local moved, kept = {}, {}
  for _, id in ipairs(batch_ids) do
    if present[id] then kept[#kept + 1] = id else moved[#moved + 1] = id end
  end
  return moved, kept, {}
end

local function append(list, more)
  for _, v in ipairs(more) do list[#list + 1] = v end
  return list
end

local function remove_body(entries, from, to, charge_mode, size)
  local info = {}
  for i = from, to do info[#info + 1] = entries[i] end
  return json.encode{ bandwidth = { publicip_info = info, charge_mode = charge_mode, size = size } }
end

--- Remove EIPs from a shared bandwidth: `POST /v2.0/{project_id}/bandwidths/{id}/remove`, in
-- batches of at most 100 EIPs. Each removed EIP gets its own dedicated bandwidth of
-- `charge_mode` and `size`, as the API does.
--
-- A batch that fails is checked with one GET of the bandwidth: if none of its EIPs is left in
-- it (e.g. a retried call whose first answer was lost), the batch counts as done and the next
-- one is sent. Otherwise an eip error is raised carrying `moved` (EIP ids no longer in the
-- bandwidth), `not_moved` (still in it, including every later batch), `uncertain` (the check
-- failed too), `bandwidth_id` and `stage = "remove"`.
-- @tparam string bandwidth_id the shared bandwidth
-- @tparam table eip_ids EIP ids (strings, or `{ publicip_id=, publicip_type= }` for IPv6 ports)
-- @tparam table opts `charge_mode` = "bandwidth" | "traffic" and `size` (Mbit/s, 1..2000),
--   both required; `on_batch` = `function(progress)` called after each batch with
--   `{ done, total, batch, batches }`
-- @treturn table `{ ok = true, bandwidth_id, removed = {ids}, requests, request_ids = {...},
--   attempts, elapsed }`
-- @raise an eip error (usage: nothing sent; otherwise with `moved` / `not_moved`)
function Client:remove_eips_from_bandwidth(bandwidth_id, eip_ids, opts)
  client_mod.check(self, "remove_eips_from_bandwidth")
  validate.id("bandwidth_id", bandwidth_id)
  local entries = eip_entries(eip_ids)
  local charge_mode, size = removal_terms(opts or {}, REMOVE_OPTIONS)
  local path = "/v2.0/" .. project(self) .. "/bandwidths/" .. bandwidth_id .. "/remove"
  local per = M.MAX_EIPS_PER_CALL
  local batches = math.ceil(#entries / per) -- no // : this module also runs on LuaJIT
  local summary = { ok = true, bandwidth_id = bandwidth_id, removed = {}, requests = 0, request_ids = {},
    attempts = 0, elapsed = 0 }
  for b = 1, batches do
    local from, to = (b - 1) * per + 1, math.min(b * per, #entries)
    local ok, resp, attempts, elapsed = pcall(self._call, self, {
      method = "POST", path = path, body = remove_body(entries, from, to, charge_mode, size) })
    summary.requests = summary.requests + 1
    if ok then
      summary.attempts, summary.elapsed = summary.attempts + attempts, summary.elapsed + elapsed
      summary.request_ids[#summary.request_ids + 1] = resp.request_id
      append(summary.removed, ids_of(entries, from, to))
    else
      local err = resp
      if not errors.is_error(err) or err.kind == "usage" then error(err, 0) end
      local moved, kept, uncertain = settle(self, bandwidth_id, ids_of(entries, from, to))
      append(summary.removed, moved)
      if #kept > 0 or #uncertain > 0 then
        err.bandwidth_id, err.stage, err.batch = bandwidth_id, "remove", b
        err.moved = summary.removed
        err.not_moved = append(kept, ids_of(entries, to + 1, #entries))
        err.uncertain = uncertain
        error(err, 0)
      end
    end
    if opts.on_batch then
      opts.on_batch{ done = #summary.removed, total = #entries, batch = b, batches = batches }
    end
  end
  return summary
end

--- Empty a shared bandwidth, then delete it: show it, remove every EIP it holds (see
-- `remove_eips_from_bandwidth`), then `DELETE` it.
--
-- A dedicated (`PER`) bandwidth is refused with a `usage` error (`argument = "bandwidth_id"`)
-- before anything changes; unlike other usage errors, one GET was sent to learn its type
-- (`err.method`, `err.path` say which). Failures after the show carry `moved` and `not_moved`
-- (EIP ids) and `stage` ("show", "remove" or "delete"), so an operator knows exactly what
-- changed.
-- @tparam string bandwidth_id the shared bandwidth
-- @tparam table opts `charge_mode` and `size` (required, as for `remove_eips_from_bandwidth`),
--   `missing_ok` (a bandwidth that does not exist is a result with `deleted = false`),
--   `on_batch`
-- @treturn table the delete's result (`ok, deleted, status, reason, bandwidth_id, request_id,
--   attempts, elapsed`) plus `removed` (EIP ids moved out) and `requests` (calls made)
-- @raise an eip error
function Client:drain_and_delete_bandwidth(bandwidth_id, opts)
  client_mod.check(self, "drain_and_delete_bandwidth")
  validate.id("bandwidth_id", bandwidth_id)
  opts = opts or {}
  removal_terms(opts, DRAIN_OPTIONS)
  local missing_ok = self.missing_ok
  if opts.missing_ok ~= nil then missing_ok = validate.boolean("missing_ok", opts.missing_ok) end
  local path = "/v1/" .. project(self) .. "/bandwidths/" .. bandwidth_id
  local ok, bw = pcall(self.show_bandwidth, self, bandwidth_id)
  if not ok then
    local err = bw
    if missing_ok and errors.is_error(err) and err.status == 404 then
      return { ok = true, deleted = false, status = 404, reason = err.reason, code = err.code,
        message = err.message, bandwidth_id = bandwidth_id, request_id = err.request_id,
        attempts = err.attempts, elapsed = err.elapsed, removed = {}, requests = 1 }
    end
    if errors.is_error(err) then err.stage, err.moved, err.not_moved = "show", {}, {} end
    error(err, 0)
  end
  if bw.share_type ~= "WHOLE" then
    local err = errors.usage("bandwidth_id", "%s is a dedicated (%s) bandwidth, not a shared (WHOLE) one: "
      .. "only shared bandwidths can be drained and deleted (one GET was sent; nothing changed)",
      bandwidth_id, tostring(bw.share_type))
    err.method, err.path, err.stage, err.moved, err.not_moved = "GET", path, "show", {}, {}
    error(err, 0)
  end
  local eips = {}
  for _, ip in ipairs(type(bw.publicip_info) == "table" and bw.publicip_info or {}) do
    if type(ip) == "table" and type(ip.publicip_id) == "string" then
      -- publicip_type only matters for IPv6 ports; for EIP ids the API ignores it.
      eips[#eips + 1] = { publicip_id = ip.publicip_id,
        publicip_type = ip.publicip_type == "5_dualStack" and ip.publicip_type or nil }
    end
  end
  local removed, requests = {}, 1
  if #eips > 0 then
    local summary = self:remove_eips_from_bandwidth(bandwidth_id, eips,
      { charge_mode = opts.charge_mode, size = opts.size, on_batch = opts.on_batch })
    removed, requests = summary.removed, requests + summary.requests
  end
  local dok, res = pcall(self.delete_bandwidth, self, bandwidth_id, { missing_ok = missing_ok })
  if not dok then
    if errors.is_error(res) then
      res.stage, res.bandwidth_id, res.moved, res.not_moved = "delete", bandwidth_id, removed, {}
    end
    error(res, 0)
  end
  res.removed, res.requests = removed, requests + 1
  return res
end

return M
