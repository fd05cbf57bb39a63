--- What the benchmark scripts (bench/run.lua, bench/openresty.lua) share: the median of a list
-- and a rate for a Markdown table. Lua 5.4 (the benchmarks' interpreter).
local M = {}

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
