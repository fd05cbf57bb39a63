-- Regions and credentials as the official SDKs resolve them: the region table and its
-- overrides, the profile file, the ECS metadata service (served by the emulator on loopback),
-- the project lookup for AK/SK, and the "not found" error that lists every place looked at.
local eip = require "eip"
local client_mod = require "eip.client"
local fixture = require "spec.support.fixture"
local nginx = require "spec.support.nginx"
local raised = require("spec.support.assertions").raised
local host = require "spec.support.host"
local socket = require "socket"

local env_of = require("spec.support.assertions").env_of

describe("regions", function()
  it("has the official VPC table: 34 regions, IAM on .eu for eu-west-101, global IAM for six", function()
    local list = eip.regions()
    assert.equal(34, #list)
    local by = {}
    for i, r in ipairs(list) do
      by[r.name] = r
      if i > 1 then assert.is_true(list[i - 1].name < r.name, "sorted") end
      assert.equal("https://vpc." .. r.name .. ".myhuaweicloud.com", r.vpc_endpoint)
    end
    assert.equal("https://iam.eu-west-101.myhuaweicloud.eu", by["eu-west-101"].iam_endpoint)
    for _, name in ipairs{ "af-north-1", "ap-southeast-5", "cn-north-11", "cn-south-4", "cn-southwest-3",
                           "ru-northwest-2" } do
      assert.equal("https://iam.myhuaweicloud.com", by[name].iam_endpoint, name)
    end
    assert.equal("https://iam.cn-north-4.myhuaweicloud.com", by["cn-north-4"].iam_endpoint)
    list[1].name = "changed"
    assert.is_not.equal("changed", eip.regions()[1].name, "a copy")
  end)

  it("maps every region of the table to its endpoint, sending nothing", function()
    for _, r in ipairs(eip.regions()) do
      local c = client_mod.new({ region = r.name, project_id = "p1", token = "t-0123456789" }, env_of{})
      assert.equal(r.vpc_endpoint, c.endpoint)
      c:close()
    end
  end)

  it("refuses an unknown region with a suggestion and the way to reach a region it does not know", function()
    local err = raised(client_mod.new, { region = "cn-nort-4", project_id = "p1", token = "t-0123456789" }, env_of{})
    assert.equal("region", err.argument)
    assert.matches('did you mean "cn%-north%-4"%?', err.message)
    assert.matches("endpoint", err.message)
    assert.matches("HUAWEICLOUD_SDK_REGION_EIP_CN_NORT_4", err.message)
    -- (the known ones listed, as the official SDKs do: a name with no close match, too)
    err = raised(client_mod.new, { region = "xx-lab-1", project_id = "p1", token = "t-0123456789" }, env_of{})
    assert.matches("; known regions: ae%-ad%-1, af%-north%-1, .*, cn%-southwest%-3, .*, tr%-west%-1$", err.message)
    local names = {}
    for _, r in ipairs(eip.regions()) do names[#names + 1] = r.name end
    assert.truthy(err.message:find(table.concat(names, ", "), 1, true))
  end)

  it("honours HUAWEICLOUD_SDK_REGION_VPC_<REGION>, for known and unknown regions (first of a list)", function()
    local env = env_of{ HUAWEICLOUD_SDK_REGION_VPC_CN_NORTH_4 = "https://vpc.example.test, https://other.test",
      HUAWEICLOUD_SDK_REGION_VPC_XX_LAB_1 = "http://127.0.0.1:9" }
    local c = client_mod.new({ region = "cn-north-4", project_id = "p1", token = "t-0123456789" }, env)
    assert.equal("https://vpc.example.test", c.endpoint)
    local lab = client_mod.new({ region = "xx-lab-1", project_id = "p1", token = "t-0123456789" }, env)
    assert.equal("http://127.0.0.1:9", lab.endpoint)
  end)

  it("takes HUAWEICLOUD_SDK_IAM_ENDPOINT without a scheme as https, as the official SDKs do", function()
    local regions = require "eip.regions"
    assert.equal("https://iam.example.test", regions.iam_endpoint("cn-north-4",
      env_of{ HUAWEICLOUD_SDK_IAM_ENDPOINT = "iam.example.test" }))
    assert.equal("http://127.0.0.1:9", regions.iam_endpoint("cn-north-4",
      env_of{ HUAWEICLOUD_SDK_IAM_ENDPOINT = "http://127.0.0.1:9" }))
  end)

  -- DeleteSharedBandwidth belongs to the official SDKs' EIP client, whose region chain reads
  -- HUAWEICLOUD_SDK_REGION_EIP_<REGION>: it comes first.
  it("honours HUAWEICLOUD_SDK_REGION_EIP_<REGION> before the VPC variable", function()
    local env = env_of{ HUAWEICLOUD_SDK_REGION_VPC_CN_NORTH_4 = "https://vpc.example.test",
      HUAWEICLOUD_SDK_REGION_EIP_CN_NORTH_4 = "https://eip-private.example.test",
      HUAWEICLOUD_SDK_REGION_EIP_XX_LAB_1 = "http://127.0.0.1:9, http://127.0.0.1:10" }
    local c = client_mod.new({ region = "cn-north-4", project_id = "p1", token = "t-0123456789" }, env)
    assert.equal("https://eip-private.example.test", c.endpoint)
    local lab = client_mod.new({ region = "xx-lab-1", project_id = "p1", token = "t-0123456789" }, env)
    assert.equal("http://127.0.0.1:9", lab.endpoint)
    local err = raised(client_mod.new, { region = "cn-north-4", project_id = "p1", token = "t-0123456789" },
      env_of{ HUAWEICLOUD_SDK_REGION_EIP_CN_NORTH_4 = "ftp://x" })
    assert.equal("HUAWEICLOUD_SDK_REGION_EIP_CN_NORTH_4", err.argument)
    -- A host name without a scheme is https, as the official SDKs take it.
    c = client_mod.new({ region = "cn-north-4", project_id = "p1", token = "t-0123456789" },
      env_of{ HUAWEICLOUD_SDK_REGION_EIP_CN_NORTH_4 = " vpc-private.example.test:8443 , x" })
    assert.equal("https://vpc-private.example.test:8443", c.endpoint)
  end)
end)

describe("credentials", function()
  local fx = fixture.emulator()
  local emu, dir

  setup(function()
    emu = fx.start()
    dir = nginx.capture("mktemp -d")
  end)
  teardown(function()
    fx.stop()
    os.execute("rm -rf " .. nginx.shell_quote(dir))
  end)
  before_each(fx.reset)

  local function profile(text, mode)
    local path = dir .. "/credentials"
    nginx.write_file(path, text)
    os.execute(string.format("chmod %s %s", mode or "600", nginx.shell_quote(path)))
    return path
  end

  -- A client whose environment holds only `vars` (no credentials of the caller's shell).
  local function new(opts, vars)
    local o = { endpoint = emu.url, timeout = 5 }
    for k, v in pairs(opts or {}) do o[k] = v end
    vars = vars or {}
    vars.HOME = vars.HOME or dir .. "/home-without-profile"
    return client_mod.new(o, env_of(vars))
  end

  describe("the profile file", function()
    it("gives AK/SK and the project ([basic]), from HUAWEICLOUD_SDK_CREDENTIALS_FILE", function()
      local path = profile("# lua-eip spec\n[basic]\nak = " .. emu.ak .. "\nsk = " .. emu.sk
        .. "\nproject_id = " .. emu.project_id .. "\n\n[other]\nak = x\n")
      local c = new({}, { HUAWEICLOUD_SDK_CREDENTIALS_FILE = path })
      assert.equal("aksk", c.auth)
      assert.equal(emu.project_id, c.project_id)
      assert.equal(204, c:delete_bandwidth(emu:create_bandwidth{ size = 1 }).status)
      c:close()
    end)

    it("is found at ~/.huaweicloud/credentials, with a security token for temporary keys", function()
      os.execute("mkdir -p " .. nginx.shell_quote(dir .. "/home/.huaweicloud"))
      nginx.write_file(dir .. "/home/.huaweicloud/credentials", "[basic]\nak = " .. emu.temp_ak .. "\nsk = "
        .. emu.temp_sk .. "\nsecurity_token = " .. emu.security_token .. "\nproject_id = " .. emu.project_id .. "\n")
      os.execute("chmod 600 " .. nginx.shell_quote(dir .. "/home/.huaweicloud/credentials"))
      local c = new({}, { HOME = dir .. "/home" })
      assert.equal(204, c:delete_bandwidth(emu:create_bandwidth{ size = 1 }).status)
      c:close()
    end)

    it("warns when others can read it, like ssh, and never prints a value", function()
      local path = profile("[basic]\nak = " .. emu.ak .. "\nsk = " .. emu.sk .. "\nproject_id = " .. emu.project_id
        .. "\n", "644")
      local lines = {}
      local c = new({ log = function(l) lines[#lines + 1] = l end }, { HUAWEICLOUD_SDK_CREDENTIALS_FILE = path })
      c:close()
      assert.matches("can be read by others %(mode 644%): chmod 600 it", table.concat(lines, "\n"))
      assert.is_nil(table.concat(lines, "\n"):find(emu.sk, 1, true))
    end)

    it("is a usage error naming file and line when malformed, without the value", function()
      local path = profile("[basic]\nak = " .. emu.ak .. "\nthis line is " .. emu.sk .. "\n")
      local err = raised(new, {}, { HUAWEICLOUD_SDK_CREDENTIALS_FILE = path })
      assert.equal("credentials file", err.argument)
      assert.matches(path:gsub("%p", "%%%0") .. ", line 3", err.message)
      assert.is_nil(tostring(err):find(emu.sk, 1, true))
      assert.equal(0, emu:stats().requests)
    end)

    it("is passed over without both ak and sk, as the official SDKs do (a template left empty)", function()
      for _, case in ipairs{ { "[basic]\nak = " .. emu.ak .. "\n", "sk" }, { "[basic]\nak =\nsk =\n", "ak and sk" },
          { "[basic]\n", "ak and sk" }, { "[basic]\nsk = " .. emu.sk .. "\n", "ak" } } do
        local path = profile(case[1])
        local err = raised(new, { metadata_url = false }, { HUAWEICLOUD_SDK_CREDENTIALS_FILE = path })
        assert.equal("credentials", err.argument)
        assert.matches("the profile file " .. path:gsub("%p", "%%%0") .. " %[basic%] %(no " .. case[2]
          .. ": passed over%)", err.message)
        assert.is_nil(tostring(err):find(emu.sk, 1, true))
        -- the next place, the metadata service, is asked
        local c = new({ project_id = emu.project_id, metadata_url = emu.metadata_url },
          { HUAWEICLOUD_SDK_CREDENTIALS_FILE = path })
        assert.equal("metadata", c.auth)
        assert.equal(204, c:delete_bandwidth(emu:create_bandwidth{ size = 1 }).status)
        c:close()
      end
    end)

    it("may start with a UTF-8 byte order mark", function()
      local path = profile("\239\187\191[basic]\r\nak = " .. emu.ak .. "\r\nsk = " .. emu.sk .. "\r\n")
      local c = new({ project_id = emu.project_id }, { HUAWEICLOUD_SDK_CREDENTIALS_FILE = path })
      assert.equal("aksk", c.auth)
      assert.equal(204, c:delete_bandwidth(emu:create_bandwidth{ size = 1 }).status)
      c:close()
    end)

    -- The official SDKs take an identity provider and an OIDC token file before AK/SK; lua-eip
    -- cannot use them, and must not act as another identity instead.
    it("refuses federated credentials, in the file and in the environment, naming them", function()
      local path = profile("[basic]\nidp_id = idp-1\nid_token_file = /run/token\nak = " .. emu.ak .. "\nsk = "
        .. emu.sk .. "\n")
      local err = raised(new, { project_id = emu.project_id }, { HUAWEICLOUD_SDK_CREDENTIALS_FILE = path })
      assert.equal("credentials file", err.argument)
      assert.matches("idp_id and id_token_file name federated credentials", err.message)
      local vars = { HUAWEICLOUD_SDK_IDP_ID = "idp-1", HUAWEICLOUD_SDK_ID_TOKEN_FILE = "/run/token",
        HUAWEICLOUD_SDK_AK = emu.ak, HUAWEICLOUD_SDK_SK = emu.sk }
      err = raised(new, { project_id = emu.project_id }, vars)
      assert.equal("HUAWEICLOUD_SDK_IDP_ID", err.argument)
      assert.matches("and HUAWEICLOUD_SDK_ID_TOKEN_FILE name federated credentials", err.message)
      -- credentials given as options are used as given
      local c = new({ project_id = emu.project_id, token = emu.token }, vars)
      assert.equal("token", c.auth)
      c:close()
      assert.equal(0, emu:stats().requests)
    end)

    -- Reading a directory gave a raw Lua error, a FIFO waited for a writer for ever, a device
    -- would be read without end: only a regular file is opened, and only 64 KiB of it read.
    it("is a usage error naming it when it is not a regular file, and never opened then", function()
      local fifo = dir .. "/fifo"
      assert.is_true((host.execute("mkfifo " .. nginx.shell_quote(fifo))))
      -- A writer for a reader that should never come (gone after 10 s): were the FIFO opened, the
      -- open would return when it comes and the case fail, rather than wait for ever.
      host.execute("timeout 10 sh -c " .. nginx.shell_quote(": > " .. nginx.shell_quote(fifo)) .. " >/dev/null 2>&1 &")
      local cases = { { dir, "is a directory" }, { fifo, "is a FIFO (named pipe)" },
        { "/dev/zero", "is a character device" } }
      for _, case in ipairs(cases) do
        local err = raised(new, { project_id = emu.project_id, metadata_url = false },
          { HUAWEICLOUD_SDK_CREDENTIALS_FILE = case[1] })
        assert.equal("usage", err.kind)
        assert.equal("credentials file", err.argument)
        assert.equal("credentials file " .. case[1] .. " " .. case[2]
          .. ", not a regular file: name the credentials file itself", err.message)
      end
      -- ~/.huaweicloud/credentials made a directory by mistake
      os.execute("mkdir -p " .. nginx.shell_quote(dir .. "/dirhome/.huaweicloud/credentials"))
      local err = raised(new, { project_id = emu.project_id, metadata_url = emu.metadata_url },
        { HOME = dir .. "/dirhome" })
      assert.equal("credentials file", err.argument)
      assert.matches("/dirhome/.huaweicloud/credentials is a directory", err.message, 1, true)
      host.execute("timeout 5 cat " .. nginx.shell_quote(fifo) .. " >/dev/null 2>&1") -- lets the writer go
      os.remove(fifo)
      assert.equal(0, emu:stats().requests)
    end)

    it("is a usage error when bigger than 64 KiB, which no credentials file is; never printing it", function()
      local filler = "# " .. string.rep("x", 1000) .. "\n"
      local path = profile("[basic]\nak = " .. emu.ak .. "\nsk = " .. emu.sk .. "\n" .. string.rep(filler, 66))
      local err = raised(new, { project_id = emu.project_id }, { HUAWEICLOUD_SDK_CREDENTIALS_FILE = path })
      assert.equal("credentials file", err.argument)
      assert.matches("is too big for a credentials file %(%d+ bytes; at most 65536", err.message)
      assert.is_nil(tostring(err):find(emu.sk, 1, true))
      -- 64 KiB exactly is read
      local text = "[basic]\nak = " .. emu.ak .. "\nsk = " .. emu.sk .. "\n"
      path = profile(text .. "#" .. string.rep("x", 65536 - #text - 2) .. "\n")
      local c = new({ project_id = emu.project_id }, { HUAWEICLOUD_SDK_CREDENTIALS_FILE = path })
      assert.equal("aksk", c.auth)
      c:close()
      assert.equal(0, emu:stats().requests)
    end)

    it("may be /dev/null: read as empty, passed over", function()
      local err = raised(new, { metadata_url = false }, { HUAWEICLOUD_SDK_CREDENTIALS_FILE = "/dev/null" })
      assert.equal("credentials", err.argument)
      assert.is_truthy(err.message:find("the profile file /dev/null (no [basic] section)", 1, true), err.message)
    end)

    -- Without HOME (a cron job, env -i, a systemd unit) there is no file to look at: once said
    -- "then the profile file no HOME to look in; then ...".
    it("is said to be nowhere to look when HOME is not set, nor its variable", function()
      local ok, err = pcall(client_mod.new, { endpoint = emu.url, project_id = emu.project_id, metadata_url = false },
        env_of({}))
      assert.is_false(ok)
      assert.equal("credentials", err.argument)
      assert.matches("then OS_AUTH_TOKEN; then no profile file (HOME is not set, nor "
        .. "HUAWEICLOUD_SDK_CREDENTIALS_FILE); then not the ECS metadata service", err.message, 1, true)
    end)

    it("comes after the environment", function()
      local path = profile("[basic]\nak = WRONGAKWRONGAKWRONG1\nsk = wrong\n")
      local c = new({ project_id = emu.project_id },
        { HUAWEICLOUD_SDK_CREDENTIALS_FILE = path, OS_AUTH_TOKEN = emu.token })
      assert.equal("token", c.auth)
      c:close()
    end)
  end)

  describe("the ECS metadata service", function()
    it("gives temporary AK/SK when nothing else does (session token first)", function()
      local c = new({ project_id = emu.project_id, metadata_url = emu.metadata_url })
      assert.equal("metadata", c.auth)
      local id = emu:create_bandwidth{ size = 1 }
      assert.equal(204, c:delete_bandwidth(id).status)
      assert.equal(204, c:delete_bandwidth(emu:create_bandwidth{ size = 1 }).status)
      c:close()
      local s = emu:stats()
      assert.same({ 1, 1, 0 }, { s.metadata_tokens_issued, s.metadata_credentials_issued, s.auth_failures })
      local sent = emu:requests()
      assert.equal("PUT", sent[1].method)
      assert.equal("21600", sent[1].headers["x-metadata-token-ttl-seconds"])
      assert.is_string(sent[2].headers["x-metadata-token"])
      assert.is_string(sent[3].headers["x-security-token"])
    end)

    -- A session token sent with a line end after it (a body written with a newline) is that token:
    -- it was dropped as malformed, and the keys asked for without one.
    it("takes a session token without the blanks around it", function()
      emu:inject{ method = "PUT", path = "^/meta%-data/latest/api/token$", status = 200, content_type = "text/plain",
        body = " tok-42abc\r\n" }
      local c = new({ project_id = emu.project_id, metadata_url = emu.metadata_url, max_attempts = 1 })
      pcall(c.delete_bandwidth, c, "bw-1")
      c:close()
      local sent = emu:requests()
      assert.equal("GET", sent[2].method)
      assert.equal("tok-42abc", sent[2].headers["x-metadata-token"])
    end)

    it("is read from EIP_METADATA_URL, and asked without a token when the token route is absent", function()
      emu:set_knobs{ metadata_token_status = 404 }
      local c = new({ project_id = emu.project_id }, { EIP_METADATA_URL = emu.metadata_url })
      assert.equal(204, c:delete_bandwidth(emu:create_bandwidth{ size = 1 }).status)
      c:close()
      assert.equal(1, emu:stats().metadata_credentials_issued)
    end)

    it("refreshes the temporary keys before they expire", function()
      -- (each fetch new keys: with the service's same keys until they expire, a refresh in the
      -- last milliseconds of a 3 s pair got that pair, which expired on the way: a 401 under load)
      emu:set_knobs{ metadata_credential_ttl = 3, metadata_same_keys = 0 }
      local c = new({ project_id = emu.project_id, metadata_url = emu.metadata_url })
      for _ = 1, 4 do
        assert.equal(204, c:delete_bandwidth(emu:create_bandwidth{ size = 1 }).status)
        socket.sleep(1)
      end
      c:close()
      local s = emu:stats()
      assert.is_true(s.metadata_credentials_issued >= 2, "issued " .. s.metadata_credentials_issued)
      assert.equal(0, s.auth_failures)
    end)

    -- The service's clock 10 minutes behind (within the gateway's 15 for X-Sdk-Date), its keys
    -- for 5: their expiry is past by this machine's clock as they come. Taken as unknown (as
    -- IAM's token is), not as due, which fetched them again for every call.
    it("takes keys whose expiry is already past by this clock as of unknown expiry, said once", function()
      emu:set_clock_offset(-600)
      emu:set_knobs{ metadata_credential_ttl = 300 }
      local logged = {}
      local c = new({ project_id = emu.project_id, metadata_url = emu.metadata_url,
        log = function(line) logged[#logged + 1] = line end })
      local ok, err = pcall(function()
        for _ = 1, 5 do assert.equal(204, c:delete_bandwidth(emu:create_bandwidth{ size = 1 }).status) end
      end)
      c:close()
      emu:set_clock_offset(0)
      assert(ok, err)
      assert.equal(1, emu:stats().metadata_credentials_issued)
      local said = 0
      for _, line in ipairs(logged) do
        if line:find("already past by this machine's clock", 1, true) then said = said + 1 end
      end
      assert.equal(1, said)
    end)

    -- A renewal blocks the process with libcurl: a batch's transfers in flight, not driven
    -- meanwhile, timed out with their answers waiting (deletes carried out, reported failed,
    -- their retries answered 404). What is in flight now ends before the renewal.
    it("renews keys mid-batch only once the batch's transfers in flight have ended", function()
      emu:set_knobs{ metadata_credential_ttl = 4 } -- renewed 2 s after they are fetched
      local c = new({ project_id = emu.project_id, metadata_url = emu.metadata_url, timeout = 2.5 })
      assert.equal(204, c:delete_bandwidth(emu:create_bandwidth{ size = 1 }).status)
      local ids = emu:create_bandwidths(20)
      emu:inject{ method = "DELETE", action = "slow", delay = 0.5, times = -1 }
      -- (a renewal of 3 s: longer than a delete's timeout, each of its two requests within it)
      emu:inject{ method = "PUT", path = "^/meta%-data/latest/api/token$", action = "slow", delay = 1.5, times = -1 }
      emu:inject{ method = "GET", path = "^/openstack/latest/securitykey$", action = "slow", delay = 1.5, times = -1 }
      local results, summary = c:delete_bandwidths(ids, { concurrency = 4 })
      c:close()
      local failed = {}
      for _, r in ipairs(results) do
        if not r.ok then failed[#failed + 1] = tostring(r) end
      end
      assert.same({ 20, 0 }, { summary.deleted, summary.failed }, table.concat(failed, "\n"))
      assert.is_true(emu:stats().metadata_credentials_issued >= 2, "the keys were renewed during the batch")
    end)

    -- The same for a renewal tried again after one that failed (the keys still valid): it went
    -- out as the next id was signed, with transfers in flight, which timed out (carried out).
    -- (#once: 11 s of waiting for keys that expire in real seconds; the renewal's code runs
    -- under every interpreter in the case above)
    it("tries a failed renewal again mid-batch only once the transfers in flight have ended #once", function()
      local auth = require "eip.auth"
      local hold = auth.TRANSIENT_FAILURE_HOLD
      auth.TRANSIENT_FAILURE_HOLD = 1
      local ok, err = pcall(function()
        emu:set_knobs{ metadata_credential_ttl = 12 } -- renewed after 6 s, a failed renewal tolerated to 9 s
        local c = new({ project_id = emu.project_id, metadata_url = emu.metadata_url, timeout = 1.5 })
        local t0 = socket.gettime()
        assert.equal(204, c:delete_bandwidth(emu:create_bandwidth{ size = 1 }).status)
        local ids = emu:create_bandwidths(40)
        socket.sleep(math.max(0, t0 + 6.2 - socket.gettime()))
        emu:inject{ method = "PUT", path = "^/meta%-data/latest/api/token$", action = "slow", delay = 2, times = -1 }
        -- (deletes of 0.3 to 1.05 s at concurrency 4: when the failure's hold ends, a slot frees
        -- while others are in flight)
        local delays = { 0.3, 0.55, 0.8, 1.05 }
        for i = 1, 40 do emu:inject{ method = "DELETE", action = "slow", delay = delays[(i - 1) % 4 + 1] } end
        local results = c:delete_bandwidths(ids, { concurrency = 4 })
        c:close()
        local sent = 0
        for i, r in ipairs(results) do
          if r.ok then sent = sent + 1 end
          -- a delete that failed was not sent (the renewal's failure stands): none timed out
          -- while a renewal held the process, nor was reported failed when carried out
          if not r.ok then
            assert.is_true(r.not_sent, tostring(r))
            assert.is_not_nil(emu:get_bandwidth(ids[i]), tostring(r))
          end
        end
        assert.is_true(sent > 0, "the old keys signed some deletes")
      end)
      auth.TRANSIENT_FAILURE_HOLD = hold
      assert(ok, err)
    end)

    -- Refused signatures are counted per key, as the gateway counts them: keys the service hands
    -- out in turn (A, B, A, ...: its replicas during a rotation) each started afresh at every
    -- change, and each was refused without end (a review's audit: 12 and 12 in 24 calls). Each
    -- key's count goes on now: three refused at most, whichever came between.
    it("counts each of the keys handed out in turn on its own: never more than three refused", function()
      local expires = os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() + 3600)
      local function keys(letter)
        return { credential = { access = "AKALTERNATEKEY" .. letter .. "0001", secret = string.rep(letter, 40),
          securitytoken = "st-" .. letter, expires_at = expires } }
      end
      for i = 1, 30 do
        emu:inject{ method = "GET", path = "^/openstack/latest/securitykey$", status = 200,
          body = keys(i % 2 == 1 and "A" or "B") }
      end
      local c = new({ project_id = emu.project_id, metadata_url = emu.metadata_url, max_attempts = 2 })
      for _ = 1, 12 do pcall(c.delete_bandwidth, c, "bw-1") end
      c:close()
      local refused = {}
      for _, r in ipairs(emu:requests()) do
        local ak = r.method == "DELETE" and (r.headers.authorization or ""):match("Access=(%w+)")
        if ak then refused[ak] = (refused[ak] or 0) + 1 end
      end
      assert.same({ AKALTERNATEKEYA0001 = 3, AKALTERNATEKEYB0001 = 3 }, refused)
    end)

    -- An AK that holds the SK, from the service: its unusable answer, held as its other failures
    -- ("credentials not found", the answer the cause), as keys with a space in them are (it was a
    -- usage error naming "metadata credential.access", never held: each call asked again).
    it("takes keys whose AK holds the SK as an unusable answer, held", function()
      emu:inject{ method = "GET", path = "^/openstack/latest/securitykey$", status = 200, times = -1,
        body = { credential = { access = "AK" .. emu.temp_sk:sub(1, 18), secret = emu.temp_sk,
          securitytoken = emu.security_token, expires_at = os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() + 3600) } } }
      local c = new({ project_id = emu.project_id, metadata_url = emu.metadata_url })
      for _ = 1, 3 do
        local err = raised(c.delete_bandwidth, c, "bw-1")
        assert.equal("credentials", err.argument, tostring(err))
        assert.matches("Unusable Answer", tostring(err.cause and err.cause.reason), 1, true)
        assert.is_nil(tostring(err):find(emu.temp_sk:sub(1, 18), 1, true))
      end
      c:close()
      local asked = 0
      for _, r in ipairs(emu:requests()) do
        if r.uri:find("securitykey", 1, true) then asked = asked + 1 end
      end
      assert.equal(1, asked)
      assert.equal(0, emu:stats().requests - asked - emu:stats().metadata_tokens_issued)
    end)

    -- Keys in their last second are waited out before new ones are asked for: within the call's
    -- deadline (the wait, up to 2.5 s, ignored it).
    it("waits out keys in their last second only within the call's deadline", function()
      emu:inject{ method = "GET", path = "^/openstack/latest/securitykey$", status = 200, times = -1,
        body = { credential = { access = emu.temp_ak, secret = emu.temp_sk, securitytoken = emu.security_token,
          expires_at = os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() + 1) } } }
      local c = new({ project_id = emu.project_id, metadata_url = emu.metadata_url, deadline = 0.5 })
      local t0 = socket.gettime()
      local err = raised(c.delete_bandwidth, c, "bw-1")
      local took = socket.gettime() - t0
      c:close()
      assert.is_true(took < 1, "the deadline of 0.5 s ended it, not the keys' expiry: " .. took)
      assert.same({ "transport", "timeout", true }, { err.kind, err.reason, err.not_sent })
      assert.equal(0, emu:stats().auth_failures)
    end)

    -- Keys with seconds left when fetched: a failed renewal keeps them while they are valid and
    -- says so in the log. Its line formatted a fractional slack with %d, which raises on Lua
    -- 5.3+: the call died with a raw error instead.
    it("keeps short-lived keys whose renewal failed, and logs it, while they are valid", function()
      local t = os.time()
      emu:inject{ method = "GET", path = "^/openstack/latest/securitykey$", status = 200,
        body = { credential = { access = emu.temp_ak, secret = emu.temp_sk, securitytoken = emu.security_token,
          expires_at = os.date("!%Y-%m-%dT%H:%M:%SZ", t + 3) } } }
      emu:inject{ method = "GET", path = "^/openstack/latest/securitykey$", status = 500, times = -1 }
      local lines = {}
      local c = new({ project_id = emu.project_id, metadata_url = emu.metadata_url,
        log = function(line) lines[#lines + 1] = line end })
      assert.equal(204, c:delete_bandwidth(emu:create_bandwidth{ size = 1 }).status)
      while os.time() < t + 2 do socket.sleep(0.05) end -- due for renewal, still valid
      assert.is_true(os.time() < t + 3, "the machine was too slow for this check")
      assert.equal(204, c:delete_bandwidth(emu:create_bandwidth{ size = 1 }).status)
      c:close()
      assert.matches("renewing the credentials failed", table.concat(lines, "\n"), 1, true)
    end)

    -- A 401 whose new keys the service then refuses: the call's 401, the refresh's failure as
    -- its cause, said as a renewal (not the start-up search, whose reason tostring cut off).
    it("a refresh the service fails: the 401, caused by keys not renewed", function()
      local c = new({ project_id = emu.project_id, metadata_url = emu.metadata_url, max_attempts = 2 })
      assert.equal(204, c:delete_bandwidth(emu:create_bandwidth{ size = 1 }).status)
      emu:inject{ method = "DELETE", status = 401,
        body = { error_code = "APIGW.0301", error_msg = "Incorrect IAM authentication information" } }
      emu:inject{ method = "PUT", path = "^/meta%-data/latest/api/token", status = 500, times = -1 }
      local err = raised(c.delete_bandwidth, c, "bw-1")
      c:close()
      assert.same({ 401, "credentials" }, { err.status, err.cause and err.cause.kind })
      assert.matches("not renewed: the ECS metadata service at " .. emu.metadata_url, err.cause.message, 1, true)
      assert.matches("(it answered 500)", tostring(err), 1, true)
    end)

    -- Keys in use that expire while the service fails: no usage error (a bad argument, which
    -- the eip command showed as "NOT SENT <id> invalid"), nor a batch stopped "after an
    -- authentication failure": each call is not sent, of kind "credentials", saying the renewal
    -- failed and why (the service's error its cause), retryable when that is (a 5xx passes; a
    -- refusal, its text redacted of the keys it would renew, does not). The batch goes on: the
    -- failure is held a few seconds, then asked again, and an outage that passed lets it finish.
    it("keys it cannot renew: not sent, kind credentials, retryable as the service's failure", function()
      local function keys_expiring(after)
        local t = os.time()
        emu:inject{ method = "GET", path = "^/openstack/latest/securitykey$", status = 200,
          body = { credential = { access = emu.temp_ak, secret = emu.temp_sk, securitytoken = emu.security_token,
            expires_at = os.date("!%Y-%m-%dT%H:%M:%SZ", t + after) } } }
        local c = new({ project_id = emu.project_id, metadata_url = emu.metadata_url })
        assert.equal(204, c:delete_bandwidth(emu:create_bandwidth{ size = 1 }).status)
        while os.time() < t + after do socket.sleep(0.05) end -- expired: the renewal's failure stands
        return c
      end
      -- (3 s: keys fetched in their last second are asked for again)
      local c = keys_expiring(3)
      emu:inject{ method = "GET", path = "^/openstack/latest/securitykey$", status = 500, times = -1 }
      local ids = emu:create_bandwidths(3)
      local results, summary = c:delete_bandwidths(ids, { concurrency = 2 })
      c:close()
      assert.same({ 0, 3 }, { summary.deleted, summary.not_sent })
      for i, r in ipairs(results) do
        assert.same({ "credentials", true, true, 0, 500 }, { r.kind, r.not_sent, r.retryable, r.attempts,
          r.cause and r.cause.status }, tostring(r))
        assert.is_false(eip.could_have_acted(r))
        local said = "eip: credentials not renewed: the ECS metadata service at " .. emu.metadata_url
          .. " gave no new temporary keys (it answered 500)"
        assert.equal(said, tostring(r))
        assert.is_not_nil(emu:get_bandwidth(ids[i]))
      end
      emu:reset()
      c = keys_expiring(3)
      emu:inject{ method = "GET", path = "^/openstack/latest/securitykey$", status = 401, times = -1,
        content_type = "text/plain", body = "Please configure Cloud Service Agency first (key " .. emu.temp_sk .. ")" }
      local err = raised(c.delete_bandwidth, c, "bw-1")
      c:close()
      assert.same({ "credentials", false, 401 }, { err.kind, err.retryable, err.cause.status })
      assert.matches("(it answered 401: Please configure Cloud Service Agency first (key <redacted>))", err.message, 1,
        true)
      assert.is_nil((tostring(err) .. tostring(err.cause)):find(emu.temp_sk, 1, true))
    end)

    -- Each id (each call) whose keys could not be renewed took a slot of the rate first, and
    -- waited for it, to send nothing: 1000 ids at rate 1 took 17 minutes to say so, and with
    -- rate_dict used up other workers' budget. The keys come first now.
    it("keys it cannot renew use up no slot of the rate, in a batch or a call", function()
      local t = os.time() + 2
      emu:inject{ method = "GET", path = "^/openstack/latest/securitykey$", status = 200,
        body = { credential = { access = emu.temp_ak, secret = emu.temp_sk, securitytoken = emu.security_token,
          expires_at = os.date("!%Y-%m-%dT%H:%M:%SZ", t) } } }
      -- (a burst for the keys' two requests and the first delete, each of which takes a slot)
      local c = new({ project_id = emu.project_id, metadata_url = emu.metadata_url, rate = 1, burst = 4 })
      assert.equal(204, c:delete_bandwidth(emu:create_bandwidth{ size = 1 }).status)
      while os.time() < t do socket.sleep(0.05) end
      emu:inject{ method = "GET", path = "^/openstack/latest/securitykey$", status = 500, times = -1 }
      local t0 = socket.gettime()
      local results, summary = c:delete_bandwidths(emu:create_bandwidths(6), { concurrency = 2 })
      local batch_took = socket.gettime() - t0
      t0 = socket.gettime()
      for _ = 1, 3 do
        local e = raised(c.delete_bandwidth, c, "bw-1")
        assert.equal("credentials", e.kind, tostring(e))
      end
      local calls_took = socket.gettime() - t0
      c:close()
      assert.same({ 0, 6 }, { summary.deleted, summary.not_sent })
      for _, r in ipairs(results) do assert.equal("credentials", r.kind, tostring(r)) end
      -- (at one slot a second: 4 s or more, and 3 s, when each took its slot)
      assert.is_true(batch_took < 2.5, "the batch took " .. batch_took .. " s")
      assert.is_true(calls_took < 1.5, "three calls took " .. calls_took .. " s")
    end)

    -- Keys still usable whose renewal failed are due (see Metadata:due): fetched for the next id
    -- before its slot of the rate, which started that id's clock, and the wait for the slot
    -- then ran out its deadline: ids failed not sent that the keys could have deleted.
    it("keys whose renewal failed, still usable, cost no batch id its deadline while it waits for the rate #once",
      function()
      local t = os.time() + 16 -- (renewal due 8 s before, the keys used until 4 s before)
      emu:inject{ method = "GET", path = "^/openstack/latest/securitykey$", status = 200,
        body = { credential = { access = emu.temp_ak, secret = emu.temp_sk, securitytoken = emu.security_token,
          expires_at = os.date("!%Y-%m-%dT%H:%M:%SZ", t) } } }
      local c = new({ project_id = emu.project_id, metadata_url = emu.metadata_url, rate = 1, burst = 3,
        deadline = 0.5 })
      assert.equal(204, c:delete_bandwidth(emu:create_bandwidth{ size = 1 }).status)
      while os.time() < t - 8 do socket.sleep(0.05) end
      emu:inject{ method = "GET", path = "^/openstack/latest/securitykey$", status = 500, times = -1 }
      local results, summary = c:delete_bandwidths(emu:create_bandwidths(3), { concurrency = 1 })
      c:close()
      assert.is_true(os.time() < t - 4, "the keys were no longer usable: nothing tested")
      assert.same({ 3, 0, 0 }, { summary.deleted, summary.failed, summary.not_sent }, tostring(results[3]))
    end)

    -- A refusal is for the keys: renewed temporary keys are signed with again.
    it("signs again once its refused temporary keys are renewed, not before", function()
      emu:set_knobs{ metadata_credential_ttl = 2, metadata_same_keys = 1 }
      local c = new({ project_id = emu.project_id, metadata_url = emu.metadata_url, max_attempts = 1 })
      local refused = { method = "DELETE", status = 401,
        body = { error_code = "APIGW.0301", error_msg = "Incorrect IAM authentication information" } }
      for _ = 1, 3 do
        emu:inject(refused)
        assert.equal(401, raised(c.delete_bandwidth, c, "bw-1").status)
      end
      assert.is_true(raised(c.delete_bandwidth, c, "bw-1").not_sent)
      emu:set_knobs{ metadata_same_keys = 0 } -- the service renews them
      socket.sleep(1.2) -- past their renewal time (half their 2 s)
      assert.equal(204, c:delete_bandwidth(emu:create_bandwidth{ size = 1 }).status)
      c:close()
    end)

    it("keeps redacting temporary keys it replaced", function()
      emu:set_knobs{ metadata_credential_ttl = 2 }
      local c = new({ project_id = emu.project_id, metadata_url = emu.metadata_url })
      local seen = {}
      for _ = 1, 3 do
        assert.equal(204, c:delete_bandwidth(emu:create_bandwidth{ size = 1 }).status)
        local reqs = emu:requests()
        local token = reqs[#reqs].headers["x-security-token"]
        if token ~= seen[#seen] then seen[#seen + 1] = token end
        socket.sleep(1.1)
      end
      assert.is_true(#seen >= 2, "the keys were replaced")
      emu:inject{ method = "DELETE", status = 400,
        body = { code = "VPC.0002", message = "tokens " .. table.concat(seen, " ") } }
      local err = raised(c.delete_bandwidth, c, "bw-1")
      c:close()
      assert.equal("VPC.0002", err.code)
      for _, token in ipairs(seen) do
        assert.is_nil(tostring(err):find(token, 1, true), "a security token leaked")
      end
    end)

    it("redacts its session token like the keys, when a service echoes it back", function()
      local lines = {}
      local c = new({ project_id = emu.project_id, metadata_url = emu.metadata_url, max_attempts = 1,
        log = function(l) lines[#lines + 1] = l end })
      c:authenticate()
      local session
      for _, r in ipairs(emu:requests()) do session = session or r.headers["x-metadata-token"] end
      assert.is_string(session)
      emu:inject{ method = "DELETE", status = 400, headers = { ["X-Request-Id"] = "rid-" .. session },
        body = { code = "VPC.0002", message = "session " .. session .. " echoed" } }
      local err = raised(c.delete_bandwidth, c, "bw-1")
      c:close()
      local text = tostring(err) .. "\n" .. table.concat(lines, "\n")
      assert.is_nil(text:find(session, 1, true), "the session token leaked") -- (first: a failure shows no secret)
      assert.equal("VPC.0002", err.code)
      assert.equal("session <redacted> echoed", err.message)
      assert.equal("rid-<redacted>", err.request_id)
    end)

    -- Five refused signatures in a row lock a key, temporary ones too (cloud-facts: the AK/SK
    -- lock). The emulator's clock an hour ahead makes the gateway refuse every signature.
    it("counts its temporary keys' refused signatures: three, then nothing is sent", function()
      emu:set_knobs{ metadata_same_keys = 1 } -- the service hands out the same keys until renewed
      emu:set_clock_offset(3600)
      local c = new({ project_id = emu.project_id, metadata_url = emu.metadata_url })
      for call = 1, 3 do
        local err = raised(c.delete_bandwidth, c, "bw-1")
        assert.equal(401, err.status, "call " .. call)
        assert.is_nil(err.not_sent, "call " .. call)
        -- a refresh that gives the same keys again sends nothing more
        assert.equal(call, emu:stats().auth_failures, "one signature per call")
      end
      local err = raised(c.delete_bandwidth, c, "bw-1")
      assert.same({ 401, true }, { err.status, err.not_sent })
      assert.matches("five in a row lock the key", err.advice)
      c:close()
      local s = emu:stats()
      assert.same({ 3, 0 }, { s.auth_failures, s.aksk_locks })
      -- the key still works once the clock is right: it was never locked
      emu:set_clock_offset(0)
      local good = new({ project_id = emu.project_id, metadata_url = emu.metadata_url })
      assert.equal(204, good:delete_bandwidth(emu:create_bandwidth{ size = 1 }).status)
      good:close()
    end)

    it("starts a new count for new temporary keys, and locks none of them", function()
      -- a key refused three times in a row would be locked; the service renews keys at each fetch
      emu:set_knobs{ aksk_lock_after = 3, metadata_same_keys = 0 }
      emu:set_clock_offset(3600)
      local c = new({ project_id = emu.project_id, metadata_url = emu.metadata_url })
      for call = 1, 4 do
        local err = raised(c.delete_bandwidth, c, "bw-1")
        assert.same({ 401, nil }, { err.status, err.not_sent }, "call " .. call)
      end
      c:close()
      local s = emu:stats()
      -- each call: its keys refused, new keys (a new count), refused once more
      assert.same({ 8, 0 }, { s.auth_failures, s.aksk_locks })
      assert.equal(5, s.metadata_credentials_issued)
    end)

    -- Keys renewed while requests signed with the old ones are in flight (a batch keeps four):
    -- the answers to those are about the old keys, and no refusal of the new ones.
    it("counts the 401s of requests signed with keys since renewed against neither key", function()
      emu:set_knobs{ metadata_same_keys = 0 } -- the service renews the keys at the next fetch
      local ids = emu:create_bandwidths(12)
      local c = new({ project_id = emu.project_id, metadata_url = emu.metadata_url })
      local n = 0
      local _, summary = c:delete_bandwidths(ids, { concurrency = 8, on_result = function()
        n = n + 1
        -- The first id went alone; the batch now sends four at once, and all four are refused:
        -- the first 401 renews the keys, the three others come for the old ones. (Answered after
        -- 2 s: all four have reached the gateway long before the first answer.)
        if n == 1 then
          emu:inject{ method = "DELETE", status = 401, delay = 2, times = 4, body = { error_code = "APIGW.0301",
            error_msg = "Incorrect IAM authentication information: verify aksk signature fail" } }
        end
      end })
      assert.is_nil(summary.stopped)
      assert.equal(12, summary.deleted)
      assert.equal(2, emu:stats().metadata_credentials_issued, "renewed once")
      -- and the new keys are still signed with
      assert.equal(204, c:delete_bandwidth(emu:create_bandwidth{ size = 1 }).status)
      c:close()
    end)

    it("counts an answer for the keys that signed it: not a 401 nor a success of keys since renewed", function()
      local auth = require "eip.auth"
      local p = auth.resolve({ metadata_url = "http://127.0.0.1:9" }, nil, env_of{})
      assert.equal("metadata", p.kind)
      local issued, same = 0, false
      local runner = { timeout = 5, policy = { max_attempts = 1 }, sleep = function() end }
      function runner.run(_, op)
        if op.name == "metadata_token" then return "session-token" end
        if not same then issued = issued + 1 end
        return { ak = "EMUTMPAK" .. issued, sk = "temporary-secret-key-" .. issued .. "-0000000000000000",
          security_token = "temporary-security-token-" .. issued .. "-0000000000", expires_at = "2099-01-01T00:00:00Z" }
      end
      local refused = { kind = "http", status = 401 }
      p:ensure(runner)
      local first = p.epoch
      p:rejected(refused, first)
      assert.equal(1, p.strikes)
      assert.is_true(p:refresh(runner), "new keys")
      local second = p.epoch
      assert.is_true(second > first)
      for _ = 1, 3 do p:rejected(refused, first) end -- the old keys' answers
      assert.same({ false, false }, { p.strikes, p.refused })
      p:rejected(refused, second)
      p:rejected(refused, second)
      p:accepted(first) -- a late success of the old keys says nothing of these
      assert.equal(2, p.strikes)
      p:rejected(refused, second)
      assert.is_table(p.refused, "three in a row for these keys")
      -- A success to a request sent before the refusal (the gateway may have checked it before
      -- the refused ones) does not lift it.
      p:accepted(second)
      assert.is_table(p.refused)
      -- The same keys handed out again are not new credentials: the epoch stays.
      same = true
      assert.is_false(p:refresh(runner))
      assert.equal(second, p.epoch)
    end)

    -- Calls at the same time (nginx's requests, a scheduler's coroutines): coroutines resumed in
    -- turn, and a transport that yields as a cosocket would, where a coroutine can yield through
    -- pcall (LuaJIT, Lua 5.2 on). `answer(req, calls)` answers each request, `calls` counting them
    -- by kind ("keys", "delete").
    local coroutines = require "spec.support.coroutines"
    local it_yielding = coroutines.yields_through_pcall() and it or function() end
    local function yielding_metadata_client(answer)
      local calls = { keys = 0, delete = 0 }
      local transport = { name = "yielding", close = function() end }
      function transport.send(_, req)
        coroutine.yield()
        if req.url:find("/meta-data/latest/api/token", 1, true) then return { status = 404, body = "" } end
        local what = req.url:find("securitykey", 1, true) and "keys" or "delete"
        calls[what] = calls[what] + 1
        return answer(req, calls, what)
      end
      local c = new({ project_id = emu.project_id, metadata_url = "http://127.0.0.1:9", max_attempts = 1,
        transport = transport, sleep = function() coroutine.yield() end })
      return c, calls
    end
    local function temporary_keys(expires)
      return { status = 200, body = '{"credential":{"access":"EMUTMPAK1","secret":"q7Xv2Lm9Pw4Rt6Ys1Hb3Nc8Kd5Jf0Ga",'
        .. '"securitytoken":"Vz3Qw8Er1Ty6Ui9Op2As5Df4Gh7Jk0Lx","expires_at":"'
        .. os.date("!%Y-%m-%dT%H:%M:%SZ", expires) .. '"}}' }
    end
    local refused = { status = 401, body = '{"error_code":"APIGW.0301","error_msg":"Incorrect IAM authentication '
      .. 'information: verify aksk signature fail"}' }
    local together = coroutines.together

    -- Two calls refused together, the service giving the same keys again: neither is sent again
    -- (the second compared the keys with none, its refresh having found them cleared by the first's,
    -- and sent its delete again, one more refused signature towards the key's lock).
    it_yielding("sends no call again after a 401 when the same keys come back, however many were refused", function()
      local c, calls = yielding_metadata_client(function(req, _, what)
        if what == "keys" then
          coroutine.yield()
          coroutine.yield()
          return temporary_keys(os.time() + 7200)
        end
        return req.url:find("bw%-401") and refused or { status = 204, body = "" }
      end)
      local first = together{ function() return c:delete_bandwidth("bw-0") end }
      assert.equal(204, first[1][2].status)
      local out = together{ function() return c:delete_bandwidth("bw-401-1") end,
        function() return c:delete_bandwidth("bw-401-2") end }
      for i = 1, 2 do assert.same({ false, 401, 1 }, { out[i][1], out[i][2].status, out[i][2].attempts }) end
      assert.same({ 3, 2 }, { calls.delete, calls.keys }, "each delete sent once; the keys fetched once again")
      c:close()
    end)

    -- A call that signs as its keys are due for renewal, while another call's 401 made the provider
    -- give them up, the service failing meanwhile: there are no keys left to keep, and the call
    -- ends with the service's failure, not sent (it raised "attempt to index a nil value").
    it_yielding("a renewal that fails after another call's 401 gave the keys up: a credentials error", function()
      local real_time = os.time
      local ok, err = pcall(function()
        local c = yielding_metadata_client(function(req, calls, what)
          if what == "keys" then
            if calls.keys == 1 then return temporary_keys(real_time() + 7200) end
            for _ = 1, 10 do coroutine.yield() end -- slower than the 401 below
            return { status = 503, body = "busy" }
          end
          if req.url:find("bw%-401") then
            for _ = 1, 3 do coroutine.yield() end
            return refused
          end
          return { status = 204, body = "" }
        end)
        assert.equal(204, together{ function() return c:delete_bandwidth("bw-0") end }[1][2].status)
        local fns = {
          function() return c:delete_bandwidth("bw-401") end, -- sent now, answered 401 later
          function()
            -- keys due (40 minutes before they expire), still valid: renewed as this call signs
            os.time = function(t) return t and real_time(t) or real_time() + 4900 end -- luacheck: ignore 122
            return c:delete_bandwidth("bw-a")
          end,
        }
        local out = together(fns)
        os.time = real_time -- luacheck: ignore 122
        assert.same({ false, 401 }, { out[1][1], out[1][2].status })
        local e = out[2][2]
        assert.is_false(out[2][1])
        assert.is_true(eip.is_error(e), tostring(e))
        assert.same({ "credentials", true, 0 }, { e.kind, e.not_sent, e.attempts }, tostring(e))
        c:close()
      end)
      os.time = real_time -- luacheck: ignore 122
      assert(ok, err)
    end)

    -- The metadata service and the API in one fake transport: keys n, expiring at t0 + 4n (a
    -- fraction past that second), n as `which(fetches so far)` says; every signed request noted
    -- as { its AK, the second by `clock` }.
    local function keys_service(t0, clock, which)
      local signed, state = {}, { fetches = 0 }
      local transport = { name = "fake", close = function() end }
      function transport.send(_, req)
        if req.url:find("/meta-data/latest/api/token", 1, true) then return { status = 404, body = "" } end
        if req.url:find("securitykey", 1, true) then
          state.fetches = state.fetches + 1
          local n = which(state.fetches)
          return { status = 200, body = '{"credential":{"access":"EMUTMPAK' .. n .. '","secret":"q7Xv2Lm9Pw4Rt6Ys1Hb3'
            .. 'Nc8Kd5Jf0Ga","securitytoken":"Vz3Qw8Er1Ty6Ui9Op2As5Df4Gh7Jk0Lx","expires_at":"'
            .. os.date("!%Y-%m-%dT%H:%M:%S", t0 + 4 * n) .. '.574000Z"}}' }
        end
        for _, line in ipairs(req.headers) do
          local ak = line:match("^Authorization: .-Access=([%w]+)")
          if ak then signed[#signed + 1] = { ak, math.floor(clock()) } end
        end
        return { status = 204, body = "" }
      end
      return transport, signed, state
    end

    -- body(client) with os.time at the second of `clock()` (restored after), a client of the fake
    -- metadata service's keys through `transport`, its sleep `advance`.
    local function on_fake_time(transport, clock, advance, body)
      local real_time = os.time
      local ok, err = pcall(function()
        os.time = function(t) return t and real_time(t) or math.floor(clock()) end -- luacheck: ignore 122
        local c = new({ project_id = emu.project_id, metadata_url = "http://127.0.0.1:9", max_attempts = 1,
          transport = transport, sleep = advance })
        body(c)
        c:close()
      end)
      os.time = real_time -- luacheck: ignore 122
      assert(ok, err)
    end

    -- No request was signed with the first keys (EMUTMPAK1) at or after their expiry, t0 + 4; the
    -- last with the second ones.
    local function never_expired(signed, t0)
      for _, s in ipairs(signed) do
        assert.is_false(s[1] == "EMUTMPAK1" and s[2] >= t0 + 4, "signed with expired keys at t0 + " .. (s[2] - t0))
      end
      assert.equal("EMUTMPAK2", signed[#signed][1])
    end

    -- The service hands out the same keys until they expire: a renewal in their last second got
    -- them again, with an expiry past by this clock, taken as unknown (15 minutes): every request
    -- after their expiry was signed with them, each one a 401 (a batch of 200 at concurrency 16
    -- and 4 s keys: 12 of them). Asked again once they have expired, never signed with after.
    it("signs no request with keys past their expiry when a renewal in their last second got them", function()
      local real_time = os.time
      local now = real_time()
      local t0 = now
      -- (the first keys expire at t0 + 4, by the service's clock a fraction later: new ones from t0 + 5)
      local transport, signed, state = keys_service(t0, function() return now end,
        function() return math.floor(now) < t0 + 5 and 1 or 2 end)
      on_fake_time(transport, function() return now end, function(s) now = now + s end, function(c)
        for step = 0, 6 do
          now = math.max(now, t0 + step)
          assert.equal(204, c:delete_bandwidth("bw-" .. step).status)
        end
      end)
      never_expired(signed, t0)
      assert.is_true(state.fetches <= 4, "fetched " .. state.fetches)
    end)

    -- The same for keys a first fetch got in their last second, and for keys the service gave
    -- before they expired whose answer came past their expiry (3 s late): both were signed with
    -- (taken as of unknown expiry), each request refused.
    for _, case in ipairs{ { "a first fetch", 3, 0 }, { "a late answer", 0, 3 } } do
      it("signs no request with keys past their expiry after " .. case[1] .. " in their last second", function()
        local real_time = os.time
        local t0 = real_time()
        local now = t0 + case[2]
        local transport, signed = keys_service(t0, function() return now end, function(fetches)
          local n = now < t0 + 4.574 and 1 or 2
          if fetches > 1 then now = now + case[3] end
          return n
        end)
        on_fake_time(transport, function() return now end, function(s) now = now + s end, function(c)
          assert.equal(204, c:delete_bandwidth("bw-1").status)
          now = math.max(now, t0 + 3)
          assert.equal(204, c:delete_bandwidth("bw-2").status)
        end)
        never_expired(signed, t0)
      end)
    end

    -- A slow service (0.9 s an answer, timeout 1 s): the renewal that waited for the keys' expiry
    -- and asked again took 4.8 s, past its budget (two requests and the wait): the call waiting
    -- for it gave up, "not sent".
    it_yielding("a call waits for a renewal that waited for the keys' expiry and asked again", function()
      local core = require "eip.core"
      local real_time, real_mono = os.time, core.monotime
      local t0 = real_time()
      local now, delay = t0 + 0.0, 0
      local transport = { name = "fake", close = function() end }
      function transport.send(_, req)
        if req.url:find("/meta-data/latest/api/token", 1, true) then
          coroutine.yield(delay)
          return { status = 200, body = "sess-0123456789abcdef" }
        end
        if req.url:find("securitykey", 1, true) then
          local n = now < t0 + 4.574 and 1 or 2
          coroutine.yield(delay)
          return { status = 200, body = '{"credential":{"access":"EMUTMPAK' .. n .. '","secret":"q7Xv2Lm9Pw4Rt6Ys1'
            .. 'Hb3Nc8Kd5Jf0Ga","securitytoken":"Vz3Qw8Er1Ty6Ui9Op2As5Df4Gh7Jk0Lx","expires_at":"'
            .. os.date("!%Y-%m-%dT%H:%M:%S", t0 + 4 * n) .. '.574000Z"}}' }
        end
        return { status = 204, body = "" }
      end
      local out = {}
      local ok, err = pcall(function()
        os.time = function(t) return t and real_time(t) or math.floor(now) end -- luacheck: ignore 122
        core.monotime = function() return now end
        local c = new({ project_id = emu.project_id, metadata_url = "http://127.0.0.1:9", max_attempts = 1,
          timeout = 1, transport = transport, sleep = function(s) coroutine.yield(s) end })
        local first = coroutine.create(function() return c:delete_bandwidth("bw-0") end)
        while coroutine.status(first) ~= "dead" do assert(coroutine.resume(first)) end
        now, delay = t0 + 2, 0.9 -- the keys due for renewal
        local cos, wake = {}, {}
        for i = 1, 2 do
          cos[i], wake[i] = coroutine.create(function() out[i] = { pcall(c.delete_bandwidth, c, "bw-" .. i) } end), now
        end
        while true do -- (each resumed at the time it sleeps until)
          local best
          for i, co in ipairs(cos) do
            if coroutine.status(co) ~= "dead" and (not best or wake[i] < wake[best]) then best = i end
          end
          if not best then break end
          now = math.max(now, wake[best])
          local _, d = assert(coroutine.resume(cos[best]))
          wake[best] = now + (d or 0)
        end
        c:close()
      end)
      os.time, core.monotime = real_time, real_mono -- luacheck: ignore 122
      assert(ok, err)
      for i = 1, 2 do assert.same({ true, 204 }, { out[i][1], out[i][1] and out[i][2].status }, tostring(out[i][2])) end
    end)

    it("is a usage error naming EIP_METADATA_URL when that is no http(s) URL", function()
      local err = raised(new, { project_id = emu.project_id }, { EIP_METADATA_URL = "169.254.169.254" })
      assert.equal("EIP_METADATA_URL", err.argument)
      assert.equal(0, emu:stats().requests)
    end)

    it("is never asked when a credential is given", function()
      local c = new({ project_id = emu.project_id, token = emu.token, metadata_url = emu.metadata_url })
      c:authenticate()
      c:close()
      assert.equal(0, emu:stats().requests)
    end)

    -- Why the service gave no keys, said in the error: what its 200 lacked (not a bare "it
    -- answered 200"), the text of its refusal (the Go SDK keeps it: "Please configure Cloud
    -- Service Agency first", an ECS without an agency), which tostring of the cause lost too.
    it("says why the metadata service gave no keys: what its answer lacked, what it said", function()
      emu:inject{ method = "GET", path = "^/openstack/latest/securitykey$", status = 200,
        body = { credential = { access = emu.temp_ak, secret = emu.temp_sk, securitytoken = "" } } }
      local c = new({ project_id = emu.project_id, metadata_url = emu.metadata_url })
      local err = raised(c.authenticate, c)
      c:close()
      assert.equal("credentials", err.argument)
      assert.matches("(it answered 200: the answer has no credential.securitytoken)", err.message, 1, true)
      assert.is_nil(tostring(err):find(emu.temp_sk, 1, true))
      local agency = "Please configure Cloud Service Agency first"
      emu:inject{ method = "GET", path = "^/openstack/latest/securitykey$", status = 401, body = agency .. "\r\n",
        content_type = "text/plain", times = -1 }
      c = new({ project_id = emu.project_id, metadata_url = emu.metadata_url })
      err = raised(c.authenticate, c)
      c:close()
      assert.matches("(it answered 401: " .. agency .. ")", err.message, 1, true)
      assert.matches("-> 401 Unauthorized (" .. agency .. ")", tostring(err.cause), 1, true)
    end)

    -- Keys that cannot be signed with (an AK with a space, an SK with a line end) are an unusable
    -- answer of the service's, held like its other failures: they were a usage error, not held,
    -- and every call (every id of a batch, at each renewal) asked the service again.
    it("holds keys it cannot sign with as an unusable answer: said why, not asked again at once", function()
      emu:inject{ method = "GET", path = "^/openstack/latest/securitykey$", status = 200, times = -1,
        body = { credential = { access = "TEMP AK", secret = emu.temp_sk, securitytoken = "st-1" } } }
      local c = new({ project_id = emu.project_id, metadata_url = emu.metadata_url })
      local err = raised(c.authenticate, c)
      assert.equal("credentials", err.argument)
      assert.matches("(it answered 200: the answer's credential.access may only hold letters", err.message, 1, true)
      assert.equal("Unusable Answer", err.cause.reason)
      local sent = emu:stats().requests
      err = raised(c.delete_bandwidth, c, "bw-1")
      c:close()
      assert.equal("credentials", err.argument)
      assert.equal(sent, emu:stats().requests)
    end)

    it("answering nothing ends in a usage error listing every place looked at, in order", function()
      local closed = "http://127.0.0.1:" .. require("spec.support.host").closed_port()
      local c = new({ project_id = emu.project_id, metadata_url = closed },
        { HUAWEICLOUD_SDK_CREDENTIALS_FILE = dir .. "/none" })
      local err = raised(c.authenticate, c)
      assert.equal("credentials", err.argument)
      local at = 0
      for _, place in ipairs{ "the options token, ak + sk, auth", "HUAWEICLOUD_SDK_AK", "OS_AUTH_TOKEN",
          "the profile file " .. dir .. "/none (not found)", "the ECS metadata service at " .. closed } do
        local found = err.message:find(place, 1, true)
        assert.is_truthy(found, place)
        assert.is_true(found > at, "in order: " .. place)
        at = found
      end
      assert.equal("usage", raised(c.delete_bandwidth, c, "bw-1").kind)
      c:close()
      assert.equal(0, emu:stats().requests)
    end)
  end)

  describe("the project of AK/SK credentials", function()
    local vars

    before_each(function()
      vars = { HUAWEICLOUD_SDK_AK = emu.ak, HUAWEICLOUD_SDK_SK = emu.sk, HUAWEICLOUD_SDK_REGION = "cn-north-4",
        HUAWEICLOUD_SDK_IAM_ENDPOINT = emu.iam_url }
    end)

    it("is looked up once by region: GET /v3/projects?name=, signed", function()
      local c = new({}, vars)
      assert.equal(204, c:delete_bandwidth(emu:create_bandwidth{ size = 1 }).status)
      assert.equal(204, c:delete_bandwidth(emu:create_bandwidth{ size = 1 }).status)
      assert.equal(emu.project_id, c.project_id)
      c:close()
      assert.equal(1, emu:stats().project_lookups)
      local first = emu:requests()[1]
      assert.equal("/v3/projects?name=cn-north-4", first.uri)
      assert.matches("^SDK%-HMAC%-SHA256 ", first.headers.authorization)
      assert.is_nil(first.headers["x-project-id"])
    end)

    -- The lookup counts in the first call's deadline; the delete is not sent with the few
    -- milliseconds it leaves (it timed out after 17 ms, while the API may carry it out).
    it("counts in the first call's deadline: a delete left less than 50 ms is not sent", function()
      local id = emu:create_bandwidth{ size = 1 }
      -- (the look-up answered when less than 50 ms of the deadline is left)
      local c = new({ deadline = 1, max_attempts = 1, transport = fixture.answering_late("/v3/projects") }, vars)
      local err = raised(c.delete_bandwidth, c, id)
      assert.same({ "transport", "timeout", true, 0 }, { err.kind, err.reason, err.not_sent, err.attempts },
        tostring(err))
      assert.matches("less than 50 ms of the deadline (1 s) was left", err.message, 1, true)
      assert.is_false(require("eip").could_have_acted(err))
      for _, r in ipairs(emu:requests()) do assert.not_equal("DELETE", r.method) end
      assert.equal(204, c:delete_bandwidth(id).status, "the project is known now")
      c:close()
    end)

    -- So it does for a create, a drain's (and a plan's) GET and a removal's first call: they were
    -- sent with what the look-up left (17 ms), a POST timing out while the API acts (a bill).
    it("counts in the first request's deadline of a create, a drain, a plan and a removal", function()
      local id = emu:create_bandwidth{ size = 5 }
      local terms = { charge_mode = "bandwidth", size = 1 }
      local calls = {
        { "create_bandwidth", function(c) return c:create_bandwidth{ name = "late", size = 5 } end },
        { "plan_drain", function(c) return c:plan_drain(id, terms) end },
        { "drain_and_delete_bandwidth", function(c) return c:drain_and_delete_bandwidth(id, terms) end },
        { "remove_eips_from_bandwidth", function(c)
          return c:remove_eips_from_bandwidth(id, { "e2d1c0b9-0000-4000-8000-000000000001" }, terms)
        end },
      }
      for _, case in ipairs(calls) do
        emu:reset_counters()
        local c = new({ deadline = 1, max_attempts = 1, transport = fixture.answering_late("/v3/projects") }, vars)
        local ok, err = pcall(case[2], c)
        assert.is_false(ok, case[1])
        assert.same({ "transport", "timeout", true, 0 }, { err.kind, err.reason, err.not_sent, err.attempts },
          case[1] .. ": " .. tostring(err))
        assert.matches("less than 50 ms of the deadline (1 s) was left", err.message, 1, true)
        for _, r in ipairs(emu:requests()) do
          assert.matches("^/v3/projects", r.uri, 1, false, case[1] .. ": only the look-up was sent")
        end
        c:close()
      end
      local c = new({ deadline = 5 }, vars)
      assert.equal(id, c:plan_drain(id, terms).bandwidth_id, "a look-up leaving time: the plan is read")
      c:close()
    end)

    it("is a usage error naming the region when IAM lists none or several", function()
      emu:set_projects{}
      local c = new({}, vars)
      local err = raised(c.delete_bandwidth, c, "bw-1")
      assert.equal("project_id", err.argument)
      assert.matches('IAM has 0 projects named "cn%-north%-4"', err.message)
      assert.matches("^%x+$", err.request_id, "IAM's X-IAM-Trace-Id")
      c:close()
      emu:set_projects{ { name = "cn-north-4", id = emu.project_id },
        { name = "cn-north-4", id = emu.other_project_id } }
      c = new({}, vars)
      local message = raised(c.authenticate, c).message
      assert.matches("IAM has 2 projects", message)
      assert.matches("give project_id or HUAWEICLOUD_SDK_PROJECT_ID)", message, 1, true) -- the environment's keys
      c:close()
      -- Keys of the options do not read HUAWEICLOUD_SDK_PROJECT_ID: the error once asked for it.
      c = new({ ak = emu.ak, sk = emu.sk }, { HUAWEICLOUD_SDK_REGION = "cn-north-4",
        HUAWEICLOUD_SDK_IAM_ENDPOINT = emu.iam_url, HUAWEICLOUD_SDK_PROJECT_ID = emu.project_id })
      message = raised(c.authenticate, c).message
      assert.matches("(give project_id)", message, 1, true)
      assert.not_matches("HUAWEICLOUD_SDK_PROJECT_ID", message, 1, true)
      c:close()
    end)

    it("refuses a looked-up project id that is no id: an unusable answer, no delete sent", function()
      local id = emu:create_bandwidth{ size = 1 }
      for _, bad in ipairs{ emu.project_id .. "/bandwidths/" .. id .. "#", "p1?x=", "" } do
        emu:reset_counters()
        emu:set_projects{ { name = "cn-north-4", id = bad } }
        local c = new({}, vars)
        local err = raised(c.delete_bandwidth, c, "bw-1")
        c:close()
        assert.same({ "http", "Unusable Answer" }, { err.kind, err.reason })
        assert.matches("IAM's project id is not an id", err.message, 1, true)
        for _, r in ipairs(emu:requests()) do assert.equal("/v3/projects?name=cn-north-4", r.uri) end
      end
      emu:set_projects{ { name = "cn-north-4", id = emu.project_id } }
      local c = new({}, vars)
      assert.equal(204, c:delete_bandwidth(id).status, "a good lookup still works after")
      c:close()
    end)

    -- Keys whose policy may not list IAM's projects (a user with VPC rights only): IAM's 403 once
    -- advised "Grant the IAM permission for the bandwidth action", which was never sent, and named
    -- neither the region nor the project id that does without the look-up.
    it("refused by IAM's policy (403): says what was looked up, for which region, and what to give", function()
      emu:inject{ method = "GET", path = "^/v3/projects", status = 403, times = 2, answered_by = "service",
        body = { error = { code = 403, title = "Forbidden",
          message = "You are not authorized to perform the requested action: identity:list_projects." } } }
      local c = new({}, vars)
      local err = raised(c.delete_bandwidth, c, emu:create_bandwidth{ size = 1 })
      local results, summary = c:delete_bandwidths{ emu:create_bandwidth{ size = 1 } }
      c:close()
      assert.same({ "http", 403, true }, { err.kind, err.status, err.not_sent })
      assert.same({ "project", 403 }, { summary.stopped, results[1].cause.status })
      for _, e in ipairs{ err, results[1].cause } do
        assert.matches("project id of cn-north-4", e.advice, 1, true)
        assert.matches("give project_id or HUAWEICLOUD_SDK_PROJECT_ID", e.advice, 1, true)
        assert.not_matches("bandwidth action", e.advice, 1, true)
      end
      for _, r in ipairs(emu:requests()) do assert.equal("/v3/projects?name=cn-north-4", r.uri) end
    end)

    it("needs a region to be looked up", function()
      vars.HUAWEICLOUD_SDK_REGION = nil
      local err = raised(new, {}, vars)
      assert.equal("project_id", err.argument)
      assert.matches("or a region to look it up by", err.message)
    end)

    -- HUAWEICLOUD_SDK_PROJECT_ID goes with the environment's keys only, as in the official SDKs
    -- (their environment provider alone reads it): left over from other work, it must not send
    -- a profile's, the options' or the metadata service's keys to another project, where a 404
    -- would read as "already deleted", nor override an IAM login's project.
    describe("HUAWEICLOUD_SDK_PROJECT_ID", function()
      local elsewhere = "11112222333344445555666677778888"

      it("does not override a profile file's project_id", function()
        local path = profile("[basic]\nak = " .. emu.ak .. "\nsk = " .. emu.sk .. "\nproject_id = "
          .. emu.project_id .. "\n")
        local c = new({}, { HUAWEICLOUD_SDK_CREDENTIALS_FILE = path, HUAWEICLOUD_SDK_PROJECT_ID = elsewhere })
        assert.equal(emu.project_id, c.project_id)
        assert.equal(204, c:delete_bandwidth(emu:create_bandwidth{ size = 1 }).status)
        c:close()
      end)

      it("is not even checked when the option is given", function()
        vars.HUAWEICLOUD_SDK_PROJECT_ID = "my project/x"
        local c = new({ project_id = emu.project_id }, vars)
        assert.equal(emu.project_id, c.project_id)
        c:close()
        c = new({ project_id = emu.project_id, token = emu.token }, { HUAWEICLOUD_SDK_PROJECT_ID = "my project/x" })
        assert.equal(emu.project_id, c.project_id)
        c:close()
        assert.equal("HUAWEICLOUD_SDK_PROJECT_ID", raised(new, {}, vars).argument)
      end)

      it("goes with the environment's keys; the option beats it", function()
        vars.HUAWEICLOUD_SDK_PROJECT_ID = emu.project_id
        local c = new({}, vars)
        assert.equal(emu.project_id, c.project_id)
        assert.equal(204, c:delete_bandwidth(emu:create_bandwidth{ size = 1 }).status)
        c:close()
        assert.equal(0, emu:stats().project_lookups)
        vars.HUAWEICLOUD_SDK_PROJECT_ID = elsewhere
        c = new({ project_id = emu.project_id }, vars)
        assert.equal(emu.project_id, c.project_id)
        c:close()
      end)

      it("is not taken for a profile file's keys that name no project: looked up by region", function()
        local path = profile("[basic]\nak = " .. emu.ak .. "\nsk = " .. emu.sk .. "\n")
        local c = new({}, { HUAWEICLOUD_SDK_CREDENTIALS_FILE = path, HUAWEICLOUD_SDK_PROJECT_ID = elsewhere,
          HUAWEICLOUD_SDK_REGION = "cn-north-4", HUAWEICLOUD_SDK_IAM_ENDPOINT = emu.iam_url })
        assert.equal(204, c:delete_bandwidth(emu:create_bandwidth{ size = 1 }).status)
        assert.equal(emu.project_id, c.project_id)
        c:close()
        assert.equal(1, emu:stats().project_lookups)
        local err = raised(new, {}, { HUAWEICLOUD_SDK_CREDENTIALS_FILE = path, HUAWEICLOUD_SDK_PROJECT_ID = elsewhere })
        assert.equal("project_id", err.argument)
        assert.matches("HUAWEICLOUD_SDK_PROJECT_ID with a token or keys from the environment", err.message, 1, true)
      end)

      -- Only the option was checked against the secrets: an SK pasted into the variable, the
      -- profile's project_id or auth.project_id went into every path and X-Project-Id, the debug
      -- log, tostring(client) and errors' paths.
      it("holding a credential, from any source, is refused and never shown", function()
        local cases = {
          { "HUAWEICLOUD_SDK_PROJECT_ID", {}, { HUAWEICLOUD_SDK_AK = emu.ak, HUAWEICLOUD_SDK_SK = emu.sk,
            HUAWEICLOUD_SDK_PROJECT_ID = emu.sk } },
          { "project_id", {}, { HUAWEICLOUD_SDK_CREDENTIALS_FILE = profile("[basic]\nak = " .. emu.ak .. "\nsk = "
            .. emu.sk .. "\nproject_id = " .. emu.sk .. "\n") } },
          -- not even one of another shape (quoted by the shape's check before the keys were known)
          { "project_id", {}, { HUAWEICLOUD_SDK_CREDENTIALS_FILE = profile("[basic]\nak = " .. emu.ak
            .. "\nsk = Short-Sk-Value-123\nproject_id = Short-Sk-Value-123/\n") } },
          { "auth.project_id", { auth = { username = "u1", password = "Passw0rd-of-u1", domain = "d1",
            project_id = "Passw0rd-of-u1", iam_endpoint = emu.iam_url } }, {} },
          { "HUAWEICLOUD_SDK_PROJECT_ID", { proxy = "http://puser:proxy-Secret-77@127.0.0.1:9" },
            { HUAWEICLOUD_SDK_AK = emu.ak, HUAWEICLOUD_SDK_SK = emu.sk,
              HUAWEICLOUD_SDK_PROJECT_ID = "proxy-Secret-77" } },
        }
        for _, case in ipairs(cases) do
          local lines = {}
          case[2].log = function(line) lines[#lines + 1] = line end
          case[2].debug = true
          local err = raised(new, case[2], case[3])
          assert.equal("usage", err.kind)
          assert.matches(case[1], err.argument, 1, true)
          assert.matches("holds a credential", err.message, 1, true)
          for _, text in ipairs{ tostring(err), table.concat(lines, "\n") } do
            for _, secret in ipairs{ emu.sk, "Passw0rd-of-u1", "proxy-Secret-77", "Short-Sk-Value-123" } do
              assert.is_nil(text:find(secret, 1, true), case[1])
            end
          end
        end
        assert.equal(0, emu:stats().requests)
      end)

      it("is not taken for keys given as options, nor over an IAM login's project; it is for a token", function()
        local err = raised(new, { ak = emu.ak, sk = emu.sk }, { HUAWEICLOUD_SDK_PROJECT_ID = elsewhere })
        assert.equal("project_id", err.argument)
        -- A token is scoped to one project, and the API refuses another (400 VPC.0007).
        local t = new({ token = emu.token }, { HUAWEICLOUD_SDK_PROJECT_ID = emu.project_id })
        assert.equal(emu.project_id, t.project_id)
        t:close()
        local c = new({ auth = emu:iam_auth() }, { HUAWEICLOUD_SDK_PROJECT_ID = elsewhere })
        assert.equal(204, c:delete_bandwidth(emu:create_bandwidth{ size = 1 }).status)
        assert.equal(emu.project_id, c.project_id)
        c:close()
      end)
    end)
  end)
end)
