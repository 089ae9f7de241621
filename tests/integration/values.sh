#!/usr/bin/env bash
# Values as PostgreSQL renders them, whatever the database: one database
# per encoding (UTF8, LATIN1, EUC_JP, WIN1251, WIN1255, WIN1258,
# SQL_ASCII), each with
# settings of its own that change values' text (bytea_output, DateStyle,
# IntervalStyle, TimeZone, extra_float_digits, search_path), both plugins; domains,
# replica identities USING INDEX and FULL with TOAST; schema lines with
# publish_via_partition_root; -o to a device; then PostgreSQL 12 and 18
# with pgoutput on four of the encodings. oracle.py reads every value back
# from the server and compares.
set -u
source "$(dirname "$0")/../lib/testlib.sh"
source "$TOP/tests/lib/pgcluster.sh"
T=$(mktemp -d /tmp/pgcdc-test.XXXXXX)
trap 'pg_stop; [ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
chmod 755 "$T"
HERE=$TOP/tests/integration
pg_start "$T/pg" "$(free_port)" "max_replication_slots = 24" "max_wal_senders = 24" || exit 1

# Does this server's wal2json know numeric-data-types-as-string (2.6+)?
# Without it NaN and infinities arrive as null, and pg-capture says so.
sql "SELECT 1 FROM pg_create_logical_replication_slot('probe', 'wal2json')" >/dev/null
if sql "SELECT count(*) FROM pg_logical_slot_peek_changes('probe', NULL, NULL, 'numeric-data-types-as-string', '1')" >/dev/null 2>&1
then export W2J_NUMERIC_STRINGS=1; else export W2J_NUMERIC_STRINGS=0; fi
sql "SELECT pg_drop_replication_slot('probe')" >/dev/null

dbconn() { echo "host=127.0.0.1 port=$PGTEST_PORT dbname=$1 user=postgres"; }
dbsql() {
	local db=$1
	shift
	PGCONNECT_TIMEOUT=10 timeout 60 psql -X -q -v ON_ERROR_STOP=1 -At -d "$(dbconn "$db")" "$@"
}
capture() {	# capture DB SLOT PLUGIN OUT ARGS...: stream the slot to the current end
	local db=$1 slot=$2 plugin=$3 out=$4 end
	shift 4
	end=$(dbsql "$db" -c "SELECT pg_current_wal_lsn()")
	timeout -k 5 60 "$PG_CAPTURE" -d "$(dbconn "$db")" -S "$slot" --plugin "$plugin" --endpos "$end" \
		"$@" >"$out" 2>"$out.log"
}

# text each encoding can hold (psql sends it as UTF-8; the server converts),
# with characters whose conversion is PostgreSQL's own (EUC_JP's NEC and
# IBM rows, a WIN1258 combining mark that iconv would compose)
declare -A TXT=(
	[UTF8]=$'ünïcødé ✓ 😀 日本 \u2028 \u2029 \u0085 "q" \\ end'
	[LATIN1]='Ærø ½ ¿Qué? ÿ ß "q" \ end'
	[EUC_JP]='日本語のテキスト ｶﾀｶﾅ ①②～ⅰ－∥￠ 髙 end'
	[WIN1251]='Привет, мир ё № end'
	[SQL_ASCII]='plain ascii end'
	[WIN1255]='שלום עולם end'
	[WIN1258]=$'Ăn đi ₫ ơ ư Ê giá \u01af\u0303 end'
)
declare -A NAME=([UTF8]=données [LATIN1]=données [EUC_JP]=表 [WIN1251]=таблица [SQL_ASCII]=plain
	[WIN1255]=טבלה [WIN1258]=đơn)
declare -A COL=([UTF8]=naïve [LATIN1]=naïve [EUC_JP]=列 [WIN1251]=столбец [SQL_ASCII]=col
	[WIN1255]=עמודה [WIN1258]=giá)

# matrix LABEL "ENCODINGS" "PLUGINS": a database per encoding on the running
# server, the workload, each plugin's events compared with the server's values
matrix() {
	local label=$1 encs=$2 plugins=$3 enc db p s txt
	for enc in $encs; do
		db=v_$(echo "$enc" | tr 'A-Z' 'a-z')
		sql "CREATE DATABASE $db ENCODING '$enc' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
		# settings of the database's own that would change values' text
		for s in "bytea_output = 'escape'" "datestyle = 'SQL, DMY'" "intervalstyle = 'sql_standard'" \
				"timezone = 'Asia/Tokyo'" "extra_float_digits = 0" "lc_monetary = 'C.utf8'" \
				"search_path = public, s2"; do
			sql "ALTER DATABASE $db SET $s"
		done
		for p in $plugins; do
			capture "$db" "${p}_$db" "$p" "$T/create" --create-slot ||
				fail "$label$enc $p: create slot" "$(cat "$T/create.log")"
		done
		txt=${TXT[$enc]}
		PGCLIENTENCODING=UTF8 dbsql "$db" -v txt="$txt" -v tname="${NAME[$enc]}" -v cname="${COL[$enc]}" \
			-f "$HERE/values.sql" >/dev/null || { fail "$label$enc: workload"; continue; }
		if [ "$enc" = SQL_ASCII ]; then
			# bytes that are not UTF-8: written as U+FFFD, never raw
			dbsql "$db" <<-'EOS'
			INSERT INTO plain (id, col, dlabel) VALUES (5, E'caf\xe9 x', E'\xff\xfe ok');
			EOS
		fi
		for p in $plugins; do
			capture "$db" "${p}_$db" "$p" "$T/$db.$p"
			is "$?" 0 "$label$enc $p: pg-capture exits 0"
			if [ $p = wal2json ]; then
				is "$(grep -c 'msg="this wal2json sends NaN and infinite numbers as null, like NULL"' "$T/$db.$p.log")" \
					$((1 - W2J_NUMERIC_STRINGS)) "$label$enc $p: a warning about NaN exactly when wal2json lacks numeric-data-types-as-string"
			fi
			python3 "$HERE/oracle.py" "$(dbconn "$db")" "$T/$db.$p" "$p" "\"${NAME[$enc]}\"" | sed "s/^\(not \)\{0,1\}ok - /&$label$enc /"
			[ "${PIPESTATUS[0]}" = 0 ] || TESTS_FAILED=$((TESTS_FAILED + 1))
		done
	done
}

# WIN1255 and WIN1258: converters that hold a character back in case a combining mark follows
matrix "" "UTF8 LATIN1 EUC_JP WIN1251 WIN1255 WIN1258 SQL_ASCII" "pgoutput wal2json"

# --- publish_via_partition_root: a schema line only for what events name ----
db=v_utf8
dbsql "$db" >/dev/null <<'EOS'
CREATE TABLE measures (id int, at date, v numeric, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE measures_2026 PARTITION OF measures FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE measures_2027 PARTITION OF measures FOR VALUES FROM ('2027-01-01') TO ('2028-01-01');
CREATE PUBLICATION part FOR TABLE measures WITH (publish_via_partition_root = true);
EOS
capture "$db" part pgoutput "$T/create" --create-slot
dbsql "$db" -c "INSERT INTO measures VALUES (1, '2026-03-01', 1.5), (2, '2027-03-01', 2)" \
	-c "UPDATE measures SET v = 3 WHERE id = 1" -c "DELETE FROM measures WHERE id = 2"
capture "$db" part pgoutput "$T/part.out"
is "$?" 0 "partition root: pg-capture exits 0"
is "$(grep -o '"op":"[a-z]*","schema":"public","table":"[a-z_0-9]*"' "$T/part.out" | sort | uniq -c | tr -s ' ')" \
' 1 "op":"delete","schema":"public","table":"measures"
 2 "op":"insert","schema":"public","table":"measures"
 1 "op":"schema","schema":"public","table":"measures"
 1 "op":"update","schema":"public","table":"measures"' "partition root: events and one schema line name the root, none the partitions"

# --- -o to a file that cannot be synced ----------------------------------------
before=$(dbsql "$db" -c "SELECT pg_current_wal_lsn()")
dbsql "$db" -c "INSERT INTO ri_index VALUES (9, 'dev', 'null')"
capture "$db" pgoutput_v_utf8 pgoutput "$T/dev.out" -o /dev/null
is "$?" 0 "-o /dev/null: exits 0"
like "$(cat "$T/dev.out.log")" 'msg="output is not a regular file: written without fsync" file=/dev/null' "-o /dev/null: says it does not fsync"
is "$(grep -c level=error "$T/dev.out.log")" 0 "-o /dev/null: no error"
is "$(dbsql "$db" -c "SELECT confirmed_flush_lsn > '$before' FROM pg_replication_slots WHERE slot_name = 'pgoutput_v_utf8'")" t \
	"-o /dev/null: the slot is confirmed past what was written"
# --- a table without replica identity: wal2json drops its updates on the
# server (a warning in the server's log); pg-capture says so in its own
dbsql "$db" -c "CREATE TABLE noid (a int, v text)" -c "INSERT INTO noid VALUES (1, 'a')" \
	-c "UPDATE noid SET v = 'b'" 2>/dev/null
capture "$db" wal2json_v_utf8 wal2json "$T/noid.out"
is "$?" 0 "no replica identity: pg-capture exits 0"
is "$(grep -c '"table":"noid"' "$T/noid.out")" 2 "no replica identity: the schema line and the insert arrive (wal2json dropped the update)"
like "$(grep 'no replica identity' "$T/noid.out.log")" 'level=warn .*its updates and deletes cannot be captured.*table=public\.noid hint=' \
	"no replica identity: a warning names the table and the fix"

# --- tables renamed or dropped before their changes are read: the catalog
# no longer has them under that name, the values and keys stay the same
dbsql "$db" >/dev/null <<'EOS'
CREATE TABLE d_ren (id int PRIMARY KEY, p posint, j doc, b flag);
INSERT INTO d_ren VALUES (1, 5, '{"a": 1}', true);
ALTER TABLE d_ren RENAME TO d_ren2;
CREATE TABLE d_drop (id int PRIMARY KEY, p posint2);
INSERT INTO d_drop VALUES (1, 5);
DROP TABLE d_drop;
CREATE TABLE f_ren (id int PRIMARY KEY, v text);
ALTER TABLE f_ren REPLICA IDENTITY FULL;
INSERT INTO f_ren VALUES (1, 'a');
UPDATE f_ren SET v = 'b';
ALTER TABLE f_ren RENAME TO f_ren2;
EOS
for p in pgoutput wal2json; do
	capture "$db" "${p}_$db" "$p" "$T/ren.$p"
	rows=$(grep -oE '"op":"[a-z]*","schema":"public","table":"(d_ren|d_drop|f_ren)",.*"key":.*' "$T/ren.$p" |
		sed -E 's/"id":"[^"]*","lsn":"[^"]*","xid":[0-9]+,"ts":"[^"]*",//' | grep -v '"op":"schema"')
	is "$rows" '"op":"insert","schema":"public","table":"d_ren","key":{"id":1},"new":{"id":1,"p":5,"j":{"a": 1},"b":true}}
"op":"insert","schema":"public","table":"d_drop","key":{"id":1},"new":{"id":1,"p":5}}
"op":"insert","schema":"public","table":"f_ren","key":{"id":1},"new":{"id":1,"v":"a"}}
"op":"update","schema":"public","table":"f_ren","key":{"id":1},"new":{"id":1,"v":"b"},"old":{"id":1,"v":"a"}}' \
		"$p: a renamed or dropped table keeps its domains' types and its primary key as the key"
done

# --- the oldest and the newest server: the same values from pgoutput
for v in 12 18; do
	pg_stop
	if ! pg_use "$v" || ! pg_start "$T/pg$v" "$(free_port)" "max_replication_slots = 24"; then
		fail "PG $v: server started"
		continue
	fi
	matrix "PG $v: " "UTF8 LATIN1 EUC_JP SQL_ASCII" pgoutput
done

# --- the server's own notices become log lines (PostgreSQL 18 warns of a
# publication that did not exist yet where decoding starts)
db=v_utf8
dbsql "$db" -c "INSERT INTO ri_index VALUES (20, 'early', 'x')" -c "CREATE PUBLICATION late FOR TABLE ri_index" \
	-c "INSERT INTO ri_index VALUES (21, 'late', 'x')"
capture "$db" pgoutput_v_utf8 pgoutput "$T/late.out" --publication late
is "$?" 0 "PG 18: a publication created after the slot: exit 0"
is "$(grep -c -v '^ts=' "$T/late.out.log")" 0 "PG 18: every line on stderr is a log line"
like "$(cat "$T/late.out.log")" 'level=warn prog=pg-capture msg="server notice" slot=pgoutput_v_utf8 severity=WARNING error="skipped loading publication \\"late\\"" detail=' \
	"PG 18: the server's warning is a logfmt line with its detail"
done_testing
