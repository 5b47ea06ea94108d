# coffre - a plain Makefile (STYLE.md section 9).
#
#   make            build build/coffre
#   make run        install deps, build, create demo data once, show how to use it
#   make test       install deps, build, run every suite (unit, ASan/UBSan, e2e)
#   make asan       unit tests under AddressSanitizer + UndefinedBehaviorSanitizer
#   make bench      benchmarks in bench/ (prints tables)
#   make deps       install the Debian packages the build and tests need

PKGS     := libsodium sqlite3 libutf8proc jansson libmicrohttpd
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
MODS     := err log config ids seal keyring store_sqlite records demo pwhash account session api audit http policy
OBJS     := $(MODS:%=$(BUILD)/%.o) $(BUILD)/sql_sqlite.o
SQL      := $(sort $(wildcard sql/sqlite/*.sql))
UNIT     := $(patsubst tests/unit/%.c,%,$(wildcard tests/unit/test_*.c))
BENCHES  := bench_seal bench_import bench_audit

.PHONY: all run test unit asan e2e bench bench-deps deps test-deps clean
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

e2e: $(BUILD)/coffre
	COFFRE_BIN=$(abspath $(BUILD)/coffre) node --test tests/e2e/*.test.mjs

test: test-deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory asan
	@$(MAKE) --no-print-directory e2e

run: deps
	@$(MAKE) --no-print-directory all
	@scripts/run-demo.sh $(BUILD)/coffre $(DATA) $(LISTEN)

$(BUILD)/bench_%: bench/%.c bench/bench.h $(OBJS)
	$(CC) $(CFLAGS) -Wno-missing-prototypes -o $@ $< $(OBJS) $(LDLIBS)

bench: bench-deps all $(BENCHES:%=$(BUILD)/%) $(BUILD)/bench_pwhash_raw
	@for b in $(BENCHES); do $(BUILD)/$$b || exit 1; done
	@bench/login.sh $(BUILD)/coffre
	@bench/http.sh $(BUILD)/coffre

bench-deps:
	@scripts/install-deps.sh bench

clean:
	rm -rf build build-asan
