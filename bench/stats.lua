--- What the benchmark scripts (bench/run.lua, bench/openresty.lua, bench/openresty_profile.lua)
-- share: the median of a list, a rate for a Markdown table, a positive integer from the
-- environment. Lua 5.4 (the benchmarks' interpreter).
local M = {}

--- The positive integer in environment variable `name` (a string `default` when unset).
function M.env_int(name, default)
  local v = math.tointeger(tonumber(os.getenv(name) or default))
  assert(v and v > 0, name .. " must be a positive integer")
  return v
end

function M.median(list)
  local s = { table.unpack(list) }
  table.sort(s)
  local m = #s // 2
  return #s % 2 == 1 and s[m + 1] or (s[m] + s[m + 1]) / 2
end

-- 17462.4 -> "17 462"
function M.fmt_rate(x)
  return (tostring(math.floor(x + 0.5)):reverse():gsub("(%d%d%d)", "%1 "):reverse():gsub("^ ", ""))
end

return M
