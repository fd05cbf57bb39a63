--- The delete-bandwidth command: deletes shared bandwidths, one line per id and a summary.
--
--   eip delete-bandwidth [options] ID... | -
--
-- Every id is validated before the first request (a bad one is a usage error: nothing
-- is sent). Without `--force` the ids go through `client:delete_bandwidths` (`--concurrency`
-- in flight); with it, one at a time through `client:drain_and_delete_bandwidth`.
-- @module eip.cli.delete_bandwidth
local core = require "eip.core"
local eip = require "eip"
local validate = require "eip.validate"
local args = require "eip.cli.args"
local connection = require "eip.cli.connection"
local json = require "eip.cli.json"
local output = require "eip.cli.output"
local progress = require "eip.cli.progress"

local usage = args.usage
local stdout, stderr = io.stdout, io.stderr

local M = {
  name = "delete-bandwidth",
  args = "[options] ID... (or - to read ids from stdin, one per line)",
  summary = "delete shared bandwidths",
  about = [[
Deletes each shared bandwidth (DELETE /v2.0/{project_id}/bandwidths/{id}) and prints one line
per id and a summary. With --force, each bandwidth is first emptied: its EIPs are moved out (each
gets a dedicated bandwidth of --size Mbit/s billed by --charge-mode), then it is deleted.
Exit status: 0 every id deleted (or missing, with --missing-ok), 1 some failed, 2 usage error
(nothing was sent).]],
  credentials = true,
  options = connection.options{
    { "--missing-ok", key = "missing_ok", help = "a bandwidth that does not exist counts as deleted" },
    { "--concurrency", value = "N", key = "concurrency", integer = true,
      help = "deletes in flight at once (1-64, default 1; --force runs one at a time)" },
    args.JSON,
    { "--dry-run", key = "dry_run", help = "validate, print what would be sent, send nothing" },
    { "--force", key = "force", help = "remove the bandwidth's EIPs first, then delete it" },
    { "--size", value = "MBIT", key = "size", integer = true,
      help = "with --force: size of each removed EIP's dedicated bandwidth (default 1)" },
    { "--charge-mode", value = "M", key = "charge_mode",
      help = "with --force: bandwidth or traffic (default bandwidth)" },
    { "--no-progress", key = "no_progress", help = "no progress bar (it is only drawn on a terminal)" },
  },
}

-- Checks the options that depend on each other and fills in --size and --charge-mode.
local function check_options(opts)
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

-- Ids from the arguments; "-" reads stdin, one per line (blank lines and # comments skipped).
-- Each is validated (nothing is sent when one is bad); repeats are dropped.
local function collect_ids(argv)
  local ids, where, stdin_read = {}, {}, false
  for i, a in ipairs(argv) do
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

-- --dry-run: the requests each id would take, as "METHOD URL" lines or JSON objects.
local function dry_run(client, ids, opts)
  local project = client.project_id or "{project_id}"
  for _, id in ipairs(ids) do
    local url = client.endpoint .. "/v2.0/" .. project .. "/bandwidths/" .. id
    local steps = { { "DELETE", url } }
    if opts.force then
      steps = {
        { "GET", client.endpoint .. "/v1/" .. project .. "/bandwidths/" .. id },
        { "POST", url .. "/remove", note = string.format("for the EIPs the GET lists, at most 100 per call, "
          .. "charge_mode=%s size=%d", opts.charge_mode, opts.size) },
        { "DELETE", url },
      }
    end
    for _, s in ipairs(steps) do
      if opts.json then
        stdout:write(json.encode{ bandwidth_id = id, dry_run = true, method = s[1], url = s[2], note = s.note }, "\n")
      else
        stdout:write(s[1], " ", s[2], s.note and ("  (" .. s.note .. ")") or "", "\n")
      end
    end
  end
  if not opts.json then
    stdout:write(string.format("dry run: %d bandwidth(s), nothing sent\n", #ids))
  end
end

-- One id's outcome (see eip.cli.output) from what the library gave: a result table, or an
-- eip error.
local function outcome_of(id, value)
  if eip.is_error(value) then return { id = id, outcome = "failed", err = value } end
  return { id = id, outcome = value.deleted == false and "missing" or "deleted", res = value }
end

-- Deletes every id; emit(outcome) is called once per id, as each finishes.
local function run_deletes(client, ids, opts, emit)
  if not opts.force then
    client:delete_bandwidths(ids, { concurrency = opts.concurrency or 1, missing_ok = opts.missing_ok or false,
      on_result = function(_, id, entry) emit(outcome_of(id, entry)) end })
    return
  end
  local drain = { charge_mode = opts.charge_mode, size = opts.size, missing_ok = opts.missing_ok or false }
  for _, id in ipairs(ids) do
    local ok, value = pcall(client.drain_and_delete_bandwidth, client, id, drain)
    if not ok and not eip.is_error(value) then error(value, 0) end -- a bug: keep its message
    emit(outcome_of(id, value))
  end
end

--- Runs the command.
-- @tparam table opts the parsed options
-- @tparam {string,...} argv the ids (or "-")
-- @tparam table ctx `terminal`: stderr is a terminal
-- @treturn boolean true when every id was deleted (or missing, with `--missing-ok`)
function M.run(opts, argv, ctx)
  check_options(opts)
  local ids = collect_ids(argv)
  local client = connection.client(opts)
  if opts.dry_run then
    dry_run(client, ids, opts)
    return true
  end
  local bar = progress.new(#ids, ctx.terminal and not opts.no_progress and (#ids > 1 or opts.force))
  local counts = { deleted = 0, missing = 0, failed = 0 }
  local started = core.monotime()
  bar:draw(true)
  run_deletes(client, ids, opts, function(o)
    counts[o.outcome] = counts[o.outcome] + 1
    bar:hide()
    stdout:write(output.result_line(o, opts.json), "\n")
    stdout:flush()
    if not opts.json then output.report_moves(o) end
    bar:step(o.outcome == "failed")
  end)
  bar:finish()
  client:close()
  local summary = output.summary(#ids, counts, core.monotime() - started)
  if opts.json then stderr:write(summary, "\n") else stdout:write(summary, "\n") end
  return counts.failed == 0
end

return M
