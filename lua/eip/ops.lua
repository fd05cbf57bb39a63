--- Operations: every call the library makes, as a plain description that eip.pipeline runs.
--
-- An operation is a table (its fields shared through a metatable per kind, so making one per
-- call costs one small table):
--
--   name       what it is, for logs and messages ("delete_bandwidth", "iam_token", ...)
--   method     the HTTP method
--   path       below the client's endpoint (signed with the endpoint's base path), or
--   url        an absolute URL (IAM's), with `path` its path for messages
--   query      a list of {name, value} pairs, or nil
--   body       a JSON string, or nil
--   content_type  a {name, value, line = "Name: value"} header replacing the default JSON one
--   auth       false: sent without credentials (the IAM token request itself)
--   headers    more {name, value, line?} headers, or nil
--   timeout, max_attempts   tighter limits than the client's, or nil (the metadata service)
--   secret_answer  true: the answer's body holds credentials (the debug log shows its size only)
--   plain_errors  true: an error answer in plain text is the error's message (see eip.body.plain_error)
--   resource   the id it is about (a bandwidth id), or nil
--   unusable(op, resp)  why a 2xx answer is not this call's success (a text), or nil; then the
--              attempt fails with an "http" error ("Unusable Answer") like any other. Optional.
--   result(op, resp, attempts, elapsed)  the value a successful call returns; may raise an
--              eip error when a 2xx answer is unusable
--   recover(op, err)  a value when this final failure is an acceptable outcome (missing_ok),
--              else nil
--
-- Ids and options were validated by the caller (eip.client); nothing here checks them again.
-- @module eip.ops
local core = require "eip.core"
local body = require "eip.body"
local errors = require "eip.errors"
local validate = require "eip.validate"
local json = require("cjson.safe").new() -- private: settings never leak to other cjson users

local M = {}

-- Reason phrases by status, from the C table. core.status builds a whole entry (descriptions,
-- advice: a kilobyte of strings) and a result needs only its reason: memoised, since statuses
-- are three-digit numbers, the table stays small.
local reasons = setmetatable({}, { __index = function(t, status)
  local reason = core.status(status).reason
  t[status] = reason
  return reason
end })

local function kind(fields)
  fields.__index = fields
  return fields
end

-- Decode a 2xx JSON body and check the one field the caller needs; a body without it is an
-- unusable answer (an "http" error carrying the status).
local function decoded_field(op, resp, field, want)
  local t, why = body.decode(resp.body)
  if t and type(t[field]) ~= want then why = "the answer has no " .. field .. " " .. want end
  if why and resp.truncated then
    why = string.format("the answer is larger than max_body and was cut at %d bytes (raise max_body)",
      #(resp.body or ""))
  end
  if why then error(errors.protocol(resp, op.method, op.path, why), 0) end
  return t[field]
end

local function meta(resp, attempts, elapsed)
  return { status = resp.status, request_id = resp.request_id, attempts = attempts, elapsed = elapsed }
end

---------------------------------------------------------------------------------------------
-- DELETE /v2.0/{project_id}/bandwidths/{id}

local Delete = kind{ name = "delete_bandwidth", method = "DELETE" }

--- The result of a delete of bandwidth `id` answered `status` (a 2xx), `request_id` (cleaned,
-- or nil).
function M.deleted(id, status, request_id, attempts, elapsed)
  return {
    ok = true, deleted = true, status = status, reason = reasons[status],
    bandwidth_id = id, request_id = request_id, attempts = attempts, elapsed = elapsed,
  }
end
local deleted = M.deleted

function Delete.lane_result(op, status, request_id, attempts, elapsed)
  return deleted(op.resource, status, request_id, attempts, elapsed)
end

function Delete.result(op, resp, attempts, elapsed)
  return Delete.lane_result(op, resp.status, resp.request_id, attempts, elapsed)
end

-- A delete is done when the service answers 204 No Content, as DeleteSharedBandwidth does. Any
-- other 2xx (a proxy's or captive portal's 200 page, a 202 "accepted, not finished") does not
-- say the bandwidth is gone: the answer is unusable (an "http" error that may have acted), never
-- deleted = true.
-- The `unusable` of a call that is done only on 204 No Content (`what`: "a delete"), saying
-- what another 2xx does not tell (`not_said`).
local function only_204(what, not_said)
  return function(_, resp)
    local status = resp.status
    if status == 204 then return nil end
    return what .. " is done when the API answers 204 No Content; this " .. status .. " " .. reasons[status]
      .. " does not say " .. not_said
  end
end

Delete.unusable = only_204("a delete", "the bandwidth was deleted (it may come from a proxy in between, "
  .. "or the delete may not have finished): check with show_bandwidth before deleting it again")
Delete.usable_status = 204 -- (only_204's unusable says nothing of a 204: eip.pipeline does not ask it then)
-- A plain request (no query, body, headers or limits of its own) whose success is its usable
-- status alone: eip.pipeline may send it by its lane (see Runner:run), whose result is
-- op:lane_result's.
Delete.lane = true

local bandwidth_gone = errors.bandwidth_gone

-- With missing_ok, the EIP service's "no such bandwidth" (404 VPC.0306) is a result
-- { ok = true, deleted = false, status = 404, ... }: the bandwidth is gone either way (perhaps
-- deleted by an earlier attempt whose answer was lost). Any other 404 (the API gateway's "no
-- such API", an unknown code, no error body) says nothing about the bandwidth: a mistyped
-- endpoint must never read as "already deleted". Nor does a 404 for an id that is not shaped
-- like one (a UUID): the documents give no answer of the delete for a malformed id, and a
-- bandwidth's name or a cut-off id may well be "does not exist" too; it stays an error.
function Delete.recover(op, err)
  if not (op.missing_ok and bandwidth_gone(err)) then return nil end
  if not errors.missing(err, op.resource) then
    if err.lost_answer then return nil end -- (after_unanswered's advice says what is known)
    err.advice = "missing_ok takes \"does not exist\" as \"already deleted\" only for an id shaped like the "
      .. "ids the cloud gives bandwidths (a UUID, 8-4-4-4-12 lower-case hexadecimal digits); " .. tostring(op.resource)
      .. " is not one (a name, or a cut-off or mistyped id?): nothing was deleted. Find the bandwidth's id "
      .. "with list_bandwidths (`eip list-bandwidths`)."
    return nil
  end
  -- project_id: where it was not found (keys act in every project of the account, and a
  -- bandwidth of another project or region is "not found" here too).
  return {
    ok = true, deleted = false, status = 404, reason = err.reason, code = err.code,
    message = err.message, bandwidth_id = op.resource, project_id = op.path:match("^/v2%.0/([^/]+)/"),
    request_id = err.request_id,
    attempts = err.attempts, elapsed = err.elapsed, lost_answer = err.lost_answer,
  }
end

-- What an earlier attempt without an answer tells of a retry's failure (called by the pipeline):
-- a 404 VPC.0306 after it says the bandwidth is gone, most likely deleted by that attempt.
-- The error (and the missing_ok result made of it) gets `lost_answer = true` and advice saying
-- so; it is not turned into a success, since another client may have deleted the bandwidth.
function Delete.after_unanswered(op, err, earlier)
  if not bandwidth_gone(err) then return end
  local what = earlier.kind == "http" and (tostring(earlier.status) .. " " .. tostring(earlier.reason or ""))
    or tostring(earlier.reason or earlier.kind)
  what = what:gsub("%s+$", "")
  err.lost_answer = true
  if errors.missing(err, op.resource) then
    err.advice = "The bandwidth is gone. An earlier attempt of this delete got no usable answer ("
      .. what .. ") and most likely deleted it; this attempt found it missing. Nothing "
      .. "more to do for " .. tostring(op.resource) .. "; with missing_ok this is a result (deleted = "
      .. "false, lost_answer = true)."
  else
    -- An id not shaped like the cloud's (see Delete.recover): its "does not exist" may mean that
    -- it names no bandwidth at all, as well as that the earlier attempt deleted one.
    err.advice = "An earlier attempt of this delete got no usable answer (" .. what .. ") and may have "
      .. "deleted the bandwidth; this attempt found no bandwidth " .. tostring(op.resource) .. ". That id is "
      .. "not shaped like the ids the cloud gives bandwidths (a UUID, 8-4-4-4-12 lower-case hexadecimal "
      .. "digits), so this may also mean it names none (a name, or a cut-off or mistyped id?), and "
      .. "missing_ok does not take it as deleted. Check with list_bandwidths (`eip list-bandwidths`) "
      .. "before deleting anything again."
  end
end

--- DeleteSharedBandwidth's path. @tparam string project_id @tparam string id
function M.delete_path(project_id, id)
  return "/v2.0/" .. project_id .. "/bandwidths/" .. id
end
local delete_path = M.delete_path

--- The status that ends a delete (see Delete.usable_status).
M.DELETED_STATUS = Delete.usable_status

--- DeleteSharedBandwidth. @tparam string project_id @tparam string id @tparam boolean missing_ok
function M.delete_bandwidth(project_id, id, missing_ok)
  -- Not a tail call: see "LuaJIT" in eip.transport.http1.
  local op = setmetatable({ path = delete_path(project_id, id), resource = id,
    missing_ok = missing_ok, deadline_at = false }, Delete) -- (a field eip.pipeline reads: see OPTIONAL there)
  return op
end

---------------------------------------------------------------------------------------------
-- GET /v1/{project_id}/bandwidths/{id}

local Show = kind{ name = "show_bandwidth", method = "GET" }

-- The bandwidth asked for, or an unusable answer: one without an id, or with another's (a cache
-- or a proxy answering for another request) is not this bandwidth.
function Show.result(op, resp, attempts, elapsed)
  local bw = decoded_field(op, resp, "bandwidth", "table")
  if bw.id ~= op.resource then
    error(errors.protocol(resp, op.method, op.path, type(bw.id) == "string"
      and "the answer is another bandwidth's (its id differs from the one asked for)"
      or "the answer's bandwidth has no id"), 0)
  end
  return { bandwidth = bw, meta = meta(resp, attempts, elapsed) }
end

--- ShowBandwidth: the result is `{ bandwidth = <table>, meta = {status, request_id, attempts, elapsed} }`.
function M.show_bandwidth(project_id, id)
  return setmetatable({ path = "/v1/" .. project_id .. "/bandwidths/" .. id, resource = id }, Show)
end

---------------------------------------------------------------------------------------------
-- POST /v2.0/{project_id}/bandwidths

local Create = kind{ name = "create_bandwidth", method = "POST" }

-- The bandwidth made, or an unusable answer: one without an id the client could delete it by
-- names nothing the caller can act on, though a bandwidth may have been made (and billed).
function Create.result(op, resp, attempts, elapsed)
  local bw = decoded_field(op, resp, "bandwidth", "table")
  if not core.is_id(bw.id) then
    error(errors.protocol(resp, op.method, op.path, bw.id == nil and "the answer's bandwidth has no id"
      or "the answer's bandwidth id is no id the client takes"), 0)
  end
  return { bandwidth = bw, meta = meta(resp, attempts, elapsed) }
end

--- CreateSharedBandwidth (pay-per-use): the result is as for show_bandwidth. A create whose
-- answer was lost may have happened, and a second one would make a second bandwidth (a second
-- bill): it is never retried (max_attempts = 1).
function M.create_bandwidth(project_id, name, size, charge_mode)
  return setmetatable({ path = "/v2.0/" .. project_id .. "/bandwidths", max_attempts = 1,
    body = json.encode{ bandwidth = { name = name, size = size, charge_mode = charge_mode } } }, Create)
end

---------------------------------------------------------------------------------------------
-- GET /v1/{project_id}/bandwidths?limit=&marker=&...

local List = kind{ name = "list_bandwidths", method = "GET" }

-- A page is a JSON list (an object where the list should be, {"a": 1} or {}, is no page of
-- bandwidths: read as one, it would be an empty page, the end of the listing).
function List.result(op, resp, attempts, elapsed)
  local list = decoded_field(op, resp, "bandwidths", "table")
  local n = 0
  for _ in pairs(list) do n = n + 1 end
  if n ~= #list or (n == 0 and not body.member_is_list(resp.body, "bandwidths")) then
    error(errors.protocol(resp, op.method, op.path, "the answer's bandwidths is not a list"), 0)
  end
  return { bandwidths = list, meta = meta(resp, attempts, elapsed), response = resp }
end

--- One page of ListBandwidths: the result is `{ bandwidths = <list>, meta = {...}, response }`.
-- @tparam string project_id @tparam table query {name, value} pairs
function M.list_bandwidths_page(project_id, query)
  return setmetatable({ path = "/v1/" .. project_id .. "/bandwidths", query = query }, List)
end

---------------------------------------------------------------------------------------------
-- POST /v2.0/{project_id}/bandwidths/{id}/remove

local Remove = kind{ name = "remove_eips_from_bandwidth", method = "POST" }

function Remove.result(_, resp, attempts, elapsed)
  return meta(resp, attempts, elapsed)
end

-- A remove is done when the service answers 204 No Content, as its document says. Another 2xx
-- (a proxy's page, a 202) does not say the EIPs moved: an "http" error that may have acted, which
-- the drain settles with one GET of the bandwidth.
Remove.unusable = only_204("a remove", "the EIPs left the bandwidth")

--- BatchRemoveFromSharedBandwidth for `entries` ({publicip_id, publicip_type?} tables): each
-- removed EIP gets a dedicated bandwidth of `charge_mode` and `size`.
function M.remove_eips(project_id, id, entries, charge_mode, size)
  return setmetatable({
    path = "/v2.0/" .. project_id .. "/bandwidths/" .. id .. "/remove", resource = id,
    body = json.encode{ bandwidth = { publicip_info = entries, charge_mode = charge_mode, size = size } },
  }, Remove)
end

---------------------------------------------------------------------------------------------
-- POST {iam_endpoint}/v3/auth/tokens

local IAM_PATH = "/v3/auth/tokens"
local IAM_CONTENT_TYPE = { "Content-Type", "application/json;charset=utf8",
  line = "Content-Type: application/json;charset=utf8" }

-- A project id IAM gave (a token's scope, the project lookup's answer) goes into every later
-- path and X-Project-Id unescaped, as the caller's own ids do: one that is no id (a '/', '?' or
-- '#' in it) would send a delete to another resource, reported as the one asked for. Such an
-- answer is unusable (an "http" error, nothing more sent), not the caller's usage error.
local function usable_project(op, resp, id)
  if not core.is_id(id) then
    error(errors.protocol(resp, op.method, op.path, "IAM's project id is not an id (1 to 64 letters, digits, "
      .. "'.', '_' or '-')"), 0)
  end
end

-- The answers of the credentials steps (a token's body: its expiry and project; the project
-- lookup; the metadata service's keys) are read whole, whatever the client's max_body: one cut
-- by a small max_body would lose the project and the expiry.
local CREDENTIALS_BODY = 1024 * 1024

-- (brings_token: its answer's X-Subject-Token is a credential before the answer is read: see
-- eip.pipeline's map; once_unanswered: a login that may have reached IAM's password check
-- without its answer -- a timeout, a reset, a 5xx -- is not sent again: with a wrong password,
-- each one counted towards locking the account, while the caller saw only timeouts)
local IamToken = kind{ name = "iam_token", method = "POST", path = IAM_PATH, auth = false,
  content_type = IAM_CONTENT_TYPE, body_cap = CREDENTIALS_BODY, brings_token = true, once_unanswered = true }

-- The token (from X-Subject-Token), its expiry and project (from the body). A 2xx without the
-- header is an unusable answer.
function IamToken.result(op, resp)
  local token = resp.subject_token
  if not token or token == "" then
    -- (the C core and the cosocket reader capture one that can be a token only: a header holding
    -- a blank, a control character or a byte past ASCII was there, and is not one)
    error(errors.protocol(resp, op.method, op.path, "IAM answered without a usable X-Subject-Token header (none, "
      .. "or one holding a blank, a control character or a byte that is no ASCII)"), 0)
  end
  local t = body.decode(resp.body)
  t = t and type(t.token) == "table" and t.token or {}
  local project = type(t.project) == "table" and t.project or {}
  local project_id = project.id
  if project_id ~= nil and type(project_id) ~= "string" then project_id = nil end -- none named
  if project_id then usable_project(op, resp, project_id) end
  return { token = token, expires_at = t.expires_at, issued_at = t.issued_at, project_id = project_id }
end

--- IAM "get a user token" (password method, project scope). `request_body` is the JSON text,
-- which holds the password: logs show its size only. `nocatalog=true` leaves the service
-- catalog (tens of kilobytes) out of the answer, as the official SDKs ask.
function M.iam_token(iam_endpoint, request_body)
  return setmetatable({ url = iam_endpoint .. IAM_PATH .. "?nocatalog=true", body = request_body }, IamToken)
end

---------------------------------------------------------------------------------------------
-- GET {iam_endpoint}/v3/projects?name={region}   (signed with the client's AK/SK)

local PROJECTS_PATH = "/v3/projects"
M.IAM_PROJECTS_PATH = PROJECTS_PATH

local Projects = kind{ name = "iam_projects", method = "GET", path = PROJECTS_PATH,
  body_cap = CREDENTIALS_BODY }

-- The one project of that name: zero or several is a usage error naming the region, as in the
-- official SDKs (the client cannot choose for the user).
function Projects.result(op, resp)
  local list = decoded_field(op, resp, "projects", "table")
  local ids = {}
  for _, p in ipairs(list) do
    if type(p) == "table" and type(p.id) == "string" then ids[#ids + 1] = p.id end
  end
  if #ids ~= 1 then
    local e = errors.usage("project_id", "is required: IAM has %d projects named %q for these credentials, "
      .. "so none can be chosen (give %s)", #ids, op.region, op.instead or "project_id")
    e.request_id = resp.request_id -- IAM's X-IAM-Trace-Id: what its support asks for
    error(e, 0)
  end
  usable_project(op, resp, ids[1])
  return ids[1]
end

-- IAM's policy refusing the look-up (403, no gateway code: the keys passed, their user may not
-- list projects, as a user with VPC rights alone): advice about the look-up, not about a
-- bandwidth action that was never sent. Nothing is recovered.
function Projects.recover(op, err)
  local code = err.code
  if err.kind == "http" and err.status == 403 and not (type(code) == "string" and code:find("^APIGW?%.")) then
    err.advice = string.format("These credentials may not list IAM's projects, which is how the project id of %s "
      .. "is found for AK/SK: give %s (the console's My Credentials page lists it), or grant the IAM permission "
      .. "to list projects; nothing else was sent.", op.region, op.instead or "project_id")
  end
  return nil
end

--- KeystoneListProjects by name: the project id of `region` for AK/SK credentials. `instead`:
-- what the usage error of no one project asks to give (where these keys can take a project id).
function M.iam_projects(iam_endpoint, region, instead)
  return setmetatable({ url = iam_endpoint .. PROJECTS_PATH .. "?name=" .. region,
    query = { { "name", region } }, region = region, instead = instead }, Projects)
end

---------------------------------------------------------------------------------------------
-- ECS instance metadata: temporary AK/SK of the agency attached to the server.

local METADATA_TIMEOUT = 3 -- seconds, as the official client gives the metadata service

-- (The metadata service answers its refusals in plain text, "Please configure Cloud Service
-- Agency first" on an ECS without an agency: kept as the error's message, as the Go SDK keeps
-- it, so that the error says why no keys came.)
local MetadataToken = kind{ name = "metadata_token", method = "PUT", path = "/meta-data/latest/api/token",
  auth = false, timeout = METADATA_TIMEOUT, max_attempts = 1, body = "", secret_answer = true,
  body_cap = CREDENTIALS_BODY, plain_errors = true,
  headers = { { "X-Metadata-Token-Ttl-Seconds", "21600", line = "X-Metadata-Token-Ttl-Seconds: 21600" } } }

function MetadataToken.result(_, resp)
  local token = resp.body
  -- (blanks around it, a line end after it, are no part of it)
  local first = type(token) == "string" and token:find("%S")
  token = first and token:match("^.*%S", first) -- (linear: no lazy match over a long blank run)
  if not token or token == "" or token:find("[%c%s]") then return nil end
  return token
end

--- The metadata service's session token (PUT .../api/token). A 404, 405 or 503 means the service
-- has no token endpoint: the credentials are then asked for without one.
function M.metadata_token(base)
  return setmetatable({ url = base .. "/meta-data/latest/api/token" }, MetadataToken)
end

local MetadataCredentials = kind{ name = "metadata_credentials", method = "GET",
  path = "/openstack/latest/securitykey", auth = false, timeout = METADATA_TIMEOUT, max_attempts = 1,
  secret_answer = true, body_cap = CREDENTIALS_BODY, plain_errors = true }

function MetadataCredentials.result(op, resp)
  local c = decoded_field(op, resp, "credential", "table")
  for _, k in ipairs{ "access", "secret", "securitytoken" } do
    if type(c[k]) ~= "string" or c[k] == "" then
      error(errors.protocol(resp, op.method, op.path, "the answer has no credential." .. k), 0)
    end
  end
  -- Keys that cannot be signed with (a space, a line end, a quote in them) are an unusable answer
  -- of the service's, held like its other failures (eip.auth): as the usage error of the
  -- provider made from them, every call asked the service again. (Named, never quoted.)
  local function usable(check, k, ...)
    local ok, e = pcall(check, "the answer's credential." .. k, c[k], ...)
    if not ok then
      error(errors.protocol(resp, op.method, op.path, errors.is_error(e) and e.message or tostring(e)), 0)
    end
  end
  for _, k in ipairs{ "access", "secret", "securitytoken" } do
    usable(k == "access" and validate.access_key or validate.key, k)
  end
  -- (an AK holding the SK, which the provider made of them refuses: a usage error of the
  -- caller's, never held, was each call's, and asked the service again every time)
  usable(validate.ak_apart, "access", { c.secret, c.securitytoken })
  return { ak = c.access, sk = c.secret, security_token = c.securitytoken, expires_at = c.expires_at }
end

--- The temporary AK/SK, security token and expiry (GET .../securitykey), with the session
-- token when the service gave one.
function M.metadata_credentials(base, token)
  local op = setmetatable({ url = base .. "/openstack/latest/securitykey" }, MetadataCredentials)
  if token then op.headers = { { "X-Metadata-Token", token } } end
  return op
end

M.IAM_PATH = IAM_PATH
M.reasons = reasons
return M
