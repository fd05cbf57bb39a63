-- The error-code table (src/codes.c): every row of the EIP API reference's error-code page is
-- in it, field for field, as the copy in spec/fixtures/error-codes.tsv has them; the gateway
-- codes are there under both prefixes; core.error_code and core.error_codes answer as the
-- README says, hostile arguments included.
local core = require "eip.core"

-- The page's modules, in English as the table names them.
local MODULES = {
  ["公共"] = "common",
  ["申请弹性公网IP"] = "create EIP",
  ["查询弹性公网IP"] = "show EIP",
  ["查询弹性公网IP列表"] = "list EIPs",
  ["删除弹性公网IP"] = "delete EIP",
  ["更新弹性公网IP"] = "update EIP",
  ["查询带宽"] = "show bandwidth",
  ["查询带宽列表"] = "list bandwidths",
  ["更新带宽"] = "update bandwidth",
  ["创建共享带宽"] = "create shared bandwidth",
  ["共享带宽插入/移除弹性公网IP"] = "add or remove EIPs of a shared bandwidth",
  ["查询配额"] = "show quotas",
}

local KINDS = { not_found = true, auth = true, permission = true, config = true, invalid_input = true,
  conflict = true, quota = true, busy = true, throttled = true, backend = true }

local GATEWAY = {
  ["0101"] = { 404, "config", "The API does not exist or has not been published in the environment." },
  ["0301"] = { 401, "auth", "Incorrect IAM authentication information." },
  ["0308"] = { 429, "throttled",
    "The throttling threshold has been reached: policy user over ratelimit,limit:XX,time:1 second" },
}

local function read_fixture()
  local rows = {}
  for line in io.lines("spec/fixtures/error-codes.tsv") do
    if line ~= "" and not line:find("^#") then
      local cells = {}
      for cell in (line .. "\t"):gmatch("([^\t]*)\t") do cells[#cells + 1] = cell end
      assert(#cells == 6, "not 6 cells: " .. line)
      rows[#rows + 1] = { module_zh = cells[1], status = cells[2], code = cells[3], message = cells[4],
        description_zh = cells[5], handling_zh = cells[6] }
    end
  end
  return rows
end

-- "400" -> {400}; "500409" -> {500, 409}; "404/500" -> {404, 500}
local function statuses(s)
  local list = {}
  if s:find("/", 1, true) then
    for d in s:gmatch("[^/]+") do list[#list + 1] = d end
  else
    for d in s:gmatch("%d%d%d") do list[#list + 1] = d end
    assert(#list * 3 == #s, "status " .. s)
  end
  for i, d in ipairs(list) do list[i] = assert(tonumber(d), "status " .. s) end
  return list
end

-- Every row of the C table, flattened from the entries' variants.
local function c_rows()
  local rows = {}
  for _, e in ipairs(core.error_codes()) do
    for _, v in ipairs(e.variants) do
      local r = { code = e.code }
      for k, x in pairs(v) do r[k] = x end
      rows[#rows + 1] = r
    end
  end
  return rows
end

local function is_gateway(code) return code:find("^APIGW?%.") ~= nil end

describe("the error-code table", function()
  local fixture = read_fixture()

  it("is checked against the page's 60 rows", function()
    assert.equal(60, #fixture)
    for _, r in ipairs(fixture) do
      assert.is_not_nil(MODULES[r.module_zh], "module " .. r.module_zh)
      assert.is_truthy(r.code:find("^[A-Z]+%.%d%d%d%d$"), r.code)
      for _, s in ipairs(statuses(r.status)) do assert.is_true(s >= 400 and s <= 599) end
    end
  end)

  it("holds every (code, status) row of the page, field for field, and no other EIP row", function()
    local unmatched = {}
    for _, r in ipairs(c_rows()) do
      if not is_gateway(r.code) then unmatched[#unmatched + 1] = r end
    end
    local expected = 0
    for _, f in ipairs(fixture) do
      for _, s in ipairs(statuses(f.status)) do
        expected = expected + 1
        local found
        for i, r in ipairs(unmatched) do
          if r.code == f.code and r.status == s and r.module == MODULES[f.module_zh]
              and r.message == f.message and r.description_zh == f.description_zh
              and r.handling_zh == f.handling_zh then
            found = table.remove(unmatched, i)
            break
          end
        end
        assert.is_not_nil(found, ("%s %d (%s) %q is not in the C table"):format(f.code, s,
          MODULES[f.module_zh], f.message))
        -- and a lookup by (code, status) lands on a row with that status
        local e = core.error_code(f.code, s)
        assert.equal(f.code, e.code)
        assert.equal(s, e.status)
      end
    end
    assert.equal(62, expected) -- 60 rows, two of them with two statuses
    assert.same({}, unmatched)
  end)

  it("holds the gateway's 0101, 0301 and 0308 under both prefixes, and no other gateway row", function()
    local seen = 0
    for _, r in ipairs(c_rows()) do
      if is_gateway(r.code) then
        seen = seen + 1
        local g = GATEWAY[r.code:match("%.(%d+)$")]
        assert.is_not_nil(g, r.code)
        assert.same({ g[1], g[2], g[3], "API gateway", "" },
          { r.status, r.kind, r.message, r.module, r.handling_zh })
        assert.is_true(#r.description_zh > 0)
      end
    end
    assert.equal(6, seen)
    for _, prefix in ipairs({ "APIGW", "APIG" }) do
      for num, g in pairs(GATEWAY) do
        assert.equal(g[1], core.error_code(prefix .. "." .. num).status)
      end
    end
  end)

  it("has a documented kind for every row, and transient exactly where the documents say later", function()
    local transient = {}
    for _, r in ipairs(c_rows()) do
      assert.is_true(KINDS[r.kind], r.code .. " kind " .. tostring(r.kind))
      assert.is_boolean(r.transient)
      assert.is_true(#r.advice > 20, r.code .. " advice")
      if r.transient then transient[#transient + 1] = r.code .. " " .. r.status .. " " .. r.module end
    end
    table.sort(transient)
    assert.same({ "APIG.0308 429 API gateway", "APIGW.0308 429 API gateway", "VPC.0004 400 common",
      "VPC.0512 409 delete EIP", "VPC.0512 409 update EIP" }, transient)
  end)
end)

describe("core.error_code", function()
  it("returns the row with the asked status, and every row of the code as variants", function()
    local e = core.error_code("VPC.0504", 404)
    assert.same({ "VPC.0504", 404, "show EIP", "Floating IP could not be found.", "未找到弹性公网IP",
      "not_found", false }, { e.code, e.status, e.module, e.message, e.description_zh, e.kind, e.transient })
    assert.equal(4, #e.variants)
    local got = {}
    for i, v in ipairs(e.variants) do got[i] = v.status .. " " .. v.module .. " " .. v.message end
    assert.same({ "500 create EIP FloatIp is null.", "404 show EIP Floating IP could not be found.",
      "404 delete EIP Floating IP could not be found.", "404 update EIP Floating IP could not be found." }, got)
    e = core.error_code("VPC.0504", 500)
    assert.same({ 500, "FloatIp is null.", "backend" }, { e.status, e.message, e.kind })
  end)

  it("splits the page's \"500409\" into two rows with their own kinds", function()
    assert.same({ 409, "conflict" }, { core.error_code("VPC.0304", 409).status, core.error_code("VPC.0304", 409).kind })
    assert.same({ 500, "backend" }, { core.error_code("VPC.0304", 500).status, core.error_code("VPC.0304", 500).kind })
    assert.equal(2, #core.error_code("VPC.0304").variants)
  end)

  it("falls back to the code's first row without a status, or with one it does not list", function()
    local first = core.error_code("VPC.0514")
    assert.same({ 409, "create EIP" }, { first.status, first.module })
    assert.same(first, core.error_code("VPC.0514", 418))
    assert.same(first, core.error_code("VPC.0514", nil))
    -- a status it does not list reads as its first row of that class (4xx, 5xx), when it has one
    local function read_as(code, status)
      local r = core.error_code(code, status)
      return { r.status, r.module, r.kind }
    end
    for _, s in ipairs{ 502, 503, 504 } do
      assert.same({ 500, "show EIP", "backend" }, read_as("VPC.0514", s), tostring(s))
    end
    assert.same({ 404, "show EIP", "not_found" }, read_as("VPC.0504", 429))
    assert.same({ 409, "common", "conflict" }, read_as("VPC.0304", 408))
    assert.same({ 500, "common", "backend" }, read_as("VPC.0304", 503))
    assert.same(core.error_code("VPC.0306"), core.error_code("VPC.0306", 500)) -- no 5xx row: the first
    -- the best row is one of the variants, with the same fields
    local e = core.error_code("VPC.0514", 404)
    local v = e.variants[3]
    assert.same({ 404, "update EIP" }, { e.status, e.module })
    for _, k in ipairs({ "status", "module", "message", "description_zh", "handling_zh", "advice", "kind",
      "transient" }) do
      assert.equal(v[k], e[k], k)
    end
  end)

  it("gives the advice the bandwidth codes need", function()
    assert.matches("missing_ok takes this as success for an id shaped like one (a lower-case UUID)",
      core.error_code("VPC.0306", 404).advice, 1, true)
    assert.matches("project_id and region", core.error_code("VPC.0007", 400).advice, 1, true)
    assert.matches("retry later", core.error_code("VPC.0004", 400).advice, 1, true)
    assert.matches("never count this 404 as deleted", core.error_code("APIGW.0101", 404).advice, 1, true)
    assert.matches("lock the AK/SK pair for 5 minutes", core.error_code("APIG.0301", 401).advice, 1, true)
  end)

  it("returns nil for unknown codes and survives hostile ones", function()
    for _, code in ipairs({ "", "VPC.9999", "vpc.0306", "VPC.0306 ", " VPC.0306", "VPC.0306\0",
      "VPC.030", ("A"):rep(10240), "VPC.0306" .. ("x"):rep(10240), "带宽对象不存在",
      "VPC.\239\188\144\239\188\147\239\188\144\239\188\150", "\255\254\0\1", "APIGW.0302" }) do
      assert.is_nil(core.error_code(code), ("%q"):format(code:sub(1, 20)))
      assert.is_nil(core.error_code(code, 404))
    end
    assert.is_nil(core.error_code(404)) -- a number is the string "404": no such code
    assert.has_error(function() core.error_code() end)
    assert.has_error(function() core.error_code(nil, 404) end)
    assert.has_error(function() core.error_code({}) end)
    assert.has_error(function() core.error_code("VPC.0306", "abc") end)
    assert.has_error(function() core.error_code("VPC.0306", {}) end)
  end)

  it("treats a status that is not an integer in 1..999 as none", function()
    local first = core.error_code("VPC.0504")
    for _, s in ipairs({ 0, -1, 1000, 1e300, -1e300, math.huge, -math.huge, 0 / 0, 404.5, -404 }) do
      assert.same(first, core.error_code("VPC.0504", s), tostring(s))
    end
    assert.equal(404, core.error_code("VPC.0504", "404").status) -- Lua's string coercion
    assert.equal(404, core.error_code("VPC.0504", 404.0).status)
  end)
end)

describe("core.error_codes", function()
  it("returns one entry per code, in table order, each as core.error_code(code) gives it", function()
    local all = core.error_codes()
    assert.equal(46, #all)
    local seen, rows = {}, 0
    for _, e in ipairs(all) do
      assert.is_nil(seen[e.code], e.code .. " twice")
      seen[e.code] = true
      rows = rows + #e.variants
      assert.same(core.error_code(e.code), e)
    end
    assert.equal(68, rows)
    assert.same({ "VPC.0002", "EIP.7901", "APIGW.0101", "APIG.0308" },
      { all[1].code, all[40].code, all[41].code, all[46].code })
  end)
end)
