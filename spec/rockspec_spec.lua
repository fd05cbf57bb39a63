-- The rock: `luarocks make` installs into a fresh tree, after which `require "eip"` works from
-- any directory, and every Lua module of the repo is in the rockspec.
local emulator = require "spec.support.emulator"

local function run(cmd)
  local f = assert(io.popen(cmd .. " 2>&1", "r"))
  local out = f:read("a")
  local ok, _, code = f:close()
  return ok, out, code
end

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

describe("eip-scm-1.rockspec", function()
  local spec_text

  setup(function()
    local f = assert(io.open("eip-scm-1.rockspec"))
    spec_text = f:read("a")
    f:close()
  end)

  it("lists every Lua module under lua/", function()
    local ok, out = run("cd lua && find . -name '*.lua' | sort")
    assert.is_true(ok)
    for path in out:gmatch("[^\n]+") do
      path = path:gsub("^%./", "")
      local mod = path:gsub("/init%.lua$", ""):gsub("%.lua$", ""):gsub("/", ".")
      assert.is_truthy(spec_text:find('["' .. mod .. '"] = "lua/' .. path .. '"', 1, true),
        "module " .. mod .. " (lua/" .. path .. ") is missing from the rockspec")
    end
  end)

  it("also builds for the Lua 5.1 ABI (LuaJIT / OpenResty) when LuaRocks targets it", function()
    local tree = os.tmpname()
    os.remove(tree)
    local ok, out = run("luarocks --lua-version=5.1 make --deps-mode=none --tree " .. q(tree)
      .. " eip-scm-1.rockspec LUA_INCDIR=/usr/include/luajit-2.1")
    local so = io.open(tree .. "/lib/lua/5.1/eip/core.so")
    if so then so:close() end
    run("rm -rf " .. q(tree))
    assert.is_true(ok, out)
    assert.is_not_nil(so, "no lib/lua/5.1/eip/core.so in the tree")
  end)

  it("installs with luarocks make into a fresh tree; require \"eip\" then works from anywhere", function()
    local tree = os.tmpname()
    os.remove(tree)
    local ok, out = run("luarocks make --lua-version=5.4 --deps-mode=none --tree " .. q(tree) .. " eip-scm-1.rockspec")
    assert.is_true(ok, out)
    local emu = emulator.start()
    local id = emu:create_bandwidth{ size = 1 }
    local script = string.format([[
      local eip = require "eip"
      assert(package.searchpath("eip", package.path):find(%q, 1, true), "not loaded from the tree")
      local c = eip.new{ endpoint = %q, project_id = %q, token = %q }
      io.write(c:delete_bandwidth(%q).status)
    ]], tree, emu.url, emu.project_id, emu.token, id)
    -- A clean environment and another directory: only the tree's paths are visible.
    ok, out = run("cd /tmp && eval \"$(luarocks --lua-version=5.4 --tree " .. q(tree) .. " path)\" && "
      .. "env -u LUA_INIT lua5.4 -e " .. q(script))
    emu:stop()
    run("rm -rf " .. q(tree))
    assert.is_true(ok, out)
    assert.equal("204", out)
  end)
end)
