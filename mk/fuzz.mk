# fuzz.mk - libFuzzer targets for the C functions that parse or encode untrusted bytes.
# Included by the Makefile (-include mk/*.mk).
#
#   make fuzz [FUZZ_SECONDS=30] [FUZZ_TARGETS="sign status codes"]
#                      each target for FUZZ_SECONDS, starting from its committed seeds
#   make fuzz-regress  replay the committed seeds only (a few seconds; no new inputs)
#   make fuzz-cmin     merge the committed seeds and what `make fuzz` found into
#                      build/fuzz/cmin/<target>: a minimal set to review before committing
#
# Committed seeds live in fuzz/corpus/<target>/ and are only read; inputs that libFuzzer
# generates go to build/fuzz/corpus/<target>/ (git-ignored), crashes to build/fuzz/artifacts/.

.PHONY: fuzz fuzz-build fuzz-regress fuzz-cmin

FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 30
FUZZ_TARGETS ?= header_line chunked status codes percent_encode canonical_uri sign secrets
FUZZ_DIR     := $(BUILD)/fuzz
FUZZ_FLAGS   := -std=c99 -Wall -Wextra -g -O1 -fno-omit-frame-pointer \
                -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ_BINS     = $(addprefix $(FUZZ_DIR)/fuzz_,$(FUZZ_TARGETS))

# Each target links only the source it exercises (and that source's library).
FUZZ_LINK_header_line    := src/http.c src/interrupt.c src/tcpbytes.c -lcurl -lssl -lcrypto -pthread
FUZZ_LINK_chunked        := $(FUZZ_LINK_header_line)
FUZZ_LINK_status         := src/status.c
FUZZ_LINK_codes          := src/codes.c
FUZZ_LINK_percent_encode := src/sign.c -lcrypto
FUZZ_LINK_canonical_uri  := src/sign.c -lcrypto
FUZZ_LINK_sign           := src/sign.c -lcrypto
FUZZ_LINK_secrets        := src/secrets.c

# Longest input tried. header_line goes past EIP_HTTP_TOKEN_MAX (100 KiB, X-Subject-Token) so
# that a token at the bound and one beyond it (dropped, never cut) are reached too; codes goes
# past 10 KB (a code string that long must be looked up as safely as a short one); the others
# need far less; chunked goes past its largest body cap (64 KiB).
FUZZ_MAXLEN_header_line    := 110000
FUZZ_MAXLEN_chunked        := 70000
FUZZ_MAXLEN_status         := 16
FUZZ_MAXLEN_codes          := 10300
FUZZ_MAXLEN_percent_encode := 4096
FUZZ_MAXLEN_canonical_uri  := 4096
FUZZ_MAXLEN_sign           := 8192
FUZZ_MAXLEN_secrets        := 4096

$(FUZZ_DIR)/fuzz_%: fuzz/fuzz_%.c fuzz/fuzz_input.h $(CORE_SRC) $(CORE_HDR)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) $(CPPFLAGS_ALL) $< $(FUZZ_LINK_$*) -o $@

fuzz-build: $(FUZZ_BINS)

# -max_total_time bounds each run; a crash or a broken invariant stops make with the input
# saved under build/fuzz/artifacts/. UBSan findings abort too (-fno-sanitize-recover).
# One rule per target (so each gets its own -max_len); `make -j2 fuzz` runs two at a time.
fuzz: deps-check $(addprefix fuzz-run-,$(FUZZ_TARGETS))
	@echo "fuzz: $(FUZZ_TARGETS): no finding in $(FUZZ_SECONDS) s each"

fuzz-run-%: $(FUZZ_DIR)/fuzz_%
	@mkdir -p $(FUZZ_DIR)/corpus/$* $(FUZZ_DIR)/artifacts
	@echo "fuzz: $* for $(FUZZ_SECONDS) s"
	@$< -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 -max_len=$(FUZZ_MAXLEN_$*) \
	    -print_final_stats=1 -artifact_prefix=$(FUZZ_DIR)/artifacts/$*- \
	    $(FUZZ_DIR)/corpus/$* fuzz/corpus/$* 2>$(FUZZ_DIR)/$*.log || \
	  { tail -n 40 $(FUZZ_DIR)/$*.log; echo "fuzz: $* FAILED (log: $(FUZZ_DIR)/$*.log)"; exit 1; }
	@echo "fuzz: $*: $$(grep -E '^#[0-9]+[[:space:]]+DONE' $(FUZZ_DIR)/$*.log | tail -n 1)"

fuzz-regress: $(FUZZ_BINS)
	@set -e; mkdir -p $(FUZZ_DIR)/artifacts; for t in $(FUZZ_TARGETS); do \
	  $(FUZZ_DIR)/fuzz_$$t -runs=0 -artifact_prefix=$(FUZZ_DIR)/artifacts/$$t- fuzz/corpus/$$t 2>$(FUZZ_DIR)/$$t.regress.log || \
	    { tail -n 40 $(FUZZ_DIR)/$$t.regress.log; echo "fuzz-regress: $$t FAILED"; exit 1; }; \
	  echo "fuzz-regress: $$t: $$(ls fuzz/corpus/$$t | wc -l) seeds ok"; \
	done

fuzz-cmin: $(FUZZ_BINS)
	@set -e; for t in $(FUZZ_TARGETS); do \
	  rm -rf $(FUZZ_DIR)/cmin/$$t; mkdir -p $(FUZZ_DIR)/cmin/$$t $(FUZZ_DIR)/corpus/$$t; \
	  $(FUZZ_DIR)/fuzz_$$t -merge=1 $(FUZZ_DIR)/cmin/$$t \
	    fuzz/corpus/$$t $(FUZZ_DIR)/corpus/$$t 2>/dev/null; \
	  echo "fuzz-cmin: $$t: $$(ls $(FUZZ_DIR)/cmin/$$t | wc -l) inputs in $(FUZZ_DIR)/cmin/$$t"; \
	done
