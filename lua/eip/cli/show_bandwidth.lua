--- The show-bandwidth command: one bandwidth and its EIPs.
--
--   eip show-bandwidth [--json] ID
-- @module eip.cli.show_bandwidth
local validate = require "eip.validate"
local args = require "eip.cli.args"
local connection = require "eip.cli.connection"
local json = require "eip.cli.json"
local output = require "eip.cli.output"

local stdout = io.stdout

local M = {
  name = "show-bandwidth",
  args = "[options] ID",
  summary = "show one bandwidth and its EIPs",
  about = "Shows one bandwidth (GET /v1/{project_id}/bandwidths/{id}).",
  credentials = true,
  options = connection.options{ args.JSON },
}

local function describe_type(share_type)
  if share_type == "WHOLE" then return "WHOLE (shared)" end
  if share_type == "PER" then return "PER (dedicated)" end
  return tostring(share_type)
end

--- Runs the command: the bandwidth as `name value` rows and one row per EIP, or (`--json`)
-- the API's object.
-- @tparam table opts the parsed options
-- @tparam {string,...} argv the id
-- @treturn boolean true
function M.run(opts, argv)
  if #argv ~= 1 then
    args.usage("show-bandwidth takes exactly one id, got %d (see: eip show-bandwidth --help)", #argv)
  end
  local ok, err = pcall(validate.id, "bandwidth_id", argv[1])
  if not ok then args.usage("%s", err.message) end
  local client = connection.client(opts)
  local bw, info = client:show_bandwidth(argv[1])
  client:close()
  if opts.json then
    stdout:write(json.encode(bw), "\n")
    return true
  end
  local eips = type(bw.publicip_info) == "table" and bw.publicip_info or {}
  local rows = {
    { "id", bw.id }, { "name", bw.name }, { "share_type", describe_type(bw.share_type) },
    { "size", output.number(bw.size) .. " Mbit/s" }, { "charge_mode", bw.charge_mode }, { "status", bw.status },
    { "created_at", bw.created_at }, { "updated_at", bw.updated_at }, { "eips", tostring(#eips) },
  }
  for _, r in ipairs(rows) do
    if r[2] ~= nil then stdout:write(string.format("%-12s %s\n", r[1], tostring(r[2]))) end
  end
  for _, ip in ipairs(eips) do
    stdout:write(string.format("  %-38s %-16s %s\n", tostring(ip.publicip_id), tostring(ip.publicip_address or "-"),
      tostring(ip.publicip_type or "")))
  end
  stdout:write(string.format("%-12s %s\n", "request_id", info.request_id or "-"))
  return true
end

return M
