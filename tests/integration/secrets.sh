#!/usr/bin/env bash
# Secrets never leave where they were put: a pipeline run with a database
# password (PGPASSFILE), basic credentials and a bearer token for the queue,
# a refused event (dead-lettered), a failed login, --dry-run, metrics files,
# status lines and JSON logs; then every log, metrics file, dead-letter file,
# dry-run output and every process's argv is searched for each secret.
set -u
source "$(dirname "$0")/../lib/testlib.sh"
source "$TOP/tests/lib/pgcluster.sh"
FILTER=$TOP/cdc-filter/cdc-filter
PUBLISH=$TOP/cdc-publish/cdc-publish
STUB=$TOP/tests/lib/httpstub.py
T=$(mktemp -d /tmp/pgcdc-secrets.XXXXXX)
cleanup() {
	local p
	for p in $(jobs -p); do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	pg_stop
	rm -rf "$T"
}
trap cleanup EXIT
chmod 755 "$T"
DBPW=dbpw-K7q2-s3cret
BASIC_PW=basic-Z9x4-s3cret
BEARER=bearer-M3w8-s3cret
pg_start "$T/pg" "$(free_port)" "timezone = 'UTC'" || exit 1
sql "CREATE TABLE t (id int PRIMARY KEY, v text);
     CREATE ROLE cdc LOGIN REPLICATION SUPERUSER PASSWORD '$DBPW'" >/dev/null
printf '127.0.0.1:%s:*:cdc:%s\n' "$PGTEST_PORT" "$DBPW" >"$T/pgpass"
printf 'queue-user:%s\n' "$BASIC_PW" >"$T/basic"
chmod 600 "$T/pgpass" "$T/basic"
export PGPASSFILE=$T/pgpass
CDC="host=127.0.0.1 port=$PGTEST_PORT dbname=postgres user=cdc"

"$PG_CAPTURE" -d "$CDC" -S sec --create-slot --endpos "$(sql "SELECT pg_current_wal_lsn()")" >/dev/null 2>"$T/create.log" ||
	fail "create slot" "$(cat "$T/create.log")"
sql "INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c')" >/dev/null
end=$(sql "SELECT pg_current_wal_lsn()")

# the stub refuses the second request for good (400): a dead letter
python3 "$STUB" --port 0 --port-file "$T/port" --log "$T/stub.log" --script '200,400:body=no' --max-time 120 \
	2>"$T/stub.err" &
wait_for 10 test -s "$T/port"
URL=http://127.0.0.1:$(cat "$T/port")/events
mkfifo -m 600 "$T/ack"
(timeout -k 5 60 "$PG_CAPTURE" -d "$CDC" -S sec --ack-fifo "$T/ack" \
		--metrics-file "$T/capture.prom" --log-format json 2>"$T/capture.log" |
	timeout -k 5 60 "$FILTER" --metrics-file "$T/filter.prom" 2>"$T/filter.log" |
	BEARER_TOKEN=$BEARER timeout -k 5 60 "$PUBLISH" --ack-fifo "$T/ack" --bearer-env BEARER_TOKEN \
		--dead-letter "$T/dead.jsonl" --metrics-file "$T/publish.prom" "$URL" >/dev/null 2>"$T/publish.log") &
PIPE=$!
# once it has delivered everything: every process's argv, a status line from
# each stage, then a stop
delivered() { [ -s "$T/dead.jsonl" ] && [ "$(wc -l <"$T/stub.log")" -ge 3 ]; }
wait_for 30 delivered
for p in $(pgrep -f -- "$T"); do
	tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null
	echo
done >"$T/argv.txt"
is "$(grep -oE '/(pg-capture|cdc-filter|cdc-publish) ' "$T/argv.txt" | sort -u | tr -d '/ ' | tr '\n' ' ')" \
	"cdc-filter cdc-publish pg-capture " "the three stages' command lines were read"
for prog in pg-capture cdc-filter cdc-publish; do pkill -USR1 -f "^$TOP/$prog/$prog " 2>/dev/null; done
status_lines() { [ "$(cat "$T/capture.log" "$T/filter.log" "$T/publish.log" | grep -c 'status')" -ge 3 ]; }
wait_for 10 status_lines
pkill -TERM -f "^$PG_CAPTURE -d .* -S sec --ack-fifo"
wait_exit "$PIPE" 60
is "$RC" 0 "the pipeline ran and stopped cleanly"
is "$(wc -l <"$T/dead.jsonl" | tr -d ' ')" 1 "one event dead-lettered"
like "$(jq -r '.headers[] | select(.[0] == "Authorization") | .[1]' "$T/stub.log" | head -1)" "^Bearer $BEARER\$" \
	"the queue did get the bearer token (the secret was used)"

# --dry-run with basic credentials
printf '%s\n' '{"op":"insert","schema":"public","table":"t","id":"0/1:0","lsn":"0/1","xid":1,"ts":"2026-11-24T14:31:06.000000Z","key":{"id":1},"new":{"id":1}}' |
	timeout -k 5 20 "$PUBLISH" --dry-run --basic-file "$T/basic" "$URL" >"$T/dryrun.out" 2>"$T/dryrun.log"
is "$?" 0 "--dry-run with basic credentials: exit 0"
like "$(cat "$T/dryrun.out")" 'Authorization: \[redacted' "--dry-run shows the header, redacted"
# a login refused: the error names the role, not the password
printf '127.0.0.1:%s:*:cdc:wrong-%s\n' "$PGTEST_PORT" "$DBPW" >"$T/pgpass"
timeout -k 5 20 "$PG_CAPTURE" -d "$CDC" -S sec >/dev/null 2>"$T/badlogin.log"
is "$?" 5 "a wrong password: status 5"
like "$(grep level=error "$T/badlogin.log" | head -1)" 'password authentication failed for user ..cdc' "says so, naming the role"

leaks=""
# (stub.log is the queue's side: it must have the token)
for f in $(ls "$T"/*.log | grep -v /stub.log) "$T"/*.prom "$T/dead.jsonl" "$T/dryrun.out" "$T/argv.txt"; do
	for s in "$DBPW" "$BASIC_PW" "$BEARER"; do
		grep -qF -- "$s" "$f" && leaks="$leaks $(basename "$f"):${s%%-*}"
	done
done
is "$leaks" "" "no secret in any log, metrics file, dead-letter file, --dry-run output or argv"
# the search can find a secret where there is one
printf 'x %s x\n' "$BEARER" >"$T/control.txt"
if grep -qF -- "$BEARER" "$T/control.txt"; then pass "the search finds a secret that is there (control)"
else fail "the search finds a secret that is there (control)"; fi
done_testing
