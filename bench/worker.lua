--- One benchmark measurement, in its own process (so peak RSS is its own): bench/run.lua starts
-- one per row and repetition.
--
--   lua5.4 bench/worker.lua MODE ENDPOINT N [CONCURRENCY]
--     seq      client:delete_bandwidth N times (token auth)
--     seq-aksk the same, every request signed with AK/SK
--     batch    client:delete_bandwidths over N ids, CHUNK ids per call, at CONCURRENCY
--     socket   LuaSocket's socket.http, one DELETE per request (it sends Connection: close)
--     luasec   LuaSec's ssl.https, one DELETE per request, each on a new connection and so with
--              a TLS handshake of its own (https ENDPOINT; the chain is verified against
--              BENCH_CA_FILE: LuaSec 1.2 checks no host name)
--     soak     batch, reporting the resident set after the first tenth and at the end (the
--              sequential path has its own soak: `make soak`, bench/soak.lua)
--
-- With "-" for N, seq and seq-aksk run in slices, as build/bench/floor does: each line of
-- standard input is a count K; the one client sends the next K deletes (going on round the same
-- ids), prints the line below for them and flushes; the end of the input ends it.
--
-- An https ENDPOINT is verified against BENCH_CA_FILE (the client's `ca_file`; never `insecure`).
--
-- Prints one line: requests=N seconds=S cpu=S rss_kib=K failed=F [rss_warm_kib=K rss_end_kib=K]
-- (seconds: wall time of the loop; cpu: os.clock() of the loop; rss_kib: VmHWM, the peak).
local core = require "eip.core"
-- Loaded before the clock starts, like the modules of every mode below (the floor's libcurl is
-- loaded before its clock too): loading lua-eip takes milliseconds, which are no request's.
local eip = require "eip"

local PROJECT = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
local TOKEN = "bench-token-0123456789abcdef" -- the fast server does not check it
local CHUNK = tonumber(os.getenv("BENCH_CHUNK")) or 1000
local POOL_SIZE = 1000 -- the sequential rows' distinct ids (pooled_ids)
local CA_FILE = os.getenv("BENCH_CA_FILE")
if CA_FILE == "" then CA_FILE = nil end

local mode, endpoint, n, concurrency = arg[1], arg[2], tonumber(arg[3]), tonumber(arg[4])
local slices = arg[3] == "-" and (mode == "seq" or mode == "seq-aksk")
if slices then n = POOL_SIZE end
if not (mode and endpoint and n) then
  io.stderr:write("usage: worker.lua seq|seq-aksk|batch|socket|luasec|soak ENDPOINT N [CONCURRENCY]\n")
  os.exit(2)
end

local function status_kib(field)
  local f = assert(io.open("/proc/self/status"))
  local text = f:read("*a")
  f:close()
  return tonumber(text:match(field .. ":%s*(%d+) kB"))
end

-- Ids made before the clock starts, so the loops measure requests, not string building.
local function make_ids(count, first)
  local ids = {}
  for i = 1, count do ids[i] = "bw-" .. (first or 1) + i - 1 end
  return ids
end

-- The sequential rows' ids: `count` of them, going round POOL distinct ones (the server answers
-- 204 to any), so that the strings are made the same way whatever the count. `make
-- bench-profile` counts a request as the difference of a run of 3N requests and one of N: ids
-- made per request (a number formatted, a string hashed, about 2k instructions) were counted as
-- the client's, where the floor formats its URL into a stack buffer.
local function pooled_ids(count)
  local pool, ids = make_ids(POOL_SIZE), {}
  for i = 1, count do ids[i] = pool[(i - 1) % POOL_SIZE + 1] end
  return ids
end

local function client(signed)
  if signed then -- the fast server does not verify signatures: this measures the client's cost
    return eip.new{ endpoint = endpoint, project_id = PROJECT, max_attempts = 1, ca_file = CA_FILE,
      ak = "AKBENCH000000000000", sk = "SKBENCHsecretsecretSKBENCHsecretsecret00" }
  end
  return eip.new{ endpoint = endpoint, project_id = PROJECT, token = TOKEN, max_attempts = 1,
    ca_file = CA_FILE }
end

local function deletes(c, ids)
  local failed = 0
  for i = 1, #ids do
    if c:delete_bandwidth(ids[i]).status ~= 204 then failed = failed + 1 end
  end
  return failed
end

local function seq(ids, signed)
  local c = client(signed)
  local failed = deletes(c, ids)
  c:close()
  return failed
end

local function result_line(count, seconds, cpu, failed)
  return string.format("requests=%d seconds=%.6f cpu=%.6f rss_kib=%d failed=%d", count, seconds, cpu,
    status_kib("VmHWM"), failed)
end

-- In slices (N "-"): one client for every slice, its ids going on round the pool.
local function seq_slices(signed)
  local c, pool, next = client(signed), make_ids(POOL_SIZE), 0
  for line in io.lines() do
    local count = math.tointeger(tonumber(line))
    if not count or count <= 0 then break end
    local ids = {}
    for i = 1, count do ids[i] = pool[(next + i - 1) % POOL_SIZE + 1] end
    next = (next + count) % POOL_SIZE
    local t0, c0 = core.monotime(), os.clock()
    local failed = deletes(c, ids)
    io.stdout:write(result_line(count, core.monotime() - t0, os.clock() - c0, failed), "\n")
    io.stdout:flush()
  end
  c:close()
end

-- VmRSS after a full collection: uncollected Lua garbage is not growth.
local function rss_now()
  collectgarbage()
  return status_kib("VmRSS")
end

-- ids: the list, or (soak) nothing: each chunk's ids are then made when it is sent, so that
-- a 100,000-id list held all along does not inflate the heap the GC works with (with its
-- default pause the heap's high-water mark, which RSS keeps, scales with the live data).
local function batch(ids, marks)
  local c, failed = client(), 0
  local count = ids and #ids or n
  local warm_at = math.max(1, math.floor(count / 10))
  for from = 1, count, CHUNK do
    local last = math.min(from + CHUNK - 1, count)
    local chunk = ids and table.move(ids, from, last, 1, {}) or make_ids(last - from + 1, from)
    local _, summary = c:delete_bandwidths(chunk, { concurrency = concurrency or 8 })
    failed = failed + summary.failed
    if marks and not marks.warm and last >= warm_at then marks.warm = rss_now() end
  end
  if marks then marks.finish = rss_now() end
  c:close()
  return failed
end

-- One DELETE per request through LuaSocket's request function `http_request` (socket.http's,
-- or ssl.https's with `extra` fields), each on a new connection (both send Connection: close).
local function one_per_request(ids, http_request, extra)
  local ltn12 = require "ltn12"
  local failed = 0
  local base = endpoint .. "/v2.0/" .. PROJECT .. "/bandwidths/"
  local headers = { ["Content-Type"] = "application/json", ["Accept"] = "application/json",
    ["X-Auth-Token"] = TOKEN }
  for i = 1, #ids do
    local req = { url = base .. ids[i], method = "DELETE", headers = headers, sink = ltn12.sink.null() }
    for k, v in pairs(extra or {}) do req[k] = v end
    local ok, status = http_request(req)
    if not ok or status ~= 204 then failed = failed + 1 end
  end
  return failed
end

local function luasocket(ids)
  return one_per_request(ids, require("socket.http").request)
end

-- What a Lua script would write without lua-eip over https: LuaSec's ssl.https.request, the
-- server's chain verified against the CA (verify = "peer"). It opens a connection, and so makes
-- a full TLS handshake, per request (no keep-alive, no session resumption).
local function luasec(ids)
  return one_per_request(ids, require("ssl.https").request, { verify = "peer", cafile = CA_FILE })
end

if slices then
  seq_slices(mode == "seq-aksk")
  os.exit(0)
end
local marks = mode == "soak" and {} or nil
local ids = not marks and (mode:find("^seq") and pooled_ids or make_ids)(n) or nil
local runs = { seq = seq, soak = batch, batch = batch, socket = luasocket, luasec = luasec,
  ["seq-aksk"] = function(list) return seq(list, true) end }
local run = runs[mode] or error("unknown mode " .. mode)
local modules = { socket = { "socket.http", "ltn12" }, luasec = { "ssl.https", "ltn12" } }
for _, name in ipairs(modules[mode] or {}) do require(name) end
local t0, c0 = core.monotime(), os.clock()
local failed = run(ids, marks)
local seconds, cpu = core.monotime() - t0, os.clock() - c0
local line = result_line(n, seconds, cpu, failed)
if marks then line = line .. string.format(" rss_warm_kib=%d rss_end_kib=%d", marks.warm, marks.finish) end
print(line)
