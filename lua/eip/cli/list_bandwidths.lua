--- The list-bandwidths command: every bandwidth, all pages.
--
--   eip list-bandwidths [--shared] [--page-size N] [--output text|json|table]
-- @module eip.cli.list_bandwidths
local core = require "eip.core"
local args = require "eip.cli.args"
local connection = require "eip.cli.connection"
local json = require "eip.cli.json"
local output = require "eip.cli.output"

local sink = require "eip.cli.sink"
local stdout, stderr = sink.stdout, sink.stderr

local M = {
  name = "list-bandwidths",
  args = "[options]",
  summary = "list bandwidths (every page)",
  about = [[
Lists bandwidths (GET /v1/{project_id}/bandwidths), following pagination to the end: a table
(default), tab-separated lines without a header (--output text: id, type, Mbit/s, EIPs, status,
name), or the API's objects (--output json). The count goes to stderr.]],
  credentials = true,
  output = "table",
  options = connection.options{
    { "--shared", key = "shared", help = "shared (WHOLE) bandwidths only" },
    { "--page-size", value = "N", key = "page_size", integer = true, min = 1,
      help = "bandwidths per request (default 1000)" },
    args.output_options("table"),
  },
}

--- Runs the command.
-- @tparam table opts the parsed options
-- @tparam {string,...} argv (none)
-- @treturn boolean true
function M.run(opts, argv)
  if #argv > 0 then
    args.usage("list-bandwidths takes no arguments, got %s (see: eip list-bandwidths --help)", args.quoted(argv[1], 40))
  end
  core.catch_interrupts(true, 1) -- (as show-bandwidth's)
  local client = connection.client(opts)
  local ok, list, info = pcall(client.list_bandwidths, client,
    { share_type = opts.shared and "WHOLE" or nil, limit = opts.page_size, cancel = connection.interrupted })
  if ok then
    -- The server's text without the client's secrets (a server may echo one back), in every
    -- format; JSON keeps the control characters of the rest (it escapes them).
    list = output.scrubbed(list, client, opts.output == "json")
  end
  client:close()
  if not ok then connection.reword(list, opts) end
  -- (in columns of the terminal: a Chinese status keeps the name after it in its column)
  local row_format = "%-38s %-6s %6s %5s %-8s %s\n"
  if opts.output == "table" then
    stdout:write(args.aligned(row_format, "ID", "TYPE", "MBIT/S", "EIPS", "STATUS", "NAME"))
  end
  local shown = output.shown -- server text without its control characters; "-" for a wrong type
  for _, bw in ipairs(list) do
    local n = output.eip_count(bw)
    local id, share_type, size, status, name = shown(bw.id), shown(bw.share_type), shown(bw.size),
      shown(bw.status), shown(bw.name)
    if opts.output == "json" then
      stdout:write(json.encode(bw), "\n")
    elseif opts.output == "text" then
      stdout:write(table.concat({ id, share_type, size, n, status, name }, "\t"), "\n")
    else
      stdout:write(args.aligned(row_format, id, share_type, size, n, status, name))
    end
  end
  stdout:flush() -- the count comes after the list, also when both go to one pipe
  stderr:write(string.format("%d bandwidth(s), %d request(s)\n", #list, info.requests))
  return true
end

return M
