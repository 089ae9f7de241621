#!/usr/bin/env bash
# cdc-publish --target pubsub against tests/lib/httpstub.py scripted as
# Google's token endpoint and Pub/Sub's topics.publish (no local Pub/Sub
# server can be installed here): the service-account JWT (its claims
# decoded, its signature verified with openssl against the public key),
# the access token on every request, renewal, exact bodies, one ordering
# key per request, the emulator without Authorization, a --bearer-file
# read again when it changes, and each documented error answer.
#
#   bash tests/integration/pubsub.sh      (after make; no database needed)
set -u
source "$(dirname "$0")/../lib/testlib.sh"
PUB=${CDC_PUBLISH:-$TOP/cdc-publish/cdc-publish}
STUB=$TOP/tests/lib/httpstub.py
[ -x "$PUB" ] || { echo "not ok - $PUB not built (make)"; exit 1; }
command -v jq >/dev/null || { echo "not ok - jq is needed"; exit 1; }
command -v openssl >/dev/null || { echo "not ok - openssl is needed"; exit 1; }
unset PUBSUB_EMULATOR_HOST

W=$(mktemp -d /tmp/pgcdc-pubsub.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$W"' EXIT

# stub NAME [httpstub OPTIONS]: a stub logging to $W/NAME.log; sets LOG, PORT, STUB_PID
stub() {
	local name=$1
	shift
	LOG=$W/$name.log
	rm -f "$LOG" "$W/$name.port"
	python3 "$STUB" --port 0 --port-file "$W/$name.port" --log "$LOG" --max-time 120 "$@" 2>"$W/$name.stub.err" &
	STUB_PID=$!
	if wait_for 10 test -s "$W/$name.port"; then
		PORT=$(cat "$W/$name.port")
	else
		fail "httpstub $name starts" "$(cat "$W/$name.stub.err")"
		PORT=9
	fi
}
# token [httpstub OPTIONS]: the token endpoint (TLOG, TPORT, TPID); answers a token by default
token() {
	stub token --default '200:body={"access_token":"ya29.pubsub-test-token","expires_in":3600,"token_type":"Bearer"}' "$@"
	TLOG=$LOG TPORT=$PORT TPID=$STUB_PID
}
# topic [httpstub OPTIONS]: the publish endpoint (PLOG, PPORT, TOPIC_PID, TOPIC)
topic() {
	stub topic --default '200:body={"messageIds":["1"]}' "$@"
	PLOG=$LOG PPORT=$PORT TOPIC_PID=$STUB_PID
	TOPIC=http://127.0.0.1:$PPORT/v1/projects/pgcdc-test/topics/cdc
}
# says ACTION...: the publish endpoint answering these actions, then its default
says() {
	printf '%s\n' "$@" >"$W/pub.script"
	topic --script-file "$W/pub.script"
}
stubs_stop() { kill "$TPID" "$TOPIC_PID" 2>/dev/null; wait "$TPID" "$TOPIC_PID" 2>/dev/null; }

# pub LIMIT INPUT ARGS...: cdc-publish --target pubsub ARGS <INPUT; sets RC
pub() {
	local limit=$1 input=$2
	shift 2
	"$PUB" --target pubsub "$@" <"$input" >"$W/out" 2>"$W/err" &
	wait_exit $! "$limit"
}
nreq() { if [ -f "$1" ]; then wc -l <"$1" | tr -d ' '; else echo 0; fi; }
# header NAME LOG: the values of request header NAME, one line per request
header() { jq -r --arg h "$1" '[.headers[] | select(.[0] | ascii_downcase == ($h | ascii_downcase)) | .[1]] | join(",")' "$2"; }
published() { grep -v -e '^{"op":"begin"' -e '^{"op":"commit"' "$1"; }
# rows K...: one transaction of inserts into public.t, one per key K, in that order
rows() {
	python3 - "$@" <<'EOF'
import sys
keys = sys.argv[1:]
ts = "2026-11-24T14:31:06.000000Z"
print('{"op":"begin","xid":900,"lsn":"0/3000000","commit_lsn":"0/3001000","ts":"%s"}' % ts)
for j, k in enumerate(keys):
    print('{"op":"insert","schema":"public","table":"t","id":"0/3001000:%d","lsn":"0/%X","xid":900,"ts":"%s",'
          '"key":{"id":%s},"new":{"id":%s,"v":"r%d"}}' % (j, 0x3000000 + j * 8, ts, k, k, j))
print('{"op":"commit","xid":900,"lsn":"0/3001030","commit_lsn":"0/3001000","ts":"%s"}' % ts)
EOF
}
# messages LOG: each message of each request, "REQUEST ID KEY", the key "-" when absent,
# after checking that its data is exactly one input event (base64) and its id that event's
messages() {
	python3 - "$1" "$W/events" <<'EOF'
import base64, json, sys
events = [l.rstrip("\n") for l in open(sys.argv[2])]
for n, line in enumerate(open(sys.argv[1]), 1):
    body = json.loads(json.loads(line)["body"])
    for m in body["messages"]:
        data = base64.b64decode(m["data"]).decode()
        ok = data in events and json.loads(data)["id"] == m["attributes"]["id"] and list(m["attributes"]) == ["id"]
        print(n, m["attributes"]["id"] if ok else "BAD-DATA", m.get("orderingKey", "-"))
EOF
}

# a service-account key made for this run, its token_uri the stub
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$W/key.pem" 2>/dev/null
openssl pkey -in "$W/key.pem" -pubout -out "$W/pub.pem"
# keyfile TOKEN_URI: the JSON key file Google hands out, in $W/sa.json
keyfile() {
	python3 - "$W/key.pem" "$1" >"$W/sa.json" <<'EOF'
import json, sys
print(json.dumps({"type": "service_account", "project_id": "pgcdc-test", "private_key_id": "kid-0001",
                  "private_key": open(sys.argv[1]).read(), "client_email": "cdc@pgcdc-test.iam.gserviceaccount.com",
                  "client_id": "1", "token_uri": sys.argv[2]}))
EOF
}
KEYLINE=$(sed -n 2p "$W/key.pem")	# a line of the private key: must never be printed

rows 1 2 1 2 >"$W/in"
published "$W/in" >"$W/events"

# ---------------------------------------------- a service-account key: the JWT

token
topic
keyfile "http://127.0.0.1:$TPORT/token"
PGCDC_NOW=1800000000 pub 20 "$W/in" -v --credentials-file "$W/sa.json" "$TOPIC"
is "$RC" 0 "key: exit 0"
is "$(nreq "$TLOG")/$(nreq "$PLOG")" "1/4" "key: one token request, then 4 publish requests (the token cached)"
is "$(jq -r '.method + " " + .path' "$TLOG")" "POST /token" "key: the token request goes to the key's token_uri"
is "$(header Content-Type "$TLOG")" "application/x-www-form-urlencoded" "key: the token request is form-encoded"
jq -r .body "$TLOG" >"$W/grant"
like "$(cat "$W/grant")" '^grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$' \
	"key: grant_type jwt-bearer and the assertion"
python3 - "$W/grant" "$W" <<'EOF'
import base64, sys
jwt = open(sys.argv[1]).read().strip().split("assertion=")[1]
h, c, s = jwt.split(".")
d = lambda x: base64.urlsafe_b64decode(x + "=" * (-len(x) % 4))
open(sys.argv[2] + "/jwt.header", "wb").write(d(h))
open(sys.argv[2] + "/jwt.claims", "wb").write(d(c))
open(sys.argv[2] + "/jwt.signed", "w").write(h + "." + c)
open(sys.argv[2] + "/jwt.sig", "wb").write(d(s))
EOF
is "$(cat "$W/jwt.header")" '{"alg":"RS256","typ":"JWT","kid":"kid-0001"}' "key: JWT header RS256 with the key's id"
is "$(cat "$W/jwt.claims")" "{\"iss\":\"cdc@pgcdc-test.iam.gserviceaccount.com\",\"scope\":\"https://www.googleapis.com/auth/pubsub\",\"aud\":\"http://127.0.0.1:$TPORT/token\",\"iat\":1800000000,\"exp\":1800003600}" \
	"key: JWT claims: iss the account, the pubsub scope, aud the token_uri, iat now (PGCDC_NOW), exp an hour later"
is "$(openssl dgst -sha256 -verify "$W/pub.pem" -signature "$W/jwt.sig" "$W/jwt.signed" 2>&1)" "Verified OK" \
	"key: the JWT's signature verifies with the key's public half (openssl)"
is "$(header Authorization "$PLOG" | sort -u)" "Bearer ya29.pubsub-test-token" "key: every publish carries the access token"
is "$(jq -r '.method + " " + .path' "$PLOG" | sort -u)" "POST /v1/projects/pgcdc-test/topics/cdc:publish" "key: POST to TOPIC:publish"
is "$(header Content-Type "$PLOG" | sort -u)" "application/json" "key: Content-Type application/json"
messages "$PLOG" >"$W/msgs"
is "$(cut -d' ' -f1,2 "$W/msgs" | tr '\n' ' ')" "1 0/3001000:0 2 0/3001000:1 3 0/3001000:2 4 0/3001000:3 " \
	"key: one message a request (--batch 1), data the event in base64, attribute id the event id, in order"
k=($(cut -d' ' -f3 "$W/msgs"))
if [[ ${k[0]} =~ ^[0-9a-f]{16}$ ]] && [ "${k[0]}" = "${k[2]}" ] && [ "${k[1]}" = "${k[3]}" ] && [ "${k[0]}" != "${k[1]}" ]; then
	pass "key: orderingKey the row's: the same for one row, another for another"
else
	fail "key: orderingKey the row's" "${k[*]}"
fi
leaks=$(grep -c -e 'ya29' -e "$KEYLINE" -e 'eyJhbGciOi' "$W/err" "$W/out" | awk -F: '{s += $2} END {print s}')
is "$leaks" 0 "key: neither the token, the key nor the JWT is in stdout or stderr (-v)"
stubs_stop

# --------------------------------------------------- the token renewed, failing

# a token that lives 1 s is renewed before each request (renewed from half its life)
token --default '200:body={"access_token":"ya29.short","expires_in":1}'
topic
keyfile "http://127.0.0.1:$TPORT/token"
pub 20 "$W/in" --credentials-file "$W/sa.json" "$TOPIC"
is "$RC/$(nreq "$TLOG")/$(nreq "$PLOG")" "0/4/4" "renewal: a token about to expire is renewed before the request"
stubs_stop

# the token endpoint failing: retried, nothing published without a token
printf '%s\n' 500 '400:body={"error":"invalid_grant","error_description":"Invalid JWT Signature."}' >"$W/tok.script"
token --script-file "$W/tok.script"
topic
keyfile "http://127.0.0.1:$TPORT/token"
pub 20 "$W/in" --credentials-file "$W/sa.json" --retry-max-delay 0.2 "$TOPIC"
is "$RC/$(nreq "$TLOG")/$(nreq "$PLOG")" "0/3/4" "token endpoint 500, then 400: retried, 4 publishes once a token came"
like "$(cat "$W/err")" 'will retry.*token endpoint answered HTTP 400: invalid_grant: Invalid JWT Signature\.' \
	"token endpoint refusing: the retry log says why (error and error_description)"
stubs_stop

topic
keyfile "http://127.0.0.1:9/token"
pub 20 "$W/in" --credentials-file "$W/sa.json" --retry-max-time 1 --retry-max-delay 0.2 "$TOPIC"
is "$RC/$(nreq "$PLOG")" "4/0" "token endpoint unreachable: exit 4 after --retry-max-time, nothing published"
kill "$TOPIC_PID" 2>/dev/null; wait "$TOPIC_PID" 2>/dev/null

# -------------------------------------------------- batches: one ordering key each

rows 1 1 2 2 5 >"$W/in2"
published "$W/in2" >"$W/events"
printf '%s\n' '200:body={"messageIds":["a","b"]}' '200:body={"messageIds":["c","d"]}' >"$W/pub.script"
token
topic --script-file "$W/pub.script"
keyfile "http://127.0.0.1:$TPORT/token"
pub 20 "$W/in2" --credentials-file "$W/sa.json" --batch 10 "$TOPIC"
messages "$PLOG" >"$W/msgs"
is "$RC/$(nreq "$PLOG")" "0/3" "--batch 10, rows 1 1 2 2 5: exit 0, 3 requests"
is "$(awk '{print $1}' "$W/msgs" | uniq -c | awk '{print $1}' | tr '\n' ' ')" "2 2 1 " \
	"--batch 10: a request holds the messages of one ordering key (2, 2, 1)"
is "$(awk '{print $1, $3}' "$W/msgs" | sort -u | awk '{print $1}' | uniq -d | wc -l)" 0 "--batch 10: no request has two ordering keys"
stubs_stop

printf '%s\n' '200:body={"messageIds":["a","b","c","d","e"]}' >"$W/pub.script"
topic --script-file "$W/pub.script"
TOKENV='static-tok-3' pub 20 "$W/in2" --bearer-env TOKENV --batch 10 --ordering-key none "$TOPIC"
want=$(python3 - "$W/events" <<'EOF'
import base64, json, sys
ev = [l.rstrip("\n") for l in open(sys.argv[1])]
print(json.dumps({"messages": [{"data": base64.b64encode(e.encode()).decode(), "attributes": {"id": json.loads(e)["id"]}} for e in ev]}, separators=(",", ":")))
EOF
)
is "$RC/$(nreq "$PLOG")" "0/1" "--ordering-key none --batch 10: one request of 5"
is "$(jq -r .body "$PLOG")" "$want" "--ordering-key none: the exact body, no orderingKey"
is "$(header Authorization "$PLOG")" "Bearer static-tok-3" "--bearer-env: sent as it is"
kill "$TOPIC_PID" 2>/dev/null; wait "$TOPIC_PID" 2>/dev/null

# ------------------------------------------------------------------ the emulator

published "$W/in" >"$W/events"
token
topic
keyfile "http://127.0.0.1:$TPORT/token"
PUBSUB_EMULATOR_HOST=127.0.0.1:$PPORT pub 20 "$W/in" --credentials-file "$W/sa.json" projects/emu-project/topics/emu
is "$RC/$(nreq "$PLOG")/$(nreq "$TLOG")" "0/4/0" "emulator: exit 0, 4 publishes, no token asked for"
is "$(jq -r .path "$PLOG" | sort -u)" "/v1/projects/emu-project/topics/emu:publish" "emulator: http://PUBSUB_EMULATOR_HOST/v1/projects/P/topics/T:publish"
is "$(header Authorization "$PLOG" | sort -u)" "" "emulator: no Authorization"
stubs_stop

pub 5 "$W/in" projects/p/topics/t
is "$RC" 2 "projects/P/topics/T without credentials nor emulator: exit 2"
like "$(cat "$W/err")" 'needs --credentials-env/-file' "no credentials: says what is needed"
pub 5 "$W/in" --bearer-env HOME projects/p/subscriptions/s
is "$RC" 2 "not a topic: exit 2"
like "$(cat "$W/err")" 'does not name a Pub/Sub topic' "not a topic: says so"
printf '{"client_email":"a@b","token_uri":"https://oauth2.googleapis.com/token","private_key":"-----BEGIN PRIVATE KEY-----\\nMIIsecretsecret\\n-----END PRIVATE KEY-----\\n"}' >"$W/bad.json"
pub 5 "$W/in" --credentials-file "$W/bad.json" projects/p/topics/t
is "$RC" 2 "a key that is not one: exit 2"
like "$(cat "$W/err")" 'could not read the service-account key.*not a PEM private key' "a broken key: says why"
is "$(grep -c secretsecret "$W/err")" 0 "a broken key: not quoted"

# ------------------------------------------------------ --bearer-file read again

rows 1 2 >"$W/in3"
printf 'tok-AAAA\n' >"$W/bearer"
topic
mkfifo "$W/feed"
"$PUB" --target pubsub --bearer-file "$W/bearer" "$TOPIC" <"$W/feed" >"$W/out" 2>"$W/err" &
pid=$!
exec 6>"$W/feed"
sed -n 1,2p "$W/in3" >&6
wait_for 10 test "$(nreq "$PLOG")" -ge 1
printf 'tok-BBBBBBBB\n' >"$W/bearer.new"
mv "$W/bearer.new" "$W/bearer"
sed -n '3,$p' "$W/in3" >&6
exec 6>&-
wait_exit $pid 10
is "$RC/$(nreq "$PLOG")" "0/2" "--bearer-file: exit 0, 2 requests"
is "$(header Authorization "$PLOG" | tr '\n' ' ')" "Bearer tok-AAAA Bearer tok-BBBBBBBB " \
	"--bearer-file: the file read again once it changed, the new token on the next request"
like "$(cat "$W/err")" 'bearer token read again' "--bearer-file: says it read the file again"
is "$(grep -c 'tok-' "$W/err")" 0 "--bearer-file: the tokens are not logged"
kill "$TOPIC_PID" 2>/dev/null; wait "$TOPIC_PID" 2>/dev/null

# ------------------------------------------------------------- error answers

rows 1 >"$W/one"
published "$W/one" >"$W/events"
# googleerr CODE STATUS MESSAGE: Google's error body
googleerr() { printf '{"error":{"code":%s,"message":"%s","status":"%s"}}' "$1" "$3" "$2"; }

printf '%s\n' "429:body=$(googleerr 429 RESOURCE_EXHAUSTED 'quota')" "500:body=$(googleerr 500 INTERNAL x)" \
	"503:body=$(googleerr 503 UNAVAILABLE 'The service is unavailable')" "504:body=$(googleerr 504 DEADLINE_EXCEEDED x)" \
	'200:body={}' >"$W/pub.script"
topic --script-file "$W/pub.script"
pub 20 "$W/one" --bearer-env HOME --retry-max-delay 0.2 "$TOPIC"
is "$RC/$(nreq "$PLOG")" "0/6" "429, 500, 503, 504, then 200 without messageIds: all retried, delivered on the 6th"
like "$(cat "$W/err")" 'will retry.*UNAVAILABLE: The service is unavailable' "503: the retry log quotes Google's error"
like "$(cat "$W/err")" 'will retry.*HTTP 200 without a messageId' "200 without messageIds: retried, says why"
kill "$TOPIC_PID" 2>/dev/null; wait "$TOPIC_PID" 2>/dev/null

for c in "400 INVALID_ARGUMENT Invalid+resource+field+value+in+the+request." "403 PERMISSION_DENIED User+not+authorized+to+perform+this+action." \
		"404 NOT_FOUND Resource+not+found+(resource=cdc)."; do
	set -- $c
	msg=${3//+/ }
	says "$1:body=$(googleerr "$1" "$2" "$msg")"
	pub 20 "$W/one" --bearer-env HOME "$TOPIC"
	is "$RC/$(nreq "$PLOG")" "9/1" "$1 $2: refused at once (exit 9)"
	like "$(cat "$W/err")" "(rejected|refused) by the queue.*status=$1 .*$2: ${msg//[().]/.}" "$1: the log quotes the status and message"
	kill "$TOPIC_PID" 2>/dev/null; wait "$TOPIC_PID" 2>/dev/null
done

says "400:body=$(googleerr 400 INVALID_ARGUMENT 'bad message')"
pub 20 "$W/in" --bearer-env HOME --dead-letter "$W/dead" "$TOPIC"
is "$RC/$(nreq "$PLOG")" "0/4" "400 with --dead-letter: the event dead-lettered, the rest delivered"
is "$(jq -r '.id + " " + .dead_letter.error' "$W/dead")" "0/3001000:0 HTTP 400: INVALID_ARGUMENT: bad message" "400 with --dead-letter: that event is in the file with the reason"
kill "$TOPIC_PID" 2>/dev/null; wait "$TOPIC_PID" 2>/dev/null

# 401: a new token once, then a refusal
unauth="401:body=$(googleerr 401 UNAUTHENTICATED 'Request had invalid authentication credentials.')"
token
says "$unauth"
keyfile "http://127.0.0.1:$TPORT/token"
pub 20 "$W/one" --credentials-file "$W/sa.json" "$TOPIC"
is "$RC/$(nreq "$TLOG")/$(nreq "$PLOG")" "0/2/2" "401 with a key: the token dropped, a new one got, the publish retried"
stubs_stop
token
says "$unauth" "$unauth"
keyfile "http://127.0.0.1:$TPORT/token"
pub 20 "$W/one" --credentials-file "$W/sa.json" "$TOPIC"
is "$RC/$(nreq "$TLOG")/$(nreq "$PLOG")" "9/2/2" "401 twice in a row with a key: refused (exit 9) after one new token"
like "$(cat "$W/err")" '(rejected|refused) by the queue.*UNAUTHENTICATED' "401 twice: says UNAUTHENTICATED"
stubs_stop
says "$unauth"
pub 20 "$W/one" --bearer-env HOME "$TOPIC"
is "$RC/$(nreq "$PLOG")" "9/1" "401 with --bearer-env: refused at once (the token cannot change)"
kill "$TOPIC_PID" 2>/dev/null; wait "$TOPIC_PID" 2>/dev/null
says "$unauth"
pub 20 "$W/one" --bearer-file "$W/bearer" --retry-max-delay 0.2 "$TOPIC"
is "$RC/$(nreq "$PLOG")" "0/2" "401 with --bearer-file: tried once more with the file read again"
kill "$TOPIC_PID" 2>/dev/null; wait "$TOPIC_PID" 2>/dev/null

done_testing
