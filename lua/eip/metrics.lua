--- Metrics for dashboards: counters per operation and outcome, and a latency histogram per operation, kept
-- from the client's `on_response` hook and rendered in the Prometheus text format.
--
--   local metrics = eip.metrics()                       -- in this Lua state
--   local metrics = eip.metrics{ dict = "eip_metrics" } -- inside nginx: in a lua_shared_dict,
--                                                       -- so every worker counts together
--   local client = eip.new{ ..., on_response = metrics.on_response }
--   ngx.print(metrics:render())                         -- text/plain; version=0.0.4
--
-- Series (label values come from the library, never from a caller's input beyond the
-- operation's name, so the number of series stays small):
--   eip_requests_total{operation, outcome, status}   every attempt; outcome "ok", "http", the
--                                                     transport kind ("timeout", "reset", ...),
--                                                     "proxy" or "interrupted" (a batch aborted,
--                                                     or its caller went away: `abandoned`)
--   eip_retries_total{operation}                     attempts that were retries (the second and
--                                                     later: one planned and never sent is none)
--   eip_resends_total{operation}                     attempts sent twice on the wire (a kept-alive
--                                                     connection died unanswered: sent again)
--   eip_request_duration_seconds{operation}          histogram of the attempts' durations
-- @module eip.metrics
local errors = require "eip.errors"
local validate = require "eip.validate"

local M = {}

local raise = errors.raise_usage

--- Upper bounds of the latency histogram, in seconds.
M.BUCKETS = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 }
-- Each bucket's bound by its label (tonumber("0.005") is nil on Lua 5.1 under a locale whose
-- decimal point is a comma, which a script may set: os.setlocale).
local LE = {}
for _, b in ipairs(M.BUCKETS) do LE[validate.number_text(b)] = b end

local Metrics = {}
Metrics.__index = Metrics

-- A local store with the interface of the shared dict that is used: incr(key, by, init), get_keys.
local function local_store()
  local values = {}
  return {
    incr = function(_, key, by, init)
      values[key] = (values[key] or init or 0) + by
      return values[key]
    end,
    get = function(_, key) return values[key] end,
    get_keys = function()
      local keys = {}
      for k in pairs(values) do keys[#keys + 1] = k end
      return keys
    end,
  }
end

--- A metrics set (eip.metrics). opts.dict: the name of a lua_shared_dict (inside nginx) to keep
-- the values in.
-- @tparam[opt] table opts `{ dict = name }`, or nil
-- @tparam[opt] string opts.dict the lua_shared_dict (default: a table of this Lua state)
-- @treturn table the set: `on_response` (a plain function(info), for eip.new's option),
--   @{Metrics:observe} and @{Metrics:render}
-- @raise a `usage` error naming `options` (not a table, an unknown option) or `dict` (not a
--   non-empty string, or no lua_shared_dict of that name; outside nginx, any)
function M.new(opts)
  if opts == nil then opts = {} end
  -- Checked as every entry point checks its options (a typo such as `dikt` fails loudly), by hand
  -- (one option: `dict`); an unknown key named as validate.options names it.
  if type(opts) ~= "table" then raise("options", "must be a table or nil, got a %s", type(opts)) end
  -- Walked, then its one option read, protected: a metamethod that raises is a usage error (each
  -- key checked as it comes: a __pairs that never ends ends at its first unknown key).
  validate.entries("options", opts, function(k)
    if k ~= "dict" then
      raise("options", "has an unknown option %s (known: dict)",
        type(k) ~= "string" and "key of type " .. type(k) or validate.key_name(k, 40))
    end
  end)
  local read, dict = pcall(function() return opts.dict end)
  if not read then raise("options", "cannot be read: a metamethod of it raised an error") end
  opts = { dict = dict }
  local store
  if opts.dict ~= nil then
    if type(opts.dict) ~= "string" or opts.dict == "" then
      raise("dict", "must be the name of a lua_shared_dict (a non-empty string), got %s",
        opts.dict == "" and "an empty string" or "a " .. type(opts.dict))
    end
    local ngx = rawget(_G, "ngx")
    store = ngx and ngx.shared and ngx.shared[opts.dict]
    if not store then
      raise("dict", "names no lua_shared_dict of this nginx, got %s", validate.describe(opts.dict))
    end
  else
    store = local_store()
  end
  local self = setmetatable({ store = store }, Metrics)
  -- A plain function, so that it can be passed as the client's on_response as it is.
  self.on_response = function(info) self:observe(info) end
  return self
end

-- Keys are the series' names with their labels, as rendered ("\0"-free, label values quoted).
local function series(name, labels)
  local parts = {}
  for i = 1, #labels, 2 do
    -- (a number as "0.005" whatever locale a script set: not tostring's "0,005" under a German one)
    local v = labels[i + 1]
    if type(v) == "number" then v = validate.number_text(v) end
    parts[#parts + 1] = labels[i] .. '="' .. tostring(v):gsub('[\\"\n]', "_") .. '"'
  end
  return name .. "{" .. table.concat(parts, ",") .. "}"
end

-- A method called with a dot (metrics.render()): a usage error naming it, not an index of nil.
local function check_self(self, method)
  if getmetatable(self) ~= Metrics then
    errors.raise_usage(method, "is a method: call it with a colon (metrics:%s(...))", method)
  end
end

-- A label's value: a string or a number (tostring runs no metamethod of theirs), else `default`
-- (a table's address would be a new series each time, and its __tostring may raise).
local function label(v, default)
  -- (a whole number sent as a float, a caller's transport's 204.0, is the series of 204)
  if type(v) == "number" then return validate.number_text(v) end
  if type(v) == "string" then return v end
  return default
end

-- The fields of an info observe reads, each read once: a plain copy, or nil when a metamethod of
-- it raised (an info it cannot read is ignored, as anything but a table is).
local FIELDS = { "not_sent", "operation", "outcome", "status", "attempt", "resent", "elapsed" }
local function fields_of(info)
  local ok, f = pcall(function()
    local c = {}
    for _, k in ipairs(FIELDS) do c[k] = info[k] end
    return c
  end)
  return ok and f or nil
end

--- Counts one attempt (an `on_response` info); one that was never sent (`not_sent`: a batch
-- dropped it first) is no attempt sent to the API, and is not counted. Returns nothing.
-- @tparam table info what the client's `on_response` is given (anything else is ignored, and so
--   is a table whose metamethods raise; a label value neither a string nor a number is "unknown",
--   a status "none")
-- @raise a `usage` @{eip.error} when called with a dot
function Metrics:observe(info)
  check_self(self, "observe")
  if type(info) ~= "table" then return end
  -- (the client's own info is a plain table: only one with a metatable is read protected)
  if getmetatable(info) ~= nil then info = fields_of(info) end
  if not info or info.not_sent then return end
  local store, op = self.store, label(info.operation, "unknown")
  store:incr(series("eip_requests_total", { "operation", op, "outcome", label(info.outcome, "unknown"),
    "status", label(info.status, "none") }), 1, 0)
  if (tonumber(info.attempt) or 1) > 1 then store:incr(series("eip_retries_total", { "operation", op }), 1, 0) end
  if info.resent then store:incr(series("eip_resends_total", { "operation", op }), 1, 0) end
  local seconds = tonumber(info.elapsed)
  -- (a duration that is no finite number of seconds, from a transport of the caller's, is not one
  -- the histogram can hold: its sum would stay NaN or inf, and fail every render)
  if seconds and seconds >= 0 and seconds < math.huge then
    -- Every bucket, those it does not fall in by 0: each is there from the first observation (one
    -- that appeared later would be a new series, its first count lost to rate(), and
    -- histogram_quantile reads the buckets missing below a count as [0, le]). The count first,
    -- then the buckets from +Inf down, as render reads them the other way round: a render in
    -- another worker meanwhile still sees each bucket at most the next one (its count: the +Inf read).
    store:incr(series("eip_request_duration_seconds_count", { "operation", op }), 1, 0)
    store:incr(series("eip_request_duration_seconds_bucket", { "operation", op, "le", "+Inf" }), 1, 0)
    local buckets = M.BUCKETS
    for i = #buckets, 1, -1 do
      local le = buckets[i]
      store:incr(series("eip_request_duration_seconds_bucket", { "operation", op, "le", le }),
        seconds <= le and 1 or 0, 0)
    end
    -- Sums in microseconds: shared dicts add numbers, and whole ones stay exact.
    store:incr(series("eip_request_duration_seconds_sum_us", { "operation", op }), math.floor(seconds * 1e6), 0)
  end
end

local HELP = {
  eip_requests_total = "counter|Attempts sent to the API, by operation, outcome and status.",
  eip_retries_total = "counter|Attempts that were retries of an earlier one.",
  eip_resends_total = "counter|Attempts sent again on a new connection after a kept-alive one died unanswered.",
  eip_request_duration_seconds = "histogram|Duration of one attempt.",
}

-- Sort key of a series: its family, the series name, its labels without `le`, then `le` as a
-- number (+Inf last): histogram buckets must come in increasing order.
local function order(a, b)
  if a.family ~= b.family then return a.family < b.family end
  if a.base ~= b.base then return a.base < b.base end
  return a.le < b.le
end

--- The Prometheus text format (version 0.0.4) of every series.
-- @treturn string the exposition, one sample per line
-- @raise a `usage` @{eip.error} when called with a dot
function Metrics:render()
  check_self(self, "render")
  local store = self.store
  local samples = {}
  for _, key in ipairs(store:get_keys(0)) do
    local family = key:match("^(eip_[%w_]-)_bucket{") or key:match("^(eip_[%w_]-)_count{")
      or key:match("^(eip_[%w_]-)_sum_us{") or key:match("^(eip_[%w_]+){")
    if family and HELP[family] then
      local le = key:match('le="([^"]+)"')
      samples[#samples + 1] = { family = family, key = key, base = key:gsub(',?le="[^"]*"', ""),
        le = le == "+Inf" and math.huge or LE[le] or tonumber(le) or 0 }
    end
  end
  table.sort(samples, order)
  -- Read in that order (a histogram's buckets from the lowest, then its count), the reverse of
  -- observe's: other workers count meanwhile, and the buckets read stay cumulative.
  local inf = {} -- the +Inf buckets read, by their series without `le`
  for _, sample in ipairs(samples) do
    local key = sample.key
    local value, name = store:get(key) or 0, key
    if key:find("_sum_us{", 1, true) then
      name, value = key:gsub("_sum_us{", "_sum{"), value / 1e6
    elseif sample.le == math.huge then
      inf[sample.base] = value
    elseif key:find("_count{", 1, true) then
      -- The +Inf bucket's, read before it (the text format wants the two equal, and every observe
      -- adds to both): read later, the count may hold another worker's observe the buckets missed.
      value = inf[(key:gsub("_count{", "_bucket{", 1))] or value
    end
    sample.name, sample.value = name, value
  end
  local out, last = {}, nil
  for _, sample in ipairs(samples) do
    if sample.family ~= last then
      last = sample.family
      local kind, help = HELP[last]:match("^(%w+)|(.*)$")
      out[#out + 1] = "# HELP " .. last .. " " .. help
      out[#out + 1] = "# TYPE " .. last .. " " .. kind
    end
    local v = sample.value
    -- (whole numbers as integers, while exact: "%d" refuses a float beyond them on Lua 5.3+)
    local whole = v == math.floor(v) and v > -2 ^ 53 and v < 2 ^ 53
    out[#out + 1] = sample.name .. " " .. (whole and string.format("%d", v) or validate.fixed(v, 6))
  end
  return table.concat(out, "\n") .. "\n"
end

return M
