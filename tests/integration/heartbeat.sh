#!/usr/bin/env bash
# pg-capture --heartbeat: heartbeat events from a quiet database, end to end
# through cdc-filter and cdc-publish (--dry-run, acknowledging), both
# plugins; the slot moves on a quiet database; another slot's heartbeats are
# not this one's; a role that may not write them is told why, once.
set -u
source "$(dirname "$0")/../lib/testlib.sh"
source "$TOP/tests/lib/pgcluster.sh"
FILTER=$TOP/cdc-filter/cdc-filter
PUBLISH=$TOP/cdc-publish/cdc-publish
T=$(mktemp -d /tmp/pgcdc-heartbeat.XXXXXX)
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
sql "CREATE TABLE t (id int PRIMARY KEY, v text)" >/dev/null

now=$(sql "SELECT pg_current_wal_lsn()")
for s in hb_pgo hb_other; do
	"$PG_CAPTURE" -d "$CONN" -S $s --create-slot --endpos "$now" >/dev/null 2>"$T/create.log" ||
		fail "create slot $s" "$(cat "$T/create.log")"
done
"$PG_CAPTURE" -d "$CONN" -S hb_w2j --plugin wal2json --create-slot --endpos "$now" >/dev/null 2>>"$T/create.log" ||
	fail "create slot hb_w2j" "$(cat "$T/create.log")"
start=$(sql "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'hb_pgo'")

count_hb() { grep -c '"op":"heartbeat"' "$1" 2>/dev/null || echo 0; }
three_hb() { [ "$(count_hb "$1")" -ge 3 ]; }

# the whole pipeline, acknowledging: pg-capture | cdc-filter | cdc-publish --dry-run
mkfifo -m 600 "$T/ack"
(timeout -k 5 60 "$PG_CAPTURE" -d "$CONN" -S hb_pgo --heartbeat 0.3 --ack-fifo "$T/ack" 2>"$T/cap.err" |
	tee "$T/cap.out" |
	timeout -k 5 60 "$FILTER" -t 'public.*' |
	timeout -k 5 60 "$PUBLISH" --dry-run --ack-fifo "$T/ack" http://127.0.0.1:9/events >"$T/pub.out" 2>"$T/pub.err") &
PIPE=$!
if wait_for 30 three_hb "$T/pub.out"; then pass "--heartbeat 0.3: heartbeat events delivered through cdc-filter and cdc-publish"
else fail "--heartbeat: heartbeats delivered" "$(tail -3 "$T/cap.err")"; fi
moved() { [ "$(sql "SELECT confirmed_flush_lsn > '$start' FROM pg_replication_slots WHERE slot_name = 'hb_pgo'")" = t ]; }
if wait_for 20 moved; then pass "--heartbeat: a quiet database's slot moves, its heartbeats acknowledged"
else fail "--heartbeat: the slot moves" "confirmed_flush_lsn still $start"; fi
pkill -TERM -f -- "-S hb_pgo --heartbeat" 2>/dev/null
wait_exit "$PIPE" 30
is "$RC" 0 "the pipeline stops cleanly on SIGTERM"

hb=$(grep -m1 '"op":"heartbeat"' "$T/cap.out")
like "$hb" '^\{"op":"heartbeat","id":"[0-9A-F]+/[0-9A-F]+:0","lsn":"[0-9A-F]+/[0-9A-F]+","xid":[0-9]+,"ts":"20[0-9-]+T[0-9:.]+Z"\}$' \
	"a heartbeat event: op, id, lsn, xid and ts (when it was written), nothing else"
is "$(python3 - "$T/cap.out" <<'EOF'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
bad = 0
for i, e in enumerate(lines):
    if e["op"] == "heartbeat":
        # its own transaction: begin before, commit after, same xid
        if not (i and lines[i - 1]["op"] == "begin" and lines[i + 1]["op"] == "commit"
                and lines[i - 1]["xid"] == e["xid"] == lines[i + 1]["xid"]):
            bad += 1
print("ok" if bad == 0 else "%d heartbeats outside their own transaction" % bad)
EOF
)" ok "each heartbeat in its own transaction (begin, heartbeat, commit)"
# ts: within a few seconds of now
age=$(python3 -c 'import datetime, json, sys
e = [json.loads(l) for l in open(sys.argv[1]) if "\"op\":\"heartbeat\"" in l][-1]
t = datetime.datetime.strptime(e["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
print(int((datetime.datetime.now(datetime.timezone.utc) - t).total_seconds()))' "$T/cap.out")
if [ "$age" -ge 0 ] && [ "$age" -le 30 ]; then pass "a heartbeat's ts is when it was written (${age} s ago)"
else fail "a heartbeat's ts is when it was written" "$age s ago"; fi
is "$(grep -c '"op":"heartbeat"' "$T/pub.out")" "$(count_hb "$T/cap.out")" "cdc-publish sent every heartbeat pg-capture wrote"

# cdc-filter drops them like any op
is "$("$FILTER" --op '!heartbeat' <"$T/cap.out" | grep -c '"op":"heartbeat"')" 0 "cdc-filter --op '!heartbeat' drops them"

# another slot sees the heartbeats in its stream, but they are not its own:
# neither heartbeat nor message events
end=$(sql "SELECT pg_current_wal_lsn()")
timeout -k 5 60 "$PG_CAPTURE" -d "$CONN" -S hb_other --endpos "$end" >"$T/other.out" 2>"$T/other.err"
is "$?" 0 "another slot read to --endpos: exit 0"
is "$(grep -c -e '"op":"heartbeat"' -e '"op":"message"' "$T/other.out")" 0 "another slot's heartbeats are neither heartbeat nor message events here"

# wal2json: the same
(timeout -k 5 60 "$PG_CAPTURE" -d "$CONN" -S hb_w2j --plugin wal2json --heartbeat 0.3 >"$T/w2j.out" 2>"$T/w2j.err") &
W2J=$!
if wait_for 30 three_hb "$T/w2j.out"; then pass "--heartbeat with wal2json: heartbeat events"
else fail "--heartbeat with wal2json" "$(tail -3 "$T/w2j.err")"; fi
kill -TERM "$W2J" 2>/dev/null
pkill -TERM -f -- "-S hb_w2j" 2>/dev/null
wait_exit "$W2J" 30
like "$(grep -m1 '"op":"heartbeat"' "$T/w2j.out")" '^\{"op":"heartbeat","id":"[0-9A-F/]+:0","lsn":"[^"]+","xid":[0-9]+,"ts":"[^"]+"\}$' \
	"--heartbeat with wal2json: the same event"

# a quiet database on a busy server: with nothing of its own to deliver,
# pg-capture confirms the server's keepalive positions, so its slot keeps
# no WAL that other databases write
sql "CREATE DATABASE busy" >/dev/null
"$PG_CAPTURE" -d "$CONN" -S quiet --create-slot --endpos "$(sql "SELECT pg_current_wal_lsn()")" >/dev/null 2>&1
rm -f "$T/q.ack"
mkfifo -m 600 "$T/q.ack"
sleep 120 >"$T/q.ack" &	# an acknowledging stage that has nothing to acknowledge
QA=$!
(timeout -k 5 90 "$PG_CAPTURE" -d "$CONN" -S quiet --ack-fifo "$T/q.ack" --status-interval 1 >"$T/q.out" 2>"$T/q.err") &
QP=$!
BUSY="host=127.0.0.1 port=$PGTEST_PORT dbname=busy user=postgres"
timeout -k 5 120 psql -X -q -d "$BUSY" -c "CREATE TABLE w (id int, v text); INSERT INTO w SELECT i, repeat('b', 400) FROM generate_series(1, 150000) i" >/dev/null
written=$(sql "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn) / 1048576 FROM pg_replication_slots WHERE slot_name = 'quiet'" | cut -d. -f1)
sql "CHECKPOINT" >/dev/null
retained() { sql "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn) / 1048576 FROM pg_replication_slots WHERE slot_name = 'quiet'" | cut -d. -f1; }
low() { [ "$(retained)" -lt 2 ]; }
if [ "${written:-0}" -ge 40 ] && wait_for 40 low; then
	pass "a quiet slot on a busy server: ${written} MB written elsewhere, $(retained) MB retained soon after"
else fail "a quiet slot keeps no WAL of other databases" "written ${written:-?} MB, retained $(retained) MB"; fi
is "$(grep -c '"op"' "$T/q.out")" 0 "the quiet slot wrote no event"
kill "$QP" "$QA" 2>/dev/null
pkill -TERM -f -- "-S quiet --ack-fifo" 2>/dev/null
wait "$QP" "$QA" 2>/dev/null

# a role that may not write them: one warning, and the stream goes on
sql "CREATE ROLE hb_weak LOGIN REPLICATION PASSWORD 'hb-weak-pw'; REVOKE EXECUTE ON FUNCTION pg_logical_emit_message(boolean, text, text) FROM PUBLIC" >/dev/null
WEAK=$(pg_conninfo hb_weak)
sql "GRANT SELECT ON ALL TABLES IN SCHEMA public TO hb_weak" >/dev/null
(PGPASSWORD=hb-weak-pw timeout -k 5 60 "$PG_CAPTURE" -d "$WEAK" -S hb_other --heartbeat 0.2 >"$T/weak.out" 2>"$T/weak.err") &
WK=$!
warned() { grep -q 'could not write a heartbeat' "$T/weak.err"; }
if wait_for 20 warned; then pass "a role that may not write heartbeats: warned"
else fail "a role that may not write heartbeats: warned" "$(tail -3 "$T/weak.err")"; fi
sql "INSERT INTO t VALUES (1, 'still streaming')" >/dev/null
streaming() { grep -q '"op":"insert"' "$T/weak.out"; }
if wait_for 20 streaming; then pass "a role that may not write heartbeats: changes still stream"
else fail "a role that may not write heartbeats: changes still stream" "$(tail -3 "$T/weak.err")"; fi
kill -TERM "$WK" 2>/dev/null
pkill -TERM -f -- "-S hb_other --heartbeat" 2>/dev/null
wait_exit "$WK" 30
is "$(grep -c 'could not write a heartbeat' "$T/weak.err")" 1 "the warning once, not at every heartbeat"
like "$(grep -m1 'could not write a heartbeat' "$T/weak.err")" 'hint="the role needs EXECUTE on pg_logical_emit_message' "the warning says what to grant"

done_testing
