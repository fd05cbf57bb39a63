--- The command line of `eip`: usage errors, option parsing and the help texts.
--
-- A command is a table `{ name, args, summary, about, options, credentials, run }` (see
-- `eip.cli`; `tool`, default "eip", names the program in help and messages: `eip-emulator`'s
-- commands are parsed here too); its `options` are a list of option specs:
--
--   { "--concurrency", key = "concurrency", value = "N", integer = true, min = 1, max = 64, help = "..." }
--
-- `key` names the field of the parsed options; `value` (the metavar) says that the option takes
-- a value, which `number` or `integer` convert and `min`/`max` bound, or which must be one of
-- `choices`, and which `check` (a function(value, flag) raising a usage error) sees at every
-- occurrence: a repeated option keeps its last value, and a refusal must not miss the others.
-- An option without `value` is a flag (true). A command with `output` (its default
-- format) takes `--output text|json|table` and `--json`, and gets `opts.output` set.
--
-- Options that would carry a secret (`--token`, `--sk`, ...) are refused without echoing their
-- value: arguments show in `ps` and in shell history. An unknown option or command is refused
-- with the closest known name when it looks like a typo or an abbreviation.
-- @module eip.cli.args
local eip = require "eip"
local validate = require "eip.validate"

local M = {}

-- Usage errors ---------------------------------------------------------------------------

-- A usage problem found by the command line itself (as opposed to an eip error).
local Usage = {}
Usage.__index = Usage
Usage.__tostring = function(u) return "eip: " .. u.message end

--- Raise a usage error of the command line: the command then exits 2, having sent nothing.
-- `tostring` of the error is `"eip: " .. message`.
-- @tparam string fmt a `string.format` format
-- @param ... its arguments
function M.usage(fmt, ...)
  error(setmetatable({ message = string.format(fmt, ...) }, Usage), 0)
end

--- Is `e` a usage error: one of `usage`, or an eip error of kind `"usage"`?
-- @param e a raised value
-- @treturn boolean
function M.is_usage(e)
  return getmetatable(e) == Usage or (eip.is_error(e) and e.kind == "usage")
end

-- A failure the command line finds by itself, such as a lookup that finds nothing: exit 1.
local Failure = {}
Failure.__index = Failure
Failure.__tostring = function(f) return "eip: " .. f.message end

--- Raise a failure of the command line (exit 1; not a usage error: the arguments were fine).
-- @tparam string kind what failed, e.g. "not_found" (the `kind` of the JSON error)
-- @tparam string fmt a `string.format` format
-- @param ... its arguments
function M.fail(kind, fmt, ...)
  error(setmetatable({ kind = kind, message = string.format(fmt, ...) }, Failure), 0)
end

--- Is `e` a failure raised by `fail`?
-- @param e a raised value
-- @treturn boolean
function M.is_failure(e)
  return getmetatable(e) == Failure
end

local usage = M.usage

--- An environment variable, empty counted as unset (as the library counts it).
-- @tparam string name
-- @treturn ?string
function M.getenv(name)
  local v = os.getenv(name)
  if v == "" then return nil end
  return v
end

-- Option specs shared by commands ----------------------------------------------------------

--- The output formats, in the order help lists them.
M.FORMATS = { "text", "json", "table" }

--- The `--output` option and its `--json` shorthand, for a command whose default format is
-- `default` (a list of two option specs: `flatten` puts them in place).
-- @tparam string default "text" or "table"
-- @treturn table the list of the two option specs
function M.output_options(default)
  return { { "--output", value = "FORMAT", key = "output", choices = M.FORMATS,
      help = "text, json (one object per line) or table (default " .. default .. ")" },
    { "--json", key = "json", help = "the same as --output json" } }
end

--- A list of option specs, with the lists among them (such as `output_options`) put in place.
-- @tparam table list option specs and lists of them
-- @treturn table a new list of option specs
function M.flatten(list)
  local out = {}
  for _, o in ipairs(list) do
    if type(o[1]) == "table" then
      for _, inner in ipairs(o) do out[#out + 1] = inner end
    else
      out[#out + 1] = o
    end
  end
  return out
end

-- Options that would carry a secret, and the environment variable to use instead.
local SECRET_OPTIONS = { ["--token"] = "OS_AUTH_TOKEN", ["--auth-token"] = "OS_AUTH_TOKEN",
  ["--ak"] = "HUAWEICLOUD_SDK_AK", ["--sk"] = "HUAWEICLOUD_SDK_SK",
  ["--security-token"] = "HUAWEICLOUD_SDK_SECURITY_TOKEN", ["--password"] = "OS_AUTH_TOKEN" }

--- Refuses a flag that would carry a secret (`--token`, `--sk`...) with a usage error naming the
-- variable to export instead, never its value; does nothing for any other flag.
-- @tparam string flag the flag, without any `=value`
-- @tparam string name the tool's name, for the pointer to its help
function M.refuse_secret(flag, name)
  if SECRET_OPTIONS[flag] then
    M.usage("%s is not accepted: a secret on the command line shows in ps and shell history; "
      .. "export %s instead (see %s --help)", flag, SECRET_OPTIONS[flag], name)
  end
end

-- Typo suggestions ---------------------------------------------------------------------------

--- The known name `name` is most likely a typo or an abbreviation of, if any (the library's
-- `eip.validate.closest`, which names unknown regions the same way).
-- @function closest
-- @tparam string name what was typed
-- @tparam {string,...} names the known names
-- @treturn ?string the closest name, or nil when none is close enough
M.closest = validate.closest

-- What a message says of a word that holds a credential of the environment (the command registers
-- them first: eip.validate.holds_secret): checked on the whole word, as a quote of it cut short
-- may end with too few bytes of one for the scrub to find, and %q escapes a password's '"' and '\'.
local HELD = "a value that holds a credential (not shown)"

--- A word of the command line as a message may quote it: whole when short enough to be a typo,
-- else only its length; never when it holds an '@', which may be a URL's `user:password@`
-- given where a command or an option was expected, nor a credential.
-- @tparam string word what was typed
-- @tparam integer max the longest word shown
-- @tparam[opt] boolean quote put a shown word in quotes (`%q`)
-- @treturn string
function M.shown_word(word, max, quote)
  if #word > max or word:find("@", 1, true) then return string.format("(%d characters, not shown)", #word) end
  if validate.holds_secret(word) then return "(" .. HELD .. ")" end
  return quote and string.format("%q", word) or word
end

--- Raises the usage error of an unknown option, with the closest known one when it looks like
-- a typo (a long one is neither echoed nor matched: a pasted blob, or a secret).
-- @tparam string flag the option as typed, without any `=value`
-- @tparam {string,...} names the known options
-- @tparam ?string command the command's name, nil for an option before the command
-- @tparam string help what `--help` to point to ("eip delete-bandwidth", "eip")
function M.unknown_option(flag, names, command, help)
  local guess = M.closest(flag, names)
  usage("unknown option %s%s%s (see: %s --help)", M.shown_word(flag, 40), command and (" for " .. command) or "",
    guess and ("; did you mean " .. guess .. "?") or "", help)
end

-- Parsing ----------------------------------------------------------------------------------

-- The integer a string denotes, or nil: "12", "-3", "0x1f", not "1.5", "1e2" or "1.0" (which
-- Lua 5.3+ reads as floats; on Lua 5.1 and LuaJIT, where every number is a float, the same
-- strings are refused by their spelling).
local math_type = math.type -- luacheck: ignore 143 (absent before Lua 5.3)

--- Does s spell a hex number of more significant digits than a double holds exactly (13)? Lua
-- 5.3+ reads "0x10000000000000004" as 4 (it wraps modulo 2^64): such a value is refused, not
-- taken as a small one.
function M.hex_too_long(s)
  local digits = type(s) == "string" and s:match("^%s*[-+]?0[xX](%x+)%s*$")
  return digits ~= nil and #(digits:gsub("^0+", "")) > 13
end

--- The number s spells, or nil: as Lua 5.2+ reads it on every version (Lua 5.1 and LuaJIT also
-- read "nan", "inf" and "infinity", which no option takes, and NaN passes every range check),
-- and never a hex number longer than a double holds (see hex_too_long).
function M.number_of(s)
  -- (LuaJIT also reads binary, "0b101" as 5)
  if M.hex_too_long(s) or (type(s) == "string" and s:find("^%s*[-+]?0[bB]")) then return nil end
  local n = tonumber(s)
  if n == nil or n ~= n or n == math.huge or n == -math.huge then return nil end
  return n
end

local function integer_of(s)
  local n = M.number_of(s)
  if n == nil then return nil end
  if math_type then return math_type(n) == "integer" and n or nil end
  local spelled = s:match("^%s*[-+]?%d+%s*$") or s:match("^%s*[-+]?0[xX]%x+%s*$")
  if spelled and math.abs(n) < 2^53 then return n end
  return nil
end

-- Is byte b a UTF-8 continuation byte?
local function continues(b)
  return b ~= nil and b >= 0x80 and b <= 0xBF
end

--- Where to cut `s` to at most `n` bytes between two UTF-8 characters, not inside one (a
-- character split shows as two broken ones): `n`, or up to 3 bytes less; `n` when `s` is not
-- UTF-8 there.
-- @tparam string s the text
-- @tparam integer n the most bytes kept (at least 1)
-- @treturn integer how many bytes to keep
function M.utf8_cut(s, n)
  local cut = n
  while cut > 1 and cut > n - 3 and continues(s:byte(cut + 1)) do cut = cut - 1 end
  if continues(s:byte(cut + 1)) then return n end
  return cut
end

-- Code points a terminal shows in no column: combining marks (the general blocks: diacritics,
-- their extensions and supplement, those for symbols, half marks), Hangul's medial vowels and
-- final consonants, zero-width spaces and joiners, variation selectors. Those of a script's own
-- block (Devanagari's, Arabic's, ...) count as 1: no table of them is carried.
local ZERO_WIDTH = { { 0x0300, 0x036F }, { 0x1160, 0x11FF }, { 0x1AB0, 0x1AFF }, { 0x1DC0, 0x1DFF },
  { 0x200B, 0x200F }, { 0x20D0, 0x20FF }, { 0xFE00, 0xFE0F }, { 0xFE20, 0xFE2F }, { 0xE0100, 0xE01EF } }
-- Code points shown in two columns: East Asian wide and fullwidth ones (Hangul's initial
-- consonants, CJK symbols and punctuation, kana, CJK ideographs and their extensions, Yi,
-- Hangul syllables, compatibility and fullwidth forms) and the emoji blocks, as wcwidth counts them.
local WIDE = { { 0x1100, 0x115F }, { 0x2E80, 0x303E }, { 0x3040, 0xA4CF }, { 0xAC00, 0xD7A3 }, { 0xF900, 0xFAFF },
  { 0xFE10, 0xFE19 }, { 0xFE30, 0xFE6F }, { 0xFF00, 0xFF60 }, { 0xFFE0, 0xFFE6 }, { 0x1F300, 0x1F64F },
  { 0x1F680, 0x1F6FF }, { 0x1F900, 0x1F9FF }, { 0x1FA70, 0x1FAFF }, { 0x20000, 0x2FFFD }, { 0x30000, 0x3FFFD } }

local function within(ranges, cp)
  for _, r in ipairs(ranges) do
    if cp >= r[1] and cp <= r[2] then return true end
  end
  return false
end

-- The character of `s` at byte `i`: its length in bytes and the columns it takes. A byte that
-- starts no well-formed sequence there is one character of one column (a terminal shows one
-- replacement character for it).
local function char_at(s, i)
  local b = s:byte(i)
  if b < 0xC2 or b > 0xF4 then return 1, 1 end
  local n = b >= 0xF0 and 4 or b >= 0xE0 and 3 or 2
  local cp = b % (b >= 0xF0 and 0x08 or b >= 0xE0 and 0x10 or 0x20)
  for k = i + 1, i + n - 1 do
    local c = s:byte(k)
    if not continues(c) then return 1, 1 end
    cp = cp * 64 + c - 0x80
  end
  if within(ZERO_WIDTH, cp) then return n, 0 end
  return n, within(WIDE, cp) and 2 or 1
end

--- The columns `s` takes on a terminal: one per UTF-8 character, two for an East Asian wide one
-- (a CJK ideograph: a Chinese bandwidth name), none for a combining mark; one per byte that is
-- no UTF-8. (For text without control characters: what the command prints has none.)
-- @tparam string s the text
-- @treturn integer
function M.width(s)
  if not s:find("[\128-\255]") then return #s end
  local i, columns = 1, 0
  while i <= #s do
    local n, w = char_at(s, i)
    i, columns = i + n, columns + w
  end
  return columns
end

--- Where to cut `s` to at most `columns` columns (@{width}) between two characters, as
-- @{utf8_cut} cuts bytes: the combining marks after the last character kept stay with it. At
-- least its first character, even one wider than `columns` (a cut must move on).
-- @tparam string s the text
-- @tparam integer columns the most columns kept
-- @treturn integer how many bytes to keep
function M.width_cut(s, columns)
  local i, used = 1, 0
  while i <= #s do
    local n, w = char_at(s, i)
    if used + w > columns and i > 1 then break end
    i, used = i + n, used + w
  end
  return i - 1
end

--- `string.format` for a format of `%s` conversions (`%-12s`: left-aligned in 12 columns;
-- `%6s`: right-aligned) and `%%` only, whose widths are columns of the terminal (@{width}), not
-- bytes: a Chinese name or status keeps the columns after it in place. A value wider than its
-- column is not cut. Each value goes through `tostring`.
-- @tparam string fmt the format
-- @param ... the values
-- @treturn string
function M.aligned(fmt, ...)
  local values, n = { ... }, 0
  return (fmt:gsub("%%(%-?)(%d*)([s%%])", function(left, size, conversion)
    if conversion == "%" then return "%" end
    n = n + 1
    local v = tostring(values[n])
    local gap = (tonumber(size) or 0) - M.width(v)
    if gap <= 0 then return v end
    return left == "-" and v .. string.rep(" ", gap) or string.rep(" ", gap) .. v
  end))
end

--- A word of the command line (an option's value, an argument) as a usage error quotes it: its
-- first `max` bytes (20 by default; cut between two characters: @{utf8_cut}), or only its length
-- when it holds an '@' (a proxy URL's `user:password@` typed where something else goes), and not
-- at all when it holds a credential.
-- @tparam string v what was typed
-- @tparam[opt=20] integer max the most bytes quoted
-- @treturn string
function M.quoted(v, max)
  if v:find("@", 1, true) then return string.format("(%d characters, not shown)", #v) end
  if validate.holds_secret(v) then return HELD end
  return string.format("%q", v:sub(1, M.utf8_cut(v, max or 20)))
end
local quoted = M.quoted

-- The value of option o, as given (flag spelled as typed).
local function convert(o, flag, v)
  if o.check then o.check(v, flag) end
  if o.choices then
    for _, c in ipairs(o.choices) do
      if v == c then return v end
    end
    local guess = M.closest(v, o.choices)
    usage("%s must be %s, got %s%s", flag, table.concat(o.choices, ", "):gsub(", ([^,]*)$", " or %1"),
      quoted(v), guess and ("; did you mean " .. guess .. "?") or "")
  end
  if not (o.number or o.integer) then return v end
  local n
  if o.integer then n = integer_of(v) else n = M.number_of(v) end
  if n == nil then usage("%s must be %s, got %s", flag, o.integer and "an integer" or "a number", quoted(v)) end
  if (o.min and n < o.min) or (o.max and n > o.max) then
    -- (bounds written as the library writes them: 1e6 is "1000000" on every Lua, not "1000000.0")
    local min, max = validate.number_text(o.min), o.max and validate.number_text(o.max)
    if max then usage("%s must be between %s and %s, got %s", flag, min, max, M.shown_word(v, 20)) end
    usage("%s must be at least %s, got %s", flag, min, M.shown_word(v, 20))
  end
  return n
end

-- The format of a command's output from --output and --json.
local function output_of(command, opts)
  if opts.json and opts.output and opts.output ~= "json" then
    usage("--json and --output %s contradict each other: give one", opts.output)
  end
  return opts.json and "json" or opts.output or command.output
end

--- Parse a command's arguments from `argv[from]` on. Options (`--name`, `--name=value`,
-- `--name value`) may come anywhere; `--` ends them; `-` is an argument. Raises a usage error
-- for an unknown option, a secret option, a missing or malformed value.
-- @tparam table command the command (its `name` and `options`)
-- @tparam {string,...} argv the arguments
-- @tparam integer from the index of the first argument of the command
-- @treturn ?table the options by key, or nil when `-h`/`--help` was given
-- @treturn {string,...} the positional arguments
function M.parse(command, argv, from)
  local name = (command.tool or "eip") .. " " .. command.name
  local by_name, names = {}, {}
  for _, o in ipairs(command.options) do by_name[o[1]] = o; names[#names + 1] = o[1] end
  local opts, args = {}, {}
  local i = from
  while i <= #argv do
    local a = argv[i]
    if a == "--" then
      for j = i + 1, #argv do args[#args + 1] = argv[j] end
      break
    elseif a == "-h" or a == "--help" then
      return nil
    elseif a:sub(1, 1) == "-" and a ~= "-" then
      local flag, inline = a:match("^(%-%-?[^=]*)=(.*)$")
      flag = flag or a
      M.refuse_secret(flag, name)
      local o = by_name[flag]
      if not o then M.unknown_option(flag, names, command.name, name) end
      local v = true
      if o.value then
        v = inline
        if v == nil then
          i = i + 1
          v = argv[i]
          if v == nil then usage("%s needs a value (%s)", flag, o.value) end
        end
        v = convert(o, flag, v)
      elseif inline ~= nil then
        usage("%s takes no value", flag)
      end
      opts[o.key] = v
    else
      args[#args + 1] = a
    end
    i = i + 1
  end
  if command.output then opts.output = output_of(command, opts) end
  return opts, args
end

-- Help -------------------------------------------------------------------------------------

local HELP_WIDTH = 80

-- The lines of `text` cut at spaces to fit `width` after `first` (the first line) or `indent`.
local function fill(first, text, indent, width)
  local lines, line = {}, first
  for word in text:gmatch("%S+") do
    if line ~= first and line ~= indent and #line + 1 + #word > width then
      lines[#lines + 1], line = line, indent .. word
    elseif line == first or line == indent then
      line = line .. word
    else
      line = line .. " " .. word
    end
  end
  lines[#lines + 1] = line
  return lines
end

--- Where the commands that call the API find their credentials and endpoint (the end of their
-- help): the library's order, without its options.
M.ENV_HELP = table.concat(fill("", "Credentials are never options (arguments show in ps and shell "
  .. "history): the first found of HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK (an AK/SK pair; with "
  .. "HUAWEICLOUD_SDK_SECURITY_TOKEN a temporary one), OS_AUTH_TOKEN (an IAM token), the profile file "
  .. "(HUAWEICLOUD_SDK_CREDENTIALS_FILE, else ~/.huaweicloud/credentials), the ECS metadata service "
  .. "(EIP_METADATA_URL, else http://169.254.169.254).", "", HELP_WIDTH), "\n") .. "\n"
  .. table.concat(fill("", "Where to send, unless given as options: EIP_ENDPOINT or HUAWEICLOUD_SDK_REGION, "
  .. "and HUAWEICLOUD_SDK_PROJECT_ID (with a token or keys from the environment only; the profile file's "
  .. "with its keys; else, for AK/SK, looked up by region). A region's endpoint: "
  .. "HUAWEICLOUD_SDK_REGION_EIP_<REGION> (else _VPC_), else the regions file (HUAWEICLOUD_SDK_REGIONS_FILE, "
  .. "else ~/.huaweicloud/regions.yaml), else the table (eip regions).", "", HELP_WIDTH), "\n")

local function option_help(options)
  local lines, indent = {}, string.rep(" ", 25)
  local function add(left, help)
    for _, l in ipairs(fill(string.format("  %-22s ", left), help, indent, HELP_WIDTH)) do lines[#lines + 1] = l end
  end
  for _, o in ipairs(options) do add(o[1] .. (o.value and (" " .. o.value) or ""), o.help) end
  add("-h, --help", "this help")
  return table.concat(lines, "\n")
end

--- A command's `about`, filled to 80 columns: paragraphs are separated by blank lines.
-- @tparam table command the command
-- @treturn {string,...} the paragraphs, each a list of lines
function M.about(command)
  local paragraphs = {}
  for paragraph in (command.about .. "\n\n"):gmatch("(.-)\n\n+") do
    paragraphs[#paragraphs + 1] = fill("", paragraph, "", HELP_WIDTH)
  end
  return paragraphs
end

--- The help of one command (`eip COMMAND --help`, `eip help COMMAND`).
-- @tparam table command the command
-- @treturn string the text, ending with a newline
function M.command_help(command)
  local about = {}
  for i, lines in ipairs(M.about(command)) do about[i] = table.concat(lines, "\n") end
  local text = string.format("usage: %s %s %s\n\n%s\n\noptions:\n%s\n", command.tool or "eip", command.name,
    command.args, table.concat(about, "\n\n"), option_help(command.options))
  if command.credentials then text = text .. "\n" .. M.ENV_HELP .. "\n" end
  return text
end

--- The help of the tool (`eip --help`).
-- @tparam {table,...} commands the commands, in the order to list them
-- @treturn string the text, ending with a newline
function M.tool_help(commands)
  local lines = { "usage: eip COMMAND [options] [arguments]", "",
    "Huawei Cloud EIP shared bandwidths from the command line (lua-eip " .. eip._VERSION .. ").", "",
    "commands:" }
  for _, c in ipairs(commands) do
    lines[#lines + 1] = string.format("  %-18s %s", c.name, c.summary)
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = "eip --version prints the version."
  lines[#lines + 1] = "eip COMMAND --help (or eip help COMMAND) describes a command's options; options"
  lines[#lines + 1] = "may come before the command too. --output text|json|table (or --json) chooses"
  lines[#lines + 1] = "the format; errors are JSON too under --json."
  lines[#lines + 1] = "Exit status: 0 success, 1 a call failed, 2 usage error (nothing was sent),"
  lines[#lines + 1] = "130 interrupted (143 SIGTERM, 129 SIGHUP)."
  lines[#lines + 1] = ""
  lines[#lines + 1] = M.ENV_HELP
  return table.concat(lines, "\n") .. "\n"
end

return M
