-- Prints the README's error-code reference from the C table, one line per row (the module
-- column tells apart the rows of a code that differ only there), so the two never drift:
--   LUA_CPATH="build/lua5.4/?.so;;" lua5.4 scripts/error-codes.lua
-- spec/readme_spec.lua checks that README.md contains exactly this output.
local core = require "eip.core"

-- A table cell: '|' would end the cell, a line end the row.
local function cell(s)
  return (s:gsub("|", "\\|"):gsub("[\r\n]", " "))
end

-- Messages are wire text: a code span keeps "Rules on xx by ** ..." from turning bold.
local function code_span(s)
  local ticks = s:find("`", 1, true) and "``" or "`"
  local pad = ticks == "``" and " " or ""
  return ticks .. pad .. cell(s) .. pad .. ticks
end

local lines = {
  "| code | status | module | kind | transient | message | advice |",
  "|---|---|---|---|---|---|---|",
}
for _, entry in ipairs(core.error_codes()) do
  for _, row in ipairs(entry.variants) do
    lines[#lines + 1] = string.format("| %s | %d | %s | %s | %s | %s | %s |", entry.code,
      row.status, row.module, row.kind, row.transient and "**yes**" or "no", code_span(row.message),
      cell(row.advice))
  end
end
io.write(table.concat(lines, "\n"), "\n")
