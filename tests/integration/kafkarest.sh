#!/usr/bin/env bash
# cdc-publish --target kafka-rest against tests/lib/httpstub.py scripted as
# Confluent's REST Proxy (v2, v3, v3 records:batch) and Redpanda's (v2):
# exact bodies and headers, and every odd answer: 200 with a per-record
# error_code (v2), 207 with failures (v3 batch), 200 with error_code in a
# v3 report, 40401 for the whole request; only the records that failed
# are sent again. No Kafka REST proxy can be installed here.
#
#   bash tests/integration/kafkarest.sh      (after make; no database needed)
set -u
source "$(dirname "$0")/../lib/testlib.sh"
PUB=${CDC_PUBLISH:-$TOP/cdc-publish/cdc-publish}
STUB=$TOP/tests/lib/httpstub.py
[ -x "$PUB" ] || { echo "not ok - $PUB not built (make)"; exit 1; }
command -v jq >/dev/null || { echo "not ok - jq is needed"; exit 1; }

W=$(mktemp -d /tmp/pgcdc-kafkarest.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$W"' EXIT

# proxy ACTION...: a stub answering these actions (one a line: bodies have
# commas), then 200; sets LOG, BASE (http://127.0.0.1:PORT), STUB_PID
proxy() {
	LOG=$W/proxy.log
	rm -f "$LOG" "$W/proxy.port"
	printf '%s\n' "$@" >"$W/script"
	python3 "$STUB" --port 0 --port-file "$W/proxy.port" --log "$LOG" --max-time 120 \
		--script-file "$W/script" 2>"$W/stub.err" &
	STUB_PID=$!
	if wait_for 10 test -s "$W/proxy.port"; then
		BASE=http://127.0.0.1:$(cat "$W/proxy.port")
	else
		fail "httpstub starts" "$(cat "$W/stub.err")"
		BASE=http://127.0.0.1:9
	fi
}
proxy_stop() { kill "$STUB_PID" 2>/dev/null; wait "$STUB_PID" 2>/dev/null; }

# pub LIMIT INPUT ARGS...: cdc-publish --target kafka-rest ARGS <INPUT; sets RC
pub() {
	local limit=$1 input=$2
	shift 2
	"$PUB" --target kafka-rest "$@" <"$input" >"$W/out" 2>"$W/err" &
	wait_exit $! "$limit"
}
nreq() { if [ -f "$LOG" ]; then wc -l <"$LOG" | tr -d ' '; else echo 0; fi; }
header() { jq -r --arg h "$1" '[.headers[] | select(.[0] | ascii_downcase == ($h | ascii_downcase)) | .[1]] | join(",")' "$LOG"; }
body() { jq -r .body "$LOG" | sed -n "${1}p"; }
published() { grep -v -e '^{"op":"begin"' -e '^{"op":"commit"' "$1"; }
# ev N: the Nth event line (1-based)
ev() { sed -n "${1}p" "$W/events"; }
# rows K...: one transaction of inserts into public.t, one per key K
rows() {
	python3 - "$@" <<'EOF'
import sys
ts = "2026-11-24T14:31:06.000000Z"
print('{"op":"begin","xid":900,"lsn":"0/3000000","commit_lsn":"0/3001000","ts":"%s"}' % ts)
for j, k in enumerate(sys.argv[1:]):
    print('{"op":"insert","schema":"public","table":"t","id":"0/3001000:%d","lsn":"0/%X","xid":900,"ts":"%s",'
          '"key":{"id":%s},"new":{"id":%s,"v":"r%d"}}' % (j, 0x3000000 + j * 8, ts, k, k, j))
print('{"op":"commit","xid":900,"lsn":"0/3001030","commit_lsn":"0/3001000","ts":"%s"}' % ts)
EOF
}
# v2ok N: a v2 answer with N offsets and no error
v2ok() { python3 -c 'import json,sys; n=int(sys.argv[1]); print("200:body=" + json.dumps({"key_schema_id": None, "value_schema_id": None, "offsets": [{"partition": 0, "offset": i, "error_code": None, "error": None} for i in range(n)]}))' "$1"; }

rows 1 2 3 >"$W/in"
published "$W/in" >"$W/events"

# ------------------------------------------------------------------------- v2

proxy "$(v2ok 3)"
pub 20 "$W/in" --batch 10 --ordering-key none "$BASE/topics/cdc"
is "$RC/$(nreq)" "0/1" "v2: exit 0, 3 records in one request (--batch 10)"
is "$(jq -r '.method + " " + .path' "$LOG")" "POST /topics/cdc" "v2: POST to /topics/TOPIC"
is "$(header Content-Type)" "application/vnd.kafka.json.v2+json" "v2: Content-Type application/vnd.kafka.json.v2+json"
is "$(header Accept)" "application/vnd.kafka.v2+json" "v2: Accept application/vnd.kafka.v2+json"
is "$(body 1)" "{\"records\":[{\"value\":$(ev 1)},{\"value\":$(ev 2)},{\"value\":$(ev 3)}]}" \
	"v2: the exact body, each event a JSON value, no key with --ordering-key none"
proxy_stop

proxy "$(v2ok 3)"
pub 20 "$W/in" --batch 10 "$BASE/topics/cdc"
keys=$(jq -r .body "$LOG" | jq -r '.records[].key' | tr '\n' ' ')
like "$keys" '^[0-9a-f]{16} [0-9a-f]{16} [0-9a-f]{16} $' "v2: each record keyed by its row's ordering key (16 hex digits)"
is "$(jq -r .body "$LOG" | jq -c '[.records[].value]')" "[$(ev 1),$(ev 2),$(ev 3)]" "v2: the values are the events"
proxy_stop

# 200 with a retriable error_code for one record: only that record again
printf '200:body={"offsets":[{"partition":0,"offset":7,"error_code":null,"error":null},{"partition":null,"offset":null,"error_code":50003,"error":"This server is not the leader for that topic-partition."},{"partition":0,"offset":8,"error_code":null,"error":null}]}\n' >"$W/a1"
proxy "$(cat "$W/a1")" "$(v2ok 1)"
mkfifo "$W/ack"
cat "$W/ack" >"$W/acks" &
ack=$!
pub 20 "$W/in" --batch 10 --ordering-key none --retry-max-delay 0.2 --ack-fifo "$W/ack" "$BASE/topics/cdc"
wait "$ack"
is "$RC/$(nreq)" "0/2" "v2 200 with error_code 50003 for record 2: exit 0 after 2 requests"
is "$(body 2)" "{\"records\":[{\"value\":$(ev 2)}]}" "v2 50003: only the failed record sent again"
is "$(cat "$W/acks")" "0/3001030" "v2 50003: the commit acknowledged once all three were in"
like "$(cat "$W/err")" 'will retry.*error_code 50003: This server is not the leader' "v2 50003: the retry log quotes the error"
proxy_stop

# 200 with a non-retriable error_code: that record refused, the others delivered
printf '200:body={"offsets":[{"partition":0,"offset":7,"error_code":null,"error":null},{"partition":0,"offset":8,"error_code":null,"error":null},{"partition":null,"offset":null,"error_code":50002,"error":"RecordTooLargeException"}]}\n' >"$W/a2"
proxy "$(cat "$W/a2")"
rm -f "$W/dead"
pub 20 "$W/in" --batch 10 --ordering-key none --dead-letter "$W/dead" "$BASE/topics/cdc"
is "$RC/$(nreq)" "0/1" "v2 200 with error_code 50002 for record 3 and --dead-letter: exit 0, nothing sent again"
is "$(jq -r '.id + " " + .dead_letter.error' "$W/dead")" "0/3001000:2 error_code 50002: RecordTooLargeException" \
	"v2 50002: record 3 alone dead-lettered, with the error"
like "$(cat "$W/err")" 'delivered=2 dead_lettered=1' "v2 50002: the other two delivered"
proxy_stop

proxy "$(cat "$W/a2")"
pub 20 "$W/in" --batch 10 --ordering-key none "$BASE/topics/cdc"
is "$RC" 9 "v2 50002 without --dead-letter: exit 9"
proxy_stop

# Redpanda: offsets without error_code are delivered; a Kafka error code 6 (not leader) is retried
printf '200:body={"offsets":[{"partition":0,"offset":1},{"partition":0,"offset":-1,"error_code":6},{"partition":0,"offset":2}]}\n' >"$W/a3"
proxy "$(cat "$W/a3")" '200:body={"offsets":[{"partition":0,"offset":3}]}'
pub 20 "$W/in" --batch 10 --ordering-key none --retry-max-delay 0.2 "$BASE/topics/cdc"
is "$RC/$(nreq)" "0/2" "Redpanda: no error_code is delivery, error_code 6 retried"
is "$(body 2)" "{\"records\":[{\"value\":$(ev 2)}]}" "Redpanda: only the record with error_code 6 sent again"
proxy_stop

# whole-request answers
proxy '404:body={"error_code":40401,"message":"Topic cdc not found."}'
pub 20 "$W/in" --batch 10 "$BASE/topics/cdc"
is "$RC/$(nreq)" "9/1" "v2 404 40401: refused at once (exit 9)"
like "$(cat "$W/err")" '(rejected|refused) by the queue.*status=404 .*error_code 40401: Topic cdc not found' "v2 40401: the log says topic not found"
proxy_stop
proxy '422:body={"error_code":42203,"message":"Conversion of JSON to Object failed."}'
pub 20 "$W/in" --batch 10 "$BASE/topics/cdc"
is "$RC/$(nreq)" "9/1" "v2 422: refused (exit 9)"
proxy_stop
proxy '429:body={"error_code":42901,"message":"Too many requests"}' '500:body={"error_code":50001,"message":"x"}' \
	'503:body={"error_code":50302,"message":"Broker not available"}' '200:body={"offsets":[]}' "$(v2ok 3)"
pub 20 "$W/in" --batch 10 --retry-max-delay 0.2 "$BASE/topics/cdc"
is "$RC/$(nreq)" "0/5" "v2 429, 500, 503, 200 without offsets: retried, delivered on the 5th"
is "$(body 5)" "$(body 1)" "v2: the retried request is the same"
proxy_stop

# auth: what the proxy uses
proxy "$(v2ok 3)"
KUSER='svc:pa ss' pub 20 "$W/in" --batch 10 --basic-env KUSER "$BASE/topics/cdc"
is "$(header Authorization)" "Basic $(printf 'svc:pa ss' | base64)" "--basic-env: Authorization Basic"
proxy_stop

# ------------------------------------------------------------------------- v3

V3=/v3/clusters/lkc-1/topics/cdc/records
proxy '200:body={"error_code":200,"cluster_id":"lkc-1","topic_name":"cdc","partition_id":0,"offset":0}' \
	'200:body={"error_code":50003,"message":"NOT_ENOUGH_REPLICAS"}' \
	'200:body={"error_code":200,"cluster_id":"lkc-1","topic_name":"cdc","partition_id":0,"offset":1}' \
	'200:body={"error_code":200,"cluster_id":"lkc-1","topic_name":"cdc","partition_id":0,"offset":2}'
pub 20 "$W/in" --ordering-key none --retry-max-delay 0.2 "$BASE$V3"
is "$RC/$(nreq)" "0/4" "v3: one record a request, a report with error_code 50003 retried"
is "$(jq -r .path "$LOG" | sort -u)" "$V3" "v3: POST to .../records"
is "$(header Content-Type | sort -u)" "application/json" "v3: Content-Type application/json"
is "$(body 1)" "{\"value\":{\"type\":\"JSON\",\"data\":$(ev 1)}}" "v3: the exact body, the event as JSON data"
is "$(body 3)" "$(body 2)" "v3: the record with error_code 50003 sent again"
proxy_stop

proxy '200:body={"error_code":200,"offset":0}'
pub 20 <(head -3 "$W/in") "$BASE$V3"
like "$(body 1)" '^\{"key":\{"type":"STRING","data":"[0-9a-f]{16}"\},"value":\{"type":"JSON","data":\{' "v3: key a STRING, the row's ordering key"
proxy_stop

proxy '200:body={"error_code":40403,"message":"Not authorized to access topics: [cdc]"}'
pub 20 "$W/in" "$BASE$V3"
is "$RC/$(nreq)" "9/1" "v3: a report with error_code 40403: refused (exit 9)"
like "$(cat "$W/err")" 'error_code 40403: Not authorized' "v3 40403: the log quotes it"
proxy_stop

pub 5 "$W/in" --batch 5 http://127.0.0.1:9$V3
is "$RC" 2 "v3 .../records with --batch 5: exit 2"
like "$(cat "$W/err")" 'records:batch' "v3 --batch: points to records:batch"

# ------------------------------------------------------------------- v3 batch

proxy '207:body={"successes":[{"id":"0","cluster_id":"lkc-1","topic_name":"cdc","partition_id":0,"offset":5},{"id":"2","cluster_id":"lkc-1","topic_name":"cdc","partition_id":0,"offset":6}],"failures":[{"id":"1","error_code":429,"message":"Request rate limit exceeded"}]}' \
	'207:body={"successes":[{"id":"0","partition_id":0,"offset":7}],"failures":[]}'
pub 20 "$W/in" --batch 10 --ordering-key none --retry-max-delay 0.2 "$BASE${V3}:batch"
is "$RC/$(nreq)" "0/2" "v3 batch: 207 with a failure (429) for entry 1: exit 0 after 2 requests"
is "$(body 1)" "{\"entries\":[{\"id\":\"0\",\"value\":{\"type\":\"JSON\",\"data\":$(ev 1)}},{\"id\":\"1\",\"value\":{\"type\":\"JSON\",\"data\":$(ev 2)}},{\"id\":\"2\",\"value\":{\"type\":\"JSON\",\"data\":$(ev 3)}}]}" \
	"v3 batch: the exact body, entries with ids 0, 1, 2"
is "$(body 2)" "{\"entries\":[{\"id\":\"0\",\"value\":{\"type\":\"JSON\",\"data\":$(ev 2)}}]}" "v3 batch: only the failed entry sent again"
proxy_stop

proxy '207:body={"successes":[{"id":"1","offset":5}],"failures":[{"id":"0","error_code":400,"message":"Bad Request: value is not JSON"},{"id":"2","error_code":50003,"message":"retriable"}]}' \
	'207:body={"successes":[{"id":"0","offset":6}],"failures":[]}'
rm -f "$W/dead"
pub 20 "$W/in" --batch 10 --ordering-key none --retry-max-delay 0.2 --dead-letter "$W/dead" "$BASE${V3}:batch"
is "$RC/$(nreq)" "0/2" "v3 batch: failures 400 (refused) and 50003 (retried)"
is "$(jq -r .id "$W/dead")" "0/3001000:0" "v3 batch: the entry refused with 400 is dead-lettered"
is "$(body 2)" "{\"entries\":[{\"id\":\"0\",\"value\":{\"type\":\"JSON\",\"data\":$(ev 3)}}]}" "v3 batch: the 50003 entry sent again alone"
proxy_stop

rows 1 2 3 4 5 6 7 8 9 10 11 12 >"$W/in12"
proxy '207:body={"successes":[{"id":"0"},{"id":"1"},{"id":"2"},{"id":"3"},{"id":"4"},{"id":"5"},{"id":"6"},{"id":"7"},{"id":"8"},{"id":"9"}],"failures":[]}' \
	'207:body={"successes":[{"id":"0"},{"id":"1"}],"failures":[]}'
pub 20 "$W/in12" --batch 50 "$BASE${V3}:batch"
is "$RC/$(jq -r .body "$LOG" | jq -c '.entries | length' | tr '\n' ' ')" "0/10 2 " "v3 batch: at most 10 entries a request, --batch 50 or not"
proxy_stop

pub 5 "$W/in" http://127.0.0.1:9/v3/clusters/x/topics
is "$RC" 2 "not a produce endpoint: exit 2"
like "$(cat "$W/err")" 'is not a Kafka REST produce endpoint' "not a produce endpoint: says so"

done_testing
