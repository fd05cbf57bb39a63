-- Test vectors kept in the repository (spec/fixtures), so that every spec runs from a bare
-- clone. aksk-vectors.json holds signing cases with the exact Authorization value the official
-- Huawei Cloud SDK signer computes for each.
local cjson = require "cjson"
local read_file = require("spec.support.nginx").read_file

local M = {}

--- The AK/SK signing vectors: { name, ak, sk, method, url, headers, query?, body?,
-- expected_authorization }.
function M.aksk()
  return cjson.decode(assert(read_file("spec/fixtures/aksk-vectors.json")))
end

return M
