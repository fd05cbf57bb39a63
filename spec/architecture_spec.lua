-- The README's Architecture section stays true: the library's require graph is the one it
-- shows, the command line uses the public API only, the emulator is apart from the library, no
-- module calls another module's `_`-prefixed functions, and only eip.client defines client
-- methods.
local read_file = require("spec.support.nginx").read_file

local function is_cli(name)
  return name == "eip.cli" or name:find("^eip%.cli%.") ~= nil
end

-- The EIP emulator (lua/eip/emulator/, shipped with the rock for eip-emulator): not the library.
local function is_emulator(name)
  return name == "eip.emulator" or name:find("^eip%.emulator%.") ~= nil
end

local function modules()
  local out = {}
  local p = assert(io.popen("find lua -name '*.lua' | sort"))
  for path in p:lines() do
    local name = path:gsub("^lua/", ""):gsub("/init%.lua$", ""):gsub("%.lua$", ""):gsub("/", ".")
    -- Comments out: they may mention require calls.
    out[#out + 1] = { name = name, path = path, code = assert(read_file(path)):gsub("%-%-[^\n]*", "") }
  end
  p:close()
  return out
end

-- The eip modules a module's code requires by a literal name (other than itself), sorted.
local function requires(m)
  local deps, seen = {}, {}
  for dep in m.code:gmatch('require%s*%(?%s*"([%w%._]+)"') do
    if dep:find("^eip") and dep:sub(-1) ~= "." and dep ~= m.name and not seen[dep] then
      seen[dep] = true
      deps[#deps + 1] = dep
    end
  end
  table.sort(deps)
  return table.concat(deps, " ")
end

-- The graph the README shows: module -> sorted deps, parenthesised notes left out.
local function readme_graph()
  local readme = assert(read_file("README.md"))
  local block = readme:match("The require graph of the library[^\n]*\n\n```\n(.-)```")
  assert(block, "README.md has no require graph block")
  local graph = {}
  for line in block:gmatch("[^\n]+") do
    local name, deps = line:match("^(%S+)%s+%->%s*(.-)%s*$")
    assert(name, "unreadable graph line: " .. line)
    local list = {}
    for dep in deps:gsub("%b()", ""):gmatch("%S+") do list[#list + 1] = dep end
    table.sort(list)
    graph[name] = table.concat(list, " ")
  end
  return graph
end

describe("the architecture", function()
  local all = modules()

  it("is the README's require graph, module for module", function()
    local graph = readme_graph()
    local library = 0
    for _, m in ipairs(all) do
      if not is_cli(m.name) and not is_emulator(m.name) then
        library = library + 1
        assert.is_not_nil(graph[m.name], m.name .. " is missing from the README's graph")
        assert.equal(graph[m.name], requires(m), "requires of " .. m.name)
        graph[m.name] = nil
      end
    end
    assert.is_nil(next(graph), "the README's graph names a module that does not exist")
    assert.is_true(library >= 15)
  end)

  it("lets the command line use only the public API", function()
    local allowed = { eip = true, ["eip.core"] = true, ["eip.validate"] = true }
    for _, m in ipairs(all) do
      if is_cli(m.name) then
        for dep in requires(m):gmatch("%S+") do
          assert.is_true(allowed[dep] or dep:find("^eip%.cli%.") ~= nil, m.name .. " requires " .. dep)
        end
      end
    end
  end)

  it("keeps the emulator apart: the library never requires it; it uses only itself and the CLI's parser", function()
    local emulator = 0
    for _, m in ipairs(all) do
      for dep in requires(m):gmatch("%S+") do
        if is_emulator(m.name) then
          assert.is_true(is_emulator(dep) or dep == "eip.cli.args", m.name .. " requires " .. dep)
        else
          assert.is_false(is_emulator(dep), m.name .. " requires " .. dep)
        end
      end
      if is_emulator(m.name) then emulator = emulator + 1 end
    end
    assert.is_true(emulator >= 10)
    -- Inside nginx, the server modules have only each other (and nginx's own).
    for _, m in ipairs(all) do
      if m.name:find("^eip%.emulator%.server%.") then
        for dep in requires(m):gmatch("%S+") do
          assert.matches("^eip%.emulator%.server%.", dep, nil, false, m.name .. " requires " .. dep)
        end
      end
    end
  end)

  it("has no call of a _-prefixed function through another table", function()
    for _, m in ipairs(all) do
      local call = m.code:match("[%w_%]%)]+[:%.]_%l[%w_]*%s*%(")
      assert.is_nil(call, m.path .. ": " .. tostring(call))
    end
  end)

  -- stderr is unbuffered: each argument of one write is a write(2) of its own, and the lines of
  -- a pipe's reader sharing the terminal (`eip ... | tee log`) landed between them, in the middle
  -- of the summary line. A line to stderr is one argument.
  it("writes to stderr one argument at a time: one line, one write(2)", function()
    -- (the files as written, with their strings blanked as error_fields_doc_spec does: a comma
    -- or a bracket in a string is no argument's; stripping comments would cut strings holding "--")
    local sources = {}
    for _, path in ipairs{ "bin/eip", "bin/eip-emulator", "scripts/live-check.lua", "scripts/cli-docs.lua" } do
      sources[#sources + 1] = { path = path, code = assert(read_file(path)) }
    end
    for _, m in ipairs(all) do sources[#sources + 1] = { path = m.path, code = assert(read_file(m.path)) } end
    local checked = 0
    for _, m in ipairs(sources) do
      local code = m.code:gsub("\\.", ""):gsub('"[^"\n]*"', '""'):gsub("'[^'\n]*'", "''")
      for args in code:gmatch("err:write%s*(%b())") do -- (stderr, or a script's local err = io.stderr)
        checked = checked + 1
        local top = args:sub(2, -2):gsub("%b()", ""):gsub("%b{}", ""):gsub("%b[]", "")
        assert.is_nil(top:find(",", 1, true), m.path .. ": stderr:write with more than one argument: " .. args)
      end
    end
    assert.is_true(checked > 20, "stderr writes found: " .. checked)
  end)

  it("adds client methods in eip.client only", function()
    for _, m in ipairs(all) do
      if m.name ~= "eip.client" then
        local assignment = m.code:match("Client%.[%w_]+%s*=[^=]")
        assert.is_nil(assignment, m.path .. ": " .. tostring(assignment))
      end
    end
  end)
end)
