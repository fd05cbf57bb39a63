--- The status command: what an HTTP status means for this API, from the library's status
-- table (`eip.status`). Needs no credentials and sends nothing.
--
--   eip status [--json] CODE
-- @module eip.cli.status
local eip = require "eip"
local args = require "eip.cli.args"
local json = require "eip.cli.json"

local stdout = io.stdout

local M = {
  name = "status",
  args = "CODE",
  summary = "what an HTTP status means for this API (reason, retryable, advice)",
  about = "Prints the status table entry: reason, class, retryable, advice, descriptions, seeds.",
  options = { args.JSON },
}

-- The fields shown, in this order.
local FIELDS = { "code", "reason", "class", "retryable", "documented", "advice", "description",
  "description_zh", "seeds" }

--- Runs the command: the entry as `field value` rows, or (`--json`) one object.
-- @tparam table opts the parsed options
-- @tparam {string,...} argv the code (any Lua numeral of an integer: 429, 429.0, 0x1AD)
-- @treturn boolean true
function M.run(opts, argv)
  if #argv ~= 1 then args.usage("status takes one HTTP status code, e.g. eip status 409") end
  local code = tonumber(argv[1])
  if not code or code ~= math.floor(code) or code < 100 or code > 599 then
    args.usage("status: %q is not an HTTP status (100-599)", argv[1]:sub(1, 20))
  end
  local entry = eip.status(code)
  if opts.json then
    stdout:write(json.encode(entry), "\n")
    return true
  end
  for _, k in ipairs(FIELDS) do
    if entry[k] ~= nil then stdout:write(string.format("%-15s %s\n", k, tostring(entry[k]))) end
  end
  return true
end

return M
