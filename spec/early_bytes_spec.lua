-- A server that wrote before the first request on a connection (a 204 at once, then the first
-- request's own answer, as many bytes): the C core's look before reusing a plain connection
-- compares the kernel's count of the bytes received with where the last answer ended, and that
-- mark must start from the bytes read before the request, not from those received: counted
-- twice, the unread early bytes made the mark as high as the count after the first request's
-- own answer arrived, unread, and the next request went out on that connection and read it
-- (another request's answer). build/slowdns.so holds the connect back 200 ms, so that the early
-- bytes are there when the core looks (without it, a race the old code lost 1 time in 4).
local host = require "spec.support.host"

local SHIM = "build/slowdns.so"

describe("a plain connection whose server wrote before the first request", function()
  it("is not reused once an answer came unread after the first request's", function()
    assert(io.open(SHIM, "rb"), SHIM .. " is missing: make test builds it (make " .. SHIM .. ")"):close()
    local server = require("spec.support.early").start()
    local url = "http://127.0.0.1:" .. server.port .. "/v2.0/p/bandwidths/bw-1"
    local out, code = host.run_script([[
      local core = require "eip.core"
      local t = require("eip.transport.curl").new{ user_agent = "early-bytes" }
      local req = { method = "DELETE", url = ]] .. string.format("%q", url) .. [[, headers = {},
        timeout = 3, connect_timeout = 3 }
      local first = t:send(req)
      core.sleep(0.3) -- the first request's own answer comes meanwhile, unread
      local second = t:send(req)
      t:close()
      print(first.status, first.request_id, second.status, second.request_id, second.new_connections)
    ]], "EIP_SLOWCONNECT_PORT=" .. server.port .. " LD_PRELOAD=" .. host.quote(host.ROOT .. "/" .. SHIM) .. " "
      .. host.lua_command)
    server:stop()
    assert.equal(0, code, out)
    -- (the early 204 is read as the first request's answer: a server that answers before it is
    -- asked cannot be told from one that answers at once; the second goes out on a new connection)
    assert.equal("204\tearly\t204\tfresh\t1", out:match("^[^\n]*"), out)
  end)
end)
