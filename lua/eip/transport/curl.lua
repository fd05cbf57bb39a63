--- The libcurl transport: one C session (one reused easy handle) per client, so calls share
-- a keep-alive connection. Used everywhere except inside nginx request phases.
local core = require "eip.core"

local M = {}
local Transport = {}
Transport.__index = Transport

--- opts: ca_file, insecure, user_agent
function M.new(opts)
  local session = core.session{
    ca_file = opts.ca_file,
    insecure = opts.insecure,
    user_agent = opts.user_agent,
  }
  return setmetatable({ session = session }, Transport)
end

--- req: method, url, headers (list of "Name: value"), body, timeout, connect_timeout,
-- body_cap. Returns the C response table: status, request_id, retry_after, content_type,
-- body, truncated, elapsed, new_connections, and curl_code/curl_error on failure.
function Transport:send(req)
  return self.session:request(req)
end

function Transport:close()
  self.session:close()
end

M.name = "curl"
Transport.name = "curl" -- what batch looks at to pick the C multi driver
return M
