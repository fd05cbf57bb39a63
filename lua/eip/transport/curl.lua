--- The libcurl transport: one C session (one reused easy handle) per client, so calls share
-- a keep-alive connection. Used everywhere except inside nginx request phases. It honours the
-- transport contract written in eip.transport (lua/eip/transport/init.lua).
local core = require "eip.core"
local contract = require "eip.transport"

local error_kind = contract.error_kind

local M = {}
local Transport = {}
Transport.__index = Transport

--- A libcurl transport. opts: ca_file, insecure, user_agent (see the contract). `insecure` must
-- be a boolean: a string ("false") or a number would be true to Lua, and turn verification off
-- by accident.
-- @tparam[opt] table opts the options of eip.transport.new: `ca_file`, `insecure`, `user_agent`
-- @treturn table a transport honouring the contract (`send`, `close`, `name` "curl")
-- @raise a Lua error (a string) when the options are not as eip.transport.settings checks them
--   (`insecure` not a boolean, `user_agent` not a string without control characters, ...)
function M.new(opts)
  -- (kept as opts: the settings, which a batch's C multi takes too: see Runner:multi in eip.pipeline)
  local settings = contract.settings("eip.transport.curl", opts)
  local session = core.session(settings)
  return setmetatable({ session = session, opts = settings }, Transport)
end

-- The C core's response to req as the contract has it: `error_kind` added on failure only.
local function finished(resp, req)
  local code = resp.curl_code
  if code then resp.error_kind = error_kind(code, resp.curl_error, req.proxy, resp.proxy_status) end
  return resp
end

--- Sends req (see the contract) and returns the C core's response table, with `error_kind`
-- added on failure only.
-- @tparam table req the contract's request
-- @treturn table the contract's response
-- @raise a Lua error for a caller's bug only (see the contract)
local function send(self, req)
  local resp = finished(self.session:request(req), req)
  local progress = req.progress
  if progress and not resp.unsent then progress.sent = true end
  return resp
end
Transport.send = send
-- (this module's own send: a transport whose send is another, a caller's watching every request
-- on a libcurl transport it wraps, is given every request, a batch's too: see eip.batch.driver)
M.send = send

--- What eip.pipeline's lane sends with (see Runner:run): `req` (the contract's, its url the
-- part every request starts with, no proxy, no body) prepared once in C, each request signed
-- there when `signing` is given (see session:prepare in src/eip_core.c). Returns `lane, session,
-- prepared, finish, send`: send is this module's own, for the lane to be left while a caller's
-- replaces it (to watch every request: on the instance or on the class; the C core's session
-- methods are its own, not the contract's). `lane(session, prepared, path, usable_status,
-- secrets)` sends it to url ..
-- path and returns the status and the request id (or nil) when the answer has usable_status
-- and the request id holds nothing of `secrets` (a list: see core.plain_text), else the
-- response (which `finish(response)` makes what `send` returns) and nil; then the seconds it
-- took. Neither yields.
function Transport:lane(req, signing)
  local session = self.session
  local function finish(resp) return finished(resp, req) end
  return session.lane, session, session:prepare(req, signing), finish, send
end

--- Releases libcurl's connection; the transport is not used after it. Returns nothing.
-- @raise never
function Transport:close()
  self.session:close()
end

M.name = "curl"
Transport.name = "curl" -- what batch looks at to pick the C multi driver
return M
