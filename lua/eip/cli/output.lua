--- What `eip delete-bandwidth` prints for each id and at the end (text, table or JSON), how an
-- error reads under `--json`, and how numbers from the API are shown.
--
-- An outcome is one id's end: `{ id = ..., outcome = "deleted"|"missing"|"failed"|"not_sent",
-- res = ... }` with `res` the result table of the library (`deleted`, `missing`), or `err = ...`
-- the eip error (`failed`, `not_sent`) and `could_have_acted`: true when what failed may
-- nevertheless have been carried out (a timeout, a reset, a 5xx, an answer lost before: see
-- eip.cli.delete_bandwidth), which the word `FAILED?` says, apart from a certain `FAILED`.
--
-- A result line fits 80 columns for a 36-character id (a UUID):
--
--   deleted  0c64a268-64c7-46a5-9bc3-5bc9e3a4eaff  204                             0.4 ms
--   deleted  fee4846b-0f35-4335-bb25-0b876c8661fd  204           3 attempts         1.2 s
--   FAILED   3c9087e7-50d3-476e-940d-137c2409ace2  409 VPC.0304  1 attempt          0.3 ms
--   FAILED?  c6a81b58-f218-4275-aa3e-7d54a93c0496  timeout       3 attempts         3.8 s
--   drained  8e4fb5a5-6ea9-4ad4-8e40-6b58074ef210  204           150 EIPs           12 ms
--
-- What does not fit (request id, reason, message) is in `--verbose` and in the JSON.
--
-- What `show-bandwidth`, `list-bandwidths` and `delete-bandwidth --drain` print of the API's
-- objects goes through `M.scrubbed` (the client's `clean`: no secret) and, as text, `M.shown`:
-- server text reaches the terminal without a secret and without its control characters.
-- @module eip.cli.output
local eip = require "eip"
local core = require "eip.core"
local args = require "eip.cli.args"
local json = require "eip.cli.json"
local sink = require "eip.cli.sink"

local M = {}

local stderr = require("eip.cli.sink").stderr
local width, aligned = args.width, args.aligned

--- The width result lines and the list of failures keep to.
M.WIDTH = 80

-- "0.4 ms", "12 ms", "1.2 s", "95 s"; "" when not known. At most 7 characters up to 10^7 s.
local function duration(seconds)
  if type(seconds) ~= "number" then return "" end
  if seconds < 0.01 then return string.format("%.1f ms", seconds * 1000) end
  if seconds < 1 then return string.format("%d ms", math.floor(seconds * 1000 + 0.5)) end
  if seconds < 100 then return string.format("%.1f s", seconds) end
  return string.format("%d s", math.floor(seconds + 0.5))
end

local function plural(n, word)
  return string.format("%d %s%s", n, word, n == 1 and "" or "s")
end

-- Why an id was not sent, in a word or two.
local NOT_SENT = { auth = "auth failed", unanswered = "unanswered", cancelled = "interrupted", aborted = "interrupted",
  delete_refused = "drain stopped", throttled = "throttled", unavailable = "unavailable", project = "no project",
  deadline = "deadline" }

-- What happened to a failed or unsent id, short: "409 VPC.0304", "timeout", "refused: dedicated".
local function what_failed(e)
  if e.kind == "http" then return tostring(e.status or "?") .. (e.code and (" " .. e.code) or "") end
  if e.kind == "transport" then return e.reason or "transport" end
  if e.kind == "refused" then return "refused" .. (e.reason and (": " .. e.reason) or "") end
  if e.kind == "not_sent" then
    -- (a batch stopped because its results could no longer be written, no signal caught: not
    -- "interrupted", which is a Ctrl-C's word)
    if e.stopped == "cancelled" and sink.failed() and core.interrupts() == 0 then return "output lost" end
    return NOT_SENT[e.stopped] or "interrupted"
  end
  if e.kind == "interrupted" then return e.cancelled and "interrupted" or "aborted" end
  if e.kind == "wait_timeout" then return "204, still read" end
  if e.kind == "usage" then return "invalid" end
  return e.kind or "error"
end

-- Notes after what happened: the attempts (a success only says them after a retry) and, for a
-- drain, the EIPs moved out.
local function notes_of(o)
  local notes = {}
  if (o.res or o.err).lost_answer then notes[#notes + 1] = "an earlier answer was lost" end
  if o.res then
    local r = o.res
    if r.removed and #r.removed > 0 then notes[#notes + 1] = plural(#r.removed, "EIP") end
    if (r.attempts or 1) > 1 then notes[#notes + 1] = plural(r.attempts, "attempt") end
  else
    local e = o.err
    if e.moved then -- (a drain refused or declined before any remove had no EIP in play: no note)
      local all = #e.moved + #(e.not_moved or {}) + #(e.uncertain or {})
      if all > 0 then notes[#notes + 1] = string.format("%d/%d moved", #e.moved, all) end
    end
    if (e.kind == "http" or e.kind == "transport" or e.kind == "interrupted") and (e.attempts or 0) > 0 then
      notes[#notes + 1] = plural(e.attempts, "attempt")
    end
  end
  return table.concat(notes, ", ")
end

local WORDS = { deleted = "deleted", missing = "missing", failed = "FAILED", not_sent = "NOT SENT" }
-- A failure after which the call may have been carried out all the same: check before a retry.
local UNSURE = "FAILED?"

-- Is this outcome a failure that may have acted (`FAILED?`)?
local function unsure(o)
  return o.outcome == "failed" and o.could_have_acted == true
end

-- What to do about a failure that may have acted, in one line: a drain stopped at a remove call
-- whose EIPs nobody can tell about ("uncertain"), or a delete.
local function unsure_note(o)
  if o.err.stage == "remove" then return "some EIPs may have moved: check with eip show-bandwidth" end
  return "may have been deleted: check with eip show-bandwidth before a retry"
end

-- The columns of a result line: word, id, what happened, notes, time.
local function columns(o)
  local word = unsure(o) and UNSURE or WORDS[o.outcome]
  if o.outcome == "deleted" and o.res.removed and #o.res.removed > 0 then word = "drained" end
  local what, elapsed
  if o.res then
    what = tostring(o.res.status or "")
    if o.outcome == "missing" then what = what .. " " .. tostring(o.res.code or "") end
    elapsed = o.res.elapsed
  else
    what, elapsed = what_failed(o.err), o.err.elapsed
  end
  elapsed = o.elapsed or elapsed -- a drain's: all of its steps
  return word, o.id, what, notes_of(o), duration(elapsed)
end

-- Lays the columns out: word, id and what happened at fixed widths, the notes after them, the
-- time against the right edge (WIDTH); when that cannot fit, with single spaces. Widths are
-- columns of the terminal (args.width), not bytes.
local function layout(word, id, what, notes, time)
  local head = aligned("%-8s %-36s  %-12s", word, id, what)
  if notes ~= "" then head = head .. "  " .. notes end
  local gap = M.WIDTH - width(head) - width(time)
  if gap >= 2 then return (head .. string.rep(" ", gap) .. time):gsub("%s+$", "") end
  local line = table.concat({ string.format("%-8s", word), id, what, notes, time }, " "):gsub("%s+", " ")
  return (line:gsub("%s+$", ""))
end

local function human_line(o)
  return layout(columns(o))
end

-- What the server or the library said of a failure, as one sentence.
local function said(e)
  local reason = e.kind == "http" and e.reason or nil
  local message = e.message
  if message == nil then return reason or e.kind or "?" end -- (a 502 page without an error body)
  if reason and message ~= reason then return reason .. ": " .. message end
  return message
end

-- The cause of an answer's failure, when it has one that is an error of the library's (a 401
-- whose credentials could not be renewed: what IAM or the metadata service said), or nil.
local function cause_of(e)
  local c = e.cause
  if (e.kind == "http" or e.kind == "transport" or e.kind == "proxy") and eip.is_error(c) then return said(c) end
  return nil
end

--- What kept a delete's --wait from reading the bandwidth (a result's `wait_error`), as one line
-- without the "eip: deleted (204), then the wait's" that tostring opens it with: the line it goes
-- on says the delete went through. "GET /v1/.../bandwidths/ID -> 429 Too Many Requests (...)".
-- @param e the wait's error (an eip error)
-- @treturn string the text
function M.wait_error(e)
  return (tostring(e):gsub("^eip: ", ""):gsub("^deleted %(204%), then the wait's ", ""))
end

local function json_line(o)
  local t = { bandwidth_id = o.id, result = o.outcome, ok = o.outcome == "deleted" or o.outcome == "missing" }
  if o.res then
    local r = o.res
    t.status, t.deleted, t.request_id, t.code = r.status, r.deleted, r.request_id, r.code
    t.attempts, t.removed, t.waited, t.still_readable = r.attempts, r.removed, r.waited, r.still_readable
    t.lost_answer, t.project_id, t.requests = r.lost_answer, r.project_id, o.elapsed and r.requests
    t.wait_error = r.wait_error and M.wait_error(r.wait_error)
    local elapsed = o.elapsed or r.elapsed
    if type(elapsed) == "number" then t.elapsed = math.floor(elapsed * 1e6 + 0.5) / 1e6 end
  else
    local e = o.err
    t.status, t.code, t.message, t.request_id, t.kind = e.status, e.code, e.message, e.request_id, e.kind
    t.reason, t.retryable, t.attempts, t.argument = e.reason, e.retryable, e.attempts, e.argument
    t.stage, t.moved, t.not_moved, t.uncertain, t.changed = e.stage, e.moved, e.not_moved, e.uncertain, e.changed
    t.not_sent, t.order_id, t.lost_answer, t.advice = e.not_sent, e.order_id, e.lost_answer, e.advice
    -- (why NOT SENT, as its word says; a body in doubt, which --missing-ok does not take)
    t.stopped, t.trailing, t.truncated = e.stopped, e.trailing, e.truncated
    t.cause = cause_of(e)
    t.could_have_acted = o.could_have_acted == true
  end
  return json.encode(t)
end

--- The line of one outcome: the human form (`format` "text" or "table"), or one JSON object
-- with `bandwidth_id`, `ok`, `result`, `status`, `request_id`, `attempts`, ... (see the README);
-- one that is not ok has `could_have_acted` (true or false).
-- @tparam table o the outcome
-- @tparam string format "text", "table" or "json"
-- @treturn string the line, without a newline
function M.result_line(o, format)
  if format == "json" then return json_line(o) end
  return human_line(o)
end

--- The header of the table form of the result lines.
-- @treturn string the line, without a newline
function M.result_header()
  return layout("RESULT", "ID", "STATUS", "NOTES", "TIME")
end

-- `text` cut into lines of at most `most` columns (at spaces when it can), each after `indent`.
local function wrap(text, indent, most)
  local lines, line = {}, ""
  local room = most - width(indent)
  for word in tostring(text):gsub("[%c]+", " "):gmatch("%S+") do
    while width(word) > room do -- a word longer than a line (Chinese text has no spaces): cut it
      if line ~= "" then lines[#lines + 1], line = indent .. line, "" end
      local cut = args.width_cut(word, room) -- (between two characters, not inside one)
      lines[#lines + 1], word = indent .. word:sub(1, cut), word:sub(cut + 1)
    end
    if line == "" then
      line = word
    elseif width(line) + 1 + width(word) <= room then
      line = line .. " " .. word
    else
      lines[#lines + 1], line = indent .. line, word
    end
  end
  if line ~= "" then lines[#lines + 1] = indent .. line end
  return lines
end

-- The message line of a failure: what was said, the marks tostring gives a body in doubt (a 404
-- VPC.0306 that --missing-ok does not take reads as one of a bandwidth gone without them), and
-- the cause.
local function message_of(e)
  local text = said(e) .. (e.truncated and " [body truncated]" or "") .. (e.trailing and " [more after its JSON]" or "")
  local cause = cause_of(e)
  if cause then return text .. "; cause: " .. cause end
  return text
end

--- The detail `--verbose` prints under a result line: for a `FAILED?`, what to do about it; then
-- request id, reason, message and advice, each line of at most WIDTH characters.
-- @tparam table o the outcome
-- @treturn {string,...} the lines
function M.detail_lines(o)
  local indent = string.rep(" ", 9)
  local v = o.res or o.err
  local lines = {}
  if not o.res then
    if unsure(o) then
      for _, l in ipairs(wrap(unsure_note(o), indent, M.WIDTH)) do lines[#lines + 1] = l end
    end
    for _, l in ipairs(wrap(message_of(o.err), indent, M.WIDTH)) do lines[#lines + 1] = l end
    -- What to do about it (e.g. why --missing-ok did not take this 404): the library's text.
    if o.err.advice then
      for _, l in ipairs(wrap("advice: " .. o.err.advice, indent, M.WIDTH)) do lines[#lines + 1] = l end
    end
  end
  if v.request_id then lines[#lines + 1] = indent .. "request-id " .. v.request_id end
  return lines
end

-- The first line of an entry of the list of failures, "  <id>  <what>  <notes>" in the columns
-- of the result lines, as it is when it fits WIDTH (a UUID and short notes); else what does not
-- fit goes on to the lines below, indented as the message is: the notes broken after a comma (a
-- note such as "2 attempts" stays whole), a note longer than a line at its spaces. No word is
-- lost; the id, never broken, may alone exceed WIDTH.
local function failure_head(id, what, notes)
  local line = (aligned("  %-36s  %-12s  %s", id, what, notes):gsub("%s+$", ""))
  if width(line) <= M.WIDTH then return { line } end
  -- Each piece, with the column it starts after on the first line and what goes before it.
  local pieces = { { what, 38, "  " } }
  for note in notes:gmatch("[^,]+,?") do
    local first = #pieces == 1
    pieces[#pieces + 1] = { (note:gsub("^%s+", "")), first and 52 or 0, first and "  " or " " }
  end
  local lines, on_first = {}, true
  line = "  " .. id
  for _, p in ipairs(pieces) do
    local text, column, before = p[1], p[2], p[3]
    local longer = line .. (on_first and string.rep(" ", column - width(line)) or "") .. before .. text
    if width(longer) <= M.WIDTH then
      line = longer
    else
      local wrapped = wrap(text, "    ", M.WIDTH)
      if #wrapped > 0 then
        lines[#lines + 1], on_first = line, false
        for i = 1, #wrapped - 1 do lines[#lines + 1] = wrapped[i] end
        line = wrapped[#wrapped]
      end
    end
  end
  lines[#lines + 1] = (line:gsub("%s+$", ""))
  return lines
end

--- The failures again, for the end of a batch: each id with what failed and the attempts, then
-- on the lines below, for one that may have acted, `FAILED?` and what to do about it, and the
-- message. At most `max` of them; a last line counts the others. Every line keeps to WIDTH but
-- for a word longer than that: notes that do not fit after the id go on to the lines below.
-- @tparam {table,...} failed the outcomes that failed, in the order they came
-- @tparam[opt=20] integer max how many to list
-- @treturn string the text, ending with a newline ("" when none failed)
function M.failures(failed, max)
  if #failed == 0 then return "" end
  max = max or 20
  local lines = { string.format("Failed (%d):", #failed) }
  for i, o in ipairs(failed) do
    if i > max then
      lines[#lines + 1] = string.format("  ... and %d more (each has its line above; --output json lists all)",
        #failed - max)
      break
    end
    local _, id, what, notes = columns(o)
    for _, l in ipairs(failure_head(id, what, notes)) do lines[#lines + 1] = l end
    if unsure(o) then
      for _, l in ipairs(wrap(UNSURE .. " " .. unsure_note(o), "    ", M.WIDTH)) do lines[#lines + 1] = l end
    end
    for _, l in ipairs(wrap(message_of(o.err), "    ", M.WIDTH)) do lines[#lines + 1] = l end
  end
  return table.concat(lines, "\n") .. "\n"
end

--- Server text as the command prints it: without the client's secrets (`client:clean`) and
-- without control characters (@{shown}).
-- @tparam table client the eip client
-- @param v the value (a string, a number, or nil: "-")
-- @treturn string
function M.server_text(client, v)
  return M.shown(client:clean(v))
end

--- Lists on stderr the EIP ids of a failed drain (the result line only counts them), each as
-- @{server_text}.
-- @tparam table o the outcome
-- @tparam table client the eip client
function M.report_moves(o, client)
  local e = o.err
  if o.outcome ~= "failed" or not e.moved then return end
  for _, f in ipairs{ { "moved out", e.moved }, { "not moved", e.not_moved }, { "uncertain", e.uncertain } } do
    if f[2] and #f[2] > 0 then
      local ids = {}
      for i, id in ipairs(f[2]) do ids[i] = M.server_text(client, id) end
      stderr:write(string.format("  %s %s (%d): %s\n", o.id, f[1], #f[2], table.concat(ids, " ")))
    end
  end
end

--- The summary line of a batch: `3 bandwidth(s): 2 deleted, 0 missing, 1 failed  (0.01 s)`;
-- failures that may have acted (`FAILED?`) are counted among the failed too:
-- `... 3 failed (2 may have acted)`.
-- @tparam integer total the number of ids
-- @tparam table counts `deleted`, `missing`, `failed`, `not_sent`, `uncertain` (the failed that
--   may have acted)
-- @tparam number elapsed seconds
-- @treturn string the line, without a newline
function M.summary(total, counts, elapsed)
  local not_sent = (counts.not_sent or 0) > 0 and string.format(", %d not sent", counts.not_sent) or ""
  local uncertain = (counts.uncertain or 0) > 0 and string.format(" (%d may have acted)", counts.uncertain) or ""
  return string.format("%d bandwidth(s): %d deleted, %d missing, %d failed%s%s  (%.2f s)", total,
    counts.deleted, counts.missing, counts.failed, uncertain, not_sent, elapsed)
end

--- The line saying that the API throttled a batch, and where the batch settled.
-- @tparam table summary a batch summary with `throttled` > 0 (see `client:delete_bandwidths`)
-- @treturn string the line, without a newline
function M.throttled(summary)
  local line = string.format("eip: the API throttled %d answer(s); concurrency %d at the end (lowest %d)",
    summary.throttled, summary.concurrency or 0, summary.concurrency_min or 0)
  if summary.rate then line = line .. string.format(", %.1f requests/s", summary.rate) end
  return line
end

--- An error as the one JSON object `--json` prints on stderr: `ok` false, `exit` (the status
-- the command ends with), `kind`, `message`, and what the error has of `status`, `code`,
-- `reason`, `request_id`, `argument`, `retryable`, `attempts`, `advice`, `trailing`, `truncated`.
-- @param e a usage error of the command line or an eip error
-- @tparam integer exit the exit status
-- @treturn string the line, without a newline
function M.error_json(e, exit)
  local t = { ok = false, exit = exit, kind = e.kind or "usage", message = e.message }
  for _, k in ipairs{ "status", "code", "reason", "request_id", "argument", "retryable", "attempts", "advice",
      "trailing", "truncated" } do
    t[k] = e[k]
  end
  t.cause = cause_of(e)
  return json.encode(t)
end

--- A number of the API as text: 10.0 (cjson decodes every JSON number as a float) reads as 10.
-- @param v a number (or anything: shown with `tostring`)
-- @treturn string
function M.number(v)
  if type(v) == "number" and v == math.floor(v) and math.abs(v) < 2^53 then return string.format("%d", v) end
  return tostring(v)
end

--- A field of the API as text for the terminal (`show-bandwidth`, `list-bandwidths`): a string
-- with its control characters (escape sequences, BEL, CR, LF, ...) turned into spaces, as the
-- library cleans server text; a number as @{number} shows it; a boolean as true or false.
-- Anything else (absent, JSON null, an object or a list where the API documents a scalar) is
-- `default`: a server's answer may have any shape, and none may crash the command or write
-- `table: 0x...` or `userdata: (nil)`.
-- @param v the field
-- @param[opt="-"] default what stands for a value that is none of these (false: to try another)
-- @return string the text, or `default`
function M.shown(v, default)
  local t = type(v)
  if t == "string" then return (core.blank_controls(v)) end -- the text only, not whether it had escapes
  if t == "number" then return M.number(v) end
  if t == "boolean" then return tostring(v) end
  if default == nil then return "-" end
  return default
end

--- A copy of a value of the API (a bandwidth, a list of them) whose every string, keys
-- included, went through `client:clean` (its secrets redacted, control characters blanked).
-- With `keep_controls` (JSON output, which escapes them), a string in which it found no secret
-- keeps its control characters. Numbers, booleans and JSON null stay as they are.
-- @param v the value
-- @tparam table client the eip client
-- @tparam[opt] boolean keep_controls keep the control characters of strings that held no secret
-- @return the copy
function M.scrubbed(v, client, keep_controls)
  local t = type(v)
  if t == "string" then
    local c = client:clean(v)
    if keep_controls and c == core.blank_controls(v) then return v end
    return c
  end
  if t ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[M.scrubbed(k, client, keep_controls)] = M.scrubbed(x, client, keep_controls) end
  return out
end

--- The EIPs of a bandwidth of the API: the entries of its `publicip_info` that are objects (any
-- other entry is left out, as is a `publicip_info` that is not a list), and whether it is a list.
-- @tparam table bw the bandwidth
-- @treturn {table,...} the entries
-- @treturn boolean true when `publicip_info` is a list
function M.eips(bw)
  local out, info = {}, bw.publicip_info
  if type(info) ~= "table" then return out, false end
  local n = 0
  for _ in pairs(info) do n = n + 1 end
  for _, ip in ipairs(info) do
    if type(ip) == "table" then out[#out + 1] = ip end
  end
  return out, n == #info
end

--- How many EIPs a bandwidth of the API has, for a count column: "-" when its `publicip_info`
-- is not a list (an object, a string, absent: no count can be read from it, and 0 would say it
-- has none). An empty object reads as an empty list (decoded, `{}` and `[]` are one table): 0.
-- @tparam table bw the bandwidth
-- @treturn number|string
function M.eip_count(bw)
  local eips, whole = M.eips(bw)
  return whole and #eips or "-"
end

return M
