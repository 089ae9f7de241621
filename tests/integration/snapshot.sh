#!/usr/bin/env bash
# pg-capture --snapshot: tables read as "read" events, chunk by chunk between
# watermarks, while pgbench changes them (updates, deletes, inserts, key
# changes, from four connections). The final table state must be explained
# by the read events plus the changes (snapcheck.py), after a clean run,
# after kill -9 mid-snapshot (resumed from the last acknowledged chunk, with
# the same read ids) and across a server restart. Also: a table without a
# key, a snapshot asked again with SQL, the slot moving during a snapshot,
# wal2json, and PostgreSQL 13 with pgoutput refused.
set -u
source "$(dirname "$0")/../lib/testlib.sh"
source "$TOP/tests/lib/pgcluster.sh"
HERE=$TOP/tests/integration
PUBLISH=$TOP/cdc-publish/cdc-publish
PGBENCH=$(command -v pgbench || echo /usr/lib/postgresql/15/bin/pgbench)
T=$(mktemp -d /tmp/pgcdc-snapshot.XXXXXX)
cleanup() {
	local p
	for p in $(jobs -p); do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	pg_stop
	[ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
chmod 755 "$T"
pg_start "$T/pg" "$(free_port)" "timezone = 'UTC'" "max_connections = 40" || exit 1
CONN=$(pg_conninfo)
N=40000
sql "CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL, n int NOT NULL DEFAULT 0);
     INSERT INTO t SELECT g, 'v' || g, 0 FROM generate_series(1, $N) g;
     CREATE TABLE c2 (a int, b text, x int, PRIMARY KEY (b, a));
     INSERT INTO c2 SELECT g % 7, 'k' || (g / 7), g FROM generate_series(1, 3000) g;
     CREATE TABLE nk (a int, b text);
     INSERT INTO nk SELECT g, 'x' || g FROM generate_series(1, 5000) g;
     CREATE SEQUENCE moved START 1000000;
     ANALYZE" >/dev/null

cat >"$T/bench.sql" <<EOF
\\set a random(1, $((N + 5000)))
UPDATE t SET v = v || 'u', n = n + 1 WHERE id = :a;
\\set b random(1, $((N + 5000)))
DELETE FROM t WHERE id = :b;
\\set c random(1, $((N + 5000)))
INSERT INTO t VALUES (:c, 'i' || :c, 0) ON CONFLICT (id) DO UPDATE SET v = 'c', n = t.n + 100;
\\set d random(1, $N)
UPDATE t SET id = nextval('moved') WHERE id = :d;
\\set e random(0, 6)
UPDATE c2 SET x = x + 1 WHERE a = :e AND b = 'k' || :a % 400;
INSERT INTO nk VALUES (:a, 'n');
EOF
bench() { # bench SECONDS: pgbench's own timeout bounds it
	timeout -k 5 $(($1 + 60)) "$PGBENCH" -n -c 4 -T "$1" -f "$T/bench.sql" "$CONN" >"$T/bench.log" 2>&1
}
check() { # check LABEL TABLE FILES...: the table is explained by the events
	local label=$1 table=$2 want="missing 0 extra 0 differ 0 "
	shift 2
	local got
	got=$(timeout 120 python3 "$HERE/snapcheck.py" "$CONN" "$table" "$@" 2>&1)
	# rows without a key cannot be told apart: one changed meanwhile may come twice, none is missing
	[ "$table" = public.nk ] && got=$(echo "$got" | sed 's/^extra [0-9]*$/extra 0/') && label="$label, repeats allowed"
	if [ "$(echo "$got" | grep -E '^(missing|extra|differ) ' | tr '\n' ' ')" = "$want" ]; then
		pass "$label: $table's final state is its read events plus its changes ($(echo "$got" | grep -E '^(rows|reads) ' | tr '\n' ' '))"
	else
		fail "$label: $table's final state is its read events plus its changes" "$(echo "$got" | tail -5 | tr '\n' ' ')"
	fi
}
marker() { sql "SELECT pg_logical_emit_message(true, 'test.end', '$1')" >/dev/null; }
has_marker() { grep -q "\"prefix\":\"test.end\",\"content\":\"$2\"" "$1"; }

# 1. a clean run while pgbench writes
"$PG_CAPTURE" -d "$CONN" -S snap1 --create-slot --endpos "$(sql "SELECT pg_current_wal_lsn()")" >/dev/null 2>"$T/create.log" ||
	fail "create slot" "$(cat "$T/create.log")"
bench 8 &
BENCH=$!
timeout -k 5 120 "$PG_CAPTURE" -d "$CONN" -S snap1 --snapshot --snapshot-chunk 700 >"$T/run1.out" 2>"$T/run1.err" &
CAP=$!
done3() { [ "$(grep -c 'msg="snapshot of table done"' "$T/run1.err")" = 3 ]; }
wait_for 90 done3 || fail "the snapshot ends" "$(tail -5 "$T/run1.err")"
wait_exit "$BENCH" 90
is "$RC" 0 "pgbench ran alongside the snapshot"
marker one
wait_for 30 has_marker "$T/run1.out" one || fail "the stream reaches the end marker"
kill -TERM "$CAP"
wait_exit "$CAP" 30
is "$RC" 0 "pg-capture stops cleanly"
check "concurrent writes" public.t "$T/run1.out"
check "concurrent writes, composite key out of column order" public.c2 "$T/run1.out"
check "concurrent inserts, no key (read by pages)" public.nk "$T/run1.out"
like "$(grep -m1 '"op":"read","schema":"public","table":"t"' "$T/run1.out")" \
	'^\{"op":"read","schema":"public","table":"t","id":"[0-9A-F]+/[0-9A-F]+:r[0-9a-f]{16}","lsn":"[0-9A-F]+/[0-9A-F]+","xid":[0-9]+,"ts":"[0-9T:.Z-]+","key":\{"id":[0-9]+\},"new":\{"id":[0-9]+,"v":"[^"]*","n":[0-9]+\}\}$' \
	"a read event: op, schema, table, id, lsn, xid, ts, key, new"
is "$(python3 "$HERE/events.py" "$T/run1.out" counts >/dev/null 2>&1; echo $?)" 0 "the output is well-formed cdc-json (events.py)"
is "$(grep -c 'table has no primary key or replica identity index: read by pages' "$T/run1.err")" 1 \
	"the table without a key is said to be read by pages"
is "$(sql "SELECT string_agg(table_name || ':' || done, ' ' ORDER BY table_name) FROM pgcdc.snapshot_progress WHERE slot_name = 'snap1'")" \
	"c2:true nk:true t:true" "pgcdc.snapshot_progress: every table done"
reads_t=$(grep -c '"op":"read","schema":"public","table":"t"' "$T/run1.out")
ins=$(grep -c '"op":"read","schema":"public","table":"c2"' "$T/run1.out")
is "$ins" 3000 "every row of the table nobody deletes from is read once (c2: 3000)"
is "$(timeout 30 "$TOP/cdc-filter/cdc-filter" -t public.c2 -o read <"$T/run1.out" | grep -c '"op":"read"')" 3000 \
	"cdc-filter selects read events by table and op"
nodup=$(grep '"op":"read"' "$T/run1.out" | grep -o '"id":"[^"]*"' | sort | uniq -d | wc -l)
is "$nodup" 0 "read ids are unique"

# 2. --snapshot again: the slot's snapshot is done, nothing is read
timeout -k 5 30 "$PG_CAPTURE" -d "$CONN" -S snap1 --snapshot --endpos "$(sql "SELECT pg_current_wal_lsn()")" >"$T/again.out" 2>"$T/again.err"
is "$?:$(grep -c '"op":"read"' "$T/again.out")" "0:0" "--snapshot once per slot: a finished snapshot is not taken again"

# 3. on demand: a logical message asks for one table again, the running pipeline reads it
timeout -k 5 60 "$PG_CAPTURE" -d "$CONN" -S snap1 >"$T/demand.out" 2>"$T/demand.err" &
CAP=$!
sql "SELECT pg_logical_emit_message(true, 'pgcdc.snapshot', 'public.c2')" >/dev/null
done_c2() { grep -q 'msg="snapshot of table done".*table=c2' "$T/demand.err"; }
wait_for 30 done_c2 || fail "the table asked for with SQL is read" "$(tail -3 "$T/demand.err")"
marker two
wait_for 30 has_marker "$T/demand.out" two
kill -TERM "$CAP"
wait_exit "$CAP" 30
is "$(grep -c '"op":"read","schema":"public","table":"c2"' "$T/demand.out"):$(grep -c '"op":"read","schema":"public","table":"t"' "$T/demand.out")" \
	"3000:0" "pg_logical_emit_message(true, 'pgcdc.snapshot', 'public.c2'): c2 read again, nothing else"
new_id=$(grep -m1 '"op":"read","schema":"public","table":"c2"' "$T/demand.out" | grep -o '"id":"[^:]*')
old_id=$(grep -m1 '"op":"read","schema":"public","table":"c2"' "$T/run1.out" | grep -o '"id":"[^:]*')
[ -n "$new_id" ] && [ "$new_id" != "$old_id" ] && pass "a snapshot asked again has an identity of its own" ||
	fail "a new snapshot identity" "$old_id / $new_id"

# 4. kill -9 mid-snapshot, acknowledging pipeline: resumed from the last acknowledged chunk
B=150000
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
pipeline() { # pipeline OUT ERR: pg-capture | cdc-publish --dry-run, acknowledging
	rm -f "$T/ack"
	mkfifo -m 600 "$T/ack"
	(timeout -k 5 120 "$PG_CAPTURE" -d "$CONN" -S snap2 --snapshot-table public.big --snapshot-chunk 300 \
		--ack-fifo "$T/ack" 2>"$2" | tee "$1" |
		timeout -k 5 120 "$PUBLISH" --dry-run --ack-fifo "$T/ack" http://127.0.0.1:9/events >/dev/null 2>"$T/pub.err") &
	PIPE=$!
}
timeout -k 5 100 "$PGBENCH" -n -c 2 -T 40 -f "$T/bigbench.sql" "$CONN" >"$T/bigbench.log" 2>&1 &
BENCH=$!
pipeline "$T/a.out" "$T/a.err"
quarter() { [ "$(sql "SELECT rows_done >= $B / 4 AND NOT done FROM pgcdc.snapshot_progress WHERE slot_name = 'snap2'")" = t ]; }
if wait_for 60 quarter; then pass "a quarter of the table acknowledged and stored in pgcdc.snapshot_progress"
else fail "progress stored as chunks are acknowledged" "$(tail -3 "$T/a.err")"; fi
moved=$(sql "SELECT confirmed_flush_lsn > '$start' FROM pg_replication_slots WHERE slot_name = 'snap2'")
pkill -9 -f -- "-S snap2 --snapshot-table" 2>/dev/null
wait_exit "$PIPE" 30
is "$moved" t "the slot moves on during the snapshot: no WAL held for its whole duration"
done_rows=$(sql "SELECT rows_done FROM pgcdc.snapshot_progress WHERE slot_name = 'snap2'")
pipeline "$T/b.out" "$T/b.err"
done_big() { grep -q 'msg="snapshot of table done".*table=big' "$T/b.err"; }
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

# 5. a server restart mid-snapshot: pg-capture reconnects and the snapshot goes on
"$PG_CAPTURE" -d "$CONN" -S snap3 --create-slot --endpos "$(sql "SELECT pg_current_wal_lsn()")" >/dev/null 2>>"$T/create.log"
timeout -k 5 120 "$PG_CAPTURE" -d "$CONN" -S snap3 --snapshot-table public.big --snapshot-chunk 300 >"$T/r.out" 2>"$T/r.err" &
CAP=$!
some() { [ "$(grep -c '"op":"read"' "$T/r.out")" -ge 20000 ]; }
wait_for 60 some || fail "the snapshot starts" "$(tail -3 "$T/r.err")"
pg_restart || fail "server restart"
done_r() { grep -q 'msg="snapshot of table done".*table=big' "$T/r.err"; }
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

# 6. wal2json
"$PG_CAPTURE" -d "$CONN" -S snapw --plugin wal2json --create-slot --endpos "$(sql "SELECT pg_current_wal_lsn()")" >/dev/null 2>>"$T/create.log"
end=$(sql "SELECT pg_current_wal_lsn()")
timeout -k 5 60 "$PG_CAPTURE" -d "$CONN" -S snapw --plugin wal2json --snapshot-table public.c2 >"$T/w.out" 2>"$T/w.err" &
CAP=$!
done_w() { grep -q 'msg="snapshot of table done".*table=c2' "$T/w.err"; }
wait_for 30 done_w || fail "wal2json: the snapshot ends" "$(tail -3 "$T/w.err")"
marker five
wait_for 30 has_marker "$T/w.out" five
kill -TERM "$CAP"
wait_exit "$CAP" 30
is "$(grep -c '"op":"read","schema":"public","table":"c2"' "$T/w.out")" 3000 "wal2json: every row read"
check "wal2json" public.c2 "$T/w.out"

# 7. errors: a role that may not create the progress table; an unknown table
sql "CREATE ROLE snapweak LOGIN REPLICATION PASSWORD 'snap-weak-pw'; GRANT SELECT ON t TO snapweak;
     REVOKE CREATE ON DATABASE postgres FROM PUBLIC" >/dev/null
sql "DROP TABLE pgcdc.snapshot_progress; DROP SCHEMA pgcdc" >/dev/null
PGPASSWORD=snap-weak-pw timeout -k 5 30 "$PG_CAPTURE" -d "$(pg_conninfo snapweak)" -S snap1 --snapshot-table public.t \
	>/dev/null 2>"$T/weak.err"
is "$?:$(grep 'level=error' "$T/weak.err" | grep -vc msg=exiting)" "5:1" "a role that cannot create pgcdc.snapshot_progress: exit 5, one error line (and the exit line)"
like "$(grep 'level=error' "$T/weak.err")" 'could not create the snapshot progress table.*permission denied' "  which says why"
timeout -k 5 30 "$PG_CAPTURE" -d "$CONN" -S snap1 --snapshot-table public.nosuch >/dev/null 2>"$T/nosuch.err"
is "$?:$(grep 'level=error' "$T/nosuch.err" | grep -vc msg=exiting)" "2:1" "an unknown --snapshot-table: exit 2, one error line (and the exit line)"

# 8. PostgreSQL 13 with pgoutput sends no logical messages: refused
pg_stop
if pg_use 13 2>/dev/null; then
	pg_start "$T/pg13" "$(free_port)" || exit 1
	CONN=$(pg_conninfo)
	timeout -k 5 30 "$PG_CAPTURE" -d "$CONN" -S snap13 --create-slot --snapshot >/dev/null 2>"$T/13.err"
	is "$?:$(grep 'level=error' "$T/13.err" | grep -vc msg=exiting)" "8:1" "PostgreSQL 13 with pgoutput: --snapshot refused, exit 8, one error line (and the exit line)"
else
	echo "ok - PostgreSQL 13 with pgoutput refused # SKIP no PostgreSQL 13 server (make pgversions)"
fi

done_testing
