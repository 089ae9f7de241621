#!/usr/bin/env bash
# cdc-publish into real local queues, side by side with the same events
# sent one request at a time by curl in a shell loop and by a Python loop
# (requests.post per event, as the original listener did):
#
#   - Azurite (Azure Storage queue): cdc-publish one message per event with
#     --parallel 1 and 8, and --pack tx;
#   - fauxqs (Amazon SQS, JSON protocol): cdc-publish --batch 10 with
#     --parallel 1 and 8, and --pack tx;
#   - a Service Bus Standard namespace's ceiling (bench/sb_ceiling.py, 1 000
#     messages a second, throttling with error 50009 above): cdc-publish
#     --target servicebus without packing and with --pack tx.
#
# For each: events/s, the client's CPU per event, and the queue server's CPU
# over the run (a server near 100 % of a core is the limit, not the client).
# Every run's delivery is checked by counting what the queue holds.
# Prints the table and writes it to bench/out/targets-DATE-TIME.txt.
#
#   bench/targets.sh                  20 000 events, ~5 minutes on 2 cores
#   BENCH_QUICK=1 bench/targets.sh    a quick check, about a minute
#
# Environment: BENCH_EVENTS (events, default 20000), BENCH_TX (events per
# transaction, default 10), BENCH_SB_TX (events per transaction in the
# Service Bus runs, default 100), BENCH_SB_EVENTS (events of the packed
# Service Bus run, default ten times BENCH_EVENTS), BENCH_LOOP (events the curl and Python
# loops send, default 1000: they are slow, and their rate does not depend
# on how many), BENCH_QUEUES (subset of: azurite fauxqs servicebus),
# CDC_PUBLISH.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(dirname "$HERE")
CDC_PUBLISH=${CDC_PUBLISH:-$TOP/cdc-publish/cdc-publish}
if [ -n "${BENCH_QUICK:-}" ]; then
	: "${BENCH_EVENTS:=4000}" "${BENCH_LOOP:=200}"
fi
EVENTS=${BENCH_EVENTS:-20000}
TX=${BENCH_TX:-10}
SB_TX=${BENCH_SB_TX:-100}
SB_EVENTS=${BENCH_SB_EVENTS:-$((EVENTS * 10))}
LOOP=${BENCH_LOOP:-1000}
QUEUES=${BENCH_QUEUES:-azurite fauxqs servicebus}
PYTHON=/usr/bin/python3
TICKS=$(getconf CLK_TCK)

die() { echo "targets.sh: $*" >&2; exit 1; }
log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }

[ -x "$CDC_PUBLISH" ] || die "$CDC_PUBLISH not built (run make)"
for v in "$EVENTS" "$TX" "$SB_TX" "$LOOP"; do
	case $v in '' | *[!0-9]*) die "BENCH_EVENTS, _TX, _SB_TX and _LOOP must be numbers" ;; esac
done
[ -x /usr/bin/time ] || die "/usr/bin/time missing (apt-get install time)"
command -v curl >/dev/null && command -v openssl >/dev/null || die "curl and openssl are needed"
if ! "$PYTHON" -c 'import requests' 2>/dev/null; then
	[ "$(id -u)" = 0 ] || die "$PYTHON cannot import requests (apt-get install python3-requests)"
	log "installing python3-requests"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-requests >/dev/null || die "installing python3-requests failed"
fi
sh "$TOP/.ci/deps.sh" >/dev/null || die "sh .ci/deps.sh failed (Azurite and fauxqs come from it)"

source "$TOP/tests/lib/testlib.sh" >/dev/null
source "$TOP/tests/lib/pgcluster.sh"
source "$TOP/tests/lib/azurite.sh"
source "$TOP/tests/lib/fauxqs.sh"

T=$(mktemp -d /tmp/pgcdc-bench-targets.XXXXXX)
SB_PID=
cleanup() {
	azurite_stop
	fauxqs_stop
	[ -n "$SB_PID" ] && kill "$SB_PID" 2>/dev/null && wait "$SB_PID" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# CPU ticks of a process so far (utime + stime)
ticks() {
	local line f
	read -r line 2>/dev/null </proc/"$1"/stat || { echo 0; return; }
	f=(${line##*) })
	echo $((f[11] + f[12]))
}

# events FILE NEVENTS PER_TX: transactions of work item updates the size the
# users' app writes (~330 bytes a line), commit LSNs growing
gen_events() {
	"$PYTHON" - "$@" <<'EOF'
import sys
path, n, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ts = "2026-11-24T14:31:06.000000Z"
with open(path, "w") as f:
    t = 0
    done = 0
    while done < n:
        t += 1
        c = 0x1000000 + t * 0x1000
        cl = "0/%X" % c
        f.write('{"op":"begin","xid":%d,"lsn":"0/%X","commit_lsn":"%s","ts":"%s"}\n' % (1000 + t, c - 0x800, cl, ts))
        for j in range(min(per, n - done)):
            k = done + 1
            f.write('{"op":"update","schema":"public","table":"work_items","id":"%s:%d","lsn":"0/%X","xid":%d,'
                    '"ts":"%s","key":{"id":%d},"new":{"id":%d,"project_id":%d,"parent_id":%d,'
                    '"title":"Work item %d: make the board refresh for everyone at once","status":"in_progress",'
                    '"assignee":"ana","updated_at":"2026-11-24 14:31:06.123456+00"},"unchanged":["description"]}\n'
                    % (cl, j, c - 0x800 + j * 8, 1000 + t, ts, k, k, k % 7, k % 97, k))
            done += 1
        f.write('{"op":"commit","xid":%d,"lsn":"0/%X","commit_lsn":"%s","ts":"%s"}\n' % (1000 + t, c + 0x30, cl, ts))
EOF
}

ROWS=()
# row NAME EVENTS WALL_S CLIENT_TICKS SERVER_TICKS MESSAGES: one line of the table
row() {
	local name=$1 n=$2 wall=$3 cticks=$4 sticks=$5 msgs=$6
	ROWS+=("$(awk -v name="$name" -v n="$n" -v w="$wall" -v c="$cticks" -v s="$sticks" -v m="$msgs" -v hz="$TICKS" 'BEGIN {
		printf "%-44s %8d %9d %10.0f %10.1f %10.0f\n", name, n, m, (w > 0 ? n / w : 0),
			(n > 0 ? c / hz * 1e6 / n : 0), (w > 0 ? s / hz / w * 100 : 0) }')")
	log "$(printf '%s\n' "${ROWS[-1]}")"
}

# measure NAME SERVER_PID COUNT_CMD NEVENTS -- CMD...: run CMD (stdin is the
# caller's), timing it; COUNT_CMD prints how many messages the queue holds
measure() {
	local name=$1 spid=$2 count=$3 n=$4 s0 s1 t0 t1 got
	shift 5
	s0=$(ticks "$spid")
	t0=$(date +%s%N)
	/usr/bin/time -o "$T/time" -f '%e %U %S' "$@" >"$T/out" 2>"$T/err" || {
		log "$name failed: $(tail -3 "$T/err")"
		return 1
	}
	t1=$(date +%s%N)
	s1=$(ticks "$spid")
	got=$($count)
	read -r _ u s <"$T/time"
	row "$name" "$n" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print (b - a) / 1e9 }')" \
		"$(awk -v u="$u" -v s="$s" -v hz="$TICKS" 'BEGIN { printf "%d", (u + s) * hz }')" \
		$((s1 - s0)) "$got"
}

gen_events "$T/events" "$EVENTS" "$TX"
head -n $((LOOP / TX * (TX + 2))) "$T/events" >"$T/loop.events"
LOOP_N=$(grep -vc -e '"op":"begin"' -e '"op":"commit"' "$T/loop.events")
log "$EVENTS events in transactions of $TX ($(du -k "$T/events" | cut -f1) kB); the loops send $LOOP_N"

# --- Azurite -----------------------------------------------------------------

if [[ " $QUEUES " == *" azurite "* ]]; then
	azurite_find || die "$AZURITE_WHY"
	azurite_start "$T/azurite" || die "Azurite did not start"
	export BENCH_AZ_CONN=$AZURITE_CONN
	q=0
	newq() { q=$((q + 1)); Q=bench$q; azq create "$Q" >/dev/null || die "could not create queue $Q"; }
	azcount() { azq count "$Q"; }
	for c in "1" "8" "8 tx"; do
		set -- $c
		newq
		args=(--target storage-queue --credentials-env BENCH_AZ_CONN --parallel "$1")
		[ -n "${2:-}" ] && args+=(--pack tx)
		measure "cdc-publish --parallel $1${2:+ --pack tx}" "$AZURITE_PID" azcount "$EVENTS" -- \
			"$CDC_PUBLISH" "${args[@]}" "$AZURITE_EP/$Q" <"$T/events"
	done
	newq
	# one curl process per event, signed with openssl as a shell script would
	cat >"$T/azcurl.sh" <<'EOF'
key=$(printf '%s' "$AZ_KEY" | base64 -d | xxd -p -c 256)
while IFS= read -r line; do
	case $line in '{"op":"begin"'* | '{"op":"commit"'*) continue ;; esac
	body="<QueueMessage><MessageText>$(printf '%s' "$line" | base64 -w0)</MessageText></QueueMessage>"
	date=$(LC_ALL=C date -u '+%a, %d %b %Y %H:%M:%S GMT')
	sig=$(printf 'POST\n\n\n%s\n\napplication/xml\n\n\n\n\n\n\nx-ms-date:%s\nx-ms-version:2021-12-02\n/%s/%s/%s/messages' \
		"${#body}" "$date" "$AZ_ACCOUNT" "$AZ_ACCOUNT" "$AZ_QUEUE" |
		openssl dgst -sha256 -mac HMAC -macopt hexkey:"$key" -binary | base64 -w0)
	curl -sf -o /dev/null -H "x-ms-date: $date" -H "x-ms-version: 2021-12-02" -H "Content-Type: application/xml" \
		-H "Authorization: SharedKey $AZ_ACCOUNT:$sig" --data-binary "$body" "$AZ_EP/$AZ_QUEUE/messages" || exit 1
done
EOF
	command -v xxd >/dev/null || die "xxd missing (apt-get install xxd)"
	AZ_KEY=$AZURITE_KEY AZ_ACCOUNT=$AZURITE_ACCOUNT AZ_QUEUE=$Q AZ_EP=$AZURITE_EP \
		measure "curl in a shell loop" "$AZURITE_PID" azcount "$LOOP_N" -- bash "$T/azcurl.sh" <"$T/loop.events"
	newq
	measure "Python requests.post loop" "$AZURITE_PID" azcount "$LOOP_N" -- \
		"$PYTHON" "$HERE/py_sender.py" storage-queue "$AZURITE_EP" "$Q" <"$T/loop.events"
	AZ_ROWS=("${ROWS[@]}")
	ROWS=()
	azurite_stop
fi

# --- fauxqs ------------------------------------------------------------------

if [[ " $QUEUES " == *" fauxqs "* ]]; then
	fauxqs_find || die "$FAUXQS_WHY"
	fauxqs_start "$T/fauxqs" || die "fauxqs did not start"
	q=0
	newq() { q=$((q + 1)); Q=$(fauxqs_create "bench$q") || die "could not create queue bench$q"; }
	sqcount() { fauxqs_count "$Q"; }
	export AWS_ACCESS_KEY_ID=AKIDBENCH AWS_SECRET_ACCESS_KEY=bench-secret AWS_REGION=us-east-1
	for c in "1" "8" "8 tx"; do
		set -- $c
		newq
		args=(--target sqs --endpoint "$FAUXQS_EP" --batch 10 --parallel "$1")
		[ -n "${2:-}" ] && args+=(--pack tx)
		measure "cdc-publish --batch 10 --parallel $1${2:+ --pack tx}" "$FAUXQS_PID" sqcount "$EVENTS" -- \
			"$CDC_PUBLISH" "${args[@]}" "$Q" <"$T/events"
	done
	newq
	cat >"$T/sqcurl.sh" <<'EOF'
while IFS= read -r line; do
	case $line in '{"op":"begin"'* | '{"op":"commit"'*) continue ;; esac
	curl -sf -o /dev/null -H 'Content-Type: application/x-amz-json-1.0' -H 'X-Amz-Target: AmazonSQS.SendMessage' \
		--data-binary "$(jq -cn --arg q "$SQ_URL" --arg b "$line" '{QueueUrl: $q, MessageBody: $b}')" "$SQ_EP" || exit 1
done
EOF
	SQ_URL=$Q SQ_EP=$FAUXQS_EP measure "curl in a shell loop" "$FAUXQS_PID" sqcount "$LOOP_N" -- bash "$T/sqcurl.sh" <"$T/loop.events"
	newq
	measure "Python requests.post loop" "$FAUXQS_PID" sqcount "$LOOP_N" -- \
		"$PYTHON" "$HERE/py_sender.py" sqs "$FAUXQS_EP" "$Q" <"$T/loop.events"
	SQ_ROWS=("${ROWS[@]}")
	ROWS=()
	fauxqs_stop
fi

# --- a Service Bus Standard namespace's ceiling -------------------------------

if [[ " $QUEUES " == *" servicebus "* ]]; then
	gen_events "$T/sb.events" "$SB_EVENTS" "$SB_TX"
	SB_N=$SB_EVENTS
	"$PYTHON" "$HERE/sb_ceiling.py" --port-file "$T/sb.port" --rate 1000 --stats "$T/sb.stats" &
	SB_PID=$!
	wait_for 10 test -s "$T/sb.port" || die "sb_ceiling.py did not start"
	SB_URL=http://127.0.0.1:$(cat "$T/sb.port")/cdc-events
	export BENCH_SB_CONN="Endpoint=sb://127.0.0.1/;SharedAccessKeyName=bench;SharedAccessKey=bench-key-not-secret="
	sbcount() { cut -d' ' -f2 "$T/sb.stats"; }
	# unpacked, the ceiling is 1 000 events a second: a fifth of the events is enough to show it
	head -n $((EVENTS / 5 / SB_TX * (SB_TX + 2))) "$T/sb.events" >"$T/sb.few"
	rm -f "$T/sb.stats"
	measure "cdc-publish --batch 100 --parallel 4" "$SB_PID" sbcount $((EVENTS / 5 / SB_TX * SB_TX)) -- \
		"$CDC_PUBLISH" --target servicebus --credentials-env BENCH_SB_CONN --batch 100 --parallel 4 "$SB_URL" <"$T/sb.few"
	kill "$SB_PID"; wait "$SB_PID" 2>/dev/null
	rm -f "$T/sb.port" "$T/sb.stats"
	"$PYTHON" "$HERE/sb_ceiling.py" --port-file "$T/sb.port" --rate 1000 --stats "$T/sb.stats" &
	SB_PID=$!
	wait_for 10 test -s "$T/sb.port" || die "sb_ceiling.py did not start"
	SB_URL=http://127.0.0.1:$(cat "$T/sb.port")/cdc-events
	measure "cdc-publish --pack tx --batch 10 --parallel 4" "$SB_PID" sbcount "$SB_N" -- \
		"$CDC_PUBLISH" --target servicebus --credentials-env BENCH_SB_CONN --pack tx --batch 10 --parallel 4 \
		"$SB_URL" <"$T/sb.events"
	SB_ROWS=("${ROWS[@]}")
	ROWS=()
fi

# --- the table ------------------------------------------------------------------

mkdir -p "$HERE/out"
OUT=$HERE/out/targets-$(date +%Y%m%d-%H%M%S).txt
{
	echo "cdc-publish into local queues: $EVENTS events in transactions of $TX ($(nproc) cores, $(date +%F))"
	hdr=$(printf '%-44s %8s %9s %10s %10s %10s' contender events "in queue" "events/s" "CPU us/ev" "server CPU%")
	if [ -n "${AZ_ROWS+x}" ]; then
		echo
		echo "Azurite $("$AZURITE_BIN" --version 2>/dev/null | head -1) (Azure Storage queue: one message per request, 1 per event unless packed)"
		echo "$hdr"
		printf '%s\n' "${AZ_ROWS[@]}"
	fi
	if [ -n "${SQ_ROWS+x}" ]; then
		echo
		echo "fauxqs (Amazon SQS JSON protocol; SendMessageBatch of 10)"
		echo "$hdr"
		printf '%s\n' "${SQ_ROWS[@]}"
	fi
	if [ -n "${SB_ROWS+x}" ]; then
		echo
		echo "A Service Bus Standard namespace's ceiling: 1 000 messages/s (bench/sb_ceiling.py), transactions of $SB_TX events"
		echo "(in queue: events delivered; the packed run sends $((SB_EVENTS / SB_TX)) messages)"
		echo "$hdr"
		printf '%s\n' "${SB_ROWS[@]}"
	fi
	echo
	echo "events/s: events over the client's wall time; CPU us/ev: the client's user + system CPU per event;"
	echo "server CPU%: the queue server's CPU over the run (100 = one core busy); in queue: messages"
	echo "(events for the Service Bus ceiling) the queue holds after the run."
} | tee "$OUT"
