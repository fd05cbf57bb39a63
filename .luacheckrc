std = "min"
max_line_length = 120
-- The library, the command, the examples and the specs run on every Lua of `make test-matrix`
-- (5.1, 5.2, 5.3, 5.4, LuaJIT): "min" is what all of them have. A function of some versions
-- only (table.unpack, math.type, ...) is read behind a check, and marked where it is read.
files["spec"] = { std = "min+busted" }
files["spec/fixtures/luarocks-luajit.lua"] = { globals = { "lua_interpreter", "variables" } } -- a LuaRocks config
-- The emulator's launcher and command run on every Lua; its server side, and the OpenResty
-- app, run inside nginx, on its LuaJIT.
files["lua/eip/emulator/server"] = { std = "luajit", globals = { "ngx" } }
-- The helper processes of the specs (spec/support/child.lua starts them) always run on lua5.4;
-- their parent side, loaded by the specs, keeps to "min".
files["spec/support/proxy.lua"] = { std = "lua54+busted" }
files["spec/support/dns.lua"] = { std = "lua54+busted" }
-- The benchmark's scripts run on lua5.4 (`make bench` and its parts).
files["bench"] = { std = "lua54" }
