-- The man pages and bash completions of eip and eip-emulator (doc/, installed with the rock):
-- generated from the commands' own help, current, readable by man, and completing what a person
-- types.
local nginx = require "spec.support.nginx"

local q = nginx.shell_quote

describe("man pages and completions #once", function()
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

  -- What a shell completes for the words typed so far (the last one is the word being
  -- completed). bash: the function's COMPREPLY. zsh: the same file through bashcompinit, whose
  -- compgen offers every word and leaves matching the typed prefix to zsh's compadd, done here
  -- as compadd does it.
  local function complete(shell, file, ...)
    local words = { ... }
    local quoted = {}
    for i, w in ipairs(words) do quoted[i] = q(w) end
    local call = string.format(". %s; COMP_WORDS=(%s); COMP_CWORD=%d; _%s; printf '%%s\\n' \"${COMPREPLY[@]}\"",
      q(file), table.concat(quoted, " "), #words - 1, words[1]:gsub("%-", "_"))
    if shell == "zsh" then
      call = "autoload -U +X compinit && compinit -u -D; autoload -U +X bashcompinit && bashcompinit; " .. call
    end
    local out = nginx.capture(shell .. " -c " .. q(call) .. " 2>&1")
    local typed, got = words[#words], {}
    for w in out:gmatch("%S+") do
      if shell == "bash" or w:sub(1, #typed) == typed then got[#got + 1] = w end
    end
    table.sort(got)
    return got
  end

  for _, shell in ipairs{ "bash", "zsh" } do
    it(shell .. " completes commands, each command's options and the values of --output", function()
      local eip = "doc/eip.bash-completion"
      assert.same({ "delete-bandwidth" }, complete(shell, eip, "eip", "del"))
      assert.same({ "list-bandwidths" }, complete(shell, eip, "eip", "--region", "cn-north-4", "li"))
      assert.same({ "--missing-ok" }, complete(shell, eip, "eip", "delete-bandwidth", "--mis"))
      assert.same({ "--page-size" }, complete(shell, eip, "eip", "list-bandwidths", "--pa"))
      assert.same({}, complete(shell, eip, "eip", "status", "--pa"))
      assert.same({ "json", "table", "text" }, complete(shell, eip, "eip", "list-bandwidths", "--output", ""))
      assert.same({ "bandwidth", "traffic" },
        complete(shell, eip, "eip", "--debug", "delete-bandwidth", "--charge-mode", ""))
      assert.same({}, complete(shell, eip, "eip", "delete-bandwidth", "--endpoint", "")) -- a URL: nothing to offer
      -- --name=value, which bash splits at the '=' (once taken for the command, its value)
      assert.same({ "--shared" }, complete(shell, eip, "eip", "--output", "=", "json", "list-bandwidths", "--sh"))
      assert.same({ "json" }, complete(shell, eip, "eip", "list-bandwidths", "--output", "=", "js"))
      assert.same({ "--version" }, complete(shell, eip, "eip", "--ver"))
      local emulator = "doc/eip-emulator.bash-completion"
      assert.same({ "create-bandwidth" }, complete(shell, emulator, "eip-emulator", "cr"))
      assert.same({ "--eips" }, complete(shell, emulator, "eip-emulator", "create-bandwidth", "--ei"))
      if shell == "bash" then
        -- a file or directory named by an option: the shell's own names (zsh's compgen globs its
        -- completion's PREFIX, which only a real completion sets)
        assert.same({ "doc/eip.bash-completion" }, complete(shell, eip, "eip", "delete-bandwidth", "--ca-file",
          "doc/eip.bash"))
        assert.same({ "spec/support" }, complete(shell, emulator, "eip-emulator", "start", "--dir", "spec/supp"))
        -- --name= with nothing after it: bash's word being completed is the '=' (zsh keeps
        -- --output= one word)
        assert.same({ "json", "table", "text" }, complete(shell, eip, "eip", "list-bandwidths", "--output", "="))
        assert.same({ "bandwidth", "traffic" },
          complete(shell, eip, "eip", "delete-bandwidth", "--charge-mode", "="))
      end
    end)
  end
end)
