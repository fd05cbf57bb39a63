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

-- The kinds of @{error} (its `kind` field): what a @raise names, in backquotes, unless it says
-- "never" or that a Lua error (a caller's bug, a metamethod's) goes through.
local ERROR_KINDS = { "usage", "http", "transport", "proxy", "refused", "not_sent", "interrupted", "wait_timeout",
  "credentials" }

-- Does a @raise say what is raised: "never", a Lua error, or an @{error} of a named kind?
local function says_what(raise)
  if raise:match("^%s*never") or raise:find("Lua error", 1, true) then return true end
  for _, kind in ipairs(ERROR_KINDS) do
    if raise:find("`" .. kind .. "`", 1, true) then return true end
  end
  return false
end

-- Functions whose @raise says "never" are called with these (the cli's main aside: it claims the
-- standard descriptors and catches signals): anything, a table whose every metamethod raises
-- included, must not make them raise.
local NEVER_SKIPPED = { ["eip.cli main"] = true }
local function odd_values()
  local function boom() error("a metamethod raised", 0) end
  local hostile = setmetatable({}, { __index = boom, __newindex = boom, __pairs = boom, __ipairs = boom,
    __len = boom, __tostring = boom, __eq = boom, __lt = boom, __le = boom, __concat = boom, __call = boom })
  return { false, true, 0, -1, 0 / 0, math.huge, "", "x", {}, { "x" }, hostile, boom }, 13 -- (1: nil)
end

-- Each method's options table: every key must be documented as `<param>.<key>`.
local OPTION_TABLES = {
  { "eip", "new", "opts", require("eip.client").OPTIONS },
  { "eip.client", "Client:delete_bandwidth", "call_opts", require("eip.client").CALL_OPTIONS },
  { "eip.client", "Client:delete_bandwidths", "opts", require("eip.batch").OPTIONS },
  { "eip.client", "Client:list_bandwidths", "opts", require("eip.bandwidths").LIST_OPTIONS },
  { "eip.client", "Client:remove_eips_from_bandwidth", "opts", require("eip.bandwidths").REMOVE_OPTIONS },
  { "eip.client", "Client:plan_drain", "opts", require("eip.bandwidths").PLAN_OPTIONS },
  { "eip.client", "Client:drain_and_delete_bandwidth", "opts", require("eip.bandwidths").DRAIN_OPTIONS },
  { "eip.client", "Client:show_bandwidth", "opts", require("eip.client").SHOW_OPTIONS },
  { "eip.client", "Client:create_bandwidth", "opts", require("eip.client").CREATE_OPTIONS },
  { "eip", "sign", "opts", require("eip.sign").OPTIONS },
  { "eip", "metrics", "opts", { dict = true } }, -- (eip.metrics checks its one option by hand)
}

-- The rows of the README table that follows `heading`: { names = {...}, cells = {...} } each,
-- `names` the backquoted names of its first column.
local function readme_rows(readme, heading)
  local from = assert(readme:find(heading, 1, true), heading)
  local rows, started = {}, false
  for line in readme:sub(from):gmatch("([^\n]*)\n") do
    if line:find("^|") then
      started = true
      local cells = {}
      for cell in line:gmatch("|([^|]*)") do cells[#cells + 1] = cell:match("^%s*(.-)%s*$") end
      local names = {}
      for name in (cells[1] or ""):gmatch("`([%w_]+)`") do names[#names + 1] = name end
      rows[#rows + 1] = { names = names, cells = cells }
    elseif started then
      break
    end
  end
  return rows
end

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
          assert.is_true(says_what(item.raise), label .. ": its @raise says neither \"never\", a Lua error nor "
            .. "the kind of @{error} (`usage`, `http`, ...): " .. item.raise)
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

  it("raises nothing from a function whose @raise says never, whatever it is given", function()
    local modules = { eip = eip, ["eip.transport"] = require "eip.transport", ["eip.cli"] = require "eip.cli" }
    local values, n = odd_values()
    local checked = 0
    for _, name in ipairs(PUBLIC) do
      for _, item in ipairs(by_module[name].list) do
        local fn = modules[name] and modules[name][item.name]
        local label = name .. " " .. item.name
        if type(fn) == "function" and item.raise and item.raise:match("^%s*never") and not NEVER_SKIPPED[label] then
          checked = checked + 1
          for i = 1, n do
            for j = 1, n do
              local ok, err = pcall(fn, values[i], values[j], values[j], values[i])
              assert.is_true(ok, label .. " raised (arguments " .. i .. ", " .. j .. "): " .. tostring(err))
            end
          end
        end
      end
    end
    assert.is_true(checked >= 10, "only " .. checked .. " functions checked")
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

  it("names every parameter as the code does, in its order", function()
    -- The client's methods are wrapped (eip.client counts the calls): their names are read from
    -- the source; the others from the functions themselves (debug.getlocal: Lua 5.1 cannot
    -- read a function's parameters, only the methods are checked there).
    local source = assert(read_file("lua/eip/client.lua"))
    local modules = { eip = eip, ["eip.transport"] = require "eip.transport", ["eip.cli"] = require "eip.cli" }
    local getlocal = debug.getlocal
    local can_read = pcall(getlocal, function() end, 1)
    local checked = 0
    for _, name in ipairs(PUBLIC) do
      for _, item in ipairs(by_module[name].list) do
        local fn = modules[name] and modules[name][item.name]
        local method = name == "eip.client" and item.name:match("^Client:([%w_]+)$")
        if item.type == "function" and ((can_read and type(fn) == "function") or method) then
          local documented, code = {}, {}
          for _, p in ipairs(item.params) do
            if not p.name:find(".", 1, true) then documented[#documented + 1] = p.name end
          end
          if method then
            local list = assert(source:match("\nfunction Client:" .. method .. "%(([^)]*)%)"), item.name)
            for p in list:gmatch("[^,%s]+") do code[#code + 1] = p end
          else
            local i = 1
            while true do
              local p = getlocal(fn, i)
              if p == nil then break end
              code[#code + 1], i = p, i + 1
            end
          end
          assert.same(code, documented, name .. " " .. item.name)
          checked = checked + 1
        end
      end
    end
    assert.is_true(checked >= (can_read and 30 or 10), "only " .. checked .. " functions checked")
  end)

  it("documents no option that the function refuses", function()
    for _, t in ipairs(OPTION_TABLES) do
      local module, fn, param, options = t[1], t[2], t[3], t[4]
      for _, p in ipairs(by_module[module].items[fn].params) do
        local key = p.name:match("^" .. param .. "%.([%w_]+)$")
        assert.is_true(key == nil or options[key] == true, module .. " " .. fn .. ": " .. p.name
          .. " is documented but not accepted")
      end
    end
  end)

  it("has the README's table of eip.new's options: every option, none other, the same defaults", function()
    local readme = assert(read_file("README.md"))
    local rows, in_readme = readme_rows(readme, "### Options of `eip.new`"), {}
    for _, row in ipairs(rows) do
      -- (a row of several options gives their defaults in the same order: "100, 10")
      local defaults = {}
      for d in (row.cells[2] or ""):gmatch("[^,]+") do defaults[#defaults + 1] = d:match("^%s*(.-)%s*$") end
      for i, name in ipairs(row.names) do
        in_readme[name] = #defaults == #row.names and defaults[i] or row.cells[2]
      end
    end
    local options = require("eip.client").OPTIONS
    for key in pairs(options) do assert.truthy(in_readme[key], "option " .. key .. " is not in the README's table") end
    for key in pairs(in_readme) do
      assert.truthy(options[key], "the README's table has " .. key .. ", not an option")
    end
    for _, p in ipairs(by_module.eip.items.new.params) do
      local key = p.name:match("^opts%.([%w_]+)$")
      if key and type(p.opt) == "string" then
        assert.equal(p.opt, in_readme[key], "eip.new's default of " .. key .. ": LDoc and README differ")
      end
    end
  end)

  it("documents the defaults the code has", function()
    local function default(module, fn, name)
      for _, p in ipairs(by_module[module].items[fn].params) do
        if p.name == name then return (assert(p.opt, module .. " " .. fn .. ": " .. name .. " is not optional")) end
      end
      error(module .. " " .. fn .. ": no " .. name)
    end
    -- What a client made with no option sends: a transport of ours sees the request.
    local seen = {}
    local transport = { close = function() end, send = function(_, req)
      seen[#seen + 1] = { timeout = req.timeout, connect_timeout = req.connect_timeout,
        low_speed_limit = req.low_speed_limit, low_speed_time = req.low_speed_time, body_cap = req.body_cap }
      return { status = 503, body = "", elapsed = 0 }
    end }
    local client = eip.new{ endpoint = "http://127.0.0.1:9", project_id = "p", token = "t", transport = transport,
      sleep = function() end }
    local ok, err = pcall(client.delete_bandwidth, client, "3fa1e2b4-1111-2222-3333-444455556666")
    client:close()
    assert.is_false(ok)
    local req = seen[1]
    assert.equal(tonumber(default("eip", "new", "opts.max_attempts")), err.attempts)
    assert.equal(tonumber(default("eip", "new", "opts.timeout")), req.timeout)
    assert.equal(10, req.connect_timeout) -- "min(10, timeout)"
    assert.equal(tonumber(default("eip", "new", "opts.low_speed_limit")), req.low_speed_limit)
    assert.equal(tonumber(default("eip", "new", "opts.low_speed_time")), req.low_speed_time)
    assert.equal(tonumber(default("eip", "new", "opts.max_body")), req.body_cap)
    local retry = require("eip.retry").DEFAULTS
    for _, key in ipairs{ "backoff_base", "backoff_cap", "retry_after_cap" } do
      assert.equal(tonumber(default("eip", "new", "opts." .. key)), retry[key], key)
    end
    assert.equal(tonumber(default("eip.client", "Client:delete_bandwidths", "opts.concurrency")),
      require("eip.batch").DEFAULT_CONCURRENCY)
    assert.equal(tonumber(default("eip.client", "Client:list_bandwidths", "opts.limit")),
      require("eip.bandwidths").DEFAULT_PAGE)
  end)

  it("has the README's table of error fields: every documented field, none other", function()
    local readme = assert(read_file("README.md"))
    local in_readme, documented = {}, {}
    for _, row in ipairs(readme_rows(readme, "## Errors")) do
      for _, name in ipairs(row.names) do in_readme[name] = true end
    end
    for _, f in ipairs(by_module.eip.items.error.params) do documented[f.name] = true end
    for name in pairs(documented) do
      assert.truthy(in_readme[name], "error field " .. name .. " is not in the README")
    end
    for name in pairs(in_readme) do
      assert.truthy(documented[name], "the README's error table has " .. name .. ", not in the @table error")
    end
  end)

  it("documents every field a built-in transport sets on a response", function()
    local fields = {}
    for _, f in ipairs(by_module["eip.transport"].items.response.params) do fields[f.name] = true end
    for _, file in ipairs{ "lua/eip/transport/cosocket.lua", "lua/eip/transport/http1.lua" } do
      for field in assert(read_file(file)):gmatch("resp%.([%a_][%w_]*)%s*=[^=]") do
        assert.truthy(fields[field], file .. " sets response." .. field .. ", not documented in eip.transport")
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
