# pgcdc: pg-capture | cdc-filter | cdc-publish
#
#   make            build the programs
#   make deps       install what building and testing need (Debian, as root or with sudo)
#   make check      install what is missing, build, run every test
#   make pgversions install the PostgreSQL 12-18 servers the version tests use (build-pg/)
#   make demo       install what is missing, build, stream a throwaway database to the terminal
#   make install    PREFIX=/usr/local DESTDIR=
#   make asan       rebuild everything with AddressSanitizer and UBSan
#   make check-asan the whole suite on make asan's programs (any sanitizer report fails it), then the plain build again
#   make fuzz       libFuzzer on every parser of outside input (FUZZ_SECONDS each, default 60)
#   make chaos      seeded chaos runs, both plugins, http then rabbitmq sink (SECONDS in all, default 600; SEED)
#   make soak       bench/soak.sh: the pipeline at 1 000 commits/s with faults, RSS and fds watched (SECONDS, default 3600; SEED)

include config.mk

LIB_SRC = $(wildcard lib/*.c)
CAPTURE_SRC = pg-capture/main.c pg-capture/conn.c pg-capture/stream.c pg-capture/tx.c \
	pg-capture/emit.c pg-capture/relation.c pg-capture/catalog.c \
	pg-capture/pgoutput.c pg-capture/wal2json.c pg-capture/wal2json_short.c pg-capture/recode.c pg-capture/heartbeat.c \
	pg-capture/health.c pg-capture/snapshot.c pg-capture/chunk.c pg-capture/snap_keyset.c \
	pg-capture/snap_pages.c pg-capture/spool.c pg-capture/ddl.c pg-capture/pgtime.c pg-capture/watch.c
# auth/: signatures and tokens, pure functions the unit tests link alone
AUTH_SRC = $(wildcard cdc-publish/auth/*.c)
PUBLISH_SRC = cdc-publish/main.c cdc-publish/secret.c cdc-publish/events.c cdc-publish/order.c cdc-publish/http.c \
	cdc-publish/target.c $(wildcard cdc-publish/targets/*.c) $(AUTH_SRC)
FILTER_SRC = cdc-filter/main.c cdc-filter/rules.c cdc-filter/rewrite.c
PROGS = pg-capture/pg-capture cdc-filter/cdc-filter cdc-publish/cdc-publish
MAN1 = man/pg-capture.1 man/cdc-filter.1 man/cdc-publish.1
MAN7 = man/cdc-json.7 man/pgcdc-metrics.7
# tests/unit/test_NAME.c: one binary each, run by tests/run.sh
UNIT_TESTS = $(patsubst %.c,%,$(wildcard tests/unit/test_*.c))
AUTH_OBJ = $(AUTH_SRC:.c=.o)

LIB_OBJ = $(LIB_SRC:.c=.o)
CAPTURE_OBJ = $(CAPTURE_SRC:.c=.o)
PUBLISH_OBJ = $(PUBLISH_SRC:.c=.o)
FILTER_OBJ = $(FILTER_SRC:.c=.o)

all: $(PROGS)

%.o: %.c
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

lib/libpgcdc.a: $(LIB_OBJ)
	$(AR) rcs $@ $^

pg-capture/pg-capture: $(CAPTURE_OBJ) lib/libpgcdc.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PQ_LIBS) $(CRYPTO_LIBS) $(MHD_LIBS)

cdc-publish/cdc-publish: $(PUBLISH_OBJ) lib/libpgcdc.a
	$(CC) $(LDFLAGS) -o $@ $^ $(CURL_LIBS) $(JANSSON_LIBS) $(CRYPTO_LIBS) $(MHD_LIBS)

cdc-filter/cdc-filter: $(FILTER_OBJ) lib/libpgcdc.a
	$(CC) $(LDFLAGS) -o $@ $^ $(CRYPTO_LIBS) $(MHD_LIBS)

tests/unit/test_%: tests/unit/test_%.o $(AUTH_OBJ) lib/libpgcdc.a
	$(CC) $(LDFLAGS) -o $@ $^ $(JANSSON_LIBS) $(CRYPTO_LIBS) $(MHD_LIBS)

# golden decoder tests replay recorded protocol bytes through the decoders
tests/unit/decode_replay: tests/unit/decode_replay.o $(filter-out pg-capture/main.o pg-capture/stream.o,$(CAPTURE_OBJ)) lib/libpgcdc.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PQ_LIBS) $(CRYPTO_LIBS) $(MHD_LIBS)

deps:
	sh .ci/deps.sh

# servers for the tests against every supported major version
pgversions: deps
	sh .ci/pgversions.sh

check: deps pgversions
	$(MAKE) all $(UNIT_TESTS) tests/unit/decode_replay
	bash tests/run.sh

test: all $(UNIT_TESTS) tests/unit/decode_replay
	bash tests/run.sh

demo: deps
	$(MAKE) all
	bash examples/demo.sh

fuzz: deps
	FUZZ_SECONDS=$${FUZZ_SECONDS:-60} bash tests/fuzz/run.sh

# six runs of tests/chaos/chaos.sh sharing SECONDS (the HTTP stub, RabbitMQ
# and Azurite's storage queues, each with both plugins), each a different
# seed derived from SEED; not part of make check
SECONDS ?= 600
SEED ?= $(shell date +%s)
chaos: all
	@n=0 failed=0; for sink in http rabbitmq storage-queue; do for plugin in pgoutput wal2json; do \
		n=$$((n + 1)); \
		echo "== chaos: $$plugin to $$sink, $$(($(SECONDS) / 6)) s, seed $$(($(SEED) + n))"; \
		bash tests/chaos/chaos.sh --seconds $$(($(SECONDS) / 6)) --seed $$(($(SEED) + n)) \
			--plugin $$plugin --sink $$sink || failed=$$((failed + 1)); \
	done; done; echo "== chaos: $$failed of 6 runs failed"; [ $$failed = 0 ]

# one long chaos run at 1 000 commits/s, pgoutput to HTTP, a fault every
# 60-120 s (bench/soak.sh for the other options); SECONDS defaults to an
# hour here, not to chaos's 600
soak: all
	bash bench/soak.sh --seconds $(if $(filter file,$(origin SECONDS)),3600,$(SECONDS)) --seed $(SEED)

asan:
	$(MAKE) clean
	$(MAKE) all $(UNIT_TESTS) tests/unit/decode_replay CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer" LDFLAGS="-fsanitize=address,undefined"

# not part of make check (it would double its time): see README, Tests
check-asan: deps pgversions
	$(MAKE) asan
	PGCDC_ASAN=1 bash tests/run.sh; rc=$$?; $(MAKE) clean; $(MAKE) all; exit $$rc

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man7
	install -m 755 $(PROGS) $(DESTDIR)$(BINDIR)
	install -m 644 $(MAN1) $(DESTDIR)$(MANDIR)/man1
	install -m 644 $(MAN7) $(DESTDIR)$(MANDIR)/man7

clean:
	rm -f $(PROGS) lib/libpgcdc.a */*.o */*.d */*/*.o */*/*.d tests/unit/*.o tests/unit/*.d \
		$(UNIT_TESTS) tests/unit/decode_replay

.PHONY: all deps pgversions check check-asan test demo fuzz chaos soak asan install clean

-include $(LIB_SRC:.c=.d) $(CAPTURE_SRC:.c=.d) $(PUBLISH_SRC:.c=.d) $(FILTER_SRC:.c=.d) \
	$(UNIT_TESTS:=.d) tests/unit/decode_replay.d
