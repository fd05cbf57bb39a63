--- The eip command's standard output, as an object with `write` and `flush` that remember the
-- first failure (a full disk, a closed descriptor, a reader gone: EPIPE while the command
-- ignores SIGPIPE). Lua's own `io.stdout:write` returns nil and the error, which nothing looks
-- at if every call site must: here the command asks once whether its output was lost.
--
--   local sink = require "eip.cli.sink"
--   local stdout = sink.stdout
--   stdout:write("a line\n")
--   stdout:flush()
--   if sink.failed() then ... end        -- the text of the first error, or nil
--
-- Both streams here keep the credentials of the environment and the profile file out of what
-- the command prints (eip.validate's registered secrets, which eip.cli registers before it reads
-- its arguments): the client cleans its own from what a server sends back, not the others it
-- was not given (a server echoing the profile file's SK while the command used a token).
-- @module eip.cli.sink
local validate = require "eip.validate"

local M = {}

local real = io.stdout
local failure = nil

-- The arguments of a write as one string, scrubbed (validate.scrub_pieces: pieces of 8 bytes
-- or more; a short secret quoted whole may be any JSON key or value): a secret split across two
-- arguments is one text too.
local function scrubbed(...)
  local n = select("#", ...)
  local s = n == 1 and ... or table.concat({ ... }, "", 1, n)
  return validate.scrub_pieces(tostring(s))
end

local Stream = {}
Stream.__index = Stream

local function check(self, ok, err)
  if not ok and not failure then failure = tostring(err or "write failed") end
  if failure then return nil, failure end
  return self
end

--- Writes its arguments to standard output (once a write failed, nothing more is written).
-- @param ... strings or numbers, as `file:write`
-- @return the stream, or nil and the first error's text
function Stream:write(...)
  if failure then return nil, failure end
  return check(self, real:write(scrubbed(...)))
end

--- Flushes standard output.
-- @return the stream, or nil and the first error's text
function Stream:flush()
  if failure then return nil, failure end
  return check(self, real:flush())
end

--- Standard output, as a stream that remembers its first failure.
M.stdout = setmetatable({}, Stream)

--- Standard error, scrubbed as standard output is (its failures are not remembered: nothing is
-- left to say them on).
M.stderr = {
  write = function(self, ...)
    io.stderr:write(scrubbed(...))
    return self
  end,
  flush = function(self)
    io.stderr:flush()
    return self
  end,
}

--- The first write or flush error of standard output, or nil.
-- @treturn string|nil
function M.failed()
  return failure
end

--- Forgets a failure (for a command run again in the same process, as the specs do).
function M.reset()
  failure = nil
end

return M
