# check.mk - `make check`: sanitizers, valgrind, luacheck and cppcheck; `make soak`.
# Included by the Makefile (-include mk/*.mk), so CORE_SRC, CORE_SO, BUILD, LUA... come from there.
#
#   make check            lint + check-cppcheck + check-asan + check-valgrind
#   make check-asan       C tests and the whole busted suite against an ASan+UBSan eip/core.so
#   make check-valgrind   memcheck over the C tests and the busted suite (normal build)
#   make check-cppcheck   static analysis of src/
#   make soak             100,000 delete_bandwidth calls, RSS growth (bench/soak.lua)

.PHONY: check check-asan check-valgrind check-cppcheck soak

# gcc on purpose: its ASan runtime is a shared library that can be preloaded into the
# uninstrumented lua5.4 (clang's default static runtime cannot). gcc's "undefined" leaves out
# float-cast-overflow (a double out of an integer type's range converted: what a Lua number
# such as 1e300 or NaN would cause), so it is named on its own.
SAN_CC     ?= gcc
SAN_FLAGS  := -fsanitize=address,undefined,float-cast-overflow -fno-omit-frame-pointer \
              -fno-sanitize-recover=undefined,float-cast-overflow
SAN_CFLAGS := -O1 -g
ASAN_DIR   := $(BUILD)/asan
ASAN_SO    := $(ASAN_DIR)/$(LUA_TAG)/eip/core.so
ASAN_HOOK  := $(ASAN_DIR)/check_preload.so
ASAN_CTESTS := $(patsubst test/c/%.c,$(ASAN_DIR)/ctest/%,$(wildcard test/c/test_*.c))

# busted re-executes itself under --lua through a shell, which would lose LD_PRELOAD (see
# mk/check_preload.c), so lua5.4 runs busted's script directly (--ignore-lua: no re-exec).
BUSTED_SCRIPT := $(shell command -v busted 2>/dev/null || echo /usr/bin/busted)

# Colon-separated: scripts/run-tests splits $BUSTED on spaces. The ASan runtime must be first.
SAN_PRELOAD = $(shell $(SAN_CC) -print-file-name=libasan.so):$(shell $(SAN_CC) -print-file-name=libubsan.so):$(CURDIR)/$(ASAN_HOOK)
# The fast (frame-pointer) unwinder stays on although it cuts stacks at the first frame
# without frame pointers (lua5.4, libcurl, OpenSSL): our own frames, the ones that matter, are
# always complete, while the slow unwinder made each TLS handshake (OpenSSL parses the CA
# bundle with thousands of mallocs) take over 2 s, so timeout-sensitive specs failed.
SAN_ENV = ASAN_OPTIONS=detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1 \
          LSAN_OPTIONS=suppressions=$(CURDIR)/mk/lsan.supp:print_suppressions=0 \
          UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
ASAN_BUSTED = env $(SAN_ENV) LD_PRELOAD=$(SAN_PRELOAD) $(LUA) $(BUSTED_SCRIPT) --ignore-lua \
              --cpath=$(ASAN_DIR)/$(LUA_TAG)/?.so

# --trace-children=no: nginx and the shell helpers the specs start are not ours to check.
# --keep-debuginfo=yes: lua_close unloads eip/core.so (and libcurl with it) before the leak
# check, and without it the stacks of such leaks would be bare addresses.
VALGRIND := valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
            --show-leak-kinds=definite --suppressions=mk/valgrind.supp --trace-children=no \
            --num-callers=30 --keep-debuginfo=yes
# The whole suite takes about 25 s under memcheck on 2 cores (3 s natively), so all of it
# runs; narrow it with e.g. `make check-valgrind VALGRIND_SPECS=spec/delete_bandwidth_spec.lua`.
VALGRIND_SPECS ?=

check: deps-check lint check-cppcheck fuzz-regress check-asan check-valgrind
	@echo "check: all passed"

$(ASAN_SO): $(CORE_SRC) $(CORE_HDR)
	@mkdir -p $(dir $@)
	$(SAN_CC) $(WARN) $(SAN_CFLAGS) $(SAN_FLAGS) $(CPPFLAGS_ALL) $(LUA_INC) -fPIC -shared $(CORE_SRC) -o $@ $(LIBS)

$(ASAN_HOOK): mk/check_preload.c
	@mkdir -p $(dir $@)
	$(SAN_CC) $(WARN) -O1 -D_DEFAULT_SOURCE -fPIC -shared $< -o $@

$(ASAN_DIR)/ctest/%: test/c/%.c $(CORE_SRC) $(CORE_HDR) test/c/ctest.h test/c/ctest_net.h
	@mkdir -p $(dir $@)
	$(SAN_CC) $(WARN) $(SAN_CFLAGS) $(SAN_FLAGS) $(CPPFLAGS_ALL) $(LUA_INC) $< $(filter-out src/eip_core.c,$(CORE_SRC)) -o $@ $(LIBS)

# The C tests link the runtimes themselves; only lua5.4 needs the preload. The sanitizers'
# own findings fail the run through the exit status, which scripts/run-tests counts. `all`: the
# processes the specs start (bin/eip, the demo, ...) load the plain core, not this one.
check-asan: all $(ASAN_SO) $(ASAN_HOOK) $(ASAN_CTESTS) $(OOM_HOST) $(SLOWDNS) $(FAILMALLOC)
	@echo "check-asan: C tests and busted specs with -fsanitize=address,undefined"
	@env $(SAN_ENV) LUA="$(LUA)" BUSTED="$(ASAN_BUSTED)" bash scripts/run-tests $(ASAN_CTESTS)

check-valgrind: all ctest $(OOM_HOST) $(SLOWDNS) $(FAILMALLOC)
	@echo "check-valgrind: memcheck over the C tests and busted $(or $(VALGRIND_SPECS),(whole suite))"
	@set -e; for t in $(CTESTS); do $(VALGRIND) $$t; done
	@LUA="$(LUA)" BUSTED="$(VALGRIND) $(LUA) $(BUSTED_SCRIPT) --ignore-lua $(VALGRIND_SPECS)" \
	  bash scripts/run-tests

# style included: it is clean today, and its "scope can be reduced" / "can be const" notes
# are cheap to honour. System headers (Lua, libcurl, OpenSSL) are not analysed.
check-cppcheck:
	cppcheck -q --error-exitcode=1 --std=c99 --enable=warning,style,performance,portability \
	  --inline-suppr --suppress=missingIncludeSystem -Isrc src/ fuzz/ mk/check_preload.c test/c/slowdns.c test/c/failmalloc.c

soak: all
	$(LUA) bench/soak.lua
