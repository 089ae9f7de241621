#!/usr/bin/env bash
# test: alone (it measures time or memory, or loads the machine)
# cdc-publish against tests/lib/httpstub.py, a scripted local HTTP server:
# exact request bodies, headers and counts; retries, timeouts, resets,
# refusals, dead letters, per-key order under --parallel, bad input,
# SIGTERM, and the acknowledgements written in each case; then the
# --dry-run golden cases of tests/golden/publish/.
#
#   bash tests/integration/publish.sh      (after make; no database needed)
#
# CDC_PUBLISH=PATH tests another build (an ASan one, say).
set -u
source "$(dirname "$0")/../lib/testlib.sh"
PUB=${CDC_PUBLISH:-$TOP/cdc-publish/cdc-publish}
STUB=$TOP/tests/lib/httpstub.py
GOLDEN=$TOP/tests/golden/publish
[ -x "$PUB" ] || { echo "not ok - $PUB not built (make)"; exit 1; }
command -v jq >/dev/null || { echo "not ok - jq is needed"; exit 1; }

W=$(mktemp -d /tmp/pgcdc-publish.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$W"' EXIT	# stubs, cat readers: jobs of this shell

indent() { sed 's/^/#     /' | cut -c1-300; }

# testlib's wait_for and wait_exit, polling every 20 ms instead of 100:
# this script waits for a hundred short-lived processes
wait_for() {
	local limit=$1 i=0
	shift
	while ! "$@" >/dev/null 2>&1; do
		i=$((i + 1))
		[ $i -ge $((limit * 50)) ] && return 1
		sleep 0.02
	done
	return 0
}
wait_exit() {
	local pid=$1 limit=$2 i=0
	RC=
	while kill -0 "$pid" 2>/dev/null; do
		i=$((i + 1))
		if [ $i -ge $((limit * 50)) ]; then
			kill -9 "$pid" 2>/dev/null
			wait "$pid" 2>/dev/null
			RC=124
			return
		fi
		sleep 0.02
	done
	wait "$pid"
	RC=$?
}

# ------------------------------------------------------------------ helpers

# stub NAME [httpstub OPTIONS]: start a stub logging to $W/NAME.log; sets
# LOG, URL and STUB_PID. Answers take 3 ms more than they would (--latency 3,
# a network): see "fast endpoint" for why; --latency 0 overrides it.
stub() {
	local name=$1
	shift
	LOG=$W/$name.log
	rm -f "$LOG" "$W/$name.port"
	python3 "$STUB" --port 0 --port-file "$W/$name.port" --log "$LOG" --max-time 120 --latency 3 "$@" \
		2>"$W/$name.stub.err" &
	STUB_PID=$!
	if wait_for 10 test -s "$W/$name.port"; then
		URL=http://127.0.0.1:$(cat "$W/$name.port")/events
	else
		fail "httpstub $name starts" "$(cat "$W/$name.stub.err")"
		URL=http://127.0.0.1:9/events
	fi
}
stub_stop() { kill "$STUB_PID" 2>/dev/null; wait "$STUB_PID" 2>/dev/null; }

# pub LIMIT INPUT ARGS...: cdc-publish ARGS <INPUT, stdout in $W/out and
# stderr in $W/err; sets RC (124: killed after LIMIT seconds) and MS (elapsed)
pub() {
	local limit=$1 input=$2 t0
	shift 2
	t0=$(date +%s%N)
	"$PUB" "$@" <"$input" >"$W/out" 2>"$W/err" &
	wait_exit $! "$limit"
	MS=$((($(date +%s%N) - t0) / 1000000))
}

# ack_open: a FIFO $W/ack read into $W/acks by a background cat
ack_open() {
	rm -f "$W/ack" "$W/acks"
	mkfifo "$W/ack"
	cat "$W/ack" >"$W/acks" &
	ACK_PID=$!
}
# ack_close: wait for the reader to see the writer go; sets ACKS (RC is kept)
ack_close() {
	local rc=$RC
	wait_exit "$ACK_PID" 5
	RC=$rc
	ACKS=$(cat "$W/acks" 2>/dev/null)
}

# gen NTX PER_TX NKEYS [FIRST]: NTX transactions of PER_TX inserts into
# public.t, keys 1..NKEYS in turn; commit LSNs grow with the transaction
# number; with PER_TX < 10 and NKEYS < 10 every insert line has one length
gen() {
	python3 - "$@" <<'EOF'
import sys
ntx, per, nkeys = map(int, sys.argv[1:4])
first = int(sys.argv[4]) if len(sys.argv) > 4 else 1
ts = "2026-11-24T14:31:06.000000Z"
k = 0
for t in range(first, first + ntx):
    c = 0x1000000 + t * 0x1000
    cl = "0/%X" % c
    print('{"op":"begin","xid":%d,"lsn":"0/%X","commit_lsn":"%s","ts":"%s"}' % (1000 + t, c - 0x800, cl, ts))
    for j in range(per):
        key = k % nkeys + 1
        k += 1
        print('{"op":"insert","schema":"public","table":"t","id":"%s:%d","lsn":"0/%X","xid":%d,"ts":"%s",'
              '"key":{"id":%d},"new":{"id":%d,"v":"tx%04d.%03d"}}' % (cl, j, c - 0x800 + j * 8, 1000 + t, ts, key, key, t, j))
    print('{"op":"commit","xid":%d,"lsn":"0/%X","commit_lsn":"%s","ts":"%s"}' % (1000 + t, c + 0x30, cl, ts))
EOF
}

published() { grep -v -e '^{"op":"begin"' -e '^{"op":"commit"' "$1"; }	# the lines that are events
commits() { grep '^{"op":"commit"' "$1" | jq -r .lsn; }
bodies() { jq -r .body "$LOG"; }	# the request bodies, one a line
nreq() { if [ -f "${1:-$LOG}" ]; then wc -l <"${1:-$LOG}" | tr -d ' '; else echo 0; fi; }
has_requests() { [ "$(nreq "$1")" -ge "$2" ]; }
# header NAME [LOG]: the values of request header NAME, one line per request
header() { jq -r --arg h "$1" '[.headers[] | select(.[0] | ascii_downcase == ($h | ascii_downcase)) | .[1]] | join(",")' "${2:-$LOG}"; }
# arrival gap between requests I and J (1-based), in ms
gap_ms() { jq -s --argjson i "$1" --argjson j "$2" '((.[$j - 1].t - .[$i - 1].t) * 1000) | floor' "$LOG"; }
# cpu_ticks PID: user + system clock ticks so far
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

# ----------------------------------------------------- basic delivery, keep-alive

cat "$TOP/tests/golden/decode/message/expected.pgoutput" "$TOP/tests/golden/decode/multi_tx/expected.pgoutput" >"$W/basic.in"
published "$W/basic.in" >"$W/basic.events"
nev=$(wc -l <"$W/basic.events" | tr -d ' ')

stub basic
ack_open
pub 10 "$W/basic.in" --ack-fifo "$W/ack" "$URL"
ack_close
is "$RC" 0 "basic: exit 0 at end of input"
is "$(nreq)" "$nev" "basic: one POST per event ($nev), begin and commit left out"
is "$(bodies)" "$(cat "$W/basic.events")" "basic: the bodies are exactly the event lines, in order"
is "$(jq -r '.method + " " + .path' "$LOG" | sort -u)" "POST /events" "basic: POST to the URL's path"
is "$(header Content-Type | sort -u)" "application/json" "basic: Content-Type application/json"
is "$(jq -s 'map(.conn) | unique | length' "$LOG")" 1 "basic: one keep-alive connection for all requests"
is "$ACKS" "$(commits "$W/basic.in")" "basic: every commit lsn acknowledged, in order"
like "$(cat "$W/err")" "level=info .*msg=exiting delivered=$nev " "basic: exit line counts the deliveries"
stub_stop

stub markers
pub 10 "$W/basic.in" --tx-markers "$URL"
is "$RC" 0 "--tx-markers: exit 0"
is "$(bodies)" "$(cat "$W/basic.in")" "--tx-markers: begin and commit lines published too, every line in order"
stub_stop

# stdin a pipe (read without blocking), input trickling in
stub pipe
ack_open
{ head -4 "$W/basic.in"; sleep 0.3; tail -n +5 "$W/basic.in"; } | "$PUB" --ack-fifo "$W/ack" "$URL" >"$W/out" 2>"$W/err" &
wait_exit $! 10
ack_close
is "$RC" 0 "stdin a pipe: exit 0"
is "$(bodies)" "$(cat "$W/basic.events")" "stdin a pipe: the same bodies in order"
is "$ACKS" "$(commits "$W/basic.in")" "stdin a pipe: the same acknowledgements"
stub_stop

# a fast endpoint: nothing waits between a response and the next request
# (an answer that is already there when curl has sent the request must not
# leave cdc-publish asleep in poll() for a second)
gen 20 5 9 >"$W/fast.in"
stub fast --latency 0
pub 3 "$W/fast.in" "$URL"
stalls=$(jq -s '[range(1; length) as $i | select(.[$i].t - .[$i - 1].t > 0.5)] | length' "$LOG")
if [ "$RC" = 0 ] && [ "$(nreq)" = 100 ] && [ "$MS" -le 1500 ]; then
	pass "fast endpoint: 100 events, one request after the other, in ${MS} ms"
else
	fail "fast endpoint: 100 events delivered within 1.5 s" \
		"exit $RC after ${MS} ms (124: killed at 3 s), $(nreq) of 100 sent, ${stalls} gaps of more than 0.5 s between two requests"
fi
stub_stop

# a transaction with nothing to publish is acknowledged at once
printf '%s\n' '{"op":"begin","xid":5,"lsn":"0/5000","commit_lsn":"0/5100","ts":"2026-11-24T14:31:06.000000Z"}' \
	'{"op":"commit","xid":5,"lsn":"0/5130","commit_lsn":"0/5100","ts":"2026-11-24T14:31:06.000000Z"}' >"$W/empty.in"
ack_open
pub 10 "$W/empty.in" --ack-fifo "$W/ack" http://127.0.0.1:9/events
ack_close
is "$RC" 0 "an empty transaction: exit 0, nothing to send"
is "$ACKS" "0/5130" "an empty transaction: its commit acknowledged"

# a 3 MB event goes through byte for byte
python3 -c 'print("{\"op\":\"insert\",\"schema\":\"public\",\"table\":\"t\",\"id\":\"0/7:0\",\"key\":{\"id\":7},\"new\":{\"id\":7,\"v\":\"" + "x\\u00e9" * 500000 + "\"}}")' >"$W/big.in"
stub big
pub 10 "$W/big.in" "$URL"
is "$RC" 0 "a 3 MB event: exit 0"
if [ "$(nreq)" = 1 ] && jq -r .body "$LOG" | cmp -s - "$W/big.in"; then pass "a 3 MB event: delivered byte for byte"; else fail "a 3 MB event: delivered byte for byte" "$(nreq) requests"; fi
stub_stop

# the ack pipe's reader goes away: exit 1
stub ackgone --default 'slow:150'
rm -f "$W/ack"
mkfifo "$W/ack"
head -n 1 "$W/ack" >"$W/acks" &
ACK_PID=$!
pub 10 "$W/basic.in" --ack-fifo "$W/ack" "$URL"
ack_close
is "$RC" 1 "the ack pipe's reader gone: exit 1"
like "$(cat "$W/err")" 'level=error .*msg="could not write acknowledgement"' "the ack pipe's reader gone: says so"
stub_stop

# ------------------------------------------------------------------ body forms

gen 2 4 3 >"$W/b.in"	# 8 events: 4 + 4
published "$W/b.in" >"$W/b.events"
mapfile -t E <"$W/b.events"

stub array
ack_open
pub 10 "$W/b.in" --ack-fifo "$W/ack" --batch 3 --body array "$URL"
ack_close
is "$RC" 0 "--batch 3 --body array: exit 0"
want=$(printf '[%s,%s,%s]\n[%s,%s,%s]\n[%s,%s]' "${E[@]}")
is "$(bodies)" "$want" "--batch 3 --body array: 3 + 3 + 2 events as JSON arrays, across transactions"
is "$(header Content-Type | sort -u)" "application/json" "--body array: Content-Type application/json"
is "$ACKS" "$(commits "$W/b.in")" "--body array: both commits acknowledged"
stub_stop

stub ndjson
pub 10 "$W/b.in" --batch 3 --body ndjson "$URL"
is "$RC" 0 "--batch 3 --body ndjson: exit 0"
want=$(printf '%s\n%s\n%s\n' "${E[0]}" "${E[1]}" "${E[2]}" | jq -Rsc .
	printf '%s\n%s\n%s\n' "${E[3]}" "${E[4]}" "${E[5]}" | jq -Rsc .
	printf '%s\n%s\n' "${E[6]}" "${E[7]}" | jq -Rsc .)
is "$(jq -c .body "$LOG")" "$want" "--batch 3 --body ndjson: each event line and its newline, 3 + 3 + 2"
is "$(header Content-Type | sort -u)" "application/x-ndjson" "--body ndjson: Content-Type application/x-ndjson"
stub_stop

stub batch_default
pub 10 "$W/b.in" --batch 4 "$URL"
is "$(bodies | head -1)" "$(printf '[%s,%s,%s,%s]' "${E[@]:0:4}")" "--batch 4 alone: array bodies"
stub_stop

# --batch-bytes: every insert line has the same length L; a batch closes
# once it holds 2L bytes, so at two events, below --batch 3
L=${#E[0]}
stub bytes
pub 10 "$W/b.in" --batch 3 --body ndjson --batch-bytes $((2 * L)) "$URL"
is "$RC" 0 "--batch-bytes: exit 0"
is "$(jq -c '.ids | length' "$LOG" | tr '\n' ' ')" "2 2 2 2 " "--batch-bytes $((2 * L)) (lines of $L bytes): batches of 2 events"
is "$(jq -r .body "$LOG" | grep -c .)" 8 "--batch-bytes: all 8 events sent"
stub_stop
stub bytes_small
pub 10 "$W/b.in" --batch 3 --body array --batch-bytes 10 "$URL"
is "$(jq -c '.ids | length' "$LOG" | tr '\n' ' ')" "1 1 1 1 1 1 1 1 " "--batch-bytes below one event: one event per request, none held back"
stub_stop

# --linger: a partial batch waits for company while more input may come,
# but no longer than --linger
stub linger
{ sed -n '2,3p' "$W/b.in"; sleep 0.3; sed -n 4p "$W/b.in"; sleep 0.3; sed -n 5p "$W/b.in"; } |
	"$PUB" --batch 3 --linger 2000 "$URL" >"$W/out" 2>"$W/err" &
wait_exit $! 10
is "$RC" 0 "--linger 2000: exit 0"
is "$(jq -c '.ids | length' "$LOG" | tr '\n' ' ')" "3 1 " "--linger 2000: two events waited for the third; the last sent at end of input"
stub_stop
stub linger_expires
{ sed -n '2,3p' "$W/b.in"; sleep 1.2; sed -n 4p "$W/b.in"; } |
	"$PUB" --batch 3 --linger 300 "$URL" >"$W/out" 2>"$W/err" &
wait_exit $! 10
is "$(jq -c '.ids | length' "$LOG" | tr '\n' ' ')" "2 1 " "--linger 300: a partial batch leaves when the linger is over"
stub_stop
# the linger counts from the batch's first event, not from the last wakeup:
# a second event 400 ms in must not push the send past 600 ms
# (timed from once a full batch has arrived: cdc-publish is up and reading,
# however long a loaded machine took to start it)
stub linger_from_first
gen 1 6 6 >"$W/l.in"
rm -f "$W/l.fifo"
mkfifo "$W/l.fifo"
"$PUB" --batch 3 --linger 600 "$URL" <"$W/l.fifo" >"$W/out" 2>"$W/err" &
P=$!
exec 7>"$W/l.fifo"
requests() { [ "$(nreq)" -ge "$1" ]; }
sed -n 2,4p "$W/l.in" >&7
wait_for 20 requests 1 || fail "--linger 600: the first full batch was not sent"
date +%s%N >"$W/t0"
sed -n 5p "$W/l.in" >&7
sleep 0.4	# the scenario: a second event 400 ms after the first
sed -n 6p "$W/l.in" >&7
wait_for 20 requests 2
exec 7>&-
wait_exit $P 10
D=$(jq -r '.t' "$LOG" | sed -n 2p | awk -v t0="$(cat "$W/t0")" '{printf "%d", $1 * 1000 - t0 / 1000000}')
is "$(jq -c '.ids | length' "$LOG" | tr '\n' ' ')" "3 2 " "--linger 600, events at 0 and 400 ms after a full batch: one request of 2"
if [ "$D" -ge 550 ] && [ "$D" -le 900 ]; then pass "--linger 600: sent ${D} ms after the first event (550..900)"; else fail "--linger 600: sent 550..900 ms after the first event" "${D} ms"; fi
stub_stop

# --------------------------------------------------------------------- headers

gen 1 2 2 >"$W/h.in"
stub headers
TOKENVAR='s3cr3t-T0ken.xyz' pub 10 "$W/h.in" -v -H 'X-Source: pgcdc' -H 'X-Trace: a b:c' --bearer-env TOKENVAR "$URL"
is "$RC" 0 "headers: exit 0"
is "$(header X-Source | sort -u)" "pgcdc" "-H passes a header through"
is "$(header X-Trace | sort -u)" "a b:c" "-H keeps the value as given"
is "$(header Authorization | sort -u)" "Bearer s3cr3t-T0ken.xyz" "--bearer-env: Authorization: Bearer <token> on every request"
is "$(grep -c 's3cr3t' "$W/err" "$W/out" | awk -F: '{s += $2} END {print s}')" 0 "--bearer-env: the token is nowhere in stderr or stdout (even with -v)"
stub_stop

stub basicauth
USERPASS='alice:pa ss:w0rd' pub 10 "$W/h.in" -v --basic-env USERPASS "$URL"
is "$RC" 0 "--basic-env: exit 0"
is "$(header Authorization | sort -u)" "Basic $(printf 'alice:pa ss:w0rd' | base64)" "--basic-env: Authorization: Basic base64(user:password)"
is "$(grep -c 'pa ss' "$W/err")" 0 "--basic-env: the password is not in stderr"
stub_stop

printf 'tok-from-file\nsecond line ignored\n' >"$W/token"
stub bearerfile
pub 10 "$W/h.in" --bearer-file "$W/token" "$URL"
is "$(header Authorization | sort -u)" "Bearer tok-from-file" "--bearer-file: the first line of the file"
stub_stop

# --bearer-command: the token a command prints, renewed every --bearer-refresh
cat >"$W/tokcmd" <<EOF
n=\$(cat "$W/tokn" 2>/dev/null || echo 0); n=\$((n + 1)); echo \$n >"$W/tokn"; echo "cmd-tok-\$n"
EOF
rm -f "$W/tokn"
stub bearercmd --latency 400
pub 20 "$W/h.in" -v --bearer-command "sh $W/tokcmd" --bearer-refresh 0.3 "$URL"
is "$RC" 0 "--bearer-command: exit 0"
# (cmd-tok-1 unless starting took longer than --bearer-refresh: then a newer one)
like "$(header Authorization | head -1)" '^Bearer cmd-tok-[0-9]+$' "--bearer-command: the first request carries the command's token"
is "$(header Authorization | sort -u | wc -l)" "$(nreq)" "--bearer-command: renewed before each request once older than --bearer-refresh 0.3 s (requests 0.4 s apart)"
is "$(grep -c 'cmd-tok' "$W/err" "$W/out" | awk -F: '{s += $2} END {print s}')" 0 "--bearer-command: the tokens are nowhere in stderr or stdout (even with -v)"
like "$(cat "$W/err")" 'msg="bearer token renewed by --bearer-command"' "--bearer-command: each renewal logged, without the token"
stub_stop
pub 5 "$W/h.in" --bearer-command "exit 3" http://127.0.0.1:9/
is "$RC" 2 "--bearer-command failing at start: exit 2"
like "$(cat "$W/err")" 'msg="--bearer-command failed" error="exit status not 0" status=3' "--bearer-command failing: says how"
t0=$SECONDS
pub 10 "$W/h.in" --timeout 1 --bearer-command "sleep 30" http://127.0.0.1:9/
is "$RC $((SECONDS - t0 <= 4))" "2 1" "--bearer-command that hangs: killed after --timeout, exit 2"
like "$(cat "$W/err")" 'error="no answer within --timeout, killed"' "--bearer-command that hangs: says so"
pub 5 "$W/h.in" --bearer-command true --bearer-env X http://127.0.0.1:9/
is "$RC" 2 "--bearer-command with --bearer-env: usage error"

for h in 'Authorization: x' 'authorization: Bearer x' 'AUTHORIZATION:x'; do
	pub 5 "$W/h.in" -H "$h" http://127.0.0.1:9/
	is "$RC" 2 "-H '$h' is a usage error (exit 2)"
	like "$(cat "$W/err")" "no credentials on the command line" "-H '$h': says why"
done
pub 5 "$W/h.in" --bearer-env PGCDC_NO_SUCH_VARIABLE http://127.0.0.1:9/
is "$RC" 2 "--bearer-env with the variable unset: exit 2"
like "$(cat "$W/err")" 'credentials variable is not set.*PGCDC_NO_SUCH_VARIABLE' "--bearer-env unset: names the variable"

# ----------------------------------------------------- retries: a storm of 5xx

gen 3 2 2 >"$W/r.in"
published "$W/r.in" >"$W/r.events"
stub storm --script '500,502,503,504,408,429,500'
ack_open
pub 20 "$W/r.in" --ack-fifo "$W/ack" --retry-max-delay 0.2 "$URL"
ack_close
is "$RC" 0 "5xx storm then success: exit 0"
is "$(nreq)" $((6 + 7)) "5xx storm: 7 failed attempts + 6 deliveries"
is "$(jq -r 'select(.action == "200") | .body' "$LOG")" "$(cat "$W/r.events")" "5xx storm: every event delivered once with 200, in order"
is "$(jq -r .body "$LOG" | head -8 | sort -u)" "$(head -1 "$W/r.events")" "5xx storm: the first event retried until it went through"
retries=$(grep 'msg="delivery failed, will retry"' "$W/err")
is "$(printf '%s\n' "$retries" | grep -c .)" 7 "5xx storm: one warn line per failed attempt"
is "$(printf '%s\n' "$retries" | grep -oE ' http_status=[0-9]+' | cut -d= -f2 | tr '\n' ' ')" "500 502 503 504 408 429 500 " \
	"5xx storm: each retry line has the status"
is "$(printf '%s\n' "$retries" | grep -cE '^ts=[^ ]+ level=warn prog=cdc-publish msg="delivery failed, will retry" table=public\.t id=0/1001000:0 .*attempt=[0-9]+ delay_ms=[0-9]+ left_ms=[0-9]+$')" 7 \
	"5xx storm: retry lines are logfmt with table, id, attempt, delay_ms, left_ms"
is "$(printf '%s\n' "$retries" | grep -oE 'delay_ms=[0-9]+' | cut -d= -f2 | awk '$1 > 200' | wc -l | tr -d ' ')" 0 \
	"5xx storm: no delay above --retry-max-delay 0.2"
is "$ACKS" "$(commits "$W/r.in")" "5xx storm: all three commits acknowledged, in order"
stub_stop

# ------------------- the target back after an outage: waiting requests go at once

# event A fails through an outage until its backoff is long; then event B
# (another key) comes, is accepted, and A must go at once, not when its
# 1.5-3 s backoff is over
gen 1 1 1 >"$W/wa.in"
gen 1 1 1 2 | sed 's/"key":{"id":1}/"key":{"id":2}/; s/"new":{"id":1,/"new":{"id":2,/' >"$W/wb.in"
mkfifo "$W/wake.fifo"
stub wake --script '503*6'
(
	exec 3>"$W/wake.fifo"
	cat "$W/wa.in" >&3
	wait_for 20 has_requests "$LOG" 6
	cat "$W/wb.in" >&3
) &
pub 30 "$W/wake.fifo" --parallel 2 --retry-max-delay 3 "$URL"
is "$RC" 0 "outage then recovery: exit 0"
is "$(jq -r '.action' "$LOG" | tr '\n' ' ')" "503 503 503 503 503 503 200 200 " \
	"outage then recovery: A refused six times, then B and A accepted"
is "$(jq -r 'select(.action == "200") | .body' "$LOG")" "$(published "$W/wb.in"; published "$W/wa.in")" \
	"outage then recovery: B first, then A"
g=$(gap_ms 7 8)
if [ "$g" -le 300 ]; then
	pass "outage then recovery: A went ${g} ms after B was accepted, not after its own backoff"
else fail "outage then recovery: A goes at once once B is accepted" "${g} ms later"; fi
stub_stop

# ------------------------------------------------------ 429 with Retry-After

gen 1 1 1 >"$W/one.in"
stub retryafter --script '429:retry-after=2'
pub 15 "$W/one.in" "$URL"
is "$RC" 0 "429 Retry-After: 2: exit 0"
is "$(nreq)" 2 "429 Retry-After: 2: sent twice"
g=$(gap_ms 1 2)
if [ "$g" -ge 1900 ]; then pass "429 Retry-After: 2: the retry came ${g} ms later (>= 1900)"; else fail "429 Retry-After: 2: retry waited at least 1.9 s" "${g} ms"; fi
like "$(cat "$W/err")" 'status=429 .*delay_ms=2000 ' "429 Retry-After: the logged delay is 2000 ms"
stub_stop

# the HTTP-date form: a date 3 s after the answer (whole seconds) means at least 2 s
stub retrydate --script '429:retry-after-in=3'
pub 15 "$W/one.in" "$URL"
is "$RC/$(nreq)" "0/2" "429 Retry-After: HTTP-date: exit 0, sent twice"
g=$(gap_ms 1 2)
if [ "$g" -ge 1900 ]; then pass "429 Retry-After: HTTP-date: the retry came ${g} ms later (>= 1900)"; else fail "429 Retry-After: HTTP-date: retry waited at least 1.9 s" "${g} ms"; fi
stub_stop

# ------------------------------------------------- hang, reset, slow endpoint

stub hang --script 'hang'
pub 15 "$W/one.in" --timeout 1 "$URL"
is "$RC" 0 "hang with --timeout 1, then 200: exit 0"
is "$(nreq)" 2 "hang: the request was sent again"
is "$(bodies | sort -u)" "$(published "$W/one.in")" "hang: both attempts carry the event"
g=$(gap_ms 1 2)
if [ "$g" -ge 950 ] && [ "$g" -lt 3000 ]; then pass "hang: retried after the 1 s timeout (${g} ms)"; else fail "hang: retried after the 1 s timeout" "${g} ms"; fi
like "$(cat "$W/err")" 'msg="delivery failed, will retry".*error="[^"]*([Tt]imeout|timed out)' "hang: the retry line says it timed out"
stub_stop

stub reset --script 'reset,reset'
ack_open
pub 15 "$W/one.in" --ack-fifo "$W/ack" "$URL"
ack_close
is "$RC" 0 "connection reset twice, then 200: exit 0"
is "$(nreq)" 3 "reset: three attempts"
like "$(grep 'will retry' "$W/err" | head -1)" 'error="[^"]*(reset|Recv failure|Empty reply)' "reset: the retry line names the connection error"
is "$ACKS" "$(commits "$W/one.in")" "reset: the commit acknowledged once delivered"
stub_stop

stub slow --default 'slow:300'
pub 15 "$W/r.in" --timeout 2 "$URL"
is "$RC" 0 "slow endpoint (300 ms per answer): exit 0"
is "$(bodies)" "$(cat "$W/r.events")" "slow endpoint: each event sent once, in order, no retry"
if [ "$MS" -ge 1800 ]; then pass "slow endpoint: answers awaited one after the other (${MS} ms for 6)"; else fail "slow endpoint: answers awaited" "${MS} ms"; fi
stub_stop

stub slowtimeout --script 'slow:1500'
pub 15 "$W/one.in" --timeout 1 "$URL"
is "$RC" 0 "an answer slower than --timeout: retried, exit 0"
is "$(nreq)" 2 "slower than --timeout: sent twice (the queue sees a repeat, same id)"
stub_stop

# ----------------------------------------------------- persistent 500: give up

gen 3 2 2 >"$W/p.in"
stub persistent --script '200,200' --default 500
ack_open
pub 15 "$W/p.in" --ack-fifo "$W/ack" --retry-max-time 3 "$URL"
ack_close
is "$RC" 4 "persistent 500 with --retry-max-time 3: exit 4"
if [ "$MS" -le 5000 ]; then pass "persistent 500: gave up within 5 s (${MS} ms)"; else fail "persistent 500: gave up within 5 s" "${MS} ms"; fi
first_commit=$(commits "$W/p.in" | head -1)
is "$ACKS" "$first_commit" "persistent 500: the first transaction acknowledged, nothing at or after the failing one"
like "$(cat "$W/err")" 'level=error .*msg="giving up: delivery kept failing past --retry-max-time" table=public\.t id=0/1002000:0 http_status=500' \
	"persistent 500: the error line names the table, the id and the status"
is "$(jq -r .body "$LOG" | sort -u | grep -c 'tx0003')" 0 "persistent 500: nothing of the third transaction sent"
stub_stop

# nothing listening at all
pub 10 "$W/p.in" --retry-max-time 1 http://127.0.0.1:9/events
is "$RC" 4 "connection refused with --retry-max-time 1: exit 4"
like "$(grep 'will retry' "$W/err" | head -1)" "error=\"[^\"]*(Couldn't connect|Connection refused)" "connection refused: the retry line says so"

# --------------------------------------------------------- 400: refusal

stub refused --script '200,200,400:body=no such field: v'
ack_open
pub 10 "$W/p.in" --ack-fifo "$W/ack" "$URL"
ack_close
is "$RC" 9 "400: exit 9"
is "$ACKS" "$first_commit" "400: the refused transaction's commit is not acknowledged (the one before is)"
rej=$(grep 'level=error' "$W/err" | grep -v 'msg=exiting')
is "$(printf '%s\n' "$rej" | grep -c .)" 1 "400: one error line"
like "$rej" 'msg="rejected by the queue[^"]*" table=public\.t id=0/1002000:0 http_status=400 error="HTTP 400: no such field: v"' \
	"400: the error line names the table, the id, the status and the answer"
is "$(nreq)" 3 "400: nothing sent after the refused event"
stub_stop

rm -f "$W/dead"
stub deadletter --script '200,200,400:body=no such field: v'
ack_open
pub 10 "$W/p.in" --ack-fifo "$W/ack" --dead-letter "$W/dead" "$URL"
ack_close
is "$RC" 0 "400 with --dead-letter: exit 0"
is "$ACKS" "$(commits "$W/p.in")" "400 with --dead-letter: every commit acknowledged, the refused one's too"
is "$(grep -c . "$W/dead")" 1 "--dead-letter: one line in the file"
refused=$(published "$W/p.in" | sed -n 3p)
dl=$(cat "$W/dead")
is "${dl%%,\"dead_letter\":\{*}" "${refused%\}}" "--dead-letter: the line is the event as it came, then the dead_letter member"
is "$(jq -c '.dead_letter | [.status, .error]' <<<"$dl")" '[400,"HTTP 400: no such field: v"]' "--dead-letter: dead_letter has status 400 and the answer"
is "$(jq -r 'select(.action == "200") | .body' "$LOG")" "$(published "$W/p.in" | sed 3d)" "--dead-letter: every other event delivered in order"
like "$(cat "$W/err")" 'level=warn .*msg="rejected, dead-lettered" table=public\.t id=0/1002000:0 http_status=400' "--dead-letter: a warn line for it"
stub_stop

stub replay
pub 10 "$W/dead" "$URL"
is "$RC" 0 "replaying the dead-letter file: exit 0"
is "$(bodies)" "$refused" "replaying the dead-letter file: exactly the original event line, without dead_letter"
stub_stop

# a column that happens to be called dead_letter is data, not a dead-letter mark
cat >"$W/dlcol.in" <<'EOF'
{"op":"begin","xid":9,"lsn":"0/9000","commit_lsn":"0/9100","ts":"2026-11-24T14:31:06.000000Z"}
{"op":"insert","schema":"public","table":"jobs","id":"0/9100:0","lsn":"0/9000","xid":9,"ts":"2026-11-24T14:31:06.000000Z","key":{"id":1},"new":{"id":1,"dead_letter":{"queue":"dlq"}}}
{"op":"commit","xid":9,"lsn":"0/9130","commit_lsn":"0/9100","ts":"2026-11-24T14:31:06.000000Z"}
EOF
stub dlcol
pub 10 "$W/dlcol.in" "$URL"
is "$RC" 0 "an event with a json column named dead_letter: exit 0"
is "$(bodies)" "$(published "$W/dlcol.in")" "an event with a json column named dead_letter: delivered unchanged"
stub_stop

# ------------------------------------------- --parallel: per-key order holds

# check_order INPUT LOG: for each key, the events arrive in input order
# (first attempts and deliveries alike), and an event is sent only once the
# answer to the one before it of the same key is out (never in flight together)
check_order() {
	python3 - "$1" "$2" <<'EOF'
import json, sys
want, got, first, reqs = {}, {}, {}, {}
for l in open(sys.argv[1]):
    e = json.loads(l)
    if e["op"] in ("insert", "update", "delete"):
        want.setdefault(json.dumps(e["key"]), []).append(e["id"])
for l in open(sys.argv[2]):
    r = json.loads(l)
    e = json.loads(r["body"])
    k = json.dumps(e["key"])
    reqs.setdefault(e["id"], []).append(r)
    if e["id"] not in first.setdefault(k, []):
        first[k].append(e["id"])
    if r["action"] != "500":
        got.setdefault(k, []).append(e["id"])
for k in want:
    if got.get(k) != want[k] or first.get(k) != want[k]:
        print("key %s: want %s, got %s" % (k, want[k][:8], got.get(k, [])[:8]))
        sys.exit()
    for a, b in zip(want[k], want[k][1:]):
        done = max(r["reply_at"] for r in reqs[a])
        start = min(r["t"] for r in reqs[b])
        if start < done:
            print("key %s: %s sent %.3f s before the answer to %s" % (k, b, done - start, a))
            sys.exit()
print("ok")
EOF
}
reordered() { [ "$(jq -r 'select(.action != "500") | .ids[0]' "$2")" != "$(grep '"op":"insert"' "$1" | jq -r .id)" ]; }
nondecreasing() { python3 -c '
import sys
v = [int(a, 16) << 32 | int(b, 16) for a, b in (l.split("/") for l in sys.stdin.read().split())]
sys.exit(v != sorted(v))' <<<"$1"; }

gen 40 5 6 >"$W/par.in"	# 200 events over 6 keys
published "$W/par.in" >"$W/par.events"
stub parallel --default 'slow:0-25' --seed 7
ack_open
pub 30 "$W/par.in" --ack-fifo "$W/ack" --parallel 8 --window 64 "$URL"
ack_close
is "$RC" 0 "--parallel 8: exit 0"
is "$(nreq)" 200 "--parallel 8: 200 requests for 200 events"
is "$(bodies | sort)" "$(sort "$W/par.events")" "--parallel 8: every event arrived exactly once"
is "$(check_order "$W/par.in" "$LOG")" ok "--parallel 8: per-key order holds in arrival order, never two of a key in flight together"
if reordered "$W/par.in" "$LOG"; then pass "--parallel 8: events of different keys did overtake each other (the order check means something)"; else fail "--parallel 8: no reordering happened at all"; fi
is "$ACKS" "$(commits "$W/par.in")" "--parallel 8: all 40 commits acknowledged, in commit order"
if nondecreasing "$ACKS"; then pass "--parallel 8: acknowledgements non-decreasing"; else fail "--parallel 8: acknowledgements non-decreasing"; fi
stub_stop

gen 24 5 6 >"$W/par2.in"	# 120 events, each refused once with 500 first
stub parallel_fail --fail-per-id 1 --default 'slow:0-10' --seed 11
ack_open
pub 30 "$W/par2.in" --ack-fifo "$W/ack" --parallel 8 --retry-max-delay 0.05 "$URL"
ack_close
is "$RC" 0 "--parallel 8, every event answered 500 once: exit 0"
is "$(nreq)" 240 "--parallel 8 with a 500 per event: 240 requests"
is "$(check_order "$W/par2.in" "$LOG")" ok "--parallel 8 with retries: per-key order holds for first attempts and deliveries, never two of a key in flight"
is "$ACKS" "$(commits "$W/par2.in")" "--parallel 8 with retries: all commits acknowledged in order"
stub_stop

# a truncate changes every row of its table: row events before it are
# answered before it is sent, and row events after it wait for its answer
gen 1 4 4 >"$W/trunc.in"
cat >>"$W/trunc.in" <<'EOF'
{"op":"begin","xid":1500,"lsn":"0/1500000","commit_lsn":"0/1500100","ts":"2026-11-24T14:31:06.000000Z"}
{"op":"truncate","schema":"public","table":"t","id":"0/1500100:0","lsn":"0/1500000","xid":1500,"ts":"2026-11-24T14:31:06.000000Z","cascade":false,"restart_identity":false}
{"op":"commit","xid":1500,"lsn":"0/1500130","commit_lsn":"0/1500100","ts":"2026-11-24T14:31:06.000000Z"}
EOF
gen 1 4 4 1600 >>"$W/trunc.in"
stub truncate --script 'slow:300*4,slow:600' --default 'slow:0-20'
pub 20 "$W/trunc.in" --parallel 8 "$URL"
is "$RC" 0 "--parallel 8 with a truncate: exit 0"
is "$(python3 - "$LOG" <<'EOF'
import json, sys
reqs = [json.loads(l) for l in open(sys.argv[1])]
tr = [r for r in reqs if '"op":"truncate"' in r["body"]][0]
before = [r for r in reqs if "tx0001" in r["body"]]
after = [r for r in reqs if "tx1600" in r["body"]]
bad = ["%s sent before the answer to the truncate" % json.loads(r["body"])["id"] for r in after if r["t"] < tr["reply_at"]]
bad += ["truncate sent before the answer to %s" % json.loads(r["body"])["id"] for r in before if tr["t"] < r["reply_at"]]
print("; ".join(bad) or "ok")
EOF
)" ok "--parallel 8: a truncate and the row events of its table are never in flight together"
stub_stop

# ordered LOG "A B" ... FREE FIRST: each pair's B was sent only after the answer
# to A (ids by index in the transaction), and FREE was not held back by FIRST
ordered() {
	python3 - "$LOG" "$@" <<'EOF'
import json, sys
reqs = {json.loads(r["body"])["id"].split(":")[1]: r for r in map(json.loads, open(sys.argv[1]))}
*pairs, free, first = sys.argv[2:]
bad = ["event %s sent before the answer to %s" % (b, a) for a, b in map(str.split, pairs)
       if reqs[b]["t"] < reqs[a]["reply_at"]]
if reqs[free]["t"] >= reqs[first]["reply_at"]:
    bad.append("%s waited for no reason" % free)
print("; ".join(bad) or "ok")
EOF
}

# an update that changes the key comes after what was sent under the old
# key: a primary key changed (old holds the old key), and a table with
# REPLICA IDENTITY FULL and no primary key (the key is every column)
cat >"$W/rekey.in" <<'EOF'
{"op":"begin","xid":1700,"lsn":"0/1700000","commit_lsn":"0/1700100","ts":"2026-11-24T14:31:06.000000Z"}
{"op":"insert","schema":"public","table":"t","id":"0/1700100:0","lsn":"0/1700000","xid":1700,"ts":"2026-11-24T14:31:06.000000Z","key":{"id":1},"new":{"id":1,"v":"a"}}
{"op":"insert","schema":"public","table":"f","id":"0/1700100:1","lsn":"0/1700008","xid":1700,"ts":"2026-11-24T14:31:06.000000Z","key":{"a":1,"b":"x"},"new":{"a":1,"b":"x"}}
{"op":"update","schema":"public","table":"t","id":"0/1700100:2","lsn":"0/1700010","xid":1700,"ts":"2026-11-24T14:31:06.000000Z","key":{"id":2},"new":{"id":2,"v":"a"},"old":{"id":1}}
{"op":"update","schema":"public","table":"f","id":"0/1700100:3","lsn":"0/1700018","xid":1700,"ts":"2026-11-24T14:31:06.000000Z","key":{"a":1,"b":"y"},"new":{"a":1,"b":"y"},"old":{"a":1,"b":"x"}}
{"op":"insert","schema":"public","table":"t","id":"0/1700100:4","lsn":"0/1700020","xid":1700,"ts":"2026-11-24T14:31:06.000000Z","key":{"id":3},"new":{"id":3,"v":"c"}}
{"op":"commit","xid":1700,"lsn":"0/1700130","commit_lsn":"0/1700100","ts":"2026-11-24T14:31:06.000000Z"}
EOF
stub rekey --script 'slow:400,slow:400' --default 'slow:0-5'
pub 20 "$W/rekey.in" --parallel 8 "$URL"
is "$RC/$(nreq)" "0/5" "--parallel 8, key-changing updates: exit 0, 5 requests"
is "$(ordered "0 2" "1 3" 4 0)" ok "--parallel 8: an update waits for the events of its old key (changed primary key; REPLICA IDENTITY FULL), other keys do not"
stub_stop

# REPLICA IDENTITY FULL without a primary key, an update that leaves a
# TOASTed column unchanged: its key lacks that column, so it is ordered with
# its whole table: after the insert, and before the delete that follows
cat >"$W/toast.in" <<'EOF'
{"op":"begin","xid":1800,"lsn":"0/1800000","commit_lsn":"0/1800100","ts":"2026-11-24T14:31:06.000000Z"}
{"op":"insert","schema":"public","table":"f","id":"0/1800100:0","lsn":"0/1800000","xid":1800,"ts":"2026-11-24T14:31:06.000000Z","key":{"id":1,"body":"big","n":0},"new":{"id":1,"body":"big","n":0}}
{"op":"update","schema":"public","table":"f","id":"0/1800100:1","lsn":"0/1800008","xid":1800,"ts":"2026-11-24T14:31:06.000000Z","key":{"id":1,"n":1},"new":{"id":1,"n":1},"old":{"id":1,"body":"big","n":0},"unchanged":["body"]}
{"op":"delete","schema":"public","table":"f","id":"0/1800100:2","lsn":"0/1800010","xid":1800,"ts":"2026-11-24T14:31:06.000000Z","key":{"id":1,"body":"big","n":1},"old":{"id":1,"body":"big","n":1}}
{"op":"insert","schema":"public","table":"g","id":"0/1800100:3","lsn":"0/1800018","xid":1800,"ts":"2026-11-24T14:31:06.000000Z","key":{"id":1},"new":{"id":1}}
{"op":"commit","xid":1800,"lsn":"0/1800130","commit_lsn":"0/1800100","ts":"2026-11-24T14:31:06.000000Z"}
EOF
stub toast --script 'slow:400,slow:400' --default 'slow:0-5'
pub 20 "$W/toast.in" --parallel 8 "$URL"
is "$RC/$(nreq)" "0/4" "--parallel 8, FULL identity update with an unchanged TOAST column: exit 0, 4 requests"
is "$(ordered "0 1" "1 2" 3 0)" ok "--parallel 8: that update follows the insert and precedes the delete; other tables do not wait"
stub_stop

# A key column the server did not send (key_missing): the key is not the
# row's, so the event is ordered with its whole table
cat >"$W/kmiss.in" <<'EOF'
{"op":"begin","xid":1900,"lsn":"0/1900000","commit_lsn":"0/1900100","ts":"2026-11-24T14:31:06.000000Z"}
{"op":"insert","schema":"public","table":"k","id":"0/1900100:0","lsn":"0/1900000","xid":1900,"ts":"2026-11-24T14:31:06.000000Z","key":{"code":"big","n":1},"new":{"code":"big","n":1,"v":0}}
{"op":"update","schema":"public","table":"k","id":"0/1900100:1","lsn":"0/1900008","xid":1900,"ts":"2026-11-24T14:31:06.000000Z","key":{"n":1},"key_missing":["code"],"new":{"n":1,"v":1},"unchanged":["code"]}
{"op":"delete","schema":"public","table":"k","id":"0/1900100:2","lsn":"0/1900010","xid":1900,"ts":"2026-11-24T14:31:06.000000Z","key":{"code":"big","n":1},"old":{"code":"big","n":1}}
{"op":"insert","schema":"public","table":"g","id":"0/1900100:3","lsn":"0/1900018","xid":1900,"ts":"2026-11-24T14:31:06.000000Z","key":{"id":1},"new":{"id":1}}
{"op":"commit","xid":1900,"lsn":"0/1900130","commit_lsn":"0/1900100","ts":"2026-11-24T14:31:06.000000Z"}
EOF
stub kmiss --script 'slow:400,slow:400' --default 'slow:0-5'
pub 20 "$W/kmiss.in" --parallel 8 "$URL"
is "$RC/$(nreq)" "0/4" "--parallel 8, an update whose key lacks a column: exit 0, 4 requests"
is "$(ordered "0 1" "1 2" 3 0)" ok "--parallel 8: an event with key_missing follows the insert and precedes the delete; other tables do not wait"
stub_stop

# ----------------------------------------------------------------- bad input

# line 3 broken after two non-transactional messages; a whole transaction after it
{
	sed -n '1p;1p' "$TOP/tests/golden/decode/message/expected.pgoutput" | sed '2s/0\/25EF128:m/0\/25EF129:m/'
	echo '{"op":"insert","schema":"public","table":"t","id":"0/1:0",'
	gen 1 1 1
} >"$W/bad3.in"
stub bad3
ack_open
pub 10 "$W/bad3.in" --ack-fifo "$W/ack" "$URL"
ack_close
is "$RC" 3 "broken JSON on line 3: exit 3"
like "$(grep level=error "$W/err" | head -1)" 'msg="bad input line, stopping before it" line=3 ' "broken JSON: the error names line 3"
is "$(bodies)" "$(head -2 "$W/bad3.in")" "broken JSON on line 3: lines 1 and 2 delivered, nothing after"
is "$ACKS" "" "broken JSON on line 3: nothing to acknowledge"
stub_stop

# two whole transactions, then a transaction broken at its second event
{ gen 2 1 1; gen 1 2 1 3 | sed '3s/.*/{"op":"insert","schema":"public",/'; gen 1 1 1 4; } >"$W/bad9.in"
stub bad9
ack_open
pub 10 "$W/bad9.in" --ack-fifo "$W/ack" "$URL"
ack_close
is "$RC" 3 "broken JSON on line 9: exit 3"
like "$(cat "$W/err")" 'line=9 ' "broken JSON on line 9: named"
is "$(bodies)" "$(head -8 "$W/bad9.in" | published /dev/stdin)" "broken JSON on line 9: the events before it delivered"
is "$ACKS" "$(head -6 "$W/bad9.in" | commits /dev/stdin)" "broken JSON on line 9: the two transactions before it acknowledged, not the broken one"
stub_stop

# a line that is not UTF-8 (a LATIN1 byte, as a database in that encoding
# would write it): two whole transactions, then one whose second event has it
{ gen 2 1 1; gen 1 2 1 3 | sed '3s/"v":"tx0003\.001"/"v":"caf\xe9"/'; gen 1 1 1 4; } >"$W/latin1.in"
stub latin1
ack_open
pub 10 "$W/latin1.in" --ack-fifo "$W/ack" "$URL"
ack_close
is "$RC" 3 "a LATIN1 byte on line 9: exit 3"
is "$(grep level=error "$W/err" | grep -v msg=exiting | sed -E 's/^ts=[^ ]+ //')" \
	'level=error prog=cdc-publish msg="bad input line, stopping before it" line=9 error="invalid UTF-8: sequence cut short" hint="--on-error skip|dead-letter to go on"' \
	"a LATIN1 byte on line 9: one error line naming line 9 and why"
is "$(bodies)" "$(head -8 "$W/latin1.in" | published /dev/stdin)" "a LATIN1 byte on line 9: the events before it delivered, nothing after"
is "$ACKS" "$(head -6 "$W/latin1.in" | commits /dev/stdin)" "a LATIN1 byte on line 9: the two transactions before it acknowledged, not its own"
stub_stop

rm -f "$W/dead"
stub latin1dl
ack_open
pub 10 "$W/latin1.in" --ack-fifo "$W/ack" --on-error dead-letter --dead-letter "$W/dead" "$URL"
ack_close
is "$RC" 0 "a LATIN1 line, --on-error dead-letter: exit 0"
is "$(bodies)" "$(sed 9d "$W/latin1.in" | published /dev/stdin)" "a LATIN1 line, --on-error dead-letter: every other event delivered, in order"
is "$ACKS" "$(sed 9d "$W/latin1.in" | commits /dev/stdin)" "a LATIN1 line, --on-error dead-letter: every commit acknowledged"
is "$(jq -c '[.op, .dead_letter.input_line, .dead_letter.error]' "$W/dead" 2>&1)" '["invalid",9,"invalid UTF-8: sequence cut short"]' \
	"a LATIN1 line, --on-error dead-letter: one record naming line 9 and why"
if jq -r .line_base64 "$W/dead" | base64 -d | cmp -s - <(sed -n 9p "$W/latin1.in" | tr -d '\n'); then
	pass "a LATIN1 line, --on-error dead-letter: its bytes kept exactly, as line_base64"
else
	fail "a LATIN1 line, --on-error dead-letter: its bytes kept exactly, as line_base64" "$(head -c 300 "$W/dead")"
fi
stub_stop

unknown='{"op":"frobnicate","schema":"public","table":"t","id":"0/1001000:1"}'
{ gen 1 1 1; echo "$unknown"; gen 1 1 1 2; } >"$W/unk.in"
stub unknown
pub 10 "$W/unk.in" "$URL"
is "$RC" 3 "unknown op: exit 3"
like "$(cat "$W/err")" 'line=4 error="unknown op"' "unknown op: named, with its line"
is "$(nreq)" 1 "unknown op: only the event before it sent"
stub_stop

stub skip
ack_open
pub 10 "$W/unk.in" --ack-fifo "$W/ack" --on-error skip "$URL"
ack_close
is "$RC" 0 "--on-error skip: exit 0"
is "$(bodies)" "$(published "$W/unk.in" | grep -v frobnicate)" "--on-error skip: the bad line not sent, the others are"
is "$ACKS" "$(commits "$W/unk.in")" "--on-error skip: both commits acknowledged"
like "$(cat "$W/err")" 'level=warn .*msg="bad input line skipped" line=4' "--on-error skip: a warn line"
stub_stop

rm -f "$W/dead"
{ gen 1 1 1; echo '{"op":"insert","schema":"public","table":"t","key":{"id":3},"new":{"id":3,'; echo "$unknown"; gen 1 1 1 2; } >"$W/dlin.in"
stub dlinput
pub 10 "$W/dlin.in" --on-error dead-letter --dead-letter "$W/dead" "$URL"
is "$RC" 0 "--on-error dead-letter: exit 0"
is "$(bodies)" "$(published "$W/dlin.in" | sed -n '1p;$p')" "--on-error dead-letter: the good events delivered"
is "$(grep -c . "$W/dead")" 2 "--on-error dead-letter: both bad lines in the file"
is "$(sed -n 2p "$W/dead" | jq -c '.dead_letter | [.status, .input_line]' 2>&1)" "[0,5]" \
	"--on-error dead-letter: the unknown-op line has a dead_letter member (status 0, input line 5)"
is "$(sed -n 1p "$W/dead" | jq -c '.dead_letter | [.status, .input_line]' 2>&1)" "[0,4]" \
	"--on-error dead-letter: the broken line's entry is valid JSON with a dead_letter member (status 0, input line 4)"
is "$(sed -n 2p "$W/dead" | jq -r .line)" "$unknown" "--on-error dead-letter: the unknown-op line kept whole, as the string \"line\" (op invalid)"
is "$(sed -n 1p "$W/dead" | jq -r 'if .op == "invalid" then .line else "op is " + (.op | tostring) end' 2>&1)" "$(sed -n 4p "$W/dlin.in")" \
	"--on-error dead-letter: the broken line kept whole as a string (op invalid)"
stub_stop

{ gen 1 1 1; printf '{"op":"insert","schema":"public","table":"t","id":"0/9:0","new":{"v":"%s"}}\n' "$(head -c 1200 /dev/zero | tr '\0' x)"; gen 1 1 1 2; } >"$W/long.in"
stub long
ack_open
pub 10 "$W/long.in" --ack-fifo "$W/ack" --max-line 1000 "$URL"
ack_close
is "$RC" 3 "a 1300-byte line with --max-line 1000: exit 3"
like "$(cat "$W/err")" 'line=4 error="line longer than --max-line"' "oversize line: named"
is "$(bodies)" "$(published "$W/long.in" | head -1)" "oversize line: the event before it delivered, nothing after"
is "$ACKS" "$(commits "$W/long.in" | head -1)" "oversize line: the transaction before it acknowledged"
stub_stop

{ gen 1 1 1; gen 1 1 1 2 | sed '3s/"lsn":"[^"]*"/"lsn":"0\/zz"/'; gen 1 1 1 3; } >"$W/badlsn.in"
stub badlsn
ack_open
pub 10 "$W/badlsn.in" --ack-fifo "$W/ack" "$URL"
ack_close
is "$RC" 3 "a commit with an invalid lsn: exit 3"
like "$(cat "$W/err")" 'line=6 error="commit without a valid \\"lsn\\""' "invalid commit lsn: named"
is "$(bodies)" "$(published "$W/badlsn.in" | head -2)" "invalid commit lsn: the events before it delivered"
is "$ACKS" "$(commits "$W/badlsn.in" | head -1)" "invalid commit lsn: only the transaction before it acknowledged"
stub_stop

printf '%s\n%s' "$(gen 1 1 1)" "$(gen 1 1 1 2 | head -2)" >"$W/partial.in"
stub partial
pub 10 "$W/partial.in" "$URL"
is "$RC" 3 "a last line without a newline: exit 3"
like "$(cat "$W/err")" 'line=5 error="last line has no newline' "last line without a newline: named"
stub_stop

# ------------------------------------------------------ SIGTERM while hanging

gen 2 1 1 >"$W/term.in"
stub term --script '200,hang'
rm -f "$W/term.fifo"
mkfifo "$W/term.fifo"
ack_open
"$PUB" --ack-fifo "$W/ack" --stop-timeout 1 "$URL" <"$W/term.fifo" >"$W/out" 2>"$W/err" &
pid=$!
exec 7>"$W/term.fifo"	# stdin stays open, as in a pipeline
cat "$W/term.in" >&7
if wait_for 10 has_requests "$LOG" 2; then
	c0=$(cpu_ticks $pid)
	t0=$(date +%s%N)
	kill -TERM $pid
	sleep 0.7
	c1=$(cpu_ticks $pid)
	wait_exit $pid 5
	MS=$((($(date +%s%N) - t0) / 1000000))
	is "$RC" 0 "SIGTERM while a request hangs: exit 0"
	if [ "$MS" -le 2000 ]; then pass "SIGTERM: exited within --stop-timeout 1 + 1 s (${MS} ms)"; else fail "SIGTERM: exited within --stop-timeout 1 + 1 s" "${MS} ms"; fi
	if [ $((c1 - c0)) -le 5 ]; then pass "SIGTERM: waits without spinning ($((c1 - c0)) CPU ticks in 0.7 s)"; else fail "SIGTERM: waits for requests in flight without spinning" "$((c1 - c0)) CPU ticks (1/100 s) in 0.7 s of wall time"; fi
else
	fail "SIGTERM: the stub saw both requests" "$(nreq) requests"
	kill $pid
	wait_exit $pid 5
fi
exec 7>&-
ack_close
is "$ACKS" "$(commits "$W/term.in" | head -1)" "SIGTERM: the delivered transaction acknowledged, not the hanging one"
like "$(cat "$W/err")" 'msg="stop timeout' "SIGTERM: says requests were left in flight"
stub_stop

# SIGTERM while an answer is on its way: it is awaited and acknowledged
stub termslow --script '200,slow:1200'
rm -f "$W/term.fifo"
mkfifo "$W/term.fifo"
ack_open
"$PUB" --ack-fifo "$W/ack" --stop-timeout 5 "$URL" <"$W/term.fifo" >"$W/out" 2>"$W/err" &
pid=$!
exec 7>"$W/term.fifo"
cat "$W/term.in" >&7
wait_for 10 has_requests "$LOG" 2 || fail "SIGTERM slow: both events sent"
kill -TERM $pid
wait_exit $pid 8
exec 7>&-
ack_close
is "$RC" 0 "SIGTERM while a slow answer is due: exit 0"
is "$ACKS" "$(commits "$W/term.in")" "SIGTERM while a slow answer is due: it was awaited and both transactions acknowledged"
stub_stop

# SIGTERM with nothing in flight, stdin still open: exits at once
stub idle
rm -f "$W/term.fifo"
mkfifo "$W/term.fifo"
ack_open
"$PUB" --ack-fifo "$W/ack" --stop-timeout 5 "$URL" <"$W/term.fifo" >"$W/out" 2>"$W/err" &
pid=$!
exec 7>"$W/term.fifo"
cat "$W/term.in" >&7
wait_for 10 has_requests "$LOG" 2 || fail "SIGTERM idle: both events delivered first"
wait_for 5 test -s "$W/acks"
t0=$(date +%s%N)
kill -TERM $pid
wait_exit $pid 8
MS=$((($(date +%s%N) - t0) / 1000000))
exec 7>&-
ack_close
is "$RC" 0 "SIGTERM while idle: exit 0"
if [ "$MS" -le 1000 ]; then pass "SIGTERM while idle: exits at once (${MS} ms), not after --stop-timeout"; else fail "SIGTERM while idle: exits at once" "${MS} ms"; fi
is "$ACKS" "$(commits "$W/term.in")" "SIGTERM while idle: everything delivered was acknowledged"
stub_stop

# ------------------------------------------------------------ rabbitmq target

gen 1 2 2 >"$W/rmq.in"
stub rabbit --default '200:body={"routed":true}'
pub 10 "$W/rmq.in" --target rabbitmq --routing-key q "${URL%/events}"
is "$RC" 0 "rabbitmq target, routed: exit 0"
is "$(jq -r .path "$LOG" | sort -u)" "/api/exchanges/%2F/amq.default/publish" "rabbitmq: POST to the exchange's publish endpoint"
is "$(jq -r '.body | fromjson | .payload' "$LOG")" "$(published "$W/rmq.in")" "rabbitmq: payload is the event line"
is "$(jq -r '.body | fromjson | [.properties.message_id, .routing_key, .properties.delivery_mode, .payload_encoding] | @tsv' "$LOG")" \
	"$(published "$W/rmq.in" | jq -r '[.id, "q", 2, "string"] | @tsv')" "rabbitmq: message_id is the event id, routing key q, persistent"
stub_stop
stub unrouted --default '200:body={"routed":false}'
pub 30 "$W/rmq.in" --target rabbitmq --routing-key nowhere --retry-max-delay 1 "${URL%/events}"
is "$RC" 9 "rabbitmq: {\"routed\":false} is a refusal (exit 9)"
like "$(cat "$W/err")" 'not routed' "rabbitmq: unrouted says so"
if [ "$MS" -ge 10000 ]; then pass "rabbitmq: unrouted is retried for 10 s first (a broker restarting answers so for a moment): ${MS} ms"
else fail "rabbitmq: unrouted is retried for 10 s first" "refused after ${MS} ms"; fi
like "$(grep -m1 'will retry' "$W/err")" 'not routed.*the broker may be restarting' "rabbitmq: the retries say why"
stub_stop
stub gone404 --default '404:body={"error":"Object Not Found","reason":"Not Found"}'
pub 30 "$W/rmq.in" --target rabbitmq --routing-key q --retry-max-delay 1 "${URL%/events}"
is "$RC" 9 "rabbitmq: a 404 that lasts 10 s is a refusal (exit 9)"
if [ "$MS" -ge 10000 ]; then pass "rabbitmq: 404 retried for 10 s first: ${MS} ms"
else fail "rabbitmq: 404 retried for 10 s first" "refused after ${MS} ms"; fi
stub_stop

stub rabbitfull --script '400:body={"reason":"rejected"}' --default '200:body={"routed":true}'
pub 10 "$W/rmq.in" --target rabbitmq --routing-key q "${URL%/events}"
is "$RC" 0 "rabbitmq: 400 \"rejected\" (queue full, reject-publish) is retried"
is "$(nreq)" 3 "rabbitmq: the rejected message sent again, then the next"
stub_stop

# ------------------------------------------------------------------- --pack

# gen's transactions of 3 events; --pack tx: one message per transaction,
# acknowledged once its message is delivered
gen 6 3 9 >"$W/pack.in"
stub packtx --script '200,500,200'
ack_open
pub 20 "$W/pack.in" --pack tx --ack-fifo "$W/ack" "$URL"
ack_close
is "$RC" 0 "--pack tx: exit 0"
is "$(jq -r 'select(.action == "200") | .body | fromjson | map(.id) | join(" ")' "$LOG")" \
	"$(published "$W/pack.in" | jq -r .id | paste -d' ' - - -)" \
	"--pack tx: one message per transaction, its events as a JSON array in order"
is "$(jq -r '.body' "$LOG" | sed -n 2p)" "$(jq -r '.body' "$LOG" | sed -n 3p)" "--pack tx: a failed message is sent again the same"
is "$ACKS" "$(commits "$W/pack.in")" "--pack tx: every commit acknowledged once, in order"
stub_stop

# a window full of events waiting for delivery does not cut the
# transaction being packed: it waits for room
gen 40 3 7 >"$W/packw.in"
stub packwin
pub 30 "$W/packw.in" --pack tx --window 8 "$URL"
is "$RC" 0 "--pack tx with a small --window: exit 0"
is "$(jq -r '.body | fromjson | map(.id) | join(" ")' "$LOG")" "$(published "$W/packw.in" | jq -r .id | paste -d' ' - - -)" \
	"--pack tx with a small --window: still one message per transaction"
stub_stop

# the message ids of --pack N repeat when a replay starts at any message
# that starts a transaction: pack_n's input has transactions of 1, 4, 2, 7,
# 3 and 1 events, so messages hold whole transactions or cut one from its start
PN=$GOLDEN/pack_n
mapfile -t pnargs <"$PN/args"
ids() { "$PUB" --dry-run "${pnargs[@]}" <"$1" 2>/dev/null | grep -o '"message_id":"[^"]*"' | cut -d'"' -f4; }
ids "$PN/input" >"$W/pn.all"
is "$(wc -l <"$W/pn.all")" 5 "--pack 5: 18 events in 5 messages"
okr=0 nr=0
for b in $(grep -n '"op":"begin"' "$PN/input" | cut -d: -f1); do
	tail -n +"$b" "$PN/input" >"$W/pn.tail"
	first=$(sed -n 2p "$W/pn.tail" | jq -r .id)
	# only a transaction that starts a message can be where a replay starts
	grep -q -e "^$first\.\." -e "^$first\$" "$W/pn.all" || continue
	nr=$((nr + 1))
	ids "$W/pn.tail" >"$W/pn.re"
	awk -v f="$first" 'index($0, f) == 1 { on = 1 } on' "$W/pn.all" >"$W/pn.want"
	cmp -s "$W/pn.re" "$W/pn.want" && okr=$((okr + 1))
done
is "$okr/$nr" "4/4" "--pack 5: a replay from any message boundary packs the same messages with the same ids"

# a transaction larger than --max-message is cut from its start; an event
# larger on its own is refused, unsent, and dead-lettered with the reason
python3 - >"$W/big.in" <<'EOF'
import json
def line(d): print(json.dumps(d, separators=(",", ":")))
line({"op":"begin","xid":5,"lsn":"0/5000","commit_lsn":"0/5100","ts":"2026-11-24T14:31:06.000000Z"})
for i in range(6):
    v = "x" * (3000 if i == 4 else 300)
    line({"op":"insert","schema":"public","table":"t","id":"0/5100:%d" % i,"lsn":"0/5000","xid":5,
        "ts":"2026-11-24T14:31:06.000000Z","key":{"id":i},"new":{"id":i,"v":v}})
line({"op":"commit","xid":5,"lsn":"0/5130","commit_lsn":"0/5100","ts":"2026-11-24T14:31:06.000000Z"})
EOF
rm -f "$W/dead"
stub packbig
ack_open
pub 20 "$W/big.in" --pack tx --max-message 2048 --dead-letter "$W/dead" --ack-fifo "$W/ack" "$URL"
ack_close
is "$RC" 0 "--pack tx over --max-message: exit 0"
is "$(jq -r '.body | fromjson | map(.id) | join(" ")' "$LOG")" "$(printf '%s\n' '0/5100:0 0/5100:1 0/5100:2 0/5100:3' '0/5100:5')" \
	"--pack tx over --max-message: the transaction cut into messages under the limit, in order"
is "$(jq -r '.id' "$W/dead")" "0/5100:4" "--max-message: the event too large alone is dead-lettered"
like "$(jq -r '.dead_letter.error' "$W/dead")" "^too large for the target: [0-9]+ bytes, the limit is 2048" "--max-message: with the reason"
is "$ACKS" "0/5130" "--max-message: the transaction acknowledged"
stub_stop

# ------------------------------------------------------- --dry-run golden cases

# Each tests/golden/publish/CASE/ holds input, args (one argument per line)
# and expected (stdout); env (VAR=value lines) when the case needs
# credentials, whose values must then appear nowhere in the output.
for dir in "$GOLDEN"/*/; do
	c=$(basename "$dir")
	mapfile -t args <"$dir/args"
	envs=()
	[ -f "$dir/env" ] && mapfile -t envs <"$dir/env"
	env ${envs[@]+"${envs[@]}"} timeout -k 5 20 "$PUB" --dry-run "${args[@]}" <"$dir/input" >"$W/dry.out" 2>"$W/dry.err"
	rc=$?
	if [ $rc = 0 ] && cmp -s "$dir/expected" "$W/dry.out"; then
		pass "--dry-run golden $c"
	else
		fail "--dry-run golden $c" "exit status $rc; diff expected got:"
		diff -u "$dir/expected" "$W/dry.out" | sed -n '3,22p' | indent
		head -3 "$W/dry.err" | indent
	fi
	for kv in ${envs[@]+"${envs[@]}"}; do
		v=${kv#*=}
		if grep -qF -- "$v" "$W/dry.out" "$W/dry.err" ||
				grep -qF -- "$(printf '%s' "$v" | base64)" "$W/dry.out" "$W/dry.err"; then
			fail "--dry-run golden $c: the credentials in ${kv%%=*} are redacted"
		else
			pass "--dry-run golden $c: the credentials in ${kv%%=*} are redacted"
		fi
	done
done

# --dry-run waiting for input sleeps: it used to spin while stdin was idle
mkfifo "$W/idle"
"$PUB" --dry-run --batch 10 --linger 5000 "http://127.0.0.1:9/x" <"$W/idle" >"$W/idle.out" 2>"$W/idle.err" &
pid=$!
exec 6>"$W/idle"
head -2 "$W/b.in" >&6
sleeping() { [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = S ]; }
wait_for 5 sleeping $pid || true	# read its input and waits (a spinning one never sleeps)
c0=$(cpu_ticks $pid)
sleep 2	# measuring idleness takes time by nature
c1=$(cpu_ticks $pid)
exec 6>&-
wait_exit $pid 10
is "$RC" 0 "--dry-run with idle input: exit 0 at end of input"
if [ $((c1 - c0)) -le 10 ]; then pass "--dry-run with idle input: $((c1 - c0)) CPU ticks in 2 s (at most 10)"
else fail "--dry-run with idle input sleeps" "$((c1 - c0)) CPU ticks in 2 s"; fi
is "$(grep -c '^POST ' "$W/idle.out")" 1 "--dry-run: the partial batch written at end of input"

done_testing
