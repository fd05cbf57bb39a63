-- A command in a real terminal: a private tmux server (its own socket, nothing shared with a
-- user's tmux), so specs can type into it (keys, Ctrl-C) and read the screen as a person sees it.
--
--   local terminal = require "spec.support.terminal"
--   local t = terminal.start("lua5.4 bin/eip ...", { env = { NAME = "value" }, cwd = "/path",
--                            width = 80, height = 24 })
--   t:wait_for("Type yes")          -- polls the screen; raises with the screen on timeout
--   t:send("yes", "Enter")          -- tmux key names: "C-c", "Enter", ...
--   local status = t:wait_exit(10)  -- the command's exit status
--   t:screen()                      -- the visible text (a line wrapped by the terminal is one line)
--   t:ended()                       -- has the command ended?
--   t:resize(40, 24)                -- the terminal becomes 40x24 (the command gets SIGWINCH)
--   t:stop()                        -- always (also after a failure): ends the tmux server
local socket = require "socket"
local nginx = require "spec.support.nginx"

local M = {}

local q = nginx.shell_quote

local Terminal = {}
Terminal.__index = Terminal

local function tmux(self, args)
  return nginx.capture("tmux -S " .. q(self.socket) .. " " .. args .. " 2>&1")
end

--- Starts cmd (a shell command line) in a terminal of opts.width x opts.height (default 120x40).
-- opts.env: variables (the rest of the environment is PATH and HOME only); opts.cwd: the directory.
function M.start(cmd, opts)
  opts = opts or {}
  local dir = nginx.capture("mktemp -d")
  local self = setmetatable({ dir = dir, socket = dir .. "/tmux.sock", status_file = dir .. "/status" },
    Terminal)
  local vars = { "PATH=" .. q(os.getenv("PATH")), "HOME=" .. q(os.getenv("HOME") or "/tmp"), "TERM=xterm" }
  for k, v in pairs(opts.env or {}) do vars[#vars + 1] = k .. "=" .. q(v) end
  -- The exit status goes to a file; the pane then stays (sleep) so its last screen can be read.
  -- Ctrl-C reaches the whole foreground process group: the shells around the command ignore it
  -- with a trap (a handler, so the command itself starts with the default disposition).
  local inner = string.format("trap true INT; cd %s && env -i %s sh -c %s; echo $? > %s; sleep 60",
    q(opts.cwd or "."), table.concat(vars, " "), q("trap true INT; " .. cmd), q(self.status_file))
  tmux(self, string.format("new-session -d -x %d -y %d %s", opts.width or 120, opts.height or 40, q(inner)))
  return self
end

--- The visible screen, lines joined with "\n"; a line the terminal wrapped is one line (-J).
function Terminal:screen()
  return tmux(self, "capture-pane -p -J")
end

--- Has the command ended (its exit status is known)?
function Terminal:ended()
  local text = nginx.read_file(self.status_file)
  return text ~= nil and text:find("%d") ~= nil
end

--- Waits until the screen shows `text` (plain); raises with the screen after `timeout` s.
function Terminal:wait_for(text, timeout)
  local deadline = socket.gettime() + (timeout or 10)
  while socket.gettime() < deadline do
    local screen = self:screen()
    if screen:find(text, 1, true) then return screen end
    socket.sleep(0.05)
  end
  error("terminal: no " .. string.format("%q", text) .. " on the screen:\n" .. self:screen(), 2)
end

--- Types keys (tmux names: "yes", "Enter", "C-c").
function Terminal:send(...)
  local keys = {}
  for i = 1, select("#", ...) do keys[i] = q(select(i, ...)) end
  tmux(self, "send-keys " .. table.concat(keys, " "))
end

--- Resizes the terminal to `width` x `height`, as a person resizing the window does.
function Terminal:resize(width, height)
  tmux(self, string.format("resize-window -x %d -y %d", width, height))
end

--- Waits for the command to end and returns its exit status; raises after `timeout` s. tmux
-- reads the pane's output on its own time: the status is returned once the screen has also
-- settled (the same over 0.1 s, for at most 2 s), so a screen read next shows the last lines.
function Terminal:wait_exit(timeout)
  local deadline = socket.gettime() + (timeout or 10)
  while socket.gettime() < deadline do
    local text = nginx.read_file(self.status_file)
    if text and text:find("%d") then
      local settle, last = socket.gettime() + 2, self:screen()
      repeat
        socket.sleep(0.1)
        local now = self:screen()
        local same = now == last
        last = now
      until same or socket.gettime() > settle
      return tonumber(text:match("%d+"))
    end
    socket.sleep(0.05)
  end
  error("terminal: the command did not end; screen:\n" .. self:screen(), 2)
end

--- Ends the tmux server (and the command, if it still runs) and removes its files.
function Terminal:stop()
  tmux(self, "kill-server")
  os.execute("rm -rf " .. q(self.dir))
end

return M
