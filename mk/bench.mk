# Benchmarks. Included by the Makefile (`-include mk/*.mk`).
#
#   make bench          throughput, CPU, memory: bare libcurl floor, delete_bandwidth,
#                       delete_bandwidths at concurrency 1/8/32, LuaSocket; batch vs a 20 ms
#                       server; RSS growth over BENCH_SOAK_N batch deletes (the sequential
#                       path: `make soak`, mk/check.mk). Prints a Markdown table.
#                       Then the HTTPS rows, against a TLS nginx with a CA the run makes (openssl):
#                       a verifying bare-libcurl TLS floor, delete_bandwidth with ca_file,
#                       delete_bandwidths at concurrency 8, LuaSec's ssl.https (BENCH_LUASEC_N
#                       requests, default 200; "not installed" without lua-sec).
#                       BENCH_N (default 20000) requests per row, BENCH_REPS (default 5) runs.
#                       Then the rate rows (bench/rate.lua): batches against the emulator
#                       throttled like the gateway, fixed vs adaptive vs paced vs two nginx
#                       workers sharing a bucket (`make bench-rate` alone). Then lua-eip inside
#                       nginx (bench/openresty.lua) next to nginx's own proxy_pass.
#   make bench-openresty  one nginx worker, loaded by wrk: deletes through lua-eip's cosocket
#                       transport vs proxy_pass sending the same request to the same upstream
#                       with a keep-alive pool (and a bare proxy_pass for reference),
#                       interleaved, medians, the ratio (about 90 s; BENCH_OR_SECONDS,
#                       BENCH_OR_REPS, BENCH_OR_CONNECTIONS, BENCH_OR_THREADS).
#   make bench-openresty-profile  the same nginx rows counted: user-space instructions per
#                       request of the front (one process under callgrind, loaded by wrk) for
#                       lua-eip, the cosocket reference and proxy_pass, median of
#                       BENCH_ORP_STARTS nginx starts (default 3; about 6 minutes).
#   make bench-https    the HTTPS rows alone.
#   make bench-profile  callgrind instruction counts per request of the floor and of
#                       delete_bandwidth with a token and with AK/SK (BENCH_PROFILE_N requests),
#                       the difference per call, the C layers of each Lua path, the token
#                       delete's count against its target (<= 1.3x the floor's), and each Lua
#                       step timed alone (valgrind).

BENCH_N         ?= 20000
BENCH_REPS      ?= 5
BENCH_PROFILE_N ?= 2000
BENCH_FLOOR     := $(BUILD)/bench/floor
BENCH_ENV       := LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="$(CORE_DIR)/?.so;;"
# The load generator of the nginx rows (Debian package wrk).
BENCH_NEED_WRK  := command -v $${BENCH_WRK:-wrk} >/dev/null || { echo "bench: wrk not found (apt-get install wrk)" >&2; exit 1; }

.PHONY: bench bench-https bench-profile bench-rate bench-openresty bench-openresty-profile

$(BENCH_FLOOR): bench/floor.c src/version.h
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) -D_DEFAULT_SOURCE $< -o $@ -lcurl

bench: all luajit $(BENCH_FLOOR)
	@$(BENCH_NEED_WRK)
	@$(BENCH_ENV) BENCH_N=$(BENCH_N) BENCH_REPS=$(BENCH_REPS) BENCH_FLOOR=$(BENCH_FLOOR) $(LUA) bench/run.lua
	@echo
	@$(BENCH_ENV) $(LUA) bench/rate.lua
	@echo
	@$(BENCH_ENV) $(LUA) bench/openresty.lua

# The HTTPS rows alone (about 70 s: LuaSec's 200 requests take most of it).
bench-https: all $(BENCH_FLOOR)
	@$(BENCH_ENV) BENCH_N=$(BENCH_N) BENCH_REPS=$(BENCH_REPS) BENCH_FLOOR=$(BENCH_FLOOR) BENCH_ONLY=https $(LUA) bench/run.lua

# The rate rows alone: batches against the emulator throttled at BENCH_RATE_LIMIT/s (about 45 s).
bench-rate: all luajit
	@$(BENCH_ENV) $(LUA) bench/rate.lua

# Inside nginx: lua-eip's cosocket transport vs proxy_pass, under wrk.
bench-openresty: all luajit
	@$(BENCH_NEED_WRK)
	@$(BENCH_ENV) $(LUA) bench/openresty.lua

# Inside nginx, counted: instructions per request of the front under callgrind (valgrind, wrk).
bench-openresty-profile: all luajit
	@$(BENCH_NEED_WRK)
	@$(BENCH_ENV) $(LUA) bench/openresty_profile.lua

bench-profile: all $(BENCH_FLOOR)
	@$(BENCH_ENV) BENCH_PROFILE_N=$(BENCH_PROFILE_N) BENCH_FLOOR=$(BENCH_FLOOR) $(LUA) bench/profile.lua
