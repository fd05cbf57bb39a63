-- Helper processes of the specs: a support module run as a script in a child process
-- (`lua5.4 FILE serve OWNER_PID ARG...`, whatever Lua the specs run under: the helpers are
-- test infrastructure written for 5.4) that prints the port it listens on, then serves
-- until it is stopped or the process that started it (OWNER_PID) is gone. The DNS responder
-- (spec/support/dns.lua) and the forward proxy (spec/support/proxy.lua) are such modules; this
-- is their parent's side.
--
--   local child = require "spec.support.child"
--   local c = child.start(debug.getinfo(1, "S").source, { "arg", ... }, "dns")
--   c.pid, c.port, c:stop()
local nginx = require "spec.support.nginx"

local M = {}

local Child = {}
Child.__index = Child

--- Stops the process (and reaps it). Stopping twice is harmless.
function Child:stop()
  if self.stopped then return end
  self.stopped = true
  os.execute(string.format("kill %d 2>/dev/null", self.pid))
  self.handle:close()
end

--- Starts the module whose source is `source` (its `debug.getinfo(1, "S").source`) as a child
-- with `args` (strings). Returns it with `pid`, `port` and `stop`; it is also stopped when it is
-- garbage. Raises, naming `label`, when it printed no port.
function M.start(source, args, label)
  local file = nginx.dir_of(source) .. "/" .. source:gsub("^@", ""):match("([^/]+)$")
  local quoted = {}
  for i, a in ipairs(args) do quoted[i] = nginx.shell_quote(a) end
  local cmd = string.format("echo $$; exec lua5.4 %s serve %d %s", nginx.shell_quote(file),
    nginx.MY_PID, table.concat(quoted, " "))
  local handle = assert(io.popen(cmd, "r"))
  local pid = tonumber(handle:read("*l"))
  local port = tonumber(handle:read("*l"))
  if not (pid and port) then
    handle:close()
    error(label .. ": the helper process did not start", 3)
  end
  local self = setmetatable({ pid = pid, port = port, handle = handle }, Child)
  self.guard = nginx.on_collect(function() self:stop() end)
  return self
end

return M
