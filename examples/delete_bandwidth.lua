-- Delete one shared bandwidth and show what came back.
--
--   EIP_ENDPOINT=https://vpc.cn-north-4.myhuaweicloud.com EIP_PROJECT_ID=... OS_AUTH_TOKEN=... \
--     lua5.4 examples/delete_bandwidth.lua <bandwidth_id>
--
-- Exit status, for a script that runs this one:
--   0    deleted (or gone: an attempt whose answer was lost most likely deleted it, and the
--        retry found it missing)
--   1    not deleted: the cloud refused it (404: no such bandwidth; 409: it still holds EIPs...),
--        or nothing could be sent
--   2    bad arguments or settings: nothing was sent
--   3    unknown: the request went out and no answer says what became of it (a timeout, a reset,
--        an answer lost: eip.could_have_acted); check with a GET before deleting again
--   130  Ctrl-C (143 SIGTERM, 129 SIGHUP): the output says whether it may have been carried out
local eip = require "eip"
local core = require "eip.core"

local id = arg[1]
if not id then
  io.stderr:write("usage: lua5.4 examples/delete_bandwidth.lua <bandwidth_id>\n")
  os.exit(2)
end

-- Ctrl-C (SIGTERM, SIGHUP) ends the call at once, as an eip error saying whether the request
-- went out, rather than Lua's "interrupted!" after the request (and any wait between attempts)
-- has run its course.
core.catch_interrupts(true, 1)

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
-- An attempt went out unanswered (a reset, a timeout) and the retry found no such bandwidth: the
-- lost attempt most likely deleted it. Gone either way (missing_ok = true would return it).
if res.lost_answer and eip.is_missing(res, id) then
  print(string.format("gone %s: an earlier attempt's answer was lost, and the retry found it missing (request-id %s)",
    id, res.request_id or "-"))
  os.exit(0)
end
print(tostring(res))
-- Every field a script can branch on:
for _, k in ipairs{ "kind", "status", "reason", "code", "message", "retryable", "request_id", "advice" } do
  if res[k] ~= nil then print(string.format("  %-10s %s", k, tostring(res[k]))) end
end
local acted = eip.could_have_acted(res)
if acted then print("  (it may have been carried out: check before deleting again)") end
local caught, signal = core.interrupts()
if res.kind == "interrupted" and caught > 0 then os.exit(128 + signal) end
if res.kind == "usage" then os.exit(2) end
os.exit(acted and 3 or 1)
