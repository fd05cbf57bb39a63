--- Pacing: a token bucket that spaces the requests a client sends, retries included.
--
-- The real API throttles each user (429 APIGW.0308, "policy user over ratelimit, limit:XX, time:1
-- second"), and a refused request still counts against the limit of everyone using the same
-- key. A bucket of `rate` requests per second lets at most `burst` go back to back, then one
-- every 1/rate seconds: the generic cell rate algorithm, which keeps one number (the time the
-- next request is due) instead of a count of tokens.
--
--   local bucket = pace.new{ rate = 100, burst = 1, clock = core.monotime }
--   bucket:wait()        -- seconds until a request may go (0: now); reserves nothing
--   bucket:take()        -- reserves the next slot; returns the seconds to wait before it
--   bucket:take_within(s) -- the same when the slot comes within s seconds, else nil: nothing reserved
--   bucket:set_rate(r)   -- adaptive callers change the rate as they go
--
-- Inside nginx, `dict = "name"` keeps the state in that lua_shared_dict, so that every worker of
-- one nginx shares one budget (a reservation is one atomic incr; a worker that finds the state
-- left idle for long moves it to now under a lock of the dict, see shared_slot, so that workers
-- coming back together at once still go at most `burst` together). Its clock
-- is the C core's monotonic one (CLOCK_MONOTONIC, one clock for every process of the machine),
-- never the wall clock: a step of the wall clock would make every worker wait that long. A state
-- from the future all the same (a dict kept across a reload from a version that stored wall-clock
-- times, or written by another user of the key), more than QUEUE_MAX slots ahead of the clock, is
-- no reservation anyone holds: the bucket starts again from now. When the
-- dict cannot hold it (full: incr answers "no memory"; or the key holds something other than a
-- number: another user of the dict), each worker goes on alone at its share of the rate (rate /
-- workers): all of them together still keep to it, and nothing fails. `bucket.unshared` then
-- says why (the dict's own words), until the dict holds the state again.
-- @module eip.pace
local errors = require "eip.errors"
local validate = require "eip.validate"

local M = {}

--- Reservations that may be waiting at once, all workers together: the next slot of a shared
-- bucket lies at most this many intervals ahead of the clock past the burst's (4096 requests
-- waiting for the rate is beyond any use: 64 workers running batches of concurrency 64). A state of the dict further
-- ahead comes from another clock, and is reset; no wait for it is ever longer than this many
-- intervals. A bucket of this process's own holds its own reservations only, every one of them
-- real however many wait (and however the rate changed since): it keeps them, as resetting
-- would send the next request at once beside those waiting.
M.QUEUE_MAX = 4096
local QUEUE_MAX = M.QUEUE_MAX

local Bucket = {}
Bucket.__index = Bucket

--- A bucket. opts: rate (> 0, requests per second), burst (>= 1, default 1), clock (seconds;
-- default eip.core.monotime, also with a dict: the machine's monotonic clock, the same in every
-- worker), dict (a lua_shared_dict name: shared inside nginx), key (in the dict; default
-- "eip:pace"; the key with ":reset" after it is a lock held for a moment, see shared_slot).
function M.new(opts)
  -- configured: the rate as made, which adaptive callers never go above and give back.
  -- (tat: none yet; 0 would hold the first request of a clock whose readings are negative, one
  -- counted from its first reading that then went back, for as many seconds)
  local self = setmetatable({ burst = opts.burst or 1, tat = -math.huge, configured = opts.rate }, Bucket)
  self:set_rate(opts.rate)
  if opts.dict then
    local ngx = rawget(_G, "ngx")
    self.dict = assert(ngx and ngx.shared[opts.dict], "no lua_shared_dict " .. tostring(opts.dict))
    self.key = opts.key or "eip:pace"
  end
  self.clock = opts.clock or require("eip.core").monotime
  return self
end

--- Changes the rate (requests per second) from now on; one that is not positive and finite is
-- ignored (a rate of 0 would make every wait NaN, read as none).
function Bucket:set_rate(rate)
  if not (type(rate) == "number" and rate > 0 and rate < math.huge) then return end
  self.rate = rate
  self.interval = 1 / rate
end

-- The interval of this worker's share of the rate: when the dict cannot hold the shared state,
-- each worker keeps to rate / workers on its own.
local function share_interval(self)
  local ngx = rawget(_G, "ngx")
  local ok, workers = pcall(function() return ngx.worker.count() end)
  if not ok or type(workers) ~= "number" or workers < 1 then workers = 1 end
  return self.interval * workers
end

-- The theoretical arrival time of the next request (shared: from the dict, in microseconds, and
-- true; else this worker's own, which is also where a fresh bucket starts: see share_interval).
local function tat_of(self)
  if self.dict then
    local stored = self.dict:get(self.key)
    if type(stored) == "number" then return stored / 1e6, true end
    if stored ~= nil then self.unshared = "not a number" end
  end
  return self.tat, false
end

-- Is tat further ahead of now than any reservations could have put it (see QUEUE_MAX): the
-- burst's, which go at once, and a queue of QUEUE_MAX after them? (Not QUEUE_MAX alone: a burst
-- larger than it was read as another clock's state and reset, every burst after it at once.)
local function from_the_future(self, tat, now)
  return tat - now > (QUEUE_MAX + self.burst - 1) * self.interval
end

-- The clock's time, and whether it went back since the last read (a caller's clock stepped:
-- the state measured on the old time is started again from now). `peek`: a look that reserves
-- nothing keeps the last read, so that the take after it still sees the step (take_within: a
-- take after a wait that saw the step alone kept the old state, and waited for it).
local function read_clock(self, peek)
  local now = self.clock()
  local last = self.last_now
  if not peek then self.last_now = now end
  return now, last ~= nil and now < last
end

--- Seconds until a request may be sent (0 when one may go now). Reserves nothing.
function Bucket:wait()
  local now, back = read_clock(self, true)
  local tat, shared = tat_of(self)
  -- (the next take starts again from now)
  if back or shared and from_the_future(self, tat, now) then tat = now end
  local wait = math.max(tat, now) - (self.burst - 1) * self.interval - now
  return wait > 0 and wait or 0
end

-- Moving a shared state to now (see shared_slot): the lock's key is the state's with this
-- suffix; it expires after RESET_LOCK_TTL seconds should its holder never give it back (a worker
-- killed in between); a worker that finds it held looks again up to RESET_SPINS times (the holder
-- does three operations of the dict meanwhile), and reserves again at most RESET_TRIES times.
local RESET_LOCK, RESET_LOCK_TTL, RESET_SPINS, RESET_TRIES = ":reset", 0.01, 10000, 3

-- The slot of a shared bucket (seconds), or nil and the dict's words when it cannot hold the
-- state. A reservation is one incr. One that finds the state stale (left idle, its time behind
-- the clock; further ahead than any reservations could have put it, another clock's; or the
-- caller's clock went back) moves it to now as one worker: workers that came back from idle at
-- once each found it stale and set it to now, and all went together, whatever the burst. The
-- one that takes the lock (safe_add) moves it, if no other did since (its reservation is still
-- the last, or the state's next slot has come), with an incr (reservations made meanwhile keep
-- their places after it) and goes now; the others wait for the lock and reserve again, after it.
local function shared_slot(self, now, back)
  local dict, key = self.dict, self.key
  -- (microseconds, not rounded to whole ones: an interval of 1.43 us, 700,000 requests a second,
  -- went as one, at 1,000,000; a dict's incr adds any number)
  local us, now_us = self.interval * 1e6, now * 1e6
  local stored, why
  for _ = 1, RESET_TRIES do
    stored, why = dict:incr(key, us, now_us)
    if not stored then return nil, why end
    local tat = (stored - us) / 1e6
    if not (tat < now or back or from_the_future(self, tat, now)) then return tat end
    local lock = key .. RESET_LOCK -- (made only here: not on the way of every reservation)
    local locked, err = dict:safe_add(lock, true, RESET_LOCK_TTL)
    if locked then
      local current = dict:get(key)
      local stale = type(current) == "number" and (back or current == stored or current <= now_us
        or from_the_future(self, current / 1e6 - self.interval, now))
      if stale then dict:incr(key, now_us + us - current) end
      dict:delete(lock)
      if stale then return now end -- (else another worker moved it: this reservation is not used)
    elseif err ~= "exists" then
      break -- (a full dict: no lock to take)
    else
      for _ = 1, RESET_SPINS do
        if dict:get(lock) == nil then break end
      end
    end
  end
  -- No lock taken (a full dict, or a holder that never gave it back): moved as by one worker.
  dict:incr(key, now_us + us - stored)
  return now
end

--- Reserves the next slot: returns the seconds to wait before sending (0: now).
function Bucket:take()
  local now, back = read_clock(self)
  local interval, tat = self.interval
  if self.dict then
    local why
    tat, why = shared_slot(self, now, back)
    if tat then
      self.unshared = nil
    else
      -- The dict cannot hold the state ("no memory", "not a number"): this worker's share alone.
      self.unshared = tostring(why)
      tat = back and now or math.max(self.tat, now)
      self.tat = tat + share_interval(self)
    end
  else
    -- (A caller's clock that went back: the same reset as for a shared state. Not a long queue:
    -- its reservations are this process's own, see QUEUE_MAX.)
    tat = back and now or math.max(self.tat, now)
    self.tat = tat + interval
  end
  local wait = tat - (self.burst - 1) * interval - now
  return wait > 0 and wait or 0
end

--- The request of the slot just taken goes `seconds` from now, held by another bucket: the
-- next slot counts from then (a bucket of this process's own; a shared one is left as it is).
-- The clock's reading is kept, as a take keeps it: a clock ahead now that steps back before the
-- next take is seen to, and that take starts again from now (not a wait as long as the step).
function Bucket:defer(seconds)
  if self.dict then return end
  local now, back = read_clock(self)
  self.tat = math.max(back and now or self.tat, now + seconds + self.interval)
end

--- Reserves the next slot only when it comes within `limit` seconds (a call's deadline): returns
-- the seconds to wait (0: now), or nil and the wait when it would come later. Nothing is then
-- reserved: the slot stays for the next request. (In a dict shared with other workers, one that
-- took a slot between the look and the reservation can push ours past the limit: that slot is
-- then left unused rather than given back, which could let two requests go together.)
function Bucket:take_within(limit)
  local wait = self:wait()
  if wait >= limit then return nil, wait end
  wait = self:take()
  if wait >= limit then
    if not self.dict then self.tat = self.tat - self.interval end -- ours alone: given back
    return nil, wait
  end
  return wait
end

--- The bucket the client options ask for (`rate`, `burst`, `rate_dict`), or nil without `rate`.
-- Raises usage errors naming the option.
function M.of_options(opts, clock)
  if opts.rate == nil then
    if opts.burst ~= nil or opts.rate_dict ~= nil then
      errors.raise_usage(opts.burst ~= nil and "burst" or "rate_dict", "needs rate (requests per second)")
    end
    return nil
  end
  local rate = validate.number("rate", opts.rate, 0.001, 1e6)
  local burst = 1
  if opts.burst ~= nil then burst = validate.integer("burst", opts.burst, 1, 1e6) end
  local dict
  if opts.rate_dict ~= nil then
    dict = validate.string("rate_dict", opts.rate_dict)
    local ngx = rawget(_G, "ngx")
    if not (ngx and ngx.shared and ngx.shared[dict]) then
      errors.raise_usage("rate_dict", "names no lua_shared_dict of this nginx, got %s", validate.describe(dict))
    end
  end
  return M.new{ rate = rate, burst = burst, dict = dict, clock = not dict and clock or nil }
end

return M
