-- Arguments refused before anything is sent: a bandwidth name as the API documents
-- it (letters, digits, '_', '-', '.' and Chinese characters, in UTF-8, 1-64 characters), a
-- blank secret (a token of spaces would be sent as no X-Auth-Token at all), eip.metrics'
-- options, and a credentials file value that opens a quote without closing it.
local eip = require "eip"
local client_mod = require "eip.client"
local validate = require "eip.validate"
local profile = require "eip.profile"
local nginx = require "spec.support.nginx"
local raised = require("spec.support.assertions").raised

local env_of = require("spec.support.assertions").env_of

local has = require("spec.support.assertions").has

describe("a bandwidth name (validate.bandwidth_name, create_bandwidth's name)", function()
  it("accepts what the API documents: ASCII letters and digits, _ - . and Chinese, 1-64 characters", function()
    for _, name in ipairs{ "bw-1.a_B", "带宽-1", "共享带宽", ("a"):rep(64), ("中"):rep(64), "㐀", "鿿" } do
      assert.equal(name, validate.bandwidth_name("name", name))
    end
  end)

  it("refuses other characters and bytes, naming the argument and where", function()
    local cases = {
      { "é", "not a Chinese character" },          -- an accented letter (2 bytes): not documented
      { "café", "at character 4" },
      { "a b", '" " at character 2' },
      { "\228\184", "not a Chinese character" },   -- a Chinese character cut short
      { "\239\188\136", "U+FF08" },                 -- a full-width parenthesis: not a Chinese character
      { "\224\128\128", "not a Chinese character" }, -- an overlong encoding
      { "\255", "not a Chinese character" },
      { ("a"):rep(65), "at most 64 characters" },
      { ("中"):rep(65), "at most 64 characters" },
      { "", "non%-empty" },
      { "a\0b", "NUL" },
    }
    for _, c in ipairs(cases) do
      local err = raised(validate.bandwidth_name, "name", c[1])
      assert.equal("usage", err.kind)
      assert.equal("name", err.argument)
      assert.is_truthy(err.message:find(c[2]) or has(err.message, c[2]), err.message)
    end
  end)

  it("is what client:create_bandwidth checks, before sending (a closed port: nothing can be sent)", function()
    local c = eip.new{ endpoint = "http://127.0.0.1:9", token = "t0k-usage-checks", project_id = "p1",
      max_attempts = 1 }
    for _, name in ipairs{ "é", ("中"):rep(65), "a b" } do
      local err = raised(c.create_bandwidth, c, { name = name, size = 5 })
      assert.same({ "usage", "name" }, { err.kind, err.argument }, err.message)
    end
    -- 64 Chinese characters (192 bytes) pass the check: the error is the closed port's.
    local err = raised(c.create_bandwidth, c, { name = ("中"):rep(64), size = 5 })
    assert.equal("transport", err.kind)
    c:close()
  end)
end)

describe("a blank secret", function()
  local base = { endpoint = "https://vpc.example", project_id = "p1" }
  local function opts(extra)
    local o = {}
    for k, v in pairs(base) do o[k] = v end
    for k, v in pairs(extra) do o[k] = v end
    return o
  end

  it("is a usage error naming the option or variable: a token of spaces is sent as none", function()
    for _, blank in ipairs{ " ", "    " } do
      local err = raised(client_mod.new, opts{ token = blank }, env_of{})
      assert.equal("usage", err.kind)
      assert.equal("token", err.argument)
      assert.matches("blank", err.message)
      err = raised(client_mod.new, opts{}, env_of{ OS_AUTH_TOKEN = blank })
      assert.equal("OS_AUTH_TOKEN", err.argument)
      err = raised(client_mod.new, opts{ ak = "AKEXAMPLE0000001", sk = blank }, env_of{})
      assert.equal("sk", err.argument)
      err = raised(eip.sign, { method = "GET", url = "https://vpc.example/", headers = { ["X-Sdk-Date"] =
        "20240101T000000Z" }, ak = "AKEXAMPLE0000001", sk = blank })
      assert.equal("sk", err.argument)
    end
    -- A secret with spaces inside it is still a secret.
    client_mod.new(opts{ token = " t-0123 456789 " }, env_of{}):close()
  end)
end)

describe("signing_dict", function()
  it("is a usage error outside nginx, or when not a name, whatever the credentials", function()
    local keys = { ak = "AKUSAGECHECKS0000001", sk = "sk-usage-checks-0000" }
    for _, creds in ipairs{ { token = "t0k-usage-checks" }, keys } do
      for _, value in ipairs{ "eip_signing", "", 5 } do
        local opts = { endpoint = "http://127.0.0.1:9", project_id = "p1", signing_dict = value }
        for k, v in pairs(creds) do opts[k] = v end
        local err = raised(eip.new, opts)
        assert.same({ "usage", "signing_dict" }, { err.kind, err.argument }, err.message)
      end
    end
  end)
end)

describe("eip.metrics' options", function()
  it("refuses what is not an options table, unknown options and a bad dict, as every entry point does", function()
    local cases = {
      { "x", "options", "must be a table" },
      { 5, "options", "must be a table" },
      { { foo = 1 }, "options", 'unknown option "foo"' },
      { { dikt = "x" }, "options", 'unknown option "dikt"' },
      { { "eip_metrics" }, "options", "unknown option" },
      { { dict = 5 }, "dict", "non%-empty string" },
      { { dict = "" }, "dict", "non%-empty string" },
      { { dict = "eip_metrics" }, "dict", "lua_shared_dict" }, -- outside nginx: no dict at all
    }
    for _, c in ipairs(cases) do
      local err = raised(eip.metrics, c[1])
      assert.equal("usage", err.kind)
      assert.equal(c[2], err.argument)
      assert.matches(c[3], err.message)
    end
  end)

  it("takes nothing, or an empty table", function()
    for _, m in ipairs{ eip.metrics(), eip.metrics(nil), eip.metrics{} } do
      m.on_response{ operation = "delete_bandwidth", outcome = "ok", status = 204, elapsed = 0.01 }
      local want = 'eip_requests_total{operation="delete_bandwidth",outcome="ok",status="204"} 1'
      assert.matches(want, m:render(), 1, true)
    end
  end)

  it("observe ignores an info it cannot read (a metamethod raises), and labels only with strings and numbers",
    function()
    local function boom() error("boom from a metamethod", 0) end
    local m = eip.metrics()
    for _, info in ipairs{ setmetatable({}, { __index = boom }),
        setmetatable({}, { __index = boom, __metatable = "locked" }) } do
      m.on_response(info)
      m:observe(info)
    end
    local label = setmetatable({}, { __tostring = boom })
    m:observe{ operation = label, outcome = label, status = label, elapsed = 0.01 }
    local text = m:render()
    assert.matches('eip_requests_total{operation="unknown",outcome="unknown",status="none"} 1', text, 1, true)
    assert.is_nil(text:find("table", 1, true), text)
  end)
end)

describe("eip.sign's refusals", function()
  it("name the argument the signer refused, not the whole options table", function()
    local date = "20240101T000000Z"
    local function opts(extra)
      local o = { method = "GET", url = "https://vpc.example/v1/p1/bandwidths", headers = { ["X-Sdk-Date"] = date },
        ak = "AKEXAMPLE0000001", sk = "SKEXAMPLE00000000000001" }
      for k, v in pairs(extra) do o[k] = v end
      return o
    end
    local cases = {
      { "headers", opts{ headers = {} }, "X%-Sdk%-Date" },
      { "headers", opts{ headers = { ["X-Sdk-Date"] = "yesterday" } }, "X%-Sdk%-Date" },
      { "headers", opts{ headers = { ["X-Sdk-Date"] = date, ["Bad Name"] = "x" } }, "header name" },
      { "headers", opts{ headers = { ["X-Sdk-Date"] = date, ["X-A"] = "a\r\nb" } }, "header value" },
      { "method", opts{ method = "GE T" }, "method" },
      { "ak", opts{ ak = "AK\255EXAMPLE" }, "AK" },
    }
    for _, c in ipairs(cases) do
      local err = raised(eip.sign, c[2])
      assert.same({ "usage", c[1] }, { err.kind, err.argument }, err.message)
      assert.matches(c[3], err.message)
    end
  end)
end)

describe("a transport constructor's options", function()
  it("whose metamethods raise are its own plain error, naming it, not what the metamethod raised", function()
    local unreadable = setmetatable({}, { __index = function() error({ "a table of the caller's" }) end })
    for _, c in ipairs{ { "eip.transport", require("eip.transport").new },
        { "eip.transport.curl", require("eip.transport.curl").new } } do
      local ok, err = pcall(c[2], unreadable)
      assert.is_false(ok)
      assert.equal("string", type(err))
      assert.matches(c[1] .. ": options cannot be read", err, 1, true)
    end
  end)
end)

describe("a usage error about a huge value", function()
  it("is made at once however many clients hold secrets (the value is not looked into, nor shown)", function()
    local clients = {}
    for i = 1, 150 do
      clients[i] = eip.new{ endpoint = "https://vpc.example", project_id = "p1", metadata_url = false,
        token = "t0k-huge-value-" .. i }
    end
    local huge = ("a"):rep(2 ^ 20)
    local started = os.clock()
    local err = raised(eip.new, huge)
    local err2 = raised(validate.options, "options", { [huge] = 1 }, {})
    local err3 = raised(eip.metrics, { [huge] = 1 }) -- (its options are checked by hand)
    local spent = os.clock() - started
    for _, c in ipairs(clients) do c:close() end
    assert.same({ "usage", "options" }, { err.kind, err.argument })
    assert.matches("a 1048576-character string", err.message, 1, true)
    assert.matches("a 1048576-character string", err2.message, 1, true)
    assert.matches("a 1048576-character string", err3.message, 1, true)
    assert.is_true(spent < 0.25, string.format("%.3f s", spent))
  end)
end)

describe("the credentials file", function()
  local SK = "u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8dKLzd"
  local dir

  setup(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. nginx.shell_quote(dir)))
  end)
  teardown(function() os.execute("rm -rf " .. nginx.shell_quote(dir)) end)

  it("refuses a value of ours that opens a quote and never closes it, naming file, line and key", function()
    for _, v in ipairs{ '"' .. SK, "'" .. SK, '"' .. SK .. "'", '"' } do
      local text = "[basic]\nak = AKEXAMPLE0000001\nsk = " .. v .. "\nproject_id = p1\n"
      local err = raised(profile.parse, text, "/home/me/.huaweicloud/credentials")
      assert.equal("usage", err.kind)
      assert.equal("credentials file", err.argument)
      assert.matches("/home/me/.huaweicloud/credentials, line 3: the value of sk opens a quote", err.message, 1, true)
      assert.is_false(has(tostring(err), SK), "the message shows the SK")
      -- And through a client, reading the file named by HUAWEICLOUD_SDK_CREDENTIALS_FILE.
      local path = dir .. "/credentials"
      nginx.write_file(path, text)
      os.execute("chmod 600 " .. nginx.shell_quote(path))
      err = raised(client_mod.new, { endpoint = "https://vpc.example" },
        env_of{ HUAWEICLOUD_SDK_CREDENTIALS_FILE = path, HOME = dir })
      assert.equal("credentials file", err.argument)
      assert.is_true(has(err.message, path .. ", line 3") and has(err.message, "sk"), err.message)
      assert.is_false(has(tostring(err), SK))
    end
  end)

  -- `sk = <SK>   # production key`: the Go SDK cuts the comment off, Python's keeps it, and lua-eip
  -- signed with it, every signature refused (three spent towards the key's lock).
  it("refuses a value of ours that holds a space (a comment after it), naming file, line and key", function()
    for _, case in ipairs{ { "sk", SK .. "   # production key" }, { "sk", '"' .. SK .. ' x"' },
        { "security_token", "abc ; temporary" }, { "project_id", "p1 #main" }, { "ak", "AKEXAMPLE0000001\t;x" } } do
      local text = "[basic]\nak = AKEXAMPLE0000001\nsk = " .. SK .. "\nproject_id = p1\n"
        .. case[1] .. " = " .. case[2] .. "\n"
      local err = raised(profile.parse, text, "/home/me/.huaweicloud/credentials")
      assert.equal("credentials file", err.argument)
      assert.matches("/home/me/.huaweicloud/credentials, line 5: the value of " .. case[1] .. " holds a space",
        err.message, 1, true)
      assert.is_false(has(tostring(err), SK), "the message shows the SK")
    end
    -- A comment mark with no space before it: go-ini cuts the value there all the same.
    for _, case in ipairs{ { "sk", SK .. "#rotated-2024" }, { "sk", SK .. ";old" }, { "ak", '"AK1#x"' },
        { "iam_endpoint", "https://iam.example;x" } } do
      local err = raised(profile.parse, "[basic]\nak = AK1\nsk = x\n" .. case[1] .. " = " .. case[2] .. "\n", "F")
      assert.equal("credentials file", err.argument)
      assert.matches("F, line 4: the value of " .. case[1] .. " holds a comment mark", err.message, 1, true)
      assert.is_false(has(tostring(err), SK), "the message shows the SK")
    end
    -- A CR alone ends a line, in this parse as in the lenient one (redaction's).
    local cr = profile.parse("[basic]\rak = AK1\rsk = " .. SK .. "\r", "F")
    assert.same({ "AK1", SK }, { cr.basic.ak, cr.basic.sk })
    -- Other sections and keys are left as they are; a comment line of its own is fine.
    local s = profile.parse("[basic]\n# production key\nsk = " .. SK .. "\nnote = a b\n[other]\nsk = x y\n", "f")
    assert.same({ SK, "a b", "x y" }, { s.basic.sk, s.basic.note, s.other.sk })
  end)

  -- `sk = <SK><U+00A0>` (a non-breaking space copied with the key): go-ini trims it, lua-eip
  -- signed with it, every signature refused. So with a typographic quote, a backtick (go-ini's
  -- quote) or a quote left inside the value.
  it("refuses a value of ours that holds a quote or a character outside printable ASCII, naming the key", function()
    for _, case in ipairs{ { "sk", SK .. "\194\160" }, { "sk", "\226\128\156" .. SK .. "\226\128\157" },
        { "sk", "`" .. SK .. "`" }, { "sk", '"""' .. SK .. '"""' }, { "security_token", "abc\226\128\139def" },
        { "sk", SK .. '"x' }, { "sk", "'" .. SK .. "\"'" } } do
      local text = "[basic]\nak = AKEXAMPLE0000001\nproject_id = p1\n" .. case[1] .. " = " .. case[2] .. "\n"
      local err = raised(profile.parse, text, "/home/me/.huaweicloud/credentials")
      assert.equal("credentials file", err.argument)
      assert.matches("/home/me/.huaweicloud/credentials, line 4: the value of " .. case[1] .. " holds a quote mark "
        .. "or a character outside printable ASCII", err.message, 1, true)
      assert.is_false(has(tostring(err), SK), "the message shows the SK")
    end
    -- Other sections and keys are left as they are.
    local s = profile.parse("[basic]\nsk = " .. SK .. "\nnote = caf\195\169 `x`\n[other]\nsk = \194\160x\n", "f")
    assert.same({ SK, "caf\195\169 `x`", "\194\160x" }, { s.basic.sk, s.basic.note, s.other.sk })
  end)

  -- HUAWEICLOUD_SDK_IAM_ENDPOINT took a host name alone (https), the file's iam_endpoint did not.
  it("takes a host name alone as iam_endpoint, as the environment's: https", function()
    local path = dir .. "/credentials-iam"
    nginx.write_file(path, "[basic]\nak = AKEXAMPLE0000001\nsk = " .. SK
      .. "\nproject_id = 0a1b2c3d4e5f60718293a4b5c6d7e8f9\niam_endpoint = iam.cn-north-4.myhuaweicloud.com\n")
    os.execute("chmod 600 " .. nginx.shell_quote(path))
    local c = client_mod.new({ endpoint = "https://vpc.example" },
      env_of{ HUAWEICLOUD_SDK_CREDENTIALS_FILE = path, HOME = dir })
    assert.equal("aksk", c.auth)
    c:close()
  end)

  it("still reads quoted values, and leaves other sections and keys to the tools that read them", function()
    local s = profile.parse('[basic]\nsk = "' .. SK .. '"\nak = \'AK1\'\nnote = "open\n[other]\nsk = "x\n', "f")
    assert.equal(SK, s.basic.sk)
    assert.equal("AK1", s.basic.ak)
    assert.equal('"open', s.basic.note)
    assert.equal('"x', s.other.sk)
  end)
end)

describe("a transport option that cannot be read", function()
  -- An object of the caller's whose __index raises for a field it lacks (a "strict" class):
  -- reading its send or close raised that error bare, where a usage error naming transport was due.
  it("is a usage error naming transport, whatever its __index raises", function()
    for _, thrown in ipairs{ "strict: no field close", { "a table" }, false } do
      local t = setmetatable({ send = function() end }, { __index = function() error(thrown, 0) end })
      local err = raised(eip.new, { endpoint = "http://127.0.0.1:9", token = "t0k-usage-checks", project_id = "p1",
        transport = t })
      assert.same({ "usage", "transport" }, { err.kind, err.argument }, tostring(err))
    end
  end)
end)

describe("an unknown option's name", function()
  -- A name of 1 MB (a value pasted where a key goes) was quoted whole: a message of 1 MB.
  it("is quoted whole when short, and cut (its length said) when long", function()
    local err = raised(eip.new, { endpoint = "http://127.0.0.1:9", token = "t0k-usage-checks", project_id = "p1",
      tiemout = 5 })
    assert.same({ "usage", "options" }, { err.kind, err.argument })
    assert.matches('unknown option "tiemout"', err.message, 1, true)
    local long = ("k"):rep(1024 * 1024)
    err = raised(eip.new, { endpoint = "http://127.0.0.1:9", token = "t0k-usage-checks", project_id = "p1",
      [long] = 5 })
    assert.same({ "usage", "options" }, { err.kind, err.argument })
    assert.is_true(#tostring(err) < 1024, #tostring(err))
    assert.matches("1048576", err.message, 1, true)
  end)
end)

-- An SK or a security token with a character no key of the cloud's holds (a non-breaking space
-- or a typographic quote pasted with it, the quotes an env file keeps) was signed with: every
-- signature refused, five in a row lock the key. From the options, the environment and eip.sign.
describe("an SK or a security token", function()
  local SK = "u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8dKLzd"
  local BAD = { SK .. "\194\160", "\226\128\156" .. SK .. "\226\128\157", '"' .. SK .. '"', "'" .. SK .. "'",
    SK:sub(1, 20) .. " " .. SK:sub(21), "`" .. SK .. "`", SK .. "\195\169" }

  it("holding a space, a quote mark or a byte outside ASCII is refused, naming it, never showing it", function()
    for _, v in ipairs(BAD) do
      for _, case in ipairs{
        { "sk", function() return client_mod.new{ endpoint = "https://vpc.example", project_id = "p1",
          ak = "AKEXAMPLE0000001", sk = v } end },
        { "security_token", function() return client_mod.new{ endpoint = "https://vpc.example",
          project_id = "p1", ak = "AKEXAMPLE0000001", sk = SK, security_token = v } end },
        { "HUAWEICLOUD_SDK_SK", function() return client_mod.new({ endpoint = "https://vpc.example" },
          env_of{ HUAWEICLOUD_SDK_AK = "AKEXAMPLE0000001", HUAWEICLOUD_SDK_SK = v,
            HUAWEICLOUD_SDK_PROJECT_ID = "p1" }) end },
        { "sk", function() return eip.sign{ method = "GET", url = "https://vpc.example/v1/p1/bandwidths",
          ak = "AKEXAMPLE0000001", sk = v } end },
      } do
        local err = raised(case[2])
        assert.same({ "usage", case[1] }, { err.kind, err.argument }, v)
        assert.matches("printable ASCII", err.message, 1, true)
        assert.is_false(has(tostring(err), SK:sub(1, 20)), "the message shows the key")
      end
    end
  end)

  it("of printable ASCII is taken (a security token holds '+', '/' and '=')", function()
    local c = client_mod.new{ endpoint = "https://vpc.example", project_id = "p1", ak = "AKEXAMPLE0000001",
      sk = "s3cr3t/with+chars=", security_token = "gQ5jbi1ub3J0aC00+/=_-.~" }
    assert.equal("aksk", c.auth)
    c:close()
  end)
end)
