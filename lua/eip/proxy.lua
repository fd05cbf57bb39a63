--- Proxies: which one, if any, a request goes through. Decided here, in Lua, once per client,
-- so that both transports (libcurl, cosockets) follow the same decision; the pipeline puts it
-- in every transport request as `req.proxy` (see the contract in lua/eip/transport/init.lua).
--
-- Where the proxy comes from:
--
--  * `proxy = "http://[user:pass@]host:port"` (the client option): every request goes through
--    it; the environment is not read at all (no_proxy included).
--  * `proxy = false`: no proxy, whatever the environment says.
--  * no option: the environment, with curl's conventions. https URLs: `https_proxy`, then
--    `HTTPS_PROXY`; http URLs: `http_proxy` only (never `HTTP_PROXY`: in a CGI script it is
--    the client's `Proxy:` request header, httpoxy); then, for both, `all_proxy`, `ALL_PROXY`.
--    A host matching `no_proxy` (else `NO_PROXY`) goes direct, as libcurl reads it: entries
--    separated by commas or blanks; `*` as the whole value matches every host (beside others,
--    nothing); `example.com` and `.example.com` match that host and its subdomains. A host that
--    is an IP address is matched by IP entries only, never by a name's suffix (`.3.4` does not
--    match 11.2.3.4): the address or a CIDR range, `a.b.c.d/n`, `v6::/n` (`/0` is the address
--    itself). Beyond libcurl (where they match nothing): `*.example.com` as `example.com`,
--    `host:port` for that port only, IPv6 entries in brackets; and IPv6 addresses compare in
--    any spelling (libcurl before 8.18 compares them as text, without ranges). Empty values
--    count as unset.
--
-- Never proxied, whatever the settings (curl itself would send each through the proxy):
-- loopback (127.0.0.0/8, ::1, `localhost` and `*.localhost`), the unspecified addresses 0.0.0.0
-- and :: (a connection to them reaches this host) and link-local addresses (169.254.0.0/16,
-- fe80::/10: the ECS metadata service answers there). A proxy would reach its own host or
-- instance, not ours.
--
-- Only http:// proxies are spoken to (no TLS to the proxy, no SOCKS), and the port is required:
-- tools disagree on the default (curl 1080, others 80), so none is guessed. A bad value is a
-- usage error naming the option or variable; credentials in it are never shown. https URLs
-- always go through a CONNECT tunnel, so the proxy sees the CONNECT line and nothing else.
-- @module eip.proxy
local errors = require "eip.errors"
local validate = require "eip.validate"

local M = {}

local raise = errors.raise_usage
local find, sub, lower, match, byte, char = string.find, string.sub, string.lower, string.match, string.byte,
  string.char
local floor = math.floor

--- The environment variables read, in order, per URL scheme; and those of the exceptions.
M.ENV = {
  https = { "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY" },
  http = { "http_proxy", "all_proxy", "ALL_PROXY" },
  no_proxy = { "no_proxy", "NO_PROXY" },
}

local DEFAULT_PORT = { http = 80, https = 443 }
local CACHE_MAX = 64

-- Addresses ----------------------------------------------------------------------------------

-- An IPv4 literal as a number, or nil.
local function ipv4(s)
  local a, b, c, d = match(s, "^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if not a then return nil end
  a, b, c, d = tonumber(a), tonumber(b), tonumber(c), tonumber(d)
  if a > 255 or b > 255 or c > 255 or d > 255 then return nil end
  return ((a * 256 + b) * 256 + c) * 256 + d
end

-- An IPv6 literal (no brackets; a zone "%eth0" is ignored) as a list of 8 groups, or nil.
local function ipv6(s)
  s = s:gsub("%%.*$", "")
  if not find(s, ":", 1, true) or find(s, "[^%x:.]") then return nil end
  local v4 = match(s, ":(%d+%.%d+%.%d+%.%d+)$")
  if v4 then
    local n = ipv4(v4)
    if not n then return nil end
    s = sub(s, 1, #s - #v4) .. string.format("%x:%x", floor(n / 65536), n % 65536)
  end
  local head, tail = s, nil
  local dc = find(s, "::", 1, true)
  if dc then head, tail = sub(s, 1, dc - 1), sub(s, dc + 2) end
  local function groups(part)
    local out = {}
    if part == "" then return out end
    for g in (part .. ":"):gmatch("([^:]*):") do
      if not match(g, "^%x%x?%x?%x?$") then return nil end
      out[#out + 1] = tonumber(g, 16)
    end
    return out
  end
  local h, t = groups(head), {}
  if tail then t = groups(tail) end -- (one that is none is no address: ":::1" was "::")
  if not h or not t then return nil end
  local missing = 8 - #h - #t
  if (dc and missing < 1) or (not dc and missing ~= 0) then return nil end
  for _ = 1, missing do h[#h + 1] = 0 end
  for _, g in ipairs(t) do h[#h + 1] = g end
  return h
end

-- An IP literal as { family = 4, value = n } or { family = 6, groups = 8 numbers }; nil when s
-- is not one.
local function address(s)
  local n = ipv4(s)
  if n then return { family = 4, value = n } end
  local g = ipv6(s)
  if g then return { family = 6, groups = g } end
  return nil
end

-- Does address a start with the `prefix` bits of address b (same family)?
local function in_prefix(a, b, prefix)
  if a.family ~= b.family then return false end
  if a.family == 4 then
    local unit = 2 ^ (32 - prefix)
    return floor(a.value / unit) == floor(b.value / unit)
  end
  for i = 1, 8 do
    local bits = prefix - (i - 1) * 16
    if bits <= 0 then return true end
    local unit = 2 ^ (bits >= 16 and 0 or 16 - bits)
    if floor(a.groups[i] / unit) ~= floor(b.groups[i] / unit) then return false end
  end
  return true
end

local NEVER = {
  { address("127.0.0.0"), 8 }, { address("::1"), 128 }, { address("::ffff:127.0.0.0"), 104 },
  { address("0.0.0.0"), 32 }, { address("::"), 128 }, { address("::ffff:0.0.0.0"), 128 },
  { address("169.254.0.0"), 16 }, { address("::ffff:169.254.0.0"), 112 }, { address("fe80::"), 10 },
}

--- Is host (a name, an IPv4 literal, or an IPv6 literal with or without brackets) one that is
-- never proxied: loopback, unspecified (0.0.0.0, ::) or link-local?
-- @tparam string host the host
-- @treturn boolean
function M.never(host)
  host = lower(host):gsub("^%[(.*)%]$", "%1"):gsub("%.$", "")
  if host == "localhost" or sub(host, -10) == ".localhost" then return true end
  local a = address(host)
  if not a then return false end
  for _, range in ipairs(NEVER) do
    if in_prefix(a, range[1], range[2]) then return true end
  end
  return false
end

-- no_proxy ------------------------------------------------------------------------------------

-- One no_proxy entry as a matcher { all | name | addr + prefix, port }, or nil when unusable
-- (ignored, as curl ignores what it cannot read).
local function entry(e)
  if e == "*" then return nil end -- (every host only as the whole value: @{parse_no_proxy})
  local host, port = match(e, "^%[([^%]]+)%]:?(%d*)$")
  if not host then
    local colons = select(2, e:gsub(":", ""))
    if colons == 1 then host, port = match(e, "^([^:]+):(%d+)$") else host, port = e, "" end
  end
  if not host then return nil end
  port = tonumber(port)
  local ip, bits = match(host, "^(.-)/(%d+)$")
  local a = address(ip or host)
  if a then
    local max = a.family == 4 and 32 or 128
    bits = tonumber(bits)
    if not bits or bits == 0 then bits = max end -- (/0: the address itself, as libcurl reads it)
    if bits > max then return nil end
    return { addr = a, prefix = bits, port = port }
  end
  if ip then return nil end
  host = host:gsub("^%*?%.", ""):gsub("%.$", "")
  if host == "" then return nil end
  return { name = host, port = port }
end

--- The matchers of a no_proxy value. `*` means every host only when it is the whole value, as
-- libcurl reads it: beside other entries it matches nothing.
-- @tparam ?string value the variable's value
-- @treturn table a list of matchers (see @{bypass})
function M.parse_no_proxy(value)
  if value == "*" then return { { all = true } } end
  local list = {}
  for e in (value or ""):gmatch("[^,%s]+") do
    local m = entry(lower(e))
    if m then list[#list + 1] = m end
  end
  return list
end

--- Does a no_proxy list exempt host:port? `host`: lower case, IPv6 without brackets. An IP
-- address host is matched by IP entries only, exactly or by range, as libcurl does: never by a
-- name's suffix (`.3.4` is not a domain of 11.2.3.4).
-- @tparam table list matchers from @{parse_no_proxy}
-- @tparam string host the URL's host
-- @tparam number port the URL's port
-- @treturn boolean
function M.bypass(list, host, port)
  if #list == 0 then return false end
  host = host:gsub("%.$", "")
  local a = address(host)
  for _, m in ipairs(list) do
    if m.all then return true end
    if not m.port or m.port == port then
      if a then
        if m.addr and in_prefix(a, m.addr, m.prefix) then return true end
      elseif m.name and (host == m.name or (#host > #m.name and sub(host, -#m.name - 1) == "." .. m.name)) then
        return true
      end
    end
  end
  return false
end

-- Proxy URLs ----------------------------------------------------------------------------------

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

-- Base64 with arithmetic only (LuaJIT has no bitwise operators).
local function base64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = byte(s, i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local d1, d2, d3, d4 = floor(n / 262144), floor(n / 4096) % 64, floor(n / 64) % 64, n % 64
    out[#out + 1] = sub(B64, d1 + 1, d1 + 1) .. sub(B64, d2 + 1, d2 + 1)
      .. (b and sub(B64, d3 + 1, d3 + 1) or "=") .. (c and sub(B64, d4 + 1, d4 + 1) or "=")
  end
  return table.concat(out)
end
M.base64 = base64

local function unescape(s)
  return (s:gsub("%%(%x%x)", function(h) return char(tonumber(h, 16)) end))
end

-- The authority of a proxy URL as it may be shown: a host, host:port or [IPv6]:port (a port of
-- digits only). Anything else (`user:password` without `@host`, a stray character) may hold a
-- credential, so it is not shown.
local function showable(authority)
  return match(authority, "^[%w.-]*:?%d*$") or match(authority, "^%[[%x:.]*%]:?%d*$")
end

-- A value for a message, never showing what may be a credential: the scheme, then, after any
-- userinfo (replaced by `<credentials>`), the host and port when they read as such; any other
-- part is replaced by its length. After userinfo, only a host:port (a port given) is shown: what
-- follows the last '@' of "alice:Winter@Sunshine2024" is the rest of a password, not a host.
-- Without userinfo, a name whose "port" is none (0, over 65535: "alice:12345678") may be a user
-- and a password of digits: not shown either.
local function no_port(bare)
  local port = match(bare, "^[^%[]*:(%d+)$")
  return port ~= nil and not (tonumber(port) >= 1 and tonumber(port) <= 65535)
end

local function shown(value)
  local scheme = match(value, "^(%a[%w+.-]*://)") or ""
  local rest, out = sub(value, #scheme + 1), scheme
  local at = rest:match("^.*()@")
  if at then out, rest = out .. "<credentials>@", sub(rest, at + 1) end
  local authority, tail = match(rest, "^([^/?#]*)(.*)$")
  if tail == "/" then authority, tail = authority .. "/", "" end
  local bare = authority:gsub("/$", "")
  if #authority > 100 or not showable(bare) or (at and not find(bare, ":%d+$")) or (not at and no_port(bare)) then
    authority, tail = "", rest
  end
  out = out .. authority
  if tail ~= "" then out = out .. "<" .. #tail .. " bytes not shown>" end
  return string.format("%q", out)
end

--- Parses a proxy URL, `http://[user:pass@]host:port` (the scheme may be left out, as curl
-- allows; a trailing `/` is accepted). `source` names the option or variable in usage errors.
-- @tparam string source the option's or variable's name
-- @tparam string value the URL
-- @treturn table the proxy as the transports take it: `url` ("http://host:port", without
--   credentials), `host` (IPv6 in brackets), `port`, `name` ("host:port", for messages),
--   `user`, `password` (decoded) and `authorization` ("Basic ...") when credentials were given
-- @raise a `usage` error naming `source`, never showing the credentials
function M.parse(source, value)
  if type(value) ~= "string" then
    raise(source, "must be an http://host:port URL (or false for no proxy), got a %s", type(value))
  end
  local scheme, rest = match(value, "^(%a[%w+.-]*)://(.*)$")
  if not scheme then rest = value end
  if scheme and lower(scheme) ~= "http" then
    raise(source, "must be an http:// proxy URL (https:// and socks proxies are not supported), got %s",
      shown(value))
  end
  rest = rest:gsub("/$", "")
  local userinfo, authority = match(rest, "^(.*)@([^@]*)$")
  authority = authority or rest
  -- (each fault of an IPv6 address said as such, as for an endpoint; brackets that held no
  -- address were taken, and every call failed later)
  validate.bracketed_ipv6(source, authority, shown(value))
  local host, port = match(authority, "^(%[[%x:.]+%]):(%d+)$")
  if not host then host, port = match(authority, "^([%w._-]+):(%d+)$") end -- (curl takes '_')
  if not host then
    -- "user:password" without "@host:port" is not a host missing its port.
    local not_a_port = match(authority, "^[^:%[]*:[^:]*%D") ~= nil
    if match(authority, "^%[?[%w.:_-]+%]?$") and not find(authority, ":%d+$") and not not_a_port then
      raise(source, "needs a port (http://host:port): tools disagree on the default, so none is assumed; got %s",
        shown(value))
    end
    raise(source, "must be http://[user:pass@]host:port, got %s", shown(value))
  end
  port = tonumber(port)
  if port < 1 or port > 65535 or find(host, "^[.-]") or find(host, "%.%.") then
    raise(source, "has no valid host and port, got %s", shown(value))
  end
  local name = host .. ":" .. port
  local p = { url = "http://" .. name, host = host, port = port, name = name }
  if userinfo then
    local user, password = match(userinfo, "^([^:]*):(.*)$")
    user, password = unescape(user or userinfo), unescape(password or "")
    if user == "" or find(user .. password, "[%z\1-\31\127]") then
      raise(source, "has unusable credentials (a user name is required; no control characters)")
    end
    p.user, p.password = user, password
    p.authorization = "Basic " .. base64(user .. ":" .. password)
  end
  return p
end

--- The credentials a proxy URL holds, as values to redact, appended to `out`, without parsing it
-- strictly (a URL @{parse} refuses may still hold them): the userinfo up to the last '@', and
-- its user and password, percent-decoded, and the two joined.
-- @tparam string value the URL (anything else: nothing)
-- @tparam table out a list of strings
-- @treturn table out
function M.credentials_of(value, out)
  local userinfo = type(value) == "string" and match((value:gsub("^%a[%w+.-]*://", "")), "^(.*)@")
  if not userinfo then return out end
  local user, password = match(userinfo, "^([^:]*):?(.*)$")
  user, password = unescape(user), unescape(password)
  for _, v in ipairs{ userinfo, user, password, user .. ":" .. password } do
    if v ~= "" and v ~= ":" then out[#out + 1] = v end
  end
  return out
end

-- Per-client settings -------------------------------------------------------------------------

local Settings = {}
Settings.__index = Settings

local function env_value(getenv, names)
  for _, name in ipairs(names) do
    local v = getenv(name)
    if v ~= nil and v ~= "" then return v, name end
  end
  return nil
end

--- The proxy settings of a client, read once: the option, else the environment.
-- @param option the `proxy` option: nil (the environment), false (none), or a URL
-- @tparam[opt] function getenv replaces os.getenv (tests)
-- @treturn table settings: `settings:decide(url)`, `settings.secrets` (every credential
--   value, for redaction), `settings.source` ("option", "environment" or "none")
-- @raise a `usage` error for a bad option; a bad variable is one only for a request it would
--   take (@{Settings:decide}): `ALL_PROXY=socks5h://...` beside a good `https_proxy`, or any with
--   `NO_PROXY=*`, must not keep an https client from being made, as curl and the SDKs do not
function M.settings(option, getenv)
  local s = setmetatable({ by_scheme = {}, broken = {}, no_proxy = {}, cache = {}, ncache = 0, secrets = {} },
    Settings)
  if option == false then
    s.source = "none"
  elseif option ~= nil then
    local p = M.parse("proxy", option)
    s.by_scheme.http, s.by_scheme.https, s.source = p, p, "option"
  else
    getenv = getenv or os.getenv
    s.source = "environment"
    for scheme, names in pairs{ http = M.ENV.http, https = M.ENV.https } do
      local v, name = env_value(getenv, names)
      if v then
        local ok, p = pcall(M.parse, name, v)
        if ok then
          s.by_scheme[scheme] = p
        elseif errors.is_error(p) then
          s.broken[scheme] = p -- (its credentials are redacted all the same)
          M.credentials_of(v, s.secrets)
        else
          error(p, 0)
        end
      end
    end
    s.no_proxy = M.parse_no_proxy((env_value(getenv, M.ENV.no_proxy)))
  end
  local seen = {}
  for _, p in pairs(s.by_scheme) do
    if p.authorization and not seen[p] then
      seen[p] = true
      -- The decoded pair too: a proxy echoing it shows "user:password", longer than its parts.
      for _, secret in ipairs{ p.password, p.user, p.user .. ":" .. p.password, sub(p.authorization, 7) } do
        if secret ~= "" then s.secrets[#s.secrets + 1] = secret end
      end
    end
  end
  return s
end

--- The proxy for a request to `url` (an absolute http(s) URL, validated): the table of
-- @{parse} (shared: never modify it), or nil when it goes direct. Cached per scheme and
-- authority.
-- @tparam string url the request's URL
-- @treturn ?table the proxy
function Settings:decide(url)
  local prefix = match(url, "^[^:]+://[^/?#]*")
  local hit = self.cache[prefix or url]
  if hit ~= nil then return hit or nil end
  local decision = false
  local scheme, authority = match(url, "^(%a+)://([^/?#]*)")
  scheme = scheme and lower(scheme)
  local p = scheme and (self.by_scheme[scheme] or self.broken[scheme])
  if p then
    local host, port = match(authority, "^%[([^%]]+)%]:?(%d*)$")
    if not host then host, port = match(authority, "^([^:]*):?(%d*)$") end
    host, port = lower(host or ""), tonumber(port) or DEFAULT_PORT[scheme]
    if not M.never(host) and not M.bypass(self.no_proxy, host, port) then
      -- A variable this request would take, and cannot: its usage error, nothing sent.
      if p == self.broken[scheme] then error(errors.copy(p), 0) end
      decision = p
    end
  end
  if self.ncache >= CACHE_MAX then self.cache, self.ncache = {}, 0 end
  self.cache[prefix or url], self.ncache = decision, self.ncache + 1
  return decision or nil
end

return M
