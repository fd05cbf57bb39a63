--- The progress bar of a batch: drawn on stderr when it is a terminal, redrawn in place with
-- `\r` at most ten times a second:
--
--   [##############..........] 35/60  193.8/s  0 failed
-- @module eip.cli.progress
local core = require "eip.core"

local M = {}

local REDRAW_INTERVAL = 0.1 -- seconds: at most ~10 redraws a second, whatever the call rate
local BAR_WIDTH = 24

local stderr = io.stderr

local Progress = {}
Progress.__index = Progress

--- Is stderr a terminal? `test -t 2` in a child shell inherits our stderr: no C needed.
-- @treturn boolean
function M.stderr_is_terminal()
  local ok = os.execute("test -t 2")
  return ok == true or ok == 0 -- Lua 5.2+ : Lua 5.1 / LuaJIT
end

--- A bar for `total` steps; a disabled one draws nothing.
-- @tparam integer total the number of steps
-- @tparam boolean enabled whether to draw
-- @return the bar: `bar:draw(force)`, `bar:step(failed)`, `bar:hide()`, `bar:finish()`
function M.new(total, enabled)
  return setmetatable({ total = total, done = 0, failed = 0, enabled = enabled,
    started = core.monotime(), drawn_at = nil, visible = false }, Progress)
end

-- Draws the bar, unless it was drawn less than REDRAW_INTERVAL ago (force: draw anyway).
function Progress:draw(force)
  if not self.enabled then return end
  local now = core.monotime()
  if not force and self.drawn_at and now - self.drawn_at < REDRAW_INTERVAL then return end
  self.drawn_at = now
  local fill = self.total > 0 and math.floor(BAR_WIDTH * self.done / self.total) or BAR_WIDTH
  local rate = self.done / math.max(now - self.started, 0.001)
  stderr:write(string.format("\r[%s%s] %d/%d  %.1f/s  %d failed\27[K", string.rep("#", fill),
    string.rep(".", BAR_WIDTH - fill), self.done, self.total, rate, self.failed))
  stderr:flush()
  self.visible = true
end

-- One step done (failed: it failed); the last one is always drawn.
function Progress:step(failed)
  self.done = self.done + 1
  if failed then self.failed = self.failed + 1 end
  self:draw(self.done == self.total)
end

-- Erases the bar before a line goes to the same terminal.
function Progress:hide()
  if self.visible then
    stderr:write("\r\27[K")
    self.visible = false
  end
end

-- Draws the final state and ends its line.
function Progress:finish()
  if not self.enabled then return end
  self:draw(true)
  stderr:write("\n")
  self.visible = false
end

return M
