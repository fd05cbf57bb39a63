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

--- A getenv that reads the table t (a process environment of the spec's own).
function M.env_of(t)
  return function(name) return t[name] end
end

--- Does haystack hold needle, as plain text?
function M.has(haystack, needle)
  return haystack:find(needle, 1, true) ~= nil
end

--- The non-empty lines of a text, in order.
function M.lines(s)
  local out = {}
  for l in s:gmatch("[^\n]+") do out[#out + 1] = l end
  return out
end

return M
