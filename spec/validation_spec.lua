-- Validation happens before any I/O: every bad argument is a "usage" error naming the
-- argument, and the emulator sees zero requests.
local eip = require "eip"
local fixture = require "spec.support.fixture"
local host = require "spec.support.host"

describe("validation", function()
  local fx = fixture.emulator()
  local emu, good
  local with, NONE = fx.options, fixture.NONE

  setup(function()
    emu = fx.start()
    good = fx.options()
  end)
  teardown(fx.stop)
  before_each(fx.reset)

  local function usage_error(argument, f, ...)
    local ok, err = pcall(f, ...)
    assert.is_false(ok, "expected a usage error for " .. argument)
    assert.is_true(eip.is_error(err), tostring(err))
    assert.equal("usage", err.kind)
    assert.equal(argument, err.argument)
    assert.is_false(err.retryable)
    assert.matches("^eip: usage: " .. argument:gsub("%p", "%%%0") .. " ", tostring(err))
    assert.is_nil(tostring(err):find(emu.token, 1, true))
    assert.equal(0, emu:stats().requests, "a usage error must send nothing")
    return err
  end

  local bad_ids = {
    { "nil", nil }, { "a number", 42 }, { "a table", {} }, { "a boolean", true },
    { "empty", "" }, { "'.'", "." }, { "'..'", ".." }, { "a slash", "a/b" },
    { "traversal", "../../v3/auth" }, { "encoded slash", "bw%2F1" }, { "a space", "bw 1" },
    { "CR/LF", "bw\r\nX-Evil: 1" }, { "NUL", "bw\0x" }, { "a query", "bw?x=1" },
    { "a fragment", "bw#x" }, { "unicode", "bw-ü" }, { "65 characters", string.rep("a", 65) },
    { "5,000 characters", string.rep("b", 5000) }, { "a backslash", "bw\\1" }, { "a colon", "bw:1" },
  }

  for _, case in ipairs(bad_ids) do
    it("rejects a bandwidth id that is " .. case[1], function()
      local c = eip.new(good)
      usage_error("bandwidth_id", c.delete_bandwidth, c, case[2])
      c:close()
    end)
    it("rejects a project id that is " .. case[1], function()
      usage_error("project_id", eip.new, with{ project_id = case[2] == nil and NONE or case[2] })
    end)
  end

  -- Keys given in part: the message names what is missing (a security token alone said "ak is
  -- required with sk", though no sk was given).
  it("names the keys missing from a partial set, never echoing what was given", function()
    for _, case in ipairs{
        { { security_token = "ST-given-0123456789" }, "ak", "and sk are required with security_token" },
        { { sk = "SK-given-0123456789" }, "ak", "is required with sk" },
        { { ak = "AKGIVEN0000000000000" }, "sk", "is required with ak" } } do
      local opts = with{ token = NONE }
      for k, v in pairs(case[1]) do opts[k] = v end
      local err = usage_error(case[2], eip.new, opts)
      assert.matches(case[3], err.message, 1, true)
      assert.is_nil(tostring(err):find("given", 1, true), tostring(err))
    end
  end)

  -- An SK or token pasted where an id goes would be sent in a URL and shown on result lines.
  it("rejects a bandwidth id that holds one of the client's secrets, without showing it", function()
    local clients = {
      { emu.token, eip.new(good) },
      { emu.sk, eip.new{ endpoint = emu.url, project_id = emu.project_id, ak = emu.ak, sk = emu.sk } },
    }
    for _, case in ipairs(clients) do
      local secret, c = case[1], case[2]
      for _, id in ipairs{ secret, "x" .. secret, secret:sub(1, 12) } do
        local calls = { c.delete_bandwidth, c.show_bandwidth, c.plan_drain, c.drain_and_delete_bandwidth }
        for _, f in ipairs(calls) do
          local err = usage_error("bandwidth_id", f, c, id)
          assert.matches("holds a credential", err.message, 1, true)
          assert.is_nil(tostring(err):find(secret:sub(1, 8), 1, true))
        end
      end
      local real = emu:create_bandwidth{ size = 1 }
      local results, summary = c:delete_bandwidths({ real, secret })
      assert.equal(1, summary.deleted)
      assert.same({ "usage", "bandwidth_id" }, { results[2].kind, results[2].argument })
      assert.is_nil(tostring(results[2]):find(secret:sub(1, 8), 1, true))
      assert.equal(1, emu:stats().requests) -- the real one's delete only
      emu:reset_counters()
      c:close()
    end
    -- A secret shorter than 8 bytes (a short token, a proxy's user or password) is one as the
    -- whole id; as part of a longer one it cannot be told from ordinary text.
    local c = eip.new{ endpoint = emu.url, project_id = emu.project_id, token = "tk-9a7",
      proxy = "http://u1:pw5@127.0.0.1:9" }
    for _, id in ipairs{ "tk-9a7", "u1", "pw5" } do
      assert.matches("holds a credential", usage_error("bandwidth_id", c.delete_bandwidth, c, id).message, 1, true)
    end
    c:close()
    assert.equal(0, emu:stats().requests)
  end)

  -- An SK pasted into the endpoint (the option, or EIP_ENDPOINT-like variables for a CLI) was
  -- sent in every request's URL and shown by a dry run and tostring(client); a password in
  -- auth.iam_endpoint went to IAM in the URL. Refused like an id, never quoted.
  it("refuses an endpoint or an IAM endpoint that holds one of the client's secrets, without showing it", function()
    local sk, pw = "SKsecretKEY0123456789abcdefghijABCDEFGHIJ", "Pass-word-1234567"
    local cases = {
      { "endpoint", { endpoint = "https://vpc.example.com/" .. sk, project_id = "p1", ak = "AKAKAKAKAKAK",
        sk = sk } },
      { "endpoint", { endpoint = "http://127.0.0.1:9/x" .. emu.token, project_id = "p1", token = emu.token } },
      -- (pasted straight after the host, or before it, or cut short in the path)
      { "endpoint", { endpoint = "https://vpc.cn-north-4.myhuaweicloud.com" .. sk, project_id = "p1",
        ak = "AKAKAKAKAKAK", sk = sk } },
      { "endpoint", { endpoint = "https://" .. sk .. ".vpc.cn-north-4.myhuaweicloud.com", project_id = "p1",
        ak = "AKAKAKAKAKAK", sk = sk } },
      { "endpoint", { endpoint = "https://vpc.example.com/" .. sk:sub(1, 32), project_id = "p1",
        ak = "AKAKAKAKAKAK", sk = sk } },
      { "endpoint", { endpoint = "https://vpc.cn-north-4.myhuaweicloud.com" .. sk:sub(1, 39), project_id = "p1",
        ak = "AKAKAKAKAKAK", sk = sk } },
      { "endpoint", { endpoint = "https://" .. sk:sub(2) .. ".myhuaweicloud.com", project_id = "p1",
        ak = "AKAKAKAKAKAK", sk = sk } },
      { "auth.iam_endpoint", { endpoint = "https://vpc.example.com", project_id = "p1",
        auth = { username = "u", password = pw, domain = "d", project = "cn-north-4",
          iam_endpoint = "https://iam.example.com/" .. pw } } },
    }
    for _, case in ipairs(cases) do
      local err = usage_error(case[1], eip.new, case[2])
      assert.matches("holds a credential", err.message, 1, true)
      for _, secret in ipairs{ sk, pw, emu.token } do
        assert.is_nil(tostring(err):find(secret:sub(1, 8), 1, true), tostring(err))
      end
    end
    -- The project lookup's IAM endpoint named where it came from: the environment's variable.
    local from_env = usage_error("HUAWEICLOUD_SDK_IAM_ENDPOINT", require("eip.client").new,
      { endpoint = "https://vpc.cn-north-4.myhuaweicloud.com", ak = "AKAKAKAKAKAK", sk = sk },
      function(name) if name == "HUAWEICLOUD_SDK_IAM_ENDPOINT" then return "https://iam.example.com/" .. sk end end)
    assert.matches("holds a credential", from_env.message, 1, true)
    -- the same for an IAM password client's (its auth option names no iam_endpoint)
    local iam_env = usage_error("HUAWEICLOUD_SDK_IAM_ENDPOINT", require("eip.client").new,
      { endpoint = "https://vpc.cn-north-4.myhuaweicloud.com",
        auth = { username = "u", password = pw, domain = "d", project = "cn-north-4" } },
      function(name) if name == "HUAWEICLOUD_SDK_IAM_ENDPOINT" then return "https://iam.example.com/" .. pw end end)
    assert.matches("holds a credential", iam_env.message, 1, true)
    -- The VPC endpoint of a region named where it came from: the override variable, the regions
    -- file and its line (not `endpoint`, which the caller never gave).
    local var = "HUAWEICLOUD_SDK_REGION_EIP_CN_NORTH_4"
    local override = usage_error(var, require("eip.client").new,
      { region = "cn-north-4", ak = "AKAKAKAKAKAK", sk = sk },
      function(name) if name == var then return "https://vpc.example.com/" .. sk end end)
    assert.matches("holds a credential", override.message, 1, true)
    local yaml = os.tmpname()
    local f = assert(io.open(yaml, "w"))
    f:write("EIP:\n  - id: cn-north-4\n    endpoint: https://vpc.example.com/", sk, "\n")
    f:close()
    -- (the line of its entry, `- id: cn-north-4`)
    local listed = usage_error("the regions file " .. yaml .. ", line 2", require("eip.client").new,
      { region = "cn-north-4", ak = "AKAKAKAKAKAK", sk = sk },
      function(name) if name == "HUAWEICLOUD_SDK_REGIONS_FILE" then return yaml end end)
    os.remove(yaml)
    assert.matches("holds a credential", listed.message, 1, true)
    -- and the region the project is looked up by, when the environment gave it
    local region_env = usage_error("HUAWEICLOUD_SDK_REGION", require("eip.client").new,
      { endpoint = "https://vpc.example.com", ak = "AKAKAKAKAKAK", sk = sk },
      function(name) if name == "HUAWEICLOUD_SDK_REGION" then return "Garbage!" end end)
    assert.matches("must be a region name", region_env.message, 1, true)
    assert.equal(0, emu:stats().requests)
    -- another client's secret is not this one's: its endpoint stands
    local other = eip.new{ endpoint = emu.url, project_id = "p1", ak = "AKAKAKAKAKAK", sk = sk }
    local c = eip.new{ endpoint = "https://vpc.example.com/" .. sk, project_id = "p1", token = emu.token }
    c:close()
    other:close()
    -- nor is a host that shares a word with a password, or a proxy's user: the real endpoints
    local none = function() return nil end
    for _, opts in ipairs{
        { endpoint = "https://vpc.cn-north-4.myhuaweicloud.com", auth = { username = "ops",
          password = "HuaweiCloud@2024", domain = "acme", project = "cn-north-4" } },
        { region = "cn-north-4", auth = { username = "ops", password = "Myhuaweicloud1", domain = "acme",
          project = "cn-north-4" } },
        -- (16 bytes and more of the cloud's own domain: vpc.<region>.myhuaweicloud.com, and the
        -- global IAM, iam.myhuaweicloud.com, of cn-north-11)
        { region = "cn-north-4", auth = { username = "ops", password = "Myhuaweicloud.com", domain = "acme",
          project = "cn-north-4" } },
        { region = "cn-north-11", auth = { username = "ops", password = "Iam.myhuaweicloud1", domain = "acme",
          project = "cn-north-11" } },
        { region = "cn-north-4", token = emu.token, project_id = "p1",
          proxy = "http://myhuaweicloud-egress:pw@proxy.corp.example:3128" } } do
      eip.new(opts, none):close()
    end
  end)

  -- The region is checked first of all the options: the secrets given with it are known by then.
  it("quotes no secret given as the region", function()
    for _, opts in ipairs{ { region = "Sk0secretvalue9988", ak = "AKAKAKAKAKAK", sk = "Sk0secretvalue9988" },
        { region = "tok-secret-value-01", token = "tok-secret-value-01", project_id = "p1" } } do
      local ok, err = pcall(eip.new, opts)
      assert.is_false(ok)
      assert.equal("region", err.argument)
      assert.is_nil(tostring(err):find(opts.region, 1, true), tostring(err))
    end
  end)

  -- eip.new reads its options and `auth` as Lua indexes them (an __index default counts): a
  -- password or an SK given that way signs, so it is known as a secret before the region is
  -- checked too, and by eip.known_secrets. A raising __index adds none (and raises nothing there).
  it("knows the secrets of options read through __index, as eip.new reads them", function()
    local pw, sk = "Sup3rS3cretPassw0rd-xyz", "u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8dKLzd"
    local none = function() return nil end
    local auth = setmetatable({}, { __index = { username = "u", password = pw, domain = "d", project = "cn-north-4" } })
    local ok, err = pcall(require("eip.client").new, { region = pw, auth = auth }, none)
    assert.is_false(ok)
    assert.equal("region", err.argument)
    assert.is_nil(tostring(err):find(pw:sub(1, 12), 1, true), tostring(err))
    local cfg = setmetatable({}, { __index = { ak = "EMUAK7PERMANENT00001", sk = sk, token = "tok-Proxied-0123",
      security_token = "sectok-Proxied-0123", auth = auth, proxy = "http://pu:Pr0xiedPassw0rd@127.0.0.1:9" } })
    local secrets = table.concat(require("eip.client").known_secrets(cfg, none), "\n")
    for _, v in ipairs{ sk, pw, "tok-Proxied-0123", "sectok-Proxied-0123", "Pr0xiedPassw0rd" } do
      assert.truthy(secrets:find(v, 1, true), v)
    end
    local raising = setmetatable({}, { __index = function() error("boom") end })
    assert.same({}, require("eip.client").known_secrets({ auth = raising, proxy = false }, none))
    assert.same({}, require("eip.client").known_secrets(setmetatable({}, getmetatable(raising)), none))
  end)

  -- The profile file's keys and the proxy's credentials are known before the region is checked
  -- too, though the credentials are looked for later (a profile SK is 40 characters: quoted whole).
  it("quotes no secret of the profile file or of a proxy given as the region", function()
    local sk, st = "Qm7Xv2Lr9Tn4Kd8Wp3Zs6Yb1Hc5Jf0Gu2Ae7NiRo", "sectok-Zq8Wn3Lp0Rt5Yv2Xb7Mk4"
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write("[basic]\nak = AKPROFILE0000000000\nsk = ", sk, "\nsecurity_token = ", st, "\n")
    f:close()
    os.execute("chmod 600 " .. path)
    local vars = { HUAWEICLOUD_SDK_CREDENTIALS_FILE = path, https_proxy = "http://puser:Pr0xyPassw0rd77@127.0.0.1:9" }
    local function getenv(name) return vars[name] end
    local known = eip.known_secrets()
    assert.is_nil(table.concat(known, " "):find(sk, 1, true), "the test's environment holds no such file")
    for _, region in ipairs{ sk, st, "Pr0xyPassw0rd77" } do
      local ok, err = pcall(require("eip.client").new, { region = region }, getenv)
      assert.is_false(ok)
      assert.equal("region", err.argument)
      assert.is_nil(tostring(err):find(region, 1, true), tostring(err))
      assert.is_nil(tostring(err):find(region:sub(1, 12), 1, true), tostring(err))
    end
    -- What eip.known_secrets gives: what the client would know (and nothing asked of the network).
    local secrets = require("eip.client").known_secrets({}, getenv)
    for _, v in ipairs{ sk, st, "Pr0xyPassw0rd77", "puser" } do
      assert.truthy(table.concat(secrets, "\n"):find(v, 1, true), v)
    end
    assert.is_nil(table.concat(secrets, "\n"):find("AKPROFILE", 1, true), "an AK is no secret")
    assert.same(secrets, require("eip.client").known_secrets(nil, getenv))
    -- A file the look-up of credentials will refuse (a note in another section, a quote left
    -- open) still gives its keys, as written and without quotes: the region is checked first.
    for _, text in ipairs{ "\239\187\191[basic]\nsk = " .. sk .. "\n\n[notes]\nrotate the key before June\n",
        "[basic]\nsk = '" .. sk .. "\nproject_id = \"0a1b\n", "[Basic]\nSK: \"" .. sk .. "\"\n",
        "[basic] ; my keys\nak = AKPROFILE0000000000\nsk = " .. sk .. "\n", "[basic]\rak = A\rsk = " .. sk .. "\r" } do
      local bad = assert(io.open(path, "w"))
      bad:write(text)
      bad:close()
      collectgarbage() -- (the lists the calls above registered are held weakly: gone)
      collectgarbage()
      local ok, err = pcall(require("eip.client").new, { region = sk }, getenv)
      assert.is_false(ok)
      assert.equal("region", err.argument)
      assert.is_nil(tostring(err):find(sk:sub(1, 12), 1, true), tostring(err))
    end
    -- The options' own proxy replaces the environment's; a file that is no profile adds nothing.
    local f2 = assert(io.open(path, "w"))
    f2:write("[other]\nsk = ", sk, "\n")
    f2:close()
    secrets = require("eip.client").known_secrets({ proxy = "http://u2:OptPassw0rd99@127.0.0.1:9" }, getenv)
    assert.same({ "u2:OptPassw0rd99", "u2", "OptPassw0rd99", "u2:OptPassw0rd99" }, secrets)
    os.remove(path)
  end)

  -- A password or a proxy's password is no id either (it has characters ids do not): the
  -- message that says so must not quote it. And a project id that is a secret is refused.
  it("never quotes a secret in a usage error, nor takes one for a project id", function()
    local pw = "S3cret!pass#42"
    local c = eip.new{ endpoint = emu.url, token = emu.token, project_id = emu.project_id,
      proxy = "http://bob:" .. pw .. "@127.0.0.1:3128" }
    for _, v in ipairs{ pw, "x" .. pw, "bob:" .. pw } do
      local err = usage_error("bandwidth_id", c.delete_bandwidth, c, v)
      assert.is_nil(tostring(err):find(pw, 1, true), tostring(err))
      err = usage_error("eip_ids[1]", c.remove_eips_from_bandwidth, c, "bw-1", { v }, { charge_mode = "bandwidth",
        size = 1 })
      assert.is_nil(tostring(err):find(pw, 1, true), tostring(err))
    end
    c:close()
    local err = usage_error("project_id", eip.new,
      { endpoint = emu.url, project_id = emu.sk, ak = emu.ak, sk = emu.sk })
    assert.matches("holds a credential", err.message, 1, true)
    assert.is_nil(tostring(err):find(emu.sk, 1, true))
  end)

  -- The AK goes in the clear in every request's Authorization header (Access=...), and the
  -- gateway's refusal quotes it back: an SK or a security token pasted there (the keys swapped,
  -- a line copied twice) was sent so, its signatures refused.
  it("refuses an AK that holds the SK or the security token, sending nothing and quoting neither", function()
    local base = { endpoint = emu.url, project_id = emu.project_id, ak = emu.ak, sk = emu.sk, max_attempts = 1 }
    for _, case in ipairs{ { ak = emu.sk }, { ak = emu.sk:sub(1, 20) }, { ak = "AK" .. emu.sk:upper() },
        { ak = emu.temp_ak .. emu.security_token:sub(1, 16), security_token = emu.security_token } } do
      local opts = {}
      for k, v in pairs(base) do opts[k] = v end
      for k, v in pairs(case) do opts[k] = v end
      local err = usage_error("ak", eip.new, opts)
      assert.matches("holds the SK or the security token", err.message, 1, true)
      assert.is_nil(tostring(err):find(emu.sk:sub(1, 16), 1, true), tostring(err))
    end
    -- (eip.sign's too: its Authorization header would hold the SK)
    local ok, err = pcall(eip.sign, { method = "GET", url = emu.url .. "/v1/x", ak = emu.sk, sk = emu.sk,
      headers = { ["X-Sdk-Date"] = "20240102T030405Z" } })
    assert.is_false(ok)
    assert.same({ "usage", "ak" }, { err.kind, err.argument })
    assert.is_nil(tostring(err):find(emu.sk:sub(1, 16), 1, true), tostring(err))
  end)

  -- An EIP id or an enterprise project id holding a secret of the client's went out (in the
  -- remove call's body, in the listing's query) and came back in the error; a value quoted by
  -- a usage error of its own making (a repeated id, an unknown option, a share_type) was shown.
  it("sends no EIP id nor enterprise project id holding a secret; no usage error quotes one", function()
    local token, theirs = "tok_SecretValue123", "Other-Account-Token-123"
    local c = eip.new{ endpoint = emu.url, token = token, project_id = emu.project_id }
    local other = eip.new{ endpoint = emu.url, token = theirs, project_id = emu.project_id }
    local id = emu:create_bandwidth{ size = 5, publicip_ids = { "eip-a" } }
    emu:reset_counters()
    local terms = { charge_mode = "traffic", size = 1 }
    local checks = {
      { "eip_ids[1]", c.remove_eips_from_bandwidth, c, id, { token }, terms },
      { "eip_ids[1]", c.remove_eips_from_bandwidth, c, id, { { publicip_id = "x" .. token } }, terms },
      { "enterprise_project_id", c.list_bandwidths, c, { enterprise_project_id = token } },
      -- (another client's secret is no secret of this one's: refused as a repeat, not quoted)
      { "eip_ids[2]", c.remove_eips_from_bandwidth, c, id, { theirs, theirs }, terms },
      { "share_type", c.list_bandwidths, c, { share_type = token } },
      { "call options", c.delete_bandwidth, c, id, { [token] = true } },
      { "call options", c.delete_bandwidth, c, id, { [theirs] = true } },
    }
    local unpack_ = table.unpack or unpack -- luacheck: ignore 113 143 (5.1, LuaJIT: unpack)
    for _, check in ipairs(checks) do
      local err = usage_error(unpack_(check))
      for _, secret in ipairs{ token, theirs } do
        assert.is_nil(tostring(err):find(secret:sub(1, 10), 1, true), tostring(err))
      end
    end
    c:close()
    other:close()
    assert.equal(0, emu:stats().requests)
  end)

  -- A value quoted cut to its first 20 or 40 bytes kept the first 3 to 7 bytes of a secret at the
  -- cut, too few for the redaction's 8-byte pieces; and quoted with %q, a password holding '"' or
  -- '\' was escaped there, so that none of its 8-byte pieces was found.
  it("quotes no piece of a secret cut short or escaped in a usage error of its own making", function()
    local token, password = "tok_SecretValue123", 'Zq"Wx\\Yv"Ut\\Sr'
    local c = eip.new{ endpoint = emu.url, token = token, project_id = emu.project_id }
    local p = eip.new{ endpoint = emu.url, metadata_url = false,
      auth = { username = "u", password = password, domain = "d", project_id = emu.project_id } }
    local pad = ("0"):rep(34)
    local checks = {
      { "share_type", c.list_bandwidths, c, { share_type = "WHOLE-0123456789" .. token } },
      { "share_type", p.list_bandwidths, p, { share_type = password } },
      { "rate_dict", eip.new, { endpoint = emu.url, token = token, project_id = emu.project_id, rate = 1,
        rate_dict = pad .. token } },
      { "options", eip.metrics, { [pad .. token] = 1 } },
      { "dict", eip.metrics, { dict = pad .. token } },
    }
    local unpack_ = table.unpack or unpack -- luacheck: ignore 113 143 (5.1, LuaJIT: unpack)
    for _, check in ipairs(checks) do
      local err = usage_error(unpack_(check))
      assert.is_nil(tostring(err):find("tok_", 1, true), tostring(err))
      assert.is_nil(tostring(err):find('Zq\\"Wx', 1, true), tostring(err))
    end
    c:close()
    p:close()
    assert.equal(0, emu:stats().requests)
  end)

  -- (__pairs and __len are Lua 5.2's and later; LuaJIT and 5.1 do not call them.)
  it("an options table or id list whose metamethods raise is a usage error naming it", function()
    if _VERSION == "Lua 5.1" then return end -- (LuaJIT too: neither calls __pairs nor __len)
    local boom = function() error("METAMETHOD BOOM") end
    local hostile = setmetatable({}, { __pairs = boom, __len = boom })
    local c = eip.new(good)
    for _, case in ipairs{
      { "options", function() return eip.new(setmetatable({ endpoint = emu.url }, { __pairs = boom })) end },
      { "options", function() return c:delete_bandwidths({ "bw-1" }, hostile) end },
      { "ids", function() return c:delete_bandwidths(hostile) end },
      { "ids", function()
        return c:delete_bandwidths(setmetatable({ "bw-1" }, { __len = function() return "x" end }))
      end },
    } do
      local ok, err = pcall(case[2])
      assert.is_false(ok)
      assert.is_true(eip.is_error(err), tostring(err))
      assert.same({ "usage", case[1] }, { err.kind, err.argument })
    end
    assert.equal(0, emu:stats().requests)
    c:close()
  end)

  -- Every entry point reads its options once, into a plain copy: a metamethod that raises
  -- (__pairs walking it, __index reading an option) is a usage error naming the table, and no
  -- raw error escapes; nothing is sent.
  it("reads each table argument once: a raising metamethod is a usage error naming it", function()
    local boom = function() error("METAMETHOD BOOM") end
    local indexed = function() return setmetatable({}, { __index = boom }) end
    local walked = function() return setmetatable({}, { __index = boom, __pairs = boom }) end
    local c = eip.new(good)
    local id = "3fa1e2b4-1111-2222-3333-444455556666"
    local terms = { charge_mode = "bandwidth", size = 1 }
    local calls = {
      -- name, the argument named, call (headers: a map walked by pairs, never read by name)
      { "eip.new", "options", function(t) return eip.new(t) end },
      { "auth", "auth", function(t) return eip.new{ endpoint = emu.url, project_id = emu.project_id, auth = t } end },
      { "eip.delete_bandwidth", "options", function(t) return eip.delete_bandwidth(t) end },
      { "create_bandwidth", "options", function(t) return c:create_bandwidth(t) end },
      { "drain", "options", function(t) return c:drain_and_delete_bandwidth(id, t) end },
      { "eip_ids entry", "eip_ids[1]", function(t) return c:remove_eips_from_bandwidth(id, { t }, terms) end },
      { "eip.sign", "options", function(t) return eip.sign(t) end },
      { "eip.sign headers", "headers", function(t)
        return eip.sign{ method = "GET", url = "http://h/", headers = t, ak = "a", sk = "b" }
      end, by_pairs = true },
      { "eip.metrics", "options", function(t) return eip.metrics(t) end },
      { "list_bandwidths", "list options", function(t) return c:list_bandwidths(t) end },
      { "show_bandwidth", "options", function(t) return c:show_bandwidth(id, t) end },
      { "delete_bandwidth", "call options", function(t) return c:delete_bandwidth(id, t) end },
      { "delete_bandwidths", "options", function(t) return c:delete_bandwidths({ id }, t) end },
    }
    for _, call in ipairs(calls) do
      local ok, err = pcall(call[3], indexed())
      assert.is_false(ok, call[1])
      assert.is_true(eip.is_error(err) and err.kind == "usage", call[1] .. ": " .. tostring(err))
      assert.is_nil(tostring(err):find("BOOM", 1, true), call[1] .. ": " .. tostring(err))
      if not call.by_pairs then assert.equal(call[2], err.argument, call[1]) end
      if _VERSION ~= "Lua 5.1" then -- (LuaJIT and 5.1 do not call __pairs)
        ok, err = pcall(call[3], walked())
        assert.is_false(ok, call[1])
        assert.same({ "usage", call[2] }, { err.kind, err.argument }, call[1] .. ": " .. tostring(err))
      end
    end
    assert.equal(0, emu:stats().requests)
    c:close()
  end)

  -- A table whose __pairs never ends (the caller's bug) is refused at its first key the call
  -- refuses (an unknown option, a list's key past its length, a header past the signer's bound)
  -- or at a key it gives twice: the walk does not go on until memory runs out. Counted: the
  -- iterator raises at its 100,000th step, so a walk that went on fails the count, not only the kind.
  it("refuses a table whose __pairs never ends at its first refused key, in a few steps", function()
    if _VERSION == "Lua 5.1" then return end -- (LuaJIT too: neither calls __pairs nor __len)
    local steps
    local function endless(gen, len)
      steps = 0
      return setmetatable({}, {
        __pairs = function(t)
          return function()
            steps = steps + 1
            if steps >= 100000 then error("NEVER ENDS") end
            return gen(steps)
          end, t, nil
        end,
        __len = len and function() return len end or nil,
      })
    end
    local unknown = function(i) return "unknown_option_" .. i, true end
    local c = eip.new(good)
    local id = "3fa1e2b4-1111-2222-3333-444455556666"
    local terms = { charge_mode = "bandwidth", size = 1 }
    local sign = { method = "GET", url = "http://h/", ak = "a", sk = "b" }
    local cases = {
      { "eip.new", "options", function() return eip.new(endless(unknown)) end, 1 },
      { "eip.new, a known key again and again", "options", function()
        return eip.new(endless(function() return "endpoint", emu.url end))
      end, 2 },
      { "auth", "auth", function()
        return eip.new{ endpoint = emu.url, project_id = emu.project_id, auth = endless(unknown) }
      end, 1 },
      { "eip.delete_bandwidth", "options", function() return eip.delete_bandwidth(endless(unknown)) end, 1 },
      { "delete_bandwidth", "call options", function() return c:delete_bandwidth(id, endless(unknown)) end, 1 },
      { "delete_bandwidths options", "options", function()
        return c:delete_bandwidths({ id }, endless(unknown))
      end, 1 },
      { "delete_bandwidths ids", "ids", function()
        return c:delete_bandwidths(endless(function(i) return i, "bw-" .. i end, 3))
      end, 4 },
      { "eip_ids entry", "eip_ids[1]", function()
        return c:remove_eips_from_bandwidth(id, { endless(unknown) }, terms)
      end, 1 },
      { "eip.metrics", "options", function() return eip.metrics(endless(unknown)) end, 1 },
      { "eip.sign", "options", function() return eip.sign(endless(unknown)) end, 1 },
      { "eip.sign headers", "headers", function()
        local o = {}
        for k, v in pairs(sign) do o[k] = v end
        o.headers = endless(function(i) return "X-H" .. i, "v" end)
        return eip.sign(o)
      end, 600 },
      { "eip.sign query", "query", function()
        local o = { headers = { ["X-Sdk-Date"] = "20261207T120000Z" } }
        for k, v in pairs(sign) do o[k] = v end
        o.query = endless(function(i) return "q" .. i, "v" end)
        return eip.sign(o)
      end, 300 },
    }
    for _, case in ipairs(cases) do
      local ok, err = pcall(case[3])
      assert.is_false(ok, case[1])
      assert.same({ "usage", case[2] }, { eip.is_error(err) and err.kind, eip.is_error(err) and err.argument },
        case[1] .. ": " .. tostring(err))
      assert.is_true(steps <= case[4], case[1] .. ": " .. steps .. " steps of the walk")
    end
    assert.equal(0, emu:stats().requests)
    c:close()
  end)

  -- Options a table gives through __index (defaults, a read-only proxy) are options as before
  -- the copy: a drain's confirm among them (dropped, the drain once moved EIPs unconfirmed).
  it("reads an option a table gives through __index, a drain's confirm among them", function()
    local proxy = setmetatable({}, { __index = good })
    local c = eip.new(proxy)
    local id = emu:create_bandwidth{ size = 5, publicip_ids = { "eip-confirm-1" } }
    local err = select(2, pcall(c.drain_and_delete_bandwidth, c, id, setmetatable({ charge_mode = "bandwidth",
      size = 5 }, { __index = { confirm = function() return false end } })))
    assert.same({ "refused", "not_confirmed" }, { err.kind, err.reason }, tostring(err))
    assert.equal(1, #emu:get_bandwidth(id).publicip_info)
    local result = c:delete_bandwidth(fixture.absent_id(7), setmetatable({}, { __index = { missing_ok = true } }))
    assert.same({ true, false, 404 }, { result.ok, result.deleted, result.status })
    c:close()
  end)

  it("accepts ids at the limits: 64 characters, dots, dashes, underscores", function()
    local c = eip.new(good)
    local ids = { string.rep("a", 64), "a.b_c-d", "...", "3fa1e2b4-1111-2222-3333-444455556666" }
    for _, id in ipairs(ids) do -- sent: the emulator's 400 for what is no UUID, its 404 for a UUID
      local ok, err = pcall(c.delete_bandwidth, c, id)
      assert.is_false(ok)
      assert.equal("http", err.kind, tostring(err))
      assert.equal(#id == 36 and 404 or 400, err.status, tostring(err))
    end
    c:close()
  end)

  local bad_tokens = {
    { "empty", "" }, { "a number", 1 }, { "with CR/LF", "tok\r\nX-Evil: 1" },
    { "with LF", "tok\nx" }, { "with NUL", "tok\0x" }, { "with a tab", "tok\tx" }, { "a table", {} },
    { "over 64 KiB", string.rep("t", 65537) },
  }
  for _, case in ipairs(bad_tokens) do
    it("rejects a token that is " .. case[1] .. " without echoing it", function()
      local err = usage_error("token", eip.new, with{ token = case[2] })
      if type(case[2]) == "string" and #case[2] > 2 then
        assert.is_nil(tostring(err):find(case[2], 1, true))
      end
    end)
  end

  it("without any credentials, lists what was looked for", function()
    local new = require("eip.client").new
    local no_env = function() return nil end
    local err = usage_error("credentials", new, with{ token = NONE, metadata_url = false }, no_env)
    for _, name in ipairs{ "token", "ak + sk", "auth", "HUAWEICLOUD_SDK_AK", "HUAWEICLOUD_SDK_SK",
                           "HUAWEICLOUD_SDK_SECURITY_TOKEN", "OS_AUTH_TOKEN" } do
      assert.is_truthy(err.message:find(name, 1, true), name)
    end
  end)

  local bad_endpoints = {
    { "a number", 8080 }, { "empty", "" }, { "without a scheme", "127.0.0.1:8080" },
    { "ftp", "ftp://127.0.0.1" }, { "file", "file:///etc/passwd" }, { "without a host", "http://" },
    { "with user info", "http://user:pw@127.0.0.1" }, { "with a query", "http://127.0.0.1/?a=1" },
    { "with a fragment", "http://127.0.0.1/#x" }, { "port 0", "http://127.0.0.1:0" },
    { "port 70000", "http://127.0.0.1:70000" }, { "a non-numeric port", "http://127.0.0.1:http" },
    { "CR/LF", "http://127.0.0.1\r\nHost: evil" }, { "spaces", "http://127.0.0.1 /x" },
    { "a '..' segment", "http://127.0.0.1/a/../b" }, { "escapes", "http://127.0.0.1/%2e%2e" },
    { "a leading dot host", "http://.evil" }, { "an IPv6 address with two '::'", "http://[::1::2]:1" },
    { "nine IPv6 groups", "http://[1:2:3:4:5:6:7:8:9]" }, { "a five-digit IPv6 group", "http://[12345::1]" },
    { "an IPv6 address ending in a lone ':'", "http://[1:]" }, { "an IPv4 part over 255", "http://[::ffff:1.2.3.256]" },
    -- IPv4 shorthand, which libcurl reads as 127.0.0.1 where the proxy decision saw no loopback
    { "an IPv4 address of two parts", "http://127.1:8080" }, { "an IPv4 address as one number", "http://2130706433" },
    { "an IPv4 address in hex", "http://0x7f000001" }, { "an IPv4 part in octal", "http://010.0.0.1" },
    { "an IPv4 address of five parts", "http://1.2.3.4.5" }, { "an IPv4 address part over 255", "http://256.0.0.1" },
    { "an IPv4 address with a hex part", "http://0x7f.1" },
  }
  for _, case in ipairs(bad_endpoints) do
    it("rejects an endpoint " .. case[1], function()
      usage_error("endpoint", eip.new, with{ endpoint = case[2] })
    end)
  end

  -- A host name DNS cannot carry (a label over 63 bytes, a name over 253) is taken: through a
  -- proxy the client never looks it up (the specs' own names that resolve nowhere are such:
  -- spec/support/dns.lua), and looked up it fails at once, a transport error of reason "dns".
  it("takes a host name DNS cannot carry, and fails its lookup as a dns transport error", function()
    local c = eip.new(with{ endpoint = "https://" .. string.rep("a", 64) .. ".test", max_attempts = 1 })
    local ok, err = pcall(c.delete_bandwidth, c, "bw-1")
    assert.is_false(ok)
    assert.same({ "transport", "dns" }, { err.kind, err.reason }, tostring(err))
  end)

  -- The host ended at the underscore, and what followed was read as a port.
  it("names a character no host name holds as the host's fault, not the port's", function()
    for _, endpoint in ipairs{ "http://a_b.test", "https://h!x.test:443", "http://h*.test/v" } do
      local err = usage_error("endpoint", eip.new, with{ endpoint = endpoint })
      assert.matches("has a host with a character a host name cannot hold", tostring(err), 1, true)
    end
    local err = usage_error("endpoint", eip.new, with{ endpoint = "http://127.0.0.1:http" })
    assert.matches("has an invalid port", tostring(err), 1, true)
  end)

  -- A zone id or an address that is none between the brackets was "has no valid host".
  it("says what is wrong with an IPv6 endpoint: a zone id, an invalid address, no ']'", function()
    for _, case in ipairs{
        { "https://[fe80::1%25eth0]", "has an IPv6 address with a zone id (the '%' part): zone ids" },
        { "http://[fe80::1%eth0]:8080", "zone ids (link-local scopes) are not supported" },
        { "https://[fe80::g]", "has an invalid IPv6 address (between '[' and ']'" },
        { "https://[]", "has an invalid IPv6 address" }, { "https://[::1", "without its closing ']'" },
        { "https://[::1]x", "has something other than :PORT after its IPv6 address's ']'" } } do
      local err = usage_error("endpoint", eip.new, with{ endpoint = case[1] })
      assert.matches(case[2], err.message, 1, true)
    end
  end)

  -- A label with a letter makes a name (to libcurl and inet_aton alike), digits after it or not.
  it("takes a host name whose last label is digits as a name", function()
    for _, endpoint in ipairs{ "http://host.10", "https://node-1.k8s.2:8443", "http://10.0.0.1" } do
      eip.new(with{ endpoint = endpoint }):close()
    end
  end)

  it("names an infinite, huge or NaN number as it is", function()
    local cases = {
      { "max_attempts", math.huge, "got inf" }, { "max_attempts", 1e300, "got 1e%+300" },
      { "max_attempts", 0 / 0, "got NaN" }, { "timeout", 0 / 0, "got NaN" }, { "timeout", -math.huge, "got %-inf" },
    }
    for _, case in ipairs(cases) do
      local err = usage_error(case[1], eip.new, with{ [case[1]] = case[2] })
      assert.matches(case[3] .. "$", tostring(err))
    end
  end)

  -- Lua 5.3+ writes a float as "1000000.0": the bounds (1e6) and a value given as a float are
  -- written as on every Lua.
  it("writes a range's bounds and the value given the same on every Lua", function()
    local cases = {
      { "rate", 2e6, "rate must be between 0.001 and 1000000, got 2000000" },
      { "low_speed_limit", 2e9, "low_speed_limit must be between 0 and 1000000000, got 2000000000" },
      { "timeout", -1.0, "timeout must be between 0.001 and 86400, got -1" },
    }
    for _, case in ipairs(cases) do
      assert.equal(case[3], usage_error(case[1], eip.new, with{ [case[1]] = case[2] }).message)
    end
    local c = eip.new(good)
    assert.equal("rate must be between 0.001 and 1000000, got 1e+20",
      usage_error("rate", c.delete_bandwidths, c, { "bw-1" }, { rate = 1e20 }).message)
    c:close()
  end)

  it("requires an endpoint or a region, not both", function()
    usage_error("endpoint", eip.new, with{ endpoint = NONE })
    usage_error("endpoint", eip.new, with{ region = "cn-north-4" })
  end)

  it("maps a region to its HTTPS VPC endpoint", function()
    local c = eip.new(with{ endpoint = NONE, region = "cn-north-4" })
    assert.equal("https://vpc.cn-north-4.myhuaweicloud.com", c.endpoint)
    c:close()
    for _, bad in ipairs{ "CN-NORTH-4", "cn_north", "cn-north-4.evil.com", "", 4, "x" } do
      usage_error("region", eip.new, with{ endpoint = NONE, region = bad })
    end
  end)

  it("normalises endpoints: trailing slash, scheme case, IPv6, base path", function()
    local cases = {
      { "HTTP://127.0.0.1:8080/", "http://127.0.0.1:8080" },
      { "http://[::1]:8080", "http://[::1]:8080" },
      { "http://[fe80::1:2:3:4]", "http://[fe80::1:2:3:4]" },
      { "http://[1:2:3:4:5:6:7:8]", "http://[1:2:3:4:5:6:7:8]" },
      { "http://[::ffff:127.0.0.1]:80", "http://[::ffff:127.0.0.1]:80" },
      { "https://proxy.example.com/eip/", "https://proxy.example.com/eip" },
      -- An IPv6 address libcurl would shorten (its inet_ntop form, used when shorter): the Host
      -- it sends. Kept as written, a cosocket sent another Host than libcurl, and AK/SK signed it.
      { "http://[0:0:0:0:0:0:0:1]:8080", "http://[::1]:8080" },
      { "http://[0::1]", "http://[::1]" },
      { "http://[::0001]", "http://[::1]" },
      { "http://[FE80:0:0:0:0:0:0:00AB]/eip", "http://[fe80::ab]/eip" },
      { "http://[1:0:0:2:0:0:0:3]", "http://[1:0:0:2::3]" },
      { "http://[1:0:2:0:3:0:4:0]", "http://[1:0:2:0:3:0:4:0]" },
      { "http://[0:0:0:0:0:ffff:7f00:1]", "http://[::ffff:127.0.0.1]" },
      { "http://[::FFFF:7F00:1]", "http://[::FFFF:7F00:1]" },
      { "http://[0:0:0:0:0:0:a00:1]", "http://[::10.0.0.1]" },
      { "http://[1:0:0:0:0:0:0:0]", "http://[1::]" }, { "http://[0:0:0:0:0:0:1:2]", "http://[::0.1.0.2]" },
      { "http://[::ABCD]", "http://[::ABCD]" },
    }
    for _, case in ipairs(cases) do
      local c = eip.new(with{ endpoint = case[1] })
      assert.equal(case[2], c.endpoint)
      c:close()
    end
  end)

  local bad_options = {
    { "timeout", 0 }, { "timeout", -1 }, { "timeout", "30" }, { "timeout", 0 / 0 }, { "timeout", 1e9 },
    { "connect_timeout", 0 }, { "connect_timeout", {} },
    { "max_attempts", 0 }, { "max_attempts", 1.5 }, { "max_attempts", "1" },
    { "max_body", 10 }, { "max_body", 1e12 }, { "max_body", 4096.5 },
    { "insecure", "yes" }, { "insecure", 1 }, { "ca_file", 1 }, { "ca_file", "" },
  }
  for _, case in ipairs(bad_options) do
    it(string.format("rejects %s = %s", case[1], tostring(case[2])), function()
      usage_error(case[1], eip.new, with{ [case[1]] = case[2] })
    end)
  end

  -- `opts.x or default` would take false for "not given": false must be an error like any other
  -- value that is not a number.
  local numeric_options = { "timeout", "connect_timeout", "deadline", "low_speed_limit", "low_speed_time",
    "max_attempts", "backoff_base", "backoff_cap", "retry_after_cap", "max_body", "rate" }
  for _, name in ipairs(numeric_options) do
    it("rejects " .. name .. " = false, naming it", function()
      local err = usage_error(name, eip.new, with{ [name] = false })
      assert.matches("got a boolean$", err.message)
    end)
  end

  it("rejects false for burst, region and project_id, naming each (not a variable)", function()
    usage_error("burst", eip.new, with{ rate = 5, burst = false })
    usage_error("region", eip.new, with{ endpoint = NONE, region = false })
    usage_error("project_id", eip.new, with{ project_id = false })
  end)

  it("rejects false for the options of a call, and for its options table", function()
    local c = eip.new(good)
    usage_error("concurrency", c.delete_bandwidths, c, { "bw-1" }, { concurrency = false })
    usage_error("rate", c.delete_bandwidths, c, { "bw-1" }, { rate = false })
    usage_error("limit", c.list_bandwidths, c, { limit = false })
    usage_error("list options", c.list_bandwidths, c, false)
    usage_error("call options", c.delete_bandwidth, c, "bw-1", false)
    usage_error("options", c.delete_bandwidths, c, { "bw-1" }, false)
    usage_error("options", c.plan_drain, c, "bw-1", false)
    usage_error("options", c.drain_and_delete_bandwidth, c, "bw-1", false)
    usage_error("options", c.remove_eips_from_bandwidth, c, "bw-1", { "eip-1" }, false)
    usage_error("size", c.plan_drain, c, "bw-1", { charge_mode = "bandwidth", size = false })
    c:close()
  end)

  -- Checked by eip.new, not only when the metadata service is asked (after every other place).
  local bad_metadata_urls = { { "a number", 5 }, { "garbage", "garbage" }, { "ftp", "ftp://x" }, { "true", true },
    { "a table", {} }, { "empty", "" }, { "with a query", "http://169.254.169.254/?x=1" } }
  for _, case in ipairs(bad_metadata_urls) do
    it("rejects a metadata_url that is " .. case[1] .. ", even when a token is given", function()
      usage_error("metadata_url", eip.new, with{ metadata_url = case[2] })
    end)
  end

  it("accepts metadata_url = false or an http(s) URL", function()
    for _, v in ipairs{ false, "http://169.254.169.254", "https://metadata.example.test/" } do
      eip.new(with{ metadata_url = v }):close()
    end
  end)

  -- libcurl would read the CA file at the first request: a FIFO would block the call there, a
  -- directory or a missing file would be a TLS error after connecting.
  it("rejects a ca_file that is a directory, a FIFO, a device or missing, naming it", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert.is_true((host.execute("mkdir " .. host.quote(dir) .. " && mkfifo " .. host.quote(dir .. "/fifo"))))
    local cases = { { dir, "a directory" }, { dir .. "/fifo", "a FIFO" }, { "/dev/zero", "a character device" },
      { dir .. "/missing.pem", "names no file" } }
    for _, case in ipairs(cases) do
      local err = usage_error("ca_file", eip.new, with{ ca_file = case[1] })
      assert.is_truthy(err.message:find(case[2], 1, true), err.message)
      assert.is_truthy(err.message:find(case[1], 1, true), err.message)
    end
    host.execute("rm -rf " .. host.quote(dir))
  end)

  it("rejects unknown options so typos fail loudly", function()
    local err = usage_error("options", eip.new, with{ tokn = "x" })
    assert.matches('unknown option "tokn"', err.message)
    assert.matches("token", err.message)
    usage_error("options", eip.new, with{ [1] = "positional" })
    usage_error("options", eip.new, "http://127.0.0.1")
    usage_error("options", eip.new, nil)
    usage_error("options", eip.delete_bandwidth, with{ bandwidth = "bw-1" })
  end)

  it("does not keep the token where printing or iterating the client would show it", function()
    local c = eip.new(good)
    assert.is_nil(tostring(c):find(emu.token, 1, true))
    for _, v in pairs(c) do
      if type(v) == "string" then assert.is_nil(v:find(emu.token, 1, true)) end
    end
    c:close()
  end)
end)
