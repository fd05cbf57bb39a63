# OpenResty / nginx-lua support: the C core built for LuaJIT, and the specs that run lua-eip
# inside a private nginx. Included by the Makefile (`-include mk/*.mk`).
#
#   make luajit           build/luajit/eip/core.so (same sources, LuaJIT 2.1 headers)
#   make test-openresty   only spec/openresty_spec.lua (the full `make test` runs it too)

LUAJIT_INC ?= $(shell pkg-config --cflags luajit 2>/dev/null || echo -I/usr/include/luajit-2.1)
LUAJIT_SO  := $(BUILD)/luajit/eip/core.so

.PHONY: luajit test-openresty

luajit: $(LUAJIT_SO)

# No -lluajit: the module's Lua symbols come from the host process (nginx's LuaJIT), exactly as
# a Lua 5.4 module takes them from the lua5.4 interpreter.
$(LUAJIT_SO): $(CORE_SRC) $(CORE_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) $(CPPFLAGS_ALL) $(LUAJIT_INC) -fPIC -shared $(CORE_SRC) -o $@ $(LIBS)

# The full test run (and `make spec`) needs the LuaJIT build as well: spec/openresty_spec.lua
# loads it into nginx. (Equivalent to adding `luajit` to the prerequisites of `test` and `spec`.)
test: luajit
spec: luajit

test-openresty: all luajit
	$(BUSTED) spec/openresty_spec.lua
