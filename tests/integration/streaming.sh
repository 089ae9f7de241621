#!/usr/bin/env bash
# test: alone (it measures time or memory, or loads the machine)
# pg-capture --stream-in-progress (pgoutput protocol 2) against real servers
# with logical_decoding_work_mem = 64kB, so every big transaction streams:
# the same workload read from two slots made at the same point, one without
# and one with streaming, gives byte-identical event lines (big, concurrent
# and interleaved, rolled back, savepoints rolled back and released, a table
# first described inside a rolled-back subtransaction, a transactional
# message); exact counts; a kill -9 while a transaction streams, and one
# while it is replayed, lose nothing; a million-row transaction streamed in
# under 32 MB; PostgreSQL 18 the same (16 and 17 too with PGTEST_STREAM_VERSIONS="16 17 18"); PostgreSQL 13 and wal2json
# refused with their exit codes.
set -u
source "$(dirname "$0")/../lib/testlib.sh"
source "$TOP/tests/lib/pgcluster.sh"
T=$(mktemp -d /tmp/pgcdc-streaming.XXXXXX)
cleanup() {
	local p
	exec 7>&- 8>&- 2>/dev/null
	for p in $(jobs -p); do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	pg_stop
	rm -rf "$T"
}
trap cleanup EXIT
chmod 755 "$T"
SMALL_MEM="logical_decoding_work_mem = '64kB'"

# --- refused where it cannot work
"$PG_CAPTURE" -S s --plugin wal2json --stream-in-progress >/dev/null 2>"$T/err"
rc=$?
is "$rc $(wc -l <"$T/err")" "2 2" "--stream-in-progress with wal2json: usage error (exit 2), one line and the --help hint"
like "$(head -1 "$T/err")" "stream-in-progress applies to pgoutput only" "wal2json: the message says why"

# sqlsession NAME FD: a psql reading statements from the FIFO $T/NAME.in,
# held open on file descriptor FD; its output goes to $T/NAME.out
sqlsession() {
	mkfifo "$T/$1.in"
	timeout -k 5 180 psql -X -q -v ON_ERROR_STOP=1 -At -d "$CONN" <"$T/$1.in" >"$T/$1.out" 2>&1 &
	eval "exec $2>\"\$T/\$1.in\""
}
# step FD NAME SQL: run SQL in a session, wait until it is done (psql says
# so in a file of its own, closed with \o so that nothing stays buffered)
step() {
	echo "$3" >&"$1"
	printf '\\o %s\n\\qecho done-%s\n\\o\n' "$T/$2.done" "$2" >&"$1"
	wait_for 120 grep -qx "done-$2" "$T/$2.done" ||
		fail "session step $2 did not finish" "$(tail -3 "$T"/*.out "$T"/kill*.err 2>/dev/null)"
}

# workload: everything the identical-output comparison reads
workload() {
	sql "CREATE TABLE rows (id int PRIMARY KEY, v text, n int)" >/dev/null
	sql "CREATE TABLE late (id int PRIMARY KEY, note text)" >/dev/null
	# a big transaction with a message in it
	sql "BEGIN; INSERT INTO rows SELECT i, 'big', i FROM generate_series(1, 100000) i;
		SELECT pg_logical_emit_message(true, 'app', 'in the big one');
		UPDATE rows SET n = -n WHERE id % 1000 = 0; DELETE FROM rows WHERE id % 5000 = 1; COMMIT" >/dev/null
	# rolled back
	sql "BEGIN; INSERT INTO rows SELECT i, 'rolledback', i FROM generate_series(200001, 260000) i; ROLLBACK" >/dev/null
	# savepoints: a rolled back, b released, c (with d inside, released) rolled back
	sql "BEGIN; INSERT INTO rows SELECT i, 'sp-keep1', i FROM generate_series(300001, 320000) i;
		SAVEPOINT a; INSERT INTO rows SELECT i, 'sp-gone', i FROM generate_series(320001, 350000) i; ROLLBACK TO a;
		INSERT INTO rows SELECT i, 'sp-keep2', i FROM generate_series(350001, 360000) i;
		SAVEPOINT b; INSERT INTO rows SELECT i, 'sp-keep3', i FROM generate_series(360001, 365000) i; RELEASE b;
		SAVEPOINT c; SAVEPOINT d; INSERT INTO rows SELECT i, 'sp-gone', i FROM generate_series(365001, 370000) i; RELEASE d;
		INSERT INTO rows SELECT i, 'sp-gone', i FROM generate_series(370001, 375000) i; ROLLBACK TO c;
		INSERT INTO rows VALUES (375001, 'sp-last', 0); COMMIT" >/dev/null
	# a table first described inside a subtransaction that is rolled back
	sql "BEGIN; INSERT INTO rows SELECT i, 'filler', i FROM generate_series(400001, 420000) i;
		SAVEPOINT s; INSERT INTO late SELECT i, 'gone' FROM generate_series(1, 20000) i; ROLLBACK TO s;
		INSERT INTO late VALUES (1, 'kept'); COMMIT" >/dev/null
	# two big transactions at once, interleaved, the later one committing first
	sqlsession a 7
	sqlsession b 8
	step 7 a1 "BEGIN; INSERT INTO rows SELECT i, 'conc-a', i FROM generate_series(500001, 530000) i;"
	step 8 b1 "BEGIN; INSERT INTO rows SELECT i, 'conc-b', i FROM generate_series(600001, 630000) i;"
	step 7 a2 "INSERT INTO rows SELECT i, 'conc-a', i FROM generate_series(530001, 560000) i;"
	step 8 b2 "INSERT INTO rows SELECT i, 'conc-b', i FROM generate_series(630001, 660000) i; COMMIT;"
	step 7 a3 "COMMIT;"
	exec 7>&- 8>&-
	wait
	sql "INSERT INTO rows VALUES (0, 'small', 0)" >/dev/null
}

# compare LABEL: create two slots, run the workload, read both, compare
compare() {
	local label=$1 start end rc1 rc2
	rm -f "$T"/*.in "$T"/*.out
	start=$(sql "SELECT pg_current_wal_lsn()")
	"$PG_CAPTURE" -d "$CONN" -S plain --create-slot --endpos "$start" >/dev/null 2>&1
	"$PG_CAPTURE" -d "$CONN" -S strm --create-slot --endpos "$start" >/dev/null 2>&1
	workload
	end=$(sql "SELECT pg_current_wal_lsn()")
	timeout -k 5 120 "$PG_CAPTURE" -d "$CONN" -S plain --endpos "$end" >"$T/plain.jsonl" 2>"$T/plain.err"
	rc1=$?
	timeout -k 5 120 "$PG_CAPTURE" -d "$CONN" -S strm --endpos "$end" --stream-in-progress -v \
		>"$T/strm.jsonl" 2>"$T/strm.err"
	rc2=$?
	is "$rc1 $rc2" "0 0" "$label: both runs exit 0"
	if cmp -s "$T/plain.jsonl" "$T/strm.jsonl" && [ -s "$T/plain.jsonl" ]; then
		pass "$label: streamed and not streamed give byte-identical events ($(wc -l <"$T/plain.jsonl") lines)"
	else
		fail "$label: streamed and not streamed give byte-identical events" \
			"$(diff "$T/plain.jsonl" "$T/strm.jsonl" | head -3 | cut -c1-200)"
	fi
	# the streamed run did stream: five transactions went through a spool
	is "$(grep -c 'msg="replayed a streamed transaction"' "$T/strm.err")" 5 \
		"$label: the five big committed transactions were streamed and replayed"
	is "$(sql "SELECT stream_txns > 0, spill_txns, total_txns > 0 FROM pg_stat_replication_slots WHERE slot_name = 'strm'")" \
		"t|0|t" "$label: the server streamed to the streaming slot and spilled nothing"
	is "$(sql "SELECT stream_txns, spill_txns > 0 FROM pg_stat_replication_slots WHERE slot_name = 'plain'")" \
		"0|t" "$label: the other slot's transactions spilled to the server's disk instead"
	sql "SELECT pg_drop_replication_slot('plain'), pg_drop_replication_slot('strm'); DROP TABLE rows, late" >/dev/null
}

# count OP V: events of OP with "v" = V in the streamed output
count() { grep -c "\"op\":\"$1\".*\"v\":\"$2\"" "$T/strm.jsonl"; }

# ------------------------------------------------------------ PostgreSQL 15
pg_start "$T/pg" "$(free_port)" "$SMALL_MEM" "max_wal_size = '4GB'" "timezone = 'UTC'" || exit 1
CONN=$(pg_conninfo)
compare "PostgreSQL 15"
is "$(count insert big) $(count update big) $(grep -c '"op":"delete"' "$T/strm.jsonl")" "100000 100 20" \
	"big transaction: 100000 inserts, 100 updates, 20 deletes"
like "$(grep '"op":"message"' "$T/strm.jsonl")" '"prefix":"app".*"content":"in the big one"' \
	"big transaction: its transactional message"
is "$(count insert rolledback)" 0 "rolled-back big transaction: absent"
is "$(count insert sp-keep1) $(count insert sp-keep2) $(count insert sp-keep3) $(count insert sp-last) $(count insert sp-gone)" \
	"20000 10000 5000 1 0" "savepoints: rolled-back subtransactions absent, the rest exact"
is "$(grep -c '"op":"insert","schema":"public","table":"late"' "$T/strm.jsonl")" 1 \
	"table first described in a rolled-back subtransaction: only the row kept after it"
# concurrent: b committed first; each transaction whole and contiguous
awk -F'"' '$4 == "insert" && ($0 ~ /conc-/) { v = $0; sub(/.*"v":"/, "", v); sub(/".*/, "", v); if (v != last) { seq = seq " " v; last = v } n[v]++ }
	END { print seq, n["conc-a"], n["conc-b"] }' "$T/strm.jsonl" >"$T/conc"
is "$(cat "$T/conc")" " conc-b conc-a 60000 60000" \
	"two interleaved transactions: each whole (60000 rows) and contiguous, in commit order"

# --- kill -9 while a transaction streams, and again while it is replayed
sql "CREATE TABLE k (id int PRIMARY KEY, v int)" >/dev/null
"$PG_CAPTURE" -d "$CONN" -S kill --create-slot --endpos "$(sql "SELECT pg_current_wal_lsn()")" >/dev/null 2>&1
# startcap N [OUT]: pg-capture in the background, its events in $T/killN.jsonl
# or OUT (a run killed in a write may leave a last line cut short: not an event)
startcap() {
	: >"$T/kill$1.jsonl"
	timeout -k 5 180 "$PG_CAPTURE" -d "$CONN" -S kill -o "${2:-$T/kill$1.jsonl}" --stream-in-progress -v \
		--status-interval 0.2 2>"$T/kill$1.err" &
	TMO=$!
	# pg-capture itself, timeout's child: killing timeout would leave it running
	wait_for 10 pgrep -P "$TMO" && CAP=$(pgrep -P "$TMO")
}
startcap 1
rm -f "$T"/*.in "$T"/*.out
sqlsession a 7
step 7 k1 "BEGIN; INSERT INTO k SELECT i, i FROM generate_series(1, 300000) i;"
if wait_for 60 grep -q 'msg="streaming a transaction in progress"' "$T/kill1.err"; then
	kill -9 "$CAP"; wait "$TMO" 2>/dev/null
	pass "kill -9 of pg-capture while a transaction streams to it"
else
	fail "kill -9 of pg-capture while a transaction streams to it" "it never streamed"
fi
# killed again in the middle of its replay: its reader takes the first
# megabyte and then stops reading, so pg-capture is held inside the
# transaction (about 60 MB of events) however fast the machine is
mkfifo "$T/kill2.fifo"
{ head -c 1000000 >"$T/kill2.jsonl"; exec sleep 170; } <"$T/kill2.fifo" &
SINK=$!
startcap 2 "$T/kill2.fifo"
step 7 k2 "UPDATE k SET v = -v WHERE id % 3 = 0; DELETE FROM k WHERE id % 7 = 0; COMMIT;"
exec 7>&-
some_out() { [ "$(stat -c %s "$T/kill2.jsonl")" -ge 1000000 ]; }
if wait_for 60 some_out; then
	kill -9 "$CAP"; wait "$TMO" 2>/dev/null
	is "$(cat "$T"/kill[12].jsonl | grep -c '"op":"commit"')" 0 \
		"kill -9 of pg-capture again while it writes the committed transaction ($(grep -c '"table":"k"' "$T/kill2.jsonl") events out)"
else
	fail "kill -9 while it writes the committed transaction" "nothing written"
fi
kill "$SINK" 2>/dev/null; wait "$SINK" 2>/dev/null
sql "INSERT INTO k VALUES (0, 0)" >/dev/null
end=$(sql "SELECT pg_current_wal_lsn()")
timeout -k 5 180 "$PG_CAPTURE" -d "$CONN" -S kill -o "$T/kill3.jsonl" --stream-in-progress --endpos "$end" 2>"$T/kill3.err"
is "$?" 0 "restarted, pg-capture reads up to --endpos"
# replay the events (a repeated id applied once) and compare with the table
python3 - "$T"/kill[123].jsonl >"$T/kill.state" <<'EOF'
import json, sys
rows, seen, lines = {}, set(), []
for f in sys.argv[1:]:
    text = open(f).read()
    lines += text.split("\n")[:-1]     # without a newline, the last is not a line
for line in lines:
    e = json.loads(line)
    if e["op"] not in ("insert", "update", "delete") or e["table"] != "k" or e["id"] in seen:
        continue
    seen.add(e["id"])
    if e["op"] in ("insert", "update"):
        rows[e["new"]["id"]] = e["new"]["v"]
    elif e["op"] == "delete":
        del rows[e["old"]["id"]]
print(len(rows), sum(rows.values()), sum(k * 3 + v for k, v in rows.items()))
EOF
is "$(cat "$T/kill.state")" "$(sql "SELECT count(*), sum(v), sum(id * 3 + v) FROM k" | tr '|' ' ')" \
	"after both kills: the events (deduplicated by id) explain the table exactly"
is "$(cat "$T"/kill[123].jsonl | grep -c '"op":"commit"')" 2 "after both kills: each transaction committed once in the output"

# --- a million rows in one transaction, streamed, in bounded memory
sql "CREATE TABLE m (id int PRIMARY KEY, v int)" >/dev/null
"$PG_CAPTURE" -d "$CONN" -S mem --create-slot --endpos "$(sql "SELECT pg_current_wal_lsn()")" >/dev/null 2>&1
sql "INSERT INTO m SELECT i, i FROM generate_series(1, 1000000) i" >/dev/null
end=$(sql "SELECT pg_current_wal_lsn()")
/usr/bin/time -f %M -o "$T/rss" timeout -k 5 240 "$PG_CAPTURE" -d "$CONN" -S mem --stream-in-progress \
	--endpos "$end" 2>"$T/mem.err" | LC_ALL=C awk -F'"' '$4 == "insert" { r++ } $4 == "commit" { c++ } END { print r + 0, c + 0 }' >"$T/mcount"
is "$(cat "$T/mcount")" "1000000 1" "a million-row transaction streamed: every row, one commit"
rss=$(tail -1 "$T/rss")
rss_below 32768 "streamed million-row transaction" "$rss"
is "$(sql "SELECT stream_txns > 0, spill_bytes FROM pg_stat_replication_slots WHERE slot_name = 'mem'")" "t|0" \
	"million-row transaction: streamed by the server, nothing spilled"
pg_stop

# ------------------------------------------- other versions: 18 (16 17 18 with
# PGTEST_STREAM_VERSIONS="16 17 18"; versions.sh covers the rest of each)
for v in ${PGTEST_STREAM_VERSIONS:-18}; do
	if ! pg_use "$v" 2>/dev/null; then
		pass "PostgreSQL $v # SKIP server not installed (make pgversions)"
		continue
	fi
	pg_start "$T/pg$v" "$(free_port)" "$SMALL_MEM" "timezone = 'UTC'" || { fail "PostgreSQL $v starts"; continue; }
	CONN=$(pg_conninfo)
	compare "PostgreSQL $v"
	is "$(count insert sp-keep1) $(count insert sp-gone) $(count insert rolledback) $(count insert conc-a)" \
		"20000 0 0 60000" "PostgreSQL $v: savepoints, rollback and interleaving: exact counts"
	pg_stop
done

# ------------------------------------------------------------ PostgreSQL 13
if pg_use 13 2>/dev/null && pg_start "$T/pg13" "$(free_port)"; then
	CONN=$(pg_conninfo)
	"$PG_CAPTURE" -d "$CONN" -S old --create-slot --endpos "$(sql "SELECT pg_current_wal_lsn()")" >/dev/null 2>&1
	timeout -k 5 30 "$PG_CAPTURE" -d "$CONN" -S old --stream-in-progress >/dev/null 2>"$T/old.err"
	is "$? $(grep -c 'level=error' "$T/old.err")" "8 2" \
		"PostgreSQL 13: --stream-in-progress is a server configuration error (exit 8)"
	like "$(grep -m1 level=error "$T/old.err")" 'needs PostgreSQL 14 or later.*error="server version 13"' \
		"PostgreSQL 13: the error names the version needed and the server's"
	pg_stop
else
	pass "PostgreSQL 13 # SKIP server not installed (make pgversions)"
fi
done_testing
