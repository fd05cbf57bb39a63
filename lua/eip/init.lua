--- Huawei Cloud EIP shared-bandwidth operations from Lua 5.1 to 5.4, LuaJIT and OpenResty.
--
--     local eip = require "eip"
--     local client = eip.new{ region = "cn-north-4", project_id = "...", token = os.getenv("OS_AUTH_TOKEN") }
--     local ok, res = pcall(client.delete_bandwidth, client, id)
--     -- (only the service's own 404 says so: a gateway's APIGW.0101 is a wrong endpoint)
--     if not ok and eip.is_error(res) and res.status == 404 and res.code == "VPC.0306" then print("already gone") end
--
-- Every failure is raised as an @{error} table. The methods of a client are on the
-- @{eip.client} page; @{eip.transport} holds the transport contract, and @{eip.cli} the
-- `eip` command.
-- @module eip

-- The C core first, with a hint when it is missing: from a checkout it is built per interpreter
-- (build/<lua>/eip/core.so), and a bare "module 'eip.core' not found" does not say so.
local core do
  local ok, loaded = pcall(function() return require "eip.core" end)
  if not ok then
    local why = tostring(loaded)
    if why:find("module 'eip.core' not found", 1, true) then
      local tag = rawget(_G, "jit") and "luajit" or "lua" .. _VERSION:match("%d+%.%d+")
      why = "eip: the C core (eip.core) for " .. tag .. " is not on package.cpath: install the rock"
        .. " (luarocks make), or in a checkout run `make LUA=" .. tag .. "` and add build/" .. tag
        .. "/?.so to LUA_CPATH\n" .. why
    end
    error(why, 0)
  end
  core = loaded
end
local client = require "eip.client"
local errors = require "eip.errors"
local validate = require "eip.validate"
local retry = require "eip.retry"

local M = {}

--- The version of lua-eip, such as "0.1.0"; requests carry `User-Agent: lua-eip/<version>`.
M._VERSION = client.VERSION

--- A new client. Options are validated before anything is sent, and unknown ones are a usage
-- error, so a typo fails loudly. No connection is made until the first call. Credentials and
-- the endpoint may come from the official SDKs' environment variables instead.
-- @function new
-- @tparam table opts the options:
-- @tparam[opt] string opts.endpoint `http(s)://host[:port][/base-path]`; exclusive with `region`
-- @tparam[opt] string opts.region e.g. "cn-north-4" for `https://vpc.cn-north-4.myhuaweicloud.com`
--   (default: `HUAWEICLOUD_SDK_REGION`)
-- @tparam[opt] string opts.project_id 1-64 characters of `[A-Za-z0-9._-]` (default: the
--   profile file's when the keys come from it, `HUAWEICLOUD_SDK_PROJECT_ID` with a token or the
--   environment's keys, the token's scope with `auth`, else looked up by region for AK/SK); with
--   `auth.project_id`, that id (the token is scoped to it: another is a usage error)
-- @tparam[opt] string opts.token an IAM token, sent as `X-Auth-Token` (default: `OS_AUTH_TOKEN`)
-- @tparam[opt] string opts.ak access key: with `sk`, every request is signed (SDK-HMAC-SHA256)
--   (default: `HUAWEICLOUD_SDK_AK`)
-- @tparam[opt] string opts.sk secret key (default: `HUAWEICLOUD_SDK_SK`)
-- @tparam[opt] string opts.security_token the security token of temporary AK/SK credentials
--   (default: `HUAWEICLOUD_SDK_SECURITY_TOKEN`)
-- @tparam[opt] table opts.auth IAM password authentication: `{ username, password, domain,
--   project (a name) or project_id, iam_endpoint? }`; the token is fetched on first use and
--   fetched again once when the API answers 401
-- @tparam[opt=30] number opts.timeout seconds for one attempt, the whole request (0.001 to 86400)
-- @tparam[opt] number opts.connect_timeout seconds to connect, 0.001 to 86400 (default: min(10, timeout))
-- @tparam[opt] number opts.deadline seconds (0.001 to 86400) for a whole call, every attempt and wait included
--   (in `delete_bandwidths`, each id's call, counted from its first send; the batch's own
--   `deadline` bounds the batch as a whole)
--   (the waits for the `rate` too: a slot it would pass is not waited for; and the time its
--   credentials take: an IAM token fetched for its attempt, a first call's project lookup; not
--   the new login after a 401, which has a deadline of its own). A drain, and a remove of more
--   than one call, are several requests that each change something: there each request (a GET,
--   a remove call, the delete) has the deadline, so that no drain is cut off by its clock
--   between moving EIPs out and deleting; stop one with its `cancel`
-- @tparam[opt=100] integer opts.low_speed_limit with `low_speed_time`: abort an attempt slower
--   than this many bytes/s (0 to 1e9) ...
-- @tparam[opt=10] integer opts.low_speed_time ... for this many seconds, 0 to 86400 (0 turns it off)
-- @tparam[opt=3] integer opts.max_attempts attempts per call, 1 to 20 (the README's Retries)
-- @tparam[opt=0.5] number opts.backoff_base seconds (0 to 60): exponential backoff with full jitter
-- @tparam[opt=8] number opts.backoff_cap seconds (0 to 3600): the longest backoff
-- @tparam[opt=30] number opts.retry_after_cap seconds (0 to 3600): a longer `Retry-After` is not waited for,
--   the error is raised with `retry_after` set; also the longest wait for the window of a limit a
--   throttling answer states ("limit:600,time:1 minute")
-- @tparam[opt] function opts.sleep `function(seconds)` used for every pause: between attempts,
--   and the waits for the `rate` and a throttling answer's window (default: the C core's
--   nanosleep; `ngx.sleep` where nginx can yield). It must sleep the time it is given: a pause
--   counts as over once it returns (a sleep that returns early, woken by a scheduler, sends the
--   next request early, and a `rate` is not kept)
-- @tparam[opt=false] boolean opts.missing_ok the EIP service's 404 `VPC.0306` on a delete of an
--   id shaped like a bandwidth id (a lower-case UUID) is a result `{ ok = true, deleted = false,
--   project_id }` instead of an error (each call may override it)
-- @tparam[opt=1048576] integer opts.max_body bytes of response body kept (1 KiB to 64 MiB); the
--   transfer is cut beyond it and the error's `truncated` set
-- @tparam[opt] string opts.ca_file a PEM bundle to verify servers with (default: the system
--   store; inside nginx, cosockets use `lua_ssl_trusted_certificate`)
-- @tparam[opt=false] boolean opts.insecure true disables TLS certificate and host verification
-- @tparam[opt=false] boolean opts.debug true writes every request and answer to stderr,
--   credentials redacted
-- @tparam[opt] function opts.log `function(line)` receiving the debug lines instead of stderr
--   (what it raises is ignored). Given one, the lines go to it whatever `debug` says (`debug =
--   false` does not turn them off): every request and answer, redacted, and the warnings
-- @tparam[opt] string|boolean opts.proxy `"http://[user:pass@]host:port"`: every request but
--   loopback, 0.0.0.0, :: and link-local ones goes through this proxy (https ones through CONNECT),
--   the environment unread; false: no proxy at all (default: the environment, `https_proxy`,
--   `http_proxy`, ... minus `no_proxy`, as curl reads it)
-- @tparam[opt] table opts.transport an object honouring the @{eip.transport} contract (default:
--   the transport for where the code runs)
-- @tparam[opt] string|boolean opts.metadata_url the ECS metadata service, asked for temporary
--   keys only when no credential is found anywhere else (default: `EIP_METADATA_URL`, else
--   `http://169.254.169.254`); false: never
-- @tparam[opt] number opts.rate requests per second (0.001 to 1e6): a token bucket spaces every request the
--   client sends, retries included
-- @tparam[opt=1] integer opts.burst with `rate` (without it a usage error): how many may go back
--   to back, 1 to 1e6
-- @tparam[opt] string opts.rate_dict with `rate`, inside nginx: the lua_shared_dict that holds the
--   bucket, shared by every worker (without `rate`, or naming no dict of this nginx: a usage error)
-- @tparam[opt] string opts.signing_dict inside nginx: the lua_shared_dict where every worker counts
--   its signed requests in flight and refused signatures per AK/SK key (eip.signing), so that the
--   workers together keep to one client's four and three; with an IAM password (`auth`), where
--   they share what IAM said (a refusal, a login without an answer) and log in one at a time
--   until a login has passed; checked whatever the credentials, unused with a token (outside
--   nginx, or naming no dict of this nginx: a usage error)
-- @tparam[opt] function opts.clock `function()` returning seconds, for the rate (default: a
--   monotonic clock; tests pass their own). Read once here: one that raises or returns no number
--   is a usage error. One that breaks later is logged, and the library's clock goes on from its
--   last reading (a delete already sent is never reported as a usage error)
-- @tparam[opt] function opts.on_request `function(info)` before each attempt of every request
--   the client makes: `{ operation, method, path, bandwidth_id, attempt }`, never a secret
-- @tparam[opt] function opts.on_response `function(info)` after each attempt: the same and
--   `status, code, outcome ("ok", "http", the transport kind, "proxy", "interrupted", or
--   "not_sent" with `not_sent = true` for a request a batch dropped before any of it was sent),
--   elapsed, bytes, request_id, retry` (another attempt is planned), `resent` (sent twice: a
--   kept-alive connection died unanswered); a hook that raises does not break the call. An attempt whose
--   caller went away with it in flight (inside nginx a request that ended: its client hung up,
--   an ngx.exit; elsewhere a coroutine closed or collected) gets it once its timeout and a second
--   have passed, at the client's next call or from a timer inside nginx: "interrupted",
--   `abandoned = true`, no status, no elapsed
-- @treturn eip.client the client; its fields (read them, never set them): `endpoint`, `project_id`
--   (nil until learnt, without one given), `auth` (how it authenticates: "token", "aksk", "iam" or
--   "metadata"; "aksk" and "metadata" sign, at most four requests in flight), `transport`
-- @raise a `usage` @{error} naming the bad or missing option (`argument`); nothing is sent. A
--   `transport` @{error} (reason "other", `unsent`) when the C core cannot make its libcurl
--   handle (memory running out)
-- (one parameter only: client.new's second is the tests' stand-in for os.getenv)
M.new = function(opts) return client.new(opts) end

--- The secret values a client made with `opts` would know before it sends anything, for output
-- of your own to redact before a client exists (the `eip` command registers them before it reads
-- its arguments): the options `token`, `sk`, `security_token`, `auth.password` and the proxy's
-- credentials; else, where the client would look, the environment's token, SK, security token
-- and proxy credentials, and the profile file's `sk` and `security_token`. Nothing is sent; a
-- profile file that cannot be read adds none (`eip.new` says why). They are the caller's own
-- values: never log the list.
-- @function known_secrets
-- @tparam[opt] table opts the options `eip.new` would take (default: none: the environment and
--   the profile file)
-- @treturn {string,...} the values, each non-empty (a proxy's userinfo also as its user and its
--   password, decoded)
-- @raise never
M.known_secrets = function(opts) return client.known_secrets(opts) end

--- Is `value` an error raised by lua-eip? Its errors are tables sharing one metatable.
-- @function is_error
-- @tparam any value anything, typically what `pcall` returned
-- @treturn boolean true for an @{error} of lua-eip, false for anything else
-- @raise never
M.is_error = errors.is_error

--- Is `err` a definite authentication or authorisation failure, after which a script deleting
-- one id after another should stop (as a batch does: five failed AK/SK signatures in a row lock
-- the key)? A 401, the gateway's refused signature (APIGW.0301, APIG.0301) at any status, a 403
-- with a gateway code or one refusing the account (VPC.0008, VPC.2701, VPC.0502; not a policy's
-- refusal of one resource), a refused IAM login, no credentials
-- found anywhere, a proxy's 407.
-- @function is_auth_failure
-- @tparam any err what `pcall` returned, typically an @{error}
-- @treturn boolean
-- @raise never
M.is_auth_failure = function(err)
  if type(err) ~= "table" then return false end
  -- (a table that is no eip error is read raw: its __index may raise)
  return retry.halts(errors.is_error(err) and err or errors.raw_fields(err))
end

--- Could the failed call that raised `err` have been carried out all the same (a delete that
-- may have deleted)? Yes after a timeout, a reset, a garbled answer, a 5xx, an aborted
-- request, an earlier attempt of the call left unanswered, or anything unknown; no for what
-- says nothing happened: an answered 4xx, a request that never reached the API (DNS, connect,
-- TLS, the proxy; a timeout or reset the transport saw before the request went out, `unsent`),
-- one never sent (`not_sent`), a usage error, a refusal. For a drain's error,
-- by its step (`stage`): nothing after its show; after a remove call, only when EIPs are
-- `uncertain`. An error of `wait` after the delete's 204 (`deleted = true`): yes, it acted. What
-- `eip` prints as FAILED? rather than FAILED: check before a retry. A value
-- that is no table (a raw error a bug raised) is unknown: yes; but nil and false (no error): no.
-- A table that is no eip error (one decoded from the command's `--json`) is read raw.
-- @function could_have_acted
-- @tparam any err an @{error}, typically what `pcall` returned
-- @treturn boolean
-- @raise never
M.could_have_acted = errors.could_have_acted

--- The seconds the server asked to wait before a failed call is tried again: the error's
-- `retry_after`, read as the library reads it (delta-seconds, or an HTTP-date against the
-- answer's own `Date`, the error's `date`; repeated values: the longest), for a caller that
-- retries on its own (or relays it: the OpenResty example's 503).
-- @function retry_after
-- @tparam any err an @{error} (anything else, or an error without a usable `Retry-After`: nil)
-- @treturn ?number seconds, 0 or more; `math.huge` for a wait too long to be meant
-- @raise never
function M.retry_after(err)
  if type(err) ~= "table" then return nil end
  local v, date = rawget(err, "retry_after"), rawget(err, "date")
  return retry.parse_retry_after(v, os.time(), type(date) == "string" and date or nil)
end

--- Would `missing_ok` take `err` (raised by a read or a delete of the bandwidth `bandwidth_id`)
-- as "already gone"? Only the EIP service's 404 VPC.0306, for an id shaped like the ids the cloud
-- gives bandwidths (a lower-case UUID), in a body that is that error document whole: never the
-- gateway's 404 (a wrong endpoint or path), an unknown code, a name, or a body with more after
-- its JSON value or cut at `max_body` (`trailing`, `truncated`). The rule of delete_bandwidth's
-- `missing_ok`, for callers that read first (a drain's plan).
-- @function is_missing
-- @tparam table err an @{error}
-- @tparam string bandwidth_id
-- @treturn boolean
-- @raise never
function M.is_missing(err, bandwidth_id)
  return errors.is_error(err) and errors.missing(err, bandwidth_id)
end

--- Signs a request as the official SDKs do (SDK-HMAC-SHA256, AK/SK): for requests made with
-- another HTTP client. `Host` is taken from the URL unless `headers` has one: its host, with the
-- port only when it is not the scheme's default (curl and Python send `Host` without `:443` or
-- `:80`; a client that keeps it must pass `headers.Host` as it sends it).
-- @function sign
-- @tparam table opts what to sign:
-- @tparam string opts.method the HTTP method, in upper case as it is sent, e.g. "DELETE"
-- @tparam string opts.url the absolute http(s) URL, query included (a path holding an encoded
--   slash, `%2F`, is a usage error: signers split such a path differently)
-- @tparam table opts.headers name = value; must hold `X-Sdk-Date` (`YYYYMMDDTHHMMSSZ`, UTC: a
--   date and time that exist, no month 13 or 24 o'clock)
-- @tparam[opt] table opts.query more query parameters, name = value
--   (values of `headers` and `query` are strings, or whole numbers below 2^53 signed as their
--   digits, `10.0` as `10` on every Lua version; any other number is a usage error)
-- @tparam[opt] string opts.body the request body (signed as its SHA-256, unless `headers` declare
--   one: a non-empty `X-Sdk-Content-Sha256` is signed as its value, as the official SDKs do)
-- @tparam string opts.ak the access key
-- @tparam string opts.sk the secret key
-- @treturn string the `Authorization` header value
-- @treturn string the canonical request (for debugging): the method, the path, the sorted query,
--   each signed header (every one of `headers` whose name has no `_`, and `Host`) as
--   `name:value`, the signed header names, and the body's SHA-256 (or the declared one). It
--   never holds the SK, but it holds those header values verbatim: with an `X-Security-Token` in
--   `headers` (temporary keys) it holds that token, a secret not to log
-- @raise a `usage` @{error} for a missing or malformed option (a canonical request longer than
--   1 MiB: the one of `url`, `query` and `headers` that gives it the most bytes)
M.sign = require("eip.sign").sign

--- What a batch's `on_result` returns to stop it (see @{eip.client:delete_bandwidths}).
M.STOP = client.STOP

--- How many requests a client that signs (AK/SK, the metadata service's keys) keeps in flight at
-- most, whatever a batch's `concurrency` (the README's Safety: five refused signatures in a row
-- lock the key).
M.SIGNED_IN_FLIGHT_MAX = client.SIGNED_IN_FLIGHT_MAX

--- What an error code means: the error-code table's row for it (for `status`, when given), with
-- what the retry policy decides about it.
-- @tparam string code e.g. "VPC.0306" (exact, case included)
-- @tparam[opt] integer status the answer's status, to pick the code's row for it
-- @treturn ?table `{ code, status, module, message, description_zh, handling_zh, advice, kind,
--   transient, retryable, variants = {...} }`, or nil for a code the table does not know, or
--   does not document with `status` (what a code means with one status is not what it means
--   with another: VPC.0306 with a 500 is no "no such bandwidth"; `eip.error_code(code)` still
--   gives its rows, `variants`)
-- @raise a `usage` @{error} when code is not a string, or status not an integer 100..599
function M.error_code(code, status)
  if type(code) ~= "string" then errors.raise_usage("code", "must be an error code string such as \"VPC.0306\"") end
  if status ~= nil then status = validate.integer("status", status, 100, 599) end
  local entry = core.error_code(code, status)
  -- (core.error_code falls back to the code's row of the status's class, else its first: the
  -- retry policy's reading)
  if entry and status ~= nil and entry.status ~= status then return nil end
  if entry then
    entry.retryable = retry.retryable{ kind = "http", code = code, status = status or entry.status }
  end
  return entry
end

--- A metrics set for dashboards: pass its `on_response` to `eip.new`, render it for
-- Prometheus. See the README's Observability.
-- @function metrics
-- @tparam[opt] table opts options:
-- @tparam[opt] string opts.dict inside nginx, the lua_shared_dict to count in (every worker
--   counts together); default: this Lua state
-- @treturn table `{ on_response = function(info), render = function(self) -> text,
--   observe = function(self, info) }`: `on_response` (and `observe`) count an attempt, and
--   ignore an `info` that is no table or whose metamethods raise, and one with `not_sent`;
--   `render` returns the Prometheus text format (version 0.0.4), one sample per line. Neither
--   method raises, but a `usage` @{error} when called with a dot (`metrics.render()`)
-- @raise a `usage` @{error} naming `options` when opts is neither nil nor a table or has an
--   option other than `dict`, or naming `dict` when it is not a non-empty string or names no
--   lua_shared_dict of this nginx (outside nginx: any dict)
M.metrics = require("eip.metrics").new

--- The regions the client knows (the official SDKs' VPC table), sorted by name: where the VPC
-- (EIP) API and IAM answer in each.
-- @function regions
-- @treturn {table,...} `{ name, vpc_endpoint, iam_endpoint }` entries (copies)
-- @raise never
M.regions = require("eip.regions").list

--- An error raised by lua-eip: a table (never a string) whose `tostring` is one line a
-- person can act on, with the fields a script branches on. The fields a kind does not
-- concern are nil. Secrets never appear in it.
-- @table error
-- @tfield string kind "usage" (bad arguments: nothing was sent), "http" (the server answered
--   non-2xx, or a 2xx the call cannot use: reason "Unusable Answer"), "transport" (no usable
--   answer), "proxy" (the proxy failed: it was never an answer of the API), "refused" (the client
--   refused to act after reading the resource, or to sign after signed requests in a row got no
--   answer: reason "unanswered"), "not_sent" (a batch stopped before this id),
--   "interrupted" (aborted in flight, or stopped by a `cancel` function before its next request:
--   `cancelled = true`), "wait_timeout" (deleted, but still readable when `wait` ended),
--   "credentials" (the credentials in use could not be renewed: the ECS metadata service gave
--   no new temporary keys; nothing was sent, `cause` is its error, `retryable` when that is)
-- @tfield integer status the HTTP status (`http`)
-- @tfield string reason its reason phrase (`http`); the transport kind (`transport`: "dns",
--   "connect", "timeout", "reset", "tls", "protocol" or "other"); what the proxy did (`proxy`:
--   "auth" for its 407, "status" for another refusal of CONNECT, "connect", "dns"); why
--   (`refused`: "dedicated", "prepaid", "frozen", "not_confirmed", "changed" or "unanswered")
-- @tfield string code the error code of the body, e.g. "VPC.0306" (`http`)
-- @tfield string code_kind what the error-code table says of that code for that status
--   (`http`, a code the table documents with that status; none for a code it has with other
--   statuses only: VPC.0306 is "not_found" with a 404, nothing with a 500): "not_found", "auth",
--   "permission", "config", "invalid_input", "conflict", "quota", "busy", "throttled" or "backend"
-- @tfield string message the body's message (one sent as a JSON object or list: as compact
--   JSON), or what went wrong
-- @tfield string raw_message the body's message as sent (a JSON object: as compact JSON), when it
--   was itself a JSON error document (the service wraps Neutron's that way) and `message` is the
--   message inside it (`http`)
-- @tfield string encoded_authorization_message the body's encoded explanation of a policy's
--   denial, when it has one (`http`; the official SDKs read it: IAM's tools decode it)
-- @tfield string details the body's `details`, when it has them, as compact JSON (`http`)
-- @tfield boolean retryable true when the same request may succeed later
-- @tfield string request_id `X-Request-Id` of the answer: quote it to support
-- @tfield string advice what to do about it (from the error-code table for a code it documents
--   with that status, else the status table; for a code documented with other statuses only, the
--   status's advice, then a sentence naming them)
-- @tfield string class the class of the status: "client_error", "server_error", ...
-- @tfield string description what the status means (from the status table), or, for a code the
--   error-code table documents with that status, "operation: its documented message"
-- @tfield string description_zh the error-code table's Chinese description of the code (`http`,
--   a code the table documents with that status)
-- @tfield string retry_after the `Retry-After` header, when the server sent one (sent more than
--   once: its values joined with ", ", of which the longest wait counts)
-- @tfield string date the answer's `Date` header, when it sent one beside a `Retry-After` (`http`;
--   absent without one): the server's clock, against which an HTTP-date `retry_after` is read
--   (when it is an HTTP-date itself)
-- @tfield boolean throttled_beyond true on a throttling answer that asked not to come back within
--   `retry_after_cap` (a longer Retry-After, or a stated limit of one request per longer than
--   that): not retried; a batch starts nothing more after it, a wait reads no more
-- @tfield boolean unavailable_beyond true on a server error the retry policy retries (a 5xx but
--   501 and 505, not throttling) whose Retry-After is longer than `retry_after_cap` (RFC 9110: how
--   long the service expects to be unavailable): not retried; a batch starts nothing more after
--   it, a wait reads no more, as after `throttled_beyond`
-- @tfield boolean truncated the body went past `max_body` and was cut
-- @tfield boolean trailing the error body went on after its JSON value (a second value, text):
--   its code and message are that first value's, as the official Go SDK reads them, but its 404
--   never says that anything is gone, nor does one cut at `max_body` (`http`)
-- @tfield string method the method of the request
-- @tfield string path the path of the request (no host, no query)
-- @tfield string bandwidth_id the bandwidth concerned, on errors the library makes beyond an
--   attempt's failure: `not_sent`, `interrupted`, `wait_timeout`, a call that sent nothing
--   (`not_sent = true`), and drain, remove and wait errors (with `stage`); an `http`,
--   `transport` or `proxy` error of an attempt has it only in its `path`
-- @tfield integer attempts the attempts the call made (the transport's own resend of one, on a
--   new connection after a kept-alive one died unanswered, counts with it: see `resent`)
-- @tfield number elapsed seconds the call took
-- @tfield string argument the offending argument (`usage`)
-- @tfield integer curl_code libcurl's code (`transport`, `proxy`; see @{eip.transport})
-- @tfield string curl_error libcurl's text for it (`transport`, `proxy`)
-- @tfield string proxy the proxy the request went through, as "host:port" (never its
--   credentials): always on `proxy` errors, and on `transport` errors of a proxied request
-- @tfield integer proxy_status the status the proxy answered (`proxy`, reasons "auth": 407, and
--   "status")
-- @tfield boolean unsent true on a `transport` error whose request never went out (the
--   transport says so: a connect or TLS handshake that failed or timed out, a proxy's tunnel
--   that was not made, a name that did not resolve): whatever its `reason` (a "timeout" too), the
--   service cannot have acted on that attempt, and @{could_have_acted} says no unless an
--   earlier attempt may have. `tostring` says "[not sent]" after the curl code. Absent when any
--   of it may have gone out (and with libcurl before 7.80, which cannot tell)
-- @tfield boolean earlier_unanswered an earlier attempt of the same call got no usable answer (a
--   timeout, a reset, a 5xx) and may have been carried out: set on the final error, whatever
--   its kind
-- @tfield boolean lost_answer a delete's 404 VPC.0306 that came after an attempt without an
--   answer: the bandwidth is gone, most likely deleted by that attempt (`http`; also on the
--   `missing_ok` result made of it)
-- @tfield string stage the step of a drain (@{eip.client:drain_and_delete_bandwidth}) that
--   failed or was stopped: "show", "remove" or "delete"; "remove" also for
--   @{eip.client:remove_eips_from_bandwidth}; "wait" when the bandwidth was deleted but its `wait`
--   failed (`deleted = true`): a delete's read refused for authentication (or a usage error),
--   and any error ending a drain's wait
-- @tfield {string,...} moved EIP ids moved out of the bandwidth, each now billed on its own
--   (drain and remove errors, with `stage`); a drain's also holds one the GET after a failed
--   remove call no longer lists, which may instead have been released meanwhile (no bill)
-- @tfield {string,...} not_moved EIP ids still in the bandwidth (drain and remove errors, with
--   `stage`)
-- @tfield {string,...} uncertain EIP ids of a failed or stopped remove call whose outcome nobody
--   can tell (remove errors, stage "remove"); on a drain's delete answered 409, those moved out
--   (their remove call answered 204) that the GET after it still lists; an empty list otherwise
-- @tfield boolean changed on a drain's delete answered 409 (stage "delete"): true when the GET
--   sent after it lists EIPs the drain did not move (added since its plan was read: in
--   `not_moved`), false when it lists none such; nil when that GET failed or was not sent
-- @tfield integer batch the remove call (1 for the first 100 EIPs, ...) that failed or was
--   stopped (stage "remove")
-- @tfield string order_id the order of a prepaid bandwidth (`refused`, reason "prepaid")
-- @tfield string bandwidth_status the status of a bandwidth that is not NORMAL (`refused`, reason
--   "frozen")
-- @tfield boolean deleted true when the delete itself went through (204) although the call
--   failed: `wait_timeout`, an `interrupted` wait, and an error of stage "wait"
-- @tfield number waited seconds waited for the deleted bandwidth to disappear (`wait_timeout`)
-- @tfield boolean not_sent true for an id a batch never sent (`not_sent`, with `stopped` and
--   `cause`), and for a call that sent nothing (a refused key's copy; credentials not renewed,
--   kind `credentials`; a `deadline` that would pass
--   before the `rate` or room among the signed requests in flight lets it go: kind `transport`,
--   reason "timeout"; a `cancel` before the first attempt)
-- @tfield string stopped why a batch stopped: "auth", "unanswered" (the client signs, or logs
--   in, no more for now: signed requests or logins in a row got no answer; the first id refused
--   is the `cause`), "cancelled", "aborted", "project", "throttled" (a throttling answer asked
--   not to come back within `retry_after_cap` seconds: a longer Retry-After, or a stated limit
--   of one request per longer than that), "unavailable" (a server error asked the same by a
--   longer Retry-After: `unavailable_beyond`), "exiting" (inside nginx, the worker began to
--   exit: a reload or a graceful stop) or "deadline" (the batch's `deadline` came) (on `not_sent`
--   entries, on the last error of ids whose retry was waiting when it stopped, and on the
--   `wait_error` of deleted ids a batch's wait read no more after it)
-- @tfield boolean cancelled true for a call a `cancel` function stopped (`interrupted`), with
--   `cause` (the last attempt's error) and `earlier_unanswered` (an attempt may have acted)
-- @tfield table result the drain's result table, on an error of stage "wait" of
--   @{eip.client:drain_and_delete_bandwidth} (the bandwidth was deleted)
-- @tfield boolean ok false on the errors in a batch's results (its results hold `ok = true` ones)
-- @tfield any cause what led to this one: the error that stopped the batch (`not_sent`), the last
--   attempt's error (a `cancelled` call), the metadata service's error (`credentials`, and the
--   `usage` error of no credentials found), the failed remove call's error (a drain stopped before
--   the GET that would check it), or the value raised by `on_batch` when it was not an eip error

-- A status entry of the C table (facts: reason, class, descriptions, advice) with what the
-- retry policy decides about it.
local function with_policy(entry)
  entry.retryable = retry.status_retryable(entry.code)
  return entry
end

-- The codes eip.status answers for: those the C core looks up as they are (l_status in
-- src/eip_core.c asks for anything beyond +-1e6 as -1, an "unknown" entry of another code).
local STATUS_MIN, STATUS_MAX = -1000000, 1000000

--- The entry of the status table for an HTTP status code: what it means for this API.
-- @tparam integer code an HTTP status code, -1000000..1000000 (an integral float such as 404.0
--   is accepted)
-- @treturn table `{ code, reason, class, retryable, description, description_zh, advice, seeds,
--   documented, seed_name? }`; a code the documents do not list gets its class's generic entry
--   (`documented = false`, e.g. "Unknown Client Error"; class "unknown" outside 100..599);
--   `seed_name` is the name a seed document gives the status where it differs from `reason`
--   ("NotFound", "overLimit")
-- @raise a `usage` @{error} naming `code` when it is not an integer in -1000000..1000000: not a
--   number, a fraction, NaN, an infinity, or beyond that range (the message shows the number)
function M.status(code)
  if type(code) ~= "number" then
    errors.raise_usage("code", "must be an integer HTTP status, got %s", type(code))
  end
  -- NaN fails every comparison, an infinity the range, a fraction the floor.
  if not (code >= STATUS_MIN and code <= STATUS_MAX and code == math.floor(code)) then
    errors.raise_usage("code", "must be an integer HTTP status (%d..%d), got %s", STATUS_MIN, STATUS_MAX,
      validate.number_text(code))
  end
  -- luacheck: push ignore 143 (math.type and math.tointeger: Lua 5.3+, checked first)
  if math.type and math.type(code) == "float" then code = math.tointeger(code) end
  -- luacheck: pop
  return with_policy(core.status(code))
end

--- Every status the Huawei Cloud documents list, in code order.
-- @treturn {table,...} the entries, as @{status} returns them
-- @raise never
function M.statuses()
  local all = core.statuses()
  for _, entry in ipairs(all) do with_policy(entry) end
  return all
end

--- Deletes one shared bandwidth with a client of its own (no connection reuse), closed before
-- it returns: @{eip.client:delete_bandwidth} in one call.
-- @tparam table opts `bandwidth_id` and any option of @{new}
-- @tparam string opts.bandwidth_id the bandwidth's id (validated before anything is sent)
-- @treturn table the result, as @{eip.client:delete_bandwidth} returns it (a `transport` of the
--   caller's whose `close` raises afterwards changes nothing: that error goes to the debug log)
-- @raise a `usage` @{error} naming `options` when opts is no table or has an option that is
--   neither `bandwidth_id` nor one of @{new}'s (nothing sent); else an @{error} as @{new} raises,
--   then as @{eip.client:delete_bandwidth} (a missing or bad `bandwidth_id`: `usage`, nothing sent)
function M.delete_bandwidth(opts)
  local known = { bandwidth_id = true }
  for k in pairs(client.OPTIONS) do known[k] = true end
  opts = validate.options("options", opts, known)
  -- The id is checked by the client's call, before anything is sent: once the client holds its
  -- secrets, so that one pasted as the id is refused without being quoted.
  local new_opts = {}
  for k, v in pairs(opts) do
    if k ~= "bandwidth_id" then new_opts[k] = v end
  end
  local c = client.new(new_opts)
  -- (held: on Lua 5.1 no yield passes this pcall, so a sleep or transport that yields is called
  -- protected inside, as in a batch, not left to raise "attempt to yield across" past it)
  local ok, res = errors.held(c.delete_bandwidth, c, opts.bandwidth_id)
  -- (close raises nothing: what a transport of the caller's raises as it closes goes to the log)
  c:close()
  if not ok then error(res, 0) end
  return res
end

return M
