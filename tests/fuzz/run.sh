#!/usr/bin/env bash
# Build the libFuzzer targets with clang and run each briefly from a seed
# corpus made of the golden cases. Skipped (not failed) without clang.
set -u
cd "$(dirname "$0")/../.."
secs=${FUZZ_SECONDS:-15}
if ! command -v clang >/dev/null || ! echo 'int LLVMFuzzerTestOneInput(const char *d, long n) { return 0; }' |
		clang -x c -fsanitize=fuzzer -o /dev/null - 2>/dev/null; then
	echo "ok - fuzz # SKIP clang with libFuzzer not installed"
	exit 0
fi
B=$(mktemp -d /tmp/pgcdc-fuzz.XXXXXX)
trap 'rm -rf "$B"' EXIT
CFLAGS="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined $(pkg-config --cflags libpq) -DPGCDC_VERSION=\"fuzz\""
CAPTURE="pg-capture/tx.c pg-capture/emit.c pg-capture/relation.c pg-capture/catalog.c pg-capture/pgoutput.c pg-capture/wal2json.c pg-capture/recode.c pg-capture/conn.c pg-capture/health.c pg-capture/snapshot.c pg-capture/chunk.c pg-capture/snap_keyset.c pg-capture/snap_pages.c pg-capture/spool.c pg-capture/ddl.c pg-capture/pgtime.c pg-capture/watch.c"
LIB=$(echo lib/*.c)
failed=0
build() {	# NAME SOURCES...
	local name=$1
	shift
	if clang $CFLAGS -o "$B/$name" "$@" $LIB $(pkg-config --libs libpq libcrypto libmicrohttpd) -lpthread -lm 2>"$B/$name.build"; then return 0; fi
	echo "not ok - fuzz $name: build failed"
	sed 's/^/#   /' "$B/$name.build" | head -5
	failed=1
	return 1
}
fuzz() {	# NAME CORPUS
	local name=$1 corpus=$2
	mkdir -p "$B/crash-$name"
	if "$B/$name" -max_total_time="$secs" -max_len=65536 -artifact_prefix="$B/crash-$name/" \
			-print_final_stats=1 "$corpus" >"$B/$name.log" 2>&1; then
		echo "ok - fuzz $name ($(grep -o 'stat::number_of_executed_units: *[0-9]*' "$B/$name.log" | grep -o '[0-9]*$') runs, ${secs}s)"
	else
		echo "not ok - fuzz $name found a crash"
		grep -E 'ERROR|SUMMARY|runtime error' "$B/$name.log" | head -5 | sed 's/^/#   /'
		failed=1
	fi
}

# seeds: each golden case's messages, length-prefixed
for plugin in pgoutput wal2json; do
	mkdir -p "$B/seed-$plugin"
	for f in tests/golden/decode/*/$plugin.in; do
		python3 - "$f" "$B/seed-$plugin/$(basename "$(dirname "$f")")" <<'PY'
import sys
out = bytearray()
for line in open(sys.argv[1]):
    parts = line.split()
    if len(parts) == 2 and not line.startswith(("#", "k ")):
        m = bytes.fromhex(parts[1])[:65535]
        out += len(m).to_bytes(2, "big") + m
open(sys.argv[2], "wb").write(out)
PY
	done
done
mkdir -p "$B/seed-lines"
i=0
for f in tests/golden/decode/*/expected.pgoutput; do
	head -3 "$f" | while IFS= read -r l; do i=$((i + 1)); printf '%s' "$l" >"$B/seed-lines/$(basename "$(dirname "$f")")-$i"; done
done
printf '16/B374D848' >"$B/seed-lines/lsn"
# cdc-filter: each golden case's input under each rule set (the first byte picks it)
mkdir -p "$B/seed-filter"
for f in tests/golden/filter/*/input; do
	c=$(basename "$(dirname "$f")")
	case $c in usage_*) continue ;; esac
	for k in 0 1 2 3 4; do { printf "\\$(printf %o $k)"; head -c 60000 "$f"; } >"$B/seed-filter/$c-$k"; done
done

build decode_pgoutput tests/fuzz/fuzz_decode.c $CAPTURE && fuzz decode_pgoutput "$B/seed-pgoutput"
build decode_wal2json -DFUZZ_WAL2JSON tests/fuzz/fuzz_decode.c $CAPTURE && fuzz decode_wal2json "$B/seed-wal2json"
build lines tests/fuzz/fuzz_lines.c && fuzz lines "$B/seed-lines"
build filter tests/fuzz/fuzz_filter.c cdc-filter/rules.c cdc-filter/rewrite.c && fuzz filter "$B/seed-filter"
exit $failed
