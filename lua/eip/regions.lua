--- Regions: where the VPC (EIP) API and IAM answer, from the official SDKs' region tables.
--
-- The VPC v2 table of the official SDKs has 34 regions, all served at
-- `https://vpc.{region}.myhuaweicloud.com`. IAM answers at `https://iam.{region}.myhuaweicloud.com`
-- except eu-west-101 (`https://iam.eu-west-101.myhuaweicloud.eu`); six regions have no regional
-- IAM entry and use the global `https://iam.myhuaweicloud.com`, as the official core does.
--
-- Overrides, as the official SDKs read them: `HUAWEICLOUD_SDK_REGION_EIP_<REGION>` (region
-- upper-cased, `-` as `_`; a comma-separated list: the first is used), the variable of the EIP
-- service, whose client DeleteSharedBandwidth belongs to, else `HUAWEICLOUD_SDK_REGION_VPC_<REGION>`
-- (the VPC service's, the same endpoint), for a region known or not; `HUAWEICLOUD_SDK_IAM_ENDPOINT`
-- for IAM everywhere. Then the SDKs' regions file, `HUAWEICLOUD_SDK_REGIONS_FILE`, else
-- `~/.huaweicloud/regions.yaml`: its `EIP` entry for the region, else its `VPC` one (see
-- @{file_endpoint}). Then the table.
-- @module eip.regions
local errors = require "eip.errors"
local profile = require "eip.profile"
local validate = require "eip.validate"

local M = {}

local NAMES = {
  "af-north-1", "af-south-1", "ae-ad-1", "ap-southeast-1", "ap-southeast-2", "ap-southeast-3",
  "ap-southeast-4", "ap-southeast-5", "cn-east-2", "cn-east-3", "cn-east-4", "cn-east-5", "cn-north-1",
  "cn-north-2", "cn-north-4", "cn-north-9", "cn-north-11", "cn-north-12", "cn-south-1", "cn-south-2",
  "cn-south-4", "cn-southwest-2", "cn-southwest-3", "eu-west-0", "eu-west-101", "la-north-2",
  "la-south-2", "me-east-1", "my-kualalumpur-1", "na-mexico-1", "ru-moscow-1", "ru-northwest-2",
  "sa-brazil-1", "tr-west-1",
}

--- The global IAM endpoint, for regions without a regional one.
M.GLOBAL_IAM = "https://iam.myhuaweicloud.com"

-- Regions whose IAM is elsewhere than iam.{region}.myhuaweicloud.com.
local IAM_EXCEPTIONS = {
  ["eu-west-101"] = "https://iam.eu-west-101.myhuaweicloud.eu",
  ["af-north-1"] = M.GLOBAL_IAM, ["ap-southeast-5"] = M.GLOBAL_IAM, ["cn-north-11"] = M.GLOBAL_IAM,
  ["cn-south-4"] = M.GLOBAL_IAM, ["cn-southwest-3"] = M.GLOBAL_IAM, ["ru-northwest-2"] = M.GLOBAL_IAM,
}

local TABLE, BY_NAME = {}, {}
for i, name in ipairs(NAMES) do
  local entry = {
    name = name,
    vpc_endpoint = "https://vpc." .. name .. ".myhuaweicloud.com",
    iam_endpoint = IAM_EXCEPTIONS[name] or ("https://iam." .. name .. ".myhuaweicloud.com"),
  }
  TABLE[i], BY_NAME[name] = entry, entry
end

M.ENV_IAM = "HUAWEICLOUD_SDK_IAM_ENDPOINT"

--- The environment variable that overrides the endpoint of `region` for `service` ("EIP",
-- the default, or "VPC").
function M.env_name(region, service)
  return "HUAWEICLOUD_SDK_REGION_" .. (service or "EIP") .. "_" .. region:upper():gsub("-", "_")
end

local function env(getenv, name)
  local v = getenv(name)
  if v == "" then return nil end
  return v
end

--- Every region of the table, sorted by name: `{ name, vpc_endpoint, iam_endpoint }` (copies).
function M.list()
  local out = {}
  for i, e in ipairs(TABLE) do
    out[i] = { name = e.name, vpc_endpoint = e.vpc_endpoint, iam_endpoint = e.iam_endpoint }
  end
  table.sort(out, function(a, b) return a.name < b.name end)
  return out
end

--- The table's entry of a region, or nil.
function M.get(name)
  return BY_NAME[name]
end

-- An endpoint without a scheme (a host name) is https, as the official SDKs read their endpoint
-- variables and files (an empty one stays empty, for validate.endpoint's message).
local function bare_https(v)
  if v ~= "" and not v:find("://", 1, true) then return "https://" .. v end
  return v
end
M.bare_https = bare_https

---------------------------------------------------------------------------------------------
-- The regions file of the official SDKs (YAML):
--
--   EIP:
--     - id: cn-north-4
--       endpoint: https://vpc-private.example.com
--     - id: xx-lab-1
--       endpoints: [ 'https://a.example.com', 'https://b.example.com' ]
--
-- A service name (any case) holding a list of { id, endpoint, endpoints } entries; an entry's
-- first endpoint is taken (`endpoint`, else the first of `endpoints`), and a later entry of the
-- same id replaces an earlier one, as the SDKs read it. lua-eip reads the shape the SDKs
-- document: block lists of block or flow mappings, plain or quoted scalars, comments. Sections
-- of other services are skipped unread; what it cannot read in an EIP or VPC section is a usage
-- error naming the file and the line (a delete must not go to the public endpoint when the user
-- named another), never quoting the line.

M.ENV_REGIONS_FILE = "HUAWEICLOUD_SDK_REGIONS_FILE"
--- The most a regions file may hold (bytes): every service of every region takes far less.
M.REGIONS_FILE_MAX = 1024 * 1024
local READ_SERVICES = { EIP = true, VPC = true }

-- YAML's null, as a plain scalar: the SDKs skip a key that holds it, as an absent one.
local NULLS = { null = true, Null = true, NULL = true, ["~"] = true }
local NULL = setmetatable({}, { __tostring = function() return "null" end })

-- A YAML scalar at the start of `text`: its value (NULL for a plain null) and what follows it,
-- or nil when none starts there. `flow`: inside [ ] or { }, where a plain scalar ends at ',', ']'
-- or '}'.
local function scalar(text, flow)
  local q = text:sub(1, 1)
  if q == "'" then -- '' is a quote
    local out, i = {}, 2
    while true do
      local j = text:find("'", i, true)
      if not j then return nil end
      out[#out + 1] = text:sub(i, j - 1)
      if text:sub(j + 1, j + 1) ~= "'" then return table.concat(out), text:sub(j + 1) end
      out[#out + 1], i = "'", j + 2
    end
  elseif q == '"' then -- the escapes an endpoint could hold: \\ \" \/
    local out, i = {}, 2
    while true do
      local c = text:sub(i, i)
      if c == "" then return nil end
      if c == '"' then return table.concat(out), text:sub(i + 1) end
      if c == "\\" then
        c = text:sub(i + 1, i + 1)
        if c ~= "\\" and c ~= '"' and c ~= "/" then return nil end
        i = i + 1
      end
      out[#out + 1], i = c, i + 1
    end
  end
  if text == "" or text:find("^[%[%]{},&*!|>%%@`#\"']") then return nil end
  local value = flow and text:match("^[^,%]}]*") or text
  local rest = text:sub(#value + 1)
  local cut = value:find("%s#") -- a comment
  if cut then value, rest = value:sub(1, cut - 1), "" end
  value = value:gsub("%s+$", "")
  if NULLS[value] then return NULL, rest end -- a plain null: no value (quoted, it is the text)
  return value, rest
end

-- Nothing but blanks and a comment left? (After a value on a line.)
local function line_end(rest)
  return rest:find("^%s*$") or rest:find("^%s+#")
end

-- A flow sequence of scalars: "[a, 'b']" → {a, b}, or nil.
local function flow_list(text)
  local out, rest = {}, text:match("^%[%s*(.*)$")
  if not rest then return nil end
  if rest:find("^%]") then return out, rest:sub(2) end
  while true do
    local v
    v, rest = scalar(rest, true)
    if not v then return nil end
    out[#out + 1] = v
    local sep
    sep, rest = rest:match("^%s*([,%]])%s*(.*)$")
    if sep == "]" then return out, rest end
    if not sep then return nil end
  end
end

-- A flow mapping of scalars or flow lists: "{id: x, endpoints: [a]}" → table, or nil.
local function flow_map(text)
  local out, rest = {}, text:match("^{%s*(.*)$")
  if not rest then return nil end
  if rest:find("^}") then return out, rest:sub(2) end
  while true do
    local key, v
    key, rest = rest:match("^([%w_]+)%s*:%s*(.*)$")
    if not key then return nil end
    if rest:find("^%[") then v, rest = flow_list(rest) else v, rest = scalar(rest, true) end
    if not v then return nil end
    out[key] = v
    local sep
    sep, rest = rest:match("^%s*([,}])%s*(.*)$")
    if sep == "}" then return out, rest end
    if not sep then return nil end
  end
end

-- A "key: value" at the start of text (the key plain or quoted): key, value text; or nil.
local function key_value(text)
  local key, rest
  if text:find("^['\"]") then key, rest = scalar(text) else key, rest = text:match("^([%w_%.%-]+)(.*)$") end
  if not key then return nil end
  local after = rest:match("^%s*:(.*)$")
  if not after or (after ~= "" and not after:find("^%s")) then return nil end
  return key, (after:gsub("^%s+", ""))
end

--- Parses a regions file's text: { [SERVICE] = { [region] = { endpoint, line } } } for its EIP
-- and VPC sections (other services are skipped unread). Raises a usage error naming `path` and
-- the line of the first line of those sections it cannot read.
function M.parse_regions_file(text, path)
  local found, n = {}, 0
  local spelled, order = {}, {} -- each spelling of a service's key: its entries; the spellings in order
  -- The section being read (nil: another service's), the entry being read ({ fields, line }),
  -- the indent of the entries' dashes and of the entry's keys, and a key whose value is a block
  -- of deeper lines (open: its name; list: where an endpoints list goes).
  local section, entry, item_indent, key_indent, open, list
  local lone -- open is an id or endpoint without a value on its line
  local top_seen = false -- a SERVICE: line came
  local function refuse(what)
    errors.raise_usage("regions file", "%s, line %d: %s (lua-eip reads the documented shape: SERVICE: "
      .. "then '- id: ...' entries with endpoint or endpoints)", path, n, what)
  end
  local function done()
    if not entry then return end
    local f = entry[1]
    local id, first = f.id, f.endpoint
    if first == nil or first == "" or first == NULL then first = f.endpoints and f.endpoints[1] end
    if type(id) == "string" and id ~= "" and type(first) == "string" and first ~= "" then
      section[id] = { first, entry[2] }
    end
    entry = nil
  end
  local function take(key, rest) -- one key of the entry, its value text after the colon
    open, list, lone = nil, nil, false
    if key ~= "id" and key ~= "endpoint" and key ~= "endpoints" then -- not read, nor what is under it
      open = key
      return
    end
    if rest == "" or rest:find("^#") then
      open = key
      if key == "endpoints" then
        list = {}
        entry[1].endpoints = list
      else
        lone = true -- a null; a value on the lines below it (a multi-line scalar) is refused
      end
      return
    end
    local v, after
    if rest:find("^%[") then v, after = flow_list(rest) else v, after = scalar(rest) end
    if not v or not line_end(after) then refuse("the value of " .. key .. " is neither a scalar nor a [list]") end
    if v ~= NULL and (key == "endpoints") ~= (type(v) == "table") then
      refuse(key .. (key == "endpoints" and " takes a list" or " takes one value"))
    end
    entry[1][key] = v
  end
  for line in (text:gsub("^\239\187\191", "") .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    line = line:gsub("\r$", "")
    local spaces, body = line:match("^([ \t]*)(.-)%s*$")
    local indent = #spaces
    if section and spaces:find("\t") then refuse("a tab in the indentation") end
    local dash_rest = body:match("^%-%s+(.*)$") or (body == "-" and "")
    local skipped = body == "" or body:find("^#")
      or (indent == 0 and (body == "---" or body == "..." or (not top_seen and body:find("^%%")))) -- (a directive)
    if skipped then -- luacheck: ignore 542 (blank, a comment, a document marker)
    elseif indent == 0 and dash_rest and not section and top_seen then -- luacheck: ignore 542
      -- (an entry of a compact list at column 0, of a service not read)
    elseif indent == 0 and not (section and dash_rest) then -- a service; a dash at 0 is a compact list's
      if section then done() end
      local name, rest = key_value(body)
      -- Anything else at the top (a JSON document, a flow mapping) is a shape not read: refused,
      -- not passed over, since the endpoint it names would be missed.
      if not name then refuse("expected SERVICE: at the start of the line (the block form of YAML)") end
      top_seen = true
      section, entry, item_indent, key_indent, open, list, lone = nil, nil, nil, nil, nil, nil, false
      if READ_SERVICES[name:upper()] then
        -- A key given again replaces the one before, as YAML parsers read it; keys that differ
        -- in case only ("eip", "EIP") are merged per region, as the SDKs look them up.
        section = {}
        if not spelled[name] then order[#order + 1] = name end
        spelled[name] = section
        name = name:upper()
        if rest ~= "" and not rest:find("^#") and not rest:find("^%[%s*%]") then
          refuse(name .. ": takes a list of entries on the lines below it")
        end
      end
    elseif not top_seen then
      refuse("an indented line before any SERVICE: (the document is read from column 0)")
    elseif section then
      if open and (indent > key_indent or (indent == key_indent and dash_rest)) then
        if lone then refuse(open .. " with its value on the lines below it (multi-line values are not read)") end
        if list then -- an endpoints list in block form
          local v, after = scalar(dash_rest or "")
          if not dash_rest or not v or not line_end(after) then refuse("an endpoints item that is not '- value'") end
          list[#list + 1] = v
        end -- (else: under a key not read)
      elseif dash_rest then
        open, list, lone = nil, nil, false
        item_indent = item_indent or indent
        if indent ~= item_indent then refuse("an entry's '-' out of line with the entries above it") end
        done()
        entry = { {}, n }
        key_indent = nil
        if dash_rest:find("^{") then
          local m, after = flow_map(dash_rest)
          if not m or not line_end(after) then refuse("an entry that is not a {key: value, ...} mapping") end
          for k, v in pairs(m) do
            if v ~= NULL and (k == "endpoints") ~= (type(v) == "table") and (k == "id" or k:find("^endpoint")) then
              refuse(k .. (k == "endpoints" and " takes a list" or " takes one value"))
            end
            entry[1][k] = v
          end
          key_indent = -1 -- no keys follow
        elseif dash_rest ~= "" and not dash_rest:find("^#") then
          local key, rest = key_value(dash_rest)
          if not key then refuse("an entry that is not a key: value mapping") end
          key_indent = #line:match("^ *%-%s+")
          take(key, rest)
        end
      else
        open, list, lone = nil, nil, false
        local key, rest = key_value(body)
        if not entry or not key then refuse("expected '- id: ...' or key: value") end
        if key_indent == nil and indent > item_indent then key_indent = indent end
        if indent ~= key_indent then refuse("a key out of line with its entry's") end
        take(key, rest)
      end
    end
  end
  if section then done() end
  for _, spelling in ipairs(order) do
    local merged = found[spelling:upper()] or {}
    found[spelling:upper()] = merged
    for id, e in pairs(spelled[spelling]) do merged[id] = e end
  end
  return found
end

--- The endpoint the SDKs' regions file gives `region` (its EIP entry, else its VPC one), or nil:
-- no file, or no entry. A file that cannot be read, or whose endpoint is no http(s) URL, is a
-- usage error naming the file (and the line).
function M.file_endpoint(region, getenv)
  local path = profile.sdk_file(getenv, M.ENV_REGIONS_FILE, "regions.yaml")
  local text = path and profile.read_text(path, "regions file", M.REGIONS_FILE_MAX, "endpoints")
  if not text then return nil end
  local found = M.parse_regions_file(text, path)
  for _, service in ipairs{ "EIP", "VPC" } do
    local e = found[service] and found[service][region]
    if e then
      local ok, endpoint = pcall(validate.endpoint, "endpoint", bare_https(e[1]))
      if not ok then
        errors.raise_usage("regions file", "%s, line %d: the %s endpoint of %s: %s", path, e[2], service, region,
          errors.is_error(endpoint) and endpoint.message or tostring(endpoint))
      end
      return endpoint, string.format("the regions file %s, line %d", path, e[2])
    end
  end
  return nil
end

--- The VPC endpoint of `region` (named by `argument` in errors): the environment override,
-- else the regions file's (@{file_endpoint}), else the table's. An unknown region is a usage
-- error suggesting the closest known name and the `endpoint` option, and listing the known ones. The second value names
-- where the endpoint came from (the variable, the regions file and its line; nil: the table's),
-- for the errors about it.
function M.vpc_endpoint(argument, region, getenv)
  validate.region(argument, region)
  for _, service in ipairs{ "EIP", "VPC" } do
    local override = env(getenv, M.env_name(region, service))
    if override then
      local first = override:match("^%s*([^,]-)%s*,") or override:match("^%s*(.-)%s*$")
      return validate.endpoint(M.env_name(region, service), bare_https(first)), M.env_name(region, service)
    end
  end
  local from_file, where = M.file_endpoint(region, getenv)
  if from_file then return from_file, where end
  local entry = BY_NAME[region]
  if entry then return entry.vpc_endpoint end
  if validate.holds_secret(region) then -- (a secret pasted as the region: not quoted, not in a variable's name)
    errors.raise_usage(argument, "holds a credential (a key, token or password pasted where a region goes?): "
      .. "the value is not shown")
  end
  local guess = validate.closest(region, NAMES)
  local known = {} -- (listed, as the official SDKs list them)
  for i, e in ipairs(M.list()) do known[i] = e.name end
  errors.raise_usage(argument, "names no known region (%q)%s; for a region this table does not know yet, "
    .. "pass endpoint = \"https://vpc.<region>.myhuaweicloud.com\", set %s, or give it an EIP entry in "
    .. "the SDKs' regions file (%s, else ~/.huaweicloud/regions.yaml); known regions: %s", region,
    guess and ("; did you mean \"" .. guess .. "\"?") or "", M.env_name(region), M.ENV_REGIONS_FILE,
    table.concat(known, ", "))
end

--- The IAM endpoint for `region` (nil or unknown: the global one), unless overridden.
function M.iam_endpoint(region, getenv)
  local override = env(getenv, M.ENV_IAM)
  if override then
    return validate.endpoint(M.ENV_IAM, bare_https(override))
  end
  local entry = region and BY_NAME[region]
  if entry then return entry.iam_endpoint end
  return M.GLOBAL_IAM -- as the official core does for a region without an IAM entry
end

--- The region an endpoint names, if it is a real one (`https://vpc.{region}.myhuaweicloud.com`).
function M.of_endpoint(endpoint)
  local region = endpoint:lower():match("^https?://vpc%.([%l%d%-]+)%.myhuaweicloud%.") -- (a host has no case)
  return region
end

return M
