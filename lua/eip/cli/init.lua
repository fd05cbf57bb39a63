--- The `eip` operator command (bin/eip): dispatch to the commands, error reporting, exit codes.
--
--     eip delete-bandwidth [options] ID... | -      delete shared bandwidths (batch)
--     eip show-bandwidth [options] ID               one bandwidth
--     eip list-bandwidths [options] [--shared]      every bandwidth (all pages)
--     eip status CODE                               what an HTTP status means here
--
-- Options may come before the command too (`eip --debug list-bandwidths`). Exit codes: 0
-- success (every id deleted, or missing with --missing-ok), 1 some call failed, 2 usage error
-- (nothing was sent), 130 interrupted (Ctrl-C; 143 SIGTERM, 129 SIGHUP). Credentials come only
-- from the environment, as for the library (OS_AUTH_TOKEN, HUAWEICLOUD_SDK_AK/SK/...): a secret
-- on the command line would show in `ps` and in shell history. Under `--json` (`--output json`), errors are one JSON
-- object on stderr too.
--
-- Each command is a module (`eip.cli.delete_bandwidth`, `eip.cli.show_bandwidth`, ...):
-- `{ name, args, summary, about, options, credentials, output, run }`, `run(opts, argv, ctx)`
-- returning true on success (eip.cli.args parses the options and writes the help).
-- @module eip.cli
local eip = require "eip"
local core = require "eip.core"
local args = require "eip.cli.args"
local connection = require "eip.cli.connection"
local output = require "eip.cli.output"
local progress = require "eip.cli.progress"
local validate = require "eip.validate"

local M = {}

local EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

local sink = require "eip.cli.sink"
local stdout, stderr = sink.stdout, sink.stderr

--- The commands, in the order the help (`eip` with its help flag) lists them: the modules' tables.
M.COMMANDS = {}
local NAMES, BY_NAME = {}, {}
for i, module in ipairs{ "delete_bandwidth", "show_bandwidth", "list_bandwidths", "status", "regions" } do
  local c = require("eip.cli." .. module)
  M.COMMANDS[i], NAMES[i], BY_NAME[c.name] = c, c.name, c
end

-- Every option of every command, by name: options before the command are read with it, and
-- whether one takes a value is the same for all commands.
local ANY = { name = "(before the command)", options = {}, names = {} }
do
  local seen = {}
  for _, c in ipairs(M.COMMANDS) do
    for _, o in ipairs(c.options) do
      if not seen[o[1]] then seen[o[1]] = o; ANY.options[#ANY.options + 1] = o; ANY.names[#ANY.names + 1] = o[1] end
    end
  end
  ANY.by_name = seen
end

-- An error as the lines an operator reads: the one-line form, then the advice.
local function report_error(e)
  stderr:write(tostring(e) .. "\n")
  if eip.is_error(e) and e.advice and e.kind ~= "usage" then stderr:write("  advice: " .. e.advice .. "\n") end
end

-- A command name that is not one: refused with a hint, never echoing what may be a secret.
local function unknown_command(name)
  local guess = args.closest(name, NAMES)
  -- A long word in command position may be a pasted secret, one with an '@' a URL's
  -- credentials: neither is echoed.
  args.usage("unknown command %s%s (commands: %s; see eip --help)", args.shown_word(name, 32, true),
    guess and ("; did you mean " .. guess .. "?") or "", table.concat(NAMES, ", "))
end

-- The options before the command (with their values) and the index of the command.
local function leading_options(argv)
  local leading, i = {}, 1
  while argv[i] ~= nil do
    local a = argv[i]
    if a:sub(1, 1) ~= "-" or a == "-" or a == "--" or a == "-h" or a == "--help" or a == "--version" then break end
    -- Before anything else: its value would otherwise be taken for the command, and echoed.
    local flag = a:match("^[^=]*")
    args.refuse_secret(flag, "eip")
    local o = ANY.by_name[flag]
    -- An unknown one too (`--prox URL`): whether it takes a value is not known, so what follows
    -- cannot be told from the command, and its value would be echoed as an unknown command.
    if not o then args.unknown_option(flag, ANY.names, nil, "eip") end
    leading[#leading + 1] = a
    if o and o.value and not a:find("=", 1, true) and argv[i + 1] ~= nil then
      i = i + 1
      leading[#leading + 1] = argv[i]
    end
    i = i + 1
  end
  return leading, i
end

-- The options before the command that the command takes: a connection option it does not take
-- (eip --region R status 409, from an alias) is left out, any other goes on to be refused. One
-- left out still has its value checked (--proxy with credentials is refused all the same).
local function global_only(leading, c)
  local known = {}
  for _, o in ipairs(c.options) do known[o[1]] = true end
  local kept, i = {}, 1
  while leading[i] ~= nil do
    local flag = leading[i]:match("^[^=]*")
    local o = ANY.by_name[flag]
    local n = (o and o.value and not leading[i]:find("=", 1, true)) and 2 or 1
    if known[flag] or not connection.is_option(flag) then
      for j = i, i + n - 1 do kept[#kept + 1] = leading[j] end
    elseif o.check then
      local value = n == 2 and leading[i + 1] or leading[i]:match("=(.*)$")
      if value then o.check(value, flag) end
    end
    i = i + n
  end
  return kept
end

--- Does `argv` ask for JSON output (the json flag, or the output option set to json)? Known
-- before parsing, so that even a usage error is written as JSON: `--json`, or the last
-- `--output json` (`--output=json`) before a lone `--` (a repeated option keeps its last value:
-- `--output json --output text` prints text, and says its errors so).
-- @tparam table argv the arguments (a list of strings; anything else asks for nothing)
-- @treturn boolean
-- @raise no error of its own (anything but a table asks for nothing): only the Lua error a
--   metamethod of `argv` raises goes through
function M.wants_json(argv)
  if type(argv) ~= "table" then return false end
  local json = false
  for i, a in ipairs(argv) do
    if a == "--" then break end
    if a == "--json" then return true end -- (beside another --output: a usage error, said as JSON)
    if a == "--output" then
      json = argv[i + 1] == "json"
    elseif type(a) == "string" and a:sub(1, 9) == "--output=" then
      json = a == "--output=json"
    end
  end
  return json
end

-- Writes a help text (or the version) on stdout: exit 0. As every command, SIGPIPE ignored (and
-- signals caught) until main lets go: a reader gone (`eip --help | head -1`) is a failed write,
-- exit 1 with a word, not death by SIGPIPE.
local function put(...)
  core.catch_interrupts(true, 1)
  stdout:write(...)
  return EXIT_OK
end

local function dispatch(argv, ctx)
  local leading, at = leading_options(argv)
  -- `--` ends the options (POSIX): the next word is the command, and what follows it its operands.
  local ended = argv[at] == "--"
  if ended then at = at + 1 end
  local name = argv[at]
  if name == nil then
    args.parse(ANY, leading, 1) -- a secret or unknown option is said as such
    if #leading > 0 then args.usage("no command given (commands: %s; see eip --help)", table.concat(NAMES, ", ")) end
    stderr:write(args.tool_help(M.COMMANDS))
    return EXIT_USAGE
  end
  if not ended and (name == "-h" or name == "--help") then return put(args.tool_help(M.COMMANDS)) end
  if not ended and name == "--version" then return put("eip (lua-eip) ", eip._VERSION, "\n") end
  if name == "help" then
    local topic = argv[at + 1]
    -- (`eip help --help`: the help asked of help itself is the tool's)
    if topic == nil or topic == "-h" or topic == "--help" then return put(args.tool_help(M.COMMANDS)) end
    if not BY_NAME[topic] then
      args.usage("no such command %s (commands: %s)", args.shown_word(topic, 30, true), table.concat(NAMES, ", "))
    end
    return put(args.command_help(BY_NAME[topic]))
  end
  local c = BY_NAME[name]
  if not c then unknown_command(name) end
  local all = {}
  for _, a in ipairs(global_only(leading, c)) do all[#all + 1] = a end
  if ended then all[#all + 1] = "--" end
  for j = at + 1, #argv do all[#all + 1] = argv[j] end
  local opts, rest = args.parse(c, all, 1)
  if not opts then return put(args.command_help(c)) end
  local result = c.run(opts, rest, ctx)
  if type(result) == "number" then return result end -- an exit status of its own (130: interrupted)
  return result and EXIT_OK or EXIT_FAILED
end

--- Runs the command line: what `bin/eip` does with its `arg` table. Writes to stdout and
-- stderr.
-- @tparam[opt] {string,...} argv the arguments, the command first (the script's `arg`); nil: none
--   (the tool's help on stderr, status 2)
-- @treturn integer the exit status: 0 success, 1 a call failed (or standard output could not be
--   written), 2 usage error (nothing was sent; standard output closed), 130 interrupted (Ctrl-C),
--   143 and 129 the same for SIGTERM and SIGHUP
-- @raise no error of its own: every error is reported on stderr and turned into the exit status
--   (only the Lua error a metamethod of `argv` raises goes through: `arg` has none)
function M.main(argv)
  argv = argv or {}
  -- Before anything opens a file or a socket, which would otherwise take a closed descriptor's
  -- number: the output of a command started with stdout closed would go into its connection.
  local stdin_closed, stdout_closed = core.claim_std_fds()
  -- (under --json, as a JSON error object: "errors are JSON too")
  local function failed_output(kind, message, exit)
    if M.wants_json(argv) then
      stderr:write(output.error_json({ kind = kind, message = message }, exit) .. "\n")
    else
      stderr:write("eip: " .. message .. "\n")
    end
    return exit
  end
  if stdout_closed then
    return failed_output("usage", "standard output is closed: nothing was done (send it to /dev/null to "
      .. "discard it)", EXIT_USAGE)
  end
  local ctx = { terminal = progress.stderr_is_terminal(), stdout_terminal = progress.is_terminal(1),
    stdin_closed = stdin_closed, can_draw = progress.can_draw() }
  -- (asked only where it matters: the progress line is drawn on stderr's terminal)
  ctx.stdout_pipe = ctx.terminal and not ctx.stdout_terminal and progress.is_pipe(1)
  -- The environment's credentials, known before any argument is read: no usage error quotes one.
  -- (Kept here: the registry holds its tables weakly.)
  M.environment_secrets = connection.known_secrets()
  validate.register_secrets(M.environment_secrets)
  local ok, code = pcall(dispatch, argv, ctx)
  -- Every command catches signals, and ignores SIGPIPE (a reader gone: a write fails, exit 1),
  -- until here, its output written: what stdio still holds (all of a short output) included.
  local caught, signal = core.interrupts()
  stdout:flush()
  core.catch_interrupts(false)
  if ok then
    -- Output that could not be written is a failure, whatever the command did: a list saved to a
    -- full disk is not a list.
    if sink.failed() and code == EXIT_OK then
      return failed_output("output", "cannot write to standard output: " .. sink.failed(), EXIT_FAILED)
    end
    return code
  end
  local e = code
  -- Ctrl-C outside a batch: the interpreter's own SIGINT handler raised "interrupted!" (with
  -- where: reading stdin, the credentials), or a show or a list caught it (an "interrupted"
  -- error). Nothing more is sent; 130 as a batch (143 SIGTERM, 129 SIGHUP).
  local by_signal = caught > 0 and eip.is_error(e) and e.kind == "interrupted"
  if by_signal or (type(e) == "string" and e:find("interrupted!$")) then
    -- (a caught signal's own status: a read of stdin that one ended raises "interrupted!" too)
    local exit = caught > 0 and connection.signal_exit(signal) or EXIT_INTERRUPTED
    -- (named as a batch names it: SIGTERM or SIGHUP is no Ctrl-C)
    local said = (caught == 0 or signal == 2) and "interrupted"
      or "stopped by " .. (connection.SIGNAL_NAMES[signal] or ("signal " .. tostring(signal)))
    if M.wants_json(argv) then
      stderr:write(output.error_json({ kind = "interrupted", message = said }, exit) .. "\n")
    else
      stderr:write("eip: " .. said .. "\n")
    end
    return exit
  end
  local exit = args.is_usage(e) and EXIT_USAGE or EXIT_FAILED
  local known = args.is_usage(e) or args.is_failure(e) or eip.is_error(e)
  -- The command's own messages may quote what it was given (a command name, a code, an option's
  -- value): a credential there is not shown. (The library's errors are cleaned already.)
  if (args.is_usage(e) or args.is_failure(e)) and type(e.message) == "string" then
    -- (and no control byte raw: an escape sequence in a quoted value would reach the terminal)
    e.message = validate.escape_controls(validate.scrub(e.message))
  end
  if M.wants_json(argv) then
    if not known then e = { kind = "internal", message = tostring(e) } end
    stderr:write(output.error_json(e, exit) .. "\n")
  elseif known then
    report_error(e)
  else
    stderr:write("eip: internal error: " .. tostring(e) .. "\n")
  end
  return exit
end

return M
