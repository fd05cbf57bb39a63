std = "lua54"
max_line_length = 120
files["spec"] = { std = "+busted" }
files["spec/support/emulator"] = { std = "luajit", globals = { "ngx" } }
