-- The README stays true: its status reference is the C table, and the commands it shows exist.
local read_file = require("spec.support.nginx").read_file
local host = require "spec.support.host"

describe("README.md", function()
  local readme = assert(read_file("README.md"))

  it("carries the status reference generated from the C table", function()
    local f = assert(io.popen([[LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="]] .. host.cpath .. [[;;" ]]
      .. host.lua .. " scripts/status-table.lua"))
    local table_md = f:read("*a")
    f:close()
    assert.is_true(#table_md > 1000)
    assert.is_truthy(readme:find(table_md, 1, true),
      "README status table is stale: regenerate it with scripts/status-table.lua")
  end)

  it("shows the two commands and the LuaRocks install", function()
    assert.is_truthy(readme:find("make demo", 1, true))
    assert.is_truthy(readme:find("make test", 1, true))
    assert.is_truthy(readme:find("luarocks make --lua-version=5.4 --deps-mode=none eip-scm-1.rockspec", 1, true))
  end)
end)
