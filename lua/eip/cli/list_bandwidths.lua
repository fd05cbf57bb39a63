--- The list-bandwidths command: every bandwidth, all pages.
--
--   eip list-bandwidths [--shared] [--page-size N] [--json]
-- @module eip.cli.list_bandwidths
local args = require "eip.cli.args"
local connection = require "eip.cli.connection"
local json = require "eip.cli.json"
local output = require "eip.cli.output"

local stdout = io.stdout

local M = {
  name = "list-bandwidths",
  args = "[options]",
  summary = "list bandwidths (every page)",
  about = "Lists bandwidths (GET /v1/{project_id}/bandwidths), following pagination to the end.",
  credentials = true,
  options = connection.options{
    { "--shared", key = "shared", help = "shared (WHOLE) bandwidths only" },
    { "--page-size", value = "N", key = "page_size", integer = true, help = "bandwidths per request (default 1000)" },
    args.JSON,
  },
}

--- Runs the command: a table (a header, one row per bandwidth, a count line), or (`--json`)
-- one API object per line.
-- @tparam table opts the parsed options
-- @tparam {string,...} argv (none)
-- @treturn boolean true
function M.run(opts, argv)
  if #argv > 0 then
    args.usage("list-bandwidths takes no arguments, got %q (see: eip list-bandwidths --help)", argv[1]:sub(1, 40))
  end
  local client = connection.client(opts)
  local list, info = client:list_bandwidths{ share_type = opts.shared and "WHOLE" or nil, limit = opts.page_size }
  client:close()
  if opts.json then
    for _, bw in ipairs(list) do stdout:write(json.encode(bw), "\n") end
    return true
  end
  stdout:write(string.format("%-38s %-6s %6s %5s %-8s %s\n", "ID", "TYPE", "MBIT/S", "EIPS", "STATUS", "NAME"))
  for _, bw in ipairs(list) do
    local n = type(bw.publicip_info) == "table" and #bw.publicip_info or 0
    stdout:write(string.format("%-38s %-6s %6s %5d %-8s %s\n", tostring(bw.id), tostring(bw.share_type),
      output.number(bw.size), n, tostring(bw.status), tostring(bw.name)))
  end
  stdout:write(string.format("%d bandwidth(s), %d request(s)\n", #list, info.requests))
  return true
end

return M
