--- Regions: where the VPC (EIP) API and IAM answer, from the official SDKs' region tables.
--
-- The VPC v2 table of the official SDKs has 34 regions, all served at
-- `https://vpc.{region}.myhuaweicloud.com`. IAM answers at `https://iam.{region}.myhuaweicloud.com`
-- except eu-west-101 (`https://iam.eu-west-101.myhuaweicloud.eu`); six regions have no regional
-- IAM entry and use the global `https://iam.myhuaweicloud.com`, as the official core does.
--
-- Overrides, as the official SDKs read them: `HUAWEICLOUD_SDK_REGION_EIP_<REGION>` (region
-- upper-cased, `-` as `_`; a comma-separated list: the first is used), the variable of the EIP
-- service, whose client DeleteSharedBandwidth belongs to, else `HUAWEICLOUD_SDK_REGION_VPC_<REGION>`
-- (the VPC service's, the same endpoint), for a region known or not; `HUAWEICLOUD_SDK_IAM_ENDPOINT`
-- for IAM everywhere.
-- @module eip.regions
local errors = require "eip.errors"
local validate = require "eip.validate"

local M = {}

local NAMES = {
  "af-north-1", "af-south-1", "ae-ad-1", "ap-southeast-1", "ap-southeast-2", "ap-southeast-3",
  "ap-southeast-4", "ap-southeast-5", "cn-east-2", "cn-east-3", "cn-east-4", "cn-east-5", "cn-north-1",
  "cn-north-2", "cn-north-4", "cn-north-9", "cn-north-11", "cn-north-12", "cn-south-1", "cn-south-2",
  "cn-south-4", "cn-southwest-2", "cn-southwest-3", "eu-west-0", "eu-west-101", "la-north-2",
  "la-south-2", "me-east-1", "my-kualalumpur-1", "na-mexico-1", "ru-moscow-1", "ru-northwest-2",
  "sa-brazil-1", "tr-west-1",
}

--- The global IAM endpoint, for regions without a regional one.
M.GLOBAL_IAM = "https://iam.myhuaweicloud.com"

-- Regions whose IAM is elsewhere than iam.{region}.myhuaweicloud.com.
local IAM_EXCEPTIONS = {
  ["eu-west-101"] = "https://iam.eu-west-101.myhuaweicloud.eu",
  ["af-north-1"] = M.GLOBAL_IAM, ["ap-southeast-5"] = M.GLOBAL_IAM, ["cn-north-11"] = M.GLOBAL_IAM,
  ["cn-south-4"] = M.GLOBAL_IAM, ["cn-southwest-3"] = M.GLOBAL_IAM, ["ru-northwest-2"] = M.GLOBAL_IAM,
}

local TABLE, BY_NAME = {}, {}
for i, name in ipairs(NAMES) do
  local entry = {
    name = name,
    vpc_endpoint = "https://vpc." .. name .. ".myhuaweicloud.com",
    iam_endpoint = IAM_EXCEPTIONS[name] or ("https://iam." .. name .. ".myhuaweicloud.com"),
  }
  TABLE[i], BY_NAME[name] = entry, entry
end

M.ENV_IAM = "HUAWEICLOUD_SDK_IAM_ENDPOINT"

--- The environment variable that overrides the endpoint of `region` for `service` ("EIP",
-- the default, or "VPC").
function M.env_name(region, service)
  return "HUAWEICLOUD_SDK_REGION_" .. (service or "EIP") .. "_" .. region:upper():gsub("-", "_")
end

local function env(getenv, name)
  local v = getenv(name)
  if v == "" then return nil end
  return v
end

--- Every region of the table, sorted by name: `{ name, vpc_endpoint, iam_endpoint }` (copies).
function M.list()
  local out = {}
  for i, e in ipairs(TABLE) do
    out[i] = { name = e.name, vpc_endpoint = e.vpc_endpoint, iam_endpoint = e.iam_endpoint }
  end
  table.sort(out, function(a, b) return a.name < b.name end)
  return out
end

--- The table's entry of a region, or nil.
function M.get(name)
  return BY_NAME[name]
end

--- The VPC endpoint of `region` (named by `argument` in errors): the environment override,
-- else the table's. An unknown region is a usage error suggesting the closest known name and
-- the `endpoint` option.
function M.vpc_endpoint(argument, region, getenv)
  validate.region(argument, region)
  for _, service in ipairs{ "EIP", "VPC" } do
    local override = env(getenv, M.env_name(region, service))
    if override then
      local first = override:match("^%s*([^,]-)%s*,") or override:match("^%s*(.-)%s*$")
      return validate.endpoint(M.env_name(region, service), first)
    end
  end
  local entry = BY_NAME[region]
  if entry then return entry.vpc_endpoint end
  local guess = validate.closest(region, NAMES)
  errors.raise_usage(argument, "names no known region (%q)%s; for a region this table does not know yet, "
    .. "pass endpoint = \"https://vpc.<region>.myhuaweicloud.com\" or set %s", region,
    guess and ("; did you mean \"" .. guess .. "\"?") or "", M.env_name(region))
end

--- The IAM endpoint for `region` (nil or unknown: the global one), unless overridden.
function M.iam_endpoint(region, getenv)
  local override = env(getenv, M.ENV_IAM)
  if override then
    -- A bare host name is https, as the official SDKs read this variable.
    if not override:find("://", 1, true) then override = "https://" .. override end
    return validate.endpoint(M.ENV_IAM, override)
  end
  local entry = region and BY_NAME[region]
  if entry then return entry.iam_endpoint end
  return M.GLOBAL_IAM -- as the official core does for a region without an IAM entry
end

--- The region an endpoint names, if it is a real one (`https://vpc.{region}.myhuaweicloud.com`).
function M.of_endpoint(endpoint)
  local region = endpoint:match("^https?://vpc%.([%l%d%-]+)%.myhuaweicloud%.")
  return region
end

return M
