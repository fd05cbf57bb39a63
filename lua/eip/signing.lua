--- Signed requests in flight and refused signatures, counted across the workers of one nginx.
--
-- Five refused AK/SK signatures in a row lock the key for 5 minutes, for every user of it. A
-- client counts the signed requests it has in flight and the refusals it got in a row (see
-- eip.pipeline's signing_room and eip.auth's rejected), but each nginx worker has its own copy
-- of a client: with the client option `signing_dict`, the workers keep these counts in that
-- lua_shared_dict instead, per key (an AK and its SK), so that all of them together keep to the
-- four in flight and three refusals one client keeps to.
--
-- Per key, under "eip:sign:<md5 of AK and SK>:": `place1` .. `place4` (a request in flight
-- holds one: taken with one atomic add, which fails when the place is held; it lives as long
-- as the request may take, its timeout and a second, and is given back when its answer is
-- taken), `seq` (the signed requests taken so far: each is numbered), `strikes` (refusals in a
-- row), `doubts` (signed requests in a row that got no answer: each may have been refused
-- unseen), `strike_seq` (`seq` when the last refusal or doubt was counted: only a success of a
-- request numbered after it clears `strikes` and `doubts`), `hold` (three in a row without an
-- answer and no refusal: nothing signed until it expires, see eip.auth), `clearing` (a success
-- taking the counts off: one at a time, see Shared:clear) and `refused` (three
-- refusals, or four refused or unanswered: nothing is signed with the key again, by any worker,
-- until the dict is emptied or nginx restarted: emptied by `flush_all()` from any handler once
-- the cause is fixed, each worker's client signs again from its next call, counting from none).
-- A place whose holder went away (a request nginx ended, a worker that died, a batch aborted)
-- frees itself when its time is up, whatever else goes on; and a place is only ever given back
-- by its holder, while it still holds it. When the dict cannot hold a count (no memory even
-- after evicting, or a key holding something else), the worker counts on its own, as without
-- it (a refusal it could not store there stays this worker's, for good). The dict must be this
-- module's alone: a full lua_shared_dict evicts its least recently used keys to take new ones,
-- so another user of it could evict the refusals' count.
-- @module eip.signing
local errors = require "eip.errors"
local validate = require "eip.validate"

local M = {}

local Shared = {}
Shared.__index = Shared

--- The shared counts of the lua_shared_dict `name` (a usage error naming `signing_dict` outside
-- nginx, or when this nginx has no such dict).
function M.new(name)
  if type(name) ~= "string" or name == "" then
    errors.raise_usage("signing_dict", "must be the name of a lua_shared_dict")
  end
  local ngx = rawget(_G, "ngx")
  local dict = ngx and ngx.shared and ngx.shared[name]
  if not (ngx and ngx.shared) then
    errors.raise_usage("signing_dict", "is for use inside nginx, where a lua_shared_dict holds the counts")
  end
  if not dict then
    -- (checked whole: a quote cut short may keep too few bytes of a credential for the scrub)
    if validate.holds_secret(name) then
      errors.raise_usage("signing_dict", "names no lua_shared_dict of this nginx, got %s", validate.describe(name))
    end
    errors.raise_usage("signing_dict", "names no lua_shared_dict of this nginx (%q): declare it with "
      .. "`lua_shared_dict %s 64k;` in the http block", name:sub(1, 40), name:sub(1, 40))
  end
  return setmetatable({ dict = dict, md5 = ngx.md5, prefixes = setmetatable({}, { __mode = "k" }) }, Shared)
end

--- The prefix of the counts of `keys` (a provider with `ak` and `sk`), made once per keys.
function Shared:prefix(keys)
  local p = self.prefixes[keys]
  if not p then
    p = "eip:sign:" .. self.md5(keys.ak .. "\n" .. keys.sk) .. ":"
    self.prefixes[keys] = p
  end
  return p
end

-- The places of a key: as many as a client keeps in flight (eip.pipeline's SIGNED_IN_FLIGHT_MAX).
M.PLACES = 4

--- The refusals in a row (nil when the dict holds no count: then the worker's own stands), the
-- places held, whether the key is refused, the signed requests in a row without an answer (nil
-- as for the refusals), and the seconds left of a hold after lost answers (nil: none). (A place
-- whose holder went away without giving it back, a worker that died, frees itself when its
-- time is up: its request is counted as unanswered only by the client that took it, when it
-- lives on. A count of them in the dict itself raced with the places taken meanwhile, and
-- stopped good keys under load.)
function Shared:read(prefix)
  local dict, held = self.dict, 0
  for i = 1, M.PLACES do
    if dict:get(prefix .. "place" .. i) ~= nil then held = held + 1 end
  end
  local strikes, doubts = dict:get(prefix .. "strikes"), dict:get(prefix .. "doubts")
  local hold = dict:get(prefix .. "hold") and dict:ttl(prefix .. "hold") or nil
  return type(strikes) == "number" and strikes or nil, held, dict:get(prefix .. "refused") ~= nil,
    type(doubts) == "number" and doubts or nil, hold and hold > 0 and hold or nil
end

-- The dict reckons the time to live of what it stores from the worker's cached clock (ngx.now),
-- which stands still while the worker blocks (libcurl where nginx cannot yield, a system sleep,
-- a long computation): a place taken seconds later expired that much early for the other
-- workers, at once after a few seconds, and they took it too while its request was in flight.
-- So the clock is updated before each write that sets a time to live.
local function fresh()
  rawget(_G, "ngx").update_time()
end

-- What tells one holder of a place from another: this worker's pid and a count. (Made before
-- each write of a place, or of a lock, with a time to live: the clock is updated here.)
local taken = 0
local function token()
  taken = taken + 1
  fresh()
  return rawget(_G, "ngx").worker.pid() .. ":" .. taken
end

--- Takes one of the first `max` places, for `ttl` seconds at most: the place's key and the
-- token that holds it; false when all of them are held (nothing taken); nil when the dict
-- cannot count (no memory: the worker then counts on its own).
-- The counts `max` was worked out from were read before the take, and may be stale by then:
-- another worker's refusal counted, its place given back and taken again by a later request,
-- between them. That worker's bound then said one place fewer, this one's not: the places held
-- and the refusals came to five, the key locked (seen once under load in
-- spec/openresty_rate_spec.lua, and with a delay at this point every other run). So after the
-- add the counts are read again, and a place that makes them more than PLACES is given back
-- (false: none taken). A refusal is counted before its place is given back, and the places are
-- read before the refusals: the second look can only count too many, never too few; of two
-- takers at once, at least one sees the other's place.
function Shared:take(prefix, max, ttl)
  local dict, mine = self.dict, token()
  for i = 1, max do
    local key = prefix .. "place" .. i
    local ok, err = dict:add(key, mine, ttl)
    if ok then
      local strikes, held, _, doubts = self:read(prefix)
      if (strikes or 0) + (doubts or 0) + held > M.PLACES then
        dict:delete(key)
        return false
      end
      return key, mine
    end
    if err ~= "exists" then return nil end
  end
  return false
end

--- Holds the place `key` (taken with `mine`) `ttl` seconds more from now, if still held: true
-- then, false when its time ran out (it may be another holder's now).
function Shared:keep(key, mine, ttl)
  local dict = self.dict
  if dict:get(key) ~= mine then return false end
  fresh()
  dict:expire(key, ttl)
  return true
end

--- Gives the place `key` back, if `mine` still holds it (its time may be up, and the place
-- another's since).
function Shared:give(key, mine)
  local dict = self.dict
  if dict:get(key) == mine then dict:delete(key) end
end

--- The number of the next signed request of the key, in the order the workers took their
-- places (nil when the dict cannot count).
function Shared:next_seq(prefix)
  return (self.dict:incr(prefix .. "seq", 1, 0))
end

-- One more of `name` in a row: the count after it (nil when the dict cannot count). The requests
-- taken up to now may have been checked before it: only a success of one taken later clears it.
local function one_more(self, prefix, name)
  local dict = self.dict
  dict:set(prefix .. "strike_seq", dict:get(prefix .. "seq") or 0)
  return (dict:incr(prefix .. name, 1, 0))
end

--- A refusal: the count in a row after it (nil when the dict cannot count), cleared only by a
-- success of a request taken after it.
function Shared:strike(prefix)
  return one_more(self, prefix, "strikes")
end

--- An answer that passed the check of the key, to its request number `seq`: the refusals in a
-- row start again from none, unless the request was taken before the last refusal came (the
-- gateway may have checked it before the refused ones: its success says nothing of the count).
-- Another worker's refusal (or doubt) may be counted at any point of this: set back to none
-- with the others, it was lost (two places opened where one should: five in a row), and counted
-- again for safety, it was counted twice when it had not been lost (a good key refused for good
-- with no hold first). So only what was read is taken off, with incr (a count made after the
-- read stays whole), and only when nothing was counted between the look at strike_seq and the
-- read (else the clear is left to the next success: a count too high for a while, the safe
-- way); one clear at a time (`clearing`: two would take the same counts off twice).
function Shared:clear(prefix, seq)
  local dict = self.dict
  local lock, mine = prefix .. "clearing", token()
  local ok, err = dict:add(lock, mine, 1)
  if not ok and err == "exists" then return end -- (another worker's clear is taking them off)
  local last = dict:get(prefix .. "strike_seq") or 0
  if not (seq and seq <= last) then
    local strikes, doubts = dict:get(prefix .. "strikes"), dict:get(prefix .. "doubts")
    if (dict:get(prefix .. "strike_seq") or 0) == last then
      for key, n in pairs{ strikes = strikes, doubts = doubts } do
        local left = type(n) == "number" and n > 0 and dict:incr(prefix .. key, -n)
        if left and left < 0 then dict:incr(prefix .. key, -left) end -- (a hold's set meanwhile)
      end
      dict:delete(prefix .. "hold")
    end
  end
  if ok then self:give(lock, mine) end
end

--- A signed request without an answer (it may have been refused unseen: see eip.auth's
-- unanswered): counted as a refusal is.
function Shared:doubt(prefix)
  return one_more(self, prefix, "doubts")
end

--- Nothing is signed with the key for `seconds`, by any worker (lost answers only: see
-- eip.auth); then one request, the count of doubts one short of the limit.
function Shared:hold(prefix, seconds)
  local dict = self.dict
  fresh()
  dict:set(prefix .. "hold", true, seconds)
  dict:set(prefix .. "doubts", 3)
end

--- The dict was emptied while the key was refused (eip.auth's sync): the doubts in a row are set
-- to `doubts` unless a count is there already (another worker's probe, or what its answer left),
-- so that one request goes first for all workers. The count in the dict (a number, false when 0),
-- or nil when it cannot hold one.
function Shared:probe(prefix, doubts)
  local dict = self.dict
  dict:add(prefix .. "doubts", doubts)
  local n = dict:get(prefix .. "doubts")
  if type(n) ~= "number" then return nil end
  return n > 0 and n or false
end

--- The key is refused: no worker signs with it again, until the dict is emptied. True when the
-- dict stored it (then each worker lifts its refusal once the dict no longer holds it: see
-- eip.auth's sync), false when it could not (no memory even after evicting): the worker that
-- counted it keeps it on its own, for good.
function Shared:refuse(prefix)
  return self.dict:set(prefix .. "refused", true) == true
end

---------------------------------------------------------------------------------------------
-- IAM password logins (the option with `auth = {...}`): every failed login counts towards
-- locking the IAM user, and each worker's client would log in, and be refused, once. Under
-- "eip:iam:<md5 of IAM's endpoint, the domain, user, password and scope>:":
--   `refused`  IAM's refusal (JSON text of the error's plain fields), for LOGIN_REFUSAL_TTL:
--              every worker's calls get it instead of logging in;
--   `held`     a failure that may pass (no answer, a 5xx, a 429), for its hold: the same;
--   `unknown`  logins in a row without an answer (a timeout, a reset, a 5xx: IAM may have
--              counted a failed login), within LOGIN_REFUSAL_TTL: what the hold grows with;
--   `ok`       a login has just passed (for one attempt's time): the workers that waited for it
--              log in at once, in parallel; any later login takes its turn again (a password
--              changed at IAM since must not be sent by every worker at once);
--   `login`    the worker logging in now (its one attempt's time at most): the others wait for
--              its outcome rather than send the same password at once.

--- How long a shared refusal, the count of unknown outcomes and a success are kept (seconds):
-- the quarter of an hour an account lockout policy counts failures over. A refusal whose cause
-- goes away (a user created late, a lock that ended) is asked again after it.
M.LOGIN_REFUSAL_TTL = 900

--- The prefix of the login of provider `p` (username, password, domain, project or
-- project_id, iam_endpoint), made once per provider.
function Shared:login_prefix(p)
  local prefix = self.prefixes[p]
  if not prefix then
    prefix = "eip:iam:" .. self.md5(table.concat({ p.iam_endpoint, p.domain, p.username, p.password,
      p.project_id or "", p.project or "" }, "\n")) .. ":"
    self.prefixes[p] = prefix
  end
  return prefix
end

-- The JSON text kept under `key` and the seconds left of it (`default` where the dict cannot
-- say), or nil.
local function text_and_ttl(dict, key, default)
  local text = dict:get(key)
  if type(text) ~= "string" then return nil end
  local left = dict.ttl and dict:ttl(key) or nil
  return text, type(left) == "number" and left or default
end

--- The refusal another worker's login got (JSON text) and the seconds left of it, or nil.
function Shared:login_refused(prefix)
  return text_and_ttl(self.dict, prefix .. "refused", M.LOGIN_REFUSAL_TTL)
end

--- A failure another worker's login met that is held (JSON text) and the seconds left of its
-- hold, or nil.
function Shared:login_held(prefix)
  return text_and_ttl(self.dict, prefix .. "held", 1)
end

--- Whether a login with these credentials has just passed (in any worker).
function Shared:login_passed(prefix)
  return self.dict:get(prefix .. "ok") ~= nil
end

--- A login passed: the workers waiting for it log in at once, for `ttl` seconds; the count of
-- unknown outcomes restarts.
function Shared:login_ok(prefix, ttl)
  local dict = self.dict
  fresh()
  dict:set(prefix .. "ok", true, ttl)
  dict:delete(prefix .. "unknown")
  dict:delete(prefix .. "held")
end

--- IAM answered a login (a refusal, a 429): the count of logins without an answer restarts.
function Shared:login_answered(prefix)
  self.dict:delete(prefix .. "unknown")
end

--- How long a refusal is kept (seconds): M.LOGIN_REFUSAL_TTL.
function Shared.refusal_ttl()
  return M.LOGIN_REFUSAL_TTL
end

--- Keeps IAM's refusal (JSON text) for every worker.
function Shared:refuse_login(prefix, text)
  local dict = self.dict
  fresh()
  dict:set(prefix .. "refused", text, M.LOGIN_REFUSAL_TTL)
  dict:delete(prefix .. "ok")
end

--- A login without an answer: the count of them in a row (nil when the dict cannot count). The
-- count lives LOGIN_REFUSAL_TTL after the last of them, not the first: a row that goes on past
-- it goes on counting (else a third and a fourth login went out within minutes of each other).
function Shared:login_unknown(prefix)
  local dict, key = self.dict, prefix .. "unknown"
  fresh()
  local n = dict:incr(key, 1, 0, M.LOGIN_REFUSAL_TTL)
  if n and n > 1 then
    if dict.expire then dict:expire(key, M.LOGIN_REFUSAL_TTL) else dict:set(key, n, M.LOGIN_REFUSAL_TTL) end
  end
  return n
end

--- A failure that may pass, held `seconds` for every worker (JSON text).
function Shared:hold_login(prefix, text, seconds)
  if seconds > 0 then
    fresh()
    self.dict:set(prefix .. "held", text, seconds)
  end
end

--- Takes the right to log in for `ttl` seconds at most: a token to give it back with, or nil
-- when another worker logs in (or the dict cannot hold it: false then, go on alone).
function Shared:take_login(prefix, ttl)
  local mine = token()
  local ok, err = self.dict:add(prefix .. "login", mine, ttl)
  if ok then return mine end
  if err == "exists" then return nil end
  return false
end

--- Whether another worker logs in now.
function Shared:login_taken(prefix)
  return self.dict:get(prefix .. "login") ~= nil
end

--- Gives the right to log in back, if `mine` still holds it.
function Shared:give_login(prefix, mine)
  self:give(prefix .. "login", mine)
end

return M
