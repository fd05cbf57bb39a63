-- The reference says what the code does: every field the library sets on an error is documented
-- in init.lua's `@table error` (read from the source, so a field added without its line fails
-- here), with every kind; eip.sign's canonical request is described as it is (it holds the
-- headers' values, an X-Security-Token included); the client's class and method docs name what
-- the code returns and raises (metadata auth, the proxy kind, the project lookup's usage error,
-- the batch summary's fields).
local eip = require "eip"
local read_file = require("spec.support.nginx").read_file

-- The `@table error` comment block of init.lua.
local function error_table_doc()
  local text = read_file("lua/eip/init.lua")
  local from = assert(text:find("-- @table error", 1, true), "init.lua has no @table error")
  local block = {}
  for line in text:sub(from):gmatch("([^\n]*)\n") do
    if not line:find("^%-%-") then break end
    block[#block + 1] = line
  end
  return table.concat(block, "\n")
end

local function documented_fields()
  local fields = {}
  for name in error_table_doc():gmatch("@tfield%s+%S+%s+([%a_][%w_]*)") do fields[name] = true end
  return fields
end

-- The keys of every `new{ ... }` table of errors.lua (the constructors of all errors).
local function constructor_fields()
  local text = read_file("lua/eip/errors.lua"):gsub('"[^"\n]*"', '""')
  local fields = {}
  local at = 1
  while true do
    local s = text:find("new{", at, true)
    if not s then break end
    local depth, i = 0, s + 3
    repeat
      local c = text:sub(i, i)
      if c == "{" then depth = depth + 1 elseif c == "}" then depth = depth - 1 end
      i = i + 1
    until depth == 0 or i > #text
    local body = text:sub(s + 4, i - 2):gsub("%b{}", "{}")
    for key in body:gmatch("([%a_][%w_]*)%s*=[^=]") do fields[key] = true end
    at = i
  end
  return fields
end

-- The fields assigned to an error after it is made (`err.stage, err.moved = ...`), in the
-- modules that add to errors.
local ADDERS = {
  { "lua/eip/bandwidths.lua", { err = true, stop = true } },
  { "lua/eip/batch.lua", { err = true, value = true } },
  { "lua/eip/pipeline.lua", { err = true } },
  { "lua/eip/ops.lua", { err = true, e = true } },
  { "lua/eip/auth.lua", { err = true, e = true } },
  { "lua/eip/client.lua", { value = true } },
}

local function assigned_fields()
  local fields = {}
  for _, adder in ipairs(ADDERS) do
    for line in (read_file(adder[1]) .. "\n"):gmatch("([^\n]*)\n") do
      line = line:gsub("^.*%sthen%s", "")
      local lhs = line:match("^%s*([%w_%.%s,]-)%s*=[^=]")
      if lhs then
        for item in lhs:gmatch("[^,]+") do
          local var, field = item:match("^%s*([%a_][%w_]*)%.([%a_][%w_]*)%s*$")
          if var and adder[2][var] then fields[field] = adder[1] end
        end
      end
    end
  end
  return fields
end

describe("the reference of eip errors (init.lua @table error)", function()
  it("documents every field the library sets on an error", function()
    local doc = documented_fields()
    local missing = {}
    for field in pairs(constructor_fields()) do
      if not doc[field] then missing[#missing + 1] = field .. " (errors.lua)" end
    end
    for field, file in pairs(assigned_fields()) do
      if not doc[field] then missing[#missing + 1] = field .. " (" .. file .. ")" end
    end
    table.sort(missing)
    assert.same({}, missing)
  end)

  it("finds the fields it checks (the scan is not blind)", function()
    local made, added = constructor_fields(), assigned_fields()
    for _, f in ipairs{ "proxy", "proxy_status", "code_kind", "description_zh", "raw_message", "deleted",
        "waited", "stopped", "cause", "earlier_unanswered" } do
      assert.is_true(made[f], f)
    end
    for _, f in ipairs{ "lost_answer", "stage", "not_moved", "uncertain", "batch", "result", "ok" } do
      assert.is_truthy(added[f], f)
    end
    -- refused's extra fields are set through a table of their own.
    assert.is_truthy(read_file("lua/eip/bandwidths.lua"):find("extra = { order_id = order }", 1, true))
    assert.is_truthy(read_file("lua/eip/bandwidths.lua"):find("extra = { bandwidth_status = bw.status }", 1, true))
    local doc = documented_fields()
    assert.is_true(doc.order_id and doc.bandwidth_status, "order_id and bandwidth_status")
  end)

  it("lists every kind, proxy included", function()
    local kinds = error_table_doc():match("@tfield string kind(.-)@tfield")
    for _, kind in ipairs{ "usage", "http", "transport", "proxy", "refused", "not_sent", "interrupted",
        "wait_timeout" } do
      assert.is_truthy(kinds:find('"' .. kind .. '"', 1, true), kind)
    end
  end)
end)

-- The values a field takes, named where its doc lists them: each stop reason of a batch (the keys of
-- errors.lua's STOP_REASONS) in init.lua's `stopped`, the batch summary of client.lua and of the
-- README; each reason of a `refused` error in init.lua's `reason` and the README's error table.
describe("the documented values of stopped and a refusal's reason", function()
  local function stop_reasons()
    local block = assert(read_file("lua/eip/errors.lua"):match("\nlocal STOP_REASONS = (%b{})"))
    local names = {}
    for name in block:gmatch("\n%s*([%a_]+) = ") do names[#names + 1] = name end
    return names
  end

  -- The reasons a `refused` error is made with.
  local function refusal_reasons()
    local names = {}
    for _, file in ipairs{ "lua/eip/errors.lua", "lua/eip/auth.lua", "lua/eip/bandwidths.lua" } do
      local text = read_file(file)
      for name in text:gmatch('kind = "refused", reason = "([%a_]+)"') do names[name] = true end
      for name in text:gmatch('errors%.refused%("([%a_]+)"') do names[name] = true end
      for name in text:gmatch('\n%s*reason = "([%a_]+)"') do names[name] = true end
    end
    return names
  end

  local function tfield(name)
    return assert(error_table_doc():match("@tfield %S+ " .. name .. " (.-)\n%-%- @tfield"), name)
  end

  local function readme_row(first)
    for line in read_file("README.md"):gmatch("[^\n]+") do
      if line:find("^| " .. first:gsub("%p", "%%%0")) then return line end
    end
    error("no README row " .. first)
  end

  it("names every stop reason of a batch", function()
    local names = stop_reasons()
    assert.is_true(#names >= 7, "the scan found " .. #names)
    local client_doc = read_file("lua/eip/client.lua"):match("@treturn table summary(.-)@raise")
    local readme = read_file("README.md"):match("stopped = nil |(.-)still_readable")
    for _, name in ipairs(names) do
      local quoted = '"' .. name .. '"'
      assert.is_truthy(tfield("stopped"):find(quoted, 1, true), "init.lua's stopped: " .. name)
      assert.is_truthy(client_doc:find(quoted, 1, true), "client.lua's summary: " .. name)
      assert.is_truthy(readme:find(quoted, 1, true), "the README's summary: " .. name)
    end
  end)

  it("names every reason of a refusal", function()
    local names = refusal_reasons()
    for _, name in ipairs{ "dedicated", "prepaid", "frozen", "not_confirmed", "changed", "unanswered" } do
      assert.is_true(names[name], "the scan found no " .. name)
    end
    local row = readme_row("`reason`, `order_id`, `bandwidth_status`")
    for name in pairs(names) do
      assert.is_truthy(tfield("reason"):find('"' .. name .. '"', 1, true), "init.lua's reason: " .. name)
      assert.is_truthy(row:find("`" .. name .. "`", 1, true), "the README's refused row: " .. name)
    end
  end)

  -- The transports report Date beside a Retry-After only (what it is read for).
  it("says when an error has a date, as the README does", function()
    assert.is_truthy(tfield("date"):find("Retry-After", 1, true))
    assert.is_truthy(readme_row("`date`"):find("beside a `Retry-After`", 1, true))
  end)
end)

describe("eip.sign's documented canonical request", function()
  it("says that it holds the headers' values, a security token included, as it does", function()
    local _, canonical = eip.sign{ method = "DELETE", url = "https://vpc.example/v2.0/p/bandwidths/b",
      headers = { ["X-Sdk-Date"] = "20240101T000000Z", ["X-Security-Token"] = "SECURITY-TOKEN-VALUE-1234" },
      ak = "AKEXAMPLE0000001", sk = "SK-EXAMPLE-SECRET-0001" }
    assert.is_truthy(canonical:find("x-security-token:SECURITY-TOKEN-VALUE-1234", 1, true))
    assert.is_falsy(canonical:find("SK-EXAMPLE-SECRET-0001", 1, true))
    for _, file in ipairs{ "lua/eip/init.lua", "lua/eip/sign.lua" } do
      local text = read_file(file)
      assert.is_falsy(text:find("holds no secret", 1, true), file)
      assert.is_truthy(text:find("X-Security-Token", 1, true), file)
    end
  end)
end)

describe("the client's reference (client.lua)", function()
  local text = read_file("lua/eip/client.lua")

  -- The comment block before `function Client:<name>`.
  local function doc_of(name)
    local at = assert(text:find("\nfunction Client:" .. name .. "%("), name)
    local before = text:sub(1, at)
    local from = 1
    for s in before:gmatch("()\n%-%-%-") do from = s end
    return before:sub(from)
  end

  it("names every auth a client may have", function()
    local class = text:match("^(.-)@classmod")
    assert.is_truthy(class:find('"metadata"', 1, true))
    assert.is_truthy(doc_of("authenticate"):find('"metadata"', 1, true))
  end)

  it("names the proxy errors and the project lookup's usage error", function()
    assert.is_truthy(doc_of("delete_bandwidth"):find("`proxy`", 1, true))
    local auth_doc = doc_of("authenticate"):match("@raise(.*)$")
    assert.is_truthy(auth_doc:find('"project_id"', 1, true))
    assert.is_truthy(auth_doc:find("`proxy`", 1, true))
  end)

  it("lists the batch summary's fields", function()
    local summary = doc_of("delete_bandwidths"):match("@treturn table summary(.-)@raise")
    for _, f in ipairs{ "throttled", "concurrency", "concurrency_min", "rate" } do
      assert.is_truthy(summary:find("%f[%w_]" .. f .. "%f[^%w_]"), f)
    end
  end)

  it("documents the bandwidth names the API takes (Chinese characters too)", function()
    assert.is_truthy(doc_of("create_bandwidth"):find("Chinese", 1, true))
  end)
end)
