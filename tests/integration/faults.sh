#!/usr/bin/env bash
# Failures a person must fix get one clear line and their own exit status;
# failures that heal (server restart, slow reader) lose and repeat nothing.
set -u
source "$(dirname "$0")/../lib/testlib.sh"
source "$TOP/tests/lib/pgcluster.sh"
T=$(mktemp -d /tmp/pgcdc-test.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; pg_stop; rm -rf "$T"' EXIT
chmod 755 "$T"
HERE=$TOP/tests/integration
pg_start "$T/pg" "$(free_port)" "wal_sender_timeout = '2s'" || exit 1
CONN=$(pg_conninfo)
ncommits() { grep -c '"op":"commit"' "$1" 2>/dev/null; }
has_commits() { [ "$(ncommits "$1")" -ge "$2" ]; }
lines_over() { [ "$(wc -l <"$1" 2>/dev/null || echo 0)" -gt "$2" ]; }
errline() { grep -m1 'level=error' "$1"; }

sql "CREATE TABLE t (id int PRIMARY KEY, v text)"

# --- failures a person must fix -------------------------------------------
timeout -k 5 30 "$PG_CAPTURE" -d "$CONN" -S nosuchslot >/dev/null 2>"$T/e.log"
is "$?" 6 "missing slot: exit 6"
like "$(errline "$T/e.log")" 'msg="replication slot does not exist".*nosuchslot.*hint="create it with --create-slot"' "missing slot: clear line"

sql "CREATE ROLE app LOGIN REPLICATION PASSWORD 'right-pw'"
sql "CREATE ROLE plain LOGIN PASSWORD 'plain-pw'"
PGPASSWORD=wrong-secret-pw timeout -k 5 30 "$PG_CAPTURE" -d "$(pg_conninfo app)" -S s >/dev/null 2>"$T/e.log"
is "$?" 5 "wrong password: exit 5"
like "$(errline "$T/e.log")" 'authentication failed.*hint=' "wrong password: clear line"
is "$(grep -c 'wrong-secret-pw' "$T/e.log")" 0 "wrong password: the password is not logged"

PGPASSWORD=plain-pw timeout -k 5 30 "$PG_CAPTURE" -d "$(pg_conninfo plain)" -S s >/dev/null 2>"$T/e.log"
is "$?" 5 "role without REPLICATION: exit 5"
like "$(errline "$T/e.log")" 'permission denied.*REPLICATION' "role without REPLICATION: says what to grant"

# output_plugin_libraries is a setting of some builds only (Debian's from 15.19),
# probed as pgcluster.sh does (no pipe into grep -q: under pipefail its early
# exit would fail the test)
if [[ $("$PGBIN/postgres" --describe-config 2>/dev/null) == *$'\n'output_plugin_libraries* ]]; then
	sql "ALTER SYSTEM SET output_plugin_libraries = 'pgoutput, test_decoding'" && sql "SELECT pg_reload_conf()" >/dev/null
	# --endpos and timeout: a server that took the plugin after all fails this in seconds
	PGPASSWORD=right-pw timeout -k 5 30 "$PG_CAPTURE" -d "$(pg_conninfo app)" -S w --plugin wal2json --create-slot \
		--endpos "$(sql "SELECT pg_current_wal_lsn()")" >/dev/null 2>"$T/e.log"
	is "$?" 8 "plugin refused by output_plugin_libraries: exit 8"
	like "$(errline "$T/e.log")" 'may not be used as an output plugin.*output_plugin_libraries' "refused plugin: says what to change"
	sql "ALTER SYSTEM RESET output_plugin_libraries" && sql "SELECT pg_reload_conf()" >/dev/null
else
	why="$("$PGBIN/postgres" --version | sed 's/^postgres (PostgreSQL) //') has no output_plugin_libraries (a setting of some builds: Debian's from 15.19)"
	pass "plugin refused by output_plugin_libraries: exit 8 # SKIP $why"
	pass "refused plugin: says what to change # SKIP $why"
fi

timeout -k 5 30 "$PG_CAPTURE" -S s >/dev/null 2>"$T/e.log" -d "$CONN" --plugin nosuch
is "$?" 2 "unknown plugin name: usage error"
timeout -k 5 30 "$PG_CAPTURE" -d "$CONN" >/dev/null 2>"$T/e.log"
is "$?" 2 "no slot: usage error"
is "$(cat "$T/e.log")" "pg-capture: no slot given (-S NAME)
Try 'pg-capture --help' for more information." "usage error is one line plus a pointer to --help"
timeout -k 5 30 "$PG_CAPTURE" -d "$CONN" -S s --endpos 12/zz >/dev/null 2>"$T/e.log"
is "$?" 2 "invalid --endpos LSN: usage error"

# --- nobody listening: retries with backoff, without spinning, until --retry-max-time
closed=$(free_port)
timeout -k 5 30 /usr/bin/time -f '%U %S' -o "$T/cpu" "$PG_CAPTURE" -d "host=127.0.0.1 port=$closed dbname=x" -S s \
	--retry-max-time 2 >/dev/null 2>"$T/e.log"
is "$?" 4 "server unreachable past --retry-max-time: exit 4"
is "$(grep -c 'could not connect to server, will reconnect' "$T/e.log")" 3 "retried at 0.5, 1 and 2 s backoff"
like "$(errline "$T/e.log")" 'giving up: server unreachable past --retry-max-time' "then one clear line"
is "$(tail -1 "$T/cpu" | awk '{ print ($1 + $2 < 0.2) ? "idle" : "busy: " $1 + $2 " s" }')" idle "no busy loop while waiting to reconnect"

# --- the server restarts in the middle of a large transaction -------------
"$PG_CAPTURE" -d "$CONN" -S r --create-slot --endpos "$(sql "SELECT pg_current_wal_lsn()")" 2>/dev/null
sql "INSERT INTO t VALUES (0, 'before')"
sql "INSERT INTO t SELECT i, 'bulk' FROM generate_series(1, 40000) i"
# through a named pipe, so that each end has its own pid to stop and wait for
mkfifo "$T/r.pipe"
python3 "$HERE/slowreader.py" 0 3000000 "$T/r.out" <"$T/r.pipe" &
rpid=$!
"$PG_CAPTURE" -d "$CONN" -S r --status-interval 0.5 >"$T/r.pipe" 2>"$T/r.log" &
cpid=$!
wait_for 30 lines_over "$T/r.out" 8000
as_pg_user "$PGBIN/pg_ctl" -D "$PGTEST_DIR/data" -m immediate -w stop >/dev/null
pg_up
sql "INSERT INTO t VALUES (50000, 'after')"
wait_for 60 has_commits "$T/r.out" 3
like "$(grep -c 'lost the connection, will reconnect' "$T/r.log")" '^[1-9]' "server restart: pg-capture noticed and reconnected"
kill -TERM $cpid
wait_exit $cpid 15
wait_exit $rpid 10
facts=$(python3 "$HERE/events.py" "$T/r.out" counts txs ids 2>&1)
is "$facts" "insert public.t 40002
schema public.t 1
3
40002" "server restart mid-transaction: every change exactly once, transactions whole"

# --- a reader that stops reading for three times wal_sender_timeout --------
"$PG_CAPTURE" -d "$CONN" -S slow --create-slot --endpos "$(sql "SELECT pg_current_wal_lsn()")" 2>/dev/null
sql "INSERT INTO t SELECT i, repeat('s', 200) FROM generate_series(100001, 130000) i"
end=$(sql "SELECT pg_current_wal_lsn()")
timeout -k 5 60 "$PG_CAPTURE" -d "$CONN" -S slow --endpos "$end" 2>"$T/s.log" |
	python3 "$HERE/slowreader.py" 6 0 "$T/s.out" &
spid=$!
wait_exit $spid 60
is "$RC" 0 "slow reader: pipeline finished"
is "$(ncommits "$T/s.out")" 1 "slow reader: the transaction arrived"
is "$(grep -c '"op":"insert"' "$T/s.out")" 30000 "slow reader: all 30000 rows"
is "$(grep -c 'will reconnect\|level=error' "$T/s.log")" 0 "slow reader: the connection was never dropped"
is "$(grep -c 'replication timeout' "$PGTEST_DIR/server.log")" 0 "slow reader: no walsender timeout on the server"
is "$(grep -c 'status interval fitted' "$T/s.log")" 1 "slow reader: --status-interval fitted under wal_sender_timeout 2 s by itself"
like "$(grep -m1 'status interval fitted' "$T/s.log")" 'wal_sender_timeout_s=2.0 status_interval_s=0.67' "slow reader: a third of it"
like "$(grep -m1 'max_slot_wal_keep_size' "$T/s.log")" 'level=warn .*max_slot_wal_keep_size is unset' "max_slot_wal_keep_size unset: warned at start"
like "$(grep -m1 'slot health' "$T/s.log")" 'level=info .*msg="slot health" slot=slow wal_status=reserved retained_mb=[0-9.]+' "the slot's health logged at start"

# --- the slot's health: retained WAL logged when it doubles past 64 MB --------
"$PG_CAPTURE" -d "$CONN" -S held --create-slot --endpos "$(sql "SELECT pg_current_wal_lsn()")" 2>/dev/null
rm -f "$T/held.ack"
mkfifo -m 600 "$T/held.ack"
sleep 300 >"$T/held.ack" &	# a writer that never acknowledges: the slot holds its WAL
HOLD=$!
timeout -k 5 90 "$PG_CAPTURE" -d "$CONN" -S held --ack-fifo "$T/held.ack" --health-interval 0.2 >/dev/null 2>"$T/held.log" &
HELD=$!
sql "INSERT INTO t SELECT i, repeat('h', 300) FROM generate_series(300001, 520000) i"
grown() { grep -q 'level=warn .*msg="slot health" slot=held wal_status=[a-z]* retained_mb=[0-9]' "$T/held.log"; }
if wait_for 30 grown; then pass "retained WAL past 64 MB: a warning line with the slot's health"
else fail "retained WAL past 64 MB: warned" "$(grep 'slot health' "$T/held.log" | tail -2)"; fi
mb=$(grep 'level=warn .*msg="slot health"' "$T/held.log" | tail -1 | sed 's/.*retained_mb=\([0-9.]*\).*/\1/')
if awk -v m="$mb" 'BEGIN { exit !(m >= 64) }'; then pass "the warning gives the retained WAL ($mb MB)"
else fail "the warning gives the retained WAL" "retained_mb=$mb"; fi
is "$(grep -c 'msg="slot health" slot=held' "$T/held.log")" "$(($(grep -c 'level=warn .*msg="slot health" slot=held' "$T/held.log") + 1))" \
	"slot health logged at start and on change only, not every 0.2 s"
kill "$HELD" "$HOLD" 2>/dev/null
wait "$HELD" "$HOLD" 2>/dev/null
sql "SELECT pg_drop_replication_slot('held')" >/dev/null

# --- an invalidated slot ----------------------------------------------------
sql "ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'" && sql "SELECT pg_reload_conf()" >/dev/null
"$PG_CAPTURE" -d "$CONN" -S lost --create-slot --endpos "$(sql "SELECT pg_current_wal_lsn()")" 2>/dev/null
for i in 1 2 3 4; do
	sql "INSERT INTO t SELECT i, repeat('w', 500) FROM generate_series(200000 + $i * 10000, 200000 + $i * 10000 + 9999) i"
	sql "SELECT pg_switch_wal()" >/dev/null
done
sql "CHECKPOINT"
is "$(sql "SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'lost'")" lost "slot invalidated by max_slot_wal_keep_size"
timeout -k 5 30 "$PG_CAPTURE" -d "$CONN" -S lost >/dev/null 2>"$T/e.log"
is "$?" 7 "invalidated slot: exit 7"
timeout -k 5 30 "$PG_CAPTURE" -d "$CONN" -S kept --create-slot --endpos "$(sql "SELECT pg_current_wal_lsn()")" >/dev/null 2>"$T/k.log"
is "$(grep -c 'msg=streaming' "$T/k.log") $(grep -c 'max_slot_wal_keep_size is unset' "$T/k.log")" "1 0" \
	"max_slot_wal_keep_size set: streams without the warning"
like "$(errline "$T/e.log")" 'invalidated.*hint=.*drop it, create it again' "invalidated slot: says how to recover"

# --- wal_level = replica ----------------------------------------------------
pg_stop
pg_start "$T/pg2" "$(free_port)" "wal_level = replica" || exit 1
timeout -k 5 30 "$PG_CAPTURE" -d "$(pg_conninfo)" -S s --create-slot >/dev/null 2>"$T/e.log"
is "$?" 8 "wal_level = replica: exit 8"
like "$(errline "$T/e.log")" 'wal_level is \\"replica\\".*set wal_level = logical' "wal_level = replica: says what to set"
done_testing
