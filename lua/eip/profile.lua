--- The credentials profile file of the official SDKs: `HUAWEICLOUD_SDK_CREDENTIALS_FILE`, else
-- `~/.huaweicloud/credentials`. INI: the section `[basic]` holds `ak`, `sk`, `project_id`,
-- `security_token` and `iam_endpoint` (other sections and keys are ignored).
--
--   [basic]
--   ak = HPUA...
--   sk = ...
--   project_id = 0a1b2c3d4e5f60718293a4b5c6d7e8f9
--
-- A malformed file is a usage error naming the file and the line, never printing a value; a
-- file that others may read is warned about, as ssh does with keys.
-- @module eip.profile
local core = require "eip.core"
local errors = require "eip.errors"

local M = {}

M.ENV = "HUAWEICLOUD_SDK_CREDENTIALS_FILE"
M.KEYS = { ak = true, sk = true, project_id = true, security_token = true, iam_endpoint = true }

--- The path of the profile file, from the environment or the home directory (nil without HOME).
function M.path(getenv)
  local p = getenv(M.ENV)
  if p and p ~= "" then return p end
  local home = getenv("HOME")
  if home and home ~= "" then return home .. "/.huaweicloud/credentials" end
  return nil
end

local function trim(s)
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

--- Parses INI text: { [section] = { [key] = value } }. Raises a usage error naming `path` and the
-- line of the first line that is neither a section, a `key = value`, a comment nor blank.
function M.parse(text, path)
  text = text:gsub("^\239\187\191", "") -- a UTF-8 byte order mark, as some editors write
  local sections, current = {}, nil
  local n = 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    line = trim(line:gsub("\r$", ""))
    if line ~= "" and not line:find("^[#;]") then
      local section = line:match("^%[%s*([^%]]-)%s*%]$")
      if section then
        current = sections[section:lower()] or {}
        sections[section:lower()] = current
      else
        local key, value = line:match("^([%w_%-%.]+)%s*[=:]%s*(.-)$")
        if not key or not current then
          errors.raise_usage("credentials file", "%s, line %d: expected [section] or key = value%s", path, n,
            current and "" or " inside a section")
        end
        -- A value in quotes keeps what is inside them.
        value = value:match('^"(.*)"$') or value:match("^'(.*)'$") or value
        current[key:lower()] = value
      end
    end
  end
  return sections
end

local warned = {}

--- The `[basic]` section of the profile file, or nil and why not ("not found", "no [basic]
-- section"). `warn(line)` receives a warning when the file is readable by group or others
-- (once per path and process).
function M.read(getenv, warn)
  local path = M.path(getenv)
  if not path then return nil, "no HOME to look in" end
  local f = io.open(path, "rb")
  if not f then return nil, path .. " (not found)" end
  local text = f:read("*a")
  f:close()
  local mode = core.file_mode(path)
  if mode and mode % 64 ~= 0 and not warned[path] then -- any bit of group or other (0077)
    warned[path] = true
    warn(string.format("eip: warning: the credentials file %s can be read by others (mode %o): "
      .. "chmod 600 it", path, mode))
  end
  local basic = M.parse(text, path).basic
  if not basic then return nil, path .. " (no [basic] section)" end
  basic.path = path
  return basic
end

return M
