#!/usr/bin/env bash
# Build the libFuzzer targets with clang and run each for FUZZ_SECONDS
# (default 10) from a seed corpus made of the golden cases, after the
# inputs that once made it fail (tests/fuzz/regress/TARGET/*: a crash found
# is copied to tests/out/fuzz-crashes/ to be added there). Skipped (not
# failed) without clang.
set -u
cd "$(dirname "$0")/../.."
secs=${FUZZ_SECONDS:-10}
if ! command -v clang >/dev/null || ! echo 'int LLVMFuzzerTestOneInput(const char *d, long n) { return 0; }' |
		clang -x c -fsanitize=fuzzer -o /dev/null - 2>/dev/null; then
	echo "ok - fuzz # SKIP clang with libFuzzer not installed"
	exit 0
fi
B=$(mktemp -d /tmp/pgcdc-fuzz.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; wait; rm -rf "$B"' EXIT
CFLAGS="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined $(pkg-config --cflags libpq) -DPGCDC_VERSION=\"fuzz\""
CAPTURE="pg-capture/tx.c pg-capture/emit.c pg-capture/relation.c pg-capture/catalog.c pg-capture/pgoutput.c pg-capture/wal2json.c pg-capture/wal2json_short.c pg-capture/recode.c pg-capture/conn.c pg-capture/health.c pg-capture/snapshot.c pg-capture/chunk.c pg-capture/snap_keyset.c pg-capture/snap_pages.c pg-capture/spool.c pg-capture/ddl.c pg-capture/pgtime.c pg-capture/watch.c"
LIB=$(echo lib/*.c)
KEEP=${TESTS_OUT:-tests/out}/fuzz-crashes
PUBLISH=$(ls cdc-publish/*.c cdc-publish/targets/*.c cdc-publish/auth/*.c | grep -v /main.c)
LIBS="$(pkg-config --libs libpq libcrypto libmicrohttpd jansson libcurl) -lpthread -lm"
failed=0
# build NAME SOURCES...: NAME.rc says when it is done and how it went
build() {
	local name=$1
	shift
	clang $CFLAGS -o "$B/$name" "$@" $LIB $LIBS 2>"$B/$name.build"
	echo $? >"$B/$name.rc"
}
built() {
	while [ ! -e "$B/$1.rc" ]; do sleep 0.2; done
	[ "$(cat "$B/$1.rc")" = 0 ] && return 0
	echo "not ok - fuzz $1: build failed"
	sed 's/^/#   /' "$B/$1.build" | head -5
	failed=1
	return 1
}
# fuzz NAME CORPUS: first the inputs that once crashed it (tests/fuzz/regress/NAME), then a run
fuzz() {
	local name=$1 corpus=$2 regress=tests/fuzz/regress/$1
	mkdir -p "$B/crash-$name"
	if [ -d "$regress" ] && ! "$B/$name" -runs=1 "$regress"/* >"$B/$name.regress.log" 2>&1; then
		echo "not ok - fuzz $name: an input of $regress fails again"
		grep -aE 'ERROR|SUMMARY|runtime error|Running:' "$B/$name.regress.log" | tail -5 | sed 's/^/#   /'
		failed=1
		return
	fi
	if "$B/$name" -max_total_time="$secs" -max_len=65536 -artifact_prefix="$B/crash-$name/" \
			-print_final_stats=1 "$corpus" >"$B/$name.log" 2>&1; then
		echo "ok - fuzz $name ($(grep -ao 'stat::number_of_executed_units: *[0-9]*' "$B/$name.log" | grep -o '[0-9]*$') runs, ${secs}s)"
	else
		echo "not ok - fuzz $name found a crash (kept in $KEEP)"
		grep -aE 'ERROR|SUMMARY|runtime error' "$B/$name.log" | head -5 | sed 's/^/#   /'
		mkdir -p "$KEEP" && cp "$B/crash-$name"/* "$KEEP/" 2>/dev/null
		failed=1
	fi
}

# two builders in the background, while seeds are made and the first targets run
{
	build decode_pgoutput tests/fuzz/fuzz_decode.c $CAPTURE
	build lines tests/fuzz/fuzz_lines.c
	build publish tests/fuzz/fuzz_publish.c $PUBLISH
	build opt_filter -DFUZZ_FILTER tests/fuzz/fuzz_options.c cdc-filter/rules.c cdc-filter/rewrite.c
} &
{
	build decode_wal2json -DFUZZ_WAL2JSON tests/fuzz/fuzz_decode.c $CAPTURE
	build filter tests/fuzz/fuzz_filter.c cdc-filter/rules.c cdc-filter/rewrite.c
	build opt_capture -DFUZZ_CAPTURE tests/fuzz/fuzz_options.c $(ls pg-capture/*.c | grep -v /main.c)
	build opt_publish -DFUZZ_PUBLISH tests/fuzz/fuzz_options.c $PUBLISH
} &

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

# command lines: golden cases' arguments, NUL-separated; for cdc-publish
# the credential its env file holds comes first, as PGCDC_FUZZ_CRED
mkdir -p "$B/seed-opt_capture" "$B/seed-opt_filter" "$B/seed-opt_publish"
i=0
for line in "-S s" "-d dbname=x -S s_1 --plugin wal2json --status-interval 0.5 -o out" \
		"-S s --create-slot --if-not-exists --failover --publication p --snapshot --snapshot-chunk 500" \
		"-S s --snapshot-table public.t --snapshot-table x --endpos 16/B374D848 --heartbeat 5" \
		"-S s --stream-in-progress --stop-timeout 3 --stall-timeout 60 --health-interval 0 --retry-max-time 30" \
		"-S s --metrics-listen 127.0.0.1:9187 --metrics-label env=prod --log-format json -v" \
		"--install-ddl-capture" "-S s --drop-slot" "--help"; do
	i=$((i + 1))
	printf '%s' "$line" | tr ' ' '\0' >"$B/seed-opt_capture/$i"
done
for f in tests/golden/filter/*/args; do
	tr '\n' '\0' <"$f" | sed 's/\x0$//' >"$B/seed-opt_filter/$(basename "$(dirname "$f")")"
done
for f in tests/golden/publish/*/args; do
	d=$(dirname "$f")
	cred=$(grep -v '^PGCDC_NOW=' "$d/env" 2>/dev/null | head -1)
	var=${cred%%=*}
	{ printf '%s\0' "${cred#*=}"; tr '\n' '\0' <"$f" | sed "s/\x0$//; s/\x0$var\x0/\x0PGCDC_FUZZ_CRED\x0/g"; } \
		>"$B/seed-opt_publish/$(basename "$d")"
done
# answers: one success and a few failures of each configuration of fuzz_publish.c
mkdir -p "$B/seed-publish"
answer() {	# NAME CONFIGURATION FLAGS STATUS BODY [HEADER LINES]
	printf "\\$(printf %o "$2")\\$(printf %o "$3")HTTP/1.1 %s\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n%s" \
		"$4" "${6:-}" "${#5}" "$5" >"$B/seed-publish/$1"
}
answer http 0 4 "200 OK" ""
answer http503 0 2 "503 Service Unavailable" "busy" "Retry-After: 1\r\n"
answer bearer401 1 1 "401 Unauthorized" ""
answer rabbit 2 12 "200 OK" '{"routed":true}'
answer rabbit_unrouted 2 1 "200 OK" '{"routed":false}'
answer rabbit404 2 0 "404 Not Found" '{"error":"Object Not Found","reason":"Not Found"}'
answer rabbit400 2 1 "400 Bad Request" '{"error":"bad_request","reason":"rejected"}'
answer sb 3 0 "201 Created" ""
answer sbbatch 4 6 "201 Created" ""
answer sb429 4 0 "429 Too Many Requests" '<Error><Code>429</Code><Detail>SubCode=50004. server busy</Detail></Error>'
answer eh 5 4 "201 Created" ""
answer sqs 6 4 "200 OK" '{"Successful":[{"Id":"0","MessageId":"a","MD5OfMessageBody":"x"}],"Failed":[{"Id":"1","SenderFault":true,"Code":"InvalidMessageContents","Message":"bad"}]}'
answer sqs_throttled 6 1 "400 Bad Request" '{"__type":"com.amazonaws.sqs#ThrottlingException","message":"slow down"}'
answer sqsfifo 7 0 "200 OK" '{"MessageId":"a","MD5OfMessageBody":"x","SequenceNumber":"1"}'
answer sqs_auth 7 0 "403 Forbidden" '{"__type":"com.amazonaws.sqs#InvalidClientTokenId","message":"no"}'
answer storage 8 0 "201 Created" '<?xml version="1.0" encoding="utf-8"?><QueueMessagesList><QueueMessage><MessageId>m</MessageId></QueueMessage></QueueMessagesList>'
answer storage_sas 9 1 "403 Forbidden" '<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthenticationFailed</Code><Message>no</Message></Error>'
answer pubsub 10 0 "200 OK" '{"messageIds":["1","2","3","4","5","6","7"]}'
answer pubsub400 10 0 "400 Bad Request" '{"error":{"code":400,"message":"bad","status":"INVALID_ARGUMENT"}}'
answer pubsub_key 11 0 "200 OK" '{"access_token":"ya29.fuzz","expires_in":3599,"token_type":"Bearer","messageIds":["1","2","3"]}'
answer kafka_v2 12 0 "200 OK" '{"offsets":[{"partition":0,"offset":1},{"partition":0,"offset":2,"error_code":50002,"error":"x"}]}'
answer kafka_v3 13 0 "207 Multi-Status" '{"successes":[{"id":"0"}],"failures":[{"id":"1","error_code":400,"message":"bad"}]}'
# the input's own events (option bit 4), then a line "--", then the answer
own() {	# NAME CONFIGURATION GOLDEN-CASE STATUS BODY
	{ printf "\\$(printf %o "$2")\\020"; cat "tests/golden/publish/$3/input"; printf -- '--\n'
		printf 'HTTP/1.1 %s\r\nContent-Length: %d\r\n\r\n%s' "$4" "${#5}" "$5"; } >"$B/seed-publish/$1"
}
own own_array 0 array "200 OK" ""
own own_rabbit 2 rabbitmq "200 OK" '{"routed":true}'
own own_sqs 6 sqs_standard "200 OK" '{"Successful":[{"Id":"0"},{"Id":"1"}],"Failed":[]}'
own own_pack 1 pack_tx "200 OK" ""
printf '\0\0HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n' >"$B/seed-publish/chunked"

built decode_pgoutput && fuzz decode_pgoutput "$B/seed-pgoutput"
built decode_wal2json && fuzz decode_wal2json "$B/seed-wal2json"
built lines && fuzz lines "$B/seed-lines"
built filter && fuzz filter "$B/seed-filter"
built publish && fuzz publish "$B/seed-publish"
for t in opt_capture opt_filter opt_publish; do built $t && fuzz $t "$B/seed-$t"; done
wait
exit $failed
