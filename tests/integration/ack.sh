#!/usr/bin/env bash
# The acknowledgement protocol: the slot moves to exactly what was
# acknowledged, a restart resumes after it, bad acknowledgements stop
# pg-capture with status 3 and leave the slot where it was.
set -u
source "$(dirname "$0")/../lib/testlib.sh"
source "$TOP/tests/lib/pgcluster.sh"
T=$(mktemp -d /tmp/pgcdc-test.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; pg_stop; rm -rf "$T"' EXIT
chmod 755 "$T"
pg_start "$T/pg" "$(free_port)" || exit 1
CONN=$(pg_conninfo)
HERE=$TOP/tests/integration

confirmed() { sql "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '$1'"; }
confirmed_is() { [ "$(confirmed "$1")" = "$2" ]; }
commits() { python3 "$HERE/events.py" "$1" commits; }
ncommits() { grep -c '"op":"commit"' "$1" 2>/dev/null; }
slot_reached() { [ "$(sql "SELECT confirmed_flush_lsn >= '$2' FROM pg_replication_slots WHERE slot_name = '$1'")" = t ]; }
has_commits() { [ "$(ncommits "$1")" -ge "$2" ]; }

sql "CREATE TABLE t (id int PRIMARY KEY, v text)"
"$PG_CAPTURE" -d "$CONN" -S s --create-slot --endpos "$(sql "SELECT pg_current_wal_lsn()")" 2>/dev/null
# the walsender may still be taking the last status update in
slot_inactive() { [ "$(sql "SELECT active FROM pg_replication_slots WHERE slot_name = '$1'")" = f ]; }
wait_for 10 slot_inactive s
start=$(confirmed s)
for i in 1 2 3; do sql "INSERT INTO t VALUES ($i, 'v$i')"; done

# 1. nothing acknowledged: the slot stays, even across status updates and keepalives
"$PG_CAPTURE" -d "$CONN" -S s --ack-fifo "$T/ack" --status-interval 0.2 >"$T/a.out" 2>"$T/a.log" &
pid=$!
wait_for 20 has_commits "$T/a.out" 3 || fail "three transactions emitted"
is "$(stat -c %a "$T/ack")" 600 "ack FIFO created with mode 0600"
read -r c1 c2 c3 <<<"$(commits "$T/a.out")"
sleep 1	# a negative claim needs time to be wrong: five status updates
# (it may move up to where the server had read before transaction 1: that skips nothing)
cl1=$(grep -m1 '"op":"commit"' "$T/a.out" | python3 -c 'import json, sys; print(json.load(sys.stdin)["commit_lsn"])')
is "$(sql "SELECT confirmed_flush_lsn >= '$start' AND confirmed_flush_lsn <= '$cl1' FROM pg_replication_slots WHERE slot_name = 's'")" t \
	"without acknowledgement the slot stays before the first emitted commit"

# 2. acknowledging commit 2 moves the slot to exactly commit 2
to_fifo 10 "$T/ack" "$c2"
wait_for 10 confirmed_is s "$c2"
is "$(confirmed s)" "$c2" "after acknowledging commit 2 the slot is at commit 2, not 3"
kill -TERM $pid
wait_exit $pid 10; is "$RC" 0 "SIGTERM exits 0"
is "$(confirmed s)" "$c2" "stopping with commit 3 unacknowledged leaves the slot at commit 2"

# 3. a restart re-emits exactly the transactions after commit 2
"$PG_CAPTURE" -d "$CONN" -S s --endpos "$(sql "SELECT pg_current_wal_lsn()")" >"$T/b.out" 2>"$T/b.log"
is "$?" 0 "restart to --endpos exits 0"
is "$(commits "$T/b.out")" "$c3" "restart re-emits exactly transaction 3"
like "$(grep '"op":"insert"' "$T/b.out")" '"new":\{"id":3,"v":"v3"\}' "and its row"

# 4. --endpos with an ack pipe waits for the acknowledgement, then exits 0
sql "INSERT INTO t VALUES (4, 'v4')"
end=$(sql "SELECT pg_current_wal_lsn()")
"$PG_CAPTURE" -d "$CONN" -S s --endpos "$end" --ack-fifo "$T/ack" --status-interval 0.2 >"$T/c.out" 2>"$T/c.log" &
pid=$!
wait_for 20 has_commits "$T/c.out" 1
c4=$(commits "$T/c.out")
sleep 0.5
if kill -0 $pid 2>/dev/null; then pass "--endpos with --ack-fifo waits for the acknowledgement"
else fail "--endpos with --ack-fifo exited before the acknowledgement"; fi
to_fifo 10 "$T/ack" "$c4"
wait_exit $pid 10; is "$RC" 0 "then exits 0"
is "$(confirmed s)" "$c4" "and the slot is at the acknowledged commit"

# 5. bad acknowledgements: status 3, one clear line, slot unmoved
bad_ack() {	# NAME LINE-TO-SEND PATTERN
	sql "INSERT INTO t VALUES ((SELECT max(id) + 1 FROM t), 'x')"
	local before
	before=$(confirmed s)
	"$PG_CAPTURE" -d "$CONN" -S s --ack-fifo "$T/ack" >"$T/d.out" 2>"$T/d.log" &
	local p=$!
	wait_for 20 has_commits "$T/d.out" 1
	to_fifo 10 "$T/ack" "$2"
	wait_exit $p 10; is "$RC" 3 "$1: exit status 3"
	like "$(grep level=error "$T/d.log" | head -1)" "$3" "$1: clear error"
	is "$(confirmed s)" "$before" "$1: slot unmoved"
}
bad_ack "garbage on the ack pipe" "hello world" 'msg="bad acknowledgement".*ack pipe line 1 is not an LSN: \\"hello world\\"'
bad_ack "acknowledgement beyond anything emitted" "FF/0" 'acknowledgement for a position never emitted.*lsn=FF/0'
cx=$(commits "$T/d.out" | cut -d" " -f1)
mid=$(python3 -c "import sys; h,l=sys.argv[1].split('/'); v=(int(h,16)<<32|int(l,16))-1; print('%X/%X'%(v>>32,v&0xffffffff))" "$cx")
bad_ack "acknowledgement of a position that is not a commit" "$mid" 'never emitted'

# 6. an ack for a commit already confirmed is harmless
sql "INSERT INTO t VALUES (100, 'y')"
"$PG_CAPTURE" -d "$CONN" -S s --ack-fifo "$T/ack" --status-interval 0.2 >"$T/e.out" 2>"$T/e.log" &
pid=$!
wait_for 20 has_commits "$T/e.out" 1
ce=$(commits "$T/e.out" | awk '{print $NF}')
to_fifo 10 "$T/ack" "$c2" "$ce"
wait_for 10 slot_reached s "$ce"
# idle again after it, so keepalives may carry the slot further
if slot_reached s "$ce" && kill -0 $pid; then pass "an old acknowledgement is ignored, the next one counts"
else fail "old acknowledgement: slot at $(confirmed s), want at least $ce"; fi
kill -TERM $pid
wait_exit $pid 10; is "$RC" 0 "exit 0"

# 7. an idle database: keepalive positions are confirmed once nothing is pending
sql "SELECT pg_switch_wal()" >/dev/null
sql "CREATE TABLE idle_ddl (x int)"	# WAL without rows to deliver
target=$(sql "SELECT pg_current_wal_lsn()")
"$PG_CAPTURE" -d "$CONN" -S s --ack-fifo "$T/ack" --status-interval 0.2 >"$T/f.out" 2>"$T/f.log" &
pid=$!
wait_for 20 slot_reached s "$target"
if slot_reached s "$target"; then
	pass "idle stream: the slot follows the server while nothing is unacknowledged"
else fail "idle stream: slot stuck at $(confirmed s), server at $target"; fi
is "$(wc -c <"$T/f.out")" 0 "and nothing was emitted"
kill -TERM $pid
wait_exit $pid 10

# 8. the acknowledging stage killed while transactions wait: a stop asked
# afterwards ends at once (not after --stop-timeout), status 0, the slot
# where the acknowledgements left it
sql "INSERT INTO t VALUES (200, 'z')"
"$PG_CAPTURE" -d "$CONN" -S s --ack-fifo "$T/ack" --status-interval 0.2 --stop-timeout 30 >"$T/g.out" 2>"$T/g.log" &
pid=$!
wait_for 20 has_commits "$T/g.out" 1
before=$(confirmed s)
sleep 1000 >"$T/ack" &	# a writer that never acknowledges, then dies
writer=$!
kill -9 $writer
wait $writer 2>/dev/null
t0=$SECONDS
kill -TERM $pid
wait_exit $pid 10
is "$RC" 0 "the acknowledging stage died before the stop: exit 0"
if [ $((SECONDS - t0)) -le 3 ]; then pass "and at once, not after --stop-timeout 30"
else fail "and at once, not after --stop-timeout 30" "took $((SECONDS - t0)) s"; fi
like "$(grep 'acknowledging stage is gone' "$T/g.log")" 'level=info .*unacknowledged=1' "one info line says what was left unacknowledged"
is "$(grep -c 'level=error' "$T/g.log")" 0 "no error line for a stop that was asked for"
is "$(confirmed s)" "$before" "the slot did not move past the unacknowledged transaction"

# 9. the next stage goes away during a stop that was asked for (the stages
# of a pipeline stop together, in any order): status 0, one info line, no
# error; what it did not take is sent again
sql "INSERT INTO t SELECT g, repeat('x', 100) FROM generate_series(1000, 60999) g"
mkfifo "$T/out9"
timeout 60 sleep 1000 <"$T/out9" &	# reads nothing: the pipe fills
reader=$!
"$PG_CAPTURE" -d "$CONN" -S s --ack-fifo "$T/ack" --stop-timeout 30 >"$T/out9" 2>"$T/h.log" &
pid=$!
before=$(confirmed s)
wait_for 20 grep -q 'msg=streaming' "$T/h.log"
sleep 0.5	# a negative claim: the pipe is full, nothing acknowledged
kill -TERM $pid
wait_for 10 grep -q 'msg=stopping' "$T/h.log"
kill $reader
wait_exit $pid 10
is "$RC" 0 "the next stage gone during a stop that was asked for: exit 0"
like "$(grep 'next stage is gone' "$T/h.log")" 'level=info ' "one info line says so"
is "$(grep -c 'level=error' "$T/h.log")" 0 "no error line"
is "$(confirmed s)" "$before" "nothing it did not acknowledge was confirmed"
done_testing
