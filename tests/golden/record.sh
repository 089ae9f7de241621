#!/usr/bin/env bash
# Record the golden decoder cases from a real server.
#
#   bash tests/golden/record.sh [--force] [CASE...]
#
# For each case (default: every tests/golden/decode/*/workload.sql) this
# runs workload.sql in a fresh database of a throwaway PostgreSQL 15
# cluster, reads what a pgoutput and a wal2json slot make of it, and writes
#
#   tests/golden/decode/CASE/pgoutput.in      recorded messages: "<LSN> <hex>" per line
#   tests/golden/decode/CASE/wal2json.in
#   tests/golden/decode/CASE/expected.pgoutput  decode_replay's output on them
#   tests/golden/decode/CASE/expected.wal2json
#
# The expected files are golden: read them against the workload before
# committing them, as tests/golden/run.sh trusts them. A CASE/encoding file
# names the database encoding (default UTF8); decode_replay is told it.
# A CASE/setup.sql runs before the slots are created, so tables can hold
# rows the recorded stream never showed. A CASE/streaming file records
# pgoutput with protocol version 2, streaming on and
# logical_decoding_work_mem = 64kB, so big transactions come as streams. This script refuses
# to overwrite a case that already has expected files unless given --force.
# A CASE/skip.PLUGIN file (first line: why) holds back expected.PLUGIN for
# output known to be wrong: the .in is still recorded, run.sh skips the pair.
# Remove it once the decoder is fixed, re-record, review.
set -eu	# not pipefail: pgcluster.sh greps the output of postgres --describe-config with grep -q
cd "$(dirname "$0")/../.."
DECODE=tests/golden/decode
REPLAY=${DECODE_REPLAY:-tests/unit/decode_replay}	# override: a decode_replay built elsewhere

force=0
cases=()
for arg in "$@"; do
	case $arg in
	--force) force=1 ;;
	-h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	-*) echo "record.sh: unknown option $arg" >&2; exit 2 ;;
	*) cases+=("${arg%/}") ;;
	esac
done
if [ ${#cases[@]} = 0 ]; then
	for d in "$DECODE"/*/; do
		[ -f "$d/workload.sql" ] && cases+=("$(basename "$d")")
	done
fi
[ ${#cases[@]} -gt 0 ] || { echo "record.sh: no cases under $DECODE" >&2; exit 2; }

# check everything before touching anything
refuse=0
for c in "${cases[@]}"; do
	[ -f "$DECODE/$c/workload.sql" ] || { echo "record.sh: no $DECODE/$c/workload.sql" >&2; exit 2; }
	for p in pgoutput wal2json; do
		[ -e "$DECODE/$c/skip.$p" ] && continue
		if [ -e "$DECODE/$c/expected.$p" ] && [ $force = 0 ]; then
			echo "record.sh: $DECODE/$c/expected.$p exists (golden); use --force to re-record" >&2
			refuse=1
		fi
	done
done
[ $refuse = 0 ] || exit 1

[ -n "${DECODE_REPLAY:-}" ] || make -s "$REPLAY"

# shellcheck source=../lib/pgcluster.sh
. tests/lib/pgcluster.sh

export PGTZ=UTC PGCLIENTENCODING=UTF8 PGDATESTYLE=ISO PGOPTIONS="-c client_min_messages=warning"
unset PGHOST PGPORT PGUSER PGDATABASE PGSERVICE

scratch=$(mktemp -d /tmp/pgcdc-golden.XXXXXX)
chmod 755 "$scratch"	# the server may run as nobody
cleanup() {
	pg_stop || true
	rm -rf "$scratch"
	rm -f "$DECODE"/*/*.tmp
}
trap cleanup EXIT
port=$(free_port)
# UTC as pg-capture sets it; no autovacuum, whose catalog-only transactions
# would show up in wal2json.in as empty begin/commit pairs
pg_start "$scratch/pg" "$port" "timezone = 'UTC'" "log_timezone = 'UTC'" "autovacuum = off"
server=$(sql "SHOW server_version")
w2jver=$(dpkg-query -W -f '${Version}' postgresql-15-wal2json 2>/dev/null || echo unknown)

# dbsql DB [psql args...]
dbsql() {
	local db=$1
	shift
	PGCONNECT_TIMEOUT=10 psql -X -q -v ON_ERROR_STOP=1 -At -F ' ' \
		-d "host=127.0.0.1 port=$PGTEST_PORT dbname=$db user=postgres" "$@"
}

PGOUTPUT_OPTS="'proto_version','1','publication_names','p','messages','true'"
WAL2JSON_OPTS="'format-version','2','include-xids','1','include-timestamp','1','include-lsn','1','include-pk','1','include-type-oids','1','include-transaction','1'"

status=0
for c in "${cases[@]}"; do
	dir=$DECODE/$c
	db=golden_$c
	echo "recording $c" >&2
	# CASE/encoding names the database's encoding (default UTF8)
	enc=UTF8
	[ -f "$dir/encoding" ] && enc=$(head -1 "$dir/encoding")
	sql "CREATE DATABASE \"$db\" ENCODING '$enc' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
	# CASE/setup.sql runs before the slots exist: what it writes is not recorded
	[ -f "$dir/setup.sql" ] && dbsql "$db" -f "$dir/setup.sql" >/dev/null
	dbsql "$db" -c "CREATE PUBLICATION p FOR ALL TABLES" \
		-c "SELECT 1 FROM pg_create_logical_replication_slot('golden_pgoutput', 'pgoutput')" \
		-c "SELECT 1 FROM pg_create_logical_replication_slot('golden_wal2json', 'wal2json')" >/dev/null
	dbsql "$db" -f "$dir/workload.sql" >/dev/null
	# A rollback or a non-transactional message is not flushed at once, and
	# the slot functions read only flushed WAL: a checkpoint flushes it all.
	dbsql "$db" -c "CHECKPOINT"
	for p in pgoutput wal2json; do
		if [ $p = pgoutput ]; then opts=$PGOUTPUT_OPTS; else opts=$WAL2JSON_OPTS; fi
		# CASE/streaming: big transactions streamed in progress (protocol 2)
		set=
		if [ $p = pgoutput ] && [ -f "$dir/streaming" ]; then
			opts=${opts/"'proto_version','1'"/"'proto_version','2','streaming','on'"}
			set="SET logical_decoding_work_mem = '64kB';"
		fi
		{
			echo "# case $c, plugin $p: recorded by tests/golden/record.sh"
			echo "# PostgreSQL $server, wal2json $w2jver; one message per line: <LSN> <hex of the payload>"
			dbsql "$db" -c "$set SELECT lsn, encode(data, 'hex') FROM pg_logical_slot_get_binary_changes('golden_$p', NULL, NULL, $opts)"
		} >"$dir/$p.in.tmp"
		mv "$dir/$p.in.tmp" "$dir/$p.in"
		if [ -e "$dir/skip.$p" ]; then
			echo "record.sh: $c $p: not writing expected.$p: $(head -1 "$dir/skip.$p")" >&2
			continue
		fi
		rc=0
		"$REPLAY" $p "$dir/$p.in" "$enc" >"$dir/expected.$p.tmp" 2>"$scratch/replay.err" || rc=$?
		mv "$dir/expected.$p.tmp" "$dir/expected.$p"
		if [ $rc != 0 ] || [ -s "$scratch/replay.err" ]; then
			echo "record.sh: $c $p: decode_replay exited $rc; review before committing:" >&2
			sed 's/^/    /' "$scratch/replay.err" >&2
			[ $rc = 0 ] || status=1
		fi
	done
	dbsql "$db" -c "SELECT pg_drop_replication_slot('golden_pgoutput'), pg_drop_replication_slot('golden_wal2json')" >/dev/null
	sql "DROP DATABASE \"$db\""
done
echo "recorded ${#cases[@]} case(s); review the expected.* files (git diff) before committing" >&2
exit $status
