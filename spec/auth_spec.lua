-- Every way to authenticate, against the emulator's own AK/SK verifier and IAM: signed
-- deletes, temporary credentials, the environment, IAM password tokens with caching and
-- refresh after 401, and secrets that never reach errors, tostring or logs.
local eip = require "eip"
local client_mod = require "eip.client"
local fixture = require "spec.support.fixture"
local raised = require("spec.support.assertions").raised
local host = require "spec.support.host"
local socket = require "socket"


local env_of = require("spec.support.assertions").env_of

local function no_secret_in(text, secrets)
  for _, s in ipairs(secrets) do
    assert.is_nil(text:find(s, 1, true), "a secret leaked into: " .. text:sub(1, 200))
  end
end

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

describe("authentication", function()
  local fx = fixture.emulator()
  local emu

  setup(function() emu = fx.start() end)
  teardown(fx.stop)
  before_each(fx.reset)

  local function last_request()
    local reqs = emu:requests()
    return reqs[#reqs]
  end

  -- The IAM logins (token requests) the emulator received since its counters were reset.
  local function iam_logins()
    local n = 0
    for _, r in ipairs(emu:requests()) do
      if r.path == "/v3/auth/tokens" then n = n + 1 end
    end
    return n
  end

  describe("AK/SK", function()
    it("signs a delete that the emulator's own verifier accepts", function()
      local id = emu:create_bandwidth{ size = 1 }
      local c = eip.new{ endpoint = emu.url, project_id = emu.project_id, ak = emu.ak, sk = emu.sk }
      local res = c:delete_bandwidth(id)
      c:close()
      assert.equal(204, res.status)
      local h = last_request().headers
      assert.matches("^SDK%-HMAC%-SHA256 Access=" .. emu.ak:gsub("%p", "%%%0") .. ", SignedHeaders=", h.authorization)
      assert.matches("SignedHeaders=content%-type;host;x%-project%-id;x%-sdk%-date,", h.authorization)
      assert.matches("^%d%d%d%d%d%d%d%dT%d%d%d%d%d%dZ$", h["x-sdk-date"])
      assert.equal(emu.project_id, h["x-project-id"])
      assert.equal("127.0.0.1:" .. emu.port, h.host)
      assert.is_nil(h["x-auth-token"])
    end)

    -- A key refused meanwhile (three 401s of other calls of the client, as inside nginx) while a
    -- call's retry waited: the retry is not sent, but the first attempt was (its answer lost,
    -- the delete carried out). The call ends with that attempt's error, which may have acted;
    -- it once ended "not sent".
    it("a retry not sent because the key was refused meanwhile: the call was sent, and may have acted", function()
      local lost, others = emu:create_bandwidth{ size = 1 }, emu:create_bandwidths(3)
      emu:inject{ method = "DELETE", path = emu:delete_path(lost), action = "lose_answer" }
      for _, id in ipairs(others) do
        emu:inject{ method = "DELETE", path = emu:delete_path(id), status = 401,
          body = { error_code = "APIGW.0301", error_msg = "verify aksk signature fail" } }
      end
      local c
      local refusing = false
      c = eip.new{ endpoint = emu.url, project_id = emu.project_id, ak = emu.ak, sk = emu.sk,
        backoff_base = 0.01, backoff_cap = 0.01, sleep = function()
          if refusing then return end
          refusing = true
          for _, id in ipairs(others) do pcall(c.delete_bandwidth, c, id) end
        end }
      local ok, err = pcall(c.delete_bandwidth, c, lost)
      c:close()
      assert.is_false(ok)
      assert.is_nil(err.not_sent, tostring(err))
      assert.same({ "transport", 1, true }, { err.kind, err.attempts, eip.could_have_acted(err) })
      assert.is_nil(emu:get_bandwidth(lost))
    end)

    -- VPC.0009 (401, real-name authentication failed) is the EIP service's own answer: the
    -- gateway checked the signature and passed it. It once counted as a refused signature:
    -- after three, the client signed nothing more with a key the gateway accepts.
    it("a 401 with the service's own code is no refused signature: the key keeps signing", function()
      local ids = emu:create_bandwidths(4)
      for i = 1, 3 do
        emu:inject{ method = "DELETE", path = emu:delete_path(ids[i]), status = 401,
          body = { code = "VPC.0009", message = "real-name authentication fail." } }
      end
      local c = eip.new{ endpoint = emu.url, project_id = emu.project_id, ak = emu.ak, sk = emu.sk }
      for i = 1, 3 do
        local err = raised(c.delete_bandwidth, c, ids[i])
        assert.same({ 401, "VPC.0009", "permission" }, { err.status, err.code, err.code_kind })
        assert.is_nil(err.not_sent)
      end
      local res = c:delete_bandwidth(ids[4])
      c:close()
      assert.equal(204, res.status)
      assert.is_nil(emu:get_bandwidth(ids[4]))
    end)

    it("signs temporary credentials with X-Security-Token", function()
      local id = emu:create_bandwidth{ size = 1 }
      local c = eip.new{ endpoint = emu.url, project_id = emu.project_id,
        ak = emu.temp_ak, sk = emu.temp_sk, security_token = emu.security_token }
      assert.equal(204, c:delete_bandwidth(id).status)
      c:close()
      local h = last_request().headers
      assert.equal(emu.security_token, h["x-security-token"])
      assert.matches("x%-security%-token", h.authorization)
    end)

    it("maps a rejected signature to 401 APIGW.0301 without showing the SK", function()
      local wrong = emu.sk:sub(1, -2) .. (emu.sk:sub(-1) == "x" and "y" or "x")
      local c = eip.new{ endpoint = emu.url, project_id = emu.project_id, ak = emu.ak, sk = wrong }
      local err = raised(c.delete_bandwidth, c, "bw-1")
      c:close()
      assert.equal(401, err.status)
      assert.equal("APIGW.0301", err.code)
      assert.is_false(err.retryable)
      assert.equal(1, err.attempts)
      no_secret_in(tostring(err), { wrong, emu.sk })
    end)

    it("404s and other answers keep their mapping when signed", function()
      local c = eip.new{ endpoint = emu.url, project_id = emu.project_id, ak = emu.ak, sk = emu.sk }
      local err = raised(c.delete_bandwidth, c, fixture.absent_id(1))
      c:close()
      assert.equal(404, err.status)
      assert.equal("VPC.0306", err.code)
    end)

    it("refuses token and AK/SK together, and half a pair", function()
      local base = { endpoint = emu.url, project_id = emu.project_id }
      local function with(t) for k, v in pairs(base) do t[k] = v end return t end
      local e = raised(eip.new, with{ token = emu.token, ak = emu.ak, sk = emu.sk })
      assert.equal("token", e.argument)
      assert.equal("token and ak/sk are exclusive: give one way to authenticate", e.message)
      e = raised(eip.new, with{ ak = emu.ak, sk = emu.sk, auth = {} })
      assert.equal("auth", e.argument)
      assert.equal("auth and ak/sk are exclusive: give one way to authenticate", e.message)
      assert.equal("token and ak/sk and auth are exclusive: give one way to authenticate",
        raised(eip.new, with{ token = "t", ak = emu.ak, sk = emu.sk, auth = {} }).message)
      -- (named as given: a security_token alone was "ak/sk", options the caller never gave)
      assert.equal("token and security_token are exclusive: give one way to authenticate",
        raised(eip.new, with{ token = emu.token, security_token = "st" }).message)
      assert.equal("auth and sk are exclusive: give one way to authenticate",
        raised(eip.new, with{ sk = emu.sk, auth = {} }).message)
      assert.equal("sk", raised(eip.new, with{ ak = emu.ak }).argument)
      assert.equal("ak", raised(eip.new, with{ sk = emu.sk }).argument)
      assert.equal("ak", raised(eip.new, with{ security_token = "x" }).argument)
      assert.equal(0, emu:stats().requests)
    end)
  end)

  describe("credentials from the environment", function()
    local new = client_mod.new

    it("uses HUAWEICLOUD_SDK_AK/SK/PROJECT_ID when no option is given", function()
      local id = emu:create_bandwidth{ size = 1 }
      local c = new({ endpoint = emu.url }, env_of{
        HUAWEICLOUD_SDK_AK = emu.ak, HUAWEICLOUD_SDK_SK = emu.sk, HUAWEICLOUD_SDK_PROJECT_ID = emu.project_id })
      assert.equal("aksk", c.auth)
      assert.equal(204, c:delete_bandwidth(id).status)
      c:close()
    end)

    it("uses HUAWEICLOUD_SDK_SECURITY_TOKEN with a temporary pair", function()
      local id = emu:create_bandwidth{ size = 1 }
      local c = new({ endpoint = emu.url, project_id = emu.project_id }, env_of{
        HUAWEICLOUD_SDK_AK = emu.temp_ak, HUAWEICLOUD_SDK_SK = emu.temp_sk,
        HUAWEICLOUD_SDK_SECURITY_TOKEN = emu.security_token })
      assert.equal(204, c:delete_bandwidth(id).status)
      c:close()
    end)

    it("falls back on OS_AUTH_TOKEN", function()
      local id = emu:create_bandwidth{ size = 1 }
      local c = new({ endpoint = emu.url, project_id = emu.project_id }, env_of{ OS_AUTH_TOKEN = emu.token })
      assert.equal("token", c.auth)
      assert.equal(204, c:delete_bandwidth(id).status)
      c:close()
    end)

    it("prefers explicit options over the environment, and AK/SK over OS_AUTH_TOKEN", function()
      local c = new({ endpoint = emu.url, project_id = emu.project_id, token = emu.token },
        env_of{ HUAWEICLOUD_SDK_AK = "env-ak-0000", HUAWEICLOUD_SDK_SK = "env-sk-0000" })
      assert.equal("token", c.auth)
      c:close()
      c = new({ endpoint = emu.url, project_id = emu.project_id },
        env_of{ HUAWEICLOUD_SDK_AK = emu.ak, HUAWEICLOUD_SDK_SK = emu.sk, OS_AUTH_TOKEN = emu.token })
      assert.equal("aksk", c.auth)
      c:close()
    end)

    it("takes the region from HUAWEICLOUD_SDK_REGION when no endpoint is given", function()
      local c = new({ project_id = emu.project_id, token = emu.token },
        env_of{ HUAWEICLOUD_SDK_REGION = "ap-southeast-1" })
      assert.equal("https://vpc.ap-southeast-1.myhuaweicloud.com", c.endpoint)
      c:close()
    end)

    it("names the missing half of a pair in the environment", function()
      local err = raised(new, { endpoint = emu.url, project_id = emu.project_id },
        env_of{ HUAWEICLOUD_SDK_AK = emu.ak })
      assert.equal("HUAWEICLOUD_SDK_SK", err.argument)
      err = raised(new, { endpoint = emu.url }, env_of{ HUAWEICLOUD_SDK_AK = emu.ak, HUAWEICLOUD_SDK_SK = emu.sk })
      assert.equal("project_id", err.argument)
      assert.matches("HUAWEICLOUD_SDK_PROJECT_ID", err.message)
      assert.equal(0, emu:stats().requests)
    end)

    it("works from the real process environment: eip.new{ endpoint = ... } alone", function()
      local id = emu:create_bandwidth{ size = 1 }
      local script = string.format([[
        local eip = require "eip"
        io.write(eip.new{ endpoint = %q }:delete_bandwidth(%q).status)]], emu.url, id)
      local cmd = "env -i PATH=\"$PATH\" LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='" .. host.cpath .. ";;'"
        .. " HUAWEICLOUD_SDK_AK=" .. q(emu.ak) .. " HUAWEICLOUD_SDK_SK=" .. q(emu.sk)
        .. " HUAWEICLOUD_SDK_PROJECT_ID=" .. q(emu.project_id) .. " " .. host.lua .. " -e " .. q(script) .. " 2>&1"
      local f = assert(io.popen(cmd))
      local out = f:read("*a")
      f:close()
      assert.equal("204", out)
    end)
  end)

  describe("IAM password authentication", function()
    local function iam_client(extra)
      return eip.new{ endpoint = emu.url, project_id = emu.project_id, auth = emu:iam_auth(extra) }
    end

    it("obtains a token once and reuses it for later calls", function()
      local c = iam_client()
      for _ = 1, 3 do
        local id = emu:create_bandwidth{ size = 1 }
        assert.equal(204, c:delete_bandwidth(id).status)
      end
      c:close()
      assert.equal(1, emu:stats().tokens_issued)
      local reqs = emu:requests()
      assert.equal("POST", reqs[1].method)
      assert.equal("/v3/auth/tokens?nocatalog=true", reqs[1].uri) -- no catalog: a smaller answer
      assert.is_string(reqs[2].headers["x-auth-token"])
    end)

    -- A delete whose first answer was lost, whose retry got a 401, and whose new token IAM then
    -- refused: it ends with its own 401 (attempts, the unanswered attempt before it), the
    -- refusal as its cause, so it may have acted; it once ended with IAM's error alone, read as
    -- certainly not done. In a batch too.
    it("a token refresh that fails after an unanswered attempt: the call's own error, which may have acted",
      function()
      local function client()
        local c = eip.new{ endpoint = emu.url, project_id = emu.project_id, auth = emu:iam_auth(),
          backoff_base = 0.01, backoff_cap = 0.01 }
        c:authenticate()
        return c
      end
      local function lost_then_refused(id)
        local path = emu:delete_path(id)
        emu:inject{ method = "DELETE", path = path, action = "lose_answer" }
        emu:inject{ method = "DELETE", path = path, status = 401,
          body = { error_code = "APIGW.0301", error_msg = "token expired" } }
        emu:inject{ method = "POST", path = "^/v3/auth/tokens", status = 401,
          body = { error = { code = 401, message = "The username or password is wrong." } } }
      end
      local single, c = emu:create_bandwidth{ size = 1 }, client()
      lost_then_refused(single)
      local ok, err = pcall(c.delete_bandwidth, c, single)
      assert.is_false(ok)
      assert.same({ 401, 2, true, true },
        { err.status, err.attempts, err.earlier_unanswered, eip.could_have_acted(err) })
      assert.matches("username or password is wrong", tostring(err), 1, true)
      assert.is_nil(emu:get_bandwidth(single)) -- (the lost answer's delete was carried out)
      c:close()
      local in_batch = emu:create_bandwidth{ size = 1 }
      c = client() -- (the first one holds IAM's refusal: it would send nothing)
      lost_then_refused(in_batch)
      local results = c:delete_bandwidths({ in_batch }, { concurrency = 1 })
      assert.same({ 401, true }, { results[1].status, eip.could_have_acted(results[1]) })
      assert.is_nil(emu:get_bandwidth(in_batch))
      c:close()
    end)

    -- The token's time (and the project's, learnt from it on the first call) counts in the
    -- call's deadline: a delete sent with a fresh timeout after a 0.7 s login ran to 1.9 s of a
    -- 1 s deadline; one left less than 50 ms is not sent.
    it("counts the token's fetch in the call's deadline", function()
      local monotime = require("eip.core").monotime
      local id = emu:create_bandwidth{ size = 1 }
      for _, project_id in ipairs{ emu.project_id, false } do
        emu:inject{ method = "POST", path = "^/v3/auth/tokens", action = "slow", delay = 0.7 }
        emu:inject{ method = "DELETE", action = "slow", delay = 1.2 }
        local c = eip.new{ endpoint = emu.url, project_id = project_id or nil, auth = emu:iam_auth(), timeout = 5,
          deadline = 1, max_attempts = 1 }
        local t0 = monotime()
        local ok, err = pcall(c.delete_bandwidth, c, id)
        local took = monotime() - t0
        assert.is_false(ok)
        assert.same({ "transport", "timeout" }, { err.kind, err.reason }, tostring(err))
        -- (1 s the deadline; 1.9 s a delete given a fresh timeout after the login)
        assert.is_true(took < 1.6, "took " .. took .. " s")
        c:close()
        emu:reset()
        id = emu:create_bandwidth{ size = 1 }
      end
      -- (the login answered when less than 50 ms of the deadline is left)
      local c = eip.new{ endpoint = emu.url, project_id = emu.project_id, auth = emu:iam_auth(), timeout = 5,
        deadline = 1, max_attempts = 1, transport = fixture.answering_late("/v3/auth/tokens") }
      local ok, err = pcall(c.delete_bandwidth, c, id)
      assert.is_false(ok)
      assert.same({ true, 0 }, { err.not_sent, err.attempts }, tostring(err))
      assert.matches("deadline (1 s) passed while its credentials were obtained", err.message, 1, true)
      for _, r in ipairs(emu:requests()) do assert.not_equal("DELETE", r.method) end
      c:close()
    end)

    it("counts a first show's or list's token (and project) in its deadline", function()
      local monotime = require("eip.core").monotime
      local id = emu:create_bandwidth{ size = 1 }
      local calls = { function(c) return c:show_bandwidth(id) end, function(c) return c:list_bandwidths() end }
      for _, call in ipairs(calls) do
        emu:inject{ method = "POST", path = "^/v3/auth/tokens", action = "slow", delay = 0.7 }
        emu:inject{ method = "GET", action = "slow", delay = 1.5 }
        local c = eip.new{ endpoint = emu.url, auth = emu:iam_auth(), timeout = 5, deadline = 1, max_attempts = 1 }
        local t0 = monotime()
        local ok, err = pcall(call, c)
        local took = monotime() - t0
        assert.is_false(ok)
        assert.same({ "transport", "timeout" }, { err.kind, err.reason }, tostring(err))
        -- (1 s the deadline; 2.2 s a read given a fresh timeout after the login)
        assert.is_true(took < 1.6, "took " .. took .. " s")
        c:close()
        emu:reset_counters()
      end
    end)

    it("learns the project id from the token when none is given", function()
      local id = emu:create_bandwidth{ size = 1 }
      local c = eip.new{ endpoint = emu.url, auth = emu:iam_auth() }
      assert.equal(204, c:delete_bandwidth(id).status)
      assert.equal(emu.project_id, c.project_id)
      c:close()
    end)

    -- A token is scoped to auth.project_id, and the API refuses it for another project's paths
    -- (400 VPC.0007): a project_id option that differs sent a login, then failed every call.
    it("refuses a project_id that differs from auth.project_id, sending nothing", function()
      local function with_id(project_id)
        local a = emu:iam_auth()
        a.project, a.project_id = nil, project_id
        return a
      end
      local ok, err = pcall(eip.new, { endpoint = emu.url, project_id = emu.other_project_id,
        auth = with_id(emu.project_id) })
      assert.is_false(ok)
      assert.same({ "usage", "project_id" }, { err.kind, err.argument }, tostring(err))
      assert.matches("auth.project_id", err.message, 1, true)
      assert.equal(0, emu:stats().requests)
      -- (the same id twice is no contradiction)
      local id = emu:create_bandwidth{ size = 1 }
      local c = eip.new{ endpoint = emu.url, project_id = emu.project_id, auth = with_id(emu.project_id) }
      assert.equal(204, c:delete_bandwidth(id).status)
      c:close()
    end)

    -- The token's answer is read whole whatever max_body says: cut, its project (and expiry)
    -- would be lost. An answer that names no project (a token scoped to a domain) is a usage
    -- error naming project_id, not a raw Lua error; nothing is sent to the API.
    it("reads the token's answer whole, and says when it names no project", function()
      local roles = {}
      for i = 1, 60 do roles[i] = { id = string.format("%032d", i), name = "role_with_a_long_name_" .. i } end
      local function token_answer(project)
        emu:inject{ method = "POST", path = "/v3/auth/tokens", status = 201,
          headers = { ["X-Subject-Token"] = emu.token },
          body = { token = { roles = roles, expires_at = "2099-01-01T00:00:00.000000Z", project = project } } }
      end
      local id = emu:create_bandwidth{ size = 1 }
      token_answer{ id = emu.project_id, name = "cn-north-4" }
      local c = eip.new{ endpoint = emu.url, auth = emu:iam_auth(), max_body = 1024 }
      assert.equal(204, c:delete_bandwidth(id).status)
      assert.equal(emu.project_id, c.project_id)
      c:close()
      for _, project in ipairs{ false, { name = "cn-north-4" } } do
        emu:reset_counters()
        token_answer(project or nil)
        c = eip.new{ endpoint = emu.url, auth = emu:iam_auth(), max_body = 1024 }
        local ok, err = pcall(c.delete_bandwidth, c, emu:create_bandwidth{ size = 1 })
        c:close()
        assert.is_false(ok)
        assert.is_true(eip.is_error(err), tostring(err))
        assert.same({ "usage", "project_id" }, { err.kind, err.argument })
        assert.matches("IAM's token names no project", err.message, 1, true)
        for _, r in ipairs(emu:requests()) do assert.equal("POST", r.method) end
      end
    end)

    -- The project id goes into every later path unescaped: one with a '/', '?' or '#' would send
    -- the delete to another bandwidth, reported as the one asked for.
    it("refuses a token whose project id is no id: an unusable answer, nothing more sent", function()
      for _, project_id in ipairs{ "p1/bandwidths/other#", "p1?x=", "..", string.rep("a", 65), 42 } do
        emu:reset_counters()
        -- (an unusable answer is a login without one, counted for every client: each case asks)
        require("eip.auth").forget_refusals()
        emu:inject{ method = "POST", path = "/v3/auth/tokens", status = 201,
          headers = { ["X-Subject-Token"] = emu.token },
          body = { token = { expires_at = "2099-01-01T00:00:00.000000Z", project = { id = project_id } } } }
        local c = eip.new{ endpoint = emu.url, auth = emu:iam_auth() }
        local ok, err = pcall(c.delete_bandwidth, c, "bw-1")
        c:close()
        assert.is_false(ok)
        assert.is_true(eip.is_error(err), tostring(err))
        if type(project_id) == "string" then
          assert.same({ "http", "Unusable Answer" }, { err.kind, err.reason }, tostring(project_id))
          assert.matches("IAM's project id is not an id", err.message, 1, true)
          -- (advice for a login: it made nothing, unlike a create)
          assert.matches("A login changes nothing", err.advice, 1, true)
        else -- a number names no project: as an answer without one
          assert.same({ "usage", "project_id" }, { err.kind, err.argument })
        end
        assert.is_false(err.could_have_acted == true)
        for _, r in ipairs(emu:requests()) do assert.equal("POST", r.method) end
      end
    end)

    -- The token an answer brings is a credential before the answer is read: a body or an
    -- echoing gateway's request id repeating it was shown in the debug log, and in the error
    -- of an answer that could not be used.
    it("redacts the token its answer brings wherever that answer repeats it", function()
      local fresh = "MIIfreshTOKENissued0123456789abcdef"
      for _, project_id in ipairs{ emu.project_id, "p1/x" } do
        emu:reset_counters()
        emu:inject{ method = "POST", path = "/v3/auth/tokens", status = 201,
          headers = { ["X-Subject-Token"] = fresh, ["X-Request-Id"] = "req-" .. fresh },
          body = { token = { id = fresh, expires_at = "2099-01-01T00:00:00.000000Z", project = { id = project_id } } } }
        local lines = {}
        local c = eip.new{ endpoint = emu.url, auth = emu:iam_auth(),
          log = function(line) lines[#lines + 1] = line end }
        local ok, err = pcall(c.show_bandwidth, c, "bw-1")
        c:close()
        assert.is_false(ok)
        local shown = table.concat(lines, "\n") .. "\n" .. tostring(err) .. "\n" .. tostring(err.request_id)
        assert.is_nil(shown:find("TOKENissued", 1, true), shown)
        assert.matches("<redacted>", table.concat(lines, "\n"), 1, true)
      end
      -- Another server's header of that name is no credential of the client's: it made ids
      -- refused as "holds a credential" and text redacted until the next IAM answer.
      local id = emu:create_bandwidth{ size = 1 }
      emu:inject{ method = "GET", status = 500, headers = { ["X-Subject-Token"] = id },
        body = { code = "VPC.0001", message = "internal error while reading " .. id } }
      local c = eip.new{ endpoint = emu.url, auth = emu:iam_auth(), max_attempts = 1 }
      local ok, err = pcall(c.show_bandwidth, c, id)
      assert.is_false(ok)
      assert.matches(id, err.message, 1, true)
      assert.equal(204, c:delete_bandwidth(id).status)
      c:close()
    end)

    it("fetches a new token once when a call answers 401, then succeeds", function()
      local c = iam_client()
      assert.equal(204, c:delete_bandwidth(emu:create_bandwidth{ size = 1 }).status)
      emu:expire_tokens()
      local res = c:delete_bandwidth(emu:create_bandwidth{ size = 1 })
      c:close()
      assert.equal(204, res.status)
      assert.equal(2, res.attempts)
      assert.equal(2, emu:stats().tokens_issued)
    end)

    -- VPC.0009: the account has no real-name authentication. A new token cannot change that:
    -- one attempt, no second login (it once logged in again and resent the delete every call).
    it("gets no new token for a 401 that new credentials cannot fix (VPC.0009)", function()
      local c = iam_client()
      local id = emu:create_bandwidth{ size = 1 }
      emu:inject{ method = "DELETE", path = emu:delete_path(id), status = 401, times = 2,
        body = { code = "VPC.0009", message = "real-name authentication fail." } }
      local err = raised(c.delete_bandwidth, c, id)
      c:close()
      assert.same({ 401, "VPC.0009", 1 }, { err.status, err.code, err.attempts })
      assert.equal(1, emu:stats().tokens_issued)
      assert.truthy(emu:get_bandwidth(id))
    end)

    -- A gateway that refuses every token (another site's IAM, a project of another region):
    -- each call logged in again and sent its delete twice (10 calls: 11 logins, 20 DELETEs). A
    -- token a 401 made that no answer has passed yet is not replaced again: the 401 is final.
    it("logs in again after a 401 once, not on every call, while no token passes", function()
      local c = eip.new{ endpoint = emu.url, project_id = emu.project_id, auth = emu:iam_auth(), max_attempts = 1 }
      emu:inject{ method = "DELETE", status = 401, times = -1,
        body = { error_code = "APIGW.0301", error_msg = "Incorrect IAM authentication information" } }
      for i = 1, 5 do
        local err = raised(c.delete_bandwidth, c, fixture.absent_id(i))
        assert.equal(401, err.status)
      end
      assert.equal(2, emu:stats().tokens_issued) -- the first login, and one after the first 401
      local deletes = 0
      for _, r in ipairs(emu:requests()) do if r.method == "DELETE" then deletes = deletes + 1 end end
      assert.equal(6, deletes) -- the first call's two, then one each
      -- Once a token passes, a later 401 (it expired) gets its new token again.
      emu:reset()
      assert.equal(204, c:delete_bandwidth(emu:create_bandwidth{ size = 1 }).status)
      emu:expire_tokens()
      assert.equal(204, c:delete_bandwidth(emu:create_bandwidth{ size = 1 }).status)
      c:close()
    end)

    -- The login body is written with a cjson instance of the library's own: a host that lowered
    -- the shared one's encode_max_depth made it nil, an empty POST went out, and IAM's 400 was
    -- held for the client's life.
    it("writes the login body whatever the host set on the shared cjson.safe", function()
      local shared = require "cjson.safe"
      shared.encode_max_depth(5)
      local ok, res = pcall(function()
        local c = iam_client()
        local r = c:delete_bandwidth(emu:create_bandwidth{ size = 1 })
        c:close()
        return r
      end)
      shared.encode_max_depth(1000)
      assert.is_true(ok, tostring(res))
      assert.equal(204, res.status)
    end)

    it("refreshes ahead of expiry, before the token can fail a call", function()
      -- A 2-second token is refreshed after half its lifetime, with no 401 in between.
      emu:set_token_ttl(2)
      local c = iam_client()
      assert.equal(1, c:delete_bandwidth(emu:create_bandwidth{ size = 1 }).attempts)
      require("socket").sleep(1.2)
      assert.equal(1, c:delete_bandwidth(emu:create_bandwidth{ size = 1 }).attempts)
      c:close()
      assert.equal(2, emu:stats().tokens_issued)
      assert.equal(0, emu:stats().auth_failures)
    end)

    -- IAM fails (503) from the token's refresh time on: the batch goes on with the token it has,
    -- which is still valid; only when that is about to expire does a call fail, not sent.
    -- The clock the client reads (os.time) is moved forward; the emulator's is not.
    it("keeps a valid token when its renewal fails, and sends nothing once it is about to expire", function()
      emu:set_token_ttl(3600) -- refreshed 600 s ahead of expiry, kept until 60 s before it
      local c = eip.new{ endpoint = emu.url, project_id = emu.project_id, auth = emu:iam_auth(), max_attempts = 1 }
      local real_time = os.time
      local ok, err = pcall(function()
        assert.equal(204, c:delete_bandwidth(emu:create_bandwidth{ size = 1 }).status)
        emu:inject{ method = "POST", path = "/v3/auth/tokens$", status = 503, times = -1 }
        local ids = emu:create_bandwidths(3)
        emu:reset_counters()
        local t0 = real_time()
        os.time = function(t) return t and real_time(t) or real_time() + 3010 end -- luacheck: ignore 122
        local results, summary = c:delete_bandwidths(ids)
        assert.same({ 3, 0, 0 }, { summary.deleted, summary.failed, summary.not_sent }, tostring(results[1]))
        assert.equal(1, iam_logins(), "the renewal was tried once, its failure held")
        -- 30 s before expiry: the failure stands, and the delete is not sent.
        os.time = function(t) return t and real_time(t) or t0 + 3570 end -- luacheck: ignore 122
        local auth = require "eip.auth"
        local hold = auth.TRANSIENT_FAILURE_HOLD
        auth.TRANSIENT_FAILURE_HOLD = 0
        emu:reset_counters()
        local e = raised(c.delete_bandwidth, c, emu:create_bandwidth{ size = 1 })
        auth.TRANSIENT_FAILURE_HOLD = hold
        assert.same({ "http", 503, "/v3/auth/tokens", true, 0 }, { e.kind, e.status, e.path, e.not_sent, e.attempts })
        for _, r in ipairs(emu:requests()) do assert.not_equal("DELETE", r.method) end
      end)
      os.time = real_time -- luacheck: ignore 122
      c:close()
      assert(ok, err)
    end)

    -- IAM failing (503; such a login is sent once): the delete that needed the token was not sent,
    -- whether the token was for the call or for finding the project (a project name, no id);
    -- and it could not have acted (the token request's unanswered attempts are not the call's).
    it("a delete whose token IAM could not give is not sent, and could not have acted", function()
      emu:inject{ method = "POST", path = "/v3/auth/tokens$", status = 503, times = -1 }
      for _, auth in ipairs{ emu:iam_auth(), emu:iam_auth{ project = "cn-north-4" } } do
        local opts = { endpoint = emu.url, auth = auth, max_attempts = 2, backoff_base = 0.01 }
        if not auth.project then opts.project_id = emu.project_id end
        local c = eip.new(opts)
        local err = raised(c.delete_bandwidth, c, fixture.absent_id(1))
        c:close()
        assert.same({ "http", 503, "/v3/auth/tokens", true, 0, false },
          { err.kind, err.status, err.path, err.not_sent, err.attempts, eip.could_have_acted(err) })
        -- (the path is IAM's: the error names the bandwidth whose delete it kept from going)
        assert.equal(fixture.absent_id(1), err.bandwidth_id)
      end
      for _, r in ipairs(emu:requests()) do assert.equal("POST", r.method) end
    end)

    it("maps a wrong password to a 401 without showing it", function()
      local c = iam_client{ password = "definitely-wrong-password" }
      local err = raised(c.delete_bandwidth, c, "bw-1")
      c:close()
      assert.equal("http", err.kind)
      assert.equal(401, err.status)
      assert.equal("/v3/auth/tokens", err.path)
      assert.matches("^%x+$", err.request_id, "IAM's X-IAM-Trace-Id") -- what IAM's support asks for
      no_secret_in(tostring(err), { "definitely-wrong-password", emu.iam.password })
      assert.equal(0, emu:stats().tokens_issued)
      assert.equal(1, #emu:requests(), "a refused login must not be tried again")
    end)

    -- Each client remembered its own refusal only: the one-shot form in a loop (a client per
    -- call), or a client per task, sent the wrong password once per client, five of them a
    -- locked IAM user. The refusal is every client's in the process (same credentials).
    it("a refused login is every client's with those credentials: the one-shot form sends it once", function()
      local auth = require "eip.auth"
      local wrong = emu:iam_auth{ password = "Wrong-Passw0rd-of-clients" }
      local ok, err = pcall(function()
        for _ = 1, 3 do
          local e = raised(eip.delete_bandwidth, { endpoint = emu.url, project_id = emu.project_id, auth = wrong,
            bandwidth_id = fixture.absent_id(1) })
          assert.same({ 401, true }, { e.status, e.not_sent })
        end
        local c = eip.new{ endpoint = emu.url, project_id = emu.project_id, auth = wrong }
        local e = raised(c.delete_bandwidth, c, fixture.absent_id(1))
        c:close()
        assert.equal(401, e.status)
        no_secret_in(tostring(e), { "Wrong-Passw0rd-of-clients" })
        assert.equal(1, iam_logins())
        -- other credentials are not concerned; forgetting lets the next client ask again
        assert.equal(204, iam_client():delete_bandwidth(emu:create_bandwidth{ size = 1 }).status)
        auth.forget_refusals()
        raised(eip.delete_bandwidth, { endpoint = emu.url, project_id = emu.project_id, auth = wrong,
          bandwidth_id = fixture.absent_id(1) })
        assert.equal(3, iam_logins())
      end)
      auth.forget_refusals()
      assert(ok, err)
    end)

    -- The process-wide refusals were never swept: a worker meeting ever new credentials (a
    -- tenant's each, a password mistyped again and again) kept every one, and its password, for
    -- its life.
    it("forgets the process-wide refusals that have ended as new ones come", function()
      local auth, core = require "eip.auth", require "eip.core"
      local every, real, shift = auth.SWEEP_AFTER, core.monotime, 0
      auth.SWEEP_AFTER = 4
      auth.forget_refusals()
      core.monotime = function() return real() + shift end
      local function refused(i)
        local e = raised(eip.delete_bandwidth, { endpoint = emu.url, project_id = emu.project_id,
          auth = emu:iam_auth{ password = "Wrong-Passw0rd-" .. i }, bandwidth_id = fixture.absent_id(1) })
        assert.equal(401, e.status)
      end
      local ok, err = pcall(function()
        for i = 1, 6 do refused(i) end
        assert.equal(6, auth.kept_logins(), "a quarter of an hour: all kept")
        shift = 901
        for i = 7, 12 do refused(i) end
        assert.is_true(auth.kept_logins() <= 6, "the ended ones forgotten: " .. auth.kept_logins())
        -- a refusal still running is kept: the same wrong password is not sent again
        refused(12)
        assert.equal(12, iam_logins())
      end)
      core.monotime, auth.SWEEP_AFTER = real, every
      auth.forget_refusals()
      assert(ok, err)
    end)

    -- Logins without an answer (IAM may have counted each, a wrong password a failed login) were
    -- counted per client: the one-shot form in a loop against a slow IAM sent one per call.
    it("logins without an answer are counted for every client with those credentials", function()
      emu:inject{ method = "POST", path = "/v3/auth/tokens$", action = "slow", delay = 0.3, times = -1 }
      local opts = { endpoint = emu.url, project_id = emu.project_id, timeout = 0.1, max_attempts = 1,
        auth = emu:iam_auth{ password = "Wrong-Passw0rd-unanswered" } }
      local ok, err = pcall(function()
        for i = 1, 4 do
          opts.bandwidth_id = fixture.absent_id(i)
          local e = raised(eip.delete_bandwidth, opts)
          assert.is_true(e.not_sent)
        end
        assert.equal(2, iam_logins(), "the second in a row holds the next for a minute")
      end)
      require("eip.auth").forget_refusals()
      assert(ok, err)
    end)

    it("asks IAM again after a throttled login (429), once a short hold has passed", function()
      local auth = require "eip.auth"
      local hold = auth.TRANSIENT_FAILURE_HOLD
      auth.TRANSIENT_FAILURE_HOLD = 2 -- seconds: the second call comes well within it, the third after it
      emu:inject{ method = "POST", path = "/v3/auth/tokens$", status = 429,
        body = { error_code = "APIGW.0308", error_msg = "The throttling threshold has been reached" } }
      local c = eip.new{ endpoint = emu.url, project_id = emu.project_id, auth = emu:iam_auth(), max_attempts = 1 }
      local ok, err = pcall(function()
        assert.equal(429, raised(c.delete_bandwidth, c, "bw-1").status)
        -- within the hold: the same failure, IAM not asked (a batch must not flood a busy IAM)
        assert.equal(429, raised(c.delete_bandwidth, c, "bw-1").status)
        assert.equal(1, #emu:requests())
        socket.sleep(2.2)
        assert.equal(204, c:delete_bandwidth(emu:create_bandwidth{ size = 1 }).status)
        assert.equal(1, emu:stats().tokens_issued)
      end)
      auth.TRANSIENT_FAILURE_HOLD = hold
      c:close()
      assert(ok, err)
    end)

    -- An expires_at already past by the client's clock (a clock that is off, a stale answer) made
    -- the token due for renewal at once: every request logged in again (a batch of 20: 20 logins).
    it("takes an expiry already past as unknown: one login, not one per request", function()
      -- IAM's clock two hours behind, its tokens living one: each "expired" an hour before it came
      emu:set_clock_offset(-7200)
      emu:set_token_ttl(3600)
      local c = iam_client()
      local ok, err = pcall(function()
        local _, summary = c:delete_bandwidths(emu:create_bandwidths(5))
        assert.equal(5, summary.deleted)
        for _ = 1, 3 do assert.equal(204, c:delete_bandwidth(emu:create_bandwidth{ size = 1 }).status) end
        assert.equal(1, emu:stats().tokens_issued)
      end)
      emu:set_clock_offset(0)
      emu:set_token_ttl(86400)
      c:close()
      assert(ok, err)
    end)

    -- A clock far from IAM's (here a day's token issued by an IAM almost a day behind this
    -- machine) read expires_at as seconds away: the token was renewed every 10 s, all day long.
    -- Its lifetime, expires_at less issued_at (both IAM's clock), counts from when it came.
    it("counts a token's lifetime on IAM's clock: a clock a day off does not renew it every few seconds", function()
      emu:set_clock_offset(-(86400 - 20))
      local lines = {}
      local c = eip.new{ endpoint = emu.url, project_id = emu.project_id, auth = emu:iam_auth(),
        log = function(line) lines[#lines + 1] = line end }
      local real_time = os.time
      local ok, err = pcall(function()
        assert.equal(204, c:delete_bandwidth(emu:create_bandwidth{ size = 1 }).status)
        os.time = function(t) return t and real_time(t) or real_time() + 600 end -- luacheck: ignore 122
        assert.equal(204, c:delete_bandwidth(emu:create_bandwidth{ size = 1 }).status)
        assert.equal(1, emu:stats().tokens_issued)
        assert.matches("IAM's clock is 86380 s behind this machine's", table.concat(lines, "\n"), 1, true)
      end)
      os.time = real_time -- luacheck: ignore 122
      emu:set_clock_offset(0)
      c:close()
      assert(ok, err)
    end)

    -- After a 401, the one new token that was refused too kept the client from logging in again
    -- until the old token's expiry (a day): a revoked token, then a new one revoked as it came,
    -- failed every call of a long-lived nginx worker, though a login would have worked.
    it("logs in again after a hold when the token a 401 made was refused too", function()
      local auth = require "eip.auth"
      local hold = auth.REFRESH_HOLD
      auth.REFRESH_HOLD = 0.3
      local revoke = true
      local c = eip.new{ endpoint = emu.url, project_id = emu.project_id, auth = emu:iam_auth(),
        on_response = function(info)
          if revoke and info.operation == "iam_token" then emu:expire_tokens() end
        end }
      local ok, err = pcall(function()
        revoke = false
        assert.equal(204, c:delete_bandwidth(emu:create_bandwidth{ size = 1 }).status)
        emu:expire_tokens()
        revoke = true -- the next token is revoked as it is issued
        local id = emu:create_bandwidth{ size = 1 }
        assert.equal(401, raised(c.delete_bandwidth, c, id).status)
        assert.equal(2, emu:stats().tokens_issued)
        assert.equal(401, raised(c.delete_bandwidth, c, id).status)
        assert.equal(2, emu:stats().tokens_issued, "within the hold: no login")
        revoke = false
        socket.sleep(0.4)
        assert.equal(204, c:delete_bandwidth(id).status)
        assert.equal(3, emu:stats().tokens_issued)
      end)
      auth.REFRESH_HOLD = hold
      c:close()
      assert(ok, err)
    end)

    -- A login that times out may have reached IAM's password check: with a wrong password each
    -- counted towards the account's lockout, while the caller saw only timeouts. It was sent
    -- three times per call, and again after every 5 s hold.
    it("sends a login that timed out once, and holds the second in a row for a minute", function()
      local auth = require "eip.auth"
      local hold = auth.TRANSIENT_FAILURE_HOLD
      auth.TRANSIENT_FAILURE_HOLD = 0 -- (the first unknown outcome's hold: none here)
      emu:inject{ method = "POST", path = "/v3/auth/tokens$", action = "slow", delay = 1, times = -1 }
      local c = eip.new{ endpoint = emu.url, project_id = emu.project_id, auth = emu:iam_auth(), timeout = 0.3,
        backoff_base = 0.01 }
      local ok, err = pcall(function()
        local e = raised(c.delete_bandwidth, c, "bw-1")
        assert.same({ "transport", "timeout", "/v3/auth/tokens" }, { e.kind, e.reason, e.path })
        assert.equal(1, iam_logins(), "not sent again within the call")
        raised(c.delete_bandwidth, c, "bw-1")
        assert.equal(2, iam_logins())
        e = raised(c.delete_bandwidth, c, "bw-1")
        assert.same({ "transport", "timeout" }, { e.kind, e.reason })
        assert.equal(2, iam_logins(), "the second unknown outcome in a row is held")
      end)
      auth.TRANSIENT_FAILURE_HOLD = hold
      c:close()
      assert(ok, err)
    end)

    -- A 5xx login may have reached IAM's password check as much as one that timed out (the
    -- README's IAM section): not sent again within the call, whatever max_attempts, where the
    -- Retries table retries a 5xx of every other request. The call was not sent, and retryable.
    it("sends a login answered 500, 502, 503 or 504 once, though the call may make three attempts", function()
      local auth = require "eip.auth"
      local hold = auth.TRANSIENT_FAILURE_HOLD
      auth.TRANSIENT_FAILURE_HOLD = 0
      local ok, err = pcall(function()
        for _, status in ipairs{ 500, 502, 503, 504 } do
          emu:reset()
          auth.forget_refusals() -- (the process's clients share a login without an answer's hold)
          emu:inject{ method = "POST", path = "/v3/auth/tokens$", status = status, times = -1 }
          local c = eip.new{ endpoint = emu.url, project_id = emu.project_id, auth = emu:iam_auth(), max_attempts = 3,
            backoff_base = 0.001 }
          local e = raised(c.delete_bandwidth, c, "bw-1")
          c:close()
          assert.same({ "http", status, "/v3/auth/tokens", true, 0, true },
            { e.kind, e.status, e.path, e.not_sent, e.attempts, e.retryable })
          assert.equal(1, iam_logins(), status .. ": not sent again within the call")
        end
      end)
      auth.TRANSIENT_FAILURE_HOLD = hold
      assert(ok, err)
    end)

    -- Single IAM hiccups hours apart escalated to the 15-minute hold as if in a row.
    it("counts logins without an answer in a row only within a quarter of an hour", function()
      local auth = require "eip.auth"
      local core = require "eip.core"
      local hold, real = auth.TRANSIENT_FAILURE_HOLD, core.monotime
      auth.TRANSIENT_FAILURE_HOLD = 0
      local shift = 0
      core.monotime = function() return real() + shift end
      local c = eip.new{ endpoint = emu.url, project_id = emu.project_id, auth = emu:iam_auth(), max_attempts = 1 }
      local ok, err = pcall(function()
        emu:inject{ method = "POST", path = "/v3/auth/tokens$", status = 503 }
        assert.equal(503, raised(c.delete_bandwidth, c, "bw-1").status)
        shift = 3 * 3600
        emu:inject{ method = "POST", path = "/v3/auth/tokens$", status = 503 }
        assert.equal(503, raised(c.delete_bandwidth, c, "bw-1").status)
        assert.equal(2, iam_logins())
        -- IAM healthy again: asked at once, not held a minute for two outcomes hours apart
        assert.equal(204, c:delete_bandwidth(emu:create_bandwidth{ size = 1 }).status)
        assert.equal(3, iam_logins())
      end)
      core.monotime = real
      auth.TRANSIENT_FAILURE_HOLD = hold
      c:close()
      assert(ok, err)
    end)

    -- Inside nginx one client serves many requests at once, each a coroutine that yields while
    -- its socket waits. Coroutines and a transport that yields the same way stand in for them,
    -- where a coroutine can yield through pcall (LuaJIT, as in nginx, and Lua 5.2 on; not 5.1).
    local coroutines = require "spec.support.coroutines"
    local yields_through_pcall = coroutines.yields_through_pcall
    local it_yielding = yields_through_pcall() and it or function() end

    -- A client logging in to IAM as "u" (`password`, default "p") through a transport whose
    -- every request `send(req)` answers (it may yield, as a cosocket waiting), its sleep yielding
    -- too; `extra`: more options of eip.new.
    local function answering_client(send, password, extra)
      local opts = { endpoint = "http://127.0.0.1:9", project_id = emu.project_id, max_attempts = 1,
        transport = { name = "yielding", send = function(_, req) return send(req) end, close = function() end },
        sleep = function() coroutine.yield() end,
        auth = { username = "u", password = password or "p", domain = "d", project_id = emu.project_id,
          iam_endpoint = "http://127.0.0.1:10" } }
      for k, v in pairs(extra or {}) do opts[k] = v end
      return eip.new(opts)
    end

    -- Ten calls c:delete_bandwidth("bw-1" .. "bw-10"), each in a coroutine, resumed in turn until
    -- every one has ended: what each returned or raised (a result or an error table), by call.
    local function ten_calls(c)
      local calls, out = {}, {}
      for i = 1, 10 do calls[i] = function() return c:delete_bandwidth("bw-" .. i) end end
      for i, res in ipairs(coroutines.together(calls)) do out[i] = res[2] end
      return out
    end
    it_yielding("asks IAM once for calls that need a token at the same time (a wrong password: one login)", function()
      local logins, deletes = 0, 0
      local c = answering_client(function(req)
        coroutine.yield()
        if req.url:find("/v3/auth/tokens", 1, true) then
          logins = logins + 1
          return { status = 401, body = '{"error":{"code":401,"message":"The username or password is wrong."}}' }
        end
        deletes = deletes + 1
        return { status = 204, body = "" }
      end, "wrong-password")
      local statuses = {}
      for i, err in ipairs(ten_calls(c)) do statuses[i] = err.status end
      assert.same({ 1, 0, 10 }, { logins, deletes, #statuses })
      for i = 1, 10 do assert.equal(401, statuses[i]) end
    end)

    -- The same with a transport that yields but the client's own sleep (the system's): a call
    -- cannot wait for another coroutine's login then, and each logged in, the wrong password
    -- sent ten times. It fails at once instead, nothing sent; the main thread still asks itself.
    it_yielding("without a sleep that yields, a call meeting another coroutine's login fails unsent", function()
      for _, password in ipairs{ "wrong-password", "p" } do
        local logins, deletes = 0, 0
        local transport = { name = "yielding", close = function() end }
        function transport.send(_, req)
          coroutine.yield()
          if req.url:find("/v3/auth/tokens", 1, true) then
            logins = logins + 1
            if password ~= "p" then
              return { status = 401, body = '{"error":{"code":401,"message":"The username or password is wrong."}}' }
            end
            return { status = 201, subject_token = "token-1", body = '{"token":{"expires_at":"2099-01-01T00:00:00Z"}}' }
          end
          deletes = deletes + 1
          return { status = 204, body = "" }
        end
        local c = eip.new{ endpoint = "http://127.0.0.1:9", project_id = emu.project_id, max_attempts = 1,
          transport = transport, auth = { username = "u", password = password, domain = "d",
            project_id = emu.project_id, iam_endpoint = "http://127.0.0.1:10" } }
        local outcomes = ten_calls(c)
        assert.equal(1, logins, password)
        assert.equal(password == "p" and 204 or 401, outcomes[1].status)
        for i = 2, 10 do
          local err = outcomes[i]
          assert.same({ "transport", "timeout", true, true }, { err.kind, err.reason, err.not_sent, err.retryable })
          assert.matches("give the client a sleep that yields", tostring(err), 1, true)
        end
        assert.equal(password == "p" and 1 or 0, deletes)
        -- once it is done, a call goes through (its token, or the refusal remembered: no login)
        local co = coroutine.create(function() return pcall(c.delete_bandwidth, c, "bw-11") end)
        local _, fine, res
        repeat _, fine, res = assert(coroutine.resume(co)) until coroutine.status(co) == "dead"
        assert.equal(password == "p" and 204 or 401, fine and res.status or res.status)
        assert.equal(1, logins, "no second login")
      end
    end)

    -- The project an AK/SK client looks up by its region, needed by calls at the same time
    -- (nginx's requests, a scheduler's coroutines): each looked it up, one signed request to
    -- IAM each. One lookup now; the others wait for it, and its failure is theirs.
    it_yielding("looks the project up once for calls that need it at the same time", function()
      for _, answer in ipairs{ 200, 401 } do
        local lookups, deletes = 0, 0
        local transport = { name = "yielding", close = function() end }
        function transport.send(_, req)
          coroutine.yield()
          if req.url:find("/v3/projects", 1, true) then
            lookups = lookups + 1
            if answer == 401 then
              return { status = 401, body = '{"error_code":"APIGW.0301","error_msg":"bad"}' }
            end
            return { status = 200,
              body = '{"projects":[{"id":"0a1b2c3d4e5f60718293a4b5c6d7e8f9","name":"cn-north-4"}]}' }
          end
          deletes = deletes + 1
          return { status = 204, body = "" }
        end
        local c = eip.new{ region = "cn-north-4", ak = "AKAKAKAKAKAKAKAKAKAK", sk = string.rep("s", 40),
          max_attempts = 1, transport = transport, sleep = function() coroutine.yield() end }
        local outcomes = ten_calls(c)
        assert.equal(1, lookups, answer)
        for i = 1, 10 do assert.equal(answer == 200 and 204 or 401, outcomes[i].status, i) end
        assert.equal(answer == 200 and 10 or 0, deletes)
      end
    end)

    -- Calls whose 401s come together (nginx's requests, a scheduler's coroutines) all wait for one
    -- new token: when it is refused too, the hold before the next login doubles once, not once
    -- per call (ten calls made a minute's hold 15 minutes).
    it_yielding("doubles the hold once when a token a 401 made is refused to many calls at once", function()
      local auth = require "eip.auth"
      local core = require "eip.core"
      local real, shift = core.monotime, 0
      core.monotime = function() return real() + shift end
      local logins = 0
      local c = answering_client(function(req)
        coroutine.yield()
        if req.url:find("/v3/auth/tokens", 1, true) then
          logins = logins + 1
          return { status = 201, subject_token = "token-" .. logins,
            body = '{"token":{"expires_at":"2099-01-01T00:00:00Z"}}' }
        end
        return { status = 401, body = '{"error_code":"APIGW.0307","error_msg":"The token expires."}' }
      end)
      local ok, err = pcall(function()
        local one = coroutine.create(function() return pcall(c.delete_bandwidth, c, "bw-0") end)
        repeat assert(coroutine.resume(one)) until coroutine.status(one) == "dead"
        assert.equal(2, logins, "a new token after the 401, refused too: held a minute")
        shift = auth.REFRESH_HOLD + 1
        for _, res in ipairs(ten_calls(c)) do assert.equal(401, res.status) end
        assert.equal(3, logins, "one login for the ten calls")
        -- refused again: held twice as long (two minutes), then a call logs in again
        shift = shift + 2 * auth.REFRESH_HOLD + 1
        local after = coroutine.create(function() return pcall(c.delete_bandwidth, c, "bw-11") end)
        repeat assert(coroutine.resume(after)) until coroutine.status(after) == "dead"
        assert.equal(4, logins, "logged in again after a doubled hold")
      end)
      core.monotime = real
      assert(ok, err)
    end)

    -- A transport that answers IAM with a token and deletes with 204, yielding first when it runs
    -- in a coroutine (a cosocket waiting), and the client that uses it, whose sleep yields too.
    local function yielding_client(timeout)
      local counts = { logins = 0, deletes = 0 }
      local c = answering_client(function(req)
        local login = req.url:find("/v3/auth/tokens", 1, true) ~= nil
        local n = counts[login and "logins" or "deletes"] + 1 -- counted when sent
        counts[login and "logins" or "deletes"] = n
        local co, main = coroutine.running()
        if co and not main then coroutine.yield() end
        if login then
          return { status = 201, subject_token = "token-" .. n,
            body = '{"token":{"expires_at":"2099-01-01T00:00:00.000000Z"}}' }
        end
        return { status = 204, body = "" }
      end, "p", { timeout = timeout or 5 })
      return c, counts
    end

    -- Resumes co until it ends (a pause between resumes, as an event loop would take), within
    -- `limit` seconds; returns what its function returned.
    local function run_out(co, limit)
      local t0 = socket.gettime()
      while true do
        local ok, a, b = coroutine.resume(co)
        assert(ok, a)
        if coroutine.status(co) == "dead" then return a, b end
        assert(socket.gettime() - t0 < limit, "still waiting after " .. limit .. " s")
        socket.sleep(0.005)
      end
    end

    -- The main thread cannot yield: waiting there could only block the fetch it waits for.
    it_yielding("does not wait on the main thread for a fetch a coroutine is making: asks on its own", function()
      local c, counts = yielding_client()
      local first = coroutine.create(function() return pcall(c.delete_bandwidth, c, "bw-1") end)
      assert(coroutine.resume(first)) -- its token request is under way
      local ok, res = pcall(c.delete_bandwidth, c, "bw-2")
      assert(ok, tostring(res))
      assert.equal(204, res.status)
      local ok1, res1 = run_out(first, 10)
      assert(ok1, tostring(res1))
      assert.equal(204, res1.status)
      assert.same({ 2, 2 }, { counts.logins, counts.deletes })
    end)

    -- A scheduler that closes each task it gave up on (Lua 5.4's coroutine.close) while its login
    -- hangs: each login went out and may have been checked, a wrong password counted. Counted as
    -- logins without an answer, as aborted ones are: from the second, the next ones are held. (Each
    -- next task took the closed one's over and logged in: one login per task, none counted.)
    local close = rawget(coroutine, "close") -- (Lua 5.4)
    local it_closing = (yields_through_pcall() and close) and it or function() end
    it_closing("counts a login whose coroutine was closed as unanswered: the second holds the next", function()
      local logins = 0
      local c = answering_client(function(req)
        if req.url:find("/v3/auth/tokens", 1, true) then
          logins = logins + 1
          while true do coroutine.yield() end -- no answer before the caller gives up
        end
        return { status = 204, body = "" }
      end)
      local ended = {}
      for i = 1, 5 do
        local co = coroutine.create(function() return pcall(c.delete_bandwidth, c, "bw-" .. i) end)
        for _ = 1, 5 do
          local _, _, err = assert(coroutine.resume(co))
          if coroutine.status(co) == "dead" then
            ended[i] = err
            break
          end
        end
        if coroutine.status(co) ~= "dead" then close(co) end
      end
      assert.equal(2, logins)
      assert.is_nil(ended[1])
      assert.is_nil(ended[2])
      for i = 3, 5 do
        assert.same({ "refused", "unanswered", true }, { ended[i].kind, ended[i].reason, ended[i].not_sent }, i)
      end
    end)

    -- A login found lost (its coroutine not resumed within its budget) is counted once as one
    -- without an answer, whatever it does when resumed; and, resumed, it leaves the login that
    -- took it over counted when that one is lost in turn. `answers[n]`: the n-th login's answer
    -- (a function: it waits until it returns one); every call in a coroutine of its own, resumed
    -- until it ends or `turns` are up. The clock is moved by `shift`.
    local function lost_logins(answers)
      local core = require "eip.core"
      local real, clock = core.monotime, { shift = 0 }
      core.monotime = function() return real() + clock.shift end
      local logins = 0
      local c = answering_client(function(req)
        if not req.url:find("/v3/auth/tokens", 1, true) then return { status = 204, body = "" } end
        logins = logins + 1
        local answer = answers[logins]
        while type(answer) == "function" do
          local got = answer()
          if got then answer = got else coroutine.yield() end
        end
        return answer
      end, "p", { timeout = 0.2 })
      local function call(id, turns)
        local co = coroutine.create(function() return pcall(c.delete_bandwidth, c, id) end)
        for _ = 1, turns or 20 do
          local _, ok, res = assert(coroutine.resume(co))
          if coroutine.status(co) == "dead" then return { ok = ok, res = res } end
        end
        return co
      end
      return c, clock, function() return logins end, call, function() core.monotime = real end
    end
    local TIMEOUT = { status = 0, curl_code = 28, curl_error = "Operation timed out", error_kind = "timeout",
      elapsed = 0.2 }
    local TOKEN = { status = 201, subject_token = "token-x", body = '{"token":{"expires_at":"2099-01-01T00:00:00Z"}}' }

    it_yielding("counts a lost login once when it comes back without an answer", function()
      local released = false
      local _, clock, logins, call, restore = lost_logins{
        function() return released and TIMEOUT end, TIMEOUT, TOKEN }
      local ok, err = pcall(function()
        local a = call("bw-1", 3) -- its login hangs
        assert.equal("thread", type(a))
        clock.shift = 10 -- past its budget: the next call finds it lost (1), and its own login times out (2)
        local b = call("bw-2")
        assert.same({ false, "timeout" }, { b.ok, b.res.reason })
        released = true -- the lost login comes back without an answer: counted already
        repeat assert(coroutine.resume(a)) until coroutine.status(a) == "dead"
        clock.shift = 10 + 60 + 1 -- after the hold two such logins bring (not the third's)
        local c3 = call("bw-3")
        assert(c3.ok, tostring(c3.res))
        assert.same({ 204, 3 }, { c3.res.status, logins() })
      end)
      restore()
      assert(ok, err)
    end)

    it_yielding("counts the login that took a lost one over when it is lost too", function()
      local released = false
      local _, clock, logins, call, restore = lost_logins{
        function() return released and { status = 429, body = "" } end, function() return false end, TIMEOUT, TOKEN }
      local ok, err = pcall(function()
        local a = call("bw-1", 3) -- its login hangs
        clock.shift = 10 -- the next call finds it lost (1), and logs in: that login hangs too
        local b = call("bw-2", 3)
        assert.equal("thread", type(b))
        released = true -- the first comes back, answered (a 429: IAM said it did nothing)
        repeat assert(coroutine.resume(a)) until coroutine.status(a) == "dead"
        clock.shift = 20 -- the second is lost (1), the third times out (2): the next ones are held
        local c3 = call("bw-3")
        assert.same({ false, "timeout", 3 }, { c3.ok, c3.res.reason, logins() })
        clock.shift = 30
        local d = call("bw-4")
        assert.same({ false, "timeout", 3 }, { d.ok, d.res.reason, logins() }, "held: not sent") -- (C's error)
      end)
      restore()
      assert(ok, err)
    end)

    -- A fetch whose coroutine is never resumed (a light thread killed while it waits) holds the
    -- calls after it no longer than their own timeout, and is taken over once past its own.
    it_yielding("waits for an abandoned fetch no longer than its own timeout, then takes it over", function()
      local c, counts = yielding_client(0.2)
      local abandoned = coroutine.create(function() return pcall(c.delete_bandwidth, c, "bw-1") end)
      assert(coroutine.resume(abandoned)) -- its token request is under way, and never ends
      local t0 = socket.gettime()
      local ok, err = run_out(coroutine.create(function() return pcall(c.delete_bandwidth, c, "bw-2") end), 10)
      local took = socket.gettime() - t0
      assert.is_false(ok)
      assert.is_true(eip.is_error(err), tostring(err))
      assert.same({ "transport", "timeout", true, true }, { err.kind, err.reason, err.not_sent, err.retryable })
      assert.equal("/v3/auth/tokens", err.path)
      assert.is_true(took < 5, "waited " .. took .. " s with a timeout of 0.2 s")
      assert.same({ 1, 0 }, { counts.logins, counts.deletes }, "the waiting call sent nothing")
      -- Past the abandoned fetch's own bounds (0.2 s, and a second's margin), a call fetches.
      socket.sleep(1.3)
      local ok3, res = run_out(coroutine.create(function() return pcall(c.delete_bandwidth, c, "bw-3") end), 10)
      assert(ok3, tostring(res))
      assert.equal(204, res.status)
      assert.same({ 2, 1 }, { counts.logins, counts.deletes })
    end)

    it("validates the auth table before any I/O", function()
      local cases = {
        { "auth.username", { password = "p", domain = "d", project = "cn-north-4" } },
        { "auth.password", { username = "u", domain = "d", project = "cn-north-4" } },
        { "auth.project", { username = "u", password = "p", domain = "d" } },
        { "auth", { username = "u", password = "p", domain = "d", project = "cn-north-4", pasword = "x" } },
      }
      -- Names no account has (a line read from a file with its newline, blanks, bytes that are
      -- no UTF-8, a huge one) would each be a failed login carrying the password.
      for _, bad in ipairs{ { "username", "emu-operator\n" }, { "username", " " }, { "username", " ops" },
                            { "username", ("x"):rep(256) }, { "domain", "emu-domain\r\n" },
                            { "domain", "\255\254" }, { "domain", "\192\175" }, { "domain", "a\tb" } } do
        local a = emu:iam_auth()
        a[bad[1]] = bad[2]
        cases[#cases + 1] = { "auth." .. bad[1], a }
      end
      for _, case in ipairs(cases) do
        local err = raised(eip.new, { endpoint = emu.url, auth = case[2] })
        assert.equal(case[1], err.argument)
        assert.is_nil(tostring(err):find(emu.iam.password, 1, true))
      end
      assert.equal(0, emu:stats().requests)
      -- Chinese and other UTF-8 names are names
      local a = emu:iam_auth()
      a.domain = "运维-account"
      eip.new{ endpoint = emu.url, auth = a }:close()
    end)

    it("takes the IAM endpoint from HUAWEICLOUD_SDK_IAM_ENDPOINT when auth.iam_endpoint is not given", function()
      local id = emu:create_bandwidth{ size = 1 }
      local a = emu:iam_auth()
      a.iam_endpoint = nil
      local c = client_mod.new({ endpoint = emu.url, auth = a }, env_of{ HUAWEICLOUD_SDK_IAM_ENDPOINT = emu.iam_url })
      assert.equal(204, c:delete_bandwidth(id).status)
      c:close()
      assert.equal(1, emu:stats().tokens_issued)
    end)
  end)

  describe("secrets", function()
    it("never appear in debug logs, errors or tostring, whichever way a client authenticates", function()
      local lines = {}
      local function sink(line) lines[#lines + 1] = line end
      local secrets = { emu.token, emu.sk, emu.temp_sk, emu.security_token, emu.iam.password }
      local clients = {
        eip.new{ endpoint = emu.url, project_id = emu.project_id, token = emu.token, log = sink },
        eip.new{ endpoint = emu.url, project_id = emu.project_id, ak = emu.ak, sk = emu.sk, log = sink },
        eip.new{ endpoint = emu.url, project_id = emu.project_id, ak = emu.temp_ak, sk = emu.temp_sk,
          security_token = emu.security_token, log = sink },
        eip.new{ endpoint = emu.url, project_id = emu.project_id, log = sink, auth = emu:iam_auth() },
      }
      local texts = {}
      for _, c in ipairs(clients) do
        assert.equal(204, c:delete_bandwidth(emu:create_bandwidth{ size = 1 }).status)
        local err = raised(c.delete_bandwidth, c, fixture.absent_id(2))
        texts[#texts + 1] = tostring(err)
        texts[#texts + 1] = tostring(c)
        for _, v in pairs(err) do texts[#texts + 1] = tostring(v) end
        for _, v in pairs(c) do texts[#texts + 1] = tostring(v) end
        c:close()
      end
      local log_text = table.concat(lines, "\n")
      assert.matches("eip: > DELETE ", log_text)
      assert.matches("Authorization: SDK%-HMAC%-SHA256 Access=[^,]+, SignedHeaders=[^,]+, Signature=<redacted>",
        log_text)
      assert.matches("X%-Auth%-Token: <redacted>", log_text)
      assert.matches("X%-Security%-Token: <redacted>", log_text)
      assert.matches("x%-subject%-token: <redacted>", log_text)
      assert.matches("body: <%d+ bytes, redacted: credentials>", log_text)
      assert.matches("eip: < 404", log_text)
      no_secret_in(log_text, secrets)
      no_secret_in(table.concat(texts, "\n"), secrets)
    end)

    -- A replaced token stays valid until it expires, and answers to requests that carried it can
    -- still come (a batch has several in flight): it is redacted as long as the current one.
    it("keep redacting a token after a newer one replaced it", function()
      local c = eip.new{ endpoint = emu.url, project_id = emu.project_id, auth = emu:iam_auth() }
      assert.equal(204, c:delete_bandwidth(emu:create_bandwidth{ size = 1 }).status)
      local first = last_request().headers["x-auth-token"]
      emu:expire_tokens()
      assert.equal(2, c:delete_bandwidth(emu:create_bandwidth{ size = 1 }).attempts)
      local second = last_request().headers["x-auth-token"]
      assert.is_string(first)
      assert.are_not.equal(first, second)
      emu:inject{ method = "DELETE", status = 400,
        body = { code = "VPC.0002", message = "bad token " .. first .. ", now " .. second } }
      local err = raised(c.delete_bandwidth, c, "bw-1")
      c:close()
      assert.equal("VPC.0002", err.code)
      -- (found, not matched: a failing match would print the token)
      assert.is_truthy(err.message:find("bad token <redacted>, now <redacted>", 1, true), "both redacted")
      no_secret_in(tostring(err), { first, second })
    end)

    it("debug = true writes the same redacted lines to stderr", function()
      local id = emu:create_bandwidth{ size = 1 }
      local script = string.format([[
        local eip = require "eip"
        eip.new{ endpoint = %q, project_id = %q, ak = %q, sk = %q, debug = true }:delete_bandwidth(%q)]],
        emu.url, emu.project_id, emu.ak, emu.sk, id)
      local cmd = "LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='" .. host.cpath .. ";;' " .. host.lua .. " -e "
        .. q(script) .. " 2>&1 >/dev/null"
      local f = assert(io.popen(cmd))
      local err_text = f:read("*a")
      f:close()
      assert.matches("eip: > DELETE ", err_text)
      assert.matches("eip: < 204", err_text)
      no_secret_in(err_text, { emu.sk })
    end)
  end)
end)
