--- The status command: what an HTTP status means for this API, from the library's status
-- table (`eip.status`). Needs no credentials and sends nothing.
--
--   eip status [--output text|json|table] [CODE]
-- @module eip.cli.status
local eip = require "eip"
local args = require "eip.cli.args"
local json = require "eip.cli.json"

local stdout = io.stdout

local M = {
  name = "status",
  args = "[options] [CODE]",
  summary = "what an HTTP status means here (reason, retryable, advice)",
  about = [[
Prints the status table entry of CODE: reason, class, retryable, advice, descriptions, seeds
(--output text: tab-separated field and value). Without CODE, lists every documented status:
code, reason, class, retryable.]],
  output = "table",
  options = args.flatten{ args.output_options("table") },
}

-- The fields shown, in this order.
local FIELDS = { "code", "reason", "class", "retryable", "documented", "advice", "description",
  "description_zh", "seeds" }

local function list_all(format)
  for _, e in ipairs(eip.statuses()) do
    if format == "json" then
      stdout:write(json.encode(e), "\n")
    else
      stdout:write(string.format(format == "text" and "%d\t%s\t%s\t%s\n" or "%-4d %-32s %-13s %s\n", e.code,
        e.reason, e.class, e.retryable and "retryable" or "-"))
    end
  end
  return true
end

--- Runs the command.
-- @tparam table opts the parsed options
-- @tparam {string,...} argv the code (any Lua numeral of an integer: 429, 429.0, 0x1AD), or none
-- @treturn boolean true
function M.run(opts, argv)
  if #argv == 0 then return list_all(opts.output) end
  if #argv ~= 1 then args.usage("status takes one HTTP status code, e.g. eip status 409") end
  local code = tonumber(argv[1])
  if not code or code ~= math.floor(code) or code < 100 or code > 599 then
    args.usage("status: %q is not an HTTP status (100-599)", argv[1]:sub(1, 20))
  end
  local entry = eip.status(code)
  if opts.output == "json" then
    stdout:write(json.encode(entry), "\n")
    return true
  end
  for _, k in ipairs(FIELDS) do
    if entry[k] ~= nil then
      stdout:write(string.format(opts.output == "text" and "%s\t%s\n" or "%-15s %s\n", k, tostring(entry[k])))
    end
  end
  return true
end

return M
