-- The `eip` command (bin/eip, lua/eip/cli/) run as a process against the emulator: every
-- command, exit codes 0/1/2, --json lines, --dry-run sending nothing, ids from stdin, unknown
-- commands and options, --help, secrets kept off the command line and out of the output, the
-- the absence of the progress line when stderr is a file (cli_terminal_spec shows it in a
-- terminal).
local cjson = require "cjson"
local emulator = require "spec.support.emulator"
local host = require "spec.support.host"
local socket = require "socket"
local absent_id = require("spec.support.fixture").absent_id
-- A drain nobody is asked to confirm: the terms of the new bandwidths given, never defaults.
local DRAIN_YES = "--drain --yes --size 1 --charge-mode bandwidth"

-- The checkout's command, run by the interpreter of this test run (Lua 5.1 ... 5.4, LuaJIT).
local ROOT = host.ROOT
local EIP = host.lua .. " " .. ROOT .. "/bin/eip"
local q = host.quote

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  os.remove(path)
  return s
end

-- A file's text, the file kept ("" when there is none yet).
local function slurp_keep(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("*a")
  f:close()
  return s
end

local lines = require("spec.support.assertions").lines

-- --json's lines (one object per id), by bandwidth id.
local function by_id(out)
  local objs = {}
  for _, line in ipairs(lines(out)) do
    local o = cjson.decode(line)
    objs[o.bandwidth_id] = o
  end
  return objs
end

local has = require("spec.support.assertions").has

-- A batch prints each id's line as that id finishes, so lines are found by id (the second
-- field of a text line), not by place.
local function line_for(ls, id)
  for _, l in ipairs(ls) do
    if l:match("^%S+%s+(%S+)") == id then return l end
  end
  error("no line for " .. id .. " in:\n" .. table.concat(ls, "\n"), 2)
end

describe("eip command", function()
  local emu

  -- Output for a failure's message, the emulator's token hidden: a spec prints no secret, also
  -- when the command it checks does.
  local function hide(s)
    return (s:gsub(emu.token:gsub("%p", "%%%0"), "<TOKEN>"))
  end

  -- A clean environment (env -i): only what the command is given, so nothing of the caller's
  -- shell leaks in. opts.env adds or replaces variables (false removes one); opts.stdin feeds
  -- stdin (opts.input names a file for it, or "&-" to close it); opts.cwd runs elsewhere;
  -- opts.out sends stdout elsewhere ("/dev/full", "&-": stdout is then ""; "gone": a pipe whose
  -- reader went away before the command began, so that its first write fails); opts.pipe reads
  -- stdout with a command (`head -1`: stdout is what it wrote). opts.signal: a function(pid)
  -- called while the command runs in the background. Returns exit code, stdout, stderr.
  local function run(args, opts)
    opts = opts or {}
    local vars = { PATH = os.getenv("PATH"), HOME = os.getenv("HOME") or "/tmp",
      EIP_ENDPOINT = emu.url, OS_AUTH_TOKEN = emu.token, HUAWEICLOUD_SDK_PROJECT_ID = emu.project_id }
    for k, v in pairs(opts.env or {}) do vars[k] = v or nil end
    local env = {}
    for k, v in pairs(vars) do env[#env + 1] = k .. "=" .. q(v) end
    local out, err, input = os.tmpname(), os.tmpname(), opts.input or "/dev/null"
    if opts.stdin then
      input = os.tmpname()
      local f = assert(io.open(input, "w"))
      f:write(opts.stdin)
      f:close()
    end
    local redirect = input == "&-" and "<&-" or ("<" .. input)
    -- opts.feed: a shell command whose output is the command's stdin (it may never end: the
    -- command is then killed after 30 s, and its status says so).
    if opts.feed then redirect = "" end
    -- exec: in the background, $! is then the command's own pid (a signal reaches it, not a shell).
    -- opts.nohup: started as nohup starts it, SIGHUP ignored. SIGPIPE as a shell gives it (this
    -- process ignores it, as LuaSocket does once loaded, and children would inherit that).
    local cmd = string.format("cd %s && exec %senv --default-signal=PIPE -i %s %s %s %s", q(opts.cwd or ROOT),
      opts.nohup and "nohup " or opts.feed and "timeout -s KILL 30 " or "", table.concat(env, " "), EIP, args,
      redirect)
    if opts.feed then cmd = string.format("{ %s; } 2>/dev/null | (%s)", opts.feed, cmd) end
    local code
    if opts.pipe or opts.signal then
      -- The command's own status (not the reader's), through a file; with opts.signal, run in the
      -- background and its pid known.
      local rc, pid = os.tmpname(), os.tmpname()
      local to_err = opts.pipe_both and "&1" or err -- pipe_both: stderr goes to the reader too
      local inner = opts.signal and string.format("(%s) 2>%s & echo $! >%s; wait $!; echo $? >%s", cmd, to_err, pid, rc)
        or string.format("(%s) 2>%s; echo $? >%s", cmd, to_err, rc)
      local line = string.format("(%s) | %s >%s", inner, opts.pipe or "cat", out)
      if opts.signal then
        -- Waited for: the whole pipeline's end (fin), not the command's status alone (rc is
        -- written before the reader has put everything in `out`: an empty stdout, under load).
        local fin = os.tmpname()
        os.remove(fin)
        host.execute("(" .. line .. "; echo done >" .. fin .. ") >/dev/null 2>&1 &")
        local deadline = os.time() + 20
        while slurp_keep(pid) == "" or not tonumber(slurp_keep(pid)) do
          assert(os.time() < deadline, "the command did not start")
          socket.sleep(0.02)
        end
        opts.signal(tonumber(slurp_keep(pid)))
        while (slurp_keep(fin) or "") == "" do
          assert(os.time() < deadline + 20, "the command did not end")
          socket.sleep(0.05)
        end
        os.remove(fin)
      else
        host.execute(line)
      end
      code = tonumber(slurp(rc))
      os.remove(pid)
    else
      local to = opts.out and (opts.out == "&-" and ">&-" or (">" .. opts.out)) or (">" .. out)
      local fifo
      if opts.out == "gone" then
        -- (a FIFO opened both ways, its writing end kept as 5 and its only reader closed at once)
        fifo = os.tmpname()
        os.remove(fifo)
        assert(host.execute("mkfifo " .. q(fifo)))
        cmd, to = string.format("exec 4<>%s 5>%s 4<&-; %s", q(fifo), q(fifo), cmd), ">&5 5>&-"
      end
      code = select(2, host.execute(string.format("%s %s 2>%s", cmd, to, err)))
      if fifo then os.remove(fifo) end
    end
    if opts.stdin then os.remove(input) end
    return code, slurp(out), slurp(err)
  end

  setup(function()
    emu = emulator.start()
  end)

  teardown(function()
    emu:stop()
  end)

  before_each(function()
    emu:reset()
  end)

  describe("help and usage", function()
    it("eip --help lists every command and exits 0", function()
      local code, out = run("--help")
      assert.equal(0, code)
      for _, c in ipairs{ "delete-bandwidth", "show-bandwidth", "list-bandwidths", "status", "regions" } do
        assert.truthy(has(out, c), c)
      end
      assert.truthy(has(out, "OS_AUTH_TOKEN"))
      assert.truthy(has(out, "eip --version prints the version."))
      code, out = run("--version")
      assert.equal(0, code)
      assert.equal("eip (lua-eip) " .. require("eip")._VERSION .. "\n", out)
    end)

    it("every command has --help (and eip help COMMAND)", function()
      for _, c in ipairs{ "delete-bandwidth", "show-bandwidth", "list-bandwidths", "status", "regions" } do
        local code, out = run(c .. " --help")
        assert.equal(0, code, c)
        assert.truthy(has(out, "usage: eip " .. c), c)
        local code2, out2 = run("help " .. c)
        assert.equal(0, code2)
        assert.equal(out, out2)
      end
      -- (help asked of help itself: the tool's help, not "no such command")
      local code3, tool = run("--help")
      for _, h in ipairs{ "help --help", "help -h", "help" } do
        local c, o = run(h)
        assert.same({ 0, tool }, { c, o }, h)
      end
      assert.equal(0, code3)
      local _, out = run("delete-bandwidth -h")
      local batch = require "eip.batch" -- the command says the library's limits without requiring it
      assert.truthy(has(out, string.format("(1-%d, default %d;", batch.MAX_CONCURRENCY, batch.DEFAULT_CONCURRENCY)))
      for _, o in ipairs{ "--missing-ok", "--concurrency", "--json", "--dry-run", "--force", "--endpoint",
          "--region", "--project-id", "--timeout", "--max-attempts" } do
        assert.truthy(has(out, o), o)
      end
    end)

    it("no command is a usage error (exit 2, help on stderr)", function()
      local code, out, err = run("")
      assert.equal(2, code)
      assert.equal("", out)
      assert.truthy(has(err, "usage: eip COMMAND"))
    end)

    -- Debian's lua-cjson is not a rock (the README installs with --deps-mode=none): a Lua without
    -- it gets a line that names the package, not require's traceback.
    it("without lua-cjson says what to install, with no traceback", function()
      local code, out, err = run("status 404", { env = { LUA_CPATH = "/nonexistent/?.so" } })
      assert.equal(1, code)
      assert.equal("", out)
      assert.equal("eip: lua-cjson cannot be loaded for " .. _VERSION .. " (module 'cjson.safe' not found)\n"
        .. "install it: apt-get install lua-cjson (Debian), or luarocks install lua-cjson\n", err)
    end)

    -- A checkout not built for the interpreter that runs the command (`lua5.1 bin/eip` after a
    -- build for 5.4): eip's hint printed, then require's list of the files it tried and a
    -- traceback. Here a copy of the launchers beside the checkout's modules, and no build/.
    it("without the C core built for the interpreter says only what to build (eip, eip-emulator)", function()
      local dir = os.tmpname()
      os.remove(dir)
      assert(host.execute(string.format("mkdir -p %s/bin && cp %s/bin/eip %s/bin/eip-emulator %s/bin/ && "
        .. "ln -s %s/lua %s/lua", q(dir), q(ROOT), q(ROOT), q(dir), q(ROOT), q(dir))))
      for _, command in ipairs{ "eip status 404", "eip-emulator --help" } do
        local out, err = os.tmpname(), os.tmpname()
        local _, code = host.execute(string.format("cd %s && env -i PATH=%s %s bin/%s >%s 2>%s", q(dir),
          q(os.getenv("PATH")), host.lua, command, out, err))
        assert.same({ 1, "" }, { code, slurp(out) }, command)
        assert.equal("eip: the C core (eip.core) for " .. host.lua .. " is not on package.cpath: install the rock "
          .. "(luarocks make), or in a checkout run `make LUA=" .. host.lua .. "` and add build/" .. host.lua
          .. "/?.so to LUA_CPATH\n", slurp(err), command)
      end
      host.execute("rm -rf " .. q(dir))
    end)

    -- A rock installed in a tree of its own whose bin/ alone is on the PATH: LuaRocks' wrapper
    -- adds no path for such a tree, and the command printed require's list of the files it tried
    -- and a traceback. Here a copy of the launchers with no modules beside them.
    it("without lua-eip's modules on the path says how to put them there (eip, eip-emulator)", function()
      local dir = os.tmpname()
      os.remove(dir)
      assert(host.execute(string.format("mkdir -p %s/bin && cp %s/bin/eip %s/bin/eip-emulator %s/bin/",
        q(dir), q(ROOT), q(ROOT), q(dir))))
      local v = host.lua == "luajit" and "5.1" or host.lua:match("%d+%.%d+")
      for _, command in ipairs{ "eip status 404", "eip-emulator --help" } do
        local out, err = os.tmpname(), os.tmpname()
        local _, code = host.execute(string.format("cd %s && env -i PATH=%s %s bin/%s >%s 2>%s", q(dir),
          q(os.getenv("PATH")), host.lua, command, out, err))
        assert.same({ 1, "" }, { code, slurp(out) }, command)
        assert.equal(command:match("^%S+") .. ": lua-eip's modules are not on Lua " .. v .. "'s package.path: "
          .. "for a rock installed with --tree DIR, run eval \"$(luarocks --lua-version=" .. v
          .. " --tree DIR path)\" first\n", slurp(err), command)
      end
      host.execute("rm -rf " .. q(dir))
    end)

    -- Lua's default paths end (Lua 5.1, LuaJIT: begin) with ./?.lua and ./?.so, and no system
    -- directory has a cjson/safe.lua or an eip/core.lua: run in /tmp, the command would load
    -- another user's, with the credentials in its environment.
    it("never loads a module from the directory it runs in (eip, eip-emulator)", function()
      local dir = os.tmpname()
      os.remove(dir)
      assert(host.execute("mkdir -p " .. q(dir .. "/cjson") .. " " .. q(dir .. "/eip")))
      for _, name in ipairs{ "cjson/safe.lua", "eip/core.lua", "eip/cli.lua" } do
        local f = assert(io.open(dir .. "/" .. name, "w"))
        f:write('io.stdout:write("loaded ', name, '\\n") os.exit(7)\n')
        f:close()
      end
      for _, command in ipairs{ "eip --version", "eip-emulator --help" } do
        local out = os.tmpname()
        local _, code = host.execute(string.format("cd %s && env -i PATH=%s %s %s/bin/%s >%s 2>&1", q(dir),
          q(os.getenv("PATH")), host.lua, q(ROOT), command, out))
        local text = slurp(out)
        assert.is_nil(text:find("loaded ", 1, true), command .. ": " .. text)
        assert.equal(0, code, command .. ": " .. text)
      end
      host.execute("rm -rf " .. q(dir))
    end)

    it("an unknown command exits 2 with a hint, sending nothing", function()
      local code, _, err = run("delet-bandwidth x")
      assert.equal(2, code)
      assert.truthy(has(err, 'unknown command "delet-bandwidth"'))
      assert.truthy(has(err, "did you mean delete-bandwidth?"))
      assert.equal(0, emu:stats().requests)
    end)

    -- `--` ends the options (POSIX): the word after it is the command, and what follows it is
    -- taken as it is, an option's look included. It was itself taken for an unknown command.
    it("a -- before the command ends the options: the next word is the command", function()
      local code, out, err = run("-- status 404")
      assert.same({ 0, "" }, { code, err })
      assert.truthy(has(out, "Not Found"), out)
      code, out, err = run("--debug -- status --json")
      assert.same({ 2, "" }, { code, out })
      assert.truthy(has(err, "--json"), err)
      assert.is_false(has(err, "unknown command"), err)
      code, out, err = run("--")
      assert.same({ 2, "" }, { code, out })
      assert.is_false(has(err, "unknown command"), err)
      assert.equal(0, emu:stats().requests)
    end)

    it("an unknown option exits 2 with a hint, sending nothing", function()
      local id = emu:create_bandwidth{ size = 5 }
      local code, out, err = run("delete-bandwidth --misssing-ok " .. id)
      assert.equal(2, code)
      assert.equal("", out)
      assert.truthy(has(err, "unknown option --misssing-ok"))
      assert.truthy(has(err, "did you mean --missing-ok?"))
      assert.truthy(has(err, "eip delete-bandwidth --help"))
      assert.equal(0, emu:stats().requests)
      assert.is_not_nil(emu:get_bandwidth(id))
    end)

    -- A long unknown option (a pasted blob, a secret) was echoed whole, after a search for the
    -- closest option that took seconds for 100 KB.
    it("an unknown option too long to be a typo is neither echoed nor matched", function()
      local flag = "--" .. string.rep("x", 60000)
      local code, out, err = run("delete-bandwidth " .. flag .. " bw-1")
      assert.same({ 2, "" }, { code, out })
      assert.truthy(has(err, "unknown option (60002 characters, not shown) for delete-bandwidth"), err)
      assert.is_nil(err:find("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 1, true))
      assert.equal(0, emu:stats().requests)
    end)

    -- A mistyped option before the command was not known to take a value, so its value was
    -- taken for the command and echoed whole: `unknown command "http://u:pw@h:1"`.
    it("a mistyped option before the command is refused as an option, its value never echoed", function()
      local secret = "LongSecretPw9"
      local url = "http://u:" .. secret .. "@h:1"
      for _, line in ipairs{ "--prox " .. url .. " delete-bandwidth bw-1", "--json --prox " .. url .. " show-bandwidth",
          "--prox " .. url, "--debug --prox=" .. url .. " status 404" } do
        local code, out, err = run(line)
        assert.same({ 2, "" }, { code, out }, line)
        assert.truthy(has(err, "unknown option --prox"), line .. ": " .. err)
        assert.truthy(has(err, "did you mean --proxy?"), line .. ": " .. err)
        assert.is_false(has(err, "unknown command"), line .. ": " .. err)
        assert.is_false(has(err, secret), line .. ": " .. err)
      end
      -- A word in command position, or a help topic, that holds an '@' may be a URL's credentials.
      -- So may an option's value, or an id, that is none: refused without it.
      for _, line in ipairs{ url .. " delete-bandwidth bw-1", "--json " .. url, "help " .. url,
          "list-bandwidths --output u:" .. secret .. "@p", "list-bandwidths --rate u:" .. secret .. "@p",
          "list-bandwidths --region u:" .. secret .. "@p", "show-bandwidth u:" .. secret .. "@p",
          "list-bandwidths " .. url, "regions " .. url, "status u:" .. secret .. "@p", "status " .. url,
          "status VPC.0306 u:" .. secret .. "@p", "list-bandwidths --region http://u:se/" .. secret .. "@h:1",
          "list-bandwidths --region u:se/" .. secret .. "@h:1",
          "delete-bandwidth --endpoint " .. emu.url .. " " .. url } do
        local code, out, err = run(line)
        assert.same({ 2, "" }, { code, out }, line)
        assert.is_false(has(err, secret), line .. ": " .. err)
        assert.is_false(has(err, "u:LongSecret"), line .. ": " .. err)
      end
      assert.equal(0, emu:stats().requests)
    end)

    it("bad option values and misplaced options are usage errors", function()
      for _, args in ipairs{ "delete-bandwidth --concurrency x a", "delete-bandwidth --concurrency 0 a",
          "delete-bandwidth --timeout", "delete-bandwidth --size 5 a", "delete-bandwidth --force --charge-mode free a",
          "delete-bandwidth --json=yes a", "delete-bandwidth --max-attempts 99 a",
          "delete-bandwidth --endpoint ftp://x a",
          "show-bandwidth", "show-bandwidth a b", "list-bandwidths extra", "status VPC.0306 abc", "status 99",
          "status 409 404", "list-bandwidths --output yaml", "delete-bandwidth --json --output table a",
          -- (Lua 5.3+ read these as 4 and 3: hex past 2^64 wraps)
          "delete-bandwidth --concurrency 0x10000000000000004 a",
          "delete-bandwidth --max-attempts 0x10000000000000003 a",
          "status VPC.0306 0x100000000000001AD",
          -- (Lua 5.1 and LuaJIT read these as numbers, and NaN passes every range check)
          "delete-bandwidth --dry-run --wait-timeout nan a", "list-bandwidths --timeout inf",
          "delete-bandwidth --deadline 0 a", "delete-bandwidth --deadline x a",
          "delete-bandwidth --drain --yes --size 1 --charge-mode traffic --deadline 5 a",
          "status VPC.0306 nan", "status VPC.0306 0b110010100", "list-bandwidths --timeout 0b101" } do
        local code = run(args)
        assert.equal(2, code, args)
      end
      local both, _, err = run("delete-bandwidth --progress --no-progress a")
      assert.equal(2, both, err)
      assert.matches("eip: %-%-progress and %-%-no%-progress: give one of them", err)
      -- A code that is a hex numeral past 2^53 is no status either (not 429 on Lua 5.3+), nor is
      -- one a number option (--timeout: not 5), nor a status after a code (not 404).
      -- Nor is any of them an error code: a usage error (2), on every version (a code of that
      -- shape the table lacks is not found: 1).
      local code, out = run("status 0x100000000000001AD")
      assert.same({ 2, "" }, { code, out })
      for _, word in ipairs{ "nan", "inf", "infinity", "0b110010000", "abc" } do
        code, out = run("status " .. word)
        assert.same({ 2, "" }, { code, out }, word)
      end
      code, out = run("status VPC.9999")
      assert.same({ 1, "" }, { code, out })
      for _, args in ipairs{ "list-bandwidths --timeout 0x10000000000000005", "status VPC.0306 0x10000000000000194" } do
        assert.equal(2, run(args), args)
      end
      assert.equal(0, emu:stats().requests)
    end)

    it("refuses secrets as arguments without echoing them", function()
      for _, flag in ipairs{ "--token", "--sk", "--ak", "--password", "--security-token" } do
        local code, out, err = run("delete-bandwidth " .. flag .. "=S3cr3tValue123 a")
        assert.equal(2, code)
        assert.truthy(has(err, "shows in ps"), flag)
        assert.is_false(has(out .. err, "S3cr3tValue123"), flag)
        code, out, err = run("list-bandwidths " .. flag .. " S3cr3tValue123")
        assert.equal(2, code)
        assert.is_false(has(out .. err, "S3cr3tValue123"), flag)
      end
      local code, _, err = run("--token=S3cr3tValue123")
      assert.equal(2, code)
      assert.is_false(has(err, "S3cr3tValue123"))
      -- before the command: the value must not be taken for the command (and echoed as one)
      for _, line in ipairs{ "--password S3cr3tValue123 list-bandwidths", "--token S3cr3tValue123 delete-bandwidth x",
          "--json --sk S3cr3tValue123 list-bandwidths" } do
        local c, o, e = run(line)
        assert.equal(2, c, line)
        assert.truthy(has(e, "shows in ps"), line)
        assert.is_false(has(o .. e, "S3cr3tValue123"), line)
      end
      assert.equal(0, emu:stats().requests)
    end)

    it("without credentials it is a usage error naming where it looked, as the command can use it", function()
      local closed = "http://127.0.0.1:" .. require("spec.support.host").closed_port()
      local code, _, err = run("delete-bandwidth abc", { env = { OS_AUTH_TOKEN = false,
        EIP_METADATA_URL = closed, HUAWEICLOUD_SDK_CREDENTIALS_FILE = "/nonexistent/credentials" } })
      assert.equal(2, code)
      assert.matches("^eip: no credentials: looked at the environment variables ", err)
      for _, place in ipairs{ "OS_AUTH_TOKEN", "/nonexistent/credentials (not found)",
                              "the ECS metadata service at " .. closed,
                              "Secrets are never options: they would show in ps and shell history." } do
        assert.truthy(has(err, place), place .. " in: " .. err)
      end
      -- Not the library's options, which the command refuses.
      assert.is_nil(err:find("the options token", 1, true), err)
      assert.equal(0, emu:stats().requests)
    end)

    it("refuses a credentials file that is a directory or a FIFO with a usage error (exit 2), at once", function()
      local dir = os.tmpname()
      os.remove(dir)
      assert.is_true((host.execute("mkdir -p " .. q(dir .. "/.huaweicloud/credentials") .. " && mkfifo "
        .. q(dir .. "/fifo"))))
      -- A writer for a reader that should never come (gone after 10 s): were the FIFO opened, the
      -- open would return when it comes and the case fail, rather than wait for ever.
      host.execute("timeout 10 sh -c " .. q(": > " .. q(dir .. "/fifo")) .. " >/dev/null 2>&1 &")
      local cases = { { { HOME = dir }, dir .. "/.huaweicloud/credentials is a directory" },
        { { HUAWEICLOUD_SDK_CREDENTIALS_FILE = dir .. "/fifo" }, dir .. "/fifo is a FIFO (named pipe)" } }
      for _, case in ipairs(cases) do
        case[1].OS_AUTH_TOKEN, case[1].EIP_METADATA_URL = false, "http://127.0.0.1:" .. host.closed_port()
        local code, out, err = run("delete-bandwidth abc", { env = case[1] })
        assert.equal(2, code, err)
        assert.equal("", out)
        assert.equal("eip: credentials file " .. case[2] .. ", not a regular file: name the credentials file "
          .. "itself\n", err)
      end
      host.execute("timeout 5 cat " .. q(dir .. "/fifo") .. " >/dev/null 2>&1") -- lets the writer go
      host.execute("rm -rf " .. q(dir))
      assert.equal(0, emu:stats().requests)
    end)

    it("says its errors in its own words: options and variables, not the library's arguments", function()
      local cases = {
        { "list-bandwidths --page-size 0", {}, "eip: --page-size must be at least 1, got 0\n" },
        { "list-bandwidths", { HUAWEICLOUD_SDK_PROJECT_ID = false },
          "eip: no project id: give --project-id, or export HUAWEICLOUD_SDK_PROJECT_ID (with a token or keys "
            .. "from the environment), or a region (--region, HUAWEICLOUD_SDK_REGION) to look it up by\n" },
        { "list-bandwidths --project-id ../x", {}, "^eip: %-%-project%-id may only contain letters" },
        { "list-bandwidths --endpoint ftp://x", {}, "^eip: %-%-endpoint must use http or https" },
        { "list-bandwidths", { EIP_ENDPOINT = "ftp://x" }, "^eip: EIP_ENDPOINT must use http or https" },
        { "list-bandwidths", { EIP_ENDPOINT = false },
          "eip: no endpoint: give --endpoint URL or --region R, or export EIP_ENDPOINT or HUAWEICLOUD_SDK_REGION\n" },
        { "delete-bandwidth --concurrency 0 a", {}, "eip: --concurrency must be between 1 and 64, got 0\n" },
        { "list-bandwidths --output tabel", {}, "did you mean table?" },
        -- (a region of the environment's: the endpoint to give is an option, not the library's field)
        { "list-bandwidths", { EIP_ENDPOINT = false, HUAWEICLOUD_SDK_REGION = "xx-nowhere-9" },
          '^eip: HUAWEICLOUD_SDK_REGION names no known region %("xx%-nowhere%-9"%); for a region this table does '
            .. "not know yet, give %-%-endpoint https://vpc%.<region>%.myhuaweicloud%.com, set " },
        { "list-bandwidths --burst 3", {}, "eip: --burst needs --rate (requests per second)\n" },
        -- (credentials in --proxy are refused: its form names none; no float's "1000000.0")
        { "list-bandwidths --proxy 'proxy example:1'", {}, '^eip: %-%-proxy must be http://host:port, got "' },
        { "list-bandwidths --burst 0 --rate 1", {}, "eip: --burst must be between 1 and 1000000, got 0\n" },
        { "list-bandwidths --rate 2000000", {}, "eip: --rate must be between 0.001 and 1000000, got 2000000\n" },
      }
      for _, case in ipairs(cases) do
        local code, out, err = run(case[1], { env = case[2] })
        assert.equal(2, code, case[1])
        assert.equal("", out)
        assert.matches(case[3], err, nil, not case[3]:find("^%^"))
      end
      assert.equal(0, emu:stats().requests)
    end)

    it("takes options before the command too", function()
      local a = emu:create_bandwidth{ size = 5 }
      local code, out, err = run("--output text --page-size 1 list-bandwidths")
      assert.equal(0, code, err)
      assert.matches("^" .. a:gsub("%-", "%%-") .. "\tWHOLE\t5\t0\tNORMAL\t", out)
      code, out = run("--debug --endpoint " .. emu.url .. " delete-bandwidth --missing-ok " .. a,
        { env = { EIP_ENDPOINT = false } })
      assert.equal(0, code)
      assert.matches("^deleted ", out)
      -- A connection option before a command that takes none (an alias, say) is not an error.
      code, out = run("--region cn-north-4 --timeout 5 status 404")
      assert.equal(0, code)
      assert.matches("reason +Not Found", out)
      code, out, err = run("--missing-ok")
      assert.equal(2, code)
      assert.equal("", out)
      assert.matches("no command given", err)
    end)

    it("under --json, says a usage error as one JSON object on stderr", function()
      for _, args in ipairs{ "--json delete-bandwidth --drian a", "delete-bandwidth a --output=json --bogus",
          "--json", "--output json nope" } do
        local code, out, err = run(args)
        assert.equal(2, code, args)
        assert.equal("", out)
        local e = cjson.decode(err)
        assert.same({ false, 2, "usage" }, { e.ok, e.exit, e.kind }, args)
        assert.is_string(e.message)
      end
      local code, _, err = run("show-bandwidth --json 3fa1e2b4-1111-4222-8333-444455556666")
      assert.equal(1, code)
      local e = cjson.decode(err)
      assert.same({ false, 1, "http", 404, "VPC.0306" }, { e.ok, e.exit, e.kind, e.status, e.code })
      assert.matches("^%x+$", e.request_id)
    end)

    -- A repeated --output keeps its last value (an alias's --output json, then the script's own
    -- --output text): the errors are in the format the data is, not in one an earlier word asked for.
    it("says its errors in the format the last --output chose", function()
      local code, out, err = run("status 999 --output json --output text")
      assert.equal(2, code)
      assert.equal("", out)
      assert.matches("^eip: status: \"999\" is not an HTTP status", err)
      code, out = run("status 409 --output json --output text")
      assert.equal(0, code)
      assert.matches("^code\t409\n", out)
      for _, args in ipairs{ "status 999 --output text --output json", "status 999 --output=text --output=json",
          "--output text status 999 --output json" } do
        local status, _, said = run(args)
        assert.equal(2, status, args)
        assert.equal("usage", cjson.decode(said).kind, args)
      end
    end)

    it("an invalid id is a usage error and nothing is sent, even for the valid ones", function()
      local id = emu:create_bandwidth{ size = 5 }
      local code, out, err = run("delete-bandwidth " .. id .. " ../etc")
      assert.equal(2, code)
      assert.equal("", out)
      assert.truthy(has(err, "argument 2"))
      assert.equal(0, emu:stats().requests)
    end)
  end)

  describe("delete-bandwidth", function()
    -- The remove calls (POST .../remove) the emulator received: the drains that moved EIPs.
    local function remove_calls()
      local n = 0
      for _, r in ipairs(emu:requests()) do
        if r.method == "POST" then n = n + 1 end
      end
      return n
    end

    -- A REST server says nothing until it answers: the library's 10 s low-speed window failed a
    -- server answering after 11 s, whatever --timeout said (60: 10 s, FAILED?).
    it("gives an attempt the whole --timeout when the server is silent until it answers #once", function()
      local a = emu:create_bandwidth{ size = 5 }
      emu:inject{ method = "DELETE", action = "slow", delay = 11, times = 1 }
      local code, out, err = run("delete-bandwidth --max-attempts 1 --timeout 20 " .. a)
      assert.equal(0, code, hide(out .. err))
      assert.matches("^deleted  ", out)
      assert.is_nil(emu:get_bandwidth(a))
    end)

    it("deletes every id: one line each on stdout, the summary on stderr, exit 0", function()
      local a, b = emu:create_bandwidth{ size = 5 }, emu:create_bandwidth{ size = 6 }
      local code, out, err = run("delete-bandwidth " .. a .. " " .. b)
      assert.equal(0, code, err)
      local l = lines(out)
      assert.equal(2, #l)
      -- (under 10 ms "4.2 ms", else "13 ms": a loaded machine takes longer)
      assert.matches("^deleted  " .. a:gsub("%-", "%%-") .. "  204 +%d+%.?%d? ms$", line_for(l, a))
      assert.matches("^deleted  " .. b:gsub("%-", "%%-"), line_for(l, b))
      assert.matches("^2 bandwidth%(s%): 2 deleted, 0 missing, 0 failed  %(%d+%.%d+ s%)\n$", err)
      assert.is_nil(emu:get_bandwidth(a))
      assert.is_nil(emu:get_bandwidth(b))
    end)

    it("exits 1 when some fail, and still deletes the others", function()
      local a = emu:create_bandwidth{ size = 5 }
      local full = emu:create_bandwidth{ size = 5, publicip_ids = { "eip-1" } }
      local missing = absent_id(1)
      local code, out, err = run("delete-bandwidth " .. a .. " " .. missing .. " " .. full)
      assert.equal(1, code)
      local l = lines(out)
      assert.equal(3, #l)
      assert.matches("^deleted ", line_for(l, a))
      assert.matches("^FAILED   " .. missing:gsub("%-", "%%-") .. "  404 VPC%.0306  1 attempt ", line_for(l, missing))
      assert.matches("^FAILED   " .. full:gsub("%-", "%%-") .. "  409 VPC%.0304  1 attempt ", line_for(l, full))
      assert.matches("1 deleted, 0 missing, 2 failed", err)
      assert.is_nil(emu:get_bandwidth(a))
    end)

    it("with --missing-ok a missing id counts as done: exit 0", function()
      local a = emu:create_bandwidth{ size = 5 }
      local missing = absent_id(1)
      local code, out, err = run("delete-bandwidth --missing-ok " .. missing .. " " .. a)
      assert.equal(0, code)
      assert.matches("^missing  " .. missing:gsub("%-", "%%-") .. "  404 VPC%.0306", line_for(lines(out), missing))
      assert.matches("1 deleted, 1 missing, 0 failed", err)
      -- Keys act in every project of the account: where it was missing from is said.
      assert.matches("\neip: 1 missing from project " .. emu.project_id .. "\n", err, 1, true)
      assert.is_nil(err:find("Failed", 1, true)) -- nothing to list again
      code, out = run("delete-bandwidth --json --missing-ok " .. missing)
      assert.equal(0, code)
      assert.equal(emu.project_id, cjson.decode(out).project_id)
      -- A name is no id: its "does not exist" is a failure, and the advice says why.
      emu:inject{ method = "DELETE", status = 404, body = { code = "VPC.0306", message = "No Eip bandwidth exist." } }
      code, out = run("delete-bandwidth --json --missing-ok prod-shared-bw")
      assert.equal(1, code)
      assert.matches("prod-shared-bw is not one", cjson.decode(out).advice, 1, true)
      emu:inject{ method = "DELETE", status = 404, body = { code = "VPC.0306", message = "No Eip bandwidth exist." } }
      code, out = run("delete-bandwidth --verbose --missing-ok prod-shared-bw")
      assert.equal(1, code)
      assert.matches("\n         advice: missing_ok takes", out, 1, true)
    end)

    it("--json prints one parseable object per id (summary on stderr)", function()
      local a = emu:create_bandwidth{ size = 5 }
      local full = emu:create_bandwidth{ size = 5, publicip_ids = { "eip-1" } }
      local gone = absent_id(1)
      local code, out, err = run("delete-bandwidth --json --missing-ok " .. a .. " " .. gone .. " " .. full)
      assert.equal(1, code)
      local objs, n = {}, 0 -- by id: each is printed as it finishes
      for _, l in ipairs(lines(out)) do
        local o = cjson.decode(l)
        objs[o.bandwidth_id], n = o, n + 1
      end
      assert.equal(3, n)
      local d, g = objs[a], objs[gone]
      assert.same({ a, true, 204, true, "deleted" }, { d.bandwidth_id, d.ok, d.status, d.deleted, d.result })
      assert.matches("^%x+$", d.request_id)
      assert.same({ gone, true, 404, false, "missing", "VPC.0306" },
        { g.bandwidth_id, g.ok, g.status, g.deleted, g.result, g.code })
      local f = objs[full]
      assert.same({ full, false, 409, "VPC.0304", "http", "failed" },
        { f.bandwidth_id, f.ok, f.status, f.code, f.kind, f.result })
      assert.is_string(f.message)
      assert.matches("^%x+$", f.request_id)
      assert.truthy(has(err, "1 deleted, 1 missing, 1 failed"))
    end)

    it("--dry-run validates, prints method and URL per id, and sends nothing", function()
      local a, b = emu:create_bandwidth{ size = 5 }, emu:create_bandwidth{ size = 5 }
      emu:reset_counters()
      local code, out, err = run("delete-bandwidth --dry-run " .. a .. " " .. b)
      assert.equal(0, code)
      local l = lines(out)
      assert.equal("DELETE " .. emu.url .. "/v2.0/" .. emu.project_id .. "/bandwidths/" .. a, l[1])
      assert.equal("DELETE " .. emu.url .. "/v2.0/" .. emu.project_id .. "/bandwidths/" .. b, l[2])
      assert.equal(2, #l)
      assert.matches("no change sent", err)
      assert.equal(0, emu:stats().requests)
      -- It needs no credentials: nothing is sent. Without them the project is not known (a
      -- HUAWEICLOUD_SDK_PROJECT_ID goes with a token or keys of the environment, not with keys
      -- the metadata service would give).
      code, out, err = run("delete-bandwidth --dry-run " .. a, { env = { OS_AUTH_TOKEN = false } })
      assert.equal(0, code, err)
      assert.equal("DELETE " .. emu.url .. "/v2.0/{project_id}/bandwidths/" .. a .. "\n", out)
    end)

    -- A dry run reads a credentials file as the run does (its project_id is in the URLs it
    -- prints), so a malformed one, or a directory, is refused (exit 2) as the run would refuse
    -- it: a dry run that passed would promise a run that cannot start. Its help once said only
    -- "no credentials needed".
    it("--dry-run refuses a malformed credentials file as the run would, and its help says so", function()
      local a = emu:create_bandwidth{ size = 5 }
      local dir = os.tmpname() -- (a name of its own, made a directory)
      os.remove(dir)
      assert(os.execute("mkdir -p " .. q(dir)))
      local file = dir .. "/credentials"
      local f = assert(io.open(file, "w"))
      f:write("[basic]\nak = AKPROFILE0000000000\nthis line is no key = value pair!\n")
      f:close()
      assert(os.execute("chmod 600 " .. q(file)))
      emu:reset_counters()
      for _, path in ipairs{ file, dir } do
        local code, out, err = run("delete-bandwidth --dry-run " .. a,
          { env = { OS_AUTH_TOKEN = false, HUAWEICLOUD_SDK_CREDENTIALS_FILE = path } })
        assert.equal(2, code, err)
        assert.equal("", out)
        assert.matches(path == file and (file .. ", line 3") or "is a directory", err, 1, true)
      end
      assert.equal(0, emu:stats().requests)
      os.execute("rm -rf " .. q(dir))
      local _, help = run("delete-bandwidth --help")
      assert.matches("no credentials needed, but a credentials file the run would read is read: a malformed one is "
        .. "refused", help:gsub("%s+", " "), 1, true)
    end)

    it("--dry-run --drain reads each bandwidth (one GET) and shows the EIPs that would move", function()
      local a = emu:create_bandwidth{ size = 5, publicip_ids = { "eip-a", "eip-b" } }
      emu:reset_counters()
      local code, out = run("delete-bandwidth --dry-run --drain --size 2 --json " .. a)
      assert.equal(0, code, out)
      local methods, notes = {}, {}
      for i, line in ipairs(lines(out)) do
        local o = cjson.decode(line)
        methods[i], notes[i] = o.method, o.note
      end
      assert.same({ "GET", "POST", "DELETE" }, methods)
      assert.matches("moves 2 EIP%(s%), each into a new pay%-per%-use bandwidth of 2 Mbit/s billed by bandwidth: "
        .. "eip%-a, eip%-b", notes[2])
      assert.equal(1, emu:stats().requests)
      assert.equal("GET", emu:requests()[1].method)
      assert.equal(2, #emu:get_bandwidth(a).publicip_info)
    end)

    -- A drain's dry run went on reading after a refused key: one GET per id, each refused (three
    -- refused signatures of an AK/SK pair's five a dry run, where the run stops at the first).
    it("--dry-run --drain reads nothing more after an authentication failure, as the run sends nothing more", function()
      local ids = emu:create_bandwidths(3, { size = 5 })
      emu:reset_counters()
      local code, out, err = run("delete-bandwidth --dry-run --drain " .. table.concat(ids, " "),
        { env = { OS_AUTH_TOKEN = "emu-token-refused-0123456789" } })
      assert.equal(1, code, out .. err)
      assert.equal(1, #lines(out), out)
      assert.matches("^FAILED +" .. ids[1]:gsub("%p", "%%%0") .. " +401", out)
      assert.matches("eip: stopped after an authentication failure: 2 id(s) not read", err, 1, true)
      assert.equal(1, emu:stats().requests)
    end)

    -- It went on reading after throttling (or a 503) that asked not to come back for an hour too,
    -- one GET per id into the limit or the outage, where the run stops at the first.
    it("--dry-run --drain reads nothing more after throttling or a 503 that asks not to come back soon", function()
      for _, case in ipairs{ { 429, "the API throttles, and asked not to come back soon",
            body = { error_code = "APIGW.0308", error_msg = "The throttling threshold has been reached" } },
          { 503, "the service is unavailable, and asked not to come back soon" } } do
        emu:reset()
        local ids = emu:create_bandwidths(3, { size = 5 })
        emu:inject{ method = "GET", status = case[1], times = -1, headers = { ["Retry-After"] = "3600" },
          body = case.body }
        local code, out, err = run("delete-bandwidth --dry-run --drain " .. table.concat(ids, " "))
        assert.equal(1, code, out .. err)
        assert.equal(1, #lines(out), out)
        assert.matches("^FAILED +" .. ids[1]:gsub("%p", "%%%0") .. " +" .. case[1], out)
        assert.matches("eip: stopped: " .. case[2], err, 1, true)
        assert.matches(": 2 id(s) not read", err, 1, true)
        assert.equal(1, emu:stats().requests)
      end
    end)

    -- The dry run says what the real run would: with --missing-ok a bandwidth already gone is
    -- "missing" (exit 0), by the delete's own rule (a 404 VPC.0306 for an id shaped like one).
    it("--dry-run --drain --missing-ok reads a gone bandwidth as missing, as the real run does", function()
      local gone = absent_id(7)
      for _, dry in ipairs{ "--dry-run", "--yes --charge-mode bandwidth" } do
        local code, out, err = run("delete-bandwidth --drain --size 1 --missing-ok " .. dry .. " " .. gone)
        assert.equal(0, code, dry .. ": " .. out .. err)
        assert.matches("^missing%s+" .. gone:gsub("%p", "%%%0") .. "%s+404 VPC%.0306", out, dry)
      end
      local code, out = run("delete-bandwidth --drain --size 1 --dry-run " .. gone)
      assert.equal(1, code, out)
      assert.matches("^FAILED", out)
    end)

    it("reads ids from stdin with -, skipping blank lines and comments", function()
      local a, b, c = emu:create_bandwidth{ size = 5 }, emu:create_bandwidth{ size = 5 },
        emu:create_bandwidth{ size = 5 }
      local code, _, err = run("delete-bandwidth " .. a .. " -",
        { stdin = "# to delete\n" .. b .. "\n\n  " .. c .. "  \n" })
      assert.equal(0, code)
      assert.matches("3 deleted", err)
      assert.equal(0, #emu:bandwidths())
    end)

    it("takes --concurrency and the connection options", function()
      local a, b = emu:create_bandwidth{ size = 5 }, emu:create_bandwidth{ size = 5 }
      local code, out = run(string.format("delete-bandwidth --concurrency 4 --timeout 5 --max-attempts 2 "
        .. "--endpoint %s --project-id %s %s %s", emu.url, emu.project_id, a, b),
        { env = { EIP_ENDPOINT = false, HUAWEICLOUD_SDK_PROJECT_ID = false } })
      assert.equal(0, code, out)
      assert.equal(0, #emu:bandwidths())
    end)

    -- An endpoint whose certificate a private CA signed (an on-premises region, a proxy that
    -- inspects TLS): --ca-file trusts that CA, as the library's ca_file; verification stays on.
    it("--ca-file verifies the endpoint with a CA of the user's; without it the certificate is refused", function()
      local tls = require "spec.support.tls"
      local pki = tls.make_pki()
      local front = tls.start(emu, pki)
      finally(function()
        front:stop()
        pki:remove()
      end)
      local url = "https://127.0.0.1:" .. front.ports.trusted
      local a, b = emu:create_bandwidth{ size = 5 }, emu:create_bandwidth{ size = 5 }
      local code, out, err = run(string.format("delete-bandwidth --endpoint %s --ca-file %s --connect-timeout 2 %s",
        url, q(pki.ca), a))
      assert.equal(0, code, out .. err)
      assert.is_nil(emu:get_bandwidth(a))
      code, out, err = run(string.format("delete-bandwidth --endpoint %s --json %s", url, b))
      assert.equal(1, code, out .. err)
      local o = cjson.decode(lines(out)[1])
      assert.same({ "transport", "tls", false }, { o.kind, o.reason, o.could_have_acted })
      assert.is_table(emu:get_bandwidth(b), "not deleted through an unverified connection")
      -- A file that is no CA bundle: a usage error naming the option, nothing sent.
      local sent = emu:stats().requests
      code, out, err = run(string.format("delete-bandwidth --endpoint %s --ca-file /nonexistent/ca.pem %s", url, b))
      assert.equal(2, code, out .. err)
      assert.matches("--ca-file", err, 1, true)
      code, out, err = run(string.format("delete-bandwidth --endpoint %s --connect-timeout 0 %s", url, b))
      assert.equal(2, code, out .. err)
      assert.matches("--connect-timeout", err, 1, true)
      assert.equal(sent, emu:stats().requests)
    end)

    it("--drain drains each bandwidth (150 EIPs: two remove calls), then deletes it", function()
      local ids = {}
      for i = 1, 150 do ids[i] = "eip-" .. i end
      local a = emu:create_bandwidth{ size = 5, publicip_ids = ids }
      emu:reset_counters()
      local code, out = run("delete-bandwidth --drain --yes --json --size 2 --charge-mode traffic " .. a)
      assert.equal(0, code, out)
      local o = cjson.decode(lines(out)[1])
      assert.is_true(o.deleted)
      assert.equal(150, #o.removed)
      assert.equal(4, emu:stats().requests)
      assert.is_nil(emu:get_bandwidth(a))
    end)

    it("--drain reports what moved when a remove fails (exit 1)", function()
      local ids = {}
      for i = 1, 150 do ids[i] = "eip-" .. i end
      local a = emu:create_bandwidth{ size = 5, publicip_ids = ids }
      emu:inject{ method = "POST", path = "/remove$", status = 403, body = { code = "VPC.0015", message = "no" } }
      local code, out = run("delete-bandwidth " .. DRAIN_YES .. " --json " .. a)
      assert.equal(1, code)
      local o = cjson.decode(lines(out)[1])
      assert.same({ false, 403, "remove", 0, 150 }, { o.ok, o.status, o.stage, #o.moved, #o.not_moved })
      code, out = run("delete-bandwidth " .. DRAIN_YES .. " " .. a) -- human form: counts on the line
      assert.equal(0, code) -- the injection was used up: this time it drains
      assert.matches("^drained  " .. a:gsub("%-", "%%-") .. "  204 +150 EIPs +%d", out)
    end)

    -- The batch's deadline: a cron job's bound for the whole run (the client's deadline, from
    -- --timeout's, bounds each id only).
    it("--deadline: no id starts after it, the one in flight ends, NOT SENT deadline", function()
      local ids = {}
      for i = 1, 5 do ids[i] = emu:create_bandwidth{ size = 5 } end
      emu:inject{ method = "DELETE", action = "slow", delay = 2, times = -1 }
      emu:reset_counters()
      local t0 = socket.gettime()
      local code, out, err = run("delete-bandwidth --deadline 1 --json " .. table.concat(ids, " "))
      local took = socket.gettime() - t0
      assert.equal(1, code, err)
      assert.is_true(took < 4, "ended with the delete in flight at its deadline: " .. took)
      local words = {}
      for _, line in ipairs(lines(out)) do
        local o = cjson.decode(line)
        words[#words + 1] = o.not_sent and o.stopped or o.deleted and "deleted" or tostring(o.reason)
      end
      assert.same({ "deleted", "deadline", "deadline", "deadline", "deadline" }, words)
      assert.equal(1, emu:stats().requests)
    end)

    it("--drain --wait-timeout: still readable when the wait ends is deleted, as without --drain", function()
      emu:set_knobs{ deleted_visible_for = 30 }
      local a = emu:create_bandwidth{ size = 5, publicip_ids = { "eip-a", "eip-b" } }
      local b = emu:create_bandwidth{ size = 5 }
      local code, out, err = run("delete-bandwidth " .. DRAIN_YES .. " --json --wait-timeout 0.5 " .. a)
      assert.equal(0, code, out)
      local o = cjson.decode(lines(out)[1])
      assert.same({ true, "deleted", true, true, 2 }, { o.ok, o.result, o.deleted, o.still_readable, #o.removed })
      local READABLE = "1 deleted bandwidth%(s%) could still be read when the wait ended"
      assert.matches(READABLE, err)
      -- A batch prints each line as its delete ends, before the wait: the summary says it.
      code, out, err = run("delete-bandwidth --json --wait-timeout 0.5 " .. b)
      assert.equal(0, code, out)
      o = cjson.decode(lines(out)[1])
      assert.same({ true, "deleted", true }, { o.ok, o.result, o.deleted })
      assert.matches(READABLE, err)
    end)

    it("says when the wait after a delete could not read the bandwidth (a refused key)", function()
      local refused = { method = "GET", status = 401,
        body = { error_code = "APIGW.0301", error_msg = "Incorrect IAM authentication information" } }
      local b = emu:create_bandwidth{ size = 5 }
      emu:inject(refused)
      local code, out, err = run("delete-bandwidth --json --wait-timeout 10 " .. b)
      assert.equal(0, code, out .. err)
      assert.same({ true, "deleted" }, { cjson.decode(lines(out)[1]).ok, cjson.decode(lines(out)[1]).result })
      local SAID = b:gsub("%p", "%%%0") .. " was deleted %(204%), but the wait could not read it: .*401"
      assert.matches(SAID, err)
      -- through --drain too: deleted, what moved shown, and the wait's failure said
      local a = emu:create_bandwidth{ size = 5, publicip_ids = { "eip-a" } }
      emu:inject{ method = "GET", action = "slow", delay = 0 } -- the drain's show
      emu:inject(refused)
      code, out, err = run("delete-bandwidth " .. DRAIN_YES .. " --json --wait-timeout 10 " .. a)
      assert.equal(0, code, out .. err)
      local o = cjson.decode(lines(out)[1])
      assert.same({ true, "deleted", 1 }, { o.ok, o.result, #o.removed })
      assert.matches(a:gsub("%p", "%%%0") .. " was deleted %(204%), but the wait could not read it: .*401", err)
      -- (its --json line says so too: no `waited`, which tells a bandwidth a read saw gone)
      assert.is_nil(o.waited)
      assert.is_nil(o.still_readable)
      assert.matches("^GET [^\n]* %-> 401", o.wait_error)
    end)

    it("says when a missing bandwidth follows an attempt whose answer was lost", function()
      local a = emu:create_bandwidth{ size = 1 }
      emu:inject{ method = "DELETE", action = "lose_answer" }
      local code, out = run("delete-bandwidth --missing-ok --json " .. a)
      assert.equal(0, code, out)
      local o = cjson.decode(lines(out)[1])
      assert.same({ "missing", false, true, 2 }, { o.result, o.deleted, o.lost_answer, o.attempts })
      local b = emu:create_bandwidth{ size = 1 }
      emu:inject{ method = "DELETE", action = "lose_answer" }
      code, out = run("delete-bandwidth " .. b)
      assert.equal(1, code, out)
      -- (FAILED?: the lost answer's attempt most likely deleted it)
      assert.matches("^FAILED%?%s+" .. b:gsub("%-", "%%-")
        .. "%s+404 VPC.0306%s+an earlier answer was lost, 2 attempts", out)
    end)

    -- A policy may let EIPs move and refuse the delete: each further drain would then make new
    -- pay-per-use bandwidths and delete nothing.
    it("--drain stops after a drained bandwidth's delete is refused (403): no other is drained", function()
      local ids = {}
      for i = 1, 3 do ids[i] = emu:create_bandwidth{ size = 5, publicip_ids = { "e" .. i .. "a", "e" .. i .. "b" } } end
      emu:inject{ method = "DELETE", status = 403, times = -1,
        body = { code = "VPC.2201", message = "Policy doesn't allow vpc:bandwidths:delete to be performed" } }
      local code, out, err = run("delete-bandwidth " .. DRAIN_YES .. " " .. table.concat(ids, " "))
      assert.equal(1, code, out .. err)
      assert.matches("3 bandwidth%(s%): 0 deleted, 0 missing, 1 failed, 2 not sent", err)
      assert.truthy(has(err, "eip: stopped after a drained bandwidth's delete failed (refused, or failed after its "
        .. "EIPs moved), so that no other is drained (its EIPs would become new bills): 2 id(s) not sent"), err)
      local removes = remove_calls()
      assert.equal(1, removes, "one drain's remove call, no other")
    end)

    -- So may a proxy that blocks DELETE (405), a gateway route (404 APIGW.0101) or a failing
    -- backend (500): the same stop once EIPs moved. So does a 409 of a bandwidth the GET after
    -- it shows empty (an API that refuses a delete straight after a remove, the removal still
    -- settling, or a policy: every 409 was taken for a change of that bandwidth's, and each
    -- further drain made new bills and deleted nothing).
    it("--drain stops after any delete failure once EIPs moved, a 409 of an empty bandwidth too", function()
      local cases = {
        { 405, nil, true }, { 404, { error_code = "APIGW.0101", error_msg = "The API does not exist" }, true },
        { 500, { code = "VPC.0302", message = "internal error" }, true },
        { 409, { code = "VPC.0304", message = "The shared bandwidth still has publicips" }, true },
      }
      for _, case in ipairs(cases) do
        emu:reset()
        local ids = {}
        for i = 1, 3 do
          ids[i] = emu:create_bandwidth{ size = 5, publicip_ids = { "f" .. i .. "a", "f" .. i .. "b" } }
        end
        emu:inject{ method = "DELETE", status = case[1], times = -1, body = case[2] }
        local code, out, err = run("delete-bandwidth " .. DRAIN_YES .. " --max-attempts 1 " .. table.concat(ids, " "))
        assert.equal(1, code, out .. err)
        local removes = remove_calls()
        if case[3] then
          assert.matches("0 deleted, 0 missing, 1 failed.*, 2 not sent", err)
          assert.matches("NOT SENT%s+" .. ids[3]:gsub("%-", "%%-") .. "%s+drain stopped", out)
          assert.equal(1, removes, case[1] .. ": one drain's remove call, no other")
        else
          assert.matches("3 failed", err, 1, true)
          assert.equal(3, removes, case[1])
        end
      end
    end)

    -- A 404 VPC.0306 whose body goes on after its JSON value (or was cut at max_body) says nothing
    -- is gone (eip.is_missing): no failure of that bandwidth's own either. It was taken for one,
    -- and every further drain moved its EIPs out (new bills) to meet the same 404.
    it("--drain stops after a delete's 404 VPC.0306 whose body is in doubt, once EIPs moved", function()
      local ids = {}
      for i = 1, 3 do ids[i] = emu:create_bandwidth{ size = 5, publicip_ids = { "t" .. i .. "a" } } end
      emu:inject{ method = "DELETE", status = 404, times = -1, answered_by = "service",
        body = '{"code":"VPC.0306","message":"No Eip bandwidth exist with id."}\n<html>proxy</html>' }
      local code, out, err = run("delete-bandwidth " .. DRAIN_YES .. " --max-attempts 1 " .. table.concat(ids, " "))
      assert.equal(1, code, out .. err)
      assert.matches("0 deleted, 0 missing, 1 failed.*, 2 not sent", err)
      assert.matches("NOT SENT%s+" .. ids[3]:gsub("%-", "%%-") .. "%s+drain stopped", out)
      assert.equal(1, remove_calls(), "one drain's remove call, no other")
    end)

    -- A failure of that bandwidth's own is no reason to stop the others: a 409 after which the
    -- drain's GET lists EIPs added since its plan (here that GET's answer is injected). The cloud
    -- documents no status for a delete of a bandwidth with EIPs (the emulator's 409 is modelled):
    -- a 400 (VPC.0323) is read the same way.
    for _, refusal in ipairs{ { 409, "VPC.0304" }, { 400, "VPC.0323" } } do
      local status, code_of = refusal[1], refusal[2]
      it("--drain goes on after a " .. status .. " whose GET lists EIPs added meanwhile (changed)", function()
        local ids = {}
        for i = 1, 3 do
          ids[i] = emu:create_bandwidth{ size = 5, publicip_ids = { "g" .. i .. "a" } }
          local bw = emu:get_bandwidth(ids[i])
          bw.publicip_info = { { publicip_id = "g" .. i .. "-late", publicip_type = "5_bgp", ip_version = 4 } }
          emu:inject{ method = "GET", action = "slow", delay = 0 } -- the drain's show
          emu:inject{ method = "GET", status = 200, body = { bandwidth = bw } } -- the GET after its refusal
        end
        emu:inject{ method = "DELETE", status = status, times = -1,
          body = { code = code_of, message = "The shared bandwidth still has publicips" } }
        local code, out, err = run("delete-bandwidth " .. DRAIN_YES .. " --json " .. table.concat(ids, " "))
        assert.equal(1, code, out .. err)
        assert.equal(3, #lines(out), out)
        for i, line in ipairs(lines(out)) do
          local o = cjson.decode(line)
          assert.same({ false, status, "delete", { "g" .. i .. "a" }, { "g" .. i .. "-late" }, true },
            { o.ok, o.status, o.stage, o.moved, o.not_moved, o.changed })
        end
        local removes = remove_calls()
        assert.equal(3, removes, "every drain's remove call")
      end)
    end

    -- Moved EIPs (each remove answered 204) that the GET after the 409 still lists, the
    -- removal not settled: uncertain, none "moved"; the drains stop all the same.
    it("--drain stops after a 409 whose GET still lists the EIPs it moved (uncertain)", function()
      local ids = {}
      for i = 1, 3 do ids[i] = emu:create_bandwidth{ size = 5, publicip_ids = { "h" .. i .. "a" } } end
      emu:inject{ method = "GET", action = "slow", delay = 0 } -- the drain's show
      emu:inject{ method = "GET", status = 200, body = { bandwidth = emu:get_bandwidth(ids[1]) } } -- after the 409
      emu:inject{ method = "DELETE", status = 409, times = -1,
        body = { code = "VPC.0304", message = "The shared bandwidth still has publicips" } }
      local code, out, err = run("delete-bandwidth " .. DRAIN_YES .. " --json " .. table.concat(ids, " "))
      assert.equal(1, code, out .. err)
      local o = cjson.decode(lines(out)[1])
      assert.same({ false, 409, {}, {}, { "h1a" }, false },
        { o.ok, o.status, o.moved, o.not_moved, o.uncertain, o.changed })
      assert.matches("0 deleted, 0 missing, 1 failed.*, 2 not sent", err)
      local last = cjson.decode(lines(out)[3])
      assert.same({ ids[3], "not_sent" }, { last.bandwidth_id, last.result })
      assert.truthy(has(err, "eip: stopped after a drained bandwidth's delete failed"), err)
    end)

    it("--drain stops after an authentication failure: the other ids are not sent", function()
      local ids = emu:create_bandwidths(3)
      local code, out, err = run("delete-bandwidth " .. DRAIN_YES .. " " .. table.concat(ids, " "),
        { env = { OS_AUTH_TOKEN = false, HUAWEICLOUD_SDK_AK = emu.ak,
          HUAWEICLOUD_SDK_SK = "wrong-secret-key-0000000000000000000000" } })
      assert.equal(1, code, out)
      assert.matches("3 bandwidth%(s%): 0 deleted, 0 missing, 1 failed, 2 not sent", err)
      assert.matches("stopped after an authentication failure: 2 id%(s%) not sent", err)
      assert.equal(1, emu:stats().auth_failures)
    end)

    -- As a batch stops (see "says when a batch stopped because signed requests in a row got no
    -- answer"): the ids after the one refused are NOT SENT, and the command says why, once. Each
    -- drain was tried and refused alike, without a word why the run went no further.
    it("--drain stops after signed requests in a row got no answer: the other ids are not sent", function()
      local ids = emu:create_bandwidths(5)
      emu:inject{ action = "lose_answer", times = 3 } -- (each drain's show)
      local code, out, err = run("delete-bandwidth " .. DRAIN_YES .. " --max-attempts 1 " .. table.concat(ids, " "),
        { env = { OS_AUTH_TOKEN = false, HUAWEICLOUD_SDK_AK = emu.ak, HUAWEICLOUD_SDK_SK = emu.sk } })
      assert.equal(1, code, err)
      assert.matches("\nNOT SENT +" .. ids[4]:gsub("%p", "%%%0") .. " +refused: unanswered", out)
      assert.matches("\nNOT SENT +" .. ids[5]:gsub("%p", "%%%0") .. " +unanswered", out)
      assert.matches("5 bandwidth%(s%): 0 deleted, 0 missing, 3 failed, 2 not sent", err)
      assert.matches("eip: stopped: signed requests (or logins) in a row got no answer, each may have been refused "
        .. "unseen, and the client sends no more of them for now (see the id refused): 2 id(s) not sent", err, 1, true)
      assert.equal(3, emu:stats().requests)
    end)

    -- The ids' shape is checked before the client (which knows the credentials) is made, and the
    -- command's own messages quote what they were given: the environment's credentials are known
    -- from the start, and never quoted in any of them.
    it("quotes no credential of the environment in any usage error", function()
      local proxy_env = { https_proxy = "http://puser:Pr0xyPass99@127.0.0.1:9", http_proxy = false }
      local cases = {
        { "delete-bandwidth " .. q("x" .. emu.token .. "/"), {}, emu.token },
        { "show-bandwidth " .. q("x" .. emu.token .. "/"), {}, emu.token },
        { "--json delete-bandwidth -", { stdin = "x" .. emu.token .. "/\n" }, emu.token },
        { q("x" .. emu.token), {}, emu.token },
        { "status " .. q(emu.token), {}, emu.token },
        { "delete-bandwidth --concurrency " .. q(emu.token) .. " bw-1", {}, emu.token },
        { "delete-bandwidth " .. q("Pr0xyPass99!"), { env = proxy_env }, "Pr0xyPass99" },
        -- the scheme left out (as curl takes it), an '@' in the password
        { "delete-bandwidth --concurrency Pr0xyPass99 bw-1",
          { env = { https_proxy = "puser:Pr0xyPass99@127.0.0.1:9", http_proxy = false } }, "Pr0xyPass99" },
        { "delete-bandwidth " .. q("Pr0xy@LongerSecret2024"),
          { env = { https_proxy = "http://puser:Pr0xy@LongerSecret2024@127.0.0.1:9" } }, "LongerSecret2024" },
        -- an '@' in the password and no host:port: what follows it is no host, and is not shown
        { "--json delete-bandwidth bw-1", { env = { https_proxy = "http://puser:Winter@Sunshine2024",
          EIP_ENDPOINT = "https://vpc.example.invalid" } },
          "Sunshine2024" },
        -- a secret that holds "redacted": replaced once, not for ever
        { "status " .. q("tok-redacted-0001"), { env = { OS_AUTH_TOKEN = "tok-redacted-0001" } }, "tok-redacted-0001" },
      }
      -- The profile file's SK and security token (a 40-character SK was quoted whole), with no
      -- credential in the environment: the client reads the file later, the command knows them first.
      local profile_sk, profile_st = "Qm7Xv2Lr9Tn4Kd8Wp3Zs6Yb1Hc5Jf0Gu2Ae7NiRo", "sectok-Zq8Wn3Lp0Rt5Yv2Xb7Mk4"
      local profile = os.tmpname()
      local pf = assert(io.open(profile, "w"))
      pf:write("[basic]\nak = AKPROFILE0000000000\nsk = ", profile_sk, "\nsecurity_token = ", profile_st, "\n")
      pf:close()
      os.execute("chmod 600 " .. profile)
      local from_file = { env = { OS_AUTH_TOKEN = false, HUAWEICLOUD_SDK_CREDENTIALS_FILE = profile } }
      for _, c in ipairs{ "delete-bandwidth --region " .. profile_sk .. " bw-1", "status " .. profile_sk,
          profile_sk, "delete-bandwidth --concurrency " .. profile_st .. " bw-1" } do
        cases[#cases + 1] = { c, from_file, c:find(profile_sk, 1, true) and profile_sk or profile_st }
      end
      local json_env = { env = { OS_AUTH_TOKEN = false, HUAWEICLOUD_SDK_CREDENTIALS_FILE = profile,
        HUAWEICLOUD_SDK_REGION = profile_sk } }
      cases[#cases + 1] = { "--json delete-bandwidth bw-1", json_env, profile_sk }
      for _, case in ipairs(cases) do
        local code, out, err = run(case[1], case[2])
        assert.is_true(code == 2 or code == 1, case[1] .. ": " .. hide(err))
        assert.is_nil((out .. err):find(case[3], 1, true), hide(case[1]) .. ": " .. hide(out .. err))
        assert.is_nil((out .. err):find(case[3]:sub(1, 8), 1, true), hide(case[1]))
      end
      os.remove(profile)
      assert.equal(0, emu:stats().requests)
      -- A short proxy user or password that is an ordinary word leaves the messages readable.
      local _, _, err = run("delete-bandwidth --proxy http://x:1 --no-proxy bw-1",
        { env = { https_proxy = "http://proxy:help@127.0.0.1:9" } })
      assert.matches("--proxy and --no-proxy are exclusive", err, 1, true)
    end)

    -- A word quoted cut to its first 20 (or 40) bytes kept the first 3 to 7 bytes of a secret at
    -- the cut, too few for the scrub's 8-byte pieces; and quoted with %q, a proxy password holding
    -- '"' or '\' was escaped there, so that none of its pieces was found: it was shown whole.
    it("quotes no piece of a credential cut short or escaped in a usage error", function()
      local token, password = "tok-CutPrefix-0123456789", 'Zq"Wx\\Yv"Ut\\Sr'
      local env = { env = { OS_AUTH_TOKEN = token, http_proxy = false,
        https_proxy = "http://puser:Zq%22Wx%5CYv%22Ut%5CSr@127.0.0.1:9" } }
      local cut = ("1"):rep(14) .. token
      for _, c in ipairs{ "status " .. q(cut), "delete-bandwidth --concurrency " .. q(cut) .. " bw-1",
          "delete-bandwidth --output " .. q(cut) .. " bw-1", "list-bandwidths " .. q(("x"):rep(34) .. token),
          "status " .. q(password), q(password), "help " .. q(password),
          "delete-bandwidth --concurrency " .. q(password) .. " bw-1" } do
        local code, out, err = run(c, env)
        assert.equal(2, code, c .. ": " .. err)
        assert.is_nil((out .. err):find("tok-", 1, true), c .. ": " .. err)
        assert.is_nil((out .. err):find('Zq\\"Wx', 1, true), c .. ": " .. err)
      end
      assert.equal(0, emu:stats().requests)
    end)

    -- The library's words for its options ("region", endpoint = "...", "give them as options",
    -- which the command cannot take), in the command's.
    it("says usage errors of the endpoint and region in the command's words", function()
      emu:reset_counters()
      for _, case in ipairs{
        { "list-bandwidths --region cn-north-4 --endpoint http://127.0.0.1:1", {},
          "eip: --endpoint and --region are exclusive: give one of them\n" },
        { "list-bandwidths --region xx-nowhere-1", { EIP_ENDPOINT = false },
          "give --endpoint https://vpc.<region>.myhuaweicloud.com, set HUAWEICLOUD_SDK_REGION_EIP_XX_NOWHERE_1, "
            .. "or give it an EIP entry in the SDKs' regions file (HUAWEICLOUD_SDK_REGIONS_FILE, else "
            .. "~/.huaweicloud/regions.yaml); known regions: ae-ad-1, af-north-1, " },
        { "delete-bandwidth --dry-run bw-1", { EIP_ENDPOINT = "http://user:pw@127.0.0.1:1" },
          "EIP_ENDPOINT must not hold credentials (user:password@): the command reads them from the "
            .. "environment, the profile file or the metadata service, never from a URL" } } do
        local code, out, err = run(case[1], { env = case[2] })
        assert.same({ 2, "" }, { code, out }, case[1])
        assert.matches(case[3], err, 1, true)
        assert.not_matches("endpoint =", err)
      end
      assert.equal(0, emu:stats().requests)
    end)

    it("refuses an id that is the SK or the token before anything is sent, without printing it", function()
      local real = emu:create_bandwidth{ size = 5 }
      for _, case in ipairs{ { emu.sk, { OS_AUTH_TOKEN = false, HUAWEICLOUD_SDK_AK = emu.ak,
        HUAWEICLOUD_SDK_SK = emu.sk } }, { emu.token, {} } } do
        for _, json in ipairs{ "", "--json " } do
          local code, out, err = run("delete-bandwidth " .. json .. real .. " " .. case[1], { env = case[2] })
          assert.equal(2, code, err)
          assert.equal("", out)
          assert.matches("argument %d+: holds one of the credentials' secrets", err)
          assert.is_nil((out .. err):find(case[1]:sub(1, 8), 1, true))
        end
      end
      assert.equal(0, emu:stats().requests)
      assert.is_not_nil(emu:get_bandwidth(real))
    end)

    -- Credentials of the environment or the profile file that the command does not use (the token
    -- while it signs with the profile's keys, the profile's SK while it uses the token): pasted
    -- as an id or a --project-id, they went out in the URL and came back on the result line; a
    -- server echoing one had it printed. The client knows only those it uses.
    it("refuses, and never prints, a credential it does not use: an id, --project-id, a server's echo", function()
      local home = os.tmpname()
      os.remove(home)
      assert(host.execute("mkdir -p " .. q(home .. "/.huaweicloud")))
      local f = assert(io.open(home .. "/.huaweicloud/credentials", "w"))
      f:write("[basic]\nak = " .. emu.ak .. "\nsk = " .. emu.sk .. "\nproject_id = " .. emu.project_id .. "\n")
      f:close()
      host.execute("chmod 600 " .. q(home .. "/.huaweicloud/credentials"))
      local real = emu:create_bandwidth{ size = 5 }
      emu:reset_counters()
      -- (the environment's token is in use, so the profile file is never read by the client: its
      -- SK is the credential the client does not know)
      -- (the commands with SK in place of the key: a failure's message never shows it)
      for _, command in ipairs{ "delete-bandwidth SK", "delete-bandwidth --json SK", "show-bandwidth SK",
          "list-bandwidths --project-id SK", "delete-bandwidth --dry-run SK",
          "list-bandwidths --endpoint http://SK.example.invalid" } do
        local code, out, err = run(command:gsub("SK", emu.sk), { env = { HOME = home } })
        local shown = (out .. err):find(emu.sk:sub(1, 8), 1, true)
        assert.is_nil(shown, command)
        assert.same({ 2, "" }, { code, out }, command .. ": " .. err)
        assert.matches("holds .-credential", err)
      end
      local code, _, err = run("delete-bandwidth -", { env = { HOME = home }, stdin = real .. "\n" .. emu.sk .. "\n" })
      assert.same({ 2 }, { code }, err)
      assert.matches("stdin line 2: holds one of the credentials' secrets", err, 1, true)
      assert.equal(0, emu:stats().requests)
      -- A server's message echoing the profile's SK, while the command uses the token.
      emu:inject{ method = "DELETE", status = 409, body = { code = "VPC.0304", message = "still has publicips; sk="
        .. emu.sk } }
      for _, json in ipairs{ "", "--json " } do
        local out
        code, out, err = run("delete-bandwidth " .. json .. "--max-attempts 1 " .. real, { env = { HOME = home } })
        assert.is_nil((out .. err):find(emu.sk:sub(1, 8), 1, true), json .. "the SK printed")
        assert.equal(1, code, err)
        assert.matches("<redacted>", out .. err, 1, true)
        emu:inject{ method = "DELETE", status = 409, body = { code = "VPC.0304", message = "still has publicips; sk="
          .. emu.sk } }
      end
      -- --debug's lines (the library's debug log knows only the client's credentials) and a
      -- bandwidth whose name echoes the SK, in each format.
      emu:reset()
      emu:inject{ method = "GET", status = 200, times = -1, body = { bandwidth = { id = real, name = "bw-" .. emu.sk,
        size = 5, share_type = "WHOLE", publicip_info = {} } } }
      for _, flags in ipairs{ "--debug ", "--json ", "--output text ", "" } do
        local out
        code, out, err = run("show-bandwidth " .. flags .. real, { env = { HOME = home } })
        assert.is_nil((out .. err):find(emu.sk:sub(1, 8), 1, true), flags .. "the SK printed")
        assert.equal(0, code, err)
      end
      host.execute("rm -rf " .. q(home))
    end)

    it("--drain refuses a dedicated bandwidth: a failure line, exit 1", function()
      local per = emu:create_bandwidth{ share_type = "PER", size = 1, publicip_ids = { "solo" } }
      local code, out, err = run("delete-bandwidth " .. DRAIN_YES .. " " .. per)
      assert.equal(1, code)
      assert.matches("^FAILED   " .. per:gsub("%-", "%%-") .. "  refused: dedicated", out)
      assert.matches("dedicated %(PER%)", err) -- the message, in the failures listed again
      assert.is_not_nil(emu:get_bandwidth(per))
    end)

    -- An EIP id the show lists is sent in the remove calls and printed in the dry run, the
    -- failures and the moves: one that is no id (a terminal escape) or echoes the token refuses
    -- the drain before anything moves, and none of it reaches the output.
    it("--drain refuses a bandwidth whose EIP id is not an id or echoes the token, printing no server text",
      function()
      local a = emu:create_bandwidth{ size = 10, publicip_ids = { "eip-a" } }
      for _, bad in ipairs{ "e1\27[2J\27[31m" .. emu.token, emu.token } do
        for _, args in ipairs{ DRAIN_YES, DRAIN_YES .. " --json", "--drain --dry-run",
            "--drain --dry-run --json" } do
          emu:reset_counters()
          emu:inject{ method = "GET", status = 200, body = { bandwidth = { id = a, name = "web", share_type = "WHOLE",
            size = 10, status = "NORMAL", publicip_info = { { publicip_id = bad, publicip_address = "1.2.3.4" } } } } }
          local code, out, err = run("delete-bandwidth " .. args .. " " .. a)
          assert.equal(1, code, args .. ": " .. hide(err))
          local text = out .. err
          assert.is_nil(text:find(emu.token, 1, true), args .. ": the token was printed")
          assert.is_nil(text:find("\27", 1, true), args .. ": an escape was printed")
          -- (the human form of a dry run prints the failure line only)
          local said = args == "--drain --dry-run" and "FAILED +" .. a:gsub("%p", "%%%0")
            or "publicip_id is missing, not an id"
          assert.truthy(text:find(said), args .. ": " .. hide(text))
          assert.equal(1, emu:stats().requests, args .. ": one GET, nothing else")
        end
      end
      assert.equal(1, #emu:get_bandwidth(a).publicip_info)
      -- EIP ids that are ids: a failed drain lists them on stderr
      emu:inject{ method = "POST", path = "/remove$", status = 403, body = { code = "VPC.0015", message = "no" } }
      local code, _, err = run("delete-bandwidth " .. DRAIN_YES .. " " .. a)
      assert.equal(1, code)
      assert.truthy(has(err, "  " .. a .. " not moved (1): eip-a\n"), err)
    end)

    -- A later remove call, or the delete, not sent (the temporary keys could not be renewed)
    -- after EIPs moved: once "NOT SENT ... invalid" and "1 not sent", the moves never listed.
    -- (#once: 13 s of waiting for keys that expire in real seconds; the drain's listing runs under
    -- every interpreter in the cases around it)
    it("--drain whose later remove call or delete is not sent: FAILED, and what moved is listed #once", function()
      local eips = {}
      for i = 1, 150 do eips[i] = string.format("eip-%04d", i) end
      -- the remove call after which the keys are due (the second's: the delete is not sent)
      for _, case in ipairs{ { slow = 1, moved = 100, not_moved = 50 }, { slow = 2, moved = 150 } } do
        emu:reset()
        local a = emu:create_bandwidth{ size = 20, publicip_ids = eips }
        -- Keys that expire in 6 s (renewed from 3 s on), the metadata service failing after the
        -- first fetch; the remove call `slow` answered after 6.5 s: the request after it renews
        -- the keys first, in vain, and is not sent.
        emu:inject{ method = "GET", path = "^/openstack/latest/securitykey$", status = 200, times = -1,
          body = { credential = { access = emu.temp_ak, secret = emu.temp_sk, securitytoken = emu.security_token,
            expires_at = os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() + 6) } } }
        emu:inject{ method = "PUT", path = "^/meta%-data/latest/api/token$", action = "slow", delay = 0, times = 1 }
        emu:inject{ method = "PUT", path = "^/meta%-data/latest/api/token$", status = 500, times = -1 }
        if case.slow == 2 then
          emu:inject{ method = "POST", path = "/remove$", action = "slow", delay = 0, times = 1 }
        end
        emu:inject{ method = "POST", path = "/remove$", action = "slow", delay = 6.5, times = 1 }
        local code, out, err = run("delete-bandwidth --project-id " .. emu.project_id .. " " .. DRAIN_YES .. " " .. a,
          { env = { OS_AUTH_TOKEN = false, EIP_METADATA_URL = emu.metadata_url } })
        assert.equal(1, code, err)
        assert.matches("^FAILED +" .. a:gsub("%p", "%%%0"), out)
        assert.matches("1 bandwidth(s): 0 deleted, 0 missing, 1 failed  (", err, 1, true)
        assert.truthy(has(err, string.format("  %s moved out (%d): eip-0001 ", a, case.moved)), err)
        if case.not_moved then
          assert.truthy(has(err, string.format("  %s not moved (%d): eip-0101 ", a, case.not_moved)), err)
        end
        assert.equal(case.not_moved or 0, #(emu:get_bandwidth(a).publicip_info or {}))
      end
    end)

    -- Temporary keys that expire mid-batch while the metadata service fails: the ids left were
    -- "NOT SENT <id> invalid" (a usage error: a bad id, a setting to fix) and the batch "stopped
    -- after an authentication failure". Each is not sent for want of credentials, said so.
    it("a batch whose temporary keys cannot be renewed: NOT SENT ... credentials, and why", function()
      local ids = emu:create_bandwidths(3)
      emu:inject{ method = "GET", path = "^/openstack/latest/securitykey$", status = 200,
        body = { credential = { access = emu.temp_ak, secret = emu.temp_sk, securitytoken = emu.security_token,
          expires_at = os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() + 3) } } }
      emu:inject{ method = "GET", path = "^/openstack/latest/securitykey$", status = 500, times = -1 }
      -- (the first: the keys expire meanwhile; they come 2-3 s before their expiry, not in their last
      -- second, which a fetch waits out and asks again for)
      emu:inject{ method = "DELETE", action = "slow", delay = 3.5 }
      local code, out, err = run("delete-bandwidth --no-progress --concurrency 1 --project-id " .. emu.project_id
        .. " " .. table.concat(ids, " "), { env = { OS_AUTH_TOKEN = false, EIP_METADATA_URL = emu.metadata_url } })
      assert.equal(1, code, err)
      assert.matches("^deleted +" .. ids[1]:gsub("%p", "%%%0"), out)
      for i = 2, 3 do
        assert.matches("\nNOT SENT +" .. ids[i]:gsub("%p", "%%%0") .. " +credentials[ %d%.ms]*\n", out)
      end
      assert.matches("3 bandwidth(s): 1 deleted, 0 missing, 0 failed, 2 not sent", err, 1, true)
      assert.truthy(has(err, "credentials not renewed: the ECS metadata service at " .. emu.metadata_url
        .. " gave no new temporary keys (it answered 500)"), err)
      assert.is_nil(err:find("authentication failure", 1, true), err)
    end)

    -- A throttling answer that asks not to come back for an hour stops the drains as it stops a
    -- batch: the next drain once went on, moving EIPs into new bills it could not delete after.
    -- So does a 503 whose Retry-After says the service is away for an hour (the other ids were
    -- sent into the outage, each failed, each a delete that may have acted).
    it("--drain stops after throttling or a 503 that asks not to come back soon: no other is drained", function()
      for _, case in ipairs{
          { 429, "FAILED", "429 APIGW.0308", "throttled", "the API throttles, and asked not to come back soon",
            body = { error_code = "APIGW.0308", error_msg = "The throttling threshold has been reached" } },
          { 503, "FAILED%?", "503", "unavailable", "the service is unavailable, and asked not to come back soon" } } do
        emu:reset()
        local a = emu:create_bandwidth{ size = 5 }
        local b = emu:create_bandwidth{ size = 5, publicip_ids = { "eip-b1", "eip-b2" } }
        emu:inject{ method = "DELETE", status = case[1], times = -1, headers = { ["Retry-After"] = "3600" },
          body = case.body }
        local code, out, err = run("delete-bandwidth " .. DRAIN_YES .. " " .. a .. " " .. b)
        assert.equal(1, code, err)
        assert.matches("^" .. case[2] .. " +" .. a:gsub("%p", "%%%0") .. " +" .. case[3], out)
        assert.matches("\nNOT SENT " .. b:gsub("%p", "%%%0") .. " +" .. case[4], out)
        assert.matches("eip: stopped: " .. case[5], err, 1, true)
        assert.equal(2, emu:stats().requests, "the show and the delete of the first")
        assert.equal(2, #emu:get_bandwidth(b).publicip_info)
        if case[1] == 503 then -- a batch alike
          emu:reset_counters()
          code, out, err = run("delete-bandwidth --concurrency 1 " .. a .. " " .. b)
          assert.equal(1, code, err)
          assert.matches("\nNOT SENT " .. b:gsub("%p", "%%%0") .. " +unavailable", out)
          assert.matches("eip: stopped: " .. case[5], err, 1, true)
          assert.equal(1, emu:stats().requests)
        end
      end
    end)

    -- A drain's line once showed its delete's time alone (0.5 ms for a drain of seconds).
    it("--drain's line and JSON give the whole drain's time and requests", function()
      local a = emu:create_bandwidth{ size = 5, publicip_ids = { "eip-a", "eip-b" } }
      emu:inject{ method = "POST", path = "/remove$", action = "slow", delay = 0.3 }
      local code, out, err = run("delete-bandwidth --json " .. DRAIN_YES .. " " .. a)
      assert.equal(0, code, err)
      local line = cjson.decode(out)
      assert.same({ "deleted", 3, 1 }, { line.result, line.requests, line.attempts })
      assert.is_true(line.elapsed >= 0.3, out)
      -- Its --wait is not in it (as a batch's lines): the wait has a field of its own.
      a = emu:create_bandwidth{ size = 5, publicip_ids = { "eip-c" } }
      emu:set_knobs{ deleted_visible_for = 2 }
      code, out, err = run("delete-bandwidth --json --wait " .. DRAIN_YES .. " " .. a)
      assert.equal(0, code, err)
      line = cjson.decode(out)
      assert.is_true(line.waited >= 2 and line.elapsed < line.waited, out)
    end)

    -- A remove call whose answer was lost is checked with a GET (its EIPs left: done): that GET
    -- went out too, and `requests` once left it out (3 calls said, 4 sent).
    it("--drain's requests count the GET that checked a failed remove call", function()
      local a = emu:create_bandwidth{ size = 5, publicip_ids = { "eip-a", "eip-b" } }
      emu:inject{ method = "POST", path = "/remove$", action = "lose_answer" }
      emu:reset_counters()
      local code, out, err = run("delete-bandwidth --json --max-attempts 1 " .. DRAIN_YES .. " " .. a)
      assert.equal(0, code, err)
      local line = cjson.decode(out)
      assert.same({ "deleted", 4, { "eip-a", "eip-b" } }, { line.result, line.requests, line.removed })
      local methods = {}
      for _, r in ipairs(emu:requests()) do
        if not r.uri:find("^/__emulator") then methods[#methods + 1] = r.method end
      end
      assert.same({ "GET", "POST", "GET", "DELETE" }, methods)
    end)

    it("--force points to --drain; --drain needs --yes without a terminal, and --yes the terms", function()
      local a = emu:create_bandwidth{ size = 5, publicip_ids = { "eip-a" } }
      emu:reset_counters()
      local code, _, err = run("delete-bandwidth --force " .. a)
      assert.equal(2, code)
      assert.matches("%-%-force is now %-%-drain", err)
      code, _, err = run("delete-bandwidth --drain " .. a)
      assert.equal(2, code)
      assert.matches("%-%-drain without a terminal needs %-%-yes", err)
      -- Nobody confirms with --yes: the new bandwidths' terms are given, never defaults.
      for _, terms in ipairs{ "", "--size 1", "--charge-mode traffic" } do
        code, _, err = run("delete-bandwidth --drain --yes " .. terms .. " " .. a)
        assert.equal(2, code, terms)
        assert.matches("%-%-drain %-%-yes needs %-%-size and %-%-charge%-mode", err)
      end
      assert.equal(0, emu:stats().requests)
    end)

    it("--concurrency prints each id's line as it finishes, one per id, whatever the order", function()
      local slow, fast = emu:create_bandwidth{ size = 5 }, emu:create_bandwidth{ size = 5 }
      local full = emu:create_bandwidth{ size = 5, publicip_ids = { "eip-1" } }
      -- The second id answers last: 204 after 2 s, while the others are sent meanwhile (the
      -- first is sent alone, as every batch's first request is) and answered at once.
      emu:inject{ method = "DELETE", path = slow:gsub("%-", "%%-") .. "$", status = 204, delay = 2 }
      local gone = absent_id(1)
      local code, out, err = run("delete-bandwidth --json --missing-ok --concurrency 4 "
        .. fast .. " " .. slow .. " " .. gone .. " " .. full)
      assert.equal(1, code)
      local seen = {}
      for i, line in ipairs(lines(out)) do
        local o = cjson.decode(line)
        seen[i] = o.bandwidth_id .. "=" .. o.result
      end
      assert.equal(slow .. "=deleted", seen[4]) -- printed when it finished, not in input order
      table.sort(seen)
      local want = { slow .. "=deleted", gone .. "=missing", full .. "=failed", fast .. "=deleted" }
      table.sort(want)
      assert.same(want, seen)
      assert.truthy(has(err, "4 bandwidth(s): 2 deleted, 1 missing, 1 failed"))
    end)

    it("says how many attempts a retried id took, and how many a failed one made", function()
      local a, b = emu:create_bandwidth{ size = 5 }, emu:create_bandwidth{ size = 5 }
      local function path(id) return id:gsub("%p", "%%%0") .. "$" end
      emu:inject{ method = "DELETE", path = path(a), status = 503, times = 2, headers = { ["Retry-After"] = "0" } }
      emu:inject{ method = "DELETE", path = path(b), status = 503, times = 3, headers = { ["Retry-After"] = "0" } }
      local code, out, err = run("delete-bandwidth --concurrency 1 " .. a .. " " .. b)
      assert.equal(1, code)
      local l = lines(out)
      assert.matches("^deleted  " .. a:gsub("%-", "%%-") .. "  204 +3 attempts +%d", l[1])
      assert.matches("^FAILED%?  " .. b:gsub("%-", "%%-") .. "  503 +3 attempts +%d", l[2]) -- (a 503 may have acted)
      assert.matches("Failed %(1%):\n  " .. b:gsub("%-", "%%-") .. "  503 +3 attempts\n    FAILED%? may have been "
        .. "deleted: check with eip show%-bandwidth before a retry\n    Service Unavailable", err)
    end)

    it("keeps every line within 80 columns for UUIDs, --verbose detail included", function()
      local ids = {}
      for i = 1, 4 do ids[i] = emu:create_bandwidth{ size = 5 } end
      local full = emu:create_bandwidth{ size = 5, publicip_ids = { "eip-1" } }
      local gone = "9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f"
      for _, extra in ipairs{ "", "--verbose", "--output table --verbose", "--missing-ok" } do
        emu:inject{ method = "DELETE", path = ids[2]:gsub("%p", "%%%0") .. "$", status = 503, times = 2,
          headers = { ["Retry-After"] = "0" } }
        emu:inject{ method = "DELETE", path = ids[3]:gsub("%p", "%%%0") .. "$", status = 500, times = 3,
          headers = { ["Retry-After"] = "0" },
          body = { code = "VPC.9999", message = string.rep("a long message from the server ", 8) } }
        -- (libcurl resends by itself a request whose reused connection was dropped: 9 drops
        -- cover the 3 attempts)
        emu:inject{ method = "DELETE", path = ids[4]:gsub("%p", "%%%0") .. "$", action = "drop", times = 9 }
        local _, out, err = run("delete-bandwidth --concurrency 1 " .. extra .. " " .. table.concat(ids, " ")
          .. " " .. full .. " " .. gone)
        for _, line in ipairs(lines(out .. err)) do
          assert.is_true(#line <= 80, extra .. ": " .. #line .. " columns: " .. line)
        end
        if extra == "" then
          assert.matches("\nFAILED%?  " .. ids[4]:gsub("%-", "%%-") .. "  reset +3 attempts", out)
        elseif extra == "--verbose" then
          assert.matches("\n         Internal Server Error: a long message", out)
          assert.matches("\n         request%-id %x+\n", out)
        end
        for _, id in ipairs(ids) do
          if not emu:get_bandwidth(id) then emu:create_bandwidth{ id = id, size = 5 } end
        end
      end
    end)

    it("lists the failures again at the end, on stderr: id, status, code, message", function()
      local a = emu:create_bandwidth{ size = 5 }
      local full = emu:create_bandwidth{ size = 5, publicip_ids = { "eip-1" } }
      local gone = absent_id(1)
      local code, out, err = run("delete-bandwidth " .. full .. " " .. gone .. " " .. a)
      assert.equal(1, code)
      assert.is_nil(out:find("Failed", 1, true))
      assert.equal(table.concat({
        "Failed (2):",
        "  " .. full .. "  409 VPC.0304  1 attempt",
        "    Conflict: deleteBandwidth error. The shared bandwidth still has publicips,",
        "    remove them first.",
        "  " .. gone .. "  404 VPC.0306  1 attempt",
        "    Not Found: No Eip bandwidth exist with id.",
      }, "\n"), err:match("^(.-)\n3 bandwidth"))
    end)

    -- A delete that may have been carried out without its answer arriving (a 5xx, a timeout) is
    -- no certain failure such as a 409: its own word, note, count and JSON field.
    it("tells a failure that may have acted (503, timeout) from a certain one (409)", function()
      local a, sick, slow = emu:create_bandwidth{ size = 5 }, emu:create_bandwidth{ size = 5 },
        emu:create_bandwidth{ size = 5 }
      local full = emu:create_bandwidth{ size = 5, publicip_ids = { "eip-1" } }
      local function path(id) return id:gsub("%p", "%%%0") .. "$" end
      local function inject()
        emu:inject{ method = "DELETE", path = path(sick), status = 503, times = 2, headers = { ["Retry-After"] = "0" } }
        emu:inject{ method = "DELETE", path = path(slow), action = "hang", times = 2 }
      end
      local ids = table.concat({ a, full, sick, slow }, " ")
      inject()
      local code, out, err = run("delete-bandwidth --concurrency 1 --timeout 1 --max-attempts 2 " .. ids)
      assert.equal(1, code, err) -- the exit status of any failure
      local l = lines(out)
      assert.equal(4, #l)
      assert.matches("^FAILED   " .. full:gsub("%-", "%%-") .. "  409 VPC%.0304  1 attempt ", line_for(l, full))
      assert.matches("^FAILED%?  " .. sick:gsub("%-", "%%-") .. "  503 +2 attempts ", line_for(l, sick))
      assert.matches("^FAILED%?  " .. slow:gsub("%-", "%%-") .. "  timeout +2 attempts ", line_for(l, slow))
      for _, line in ipairs(lines(out .. err)) do assert.is_true(#line <= 80, line) end
      assert.matches("4 bandwidth%(s%): 1 deleted, 0 missing, 3 failed %(2 may have acted%)  %(%d+%.%d+ s%)\n$", err)
      -- the failures again: each that may have acted says so, with what to do; the 409 does not
      local listed = err:match("Failed %(3%):\n(.-)\n4 bandwidth")
      assert.matches("  " .. full:gsub("%-", "%%-") .. "  409 VPC%.0304  1 attempt\n    Conflict", listed)
      for _, id in ipairs{ sick, slow } do
        assert.matches("  " .. id:gsub("%-", "%%-") .. "  %S+ +%d attempts?\n    FAILED%? may have been "
          .. "deleted: check with eip show%-bandwidth before a retry\n", listed)
      end
      assert.equal(2, select(2, listed:gsub("FAILED%?", "")))
      -- --verbose says it under the line too
      emu:create_bandwidth{ id = a, size = 5 }
      inject()
      code, out = run("delete-bandwidth --verbose --concurrency 1 --timeout 1 --max-attempts 2 " .. ids)
      assert.equal(1, code)
      assert.matches("\nFAILED%?  " .. sick:gsub("%-", "%%-") .. "[^\n]*\n         may have been deleted: check with "
        .. "eip show%-bandwidth before a retry\n", out)
      -- --json: every failure says whether it could have acted
      emu:create_bandwidth{ id = a, size = 5 }
      inject()
      code, out, err = run("delete-bandwidth --json --concurrency 1 --timeout 1 --max-attempts 2 " .. ids)
      assert.equal(1, code)
      local objs = by_id(out)
      assert.same({ true, "deleted" }, { objs[a].ok, objs[a].result })
      assert.is_nil(objs[a].could_have_acted)
      assert.same({ false, "failed", 409, false }, { objs[full].ok, objs[full].result, objs[full].status,
        objs[full].could_have_acted })
      assert.same({ false, "failed", 503, true }, { objs[sick].ok, objs[sick].result, objs[sick].status,
        objs[sick].could_have_acted })
      assert.same({ false, "failed", "timeout", true }, { objs[slow].ok, objs[slow].result, objs[slow].reason,
        objs[slow].could_have_acted })
      assert.matches("3 failed %(2 may have acted%)", err)
    end)

    it("says FAILED? by the library's rule, eip.could_have_acted", function()
      local rule = require("eip").could_have_acted
      for _, case in ipairs{
        { false, { kind = "http", status = 409 } }, { false, { kind = "http", status = 404 } },
        { false, { kind = "http", status = 429 } }, { true, { kind = "http", status = 500 } },
        { true, { kind = "http", status = 503 } }, { true, { kind = "http", status = 200 } },
        { true, { kind = "http", status = 409, earlier_unanswered = true } },
        { true, { kind = "transport", reason = "timeout" } }, { true, { kind = "transport", reason = "reset" } },
        { true, { kind = "transport", reason = "protocol" } }, { true, { kind = "transport", reason = "other" } },
        { false, { kind = "transport", reason = "dns" } }, { false, { kind = "transport", reason = "connect" } },
        { false, { kind = "transport", reason = "tls" } },
        { false, { kind = "transport", reason = "timeout", not_sent = true } },
        -- a connect or handshake timeout the transport saw before the request went out
        { false, { kind = "transport", reason = "timeout", unsent = true } },
        { false, { kind = "transport", reason = "reset", unsent = true } },
        { true, { kind = "transport", reason = "timeout", unsent = true, earlier_unanswered = true } },
        { true, { kind = "transport", reason = "timeout", unsent = "yes" } }, -- (only true says so)
        { false, { kind = "proxy", reason = "auth" } }, { true, { kind = "interrupted" } },
        { false, { kind = "interrupted", cancelled = true } },
        { true, { kind = "interrupted", cancelled = true, earlier_unanswered = true } },
        { false, { kind = "usage" } }, { false, { kind = "not_sent", not_sent = true } },
        { false, { kind = "refused", reason = "dedicated" } }, { true, { kind = "something new" } },
        -- a drain's show changed nothing; after its remove call, only EIPs nobody can tell about count
        { false, { kind = "transport", reason = "timeout", stage = "show" } },
        { false, { kind = "http", status = 503, stage = "remove", uncertain = {} } },
        { true, { kind = "http", status = 403, stage = "remove", uncertain = { "eip-1" } } },
        { true, { kind = "http", status = 503, stage = "delete", moved = {} } },
      } do
        assert.equal(case[1], rule(case[2]), cjson.encode(case[2]))
      end
      assert.is_false(rule(nil))
      assert.is_true(rule("lua/x.lua:1: a raw error of a bug")) -- unknown: look before a retry
    end)

    it("--drain: a delete that may have acted is FAILED?, a refused remove FAILED", function()
      local a = emu:create_bandwidth{ size = 5, publicip_ids = { "eip-a" } }
      local b = emu:create_bandwidth{ size = 5, publicip_ids = { "eip-b" } }
      local function inject()
        emu:inject{ method = "DELETE", path = a:gsub("%p", "%%%0") .. "$", status = 503, times = 2,
          headers = { ["Retry-After"] = "0" } }
        emu:inject{ method = "POST", path = b:gsub("%p", "%%%0") .. "/remove$", status = 403,
          body = { code = "VPC.0015", message = "no" } }
      end
      inject()
      -- (b first: a drained bandwidth whose delete fails stops the batch, see below)
      local code, out, err = run("delete-bandwidth " .. DRAIN_YES .. " --max-attempts 2 " .. b .. " " .. a)
      assert.equal(1, code)
      local l = lines(out)
      assert.matches("^FAILED%?%s+" .. a:gsub("%-", "%%-") .. "%s+503%s+1/1 moved, 2 attempts", line_for(l, a))
      assert.matches("^FAILED%s+" .. b:gsub("%-", "%%-") .. "%s+403 VPC%.0015%s+0/1 moved, 1 attempt", line_for(l, b))
      assert.matches("2 failed %(1 may have acted%)", err)
      inject() -- a is still there, empty: only its delete is sent
      code, out = run("delete-bandwidth " .. DRAIN_YES .. " --json --max-attempts 2 " .. b .. " " .. a)
      assert.equal(1, code)
      local objs = by_id(out)
      assert.same({ "delete", 503, true }, { objs[a].stage, objs[a].status, objs[a].could_have_acted })
      assert.same({ "remove", 403, false }, { objs[b].stage, objs[b].status, objs[b].could_have_acted })
    end)

    -- A client signing with AK/SK keeps four requests in flight, whatever --concurrency says:
    -- once cut silently, a run took four times as long as asked without a word why.
    it("says that --concurrency above 4 runs as 4 when the requests are signed", function()
      local ids = emu:create_bandwidths(8)
      local aksk = { OS_AUTH_TOKEN = false, HUAWEICLOUD_SDK_AK = emu.ak, HUAWEICLOUD_SDK_SK = emu.sk }
      local code, _, err = run("delete-bandwidth --concurrency 16 " .. table.concat(ids, " "), { env = aksk })
      assert.equal(0, code, err)
      assert.matches("eip: note: a client signing with AK/SK keeps at most 4 requests in flight; "
        .. "--concurrency 16 runs as 4\n", err, 1, true)
      assert.matches("8 deleted", err, 1, true)
      -- Not with a token, nor with a --concurrency that fits.
      ids = emu:create_bandwidths(8)
      code, _, err = run("delete-bandwidth --concurrency 16 " .. table.concat(ids, " "))
      assert.equal(0, code, err)
      assert.is_nil(err:find("note: a client signing", 1, true))
      ids = emu:create_bandwidths(8)
      code, _, err = run("delete-bandwidth --concurrency 4 " .. table.concat(ids, " "), { env = aksk })
      assert.equal(0, code, err)
      assert.is_nil(err:find("note: a client signing", 1, true))
    end)

    -- Signed requests whose answers were lost stop the signing, and so the batch: the ids after
    -- the one refused are NOT SENT, and the command says why (once without a word).
    it("says when a batch stopped because signed requests in a row got no answer", function()
      local ids = emu:create_bandwidths(5)
      emu:inject{ method = "DELETE", action = "lose_answer", times = 3 }
      local aksk = { OS_AUTH_TOKEN = false, HUAWEICLOUD_SDK_AK = emu.ak, HUAWEICLOUD_SDK_SK = emu.sk }
      local code, out, err = run("delete-bandwidth --no-progress --concurrency 1 --max-attempts 1 "
        .. table.concat(ids, " "), { env = aksk })
      assert.equal(1, code, err)
      assert.matches("\nNOT SENT +" .. ids[4]:gsub("%p", "%%%0") .. " +refused: unanswered", out)
      assert.matches("\nNOT SENT +" .. ids[5]:gsub("%p", "%%%0") .. " +unanswered", out)
      assert.matches("eip: stopped: signed requests (or logins) in a row got no answer", err, 1, true)
      assert.equal(3, emu:stats().requests)
    end)

    it("sends 8 deletes at once by default (the library's concurrency)", function()
      local ids = {}
      for i = 1, 20 do ids[i] = emu:create_bandwidth{ size = 1 } end
      emu:inject{ method = "DELETE", status = 204, delay = 0.2, times = -1 }
      emu:reset_counters()
      local code = run("delete-bandwidth " .. table.concat(ids, " "))
      assert.equal(0, code)
      assert.equal(8, emu:stats().connections)
    end)

    it("refuses a line on stdin that cannot be a list of ids (/dev/zero) at once: exit 2, nothing sent", function()
      local before = emu:stats().requests
      local code, out, err = run("delete-bandwidth -", { input = "/dev/zero" })
      assert.equal(2, code)
      assert.equal("", out)
      assert.matches("stdin line 1 is longer than 4096 bytes: not a list of ids", err, 1, true)
      assert.equal(before, emu:stats().requests)
    end)

    -- Each line is checked as it is read: a bad first line followed by an endless stream of
    -- ids (a generator, a log still written) once kept the command reading, its memory growing,
    -- without ever saying what was wrong (the ids were checked at the end of stdin). The same for
    -- a line that comes alone, its writer still there (ids typed at a terminal, a script writing
    -- now and then): stdin was read 64 KiB at a time, and a bad first line was said only once
    -- that much came or stdin ended (here never: the writer is killed at 30 s, exit 137).
    for _, case in ipairs{
      { "at once, before the rest of stdin is read",
        "printf 'not/an/id\\n'; yes 11111111-2222-3333-4444-555555555555" },
      { "when its line comes, the writer still writing",
        "printf 'not/an/id\\n'; while sleep 0.2 && printf '# later\\n'; do :; done" },
    } do
      it("refuses a bad id on stdin " .. case[1] .. ": exit 2, nothing sent", function()
        local before = emu:stats().requests
        local code, out, err = run("delete-bandwidth -", { feed = case[2] })
        assert.equal(2, code)
        assert.equal("", out)
        assert.matches("^eip: stdin line 1: bandwidth_id ", err)
        assert.equal(before, emu:stats().requests)
      end)
    end

    it("refuses more than 100000 distinct ids at the first one past them; repeats hold nothing", function()
      local before = emu:stats().requests
      local code, out, err = run("delete-bandwidth -",
        { feed = "seq -f '11111111-2222-3333-4444-%012g' 1 100001" })
      assert.equal(2, code)
      assert.equal("", out)
      assert.matches("eip: stdin line 100001: more than 100000 distinct ids: split the list", err, 1, true)
      assert.equal(before, emu:stats().requests)
      -- The same id over and over is one id (the rest are repeats), however many lines.
      code, out, err = run("delete-bandwidth --dry-run -",
        { feed = "yes 11111111-2222-3333-4444-555555555555 | head -n 200000" })
      assert.equal(0, code, err)
      assert.matches("11111111-2222-3333-4444-555555555555", out, 1, true)
      assert.matches("199999 repeated id", err, 1, true)
      assert.equal(before, emu:stats().requests)
    end)

    -- A control byte in a value a message quotes (an id read from a file, a code) is written as
    -- an escape: Lua 5.1's %q let ESC through raw, and `eip status` echoed it on every Lua.
    it("writes no control byte of a quoted value raw to the terminal", function()
      local code, _, err = run("delete-bandwidth -", { stdin = "abc\27[2Jdef\n" })
      assert.equal(2, code)
      assert.matches('got "abc\\27[2Jdef"', err, 1, true)
      -- (a newline, which %q writes as a backslash and a newline, is \n: not \\10)
      code, _, err = run("regions " .. q("x\ny"))
      assert.equal(2, code)
      assert.matches('got "x\\ny"', err, 1, true)
      code, _, err = run("status " .. q("VPC.\27[2J"))
      assert.equal(2, code)
      assert.matches('"VPC.\\27[2J" is neither an HTTP status', err, 1, true)
      assert.is_nil(err:find("\27", 1, true))
      -- A value cut to its first bytes is cut between characters: no half of one (a broken
      -- character on the terminal, two U+FFFD in the JSON).
      code, _, err = run("list-bandwidths --output " .. q(string.rep("带宽", 4)))
      assert.equal(2, code)
      assert.matches('got "带宽带宽带宽"', err, 1, true)
      code, _, err = run("list-bandwidths --json --output " .. q(string.rep("带宽", 4)))
      assert.equal(2, code)
      assert.equal('--output must be text, json or table, got "带宽带宽带宽"', cjson.decode(err).message)
    end)

    it("reads nothing on stdin as nothing to delete: exit 0, nothing sent", function()
      local code, out, err = run("delete-bandwidth -", { stdin = "# nothing today\n\n" })
      assert.equal(0, code)
      assert.equal("", out)
      assert.equal("eip: nothing to delete (no ids on stdin)\n", err)
      assert.equal(0, emu:stats().requests)
    end)

    it("--output table puts a header over the result lines", function()
      local a = emu:create_bandwidth{ size = 5 }
      local code, out = run("delete-bandwidth --output table " .. a)
      assert.equal(0, code)
      assert.matches("^RESULT   ID +STATUS +NOTES +TIME\ndeleted  ", out)
    end)

    it("never prints the token, even with --debug", function()
      local a = emu:create_bandwidth{ size = 5 }
      local code, out, err = run("delete-bandwidth --debug " .. a .. " missing-1")
      assert.equal(1, code)
      assert.truthy(has(err, "X-Auth-Token: <redacted>"))
      assert.is_false(has(out .. err, emu.token))
    end)

    it("--rate spaces the requests below a throttled API's limit: no 429 at all", function()
      -- 15 at once would be over the limit of 12 a second; at 4 a second, only requests held
      -- back by a stall of the gateway of 2 s could crowd 13 into one of its seconds.
      emu:set_knobs{ throttle_rate = 12 }
      local ids = {}
      for i = 1, 15 do ids[i] = emu:create_bandwidth{ size = 5 } end
      local code, out, err = run("delete-bandwidth --rate 4 --concurrency 8 " .. table.concat(ids, " "))
      assert.equal(0, code, err)
      assert.equal(15, #lines(out))
      assert.equal(0, emu:stats().throttled)
      assert.is_false(has(err, "throttled"))
    end)

    it("says when the API throttled a batch, and --no-adaptive keeps the concurrency", function()
      emu:set_knobs{ throttle_rate = 4 }
      local ids = {}
      for i = 1, 12 do ids[i] = emu:create_bandwidth{ size = 5 } end
      local _, _, err = run("delete-bandwidth --no-adaptive --max-attempts 1 --concurrency 6 "
        .. table.concat(ids, " "))
      local refused = emu:stats().throttled
      assert.is_true(refused > 0)
      assert.truthy(has(err, string.format("eip: the API throttled %d answer(s); concurrency 6 at the end (lowest 6)",
        refused)), err)
    end)

    it("stops a batch after an authentication failure and says how many ids were not sent", function()
      local ids = {}
      for i = 1, 5 do ids[i] = emu:create_bandwidth{ size = 5 } end
      local code, _, err = run("delete-bandwidth --concurrency 4 " .. table.concat(ids, " "),
        { env = { OS_AUTH_TOKEN = "not-a-token-the-emulator-knows" } })
      assert.equal(1, code)
      assert.truthy(has(err, "eip: stopped after an authentication failure: 4 id(s) not sent"), err)
      for _, id in ipairs(ids) do assert.is_not_nil(emu:get_bandwidth(id)) end
    end)

    it("--rate and --burst are checked before anything is sent", function()
      for _, a in ipairs{ "--rate 0", "--rate fast", "--burst 0 --rate 5", "--burst 3" } do
        local code, _, err = run("delete-bandwidth " .. a .. " some-id")
        assert.equal(2, code, a)
        assert.truthy(err:find("--rate", 1, true) or err:find("--burst", 1, true), a .. ": " .. err)
      end
      assert.equal(0, emu:stats().requests)
    end)
  end)

  describe("signals, a reader gone, output that cannot be written", function()
    -- Every id of a batch whose line was printed (stdout or stderr), by its result word.
    local function reported(out, err)
      local seen = {}
      for _, l in ipairs(lines(out .. "\n" .. err)) do
        local word, id = l:match("^(%S+)%s+(%S+)")
        if word == "NOT" then word, id = "NOT SENT", l:match("^NOT SENT%s+(%S+)") end
        if word then seen[id] = word end
      end
      return seen
    end

    -- A run's signal option: once the emulator has seen n API requests, sends sig to the command.
    local function signal_after(n, sig)
      return function(pid)
        local deadline = socket.gettime() + 10
        while emu:stats().requests < n do
          assert(socket.gettime() < deadline, "the command sent fewer than " .. n .. " requests")
          socket.sleep(0.02)
        end
        host.execute("kill -" .. sig .. " " .. pid)
      end
    end

    -- Ctrl-C once the emulator has seen n API requests, and again 0.3 s later.
    local function ctrl_c_twice_after(n)
      return function(pid)
        signal_after(n, "INT")(pid)
        socket.sleep(0.3)
        host.execute("kill -INT " .. pid)
      end
    end

    -- ids: n bandwidths whose deletes each take `delay` seconds.
    local function slow_batch(n, delay)
      local ids = {}
      for i = 1, n do ids[i] = emu:create_bandwidth{ size = 5 } end
      emu:inject{ method = "DELETE", action = "slow", delay = delay, times = -1 }
      return ids, table.concat(ids, "\n") .. "\n"
    end

    -- Each id deleted in the emulator is reported deleted, and each one reported not sent was
    -- not deleted; returns the counts of both.
    local function check_reports(ids, seen)
      local deleted, not_sent = 0, 0
      for _, id in ipairs(ids) do
        if emu:get_bandwidth(id) == nil then
          assert.equal("deleted", seen[id], id .. " was deleted: its line was lost")
          deleted = deleted + 1
        else
          assert.equal("NOT SENT", seen[id], id .. " is still there")
          not_sent = not_sent + 1
        end
      end
      return deleted, not_sent
    end

    -- Ctrl-C while a drained bandwidth's delete waits for its retry is an interruption, not a
    -- delete that failed after the EIPs moved (which would stop the batch for another reason).
    it("--drain: Ctrl-C before the delete's retry says interrupted, not that a delete failed", function()
      local ids = {}
      for i = 1, 3 do ids[i] = emu:create_bandwidth{ size = 5, publicip_ids = { "g" .. i } } end
      emu:inject{ method = "DELETE", status = 503, headers = { ["Retry-After"] = "4" }, times = -1,
        body = { code = "VPC.0302", message = "busy" } }
      emu:reset_counters()
      local code, out, err = run("delete-bandwidth " .. DRAIN_YES .. " " .. table.concat(ids, " "),
        { signal = signal_after(3, "INT") })
      assert.equal(130, code, out .. err)
      assert.is_nil(err:find("stopped after a drained bandwidth's delete failed", 1, true), err)
      -- (said when it came, as in a batch: a drain's step may take its whole timeout)
      assert.truthy(has(err, "eip: Ctrl-C: stopping: nothing more is sent"), err)
      assert.matches("NOT SENT%s+" .. ids[3]:gsub("%-", "%%-") .. "%s+interrupted", out)
    end)

    -- A single request in flight (the wait's read, a drain's steps: libcurl's easy handle, not the
    -- batch's multi) ends at the second Ctrl-C too: it ran until the server answered (30 s).
    it("--wait: a second Ctrl-C aborts the wait's read in flight", function()
      local id = emu:create_bandwidth{ size = 5 }
      emu:inject{ method = "GET", action = "slow", delay = 20 }
      emu:reset_counters()
      local t0 = socket.gettime()
      local code, out, err = run("delete-bandwidth --wait-timeout 60 " .. id, { signal = ctrl_c_twice_after(2) })
      local took = socket.gettime() - t0
      assert.equal(130, code, out .. err)
      assert.is_true(took < 8, "took " .. took .. " s")
      assert.matches("deleted%s+" .. id:gsub("%-", "%%-"), out)
      assert.is_nil(emu:get_bandwidth(id))
    end)

    it("--drain: a second Ctrl-C aborts a remove call in flight; its EIPs are uncertain", function()
      local id = emu:create_bandwidth{ size = 5, publicip_ids = { "u1", "u2" } }
      emu:inject{ method = "POST", path = "/remove$", action = "slow", delay = 20 }
      emu:reset_counters()
      local t0 = socket.gettime()
      local code, out, err = run("delete-bandwidth " .. DRAIN_YES .. " " .. id, { signal = ctrl_c_twice_after(2) })
      local took = socket.gettime() - t0
      assert.equal(130, code, out .. err)
      assert.is_true(took < 8, "took " .. took .. " s")
      assert.matches("FAILED%?%s+" .. id:gsub("%-", "%%-") .. "%s+interrupted", out)
      assert.is_table(emu:get_bandwidth(id))
    end)

    -- The first Ctrl-C stops sending: a DELETE in flight whose kept-alive connection then died
    -- without an answer was sent again by the transport (libcurl's resend, or the C core's) after
    -- it, and the bandwidth deleted. In a batch (the C multi) and in a drain (a single call, the
    -- session) alike, it ends as the reset it was: FAILED? (it may have been carried out).
    it("the first Ctrl-C: a delete in flight whose connection dies unanswered is not sent again", function()
      local ids = { emu:create_bandwidth{ size = 5 }, emu:create_bandwidth{ size = 5 } }
      emu:inject{ method = "DELETE", path = emu:delete_path(ids[2]), action = "drop", delay = 1.5 }
      emu:reset_counters()
      local code, out, err = run("delete-bandwidth --concurrency 1 " .. table.concat(ids, " "),
        { signal = signal_after(2, "INT") })
      assert.equal(130, code, out .. err)
      assert.equal(2, emu:stats().requests, "batch: the dropped DELETE was not sent again")
      assert.is_table(emu:get_bandwidth(ids[2]))
      assert.matches("FAILED%?%s+" .. ids[2]:gsub("%-", "%%-") .. "%s+reset", out)
      local id = emu:create_bandwidth{ size = 5, publicip_ids = { "r1" } }
      emu:inject{ method = "DELETE", action = "drop", delay = 1.5 }
      emu:reset_counters()
      code, out, err = run("delete-bandwidth " .. DRAIN_YES .. " " .. id, { signal = signal_after(3, "INT") })
      assert.equal(130, code, out .. err)
      assert.equal(3, emu:stats().requests, "drain: the dropped DELETE was not sent again")
      assert.is_table(emu:get_bandwidth(id))
      assert.matches("FAILED%?%s+" .. id:gsub("%-", "%%-") .. "%s+interrupted", out)
    end)

    -- A show or a list waiting out a Retry-After: the first Ctrl-C (SIGTERM) ends it at once, no
    -- retry sent (the interpreter's own handler only raised once the 20 s sleep had ended).
    it("show-bandwidth and list-bandwidths: a Ctrl-C or SIGTERM ends the wait before a retry at once", function()
      local id = emu:create_bandwidth{ size = 5 }
      for _, case in ipairs{ { "show-bandwidth " .. id, "INT", 130 }, { "list-bandwidths", "TERM", 143 },
          { "show-bandwidth --json " .. id, "INT", 130 } } do
        emu:inject{ method = "GET", status = 503, headers = { ["Retry-After"] = "20" },
          body = { code = "VPC.0302", message = "busy" } }
        emu:reset_counters()
        local t0 = socket.gettime()
        local code, out, err = run(case[1], { signal = signal_after(1, case[2]) })
        local took = socket.gettime() - t0
        assert.equal(case[3], code, case[1] .. ": " .. out .. err)
        assert.is_true(took < 8, case[1] .. " took " .. took .. " s")
        assert.equal(1, emu:stats().requests, "no retry sent")
        if case[1]:find("--json", 1, true) then
          assert.same({ "interrupted", 130 }, { cjson.decode(err).kind, cjson.decode(err).exit }, err)
        else
          assert.matches(case[2] == "INT" and "interrupted" or "stopped by SIGTERM", err)
        end
      end
    end)

    -- (The project's look-up of AK/SK credentials came before the signals were caught: SIGTERM
    -- killed the command without a word, and Ctrl-C waited for the look-up's timeout.)
    it("show-, list- and delete-bandwidth: a signal during the project's look-up ends them, said", function()
      local id = emu:create_bandwidth{ size = 5 }
      local aksk = { OS_AUTH_TOKEN = false, HUAWEICLOUD_SDK_PROJECT_ID = false, HUAWEICLOUD_SDK_AK = emu.ak,
        HUAWEICLOUD_SDK_SK = emu.sk, HUAWEICLOUD_SDK_REGION = "cn-north-4", HUAWEICLOUD_SDK_IAM_ENDPOINT = emu.iam_url }
      for _, case in ipairs{ { "list-bandwidths --json", "TERM", 143 }, { "show-bandwidth " .. id, "INT", 130 },
          { "delete-bandwidth " .. id, "INT", 130 }, { "show-bandwidth " .. id, "TERM", 143 } } do
        emu:inject{ method = "GET", path = "^/v3/projects", action = "slow", delay = 20 }
        emu:reset_counters()
        local t0 = socket.gettime()
        local code, out, err = run(case[1], { env = aksk, signal = signal_after(1, case[2]) })
        local took = socket.gettime() - t0
        assert.equal(case[3], code, case[1] .. ": " .. out .. err)
        assert.is_true(took < 8, case[1] .. " took " .. took .. " s")
        -- (a SIGTERM is named: it was "interrupted", as a Ctrl-C)
        local said = case[2] == "INT" and "interrupted" or "stopped by SIGTERM"
        if case[1]:find("--json", 1, true) then
          assert.same({ "interrupted", case[3], said }, { cjson.decode(err).kind, cjson.decode(err).exit,
            cjson.decode(err).message }, err)
        elseif case[1]:find("^delete") then
          assert.matches("interrupted", err)
          assert.is_table(emu:get_bandwidth(id), "nothing deleted")
        else
          assert.equal("eip: " .. said .. "\n", err)
        end
      end
    end)

    it("a reader that goes away (| head -1) stops the batch: the results from then on go to stderr, exit 1",
      function()
      local ids, input = slow_batch(16, 0.2)
      local code, out, err = run("delete-bandwidth --concurrency 4 -", { stdin = input, pipe = "head -1" })
      assert.equal(1, code, err)
      assert.equal(1, #lines(out))
      assert.matches("eip: cannot write to stdout %(.-%): nothing more is sent", err)
      local deleted, not_sent = check_reports(ids, reported(out, err))
      assert.is_true(not_sent > 0 and deleted >= 1, deleted .. " deleted, " .. not_sent .. " not sent")
      assert.matches(string.format("16 bandwidth%%(s%%): %d deleted, 0 missing, 0 failed, %d not sent", deleted,
        not_sent), err)
      assert.matches("eip: standard output failed %(.-%): the results from then on are on stderr: " .. not_sent
        .. " id%(s%) not sent", err)
      -- (their word: no Ctrl-C came, it said "interrupted")
      assert.matches("NOT SENT%s+%S+%s+output lost", err)
      assert.is_nil(err:find("interrupted", 1, true), err)
    end)

    it("a reader of stdout and stderr that goes away (2>&1 | head -1) ends the batch with exit 1, not SIGPIPE",
      function()
      local ids, input = slow_batch(8, 0.2)
      local code, out = run("delete-bandwidth --concurrency 2 -", { stdin = input, pipe = "head -1", pipe_both = true })
      assert.equal(1, code)
      assert.equal(1, #lines(out))
      local deleted = 0
      for _, id in ipairs(ids) do
        if emu:get_bandwidth(id) == nil then deleted = deleted + 1 end
      end
      assert.is_true(deleted >= 1 and deleted < 8, deleted .. " deleted: the batch stopped sending")
    end)

    -- A drain's dry run reads each bandwidth (one GET each): it went on reading for a reader gone,
    -- then SIGPIPE killed it (141, no word).
    it("a drain's dry run whose reader goes away stops reading and exits 1, not by SIGPIPE", function()
      local input = {}
      for i = 1, 12 do input[i] = emu:create_bandwidth{ size = 5, publicip_ids = { "dr" .. i } } end
      emu:inject{ method = "GET", action = "slow", delay = 0.1, times = -1 }
      emu:reset_counters()
      local code, out, err = run("delete-bandwidth --dry-run --drain --charge-mode bandwidth --size 1 -",
        { stdin = table.concat(input, "\n") .. "\n", pipe = "head -1" })
      assert.equal(1, code, err)
      assert.equal(1, #lines(out))
      assert.matches("eip: standard output failed %(.-%): %d+ id%(s%) not read", err)
      assert.is_true(emu:stats().requests < 12, "the reads stopped")
      for _, id in ipairs(input) do assert.equal(1, #emu:get_bandwidth(id).publicip_info) end
    end)

    -- A list of ids on a stdin that does not end (a pipe whose writer waits): Ctrl-C (or
    -- SIGTERM) ends the command at once, nothing sent. Under LuaJIT, whose own handler restarts
    -- the read, the command waited for the writer and ignored Ctrl-C.
    -- Nor while stdin keeps coming: a generator of one id again and again, or of blank lines
    -- (no limit on distinct ids ends those), where no read fails for the signal.
    it("Ctrl-C, SIGTERM or SIGHUP while reading ids from stdin ends at once, nothing sent", function()
      local id = emu:create_bandwidth{ size = 1 }
      for _, sig in ipairs{ { "INT", 130, "held" }, { "TERM", 143, "held" }, { "INT", 130, "yes " .. id },
        { "TERM", 143, "yes ''" }, { "HUP", 129, "yes '# a comment'" } } do
        local fifo = os.tmpname()
        os.remove(fifo)
        assert(host.execute("mkfifo " .. q(fifo)))
        -- (a writer that opens the pipe, writes one id, and holds it open for 30 s; or one that
        -- writes without end, killed after 30 s)
        local writer = os.tmpname()
        local writes = sig[3] == "held" and string.format("printf '%s\\n' >&3; exec sleep 30", id)
          or "exec timeout 30 " .. sig[3] .. " >&3"
        host.execute(string.format("(exec 3>%s; %s) </dev/null >/dev/null 2>&1 & "
          .. "echo $! >%s", q(fifo), writes, q(writer)))
        emu:reset_counters()
        local started = socket.gettime()
        local code, out, err = run("delete-bandwidth -", { input = fifo, signal = function(pid)
          socket.sleep(0.5)
          host.execute("kill -" .. sig[1] .. " " .. pid)
        end })
        host.execute("kill " .. slurp(writer) .. " 2>/dev/null")
        os.remove(fifo)
        assert.equal(sig[2], code, err)
        assert.is_true(socket.gettime() - started < 10, "ended at once, not when the writer did")
        assert.equal("", out)
        assert.matches(({ INT = "interrupted", TERM = "stopped by SIGTERM", HUP = "stopped by SIGHUP" })[sig[1]], err)
        assert.equal(0, emu:stats().requests)
      end
    end)

    -- nohup starts a command with SIGHUP ignored: a hangup must not stop its batch then.
    it("a SIGHUP that nohup ignores does not stop the batch", function()
      local ids, input = slow_batch(6, 0.2)
      local code, _, err = run("delete-bandwidth --concurrency 2 -", { stdin = input, nohup = true,
        signal = signal_after(2, "HUP") })
      assert.equal(0, code, err)
      for _, id in ipairs(ids) do assert.is_nil(emu:get_bandwidth(id)) end
    end)

    it("SIGTERM (and SIGHUP) stop sending as Ctrl-C does: what is in flight finishes, the summary prints", function()
      for _, sig in ipairs{ { "TERM", 143, "eip: stopped by SIGTERM" }, { "HUP", 129, "eip: stopped by SIGHUP" } } do
        emu:reset()
        local ids, input = slow_batch(12, 0.3)
        -- (the probe, then two at a time)
        local code, out, err = run("delete-bandwidth --concurrency 2 -",
          { stdin = input, signal = signal_after(3, sig[1]) })
        assert.equal(sig[2], code, err)
        local deleted, not_sent = check_reports(ids, reported(out, err))
        assert.is_true(not_sent > 0 and deleted >= 1, deleted .. " deleted, " .. not_sent .. " not sent")
        assert.matches(string.format("12 bandwidth%%(s%%): %d deleted, 0 missing, 0 failed, %d not sent", deleted,
          not_sent), err)
        assert.truthy(has(err, sig[3] .. ": " .. not_sent .. " id(s) not sent"), err)
        -- (said when it came, not only at the end: what is in flight may take its whole timeout)
        assert.truthy(has(err, "eip: SIG" .. sig[1] .. ": stopping: nothing more is sent; the requests in flight "
          .. "finish (the signal again aborts them"), err)
      end
    end)

    -- A drain's dry run caught signals (its reads) but heard one only between ids: a SIGTERM
    -- during a hung GET waited for every attempt of it (about 90 s with the defaults).
    it("SIGTERM during a drain's dry run ends its GET at once: 143, the ids not read said", function()
      local ids = { emu:create_bandwidth{ size = 5 }, emu:create_bandwidth{ size = 5 } }
      emu:inject{ method = "GET", action = "slow", delay = 20, times = -1 }
      local started = socket.gettime()
      local code, out, err = run("delete-bandwidth --dry-run --drain --charge-mode bandwidth --size 1 "
        .. "--timeout 10 " .. table.concat(ids, " "), { signal = signal_after(1, "TERM") })
      assert.equal(143, code, err)
      assert.is_true(socket.gettime() - started < 5, "ended at once, not after the GET's attempts")
      assert.equal("", out)
      assert.matches("eip: stopped by SIGTERM: 2 id%(s%) not read", err)
    end)

    it("Ctrl-C outside a batch (a slow show) exits 130, not as an internal error", function()
      local id = emu:create_bandwidth{ size = 5 }
      emu:inject{ method = "GET", action = "slow", delay = 3 }
      for _, json in ipairs{ false, true } do
        local code, _, err = run("show-bandwidth " .. (json and "--json " or "") .. id,
          { signal = signal_after(1, "INT") })
        assert.equal(130, code, err)
        if json then
          assert.same({ ok = false, exit = 130, kind = "interrupted", message = "interrupted" }, cjson.decode(err))
        else
          assert.equal("eip: interrupted\n", err)
        end
        emu:inject{ method = "GET", action = "slow", delay = 3 }
        emu:reset_counters()
      end
    end)

    it("a stdin that cannot be read is an error, not an empty list: exit 2, nothing sent", function()
      for _, input in ipairs{ "/tmp", "&-" } do
        local code, out, err = run("delete-bandwidth -", { input = input })
        assert.equal(2, code, input)
        assert.equal("", out)
        assert.matches("cannot read stdin: ", err, 1, true)
      end
      assert.equal(0, emu:stats().requests)
    end)

    it("a byte order mark before the first id on stdin is not part of it", function()
      local a, b = emu:create_bandwidth{ size = 5 }, emu:create_bandwidth{ size = 5 }
      local code, out, err = run("delete-bandwidth -", { stdin = "\239\187\191" .. a .. "\r\n" .. b .. "\r\n" })
      assert.equal(0, code, err)
      assert.equal(2, #lines(out), out)
      assert.is_nil(emu:get_bandwidth(a))
      assert.is_nil(emu:get_bandwidth(b))
    end)

    it("output that cannot be written (a full disk) is a failure: exit 1, the results on stderr", function()
      emu:create_bandwidth{ size = 5 }
      local code, _, err = run("list-bandwidths", { out = "/dev/full" })
      assert.equal(1, code)
      assert.matches("eip: cannot write to standard output: ", err, 1, true)
      local id = emu:create_bandwidth{ size = 5 }
      code, _, err = run("delete-bandwidth " .. id, { out = "/dev/full" })
      assert.equal(1, code)
      assert.is_nil(emu:get_bandwidth(id))
      assert.truthy(err:find("\ndeleted  " .. id, 1, true), err) -- its line, on stderr
      assert.truthy(has(err, "1 bandwidth(s): 1 deleted"), err)
      -- Under --json the failure is a JSON error object (it was plain text).
      code, _, err = run("list-bandwidths --json", { out = "/dev/full" })
      assert.equal(1, code)
      local e = cjson.decode(err:match("[^\n]+\n?$"))
      assert.same({ false, 1, "output" }, { e.ok, e.exit, e.kind })
    end)

    -- The commands that send nothing (the help, the version, status, regions) did not ignore
    -- SIGPIPE, nor did show-bandwidth when its output was written (at exit, from stdio's buffer):
    -- a reader gone killed them without a word (141), where list-bandwidths said so (exit 1).
    it("a reader gone before any output is a failed write for every command: exit 1, said, not SIGPIPE", function()
      local id = emu:create_bandwidth{ size = 5 }
      for _, args in ipairs{ "--help", "regions", "show-bandwidth " .. id } do
        local code, out, err = run(args, { out = "gone" })
        assert.same({ 1, "" }, { code, out }, args)
        assert.equal("eip: cannot write to standard output: Broken pipe\n", err, args)
      end
      -- (status's JSON is longer than stdio's buffer: written while the command runs)
      local code, _, err = run("status --output json", { out = "gone" })
      local e = cjson.decode(err)
      assert.same({ 1, false, 1, "output" }, { code, e.ok, e.exit, e.kind })
    end)

    -- Started with stdout closed, the first socket would take descriptor 1, and the result lines
    -- would go into the connection to the API.
    it("a closed stdout is refused before anything is sent: exit 2", function()
      local id = emu:create_bandwidth{ size = 5 }
      emu:reset_counters()
      for _, args in ipairs{ "delete-bandwidth " .. id, "list-bandwidths", "show-bandwidth " .. id } do
        local code, _, err = run(args, { out = "&-" })
        assert.equal(2, code, args)
        assert.equal("eip: standard output is closed: nothing was done (send it to /dev/null to discard it)\n", err)
      end
      local code, _, err = run("list-bandwidths --json", { out = "&-" })
      assert.equal(2, code)
      assert.same({ false, 2, "usage" }, { cjson.decode(err).ok, cjson.decode(err).exit, cjson.decode(err).kind })
      assert.equal(0, emu:stats().requests)
      assert.is_not_nil(emu:get_bandwidth(id))
    end)
  end)

  describe("show-bandwidth, list-bandwidths, status", function()
    it("show-bandwidth prints the bandwidth and its EIPs; --json is the API object", function()
      local a = emu:create_bandwidth{ name = "web", size = 10, publicip_ids = { "eip-1", "eip-2" } }
      local code, out = run("show-bandwidth " .. a)
      assert.equal(0, code)
      assert.matches("id +" .. a:gsub("%-", "%%-"), out)
      assert.matches("share_type +WHOLE %(shared%)", out)
      assert.matches("size +10 Mbit/s", out)
      assert.matches("eips +2", out)
      assert.matches("eip%-2 +198%.51%.", out)
      assert.matches("\n  EIP ID +ADDRESS +TYPE\n  eip%-1 ", out)
      code, out = run("show-bandwidth --output text " .. a)
      assert.equal(0, code)
      assert.matches("^id\t" .. a:gsub("%-", "%%-") .. "\n", out)
      -- (the API's values, for cut and awk: as list-bandwidths's text, not the human form's words)
      assert.matches("\nshare_type\tWHOLE\nsize\t10\n", out)
      assert.matches("\neip\teip%-2\t198%.51%.%d+%.%d+\t5_bgp\n", out)
      code, out = run("show-bandwidth --json " .. a)
      assert.equal(0, code)
      local bw = cjson.decode(out)
      assert.equal(a, bw.id)
      assert.equal(2, #bw.publicip_info)
      assert.truthy(has(out, '"bandwidth_rules":[]')) -- an empty list stays a list
    end)

    it("show-bandwidth of an unknown id exits 1 with the error and its advice", function()
      local code, out, err = run("show-bandwidth 3fa1e2b4-1111-4222-8333-444455556666")
      assert.equal(1, code)
      assert.equal("", out)
      assert.truthy(has(err, "404 Not Found (VPC.0306"))
      assert.truthy(has(err, "advice:"))
    end)

    it("list-bandwidths lists every page; --shared keeps WHOLE ones; --json one per line", function()
      for i = 1, 5 do emu:create_bandwidth{ name = "bw" .. i, size = 5 } end
      emu:create_bandwidth{ name = "solo", share_type = "PER", size = 1, publicip_ids = { "solo-eip" } }
      local code, out, err = run("list-bandwidths --page-size 2")
      assert.equal(0, code)
      assert.matches("^ID +TYPE", out)
      assert.matches("6 bandwidth%(s%), 4 request%(s%)", err)
      code, out = run("list-bandwidths --shared --json")
      assert.equal(0, code)
      local l = lines(out)
      assert.equal(5, #l)
      for _, line in ipairs(l) do assert.equal("WHOLE", cjson.decode(line).share_type) end
      code, out = run("list-bandwidths --output text")
      assert.equal(0, code)
      l = lines(out)
      assert.equal(6, #l) -- no header
      assert.matches("^[%x-]+\tPER\t1\t1\tNORMAL\tsolo$", l[6])
    end)

    -- The answer of a show (a bandwidth) or a list (the bandwidth, then the empty page that
    -- ends the listing), injected as JSON text so that it may hold anything.
    local function answer(command, bandwidth_json)
      if command == "show-bandwidth" then
        emu:inject{ method = "GET", status = 200, body = '{"bandwidth":' .. bandwidth_json .. "}" }
      else
        emu:inject{ method = "GET", status = 200, body = '{"bandwidths":[' .. bandwidth_json .. "]}" }
        emu:inject{ method = "GET", status = 200, body = '{"bandwidths":[]}' }
      end
    end

    -- Each way of showing a bandwidth, answered with bandwidth_json (or what it gives for the
    -- command, when a function): check(command, out, err) after each has exited 0.
    local VIEWS = { "show-bandwidth --output table x", "show-bandwidth --output text x",
      "list-bandwidths --output table", "list-bandwidths --output text" }
    local function each_view(bandwidth_json, check)
      for _, c in ipairs(VIEWS) do
        answer(c:match("^%S+"), type(bandwidth_json) == "function" and bandwidth_json(c) or bandwidth_json)
        local code, out, err = run(c)
        assert.equal(0, code, c .. ": " .. err)
        check(c, out, err)
      end
    end

    it("show-bandwidth and list-bandwidths show a field of the wrong type as -, and never crash", function()
      local wrong = '{"id":"x","name":{"a":1},"size":[1,2],"status":null,"share_type":true,'
        .. '"charge_mode":12.5,"publicip_info":[1,"x",{"publicip_id":{},"publicip_address":null,'
        .. '"publicipv6_address":"2001:db8::1","publicip_type":[]},null]}'
      each_view(wrong, function(c, out, err)
        for _, junk in ipairs{ "table: ", "userdata", "nil", "internal error" } do
          assert.is_nil(out:find(junk, 1, true), c .. " wrote " .. junk .. ":\n" .. out)
          assert.is_nil(err:find(junk, 1, true), c .. " wrote " .. junk .. ":\n" .. err)
        end
      end)
      answer("show-bandwidth", wrong)
      local _, out = run("show-bandwidth x")
      assert.matches("\nname +%-\nshare_type +true\nsize +%-\ncharge_mode +12%.5\nstatus +%-\neips +1\n", out)
      assert.matches("\n  %- +2001:db8::1 *\n$", out) -- the one EIP that is an object
      answer("show-bandwidth", wrong)
      _, out = run("show-bandwidth --output text x")
      assert.matches("\neip\t%-\t2001:db8::1\t\n$", out)
      answer("list-bandwidths", wrong)
      _, out = run("list-bandwidths --output text")
      assert.equal("x\ttrue\t-\t1\t-\t-\n", out)
    end)

    -- A publicip_info that is no list says nothing of how many EIPs there are: not "0", and the
    -- JSON (the API's object) keeps what the server sent, not an empty list.
    it("show no EIP count for a publicip_info that is not a list, and keep it in the JSON", function()
      local odd = '{"id":"x","size":5,"publicip_info":{"publicip_id":"e-1","publicip_address":"203.0.113.7"},'
        .. '"bandwidth_rules":{"id":"r-1"}}'
      answer("show-bandwidth", odd)
      local _, out = run("show-bandwidth x")
      assert.matches("\neips +%-\n", out)
      answer("list-bandwidths", odd)
      _, out = run("list-bandwidths --output text")
      assert.equal("x\t-\t5\t-\t-\t-\n", out)
      for _, c in ipairs{ "show-bandwidth --json x", "list-bandwidths --json" } do
        answer(c:match("^%S+"), odd)
        local code
        code, out = run(c)
        assert.equal(0, code)
        local bw = cjson.decode(out)
        assert.equal("203.0.113.7", bw.publicip_info.publicip_address, c)
        assert.equal("r-1", bw.bandwidth_rules.id, c)
      end
      answer("show-bandwidth", '{"id":"x","size":5}')
      _, out = run("show-bandwidth x")
      assert.matches("\neips +%-\n", out)
    end)

    it("show-bandwidth and list-bandwidths print server text without its control characters", function()
      -- (A listing whose id is not an id is refused, and a show of another id than the one asked
      -- for: the ids are plain here, every other field hostile.)
      local function hostile_with(id)
        return '{"id":' .. id .. ',"name":"n\\u001b[31mRED\\r\\nFAKE LINE",'
          .. '"share_type":"WH\\u007fOLE","status":"OK\\t\\u0000","size":5,'
          .. '"publicip_info":[{"publicip_id":"e\\u001b[1m","publicip_address":"1\\r2","publicip_type":"5_\\nbgp"}]}'
      end
      local hostile = hostile_with('"x"')
      each_view(hostile, function(c, out)
        -- The only control characters left are the command's own tabs (text) and line ends.
        local own = c:find("text", 1, true) and "[^\t\n%C]" or "[^\n%C]"
        assert.is_nil(out:find(own), c .. ": " .. string.format("%q", out))
        assert.truthy(has(out, "n [31mRED  FAKE LINE"), c)
      end)
      answer("show-bandwidth", hostile)
      local _, out = run("show-bandwidth --output text x")
      assert.truthy(has(out, "\nshare_type\tWH OLE\n"))
      assert.truthy(has(out, "\nstatus\tOK  \n"))
      assert.truthy(has(out, "\neip\te [1m\t1 2\t5_ bgp\n"))
      -- JSON keeps the server's text, escaped: the line holds no control character.
      for _, c in ipairs{ "show-bandwidth --json x", "list-bandwidths --json" } do
        answer(c:match("^%S+"), hostile)
        local code
        code, out = run(c)
        assert.equal(0, code)
        assert.is_nil(out:find("[^\n%C]"), c .. ": " .. string.format("%q", out))
        local bw = cjson.decode(out:match("^[^\n]*"))
        assert.equal("x", bw.id)
        assert.equal("n\27[31mRED\r\nFAKE LINE", bw.name)
        assert.equal("WH\127OLE", bw.share_type)
      end
      -- C1 controls too: CSI (U+009B, in UTF-8 or as a lone byte) moves a terminal's cursor as
      -- ESC [ does; a name "ok CSI A CSI 2K" erased the row above it (a frozen bandwidth's).
      -- UTF-8 text stays as it is.
      local c1 = '{"id":"y","name":"ok\\u009bA\\u009b2K h\\u00e9 \\u4e2d","share_type":"WHOLE","status":"NORMAL",'
        .. '"size":5,"publicip_info":[]}'
      answer("show-bandwidth", c1)
      local code
      code, out = run("show-bandwidth --output text y")
      assert.equal(0, code)
      assert.is_nil(out:find("\194[\128-\159]"), string.format("%q", out))
      assert.truthy(has(out, "\nname\tok A 2K h\195\169 \228\184\173\n"), string.format("%q", out))
    end)

    -- Columns are counted on the terminal, not in bytes: a Chinese status (4 columns, 6 bytes)
    -- once pulled the name after it 2 columns to the left, and a server's EIP id in Chinese the
    -- address after it. (A name is realistic in Chinese; the status and EIP id are what a
    -- server may send.)
    it("show-bandwidth and list-bandwidths keep their columns for Chinese text", function()
      local bw = '{"id":"x","name":"\\u5171\\u4eab\\u5e26\\u5bbd","share_type":"WHOLE","status":"\\u51bb\\u7ed3",'
        .. '"size":5,"publicip_info":[{"publicip_id":"\\u5f39\\u6027-1","publicip_address":"1.2.3.4",'
        .. '"publicip_type":"5_bgp"}]}'
      answer("list-bandwidths", bw)
      local code, out = run("list-bandwidths")
      assert.equal(0, code)
      local header, row = out:match("^([^\n]*)\n([^\n]*)\n$")
      assert.equal("ID" .. string.rep(" ", 37) .. "TYPE   MBIT/S  EIPS STATUS   NAME", header)
      assert.equal("x" .. string.rep(" ", 38) .. "WHOLE       5     1 \229\134\187\231\187\147" .. string.rep(" ", 5)
        .. "\229\133\177\228\186\171\229\184\166\229\174\189", row)
      answer("show-bandwidth", bw)
      code, out = run("show-bandwidth x")
      assert.equal(0, code)
      assert.matches("\n  EIP ID" .. string.rep(" ", 33) .. "ADDRESS" .. string.rep(" ", 10) .. "TYPE\n  "
        .. "\229\188\185\230\128\167%-1" .. string.rep(" ", 33) .. "1%.2%.3%.4" .. string.rep(" ", 10) .. "5_bgp\n$",
        out)
    end)

    -- A server may echo the token in any field (or key) of its objects: every format prints
    -- them through the client's scrubbing, as errors are.
    it("show-bandwidth and list-bandwidths print no secret a server echoes, in every format", function()
      local token = emu.token
      local echo = cjson.encode{ id = "x", name = "x" .. token, status = "NORMAL " .. token .. "\27[2J",
        share_type = "WHOLE", size = 5, charge_mode = token, [token] = "a key",
        publicip_info = { { publicip_id = "e-" .. token, publicip_address = "1.2.3.4\r\27[2KX" .. token,
          publicip_type = token } } }
      local views = { "show-bandwidth --json x" , "list-bandwidths --json" }
      for _, c in ipairs(VIEWS) do views[#views + 1] = c end
      for _, c in ipairs(views) do
        answer(c:match("^%S+"), echo)
        local code, out, err = run(c)
        assert.equal(0, code, c .. ": " .. hide(err))
        assert.is_nil((out .. err):find(token, 1, true), c .. ": the token was printed")
        assert.is_nil(out:find("\27", 1, true), c .. ": an escape was printed")
        assert.truthy(has(out, "x<redacted>"), c .. ": " .. hide(out))
        if c:find("json") then
          local bw = cjson.decode(out:match("^[^\n]*"))
          assert.same({ "x", "x<redacted>", "a key" }, { bw.id, bw.name, bw["<redacted>"] })
          assert.equal("e-<redacted>", bw.publicip_info[1].publicip_id)
        end
      end
    end)

    it("list-bandwidths refuses a listing whose id is not an id (exit 1), printing none of it", function()
      local token = emu.token
      for _, c in ipairs{ "list-bandwidths", "list-bandwidths --json" } do
        emu:reset_counters()
        answer("list-bandwidths", cjson.encode{ id = "x\27]0;pwned\7" .. token, name = "n" })
        local code, out, err = run(c)
        assert.equal(1, code, c .. ": " .. hide(err))
        assert.equal("", out)
        assert.is_nil(err:find(token, 1, true), c .. ": the token was printed")
        assert.is_nil(err:find("\27", 1, true), c .. ": an escape was printed")
        assert.truthy(has(err, "not an id"), c .. ": " .. hide(err))
        assert.equal(1, emu:stats().requests, c .. ": nothing sent after the page")
        emu:reset() -- the empty page left unanswered
      end
    end)

    it("status without a code lists every documented status", function()
      local code, out = run("status", { env = { OS_AUTH_TOKEN = false } })
      assert.equal(0, code)
      assert.matches("^STATUS +REASON +CLASS +RETRYABLE\n", out)
      assert.matches("\n404 +Not Found +client_error +no\n", out)
      assert.matches("\n503 +Service Unavailable +server_error +yes\n", out)
      code, out = run("status --output text", { env = { OS_AUTH_TOKEN = false } })
      assert.equal(0, code)
      assert.matches("^100\tContinue\tinformational\tfalse\n", out) -- no header
      assert.matches("\n429\tToo Many Requests\tclient_error\ttrue\n", out)
    end)

    it("status prints the table entry, also as JSON, with no credentials needed", function()
      local code, out = run("status 429", { env = { OS_AUTH_TOKEN = false, EIP_ENDPOINT = false } })
      assert.equal(0, code)
      for _, k in ipairs{ "reason +Too Many Requests", "class +client_error", "retryable +true", "advice ",
          "description ", "description_zh ", "seeds " } do
        assert.matches(k, out)
      end
      code, out = run("status --json 504")
      assert.equal(0, code)
      local t = cjson.decode(out)
      assert.equal("Gateway Timeout", t.reason)
      assert.is_true(t.retryable)
      assert.equal(0, emu:stats().requests)
    end)

    it("status CODE prints the error-code table's entry, the code's other statuses too", function()
      local code, out = run("status VPC.0306", { env = { OS_AUTH_TOKEN = false, EIP_ENDPOINT = false } })
      assert.equal(0, code)
      for _, k in ipairs{ "code +VPC%.0306\n", "status +404\n", "kind +not_found\n", "retryable +false\n",
          "message +No Eip bandwidth exist with id%.\n", "advice +The bandwidth does not exist",
          "description_zh +带宽对象不存在\n", "also +404 %(list bandwidths%): " } do
        assert.matches(k, out)
      end
      code, out = run("status --json VPC.0514 500")
      assert.equal(0, code)
      local t = cjson.decode(out)
      assert.same({ "VPC.0514", 500, "backend", true }, { t.code, t.status, t.kind, t.retryable })
      assert.equal(4, #t.variants)
      code, out = run("status --output text vpc.0306") -- the case need not be the table's
      assert.equal(0, code)
      assert.matches("^code\tVPC%.0306\nstatus\t404\n", out)
      local err
      code, out, err = run("status VPC.0307")
      assert.equal(1, code)
      assert.equal("", out)
      assert.equal(string.format("eip: VPC.0307 is not in the error-code table (%d codes; did you mean VPC.0007?)\n",
        #require("eip.core").error_codes()), err)
      code, out, err = run("status VPC.0306 500")
      assert.equal(2, code)
      assert.equal("", out)
      assert.matches("VPC%.0306 does not come with 500 %(it comes with 404%)", err)
      code, out, err = run("status --json NOPE.1")
      assert.equal(1, code)
      assert.equal("", out)
      local e = cjson.decode(err)
      assert.same({ false, 1, "not_found" }, { e.ok, e.exit, e.kind })
      assert.equal(0, emu:stats().requests)
    end)

    it("regions lists the regions the library knows and their endpoints", function()
      local code, out = run("regions", { env = { OS_AUTH_TOKEN = false, EIP_ENDPOINT = false } })
      assert.equal(0, code)
      local l = lines(out)
      assert.matches("^REGION +VPC ENDPOINT +IAM ENDPOINT$", l[1])
      assert.equal(#require("eip").regions() + 1, #l)
      assert.truthy(has(out, "\ncn-north-4 "))
      assert.matches("\ncn%-north%-4 +https://vpc%.cn%-north%-4%.myhuaweicloud%.com +https://iam%.cn%-north%-4%."
        .. "myhuaweicloud%.com\n", out)
      code, out = run("regions --json")
      assert.equal(0, code)
      local first = cjson.decode(lines(out)[1])
      assert.same({ "name", "vpc_endpoint", "iam_endpoint" }, { first.name and "name", first.vpc_endpoint and
        "vpc_endpoint", first.iam_endpoint and "iam_endpoint" })
      code, out = run("regions --output text")
      assert.equal(0, code)
      assert.matches("\ncn%-north%-4\thttps://vpc%.cn%-north%-4%.myhuaweicloud%.com\t", out)
      assert.equal(2, (run("regions extra")))
      assert.equal(0, emu:stats().requests)
    end)

    it("runs from any directory", function()
      local code, out = run("status 204", { cwd = "/tmp" })
      assert.equal(0, code)
      assert.matches("No Content", out)
    end)
  end)

  describe("progress line", function()
    it("is absent when stderr is not a terminal", function()
      local a, b = emu:create_bandwidth{ size = 5 }, emu:create_bandwidth{ size = 5 }
      local code, out, err = run("delete-bandwidth " .. a .. " " .. b)
      assert.equal(0, code)
      assert.matches("^2 bandwidth%(s%): 2 deleted", err) -- the summary only
      assert.is_false(has(out .. err, "\r"))
    end)
  end)

  -- The rock installed for the interpreter of this test run: LuaRocks writes bin/eip as a
  -- wrapper that starts that interpreter (lua5.1, luajit, ...) whatever bin/eip's first line says.
  describe("installed with luarocks for " .. host.lua, function()
    local src, tree

    setup(function()
      src = host.rock_copy() -- never built in the checkout: no eip/core.so or src/*.o left there
      tree = src .. "/tree"
      local log, code = host.run("cd " .. q(src) .. " && " .. host.luarocks .. " make --deps-mode=none --tree "
        .. q(tree) .. " eip-scm-1.rockspec 2>&1")
      assert.equal(0, code, log)
    end)

    teardown(function()
      if src then os.execute("rm -rf " .. q(src)) end
    end)

    -- As the README says for any private tree: its paths come from `luarocks path` (the system
    -- tree needs nothing). A clean environment otherwise, in another directory.
    local function installed(args, env)
      local paths = "eval \"$(" .. host.luarocks .. " --tree " .. q(tree) .. " path)\""
      local vars = { "PATH=/usr/bin:/bin" }
      for k, v in pairs(env or {}) do vars[#vars + 1] = k .. "=" .. q(v) end
      return host.run("cd /tmp && env -i " .. table.concat(vars, " ") .. " sh -c "
        .. q(paths .. " && " .. q(tree .. "/bin/eip") .. " " .. args) .. " 2>&1")
    end

    it("is a wrapper that starts " .. host.lua, function()
      local wrapper = assert(io.open(tree .. "/bin/eip")):read("*a")
      assert.truthy(has(wrapper, "exec '/usr/bin/" .. host.lua .. "'"), wrapper)
    end)

    it("answers --help and deletes a bandwidth, with the tree's modules", function()
      local out, code = installed("--help")
      assert.equal(0, code, out)
      assert.truthy(has(out, "delete-bandwidth"), out)
      local id = emu:create_bandwidth{ size = 5 }
      out, code = installed("delete-bandwidth " .. id, { EIP_ENDPOINT = emu.url, OS_AUTH_TOKEN = emu.token,
        HUAWEICLOUD_SDK_PROJECT_ID = emu.project_id })
      assert.equal(0, code, out)
      assert.matches("deleted +" .. id:gsub("%p", "%%%0") .. " +204 ", out)
      assert.is_nil(emu:get_bandwidth(id))
      -- Which modules did it load? Ask the same tree's Lua where eip.cli comes from.
      local where = host.run("cd /tmp && eval \"$(" .. host.luarocks .. " --tree " .. q(tree) .. " path)\" && "
        .. host.lua .. " -e 'print(debug.getinfo(require(\"eip.cli\").main, \"S\").source)'")
      assert.truthy(has(where, tree .. "/share/lua/" .. host.version .. "/eip/cli/init.lua"), where)
    end)
  end)
end)
