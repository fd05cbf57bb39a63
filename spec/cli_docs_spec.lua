-- The man pages and bash completions of eip and eip-emulator (doc/, installed with the rock):
-- generated from the commands' own help, current, readable by man, and completing what a person
-- types.
local nginx = require "spec.support.nginx"

local q = nginx.shell_quote

describe("man pages and completions", function()
  local docs = dofile("scripts/cli-docs.lua")

  it("are the ones scripts/cli-docs.lua generates from the current help", function()
    for path, text in pairs(docs.files()) do
      assert.equal(text, nginx.read_file(path), path .. " is stale: run scripts/cli-docs.lua write")
    end
  end)

  it("man renders each page without a warning, with every command's help in it", function()
    for _, page in ipairs{ "doc/eip.1", "doc/eip-emulator.1" } do
      local out = nginx.capture("MANWIDTH=80 man --warnings -l " .. q(page) .. " 2>&1")
      assert.is_nil(out:find("warning", 1, true), out)
      assert.matches("SYNOPSIS", out)
    end
    local out = nginx.capture("MANWIDTH=80 man -l doc/eip.1 2>/dev/null")
    for _, needle in ipairs{ "delete-bandwidth [options] ID... | -", "--missing-ok", "--output FORMAT",
        "list-bandwidths", "OS_AUTH_TOKEN", "eip-emulator(1)" } do
      assert.is_truthy(out:find(needle, 1, true), needle)
    end
  end)

  -- What bash completes for the words typed so far (the last one is the word being completed).
  local function complete(file, ...)
    local words = { ... }
    local quoted = {}
    for i, w in ipairs(words) do quoted[i] = q(w) end
    local script = string.format(". %s; COMP_WORDS=(%s); COMP_CWORD=%d; _%s; printf '%%s\\n' \"${COMPREPLY[@]}\"",
      q(file), table.concat(quoted, " "), #words - 1, words[1]:gsub("%-", "_"))
    local out = nginx.capture("bash -c " .. q(script))
    local got = {}
    for w in out:gmatch("%S+") do got[#got + 1] = w end
    table.sort(got)
    return got
  end

  it("bash completes commands, each command's options and the values of --output", function()
    local eip = "doc/eip.bash-completion"
    assert.same({ "delete-bandwidth" }, complete(eip, "eip", "del"))
    assert.same({ "list-bandwidths" }, complete(eip, "eip", "--region", "cn-north-4", "li"))
    assert.same({ "--missing-ok" }, complete(eip, "eip", "delete-bandwidth", "--mis"))
    assert.same({ "--page-size" }, complete(eip, "eip", "list-bandwidths", "--pa"))
    assert.same({}, complete(eip, "eip", "status", "--pa"))
    assert.same({ "json", "table", "text" }, complete(eip, "eip", "list-bandwidths", "--output", ""))
    assert.same({ "bandwidth", "traffic" }, complete(eip, "eip", "--debug", "delete-bandwidth", "--charge-mode", ""))
    assert.same({}, complete(eip, "eip", "delete-bandwidth", "--endpoint", "")) -- a URL: nothing to offer
    assert.same({ "create-bandwidth" }, complete("doc/eip-emulator.bash-completion", "eip-emulator", "cr"))
    assert.same({ "--eips" }, complete("doc/eip-emulator.bash-completion", "eip-emulator", "create-bandwidth", "--ei"))
  end)
end)
