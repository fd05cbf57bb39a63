--- Debug logging of requests and responses (`debug = true` or `log = function(line) end`).
-- Credentials never reach a log line: the headers that carry them are redacted by name,
-- request bodies of credential exchanges are not shown, and every other text is scrubbed
-- of the client's secret values.
local errors = require "eip.errors"
local cut_text = require("eip.body").cut
local blank_controls = require("eip.core").blank_controls

local M = {}

M.REDACTED_HEADERS = {
  ["authorization"] = true, ["x-auth-token"] = true, ["x-security-token"] = true,
  ["x-subject-token"] = true, ["x-metadata-token"] = true, ["proxy-authorization"] = true,
}

local MAX_BODY_SHOWN = 2048

--- Returns the log function for these options, or nil when logging is off.
function M.sink(debug, fn)
  if fn ~= nil and type(fn) ~= "function" then
    errors.raise_usage("log", "must be a function(line), got %s", type(fn))
  end
  if debug ~= nil and type(debug) ~= "boolean" then
    errors.raise_usage("debug", "must be true or false, got %s", type(debug))
  end
  if fn then
    -- The caller's logger is told what happens; what it raises (a full disk, a closed file) is
    -- not the call's failure: a delete that went through must not read as one that failed. But
    -- the interpreter's Ctrl-C raised in it is raised on (errors.interpreter_interrupt).
    return function(line)
      local ok, e = pcall(fn, line)
      if not ok and errors.interpreter_interrupt(e) then error(e, 0) end
    end
  end
  if debug then
    return function(line) io.stderr:write(line .. "\n") end
  end
  return nil
end

local function redact_line(line)
  local name = line:match("^([^:]+):")
  if name and M.REDACTED_HEADERS[name:lower()] then
    if name:lower() == "authorization" then
      -- The algorithm, AK and signed header names help debugging and are not secret; the
      -- signature is useless without the request, but is hidden all the same.
      local keep = line:match("^(Authorization: SDK%-HMAC%-SHA256 Access=[^,]*, SignedHeaders=[^,]*), ")
      if keep then return keep .. ", Signature=<redacted>" end
    end
    return name .. ": <redacted>"
  end
  return line
end

local function shown(s, clean, cut)
  -- Cut before cleaning (clean looks at all it is given), and clean what is shown, with the mark
  -- of the cut, before the size is added: a secret cut by the cut ends the text, where clean
  -- finds it, even its first few bytes. So does a body `cut` short already (at max_body).
  if #s > MAX_BODY_SHOWN then
    -- (between UTF-8 characters: a body that was UTF-8 stays so, for a sink that writes JSON)
    s = clean(cut_text(s, MAX_BODY_SHOWN) .. "...") .. string.format(" (%d bytes)", #s)
  elseif cut then
    s = clean(s .. "...")
  else
    s = clean(s)
  end
  return (blank_controls(s)) -- (C1 controls too)
end

--- Writes a request to `out` (one call per line), credentials redacted, other text passed
-- through `clean` (which scrubs secret values): the URL too, whose query may carry what a server
-- sent (a listing's marker is the last id of the page before).
function M.request(out, req, clean)
  out(string.format("eip: > %s %s", req.method, clean(req.url)))
  local proxy = req.proxy
  if proxy then
    out(string.format("eip: > via proxy %s (%s)", proxy.name, req.url:find("^[hH][tT][tT][pP][sS]:")
      and "CONNECT tunnel: the proxy sees the CONNECT line only" or "plain http: the proxy sees the whole request"))
  end
  -- Credential headers redacted by name, and every other value cleaned too (a secret where an
  -- id goes would show in X-Project-Id).
  for _, line in ipairs(req.headers) do out("eip: > " .. clean(redact_line(line))) end
  if req.body and req.body ~= "" then
    if req.no_auth then
      out(string.format("eip: > body: <%d bytes, redacted: credentials>", #req.body))
    else
      out("eip: > body: " .. shown(req.body, clean))
    end
  end
end

--- Warns when `req`, sent through a proxy to a plain http:// URL, carries credentials (an
-- X-Auth-Token or a signature, a password in its body) or asks for some (the answer holds
-- them): the proxy can read them. Returns true when it warned (the pipeline warns once per
-- client).
function M.clear_through_proxy(out, req)
  if not req.proxy or req.url:find("^[hH][tT][tT][pP][sS]:") then return false end
  if req.no_auth and not req.body and not req.secret_answer then return false end
  out(string.format("eip: warning: credentials go in clear text to %s through the proxy %s, "
    .. "which can read them: use an https:// endpoint (this warning is shown once)",
    req.url:match("^%a+://[^/?#]*"), req.proxy.name))
  return true
end

--- Writes a response (status, time, request id, headers, body) to `out`, redacted; with
-- `secret_body`, the body's size only (it holds credentials).
function M.response(out, resp, clean, secret_body)
  -- (a request the transport sent again: its one "> " line went out twice, the first may have acted)
  local resent = resp.resent and ", sent again on a new connection: the kept-alive one died unanswered" or ""
  if resp.curl_code then
    local what = resp.proxy_status and ("the proxy answered " .. resp.proxy_status) or "transport error"
    out(string.format("eip: < %s (curl %d): %s%s", what, resp.curl_code, resp.curl_error or "", resent))
    return
  end
  out(string.format("eip: < %d (%.1f ms, request-id %s)%s", resp.status, (resp.elapsed or 0) * 1000,
    resp.request_id or "-", resent))
  for _, k in ipairs{ "content_type", "retry_after", "location" } do
    if resp[k] then out(string.format("eip: < %s: %s", k:gsub("_", "-"), shown(resp[k], clean))) end
  end
  if resp.subject_token then out("eip: < x-subject-token: <redacted>") end
  if resp.body and resp.body ~= "" then
    if secret_body then
      out(string.format("eip: < body: <%d bytes, redacted: credentials>", #resp.body))
      return
    end
    out("eip: < body: " .. shown(resp.body, clean, resp.truncated) .. (resp.truncated and " [truncated]" or ""))
  end
end

return M
