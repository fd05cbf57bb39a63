-- The official SDKs' regions file (HUAWEICLOUD_SDK_REGIONS_FILE, else ~/.huaweicloud/regions.yaml):
-- an EIP (else VPC) entry for the region gives its endpoint, after the environment's variables
-- and before the built-in table, as the SDKs' region chain reads it. A user who named a private
-- endpoint there must not have deletes (and signatures) sent to the public one; what lua-eip
-- cannot read in those sections is a usage error naming the file and the line.
local client_mod = require "eip.client"
local regions = require "eip.regions"
local fixture = require "spec.support.fixture"
local raised = require("spec.support.assertions").raised
local env_of = require("spec.support.assertions").env_of

local TOKEN = "t-0123456789"

describe("the regions file", function()
  local dir

  setup(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -m 700 " .. dir))
  end)

  teardown(function()
    os.execute("rm -rf " .. dir)
  end)

  local n = 0
  local function file(text)
    n = n + 1
    local path = dir .. "/regions-" .. n .. ".yaml"
    local f = assert(io.open(path, "wb"))
    f:write(text)
    f:close()
    return path
  end

  -- The endpoint a client of `region` gets with the file holding `text` (and more variables).
  local function endpoint(text, region, vars)
    vars = vars or {}
    vars.HUAWEICLOUD_SDK_REGIONS_FILE = file(text)
    local c = client_mod.new({ region = region or "cn-north-4", project_id = "p1", token = TOKEN }, env_of(vars))
    c:close()
    return c.endpoint
  end

  it("gives a region's EIP entry: block mappings, quotes, comments, a host without a scheme", function()
    assert.equal("https://eip-private.example.test", endpoint([[
# private endpoints
ECS:
  - id: cn-north-4
    endpoint: https://ecs.example.test
EIP:
  - id: 'cn-north-1'
    endpoint: "https://other.example.test"
  - id: "cn-north-4"   # ours
    endpoint: 'https://eip-private.example.test' # the VPC endpoint service
]]))
    assert.equal("https://vpc-private.example.test:8443", endpoint("EIP:\n  - id: cn-north-4\n"
      .. "    endpoint: vpc-private.example.test:8443\n"))
  end)

  it("reads compact lists, flow mappings, endpoints lists and any case of the service name", function()
    assert.equal("http://127.0.0.1:9", endpoint("EIP:\n- id: cn-north-4\n  endpoint: http://127.0.0.1:9\n"))
    assert.equal("http://127.0.0.1:9", endpoint("eip:\n  - { id: cn-north-4, endpoint: 'http://127.0.0.1:9' }\n"))
    assert.equal("http://127.0.0.1:9", endpoint("Eip:\n  - id: cn-north-4\n"
      .. "    endpoints: [ 'http://127.0.0.1:9', http://127.0.0.1:10 ]\n"))
    assert.equal("http://127.0.0.1:9", endpoint("EIP:\n  -\n    id: cn-north-4\n    endpoints:\n"
      .. "      - http://127.0.0.1:9\n      - http://127.0.0.1:10\n"))
    assert.equal("http://127.0.0.1:9", endpoint("EIP:\n  - id: cn-north-4\n    endpoints:\n"
      .. "    - http://127.0.0.1:9\n    unknown:\n      deeper: [1, 2]\n"))
    assert.equal("http://127.0.0.1:9", endpoint("EIP:\n  - {id: cn-north-4, endpoints: [http://127.0.0.1:9]}\n"))
  end)

  -- As the SDKs' YAML parsers read them: a null (plain null, ~, or nothing) is no value; a
  -- section given twice is the second; what is under a key not read is not read either.
  it("reads nulls as absent, a repeated section as replacing, block scalars under keys not read", function()
    assert.equal("http://127.0.0.1:9", endpoint("EIP:\n  - id: cn-north-4\n    endpoint: null\n"
      .. "    endpoints: ['http://127.0.0.1:9']\n"))
    assert.equal("http://127.0.0.1:9",
      endpoint("EIP:\n  - {id: cn-north-4, endpoint: ~, endpoints: [http://127.0.0.1:9]}\n"))
    assert.equal("http://127.0.0.1:9", endpoint("EIP:\n  - id: cn-north-4\n    endpoint:\n    endpoints:\n"
      .. "      - http://127.0.0.1:9\n"))
    assert.equal("https://vpc.cn-north-4.myhuaweicloud.com", endpoint("EIP:\n  - id: cn-north-4\n"
      .. "    endpoint: http://127.0.0.1:9\nEIP:\n  - id: cn-south-1\n    endpoint: http://127.0.0.1:10\n"))
    -- keys differing in case only are merged per region (the SDKs look up the upper-cased name)
    assert.equal("http://127.0.0.1:9", endpoint("%YAML 1.2\n---\neip:\n  - id: cn-north-4\n"
      .. "    endpoint: http://127.0.0.1:9\nEIP:\n  - id: cn-south-1\n    endpoint: http://127.0.0.1:10\n"))
    assert.equal("https://vpc.cn-north-4.myhuaweicloud.com",
      endpoint("EIP:\n  - id:\n    endpoint: http://127.0.0.1:9\n"))
    assert.equal("http://127.0.0.1:9", endpoint("EIP:\n  - id: cn-north-4\n    description: |\n      text\n"
      .. "      more: x\n    endpoint: http://127.0.0.1:9\n"))
  end)

  it("takes endpoint before endpoints, a later entry of the same id over an earlier one", function()
    assert.equal("http://127.0.0.1:9", endpoint("EIP:\n  - id: cn-north-4\n    endpoints: [http://127.0.0.1:10]\n"
      .. "    endpoint: http://127.0.0.1:9\n"))
    assert.equal("http://127.0.0.1:10", endpoint("EIP:\n  - id: cn-north-4\n    endpoint: http://127.0.0.1:9\n"
      .. "  - id: cn-north-4\n    endpoint: http://127.0.0.1:10\n"))
  end)

  it("comes after the environment's variables, before the table; VPC after EIP", function()
    local text = "VPC:\n  - id: cn-north-4\n    endpoint: https://vpc-file.example.test\n"
      .. "  - id: xx-lab-1\n    endpoint: http://127.0.0.1:9\n"
    assert.equal("https://vpc-file.example.test", endpoint(text))
    assert.equal("https://env.example.test", endpoint(text, nil,
      { HUAWEICLOUD_SDK_REGION_VPC_CN_NORTH_4 = "https://env.example.test" }))
    assert.equal("https://eip-file.example.test", endpoint(text .. "EIP:\n  - id: cn-north-4\n"
      .. "    endpoint: https://eip-file.example.test\n"))
    assert.equal("http://127.0.0.1:9", endpoint(text, "xx-lab-1"), "a region the table does not know")
    assert.equal("https://vpc.cn-south-1.myhuaweicloud.com", endpoint(text, "cn-south-1"), "no entry: the table")
    assert.equal("https://vpc.cn-north-4.myhuaweicloud.com", endpoint("EIP:\n  - id: cn-north-4\n"),
      "an entry without an endpoint is none")
  end)

  it("is ~/.huaweicloud/regions.yaml without the variable; none there is no error", function()
    assert(os.execute("mkdir -p " .. dir .. "/home/.huaweicloud"))
    local vars = { HOME = dir .. "/home" }
    local c = client_mod.new({ region = "cn-north-4", project_id = "p1", token = TOKEN }, env_of(vars))
    assert.equal("https://vpc.cn-north-4.myhuaweicloud.com", c.endpoint)
    local f = assert(io.open(dir .. "/home/.huaweicloud/regions.yaml", "wb"))
    f:write("EIP:\n  - id: cn-north-4\n    endpoint: https://home.example.test\n")
    f:close()
    c = client_mod.new({ region = "cn-north-4", project_id = "p1", token = TOKEN }, env_of(vars))
    assert.equal("https://home.example.test", c.endpoint)
    c = client_mod.new({ endpoint = "https://given.example.test", project_id = "p1", token = TOKEN }, env_of(vars))
    assert.equal("https://given.example.test", c.endpoint, "the endpoint option: no file read")
  end)

  it("leaves other services' sections unread, whatever they hold", function()
    assert.equal("http://127.0.0.1:9", endpoint("---\nECS: &anchor\n\t- weird: [unclosed\nIoTDA: |\n  text\n"
      .. "- stray\nEIP:\n  - id: cn-north-4\n    endpoint: http://127.0.0.1:9\nRDS: *anchor\n...\n"))
  end)

  it("is a usage error naming the file and the line for what it cannot read in an EIP or VPC section", function()
    local cases = {
      { "EIP:\n  - id: cn-north-4\n    endpoint: [a\n", 3 },
      { "EIP:\n  - id: cn-north-4\n\t  endpoint: http://127.0.0.1:9\n", 3 },
      { "EIP:\n  - id: cn-north-4\n      endpoint: http://127.0.0.1:9\n", 3 },
      { "EIP:\n  - id: cn-north-4\n  endpoint: http://127.0.0.1:9\n", 3 },
      { "EIP:\n  - id: cn-north-4\n   - id: cn-north-1\n", 3 },
      { "EIP: { cn-north-4: x }\n", 1 },
      { "VPC:\n  - id: &a cn-north-4\n", 2 },
      { "EIP:\n  - id: cn-north-4\n    endpoint: 'unclosed\n", 3 },
      { "EIP:\n  - id: cn-north-4\n    endpoints: http://127.0.0.1:9\n", 3 },
      { "EIP:\n  - id: cn-north-4\n    endpoints:\n      - [a]\n", 4 },
      { "EIP:\n  - id: cn-north-4\n    endpoint: ftp://127.0.0.1:9\n", 2 },
      { "EIP:\n  - id: cn-north-4\n    endpoint: http://u:secret-pw@127.0.0.1:9\n", 2 },
      { '{"EIP":[{"id":"cn-north-4","endpoint":"http://127.0.0.1:9"}]}\n', 1 },
      { "  EIP:\n    - id: cn-north-4\n      endpoint: http://127.0.0.1:9\n", 1 },
      { "EIP:\n  - id: cn-north-4\n    endpoint:\n      http://127.0.0.1:9\n", 4 },
      { "EIP:\n  cn-north-4: http://127.0.0.1:9\n", 2 },
    }
    for _, case in ipairs(cases) do
      local path = file(case[1])
      local err = raised(client_mod.new, { region = "cn-north-4", project_id = "p1", token = TOKEN },
        env_of{ HUAWEICLOUD_SDK_REGIONS_FILE = path })
      assert.equal("regions file", err.argument, case[1])
      assert.matches(path .. ", line " .. case[2] .. ":", err.message, 1, true)
      assert.is_nil(err.message:find("secret-pw", 1, true), err.message)
    end
  end)

  it("is a usage error when the file is no regular file or too big", function()
    local vars = env_of{ HUAWEICLOUD_SDK_REGIONS_FILE = dir }
    local err = raised(client_mod.new, { region = "cn-north-4", project_id = "p1", token = TOKEN }, vars)
    assert.equal("regions file", err.argument)
    assert.matches("is a directory", err.message)
    local big = file("EIP: []\n" .. ("# " .. string.rep("x", 1000) .. "\n"):rep(1100))
    err = raised(client_mod.new, { region = "cn-north-4", project_id = "p1", token = TOKEN },
      env_of{ HUAWEICLOUD_SDK_REGIONS_FILE = big })
    assert.matches("too big for a regions file", err.message)
    assert.equal("https://vpc.cn-north-4.myhuaweicloud.com", endpoint("EIP: []\n"))
  end)

  it("parses to the EIP and VPC entries with their lines", function()
    local found = regions.parse_regions_file("EIP:\n  - id: a\n    endpoint: x\nVPC:\n  - {id: b, endpoint: y}\n"
      .. "OBS:\n  - id: c\n    endpoint: z\n", "f")
    assert.same({ EIP = { a = { "x", 2 } }, VPC = { b = { "y", 5 } } }, found)
  end)

  describe("with the emulator", function()
    local fx = fixture.emulator()
    setup(fx.start)
    teardown(fx.stop)

    it("sends the delete to the file's endpoint", function()
      local emu = fx.emu
      local id = emu:create_bandwidth{ size = 1 }
      local c = client_mod.new({ region = "cn-north-4", project_id = emu.project_id, token = emu.token },
        env_of{ HUAWEICLOUD_SDK_REGIONS_FILE = file("EIP:\n  - id: cn-north-4\n    endpoint: " .. emu.url .. "\n") })
      assert.equal(204, c:delete_bandwidth(id).status)
      c:close()
      assert.equal(1, #emu:requests())
    end)
  end)
end)

-- The region an endpoint names decides where an AK/SK client looks its project up: a host in
-- capitals (which DNS and TLS take as the same) named none, and HUAWEICLOUD_SDK_REGION's was
-- used, another region's project id sent to this one.
describe("the region of an endpoint", function()
  it("is read whatever the case of its host", function()
    for _, endpoint in ipairs{ "https://vpc.cn-north-4.myhuaweicloud.com", "https://VPC.CN-NORTH-4.MYHUAWEICLOUD.COM",
        "HTTPS://Vpc.Cn-North-4.MyHuaweiCloud.com/" } do
      assert.equal("cn-north-4", regions.of_endpoint(endpoint), endpoint)
    end
    assert.is_nil(regions.of_endpoint("https://vpc.example.com"))
  end)
end)
