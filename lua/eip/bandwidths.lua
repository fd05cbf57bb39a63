--- Shared-bandwidth work beyond the single delete: show, list (every page), remove EIPs in
-- batches, and the drain-then-delete workflow. Functions over a pipeline runner; the public
-- methods are eip.client's (show_bandwidth, list_bandwidths, remove_eips_from_bandwidth,
-- drain_and_delete_bandwidth), which validate ids before calling these.
--
-- Every request is an operation (eip.ops) run by the pipeline: same credentials, mapping,
-- retries and redaction as the delete.
-- @module eip.bandwidths
local body = require "eip.body"
local core = require "eip.core"
local errors = require "eip.errors"
local validate = require "eip.validate"
local ops = require "eip.ops"
local retry = require "eip.retry"

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
--- At most this many bandwidths in one listing, and this many bytes of its pages' bodies (a
-- server whose pages never end, each of fresh ids, grew the process by some 60 MB a second),
-- weighed by what they decode to: each JSON object or array counts CONTAINER_BYTES more, each
-- `,` or `:` SEPARATOR_BYTES more, each `"` QUOTE_BYTES more. Decoded, `{}` (2 bytes) is a Lua
-- table of about 70, `1,` an array slot of 16, `"k":1,` a key and a node of about 65, `"ab",`
-- a string of 26 and a slot (slots and nodes of 16 to 40 bytes, doubled when a table grows past
-- a power of two): pages of them under a cap of their bytes alone held 3.6 GB. So weighed, what
-- they decode to stays within 1.04 times their weight (arrays of one-element arrays, 2^18 + 1 of
-- them, Lua 5.4; 0.97 on LuaJIT), and a real page (bandwidths of two EIPs each) weighs about 4
-- times what it decodes to: 100000 of them weigh some 350 MB.
M.MAX_LISTED = 100000
M.MAX_LIST_BYTES = 384 * 1024 * 1024
M.CONTAINER_BYTES = 64
M.SEPARATOR_BYTES = 32
M.QUOTE_BYTES = 16

-- What a page's body weighs against MAX_LIST_BYTES (marks inside strings counted too: erring
-- towards stopping early).
local function weight(text)
  return #text + M.CONTAINER_BYTES * select(2, text:gsub("[{%[]", ""))
    + M.SEPARATOR_BYTES * select(2, text:gsub("[,:]", "")) + M.QUOTE_BYTES * select(2, text:gsub('"', ""))
end

local CHARGE_MODES = { bandwidth = true, traffic = true }
local SHARE_TYPES = { WHOLE = true, PER = true }
M.LIST_OPTIONS = { share_type = true, limit = true, enterprise_project_id = true, cancel = true }
local LIST_OPTIONS = M.LIST_OPTIONS
M.REMOVE_OPTIONS = { charge_mode = true, size = true, on_batch = true }
M.DRAIN_OPTIONS = { charge_mode = true, size = true, on_batch = true, missing_ok = true, confirm = true,
  wait = true, cancel = true }
M.PLAN_OPTIONS = { charge_mode = true, size = true, cancel = true }

--- The bandwidth and the answer's meta `{ status, request_id, attempts, elapsed }`. `cancel`: as
-- the pipeline's (eip.pipeline Runner:run); `deadline_at`: the call's own deadline (core.monotime),
-- when it began before the request (a first call's project look-up).
function M.show(runner, project, bandwidth_id, cancel, deadline_at)
  local op = ops.show_bandwidth(project, bandwidth_id)
  op.deadline_at = deadline_at
  local r = runner:run(op, cancel)
  return r.bandwidth, r.meta
end

--- The fixed query pairs and the page size of list options (validated), and the options as a
-- plain copy (eip.validate.options): what the caller reads after this.
function M.list_query(opts, runner)
  opts = validate.options("list options", opts, LIST_OPTIONS)
  local q = {}
  if opts.share_type ~= nil then
    if not SHARE_TYPES[opts.share_type] then
      errors.raise_usage("share_type", "must be \"WHOLE\" (shared) or \"PER\" (dedicated), got %s",
        validate.describe(opts.share_type))
    end
    q[#q + 1] = { "share_type", opts.share_type }
  end
  if opts.enterprise_project_id ~= nil then
    local epid = opts.enterprise_project_id
    q[#q + 1] = { "enterprise_project_id", runner and runner:id("enterprise_project_id", epid)
      or validate.id("enterprise_project_id", epid) }
  end
  local limit = M.DEFAULT_PAGE
  if opts.limit ~= nil then limit = validate.integer("limit", opts.limit, 1, MAX_PAGE) end
  if opts.cancel ~= nil and type(opts.cancel) ~= "function" then
    errors.raise_usage("cancel", "must be a function, got %s", type(opts.cancel))
  end
  return q, limit, opts
end

-- How many times a listing starts again when its marker was deleted meanwhile.
local LIST_RESTARTS = 3

-- One page: the op's result, or nil and the error of a page whose marker names no bandwidth any
-- more (404 VPC.0306: deleted between two pages, by a batch running beside the listing).
-- A page larger than max_body (cut, so unreadable) is returned as the third value: the listing
-- asks for it again in smaller pages.
local function list_page(runner, op, marker, cancel)
  local ok, page = errors.held(runner.run, runner, op, cancel)
  if ok then return page end
  local err = page
  if marker and errors.is_error(err) and errors.bandwidth_gone(err) then
    return nil, err
  end
  if errors.is_error(err) and err.truncated and err.reason == "Unusable Answer" then return nil, nil, err end
  error(err, 0)
end

--- Every bandwidth, page after page (`marker` = the last id seen) until an empty page. A page
-- that repeats an id of its pass, lacks one, or holds one that is not an id (see
-- eip.validate.id) is an unusable answer: an "http" error, and nothing more is sent. A marker
-- deleted meanwhile (404 VPC.0306 for a later page) starts the listing again from its first
-- page, LIST_RESTARTS times at most (`info.restarts`): the new pass is what is listed (the
-- first one's bandwidths may be gone, the marker's is). The runner's `deadline` is the whole
-- listing's (`deadline_at`, core.monotime, when the call began before it: a first call's project
-- look-up): each page's attempts end with it, and a page it would leave less than 50 ms is not
-- sent (eip.pipeline's Call:request). `cancel` (a function: true-ish to stop) is asked before
-- each page. More than MAX_LISTED bandwidths or MAX_LIST_BYTES of pages in one pass are an
-- unusable answer too.
function M.list(runner, project, q, limit, cancel, deadline_at)
  local all, seen, marker, bytes = {}, {}, nil, 0
  local info = { pages = 0, requests = 0, attempts = 0, elapsed = 0, restarts = 0 }
  deadline_at = deadline_at or runner.deadline and core.monotime() + runner.deadline or nil
  while info.pages < MAX_PAGES do
    local query = { { "limit", tostring(limit) } }
    for _, kv in ipairs(q) do query[#query + 1] = kv end
    if marker then query[#query + 1] = { "marker", marker } end
    local op = ops.list_bandwidths_page(project, query)
    op.deadline_at = deadline_at
    local page, gone, cut = list_page(runner, op, marker, cancel)
    info.requests = info.requests + 1
    if cut then
      -- Bandwidths with many EIPs make a page of `limit` of them larger than max_body: the
      -- same page again, half as long (one bandwidth alone too large: the error stands).
      info.attempts, info.elapsed = info.attempts + (cut.attempts or 1), info.elapsed + (cut.elapsed or 0)
      if limit <= 1 then error(cut, 0) end
      limit = math.floor(limit / 2)
      info.smaller_pages = limit
      page = { bandwidths = {} }
    elseif gone then
      info.attempts, info.elapsed = info.attempts + (gone.attempts or 1), info.elapsed + (gone.elapsed or 0)
      if info.restarts >= LIST_RESTARTS then error(gone, 0) end
      -- A new pass from the first page: what the first one listed may be gone since (the
      -- marker's bandwidth is: the 404 says so), and is not kept.
      info.restarts, all, seen, marker, bytes = info.restarts + 1, {}, {}, nil, 0
      page = { bandwidths = {}, restart = true }
    else
      info.attempts, info.elapsed = info.attempts + page.meta.attempts, info.elapsed + page.meta.elapsed
      if #page.bandwidths == 0 then return all, info end
      info.pages = info.pages + 1
      bytes = bytes + weight(page.response.body or "")
      if #all + #page.bandwidths > M.MAX_LISTED or bytes > M.MAX_LIST_BYTES then
        error(errors.protocol(page.response, "GET", op.path, string.format("the listing did not end within %d "
          .. "bandwidths or %d bytes of pages (weighed by what they decode to): nothing more was sent", M.MAX_LISTED,
          M.MAX_LIST_BYTES)), 0)
      end
    end
    for _, bw in ipairs(page.bandwidths) do
      local id = type(bw) == "table" and bw.id
      if type(id) ~= "string" or seen[id] then
        -- Without a fresh id the next marker would repeat a page forever.
        error(errors.protocol(page.response, "GET", op.path, "the listing repeated or lacked a bandwidth id"), 0)
      end
      if not core.is_id(id) then
        -- The last id of a page is sent back as the next page's marker (and shown in the debug
        -- log's URL): one that is no id (escapes, a path, anything a server made up) is not sent
        -- anywhere, nor echoed in the message.
        error(errors.protocol(page.response, "GET", op.path, "the listing holds a bandwidth id that is not "
          .. "an id (1-64 characters of [A-Za-z0-9._-]): nothing more was sent"), 0)
      end
      seen[id] = true
      all[#all + 1] = bw
      marker = id
    end
  end
  error(errors.protocol({ status = 200 }, "GET", "/v1/" .. project .. "/bandwidths",
    "the listing did not end after " .. MAX_PAGES .. " pages"), 0)
end

local ENTRY_KEYS = { publicip_id = true, publicip_type = true }

-- A key of the caller's table for a message: a name quoted, a number, else its type.
local function describe_key(k)
  if type(k) == "string" and #k <= 40 and k:find("^[%w_]+$") then return string.format("%q", k) end
  if type(k) == "number" then return tostring(k) end
  return "a " .. type(k)
end

--- EIP ids: a non-empty list of distinct ids (strings, or { publicip_id =, publicip_type = }
-- for IPv6 ports, with no other key: a misspelt one would be dropped from the request). The
-- caller checks that eip_ids is a list (no hole, no other key). Returns the entries of the
-- request body, in order.
function M.eip_entries(eip_ids, runner)
  if type(eip_ids) ~= "table" or #eip_ids == 0 then
    errors.raise_usage("eip_ids", "must be a non-empty list of EIP ids")
  end
  local entries, seen = {}, {}
  for i, v in ipairs(eip_ids) do
    local name = "eip_ids[" .. i .. "]"
    local entry = { publicip_id = v }
    if type(v) == "table" then
      -- A plain copy, read once (a metamethod that raises is a usage error naming the entry).
      validate.entries(name, v, function(k)
        if not ENTRY_KEYS[k] then
          errors.raise_usage(name, "has the key %s: an entry has only publicip_id and publicip_type",
            describe_key(k))
        end
      end)
      entry = validate.options(name, v, ENTRY_KEYS)
    end
    -- (an id holding a secret of the client's, an SK pasted there, would go in the body)
    if runner then runner:id(name, entry.publicip_id) else validate.id(name, entry.publicip_id) end
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

--- charge_mode and size of the dedicated bandwidth each removed EIP gets (billing!): both
-- required, so nobody is charged for a default they never chose. Returns
-- `{ charge_mode, size, on_batch, confirm, cancel }`, and the options as a plain copy
-- (eip.validate.options): what the caller reads after this.
function M.removal_terms(opts, known)
  opts = validate.options("options", opts, known)
  if not CHARGE_MODES[opts.charge_mode] then
    errors.raise_usage("charge_mode", "must be \"bandwidth\" or \"traffic\" (billing of the dedicated "
      .. "bandwidth each removed EIP gets)")
  end
  local size = validate.integer("size", opts.size, 1, 2000)
  for _, name in ipairs{ "on_batch", "confirm", "cancel" } do
    if opts[name] ~= nil and type(opts[name]) ~= "function" then
      errors.raise_usage(name, "must be a function, got %s", type(opts[name]))
    end
  end
  return { charge_mode = opts.charge_mode, size = size, on_batch = opts.on_batch, confirm = opts.confirm,
    cancel = opts.cancel }, opts
end

local function ids_of(entries, from, to)
  local out = {}
  for i = from, to do out[#out + 1] = entries[i].publicip_id end
  return out
end

-- The EIPs a bandwidth's publicip_info lists: the list (none for JSON null or absent, unless
-- `strict`: a checking GET must say which are left) and the set
-- of their ids; or nil and why it cannot be read: no list, an entry without an id of at most
-- MAX_EIP_ID characters, an id listed twice (the remove call, sent those, would be refused after
-- earlier calls had moved EIPs: the answer is refused before anything moves).
local BAD_EIP_ID = string.format("an EIP whose publicip_id is missing, not an id (1-%d characters of "
  .. "[A-Za-z0-9._-]) or holds a credential", MAX_EIP_ID)

local function listed_eips(info, strict)
  if (info == nil or info == body.null) and not strict then return {}, {} end
  local no_list = "its EIPs in a publicip_info that is no list"
  if type(info) ~= "table" then return nil, no_list end
  local count = 0
  for _ in pairs(info) do count = count + 1 end
  if count ~= #info then return nil, no_list end
  local seen = {}
  for _, ip in ipairs(info) do
    local id = type(ip) == "table" and ip.publicip_id
    if type(id) ~= "string" or not core.is_id(id) or #id > MAX_EIP_ID then
      return nil, BAD_EIP_ID
    end
    if seen[id] then return nil, "an EIP twice" end
    seen[id] = true
  end
  return info, seen
end

-- The EIPs the bandwidth lists now, in its order, and the set of their ids: one GET, best effort,
-- sent with `cancel` (asked during its waits, as for every request of a drain). nil when the GET
-- failed, was stopped, or its answer cannot be read as a list of EIPs (strict: an answer without
-- the list would read every EIP as moved, and the drain go on).
local function listed(runner, project, bandwidth_id, cancel)
  local ok, bw = errors.held(M.show, runner, project, bandwidth_id, cancel)
  if not ok or type(bw) ~= "table" then return nil end
  return listed_eips(bw.publicip_info, true)
end

-- After a failed remove batch: which of its EIPs are still in the bandwidth? The set (see
-- listed), or nil.
local function still_present(runner, project, bandwidth_id, cancel)
  local info, set = listed(runner, project, bandwidth_id, cancel)
  return info and set or nil
end

-- After a drain's delete answered 409: what the bandwidth lists now (see listed), not asked
-- once `cancel` says stop, nor kept when it lists an id holding a secret of the client's (such
-- an id would be shown in `not_moved`).
local function listed_now(runner, project, bandwidth_id, cancel)
  if cancel and cancel() then return nil end
  local info, set = listed(runner, project, bandwidth_id, cancel)
  if not info then return nil end
  for _, ip in ipairs(info) do
    if runner:clean(ip.publicip_id) ~= ip.publicip_id then return nil end
  end
  return info, set
end

-- A failed batch: sort its EIPs by what the verifying GET shows. Returns moved, not_moved,
-- uncertain (lists). `absent_unsure`: an EIP absent from the bandwidth is uncertain rather than
-- moved (the service refused the call, and it may never have been in this bandwidth).
-- `present_unsure`: an EIP still listed is uncertain rather than not moved (a call that went
-- unanswered may still be being carried out: it may move them a moment after the GET).
local function settle(runner, project, bandwidth_id, batch_ids, absent_unsure, present_unsure, cancel)
  local present = still_present(runner, project, bandwidth_id, cancel)
  if not present then return {}, {}, batch_ids end
  local moved, kept, unsure = {}, {}, {}
  for _, id in ipairs(batch_ids) do
    if present[id] then
      if present_unsure then unsure[#unsure + 1] = id else kept[#kept + 1] = id end
    elseif absent_unsure then
      unsure[#unsure + 1] = id
    else
      moved[#moved + 1] = id
    end
  end
  return moved, kept, unsure
end

local function append(list, more)
  for _, v in ipairs(more) do list[#list + 1] = v end
  return list
end

-- The request body's entries from..to: publicip_id and publicip_type only.
local function slice(entries, from, to)
  local out = {}
  for i = from, to do
    out[#out + 1] = { publicip_id = entries[i].publicip_id, publicip_type = entries[i].publicip_type }
  end
  return out
end

-- What `moved` cannot tell: an EIP released (deleted) by someone else after the drain read it is
-- gone from the bandwidth as one moved out is (the GET that checks a failed remove call sees
-- only that, and no answer names the EIP gone), but no bill was made for it.
local UNLESS_RELEASED = "unless it was released meanwhile"

-- The error of a drain that `cancel` stopped between its steps (kind "interrupted", `cancelled`):
-- `op` the request not sent, `stage` the step it belongs to, what moved and what did not.
local function stopped_by_cancel(op, stage, message, bandwidth_id, moved, not_moved)
  local err = errors.cancelled(op, 0)
  err.not_sent, err.message = nil, message
  err.bandwidth_id, err.stage, err.moved, err.not_moved, err.uncertain = bandwidth_id, stage, moved, not_moved, {}
  return err
end

--- Removes `entries` (from @{eip_entries}) in batches of at most 100. A batch that fails after
-- an attempt that may have acted unanswered is checked with one GET of the bandwidth: if none of
-- its EIPs is left in it (e.g. a retried call whose first answer was lost), the batch counts as
-- done and the next one is sent; so is a batch the service refused with a 4xx (other than 429),
-- which may have moved some of its EIPs (`known`: the entries were read from the bandwidth just
-- before, so one absent now moved; else it is uncertain). A batch that never reached the service,
-- or was throttled (429), moved nothing; so did one answered 404 VPC.0306 (the bandwidth is gone:
-- not checked, its EIPs uncertain).
-- Otherwise the eip error is raised carrying `moved`, `not_moved` (still in it, including every
-- later batch), `uncertain` (the check failed too), `bandwidth_id` and `stage = "remove"`.
-- `terms.cancel` (a function: true-ish to stop) is asked before each batch after the first and
-- during the waits of each (see eip.pipeline Runner:run): when it says stop, nothing more is
-- sent, not even the verifying GET, and the error (kind "interrupted") says what moved; a batch
-- stopped after an attempt that may have acted unanswered is `uncertain`. `deadline_at`: the
-- first batch's deadline (core.monotime) when the call began before it (a first call's project
-- look-up). The summary's `requests` counts the calls sent: each remove call and each checking
-- GET, once each, whatever its attempts. `summary`: the table to keep the summary in (a drain
-- reads the requests sent from it when this raises), a new one by default.
function M.remove(runner, project, bandwidth_id, entries, terms, known, deadline_at, summary)
  local per = M.MAX_EIPS_PER_CALL
  local batches = math.ceil(#entries / per) -- no // : this module also runs on LuaJIT
  summary = summary or {}
  summary.ok, summary.bandwidth_id, summary.removed, summary.requests = true, bandwidth_id, {}, 0
  summary.request_ids, summary.attempts, summary.elapsed = {}, 0, 0
  local cancel = terms.cancel
  for b = 1, batches do
    local from, to = (b - 1) * per + 1, math.min(b * per, #entries)
    local op = ops.remove_eips(project, bandwidth_id, slice(entries, from, to), terms.charge_mode, terms.size)
    if b == 1 then op.deadline_at = deadline_at end
    if b > 1 and cancel and cancel() then
      local err = stopped_by_cancel(op, "remove", string.format("interrupted: %d EIP(s) moved out (each now a "
        .. "pay-per-use bandwidth of its own, %s), %d not moved; the bandwidth was not deleted", #summary.removed,
        UNLESS_RELEASED,
        #entries - from + 1), bandwidth_id, summary.removed, ids_of(entries, from, #entries))
      err.batch = b
      error(err, 0)
    end
    local ok, res = errors.held(runner.run, runner, op, cancel)
    summary.requests = summary.requests + 1
    if ok then
      summary.attempts, summary.elapsed = summary.attempts + res.attempts, summary.elapsed + res.elapsed
      summary.request_ids[#summary.request_ids + 1] = res.request_id
      append(summary.removed, ids_of(entries, from, to))
    else
      local err = res
      -- A usage error of the first call: nothing moved, nothing to say. Of a later one (the
      -- credentials not renewed between calls): what the calls before moved must be said.
      if not errors.is_error(err) or (err.kind == "usage" and b == 1) then error(err, 0) end
      local moved, kept, uncertain
      local ids = ids_of(entries, from, to)
      if err.cancelled or retry.halts(err) then
        -- Stopped before another attempt (Ctrl-C stops sending), or refused before the service
        -- saw it (every refused signature counts towards locking the key): no more requests, not
        -- even the verifying GET. Nothing moved, unless an earlier attempt went unanswered,
        -- which may have moved them all.
        if err.earlier_unanswered then
          moved, kept, uncertain = {}, {}, ids
        else
          moved, kept, uncertain = {}, ids, {}
        end
      elseif errors.bandwidth_gone(err) and not err.earlier_unanswered then
        -- The service's "no such bandwidth" (404 VPC.0306) to every attempt that had an answer:
        -- deleted meanwhile (another drain of it, the console), and this call moved nothing. Its
        -- EIPs left with it, by someone else's doing (uncertain); a GET would read the same 404.
        moved, kept, uncertain = {}, {}, ids
      elseif errors.could_have_acted(err) or (err.kind == "http" and err.status ~= 429) then
        -- A timeout, a reset, a garbled or unusable answer, a 5xx, or a retry after one; or the
        -- service refused it with a 4xx (an EIP not in this bandwidth, a policy), and its
        -- documents do not say a remove is all or nothing: an EIP that did move is billed on
        -- its own, and the GET tells. An EIP absent from the bandwidth moved when it was in it
        -- before (the drain's show said so: `known`); else nobody can tell (perhaps it never was
        -- in it): uncertain. When cancel says stop first, not even that GET is sent.
        if cancel and cancel() then
          local stop = stopped_by_cancel(op, "remove", string.format("interrupted before the GET that would "
            .. "tell what a failed remove call moved (%s): %d EIP(s) uncertain, %d moved out before; the "
            .. "bandwidth was not deleted", errors.brief(err), #ids, #summary.removed), bandwidth_id,
            summary.removed, ids_of(entries, to + 1, #entries))
          -- (the failed call went out: its attempts, not the 0 of a request never sent)
          stop.uncertain, stop.batch, stop.cause, stop.attempts = ids, b, err, err.attempts
          error(stop, 0)
        end
        -- (still listed after a call that may still be carried out: a timeout, a reset, a garbled
        -- answer, a 5xx, a 2xx that is no 204 such as 202 Accepted, a transport of the caller's
        -- that raised (reason "other"), or an earlier attempt unanswered)
        moved, kept, uncertain = settle(runner, project, bandwidth_id, ids, not known,
          errors.may_have_acted(err) or err.earlier_unanswered == true, cancel)
        summary.requests = summary.requests + 1 -- (the checking GET: one that failed ends the drain)
      else
        -- The request never reached the service, or was throttled (429) before it was carried
        -- out, and no attempt before went unanswered: nothing moved.
        moved, kept, uncertain = {}, ids, {}
      end
      append(summary.removed, moved)
      if #kept > 0 or #uncertain > 0 then
        err.bandwidth_id, err.stage, err.batch = bandwidth_id, "remove", b
        err.moved = summary.removed
        err.not_moved = append(kept, ids_of(entries, to + 1, #entries))
        err.uncertain = uncertain
        error(err, 0)
      end
    end
    if terms.on_batch then
      local called, raised = pcall(terms.on_batch, { done = #summary.removed, total = #entries, batch = b,
        batches = batches })
      if not called then
        -- The caller's callback stopped the drain: what moved (each EIP now billed on its own)
        -- must still be said, on its error or on one made for it (kind "interrupted").
        local err = raised
        if not errors.is_error(err) then
          err = errors.interrupted(op, 0)
          err.message = "on_batch raised an error, and the drain stopped: " .. body.cut(errors.text(raised), 200)
          err.cause = raised
        end
        err.bandwidth_id, err.stage, err.batch = bandwidth_id, "remove", b
        err.moved, err.not_moved, err.uncertain = summary.removed, ids_of(entries, to + 1, #entries), {}
        error(err, 0)
      end
    end
  end
  return summary
end

-- err, marked as the error of a drain that ended at (or before) its show: nothing moved.
local function at_show(err, bandwidth_id)
  err.bandwidth_id, err.stage, err.moved, err.not_moved, err.uncertain = bandwidth_id, "show", {}, {}, {}
  return err
end

-- Why a bandwidth must not be drained, as an error of kind "refused", or nil. Checked on the
-- show's answer, before anything changes: removing the EIPs of a bandwidth that cannot then be
-- deleted would only turn each of them into a new pay-per-use bandwidth (a new bill).
local function refusal(runner, bw, bandwidth_id, path, sent)
  local reason, message, extra
  if bw.share_type ~= "WHOLE" then
    reason = "dedicated"
    message = string.format("%s is a dedicated (%s) bandwidth, not a shared (WHOLE) one: only shared "
      .. "bandwidths can be drained and deleted", bandwidth_id, tostring(bw.share_type))
  elseif type(bw.billing_info) == "string" and bw.billing_info ~= "" then
    reason = "prepaid"
    local order = bw.billing_info:match("^([^:]+)")
    extra = { order_id = order }
    -- (no order id before the first colon: said so; Lua 5.1's %s refuses a nil)
    message = string.format("%s is a yearly/monthly (prepaid) bandwidth (order %s): this API cannot delete it; "
      .. "unsubscribe it through billing (Billing Center > Unsubscriptions) instead", bandwidth_id,
      order or "not given")
  elseif bw.status ~= "NORMAL" then
    -- (reason "frozen" for any status but NORMAL, as documented; the message says which: the
    -- service shows a new bandwidth as CREATING until it is ready, which is no freeze)
    reason = "frozen"
    extra = { bandwidth_status = bw.status }
    message = string.format(bw.status == "FREEZED" and "%s is in status %s, not NORMAL: a frozen bandwidth "
      .. "(arrears, or frozen by the provider) cannot be changed" or "%s is in status %s, not NORMAL: only a "
      .. "NORMAL bandwidth is drained (a new one is CREATING until it is ready): read it again later",
      bandwidth_id, tostring(bw.status))
  else
    return nil
  end
  local err = at_show(errors.refused(reason, message .. " " .. sent), bandwidth_id)
  err.method, err.path = "GET", path
  -- Server text (the type, the status, the order id): without control characters or secrets.
  err.message = runner:clean(err.message)
  for k, v in pairs(extra or {}) do err[k] = runner:clean(v) end
  return err
end

-- An EIP's address as the server gave it when it is one (IPv4 or IPv6), else nil: the plan
-- carries it to the people asked to confirm it, where text made up by a server has no place.
local function address_of(ip)
  if validate.is_ip_address(ip.publicip_address) then return ip.publicip_address end
  if validate.is_ip_address(ip.publicipv6_address) then return ip.publicipv6_address end
  return nil
end

-- The removal entries of the EIPs a bandwidth holds: IPv6 ports (ip_version 6) need
-- publicip_type "5_dualStack"; for EIP ids the API ignores the type. An EIP id that is not an
-- id (eip.validate.id), or that holds a secret of the client (a server echoing a credential),
-- makes the whole answer unusable: raised as an "http" error (the show's status, reason
-- "Unusable Answer", stage "show", nothing moved) before anything is sent. Those ids would be
-- sent in the remove calls, and shown in the plan, in `moved` and `not_moved`.
-- An entry without a usable id (none, a number, null, an entry that is no object), or a
-- publicip_info that is no list, is as unusable: the EIPs that could be named would move onto
-- new bills before a delete that the others still in the bandwidth would make fail.
local function held_eips(runner, bw, meta, path, bandwidth_id, sent)
  local function unusable(why)
    error(at_show(errors.protocol(meta, "GET", path, bandwidth_id .. " lists " .. why .. ": it was not drained "
      .. sent), bandwidth_id), 0)
  end
  -- (none: JSON null, as the SDK's model allows)
  local info, why = listed_eips(bw.publicip_info)
  if not info then unusable(why) end
  local eips = {}
  for _, ip in ipairs(info) do
    local id = ip.publicip_id
    if runner:clean(id) ~= id then unusable(BAD_EIP_ID) end
    local version = ip.ip_version
    if version ~= nil and version ~= body.null and version ~= 4 and version ~= 6 then
      unusable("an EIP whose ip_version is neither 4 nor 6")
    end
    -- (a dual-stack port may show ip_version 4, as the insert page's example does: removed as
    -- 5_dualStack, its ip_version the show's; one without ip_version is read by its type)
    local v6 = version == 6 or ip.publicip_type == "5_dualStack"
    eips[#eips + 1] = { publicip_id = id, publicip_type = v6 and "5_dualStack" or nil,
      publicip_address = address_of(ip), ip_version = (version == 4 or version == 6) and version or (v6 and 6 or 4) }
  end
  return eips
end

--- What draining would do, read with one GET and changing nothing: `{ bandwidth_id, bandwidth
-- (as shown), eips = { {publicip_id, publicip_type, publicip_address, ip_version} }, charge_mode,
-- size, remove_calls, requests }` (`publicip_address` only when it is an IP address). Raises the
-- show's error, a "refused" error when the bandwidth must not be drained (dedicated, prepaid, not
-- NORMAL), or an "http" error (reason "Unusable Answer") when an EIP id it lists is not an id or
-- holds a credential, its billing_info is neither a string nor none (prepaid cannot be
-- told), or its share_type or status is no string. `deadline_at`: the GET's deadline, as for @{show}.
-- `gets`: the GETs sent by the end of this one, which its errors say (none: 1; a drain's second
-- read, after `confirm`: 2).
function M.plan(runner, project, bandwidth_id, terms, deadline_at, gets)
  local sent = gets == 2 and "(two GETs were sent; nothing changed)" or "(one GET was sent; nothing changed)"
  local show = ops.show_bandwidth(project, bandwidth_id)
  local bw, meta = M.show(runner, project, bandwidth_id, terms.cancel, deadline_at)
  -- billing_info is a string (an order: prepaid) or none; anything else cannot be told from a
  -- prepaid bandwidth's, whose EIPs must not move onto new bills before a delete it refuses.
  local billing = bw.billing_info
  if billing ~= nil and billing ~= body.null and type(billing) ~= "string" then
    error(at_show(errors.protocol(meta, "GET", show.path, bandwidth_id .. " has a billing_info that is no "
      .. "string: whether it is prepaid cannot be told, and it was not drained " .. sent), bandwidth_id), 0)
  end
  -- share_type and status are strings: a missing or mistyped one is no dedicated or frozen
  -- bandwidth (a refusal would say it is, and quote a Lua table's address), but an answer that
  -- cannot be read.
  for _, field in ipairs{ "share_type", "status" } do
    if type(bw[field]) ~= "string" then
      error(at_show(errors.protocol(meta, "GET", show.path, string.format("%s has %s %s: whether it may be "
        .. "drained cannot be told, and it was not %s", bandwidth_id,
        bw[field] == nil and "no" or "a non-string", field, sent)), bandwidth_id), 0)
    end
  end
  local refused = refusal(runner, bw, bandwidth_id, show.path, sent)
  if refused then error(refused, 0) end
  local eips = held_eips(runner, bw, meta, show.path, bandwidth_id, sent)
  local remove_calls = math.ceil(#eips / M.MAX_EIPS_PER_CALL)
  return { bandwidth_id = bandwidth_id, bandwidth = bw, eips = eips, charge_mode = terms.charge_mode,
    size = terms.size, remove_calls = remove_calls, requests = remove_calls + 1 }
end

-- Poll intervals while waiting for a deleted bandwidth to disappear: soon at first, then every
-- 5 s (as Terraform does).
local WAIT_STEPS = { 0.5, 1, 2, 5 }
-- The time a wait keeps for its last read: a pause that would run past the end is cut short, so
-- that a read still goes this long before the end (a wait of 3.4 s read at 0, 0.5 and 1.5 s, and
-- gave up there, its next pause of 2 s past the end).
-- The least time the first read of a wait is given: more than the least an attempt is sent
-- with (eip.pipeline's MIN_ATTEMPT_TIME, 0.05 s), so that it goes out.
local MIN_READ = 0.06
local LAST_READ = 0.25
--- How long `wait = true` waits (Terraform's own limit for this resource).
M.DEFAULT_WAIT = 600

-- Raises the error of a wait that Ctrl-C ended: kind "interrupted", `deleted = true`, `waited`
-- (the seconds since the wait began: the eip command's time of the delete leaves them out).
local function interrupted_wait(project, bandwidth_id, reads, started)
  local stop = errors.interrupted(ops.show_bandwidth(project, bandwidth_id), reads)
  stop.deleted, stop.message = true, "deleted (204); the wait for it to disappear was interrupted"
  stop.waited = core.monotime() - started
  error(stop, 0)
end

-- The seconds a failed read's answer asked not to be read again within: its Retry-After, or,
-- after throttling without one, the window of the limit it states when longer than Huawei's
-- advised pause and shorter than the `left` seconds of the wait (retry.window_wait), else the
-- least of that pause (the policy's throttle_min); else 0.
local function asked_wait(runner, err, left)
  local ra = retry.parse_retry_after(err.retry_after, os.time(), err.date)
  if ra then return ra end
  if not retry.throttled(err) then return 0 end
  return retry.window_wait(err, runner.policy, left) or runner.policy.throttle_min
end

-- Raises what ends a wait whose time is up: the error that kept the bandwidth unread when no
-- read showed it (`unread`, an eip error), else a "wait_timeout".
local function time_up(project, bandwidth_id, unread, waited)
  if errors.is_error(unread) then
    unread.deleted, unread.stage, unread.bandwidth_id, unread.waited = true, "wait", bandwidth_id, waited
    error(unread, 0)
  end
  error(errors.wait_timeout(ops.show_bandwidth(project, bandwidth_id), waited), 0)
end

--- After a 204: reads the bandwidth until the service answers 404 VPC.0306 (the real API can
-- still show it for a while), at most `seconds`. Returns the seconds waited; raises a
-- "wait_timeout" error when it is still there, and authentication failures and other answers
-- that asking again would not change (not `retryable`) as they are (with `deleted = true`,
-- `stage = "wait"`: the delete itself went through); Ctrl-C
-- (caught by eip.core.catch_interrupts), or `cancel` (a function: true-ish to stop, asked before
-- each read and at least every 0.25 s of the pauses; inside nginx the callers give it the
-- worker's exit too, watched from the call's start: errors.with_exit) ends it with an
-- "interrupted" error,
-- `deleted = true`. Each error it raises has `waited`: the seconds since the wait began.
-- `first_read`: the first read is given at least MIN_READ, however little of `seconds` is left
-- (a call's own wait, or a batch's first: one that passed validation reads once). No read goes
-- before a failed read's answer said it may (its Retry-After; 2 s after throttling without
-- one, or the window of a limit it states when longer and the wait has that time left: see
-- asked_wait): when that is past the end, the wait ends there. `pacing` (optional): a table the waits
-- of one batch share, so that an id's read keeps to what an earlier id's was told (`not_before`,
-- core.monotime, and `held_by`, that answer); a later id with no time left for a read then ends
-- with a "not sent" error whose `cause` is that answer. Its `bucket` (eip.pace): the batch's
-- own rate, which each read takes a slot of too.
function M.wait_gone(runner, project, bandwidth_id, seconds, cancel, first_read, pacing)
  local started = core.monotime()
  local step, cut = 1, false
  pacing = pacing or {}
  -- The last read's failure while no read has shown the bandwidth: what ends a wait whose time
  -- ran out then (not "still readable", which no read showed).
  local unread
  while true do
    -- A program that catches Ctrl-C (eip.core.catch_interrupts, as the eip command does) ends the
    -- wait at once, before another read: the delete itself is done.
    if core.interrupts() > 0 or (cancel and cancel()) then
      interrupted_wait(project, bandwidth_id, step - 1, started)
    end
    -- Not before the server said (a pause, or a sleep, that ended early; a batch's earlier id)
    local hold = (pacing.not_before or 0) - core.monotime()
    if hold > 0 then
      if hold > started + seconds - MIN_READ - core.monotime() then
        if unread == nil then
          unread = errors.held_past_wait(ops.show_bandwidth(project, bandwidth_id), hold,
            pacing.held_by and errors.copy(pacing.held_by))
        end
        time_up(project, bandwidth_id, unread, core.monotime() - started)
      end
      if runner:pause(hold, cancel) then interrupted_wait(project, bandwidth_id, step - 1, started) end
    end
    -- Each read, its retries included, ends with the wait: a read of `timeout` x attempts must
    -- not hold a wait of a few seconds for minutes.
    local op = ops.show_bandwidth(project, bandwidth_id)
    -- (first_read: a call's own wait, whose first read has at least the least time an attempt
    -- is sent with, however short the wait: one that passed validation reads once. Not the
    -- share of a batch's one time that is left to a later id: none once it is spent)
    op.deadline_at, op.bucket, op.in_wait = started + seconds, pacing.bucket, true
    if step == 1 and first_read then op.deadline_at = math.max(op.deadline_at, core.monotime() + MIN_READ) end
    local ok, err = errors.held(runner.run, runner, op, cancel)
    local waited = core.monotime() - started
    if ok then
      unread = false
    elseif unread ~= false then
      unread = err
    end
    if not ok then
      if not errors.is_error(err) then error(err, 0) end
      if errors.bandwidth_gone(err) then return waited end
      if err.cancelled or err.kind == "interrupted" then interrupted_wait(project, bandwidth_id, step, started) end
      -- An answer that asking again will not change (an authentication failure, the gateway's
      -- 404 APIGW.0101 for a read that never reached the service, a 400, a 405) ends the wait:
      -- polling on would end, minutes later, in a wait_timeout saying the bandwidth could still be
      -- read, which no read showed.
      -- So does throttling that says not to come back within retry_after_cap (each read would
      -- be refused again, and count against the limit), and a service unavailable for longer.
      if retry.halts(err) or err.kind == "usage" or not err.retryable or retry.not_soon(err) then
        -- The delete went through all the same: said on the error, as for a wait_timeout.
        err.deleted, err.stage, err.bandwidth_id, err.waited = true, "wait", bandwidth_id, waited
        error(err, 0)
      end
      -- anything else (a 5xx after its retries, a timeout, throttling): keep asking until the time
      -- is up
    end
    local pause = WAIT_STEPS[step] or WAIT_STEPS[#WAIT_STEPS]
    step = step + 1
    -- (a throttled read reads again no sooner than it was told, each refusal counting)
    local asked = not ok and asked_wait(runner, err, seconds - LAST_READ - waited) or 0
    if asked > 0 then pacing.not_before, pacing.held_by = core.monotime() + asked, err end
    if pause < asked then pause = asked end
    -- (cut once: the read after a cut pause is the last, whatever the sleep did; none when what
    -- the server asked for leaves it too little time)
    if waited + pause > seconds - LAST_READ then
      local last = math.max(seconds - LAST_READ - waited, asked)
      if waited + last > seconds - MIN_READ then last = 0 end
      pause, cut = not cut and last or 0, true
    end
    if pause <= 0 then time_up(project, bandwidth_id, unread, waited) end
    if runner:pause(pause, cancel) then interrupted_wait(project, bandwidth_id, step - 1, started) end
  end
end

-- The same EIPs, in any order?
local function same_eips(a, b)
  if #a ~= #b then return false end
  local set = {}
  for _, e in ipairs(a) do set[e.publicip_id] = true end
  for _, e in ipairs(b) do
    if not set[e.publicip_id] then return false end
  end
  return true
end

--- Show (the plan), confirm, remove every EIP, delete. A bandwidth that must not be drained is
-- refused (kind "refused") after the show and before anything changes; so is one whose plan
-- `terms.confirm(plan)` does not approve (interrupted when `terms.cancel` says stop by then).
-- Failures after the show carry `moved` and `not_moved`
-- (EIP ids) and `stage` ("show", "remove" or "delete"). A delete answered 409 is followed by one
-- GET (best effort, not sent once `cancel` says stop; the error stays the delete's): an EIP it
-- lists that the drain did not move is in `not_moved` and sets `changed = true` (false when it
-- lists none such); one the drain moved that it still lists is `uncertain` rather than `moved`.
-- `terms.cancel` (a function: true-ish to stop) is asked before the show's GET, after it, before
-- each remove batch and before the delete, and during the waits of each request: when it says
-- stop, nothing more is sent and the error (kind "interrupted", `cancelled = true`) says what moved.
function M.drain(runner, project, bandwidth_id, terms, missing_ok, deadline_at)
  -- The plan (one GET): a failure of it, or a refusal, moved nothing; a missing bandwidth is a
  -- result when the delete's own rule says so. The first read's deadline began before it when
  -- the project was looked up first (deadline_at). `planned`: the approved plan's EIPs, on the
  -- read after the confirmation.
  local function read_plan(requests, planned)
    local ok, plan = errors.held(M.plan, runner, project, bandwidth_id, terms, requests == 1 and deadline_at or nil,
      requests)
    if ok then return plan end
    local err = plan
    if errors.is_error(err) and err.kind ~= "refused" then
      local missing = ops.delete_bandwidth(project, bandwidth_id, missing_ok):recover(err)
      if missing then
        missing.removed, missing.requests = {}, requests
        return nil, missing
      end
      at_show(err, bandwidth_id)
      -- Stopped (Ctrl-C) during that read: nothing moved, the planned EIPs stay, as when
      -- stopped at the question.
      if planned and err.kind == "interrupted" then err.not_moved = ids_of(planned, 1, #planned) end
    end
    error(err, 0)
  end
  local plan, missing = read_plan(1)
  if not plan then return missing end
  local requests = 1
  local cancel = terms.cancel
  local delete = ops.delete_bandwidth(project, bandwidth_id, missing_ok)
  -- `cancel` said stop after the show (Ctrl-C, at the question too): nothing more is sent.
  local function interrupted_after_show(when)
    local held = #plan.eips
    local next_op = held > 0 and ops.remove_eips(project, bandwidth_id, {}, terms.charge_mode, terms.size) or delete
    error(stopped_by_cancel(next_op, "show", string.format("interrupted %s: nothing was moved or deleted (%d EIP(s) "
      .. "stay in the bandwidth; %s sent)", when, held, requests == 1 and "one GET was" or requests .. " GETs were"),
      bandwidth_id, {}, ids_of(plan.eips, 1, held)), 0)
  end
  -- Only true approves: a prompt's answer ("n", "no", 0) or a confirm that raises does not. One
  -- that did not approve because `cancel` says stop meanwhile (Ctrl-C at the question, which
  -- ends the read of the answer) was interrupted, as after the show: nobody said no.
  if terms.confirm then
    if errors.guarded(terms.confirm, runner.log, "confirm", false)(plan) ~= true then
      if cancel and cancel() then interrupted_after_show("at the confirmation") end
      error(at_show(errors.refused("not_confirmed", bandwidth_id .. " was not drained: the plan was not "
        .. "confirmed (one GET was sent; nothing changed)"), bandwidth_id), 0)
    end
    -- A person may take minutes to answer: the bandwidth is read again before anything moves.
    -- EIPs added meanwhile would stay in it (the delete refused after every planned one became
    -- a bill of its own), EIPs gone meanwhile would fail a remove call: what was approved is
    -- done only if it is still what would be done.
    local again
    again, missing = read_plan(2, plan.eips)
    if not again then return missing end
    requests = 2
    if not same_eips(plan.eips, again.eips) then
      error(at_show(errors.refused("changed", string.format("%s was not drained: its EIPs changed while the plan "
        .. "was being confirmed (%d planned, %d now; two GETs were sent, nothing changed): confirm the new plan",
        bandwidth_id, #plan.eips, #again.eips)), bandwidth_id), 0)
    end
    plan = again
  end
  local removed = {}
  local held = #plan.eips
  -- (after the show: the next request would be the first remove, or the delete)
  if cancel and cancel() then interrupted_after_show("after the show") end
  if held > 0 then
    local sent = {}
    local rok, summary = errors.held(M.remove, runner, project, bandwidth_id, plan.eips, terms, true, nil, sent)
    if not rok then
      -- (a remove's errors say what moved; a usage error of its first call, the credentials not
      -- renewed before it, says nothing: nothing moved)
      if errors.is_error(summary) and summary.stage == nil then
        summary.bandwidth_id, summary.stage, summary.moved = bandwidth_id, "remove", {}
        summary.not_moved, summary.uncertain = ids_of(plan.eips, 1, held), {}
      end
      -- A remove call answered "no such bandwidth" (deleted meanwhile; no attempt of it
      -- unanswered, see M.remove) moved nothing: with missing_ok that is the delete's own result,
      -- what the calls before it moved in `removed`. (Its own error only: not one on_batch raised.)
      missing = errors.is_error(summary) and summary.method == "POST" and not summary.earlier_unanswered
        and summary.path == delete.path .. "/remove" and delete:recover(summary)
      if missing then
        missing.removed, missing.requests = summary.moved, requests + sent.requests
        return missing
      end
      error(summary, 0)
    end
    removed, requests = summary.removed, requests + summary.requests
    if cancel and cancel() then
      error(stopped_by_cancel(delete, "delete", string.format("interrupted before the delete: %d EIP(s) were "
        .. "moved out (each now a pay-per-use bandwidth of its own, %s); the bandwidth, now empty, was not deleted",
        #removed, UNLESS_RELEASED), bandwidth_id, removed, {}), 0)
    end
  end
  local dok, res = errors.held(runner.run, runner, delete, cancel)
  if not dok then
    if errors.is_error(res) then
      local moved, not_moved, uncertain = removed, {}, {}
      -- A 409 or a 400: the bandwidth still holds EIPs (added since the plan's read, or moved ones
      -- whose removal has not settled), or the service refuses for a reason of its own (the cloud
      -- documents no answer for a delete of a bandwidth with EIPs: the emulator's 409 VPC.0304 is
      -- modelled, and a 400 such as VPC.0323 must not leave the lists unchecked; never after a
      -- refused signature at that status, which a GET would only repeat). One more GET
      -- (best effort: its failure leaves the delete's error as it is) tells which: an EIP it
      -- lists that the drain did not move is `not_moved` (it came meanwhile: `changed`); one the
      -- drain moved (its remove call answered 204) that it still lists is `uncertain`, not moved.
      if res.kind == "http" and (res.status == 409 or res.status == 400) and not retry.halts(res) then
        local info, set = listed_now(runner, project, bandwidth_id, cancel)
        if info then
          local was_moved = {}
          moved = {}
          for _, id in ipairs(removed) do
            was_moved[id] = true
            if set[id] then uncertain[#uncertain + 1] = id else moved[#moved + 1] = id end
          end
          for _, ip in ipairs(info) do
            if not was_moved[ip.publicip_id] then not_moved[#not_moved + 1] = ip.publicip_id end
          end
          res.changed = #not_moved > 0
        end
      end
      res.stage, res.bandwidth_id, res.moved, res.not_moved, res.uncertain = "delete", bandwidth_id, moved,
        not_moved, uncertain
    end
    error(res, 0)
  end
  res.removed, res.requests = removed, requests + 1
  return res
end

return M
