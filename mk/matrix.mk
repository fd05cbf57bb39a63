# matrix.mk - the version matrix. Included by the Makefile (-include mk/*.mk).
#
#   make test-matrix        the whole suite under every interpreter of LUAS (Lua 5.1, 5.2, 5.3,
#                           5.4, LuaJIT), each with its own core (build/<interpreter>/); the
#                           #openresty specs (code inside nginx's LuaJIT) and the C tests once.
#                           Last line: "N passed, N failed" over every leg (scripts/run-matrix).
#                           MATRIX_JOBS legs at once (default 5: all of them).
#   make test LUA=lua5.1    one interpreter, every spec (the Makefile's test target)
#   make cores              build/<interpreter>/eip/core.so for every interpreter of LUAS

.PHONY: test-matrix cores

MATRIX_JOBS ?= 5
CORES := $(foreach l,$(LUAS),$(BUILD)/$(l)/eip/core.so)

cores: $(CORES)

test-matrix: deps-matrix $(CORES) ctest $(OOM_HOST) $(SLOWDNS) $(FAILMALLOC)
	@LUAS="$(LUAS)" MATRIX_JOBS="$(MATRIX_JOBS)" bash scripts/run-matrix $(CTESTS)
