-- Prints the README's status reference table from the C table, so the two never drift:
--   LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/lua5.4/?.so;;" lua5.4 scripts/status-table.lua
-- spec/readme_spec.lua checks that README.md contains exactly this output.
local eip = require "eip"

local lines = {
  "| code | reason | class | retryable | seeds | advice |",
  "|---|---|---|---|---|---|",
}
for _, s in ipairs(eip.statuses()) do
  lines[#lines + 1] = string.format("| %d | %s | %s | %s | %s | %s |", s.code, s.reason, s.class,
    s.retryable and "**yes**" or "no", s.seeds, s.advice)
end
io.write(table.concat(lines, "\n"), "\n")
