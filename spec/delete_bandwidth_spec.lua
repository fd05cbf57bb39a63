-- DeleteSharedBandwidth against the EIP emulator: the happy path, the documented error
-- answers, the request on the wire, keep-alive reuse and the one-shot form.
local eip = require "eip"
local fixture = require "spec.support.fixture"
local raised = require("spec.support.assertions").raised

describe("delete_bandwidth", function()
  local fx = fixture.emulator()
  local emu, client

  setup(function() emu = fx.start() end)
  teardown(fx.stop)
  before_each(function()
    fx.reset()
    client = fx.client()
  end)


  it("deletes a shared bandwidth and returns the documented result table", function()
    local id = emu:create_bandwidth{ name = "bw-spec", size = 10 }
    local res = client:delete_bandwidth(id)
    assert.is_true(res.ok)
    assert.equal(204, res.status)
    assert.equal("No Content", res.reason)
    assert.equal(id, res.bandwidth_id)
    assert.equal(1, res.attempts)
    assert.matches("^%x+$", res.request_id)
    assert.is_number(res.elapsed)
    assert.is_true(res.elapsed >= 0)
    assert.is_nil(emu:get_bandwidth(id))
  end)

  it("sends DELETE /v2.0/{project_id}/bandwidths/{id} with the token, JSON and our User-Agent", function()
    local id = emu:create_bandwidth{ size = 5 }
    client:delete_bandwidth(id)
    local reqs = emu:requests()
    local last = reqs[#reqs]
    assert.equal("DELETE", last.method)
    assert.equal("/v2.0/" .. emu.project_id .. "/bandwidths/" .. id, last.uri)
    assert.equal(emu.token, last.headers["x-auth-token"])
    assert.equal("lua-eip/" .. eip._VERSION, last.headers["user-agent"])
    assert.equal("application/json", last.headers["accept"])
    assert.is_nil(last.headers["authorization"])
  end)

  it("raises a structured 404 with VPC.0306 for a bandwidth that does not exist", function()
    local err = raised(client.delete_bandwidth, client, "3fa1e2b4-1111-2222-3333-444455556666")
    assert.equal("http", err.kind)
    assert.equal(404, err.status)
    assert.equal("Not Found", err.reason)
    assert.equal("client_error", err.class)
    assert.equal("VPC.0306", err.code)
    assert.equal("No Eip bandwidth exist with id.", err.message)
    assert.is_false(err.retryable)
    assert.equal(1, err.attempts)
    assert.equal("DELETE", err.method)
    assert.equal("/v2.0/" .. emu.project_id .. "/bandwidths/3fa1e2b4-1111-2222-3333-444455556666", err.path)
    assert.matches("^%x+$", err.request_id)
    assert.is_string(err.description)
    assert.is_string(err.advice)
    assert.equal("eip: DELETE " .. err.path .. " -> 404 Not Found (VPC.0306: No Eip bandwidth exist with id.)"
      .. " request-id=" .. err.request_id, tostring(err))
  end)

  it("deleting twice gives 204 then 404", function()
    local id = emu:create_bandwidth{ size = 5 }
    assert.equal(204, client:delete_bandwidth(id).status)
    assert.equal(404, raised(client.delete_bandwidth, client, id).status)
  end)

  it("raises 409 for a shared bandwidth that still holds EIPs, and keeps the bandwidth", function()
    local id = emu:create_bandwidth{ size = 5, publicip_ids = { "eip-a", "eip-b" } }
    local err = raised(client.delete_bandwidth, client, id)
    assert.equal("http", err.kind)
    assert.equal(409, err.status)
    assert.equal("Conflict", err.reason)
    assert.is_string(err.code)
    assert.is_string(err.message)
    assert.is_false(err.retryable)
    assert.is_table(emu:get_bandwidth(id))
  end)

  it("raises 400 for a dedicated (PER) bandwidth", function()
    local id = emu:create_bandwidth{ size = 5, share_type = "PER" }
    local err = raised(client.delete_bandwidth, client, id)
    assert.equal(400, err.status)
    assert.equal("Bad Request", err.reason)
    assert.matches("^VPC%.", err.code)
    assert.is_table(emu:get_bandwidth(id))
  end)

  it("raises 401 in the API-gateway shape for a wrong token, without showing the token", function()
    local bad = eip.new{ endpoint = emu.url, project_id = emu.project_id, token = "not-a-valid-token-XYZ" }
    local err = raised(bad.delete_bandwidth, bad, "bw-1")
    bad:close()
    assert.equal(401, err.status)
    assert.equal("Unauthorized", err.reason)
    assert.equal("APIGW.0301", err.code)
    assert.is_string(err.message)
    assert.is_string(err.request_id)
    assert.is_false(err.retryable)
    assert.is_nil(tostring(err):find("not-a-valid-token-XYZ", 1, true))
  end)

  it("raises 400 VPC.0007 when the project in the URL is not the token's", function()
    local other = eip.new{ endpoint = emu.url, project_id = emu.other_project_id, token = emu.token }
    local err = raised(other.delete_bandwidth, other, "bw-1")
    other:close()
    assert.equal(400, err.status)
    assert.equal("VPC.0007", err.code)
  end)

  it("does not follow redirects: a 3xx is an http error and the target is never contacted", function()
    emu:inject{ method = "DELETE", status = 302, headers = { Location = emu.url .. "/elsewhere" }, body = "" }
    local err = raised(client.delete_bandwidth, client, "bw-1")
    assert.equal("http", err.kind)
    assert.equal(302, err.status)
    assert.equal("Found", err.reason)
    assert.equal("redirect", err.class)
    assert.equal(1, emu:stats().requests)
  end)

  it("takes only 204 for a done delete: another 2xx is an unusable answer, never deleted", function()
    for _, status in ipairs{ 200, 201, 202, 203, 205, 206 } do
      local id = emu:create_bandwidth{ size = 1 }
      emu:inject{ method = "DELETE", status = status, content_type = "text/html",
        body = "<html>Please log in to the proxy</html>" }
      local err = raised(client.delete_bandwidth, client, id, { missing_ok = true })
      assert.equal("http", err.kind)
      assert.equal(status, err.status)
      assert.equal("Unusable Answer", err.reason)
      assert.matches("answers 204 No Content; this " .. status .. " ", err.message, 1, true)
      assert.is_false(err.retryable)
      assert.equal(1, err.attempts)
      assert.is_true(require("eip.errors").could_have_acted(err))
      -- (as every http error: the status's class, a description, advice a script can show)
      assert.equal("success", err.class)
      assert.matches("check with show_bandwidth before deleting it again", err.advice, 1, true)
      assert.is_string(err.description)
      assert.is_table(emu:get_bandwidth(id), "the bandwidth is still there")
    end
    assert.equal(6, emu:stats().requests)
  end)

  it("reports a 2xx other than 204 in a batch as that id's failure; the others are deleted", function()
    local ids = { emu:create_bandwidth{ size = 1 }, emu:create_bandwidth{ size = 1 }, emu:create_bandwidth{ size = 1 } }
    emu:inject{ method = "DELETE", path = emu:delete_path(ids[2]), status = 200, body = "{}" }
    local results, summary = client:delete_bandwidths(ids, { concurrency = 2 })
    assert.same({ 2, 1 }, { summary.deleted, summary.failed })
    assert.is_true(results[1].ok and results[3].ok)
    assert.equal("Unusable Answer", results[2].reason)
    assert.equal(200, results[2].status)
  end)

  it("makes 100 calls over one keep-alive connection", function()
    local ids = {}
    for i = 1, 100 do ids[i] = emu:create_bandwidth{ size = 1 } end
    emu:reset_counters()
    for i = 1, 100 do assert.equal(204, client:delete_bandwidth(ids[i]).status) end
    local stats = emu:stats()
    assert.equal(100, stats.requests)
    assert.equal(1, stats.connections)
  end)

  -- A batch deleting beside a listing can delete the marker of its next page: the API answers
  -- that page 404 VPC.0306. The listing starts again (each bandwidth once), 3 times at most.
  it("lists again from the start when the marker was deleted between two pages", function()
    local ids = emu:create_bandwidths(5)
    local marker_gone = { method = "GET", path = "/bandwidths$", status = 404,
      body = { code = "VPC.0306", message = "No Eip bandwidth exist with id." } }
    -- the first page passes (an empty rule would be consumed by it): the second fails once
    emu:inject{ method = "GET", action = "slow", delay = 0 }
    emu:inject(marker_gone)
    local listed, info = client:list_bandwidths{ limit = 2 }
    local seen = {}
    for _, bw in ipairs(listed) do
      assert.is_nil(seen[bw.id], "listed twice: " .. bw.id)
      seen[bw.id] = true
    end
    for _, id in ipairs(ids) do assert.is_true(seen[id], id) end
    assert.equal(1, info.restarts)
    -- a listing whose markers keep vanishing ends with the 404, after 3 restarts
    emu:reset_counters()
    for _ = 1, 4 do
      emu:inject{ method = "GET", action = "slow", delay = 0 }
      emu:inject(marker_gone)
    end
    local err = raised(client.list_bandwidths, client, { limit = 2 })
    assert.same({ 404, "VPC.0306" }, { err.status, err.code })
    assert.equal(8, emu:stats().requests)
  end)

  -- The first pass of a restarted listing is not kept: its marker's bandwidth is gone (the 404
  -- says so), and others may be. A delete beside the listing (here from a hook, after page 1).
  it("lists what the new pass lists after a restart, not the deleted marker of the first", function()
    local ids = emu:create_bandwidths(3)
    local deleter = fx.client()
    local first
    local lister = fx.client{ on_response = function(info)
      if info.operation == "list_bandwidths" and not first then
        first = emu:bandwidths()[1].id
        assert.equal(204, deleter:delete_bandwidth(first).status)
      end
    end }
    local listed, info = lister:list_bandwidths{ limit = 1 }
    assert.equal(1, info.restarts)
    local got = {}
    for _, bw in ipairs(listed) do got[#got + 1] = bw.id end
    local left = {}
    for _, id in ipairs(ids) do
      if id ~= first then left[#left + 1] = id end
    end
    table.sort(got)
    table.sort(left)
    assert.same(left, got)
  end)

  -- A server whose pages never end, each of fresh ids: bounded in bandwidths and bytes.
  it("stops a listing that never ends at MAX_LISTED bandwidths, nothing more sent", function()
    local bandwidths = require "eip.bandwidths"
    local saved = bandwidths.MAX_LISTED
    finally(function() bandwidths.MAX_LISTED = saved end)
    bandwidths.MAX_LISTED = 5
    emu:create_bandwidths(8)
    local err = raised(client.list_bandwidths, client, { limit = 2 })
    assert.same({ "http", 200, "Unusable Answer" }, { err.kind, err.status, err.reason })
    assert.matches("did not end within 5 bandwidths", err.message, 1, true)
    assert.equal(3, emu:stats().requests)
  end)

  -- Pages of small bodies that decode to large tables (`{}` is 2 bytes and a table of ~70, `1,`
  -- an array slot of 16, `"ab",` a string of 26): each object or array, each `,` or `:`, each
  -- `"`, weighs more against the cap.
  it("weighs a listing's pages by what they decode to: objects, arrays and their items count", function()
    local bandwidths = require "eip.bandwidths"
    local saved = bandwidths.MAX_LIST_BYTES
    finally(function() bandwidths.MAX_LIST_BYTES = saved end)
    -- (a page of each: 2-5 KB of bytes, 34-99 KB of weight)
    for _, shape in ipairs{ { "[" .. string.rep("{},", 999) .. "{}]", 150000 },
        { "[" .. string.rep("1,", 999) .. "1]", 50000 }, { "[" .. string.rep('"ab",', 999) .. '"ab"]', 100000 } } do
      emu:reset()
      bandwidths.MAX_LIST_BYTES = shape[2]
      for i = 1, 3 do
        emu:inject{ method = "GET", path = "/bandwidths$", status = 200, body = string.format(
          '{"bandwidths":[{"id":"3fa1e2b4-0000-4000-8000-00000000000%d","publicip_info":%s}]}', i, shape[1]) }
      end
      emu:inject{ method = "GET", path = "/bandwidths$", status = 200, body = '{"bandwidths":[]}' }
      local err = raised(client.list_bandwidths, client, { limit = 1 })
      assert.same({ "http", 200, "Unusable Answer" }, { err.kind, err.status, err.reason })
      assert.matches("did not end within 100000 bandwidths or " .. shape[2] .. " bytes of pages", err.message, 1, true)
      assert.equal(2, emu:stats().requests) -- by bytes alone all four pages would be read
    end
  end)

  it("ends a listing with the client's deadline: each page within it, none sent after it", function()
    emu:create_bandwidths(6)
    local slow = fx.client{ deadline = 0.5 }
    for _ = 1, 6 do emu:inject{ method = "GET", action = "slow", delay = 0.2 } end
    local started = require("eip.core").monotime()
    local err = raised(slow.list_bandwidths, slow, { limit = 1 })
    local took = require("eip.core").monotime() - started
    assert.equal("transport", err.kind)
    assert.equal("timeout", err.reason)
    assert.is_true(took < 2.0, took)
    assert.is_true(emu:stats().requests <= 3)
  end)

  it("takes cancel: asked before each page, nothing more sent once it says stop", function()
    emu:create_bandwidths(4)
    local pages = 0
    local err = raised(client.list_bandwidths, client, { limit = 1, cancel = function()
      pages = pages + 1
      return pages > 2
    end })
    assert.equal("interrupted", err.kind)
    assert.equal(2, emu:stats().requests)
    err = raised(client.list_bandwidths, client, { cancel = true })
    assert.same({ "usage", "cancel" }, { err.kind, err.argument })
    assert.equal(2, emu:stats().requests)
  end)

  -- What is not the bandwidth asked for, or not a list of bandwidths, is an unusable answer.
  it("refuses a show of another bandwidth or of none, and a listing that is no list", function()
    local id = emu:create_bandwidth{ size = 5 }
    for _, bw in ipairs{ { id = "another-bandwidth" }, {}, { id = 42 } } do
      emu:inject{ method = "GET", status = 200, body = { bandwidth = bw } }
      local err = raised(client.show_bandwidth, client, id)
      assert.same({ "http", 200, "Unusable Answer" }, { err.kind, err.status, err.reason })
    end
    -- (an empty object too, which cjson decodes as it decodes [], the end of a listing)
    for _, page in ipairs{ '{"bandwidths":{"a":1}}', '{"bandwidths":{}}', '{"bandwidths" : { } }',
        '{"x":"\\"bandwidths\\":[]","bandwidths":{}}', '{"bandwidths":[],"bandwidths":{}}',
        '{"bandwidth\\u0073":{}}' } do
      emu:inject{ method = "GET", status = 200, body = page }
      local err = raised(client.list_bandwidths, client)
      assert.same({ "http", 200, "Unusable Answer" }, { err.kind, err.status, err.reason }, page)
      assert.matches("not a list", err.message, 1, true)
    end
    for _, page in ipairs{ '{"bandwidths":[]}', '{ "bandwidths" :\n [ ] }', '{"bandwidths":{},"bandwidths":[]}',
        '{"a":{"bandwidths":{}},"bandwidth\\u0073":[],"b":"\\"bandwidths\\":{}"}' } do
      emu:inject{ method = "GET", status = 200, body = page }
      assert.same({}, client:list_bandwidths(), page)
    end
    assert.equal(id, client:show_bandwidth(id).id)
  end)

  -- cjson reads a body up to a NUL byte: a value, a NUL and more is no one JSON value (as `{} x`
  -- is not), whatever the first value says.
  it("refuses a show, listing or create whose JSON value has a NUL byte and more after it", function()
    local id = emu:create_bandwidth{ size = 5 }
    local bw = string.format('{"bandwidth":{"id":"%s","size":5}}', id)
    local cases = {
      { "GET", "/bandwidths/", bw .. "\0garbage", client.show_bandwidth, id },
      { "GET", "/bandwidths$", '{"bandwidths":[]}\0{"bandwidths":[{"id":"x"}]}', client.list_bandwidths },
      { "GET", "/bandwidths$", '{"bandwidths":{}}\0{"bandwidths":[]}', client.list_bandwidths },
      { "POST", "/bandwidths$", bw .. "\0", client.create_bandwidth, { name = "nul", size = 5 } },
    }
    for _, c in ipairs(cases) do
      emu:inject{ method = c[1], path = c[2], status = 200, body = c[3], times = 1 }
      local err = raised(c[4], client, c[5])
      assert.same({ "http", 200, "Unusable Answer" }, { err.kind, err.status, err.reason }, c[3])
      assert.matches("more after its JSON value", err.message, 1, true)
    end
    emu:inject{ method = "GET", path = "/bandwidths/", status = 200, body = bw .. " \r\n\t", times = 1 }
    assert.equal(id, client:show_bandwidth(id).id)
  end)

  -- A create answered 2xx without an id names nothing the caller can delete, though a bandwidth
  -- may have been made (and billed): it is no success.
  it("refuses a create answered without a usable bandwidth id, as one that may have acted", function()
    for _, body in ipairs{ '{"bandwidth":{}}', '{"bandwidth":{"id":5}}', '{"bandwidth":{"id":"a/b"}}' } do
      emu:inject{ method = "POST", status = 200, body = body, times = 1 }
      local err = raised(client.create_bandwidth, client, { name = "noid", size = 5 })
      assert.same({ "http", 200, "Unusable Answer" }, { err.kind, err.status, err.reason }, body)
      assert.matches("id", err.message, 1, true)
      assert.is_true(eip.could_have_acted(err), body)
      assert.is_falsy(err.retryable)
    end
    assert.equal(3, fixture.count_requests(emu, "POST"))
  end)

  -- A client fills the same request table at every call (eip.pipeline, reuse_requests): what one
  -- call set (a body, a query, a retry's attempt number) must never reach the next.
  it("sends each call of one client as its own request, whatever the call before it set", function()
    local created = client:create_bandwidth{ name = "seq-1", size = 5 }
    local listed = client:list_bandwidths{ share_type = "WHOLE", limit = 7 }
    assert.is_true(#listed >= 1)
    emu:inject{ method = "DELETE", status = 503, times = 1 }
    local res = client:delete_bandwidth(created.id)
    assert.equal(2, res.attempts)
    local shown_err = raised(client.show_bandwidth, client, created.id)
    assert.equal(404, shown_err.status)
    assert.equal(1, shown_err.attempts)
    local again = raised(client.delete_bandwidth, client, created.id)
    assert.equal(1, again.attempts)
    local log = emu:requests()
    local want = {
      { "POST", "/v2.0/" .. emu.project_id .. "/bandwidths", true },
      { "GET", "/v1/" .. emu.project_id .. "/bandwidths?", false },
    }
    assert.equal(want[1][1], log[1].method)
    assert.equal(want[1][2], log[1].uri)
    assert.matches('"seq%-1"', log[1].body)
    local i = 2
    while log[i].method == "GET" do -- every page of the list
      assert.matches("^/v1/" .. emu.project_id .. "/bandwidths%?", log[i].uri)
      assert.matches("limit=7", log[i].uri)
      assert.equal("", log[i].body or "")
      i = i + 1
    end
    local rest = { { "DELETE", "/v2.0/" }, { "DELETE", "/v2.0/" }, { "GET", "/v1/" }, { "DELETE", "/v2.0/" } }
    assert.equal(i - 1 + #rest, #log)
    for k, r in ipairs(rest) do
      local got = log[i + k - 1]
      assert.equal(r[1], got.method)
      assert.equal(r[2] .. emu.project_id .. "/bandwidths/" .. created.id, got.uri) -- no query left over
      assert.equal("", got.body or "") -- no body left over
      assert.is_nil(got.headers["content-length"])
    end
  end)

  -- Calls of one client that run at once (light threads inside nginx, a token fetched inside a
  -- call) each fill a request table of their own, and the client keeps them all for its later
  -- calls. The client's own transport (libcurl) is watched, and a second call is made inside
  -- the first's send, before the first goes out.
  it("gives calls that run at once a request table each, and keeps both for later calls", function()
    local seen, inner_ids, inner = {}, {}, {}
    local transport = client.transport
    local send = transport.send
    transport.send = function(self, req)
      seen[#seen + 1] = req
      local id = table.remove(inner_ids)
      if id then inner[#inner + 1] = client:delete_bandwidth(id) end
      return send(self, req)
    end
    local ids = {}
    for i = 1, 9 do ids[i] = emu:create_bandwidth{ size = 1 } end
    local results = {}
    for round = 0, 1 do -- a call with another inside it, twice
      inner_ids[1] = ids[2 * round + 2]
      results[#results + 1] = client:delete_bandwidth(ids[2 * round + 1])
    end
    for i = 5, 9 do results[#results + 1] = client:delete_bandwidth(ids[i]) end
    -- Every call deleted its own id: no call's request was filled by another's.
    assert.equal(2, #inner)
    assert.equal(ids[2], inner[1].bandwidth_id)
    assert.equal(ids[4], inner[2].bandwidth_id)
    assert.same({ ids[1], ids[3], ids[5], ids[6], ids[7], ids[8], ids[9] },
      (function() local t = {} for i, r in ipairs(results) do t[i] = r.bandwidth_id end return t end)())
    for i = 1, 9 do assert.is_nil(emu:get_bandwidth(ids[i]), "bandwidth " .. i .. " is gone") end
    -- The two calls at once had two tables; the second pair reused them both; so did the rest.
    assert.equal(9, #seen)
    assert.are_not.equal(seen[1], seen[2])
    assert.are_not.equal(seen[3], seen[4])
    for i = 3, 9 do
      assert.is_true(seen[i] == seen[1] or seen[i] == seen[2], "request " .. i .. " reuses a kept table")
    end
  end)

  it("one-shot eip.delete_bandwidth{} deletes and returns the same result table", function()
    local id = emu:create_bandwidth{ size = 2 }
    local res = eip.delete_bandwidth{ endpoint = emu.url, project_id = emu.project_id, token = emu.token,
      bandwidth_id = id, timeout = 5 }
    assert.is_true(res.ok)
    assert.equal(204, res.status)
    assert.equal(id, res.bandwidth_id)
    local err = raised(eip.delete_bandwidth, { endpoint = emu.url, project_id = emu.project_id,
      token = emu.token, bandwidth_id = id })
    assert.equal(404, err.status)
  end)

  it("one-shot eip.delete_bandwidth{} returns its result though the transport's close raises", function()
    local id = emu:create_bandwidth{ size = 2 }
    local real = require("eip.transport").new{}
    local closing = { send = function(_, req) return real:send(req) end, close = function() error("close broke") end }
    local res = eip.delete_bandwidth{ endpoint = emu.url, project_id = emu.project_id, token = emu.token,
      bandwidth_id = id, transport = closing }
    assert.same({ true, 204 }, { res.ok, res.status })
    assert.is_nil(emu:get_bandwidth(id))
    real:close()
  end)

  -- A sleep of a scheduler's (it yields), the call made in a coroutine: on Lua 5.1 the one-shot
  -- form's own pcall (it closes its client) let no yield through, and the retry's backoff raised
  -- "attempt to yield across" out of it, a raw error. The sleep is replaced there, as in a batch.
  it("one-shot eip.delete_bandwidth{} retries with a sleep that yields to a scheduler, on Lua 5.1 too", function()
    local id = emu:create_bandwidth{ size = 2 }
    emu:inject{ method = "DELETE", status = 503, times = 1 }
    local co = coroutine.create(function()
      return eip.delete_bandwidth{ endpoint = emu.url, project_id = emu.project_id, token = emu.token,
        bandwidth_id = id, backoff_base = 0.01, sleep = function() coroutine.yield() end }
    end)
    local ok, res
    repeat ok, res = coroutine.resume(co) until not ok or coroutine.status(co) == "dead"
    assert(ok, tostring(res))
    assert.same({ true, 204, 2 }, { res.ok, res.status, res.attempts })
  end)

  it("eip.new takes its options only: an extra argument changes nothing", function()
    local c = eip.new({ endpoint = emu.url, project_id = emu.project_id, token = emu.token }, "x")
    assert.equal(204, c:delete_bandwidth(emu:create_bandwidth{ size = 2 }).status)
    c:close()
  end)

  it("one-shot form validates bandwidth_id before connecting", function()
    local err = raised(eip.delete_bandwidth, { endpoint = emu.url, project_id = emu.project_id,
      token = emu.token, bandwidth_id = "../x" })
    assert.equal("usage", err.kind)
    assert.equal("bandwidth_id", err.argument)
    assert.equal(0, emu:stats().requests)
    -- A secret of the call's own pasted as the id: refused as the client's method refuses it,
    -- never quoted (the id was once checked before the client knew its secrets).
    local password = "Adm/n2024"
    err = raised(eip.delete_bandwidth, { endpoint = emu.url, auth = emu:iam_auth{ password = password },
      bandwidth_id = password })
    assert.same({ "usage", "bandwidth_id" }, { err.kind, err.argument })
    assert.is_nil(tostring(err):find(password, 1, true), tostring(err))
    assert.equal(0, emu:stats().requests)
  end)
end)

describe("client misuse", function()
  local eip_ = require "eip"
  local raised_ = require("spec.support.assertions").raised

  local function new()
    return eip_.new{ endpoint = "http://127.0.0.1:1", project_id = "p1", token = "token-123456789" }
  end

  it("names the mistake when a method is called with a dot instead of a colon", function()
    local c = new()
    for _, m in ipairs{ "delete_bandwidth", "delete_bandwidths", "show_bandwidth", "list_bandwidths",
                        "remove_eips_from_bandwidth", "drain_and_delete_bandwidth" } do
      local err = raised_(c[m], "bw-1")
      assert.equal("usage", err.kind)
      assert.equal("client", err.argument)
      assert.matches("client:" .. m .. "%(", err.message)
    end
    c:close()
  end)

  it("closes with <close> (Lua 5.4; elsewhere its __close metamethod is called as Lua 5.4 would)", function()
    local scoped
    local function made(c)
      scoped = c
      assert.is_false(c.closed)
    end
    if _VERSION == "Lua 5.4" then
      -- <close> is Lua 5.4 syntax: compiled here only, so that this file loads everywhere.
      assert(load([[
        local new, made = ...
        do
          local c <close> = new()
          made(c)
        end]]))(new, made)
    else
      local c = new()
      made(c)
      getmetatable(c).__close(c, nil)
    end
    assert.is_true(scoped.closed)
    assert.matches("is closed", raised_(function() return scoped:delete_bandwidth("bw-1") end).message)
  end)

  it("refuses calls on a closed client, and closing twice is harmless", function()
    local c = new()
    c:close()
    c:close()
    for _, call in ipairs{
      function() return c:delete_bandwidth("bw-1") end,
      function() return c:delete_bandwidths({ "bw-1" }) end,
      function() return c:show_bandwidth("bw-1") end,
      function() return c:list_bandwidths() end,
    } do
      local err = raised_(call)
      assert.equal("usage", err.kind)
      assert.matches("is closed", err.message)
    end
  end)
end)
