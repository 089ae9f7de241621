#!/usr/bin/env bash
# pg-capture on the users' workload: exact events per op and table, typed
# values, TOAST, old rows, ids stable across a copied slot, both plugins.
set -u
source "$(dirname "$0")/../lib/testlib.sh"
source "$TOP/tests/lib/pgcluster.sh"
T=$(mktemp -d /tmp/pgcdc-test.XXXXXX)
trap 'pg_stop; rm -rf "$T"' EXIT
chmod 755 "$T"
pg_start "$T/pg" "$(free_port)" "timezone = 'UTC'" || exit 1
CONN=$(pg_conninfo)
HERE=$TOP/tests/integration
timeout -k 5 120 psql -X -q -v ON_ERROR_STOP=1 -d "$CONN" -f "$HERE/workload.sql" >/dev/null || exit 1

# creating the slots; --endpos at the current position makes it return at once
now=$(sql "SELECT pg_current_wal_lsn()")
"$PG_CAPTURE" -d "$CONN" -S cap --create-slot --endpos "$now" >"$T/empty.out" 2>"$T/create.log"
is "$?" 0 "--create-slot with --endpos now exits 0"
is "$(wc -c <"$T/empty.out")" 0 "nothing emitted before the workload"
is "$(sql "SELECT count(*) FROM pg_publication WHERE pubname = 'cap' AND puballtables")" 1 \
	"publication created for all tables"
"$PG_CAPTURE" -d "$CONN" -S cap --create-slot --endpos "$now" 2>"$T/again.log" >/dev/null
is "$?" 2 "--create-slot on an existing slot is refused"
"$PG_CAPTURE" -d "$CONN" -S cap --create-slot --if-not-exists --endpos "$now" 2>/dev/null >/dev/null
is "$?" 0 "--if-not-exists streams from the existing slot"
"$PG_CAPTURE" -d "$CONN" -S w2j --plugin wal2json --create-slot --endpos "$now" 2>"$T/w2j-create.log" >/dev/null
is "$?" 0 "wal2json slot created"
sql "SELECT pg_copy_logical_replication_slot('cap', 'cap_copy')" >/dev/null

timeout -k 5 120 psql -X -q -v ON_ERROR_STOP=1 -d "$CONN" -f "$HERE/changes.sql" >/dev/null 2>"$T/changes.err"
end=$(sql "SELECT pg_current_wal_lsn()")

"$PG_CAPTURE" -d "$CONN" -S cap --endpos "$end" -o "$T/cap.out" 2>"$T/cap.log"
is "$?" 0 "pgoutput run to --endpos exits 0"
/usr/bin/time -f %M -o "$T/copy.rss" \
	"$PG_CAPTURE" -d "$CONN" -S cap_copy --publication cap --endpos "$end" >"$T/copy.out" 2>"$T/copy.log"
is "$?" 0 "copied slot run exits 0"
rss=$(tail -1 "$T/copy.rss")
rss_below 16384 "a 100 000-row transaction" "$rss"

facts=$(python3 "$HERE/events.py" "$T/cap.out" counts txs ids 2>&1)
is "$facts" "delete public.comments 1
delete public.item_watchers 1
delete public.workitems 1
insert public.audit_log 100003
insert public.comments 2
insert public.item_watchers 2
insert public.workitems 5
message . 1
schema public.audit_log 1
schema public.comments 1
schema public.item_watchers 1
schema public.workitems 1
truncate public.audit_log 1
update public.comments 1
update public.item_watchers 1
update public.workitems 6
12
100025" "exact events per op and table, 12 transactions, unique ids"

if cmp -s "$T/cap.out" "$T/copy.out"; then pass "the same WAL read through a copied slot gives identical lines and ids"
else fail "copied slot output differs" "$(diff "$T/cap.out" "$T/copy.out" | head -5 | cut -c1-200)"; fi

is "$(grep -c '"never"' "$T/cap.out")" 0 "rolled-back transaction absent"

is "$(python3 "$HERE/events.py" "$T/cap.out" rows=public.workitems)" \
'{"key": {"id": 1}, "new": {"blocked": false, "estimate": "num:40.50", "id": 1, "meta": {"labels": ["release"], "prio": 1}, "parent_id": null, "status": "todo", "title": "Release 2.0", "updated_at": "2026-01-01 00:00:00+00"}, "op": "insert", "schema": "public", "table": "workitems"}
{"key": {"id": 2}, "new": {"blocked": false, "estimate": "num:20.00", "id": 2, "meta": null, "parent_id": 1, "status": "todo", "title": "Backend", "updated_at": "2026-01-01 00:00:00+00"}, "op": "insert", "schema": "public", "table": "workitems"}
{"key": {"id": 3}, "new": {"blocked": false, "estimate": "num:20.00", "id": 3, "meta": {"owner": "ana"}, "parent_id": 1, "status": "todo", "title": "Frontend", "updated_at": "2026-01-01 00:00:00+00"}, "op": "insert", "schema": "public", "table": "workitems"}
{"key": {"id": 4}, "new": {"blocked": false, "estimate": "num:8.25", "id": 4, "meta": null, "parent_id": 2, "status": "todo", "title": "API \"v2\"", "updated_at": "2026-01-01 00:00:00+00"}, "op": "insert", "schema": "public", "table": "workitems"}
{"key": {"id": 5}, "new": {"blocked": false, "estimate": "num:4.00", "id": 5, "meta": null, "parent_id": 2, "status": "todo", "title": "Migrations", "updated_at": "2026-01-01 00:00:00+00"}, "op": "insert", "schema": "public", "table": "workitems"}
{"key": {"id": 4}, "new": {"blocked": false, "estimate": "num:8.25", "id": 4, "meta": null, "parent_id": 2, "status": "in_progress", "title": "API \"v2\"", "updated_at": "2026-01-01 00:00:00+00"}, "op": "update", "schema": "public", "table": "workitems"}
{"key": {"id": 2}, "new": {"blocked": false, "estimate": "num:20.00", "id": 2, "meta": null, "parent_id": 1, "status": "in_progress", "title": "Backend", "updated_at": "2026-01-01 00:00:00+00"}, "op": "update", "schema": "public", "table": "workitems"}
{"key": {"id": 1}, "new": {"blocked": false, "estimate": "num:40.50", "id": 1, "meta": {"labels": ["release"], "prio": 1}, "parent_id": null, "status": "in_progress", "title": "Release 2.0", "updated_at": "2026-01-01 00:00:00+00"}, "op": "update", "schema": "public", "table": "workitems"}
{"key": {"id": 4}, "new": {"blocked": false, "estimate": "num:8.25", "id": 4, "meta": null, "parent_id": 2, "status": "done", "title": "API \"v2\"", "updated_at": "2026-01-01 00:00:00+00"}, "op": "update", "schema": "public", "table": "workitems"}
{"key": {"id": 5}, "new": {"blocked": false, "estimate": "num:4.00", "id": 5, "meta": null, "parent_id": 2, "status": "done", "title": "Migrations", "updated_at": "2026-01-01 00:00:00+00"}, "op": "update", "schema": "public", "table": "workitems"}
{"key": {"id": 2}, "new": {"blocked": false, "estimate": "num:20.00", "id": 2, "meta": null, "parent_id": 1, "status": "done", "title": "Backend", "updated_at": "2026-01-01 00:00:00+00"}, "op": "update", "schema": "public", "table": "workitems"}
{"key": {"id": 5}, "old": {"id": 5}, "op": "delete", "schema": "public", "table": "workitems"}' \
	"work items: inserts, trigger-derived parent updates, typed values, delete key"

is "$(python3 "$HERE/events.py" "$T/cap.out" rows=public.item_watchers)" \
'{"key": {"level": "all", "user_name": "ana", "workitem_id": 1}, "new": {"level": "all", "user_name": "ana", "workitem_id": 1}, "op": "insert", "schema": "public", "table": "item_watchers"}
{"key": {"level": "mentions", "user_name": "bo", "workitem_id": 1}, "new": {"level": "mentions", "user_name": "bo", "workitem_id": 1}, "op": "insert", "schema": "public", "table": "item_watchers"}
{"key": {"level": "none", "user_name": "bo", "workitem_id": 1}, "new": {"level": "none", "user_name": "bo", "workitem_id": 1}, "old": {"level": "mentions", "user_name": "bo", "workitem_id": 1}, "op": "update", "schema": "public", "table": "item_watchers"}
{"key": {"level": "all", "user_name": "ana", "workitem_id": 1}, "old": {"level": "all", "user_name": "ana", "workitem_id": 1}, "op": "delete", "schema": "public", "table": "item_watchers"}' \
	"REPLICA IDENTITY FULL: old rows on update and delete"

body=$(sql "SELECT string_agg(md5(i::text), '') FROM generate_series(1, 500) i")
is "$(python3 "$HERE/events.py" "$T/cap.out" rows=public.comments | sed "s/$body/BODY/")" \
'{"key": {"id": 1}, "new": {"body": "BODY", "edited": 0, "id": 1, "workitem_id": 4}, "op": "insert", "schema": "public", "table": "comments"}
{"key": {"id": 2}, "new": {"body": "short\nwith \"quotes\" and é", "edited": 0, "id": 2, "workitem_id": 5}, "op": "insert", "schema": "public", "table": "comments"}
{"key": {"id": 1}, "new": {"edited": 1, "id": 1, "workitem_id": 4}, "op": "update", "schema": "public", "table": "comments", "unchanged": ["body"]}
{"key": {"id": 2}, "old": {"id": 2}, "op": "delete", "schema": "public", "table": "comments"}' \
	"TOASTed body left alone is listed in unchanged, not sent as null"

like "$(grep '"op":"message"' "$T/cap.out")" '"transactional":true,"prefix":"workitems","content":"refresh board 1"}$' "logical message"
like "$(grep '"op":"truncate"' "$T/cap.out")" '"table":"audit_log".*"cascade":false,"restart_identity":false}$' "truncate"
like "$(grep -m1 '"op":"schema","schema":"public","table":"workitems"' "$T/cap.out")" \
	'"columns":\[\{"name":"id","type":"bigint","oid":20,"key":true,"replica_identity":true\},\{"name":"parent_id","type":"bigint","oid":20,"key":false,"replica_identity":false\}.*\{"name":"estimate","type":"numeric\(8,2\)","oid":1700,"key":false,"replica_identity":false\}' \
	"schema event names types and key"
like "$(grep -m1 '"op":"begin"' "$T/cap.out")" '^\{"op":"begin","xid":[0-9]+,"lsn":"[0-9A-F]+/[0-9A-F]+","commit_lsn":"[0-9A-F]+/[0-9A-F]+","ts":"20[0-9]{2}-[0-9]{2}-[0-9]{2}T[0-9:]{8}\.[0-9]{6}Z"\}$' \
	"begin line shape"

# the slot was confirmed to the last commit written
last=$(python3 "$HERE/events.py" "$T/cap.out" commits | tr ' ' '\n' | tail -1)
is "$(sql "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'cap'")" "$last" \
	"without an ack pipe the slot is confirmed to the last commit written"

# wal2json gives the same events (type names aside, see cdc-json(7))
"$PG_CAPTURE" -d "$CONN" -S w2j --plugin wal2json --endpos "$end" >"$T/w2j.out" 2>"$T/w2j.log"
is "$?" 0 "wal2json run to --endpos exits 0"
if cmp -s "$T/cap.out" "$T/w2j.out"; then pass "wal2json and pgoutput give identical lines"
else fail "wal2json and pgoutput differ" "$(diff "$T/cap.out" "$T/w2j.out" | head -6 | cut -c1-300)"; fi

done_testing
