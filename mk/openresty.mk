# OpenResty / nginx-lua support: the C core built for LuaJIT, and the specs that run lua-eip
# inside a private nginx. Included by the Makefile (`-include mk/*.mk`).
#
#   make luajit           build/luajit/eip/core.so (same sources, LuaJIT 2.1 headers)
#   make test-openresty   only spec/openresty_spec.lua (the full `make test` runs it too)
#   make openresty-demo   examples/openresty/nginx.conf against the emulator: a delete with curl

LUAJIT_SO  := $(BUILD)/luajit/eip/core.so

.PHONY: luajit test-openresty openresty-demo

luajit: $(LUAJIT_SO)

# The Makefile's per-interpreter rule builds it (LuaJIT 2.1 headers). The same file serves nginx's
# LuaJIT and the standalone luajit of `make test LUA=luajit`: both are Debian's luajit2.

# The full test run (and `make spec`) needs the LuaJIT build as well: spec/openresty_spec.lua
# loads it into nginx. (Equivalent to adding `luajit` to the prerequisites of `test` and `spec`.)
# So do `make check`'s two runs of the whole suite, from a fresh clone too.
test: luajit
spec: luajit
check-asan: luajit
check-valgrind: luajit

test-openresty: all luajit
	$(BUSTED) spec/openresty_spec.lua

# The example as its comments say to run it, modules from this checkout (scripts/openresty-demo).
openresty-demo: deps all luajit
	@LUA="$(LUA)" bash scripts/openresty-demo
