#!/usr/bin/env bash
# test: alone (it measures time or memory, or loads the machine)
# Two pg-captures on one slot (two hosts' worth): only one streams, the
# other says once that the slot is in use and waits; kill -9 the active one
# and the standby takes the slot within about a second; every committed
# row reaches one of them, nothing is lost.
set -u
source "$(dirname "$0")/../lib/testlib.sh"
source "$TOP/tests/lib/pgcluster.sh"
T=$(mktemp -d /tmp/pgcdc-standby.XXXXXX)
cleanup() {
	local p
	for p in $(jobs -p); do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	pg_stop
	rm -rf "$T"
}
trap cleanup EXIT
chmod 755 "$T"
pg_start "$T/pg" "$(free_port)" "timezone = 'UTC'" || exit 1
CONN=$(pg_conninfo)
sql "CREATE TABLE t (id int PRIMARY KEY)" >/dev/null
"$PG_CAPTURE" -d "$CONN" -S ha --create-slot --endpos "$(sql "SELECT pg_current_wal_lsn()")" >/dev/null 2>"$T/create.log" ||
	fail "create slot" "$(cat "$T/create.log")"

streaming() { grep -q 'msg=streaming' "$1"; }
in_use() { grep -q 'slot is in use' "$1"; }
rows_in() { local n; n=$(grep -c '"op":"insert"' "$1" 2>/dev/null); echo "${n:-0}"; }
has_rows() { [ "$(rows_in "$1")" -ge "$2" ]; }

timeout -k 5 120 "$PG_CAPTURE" -d "$CONN" -S ha >"$T/a.out" 2>"$T/a.log" &
A=$!
wait_for 20 streaming "$T/a.log" || fail "the first copy streams" "$(tail -3 "$T/a.log")"
timeout -k 5 120 "$PG_CAPTURE" -d "$CONN" -S ha >"$T/b.out" 2>"$T/b.log" &
B=$!
if wait_for 20 in_use "$T/b.log"; then pass "the second copy finds the slot in use"
else fail "the second copy finds the slot in use" "$(tail -3 "$T/b.log")"; fi

sql "INSERT INTO t SELECT generate_series(1, 10)" >/dev/null
wait_for 20 has_rows "$T/a.out" 10
is "$(rows_in "$T/a.out") $(rows_in "$T/b.out")" "10 0" "only the active copy streams"
sleep 3	# a negative claim: three of the standby's tries
is "$(grep -c 'slot is in use' "$T/b.log")" 1 "the standby says so once, not at every try"
is "$(grep -c 'max_slot_wal_keep_size is unset' "$T/b.log")" 1 "nor does it repeat the server's settings at every try"
like "$(grep 'slot is in use' "$T/b.log")" 'level=warn .*msg="replication slot is in use, will take it when it is free" slot=ha' \
	"a warn line naming the slot"

# the copy itself, not the timeout that bounds it
kill -9 "$(pgrep -P "$A" -x pg-capture)"
t0=$(date +%s%N)
taken() { grep -q 'slot is free: taken' "$T/b.log"; }
if wait_for 10 taken "$T/b.log"; then
	ms=$((($(date +%s%N) - t0) / 1000000))
	if [ "$ms" -le 2500 ]; then pass "kill -9 of the active copy: the standby took the slot ${ms} ms later"
	else fail "the standby takes the slot within about a second" "${ms} ms"; fi
else fail "the standby takes the slot" "$(tail -3 "$T/b.log")"; fi
sql "INSERT INTO t SELECT generate_series(11, 20)" >/dev/null
if wait_for 20 has_rows "$T/b.out" 10; then pass "the standby streams what comes next"
else fail "the standby streams what comes next" "$(rows_in "$T/b.out") rows"; fi
# the slot was confirmed only as far as the first copy wrote: what it did not
# write is sent again; nothing is missing between the two
is "$(cat "$T/a.out" "$T/b.out" | grep -o '"new":{"id":[0-9]*' | grep -o '[0-9]*$' | sort -nu | tr '\n' ' ')" \
	"$(seq 1 20 | tr '\n' ' ')" "every row reached one of the copies"
kill -TERM "$B"
wait_exit "$B" 15
is "$RC" 0 "the standby stops cleanly"
done_testing
