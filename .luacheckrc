std = "lua54"
max_line_length = 120
-- The command runs on Lua 5.1 / LuaJIT too: only what every version has (5.3+ functions
-- such as math.type are used behind a check, marked where they are read).
files["lua/eip/cli"] = { std = "min" }
files["spec"] = { std = "+busted" }
-- The emulator's launcher and command run on every Lua; its server side runs inside nginx.
files["lua/eip/emulator"] = { std = "min" }
files["lua/eip/emulator/server"] = { std = "luajit", globals = { "ngx" } }
