-- Test vectors kept in the repository (spec/fixtures), so that every spec runs from a bare
-- clone. aksk-vectors.json holds signing cases with the exact Authorization value the official
-- Huawei Cloud SDK signer computes for each.
local cjson = require "cjson"

local M = {}

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

--- The AK/SK signing vectors: { name, ak, sk, method, url, headers, query?, body?,
-- expected_authorization }.
function M.aksk()
  return cjson.decode(read("spec/fixtures/aksk-vectors.json"))
end

return M
