--- The regions command: the regions the library knows, with their VPC (EIP) and IAM endpoints
-- (`eip.regions`). Needs no credentials and sends nothing.
--
--   eip regions [--output text|json|table]
-- @module eip.cli.regions
local core = require "eip.core"
local eip = require "eip"
local args = require "eip.cli.args"
local json = require "eip.cli.json"

local stdout = require("eip.cli.sink").stdout

local M = {
  name = "regions",
  args = "[options]",
  summary = "the regions known, with their VPC and IAM endpoints",
  about = [[
Lists the regions the library knows (the official SDKs' VPC table) and where their VPC (EIP)
and IAM APIs answer: --region R uses them. The list is the table as shipped; when set,
HUAWEICLOUD_SDK_REGION_EIP_<REGION> (else HUAWEICLOUD_SDK_REGION_VPC_<REGION>) and
HUAWEICLOUD_SDK_IAM_ENDPOINT override its endpoints for --region, as for the official SDKs. A
region not listed needs --endpoint, one of those variables, or an EIP (or VPC) entry in the
SDKs' regions file ($HUAWEICLOUD_SDK_REGIONS_FILE, else ~/.huaweicloud/regions.yaml).]],
  output = "table",
  options = args.flatten{ args.output_options("table") },
}

--- Runs the command.
-- @tparam table opts the parsed options
-- @tparam {string,...} argv (none)
-- @treturn boolean true
function M.run(opts, argv)
  if #argv > 0 then
    args.usage("regions takes no arguments, got %s (see: eip regions --help)", args.quoted(argv[1], 40))
  end
  core.catch_interrupts(true, 1) -- (as list-bandwidths': a reader gone is a failed write, not SIGPIPE)
  local format, list = opts.output, eip.regions()
  local name_w, vpc_w = #"REGION", #"VPC ENDPOINT"
  for _, r in ipairs(list) do name_w, vpc_w = math.max(name_w, #r.name), math.max(vpc_w, #r.vpc_endpoint) end
  local row = format == "text" and "%s\t%s\t%s\n" or ("%-" .. name_w .. "s  %-" .. vpc_w .. "s  %s\n")
  if format == "table" then stdout:write(string.format(row, "REGION", "VPC ENDPOINT", "IAM ENDPOINT")) end
  for _, r in ipairs(list) do
    if format == "json" then
      stdout:write(json.encode(r), "\n")
    else
      stdout:write(string.format(row, r.name, r.vpc_endpoint, r.iam_endpoint))
    end
  end
  return true
end

return M
