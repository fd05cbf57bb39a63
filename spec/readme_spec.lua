-- The README stays true: its status and error-code references are the C tables, its command
-- references are the commands' --help, and the commands it shows exist (spec/session_spec.lua
-- runs its offline session).
local read_file = require("spec.support.nginx").read_file
local host = require "spec.support.host"

-- What a generator script prints, run by this interpreter with its core.
local function generate(script)
  local out, code = host.run([[LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="]] .. host.cpath .. [[;;" ]]
    .. host.lua .. " " .. script)
  assert.equal(0, code, script .. " failed")
  return out
end

-- The text of a "## title" section, up to the next one.
local function section(readme, title)
  local start = assert(readme:find("\n## " .. title .. "\n", 1, true), "no section " .. title)
  local stop = readme:find("\n## ", start + 1, true) or #readme
  return readme:sub(start, stop), start
end

describe("README.md", function()
  local readme = assert(read_file("README.md"))

  it("carries the status reference generated from the C table", function()
    local table_md = generate("scripts/status-table.lua")
    assert.is_true(#table_md > 1000)
    assert.is_truthy(readme:find(table_md, 1, true),
      "README status table is stale: regenerate it with scripts/status-table.lua")
  end)

  it("carries the error-code reference generated from the C table, right after the statuses", function()
    local table_md = generate("scripts/error-codes.lua")
    local core = require "eip.core"
    local rows = 0
    for _, e in ipairs(core.error_codes()) do rows = rows + #e.variants end
    -- header, rule, one line per row of the table
    local _, lines = table_md:gsub("\n", "")
    assert.equal(rows + 2, lines)
    local text, at = section(readme, "Error-code reference")
    assert.is_truthy(text:find(table_md, 1, true),
      "README error-code table is stale: regenerate it with scripts/error-codes.lua")
    local _, status_at = section(readme, "Status reference")
    assert.is_true(status_at < at)
    assert.is_nil(readme:sub(status_at + 1, at - 1):find("\n## ", 1, true),
      "the error-code reference must follow the status reference directly")
  end)

  it("carries the command references generated from eip's and eip-emulator's --help", function()
    local docs = dofile("scripts/cli-docs.lua")
    for _, tool in ipairs{ "eip", "eip-emulator" } do
      assert.is_truthy(readme:find(docs.markdown(tool), 1, true),
        "README's " .. tool .. " reference is stale: regenerate it with scripts/cli-docs.lua markdown " .. tool)
    end
  end)

  it("shows the two commands and the LuaRocks install", function()
    assert.is_truthy(readme:find("make demo", 1, true))
    assert.is_truthy(readme:find("make test", 1, true))
    assert.is_truthy(readme:find("luarocks make --lua-version=5.4 --deps-mode=none eip-scm-1.rockspec", 1, true))
  end)

  -- Its Usage script, run as a file by this interpreter against the emulator: a bandwidth that
  -- still holds an EIP reaches its last branch, the raise. Lua 5.1's interpreter prints a table
  -- raised to the top as "(error object is not a string)": the why was lost there.
  describe("Usage", function()
    local fx = require("spec.support.fixture").emulator()
    local emu
    setup(function() emu = fx.start() end)
    teardown(fx.stop)

    it("says why a delete failed when its script raises, on every Lua", function()
      local script = assert(section(readme, "Usage"):match("```lua\n(.-client:close%(%)[^\n]*)\n"))
      local id = emu:create_bandwidth{ size = 5, eips = 1 }
      script = script:gsub('endpoint%s*= "[^"]*"', function() return string.format("endpoint = %q", emu.url) end)
        :gsub('local id = "[^"]*"', function() return string.format("local id = %q", id) end)
      assert.is_truthy(script:find(emu.url, 1, true))
      local command = "env OS_AUTH_TOKEN=" .. host.quote(emu.token) .. " " .. host.lua_command
      local out, code = host.run_script(script, command)
      assert.equal(1, code)
      assert.matches("409 Conflict %(VPC%.0304", out)
    end)
  end)
end)
