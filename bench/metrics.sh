#!/usr/bin/env bash
# The cost of metrics at full speed: pg-capture draining one retained
# backlog, and cdc-filter reading its output, each without metrics and with
# --metrics-file and --metrics-listen, in alternating rounds. Prints events/s
# and CPU µs per event side by side (the goal: metrics cost under 2% of
# events/s). See bench/README.md.
#
#   bench/metrics.sh                      500,000 row changes, 9 rounds
#   BENCH_ROWS=100000 bench/metrics.sh    a quick run
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(dirname "$HERE")
ROWS=${BENCH_ROWS:-500000}
REPEAT=${BENCH_REPEAT:-9}
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
capture_plain() {
	run cap_plain_$i "$PG_CAPTURE" -d "$CONN" -S plain_$i --endpos "$END" >"$T/events" 2>"$T/plain.err"
	n=$(grep -o 'msg=exiting.* events=[0-9]*' "$T/plain.err" | grep -o '[0-9]*$')
	row "$i pg-capture" "$n" "$T/cap_plain_$i.time"
}
capture_metrics() {
	run cap_metrics_$i "$PG_CAPTURE" -d "$CONN" -S metrics_$i --endpos "$END" \
		--metrics-file "$T/capture.prom" --metrics-listen "127.0.0.1:$port" >"$T/events2" 2>"$T/metrics.err"
	m=$(grep -o 'msg=exiting.* events=[0-9]*' "$T/metrics.err" | grep -o '[0-9]*$')
	row "$i pg-capture, metrics" "$m" "$T/cap_metrics_$i.time"
}
filter_plain() {
	run filter_plain_$i "$CDC_FILTER" -T public.audit <"$T/events10" >/dev/null 2>/dev/null
	row "$i cdc-filter" "$lines" "$T/filter_plain_$i.time"
}
filter_metrics() {
	run filter_metrics_$i "$CDC_FILTER" -T public.audit --metrics-file "$T/filter.prom" \
		--metrics-listen "127.0.0.1:$port" <"$T/events10" >/dev/null 2>/dev/null
	row "$i cdc-filter, metrics" "$lines" "$T/filter_metrics_$i.time"
}
for i in $(seq "$REPEAT"); do
	# which goes first alternates: a drift of the machine's speed within a round evens out
	if [ $((i % 2)) = 1 ]; then capture_plain; capture_metrics; else capture_metrics; capture_plain; fi
	# cdc-filter reads the backlog ten times over: long enough to time
	for k in 1 2 3 4 5 6 7 8 9 10; do cat "$T/events"; done >"$T/events10"
	rm -f "$T/events2"
	lines=$(wc -l <"$T/events10")
	if [ $((i % 2)) = 1 ]; then filter_plain; filter_metrics; else filter_metrics; filter_plain; fi
done >"$T/table"
cat "$T/table"
echo
# the cost of metrics: round by round, the reader with metrics against the
# one without of the same round (the machine's speed drifts between rounds);
# the median of those ratios
for prog in pg-capture cdc-filter; do
	paste <(grep -E "^[0-9]+ $prog  " "$T/table" | sort -n | awk '{ print $(NF-1), $NF }') \
		<(grep -E "^[0-9]+ $prog, metrics " "$T/table" | sort -n | awk '{ print $(NF-1), $NF }') |
		awk -v p="$prog" '{ r[NR] = ($3 - $1) * 100 / $1; c[NR] = ($4 - $2) * 100 / $2 }
		function median(a, n,   i, j, t) {
			for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
			return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
		}
		END { printf "%s with metrics, median of %d rounds: %+.1f%% events/s, %+.1f%% CPU per event\n", p, NR, median(r, NR), median(c, NR) }'
done
