# lua-eip: build, test, demo.  `make help` lists the targets.
LUA          ?= lua5.4
LUA_VERSION  ?= 5.4
LUA_INC      ?= $(shell pkg-config --cflags lua$(LUA_VERSION) 2>/dev/null || echo -I/usr/include/lua$(LUA_VERSION))
CC           ?= cc
CFLAGS       ?= -O2 -g
WARN         := -std=c99 -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-missing-prototypes
CPPFLAGS_ALL := -D_DEFAULT_SOURCE -Isrc
# -pthread: http.c runs libcurl's process-wide init under pthread_once.
LIBS         := -lcurl -lcrypto -pthread
BUILD        := build

CORE_SRC  := src/eip_core.c src/http.c src/multi.c src/status.c src/codes.c src/sign.c src/interrupt.c
CORE_HDR  := $(wildcard src/*.h)
CORE_SO   := $(BUILD)/lua$(LUA_VERSION)/eip/core.so
CTESTS    := $(patsubst test/c/%.c,$(BUILD)/ctest/%,$(wildcard test/c/test_*.c))

BUSTED    := busted --lua=$(LUA)

DEBIAN_PKGS := lua5.4 liblua5.4-dev lua-cjson lua-busted luarocks libcurl4-openssl-dev libssl-dev \
               nginx libnginx-mod-http-lua lua-resty-core libluajit2-5.1-dev lua-socket lua-check \
               pkg-config gcc make procps tmux man-db
DEBIAN_PKGS_CHECK := clang libclang-rt-14-dev valgrind cppcheck

.PHONY: all deps deps-check test ctest spec demo lint clean help bench-sign

all: $(CORE_SO)

help:
	@echo "make          build $(CORE_SO)"
	@echo "make deps     install missing Debian packages (root) or print the apt-get line"
	@echo "make test     C tests + busted specs against the bundled EIP emulator"
	@echo "make demo     start the emulator, create a bandwidth, delete it twice, stop"
	@echo "make lint     luacheck"
	@echo "make check    lint, cppcheck, specs under ASan/UBSan and valgrind   make soak   100k-call RSS check"
	@echo "make fuzz     libFuzzer targets (FUZZ_SECONDS each)                  make bench  speed vs bare libcurl"
	@echo "make luajit   core for OpenResty   make docs   LDoc reference   make bench-sign   signing cost"

$(CORE_SO): $(CORE_SRC) $(CORE_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) $(CPPFLAGS_ALL) $(LUA_INC) -fPIC -shared $(CORE_SRC) -o $@ $(LIBS)

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

$(BUILD)/ctest/%: test/c/%.c $(CORE_SRC) $(CORE_HDR) test/c/ctest.h
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) $(CPPFLAGS_ALL) $(LUA_INC) $< $(filter-out src/eip_core.c,$(CORE_SRC)) -o $@ $(LIBS)

ctest: $(CTESTS)

# Every test that runs is counted: the last line is "N passed, N failed".
test: deps all ctest
	@LUA="$(LUA)" BUSTED="$(BUSTED)" bash scripts/run-tests $(CTESTS)

spec: all
	$(BUSTED)

demo: deps all
	@LUA="$(LUA)" bash scripts/demo

# What AK/SK signing costs per request (CPU time of the auth step, token vs AK/SK).
bench-sign: all
	@LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="$(BUILD)/lua$(LUA_VERSION)/?.so;;" $(LUA) bench/sign_cost.lua

lint:
	luacheck lua spec examples bin/eip bin/eip-emulator scripts/*.lua

-include mk/*.mk

clean:
	rm -rf $(BUILD)
