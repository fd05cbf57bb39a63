--- A client of the EIP API, made by @{eip.new}: one keep-alive connection (a pool of them
-- inside nginx), the credentials, the retry policy. Every method validates its arguments
-- first: a `usage` @{eip.error} means nothing was sent. Every failure is an @{eip.error}.
--
--     local client = eip.new{ endpoint = ..., project_id = ..., token = ... }
--     client:delete_bandwidth(id [, { missing_ok = true }])
--     client:delete_bandwidths(ids [, { concurrency = 8, missing_ok = true, on_result = fn }])
--     client:show_bandwidth(id); client:list_bandwidths{ ... }
--     client:create_bandwidth{ name =, size = [, charge_mode =] }
--     client:remove_eips_from_bandwidth(id, eip_ids, { charge_mode =, size = })
--     client:drain_and_delete_bandwidth(id, { charge_mode =, size = })
--     client:clean(s)   -- server text (a field of the API's objects) safe to print
--     client:close()
--
-- Fields a script may read: `endpoint`, `project_id` (once known), `auth` ("token", "aksk",
-- "iam" or "metadata": the ECS metadata service's temporary keys) and `transport` (the
-- transport object; inside nginx its `last` names the transport the last call used).
--
-- Besides the errors each method's doc names, every method that sends may raise those of any
-- request: `http`, `transport` and `proxy` errors (of its login or its project's look-up too,
-- before its first request: then `not_sent`); `refused` with reason "unanswered" (signed
-- requests in a row got no answer: nothing more is signed for a while, see the README's
-- Safety); `credentials` (the ECS metadata service's keys could not be renewed); `interrupted`
-- (a caught interrupt, eip.core.catch_interrupts, aborted a request in flight). Every method
-- raises a `usage` error, nothing sent, when it is called with a dot, and every one but `clean`
-- and `close` when it is called on a closed client.
--
-- Inside, each method describes its call (eip.ops) and hands it to the pipeline (eip.pipeline);
-- batches (eip.batch) and the bandwidth workflows (eip.bandwidths) drive the same pipeline.
-- @classmod eip.client
local core = require "eip.core"
local errors = require "eip.errors"
local validate = require "eip.validate"
local auth = require "eip.auth"
local log = require "eip.log"
local retry = require "eip.retry"
local ops = require "eip.ops"
local pipeline = require "eip.pipeline"
local pace = require "eip.pace"
local regions = require "eip.regions"
local batch = require "eip.batch"
local bandwidths = require "eip.bandwidths"
local proxy = require "eip.proxy"
local signing = require "eip.signing"

local M = {}

local Client = {}
Client.__index = Client
Client.__name = "eip.client"

local VERSION = core._VERSION
local clean_id = core.clean_id -- (validate.secret_id's common case: see Client:delete_bandwidth)
local USER_AGENT = "lua-eip/" .. VERSION
local DEFAULT_TIMEOUT = 30
local DEFAULT_CONNECT_TIMEOUT = 10
local DEFAULT_MAX_BODY = 1024 * 1024

-- Each client's runner (its settings, transport and credentials) lives outside the client
-- table, keyed weakly by the client, so printing, serialising or inspecting a client can
-- never show a secret.
local runners = setmetatable({}, { __mode = "k" })

-- Every option eip.new accepts (each is documented there).
M.OPTIONS = {
  endpoint = true, region = true, project_id = true,
  token = true, ak = true, sk = true, security_token = true, auth = true,
  timeout = true, connect_timeout = true, deadline = true, low_speed_limit = true, low_speed_time = true,
  max_attempts = true, backoff_base = true, backoff_cap = true, retry_after_cap = true, sleep = true,
  missing_ok = true, ca_file = true, insecure = true, max_body = true, debug = true, log = true,
  transport = true, metadata_url = true, rate = true, burst = true, rate_dict = true, clock = true,
  on_request = true, on_response = true, proxy = true, signing_dict = true,
}

-- The options of one delete_bandwidth call.
M.CALL_OPTIONS = { missing_ok = true, wait = true }
local CALL_OPTIONS = M.CALL_OPTIONS

-- An option's value, else `default` when it is not given. Never `opts.x or default`: that
-- reads false as "not given", and false for a number would pass silently.
local function given(v, default)
  if v == nil then return default end
  return v
end

local function endpoint_for(opts, getenv)
  if opts.endpoint ~= nil and opts.region ~= nil then
    errors.raise_usage("endpoint", "and region are exclusive: give one of them")
  end
  if opts.endpoint ~= nil then return validate.endpoint("endpoint", opts.endpoint), nil, "endpoint" end
  local region = given(opts.region, auth.env("region", getenv))
  if region ~= nil then
    local region_name = opts.region ~= nil and "region" or auth.ENV.region
    local endpoint, from = regions.vpc_endpoint(region_name, region, getenv or os.getenv)
    return endpoint, region, from or "endpoint", region_name
  end
  errors.raise_usage("endpoint", "is required (or region = \"cn-north-4\", or %s)", auth.ENV.region)
end

-- A transport given as an option must honour the contract of eip.transport.
-- (its methods read protected: an object whose __index raises for a field it lacks, a "strict"
-- class, is this usage error, not its raw one)
local function custom_transport(t)
  local ok, send, close = pcall(function() return t.send, t.close end)
  if type(t) ~= "table" or not ok or type(send) ~= "function" or type(close) ~= "function" then
    errors.raise_usage("transport", "must be a table with send(self, request) and close(self) (see eip.transport)")
  end
  return t
end

-- The retry policy's settings (eip.retry).
local function policy_of(opts)
  local D = retry.DEFAULTS
  return {
    max_attempts = validate.integer("max_attempts", given(opts.max_attempts, D.max_attempts), 1, 20),
    backoff_base = validate.number("backoff_base", given(opts.backoff_base, D.backoff_base), 0, 60),
    backoff_cap = validate.number("backoff_cap", given(opts.backoff_cap, D.backoff_cap), 0, 3600),
    retry_after_cap = validate.number("retry_after_cap", given(opts.retry_after_cap, D.retry_after_cap), 0, 3600),
    throttle_min = D.throttle_min, throttle_max = D.throttle_max,
  }
end

-- The caller's sleep, guarded: one that raises is not the call's failure (a retry's wait, a
-- pause between a drain's steps: what was sent is still to be reported as it happened): the
-- wait is made with the library's own sleep instead, and the error goes to the log.
-- (Its text is not logged: it may hold anything, and nothing here can clean it yet.) But the
-- interpreter's Ctrl-C, raised in the sleep, ends the call as it was raised: nothing more is sent.
local function guarded_sleep(sleep, logger, own)
  return function(seconds)
    local ok, why = errors.yielding(sleep, seconds)
    if not ok then
      if errors.interpreter_interrupt(why) then error(why, 0) end
      if logger then logger("eip: the sleep option raised an error; the library's own sleep waited instead") end
      own(seconds)
    end
  end
end

-- What a clock reading must be: a number of seconds, not NaN nor infinite.
local function reading(ok, t)
  return ok and type(t) == "number" and t == t and t ~= math.huge and t ~= -math.huge
end

-- The caller's clock, read once now: a broken one is a usage error before anything is sent. Read
-- mid-call it is the caller's code inside a call (as a sleep is): one that raises, or returns
-- no number, must not turn a delete already sent into a usage error saying nothing was, so it
-- is logged once and the library's monotonic clock takes over, from the last reading on.
-- Readings are given from the first one on (a nanosecond clock's 1.7e18 leaves a double no
-- room for the rate's fractions of a second: every request would go at once).
local function guarded_clock(clock, logger)
  local ok, t = pcall(clock)
  if not reading(ok, t) then
    errors.raise_usage("clock", "must return a number of seconds, got %s",
      not ok and "an error" or t ~= t and "NaN" or type(t) == "number" and tostring(t) or type(t))
  end
  local first = t
  local last, last_own, offset = 0, core.monotime(), nil
  return function()
    if offset then return core.monotime() + offset end
    ok, t = pcall(clock)
    if reading(ok, t) then
      last, last_own = t - first, core.monotime()
      return last
    end
    offset = last - last_own
    if logger then
      logger("eip: the clock option raised an error or returned no number; the library's own clock is used from now on")
    end
    return core.monotime() + offset
  end
end

-- The proxy variables, in the order eip.proxy reads them (the credentials of any of them).
local PROXY_VARIABLES = { "https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY" }

-- The secret values a client made with opts would know before it asks anything: eip.known_secrets,
-- documented there. getenv replaces os.getenv (tests).
function M.known_secrets(opts, getenv)
  local out = auth.known_secrets(opts, getenv)
  local p = auth.option(opts, "proxy") -- (read as eip.new reads it: see there)
  if p ~= nil then -- (false: no proxy, none of the environment's)
    proxy.credentials_of(p, out)
  else
    getenv = getenv or os.getenv
    for _, name in ipairs(PROXY_VARIABLES) do proxy.credentials_of(getenv(name), out) end
  end
  return out
end

-- A new client: eip.new, documented there with every option. getenv replaces os.getenv (tests).
function M.new(opts, getenv)
  opts = validate.options("options", opts, M.OPTIONS)
  -- The secrets given as options, in the environment or in the profile file, and the proxy's,
  -- known before anything is checked (the region first): a value that holds one is never
  -- quoted. The provider's own are registered below; these only while this call runs.
  local early = M.known_secrets(opts, getenv)
  validate.register_secrets(early)
  -- (each named where it came from, for the errors about it: an option, a variable, a file)
  local endpoint, region, endpoint_name, region_name = endpoint_for(opts, getenv)
  if not region then
    region, region_name = regions.of_endpoint(endpoint), "region"
    if not region then region, region_name = auth.env("region", getenv), auth.ENV.region end
  end
  local logger = log.sink(opts.debug, opts.log)
  local provider, found = auth.resolve(opts, region, getenv, logger or function(line) io.stderr:write(line .. "\n") end)
  -- The project: the option; else the one the credentials' source names with them (a profile
  -- file's project_id, HUAWEICLOUD_SDK_PROJECT_ID with the environment's keys: see auth.resolve);
  -- else the token's scope (IAM), or looked up by region (AK/SK).
  -- Registered before any id is checked: one that holds a secret is refused, never quoted.
  validate.register_secrets(provider.secrets)
  -- Whatever its source, a project id that holds a secret (an SK pasted into
  -- HUAWEICLOUD_SDK_PROJECT_ID) is refused, never sent in paths and X-Project-Id nor shown; the
  -- proxy's credentials are checked below, once known.
  local project_id, lookup, r_project_missing, project_name = opts.project_id, nil, nil, "project_id"
  if project_id ~= nil then
    project_id = validate.secret_id("project_id", project_id, provider.secrets)
    -- (IAM scopes the token to auth.project_id, and the API refuses it for another project's paths)
    if provider.kind == "iam" and provider.project_id ~= nil and provider.project_id ~= project_id then
      errors.raise_usage("project_id", "differs from auth.project_id, the project the token is scoped to (every "
        .. "call would be refused): give one of them")
    end
  elseif found.env_project_id then -- checked only now: a bad one must not stand in the option's way
    project_name = auth.ENV.project_id
    project_id = validate.secret_id(project_name, found.env_project_id, provider.secrets)
  elseif found.project_id then
    project_name = found.project_name or project_name
    project_id = validate.secret_id(project_name, found.project_id, provider.secrets)
  elseif provider.kind == "iam" then -- IAM learns it from the token's scope on first use
    project_id = provider.project_id
    if project_id then
      project_name = "auth.project_id"
      validate.secret_id(project_name, project_id, provider.secrets)
    end
  elseif provider.kind == "metadata" and not region then
    -- Said once the keys are there (Runner:project): without them, the credentials are what
    -- is missing first.
    r_project_missing = errors.usage("project_id", "is required for the ECS metadata service's keys (option "
      .. "project_id, or a region to look it up by)")
  elseif provider.kind ~= "token" and region then
    -- AK/SK: asked of IAM on first use (GET /v3/projects?name={region}), as the official SDKs do.
    -- (what to give instead when IAM has no one project of that name: where these keys can)
    local instead = found.from_env and "project_id or " .. auth.ENV.project_id
      or found.source and "project_id, or project_id in " .. found.source or "project_id"
    lookup = { region = validate.region(region_name, region), instead = instead,
      iam_endpoint = found.iam_endpoint or regions.iam_endpoint(region, getenv or os.getenv) }
  else
    errors.raise_usage("project_id", "is required (option project_id, or %s with a token or keys from the "
      .. "environment%s)", auth.ENV.project_id, provider.kind ~= "token" and ", or a region to look it up by" or "")
  end
  -- The URLs requests go to: one that holds a secret (an SK pasted after or into EIP_ENDPOINT's
  -- URL, a password after auth.iam_endpoint's) would be sent in every request's URL and shown
  -- wherever the URL is (a dry run, tostring of the client). See validate.secret_url.
  local urls = { endpoint, provider.iam_endpoint or (lookup and lookup.iam_endpoint),
    provider.kind == "metadata" and provider.base }
  -- (the project lookup's IAM endpoint named where it came from: the profile file's, else the
  -- environment's, else the region's own, which holds nothing of the caller's)
  local iam_name = provider.iam_endpoint_from or "auth.iam_endpoint"
  if not provider.iam_endpoint and lookup then
    iam_name = found.iam_endpoint and "the profile file's iam_endpoint" or regions.ENV_IAM
  end
  for i, name in ipairs{ endpoint_name, iam_name, "metadata_url" } do
    if urls[i] then validate.secret_url(name, urls[i], provider.secrets, early) end
  end
  if opts.signing_dict ~= nil then
    -- Checked whatever the credentials (a misspelt dict must not wait for the day the keys
    -- change to AK/SK); used only by a client that signs.
    local shared = signing.new(opts.signing_dict)
    if provider.rejected then provider.shared = shared end
    if provider.kind == "iam" then provider.login_dict = shared end -- (its logins: see eip.signing)
  end
  local timeout = validate.number("timeout", given(opts.timeout, DEFAULT_TIMEOUT), 0.001, 86400)
  local r = {
    endpoint = endpoint, project_id = project_id, lookup = lookup, project_missing = r_project_missing,
    provider = provider, timeout = timeout,
    connect_timeout = validate.number("connect_timeout",
      given(opts.connect_timeout, math.min(DEFAULT_CONNECT_TIMEOUT, timeout)), 0.001, 86400),
    -- Abort a transfer slower than low_speed_limit bytes/s for low_speed_time seconds: a server
    -- trickling bytes cannot hold a call until the whole-request timeout.
    low_speed_limit = validate.integer("low_speed_limit", given(opts.low_speed_limit, 100), 0, 1e9),
    low_speed_time = validate.integer("low_speed_time", given(opts.low_speed_time, 10), 0, 86400),
    policy = policy_of(opts),
    missing_ok = opts.missing_ok ~= nil and validate.boolean("missing_ok", opts.missing_ok) or false,
    max_body = validate.integer("max_body", given(opts.max_body, DEFAULT_MAX_BODY), 1024, 64 * 1024 * 1024),
    insecure = opts.insecure ~= nil and validate.boolean("insecure", opts.insecure) or false,
    log = logger,
    user_agent = USER_AGENT,
  }
  r.host, r.base_path = endpoint:match("^%a+://([^/]+)(.*)$")
  -- The proxy of every request, decided here once (eip.proxy), so both transports agree.
  local proxies = proxy.settings(opts.proxy, getenv)
  r.proxies, r.endpoint_proxy = proxies, proxies:decide(endpoint)
  -- The other hosts it asks, checked now as the endpoint is: a proxy variable they would take and
  -- cannot is a usage error here, not at a first call (one no request takes is none at all).
  for _, url in ipairs{ provider.iam_endpoint or false, lookup and lookup.iam_endpoint or false,
      provider.base or false } do
    if url then proxies:decide(url) end
  end
  if #proxies.secrets > 0 then
    r.secrets = proxies.secrets
    validate.register_secrets(proxies.secrets)
    if project_id then validate.secret_id(project_name, project_id, provider.secrets, proxies.secrets) end
  end
  if opts.deadline ~= nil then r.deadline = validate.number("deadline", opts.deadline, 0.001, 86400) end
  if opts.sleep ~= nil and type(opts.sleep) ~= "function" then
    errors.raise_usage("sleep", "must be a function(seconds), got %s", type(opts.sleep))
  end
  -- The CA bundle is checked now rather than by libcurl at the first request, where a FIFO
  -- would block the call and a directory or a missing file would be a TLS error.
  if opts.ca_file ~= nil then r.ca_file = validate.regular_file("ca_file", opts.ca_file, "a PEM bundle") end
  local transports = require "eip.transport"
  if opts.transport ~= nil then
    r.transport = custom_transport(opts.transport)
    r.callers_transport = true -- (its responses are read as pipeline.plain copies them)
  else
    -- (its options checked above: what it raises is the C core's, a libcurl handle it could not
    -- make, memory running out; an eip error of the transport, nothing sent)
    local made, transport = pcall(transports.new, { ca_file = r.ca_file, insecure = r.insecure,
      user_agent = USER_AGENT })
    if not made then error(errors.unmade(transport, nil, "cannot make the client's libcurl handle"), 0) end
    r.transport = transport
    -- The built-in transports read a request during send only: the pipeline may fill the same
    -- table again (a transport of the caller's own may keep what it is given).
    r.reuse_requests = true
  end
  if opts.sleep ~= nil and type(opts.sleep) ~= "function" then
    errors.raise_usage("sleep", "must be a function(seconds), got %s", type(opts.sleep))
  end
  r.sleep = opts.sleep and guarded_sleep(opts.sleep, logger, transports.sleep) or transports.sleep
  -- Nothing of the caller's can yield through a call (its hooks run under pcall already): each
  -- call is protected, on Lua 5.1 inside a coroutine too (see errors.yielding and Runner:counted:
  -- a call that raised unprotected stayed counted as running, and a close then freed nothing).
  if opts.transport == nil and opts.sleep == nil then r.protect = pcall end
  r.blocking, r.starting = transports.blocking, transports.starting -- (see Runner:stuck, Runner:wait_stops)
  if opts.clock ~= nil and type(opts.clock) ~= "function" then
    errors.raise_usage("clock", "must be a function() returning seconds, got %s", type(opts.clock))
  end
  r.clock = opts.clock and guarded_clock(opts.clock, logger) or core.monotime
  for _, hook in ipairs{ "on_request", "on_response" } do
    if opts[hook] ~= nil and type(opts[hook]) ~= "function" then
      errors.raise_usage(hook, "must be a function(info), got %s", type(opts[hook]))
    end
    r[hook] = opts[hook]
  end
  r.bucket = pace.of_options(opts, r.clock)
  local self = setmetatable({ endpoint = endpoint, project_id = project_id, auth = provider.kind,
    transport = r.transport, closed = false }, Client)
  -- (a project lookup made once for the calls that need it at once: see Runner:project)
  r.fetch_once = auth.fetch_once
  r.fetch_budget = function(_, runner)
    return auth.request_budget(runner, (runner.policy or {}).max_attempts or 1, runner.timeout)
  end
  runners[self] = pipeline.new(r)
  return self
end

-- The runner of an open client; a usage error for `client.method(...)` written with a dot,
-- and for calls on a closed client. Every public method starts with it.
local function runner_of(self, method)
  local r = runners[self]
  if r and not self.closed then return r end
  if getmetatable(self) ~= Client then
    errors.raise_usage("client", "must be an eip client: call it as client:%s(...), with a colon", method)
  end
  errors.raise_usage("client", "is closed: client:close() was called before %s", method)
end

-- The project for paths (learnt from the IAM token's scope on first use), kept visible.
-- The project id of the client's calls (found once: see Runner:project). A look-up that fails
-- (IAM, the metadata service) sent nothing of the call that needed it: its error, as the call's,
-- is not_sent with no attempt (a copy: the look-up's own attempts are not the call's); `as_is`:
-- the look-up is the call (client:authenticate). `cancel`: the call's, asked while the look-up
-- (a login) is made or waited for (an "interrupted" error, `cancelled`, when it says stop).
-- `bandwidth_id`: the call's, named on its error (the look-up's names IAM's request).
local function project(self, r, as_is, cancel, bandwidth_id)
  local p = r.project_id
  if not p then
    local ok, found = errors.held(r.project, r, cancel and { stop = cancel } or nil)
    if not ok then
      if as_is or not errors.is_error(found) then error(found, 0) end
      error(errors.unsent_copy(found, bandwidth_id), 0)
    end
    p = found
  end
  self.project_id = p
  return p
end

-- The project id for a call, and the deadline (core.monotime) its operation keeps when that id
-- had to be looked up first: the look-up counts in the call's deadline (nil: no client deadline,
-- or nothing looked up). `cancel`: the call's (see project).
local function project_for_call(self, r, cancel, bandwidth_id)
  local p = r.project_id
  if p ~= nil and p == self.project_id then return p end
  local started = r.deadline and core.monotime()
  p = project(self, r, nil, cancel, bandwidth_id)
  return p, started and started + r.deadline or nil
end

-- `wait = true | seconds`: how long to wait after a 204 for the bandwidth to disappear; nil
-- when not waiting.
local function wait_of(v)
  if v == nil or v == false then return nil end
  if v == true then return bandwidths.DEFAULT_WAIT end
  -- (at least what a read is given: a shorter wait would end before its first read went out)
  return validate.number("wait", v, pipeline.MIN_ATTEMPT_TIME, 86400)
end

-- The missing_ok and wait of a delete: the call's options over the client's.
local function delete_options(r, call_opts)
  local missing_ok, wait = r.missing_ok, nil
  if call_opts ~= nil then
    call_opts = validate.options("call options", call_opts, CALL_OPTIONS)
    if call_opts.missing_ok ~= nil then missing_ok = validate.boolean("missing_ok", call_opts.missing_ok) end
    wait = wait_of(call_opts.wait)
  end
  return missing_ok, wait
end

-- With wait: the seconds until a deleted bandwidth could no longer be read, in res.waited.
-- `cancel`: as eip.bandwidths.wait_gone's.
local function waited(r, project_id, res, wait, cancel)
  if wait and res.deleted then
    res.waited = bandwidths.wait_gone(r, project_id, res.bandwidth_id, wait, cancel, true)
  end
  return res
end

--- Obtains the credentials and the project id now rather than at the first call: an IAM token,
-- temporary keys from the ECS metadata service, the project looked up by region (AK/SK). A
-- script or a service at start-up learns at once that it cannot authenticate. Nothing is sent
-- to the EIP API.
-- @treturn table `{ auth = "token" | "aksk" | "iam" | "metadata", project_id = "..." }`
-- @raise an @{eip.error}: `usage` with argument "credentials" when none are found anywhere (also
--   when the ECS metadata service gave none: `cause` holds its error); `usage` with argument
--   "project_id" when IAM lists no project or several named after the region (AK/SK: `request_id`
--   is IAM's), or the metadata service's keys come without a project id or a region to look it
--   up by; the `http` or `transport` error of IAM; a `proxy` error when the proxy in the way
--   failed (`proxy`, `reason`, `proxy_status`)
function Client:authenticate()
  local r = runner_of(self, "authenticate")
  r.provider:ensure(r)
  return { auth = r.provider.kind, project_id = project(self, r, true) }
end

--- Text made safe to show: every secret the client holds (token, SK, security token, IAM
-- password, the metadata service's session token, proxy credentials) replaced by `<redacted>`,
-- pieces of one included (of its lower- and upper-case and base64 forms too), a text holding
-- one in disguise (JSON-, C- or percent-escaped, split by control characters) replaced whole, and
-- control characters (terminal escapes, CR, LF; bidi marks and overrides) turned into spaces and
-- zero-width ones removed, as the README's Secrets says. Errors and log lines already went through it; the
-- API's objects (`show_bandwidth`, `list_bandwidths`, `plan_drain`) are returned as the server sent
-- them: pass each of their strings through it before printing or logging one. Works on a closed
-- client too, and sends nothing.
-- @tparam string s the text (anything else is returned as it is)
-- @treturn string the text made safe
-- @raise a `usage` @{eip.error} when called on something that is not a client (`client.clean(s)`
--   with a dot)
function Client:clean(s)
  local r = runners[self]
  if not r then runner_of(self, "clean") end
  return r:clean(s)
end

function Client:__tostring()
  return string.format("eip.client(%s, project %s, %s auth)", self.endpoint, self.project_id or "?", self.auth)
end

-- delete_bandwidth past its common case, counted as running (see Runner:counted): the project
-- found first (its look-up counts in the deadline), a wait after the 204.
local function delete_counted(self, r, bandwidth_id, missing_ok, wait)
  -- (inside nginx, the exit's watch starts with the call: a worker told to exit while the delete
  -- was under way reads nothing after it; started with the wait, it took the wait for work begun
  -- once the worker was exiting, and read on: errors.with_exit)
  local watch = wait and errors.with_exit(nil) or nil
  local project_id, deadline_at = project_for_call(self, r, nil, bandwidth_id)
  local op = ops.delete_bandwidth(project_id, bandwidth_id, missing_ok)
  if deadline_at then op.deadline_at = deadline_at end
  local res = r:run(op)
  if wait then return waited(r, project_id, res, wait, watch) end
  return res
end

--- Deletes a shared bandwidth: `DELETE /v2.0/{project_id}/bandwidths/{id}`, retrying what is
-- transient (see the README's Retries).
-- @tparam string bandwidth_id the bandwidth's id (1-64 characters of `[A-Za-z0-9._-]`)
-- @tparam[opt] table call_opts options of this call:
-- @tparam[opt] boolean call_opts.missing_ok the EIP service's 404 `VPC.0306` is a result, not an
--   error, for an id shaped like a bandwidth id (a lower-case UUID; default: the client's
--   `missing_ok`)
-- @tparam[opt] boolean|number call_opts.wait true (up to 600 s) or seconds (0.05 to 86400): after
--   the 204, read the bandwidth until it is gone (the result then has `waited`)
-- @treturn table `{ ok = true, deleted = true, status = 204, reason, bandwidth_id, request_id,
--   attempts, elapsed, waited? }`; with missing_ok, a 404 VPC.0306 is `{ ok = true, deleted =
--   false, status = 404, code, message, project_id (where it is missing from), ... }`
-- @raise an @{eip.error}: `usage` (nothing sent), `http` (status, code, message, request_id,
--   retryable, advice; a 2xx other than 204 too, with reason "Unusable Answer": it does not say
--   the bandwidth was deleted), `transport` (reason, curl_code; `proxy` when it went through
--   one), `proxy` (the proxy failed: `proxy`, `reason`, `proxy_status`; never an answer of the
--   API), or, with `wait`, after the 204: `wait_timeout` (deleted, but still readable when the wait
--   ended), `interrupted` (Ctrl-C, or inside nginx the worker's exit, ended the wait) or an
--   authentication failure of a read (`stage =
--   "wait"`), each with `deleted = true`; the project lookup's errors (see @{authenticate}) before
--   the first call
function Client:delete_bandwidth(bandwidth_id, call_opts)
  -- (runner_of's and project_for_call's common case inline: a call's cost is mostly calls)
  local r = runners[self]
  if not r or self.closed then r = runner_of(self, "delete_bandwidth") end
  local secrets, own = r.provider.secrets, r.secrets
  if not clean_id(bandwidth_id, secrets, own) then validate.secret_id("bandwidth_id", bandwidth_id, secrets, own) end
  local missing_ok, wait = r.missing_ok, nil
  if call_opts ~= nil then missing_ok, wait = delete_options(r, call_opts) end
  local project_id = r.project_id
  if wait or project_id == nil or project_id ~= self.project_id then
    -- (a project to find first, a wait after: code of the caller's may run outside Runner:run)
    return r:counted(delete_counted, self, r, bandwidth_id, missing_ok, wait)
  end
  -- (nothing of the caller's runs before Runner:run_delete, which counts itself past its lane:
  -- the common delete is counted only when it leaves the lane)
  return r:run_delete(project_id, bandwidth_id, missing_ok)
end

--- Deletes many shared bandwidths concurrently (libcurl multi; light threads inside nginx where
-- cosockets are allowed, libcurl multi where they are not).
-- Per-id failures never raise: they are entries of the results.
-- @tparam {string,...} ids a list of bandwidth ids (an invalid one is a `usage` entry of the
--   results, nothing is sent for it; a repeated one is sent once)
-- @tparam[opt] table opts options of the batch:
-- @tparam[opt=8] integer opts.concurrency 1..64 requests in flight (and connections); with
--   AK/SK at most 4 (five refused signatures lock the key, and a key refused mid-batch is
--   refused for every request in flight)
-- @tparam[opt] boolean opts.missing_ok as for @{delete_bandwidth} (default: the client's)
-- @tparam[opt] function opts.on_result `function(i, id, result_or_error)` called as each id
--   finishes; returning @{eip.STOP} stops the batch (what is in flight finishes; a request still
--   connecting is held back, `not_sent`)
-- @tparam[opt] function opts.cancel `function()` asked between requests and at least every
--   0.25 s, backoffs included: "stop" (send no more, let what is in flight finish, hold back
--   what is still connecting) or "abort" (abort what is in flight too: `interrupted` entries,
--   `cancelled` ones for requests the transport had not sent yet); also while the client logs in
--   (IAM, the metadata service, the project's look-up), and once more before the delete that
--   waited for it: either answer
--   sends nothing more and ends a wait for another call's login, "abort" aborts the batch's
--   own login in flight over libcurl; with `wait`, also before each read of the wait and during its
--   pauses, where either ends the waiting at once (the ids not waited for get neither `waited`
--   nor `still_readable`). The client's `deadline` bounds each id's call, from its first send,
--   not the batch (see `deadline` below)
-- @tparam[opt] number opts.deadline seconds (0.001 to 86400) for the batch, from the call: no
--   request starts once less than 50 ms of it is left, first attempt or retry (the ids never sent
--   are `not_sent`, `stopped = "deadline"`; a retry not sent ends with its last error), what is
--   in flight then ends within its own `timeout` (not cut: a signed request cut is one without
--   an answer, counted towards the key's refusals), and a `wait` after the deletes reads no
--   further (the ids not read get a `not_sent` `wait_error`)
-- @tparam[opt] number opts.rate requests per second (0.001 to 1e6) for this batch (a token
--   bucket; default: the client's `rate`, if any). It replaces the client's rate, but not a budget shared with
--   other nginx workers (`rate_dict`): each request also takes its part of that. The reads of
--   `wait` keep to it (as the batch ended it: adapted) and to the client's
-- @tparam[opt=true] boolean opts.adaptive slow down on throttling answers (see the README's
--   Rate limits)
-- @tparam[opt] boolean|number opts.wait as for @{delete_bandwidth}, one time shared by the batch
--   (its ids waited for one after the other): each deleted id gets `waited`, or
--   `still_readable = true` when the time ran out while a read showed it, or `wait_error` when
--   no read got an answer (their last error; `not_sent` when the time was spent before its turn,
--   or a stop or a refused key left it unread, or an earlier read's answer, or the batch's last
--   throttling answer, asked not to come back before the end: its `cause`) (a repeated id is
--   waited for once, its positions get the same, and `summary.still_readable` counts bandwidths)
-- @treturn {table,...} results in input order: the result table @{delete_bandwidth} returns, or
--   the @{eip.error} (`ok = false`; kind `not_sent` or `interrupted` for ids a stop left)
-- @treturn table summary `{ deleted, missing, failed, not_sent, repeated, total, elapsed,
--   throttled, concurrency, concurrency_min, rate?, stopped?, still_readable? }`: `elapsed` is
--   the deletes' time in seconds (a `wait` after them not included: each id's `waited` says
--   it); `throttled` counts the throttling answers (429, the gateway's APIGW.0308 at any status, or a 503 whose
--   error code says busy or throttled);
--   `concurrency` is the number of requests allowed in flight at the end and `concurrency_min`
--   the lowest it fell to (adaptive throttling halves it; with AK/SK at most 4; both nil when no
--   id reached the queue: every id invalid, or the login or project lookup failed); `rate`
--   the requests per second at the end (the rate set, or the one adaptive throttling chose; nil
--   with neither); `stopped` why the batch stopped ("auth", "unanswered": the client stopped
--   signing (AK/SK) or logging in (IAM) after requests in a row got no answer, the first id
--   refused ends with that `refused` error and the ids after it are `not_sent`, "cancelled",
--   "aborted", "project": the project id could not be looked up, and no id was sent, "throttled": a
--   throttling answer asked not to come back within `retry_after_cap` seconds, by a longer
--   Retry-After or a stated limit of one request per longer than that, or "unavailable": a
--   server error the retry policy retries (a 5xx but 501 and 505) asked the same by a longer
--   Retry-After; after either, `wait` reads no more, or "exiting": inside nginx, the worker began
--   to exit (`nginx -s reload` or `-s quit`): what was in flight finished, nothing more started,
--   and a `wait` reads no more, or "deadline": the batch's `deadline` came)
-- @raise a `usage` @{eip.error} for the call itself (not a list, bad options); an error raised by
--   on_result, after the transfers in flight were aborted (nil or false: an `interrupted`
--   @{eip.error} saying so, which @{eip.could_have_acted} answers yes)
function Client:delete_bandwidths(ids, opts)
  local r = runner_of(self, "delete_bandwidths")
  -- Read once, as a plain copy, before its wait is looked at (batch.run checks it the same way).
  if opts ~= nil then opts = validate.options("options", opts, batch.OPTIONS) end
  local wait = opts and wait_of(opts.wait) or nil
  -- (inside nginx, a worker told to exit during the batch ends its wait too, as it stopped the
  -- batch: the exit's watch starts with the batch; started with the wait, it took the wait for
  -- work begun once the worker was exiting, and read on: errors.with_exit)
  local wait_cancel = wait and errors.with_exit(errors.guarded(opts.cancel, r.log, "cancel", "stop")) or nil
  local results, summary, pacing = batch.run(r, ids, opts)
  self.project_id = r.project_id
  if wait then
    -- One shared time budget: while the first id is still readable the others disappear too;
    -- within the batch's deadline, when it has one (past it, no id is waited for).
    local deadline = core.monotime() + wait
    local batch_end = pacing and pacing.deadline_at
    if batch_end and batch_end < deadline then deadline = batch_end end
    summary.still_readable = 0
    -- A delete (or, below, a read) the key was refused for: nothing more is signed, not even a
    -- wait's GET, whatever stopped the batch first (an on_result's STOP); each deleted id left
    -- gets a wait error that says so (not sent, its cause the refusal). So after a batch stopped
    -- by throttling it may not wait out (every read would be throttled, and count against the
    -- limit), or by a service unavailable for longer (every read would meet the outage): not
    -- sent, its cause that answer.
    local refused, why
    for _, res in ipairs(results) do
      if errors.is_error(res) then
        if retry.halts(res) then
          refused, why = res, "auth"
          break
        end
        local answer = res.kind == "not_sent" and res.cause or res -- (the ids a stop left: its cause)
        if not refused and errors.is_error(answer) and retry.not_soon(answer) then
          refused, why = answer, retry.not_soon(answer)
        end
      end
    end
    -- The result of each bandwidth waited for: a repeated id's later positions (copies of its
    -- result) get its outcome, neither waited for nor counted again.
    -- (the first id waited for reads once however short the wait, as a single call's does; a
    -- later one only with what is left of the batch's one time)
    -- (pacing: what the server asked of one id's reads holds for the next id's, as what it asked
    -- of the batch's last deletes holds for the first, and the reads keep to the batch's own
    -- rate, as its deletes did)
    local first, first_read, ended = {}, true, false
    for _, res in ipairs(results) do
      -- Ctrl-C (eip.core.catch_interrupts, as the eip command does), or the cancel option, ends
      -- the waiting at once: the deletes are done, and no id is worth another GET after it. (The
      -- later positions of an id waited for before still get its outcome.)
      if not ended and (core.interrupts() > 0 or (wait_cancel and wait_cancel())) then ended = true end
      -- (past the batch's deadline no id reads once more: its wait_error says the time was spent)
      if batch_end and core.monotime() >= batch_end then first_read = false end
      if res.deleted and not errors.is_error(res) and res.waited == nil then
        local earlier = first[res.bandwidth_id]
        if earlier then
          res.waited, res.still_readable = earlier.waited, earlier.still_readable
          res.wait_error = earlier.wait_error and errors.copy(earlier.wait_error)
        elseif ended then
          first[res.bandwidth_id] = res -- (not waited for: neither are its later positions)
        elseif refused then
          first[res.bandwidth_id] = res
          res.wait_error = errors.not_sent(ops.show_bandwidth(r.project_id, res.bandwidth_id), why, refused)
        else
          first[res.bandwidth_id] = res
          local ok, w = errors.held(bandwidths.wait_gone, r, r.project_id, res.bandwidth_id,
            math.max(0, deadline - core.monotime()), wait_cancel, first_read, pacing)
          first_read = false
          if ok then
            res.waited = w
          elseif errors.is_error(w) and w.kind == "wait_timeout" then
            res.waited, res.still_readable = w.waited, true
            summary.still_readable = summary.still_readable + 1
          elseif errors.is_error(w) and w.kind == "interrupted" then
            ended = true -- by Ctrl-C or cancel: this id and those after it were not waited for
          else
            res.wait_error = w
            if errors.is_error(w) and retry.halts(w) then refused, why = w, "auth" end
            if errors.is_error(w) and retry.not_soon(w) then refused, why = w, retry.not_soon(w) end
          end
        end
      end
    end
  end
  return results, summary
end

-- The options of show_bandwidth (each is documented there).
M.SHOW_OPTIONS = { cancel = true }
local SHOW_OPTIONS = M.SHOW_OPTIONS

--- Shows one bandwidth: `GET /v1/{project_id}/bandwidths/{id}`.
-- @tparam string bandwidth_id the bandwidth's id
-- @tparam[opt] table opts options of this call:
-- @tparam[opt] function opts.cancel `function()` asked before each attempt and during the
--   waits between them, and while the client logs in (then once more, before the GET);
--   true-ish (or raising) ends the call with an "interrupted" error, nothing more sent
-- @treturn table the bandwidth as the API returns it (id, name, size, share_type,
--   publicip_info = { {publicip_id, publicip_address, ...} }, status, ...): its strings as the
--   server sent them (pass them through @{clean} before showing them)
-- @treturn table `{ status, request_id, attempts, elapsed }` of the answer
-- @raise an @{eip.error}: `usage` (a bad id or option, nothing sent); `http` 404 `VPC.0306` when
--   it does not exist; an answer whose bandwidth has no id, or another's, is an `http` error,
--   "Unusable Answer"; `interrupted` (`cancelled = true`) when `cancel` said stop
function Client:show_bandwidth(bandwidth_id, opts)
  local r = runner_of(self, "show_bandwidth")
  r:id("bandwidth_id", bandwidth_id)
  local cancel
  if opts ~= nil then
    opts = validate.options("options", opts, SHOW_OPTIONS)
    cancel = opts.cancel
    if cancel ~= nil and type(cancel) ~= "function" then
      errors.raise_usage("cancel", "must be a function, got %s", type(cancel))
    end
    cancel = errors.guarded(cancel, r.log, "cancel", true) -- one that raises: stop
  end
  local project_id, deadline_at = project_for_call(self, r, cancel, bandwidth_id)
  return bandwidths.show(r, project_id, bandwidth_id, cancel, deadline_at)
end

-- The options of create_bandwidth (each is documented there).
M.CREATE_OPTIONS = { name = true, size = true, charge_mode = true }
local CREATE_OPTIONS = M.CREATE_OPTIONS

--- Creates a pay-per-use shared bandwidth: `POST /v2.0/{project_id}/bandwidths`. It is billed
-- while it exists. Never retried: a create whose answer was lost may still have happened.
-- @tparam table opts the bandwidth to create:
-- @tparam string opts.name 1-64 characters: ASCII letters and digits, `_`, `-`, `.` and
--   Chinese characters, U+3400..U+4DBF and U+4E00..U+9FFF, in UTF-8, as the API documents; any
--   other character is a usage error
-- @tparam integer opts.size Mbit/s, 1..2000 (the API's minimum is usually 5)
-- @tparam[opt] string opts.charge_mode "bandwidth" or "95peak_plus" (default: none sent, the
--   API's "bandwidth")
-- @treturn table the bandwidth as the API returns it (id, name, size, share_type = "WHOLE", ...)
-- @treturn table `{ status, request_id, attempts, elapsed }`
-- @raise an @{eip.error} (`usage` before anything is sent: a missing or bad option); an answer
--   whose bandwidth has no id the client takes (none, or not a string of id characters) is an
--   `http` error "Unusable Answer": a bandwidth may have been made, @{eip.could_have_acted} says so
function Client:create_bandwidth(opts)
  local r = runner_of(self, "create_bandwidth")
  opts = validate.options("options", opts, CREATE_OPTIONS)
  local name = validate.bandwidth_name("name", opts.name)
  local size = validate.integer("size", opts.size, 1, 2000)
  local mode = opts.charge_mode
  if mode ~= nil and mode ~= "bandwidth" and mode ~= "95peak_plus" then
    errors.raise_usage("charge_mode", "must be \"bandwidth\" or \"95peak_plus\"")
  end
  local project_id, deadline_at = project_for_call(self, r)
  local op = ops.create_bandwidth(project_id, name, size, mode)
  op.deadline_at = deadline_at
  local res = r:run(op)
  return res.bandwidth, res.meta
end

--- Lists bandwidths: `GET /v1/{project_id}/bandwidths`, following `marker` pagination to the
-- end (pages are requested until one comes back empty: one extra request, never a missed one).
-- A marker deleted between two pages (404 `VPC.0306`: a delete running beside the listing)
-- starts the listing again from its first page, 3 times at most: what the new pass lists is
-- the result (the marker's bandwidth is gone). The client's `deadline` is the whole listing's.
-- @tparam[opt] table opts filters:
-- @tparam[opt] string opts.share_type "WHOLE" (shared) or "PER" (dedicated)
-- @tparam[opt=1000] integer opts.limit the page size (1..2^31-1)
-- @tparam[opt] string opts.enterprise_project_id only this enterprise project's bandwidths ("0":
--   the default project's; "all_granted_eps": those of every enterprise project the user may see)
-- @tparam[opt] function opts.cancel asked before each page (and during the waits between
--   attempts, and while the client logs in): true-ish (or raising) ends the listing with an
--   "interrupted" error, nothing more sent
-- @treturn {table,...} the bandwidths, in the order the API returned them, their strings as the
--   server sent them (see @{clean})
-- @treturn table `{ pages, requests, attempts, elapsed, restarts, smaller_pages? }`:
--   `smaller_pages` is the page size the listing went on with after a page came back larger
--   than `max_body` (asked for again in pages half as long, down to one bandwidth)
-- @raise an @{eip.error}; a server that repeats a page, lists an id that is not one (it would
--   be the next page's marker), or answers something other than a list of bandwidths, is an
--   `http` error ("Unusable Answer"): nothing more is sent, and so is a listing past 100000
--   bandwidths or 384 MiB of pages weighed by what they decode to (a server whose pages never
--   end, or decode to far more than their bytes); the client's
--   `deadline` passing before a page: a `transport` error, reason "timeout", `not_sent`; the
--   404 of a fourth deleted marker
function Client:list_bandwidths(opts)
  local r = runner_of(self, "list_bandwidths")
  local query, limit
  query, limit, opts = bandwidths.list_query(given(opts, {}), r)
  local cancel = errors.guarded(opts.cancel, r.log, "cancel", true) -- one that raises: stop
  local project_id, deadline_at = project_for_call(self, r, cancel)
  return bandwidths.list(r, project_id, query, limit, cancel, deadline_at)
end

--- Removes EIPs from a shared bandwidth: `POST /v2.0/{project_id}/bandwidths/{id}/remove`, in
-- batches of at most 100. Each removed EIP gets its own dedicated bandwidth of `charge_mode`
-- and `size`, as the API does. A batch that fails after an attempt that may have acted
-- unanswered, or that the service refused with a 4xx other than 429, is checked with one GET of
-- the bandwidth (an EIP it no longer lists is `uncertain`: this call read nothing before, and it
-- may never have been in it); one that never reached the service, or was throttled, moved
-- nothing. Only 204 is success.
-- @tparam string bandwidth_id the shared bandwidth
-- @tparam table eip_ids a list of distinct EIP ids (strings, or `{ publicip_id=, publicip_type= }`
--   for IPv6 ports): keys exactly 1..n, an entry table with no other key
-- @tparam table opts the bandwidth each removed EIP gets (both required: it is billed):
-- @tparam string opts.charge_mode "bandwidth" or "traffic"
-- @tparam integer opts.size Mbit/s, 1..2000
-- @tparam[opt] function opts.on_batch `function(progress)` called after each batch with
--   `{ done, total, batch, batches }`; an error it raises stops the removal, raised as an eip
--   error (its own when it is one, else kind `interrupted` with `cause`) carrying `moved`,
--   `not_moved` and `stage = "remove"`
-- @treturn table `{ ok = true, bandwidth_id, removed = {ids}, requests, request_ids, attempts, elapsed }`;
--   `requests` counts the calls sent, each once whatever its retries: the remove calls and the GETs
--   that checked a failed one
-- @raise an @{eip.error}: `usage`, nothing sent (a bad id or option, `eip_ids` not such a list);
--   otherwise a remove call's error (`http`, `transport`, `proxy`, ...), or what `on_batch` raised
--   (an eip error as it is, anything else as `interrupted` with `cause`), with `moved`,
--   `not_moved`, `uncertain`, `batch` and `stage = "remove"`
function Client:remove_eips_from_bandwidth(bandwidth_id, eip_ids, opts)
  local r = runner_of(self, "remove_eips_from_bandwidth")
  r:id("bandwidth_id", bandwidth_id)
  validate.list("eip_ids", eip_ids, "EIP ids") -- no hole, no other key: none left out
  local entries = bandwidths.eip_entries(eip_ids, r)
  local terms = bandwidths.removal_terms(given(opts, {}), bandwidths.REMOVE_OPTIONS)
  local project_id, deadline_at = project_for_call(self, r, nil, bandwidth_id)
  return bandwidths.remove(r, project_id, bandwidth_id, entries, terms, nil, deadline_at)
end

--- What draining a bandwidth would do, read with one GET; nothing is changed.
-- @tparam string bandwidth_id the shared bandwidth
-- @tparam table opts the pay-per-use bandwidth each EIP would get:
-- @tparam string opts.charge_mode "bandwidth" or "traffic"
-- @tparam integer opts.size Mbit/s, 1..2000
-- @tparam[opt] function opts.cancel asked before the GET and during the waits between its
--   attempts, and while the client logs in: true-ish (or raising) ends the call with an
--   "interrupted" error, nothing more sent
-- @treturn table `{ bandwidth_id, bandwidth, eips = { {publicip_id, publicip_type,
--   publicip_address, ip_version} }, charge_mode, size, remove_calls, requests }`; `bandwidth` is
--   the API's object as sent (see @{clean}), `publicip_address` is set only when it is an IP
--   address, `ip_version` is the show's (4 or 6; none: 6 for a `5_dualStack` port, else 4) and
--   `publicip_type` "5_dualStack" for an IPv6 or dual-stack port (so it is removed);
--   `remove_calls` the remove calls a drain would send (100 EIPs each), `requests` those and its
--   delete (the drain's own GET aside)
-- @raise an @{eip.error}: `usage` (a bad id or option, nothing sent); the GET's errors, as
--   @{show_bandwidth} raises them (`interrupted`, `cancelled = true`, when `cancel` said stop);
--   kind `refused`, `stage = "show"` (reason "dedicated", "prepaid" with `order_id`, or "frozen":
--   any status but NORMAL, CREATING too, with `bandwidth_status`) when the bandwidth must not be
--   drained; an `http` error ("Unusable Answer") when an EIP id it lists is not an id or holds a
--   credential, its `billing_info` is neither a string nor none (whether it is prepaid cannot be
--   told), or its `share_type` or `status` is missing or no string
function Client:plan_drain(bandwidth_id, opts)
  local r = runner_of(self, "plan_drain")
  r:id("bandwidth_id", bandwidth_id)
  local terms = bandwidths.removal_terms(given(opts, {}), bandwidths.PLAN_OPTIONS)
  terms.cancel = errors.guarded(terms.cancel, r.log, "cancel", true) -- one that raises: stop
  local project_id, deadline_at = project_for_call(self, r, terms.cancel, bandwidth_id)
  return bandwidths.plan(r, project_id, bandwidth_id, terms, deadline_at)
end

--- Empties a shared bandwidth, then deletes it: shows it, removes every EIP it holds (see
-- `remove_eips_from_bandwidth`; each becomes a pay-per-use bandwidth of its own), then deletes
-- it. Refused (kind `refused`) after the show and before anything changes: a dedicated (PER),
-- a prepaid (yearly/monthly, `billing_info`) or a not NORMAL (frozen, or still CREATING) bandwidth, and one whose
-- plan `confirm` does not approve.
-- @tparam string bandwidth_id the shared bandwidth
-- @tparam table opts options of the drain:
-- @tparam string opts.charge_mode "bandwidth" or "traffic": the billing of the bandwidth each
--   removed EIP gets (required)
-- @tparam integer opts.size its Mbit/s, 1..2000 (required)
-- @tparam[opt] boolean opts.missing_ok as for @{delete_bandwidth}: also for a bandwidth deleted
--   meanwhile, whose remove call was answered 404 `VPC.0306` (`removed`: what the calls before moved)
-- @tparam[opt] function opts.on_batch as for @{remove_eips_from_bandwidth}
-- @tparam[opt] function opts.confirm `function(plan) -> boolean`, given the plan of
--   @{plan_drain} before anything changes; only `true` approves: anything else (false, nil,
--   a prompt's "n", an error it raises) refuses (reason "not_confirmed"), unless `cancel` says
--   stop by then (Ctrl-C at a prompt): kind `interrupted`, as after the show (the plan's EIPs in
--   `not_moved`, also when it stops the read after the approval); once approved, the
--   bandwidth is read again (a second GET), and EIPs changed meanwhile refuse (reason "changed")
-- @tparam[opt] boolean|number opts.wait as for @{delete_bandwidth}
-- @tparam[opt] function opts.cancel `function()` asked before the show's GET, after it, before each remove call
--   and the delete, and at least every 0.25 s of the waits before a retry (backoff, Retry-After,
--   the rate) and of `wait`, and while the client logs in: a true-ish answer (e.g. "stop", as
--   for @{delete_bandwidths}) sends nothing more, not even a GET, and raises an error of kind
--   `interrupted` (`cancelled = true`)
--   with `stage`, `moved`, `not_moved` and `uncertain` (a remove call stopped after an attempt
--   without an answer); during `wait`, as when the wait ends otherwise (`deleted = true`)
-- @treturn table the delete's result plus `removed` (EIP ids moved out) and `requests`: the
--   calls sent, each once whatever its retries (the show, two with `confirm`; the remove calls and
--   the GETs that checked a failed one; the delete), not the reads of `wait`
-- @raise an @{eip.error} carrying `stage` ("show", "remove" or "delete"), `moved` and `not_moved`
--   (but `usage`: a bad id or option, nothing sent); kind `refused` at stage "show", before
--   anything changes (reason "dedicated", "prepaid", "frozen", as for @{plan_drain}, or
--   "not_confirmed", "changed": see `confirm`); `interrupted` (`cancelled = true`) when `cancel`
--   said stop; at stage "show", nothing moved, an `http` error ("Unusable Answer") for an answer
--   @{plan_drain} cannot use (an EIP id that is not an id or holds a credential, a `billing_info`
--   neither a string nor none, a `share_type` or `status` that is no string);
--   a delete answered 400 or 409 is followed by one GET (best effort; the error stays the delete's): the
--   EIPs it lists that the drain did not move are in `not_moved`, with `changed = true` (false
--   when none), and those it moved but still lists are `uncertain`, not `moved`; with `wait`,
--   when the bandwidth was deleted but the wait ended first (kind `wait_timeout`, or
--   `interrupted` by Ctrl-C or, inside nginx, the worker's exit), `deleted = true`, `stage =
--   "wait"`, `moved` (every EIP moved out),
--   and `result`, the drain's result table
function Client:drain_and_delete_bandwidth(bandwidth_id, opts)
  local r = runner_of(self, "drain_and_delete_bandwidth")
  r:id("bandwidth_id", bandwidth_id)
  local terms
  terms, opts = bandwidths.removal_terms(given(opts, {}), bandwidths.DRAIN_OPTIONS)
  terms.cancel = errors.guarded(terms.cancel, r.log, "cancel", true) -- one that raises: stop
  local missing_ok = r.missing_ok
  if opts.missing_ok ~= nil then missing_ok = validate.boolean("missing_ok", opts.missing_ok) end
  local wait = wait_of(opts.wait)
  -- (inside nginx, the exit's watch for the wait starts with the call, as delete_bandwidth's: the
  -- drain's own steps are not stopped by it, EIPs moved out and their bandwidth not deleted
  -- would be new bills for nothing; errors.with_exit)
  local wait_cancel = wait and errors.with_exit(terms.cancel) or nil
  local project_id, deadline_at = project_for_call(self, r, terms.cancel, bandwidth_id)
  local res = bandwidths.drain(r, project_id, bandwidth_id, terms, missing_ok, deadline_at)
  if not wait then return res end
  local ok, value = errors.held(waited, r, project_id, res, wait, wait_cancel)
  if ok then return value end
  if errors.is_error(value) and value.deleted == true then
    -- Deleted, and the wait ended first: what the drain did stays on the error (the EIPs it
    -- moved out each have a bandwidth, and a bill, of their own now).
    value.stage, value.moved, value.not_moved, value.uncertain, value.result = "wait", res.removed, {}, {}, res
  end
  error(value, 0)
end

--- Releases the client's connections now rather than at garbage collection. The client is
-- closed at once: any later call on it is a usage error. A call of the client's running meanwhile
-- (a close from its hook, its `log`, its `sleep` between retries, a `cancel`, a drain's `confirm`
-- or `on_batch`, a batch's `on_result`, or another coroutine while the call waits in a
-- scheduler) is not broken: it runs to its end as if nothing had happened (a drain goes on
-- moving EIPs and deletes the bandwidth), and the connections are released once the last such
-- call returns or raises; one whose coroutine ended inside it (coroutine.close) is not waited
-- for, one suspended for good (dropped, an nginx request killed) leaves them to the garbage
-- collector. Closing twice is harmless. Returns nothing. A `transport` of the caller's whose
-- `close` raises does not make it raise: what it raised goes to the debug log (`log`, `debug`),
-- redacted.
-- @raise a `usage` @{eip.error} when called on something that is not a client
--   (`client.close()` with a dot)
function Client:close()
  local r = runners[self]
  if not r then runner_of(self, "close") end
  if self.closed then return end
  self.closed = true
  r:close()
end
-- Lua 5.4's `local client <close> = eip.new{...}` closes the client as its block ends, as
-- close() does (an error leaving the block included).
Client.__close = Client.close

-- Every other public method that sends runs counted as a call of the client's (see
-- Runner:counted), its checks included, so that a close() made while it runs waits for it:
-- code of the caller's runs between its requests (hooks, sleeps, cancel, confirm, on_batch,
-- on_result). (delete_bandwidth counts itself: its common case is counted only past the lane.)
for _, name in ipairs{ "authenticate", "delete_bandwidths", "show_bandwidth", "create_bandwidth",
    "list_bandwidths", "remove_eips_from_bandwidth", "plan_drain", "drain_and_delete_bandwidth" } do
  local method = Client[name]
  Client[name] = function(self, ...)
    return runner_of(self, name):counted(method, self, ...)
  end
end

M.VERSION = VERSION
M.USER_AGENT = USER_AGENT
M.STOP = batch.STOP
M.SIGNED_IN_FLIGHT_MAX = pipeline.SIGNED_IN_FLIGHT_MAX
return M
