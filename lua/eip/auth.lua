--- Credentials: where they come from and how a request carries them.
--
-- Resolution order: explicit options (token | ak + sk [+ security_token] | auth = {...}),
-- then the environment variables the official SDKs read (HUAWEICLOUD_SDK_AK / _SK /
-- _SECURITY_TOKEN), then OS_AUTH_TOKEN. Each resolves to a provider, which the pipeline
-- (eip.pipeline) uses through these fields only:
--   provider.kind                  "token" | "aksk" | "iam" | "metadata"
--   provider.header                a {name, value, line} header every request carries
--                                  unchanged (a token), or nil: then lines is called
--   provider:lines(req, headers, runner, halt?)   the request's header lines ("Name: value"): those
--                                  of headers (a list of {name, value, line?, signed?} the
--                                  request carries, in order), then the auth headers (AK/SK:
--                                  signed in one C call, src/eip_core.c's signer). IAM first
--                                  makes sure it has a token (runner:run of an iam_token op)
--   provider:ensure(runner, req?, halt?)  obtains credentials now if it has none (IAM; `req`:
--                                  the request of the call that needs them, for how long it waits
--                                  for another call's fetch: see fetch_once; `halt`: what may
--                                  stop the fetch, or that wait: eip.pipeline's halt)
--   provider:due()                 (IAM, metadata) must credentials be fetched, or another call's
--                                  fetch waited for, before a call takes its slot of the rate or
--                                  a signing place (eip.pipeline's keys_first)?
--   provider.fallible              true when apply may raise (IAM: the token request failed)
--   provider.refresh               nil, or function(provider, runner, halt?): new credentials after a
--                                  401 (IAM, metadata); returns false when they are the same
--                                  as before (then the 401 is final: nothing is sent again)
--   provider.epoch                 a number that changes whenever the credentials do
--   provider.project_id            the project its credentials are scoped to, when known
--   provider.secrets               every secret value it holds, for redaction (also the
--                                  last ones it replaced: see retire)
--   provider.strikes, provider:rejected(err, epoch),
--   provider:accepted(epoch, seq, shared_seq, seq_prefix),
--   provider:next_seq(prefix)      (AK/SK, metadata) 401s to its signatures in a row, counted
--                                  by the pipeline; `epoch`: the one the call was authenticated
--                                  at (an answer to keys since replaced counts for neither key);
--                                  `seq`, `shared_seq`: the numbers next_seq gave its request when
--                                  it took its place, the provider's and the dict's for the key of
--                                  `seq_prefix` (a success clears only after the last 401's)
--   provider.key_epoch             (metadata) the epoch its current AK came with
--   provider.doubts, provider:unanswered(epoch, aborted)   (AK/SK, metadata) signed requests in a row
--                                  that got no answer (a timeout, a reset after it went out,
--                                  a garbled answer, an abort): each may have been refused
--                                  unseen; counted with strikes, cleared by what accepted clears
--   provider.refused, provider:refusal()   (AK/SK, metadata) set after too many strikes: the
--                                  error a call gets instead of being sent (for the
--                                  provider's life; metadata: until new keys come; one the
--                                  signing_dict keeps, `in_dict`: until it is emptied); or, after
--                                  unanswered ones only, for M.DOUBT_HOLD seconds (`until_`)
-- Secret values stay inside providers, which clients keep outside their own tables.
local errors = require "eip.errors"
local validate = require "eip.validate"
local ops = require "eip.ops"
-- (an instance of its own: a host's settings of the shared cjson.safe, a lower encode_max_depth,
-- must not turn the login body into nil)
local json = require("cjson.safe").new()
local time = require "eip.time"
local core = require "eip.core"
local regions = require "eip.regions"
local profile = require "eip.profile"
local retry = require "eip.retry"
local transport = require "eip.transport"

local metadata_provider -- defined with the ECS metadata provider below

local M = {}

local raise = errors.raise_usage

M.ENV = {
  ak = "HUAWEICLOUD_SDK_AK",
  sk = "HUAWEICLOUD_SDK_SK",
  security_token = "HUAWEICLOUD_SDK_SECURITY_TOKEN",
  project_id = "HUAWEICLOUD_SDK_PROJECT_ID",
  region = "HUAWEICLOUD_SDK_REGION",
  token = "OS_AUTH_TOKEN",
  metadata_url = "EIP_METADATA_URL",
  idp_id = "HUAWEICLOUD_SDK_IDP_ID",
  id_token_file = "HUAWEICLOUD_SDK_ID_TOKEN_FILE",
}

-- Federated credentials (an identity provider and an OpenID Connect token file), which the
-- official SDKs take before AK/SK, in the environment and in the profile file. lua-eip cannot
-- exchange them for a token: using other credentials instead would act as another identity.
local FEDERATED = "name federated credentials (an identity provider and an OpenID Connect token), which "
  .. "lua-eip does not support: remove them, or pass the credentials to use as options"

--- Where ECS instance metadata answers (a link-local address, only on Huawei Cloud servers).
M.METADATA_URL = "http://169.254.169.254"

-- os.getenv, treating empty values as unset (an exported-but-empty variable is a common
-- leftover in shells and CI configurations).
local function env(getenv, name)
  local v = getenv(name)
  if v == "" then return nil end
  return v
end

---------------------------------------------------------------------------------------------
-- Refused signatures (AK/SK). Five failed signatures in a row lock an AK/SK pair for 5 minutes,
-- for every user of the key. So the provider counts the 401s its signatures get in a row (an
-- answer that passed the check resets the count); after MAX_STRIKES the client sends nothing
-- more with them, ever: every call fails at once with a copy of the last 401. Time does not
-- reset the gateway's count (only a good signature or the lock does), so a refusal that
-- expired would let two more failures lock the key of a long-lived client (an nginx worker's).
-- (With signing_dict a refusal the dict keeps lasts until the dict is emptied, by whoever fixed
-- its cause: see sync.) Keys given as options, in the environment or a profile file, and the
-- temporary keys of the ECS metadata service alike (counted per key: new temporary keys start a
-- new count).
--
-- Each answer is counted for the key that signed its request: the pipeline passes the epoch its
-- call was authenticated at, and provider.key_epoch is the epoch the current key came with (new
-- temporary keys; keys given once never change). An answer to a request signed with a key since
-- replaced (a batch has several in flight when the keys are renewed) says nothing of the current
-- key: its 401 is no strike against it, its success no reason to forget the current key's
-- strikes. (It is not counted for the old key either: nothing is signed with that one any more.)
-- Nor does a success clear `refused`: every answer that comes after the refusal is to a request
-- sent before it, which the gateway may well have checked before the refused ones, so it does
-- not show that the gateway's count for the key went back to zero. What ends a refusal is a
-- new key (temporary keys renewed), whose refused signatures start from none.

local MAX_STRIKES = 3        -- fewer than the gateway's 5: a script's other clients keep a margin

-- Answers lost. A signed request that went out and got no answer (or one that may relay a lost
-- 401: a 5xx page without the service's code) may have been refused all the same: the gateway
-- counted it, its 401 never arrived. So the count may be as high as the strikes and these
-- doubts together, and signed requests in flight are fewer by the doubts too (eip.pipeline's
-- signing_room): never more than MAX_DOUBTFUL without an answer that passed the check, so the
-- gateway's five are never reached, whatever the refusals hidden. Once strikes and doubts
-- together reach MAX_DOUBTFUL nothing more is signed, for good. Three doubts and no refusal
-- (answers lost to all of them: more likely an endpoint or a network failing than the key)
-- hold the key DOUBT_HOLD seconds first, then let one request go: its success clears the
-- count; its 401 or its answer lost too makes four, and stops for good. (Time does not reset the
-- gateway's count: a hold that let more than one go would let a refused key be locked.)
local MAX_DOUBTFUL = 4
--- Seconds nothing is signed after three signed requests in a row got no answer, and no 401
-- came (the gateway's lock lasts 5 minutes): then the last one that may go.
M.DOUBT_HOLD = 300

-- Was a request authenticated at `epoch` signed with a key since replaced?
local function stale(self, epoch)
  return epoch ~= nil and epoch ~= false and epoch < (self.key_epoch or 0)
end

-- The keys of earlier AKs whose counts a metadata provider keeps (see metadata_fetch), at most.
local KEPT_COUNTS_MAX = 16

-- Keeps `entry` (counts, or nil: none) as the counts of the earlier AK `ak` of a metadata
-- provider; past KEPT_COUNTS_MAX, others than `ak` and `spare` go (keys renewed for good).
local function keep_counts(self, ak, entry, spare)
  local kept = self.counts_by_ak or {}
  self.counts_by_ak = kept
  local n = self.kept_count or 0
  if kept[ak] == nil and entry ~= nil then n = n + 1 elseif kept[ak] ~= nil and entry == nil then n = n - 1 end
  kept[ak] = entry
  if n > KEPT_COUNTS_MAX then
    for other in pairs(kept) do
      if n <= KEPT_COUNTS_MAX then break end
      if other ~= ak and other ~= spare then kept[other], n = nil, n - 1 end
    end
  end
  self.kept_count = n
end

-- Is the answer (or none) to a request authenticated at `epoch` another key's than the one in
-- use, and so not counted for it? One signed with a metadata provider's earlier key of another
-- AK is counted for that AK (kept: see metadata_fetch), whose requests in flight when it was
-- replaced may have been refused; one of an AK handed out again is the key in use's own (false),
-- and one of a key no longer known is counted for none.
local function counted_elsewhere(self, epoch, field, err)
  if not stale(self, epoch) then return false end
  local ak = self.ak_of_epoch and self.ak_of_epoch[epoch]
  if ak == self.counted_ak then return false end
  if ak == nil then return true end
  local counts = (self.counts_by_ak or {})[ak] or {}
  counts[field] = (counts[field] or 0) + 1
  local strikes, doubts = counts.strikes or 0, counts.doubts or 0
  if not counts.refused and (strikes >= MAX_STRIKES or strikes + doubts >= MAX_DOUBTFUL) then
    counts.refused = { err = field == "strikes" and errors.copy(err) or errors.unanswered_signatures(strikes, doubts) }
  end
  keep_counts(self, ak, counts, self.counted_ak)
  return true
end

-- The prefix of the shared counts of the key in use (client option signing_dict: see
-- eip.signing), or nil: none, or no key yet (temporary keys not fetched).
local function shared_prefix(self)
  local shared = self.shared
  if not shared then return nil end
  -- (temporary keys being renewed after a 401: the answers still coming are to the last keys,
  -- counted for them in every worker, not in this one alone)
  local keys = self.kind == "metadata" and (self.keys or self.last_keys) or self
  return keys and keys.ak and shared:prefix(keys) or nil
end

-- The numbers of the next signed request (eip.pipeline's admit), in the order they were taken:
-- this provider's own, whatever keys sign (renewed temporary keys, a dict that stops counting),
-- and, with shared counts, the workers' for the key in use (nil when the dict cannot count).
local function next_seq(self, prefix)
  local own = (self.seq or 0) + 1
  self.seq = own
  return own, prefix and self.shared:next_seq(prefix) or nil
end

local function rejected(self, err, epoch)
  if counted_elsewhere(self, epoch, "strikes", err) then return end
  -- Requests taken up to now may have been checked before this refusal: their successes do not
  -- say the gateway's count went back to zero (see accepted). (The provider's own numbers: one
  -- counter for all its keys.)
  self.strike_seq = self.seq or 0
  local strikes = (self.strikes or 0) + 1
  local prefix = shared_prefix(self)
  if prefix then -- every worker's refusals of this key, this one included
    local shared = self.shared:strike(prefix)
    if shared and shared > strikes then strikes = shared end
  end
  self.strikes = strikes
  if strikes >= MAX_STRIKES or strikes + (self.doubts or 0) >= MAX_DOUBTFUL then
    -- (in_dict: the dict keeps it for every worker; emptied, it is lifted: see sync)
    self.refused = { err = errors.copy(err), doubts = strikes < MAX_STRIKES and self.doubts or nil,
      in_dict = prefix and self.shared:refuse(prefix) or nil }
  end
end

-- A signed request that went out and got no answer (see "Answers lost" above), counted as
-- rejected counts a 401: for the key that signed it, numbered after the requests taken so far.
-- `aborted`: the caller's own doing (a batch aborted, or ended by its on_result's error, while
-- it was in flight), which says nothing of an endpoint or a network failing: counted, but the
-- third starts no hold (the place the doubts leave lets one request go at once, whose answer
-- clears the count or, lost or refused too, stops for good as the hold's would).
local function unanswered(self, epoch, aborted)
  -- (counted during a hold too: a request in flight when it began may be the fourth)
  if counted_elsewhere(self, epoch, "doubts") or (self.refused and not self.refused.until_) then return end
  self.strike_seq = self.seq or 0
  local doubts = (self.doubts or 0) + 1
  local prefix = shared_prefix(self)
  if prefix then
    local shared = self.shared:doubt(prefix)
    if shared and shared > doubts then doubts = shared end
  end
  self.doubts = doubts
  local strikes = self.strikes or 0
  if strikes + doubts >= MAX_DOUBTFUL then
    local in_dict = prefix and self.shared:refuse(prefix) or nil
    self.refused = { err = errors.unanswered_signatures(strikes, doubts, nil, in_dict), in_dict = in_dict }
  elseif strikes == 0 and doubts == MAX_DOUBTFUL - 1 and not aborted then
    self.refused = { err = errors.unanswered_signatures(0, doubts, M.DOUBT_HOLD),
      until_ = core.monotime() + M.DOUBT_HOLD }
    if prefix then self.shared:hold(prefix, M.DOUBT_HOLD) end
  end
end

-- A hold after lost answers whose time is up: lifted, for the one request that may go (the
-- doubts, three, leave one place). Only eip.pipeline's signing_room lifts it, as it takes that
-- place: a call that found the key held took none, and is refused.
local function lift(self)
  local refused = self.refused
  if not (refused and refused.until_ and core.monotime() >= refused.until_) then return end
  self.refused = false
  self.doubts = MAX_DOUBTFUL - 1
end

-- An answer that passed the check, to a request numbered `seq` (next_seq): the refusals in a row
-- start again from none, unless that request was taken before the last refusal was counted. A
-- success of a request sent before the refusals (its answer slow, the gateway's 401s quick)
-- once cleared them, freed the places they had closed, and let five in a row be refused.
local function accepted(self, epoch, seq, shared_seq, seq_prefix)
  if stale(self, epoch) then return end
  if seq and seq <= (self.strike_seq or 0) then return end
  -- With shared counts the dict decides by its own numbers, for the key whose counter gave one
  -- (not another key's, renewed since; nor none, when the dict could not count): else its count
  -- stands. It is read again before the next place is taken.
  local prefix = shared_prefix(self)
  if prefix and shared_seq and seq_prefix == prefix then self.shared:clear(prefix, shared_seq) end
  -- (A request whose answer never came may still be on its way, held in a queue or a proxy, and
  -- be checked after this success: its doubt is cleared all the same. Keeping doubts a while
  -- after the last one left a good key under steady traffic with a timeout every few seconds
  -- no room at all, for good: a limit, said in the README.)
  self.strikes, self.doubts = false, false
  local refused = self.refused
  if refused and refused.until_ then self.refused = false end -- (a hold after lost answers only)
  -- (a metadata key's counts kept from when it was handed out before: cleared too)
  if self.counts_by_ak and self.counted_ak then keep_counts(self, self.counted_ak, nil) end
end

--- With shared counts (signing_dict): the refusals in a row and the places taken by every
-- worker, read into the provider (strikes, refused) before a place is taken; returns the prefix
-- of the key's counts and the places taken, or nil (no shared counts, or no key yet).
-- A refusal the dict recorded (`in_dict`: this worker's, stored there, or another's, adopted
-- from it) and no longer holds was emptied from it (`flush_all()`, once its cause was fixed, as
-- eip.signing says): lifted, its refusals with it, and the key signs again, one request first
-- (it may still be wrong). One the dict could not store stays: this worker counts on its own.
local function sync(self)
  local prefix = shared_prefix(self)
  if not prefix then return nil end
  local strikes, flying, refused, doubts, hold = self.shared:read(prefix)
  -- The gateway counts per key, whoever signed: another worker's success reset it too. When
  -- the dict holds no count (it could not store one), this worker's own stands.
  if strikes then self.strikes = strikes > 0 and strikes or false end
  if doubts then self.doubts = doubts > 0 and doubts or false end
  local mine = self.refused
  if refused then
    if not (mine and not mine.until_) then self.refused = { err = errors.refused_elsewhere(), in_dict = true } end
  else
    if mine and mine.in_dict then
      -- Emptied: the gateway's count of refusals in a row is not (only a good signature or the
      -- lock resets it), so one request goes first, for every worker, as after a hold (see
      -- lift): the doubts one short of the limit, kept in the dict. Refused too, the key is
      -- refused again one refusal later, four in a row at most; a success clears the counts.
      local probing = self.shared:probe(prefix, MAX_DOUBTFUL - 1)
      if probing == nil then probing = MAX_DOUBTFUL - 1 end -- (no count in the dict: this worker's own)
      self.refused, self.strikes, self.doubts = false, false, probing
    end
    if hold and not self.refused then
      self.refused = { err = errors.unanswered_signatures(self.strikes or 0, self.doubts or MAX_DOUBTFUL - 1, hold),
        until_ = core.monotime() + hold }
    end
  end
  lift(self)
  return prefix, flying
end
M.sync = sync

local function refusal(self)
  local err = errors.copy(self.refused.err)
  err.not_sent, err.request_id, err.retryable = true, nil, false
  if err.kind == "http" then
    local doubts = self.refused.doubts
    err.advice = string.format("Not sent: the last %s with this AK/SK were refused (%s)%s, and five in a row "
      .. "lock the key for 5 minutes: %s", doubts and (self.strikes or 0) + doubts .. " signed requests"
      or math.max(self.strikes or 0, MAX_STRIKES) .. " signatures", tostring(err.status),
      doubts and " or got no answer" or "",
      self.refused.in_dict and "no worker of this nginx signs with it until its signing_dict is emptied. Fix the key "
        .. "(or the clock: X-Sdk-Date), then empty it (flush_all) or restart nginx."
      or "this client signs nothing more with it. Fix the key (or the clock: X-Sdk-Date) and make a new client.")
  end
  return err
end

---------------------------------------------------------------------------------------------
-- Replaced secrets. A token or temporary key replaced by a newer one is still a credential (a
-- token stays valid until it expires, up to 24 hours), and answers to requests that carried it
-- may still arrive (a batch has several in flight): so the provider keeps redacting it. The last
-- RETIRED_MAX replaced values are kept (a refresh of temporary keys replaces two: the SK and the
-- security token), under keys of their own in provider.secrets.

local RETIRED_MAX = 8

-- Sets provider.secrets[slot] to value, the value it replaces kept as a retired secret.
local function replace_secret(p, slot, value)
  local secrets, old = p.secrets, p.secrets[slot]
  if old ~= nil and old ~= value then
    p.retired = (p.retired or 0) % RETIRED_MAX + 1
    secrets["retired" .. p.retired] = old
  end
  secrets[slot] = value
end

---------------------------------------------------------------------------------------------
-- Token: X-Auth-Token on every request.

-- The lines of headers ({name, value, line?} entries), then `last`.
local function lines_then(headers, last)
  local lines = {}
  for i = 1, #headers do
    local h = headers[i]
    lines[i] = h.line or (h[1] .. ": " .. h[2])
  end
  lines[#lines + 1] = last
  return lines
end

local Token = {}
Token.__index = Token

local function token_provider(token, source)
  local t = validate.secret(source, token)
  -- The header is built once: the line form saves a concatenation of a kilobytes-long token
  -- on every call.
  local header = { "X-Auth-Token", t, line = "X-Auth-Token: " .. t }
  return setmetatable({ kind = "token", header = header, secrets = { t }, epoch = 0 }, Token)
end

--- The request's lines: headers', then X-Auth-Token (its line made once).
function Token:lines(_, headers)
  return lines_then(headers, self.header.line)
end

function Token.ensure() end

---------------------------------------------------------------------------------------------
-- AK/SK: SDK-HMAC-SHA256 over the request as it is sent.

local Aksk = {}
Aksk.__index = Aksk

local function aksk_provider(ak, sk, security_token, names)
  local p = setmetatable({
    kind = "aksk",
    ak = validate.access_key(names.ak, ak),
    sk = validate.key(names.sk, sk),
  }, Aksk)
  if security_token ~= nil then p.security_token = validate.key(names.security_token, security_token) end
  p.secrets = { p.sk, p.security_token }
  validate.ak_apart(names.ak, p.ak, p.secrets) -- (an SK given as the AK would go in the clear)
  p.epoch = 0
  -- Everything the signatures share is made once, in C: the HMAC key, the lines of the host,
  -- project and security token, the date of the current second.
  p.signer = core.signer(p.ak, p.sk, p.security_token)
  return p
end

--- The request's lines: headers', then Host (exactly as sent), X-Sdk-Date (UTC now),
-- X-Project-Id, X-Security-Token and Authorization, signed in one C call. Called for every
-- attempt, so a retried request carries a fresh date.
function Aksk:lines(req, headers)
  -- the path as sent, with the endpoint's base path
  return self.signer:headers(req.method, req.signed_path or req.path, req.query or nil, req.body, req.host,
    req.project_id, headers) -- no project_id: the IAM project lookup
end

function Aksk.ensure() end
Aksk.rejected, Aksk.accepted, Aksk.refusal, Aksk.sync, Aksk.next_seq = rejected, accepted, refusal, sync, next_seq
Aksk.unanswered, Aksk.lift = unanswered, lift

---------------------------------------------------------------------------------------------
-- One fetch at a time. Inside nginx one client serves many requests at once: while one of them
-- asks IAM (or the metadata service), the others wait for its answer instead of asking too (ten
-- wrong-password logins at once would count ten times towards locking the IAM user).
--
-- Where the fetch runs. Inside nginx, where the call can yield (transport.yieldable) and the
-- client uses its own transport, the fetch goes from an ngx.timer, and the call that needed it
-- waits for it like any other: ending or killing the request that started it (ngx.exit while a
-- light thread fetches, ngx.thread.kill, a client abort) cannot leave it unfinished. Who is
-- fetching cannot be told from the fetching coroutine there: nginx's coroutine.status reads
-- what nginx recorded of another request's thread (memory of that request, freed when it ends),
-- raises in log_by_lua and the other phases without cosockets, and nginx hands the threads of
-- ended requests to new ones. Elsewhere the call fetches itself (its coroutine recorded: one that
-- died, by coroutine.close, is taken over).
--
-- How long a call waits: never longer than it would have taken to fetch itself (the budget:
-- the token request's attempts, timeouts and the waits between them, cut by the client's
-- deadline, and by what is left of the call's own when the attempt's timeout was cut to it).
-- Then it fails with a timeout (kind "transport", reason "timeout", not_sent: its request was
-- not sent). A fetch still running a second after its own budget is taken for abandoned: the
-- next call fetches. So is a fetch whose timer has not begun FETCH_START_GRACE after it was
-- made (nginx accepts a timer it then never runs when lua_max_running_timers are all running
-- timers of the application's: every call waited its whole budget, nothing sent): a call
-- waiting for it fetches in its own coroutine, and the timer, should it run later, does nothing.
--
-- Where a call cannot wait, it fetches on its own. That is in the nginx phases without
-- cosockets (log_by_lua, header and body filters, set_by_lua, init...): nothing can yield there,
-- so a wait would be an OS sleep that blocks the worker, and with it the request that is
-- fetching, until the wait gives up. Raising at once instead would fail a call that works (the
-- libcurl fallback, blocking for its own timeout as every call there does) only because another
-- request happened to be fetching. Asking on its own costs at most one more login: the worker
-- runs nothing else meanwhile, and the token or the failure it leaves (remembered, see
-- iam_fetch) serves the calls after it. The same holds outside nginx on the main thread, or with
-- the default sleep (an OS sleep: another coroutine's fetch cannot go on during it); a `sleep` of
-- the caller's own (a scheduler's) is polled with, as it may yield.

local FETCH_POLL = 0.01  -- seconds between looks, where no semaphore wakes the waiting calls
local CANCEL_INTERVAL = 0.25 -- seconds between the questions to a waiting call's halt (eip.pipeline's)
local FETCH_MARGIN = 1   -- seconds a fetch is given after its budget before it is taken for abandoned
local FETCH_START_GRACE = 0.5 -- seconds a fetch's timer is given to begin (it runs at nginx's next turn)

local MAIN = {} -- the main thread, which coroutine.running() does not give in Lua 5.1

local function running()
  local co, main = coroutine.running()
  if co == nil or main then return MAIN end
  return co
end

local semaphore = transport.semaphore
-- How the calling code can wait for a fetch another call is making: "ngx" (inside nginx, where
-- it can yield), "sleep" (outside nginx, on a coroutine, with a sleep of the caller's own), or
-- nil (it cannot: see above). And whether it runs inside nginx.
local function wait_mode(runner)
  local phase = transport.phase()
  if phase then return transport.yieldable() and "ngx" or nil, true end
  if runner.sleep ~= transport.sleep and running() ~= MAIN then return "sleep", false end
  return nil, false
end

-- Has the fetch of this record ended without saying so? Past its budget, or (outside nginx, see
-- above) its coroutine is dead.
local function abandoned(record, now, in_nginx)
  if now >= record.until_ or (record.start_by and not record.began and now >= record.start_by) then return true end
  local co = record.co
  return not in_nginx and co ~= nil and co ~= MAIN and coroutine.status(co) == "dead"
end

-- The fetch of record ended: ok, or err. Wakes the calls waiting for it.
local function finish(self, record, ok, err)
  record.done, record.ok, record.err = true, ok, err
  if self.fetching == record then self.fetching = false end
  if record.sema and record.waiters > 0 then record.sema:post(record.waiters) end
end

-- Waits until record's fetch ends, `limit` passes, or its budget does; or, with `halt` (see
-- eip.pipeline's halt), until its stop() says so, asked at least every CANCEL_INTERVAL: returns
-- true then (the fetch goes on, for the other calls).
local function wait_for(record, mode, runner, limit, in_nginx, halt)
  local until_ = math.min(limit, record.until_)
  if record.start_by and not record.began then until_ = math.min(until_, record.start_by) end
  record.waiters = record.waiters + 1
  local halted, ask_at = false, -math.huge
  if mode == "ngx" then
    local sema = record.sema
    if sema == nil then
      sema = semaphore() or false
      record.sema = sema
    end
    while not record.done do
      local left = until_ - core.monotime()
      if left < 0.001 then break end
      if halt then
        if halt.stop() then
          halted = true
          break
        end
        left = math.min(left, CANCEL_INTERVAL)
      end
      if sema then
        local fine, woken, why = pcall(sema.wait, sema, left)
        if not fine or (not woken and why ~= "timeout") then sema = false end -- not in this phase: poll
      else
        rawget(_G, "ngx").sleep(math.min(FETCH_POLL, left))
      end
    end
  else
    while not record.done and core.monotime() < until_ and not abandoned(record, core.monotime(), in_nginx) do
      if halt and core.monotime() >= ask_at then
        if halt.stop() then
          halted = true
          break
        end
        ask_at = core.monotime() + CANCEL_INTERVAL
      end
      runner.sleep(FETCH_POLL)
    end
  end
  record.waiters = record.waiters - 1
  return halted
end

-- What a fetch brings, and the request it ends with, for its errors: an IAM token, the metadata
-- service's keys, or a holder's own (fetch_what, fetch_method, fetch_path: see eip.pipeline's
-- project lookup).
local function fetch_target(self)
  if self.fetch_what then return self.fetch_what, self.fetch_method, self.fetch_path end
  if self.kind == "iam" then return "IAM token", "POST", ops.IAM_PATH end
  local op = ops.metadata_credentials(self.base)
  return "temporary keys from the ECS metadata service", op.method, op.path
end

-- The error of a call that waited `waited` seconds for another call's fetch, in vain.
-- A fetch's error of kind "transport", reason "timeout", nothing sent, retryable: `message`.
local function unsent_timeout(self, message)
  local _, method, path = fetch_target(self)
  local err = errors.transport({ method = method, path = path, attempts = 0 }, { error_kind = "timeout" }, message)
  err.not_sent, err.retryable = true, true
  return err
end

local function wait_timeout(self, waited)
  return unsent_timeout(self, string.format("not sent: no %s after waiting %.1f s for the request another call "
    .. "made for it (as long as this call could have taken to ask itself)", (fetch_target(self)), waited))
end

-- The error of a call whose deadline would pass while the metadata service's keys, handed out in
-- their last second, expire before new ones can be asked for: kind "transport", reason
-- "timeout", nothing sent.
local function expiry_past_deadline(self)
  return unsent_timeout(self, "not sent: the deadline would pass while the metadata service's keys, given in "
    .. "their last second, expire and new ones are asked for")
end

-- The error of a call whose halt stopped its wait for another call's fetch: kind "interrupted",
-- `cancelled`, nothing sent.
local function wait_cancelled(self)
  local _, method, path = fetch_target(self)
  return errors.cancelled({ method = method, path = path }, 0)
end

-- Was a fetch ended by its caller (its halt, a Ctrl-C: kind "interrupted")? Its error is not the
-- others' to take: a call that waited for it fetches on its own.
local function callers_doing(err)
  return errors.is_error(err) and err.kind == "interrupted"
end

-- The error of a call that found another coroutine's fetch under way, suspended, and cannot wait
-- for it (the client's sleep is the system's, which would stop the scheduler that runs it).
local function fetch_busy(self)
  local what, method, path = fetch_target(self)
  local err = errors.transport({ method = method, path = path, attempts = 0 }, { error_kind = "timeout" },
    "not sent: another coroutine is fetching the " .. what .. " for this client, and this call cannot wait "
    .. "for it (the client's sleep is the system's, which would stop your scheduler): give the client a "
    .. "sleep that yields to your scheduler, or ask again once that fetch is done")
  err.not_sent, err.retryable = true, true
  return err
end

-- The most a call waits for another's fetch (see above): self:budget(runner), or less when the
-- attempt's timeout (req.timeout) was cut to what is left of the call's deadline.
local function patience(self, runner, req)
  local bound = self:budget(runner)
  local cut = req and req.timeout
  if type(cut) == "number" and cut < runner.timeout then bound = math.min(bound, cut) end
  return bound
end

-- Starts fetch_now(self, runner) in an ngx.timer, for record. False when nginx refuses the timer.
local function start_detached(self, runner, fetch_now, record)
  local ngx = rawget(_G, "ngx")
  local ok, started = pcall(ngx.timer.at, 0, function()
    if record.superseded then return end -- a call took it over (see above)
    record.began = true
    local fine, err = pcall(fetch_now, self, runner)
    finish(self, record, fine, err)
  end)
  if not (ok and started) then return false end
  -- (set once accepted: a refused timer's fetch is this call's own, in its coroutine; the
  -- timer cannot begin before this returns)
  record.start_by = core.monotime() + FETCH_START_GRACE
  return true
end

-- Credentials for this call: fetch_now(self, runner, halt, req), unless another call is fetching them
-- (then waits for it: its failure is raised, and fetches only when it left no fresh credentials,
-- fresh(self) false, or when its own caller ended it: callers_doing). `req`: the request of the
-- call's attempt, when known (its timeout). `halt` (eip.pipeline's halt): what may stop this
-- call's fetch, or its wait (the fetch waited for goes on; one that runs in an nginx timer, for
-- every call, never has one).
local function fetch_once(self, runner, fetch_now, fresh, req, halt)
  local mode, in_nginx = wait_mode(runner)
  local me = running()
  local now, started, limit = core.monotime(), nil, nil
  local own_coroutine = false -- a fetch's timer that never began: this call fetches itself
  while true do
    local record = self.fetching
    if not record or record.done then break end
    if abandoned(record, now, in_nginx) then
      if record.start_by and not record.began then record.superseded, own_coroutine = true, true end
      -- (its request may have gone out: the provider counts it, see Iam:fetch_lost)
      if self.fetch_lost and not record.lost then
        record.lost = true
        self:fetch_lost()
      end
      break
    end
    if not mode or record.co == me then
      -- Outside nginx, on a coroutine, the fetch of another coroutine that is suspended (its
      -- transport yielded to a scheduler) goes on once this call gives way: fetching here too,
      -- each such call sent a login of its own, a wrong password as many times as calls. Not
      -- sent then. (The main thread asks on its own: its calls come one after another, and the
      -- token or the failure its login leaves serves those after it.)
      local co = record.co
      if not in_nginx and me ~= MAIN and co ~= nil and co ~= MAIN and co ~= me
          and coroutine.status(co) == "suspended" then
        error(fetch_busy(self), 0)
      end
      -- Cannot wait (see above), or the fetch is this coroutine's own (a hook that calls the
      -- client during it): fetch here, the other fetch left as it is.
      return fetch_now(self, runner, halt, req)
    end
    if not limit then
      started = now
      local bound = patience(self, runner, req)
      limit = now + bound
      -- A fetch in a timer of nginx's (start_detached: no coroutine of its own recorded) begins a
      -- turn after it was asked for, with the same budget as this call's: its failure (a
      -- timeout) came just after every caller had given up, each saying it had waited in vain
      -- and none what happened. Unless this call's own time is shorter (its deadline), it waits
      -- as long as that fetch may run, and takes its outcome.
      if record.co == nil and bound >= self:budget(runner) then limit = math.max(limit, record.until_) end
    end
    if wait_for(record, mode, runner, limit, in_nginx, halt) then error(wait_cancelled(self), 0) end
    now = core.monotime()
    if record.done then
      if not record.ok and not callers_doing(record.err) then
        local err = record.err
        error(errors.is_error(err) and errors.copy(err) or err, 0)
      end
      -- (credentials that are not fresh even as they come, a metadata service whose clock is
      -- behind: taken as they are after the fetch this call started, not fetched again and
      -- again, which inside nginx went on for ever; a fetch that brought nothing, another
      -- worker's login having passed meanwhile, is made again, for real)
      if fresh(self) or (record.caller == me and (self.token or self.keys) ~= nil) then return end
    elseif now >= limit then
      error(wait_timeout(self, now - started), 0)
    end
    -- the fetch left nothing fresh, or ran past its budget: look again (another call may have
    -- started the next one meanwhile), else fetch
  end
  local record = { until_ = now + self:budget(runner) + FETCH_MARGIN, waiters = 0, co = me, done = false,
    caller = me }
  self.fetching = record
  if mode == "ngx" and runner.transport.name == "auto" and not own_coroutine then
    record.co = nil -- the timer's, not this call's
    if start_detached(self, runner, fetch_now, record) then
      return fetch_once(self, runner, fetch_now, fresh, req, halt) -- waits for it like any other call
    end
    record.co = me
  end
  local ok, err = pcall(fetch_now, self, runner, halt, req)
  finish(self, record, ok, err)
  if not ok then error(err, 0) end
end

--- fetch_once, for what else a client fetches once for all its calls (eip.pipeline's project
-- lookup): `holder` has `fetching` (false at first), `budget(holder, runner)` and, for errors,
-- `fetch_what`, `fetch_method`, `fetch_path`.
M.fetch_once = fetch_once

local function fresh(self)
  return (self.token or self.keys) ~= nil and os.time() < self.refresh_at
end

-- The expiry `value` (ISO 8601) of credentials just fetched, or nil when unknown: unreadable, or
-- past already by this machine's clock (a clock that is off, a stale answer), which is said in
-- the log (`what`: "IAM's token expires"). Taken as due for renewal, such an expiry made every
-- request fetch them again.
local function known_expiry(runner, value, now, what)
  local expires = time.parse_iso8601(value)
  if expires and expires <= now then
    if runner.log then
      runner.log("eip: " .. what .. " at " .. runner:clean(tostring(value)) .. ", already past by this machine's "
        .. "clock (is it right?): taken as of unknown expiry")
    end
    return nil
  end
  return expires
end

-- Clocks further apart than this (seconds) read a token's expiry on IAM's clock (token_expiry).
local CLOCK_APART = 60
-- The longest lifetime a token is taken to have (IAM's tokens last a day).
local TOKEN_LIFETIME_MAX = 86400

-- The expiry, by this machine's clock, of the token IAM just gave (`res`: its expires_at and
-- issued_at), or nil when unknown. Where this clock is more than a minute from IAM's (issued_at
-- against now), its lifetime, expires_at less issued_at (both IAM's clock), counts from now: read
-- on this clock, a day's token from an IAM a day behind expired in seconds (renewed every few
-- seconds, all day), one from an IAM hours ahead lasted hours after the gateway refused it.
local function token_expiry(runner, res, now)
  local expires, issued = time.parse_iso8601(res.expires_at), time.parse_iso8601(res.issued_at)
  if not (expires and issued and expires > issued and math.abs(issued - now) > CLOCK_APART) then
    return known_expiry(runner, res.expires_at, now, "IAM's token expires")
  end
  local lifetime = math.min(expires - issued, TOKEN_LIFETIME_MAX)
  if runner.log then
    runner.log(string.format("eip: IAM's clock is %d s %s this machine's (is it right?): the token's lifetime, "
      .. "%d s, is counted from now", math.abs(issued - now), issued > now and "ahead of" or "behind", lifetime))
  end
  return now + lifetime
end

-- The longest a token request can take by its own bounds: every attempt's timeout and the
-- longest wait between two (a backoff, a 429's, a Retry-After), within the client's deadline.
local function request_budget(runner, attempts, timeout)
  local policy = runner.policy or {}
  local waits = math.max(policy.backoff_cap or 0, policy.retry_after_cap or 0, policy.throttle_max or 0)
  local budget = attempts * timeout + (attempts - 1) * waits
  if runner.deadline then budget = math.min(budget, runner.deadline) end
  return budget
end
M.request_budget = request_budget

---------------------------------------------------------------------------------------------
-- IAM password authentication: POST /v3/auth/tokens, cached until shortly before expiry.

local Iam = {}
Iam.__index = Iam

M.IAM_OPTIONS = { username = true, password = true, domain = true, project = true, project_id = true,
  iam_endpoint = true }

local function iam_provider(a, region, getenv)
  a = validate.options("auth", a, M.IAM_OPTIONS)
  local p = setmetatable({ kind = "iam", epoch = 0, fallible = true }, Iam)
  p.username = validate.account_name("auth.username", a.username)
  p.password = validate.secret("auth.password", a.password)
  p.domain = validate.account_name("auth.domain", a.domain)
  if (a.project == nil) == (a.project_id == nil) then
    raise("auth.project", "or auth.project_id is required (exactly one: the project to scope the token to)")
  end
  if a.project ~= nil then p.project = validate.id("auth.project", a.project) end
  if a.project_id ~= nil then p.project_id = validate.id("auth.project_id", a.project_id) end
  if a.iam_endpoint ~= nil then
    p.iam_endpoint = validate.endpoint("auth.iam_endpoint", a.iam_endpoint)
  else
    -- Project names are region names ("cn-north-4", or "cn-north-4_sub" for sub-projects).
    local r = region or (p.project and p.project:match("^[^_]+"))
    p.iam_endpoint = regions.iam_endpoint(r, getenv)
    -- (where it came from, for errors: the environment's variable, else the region's own)
    local set = getenv(regions.ENV_IAM)
    p.iam_endpoint_from = set ~= nil and set ~= "" and regions.ENV_IAM or nil
  end
  p.secrets = { p.password }
  return p
end

function Iam:body()
  local scope = self.project_id and { id = self.project_id } or { name = self.project }
  return json.encode{ auth = {
    identity = { methods = { "password" }, password = { user = {
      name = self.username, password = self.password, domain = { name = self.domain } } } },
    scope = { project = scope },
  } }
end

-- How long a failure to obtain a token that may pass (IAM busy or unreachable) is given to
-- every call instead of asking IAM again: a batch of a thousand ids must not send a thousand
-- token requests to a struggling IAM.
-- (M.TRANSIENT_FAILURE_HOLD, in seconds: read at each failure.)
M.TRANSIENT_FAILURE_HOLD = 5
-- The holds after the second, third... login in a row whose outcome is unknown (a timeout, a
-- reset, a garbled answer, a 5xx: IAM may have checked the password, and with a wrong one
-- counted a failed login; the first is held as any transient failure): a slow IAM refusing a
-- wrong password is not asked five times in the quarter of an hour an account lockout policy
-- counts over.
M.UNKNOWN_LOGIN_HOLDS = { 60, 900 }
-- Logins without an answer further apart than this (seconds) are not "in a row".
M.UNKNOWN_LOGIN_WINDOW = 900

-- Obtains a token through the pipeline (an iam_token op: no credentials, the same mapping
-- and retries as every call). A refusal (4xx: wrong password, unknown user or project) is
-- remembered and raised again without asking IAM: each failed login counts towards locking
-- the account. Other failures are remembered for a few seconds.
-- What a worker keeps of a failure for the others: its plain fields.
local function kept_fields(err)
  local fields = {}
  for k, v in pairs(err) do
    local t = type(v)
    if type(k) == "string" and (t == "string" or t == "number" or t == "boolean") then fields[k] = v end
  end
  return json.encode(fields)
end

-- With the client's signing_dict, inside nginx (see eip.signing): a refusal or a held failure
-- another worker's login met, made this client's own and raised; nothing when there is none.
local function from_other_workers(self, shared, prefix)
  local text, left = shared:login_refused(prefix)
  local why = "refused to another nginx worker's login: not asked again for a while"
  if not text then
    text, left = shared:login_held(prefix)
    why = "met by another nginx worker's login: held"
  end
  local fields = text and json.decode(text)
  if type(fields) ~= "table" then return end
  local err = errors.restore(fields)
  err.message = type(err.message) == "string" and err.message .. " (" .. why .. ")" or why
  self.failed = { err = errors.copy(err), until_ = core.monotime() + (left or 1) }
  error(err, 0)
end

-- The error of a call that found another worker logging in with these credentials and could
-- not wait for it (a phase where nginx cannot yield) or waited in vain: nothing sent.
local function login_busy()
  local err = errors.transport({ method = "POST", path = ops.IAM_PATH, attempts = 0 }, { error_kind = "timeout" },
    "not sent: another nginx worker is logging in to IAM with these credentials (one at a time, so that a "
    .. "wrong password is sent once); ask again once it is done")
  err.not_sent, err.retryable = true, true
  return err
end

-- Waits (inside nginx, where it can: a timer or a request's light thread; or where the process
-- serves no request yet, nginx's master in init_by_lua and init_worker_by_lua, with the system's
-- sleep: a reload's login there, made while a worker logged in, failed at once, and nginx kept
-- its old configuration) while another worker logs in with these credentials, at most
-- `seconds`; with `halt`, until its stop() says so (raised then: the call's caller ended it,
-- nothing sent). `req`: the request of the call's attempt, when known: its timeout (cut to the
-- call's deadline) bounds the wait too.
local function wait_for_login(self, shared, prefix, seconds, halt, req)
  local ngx = rawget(_G, "ngx")
  if not (ngx and (transport.yieldable() or transport.starting())) then return end
  local cut = req and req.timeout
  if type(cut) == "number" and cut < seconds then seconds = cut end
  local limit, ask_at = core.monotime() + seconds, -math.huge
  while shared:login_taken(prefix) and core.monotime() < limit do
    if halt and core.monotime() >= ask_at then
      if halt.stop() then error(wait_cancelled(self), 0) end
      ask_at = core.monotime() + CANCEL_INTERVAL
    end
    transport.sleep(FETCH_POLL)
  end
end

-- Inside nginx with signing_dict: the workers' outcomes are shared (a refusal, a held failure,
-- the count of logins without an answer), and they log in one at a time (each worker's client
-- logged in once with a wrong password: five workers, a locked user), but for the workers that
-- waited for a login that has just passed. Returns the right to log in taken, if any. `halt`:
-- what may stop the wait for another worker's login; `req`: what bounds it besides (see
-- wait_for_login).
local function login_turn(self, runner, shared, prefix, halt, req)
  from_other_workers(self, shared, prefix)
  local ttl = runner.timeout + 1 -- (one attempt: with signing_dict, a login is one attempt)
  local mine = shared:take_login(prefix, ttl)
  if mine == nil then
    wait_for_login(self, shared, prefix, ttl, halt, req)
    from_other_workers(self, shared, prefix)
    if shared:login_passed(prefix) then return nil end
    mine = shared:take_login(prefix, ttl)
    if mine == nil then error(login_busy(), 0) end
  end
  -- Taken: a login of another worker that ended between the look above and the take (its
  -- refusal, or its failure held for all) stands for this one too, which then sends nothing.
  -- (It was looked at only before: two workers each sent the wrong password.)
  if mine then
    local ok, err = pcall(from_other_workers, self, shared, prefix)
    if not ok then
      shared:give_login(prefix, mine)
      error(err, 0)
    end
  end
  return mine or nil
end

-- IAM's refusals of a login, for every client of the process with the same credentials (IAM's
-- endpoint, the domain, user, password and scope): each client remembered its own only, and the
-- one-shot form in a loop (a client per call), or a client per task, sent a wrong password once per
-- client, five of them a locked IAM user. Kept the quarter of an hour an account lockout policy
-- counts failures over. Not with signing_dict, which keeps them for the clients of every worker
-- (until emptied by whoever fixed the cause). Keys hold the password: this table is the module's
-- own, never shown.
-- Likewise the count of logins in a row without an answer (`unknowns`: n, and when the last
-- was) and the hold it brings (kept with the refusals, `held`): a one-shot call per id against a
-- slow IAM sent a login each, none counted.
local REFUSALS_TTL = 900
local refusals, unknowns = {}, {}
-- Both swept of what has ended as entries are written (a process meeting ever new credentials, a
-- worker serving many tenants, kept every one for its life): after as many writes as the entries
-- the last sweep left (SWEEP_AFTER at least), so a sweep's cost is spread over the writes before it.
M.SWEEP_AFTER = 64
local writes, sweep_after = 0, M.SWEEP_AFTER

local function sweep(now)
  local left = 0
  for key, kept in pairs(refusals) do
    if now >= kept.until_ then refusals[key] = nil else left = left + 1 end
  end
  for key, u in pairs(unknowns) do
    if now - u.at > M.UNKNOWN_LOGIN_WINDOW then unknowns[key] = nil else left = left + 1 end
  end
  writes, sweep_after = 0, math.max(M.SWEEP_AFTER, left)
end

-- Keeps `value` under `key` in one of the two tables (nil: forgets it).
local function keep(tbl, key, value)
  if value ~= nil then
    writes = writes + 1
    if writes > sweep_after then sweep(core.monotime()) end
  end
  tbl[key] = value
end

local function login_key(self)
  return table.concat({ self.iam_endpoint, self.domain, self.username, self.password, self.project_id or "",
    self.project or "" }, "\n")
end

-- A refusal another client of the process met with these credentials, made this client's own
-- (until it ends) and raised; nothing when there is none.
local function from_other_clients(self)
  local key = login_key(self)
  local kept = refusals[key]
  if not kept then return end
  local now = core.monotime()
  if now >= kept.until_ then
    refusals[key] = nil
    return
  end
  local err = errors.copy(kept.err)
  local why = string.format("%s another client's login with these credentials: not asked again for %d s",
    kept.held and "met by" or "refused to", math.ceil(kept.until_ - now))
  err.message = type(err.message) == "string" and err.message .. " (" .. why .. ")" or why
  self.failed = { err = errors.copy(err), until_ = kept.until_ }
  error(err, 0)
end

-- Forgets the refusals of IAM logins that every client of the process shares (for a quarter of
-- an hour; a client keeps its own for its life): the next client made logs in again (specs).
function M.forget_refusals()
  refusals, unknowns = {}, {}
  writes, sweep_after = 0, M.SWEEP_AFTER
end

-- How many credentials the process keeps a refusal or a count of logins without an answer for
-- (specs).
function M.kept_logins()
  local n = 0
  for _ in pairs(refusals) do n = n + 1 end
  for _ in pairs(unknowns) do n = n + 1 end
  return n
end

-- A failure held `hold` seconds after logins without an answer, for the other clients of the
-- process (not with signing_dict: see refusals).
local function hold_for_clients(self, shared, err, hold)
  if not shared then keep(refusals, login_key(self), { err = errors.copy(err), until_ = core.monotime() + hold,
    held = true }) end
end

-- A login without an answer (IAM may have checked the password, and counted a wrong one): the
-- count of them in a row, within a quarter of an hour, taken; returns it. With shared counts the
-- workers' count is the one: a login another worker passed since restarted it (this client's
-- own count would still hold the logins before that success).
local function unknown_login(self, shared, prefix)
  local now = core.monotime()
  local n = (self.unknown_logins or 0) + 1
  if self.unknown_at and now - self.unknown_at > M.UNKNOWN_LOGIN_WINDOW then n = 1 end
  local counted = shared and shared:login_unknown(prefix)
  if counted then n = counted end
  if not shared then -- (the process's other clients with these credentials: see refusals)
    local key = login_key(self)
    local u = unknowns[key]
    if u and now - u.at <= M.UNKNOWN_LOGIN_WINDOW and u.n >= n then n = u.n + 1 end
    keep(unknowns, key, { n = n, at = now })
  end
  self.unknown_logins, self.unknown_at = n, now
  return n
end

-- The hold the n-th login in a row without an answer brings (UNKNOWN_LOGIN_HOLDS from the
-- second; 0 for the first).
local function unknown_hold(n)
  local holds = M.UNKNOWN_LOGIN_HOLDS
  return n > 1 and holds[math.min(n - 1, #holds)] or 0
end

-- How long a failed login's error is given instead of asking IAM (nil: for good, a refusal),
-- remembered by the client and, with signing_dict, by every worker. A refusal is definitive;
-- IAM throttling (429) or a request timeout (408) may pass, after a hold that grows with the
-- logins in a row without an answer (within a quarter of an hour: IAM may have counted each as
-- a failed one; the workers' together) and honours a Retry-After up to the client's cap.
local function login_failed(self, runner, res, shared, prefix, counted)
  local now = core.monotime()
  if res.kind == "http" and res.status >= 400 and res.status < 500 and not retry.status_retryable(res.status) then
    -- (with signing_dict, as long as the workers' copy: see eip.signing)
    self.failed = { err = errors.copy(res), until_ = shared and now + shared:refusal_ttl() or nil }
    if not shared then keep(refusals, login_key(self), { err = errors.copy(res), until_ = now + REFUSALS_TTL }) end
    unknowns[login_key(self)] = nil
    self.unknown_logins = 0 -- (IAM answered, saying what it did)
    if shared then
      shared:refuse_login(prefix, kept_fields(res))
      shared:login_answered(prefix)
    end
    return
  end
  local hold, unknown = M.TRANSIENT_FAILURE_HOLD, 0
  if errors.may_have_acted(res) then
    -- (one found lost meanwhile is counted already: Iam:fetch_lost)
    unknown = unknown_hold(counted and (self.unknown_logins or 0) or unknown_login(self, shared, prefix))
    hold = math.max(hold, unknown)
  elseif res.kind == "http" then
    self.unknown_logins = 0 -- IAM answered, saying what it did
    unknowns[login_key(self)] = nil
    if shared then shared:login_answered(prefix) end
  end
  local ra = retry.parse_retry_after(res.retry_after, os.time(), res.date)
  if ra and ra > hold then hold = math.min(ra, (runner.policy or {}).retry_after_cap or ra) end
  self.failed = { err = errors.copy(res), until_ = now + hold }
  if shared then shared:hold_login(prefix, kept_fields(res), hold) end
  if unknown > 0 then hold_for_clients(self, shared, res, hold) end
end

-- A login its caller aborted after it went out (see iam_fetch): counted among the logins without
-- an answer; from the second in a row, the next ones are held (UNKNOWN_LOGIN_HOLDS) with an error
-- that says why (kind "refused", reason "unanswered", not sent).
local function aborted_login(self, shared, prefix)
  local n = unknown_login(self, shared, prefix)
  local hold = unknown_hold(n)
  if hold == 0 then return end
  local _, method, path = fetch_target(self)
  local err = errors.restore{
    kind = "refused", reason = "unanswered", retryable = false, not_sent = true, method = method, path = path,
    message = string.format("IAM login not sent: the last %d logins went out and got no answer (aborted or timed "
      .. "out), and IAM may have counted each as a failed login; none is sent for %d s", n, hold),
  }
  self.failed = { err = err, until_ = core.monotime() + hold }
  if shared then shared:hold_login(prefix, kept_fields(err), hold) end
  hold_for_clients(self, shared, err, hold)
end

local function iam_fetch(self, runner, halt, req)
  local failed = self.failed
  if failed and (failed.until_ == nil or core.monotime() < failed.until_) then error(errors.copy(failed.err), 0) end
  if not self.login_dict then from_other_clients(self) end
  local login, why = self:body()
  if not login then errors.raise_usage("auth", "cannot be written as IAM's login body (%s)", tostring(why)) end
  local shared, prefix, mine = self.login_dict, nil, nil
  local op = ops.iam_token(self.iam_endpoint, login)
  if shared then
    prefix = shared:login_prefix(self)
    mine = login_turn(self, runner, shared, prefix, halt, req)
    -- One attempt while it holds the right to log in (its time is one attempt's): what may pass
    -- (a 429, a refused connection) is held for every worker, and asked again after the hold.
    op.max_attempts = 1
  end
  -- This login, until it returns (see Iam:fetch_lost): its own mark, so that one found lost
  -- and then resumed neither clears the mark of the login that took it over nor is counted again.
  local mark = {}
  self.logging_in = mark
  local ok, res = errors.held(runner.run, runner, op, halt and halt.stop, halt and halt.abort)
  if self.logging_in == mark then self.logging_in = nil end
  if not ok then
    if callers_doing(res) then
      -- Ended by the caller (its halt, a Ctrl-C): no failure of IAM's. One aborted after it
      -- went out (or after an attempt of it that got no answer) may have been checked all the
      -- same, a wrong password counted: a login without an answer, and from the second in a row
      -- the next logins are held as after any such (login_failed), whoever ends them (a caller
      -- aborting each run against a slow IAM must not get round the lockout's count). The first
      -- holds nothing: the next call logs in. One stopped after an answer (a 429) is none.
      if not mark.lost and ((res.kind == "interrupted" and not res.cancelled) or res.earlier_unanswered) then
        aborted_login(self, shared, prefix)
      end
    elseif errors.is_error(res) then
      login_failed(self, runner, res, shared, prefix, mark.lost)
    end
    if mine then shared:give_login(prefix, mine) end
    error(res, 0)
  end
  if shared then
    shared:login_ok(prefix, runner.timeout + 1)
    if mine then shared:give_login(prefix, mine) end
  end
  self.failed, self.renewal_failed, self.unknown_logins = nil, false, 0
  local key = login_key(self)
  refusals[key], unknowns[key] = nil, nil
  self.by_refresh, self.proven = false, false -- (Iam:refresh says when a 401 made it)
  local now = os.time()
  local expires = token_expiry(runner, res, now)
    or (now + 3600) -- unknown expiry: assume an hour (a 401 gets a new one)
  -- Refresh ahead of expiry: 10 minutes, or half the lifetime for short-lived tokens.
  local margin = math.min(600, math.max(0, (expires - now) / 2))
  self.token, self.refresh_at, self.expires = res.token, expires - margin, expires
  replace_secret(self, 2, res.token)
  self.epoch = self.epoch + 1
  if not self.project_id and type(res.project_id) == "string" then
    self.project_id = validate.id("project_id", res.project_id)
  end
end

--- Obtains a token (iam_fetch above), one fetch at a time (fetch_once). `req`: the request of
-- the call that needs it, when there is one; `halt`: what may stop it (see fetch_once).
function Iam:fetch(runner, req, halt)
  fetch_once(self, runner, iam_fetch, fresh, req, halt)
end

--- A fetch found abandoned (fetch_once): its coroutine died inside the login (closed by a
-- scheduler that gave up on it) or never came back within its budget. A login that went out
-- may have been checked, a wrong password counted: a login without an answer, as one its caller
-- aborted (aborted_login), or closing each task of a scheduler against a slow IAM sent one login
-- per task, none counted.
function Iam:fetch_lost()
  local mark = self.logging_in
  if not mark then return end
  self.logging_in, mark.lost = nil, true
  local shared = self.login_dict
  aborted_login(self, shared, shared and shared:login_prefix(self))
end

--- The longest the token request can take (see fetch_once): the client's attempts and timeout,
-- and, inside nginx with signing_dict, the wait for another worker's login (one attempt).
function Iam.budget(self, runner)
  local budget = request_budget(runner, (runner.policy or {}).max_attempts or 1, runner.timeout)
  if self.login_dict then budget = budget + runner.timeout + 1 end
  return budget
end

-- Renews credentials at their refresh time (ahead of expiry). A renewal that fails while the
-- current ones are still valid keeps them: a batch goes on with them rather than failing ids
-- that could have been sent (a failure that may pass is asked again after its hold, a refusal is
-- not asked again at all). Only once they are about to expire does the failure stand: a request
-- must not go out with credentials that may expire before it arrives. A renewal its caller
-- stopped (`halt`, a Ctrl-C) is no failure: raised as it is. Nor is there anything to keep when
-- a 401 to another call made the provider give them up while this renewal ran (see refresh):
-- the failure stands (the call went on to sign with none, a raw Lua error).
local function renew(self, runner, req, halt)
  local ok, err = errors.held(self.fetch, self, runner, req, halt)
  if ok then return end
  local slack = math.min(60, (self.expires - self.refresh_at) / 2)
  if not errors.is_error(err) or callers_doing(err) or (self.token or self.keys) == nil
      or os.time() >= self.expires - slack then
    error(err, 0)
  end
  if runner.log and not self.renewal_failed then
    runner.log(string.format("eip: renewing the credentials failed (%s); the current ones stay in use until "
      .. "%d s before they expire", runner:clean(tostring(err)), math.floor(slack)))
  end
  self.renewal_failed = true
end

-- Would signing the next request renew credentials still in use, sending a request (a renewal
-- due, and no failure of the last one held: a held failure is given at once, and a refusal
-- always)? A libcurl batch then lets its transfers in flight end before it starts another
-- request (see eip.batch): a renewal blocks the process, and the transfers it did not drive
-- meanwhile timed out with their answers waiting (deletes carried out, reported failed).
local function renewal_due(self)
  if (self.token or self.keys) == nil or os.time() < self.refresh_at then return false end
  local failed = self.failed
  return not failed or (failed.until_ ~= nil and core.monotime() >= failed.until_)
end

--- Must a token be fetched, or a fetch under way waited for, before the next request takes its
-- slot of the client's `rate` (none yet, another call logging in, one due for renewal)?
-- eip.pipeline's keys_first then does it first (as for eip.auth's Metadata:due). A call that
-- took its slot and then logged in as its request was signed sent its login in the next free
-- slot and its own request right behind it (its slot long passed): two requests together,
-- and inside nginx every call that waited for that login went out at once with it.
-- A renewal is due here too, unlike temporary keys merely due (renewed as they sign, see
-- Metadata:due): the same burst came at each renewal; and the reason keys are not renewed first,
-- a renewal twice per call for keys already due as they come, does not arise: a token's refresh
-- time is at least half its lifetime ahead of its arrival (an expiry already past is taken as
-- an hour's). A renewal whose failure is held is asked too: held within the token's validity it
-- costs no request; near its expiry it ends the call before it takes a slot, nothing sent.
-- With a token held: two field reads and os.time(), which ensure reads anyway; nothing allocated.
function Iam:due()
  if not self.token then return true end
  local fetching = self.fetching -- (nil or false: none)
  return (fetching and not fetching.done) == true or os.time() >= self.refresh_at
end

function Iam:ensure(runner, req, halt)
  if not self.token then
    self:fetch(runner, req, halt)
  elseif os.time() >= self.refresh_at then
    renew(self, runner, req, halt)
  end
end

--- The request's lines: headers', then X-Auth-Token, after making sure the token is valid
-- (fetching one through the runner when needed; `halt`: what may stop that).
function Iam:lines(req, headers, runner, halt)
  self:ensure(runner, req, halt)
  if self.line_of ~= self.token then -- the line is made once per token (kilobytes long)
    self.line, self.line_of = "X-Auth-Token: " .. self.token, self.token
  end
  return lines_then(headers, self.line)
end

--- An answer to a request carrying the token of `epoch` that was no 401: that token passed.
function Iam:passed(epoch)
  if epoch == self.epoch then self.proven, self.refresh_hold = true, nil end
end

--- After a 401 to a call carrying the current token: a new token, once (the pipeline asks at
-- most once per call). Not when the current token is itself one a 401 made and no answer has
-- passed yet (false: the 401 is final, nothing is sent again): while the gateway refuses every
-- token (another site's IAM, a project of another region), each call once logged in again and
-- sent its delete twice. Such a token is given up after a hold, though (a minute, doubling up to
-- 15 minutes while each new one is refused too): one revoked as it was made left a long-lived
-- client failing every call until its expiry, a day later.
function Iam:will_refresh()
  if not (self.by_refresh and not self.proven) then return true end
  return core.monotime() - self.refreshed_at >= self.refresh_hold
end

-- The first hold after a token a 401 made, and the longest (seconds; read at each refresh).
M.REFRESH_HOLD, M.REFRESH_HOLD_MAX = 60, 900

function Iam:refresh(runner, halt)
  if not self:will_refresh() then return false end
  local unproven = self.by_refresh and not self.proven -- (the last one a 401 made was refused too)
  self.token = nil
  self:fetch(runner, nil, halt)
  -- Once per token: calls whose 401s came together (a scheduler's coroutines, nginx's requests)
  -- all waited for the same login, and each doubled the hold (eight calls: 15 minutes, not two).
  if self.refreshed_epoch == self.epoch then return end
  self.refreshed_epoch = self.epoch
  self.by_refresh, self.proven, self.refreshed_at = true, false, core.monotime()
  self.refresh_hold = unproven and math.min(M.REFRESH_HOLD_MAX, 2 * (self.refresh_hold or M.REFRESH_HOLD))
    or M.REFRESH_HOLD
end

---------------------------------------------------------------------------------------------
-- ECS instance metadata: temporary AK/SK of the agency attached to the server, from the
-- metadata service, refreshed before they expire; signing as with any AK/SK.

local Metadata = {}
Metadata.__index = Metadata

metadata_provider = function(base, looked)
  return setmetatable({ kind = "metadata", base = base, looked = looked, epoch = 0, fallible = true,
    secrets = {} }, Metadata)
end

-- The error of a metadata service that gave nothing. At the first fetch, a usage error: no
-- credentials anywhere (where else was looked). At a renewal (keys it gave expire, or a 401
-- asked for new ones), a "credentials" error: nothing the caller gave is wrong, and an outage
-- passes (it was a usage error, which the eip command showed as "NOT SENT <id> invalid" and a
-- batch took for "an authentication failure", none of them retryable).
-- Why: no answer, else the status and what the service said (its code and message, as
-- cleaned when the answer was read: eip.pipeline), or what its 2xx lacked ("it answered 200:
-- the answer has no credential.securitytoken"): a bare status left "it answered 200".
local function nothing_found(self, err)
  local why
  if err.kind ~= "http" then -- (a transport's failure, a proxy's)
    why = "no answer: " .. tostring(err.reason)
  else
    local said = err.code and err.message and (err.code .. ": " .. err.message) or err.code or err.message
    why = "it answered " .. tostring(err.status) .. (said and (": " .. said) or "")
  end
  if self.last_keys then -- (a refresh clears self.keys before it asks)
    return errors.credentials(string.format("credentials not renewed: the ECS metadata service at %s gave no new "
      .. "temporary keys (%s)", self.base, why), err)
  end
  local e = errors.usage("credentials", "not found: looked at %s (%s)", table.concat(self.looked, "; then "), why)
  e.cause = err
  return e
end

-- The longest a renewal waits for keys in their last second to expire (see metadata_fetch), and
-- how often it looks.
local EXPIRY_WAIT, EXPIRY_POLL = 2.5, 0.1

-- Asks the metadata service for temporary keys (a session token first; a service without the
-- token endpoint answers 404, 405 or 503, and is asked without one). A failure is remembered for
-- a few seconds, as for IAM: a batch must not wait 3 s per id for a service that is not there.
-- (The call's request, fetch_once's fourth argument, bounds nothing here; `again`: see below.)
local function metadata_fetch(self, runner, halt, req, again)
  -- (the call's deadline, when it has one: eip.pipeline's keys_first gives it, core.monotime)
  local call_ends = req and type(req.ends) == "number" and req.ends or nil
  local failed = self.failed
  if failed and core.monotime() < failed.until_ then error(errors.copy(failed.err), 0) end
  local stop, abort = halt and halt.stop, halt and halt.abort
  local ok, token = errors.held(runner.run, runner, ops.metadata_token(self.base), stop, abort)
  if not ok then
    local e = token
    -- (ended by its caller, see callers_doing: nothing to hold)
    if not errors.is_error(e) or callers_doing(e) then error(e, 0) end
    if not (e.kind == "http" and (e.status == 404 or e.status == 405 or e.status == 503)) then
      local err = nothing_found(self, e)
      self.failed = { err = err, until_ = core.monotime() + M.TRANSIENT_FAILURE_HOLD }
      error(err, 0)
    end
    token = nil
  end
  -- The session token is a credential too (it reads the agency's keys): redacted like them, from
  -- the request that carries it on (a service may echo it in an error).
  if token then replace_secret(self, 3, token) end
  local asked = os.time()
  local cok, c = errors.held(runner.run, runner, ops.metadata_credentials(self.base, token), stop, abort)
  if not cok then
    if not errors.is_error(c) or callers_doing(c) then error(c, 0) end
    local err = nothing_found(self, c)
    self.failed = { err = err, until_ = core.monotime() + M.TRANSIENT_FAILURE_HOLD }
    error(err, 0)
  end
  self.failed = nil
  -- Keys in their last second (this clock's seconds, the expiry's fraction dropped), or past
  -- since they were asked for (a slow answer): the service hands them out until they expire.
  -- Taken, they read as of unknown expiry (past by this clock), and were signed with for 15
  -- minutes, each request refused; so were those a first fetch got in their last second. Asked
  -- for again once they have expired (once: a service that still gives them is taken as it is;
  -- keys past already when asked, a clock that is off, are taken at once).
  local ends = time.parse_iso8601(c.expires_at)
  if not again and ends and os.time() >= ends - 1 and asked <= ends + 1 then
    for _ = 1, EXPIRY_WAIT / EXPIRY_POLL do
      if os.time() > ends or (halt and halt.stop and halt.stop()) then break end
      -- The call's deadline counts the wait too: ending first, nothing is sent (the keys, about
      -- to expire, are not kept: the next call asks again).
      if call_ends and core.monotime() + EXPIRY_POLL >= call_ends then error(expiry_past_deadline(self), 0) end
      runner.sleep(EXPIRY_POLL)
    end
    return metadata_fetch(self, runner, halt, call_ends and { timeout = math.max(0, call_ends - core.monotime()),
      ends = call_ends } or nil, true)
  end
  local names = { ak = "metadata credential.access", sk = "metadata credential.secret",
    security_token = "metadata credential.securitytoken" }
  local keys, last = aksk_provider(c.ak, c.sk, c.security_token, names), self.last_keys
  self.keys, self.last_keys = keys, keys
  -- The epoch changes with the keys only: the same keys handed out again (as the service does
  -- until it renews them) are not new credentials, and a call refused with them is not sent
  -- again as if they were (see eip.retry's "again").
  if not (last and last.ak == keys.ak and last.sk == keys.sk and last.security_token == keys.security_token) then
    self.epoch = self.epoch + 1
  end
  -- Refused signatures are counted per key (the gateway locks a key): a new key starts afresh,
  -- and answers to requests signed before it came are not counted for it (see rejected). A key
  -- handed out again (A, B, A: the service's replicas during a rotation) goes on from its own
  -- counts, kept by AK as the gateway keeps them: started afresh at each change, each of two
  -- keys handed out in turn was refused without end (a review's audit).
  -- (the AK of each epoch, the last KEPT_COUNTS_MAX: answers to requests signed before a change
  -- are counted for the key that signed them, see counted_elsewhere)
  local by_epoch = self.ak_of_epoch or {}
  self.ak_of_epoch = by_epoch
  by_epoch[self.epoch], by_epoch[self.epoch - KEPT_COUNTS_MAX] = keys.ak, nil
  if keys.ak ~= self.counted_ak then
    if self.counted_ak then
      local counts = (self.strikes or self.doubts or self.refused)
        and { strikes = self.strikes or nil, doubts = self.doubts or nil, refused = self.refused or nil } or nil
      keep_counts(self, self.counted_ak, counts, keys.ak)
    end
    local back = (self.counts_by_ak or {})[keys.ak] or {}
    self.counted_ak, self.key_epoch = keys.ak, self.epoch
    self.strikes, self.doubts, self.refused = back.strikes or false, back.doubts or false, back.refused or false
  end
  replace_secret(self, 1, keys.sk)
  replace_secret(self, 2, keys.security_token)
  local now = os.time()
  local expires = known_expiry(runner, c.expires_at, now, "the metadata service's temporary keys expire")
    or (now + 900) -- unknown: assume 15 minutes
  -- Refresh ahead of expiry: 40 minutes, as the official SDKs do for these keys, or half the
  -- lifetime for short-lived ones.
  self.refresh_at = expires - math.min(2400, math.max(0, (expires - now) / 2))
  self.expires, self.renewal_failed = expires, false
end

--- Obtains temporary keys (metadata_fetch above), one fetch at a time (fetch_once). `req`: the
-- request of the call that needs them, when there is one; `halt`: what may stop it.
function Metadata:fetch(runner, req, halt)
  fetch_once(self, runner, metadata_fetch, fresh, req, halt)
end

--- The longest a fetch can take (see fetch_once): its two requests, one attempt each within the
-- metadata requests' own timeout, the wait for keys in their last second to expire, and the two
-- requests it then makes again (counted without them, the calls waiting for a slow service gave
-- up before it answered, "not sent", and the next call fetched too).
function Metadata:budget(runner)
  local timeout = math.min(runner.timeout, ops.metadata_token(self.base).timeout or runner.timeout)
  return 4 * request_budget(runner, 1, timeout) + EXPIRY_WAIT
end

--- Must keys be fetched, or a fetch under way waited for, before the next request is signed
-- (none yet, none since a 401 asked for new ones, or another call of this client renewing them
-- inside nginx)? eip.pipeline then does it before the call takes a signing place: a call
-- waiting for the metadata service must not hold one (four such calls left none for the
-- others, and calls admitted before any key was known took no place in the workers' shared
-- counts). A renewal this call starts is made as its request is signed (see ensure).
function Metadata:due()
  local fetching = self.fetching -- (nil or false: none)
  -- (refused keys due for renewal too: renewed before the call takes its place, so that the
  -- place is counted for the new key; the call that renewed them once went out without one,
  -- beside four that took the new key's places as soon as it came. Keys merely due are renewed
  -- as the request is signed: see Call:request for a place that ran out meanwhile.) So are keys
  -- due whose last renewal failed: asked first, a failure held (or met again) ends the call
  -- before it takes a slot of the rate, when the keys are too near their expiry to sign with; a
  -- batch whose keys expired during an outage waited out a slot per id to say it sent nothing.
  return not self.keys or (fetching and not fetching.done) == true
    or ((self.refused or self.failed) and os.time() >= self.refresh_at) == true
end

function Metadata:ensure(runner, req, halt)
  if not self.keys then
    self:fetch(runner, req, halt)
  elseif os.time() >= self.refresh_at then
    renew(self, runner, req, halt)
  end
end

--- The request's lines, signed with the temporary keys, after making sure they are valid
-- (fetching them from the metadata service through the runner when needed; `halt`: what may
-- stop that).
function Metadata:lines(req, headers, runner, halt)
  self:ensure(runner, req, halt)
  -- Renewed keys that are the refused ones again (see Metadata:refusal): nothing is signed.
  if self.refused then error(refusal(self), 0) end
  return self.keys:lines(req, headers)
end

--- After a 401 to keys that looked valid: new ones, once per call. Returns false when the
-- metadata service gave the same keys again (it hands out the same temporary keys until they
-- are renewed): sending again would only be refused again, one more signature towards the lock.
function Metadata:refresh(runner, halt)
  -- (the keys this call signed with: another call's refresh under way has cleared self.keys, and
  -- those are still the last ones fetched, or the pipeline would have sent it again with new ones)
  local old = self.keys or self.last_keys
  self.keys = nil
  self:fetch(runner, nil, halt)
  local new = self.keys
  if old and new.ak == old.ak and new.sk == old.sk and new.security_token == old.security_token then return false end
  return true
end
-- (The refusal of keys refused too often. Keys due for renewal are renewed before a call takes
-- its place, see Metadata:due: new keys start a new count; the same keys again stay refused.)
Metadata.rejected, Metadata.accepted, Metadata.sync, Metadata.next_seq = rejected, accepted, sync, next_seq
Metadata.unanswered, Metadata.lift, Metadata.refusal = unanswered, lift, refusal
Metadata.renewal_due, Iam.renewal_due = renewal_due, renewal_due

---------------------------------------------------------------------------------------------
-- Resolution.

local function explicit(opts, region, getenv)
  local groups = {}
  if opts.token ~= nil then groups[#groups + 1] = "token" end
  if opts.ak ~= nil or opts.sk ~= nil or opts.security_token ~= nil then
    -- (named as given: a token with a security_token alone was "token and ak/sk")
    local given = {}
    for _, k in ipairs{ "ak", "sk", "security_token" } do
      if opts[k] ~= nil then given[#given + 1] = k end
    end
    groups[#groups + 1] = (opts.ak ~= nil and opts.sk ~= nil) and "ak/sk" or table.concat(given, " and ")
  end
  if opts.auth ~= nil then groups[#groups + 1] = "auth" end
  if #groups > 1 then
    -- Named after the token, else the auth table; the message lists the others after it.
    local first = groups[1] == "token" and "token" or "auth"
    local others = {}
    for _, g in ipairs(groups) do
      if g ~= first then others[#others + 1] = g end
    end
    raise(first, "and %s are exclusive: give one way to authenticate", table.concat(others, " and "))
  end
  if opts.token ~= nil then return token_provider(opts.token, "token") end
  if opts.ak ~= nil or opts.sk ~= nil or opts.security_token ~= nil then
    if opts.ak == nil and opts.sk == nil then raise("ak", "and sk are required with security_token") end
    if opts.ak == nil then raise("ak", "is required with sk") end
    if opts.sk == nil then raise("sk", "is required with ak") end
    return aksk_provider(opts.ak, opts.sk, opts.security_token,
      { ak = "ak", sk = "sk", security_token = "security_token" })
  end
  if opts.auth ~= nil then return iam_provider(opts.auth, region, getenv) end
end

local function from_env(getenv)
  local E = M.ENV
  if env(getenv, E.idp_id) and env(getenv, E.id_token_file) then
    raise(E.idp_id, "and %s %s", E.id_token_file, FEDERATED)
  end
  local ak, sk, st = env(getenv, E.ak), env(getenv, E.sk), env(getenv, E.security_token)
  if ak or sk then
    if not ak then raise(E.ak, "is not set but %s is", E.sk) end
    if not sk then raise(E.sk, "is not set but %s is", E.ak) end
    return aksk_provider(ak, sk, st, { ak = E.ak, sk = E.sk, security_token = E.security_token })
  end
  local token = env(getenv, E.token)
  if token then return token_provider(token, E.token) end
end

-- The profile file's [basic] section as a provider, and its project_id and iam_endpoint.
local function from_profile(getenv, warn, looked)
  local basic, where_looked = profile.read(getenv, warn)
  if not basic then
    looked[#looked + 1] = where_looked
    return nil
  end
  local where = basic.path .. " [basic]"
  if (basic.idp_id or "") ~= "" and (basic.id_token_file or "") ~= "" then
    raise("credentials file", "%s: idp_id and id_token_file %s", where, FEDERATED)
  end
  local no_ak, no_sk = (basic.ak or "") == "", (basic.sk or "") == ""
  if no_ak or no_sk then
    -- As the official SDKs do: a file without both keys (a template left empty) is passed over
    -- for the next place, the ECS metadata service.
    looked[#looked + 1] = "the profile file " .. where .. " (no "
      .. (no_ak and no_sk and "ak and sk" or no_ak and "ak" or "sk") .. ": passed over)"
    return nil
  end
  local p = aksk_provider(basic.ak, basic.sk, basic.security_token ~= "" and basic.security_token or nil,
    { ak = where .. " ak", sk = where .. " sk", security_token = where .. " security_token" })
  local found = { source = where }
  if basic.project_id and basic.project_id ~= "" then
    -- Checked by eip.client once the keys are registered: one holding the SK is never quoted.
    found.project_id, found.project_name = basic.project_id, where .. " project_id"
  end
  if basic.iam_endpoint and basic.iam_endpoint ~= "" then
    -- (a host name alone is https, as HUAWEICLOUD_SDK_IAM_ENDPOINT's and the SDKs' own)
    found.iam_endpoint = validate.endpoint(where .. " iam_endpoint", regions.bare_https(basic.iam_endpoint))
  end
  return p, found
end

local function index(t, k) return t[k] end

--- The option `name` of `t` as eip.new reads it (eip.validate.options indexes: an `__index`
-- default counts, and signs), or nil: `t` is no table, or a metamethod of it raised (eip.new
-- says so, naming the table). For what must be known before the options are checked (their
-- secrets): a raw read missed a password behind `__index`, then quoted in the region's error.
-- @param t the options (or `auth`) as given
-- @tparam string name the option
-- @return its value, or nil
function M.option(t, name)
  if type(t) ~= "table" then return nil end
  local ok, v = pcall(index, t, name)
  if ok then return v end
  return nil
end

--- The secret values the options and the places credentials are looked for hold, as far as they
-- can be read without a request: the options token, sk, security_token and auth.password, the
-- environment's token, SK and security token, the profile file's sk and security_token
-- (see eip.profile.secrets). For redaction before (and whatever) the credentials are resolved:
-- a value that holds one is never quoted, even in the errors raised on the way there. The
-- options are read as eip.new reads them (see @{option}).
-- @tparam table opts the client's options (anything else: none of them)
-- @tparam[opt] function getenv replaces os.getenv (tests)
-- @treturn {string,...}
function M.known_secrets(opts, getenv)
  getenv = getenv or os.getenv
  local out = {}
  local function add(v)
    if type(v) == "string" and v ~= "" then out[#out + 1] = v end
  end
  add(M.option(opts, "token"))
  add(M.option(opts, "sk"))
  add(M.option(opts, "security_token"))
  add(M.option(M.option(opts, "auth"), "password"))
  for _, key in ipairs{ "token", "sk", "security_token" } do add(env(getenv, M.ENV[key])) end
  for _, v in ipairs(profile.secrets(getenv)) do add(v) end
  return out
end

--- Every option that carries or names credentials (when one is given, the metadata service is
-- never asked).
M.CREDENTIAL_OPTIONS = { token = true, ak = true, sk = true, security_token = true, auth = true }

--- The option `metadata_url`: nil (not given), false (never ask the metadata service) or an
-- http(s) URL, returned normalised (see eip.validate.endpoint). Anything else is a usage error
-- naming it, raised whether or not the metadata service would be asked.
function M.metadata_url(v)
  if v == nil or v == false then return v end
  if type(v) ~= "string" then
    raise("metadata_url", "must be an http:// or https:// URL, or false (never ask the metadata service), got a %s",
      type(v))
  end
  return validate.endpoint("metadata_url", v)
end

--- The provider for these options, in the official order: options, the environment
-- (HUAWEICLOUD_SDK_AK/SK/SECURITY_TOKEN, then OS_AUTH_TOKEN), the profile file, the ECS metadata
-- service (`metadata_url`, false: never). Returns the provider and what the source also gave
-- (`project_id`, `iam_endpoint`, `env_project_id`; `from_env`: the keys are the environment's;
-- `source`: the profile file's section they came from): HUAWEICLOUD_SDK_PROJECT_ID goes with the
-- environment's credentials, as in the official SDKs, whose environment provider alone reads it,
-- and with a token (scoped to one project: the API refuses another one, 400 VPC.0007); never with
-- AK/SK keys of the options, a profile file or the metadata service (valid in every project of
-- the account: a variable left over from other work would send them to another project, where a
-- 404 would read as "already deleted"), nor with an IAM login (its own project). Raises a usage
-- error listing every place looked at when nothing is found. `warn(line)` receives warnings (a
-- profile file others can read).
function M.resolve(opts, region, getenv, warn)
  getenv = getenv or os.getenv
  -- Validated before anything else: a bad value must not pass whenever credentials come first.
  local base = M.metadata_url(opts.metadata_url)
  local p = explicit(opts, region, getenv)
  if p then
    -- As given: checked by the client only when no project_id option comes first.
    return p, { env_project_id = p.kind == "token" and env(getenv, M.ENV.project_id) or nil }
  end
  p = from_env(getenv)
  if p then
    return p, { env_project_id = env(getenv, M.ENV.project_id), from_env = true }
  end
  local looked = { "the options token, ak + sk, auth = {username, password, domain, project}",
    string.format("the environment variables %s + %s (+ %s), then %s", M.ENV.ak, M.ENV.sk,
      M.ENV.security_token, M.ENV.token) }
  local found
  p, found = from_profile(getenv, warn or function() end, looked)
  if p then return p, found end
  if base == nil then
    local from_env_var = env(getenv, M.ENV.metadata_url)
    base = from_env_var and validate.endpoint(M.ENV.metadata_url, from_env_var) or M.METADATA_URL
  end
  if base ~= false then
    looked[#looked + 1] = "the ECS metadata service at " .. base
    return metadata_provider(base, looked), {}
  end
  looked[#looked + 1] = "not the ECS metadata service (metadata_url = false)"
  raise("credentials", "not found: looked at %s", table.concat(looked, "; then "))
end

--- The environment variable for `name` (a key of M.ENV), empty counted as unset.
function M.env(name, getenv)
  return env(getenv or os.getenv, M.ENV[name])
end

return M
