--- Transport selection. A transport has one job: send(req) -> response table (the shape the
-- C core returns: status, request_id, retry_after, content_type, body, truncated, elapsed,
-- new_connections, and curl_code/curl_error when no usable answer came).
local M = {}

--- Picks the transport for where the code runs. opts: ca_file, insecure, user_agent.
function M.new(opts)
  return require("eip.transport.curl").new(opts)
end

return M
