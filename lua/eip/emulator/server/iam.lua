-- IAM "get a user token" (POST /v3/auth/tokens), password method with a project scope.
--
-- Request (documented, huaweicloud-eip-docs/authentication.md):
--   {"auth":{"identity":{"methods":["password"],"password":{"user":{"name":U,"password":P,
--     "domain":{"name":D}}}},"scope":{"project":{"name":N}}}}      (or "project":{"id":...})
-- Answer: 201, the token in the X-Subject-Token header, the body {"token":{expires_at, ...}}.
-- Errors use the Keystone shape IAM answers with: {"error":{"code":N,"message":...,"title":...}}.
-- Modelled: an unknown user, domain or password all answer the same 401 (no user enumeration);
-- a project the user cannot access (unknown name or id) answers 401 too, Keystone's answer for
-- an unauthorised scope; a body that is not this shape answers 400.
local crypto = require "eip.emulator.server.crypto"
local json = require "eip.emulator.server.json"
local store = require "eip.emulator.server.store"
local util = require "eip.emulator.server.util"

local M = {}

local TOKEN_BYTES = 96 -- real IAM tokens are kilobytes of PKI; long and opaque is what matters

local function iam_error(status, title, message)
  util.send_json(status, { error = { code = status, message = message, title = title } })
end

local function refuse(message)
  store.count("auth_failures")
  iam_error(401, "Unauthorized", message)
end

local function field(t, ...)
  for _, key in ipairs({ ... }) do
    if type(t) ~= "table" then
      return nil
    end
    t = t[key]
  end
  return t
end

local function has_password_method(methods)
  for _, m in ipairs(type(methods) == "table" and methods or {}) do
    if m == "password" then
      return true
    end
  end
  return false
end

-- { name, password, domain, project_name?, project_id? } of a request body, or nil.
local function parse(body)
  local auth = field(json.decode(body), "auth")
  local user = field(auth, "identity", "password", "user")
  local project = field(auth, "scope", "project")
  if not (has_password_method(field(auth, "identity", "methods")) and type(project) == "table") then
    return nil
  end
  local req = {
    name = field(user, "name"), password = field(user, "password"),
    domain = field(user, "domain", "name"), project_name = project.name, project_id = project.id,
  }
  for _, key in ipairs({ "name", "password", "domain" }) do
    if type(req[key]) ~= "string" then
      return nil
    end
  end
  if type(req.project_name) ~= "string" and type(req.project_id) ~= "string" then
    return nil
  end
  return req
end

local function find_user(req)
  for _, user in ipairs(store.users()) do
    if user.username == req.name and user.domain == req.domain then
      return user
    end
  end
  return nil
end

-- name, id of the project the request scopes to, if this user may use it.
local function scoped_project(user, req)
  for name, id in pairs(user.projects or {}) do
    if (req.project_name == nil or req.project_name == name)
        and (req.project_id == nil or req.project_id == id) then
      return name, id
    end
  end
  return nil
end

-- "2026-11-25T08:00:00.000000Z", the shape IAM gives expires_at and issued_at.
local function iso_micro(t)
  local whole = math.floor(t)
  local micros = math.floor((t - whole) * 1e6)
  return os.date("!%Y-%m-%dT%H:%M:%S", whole) .. string.format(".%06dZ", micros)
end

-- Stable ids for names, so that the same user always gets the same id (32 hex, like IAM's).
local function id_of(kind, name)
  return crypto.sha256_hex(kind .. ":" .. name):sub(1, 32)
end

local function token_body(user, project_name, project_id, issued, expires)
  local domain = { id = id_of("domain", user.domain), name = user.domain }
  return { token = {
    expires_at = iso_micro(expires),
    issued_at = iso_micro(issued),
    methods = json.array({ "password" }),
    catalog = json.array(),
    roles = json.array({ { id = id_of("role", "te_admin"), name = "te_admin" } }),
    project = { id = project_id, name = project_name, domain = domain },
    user = { id = id_of("user", user.domain .. "/" .. user.username), name = user.username,
      domain = domain, password_expires_at = "" },
  } }
end

-- POST /v3/auth/tokens
function M.issue(body)
  local req = parse(body)
  if not req then
    return iam_error(400, "Bad Request", "The request body is invalid.")
  end
  local user = find_user(req)
  -- Compared in constant time, and the password is never part of an answer or a log line.
  if not (user and crypto.equal(user.password, req.password)) then
    return refuse("The username or password is wrong.")
  end
  local project_name, project_id = scoped_project(user, req)
  if not project_name then
    return refuse("The request you have made requires authentication.")
  end
  local token = "MIIemu" .. util.random_hex(TOKEN_BYTES)
  local issued = store.now()
  local expires = issued + store.token_ttl()
  -- (the user, whom the gateway throttles: every token issued to one user shares a window)
  store.put_issued_token(token, { project_id = project_id, expires_at = expires,
    user = user.domain .. "/" .. user.username })
  store.count("tokens_issued")
  ngx.header["X-Subject-Token"] = token
  util.send_json(201, token_body(user, project_name, project_id, issued, expires))
end

-- The project of an issued token, or nil, why (nil, nil: not a token IAM issued).
function M.project_of(token)
  local rec = store.issued_token(token)
  if not rec then
    return nil, nil
  end
  if rec.expired or store.now() >= rec.expires_at then
    return nil, "the token has expired"
  end
  return rec.project_id
end

function M.handle(method, body)
  if method ~= "POST" then
    ngx.header["Allow"] = "POST"
    return iam_error(405, "Method Not Allowed", "The method is not allowed for the requested URL.")
  end
  return M.issue(body)
end

return M
