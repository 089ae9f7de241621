#!/usr/bin/env bash
# TLS to PostgreSQL: a test CA and a server certificate for "localhost"
# made here; pg-capture with sslmode=verify-full streams; an unrelated CA
# or a host name the certificate does not name is refused, said plainly at
# each attempt, and ends with status 4 past --retry-max-time.
set -u
source "$(dirname "$0")/../lib/testlib.sh"
source "$TOP/tests/lib/pgcluster.sh"
OPENSSL=${OPENSSL:-/usr/bin/openssl}
[ -x "$OPENSSL" ] || { echo "not ok - $OPENSSL is needed to make the test certificates"; exit 1; }
T=$(mktemp -d /tmp/pgcdc-pgtls.XXXXXX)
cleanup() {
	local p
	for p in $(jobs -p); do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	pg_stop
	rm -rf "$T"
}
trap cleanup EXIT
chmod 755 "$T"

P=$T/pki
mkdir -m 755 "$P"
ca() {
	"$OPENSSL" req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$P/$1.key" -out "$P/$1.pem" -days 2 -subj "/CN=$2" \
		-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
}
if {
	ca ca "pgcdc test CA" && ca otherca "pgcdc unrelated CA" &&
		printf 'subjectAltName=DNS:localhost\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' >"$P/server.ext" &&
		"$OPENSSL" req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
			-keyout "$P/server.key" -out "$P/server.csr" -subj "/CN=localhost" &&
		"$OPENSSL" x509 -req -in "$P/server.csr" -CA "$P/ca.pem" -CAkey "$P/ca.key" -CAcreateserial \
			-CAserial "$P/ca.srl" -days 2 -extfile "$P/server.ext" -out "$P/server.pem"
} >"$T/openssl.out" 2>&1; then
	pass "openssl made a test CA, a server certificate for localhost and an unrelated CA"
else
	fail "openssl makes the test certificates" "$(tail -5 "$T/openssl.out")"
	done_testing
	exit
fi
# the server reads its key as its own user, mode 0600
chmod 600 "$P/server.key"
[ "$(id -u)" = 0 ] && chown nobody:nogroup "$P/server.key" "$P/server.pem"
pg_start "$T/pg" "$(free_port)" "timezone = 'UTC'" "ssl = on" "ssl_cert_file = '$P/server.pem'" \
	"ssl_key_file = '$P/server.key'" || exit 1
sql "CREATE TABLE t (id int PRIMARY KEY)" >/dev/null

TLS="host=localhost port=$PGTEST_PORT dbname=postgres user=postgres sslmode=verify-full sslrootcert=$P/ca.pem"
"$PG_CAPTURE" -d "$TLS" -S tls --create-slot --endpos "$(sql "SELECT pg_current_wal_lsn()")" >/dev/null 2>"$T/create.log"
is "$?" 0 "sslmode=verify-full with the test CA: the slot is created"
sql "INSERT INTO t VALUES (1), (2)" >/dev/null
end=$(sql "SELECT pg_current_wal_lsn()")
timeout -k 5 60 "$PG_CAPTURE" -d "$TLS" -S tls >"$T/a.out" 2>"$T/a.log" &
pid=$!
two() { [ "$(grep -c '"op":"insert"' "$T/a.out")" = 2 ]; }
wait_for 20 two
is "$(grep -c '"op":"insert"' "$T/a.out")" 2 "verify-full: both rows streamed"
is "$(sql "SELECT s.ssl FROM pg_replication_slots r JOIN pg_stat_ssl s ON s.pid = r.active_pid WHERE r.slot_name = 'tls'")" t \
	"the server says the replication connection is TLS (pg_stat_ssl)"
kill -TERM $pid
wait_exit $pid 15
is "$RC" 0 "and stops cleanly"

# an unrelated CA: the certificate does not verify
BADCA=${TLS/sslrootcert=$P\/ca.pem/sslrootcert=$P/otherca.pem}
timeout -k 5 60 "$PG_CAPTURE" -d "$BADCA" -S tls --retry-max-time 1 >/dev/null 2>"$T/b.log"
is "$?" 4 "an unrelated CA: status 4 past --retry-max-time"
like "$(grep -m1 level=warn "$T/b.log")" 'could not connect.*certificate verify failed' "says the certificate did not verify"
# a host name the certificate does not name (it names localhost, not 127.0.0.1)
BADHOST=${TLS/host=localhost/host=127.0.0.1}
timeout -k 5 60 "$PG_CAPTURE" -d "$BADHOST" -S tls --retry-max-time 1 >/dev/null 2>"$T/c.log"
is "$?" 4 "a host name the certificate does not name: status 4"
like "$(grep -m1 level=warn "$T/c.log")" 'could not connect.*does not match host name' "says the name does not match"
is "$(sql "SELECT confirmed_flush_lsn >= '$end' FROM pg_replication_slots WHERE slot_name = 'tls'")" t \
	"the refused runs did not move the slot back or anywhere"
done_testing
