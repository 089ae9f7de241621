#!/usr/bin/env bash
# cdc-filter as a running stage: lines come out as they arrive, not at end
# of input; a vanished reader, a stuck reader and SIGTERM end it with the
# documented status; the masking key is never logged; and in the pipeline
# pg-capture | cdc-filter | cdc-publish against a real PostgreSQL, the slot
# moves past transactions the filter emptied.
set -u
source "$(dirname "$0")/../lib/testlib.sh"
source "$TOP/tests/lib/pgcluster.sh"
FILTER=$TOP/cdc-filter/cdc-filter
PUB=$TOP/cdc-publish/cdc-publish
STUB=$TOP/tests/lib/httpstub.py
T=$(mktemp -d /tmp/pgcdc-test.XXXXXX)
trap 'exec 7>&- 8>&- 9>&-; kill $(jobs -p) 2>/dev/null; pg_stop; rm -rf "$T"' EXIT
chmod 755 "$T"
untime() { sed -E 's/^ts=[^ ]+ //' "$1"; }
nlines() { if [ -f "$1" ]; then wc -l <"$1" | tr -d ' '; else echo 0; fi; }
has_lines() { [ "$(nlines "$1")" -ge "$2" ]; }
TS=2026-11-24T14:31:06.000000Z
ev() {	# XID TABLE: one transaction with one insert
	printf '{"op":"begin","xid":%d,"lsn":"0/%X","commit_lsn":"0/%X","ts":"%s"}\n' "$1" $(($1 * 256)) $(($1 * 256 + 64)) $TS
	printf '{"op":"insert","schema":"public","table":"%s","id":"0/%X:0","lsn":"0/%X","xid":%d,"ts":"%s","key":{"id":%d},"new":{"id":%d,"email":"u%d@example.com"}}\n' \
		"$2" $(($1 * 256 + 64)) $(($1 * 256)) "$1" $TS "$1" "$1" "$1"
	printf '{"op":"commit","xid":%d,"lsn":"0/%X","commit_lsn":"0/%X","ts":"%s"}\n' "$1" $(($1 * 256 + 96)) $(($1 * 256 + 64)) $TS
}

# ------------------------------------------------- real time: no waiting for EOF

mkfifo "$T/in"
"$FILTER" -t keep <"$T/in" >"$T/rt.out" 2>"$T/rt.err" &
pid=$!
exec 9>"$T/in"
ev 1 keep >&9
if wait_for 5 has_lines "$T/rt.out" 3; then pass "a transaction comes out while the input stays open (3 lines)"
else fail "a transaction comes out while the input stays open" "$(nlines "$T/rt.out") lines"; fi
ev 2 drop >&9
ev 3 keep >&9
if wait_for 5 has_lines "$T/rt.out" 8; then pass "then the next ones: 8 lines, the dropped insert left out"
else fail "the next transactions come out" "$(nlines "$T/rt.out") lines"; fi
is "$(grep -c '"table":"drop"' "$T/rt.out")" 0 "the other table's insert is not there"

# SIGTERM while waiting for input: exit 0, nothing lost of what was read
kill -TERM $pid
wait_exit $pid 10
is "$RC" 0 "SIGTERM while waiting for input: exit 0"
is "$(nlines "$T/rt.out")" 8 "SIGTERM: everything read was written"
like "$(untime "$T/rt.err")" 'msg=done lines=9 kept=8 dropped=1' "SIGTERM: the closing log line counts 9 lines, 8 kept, 1 dropped"
exec 9>&-
rm -f "$T/in"

# ------------------------------------------------- the reader goes away

for i in $(seq 1 20000); do ev "$i" keep; done >"$T/many.in"
timeout -k 5 30 "$FILTER" <"$T/many.in" 2>"$T/gone.err" | head -c 1000 >/dev/null
rc=${PIPESTATUS[0]}
is "$rc" 1 "stdout closed by its reader: exit 1"
is "$(untime "$T/gone.err" | grep -c 'level=error prog=cdc-filter msg="downstream gone: stdout closed"')" 1 \
	"stdout closed: one error line \"downstream gone: stdout closed\""

# ------------------------------------------- a reader that never reads, then SIGTERM

mkfifo "$T/out"
exec 8<>"$T/out"	# held open, never read: the pipe fills up
"$FILTER" <"$T/many.in" >"$T/out" 2>"$T/stuck.err" &
pid=$!
stuck() { [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = S ] && [ -z "$(untime "$T/stuck.err")" ]; }
wait_for 10 stuck $pid
t0=$(date +%s%N)
kill -TERM $pid
wait_exit $pid 20
ms=$((($(date +%s%N) - t0) / 1000000))
is "$RC" 1 "SIGTERM with a reader that does not read: exit 1"
if [ "$ms" -ge 4000 ] && [ "$ms" -le 8000 ]; then pass "it gave the reader 5 s (${ms} ms)"; else fail "it gives the reader 5 s" "${ms} ms"; fi
like "$(untime "$T/stuck.err" | head -1)" '^level=error prog=cdc-filter msg="stopping: downstream is not reading, output left unwritten" bytes=[0-9]+$' \
	"the error says output was left unwritten, and how much"
exec 8>&-
rm -f "$T/out"

# ------------------------------------------------- the masking key stays secret

printf 'Sup3rSecretMaskKey-XYZ\n' >"$T/key"
ev 5 keep | PGCDC_KEY=Sup3rSecretEnvKey-ABC timeout -k 5 10 "$FILTER" -v --mask email --mask-key-env PGCDC_KEY >"$T/k1.out" 2>"$T/k1.err"
ev 5 keep | timeout -k 5 10 "$FILTER" -v --mask email --mask-key-file "$T/key" >"$T/k2.out" 2>"$T/k2.err"
is "$(cat "$T/k1.out" "$T/k1.err" "$T/k2.out" "$T/k2.err" | grep -c -e Sup3rSecret)" 0 "-v: the masking key is nowhere in stdout or stderr"
want=$(printf '%s' u5@example.com | openssl dgst -sha256 -hmac 'Sup3rSecretMaskKey-XYZ' | awk '{print $2}')
is "$(sed -n 2p "$T/k2.out" | jq -r .new.email)" "$want" "--mask-key-file: the value is HMAC-SHA256 under the file's key (openssl agrees)"
ev 5 keep | timeout -k 5 10 "$FILTER" --mask email --mask-key-file "$T/no-such-key" >"$T/k3.out" 2>"$T/k3.err"
is "$?/$(nlines "$T/k3.out")" "2/0" "--mask-key-file missing: usage error, nothing read"
like "$(head -1 "$T/k3.err")" '^cdc-filter: --mask-key-file: cannot read .*no-such-key: No such file or directory$' "--mask-key-file missing: the message names the file"

# ------------------------------------------------- a dead-letter file we cannot write

ev 6 keep | timeout -k 5 10 "$FILTER" --dead-letter "$T/no-such-dir/dead" >"$T/d.out" 2>"$T/d.err"
is "$?/$(nlines "$T/d.out")" "1/0" "--dead-letter in a missing directory: exit 1 before reading"
like "$(untime "$T/d.err" | head -1)" 'msg="could not open the dead-letter file" file=.*no-such-dir/dead error="No such file or directory"' \
	"the error names the file"

# ---------------------- the pipeline: the slot moves past emptied transactions

pg_start "$T/pg" "$(free_port)" || exit 1
CONN=$(pg_conninfo)
sql "CREATE TABLE workitems (id int PRIMARY KEY, status text, assignee text)"
sql "CREATE TABLE audit_log (at timestamptz DEFAULT now(), what text)"
"$PG_CAPTURE" -d "$CONN" -S f --create-slot --endpos "$(sql "SELECT pg_current_wal_lsn()")" 2>/dev/null
slot_inactive() { [ "$(sql "SELECT active FROM pg_replication_slots WHERE slot_name = 'f'")" = f ]; }
wait_for 10 slot_inactive
for i in 1 2 3; do sql "INSERT INTO audit_log (what) VALUES ('noise $i')"; done	# emptied by the filter
sql "INSERT INTO workitems VALUES (1, 'todo', 'ana@example.com')"
for i in 4 5; do sql "INSERT INTO audit_log (what) VALUES ('noise $i')"; done
sql "UPDATE workitems SET status = 'done' WHERE id = 1"
sql "INSERT INTO audit_log (what) VALUES ('last')"	# the last transaction is emptied too
end=$(sql "SELECT pg_current_wal_lsn()")

python3 "$STUB" --port 0 --port-file "$T/port" --log "$T/stub.log" --max-time 120 2>"$T/stub.err" &
wait_for 10 test -s "$T/port"
URL=http://127.0.0.1:$(cat "$T/port")/events
mkfifo -m 600 "$T/ack"
exec 7<>"$T/ack"	# the FIFO exists for both ends before either starts
# each stage bounded: wait_exit below can only stop the last one
timeout -k 5 60 "$PG_CAPTURE" -d "$CONN" -S f --ack-fifo "$T/ack" --endpos "$end" --status-interval 0.2 2>"$T/cap.err" |
	tee "$T/cap.out" | timeout -k 5 60 "$FILTER" -t workitems --drop-empty-tx --mask assignee --mask-key-file "$T/key" 2>"$T/filter.err" |
	"$PUB" --ack-fifo "$T/ack" "$URL" >"$T/pub.out" 2>"$T/pub.err" &
pipe=$!
wait_exit $pipe 60
exec 7>&-
is "$RC" 0 "pg-capture --endpos | cdc-filter | cdc-publish: the pipeline exits 0"
is "$(jq -r '.body | fromjson | "\(.op) \(.table) \(.new.status)"' "$T/stub.log" | tr '\n' ',')" \
	"schema workitems null,insert workitems todo,update workitems done," "the queue got the work-item schema and changes, nothing of audit_log"
is "$(jq -r '.body | fromjson | select(.new) | .new.assignee' "$T/stub.log" | sort -u)" \
	"$(printf '%s' ana@example.com | openssl dgst -sha256 -hmac 'Sup3rSecretMaskKey-XYZ' | awk '{print $2}')" \
	"the assignee arrived masked"
like "$(untime "$T/filter.err")" 'msg=done lines=[0-9]+ kept=[0-9]+ dropped=[0-9]+ rewritten=3 bad=0' "cdc-filter rewrote the two rows and the schema line"
is "$(grep -c '"op":"commit"' "$T/cap.out")" 8 "pg-capture sent 8 transactions"
is "$(tail -2 "$T/cap.out" | head -1 | jq -r .table)" audit_log "the last of them only touched audit_log"
lastc=$(tail -1 "$T/cap.out" | jq -r .lsn)
is "$(sql "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'f'")" "$lastc" \
	"the slot is confirmed at that last commit ($lastc), though the filter left nothing of it to publish"
done_testing
