-- Delete one shared bandwidth and show what came back.
--
--   EIP_ENDPOINT=https://vpc.cn-north-4.myhuaweicloud.com EIP_PROJECT_ID=... OS_AUTH_TOKEN=... \
--     lua5.4 examples/delete_bandwidth.lua <bandwidth_id>
--
-- Exit status: 0 deleted, 1 the cloud refused or could not be reached, 2 bad arguments.
local eip = require "eip"

local id = arg[1]
if not id then
  io.stderr:write("usage: lua5.4 examples/delete_bandwidth.lua <bandwidth_id>\n")
  os.exit(2)
end

local ok, res = pcall(function()
  local client = eip.new{
    endpoint = os.getenv("EIP_ENDPOINT"),
    project_id = os.getenv("EIP_PROJECT_ID"),
    token = os.getenv("OS_AUTH_TOKEN"),
    timeout = 30,
  }
  return client:delete_bandwidth(id)
end)

if ok then
  print(string.format("deleted %s: %d %s (request-id %s, %.1f ms)",
    res.bandwidth_id, res.status, res.reason, res.request_id or "-", res.elapsed * 1000))
  os.exit(0)
end

if not eip.is_error(res) then error(res, 0) end -- a bug, not a cloud answer: show the traceback
print(tostring(res))
-- Every field a script can branch on:
for _, k in ipairs{ "kind", "status", "reason", "code", "message", "retryable", "request_id", "advice" } do
  if res[k] ~= nil then print(string.format("  %-10s %s", k, tostring(res[k]))) end
end
os.exit(res.kind == "usage" and 2 or 1)
