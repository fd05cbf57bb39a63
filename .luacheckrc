std = "lua54"
max_line_length = 120
-- The command runs on Lua 5.1 / LuaJIT too: only what every version has (5.3+ functions
-- such as math.type are used behind a check, marked where they are read).
files["lua/eip/cli"] = { std = "min" }
files["spec"] = { std = "+busted" }
files["spec/support/emulator"] = { std = "luajit", globals = { "ngx" } }
