#!/usr/bin/env bash
# The cost of metrics at full speed: pg-capture draining one retained
# backlog, and cdc-filter reading its output, each without metrics and with
# --metrics-file and --metrics-listen, in alternating rounds. Prints events/s
# and CPU µs per event side by side (the goal: metrics cost under 2% of
# events/s). See bench/README.md.
#
#   bench/metrics.sh                      500,000 row changes, 5 rounds
#   BENCH_ROWS=100000 bench/metrics.sh    a quick run
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(dirname "$HERE")
ROWS=${BENCH_ROWS:-500000}
REPEAT=${BENCH_REPEAT:-5}
PG_CAPTURE=$TOP/pg-capture/pg-capture
CDC_FILTER=$TOP/cdc-filter/cdc-filter
die() { echo "metrics.sh: $*" >&2; exit 1; }
[ -x "$PG_CAPTURE" ] && [ -x "$CDC_FILTER" ] || die "build first (make)"
[ -x /usr/bin/time ] || die "/usr/bin/time missing (apt-get install time)"
case $ROWS$REPEAT in '' | *[!0-9]*) die "BENCH_ROWS and BENCH_REPEAT must be numbers" ;; esac
source "$TOP/tests/lib/pgcluster.sh" || exit 1

T=$(mktemp -d /tmp/pgcdc-bench-metrics.XXXXXX)
chmod 755 "$T"
cleanup() {
	pg_stop
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pg_start "$T/pg" "" "max_replication_slots = 32" "autovacuum = off" "checkpoint_timeout = '1h'" \
	"max_wal_size = '16GB'" "timezone = 'UTC'" >/dev/null || exit 1
CONN=$(pg_conninfo)
sql "CREATE TABLE items (id bigint PRIMARY KEY, project int NOT NULL, title text NOT NULL, status text NOT NULL,
       updated timestamptz NOT NULL);
     CREATE TABLE audit (id bigserial PRIMARY KEY, item bigint, what text);
     CREATE PUBLICATION bench FOR ALL TABLES" >/dev/null
for i in $(seq "$REPEAT"); do
	for kind in plain metrics; do
		"$PG_CAPTURE" -d "$CONN" -S "${kind}_$i" --create-slot --endpos 0/1 >/dev/null 2>&1 ||
			die "could not create slot ${kind}_$i"
	done
done
echo "writing $ROWS row changes in transactions of 1000..." >&2
# three quarters inserts into items, a quarter into audit: two tables, two ops
psql -X -q -d "$CONN" -v ON_ERROR_STOP=1 >/dev/null <<EOF
DO \$\$ BEGIN
  FOR b IN 0 .. $((ROWS / 1000 - 1)) LOOP
    INSERT INTO items SELECT g, g % 97, 'work item ' || g, 'open', '2026-01-01'::timestamptz + g * interval '1 s'
      FROM generate_series(b * 750 + 1, b * 750 + 750) g;
    INSERT INTO audit (item, what) SELECT g, 'created' FROM generate_series(b * 750 + 1, b * 750 + 250) g;
    COMMIT;
  END LOOP;
END \$\$;
EOF
END=$(sql "SELECT pg_current_wal_lsn()")

# run LABEL CMD...: wall seconds, CPU seconds (user + system) into $T/LABEL.time
run() {
	local label=$1
	shift
	/usr/bin/time -f '%e %U %S' -o "$T/$label.time" "$@"
}
row() {	# NAME EVENTS TIMEFILE
	awk -v name="$1" -v n="$2" '{ printf "%-34s %10d %12.0f %14.2f\n", name, n, n / $1, ($2 + $3) * 1e6 / n }' "$3"
}
port=$(free_port)
printf '%-34s %10s %12s %14s\n' "round / reader" "events" "events/s" "CPU µs/event"
for i in $(seq "$REPEAT"); do
	run cap_plain_$i "$PG_CAPTURE" -d "$CONN" -S plain_$i --endpos "$END" >"$T/events" 2>"$T/plain.err"
	n=$(grep -o 'msg=exiting.* events=[0-9]*' "$T/plain.err" | grep -o '[0-9]*$')
	row "$i pg-capture" "$n" "$T/cap_plain_$i.time"
	run cap_metrics_$i "$PG_CAPTURE" -d "$CONN" -S metrics_$i --endpos "$END" \
		--metrics-file "$T/capture.prom" --metrics-listen "127.0.0.1:$port" >"$T/events2" 2>"$T/metrics.err"
	rm -f "$T/events2"
	m=$(grep -o 'msg=exiting.* events=[0-9]*' "$T/metrics.err" | grep -o '[0-9]*$')
	row "$i pg-capture, metrics" "$m" "$T/cap_metrics_$i.time"
	# cdc-filter reads the backlog ten times over: long enough to time
	for k in 1 2 3 4 5 6 7 8 9 10; do cat "$T/events"; done >"$T/events10"
	lines=$(wc -l <"$T/events10")
	run filter_plain_$i "$CDC_FILTER" -T public.audit <"$T/events10" >/dev/null 2>/dev/null
	row "$i cdc-filter" "$lines" "$T/filter_plain_$i.time"
	run filter_metrics_$i "$CDC_FILTER" -T public.audit --metrics-file "$T/filter.prom" \
		--metrics-listen "127.0.0.1:$port" <"$T/events10" >/dev/null 2>/dev/null
	row "$i cdc-filter, metrics" "$lines" "$T/filter_metrics_$i.time"
done >"$T/table"
cat "$T/table"
echo
# medians over the rounds, and the cost of metrics as a share of events/s
summary() {	# NAME
	grep -E "^[0-9]+ $1 " "$T/table" | awk '{ print $(NF-1), $NF }' | sort -n |
		awk '{ r[NR] = $1; c[NR] = $2 } END { m = int((NR + 1) / 2); print r[m], c[m] }'
}
for prog in pg-capture cdc-filter; do
	read -r r0 c0 < <(summary "$prog")
	read -r r1 c1 < <(summary "$prog, metrics")
	awk -v p="$prog" -v r0="$r0" -v r1="$r1" -v c0="$c0" -v c1="$c1" 'BEGIN {
		printf "%s: median %.0f events/s without metrics, %.0f with: %+.1f%% events/s; CPU %.2f against %.2f µs/event (%+.1f%%)\n",
			p, r0, r1, (r1 - r0) * 100 / r0, c0, c1, (c1 - c0) * 100 / c0 }'
done
