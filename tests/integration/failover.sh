#!/usr/bin/env bash
# pg-capture --failover and a failover under a running pipeline.
#
# PostgreSQL 15 (no failover slots): --failover is exit 8 and one line.
# PostgreSQL 17 and 18 (PGTEST_VERSIONS="17" runs one): a primary with a
# physical slot for its standby, synchronized_standby_slots and synchronous
# replication; a hot standby that synchronises slots. pg-capture creates a
# failover slot, or turns failover on for an existing one; the standby
# shows it synchronised. Then pg-capture, with both servers in its
# connection string (target_session_attrs=primary), feeds cdc-publish
# --dry-run, which acknowledges, while a writer commits numbered rows; the
# primary crashes, the standby is promoted, the writer goes on there. The
# promoted server's table is the oracle: every row in it arrived, none
# that is not, each row's insert before its update; pg-capture logged the
# reconnect, its heartbeats (written on its catalog connection) came from
# the new primary too, and the slot there is confirmed to the end.
# Then, without synchronized_standby_slots, pg-capture delivers rows the
# standby never gets: after the failover it stops rather than skip the new
# primary's transactions, and run again it resumes from the slot.
# KEEP=1 keeps the temporary directory (logs, data) for a look after.
set -u
source "$(dirname "$0")/../lib/testlib.sh"
source "$TOP/tests/lib/pgcluster.sh"
PUBLISH=$TOP/cdc-publish/cdc-publish
T=$(mktemp -d /tmp/pgcdc-failover.XXXXXX)
DIRS=()
cleanup() {
	local p d
	# timeout(1) runs its command in a process group of its own: kill the
	# group, or a pg-capture whose timeout was killed would live on
	for p in $(jobs -p); do kill -9 -- -"$p" "$p" 2>/dev/null; done
	wait 2>/dev/null
	for d in "${DIRS[@]}"; do pg_stop "$d"; done
	[ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
chmod 755 "$T"
VERSIONS=${PGTEST_VERSIONS:-17 18}
now() { sql "SELECT pg_current_wal_lsn()"; }
errline() { grep -m1 'level=error' "$1"; }
# insert_rows FROM TO: a transaction for each row
insert_rows() {
	printf 'INSERT INTO t VALUES (%d, 0);\n' $(seq "$1" "$2") |
		PGCONNECT_TIMEOUT=10 timeout -k 5 60 psql -X -q -v ON_ERROR_STOP=1 -d "$(pg_conninfo)" >/dev/null
}

# --- PostgreSQL 15: no failover slots --------------------------------------
pg_start "$T/pg15" "$(free_port)" || exit 1
DIRS+=("$T/pg15")
timeout -k 5 30 "$PG_CAPTURE" -d "$(pg_conninfo)" -S fo --create-slot --failover >/dev/null 2>"$T/e.log"
is "$?" 8 "PG 15: --failover: exit 8 (server configuration)"
is "$(grep -c 'level=error.*failover' "$T/e.log")" 1 "PG 15: --failover: one line says it"
like "$(errline "$T/e.log")" '^ts=[^ ]+ level=error prog=pg-capture msg="--failover needs PostgreSQL 17 or later" slot=fo error="server version 15\.[0-9]+" hint="on an older server, after a failover create the slot again on the new primary and take a new snapshot"$' \
	"PG 15: --failover: names the version and the alternative"
is "$(sql "SELECT count(*) FROM pg_replication_slots")" 0 "PG 15: --failover: no slot created"
pg_stop
DIRS=()

# --- PostgreSQL 17+: a failover under a running pipeline --------------------

# The writer: transaction i inserts row i (v = 0) and sets v = 1 on row
# i - 1, until FILE stop exists; it prints i once committed. After an error
# (the primary gone, the standby not yet promoted) it connects again and
# repeats i: ON CONFLICT and "AND v = 0" make a repeat of a committed one
# change nothing.
cat >"$T/writer.py" <<'EOF'
import os, sys, time
import psycopg2
dsn, stop = sys.argv[1:3]
conn, i = None, 1
while not os.path.exists(stop):
    try:
        if conn is None:
            conn = psycopg2.connect(dsn, connect_timeout=3)
        with conn.cursor() as cur:
            cur.execute("INSERT INTO t VALUES (%s, 0) ON CONFLICT (id) DO NOTHING", (i,))
            cur.execute("UPDATE t SET v = 1 WHERE id = %s AND v = 0", (i - 1,))
        conn.commit()
        print(i, flush=True)
        i += 1
        time.sleep(0.005)
    except psycopg2.Error as e:
        print("# " + str(e).strip().split("\n")[0], file=sys.stderr, flush=True)
        try:
            conn.close()
        except Exception:
            pass
        conn = None
        time.sleep(0.2)
EOF

# The check: the events against the promoted server's table (ROWS: "id|v"
# lines) and the writer's committed ids. Prints facts, one per line.
cat >"$T/check.py" <<'EOF'
import json, sys
events_path, rows_path, written_path = sys.argv[1:4]
table = {}
for line in open(rows_path):
    k, v = line.strip().split("|")
    table[int(k)] = int(v)
written = {int(l) for l in open(written_path) if l.strip().isdigit()}
seen_ids, seen_tx = {}, set()
redelivered = unexplained = order = 0
last_commit = None
rows = {}
tx = []
def lsn(s):
    hi, lo = s.split("/")
    return int(hi, 16) << 32 | int(lo, 16)
for line in open(events_path):
    e = json.loads(line)
    if e["op"] == "begin":
        tx = []
    elif e["op"] == "commit":
        c = lsn(e["commit_lsn"])
        if e["commit_lsn"] in seen_tx:
            redelivered += 1            # a whole transaction sent again
        elif last_commit is not None and c <= last_commit:
            order += 1
        else:
            last_commit = c
            for r in tx:
                rows.setdefault(r[0], []).append(r[1:])
        seen_tx.add(e["commit_lsn"])
    elif e["op"] in ("insert", "update", "delete"):
        if e["id"] in seen_ids and seen_ids[e["id"]] != line:
            unexplained += 1            # one id, two different events
        seen_ids[e["id"]] = line
        tx.append((e["new"]["id"], e["op"], e["new"]["v"]))
missing = sorted(set(table) - set(rows))
ghosts = sorted(set(rows) - set(table))
bad = [k for k in table if k in rows and not (
    rows[k][0] == ("insert", 0) and (rows[k][1:] == [] and table[k] == 0 or
                                     rows[k][1:] == [("update", 1)] and table[k] == 1))]
print("rows in the promoted server's table missing from the stream: %d %s" % (len(missing), missing[:10]))
print("rows in the stream the promoted server does not have: %d %s" % (len(ghosts), ghosts[:10]))
print("rows whose events are not insert v=0 then update v=1 as in the table: %d %s" % (len(bad), bad[:10]))
print("commits out of order: %d" % order)
print("ids on two different events: %d" % unexplained)
print("committed by the writer but not on the promoted server: %d" % len(written - set(table)))
print("redelivered %d" % redelivered)
EOF

failover_run() {
	local v=$1 P="PG $1:" D=$T/v$1
	if ! pg_use "$v" 2>/dev/null; then
		pass "$P failover # SKIP no PostgreSQL $v server (make pgversions installs it)"
		return
	fi
	mkdir -p "$D"
	chmod 755 "$D"
	pg_start "$D/pg" "$(free_port)" || { fail "$P primary started"; return; }
	DIRS+=("$D/pg")
	local P1=$PGTEST_PORT CONN
	CONN=$(pg_conninfo)
	sql "SELECT pg_create_physical_replication_slot('sb', true)" >/dev/null
	pg_standby "$D/sb" "$(free_port)" sb "sync_replication_slots = on" || { fail "$P standby started"; return; }
	DIRS+=("$D/sb")
	local P2=$PGSTANDBY_PORT
	sql "ALTER SYSTEM SET synchronized_standby_slots = 'sb'" &&
		sql "ALTER SYSTEM SET synchronous_standby_names = 'standby'" && sql "SELECT pg_reload_conf()" >/dev/null
	sync_standby() { [ "$(sql "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby'")" = sync ]; }
	if wait_for 30 sync_standby; then pass "$P the standby streams, synchronously, on its physical slot"
	else fail "$P the standby streams" "$(tail -3 "$D/sb/server.log")"; return; fi
	sql "CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL)"

	# an existing slot that is not a failover slot: --failover turns it on
	"$PG_CAPTURE" -d "$CONN" -S plain --create-slot --endpos "$(now)" >/dev/null 2>"$D/plain.log"
	timeout -k 5 30 "$PG_CAPTURE" -d "$CONN" -S plain --failover --endpos "$(now)" >/dev/null 2>"$D/plain.log"
	is "$?" 0 "$P --failover on an existing slot: exit 0"
	is "$(grep -c 'msg="turned failover on for the replication slot: standbys will synchronise it" slot=plain$' "$D/plain.log")" 1 \
		"$P --failover on an existing slot: turned on, and logged"
	is "$(sql "SELECT failover FROM pg_replication_slots WHERE slot_name = 'plain'")" t "$P --failover on an existing slot: it is a failover slot now"
	timeout -k 5 30 "$PG_CAPTURE" -d "$CONN" -S plain --drop-slot 2>/dev/null

	# the failover slot
	timeout -k 5 30 "$PG_CAPTURE" -d "$CONN" -S fo --create-slot --failover --endpos "$(now)" >/dev/null 2>"$D/create.log"
	is "$?" 0 "$P --create-slot --failover: exit 0"
	like "$(grep 'created replication slot' "$D/create.log")" 'slot=fo plugin=pgoutput lsn=[0-9A-F]+/[0-9A-F]+ failover=true$' "$P --create-slot --failover: logged"
	is "$(sql "SELECT failover FROM pg_replication_slots WHERE slot_name = 'fo'")" t "$P --create-slot --failover: a failover slot"
	is "$(grep -c 'synchronized_standby_slots' "$D/create.log")" 0 "$P synchronized_standby_slots set: no warning"

	# the pipeline, with both servers in the connection string, and the writer
	local MULTI="host=127.0.0.1,127.0.0.1 port=$P1,$P2 dbname=postgres user=postgres target_session_attrs=primary"
	mkfifo -m 600 "$D/ack" "$D/out" "$D/tee"
	timeout -k 5 240 "$PUBLISH" --dry-run --ack-fifo "$D/ack" http://127.0.0.1:9/events <"$D/tee" >"$D/pub.out" 2>"$D/pub.err" &
	local PUB=$!
	timeout -k 5 240 tee "$D/cap.out" <"$D/out" >"$D/tee" &
	local TEE=$!
	timeout -k 5 240 "$PG_CAPTURE" -d "$MULTI" -S fo --ack-fifo "$D/ack" --heartbeat 0.5 --health-interval 0.5 \
		>"$D/out" 2>"$D/cap.err" &
	local CAP=$!
	timeout -k 5 240 python3 "$T/writer.py" "$MULTI connect_timeout=3" "$D/stop" >"$D/written" 2>"$D/writer.err" &
	local WR=$!

	# the standby has the slot, synchronised and kept (no longer temporary)
	synced() { [ "$(sql_at "$P2" "SELECT synced AND NOT temporary FROM pg_replication_slots WHERE slot_name = 'fo'")" = t ]; }
	if wait_for 60 synced; then pass "$P the standby synchronised the failover slot (synced = true)"
	else fail "$P the standby synchronised the failover slot" "$(sql_at "$P2" "SELECT * FROM pg_replication_slots")"; fi
	like "$(grep -m1 'slot health' "$D/cap.err")" 'slot=fo wal_status=reserved retained_mb=[0-9.]+ conflicting=false failover=true synced=false$' \
		"$P the slot health line: failover=true synced=false on the primary"

	# on the standby the synchronised slot cannot be used: retried, never fatal
	timeout -k 5 30 "$PG_CAPTURE" -d "host=127.0.0.1 port=$P2 dbname=postgres user=postgres" -S fo \
		--retry-max-time 1 >/dev/null 2>"$D/standby.log"
	is "$?" 4 "$P pg-capture on the standby alone: retried until --retry-max-time (exit 4), not a fatal error"
	like "$(grep -m1 'will reconnect' "$D/standby.log")" 'msg="replication slot (is synchronised from a primary: this server is a standby|is in use), will reconnect" slot=fo' \
		"$P pg-capture on the standby alone: says why it waits"

	# mid-stream: rows written, some of them delivered
	nwritten() { wc -l <"$D/written"; }
	ninserts() { grep -c '"op":"insert"' "$D/cap.out"; }
	midstream() { [ "$(nwritten)" -ge 300 ] && [ "$(ninserts)" -ge 150 ]; }
	if wait_for 60 midstream; then pass "$P mid-stream: rows written, some of them delivered"
	else fail "$P mid-stream before the crash" "written $(nwritten), delivered $(ninserts) $(tail -1 "$D/writer.err")"; return; fi
	pg_crash "$D/pg"
	local at_crash
	at_crash=$(nwritten)
	pg_promote "$D/sb" "$P2" || { fail "$P standby promoted" "$(tail -3 "$D/sb/server.log")"; return; }
	local promoted
	promoted=$(now)
	after() { [ "$(nwritten)" -ge $((at_crash + 300)) ]; }
	if wait_for 60 after; then pass "$P the writer went on on the promoted standby"
	else fail "$P the writer went on on the promoted standby" "$(tail -2 "$D/writer.err")"; return; fi
	touch "$D/stop"
	wait_exit "$WR" 20
	sql "SELECT id || '|' || v FROM t ORDER BY id" >"$D/rows"
	local last
	last=$(now)
	all_there() {
		[ "$(sed -n 's/^{"op":"commit","xid":[0-9]*,"lsn":"\([0-9A-F/]*\)".*/\1/p' "$D/cap.out" | tail -1)" ] &&
			python3 "$T/check.py" "$D/cap.out" "$D/rows" "$D/written" | grep -q '^rows in .* missing from the stream: 0 '
	}
	wait_for 60 all_there
	# everything acknowledged and confirmed on the new primary
	slot_done() { [ "$(sql "SELECT confirmed_flush_lsn >= '$last' FROM pg_replication_slots WHERE slot_name = 'fo'")" = t ]; }
	if wait_for 30 slot_done; then pass "$P the slot on the promoted server is confirmed past the last write"
	else fail "$P the slot on the promoted server is confirmed" "$(sql "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'fo'") < $last"; fi
	kill -TERM "$CAP"
	wait_exit "$CAP" 30
	is "$RC" 0 "$P pg-capture stops cleanly on SIGTERM after the failover"
	wait_exit "$PUB" 20
	is "$RC" 0 "$P cdc-publish delivered everything and exited 0"
	wait_exit "$TEE" 5

	local n facts
	n=$(wc -l <"$D/rows")
	is "$(sed -n '$=' "$D/written") $(sed -n '$p' "$D/written")" "$n $n" "$P the promoted server has each of the $n rows the writer committed, numbered 1 to $n"
	facts=$(python3 "$T/check.py" "$D/cap.out" "$D/rows" "$D/written" 2>&1)
	is "$(printf '%s\n' "$facts" | sed '$d')" "rows in the promoted server's table missing from the stream: 0 []
rows in the stream the promoted server does not have: 0 []
rows whose events are not insert v=0 then update v=1 as in the table: 0 []
commits out of order: 0
ids on two different events: 0
committed by the writer but not on the promoted server: 0" \
		"$P $n rows ($at_crash before the crash, the rest on the promoted standby): each arrived, in commit order, none that the new primary lacks"
	# at-least-once: a repeat would be a whole transaction sent again with the
	# same ids; pg-capture skips what it wrote before a reconnect, so none
	is "$(printf '%s\n' "$facts" | tail -1)" "redelivered 0" "$P no transaction sent twice across the failover"
	is "$(grep -c '"op":"insert"' "$D/pub.out")" "$(grep -c '"op":"insert"' "$D/cap.out")" "$P cdc-publish sent every insert pg-capture wrote"

	like "$(grep -c -e 'lost the connection, will reconnect' -e 'server ended the stream, will reconnect' "$D/cap.err")" '^[1-9]' \
		"$P pg-capture noticed the primary's crash"
	is "$(grep -c 'msg=streaming' "$D/cap.err")" 2 "$P pg-capture streamed again, once, from the promoted standby"
	is "$(grep -c 'level=error' "$D/cap.err")" 0 "$P no error line"
	is "$(grep -c 'synchronized_standby_slots is empty' "$D/cap.err")" 1 \
		"$P the promoted server has no synchronized_standby_slots: warned when pg-capture connected to it"
	local hb
	hb=$(python3 -c 'import json, sys
def lsn(s):
    hi, lo = s.split("/"); return int(hi, 16) << 32 | int(lo, 16)
print(sum(1 for l in open(sys.argv[1]) if "\"op\":\"heartbeat\"" in l and lsn(json.loads(l)["lsn"]) > lsn(sys.argv[2])))' "$D/cap.out" "$promoted")
	like "$hb" '^[1-9]' "$P heartbeats written on the promoted server: the catalog connection followed ($hb)"
	pg_stop "$D/sb"
	DIRS=()
}

# Without synchronized_standby_slots: pg-capture delivers what the standby
# never gets (it is stopped meanwhile), the primary crashes, the standby
# is promoted. pg-capture must not go on from positions the new primary's
# history does not have (it would skip the new primary's transactions
# there): it stops with one line; run again, it resumes from the slot and
# every row written on the new primary arrives.
fork_run() {
	local v=$1 P="PG $1, no synchronized_standby_slots:" D=$T/fork$1
	pg_use "$v" 2>/dev/null || return
	mkdir -p "$D"
	chmod 755 "$D"
	pg_start "$D/pg" "$(free_port)" || { fail "$P primary started"; return; }
	DIRS+=("$D/pg")
	local P1=$PGTEST_PORT CONN
	CONN=$(pg_conninfo)
	sql "SELECT pg_create_physical_replication_slot('sb', true)" >/dev/null
	# slots synchronised on demand (pg_sync_replication_slots) rather than by
	# the worker, which sleeps up to 30 s when they do not move
	pg_standby "$D/sb" "$(free_port)" sb || { fail "$P standby started"; return; }
	DIRS+=("$D/sb")
	local P2=$PGSTANDBY_PORT
	local MULTI="host=127.0.0.1,127.0.0.1 port=$P1,$P2 dbname=postgres user=postgres target_session_attrs=primary"
	sql "CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL)"
	timeout -k 5 30 "$PG_CAPTURE" -d "$CONN" -S fo --create-slot --failover --endpos "$(now)" >/dev/null 2>"$D/create.log"
	like "$(grep 'synchronized_standby_slots' "$D/create.log")" 'level=warn prog=pg-capture msg="synchronized_standby_slots is empty: consumers can get ahead of the standbys" slot=fo hint=' \
		"$P a warning at start"
	timeout -k 5 120 "$PG_CAPTURE" -d "$MULTI" -S fo --status-interval 0.2 -o "$D/cap.out" 2>"$D/cap.err" &
	local CAP=$!
	sql "INSERT INTO t SELECT i, 0 FROM generate_series(1, 50) i"
	rows_out() { [ "$(grep -c '"op":"insert"' "$1")" -ge "$2" ]; }
	synced() {
		sql_at "$P2" "SELECT pg_sync_replication_slots()" >/dev/null &&
			[ "$(sql_at "$P2" "SELECT synced AND NOT temporary AND confirmed_flush_lsn >= '$1' FROM pg_replication_slots WHERE slot_name = 'fo'")" = t ]
	}
	local at
	at=$(now)
	if wait_for 30 rows_out "$D/cap.out" 50 && wait_for 60 synced "$at"; then pass "$P 50 rows delivered, the slot synchronised past them"
	else fail "$P 50 rows delivered and synchronised" "$(sql_at "$P2" "SELECT * FROM pg_replication_slots")"; return; fi
	pg_stop "$D/sb"
	insert_rows 51 100
	if wait_for 30 rows_out "$D/cap.out" 100; then pass "$P 50 more rows delivered, the standby stopped"
	else fail "$P 50 more rows delivered" "$(tail -2 "$D/cap.err")"; return; fi
	pg_crash "$D/pg"
	pg_up "$D/sb" && pg_promote "$D/sb" "$P2" || { fail "$P standby promoted"; return; }
	wait_exit "$CAP" 60
	is "$RC" 1 "$P pg-capture stops (exit 1) instead of going on past the new primary's history"
	like "$(grep 'level=error' "$D/cap.err" | head -1)" 'msg="changes already written are not in the server.s history" slot=fo error="written up to [0-9A-F/]+, the server.s timeline 2 left timeline 1 at [0-9A-F/]+" hint=' \
		"$P one line says so"
	like "$(grep 'new timeline' "$D/cap.err")" 'timeline=2 previous_timeline=1 switch_lsn=[0-9A-F]+/[0-9A-F]+$' "$P the new timeline logged"
	insert_rows 101 150
	timeout -k 5 60 "$PG_CAPTURE" -d "$MULTI" -S fo --endpos "$(now)" -o "$D/again.out" 2>"$D/again.err"
	is "$?" 0 "$P run again: exit 0"
	sql "SELECT id || '|' || v FROM t ORDER BY id" >"$D/rows"
	: >"$D/none"
	is "$(python3 "$T/check.py" "$D/cap.out" "$D/rows" "$D/none" | sed -n 2p)" \
		"rows in the stream the promoted server does not have: 50 [51, 52, 53, 54, 55, 56, 57, 58, 59, 60]" \
		"$P the first run had delivered rows 51 to 100, lost with the old primary"
	is "$(python3 "$T/check.py" "$D/again.out" "$D/rows" "$D/none" | sed -n 1,2p) $(grep -c '"op":"insert"' "$D/again.out")" \
		"rows in the promoted server's table missing from the stream: 50 [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
rows in the stream the promoted server does not have: 0 [] 50" \
		"$P run again: resumes from the slot, rows 101 to 150 of the new primary arrive, nothing before"
	pg_stop "$D/sb"
	DIRS=()
}

for v in $VERSIONS; do
	failover_run "$v"
done
fork_run "${VERSIONS%% *}"
done_testing
