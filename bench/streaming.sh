#!/usr/bin/env bash
# What --stream-in-progress buys for one big transaction: the server's spill
# to its own disk, the time from COMMIT returning to the commit line on
# pg-capture's stdout, and pg-capture's peak RSS, with and without it. See
# bench/README.md.
#
#   bench/streaming.sh                     a 1,000,000-row transaction
#   BENCH_ROWS=100000 bench/streaming.sh   a quick run
#
# Environment: BENCH_ROWS (rows in the transaction, default 1000000),
# BENCH_REPEAT (runs per mode, default 3; the table shows medians),
# BENCH_WORK_MEM (the server's logical_decoding_work_mem, default 64MB, its
# default), PG_CAPTURE (binary).
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(dirname "$HERE")
PG_CAPTURE=${PG_CAPTURE:-$TOP/pg-capture/pg-capture}
ROWS=${BENCH_ROWS:-1000000}
REPEAT=${BENCH_REPEAT:-3}
WORK_MEM=${BENCH_WORK_MEM:-64MB}
PYTHON=/usr/bin/python3

die() { echo "streaming.sh: $*" >&2; exit 1; }

[ -x "$PG_CAPTURE" ] || die "$PG_CAPTURE not built (run make)"
[ -x /usr/bin/time ] || die "/usr/bin/time missing (apt-get install time)"
case $ROWS$REPEAT in '' | *[!0-9]*) die "BENCH_ROWS and BENCH_REPEAT must be numbers" ;; esac
source "$TOP/tests/lib/pgcluster.sh" || exit 1

T=$(mktemp -d /tmp/pgcdc-bench-streaming.XXXXXX)
chmod 755 "$T"
CAP=
cleanup() {
	[ -n "$CAP" ] && kill "$CAP" 2>/dev/null
	pg_stop
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pg_start "$T/pg" "$(free_port)" "logical_decoding_work_mem = '$WORK_MEM'" "max_wal_size = '8GB'" \
	"checkpoint_timeout = '1h'" "autovacuum = off" || die "could not start PostgreSQL"
CONN=$(pg_conninfo)
sql "CREATE TABLE big (id int PRIMARY KEY, v int, note text)" >/dev/null

# The sink: the wall-clock time at which the commit line arrives.
cat >"$T/sink.py" <<'EOF'
import sys, time
for line in sys.stdin.buffer:
    if line.startswith(b'{"op":"commit"'):
        print("%.3f" % time.time(), flush=True)
EOF

# run MODE N: one measurement; appends "MODE spill_bytes stream_bytes latency_ms rss_kb" to $T/results
run() {
	local mode=$1 n=$2 slot=bench_$1_$2 flag= lsn t0 t1
	[ "$mode" = stream ] && flag=--stream-in-progress
	sql "TRUNCATE big" >/dev/null	# before the slot: the insert's is the only commit it sees
	lsn=$(sql "SELECT pg_current_wal_lsn()")
	"$PG_CAPTURE" -d "$CONN" -S "$slot" --create-slot --endpos "$lsn" >/dev/null 2>&1 || die "could not create slot $slot"
	: >"$T/commits"
	# sh execs pg-capture: its pid, written first, is pg-capture's
	( /usr/bin/time -f %M -o "$T/rss" sh -c 'echo $$ >"$0"; exec "$@"' "$T/pid" \
		"$PG_CAPTURE" -d "$CONN" -S "$slot" $flag 2>"$T/cap.err" |
		"$PYTHON" "$T/sink.py" >"$T/commits" ) &
	CAP=$!
	# streaming: pg-capture has started, and the stats are from zero
	for _ in $(seq 100); do
		[ "$(sql "SELECT active FROM pg_replication_slots WHERE slot_name = '$slot'")" = t ] && break
		sleep 0.1
	done
	sql "SELECT pg_stat_reset_replication_slot('$slot')" >/dev/null
	sql "INSERT INTO big SELECT i, i, 'row ' || i FROM generate_series(1, $ROWS) i" >/dev/null
	t0=$(date +%s.%N)
	for _ in $(seq 6000); do
		[ -s "$T/commits" ] && break
		sleep 0.05
	done
	t1=$(head -1 "$T/commits")
	[ -n "$t1" ] || die "no commit line within 300 s ($mode)"
	kill "$(cat "$T/pid")"
	wait "$CAP"
	CAP=
	echo "$mode $(sql "SELECT spill_bytes, stream_bytes FROM pg_stat_replication_slots WHERE slot_name = '$slot'" | tr '|' ' ') \
$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%d", (b - a) * 1000 }') $(tail -1 "$T/rss")" >>"$T/results"
	sql "SELECT pg_drop_replication_slot('$slot')" >/dev/null
}

for n in $(seq "$REPEAT"); do
	# alternate which goes first, so drifts of the machine hit both alike
	if [ $((n % 2)) = 1 ]; then run plain "$n"; run stream "$n"; else run stream "$n"; run plain "$n"; fi
done

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
col() { awk -v m="$1" -v c="$2" '$1 == m { print $c }' "$T/results" | median; }
{
	echo "one transaction of $ROWS rows, logical_decoding_work_mem = $WORK_MEM, PostgreSQL $("$PGBIN/postgres" --version | awk '{ print $3 }'), median of $REPEAT"
	printf '%-22s %14s %14s %20s %14s\n' "" "spill_bytes" "stream_bytes" "COMMIT->commit line" "peak RSS"
	for m in plain stream; do
		printf '%-22s %14s %14s %17s ms %11s kB\n' \
			"$([ $m = plain ] && echo "not streamed" || echo "--stream-in-progress")" \
			"$(col $m 2)" "$(col $m 3)" "$(col $m 4)" "$(col $m 5)"
	done
} | tee "$T/table"
mkdir -p "$HERE/out"
cp "$T/table" "$HERE/out/streaming-$(date +%Y%m%d-%H%M%S).txt"
