-- Proxies: the decision (eip.proxy: the option, the environment with curl's conventions,
-- no_proxy, loopback never proxied) and a client behind a real forward proxy written for the
-- tests (spec/support/proxy.lua: absolute-form forwarding, CONNECT tunnels, Basic auth, a log
-- of what it saw) through libcurl, single calls and batches; the command line's options. The
-- cosocket transport's CONNECT path inside nginx is proven with the same proxy in
-- spec/transport_conformance_spec.lua.
--
-- The emulator listens on loopback, which is never proxied. So requests that must go through
-- the proxy name a host only the proxy resolves (tls.PROXIED_NAME, "vpc-xx...x.proxied.test",
-- which the TLS front's certificate also carries): direct, the name does not resolve at all (no
-- DNS server is asked), so a call that succeeds went through the proxy, and one that must not
-- use it shows in the proxy's log.
local client_mod = require "eip.client"
local settings = require "eip.proxy"
local fixture = require "spec.support.fixture"
local proxy = require "spec.support.proxy"
local tls = require "spec.support.tls"
local nginx = require "spec.support.nginx"
local host = require "spec.support.host"
local raised = require("spec.support.assertions").raised

local NAME = tls.PROXIED_NAME
local USER, SECRET = "proxy-ops-user", "pr0xy-Secret-pw"
local BASIC = "Basic " .. proxy.base64(USER .. ":" .. SECRET)

local env_of = require("spec.support.assertions").env_of

local has = require("spec.support.assertions").has

describe("proxy settings (eip.proxy)", function()
  local P = "http://proxy.corp.example:3128"

  local function decide(option, env, url)
    local p = settings.settings(option, env_of(env or {})):decide(url)
    return p and p.name
  end

  it("the option: every request through it, the environment not read at all (no_proxy included)", function()
    local env = { https_proxy = "http://other.example:1", no_proxy = "*" }
    assert.equal("proxy.corp.example:3128", decide(P, env, "https://vpc.cn-north-4.myhuaweicloud.com/v2.0"))
    assert.equal("proxy.corp.example:3128", decide(P, env, "http://vpc.example:8080/x"))
  end)

  it("false: no proxy, whatever the environment says", function()
    local env = { https_proxy = P, http_proxy = P, ALL_PROXY = P }
    assert.is_nil(decide(false, env, "https://vpc.example/"))
    assert.is_nil(decide(false, env, "http://vpc.example/"))
  end)

  it("https URLs: https_proxy, HTTPS_PROXY, all_proxy, ALL_PROXY, in that order; empty is unset", function()
    local names = { "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY" }
    for i, name in ipairs(names) do
      local env = {}
      for j = i, #names do env[names[j]] = "http://p" .. j .. ".example:" .. j end
      for j = 1, i - 1 do env[names[j]] = "" end
      assert.equal("p" .. i .. ".example:" .. i, decide(nil, env, "https://vpc.example/"), name)
    end
    assert.is_nil(decide(nil, { http_proxy = P }, "https://vpc.example/"), "http_proxy is for http URLs")
  end)

  it("http URLs: http_proxy (never HTTP_PROXY: httpoxy), then all_proxy, ALL_PROXY", function()
    assert.equal("a.example:1", decide(nil, { http_proxy = "a.example:1", all_proxy = "http://b.example:2" },
      "http://vpc.example/"))
    assert.equal("b.example:2", decide(nil, { HTTP_PROXY = "http://a.example:1", all_proxy = "http://b.example:2" },
      "http://vpc.example/"))
    assert.equal("c.example:3", decide(nil, { ALL_PROXY = "http://c.example:3" }, "http://vpc.example/"))
    assert.is_nil(decide(nil, { HTTP_PROXY = "http://a.example:1" }, "http://vpc.example/"))
    assert.is_nil(decide(nil, { https_proxy = "http://a.example:1" }, "http://vpc.example/"))
  end)

  it("no_proxy, else NO_PROXY: host suffixes, *, ports, IP literals and CIDR ranges (IP hosts: no suffix)", function()
    local cases = {
      -- no_proxy value, URL, exempt?
      { "example.com", "https://example.com/", true },
      { "example.com", "https://api.example.com/", true },
      { ".example.com", "https://example.com/", true },
      { "*.example.com", "https://a.b.example.com/", true },
      { "example.com", "https://badexample.com/", false },
      { "EXAMPLE.com.", "https://Api.Example.COM./", true },
      { "*", "https://anything.example/", true },
      -- * means every host only as the whole value, as libcurl reads it: beside others, nothing.
      { "*,other.example", "https://anything.example/", false },
      { "other.example, *", "https://anything.example/", false },
      { "*,other.example", "https://other.example/", true },
      { " *", "https://anything.example/", false },
      { "a.example, b.example", "https://b.example/", true },
      { "a.example b.example", "https://b.example/", true },
      { "example.com:8443", "https://example.com:8443/", true },
      { "example.com:8443", "https://example.com/", false },
      { "example.com:443", "https://example.com/", true },
      { "10.1.2.3", "https://10.1.2.3/", true },
      { "10.1.2.3", "https://10.1.2.4/", false },
      { "10.0.0.0/8", "http://10.200.3.4:8080/", true },
      { "10.0.0.0/8", "http://11.0.0.1/", false },
      { "192.168.0.0/16,172.16.0.0/12", "https://172.31.255.255/", true },
      { "fd00::/8", "https://[fd12:3456::1]/", true },
      { "fd00::/8", "https://[fe12::1]/", false },
      { "2001:db8::1", "https://[2001:db8:0:0:0:0:0:1]/", true },
      { "[2001:db8::1]:8443", "https://[2001:db8::1]:8443/", true },
      { "[2001:db8::1]:8443", "https://[2001:db8::1]/", false },
      { "", "https://example.com/", false },
      -- An IP address host: only IP entries, exactly or by range, as libcurl (a name's
      -- suffix matched it: .3.4, 3.4 and 2.3.4 exempted 11.2.3.4).
      { ".3.4", "https://11.2.3.4/", false },
      { "3.4", "https://11.2.3.4/", false },
      { "2.3.4", "http://11.2.3.4/", false },
      { "1.2.3", "https://11.2.3.4/", false },
      { "3.4", "https://[::ffff:11.2.3.4]/", false },
      { "11.2.3.4", "https://[::ffff:11.2.3.4]/", false },
      { "db8::1", "https://[2001:db8::1]/", false },
      -- /0 is the address itself to libcurl, not every address.
      { "11.2.3.4/0", "https://11.2.3.5/", false },
      { "11.2.3.4/0", "https://11.2.3.4/", true },
      { "2001:db8::/0", "https://[2001:db9::1]/", false },
      { "11.2.3.4/33", "https://11.2.3.4/", false },
      { "2001:db8::/65", "https://[2001:db8:0:0:8000::1]/", false },
      { "2001:db8::/65", "https://[2001:db8::7fff:0:0:1]/", true },
    }
    for _, c in ipairs(cases) do
      local got = decide(nil, { https_proxy = P, http_proxy = P, no_proxy = c[1] }, c[2]) == nil
      assert.equal(c[3], got, string.format("no_proxy=%q %s", c[1], c[2]))
    end
    assert.is_nil(decide(nil, { https_proxy = P, NO_PROXY = "example.com" }, "https://example.com/"))
    assert.equal("proxy.corp.example:3128",
      decide(nil, { https_proxy = P, no_proxy = "other.example", NO_PROXY = "example.com" }, "https://example.com/"),
      "no_proxy wins over NO_PROXY")
  end)

  it("never proxies loopback, unspecified or link-local hosts, whatever the settings", function()
    local env = { https_proxy = P, http_proxy = P }
    for _, name in ipairs{ "127.0.0.1", "127.8.9.10", "[::1]", "[0:0:0:0:0:0:0:1]", "[::ffff:127.0.0.1]",
                           "localhost", "LOCALHOST.", "api.localhost", "169.254.169.254", "[fe80::1]",
                           -- (the metadata service's address IPv4-mapped was proxied)
                           "[::ffff:169.254.169.254]", "[::ffff:a9fe:a9fe]",
                           -- (connecting to 0.0.0.0 or :: reaches this host: they were proxied)
                           "0.0.0.0", "[::]", "[0:0:0:0:0:0:0:0]", "[::ffff:0.0.0.0]" } do
      for _, scheme in ipairs{ "http", "https" } do
        local url = scheme .. "://" .. name .. ":8443/x"
        assert.is_nil(decide(P, nil, url), url .. " (option)")
        assert.is_nil(decide(nil, env, url), url .. " (environment)")
      end
    end
    assert.equal("proxy.corp.example:3128", decide(P, nil, "https://128.0.0.1/"))
    assert.equal("proxy.corp.example:3128", decide(P, nil, "https://localhost.example/"))
    assert.equal("proxy.corp.example:3128", decide(P, nil, "https://0.0.0.1/"))
    assert.equal("proxy.corp.example:3128", decide(P, nil, "https://[::2]/"))
  end)

  it("reads credentials (percent-decoded) into a Basic authorization, and IPv6 proxies", function()
    local p = settings.parse("proxy", "http://us%40er:p%3Ass%40w@[fd00::1]:3128/")
    assert.same({ url = "http://[fd00::1]:3128", host = "[fd00::1]", port = 3128, name = "[fd00::1]:3128",
      user = "us@er", password = "p:ss@w", authorization = "Basic " .. proxy.base64("us@er:p:ss@w") }, p)
    assert.same({ url = "http://proxy.example:8080", host = "proxy.example", port = 8080, name = "proxy.example:8080" },
      settings.parse("HTTPS_PROXY", "proxy.example:8080"))
    local s = settings.settings("http://" .. USER .. ":" .. SECRET .. "@proxy.example:1")
    table.sort(s.secrets)
    local want = { SECRET, USER, USER .. ":" .. SECRET, BASIC:sub(7) }
    table.sort(want)
    assert.same(want, s.secrets, "the secrets are the password, the user, the pair and the Basic value")
  end)

  it("registers the decoded user:password pair as a secret, longer than its short parts", function()
    -- A proxy echoing the decoded credential shows "ops:hunter2" (11 bytes), while "ops" and
    -- "hunter2" are each under 8 bytes, so they alone are redacted only as a whole value.
    local s = settings.settings("http://ops:hunter%32@proxy.example:1")
    local set = {}
    for _, v in ipairs(s.secrets) do set[v] = true end
    assert.is_true(set["ops:hunter2"], "the decoded pair is a secret")
    assert.is_true(set.ops and set.hunter2 and set[proxy.base64("ops:hunter2")], "and each part, and the Basic value")
  end)

  it("never echoes what may be a credential in a bad value: only scheme, host and port", function()
    local cases = {
      -- value, the variable's message shows exactly this
      { "http://" .. USER .. ":" .. SECRET, '"http://<' .. #(USER .. ":" .. SECRET) .. ' bytes not shown>"' },
      { USER .. ":" .. SECRET, '"<' .. #(USER .. ":" .. SECRET) .. ' bytes not shown>"' },
      { "socks5://" .. USER .. ":" .. SECRET, '"socks5://<' .. #(USER .. ":" .. SECRET) .. ' bytes not shown>"' },
      { "http://" .. USER .. ":" .. SECRET .. "/",
        '"http://<' .. #(USER .. ":" .. SECRET) + 1 .. ' bytes not shown>"' },
      -- After credentials, only a host:port is shown: without one, what follows the last '@' may
      -- be the rest of a password holding an '@' ("alice:Winter@Sunshine2024"), not a host.
      { "http://alice:Winter@Sunshine2024", '"http://<credentials>@<12 bytes not shown>"', "Sunshine2024" },
      { "http://alice:Winter@Sunshine2024/x", '"http://<credentials>@<14 bytes not shown>"', "Sunshine2024" },
      { "http://" .. USER .. ":" .. SECRET .. "@proxy.example", '"http://<credentials>@<13 bytes not shown>"' },
      { "http://" .. USER .. ":" .. SECRET .. "@proxy.example:99999", '"http://<credentials>@proxy.example:99999"' },
      { "http://proxy.example:3128/" .. SECRET, '"http://proxy.example:3128<' .. #SECRET + 1 .. ' bytes not shown>"' },
      { "http://proxy.example", '"http://proxy.example"' },
      { "http://[fd00::1]:0", '"http://[fd00::1]:0"' },
      -- user:password with no @host:port, the password digits only: no port (0, 5+ digits), so
      -- no host:port to show either.
      { "http://alice:12345678", '"http://<14 bytes not shown>"', "12345678" },
      { "alice:00000", '"<11 bytes not shown>"', "00000" },
      { "http://alice:99999/", '"http://<12 bytes not shown>"', "99999" },
    }
    -- (a variable is refused by the request that would take it)
    local function refused(value)
      local s = settings.settings(nil, env_of{ https_proxy = value })
      return raised(s.decide, s, "https://vpc.example/x")
    end
    for _, c in ipairs(cases) do
      local err = refused(c[1])
      assert.equal("usage", err.kind)
      assert.equal("https_proxy", err.argument)
      assert.is_true(has(err.message, "got " .. c[2]), err.message)
      assert.is_false(has(tostring(err), SECRET), "the message shows the password: " .. tostring(err))
      assert.is_false(has(tostring(err), USER), "the message shows the user: " .. tostring(err))
      assert.is_false(has(tostring(err), c[3] or SECRET), "the message shows the password: " .. tostring(err))
    end
    -- user:password with no @host is not a host missing its port.
    local err = refused("http://ops:hunter2")
    assert.matches("must be http://%[user:pass@%]host:port", err.message)
  end)

  it("refuses bad values naming the option or variable, never showing credentials", function()
    local bad = {
      { "socks5://" .. USER .. ":" .. SECRET .. "@proxy.example:1080", "socks" },
      { "https://" .. USER .. ":" .. SECRET .. "@proxy.example:443", "https://" },
      { "http://" .. USER .. ":" .. SECRET .. "@proxy.example", "needs a port" },
      -- (a password holding an '@', no host:port: its tail is no host to show)
      { "http://alice:Winter@Sunshine2024", "needs a port", "Sunshine2024" },
      { "http://proxy.example:3128/path", "http://%[user:pass@%]host:port" },
      { "http://proxy.example:0", "valid host" },
      { "http://:" .. SECRET .. "@proxy.example:1", "credentials" },
      { "http://u:a%0Ab@proxy.example:1", "control" },
      { true, "false for no proxy" },
    }
    for _, b in ipairs(bad) do
      local err = raised(client_mod.new, { endpoint = "https://vpc.example", project_id = "p1",
        token = "t-0123456789", proxy = b[1] }, env_of{})
      assert.equal("usage", err.kind)
      assert.equal("proxy", err.argument)
      assert.matches(b[2], err.message)
      assert.is_false(has(tostring(err), b[3] or SECRET), "the message shows the password: " .. tostring(err))
      assert.is_false(has(tostring(err), USER), "the message shows the user")
    end
    local err = raised(client_mod.new, { endpoint = "https://vpc.example", project_id = "p1", token = "t-0123456789" },
      env_of{ HTTPS_PROXY = "socks5h://" .. USER .. ":" .. SECRET .. "@proxy.example:1080" })
    assert.equal("HTTPS_PROXY", err.argument)
    assert.is_false(has(tostring(err), SECRET))
    -- IAM's endpoint is checked as the API's: the variable its login would take.
    err = raised(client_mod.new, { endpoint = "http://127.0.0.1:8080", project_id = "p1",
      auth = { username = "u", password = "p-0123456789", domain = "d", project_id = "p1",
        iam_endpoint = "https://iam.example" } }, env_of{ https_proxy = "socks5h://proxy.example:1080" })
    assert.equal("https_proxy", err.argument)
  end)

  -- As an endpoint's (eip.validate): a zone id, no ']' or a bad hex digit was "must be
  -- http://[user:pass@]host:port", silent on why; brackets holding no IPv6 address were taken,
  -- and every call failed later as a proxy that could not be resolved ("Unsupported proxy syntax").
  it("says what is wrong with an IPv6 proxy, and refuses brackets that hold no address", function()
    for _, case in ipairs{
        { "http://[fe80::1%25eth0]:3128", "has an IPv6 address with a zone id (the '%' part): zone ids" },
        { "http://" .. USER .. ":" .. SECRET .. "@[fe80::1%eth0]:3128", "zone ids (link-local scopes) are not" },
        { "http://[::1:3128", "without its closing ']'" },
        { "http://[zz::1]:3128", "has an invalid IPv6 address (between '[' and ']'" },
        { "http://[1:2:3:4:5:6:7:8:9]:3128", "has an invalid IPv6 address" },
        { "http://[:::1]:3128", "has an invalid IPv6 address" },
        { "http://[::1]x:3128", "has something other than :PORT after its IPv6 address's ']'" },
        { "http://[::1]", "needs a port" } } do
      local err = raised(client_mod.new, { endpoint = "https://vpc.example", project_id = "p1",
        token = "t-0123456789", proxy = case[1] }, env_of{})
      assert.same({ "usage", "proxy" }, { err.kind, err.argument }, case[1])
      assert.is_true(has(err.message, case[2]), err.message)
      assert.is_false(has(tostring(err), SECRET) or has(tostring(err), USER), tostring(err))
    end
    assert.equal("[::ffff:10.0.0.8]:3128", settings.parse("proxy", "http://[::ffff:10.0.0.8]:3128").name)
  end)

  -- A variable no request of the client would take made every client fail: ALL_PROXY (socks)
  -- beside a good https_proxy, anything with NO_PROXY=*, a bad http_proxy for an https or a
  -- loopback endpoint. curl and the SDKs take those environments.
  it("refuses a bad variable only where a request would take it", function()
    local token = "t-0123456789"
    for _, case in ipairs{
      { "https://vpc.example", { https_proxy = "http://10.0.0.8:3128", ALL_PROXY = "socks5h://127.0.0.1:1080" },
        "10.0.0.8:3128" },
      { "https://vpc.example", { NO_PROXY = "*", ALL_PROXY = "socks5h://" .. USER .. ":" .. SECRET .. "@p:1080" } },
      { "http://127.0.0.1:8080", { http_proxy = "http://proxy.corp" } },
      { "https://vpc.example", { https_proxy = "http://10.0.0.8:3128", http_proxy = "http://proxy.corp" },
        "10.0.0.8:3128" },
      { "https://vpc.example", { https_proxy = "http://squid_proxy:3128" }, "squid_proxy:3128" },
    } do
      local c = client_mod.new({ endpoint = case[1], project_id = "p1", token = token }, env_of(case[2]))
      c:close()
      local p = settings.settings(nil, env_of(case[2])):decide(case[1] .. "/x")
      assert.equal(case[3], p and p.name or nil, case[1])
    end
    -- The request that would take it: a usage error, nothing sent.
    local s = settings.settings(nil, env_of{ ALL_PROXY = "socks5h://" .. USER .. ":" .. SECRET .. "@p:1080" })
    assert.is_nil(s:decide("http://127.0.0.1/x"))
    local err = raised(s.decide, s, "http://vpc.example/x")
    assert.same({ "usage", "ALL_PROXY" }, { err.kind, err.argument })
    assert.is_false(has(tostring(err), SECRET))
    assert.is_true(has(table.concat(s.secrets, " "), SECRET), "its credentials are redacted all the same")
  end)
end)

describe("a client behind a forward proxy (libcurl)", function()
  local fx = fixture.emulator()
  local emu, pki, front, open, guarded, quiet, slept

  setup(function()
    emu = fx.start()
    pki = tls.make_pki()
    front = tls.start(emu, pki)
    local names = { [NAME] = "127.0.0.1" }
    open = proxy.start{ names = names, deny = { "blocked.test" } }
    guarded = proxy.start{ names = names, auth = USER .. ":" .. SECRET }
    quiet = proxy.start{ names = names, misbehave = { [NAME] = "silent_once", ["silent.test"] = "silent" } }
  end)

  teardown(function()
    if quiet then quiet:stop() end
    if guarded then guarded:stop() end
    if open then open:stop() end
    if front then front:stop() end
    if pki then pki:remove() end
    fx.stop()
  end)

  before_each(function()
    fx.reset()
    open:reset()
    guarded:reset()
    slept = {}
  end)

  local function http_url() return "http://" .. NAME .. ":" .. emu.port end
  local function https_url() return "https://" .. NAME .. ":" .. front.ports.trusted end
  local function with_auth(p, password)
    return "http://" .. USER .. ":" .. (password or SECRET) .. "@127.0.0.1:" .. p.port
  end

  local clients = {}
  after_each(function()
    for i = #clients, 1, -1 do
      clients[i]:close()
      clients[i] = nil
    end
  end)

  -- A client of the emulator with these options over fx.options (and the test CA, a sleep that
  -- records its waits), reading the environment `env` (a table; nil: none at all).
  local function new(extra, env)
    local opts = fx.options{ ca_file = pki.ca, timeout = 3, connect_timeout = 2, backoff_base = 0.01,
      sleep = function(s) slept[#slept + 1] = s end }
    for k, v in pairs(extra or {}) do
      if v == fixture.NONE then opts[k] = nil else opts[k] = v end
    end
    local c = client_mod.new(opts, env_of(env or {}))
    clients[#clients + 1] = c
    return c
  end

  local function create() return emu:create_bandwidth{ size = 10, share_type = "WHOLE" } end

  -- Deletes a new bandwidth at `url` through the guarded proxy, with its credentials: the one
  -- request head the proxy received, and the id.
  local function delete_through_guarded(url)
    local id = create()
    assert.equal(204, new{ endpoint = url, proxy = with_auth(guarded) }:delete_bandwidth(id).status)
    assert.is_nil(emu:get_bandwidth(id))
    local seen = guarded:seen()
    assert.equal(1, #seen)
    assert.is_true(seen[1].headers["proxy-authorization"] == BASIC, "the proxy got its credentials")
    return seen[1], id
  end

  -- A request sent once in a kept-alive tunnel whose connection then died unanswered, the API
  -- gone a moment: libcurl's new CONNECT for the resend is refused by the proxy (502). The
  -- request went out: it may have acted (it read as the proxy's refusal, "nothing reached the
  -- API", and a retry's 404 as "did not exist"); a POST is the contract's 52, as through cosockets.
  it("a request lost in a tunnel whose new CONNECT the proxy refuses: it may have acted", function()
    local vanishing = require "spec.support.vanishing"
    local id = "3fa1e2b4-1111-4222-8333-444455556666"
    for _, method in ipairs{ "DELETE", "POST" } do
      local s = vanishing.start('{"bandwidth":{"id":"' .. id .. '"}}', method == "DELETE" and 0.3 or 5, pki)
      finally(function() s:stop() end)
      local c = new{ endpoint = "https://" .. NAME .. ":" .. s.port, proxy = "http://127.0.0.1:" .. open.port,
        project_id = "p0123", backoff_base = 0.5 }
      assert.equal(id, c:show_bandwidth(id).id) -- (leaves a kept-alive tunnel)
      local ok, err
      if method == "DELETE" then
        ok, err = pcall(c.delete_bandwidth, c, id)
      else
        ok, err = pcall(c.create_bandwidth, c, { name = "bw", size = 5 })
        assert.same({ "transport", "reset", 52 }, { err.kind, err.reason, err.curl_code }, tostring(err))
      end
      assert.is_false(ok)
      assert.is_true(require("eip").could_have_acted(err), method .. ": " .. tostring(err))
      s:stop()
    end
  end)

  -- A CONNECT left unanswered until the connect timeout: a timeout, yet nothing of the request
  -- went out (the transport's `unsent`). The call could not have acted, and a retry's 404 is
  -- the bandwidth's own answer, not a sign that the timed-out attempt deleted it.
  -- (#once: seconds of timeouts, the transport's own timing: see scripts/run-matrix)
  it("a CONNECT that times out sent nothing: unsent, could not have acted, the retry's 404 its own #once", function()
    local eip = require "eip"
    local c = new{ endpoint = "https://silent.test:443", proxy = "http://127.0.0.1:" .. quiet.port,
      connect_timeout = 0.5, max_attempts = 1 }
    local err = raised(c.delete_bandwidth, c, fixture.absent_id(4))
    assert.same({ "transport", "timeout", true, 1 }, { err.kind, err.reason, err.unsent, err.attempts })
    assert.is_false(eip.could_have_acted(err))
    assert.matches("%[not sent%]", tostring(err))
    local results = c:delete_bandwidths({ fixture.absent_id(5) })
    assert.same({ "transport", true, false }, { results[1].kind, results[1].unsent,
      eip.could_have_acted(results[1]) })
    -- The first CONNECT for the front's name is not answered, the second is.
    c = new{ endpoint = https_url(), proxy = "http://127.0.0.1:" .. quiet.port, connect_timeout = 0.5,
      max_attempts = 2 }
    err = raised(c.delete_bandwidth, c, fixture.absent_id(4))
    assert.same({ "http", 404, 2 }, { err.kind, err.status, err.attempts }, tostring(err))
    assert.is_nil(err.lost_answer)
    assert.is_nil(err.earlier_unanswered)
    assert.is_false(eip.could_have_acted(err))
    assert.equal(1, #emu:requests(), "the emulator saw the second attempt only")
  end)

  it("sends http through the proxy in absolute form: the proxy sees the whole request", function()
    local seen, id = delete_through_guarded(http_url())
    assert.equal("DELETE " .. http_url() .. emu:delete_path(id):gsub("[%^%$]", ""):gsub("%%", "") .. " HTTP/1.1",
      seen.line)
    assert.equal(NAME .. ":" .. emu.port, seen.headers.host)
    assert.equal(emu.token, seen.headers["x-auth-token"], "plain http: the proxy reads the token (hence the warning)")
    assert.is_nil(emu:requests()[1].headers["proxy-authorization"], "the proxy's credentials stop at the proxy")
  end)

  it("sends https through CONNECT only: the proxy never sees the token, the path or a signature", function()
    local seen, id = delete_through_guarded(https_url())
    assert.equal("CONNECT " .. NAME .. ":" .. front.ports.trusted .. " HTTP/1.1", seen.line)
    local sent = emu:requests()
    assert.equal(emu.token, sent[#sent].headers["x-auth-token"], "the API got the token, through the tunnel")
    -- Signed (AK/SK) too: whatever the API answers, the proxy saw no part of the request.
    pcall(function()
      new{ endpoint = https_url(), proxy = with_auth(guarded), token = fixture.NONE, ak = emu.ak, sk = emu.sk,
        max_attempts = 1 }:delete_bandwidth(create())
    end)
    assert.equal(2, #guarded:seen())
    local raw = guarded:raw()
    assert.is_true(has(raw, "CONNECT " .. NAME), "the capture holds what the proxy received")
    -- (Failure messages name what was seen, never its value: test output shows no secret.)
    for name, value in pairs{ token = emu.token, ["the token header"] = "X-Auth-Token", path = "/v2.0/", id = id,
                              signature = "SDK-HMAC-SHA256", ak = emu.ak, sk = emu.sk, date = "X-Sdk-Date" } do
      assert.is_false(has(raw, value), "the proxy saw the " .. name)
    end
  end)

  it("honours each environment variable with curl's conventions", function()
    local through = {
      { "https", "https_proxy" }, { "https", "HTTPS_PROXY" }, { "https", "all_proxy" }, { "https", "ALL_PROXY" },
      { "http", "http_proxy" }, { "http", "all_proxy" }, { "http", "ALL_PROXY" },
    }
    for _, t in ipairs(through) do
      open:reset()
      local url = t[1] == "https" and https_url() or http_url()
      local res = new({ endpoint = url }, { [t[2]] = open.url }):delete_bandwidth(create())
      assert.equal(204, res.status, t[2])
      local seen = open:seen()
      assert.equal(1, #seen, t[2])
      assert.equal(t[1] == "https" and "CONNECT" or "DELETE", seen[1].method, t[2])
    end
    -- HTTP_PROXY is never read (in CGI it is the client's Proxy: header), nor http_proxy for https.
    for _, t in ipairs{ { http_url(), "HTTP_PROXY" }, { https_url(), "http_proxy" } } do
      open:reset()
      local err = raised(new({ endpoint = t[1], max_attempts = 1 }, { [t[2]] = open.url }).delete_bandwidth,
        clients[#clients], "bw-1")
      assert.equal("dns", err.reason, t[2] .. ": direct, and the name resolves nowhere but at the proxy")
      assert.equal(0, #open:seen(), t[2])
    end
    -- Precedence: https_proxy before HTTPS_PROXY (here a proxy that would answer 407).
    open:reset()
    local res = new({ endpoint = https_url() }, { https_proxy = open.url, HTTPS_PROXY = guarded.url })
      :delete_bandwidth(create())
    assert.equal(204, res.status)
    assert.equal(1, #open:seen())
    assert.equal(0, #guarded:seen())
  end)

  it("honours no_proxy and NO_PROXY: the exempt host is reached directly", function()
    local function direct(no_proxy_var, value, url)
      open:reset()
      local c = new({ endpoint = url, max_attempts = 1 }, { https_proxy = open.url, http_proxy = open.url,
        [no_proxy_var] = value })
      local ok = pcall(c.delete_bandwidth, c, create())
      return #open:seen() == 0, ok
    end
    for _, c in ipairs{
      { "no_proxy", "proxied.test", https_url(), true },
      { "NO_PROXY", "." .. NAME, https_url(), true },
      { "no_proxy", "*", http_url(), true },
      { "no_proxy", NAME .. ":" .. emu.port, http_url(), true },
      { "no_proxy", NAME .. ":1", http_url(), false },
      { "no_proxy", "other.test, 10.0.0.0/8", https_url(), false },
    } do
      local went_direct, ok = direct(c[1], c[2], c[3])
      assert.equal(c[4], went_direct, c[1] .. "=" .. c[2] .. " " .. c[3])
      assert.equal(not c[4], ok, "only the proxy resolves " .. NAME)
    end
  end)

  it("never proxies a loopback endpoint, even with the option set", function()
    for _, url in ipairs{ emu.url, "http://localhost:" .. emu.port, "https://127.0.0.1:" .. front.ports.trusted,
                          "https://localhost:" .. front.ports.trusted,
                          -- (0.0.0.0 reaches this host, the proxy's own instead)
                          "http://0.0.0.0:" .. emu.port } do
      local res = new({ endpoint = url, proxy = open.url }, { ALL_PROXY = open.url }):delete_bandwidth(create())
      assert.equal(204, res.status, url)
      res = new({ endpoint = url }, { http_proxy = open.url, https_proxy = open.url }):delete_bandwidth(create())
      assert.equal(204, res.status, url)
    end
    assert.equal(0, #open:seen())
  end)

  it("libcurl never follows the process environment by itself", function()
    -- A process whose real environment names the proxy for everything, with no exception.
    local script = string.format([[
      local eip = require "eip"
      local function try(opts)
        opts.project_id, opts.token, opts.max_attempts, opts.timeout = %q, %q, 1, 3
        local c = eip.new(opts)
        local ok, res = pcall(c.delete_bandwidth, c, %q)
        c:close()
        return ok and res.status or res.reason
      end
      local t = require("eip.transport.curl").new{}
      local raw = t:send{ method = "GET", url = %q, headers = {}, timeout = 3 }
      t:close()
      print(try{ endpoint = %q }, try{ endpoint = %q, proxy = false }, raw.error_kind)
    ]], emu.project_id, emu.token, create(), http_url() .. "/x", emu.url, http_url())
    local path = os.tmpname()
    nginx.write_file(path, script)
    local env = string.format("http_proxy=%s HTTPS_PROXY=%s ALL_PROXY=%s all_proxy=%s no_proxy= NO_PROXY=",
      open.url, open.url, open.url, open.url)
    local out = nginx.capture(string.format('cd %s && env %s LUA_PATH="lua/?.lua;lua/?/init.lua;;" '
      .. 'LUA_CPATH="%s;;" %s %s 2>&1', nginx.shell_quote(nginx.capture("pwd")), env, host.cpath, host.lua, path))
    os.remove(path)
    -- 127.0.0.1 directly (204); with proxy = false the name cannot be resolved; a bare transport
    -- request without a proxy goes direct too.
    assert.equal("204\tdns\tdns", out)
    assert.equal(0, #open:seen())
  end)

  it("reports a 407 as a proxy error, never as the API's answer, and does not retry it", function()
    for _, c in ipairs{
      { "plain http, no credentials", http_url(), guarded.url },
      { "CONNECT, no credentials", https_url(), guarded.url },
      { "plain http, a wrong password", http_url(), with_auth(guarded, "wrong-password-1") },
      { "CONNECT, a wrong password", https_url(), with_auth(guarded, "wrong-password-1") },
    } do
      guarded:reset()
      slept = {}
      local client = new{ endpoint = c[2], proxy = c[3], max_attempts = 3 }
      local err = raised(client.delete_bandwidth, client, create())
      assert.equal("proxy", err.kind, c[1])
      assert.equal("auth", err.reason, c[1])
      assert.equal(407, err.proxy_status, c[1])
      assert.equal("127.0.0.1:" .. guarded.port, err.proxy, c[1])
      assert.is_false(err.retryable, c[1])
      assert.equal(1, err.attempts, c[1])
      assert.same({}, slept, c[1])
      assert.equal(1, #guarded:seen(), c[1])
      assert.is_nil(err.status, c[1])
      assert.is_nil(err.request_id, c[1] .. ": the proxy's X-Request-Id is not the API's")
      assert.is_nil(err.code, c[1] .. ": the proxy's body is not an API error")
      local text = tostring(err)
      assert.matches("proxy authentication required", text, 1, true)
      assert.is_true(has(text, "127.0.0.1:" .. guarded.port), text)
      assert.is_false(has(text, "wrong-password-1") or has(text, USER), c[1] .. ": the message shows the credentials")
    end
  end)

  it("names a refused proxy (never its credentials) and retries it like a refused connection", function()
    local port = require("spec.support.host").closed_port()
    local outcomes = {}
    local client = new{ endpoint = https_url(), proxy = "http://" .. USER .. ":" .. SECRET .. "@127.0.0.1:" .. port,
      max_attempts = 3, on_response = function(info) outcomes[#outcomes + 1] = info.outcome end }
    local err = raised(client.delete_bandwidth, client, create())
    assert.equal("proxy", err.kind)
    assert.equal("connect", err.reason)
    assert.same({ "proxy", "proxy", "proxy" }, outcomes, "hooks and metrics say the proxy failed, not the API")
    assert.equal(7, err.curl_code)
    assert.equal("127.0.0.1:" .. port, err.proxy)
    assert.is_true(err.retryable)
    assert.equal(3, err.attempts)
    assert.equal(2, #slept)
    local text = tostring(err)
    assert.matches("cannot connect to the proxy 127.0.0.1:" .. port, text, 1, true)
    assert.is_false(has(text, SECRET) or has(text, USER), "the message shows the credentials")
  end)

  it("reports other refusals of CONNECT as proxy errors: 403 is final, 502 is retried", function()
    local client = new{ endpoint = "https://blocked.test:443", proxy = open.url, max_attempts = 3 }
    local err = raised(client.delete_bandwidth, client, "bw-1")
    assert.same({ "proxy", "status", 403, false, 1 },
      { err.kind, err.reason, err.proxy_status, err.retryable, err.attempts })
    assert.matches("refused the request with 403", tostring(err), 1, true)
    client = new{ endpoint = "https://unknown.test:443", proxy = open.url, max_attempts = 3 }
    err = raised(client.delete_bandwidth, client, "bw-1")
    assert.same({ "proxy", "status", 502, true, 3 },
      { err.kind, err.reason, err.proxy_status, err.retryable, err.attempts })
  end)

  it("keeps proxy credentials out of errors, tostring, debug logs and the client", function()
    local lines = {}
    local function log(line) lines[#lines + 1] = line end
    local id = create()
    -- The API (through the proxy) echoes the password in an error message.
    emu:inject{ method = "DELETE", status = 500,
      body = { code = "VPC.9999", message = "echo " .. SECRET .. " " .. BASIC } }
    local client = new{ endpoint = http_url(), proxy = with_auth(guarded), max_attempts = 1, log = log }
    local err = raised(client.delete_bandwidth, client, id)
    assert.equal("http", err.kind)
    assert.equal("echo <redacted> Basic <redacted>", err.message)
    assert.equal(204, client:delete_bandwidth(id).status)
    local bad = new{ endpoint = http_url(), proxy = with_auth(guarded, "Wrong-" .. SECRET), log = log }
    local e407 = raised(bad.delete_bandwidth, bad, id)
    local refused = new{ endpoint = http_url(), proxy = "http://" .. USER .. ":" .. SECRET .. "@127.0.0.1:"
      .. require("spec.support.host").closed_port(), max_attempts = 1, log = log }
    local econn = raised(refused.delete_bandwidth, refused, id)
    local shown = { table.concat(lines, "\n"), tostring(err), tostring(e407), tostring(econn), tostring(client) }
    for _, e in ipairs{ err, e407, econn } do
      for k, v in pairs(e) do shown[#shown + 1] = k .. "=" .. tostring(v) end
    end
    for k, v in pairs(client) do shown[#shown + 1] = tostring(k) .. "=" .. tostring(v) end
    local all = table.concat(shown, "\n")
    assert.is_true(has(all, "via proxy 127.0.0.1:" .. guarded.port), "the log names the proxy")
    for name, secret in pairs{ password = SECRET, authorization = BASIC:sub(7), user = USER,
                               ["wrong authorization"] = proxy.base64(USER .. ":Wrong-" .. SECRET) } do
      assert.is_false(has(all, secret), "shown: the " .. name)
    end
  end)

  it("warns once in the debug log about credentials sent through a proxy to an http:// endpoint", function()
    local function warnings(url)
      local lines = {}
      local c = new{ endpoint = url, proxy = open.url, log = function(l) lines[#lines + 1] = l end }
      c:delete_bandwidth(create())
      c:delete_bandwidth(create())
      local n = 0
      for _, l in ipairs(lines) do
        if l:find("warning: credentials go in clear text", 1, true) then
          n = n + 1
          assert.is_true(has(l, "http://" .. NAME .. ":" .. emu.port) and has(l, open.url:gsub("^http://", "")), l)
        end
      end
      return n
    end
    assert.equal(1, warnings(http_url()))
    assert.equal(0, warnings(https_url()))
    assert.equal(0, warnings(emu.url), "loopback: no proxy")
  end)

  it("sends every request the client makes through it: the IAM token request too", function()
    for _, url in ipairs{ https_url(), http_url() } do
      guarded:reset()
      local lines = {}
      -- IAM on its own port over http; over https the TLS front answers every route.
      local iam = url == http_url() and ("http://" .. NAME .. ":" .. emu.iam_port) or url
      local c = new{ endpoint = url, token = fixture.NONE, project_id = fixture.NONE,
        auth = emu:iam_auth{ iam_endpoint = iam }, proxy = with_auth(guarded),
        log = function(l) lines[#lines + 1] = l end }
      assert.equal(204, c:delete_bandwidth(create()).status, url)
      local seen = guarded:seen()
      if url == http_url() then
        assert.equal("POST " .. iam .. "/v3/auth/tokens?nocatalog=true HTTP/1.1", seen[1].line)
        assert.equal("DELETE", seen[2].method)
        local log = table.concat(lines, "\n")
        assert.is_true(has(log, "warning: credentials go in clear text"), "the password went through the proxy")
        assert.is_false(has(log, emu.iam.password))
      else
        assert.equal("CONNECT", seen[1].method)
        assert.is_false(has(guarded:raw(), emu.iam.password), "the password only went through the tunnel")
      end
    end
  end)

  it("sends batches (the C multi) through the proxy too", function()
    for _, url in ipairs{ https_url(), http_url() } do
      guarded:reset()
      local ids = emu:create_bandwidths(6)
      local results, summary = new{ endpoint = url, proxy = with_auth(guarded) }:delete_bandwidths(ids,
        { concurrency = 3 })
      assert.equal(6, summary.deleted, url)
      for _, r in ipairs(results) do assert.equal(204, r.status, url) end
      local seen = guarded:seen()
      assert.is_true(#seen >= 1, url)
      for _, s in ipairs(seen) do
        assert.equal(url == http_url() and "DELETE" or "CONNECT", s.method, url)
        assert.is_true(s.headers["proxy-authorization"] == BASIC, url .. ": the proxy got its credentials")
      end
    end
    assert.is_false(has(guarded:raw():match("^(.-)DELETE") or "", emu.token), "no token in CONNECT tunnels")
  end)

  it("stops a batch at the proxy's 407: one request, the others not sent", function()
    local ids = emu:create_bandwidths(5)
    local results, summary = new{ endpoint = https_url(), proxy = guarded.url }:delete_bandwidths(ids)
    assert.equal("auth", summary.stopped)
    assert.equal(1, summary.failed)
    assert.equal(4, summary.not_sent)
    assert.equal("proxy", results[1].kind)
    assert.equal(1, #guarded:seen())
    assert.equal(5, #emu:bandwidths())
  end)
end)

describe("eip --proxy / --no-proxy", function()
  local fx = fixture.emulator()
  local emu, open

  setup(function()
    emu = fx.start()
    open = proxy.start{ names = { [NAME] = "127.0.0.1" } }
  end)
  teardown(function()
    if open then open:stop() end
    fx.stop()
  end)
  before_each(function()
    fx.reset()
    open:reset()
  end)

  -- The command with a clean environment plus `env`; returns exit code, stdout, stderr.
  local function run(args, env)
    local vars = { PATH = os.getenv("PATH"), HOME = "/tmp", OS_AUTH_TOKEN = emu.token,
      HUAWEICLOUD_SDK_PROJECT_ID = emu.project_id }
    for k, v in pairs(env or {}) do vars[k] = v end
    local list = {}
    for k, v in pairs(vars) do list[#list + 1] = k .. "=" .. nginx.shell_quote(v) end
    local out, err = os.tmpname(), os.tmpname()
    local _, code = host.execute(string.format("env -i %s %s bin/eip %s >%s 2>%s", table.concat(list, " "),
      host.lua, args, out, err))
    local o, e = nginx.read_file(out), nginx.read_file(err)
    os.remove(out)
    os.remove(err)
    return code, o, e
  end

  local endpoint = function() return "--endpoint http://" .. NAME .. ":" .. emu.port end

  it("--proxy URL sends through that proxy", function()
    local code, out, err = run("list-bandwidths " .. endpoint() .. " --proxy " .. open.url)
    assert.equal(0, code, err)
    assert.matches("^ID%s+TYPE", out)
    assert.equal("GET", open:seen()[1].method)
  end)

  it("--no-proxy ignores the environment's proxy", function()
    local code = run("list-bandwidths " .. endpoint() .. " --no-proxy --max-attempts 1", { http_proxy = open.url })
    assert.equal(1, code, "direct: the name resolves nowhere but at the proxy")
    assert.equal(0, #open:seen())
    code = run("list-bandwidths " .. endpoint(), { http_proxy = open.url })
    assert.equal(0, code)
    assert.equal(1, #open:seen())
  end)

  it("refuses credentials in --proxy without echoing them, and --proxy with --no-proxy", function()
    local code, out, err = run("list-bandwidths " .. endpoint() .. " --proxy http://u:" .. SECRET .. "@127.0.0.1:"
      .. open.port)
    assert.equal(2, code)
    assert.matches("https_proxy", err)
    assert.is_false(has(out .. err, SECRET))
    code, out, err = run("list-bandwidths " .. endpoint() .. " --proxy " .. open.url .. " --no-proxy")
    assert.equal(2, code)
    assert.matches("exclusive", err)
    assert.equal("", out)
    assert.equal(0, #open:seen())
    -- Every occurrence, not the last only: the first one's credentials are in ps all the same.
    for _, args in ipairs{
        "list-bandwidths " .. endpoint() .. " --proxy http://u:" .. SECRET .. "@127.0.0.1:1 --proxy " .. open.url,
        "list-bandwidths " .. endpoint() .. " --proxy=http://u:" .. SECRET .. "@127.0.0.1:1 --proxy=" .. open.url,
        "--proxy http://u:" .. SECRET .. "@127.0.0.1:1 list-bandwidths " .. endpoint() .. " --proxy " .. open.url,
        "--json --proxy http://u:" .. SECRET .. "@127.0.0.1:1 --proxy " .. open.url .. " list-bandwidths "
          .. endpoint(),
        -- (before a command that takes no --proxy, which leaves it out: refused all the same)
        "--proxy http://u:" .. SECRET .. "@127.0.0.1:1 status 404", "--proxy=http://u:" .. SECRET .. "@h:1 regions" } do
      code, out, err = run(args)
      assert.equal(2, code, args .. ": " .. out .. err)
      assert.matches("--proxy must not carry credentials", err, 1, true)
      assert.is_false(has(out .. err, SECRET), args)
    end
    assert.equal(0, #open:seen())
    local _, help = run("list-bandwidths --help")
    assert.matches("%-%-proxy URL", help)
    assert.matches("%-%-no%-proxy", help)
  end)
end)
