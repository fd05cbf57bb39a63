--- The delete-bandwidth command: deletes shared bandwidths, one line per id, then the failures
-- again and a summary.
--
--   eip delete-bandwidth [options] ID... | -
--
-- Every id is validated before the first request (a bad one is a usage error: nothing is
-- sent). Without `--drain` the ids go through `client:delete_bandwidths` (`--concurrency` in
-- flight, the library's default 8); with it, one at a time through
-- `client:drain_and_delete_bandwidth`. Results go to stdout; the progress line, the failures
-- again and the summary to stderr, in every output format.
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
-- The library's batch limits (eip.batch; the command line uses the public API only, and
-- cli_spec checks that these are the library's).
local MAX_CONCURRENCY, DEFAULT_CONCURRENCY, SIGNED_MAX = 64, 8, eip.SIGNED_IN_FLIGHT_MAX
local sink = require "eip.cli.sink"
local stdout, stderr = sink.stdout, sink.stderr

local M = {
  name = "delete-bandwidth",
  args = "[options] ID... | -",
  summary = "delete shared bandwidths",
  about = [[
Deletes each shared bandwidth (DELETE /v2.0/{project_id}/bandwidths/{id}); - reads the ids
from stdin, one per line (blank lines and lines of a # comment skipped; each line is checked as it is
read: a bad id, a line over 4096 bytes, such as a binary file's, or more than 100000 distinct ids
is a usage error at once). Prints one line per id (what
happened, the attempts when more than one, the time), then the failures again and a summary on
stderr. FAILED: the delete certainly did not happen (an answered 4xx such as 409, a
connection that failed or timed out before the request went out). FAILED?: it MAY HAVE BEEN
CARRIED OUT all the same (a timeout after the request went out, a reset, a 5xx, a garbled
answer, or an earlier attempt unanswered; with --drain, EIPs whose move nobody
can tell): check with show-bandwidth before a retry (--json: could_have_acted). The first
request goes alone; after an authentication failure nothing more is sent (five bad signatures
in a row lock an AK/SK pair). Ctrl-C stops sending (a second one aborts what is in flight)
and prints the summary. On a terminal, a batch that runs for more than a second keeps a
progress line at the bottom.

With --drain, each bandwidth is first emptied: its EIPs are moved out, and EACH BECOMES A NEW
PAY-PER-USE BANDWIDTH of --size Mbit/s billed by --charge-mode; then it is deleted. Dedicated,
yearly/monthly (prepaid) and frozen bandwidths are refused before anything changes. On a
terminal --drain asks first (not for a bandwidth holding no EIP: nothing moves); --yes
skips the question (required without a terminal), and then --size and --charge-mode must
be given: nobody confirms a default.

Exit status: 0 every id deleted (or missing, with --missing-ok; or no id on stdin), 1 some
failed or were not sent, 2 usage error (nothing was sent), 130 interrupted (143 SIGTERM,
129 SIGHUP: the first stops sending, as a reader gone from stdout does).]],
  credentials = true,
  output = "text",
  options = connection.options{
    { "--missing-ok", key = "missing_ok", help = "a bandwidth that does not exist (404 VPC.0306) counts as deleted "
      .. "(for an id shaped like one: a lower-case UUID)" },
    { "--concurrency", value = "N", key = "concurrency", integer = true, min = 1, max = MAX_CONCURRENCY,
      help = string.format("deletes in flight at once (1-%d, default %d; --drain: one at a time; signed with "
        .. "AK/SK: at most %d)", MAX_CONCURRENCY, DEFAULT_CONCURRENCY, SIGNED_MAX) },
    { "--no-adaptive", key = "no_adaptive",
      help = "keep --concurrency even when the API throttles (default: cut it, then raise it again)" },
    args.output_options("text"),
    { "--verbose", key = "verbose", help = "under each line: request id, reason, message and advice" },
    -- (A credentials file the run would read is read all the same, as the run reads it: its project_id
    -- is in the URLs printed, and a malformed one refused now rather than passed by a dry run
    -- whose run then cannot start.)
    { "--dry-run", key = "dry_run",
      help = "validate, print what would be sent, send nothing (no credentials needed, but a credentials file "
        .. "the run would read is read: a malformed one is refused; --drain: one GET per id)" },
    { "--drain", key = "drain", help = "move the bandwidth's EIPs out first (new bills!), then delete it" },
    { "--yes", key = "yes", help = "with --drain: do not ask (needed without a terminal; then --size and "
      .. "--charge-mode must be given)" },
    { "--size", value = "MBIT", key = "size", integer = true, min = 1, max = 2000,
      help = "with --drain: size of each removed EIP's new bandwidth (the question offers 1)" },
    { "--charge-mode", value = "M", key = "charge_mode", choices = { "bandwidth", "traffic" },
      help = "with --drain: bandwidth or traffic (the question offers bandwidth)" },
    { "--wait", key = "wait", help = "after each 204, wait until the bandwidth can no longer be read (600 s)" },
    { "--wait-timeout", value = "S", key = "wait_timeout", number = true, min = 0.05, max = 86400,
      help = "--wait, at most S seconds" },
    { "--deadline", value = "S", key = "deadline", number = true, min = 0.001, max = 86400,
      help = "S seconds from the start: no delete starts later (NOT SENT deadline; one in flight ends "
        .. "within --timeout), nor does a read of --wait (not with --drain)" },
    { "--progress", key = "progress", help = "draw the progress line with stdout a pipe too (| gzip > file)" },
    { "--no-progress", key = "no_progress", help = "no progress line (it is only drawn on a terminal)" },
    { "--force", key = "force", help = "renamed --drain" },
  },
}

-- Checks the options that depend on each other and fills in --size and --charge-mode.
local function check_options(opts, ctx)
  if opts.progress and opts.no_progress then usage("--progress and --no-progress: give one of them") end
  if opts.force then
    usage("--force is now --drain (it moves the bandwidth's EIPs out, each into a new pay-per-use "
      .. "bandwidth, then deletes it): use --drain")
  end
  if not opts.drain and (opts.size ~= nil or opts.charge_mode ~= nil or opts.yes) then
    usage("--size, --charge-mode and --yes only apply with --drain")
  end
  -- (a drain is several requests that each change something: none is cut off by a clock, see
  -- the client's deadline; stop one with Ctrl-C)
  if opts.drain and opts.deadline ~= nil then usage("--deadline does not apply with --drain") end
  if opts.drain and not opts.yes and not opts.dry_run and not ctx.terminal then
    usage("--drain without a terminal needs --yes, --size and --charge-mode: each removed EIP becomes a new "
      .. "pay-per-use bandwidth of that size, billed that way, and nobody is asked")
  end
  -- Nobody is asked with --yes: the terms of the new bills are then the user's own, never a default.
  if opts.drain and opts.yes and (opts.size == nil or opts.charge_mode == nil) then
    usage("--drain --yes needs --size and --charge-mode: each removed EIP becomes a new pay-per-use "
      .. "bandwidth of that size, billed that way, and nobody is asked")
  end
  opts.wait = opts.wait_timeout or opts.wait or nil
  opts.size = opts.size or 1
  opts.charge_mode = opts.charge_mode or "bandwidth"
end

-- Ids from the arguments; "-" reads stdin, one per line (blank lines and # comments skipped).
-- Each is validated as it is read (nothing is sent when one is bad); repeats are dropped.
-- Returns the ids, and where each came from.
-- A line of ids on stdin holds one id (64 bytes at most), blanks or a # comment: a longer line
-- is not a list of ids (a binary file, /dev/zero), and is refused before it fills the memory.
local STDIN_LINE_MAX = 4096

-- Calls on_line(n, line) for each line of stdin (its end of line removed), reading it in
-- chunks, so that no line longer than STDIN_LINE_MAX is ever held whole (a usage error). Each
-- chunk is what one read(2) gives (core.read_fd): a line typed at a terminal, or written to a
-- pipe, is checked when it comes (io.read(n) waited for n bytes or the end of stdin: a bad id
-- was said only then).
local EINTR = 4 -- (Linux's errno of a read a signal cut short)

local function stdin_lines(on_line, closed)
  -- (a closed stdin was opened on /dev/null by eip.cli, so that no socket takes its number)
  if closed then usage("cannot read stdin: it is closed") end
  local rest, n = "", 0
  local function too_long() usage("stdin line %d is longer than %d bytes: not a list of ids", n + 1, STDIN_LINE_MAX) end
  -- Ctrl-C (SIGTERM, SIGHUP) while a read waits for a line: caught from here on, as the batch
  -- catches them (no restart: the read fails at once). LuaJIT's own handler restarts the read,
  -- and the command waited for the next line or the end of stdin, ignoring Ctrl-C. One caught
  -- while stdin keeps coming (a generator of repeated ids or blank lines, which no limit ends; a
  -- long file) is looked for after each chunk: the read does not fail then.
  core.catch_interrupts(true, 1)
  while true do
    local chunk, err, code = core.read_fd(0, 65536)
    if connection.interrupted() then error("eip: reading stdin: interrupted!", 0) end
    -- A read that failed (a directory, an I/O error) is not the end of the list: nothing is sent
    -- rather than the ids read so far. (A signal not counted as an interrupt: read again.)
    if not chunk and code ~= EINTR then usage("cannot read stdin: %s", tostring(err)) end
    if chunk == "" then break end
    chunk = chunk or ""
    local buf, from = rest .. chunk, 1
    while true do
      local nl = buf:find("\n", from, true)
      if not nl then break end
      if nl - from > STDIN_LINE_MAX then too_long() end
      n = n + 1
      on_line(n, buf:sub(from, nl - 1))
      from = nl + 1
    end
    rest = buf:sub(from)
    if #rest > STDIN_LINE_MAX then too_long() end
  end
  if rest ~= "" then on_line(n + 1, rest) end
end

-- What stopped a batch or the drains, said after the summary (then how many ids were not sent).
local STOPPED_LINES = {
  auth = "eip: stopped after an authentication failure",
  unanswered = "eip: stopped: signed requests (or logins) in a row got no answer, each may have been refused "
    .. "unseen, and the client sends no more of them for now (see the id refused)",
  throttled = "eip: stopped: the API throttles, and asked not to come back soon (a long Retry-After, or a limit "
    .. "of one request per longer)",
  unavailable = "eip: stopped: the service is unavailable, and asked not to come back soon (a server error "
    .. "with a long Retry-After)",
  delete_refused = "eip: stopped after a drained bandwidth's delete failed (refused, or failed after its EIPs "
    .. "moved), so that no other is drained (its EIPs would become new bills)",
}

-- Why no id after this error is sent (or, in a drain's dry run, read), as a batch stops: "auth"
-- after a definite authentication failure, "unanswered" once the client signs no more (signed
-- requests in a row got no answer), "throttled" or "unavailable" after throttling or a server
-- error that asked not to come back soon (every further request would be throttled too, and
-- count against the limit, or meet the same outage); nil when the next id may go.
local function stop_reason(err)
  if eip.is_auth_failure(err) then return "auth" end
  if err.kind == "refused" and err.reason == "unanswered" then return "unanswered" end
  if err.throttled_beyond then return "throttled" end
  if err.unavailable_beyond then return "unavailable" end
  return nil
end

-- At most this many distinct ids in one command: an endless stream of ids (a generator, a file
-- still written to) is refused at the first one past it, not read until the memory is full.
local IDS_MAX = 100000

local function collect_ids(argv, ctx)
  local out, seen, repeats, stdin_read = {}, {}, 0, false
  -- Each id is checked as it comes (a bad line ends the reading there) and a repeat is dropped
  -- at once: what is held is the distinct ids read so far, each with where it came from.
  local function add(id, where)
    local ok, err = pcall(validate.id, "bandwidth_id", id)
    if not ok then usage("%s: %s", where, tostring(err.message or err)) end
    if seen[id] then repeats = repeats + 1; return end
    if #out >= IDS_MAX then usage("%s: more than %d distinct ids: split the list", where, IDS_MAX) end
    seen[id] = where
    out[#out + 1] = id
  end
  for i, a in ipairs(argv) do
    if a == "-" then
      if stdin_read then usage("- (stdin) given twice") end
      stdin_read = true
      stdin_lines(function(n, line)
        -- A file saved with a byte order mark (UTF-8's EF BB BF) starts with its first id all the same.
        if n == 1 and line:sub(1, 3) == "\239\187\191" then line = line:sub(4) end
        line = line:match("^%s*(.-)%s*$")
        if line ~= "" and line:sub(1, 1) ~= "#" then add(line, "stdin line " .. n) end
      end, ctx.stdin_closed)
    else
      add(a, "argument " .. i)
    end
  end
  if #out == 0 and not stdin_read then usage("no bandwidth id given (see: eip delete-bandwidth --help)") end
  if repeats > 0 then stderr:write(string.format("eip: note: %d repeated id(s) ignored\n", repeats)) end
  return out, seen
end

-- An id that holds one of the credentials' secrets (an SK pasted where an id goes) would be sent
-- in a URL and printed on its result line: refused before anything is sent, by where it was,
-- never by its value. (The library refuses it too; the command must not print it either.)
local function refuse_secrets(client, ids, where)
  for _, id in ipairs(ids) do
    -- (the client's own, and the other credentials of the environment and the profile file,
    -- registered by eip.cli before any argument was read)
    if client:clean(id) ~= id or validate.holds_secret(id) then
      usage("%s: holds one of the credentials' secrets (a key or token pasted as an id?): nothing was sent, "
        .. "and it is not shown", where[id])
    end
  end
end

-- --dry-run: the requests each id would take, as "METHOD URL" lines or JSON objects. With
-- --drain, each bandwidth is read (one GET, no change) to show the EIPs that would move.
local function dry_run(client, ids, opts)
  local as_json = opts.output == "json"
  local project = client.project_id or "{project_id}"
  local function step(id, method, url, note)
    if as_json then
      stdout:write(json.encode{ bandwidth_id = id, dry_run = true, method = method, url = url, note = note }, "\n")
    else
      stdout:write(method, " ", url, note and ("  (" .. note .. ")") or "", "\n")
    end
  end
  local ok_all = true
  -- With --drain each id costs a GET: none more once the output is lost (a reader gone: `| head`)
  -- or a signal came, as a batch stops. Returns the exit then, else nil.
  local function stopped(not_read)
    local caught, signal = core.interrupts()
    if caught == 0 and not sink.failed() then return nil end
    local name = connection.SIGNAL_NAMES[signal] or ("signal " .. tostring(signal))
    stderr:write(string.format("%s: %d id(s) not read\n", caught == 0 and "eip: standard output failed ("
      .. sink.failed() .. ")" or signal == 2 and "eip: interrupted" or "eip: stopped by " .. name, not_read))
    return caught > 0 and connection.signal_exit(signal) or false
  end
  for n, id in ipairs(ids) do
    local exit = stopped(#ids - n + 1)
    if exit ~= nil then return exit end
    local url = client.endpoint .. "/v2.0/" .. project .. "/bandwidths/" .. id
    if opts.drain then
      local ok, plan = pcall(client.plan_drain, client, id, { charge_mode = opts.charge_mode, size = opts.size,
        cancel = function() return core.interrupts() > 0 or sink.failed() ~= nil end })
      if not ok and eip.is_error(plan) and plan.kind == "interrupted" then
        exit = stopped(#ids - n + 1) -- (this id's GET ended by the signal: not read either)
        if exit ~= nil then return exit end
      end
      -- With --missing-ok, a bandwidth the real run would find missing (the delete's own rule:
      -- eip.is_missing) is "missing" here too, not a failure.
      if not ok and opts.missing_ok and eip.is_missing(plan, id) then
        stdout:write(output.result_line({ id = id, outcome = "missing", res = { ok = true, deleted = false,
          status = 404, code = plan.code, request_id = plan.request_id, attempts = plan.attempts,
          elapsed = plan.elapsed, project_id = client.project_id } }, opts.output), "\n")
      elseif not ok then
        if not eip.is_error(plan) then error(plan, 0) end
        ok_all = false
        -- (the plan's one GET changed nothing)
        stdout:write(output.result_line({ id = id, outcome = "failed", err = plan, could_have_acted = false },
          opts.output), "\n")
        -- Every further GET would be refused alike (each a refused signature of an AK/SK pair's
        -- five), throttled or sent into the outage: nothing more is read, as the run sends
        -- nothing more.
        local why = stop_reason(plan)
        if why and n < #ids then
          stdout:flush()
          stderr:write(string.format("%s: %d id(s) not read\n", STOPPED_LINES[why], #ids - n))
          return false
        end
      else
        step(id, "GET", client.endpoint .. "/v1/" .. client.project_id .. "/bandwidths/" .. id, "sent: read only")
        for i = 1, plan.remove_calls do
          local from, to = (i - 1) * 100 + 1, math.min(i * 100, #plan.eips)
          local moved = {}
          for k = from, to do
            local e = plan.eips[k]
            moved[#moved + 1] = output.server_text(client, e.publicip_id) .. (e.ip_version == 6 and " (IPv6)" or "")
          end
          step(id, "POST", url .. "/remove", string.format("moves %d EIP(s), each into a new pay-per-use "
            .. "bandwidth of %d Mbit/s billed by %s: %s", #moved, plan.size, plan.charge_mode,
            table.concat(moved, ", ")))
        end
        step(id, "DELETE", url)
      end
      stdout:flush() -- (a reader gone is known before the next GET)
    else
      step(id, "DELETE", url)
    end
  end
  stdout:flush()
  stderr:write(string.format("dry run: %d bandwidth(s), no change sent\n", #ids))
  return ok_all
end

-- One id's outcome (see eip.cli.output) from what the library gave: a result table, or an
-- eip error.
local function outcome_of(id, value)
  if eip.is_error(value) then
    local res = value.result
    if value.deleted == true and res then
      -- A drain's delete went through and its --wait ended first (or could not read it: a
      -- refused key, throttling): deleted, as a batch reports it (`waited` with `still_readable`
      -- only: alone, it says a read saw the bandwidth gone).
      if value.kind == "wait_timeout" then
        res.waited, res.still_readable = value.waited, true
      elseif value.kind ~= "interrupted" then
        res.wait_error = value
      end
      return { id = id, outcome = "deleted", res = res }
    end
    -- A drain's step not sent after EIPs moved (its credentials not renewed, its key refused
    -- meanwhile) failed: the moves are new bills, listed under it, never "not sent".
    local moved = type(value.moved) == "table" and #value.moved > 0
    return { id = id, outcome = value.not_sent and not moved and "not_sent" or "failed", err = value,
      could_have_acted = eip.could_have_acted(value) }
  end
  return { id = id, outcome = value.deleted == false and "missing" or "deleted", res = value }
end

-- A function(plan) that asks on the terminal whether to drain the plan's bandwidth: true for "y"
-- or "yes". Every value of the server it shows is output.server_text (no secret, no control
-- character: an escape sequence could hide the billing warning or rewrite the question).
-- A plan that moves no EIP makes no bill: nothing is asked (a delete is not asked about), it
-- is said, and the drain's second read still refuses EIPs added meanwhile.
local function confirmer(client)
  return function(plan)
    local tty = io.open("/dev/tty", "r+")
    if not tty then return false end
    -- (the terminal is past the command's streams, which scrub the credentials of the
    -- environment and the profile file the client was not given: what goes there is scrubbed here)
    local function say(text) tty:write(validate.scrub_pieces(text)) end
    local bw = plan.bandwidth
    local what = string.format("shared bandwidth %s (%s, %s Mbit/s)", plan.bandwidth_id,
      output.server_text(client, bw.name), output.server_text(client, bw.size))
    if #plan.eips == 0 then
      say("Deleting " .. what .. ": it holds no EIP, nothing is moved, no bandwidth is made.\n")
      tty:close()
      return true
    end
    say("Drain and delete " .. what .. "?\n")
    say(string.format("  It holds %d EIP(s); each becomes a NEW pay-per-use bandwidth of %d Mbit/s "
      .. "billed by %s:\n", #plan.eips, plan.size, plan.charge_mode))
    for i, e in ipairs(plan.eips) do
      if i > 10 then
        say(string.format("    ... and %d more\n", #plan.eips - 10))
        break
      end
      say(string.format("    %s  %s%s\n", output.server_text(client, e.publicip_id),
        output.server_text(client, e.publicip_address), e.ip_version == 6 and "  (IPv6)" or ""))
    end
    tty:write("Type yes to go on: ")
    tty:flush()
    local answer = tty:read("*l")
    -- (ended without a newline, by Ctrl-D or Ctrl-C: what comes next starts on a line of its own)
    if answer == nil then tty:write("\n") end
    tty:close()
    answer = answer or ""
    answer = answer:lower():match("^%s*(.-)%s*$")
    return answer == "y" or answer == "yes"
  end
end

-- Ctrl-C (or SIGTERM, SIGHUP) during a batch: the first stops new requests, the second aborts
-- those in flight. Standard output lost (a reader gone, a full disk) stops new requests too:
-- nobody would see their results there.
local function interrupts()
  local n = core.interrupts()
  if n >= 2 then return "abort" end
  if n == 1 or sink.failed() then return "stop" end
  return nil
end

-- Deletes every id; emit(outcome) is called once per id, as each finishes; tick() at least
-- every 0.25 s (the batch asks its cancel function that often). Returns the summary of the
-- batch (with --drain, which goes one id at a time, only `stopped`, `throttled` and
-- `still_readable`).
local function run_deletes(client, ids, opts, emit, tick)
  if not opts.drain then
    local ok, results, summary = pcall(client.delete_bandwidths, client, ids, { concurrency = opts.concurrency,
      missing_ok = opts.missing_ok or false, wait = opts.wait, adaptive = not opts.no_adaptive,
      deadline = opts.deadline and math.max(0.001, opts.deadline - (core.monotime() - opts.started)),
      cancel = function() tick(); return interrupts() end,
      on_result = function(_, id, entry) emit(outcome_of(id, entry)) end })
    if not ok then connection.reword(results, opts) end
    -- Deleted ids whose --wait could not read them (an error other than the time running out).
    summary.wait_errors = {}
    for _, res in ipairs(results) do
      if type(res) == "table" and res.wait_error then summary.wait_errors[#summary.wait_errors + 1] = res end
    end
    return summary
  end
  -- Ctrl-C during a drain: nothing more is sent, whatever step it is at (the show, a remove
  -- call, the delete, or a wait before one of them: a backoff, a Retry-After), and the error
  -- says what moved. A request already in flight finishes.
  -- The time spent at the question is the operator's, not the drain's: its line's time (and
  -- --json's elapsed) is that of the calls it sent.
  local asked, ask = 0, not opts.yes and confirmer(client) or nil
  local confirm = ask and function(plan)
    local t = core.monotime()
    local yes = ask(plan)
    asked = asked + core.monotime() - t
    return yes
  end
  local drain = { charge_mode = opts.charge_mode, size = opts.size, missing_ok = opts.missing_ok or false,
    -- (tick: the progress line, and the first signal's line said at once, as in a batch)
    wait = opts.wait, confirm = confirm, cancel = function() tick(); return interrupts() end }
  -- "auth" after a definite authentication failure, "unanswered" once the client signs no more
  -- (signed requests in a row got no answer), as a batch stops; "delete_refused" after a
  -- drain whose delete was refused (403), or failed once its EIPs had moved (or may have:
  -- `uncertain`), for a reason that is not that bandwidth's own (a 404 VPC.0306 in a body that is
  -- that error document whole: it is gone, see eip.is_missing; a
  -- 400 or 409 after which the drain's GET listed EIPs added meanwhile: `changed`): a policy, a proxy, a
  -- gateway, or an API that answers 409 to a delete straight after a remove (the removal still
  -- settling), that lets EIPs move and refuses or breaks the delete would have every further
  -- drain make new bills and delete nothing.
  local stopped = nil
  local STOPPED = { auth = "not sent: stopped after an authentication failure",
    unanswered = "not sent: stopped after signed requests (or logins) in a row got no answer (see the id refused)",
    throttled = "not sent: the API throttles, and asked not to come back soon",
    unavailable = "not sent: the service is unavailable, and asked not to come back soon",
    delete_refused = "not sent: stopped after a drained bandwidth's delete failed once its EIPs had moved "
      .. "(each further drain would make new bills and likely delete nothing)" }
  local function its_own(err, id)
    return eip.is_missing(err, id) or ((err.status == 409 or err.status == 400) and err.changed == true)
  end
  -- Did the failed drain move EIPs out, or may it have (its remove answered, the EIP still listed)?
  local function moved_any(err)
    return (type(err.moved) == "table" and #err.moved > 0) or (type(err.uncertain) == "table" and #err.uncertain > 0)
  end
  local still_readable, wait_errors = 0, {}
  for _, id in ipairs(ids) do
    if stopped or interrupts() then
      emit({ id = id, outcome = "not_sent", could_have_acted = false, err = { kind = "not_sent",
        stopped = stopped or "cancelled", message = STOPPED[stopped] or "not sent: interrupted" } })
    else
      local t0 = core.monotime()
      asked = 0
      local ok, value = pcall(client.drain_and_delete_bandwidth, client, id, drain)
      if not ok and not eip.is_error(value) then error(value, 0) end -- a bug: keep its message
      -- Every further id would fail alike (five bad signatures in a row lock an AK/SK pair; the
      -- client signs no more for now; moves would make bills whose delete cannot follow).
      local why = not ok and stop_reason(value)
      if why then
        stopped = why
      elseif not ok and value.stage == "delete" and value.kind ~= "interrupted" and (value.status == 403
          or (moved_any(value) and not its_own(value, id))) then
        stopped = "delete_refused"
      end
      local o = outcome_of(id, value)
      -- The drain's whole time (show, remove calls, delete), not its delete's alone; without its
      -- --wait, as a batch's lines.
      local waited = o.res and o.res.waited or (eip.is_error(value) and value.waited)
      o.elapsed = core.monotime() - t0 - (type(waited) == "number" and waited or 0) - asked
      if o.res and o.res.still_readable then still_readable = still_readable + 1 end
      if o.res and o.res.wait_error then wait_errors[#wait_errors + 1] = o.res end
      emit(o)
    end
  end
  return { throttled = 0, stopped = stopped, still_readable = still_readable, wait_errors = wait_errors }
end

-- Writes one outcome to stdout (with its detail lines under --verbose, and what a failed drain
-- moved on stderr, as the client scrubs server text).
-- Once standard output fails, the results go to stderr: an id whose request went out is reported
-- somewhere, whatever happened to the reader.
local function print_outcome(o, opts, client, bar)
  local lines = { (output.result_line(o, opts.output)) }
  if opts.verbose and opts.output ~= "json" then
    for _, line in ipairs(output.detail_lines(o)) do lines[#lines + 1] = line end
  end
  local text = table.concat(lines, "\n") .. "\n"
  local lost = sink.failed()
  local failing = not lost and not (stdout:write(text) and stdout:flush())
  if lost or failing then
    bar:clear() -- (on stderr's terminal, where the lines below go)
    if failing then
      stderr:write(string.format("eip: cannot write to stdout (%s): nothing more is sent, and the results "
        .. "go to stderr from here on\n", sink.failed()))
    end
    -- (What a write that failed may have put out before it failed is not known: the line is
    -- repeated here.)
    stderr:write(text)
  end
  if opts.output ~= "json" then output.report_moves(o, client) end
end


--- Runs the command.
-- @tparam table opts the parsed options
-- @tparam {string,...} argv the ids (or "-")
-- @tparam table ctx `terminal`: stderr is a terminal; `stdout_terminal`: stdout is one;
--   `stdout_pipe`: stdout is a pipe while stderr is a terminal; `stdin_closed`: the command was
--   started with stdin closed; `can_draw`: the terminal takes the progress line's escape
--   sequences (not TERM=dumb)
-- @treturn boolean|integer true when every id was deleted (or missing, with `--missing-ok`),
--   130 when interrupted
function M.run(opts, argv, ctx)
  check_options(opts, ctx)
  -- (--deadline counts from here: reading the ids from stdin, the credentials and the project's
  -- look-up included, for a cron job's bound on the whole run)
  opts.started = core.monotime()
  local ids, where = collect_ids(argv, ctx)
  if #ids == 0 then
    stderr:write("eip: nothing to delete (no ids on stdin)\n")
    return true
  end
  -- Ctrl-C (SIGTERM, SIGHUP) ends the credentials' and the project's look-up at once, the request
  -- in flight too, as show-bandwidth's: nothing is deleted before it ends. (A drain's dry run
  -- reads only: the first signal also ends its GET in flight. Signals stay caught and SIGPIPE
  -- ignored until eip.cli's main lets go of them.)
  core.catch_interrupts(true, 1)
  local client = connection.client(opts, opts.dry_run and not opts.drain)
  refuse_secrets(client, ids, where)
  if opts.dry_run then
    local ok = dry_run(client, ids, opts)
    client:close()
    return ok
  end
  -- A --concurrency the library holds to its signed requests' four is said, not silently cut.
  local signs = client.auth == "aksk" or client.auth == "metadata"
  if signs and not opts.drain and (opts.concurrency or 0) > SIGNED_MAX and #ids > SIGNED_MAX then
    stderr:write(string.format("eip: note: a client signing with AK/SK keeps at most %d requests in flight; "
      .. "--concurrency %d runs as %d\n", SIGNED_MAX, opts.concurrency, SIGNED_MAX))
  end
  -- No progress line when stdout is a pipe (`| tee log`): its reader writes the result lines to the
  -- terminal whenever it reads them, in the middle of the line as often as not, and no erasing
  -- before a write of ours can keep out of the way of its writes.
  -- (--progress: the caller says the reader writes nothing to the terminal)
  local bar = progress.new(#ids, { enabled = ctx.terminal and ctx.can_draw and not opts.no_progress and not opts.drain
    and not opts.debug and (opts.progress or not ctx.stdout_pipe) and #ids > 1,
    results_on_terminal = ctx.stdout_terminal })
  local counts, failed = { deleted = 0, missing = 0, failed = 0, not_sent = 0, uncertain = 0 }, {}
  local missing_from -- the project the missing ones are missing from
  -- Ids not sent because the credentials could not be renewed (kind "credentials": the batch
  -- goes on, an outage may pass), and the last such error: said once, where the count is.
  local unrenewed, unrenewed_count = nil, 0
  local started = core.monotime()
  local told_stopping = false -- (the first signal's line said)
  if opts.output == "table" then stdout:write(output.result_header(), "\n") end
  core.catch_interrupts(true)
  local ok, summary = pcall(run_deletes, client, ids, opts, function(o)
    counts[o.outcome] = counts[o.outcome] + 1
    if o.outcome == "failed" then failed[#failed + 1] = o end
    if o.outcome == "failed" and o.could_have_acted then counts.uncertain = counts.uncertain + 1 end
    if o.outcome == "missing" then missing_from = o.res.project_id end
    if o.outcome == "not_sent" and o.err.kind == "credentials" then
      unrenewed, unrenewed_count = o.err, unrenewed_count + 1
    end
    bar:step(o.outcome)
    bar:above(function() print_outcome(o, opts, client, bar) end)
  end, function()
    -- The first signal stops sending, and what is in flight may take its whole timeout: said at
    -- once, so that a second one (which aborts them: each may still have been carried out) is
    -- not pressed for want of an answer.
    local caught, signal = core.interrupts()
    if caught == 1 and not told_stopping then
      told_stopping = true
      local name = connection.SIGNAL_NAMES[signal] or ("signal " .. tostring(signal))
      bar:above(function()
        stderr:write(string.format("eip: %s: stopping: nothing more is sent; the requests in flight finish "
          .. "(%s again aborts them: an aborted delete may still have been carried out)\n", name,
          signal == 2 and "Ctrl-C" or "the signal"))
      end)
    end
    bar:tick()
  end)
  -- (Signals stay caught, and SIGPIPE ignored, until eip.cli's main returns: the summary below
  -- may go to a reader that is gone too.)
  local caught, signal = core.interrupts()
  local interrupted = caught > 0
  bar:finish()
  client:close()
  if not ok then error(summary, 0) end
  stdout:flush()
  stderr:write(output.failures(failed))
  stderr:write(output.summary(#ids, counts, core.monotime() - started) .. "\n")
  if summary and summary.throttled > 0 then stderr:write(output.throttled(summary) .. "\n") end
  -- Keys act in every project of the account: a bandwidth of another project (or region) is
  -- missing from this one too. Said once, where the count is.
  if counts.missing > 0 and missing_from then
    stderr:write(string.format("eip: %d missing from project %s\n", counts.missing, missing_from))
  end
  local readable = summary and summary.still_readable or 0 -- counted by the batch's --wait, or the drains
  if readable > 0 then
    stderr:write(string.format("eip: %d deleted bandwidth(s) could still be read when the wait ended (the API "
      .. "shows a bandwidth for a while after its 204)\n", readable))
  end
  for _, res in ipairs(summary and summary.wait_errors or {}) do
    stderr:write(string.format("eip: %s was deleted (204), but the wait could not read it: %s\n",
      tostring(res.bandwidth_id), output.wait_error(res.wait_error)))
  end
  if unrenewed then
    stderr:write("eip: " .. output.shown(unrenewed.message) .. string.format(": %d id(s) not sent\n", unrenewed_count))
  end
  local not_sent = counts.not_sent > 0 and string.format(": %d id(s) not sent\n", counts.not_sent) or "\n"
  local why_stopped = summary and STOPPED_LINES[summary.stopped]
  if why_stopped then stderr:write(why_stopped .. not_sent) end
  -- Ctrl-C exits 130 whatever else stopped the batch (SIGTERM 143, SIGHUP 129): the script that ran
  -- this must stop too.
  if interrupted then
    local name = connection.SIGNAL_NAMES[signal] or ("signal " .. tostring(signal))
    stderr:write((signal == 2 and "eip: interrupted" or ("eip: stopped by " .. name)) .. not_sent)
    return connection.signal_exit(signal)
  end
  if sink.failed() then
    stderr:write("eip: standard output failed (" .. sink.failed() .. "): the results from then on are on stderr"
      .. not_sent)
    return false
  end
  return counts.failed == 0 and counts.not_sent == 0
end

return M
