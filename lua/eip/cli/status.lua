--- The status command: what an HTTP status or an error code means for this API, from the
-- library's tables (`eip.status`, `eip.error_code`). Needs no credentials and sends nothing.
--
--   eip status [--output text|json|table] [CODE [STATUS]]
-- @module eip.cli.status
local core = require "eip.core"
local eip = require "eip"
local args = require "eip.cli.args"
local json = require "eip.cli.json"

local stdout = require("eip.cli.sink").stdout

local M = {
  name = "status",
  args = "[options] [CODE [STATUS]]",
  summary = "what an HTTP status or error code means (retryable, advice)",
  about = [[
With an HTTP status (409), prints its entry of the status table: reason, class, retryable,
advice, descriptions, seeds. With an error code (VPC.0306), prints its entry of the error-code
table: the status it comes with, kind, retryable, the service's message, advice, the Chinese
description and handling; a code that comes with several statuses lists the others too, and
STATUS picks one (eip status VPC.0514 500). Without CODE, lists every documented HTTP status.
Exit status: 0 found, 1 a code the table does not hold (as grep's no match), 2 neither a
status nor a code.

--output text: tab-separated field and value.]],
  output = "table",
  options = args.flatten{ args.output_options("table") },
}

-- The fields shown, in this order.
local STATUS_FIELDS = { "code", "reason", "class", "retryable", "documented", "advice", "description",
  "description_zh", "seeds" }
local CODE_FIELDS = { "code", "status", "kind", "module", "retryable", "transient", "message", "advice",
  "description_zh", "handling_zh" }

-- The listing: a header row in the table format (as the other listings), none in text, whose
-- retryable column reads true/false as the entry's field does.
local function list_all(format)
  local row = format == "text" and "%s\t%s\t%s\t%s\n" or "%-6s %-32s %-13s %s\n"
  if format == "table" then stdout:write(string.format(row, "STATUS", "REASON", "CLASS", "RETRYABLE")) end
  for _, e in ipairs(eip.statuses()) do
    if format == "json" then
      stdout:write(json.encode(e), "\n")
    elseif format == "text" then
      stdout:write(string.format(row, e.code, e.reason, e.class, tostring(e.retryable)))
    else
      stdout:write(string.format(row, e.code, e.reason, e.class, e.retryable and "yes" or "no"))
    end
  end
  return true
end

-- Writes `fields` of `entry` as aligned rows (table) or tab-separated ones (text).
local function rows(entry, fields, format)
  for _, k in ipairs(fields) do
    local v = entry[k]
    if v ~= nil and v ~= "" then
      stdout:write(string.format(format == "text" and "%s\t%s\n" or "%-15s %s\n", k, tostring(v)))
    end
  end
end

-- Every code of the error-code table.
local function known_codes()
  local codes = {}
  for i, e in ipairs(core.error_codes()) do codes[i] = e.code end
  return codes
end

local function error_code(code, status, format)
  -- (looked up without the status first: a code documented with other statuses only is told so)
  local entry = eip.error_code(code) or eip.error_code(code:upper())
  if not entry then
    local codes = known_codes()
    local guess = args.closest(code:upper(), codes)
    args.fail("not_found", "%s is not in the error-code table (%d codes%s)", code:sub(1, 30), #codes,
      guess and ("; did you mean " .. guess .. "?") or "")
  end
  local at = status and eip.error_code(entry.code, status)
  if status ~= nil and not at then
    local have, seen = {}, {}
    for _, v in ipairs(entry.variants) do
      if not seen[v.status] then seen[v.status] = true; have[#have + 1] = tostring(v.status) end
    end
    args.usage("%s does not come with %d (it comes with %s)", entry.code, status, table.concat(have, ", "))
  end
  entry = at or entry
  if format == "json" then
    stdout:write(json.encode(entry), "\n")
    return true
  end
  rows(entry, CODE_FIELDS, format)
  for _, v in ipairs(entry.variants) do
    if not (v.status == entry.status and v.module == entry.module) then
      stdout:write(string.format(format == "text" and "%s\t%d\t%s\t%s\n" or "%-15s %d (%s): %s\n", "also",
        v.status, v.module or "-", v.advice))
    end
  end
  return true
end

--- Runs the command.
-- @tparam table opts the parsed options
-- @tparam {string,...} argv an HTTP status (any Lua numeral of an integer: 429, 0x1AD), or an
-- error code and an optional status; or nothing
-- @treturn boolean true
function M.run(opts, argv)
  core.catch_interrupts(true, 1) -- (as list-bandwidths': a reader gone is a failed write, not SIGPIPE)
  if #argv == 0 then return list_all(opts.output) end
  if #argv > 2 then args.usage("status takes one code, e.g. eip status 409 or eip status VPC.0306") end
  local number = args.number_of(argv[1])
  if number == nil then
    local status = argv[2] and args.number_of(argv[2])
    if argv[2] and (not status or status ~= math.floor(status) or status < 100 or status > 599) then
      args.usage("status: %s is not an HTTP status (100-599)", args.quoted(argv[2]))
    end
    -- A typo is a usage error (2); a code of the right shape the table lacks is not found (1).
    if not argv[1]:find("^%a+%.%d+$") then
      args.usage("status: %s is neither an HTTP status (100-599) nor an error code (e.g. VPC.0306)",
        args.quoted(argv[1]))
    end
    return error_code(argv[1], status, opts.output)
  end
  if #argv ~= 1 then args.usage("status takes one HTTP status code, e.g. eip status 409") end
  if number ~= math.floor(number) or number < 100 or number > 599 then
    args.usage("status: %s is not an HTTP status (100-599)", args.quoted(argv[1]))
  end
  local entry = eip.status(number)
  if opts.output == "json" then
    stdout:write(json.encode(entry), "\n")
    return true
  end
  rows(entry, STATUS_FIELDS, opts.output)
  return true
end

return M
