--- The show-bandwidth command: one bandwidth and its EIPs.
--
--   eip show-bandwidth [--output text|json|table] ID
-- @module eip.cli.show_bandwidth
local core = require "eip.core"
local validate = require "eip.validate"
local args = require "eip.cli.args"
local connection = require "eip.cli.connection"
local json = require "eip.cli.json"
local output = require "eip.cli.output"

local stdout = require("eip.cli.sink").stdout

local M = {
  name = "show-bandwidth",
  args = "[options] ID",
  summary = "show one bandwidth and its EIPs",
  about = [[
Shows one bandwidth (GET /v1/{project_id}/bandwidths/{id}): its fields, then a table of its
EIPs (default); tab-separated field/value lines and one "eip" line per EIP (--output text);
or the API's object (--output json).]],
  credentials = true,
  output = "table",
  options = connection.options{ args.output_options("table") },
}

local function describe_type(share_type)
  if share_type == "WHOLE" then return "WHOLE (shared)" end
  if share_type == "PER" then return "PER (dedicated)" end
  return output.shown(share_type)
end

local function describe_size(size)
  if type(size) == "number" then return output.number(size) .. " Mbit/s" end
  return output.shown(size)
end

--- Runs the command.
-- @tparam table opts the parsed options
-- @tparam {string,...} argv the id
-- @treturn boolean true
function M.run(opts, argv)
  if #argv ~= 1 then
    args.usage("show-bandwidth takes exactly one id, got %d (see: eip show-bandwidth --help)", #argv)
  end
  local ok, err = pcall(validate.id, "bandwidth_id", argv[1])
  if not ok then args.usage("%s", err.message) end
  -- (a credential of the environment or the profile file pasted as the id, one the client was
  -- not given and so would send: refused as the client refuses its own)
  validate.refuse_held("bandwidth_id", argv[1])
  -- Ctrl-C (SIGTERM, SIGHUP) ends the call at once, the wait before a retry or the read in flight
  -- (within a second), the credentials' and the project's look-up included: an "interrupted"
  -- error, exit 130 (eip.cli).
  core.catch_interrupts(true, 1)
  local client = connection.client(opts)
  local bw, info = client:show_bandwidth(argv[1], { cancel = connection.interrupted })
  -- The server's text without the client's secrets (a server may echo one back), in every
  -- format; JSON keeps the control characters of the rest (it escapes them).
  bw = output.scrubbed(bw, client, opts.output == "json")
  client:close()
  if opts.output == "json" then
    stdout:write(json.encode(bw), "\n")
    return true
  end
  -- Every field through output.shown: the server's text (scrubbed above) without its control characters, and
  -- "-" for a value of the wrong type. A field the answer lacks has no line.
  local eips = output.eips(bw)
  local rows = {
    { "id", bw.id }, { "name", bw.name }, { "share_type", bw.share_type, describe_type },
    { "size", bw.size, describe_size }, { "charge_mode", bw.charge_mode }, { "status", bw.status },
    { "created_at", bw.created_at }, { "updated_at", bw.updated_at }, { "eips", output.eip_count(bw) },
    { "request_id", info.request_id or "-" },
  }
  local text = opts.output == "text"
  for _, r in ipairs(rows) do
    if r[2] ~= nil then
      -- (text is for cut and awk: the API's values as they are, WHOLE and 10, as list-bandwidths's
      -- text; the human form says what they mean, "WHOLE (shared)", "10 Mbit/s")
      local shown = not text and r[3] or output.shown
      stdout:write(string.format(text and "%s\t%s\n" or "%-12s %s\n", r[1], shown(r[2])))
    end
  end
  -- (in columns of the terminal, not bytes: a server's EIP id in Chinese keeps the address in its column)
  local eip_format = text and "eip\t%s\t%s\t%s\n" or "  %-38s %-16s %s\n"
  if not text and #eips > 0 then stdout:write(args.aligned(eip_format, "EIP ID", "ADDRESS", "TYPE")) end
  for _, ip in ipairs(eips) do
    stdout:write(args.aligned(eip_format, output.shown(ip.publicip_id),
      output.shown(ip.publicip_address, false) or output.shown(ip.publicipv6_address),
      output.shown(ip.publicip_type, "")))
  end
  return true
end

return M
