#!/usr/bin/env bash
# cdc-publish --target sqs: the requests against tests/lib/httpstub.py (each
# one's SigV4 signature checked by tests/integration/sqs.py's own
# implementation; partial batch failures: only the failed entry sent again,
# a SenderFault entry dead-lettered; throttling, authentication errors);
# then against a real SQS emulator, fauxqs 1.9.2 (JSON protocol, real FIFO
# group and deduplication semantics; it does not check signatures): events
# read back exactly, a FIFO queue taking the same input twice once, a
# missing queue refused; and end to end with PostgreSQL, a kill -9 of
# cdc-publish mid-stream and a restart: every change in the FIFO queue
# exactly once. fauxqs is bound to 127.0.0.1 by a preload (it listens on
# 0.0.0.0 by itself). About 40 s.
set -u
source "$(dirname "$0")/../lib/testlib.sh"
source "$TOP/tests/lib/pgcluster.sh"
source "$TOP/tests/lib/fauxqs.sh"
PUBLISH=${CDC_PUBLISH:-$TOP/cdc-publish/cdc-publish}
STUB=$TOP/tests/lib/httpstub.py
HERE=$TOP/tests/integration
[ -x "$PUBLISH" ] || { echo "not ok - $PUBLISH not built (make)"; exit 1; }
T=$(mktemp -d /tmp/pgcdc-sqs.XXXXXX)
FQ_PID=
cleanup() {
	local p
	for p in $(jobs -p); do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	pg_stop
	rm -rf "$T"
}
trap cleanup EXIT
chmod 755 "$T"
sqspy() { python3 "$HERE/sqs.py" "$@"; }
commits() { grep '^{"op":"commit"' "$1" | sed 's/.*"lsn":"\([^"]*\)".*/\1/'; }
errline() { grep -m1 'level=error' "$1"; }

# keys the stub and fauxqs accept (neither checks them against an account)
export AWS_ACCESS_KEY_ID=AKIDSQSTESTEXAMPLE AWS_SECRET_ACCESS_KEY='sqs-test/S3cret+key' AWS_SESSION_TOKEN=sqs-test-session-token
unset AWS_PROFILE AWS_REGION AWS_DEFAULT_REGION

# 3 transactions, 10 row events over 6 rows; the values need escaping
python3 - "$T/in.jsonl" <<'EOF'
import json, sys
out, lsn, row = [], 0x5000000, 0
def f(v): return "%X/%X" % (v >> 32, v & 0xffffffff)
for xid, ops in enumerate([[("insert", 1), ("insert", 2), ("insert", 3)],
                           [("update", 1), ("update", 2), ("insert", 4), ("update", 1)],
                           [("delete", 3), ("update", 4), ("insert", 5)]], 900):
    commit = lsn + 0x100 * (len(ops) + 1)
    ts = "2026-12-01T10:00:00.%06dZ" % xid
    out.append(json.dumps({"op": "begin", "xid": xid, "lsn": f(lsn), "commit_lsn": f(commit), "ts": ts}, separators=(",", ":")))
    for i, (op, k) in enumerate(ops):
        ev = {"op": op, "schema": "public", "table": "items", "id": f"{f(commit)}:{i}",
              "lsn": f(lsn + 0x100 * (i + 1)), "xid": xid, "ts": ts, "key": {"id": k}}
        if op != "delete":
            ev["new"] = {"id": k, "title": 'say "hi" \\ caf\u00e9 \u2713\ttab', "n": row}
        else:
            ev["old"] = {"id": k}
        out.append(json.dumps(ev, separators=(",", ":"), ensure_ascii=False))
        row += 1
    out.append(json.dumps({"op": "commit", "xid": xid, "lsn": f(commit + 0x30), "commit_lsn": f(commit), "ts": ts}, separators=(",", ":")))
    lsn = commit + 0x200
open(sys.argv[1], "w", encoding="utf-8").write("\n".join(out) + "\n")
EOF
grep -v -e '"op":"begin"' -e '"op":"commit"' "$T/in.jsonl" >"$T/in.events"

# pub NAME INPUT [OPTION...] URL: cdc-publish --target sqs with its own ack
# FIFO read into $T/NAME.acks; RC its exit status, stderr in $T/NAME.err
pub() {
	local name=$1 input=$2 catpid rc
	shift 2
	rm -f "$T/$name.fifo"
	mkfifo -m 600 "$T/$name.fifo"
	cat "$T/$name.fifo" >"$T/$name.acks" &
	catpid=$!
	timeout -k 5 60 "$PUBLISH" --target sqs --ack-fifo "$T/$name.fifo" "$@" <"$input" >"$T/$name.out" 2>"$T/$name.err"
	rc=$?
	wait_exit "$catpid" 3
	RC=$rc
}

# ------------------------------------------------------------ the scripted server
# stub NAME [httpstub OPTION...]: LOG, SURL (a queue URL on it) and STUB_PID
ALL_OK='{"Successful":[{"Id":"0"},{"Id":"1"},{"Id":"2"},{"Id":"3"},{"Id":"4"},{"Id":"5"},{"Id":"6"},{"Id":"7"},{"Id":"8"},{"Id":"9"}],"Failed":[]}'
stub() {
	local name=$1
	shift
	LOG=$T/$name.log
	python3 "$STUB" --port 0 --port-file "$T/$name.port" --log "$LOG" --max-time 60 \
		--default "200:body=$ALL_OK" "$@" 2>"$T/$name.stub.err" &
	STUB_PID=$!
	wait_for 10 test -s "$T/$name.port" || fail "httpstub $name starts" "$(cat "$T/$name.stub.err")"
	SPORT=$(cat "$T/$name.port")
	SURL=http://127.0.0.1:$SPORT/123456789012/items.fifo
}
stub_stop() { kill "$STUB_PID" 2>/dev/null; wait "$STUB_PID" 2>/dev/null; }
bodies() { jq -c '.body | fromjson' "$LOG"; }
entries() { jq -r '.body | fromjson | [.Entries[] | .Id + "=" + (.MessageBody | fromjson | .id)] | join(" ")' "$LOG"; }
nreq() { if [ -f "$1" ]; then wc -l <"$1" | tr -d ' '; else echo 0; fi; }
header() { jq -r --arg h "$1" '[.headers[] | select(.[0] | ascii_downcase == $h) | .[1]] | join(",")' "$LOG"; }

stub sign
pub sign "$T/in.jsonl" "$SURL"
is "$RC" 0 "stub: 10 events to a FIFO queue URL: exit 0"
is "$(entries)" "0=0/5000400:0 1=0/5000400:1 2=0/5000400:2 3=0/5000B00:2 4=0/5001100:2
0=0/5000B00:0 1=0/5000B00:1 2=0/5001100:0 3=0/5001100:1
0=0/5000B00:3" \
	"stub: batches of up to 10, an entry's Id its index, one event of a row per request, in input order"
is "$(jq -r '.method + " " + .path' "$LOG" | sort -u)" "POST /" "stub: POST to the endpoint's root"
is "$(header content-type | sort -u) $(header x-amz-target | sort -u)" "application/x-amz-json-1.0 AmazonSQS.SendMessageBatch" \
	"stub: Content-Type application/x-amz-json-1.0, X-Amz-Target AmazonSQS.SendMessageBatch"
is "$(header host | sort -u)" "127.0.0.1:$SPORT" "stub: Host is the endpoint's"
is "$(header authorization | sed 's/Signature=[0-9a-f]\{64\}$/Signature=HEX/' | sort -u)" \
	"AWS4-HMAC-SHA256 Credential=AKIDSQSTESTEXAMPLE/$(date -u +%Y%m%d)/us-east-1/sqs/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, Signature=HEX" \
	"stub: signed with SigV4 for sqs in us-east-1 (a loopback endpoint), over the five headers"
is "$(header x-amz-security-token | sort -u)" "$AWS_SESSION_TOKEN" "stub: the session token sent as X-Amz-Security-Token"
is "$(sqspy sigv4 "$LOG" "$AWS_SECRET_ACCESS_KEY")" "3 requests, 0 badly signed" \
	"stub: every request's signature is right (checked by Python's hmac over what arrived)"
is "$(bodies | jq -r '.QueueUrl' | sort -u)" "$SURL" "stub: the queue URL in every body"
is "$(bodies | jq -r '.Entries[] | .MessageBody' | sort)" "$(sort "$T/in.events")" "stub: each message body is an event line, exactly"
is "$(bodies | jq -r '.Entries[] | .MessageDeduplicationId + " " + (.MessageBody | fromjson | .id)' | awk '$1 != $2' | wc -l)" 0 \
	"stub: MessageDeduplicationId is the event's id"
is "$(bodies | jq -r '.Entries[] | .MessageGroupId + " " + (.MessageBody | fromjson | .key.id | tostring)' | sort -u | awk '{print $2}' | uniq -d | wc -l)" 0 \
	"stub: one MessageGroupId per row"
is "$(cat "$T/sign.acks")" "$(commits "$T/in.jsonl")" "stub: the three commits acknowledged"
stub_stop

stub standard
printf '[other]\naws_access_key_id = AKIDOTHER\naws_secret_access_key = other/secret\n' >"$T/creds"
pub standard "$T/in.jsonl" --batch 4 --credentials-file "$T/creds" "${SURL%.fifo}"
is "$RC" 2 "stub: --credentials-file without a [default] section: exit 2"
like "$(errline "$T/standard.err")" 'could not read AWS credentials.*no \[default\] section' "stub: saying what is missing"
printf '[default]\naws_access_key_id = AKIDFROMFILE\naws_secret_access_key = from-file/secret\n[ci]\naws_access_key_id=AKIDCI\naws_secret_access_key=ci/secret\n' >"$T/creds"
AWS_PROFILE=ci pub standard "$T/in.jsonl" --batch 4 --credentials-file "$T/creds" "${SURL%.fifo}"
is "$RC" 0 "stub: standard queue, --batch 4, keys from --credentials-file section [\$AWS_PROFILE]: exit 0"
is "$(jq -r '.body | fromjson | .Entries | length' "$LOG" | tr '\n' ' ')" "4 4 2 " "stub: batches of 4"
is "$(bodies | jq -c '[.Entries[] | has("MessageGroupId") or has("MessageDeduplicationId")] | any' | sort -u)" false \
	"stub: a standard queue gets no MessageGroupId nor MessageDeduplicationId"
like "$(header authorization | head -1)" '^AWS4-HMAC-SHA256 Credential=AKIDCI/' "stub: the [ci] section's key"
is "$(sqspy sigv4 "$LOG" ci/secret)" "3 requests, 0 badly signed" "stub: signed with the [ci] section's secret"
is "$(grep -c -e 'ci/secret' -e 'from-file/secret' -e "$AWS_SECRET_ACCESS_KEY" "$T/standard.err" "$T/standard.out" | awk -F: '{s += $2} END {print s}')" 0 \
	"stub: no secret in the output"
stub_stop

# ------------------------------------------------------------ partial batch failures
head -5 "$T/in.jsonl" >"$T/p.jsonl"	# begin, rows 1 2 3, commit
cat >"$T/p1.script" <<'EOF'
200:body={"Successful":[{"Id":"0"},{"Id":"2"}],"Failed":[{"Id":"1","SenderFault":false,"Code":"InternalError","Message":"try again"}]}
EOF
stub p1 --script-file "$T/p1.script"
pub p1 "$T/p.jsonl" "$SURL"
is "$RC" 0 "partial: entry 1 failed with SenderFault false: exit 0"
is "$(entries)" "0=0/5000400:0 1=0/5000400:1 2=0/5000400:2
0=0/5000400:1" "partial: the second request holds exactly the failed entry, as Id 0"
is "$(jq -r '.body' "$LOG" | sed -n 2p | jq -r '.Entries[0].MessageBody')" "$(sed -n 2p "$T/in.events")" "partial: its body unchanged"
like "$(grep -m1 'will retry' "$T/p1.err")" 'id=0/5000400:1 .*error="InternalError: try again"' "partial: the retry is logged with the code"
is "$(cat "$T/p1.acks")" "$(commits "$T/p.jsonl")" "partial: the commit acknowledged once all three are in"
stub_stop

cat >"$T/p2.script" <<'EOF'
200:body={"Successful":[{"Id":"0"},{"Id":"2"}],"Failed":[{"Id":"1","SenderFault":true,"Code":"InvalidMessageContents","Message":"Invalid binary character"}]}
200:body={"Successful":[{"Id":"0"},{"Id":"2"}],"Failed":[{"Id":"1","SenderFault":true,"Code":"InvalidMessageContents","Message":"Invalid binary character"}]}
EOF
stub p2 --script-file "$T/p2.script"
pub p2 "$T/p.jsonl" --dead-letter "$T/p2.dead" "$SURL"
is "$RC" 0 "partial: entry 1 failed with SenderFault true, --dead-letter: exit 0"
is "$(nreq "$LOG")" 1 "partial: nothing sent again"
is "$(jq -c 'del(.dead_letter)' "$T/p2.dead")" "$(sed -n 2p "$T/in.events" | jq -c .)" "partial: the refused event is dead-lettered as it came"
like "$(jq -r '.dead_letter | tostring' "$T/p2.dead")" 'InvalidMessageContents: Invalid binary character' "partial: with the code and message"
is "$(cat "$T/p2.acks")" "$(commits "$T/p.jsonl")" "partial: the others delivered, the commit acknowledged"
pub p2b "$T/p.jsonl" "$SURL"
is "$RC" 9 "partial: the same without --dead-letter: exit 9"
like "$(errline "$T/p2b.err")" 'rejected by the queue.*id=0/5000400:1 .*InvalidMessageContents' "partial: the error line names the event and the code"
is "$(wc -c <"$T/p2b.acks")" 0 "partial: nothing acknowledged"
stub_stop

cat >"$T/p3.script" <<'EOF'
200:body={"Successful":[{"Id":"2"}],"Failed":[]}
EOF
stub p3 --script-file "$T/p3.script"
pub p3 "$T/p.jsonl" "$SURL"
is "$RC $(entries | tail -1)" "0 0=0/5000400:0 1=0/5000400:1" "partial: entries the answer does not name are sent again"
stub_stop

# ------------------------------------------------------------ whole-request errors
cat >"$T/t.script" <<'EOF'
400:body={"__type":"com.amazonaws.sqs#RequestThrottled","message":"Rate exceeded"}
EOF
stub throttled --script-file "$T/t.script"
pub throttled "$T/p.jsonl" "$SURL"
gap=$(jq -s '((.[1].t - .[0].t) * 1000) | floor' "$LOG")
is "$RC $(nreq "$LOG")" "0 2" "throttled (400 RequestThrottled): sent again, then delivered"
is "$([ "$gap" -ge 950 ] && echo yes || echo "no: $gap ms")" yes "throttled: at least 1 s later"
is "$(sqspy sigv4 "$LOG" "$AWS_SECRET_ACCESS_KEY")" "2 requests, 0 badly signed" "throttled: the retry signed afresh"
stub_stop

stub denied --default '403:body={"__type":"com.amazonaws.sqs#InvalidClientTokenId","message":"The security token included in the request is invalid."}'
pub denied "$T/p.jsonl" "$SURL"
is "$RC" 9 "403 InvalidClientTokenId: exit 9"
like "$(errline "$T/denied.err")" 'status=403 error="authentication failed: InvalidClientTokenId: The security token' "403: \"authentication failed\" and the code"
is "$(grep -c -e "$AWS_SECRET_ACCESS_KEY" -e "$AWS_SESSION_TOKEN" "$T/denied.err")" 0 "403: no secret in stderr"
stub_stop

pub nonefifo "$T/p.jsonl" --ordering-key none "$SURL"
is "$RC" 2 "--ordering-key none on a FIFO queue: exit 2"
like "$(head -1 "$T/nonefifo.err")" 'a FIFO queue needs a message group' "--ordering-key none: says why"
pub big "$T/p.jsonl" --batch 11 "$SURL"
is "$RC" 2 "--batch 11: exit 2 (SQS takes 10)"
AWS_ACCESS_KEY_ID= pub nokeys "$T/p.jsonl" "$SURL"
like "$RC $(errline "$T/nokeys.err")" '^2 .*no AWS credentials' "no AWS_ACCESS_KEY_ID: exit 2, saying so"
pub noregion "$T/p.jsonl" https://queue.example/123456789012/q
like "$RC $(head -1 "$T/noregion.err")" "^2 .*could not tell the queue's region" "a host that names no region, no AWS_REGION: exit 2"

# ------------------------------------------------------------ fauxqs
if ! fauxqs_find; then
	pass "fauxqs tests # SKIP $FAUXQS_WHY"
	done_testing
	exit
fi
if ! fauxqs_start "$T/fauxqs"; then
	fail "fauxqs starts"
	done_testing
	exit 1
fi
FQ_PORT=$FAUXQS_PORT
FQ_PID=$FAUXQS_PID
EP=$FAUXQS_EP
is "$(ss -Hltn "sport = :$FQ_PORT" | awk '{print $4}' | sort -u)" "127.0.0.1:$FQ_PORT" "fauxqs listens on 127.0.0.1:$FQ_PORT only"
sqs() { fauxqs_call "$@"; }
queue() { fauxqs_create "$1"; }

QS=$(queue events)
like "$QS" "^http://sqs.us-east-1.localhost:$FQ_PORT/[0-9]+/events$" "fauxqs: a standard queue"
pub fq_std "$T/in.jsonl" --endpoint "$EP" "$QS"
is "$RC" 0 "fauxqs standard queue: exit 0"
sqspy receive "$EP" "$QS" "$T/fq_std.got"
is "$(sqspy exact "$T/fq_std.got" "$T/in.jsonl" sorted 2>&1)" ok "fauxqs standard queue: the 10 events arrived, bodies exactly the lines"
is "$(cat "$T/fq_std.acks")" "$(commits "$T/in.jsonl")" "fauxqs standard queue: the three commits acknowledged"

QF=$(queue events.fifo)
pub fq_fifo "$T/in.jsonl" --endpoint "$EP" "$QF"
is "$RC" 0 "fauxqs FIFO queue: exit 0"
pub fq_fifo2 "$T/in.jsonl" --endpoint "$EP" "$QF"
is "$RC" 0 "fauxqs FIFO queue: the same input again: exit 0"
is "$(cat "$T/fq_fifo2.acks")" "$(commits "$T/in.jsonl")" "fauxqs FIFO queue: the second run acknowledged too (SQS takes a duplicate with success)"
sqspy receive "$EP" "$QF" "$T/fq_fifo.got"
is "$(sqspy exact "$T/fq_fifo.got" "$T/in.jsonl" 2>&1)" ok \
	"fauxqs FIFO queue: sent twice, each event received once (same MessageDeduplicationId), each row's in order"

QP=$(queue packed.fifo)
pub fq_pack "$T/in.jsonl" --pack tx --endpoint "$EP" "$QP"
sqspy receive "$EP" "$QP" "$T/fq_pack.got"
is "$RC $(wc -l <"$T/fq_pack.got")" "0 3" "fauxqs FIFO queue, --pack tx: three messages"
is "$(sqspy exact "$T/fq_pack.got" "$T/in.jsonl" packed 2>&1)" ok "fauxqs FIFO queue, --pack tx: their arrays hold the events, in order"

pub fq_missing "$T/in.jsonl" --endpoint "$EP" "${QF%/*}/no-such-queue"
is "$RC" 9 "fauxqs: a queue that does not exist: exit 9"
like "$(errline "$T/fq_missing.err")" 'status=400 error="the queue does not exist: The specified queue does not exist."' "fauxqs: refused with the reason"
is "$(wc -c <"$T/fq_missing.acks")" 0 "fauxqs: nothing acknowledged"

# ------------------------------------------------------------ end to end with PostgreSQL
pg_start "$T/pg" "$(free_port)" || { fail "PostgreSQL starts"; done_testing; exit 1; }
CONN=$(pg_conninfo)
slot_inactive() { [ "$(sql "SELECT active FROM pg_replication_slots WHERE slot_name = '$1'")" = f ]; }
new_slot() {
	"$PG_CAPTURE" -d "$CONN" -S "$1" --create-slot --endpos "$(sql "SELECT pg_current_wal_lsn()")" >/dev/null 2>&1
	wait_for 10 slot_inactive "$1"
}
# pipeline NAME [cdc-publish OPTION...]: pg-capture --endpos $END | cdc-publish in the background; CAP, PUB
pipeline() {
	local name=$1
	shift
	rm -f "$T/$name.pipe"
	mkfifo -m 600 "$T/$name.pipe"
	"$PG_CAPTURE" -d "$CONN" -S e --ack-fifo "$T/ack" --endpos "$END" --status-interval 0.5 \
		>"$T/$name.pipe" 2>"$T/$name.cap.err" &
	CAP=$!
	"$PUBLISH" --target sqs --ack-fifo "$T/ack" --endpoint "$EP" "$@" "$QE" <"$T/$name.pipe" 2>"$T/$name.pub.err" &
	PUB=$!
}
rm -f "$T/ack"
mkfifo -m 600 "$T/ack"
sql "CREATE TABLE big (id int PRIMARY KEY, v int NOT NULL, t text)"
new_slot e && new_slot eref
for b in 0 1 2 3 4 5 6 7 8 9; do
	sql "INSERT INTO big SELECT i, 0, 'row \"' || i || '\"' FROM generate_series($((b * 1000 + 1)), $((b * 1000 + 1000))) i"
done
for b in 0 1 2 3 4; do
	sql "UPDATE big SET v = v + 1 WHERE id % 5 = $b"
done
END=$(sql "SELECT pg_current_wal_lsn()")
QE=$(queue cdc.fifo)
depth() { sqspy depth "$EP" "$QE"; }
some_arrived() { [ "$(depth)" -ge 3000 ]; }
pipeline e1 --parallel 4 --window 1000
if wait_for 40 some_arrived; then pass "e2e: 3000 of 20000 changes arrived"; else fail "e2e: 3000 changes did not arrive"; fi
kill -9 "$PUB"
{ wait_exit "$PUB" 5; } 2>/dev/null
wait_exit "$CAP" 10
is "$RC" 1 "e2e: after kill -9 of cdc-publish, pg-capture stops (status 1: downstream gone)"
run1=$(depth)
is "$([ "$run1" -lt 20000 ] && echo yes || echo "no: $run1")" yes "e2e: killed mid-stream ($run1 of 20000 in the queue)"
wait_for 10 slot_inactive e
pipeline e2 --parallel 4
wait_exit "$PUB" 60
pub_rc=$RC
wait_exit "$CAP" 10
is "$pub_rc $RC" "0 0" "e2e: the restarted pipeline runs to --endpos: both exit 0"
"$PG_CAPTURE" -d "$CONN" -S eref --endpos "$END" >"$T/e.ref" 2>"$T/e.ref.err"
sqspy receive "$EP" "$QE" "$T/e.got"
is "$(sqspy once "$T/e.got" "$T/e.ref")" "messages 20000 of 20000
distinct 20000
missing 0
unknown 0
body mismatches 0
rows out of order 0" "e2e: kill -9 and restart: every change in the FIFO queue exactly once (deduplicated), as captured, each row's in order"
run2=$(sed -n 's/.*msg=exiting delivered=\([0-9]*\) .*/\1/p' "$T/e2.pub.err")
repeats=$((run1 + run2 - $(wc -l <"$T/e.got")))
# acknowledgements are per commit, and a transaction here is 1000 or 2000 rows
is "$([ "$repeats" -gt 0 ] && echo yes || echo "no: $run1 + $run2 sent, $(wc -l <"$T/e.got") received")" yes \
	"e2e: the restart sent again $repeats changes run 1 had delivered unacknowledged; the queue took them once"
done_testing
