--- The libcurl transport: one C session (one reused easy handle) per client, so calls share
-- a keep-alive connection. Used everywhere except inside nginx request phases. It honours the
-- transport contract written in eip.transport (lua/eip/transport/init.lua).
local core = require "eip.core"
local contract = require "eip.transport"

local error_kind = contract.error_kind

local M = {}
local Transport = {}
Transport.__index = Transport

--- opts: ca_file, insecure, user_agent (see the contract)
function M.new(opts)
  local session = core.session{
    ca_file = opts.ca_file,
    insecure = opts.insecure,
    user_agent = opts.user_agent,
  }
  return setmetatable({ session = session }, Transport)
end

--- Sends req (see the contract) and returns the C core's response table, with `error_kind`
-- added on failure only: the success path costs what it did before (it is benchmarked).
function Transport:send(req)
  local resp = self.session:request(req)
  local code = resp.curl_code
  if code then resp.error_kind = error_kind(code, resp.curl_error, req.proxy, resp.proxy_status) end
  return resp
end

function Transport:close()
  self.session:close()
end

M.name = "curl"
Transport.name = "curl" -- what batch looks at to pick the C multi driver
return M
