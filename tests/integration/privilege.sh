#!/usr/bin/env bash
# Least privilege: pg-capture as a role that has REPLICATION and SELECT on
# the published tables and nothing else (no superuser; the publication is
# made by the tables' owner): it creates its slot and streams; a snapshot
# needs a schema the owner gives it; what it may not do is refused with one
# line and status 5. The password comes from a PGPASSFILE, never argv.
set -u
source "$(dirname "$0")/../lib/testlib.sh"
source "$TOP/tests/lib/pgcluster.sh"
T=$(mktemp -d /tmp/pgcdc-privilege.XXXXXX)
cleanup() {
	local p
	for p in $(jobs -p); do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	pg_stop
	rm -rf "$T"
}
trap cleanup EXIT
chmod 755 "$T"
pg_start "$T/pg" "$(free_port)" "timezone = 'UTC'" "password_encryption = 'scram-sha-256'" || exit 1
# the owner: tables, the publication, and the grants the documentation lists
sql "CREATE ROLE app LOGIN;
     CREATE TABLE public.items (id int PRIMARY KEY, title text);
     CREATE TABLE public.payroll (id int PRIMARY KEY, salary int);
     ALTER TABLE public.items OWNER TO app; ALTER TABLE public.payroll OWNER TO app;
     CREATE PUBLICATION cdc_pub FOR TABLE public.items;
     ALTER PUBLICATION cdc_pub OWNER TO app;
     CREATE ROLE cdc LOGIN REPLICATION PASSWORD 'cdc-s3cret';
     GRANT SELECT ON public.items TO cdc;
     REVOKE CREATE ON SCHEMA public FROM PUBLIC;" >/dev/null
is "$(sql "SELECT rolsuper, rolreplication, rolcreatedb FROM pg_roles WHERE rolname = 'cdc'")" "f|t|f" \
	"role cdc: REPLICATION, not a superuser"
printf '127.0.0.1:%s:*:cdc:cdc-s3cret\n' "$PGTEST_PORT" >"$T/pgpass"
chmod 600 "$T/pgpass"
export PGPASSFILE=$T/pgpass
CDC="host=127.0.0.1 port=$PGTEST_PORT dbname=postgres user=cdc"

"$PG_CAPTURE" -d "$CDC" -S least --publication cdc_pub --create-slot --endpos "$(sql "SELECT pg_current_wal_lsn()")" \
	>/dev/null 2>"$T/create.log"
is "$?" 0 "the role creates its slot"
sql "INSERT INTO items VALUES (1, 'a'), (2, 'b'); INSERT INTO payroll VALUES (1, 100); UPDATE items SET title = 'c' WHERE id = 2" >/dev/null
end=$(sql "SELECT pg_current_wal_lsn()")
timeout -k 5 60 "$PG_CAPTURE" -d "$CDC" -S least --publication cdc_pub --endpos "$end" >"$T/a.out" 2>"$T/a.log"
is "$?" 0 "it streams to --endpos"
is "$(grep -o '"op":"[a-z]*","schema":"public","table":"[a-z]*"' "$T/a.out" | tr '\n' ' ')" \
	'"op":"schema","schema":"public","table":"items" "op":"insert","schema":"public","table":"items" "op":"insert","schema":"public","table":"items" "op":"update","schema":"public","table":"items" ' \
	"the published table's changes, nothing of the other"
is "$(grep -c 'level=error' "$T/a.log")" 0 "no error line"

# a snapshot keeps its progress in schema pgcdc: without it, one line and status 5
timeout -k 5 60 "$PG_CAPTURE" -d "$CDC" -S least --publication cdc_pub --snapshot-table public.items \
	--endpos "$(sql "SELECT pg_current_wal_lsn()")" >/dev/null 2>"$T/b.log"
is "$?" 5 "--snapshot-table without a schema to keep progress in: status 5"
is "$(grep -c 'level=error' "$T/b.log" | tr -d ' ')" 2 "one error line (and the exit line)"
like "$(grep -m1 level=error "$T/b.log")" 'permission denied' "it says permission denied"
# the owner gives it its schema: then the snapshot runs
sql "CREATE SCHEMA pgcdc AUTHORIZATION cdc" >/dev/null
timeout -k 5 60 "$PG_CAPTURE" -d "$CDC" -S least --publication cdc_pub --snapshot-table public.items \
	>"$T/c.out" 2>"$T/c.log" &
pid=$!
done_snap() { grep -q 'msg="snapshot of table done"' "$T/c.log"; }
wait_for 30 done_snap
kill -TERM $pid
wait_exit $pid 15
is "$RC" 0 "with schema pgcdc its own, the snapshot runs and stops cleanly"
is "$(grep -c '"op":"read"' "$T/c.out")" 2 "both rows read"

# a table it may not read, asked for a snapshot: refused, not read
sql "ALTER PUBLICATION cdc_pub ADD TABLE public.payroll" >/dev/null
timeout -k 5 60 "$PG_CAPTURE" -d "$CDC" -S least --publication cdc_pub --snapshot-table public.payroll \
	>"$T/d.out" 2>"$T/d.log" &
pid=$!
wait_exit $pid 30
is "$RC" 5 "a published table it may not SELECT, asked for a snapshot: status 5 (not tried again and again)"
is "$(grep -c level=error "$T/d.log" | tr -d ' ')" 2 "one error line (and the exit line)"
like "$(grep -m1 level=error "$T/d.log")" 'permission denied.*payroll.*hint="GRANT SELECT' \
	"it says permission denied for that table, and what to grant"
is "$(grep -c '"op":"read"' "$T/d.out")" 0 "and reads nothing of it"

# the password was never on a command line nor in a log
is "$(grep -l 'cdc-s3cret' "$T"/*.log "$T"/*.out 2>/dev/null | wc -l | tr -d ' ')" 0 "the password is in no log or output"
done_testing
