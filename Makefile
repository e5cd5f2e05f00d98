# hortus -- build, run, test, bench.
#
#   make run     install missing Debian packages, build, serve on :8080 (LMDB in ./hortus-data)
#   make test    the whole suite: C units (prove), HTTP black-box (pytest), conformance
#   make bench   performance side by side (see bench/README.md)
#   make regen   regenerate src/fhir/gen/ from the official R4 definitions
#
# Two builds share the sources: build/rel (optimised, what `make run` serves) and
# build/san (AddressSanitizer + UBSan, what every test runs against). assert() checks the
# invariants the code relies on in build/san only: the release build has -DNDEBUG.

CC      ?= cc
PYTHON  ?= /usr/bin/python3
PORT    ?= 8080

WARN     := -Wall -Wextra -Werror -Wno-missing-field-initializers
CPPFLAGS := -Isrc -D_GNU_SOURCE -MMD -MP
CFLAGS   := -std=c11 -g -pthread $(WARN)
RELFLAGS := -O2 -DNDEBUG
SANFLAGS := -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDLIBS   := -llmdb -lmicrohttpd -lcrypto -lpcre2-8 -lz -lzstd -lcurl -lpthread -lm

SRCS  := $(shell find src -name '*.c' ! -path src/main.c | sort)
ROBJS := $(SRCS:%.c=build/rel/%.o)
SOBJS := $(SRCS:%.c=build/san/%.o)
UNITS := $(patsubst tests/unit/%.c,build/san/tests/unit/%,$(wildcard tests/unit/*.c))

.PHONY: all run test unit http conformance fuzz-replay bench regen deps clean fmt
all: build/hortus

build/rel/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(RELFLAGS) -c $< -o $@

build/san/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(SANFLAGS) -c $< -o $@

build/librel.a: $(ROBJS)
	@rm -f $@
	ar rcs $@ $^

build/libsan.a: $(SOBJS)
	@rm -f $@
	ar rcs $@ $^

build/hortus: build/rel/src/main.o build/librel.a
	$(CC) $(CFLAGS) $(RELFLAGS) -o $@ $^ $(LDLIBS)

build/hortus-san: build/san/src/main.o build/libsan.a
	$(CC) $(CFLAGS) $(SANFLAGS) -o $@ $^ $(LDLIBS)

build/san/tests/unit/%: tests/unit/%.c build/libsan.a
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -Itests/unit $(CFLAGS) $(SANFLAGS) -o $@ $< build/libsan.a $(LDLIBS)

# In-process benchmarks (bench/NAME.c linked against the optimised library).
build/bench/%: bench/%.c build/librel.a
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(RELFLAGS) -o $@ $< build/librel.a $(LDLIBS)

deps:
	@sh tools/deps.sh build

run: deps
	@$(MAKE) --no-print-directory build/hortus
	./build/hortus serve --port $(PORT)

test:
	@sh tools/deps.sh test
	@$(MAKE) --no-print-directory build/hortus-san $(UNITS)
	@$(MAKE) --no-print-directory unit http conformance fuzz-replay

unit: $(UNITS)
	prove --exec '' $(UNITS)

http: build/hortus-san
	HORTUS_BIN=$(CURDIR)/build/hortus-san $(PYTHON) -m pytest -q -p no:cacheprovider tests/http

conformance: build/hortus-san
	sh tests/conformance.sh $(CURDIR)/build/hortus-san

# Replay every fuzz corpus (seeds and past crash reproducers) through its libFuzzer
# driver once: a regression test, not a fuzzing run (tests/fuzz/README.md).
fuzz-replay:
	LDLIBS='$(LDLIBS)' sh tests/fuzz/build.sh
	@for d in tests/fuzz/corpus/*/; do n=$$(basename $$d); \
	  echo "fuzz-replay: $$n ($$(ls $$d | wc -l) inputs)"; \
	  build/fuzz/$${n}_fuzz $$d* >build/fuzz/$$n.replay.log 2>&1 || { tail -30 build/fuzz/$$n.replay.log; exit 1; }; \
	done

bench:
	@sh tools/deps.sh bench
	@$(MAKE) --no-print-directory build/hortus
	sh bench/run.sh

regen:
	@sh tools/deps.sh regen
	$(PYTHON) tools/gen_model.py
	$(PYTHON) tools/gen_fold.py

fmt:
	clang-format -i $$(find src tests -name '*.[ch]' ! -path 'src/fhir/gen/*')

clean:
	rm -rf build tests/oracle/node_modules

-include $(ROBJS:.o=.d) $(SOBJS:.o=.d) build/rel/src/main.d build/san/src/main.d
