--- The `eip` operator command (bin/eip): dispatch to the commands, error reporting, exit codes.
--
--     eip delete-bandwidth [options] ID... | -      delete shared bandwidths (batch)
--     eip show-bandwidth [options] ID               one bandwidth
--     eip list-bandwidths [options] [--shared]      every bandwidth (all pages)
--     eip status CODE                               what an HTTP status means here
--
-- Exit codes: 0 success (every id deleted, or missing with --missing-ok), 1 some call failed,
-- 2 usage error (nothing was sent), 130 interrupted (Ctrl-C). Credentials come only from the environment, as for the
-- library (OS_AUTH_TOKEN, HUAWEICLOUD_SDK_AK/SK/...): a secret on the command line would show
-- in `ps` and in shell history.
--
-- Each command is a module (`eip.cli.delete_bandwidth`, `eip.cli.show_bandwidth`, ...):
-- `{ name, args, summary, about, options, credentials, run }`, `run(opts, argv, ctx)` returning
-- true on success (eip.cli.args parses the options and writes the help).
-- @module eip.cli
local eip = require "eip"
local args = require "eip.cli.args"
local progress = require "eip.cli.progress"

local M = {}

local EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

local stdout, stderr = io.stdout, io.stderr

-- The commands, in the order `eip --help` lists them, and by name.
local COMMANDS, NAMES, BY_NAME = {}, {}, {}
for i, module in ipairs{ "delete_bandwidth", "show_bandwidth", "list_bandwidths", "status" } do
  local c = require("eip.cli." .. module)
  COMMANDS[i], NAMES[i], BY_NAME[c.name] = c, c.name, c
end

-- An error as the lines an operator reads: the one-line form, then the advice.
local function report_error(e)
  stderr:write(tostring(e), "\n")
  if eip.is_error(e) and e.advice and e.kind ~= "usage" then stderr:write("  advice: ", e.advice, "\n") end
end

-- A command name that is not one: refused with a hint, never echoing what may be a secret.
local function unknown_command(name)
  local guess = args.closest(name, NAMES)
  if name:sub(1, 1) == "-" then name = name:match("^[^=]*") end -- never echo an option's value
  -- A long word in command position may be a pasted secret: it is not echoed.
  local shown = #name <= 32 and string.format("%q", name) or string.format("(%d characters, not shown)", #name)
  args.usage("unknown command %s%s (commands: %s; see eip --help)", shown,
    guess and ("; did you mean " .. guess .. "?") or "", table.concat(NAMES, ", "))
end

local function dispatch(argv, ctx)
  local name = argv[1]
  if name == nil then
    stderr:write(args.tool_help(COMMANDS))
    return EXIT_USAGE
  end
  if name == "-h" or name == "--help" then
    stdout:write(args.tool_help(COMMANDS))
    return EXIT_OK
  end
  if name == "--version" then
    stdout:write("eip (lua-eip) ", eip._VERSION, "\n")
    return EXIT_OK
  end
  if name == "help" then
    local topic = argv[2]
    if topic == nil then stdout:write(args.tool_help(COMMANDS)) return EXIT_OK end
    if not BY_NAME[topic] then
      args.usage("no such command %q (commands: %s)", topic:sub(1, 30), table.concat(NAMES, ", "))
    end
    stdout:write(args.command_help(BY_NAME[topic]))
    return EXIT_OK
  end
  local c = BY_NAME[name]
  if not c then unknown_command(name) end
  local opts, rest = args.parse(c, argv, 2)
  if not opts then
    stdout:write(args.command_help(c))
    return EXIT_OK
  end
  local result = c.run(opts, rest, ctx)
  if type(result) == "number" then return result end -- an exit status of its own (130: interrupted)
  return result and EXIT_OK or EXIT_FAILED
end

--- Runs the command line: what `bin/eip` does with its `arg` table. Writes to stdout and
-- stderr.
-- @tparam {string,...} argv the arguments, the command first (the script's `arg`)
-- @treturn integer the exit status: 0 success, 1 a call failed, 2 usage error (nothing was
--   sent), 130 interrupted (Ctrl-C)
-- @raise never: every error is reported on stderr and turned into the exit status
function M.main(argv)
  local ctx = { terminal = progress.stderr_is_terminal() }
  local ok, code = pcall(dispatch, argv or {}, ctx)
  if ok then return code end
  local e = code
  if args.is_usage(e) then
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
