-- AK/SK signatures (SDK-HMAC-SHA256), verified the way the API gateway does: the canonical
-- request is rebuilt from what was actually received, never from what the client says it sent.
--
--   CanonicalRequest = METHOD \n CanonicalURI \n CanonicalQuery \n CanonicalHeaders \n
--                      SignedHeaders \n HexSHA256(body)
--   StringToSign     = "SDK-HMAC-SHA256" \n X-Sdk-Date \n HexSHA256(CanonicalRequest)
--   Signature        = HexHMAC-SHA256(SK, StringToSign)
--
-- Source: the project's API reference notes, eip-api-facts.md ("AK/SK signing"); checked against the official
-- SDK's vectors (aksk-vectors.json) through the /__emulator/verify control route.
local crypto = require "eip.emulator.server.crypto"

local M = {}

M.ALGORITHM = "SDK-HMAC-SHA256"
M.MAX_SKEW = 15 * 60 -- seconds between X-Sdk-Date and the emulator's clock

-- Canonical pieces ---------------------------------------------------------------------------

local function percent_decode(s)
  return (s:gsub("%%(%x%x)", function(hex) return string.char(tonumber(hex, 16)) end))
end

-- Everything but the unreserved characters A-Z a-z 0-9 - _ . ~ as %XX (upper-case hex).
local function percent_encode(s)
  return (s:gsub("[^A-Za-z0-9%-_%.~]", function(c) return string.format("%%%02X", c:byte()) end))
end

-- Each segment of the raw (as received) path decoded, then encoded canonically, so that a client
-- that percent-encoded more or less than strictly needed still matches; always ending in "/".
function M.canonical_uri(raw_path)
  local uri = raw_path:gsub("[^/]+", function(segment) return percent_encode(percent_decode(segment)) end)
  if uri:sub(-1) ~= "/" then
    uri = uri .. "/"
  end
  return uri
end

-- Decoded {name, value} pairs of a raw query string. "+" is kept literally: the SDK signers
-- encode a space as %20, never as "+".
function M.parse_query(raw)
  local out = {}
  for piece in (raw or ""):gmatch("[^&]+") do
    local name, value = piece:match("^([^=]*)=?(.*)$")
    out[#out + 1] = { percent_decode(name), percent_decode(value) }
  end
  return out
end

-- Byte order, whatever the locale (string < follows strcoll).
local function bytes_before(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = a:byte(i), b:byte(i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

-- Pairs sorted by name then value as they are (decoded: what the official signers sort, Go's
-- and Node's, before encoding; `a{` sorts after `aa`, though its encoding, `a%7B`, would not),
-- then encoded, joined by "&" ("name=" for an empty value).
function M.canonical_query(pairs_list)
  local sorted = {}
  for i, pair in ipairs(pairs_list) do sorted[i] = pair end
  table.sort(sorted, function(a, b)
    if a[1] ~= b[1] then
      return bytes_before(a[1], b[1])
    end
    return bytes_before(a[2], b[2])
  end)
  local out = {}
  for i, pair in ipairs(sorted) do
    out[i] = percent_encode(pair[1]) .. "=" .. percent_encode(pair[2])
  end
  return table.concat(out, "&")
end

-- The space the official signers trim (str.strip, strings.TrimSpace): ASCII's, and Unicode's
-- White_Space in UTF-8 (U+0085, U+00A0, U+1680, U+2000-U+200A, U+2028, U+2029, U+202F, U+205F,
-- U+3000).
local UNICODE_SPACES = { "\194\133", "\194\160", "\225\154\128", "\226\128\168", "\226\128\169", "\226\128\175",
  "\226\129\159", "\227\128\128" }
for c = 128, 138 do UNICODE_SPACES[#UNICODE_SPACES + 1] = "\226\128" .. string.char(c) end

local function trim(s)
  repeat
    local before = #s
    s = s:gsub("^%s+", ""):gsub("%s+$", "")
    for _, u in ipairs(UNICODE_SPACES) do
      if s:sub(1, #u) == u then s = s:sub(#u + 1) end
      if #s >= #u and s:sub(-#u) == u then s = s:sub(1, -#u - 1) end
    end
  until #s == before
  return s
end

-- The value of a header as the signer sees it: a repeated header is joined with ",".
local function header_text(value)
  if type(value) == "table" then
    local parts = {}
    for i, v in ipairs(value) do
      parts[i] = trim(tostring(v))
    end
    return table.concat(parts, ",")
  end
  return trim(tostring(value))
end

-- req: method, path (raw), query (decoded pairs), signed (lower-case names, in the order they are
-- signed), header(name) -> value or nil, body. Returns the canonical request, or nil, reason.
function M.canonical_request(req)
  local lines = {}
  for i, name in ipairs(req.signed) do
    local value = req.header(name)
    if value == nil then
      return nil, "signed header " .. name .. " is missing"
    end
    lines[i] = name .. ":" .. header_text(value) .. "\n"
  end
  -- A declared hash (UNSIGNED-PAYLOAD, the signers' opt-out for streamed bodies, or any other
  -- value) is signed as it is, whatever the body; an empty one declares nothing.
  local declared = req.header("x-sdk-content-sha256")
  declared = declared ~= nil and header_text(declared) or ""
  local body_hash = declared ~= "" and declared or crypto.sha256_hex(req.body or "")
  return table.concat({
    req.method:upper(), M.canonical_uri(req.path), M.canonical_query(req.query),
    table.concat(lines), table.concat(req.signed, ";"), body_hash,
  }, "\n")
end

function M.string_to_sign(date, canonical)
  return M.ALGORITHM .. "\n" .. date .. "\n" .. crypto.sha256_hex(canonical)
end

function M.authorization(ak, signed, signature)
  return string.format("%s Access=%s, SignedHeaders=%s, Signature=%s", M.ALGORITHM, ak,
    table.concat(signed, ";"), signature)
end

-- X-Sdk-Date ---------------------------------------------------------------------------------

-- Days since 1970-01-01 of a proleptic Gregorian date (so no dependence on the worker's TZ,
-- which os.time would bring in).
local function days_from_civil(y, m, d)
  if m <= 2 then
    y = y - 1
  end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

local MONTH_DAYS = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }

-- Unix time of "YYYYMMDDTHHMMSSZ", or nil if it is not exactly that shape or not a real time.
function M.parse_date(text)
  if type(text) ~= "string" then
    return nil
  end
  local y, mo, d, h, mi, s = text:match("^(%d%d%d%d)(%d%d)(%d%d)T(%d%d)(%d%d)(%d%d)Z$")
  if not y then
    return nil
  end
  y, mo, d, h, mi, s = tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi), tonumber(s)
  if mo < 1 or mo > 12 or d < 1 or d > MONTH_DAYS[mo] or h > 23 or mi > 59 or s > 59 then
    return nil
  end
  return days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s
end

-- Authorization header -----------------------------------------------------------------------

-- { ak, signed = {names}, signature } of an SDK-HMAC-SHA256 Authorization value, or nil, reason.
function M.parse_authorization(value)
  if value == nil then
    return nil, "authorization not found"
  end
  if type(value) ~= "string" then
    return nil, "more than one authorization header"
  end
  local rest = value:match("^%s*SDK%-HMAC%-SHA256%s+(.-)%s*$")
  if not rest then
    return nil, "authorization is not an SDK-HMAC-SHA256 signature"
  end
  local fields = {}
  for item in rest:gmatch("[^,]+") do
    local key, val = item:match("^%s*([%a]+)=(%S*)%s*$")
    if not key or fields[key] then
      return nil, "malformed SDK-HMAC-SHA256 authorization"
    end
    fields[key] = val
  end
  local ak, names, signature = fields.Access, fields.SignedHeaders, fields.Signature
  if not (ak and ak ~= "" and names and names ~= "" and signature and signature:match("^%x+$")) then
    return nil, "malformed SDK-HMAC-SHA256 authorization"
  end
  -- The lower-case names, sorted (the signing rules; every official signer writes them so): a
  -- signer that sent them otherwise would sign canonical headers in another order than it says.
  local signed = {}
  for name in names:gmatch("[^;]+") do
    if name ~= name:lower() or (signed[#signed] and signed[#signed] >= name) then
      return nil, "SignedHeaders must be the lower-case header names, sorted"
    end
    signed[#signed + 1] = name
  end
  return { ak = ak, signed = signed, signature = signature:lower() }
end

-- Verification -------------------------------------------------------------------------------

local function is_signed(auth, name)
  for _, n in ipairs(auth.signed) do
    if n == name then
      return true
    end
  end
  return false
end

local function check_date(req, now)
  local date = req.header("x-sdk-date")
  local t = type(date) == "string" and M.parse_date(date)
  if not t then
    return nil, "x-sdk-date is missing or not YYYYMMDDTHHMMSSZ"
  end
  if math.abs(t - now) > M.MAX_SKEW then
    return nil, "x-sdk-date is more than 15 minutes from the server time"
  end
  return date
end

-- Temporary credentials carry a security token that must be sent and signed; permanent ones
-- must not carry one.
local function check_security_token(req, auth, cred)
  local token = req.header("x-security-token")
  if not cred.security_token then
    if token ~= nil then
      return nil, "x-security-token sent with a permanent access key"
    end
    return true
  end
  if token == nil then
    return nil, "x-security-token is required for temporary credentials"
  end
  if not is_signed(auth, "x-security-token") then
    return nil, "x-security-token is not a signed header"
  end
  if not crypto.equal(header_text(token), cred.security_token) then
    return nil, "x-security-token is invalid or expired"
  end
  return true
end

-- Verify a received request. req: as for canonical_request, plus authorization (the header
-- value); credential(ak) -> { sk, project_id, security_token? } or nil; now: the emulator's
-- clock. Returns the AK's credential record, or nil, a reason that names no secret.
function M.verify(req, credential, now)
  local auth, why = M.parse_authorization(req.authorization)
  if not auth then
    return nil, why
  end
  -- Only X-Sdk-Date must be signed: the official Go signer signs no Host, and the gateway
  -- accepts that (lua-eip signs it all the same).
  for _, required in ipairs({ "x-sdk-date" }) do
    if not is_signed(auth, required) then
      return nil, required .. " is not a signed header"
    end
  end
  local date
  date, why = check_date(req, now)
  if not date then
    return nil, why
  end
  local cred = credential(auth.ak)
  if not cred then
    return nil, "Get secretKey failed,ak:" .. auth.ak .. ",err:ak not exist" -- (the gateway's words)
  end
  local ok
  ok, why = check_security_token(req, auth, cred)
  if not ok then
    return nil, why
  end
  req.signed = auth.signed
  local canonical
  canonical, why = M.canonical_request(req)
  if not canonical then
    return nil, why
  end
  local expected = crypto.hmac_sha256_hex(cred.sk, M.string_to_sign(date, canonical))
  if not crypto.equal(expected, auth.signature) then
    return nil, "verify aksk signature fail"
  end
  return cred
end

-- The /__emulator/verify control: sign a described request with this implementation.
-- spec: method, url, headers {name = value}, query? {name = value or {values}}, body?, ak, sk,
-- signed_headers? (names; default: every given header whose name has no '_', plus host). Returns
-- { authorization, signature, canonical, string_to_sign, signed_headers }, or nil, reason.

local DEFAULT_PORTS = { http = "80", https = "443" }

local function split_url(url)
  local scheme, authority, path, query = url:match("^(%a[%w+.-]*)://([^/?#]*)([^?#]*)%??([^#]*)")
  if not scheme then
    return nil
  end
  authority = authority:gsub("^.*@", "")
  local host, port = authority:match("^(.*):(%d+)$")
  if host and DEFAULT_PORTS[scheme:lower()] == port then
    authority = host -- the signers leave a default port out of Host
  end
  return authority, path ~= "" and path or "/", query
end

local function query_pairs(raw, extra)
  local list = M.parse_query(raw)
  local names = {}
  for name in pairs(extra or {}) do
    names[#names + 1] = name
  end
  table.sort(names)
  for _, name in ipairs(names) do
    local value = extra[name]
    for _, v in ipairs(type(value) == "table" and value or { value }) do
      list[#list + 1] = { tostring(name), tostring(v) }
    end
  end
  return list
end

local function check_spec(spec)
  if type(spec) ~= "table" then
    return nil, "body must be a JSON object"
  end
  for _, key in ipairs({ "method", "url", "ak", "sk" }) do
    if type(spec[key]) ~= "string" or spec[key] == "" then
      return nil, key .. " must be a non-empty string"
    end
  end
  if spec.headers ~= nil and type(spec.headers) ~= "table" then
    return nil, "headers must be an object"
  end
  if spec.query ~= nil and type(spec.query) ~= "table" then
    return nil, "query must be an object"
  end
  if spec.body ~= nil and type(spec.body) ~= "string" then
    return nil, "body must be a string"
  end
  if spec.signed_headers ~= nil and type(spec.signed_headers) ~= "table" then
    return nil, "signed_headers must be a list"
  end
  return true
end

function M.compute(spec)
  local ok, why = check_spec(spec)
  if not ok then
    return nil, why
  end
  local host, path, raw_query = split_url(spec.url)
  if not host then
    return nil, "url must be scheme://host[:port]/path[?query]"
  end
  local headers = {}
  for name, value in pairs(spec.headers or {}) do
    headers[tostring(name):lower()] = tostring(value)
  end
  headers.host = headers.host or host
  local signed = {}
  for name in pairs(headers) do
    -- The official signers leave names with '_' out (gateways may drop such headers).
    if not name:find("_", 1, true) then signed[#signed + 1] = name end
  end
  table.sort(signed)
  if spec.signed_headers then
    signed = {}
    for i, name in ipairs(spec.signed_headers) do
      signed[i] = tostring(name):lower()
    end
    table.sort(signed) -- (as the gateway requires them: see parse_authorization)
  end
  local date = headers["x-sdk-date"]
  if not date then
    return nil, "headers must include X-Sdk-Date"
  end
  local canonical
  canonical, why = M.canonical_request{
    method = spec.method, path = path, query = query_pairs(raw_query, spec.query), signed = signed,
    header = function(name) return headers[name] end, body = spec.body,
  }
  if not canonical then
    return nil, why
  end
  local sts = M.string_to_sign(date, canonical)
  local signature = crypto.hmac_sha256_hex(spec.sk, sts)
  return {
    authorization = M.authorization(spec.ak, signed, signature), signature = signature,
    canonical = canonical, string_to_sign = sts, signed_headers = table.concat(signed, ";"),
  }
end

return M
