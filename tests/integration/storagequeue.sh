#!/usr/bin/env bash
# cdc-publish --target storage-queue against a real Azure Storage queue
# service (Azurite, which checks SharedKey and SAS signatures): what it
# acknowledges is exactly what the service stored (read back and
# base64-decoded by an independent client, tests/lib/azq.py), a wrong key
# or a missing queue stops it, a SAS with add permission works, an event
# too large for a queue message is dead-lettered with the reason, --pack
# puts whole transactions in one message; throttling answers (which
# Azurite cannot be made to give) from the scripted server; and end to end
# with PostgreSQL: after a kill -9 and a restart every committed change is
# in the queue, repeats with the same id and payload. About 40 s.
set -u
source "$(dirname "$0")/../lib/testlib.sh"
source "$TOP/tests/lib/pgcluster.sh"
source "$TOP/tests/lib/azurite.sh"
PUBLISH=${CDC_PUBLISH:-$TOP/cdc-publish/cdc-publish}
HERE=$TOP/tests/integration
[ -x "$PUBLISH" ] || { echo "not ok - $PUBLISH not built (make)"; exit 1; }
# ------------------------------------------------------------ usage (no server)
export AZ_DEV="AccountName=$AZURITE_ACCOUNT;AccountKey=$AZURITE_KEY"
usage() { "$PUBLISH" --target storage-queue --dry-run "$@" </dev/null 2>&1 >/dev/null | head -1; }
is "$(usage http://127.0.0.1:9/devstoreaccount1/q-one)" \
	"cdc-publish: the storage-queue target needs --credentials-env or --credentials-file: a connection string with the AccountKey, or a SAS token" \
	"usage: credentials are required"
is "$(usage --credentials-env AZ_DEV http://127.0.0.1:9/devstoreaccount1/q-one/extra)" \
	"cdc-publish: URL must name the queue: https://ACCOUNT.queue.core.windows.net/QUEUE, or http://HOST:PORT/ACCOUNT/QUEUE (path-style)" \
	"usage: a URL with three path segments"
is "$(usage --credentials-env AZ_DEV http://127.0.0.1:9/devstoreaccount1/Q_1)" \
	'cdc-publish: invalid queue name "Q_1" (3 to 63 lowercase letters, digits and single dashes)' "usage: an invalid queue name"
is "$(usage --credentials-env AZ_DEV 'http://127.0.0.1:9/devstoreaccount1/q-one?sv=1&sig=s3cr3t')" \
	"cdc-publish: no SAS in the URL: give it with --credentials-env or --credentials-file" "usage: a SAS in the URL is refused, not echoed"
is "$(usage --credentials-env AZ_DEV http://127.0.0.1:9/otheraccount/q-one)" \
	'cdc-publish: the URL'"'"'s account "otheraccount" is not the connection string'"'"'s AccountName' "usage: the path's account must be the key's"
export AZ_NOTB64="AccountName=a;AccountKey=not-base64!"
is "$(usage --credentials-env AZ_NOTB64 https://a.queue.core.windows.net/q-one)" \
	"cdc-publish: could not read the storage credentials: the connection string's AccountKey is not base64" "usage: a key that is not base64"
is "$(usage --credentials-env AZ_DEV --batch 5 https://a.queue.core.windows.net/q-one)" \
	"cdc-publish: the storage-queue target sends one message per request (no --batch, --body)" "usage: no --batch"

if ! azurite_find; then
	pass "storage-queue against Azurite # SKIP $AZURITE_WHY"
	done_testing
	exit 0
fi
T=$(mktemp -d /tmp/pgcdc-test.XXXXXX)
cleanup() {
	local p
	for p in $(jobs -p); do [ "$p" != "${AZURITE_PID:-}" ] && kill -9 "$p" 2>/dev/null; done
	azurite_stop
	wait 2>/dev/null
	pg_stop
	rm -rf "$T"
}
trap cleanup EXIT
chmod 755 "$T"

if ! azurite_start "$T/azurite"; then
	fail "Azurite starts"
	done_testing
	exit 1
fi
pass "Azurite starts on 127.0.0.1:$AZURITE_PORT"
export AZ_CONN=$AZURITE_CONN	# cdc-publish --credentials-env AZ_CONN
QURL=$AZURITE_EP	# + /QUEUE

commits() { grep '^{"op":"commit"' "$1" | jq -r .lsn; }
published() { grep -v -e '^{"op":"begin"' -e '^{"op":"commit"' "$1"; }
errline() { grep -m1 'level=error' "$1"; }

# pub NAME INPUT URL [OPTION...]: cdc-publish --target storage-queue with its own
# ack FIFO read into $T/NAME.acks; RC its exit status, stderr in $T/NAME.err
pub() {
	local name=$1 input=$2 url=$3 catpid rc
	shift 3
	rm -f "$T/$name.fifo"
	mkfifo -m 600 "$T/$name.fifo"
	cat "$T/$name.fifo" >"$T/$name.acks" &
	catpid=$!
	timeout -k 5 60 "$PUBLISH" --target storage-queue --credentials-env "${CRED:-AZ_CONN}" \
		--ack-fifo "$T/$name.fifo" "$@" "$url" <"$input" >"$T/$name.out" 2>"$T/$name.err"
	rc=$?
	wait_exit "$catpid" 3
	RC=$rc
}

# gen FILE: four transactions, 20 row events whose values XML would choke on
python3 - "$T/a.jsonl" <<'EOF'
import json, sys
out, lsn, row = [], 0x3000000, 0
def f(v): return "%X/%X" % (v >> 32, v & 0xffffffff)
for xid, ops in enumerate([["insert"] * 6, ["update", "insert", "update", "delete", "insert"],
                           ["update"] * 4 + ["delete"], ["insert", "update", "delete", "insert"]], 800):
    commit = lsn + 0x100 * (len(ops) + 1)
    ts = "2026-11-24T14:31:06.%06dZ" % xid
    out.append(json.dumps({"op": "begin", "xid": xid, "lsn": f(lsn), "commit_lsn": f(commit), "ts": ts}, separators=(",", ":")))
    for i, op in enumerate(ops):
        ev = {"op": op, "schema": "public", "table": "workitems", "id": f"{f(commit)}:{i}",
              "lsn": f(lsn + 0x100 * (i + 1)), "xid": xid, "ts": ts, "key": {"id": row % 7}}
        if op != "delete":
            ev["new"] = {"id": row % 7, "title": '<b>x</b> & "q" ]]> caf\u00e9 \u2713\ttab', "meta": {"n": row}}
        else:
            ev["old"] = {"id": row % 7}
        out.append(json.dumps(ev, separators=(",", ":"), ensure_ascii=False))
        row += 1
    out.append(json.dumps({"op": "commit", "xid": xid, "lsn": f(commit + 0x30), "commit_lsn": f(commit), "ts": ts}, separators=(",", ":")))
    lsn = commit + 0x200
open(sys.argv[1], "w", encoding="utf-8").write("\n".join(out) + "\n")
EOF
published "$T/a.jsonl" >"$T/a.events"
head -8 "$T/a.jsonl" >"$T/b.jsonl"	# the first transaction

# ------------------------------------------------------------ (a) SharedKey, 20 events
azq create events-a
pub a "$T/a.jsonl" "$QURL/events-a"
is "$RC" 0 "(a) 20 events, SharedKey from a connection string: exit 0"
azq drain events-a >"$T/a.q"
is "$(cat "$T/a.q")" "$(cat "$T/a.events")" "(a) the queue holds the 20 events, each message's base64 decoding to its line exactly, in order"
is "$(cat "$T/a.acks")" "$(commits "$T/a.jsonl")" "(a) the four commit LSNs acknowledged, in order"
like "$(tail -1 "$T/a.err")" 'msg=exiting delivered=20 ' "(a) logs 20 delivered"
is "$(azq peek events-a | wc -l)" 0 "(a) drained: nothing else in the queue"

# query parameters of the URL are sent and signed (CanonicalizedResource)
azq create events-ttl
pub ttl "$T/b.jsonl" "$QURL/events-ttl?messagettl=-1&visibilitytimeout=0"
is "$RC" 0 "(a) URL with ?messagettl=-1&visibilitytimeout=0: the signature covers them, exit 0"
is "$(azq drain events-ttl)" "$(published "$T/b.jsonl")" "(a) and the events are in the queue"

# ------------------------------------------------------------ (b) wrong key
export AZ_BAD="${AZ_CONN/AccountKey=Eby8/AccountKey=Xby8}"
azq create events-b
CRED=AZ_BAD pub b "$T/b.jsonl" "$QURL/events-b"
is "$RC" 9 "(b) wrong account key: exit 9"
like "$(errline "$T/b.err")" 'status=403 error="authentication failed \(AuthenticationFailed\)' "(b) the error line says authentication failed"
is "$(wc -c <"$T/b.acks")" 0 "(b) nothing acknowledged"
is "$(azq count events-b)" 0 "(b) nothing in the queue"
bad_key=${AZ_BAD#*AccountKey=}
bad_key=${bad_key%%;*}
is "$(grep -c -F -e "$bad_key" -e Xby8 "$T/b.err")" 0 "(b) the key is not in stderr"
CRED=AZ_BAD pub b2 "$T/b.jsonl" "$QURL/events-b" --dead-letter "$T/b.dead"
is "$RC" 9 "(b) with --dead-letter: still exit 9 (no event can mend a key)"
like "$(errline "$T/b2.err")" 'status=403 error="authentication failed \(AuthenticationFailed\)' "(b) with --dead-letter: the error line says authentication failed"
is "$(cat "$T/b.dead" 2>/dev/null | wc -l)" 0 "(b) with --dead-letter: nothing dead-lettered"
is "$(grep -c -F -e "$bad_key" "$T/b.dead" "$T/b2.err" | grep -vc ':0$')" 0 "(b) the key is neither in the dead-letter file nor in stderr"

# ------------------------------------------------------------ (c) SAS
azq create events-c
export AZ_SAS; AZ_SAS=$(azq sas events-c a)
sig=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.parse_qs(sys.argv[1])["sig"][0])' "$AZ_SAS")
CRED=AZ_SAS pub c "$T/a.jsonl" "$QURL/events-c" -v
is "$RC" 0 "(c) a service SAS with sp=a: exit 0"
is "$(azq drain events-c)" "$(cat "$T/a.events")" "(c) the 20 events are in the queue"
is "$(cat "$T/c.acks")" "$(commits "$T/a.jsonl")" "(c) and acknowledged"
sig_enc=${AZ_SAS##*sig=}
is "$(grep -c -F -e "$sig" -e "$sig_enc" -e "$AZ_SAS" "$T/c.err")" 0 "(c) the SAS signature is not in stderr (even with -v)"
export AZ_SASQ="?$AZ_SAS"
CRED=AZ_SASQ pub c2 "$T/b.jsonl" "$QURL/events-c"
is "$RC" 0 "(c) the same SAS given as ?sv=...: exit 0"
is "$(azq drain events-c)" "$(published "$T/b.jsonl")" "(c) delivered"
export AZ_SAS_CONN="QueueEndpoint=$AZURITE_EP;SharedAccessSignature=$AZ_SAS"
CRED=AZ_SAS_CONN pub c3 "$T/b.jsonl" "$QURL/events-c"
is "$RC" 0 "(c) the SAS in a connection string (SharedAccessSignature=): exit 0"
is "$(azq drain events-c)" "$(published "$T/b.jsonl")" "(c) delivered"
export AZ_SAS_R; AZ_SAS_R=$(azq sas events-c r)
CRED=AZ_SAS_R pub c4 "$T/b.jsonl" "$QURL/events-c"
is "$RC" 9 "(c) a SAS without add permission (sp=r): exit 9"
like "$(errline "$T/c4.err")" 'status=403 error="not authorized \(AuthorizationPermissionMismatch\)' "(c) saying not authorized"
is "$(azq peek events-c | wc -l)" 0 "(c) nothing in the queue"

# ------------------------------------------------------------ (d) no such queue
pub d "$T/b.jsonl" "$QURL/no-such-queue"
is "$RC" 9 "(d) queue missing: exit 9"
like "$(errline "$T/d.err")" 'status=404 error="queue not found \(QueueNotFound\)' "(d) the error line says queue not found"
is "$(wc -c <"$T/d.acks")" 0 "(d) nothing acknowledged"

# ------------------------------------------------------------ (e) too large
# 49152 bytes base64-encode to 65536, the most a message may hold; one more byte is too many
python3 - "$T/e.jsonl" <<'EOF'
import sys
def ev(i, size):
    head = '{"op":"insert","schema":"public","table":"big","id":"0/5000100:%d","lsn":"0/5000000","xid":900,"key":{"id":%d},"new":{"id":%d,"v":"' % (i, i, i)
    tail = '"}}'
    pad = size - len(head) - len(tail) if size else 3
    return head + "x" * pad + tail
lines = ['{"op":"begin","xid":900,"lsn":"0/5000000","commit_lsn":"0/5000100","ts":"2026-11-24T14:31:06.000000Z"}',
         ev(0, 0), ev(1, 49152), ev(2, 49153), ev(3, 0),
         '{"op":"commit","xid":900,"lsn":"0/5000130","commit_lsn":"0/5000100","ts":"2026-11-24T14:31:06.000000Z"}']
open(sys.argv[1], "w").write("\n".join(lines) + "\n")
EOF
is "$(awk '{ print length($0) }' "$T/e.jsonl" | sed -n 3,4p | tr '\n' ' ')" "49152 49153 " "(e) the events: 49152 and 49153 bytes"
azq create events-e
pub e "$T/e.jsonl" "$QURL/events-e" --dead-letter "$T/e.dead"
is "$RC" 0 "(e) an event too large for a queue message, with --dead-letter: exit 0"
is "$(azq drain events-e)" "$(published "$T/e.jsonl" | sed 3d)" "(e) the others are in the queue (the one of 49152 bytes too: 65536 in base64)"
is "$(jq -c '[.id, .dead_letter.error]' "$T/e.dead")" '["0/5000100:2","too large for the target: 65596 bytes, the limit is 65592"]' \
	"(e) the 49153-byte event is dead-lettered with the reason (65540 bytes of base64 and the envelope)"
is "$(cat "$T/e.acks")" "0/5000130" "(e) the commit is acknowledged"
# past --max-message the service itself refuses it: 413 RequestBodyTooLarge
pub e2 "$T/e.jsonl" "$QURL/events-e" --dead-letter "$T/e2.dead" --max-message 100000
is "$RC" 0 "(e) with --max-message 100000, exit 0"
is "$(jq -c '[.id, .dead_letter.status, .dead_letter.error]' "$T/e2.dead")" \
	'["0/5000100:2",413,"message too large (RequestBodyTooLarge): at most 65536 bytes of base64"]' "(e) the service's 413 is read as message too large"
is "$(azq drain events-e | wc -l)" 3 "(e) the other three delivered"
pub e3 "$T/e.jsonl" "$QURL/events-e"
is "$RC" 9 "(e) without --dead-letter: exit 9"
like "$(errline "$T/e3.err")" 'id=0/5000100:2 .*too large for the target' "(e) naming the event"
is "$(wc -c <"$T/e3.acks")" 0 "(e) and not acknowledged"
azq drain events-e >/dev/null

# ------------------------------------------------------------ (f) --pack: past 2000 messages/s per queue
azq create events-f
pub f "$T/a.jsonl" "$QURL/events-f" --pack tx
is "$RC" 0 "(f) --pack tx: exit 0"
azq drain events-f >"$T/f.q"
is "$(wc -l <"$T/f.q")" 4 "(f) four messages for four transactions"
is "$(jq -c 'length' "$T/f.q" | tr '\n' ' ')" "6 5 5 4 " "(f) each a JSON array of its transaction's events"
is "$(jq -c '.[]' "$T/f.q")" "$(jq -c . "$T/a.events")" "(f) together exactly the 20 events, in order"
is "$(cat "$T/f.acks")" "$(commits "$T/a.jsonl")" "(f) the commits acknowledged"
python3 - "$T/g.jsonl" <<'EOF'
import sys
out = []
for t in range(1, 201):
    c = "0/%X" % (0x1000000 + t * 0x1000)
    out.append('{"op":"begin","xid":%d,"lsn":"0/%X","commit_lsn":"%s","ts":"2026-11-24T14:31:06.000000Z"}' % (t, 0x1000000 + t * 0x1000 - 0x800, c))
    out.append('{"op":"insert","schema":"public","table":"t","id":"%s:0","lsn":"0/%X","xid":%d,"key":{"id":%d},"new":{"id":%d}}' % (c, 0x1000000 + t * 0x1000 - 0x800, t, t % 9, t % 9))
    out.append('{"op":"commit","xid":%d,"lsn":"0/%X","commit_lsn":"%s","ts":"2026-11-24T14:31:06.000000Z"}' % (t, 0x1000000 + t * 0x1000 + 0x30, c))
open(sys.argv[1], "w").write("\n".join(out) + "\n")
EOF
pub f2 "$T/g.jsonl" "$QURL/events-f" --pack 50
is "$RC" 0 "(f) --pack 50, 200 one-row transactions: exit 0"
azq drain events-f >"$T/f2.q"
is "$(jq -c 'length' "$T/f2.q" | tr '\n' ' ')" "50 50 50 50 " "(f) four messages of 50 events: 50 times fewer requests and queue messages"
is "$(jq -c '.[]' "$T/f2.q")" "$(published "$T/g.jsonl" | jq -c .)" "(f) together the 200 events, in order"
is "$(wc -l <"$T/f2.acks")" 200 "(f) every commit acknowledged"

# ------------------------------------------------------------ (g) throttling (scripted server)
STUB=$TOP/tests/lib/httpstub.py
cat >"$T/g.script" <<'EOF'
503:body=<?xml version="1.0" encoding="utf-8"?><Error><Code>ServerBusy</Code><Message>The server is busy.</Message></Error>
500:body=<?xml version="1.0" encoding="utf-8"?><Error><Code>OperationTimedOut</Code><Message>Operation could not be completed within the specified time.</Message></Error>
EOF
python3 "$STUB" --port 0 --port-file "$T/g.port" --log "$T/g.log" --max-time 60 --script-file "$T/g.script" \
	--default 201 2>"$T/g.stub.err" &
stub_pid=$!
wait_for 10 test -s "$T/g.port"
head -3 "$T/b.jsonl" >"$T/g1.jsonl"
sed -n 8p "$T/b.jsonl" >>"$T/g1.jsonl"
pub g "$T/g1.jsonl" "http://127.0.0.1:$(cat "$T/g.port")/$AZURITE_ACCOUNT/events-g"
kill "$stub_pid" 2>/dev/null
wait_exit "$stub_pid" 5
is "$RC" 0 "(g) 503 ServerBusy, 500 OperationTimedOut, then 201: exit 0"
is "$(jq -r .path "$T/g.log" | sort -u)" "/devstoreaccount1/events-g/messages" "(g) POST to .../QUEUE/messages"
is "$(wc -l <"$T/g.log")" 4 "(g) three attempts at the first event, one for the second"
like "$(grep -m1 'will retry' "$T/g.err")" 'status=503 error="HTTP 503 \(ServerBusy\)"' "(g) the retry is logged with the service's code"
gaps=$(jq -s '[(.[1].t - .[0].t), (.[2].t - .[1].t)] | map(. >= 0.95) | all' "$T/g.log")
is "$gaps" true "(g) throttled: at least a second before each retry"
is "$(jq -r '[.headers[] | select(.[0] == "Authorization") | .[1]] | .[0]' "$T/g.log" | head -3 | sort -u | wc -l)" 3 \
	"(g) every attempt signed afresh (three different signatures)"
is "$(jq -r '[.headers[] | select(.[0] == "x-ms-date") | .[1]] | .[0]' "$T/g.log" | head -3 | sort -u | wc -l)" 3 \
	"(g) each with its own x-ms-date"
is "$(jq -r '[.headers[] | select(.[0] | ascii_downcase == "x-ms-version" or . == "Content-Type") | .[1]] | join(" ")' "$T/g.log" | sort -u)" \
	"application/xml 2021-12-02" "(g) Content-Type application/xml, x-ms-version 2021-12-02"

# ------------------------------------------------------------ (h) end to end with PostgreSQL
pg_start "$T/pg" "$(free_port)" || exit 1
CONN=$(pg_conninfo)
slot_inactive() { [ "$(sql "SELECT active FROM pg_replication_slots WHERE slot_name = '$1'")" = f ]; }
confirmed() { sql "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '$1'"; }
new_slot() {
	"$PG_CAPTURE" -d "$CONN" -S "$1" --create-slot --endpos "$(sql "SELECT pg_current_wal_lsn()")" >/dev/null 2>&1
	wait_for 10 slot_inactive "$1"
}
rm -f "$T/ack"
mkfifo -m 600 "$T/ack"
# pipeline NAME ENDPOS [cdc-publish OPTION...]: pg-capture | cdc-publish in the background; CAP and PUB
pipeline() {
	local name=$1 endpos=$2
	shift 2
	rm -f "$T/$name.pipe"
	mkfifo -m 600 "$T/$name.pipe"
	"$PG_CAPTURE" -d "$CONN" -S h --ack-fifo "$T/ack" --endpos "$endpos" --status-interval 0.5 \
		>"$T/$name.pipe" 2>"$T/$name.cap.err" &
	CAP=$!
	"$PUBLISH" --ack-fifo "$T/ack" --target storage-queue --credentials-env AZ_CONN "$@" "$QURL/events-h" \
		<"$T/$name.pipe" 2>"$T/$name.pub.err" &
	PUB=$!
}
sql "CREATE TABLE kv (k int PRIMARY KEY, v text, n int NOT NULL DEFAULT 0)"
new_slot h && new_slot href
# 30 transactions of 100 rows: some are acknowledged before the kill
for ((b = 0; b < 30; b++)); do
	sql "INSERT INTO kv SELECT i, '<v' || i || '> & co' FROM generate_series($((b * 100 + 1)), $((b * 100 + 100))) i"
done
sql "UPDATE kv SET n = n + 1 WHERE k % 3 = 0"
sql "DELETE FROM kv WHERE k % 10 = 0"
endh=$(sql "SELECT pg_current_wal_lsn()")
"$PG_CAPTURE" -d "$CONN" -S href --endpos "$endh" >"$T/h.ref" 2>"$T/h.ref.err"
azq create events-h
some_arrived() { [ "$(azq count events-h)" -ge 500 ]; }
# (--window 500: pg-capture is still writing when cdc-publish dies)
pipeline h1 "$endh" --parallel 4 --window 500
if wait_for 40 some_arrived; then pass "(h) kill test: 500 changes arrived"; else fail "(h) kill test: 500 changes did not arrive"; fi
kill -9 "$PUB"
{ wait_exit "$PUB" 5; wait_exit "$CAP" 10; } 2>/dev/null	# no "Killed" line from the shell
is "$RC" 1 "(h) after kill -9 of cdc-publish, pg-capture stops (downstream gone)"
wait_for 10 slot_inactive h
c_kill=$(confirmed h)
azq drain events-h >"$T/h.run1"
pipeline h2 "$endh" --parallel 4
wait_exit "$PUB" 60
pub_rc=$RC
wait_exit "$CAP" 10
is "$pub_rc $RC" "0 0" "(h) the restarted pipeline runs to --endpos: both exit 0"
azq drain events-h >"$T/h.run2"
is "$(python3 "$HERE/events.py" "$T/h.ref" counts)" "delete public.kv 300
insert public.kv 3000
schema public.kv 1
update public.kv 1000" "(h) the reference stream: 4300 changes"
python3 - "$T/h.run1" "$T/h.run2" "$T/h.ref" "$c_kill" >"$T/h.facts" 2>"$T/h.info" <<'EOF'
import json, sys
def lsn(s):
    hi, lo = s.split("/")
    return int(hi, 16) << 32 | int(lo, 16)
run1, run2 = [[l.rstrip("\n") for l in open(p, encoding="utf-8")] for p in sys.argv[1:3]]
ref, end, pending = {}, {}, []
for l in open(sys.argv[3], encoding="utf-8"):
    ev = json.loads(l)
    if ev["op"] == "begin":
        pending = []
    elif ev["op"] == "commit":
        for i in pending:
            end[i] = lsn(ev["lsn"])
    elif "id" in ev:
        ref[ev["id"]] = l.rstrip("\n")
        pending.append(ev["id"])
confirmed = lsn(sys.argv[4])
def ids(msgs):
    return [json.loads(m).get("id") for m in msgs if json.loads(m)["op"] != "schema"]
r1, r2 = ids(run1), ids(run2)
acked = {i for i in ref if end[i] <= confirmed}
seen = set(r1) | set(r2)
print(f"run 1 delivered some but not all: {'yes' if 0 < len(set(r1)) < len(ref) else 'no'}")
print(f"slot moved past an acknowledged commit: {'yes' if acked else 'no'}")
print(f"acknowledged but not in the queue {len(acked - set(r1))}")
print(f"run 2 repeats an acknowledged change {len(set(r2) & acked)}")
print(f"missing {len(set(ref) - seen)}")
print(f"unknown {len(seen - set(ref))}")
print(f"repeats with another payload {sum(1 for m in run1 + run2 if json.loads(m)['op'] != 'schema' and ref.get(json.loads(m).get('id')) != m)}")
print(f"run 1 {len(r1)}, run 2 {len(r2)}, acknowledged before the kill {len(acked)}, repeats {len(r1) + len(r2) - len(seen)}", file=sys.stderr)
EOF
is "$(cat "$T/h.facts")" "run 1 delivered some but not all: yes
slot moved past an acknowledged commit: yes
acknowledged but not in the queue 0
run 2 repeats an acknowledged change 0
missing 0
unknown 0
repeats with another payload 0" "(h) kill -9 and restart: every committed change in the queue; a repeat is the same event (same id, same payload)"
echo "# $(cat "$T/h.info")"
done_testing
