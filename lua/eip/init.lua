--- lua-eip: Huawei Cloud EIP shared-bandwidth operations from Lua.
-- local eip = require "eip"
-- local client = eip.new{ endpoint = ..., project_id = ..., token = ... }
-- client:delete_bandwidth(id)
local core = require "eip.core"
local client = require "eip.client"
local errors = require "eip.errors"
local validate = require "eip.validate"
local retry = require "eip.retry"

local M = {}

M._VERSION = client.VERSION
M.new = client.new
M.is_error = errors.is_error
M.sign = require("eip.sign").sign
--- What a batch's on_result returns to stop it (see client:delete_bandwidths).
M.STOP = client.STOP

-- A status entry of the C table (facts: reason, class, descriptions, advice) with what the
-- retry policy decides about it.
local function with_policy(entry)
  entry.retryable = retry.status_retryable(entry.code)
  return entry
end

--- eip.status(code) -> { code, reason, description, description_zh, class, retryable,
-- advice, seeds, documented } from the C table.
function M.status(code)
  -- luacheck: push ignore 143 (math.type and math.tointeger: Lua 5.3+, checked first)
  if math.type and math.type(code) == "float" and code == math.floor(code) then
    code = math.tointeger(code)
  end
  -- luacheck: pop
  if type(code) ~= "number" or code ~= math.floor(code) then
    errors.raise_usage("code", "must be an integer HTTP status, got %s", type(code))
  end
  return with_policy(core.status(code))
end

--- Every documented status, in code order.
function M.statuses()
  local all = core.statuses()
  for _, entry in ipairs(all) do with_policy(entry) end
  return all
end

--- One-shot form: eip.delete_bandwidth{ bandwidth_id = ..., <any eip.new option> }.
-- The bandwidth id is validated before any connection is made.
function M.delete_bandwidth(opts)
  local known = { bandwidth_id = true }
  for k in pairs(client.OPTIONS) do known[k] = true end
  validate.options("options", opts, known)
  validate.id("bandwidth_id", opts.bandwidth_id)
  local new_opts = {}
  for k, v in pairs(opts) do
    if k ~= "bandwidth_id" then new_opts[k] = v end
  end
  local c = client.new(new_opts)
  local ok, res = pcall(c.delete_bandwidth, c, opts.bandwidth_id)
  c:close()
  if not ok then error(res, 0) end
  return res
end

return M
