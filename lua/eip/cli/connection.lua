--- How the `eip` commands that call the API connect: their connection options, and the
-- client built from those options and the environment.
--
-- Credentials are never options: the library finds them as for `eip.new{}` (the environment:
-- `HUAWEICLOUD_SDK_AK`/`_SK`/..., `OS_AUTH_TOKEN`; then the profile file, then the ECS metadata
-- service). The endpoint comes from `--endpoint`, else `$EIP_ENDPOINT` (unless `--region` is
-- given), else the region. The proxy comes from `--proxy` (never with credentials: they go in
-- the environment), else the environment, unless `--no-proxy`.
--
-- The library's usage errors name its own options (`project_id`, `limit`, `credentials`...);
-- the command's errors name the command's options and variables instead (`--project-id`,
-- `HUAWEICLOUD_SDK_PROJECT_ID`...).
-- @module eip.cli.connection
local eip = require "eip"
local core = require "eip.core"
local args = require "eip.cli.args"
local validate = require "eip.validate"
local sink = require "eip.cli.sink"

local M = {}

-- The variables the library reads (eip.auth's; the command line uses the public API only).
local ENV = { token = "OS_AUTH_TOKEN", ak = "HUAWEICLOUD_SDK_AK", sk = "HUAWEICLOUD_SDK_SK",
  security_token = "HUAWEICLOUD_SDK_SECURITY_TOKEN", project_id = "HUAWEICLOUD_SDK_PROJECT_ID",
  region = "HUAWEICLOUD_SDK_REGION" }

--- The credentials the environment and the profile file hold (a token, an SK, a security
-- token, a proxy's user and password: eip.known_secrets), registered with eip.validate before any
-- argument is read: an id or a value the command would quote in a usage error is then never one
-- of them, though the client that knows them is made later.
-- @treturn {string,...} the values
function M.known_secrets()
  return eip.known_secrets()
end

-- Credentials in a proxy URL are a secret: arguments show in ps and in shell history. Checked at
-- every --proxy given (its `check`), not only the last one, which is the one kept.
local function refuse_credentials(value)
  if value:find("@", 1, true) then
    args.usage("%s", "--proxy must not carry credentials (they would show in ps and shell history): "
      .. "export https_proxy=http://user:pass@host:port instead")
  end
end

-- The options every command calling the API takes (see eip.cli.args for the fields).
local OPTIONS = {
  { "--endpoint", value = "URL", key = "endpoint", help = "API endpoint (default: $EIP_ENDPOINT, or from --region)" },
  { "--region", value = "R", key = "region", help = "region, e.g. cn-north-4 (default: $HUAWEICLOUD_SDK_REGION)" },
  { "--project-id", value = "P", key = "project_id",
    help = "project id (default: the profile file's with its keys, $HUAWEICLOUD_SDK_PROJECT_ID with a "
      .. "token or keys from the environment, else looked up by region)" },
  { "--timeout", value = "S", key = "timeout", number = true, min = 0.001, max = 86400,
    help = "seconds per attempt (default 30; without it, an attempt whose server says nothing for 10 s "
      .. "fails then)" },
  { "--connect-timeout", value = "S", key = "connect_timeout", number = true, min = 0.001, max = 86400,
    help = "seconds to connect, TLS handshake included, within --timeout (default 10)" },
  { "--ca-file", value = "FILE", key = "ca_file",
    help = "PEM bundle of the CAs to verify the endpoint (and IAM) with (default: the system store)" },
  { "--max-attempts", value = "N", key = "max_attempts", integer = true, min = 1, max = 20,
    help = "attempts per call, retries included (default 3)" },
  { "--rate", value = "R", key = "rate", number = true, min = 0.001, max = 1e6,
    help = "at most R requests per second, retries included (default: no limit; batches adapt)" },
  { "--burst", value = "N", key = "burst", integer = true, min = 1, max = 1e6,
    help = "with --rate: how many may go back to back (default 1)" },
  { "--debug", key = "debug", help = "log every request and response to stderr (secrets redacted)" },
  { "--proxy", value = "URL", key = "proxy", check = refuse_credentials,
    help = "http://host:port proxy (default: $https_proxy, $http_proxy, ..., minus $no_proxy)" },
  { "--no-proxy", key = "no_proxy", help = "no proxy, whatever the environment says" },
}

--- A command's own options followed by the connection options.
-- @tparam table own the command's option specs (and lists of them: see eip.cli.args.flatten)
-- @treturn table a new list
function M.options(own)
  local out = args.flatten(own)
  for _, o in ipairs(OPTIONS) do out[#out + 1] = o end
  return out
end

--- Is `flag` one of the connection options (`--endpoint`, `--region`, ...)?
-- @tparam string flag
-- @treturn boolean
function M.is_option(flag)
  for _, o in ipairs(OPTIONS) do
    if o[1] == flag then return true end
  end
  return false
end

--- What the command can use to authenticate, as its messages say it when the library does not.
M.CREDENTIALS = string.format("export %s (an IAM token), or %s and %s (an AK/SK pair; with %s for a "
  .. "temporary one)", ENV.token, ENV.ak, ENV.sk, ENV.security_token)

local NEVER_OPTIONS = "Secrets are never options: they would show in ps and shell history."

-- Where the library looked for credentials ("not found: looked at A; then B; then C"), without
-- the places the command cannot use (the library's own options): nil when it does not say.
local function places_looked(said)
  local list = said:match("^not found: looked at (.+)$")
  if not list then return nil end
  local places = {}
  for place in (list .. "; then "):gmatch("(.-); then ") do
    if not place:find("^the options ") then places[#places + 1] = place end
  end
  return #places > 0 and table.concat(places, "; then ") or nil
end

-- The command's words for a library argument: its option when it was given, else its variable.
local function words_for(argument, opts)
  local by_option = { endpoint = "--endpoint", region = "--region", project_id = "--project-id",
    timeout = "--timeout", max_attempts = "--max-attempts", limit = "--page-size", concurrency = "--concurrency",
    size = "--size", charge_mode = "--charge-mode", wait = "--wait-timeout", rate = "--rate", burst = "--burst",
    proxy = "--proxy", connect_timeout = "--connect-timeout", ca_file = "--ca-file", deadline = "--deadline" }
  if argument == "endpoint" and opts.endpoint == nil then return "EIP_ENDPOINT" end
  return by_option[argument]
end

--- Raises the usage error `e` of the library again, in the command's words: a missing project
-- names --project-id and its variable, missing credentials name what the command can use, an
-- option is named as the command spells it. Any other error is raised unchanged.
-- @param e the raised value
-- @tparam table opts the parsed options
function M.reword(e, opts)
  if not (eip.is_error(e) and e.kind == "usage") then error(e, 0) end
  local argument, message = e.argument, e.message or ""
  local said = message:sub(#tostring(argument) + 2) -- the message without its argument's name
  if argument == "credentials" then
    local places = places_looked(said)
    if places then args.usage("no credentials: looked at %s. %s", places, NEVER_OPTIONS) end
    args.usage("no credentials: %s. %s", M.CREDENTIALS, NEVER_OPTIONS)
  elseif argument == "project_id" and said:find("^is required") then
    args.usage("no project id: give --project-id, or export %s (with a token or keys from the environment), "
      .. "or a region (--region, %s) to look it up by", ENV.project_id, ENV.region)
  elseif argument == "endpoint" and said:find("^is required") then
    args.usage("no endpoint: give --endpoint URL or --region R, or export EIP_ENDPOINT or %s", ENV.region)
  end
  -- (the library's words for its own options, in the command's: also in a message about a
  -- variable, such as HUAWEICLOUD_SDK_REGION naming no known region)
  local flag = words_for(argument, opts)
  if argument == "endpoint" and said:find("^and region are exclusive") then
    said = said:gsub("^and region", "and --region")
  end
  -- (--burst's "needs rate"; a --proxy carries no credentials here: they go in the environment)
  if flag == "--burst" then said = said:gsub("^needs rate ", "needs --rate ") end
  if flag == "--proxy" then said = said:gsub("http://%[user:pass@%]host:port", "http://host:port") end
  said = said:gsub('pass endpoint = "([^"]*)"', "give --endpoint %1")
    :gsub("give them as options", "the command reads them from the environment, the profile file or the "
      .. "metadata service, never from a URL")
  if flag then args.usage("%s %s", flag, said) end
  if type(argument) == "string" and message:sub(1, #argument + 1) == argument .. " " then
    args.usage("%s %s", argument, said)
  end
  args.usage("%s", message)
end

--- Has a caught Ctrl-C (SIGTERM, SIGHUP) come? The `cancel` of a command's calls.
-- @treturn boolean
function M.interrupted()
  return core.interrupts() > 0
end

--- What a caught signal is called, by its number (core.interrupts' second result).
M.SIGNAL_NAMES = { [1] = "SIGHUP", [2] = "Ctrl-C", [15] = "SIGTERM" }

--- The exit status of a command a caught signal stopped: 128 + its number (130 Ctrl-C, 143
-- SIGTERM, 129 SIGHUP; 130 for any other).
-- @tparam integer signal
-- @treturn integer
function M.signal_exit(signal)
  return 128 + (M.SIGNAL_NAMES[signal] and signal or 2)
end

--- The client for the parsed options, its credentials obtained (the library's chain: the
-- environment, the profile file, the ECS metadata service) before any API call unless it will
-- send nothing. Raises a usage error in the command's words when the library refuses them.
-- @tparam table opts the parsed options (`endpoint`, `region`, `project_id`, `timeout`,
-- `connect_timeout`, `ca_file`, `max_attempts`, `debug`, `proxy`, `no_proxy`, `rate`, `burst`)
-- @tparam[opt] boolean sends_nothing the client will send nothing (--dry-run): credentials are
-- neither needed nor looked for then
-- @return an eip client
function M.client(opts, sends_nothing)
  local endpoint = opts.endpoint
  if endpoint == nil and opts.region == nil then endpoint = args.getenv("EIP_ENDPOINT") end
  local proxy = opts.proxy
  if proxy ~= nil and opts.no_proxy then
    args.usage("%s", "--proxy and --no-proxy are exclusive: give one of them")
  end
  if opts.no_proxy then proxy = false end
  -- A --project-id holding a credential of the environment or the profile file (a token or an SK
  -- pasted there): refused before anything is sent. The client refuses its own (those it signs
  -- or logs in with), not the others it was not given, which went out in the URL and came back
  -- on the result line.
  validate.refuse_held("project_id", opts.project_id)
  -- (and an endpoint holding one whole, in its host: sent in a DNS lookup and a Host header)
  validate.refuse_held_url(opts.endpoint ~= nil and "endpoint" or "EIP_ENDPOINT", endpoint)
  local ok, client = pcall(eip.new, {
    endpoint = endpoint, region = opts.region, project_id = opts.project_id,
    timeout = opts.timeout, max_attempts = opts.max_attempts, debug = opts.debug or nil,
    -- (--debug's lines through the command's stderr, which redacts the credentials the client
    -- was not given, the profile file's SK while it uses a token, say: the library's own debug
    -- log knows only the client's)
    log = opts.debug and function(line) sink.stderr:write(line .. "\n") end or nil,
    -- (--timeout S is S seconds for a server to answer in: the library's 10 s low-speed window,
    -- which a REST server silent until it answers would end sooner, is widened to it)
    low_speed_time = opts.timeout and math.max(10, math.ceil(opts.timeout)) or nil,
    proxy = proxy, rate = opts.rate, burst = opts.burst, connect_timeout = opts.connect_timeout,
    ca_file = opts.ca_file,
  })
  if not ok then M.reword(client, opts) end
  if not sends_nothing then
    -- Credentials now (the profile file, the metadata service...): a failure is a usage error
    -- before anything is sent to the API.
    local err
    ok, err = pcall(client.authenticate, client)
    if not ok then
      client:close()
      M.reword(err, opts)
    end
  end
  return client
end

return M
