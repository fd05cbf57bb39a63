-- SHA-256 and HMAC-SHA256 for the emulator, through LuaJIT FFI to the libcrypto that nginx
-- already links. This is the emulator's own implementation, deliberately independent of the
-- client's signer (src/sign.c): a bug copied into both would verify itself.
local ffi = require "ffi"
local bit = require "bit"

local M = {}

-- Redefinition raises when the module is loaded again in the same worker (it never is, but a
-- failed cdef must not break the emulator).
pcall(ffi.cdef, [[
typedef struct evp_md_st EVP_MD;
typedef struct engine_st ENGINE;
const EVP_MD *EVP_sha256(void);
int EVP_Digest(const void *data, size_t count, unsigned char *md, unsigned int *size,
               const EVP_MD *type, ENGINE *impl);
unsigned char *HMAC(const EVP_MD *evp_md, const void *key, int key_len,
                    const unsigned char *data, size_t data_len,
                    unsigned char *md, unsigned int *md_len);
]])

-- nginx links libcrypto, so its symbols are in the global namespace; an nginx built without
-- it (or statically) still works if the shared library can be loaded by name.
local function crypto_lib()
  if pcall(function() return ffi.C.EVP_sha256 end) then
    return ffi.C
  end
  for _, name in ipairs({ "crypto", "libcrypto.so.3", "libcrypto.so.1.1" }) do
    local ok, lib = pcall(ffi.load, name)
    if ok then
      return lib
    end
  end
  error("emulator: libcrypto not found (needed for AK/SK signatures)")
end

local C = crypto_lib()

local md_buf = ffi.new("unsigned char[?]", 64)
local len_buf = ffi.new("unsigned int[1]")

local function to_hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

function M.sha256(data)
  if C.EVP_Digest(data, #data, md_buf, len_buf, C.EVP_sha256(), nil) ~= 1 then
    error("emulator: EVP_Digest failed")
  end
  return ffi.string(md_buf, len_buf[0])
end

function M.sha256_hex(data)
  return to_hex(M.sha256(data))
end

function M.hmac_sha256(key, data)
  if C.HMAC(C.EVP_sha256(), key, #key, data, #data, md_buf, len_buf) == nil then
    error("emulator: HMAC failed")
  end
  return ffi.string(md_buf, len_buf[0])
end

function M.hmac_sha256_hex(key, data)
  return to_hex(M.hmac_sha256(key, data))
end

-- Compare two strings in time that depends only on their lengths, so that a client probing
-- signatures learns nothing from the answer time (the gateway's behaviour, worth keeping even
-- in an emulator: it is what the client is written against).
function M.equal(a, b)
  if type(a) ~= "string" or type(b) ~= "string" or #a ~= #b then
    return false
  end
  local diff = 0
  for i = 1, #a do
    diff = bit.bor(diff, bit.bxor(a:byte(i), b:byte(i)))
  end
  return diff == 0
end

return M
