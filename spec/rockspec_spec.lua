-- The rock: `luarocks make` installs into a fresh tree for the interpreter of this test run,
-- after which `require "eip"` works from any directory; every Lua module of the repo is in the
-- rockspec; and a build leaves the checkout clean, or `make clean` makes it so.
local emulator = require "spec.support.emulator"
local host = require "spec.support.host"

local q = host.quote

-- The files under dir (a tree installed in dir/tree aside), one relative path a line, sorted.
local function files_under(dir)
  return (host.run("cd " .. q(dir) .. " && find . -path ./tree -prune -o -type f -print | sort"))
end

describe("eip-scm-1.rockspec", function()
  local spec_text

  setup(function()
    local f = assert(io.open("eip-scm-1.rockspec"))
    spec_text = f:read("*a")
    f:close()
  end)

  it("lists every Lua module under lua/", function()
    local out, code = host.run("cd lua && find . -name '*.lua' | sort")
    assert.equal(0, code)
    for path in out:gmatch("[^\n]+") do
      path = path:gsub("^%./", "")
      local mod = path:gsub("/init%.lua$", ""):gsub("%.lua$", ""):gsub("/", ".")
      assert.is_truthy(spec_text:find('["' .. mod .. '"] = "lua/' .. path .. '"', 1, true),
        "module " .. mod .. " (lua/" .. path .. ") is missing from the rockspec")
    end
  end)

  -- As the README's OpenResty section installs it: LuaRocks for 5.1 with LuaJIT's headers. The
  -- core then loads in nginx's LuaJIT and in PUC Lua 5.1 alike (it calls nothing LuaJIT has and
  -- 5.1 lacks), so the `eip` command LuaRocks writes, which runs lua5.1, works too.
  it("also builds for the Lua 5.1 ABI (LuaJIT / OpenResty), a core both 5.1 and LuaJIT load", function()
    local src = host.rock_copy()
    finally(function() os.execute("rm -rf " .. q(src)) end)
    local out, code = host.run("cd " .. q(src) .. " && luarocks --lua-version=5.1 make --deps-mode=none --tree tree"
      .. " eip-scm-1.rockspec LUA_INCDIR=/usr/include/luajit-2.1 2>&1")
    assert.equal(0, code, out)
    local so = io.open(src .. "/tree/lib/lua/5.1/eip/core.so")
    assert.is_not_nil(so, "no lib/lua/5.1/eip/core.so in the tree")
    so:close()
    out, code = host.run("cd /tmp && eval \"$(luarocks --lua-version=5.1 --tree " .. q(src .. "/tree") .. " path)\" && "
      .. q(src .. "/tree/bin/eip") .. " status 204 2>&1")
    assert.equal(0, code, out)
    assert.matches("No Content", out, 1, true)
    local paths = string.format("LUA_PATH=%s LUA_CPATH=%s ", q(src .. "/tree/share/lua/5.1/?.lua;"
      .. src .. "/tree/share/lua/5.1/?/init.lua;;"), q(src .. "/tree/lib/lua/5.1/?.so;;"))
    for _, lua in ipairs{ "lua5.1", "luajit" } do
      out, code = host.run("cd /tmp && " .. paths .. lua .. [[ -e 'io.write(require("eip").status(404).reason)' 2>&1]])
      assert.equal(0, code, lua .. ": " .. out)
      assert.equal("Not Found", out, lua)
    end
  end)

  describe("installed with luarocks make for " .. host.lua, function()
    local src, tree, before, build_log, build_code

    setup(function()
      src = host.rock_copy()
      tree = src .. "/tree"
      before = files_under(src)
      build_log, build_code = host.run("cd " .. q(src) .. " && " .. host.luarocks .. " make --deps-mode=none --tree "
        .. q(tree) .. " eip-scm-1.rockspec 2>&1")
    end)

    teardown(function()
      if src then os.execute("rm -rf " .. q(src)) end
    end)

    it("require \"eip\" then works from anywhere, from the tree", function()
      assert.equal(0, build_code, build_log)
      local emu = emulator.start()
      finally(function() emu:stop() end)
      local id = emu:create_bandwidth{ size = 1 }
      local script = string.format([[
        local eip = require "eip"
        assert(debug.getinfo(eip.new, "S").source:find(%q, 1, true), "not loaded from the tree")
        local c = eip.new{ endpoint = %q, project_id = %q, token = %q }
        io.write(c:delete_bandwidth(%q).status)
      ]], tree, emu.url, emu.project_id, emu.token, id)
      -- A clean environment and another directory: only the tree's paths are visible.
      local out, code = host.run("cd /tmp && eval \"$(" .. host.luarocks .. " --tree " .. q(tree) .. " path)\" && "
        .. "env -u LUA_INIT " .. host.lua .. " -e " .. q(script) .. " 2>&1")
      assert.equal(0, code, out)
      assert.equal("204", out)
    end)

    -- LuaRocks builds in the source directory. What it leaves there, a stale ./eip/core.so above
    -- all, would be found first through the ./?.so of Lua's default path: make clean removes it.
    it("leaves only eip/core.so and src/*.o in the source, and make clean removes them", function()
      assert.equal(0, build_code, build_log)
      local left = files_under(src)
      local added = {}
      for path in left:gmatch("[^\n]+") do
        if not before:find(path .. "\n", 1, true) then added[#added + 1] = path end
      end
      table.sort(added)
      assert.same({ "./eip/core.so", "./src/codes.o", "./src/eip_core.o", "./src/http.o", "./src/interrupt.o",
        "./src/multi.o", "./src/pin.o", "./src/secrets.o", "./src/sign.o", "./src/status.o", "./src/tcpbytes.o" },
        added)
      local out, code = host.run("cd " .. q(src) .. " && make clean 2>&1")
      assert.equal(0, code, out)
      assert.equal(before, files_under(src))
    end)

    -- Last: it removes the rock. The hook's man pages and completions are no rock's files, so
    -- `luarocks remove` leaves them; the README's uninstall removes them too.
    it("is uninstalled by the README's commands, leaving only the tree's manifest", function()
      assert.equal(0, build_code, build_log)
      local f = assert(io.open("README.md"))
      local readme = f:read("*a")
      f:close()
      local block = readme:match("To uninstall:\n\n```sh\n(.-)\n```")
      assert.is_not_nil(block, "README.md: no uninstall commands in Install with LuaRocks")
      local script = block:gsub("luarocks remove %-%-lua%-version=5%.4", host.luarocks .. " remove")
        :gsub("~/%.eip", (q(tree):gsub("%%", "%%%%")))
      local out, code = host.run("set -e; cd /tmp; {\n" .. script .. "\n} 2>&1")
      assert.equal(0, code, out)
      assert.equal("./lib/luarocks/rocks-" .. host.version .. "/manifest\n",
        (host.run("cd " .. q(tree) .. " && find . -type f | sort")))
    end)
  end)
end)
