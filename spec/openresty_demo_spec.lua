-- OpenResty, first try: examples/openresty/nginx.conf run as its comments say (make
-- openresty-demo, scripts/openresty-demo) deletes a bandwidth of the emulator through its admin
-- endpoint with curl, from this checkout and from the rock installed as the README and the
-- example's comments say; the two agree on that command and on where the modules go.
local host = require "spec.support.host"
local read_file = require("spec.support.nginx").read_file

local q = host.quote

local INSTALL = "luarocks --lua-version=5.1 make --deps-mode=none eip-scm-1.rockspec LUA_INCDIR=/usr/include/luajit-2.1"

-- Runs the demo (env: extra variables) and checks what it shows; returns its output.
local function demo(env)
  local out, code = host.run(env .. " LUA=" .. host.lua .. " bash scripts/openresty-demo 2>&1")
  assert.equal(0, code, out)
  local id = out:match("created ([%x-]+)")
  assert.is_string(id, out)
  local answers = {}
  for body, status in out:gmatch("\n(%b{})\nHTTP (%d+)\n") do answers[#answers + 1] = { body, tonumber(status) } end
  assert.equal(2, #answers, out)
  assert.equal(200, answers[1][2])
  assert.matches('"status":204', answers[1][1])
  assert.matches('"bandwidth_id":"' .. id:gsub("%p", "%%%0") .. '"', answers[1][1])
  assert.equal(404, answers[2][2])
  assert.matches('"code":"VPC.0306"', answers[2][1])
  -- Both nginx instances are gone: no process runs from the demo's directory (the example's
  -- nginx with -p <dir>/app/, the emulator's under <dir>/emulator). Not "neither port answers":
  -- a port given back is soon another's, under a loaded matrix (a spec of another leg).
  local dir = out:match(" %-p (%S+)/app/ ")
  assert.is_string(dir, out)
  local left = host.run("pgrep -af -- " .. q(dir) .. " | grep -v pgrep")
  assert.equal("", left, "processes of the demo still run")
  return out
end

describe("make openresty-demo (scripts/openresty-demo) #openresty", function()
  it("deletes a bandwidth through the example's admin endpoint, modules from the checkout", function()
    local out = demo("")
    assert.matches("modules from this checkout", out)
  end)

  -- A shell set up for Lua 5.4 as the README's install says (luarocks path): nginx started as the
  -- example says does not take 5.4's modules (cjson.so) through the ";;" of its paths.
  it("deletes a bandwidth through the example from a shell set up by luarocks --lua-version=5.4 path", function()
    local paths = host.run("luarocks --lua-version=5.4 path 2>/dev/null")
    local lpath, cpath = paths:match("LUA_PATH='([^']*)'"), paths:match("LUA_CPATH='([^']*)'")
    assert.is_string(cpath, paths)
    assert.truthy(cpath:find("5.4", 1, true), cpath)
    demo("LUA_PATH=" .. q(lpath) .. " LUA_CPATH=" .. q(cpath))
    local example = assert(read_file("examples/openresty/nginx.conf"))
    assert.truthy(example:find("env -u LUA_PATH -u LUA_CPATH", 1, true))
  end)

  it("the example and the README give the same install command and module paths", function()
    local example = assert(read_file("examples/openresty/nginx.conf"))
    local readme = assert(read_file("README.md"))
    for _, text in ipairs{ example, readme } do
      assert.truthy(text:find(INSTALL, 1, true))
      assert.truthy(text:find("/usr/local/share/lua/5.1", 1, true))
      assert.truthy(text:find("/usr/local/lib/lua/5.1", 1, true))
      assert.is_nil(text:find("install lua-eip", 1, true), "the rock is named eip")
    end
    local path = '"/usr/local/share/lua/5.1/?.lua;/usr/local/share/lua/5.1/?/init.lua;;"'
    assert.truthy(example:find("lua_package_path " .. path .. ";", 1, true))
    assert.truthy(example:find('lua_package_cpath "/usr/local/lib/lua/5.1/?.so;;";', 1, true))
  end)

  it("deletes a bandwidth through the example with the rock installed as they say (--tree)", function()
    local src = host.rock_copy()
    finally(function() os.execute("rm -rf " .. q(src)) end)
    local tree = src .. "/tree"
    local log, code = host.run("cd " .. q(src) .. " && " .. INSTALL:gsub(" make ", " make --tree " .. q(tree) .. " ", 1)
      .. " 2>&1")
    assert.equal(0, code, log)
    local out = demo("TREE=" .. q(tree))
    assert.matches("modules from the rock installed in", out)
  end)
end)
