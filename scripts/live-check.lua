-- make test-live: a short check against the REAL cloud for people with an account.
--
-- Creates a pay-per-use shared bandwidth, shows it until it reads NORMAL (a new one reads CREATING
-- for a while, and refuses a delete meanwhile), deletes it, waits until it reads 404, and deletes
-- it again with missing_ok. It costs money for the minutes the bandwidth exists, so:
--   * it runs only with EIP_LIVE=1 (anything else: it says so and exits 2);
--   * without credentials (environment, profile file, ECS metadata: as the client finds them)
--     it is skipped with a message (exit 0);
--   * it names the region, the size and the charge before it creates anything;
--   * it always deletes what it created: on success, on failure and on Ctrl-C (the clean-up tries
--     again for up to 2 minutes while the delete is refused as busy or fails in a way worth
--     another attempt; a second Ctrl-C gives up, saying what to delete by hand), also what a
--     create whose answer was lost made: looked for by its name, the run's own.
-- The region comes as for the client (HUAWEICLOUD_SDK_REGION, or EIP_ENDPOINT for an endpoint
-- of your own); EIP_LIVE_SIZE sets the size in Mbit/s (default 5, the usual minimum of a shared
-- bandwidth). Exit 0: every step passed (or skipped); 1: a step failed; 2: not opted in.
local eip = require "eip"
local core = require "eip.core"

local out, err = io.stdout, io.stderr

local function say(fmt, ...)
  out:write(string.format(fmt, ...), "\n")
  out:flush()
end

local function env(name)
  local v = os.getenv(name)
  if v == "" then return nil end
  return v
end

if env("EIP_LIVE") ~= "1" then
  err:write("test-live: this creates a real (billed) shared bandwidth; set EIP_LIVE=1 to run it\n")
  os.exit(2)
end

-- (checked before anything is sent: a size that is no whole number would end the script with a
-- raw error, and one out of range would be refused by the create after the login)
local size_text = env("EIP_LIVE_SIZE") or "5"
local size = size_text:find("^%d+$") and tonumber(size_text)
if not size or size < 1 or size > 2000 then
  err:write("test-live: EIP_LIVE_SIZE must be a whole number of Mbit/s, 1 to 2000\n")
  os.exit(2)
end
-- What f(...) returns; or the end of the check: skipped (exit 0) when no credentials were
-- found anywhere, failed (exit 1) on any other error.
local function or_exit(what, f, ...)
  local ok, v = pcall(f, ...)
  if ok then return v end
  if eip.is_error(v) and v.argument == "credentials" then
    say("test-live: skipped: %s", v.message)
    os.exit(0)
  end
  err:write("test-live: " .. what .. tostring(v) .. "\n") -- (one write: a reader of the pipe sees one line)
  os.exit(1)
end

local client = or_exit("", eip.new, { endpoint = env("EIP_ENDPOINT"), timeout = 30 })
local who = or_exit("cannot authenticate: ", client.authenticate, client)

local name = "lua-eip-live-" .. os.date("!%Y%m%d%H%M%S")
say("test-live: %s, project %s (%s credentials)", client.endpoint, who.project_id, who.auth)
say("test-live: creates %s: a %d Mbit/s pay-per-use shared bandwidth, billed by bandwidth while it "
  .. "exists (about a minute); it is deleted at the end, also on failure or Ctrl-C", name, size)

local created -- the id, until it is known to be gone
local create_unsure -- true: the create failed, but may have made the bandwidth all the same
local failures = 0
local PATIENCE, EVERY = 120, 2 -- seconds: the longest wait for NORMAL (and clean-up), and its pace

-- Ctrl-C ends the steps (waits return early) but never the clean-up.
core.catch_interrupts(true)

local function step(what, f, ...)
  if core.interrupts() > 0 then error("interrupted", 0) end
  local t0 = core.monotime()
  local sok, a, b = pcall(f, ...)
  if not sok then
    failures = failures + 1
    say("FAIL  %-28s %s", what, tostring(a))
    error(a, 0)
  end
  say("ok    %-28s %.2f s", what, core.monotime() - t0)
  return a, b
end

local function interrupted_now() return core.interrupts() > 0 end

-- Shows bandwidth `id` every EVERY s until it reads NORMAL: a new one reads CREATING for a while
-- (huaweicloud's Terraform provider waits for the same after a create), and a delete sent meanwhile
-- may be refused. At most PATIENCE s; Ctrl-C ends the wait. Returns the seconds it took.
local function until_normal(id)
  local t0 = core.monotime()
  while true do
    local shown = client:show_bandwidth(id, { cancel = interrupted_now })
    if shown.id ~= id or shown.share_type ~= "WHOLE" then error("the show answered another bandwidth", 0) end
    if shown.status == "NORMAL" then return core.monotime() - t0 end
    if shown.status ~= "CREATING" then error("it reads " .. tostring(shown.status) .. ", not NORMAL", 0) end
    if core.monotime() - t0 >= PATIENCE then error(string.format("still CREATING after %d s", PATIENCE), 0) end
    if interrupted_now() then error("interrupted", 0) end
    core.sleep(EVERY) -- (ends early on Ctrl-C; the next show is then not sent)
  end
end

local run_ok, why = pcall(function()
  local cok, bw = pcall(step, "create", client.create_bandwidth, client, { name = name, size = size })
  if not cok then
    -- (a timeout, a reset, a 5xx, an answer it cannot use, a second Ctrl-C aborting it: the
    -- service may have made it, and bills it while it exists)
    create_unsure = eip.could_have_acted(bw)
    error(bw, 0)
  end
  created = bw.id
  local took = step("show until it reads NORMAL", until_normal, created)
  say("      (%s: NORMAL after %.1f s)", created, took)
  local id = created
  local res = step("delete, wait until it reads 404", client.delete_bandwidth, client, id, { wait = 600 })
  created = nil
  say("      (readable for %.1f s after the 204)", res.waited)
  res = step("delete again (missing_ok)", client.delete_bandwidth, client, id, { missing_ok = true })
  if res.deleted ~= false or res.code ~= "VPC.0306" then
    failures = failures + 1
    error("the second delete did not answer 404 VPC.0306", 0)
  end
end)

local interrupted = core.interrupts() > 0 or why == "interrupted"

-- Is the delete's failure one to try again: the answer says busy (a bandwidth still CREATING:
-- 409 VPC.0512, "try it again later"), or the retry policy calls it worth another attempt?
local function worth_again(e)
  return eip.is_error(e) and (e.retryable == true or e.code == "VPC.0512")
end

-- The bandwidth a create whose answer was lost made all the same, found by its name (this run's
-- own): its id, or nil (then said, with what to look for). Listed LOOKS times at most, EVERY s
-- apart (the service may list it a moment later), until `give_up_at` interrupts.
local LOOKS = 3
local function made_by_name(give_up_at)
  local last
  for look = 1, LOOKS do
    if look > 1 then core.sleep(EVERY) end
    if core.interrupts() >= give_up_at then break end
    local lok, list = pcall(client.list_bandwidths, client, { share_type = "WHOLE" })
    last = not lok and list or nil
    if lok then
      local found = {}
      for _, bw in ipairs(list) do
        if bw.name == name then found[#found + 1] = bw.id end
      end
      if #found == 1 then
        say("clean-up: the create's answer was lost, but %s is named %s: deleting it", found[1], name)
        return found[1]
      end
      if #found > 1 then
        last = string.format("%d shared bandwidths are named so; none was deleted", #found)
        break
      end
    end
  end
  err:write("test-live: CLEAN-UP FAILED: the create may have made a bandwidth named " .. name .. " all the same: "
    .. "look for it (eip list-bandwidths --shared) and delete it by hand" .. (last and ": " .. tostring(last) or "")
    .. "\n")
  failures = failures + 1
  return nil
end

-- Clean-up: whatever happened, a bandwidth this run created is deleted (also one a create whose
-- answer was lost made); a delete refused as busy (or failing in a way worth another attempt) is
-- sent again every EVERY s, for PATIENCE s.
-- A fresh count: the Ctrl-C that stopped the steps must not stop this; the next one (or, when
-- none did, a second one) gives up, aborting a request in flight.
local give_up_at = interrupted and 1 or 2
if created or create_unsure then
  core.catch_interrupts(false)
  core.catch_interrupts(true, give_up_at)
end
if not created and create_unsure then created = made_by_name(give_up_at) end
if created then
  local deadline, heard, told = core.monotime() + PATIENCE, 0, false
  local cok, cres
  while true do
    cok, cres = pcall(client.delete_bandwidth, client, created, { missing_ok = true })
    if cok or not worth_again(cres) or core.interrupts() >= give_up_at or core.monotime() >= deadline then break end
    if not told then
      told = true
      say("clean-up: %s not deleted yet: %s; trying again every %d s for up to %d s", created, tostring(cres),
        EVERY, PATIENCE)
    end
    core.sleep(EVERY) -- (ends early on Ctrl-C)
    if core.interrupts() >= give_up_at then break end
    if core.interrupts() > heard then
      heard = core.interrupts()
      say("clean-up: still deleting %s (billed while it exists); Ctrl-C again gives up", created)
    end
  end
  if cok then
    say("clean-up: %s %s", created, cres.deleted and "deleted" or "already gone")
  else
    local given_up = core.interrupts() >= give_up_at and "gave up on Ctrl-C; the last answer: " or ""
    err:write("test-live: CLEAN-UP FAILED: delete " .. created .. " by hand: " .. given_up .. tostring(cres) .. "\n")
    failures = failures + 1
  end
end
-- (a Ctrl-C in the clean-up, the search by name included, is an interrupted run too)
if core.interrupts() > 0 then interrupted = true end
core.catch_interrupts(false)
client:close()
if interrupted then
  say("test-live: interrupted")
  os.exit(130)
end
if not run_ok or failures > 0 then
  say("test-live: failed")
  os.exit(1)
end
say("test-live: every step passed")
