-- A host name whose lookup never ends (a DNS server gone silent) costs a call its timeout, not
-- the resolver's: libcurl 7.88 used to wait for its resolver thread when it cleaned a timed-out
-- transfer up (glibc: 5 s x 2 tries, far past a timeout of 1 s), in a single call and for each
-- id of a batch through the C multi. See CURLOPT_QUICK_EXIT in src/http.c.
--
-- The silent server is build/slowdns.so (test/c/slowdns.c), preloaded into a child interpreter
-- (this run's, with its core): its getaddrinfo sleeps 6 s for names ending in ".slow.test".
-- No network, root or /etc/resolv.conf of the machine is involved.
local host = require "spec.support.host"

local SHIM = "build/slowdns.so"

-- Runs `script` in a child interpreter with the shim preloaded (`env`: more assignments before
-- it): its output and exit status.
local function run(script, env)
  assert(io.open(SHIM, "rb"), SHIM .. " is missing: make test builds it (make " .. SHIM .. ")"):close()
  return host.run_script(script, (env or "") .. " LD_PRELOAD=" .. host.quote(host.ROOT .. "/" .. SHIM) .. " "
    .. host.lua_command)
end

-- The client of both cases: the endpoint's name never resolves; one attempt of 1 s.
local CLIENT = [[
  local eip = require "eip"
  local core = require "eip.core"
  local c = eip.new{ endpoint = "http://x.slow.test:9", project_id = "0a1b2c3d4e5f60718293a4b5c6d7e8f9",
    token = "x", timeout = 1, max_attempts = 1, metadata_url = false }
  local function show(label, e, took)
    print(string.format("%s kind=%s reason=%s unsent=%s took=%.2f error=%s", label, tostring(e.kind),
      tostring(e.reason), tostring(e.unsent), took, tostring(e)))
  end
]]

-- The fields of a line `show` printed.
local function parse(out, label)
  local line = out:match(label .. " ([^\n]*)")
  assert.is_string(line, "no line " .. label .. " in:\n" .. out)
  return {
    kind = line:match("kind=(%S+)"), reason = line:match("reason=(%S+)"), unsent = line:match("unsent=(%S+)"),
    took = tonumber(line:match("took=(%S+)")), line = line,
  }
end

describe("a host name whose lookup never ends (libcurl transport)", function()
  it("ends each call and each id of a batch at its timeout, as a transport timeout not sent", function()
    local out, code = run(CLIENT .. [[
      local t0 = core.monotime()
      local ok, err = pcall(c.delete_bandwidth, c, "0a6011db-8a63-4922-8878-e491cd613a85")
      assert(not ok and eip.is_error(err), tostring(err))
      show("single", err, core.monotime() - t0)
      -- a batch goes through the C multi; a timeout proves nothing of the credentials, so its
      -- ids go one at a time: two timeouts, one after the other
      t0 = core.monotime()
      local results = c:delete_bandwidths{ "1a6011db-8a63-4922-8878-e491cd613a85",
        "2a6011db-8a63-4922-8878-e491cd613a85" }
      local took = core.monotime() - t0
      for i, r in ipairs(results) do show("batch" .. i, r, took) end
    ]])
    assert.equal(0, code, out)
    local single = parse(out, "single")
    assert.equal("transport", single.kind, single.line)
    assert.equal("timeout", single.reason, single.line)
    assert.equal("true", single.unsent, single.line)
    assert.matches("Resolving timed out after %d+ milliseconds %(curl 28%) %[not sent%]", single.line)
    -- (the resolver's 6 s before the fix)
    assert.is_true(single.took < 2.5, single.line)
    for i = 1, 2 do
      local r = parse(out, "batch" .. i)
      assert.equal("transport", r.kind, r.line)
      assert.equal("timeout", r.reason, r.line)
      assert.equal("true", r.unsent, r.line)
      assert.matches("%(curl 28%) %[not sent%]", r.line)
      -- (12 s before the fix)
      assert.is_true(r.took < 3.5, r.line)
    end
  end)
end)

-- A single call's first caught Ctrl-C (eip.core.catch_interrupts: the eip command's drain, a
-- script of the user's) says stop: nothing more goes out. A request still waiting for its
-- connection when it came used to go out once the connection was made (only a batch's stop held
-- such a request back), and its bandwidth was deleted after the user said stop.
describe("a single call still connecting when the first Ctrl-C comes (libcurl transport)", function()
  local fixture = require "spec.support.fixture"
  local fx = fixture.emulator()
  local emu
  setup(function() emu = fx.start() end)
  teardown(fx.stop)

  -- abort_at 2 (the default: a drain's calls): the first Ctrl-C says stop, and the request is
  -- held back as it would go out. abort_at 1 (the eip command's single delete, show, list): the
  -- first aborts, while nothing had gone out: said as not sent, not as "may have acted".
  for _, abort_at in ipairs{ 2, 1 } do
    it("is held back: nothing is sent, and the error says so (abort_at " .. abort_at .. ")", function()
      local id = emu:create_bandwidth{ size = 5 }
      emu:reset_counters()
      -- The lookup of x.late.test takes 2 s, then resolves to 127.0.0.1; the Ctrl-C (a SIGINT
      -- from a shell in the background, to this interpreter) comes at 0.5 s.
      local out, code = run(string.format([[
        local eip = require "eip"
        local core = require "eip.core"
        core.catch_interrupts(true, %d)
        local c = eip.new{ endpoint = "http://x.late.test:%d", project_id = %q, token = %q, timeout = 10,
          max_attempts = 1, metadata_url = false }
        assert(os.execute("(sleep 0.5; kill -INT $PPID) >/dev/null 2>&1 &"))
        local ok, err = pcall(c.delete_bandwidth, c, %q)
        print(string.format("caught=%%d ok=%%s kind=%%s not_sent=%%s acted=%%s error=%%s", core.interrupts(),
          tostring(ok), tostring(ok or err.kind), tostring(ok or err.not_sent),
          tostring(ok or eip.could_have_acted(err)), tostring(err)))
      ]], abort_at, emu.port, emu.project_id, emu.token, id), "EIP_SLOWDNS_SECONDS=2")
      assert.equal(0, code, out)
      local line = out:match("caught=[^\n]*")
      assert.is_string(line, out)
      assert.matches("^caught=1 ok=false ", line)
      assert.equal(0, emu:stats().requests, "a request went out after the Ctrl-C: " .. line)
      assert.is_table(emu:get_bandwidth(id), "deleted after the Ctrl-C")
      -- (as a call its cancel stopped before an attempt: no attempt counted)
      assert.matches(" kind=interrupted not_sent=true acted=false ", line)
      assert.matches("interrupted before it was sent: nothing was sent", line)
    end)
  end
end)
