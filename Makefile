# lua-eip: build, test, demo.  `make help` lists the targets.
# The interpreter: lua5.1, lua5.2, lua5.3, lua5.4 or luajit (Debian's luajit2, OpenResty's branch).
# Its core is build/<tag>/eip/core.so, the tag being its name (luajit for any LuaJIT).
LUA          ?= lua5.4
LUA_TAG      := $(if $(findstring luajit,$(notdir $(LUA))),luajit,$(notdir $(LUA)))
LUA_VERSION  := $(if $(filter luajit,$(LUA_TAG)),5.1,$(patsubst lua%,%,$(LUA_TAG)))
# Every interpreter of `make test-matrix` (mk/matrix.mk).
LUAS         ?= lua5.1 lua5.2 lua5.3 lua5.4 luajit
LUAJIT_INC   ?= $(shell pkg-config --cflags luajit 2>/dev/null || echo -I/usr/include/luajit-2.1)
# The include flags of an interpreter tag.
lua_inc       = $(if $(filter luajit,$(1)),$(LUAJIT_INC),$(shell pkg-config --cflags $(1) 2>/dev/null || echo -I/usr/include/$(1)))
LUA_INC      ?= $(call lua_inc,$(LUA_TAG))
CC           ?= cc
CFLAGS       ?= -O2 -g
WARN         := -std=c99 -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-missing-prototypes
CPPFLAGS_ALL := -D_DEFAULT_SOURCE -Isrc
# -pthread: http.c runs libcurl's process-wide init under pthread_once.
LIBS         := -lcurl -lssl -lcrypto -pthread
BUILD        := build

CORE_SRC  := src/eip_core.c src/http.c src/multi.c src/status.c src/codes.c src/sign.c src/interrupt.c src/secrets.c src/pin.c src/tcpbytes.c
CORE_HDR  := $(wildcard src/*.h)
CORE_DIR  := $(BUILD)/$(LUA_TAG)
CORE_SO   := $(CORE_DIR)/eip/core.so
CTESTS    := $(patsubst test/c/%.c,$(BUILD)/ctest/%,$(wildcard test/c/test_*.c))

BUSTED    := busted --lua=$(LUA)

# Each interpreter and its headers. LuaJIT is Debian's luajit2 (OpenResty's branch, the LuaJIT
# of libnginx-mod-http-lua); Debian's other package, luajit, would remove libnginx-mod-http-lua.
PKGS_lua5.1 := lua5.1 liblua5.1-0-dev
PKGS_lua5.2 := lua5.2 liblua5.2-dev
PKGS_lua5.3 := lua5.3 liblua5.3-dev
PKGS_lua5.4 := lua5.4 liblua5.4-dev
PKGS_luajit := luajit2 libluajit2-5.1-dev
# lua-cjson, lua-socket and busted's own modules are packaged for every Lua version at once.
# LDoc and its Markdown (make docs; spec/docs_spec.lua checks the reference, so make test too).
DEBIAN_PKGS_DOCS   := lua-ldoc lua-discount
# make bench: LuaSec (what a Lua script would use for https without lua-eip, the HTTPS peer) and
# wrk (the load of the nginx rows).
DEBIAN_PKGS_BENCH  := lua-sec wrk
DEBIAN_PKGS := $(PKGS_lua5.4) $(PKGS_$(LUA_TAG)) lua-cjson lua-busted luarocks libcurl4-openssl-dev libssl-dev \
               nginx libnginx-mod-http-lua lua-resty-core luajit2 libluajit2-5.1-dev lua-socket lua-check \
               pkg-config gcc make procps tmux man-db zsh curl ca-certificates strace locales $(DEBIAN_PKGS_DOCS) \
               $(DEBIAN_PKGS_BENCH)
DEBIAN_PKGS_CHECK  := clang libclang-rt-14-dev valgrind cppcheck
DEBIAN_PKGS_MATRIX := $(foreach l,$(LUAS),$(PKGS_$(l)))

.PHONY: all deps deps-check deps-matrix deps-docs test ctest spec demo lint clean help bench-sign

all: $(CORE_SO)

help:
	@echo "make          build $(CORE_SO)"
	@echo "make deps     install missing Debian packages (root) or print the apt-get line"
	@echo "make test     C tests + busted specs against the bundled EIP emulator (LUA=lua5.1|...|luajit: under that Lua)"
	@echo "make test-matrix   the whole suite under Lua 5.1, 5.2, 5.3, 5.4 and LuaJIT, each with its own core"
	@echo "make demo     start the emulator, create a bandwidth, delete it twice, stop"
	@echo "make openresty-demo   the same through examples/openresty/nginx.conf and curl"
	@echo "make lint     luacheck"
	@echo "make check    lint, cppcheck, specs under ASan/UBSan and valgrind   make soak   100k-call RSS check"
	@echo "make fuzz     libFuzzer targets (FUZZ_SECONDS each)                  make bench  speed vs bare libcurl"
	@echo "make luajit   core for OpenResty   make docs   LDoc reference   make bench-sign   signing cost"

# One core per interpreter, each against its own headers (build/lua5.1, ..., build/luajit). No
# -llua: the Lua symbols come from the host process (the interpreter, or nginx's LuaJIT).
$(BUILD)/%/eip/core.so: $(CORE_SRC) $(CORE_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) $(CPPFLAGS_ALL) $(call lua_inc,$*) -fPIC -shared $(CORE_SRC) -o $@ $(LIBS)

# Installs the missing ones of a package list when root, else prints the apt-get line.
define install_missing
	@missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -z "$$missing" ]; then echo "deps: all Debian packages present"; \
	elif [ "$$(id -u)" = 0 ]; then \
	  echo "deps: installing $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else echo "deps: missing packages; run as root:"; echo "  apt-get update && apt-get install -y $$missing"; exit 1; fi
endef

deps:
	$(call install_missing,$(DEBIAN_PKGS))

# What make check and make fuzz need on top (sanitizer runtimes, libFuzzer, valgrind, cppcheck).
deps-check:
	$(call install_missing,$(DEBIAN_PKGS) $(DEBIAN_PKGS_CHECK))

# Every interpreter of the matrix (make test-matrix).
deps-matrix:
	$(call install_missing,$(DEBIAN_PKGS) $(DEBIAN_PKGS_MATRIX))

# LDoc for make docs alone.
deps-docs:
	$(call install_missing,$(DEBIAN_PKGS_DOCS))

$(BUILD)/ctest/%: test/c/%.c $(CORE_SRC) $(CORE_HDR) test/c/ctest.h test/c/ctest_net.h
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) $(CPPFLAGS_ALL) $(LUA_INC) $< $(filter-out src/eip_core.c,$(CORE_SRC)) -o $@ $(LIBS)

ctest: $(CTESTS)

# Lua 5.4 with the core linked in and an allocator that can refuse memory (spec/oom_spec.lua).
OOM_HOST := $(BUILD)/oom-host
$(OOM_HOST): test/c/oom_host.c $(CORE_SRC) $(CORE_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) $(CPPFLAGS_ALL) $(call lua_inc,lua5.4) $< $(CORE_SRC) -o $@ $(LIBS) \
	  $(shell pkg-config --libs lua5.4 2>/dev/null || echo -llua5.4)

# An LD_PRELOAD getaddrinfo that never answers for *.slow.test (a DNS server gone silent), and
# answers *.late.test late (spec/dns_timeout_spec.lua), without a network, root or a changed
# /etc/resolv.conf.
SLOWDNS := $(BUILD)/slowdns.so
$(SLOWDNS): test/c/slowdns.c
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) -fPIC -shared $< -o $@ -ldl

# An LD_PRELOAD allocator that fails the C core's and libcurl's allocations on demand, loaded
# into a Lua 5.4 child as the module "failmalloc" (spec/oom_core_spec.lua).
FAILMALLOC := $(BUILD)/failmalloc.so
$(FAILMALLOC): test/c/failmalloc.c
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) $(call lua_inc,lua5.4) -fPIC -shared $< -o $@

# Every test that runs is counted: the last line is "N passed, N failed".
# The specs tagged #openresty or #once run in a second busted beside the others (see
# scripts/run-tests): both halves wait most of their time, and the run takes half as long.
SPLIT_TAGS ?= openresty,once

test: deps all ctest $(OOM_HOST) $(SLOWDNS) $(FAILMALLOC)
	@LUA="$(LUA)" BUSTED="$(BUSTED)" SPLIT_TAGS="$(SPLIT_TAGS)" bash scripts/run-tests $(CTESTS)

spec: all $(OOM_HOST) $(SLOWDNS) $(FAILMALLOC)
	$(BUSTED)

demo: deps all
	@LUA="$(LUA)" bash scripts/demo

# What AK/SK signing costs per request (CPU time of the auth step, token vs AK/SK).
bench-sign: all
	@LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="$(CORE_DIR)/?.so;;" $(LUA) bench/sign_cost.lua

lint:
	luacheck lua spec examples bench bin/eip bin/eip-emulator scripts/*.lua

-include mk/*.mk

# Also what `luarocks make` leaves in the checkout (it builds in place): a stale ./eip/core.so
# would be found first through the ./?.so of Lua's default search path.
clean:
	rm -rf $(BUILD)
	rm -f eip/core.so src/*.o
	@rmdir eip 2>/dev/null || true
