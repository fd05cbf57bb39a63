-- The eip-emulator command (bin/eip-emulator, lua/eip/emulator/cli.lua) run as a process, as a
-- person uses it from a shell: start prints export lines that eval makes work for the eip
-- command (token and AK/SK), create-bandwidth prints ids, status and stop say what they did,
-- and a missing nginx or Lua module is explained.
local cjson = require "cjson"
local nginx = require "spec.support.nginx"
local host = require "spec.support.host"

local ROOT = nginx.capture("pwd")
local EMULATOR = host.lua .. " " .. ROOT .. "/bin/eip-emulator"
local EIP = host.lua .. " " .. ROOT .. "/bin/eip"
local q = nginx.shell_quote

-- Runs a shell script in a clean environment (PATH and HOME only, plus env), from /tmp.
-- Returns the exit status and what it printed (stdout and stderr together).
local function sh(script, env)
  local vars = { "PATH=" .. q(os.getenv("PATH")), "HOME=" .. q(os.getenv("HOME") or "/tmp") }
  for k, v in pairs(env or {}) do vars[#vars + 1] = k .. "=" .. q(v) end
  local f = assert(io.popen("cd /tmp && env -i " .. table.concat(vars, " ") .. " sh -c " .. q(script)
    .. " 2>&1; echo \"rc=$?\""))
  local out = f:read("*a")
  f:close()
  local code = tonumber(out:match("rc=(%d+)\n$"))
  return code, out:gsub("rc=%d+\n$", "")
end

describe("eip-emulator command", function()
  local dir

  before_each(function()
    dir = nginx.capture("mktemp -d") .. "/emu"
  end)

  after_each(function()
    sh(EMULATOR .. " stop --dir " .. q(dir))
    os.execute("rm -rf " .. q(dir:gsub("/emu$", "")))
  end)

  it("--help exits 0 and names every command; no command is a usage error", function()
    local code, out = sh(EMULATOR .. " --help")
    assert.equal(0, code)
    for _, c in ipairs{ "start", "create-bandwidth", "status", "stop", "libnginx-mod-http-lua" } do
      assert.matches(c, out, 1, true)
    end
    code, out = sh(EMULATOR .. " create-bandwidth --help")
    assert.equal(0, code)
    assert.matches("usage: eip-emulator create-bandwidth", out, 1, true)
    assert.equal(2, (sh(EMULATOR)))
    code, out = sh(EMULATOR .. " strat")
    assert.equal(2, code)
    assert.matches("did you mean start?", out, 1, true)
    code, out = sh(EMULATOR .. " create-bandwidth --eip 2")
    assert.equal(2, code)
    assert.matches("did you mean --eips?", out, 1, true)
    -- A word quoted in part is cut between two UTF-8 characters, not inside one (30 bytes: "x"
    -- and nine whole characters, not half of the tenth).
    local word = "x" .. ("\228\184\173"):rep(20)
    for _, cmd in ipairs{ " " .. q(word), " status " .. q(word) } do
      code, out = sh(EMULATOR .. cmd)
      assert.equal(2, code)
      assert.matches('"x' .. ("\228\184\173"):rep(9) .. '"', out, 1, true)
    end
  end)

  it("start prints export lines: after eval, the eip command works with the token and with AK/SK", function()
    local code, out = sh(EMULATOR .. " start --dir " .. q(dir))
    assert.equal(0, code, out)
    local endpoint = out:match("\nexport EIP_ENDPOINT=(http://127%.0%.0%.1:%d+)\n")
    assert.is_string(endpoint, out)
    assert.matches("\nexport OS_AUTH_TOKEN=%S+\n", out)
    assert.matches("\nexport HUAWEICLOUD_SDK_PROJECT_ID=%x+\n", out)
    local aksk = out:match("\n# (export HUAWEICLOUD_SDK_AK=%S+ HUAWEICLOUD_SDK_SK=%S+)\n")
    assert.is_string(aksk, out)
    -- the stop it names finds this one: a plain `stop` would look in ~/.eip-emulator
    assert.truthy(out:find("stop it with: eip-emulator stop --dir " .. dir .. "\n", 1, true), out)
    assert.matches('username = "emu%-operator"', out)
    local session = string.format([[
      set -e
      eval "$(%s start --dir %s 2>/dev/null)"  # it already runs: the same lines again
      id=$(%s create-bandwidth --dir %s --eips 2 --name web)
      %s show-bandwidth --json "$id"
      %s
      unset OS_AUTH_TOKEN
      %s list-bandwidths --json
    ]], EMULATOR, q(dir), EMULATOR, q(dir), EIP, aksk, EIP)
    code, out = sh(session)
    assert.equal(0, code, out)
    local shown, listed = out:match("^(%b{})\n(%b{})\n1 bandwidth%(s%), %d+ request%(s%)\n$")
    assert.is_string(shown, out)
    local bw = cjson.decode(shown)
    assert.same({ "web", "WHOLE", 2 }, { bw.name, bw.share_type, #bw.publicip_info })
    assert.equal(bw.id, cjson.decode(listed).id) -- read again, signed with AK/SK this time
  end)

  it("start when it already runs prints the same lines again; status and stop say what they see", function()
    local code, first = sh(EMULATOR .. " start --dir " .. q(dir))
    assert.equal(0, code)
    local again
    code, again = sh(EMULATOR .. " start --dir " .. q(dir) .. " 2>/dev/null")
    assert.equal(0, code)
    assert.equal(first, again)
    local out
    code, out = sh(EMULATOR .. " status --dir " .. q(dir))
    assert.equal(0, code)
    assert.matches("^running at http://127%.0%.0%.1:%d+ %(pid %d+", out)
    assert.matches("0 bandwidth%(s%)", out)
    code, out = sh(EMULATOR .. " stop --dir " .. q(dir))
    assert.equal(0, code)
    assert.matches("^stopped the emulator in ", out)
    code, out = sh(EMULATOR .. " status --dir " .. q(dir))
    assert.equal(3, code)
    assert.matches("^not running", out)
    code, out = sh(EMULATOR .. " stop --dir " .. q(dir))
    assert.equal(0, code)
    assert.matches("^not running: nothing to stop", out)
  end)

  -- d as an extended regular expression (pgrep's) that matches it alone.
  local function ere(d)
    return (d:gsub("[%^$.*+?()%[%]{}|\\]", "\\%0"))
  end

  -- The masters running with dir as their prefix, found by their command line (one a stop cannot
  -- see, its pid file overwritten by another start's, included).
  local function masters_of(d)
    local pattern = "nginx: master process .* -p " .. ere(d) .. "/ "
    local pids = {}
    for pid in nginx.capture("pgrep -f -- " .. q(pattern)):gmatch("%d+") do pids[#pids + 1] = tonumber(pid) end
    return pids
  end

  local function is_link(path) -- (os.execute's result differs between Lua 5.1 and 5.2+)
    return nginx.capture("test -L " .. q(path) .. " && echo y") == "y"
  end

  -- Two starts in one directory at once: one starts the emulator, the other waits for it (the
  -- directory's start lock), then prints the same lines as a start of one that runs. Three pairs:
  -- without the lock, each pair would start two masters (or fail) more often than not.
  it("two starts at once in one directory start one emulator, which stop stops whole #once", function()
    local dirs = { dir .. "-1", dir .. "-2", dir .. "-3" }
    finally(function() -- (what a start the lock did not hold back left, stop cannot see)
      for _, d in ipairs(dirs) do
        for _, pid in ipairs(masters_of(d)) do nginx.terminate(pid) end
      end
    end)
    local script = {}
    for _, d in ipairs(dirs) do
      for _, w in ipairs{ "a", "b" } do
        script[#script + 1] = string.format("(%s start --dir %s >%s 2>%s; echo $? >%s) &", EMULATOR, q(d),
          q(d .. "." .. w), q(d .. "." .. w .. ".err"), q(d .. "." .. w .. ".rc"))
      end
    end
    script[#script + 1] = "wait"
    sh(table.concat(script, "\n"))
    for _, d in ipairs(dirs) do
      local a, b = nginx.read_file(d .. ".a"), nginx.read_file(d .. ".b")
      local said = nginx.read_file(d .. ".a.err") .. nginx.read_file(d .. ".b.err")
      assert.same({ "0\n", "0\n" }, { nginx.read_file(d .. ".a.rc"), nginx.read_file(d .. ".b.rc") }, said)
      assert.matches("\nexport EIP_ENDPOINT=http://127%.0%.0%.1:%d+\n", a)
      assert.equal(a, b)
      assert.equal("eip-emulator: already running in " .. d .. "\n", said)
      assert.equal(1, #masters_of(d))
    end
    for _, d in ipairs(dirs) do
      local code, out = sh(EMULATOR .. " stop --dir " .. q(d))
      assert.equal(0, code, out)
      assert.matches("^stopped the emulator in ", out)
      assert.equal("", nginx.capture("pgrep -f -- " .. q(ere(d))), d)
      assert.is_false(is_link(d .. "/lua-eip.starting"), "the lock was left")
    end
  end)

  -- A start killed holding the lock leaves it: one whose process is gone (or is another now, its
  -- pid reused: a start time of its that differs) is taken over at once, not waited for; stop
  -- removes such a lock too, and leaves alone one whose process runs.
  it("a lock a killed start left is taken over at once; stop removes it, not a live one", function()
    local lock = dir .. "/lua-eip.starting"
    local function lock_to(holder) -- (what a start writes: its pid and start time)
      os.execute("mkdir -p " .. q(dir) .. " && rm -f " .. q(lock) .. " && ln -s " .. q(holder) .. " " .. q(lock))
    end
    local live = nginx.identity(nginx.MY_PID) -- (this process: its pid and start time)
    local dead = nginx.capture("sh -c 'echo $$'") .. " " .. live:match(" (%d+)$")
    local socket = require "socket"
    for _, stale in ipairs{ dead, nginx.MY_PID .. " 1" } do
      lock_to(stale)
      local t0 = socket.gettime()
      local code, out = sh(EMULATOR .. " start --dir " .. q(dir))
      assert.equal(0, code, out)
      -- (a wait for the holder would last 10 s, then fail; a start takes well under 8 s however loaded)
      assert.is_true(socket.gettime() - t0 < nginx.START_TIMEOUT + nginx.STOP_TIMEOUT,
        "it waited for a holder that is gone")
      assert.is_false(is_link(lock), "the lock was left")
      assert.matches("^stopped the emulator in ", (select(2, sh(EMULATOR .. " stop --dir " .. q(dir)))))
    end
    for _, holder in ipairs{ live, dead } do
      lock_to(holder)
      nginx.write_file(dir .. "/lua-eip.owner", "") -- (a directory stop knows as the emulator's)
      assert.equal(0, (sh(EMULATOR .. " stop --dir " .. q(dir))))
      assert.equal(holder == live, is_link(lock), holder)
    end
    os.remove(lock)
  end)

  -- A start killed after its nginx came up, before it wrote the port file (what it writes last,
  -- holding the lock), leaves that nginx running with no port file: the next start, which then
  -- holds the lock, knows it for the killed start's, stops it and starts anew; status says it
  -- is no emulator that answers, and what ends it.
  it("an nginx a killed start left without its port file is replaced by the next start", function()
    local code, out = sh(EMULATOR .. " start --dir " .. q(dir))
    assert.equal(0, code, out)
    local left = assert(tonumber(nginx.read_file(dir .. "/nginx.pid")))
    os.remove(dir .. "/emulator.port")
    code, out = sh(EMULATOR .. " status --dir " .. q(dir))
    assert.equal(3, code, out)
    assert.matches("pid " .. left, out, 1, true)
    code, out = sh(EMULATOR .. " start --dir " .. q(dir))
    assert.equal(0, code, out)
    assert.matches("\nexport EIP_ENDPOINT=http://127%.0%.0%.1:%d+\n", out)
    assert.is_false(nginx.alive(left), "the nginx the killed start left still runs")
    assert.same({ tonumber(nginx.read_file(dir .. "/nginx.pid")) }, masters_of(dir))
    assert.equal(0, (sh(EMULATOR .. " status --dir " .. q(dir))))
    -- The lock of a start killed before it marked the directory its own: stop removes it too.
    sh(EMULATOR .. " stop --dir " .. q(dir))
    local dead = nginx.capture("sh -c 'echo $$'") .. " " .. nginx.identity(nginx.MY_PID):match(" (%d+)$")
    os.execute("ln -s " .. q(dead) .. " " .. q(dir .. "/lua-eip.starting"))
    assert.is_false(nginx.file_exists(dir .. "/lua-eip.owner"))
    code, out = sh(EMULATOR .. " stop --dir " .. q(dir))
    assert.equal(0, code, out)
    assert.is_false(is_link(dir .. "/lua-eip.starting"), "stop left the lock of a killed start")
  end)

  it("create-bandwidth prints one id per bandwidth; --dedicated makes a PER one", function()
    assert.equal(0, (sh(EMULATOR .. " start --dir " .. q(dir))))
    local code, out = sh(EMULATOR .. " create-bandwidth --count 3 --size 5 --dir " .. q(dir))
    assert.equal(0, code, out)
    local ids = {}
    for id in out:gmatch("[^\n]+") do ids[#ids + 1] = id end
    assert.equal(3, #ids)
    for _, id in ipairs(ids) do assert.matches("^%x+%-%x+%-%x+%-%x+%-%x+$", id) end
    code, out = sh(EMULATOR .. " create-bandwidth --dedicated --eips 1 --dir " .. q(dir))
    assert.equal(0, code, out)
    local emu = require("spec.support.emulator").attach(dir)
    local per = emu:get_bandwidth(out:match("^(%S+)\n$"))
    assert.same({ "PER", 1 }, { per.share_type, #per.publicip_info })
    assert.equal(5, emu:get_bandwidth(ids[1]).size)
    assert.equal(4, emu:stats().bandwidths)
    -- A dedicated bandwidth is its EIP's own, as in the cloud (it never shows one without).
    code, out = sh(EMULATOR .. " create-bandwidth --dedicated --size 1 --dir " .. q(dir))
    assert.equal(0, code, out)
    per = emu:get_bandwidth(out:match("^(%S+)\n$"))
    assert.same({ "PER", 1 }, { per.share_type, #per.publicip_info })
    for _, args in ipairs{ "--eips -1", "--count 0", "--size 0", "--dedicated --eips 2", "--dedicated --eips 0",
        "extra" } do
      assert.equal(2, (sh(EMULATOR .. " create-bandwidth " .. args .. " --dir " .. q(dir))), args)
    end
  end)

  -- What it seeds is what the API's create could have made: a name of 1-64 characters of the
  -- documented set, a shared size of 5-2000 Mbit/s (a dedicated one from 1), as the API itself
  -- answers 400 EIP.7901 otherwise. A refusal is a usage error naming the option; nothing is made.
  it("create-bandwidth refuses a name or a size the API would refuse (exit 2, nothing made)", function()
    assert.equal(0, (sh(EMULATOR .. " start --dir " .. q(dir))))
    local long = ("n"):rep(100) .. " !"
    for _, case in ipairs{ { "--name ''", "--name" }, { "--name " .. q(long), "--name" },
        { "--name 'a b'", "--name" }, { "--name " .. q(("中"):rep(65)), "--name" },
        { "--size 2", "--size" }, { "--size 4 --eips 1", "--size" }, { "--size 2001", "--size" },
        { "--dedicated --size 2001", "--size" }, { "--count 3 --size 2", "--size" } } do
      local code, out = sh(EMULATOR .. " create-bandwidth " .. case[1] .. " --dir " .. q(dir))
      assert.equal(2, code, case[1] .. ": " .. out)
      assert.matches("^eip%-emulator: " .. case[2]:gsub("%-", "%%-") .. " must be ", out)
    end
    local emu = require("spec.support.emulator").attach(dir)
    assert.equal(0, emu:stats().bandwidths)
    -- The edges are taken: 64 Chinese characters, 5 Mbit/s shared, 1 Mbit/s dedicated.
    for _, ok in ipairs{ "--name " .. q(("中"):rep(64)) .. " --size 5", "--name a.b_c-1 --size 2000",
        "--dedicated --size 1 --eips 1" } do
      local code, out = sh(EMULATOR .. " create-bandwidth " .. ok .. " --dir " .. q(dir))
      assert.equal(0, code, ok .. ": " .. out)
    end
    local made = emu:bandwidths()
    assert.same({ ("中"):rep(64), 5, "WHOLE" }, { made[1].name, made[1].size, made[1].share_type })
    assert.same({ 1, "PER" }, { made[3].size, made[3].share_type })
  end)

  it("start on a port another emulator holds fails, and that one keeps running", function()
    local code, out = sh(EMULATOR .. " start --dir " .. q(dir))
    assert.equal(0, code, out)
    local port = assert(out:match("\nexport EIP_ENDPOINT=http://127%.0%.0%.1:(%d+)\n"), out)
    local other = dir .. "2"
    finally(function()
      sh(EMULATOR .. " stop --dir " .. q(other))
      os.execute("rm -rf " .. q(other))
    end)
    code, out = sh(EMULATOR .. " start --port " .. port .. " --dir " .. q(other))
    assert.equal(1, code, out)
    assert.matches("Address already in use", out, 1, true)
    assert.matches("^eip%-emulator: cannot start: eip emulator: nginx did not start", out) -- (no Lua position)
    assert.is_nil(out:find("export EIP_ENDPOINT", 1, true), out)
    code, out = sh(EMULATOR .. " status --dir " .. q(other))
    assert.equal(3, code, out)
    code, out = sh(EMULATOR .. " status --dir " .. q(dir))
    assert.equal(0, code, out)
  end)

  -- Its store is finite: what does not fit is refused, and nothing it holds is forgotten (the
  -- bandwidths made before, the token start printed).
  it("create-bandwidth beyond what the store holds stops with a plain message; nothing is lost", function()
    assert.equal(0, (sh(EMULATOR .. " start --dir " .. q(dir))))
    local code, out = sh(EMULATOR .. " create-bandwidth --count 40 --eips 10000 --dir " .. q(dir))
    assert.equal(1, code, out:sub(-300))
    local ids = {}
    for id in out:gmatch("(%x+%-%x+%-%x+%-%x+%-%x+)\n") do ids[#ids + 1] = id end
    assert.is_true(#ids > 0 and #ids < 40, out:sub(-300))
    assert.equal(string.format("eip-emulator: cannot create bandwidth %d of 40: the emulator's store is full: "
      .. "this bandwidth and its 10000 EIP(s) do not fit; reset it, or seed fewer or smaller bandwidths "
      .. "(%d created: their ids above)\n", #ids + 1, #ids), out:match("eip%-emulator: .*$"))
    local emulator = require "spec.support.emulator"
    local emu = emulator.attach(dir)
    assert.equal(#ids, emu:stats().bandwidths)
    local resp = emulator.http{ port = emu.port, path = "/v1/" .. emu.project_id .. "/bandwidths/" .. ids[1],
      headers = { ["X-Auth-Token"] = emu.token } }
    assert.equal(200, resp.status)
  end)

  it("create-bandwidth without a running emulator says so (exit 1)", function()
    local code, out = sh(EMULATOR .. " create-bandwidth --dir " .. q(dir))
    assert.equal(1, code)
    assert.matches("no emulator runs in .*eip%-emulator start", out)
  end)

  it("uses $EIP_EMULATOR_DIR, else ~/.eip-emulator", function()
    local code, out = sh(EMULATOR .. " start", { EIP_EMULATOR_DIR = dir })
    assert.equal(0, code, out)
    assert.truthy(out:find("stop it with: eip-emulator stop\n", 1, true), out) -- it looks there
    code, out = sh(EMULATOR .. " status", { EIP_EMULATOR_DIR = dir })
    assert.equal(0, code, out)
    assert.matches("files in " .. dir, out, 1, true)
    sh(EMULATOR .. " stop", { EIP_EMULATOR_DIR = dir })
    local home = dir:gsub("/emu$", "")
    code, out = sh(EMULATOR .. " start >/dev/null && " .. EMULATOR .. " status && " .. EMULATOR .. " stop",
      { HOME = home })
    assert.equal(0, code, out)
    assert.matches("files in " .. home .. "/.eip-emulator", out, 1, true)
  end)

  it("explains what it needs when nginx or its Lua module is missing, and leaves nothing running", function()
    local code, out = sh(EMULATOR .. " start --dir " .. q(dir), { EIP_NGINX = "/nonexistent/nginx" })
    assert.equal(1, code)
    assert.matches("EIP_NGINX=/nonexistent/nginx is not an executable file", out, 1, true)
    assert.matches("apt-get install\nnginx libnginx-mod-http-lua lua-resty-core lua-cjson lua-socket", out, 1, true)
    code, out = sh(EMULATOR .. " start --dir " .. q(dir), { EIP_NGINX_MODULES = "/nonexistent" })
    assert.equal(1, code)
    assert.matches("ngx_http_lua_module.so not found", out, 1, true)
    code = sh(EMULATOR .. " status --dir " .. q(dir))
    assert.equal(3, code)
  end)

  it("without lua-cjson says what to install, with no traceback", function()
    local code, out = sh(EMULATOR .. " start --dir " .. q(dir), { LUA_CPATH = "/nonexistent/?.so" })
    assert.equal(1, code)
    assert.equal("eip-emulator: lua-cjson cannot be loaded for " .. _VERSION .. " (module 'cjson.safe' not found)\n"
      .. "install it: apt-get install lua-cjson (Debian), or luarocks install lua-cjson\n", out)
    assert.equal(3, (sh(EMULATOR .. " status --dir " .. q(dir))))
  end)

  it("stop, and a start that fails, remove or signal nothing the emulator did not make", function()
    -- A directory of the user's: a tmp/ of theirs, a config of theirs.
    os.execute("mkdir -p " .. q(dir .. "/tmp"))
    nginx.write_file(dir .. "/tmp/notes.txt", "precious\n")
    local code, out = sh("cd " .. q(dir) .. " && " .. EMULATOR .. " stop --dir .")
    assert.equal(0, code, out)
    assert.matches("^not running: nothing to stop", out)
    assert.equal("precious\n", nginx.read_file(dir .. "/tmp/notes.txt"))
    nginx.write_file(dir .. "/nginx.conf", "events {}\n")
    code, out = sh(EMULATOR .. " start --dir " .. q(dir))
    assert.equal(1, code, out)
    assert.matches("holds a [%w.]+ it did not write: give another directory", out)
    assert.is_nil(out:find("apt-get", 1, true), out) -- no package is missing
    assert.is_false(is_link(dir .. "/lua-eip.starting"), "a refused start left its lock")
    -- A file of the lock's name that is no lock (of theirs) is refused at once, and kept.
    os.remove(dir .. "/nginx.conf")
    nginx.write_file(dir .. "/lua-eip.starting", "mine\n")
    code, out = sh(EMULATOR .. " start --dir " .. q(dir))
    assert.equal(1, code, out)
    assert.matches("holds a lua-eip.starting it did not write: give another directory", out, 1, true)
    assert.equal("mine\n", nginx.read_file(dir .. "/lua-eip.starting"))
    nginx.write_file(dir .. "/nginx.conf", "events {}\n")
    code, out = sh(EMULATOR .. " stop --dir " .. q(dir))
    assert.equal(0, code, out)
    assert.equal("precious\n", nginx.read_file(dir .. "/tmp/notes.txt"))
    assert.equal("events {}\n", nginx.read_file(dir .. "/nginx.conf"))
    for _, command in ipairs{ "start", "stop", "status", "create-bandwidth" } do
      code, out = sh(EMULATOR .. " " .. command .. " --dir ''")
      assert.equal(2, code, command .. ": " .. out)
      assert.matches("--dir must not be empty", out, 1, true)
    end
  end)

  it("knows its nginx through any spelling of its directory, and refuses symbolic links in it", function()
    os.execute("mkdir -p " .. q(dir) .. " && ln -s " .. q(dir) .. " " .. q(dir .. "-link"))
    finally(function() os.remove(dir .. "-link") end)
    local code, out = sh(EMULATOR .. " start --dir " .. q(dir .. "-link"))
    assert.equal(0, code, out)
    local pid = assert(tonumber(nginx.read_file(dir .. "/nginx.pid")))
    -- (run in its directory, not in the caller's /tmp: nginx's LuaJIT looks for modules in ./ first)
    assert.equal(nginx.absolute(dir), nginx.capture("readlink /proc/" .. pid .. "/cwd"))
    code, out = sh(EMULATOR .. " status --dir " .. q(dir))
    assert.equal(0, code, out)
    code, out = sh(EMULATOR .. " stop --dir " .. q(dir))
    assert.equal(0, code, out)
    assert.matches("^stopped the emulator in ", out)
    assert.truthy(nginx.wait_until(require("socket").gettime() + 5, function() return not nginx.alive(pid) end))
    -- A link named as one of its files, dangling or not, would have it write or remove elsewhere.
    local elsewhere = dir .. "-elsewhere"
    finally(function() os.execute("rm -rf " .. q(elsewhere)) end)
    os.execute("mkdir -p " .. q(elsewhere))
    for _, name in ipairs{ "nginx.conf", "tmp", "error.log" } do
      os.remove(dir .. "/" .. name) -- (the log the instance above left)
      os.execute("ln -s " .. q(elsewhere .. "/" .. name) .. " " .. q(dir .. "/" .. name))
      code, out = sh(EMULATOR .. " start --dir " .. q(dir))
      assert.equal(1, code, out)
      assert.matches(name .. " is a symbolic link: give another directory", out, 1, true)
      assert.truthy(os.execute("test -L " .. q(dir .. "/" .. name)), name .. ": the link was removed")
      assert.is_nil(nginx.read_file(elsewhere .. "/" .. name), name .. ": written through the link")
      os.remove(dir .. "/" .. name)
    end
  end)

  it("refuses a directory another user could write in: it could change the config before nginx reads it", function()
    -- (another user who made /tmp/emu first, or can rename it, swaps nginx.conf between its
    -- writing and nginx reading it: that user's code then runs as whoever started the emulator)
    os.execute("mkdir -p " .. q(dir) .. " && chmod 777 " .. q(dir))
    local code, out = sh(EMULATOR .. " start --dir " .. q(dir))
    assert.equal(1, code, out)
    assert.matches(dir .. " can be written by other users (mode 777): give a directory only you can write", out, 1,
      true)
    assert.is_nil(nginx.read_file(dir .. "/nginx.conf"))
    assert.is_nil(nginx.read_file(dir .. "/lua-eip.owner"))
    local function refusal()
      local ok, err = pcall(nginx.with_start_lock, dir, "x", function(abs) return abs end)
      return not ok and err or nil, ok and err or nil
    end
    -- Inside a directory others can write, without the sticky bit /tmp has: they could move it away.
    local parent = dir:gsub("/emu$", "")
    os.execute("chmod 755 " .. q(dir) .. " && chmod 777 " .. q(parent))
    assert.matches(parent .. ", which other users can write (mode 777, owner uid ", refusal(), 1, true)
    -- With the sticky bit, and a directory its user's group may write (umask 002 makes one, the
    -- group the user's own), it is taken.
    os.execute("chmod 1777 " .. q(parent) .. " && chmod 775 " .. q(dir) .. " && chgrp \"$(id -g)\" " .. q(dir))
    assert.equal(dir, select(2, refusal()))
    if nginx.capture("id -u") == "0" then -- (only root gives a directory away)
      os.execute("chmod 755 " .. q(dir) .. " && chown nobody " .. q(dir))
      assert.matches(dir .. " belongs to another user (uid ", refusal(), 1, true)
    end
  end)

  it("a pid file whose process is no longer its nginx (a crash, the pid reused) is never signalled", function()
    local code, out = sh(EMULATOR .. " start --dir " .. q(dir))
    assert.equal(0, code, out)
    local pid = assert(tonumber(nginx.read_file(dir .. "/nginx.pid")))
    -- The instance dies without a stop; another process gets the number the pid file names.
    os.execute("pkill -KILL -P " .. pid .. "; kill -KILL " .. pid)
    assert.truthy(nginx.wait_until(require("socket").gettime() + 5, function() return not nginx.alive(pid) end))
    local f = assert(io.popen("sleep 60 >/dev/null 2>&1 & echo $!"))
    local other = f:read("*l")
    f:close()
    finally(function() os.execute("kill " .. other .. " 2>/dev/null") end)
    nginx.write_file(dir .. "/nginx.pid", other .. "\n")
    code, out = sh(EMULATOR .. " status --dir " .. q(dir))
    assert.equal(3, code, out)
    code, out = sh(EMULATOR .. " stop --dir " .. q(dir))
    assert.equal(0, code, out)
    assert.matches("^not running", out)
    assert.truthy(nginx.alive(tonumber(other)), "stop signalled another process")
    code, out = sh(EMULATOR .. " start --dir " .. q(dir)) -- and a start starts anew
    assert.equal(0, code, out)
    assert.truthy(nginx.alive(tonumber(other)))
  end)

  it("lives in a directory whose path has spaces; --port is checked even while it runs", function()
    local spaced = dir .. "/my files"
    local code, out = sh(EMULATOR .. " start --dir " .. q(spaced))
    finally(function() sh(EMULATOR .. " stop --dir " .. q(spaced)) end)
    assert.equal(0, code, out)
    assert.truthy(out:find("stop it with: eip-emulator stop --dir " .. q(spaced) .. "\n", 1, true), out)
    code, out = sh(EMULATOR .. " status --dir " .. q(spaced))
    assert.equal(0, code, out)
    code, out = sh(EMULATOR .. " start --port 70000 --dir " .. q(spaced))
    assert.equal(2, code, out)
    assert.matches("--port must be between 1 and 65535", out, 1, true)
    code, out = sh(EMULATOR .. " start --port 1 --dir " .. q(spaced) .. " >/dev/null")
    assert.equal(0, code, out)
    assert.matches("already running in .* on port %d+, not 1\n", out)
    -- The Lua emulator, with a TMPDIR of that kind.
    code, out = sh(host.lua .. " -e " .. q('local e = require("eip.emulator").start(); print(e.url); e:stop()'),
      { TMPDIR = spaced, LUA_PATH = ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;;",
        LUA_CPATH = ROOT .. "/" .. host.cpath .. ";;" })
    assert.equal(0, code, out)
    assert.matches("^http://127%.0%.0%.1:%d+\n$", out)
  end)
end)
