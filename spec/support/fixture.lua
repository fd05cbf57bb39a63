-- The emulator of a describe block, and clients for it: what most specs start with.
--
--   local fixture = require "spec.support.fixture"
--   describe("...", function()
--     local fx = fixture.emulator()         -- or fixture.emulator{ <emulator.start options> }
--     local emu
--     setup(function() emu = fx.start() end)
--     teardown(fx.stop)
--     before_each(fx.reset)                 -- emulator state and counters reset, clients closed
--
--     fx.options{ max_attempts = 1 }         -- endpoint, project_id, token, timeout = 5, then
--                                           -- these (fixture.NONE removes one: { token = fixture.NONE })
--     fx.client{ ... }                      -- eip.new(fx.options{ ... }), closed by the next
--                                           -- reset and by stop
--
-- busted's setup/teardown are globals of the spec file only (a required module does not see
-- them), hence the three explicit lines.
local eip = require "eip"
local emulator = require "spec.support.emulator"

local M = {}

--- As an option's value in f.options: leave that option out.
M.NONE = setmetatable({}, { __tostring = function() return "fixture.NONE" end })

--- An id shaped like the cloud's (a UUID) that names no bandwidth: the emulator, as the cloud,
-- answers 404 VPC.0306 for it (an id of another shape is a 400 VPC.0301). `n`: which one
-- (0-999999, default 1).
function M.absent_id(n)
  return string.format("00000000-0000-4000-8000-%012d", n or 1)
end

--- How many API requests `emu` has logged, of `method` only when given (control calls are
-- never logged).
function M.count_requests(emu, method)
  local n = 0
  for _, r in ipairs(emu:requests()) do
    if method == nil or r.method == method then n = n + 1 end
  end
  return n
end

--- A libcurl transport (eip.transport.new) that hands back its answer to a request whose URL holds
-- `url_part` only once less than half of eip.pipeline's MIN_ATTEMPT_TIME is left of that
-- request's timeout: the call whose deadline the timeout was cut to has too little of it left for
-- its next request. (The emulator delaying the answer to about that instant, 0.98 s of a 1 s
-- deadline, had it come after the deadline on a loaded machine: the request timed out instead.)
-- A client closes it with itself.
function M.answering_late(url_part)
  local core = require "eip.core"
  local inner = require("eip.transport").new{}
  local margin = require("eip.pipeline").MIN_ATTEMPT_TIME / 2
  return setmetatable({ send = function(_, req)
    local late = core.monotime() + req.timeout - margin
    local resp = inner:send(req)
    if req.url:find(url_part, 1, true) then core.sleep(late - core.monotime()) end
    return resp
  end }, { __index = inner })
end

--- A fixture around one emulator started with `start_opts`.
function M.emulator(start_opts)
  local f = { clients = {} }

  local function close_clients()
    for i = #f.clients, 1, -1 do
      f.clients[i]:close()
      f.clients[i] = nil
    end
  end

  function f.start()
    f.emu = emulator.start(start_opts)
    return f.emu
  end

  function f.stop()
    close_clients()
    if f.emu then f.emu:stop() end
  end

  function f.reset()
    close_clients()
    f.emu:reset()
    -- (IAM refusals every client of the process shares: the emulator's IAM answers anew)
    require("eip.auth").forget_refusals()
  end

  function f.options(extra)
    local emu = f.emu
    local opts = { endpoint = emu.url, project_id = emu.project_id, token = emu.token, timeout = 5 }
    for k, v in pairs(extra or {}) do
      if v == M.NONE then opts[k] = nil else opts[k] = v end
    end
    return opts
  end

  function f.client(extra)
    local c = eip.new(f.options(extra))
    f.clients[#f.clients + 1] = c
    return c
  end

  return f
end

return M
