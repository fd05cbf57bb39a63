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

--- More vectors for the official signers' special rules (X-Sdk-Content-Sha256:
-- UNSIGNED-PAYLOAD signs that literal, and any other value is signed in place of the body's hash
-- too; header names with '_' are left out; header values are trimmed of Unicode's spaces too, as
-- Python's str.strip and Go's strings.TrimSpace do), in the same shape.
-- Computed by a separate implementation of the official rules that reproduces every vector of
-- aksk() first (spec/fixtures/aksk-vectors-rules.json), the declared hash's by the official
-- Python SDK's signer, which gives every one of them. The underscore case's signature equals
-- the first official vector's: the same request once its unsigned header is left out.
function M.aksk_rules()
  return cjson.decode(assert(read_file("spec/fixtures/aksk-vectors-rules.json")))
end

--- Both lists, official first.
function M.all_aksk()
  local all = M.aksk()
  for _, v in ipairs(M.aksk_rules()) do all[#all + 1] = v end
  return all
end

return M
