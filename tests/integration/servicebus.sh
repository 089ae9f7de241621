#!/usr/bin/env bash
# cdc-publish --target servicebus and --target eventhubs against
# tests/lib/httpstub.py scripted with the answers the REST send API
# documents (Azure has no local server for either): 201 with an empty
# body; 403 "message too large" (refused, dead-lettered with the reason);
# 403 entity full and 503 throttling (error 50009, no Retry-After:
# retried no sooner than 2 s); 404/410 entity gone, 401 and 403 without
# the Send claim (refused). Asserts exact bodies, BrokerProperties,
# content types, the SAS token (recomputed here from the key; the key
# itself never sent nor logged), dead-letter lines, exit codes and
# acknowledgements. About 15 s, most of it the 2 s waits.
#
#   bash tests/integration/servicebus.sh      (after make; no server needed)
set -u
source "$(dirname "$0")/../lib/testlib.sh"
PUB=${CDC_PUBLISH:-$TOP/cdc-publish/cdc-publish}
STUB=$TOP/tests/lib/httpstub.py
[ -x "$PUB" ] || { echo "not ok - $PUB not built (make)"; exit 1; }
command -v jq >/dev/null || { echo "not ok - jq is needed"; exit 1; }

W=$(mktemp -d /tmp/pgcdc-servicebus.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$W"' EXIT	# stubs, cat readers: jobs of this shell

KEY='it+SB+key/0123456789abcdefghijklmn='	# a key with characters base64 and URLs care about
export SB_CONN="Endpoint=sb://contoso.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=$KEY"
export EH_CONN="Endpoint=sb://contoso.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=$KEY;EntityPath=hub"

# stub NAME [httpstub OPTIONS]: a stub logging to $W/NAME.log; sets LOG, BASE (http://127.0.0.1:PORT) and STUB_PID
stub() {
	local name=$1
	shift
	LOG=$W/$name.log
	python3 "$STUB" --port 0 --port-file "$W/$name.port" --log "$LOG" --max-time 60 --default '201:body=' "$@" \
		2>"$W/$name.stub.err" &
	STUB_PID=$!
	if wait_for 10 test -s "$W/$name.port"; then
		BASE=http://127.0.0.1:$(cat "$W/$name.port")
	else
		fail "httpstub $name starts" "$(cat "$W/$name.stub.err")"
		BASE=http://127.0.0.1:9
	fi
}
stub_stop() { kill "$STUB_PID" 2>/dev/null; wait "$STUB_PID" 2>/dev/null; }

# script NAME LINE...: a --script-file (answers hold commas)
script() { local f=$W/$1.script; shift; printf '%s\n' "$@" >"$f"; echo "$f"; }

# pub LIMIT INPUT ARGS...: cdc-publish ARGS <INPUT; stdout $W/out, stderr $W/err, RC
pub() {
	local limit=$1 input=$2
	shift 2
	"$PUB" "$@" <"$input" >"$W/out" 2>"$W/err" &
	wait_exit $! "$limit"
}

ack_open() { rm -f "$W/ack" "$W/acks"; mkfifo "$W/ack"; cat "$W/ack" >"$W/acks" & ACK_PID=$!; }
ack_close() { local rc=$RC; wait_exit "$ACK_PID" 5; RC=$rc; ACKS=$(cat "$W/acks" 2>/dev/null); }

nreq() { if [ -f "$LOG" ]; then wc -l <"$LOG" | tr -d ' '; else echo 0; fi; }
bodies() { jq -r .body "$LOG"; }
# header NAME: its value in each request, one a line
header() { jq -r --arg h "$1" '[.headers[] | select(.[0] | ascii_downcase == ($h | ascii_downcase)) | .[1]] | join(",")' "$LOG"; }
gap_ms() { jq -s --argjson i "$1" --argjson j "$2" '((.[$j - 1].t - .[$i - 1].t) * 1000) | floor' "$LOG"; }
# no_key FILE...: the key, and its base64 decoding's hex, appear in none of them
no_key() { ! grep -qF -- "$KEY" "$@" && ! grep -qiF -- "$(printf '%s' "$KEY" | base64 -d 2>/dev/null | od -An -tx1 | tr -d ' \n')" "$@"; }

# check_sas URI: every Authorization is a valid token for URI signed with
# $KEY as a string (recomputed here), se after NOW and at most an hour on;
# prints "ok" or what is wrong
check_sas() {
	header Authorization | python3 -c '
import base64, hashlib, hmac, sys, time, urllib.parse
uri, key, now = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3])
for line in sys.stdin:
    tok = line.rstrip("\n")
    if not tok.startswith("SharedAccessSignature sr="):
        sys.exit("not a SAS token: " + tok[:30])
    f = dict(kv.split("=", 1) for kv in tok[len("SharedAccessSignature "):].split("&"))
    if sorted(f) != ["se", "sig", "skn", "sr"]:
        sys.exit("members %s" % sorted(f))
    if f["sr"] != urllib.parse.quote(uri, safe=""):
        sys.exit("sr=%s, want the encoded %s" % (f["sr"], uri))
    se = int(f["se"])
    if not now < se <= now + 3600 + 60:
        sys.exit("se=%d, now %d" % (se, now))
    want = base64.b64encode(hmac.new(key, (f["sr"] + "\n" + f["se"]).encode(), hashlib.sha256).digest()).decode()
    if urllib.parse.unquote(f["sig"]) != want or f["sig"] != urllib.parse.quote(want, safe=""):
        sys.exit("sig=%s, want %s" % (f["sig"], want))
    if f["skn"] != "send":
        sys.exit("skn=" + f["skn"])
print("ok")' "$1" "$KEY" "$(($(date +%s) - 5))" 2>&1
}

IN=$TOP/tests/golden/decode/multi_tx/expected.pgoutput	# a schema line, 3 transactions, 6 changes
grep -v -e '"op":"begin"' -e '"op":"commit"' "$IN" >"$W/events"
COMMITS=$(grep '"op":"commit"' "$IN" | jq -r .lsn)
IDS='0/2A24F28:e289ab411c1930ae
0/2A25088:0
0/2A25088:1
0/2A253A8:0
0/2A253A8:1
0/2A253A8:2
0/2A26D48:0'
head -1 "$IN" >"$W/one.in"	# the schema line alone

# ---------------------------------------------------------------- one message per request

stub single
ack_open
pub 10 "$IN" --target servicebus --credentials-env SB_CONN --ack-fifo "$W/ack" "$BASE/cdc-events"
ack_close
is "$RC" 0 "single: exit 0"
is "$(nreq)" 7 "single: one POST per event"
is "$(jq -r '.method + " " + .path' "$LOG" | sort -u)" "POST /cdc-events/messages" "single: POST to ENTITY/messages"
is "$(bodies)" "$(cat "$W/events")" "single: the bodies are the event lines"
is "$(header Content-Type | sort -u)" "application/json" "single: Content-Type application/json"
is "$(header BrokerProperties)" "$(sed 's/.*/{"MessageId":"&"}/' <<<"$IDS")" \
	"single: BrokerProperties MessageId the event's id, no SessionId by default"
is "$(check_sas "$BASE/cdc-events")" ok "single: Authorization a SAS token for the entity, signed with the key as a string, se within the hour"
is "$(header Authorization | sort -u | wc -l)" 1 "single: one token for all requests (kept, not made per request)"
is "$ACKS" "$COMMITS" "single: every commit acknowledged"
if no_key "$LOG" "$W/err" "$W/out"; then pass "single: the key is neither sent nor logged"
else fail "single: the key is neither sent nor logged"; fi
stub_stop

# ---------------------------------------------------------------- batch, sessions, a pinned clock

stub batch
ack_open
PGCDC_NOW=1799996400 pub 10 "$IN" --target servicebus --credentials-env SB_CONN --batch 10 --ordering-key row \
	--ack-fifo "$W/ack" "$BASE/cdc-events/"
ack_close
is "$RC" 0 "batch: exit 0"
is "$(header Content-Type | sort -u)" "application/vnd.microsoft.servicebus.json" \
	"batch: Content-Type application/vnd.microsoft.servicebus.json exactly (no charset)"
is "$(jq -r '.body | fromjson | .[].Body' "$LOG")" "$(cat "$W/events")" "batch: each Body is an event line as a JSON string, in order"
is "$(jq -r '.body | fromjson | .[].BrokerProperties.MessageId' "$LOG")" "$IDS" "batch: MessageId per message"
is "$(jq -r '.body | fromjson | .[].BrokerProperties.SessionId' "$LOG" | paste -sd' ')" \
	"e289ab411c1930ae fc3eccdce31b5dd8 fc3ecddce31b5e25 fc3eccdce31b5dd8 fc3ec8dce31b56a4 fc3ecddce31b5e25 fc3ec9dce31b58f1" \
	"batch: --ordering-key row: SessionId the row's key (the table's for the schema line)"
is "$(jq -c '.body | fromjson | .[0] | keys_unsorted' "$LOG" | sort -u)" '["Body","BrokerProperties"]' "batch: members Body and BrokerProperties"
is "$(header BrokerProperties | sort -u)" "" "batch: no BrokerProperties header"
sig=$(python3 -c 'import base64, hashlib, hmac, sys, urllib.parse as u
sr = u.quote(sys.argv[1], safe="")
print("SharedAccessSignature sr=%s&sig=%s&se=1800000000&skn=send" % (sr,
    u.quote(base64.b64encode(hmac.new(sys.argv[2].encode(), (sr + "\n1800000000").encode(), hashlib.sha256).digest()), safe="")))' \
	"$BASE/cdc-events" "$KEY")
is "$(header Authorization | sort -u)" "$sig" "batch: PGCDC_NOW pins the token: se = now + 3600, byte for byte"
is "$ACKS" "$COMMITS" "batch: every commit acknowledged"
stub_stop

# the whole batch under 256 KB (with a margin), or under --max-message
python3 -c '
for i in range(300):
    print("{\"op\":\"insert\",\"schema\":\"public\",\"table\":\"big\",\"id\":\"0/5:%d\",\"key\":{\"id\":%d},\"new\":{\"id\":%d,\"v\":\"%s\"}}" % (i, i, i, "\\\"x" * 500))' >"$W/many.in"
stub limit
pub 20 "$W/many.in" --target servicebus --credentials-env SB_CONN --batch 1000 "$BASE/q"
sizes=$(jq -r '.body | utf8bytelength' "$LOG")
is "$RC" 0 "limit: 300 events of 1 KB (2 KB as JSON strings) with --batch 1000: exit 0"
is "$(jq -r '.body | fromjson | .[].Body' "$LOG")" "$(cat "$W/many.in")" "limit: all delivered, in order"
if [ "$(nreq)" -ge 3 ] && [ "$(sort -n <<<"$sizes" | tail -1)" -le 250000 ]; then
	pass "limit: $(nreq) requests of at most 250 000 bytes ($(paste -sd' ' <<<"$sizes"))"
else
	fail "limit: batches under 250 000 bytes" "sizes $(paste -sd' ' <<<"$sizes")"
fi
stub_stop
stub premium
pub 20 "$W/many.in" --target servicebus --credentials-env SB_CONN --batch 1000 --max-message 1048576 "$BASE/q"
is "$RC $(nreq)" "0 1" "limit: --max-message 1048576 (Premium): one request"
stub_stop

# one event over the limit: refused unsent, dead-lettered with the reason
python3 -c 'print("{\"op\":\"insert\",\"schema\":\"public\",\"table\":\"big\",\"id\":\"0/6:0\",\"key\":{\"id\":1},\"new\":{\"id\":1,\"v\":\"" + "x" * 300000 + "\"}}")' >"$W/huge.in"
stub huge
pub 10 "$W/huge.in" --target servicebus --credentials-env SB_CONN --dead-letter "$W/huge.dl" "$BASE/q"
is "$RC $(nreq)" "0 0" "an event over 256 KB: not sent, exit 0 with --dead-letter"
is "$(jq -r .dead_letter.error "$W/huge.dl")" "too large for the target: $(($(wc -c <"$W/huge.in") - 1)) bytes, the limit is 248995" \
	"an event over 256 KB: dead-lettered with the reason"
stub_stop

# ---------------------------------------------------------------- refusals

TOO_LARGE='<Error><Code>403</Code><Detail>The received message (delivery-id:0, size:262400 bytes) exceeds the limit (262144 bytes) currently allowed on the link. TrackingId:4c2a51ff-0d0e-4f55-9c26-5a1b8d2f6b51_G2, SystemTracker:contoso:Queue:cdc-events, Timestamp:2026-11-24T14:31:06</Detail></Error>'
stub toolarge --script-file "$(script toolarge "403:body=$TOO_LARGE")"
ack_open
pub 10 "$IN" --target servicebus --credentials-env SB_CONN --dead-letter "$W/toolarge.dl" --ack-fifo "$W/ack" "$BASE/cdc-events"
ack_close
is "$RC" 0 "403 too large with --dead-letter: exit 0"
is "$(nreq)" 7 "403 too large: not sent again; the others delivered"
is "$(jq -c 'del(.dead_letter)' "$W/toolarge.dl")" "$(head -1 "$W/events" | jq -c .)" "403 too large: the refused event in the dead-letter file"
is "$(jq -r '.dead_letter | "\(.status) \(.error)"' "$W/toolarge.dl")" \
	"403 message too large for the entity (HTTP 403, $(($(wc -c <"$W/one.in") - 1)) bytes in 1 message; a Premium entity's limit goes in --max-message): The received message (delivery-id:0, size:262400 bytes) exceeds the limit (262144 bytes) currently allowed on the link. TrackingId:4c2a51ff-0d0e-4f55-9c26-5a1b8d2f6b51_G2, SystemTracker:contoso:Queue:cdc-events, Timestamp:2026-11-24T14:31:06" \
	"403 too large: status 403 and the reason, the service's words included"
is "$ACKS" "$COMMITS" "403 too large: the commits acknowledged (the refused event is dead-lettered)"
if no_key "$W/toolarge.dl" "$W/err"; then pass "403 too large: the key is not in the dead-letter file nor the log"
else fail "403 too large: the key is not in the dead-letter file nor the log"; fi
stub_stop

# refused without --dead-letter: exit 9, nothing acknowledged, one request
refused() {
	local name=$1 answer=$2 want=$3
	stub "$name" --script-file "$(script "$name" "$answer")"
	ack_open
	pub 10 "$IN" --target servicebus --credentials-env SB_CONN --ack-fifo "$W/ack" "$BASE/cdc-events"
	ack_close
	is "$RC $(nreq) ${ACKS:-none}" "9 1 none" "$name: refused: exit 9 after one request, nothing acknowledged"
	like "$(cat "$W/err")" "level=error .*msg=\"(refused by the queue for a reason no event can mend, stopping without acknowledging|rejected by the queue, stopping without acknowledging it)\".* http_status=${answer%%:*} error=\"$want" \
		"$name: the reason logged"
	if no_key "$W/err"; then pass "$name: the key is not logged"; else fail "$name: the key is not logged"; fi
	stub_stop
}
refused 410 '410:body=<Error><Code>410</Code><Detail>The messaging entity '"'"'sb://contoso.servicebus.windows.net/cdc-events'"'"' could not be found. TrackingId:1</Detail></Error>' \
	"the entity does not exist \(HTTP 410: The messaging entity 'sb://contoso.servicebus.windows.net/cdc-events' could not be found"
refused 404 '404:body=<Error><Code>404</Code><Detail>The messaging entity could not be found. MessagingEntityNotFound. TrackingId:2</Detail></Error>' \
	'the entity does not exist \(HTTP 404: The messaging entity could not be found. MessagingEntityNotFound'
refused 401 '401:body=<Error><Code>401</Code><Detail>InvalidSignature: The token has an invalid signature. TrackingId:3</Detail></Error>' \
	'HTTP 401: InvalidSignature: The token has an invalid signature'
refused 403-claim "403:body=<Error><Code>403</Code><Detail>Unauthorized access. 'Send' claim(s) are required to perform this operation. TrackingId:4</Detail></Error>" \
	"HTTP 403: Unauthorized access. 'Send' claim\(s\) are required"
refused 200 '200:body={"ok":true}' 'HTTP 200: \{'

# ---------------------------------------------------------------- throttling, a full entity

THROTTLED='<Error><Code>503</Code><Detail>The request was terminated because the namespace contoso is being throttled. Error code : 50009. Please wait 2 seconds and try again. TrackingId:5</Detail></Error>'
FULL="<Error><Code>403</Code><Detail>The maximum entity size has been reached or exceeded for Queue: 'CONTOSO:QUEUE:CDC-EVENTS'. Size of entity in bytes:1073760756, Max entity size in bytes: 1073741824. TrackingId:6</Detail></Error>"
stub throttle --script-file "$(script throttle "503:body=$THROTTLED" "403:body=$FULL")"
ack_open
pub 20 "$W/one.in" --target servicebus --credentials-env SB_CONN --ack-fifo "$W/ack" "$BASE/cdc-events"
ack_close
is "$RC $(nreq)" "0 3" "503 50009, then 403 entity full: retried, delivered on the third attempt"
is "$(bodies | sort -u)" "$(cat "$W/one.in")" "throttled: the same body each attempt"
g1=$(gap_ms 1 2) g2=$(gap_ms 2 3)
if [ "$g1" -ge 2000 ] && [ "$g2" -ge 2000 ]; then pass "throttled: no attempt sooner than 2 s after the last ($g1 ms, $g2 ms)"
else fail "throttled: no attempt sooner than 2 s after the last" "$g1 ms, $g2 ms"; fi
like "$(cat "$W/err")" 'msg="delivery failed, will retry".* http_status=403 error="entity full, waiting for consumers' "entity full: logged as a wait"
stub_stop

# 429 is retried at the usual pace; Retry-After honoured
stub ratelimit --script 429,429:retry-after=1
pub 20 "$W/one.in" --target servicebus --credentials-env SB_CONN "$BASE/cdc-events"
g1=$(gap_ms 1 2) g2=$(gap_ms 2 3)
if [ "$RC" = 0 ] && [ "$(nreq)" = 3 ] && [ "$g1" -lt 1000 ] && [ "$g2" -ge 1000 ]; then
	pass "429: retried after the usual backoff ($g1 ms), then after Retry-After: 1 ($g2 ms)"
else fail "429: retried, Retry-After honoured" "exit $RC, $(nreq) requests, gaps $g1 ms, $g2 ms"; fi
stub_stop

# ---------------------------------------------------------------- the entity, usage errors

stub entitypath
pub 10 "$W/one.in" --target servicebus --credentials-env EH_CONN "$BASE/"
is "$RC $(jq -r .path "$LOG")" "0 /hub/messages" "a namespace URL: the entity is the connection string's EntityPath"
is "$(check_sas "$BASE/hub")" ok "EntityPath: the token is for that entity"
stub_stop

usage() {
	local name=$1 want=$2
	shift 2
	pub 10 "$W/one.in" "$@"
	is "$RC" 2 "usage: $name: exit 2"
	like "$(cat "$W/err")" "$want" "usage: $name: says why"
}
usage "no credentials" 'the servicebus target needs --credentials-env or --credentials-file' \
	--target servicebus http://127.0.0.1:9/q
usage "no entity" 'names no queue or topic and the connection string has no EntityPath' \
	--target servicebus --credentials-env SB_CONN http://127.0.0.1:9/
usage "URL and EntityPath differ" 'names "other" but the connection string.s EntityPath is "hub"' \
	--target eventhubs --credentials-env EH_CONN http://127.0.0.1:9/other/messages
usage "--body" 'writes its own body' --target servicebus --credentials-env SB_CONN --body array http://127.0.0.1:9/q
export BARE=$KEY
usage "a bare key" 'could not read the servicebus credentials: not a connection string' \
	--target servicebus --credentials-env BARE http://127.0.0.1:9/q
if no_key "$W/err"; then pass "usage: a bare key is not echoed"; else fail "usage: a bare key is not echoed"; fi
usage "sb:// URL" 'is not http://, https://' --target servicebus --credentials-env SB_CONN sb://contoso.servicebus.windows.net/q

# ---------------------------------------------------------------- Event Hubs

stub hubs
ack_open
pub 10 "$IN" --target eventhubs --credentials-env EH_CONN --batch 100 --ack-fifo "$W/ack" "$BASE/hub/messages"
ack_close
is "$RC" 0 "eventhubs: exit 0"
is "$(jq -r '.method + " " + .path' "$LOG" | sort -u)" "POST /hub/messages" "eventhubs: POST to HUB/messages"
is "$(header Content-Type | sort -u)" "application/vnd.microsoft.servicebus.json" "eventhubs: the batch content type"
is "$(jq -r '.body | fromjson | .[].Body' "$LOG")" "$(cat "$W/events")" "eventhubs: each Body an event line, in order"
is "$(jq -r '.body | fromjson | .[].BrokerProperties | "\(.MessageId) \(.PartitionKey)"' "$LOG" | paste -sd' ')" \
	"0/2A24F28:e289ab411c1930ae e289ab411c1930ae 0/2A25088:0 fc3eccdce31b5dd8 0/2A25088:1 fc3ecddce31b5e25 0/2A253A8:0 fc3eccdce31b5dd8 0/2A253A8:1 fc3ec8dce31b56a4 0/2A253A8:2 fc3ecddce31b5e25 0/2A26D48:0 fc3ec9dce31b58f1" \
	"eventhubs: PartitionKey the row's ordering key by default, MessageId the event's"
is "$(check_sas "$BASE/hub")" ok "eventhubs: a SAS token for the hub"
is "$ACKS" "$COMMITS" "eventhubs: every commit acknowledged"
stub_stop

stub hubs-none
pub 10 "$W/one.in" --target eventhubs --credentials-env EH_CONN --ordering-key none "$BASE/hub"
is "$RC $(header BrokerProperties)" '0 {"MessageId":"0/2A24F28:e289ab411c1930ae"}' "eventhubs: --ordering-key none: no PartitionKey"
stub_stop

stub hubs-500 --script 500
pub 20 "$W/one.in" --target eventhubs --credentials-env EH_CONN "$BASE/hub"
g1=$(gap_ms 1 2)
if [ "$RC" = 0 ] && [ "$(nreq)" = 2 ] && [ "$g1" -ge 2000 ]; then pass "eventhubs: 500 retried no sooner than 2 s ($g1 ms)"
else fail "eventhubs: 500 retried no sooner than 2 s" "exit $RC, $(nreq) requests, gap ${g1:-?} ms"; fi
stub_stop

stub hubs-401 --script-file "$(script hubs-401 '401:body=<Error><Code>401</Code><Detail>ExpiredToken: The token is expired. TrackingId:7</Detail></Error>')"
pub 10 "$W/one.in" --target eventhubs --credentials-env EH_CONN --dead-letter "$W/hubs.dl" "$BASE/hub"
is "$RC $(nreq)" "9 1" "eventhubs: 401 stops with exit 9, even with --dead-letter (no event can mend credentials)"
is "$(cat "$W/hubs.dl" 2>/dev/null)" "" "eventhubs: 401: nothing dead-lettered"
like "$(cat "$W/err")" 'status=401 error="HTTP 401: ExpiredToken: The token is expired. TrackingId:7"' \
	"eventhubs: 401: the reason logged"
stub_stop

done_testing
