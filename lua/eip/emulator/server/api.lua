-- The Huawei Cloud EIP shared-bandwidth API, as the emulator models it.
--
-- Order of checks, as on the real service: the API gateway matches method and path together
-- (404 APIGW.0101 for a path or a method no API has),
-- then authenticates the token or the AK/SK signature (401), then EIP compares the URL project
-- with the credentials' (400 VPC.0007), then the operation itself runs. An injected answer of
-- the service (inject.lua) comes where the service starts, past the gateway's routing,
-- authentication and throttling (the `reached` argument of M.handle). POST /v3/auth/tokens is
-- IAM's (iam.lua) and the metadata routes the ECS metadata service's, each answered only on the
-- port of its endpoint (see ENDPOINT_OF below). Codes and
-- messages come from the EIP API reference's error-codes.md (huaweicloud-eip-docs) unless a comment
-- says "modelled".
local aksk = require "eip.emulator.server.aksk"
local iam = require "eip.emulator.server.iam"
local json = require "eip.emulator.server.json"
local metadata = require "eip.emulator.server.metadata"
local model = require "eip.emulator.server.model"
local params = require "eip.emulator.server.params"
local store = require "eip.emulator.server.store"
local util = require "eip.emulator.server.util"

local M = {}

local MAX_EIPS_PER_CALL = 100 -- remove/insert: "一次可批量操作100个EIP"

local IAM_TOKENS = "/v3/auth/tokens"
local IAM_PROJECTS = "/v3/projects"
local METADATA_TOKEN = "/meta-data/latest/api/token"
local METADATA_KEYS = "/openstack/latest/securitykey"

local NO_SUCH_API = "The API does not exist or has not been published in the environment"
-- The gateway's words when the path is an API's but the method is none of it (APIG error codes).
local NO_SUCH_METHOD = "The API does not exist."

-- What a bandwidth id, or an enterprise project id, looks like.
local UUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"

local function not_found()
  util.vpc_error(404, "VPC.0306", "No Eip bandwidth exist with id.")
end

-- Documented for ShowBandwidth, and answered to a delete too: an id that is not a bandwidth id
-- at all (a UUID) is a 400, not the 404 of one that does not exist (a name given for an id
-- must not read as "gone"). True when it answered.
local function invalid_id(id)
  if id:find(UUID) then return false end
  util.vpc_error(400, "VPC.0301", "getBandwidth error bandwidthId is invalid.")
  return true
end

local function bad_input()
  util.vpc_error(400, "EIP.7901", "Input param is invalid.")
end

local function bad_publicip()
  util.vpc_error(400, "VPC.0301", "Invalid publicip_id")
end

-- modelled: what the real service answers to a change of a bandwidth still CREATING (the
-- creating_for knob) is undocumented; 409 VPC.0512 is the documented busy answer of the EIP calls
-- (error-codes.md: delete and update EIP), "try it again later", as this one is.
local function busy()
  util.vpc_error(409, "VPC.0512", "Resource status is busy, try it again later.")
end

local function cannot_operate()
  util.vpc_error(400, "VPC.0323", "publicIp can not be operate with this bandwidth")
end

--- Answers a write the store had no room for (store.lua never evicts), or raises `err` again
-- when it is no such refusal. Not the cloud's answer: an emulator-specific 507 (Insufficient
-- Storage) in the EIP error shape, so that a client reads why; the call changed nothing.
function M.store_full(err)
  if not store.is_full(err) then error(err, 0) end
  util.vpc_error(507, "EMU.0507", store.FULL .. ": nothing of this request was applied; reset the emulator "
    .. "(or stop and start it), or hold fewer or smaller bandwidths")
end

-- The bandwidth `id` if it exists in `project_id` (other projects' bandwidths are invisible).
local function owned_bandwidth(id, project_id)
  local bw = store.get_bandwidth(id)
  if bw and bw.tenant_id == project_id then
    return bw
  end
  return nil
end

-- The "bandwidth" object of a JSON request body, or nil.
local function bandwidth_option(body)
  local req = json.decode(body)
  if type(req) == "table" and type(req.bandwidth) == "table" then
    return req.bandwidth
  end
  return nil
end

-- A publicip_info request list: 1..100 entries, each with a distinct string publicip_id.
-- Returns entries, or nil, failure function.
local function publicip_list(info)
  if type(info) ~= "table" or #info < 1 or #info > MAX_EIPS_PER_CALL then
    return nil, bad_input
  end
  local seen = {}
  for _, entry in ipairs(info) do
    local id = type(entry) == "table" and entry.publicip_id
    if type(id) ~= "string" or #id < 1 or #id > 36 or seen[id] then
      return nil, bad_publicip
    end
    seen[id] = true
  end
  return info
end

-- Handlers -------------------------------------------------------------------------------------

-- POST /v2.0/{project_id}/bandwidths
function M.create(ctx)
  local opt = bandwidth_option(ctx.body)
  local size = opt and params.coerce_size(opt.size, params.SHARED_MIN)
  if not (opt and params.valid_name(opt.name) and size) then
    return bad_input()
  end
  local charge_mode = opt.charge_mode or "bandwidth"
  if charge_mode ~= "bandwidth" and charge_mode ~= "95peak_plus" then
    return bad_input()
  end
  local bw = model.new_bandwidth{
    project_id = ctx.project_id, name = opt.name, size = size, share_type = "WHOLE",
    charge_mode = charge_mode, enterprise_project_id = opt.enterprise_project_id,
  }
  -- The real service makes a bandwidth CREATING, then NORMAL (huaweicloud's Terraform provider
  -- waits for that after a create); creating_for seconds of it here, none by default.
  local creating = store.knob("creating_for")
  local ok, err = store.atomically(function()
    store.put_bandwidth(bw)
    if creating > 0 then store.put_creating(bw.id, creating) end
  end)
  if not ok then return M.store_full(err) end
  if creating > 0 then bw.status = "CREATING" end
  util.send_json(200, { bandwidth = bw })
end

-- GET /v1/{project_id}/bandwidths/{bandwidth_id}. A bandwidth deleted less than the
-- deleted_visible_for knob ago can still be read, as on the real service.
-- (An id that names nothing is checked as the delete checks it, after the lookup: a bandwidth
-- seeded with an id of its own, through the control API, is shown as it is listed and deleted.)
function M.show(ctx)
  local bw = owned_bandwidth(ctx.bandwidth_id, ctx.project_id)
  if not bw then
    bw = store.get_gone(ctx.bandwidth_id)
    if not (bw and bw.tenant_id == ctx.project_id) then
      if invalid_id(ctx.bandwidth_id) then return end
      return not_found()
    end
  end
  util.send_json(200, { bandwidth = bw })
end

local function first_arg(v)
  if type(v) == "table" then
    return v[1]
  end
  return v
end

-- limit: documented as 0..intmax (the SDKs' int32). 0 or absent means "no limit" here (modelled
-- on Neutron, whose pagination this API follows). Returns the limit, or nil if invalid.
local function parse_limit(raw)
  if raw == nil or raw == "" then
    return math.huge
  end
  if type(raw) ~= "string" or not raw:match("^%d+$") or #raw > 10 then
    return nil
  end
  local n = tonumber(raw)
  if n > 2147483647 then return nil end
  return n == 0 and math.huge or n
end

-- Position of the marker in list (0 if no marker), or nil if the marker is unknown.
local function marker_position(list, marker)
  if marker == nil or marker == "" then
    return 0
  end
  for i, bw in ipairs(list) do
    if bw.id == marker then
      return i
    end
  end
  return nil
end

-- GET /v1/{project_id}/bandwidths?marker=&limit=&share_type=
function M.list(ctx)
  local args = ngx.req.get_uri_args(50)
  local limit = parse_limit(first_arg(args.limit))
  if not limit then
    return util.vpc_error(400, "VPC.0301", "Get bandwidths error limit is invalid.")
  end
  local share_type = first_arg(args.share_type)
  if share_type ~= nil and share_type ~= "WHOLE" and share_type ~= "PER" then
    -- modelled: the docs list VPC.0301 for bad list parameters but only quote the limit text.
    return util.vpc_error(400, "VPC.0301", "Get bandwidths error share_type is invalid.")
  end
  -- Documented: filters by enterprise project; "all_granted_eps" means every one the user may see.
  local eps = first_arg(args.enterprise_project_id)
  if eps == "all_granted_eps" then eps = nil end
  -- (a parameter without a value is `true` in nginx's arguments: as invalid as any other)
  if eps ~= nil and eps ~= "0" and not (type(eps) == "string" and eps:find(UUID)) then
    return util.vpc_error(400, "VPC.0011", "EnterpriseProjectId is invalid.")
  end
  -- A bandwidth deleted less than deleted_visible_for ago is still listed, as it is still shown.
  local all = store.all_bandwidths(ctx.project_id, true)
  local start = marker_position(all, first_arg(args.marker))
  if not start then
    return not_found() -- documented for this call: VPC.0306 (the marker names no bandwidth)
  end
  local page = json.array()
  for i = start + 1, #all do
    if #page >= limit then
      break
    end
    if (share_type == nil or all[i].share_type == share_type)
        and (eps == nil or all[i].enterprise_project_id == eps) then
      page[#page + 1] = all[i]
    end
  end
  util.send_json(200, { bandwidths = page })
end

-- DELETE /v2.0/{project_id}/bandwidths/{bandwidth_id}
function M.delete(ctx)
  local bw = owned_bandwidth(ctx.bandwidth_id, ctx.project_id)
  if not bw then
    -- Modelled on the show's documented answer, so that a name given for an id with
    -- missing_ok does not read as "already deleted". (A bandwidth seeded with an id of its own,
    -- through the control API, is still deleted.)
    if invalid_id(ctx.bandwidth_id) then return end
    return not_found()
  end
  if bw.share_type ~= "WHOLE" then
    -- Only shared bandwidths can be deleted ("当前仅支持删除共享带宽"). The docs give no code
    -- for this case; VPC.0301 is the bandwidth-parameter code, and its documented message is
    -- the one that names share_type.
    return util.vpc_error(400, "VPC.0301", "Bandwidth name or share_type is invalid.")
  end
  if bw.status == "CREATING" then return busy() end -- (still being made: see busy)
  if bw.status ~= "NORMAL" then
    -- modelled: a frozen bandwidth cannot be changed; the docs give no code for deleting one.
    return util.vpc_error(409, "VPC.0304", "deleteBandwidth error. The bandwidth is " .. tostring(bw.status)
      .. " and cannot be changed.")
  end
  if type(bw.billing_info) == "string" and bw.billing_info ~= "" then
    -- modelled, not documented: a yearly/monthly bandwidth cannot be deleted by this API, it is
    -- unsubscribed through billing (cloud-facts), but no page says what the delete answers. We
    -- answer 409 VPC.0304, as for the other deletes refused in the bandwidth's state. (VPC.0525,
    -- "The FloatingIp is billing, can not delete.", 包周期EIP不支持直接删除, is the code of the
    -- EIP delete, for a prepaid EIP: not this call's.)
    return util.vpc_error(409, "VPC.0304", "deleteBandwidth error. A yearly/monthly bandwidth cannot be "
      .. "deleted: unsubscribe it.")
  end
  if #bw.publicip_info > 0 then
    -- modelled, not documented: the real service refuses to delete a shared bandwidth that still
    -- holds EIPs, but no page says with what. We answer 409 VPC.0304, the only bandwidth code
    -- error-codes.md lists with status 409 ("500409", bandwidth operation error, free-form
    -- message). Not VPC.0512 ("busy, try again later"): that invites a retry, and a retry can
    -- never succeed until the EIPs are removed.
    return util.vpc_error(409, "VPC.0304",
      "deleteBandwidth error. The shared bandwidth still has publicips, remove them first.")
  end
  local ok, err = store.atomically(function()
    local seq = store.delete_bandwidth(bw.id)
    local visible = store.knob("deleted_visible_for")
    if visible > 0 then
      store.put_gone(bw, visible, seq)
    end
  end)
  if not ok then return M.store_full(err) end
  util.send_empty(204)
end

-- The remove body beyond publicip_info: charge_mode and size of the new dedicated bandwidths.
local function removal_terms(opt)
  local size = params.coerce_size(opt.size, params.DEDICATED_MIN)
  local mode = opt.charge_mode
  if not size or (mode ~= "bandwidth" and mode ~= "traffic") then
    return nil
  end
  return size, mode
end

-- Index of EIP publicip_id in bw.publicip_info, or nil.
local function eip_index(bw, publicip_id)
  for i, ip in ipairs(bw.publicip_info) do
    if ip.publicip_id == publicip_id then
      return i
    end
  end
  return nil
end

-- What remove and insert both check first: the shared bandwidth, the body's options and its
-- EIP list. Returns bw, opt, list; or nil and, in opt's place, the function that sends the failure.
local function eip_operation(ctx)
  -- (as show and delete answer an id that is no bandwidth id: a 400, never "gone")
  if not ctx.bandwidth_id:find(UUID) then
    return nil, function() invalid_id(ctx.bandwidth_id) end
  end
  local bw = owned_bandwidth(ctx.bandwidth_id, ctx.project_id)
  if not bw then
    return nil, not_found
  end
  local opt = bandwidth_option(ctx.body)
  if not opt then
    return nil, bad_input
  end
  if bw.status == "CREATING" then
    return nil, busy -- still being made (see busy)
  end
  if bw.share_type ~= "WHOLE" or bw.status ~= "NORMAL" then
    return nil, cannot_operate -- modelled for a frozen bandwidth: it cannot be changed
  end
  local list, fail = publicip_list(opt.publicip_info)
  if not list then
    return nil, fail
  end
  return bw, opt, list
end

-- POST /v2.0/{project_id}/bandwidths/{bandwidth_id}/remove
function M.remove(ctx)
  local bw, opt, list = eip_operation(ctx)
  if not bw then
    return opt() -- the failure to send
  end
  local size, mode = removal_terms(opt)
  if not size then
    return bad_input()
  end
  for _, entry in ipairs(list) do
    local i = eip_index(bw, entry.publicip_id)
    if not i then
      -- As insert answers it: an id that names no EIP of the project (none at all, or another
      -- project's) is the documented 400 VPC.0301 "Invalid publicip_id"; an EIP of the project
      -- that another bandwidth holds cannot be removed from this one, 400 VPC.0323.
      local holder = store.find_eip(entry.publicip_id)
      if not holder or holder.tenant_id ~= ctx.project_id then
        return bad_publicip()
      end
      return cannot_operate()
    end
    local held = bw.publicip_info[i]
    if (held.ip_version == 6 or held.publicip_type == "5_dualStack") and entry.publicip_type ~= "5_dualStack" then
      -- IPv6 ports are removed as publicip_type "5_dualStack" (modelled on the API reference's
      -- remove page; the real message is not documented). The insert page's example shows one
      -- as ip_version 4 with that type (an IPv4-mapped address): either says it.
      return util.vpc_error(400, "VPC.0323", "publicIp can not be operate with this bandwidth: "
        .. "an IPv6 port needs publicip_type 5_dualStack")
    end
  end
  -- All checked: now apply, so that a refused call changes nothing (nor one the store has no
  -- room for: no EIP both in a new dedicated bandwidth and still in this one).
  local ok, err = store.atomically(function()
    for _, entry in ipairs(list) do
      local eip = table.remove(bw.publicip_info, eip_index(bw, entry.publicip_id))
      store.put_bandwidth(model.dedicated_for(eip, ctx.project_id, size, mode))
    end
    bw.updated_at = util.now_iso()
    store.put_bandwidth(bw)
  end)
  if not ok then return M.store_full(err) end
  util.send_empty(204)
end

-- Where EIP publicip_id comes from for an insert into a shared bandwidth: the dedicated
-- bandwidth that holds it in the same project. Insert moves an EIP the project has, never makes
-- one: an id that names no EIP of the project (none at all, or another project's, which is
-- invisible here) is the documented 400 VPC.0301 "Invalid publicip_id". Returns holder, or nil,
-- failure.
local function insert_source(publicip_id, project_id)
  local holder = store.find_eip(publicip_id)
  if not holder or holder.tenant_id ~= project_id then
    return nil, bad_publicip
  end
  if holder.share_type == "WHOLE" or holder.status ~= "NORMAL" then
    -- already in a shared bandwidth (this one or another); or its own is frozen, which nothing
    -- changes (cloud-facts), as a frozen shared bandwidth's insert is refused
    return nil, cannot_operate
  end
  return holder
end

-- POST /v2.0/{project_id}/bandwidths/{bandwidth_id}/insert
function M.insert(ctx)
  local bw, opt, list = eip_operation(ctx)
  if not bw then
    return opt() -- the failure to send
  end
  local sources = {}
  for i, entry in ipairs(list) do
    local holder, failure = insert_source(entry.publicip_id, ctx.project_id)
    if not holder then
      return failure()
    end
    sources[i] = holder
  end
  -- All checked: now apply, so that a refused call changes nothing (nor one the store has no
  -- room for: no EIP lost with its dedicated bandwidth).
  local ok, err = store.atomically(function()
    for _, holder in ipairs(sources) do
      -- The EIP (as it is: its type and address) joins the shared bandwidth, and its dedicated
      -- bandwidth is released.
      bw.publicip_info[#bw.publicip_info + 1] = holder.publicip_info[1]
      store.delete_bandwidth(holder.id)
    end
    bw.updated_at = util.now_iso()
    store.put_bandwidth(bw)
  end)
  if not ok then return M.store_full(err) end
  util.send_json(200, { bandwidth = bw })
end

-- Routing --------------------------------------------------------------------------------------

local ROUTES = {
  { pattern = "^/v2%.0/([^/]+)/bandwidths$", methods = { POST = M.create } },
  { pattern = "^/v2%.0/([^/]+)/bandwidths/([^/]+)$", methods = { DELETE = M.delete } },
  { pattern = "^/v2%.0/([^/]+)/bandwidths/([^/]+)/remove$", methods = { POST = M.remove } },
  { pattern = "^/v2%.0/([^/]+)/bandwidths/([^/]+)/insert$", methods = { POST = M.insert } },
  { pattern = "^/v1/([^/]+)/bandwidths$", methods = { GET = M.list } },
  { pattern = "^/v1/([^/]+)/bandwidths/([^/]+)$", methods = { GET = M.show } },
}

local function match_route(path)
  for _, route in ipairs(ROUTES) do
    local project_id, bandwidth_id = path:match(route.pattern)
    if project_id then
      return route, project_id, bandwidth_id
    end
  end
  return nil
end

-- Token authentication: the token's project, or nil, the reason (never the token itself).
-- Configured tokens never expire; tokens issued by IAM do.
local function token_project(headers)
  local token = headers["x-auth-token"]
  if type(token) == "table" then
    return nil, "more than one x-auth-token"
  end
  if token == nil or token == "" then
    return nil, "x-auth-token not found"
  end
  local project_id = store.project_of_token(token)
  if project_id then
    return project_id
  end
  local why
  project_id, why = iam.project_of(token)
  if not project_id then
    return nil, why or "decrypt token fail"
  end
  return project_id
end

-- AK/SK authentication: the AK's project and the X-Project-Id sent, or nil, the reason.
-- X-Project-Id is required (modelled: the docs require it for multi-project accounts, and
-- requiring it always catches a client that forgets it); without it the answer is a 401.
local function aksk_project(method, body, headers, project_optional)
  local uri = ngx.var.request_uri
  local parsed = aksk.parse_authorization(headers["authorization"])
  local ak = parsed and store.credential(parsed.ak) and parsed.ak
  if ak and store.ak_locked(ak) then
    -- The gateway's lock after aksk_lock_after failed signatures in a row, in its words (the API
    -- gateway's and the signing guide's FAQ): nothing in it says "locked" or for how long.
    return nil, "AK access failed to reach the limit,forbidden."
  end
  local cred, why = aksk.verify({
    method = method, path = uri:match("^[^?]*"), query = aksk.parse_query(uri:match("%?(.*)$")),
    header = function(name) return headers[name] end, body = body,
    authorization = headers["authorization"],
  }, store.credential, store.now())
  if not cred then
    if ak then store.ak_failed(ak) end
    return nil, why
  end
  store.ak_succeeded(ak)
  local requested = headers["x-project-id"]
  if project_optional and requested == nil then return cred.project_id end
  if type(requested) ~= "string" or requested == "" then
    return nil, "x-project-id is required with AK/SK"
  end
  return cred.project_id, requested
end

-- GET /v3/projects?name=N (IAM KeystoneListProjects), signed with AK/SK and without
-- X-Project-Id: the projects of that name the key's account has (see store.projects).
local function list_projects(method, body, reached)
  if method ~= "GET" then return util.gateway_error(404, "APIGW.0101", NO_SUCH_METHOD) end
  local headers = ngx.req.get_headers(200)
  local project, why = aksk_project(method, body, headers, true)
  if not project then
    store.count("auth_failures")
    return util.gateway_error(401, "APIGW.0301", "Incorrect IAM authentication information: " .. tostring(why))
  end
  if reached() then return end
  store.count("project_lookups")
  local name = ngx.req.get_uri_args().name
  local out = json.array()
  for _, p in ipairs(store.projects(project)) do
    if name == nil or p.name == name then
      out[#out + 1] = { id = p.id, name = p.name, enabled = true, is_domain = false, description = "" }
    end
  end
  util.send_json(200, { projects = out, links = { self = "https://iam.example/v3/projects" } })
end

-- Whether project_id is a project of the account of the key whose own project is key_project
-- (the projects IAM lists for it, see store.projects).
local function account_project(key_project, project_id)
  for _, p in ipairs(store.projects(key_project)) do
    if p.id == project_id then return true end
  end
  return false
end

-- The project of the request's credentials (and, for AK/SK, the project it asks for), or nil,
-- the reason it was refused. A request with both a token and a signature is refused (modelled:
-- 401, since which of the two the gateway would honour is undocumented; a client must send one).
local function authenticate(method, body)
  local headers = ngx.req.get_headers(200)
  if headers["authorization"] == nil then
    return token_project(headers)
  end
  if headers["x-auth-token"] ~= nil then
    return nil, "both x-auth-token and an authorization signature were sent"
  end
  return aksk_project(method, body, headers)
end

-- Who the gateway throttles ("policy user over ratelimit"): the IAM user a token was issued to
-- (a token refreshed, or one per nginx worker, shares the user's window), a configured token
-- (no user known: its own), or the AK of a signature.
local function user_of(headers)
  local token = headers["x-auth-token"]
  if type(token) == "string" then
    local rec = store.issued_token(token)
    if rec and rec.user then return "u:" .. rec.user end
    return "t:" .. token:sub(1, 64)
  end
  local auth = aksk.parse_authorization(headers["authorization"])
  return "k:" .. (auth and auth.ak or "?")
end

-- Which endpoint answers which route. The real ones are three hosts: the VPC endpoint (every
-- route not named here), IAM's, and the ECS metadata service at 169.254.169.254.
local ENDPOINT_OF = { [IAM_TOKENS] = "iam", [IAM_PROJECTS] = "iam",
  [METADATA_TOKEN] = "metadata", [METADATA_KEYS] = "metadata" }

--- The endpoint whose route `path` is: "api", "iam" or "metadata".
function M.endpoint_of(path)
  return ENDPOINT_OF[path] or "api"
end

-- Answer an API request (anything outside /__emulator/) that came to the endpoint `role`
-- ("api", "iam", "metadata", or "any": every route on one port, as the eip-emulator command's
-- instances and the specs' TLS front have it; default "any"). A route of another endpoint gets
-- what that port's host answers for an API it does not have: the API gateway's 404 APIGW.0101
-- (the VPC endpoint and IAM's are both behind it), the metadata service's plain 404.
-- `reached` (optional) is called when the request reaches the service, past the gateway's
-- routing, authentication and throttling; when it returns true it has answered the request
-- (an injected service answer, see inject.lua) and the service's handler does not run.
function M.handle(method, path, body, role, reached)
  role = role or "any"
  reached = reached or function() return false end
  local endpoint = M.endpoint_of(path)
  if role ~= "any" and role ~= endpoint then
    if role == "metadata" then return util.send_text(404, "Not Found") end
    return util.gateway_error(404, "APIGW.0101", NO_SUCH_API)
  end
  if path == IAM_TOKENS then
    if reached() then return end
    return iam.handle(method, body) -- IAM needs no authentication: it is where tokens come from
  end
  if path == IAM_PROJECTS then return list_projects(method, body, reached) end
  if path == METADATA_TOKEN or path == METADATA_KEYS then -- no gateway: the service itself
    if reached() then return end
    if path == METADATA_TOKEN then return metadata.token(method) end
    return metadata.securitykey(method)
  end
  local route, project_id, bandwidth_id = match_route(path)
  if not route then
    return util.gateway_error(404, "APIGW.0101", NO_SUCH_API)
  end
  local handler = route.methods[method]
  if not handler then
    -- The gateway matches method and path together: a method no API has there is no API, a
    -- 404 APIGW.0101 as for an unknown path (cloud-facts: "wrong endpoint, path or method"),
    -- with the message the gateway gives a method the API does not have.
    return util.gateway_error(404, "APIGW.0101", NO_SUCH_METHOD)
  end
  local auth_project, requested = authenticate(method, body)
  if not auth_project then
    store.count("auth_failures")
    return util.gateway_error(401, "APIGW.0301", "Incorrect IAM authentication information: " .. requested)
  end
  local limit = store.knob("throttle_rate")
  if limit > 0 and store.over_rate(user_of(ngx.req.get_headers(200)), limit) then
    local retry_after = store.knob("throttle_retry_after")
    if retry_after > 0 then ngx.header["Retry-After"] = tostring(retry_after) end
    return util.gateway_error(429, "APIGW.0308", "The throttling threshold has been reached: policy user over "
      .. "ratelimit,limit:" .. limit .. ",time:1 second")
  end
  -- Past the gateway: from here on the EIP service answers (its project checks included).
  if reached() then return end
  if requested and requested ~= auth_project then
    -- An access key is an IAM user's, valid in every project of the account: X-Project-Id
    -- names the one it acts in (a bandwidth of another project is then "not found" there).
    -- modelled: a project of no account of the key is the AK/SK form of a foreign project.
    if not account_project(auth_project, requested) then
      return util.vpc_error(400, "VPC.0007", "X-Project-Id is not a project of this access key's account")
    end
    auth_project = requested
  end
  if auth_project ~= project_id then
    return util.vpc_error(400, "VPC.0007", "urlTenantId is not equal tokenTenantId")
  end
  return handler{ project_id = project_id, bandwidth_id = bandwidth_id, body = body }
end

return M
