#!/usr/bin/env bash
# pg-capture --snapshot interrupted: kill -9 of an acknowledging pipeline in
# the middle of a snapshot while pgbench writes (resumed from the last
# acknowledged chunk, rows read again keep their ids, the slot moved on
# meanwhile), a composite key resumed at the right row with a column added
# between the runs, a server restart mid-snapshot, the stream lost and a
# column added while a chunk waits for its high watermark, and the table
# rewritten while a chunk waits for its lock, and a change streamed before
# its transaction is visible to snapshots. The final tables are
# checked against read events plus changes (snapcheck.py).
set -u
source "$(dirname "$0")/../lib/testlib.sh"
source "$TOP/tests/lib/pgcluster.sh"
source "$TOP/tests/lib/snaptest.sh"
HERE=$TOP/tests/integration
PGBENCH=$(command -v pgbench || echo /usr/lib/postgresql/15/bin/pgbench)
T=$(mktemp -d /tmp/pgcdc-snapresume.XXXXXX)
cleanup() {
	local p
	for p in $(jobs -p); do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	pg_stop
	rm -rf "$T"
}
trap cleanup EXIT
chmod 755 "$T"
pg_start "$T/pg" "$(free_port)" "timezone = 'UTC'" "max_connections = 40" || exit 1
CONN=$(pg_conninfo)

# 1. kill -9 mid-snapshot, acknowledging pipeline: resumed from the last acknowledged chunk
B=100000
sql "CREATE TABLE big (id int PRIMARY KEY, v text NOT NULL);
     INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, $B) g; ANALYZE big" >/dev/null
cat >"$T/bigbench.sql" <<EOF2
\\set a random(1, $((B + 1000)))
UPDATE big SET v = 'u' || :a WHERE id = :a;
\\set b random(1, $((B + 1000)))
DELETE FROM big WHERE id = :b;
\\set c random(1, $((B + 1000)))
INSERT INTO big VALUES (:c, 'i') ON CONFLICT (id) DO UPDATE SET v = 'c';
EOF2
"$PG_CAPTURE" -d "$CONN" -S snap2 --create-slot --endpos "$(sql "SELECT pg_current_wal_lsn()")" >/dev/null 2>>"$T/create.log"
start=$(sql "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'snap2'")
timeout -k 5 100 "$PGBENCH" -n -c 2 -T 20 -f "$T/bigbench.sql" "$CONN" >"$T/bigbench.log" 2>&1 &
BENCH=$!
ack_pipeline snap2 public.big 50 "$T/a.out" "$T/a.err"
quarter() { [ "$(sql "SELECT rows_done >= $B / 4 AND NOT done FROM pgcdc.snapshot_progress WHERE slot_name = 'snap2'")" = t ]; }
if wait_for 60 quarter; then pass "a quarter of the table acknowledged and stored in pgcdc.snapshot_progress"
else fail "progress stored as chunks are acknowledged" "$(tail -3 "$T/a.err")"; fi
pkill -9 -f -- "-S snap2 --snapshot-table" 2>/dev/null
wait_exit "$PIPE" 30
moved=$(sql "SELECT confirmed_flush_lsn > '$start' FROM pg_replication_slots WHERE slot_name = 'snap2'")
is "$moved" t "the slot moves on during the snapshot: no WAL held for its whole duration"
done_rows=$(sql "SELECT rows_done FROM pgcdc.snapshot_progress WHERE slot_name = 'snap2'")
ack_pipeline snap2 public.big 50 "$T/b.out" "$T/b.err"
done_big() { grep -q 'msg="snapshot of table done".*table=public\.big' "$T/b.err"; }
wait_for 90 done_big || fail "the snapshot ends after the restart" "$(tail -3 "$T/b.err")"
wait_exit "$BENCH" 60
marker three
wait_for 30 has_marker "$T/b.out" three || fail "the stream reaches the marker after the restart"
pkill -TERM -f -- "-S snap2 --snapshot-table" 2>/dev/null
wait_exit "$PIPE" 30
is "$RC" 0 "the restarted pipeline stops cleanly"
like "$(grep 'msg="snapshot resumes"' "$T/b.err")" "rows_done=$done_rows( |$)" "after kill -9 the snapshot resumes from the rows acknowledged ($done_rows)"
got=$(python3 "$HERE/snapcheck.py" "$CONN" public.big "$T/a.out" "$T/b.out")
check "kill -9 mid-snapshot" public.big "$T/a.out" "$T/b.out"
is "$(echo "$got" | grep '^ids_changed')" "ids_changed 0" \
	"rows read again after the restart keep their ids ($(echo "$got" | grep '^ids_reread'))"
b_reads=$(grep -c '"op":"read"' "$T/b.out")
[ "$b_reads" -lt $((B - done_rows + 2000)) ] && pass "the restart does not read the table from the start ($b_reads rows read after it)" ||
	fail "the restart reads only what was not acknowledged" "$b_reads rows read, $done_rows acknowledged before"

# 2. a composite key out of column order resumes at the right row; a column added between runs is read
sql "CREATE TABLE ck (x int NOT NULL, b text NOT NULL, a int NOT NULL, PRIMARY KEY (b, a));
     INSERT INTO ck SELECT i, 'k' || (i % 100), i / 100 FROM generate_series(1, 30000) i" >/dev/null
"$PG_CAPTURE" -d "$CONN" -S snap4 --create-slot --endpos "$(sql "SELECT pg_current_wal_lsn()")" >/dev/null 2>>"$T/create.log"
ack_pipeline snap4 ck 20 "$T/ck1.out" "$T/ck1.err"
some_ck() { [ "$(sql "SELECT rows_done >= 5000 AND NOT done FROM pgcdc.snapshot_progress WHERE slot_name = 'snap4'")" = t ]; }
wait_for 60 some_ck || fail "composite key: progress stored" "$(tail -n 3 "$T/ck1.err")"
pkill -9 -f -- "-S snap4 --snapshot-table" 2>/dev/null
wait_exit "$PIPE" 30
sql "ALTER TABLE ck ADD COLUMN z int NOT NULL DEFAULT 7" >/dev/null
ack_pipeline snap4 ck 20 "$T/ck2.out" "$T/ck2.err"
done_ck() { grep -q 'msg="snapshot of table done".*table=public\.ck' "$T/ck2.err"; }
wait_for 60 done_ck || fail "composite key: the snapshot ends" "$(tail -n 3 "$T/ck2.err")"
pkill -TERM -f -- "-S snap4 --snapshot-table" 2>/dev/null
wait_exit "$PIPE" 30
got=$(python3 "$HERE/snapcheck.py" "$CONN" public.ck "$T/ck1.out" "$T/ck2.out")
is "$(echo "$got" | grep -E '^(rows|missing|extra)' | tr '\n' ' ')" "rows 30000 missing 0 extra 0 " \
	"composite key (b, a), resumed after kill -9: every row read"
ck2=$(grep -c '"op":"read"' "$T/ck2.out")
[ "$ck2" -lt 26000 ] && pass "  the second run starts where the first was acknowledged ($ck2 rows read)" ||
	fail "  resumed, not started over" "$ck2 rows read"
is "$(grep '"op":"read"' "$T/ck2.out" | grep -vc '"z":7}}$')" 0 "a column added between the runs is in every row the second run reads"

# 3. a server restart mid-snapshot: pg-capture reconnects and the snapshot goes on
"$PG_CAPTURE" -d "$CONN" -S snap3 --create-slot --endpos "$(sql "SELECT pg_current_wal_lsn()")" >/dev/null 2>>"$T/create.log"
timeout -k 5 120 "$PG_CAPTURE" -d "$CONN" -S snap3 --snapshot-table public.big --snapshot-chunk 300 >"$T/r.out" 2>"$T/r.err" &
CAP=$!
some() { [ "$(grep -c '"op":"read"' "$T/r.out")" -ge 20000 ]; }
wait_for 60 some || fail "the snapshot starts" "$(tail -3 "$T/r.err")"
pg_restart || fail "server restart"
done_r() { grep -q 'msg="snapshot of table done".*table=public\.big' "$T/r.err"; }
wait_for 90 done_r || fail "the snapshot ends after the server restart" "$(tail -3 "$T/r.err")"
marker four
wait_for 30 has_marker "$T/r.out" four
kill -TERM "$CAP"
wait_exit "$CAP" 30
is "$(grep -c 'lost the connection, will reconnect\|server ended the stream' "$T/r.err" | awk '{ print ($1 > 0) }')" 1 \
	"pg-capture saw the server go away"
check "server restart mid-snapshot" public.big "$T/r.out"
"$PG_CAPTURE" -d "$CONN" -S snap3 --drop-slot 2>/dev/null
is "$(sql "SELECT count(*) FROM pgcdc.snapshot_progress WHERE slot_name = 'snap3'")" 0 \
	"--drop-slot deletes the slot's rows from pgcdc.snapshot_progress"

# A reader that does not read stops the stream with a chunk waiting for its
# high watermark and the next one read ahead. stall SLOT NAME starts
# pg-capture -S SLOT --snapshot-table public.big into a FIFO nobody reads
# and waits until the pipe is full (CAP: its pid); drain NAME then reads it
# into $T/NAME.out until the snapshot is done and a marker NAME arrives
# (drain_start NAME, drain_end NAME: the same in two steps).
stall() {
	"$PG_CAPTURE" -d "$CONN" -S "$1" --create-slot --endpos "$(sql "SELECT pg_current_wal_lsn()")" >/dev/null 2>>"$T/create.log"
	mkfifo "$T/$2.fifo"
	timeout -k 5 120 "$PG_CAPTURE" -d "$CONN" -S "$1" --snapshot-table public.big --snapshot-chunk 300 >"$T/$2.fifo" 2>"$T/$2.err" &
	CAP=$!
	exec {RD}<"$T/$2.fifo"
	wait_for 60 pipe_full "$T/$2.fifo" || fail "pg-capture fills the pipe nobody reads" "$(tail -3 "$T/$2.err")"
}
pipe_full() { # the pipe holds all it can
	python3 - "$1" <<'EOF2'
import fcntl, os, struct, sys, termios
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_NONBLOCK)
cap = fcntl.fcntl(fd, 1032)  # F_GETPIPE_SZ
n = struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4))[0]
sys.exit(0 if n >= cap - cap // 8 else 1)
EOF2
}
drain() {
	drain_start "$1"
	drain_end "$1"
}
drain_start() {
	timeout -k 5 120 cat <&$RD >"$T/$1.out" &
	CAT=$!
	exec {RD}<&-
}
# done_or_gone LOG: the snapshot is done, or pg-capture is gone (a failure: not waited out)
done_or_gone() { grep -q 'msg="snapshot of table done".*table=public\.big' "$1" || ! kill -0 "$CAP" 2>/dev/null; }
drain_end() {
	wait_for 90 done_or_gone "$T/$1.err"
	grep -q 'msg="snapshot of table done".*table=public\.big' "$T/$1.err" ||
		fail "the snapshot ends ($1)" "$(tail -3 "$T/$1.err")"
	marker "$1"
	kill -0 "$CAP" 2>/dev/null && wait_for 30 has_marker "$T/$1.out" "$1"
	kill -TERM "$CAP"
	wait_exit "$CAP" 30
	wait_exit "$CAT" 30
}

# 4. the stream lost while a chunk waits for its high watermark and the next
# one is read ahead: the waiting chunk is read again, no row is skipped
stall snap4 lost
is "$(sql "SELECT count(pg_terminate_backend(active_pid)) FROM pg_replication_slots WHERE slot_name = 'snap4'")" 1 \
	"the stream's connection is ended while the snapshot waits for the reader"
drain lost
is "$(grep -c 'lost the connection, will reconnect\|server ended the stream' "$T/lost.err" | awk '{ print ($1 > 0) }')" 1 \
	"pg-capture saw the stream go"
check "stream lost with a chunk waiting and the next read ahead" public.big "$T/lost.out"
"$PG_CAPTURE" -d "$CONN" -S snap4 --drop-slot 2>/dev/null

# 5. a column added while a chunk waits and the next one is read ahead: the
# chunks read before the stream describes the table anew are read again, so
# no read event after the new description lacks the column
stall snap5 added
sql "ALTER TABLE big ADD COLUMN w int NOT NULL DEFAULT 5;
     UPDATE big SET v = 'after the column' WHERE id = (SELECT min(id) FROM big)" >/dev/null
drain added
is "$(python3 - "$T/added.out" <<'EOF2'
import json, sys
described = False
before = after = lacking = 0
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e.get("table") != "big":
        continue
    if e["op"] == "schema" and "w" in [c["name"] for c in e["columns"]]:
        described = True
    elif e["op"] == "read":
        if described:
            after += 1
            lacking += "w" not in e["new"]
        else:
            before += 1
print("described" if described else "not described", "lacking", lacking, "before", before > 0, "after", after > 0)
EOF2
)" "described lacking 0 before True after True" \
	"a column added mid-snapshot: every read event after the new description has it"
is "$(grep -c 'msg="snapshot of table done"' "$T/added.err")" 1 "the snapshot ends once"
got=$(timeout 120 python3 "$HERE/snapcheck.py" --default w=5 "$CONN" public.big "$T/added.out" 2>&1)
is "$(echo "$got" | grep -E '^(missing|extra|differ) ' | tr '\n' ' ')" "missing 0 extra 0 differ 0 " \
	"a column added mid-snapshot: the table is its read events plus its changes (the column's default where it was read before)"
"$PG_CAPTURE" -d "$CONN" -S snap5 --drop-slot 2>/dev/null
sql "ALTER TABLE big DROP COLUMN w" >/dev/null

# 6. the table rewritten (ALTER TABLE with a volatile default) by a
# transaction that commits while a chunk's query waits for its lock: the
# chunk sees the rewritten table, not an empty one, and nothing is skipped
stall snap6 rewrite
coproc REWRITE { psql -X -q -At -v ON_ERROR_STOP=1 -d "$CONN" 2>&1; }
echo "BEGIN; ALTER TABLE big ADD COLUMN g int DEFAULT floor(random() * 10)::int; SELECT 'altered';" >&"${REWRITE[1]}"
read -r -t 30 reply <&"${REWRITE[0]}"
is "$reply" altered "a rewrite of the table holds its lock"
drain_start rewrite
waiting() { [ "$(sql "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%FROM ONLY%big%txid_current_snapshot%'")" = 1 ]; }
wait_for 60 waiting || fail "a chunk's query waits for the rewrite's lock" "$(tail -3 "$T/rewrite.err")"
echo "COMMIT; SELECT 'committed';" >&"${REWRITE[1]}"
read -r -t 30 reply <&"${REWRITE[0]}"
is "$reply" committed "the rewrite commits while the chunk's query waits"
echo '\q' >&"${REWRITE[1]}"
drain_end rewrite
sql "ALTER TABLE big DROP COLUMN g" >/dev/null
check "a rewrite committed while a chunk waited for its lock" public.big "$T/rewrite.out"
"$PG_CAPTURE" -d "$CONN" -S snap6 --drop-slot 2>/dev/null

# 7. a transaction the stream has delivered but that new snapshots still see
# running: it waits for a synchronous standby that never answers, while
# pg-capture's own commits do not wait (synchronous_commit = local). The
# chunk holding its row is read again once it is visible, not delivered
# older than the change before it.
"$PG_CAPTURE" -d "$CONN" -S snap7 --create-slot --endpos "$(sql "SELECT pg_current_wal_lsn()")" >/dev/null 2>>"$T/create.log"
sql "ALTER SYSTEM SET synchronous_standby_names = 'nobody'" >/dev/null
sql "SELECT pg_reload_conf()" >/dev/null
last=$(sql "SELECT max(id) FROM big")
coproc STUCK { psql -X -q -At -d "$CONN" 2>&1; }
echo "UPDATE big SET v = 'committed, not yet visible' WHERE id = $last;" >&"${STUCK[1]}"
syncwait() { [ "$(sql "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'")" = 1 ]; }
wait_for 30 syncwait || fail "an update waits for the synchronous standby" ""
PGOPTIONS="-c synchronous_commit=local" timeout -k 5 120 "$PG_CAPTURE" -d "$CONN" -S snap7 --snapshot-table public.big \
	--snapshot-chunk 300 >"$T/sync.out" 2>"$T/sync.err" &
CAP=$!
held() { grep -q 'not visible' "$T/sync.err"; }
if wait_for 60 held; then pass "the chunk with the row waits for the transaction to become visible"
else fail "the chunk with the row waits for the transaction to become visible" "$(tail -2 "$T/sync.err")"; fi
sql "ALTER SYSTEM RESET synchronous_standby_names" >/dev/null
sql "SELECT pg_reload_conf()" >/dev/null
sql "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE wait_event = 'SyncRep'" >/dev/null
echo '\q' >&"${STUCK[1]}"
wait_for 90 grep -q 'msg="snapshot of table done".*table=public\.big' "$T/sync.err" ||
	fail "the snapshot ends (sync)" "$(tail -3 "$T/sync.err")"
marker seven
wait_for 30 has_marker "$T/sync.out" seven
kill -TERM "$CAP"
wait_exit "$CAP" 30
check "a change delivered before its transaction was visible" public.big "$T/sync.out"
"$PG_CAPTURE" -d "$CONN" -S snap7 --drop-slot 2>/dev/null

done_testing
