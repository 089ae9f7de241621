#!/usr/bin/env bash
# pg-capture --snapshot: tables read as "read" events, chunk by chunk between
# watermarks, while pgbench changes them (updates, deletes, inserts, key
# changes, from four connections). The final table state must be explained
# by the read events plus the changes (snapcheck.py). Also: a composite key
# out of column order, a table without a key, --snapshot once per slot, a
# snapshot asked again with SQL, wal2json, a role that cannot keep the
# progress, an unknown table, PostgreSQL 13 with pgoutput refused.
# Interrupted snapshots: snapresume.sh.
set -u
source "$(dirname "$0")/../lib/testlib.sh"
source "$TOP/tests/lib/pgcluster.sh"
HERE=$TOP/tests/integration
PGBENCH=$(command -v pgbench || echo /usr/lib/postgresql/15/bin/pgbench)
T=$(mktemp -d /tmp/pgcdc-snapshot.XXXXXX)
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
source "$TOP/tests/lib/snaptest.sh"

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
# a row updated while its chunk was read comes as that update, not as a read
is "$(python3 - "$T/run1.out" <<'EOF2'
import json, sys
reads, updated = [], set()
for l in open(sys.argv[1]):
    e = json.loads(l)
    if e.get("table") != "c2":
        continue
    k = (e["key"]["a"], e["key"]["b"]) if "key" in e else None
    if e["op"] == "read":
        reads.append(k)
    elif e["op"] == "update":
        updated.add(k)
every = {(g % 7, "k" + str(g // 7)) for g in range(1, 3001)}
print("twice", len(reads) - len(set(reads)), "neither", len(every - set(reads) - updated))
EOF2
)" "twice 0 neither 0" "every row of the table nobody deletes from is read once, or changed while its chunk was read (c2: $ins reads of 3000)"
is "$(timeout 30 "$TOP/cdc-filter/cdc-filter" -t public.c2 --op read <"$T/run1.out" | grep -c '"op":"read"')" "$ins" \
	"cdc-filter selects read events by table and op"
nodup=$(grep '"op":"read"' "$T/run1.out" | grep -o '"id":"[^"]*"' | sort | uniq -d | wc -l)
is "$nodup" 0 "read ids are unique"

# 2. --snapshot again: the slot's snapshot is done, nothing is read
timeout -k 5 30 "$PG_CAPTURE" -d "$CONN" -S snap1 --snapshot --endpos "$(sql "SELECT pg_current_wal_lsn()")" >"$T/again.out" 2>"$T/again.err"
is "$?:$(grep -c '"op":"read"' "$T/again.out")" "0:0" "--snapshot once per slot: a finished snapshot is not taken again"
# a slot dropped with SQL (not --drop-slot) leaves its rows; a new slot of that name is not bound by them
b_done() { grep -q 'msg="snapshot of table done".*table=public\.c2' "$1"; }
b_run() { # b_run N ARGS...: pg-capture -S snap1b reads c2 to the end, then stops
	local n=$1
	shift
	timeout -k 5 60 "$PG_CAPTURE" -d "$CONN" -S snap1b --publication snap1 "$@" --snapshot-table c2 >"$T/b$n.out" 2>"$T/b$n.err" &
	CAP=$!
	wait_for 30 b_done "$T/b$n.err" || fail "snapshot of c2 by snap1b ($n)" "$(tail -3 "$T/b$n.err")"
	kill -TERM "$CAP"
	wait_exit "$CAP" 30
}
sql "SELECT pg_create_logical_replication_slot('snap1b', 'pgoutput')" >/dev/null
b_run 1
sql "SELECT pg_drop_replication_slot('snap1b')" >/dev/null
rows=$(sql "SELECT count(*) FROM public.c2")
b_run 2 --create-slot
is "$(grep -c '"op":"read"' "$T/b2.out")" "$rows" \
	"a slot created anew under the name of one dropped with SQL reads its tables again ($rows rows)"

# 3. on demand: a logical message asks for one table again, the running pipeline reads it
timeout -k 5 60 "$PG_CAPTURE" -d "$CONN" -S snap1 >"$T/demand.out" 2>"$T/demand.err" &
CAP=$!
sql "SELECT pg_logical_emit_message(true, 'pgcdc.snapshot', 'public.c2')" >/dev/null
done_c2() { grep -q 'msg="snapshot of table done".*table=public\.c2' "$T/demand.err"; }
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

# 6. wal2json
"$PG_CAPTURE" -d "$CONN" -S snapw --plugin wal2json --create-slot --endpos "$(sql "SELECT pg_current_wal_lsn()")" >/dev/null 2>>"$T/create.log"
end=$(sql "SELECT pg_current_wal_lsn()")
timeout -k 5 60 "$PG_CAPTURE" -d "$CONN" -S snapw --plugin wal2json --snapshot-table public.c2 >"$T/w.out" 2>"$T/w.err" &
CAP=$!
done_w() { grep -q 'msg="snapshot of table done".*table=public\.c2' "$T/w.err"; }
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
