#!/usr/bin/env bash
# test: alone (it measures time or memory, or loads the machine)
# test: timeout 480
# Memory errors and leaks under valgrind: the decoders on every golden case,
# pg-capture itself on the work-item workload with both plugins and on DDL
# capture (install, ddl events, schema lines as of the change), and
# cdc-filter on its golden cases and on that workload.
set -u
source "$(dirname "$0")/../lib/testlib.sh"
source "$TOP/tests/lib/pgcluster.sh"
command -v valgrind >/dev/null || { fail "valgrind not installed (make deps)"; done_testing; exit; }
# valgrind cannot run AddressSanitizer's programs; make check runs this on the plain build
[ -n "${PGCDC_ASAN:-}" ] && { pass "valgrind # SKIP sanitizer build: the sanitizers check it"; done_testing; exit; }
# every run bounded: valgrind is slow, but a hang must still fail in minutes, not at the suite's limit
VG="timeout -k 5 120 valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect"
T=$(mktemp -d /tmp/pgcdc-test.XXXXXX)
trap 'pg_stop; rm -rf "$T"' EXIT
chmod 755 "$T"

for dir in "$TOP"/tests/golden/decode/*/; do
	name=$(basename "$dir")
	for plugin in pgoutput wal2json; do
		[ -f "$dir/expected.$plugin" ] || continue
		$VG "$TOP/tests/unit/decode_replay" "$plugin" "$dir/$plugin.in" "$(cat "$dir/encoding" 2>/dev/null || echo UTF8)" >"$T/out" 2>"$T/err"
		rc=$?
		if [ $rc = 0 ] && cmp -s "$T/out" "$dir/expected.$plugin"; then pass "valgrind clean: decode $name $plugin"
		else fail "valgrind: decode $name $plugin (status $rc)" "$(head -5 "$T/err")"; fi
	done
done

pg_start "$T/pg" "$(free_port)" "timezone = 'UTC'" || exit 1
CONN=$(pg_conninfo)
timeout -k 5 120 psql -X -q -v ON_ERROR_STOP=1 -d "$CONN" -f "$TOP/tests/integration/workload.sql" >/dev/null
now=$(sql "SELECT pg_current_wal_lsn()")
"$PG_CAPTURE" -d "$CONN" -S vp --create-slot --endpos "$now" 2>/dev/null
"$PG_CAPTURE" -d "$CONN" -S vw --plugin wal2json --create-slot --endpos "$now" 2>/dev/null
sed 's/generate_series(1, 100000)/generate_series(1, 3000)/' "$TOP/tests/integration/changes.sql" |
	timeout -k 5 120 psql -X -q -v ON_ERROR_STOP=1 -d "$CONN" >/dev/null 2>&1
end=$(sql "SELECT pg_current_wal_lsn()")
for plugin in pgoutput wal2json; do
	slot=vp; [ $plugin = wal2json ] && slot=vw
	$VG "$PG_CAPTURE" -d "$CONN" -S $slot --plugin $plugin --endpos "$end" >"$T/$plugin.out" 2>"$T/$plugin.err"
	rc=$?
	if [ $rc = 0 ] && ! grep -q '^==' "$T/$plugin.err"; then pass "valgrind clean: pg-capture $plugin on the workload"
	else fail "valgrind: pg-capture $plugin (status $rc)" "$(grep '^==' "$T/$plugin.err" | head -5)"; fi
	is "$(grep -c '"op":"commit"' "$T/$plugin.out")" 12 "under valgrind: $plugin delivered all 12 transactions"
done
# DDL capture: install and uninstall, ddl events and a retyped column's schema lines
for what in install uninstall; do
	[ $what = uninstall ] && {
		timeout -k 5 120 psql -X -q -v ON_ERROR_STOP=1 -d "$CONN" -c "CREATE TABLE vddl (id int PRIMARY KEY, v varchar(10))" \
			-c "INSERT INTO vddl VALUES (1, 'a')" -c "ALTER TABLE vddl ALTER COLUMN v TYPE varchar(20)" \
			-c "INSERT INTO vddl VALUES (2, 'b')" -c "DROP TABLE vddl" >/dev/null
		ddl_end=$(sql "SELECT pg_current_wal_lsn()")
	}
	$VG "$PG_CAPTURE" -d "$CONN" --$what-ddl-capture 2>"$T/$what.err"
	rc=$?
	if [ $rc = 0 ] && ! grep -q '^==' "$T/$what.err"; then pass "valgrind clean: pg-capture --$what-ddl-capture"
	else fail "valgrind: pg-capture --$what-ddl-capture (status $rc)" "$(grep -e '^==' -e level=error "$T/$what.err" | head -5)"; fi
done
for plugin in pgoutput wal2json; do
	slot=vp; [ $plugin = wal2json ] && slot=vw
	$VG "$PG_CAPTURE" -d "$CONN" -S $slot --plugin $plugin --endpos "$ddl_end" >"$T/ddl.out" 2>"$T/ddl.err"
	rc=$?
	if [ $rc = 0 ] && ! grep -q '^==' "$T/ddl.err"; then pass "valgrind clean: pg-capture $plugin on DDL"
	else fail "valgrind: pg-capture $plugin on DDL (status $rc)" "$(grep '^==' "$T/ddl.err" | head -5)"; fi
	is "$(grep -o -e '^{"op":"ddl"' -e '^{"op":"schema".*"character varying([0-9]*)"' "$T/ddl.out" | sed 's/"op":"schema".*"\(character varying([0-9]*)\)"/\1/' | tr '\n' ' ')" \
		'{"op":"ddl" {"op":"ddl" {character varying(10) {"op":"ddl" {character varying(20) {"op":"ddl" ' \
		"under valgrind: $plugin wrote the ddl events and both schema lines, in order"
done
# snapshots: a keyed table and one without a key, in small chunks, while rows change; one asked again with SQL
sql "CREATE TABLE snapv (id int PRIMARY KEY, v text); INSERT INTO snapv SELECT i, 'v' || i FROM generate_series(1, 500) i;
	CREATE TABLE snapnk (a int, b text); INSERT INTO snapnk SELECT i, 'x' FROM generate_series(1, 200) i" >/dev/null
"$PG_CAPTURE" -d "$CONN" -S vs --create-slot --endpos "$(sql "SELECT pg_current_wal_lsn()")" 2>/dev/null
$VG "$PG_CAPTURE" -d "$CONN" -S vs --snapshot-table snapv --snapshot-table snapnk --snapshot-chunk 50 \
	>"$T/snap.out" 2>"$T/snap.err" &
VGPID=$!
sql "UPDATE snapv SET v = 'u' WHERE id % 50 = 0; DELETE FROM snapv WHERE id % 77 = 0" >/dev/null
snaps_done() { [ "$(grep -c 'msg="snapshot of table done"' "$T/snap.err")" -ge "$1" ]; }
wait_for 100 snaps_done 2 || fail "under valgrind: both snapshots end" "$(tail -n 3 "$T/snap.err")"
sql "SELECT pg_logical_emit_message(true, 'pgcdc.snapshot', 'snapv')" >/dev/null
wait_for 100 snaps_done 3 || fail "under valgrind: the snapshot asked again ends" "$(tail -n 3 "$T/snap.err")"
kill -TERM $VGPID
wait_exit $VGPID 60
if [ "$RC" = 0 ] && ! grep -q '^==' "$T/snap.err"; then pass "valgrind clean: pg-capture snapshots (keyset, pages, asked again)"
else fail "valgrind: pg-capture snapshots (status $RC)" "$(grep -e '^==' -e level=error "$T/snap.err" | head -5)"; fi
is "$(grep -c '"op":"read","schema":"public","table":"snapnk"' "$T/snap.out")" 200 "under valgrind: every row of the table without a key read"

# cdc-filter: the golden cases that take lines apart, then the workload
# through every kind of rule at once
FILTER=$TOP/cdc-filter/cdc-filter
for dir in "$TOP"/tests/golden/filter/{mask,where_,columns_,drop_,malformed_,unicode_,escaped_,partial,usage_mask}*/; do
	name=$(basename "$dir")
	args=()
	[ -s "$dir/args" ] && mapfile -t args <"$dir/args"
	envs=()
	[ -f "$dir/env" ] && mapfile -t envs <"$dir/env"
	rm -rf "$T/fc" && cp -r "$dir" "$T/fc"
	(cd "$T/fc" && env "${envs[@]}" $VG "$FILTER" "${args[@]}" <input >out 2>err)
	rc=$?
	if [ "$rc" = "$(cat "$dir/status" 2>/dev/null || echo 0)" ] && cmp -s "$T/fc/out" "$dir/expected" &&
			! grep -q '^==' "$T/fc/err"; then pass "valgrind clean: cdc-filter $name"
	else fail "valgrind: cdc-filter $name (status $rc)" "$(grep '^==' "$T/fc/err" | head -5)"; fi
done
printf 'valgrind-mask-key-0123456789\n' >"$T/key"
$VG "$FILTER" -t 'public.*' -T '*.nothing' --op '!message' --where 'new.status!=x' --drop-empty-tx \
	--columns 'workitems:id,title,status,parent_id' --drop-columns title --mask 'status,*name*' \
	--mask-key-file "$T/key" <"$T/pgoutput.out" >"$T/filtered" 2>"$T/filter.err"
rc=$?
if [ $rc = 0 ] && ! grep -q '^==' "$T/filter.err"; then pass "valgrind clean: cdc-filter with every kind of rule on the workload"
else fail "valgrind: cdc-filter on the workload (status $rc)" "$(grep '^==' "$T/filter.err" | head -5)"; fi
is "$(grep -c '"op":"commit"' "$T/filtered")" 12 "under valgrind: cdc-filter passed all 12 commits"
# cdc-publish: every --dry-run golden case, so every target's set-up,
# bodies, signatures and clean-up (what reaches the network is in publish.sh)
PUBLISH=$TOP/cdc-publish/cdc-publish
for dir in "$TOP"/tests/golden/publish/*/; do
	name=$(basename "$dir")
	mapfile -t args <"$dir/args"
	envs=()
	[ -f "$dir/env" ] && mapfile -t envs <"$dir/env"
	env ${envs[@]+"${envs[@]}"} $VG "$PUBLISH" --dry-run "${args[@]}" <"$dir/input" >"$T/pub.out" 2>"$T/pub.err"
	rc=$?
	if [ $rc = 0 ] && cmp -s "$T/pub.out" "$dir/expected" && ! grep -q '^==' "$T/pub.err"; then
		pass "valgrind clean: cdc-publish $name"
	else fail "valgrind: cdc-publish $name (status $rc)" "$(grep '^==' "$T/pub.err" | head -5)"; fi
done
done_testing
