-- The progress line of eip delete-bandwidth (lua/eip/cli/progress.lua) on a clock the spec
-- turns by hand: when it shows, how often it is redrawn, how it gets out of the way of result
-- lines, and how it fits the terminal. cli_terminal_spec shows it in a real terminal.
local progress = require "eip.cli.progress"

describe("progress line", function()
  local now, written, width

  local function new(total, enabled)
    now, written, width = 100, {}, 80
    return progress.new(total, { enabled = enabled ~= false, results_on_terminal = true,
      clock = function() return now end, write = function(s) written[#written + 1] = s end,
      columns = function() return width end })
  end

  it("stays off for the first second: a short run never sees it", function()
    local bar = new(5)
    bar:tick()
    now = now + progress.DELAY - 0.01
    bar:step("deleted")
    bar:above(function() end)
    bar:tick()
    bar:finish()
    assert.same({}, written)
  end)

  it("shows after a second, then is redrawn every INTERVAL, not more often", function()
    local bar = new(10)
    now = now + progress.DELAY
    bar:tick()
    assert.equal(1, #written)
    -- (with the terminal's wrap off while it is drawn: cut at the edge of a terminal narrowed since)
    assert.equal("\r\27[?7l[........................]  0/10  0%  0.0/s  0 failed  0:01\27[K\27[?7h", written[1])
    now = now + progress.INTERVAL / 2
    bar:tick()
    assert.equal(1, #written)
    now = now + progress.INTERVAL / 2
    bar:tick()
    assert.equal(2, #written)
  end)

  it("is erased before a result line and drawn again below it", function()
    local bar = new(4)
    now = now + 2
    bar:tick()
    local order = {}
    bar:step("failed")
    bar:above(function() order[#order + 1] = "result line" end)
    assert.equal("\r\27[K\27[?7h", written[2])
    assert.same({ "result line" }, order)
    assert.matches("^\r\27%[%?7l%[######%.+%]  1/4  25%%  0%.5/s  1 failed  0:02  ~0:06 left\27%[K\27%[%?7h$",
      written[3])
    bar:finish()
    assert.equal("\r\27[K\27[?7h", written[4])
    bar:tick()
    assert.equal(4, #written) -- finished: never again
  end)

  -- A draw cut short (a Ctrl-C makes the terminal driver drop the output not yet shown, or
  -- interrupts a write blocked on a slow terminal) left the terminal's wrap off: the result lines
  -- after it, the summary and the shell's were cut at its edge.
  it("turns the terminal's wrap on again when it erases the line, after a draw cut short too", function()
    local function wrap_on(text)
      local last_off, last_on = 0, 0
      for i in text:gmatch("()\27%[%?7l") do last_off = i end
      for i in text:gmatch("()\27%[%?7h") do last_on = i end
      return last_on > last_off
    end
    local bar = new(4)
    now = now + 2
    bar:tick()
    written[1] = written[1]:sub(1, 12)
    bar:step("deleted")
    bar:above(function() assert.is_true(wrap_on(table.concat(written)), "a result line with wrap off") end)
    written[#written] = written[#written]:sub(1, 12)
    bar:finish()
    assert.is_true(wrap_on(table.concat(written)), "wrap left off after finish")
  end)

  it("leaves result lines alone when they go elsewhere than the terminal", function()
    now, written = 100, {}
    local bar = progress.new(4, { enabled = true, results_on_terminal = false, clock = function() return now end,
      write = function(s) written[#written + 1] = s end, columns = function() return 80 end })
    now = now + 2
    bar:tick()
    bar:step("deleted")
    bar:above(function() end)
    assert.equal(1, #written) -- no erasing and redrawing around each result
  end)

  it("fits the terminal: the bar narrows, then what does not fit is left out", function()
    local bar = new(1000)
    bar.done, bar.failed = 500, 7
    local wide = bar:text(now + 65, 80)
    assert.equal("[############............]  500/1000  50%  7.7/s  7 failed  1:05  ~1:05 left", wide)
    local narrow = bar:text(now + 65, 50)
    assert.is_true(#narrow <= 49, narrow)
    assert.matches("^%[#+%.+%]  500/1000  50%%  7%.7/s", narrow)
    local tiny = bar:text(now + 65, 20)
    assert.is_true(#tiny <= 19, tiny)
    assert.matches("^500/1000", tiny)
  end)

  -- Ids not sent (Ctrl-C, a stop after an authentication failure) were counted as failed: the
  -- line said "3 failed" where the summary says "1 failed, 2 not sent".
  it("counts the ids not sent apart from the failed, as the summary does", function()
    local bar = new(10)
    now = now + 2
    bar:step("deleted")
    bar:step("failed")
    bar:step("missing")
    assert.matches("  1 failed  0:02  ", bar:text(now, 80))
    bar:step("not_sent")
    bar:step("not_sent")
    assert.equal("[############............]  5/10  50%  2.5/s  1 failed  2 not sent  0:02  ~0:02 left",
      bar:text(now, 100))
  end)

  it("is drawn only where the terminal's type is known and not dumb", function()
    assert.is_true(progress.can_draw("xterm-256color"))
    assert.is_false(progress.can_draw("dumb"))
    assert.is_false(progress.can_draw(""))
  end)

  it("draws nothing when disabled", function()
    local bar = new(10, false)
    now = now + 5
    bar:tick()
    bar:step("failed")
    bar:above(function() end)
    bar:finish()
    assert.same({}, written)
  end)
end)
