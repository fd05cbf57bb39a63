-- A forward HTTP proxy for the specs (plain Lua 5.4 + LuaSocket), in a process of its own on
-- 127.0.0.1: plain forwarding of absolute-form requests ("GET http://host:port/path HTTP/1.1")
-- and CONNECT tunnels, optional Basic authentication, and a log of what it saw.
--
--   local proxy = require "spec.support.proxy"
--   local p = proxy.start{
--     auth  = "user:pass",                        -- optional: else 407 (Proxy-Authenticate: Basic)
--     names = { ["vpc.proxied.test"] = "127.0.0.1" }, -- how the PROXY resolves target names
--     deny  = { "blocked.test" },                 -- names answered 403 (CONNECT or plain)
--     misbehave = { ["drop.test"] = "drop" },     -- names answered by closing at once ("drop"),
--                                                 -- with garbage ("garbage"), or with a head cut
--                                                 -- short ("cut"); or "slow": a CONNECT answered
--                                                 -- 200 in 10 lines of 150 bytes, one each 0.25 s
--                                                 -- (600 bytes/s), then the tunnel; or
--                                                 -- "endless": 407 with a body that never ends
--                                                 -- (64 KiB every 10 ms until the client
--                                                 -- leaves, 20 s at most); or "silent": no
--                                                 -- answer, closed when the client leaves
--                                                 -- ("silent_once": the first request for
--                                                 -- the name only, later ones go through);
--                                                 -- or "cut407": a 407 whose head is cut
--                                                 -- short; or "short407": a 407 whose body
--                                                 -- is (12 of 100 bytes, then closed); or
--                                                 -- "hang407": a 407's first lines, then
--                                                 -- nothing until the client leaves
--   }
--   p.port, p.url                  "http://127.0.0.1:<port>"
--   p:seen()                       the request heads it received, oldest first: { method, target,
--                                  version, line, headers = { lower-case name = value } }
--   p:raw()                        every byte clients sent it, tunnelled bytes included
--   p:reset()                      forgets both
--   p:stop()
--
-- Target names: `names`, IPv4 literals and "localhost"; any other name is answered 502 (so a
-- request that reaches the proxy for a name only `names` knows proves it went through the
-- proxy). The proxy answers its own 407 with an X-Request-Id and a body shaped like an API
-- error, so that a client mistaking it for the API's answer would show them.
--
-- Plain requests are forwarded one per connection (the upstream gets "Connection: close", the
-- client gets its answer with "Connection: close", and the connection is then closed); tunnels
-- relay bytes both ways until either side closes. The process exits when stopped, or when the
-- process that started it is gone.
local M = {}

local SOURCE = debug.getinfo(1, "S").source

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

--- Base64 of s (for Proxy-Authorization: Basic).
function M.base64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0) -- arithmetic, not bit operators: every Lua
    for k = 0, 3 do
      local sextet = math.floor(n / 2 ^ (18 - 6 * k)) % 64
      out[#out + 1] = B64:sub(sextet + 1, sextet + 1)
    end
    if not c then out[#out] = "=" end
    if not b then out[#out - 1] = "=" end
  end
  return table.concat(out)
end

-- The proxy itself (runs in the child process) -------------------------------------------------

local function serve(dir, owner_pid)
  local socket = require "socket"
  local cjson = require "cjson"
  local opts = cjson.decode(assert(io.open(dir .. "/options.json")):read("a"))
  local names, deny, misbehave = opts.names or {}, {}, opts.misbehave or {}
  local silenced = {} -- the "silent_once" names whose first request came
  for _, n in ipairs(opts.deny or {}) do deny[n:lower()] = true end
  local expected_auth = opts.auth and ("Basic " .. M.base64(opts.auth)) or nil

  local server = assert(socket.bind("127.0.0.1", 0))
  server:settimeout(0)
  local _, listening = server:getsockname()
  local log = assert(io.open(dir .. "/seen.jsonl", "a"))
  local raw = assert(io.open(dir .. "/raw", "ab"))
  io.stdout:write(listening, "\n")
  io.stdout:flush()

  -- A coroutine per direction of each connection; each waits on one socket at a time.
  local waiting_r, waiting_w, runnable = {}, {}, {}
  local function wait(set, sock)
    set[sock] = coroutine.running()
    return coroutine.yield()
  end
  local function spawn(fn, ...)
    runnable[#runnable + 1] = { coroutine.create(fn), table.pack(...) }
  end
  local sleeping = {} -- coroutine = when it wakes
  local function sleep(seconds)
    sleeping[coroutine.running()] = socket.gettime() + seconds
    return coroutine.yield()
  end
  local closed = {}
  local function close(sock)
    if closed[sock] then return end
    closed[sock] = true
    for _, set in ipairs{ waiting_r, waiting_w } do
      local co = set[sock]
      if co then
        set[sock] = nil
        runnable[#runnable + 1] = { co, table.pack("closed") }
      end
    end
    sock:close()
  end

  -- Some bytes from sock, or nil when it closed. `record`: the client side (kept in raw).
  local function recv(sock, record)
    while true do
      if closed[sock] then return nil end
      local data, err, partial = sock:receive(65536)
      data = data or (partial ~= "" and partial) or nil
      if data then
        if record then
          raw:write(data)
          raw:flush()
        end
        return data
      end
      if err ~= "timeout" or wait(waiting_r, sock) == "closed" then return nil end
    end
  end

  local function send(sock, data)
    local i = 1
    while i <= #data do
      if closed[sock] then return nil end
      local last, err, partial = sock:send(data, i)
      if last then
        i = last + 1
      elseif err == "timeout" then
        i = partial + 1
        if wait(waiting_w, sock) == "closed" then return nil end
      else
        return nil
      end
    end
    return true
  end

  -- The head of a request or an answer: its text, and what followed it in the same reads.
  -- `record`: a client's (kept in raw).
  local function read_head(sock, record)
    local buf = ""
    while true do
      local e = buf:find("\r\n\r\n", 1, true)
      if e then return buf:sub(1, e + 3), buf:sub(e + 4) end
      if #buf > 65536 then return nil end
      local data = recv(sock, record)
      if not data then return nil end
      buf = buf .. data
    end
  end

  local function parse(head)
    local line = head:match("^([^\r\n]*)")
    local method, target, version = line:match("^(%S+) (%S+) HTTP/(%d%.%d)$")
    local headers, list = {}, {}
    for name, value in head:gmatch("\r\n([^:\r\n]+):[ \t]*([^\r\n]*)") do
      headers[name:lower()] = value
      list[#list + 1] = name
    end
    return { method = method, target = target, version = version, line = line, headers = headers,
      header_names = list }
  end

  local function answer(sock, status, reason, extra, body)
    body = body or ""
    send(sock, string.format("HTTP/1.1 %d %s\r\n%sContent-Length: %d\r\nConnection: close\r\n\r\n%s",
      status, reason, extra or "", #body, body))
    close(sock)
  end

  local function resolve(host)
    host = host:lower()
    if names[host] then return names[host] end
    if host:match("^%d+%.%d+%.%d+%.%d+$") then return host end
    if host == "localhost" then return "127.0.0.1" end
    return nil
  end

  local function relay(from, to, record)
    while true do
      local data = recv(from, record)
      if not data or not send(to, data) then break end
    end
    close(from)
    close(to)
  end

  local function upstream(host, port)
    local ip = resolve(host)
    if not ip then return nil, "unknown host" end
    local up = socket.tcp()
    up:settimeout(2)
    local ok, err = up:connect(ip, port)
    if not ok then
      up:close()
      return nil, err
    end
    up:settimeout(0)
    return up
  end

  local function handle(client)
    local head, rest = read_head(client, true)
    if not head then return close(client) end
    local req = parse(head)
    log:write(cjson.encode(req), "\n")
    log:flush()
    local host, port, path
    if req.method == "CONNECT" then
      host, port = req.target:match("^%[?([^%]]+)%]?:(%d+)$")
    elseif req.target then
      local authority
      authority, path = req.target:match("^http://([^/]+)(.*)$")
      if authority then
        host, port = authority:match("^%[?([^%]]+)%]?:(%d+)$")
        host = host or authority
        port = port or "80"
        if path == "" then path = "/" end
      end
    end
    if not host then return answer(client, 400, "Bad Request") end
    local how = misbehave[host:lower()]
    if how == "slow" and req.method == "CONNECT" then
      host = names[host:lower()] or host
      send(client, "HTTP/1.1 200 Connection established\r\n")
      for _ = 1, 10 do
        sleep(0.25)
        if not send(client, "X-Pad: " .. string.rep("p", 141) .. "\r\n") then return close(client) end
      end
      local up = upstream(host, tonumber(port))
      if not up or not send(client, "\r\n") then return close(client) end
      if rest ~= "" then send(up, rest) end
      spawn(relay, up, client, false)
      return relay(client, up, true)
    end
    if how == "endless" then
      send(client, "HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 99999999999\r\n\r\n")
      local block = string.rep("x", 65536)
      for _ = 1, 2000 do -- (20 s at most: a client that never leaves cannot keep it for ever)
        if not send(client, block) then break end
        sleep(0.01)
      end
      return close(client)
    end
    if how == "silent_once" then
      -- (the first request for the name is "silent"; the later ones go through)
      if silenced[host:lower()] then how = nil else silenced[host:lower()] = true; how = "silent" end
    end
    if how == "silent" or how == "hang407" then
      if how == "hang407" then
        send(client, "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n")
      end
      recv(client) -- until the client leaves (or sends more: then closed all the same)
      return close(client)
    end
    if how then
      if how == "garbage" then send(client, "SSH-2.0-OpenSSH_9.2p1\r\n\r\n") end
      if how == "cut" then send(client, "HTTP/1.1 200 Connection established\r\nX-Cut: yes\r\n") end
      if how == "cut407" then
        send(client, "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n")
      end
      if how == "short407" then
        send(client, "HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 100\r\n"
          .. "X-Request-Id: from-the-proxy\r\n\r\n<html>denied")
      end
      return close(client)
    end
    if expected_auth and req.headers["proxy-authorization"] ~= expected_auth then
      return answer(client, 407, "Proxy Authentication Required",
        "Proxy-Authenticate: Basic realm=\"eip-test\"\r\nX-Request-Id: from-the-proxy\r\n"
        .. "Content-Type: application/json\r\n",
        '{"code":"PROXY.0407","message":"the test proxy wants credentials"}')
    end
    if deny[host:lower()] then return answer(client, 403, "Forbidden", nil, "denied by the test proxy") end
    local up, err = upstream(host, tonumber(port))
    if not up then return answer(client, 502, "Bad Gateway", nil, "cannot reach " .. host .. ": " .. err) end
    if req.method == "CONNECT" then
      if not send(client, "HTTP/1.1 200 Connection established\r\n\r\n") then return close(up) end
      if rest ~= "" then send(up, rest) end
    else
      local out = { req.method .. " " .. path .. " HTTP/1.1" }
      for name, value in head:gmatch("\r\n([^:\r\n]+):[ \t]*([^\r\n]*)") do
        local lower = name:lower()
        if lower ~= "proxy-authorization" and lower ~= "proxy-connection" and lower ~= "connection" then
          out[#out + 1] = name .. ": " .. value
        end
      end
      out[#out + 1] = "Connection: close"
      if not send(up, table.concat(out, "\r\n") .. "\r\n\r\n" .. rest) then return close(client) end
    end
    if req.method == "CONNECT" then
      spawn(relay, up, client, false)
      return relay(client, up, true)
    end
    -- Plain: the answer goes back with "Connection: close" (the client must not send another
    -- request on this connection: it would reach the upstream unseen), then the connection ends.
    spawn(relay, client, up, true)
    local answer_head, after = read_head(up, false)
    if not answer_head then return close(client) end
    answer_head = answer_head:gsub("\r\n[Cc]onnection:[^\r\n]*", ""):gsub("\r\n\r\n$", "\r\nConnection: close\r\n\r\n")
    if send(client, answer_head .. after) then relay(up, client, false) end
    close(up)
    close(client)
  end

  local function run(co, args)
    local ok, err = coroutine.resume(co, table.unpack(args, 1, args.n))
    if not ok then io.stderr:write("proxy: ", tostring(err), "\n") end
  end

  local last_check = socket.gettime()
  while true do
    while #runnable > 0 do
      local batch = runnable
      runnable = {}
      for _, r in ipairs(batch) do run(r[1], r[2]) end
    end
    local reads, writes = { server }, {}
    for s in pairs(waiting_r) do reads[#reads + 1] = s end
    for s in pairs(waiting_w) do writes[#writes + 1] = s end
    local now, wait_for = socket.gettime(), 0.5
    for co, at in pairs(sleeping) do
      if at <= now then
        sleeping[co] = nil
        runnable[#runnable + 1] = { co, table.pack() }
      elseif at - now < wait_for then
        wait_for = at - now
      end
    end
    if #runnable > 0 then wait_for = 0 end
    local r, w = socket.select(reads, writes, wait_for)
    for _, s in ipairs(r) do
      if s == server then
        local c = server:accept()
        if c then
          c:settimeout(0)
          spawn(handle, c)
        end
      elseif waiting_r[s] then
        local co = waiting_r[s]
        waiting_r[s] = nil
        runnable[#runnable + 1] = { co, table.pack() }
      end
    end
    for _, s in ipairs(w) do
      local co = waiting_w[s]
      if co then
        waiting_w[s] = nil
        runnable[#runnable + 1] = { co, table.pack() }
      end
    end
    if socket.gettime() - last_check > 1 then
      last_check = socket.gettime()
      local f = io.open("/proc/" .. owner_pid .. "/stat", "r")
      if not f then return end -- the spec process is gone
      f:close()
    end
  end
end

-- The handle in the spec process (the child process, run as a script, needs none of this) ---------

local Proxy = {}
Proxy.__index = Proxy

local function nginx() return require "spec.support.nginx" end

--- The request heads the proxy received, oldest first.
function Proxy:seen()
  local cjson = require "cjson"
  local out = {}
  for line in (nginx().read_file(self.dir .. "/seen.jsonl") or ""):gmatch("[^\n]+") do
    out[#out + 1] = cjson.decode(line)
  end
  return out
end

--- Every byte clients sent to the proxy (request heads, bodies and tunnelled bytes).
function Proxy:raw()
  return nginx().read_file(self.dir .. "/raw") or ""
end

--- Forgets what the proxy saw (its files are opened for appending, so truncating them is enough).
function Proxy:reset()
  nginx().write_file(self.dir .. "/seen.jsonl", "")
  nginx().write_file(self.dir .. "/raw", "")
end

--- Stops the proxy and removes its files.
function Proxy:stop()
  if self.stopped then return end
  self.stopped = true
  self.process:stop()
  if self.dir:match("^/[%w/._-]*/eip%-proxy%.%w+$") then os.execute("rm -rf " .. nginx().shell_quote(self.dir)) end
end

--- Starts a proxy (options above). Returns it with `port`, `url`, `seen`, `raw`, `reset`, `stop`.
function M.start(opts)
  local cjson = require "cjson"
  local n = nginx()
  opts = opts or {}
  local base = os.getenv("TMPDIR")
  if not base or base == "" then base = "/tmp" end
  local dir = n.capture("mktemp -d " .. n.shell_quote(base .. "/eip-proxy.XXXXXXXX"))
  assert(dir:match("^/[%w/._-]*/eip%-proxy%.%w+$"), "mktemp -d failed")
  n.write_file(dir .. "/options.json", cjson.encode{ auth = opts.auth, names = opts.names or {},
    deny = opts.deny or {}, misbehave = opts.misbehave or {} })
  local ok, process = pcall(require("spec.support.child").start, SOURCE, { dir }, "proxy")
  if not ok then
    os.execute("rm -rf " .. n.shell_quote(dir))
    error(process, 2)
  end
  local self = setmetatable({ process = process, port = process.port, dir = dir,
    url = "http://127.0.0.1:" .. process.port }, Proxy)
  self.guard = n.on_collect(function() self:stop() end)
  return self
end

-- Run as a script (`lua5.4 proxy.lua serve OWNER_PID DIR`): the proxy itself.
if not pcall(debug.getlocal, 4, 1) and arg and arg[1] == "serve" then
  serve(arg[3], tonumber(arg[2]))
  os.exit(0)
end

return M
