-- make demo, as the README shows it: the emulator starts, a shared bandwidth is created and
-- deleted (204), the second delete shows the structured 404, and nothing is left running.
local host = require "spec.support.host"

describe("make demo (scripts/demo)", function()
  it("deletes a bandwidth, then shows the structured 404, and stops the emulator (" .. host.lua .. ")", function()
    local f = assert(io.popen("LUA=" .. host.lua .. " bash scripts/demo 2>&1; echo \"exit=$?\""))
    local out = f:read("*a")
    f:close()
    assert.matches("exit=0\n$", out)
    assert.matches("deleted [%x-]+: 204 No Content %(request%-id %x+", out)
    assert.matches("%-> 404 Not Found %(VPC%.0306: No Eip bandwidth exist with id%.%) request%-id=%x+", out)
    assert.matches("code%s+VPC%.0306", out)
    assert.matches("retryable%s+false", out)
    -- The README shows this output: the same lines, ids, ports, request ids and times aside.
    local readme = assert(io.open("README.md")):read("*a")
    local shown = assert(readme:match("`make demo` prints:\n\n```\n(.-)```"), "no make demo block in the README")
    local function shape(text)
      text = text:gsub("%x+%-%x+%-%x+%-%x+%-%x+", "ID"):gsub("%f[%w]%x%x%x%x%x%x%x%x+%f[%W]", "HEX")
      text = text:gsub("127%.0%.0%.1:%d+", "ADDR"):gsub("[%d.]+ ms", "T ms")
      text = text:gsub("it: %S+ examples/", "it: LUA examples/") -- the interpreter of this run
      local lines = {}
      for line in text:gmatch("[^\n]+") do
        if line:find("^== ") or line:find("^%s") or line:find("^deleted ") or line:find("^eip: ") then
          lines[#lines + 1] = line
        end
      end
      return table.concat(lines, "\n")
    end
    assert.equal(shape(shown), shape(out))
    local endpoint = out:match("endpoint (http://127%.0%.0%.1:%d+)")
    assert.is_string(endpoint)
    local port = endpoint:match(":(%d+)$")
    local socket = require "socket"
    local s = socket.tcp()
    s:settimeout(1)
    local connected = s:connect("127.0.0.1", tonumber(port))
    s:close()
    assert.is_nil(connected, "the emulator still answers on " .. endpoint)
  end)
end)
