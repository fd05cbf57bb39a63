--- AK/SK request signing (SDK-HMAC-SHA256). The algorithm is in the C core (src/sign.c);
-- this module turns friendly Lua arguments into its input and validates them first.
local core = require "eip.core"
local errors = require "eip.errors"
local validate = require "eip.validate"

local M = {}

local raise = errors.raise_usage

local function percent_decode(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

--- Splits an http(s) URL into the Host value as HTTP clients send it (host, plus :port when
-- the URL names one other than its scheme's default: curl, Python and the SDKs' own clients
-- leave :443 and :80 out), the path (decoded) and any query pairs.
function M.split_url(url)
  if type(url) ~= "string" then raise("url", "must be a string, got %s", type(url)) end
  local scheme, authority, rest = url:match("^([hH][tT][tT][pP][sS]?)://([^/?#]+)(.*)$")
  if not authority or authority:find("@", 1, true) or authority:find("[%s%c]") then
    raise("url", "must be an absolute http(s) URL")
  end
  local default = scheme:lower() == "https" and ":443" or ":80"
  if authority:sub(-#default) == default then authority = authority:sub(1, -#default - 1) end
  rest = rest:gsub("#.*$", "")
  local path, query = rest:match("^([^?]*)%??(.*)$")
  -- The path is signed segment by segment, split at its slashes: an encoded one (%2F) would be
  -- a separator once decoded here, part of a segment to a signer that splits first. The
  -- gateway's reading cannot be told, and a wrong guess is a refused signature.
  if path:find("%%2[fF]") then
    raise("url", "holds an encoded slash (%%2F) in its path, which signers split differently: not signed")
  end
  if path == "" then path = "/" end
  local pairs_ = {}
  for item in query:gmatch("[^&]+") do
    local k, v = item:match("^([^=]*)=?(.*)$")
    pairs_[#pairs_ + 1] = { percent_decode(k), percent_decode(v) }
  end
  return authority, percent_decode(path), pairs_
end

-- The most query parameters, and headers, the C signer takes in one request (src/eip_core.c's
-- MAX_SIGN_PAIRS): more are a usage error naming the one that holds them.
local MAX_PAIRS = 256

local function pairs_of(name, t)
  local list = {}
  if t == nil then return list end
  if type(t) ~= "table" then raise(name, "must be a table of name = value, got %s", type(t)) end
  -- (each entry checked as it comes; a table with a metatable, whose __pairs may never end, is
  -- refused past the signer's bound as it is walked; a plain one is walked whole, its entries'
  -- types checked before its count, below, as before)
  local bounded = getmetatable(t) ~= nil
  validate.entries(name, t, function(k, v, n)
    -- A number is signed as "%d" writes it, the same on every Lua version (tostring writes 10.0
    -- as "10.0" on 5.3+ and "10" on 5.1 and LuaJIT: the signature would change with it); one
    -- that is no whole number has no single spelling the caller's HTTP client surely shares.
    local whole = type(v) == "number" and v == math.floor(v) and v > -2 ^ 53 and v < 2 ^ 53
    if type(k) ~= "string" or (type(v) ~= "string" and not whole) then
      raise(name, "must map strings to strings (or to whole numbers)")
    end
    if bounded and n > MAX_PAIRS then
      raise(name, "cannot be signed: more than %d %s", MAX_PAIRS, name == "query" and "parameters" or "headers")
    end
    list[n] = { k, whole and string.format("%d", v) or v }
  end)
  return list
end

-- The argument a refusal of the C signer (src/sign.c) is about, by its text: the one a usage
-- error names (a header's date or value, the method, a key); "options" for any other.
local SIGNER_ARGUMENTS = { { "^too many", "options" }, { "header", "headers" }, { "X%-Sdk%-Date", "headers" },
  { "method", "method" }, { "the AK ", "ak" }, { "the SK ", "sk" }, { "query", "query" } }
local function argument_of(why)
  for _, a in ipairs(SIGNER_ARGUMENTS) do
    if why:find(a[1]) then return a[2] end
  end
  return "options"
end

-- The bytes a path's or query's text gives the canonical request, percent-encoded as the signer
-- encodes it (unreserved characters, and a path's slashes, as they are).
local function encoded_size(text)
  return #text + 2 * select(2, text:gsub("[^%w%-%._~/]", ""))
end

-- The argument to name when the canonical request passes the signer's bound: of the URL (its
-- path, its query's pairs and the Host it gives), `query` (its first `n_query` pairs: the URL's
-- follow) and `headers` (its first `n_headers`: a Host of the URL's follows), the one that gives
-- it the most bytes.
local function too_long(path, query, n_query, headers, n_headers)
  local sizes = { url = encoded_size(path), query = 0, headers = 0 }
  for i, q in ipairs(query) do
    local name = i <= n_query and "query" or "url"
    sizes[name] = sizes[name] + encoded_size(q[1]) + encoded_size(q[2])
  end
  for i, h in ipairs(headers) do
    local name = i <= n_headers and "headers" or "url"
    sizes[name] = sizes[name] + #h[1] + #h[2]
  end
  local longest = "url"
  for _, name in ipairs{ "query", "headers" } do
    if sizes[name] > sizes[longest] then longest = name end
  end
  return longest
end

-- The options eip.sign accepts (each is documented in eip's init.lua).
M.OPTIONS = { method = true, url = true, headers = true, query = true, body = true, ak = true, sk = true }

--- eip.sign{ method=, url=, headers={...}, query={...}?, body=?, ak=, sk= }
-- -> Authorization header value, canonical request (for debugging). The canonical request
-- never holds the SK (nor the body: only its SHA-256), but it holds every header of `headers`
-- verbatim, so an X-Security-Token passed there (temporary keys) is in it: treat it as secret.
-- Host is taken from the URL unless headers.Host is given; headers must hold X-Sdk-Date.
function M.sign(opts)
  -- The SK (and a security token among the headers) are never quoted, wherever a caller put
  -- them by mistake (the method, a header's name, an option's): registered as a client's are,
  -- held weakly, so for as long as the caller keeps them.
  local secrets = {} -- (a local of the whole call: registered weakly, it must outlive the checks)
  if type(opts) == "table" then
    -- (read as validate.options reads them below, an __index default included: what signs is a
    -- secret; a metamethod that raises is the options' usage error, below)
    local read, sk, headers = pcall(function() return opts.sk, opts.headers end)
    secrets[1] = read and sk or nil
    if read and type(headers) == "table" then
      -- (a __pairs that raises is the headers' usage error, below)
      -- (as far as pairs_of walks it: a __pairs that never ends is refused past MAX_PAIRS)
      local bounded = getmetatable(headers) ~= nil
      pcall(function()
        local n = 0
        for k, v in pairs(headers) do
          n = n + 1
          if bounded and n > MAX_PAIRS + 1 then break end
          if type(k) == "string" and k:lower() == "x-security-token" then secrets[#secrets + 1] = v end
        end
      end)
    end
    for i = #secrets, 1, -1 do
      if type(secrets[i]) ~= "string" or #secrets[i] < 8 then table.remove(secrets, i) end
    end
    validate.register_secrets(secrets)
  end
  opts = validate.options("options", opts, M.OPTIONS)
  local method = validate.string("method", opts.method)
  -- Methods are case-sensitive, and the gateway checks the one it received: the official SDKs
  -- sign (and send) it in upper case; "delete" would be signed for a request nobody sends.
  if method:find("%l") then
    raise("method", "must be upper case, as it is sent (e.g. DELETE), got %s", validate.describe(method))
  end
  local host, path, url_query = M.split_url(opts.url)
  local headers = pairs_of("headers", opts.headers)
  local n_headers = #headers
  local has_host = false
  for _, h in ipairs(headers) do
    if h[1]:lower() == "host" then has_host = true end
  end
  if not has_host then headers[#headers + 1] = { "Host", host } end
  local query = pairs_of("query", opts.query)
  local n_query = #query
  for _, q in ipairs(url_query) do query[#query + 1] = q end
  if #query > MAX_PAIRS then
    raise("query", "cannot be signed: %d parameters (the URL's included), more than %d", #query, MAX_PAIRS)
  end
  if #headers > MAX_PAIRS then
    raise("headers", "cannot be signed: %d headers (Host included), more than %d", #headers, MAX_PAIRS)
  end
  if opts.body ~= nil and type(opts.body) ~= "string" then raise("body", "must be a string") end
  local ak = validate.secret("ak", opts.ak)
  local sk = validate.key("sk", opts.sk)
  -- (an SK given as the AK too would be in the Authorization header, in the clear)
  validate.ak_apart("ak", ak, { sk })
  local ok, auth, canonical = pcall(core.sign, {
    method = method, path = path, query = query, headers = headers, body = opts.body, ak = ak, sk = sk,
  })
  if not ok then
    local why = tostring(auth):gsub("^eip%.core: cannot sign: ", "")
    local argument = why:find("the canonical request exceeds", 1, true)
      and too_long(path, query, n_query, headers, n_headers)
    raise(argument or argument_of(why), "cannot be signed: %s", why)
  end
  return auth, canonical
end

return M
