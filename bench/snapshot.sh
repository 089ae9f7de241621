#!/usr/bin/env bash
# Snapshot speed: pg-capture --snapshot-table against psql's \copy of the same
# table (as stored, and in key order as the snapshot reads it), while pgbench
# writes to it. Prints rows/s, MB/s and peak RSS side by side. See
# bench/README.md.
#
#   bench/snapshot.sh                     # 1,000,000 rows, 3 rounds
#   BENCH_ROWS=100000 bench/snapshot.sh   # quick check
set -eu
cd "$(dirname "$0")/.."
source tests/lib/testlib.sh
source tests/lib/pgcluster.sh
ROWS=${BENCH_ROWS:-1000000}
REPEAT=${BENCH_REPEAT:-3}
TPS=${BENCH_TPS:-200}
PG_CAPTURE=$PWD/pg-capture/pg-capture
[ -x "$PG_CAPTURE" ] || { echo "bench: build first (make)" >&2; exit 1; }
T=$(mktemp -d /tmp/pgcdc-bench-snapshot.XXXXXX)
cleanup() {
	local p
	for p in $(jobs -p); do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	pg_stop
	rm -rf "$T"
}
trap cleanup EXIT
chmod 755 "$T"
pg_start "$T/pg" "" "timezone = 'UTC'" "autovacuum = off" "checkpoint_timeout = 1h" "max_wal_size = 4GB" >/dev/null
CONN=$(pg_conninfo)
echo "loading $ROWS work items..." >&2
sql "CREATE TABLE items (id bigint PRIMARY KEY, project int NOT NULL, title text NOT NULL,
       status text NOT NULL, points numeric(6,2), updated timestamptz NOT NULL);
     INSERT INTO items SELECT g, g % 97, 'work item ' || g || ' ' || md5(g::text), 'open', (g % 13) * 0.5,
       '2026-01-01'::timestamptz + g * interval '1 second' FROM generate_series(1, $ROWS) g" >/dev/null
sql "VACUUM ANALYZE items" >/dev/null
cat >"$T/load.sql" <<EOF2
\\set a random(1, $ROWS)
UPDATE items SET status = 'done', updated = now() WHERE id = :a;
EOF2
# the write load: TPS single-row updates per second, for the whole run
timeout -k 5 3600 pgbench -n -c 1 -R "$TPS" -T 3000 -f "$T/load.sql" "$CONN" >"$T/load.log" 2>&1 &

secs() { date +%s.%N; }
rate() { awk -v n="$1" -v a="$2" -v b="$3" -v d="${4:-1}" 'BEGIN { printf(d == 1 ? "%d" : "%.1f", n / d / (b - a)) }'; }
best_copy=0 best_ordered=0 best_cap=0 copy_r=0 ordered_r=0
printf '%-28s %10s %9s %12s\n' "round / reader" "rows/s" "MB/s" "peak RSS"
for i in $(seq "$REPEAT"); do
	for order in "" " ORDER BY id"; do
		t0=$(secs)
		bytes=$(psql -X -q -d "$CONN" -c "\\copy (SELECT * FROM items$order) TO STDOUT" | wc -c)
		t1=$(secs)
		r=$(rate "$ROWS" "$t0" "$t1")
		m=$(rate "$bytes" "$t0" "$t1" 1048576)
		if [ -z "$order" ]; then
			printf '%-28s %10s %9s %12s\n' "$i psql \\copy" "$r" "$m" "-"
			[ "$r" -gt "$best_copy" ] && best_copy=$r
			copy_r=$r
		else
			printf '%-28s %10s %9s %12s\n' "$i psql \\copy, key order" "$r" "$m" "-"
			[ "$r" -gt "$best_ordered" ] && best_ordered=$r
			ordered_r=$r
		fi
	done

	"$PG_CAPTURE" -d "$CONN" -S bench$i --create-slot --endpos "$(sql "SELECT pg_current_wal_lsn()")" >/dev/null 2>"$T/create.err" || { cat "$T/create.err" >&2; exit 1; }
	t0=$(secs)
	("$PG_CAPTURE" -d "$CONN" -S bench$i --snapshot-table items 2>"$T/cap.err" | wc -c >"$T/bytes") &
	capjob=$!
	# woken by the log line itself (no polling: forks every 0.1 s would cost the readers CPU)
	timeout 3000 grep -q -m1 'msg="snapshot of table done"' < <(exec tail -n +1 -F "$T/cap.err" 2>/dev/null) || true
	t1=$(secs)
	kill "$!" 2>/dev/null # the tail
	pid=$(pgrep -f "^$PG_CAPTURE -d .* -S bench$i --snapshot-table" | head -1) || true
	rss=$(awk '/^VmHWM/ { print $2 }' "/proc/$pid/status" 2>/dev/null) || rss="?"
	[ -n "$pid" ] && kill -TERM "$pid"
	wait "$capjob" 2>/dev/null || true
	reads=$(grep -o 'msg="snapshot of table done".* rows=[0-9]*' "$T/cap.err" | grep -o '[0-9]*$')
	r=$(rate "$reads" "$t0" "$t1")
	m=$(rate "$(cat "$T/bytes")" "$t0" "$t1" 1048576)
	printf '%-28s %10s %9s %9s kB\n' "$i pg-capture (cdc-json)" "$r" "$m" "$rss"
	[ "$r" -gt "$best_cap" ] && best_cap=$r
	echo "$r $copy_r $ordered_r" >>"$T/rounds"
	"$PG_CAPTURE" -d "$CONN" -S bench$i --drop-slot >/dev/null 2>&1
done
echo
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo "best: pg-capture $best_cap rows/s; psql \\copy $best_copy rows/s as stored ($(ratio "$best_cap" "$best_copy")x)," \
	"$best_ordered rows/s in key order ($(ratio "$best_cap" "$best_ordered")x); while $TPS updates/s ran"
# this machine's speed drifts between rounds: the ratio within each round is the steadier figure
median() { sort -n | awk '{ v[NR] = $1 } END { printf "%.2f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo "median of the rounds' ratios: $(awk '{ printf "%.4f\n", $1 / $2 }' "$T/rounds" | median)x COPY as stored," \
	"$(awk '{ printf "%.4f\n", $1 / $3 }' "$T/rounds" | median)x COPY in key order"
