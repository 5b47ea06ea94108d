# coffre - a plain Makefile (STYLE.md section 9).
#
#   make            build build/coffre
#   make run        install deps, build, create demo data once, show how to use it
#   make test       install deps, build, run every suite (unit and e2e, each also under ASan/UBSan; fuzz corpus, 10 s per fuzzer, lint)
#   make lint       cppcheck and clang-tidy over src/ (.clang-tidy)
#   make asan       unit tests under AddressSanitizer + UndefinedBehaviorSanitizer
#   make bench      benchmarks in bench/ (prints tables)
#   make deps       install the Debian packages the build and tests need

PKGS     := libsodium sqlite3 libutf8proc jansson libmicrohttpd liboath libqrencode libfido2 libcbor libseccomp
CC       ?= cc
BUILD    ?= build
DATA     ?= demo-data
LISTEN   ?= 127.0.0.1:8080

WARN     := -Wall -Wextra -Wshadow -Wformat=2 -Wstrict-prototypes \
            -Wmissing-prototypes -Wvla -Werror
HARDEN   := -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIE \
            -fno-strict-overflow -fstack-clash-protection
OPT      ?= -O2 -g
CFLAGS   += $(OPT) -std=c11 $(WARN) $(HARDEN) -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L \
            -Isrc -I$(BUILD) $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDFLAGS  += -pie -Wl,-z,relro,-z,now -Wl,-z,noexecstack
LDLIBS   += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lzxcvbn -lm -pthread

ifdef SANITIZE
CFLAGS   += -fsanitize=$(SANITIZE) -fno-sanitize-recover=all -fno-omit-frame-pointer
LDFLAGS  += -fsanitize=$(SANITIZE)
endif

# Modules of the library every program links (main.c is the CLI only).
MODS     := err log config ids seal keyring store_sqlite records demo pwhash account session api api_signin api_mfa api_admin api_records api_pages audit http policy guard mfa web sandbox scope
# guard5: alert rows, address blocks and the webhook sender
MODS     += alerts
OBJS     := $(MODS:%=$(BUILD)/%.o) $(BUILD)/sql_sqlite.o $(BUILD)/web_files.o
# web/: templates, app.css, app.js and the catalogues, embedded in the binary
WEB      := $(sort $(wildcard web/*.html web/*.css web/*.js web/i18n/*.txt))
SQL      := $(sort $(wildcard sql/sqlite/*.sql))
UNIT     := $(patsubst tests/unit/%.c,%,$(wildcard tests/unit/test_*.c))
BENCHES  := bench_seal bench_import bench_audit

.PHONY: all run test unit asan e2e e2e-asan bench bench-deps deps test-deps clean lint
all: $(BUILD)/coffre

deps:
	@scripts/install-deps.sh build

test-deps:
	@scripts/install-deps.sh test

$(BUILD):
	@mkdir -p $(BUILD)

$(BUILD)/sql_sqlite.c: $(SQL) scripts/embed-sql.sh | $(BUILD)
	scripts/embed-sql.sh $@ $(SQL)

$(BUILD)/%.o: src/%.c src/*.h | $(BUILD)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/sql_sqlite.o: $(BUILD)/sql_sqlite.c
	$(CC) $(CFLAGS) -Wno-missing-prototypes -c -o $@ $<

$(BUILD)/web_files.c: $(WEB) scripts/embed-web.sh | $(BUILD)
	scripts/embed-web.sh $@ $(WEB)

$(BUILD)/web_files.o: $(BUILD)/web_files.c
	$(CC) $(CFLAGS) -Wno-missing-prototypes -c -o $@ $<

$(BUILD)/coffre: $(BUILD)/main.o $(OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Unit tests: one cmocka program per module (tests/unit/test_<mod>.c).
$(BUILD)/test_%: tests/unit/test_%.c $(OBJS) tests/unit/*.h
	$(CC) $(CFLAGS) -Wno-missing-prototypes -o $@ $< $(filter-out $(BUILD)/$*.o,$(OBJS)) \
	    $(LDLIBS) $(shell pkg-config --libs cmocka)

unit: $(UNIT:%=$(BUILD)/%)
	@fail=0; for t in $(UNIT:%=$(BUILD)/%); do $$t || fail=1; done; exit $$fail

asan:
	@$(MAKE) --no-print-directory BUILD=build-asan SANITIZE=address,undefined OPT="-O1 -g" unit

# playwright-core for the browser tests (tests/e2e/browser.mjs), pinned by
# package-lock.json; it drives Debian's chromium and downloads nothing else.
node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

e2e: $(BUILD)/coffre node_modules/.package-lock.json
	COFFRE_BIN=$(abspath $(BUILD)/coffre) node --test tests/e2e/*.test.mjs

# The end-to-end suite once more against an ASan+UBSan build of coffre (and
# every CLI command it runs): any leak or undefined behaviour fails a test.
e2e-asan: node_modules/.package-lock.json
	@$(MAKE) --no-print-directory BUILD=build-asan SANITIZE=address,undefined OPT="-O1 -g" build-asan/coffre
	COFFRE_SANITIZED=1 COFFRE_BIN=$(abspath build-asan/coffre) node --test tests/e2e/*.test.mjs

test: test-deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory asan
	@$(MAKE) --no-print-directory e2e
	@$(MAKE) --no-print-directory e2e-asan
	@$(MAKE) --no-print-directory fuzz-replay
	@$(MAKE) --no-print-directory fuzz-short
	@$(MAKE) --no-print-directory lint

# Static analysis (docs/testing.md): cppcheck, then clang-tidy with the
# checks and the reasons of .clang-tidy; any finding fails.
LINT_DEFS := -std=c11 -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L -Isrc -I$(BUILD)
lint: $(BUILD)/sql_sqlite.c
	cppcheck --quiet --std=c11 --enable=warning,portability --inline-suppr --error-exitcode=1 \
	    -D__GNUC__ -D_DEFAULT_SOURCE -Isrc --suppress=missingIncludeSystem src/*.c
	@fail=0; for f in src/*.c; do \
	    clang-tidy --quiet $$f -- $(LINT_DEFS) $(shell pkg-config --cflags $(PKGS) 2>/dev/null) \
	        2>/dev/null || fail=1; \
	done; [ $$fail -eq 0 ] && echo "lint: cppcheck and clang-tidy clean over src/"

run: deps
	@$(MAKE) --no-print-directory all
	@scripts/run-demo.sh $(BUILD)/coffre $(DATA) $(LISTEN)

$(BUILD)/bench_%: bench/%.c bench/bench.h $(OBJS)
	$(CC) $(CFLAGS) -Wno-missing-prototypes -o $@ $< $(OBJS) $(LDLIBS)

bench: bench-deps all $(BENCHES:%=$(BUILD)/%) $(BUILD)/bench_pwhash_raw $(BUILD)/bench_pbkdf2_raw $(BUILD)/bench_scope_gen
	@for b in $(BENCHES); do $(BUILD)/$$b || exit 1; done
	@bench/login.sh $(BUILD)/coffre
	@bench/http.sh $(BUILD)/coffre
	@bench/read.sh $(BUILD)/coffre
	@bench/scope.sh $(BUILD)/coffre $(BUILD)/bench_scope_gen
	@bench/compare $(BUILD)/coffre

bench-deps:
	@scripts/install-deps.sh bench
	@scripts/install-deps.sh peer

# Glewlwyd's hashing bound for bench/compare (nettle, as Glewlwyd uses it).
$(BUILD)/bench_pbkdf2_raw: bench/peers/glewlwyd/pbkdf2_raw.c | $(BUILD)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< -lnettle -pthread

clean:
	rm -rf build build-asan

# ---- fuzzers (fuzz/README.md) ------------------------------------------------
#
#   make fuzz [FUZZ_SECONDS=N]   libFuzzer (clang): run every target N s (60),
#                                then merge what it found, minimised, into
#                                fuzz/corpus/<target>/; crashes: fuzz/crashes/
#   make fuzz-replay             gcc, the CFLAGS above: every saved corpus file
#                                through every target (part of `make test`)
#
# Targets link the modules from an archive, so each pulls in only what it
# calls; one that #includes "../src/<mod>.c" (to reach its statics) already
# defines that module's symbols, so the archive's copy stays out.

FUZZ         := $(patsubst fuzz/%.c,%,$(wildcard fuzz/fuzz_*.c))
FUZZ_SECONDS ?= 60
FUZZ_CC      ?= clang
FUZZ_DIR     := $(BUILD)/fuzz
# clang warns where gcc does not: log.c's vsnprintf of a va_list format
FUZZ_CFLAGS  := -O1 -g -std=c11 $(WARN) -Wno-format-nonliteral \
                -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L -Isrc -I$(BUILD) \
                $(shell pkg-config --cflags $(PKGS) 2>/dev/null) \
                -fsanitize=address,undefined -fno-sanitize-recover=all \
                -fno-omit-frame-pointer
FUZZ_OBJS    := $(MODS:%=$(FUZZ_DIR)/clang/%.o) $(FUZZ_DIR)/clang/sql_sqlite.o $(FUZZ_DIR)/clang/web_files.o
# FUZZ_STRICT=1: the targets also fail on the known bugs of fuzz/README.md,
# and fuzz-replay replays fuzz/crashes/ too (binaries built apart)
FUZZ_DEFS    := $(if $(FUZZ_STRICT),-DFUZZ_STRICT)
FUZZ_SFX     := $(if $(FUZZ_STRICT),-strict)

.PHONY: fuzz fuzz-replay fuzz-check-cc fuzz-short

$(FUZZ_DIR)/libcoffre.a: $(OBJS)
	@mkdir -p $(@D)
	@rm -f $@
	ar rcs $@ $^

$(FUZZ_DIR)/replay$(FUZZ_SFX)/%: fuzz/%.c fuzz/replay.c fuzz/*.h src/*.h $(FUZZ_DIR)/libcoffre.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(FUZZ_DEFS) $(LDFLAGS) -o $@ $< fuzz/replay.c $(FUZZ_DIR)/libcoffre.a $(LDLIBS)

fuzz-replay: $(FUZZ:%=$(FUZZ_DIR)/replay$(FUZZ_SFX)/%)
	@pass=0; fail=0; for t in $(FUZZ); do \
	    if $(FUZZ_DIR)/replay$(FUZZ_SFX)/$$t fuzz/corpus/$${t#fuzz_} \
	        $(if $(FUZZ_STRICT),fuzz/crashes/$${t#fuzz_}); then pass=$$((pass + 1)); \
	    else fail=$$((fail + 1)); fi; \
	done; echo "$$pass passed, $$fail failed"; [ $$fail -eq 0 ]

fuzz-check-cc:
	@printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n);\nint LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' \
	    | $(FUZZ_CC) -x c -fsanitize=fuzzer -o /dev/null - >/dev/null 2>&1 || { \
	    echo "make fuzz: '$(FUZZ_CC)' with libFuzzer is missing; on Debian: apt-get install clang" >&2; \
	    echo "make fuzz: (make fuzz-replay needs no clang: it replays the saved corpus with $(CC))" >&2; \
	    exit 1; }

$(FUZZ_DIR)/clang/%.o: src/%.c src/*.h
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_DIR)/clang/sql_sqlite.o: $(BUILD)/sql_sqlite.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Wno-missing-prototypes -c -o $@ $<

$(FUZZ_DIR)/clang/web_files.o: $(BUILD)/web_files.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Wno-missing-prototypes -c -o $@ $<

$(FUZZ_DIR)/clang/libcoffre.a: $(FUZZ_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(FUZZ_DIR)/libfuzzer$(FUZZ_SFX)/fuzz_%: fuzz/fuzz_%.c fuzz/*.h src/*.h $(FUZZ_DIR)/clang/libcoffre.a
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_DEFS) -fsanitize=fuzzer -o $@ $< \
	    $(FUZZ_DIR)/clang/libcoffre.a $(LDLIBS)

fuzz:
	@scripts/install-deps.sh fuzz
	@$(MAKE) --no-print-directory fuzz-check-cc
	@$(MAKE) --no-print-directory $(FUZZ:%=$(FUZZ_DIR)/libfuzzer$(FUZZ_SFX)/%)
	@sh fuzz/run.sh $(FUZZ_DIR)/libfuzzer$(FUZZ_SFX) $(FUZZ_SECONDS) $(FUZZ)

# make test: each target FUZZ_SHORT_SECONDS (10) with libFuzzer when clang
# has it, new inputs to scratch space (the saved corpus is not touched);
# a crash fails.  Without clang it says so and passes (fuzz-replay ran).
FUZZ_SHORT_SECONDS ?= 10
fuzz-short:
	@if $(MAKE) --no-print-directory -s fuzz-check-cc 2>/dev/null; then \
	    $(MAKE) --no-print-directory $(FUZZ:%=$(FUZZ_DIR)/libfuzzer/%) >/dev/null && \
	    sh fuzz/short.sh $(FUZZ_DIR)/libfuzzer $(FUZZ_SHORT_SECONDS) $(FUZZ); \
	else echo "fuzz-short: skipped: no clang with libFuzzer (make fuzz-replay replayed the corpus)"; fi
