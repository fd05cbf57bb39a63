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
-- file that others may read is warned about, as ssh does with keys. Only a regular file of at
-- most 64 KiB is read: a directory, a FIFO, a device, a bigger file or one that cannot be read
-- is a usage error naming it.
-- @module eip.profile
local core = require "eip.core"
local errors = require "eip.errors"
local validate = require "eip.validate"

local M = {}

M.ENV = "HUAWEICLOUD_SDK_CREDENTIALS_FILE"
M.KEYS = { ak = true, sk = true, project_id = true, security_token = true, iam_endpoint = true }

--- The path of one of the official SDKs' files: the environment variable `env` when set, else
-- `~/.huaweicloud/<name>` (nil without HOME).
function M.sdk_file(getenv, env, name)
  local p = getenv(env)
  if p and p ~= "" then return p end
  local home = getenv("HOME")
  if home and home ~= "" then return home .. "/.huaweicloud/" .. name end
  return nil
end

--- The path of the profile file, from the environment or the home directory (nil without HOME).
function M.path(getenv)
  return M.sdk_file(getenv, M.ENV, "credentials")
end

local function trim(s)
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

--- Parses INI text: { [section] = { [key] = value } }. Raises a usage error naming `path` and the
-- line of the first line that is neither a section, a `key = value`, a comment nor blank.
-- `lenient` (for redaction, see @{secrets}): nothing is refused; a line that is none of those is
-- passed over, a section header may be followed by a comment, a CR alone ends a line (what the
-- SDKs' configparser reads), and a value that opens a quote it does not close is kept as written.
function M.parse(text, path, lenient)
  text = text:gsub("^\239\187\191", "") -- a UTF-8 byte order mark, as some editors write
  -- (CRLF, or a CR alone, ends a line: what the SDKs' configparser reads; the strict pass reads
  -- the lines the lenient one redacts)
  text = text:gsub("\r\n?", "\n")
  local header = lenient and "^%[%s*([^%]]-)%s*%]" or "^%[%s*([^%]]-)%s*%]$"
  local sections, current, current_name = {}, nil, nil
  local n = 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    line = trim(line)
    if line ~= "" and not line:find("^[#;]") then
      local section = line:match(header)
      if section then
        current_name = section:lower()
        current = sections[current_name] or {}
        sections[current_name] = current
      else
        local key, value = line:match("^([%w_%-%.]+)%s*[=:]%s*(.-)$")
        if (not key or not current) and not lenient then
          errors.raise_usage("credentials file", "%s, line %d: expected [section] or key = value%s", path, n,
            current and "" or " inside a section")
        end
        if key and current then
          -- A value in quotes keeps what is inside them. One of ours that opens a quote and does
          -- not close it (`sk = "u8jz...`) is a mistake that would keep the quote in the secret:
          -- refused, naming the key, never its value. Other sections and keys are left to the
          -- tools that read them.
          key = key:lower()
          local q = value:match("^([\"'])")
          local unquoted = q and value:match("^" .. q .. "(.*)" .. q .. "$")
          if q and not unquoted and current_name == "basic" and M.KEYS[key] and not lenient then
            errors.raise_usage("credentials file", "%s, line %d: the value of %s opens a quote (%s) that it does "
              .. "not close", path, n, key, q)
          end
          -- No key, token, project id or endpoint holds a space: one that does has a comment
          -- after it (`sk = ... # prod`; the Go SDK's INI reader cuts it off, Python's keeps it),
          -- and signing with it would spend refused signatures towards the key's lock.
          if current_name == "basic" and M.KEYS[key] and not lenient and (unquoted or value):find("%s") then
            errors.raise_usage("credentials file", "%s, line %d: the value of %s holds a space (a comment after it? "
              .. "put comments on lines of their own)", path, n, key)
          end
          -- Nor a comment mark: INI readers (go-ini) cut `sk = X#rotated` at the mark even with
          -- no space before it, so the SDKs would sign with another key than this one.
          if current_name == "basic" and M.KEYS[key] and not lenient and (unquoted or value):find("[#;]") then
            errors.raise_usage("credentials file", "%s, line %d: the value of %s holds a comment mark (# or ;): no "
              .. "key, token, project id or endpoint has one; put comments on lines of their own", path, n, key)
          end
          -- Nor a quote mark left inside it, nor a byte outside printable ASCII: a non-breaking
          -- space or a typographic quote pasted with the key (go-ini trims Unicode spaces and
          -- takes `...` and """...""" as quotes) would be signed with, every signature refused.
          local v = unquoted or value
          if current_name == "basic" and M.KEYS[key] and not lenient and not validate.plain(v) then
            errors.raise_usage("credentials file", "%s, line %d: the value of %s holds a quote mark or a character "
              .. "outside printable ASCII (a non-breaking space, a typographic quote?): no key, token, project id or "
              .. "endpoint has one", path, n, key)
          end
          current[key] = unquoted or value
        end
      end
    end
  end
  return sections
end

local warned = {}

--- The most a credentials file may hold: a few keys take a few hundred bytes.
M.MAX_SIZE = 64 * 1024

--- The text of the file at `path` and its permission bits, or nil when there is none. Only a
-- regular file of at most `max` bytes (default @{MAX_SIZE}) is read, and its type is asked of
-- stat before it is opened: opening a FIFO waits for a writer, a device reads without end.
-- Anything else is a usage error naming the file (`what`, its argument: default "credentials
-- file"; `holds`: what such a file holds, for the message of one too big), never quoting what it
-- holds. /dev/null reads as an empty file (a way to say "no such file").
function M.read_text(path, what, max, holds)
  what, max = what or "credentials file", max or M.MAX_SIZE
  local function refuse(fmt, ...)
    errors.raise_usage(what, "%s " .. fmt, path, ...)
  end
  local kind, size, mode = core.file_kind(path)
  if not kind then
    if mode then return nil end -- (the third value says that nothing is there)
    refuse("cannot be read (%s)", size)
  end
  if kind ~= "file" and path == "/dev/null" then return "" end
  if kind ~= "file" then
    refuse("is a %s, not a regular file: name the %s itself", validate.FILE_KINDS[kind] or kind, what)
  end
  local function too_big(bytes)
    refuse("is too big for a %s (%s bytes; at most %d: it holds %s)", what, bytes, max, holds or "a few keys")
  end
  if size > max then too_big(string.format("%.0f", size)) end
  local f, err = io.open(path, "rb")
  if not f then
    if err and err:sub(1, #path + 2) == path .. ": " then err = err:sub(#path + 3) end
    refuse("cannot be opened (%s)", err or "?")
  end
  -- One byte more than allowed: a file that grew since stat (or a /proc file, whose size
  -- stat gives as 0) is still refused rather than read without limit.
  local text, rerr = f:read(max + 1)
  f:close()
  if text == nil then
    if rerr then refuse("cannot be read (%s)", tostring(rerr)) end
    text = "" -- an empty file: read gives nil at its end
  end
  if #text > max then too_big("more than " .. max) end
  return text, mode
end
local read_text = M.read_text

--- The `[basic]` section of the profile file, or nil and where it looked, as the list of places
-- of the "credentials not found" error says it: "the profile file PATH (not found)", "... (no
-- [basic] section)", or "no profile file (HOME is not set, nor HUAWEICLOUD_SDK_CREDENTIALS_FILE)".
-- `warn(line)` receives a warning when the file is readable by group or others
-- (once per path and process). A path that is not a regular file of at most @{MAX_SIZE} bytes
-- (a directory, a FIFO, a device), or that cannot be read, is a usage error naming it.
function M.read(getenv, warn)
  local path = M.path(getenv)
  if not path then return nil, "no profile file (HOME is not set, nor " .. M.ENV .. ")" end
  local text, mode = read_text(path)
  if not text then return nil, "the profile file " .. path .. " (not found)" end
  if mode and mode % 64 ~= 0 and not warned[path] then -- any bit of group or other (0077)
    warned[path] = true
    warn(string.format("eip: warning: the credentials file %s can be read by others (mode %o): "
      .. "chmod 600 it", path, mode))
  end
  local basic = M.parse(text, path).basic
  if not basic then return nil, "the profile file " .. path .. " (no [basic] section)" end
  basic.path = path
  return basic
end

--- The secret values of the profile file's `[basic]` section (sk, security_token), read
-- without a word: for redaction before the credentials are looked for (see
-- eip.auth.known_secrets). Parsed leniently (see @{parse}): a line the look-up of credentials
-- will refuse (in any section: a note, a quote left open) must not hide the keys, since what
-- quotes them (a region checked first) comes before that file's usage error. A file that cannot
-- be read gives none here; the look-up says why, if it comes to it, and warns about a file
-- others can read.
-- @tparam[opt] function getenv replaces os.getenv (tests)
-- @treturn {string,...}
function M.secrets(getenv)
  local out = {}
  local ok, text = pcall(function()
    local path = M.path(getenv)
    return path and read_text(path)
  end)
  local basic = ok and text and M.parse(text, nil, true).basic
  for _, key in ipairs{ "sk", "security_token" } do
    local v = basic and basic[key]
    if v and v ~= "" then out[#out + 1] = v end
  end
  return out
end

return M
