#!/usr/bin/env bash
# pg-capture with pgoutput against every supported server version, 12 to 18
# (15 is Debian's, the others come from make pgversions), one throwaway
# cluster after the other: the work-item workload with exact counts, typed
# values and TOAST, partitioned tables, acknowledgement and resume after a
# restart of pg-capture, a server restart in the middle of a large
# transaction, an invalidated slot. What an older server cannot do is
# asserted as such and reported as a SKIP with the reason.
# PGTEST_VERSIONS="12 17" runs only those.
set -u
source "$(dirname "$0")/../lib/testlib.sh"
source "$TOP/tests/lib/pgcluster.sh"
T=$(mktemp -d /tmp/pgcdc-test.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; pg_stop; rm -rf "$T"' EXIT
chmod 755 "$T"
HERE=$TOP/tests/integration
VERSIONS=${PGTEST_VERSIONS:-12 13 14 15 16 17 18}

confirmed() { sql "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '$1'"; }
slot_inactive() { [ "$(sql "SELECT active FROM pg_replication_slots WHERE slot_name = '$1'")" = f ]; }
ncommits() { grep -c '"op":"commit"' "$1" 2>/dev/null; }
has_commits() { [ "$(ncommits "$1")" -ge "$2" ]; }
lines_over() { [ "$(wc -l <"$1" 2>/dev/null || echo 0)" -gt "$2" ]; }
slot_at() { [ "$(confirmed "$1")" = "$2" ]; }
# the commit lines' positions, for polling loops (events.py checks whole streams)
commit_lsns() { sed -n 's/^{"op":"commit","xid":[0-9]*,"lsn":"\([0-9A-F]*\/[0-9A-F]*\)".*/\1/p' "$1" | tr '\n' ' ' | sed 's/ $//'; }
# pg-capture bounded in time whatever happens (every run also has --endpos or
# is stopped); run in the background, its pid is timeout's, which passes
# SIGTERM on and exits with pg-capture's status
CAPTURE=(timeout -k 5 90 "$PG_CAPTURE")
# a write to the ack FIFO blocks until pg-capture opens it: bounded too
ack() { timeout 10 bash -c 'printf "%s\n" "$1" >"$2"' ack "$1" "$D/ack"; }
now() { sql "SELECT pg_current_wal_lsn()"; }
# invalidation happens at checkpoints
idle_lost() {
	sql CHECKPOINT
	[ "$(sql "SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'idle'")" = lost ]
}

# The workload of capture.sh: every op, trigger-made updates, typed values,
# REPLICA IDENTITY FULL, TOAST, a rolled-back transaction, a logical message
# (PostgreSQL 14+ only with pgoutput), a 100 000-row transaction.
workload() {
	local v=$1 P="PG $1:" msg="" txs=11 ids=100024
	psql -X -q -v ON_ERROR_STOP=1 -d "$CONN" -f "$HERE/workload.sql" >/dev/null || { fail "$P workload schema"; return; }
	"${CAPTURE[@]}" -d "$CONN" -S cap --create-slot --endpos "$(now)" >"$D/empty.out" 2>"$D/create.log"
	is "$?" 0 "$P --create-slot exits 0"
	is "$(sql "SELECT count(*) FROM pg_publication WHERE pubname = 'cap' AND puballtables")" 1 \
		"$P publication created for all tables"
	psql -X -q -v ON_ERROR_STOP=1 -d "$CONN" -f "$HERE/changes.sql" >/dev/null 2>"$D/changes.err"
	"${CAPTURE[@]}" -d "$CONN" -S cap --endpos "$(now)" -o "$D/cap.out" 2>"$D/cap.log"
	is "$?" 0 "$P run to --endpos exits 0"
	if [ "$v" -ge 14 ]; then
		msg=$'message . 1\n' txs=12 ids=100025
	fi
	# one pass over the 100 000 lines: checks the stream's structure, prints the facts
	python3 "$HERE/events.py" "$D/cap.out" counts txs ids commits rows=public.workitems \
		rows=public.item_watchers rows=public.comments >"$D/facts" 2>&1
	is "$(grep -v '^{' "$D/facts" | sed '$d')" "delete public.comments 1
delete public.item_watchers 1
delete public.workitems 1
insert public.audit_log 100003
insert public.comments 2
insert public.item_watchers 2
insert public.workitems 5
${msg}schema public.audit_log 1
schema public.comments 1
schema public.item_watchers 1
schema public.workitems 1
truncate public.audit_log 1
update public.comments 1
update public.item_watchers 1
update public.workitems 6
$txs
$ids" "$P exact events per op and table, $txs transactions, unique ids"
	is "$(grep -c '"never"' "$D/cap.out")" 0 "$P rolled-back transaction absent"

	is "$(grep '"table": "workitems"' "$D/facts" | sed -n '1p;8p;12p')" \
'{"key": {"id": 1}, "new": {"blocked": false, "estimate": "num:40.50", "id": 1, "meta": {"labels": ["release"], "prio": 1}, "parent_id": null, "status": "todo", "title": "Release 2.0", "updated_at": "2026-01-01 00:00:00+00"}, "op": "insert", "schema": "public", "table": "workitems"}
{"key": {"id": 1}, "new": {"blocked": false, "estimate": "num:40.50", "id": 1, "meta": {"labels": ["release"], "prio": 1}, "parent_id": null, "status": "in_progress", "title": "Release 2.0", "updated_at": "2026-01-01 00:00:00+00"}, "op": "update", "schema": "public", "table": "workitems"}
{"key": {"id": 5}, "old": {"id": 5}, "op": "delete", "schema": "public", "table": "workitems"}' \
		"$P typed values: numeric, jsonb, timestamptz, bool, null; trigger update; delete key"
	is "$(grep '"table": "item_watchers"' "$D/facts" | sed -n 3p)" \
'{"key": {"level": "none", "user_name": "bo", "workitem_id": 1}, "new": {"level": "none", "user_name": "bo", "workitem_id": 1}, "old": {"level": "mentions", "user_name": "bo", "workitem_id": 1}, "op": "update", "schema": "public", "table": "item_watchers"}' \
		"$P REPLICA IDENTITY FULL: old row on update"
	is "$(grep '"table": "comments"' "$D/facts" | sed "s/$BODY/BODY/")" \
'{"key": {"id": 1}, "new": {"body": "BODY", "edited": 0, "id": 1, "workitem_id": 4}, "op": "insert", "schema": "public", "table": "comments"}
{"key": {"id": 2}, "new": {"body": "short\nwith \"quotes\" and é", "edited": 0, "id": 2, "workitem_id": 5}, "op": "insert", "schema": "public", "table": "comments"}
{"key": {"id": 1}, "new": {"edited": 1, "id": 1, "workitem_id": 4}, "op": "update", "schema": "public", "table": "comments", "unchanged": ["body"]}
{"key": {"id": 2}, "old": {"id": 2}, "op": "delete", "schema": "public", "table": "comments"}' \
		"$P TOASTed body left alone is listed in unchanged"
	like "$(grep '"op":"truncate"' "$D/cap.out")" '"table":"audit_log".*"cascade":false,"restart_identity":false}$' "$P truncate"
	if [ "$v" -ge 14 ]; then
		like "$(grep '"op":"message"' "$D/cap.out")" '"transactional":true,"prefix":"workitems","content":"refresh board 1"}$' \
			"$P logical message"
		is "$(grep -c 'logical decoding messages' "$D/cap.log")" 0 "$P no warning about messages at start"
	else
		pass "$P logical message # SKIP pgoutput sends none before PostgreSQL 14 (counted: no message event)"
		like "$(grep -m1 "level=warn.*logical decoding messages" "$D/cap.log")" "msg=\"pgoutput sends no logical decoding messages before PostgreSQL 14: no message events\" slot=cap server_version=$v\\.[0-9]+ hint=" \
			"$P says at start that no logical message can come"
	fi
	last=$(grep -v '^{' "$D/facts" | tail -1 | tr ' ' '\n' | tail -1)
	is "$(confirmed cap)" "$last" "$P slot confirmed to the last commit written"
}

# Changes to a partitioned table come under the partitions' names; from 13 on
# a publication can publish them under the table's own (publish_via_partition_root).
# Stored generated columns are never sent before 18, which can publish them.
publications() {
	local v=$1 P="PG $1:" pub=cap with="publish_via_partition_root = true" gen='{"a": 1, "id": 1}'
	sql "CREATE TABLE p (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
		CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (100);
		CREATE TABLE p2 PARTITION OF p FOR VALUES FROM (100) TO (200);
		CREATE TABLE g (id int PRIMARY KEY, a int, b int GENERATED ALWAYS AS (a * 2) STORED)"
	if [ "$v" -ge 18 ]; then
		with="$with, publish_generated_columns = stored" gen='{"a": 1, "b": 2, "id": 1}'
	fi
	if [ "$v" -ge 13 ]; then
		sql "CREATE PUBLICATION extra FOR TABLE p, g WITH ($with)"
		pub=extra
	fi
	"${CAPTURE[@]}" -d "$CONN" -S part --publication "$pub" --create-slot --endpos "$(now)" >/dev/null 2>"$D/part0.log"
	sql "INSERT INTO p VALUES (1, 'a'), (150, 'b'); UPDATE p SET v = 'c' WHERE id = 1; INSERT INTO g (id, a) VALUES (1, 1)"
	"${CAPTURE[@]}" -d "$CONN" -S part --publication "$pub" --endpos "$(now)" >"$D/part.out" 2>"$D/part.log"
	is "$?" 0 "$P partitioned table and generated column: run exits 0"
	python3 "$HERE/events.py" "$D/part.out" counts rows=public.g >"$D/part.facts" 2>&1
	if [ "$v" -ge 13 ]; then
		is "$(grep -v '^{' "$D/part.facts")" "insert public.g 1
insert public.p 2
schema public.g 1
schema public.p 1
update public.p 1" "$P publish_via_partition_root: changes under the partitioned table's name"
	else
		is "$(grep -v '^{' "$D/part.facts")" "insert public.g 1
insert public.p1 1
insert public.p2 1
schema public.g 1
schema public.p1 1
schema public.p2 1
update public.p1 1" "$P partitioned table: changes under the partitions' names"
		like "$(grep -m1 'partitioned tables' "$D/part.log")" \
			"msg=\"partitioned tables are published as their partitions\" slot=part server_version=$v\\.[0-9]+ partitioned_tables=1 hint=" \
			"$P says at start that partitioned tables come as their partitions"
		pass "$P publish_via_partition_root # SKIP PostgreSQL 13 or later"
	fi
	is "$(grep '^{' "$D/part.facts")" \
		"{\"key\": {\"id\": 1}, \"new\": $gen, \"op\": \"insert\", \"schema\": \"public\", \"table\": \"g\"}" "$P generated column $([ "$v" -ge 18 ] && echo "published with publish_generated_columns" || echo "not sent")"
	[ "$v" -ge 18 ] || pass "$P publish_generated_columns # SKIP PostgreSQL 18 or later"
}

# Snapshots read what the stream sends: a partitioned table under its own
# name (13+, publish_via_partition_root), generated columns only where they
# are published (18), a publication's row filter and column list (15+).
# Before 14 pgoutput carries no logical message, so no watermark: refused.
snap_done() { grep -q "msg=\"snapshot of table done\".*table=public\.$2 " "$1"; }
snapshots() {
	local v=$1 P="PG $1:" pid fpub=cap gen='{"id":1,"a":1}'
	[ "$v" -ge 18 ] && gen='{"id":1,"a":1,"b":2}'
	if [ "$v" -lt 14 ]; then
		"${CAPTURE[@]}" -d "$CONN" -S part --publication cap --snapshot-table p >/dev/null 2>"$D/snap.log"
		is "$?:$(grep -c 'snapshots need logical decoding messages' "$D/snap.log")" "8:1" \
			"$P --snapshot refused with pgoutput before 14 (status 8)"
		return
	fi
	sql "CREATE TABLE f (id int PRIMARY KEY, a text, secret text);
		INSERT INTO f SELECT i, 'a' || i, 's' FROM generate_series(1, 10) i"
	if [ "$v" -ge 15 ]; then
		sql "CREATE PUBLICATION filtered FOR TABLE f (id, a) WHERE (id > 5)"
		fpub=filtered
	fi
	"${CAPTURE[@]}" -d "$CONN" -S snapf --publication $fpub --create-slot --endpos "$(now)" >/dev/null 2>&1
	"${CAPTURE[@]}" -d "$CONN" -S part --publication extra --snapshot-table p --snapshot-table g >"$D/snap.out" 2>"$D/snap.log" &
	pid=$!
	"${CAPTURE[@]}" -d "$CONN" -S snapf --publication $fpub --snapshot-table f >"$D/snapf.out" 2>"$D/snapf.log" &
	wait_for 30 snap_done "$D/snap.log" g && wait_for 30 snap_done "$D/snapf.log" f ||
		fail "$P snapshots end" "$(tail -n 3 "$D/snap.log" "$D/snapf.log" | tr '\n' ' ')"
	kill -TERM $pid $! 2>/dev/null
	wait_exit $pid 15
	wait_exit $! 15
	is "$(grep '"op":"read"' "$D/snap.out" | sed 's/"id":"[^"]*","lsn":"[^"]*","xid":[0-9]*,"ts":"[^"]*",//')" \
'{"op":"read","schema":"public","table":"p","key":{"id":1},"new":{"id":1,"v":"c"}}
{"op":"read","schema":"public","table":"p","key":{"id":150},"new":{"id":150,"v":"b"}}
{"op":"read","schema":"public","table":"g","key":{"id":1},"new":'"$gen"'}' \
		"$P snapshot: the partitioned table under its own name, the generated column as the stream sends it"
	if [ "$v" -ge 15 ]; then
		is "$(grep -c '"op":"read"' "$D/snapf.out"):$(grep -c '"secret"' "$D/snapf.out"):$(grep -m1 '"op":"read"' "$D/snapf.out" | grep -o '"new":.*')" \
			'5:0:"new":{"id":6,"a":"a6"}}' "$P snapshot: the publication's row filter and column list apply"
	else
		is "$(grep -c '"op":"read"' "$D/snapf.out")" 10 "$P snapshot: every row of a published table"
		pass "$P snapshot with row filter and column list # SKIP PostgreSQL 15 or later"
	fi
}

# Acknowledgement through --ack-fifo; a restart of pg-capture resumes right
# after the acknowledged commit: nothing repeated, nothing lost.
acks() {
	local P="PG $1:" pid c1 c2 c3 c4
	sql "CREATE TABLE t (id int PRIMARY KEY, v text)"
	"${CAPTURE[@]}" -d "$CONN" -S ack --publication cap --create-slot --endpos "$(now)" 2>/dev/null
	wait_for 10 slot_inactive ack
	# three transactions: psql runs each -c in its own
	psql -X -q -v ON_ERROR_STOP=1 -d "$CONN" -c "INSERT INTO t VALUES (1, 'v1')" \
		-c "INSERT INTO t VALUES (2, 'v2')" -c "INSERT INTO t VALUES (3, 'v3')"
	"${CAPTURE[@]}" -d "$CONN" -S ack --publication cap --ack-fifo "$D/ack" --status-interval 0.2 \
		--stop-timeout 0.5 >"$D/a.out" 2>"$D/a.log" &
	pid=$!
	wait_for 20 has_commits "$D/a.out" 3 || fail "$P three transactions emitted"
	read -r c1 c2 c3 <<<"$(commit_lsns "$D/a.out")"
	ack "$c2"
	wait_for 10 slot_at ack "$c2"
	is "$(confirmed ack)" "$c2" "$P acknowledging commit 2 moves the slot to commit 2"
	kill -TERM $pid
	wait_exit $pid 15
	is "$RC" 0 "$P SIGTERM exits 0"
	is "$(confirmed ack)" "$c2" "$P commit 3 unacknowledged: the slot stays at commit 2"
	sql "INSERT INTO t VALUES (4, 'v4')"
	"${CAPTURE[@]}" -d "$CONN" -S ack --publication cap --ack-fifo "$D/ack" --status-interval 0.2 \
		--endpos "$(now)" >"$D/b.out" 2>"$D/b.log" &
	pid=$!
	wait_for 20 has_commits "$D/b.out" 2
	c4=$(commit_lsns "$D/b.out" | awk '{ print $NF }')
	ack "$c4"
	wait_exit $pid 15
	is "$RC" 0 "$P restart with --endpos and --ack-fifo exits 0 once acknowledged"
	is "$(python3 "$HERE/events.py" "$D/b.out" commits rows=public.t 2>&1)" "$c3 $c4
{\"key\": {\"id\": 3}, \"new\": {\"id\": 3, \"v\": \"v3\"}, \"op\": \"insert\", \"schema\": \"public\", \"table\": \"t\"}
{\"key\": {\"id\": 4}, \"new\": {\"id\": 4, \"v\": \"v4\"}, \"op\": \"insert\", \"schema\": \"public\", \"table\": \"t\"}" \
		"$P the restart emits transactions 3 and 4, whole, and nothing else"
	# (idle then, keepalives may carry it further: that skips nothing)
	is "$(sql "SELECT confirmed_flush_lsn >= '$c4' FROM pg_replication_slots WHERE slot_name = 'ack'")" t \
		"$P the slot is at the last acknowledged commit"
}

# The server stops (immediate) in the middle of a large transaction that
# pg-capture is writing: after reconnecting every change comes exactly once.
server_restart() {
	local P="PG $1:" rpid cpid
	"${CAPTURE[@]}" -d "$CONN" -S r --publication cap --create-slot --endpos "$(now)" 2>/dev/null
	psql -X -q -v ON_ERROR_STOP=1 -d "$CONN" -c "CREATE TABLE big (id int PRIMARY KEY, v text)" \
		-c "INSERT INTO big VALUES (0, 'before')" \
		-c "INSERT INTO big SELECT i, 'bulk' FROM generate_series(1, 15000) i" \
		-c "INSERT INTO big VALUES (50000, 'after')"
	mkfifo "$D/r.pipe"
	# a slow reader keeps the transaction in flight when the server goes
	python3 "$HERE/slowreader.py" 0 1000000 "$D/r.out" <"$D/r.pipe" &
	rpid=$!
	"${CAPTURE[@]}" -d "$CONN" -S r --publication cap --status-interval 0.5 --endpos "$(now)" >"$D/r.pipe" 2>"$D/r.log" &
	cpid=$!
	wait_for 30 lines_over "$D/r.out" 3000
	as_pg_user "$PGBIN/pg_ctl" -D "$PGTEST_DIR/data" -m immediate -w stop >/dev/null
	is "$(ncommits "$D/r.out")" 1 "$P the server stopped before the large transaction's commit was written"
	pg_up || fail "$P server starts again"
	wait_exit $cpid 90
	is "$RC" 0 "$P pg-capture reaches --endpos after the server restart"
	wait_exit $rpid 30
	like "$(grep -c 'will reconnect' "$D/r.log")" '^[1-9]' "$P server restart: pg-capture noticed and reconnected"
	is "$(python3 "$HERE/events.py" "$D/r.out" counts txs ids 2>&1)" "insert public.big 15002
schema public.big 1
3
15002" "$P server restart mid-transaction: every change exactly once, transactions whole"
}

# A slot that fell behind max_slot_wal_keep_size (PostgreSQL 13+): exit 7;
# from 17 on the server says why (invalidation_reason).
invalidated() {
	local v=$1 P="PG $1:" reason=""
	if [ "$v" -lt 13 ]; then
		pass "$P invalidated slot # SKIP max_slot_wal_keep_size and wal_status need PostgreSQL 13"
		pass "$P slot left unused # SKIP idle_replication_slot_timeout needs PostgreSQL 18"
		return
	fi
	sql "ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'" && sql "SELECT pg_reload_conf()" >/dev/null
	"${CAPTURE[@]}" -d "$CONN" -S lost --publication cap --create-slot --endpos "$(now)" 2>/dev/null
	# WAL in four segments, then a checkpoint removes what the slot needed
	psql -X -q -v ON_ERROR_STOP=1 -d "$CONN" \
		-c "INSERT INTO t VALUES (1001, 'w')" -c "SELECT pg_switch_wal()" \
		-c "INSERT INTO t VALUES (1002, 'w')" -c "SELECT pg_switch_wal()" \
		-c "INSERT INTO t VALUES (1003, 'w')" -c "SELECT pg_switch_wal()" \
		-c "INSERT INTO t VALUES (1004, 'w')" -c "SELECT pg_switch_wal()" -c CHECKPOINT >/dev/null
	is "$(sql "SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'lost'")" lost "$P slot invalidated"
	"${CAPTURE[@]}" -d "$CONN" -S lost --publication cap >/dev/null 2>"$D/lost.log"
	is "$?" 7 "$P invalidated slot: exit 7"
	[ "$v" -ge 17 ] && reason=': wal_removed'
	like "$(grep -m1 level=error "$D/lost.log")" \
		"msg=\"replication slot has been invalidated\" slot=lost error=\"?lost$reason\"? hint=\"the slot lost WAL it needed \\(max_slot_wal_keep_size\\): drop it" \
		"$P invalidated slot: says why and how to recover"
	if [ "$v" -lt 18 ]; then
		pass "$P slot left unused # SKIP idle_replication_slot_timeout needs PostgreSQL 18"
		return
	fi
	"${CAPTURE[@]}" -d "$CONN" -S idle --publication cap --create-slot --endpos "$(now)" 2>/dev/null
	sql "ALTER SYSTEM SET idle_replication_slot_timeout = '1s'" && sql "SELECT pg_reload_conf()" >/dev/null
	wait_for 20 idle_lost
	is "$(sql "SELECT invalidation_reason FROM pg_replication_slots WHERE slot_name = 'idle'")" idle_timeout \
		"$P slot left unused past idle_replication_slot_timeout invalidated"
	"${CAPTURE[@]}" -d "$CONN" -S idle --publication cap >/dev/null 2>"$D/idle.log"
	is "$?" 7 "$P slot left unused: exit 7"
	like "$(grep -m1 level=error "$D/idle.log")" \
		'msg="replication slot has been invalidated" slot=idle error="idle: idle_timeout" hint="the slot was unused for longer than idle_replication_slot_timeout: drop it' \
		"$P slot left unused: says so"
}

for v in $VERSIONS; do
	P="PG $v:"
	D=$T/$v
	mkdir -p "$D"
	start=$SECONDS
	if ! pg_use "$v"; then
		fail "$P server installed (make pgversions installs it)"
		continue
	fi
	if ! pg_start "$D/pg" "$(free_port)" "timezone = 'UTC'"; then
		fail "$P cluster starts"
		continue
	fi
	CONN=$(pg_conninfo)
	is "$(sql "SELECT current_setting('server_version_num')::int / 10000")" "$v" "$P server is PostgreSQL $v"
	BODY=${BODY:-$(sql "SELECT string_agg(md5(i::text), '') FROM generate_series(1, 500) i")}
	workload "$v"
	publications "$v"
	snapshots "$v"
	acks "$v"
	server_restart "$v"
	invalidated "$v"
	if [ "$v" != 15 ]; then
		"${CAPTURE[@]}" -d "$CONN" -S w --plugin wal2json --create-slot >/dev/null 2>"$D/w.log"
		is "$?" 8 "$P wal2json missing: exit 8"
		like "$(grep -m1 level=error "$D/w.log")" "apt-get install postgresql-$v-wal2json" "$P wal2json missing: names the package for this version"
	fi
	pg_stop
	rm -rf "$D"
	echo "# PostgreSQL $v: $((SECONDS - start)) s"
done
done_testing
