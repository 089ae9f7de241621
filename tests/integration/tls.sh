#!/usr/bin/env bash
# cdc-publish over HTTPS against tests/lib/httpstub.py in TLS mode, with a
# throwaway PKI made here by the openssl CLI (EC P-256, valid two days,
# deleted at exit): --cacert with the right CA delivers and acknowledges;
# the system trust store, another CA, a certificate for another name and a
# self-signed one are all refused before any request is sent, with a line
# saying it is a certificate problem, the documented exit status 4 within
# --retry-max-time, and nothing acknowledged; --insecure delivers anyway
# but says so loudly; credentials go over TLS and never into the logs.
#
#   bash tests/integration/tls.sh      (after make; no database needed)
#
# CDC_PUBLISH=PATH tests another build; OPENSSL=PATH another openssl.
set -u
source "$(dirname "$0")/../lib/testlib.sh"
PUB=${CDC_PUBLISH:-$TOP/cdc-publish/cdc-publish}
STUB=$TOP/tests/lib/httpstub.py
OPENSSL=${OPENSSL:-/usr/bin/openssl}
[ -x "$PUB" ] || { echo "not ok - $PUB not built (make)"; exit 1; }
[ -x "$OPENSSL" ] || { echo "not ok - $OPENSSL is needed to make the test certificates"; exit 1; }
command -v jq >/dev/null || { echo "not ok - jq is needed"; exit 1; }

W=$(mktemp -d /tmp/pgcdc-tls.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$W"' EXIT	# stubs, ack readers: jobs of this shell
# "the system trust store" must mean the built-in one, whatever the caller has set
unset SSL_CERT_FILE SSL_CERT_DIR CURL_CA_BUNDLE

indent() { sed 's/^/#     /' | cut -c1-300; }

# ------------------------------------------------------------------ the PKI

P=$W/pki
mkdir -m 700 "$P"
# ca NAME CN: a self-signed CA certificate $P/NAME.pem with key $P/NAME.key
ca() {
	"$OPENSSL" req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$P/$1.key" -out "$P/$1.pem" -days 2 -subj "/CN=$2" \
		-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
}
# leaf NAME CA CN SAN: a server certificate $P/NAME.pem (key $P/NAME.key) for SAN, signed by CA
leaf() {
	printf 'subjectAltName=%s\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' \
		"$4" >"$P/$1.ext"
	"$OPENSSL" req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$P/$1.key" -out "$P/$1.csr" -subj "/CN=$3" &&
		"$OPENSSL" x509 -req -in "$P/$1.csr" -CA "$P/$2.pem" -CAkey "$P/$2.key" -CAcreateserial \
			-CAserial "$P/$2.srl" -days 2 -extfile "$P/$1.ext" -out "$P/$1.pem"
}
# selfsigned NAME CN SAN: a self-signed server certificate (no CA behind it)
selfsigned() {
	"$OPENSSL" req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$P/$1.key" -out "$P/$1.pem" -days 2 -subj "/CN=$2" -addext "subjectAltName=$3"
}
if {
	ca ca "pgcdc test CA" &&
		ca otherca "pgcdc unrelated CA" &&
		leaf server ca 127.0.0.1 "IP:127.0.0.1,DNS:localhost" &&
		leaf othername ca other.example "DNS:other.example" &&
		selfsigned self 127.0.0.1 "IP:127.0.0.1,DNS:localhost"
} >"$W/openssl.out" 2>&1 &&
	"$OPENSSL" verify -CAfile "$P/ca.pem" "$P/server.pem" "$P/othername.pem" >>"$W/openssl.out" 2>&1 &&
	! "$OPENSSL" verify -CAfile "$P/otherca.pem" "$P/server.pem" >>"$W/openssl.out" 2>&1; then
	pass "openssl made a test CA, a server certificate for 127.0.0.1 and localhost, one for other.example, an unrelated CA and a self-signed certificate"
else
	fail "openssl makes the test certificates" "$(tail -5 "$W/openssl.out")"
	done_testing
	exit 1
fi

# ------------------------------------------------------------------ helpers

# stub NAME CERT [httpstub OPTIONS]: start an HTTPS stub serving $P/CERT.pem,
# logging requests to $W/NAME.log (TLS handshake failures to $W/NAME.stub.err);
# sets LOG, PORT, URL (https://127.0.0.1:PORT/events) and STUB_PID
stub() {
	local name=$1 cert=$2
	shift 2
	LOG=$W/$name.log
	SERR=$W/$name.stub.err
	rm -f "$LOG" "$W/$name.port"
	python3 "$STUB" --port 0 --port-file "$W/$name.port" --log "$LOG" --max-time 120 \
		--tls-cert "$P/$cert.pem" --tls-key "$P/$cert.key" "$@" 2>"$SERR" &
	STUB_PID=$!
	if wait_for 10 test -s "$W/$name.port"; then
		PORT=$(cat "$W/$name.port")
	else
		fail "httpstub $name starts with TLS" "$(cat "$SERR")"
		PORT=9
	fi
	URL=https://127.0.0.1:$PORT/events
}
stub_stop() { kill "$STUB_PID" 2>/dev/null; wait "$STUB_PID" 2>/dev/null; }

# pub LIMIT INPUT ARGS...: cdc-publish ARGS <INPUT under timeout LIMIT,
# stdout in $W/out and stderr in $W/err; sets RC (124: killed) and MS (elapsed)
pub() {
	local limit=$1 input=$2 t0
	shift 2
	t0=$(date +%s%N)
	timeout -k 2 "$limit" "$PUB" "$@" <"$input" >"$W/out" 2>"$W/err"
	RC=$?
	MS=$((($(date +%s%N) - t0) / 1000000))
}

# ack_open: a FIFO $W/ack read into $W/acks by a background reader (at most 30 s)
ack_open() {
	rm -f "$W/ack" "$W/acks"
	mkfifo -m 600 "$W/ack"
	timeout 30 cat "$W/ack" >"$W/acks" &
	ACK_PID=$!
}
# ack_close: wait (5 s at most) for the reader to see the writer go; sets ACKS (RC is kept)
ack_close() {
	local rc=$RC
	wait_exit "$ACK_PID" 5
	RC=$rc
	ACKS=$(cat "$W/acks" 2>/dev/null)
}

# gen NTX PER_TX: NTX transactions of PER_TX inserts into public.t
gen() {
	python3 - "$@" <<'EOF'
import sys
ntx, per = map(int, sys.argv[1:3])
ts = "2026-11-24T14:31:06.000000Z"
for t in range(1, ntx + 1):
    c = 0x1000000 + t * 0x1000
    cl = "0/%X" % c
    print('{"op":"begin","xid":%d,"lsn":"0/%X","commit_lsn":"%s","ts":"%s"}' % (1000 + t, c - 0x800, cl, ts))
    for j in range(per):
        print('{"op":"insert","schema":"public","table":"t","id":"%s:%d","lsn":"0/%X","xid":%d,"ts":"%s",'
              '"key":{"id":%d},"new":{"id":%d,"v":"tx%04d.%03d"}}' % (cl, j, c - 0x800 + j * 8, 1000 + t, ts, j, j, t, j))
    print('{"op":"commit","xid":%d,"lsn":"0/%X","commit_lsn":"%s","ts":"%s"}' % (1000 + t, c + 0x30, cl, ts))
EOF
}
published() { grep -v -e '^{"op":"begin"' -e '^{"op":"commit"' "$1"; }
commits() { grep '^{"op":"commit"' "$1" | jq -r .lsn; }
bodies() { jq -r .body "$LOG"; }
nreq() { if [ -f "$LOG" ]; then wc -l <"$LOG" | tr -d ' '; else echo 0; fi; }
header() { jq -r --arg h "$1" '[.headers[] | select(.[0] | ascii_downcase == ($h | ascii_downcase)) | .[1]] | join(",")' "$LOG"; }
handshake_failures() { grep -c '^httpstub: TLS handshake failed' "$SERR"; }

gen 3 2 >"$W/in"	# 6 events in 3 transactions
published "$W/in" >"$W/events"
NEV=$(wc -l <"$W/events" | tr -d ' ')
# a failing case gives up after 1 s of retries; 5 s is far more than that
FAST=(--retry-max-time 1 --retry-max-delay 0.2 --timeout 5)

# refused CASE: the assertions shared by every certificate cdc-publish must
# not accept, after a run with --ack-fifo: exit 4 within about
# --retry-max-time, one error line saying why (a certificate problem),
# nothing sent, nothing acknowledged
refused() {
	local c=$1 giveup
	is "$RC" 4 "$c: exit 4 (the queue stayed unreachable past --retry-max-time)"
	if [ "$MS" -le 5000 ]; then pass "$c: gave up within --retry-max-time 1 (${MS} ms)"; else fail "$c: gave up within --retry-max-time 1" "${MS} ms"; fi
	giveup=$(grep 'level=error' "$W/err" | grep -v 'msg=exiting')
	is "$(printf '%s' "$giveup" | grep -c .)" 1 "$c: one error line (besides the exit line)"
	like "$giveup" 'msg="giving up: delivery kept failing past --retry-max-time" .*error="[^"]*([Cc]ertificate|SSL|TLS)' \
		"$c: the error line says it is a TLS certificate problem"
	like "$(grep 'level=warn' "$W/err" | head -1)" 'msg="delivery failed, will retry" .*error="[^"]*([Cc]ertificate|SSL|TLS)' \
		"$c: each failed attempt is logged with the certificate problem"
	is "$(nreq)" 0 "$c: no request reached the server"
	is "$ACKS" "" "$c: nothing acknowledged"
	like "$(tail -1 "$W/err")" 'level=error .*msg=exiting delivered=0 .*acknowledged=0/0' "$c: exit line: nothing delivered or acknowledged"
	[ $RC = 4 ] || grep -v '^ts=.*msg="delivery failed, will retry"' "$W/err" | head -5 | indent
}

# ------------------------------------------- (a) --cacert with the right CA

stub good server
ack_open
pub 20 "$W/in" --ack-fifo "$W/ack" --cacert "$P/ca.pem" "$URL"
ack_close
is "$RC" 0 "--cacert CA: exit 0 at end of input"
is "$(nreq)" "$NEV" "--cacert CA: one POST per event ($NEV)"
is "$(bodies)" "$(cat "$W/events")" "--cacert CA: the bodies are exactly the event lines, in order"
is "$(jq -r '.method + " " + .path' "$LOG" | sort -u)" "POST /events" "--cacert CA: POST to the URL's path"
is "$(jq -s 'map(.conn) | unique | length' "$LOG")" 1 "--cacert CA: one keep-alive TLS connection for all requests"
is "$ACKS" "$(commits "$W/in")" "--cacert CA: every commit acknowledged, in order"
is "$(grep -c 'level=\(warn\|error\)' "$W/err")" 0 "--cacert CA: no warning or error logged"
is "$(handshake_failures)" 0 "--cacert CA: no failed TLS handshake"
[ "$RC" = 0 ] || indent <"$W/err"
stub_stop

# the certificate's DNS name works too (localhost may be ::1 first: the stub is on 127.0.0.1 only)
if getent hosts localhost >/dev/null; then
	stub localhost server
	pub 20 "$W/in" --cacert "$P/ca.pem" "https://localhost:$PORT/events"
	is "$RC/$(nreq)" "0/$NEV" "--cacert CA, https://localhost: matches the DNS name, exit 0, $NEV requests"
	stub_stop
else
	pass "--cacert CA, https://localhost: skipped, localhost does not resolve here"
fi

# ------------------------------- (e) --insecure: delivers, but says so loudly

# a certificate that fails every check: unknown CA and another name
stub insecure othername
ack_open
pub 20 "$W/in" --ack-fifo "$W/ack" --insecure "$URL"
ack_close
is "$RC" 0 "--insecure: exit 0"
is "$(bodies)" "$(cat "$W/events")" "--insecure: every event delivered, in order"
is "$ACKS" "$(commits "$W/in")" "--insecure: every commit acknowledged"
is "$(grep -c 'level=warn .*TLS certificate verification is OFF (--insecure): anyone on the path can read and change events' "$W/err")" 1 \
	"--insecure: one warn line: \"TLS certificate verification is OFF (--insecure): anyone on the path can read and change events\""
like "$(head -1 "$W/err")" 'level=warn .*verification is OFF' "--insecure: the warning is the first line logged"
stub_stop

# ---------------------------- (b) no --cacert: the system trust store refuses

stub system server
ack_open
pub 20 "$W/in" --ack-fifo "$W/ack" "${FAST[@]}" "$URL"
ack_close
refused "no --cacert (system trust store)"
like "$(grep level=error "$W/err" | head -1)" 'error="SSL certificate problem: unable to get local issuer certificate"' \
	"no --cacert: the error is curl's \"unable to get local issuer certificate\""
if [ "$(handshake_failures)" -ge 1 ]; then pass "no --cacert: the client got to the TLS handshake and refused the certificate"; else fail "no --cacert: the stub saw a refused TLS handshake" "$(head -3 "$SERR")"; fi
stub_stop

# ------------------------------------------------- (c) --cacert another CA

stub wrongca server
ack_open
pub 20 "$W/in" --ack-fifo "$W/ack" --cacert "$P/otherca.pem" "${FAST[@]}" "$URL"
ack_close
refused "--cacert an unrelated CA"
like "$(grep level=error "$W/err" | head -1)" 'error="SSL certificate problem: unable to get local issuer certificate"' \
	"--cacert an unrelated CA: the error is curl's \"unable to get local issuer certificate\""
if [ "$(handshake_failures)" -ge 1 ]; then pass "--cacert an unrelated CA: the client got to the TLS handshake and refused the certificate"; else fail "--cacert an unrelated CA: the stub saw a refused TLS handshake" "$(head -3 "$SERR")"; fi
stub_stop

# --------------------- (d) a certificate of the right CA for another name

stub mismatch othername
ack_open
pub 20 "$W/in" --ack-fifo "$W/ack" --cacert "$P/ca.pem" "${FAST[@]}" "$URL"
ack_close
refused "hostname mismatch (certificate for other.example, URL 127.0.0.1)"
like "$(grep level=error "$W/err" | head -1)" "error=\"[^\"]*(subject name|does not match|match target host)[^\"]*127\\.0\\.0\\.1" \
	"hostname mismatch: the error says the name does not match 127.0.0.1"
stub_stop

# ---------------------------------- a self-signed certificate, then pinned

stub self self
ack_open
pub 20 "$W/in" --ack-fifo "$W/ack" "${FAST[@]}" "$URL"
ack_close
refused "self-signed certificate, no --cacert"
like "$(grep level=error "$W/err" | head -1)" 'error="SSL certificate problem: self.signed certificate' \
	"self-signed certificate: the error says so"
stub_stop
stub pinned self
pub 20 "$W/in" --cacert "$P/self.pem" "$URL"
is "$RC/$(nreq)" "0/$NEV" "self-signed certificate given as --cacert (pinned): exit 0, $NEV requests"
stub_stop

# ---------------------------- (f) credentials go over TLS, never into logs

TOKEN="tls-bearer-$RANDOM$RANDOM-s3cr3t"
BASIC="cdcuser:tls-basic-$RANDOM$RANDOM-pa55"
export TLS_TEST_TOKEN=$TOKEN TLS_TEST_BASIC=$BASIC
B64=$(printf '%s' "$BASIC" | base64 | tr -d '\n')
# leaks CASE: neither secret, nor the basic pair base64-encoded, in stdout or stderr
leaks() {
	if grep -qF -e "$TOKEN" -e "${BASIC#*:}" -e "$B64" "$W/err" "$W/out"; then
		fail "$1: the secret never appears in stderr or stdout" "$(grep -F -e "$TOKEN" -e "${BASIC#*:}" -e "$B64" "$W/err" "$W/out" | head -2)"
	else
		pass "$1: the secret never appears in stderr or stdout"
	fi
}

stub bearer server
pub 20 "$W/in" -v --bearer-env TLS_TEST_TOKEN --cacert "$P/ca.pem" "$URL"
is "$RC/$(nreq)" "0/$NEV" "--bearer-env over TLS: exit 0, $NEV requests"
is "$(header Authorization | sort -u)" "Bearer $TOKEN" "--bearer-env over TLS: every request carries the token"
leaks "--bearer-env over TLS, -v"
stub_stop

stub basic server
pub 20 "$W/in" -v --basic-env TLS_TEST_BASIC --cacert "$P/ca.pem" "$URL"
is "$RC/$(nreq)" "0/$NEV" "--basic-env over TLS: exit 0, $NEV requests"
is "$(header Authorization | sort -u)" "Basic $B64" "--basic-env over TLS: every request carries the basic credentials"
leaks "--basic-env over TLS, -v"
stub_stop

# refused certificates: the credentials are never sent, nor logged with the errors
stub bearerbad othername
pub 20 "$W/in" -v --bearer-env TLS_TEST_TOKEN "${FAST[@]}" --cacert "$P/ca.pem" "$URL"
is "$RC/$(nreq)" "4/0" "--bearer-env, certificate for another name: exit 4, the token never reached the server"
leaks "--bearer-env, refused certificate, -v"
stub_stop

stub basicbad server
pub 20 "$W/in" -v --basic-env TLS_TEST_BASIC "${FAST[@]}" "$URL"
is "$RC/$(nreq)" "4/0" "--basic-env, untrusted CA: exit 4, the credentials never reached the server"
leaks "--basic-env, refused certificate, -v"
stub_stop

# ------------------------------------- a --cacert file that is no CA file

# not a retryable failure: no answer from the queue can fix a missing
# file, so it is a usage error at start (status 2, like credentials not
# found), naming the file, not 4 after --retry-max-time of retries
stub badfile server
pub 20 "$W/in" --cacert "$W/no-such-ca.pem" --retry-max-time 3 --retry-max-delay 0.2 "$URL"
is "$RC" 2 "--cacert FILE missing: exit 2 (usage error), not retried until --retry-max-time"
if [ "$MS" -le 2000 ]; then pass "--cacert FILE missing: fails at start (${MS} ms)"; else fail "--cacert FILE missing: fails at start" "${MS} ms (--retry-max-time 3)"; fi
like "$(grep level=error "$W/err" | head -1)" "no-such-ca\\.pem" "--cacert FILE missing: the error names the file"
is "$(nreq)" 0 "--cacert FILE missing: nothing sent"
[ "$RC" = 2 ] || grep 'level=error' "$W/err" | head -2 | indent

printf -- '-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n' >"$W/garbled.pem"
pub 20 "$W/in" --cacert "$W/garbled.pem" --retry-max-time 3 --retry-max-delay 0.2 "$URL"
is "$RC/$(nreq)" "2/0" "--cacert FILE with a BEGIN/END block that is not base64: exit 2 at start, nothing sent"
pub 20 "$W/in" --cacert "$P/ca.key" --retry-max-time 3 --retry-max-delay 0.2 "$URL"
is "$RC" 2 "--cacert FILE with no certificate in it (a key): exit 2 (usage error), not retried"
like "$(grep level=error "$W/err" | head -1)" "ca\\.key" "--cacert FILE with no certificate: the error names the file"
[ "$RC" = 2 ] || grep 'level=error' "$W/err" | head -2 | indent
stub_stop

done_testing
