--- Many deletes, run concurrently: the engine of client:delete_bandwidths(ids [, opts]).
--
--   local results, summary = batch.run(runner, ids, {
--     concurrency = 8,          -- 1..64 requests in flight (and connections), default 8
--     missing_ok = true,        -- default: the client's missing_ok
--     on_result = function(i, id, res_or_err) end,   -- as each id finishes
--   })
--   results[i]: the result table delete_bandwidth returns (ok = true), or the eip error
--               (ok = false; eip.is_error(e) holds), in input order
--   summary:    { deleted = n, missing = n (404 with missing_ok), failed = n, total = n, elapsed = s }
--
-- Each id is a delete operation (eip.ops) run by the pipeline's steps (eip.pipeline: a call's
-- request, response and failure), so validation, credentials, mapping, retries and missing_ok
-- are exactly the single delete's. Differences, all about time: an id's deadline and elapsed
-- count from its first send (queued ids do not age), a retry waits for its backoff while the
-- other ids proceed, and the client's `sleep` is used only when nothing is in flight.
--
-- Per-id failures never raise: they are entries of the results. Raised: usage errors of the
-- call itself (ids not a list, unknown or bad options), and any error raised by on_result,
-- re-raised as it was (nil or false: an "interrupted" error saying so) after the transfers in
-- flight were aborted (the client stays usable;
-- the deletes already sent may have happened; with AK/SK each signed request aborted after it
-- went out counts as one without an answer, eip.auth's "Answers lost": four such stop the
-- key's signing for good, three leave one request to go).
--
-- Drivers run the requests. With the libcurl transport: the runner's C multi handle
-- (eip.core.multi), kept across batches so connections are reused; and so inside nginx where
-- nothing can yield (log_by_lua, the filters, set_by_lua, init, a frame that cannot yield),
-- where the automatic transport is libcurl. Inside nginx where cosockets are allowed: light
-- threads over cosockets (connections from nginx's pool). Otherwise (a custom transport) the
-- serial driver, which sends through the transport one request at a time. A driver has
-- start(wire) -> slot or nil, message; next(timeout) -> slot, response | nil; pending();
-- cancel() -> nil, or the slots of which nothing had been sent ({ [slot] = true }: see
-- dropped_error); M.driver picks one.
-- @module eip.batch
local core = require "eip.core"
local errors = require "eip.errors"
local validate = require "eip.validate"
local ops = require "eip.ops"
local retry = require "eip.retry"
local pace = require "eip.pace"
local pipeline = require "eip.pipeline"
local transports = require "eip.transport"

local M = {}

M.OPTIONS = { concurrency = true, missing_ok = true, on_result = true, cancel = true, rate = true,
  adaptive = true, wait = true, deadline = true } -- wait: eip.client's, after the run

--- What on_result returns to stop the batch: no new request is started, what is in flight
-- finishes (but a request still connecting, of which nothing was sent, is held back), and every
-- id not sent is reported with `not_sent = true`.
M.STOP = "stop"
M.DEFAULT_CONCURRENCY = 8
M.MAX_CONCURRENCY = 64
-- Longest single wait in the C multi: transfers time out by themselves, this only bounds how
-- long the loop goes without looking at the clock.
local MAX_WAIT = 1.0

-- How many times at most an id is started again after it timed out unsent while the batch's
-- caller was away (see Run:restart_unsent).
local AWAY_RESTARTS_MAX = 3
--- How often, at least, a batch asks its `cancel` function (seconds): while requests are in
-- flight, during backoffs and while the client logs in alike (see Run:cancel_heard), so that
-- Ctrl-C is heard at once and a caller can redraw a progress line at a steady rate from it. The
-- same as a single call's (eip.pipeline). (A login sent through a transport of the caller's,
-- which cannot be aborted, is heard of once it returns: nothing is sent after it.)
M.CANCEL_INTERVAL = pipeline.CANCEL_INTERVAL

--- How many signed requests (AK/SK, the metadata service's keys) a client keeps in flight at
-- most, its batches' and single calls' together, strikes already taken counted off (see
-- eip.pipeline's signing_room). Token batches are not capped.
M.SIGNED_IN_FLIGHT_MAX = pipeline.SIGNED_IN_FLIGHT_MAX

local raise = errors.raise_usage
local signing_room, admit, release = pipeline.signing_room, pipeline.admit, pipeline.release

---------------------------------------------------------------------------------------------
-- Drivers

-- The coroutine running the batch that holds the client's multi, held weakly: { co = ... }; false
-- on the main thread (a batch there ends, or raises, before anything else runs).
local WEAK_VALUES = { __mode = "v" }

-- Is the batch holding the client's multi gone without ending: its coroutine collected, or dead
-- (coroutine.close), while suspended in its on_result or a transport of the caller's? A
-- coroutine merely suspended may be resumed: its batch still holds the multi.
local function abandoned(runner)
  local owner = runner.multi_owner
  if not owner then return false end
  local co = owner.co
  if co == nil then return true end
  -- (nginx's coroutine.status raises where nothing can yield, in log_by_lua say: unknown there,
  -- and the batch takes a multi of its own)
  local ok, status = pcall(coroutine.status, co)
  return ok and status == "dead"
end

-- The client's multi handle; a batch run while another batch of the client runs (from one of
-- its hooks or its on_result) gets one of its own, closed when it ends: on the shared one it
-- would take the other's answers, and that batch would never report those ids. A batch
-- abandoned in a coroutine gives it back, what it left in flight cancelled (nothing will read
-- those answers): its multi once stayed taken, and every later batch of the client opened new
-- connections.
local function multi_driver(runner, concurrency)
  local multi = runner:multi()
  if runner.multi_busy and abandoned(runner) then
    runner.multi_busy:cancel()
    runner.multi_busy = false
  end
  if runner.multi_busy then
    multi = runner:multi(true)
  else
    runner.multi_busy = multi
    local co, main = coroutine.running()
    runner.multi_owner = co and not main and setmetatable({ co = co }, WEAK_VALUES) or false
  end
  multi:limit(concurrency)
  return multi, concurrency
end

-- Once a batch's driver is done with: the client's multi free for the next batch, or a multi of
-- the batch's own closed.
local function driver_done(runner, driver)
  if runner.multi_busy == driver then
    runner.multi_busy, runner.multi_owner = false, false
  elseif driver.close and driver ~= runner.multi_handle then
    driver:close()
  end
end

local Serial = {}
Serial.__index = Serial

-- What the pace reads of an attempt that got no response table at all.
local NO_ANSWER = { status = 0 }

function Serial:start(wire)
  -- (pcall, also on Lua 5.1: a batch runs under one already, so nothing yields here there.)
  local ok, resp = pcall(self.transport.send, self.transport, wire)
  -- What it raises is this id's failure, as in a single call (pipeline.raised: it may have been
  -- sent); answering nothing breaks the contract too (the pipeline says so, and that the request
  -- may have gone out). The slot still ends with an answer.
  resp = pipeline.answer_of(ok, resp, self.callers)
  self.resp = resp ~= nil and resp or false
  return 1
end

function Serial:next()
  local resp = self.resp
  if resp == nil then return nil end
  self.resp = nil
  return 1, resp or nil
end

function Serial:pending() return self.resp ~= nil and 1 or 0 end

function Serial:cancel() self.resp = nil end

-- Inside nginx, where cosockets are allowed: one light thread (ngx.thread) per request in
-- flight, each sending through the client's transport (cosockets), so the batch runs
-- concurrently and never blocks the worker. Each thread puts its slot and response in the
-- driver's queue and posts its semaphore (ngx.semaphore; without lua-resty-core, next() polls);
-- next() takes them from there, and reaps a thread only once it has ended. The batch never
-- waits on a running thread: ngx.thread.wait marks every thread it is given as waited for, and
-- the marks of those that did not end stay (lua-nginx-module #1439): one that ended while the
-- batch's coroutine waited for something else (an IAM token renewed, a call from on_result)
-- resumed that wait with its results, which were lost, and the batch waited for it for ever.
local Threads = {}
Threads.__index = Threads

local function send_in_thread(driver, slot, wire)
  local transport = driver.transport
  local ok, resp = pcall(transport.send, transport, wire)
  -- A raised error is a bug, not a network fault: this id's failure, not retried (as in a
  -- single call: pipeline.raised), rather than a reset that the retry policy would repeat.
  resp = pipeline.answer_of(ok, resp, driver.callers)
  if driver.threads[slot] == nil then return end -- cancelled meanwhile
  local tail = driver.tail + 1
  driver.done[tail], driver.tail = { slot, resp }, tail
  if driver.sema then driver.sema:post(1) end
end

-- How often next() looks at the queue where no semaphore wakes it (seconds).
local THREADS_POLL = 0.005

function Threads:start(wire)
  local slot = self.next_slot
  self.next_slot = slot + 1
  self.threads[slot] = true -- (before the thread runs: it may end at once)
  -- (what the transport says it wrote: see cancel)
  local progress = { sent = false }
  wire.progress, self.progress[slot] = progress, progress
  local thread, err = self.ngx.thread.spawn(send_in_thread, self, slot, wire)
  if not thread then
    self.threads[slot], self.progress[slot] = nil, nil
    return nil, err
  end
  if self.threads[slot] then self.threads[slot] = thread end
  self.count = self.count + 1
  return slot
end

function Threads:next(timeout)
  if self.count == 0 then return nil end
  if self.head > self.tail then
    timeout = math.max(0.001, timeout)
    if self.sema then
      self.sema:wait(timeout) -- (a post whose result was taken already wakes it early: harmless)
    else
      self.ngx.sleep(math.min(timeout, THREADS_POLL))
    end
    if self.head > self.tail then return nil end -- nothing ended in time
  end
  local head = self.head
  local entry = self.done[head]
  self.done[head] = nil
  if head == self.tail then self.head, self.tail = 1, 0 else self.head = head + 1 end
  local slot, resp = entry[1], entry[2]
  local thread = self.threads[slot]
  self.threads[slot], self.progress[slot] = nil, nil
  self.count = self.count - 1
  -- It has ended (its last act was to queue this): waiting for it returns at once and frees it.
  if type(thread) ~= "boolean" then self.ngx.thread.wait(thread) end
  return slot, resp
end

function Threads:pending() return self.count end

-- The requests in flight are not sent again from now on (progress.halted: see eip.transport's
-- contract), and those not sent yet are not sent at all (progress.halt_sends), nor are any
-- started later, which a stopped batch does not start.
function Threads:halt()
  for _, progress in pairs(self.progress) do
    progress.halted, progress.halt_sends = true, true
  end
end

-- Kills the threads in flight; returns the slots of those whose transport had written nothing of
-- their request yet ({ [slot] = true }, as the C multi's cancel).
function Threads:cancel()
  local unsent = {}
  for slot, thread in pairs(self.threads) do
    if type(thread) ~= "boolean" then self.ngx.thread.kill(thread) end
    local progress = self.progress[slot]
    if progress and not progress.sent then unsent[slot] = true end
    self.threads[slot] = nil
  end
  self.count, self.done, self.head, self.tail, self.progress = 0, {}, 1, 0, {}
  if self.sema then self.sema = transports.semaphore() end -- (without the cancelled posts)
  return unsent
end

--- The driver for this runner and its concurrency: driver, effective concurrency.
-- The C multi with the libcurl transport (its own send); inside nginx (the automatic transport) light threads
-- where cosockets are allowed, else the C multi too; otherwise (a custom transport) one request
-- at a time through the runner's transport.
function M.driver(runner, concurrency)
  local transport = runner.transport
  -- (the C multi sends itself: a transport whose send was replaced, by a caller watching every
  -- request of the libcurl transport it wraps, goes one request at a time through that send, as
  -- the pipeline's lane leaves it every single call)
  if transport.name == "curl" and transport.send == require("eip.transport.curl").send then
    return multi_driver(runner, concurrency)
  end
  if transport.name == "auto" then
    if transports.yieldable() then
      return setmetatable({ ngx = rawget(_G, "ngx"), transport = transport, threads = {}, progress = {},
        next_slot = 1, count = 0, done = {}, head = 1, tail = 0, sema = transports.semaphore(),
        callers = runner.callers_transport }, Threads),
        concurrency
    end
    -- Where nothing can yield (log_by_lua, a filter, set_by_lua, init, a frame that cannot
    -- yield) every request is libcurl's and blocks the worker: over the C multi, as outside
    -- nginx, the batch blocks it for its concurrent run rather than for one request after
    -- another (the easy handle it used is libcurl's multi inside, polled the same way).
    return multi_driver(runner, concurrency)
  end
  return setmetatable({ transport = transport, callers = runner.callers_transport }, Serial), 1
end

---------------------------------------------------------------------------------------------
-- Arguments


local function read_options(runner, opts)
  local o = { concurrency = M.DEFAULT_CONCURRENCY, missing_ok = runner.missing_ok, adaptive = true }
  if opts == nil then return o end
  opts = validate.options("options", opts, M.OPTIONS)
  if opts.concurrency ~= nil then
    o.concurrency = validate.integer("concurrency", opts.concurrency, 1, M.MAX_CONCURRENCY)
  end
  if opts.missing_ok ~= nil then o.missing_ok = validate.boolean("missing_ok", opts.missing_ok) end
  if opts.on_result ~= nil and type(opts.on_result) ~= "function" then
    raise("on_result", "must be a function(i, id, result_or_error), got a %s", type(opts.on_result))
  end
  if opts.cancel ~= nil and type(opts.cancel) ~= "function" then
    raise("cancel", "must be a function() returning nil, \"stop\" or \"abort\", got a %s", type(opts.cancel))
  end
  o.on_result, o.cancel = opts.on_result, opts.cancel
  if opts.rate ~= nil then o.rate = validate.number("rate", opts.rate, 0.001, 1e6) end
  if opts.adaptive ~= nil then o.adaptive = validate.boolean("adaptive", opts.adaptive) end
  if opts.deadline ~= nil then o.deadline = validate.number("deadline", opts.deadline, 0.001, 86400) end
  return o
end

---------------------------------------------------------------------------------------------
-- Retry queue: a binary min-heap of jobs by ready_at (monotime).

local function heap_push(h, job)
  local i = #h + 1
  h[i] = job
  while i > 1 do
    local parent = math.floor(i / 2)
    if h[parent].ready_at <= h[i].ready_at then break end
    h[parent], h[i] = h[i], h[parent]
    i = parent
  end
end

local function heap_pop(h)
  local top, n = h[1], #h
  h[1] = h[n] -- two statements: with n == 1 the order of a multiple assignment would matter
  h[n] = nil
  n = n - 1
  local i = 1
  while true do
    local l, r, m = 2 * i, 2 * i + 1, i
    if l <= n and h[l].ready_at < h[m].ready_at then m = l end
    if r <= n and h[r].ready_at < h[m].ready_at then m = r end
    if m == i then return top end
    h[m], h[i] = h[i], h[m]
    i = m
  end
end

---------------------------------------------------------------------------------------------
-- The run

-- State of one batch: the runner and options, results and summary; `fresh` (ids not sent yet,
-- in input order, from `head`), `retries_due` (retries whose wait is over: sent before fresh
-- ids), `retries` (the heap of retries still waiting), `in_flight` (slot -> job); the driver
-- and its limit; `repeats` (id -> indices of its later occurrences, which get its result);
-- `shared_bucket` (with a rate of the batch's own, set or adapted: the client's bucket, whose
-- slot each request takes too); `stopped` (why no new request may start: { reason = "auth" |
-- "unanswered" | "cancelled" | "aborted" | "project" | "throttled" | "unavailable" | "exiting" |
-- "deadline", cause = the
-- eip error, if any }); `halt` (with a cancel: what its credentials step is given, see Run:cancel_heard),
-- `heard` (the answer that step heard, for poll_cancel) and `abort_done` (an abort acted on). A
-- job is { index, id, call } (call: the pipeline's state of its delete).
local Run = {}
Run.__index = Run

local function counted(summary, value)
  if not errors.is_error(value) then
    if value.deleted then summary.deleted = summary.deleted + 1 else summary.missing = summary.missing + 1 end
  elseif value.not_sent then
    summary.not_sent = summary.not_sent + 1
  else
    summary.failed = summary.failed + 1
  end
end

-- Stores the outcome of position i and tells on_result; returns true when on_result asked to stop.
-- path: the id's delete's (an error on_result raised names it), when it has one.
function Run:report(i, id, value, path)
  self.results[i] = value
  counted(self.summary, value)
  if self.on_result == nil then return false end
  -- Run as the caller's code inside the library (see eip.pipeline's Runner:callback): its error
  -- is the batch's, raised once the transfers are aborted.
  local ok, answer = self.runner:callback(self.on_result, i, id, value)
  if not ok then
    if answer == nil or answer == false then
      -- (raised as it is, nil or false would read as "nothing was done" to eip.could_have_acted)
      local raised = tostring(answer)
      -- (the id whose result it was told: its delete's path, as its own error would have)
      answer = errors.interrupted({ method = "DELETE", path = path }, 0)
      answer.message = "on_result raised " .. raised
        .. ", and the batch stopped: the deletes it had sent may have been carried out"
    end
    error(answer, 0)
  end
  return answer == M.STOP
end

function Run:finish(job, action, value)
  if action == "fail" then
    if not errors.is_error(value) then error(value, 0) end -- a bug, not an answer
    value.ok = false
    if retry.halts(value) then
      self:stop("auth", value)
    elseif value.kind == "refused" and value.reason == "unanswered" then
      -- The client signs (or logs in) no more: requests in a row went without an answer (see
      -- eip.auth's "Answers lost"). Every id after this one would be refused alike.
      self:stop("unanswered", value)
    end
  end
  -- (an id a failed project look-up left unsent: its error's path, "{project_id}" in it)
  local path = job.call and job.call.op.path or (type(value) == "table" and type(value.path) == "string"
    and value.path or nil)
  local stop = self:report(job.index, job.id, value, path)
  for _, i in ipairs(self.repeats[job.id] or {}) do
    stop = self:report(i, job.id, errors.copy(value), path) or stop
  end
  if stop then self:stop("cancelled") end
end

-- What is in flight is not sent again from now on: the C multi's transfers whose kept-alive
-- connection dies unanswered end as that reset (multi:halt) rather than go out again after the
-- stop (a DELETE deleted by its resend after the user said stop); so do the light threads'
-- requests inside nginx (Threads:halt). Nor does a request not sent yet (its connection still
-- being made): it comes back `held_back`. Every stop and abort halts so. A transport of the
-- caller's (Serial) is its own.
function Run:halt_driver()
  local driver = self.driver
  if type(driver) == "userdata" or (type(driver) == "table" and driver.halt) then driver:halt(true) end
end

-- No request goes out from now on (the first reason stands): none starts, none in flight is sent
-- again, and one still connecting is held back (see Run:held_back): after "stop" nothing the
-- server could act on leaves, whether the stop came from the caller, a refused key or throttling.
function Run:stop(reason, cause)
  if not self.stopped then self.stopped = { reason = reason, cause = cause } end
  self:halt_driver()
end

-- What the pipeline said about job's attempt: done, failed, or retry (now, or after a wait
-- during which the other ids proceed).
function Run:settle(job, action, value)
  if action ~= "retry" then return self:finish(job, action, value) end
  if value <= 0 then
    self.retries_due[#self.retries_due + 1] = job
  else
    -- (due_mono: when it is due on the machine's monotonic clock, whatever the caller's does: a
    -- wall clock stepped back, by NTP say, must not hold the retry for as long as the step)
    job.ready_at, job.delay, job.due_mono = self.clock() + value, value, core.monotime() + value
    heap_push(self.retries, job)
  end
end

function Run:next_ready()
  if self.stopped then return nil end
  local retry_job = self.retries_due[#self.retries_due]
  if retry_job then
    self.retries_due[#self.retries_due] = nil
    return retry_job
  end
  local job = self.fresh[self.head]
  if job then
    self.fresh[self.head] = nil
    self.head = self.head + 1
  end
  return job
end

-- Puts back job, whose request the transport says it sent nothing of (`unsent`): no attempt, its
-- signing place given back, its attempt uncounted (on_response hears of it as "not_sent", which
-- eip.metrics does not count, with `retry` as `action` says).
function Run:put_back(job, resp, action)
  job.call:take_back(resp.elapsed, action)
  self:unready(job)
end

-- A request of which nothing was sent, timed out only because the batch's caller was away (its
-- on_result or cancel ran past the timeout while the request's connection was being made: the
-- C multi's `caller_away`) is put back: it is started again, first, with the time its call has
-- left (a deadline that passed meanwhile ends it not sent, as any attempt it leaves too little
-- time). At most AWAY_RESTARTS_MAX times an id: a cancel that always blocks past the timeout
-- would restart it for ever.
function Run:restart_unsent(job, resp)
  job.away_restarts = job.away_restarts + 1
  self:put_back(job, resp, "retry")
end

-- A request the stop held back (nothing of it went out: see Run:stop) is put back too, for
-- wind_up to report as every id a stop leaves: `not_sent` with `stopped`, or, when an earlier
-- attempt of it went out, that attempt's error with `stopped`.
function Run:held_back(job, resp)
  self:put_back(job, resp, "fail")
end

-- Gives back the signing places (eip.pipeline's admit) of the requests in flight, once the driver
-- cancelled them: the client's next calls must not wait out their timeouts. (A request cancelled
-- after it went out may still reach the gateway; its signature is checked as it arrives, before
-- any request sent after this one could be: so each counts as a signed request without an answer,
-- one the gateway may have refused unseen: see eip.auth's "Answers lost".)
function Run:release_all(unsent)
  local provider = self.runner.provider
  local flying = provider.flying
  for slot, job in pairs(self.in_flight) do
    -- (not one of which nothing was sent: the gateway never saw it)
    if flying and flying[job.call] and provider.unanswered and not (unsent and unsent[slot]) then
      provider:unanswered(job.call.epoch, true)
    end
    release(provider, job.call)
  end
end

-- Puts back a job next_ready gave out, for it to come out next again.
function Run:unready(job)
  if job.call.attempts > 0 then
    self.retries_due[#self.retries_due + 1] = job
  else
    self.head = self.head - 1
    self.fresh[self.head] = job
  end
end

-- Builds, authenticates and starts one attempt of job. Its cancel stopping the batch while the
-- credentials were fetched (or waited for) sends nothing of it: it is put back, for wind_up to
-- report as it does every id a stop leaves.
function Run:start(job)
  local request, err = job.call:request(self.halt)
  if not request then
    if err.cancelled and self.stopped then return self:unready(job) end
    return self:settle(job, job.call:failure(err, true))
  end
  -- (its on_response is this batch's to give, however late it takes the answer: see pipeline.hold)
  if self.runner.on_response then pipeline.hold(self.runner, job.call, self) end
  self.waiting = true
  local ok, slot, why = pcall(self.driver.start, self.driver, request)
  self.waiting = false
  if not (ok and slot) then
    pipeline.forget(self.runner, job.call)
    release(self.runner.provider, job.call) -- a place held for a request that never went
    if not ok then error(slot, 0) end
    -- The driver could not take it (the C core out of memory for a handle or for the request's
    -- copy): nothing of it went out. This attempt's transport failure, as a single call's would
    -- be (retried as such), not a raise that would lose the results of the ids done so far.
    local action, value = job.call:response(transports.unmade("cannot start the request: " .. tostring(why)),
      self.halt)
    self:adapt(job, NO_ANSWER)
    return self:settle(job, action, value)
  end
  self.in_flight[slot] = job
  if self.runner.on_response then job.sent = core.monotime() end
end

-- The error of job, in flight in slot when the batch dropped it, given the slots of which the
-- driver says nothing had been sent (`unsent`, or nil when it cannot tell): a request aborted
-- while still connecting (or waiting for a connection) was never sent, the call ends as one
-- cancelled before its attempt (errors.cancelled: nothing of it sent, or only earlier attempts).
local function dropped_error(job, slot, unsent)
  local call = job.call
  if unsent and unsent[slot] then
    return errors.cancelled(call.op, call.attempts - 1, call.last_error or nil, call.unanswered and true)
  end
  return errors.interrupted(call.op, call.attempts)
end

-- The on_response of each request in flight that the batch drops unanswered (aborted, or ended
-- by an error of on_result): it went out, and may have been carried out (outcome "interrupted"),
-- unless the driver says nothing of it was sent (`unsent`, as for dropped_error: outcome
-- "not_sent", which metrics do not count).
function Run:dropped(unsent)
  local runner = self.runner
  if not runner.on_response and not runner.log then return end
  local now = core.monotime()
  for slot, job in pairs(self.in_flight) do
    -- (once: an on_result raising while an abort's jobs are finished comes here again)
    if not job.dropped then
      job.dropped = true
      local not_sent = unsent and unsent[slot]
      -- (the debug log's "> DELETE" of it gets its end too)
      job.call:log_end(not_sent and "not sent: aborted before any of it went out"
        or "aborted in flight, no answer read: it may have been carried out")
      if runner.on_response then
        job.call:observed({ status = 0, elapsed = now - (job.sent or now), dropped_unsent = not_sent },
          dropped_error(job, slot, unsent), "fail")
      end
    end
  end
end

-- The driver's next answer (see Drivers), waited for at most `timeout` seconds. Meanwhile the
-- batch is `waiting`: only then may its requests in flight be taken for abandoned once their time
-- is up, by a call that runs while it waits (inside nginx, where a request that ends ends the
-- batch's coroutine with it, wherever it was: see eip.pipeline's Runner:abandoned); elsewhere (an
-- on_result, a login) it may take their answers later than that.
function Run:next_answer(timeout)
  self.waiting = true
  local slot, resp = self.driver:next(timeout)
  self.waiting = false
  return slot, resp
end

function Run:completed(slot, resp)
  local job = self.in_flight[slot]
  self.in_flight[slot] = nil
  if type(resp) == "table" and resp.caller_away and job.away_restarts < AWAY_RESTARTS_MAX then
    return self:restart_unsent(job, resp)
  end
  -- (held back and unsent both: a transport's word that nothing of it went out)
  if type(resp) == "table" and resp.held_back and resp.unsent and self.stopped then
    return self:held_back(job, resp)
  end
  -- An answer that passed the credentials' check ends the probe (a 401 stops the batch
  -- instead): a success, or an error of the service itself. A request that got none (a
  -- timeout, a reset), or an answer from before the check (a load balancer's 503 page, the
  -- gateway's own errors), proved nothing: the next goes alone too.
  local action, value = job.call:response(resp, self.halt)
  if action == "done" or (job.call.last_error and errors.credentials_checked(job.call.last_error)) then
    self.probing = false
  end
  -- (A caller's transport may answer what is no response: the call took it as the transport
  -- failure it is; the pace has nothing to learn from it.)
  self:adapt(job, type(resp) == "table" and type(resp.status) == "number" and resp or NO_ANSWER)
  self:settle(job, action, value)
end

---------------------------------------------------------------------------------------------
-- Going as fast as the API allows, and no faster
--
-- The gateway limits each user to so many requests per second and answers the rest 429
-- (APIGW.0308), and the refused ones count against every tool of that user. So a batch:
--  * honours a Retry-After for every id, not only for the one that got it;
--  * when adaptive (the default), on the first throttling answer of a second: halves its
--    concurrency, sets its rate (a token bucket, eip.pace) to 95% of the limit the answer
--    states ("limit:100,time:1 second"), or when it states none to 90% of the answers accepted
--    in the last second (never under RATE_FLOOR), and pauses for the window the gateway counts
--    in (a second, or the one the answer states: "time:1 minute"; at most retry_after_cap), so
--    that the requests it sends next are not refused by the window already used up;
--  * while answers are clean, raises the concurrency by one per `limit` clean answers (AIMD),
--    and the rate by 5% a second, never above a stated limit's 95%.

local WINDOW = 1            -- seconds: the gateway's "time:1 second"
local CUT_COOLDOWN = 1      -- seconds: the 429s of one burst cut once
local RATE_HEADROOM = 0.95  -- of a stated limit
local RATE_MEASURED = 0.9   -- of the accepted rate, when the limit is not stated
local RATE_STEP = 1.05      -- per clean second
local RATE_FLOOR = 1        -- requests/s: the least a cut that states no limit goes to (the
                            -- gateway's window; a rate set lower stays lower)

-- Answers the server accepted (not throttled), as times, to measure the rate it lets through.
function Run:accepted_in_window(now)
  local times, head = self.accepted, self.accepted_head
  while times[head] and times[head] < now - WINDOW do
    times[head] = nil
    head = head + 1
  end
  self.accepted_head = head
  -- Not `#times`: the front is nil now, and the length of a table with holes may be any border.
  return self.accepted_tail - head + 1
end

-- The pause after throttling without a Retry-After: the window the answer names ("time:1
-- minute": what it allowed in it is used up, and a pause of a second had every request of the
-- rest of that minute refused, each counted against the limit, an id failed once its attempts
-- were), at most retry_after_cap (the longest pause a Retry-After may ask for), at least the
-- gateway's second; the second when the throttled id's deadline leaves its retry less than that
-- window (it would end unsent after it; its own wait is then Huawei's advised pause too:
-- retry.window_wait). A pause already longer stands.
function Run:window_pause(job, window, err, now)
  local pause = math.max(WINDOW, math.min(window or WINDOW, self.runner.policy.retry_after_cap))
  local deadline = job.call.deadline
  if deadline and deadline - core.monotime() - pipeline.MIN_ATTEMPT_TIME <= pause then pause = WINDOW end
  if now + pause > self.paused_until then self.paused_until, self.paused_by = now + pause, err end
  self.paused_mono = math.max(self.paused_mono, core.monotime() + pause)
end

function Run:adapt(job, resp)
  local now = self.clock()
  local status = resp.status
  -- (the call's last error only if it is this answer's, not an earlier attempt's)
  local err = status > 0 and job.call.last_error
  if err and err.status ~= status then err = nil end
  -- A service that says it is unavailable for longer than retry_after_cap (a retryable 5xx's
  -- Retry-After: RFC 9110's "how long the service is expected to be unavailable"): nothing more
  -- starts, as after such throttling (each id sent on would meet the same outage and fail, and a
  -- delete answered with a 5xx may still have acted). The ids not sent say why
  -- (stopped = "unavailable", cause = this answer).
  if err and err.unavailable_beyond then
    self:stop("unavailable", err)
    return
  end
  -- (throttling is what retry.throttled says, whatever the status: APIGW.0308 comes with a 400
  -- or a 409 too)
  if err and retry.throttled(err) then
    self.summary.throttled = self.summary.throttled + 1
    local ra = retry.parse_retry_after(err.retry_after, os.time(), err.date)
    if ra and ra <= self.runner.policy.retry_after_cap then
      self.paused_until = math.max(self.paused_until, now + ra)
      self.paused_mono = math.max(self.paused_mono, core.monotime() + ra)
      self.paused_by = err
    end
    local stated, window = retry.stated_limit(err)
    if err.throttled_beyond then
      -- A Retry-After longer than retry_after_cap, or a limit of one request per more than that
      -- ("limit:1,time:1 hour"): not waited for, adaptive or not, and nothing more starts (each
      -- id sent on would be refused, and count against the limit). The ids not sent say why
      -- (stopped = "throttled", cause = this answer).
      self:stop("throttled", err)
      return
    end
    -- (a last cut ahead of now: the caller's clock went back since, and the cooldown, read on
    -- that clock, would last as long as the step: taken as over, as is the wait between raises)
    if not self.adaptive then return end
    if now >= self.last_cut and now - self.last_cut < CUT_COOLDOWN then
      -- (an answer of the same burst stating a longer window than the cut's, another policy's
      -- limit used up: its window too, or the ids after the cut's second are refused by it)
      if not ra and window and window > WINDOW then self:window_pause(job, window, err, now) end
      return
    end
    self.last_cut, self.clean = now, 0
    self.limit = math.max(1, math.floor(self.limit / 2))
    self.limit_min = math.min(self.limit_min, self.limit)
    local rate
    if stated then
      rate, self.ceiling = stated * RATE_HEADROOM, stated * RATE_HEADROOM
    else
      -- 90% of what the server accepted in the last second (when it accepted nothing: of the rate
      -- in use, else of the concurrency), never above 90% of the rate in use, and never under
      -- RATE_FLOOR, applied last: the floor once came before the cap by the rate in use, so
      -- each refusal of an endless throttling cut the rate by 10% more, and a batch of 60 ids
      -- would have run for years.
      local accepted = self:accepted_in_window(now)
      if accepted == 0 then accepted = self.bucket and self.bucket.rate or self.limit end
      rate = accepted * RATE_MEASURED
      if self.bucket then rate = math.min(rate, self.bucket.rate * RATE_MEASURED) end
      rate = math.max(RATE_FLOOR, rate)
    end
    if self.rate_cap then rate = math.min(rate, self.rate_cap) end
    if self.bucket and self.bucket ~= self.runner.bucket then
      self.bucket:set_rate(rate)
    else
      -- A bucket of the batch's own, never the client's slowed down in place: a batch that
      -- nginx ends (the downstream client gone, a killed thread) runs nothing after, and the
      -- client would keep the cut rate for the worker's life. Each request still takes a slot
      -- of the client's bucket too (and of the budget other workers share, rate_dict).
      if self.bucket then self.shared_bucket = self.bucket end
      self.bucket = pace.new{ rate = rate, clock = self.clock }
      -- A slot taken of the client's bucket and still waited for (rate_slot) is now the
      -- request's shared one: not taken again when it comes (a slot of the client's wasted,
      -- waited for once more); the new bucket's next slot counts from it.
      if self.rate_slot and self.shared_bucket then
        self.shared_taken = true
        self.bucket:defer(math.max(0, self:slot_left(now)))
      end
    end
    -- Without a Retry-After (one over retry_after_cap stopped the batch above): the window.
    if not ra then self:window_pause(job, window, err, now) end
    self.last_raise = now
  elseif status > 0 then
    local tail = self.accepted_tail + 1
    self.accepted[tail], self.accepted_tail = now, tail
    if not self.adaptive then return end
    self.clean = self.clean + 1
    if self.clean >= self.limit and self.limit < self.max_limit then
      self.limit, self.clean = self.limit + 1, 0
    end
    local bucket = self.bucket
    if bucket and self.last_cut > -math.huge and (now - self.last_raise >= 1 or now < self.last_raise) then
      self.last_raise = now
      bucket:set_rate(math.min(self.ceiling or math.huge, self.rate_cap or math.huge, bucket.rate * RATE_STEP))
    end
  end
end

-- With a rate of the batch's own inside a client with a rate, or whose budget other workers
-- share (rate_dict): the slot of that bucket, taken once the batch's own slot came (`now`), so
-- that the request goes at the slot of each. Both were taken at once: a request that waited for
-- its own slot had its shared one already passed, and the client's next call (another worker's
-- request) went together with it; one that waited for the shared slot went at its own slot's
-- interval from the batch's next one. Seconds to wait for it, kept as self.rate_slot (0: go).
function Run:shared_slot(now)
  local shared = self.shared_bucket
  if not shared or self.shared_taken then
    self.shared_taken = nil
    return 0
  end
  local wait = shared:take()
  if wait <= 0 then return 0 end
  self.bucket:defer(wait) -- the batch's own next slot counts from when this request goes
  self:keep_slot(now, wait, shared)
  self.shared_taken = true
  return wait
end

-- Keeps the slot that comes `wait` seconds from `now` (self.rate_slot; see slot_left), taken of
-- `bucket`, whose next slot it then was (see overtaken).
function Run:keep_slot(now, wait, bucket)
  self.rate_slot, self.slot_read = now + wait, now
  self.slot_bucket, self.slot_mark = bucket, bucket.tat
end

-- Did the bucket of the slot kept hand out a later one since (a call of the client's made from
-- on_result, or from another coroutine while the batch slept)? That call went at its slot, and
-- this request, gone at once behind it with its own slot long passed, made two together at
-- rate = 1. A bucket of this process's own only: one shared with other workers (rate_dict) hands
-- out slots all the time, each worker's request going at its own. Only once the later slot has
-- come (`now`): before it, this request goes first, at its own; given up then, a batch beside
-- another coroutine calling the client without pause sent nothing for as long as that went on.
function Run:overtaken(now)
  local bucket = self.slot_bucket
  return bucket ~= nil and not bucket.dict and bucket.tat ~= self.slot_mark
    and now >= self.rate_slot + bucket.interval - 1e-6
end

-- The slot kept has come (or was slept for): seconds to wait for the slot of the other bucket
-- (see shared_slot), 0 to go; or nil when it was overtaken (see above) and is given up: the
-- request takes its slots again.
function Run:slot_came(now)
  local overtaken = self:overtaken(now)
  self.rate_slot = nil
  if not overtaken then return self:shared_slot(now) end
  if self.shared_taken and self.slot_bucket == self.shared_bucket then
    self.shared_taken = nil
    return self:shared_slot(now)
  end
  return nil
end

-- Seconds from `now` until the slot kept comes. A caller's clock that went back since it was
-- last read (a wall clock NTP stepped) moves the slot back with it: the step is no time waited,
-- and must not stretch the wait either (a step of an hour held the batch for an hour).
function Run:slot_left(now)
  local read = self.slot_read
  if now < read then self.rate_slot = self.rate_slot - (read - now) end
  self.slot_read = now
  return self.rate_slot - now
end

-- Seconds until the next request may start (a Retry-After pause, the rate), 0 for now: then
-- the request must start at once, as its slot of the rate is taken. A slot that lies ahead is
-- kept (self.rate_slot) and waited for: a bucket shared with other workers (rate_dict) may hand out
-- a later slot than its wait() promised a moment before, and starting anyway would bunch
-- requests that the gateway counts in one-second windows. (A shared bucket's slot of a batch
-- with a rate of its own: see Run:shared_slot.)
function Run:start_wait(now)
  local slept = self.start_slept
  if slept then
    -- What the loop slept for in full is due, whatever the clock says (a caller's clock that
    -- stands still, or went back, must not hold the batch forever): the pause, or the slot. Only
    -- what it slept for: a slot past the end of the pause slept for is waited for still (it once
    -- went at the pause's end, before its slot).
    self.start_slept = nil
    if self.paused_until > now then self.paused_until, self.paused_mono = -math.huge, -math.huge end
    if slept == "slot" and self.rate_slot then
      local wait = self:slot_came(now)
      if wait then return wait end
    end
  end
  -- (the pause ends by the caller's clock or by the monotonic one, whichever comes first: a
  -- caller's clock stepped back must not stretch it)
  local wait = math.min(self.paused_until - now, self.paused_mono - core.monotime())
  if wait > 0 then
    -- A slot taken before the pause (the batch's own, or its shared one) that the pause passes is
    -- given up: the request takes its slots again when the pause ends. Kept, it went then with a
    -- slot long passed, and the next request's slot came at once: two together into the
    -- gateway's first window after the pause.
    if self.rate_slot and self:slot_left(now) < wait then self.rate_slot, self.shared_taken = nil, nil end
    self.start_for = "pause"
    return wait
  end
  self.start_for = "slot" -- (what a wait returned from here on is for)
  local bucket = self.bucket
  if not bucket then return 0 end
  if self.rate_slot then
    wait = self:slot_left(now)
    if wait > 0 then return wait end
    wait = self:slot_came(now)
    if wait then return wait end
  end
  wait = bucket:take()
  if wait <= 0 then return self:shared_slot(now) end
  self:keep_slot(now, wait, bucket)
  return wait
end

-- Retries due whose deadline would pass in `wait` seconds (the next slot of the rate, the end
-- of a pause): ended now with their last error, rather than sent after it or with no time to answer
-- (a delete that acted but is reported failed); with 0, those that wait for a free slot and
-- whose deadline has come. Returns whether any was ended.
function Run:expire_due(wait)
  local due, i, ended = self.retries_due, 1, false
  while due[i] do
    local job = due[i]
    if job.call:past_deadline(wait) then
      table.remove(due, i)
      self:finish(job, job.call:expire())
      ended = true
    else
      i = i + 1
    end
  end
  return ended
end

-- Seconds from `now` (core.monotime: a call's deadline is on it, whatever the client's clock)
-- until the first retry due would have too little of its deadline left to be sent (see
-- expire_due); math.huge when none has a deadline.
function Run:due_deadline(now)
  local soonest = math.huge
  for _, job in ipairs(self.retries_due) do
    local deadline = job.call.deadline
    if deadline and deadline < soonest then soonest = deadline end
  end
  return math.max(0, soonest - pipeline.MIN_ATTEMPT_TIME - now)
end

-- Moves the retries due by `now`, or by the monotonic clock (see settle), to the ready queue.
function Run:promote(now)
  local h, mono = self.retries, core.monotime()
  while h[1] and (h[1].ready_at <= now or h[1].due_mono <= mono) do
    self.retries_due[#self.retries_due + 1] = heap_pop(h)
  end
end

-- Asks the cancel option for the batch's credentials step (see eip.pipeline's halt: a login, a
-- wait for another call's, the project's look-up): either answer stops the batch at once (no
-- request starts, not even the one whose credentials were fetched); "abort" also ends the
-- fetch's request in flight (over libcurl), and what this batch has in flight once
-- poll_cancel, in the loop, hears of it (self.heard). Returns the answer.
function Run:cancel_heard()
  local what = self.cancel()
  if what == "abort" then
    self.heard = "abort"
    self.stopped = { reason = "aborted", cause = self.stopped and self.stopped.cause }
    self:halt_driver() -- (until poll_cancel aborts what is in flight: nothing more goes out)
  elseif what then
    self.heard = self.heard or "stop"
    self:stop(self.exiting and "exiting" or "cancelled")
  end
  return what
end

-- Asks the cancel option; "abort" also ends what is in flight (reported as interrupted: the
-- server may or may not have acted on it). Answers that have arrived by then are taken first
-- and reported as they are: a 204 already received is a deleted bandwidth. An answer the
-- credentials step heard (cancel_heard) counts as this one's, an abort over a later stop.
function Run:poll_cancel()
  local cancel = self.cancel
  if not cancel or self.abort_done then return end
  local what, heard = cancel(), self.heard
  self.heard = nil
  if heard == "abort" or (heard and not what) then what = heard end
  if what == "abort" then
    self.abort_done = true
    self.stopped = { reason = "aborted", cause = self.stopped and self.stopped.cause }
    -- Nothing goes out from now on: taking the answers that arrived drives the transfers, and
    -- one whose connection was still being made would go out then, after the abort. It comes
    -- back held_back instead, and is reported with those the driver cancels unsent below.
    self:halt_driver()
    local held = {}
    while self.driver:pending() > 0 do
      local slot, resp = self:next_answer(0)
      if not slot then break end
      -- (held back and unsent both: a transport's word that nothing of it went out)
      if type(resp) == "table" and resp.held_back and resp.unsent then
        held[slot] = true
      else
        self:completed(slot, resp)
      end
    end
    local unsent = self.driver:cancel()
    for slot in pairs(held) do unsent[slot] = true end
    self:release_all(unsent)
    self:dropped(unsent)
    for slot, job in pairs(self.in_flight) do
      self.in_flight[slot] = nil
      self:finish(job, "fail", dropped_error(job, slot, unsent))
    end
  elseif what then
    self:stop(self.exiting and "exiting" or "cancelled")
  end
end

-- Has a request to start (a retry due or an id not sent), and may.
function Run:has_ready()
  return not self.stopped and (self.retries_due[1] ~= nil or self.fresh[self.head] ~= nil)
end

-- Seconds until the batch's deadline leaves a request less than an attempt's least time (0 or
-- less: none may start), or nil without a deadline.
function Run:to_deadline()
  return self.deadline_at and self.deadline_at - core.monotime() - pipeline.MIN_ATTEMPT_TIME
end

function Run:loop()
  local driver = self.driver
  while true do
    self:poll_cancel()
    -- The batch's deadline: no request starts once it would leave less than an attempt's least
    -- time, first attempt or retry, as after a stop. What is in flight then is not cut: it ends
    -- within its own timeout (cut, a signed request is one without an answer, which the gateway
    -- may have refused unseen: four such stop the client signing with the key for good).
    local to_deadline = self:to_deadline()
    if to_deadline and to_deadline <= 0 and not self.stopped then self:stop("deadline") end
    local now = self.clock()
    self:promote(now)
    -- One request alone first: if the credentials are refused, one failure is all it costs
    -- (five bad signatures in a row lock an AK/SK pair), not one per slot.
    local limit = self.probing and 1 or self.limit
    -- Signed requests (AK/SK): at most SIGNED_IN_FLIGHT_MAX in flight for the client, this
    -- batch's and any other's (several batches, single calls inside nginx), fewer by the
    -- strikes already taken, so that a key refused mid-batch is never refused five times in a
    -- row. When others hold every place, the batch waits for one.
    local provider = self.runner.provider
    local room, flying = signing_room(provider)
    local waits_to_sign = false
    if room < math.huge then
      local pending = driver:pending()
      -- Places held by coroutines dropped before their request went out: collected once per
      -- batch, when it lacks places (see pipeline.collect_dropped), not waited out.
      if pending + room < limit and not self.collected and pipeline.collect_dropped(provider) then
        self.collected = true
        room, flying = signing_room(provider)
      end
      if pending + room < limit then
        limit = math.max(pending, pending + room)
        -- Places held by others free up without this loop hearing of it: looked at again soon.
        waits_to_sign = flying > pending
        -- Run from a hook or an on_result, with no place free: what holds them waits for this
        -- batch to end. Each id is taken below, and refused a place at once.
        if limit == 0 and (self.runner:reentered() or self.runner:wait_stops()) then limit, waits_to_sign = 1, false end
      end
    end
    -- Credentials due for renewal, renewed as the next request is signed: beside the C multi
    -- (a userdata; the other drivers are tables) that blocks the process, so what is in flight
    -- ends first (see eip.auth's renewal_due).
    if provider.renewal_due and driver:pending() > 0 and type(driver) == "userdata"
        and provider:renewal_due() then
      limit = driver:pending()
    end
    local start_wait = 0
    while driver:pending() < limit and self:has_ready() do
      local job = self:next_ready()
      -- Keys to fetch first (none yet, another call's fetch under way, refused ones due for
      -- renewal): before the place is taken, so that it is counted for the key that signs (as
      -- Runner:run asks: pipeline.keys_due); and before a slot of the rate is taken: an
      -- id whose keys cannot be had is not sent, and must not use up the rate (other workers'
      -- budget too, with rate_dict), every id of a long batch waiting its slot to say so.
      local action, value
      local unstarted = not job.call.started
      if pipeline.keys_due(self.runner, job.call.op) then
        action, value = pipeline.keys_first(self.runner, job.call, self.halt)
        -- (a login or the metadata service's keys may have taken the batch past its deadline:
        -- no delete starts then, this one neither; a review found one sent 1 s after it)
        if not action and (self:to_deadline() or 1) <= 0 then
          if unstarted and job.call.started then job.call.started, job.call.deadline = false, false end
          self:stop("deadline")
          self:unready(job)
          break
        end
      end
      if not action then
        start_wait = self:start_wait(now)
        if start_wait > 0 then
          -- (a clock keys_first started just now starts again as the id is sent: the batch's
          -- waits for a slot count in no id's deadline before its first attempt; not one that
          -- ran before, an id put back after its caller was away, with the time it has left)
          if unstarted and job.call.started then job.call.started, job.call.deadline = false, false end
          self:unready(job)
          break
        end
      end
      if action == "fail" and value.cancelled and self.stopped then
        self:unready(job) -- (stopped by cancel meanwhile: see Run:start)
      elseif action then
        self:finish(job, action, value)
      -- A signed request's place (another worker may have taken the last since it was counted).
      elseif admit(provider, job.call, self.runner.timeout) then
        self:start(job)
      elseif driver:pending() == 0 and self.runner:reentered() then
        -- A batch run from a hook or another batch's on_result: what holds the places waits
        -- for it to end.
        self:finish(job, "fail", errors.no_signing_place(job.call.op,
          "its batch was run from a hook or a batch's on_result"))
      elseif driver:pending() == 0 and self.runner:wait_stops() then
        -- (see Runner:wait_stops: a wait would stop what holds them)
        self:finish(job, "fail", errors.no_signing_place(job.call.op, pipeline.STUCK))
      else
        self:unready(job)
        waits_to_sign = true
        break
      end
    end
    -- Nothing left to wait for once the retries waiting were ended.
    if start_wait > 0 and self:expire_due(start_wait) and not self:has_ready() then start_wait = 0 end
    local next_retry = not self.stopped and self.retries[1]
    -- (never longer than the retry's own delay: a caller's clock that went back cannot stretch it)
    local wait = next_retry and math.min(next_retry.ready_at - now, next_retry.delay) or math.huge
    if start_wait > 0 and driver:pending() < limit then wait = math.min(wait, start_wait) end
    if driver:pending() >= limit and self.retries_due[1] then
      -- Retries due that wait for a free slot (every one taken, or one request alone while the
      -- batch probes): ended once their deadline would leave no time for an attempt, not when a
      -- slot frees (their result came seconds late, its elapsed past the deadline).
      self:expire_due(0)
      wait = math.min(wait, self:due_deadline(core.monotime())) -- (deadlines are monotonic; `now` the clock's)
    end
    if waits_to_sign and self:has_ready() then wait = math.min(wait, pipeline.SIGNED_WAIT_STEP) end
    -- (woken at the deadline, to stop what waits: a slot of the rate, a signing place, a retry's
    -- backoff; with nothing left to wait for, the loop ends as without a deadline)
    if to_deadline and to_deadline > 0 and (self:has_ready() or self.retries[1]) then
      wait = math.min(wait, to_deadline)
    end
    if driver:pending() == 0 then
      if wait == math.huge then return end
      -- Nothing in flight: only a backoff, a pause or the rate left to wait for. The runner's
      -- sleep (ngx.sleep in nginx; a recording stub in tests) does it, and what was waited for
      -- is then due whatever the clock says, so a sleep that returns early cannot make this
      -- loop spin. With a cancel function the wait goes in pieces of CANCEL_INTERVAL, each
      -- followed by a question to it (Ctrl-C is heard at once, a progress line moves); the
      -- pieces are counted rather than timed, for the same reason.
      local left = self.wait_left or wait
      local piece = self.cancel and math.min(left, M.CANCEL_INTERVAL) or left
      self.wait_left = left - piece > 0 and left - piece or nil
      if piece > 0 then self.runner.sleep(piece) end
      if not self.wait_left and start_wait > 0 and wait >= start_wait then self.start_slept = self.start_for end
      -- (a retry's whole delay slept now is due too, however the caller's clock moved since)
      if not self.wait_left and next_retry and (next_retry.ready_at <= now + wait or wait >= next_retry.delay) then
        self:promote(next_retry.ready_at)
      end
    else
      self.wait_left = nil
      local slot, resp = self:next_answer(math.max(0, math.min(self.cancel and M.CANCEL_INTERVAL or MAX_WAIT, wait)))
      if slot then self:completed(slot, resp) end
    end
  end
end

-- After a stop: retries still waiting end with their last error (they were sent: the server
-- may have acted on them), ids never sent are reported as not sent.
function Run:wind_up()
  local stopped = self.stopped
  if not stopped then return end
  local waiting = self.retries_due
  while self.retries[1] do waiting[#waiting + 1] = heap_pop(self.retries) end
  for _, job in ipairs(waiting) do
    local err = job.call.last_error
    err.stopped = stopped.reason
    self:finish(job, "fail", err)
  end
  self.retries_due = {}
  -- Not `#self.fresh`: the ids sent are gone from the front, and the length of a table with
  -- holes may be any border (Lua 5.1 and LuaJIT say 0 here, 5.4 the last index).
  while self.fresh[self.head] do
    local job = self.fresh[self.head]
    self.fresh[self.head] = nil
    self.head = self.head + 1
    self:finish(job, "fail", errors.not_sent(job.call.op, stopped.reason, stopped.cause))
  end
end

-- The entry of an id that a failed look-up of the project (IAM) left unsent: kind "not_sent",
-- `stopped` "auth" when the key or the login was refused (as after a refused delete), else
-- "project"; `cause` the look-up's error. A look-up the batch's cancel ended (kind
-- "interrupted", the batch stopped: see Run:cancel_heard), or one not made because the batch had
-- stopped before it (`cause` nil), leaves it as any id a stop leaves.
local function unsent_for_project(self, id, cause)
  local op = ops.delete_bandwidth("{project_id}", id, self.missing_ok)
  local stopped = self.stopped
  if stopped and (cause == nil or cause.kind == "interrupted") then
    return errors.not_sent(op, stopped.reason, stopped.cause)
  end
  local reason = retry.halts(cause) and "auth" or "project"
  self:stop(reason, cause)
  return errors.not_sent(op, reason, cause)
end

-- Jobs for the valid ids; invalid ids end at once as usage errors (nothing is sent for them).
-- When the project cannot be determined (IAM refused the key, or could not be reached), no
-- delete is sent: every valid id is `not_sent`, the look-up's error its cause. A repeated id
-- is sent once; its later positions get the same outcome.
function Run:prepare(ids, n)
  local runner = self.runner
  local project_ok, project -- asked once, at the first valid id (IAM may fetch a token)
  local first = {}
  for i = 1, n do
    local id = ids[i]
    local job = { index = i, id = id, away_restarts = 0 }
    local valid, err = pcall(runner.id, runner, "bandwidth_id", id)
    if valid and first[id] and not project_ok then
      -- Its first position ended at once (no project): so does this one.
      self.summary.repeated = self.summary.repeated + 1
      self:finish(job, "fail", unsent_for_project(self, id, project))
    elseif valid and first[id] then
      local list = self.repeats[id] or {}
      list[#list + 1] = i
      self.repeats[id] = list
      self.summary.repeated = self.summary.repeated + 1
    else
      if valid then first[id] = true end
      if valid and project_ok == nil and self.stopped and runner.project_id == nil then
        -- Stopped already (an on_result's STOP to an invalid id's entry): the look-up, a request
        -- (signed, with AK/SK), is not sent either; the ids are not sent, as after any stop.
        project_ok = false
      elseif valid and project_ok == nil then
        project_ok, project = errors.held(runner.project, runner, self.halt)
        if not project_ok and not errors.is_error(project) then error(project, 0) end -- a bug: its traceback
      end
      if not valid then
        self:finish(job, "fail", err)
      elseif not project_ok then
        self:finish(job, "fail", unsent_for_project(self, id, project))
      else
        job.call = runner:call(ops.delete_bandwidth(project, id, self.missing_ok))
        self.fresh[#self.fresh + 1] = job
      end
    end
  end
end

-- The client's bucket gets the rate it was made with back (adapting slows a bucket of the
-- batch's own, never the client's: this only mends one changed some other way).
function Run:give_back_rate()
  local bucket = self.runner.bucket
  if bucket and bucket.rate ~= bucket.configured then bucket:set_rate(bucket.configured) end
end

--- Runs a batch of deletes (see the top of this file).
-- @tparam table runner the client's pipeline runner
-- @tparam table ids bandwidth ids
-- @tparam[opt] table opts concurrency, missing_ok, on_result
-- @treturn table results @treturn table summary
-- @treturn table what the reads of a wait after it keep to (eip.bandwidths.wait_gone's
--   `pacing`): `bucket`, the batch's own rate (set, or adapted) as it ended (nil when it kept the
--   client's); `not_before` (core.monotime) and `held_by`, a pause its last throttling answer
--   asked for (its Retry-After, or the window of a cut) that had not ended
function M.run(runner, ids, opts)
  local n = validate.list("ids", ids, "bandwidth ids")
  local o = read_options(runner, opts)
  local clock = runner.clock
  local bucket, shared_bucket = runner.bucket, nil
  if o.rate then
    -- The batch's rate replaces the client's, except a budget shared with other workers
    -- (rate_dict), which every request still takes its part of.
    shared_bucket = bucket and bucket.dict and bucket or nil
    bucket = pace.new{ rate = o.rate, clock = clock }
  end
  local run = setmetatable({
    runner = runner, missing_ok = o.missing_ok, on_result = o.on_result,
    cancel = false, exiting = false,
    heard = false, abort_done = false, halt = false, waiting = false, collected = false,
    started = core.monotime(), results = {}, repeats = {}, probing = true,
    summary = { deleted = 0, missing = 0, failed = 0, not_sent = 0, repeated = 0, throttled = 0, total = n,
      elapsed = 0 },
    fresh = {}, head = 1, retries = {}, retries_due = {}, in_flight = {},
    clock = clock, bucket = bucket, shared_bucket = shared_bucket, adaptive = o.adaptive,
    paused_until = -math.huge, paused_mono = -math.huge, last_cut = -math.huge,
    last_raise = -math.huge, clean = 0, accepted = {}, accepted_head = 1, accepted_tail = 0,
    -- The rate the caller set (the client's or this batch's): adapting never goes above it, and
    -- the client's bucket gets it back when the batch ends, however it ends.
    rate_cap = bucket and bucket.configured or nil,
  }, Run)
  -- (one that raises: stop; inside nginx, the worker's exit stops it too: see errors.with_exit)
  run.cancel = errors.with_exit(errors.guarded(o.cancel, runner.log, "cancel", "stop"),
    function() run.exiting = true end)
  if run.cancel then
    -- (the credentials step's: see Run:cancel_heard)
    run.halt = pipeline.halt(function() return run:cancel_heard() end,
      function() return run:cancel_heard() == "abort" end)
  end
  if o.deadline then run.deadline_at = run.started + o.deadline end
  run:prepare(ids, n)
  if run.head <= #run.fresh then
    run.driver, run.limit = M.driver(runner, o.concurrency)
    run.max_limit, run.limit_min = run.limit, run.limit
    local ok, err = errors.held(run.loop, run)
    if not ok then
      local unsent = run.driver:cancel() -- nothing stays in flight: the client's next batch starts clean
      run:dropped(unsent)
      run:release_all(unsent)
      run:give_back_rate()
      driver_done(runner, run.driver)
      error(err, 0)
    end
    driver_done(runner, run.driver)
  end
  run:wind_up()
  local summary = run.summary
  if run.stopped then summary.stopped = run.stopped.reason end
  -- (With AK/SK, never more than SIGNED_IN_FLIGHT_MAX in flight, whatever the concurrency asked
  -- for: see Run:loop. The summary says what was allowed.)
  local cap = run.runner.provider.rejected and M.SIGNED_IN_FLIGHT_MAX
  summary.concurrency, summary.concurrency_min = run.limit, run.limit_min
  if cap and run.limit then summary.concurrency = math.min(run.limit, cap) end
  if cap and run.limit_min then summary.concurrency_min = math.min(run.limit_min, cap) end
  summary.rate = run.bucket and run.bucket.rate or nil
  run:give_back_rate()
  run.summary.elapsed = core.monotime() - run.started
  -- (a pause the batch's last throttling answer asked for, not over: its wait's reads keep to it,
  -- ended by the caller's clock or the monotonic one, as the batch's)
  local pause = math.min(run.paused_until - clock(), run.paused_mono - core.monotime())
  local pacing = { bucket = run.bucket ~= runner.bucket and run.bucket or nil, deadline_at = run.deadline_at }
  if pause > 0 then pacing.not_before, pacing.held_by = core.monotime() + pause, run.paused_by end
  return run.results, run.summary, pacing
end

return M
