# Coney: one Makefile for the broker, its tests and its tools.
#   make run    install missing packages, build, start the broker on defaults
#   make test   install, build, unit tests, integration tests, then the
#               same tests against an AddressSanitizer+UBSan build
#   make asan   build the sanitizer binaries under build/asan
#   make soak   an hour of mixed AMQP and MQTT traffic with churn: nothing
#               lost, fds and RSS back at their baseline (docs/operations.md);
#               make soak-crash: the long kill -9 crash test
#   make valgrind  a short mixed soak with the broker under valgrind memcheck
#   make bench  Coney against RabbitMQ (AMQP) and Mosquitto (MQTT) side by side
#   make fuzz   each libFuzzer target for FUZZ_SECONDS (docs/fuzzing.md)

CC      ?= gcc
PKGS    := openssl lmdb libpcre2-8 libmicrohttpd jansson
# libev ships no .pc file on Debian, so it is linked by name.
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -lssl -lcrypto -llmdb -lpcre2-8 -lmicrohttpd -ljansson) -lev
CHECK_CFLAGS := $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS   := $(shell pkg-config --libs check 2>/dev/null)

WARN    := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter
# OPT and SAN are the knobs (make asan sets them); CFLAGS stays the user's.
OPT     ?= -O2 -g
SAN     ?=
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) -I. $(PKG_CFLAGS) -MMD -MP $(OPT) $(SAN) \
             -DCONEY_VERSION='"$(VERSION)"' $(CFLAGS)
ALL_LDFLAGS = $(SAN) $(LDFLAGS)
LDLIBS  += $(PKG_LIBS) -lm -pthread

BUILD   ?= build
VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)

# The MQTT codec (packet, connect, publish, subscribe, topic) knows nothing
# of the broker and is unit-tested with the core; the rest of plugins/mqtt
# maps sessions onto the broker and links into coney only.
MQTT_CODEC := $(addprefix plugins/mqtt/,packet.c connect.c publish.c subscribe.c topic.c)
CORE_SRC   := $(wildcard protocol/*.c routing/*.c storage/*.c) $(wildcard $(MQTT_CODEC))
BROKER_SRC := $(wildcard broker/*.c) \
              $(filter-out $(MQTT_CODEC),$(wildcard plugins/mqtt/*.c)) \
              $(wildcard plugins/management/*.c)
# The web UI's files are .incbin'd into the binary by plugins/management/*.S.
BROKER_ASM := $(wildcard plugins/management/*.S)
UNIT_SRC   := $(wildcard tests/unit/*.c)
PERF_SRC   := $(wildcard tools/perf/*.c) tools/common/histogram.c tools/common/pacer.c
MQTT_PERF_SRC := $(wildcard tools/mqtt-perf/*.c) tools/common/histogram.c tools/common/pacer.c
CTL_SRC    := $(wildcard tools/ctl/*.c)

CORE_OBJ   := $(CORE_SRC:%.c=$(BUILD)/%.o)
BROKER_OBJ := $(BROKER_SRC:%.c=$(BUILD)/%.o) $(BROKER_ASM:%.S=$(BUILD)/%.o)
UNIT_OBJ   := $(UNIT_SRC:%.c=$(BUILD)/%.o)
PERF_OBJ   := $(PERF_SRC:%.c=$(BUILD)/%.o)
MQTT_PERF_OBJ := $(MQTT_PERF_SRC:%.c=$(BUILD)/%.o)
CTL_OBJ    := $(CTL_SRC:%.c=$(BUILD)/%.o)

PYTHON  := /usr/bin/python3
PORT    ?= 5672

.PHONY: all run test unit integration asan asan-test soak soak-crash valgrind bench deps clean \
        fuzz fuzz-smoke fuzz-build fuzz-corpus

all: $(BUILD)/coney $(BUILD)/coney-ctl $(BUILD)/unit-tests $(if $(PERF_SRC),$(BUILD)/coney-perf) \
     $(if $(MQTT_PERF_SRC),$(BUILD)/coney-mqtt-perf)

$(BUILD)/coney: $(BROKER_OBJ) $(CORE_OBJ)
	$(CC) -o $@ $^ $(ALL_LDFLAGS) $(LDLIBS)

$(BUILD)/unit-tests: $(UNIT_OBJ) $(CORE_OBJ)
	$(CC) -o $@ $^ $(ALL_LDFLAGS) $(CHECK_LIBS) $(LDLIBS)

# rabbitmqctl's counterpart: a client of the management HTTP API, over the
# broker's Unix socket or TCP.
$(BUILD)/coney-ctl: $(CTL_OBJ)
	$(CC) -o $@ $^ $(ALL_LDFLAGS) -ljansson -lcrypto

# The load tool speaks AMQP through rabbitmq-c and shares no code with
# the broker it measures.
$(BUILD)/coney-perf: $(PERF_OBJ)
	$(CC) -o $@ $^ $(ALL_LDFLAGS) -lrabbitmq -pthread -lm

# Its MQTT sibling, on libmosquitto, for the same reason.
$(BUILD)/coney-mqtt-perf: $(MQTT_PERF_OBJ)
	$(CC) -o $@ $^ $(ALL_LDFLAGS) -lmosquitto -pthread -lm

$(BUILD)/tests/unit/%.o: tests/unit/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) -c -o $@ $<

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/%.o: %.S
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

# -MMD sees #include, not .incbin: rebuild when a UI file changes.
$(BUILD)/plugins/management/ui_assets.o: $(wildcard plugins/management/ui/*)

deps:
	@scripts/deps.sh

run: deps
	@$(MAKE) --no-print-directory $(BUILD)/coney
	$(BUILD)/coney --port $(PORT) --data-dir ./data

unit: $(BUILD)/unit-tests
	$(BUILD)/unit-tests

integration: $(BUILD)/coney
	CONEY_BIN=$(abspath $(BUILD)/coney) $(PYTHON) -m pytest -q tests/integration

asan:
	@$(MAKE) --no-print-directory BUILD=build/asan OPT="-O1 -g -fno-omit-frame-pointer" \
	  SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined" all

asan-test: asan
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 build/asan/unit-tests
	CONEY_BIN=$(abspath build/asan/coney) CONEY_SANITIZED=1 $(PYTHON) -m pytest -q tests/integration

test: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory integration
	@$(MAKE) --no-print-directory asan-test
	@$(MAKE) --no-print-directory fuzz-smoke

# Coney against RabbitMQ, side by side, same scenarios, medians.
bench: deps
	@$(MAKE) --no-print-directory $(BUILD)/coney $(BUILD)/coney-perf $(BUILD)/coney-mqtt-perf
	scripts/deps.sh bench
	BUILD=$(BUILD) scripts/bench.sh

# The soak (docs/operations.md, "Soak"): CONEY_SOAK_SECONDS (default 3600)
# of mixed traffic against one broker (tests/soak/soak.py); SOAK_KIND=crash,
# or make soak-crash, runs the long crash test instead: kill -9 cycles
# under confirmed publishing.
SOAK_KIND ?= mixed
soak: deps $(BUILD)/coney
	CONEY_BIN=$(abspath $(BUILD)/coney) SOAK_KIND=$(SOAK_KIND) scripts/soak.sh

soak-crash: deps $(BUILD)/coney
	CONEY_BIN=$(abspath $(BUILD)/coney) SOAK_KIND=crash scripts/soak.sh

# Memcheck on a 30 s mixed soak: a debug build without sanitizers (they
# and valgrind do not mix) in build/valgrind; any memory error or
# definitely lost block fails.
valgrind: deps
	@scripts/deps.sh valgrind
	@$(MAKE) --no-print-directory BUILD=build/valgrind OPT="-Og -g -fno-omit-frame-pointer" \
	  build/valgrind/coney
	CONEY_BIN=$(abspath build/valgrind/coney) SOAK_KIND=valgrind scripts/soak.sh

# ---- fuzzing (docs/fuzzing.md) -------------------------------------------------
# libFuzzer targets built by clang with ASan and UBSan into build/fuzz,
# objects apart from the gcc build. `make fuzz` runs each for FUZZ_SECONDS
# on its corpus (new inputs go to build/fuzz/corpus, the repo's seeds stay
# as they are); `make fuzz-smoke` replays the seeds and tests/fuzz/regress
# and fuzzes each a few seconds, for `make test`.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 4
FUZZ_BUILD   := build/fuzz
FUZZ_TARGETS := amqp_frame amqp_table mqtt http config record
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS   = -std=c11 -D_GNU_SOURCE -DCONEY_FUZZ $(WARN) -I. $(PKG_CFLAGS) -MMD -MP \
                -O1 -g -fno-omit-frame-pointer $(FUZZ_SAN) -fsanitize=fuzzer-no-link \
                -DCONEY_VERSION='"$(VERSION)"'
# What each target links: the codec and storage objects, or the broker's
# (less main.c, libFuzzer has the main) for the config parser and the HTTP layer.
FUZZ_CORE    := $(CORE_SRC:%.c=$(FUZZ_BUILD)/%.o)
FUZZ_BROKER  := $(filter-out $(FUZZ_BUILD)/broker/main.o,$(BROKER_SRC:%.c=$(FUZZ_BUILD)/%.o)) \
                $(BROKER_ASM:%.S=$(FUZZ_BUILD)/%.o) $(FUZZ_CORE)
FUZZ_DEPS_amqp_frame := $(FUZZ_CORE)
FUZZ_DEPS_amqp_table := $(FUZZ_CORE)
FUZZ_DEPS_mqtt       := $(FUZZ_CORE)
FUZZ_DEPS_record     := $(FUZZ_CORE)
FUZZ_DEPS_config     := $(FUZZ_BUILD)/broker/config.o $(FUZZ_BUILD)/broker/log.o
FUZZ_DEPS_http       := $(FUZZ_BROKER)
FUZZ_BINS    := $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)

fuzz-build: $(FUZZ_BINS)

# the objects are kept between runs, not treated as intermediate
.PRECIOUS: $(FUZZ_BUILD)/%.o

.SECONDEXPANSION:
$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/tests/fuzz/fuzz_%.o $$(FUZZ_DEPS_$$*)
	$(FUZZ_CC) -o $@ $^ $(FUZZ_SAN) -fsanitize=fuzzer $(LDLIBS)

$(FUZZ_BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

$(FUZZ_BUILD)/%.o: %.S
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

$(FUZZ_BUILD)/plugins/management/ui_assets.o: $(wildcard plugins/management/ui/*)

# Rewrites the seeds from Coney's own encoders (tests/fuzz/gen_corpus.c);
# the corpus is kept in the repository.
fuzz-corpus: $(BUILD)/fuzz-gen-corpus
	$(BUILD)/fuzz-gen-corpus tests/fuzz/corpus

$(BUILD)/fuzz-gen-corpus: $(BUILD)/tests/fuzz/gen_corpus.o $(CORE_OBJ)
	$(CC) -o $@ $^ $(ALL_LDFLAGS) $(LDLIBS)

fuzz: deps
	@$(MAKE) --no-print-directory fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_BUILD)/corpus/$$t $(FUZZ_BUILD)/artifacts/$$t; \
	  echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
	  $(FUZZ_BUILD)/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    -artifact_prefix=$(FUZZ_BUILD)/artifacts/$$t/ \
	    $(FUZZ_BUILD)/corpus/$$t tests/fuzz/corpus/$$t || exit 1; \
	done

# Every seed and every past crash once, then a short random run from the
# seeds (into a scratch corpus): a crash on any of them fails the build.
fuzz-smoke: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	  files=$$(find tests/fuzz/corpus/$$t tests/fuzz/regress/$$t -type f 2>/dev/null); \
	  $(FUZZ_BUILD)/fuzz_$$t -runs=1 $$files >$(FUZZ_BUILD)/smoke-$$t.log 2>&1 \
	    || { cat $(FUZZ_BUILD)/smoke-$$t.log; echo "fuzz-smoke: $$t failed on a kept input"; exit 1; }; \
	  rm -rf $(FUZZ_BUILD)/smoke/$$t; mkdir -p $(FUZZ_BUILD)/smoke/$$t $(FUZZ_BUILD)/artifacts/$$t; \
	  $(FUZZ_BUILD)/fuzz_$$t -max_total_time=$(FUZZ_SMOKE_SECONDS) \
	    -artifact_prefix=$(FUZZ_BUILD)/artifacts/$$t/ \
	    $(FUZZ_BUILD)/smoke/$$t tests/fuzz/corpus/$$t >>$(FUZZ_BUILD)/smoke-$$t.log 2>&1 \
	    || { tail -60 $(FUZZ_BUILD)/smoke-$$t.log; echo "fuzz-smoke: $$t crashed"; exit 1; }; \
	  echo "fuzz-smoke: $$t ok ($$(echo $$files | wc -w) kept inputs, $$(grep -o 'Done [0-9]* runs' $(FUZZ_BUILD)/smoke-$$t.log | tr -dc '0-9') random runs)"; \
	done

# ---- installing ----------------------------------------------------------------
# make install [PREFIX=/usr/local] [DESTDIR=/staging]: the binaries, the
# example config (also as coney.conf when there is none), the systemd
# unit and its sysusers.d entry with paths rewritten for PREFIX, and the docs.
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
UNITDIR    ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
DOCDIR     ?= $(PREFIX)/share/doc/coney

.PHONY: install
install: $(BUILD)/coney $(BUILD)/coney-ctl
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SYSCONFDIR)/coney $(DESTDIR)$(UNITDIR) \
	  $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(DOCDIR)
	install -m 0755 $(BUILD)/coney $(BUILD)/coney-ctl $(DESTDIR)$(BINDIR)/
	install -m 0644 coney.conf.example $(DESTDIR)$(DOCDIR)/coney.conf.example
	test -e $(DESTDIR)$(SYSCONFDIR)/coney/coney.conf || \
	  install -m 0644 coney.conf.example $(DESTDIR)$(SYSCONFDIR)/coney/coney.conf
	sed -e 's|/usr/bin/|$(BINDIR)/|g' -e 's|/etc/coney/|$(SYSCONFDIR)/coney/|g' \
	  -e 's|/usr/share/doc/coney/|$(DOCDIR)/|g' packaging/coney.service \
	  > $(DESTDIR)$(UNITDIR)/coney.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/coney.service
	install -m 0644 packaging/coney.sysusers $(DESTDIR)$(SYSUSERSDIR)/coney.conf
	install -m 0644 README.md docs/*.md $(DESTDIR)$(DOCDIR)/

clean:
	rm -rf build

-include $(CORE_OBJ:.o=.d) $(BROKER_OBJ:.o=.d) $(UNIT_OBJ:.o=.d) $(PERF_OBJ:.o=.d) \
         $(MQTT_PERF_OBJ:.o=.d) $(CTL_OBJ:.o=.d) $(FUZZ_BROKER:.o=.d) \
         $(FUZZ_BINS:$(FUZZ_BUILD)/fuzz_%=$(FUZZ_BUILD)/tests/fuzz/fuzz_%.d)
