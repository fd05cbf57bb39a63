-- What the `eip` command writes, called directly (lua/eip/cli/json.lua, lua/eip/cli/output.lua):
-- `--json` lines that are valid UTF-8 whatever bytes a server sent, and the list of failures at
-- the end of a batch, which keeps every word within 80 columns. cli_spec runs the command.
local cjson = require "cjson"
local json = require "eip.cli.json"
local output = require "eip.cli.output"
local unpack = table.unpack or unpack -- luacheck: ignore 113 143 (table.unpack: 5.2+; unpack: 5.1, LuaJIT)

-- The well-formed UTF-8 sequences of more than one byte (Unicode table 3-7), as patterns
-- anchored where they are tried.
local WELL_FORMED = {
  "^[\194-\223][\128-\191]",
  "^\224[\160-\191][\128-\191]",
  "^[\225-\236\238\239][\128-\191][\128-\191]",
  "^\237[\128-\159][\128-\191]",
  "^\240[\144-\191][\128-\191][\128-\191]",
  "^[\241-\243][\128-\191][\128-\191][\128-\191]",
  "^\244[\128-\143][\128-\191][\128-\191]",
}

local REPLACEMENT = "\239\191\189" -- U+FFFD

-- `s` with each byte that is no part of a well-formed sequence replaced by U+FFFD, and the
-- number of bytes replaced: what a strict reader should see of `s` in the JSON.
local function replaced(s)
  local out, bad, i = {}, 0, 1
  while i <= #s do
    local size = s:byte(i) < 128 and 1 or nil
    for _, p in ipairs(WELL_FORMED) do
      local from, to = s:find(p, i)
      if from then size = to - from + 1 end
    end
    if size then
      out[#out + 1], i = s:sub(i, i + size - 1), i + size
    else
      out[#out + 1], bad, i = REPLACEMENT, bad + 1, i + 1
    end
  end
  return table.concat(out), bad
end

-- Is `s` valid UTF-8, byte by byte?
local function valid(s)
  local _, bad = replaced(s)
  return bad == 0
end

-- `{ v = s }` encoded, checked valid UTF-8, and what cjson reads of it.
local function through_json(s)
  local line = json.encode{ v = s }
  assert.is_true(valid(line), "not valid UTF-8: " .. line:gsub("[\128-\255]", function(c)
    return string.format("\\x%02X", c:byte())
  end))
  return line, cjson.decode(line).v
end

describe("--json strings", function()
  it("leave well-formed UTF-8 as it is: accents, CJK, 4-byte emoji, the edges of the ranges", function()
    for _, s in ipairs{ "café", "共享带宽", "bw 🚀 ok", "\194\160 \223\191 \224\160\128 \237\159\191 "
        .. "\238\128\128 \239\191\191 \240\144\128\128 \244\143\191\191" } do
      local line, back = through_json(s)
      assert.equal('{"v":"' .. s .. '"}', line)
      assert.equal(s, back)
    end
  end)

  -- U+009B (CSI) starts a terminal's escape sequence as ESC [ does: escaped as ESC is.
  it("escape the C1 controls (U+0080-U+009F) as the C0 ones: the same string decoded", function()
    local s = "a\27[2Jb\194\155" .. "31m \194\128\194\159 \194\160"
    local line, back = through_json(s)
    assert.equal('{"v":"a\\u001b[2Jb\\u009b31m \\u0080\\u009f \194\160"}', line)
    assert.equal(s, back)
  end)

  -- A bidi override (U+202E) makes a terminal show "safe<RLO>gnp.exe" as "safeexe.png", and the
  -- table and text formats blank such characters as control characters: --json escapes them, a
  -- 4-byte one (a tag, U+E0001) as its surrogate pair; the same string decoded.
  it("escape the invisible characters (bidi overrides, zero-width ones, tags) too", function()
    local s = "safe\226\128\174gnp.exe \226\128\139|\226\129\166x\239\187\191 \243\160\128\129 \194\173"
    local line, back = through_json(s)
    assert.equal('{"v":"safe\\u202egnp.exe \\u200b|\\u2066x\\ufeff \\udb40\\udc01 \\u00ad"}', line)
    assert.equal(s, back)
  end)

  it("write each byte of a server's text that is not UTF-8 as \\ufffd, so that strict readers take it", function()
    local line, back = through_json("caf\233 \255\254")
    assert.equal('{"v":"caf\\ufffd \\ufffd\\ufffd"}', line)
    assert.equal("caf" .. REPLACEMENT .. " " .. REPLACEMENT .. REPLACEMENT, back)
  end)

  it("replace every byte of a sequence that is not well-formed, one \\ufffd each", function()
    local cases = {
      { "\128", 1, "a stray continuation byte" }, { "a\191b", 1, "a continuation byte between letters" },
      { "\230\151", 2, "a sequence cut at the end" }, { "\230\151x", 2, "a sequence cut by a letter" },
      { "\240\159\154", 3, "an emoji cut short" }, { "\192\128", 2, "an overlong NUL" },
      { "\193\191", 2, "an overlong DEL" }, { "\224\128\128", 3, "an overlong 3-byte form" },
      { "\240\128\128\128", 4, "an overlong 4-byte form" }, { "\237\160\128", 3, "a high surrogate" },
      { "\237\191\191", 3, "a low surrogate" }, { "\244\144\128\128", 4, "U+110000" },
      { "\245\128\128\128", 4, "F5" }, { "\248", 1, "F8" }, { "\254\255", 2, "FE FF" },
    }
    for _, c in ipairs(cases) do
      local s, bad, what = c[1], c[2], c[3]
      local line, back = through_json("<" .. s .. ">")
      local _, n = line:gsub("\\ufffd", "")
      assert.equal(bad, n, what)
      assert.equal("<" .. s:gsub("[\128-\255]", REPLACEMENT) .. ">", back, what)
    end
  end)

  it("are valid UTF-8 in keys, in error lines and in result lines too", function()
    local key = json.encode{ ["n\255me"] = 1 }
    assert.equal('{"n\\ufffdme":1}', key)
    local e = output.error_json({ kind = "http", status = 500, message = "bad \192\175 bytes" }, 1)
    assert.equal("bad " .. REPLACEMENT .. REPLACEMENT .. " bytes", cjson.decode(e).message)
    local r = output.result_line({ id = "x", outcome = "failed", could_have_acted = false,
      err = { kind = "http", status = 409, code = "VPC.\255", message = "\237\160\128" } }, "json")
    assert.is_true(valid(r))
    assert.equal("VPC." .. REPLACEMENT, cjson.decode(r).code)
  end)

  it("are valid UTF-8 for any bytes: random strings read back as their well-formed part", function()
    math.randomseed(20240611)
    -- Bytes from where UTF-8 goes wrong more often than at random: lead and continuation bytes.
    local pool = { 0, 9, 34, 65, 92, 127, 128, 143, 144, 159, 160, 191, 192, 193, 194, 223, 224, 225, 237,
      238, 239, 240, 241, 244, 245, 255 }
    for _ = 1, 2000 do
      local bytes = {}
      for j = 1, math.random(0, 12) do
        bytes[j] = math.random(2) == 1 and pool[math.random(#pool)] or math.random(0, 255)
      end
      local s = string.char(unpack(bytes))
      local _, back = through_json(s)
      assert.equal((replaced(s)), back)
    end
  end)
end)

-- The command's streams scrub the credentials of the environment and the profile file from what
-- they write (eip.cli.sink); scrubbed on the JSON text, a piece of a secret holding a backslash
-- ended inside its escape, and the line was no JSON ("Invalid \\escape"). The encoder scrubs
-- each string before it escapes it.
describe("--json strings holding a registered secret", function()
  it("are redacted before they are escaped: the line stays JSON", function()
    local validate = require "eip.validate"
    local secrets = { "Passw0rd\\1\"x" } -- (a proxy's password with a backslash and a quote)
    validate.register_secrets(secrets)
    for _, value in ipairs{ "bw-" .. secrets[1], secrets[1], "a " .. secrets[1]:sub(1, 9) .. " b" } do
      local line = json.encode{ name = value }
      local ok, back = pcall(cjson.decode, line)
      assert.is_true(ok, line)
      assert.is_nil(back.name:find("Passw0rd", 1, true), line)
      -- (and what the command's stdout then makes of it: the same line, still JSON)
      assert.equal(line, validate.scrub_pieces(line))
    end
    secrets[1] = nil -- (the registry holds its tables weakly; nothing of it stays registered)
  end)
end)

describe("list of failures", function()
  local UUID = "0c64a268-64c7-46a5-9bc3-5bc9e3a4eaff"

  local function failed(id, err, could_have_acted)
    return { id = id, outcome = "failed", err = err, could_have_acted = could_have_acted == true }
  end

  -- The words of a text, in order.
  local function words(s)
    local out = {}
    for w in s:gmatch("%S+") do out[#out + 1] = w end
    return out
  end

  local lines = require("spec.support.assertions").lines

  -- The columns a line of these specs takes on a terminal: a character each, two for a CJK one
  -- (their UTF-8 starts with E3-E9), none for U+0301 (the one combining mark used here).
  local function columns(l)
    local _, more = l:gsub("[\128-\191]", "")
    local _, wide = l:gsub("[\227-\233]", "")
    local _, marks = l:gsub("\204\129", "")
    return #l - more + wide - marks
  end

  it("lays a short entry out as the result lines: id, status and code, attempts; the message below", function()
    local text = output.failures{ failed(UUID, { kind = "http", status = 409, code = "VPC.0304",
      reason = "Conflict", attempts = 1, message = "deleteBandwidth error. The shared bandwidth still has "
      .. "publicips, remove them first." }) }
    assert.equal(table.concat({
      "Failed (1):",
      "  " .. UUID .. "  409 VPC.0304  1 attempt",
      "    Conflict: deleteBandwidth error. The shared bandwidth still has publicips,",
      "    remove them first.",
      "" }, "\n"), text)
  end)

  it("keeps a lost answer's notes whole, on the line below the id, within 80 columns", function()
    local text = output.failures{ failed(UUID, { kind = "http", status = 404, code = "VPC.0306",
      reason = "Not Found", attempts = 2, lost_answer = true, message = "No Eip bandwidth exist with id." }) }
    assert.equal(table.concat({
      "Failed (1):",
      "  " .. UUID .. "  404 VPC.0306",
      "    an earlier answer was lost, 2 attempts",
      "    Not Found: No Eip bandwidth exist with id.",
      "" }, "\n"), text)
  end)

  it("breaks notes that do not fit after a comma, the first ones staying on the id's line", function()
    local id = string.rep("b", 52) -- not an id the cloud gives, but the command lists what it was given
    local text = output.failures{ failed(id, { kind = "http", status = 503, attempts = 3, stage = "remove",
      moved = { "eip-1", "eip-2" }, not_moved = { "eip-3" }, uncertain = { "eip-4" },
      message = "Service Unavailable" }, true) }
    assert.equal(table.concat({
      "Failed (1):",
      "  " .. id .. "  503  2/4 moved,",
      "    3 attempts",
      "    FAILED? some EIPs may have moved: check with eip show-bandwidth",
      "    Service Unavailable",
      "" }, "\n"), text)
  end)

  it("keeps every word of any entry, each line within 80 columns but for an id longer than that", function()
    local long_id = string.rep("c", 90)
    local entries = {
      failed(UUID, { kind = "transport", reason = "timeout", attempts = 3, lost_answer = true,
        message = "the server did not answer in 30 s" }, true),
      failed(long_id, { kind = "http", status = 404, code = "VPC.0306", attempts = 2, lost_answer = true,
        reason = "Not Found", message = "No Eip bandwidth exist with id." }),
      failed(UUID, { kind = "http", status = 500, code = "VPC.9999", attempts = 3, lost_answer = true,
        reason = "Internal Server Error", message = string.rep("a long message from the server ", 8) }),
    }
    local text = output.failures(entries)
    for _, l in ipairs(lines(text)) do
      assert.is_true(#l <= 80 or l == "  " .. long_id, #l .. " columns: " .. l)
    end
    local expected = { "Failed", "(3):" }
    for _, o in ipairs(entries) do
      local e = o.err
      local what = e.kind == "http" and (e.status .. " " .. e.code) or e.reason
      local head = string.format("%s %s an earlier answer was lost, %d attempts", o.id, what, e.attempts)
      if o.could_have_acted then
        head = head .. " FAILED? may have been deleted: check with eip show-bandwidth before a retry"
      end
      for _, w in ipairs(words(head .. " " .. (e.kind == "http" and e.reason .. ": " or "") .. e.message)) do
        expected[#expected + 1] = w
      end
    end
    assert.same(expected, words(text))
  end)

  -- A Chinese message has no spaces: a word longer than a line is cut, and a cut inside a
  -- character showed it as two replacement characters, on two lines. The lines are 80 columns
  -- of the terminal (a Chinese character takes two), not 80 bytes: they were cut at 54 columns.
  it("cuts a word longer than a line between characters, never inside one, at 80 columns", function()
    local message = string.rep("带宽对象不存在", 6) .. " " .. string.rep("é", 60)
    local o = failed(UUID, { kind = "http", status = 409, code = "VPC.0304", reason = "Conflict", attempts = 1,
      message = message })
    for _, text in ipairs{ output.failures{ o }, table.concat(output.detail_lines(o), "\n") } do
      local pieces, widest = {}, 0
      for _, l in ipairs(lines(text)) do
        assert.is_true(valid(l), "not valid UTF-8: " .. l)
        assert.is_true(columns(l) <= 80, columns(l) .. " columns: " .. l)
        widest = math.max(widest, columns(l))
        pieces[#pieces + 1] = l:match("^%s*(.-)$")
      end
      assert.is_true(widest >= 79, "the widest line is " .. widest .. " columns:\n" .. text)
      assert.truthy(table.concat(pieces):gsub(" ", ""):find(message:gsub(" ", ""), 1, true), text)
    end
  end)

  -- The columns of a result line and of a failure's entry are counted on the terminal: a
  -- multibyte code shifted the notes and the time after it.
  it("keeps the columns of a result line and an entry for multibyte text", function()
    local o = failed(UUID, { kind = "http", status = 409, code = "带宽", attempts = 2, elapsed = 0.0003,
      message = "x" })
    local line = output.result_line(o, "text")
    assert.equal(61, columns(line:match("^(.-)2 attempts")), line)
    assert.equal(80, columns(line), line)
    assert.matches("0%.3 ms$", line)
    local entry = lines(output.failures{ o })[2]
    assert.equal(54, columns(entry:match("^(.-)2 attempts")), entry)
  end)

  it("counts a combining mark as no column and a wide character as two", function()
    local args = require "eip.cli.args"
    assert.same({ 3, 1, 8, 2 }, { args.width("abc"), args.width("e\204\129"), args.width("共享带宽"),
      args.width("\255x") })
    assert.equal("[冻结    ] [    十]", args.aligned("[%-8s] [%6s]", "冻结", "十"))
    -- a cut keeps whole characters, the marks after the last one, and at least one character
    assert.same({ 6, 3, 4 }, { args.width_cut("共享带宽", 5), args.width_cut("共享带宽", 1),
      args.width_cut("ae\204\129b", 2) })
  end)
end)

-- A 401 whose credentials could not be renewed: the API's answer, and what IAM or the metadata
-- service said as its cause, in every form the command prints (it once showed the 401 alone,
-- with the gateway's advice: the real fault appeared nowhere).
describe("a failure's cause", function()
  it("is in the message line, the failures list and the JSON of a 401 whose refresh failed", function()
    local cause = require("eip.errors").credentials("credentials not renewed: the ECS metadata service at "
      .. "http://169.254.169.254 gave no new temporary keys (it answered 500)", { kind = "http", status = 500 })
    local o = { id = "bw-1", outcome = "failed", could_have_acted = false,
      err = { kind = "http", status = 401, reason = "Unauthorized", code = "APIGW.0301",
        message = "verify aksk signature fail", attempts = 1, cause = cause } }
    local detail = table.concat(output.detail_lines(o), " "):gsub("%s+", " ")
    assert.matches("cause: credentials not renewed: the ECS metadata service", detail, 1, true)
    assert.matches("(it answered 500)", output.failures({ o }):gsub("\n%s*", " "), 1, true)
    assert.equal(cause.message, cjson.decode(output.result_line(o, "json")).cause)
    assert.equal(cause.message, cjson.decode(output.error_json(o.err, 1)).cause)
    -- No cause, or one that is no error of the library's (a caller's raised value): nothing added.
    o.err.cause = nil
    assert.is_nil(table.concat(output.detail_lines(o), " "):find("cause", 1, true))
    o.err.cause = "disk full"
    assert.is_nil(cjson.decode(output.result_line(o, "json")).cause)
  end)
end)

-- What the text form tells of a failure, --json tells too: why an id was not sent (the word after
-- NOT SENT: `stopped`), and that a 404 VPC.0306 is in doubt (its body went on after its JSON
-- value, or was cut: `trailing`, `truncated`), which is why --missing-ok did not take it.
describe("--json of a failure", function()
  it("says why an id was not sent, and a body in doubt", function()
    local errors = require "eip.errors"
    local op = { method = "DELETE", path = "/v2.0/p/bandwidths/bw-2", resource = "bw-2" }
    local o = { id = "bw-2", outcome = "not_sent", could_have_acted = false,
      err = errors.not_sent(op, "unanswered", nil) }
    assert.matches("NOT SENT +bw%-2 +unanswered", output.result_line(o, "text"))
    assert.equal("unanswered", cjson.decode(output.result_line(o, "json")).stopped)
    for _, field in ipairs{ "trailing", "truncated" } do
      o = { id = "bw-1", outcome = "failed", could_have_acted = false,
        err = { kind = "http", status = 404, reason = "Not Found", code = "VPC.0306", attempts = 1, [field] = true } }
      assert.is_true(cjson.decode(output.result_line(o, "json"))[field], field)
      assert.is_true(cjson.decode(output.error_json(o.err, 1))[field], field)
    end
    assert.is_nil(cjson.decode(output.result_line(o, "json")).trailing)
    -- (and the text form's message line, as tostring: a 404 VPC.0306 that --missing-ok did not take)
    o.err.trailing, o.err.truncated, o.err.message = true, nil, "No Eip bandwidth exist with id."
    assert.matches("Not Found: No Eip bandwidth exist with id. [more after its JSON]",
      output.failures({ o }):gsub("\n%s*", " "), 1, true)
  end)
end)

-- The API's numbers, as cjson decodes them (floats), come out as they went in: a size of 16
-- digits whole, not 1.2345678901235e+15; a quota that needs 17 digits with all of them.
describe("--json numbers", function()
  it("keep every digit of the API's numbers, and write short ones short", function()
    local decoded = cjson.decode('{"size":1234567890123456,"rule_quota":0.30000000000000004,"a":0.1,'
      .. '"b":-20,"c":1e300,"d":9007199254740993}')
    local back = cjson.decode(json.encode(decoded))
    for k, v in pairs(decoded) do assert.equal(v, back[k], k) end
    local line = json.encode{ size = decoded.size, a = decoded.a, b = decoded.b }
    assert.equal('{"a":0.1,"b":-20,"size":1234567890123456}', line)
    assert.equal('{"v":null}', json.encode{ v = 0 / 0 })
  end)
end)
