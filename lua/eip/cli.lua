--- The `eip` operator command: argument parsing, commands, output and exit codes.
--
--   eip delete-bandwidth [options] ID... | -      delete shared bandwidths (batch)
--   eip show-bandwidth [options] ID               one bandwidth
--   eip list-bandwidths [options] [--shared]      every bandwidth (all pages)
--   eip status CODE                               what an HTTP status means here
--
-- Exit codes: 0 success (every id deleted, or missing with --missing-ok), 1 some call failed,
-- 2 usage error (nothing was sent). Credentials come only from the environment, as for the
-- library (OS_AUTH_TOKEN, HUAWEICLOUD_SDK_AK/SK/...): a secret on the command line would show
-- in `ps` and in shell history.
-- @module eip.cli
local eip = require "eip"
local core = require "eip.core"
local validate = require "eip.validate"

local M = {}

local EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

-- Output -----------------------------------------------------------------------------------

local stdout, stderr = io.stdout, io.stderr

-- A usage problem found by the command line itself (as opposed to an eip error).
local Usage = {}
Usage.__index = Usage
Usage.__tostring = function(u) return "eip: " .. u.message end

local function usage(fmt, ...)
  error(setmetatable({ message = string.format(fmt, ...) }, Usage), 0)
end

local function is_usage(e)
  return getmetatable(e) == Usage or (eip.is_error(e) and e.kind == "usage")
end

-- A small JSON encoder for the output: sorted keys (stable, diffable lines), and lists that
-- stay lists when empty. cjson 2.1.0 (Debian) turns a decoded [] into {}, so the fields the
-- API documents as arrays are named here.
local ARRAY_KEYS = { publicip_info = true, bandwidth_rules = true, moved = true, not_moved = true,
  uncertain = true, removed = true }

local function json_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    local named = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
    return named[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

local function json_encode(v, as_array)
  local t = type(v)
  if t == "string" then return json_string(v) end
  if t == "boolean" then return tostring(v) end
  if t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then return "null" end
    if math.type(v) == "integer" then return tostring(v) end
    return string.format("%.14g", v) -- enough for times and sizes, without 0.1000000000000000055
  end
  if t ~= "table" then return "null" end
  if as_array or #v > 0 then
    local parts = {}
    for i = 1, #v do parts[i] = json_encode(v[i]) end
    return "[" .. table.concat(parts, ",") .. "]"
  end
  local keys = {}
  for k in pairs(v) do
    if type(k) == "string" then keys[#keys + 1] = k end
  end
  table.sort(keys)
  local parts = {}
  for i, k in ipairs(keys) do parts[i] = json_string(k) .. ":" .. json_encode(v[k], ARRAY_KEYS[k]) end
  return "{" .. table.concat(parts, ",") .. "}"
end
M.json_encode = json_encode

-- Progress bar (stderr, terminals only) ----------------------------------------------------

local Progress = {}
Progress.__index = Progress

local REDRAW_INTERVAL = 0.1 -- seconds: at most ~10 redraws a second, whatever the call rate
local BAR_WIDTH = 24

-- Is stderr a terminal? `test -t 2` in a child shell inherits our stderr: no C needed. Asked
-- once, at start.
local function stderr_is_terminal()
  local ok = os.execute("test -t 2")
  return ok == true or ok == 0
end

function Progress.new(total, enabled)
  return setmetatable({ total = total, done = 0, failed = 0, enabled = enabled,
    started = core.monotime(), drawn_at = nil, visible = false }, Progress)
end

function Progress:draw(force)
  if not self.enabled then return end
  local now = core.monotime()
  if not force and self.drawn_at and now - self.drawn_at < REDRAW_INTERVAL then return end
  self.drawn_at = now
  local fill = self.total > 0 and math.floor(BAR_WIDTH * self.done / self.total) or BAR_WIDTH
  local rate = self.done / math.max(now - self.started, 0.001)
  stderr:write(string.format("\r[%s%s] %d/%d  %.1f/s  %d failed\27[K", string.rep("#", fill),
    string.rep(".", BAR_WIDTH - fill), self.done, self.total, rate, self.failed))
  stderr:flush()
  self.visible = true
end

function Progress:step(failed)
  self.done = self.done + 1
  if failed then self.failed = self.failed + 1 end
  self:draw(self.done == self.total)
end

-- Erase the bar before a line goes to the same terminal.
function Progress:hide()
  if self.visible then
    stderr:write("\r\27[K")
    self.visible = false
  end
end

function Progress:finish()
  if not self.enabled then return end
  self:draw(true)
  stderr:write("\n")
  self.visible = false
end

-- Commands and their options ---------------------------------------------------------------

-- Options every command talking to the API takes. `value` names the argument's metavar.
local CONNECTION = {
  { "--endpoint", value = "URL", key = "endpoint", help = "API endpoint (default: $EIP_ENDPOINT, or from --region)" },
  { "--region", value = "R", key = "region", help = "region, e.g. cn-north-4 (default: $HUAWEICLOUD_SDK_REGION)" },
  { "--project-id", value = "P", key = "project_id", help = "project id (default: $HUAWEICLOUD_SDK_PROJECT_ID)" },
  { "--timeout", value = "S", key = "timeout", number = true, help = "seconds per attempt (default 30)" },
  { "--max-attempts", value = "N", key = "max_attempts", integer = true, help = "attempts per call (default 3)" },
  { "--debug", key = "debug", help = "log every request and response to stderr (secrets redacted)" },
}

local JSON_OPT = { "--json", key = "json", help = "one JSON object per line" }

local function with_connection(list)
  local out = {}
  for _, o in ipairs(list) do out[#out + 1] = o end
  for _, o in ipairs(CONNECTION) do out[#out + 1] = o end
  return out
end

local COMMANDS = {}
local COMMAND_ORDER = { "delete-bandwidth", "show-bandwidth", "list-bandwidths", "status" }

COMMANDS["delete-bandwidth"] = {
  args = "[options] ID... (or - to read ids from stdin, one per line)",
  summary = "delete shared bandwidths",
  about = [[
Deletes each shared bandwidth (DELETE /v2.0/{project_id}/bandwidths/{id}) and prints one line
per id and a summary. With --force, each bandwidth is first emptied: its EIPs are moved out (each
gets a dedicated bandwidth of --size Mbit/s billed by --charge-mode), then it is deleted.
Exit status: 0 every id deleted (or missing, with --missing-ok), 1 some failed, 2 usage error
(nothing was sent).]],
  options = with_connection{
    { "--missing-ok", key = "missing_ok", help = "a bandwidth that does not exist counts as deleted" },
    { "--concurrency", value = "N", key = "concurrency", integer = true,
      help = "deletes in flight at once (1-64, default 1; --force runs one at a time)" },
    JSON_OPT,
    { "--dry-run", key = "dry_run", help = "validate, print what would be sent, send nothing" },
    { "--force", key = "force", help = "remove the bandwidth's EIPs first, then delete it" },
    { "--size", value = "MBIT", key = "size", integer = true,
      help = "with --force: size of each removed EIP's dedicated bandwidth (default 1)" },
    { "--charge-mode", value = "M", key = "charge_mode",
      help = "with --force: bandwidth or traffic (default bandwidth)" },
    { "--no-progress", key = "no_progress", help = "no progress bar (it is only drawn on a terminal)" },
  },
}

COMMANDS["show-bandwidth"] = {
  args = "[options] ID",
  summary = "show one bandwidth and its EIPs",
  about = "Shows one bandwidth (GET /v1/{project_id}/bandwidths/{id}).",
  options = with_connection{ JSON_OPT },
}

COMMANDS["list-bandwidths"] = {
  args = "[options]",
  summary = "list bandwidths (every page)",
  about = "Lists bandwidths (GET /v1/{project_id}/bandwidths), following pagination to the end.",
  options = with_connection{
    { "--shared", key = "shared", help = "shared (WHOLE) bandwidths only" },
    { "--page-size", value = "N", key = "page_size", integer = true, help = "bandwidths per request (default 1000)" },
    JSON_OPT,
  },
}

COMMANDS["status"] = {
  args = "CODE",
  summary = "what an HTTP status means for this API (reason, retryable, advice)",
  about = "Prints the status table entry: reason, class, retryable, advice, descriptions, seeds.",
  options = { JSON_OPT },
}

-- Options that would carry a secret: refused, since arguments are visible to every user in
-- `ps` and end up in shell history. The value is never echoed.
local SECRET_OPTIONS = { ["--token"] = "OS_AUTH_TOKEN", ["--auth-token"] = "OS_AUTH_TOKEN",
  ["--ak"] = "HUAWEICLOUD_SDK_AK", ["--sk"] = "HUAWEICLOUD_SDK_SK",
  ["--security-token"] = "HUAWEICLOUD_SDK_SECURITY_TOKEN", ["--password"] = "OS_AUTH_TOKEN" }

local function distance(a, b)
  local prev = {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    local cur = { [0] = i }
    for j = 1, #b do
      local cost = a:sub(i, i) == b:sub(j, j) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev = cur
  end
  return prev[#b]
end

-- The closest known name, if it is close enough to be a likely typo.
local function closest(name, names)
  local best, best_d
  for _, n in ipairs(names) do
    if #name >= 3 and n:sub(1, #name) == name then return n end -- an abbreviation
  end
  for _, n in ipairs(names) do
    local d = distance(name, n)
    if not best_d or d < best_d then best, best_d = n, d end
  end
  if best and best_d <= math.max(2, #name // 3) then return best end
  return nil
end

local function option_help(options)
  local lines = {}
  for _, o in ipairs(options) do
    local left = o[1] .. (o.value and (" " .. o.value) or "")
    lines[#lines + 1] = string.format("  %-22s %s", left, o.help)
  end
  lines[#lines + 1] = string.format("  %-22s %s", "-h, --help", "this help")
  return table.concat(lines, "\n")
end

local ENV_HELP = [[
Credentials come from the environment only (never from arguments, which show in ps):
  OS_AUTH_TOKEN                      an IAM token, or
  HUAWEICLOUD_SDK_AK, HUAWEICLOUD_SDK_SK [, HUAWEICLOUD_SDK_SECURITY_TOKEN]   an AK/SK pair
  HUAWEICLOUD_SDK_PROJECT_ID, HUAWEICLOUD_SDK_REGION, EIP_ENDPOINT             where to send]]

local function command_help(name)
  local c = COMMANDS[name]
  local text = string.format("usage: eip %s %s\n\n%s\n\noptions:\n%s\n", name, c.args, c.about, option_help(c.options))
  if c.options ~= COMMANDS.status.options then text = text .. "\n" .. ENV_HELP .. "\n" end
  return text
end

local function tool_help()
  local lines = { "usage: eip COMMAND [options] [arguments]", "",
    "Huawei Cloud EIP shared bandwidths from the command line (lua-eip " .. eip._VERSION .. ").", "",
    "commands:" }
  for _, name in ipairs(COMMAND_ORDER) do
    lines[#lines + 1] = string.format("  %-18s %s", name, COMMANDS[name].summary)
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = "eip COMMAND --help (or eip help COMMAND) describes a command's options."
  lines[#lines + 1] = "Exit status: 0 success, 1 a call failed, 2 usage error (nothing was sent)."
  lines[#lines + 1] = ""
  lines[#lines + 1] = ENV_HELP
  return table.concat(lines, "\n") .. "\n"
end

-- Parse a command's arguments: options (--name, --name=value, --name value) anywhere, "--"
-- ends them; "-" is an argument. Returns options (by key), positional arguments, or nil when
-- help was asked for.
local function parse(name, argv, from)
  local c = COMMANDS[name]
  local by_name, names = {}, {}
  for _, o in ipairs(c.options) do by_name[o[1]] = o; names[#names + 1] = o[1] end
  local opts, args = {}, {}
  local i = from
  while i <= #argv do
    local a = argv[i]
    if a == "--" then
      for j = i + 1, #argv do args[#args + 1] = argv[j] end
      break
    elseif a == "-h" or a == "--help" then
      return nil
    elseif a:sub(1, 1) == "-" and a ~= "-" then
      local flag, inline = a:match("^(%-%-?[^=]*)=(.*)$")
      flag = flag or a
      if SECRET_OPTIONS[flag] then
        usage("%s is not accepted: a secret on the command line shows in ps and shell history; "
          .. "export %s instead (see eip %s --help)", flag, SECRET_OPTIONS[flag], name)
      end
      local o = by_name[flag]
      if not o then
        local guess = closest(flag, names)
        usage("unknown option %s for %s%s (see: eip %s --help)", flag, name,
          guess and ("; did you mean " .. guess .. "?") or "", name)
      end
      local v = true
      if o.value then
        v = inline
        if v == nil then
          i = i + 1
          v = argv[i]
          if v == nil then usage("%s needs a value (%s)", flag, o.value) end
        end
        if o.number or o.integer then
          local n = tonumber(v)
          if not n or (o.integer and math.type(n) ~= "integer") then
            usage("%s must be %s, got %q", flag, o.integer and "an integer" or "a number", v:sub(1, 20))
          end
          v = n
        end
      elseif inline ~= nil then
        usage("%s takes no value", flag)
      end
      opts[o.key] = v
    else
      args[#args + 1] = a
    end
    i = i + 1
  end
  return opts, args
end

local function getenv(name)
  local v = os.getenv(name)
  if v == "" then return nil end
  return v
end

-- The client from the options and the environment (the library resolves the credentials).
local function new_client(opts)
  local endpoint = opts.endpoint
  if endpoint == nil and opts.region == nil then endpoint = getenv("EIP_ENDPOINT") end
  return eip.new{
    endpoint = endpoint, region = opts.region, project_id = opts.project_id,
    timeout = opts.timeout, max_attempts = opts.max_attempts, debug = opts.debug or nil,
  }
end

-- delete-bandwidth -------------------------------------------------------------------------

-- Ids from the arguments; "-" reads stdin, one per line (blank lines and # comments skipped).
-- Each is validated (nothing is sent when one is bad); repeats are dropped.
local function collect_ids(args)
  local ids, where, stdin_read = {}, {}, false
  for i, a in ipairs(args) do
    if a == "-" then
      if stdin_read then usage("- (stdin) given twice") end
      stdin_read = true
      local n = 0
      for line in io.stdin:lines() do
        n = n + 1
        line = line:match("^%s*(.-)%s*$")
        if line ~= "" and line:sub(1, 1) ~= "#" then
          ids[#ids + 1], where[#where + 1] = line, "stdin line " .. n
        end
      end
    else
      ids[#ids + 1], where[#where + 1] = a, "argument " .. i
    end
  end
  if #ids == 0 then usage("no bandwidth id given (see: eip delete-bandwidth --help)") end
  local out, seen, repeats = {}, {}, 0
  for i, id in ipairs(ids) do
    local ok, err = pcall(validate.id, "bandwidth_id", id)
    if not ok then usage("%s: %s", where[i], tostring(err.message or err)) end
    if seen[id] then repeats = repeats + 1 else seen[id] = true; out[#out + 1] = id end
  end
  if repeats > 0 then stderr:write(string.format("eip: note: %d repeated id(s) ignored\n", repeats)) end
  return out
end

local function bandwidth_url(client, id)
  return client.endpoint .. "/v2.0/" .. (client.project_id or "{project_id}") .. "/bandwidths/" .. id
end

local function dry_run(client, ids, opts)
  for _, id in ipairs(ids) do
    local url = bandwidth_url(client, id)
    local steps = { { "DELETE", url } }
    if opts.force then
      steps = {
        { "GET", client.endpoint .. "/v1/" .. (client.project_id or "{project_id}") .. "/bandwidths/" .. id },
        { "POST", url .. "/remove", note = string.format("for the EIPs the GET lists, at most 100 per call, "
          .. "charge_mode=%s size=%d", opts.charge_mode, opts.size) },
        { "DELETE", url },
      }
    end
    for _, s in ipairs(steps) do
      if opts.json then
        stdout:write(json_encode{ bandwidth_id = id, dry_run = true, method = s[1], url = s[2], note = s.note }, "\n")
      else
        stdout:write(s[1], " ", s[2], s.note and ("  (" .. s.note .. ")") or "", "\n")
      end
    end
  end
  if not opts.json then
    stdout:write(string.format("dry run: %d bandwidth(s), nothing sent\n", #ids))
  end
  return EXIT_OK
end

-- One outcome per id, whatever produced it (delete_bandwidth, delete_bandwidths, drain):
-- { id, outcome = "deleted"|"missing"|"failed", res = result table, err = eip error }.
local function outcome_of(id, value, ok)
  if ok and type(value) == "table" and not eip.is_error(value) and value.ok ~= false then
    return { id = value.bandwidth_id or id, outcome = value.deleted == false and "missing" or "deleted", res = value }
  end
  local err = value
  if type(value) == "table" and not eip.is_error(value) then
    err = value.error or value.err or value -- a batch entry { ok = false, error = e }
  end
  if type(err) ~= "table" then
    err = { kind = "error", message = err == nil and "no result for this id" or tostring(err) }
  end
  id = (type(value) == "table" and value.bandwidth_id) or err.bandwidth_id or id
  return { id = id, outcome = "failed", err = err }
end

local function ms(seconds)
  if type(seconds) ~= "number" then return "" end
  if seconds < 1 then return string.format("  (%.1f ms)", seconds * 1000) end
  return string.format("  (%.2f s)", seconds)
end

local function human_line(o)
  if o.outcome ~= "failed" then
    local r = o.res
    local extra = ""
    if r.removed and #r.removed > 0 then extra = string.format("  after removing %d EIP(s)", #r.removed) end
    if o.outcome == "missing" then
      return string.format("missing  %s  %d %s (already gone; ok with --missing-ok)%s  request-id %s%s",
        o.id, r.status or 404, r.code or r.reason or "", extra, r.request_id or "-", ms(r.elapsed))
    end
    return string.format("deleted  %s  %s %s%s  request-id %s%s", o.id, tostring(r.status or ""),
      r.reason or "", extra, r.request_id or "-", ms(r.elapsed))
  end
  local e = o.err
  local what
  if e.kind == "http" then
    local detail = e.code and e.message and (e.code .. ": " .. e.message) or e.code or e.message
    what = string.format("%d %s%s", e.status or 0, e.reason or "", detail and (" (" .. detail .. ")") or "")
  elseif e.kind == "transport" then
    what = string.format("transport error %s: %s", e.reason or "?", e.message or "")
  elseif e.kind == "usage" then
    what = "refused: " .. (e.message or "?") -- e.g. --force on a dedicated (PER) bandwidth
  else
    what = (e.kind or "error") .. ": " .. (e.message or "?")
  end
  local moved = ""
  if e.moved and (#e.moved > 0 or #(e.not_moved or {}) > 0 or #(e.uncertain or {}) > 0) then
    moved = string.format("  [%s: %d EIP(s) moved out, %d not moved, %d uncertain]", e.stage or "?",
      #e.moved, #(e.not_moved or {}), #(e.uncertain or {}))
  end
  return string.format("FAILED   %s  %s%s  request-id %s", o.id, what, moved, e.request_id or "-")
end

local function json_line(o)
  local t = { bandwidth_id = o.id, result = o.outcome, ok = o.outcome ~= "failed" }
  if o.res then
    local r = o.res
    t.status, t.deleted, t.request_id, t.code = r.status, r.deleted, r.request_id, r.code
    t.attempts, t.removed = r.attempts, r.removed
    if type(r.elapsed) == "number" then t.elapsed = math.floor(r.elapsed * 1e6 + 0.5) / 1e6 end
  else
    local e = o.err
    t.status, t.code, t.message, t.request_id, t.kind = e.status, e.code, e.message, e.request_id, e.kind
    t.reason, t.retryable, t.attempts, t.argument = e.reason, e.retryable, e.attempts, e.argument
    t.stage, t.moved, t.not_moved, t.uncertain = e.stage, e.moved, e.not_moved, e.uncertain
  end
  return json_encode(t)
end

-- The EIP ids of a failed drain, spelled out on stderr (the summary line only counts them).
local function report_moves(o)
  local e = o.err
  if o.outcome ~= "failed" or not e.moved then return end
  for _, f in ipairs{ { "moved out", e.moved }, { "not moved", e.not_moved }, { "uncertain", e.uncertain } } do
    if f[2] and #f[2] > 0 then
      stderr:write(string.format("  %s %s (%d): %s\n", o.id, f[1], #f[2], table.concat(f[2], " ")))
    end
  end
end

-- Is `require(name)` absent (as opposed to present and broken)?
local function optional(name)
  local ok, mod = pcall(require, name)
  if ok then return mod end
  if tostring(mod):find("module '" .. name .. "' not found", 1, true) then return nil end
  error(mod, 0)
end

-- Every id through delete_bandwidths when eip.batch provides it, else one at a time with the
-- same outcome shape. `emit(outcome)` is called once per id, as results arrive.
local function run_deletes(client, ids, opts, emit)
  if not opts.force then optional("eip.batch") end
  if not opts.force and type(client.delete_bandwidths) == "function" then
    local emitted = {}
    -- eip.batch calls on_result(i, id, result_or_error); any argument order with an index,
    -- an id and a result table is understood, so the adapter survives small changes there.
    local function on_result(...)
      local index, id, value
      for i = 1, select("#", ...) do
        local v = select(i, ...)
        if type(v) == "number" then index = index or v
        elseif type(v) == "string" then id = id or v
        elseif type(v) == "table" then value = value or v end
      end
      id = id or (value and value.bandwidth_id) or (index and ids[index])
      if id and not emitted[id] then
        emitted[id] = true
        emit(outcome_of(id, value, value ~= nil and not eip.is_error(value)))
      end
    end
    local results = client:delete_bandwidths(ids, { concurrency = opts.concurrency or 1,
      missing_ok = opts.missing_ok or false, on_result = on_result })
    for i, id in ipairs(ids) do
      if not emitted[id] then on_result(i, id, results and results[i]) end
    end
    return
  end
  for _, id in ipairs(ids) do
    local ok, value
    if opts.force then
      ok, value = pcall(client.drain_and_delete_bandwidth, client, id, { charge_mode = opts.charge_mode,
        size = opts.size, missing_ok = opts.missing_ok or false })
    else
      ok, value = pcall(client.delete_bandwidth, client, id, { missing_ok = opts.missing_ok or false })
    end
    if not ok and not eip.is_error(value) then error(value, 0) end -- a bug: keep its message
    emit(outcome_of(id, value, ok))
  end
end

M._run_deletes = run_deletes -- for the specs: the batch-or-loop adapter

local function check_delete_options(opts)
  if opts.concurrency ~= nil and (opts.concurrency < 1 or opts.concurrency > 64) then
    usage("--concurrency must be between 1 and 64, got %d", opts.concurrency)
  end
  if not opts.force and (opts.size ~= nil or opts.charge_mode ~= nil) then
    usage("--size and --charge-mode only apply with --force")
  end
  opts.size = opts.size or 1
  opts.charge_mode = opts.charge_mode or "bandwidth"
  if opts.size < 1 or opts.size > 2000 then usage("--size must be between 1 and 2000 (Mbit/s), got %d", opts.size) end
  if opts.charge_mode ~= "bandwidth" and opts.charge_mode ~= "traffic" then
    usage("--charge-mode must be bandwidth or traffic, got %q", opts.charge_mode:sub(1, 20))
  end
end

local function delete_bandwidth(opts, args, ctx)
  check_delete_options(opts)
  local ids = collect_ids(args)
  local client = new_client(opts)
  if opts.dry_run then return dry_run(client, ids, opts) end
  local progress = Progress.new(#ids, ctx.terminal and not opts.no_progress and (#ids > 1 or opts.force))
  local counts = { deleted = 0, missing = 0, failed = 0 }
  local started = core.monotime()
  progress:draw(true)
  run_deletes(client, ids, opts, function(o)
    counts[o.outcome] = counts[o.outcome] + 1
    progress:hide()
    stdout:write(opts.json and json_line(o) or human_line(o), "\n")
    stdout:flush()
    if not opts.json then report_moves(o) end
    progress:step(o.outcome == "failed")
  end)
  progress:finish()
  client:close()
  local summary = string.format("%d bandwidth(s): %d deleted, %d missing, %d failed  (%.2f s)", #ids,
    counts.deleted, counts.missing, counts.failed, core.monotime() - started)
  if opts.json then stderr:write(summary, "\n") else stdout:write(summary, "\n") end
  return counts.failed > 0 and EXIT_FAILED or EXIT_OK
end

-- show-bandwidth, list-bandwidths, status --------------------------------------------------

-- 10.0 (cjson decodes every JSON number as a float) reads as 10.
local function num(v)
  if math.type(v) == "float" and v == math.floor(v) and math.abs(v) < 2^53 then return string.format("%d", v) end
  return tostring(v)
end

local function describe_type(share_type)
  if share_type == "WHOLE" then return "WHOLE (shared)" end
  if share_type == "PER" then return "PER (dedicated)" end
  return tostring(share_type)
end

local function show_bandwidth(opts, args)
  if #args ~= 1 then usage("show-bandwidth takes exactly one id, got %d (see: eip show-bandwidth --help)", #args) end
  local ok, err = pcall(validate.id, "bandwidth_id", args[1])
  if not ok then usage("%s", err.message) end
  local client = new_client(opts)
  local bw, info = client:show_bandwidth(args[1])
  client:close()
  if opts.json then
    stdout:write(json_encode(bw), "\n")
    return EXIT_OK
  end
  local eips = type(bw.publicip_info) == "table" and bw.publicip_info or {}
  local rows = {
    { "id", bw.id }, { "name", bw.name }, { "share_type", describe_type(bw.share_type) },
    { "size", num(bw.size) .. " Mbit/s" }, { "charge_mode", bw.charge_mode }, { "status", bw.status },
    { "created_at", bw.created_at }, { "updated_at", bw.updated_at }, { "eips", tostring(#eips) },
  }
  for _, r in ipairs(rows) do
    if r[2] ~= nil then stdout:write(string.format("%-12s %s\n", r[1], tostring(r[2]))) end
  end
  for _, ip in ipairs(eips) do
    stdout:write(string.format("  %-38s %-16s %s\n", tostring(ip.publicip_id), tostring(ip.publicip_address or "-"),
      tostring(ip.publicip_type or "")))
  end
  stdout:write(string.format("%-12s %s\n", "request_id", info.request_id or "-"))
  return EXIT_OK
end

local function list_bandwidths(opts, args)
  if #args > 0 then
    usage("list-bandwidths takes no arguments, got %q (see: eip list-bandwidths --help)", args[1]:sub(1, 40))
  end
  local client = new_client(opts)
  local list, info = client:list_bandwidths{ share_type = opts.shared and "WHOLE" or nil, limit = opts.page_size }
  client:close()
  if opts.json then
    for _, bw in ipairs(list) do stdout:write(json_encode(bw), "\n") end
    return EXIT_OK
  end
  stdout:write(string.format("%-38s %-6s %6s %5s %-8s %s\n", "ID", "TYPE", "MBIT/S", "EIPS", "STATUS", "NAME"))
  for _, bw in ipairs(list) do
    local n = type(bw.publicip_info) == "table" and #bw.publicip_info or 0
    stdout:write(string.format("%-38s %-6s %6s %5d %-8s %s\n", tostring(bw.id), tostring(bw.share_type),
      num(bw.size), n, tostring(bw.status), tostring(bw.name)))
  end
  stdout:write(string.format("%d bandwidth(s), %d request(s)\n", #list, info.requests))
  return EXIT_OK
end

local STATUS_FIELDS = { "code", "reason", "class", "retryable", "documented", "advice", "description",
  "description_zh", "seeds" }

local function status(opts, args)
  if #args ~= 1 then usage("status takes one HTTP status code, e.g. eip status 409") end
  local code = math.tointeger(tonumber(args[1]))
  if not code or code < 100 or code > 599 then
    usage("status: %q is not an HTTP status (100-599)", args[1]:sub(1, 20))
  end
  local entry = eip.status(code)
  if opts.json then
    stdout:write(json_encode(entry), "\n")
    return EXIT_OK
  end
  for _, k in ipairs(STATUS_FIELDS) do
    if entry[k] ~= nil then stdout:write(string.format("%-15s %s\n", k, tostring(entry[k]))) end
  end
  return EXIT_OK
end

COMMANDS["delete-bandwidth"].run = delete_bandwidth
COMMANDS["show-bandwidth"].run = show_bandwidth
COMMANDS["list-bandwidths"].run = list_bandwidths
COMMANDS["status"].run = status

-- Entry point ------------------------------------------------------------------------------

-- An eip error as the lines an operator reads: the one-line form, then the advice.
local function report_error(e)
  stderr:write(tostring(e), "\n")
  if eip.is_error(e) and e.advice and e.kind ~= "usage" then stderr:write("  advice: ", e.advice, "\n") end
end

local function dispatch(argv, ctx)
  local name = argv[1]
  if name == nil then
    stderr:write(tool_help())
    return EXIT_USAGE
  end
  if name == "-h" or name == "--help" then
    stdout:write(tool_help())
    return EXIT_OK
  end
  if name == "--version" then
    stdout:write("eip (lua-eip) ", eip._VERSION, "\n")
    return EXIT_OK
  end
  if name == "help" then
    local topic = argv[2]
    if topic == nil then stdout:write(tool_help()) return EXIT_OK end
    if not COMMANDS[topic] then
      usage("no such command %q (commands: %s)", topic:sub(1, 30), table.concat(COMMAND_ORDER, ", "))
    end
    stdout:write(command_help(topic))
    return EXIT_OK
  end
  local c = COMMANDS[name]
  if not c then
    local guess = closest(name, COMMAND_ORDER)
    if name:sub(1, 1) == "-" then name = name:match("^[^=]*") end -- never echo an option's value
    -- A long word in command position may be a pasted secret: it is not echoed.
    local shown = #name <= 32 and string.format("%q", name) or string.format("(%d characters, not shown)", #name)
    usage("unknown command %s%s (commands: %s; see eip --help)", shown,
      guess and ("; did you mean " .. guess .. "?") or "", table.concat(COMMAND_ORDER, ", "))
  end
  local opts, args = parse(name, argv, 2)
  if not opts then
    stdout:write(command_help(name))
    return EXIT_OK
  end
  return c.run(opts, args, ctx)
end

--- Run the command line. `argv` is the `arg` table of the script (argv[1] the command).
-- Returns the exit status: 0 success, 1 a call failed, 2 usage error (nothing was sent).
-- @tparam table argv the arguments
-- @treturn integer the exit status
function M.main(argv)
  local ctx = { terminal = stderr_is_terminal() }
  local ok, code = pcall(dispatch, argv or {}, ctx)
  if ok then return code end
  local e = code
  if is_usage(e) then
    report_error(e)
    return EXIT_USAGE
  end
  if eip.is_error(e) then
    report_error(e)
    return EXIT_FAILED
  end
  stderr:write("eip: internal error: ", tostring(e), "\n")
  return EXIT_FAILED
end

return M
