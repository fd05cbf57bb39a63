-- Error bodies in every shape Huawei Cloud uses, and bodies that carry nothing usable:
-- each still gives a clean, structured error from the status table.
local eip = require "eip"
local fixture = require "spec.support.fixture"

describe("error bodies", function()
  local fx = fixture.emulator()
  local emu, client

  setup(function() emu = fx.start() end)
  teardown(fx.stop)
  before_each(function()
    fx.reset()
    client = fx.client{ max_attempts = 1 }
  end)

  local function delete_with(answer)
    answer.method = "DELETE"
    emu:inject(answer)
    local ok, err = pcall(client.delete_bandwidth, client, "bw-1")
    assert.is_false(ok)
    assert.is_true(eip.is_error(err), tostring(err))
    return err
  end

  it("reads the EIP/VPC shape {code, message}", function()
    local err = delete_with{ status = 500, body = '{"code":"VPC.0302","message":"Neutron error."}' }
    assert.equal("VPC.0302", err.code)
    assert.equal("Neutron error.", err.message)
    assert.equal("Internal Server Error", err.reason)
    assert.is_true(err.retryable)
  end)

  it("reads the API-gateway shape {error_code, error_msg, request_id}", function()
    local err = delete_with{ status = 429,
      body = '{"error_code":"APIGW.0308","error_msg":"The throttling threshold has been reached",'
        .. '"request_id":"abc123"}' }
    assert.equal("APIGW.0308", err.code)
    assert.equal("The throttling threshold has been reached", err.message)
    assert.equal(429, err.status)
    assert.equal("Too Many Requests", err.reason)
    assert.is_true(err.retryable)
  end)

  it("uses the body's request_id when the header is missing", function()
    local err = delete_with{ status = 401, no_request_id = true,
      body = '{"error_code":"APIGW.0301","error_msg":"bad","request_id":"from-body-42"}' }
    assert.equal("from-body-42", err.request_id)
  end)

  it("reads the nested shape {error:{code, message}}", function()
    local err = delete_with{ status = 403, body = '{"error":{"code":"VPC.2701","message":"Policy denies."}}' }
    assert.equal("VPC.2701", err.code)
    assert.equal("Policy denies.", err.message)
    assert.equal("Forbidden", err.reason)
  end)

  it("reads the Neutron shape {NeutronError:{type, message}}", function()
    local err = delete_with{ status = 409,
      body = '{"NeutronError":{"type":"BandwidthInUse","message":"Bandwidth bw-1 is in use.","detail":""}}' }
    assert.equal("BandwidthInUse", err.code)
    assert.equal("Bandwidth bw-1 is in use.", err.message)
  end)

  it("carries a known code's description, advice and kind from the error-code table", function()
    local err = delete_with{ status = 404, body = { code = "VPC.0306", message = "No Eip bandwidth exist with id." } }
    local entry = eip.error_code("VPC.0306", 404)
    assert.equal(entry.advice, err.advice)
    -- (the delete's page lists no code: the row is the show's, said as such)
    assert.equal(entry.message .. " (the error-code table's row for " .. entry.module .. ")", err.description)
    assert.equal(entry.description_zh, err.description_zh)
    assert.equal("not_found", err.code_kind)
    local unknown = delete_with{ status = 500, body = { code = "VPC.9999", message = "new" } }
    assert.equal(eip.status(500).advice, unknown.advice) -- an unknown code: the status's own
    assert.is_nil(unknown.code_kind)
  end)

  -- A code has a row per API that documents it (VPC.0301 400: create EIP, show, list, update,
  -- add/remove EIPs): the error describes the answer with the row whose message the server sent,
  -- else the row of the operation that failed, never merely the first of its status.
  it("describes a code with the row of the server's message, else of the operation", function()
    local err = delete_with{ status = 400,
      body = { code = "VPC.0301", message = "getBandwidth error bandwidthId is invalid." } }
    assert.equal("getBandwidth error bandwidthId is invalid. (the error-code table's row for show bandwidth)",
      err.description)
    assert.matches("^The bandwidth id is not valid", err.advice)
    err = delete_with{ status = 400, body = { code = "VPC.0301", message = "something new" } }
    -- a delete by id: show's row, not create EIP's
    assert.matches("%(the error%-code table's row for show bandwidth%)$", err.description)
    -- the same words in two rows (show, list): the operation decides
    emu:inject{ method = "GET", status = 404, body = { code = "VPC.0306", message = "No Eip bandwidth exist with id." },
      times = 4 }
    local ok, listed = pcall(client.list_bandwidths, client)
    assert.is_false(ok)
    assert.equal("list bandwidths: No Eip bandwidth exist with id.", listed.description)
    assert.matches("^The marker names no bandwidth", listed.advice)
    err = delete_with{ status = 404, body = { code = "VPC.0306", message = "No Eip bandwidth exist with id." } }
    assert.equal("No Eip bandwidth exist with id. (the error-code table's row for show bandwidth)", err.description)
    -- (the gateway's rows are every call's: said as they were, a review found them "borrowed")
    err = delete_with{ status = 401, body = { error_code = "APIGW.0301",
      error_msg = "Incorrect IAM authentication information: verify aksk signature fail" } }
    assert.matches("^API gateway: ", err.description)
    emu:inject{ method = "POST", status = 400, body = { code = "VPC.0301", message = "Invalid publicip_id" } }
    ok, err = pcall(client.remove_eips_from_bandwidth, client, "bw-1", { "eip-1" }, { charge_mode = "bandwidth",
      size = 1 })
    assert.is_false(ok)
    assert.equal("add or remove EIPs of a shared bandwidth: Invalid publicip_id", err.description)
  end)

  -- A code's reading belongs to the status it is documented with: a 500 carrying VPC.0306 (404
  -- "no such bandwidth") was given code_kind not_found and the 404's advice ("a delete with
  -- missing_ok takes this as success"), though missing_ok did not and the bandwidth existed.
  it("reads a known code by its status only: documented with another, the status's advice", function()
    local id = emu:create_bandwidth{ size = 1 }
    emu:inject{ method = "DELETE", status = 500,
      body = { code = "VPC.0306", message = "No Eip bandwidth exist with id." } }
    local ok, err = pcall(client.delete_bandwidth, client, id, { missing_ok = true })
    assert.is_false(ok)
    assert.is_not_nil(emu:get_bandwidth(id))
    assert.same({ 500, "VPC.0306" }, { err.status, err.code })
    assert.is_nil(err.code_kind)
    assert.is_nil(err.description_zh)
    assert.equal(eip.status(500).description, err.description)
    -- (not the 500's "retry with backoff" either: the code is of a kind no retry fixes, and the
    -- call was not retried)
    assert.same({ false, 1 }, { err.retryable, err.attempts })
    assert.matches("^Not retried: VPC.0306 is documented only with 404", err.advice)
    assert.is_nil(err.advice:find(eip.status(500).advice, 1, true))
    assert.is_nil(err.advice:find("missing_ok", 1, true))
    -- 503 VPC.0301 (documented with 400 only: invalid input) alike
    err = delete_with{ status = 503,
      body = { code = "VPC.0301", message = "getBandwidth error bandwidthId is invalid." } }
    assert.is_nil(err.code_kind)
    assert.matches("^Not retried: VPC.0301 is documented only with 400", err.advice)
    -- A status whose advice is no retry keeps it (a 403's to grant the permission), with the note;
    -- a 5xx's final advice still says the request may have been carried out.
    err = delete_with{ status = 403, body = { code = "VPC.0008", message = "x" } }
    assert.equal(1, err.advice:find(eip.status(403).advice, 1, true))
    assert.matches("VPC.0008 is documented only with 401", err.advice, 1, true)
    err = delete_with{ status = 504, body = { code = "VPC.0306", message = "x" } }
    assert.matches("^Not retried: VPC.0306 is documented only with 404", err.advice)
    assert.matches("may have been carried out", err.advice, 1, true)
    -- a code retried at its own status keeps the status's advice, with the note
    err = delete_with{ status = 500, body = { code = "APIGW.0308", message = "x" } }
    assert.equal(1, err.advice:find(eip.status(500).advice, 1, true))
    assert.matches("APIGW.0308 is documented only with 429", err.advice, 1, true)
    -- a 404 with a code documented with other statuses only is no "no such bandwidth" either
    err = delete_with{ status = 404, body = { code = "VPC.0301", message = "x" } }
    assert.is_nil(err.code_kind)
    assert.matches("^Not a missing bandwidth: the answer carries VPC.0301", err.advice)
    -- eip.error_code: no row for that status, no row
    assert.is_nil(eip.error_code("VPC.0306", 500))
    assert.equal(404, eip.error_code("VPC.0306", 404).status)
    assert.equal(404, eip.error_code("VPC.0306").status)
  end)

  -- A code with rows of both classes, at a status of neither: its advice was that of its first row's
  -- kind, though the answer's class reads otherwise: a 503 VPC.0514 (its 500s: backend) said "Not
  -- retried: ... of a kind no retry fixes", after its 409 (quota); a 429 VPC.0504 (its 404: not
  -- found) kept the 429's advice to retry, after its 500 (backend).
  it("advises a code at an undocumented status by its row of that class", function()
    local err = delete_with{ status = 503, body = { code = "VPC.0514", message = "Neutron Error." } }
    assert.same({ true, nil }, { err.retryable, err.code_kind })
    assert.equal(1, err.advice:find(eip.status(503).advice, 1, true))
    assert.matches("VPC.0514 is documented only with 409 (quota), 500 (backend), 404 (backend), not with 503: "
      .. "this answer is described by its status", err.advice, 1, true)
    assert.is_nil(err.advice:find("Not retried", 1, true))
    err = delete_with{ status = 429, body = { code = "VPC.0504", message = "x" } }
    assert.same({ false, nil }, { err.retryable, err.code_kind })
    assert.matches("^Not retried: VPC%.0504 is documented only with 500 %(backend%), 404 %(not_found%), not with "
      .. "429, and the retry policy reads it as its 404 %(not_found%), a kind no retry fixes", err.advice)
    -- (a 429 VPC.0514 was not retried before either: its 4xx row that comes first is the 409)
    err = delete_with{ status = 429, body = { code = "VPC.0514", message = "x" } }
    assert.matches("reads it as its 409 (quota), a kind no retry fixes", err.advice, 1, true)
  end)

  it("eip.error_code answers with the table's row and the retry policy's verdict", function()
    assert.same({ "VPC.0306", 404, false }, { eip.error_code("VPC.0306").code, eip.error_code("VPC.0306").status,
      eip.error_code("VPC.0306").retryable })
    assert.is_true(eip.error_code("VPC.0004").retryable)
    assert.is_true(eip.error_code("APIGW.0308").retryable)
    assert.equal("throttled", eip.error_code("APIGW.0308").kind)
    assert.is_nil(eip.error_code("VPC.9999"))
    assert.equal(500, eip.error_code("VPC.0304", 500).status)
    assert.equal(409, eip.error_code("VPC.0304", 409).status)
    assert.equal("code", select(2, pcall(eip.error_code, 306)).argument)
  end)

  it("tries error_code/error_msg before code/message, as the official SDKs do", function()
    local err = delete_with{ status = 400,
      body = '{"code":"VPC.0301","message":"service","error_code":"APIGW.0101","error_msg":"gateway"}' }
    assert.same({ "APIGW.0101", "gateway" }, { err.code, err.message })
  end)

  it("reads camelCase errorCode/errorMsg", function()
    local err = delete_with{ status = 400, body = '{"errorCode":"EIP.7901","errorMsg":"Input param is invalid."}' }
    assert.same({ "EIP.7901", "Input param is invalid." }, { err.code, err.message })
  end)

  it("reads a pair nested under any key, error first", function()
    local err = delete_with{ status = 400, body = '{"badRequest":{"code":"VPC.0301","message":"nested"}}' }
    assert.same({ "VPC.0301", "nested" }, { err.code, err.message })
    err = delete_with{ status = 400,
      body = '{"aaa":{"code":"X.1","message":"first by name"},"error":{"code":"X.2","message":"error wins"}}' }
    assert.same({ "X.2", "error wins" }, { err.code, err.message })
  end)

  -- The Go SDK looks for a pair in nested objects at any depth: this client finds every pair it
  -- finds, the shallowest first (then "error" first, then the others by name, at each depth).
  it("reads a pair nested deeper than one level, the shallowest first", function()
    local err = delete_with{ status = 403,
      body = '{"error":{"detail":{"code":"VPC.2701","message":"Token not allowed to do this action."}}}' }
    assert.same({ "VPC.2701", "Token not allowed to do this action." }, { err.code, err.message })
    assert.equal("permission", err.code_kind)
    err = delete_with{ status = 400, body = '{"a":{"b":{"c":{"code":"X.3","message":"deepest"}}},'
      .. '"z":{"y":{"code":"X.2","message":"shallower"}},"error":{"x":{"code":"X.1","message":"error first"}}}' }
    assert.same({ "X.1", "error first" }, { err.code, err.message })
    err = delete_with{ status = 400, body = '{"a":{"b":{"c":{"code":"X.3","message":"deepest"}}},'
      .. '"z":{"y":{"code":"X.2","message":"shallower","details":["d"]}}}' }
    assert.same({ "X.2", "shallower", '["d"]' }, { err.code, err.message, err.details })
  end)

  -- RFC 8259 lets a parser ignore a byte order mark: a 404 VPC.0306 behind one is the service's
  -- "no such bandwidth", not a stray 404 "without an EIP error body".
  it("reads an error body that starts with a UTF-8 byte order mark", function()
    local bom = "\239\187\191"
    local err = delete_with{ status = 403, body = bom .. '{"code":"VPC.2701","message":"Token not allowed."}' }
    assert.same({ "VPC.2701", "Token not allowed." }, { err.code, err.message })
    emu:inject{ method = "DELETE", status = 404, answered_by = "service",
      body = bom .. '{"code":"VPC.0306","message":"No Eip bandwidth exist with id."}' }
    local c = fx.client{ max_attempts = 1, missing_ok = true }
    local res = c:delete_bandwidth(fixture.absent_id(1))
    assert.same({ true, false, "VPC.0306" }, { res.ok, res.deleted, res.code })
    -- a success's body too, and a plain-text or HTML refusal's (eip.body.plain_error)
    local id = emu:create_bandwidth{ size = 1 }
    local id_json = require("cjson").encode(id)
    emu:inject{ method = "GET", status = 200, answered_by = "service",
      body = bom .. '{"bandwidth":{"id":' .. id_json .. ',"size":1}}' }
    assert.equal(id, c:show_bandwidth(id).id)
    local body = require "eip.body"
    assert.same({ message = "Please configure Cloud Service Agency first" },
      body.plain_error(bom .. "Please configure Cloud Service Agency first\n"))
    assert.is_nil(body.plain_error(bom .. "<html><body>502</body></html>"))
  end)

  -- As the official SDKs read them: a pair needs a code that is not empty, and a body whose top
  -- has no code is searched below before a message alone is taken.
  -- The official SDKs read both: the encoded reason a policy denied the request is the only
  -- explanation of a 403, and IAM's tools decode it.
  it("keeps encoded_authorization_message and details, at the top or beside the pair, redacted", function()
    local err = delete_with{ status = 403, body = { error_code = "APIGW.0302", error_msg = "denied",
      encoded_authorization_message = "ENCODED-REASON-abc123", details = { { reason = "policy" } } } }
    assert.same({ "ENCODED-REASON-abc123", '[{"reason":"policy"}]' }, { err.encoded_authorization_message,
      err.details })
    err = delete_with{ status = 403, body = { error = { code = "VPC.2201", message = "Policy doesn't allow",
      encoded_authorization_message = "inner-" .. emu.token, details = "see " .. emu.token } } }
    assert.same({ "inner-<redacted>", "see <redacted>" }, { err.encoded_authorization_message, err.details })
    err = delete_with{ status = 403, body = { code = "VPC.2201", message = "x" } }
    assert.is_nil(err.encoded_authorization_message)
    assert.is_nil(err.details)
  end)

  it("skips an empty code for the next pair, and finds a whole pair below a partial one", function()
    local err = delete_with{ status = 404, body = '{"error_code":"","error_msg":"","code":"VPC.0306",'
      .. '"message":"No Eip bandwidth exist with id."}' }
    assert.same({ "VPC.0306", "No Eip bandwidth exist with id." }, { err.code, err.message })
    err = delete_with{ status = 404, body = '{"message":"outer","error":{"code":"VPC.0306","message":"inner"}}' }
    assert.same({ "VPC.0306", "inner" }, { err.code, err.message })
    -- "type" is Neutron's code below the top; at the top (a problem document's URI) it comes last
    err = delete_with{ status = 404,
      body = '{"type":"about:blank","message":"m","error":{"code":"VPC.0306","message":"inner"}}' }
    assert.same({ "VPC.0306", "inner" }, { err.code, err.message })
    err = delete_with{ status = 400, body = '{"code":"","message":"","detail":{"message":"why"}}' }
    assert.same({ nil, "why" }, { err.code, err.message })
    err = delete_with{ status = 401, body = '{"error_code":401,"error_msg":"numeric"}' }
    assert.same({ "401", "numeric" }, { err.code, err.message })
  end)

  it("reads a missing bandwidth's 404 behind an empty code as missing, with missing_ok", function()
    emu:inject{ method = "DELETE", status = 404, body = '{"error_code":"","error_msg":"","code":"VPC.0306",'
      .. '"message":"No Eip bandwidth exist with id."}' }
    local c = fx.client{ max_attempts = 1, missing_ok = true }
    local res = c:delete_bandwidth(fixture.absent_id(1))
    assert.same({ true, false, "VPC.0306" }, { res.ok, res.deleted, res.code })
  end)

  it("decodes a JSON error document inside message, keeping the text as raw_message", function()
    local inner = '{"NeutronError":{"message":"Bandwidth bw-1 could not be found.","type":"BandwidthNotFound",'
      .. '"detail":""}}'
    local err = delete_with{ status = 400, body = { code = "VPC.0501", message = inner } }
    assert.equal("VPC.0501", err.code)
    assert.equal("Bandwidth bw-1 could not be found.", err.message)
    assert.equal(inner, err.raw_message)
    assert.matches("VPC.0501: Bandwidth bw%-1 could not be found%.", tostring(err))
    err = delete_with{ status = 400, body = { code = "VPC.0501", message = "{not json" } }
    assert.equal("{not json", err.message)
    assert.is_nil(err.raw_message)
  end)

  -- A message sent as a JSON object or list, not a string, was dropped (the Go SDK then shows
  -- the whole body): it is kept as compact JSON now, bounded and redacted as any message, and
  -- an error document in it is read as one inside a string message is.
  it("keeps a message that is a JSON object or list, as compact JSON, bounded and redacted", function()
    local err = delete_with{ status = 400, body = '{"error_code":"VPC.0301","error_msg":{"en":"Invalid id."}}' }
    assert.same({ "VPC.0301", '{"en":"Invalid id."}' }, { err.code, err.message })
    err = delete_with{ status = 400, body = '{"code":"VPC.0501","message":["bad id","bad size"]}' }
    assert.same({ "VPC.0501", '["bad id","bad size"]' }, { err.code, err.message })
    err = delete_with{ status = 400,
      body = '{"code":"VPC.0501","message":{"NeutronError":{"type":"X","message":"inner","detail":""}}}' }
    assert.same({ "VPC.0501", "inner" }, { err.code, err.message })
    assert.same({ NeutronError = { type = "X", message = "inner", detail = "" } },
      require("cjson").decode(err.raw_message))
    err = delete_with{ status = 401, body = '{"message":{"why":"token ' .. emu.token .. ' expired"}}' }
    assert.same({ nil, '{"why":"token <redacted> expired"}' }, { err.code, err.message })
    err = delete_with{ status = 400,
      body = '{"code":"VPC.0301","message":{"text":"' .. string.rep("m", 100000) .. '"}}' }
    assert.is_true(#err.message <= 520 and err.message:find('^{"text":"mmm') ~= nil, err.message)
    err = delete_with{ status = 400, body = '{"code":"VPC.0301","message":{}}' }
    assert.same({ "VPC.0301", nil }, { err.code, err.message })
  end)

  -- The official Go SDK decodes an error body's first JSON value (a json-iterator Decoder) and
  -- ignores what follows; this client refused such a body whole, and lost its code. Its code is
  -- read now, but a 404 whose body is not one whole JSON value never reads as "no such
  -- bandwidth": which of the values is the service's cannot be told.
  it("reads the first JSON value of a body with more after it; such a 404 is no missing bandwidth", function()
    local err = delete_with{ status = 403, body = '{"error_code":"VPC.2701","error_msg":"frozen"}\n garbage' }
    assert.same({ "VPC.2701", "frozen", true }, { err.code, err.message, err.trailing })
    assert.is_true(eip.is_auth_failure(err))
    err = delete_with{ status = 500, body = ' {"code":"VPC.0302","message":"a [x] {y}"}{"code":"VPC.0004"}' }
    assert.same({ "VPC.0302", "a [x] {y}", true }, { err.code, err.message, err.trailing })
    err = delete_with{ status = 500, body = '{"code":"VPC.0302","message":"a"}  \r\n' }
    assert.same({ "VPC.0302", nil }, { err.code, err.trailing })
    err = delete_with{ status = 502, body = '{"code":"VPC.0302","message":"a"] {"code":"VPC.0306"}' }
    assert.is_nil(err.code)
    local c = fx.client{ max_attempts = 1, missing_ok = true }
    -- (cjson reads up to a NUL byte only: what follows one was taken for nothing at all)
    for _, tail in ipairs{ "\ngarbage", '{"error_code":"APIGW.0101","error_msg":"No API found"}',
                           "\0<html>x</html>" } do
      emu:inject{ method = "DELETE", status = 404, answered_by = "service",
        body = '{"code":"VPC.0306","message":"No Eip bandwidth exist with id."}' .. tail }
      local ok, e = pcall(c.delete_bandwidth, c, fixture.absent_id(1))
      assert.is_false(ok, tail)
      assert.same({ 404, "VPC.0306", true }, { e.status, e.code, e.trailing })
      assert.is_false(eip.is_missing(e, fixture.absent_id(1)))
      assert.is_nil(e.code_kind)
      assert.matches("Not known to be a missing bandwidth", e.advice, 1, true)
      assert.matches("Do not treat this as deleted", e.advice, 1, true)
      -- (its one line says so, as of a body cut at max_body: else it reads as a gone bandwidth's)
      assert.matches("(VPC.0306: No Eip bandwidth exist with id.) [more after its JSON]", tostring(e), 1, true)
    end
    -- (more after a value whose end only a bracket count finds: a string that breaks off)
    err = delete_with{ status = 403, body = '{"error_code":"VPC.2701","error_msg":"f"} "x\\"y' }
    assert.same({ "VPC.2701", true }, { err.code, err.trailing })
  end)

  -- Finding the first value of a body that is no one JSON document is the decoder's work, in C:
  -- a Lua pass over the body cost 0.1 s of CPU per MiB (inside nginx, the worker's every
  -- request), for a body cut at max_body or broken early as much as for one with more after it.
  it("reads a body that is no one JSON document without a Lua pass over it", function()
    local body = require "eip.body"
    local n = 256 * 1024
    local cases = {
      { '{"code":"VPC.0302","a":[' .. string.rep('"",', math.floor(n / 3)), nil }, -- cut
      { '{"code":"VPC.0302","a":' .. string.rep('[1],', math.floor(n / 4)), nil }, -- broken early
      { '{"code":"VPC.0302","a":[' .. string.rep('"",', math.floor(n / 3)) .. '""]} more', "VPC.0302" },
    }
    for i, case in ipairs(cases) do
      local steps = 0 -- (thousands of Lua VM instructions)
      debug.sethook(function() steps = steps + 1 end, "", 1000)
      local ok, out = pcall(body.decode_error, case[1])
      debug.sethook()
      assert(ok, out)
      assert.equal(case[2], out and out.code, i)
      assert.is_true(steps < 20, i .. ": " .. steps .. "k instructions")
    end
  end)

  local garbage = {
    { "an empty body", "" },
    { "an HTML page from a proxy", "<html><body><h1>502 Bad Gateway</h1></body></html>" },
    { "truncated JSON", '{"code":"VPC.03' },
    { "a JSON string", '"oops"' },
    { "a JSON array", '[1,2,3]' },
    { "an object of the wrong shape", '{"foo":{"bar":1}}' },
    { "fields of the wrong type", '{"code":{"x":1},"message":[1]}' },
    { "deeply nested JSON", string.rep("[", 5000) .. string.rep("]", 5000) },
    { "binary bytes", "\0\1\2\255\254garbage\0" },
    { "invalid UTF-8 in JSON", '{"code":"\255\254","message":"x"}' },
  }
  for _, case in ipairs(garbage) do
    it("falls back on the status table for " .. case[1], function()
      local err = delete_with{ status = 502, body = case[2], content_type = "text/html" }
      assert.equal("http", err.kind)
      assert.equal(502, err.status)
      assert.equal("Bad Gateway", err.reason)
      assert.is_true(err.retryable)
      assert.is_string(err.description)
      local line = tostring(err)
      assert.matches("^eip: DELETE /v2%.0/[^ ]+ %-> 502 Bad Gateway", line)
      assert.is_nil(line:find("[%c]"))
    end)
  end

  it("strips control characters from server messages so tostring stays one line", function()
    local err = delete_with{ status = 400, body = '{"code":"VPC.0301","message":"line1\\nline2\\r\\u0000x"}' }
    assert.is_nil(err.message:find("[%c]"))
    assert.is_nil(tostring(err):find("[%c]"))
    -- and C1 controls (CSI, U+009B, as ESC [ to a terminal), in UTF-8 or as a lone byte
    err = delete_with{ status = 400, body = '{"code":"VPC.0301","message":"gone\\u009b2J and \155"}' }
    assert.is_nil(tostring(err):find("\194[\128-\159]"), tostring(err))
    assert.is_nil(tostring(err):find("\155", 1, true), tostring(err))
  end)

  it("bounds an over-long server message", function()
    local err = delete_with{ status = 400, body = '{"code":"VPC.0301","message":"' .. string.rep("m", 100000) .. '"}' }
    assert.is_true(#err.message <= 520)
    assert.is_true(#tostring(err) < 600)
  end)

  -- A bound that fell inside a character left half of it: no UTF-8, and no JSON a strict reader
  -- takes (cjson passes the bytes on as they are).
  it("cuts an over-long message between UTF-8 characters, in the error and its one line", function()
    local valid_utf8 = require("eip.emulator.server.params").valid_utf8
    for _, char in ipairs{ "é", "带", "😀" } do
      for pad = 0, 3 do
        local message = string.rep("m", pad) .. string.rep(char, 600)
        local err = delete_with{ status = 400, body = '{"code":"VPC.0301","message":"' .. message .. '"}' }
        local kept = err.message:gsub("%.%.%.$", "")
        assert.is_true(valid_utf8(kept) and #kept > 512 - #char and #kept <= 512, char .. pad)
        assert.equal(message:sub(1, #kept), kept)
        assert.is_true(valid_utf8(tostring(err)), char .. pad)
      end
    end
  end)

  it("caps a huge body at max_body, flags truncation and still maps the status", function()
    local small = fx.client{ max_body = 4096, max_attempts = 1 }
    emu:inject{ method = "DELETE", status = 503, body_size = 5 * 1024 * 1024 }
    local ok, err = pcall(small.delete_bandwidth, small, "bw-1")
    assert.is_false(ok)
    assert.equal("http", err.kind)
    assert.equal(503, err.status)
    assert.is_true(err.truncated)
    assert.is_true(err.retryable)
    assert.matches("%[body truncated%]", tostring(err))
    -- the client is still usable afterwards
    local id = emu:create_bandwidth{ size = 1 }
    assert.equal(204, small:delete_bandwidth(id).status)
    small:close()
  end)

  -- A 404 whose body max_body cut before its code: the service's VPC.0306 may be in the part not
  -- read, so the advice neither blames the endpoint nor says the bandwidth is gone.
  it("says a 404 cut by max_body before its code cannot be told, and missing_ok does not take it", function()
    local small = fx.client{ max_body = 1024, max_attempts = 1, missing_ok = true }
    emu:inject{ method = "DELETE", status = 404, body = '{"code":"VPC.0306","message":"No Eip bandwidth exist '
      .. 'with id.","details":"' .. string.rep("x", 2048) .. '"}' }
    local ok, err = pcall(small.delete_bandwidth, small, fixture.absent_id(1))
    small:close()
    assert.is_false(ok)
    assert.same({ 404, true }, { err.status, err.truncated })
    assert.matches("cut at the client's max_body before an error code could be read", err.advice, 1, true)
    assert.not_matches("endpoint", err.advice)
    -- cut after its code: what was not read may be more than that document
    small = fx.client{ max_body = 1024, max_attempts = 1, missing_ok = true }
    emu:inject{ method = "DELETE", status = 404, answered_by = "service",
      body = '{"code":"VPC.0306","message":"No Eip bandwidth exist with id."}' .. string.rep(" ", 2048) }
    ok, err = pcall(small.delete_bandwidth, small, fixture.absent_id(1))
    small:close()
    assert.is_false(ok)
    assert.same({ 404, true, "VPC.0306" }, { err.status, err.truncated, err.code })
    assert.matches("Not known to be a missing bandwidth", err.advice, 1, true)
  end)

  it("never shows the token in an error, even when the server echoes it", function()
    local err = delete_with{ status = 401,
      body = '{"error_code":"APIGW.0301","error_msg":"token ' .. emu.token .. ' is invalid"}' }
    assert.is_nil(err.message:find(emu.token, 1, true))
    assert.is_nil(tostring(err):find(emu.token, 1, true))
    assert.matches("<redacted>", err.message)
    for k, v in pairs(err) do
      if type(v) == "string" then assert.is_nil(v:find(emu.token, 1, true), k) end
    end
  end)
end)
