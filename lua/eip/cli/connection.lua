--- How the `eip` commands that call the API connect: their connection options, and the
-- client built from those options and the environment.
--
-- Credentials are never options: the library reads them from the environment (`OS_AUTH_TOKEN`,
-- `HUAWEICLOUD_SDK_AK`/`_SK`/...), as for `eip.new{}`. The endpoint comes from `--endpoint`,
-- else `$EIP_ENDPOINT` (unless `--region` is given), else the region. The proxy comes from
-- `--proxy` (never with credentials: they go in the environment), else the environment, unless
-- `--no-proxy`.
-- @module eip.cli.connection
local eip = require "eip"
local usage = require("eip.cli.args").usage

local M = {}

-- The options every command calling the API takes (see eip.cli.args for the fields).
local OPTIONS = {
  { "--endpoint", value = "URL", key = "endpoint", help = "API endpoint (default: $EIP_ENDPOINT, or from --region)" },
  { "--region", value = "R", key = "region", help = "region, e.g. cn-north-4 (default: $HUAWEICLOUD_SDK_REGION)" },
  { "--project-id", value = "P", key = "project_id", help = "project id (default: $HUAWEICLOUD_SDK_PROJECT_ID)" },
  { "--timeout", value = "S", key = "timeout", number = true, help = "seconds per attempt (default 30)" },
  { "--max-attempts", value = "N", key = "max_attempts", integer = true, help = "attempts per call (default 3)" },
  { "--debug", key = "debug", help = "log every request and response to stderr (secrets redacted)" },
  { "--proxy", value = "URL", key = "proxy",
    help = "http://host:port proxy (default: $https_proxy, $http_proxy, ..., minus $no_proxy)" },
  { "--no-proxy", key = "no_proxy", help = "no proxy, whatever the environment says" },
}

--- A command's own options followed by the connection options.
-- @tparam table own the command's option specs
-- @treturn table a new list
function M.options(own)
  local out = {}
  for _, o in ipairs(own) do out[#out + 1] = o end
  for _, o in ipairs(OPTIONS) do out[#out + 1] = o end
  return out
end

local function getenv(name)
  local v = os.getenv(name)
  if v == "" then return nil end
  return v
end

--- The client for the parsed options (credentials from the environment, the profile file or
-- the ECS metadata service), authenticated before any API call unless `opts.dry_run`.
-- Raises an eip usage error when the library refuses them (no credentials, a bad endpoint...).
-- @tparam table opts the parsed options (`endpoint`, `region`, `project_id`, `timeout`,
-- `max_attempts`, `debug`, `proxy`, `no_proxy`, `dry_run`)
-- @return an eip client
function M.client(opts)
  local endpoint = opts.endpoint
  if endpoint == nil and opts.region == nil then endpoint = getenv("EIP_ENDPOINT") end
  local proxy = opts.proxy
  if proxy ~= nil and opts.no_proxy then usage("--proxy and --no-proxy are exclusive: give one of them") end
  -- Credentials in a proxy URL are a secret: arguments show in ps and in shell history.
  if proxy ~= nil and proxy:find("@", 1, true) then
    usage("--proxy must not carry credentials (they would show in ps and shell history): "
      .. "export https_proxy=http://user:pass@host:port instead")
  end
  if opts.no_proxy then proxy = false end
  local client = eip.new{
    endpoint = endpoint, region = opts.region, project_id = opts.project_id,
    timeout = opts.timeout, max_attempts = opts.max_attempts, debug = opts.debug or nil, proxy = proxy,
  }
  if not opts.dry_run then client:authenticate() end
  return client
end

return M
