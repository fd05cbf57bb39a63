-- Calls at the same time, as nginx's requests or a scheduler's coroutines make them: coroutines
-- resumed in turn, for the specs of what a client shares between its calls.
local M = {}

--- Can a coroutine yield through pcall here? LuaJIT (as inside nginx) and Lua 5.2 on; not 5.1.
-- @treturn boolean
function M.yields_through_pcall()
  local co = coroutine.create(function() return pcall(coroutine.yield, 1) end)
  local ok, v = coroutine.resume(co)
  return ok and v == 1 and coroutine.status(co) == "suspended"
end

--- Runs each function of `fns` in a coroutine of its own, resumed in turn (in order) until all
-- have ended. Returns, by index, what each one's pcall gave, as a table ({ true, ... } or
-- { false, err }).
-- @tparam {function,...} fns
-- @treturn {table,...}
function M.together(fns)
  local cos, out = {}, {}
  for i, fn in ipairs(fns) do cos[i] = coroutine.create(function() return { pcall(fn) } end) end
  local live = #cos
  while live > 0 do
    live = 0
    for i, co in ipairs(cos) do
      if coroutine.status(co) ~= "dead" then
        local _, res = assert(coroutine.resume(co))
        if coroutine.status(co) == "dead" then out[i] = res else live = live + 1 end
      end
    end
  end
  return out
end

return M
