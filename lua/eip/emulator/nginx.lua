--- Private nginx instances (plain Lua + LuaSocket): the EIP emulator's, and the specs'.
--
-- One place knows how to run an nginx that belongs to its caller and to nobody else: find
-- nginx and its dynamic modules, render a config from a template, pick a free 127.0.0.1 port,
-- spawn nginx in the foreground as our child, wait until it answers, and on stop ask it to quit
-- (QUIT, then KILL), reap it and remove its private prefix directory. Used by the EIP emulator
-- (eip.emulator) and by the OpenResty specs (the "app" nginx; spec/support/nginx.lua).
--
--   local nginx = require "eip.emulator.nginx"
--   local inst = nginx.start{
--     name = "app",                       -- prefix $TMPDIR/eip-app.XXXXXXXX
--     template = "/abs/path/nginx.conf.in", fields = { EXTRA = "..." },
--                                         -- or config = function(fields) return text end
--     ready = function(port, pid) return true_when_it_answers end,  -- default: a TCP connect;
--                                   pid: the master's, to tell this nginx from another on port
--     env = { NAME = "value" },           -- extra environment for nginx
--     wrapper = { "valgrind", "--tool=callgrind" },   -- a command nginx runs under (exec'd)
--     port = 8080,                        -- default: a free port (retried if taken meanwhile)
--     label = "eip app",                  -- prefix of error messages
--     error_log = "logs/error.log",       -- where the config logs, relative to the prefix
--   }
--   inst.port, inst.pid, inst.prefix, inst:alive(), inst:log_tail(n), inst:stop()
--   nginx.stop_all()
--
-- Templates use @NAME@ placeholders. Every config gets PREFIX, PORT, MODULES_DIR,
-- USER_DIRECTIVE ("user root root;" when run as root, else "") and OWNER_PID (this process,
-- for an in-nginx watchdog that shuts the instance down if the test run dies without stopping it).
local socket = require "socket"

local M = {}

local unpack_ = table.unpack or unpack -- luacheck: ignore 113 143 (unpack: 5.1; table.unpack: 5.2+)

M.START_TIMEOUT = 10 -- seconds to wait for a new instance to answer (a loaded machine, CI's, takes over 5)
M.STOP_TIMEOUT = 3  -- seconds to wait for a graceful stop before SIGKILL
local PORT_ATTEMPTS = 5 -- a free port can be taken between probing it and nginx binding it

-- Files and commands -------------------------------------------------------------------------

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.shell_quote = shell_quote

local function capture(cmd)
  local f = assert(io.popen(cmd, "r"))
  local out = f:read("*a")
  f:close()
  return (out:gsub("%s+$", ""))
end
M.capture = capture

local function file_exists(path)
  local f = io.open(path, "r")
  if f then
    f:close()
    return true
  end
  return false
end
M.file_exists = file_exists

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then
    return nil
  end
  local text = f:read("*a")
  f:close()
  return text
end
M.read_file = read_file

local function write_file(path, text)
  local f = assert(io.open(path, "wb"))
  assert(f:write(text))
  assert(f:close())
end
M.write_file = write_file

-- Absolute directory of a source file: nginx needs absolute paths, and the cwd may differ.
function M.dir_of(source)
  local dir = source:gsub("^@", ""):match("^(.*)/[^/]*$") or "."
  if dir:sub(1, 1) ~= "/" then
    dir = capture("cd " .. shell_quote(dir) .. " && pwd")
  end
  return dir
end

local function getenv(...)
  for _, name in ipairs({ ... }) do
    local v = os.getenv(name)
    if v and v ~= "" then
      return v
    end
  end
  return nil
end

-- Runs a shell command: did it exit 0?
local function succeeded(cmd)
  local ok = os.execute(cmd)
  return ok == true or ok == 0 -- Lua 5.2+ : Lua 5.1 / LuaJIT
end

local function executable(path)
  return succeeded("test -f " .. shell_quote(path) .. " && test -x " .. shell_quote(path))
end

-- A path as an absolute one (nginx runs in a directory of its own: see in_dir).
local function absolute_path(path)
  if path:sub(1, 1) == "/" then return path end
  return capture("pwd") .. "/" .. path
end

-- EIP_NGINX (EIP_EMULATOR_NGINX is the older name), else /usr/sbin/nginx, else the PATH; an
-- absolute path.
function M.find()
  local env = getenv("EIP_NGINX", "EIP_EMULATOR_NGINX")
  if env then
    if not executable(env) then
      error("EIP_NGINX=" .. env .. " is not an executable file", 0)
    end
    return absolute_path(env)
  end
  if file_exists("/usr/sbin/nginx") then
    return "/usr/sbin/nginx"
  end
  local found = capture("command -v nginx 2>/dev/null")
  if found == "" then
    error("nginx not found (install nginx and libnginx-mod-http-lua, or set EIP_NGINX)", 0)
  end
  return absolute_path(found)
end

-- EIP_NGINX_MODULES (or EIP_EMULATOR_MODULES), else Debian's module directory.
function M.modules_dir()
  local dir = getenv("EIP_NGINX_MODULES", "EIP_EMULATOR_MODULES") or "/usr/lib/nginx/modules"
  if not file_exists(dir .. "/ngx_http_lua_module.so") then
    error(dir .. "/ngx_http_lua_module.so not found "
      .. "(install libnginx-mod-http-lua, or set EIP_NGINX_MODULES)", 0)
  end
  return dir
end

-- Processes ----------------------------------------------------------------------------------

-- An object that calls fn when it is collected, or at the latest when Lua closes its state.
-- Lua 5.1 and LuaJIT run __gc for userdata only, hence newproxy there.
function M.on_collect(fn)
  local new = rawget(_G, "newproxy")
  if new then
    local u = new(true)
    getmetatable(u).__gc = function() fn() end
    return u
  end
  return setmetatable({}, { __gc = function() fn() end })
end

-- The pid of this Lua process: the parent of the shell that io.popen starts.
M.MY_PID = tonumber(capture("echo $PPID"))

-- The fields of /proc/<pid>/stat after the command name (which may hold blanks and ")"):
-- [1] the state, [20] the start time; nil when there is no such process.
local function stat_fields(pid)
  local rest = (read_file("/proc/" .. pid .. "/stat") or ""):match("^.*%)%s+(.*)$")
  if not rest then
    return nil
  end
  local fields = {}
  for field in rest:gmatch("%S+") do fields[#fields + 1] = field end
  return fields
end

-- "running", "zombie" (exited, not yet reaped) or nil (gone), from /proc/<pid>/stat.
local function process_state(pid)
  local fields = stat_fields(pid)
  if not fields then
    return nil
  end
  if fields[1] == "Z" or fields[1] == "X" then
    return "zombie"
  end
  return "running"
end

--- "<pid> <start time>" of a running process (its start time tells it from a later one given
-- the same pid), or nil.
local function identity(pid)
  local fields = stat_fields(pid)
  if not fields or fields[1] == "Z" or fields[1] == "X" or fields[20] == nil then return nil end
  return string.format("%d %s", pid, fields[20])
end
M.identity = identity

local function alive(pid)
  return process_state(pid) == "running"
end
M.alive = alive

local function signal(pid, name)
  os.execute("kill -" .. name .. " " .. string.format("%d", pid) .. " 2>/dev/null")
end

local function children_of(pid)
  local out = capture("pgrep -P " .. string.format("%d", pid) .. " 2>/dev/null")
  local pids = {}
  for child in out:gmatch("%d+") do
    pids[#pids + 1] = tonumber(child)
  end
  return pids
end

local function wait_until(deadline, predicate)
  while not predicate() do
    if socket.gettime() >= deadline then
      return false
    end
    socket.sleep(0.02)
  end
  return true
end
M.wait_until = wait_until

-- QUIT (graceful), then KILL the master and its workers (each by pid) if it does not exit.
local function terminate(pid)
  if not alive(pid) then
    return
  end
  signal(pid, "QUIT")
  if wait_until(socket.gettime() + M.STOP_TIMEOUT, function() return not alive(pid) end) then
    return
  end
  -- Frozen first: a master that sees a worker die respawns it, and a worker started after the
  -- list below would outlive everything (an orphan holding its port). KILL ends a stopped
  -- process all the same.
  signal(pid, "STOP")
  for _, child in ipairs(children_of(pid)) do
    signal(child, "KILL")
  end
  signal(pid, "KILL")
  wait_until(socket.gettime() + M.STOP_TIMEOUT, function() return not alive(pid) end)
end
M.terminate = terminate

-- Configs ------------------------------------------------------------------------------------

function M.free_port()
  local server = assert(socket.bind("127.0.0.1", 0))
  local _, port = server:getsockname()
  server:close()
  return tonumber(port)
end

--- A free port none of `taken` ({ [port] = true }) is, which it then joins: the extra ports of
-- one config, picked one after another, are never the same twice.
function M.free_port_besides(taken)
  local port
  repeat port = M.free_port() until not taken[port]
  taken[port] = true
  return port
end

-- Replace every @NAME@ of template by fields[NAME]; an unknown name is an error.
function M.render(template, fields)
  return (template:gsub("@([%u_][%u%d_]*)@", function(name)
    local value = fields[name]
    if value == nil then
      error("unknown template field @" .. name .. "@", 0)
    end
    return tostring(value)
  end))
end

local function standard_fields(prefix, port, owner_pid)
  -- Root's workers would otherwise run as "nobody", which cannot enter a private temp dir.
  local user = capture("id -u") == "0" and "user root root;" or ""
  return {
    PREFIX = prefix, PORT = tostring(port), MODULES_DIR = M.modules_dir(),
    USER_DIRECTIVE = user, OWNER_PID = tostring(owner_pid),
  }
end

-- The config text for one attempt: opts.config(fields) or opts.template rendered with
-- the standard fields plus opts.fields.
local function config_text(opts, prefix, port, owner_pid)
  local fields = standard_fields(prefix, port, owner_pid)
  for k, v in pairs(opts.fields or {}) do
    fields[k] = v
  end
  if opts.config then
    return opts.config(fields)
  end
  local template = read_file(opts.template)
  if not template then
    error("cannot read " .. tostring(opts.template), 0)
  end
  return M.render(template, fields)
end

local function write_config(opts, prefix, port, owner_pid)
  local path = prefix .. "/nginx.conf"
  write_file(path, config_text(opts, prefix, port, owner_pid))
  return path
end

local function tail(path, lines)
  local text = read_file(path) or ""
  local all = {}
  for line in text:gmatch("[^\n]+") do
    all[#all + 1] = line
  end
  return table.concat(all, "\n", math.max(1, #all - lines + 1))
end

local function startup_log(prefix, error_log)
  local text = tail(prefix .. "/error.log", 15)
  if error_log and error_log ~= "error.log" then
    text = text .. "\n" .. tail(prefix .. "/" .. error_log, 15)
  end
  return (text .. "\n" .. tail(prefix .. "/stderr.log", 5)):gsub("^%s+", ""):gsub("%s+$", "")
end

-- Launching ----------------------------------------------------------------------------------

-- The environment of nginx: the caller's plus `env`, without LUA_PATH, LUA_CPATH and LUA_INIT.
-- Those are set for the caller's Lua (`luarocks path` sets them for Lua 5.4), and nginx's
-- LuaJIT would read them too (";;" in lua_package_path is the default path, taken from them):
-- a Lua 5.4 cjson.so loaded into LuaJIT fails.
local function env_prefix(env)
  local parts = {}
  for name, value in pairs(env or {}) do
    assert(type(name) == "string" and name:match("^[%a_][%w_]*$"), "bad environment variable name")
    parts[#parts + 1] = name .. "=" .. shell_quote(value)
  end
  table.sort(parts)
  table.insert(parts, 1, "env -u LUA_PATH -u LUA_CPATH -u LUA_INIT")
  return table.concat(parts, " ") .. " "
end

-- The shell words that run nginx in `dir`, its own: LuaJIT, nginx's Lua, looks for modules in
-- ./ before anywhere else (./?.lua first, ./?.so first: `require "cjson"` loads ./cjson.so), and
-- the caller's directory may be /tmp, where another user could leave one.
local function in_dir(dir)
  return "cd " .. shell_quote(dir) .. " || exit 1; "
end

-- nginx in the foreground (daemon off) as a child of this process, through io.popen: closing
-- the pipe handle reaps it, so a stopped instance never lingers as a zombie, which a daemonized
-- master (re-parented to init) can. `exec` keeps the pid that `echo $$` printed (env execs too).
local function spawn(prefix, conf, env, wrapper)
  local wrap = {}
  for i, arg in ipairs(wrapper or {}) do wrap[i] = shell_quote(arg) .. " " end
  local cmd = string.format(
    "%secho $$; exec %s%s%s -p %s -c %s -e %s -g 'daemon off;' </dev/null >/dev/null 2>>%s", in_dir(prefix),
    env_prefix(env), table.concat(wrap), shell_quote(M.find()), shell_quote(prefix .. "/"), shell_quote(conf),
    shell_quote(prefix .. "/error.log"), shell_quote(prefix .. "/stderr.log"))
  local handle = assert(io.popen(cmd, "r"))
  local pid = tonumber(handle:read("*l"))
  return handle, pid
end

local function tcp_answers(port)
  local sock = socket.tcp()
  sock:settimeout(0.5)
  local ok = sock:connect("127.0.0.1", port)
  sock:close()
  return ok ~= nil
end

-- Wait until the instance answers; false if nginx exited or the deadline passed.
local function wait_ready(pid, port, ready)
  local deadline = socket.gettime() + M.START_TIMEOUT
  return wait_until(deadline, function()
    if not alive(pid) then
      return true -- stop waiting; the caller sees it is not alive
    end
    return ready(port, pid)
  end) and alive(pid)
end

local function try_start(opts, prefix, port)
  local conf = write_config(opts, prefix, port, M.MY_PID)
  local handle, pid = spawn(prefix, conf, opts.env, opts.wrapper)
  if pid and wait_ready(pid, port, opts.ready or tcp_answers) then
    return handle, pid
  end
  if pid then
    terminate(pid)
  end
  handle:close()
  return nil, startup_log(prefix, opts.error_log)
end

-- Our own mktemp directories, and only them, are ever removed whole.
local PREFIX_PATTERN = "^/.+/eip%-%w+%.%w+$"

local function remove_tree(path)
  if path and path:match(PREFIX_PATTERN) then
    os.execute("rm -rf " .. shell_quote(path))
  end
end

local function make_prefix(name)
  local base = os.getenv("TMPDIR")
  if not base or base == "" then
    base = "/tmp"
  end
  local dir = capture("mktemp -d " .. shell_quote(base .. "/eip-" .. name .. ".XXXXXXXX") .. " 2>/dev/null")
  if dir == "" or not dir:match(PREFIX_PATTERN) then
    error("nginx " .. name .. ": cannot make a directory in " .. base .. " (mktemp -d failed; TMPDIR?)", 0)
  end
  -- (the config quotes its paths; these would break it, or the shell)
  if dir:find('[%c"\\]') then
    os.execute("rmdir " .. shell_quote(dir))
    error("nginx " .. name .. ": " .. string.format("%q", base) .. " (TMPDIR) holds a quote, a backslash or a "
      .. "control character: give another TMPDIR", 0)
  end
  if not succeeded("mkdir -p " .. shell_quote(dir .. "/tmp") .. " " .. shell_quote(dir .. "/logs")) then
    remove_tree(dir)
    error("nginx " .. name .. ": cannot make directories in " .. dir, 0)
  end
  return dir
end

-- Is another attempt worth it after a start that wrote `log`? Only when a port was taken
-- (between picking it free and nginx binding it), and not the one the caller fixed: a config's
-- other ports (the emulator's IAM and metadata ports) are picked anew at each attempt.
local function port_race(log, fixed)
  if not log:find("Address already in use", 1, true) then return false end
  if not fixed then return true end
  local taken = tonumber(log:match("bind%(%) to [^\n]-:(%d+) failed"))
  return taken ~= nil and taken ~= fixed
end

local function launch(opts, prefix)
  local last_log
  for _ = 1, PORT_ATTEMPTS do
    local port = opts.port or M.free_port()
    local handle, pid_or_log = try_start(opts, prefix, port)
    if handle then
      return handle, pid_or_log, port
    end
    last_log = pid_or_log
    if not port_race(last_log, opts.port) then
      break
    end
  end
  error(opts.label .. ": nginx did not start or did not answer within " .. M.START_TIMEOUT
    .. " s; end of its logs:\n" .. tostring(last_log), 0)
end

local Instance = {}
Instance.__index = Instance

local live = {} -- instances started by this process and not yet stopped

-- Stop the instance: nginx is asked to quit, killed if it does not, reaped; the prefix goes.
-- A second stop is harmless.
function Instance:stop()
  if self._stopped then
    return
  end
  self._stopped = true
  live[self] = nil
  terminate(self.pid)
  if self._handle then
    self._handle:close() -- waits for (reaps) the master
  end
  remove_tree(self.prefix)
end

Instance.__close = Instance.stop

function Instance:alive()
  return not self._stopped and alive(self.pid)
end

-- The last n lines of the instance's error log (for failure messages).
function Instance:log_tail(n)
  return tail(self.prefix .. "/" .. self.error_log, n or 20)
end

local START_OPTIONS = {
  name = "string", template = "string", config = "function", fields = "table", ready = "function",
  env = "table", port = "number", label = "string", error_log = "string", wrapper = "table",
}

local function check_options(opts)
  for k, v in pairs(opts) do
    if not START_OPTIONS[k] then
      error("nginx.start: unknown option '" .. tostring(k) .. "'", 3)
    end
    if type(v) ~= START_OPTIONS[k] then
      error("nginx.start: option '" .. k .. "' must be a " .. START_OPTIONS[k], 3)
    end
  end
  if not (opts.name and opts.name:match("^%w+$")) then
    error("nginx.start: name must be letters and digits", 3)
  end
  if (opts.template == nil) == (opts.config == nil) then
    error("nginx.start: give template or config", 3)
  end
end

-- Start an instance (see the top of this file for opts). Raises with the end of nginx's logs
-- when it does not come up; nothing is left behind then.
function M.start(opts)
  check_options(opts)
  opts.label = opts.label or ("nginx " .. opts.name)
  local prefix = make_prefix(opts.name)
  local ok, handle, pid, port = pcall(launch, opts, prefix)
  if not ok then
    remove_tree(prefix)
    error(handle, 2)
  end
  local self = setmetatable({
    name = opts.name, port = port, pid = pid, prefix = prefix, url = "http://127.0.0.1:" .. port,
    error_log = opts.error_log or "error.log", _handle = handle,
  }, Instance)
  -- Finalizers run in reverse order of creation when Lua closes its state (normal exit, or the
  -- error exit of lua5.4 and busted), so this guard, made after the pipe handle, stops nginx
  -- before the handle's own finalizer would wait for it to exit on its own.
  self._guard = M.on_collect(function() self:stop() end)
  live[self] = true
  return self
end

-- Stop every instance this process started.
function M.stop_all()
  local all = {}
  for inst in pairs(live) do
    all[#all + 1] = inst
  end
  for _, inst in ipairs(all) do
    inst:stop()
  end
end

-- Detached instances (outlive this process; the eip-emulator command) -----------------------

-- A detached instance's directory is the user's to name (`eip-emulator start --dir`), and may
-- hold anything: only what start_detached wrote there is ever removed or signalled. It marks a
-- directory its own with OWNER_FILE before writing anything else; a directory from before the
-- owner file existed is known by its config's first line.
local OWNER_FILE = "lua-eip.owner"
local OWNER_TEXT = "This directory holds a detached nginx of lua-eip (eip-emulator); "
  .. "`eip-emulator stop --dir` removes what it wrote here but its logs.\n"
local OLD_CONFIG_HEAD = "# nginx configuration of the EIP emulator."
-- What start_detached writes and stop_detached removes (besides the caller's extra files).
local WRITTEN = { "nginx.conf", "nginx.pid", "tmp" }

--- The absolute, physical path of an existing directory (symbolic links resolved: two
-- spellings of one directory are one); dir itself when it does not exist.
local function absolute(dir)
  if not succeeded("test -d " .. shell_quote(dir)) then return dir end
  return capture("cd " .. shell_quote(dir) .. " && pwd -P")
end
M.absolute = absolute

local function owned(dir)
  return file_exists(dir .. "/" .. OWNER_FILE)
    or (read_file(dir .. "/nginx.conf") or ""):sub(1, #OLD_CONFIG_HEAD) == OLD_CONFIG_HEAD
end

--- The pid of the nginx master that runs with `dir` as its prefix, by the pid file there; nil
-- when there is none, or when that pid is now another process's (the instance crashed and the
-- number was given to someone else): nothing is ever signalled on a pid file's word alone.
-- @tparam string dir an absolute directory
function M.master_of(dir)
  local pid = tonumber(read_file(dir .. "/nginx.pid") or "")
  if not pid or not alive(pid) then return nil end
  local cmdline = read_file("/proc/" .. string.format("%d", pid) .. "/cmdline")
  if cmdline == nil then return nil end
  -- nginx names its master "nginx: master process <argv>": ours has "-p <prefix>/ -c", its
  -- prefix this directory however either is spelt (an instance started through a symbolic link,
  -- or by a version that kept the logical path).
  local prefix = cmdline:match("^nginx: master process .- %-p (.-)/ %-c ")
  if prefix and absolute(prefix) == absolute(dir) then return pid end
  return nil
end

--- A directory a detached instance may live in: none that nginx's config or the shell could
-- misread. Returns dir, or raises.
local function check_dir(dir, label)
  if type(dir) ~= "string" or dir == "" then
    error(label .. ": the directory must be a non-empty string", 0)
  end
  if dir:find('[%c"\\]') then
    error(label .. ": the directory must not hold a quote, a backslash or a control character: "
      .. string.format("%q", dir), 0)
  end
  return dir
end

-- start_detached, under the lock; dir is absolute.
local function start_locked(dir, opts, extra_files)
  local names = { OWNER_FILE, unpack_(extra_files or {}) }
  for _, name in ipairs(WRITTEN) do names[#names + 1] = name end
  for _, name in ipairs({ "error.log", "stderr.log", unpack_(names) }) do
    -- (a symbolic link, dangling or not, would have it write or remove elsewhere; the logs it
    -- appends to included)
    if succeeded("test -L " .. shell_quote(dir .. "/" .. name)) then
      error(string.format("%s: %s/%s is a symbolic link: give another directory", opts.label, dir, name), 0)
    end
  end
  if not owned(dir) then
    for _, name in ipairs(names) do
      if name ~= OWNER_FILE and file_exists(dir .. "/" .. name) then
        error(string.format("%s: %s holds a %s it did not write: give another directory", opts.label, dir,
          name), 0)
      end
    end
    local f = io.open(dir .. "/" .. OWNER_FILE, "wb")
    if not (f and f:write(OWNER_TEXT) and f:close()) then
      error(opts.label .. ": cannot write in " .. dir, 0)
    end
  end
  if M.master_of(dir) then
    error(opts.label .. ": already running in " .. dir, 0)
  end
  if not succeeded("mkdir -p " .. shell_quote(dir .. "/tmp") .. " 2>/dev/null") then
    error(opts.label .. ": cannot make the directory " .. dir .. "/tmp", 0)
  end
  local last_log
  for _ = 1, PORT_ATTEMPTS do
    local port = opts.port or M.free_port()
    local conf = write_config(opts, dir, port, 0)
    -- nginx binds its ports before it daemonizes: a port taken (by another emulator, say) makes
    -- it exit non-zero, and what answers on that port then is not this one.
    local started = succeeded(string.format("%s%s%s -p %s -c %s -e %s </dev/null >/dev/null 2>>%s", in_dir(dir),
      env_prefix(opts.env), shell_quote(M.find()), shell_quote(dir .. "/"), shell_quote(conf),
      shell_quote(dir .. "/error.log"), shell_quote(dir .. "/stderr.log")))
    local ready = opts.ready or tcp_answers
    local function up() -- this nginx runs and answers
      local pid = M.master_of(dir)
      return pid ~= nil and ready(port, pid)
    end
    if started and wait_until(socket.gettime() + M.START_TIMEOUT, up) then
      return port, dir
    end
    last_log = startup_log(dir, opts.error_log)
    if not port_race(last_log, opts.port) then
      break
    end
  end
  error(opts.label .. ": nginx did not start; error.log:\n" .. tostring(last_log), 0)
end

-- The start lock: two starts in one directory at once (`eip-emulator start & eip-emulator start`)
-- would each launch a master, one of them then unknown to stop. A start holds the directory's
-- lock from its first look at the directory until its master answers, or until what it began is
-- undone. The lock is a symbolic link naming its holder (pid and start time; it points nowhere):
-- symlink(2) either makes it whole or finds one there, as mkdir does for a directory, and its
-- holder is never missing. A lock whose holder is gone (a start killed) is taken over.
local LOCK_FILE = "lua-eip.starting"
local held = {} -- locks this process holds: [path] = true

-- Who holds the lock: its holder's identity text; "" for a file of that name that is no lock of
-- ours; nil when there is none.
local function lock_holder(lock)
  local text = capture("readlink " .. shell_quote(lock) .. " 2>/dev/null")
  if text:match("^%d+ %d+$") then return text end
  return (succeeded("test -e " .. shell_quote(lock)) or succeeded("test -L " .. shell_quote(lock))) and "" or nil
end

local function holder_gone(text)
  return identity(tonumber(text:match("^%d+"))) ~= text
end

-- Remove the lock if it still names `text` (a holder that is gone): moved aside first, so that of
-- two processes taking the same stale lock over, one removes it; a lock made anew meanwhile, and
-- moved aside by mistake, is put back.
local function remove_stale(lock, text)
  local aside = lock .. "." .. M.MY_PID
  if not succeeded("mv -fT " .. shell_quote(lock) .. " " .. shell_quote(aside) .. " 2>/dev/null") then return end
  local moved = capture("readlink " .. shell_quote(aside) .. " 2>/dev/null")
  if moved ~= text and moved ~= "" then
    os.execute("ln -sT " .. shell_quote(moved) .. " " .. shell_quote(lock) .. " 2>/dev/null")
  end
  os.remove(aside)
end

local function acquire(lock, label, dir)
  local me = assert(identity(M.MY_PID), "no /proc entry for this process")
  -- (the holder's start, then the undoing of a start that failed, and a little more)
  local deadline = socket.gettime() + M.START_TIMEOUT + M.STOP_TIMEOUT + 2
  while true do
    -- (-T: a directory of that name is no place to make it in)
    if succeeded("ln -sT " .. shell_quote(me) .. " " .. shell_quote(lock) .. " 2>/dev/null") then return me end
    local text = lock_holder(lock)
    if text == "" then
      error(string.format("%s: %s holds a %s it did not write: give another directory", label, dir, LOCK_FILE), 0)
    elseif text and holder_gone(text) then
      remove_stale(lock, text)
    elseif not text and not succeeded("test -w " .. shell_quote(dir)) then
      error(label .. ": cannot write in " .. dir, 0)
    elseif socket.gettime() >= deadline then
      error(text and string.format("%s: another start in %s (pid %s) has not finished within %d s; if none runs, "
        .. "remove %s", label, dir, text:match("^%d+"), M.START_TIMEOUT + M.STOP_TIMEOUT + 2, lock)
        or (label .. ": cannot make " .. lock), 0)
    else
      socket.sleep(0.05)
    end
  end
end

-- Releases the lock (when it is still this process's), then returns what fn returned or raises
-- what it raised.
local function release(lock, me, ok, ...)
  held[lock] = nil
  if lock_holder(lock) == me then os.remove(lock) end
  if not ok then error((...), 0) end
  return ...
end

-- Can a user other than this one write in a directory of `mode`, group `gid`? Its group counts
-- when it is not this user's own (umask 002 makes directories its group may write, the group
-- the user's private one); with `sticky_ok`, a sticky directory (/tmp) does not count: no one
-- can move another's entries out of it.
local function others_write(mode, gid, my_gid, sticky_ok)
  if sticky_ok and mode % 1024 >= 512 then return false end
  return mode % 4 >= 2 or (gid ~= my_gid and mode % 32 >= 16)
end

--- Refuses a directory where another user could change what a detached instance writes (its
-- config, between its writing and nginx reading it: their code would run as this user): one
-- that is not this user's, one that others may write in, or one inside a directory that another
-- user owns (but root) or others may write in without the sticky bit (they could move it away
-- and put one of their own in its place). `dir` is absolute and physical.
local function check_private(dir, label)
  local paths, p = { shell_quote(dir) }, dir
  while p ~= "/" do
    p = p:match("^(.*)/[^/]*$")
    if p == "" then p = "/" end
    paths[#paths + 1] = shell_quote(p)
  end
  local me, my_gid = capture("id -u"), tonumber(capture("id -g"))
  local out = capture("stat -L -c '%u %g %f %n' -- " .. table.concat(paths, " ") .. " 2>/dev/null")
  local seen = 0
  for uid, gid, mode, name in out:gmatch("(%d+) (%d+) (%x+) ([^\n]*)") do
    seen = seen + 1
    mode, gid = tonumber(mode, 16), tonumber(gid)
    local octal = string.format("%o", mode % 4096)
    if seen == 1 and uid ~= me then
      error(string.format("%s: %s belongs to another user (uid %s): give a directory of your own", label, name, uid), 0)
    elseif seen == 1 and others_write(mode, gid, my_gid) then
      error(string.format("%s: %s can be written by other users (mode %s): give a directory only you can write "
        .. "(chmod go-w)", label, name, octal), 0)
    elseif seen > 1 and ((uid ~= me and uid ~= "0") or others_write(mode, gid, my_gid, true)) then
      error(string.format("%s: %s is inside %s, which other users can write (mode %s, owner uid %s): they could "
        .. "put a directory of their own in its place; give one elsewhere", label, dir, name, octal, uid), 0)
    end
  end
  if seen ~= #paths then error(label .. ": cannot read the owner and mode of " .. dir .. " and its parents", 0) end
end

--- A directory a detached instance may live in, made if needed: its absolute path, or raises.
local function prepare_dir(dir, label)
  check_dir(dir, label)
  if not succeeded("mkdir -p " .. shell_quote(dir) .. " 2>/dev/null") then
    error(label .. ": cannot make the directory " .. dir, 0)
  end
  dir = check_dir(absolute(dir), label)
  if dir == "/" then error(label .. ": the directory must not be /", 0) end
  check_private(dir, label)
  return dir
end

--- Run `fn(abs)` holding the start lock of the detached instance directory `dir` (made if
-- needed, refused when another user could write in it or move it; `abs` is its absolute path):
-- of the starts in one directory, one at a time runs fn, the others wait for it (a few seconds
-- at most). A process that holds the lock already just runs fn. The lock goes when fn returns
-- or raises; one a killed process left is taken over.
-- @tparam string dir the directory
-- @tparam string label the prefix of error messages
-- @tparam function fn what to run
-- @return what fn returns
-- @raise what fn raises; when the directory is refused, or another start does not finish
function M.with_start_lock(dir, label, fn)
  dir = prepare_dir(dir, label)
  local lock = dir .. "/" .. LOCK_FILE
  if held[lock] then return fn(dir) end
  local me = acquire(lock, label, dir)
  held[lock] = true
  return release(lock, me, pcall(fn, dir))
end

-- Start a daemonized nginx with dir as its prefix. opts as for M.start (no name; no watchdog:
-- OWNER_PID is 0); extra_files: the other names the caller writes there (stop_detached removes
-- them). Refuses a directory holding any of those files that it did not write, and one another
-- user could write in (see check_private, by M.with_start_lock). Returns the port
-- and the directory's absolute path. It runs under the directory's start lock (M.with_start_lock).
function M.start_detached(dir, opts, extra_files)
  opts.label = opts.label or "nginx"
  return M.with_start_lock(dir, opts.label, function(abs)
    return start_locked(abs, opts, extra_files)
  end)
end

-- Stop the daemonized nginx of dir and remove what start_detached wrote (logs stay), only when
-- start_detached made dir its own. Returns the pid stopped, or nil when none ran there.
function M.stop_detached(dir, extra_files)
  if type(dir) ~= "string" or dir == "" then return nil end
  dir = absolute(dir)
  if dir == "/" then return nil end
  -- (a start's lock: left to a start under way; the one a killed start left goes, made before the
  -- directory was marked or after)
  local holder = lock_holder(dir .. "/" .. LOCK_FILE)
  if holder and holder ~= "" and holder_gone(holder) then remove_stale(dir .. "/" .. LOCK_FILE, holder) end
  if not owned(dir) then return nil end
  local pid = M.master_of(dir)
  if pid then
    terminate(pid)
  end
  for _, name in ipairs({ "nginx.conf", "nginx.pid", unpack_(extra_files or {}) }) do
    os.remove(dir .. "/" .. name)
  end
  os.execute("rm -rf " .. shell_quote(dir .. "/tmp"))
  os.remove(dir .. "/" .. OWNER_FILE)
  return pid
end

return M
