-- Helpers shared by the specs.
local eip = require "eip"

local M = {}

--- Calls f(...), asserts that it raised an eip error, and returns that error.
function M.raised(f, ...)
  local ok, err = pcall(f, ...)
  assert(not ok, "expected an error")
  assert(eip.is_error(err), "expected an eip error, got " .. tostring(err))
  return err
end

return M
