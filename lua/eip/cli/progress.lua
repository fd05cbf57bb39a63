--- The progress line of a batch: one line at the bottom of the terminal (stderr), while the
-- result lines scroll above it.
--
--   [##########..............]  35/60  58%  12.3/s  2 failed  0:03  ~0:02 left
--
-- Ids not sent (after Ctrl-C, an authentication failure, ...) are not counted as failed: as the
-- summary does, the line counts them apart (`2 failed  5 not sent`) once there are any.
--
-- It shows only once the batch has run for `DELAY` seconds (short runs never see it), is
-- redrawn every `INTERVAL` seconds (`tick`, which the batch's cancel function calls at least
-- that often) and after each result line (`above`), and never gets wider than the terminal.
-- @module eip.cli.progress
local core = require "eip.core"

local M = {}

--- Seconds before the line first shows: a batch that ends sooner never draws it.
M.DELAY = 1.0
--- Seconds between two redraws: the steady rate at which the line moves (4 a second).
M.INTERVAL = 0.25
local WIDTH_CHECK = 1.0 -- seconds between two looks at the terminal's width
local BAR_WIDTH = 24
-- Erases the line, with the terminal's wrap on again: a draw cut short leaves it off (a Ctrl-C
-- makes the terminal driver drop the output not yet shown; a caught one can interrupt a write
-- blocked on a slow terminal), and the result lines, the summary and the shell's would be cut.
local ERASE = "\r\27[K\27[?7h"

local stderr = io.stderr

local function shell_ok(cmd)
  local ok = os.execute(cmd)
  return ok == true or ok == 0 -- Lua 5.2+ : Lua 5.1 / LuaJIT
end

--- Is file descriptor `fd` (1 or 2) a terminal? `test -t` in a child shell inherits ours.
-- @tparam integer fd 1 (stdout) or 2 (stderr)
-- @treturn boolean
function M.is_terminal(fd)
  return shell_ok("test -t " .. (fd == 1 and 1 or 2))
end

--- Is file descriptor `fd` (1 or 2) a pipe (`| tee log`, `| grep`)? Its reader writes what it
-- reads when it reads it: to the terminal, it may be in the middle of the progress line.
-- @tparam integer fd 1 (stdout) or 2 (stderr)
-- @treturn boolean
function M.is_pipe(fd)
  return shell_ok("test -p /dev/fd/" .. (fd == 1 and 1 or 2))
end

--- Is stderr a terminal?
-- @treturn boolean
function M.stderr_is_terminal()
  return M.is_terminal(2)
end

--- Does the terminal interpret the escape sequences the line is drawn with? Not a dumb one
-- (`TERM=dumb`: Emacs' shell and compilation buffers, some CI consoles), nor one whose type is
-- not said (`TERM` unset or empty): there the sequences would show as text.
-- @tparam[opt] string term the terminal's type (default: the `TERM` variable)
-- @treturn boolean
function M.can_draw(term)
  if term == nil then term = os.getenv("TERM") end
  return term ~= nil and term ~= "" and term ~= "dumb"
end

--- The width of the terminal on stderr, in columns (80 when it cannot be told: no answer, or 0
-- columns, as a terminal whose size was never set says). A narrow one is taken as it is: a line
-- drawn wider than the terminal would wrap, and each redraw leave a row of it behind.
-- @treturn integer
function M.columns()
  local p = io.popen("stty size <&2 2>/dev/null")
  local out = p and p:read("*a") or ""
  if p then p:close() end
  local cols = tonumber(out:match("^%d+ (%d+)"))
  if not cols or cols < 1 then return 80 end
  return cols
end

-- "1:05", "12:00", "1:02:03"
local function clock(seconds)
  seconds = math.floor(seconds + 0.5)
  local h, m, s = math.floor(seconds / 3600), math.floor(seconds / 60) % 60, seconds % 60
  if h > 0 then return string.format("%d:%02d:%02d", h, m, s) end
  return string.format("%d:%02d", m, s)
end

local Progress = {}
Progress.__index = Progress

--- A progress line for `total` results.
-- @tparam integer total the number of results to come
-- @tparam table opts `enabled` (false: it never draws), `results_on_terminal` (the result
-- lines go to the same terminal: the line is erased before each and drawn again after it),
-- and for tests `clock` (seconds, default core.monotime), `write` (function(text), default
-- stderr), `columns` (function() -> width, default `M.columns`)
-- @return the line: `tick()`, `step(outcome)`, `above(fn)`, `finish()`, `text(now)`
function M.new(total, opts)
  opts = opts or {}
  local now = opts.clock or core.monotime
  local self = setmetatable({
    total = total, done = 0, failed = 0, not_sent = 0, enabled = opts.enabled, on_terminal = opts.results_on_terminal,
    now = now, started = now(), drawn_at = nil, shown = false, width = nil, width_at = nil,
    write = opts.write or function(s) stderr:write(s); stderr:flush() end,
    columns = opts.columns or M.columns,
  }, Progress)
  return self
end

--- The line as it reads at time `now` (without escapes), fitted to `width` columns.
-- @tparam number now seconds, on the clock of the line
-- @tparam integer width columns available
-- @treturn string
function Progress:text(now, width)
  local elapsed = math.max(now - self.started, 0)
  local rate = self.done / math.max(elapsed, 0.001)
  local parts = {
    string.format("%d/%d", self.done, self.total),
    string.format("%d%%", self.total > 0 and math.floor(100 * self.done / self.total) or 100),
    string.format("%.1f/s", rate),
    string.format("%d failed", self.failed),
  }
  if self.not_sent > 0 then parts[#parts + 1] = string.format("%d not sent", self.not_sent) end
  parts[#parts + 1] = clock(elapsed)
  if self.done > 0 and self.done < self.total then
    parts[#parts + 1] = "~" .. clock((self.total - self.done) / rate) .. " left"
  end
  local tail = table.concat(parts, "  ")
  while #tail + 2 > width - 1 and #parts > 1 do -- drop from the right until it fits
    parts[#parts] = nil
    tail = table.concat(parts, "  ")
  end
  local bar_width = math.min(BAR_WIDTH, width - 1 - #tail - 4)
  if bar_width < 5 then return tail:sub(1, width - 1) end
  local fill = self.total > 0 and math.floor(bar_width * self.done / self.total) or bar_width
  return "[" .. string.rep("#", fill) .. string.rep(".", bar_width - fill) .. "]  " .. tail
end

function Progress:draw(now)
  if not self.width_at or now - self.width_at >= WIDTH_CHECK then
    self.width, self.width_at = self.columns(), now
  end
  self.drawn_at, self.shown, self.cleared = now, true, false
  -- With the terminal's automatic wrap off while it is drawn (DECAWM): a terminal made narrower
  -- since its width was last looked at cuts the line at its edge rather than wrapping it, which
  -- would leave a row of it behind at each redraw.
  self.write("\r\27[?7l" .. self:text(now, self.width) .. "\27[K\27[?7h")
end

--- Redraws the line when it is due: after `DELAY`, then every `INTERVAL`.
function Progress:tick()
  if not self.enabled then return end
  local now = self.now()
  if now - self.started < M.DELAY then return end
  if self.drawn_at and now - self.drawn_at < M.INTERVAL then return end
  self:draw(now)
end

--- One more result.
-- @tparam string outcome what happened to the id: "deleted", "missing", "failed" or "not_sent"
function Progress:step(outcome)
  self.done = self.done + 1
  if outcome == "failed" then self.failed = self.failed + 1 end
  if outcome == "not_sent" then self.not_sent = self.not_sent + 1 end
end

--- Runs `fn`, which writes whole lines to the terminal, with the line out of their way: erased
-- before, drawn again after (at the bottom, below them).
-- @tparam function fn
function Progress:above(fn)
  if not (self.shown and self.on_terminal) then
    fn()
    if self.cleared then return self:draw(self.now()) end
    return self:tick()
  end
  self.write(ERASE)
  fn()
  self:draw(self.now())
end

--- Erases the line, if drawn, before `fn` of @{above} writes to the terminal where the line is
-- though the results go elsewhere (stdout failed: they go to stderr from then on); drawn again
-- when `fn` returns.
function Progress:clear()
  if self.shown and not self.cleared then
    self.write(ERASE)
    self.cleared = true
  end
end

--- Erases the line for good (the summary takes its place).
function Progress:finish()
  if self.shown then self.write(ERASE) end
  self.shown, self.enabled = false, false
end

return M
