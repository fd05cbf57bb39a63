--- Argument validation. Runs before any I/O: a failure here is a "usage" error naming the
-- argument, and nothing is sent. Messages never echo secret values.
local core = require "eip.core"
local errors = require "eip.errors"

local M = {}

local raise = errors.raise_usage
local is_id = core.is_id
local clean_id = core.clean_id
local MAX_ID = 64
local MAX_SECRET = 65536

-- The secrets of every client (their providers' and proxies' tables, held weakly, registered by
-- eip.client): a value that holds one, or a piece of 8 bytes of one, is never quoted in a message.
-- Process-wide, as a message may be made before the client is known (a wrong over-redaction
-- costs a quote). Whether an id may be sent is the client's own question (see M.secret_id).
local registered = setmetatable({}, { __mode = "k" })
local secret_ranges = core.secret_ranges

--- Registers a table of secret values (strings; it may change later, in place).
-- @tparam table t
function M.register_secrets(t)
  if type(t) == "table" then registered[t] = true end
end

-- Does string s hold a registered secret (whole, or a piece of 8 bytes or more)?
local function holds_secret(s)
  for t in pairs(registered) do
    if secret_ranges(s, t) then return true end
    for _, v in pairs(t) do
      if v == s then return true end -- (shorter than 8 bytes: only the whole value is one)
    end
  end
  return false
end
M.holds_secret = holds_secret

-- Does s hold a whole value of the list, one of `min` bytes or more (default 8)?
local function holds_whole(s, list, min)
  for _, v in pairs(list or {}) do
    if type(v) == "string" and #v >= (min or 8) and s:find(v, 1, true) then return true end
  end
  return false
end

--- s with every secret of the list (a table of strings) replaced by `<redacted>`, in one pass
-- (a replacement is never looked at again): each piece the C core finds (a whole copy, or any
-- piece of 8 bytes or more: a copy cut short by a bound, or with its start cut off), with the
-- "..." that marks a text cut by a bound (the C core keeps 255 bytes of a header, eip.body 512
-- of a message) when the piece ends there.
-- @tparam string s
-- @tparam table secrets
-- @treturn string
function M.redact(s, secrets)
  local ranges = secret_ranges(s, secrets)
  if not ranges then return s end
  local out, from, n = {}, 1, #ranges
  for i = 1, n, 2 do
    local to = ranges[i + 1]
    if i == n - 1 and s:sub(to + 1) == "..." then to = #s end
    out[#out + 1] = s:sub(from, ranges[i] - 1)
    out[#out + 1] = "<redacted>"
    from = to + 1
  end
  out[#out + 1] = s:sub(from)
  return table.concat(out)
end

--- s with the pieces of 8 bytes or more of every registered secret (whole copies included)
-- replaced by `<redacted>`, as M.redact does for one list; unlike M.scrub, a short secret quoted
-- whole is left: in output of the command's own making (JSON, a table) a short one quoted whole
-- may be any key or value ("id", "pass").
-- @tparam string s
-- @treturn string
function M.scrub_pieces(s)
  for t in pairs(registered) do s = M.redact(s, t) end
  return s
end

--- s with every registered secret in it replaced by `<redacted>`: its pieces of 8 bytes or more
-- (whole copies included), and a shorter one where it is quoted whole (`"pw12"`: a message of
-- the caller's own making that quotes what it was given, the command line's). A short secret
-- elsewhere in the text is left: it cannot be told from an ordinary word ("proxy", "help").
-- @tparam string s
-- @treturn string
function M.scrub(s)
  s = M.scrub_pieces(s)
  for t in pairs(registered) do
    for _, v in pairs(t) do
      if type(v) == "string" and #v < 8 and #v > 0 then
        local quoted = string.format("%q", v)
        local i, j = s:find(quoted, 1, true)
        while i do
          s = s:sub(1, i - 1) .. '"<redacted>"' .. s:sub(j + 1)
          i, j = s:find(quoted, i + 12, true)
        end
      end
    end
  end
  return s
end

errors.set_usage_scrub(M.scrub)

--- s with each control byte written as a decimal escape (see eip.errors.escape_controls).
M.escape_controls = errors.escape_controls

local SECRET_ID = "holds a credential (a key, token or password pasted where an id goes?): nothing sent, "
  .. "and the value is not shown"

--- Refuses a value that holds a registered secret (M.holds_secret: the command's environment
-- and profile file, every client's own): a key or token pasted where an id goes would be sent in
-- a URL and printed on a result line.
-- @tparam string name the argument's name
-- @param v the value (anything but a string passes)
-- @return v
-- @raise a `usage` @{eip.error} naming `name`, which does not show the value
function M.refuse_held(name, v)
  if type(v) == "string" and holds_secret(v) then raise(name, SECRET_ID) end
  return v
end

--- Refuses a URL that holds a whole registered secret of 16 bytes or more (an SK or a token
-- pasted into an endpoint's host would be sent in a DNS lookup and a Host header). Only whole
-- ones that long: a proxy's user, registered too, may be an address on the endpoint's own
-- domain ("svc@corp.example.com"), whose pieces an endpoint may hold.
-- @tparam string name the argument's name
-- @param v the URL (anything but a string passes)
-- @return v
-- @raise a `usage` @{eip.error} naming `name`, which does not show the value
function M.refuse_held_url(name, v)
  if type(v) ~= "string" then return v end
  for t in pairs(registered) do
    if holds_whole(v, t, 16) then
      raise(name, "holds a credential (a key or token pasted into it?): nothing sent, and the value is not shown")
    end
  end
  return v
end

--- An id (M.id) that holds none of `secrets` (tables of secret values: a client's own), whole or
-- a piece of 8 bytes: an SK pasted where an id goes would be sent in a URL and shown on result
-- lines. Only the client's own secrets: a fake one of a test elsewhere in the process
-- ("...0000000000...") must not refuse another client's ids.
-- @tparam string name the argument's name
-- @param v the value
-- @tparam table secrets the client's secret values
-- @tparam[opt] table more more of them (a proxy's credentials)
-- @return v
-- @raise a `usage` @{eip.error} naming `name`, which does not show the value
function M.secret_id(name, v, secrets, more)
  if clean_id(v, secrets, more) then return v end -- (the common case: the checks below in one C call)
  if not is_id(v) then M.id(name, v) end -- (raises)
  -- (A secret shorter than 8 bytes is one only as the whole value: core.secret_ranges says so too.)
  if secret_ranges(v, secrets) or (more and secret_ranges(v, more)) then raise(name, SECRET_ID) end
  return v
end


-- Does s hold a piece of 16 bytes or more of a value of the list (or of a form of one: see
-- src/secrets.h)?
local function holds_long_piece(s, list)
  local ranges = list and secret_ranges(s, list)
  for i = 1, ranges and #ranges or 0, 2 do
    if ranges[i + 1] - ranges[i] + 1 >= 16 then return true end
  end
  return false
end

-- Does s hold 16 bytes in a row of a value of the list, as they are (not another form of them)?
local function holds_raw_piece(s, list)
  for _, v in pairs(list or {}) do
    if type(v) == "string" then
      for i = 1, #v - 15 do
        if s:find(v:sub(i, i + 15), 1, true) then return true end
      end
    end
  end
  return false
end

-- The cloud's own domains, as the region table writes its endpoints: a host ending in one is
-- looked at without it (a password may be made of the vendor's name: "Myhuaweicloud.com").
local CLOUD_DOMAINS = { ".myhuaweicloud.com", ".myhuaweicloud.eu" }

--- An endpoint (a URL, normalised: see M.endpoint) whose host (but for the cloud's own domain
-- at its end) holds no piece of 16 bytes or more of `secrets` (the credentials), and whose path
-- holds none of them or of `more` (the proxy's too) whole, nor 16 bytes of them in any form
-- (another case, base64): an SK pasted after the endpoint, or into its host, whole or cut, would
-- be sent in every request's URL (and Host, and name lookups) and shown wherever the URL is (a
-- dry run, tostring of a client). Not the 8-byte pieces ids are refused for, nor the other
-- forms in the host: a password may share a word with a host name ("HuaweiCloud@2024" and
-- myhuaweicloud.com), and a proxy's user be named after it.
-- @tparam string name the argument's name
-- @tparam string v the URL
-- @tparam table secrets the credentials' secret values
-- @tparam[opt] table more more of them (the proxy's included)
-- @return v
-- @raise a `usage` @{eip.error} naming `name`, which does not show the value
function M.secret_url(name, v, secrets, more)
  local rest = v:match("^%a[%w+.-]*://(.*)$") or v
  local authority, path = rest:match("^([^/?#]*)(.*)$")
  local host = authority:gsub(":%d+$", "")
  for _, domain in ipairs(CLOUD_DOMAINS) do
    if #host > #domain and host:sub(-#domain):lower() == domain then host = host:sub(1, -#domain - 1) end
  end
  if holds_raw_piece(host, secrets) or holds_whole(path, secrets) or holds_whole(path, more)
      or holds_long_piece(path, secrets) or holds_long_piece(path, more) then
    raise(name, "holds a credential (a key, token or password pasted into a URL?): nothing sent, and the "
      .. "value is not shown")
  end
  return v
end

-- A string a message names by its length only, unlooked into: longer than any secret taken, so
-- never quoted, and looking for secrets in it would cost its length times every client's secrets
-- (a usage error about a pasted megabyte took seconds).
local function too_long_to_look(s)
  return #s > MAX_SECRET and string.format("a %d-character string", #s)
end

--- How a usage error names an unknown option's key `k` (a string): quoted, or, when it holds a
-- credential or is longer than `quoted_max`, not shown (a huge one is not looked into: see
-- too_long_to_look).
-- @tparam string k the key
-- @tparam integer quoted_max the longest key quoted
-- @treturn string "whose name ..." or the quoted key
function M.key_name(k, quoted_max)
  local long = too_long_to_look(k)
  if long then return "whose name is " .. long end
  if holds_secret(k) then return "whose name holds a credential (not shown)" end
  if #k > quoted_max then return string.format("whose name is a %d-character string", #k) end
  return string.format("%q", k)
end

-- s, written by string.format or tostring, with the C locale's decimal point: Lua 5.1-5.4 write
-- the one of the LC_NUMERIC a script set (os.setlocale("de_DE.UTF-8"): "0,5"), LuaJIT always ".".
local function c_point(s)
  local point = string.format("%.1f", 0.5):match("^0(.+)5$")
  if point == nil or point == "." then return s end
  return (s:gsub(point:gsub("%p", "%%%0"), ".", 1))
end

--- A number as a message writes it, the same on every Lua: 404, 404.5, 1000000 (not
-- "1000000.0", Lua 5.3+'s tostring of a float), inf, nan, 2147483648, 1e+20; the decimal point
-- a ".", whatever locale a script set (`os.setlocale`).
-- @tparam number n
-- @treturn string
local function number_text(n)
  if n ~= n then return "nan" end
  if math.type and math.type(n) == "integer" then return tostring(n) end -- luacheck: ignore 143 (5.3+)
  return c_point(string.format("%.14g", n))
end
M.number_text = number_text

--- A number with `digits` digits after a "." (string.format's "%.Nf"), whatever locale a script
-- set (`os.setlocale`): what a format read by other programs writes (Prometheus' text format).
-- @tparam number n
-- @tparam integer digits
-- @treturn string
function M.fixed(n, digits)
  return c_point(string.format("%." .. digits .. "f", n))
end

local function describe(v)
  if type(v) == "string" then
    local long = too_long_to_look(v)
    if long then return long end
    if holds_secret(v) then return "a value that holds a credential (not shown)" end
    -- (a URL's `user:password@` given where something else goes: a proxy's, typed in the wrong place)
    -- (a password may hold '/': "bob:se/cret@host"; not "https://<redacted>@host", which the
    -- endpoint's error shows on purpose)
    if (not v:find("^%a[%w+.-]*://") and v:find("^[^@/]*:[^@]*@")) or v:find("//[^@/]*:[^@]*@") then
      return string.format("a %d-character value with what may be credentials (not shown)", #v)
    end
    if #v > 40 then return string.format("a %d-character string", #v) end
    return string.format("%q", v):gsub("\\\n", "\\n")
  end
  if type(v) == "number" then return v ~= v and "NaN" or number_text(v) end
  return type(v) == "nil" and "nothing" or ("a " .. type(v))
end

--- A value as a message quotes it: a string that holds a registered secret is not shown.
-- @param v the value
-- @treturn string
M.describe = describe

--- A resource id or project id: 1..64 characters of [A-Za-z0-9._-], not "." or "..".
-- The character set makes path traversal, encoding tricks and header injection impossible
-- by construction, so ids can be placed into URLs without escaping.
function M.id(name, v)
  -- Every call validates an id: the C core answers the common case (a valid one) without the
  -- pattern match below, which tests a bracket class per byte.
  if is_id(v) then return v end
  if type(v) ~= "string" then raise(name, "must be a string, got %s", describe(v)) end
  if v == "" then raise(name, "must not be empty") end
  if #v > MAX_ID then raise(name, "must be at most %d characters, got %d", MAX_ID, #v) end
  if v:find("[^0-9A-Za-z._-]") then
    raise(name, "may only contain letters, digits, '.', '_' and '-', got %s", describe(v))
  end
  raise(name, "must not be %q", v)
end

--- A secret (token, key, password): a non-empty string without control characters, not
-- only spaces (a header whose value is blank is not sent at all: a token of spaces would go as
-- no X-Auth-Token). The value itself never appears in the message.
function M.secret(name, v)
  if type(v) ~= "string" then raise(name, "must be a string, got %s", type(v)) end
  if v == "" then raise(name, "must not be empty") end
  if not v:find("[^ ]") then raise(name, "must not be blank (it holds only spaces)") end
  if #v > MAX_SECRET then raise(name, "is too long (%d bytes, at most %d)", #v, MAX_SECRET) end
  if v:find("[%z\1-\31\127]") then
    raise(name, "must not contain control characters (CR, LF, NUL, ...)")
  end
  return v
end

--- Is `v` printable ASCII without a space or a quote mark, as every key, token, project id and
-- endpoint of the cloud's is? (A non-breaking space, a typographic quote or an env file's quotes
-- pasted with one would be sent, or signed with.)
-- @tparam string v
-- @treturn boolean
function M.plain(v)
  return not v:find("[^!-~]") and not v:find("[\"'`]")
end

--- A secret key or a security token (an SK, the security token of temporary keys): a secret
-- (see @{secret}) of printable ASCII without a space or a quote mark. The cloud's keys and
-- tokens hold none; a non-breaking space or a typographic quote pasted with one, or the quotes
-- an env file keeps (Docker's --env-file, systemd's EnvironmentFile with quotes inside), would be
-- signed with, and every signature refused: five in a row lock the key. The value itself never
-- appears in the message.
function M.key(name, v)
  M.secret(name, v)
  if not M.plain(v) then
    raise(name, "must hold only printable ASCII characters, without spaces or quote marks (a non-breaking "
      .. "space, a typographic quote or an env file's quotes pasted with it?)")
  end
  return v
end

-- What check_keys in src/sign.c accepts: an AK goes into the Authorization header, where a
-- ',' or a space would split it (RFC 9110 token characters only).
local AK_PATTERN = "^[%w!#%$%%&'%*%+%-%.%^_`|~]+$"

--- An access key (AK): a secret-like string (see @{secret}) of RFC 9110 token characters only,
-- as it is sent in the Authorization header. The value never appears in the message.
-- @tparam string name the argument's name
-- @param v the value
-- @return v
-- @raise a `usage` @{eip.error} naming `name`
function M.access_key(name, v)
  M.secret(name, v)
  if not v:find(AK_PATTERN) then
    raise(name, "may only hold letters, digits and !#$%%&'*+-.^_`|~ (it is sent in the Authorization header)")
  end
  return v
end

--- An access key (checked already) that holds no piece of 16 bytes or more of `secrets` (the SK,
-- the security token), in any of their forms: one pasted where the AK goes (the keys swapped, a
-- line copied twice) would be sent in the clear in every request's Authorization header
-- (`Access=...`), and quoted back by the gateway's refusal. The value never appears in the message.
-- @tparam string name the argument's name
-- @tparam string v the AK
-- @tparam table secrets the secret values given with it
-- @return v
-- @raise a `usage` @{eip.error} naming `name`
function M.ak_apart(name, v, secrets)
  if holds_long_piece(v, secrets) then
    raise(name, "holds the SK or the security token (pasted where the AK goes?): nothing sent, and the value is "
      .. "not shown")
  end
  return v
end

-- An IPv6 address as RFC 4291 writes it (the text between an URL's brackets): up to eight
-- groups of 1-4 hex digits, at most one "::", optionally ending in a dotted IPv4 address.
local function ipv6_literal(a)
  local groups = a
  local head, quad = a:match("^(.*:)(%d+%.%d+%.%d+%.%d+)$")
  if head then
    for n in quad:gmatch("%d+") do
      if #n > 3 or tonumber(n) > 255 then return false end
    end
    groups = head .. "0:0" -- the IPv4 part counts as two groups
  end
  if groups:find("[^%x:]") or groups:find(":::", 1, true) then return false end
  local _, doubles = groups:gsub("::", "")
  if doubles > 1 then return false end
  if groups:find("^:[^:]") or groups:find("[^:]:$") then return false end -- a lone leading/trailing ':'
  local count = 0
  for g in groups:gmatch("[^:]+") do
    if #g > 4 then return false end
    count = count + 1
  end
  if doubles == 1 then return count <= 7 end
  return count == 8
end

-- A valid IPv6 literal `a` as libcurl's URL parser leaves it, and so the Host it sends: its
-- inet_ntop form (lib/inet_ntop.c: groups in lower-case hex without leading zeros, the first
-- longest run of two or more zero groups as "::", an IPv4 tail after 0:0:0:0:0:0 or
-- 0:0:0:0:0:ffff) when that is shorter than `a`, else `a` as written.
local function ipv6_curl_form(a)
  local words, v4 = {}, a:match("[:](%d+%.%d+%.%d+%.%d+)$")
  local text = v4 and a:sub(1, -#v4 - 1) .. "0:0" or a
  local head, tail = text:match("^(.-)::(.*)$")
  local function add(part)
    for g in part:gmatch("[^:]+") do words[#words + 1] = tonumber(g, 16) end
  end
  add(head or text)
  if head then
    local n = #words
    add(tail)
    for _ = 1, 8 - #words do table.insert(words, n + 1, 0) end
  end
  if v4 then
    local b1, b2, b3, b4 = v4:match("(%d+)%.(%d+)%.(%d+)%.(%d+)")
    words[7], words[8] = tonumber(b1) * 256 + tonumber(b2), tonumber(b3) * 256 + tonumber(b4)
  end
  local best, best_len, run = nil, 1, 0
  for i = 1, 9 do
    if words[i] == 0 then
      run = run + 1
    else
      if run > best_len then best, best_len = i - run, run end
      run = 0
    end
  end
  local out = {}
  for i = 1, 8 do
    if best and i >= best and i < best + best_len then
      if i == best then out[#out + 1] = ":" end
    else
      if i > 1 then out[#out + 1] = ":" end
      if i == 7 and best == 1 and (best_len == 6 or (best_len == 5 and words[6] == 0xffff)) then
        local floor = math.floor
        out[#out + 1] = string.format("%d.%d.%d.%d", floor(words[7] / 256), words[7] % 256,
          floor(words[8] / 256), words[8] % 256)
        break
      end
      out[#out + 1] = string.format("%x", words[i])
    end
  end
  if best and best + best_len == 9 then out[#out + 1] = ":" end
  local short = table.concat(out)
  return #short < #a and short or a
end

--- The IPv6 address of a URL's authority that starts with "[" (an endpoint's, a proxy's), checked,
-- each fault said as such: no "]", a zone id, no valid address, something other than ":PORT"
-- after it.
-- @tparam string name the argument's name
-- @tparam string authority the URL's authority (past any userinfo)
-- @tparam string shown the value as a message may quote it
-- @treturn ?string the address, without its brackets; nil for an authority without them
-- @treturn ?string what follows the "]": "" or ":PORT"
-- @raise a `usage` @{eip.error} naming `name`
function M.bracketed_ipv6(name, authority, shown)
  if authority:sub(1, 1) ~= "[" then return nil end
  local address, rest = authority:match("^%[([^%]]*)%](.*)$")
  if not address then raise(name, "has an IPv6 address without its closing ']', got %s", shown) end
  if address:find("%", 1, true) then
    raise(name, "has an IPv6 address with a zone id (the '%%' part): zone ids (link-local scopes) are not "
      .. "supported, got %s", shown)
  end
  if not ipv6_literal(address) then
    raise(name, "has an invalid IPv6 address (between '[' and ']': hex groups and ':', RFC 4291), got %s", shown)
  end
  if rest ~= "" and rest:sub(1, 1) ~= ":" then
    raise(name, "has something other than :PORT after its IPv6 address's ']', got %s", shown)
  end
  return address, rest
end

--- Is v an IP address as the API writes one: IPv4 (four decimal numbers 0-255, dotted) or IPv6
-- (RFC 4291 text, without brackets)? Never raises: a server's answer may hold anything there.
-- @param v the value
-- @treturn boolean
function M.is_ip_address(v)
  if type(v) ~= "string" or #v > 45 then return false end
  local a, b, c, d = v:match("^(%d%d?%d?)%.(%d%d?%d?)%.(%d%d?%d?)%.(%d%d?%d?)$")
  if a then
    return tonumber(a) <= 255 and tonumber(b) <= 255 and tonumber(c) <= 255 and tonumber(d) <= 255
  end
  return v:find(":", 1, true) ~= nil and ipv6_literal(v)
end

--- An http(s) endpoint: scheme, host (name, IPv4 or [IPv6]), optional port, optional base
-- path. Returns the normalised URL without a trailing slash.
function M.endpoint(name, v)
  if type(v) ~= "string" then raise(name, "must be a string, got %s", describe(v)) end
  -- Credentials in the URL would be echoed by every message that shows it (and sent nowhere
  -- useful): refused before any other check can show the value, and shown without them. An
  -- '@' has no other place in an endpoint, and a password may hold '/', '?' or '#'.
  if v:find("@", 1, true) then
    raise(name, "must not hold credentials (user:password@): give them as options; got %s",
      describe((v:match("^%a[%w+.-]*://") or "") .. "<redacted>@" .. (v:gsub("^.*@", ""))))
  end
  local scheme, authority, path = v:match("^(%a[%w+.-]*)://([^/?#]*)(.*)$")
  if not scheme then raise(name, "must be an http:// or https:// URL, got %s", describe(v)) end
  scheme = scheme:lower()
  if scheme ~= "http" and scheme ~= "https" then
    raise(name, "must use http or https, got %s", describe(scheme))
  end
  local host, port = M.bracketed_ipv6(name, authority, describe(v))
  if host then -- (as libcurl sends it, so that every transport and the signer send one Host)
    host, authority = "[" .. host .. "]", "[" .. ipv6_curl_form(host) .. "]" .. port
  end
  if not host then host, port = authority:match("^([%w.-]+)(.*)$") end
  if not host or host:find("^[.-]") or host:find("%.%.") then
    raise(name, "has no valid host, got %s", describe(v))
  end
  -- A host of numbers alone is an IPv4 address to libcurl and inet_aton, which read 127.1,
  -- 2130706433, 0x7f000001 or 010.0.0.1 (octal) as addresses too; the decisions made on the
  -- host before (a loopback is never proxied) read only a.b.c.d. So that every reader agrees,
  -- an address is written that way: four decimal numbers, 0-255, no leading zero. (A name with
  -- a letter in a label, host.10, is a name to all of them.)
  local numeric = true
  for label in (host:gsub("%.$", "") .. "."):gmatch("([^.]*)%.") do
    numeric = numeric and (label:find("^%d+$") or label:find("^0[xX]%x*$")) ~= nil
  end
  if numeric then
    local parts = { host:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$") }
    local canonical = #parts == 4
    for _, part in ipairs(parts) do
      canonical = canonical and tonumber(part) <= 255 and (part == "0" or not part:find("^0"))
    end
    if not canonical then
      raise(name, "has an IPv4 address not written as four decimal numbers (a.b.c.d, no leading zero), got %s",
        describe(v))
    end
  end
  if port ~= "" and port:sub(1, 1) ~= ":" then -- (a_b.test: the host ended at a character no host name holds)
    raise(name, "has a host with a character a host name cannot hold (letters, digits, '-' and '.' only), got %s",
      describe(v))
  end
  if port ~= "" then
    local digits = port:match("^:(%d+)$")
    local n = tonumber(digits)
    if not n or n < 1 or n > 65535 then raise(name, "has an invalid port, got %s", describe(v)) end
  end
  if path:find("[^%w%._~/-]") then
    raise(name, "may only have a plain base path (no query, fragment or escapes), got %s", describe(v))
  end
  path = path:gsub("/+$", "")
  if path:find("/%.%.?/") or path:find("/%.%.?$") then
    raise(name, "must not contain '.' or '..' path segments, got %s", describe(v))
  end
  -- The client adds the API version (/v1, /v2.0, /v3) itself: one in the endpoint would double
  -- it, and the gateway's 404 for the doubled path could be mistaken for a missing resource.
  for segment in path:gmatch("[^/]+") do
    if segment:find("^[vV]%d+$") or segment:find("^[vV]%d+%.%d+$") then
      raise(name, "must not contain an API version path (/%s): give the service's root, e.g. "
        .. "https://vpc.cn-north-4.myhuaweicloud.com; the client adds /v1, /v2.0 or /v3 itself", segment)
    end
  end
  return scheme .. "://" .. authority .. path
end

-- Edit distance (Levenshtein) of two short strings.
local function distance(a, b)
  local prev = {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    local cur = { [0] = i }
    for j = 1, #b do
      local cost = a:sub(i, i) == b:sub(j, j) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev = cur
  end
  return prev[#b]
end

--- The name of `names` closest to `name` when it is a likely typo (an abbreviation of at least
-- 3 characters, or at most max(2, #name / 3) edits away), else nil.
function M.closest(name, names)
  for _, n in ipairs(names) do
    if #name >= 3 and n:sub(1, #name) == name then return n end
  end
  local limit = math.max(2, math.floor(#name / 3))
  local best, best_d
  for _, n in ipairs(names) do
    -- (no fewer edits than the lengths differ by: a pasted blob costs no #blob * #n table)
    if math.abs(#name - #n) <= limit then
      local d = distance(name, n)
      if not best_d or d < best_d then best, best_d = n, d end
    end
  end
  if best and best_d <= limit then return best end
  return nil
end

--- A region name such as "cn-north-4".
function M.region(name, v)
  if type(v) ~= "string" then raise(name, "must be a string, got %s", describe(v)) end
  if #v > 32 or not v:find("^%l[%l%d]*%-[%l%d%-]*[%l%d]$") then
    raise(name, "must be a region name such as \"cn-north-4\", got %s", describe(v))
  end
  return v
end

--- A number in [min, max] (not NaN).
function M.number(name, v, min, max)
  if type(v) ~= "number" or v ~= v then raise(name, "must be a number, got %s", describe(v)) end
  if v < min or v > max then
    raise(name, "must be between %s and %s, got %s", number_text(min), number_text(max), number_text(v))
  end
  return v
end

--- An integer in [min, max]; an integral float (3.0) is accepted as the integer.
function M.integer(name, v, min, max)
  if math.type and math.type(v) == "float" and v == math.floor(v) then -- luacheck: ignore 143 (5.3+)
    -- inf and floats beyond the integers stay floats: the range check below names them
    v = math.tointeger(v) or v -- luacheck: ignore 143 (math.type exists, so this does)
  end
  if type(v) ~= "number" or v ~= math.floor(v) then
    raise(name, "must be an integer, got %s", describe(v))
  end
  return M.number(name, v, min, max)
end

-- A key `pairs` gave twice (only a caller's __pairs can), told apart from what a metamethod raised.
local TWICE = {}

-- The keys and values of a table as pairs walks them, protected: a metamethod that raises
-- (__pairs, __index) is a usage error naming the argument, not the metamethod's raw error.
-- `accept` (optional) sees each key, its value and their count as they come, and raises the
-- usage error for one the caller refuses: the walk ends there, so that a __pairs that never
-- ends (the caller's bug) ends at its first refused key, not when memory runs out. A key given
-- twice ends it too (a table with a metatable: its keys are remembered on the way).
local function entries_of(name, t, accept)
  local accepting = false -- (still true after the walk: accept raised)
  local ok, keys, values = pcall(function()
    local ks, vs, n = {}, {}, 0
    local seen = getmetatable(t) ~= nil and {} or nil
    for k, v in pairs(t) do
      if seen then
        if seen[k] then error(TWICE, 0) end
        seen[k] = true
      end
      n = n + 1
      if accept then
        accepting = true
        accept(k, v, n)
        accepting = false
      end
      ks[n] = k; vs[n] = v
    end
    return ks, vs
  end)
  if not ok then
    if accepting then error(keys, 0) end
    if keys == TWICE then raise(name, "cannot be read: its __pairs gave a key twice") end
    raise(name, "cannot be read: a metamethod of it raised an error")
  end
  return keys, values
end

local function keys_of(name, t, accept)
  return (entries_of(name, t, accept))
end

--- The keys and the values of a table, as `pairs` walks it, walked once and protected.
-- @tparam string name the argument, for the message
-- @tparam table t the table
-- @tparam[opt] function accept called as `accept(key, value, count)` for each entry as it comes;
--   it raises (a usage error) to refuse one, which ends the walk there with that error
-- @treturn table its keys, a list
-- @treturn table the value of each key, at the same index
-- @raise a `usage` error naming `name` when a metamethod of `t` raised or its `__pairs` gave a key
--   twice; what `accept` raised
M.entries = entries_of

--- The length of a list argument, raising unless it is a list: keys exactly 1..n, no hole, no
-- other key. `#` and `ipairs` stop at a hole and skip other keys, so a call that walked such a
-- table would do part of what it was asked, silently (a batch's ids, the EIPs to remove).
-- @tparam string name the argument, for the message ("ids", "eip_ids")
-- @param t the value
-- @tparam string what what the list holds, for the message ("bandwidth ids")
-- @treturn integer n
-- @raise a `usage` error naming `name`
function M.list(name, t, what)
  if type(t) ~= "table" then raise(name, "must be a list of %s, got a %s", what, type(t)) end
  local measured, n = pcall(function() return #t end)
  if not measured or type(n) ~= "number" then raise(name, "cannot be read: a metamethod of it raised an error") end
  -- (each key checked as it comes: a __pairs that goes on past n ends at its first key beyond)
  local keys = keys_of(name, t, function(k)
    if type(k) ~= "number" or k < 1 or k > n or k ~= math.floor(k) then
      raise(name, "must be a list of %s (keys 1..n), found the key %s", what,
        (type(k) == "string" or type(k) == "number") and tostring(k) or describe(k))
    end
  end)
  if #keys ~= n then raise(name, "must be a list of %s without holes", what) end
  -- Elements behind a metatable (a proxy's __index, __len, __pairs) are seen by Lua 5.2+ through
  -- __len and __pairs and by Lua 5.1 and LuaJIT not at all: the same batch deleted every id on
  -- one and nothing, reported as success, on the other (and a proxy with __index alone sent
  -- nothing on any). The list must hold them itself.
  if getmetatable(t) ~= nil then
    local ok, plain = pcall(function()
      local raw = 0
      for _ in next, t do raw = raw + 1 end
      if raw ~= n or t[n + 1] ~= nil then return false end
      for i = 1, n do
        if rawget(t, i) == nil then return false end
      end
      return true
    end)
    if not ok then raise(name, "cannot be read: a metamethod of it raised an error") end
    if not plain then
      raise(name, "must hold its %s itself: a table whose elements are behind a metatable (__index, __len, "
        .. "__pairs) is read differently by each Lua version; pass a plain list", what)
    end
  end
  return n
end

--- true or false, nothing else.
function M.boolean(name, v)
  if type(v) ~= "boolean" then raise(name, "must be true or false, got %s", describe(v)) end
  return v
end

--- A non-empty string without NUL bytes.
function M.string(name, v)
  if type(v) ~= "string" or v == "" then raise(name, "must be a non-empty string, got %s", describe(v)) end
  if v:find("%z") then raise(name, "must not contain NUL bytes") end
  return v
end

-- Is s well-formed UTF-8 (no overlong forms, no surrogates, nothing past U+10FFFF)?
local function utf8_ok(s)
  local i, n = 1, #s
  while i <= n do
    local b = s:byte(i)
    local len, min
    if b < 0x80 then len = 1
    elseif b >= 0xC2 and b <= 0xDF then len, min = 2, 0x80
    elseif b >= 0xE0 and b <= 0xEF then len, min = 3, 0x800
    elseif b >= 0xF0 and b <= 0xF4 then len, min = 4, 0x10000
    else return false end
    if len > 1 then
      local cp = b % (2 ^ (7 - len))
      for k = 1, len - 1 do
        local c = s:byte(i + k)
        if not c or c < 0x80 or c > 0xBF then return false end
        cp = cp * 64 + (c - 0x80)
      end
      if cp < min or cp > 0x10FFFF or (cp >= 0xD800 and cp <= 0xDFFF) then return false end
    end
    i = i + len
  end
  return true
end

--- An account's or a user's name, sent to IAM with the password (auth.username, auth.domain):
-- 1 to 255 bytes of UTF-8, no control characters, not blank nor with spaces around it. (A line
-- read from a file keeps its newline; such a name is no user's, and each login with it fails.)
-- @tparam string name the argument, for the message
-- @param v the value
-- @treturn string v
-- @raise a `usage` error naming `name`
function M.account_name(name, v)
  M.string(name, v)
  if #v > 255 then raise(name, "must be at most 255 bytes, got %d", #v) end
  if v:find("[%z\1-\31\127]") then raise(name, "must not contain control characters (CR, LF, tab, ...)") end
  if not v:find("[^ ]") then raise(name, "must not be blank") end
  if v:find("^ ") or v:find(" $") then raise(name, "must not begin or end with a space, got %s", describe(v)) end
  if not utf8_ok(v) then raise(name, "must be UTF-8 text (it holds bytes that are none)") end
  return v
end

--- What core.file_kind says of a path that is not a regular file, as a message says it.
M.FILE_KINDS = { fifo = "FIFO (named pipe)" }

--- A path naming an existing regular file, asked of stat(2) without opening it (opening a FIFO
-- waits for a writer): a missing path, a directory, a FIFO or a device is a usage error naming
-- `name` and the path. `what` says what the file should be, for the message.
function M.regular_file(name, v, what)
  local path = M.string(name, v)
  local kind, why, missing = core.file_kind(path)
  if not kind then
    raise(name, "%s %s (%s)", missing and "names no file:" or "cannot be read:", describe(path), why)
  end
  if kind ~= "file" then
    raise(name, "must name a regular file (%s), got a %s: %s", what, M.FILE_KINDS[kind] or kind, describe(path))
  end
  return path
end

-- The Chinese characters a bandwidth name may hold: the CJK Unified Ideographs and their
-- Extension A (U+3400..U+4DBF, U+4E00..U+9FFF).
local function chinese(cp)
  return (cp >= 0x3400 and cp <= 0x4DBF) or (cp >= 0x4E00 and cp <= 0x9FFF)
end

--- A bandwidth's name, as the API documents it (create-shared-bandwidth: "取值范围：1-64，支持
-- 数字、字母、中文、_(下划线)、-（中划线）、.（点）"): 1 to 64 characters, each an ASCII letter or
-- digit, `_`, `-`, `.` or a Chinese character, in UTF-8 (the API's encoding for Chinese text).
-- Any other byte (another script, an accented letter, malformed UTF-8) is refused, its place
-- named.
-- @tparam string name the argument, for the message
-- @param v the value
-- @treturn string v
-- @raise a `usage` error naming `name`
function M.bandwidth_name(name, v)
  M.string(name, v)
  local BAD = "may only hold letters, digits, '_', '-', '.' and Chinese characters (UTF-8)"
  local i, count, n = 1, 0, #v
  while i <= n do
    count = count + 1
    local b = v:byte(i)
    if b < 128 then
      if not v:find("^[%w_%-%.]", i) then
        raise(name, "%s, got %s at character %d", BAD, describe(string.char(b)), count)
      end
      i = i + 1
    else
      -- Chinese characters are 3 bytes in UTF-8: E3..E9 then two continuation bytes.
      local b2, b3 = v:byte(i + 1, i + 2)
      local cp = b >= 0xE0 and b <= 0xEF and b2 and b3 and b2 >= 0x80 and b2 <= 0xBF and b3 >= 0x80
        and b3 <= 0xBF and ((b - 0xE0) * 64 + (b2 - 0x80)) * 64 + (b3 - 0x80)
      if not cp or not chinese(cp) then
        raise(name, "%s, got %s at character %d", BAD, cp and cp >= 0x800
          and string.format("U+%04X", cp) or string.format("the byte 0x%02X (not a Chinese character in UTF-8)", b),
          count)
      end
      i = i + 3
    end
    if count > 64 then raise(name, "must be at most 64 characters, got more") end
  end
  return v
end

--- An options table whose keys must all be known: typos fail loudly.
-- @tparam string name the argument, for the message ("options", "auth")
-- @param t the value
-- @tparam table known the option names allowed, as keys
-- @treturn table a plain copy of `t`, each known option read once (`t[k]`: an `__index`
--   default counts, as it did when the call read the table itself): what the call then reads,
--   so that no metamethod of the caller's table runs again, and one that raises is this usage
--   error, not a raw one later
-- @raise a `usage` error naming `name`
function M.options(name, t, known)
  if type(t) ~= "table" then raise(name, "must be a table, got %s", describe(t)) end
  -- (each key checked as it comes: a __pairs that never ends ends at its first unknown key)
  keys_of(name, t, function(k)
    if type(k) ~= "string" then raise(name, "has a non-string key (%s)", describe(k)) end
    if not known[k] then
      local names = {}
      for n in pairs(known) do names[#names + 1] = n end
      table.sort(names)
      -- (a long name, a value pasted where a key goes, is not quoted: a message is one line)
      raise(name, "has an unknown option %s (known: %s)", M.key_name(k, 64), table.concat(names, ", "))
    end
  end)
  local ok, copy = pcall(function()
    local c = {}
    for k in pairs(known) do c[k] = t[k] end
    return c
  end)
  if not ok then raise(name, "cannot be read: a metamethod of it raised an error") end
  return copy
end

return M
