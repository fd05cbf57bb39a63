-- Small helpers shared by the emulator's handlers (runs inside nginx/LuaJIT).
local json = require "eip.emulator.server.json"

local M = {}

M.JSON_TYPE = "application/json;charset=UTF-8"

-- Seed math.random from the kernel: request ids and UUIDs must differ between instances that
-- start in the same second, which a time-based seed would not guarantee.
function M.seed_random()
  local seed = math.floor(ngx.now() * 1000) + ngx.worker.pid()
  local f = io.open("/dev/urandom", "rb")
  if f then
    local bytes = f:read(4) or ""
    f:close()
    for i = 1, #bytes do
      seed = seed * 256 + bytes:byte(i)
    end
  end
  math.randomseed(seed % 2 ^ 31)
end

function M.random_hex(nbytes)
  local out = {}
  for i = 1, nbytes do
    out[i] = string.format("%02x", math.random(0, 255))
  end
  return table.concat(out)
end

-- A random (version 4) UUID, the shape of real bandwidth and EIP ids.
function M.uuid()
  local h = M.random_hex(16)
  local variant = ("89ab"):sub(math.random(1, 4)):sub(1, 1)
  return table.concat({
    h:sub(1, 8), h:sub(9, 12), "4" .. h:sub(14, 16), variant .. h:sub(18, 20), h:sub(21, 32),
  }, "-")
end

-- UTC time in the documented shape (yyyy-MM-ddTHH:mm:ss, with the Z the examples carry).
function M.now_iso()
  return os.date("!%Y-%m-%dT%H:%M:%SZ", ngx.time())
end

-- Read the whole request body, whether nginx kept it in memory or spilled it to a file.
function M.read_body()
  ngx.req.read_body()
  local body = ngx.req.get_body_data()
  if body then
    return body
  end
  local path = ngx.req.get_body_file()
  if not path then
    return ""
  end
  local f = io.open(path, "rb")
  if not f then
    return ""
  end
  body = f:read("*a") or ""
  f:close()
  return body
end

-- Instead of the answer (the "garble_answer" injection, after the request was carried out): a
-- head no HTTP client can read (a header line without a colon), then the connection closed.
local function garbled()
  local sock = ngx.req.socket(true)
  if sock then sock:send("HTTP/1.1 200 OK\r\nthis line has no colon\r\n\r\n") end
  return ngx.exit(444)
end

-- The lose_answer and garble_answer injections (see eip.emulator.server.app): true when one
-- took the place of the answer about to be sent.
local function answer_replaced()
  if ngx.ctx.lose_answer then
    ngx.exit(444)
    return true
  end
  if ngx.ctx.garble_answer then
    garbled()
    return true
  end
  return false
end

-- Send a JSON answer with an explicit Content-Length (as the real gateway does).
function M.send_json(status, value)
  if answer_replaced() then return end
  local body = json.encode(value)
  ngx.status = status
  ngx.header["Content-Type"] = M.JSON_TYPE
  ngx.header["Content-Length"] = #body
  ngx.print(body)
end

-- Send a plain-text answer with an explicit Content-Length (the metadata service's shape).
function M.send_text(status, text)
  if answer_replaced() then return end
  ngx.status = status
  ngx.header["Content-Type"] = "text/plain"
  ngx.header["Content-Length"] = #text
  ngx.print(text)
end

-- Send a bodiless answer (204; RFC 9110 forbids a Content-Length on it).
function M.send_empty(status)
  if answer_replaced() then return end
  ngx.status = status
  ngx.send_headers()
end

-- EIP/VPC error shape: {"code":"VPC.0306","message":"..."}.
function M.vpc_error(status, code, message)
  M.send_json(status, { code = code, message = message })
end

-- API-gateway error shape, used before a request reaches EIP (auth, routing).
function M.gateway_error(status, code, message)
  M.send_json(status, {
    error_code = code,
    error_msg = message,
    request_id = ngx.ctx.request_id,
  })
end

function M.is_integer(v)
  return type(v) == "number" and v == math.floor(v) and v > -2 ^ 53 and v < 2 ^ 53
end

return M
