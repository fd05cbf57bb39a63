-- The README's offline session ("Try it offline"), run as a person would: the rock installed
-- into a fresh tree, its paths from `luarocks path`, in a directory outside the checkout, with a
-- clean environment. Each command's output must read as the README shows it, ids, ports,
-- pids, times and the home directory aside.
local nginx = require "spec.support.nginx"
local host = require "spec.support.host"

local q = nginx.shell_quote

-- The session of the README: { { command = "...", expected = "..." }, ... }.
local function readme_session()
  local readme = assert(nginx.read_file("README.md"))
  local block = readme:match("<!%-%- offline session:[^\n]*%-%->\n```console\n(.-)\n```")
  assert(block, "README.md has no offline session block")
  local steps = {}
  for line in (block .. "\n"):gmatch("(.-)\n") do
    local command = line:match("^%$ (.*)$")
    if command then
      steps[#steps + 1] = { command = command, expected = {} }
    else
      local out = assert(steps[#steps], "output before the first command").expected
      out[#out + 1] = line
    end
  end
  for _, step in ipairs(steps) do step.expected = table.concat(step.expected, "\n") end
  return steps
end

-- What may differ from one run to the next, made equal.
local function normalize(text, home)
  text = text:gsub(home:gsub("%p", "%%%0"), "/home/me")
  text = text:gsub("%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x", "UUID")
  text = text:gsub("bandwidth%-%x%x%x%x%x%x%x%x", "bandwidth-HEX")
  text = text:gsub("127%.0%.0%.1:%d+", "127.0.0.1:PORT")
  text = text:gsub("pid %d+", "pid PID")
  text = text:gsub("%d+%.?%d* m?s%f[^%w]", "TIME")
  text = text:gsub("served on %d+ connection", "served on N connection")
  text = text:gsub("[ \t]+", " ")
  return (text:gsub("%s+$", ""))
end

describe("README offline session", function()
  local dir, src

  setup(function()
    dir = nginx.capture("mktemp -d")
    assert(host.execute("mkdir -p " .. q(dir .. "/home/work")))
    -- The session is the README's, for Lua 5.4, whatever Lua runs this spec; built from a copy,
    -- so that nothing is left in the checkout.
    src = host.rock_copy()
    local log, code = host.run("cd " .. q(src) .. " && luarocks make --lua-version=5.4 --deps-mode=none --tree "
      .. q(dir .. "/tree") .. " eip-scm-1.rockspec 2>&1")
    assert(code == 0, log)
  end)

  teardown(function()
    os.execute("env -i PATH=" .. q(dir .. "/tree/bin:/usr/bin:/bin") .. " HOME=" .. q(dir .. "/home")
      .. " sh -c " .. q("eval \"$(luarocks --lua-version=5.4 --tree " .. q(dir .. "/tree") .. " path)\"; "
      .. "eip-emulator stop") .. " >/dev/null 2>&1")
    os.execute("rm -rf " .. q(dir) .. " " .. q(src))
  end)

  it("prints what the README shows, from an installed tree, outside the checkout", function()
    local steps = readme_session()
    assert.is_true(#steps >= 8)
    local script = { "eval \"$(luarocks --lua-version=5.4 --tree " .. q(dir .. "/tree") .. " path)\"",
      "cd " .. q(dir .. "/home/work") }
    for i, step in ipairs(steps) do
      script[#script + 1] = string.format("printf '@@@ %d\\n'", i)
      script[#script + 1] = "{ " .. step.command .. "\n} 2>&1"
    end
    local f = io.popen("env -i PATH=/usr/bin:/bin HOME=" .. q(dir .. "/home") .. " bash -c "
      .. q(table.concat(script, "\n")) .. " 2>&1")
    local out = f:read("*a")
    f:close()
    local got, pos = {}, 1
    while true do
      local _, stop, i = out:find("@@@ (%d+)\n", pos)
      if not stop then break end
      local after = out:find("@@@ %d+\n", stop + 1) or #out + 1
      got[tonumber(i)] = out:sub(stop + 1, after - 1)
      pos = after
    end
    for i, step in ipairs(steps) do
      assert.equal(normalize(step.expected, "/home/me"), normalize(got[i] or "(nothing)", dir .. "/home"),
        "$ " .. step.command)
    end
    -- It ran from the tree: eip-emulator and eip are the installed commands.
    assert.is_nil(out:find(nginx.capture("pwd"), 1, true), "the checkout appears in the output")
  end)

  it("man eip and the bash completion work from the same tree", function()
    local found = nginx.capture("cd /tmp && env -i PATH=" .. q(dir .. "/tree/bin:/usr/bin:/bin") .. " HOME="
      .. q(dir .. "/home") .. " man -w eip eip-emulator 2>&1")
    assert.equal(dir .. "/tree/share/man/man1/eip.1\n" .. dir .. "/tree/share/man/man1/eip-emulator.1", found)
    local completion = dir .. "/tree/share/bash-completion/completions/eip"
    assert.equal(nginx.read_file("doc/eip.bash-completion"), nginx.read_file(completion))
  end)
end)
