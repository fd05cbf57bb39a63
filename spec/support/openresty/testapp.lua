-- Test-only handlers of the OpenResty app (runs inside nginx, LuaJIT). The admin endpoint
-- itself is the one of examples/openresty/nginx.conf; these routes expose what the specs
-- check: phases, the raw cosocket transport, a client made in a request, eip.status, sleeping,
-- the worker's memory.
-- luacheck: globals ngx
local cjson = require "cjson.safe"
local eip = require "eip"
local transport = require "eip.transport"
local pipeline = require "eip.pipeline"

local M = {}

-- What the transport selection said in init_worker and in a timer started from there.
local seen = {}

-- Work in every worker at once: /t/shared_rate puts a job in the eip_test dict ({ generation,
-- rate, batch_rate?, ids = { [worker] = {...} }, admin?, aksk? }); every worker's timer polls it,
-- runs its share and stores its summary under "result:<generation>:<worker>". A batch sharing the
-- eip_rate bucket; with admin = true, one delete per id through the example's own client; with
-- aksk = { ak, sk, signing_dict? }, a batch of an AK/SK client of its own (the signing_dict's
-- counts emptied when the job is posted, unless keep_dict); with iam = { auth, signing_dict?,
-- timeout?, keep_dict?, rate?, calls? }, of an IAM password client of its own (rate: sharing
-- the eip_rate bucket, each request's start kept; calls: single calls at once, not a batch).
local function shared_rate_worker()
  local dict, worker, done = ngx.shared.eip_test, ngx.worker.id(), 0
  while not ngx.worker.exiting() do
    local job = dict:get("job")
    job = job and cjson.decode(job)
    if job and job.generation > done then
      done = job.generation
      local summary
      if job.aksk then
        local c = eip.new{ endpoint = os.getenv("EIP_ENDPOINT"), project_id = os.getenv("EIP_PROJECT_ID"),
          ak = job.aksk.ak, sk = job.aksk.sk, signing_dict = job.aksk.signing_dict, timeout = 10,
          max_attempts = 1 }
        local _
        _, summary = c:delete_bandwidths(job.ids[worker + 1], { concurrency = 8 })
        c:close()
      elseif job.iam then
        -- (with a rate: each request's method and start, this worker's clock, as below)
        local rate, starts = job.iam.rate, {}
        local c = eip.new{ endpoint = os.getenv("EIP_ENDPOINT"), project_id = os.getenv("EIP_PROJECT_ID"),
          auth = job.iam.auth, signing_dict = job.iam.signing_dict, timeout = job.iam.timeout or 10,
          max_attempts = 1, rate = rate, rate_dict = rate and "eip_rate" or nil,
          on_request = rate and function(r)
            ngx.update_time()
            starts[#starts + 1] = { r.method, ngx.now() }
          end or nil }
        if job.iam.calls then
          -- One delete_bandwidth per id, all at once (a light thread each), as requests would.
          local threads = {}
          for i, id in ipairs(job.ids[worker + 1]) do
            threads[i] = ngx.thread.spawn(function() return pcall(c.delete_bandwidth, c, id) end)
          end
          summary = { deleted = 0, failed = 0, not_sent = 0 }
          for _, thread in ipairs(threads) do
            local _, ok, res = ngx.thread.wait(thread)
            local k = ok and "deleted" or (type(res) == "table" and res.not_sent) and "not_sent" or "failed"
            summary[k] = summary[k] + 1
          end
        else
          local _
          _, summary = c:delete_bandwidths(job.ids[worker + 1], { concurrency = 4 })
        end
        summary.starts = rate and starts or nil
        c:close()
      elseif job.admin then
        -- The example's own client (made in init_by_lua, one copy per worker): one delete each.
        local client = require("eip_admin").client
        summary = { deleted = 0, failed = 0 }
        for _, id in ipairs(job.ids[worker + 1]) do
          local ok = pcall(client.delete_bandwidth, client, id)
          summary[ok and "deleted" or "failed"] = summary[ok and "deleted" or "failed"] + 1
        end
      else
        -- starts: when each request went (this worker's clock, seconds), for the spec to check the
        -- spacing where it is made rather than where the gateway's worker got to it.
        local starts = {}
        local c = eip.new{ endpoint = os.getenv("EIP_ENDPOINT"), project_id = os.getenv("EIP_PROJECT_ID"),
          token = os.getenv("EIP_TOKEN"), timeout = 5, rate = job.rate, rate_dict = "eip_rate",
          on_request = function()
            ngx.update_time()
            starts[#starts + 1] = ngx.now()
          end }
        local _
        _, summary = c:delete_bandwidths(job.ids[worker + 1], { concurrency = 8, adaptive = false,
          rate = job.batch_rate })
        summary.starts = starts
        c:close()
      end
      dict:set("result:" .. done .. ":" .. worker, cjson.encode(summary))
    end
    ngx.sleep(0.02)
  end
end

function M.init_worker()
  seen.init_worker = { phase = ngx.get_phase(), transport = transport.current(),
    -- (loaded by the master, with the example's client made in init_by_lua: before a request)
    cosocket_loaded = package.loaded["eip.transport.cosocket"] ~= nil }
  ngx.timer.at(0, function()
    seen.timer = { phase = ngx.get_phase(), transport = transport.current() }
  end)
  ngx.timer.at(0, shared_rate_worker)
end

-- The request's body decoded as JSON (nil when it is none): `empty`, what an absent body reads as.
local function json_body(empty)
  ngx.req.read_body()
  return cjson.decode(ngx.req.get_body_data() or empty or "")
end

local function reply(status, value)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  ngx.say(type(value) == "string" and value or cjson.encode(value))
  return ngx.exit(ngx.HTTP_OK)
end

function M.say_json(text)
  return reply(200, text)
end

-- `instance`: the launcher's name for this nginx (see its ready check).
function M.ping(instance)
  ngx.header["Content-Type"] = "text/plain"
  ngx.say("pong ", instance)
end

function M.seen()
  return reply(200, seen)
end

function M.status(code)
  return reply(200, eip.status(tonumber(code)))
end

function M.statuses()
  return reply(200, eip.statuses())
end

-- One delete with the example's client, described with the phase and the transport used.
local function outcome(id)
  local client = require("eip_admin").client
  local ok, res = pcall(client.delete_bandwidth, client, id)
  local out = { ok = ok, phase = ngx.get_phase(), transport = client.transport.last }
  if ok then
    out.result = res
  elseif eip.is_error(res) then
    out.error = { kind = res.kind, status = res.status, reason = res.reason, code = res.code,
      curl_code = res.curl_code, text = tostring(res) }
  else
    out.error = { kind = "internal", text = tostring(res) }
  end
  return out
end

-- server_rewrite_by_lua (runs for every request of the server): a delete for
-- /t/server_rewrite/<id> only, its outcome kept for the location's content handler.
function M.server_rewrite()
  local id = ngx.var.uri:match("^/t/server_rewrite/([^/]+)$")
  if id then ngx.ctx.eip_outcome = outcome(id) end
end

function M.server_rewrite_outcome()
  return reply(200, ngx.ctx.eip_outcome or { ok = false, error = { text = "server_rewrite did not run" } })
end

-- set_by_lua: the value of $eip_outcome.
function M.set_phase(id)
  return cjson.encode(outcome(id))
end

function M.timer(id)
  local sema = require("ngx.semaphore").new()
  local result
  local ok, err = ngx.timer.at(0, function()
    result = outcome(id)
    sema:post()
  end)
  if not ok then
    return reply(500, { error = err })
  end
  sema:wait(10)
  return reply(200, result or { error = "the timer did not finish" })
end

-- POST {url, method, headers, body, timeout, connect_timeout, body_cap, insecure, user_agent}:
-- the response table, or { raised = text } when making the transport or send raised (a caller
-- bug: a method or header name that is no token, a user agent with a control character).
function M.send()
  local req = json_body()
  if type(req) ~= "table" then
    return reply(400, { error = "POST a JSON request table" })
  end
  local made, t = pcall(require("eip.transport.cosocket").new, { insecure = req.insecure,
    user_agent = req.user_agent })
  if not made then return reply(200, { raised = tostring(t) }) end
  req.insecure, req.user_agent = nil, nil
  local ok, resp = pcall(t.send, t, req)
  -- (req.progress, as the transport left it: see the contract's request)
  if ok and type(req.progress) == "table" then resp.progress_sent = req.progress.sent end
  return reply(200, ok and resp or { raised = tostring(resp) })
end

-- POST {req = {...as for /t/send}, times = n, changes = {{index, line}, ...}, busy = s,
-- no_peek = true}: one transport sends req n times (busy: with s seconds of work before each send
-- after the first, never yielding; no_peek: pooled connections looked at by a read, see PEEK in
-- eip.transport.cosocket) with one header list (which it remembers from the second send on, as it
-- does a token client's), then once more after each change (headers[index] = line). Answers
-- the outcomes in order: a response table, or { raised = text } when send raised.
function M.send_again()
  local args = json_body()
  if type(args) ~= "table" or type(args.req) ~= "table" or type(args.times) ~= "number" then
    return reply(400, { error = "POST {req = {...}, times = n, changes = {...}}" })
  end
  local req = args.req
  local t = require("eip.transport.cosocket").new{ user_agent = req.user_agent }
  req.user_agent = nil
  local out = {}
  local function send()
    local ok, resp = pcall(t.send, t, req)
    out[#out + 1] = ok and resp or { raised = tostring(resp) }
  end
  local cosocket = require "eip.transport.cosocket"
  cosocket.PEEK = not args.no_peek
  for i = 1, args.times do
    if i > 1 and args.busy then -- work between the sends, without yielding to nginx's event loop
      local from = ngx.now()
      repeat ngx.update_time() until ngx.now() - from >= args.busy
    end
    send()
  end
  cosocket.PEEK = true
  for _, change in ipairs(args.changes or {}) do
    req.headers[change[1]] = change[2]
    send()
  end
  return reply(200, out)
end

-- POST {options = {...eip.new options}, id = "..."}: a client made here, in the content phase
-- (so its calls go over cosockets), deletes one bandwidth. Answers what the caller got: the
-- result, or the error's fields, and whether the error was an eip error table.
function M.client()
  local args = json_body()
  if type(args) ~= "table" or type(args.options) ~= "table" then
    return reply(400, { error = "POST {options = {...}, id = ...}" })
  end
  -- (`lane`: false, the client's calls go the general way; `first`: an id deleted before, which
  -- made the client's lane; `call`: the delete's call_opts)
  pipeline.lane = args.lane ~= false
  local ok, client = pcall(eip.new, args.options)
  if not ok then
    pipeline.lane = true
    return reply(200, { ok = false, raised = type(client), is_error = eip.is_error(client),
      error = { text = tostring(client) } })
  end
  -- (`watch`: a send replaced to count the requests it is given, before the first delete or
  -- after (`late`): the transport's ("instance"), its class's ("class"), or the cosocket instance's
  -- inside the automatic transport ("inner"); put back before the answer)
  local watch, watched, unwatch = args.watch, 0, nil
  local function wrap()
    local t = client.transport
    if watch == "class" then t = getmetatable(t) elseif watch == "inner" then t = t:get("cosocket") end
    local own = rawget(t, "send")
    local f = t.send
    t.send = function(...) watched = watched + 1; return f(...) end
    unwatch = function() t.send = own end
  end
  if watch and not args.late then wrap() end
  if args.first then pcall(client.delete_bandwidth, client, args.first) end
  if watch and args.late then wrap() end
  -- (`count`: how many functions of eip.pipeline the delete runs, LuaJIT's compiler off meanwhile:
  -- it calls no hook inside a trace)
  local calls, jit = 0, rawget(_G, "jit")
  if args.count then
    if jit then jit.off(); jit.flush() end
    debug.sethook(function()
      if debug.getinfo(2, "S").source:find("eip/pipeline%.lua$") then calls = calls + 1 end
    end, "c")
  end
  -- (`fail`: the delete's transport raises that text, as memory running out would inside its send:
  -- nginx's update_time, which a cosocket exchange calls first, replaced meanwhile)
  local update_time = ngx.update_time
  if args.fail then ngx.update_time = function() error(args.fail, 0) end end
  local res
  ok, res = pcall(client.delete_bandwidth, client, args.id, args.call)
  ngx.update_time = update_time
  if args.count then
    debug.sethook()
    if jit then jit.on() end
  end
  pipeline.lane = true
  if unwatch then unwatch() end
  local out = { ok = ok, transport = client.transport.last,
    raised = (not ok) and type(res) or nil, pipeline_calls = args.count and calls or nil,
    watched = watch and watched or nil }
  if ok then
    out.result = res
  else
    out.is_error = eip.is_error(res)
    out.error = { text = tostring(res) }
    if type(res) == "table" then
      for _, k in ipairs{ "kind", "status", "reason", "code", "curl_code", "curl_error", "retryable", "proxy",
                          "proxy_status", "message", "attempts", "deleted", "request_id" } do
        out.error[k] = res[k]
      end
    end
  end
  client:close()
  return reply(200, out)
end

-- POST {options, id, ids}: a client of the request's own whose on_request closes it at the first
-- attempt of the delete of `id` (the API answers it 503 once: a second attempt follows the
-- close), then a new client whose batch of `ids` is closed from its on_result; what each call
-- returned, whether its client is closed and whether its transport still holds an instance.
function M.close_in_call()
  local args = json_body()
  local c
  args.options.on_request = function(info) if info.attempt == 1 then c:close() end end
  c = eip.new(args.options)
  local ok, res = pcall(c.delete_bandwidth, c, args.id)
  local again_ok, again = pcall(c.delete_bandwidth, c, args.id)
  local out = { single = { ok = ok, status = ok and res.status or tostring(res), attempts = ok and res.attempts,
    closed = c.closed, held = next(c.transport.instances) ~= nil,
    again = again_ok and "sent" or (eip.is_error(again) and again.kind) or tostring(again) } }
  args.options.on_request = nil
  c = eip.new(args.options)
  local results, summary
  ok, results, summary = pcall(c.delete_bandwidths, c, args.ids, { on_result = function(i)
    if i == 1 then c:close() end
  end })
  out.batch = { ok = ok, deleted = ok and summary.deleted or tostring(results), closed = c.closed,
    held = next(c.transport.instances) ~= nil }
  return reply(200, out)
end

-- Clients shared by every request of the worker, by name: one client serving many requests at
-- once, as the example's does.
local shared_clients = {}

-- What the on_response of each recording shared client was told, by name, in order.
local responses = {}

-- POST {...eip.new options, record = true?}: makes (or replaces) the shared client `name`; with
-- `record`, its on_response keeps each info for /t/responses/<name>.
function M.shared_client(name)
  local options = json_body()
  if type(options) ~= "table" then return reply(400, { error = "POST the options" }) end
  if shared_clients[name] then shared_clients[name]:close() end
  if options.record then
    local kept = {}
    responses[name], options.record = kept, nil
    options.on_response = function(info) kept[#kept + 1] = info end
  end
  shared_clients[name] = eip.new(options)
  return reply(200, { ok = true, pid = ngx.worker.pid() })
end

-- The infos the on_response of the recording shared client `name` was given so far.
function M.responses(name)
  -- (an empty list as a JSON array: cjson encodes an empty table as an object)
  local kept = responses[name] or {}
  return reply(200, #kept > 0 and kept or "[]")
end

-- One delete with the shared client `name`, described: ok, phase, took (seconds), the worker's pid, the result's
-- status or the error's fields (and whether it was an eip error table).
local function shared_outcome(name, id)
  local client = shared_clients[name]
  ngx.update_time()
  local t0 = ngx.now()
  local ok, res = pcall(client.delete_bandwidth, client, id)
  ngx.update_time()
  local out = { ok = ok, phase = ngx.get_phase(), took = ngx.now() - t0, pid = ngx.worker.pid() }
  if ok then
    out.status = res.status
  else
    out.is_error = eip.is_error(res)
    out.error = { text = tostring(res) }
    if type(res) == "table" then
      for _, k in ipairs{ "kind", "status", "reason", "code", "curl_code", "not_sent", "path", "retryable" } do
        out.error[k] = res[k]
      end
    end
  end
  return out
end

function M.shared_delete(name, id)
  return reply(200, shared_outcome(name, id))
end

-- The application's own timers first, as many as nginx runs at once (lua_max_running_timers,
-- 256 by default), each sleeping `hold` seconds (?hold=, default 2): a timer made meanwhile is
-- accepted and never run. Then one delete with the shared client `name`, described.
function M.shared_busy(name, id)
  local hold = tonumber(ngx.var.arg_hold) or 2
  for _ = 1, 256 do
    assert(ngx.timer.at(0, function() ngx.sleep(hold) end))
  end
  ngx.sleep(0.05) -- they begin at nginx's next turn
  return reply(200, shared_outcome(name, id))
end

-- Every pending timer nginx allows (lua_max_pending_timers) taken first, each due in `hold`
-- seconds (?hold=, default 3): nginx refuses the next timer. Then one delete with the shared
-- client `name`, described.
function M.shared_no_timers(name, id)
  local hold = tonumber(ngx.var.arg_hold) or 3
  for _ = 1, 100000 do
    if not ngx.timer.at(hold, function() end) then break end
  end
  return reply(200, shared_outcome(name, id))
end

-- log_by_lua: the outcome is kept in the eip_test dict for /t/outcome/<id>.
function M.shared_delete_log(name, id)
  ngx.shared.eip_test:set("outcome:" .. id, cjson.encode(shared_outcome(name, id)))
end

function M.outcome(id)
  return reply(200, ngx.shared.eip_test:get("outcome:" .. id) or "null")
end

-- A batch of the shared client `name` on `ids` at `concurrency`, whose cancel answers `answer`
-- ("abort" or "stop") once `after` seconds have passed (never without `after`), described: took
-- (seconds), phase, summary, and each result's kind ("ok" for a result), stopped and not_sent.
local function shared_batch_outcome(name, ids, concurrency, answer, after)
  local client = shared_clients[name]
  ngx.update_time()
  local t0 = ngx.now()
  local cancel = after and function()
    ngx.update_time()
    if ngx.now() - t0 >= after then return answer end
  end or nil
  local ok, results, summary = pcall(client.delete_bandwidths, client, ids, { concurrency = concurrency,
    cancel = cancel })
  ngx.update_time()
  local out = { ok = ok, phase = ngx.get_phase(), took = ngx.now() - t0 }
  if not ok then
    out.raised = tostring(results)
    return out
  end
  out.summary, out.results = summary, {}
  for i, r in ipairs(results) do
    out.results[i] = { kind = r.kind or "ok", stopped = r.stopped, not_sent = r.not_sent == true, status = r.status }
  end
  return out
end

-- POST { ids, concurrency?, answer?, after? }: shared_batch_outcome in the content phase (cosockets,
-- light threads).
function M.shared_batch(name)
  local args = json_body()
  local body = cjson.encode(shared_batch_outcome(name, args.ids, args.concurrency, args.answer, args.after))
  -- (a Content-Length: the spec may read this answer off a raw socket)
  ngx.header["Content-Type"] = "application/json"
  ngx.header["Content-Length"] = #body
  ngx.print(body)
end

-- log_by_lua (no cosockets: libcurl, blocking): shared_batch_outcome of ?ids=a,b,c&concurrency=
-- &answer=&after=, kept in the eip_test dict for /t/outcome/<key>.
function M.shared_batch_log(name, key)
  local ids = {}
  for id in (ngx.var.arg_ids or ""):gmatch("[^,]+") do ids[#ids + 1] = id end
  local out = shared_batch_outcome(name, ids, tonumber(ngx.var.arg_concurrency), ngx.var.arg_answer,
    tonumber(ngx.var.arg_after))
  ngx.shared.eip_test:set("outcome:" .. key, cjson.encode(out))
end

-- A light thread deletes with the shared client `name`; 0.2 s later the request ends (504),
-- which kills the thread wherever it is (say, waiting for an IAM token).
function M.shared_abandon(name, id)
  local client = shared_clients[name]
  ngx.thread.spawn(function() return pcall(client.delete_bandwidth, client, id) end)
  ngx.sleep(0.2)
  return ngx.exit(504)
end

function M.dict_set()
  local args = json_body()
  if type(args) ~= "table" or not ngx.shared[args.dict or ""] or not (args.flush or type(args.key) == "string") then
    return reply(400, { error = "POST {dict, key, value} or {dict, flush = true}" })
  end
  if args.flush then -- (every key: as an operator would, once a refused key's cause is fixed)
    ngx.shared[args.dict]:flush_all()
    return reply(200, { ok = true })
  end
  local value = args.value
  if value == cjson.null then value = nil end
  local ok, err = ngx.shared[args.dict]:set(args.key, value)
  return reply(200, { ok = ok, error = err })
end

-- `workers` buckets of one budget in the eip_rate dict (a key of their own), at `rate` (10/s)
-- with `burst`, left idle for a minute, each take a slot; each operation of the real dict is followed
-- by the next bucket's turn (a coroutine each, round and round): workers whose operations
-- interleave. Replies { waits = the waits, sorted }.
function M.pace_idle()
  local pace = require "eip.pace"
  local args = ngx.req.get_uri_args()
  local workers, burst, rate = tonumber(args.workers) or 3, tonumber(args.burst) or 1, tonumber(args.rate) or 10
  local dict, key, now = ngx.shared.eip_rate, "eip:pace:idle-test", 1000
  dict:delete(key .. ":reset")
  dict:set(key, (now - 60) * 1e6)
  local turns = setmetatable({}, { __index = function(_, name)
    return function(_, ...)
      local r = { dict[name](dict, ...) }
      coroutine.yield()
      return r[1], r[2], r[3]
    end
  end })
  local threads, waits = {}, {}
  for i = 1, workers do
    local b = pace.new{ rate = rate, burst = burst, dict = "eip_rate", key = key, clock = function() return now end }
    b.dict = turns
    threads[i] = coroutine.create(function()
      local wait = b:take()
      waits[#waits + 1] = wait
    end)
  end
  local i = 0
  while #threads > 0 do
    i = i % #threads + 1
    local ok, err = coroutine.resume(threads[i])
    if not ok then return reply(500, { error = tostring(err) }) end
    if coroutine.status(threads[i]) == "dead" then
      table.remove(threads, i)
      i = i - 1
    end
  end
  dict:delete(key)
  table.sort(waits)
  return reply(200, { waits = waits })
end

-- A delete_bandwidth of `id`, or a delete_bandwidths of `ids`, with `wait` (and a batch's `rate`),
-- by a client of `options` (closed after): ok, phase, transport, took (seconds), and what each
-- result's wait gave (waited, still_readable, or the error's fields: kind, reason, status,
-- deleted, stage, waited, not_sent, the cause's status), or what was raised that was no eip error.
local function wait_fields(r)
  if not eip.is_error(r) then return { waited = r.waited, still_readable = r.still_readable,
    wait_error = r.wait_error and wait_fields(r.wait_error) } end
  return { kind = r.kind, reason = r.reason, status = r.status, deleted = r.deleted, stage = r.stage,
    waited = r.waited, not_sent = r.not_sent, cause = type(r.cause) == "table" and r.cause.status or nil,
    text = tostring(r) }
end

local function wait_outcome(args)
  local client = eip.new(args.options)
  ngx.update_time()
  local t0 = ngx.now()
  local ok, res, summary
  if args.ids then
    ok, res, summary = pcall(client.delete_bandwidths, client, args.ids, { wait = args.wait, rate = args.rate })
  else
    ok, res = pcall(client.delete_bandwidth, client, args.id, { wait = args.wait })
  end
  ngx.update_time()
  local out = { ok = ok, phase = ngx.get_phase(), transport = client.transport.last, took = ngx.now() - t0 }
  client:close()
  if not ok then
    out.is_error = eip.is_error(res)
    out.error = eip.is_error(res) and wait_fields(res) or { raw = tostring(res) }
  elseif args.ids then
    out.summary, out.results = summary, {}
    for i, r in ipairs(res) do out.results[i] = wait_fields(r) end
  else
    out.result = wait_fields(res)
  end
  return out
end

function M.wait()
  local args = json_body()
  if type(args) ~= "table" or type(args.options) ~= "table" then
    return reply(400, { error = "POST {options, id | ids, wait, rate?, key?}" })
  end
  local where = ngx.var.arg_in
  if where == "log" then
    ngx.ctx.wait_args = args
    return reply(200, { later = true })
  end
  if where ~= "timer" then return reply(200, wait_outcome(args)) end
  local sema = require("ngx.semaphore").new()
  local out
  assert(ngx.timer.at(0, function()
    out = wait_outcome(args)
    sema:post()
  end))
  sema:wait(30)
  return reply(200, out or { error = "the timer did not finish" })
end

-- log_by_lua of /t/wait?in=log: the wait, its outcome kept for /t/outcome/<key>.
function M.wait_log()
  local args = ngx.ctx.wait_args
  if args then ngx.shared.eip_test:set("outcome:" .. args.key, cjson.encode(wait_outcome(args))) end
end

-- The worker's pid and resident set size (VmRSS, kB), from /proc.
function M.rss()
  local f = io.open("/proc/self/status", "r")
  local text = f and f:read("*a") or ""
  if f then f:close() end
  return reply(200, { pid = ngx.worker.pid(), rss_kb = tonumber(text:match("VmRSS:%s*(%d+)")) })
end

local function timed_sleep(seconds)
  ngx.update_time()
  local t0 = ngx.now()
  transport.sleep(seconds)
  ngx.update_time()
  return { phase = ngx.get_phase(), yieldable = transport.yieldable(), slept = ngx.now() - t0 }
end

function M.sleep()
  return reply(200, timed_sleep(tonumber(ngx.var.arg_s) or 0.2))
end

function M.set_sleep()
  return cjson.encode(timed_sleep(tonumber(ngx.var.arg_s) or 0.05))
end

-- POST {ids = {...}, concurrency = n, call_on_result = bool}: a batch with the example's client
-- (with call_on_result, its on_result shows the first id: a call of the client's own, which
-- yields, while the batch's requests are in flight), and how it ran.
function M.batch()
  local args = json_body()
  if type(args) ~= "table" or type(args.ids) ~= "table" then
    return reply(400, { error = "POST {ids = [...], concurrency = n}" })
  end
  local client = require("eip_admin").client
  ngx.update_time()
  local t0 = ngx.now()
  local on_result
  if args.call_on_result then
    on_result = function() pcall(client.show_bandwidth, client, args.ids[1]) end
  end
  local ok, results, summary = pcall(client.delete_bandwidths, client, args.ids,
    { concurrency = args.concurrency, on_result = on_result })
  if not ok then return reply(500, { error = tostring(results) }) end
  ngx.update_time()
  local statuses, attempts = {}, {}
  for i, r in ipairs(results) do statuses[i], attempts[i] = r.status or r.kind, r.attempts end
  -- A Content-Length rather than chunks: the spec reads this answer off a raw socket.
  local body = cjson.encode{ summary = summary, statuses = statuses, attempts = attempts, took = ngx.now() - t0 }
  ngx.header["Content-Type"] = "application/json"
  ngx.header["Content-Length"] = #body
  ngx.print(body)
end

-- POST { endpoint, token, project_id, ids, abort_after, answer?, proxy? }: a batch of a client of
-- its own (through `proxy` when given), whose cancel answers `answer` ("abort" by default, or
-- "stop") once abort_after seconds have passed; its results' kind, cancelled, not_sent,
-- could_have_acted, stopped and attempts, and its summary.
function M.batch_abort()
  local args = json_body()
  local client = eip.new{ endpoint = args.endpoint, token = args.token, project_id = args.project_id,
    max_attempts = 1, timeout = 20, proxy = args.proxy }
  ngx.update_time()
  local deadline, answer = ngx.now() + args.abort_after, args.answer or "abort"
  local results, summary = client:delete_bandwidths(args.ids, { cancel = function()
    ngx.update_time()
    if ngx.now() > deadline then return answer end
  end })
  client:close()
  local out = {}
  for i, r in ipairs(results) do
    out[i] = { kind = r.kind or "ok", cancelled = r.cancelled == true, not_sent = r.not_sent == true,
      could_have_acted = eip.could_have_acted(r), stopped = r.stopped, attempts = r.attempts }
  end
  local body = cjson.encode{ results = out, summary = summary }
  ngx.header["Content-Type"] = "application/json"
  ngx.header["Content-Length"] = #body
  ngx.print(body)
end

-- POST { endpoint, token, project_id, auth, ids, single, first, after }: a delete of `first`
-- where the code can yield; then inside a string.gsub callback (a frame of the content phase that
-- cannot yield), a batch of `ids` and two deletes of `single` by a client with a rate of 1 per
-- second (the second waits for it), with IAM `auth` when given (its login there too); then, out
-- of it, a batch of `after` by the same client (light threads, a semaphore: the wait that crashed
-- the worker after a cosocket had failed in the callback). What each gave: a summary, statuses
-- or error kinds, and whether anything raised a raw Lua error.
function M.unyieldable()
  local args = json_body()
  local out = {}
  -- (a delete where it can yield first: its connection pooled, for the next to find)
  local first = eip.new{ endpoint = args.endpoint, token = args.token, project_id = args.project_id, auth = args.auth }
  out.first = first:delete_bandwidth(args.first).status
  local client = eip.new{ endpoint = args.endpoint, token = args.token, project_id = args.project_id,
    auth = args.auth, max_attempts = 1, timeout = 5, rate = 1, burst = 1 }
  local function run()
    local ok, results, summary = pcall(client.delete_bandwidths, client, args.ids)
    out.batch = ok and { deleted = summary.deleted, failed = summary.failed } or { raised = tostring(results) }
    out.singles = {}
    for i = 1, 2 do
      local fine, res = pcall(client.delete_bandwidth, client, args.single, { missing_ok = true })
      out.singles[i] = fine and res.status or (eip.is_error(res) and res.kind or { raised = tostring(res) })
    end
    return ""
  end
  local _ = ("x"):gsub("x", run)
  if args.after then
    local ok, results, summary = pcall(client.delete_bandwidths, client, args.after)
    out.after = ok and { deleted = summary.deleted, failed = summary.failed } or { raised = tostring(results) }
  end
  client:close()
  local body = cjson.encode(out)
  ngx.header["Content-Type"] = "application/json"
  ngx.header["Content-Length"] = #body
  ngx.print(body)
end

-- One delete of `id` by a client given the cosocket transport itself (as the README says for
-- ssl_client_hello), where nginx forbids cosockets or nothing can yield: the error's kind,
-- reason, message and could_have_acted (or what was raised). `endpoint`: the app's unless given.
local function explicit_cosocket_outcome(id, endpoint)
  local client = eip.new{ endpoint = endpoint or os.getenv("EIP_ENDPOINT"), token = os.getenv("EIP_TOKEN"),
    project_id = os.getenv("EIP_PROJECT_ID"), transport = require("eip.transport.cosocket").new(),
    max_attempts = 1, timeout = 2 }
  local ok, res = pcall(client.delete_bandwidth, client, id)
  if ok then return { ok = true, status = res.status } end
  if not eip.is_error(res) then return { ok = false, raised = tostring(res) } end
  return { ok = false, kind = res.kind, reason = res.reason, message = res.message,
    could_have_acted = eip.could_have_acted(res) }
end

-- /t/explicit_cosocket/<id>: set_by_lua (its outcome, $eip_outcome, as JSON).
function M.explicit_cosocket_set(id)
  return cjson.encode(explicit_cosocket_outcome(id))
end

-- The content phase: the set phase's outcome, then a delete inside a string.gsub callback, sent
-- to ?silent=<port> (no connection of its pooled: its connect cannot wait), then a call that can
-- yield (its connection to the app's endpoint pooled), then a delete in a callback (the pooled
-- connection: the request goes out, its answer cannot be waited for), then a wait (the worker
-- lives on).
function M.explicit_cosocket(id, set_outcome)
  local out = { set = cjson.decode(set_outcome) }
  local silent = "http://127.0.0.1:" .. ngx.var.arg_silent
  local _ = ("x"):gsub("x", function() out.gsub = explicit_cosocket_outcome(id, silent) return "" end)
  local client = eip.new{ endpoint = os.getenv("EIP_ENDPOINT"), token = os.getenv("EIP_TOKEN"),
    project_id = os.getenv("EIP_PROJECT_ID"), transport = require("eip.transport.cosocket").new() }
  out.show = client:list_bandwidths{ limit = 1 } and "listed"
  _ = ("x"):gsub("x", function() out.gsub_sent = explicit_cosocket_outcome(id) return "" end)
  ngx.sleep(0.001)
  return reply(200, out)
end

-- log_by_lua: the outcome kept for /t/outcome/<id>.
function M.explicit_cosocket_log(id)
  ngx.shared.eip_test:set("outcome:" .. id, cjson.encode(explicit_cosocket_outcome(id)))
end

-- What a call or a batch entry gave, for /t/raising_send: ok, or the error's kind, reason and
-- message, and what was raised when it was no eip error (raw: its type and text).
local function entry(ok, res)
  if ok then return { ok = true, status = res.status } end
  if not eip.is_error(res) then return { ok = false, raw = type(res), text = tostring(res) } end
  return { ok = false, is_error = true, kind = res.kind, reason = res.reason, message = res.message,
    text = tostring(res), could_have_acted = eip.could_have_acted(res) }
end

-- POST { endpoint, token, project_id, raise_for, singles = {ids}, ids, wrap }: a client whose
-- transport's send raises "send broke near <token>" for the request of `raise_for` and sends
-- every other: with wrap = "caller", a transport of the caller's (a table delegating to
-- eip.transport.cosocket; a batch sends one request at a time through it), with wrap = "auto",
-- the client's own automatic transport, its send replaced (a batch's light threads call it).
-- One delete_bandwidth of each single id, then a delete_bandwidths of `ids` (concurrency 4):
-- what each gave (see entry), and the batch's summary.
function M.raising_send()
  local args = json_body()
  local function raising(send)
    return function(self, req)
      if req.url:find(args.raise_for, 1, true) then error("send broke near " .. args.token, 0) end
      return send(self, req)
    end
  end
  local options = { endpoint = args.endpoint, token = args.token, project_id = args.project_id,
    max_attempts = 3, timeout = 5 }
  if args.wrap == "caller" then
    local inner = require("eip.transport.cosocket").new()
    options.transport = { send = raising(function(_, req) return inner:send(req) end),
      close = function() inner:close() end }
  end
  local client = eip.new(options)
  if args.wrap == "auto" then client.transport.send = raising(client.transport.send) end
  local out = { singles = {}, batch = {} }
  for i, id in ipairs(args.singles) do out.singles[i] = entry(pcall(client.delete_bandwidth, client, id)) end
  local ok, results, summary = pcall(client.delete_bandwidths, client, args.ids, { concurrency = 4 })
  if ok then
    out.summary = summary
    for i, r in ipairs(results) do out.batch[i] = entry(type(r) == "table" and not eip.is_error(r), r) end
  else
    out.batch_raised = entry(false, results)
  end
  client:close()
  return reply(200, out)
end

-- POST { endpoint, project_id, ak, sk, deadline, timeout, batches = { {ids}, ... }, singles = {ids},
-- single_after }: one AK/SK client (timeout 10 unless given), and at once, each in a light thread
-- of its own, a delete_bandwidths of each list (concurrency 8) and a delete_bandwidth of each
-- single id (after single_after seconds, if given). Answers the summaries and the singles'
-- statuses (or error kinds, whether they were sent, and when they ended).
function M.signed_load()
  local args = json_body()
  local client = eip.new{ endpoint = args.endpoint, project_id = args.project_id, ak = args.ak, sk = args.sk,
    max_attempts = 1, timeout = args.timeout or 10, deadline = args.deadline }
  local t0 = ngx.now()
  local threads, out = {}, { summaries = {}, singles = {} }
  for i, ids in ipairs(args.batches or {}) do
    threads[#threads + 1] = ngx.thread.spawn(function()
      local _, summary = client:delete_bandwidths(ids, { concurrency = 8 })
      out.summaries[i] = summary
    end)
  end
  for i, id in ipairs(args.singles) do
    threads[#threads + 1] = ngx.thread.spawn(function()
      if args.single_after then ngx.sleep(args.single_after) end
      local ok, res = pcall(client.delete_bandwidth, client, id)
      ngx.update_time()
      out.singles[i] = ok and res.status or { kind = res.kind, status = res.status, not_sent = res.not_sent,
        reason = res.reason, message = res.message, ended = ngx.now() - t0 }
    end)
  end
  for _, t in ipairs(threads) do ngx.thread.wait(t) end
  -- A Content-Length rather than chunks: the spec reads this answer off a raw socket.
  local body = cjson.encode(out)
  ngx.header["Content-Type"] = "application/json"
  ngx.header["Content-Length"] = #body
  ngx.print(body)
end

-- POST { rate, ids = { {...}, {...} } } starts a job; GET ?generation=N answers the summaries
-- stored so far ({ [worker] = summary }).
function M.shared_rate()
  local dict = ngx.shared.eip_test
  if ngx.req.get_method() == "POST" then
    local job = json_body("{}")
    local settings = job.aksk or job.iam or {}
    if settings.signing_dict and not settings.keep_dict then ngx.shared[settings.signing_dict]:flush_all() end
    job.generation = (dict:incr("generation", 1, 0))
    dict:set("job", cjson.encode(job))
    return reply(200, { generation = job.generation })
  end
  local generation = tonumber(ngx.var.arg_generation)
  local out = {}
  for worker = 0, ngx.worker.count() - 1 do
    local r = dict:get("result:" .. generation .. ":" .. worker)
    if r then out[tostring(worker)] = cjson.decode(r) end
  end
  return reply(200, out)
end

return M
