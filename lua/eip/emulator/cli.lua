--- The `eip-emulator` command (bin/eip-emulator): the EIP emulator as a tool of its own, for
-- trying scripts and the `eip` command offline.
--
--   eval "$(eip-emulator start)"        a detached emulator; export lines for the eip command,
--                                      scripts and the SDK variables
--   eip-emulator create-bandwidth [--eips N] [--name NAME] [--size MBIT] [--count N] [--dedicated]
--   eip-emulator status                 exit 0 running, 3 not running
--   eip-emulator stop
--
-- Its files (nginx config, pid, logs) live in `--dir`, else `$EIP_EMULATOR_DIR`, else
-- `~/.eip-emulator`. Needs nginx with the Lua module and LuaSocket at run time: `start`
-- checks both and says what to install.
-- @module eip.emulator.cli
local args = require "eip.cli.args"
local params = require "eip.emulator.server.params"

local M = {}

local EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOT_RUNNING = 0, 1, 2, 3

local stdout, stderr = io.stdout, io.stderr

local NEEDS = [[
It needs nginx with its Lua module, and LuaSocket: on Debian, apt-get install
nginx libnginx-mod-http-lua lua-resty-core lua-cjson lua-socket (EIP_NGINX and
EIP_NGINX_MODULES name another nginx and its module directory).]]

local DIR_OPTION = { "--dir", value = "DIR", key = "dir",
  help = "its files (default: $EIP_EMULATOR_DIR, else ~/.eip-emulator)" }

-- The emulator's modules need LuaSocket; loaded only once it is known to be there.
local function emulator()
  local ok = pcall(require, "socket")
  if not ok then
    error({ exit = EXIT_FAILED, message = "LuaSocket is missing (or: luarocks install luasocket)\n" .. NEEDS }, 0)
  end
  return require "eip.emulator"
end

local function dir_of(opts)
  if opts.dir == "" then args.usage("--dir must not be empty") end
  local dir = opts.dir or args.getenv("EIP_EMULATOR_DIR")
  if dir then return dir end
  local home = args.getenv("HOME")
  if not home then args.usage("no --dir, no $EIP_EMULATOR_DIR and no $HOME: give --dir") end
  return home .. "/.eip-emulator"
end

-- A shell word: bare when it is plain, else single-quoted.
local function shell_word(s)
  if s:find("^[%w@%%+=:,./_-]+$") then return s end
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

--- The lines `start` prints: comments and `export` lines a shell can `eval`.
-- @param emu the running instance (its `url`, `project_id`, `token`, `ak`, `sk`, `iam`, `pid`, `dir`)
-- @treturn string the text
function M.exports(emu)
  local iam = emu.iam
  -- The stop command that finds this instance: with --dir unless plain `stop` looks there.
  local found, default = pcall(dir_of, {})
  local stop = "eip-emulator stop"
  if not found or default ~= emu.dir then stop = stop .. " --dir " .. shell_word(emu.dir) end
  return table.concat({
    string.format("# EIP emulator at %s (pid %s, files in %s); stop it with: %s",
      emu.url, tostring(emu.pid), emu.dir, stop),
    "export EIP_ENDPOINT=" .. shell_word(emu.url),
    "export HUAWEICLOUD_SDK_PROJECT_ID=" .. shell_word(emu.project_id),
    "export OS_AUTH_TOKEN=" .. shell_word(emu.token),
    "# To sign with AK/SK instead (used rather than the token when both are set):",
    "# export HUAWEICLOUD_SDK_AK=" .. shell_word(emu.ak) .. " HUAWEICLOUD_SDK_SK=" .. shell_word(emu.sk),
    "# To log in as its IAM user from Lua (IAM answers at the same address):",
    string.format('#   eip.new{ endpoint = os.getenv("EIP_ENDPOINT"), auth = { username = %q,', iam.username),
    string.format("#     password = %q, domain = %q, project = %q,", iam.password, iam.domain, iam.project),
    '#     iam_endpoint = os.getenv("EIP_ENDPOINT") } }',
    "# Set these in your shell with: eval \"$(eip-emulator start)\"",
  }, "\n") .. "\n"
end

local START = {
  name = "start", args = "[options]",
  summary = "start it in the background; prints export lines for eval",
  about = [[
Starts the emulator in the background (a private nginx on 127.0.0.1) and prints export
lines: EIP_ENDPOINT (read by the eip command; a Lua script passes it as endpoint =
os.getenv("EIP_ENDPOINT")), OS_AUTH_TOKEN and HUAWEICLOUD_SDK_PROJECT_ID (found in the
environment by both), then, as comments, an AK/SK pair and an IAM user it accepts.
When it already runs, prints the same lines again; so does the second of two starts
in one directory at once, after waiting for the first. It refuses a directory
holding an nginx.conf, nginx.pid, emulator.port, tmp or lua-eip.starting (the lock
of a start under way) it did not write, and one another user owns or may write in,
or that lies in one they may (but a sticky one, as /tmp): they could change its
config before nginx reads it. Use it as:

eval "$(eip-emulator start)"]],
  options = { DIR_OPTION, { "--port", value = "N", key = "port", integer = true,
    help = "listen on 127.0.0.1:N (default: a free port)" } },
}

-- Why a start failed: what start_detached raised, and the packages it needs when what failed
-- looks like one missing (nginx's Lua module or a Lua module), not for a port taken or a
-- directory refused.
local function start_failure(why)
  why = tostring(why)
  local missing = why:find("module '", 1, true) or why:find("unknown directive", 1, true)
    or why:find("dlopen", 1, true)
  return { exit = EXIT_FAILED, message = "cannot start: " .. why .. (missing and ("\n" .. NEEDS) or "") }
end

function START.run(opts, dir)
  if opts.port ~= nil and (opts.port < 1 or opts.port > 65535) then
    args.usage("--port must be between 1 and 65535, got %d", opts.port)
  end
  local emu_mod = emulator()
  local emu = emu_mod.attach(dir)
  local started = false
  if not emu then
    local nginx = require "eip.emulator.nginx"
    local ok, why = pcall(function() nginx.find(); nginx.modules_dir() end)
    if not ok then error({ exit = EXIT_FAILED, message = "cannot start: " .. tostring(why) .. "\n" .. NEEDS }, 0) end
    -- Another start in dir at the same time: this one waits for it, then finds its emulator.
    ok, emu, started = pcall(nginx.with_start_lock, dir, "eip emulator", function()
      local running = emu_mod.attach(dir)
      if running then return running, false end
      -- (called from pcall: its message gets no position of this file)
      local started_ok, started_emu = pcall(emu_mod.start_detached, dir, opts.port)
      if not started_ok then error(started_emu, 0) end
      return started_emu, true
    end)
    if not ok then error(start_failure(emu), 0) end
  end
  if not started then
    stderr:write("eip-emulator: already running in " .. dir
      .. ((opts.port ~= nil and opts.port ~= emu.port) and (" on port " .. emu.port .. ", not " .. opts.port) or "")
      .. "\n")
  end
  stdout:write(M.exports(emu))
  return EXIT_OK
end

-- The running emulator of dir, or an error that says it is not running.
local function running(dir)
  local emu, why = emulator().attach(dir)
  if not emu then error({ exit = EXIT_FAILED, message = why .. " (start one: eip-emulator start)" }, 0) end
  return emu
end

local CREATE = {
  name = "create-bandwidth", args = "[options]",
  summary = "create a shared bandwidth (with EIPs); prints its id",
  about = [[
Creates a shared (WHOLE) bandwidth in the running emulator, holding --eips new EIPs, and prints
its id (--count: that many bandwidths, one id per line). A bandwidth with EIPs cannot be deleted
until they are moved out: eip delete-bandwidth --drain.]],
  options = { DIR_OPTION,
    { "--eips", value = "N", key = "eips", integer = true, help = "EIPs in it (default 0; --dedicated: 1)" },
    { "--name", value = "NAME", key = "name",
      help = "its name: 1-64 letters, digits, Chinese, _, - or . (default: seeded-N)" },
    { "--size", value = "MBIT", key = "size", integer = true,
      help = "Mbit/s, 5-2000 (--dedicated: 1-2000; default 10)" },
    { "--count", value = "N", key = "count", integer = true, help = "create N bandwidths, 1-10000 (default 1)" },
    { "--dedicated", key = "dedicated", help = "a dedicated (PER) bandwidth instead: one EIP's own" },
  },
}

function CREATE.run(opts, dir)
  local count = opts.count or 1
  if count < 1 or count > 10000 then args.usage("--count must be between 1 and 10000, got %d", count) end
  if opts.eips ~= nil and (opts.eips < 0 or opts.eips > 10000) then
    args.usage("--eips must be between 0 and 10000, got %d", opts.eips)
  end
  -- The API's own rules (eip.emulator.server.params), so that nothing is seeded that its create
  -- would refuse: a name of 1-64 characters of its set, a shared size of at least 5 Mbit/s.
  if opts.name ~= nil and not params.valid_name(opts.name) then
    -- (its whole characters within 30 bytes)
    local shown = opts.name:sub(1, 30)
    if opts.name:byte(31) and opts.name:byte(31) >= 0x80 and opts.name:byte(31) < 0xC0 then
      shown = shown:gsub("[\192-\255][\128-\191]*$", "")
    end
    args.usage("--name must be %s, got %q%s", params.NAME_RULE, shown,
      #opts.name > 30 and string.format(" (%d bytes)", #opts.name) or "")
  end
  local min = opts.dedicated and params.DEDICATED_MIN or params.SHARED_MIN
  if opts.size ~= nil and not params.coerce_size(opts.size, min) then
    args.usage("--size must be between %d and %d (Mbit/s) for a %s bandwidth, got %d", min, params.SIZE_MAX,
      opts.dedicated and "dedicated" or "shared", opts.size)
  end
  -- (a dedicated bandwidth is its EIP's own: the cloud never shows one without, nor with two)
  if opts.dedicated and (opts.eips or 1) ~= 1 then
    args.usage("a --dedicated bandwidth holds its one EIP: --eips must be 1, got %d", opts.eips)
  end
  local eips = opts.eips or (opts.dedicated and 1 or nil)
  local emu = running(dir)
  for i = 1, count do
    local ok, id = pcall(emu.create_bandwidth, emu, { name = opts.name, size = opts.size, eips = eips,
      share_type = opts.dedicated and "PER" or "WHOLE" })
    if not ok then
      -- (the emulator's refusal, e.g. a full store, without the Lua position of the control call)
      local why = tostring(id):gsub("^.-:%d+: ", ""):gsub("^eip emulator: POST bandwidths: HTTP %d+: ", "")
      stdout:flush() -- the ids made so far come before the message
      error({ exit = EXIT_FAILED, message = string.format("cannot create bandwidth %d of %d: %s", i, count, why)
        .. (i > 1 and string.format(" (%d created: their ids above)", i - 1) or "") }, 0)
    end
    stdout:write(id, "\n")
  end
  return EXIT_OK
end

local STATUS = {
  name = "status", args = "[options]",
  summary = "is it running? its address, bandwidths and requests served",
  about = "Says whether the emulator runs, where, and what it holds. Exit status: 0 running, 3 not running.",
  options = { DIR_OPTION },
}

function STATUS.run(_, dir)
  local emu, why = emulator().attach(dir)
  if not emu then
    stdout:write("not running: ", why, "\n")
    return EXIT_NOT_RUNNING
  end
  local s = emu:stats()
  local connections = rawget(s, "connections") -- (absent when a full store left some uncounted)
  stdout:write(string.format("running at %s (pid %d, files in %s)\n", emu.url, emu.pid, dir))
  stdout:write(string.format("%d bandwidth(s); %d API request(s) served on %s\n", s.bandwidths, s.requests,
    connections and string.format("%d connection(s)", connections) or "connections its full store did not count"))
  return EXIT_OK
end

local STOP = {
  name = "stop", args = "[options]",
  summary = "stop it and remove its files (its logs stay)",
  about = [[
Stops the emulator and removes the files it wrote, but its logs. Only what start wrote is
removed, and only its own nginx is signalled: a directory it did not make its own, and a
process the pid file names that is not its nginx (after a crash), are left alone. Stopping one
that does not run is not an error.]],
  options = { DIR_OPTION },
}

function STOP.run(_, dir)
  local pid = emulator().stop_detached(dir)
  if pid then
    stdout:write(string.format("stopped the emulator in %s (pid %d)\n", dir, pid))
  else
    stdout:write("not running: nothing to stop in ", dir, "\n")
  end
  return EXIT_OK
end

--- The commands, in the order `eip-emulator --help` lists them.
M.COMMANDS = { START, CREATE, STATUS, STOP }
local COMMANDS, BY_NAME, NAMES = M.COMMANDS, {}, {}
for i, c in ipairs(COMMANDS) do
  c.tool = "eip-emulator"
  BY_NAME[c.name], NAMES[i] = c, c.name
end

--- The help of the command (`eip-emulator --help`).
-- @treturn string the text, ending with a newline
function M.help()
  local lines = { "usage: eip-emulator COMMAND [options]", "",
    "The EIP emulator, for trying scripts and the eip command offline: a private",
    "nginx on 127.0.0.1 that models shared bandwidths, EIPs, tokens, AK/SK signing",
    "and IAM.", "", "commands:" }
  for _, c in ipairs(COMMANDS) do lines[#lines + 1] = string.format("  %-18s %s", c.name, c.summary) end
  lines[#lines + 1] = ""
  lines[#lines + 1] = "eip-emulator COMMAND --help describes a command's options."
  lines[#lines + 1] = "A session: eval \"$(eip-emulator start)\"; eip-emulator create-bandwidth --eips 2;"
  lines[#lines + 1] = "eip list-bandwidths; ...; eip-emulator stop."
  lines[#lines + 1] = ""
  lines[#lines + 1] = NEEDS
  return table.concat(lines, "\n") .. "\n"
end

local function dispatch(argv)
  local name = argv[1]
  if name == nil then
    stderr:write(M.help())
    return EXIT_USAGE
  end
  if name == "-h" or name == "--help" or (name == "help" and argv[2] == nil) then
    stdout:write(M.help())
    return EXIT_OK
  end
  if name == "help" then name = argv[2] end
  local c = BY_NAME[name]
  if not c then
    local guess = args.closest(name, NAMES)
    args.usage("unknown command %q%s (commands: %s; see eip-emulator --help)", name:sub(1, args.utf8_cut(name, 30)),
      guess and ("; did you mean " .. guess .. "?") or "", table.concat(NAMES, ", "))
  end
  local opts, rest
  if argv[1] ~= "help" then opts, rest = args.parse(c, argv, 2) end
  if not opts then
    stdout:write(args.command_help(c))
    return EXIT_OK
  end
  if #rest > 0 then args.usage("%s takes no arguments, got %q (see: eip-emulator %s --help)", c.name,
    rest[1]:sub(1, args.utf8_cut(rest[1], 30)), c.name) end
  return c.run(opts, dir_of(opts))
end

--- Run the command line.
-- @tparam table argv the `arg` table of the script (argv[1] the command)
-- @treturn integer the exit status: 0 success, 1 failure, 2 usage error, 3 (status) not running
function M.main(argv)
  local ok, code = pcall(dispatch, argv or {})
  if ok then return code end
  if args.is_usage(code) then
    stderr:write("eip-emulator: " .. code.message .. "\n")
    return EXIT_USAGE
  end
  if type(code) == "table" and code.exit then
    stderr:write("eip-emulator: " .. code.message .. "\n")
    return code.exit
  end
  stderr:write("eip-emulator: " .. tostring(code) .. "\n")
  return EXIT_FAILED
end

return M
