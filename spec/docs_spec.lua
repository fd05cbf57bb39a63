-- The reference (make docs, config.ld) answers questions: LDoc builds it without a warning,
-- the README renders as HTML, only the public modules are in it, and every public function and
-- option -- whatever eip, a client, eip.transport and eip.cli export at run time, and every
-- option their option tables accept -- is documented with typed parameters, typed returns and
-- the errors it raises. A function added without them fails here.
local eip = require "eip"
local host = require "spec.support.host"
local read_file = require("spec.support.nginx").read_file

local q = host.quote

-- LDoc runs in its own Lua (5.1 or 5.2); our filter module is found from the checkout.
local LDOC = "env -u LUA_PATH_5_2 -u LUA_PATH_5_3 -u LUA_PATH_5_4 LUA_PATH='./?.lua;;' ldoc -c config.ld"

local PUBLIC = { "eip", "eip.cli", "eip.client", "eip.transport" }

-- Functions that return nothing (LDoc has no tag for "returns nothing"; they say so).
local RETURN_NOTHING = { ["eip.client Client:close"] = true, ["eip.transport close"] = true,
  ["eip.transport sleep"] = true }

-- Each method's options table: every key must be documented as `<param>.<key>`.
local OPTION_TABLES = {
  { "eip", "new", "opts", require("eip.client").OPTIONS },
  { "eip.client", "Client:delete_bandwidth", "call_opts", require("eip.client").CALL_OPTIONS },
  { "eip.client", "Client:delete_bandwidths", "opts", require("eip.batch").OPTIONS },
  { "eip.client", "Client:list_bandwidths", "opts", require("eip.bandwidths").LIST_OPTIONS },
  { "eip.client", "Client:remove_eips_from_bandwidth", "opts", require("eip.bandwidths").REMOVE_OPTIONS },
  { "eip.client", "Client:plan_drain", "opts", require("eip.bandwidths").PLAN_OPTIONS },
  { "eip.client", "Client:drain_and_delete_bandwidth", "opts", require("eip.bandwidths").DRAIN_OPTIONS },
}

describe("the reference (make docs)", function()
  local facts, by_module

  setup(function()
    assert(host.execute("command -v ldoc >/dev/null"), "ldoc is missing: make deps-docs (lua-ldoc lua-discount)")
    local out, code = host.run(LDOC .. " --filter spec.support.ldoc_facts.write . 2>&1")
    assert.equal(0, code, out)
    local chunk = assert((rawget(_G, "loadstring") or load)(out), out:sub(1, 2000))
    facts = chunk()
    by_module = {}
    for _, m in ipairs(facts) do
      local items = {}
      for _, item in ipairs(m.items) do items[item.name] = item end
      by_module[m.name] = { kind = m.kind, items = items, list = m.items }
    end
  end)

  it("builds without a warning, the README rendered as HTML", function()
    local dir = os.tmpname()
    os.remove(dir)
    finally(function() os.execute("rm -rf " .. q(dir)) end)
    local out, code = host.run(LDOC .. " --fatalwarnings -d " .. q(dir) .. " . 2>&1")
    assert.equal(0, code, out)
    assert.is_nil(out:match("[^\n]*:%d+: [^\n]*"), out)
    assert.is_nil(out:find("not found, falling back", 1, true), out)
    local readme = assert(read_file(dir .. "/topics/README.md.html"))
    assert.truthy(readme:find("<h2>Install with LuaRocks</h2>", 1, true), "headings are not rendered")
    assert.truthy(readme:find("<table>", 1, true), "tables are not rendered")
    assert.is_nil(readme:find("|---|", 1, true), "a table left as Markdown")
    assert.is_nil(readme:find("```", 1, true), "a fence left as Markdown")
    for _, name in ipairs(PUBLIC) do
      local page = name == "eip.client" and "/classes/eip.client.html" or "/modules/" .. name .. ".html"
      assert.truthy(read_file(dir .. page), "no page for " .. name)
    end
  end)

  it("has the public modules and no other", function()
    local names = {}
    for _, m in ipairs(facts) do
      if m.kind ~= "topics" then names[#names + 1] = m.name end
    end
    table.sort(names)
    assert.same(PUBLIC, names)
  end)

  it("shows no internal (_-prefixed) names", function()
    for _, m in ipairs(facts) do
      for _, item in ipairs(m.items) do
        local bare = item.name:match("[^.:]+$")
        assert.is_true(bare == "_VERSION" or bare:sub(1, 1) ~= "_", m.name .. ": " .. item.name)
      end
    end
  end)

  it("documents every function with typed parameters, typed returns and what it raises", function()
    local checked = 0
    for _, name in ipairs(PUBLIC) do
      for _, item in ipairs(by_module[name].list) do
        local label = name .. " " .. item.name
        assert.truthy(item.summary, label .. ": no summary")
        if item.type == "function" then
          checked = checked + 1
          for _, p in ipairs(item.params) do
            assert.truthy(p.type, label .. ": parameter " .. p.name .. " has no type (@tparam)")
          end
          if not RETURN_NOTHING[label] then
            assert.is_true(#item.returns > 0, label .. ": no @treturn")
          end
          for _, r in ipairs(item.returns) do
            assert.truthy(r.type, label .. ": a return without a type (@treturn)")
          end
          assert.truthy(item.raise, label .. ": no @raise")
        elseif item.type == "table" then
          -- A table declared with @tfield (error, request, response) types every field; the
          -- fields LDoc reads off a constant's constructor (LIMITS, KINDS) have none.
          local typed = false
          for _, f in ipairs(item.params) do typed = typed or f.type ~= nil end
          for _, f in ipairs(typed and item.params or {}) do
            assert.truthy(f.type, label .. ": field " .. f.name .. " has no type (@tfield)")
          end
        end
      end
    end
    assert.is_true(checked >= 20, "only " .. checked .. " functions found")
  end)

  it("documents everything eip exports (new exports need their docs)", function()
    local items = by_module.eip.items
    for k, v in pairs(eip) do
      local item = items[k]
      assert.truthy(item, "eip." .. k .. " is exported but not documented")
      if type(v) == "function" then assert.equal("function", item.type, "eip." .. k) end
    end
    assert.truthy(items.error, "the error table is documented")
  end)

  it("documents every method of a client", function()
    local client = eip.new{ endpoint = "http://127.0.0.1:9", project_id = "p", token = "t" }
    local items = by_module["eip.client"].items
    local n = 0
    for k, v in pairs(getmetatable(client).__index) do
      if type(v) == "function" and k:sub(1, 1) ~= "_" then
        n = n + 1
        assert.truthy(items["Client:" .. k], "client:" .. k .. " is not documented")
      end
    end
    client:close()
    assert.is_true(n >= 8)
  end)

  it("documents every option of every public function", function()
    for _, t in ipairs(OPTION_TABLES) do
      local module, fn, param, options = t[1], t[2], t[3], t[4]
      local documented = {}
      for _, p in ipairs(by_module[module].items[fn].params) do documented[p.name] = p.type end
      for key in pairs(options) do
        assert.truthy(documented[param .. "." .. key], module .. " " .. fn .. ": option " .. key .. " not documented")
      end
    end
  end)

  it("documents the transport contract: request, response, send, close, and every export", function()
    local items = by_module["eip.transport"].items
    for _, name in ipairs{ "request", "response", "send", "close" } do
      assert.truthy(items[name], name)
    end
    for k in pairs(require "eip.transport") do
      assert.truthy(items[k], "eip.transport." .. k .. " is exported but not documented")
    end
    assert.truthy(by_module["eip.cli"].items.main)
  end)

  -- (LDoc drops, silently, a doc comment whose summary holds a backquoted "--": checked here.)
  it("documents everything the command line's module exports", function()
    local items = by_module["eip.cli"].items
    for k in pairs(require "eip.cli") do
      assert.truthy(items[k], "eip.cli." .. k .. " is exported but not documented")
    end
  end)
end)
