--- What `eip delete-bandwidth` prints for each id and at the end, human or JSON, and how
-- numbers from the API are shown.
--
-- An outcome is one id's end: `{ id = ..., outcome = "deleted"|"missing"|"failed", res = ... }`
-- with `res` the result table of the library (`deleted`, `missing`), or `err = ...` the eip
-- error (`failed`).
-- @module eip.cli.output
local json = require "eip.cli.json"

local M = {}

local stderr = io.stderr

-- "  (0.4 ms)" or "  (1.25 s)"; "" when not known.
local function duration(seconds)
  if type(seconds) ~= "number" then return "" end
  if seconds < 1 then return string.format("  (%.1f ms)", seconds * 1000) end
  return string.format("  (%.2f s)", seconds)
end

-- What failed, as the human line says it.
local function failure(e)
  if e.kind == "http" then
    local detail = e.code and e.message and (e.code .. ": " .. e.message) or e.code or e.message
    return string.format("%d %s%s", e.status or 0, e.reason or "", detail and (" (" .. detail .. ")") or "")
  elseif e.kind == "transport" then
    return string.format("transport error %s: %s", e.reason or "?", e.message or "")
  elseif e.kind == "usage" then
    return "refused: " .. (e.message or "?")
  end
  return (e.kind or "error") .. ": " .. (e.message or "?")
end

local function human_line(o)
  if o.res then
    local r = o.res
    local extra = ""
    if r.removed and #r.removed > 0 then extra = string.format("  after removing %d EIP(s)", #r.removed) end
    if o.outcome == "missing" then
      return string.format("missing  %s  %d %s (already gone; ok with --missing-ok)%s  request-id %s%s",
        o.id, r.status or 404, r.code or r.reason or "", extra, r.request_id or "-", duration(r.elapsed))
    end
    return string.format("deleted  %s  %s %s%s  request-id %s%s", o.id, tostring(r.status or ""),
      r.reason or "", extra, r.request_id or "-", duration(r.elapsed))
  end
  local e = o.err
  local moved = ""
  if e.moved and (#e.moved > 0 or #(e.not_moved or {}) > 0 or #(e.uncertain or {}) > 0) then
    moved = string.format("  [%s: %d EIP(s) moved out, %d not moved, %d uncertain]", e.stage or "?",
      #e.moved, #(e.not_moved or {}), #(e.uncertain or {}))
  end
  if o.outcome == "not_sent" then return string.format("NOT SENT %s  %s", o.id, e.message or "") end
  return string.format("FAILED   %s  %s%s  request-id %s", o.id, failure(e), moved, e.request_id or "-")
end

local function json_line(o)
  local t = { bandwidth_id = o.id, result = o.outcome, ok = o.outcome == "deleted" or o.outcome == "missing" }
  if o.res then
    local r = o.res
    t.status, t.deleted, t.request_id, t.code = r.status, r.deleted, r.request_id, r.code
    t.attempts, t.removed, t.waited, t.still_readable = r.attempts, r.removed, r.waited, r.still_readable
    if type(r.elapsed) == "number" then t.elapsed = math.floor(r.elapsed * 1e6 + 0.5) / 1e6 end
  else
    local e = o.err
    t.status, t.code, t.message, t.request_id, t.kind = e.status, e.code, e.message, e.request_id, e.kind
    t.reason, t.retryable, t.attempts, t.argument = e.reason, e.retryable, e.attempts, e.argument
    t.stage, t.moved, t.not_moved, t.uncertain = e.stage, e.moved, e.not_moved, e.uncertain
    t.not_sent, t.order_id = e.not_sent, e.order_id
  end
  return json.encode(t)
end

--- The line of one outcome. Human: `deleted  ID  204 No Content  request-id ...  (0.4 ms)`,
-- `missing  ...`, `FAILED   ID  WHAT FAILED  request-id ...`. JSON: one object with
-- `bandwidth_id`, `ok`, `result`, `status`, `request_id`, ... (see the README).
-- @tparam table o the outcome
-- @tparam boolean as_json JSON rather than the human form
-- @treturn string the line, without a newline
function M.result_line(o, as_json)
  if as_json then return json_line(o) end
  return human_line(o)
end

--- Lists on stderr the EIP ids of a failed drain (the human line only counts them).
-- @tparam table o the outcome
function M.report_moves(o)
  local e = o.err
  if o.outcome ~= "failed" or not e.moved then return end
  for _, f in ipairs{ { "moved out", e.moved }, { "not moved", e.not_moved }, { "uncertain", e.uncertain } } do
    if f[2] and #f[2] > 0 then
      stderr:write(string.format("  %s %s (%d): %s\n", o.id, f[1], #f[2], table.concat(f[2], " ")))
    end
  end
end

--- The summary line of a batch: `3 bandwidth(s): 2 deleted, 0 missing, 1 failed  (0.01 s)`.
-- @tparam integer total the number of ids
-- @tparam table counts `deleted`, `missing`, `failed`
-- @tparam number elapsed seconds
-- @treturn string the line, without a newline
function M.summary(total, counts, elapsed)
  local not_sent = (counts.not_sent or 0) > 0 and string.format(", %d not sent", counts.not_sent) or ""
  return string.format("%d bandwidth(s): %d deleted, %d missing, %d failed%s  (%.2f s)", total,
    counts.deleted, counts.missing, counts.failed, not_sent, elapsed)
end

--- A number of the API as text: 10.0 (cjson decodes every JSON number as a float) reads as 10.
-- @param v a number (or anything: shown with `tostring`)
-- @treturn string
function M.number(v)
  if type(v) == "number" and v == math.floor(v) and math.abs(v) < 2^53 then return string.format("%d", v) end
  return tostring(v)
end

return M
