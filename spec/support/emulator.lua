-- Launcher and control client of the EIP emulator (plain Lua 5.4 + LuaSocket + cjson).
--
-- The emulator itself is a private nginx with the Lua module (spec/support/emulator/*.lua run
-- inside it). This file starts and stops such instances and talks to their /__emulator/ control
-- routes:
--
--   local emulator = require "spec.support.emulator"
--   local emu = emulator.start()          -- or emulator.start{ tokens = { [tok] = project } }
--   emu.url, emu.port, emu.token, emu.project_id, emu.other_token, emu.other_project_id
--   emu:reset(); emu:reset_counters(); emu:set_tokens{...}
--   emu:create_bandwidth{...}; emu:get_bandwidth(id); emu:bandwidths(); emu:inject{...}
--   emu:stats(); emu:requests(); emu:stop()          emulator.stop_all()
--
-- Also a command line for `make demo`:
--   lua5.4 spec/support/emulator.lua start --dir DIR [--port N]   (detached; writes DIR/emulator.env)
--   lua5.4 spec/support/emulator.lua stop --dir DIR
local socket = require "socket"
local cjson = require "cjson"

local M = {}

M.DEFAULT_TOKEN = "emu-token-1f2e3d4c5b6a"
M.DEFAULT_PROJECT_ID = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
M.OTHER_TOKEN = "emu-token-other-7a6b5c4d3e2f"
M.OTHER_PROJECT_ID = "f9e8d7c6b5a4938271605f4e3d2c1b0a"

local START_TIMEOUT = 5     -- seconds to wait for a new instance to answer
local STOP_TIMEOUT = 3      -- seconds to wait for a graceful stop before SIGKILL
local CONTROL_TIMEOUT = 5   -- seconds for one control call
local PORT_ATTEMPTS = 5     -- a free port can be taken between probing it and nginx binding it

-- Paths --------------------------------------------------------------------------------------

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function capture(cmd)
  local f = assert(io.popen(cmd, "r"))
  local out = f:read("a")
  f:close()
  return (out:gsub("%s+$", ""))
end

local function file_exists(path)
  local f = io.open(path, "r")
  if f then
    f:close()
    return true
  end
  return false
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then
    return nil
  end
  local text = f:read("a")
  f:close()
  return text
end

local function write_file(path, text)
  local f = assert(io.open(path, "wb"))
  assert(f:write(text))
  assert(f:close())
end

-- Absolute directory of this file: nginx needs absolute paths, and the caller's cwd may differ.
local SUPPORT_DIR = (function()
  local source = debug.getinfo(1, "S").source:gsub("^@", "")
  local dir = source:match("^(.*)/[^/]*$") or "."
  if dir:sub(1, 1) ~= "/" then
    dir = capture("cd " .. shell_quote(dir) .. " && pwd")
  end
  return dir
end)()

local function find_nginx()
  local env = os.getenv("EIP_EMULATOR_NGINX")
  if env and env ~= "" then
    return env
  end
  if file_exists("/usr/sbin/nginx") then
    return "/usr/sbin/nginx"
  end
  local found = capture("command -v nginx 2>/dev/null")
  if found == "" then
    error("eip emulator: nginx not found (install nginx and libnginx-mod-http-lua, "
      .. "or set EIP_EMULATOR_NGINX)", 0)
  end
  return found
end

local function modules_dir()
  local env = os.getenv("EIP_EMULATOR_MODULES")
  local dir = (env and env ~= "") and env or "/usr/lib/nginx/modules"
  if not file_exists(dir .. "/ngx_http_lua_module.so") then
    error("eip emulator: " .. dir .. "/ngx_http_lua_module.so not found "
      .. "(install libnginx-mod-http-lua, or set EIP_EMULATOR_MODULES)", 0)
  end
  return dir
end

-- Processes ----------------------------------------------------------------------------------

-- The pid of this Lua process: the parent of the shell that io.popen starts.
local MY_PID = tonumber(capture("echo $PPID"))

-- "running", "zombie" (exited, not yet reaped) or nil (gone), from /proc/<pid>/stat.
local function process_state(pid)
  local stat = read_file("/proc/" .. pid .. "/stat")
  if not stat then
    return nil
  end
  local state = stat:match("%)%s+(%a)")
  if state == "Z" or state == "X" then
    return "zombie"
  end
  return "running"
end

local function alive(pid)
  return process_state(pid) == "running"
end

local function signal(pid, name)
  os.execute("kill -" .. name .. " " .. math.tointeger(pid) .. " 2>/dev/null")
end

local function children_of(pid)
  local out = capture("pgrep -P " .. math.tointeger(pid) .. " 2>/dev/null")
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

-- QUIT (graceful), then KILL the master and its workers (each by pid) if it does not exit.
local function terminate(pid)
  if not alive(pid) then
    return
  end
  signal(pid, "QUIT")
  if wait_until(socket.gettime() + STOP_TIMEOUT, function() return not alive(pid) end) then
    return
  end
  for _, child in ipairs(children_of(pid)) do
    signal(child, "KILL")
  end
  signal(pid, "KILL")
  wait_until(socket.gettime() + STOP_TIMEOUT, function() return not alive(pid) end)
end

-- A tiny HTTP/1.1 client --------------------------------------------------------------------
-- socket.http forces its own 60 s timeout on every socket; control calls and the spec want
-- short, explicit ones, and the spec needs to reuse one connection for several requests.

local function read_chunked(sock)
  local parts = {}
  while true do
    local line, err = sock:receive("*l")
    if not line then
      return nil, err
    end
    local size = tonumber(line:match("^%x+"), 16)
    if not size then
      return nil, "bad chunk size"
    end
    if size == 0 then
      sock:receive("*l")
      return table.concat(parts)
    end
    local data, derr = sock:receive(size)
    if not data then
      return nil, derr
    end
    parts[#parts + 1] = data
    sock:receive("*l")
  end
end

local function read_head(sock)
  local line, err = sock:receive("*l")
  if not line then
    return nil, err
  end
  local status = tonumber(line:match("^HTTP/%d%.%d (%d%d%d)"))
  if not status then
    return nil, "bad status line: " .. line
  end
  local headers = {}
  while true do
    local h, herr = sock:receive("*l")
    if not h then
      return nil, herr
    end
    if h == "" then
      break
    end
    local name, value = h:match("^([^:]+):%s*(.-)%s*$")
    if name then
      headers[name:lower()] = value
    end
  end
  return status, headers
end

local function read_body(sock, method, status, headers)
  if method == "HEAD" or status == 204 or status == 304 or status < 200 then
    return ""
  end
  if (headers["transfer-encoding"] or ""):lower():find("chunked", 1, true) then
    return read_chunked(sock)
  end
  local length = tonumber(headers["content-length"])
  if length then
    return sock:receive(length)
  end
  local data, err, partial = sock:receive("*a")
  return data or partial, data == nil and err or nil
end

-- One request. opts: port, path, method="GET", headers={}, body=nil, timeout=5,
-- sock (an open connection to reuse), keepalive (leave the connection open and return it).
-- Returns {status, headers (lower-case names), body, sock?} or nil, error.
function M.http(opts)
  local sock = opts.sock
  if not sock then
    sock = socket.tcp()
    sock:settimeout(opts.timeout or CONTROL_TIMEOUT)
    local ok, err = sock:connect("127.0.0.1", opts.port)
    if not ok then
      sock:close()
      return nil, "connect: " .. tostring(err)
    end
  end
  local method = opts.method or "GET"
  local body = opts.body or ""
  local lines = { method .. " " .. opts.path .. " HTTP/1.1", "Host: 127.0.0.1:" .. opts.port }
  local headers = opts.headers or {}
  for name, value in pairs(headers) do
    lines[#lines + 1] = name .. ": " .. value
  end
  if body ~= "" or method == "POST" or method == "PUT" then
    lines[#lines + 1] = "Content-Length: " .. #body
  end
  if not opts.keepalive then
    lines[#lines + 1] = "Connection: close"
  end
  local ok, err = sock:send(table.concat(lines, "\r\n") .. "\r\n\r\n" .. body)
  local status, resp_headers, resp_body
  if ok then
    status, resp_headers = read_head(sock)
    err = resp_headers
    if status then
      resp_body, err = read_body(sock, method, status, resp_headers)
    end
  end
  if not (status and resp_body) then
    sock:close()
    return nil, tostring(err)
  end
  if not opts.keepalive then
    sock:close()
    sock = nil
  end
  return { status = status, headers = resp_headers, body = resp_body, sock = sock }
end

-- Control calls ------------------------------------------------------------------------------

local Emulator = {}
Emulator.__index = Emulator

local function encode(value)
  return cjson.encode(value)
end

-- A control call; raises on transport errors and on an unexpected status.
local function control(self, method, route, body, expect)
  local resp, err = M.http{
    port = self.port, path = "/__emulator/" .. route, method = method,
    headers = { ["Content-Type"] = "application/json" },
    body = body ~= nil and encode(body) or nil,
  }
  if not resp then
    error("eip emulator: " .. method .. " " .. route .. ": " .. err, 2)
  end
  local ok, decoded = pcall(cjson.decode, resp.body)
  if not ok then
    decoded = nil
  end
  if expect and resp.status ~= expect then
    local why = type(decoded) == "table" and decoded.error or resp.body
    error(string.format("eip emulator: %s %s: HTTP %d: %s", method, route, resp.status,
      tostring(why)), 2)
  end
  return decoded, resp.status
end

-- Forget bandwidths, injections, counters and the request log (tokens stay).
function Emulator:reset()
  control(self, "POST", "reset", nil, 200)
end

-- Forget only the counters and the request log (e.g. after seeding through the API).
function Emulator:reset_counters()
  control(self, "POST", "reset_counters", nil, 200)
end

-- Configure the accepted tokens ({ [token] = project_id }); replaces the current set.
function Emulator:set_tokens(tokens)
  control(self, "PUT", "tokens", { tokens = tokens, default_project_id = self.project_id }, 200)
end

-- Seed a bandwidth directly: { name, size, share_type = "WHOLE"|"PER", publicip_ids = {...},
-- project_id, id, charge_mode, status, ... }. Returns its id.
function Emulator:create_bandwidth(fields)
  local req = {}
  for k, v in pairs(fields or {}) do
    req[k] = v
  end
  if req.publicip_ids and #req.publicip_ids == 0 then
    req.publicip_ids = nil -- cjson would send {} for an empty list
  end
  local answer = control(self, "POST", "bandwidths", req, 201)
  return answer.id
end

-- The stored bandwidth (as the API shows it), or nil.
function Emulator:get_bandwidth(id)
  local answer, status = control(self, "GET", "bandwidths/" .. id)
  if status == 404 then
    return nil
  end
  if status ~= 200 then
    error("eip emulator: GET bandwidths/" .. id .. ": HTTP " .. status, 2)
  end
  return answer.bandwidth
end

-- Every stored bandwidth, of every project, oldest first.
function Emulator:bandwidths()
  return control(self, "GET", "bandwidths", nil, 200).bandwidths
end

-- Queue a fault-injection rule (fields: see spec/support/emulator/inject.lua). Returns the
-- number of pending rules.
function Emulator:inject(rule)
  return control(self, "POST", "inject", rule, 200).pending
end

-- { requests = n, connections = n, bandwidths = n, pending_injections = n }
function Emulator:stats()
  return (control(self, "GET", "stats", nil, 200))
end

-- The last 200 API requests, oldest first: { method, uri, path, headers, body, connection, ... }
function Emulator:requests()
  return control(self, "GET", "requests", nil, 200).requests
end

-- Launching ----------------------------------------------------------------------------------

local live = {} -- instances started by this process and not yet stopped

local function free_port()
  local server = assert(socket.bind("127.0.0.1", 0))
  local _, port = server:getsockname()
  server:close()
  return tonumber(port)
end

local function render_config(prefix, port, owner_pid)
  local template = assert(read_file(SUPPORT_DIR .. "/emulator/nginx.conf.in"))
  -- Root's workers would otherwise run as "nobody", which cannot enter a private temp dir.
  local user = capture("id -u") == "0" and "user root root;" or ""
  local fields = {
    PREFIX = prefix, PORT = tostring(port), LUA_DIR = SUPPORT_DIR,
    MODULES_DIR = modules_dir(), USER_DIRECTIVE = user, OWNER_PID = tostring(owner_pid),
  }
  local conf = template:gsub("@([%u_]+)@", function(name)
    return assert(fields[name], "unknown template field " .. name)
  end)
  local path = prefix .. "/nginx.conf"
  write_file(path, conf)
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

local function startup_log(prefix)
  return (tail(prefix .. "/error.log", 15) .. "\n" .. tail(prefix .. "/stderr.log", 5))
    :gsub("^%s+", ""):gsub("%s+$", "")
end

local function answers(port)
  local resp = M.http{ port = port, path = "/__emulator/health", timeout = 0.5 }
  return resp ~= nil and resp.status == 200
end

-- Start nginx in the foreground (daemon off) as a child of this process, through io.popen:
-- closing the pipe handle reaps it, so a stopped emulator never lingers as a zombie, which a
-- daemonized master (re-parented to init) can. Returns the handle and the master's pid.
local function spawn(prefix, conf)
  local cmd = string.format(
    "echo $$; exec %s -p %s -c %s -e %s -g 'daemon off;' </dev/null >/dev/null 2>>%s",
    shell_quote(find_nginx()), shell_quote(prefix), shell_quote(conf),
    shell_quote(prefix .. "/error.log"), shell_quote(prefix .. "/stderr.log"))
  local handle = assert(io.popen(cmd, "r"))
  local pid = tonumber(handle:read("l"))
  return handle, pid
end

-- Wait until the instance answers; false if nginx exited or the deadline passed.
local function wait_ready(pid, port)
  local deadline = socket.gettime() + START_TIMEOUT
  return wait_until(deadline, function()
    if not alive(pid) then
      return true -- stop waiting; the caller sees it is not alive
    end
    return answers(port)
  end) and alive(pid)
end

local function try_start(prefix, port)
  local conf = render_config(prefix, port, MY_PID)
  local handle, pid = spawn(prefix, conf)
  if pid and wait_ready(pid, port) then
    return handle, pid
  end
  if pid then
    terminate(pid)
  end
  handle:close()
  return nil, startup_log(prefix)
end

local function remove_tree(path)
  -- Only ever our own mktemp directories.
  if path and path:match("^/[%w/._-]*/eip%-emulator%.[%w]+$") then
    os.execute("rm -rf " .. shell_quote(path))
  end
end

local function make_prefix()
  local base = os.getenv("TMPDIR")
  if not base or base == "" then
    base = "/tmp"
  end
  local dir = capture("mktemp -d " .. shell_quote(base .. "/eip-emulator.XXXXXXXX"))
  assert(dir ~= "", "eip emulator: mktemp -d failed")
  assert(os.execute("mkdir -p " .. shell_quote(dir .. "/tmp")))
  return dir
end

local function launch(prefix, fixed_port)
  local last_log
  for _ = 1, fixed_port and 1 or PORT_ATTEMPTS do
    local port = fixed_port or free_port()
    local handle, pid_or_log = try_start(prefix, port)
    if handle then
      return handle, pid_or_log, port
    end
    last_log = pid_or_log
    if not last_log:find("Address already in use", 1, true) then
      break
    end
  end
  error("eip emulator: nginx did not start or did not answer within " .. START_TIMEOUT
    .. " s; end of its logs:\n"
    .. tostring(last_log), 0)
end

local START_OPTIONS = { tokens = true, port = true }

local function check_options(opts)
  for k in pairs(opts) do
    if not START_OPTIONS[k] then
      error("eip emulator: unknown start option '" .. tostring(k) .. "'", 3)
    end
  end
  if opts.tokens ~= nil and type(opts.tokens) ~= "table" then
    error("eip emulator: tokens must be a table { [token] = project_id }", 3)
  end
end

local function token_set(extra)
  local tokens = { [M.DEFAULT_TOKEN] = M.DEFAULT_PROJECT_ID, [M.OTHER_TOKEN] = M.OTHER_PROJECT_ID }
  for token, project in pairs(extra or {}) do
    tokens[token] = project
  end
  return tokens
end

-- Stop the instance: nginx is asked to quit, killed if it does not, reaped; the prefix goes.
function Emulator:stop()
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

Emulator.__close = Emulator.stop

-- Start an emulator. opts: tokens = { [token] = project_id } (added to the two defaults),
-- port = N (default: a free one).
function M.start(opts)
  opts = opts or {}
  check_options(opts)
  local prefix = make_prefix()
  local ok, handle, pid, port = pcall(launch, prefix, opts.port)
  if not ok then
    remove_tree(prefix)
    error(handle, 2)
  end
  local self = setmetatable({
    url = "http://127.0.0.1:" .. port, port = port, pid = pid, prefix = prefix,
    token = M.DEFAULT_TOKEN, project_id = M.DEFAULT_PROJECT_ID,
    other_token = M.OTHER_TOKEN, other_project_id = M.OTHER_PROJECT_ID,
    tokens = token_set(opts.tokens), _handle = handle,
  }, Emulator)
  -- Finalizers run in reverse order of creation when Lua closes its state (normal exit, or the
  -- error exit of lua5.4 and busted), so this guard, made after the pipe handle, stops nginx
  -- before the handle's own finalizer would wait for it to exit on its own.
  self._guard = setmetatable({}, { __gc = function() self:stop() end })
  live[self] = true
  local err
  ok, err = pcall(self.set_tokens, self, self.tokens)
  if not ok then
    self:stop()
    error(err, 2)
  end
  return self
end

-- Stop every instance this process started.
function M.stop_all()
  local all = {}
  for emu in pairs(live) do
    all[#all + 1] = emu
  end
  for _, emu in ipairs(all) do
    emu:stop()
  end
end

-- Detached instances (command line, for make demo) -------------------------------------------

local function env_text(port)
  return table.concat({
    "EIP_ENDPOINT=http://127.0.0.1:" .. port,
    "EIP_TOKEN=" .. M.DEFAULT_TOKEN,
    "EIP_PROJECT_ID=" .. M.DEFAULT_PROJECT_ID,
  }, "\n") .. "\n"
end

-- Start a daemonized nginx in dir (its prefix), which outlives this process. Returns the env text.
function M.start_detached(dir, fixed_port)
  assert(os.execute("mkdir -p " .. shell_quote(dir .. "/tmp")))
  dir = capture("cd " .. shell_quote(dir) .. " && pwd")
  if file_exists(dir .. "/nginx.pid") and alive(tonumber(read_file(dir .. "/nginx.pid")) or 0) then
    error("eip emulator: already running in " .. dir, 0)
  end
  local last_log
  for _ = 1, fixed_port and 1 or PORT_ATTEMPTS do
    local port = fixed_port or free_port()
    local conf = render_config(dir, port, 0)
    os.execute(string.format("%s -p %s -c %s -e %s </dev/null >/dev/null 2>>%s",
      shell_quote(find_nginx()), shell_quote(dir), shell_quote(conf),
      shell_quote(dir .. "/error.log"), shell_quote(dir .. "/stderr.log")))
    if wait_until(socket.gettime() + START_TIMEOUT, function() return answers(port) end) then
      local emu = setmetatable({ port = port, project_id = M.DEFAULT_PROJECT_ID }, Emulator)
      emu:set_tokens(token_set())
      local text = env_text(port)
      write_file(dir .. "/emulator.env", text)
      return text
    end
    last_log = startup_log(dir)
    if not last_log:find("Address already in use", 1, true) then
      break
    end
  end
  error("eip emulator: nginx did not start; error.log:\n" .. tostring(last_log), 0)
end

function M.stop_detached(dir)
  local pid = tonumber(read_file(dir .. "/nginx.pid") or "")
  if pid then
    terminate(pid)
  end
  for _, name in ipairs({ "emulator.env", "nginx.conf", "nginx.pid" }) do
    os.remove(dir .. "/" .. name)
  end
  os.execute("rm -rf " .. shell_quote(dir .. "/tmp"))
  return pid ~= nil
end

local function cli(args)
  local command, dir, port = args[1], nil, nil
  local i = 2
  while i <= #args do
    if args[i] == "--dir" then
      dir = args[i + 1]
    elseif args[i] == "--port" then
      port = tonumber(args[i + 1])
    else
      io.stderr:write("unknown argument ", args[i], "\n")
      return 2
    end
    i = i + 2
  end
  if not dir or (command ~= "start" and command ~= "stop") then
    io.stderr:write("usage: lua5.4 spec/support/emulator.lua start|stop --dir DIR [--port N]\n")
    return 2
  end
  if command == "start" then
    io.write(M.start_detached(dir, port))
  else
    M.stop_detached(dir)
  end
  return 0
end

-- Run as a script (not required as a module): the command line.
if not pcall(debug.getlocal, 4, 1) then
  local ok, result = pcall(cli, arg or {})
  if not ok then
    io.stderr:write(tostring(result), "\n")
    os.exit(1)
  end
  os.exit(result)
end

return M
