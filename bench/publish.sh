#!/usr/bin/env bash
# cdc-publish against a local nginx: the sink's own speed (curl), cdc-publish
# alone from a file with --batch 1/100 and --parallel 1/8, end to end from
# PostgreSQL through pg-capture and cdc-publish against pg-capture's drain rate
# and the original design's shape (a psycopg2 listener posting each change),
# and commit-to-delivery latency at a steady commit rate. Prints the tables
# and writes them to bench/out/publish-DATE-TIME.txt. See bench/README.md.
#
#   bench/publish.sh                   about 200,000 events, ~5 minutes on 2 cores
#   BENCH_QUICK=1 bench/publish.sh     a quick check, under a minute
#
# Environment: BENCH_EVENTS (row changes in the workload, default 200000),
# BENCH_REPEAT (runs per throughput contender, default 3; tables show
# medians), BENCH_SECONDS (length of each latency run, default 20),
# BENCH_RATE (commits/s in the latency runs, default 1000), BENCH_LINGER
# (--linger of the batched latency run, default 5 ms), BENCH_CURL (POSTs in
# the curl baseline, default 20000), BENCH_NGINX_WORKERS (default 1),
# BENCH_CONFIGS (batch:parallel pairs for cdc-publish alone, with :keyed to
# leave out the rows that have no key; default "1:1 1:8 100:1 100:8
# 1:8:keyed"), BENCH_E2E (subset of: drain b1p8 b100p8 b1p1
# b100p1 python), BENCH_LATENCY (subset of: b1p1 b1p8 b100p8 b100p8l0
# python), BENCH_TIMEOUT (per run, default 600 s), PG_CAPTURE, CDC_PUBLISH.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(dirname "$HERE")
PG_CAPTURE=${PG_CAPTURE:-$TOP/pg-capture/pg-capture}
CDC_PUBLISH=${CDC_PUBLISH:-$TOP/cdc-publish/cdc-publish}
if [ -n "${BENCH_QUICK:-}" ]; then
	: "${BENCH_EVENTS:=20000}" "${BENCH_REPEAT:=1}" "${BENCH_SECONDS:=5}" "${BENCH_CURL:=5000}"
fi
ROWS=${BENCH_EVENTS:-200000}
REPEAT=${BENCH_REPEAT:-3}
LAT_SECONDS=${BENCH_SECONDS:-20}
RATE=${BENCH_RATE:-1000}
LINGER=${BENCH_LINGER:-5}
CURL_N=${BENCH_CURL:-20000}
WORKERS=${BENCH_NGINX_WORKERS:-1}
CONFIGS=${BENCH_CONFIGS:-1:1 1:8 100:1 100:8 1:8:keyed}
E2E=${BENCH_E2E:-drain b1p8 b100p8 python}
LATENCY=${BENCH_LATENCY:-b1p8 b100p8 b100p8l0 python}
TIMEOUT=${BENCH_TIMEOUT:-600}
PYTHON=/usr/bin/python3
NGINX=/usr/sbin/nginx
TICKS=$(getconf CLK_TCK)

die() { echo "publish.sh: $*" >&2; exit 1; }

[ -x "$PG_CAPTURE" ] || die "$PG_CAPTURE not built (run make)"
[ -x "$CDC_PUBLISH" ] || die "$CDC_PUBLISH not built (run make)"
[ -x /usr/bin/time ] || die "/usr/bin/time missing (apt-get install time)"
command -v curl >/dev/null || die "curl missing (apt-get install curl)"
"$PYTHON" -c 'import psycopg2' 2>/dev/null || die "$PYTHON cannot import psycopg2 (apt-get install python3-psycopg2)"
for v in "$ROWS" "$REPEAT" "$LAT_SECONDS" "$RATE" "$LINGER" "$CURL_N" "$WORKERS" "$TIMEOUT"; do
	case $v in '' | *[!0-9]*) die "BENCH_EVENTS, _REPEAT, _SECONDS, _RATE, _LINGER, _CURL, _NGINX_WORKERS and _TIMEOUT must be numbers" ;; esac
done
[ "$REPEAT" -ge 1 ] || die "BENCH_REPEAT must be at least 1"
[ "$ROWS" -ge 2000 ] || die "BENCH_EVENTS must be at least 2000"
if [ ! -x "$NGINX" ]; then
	[ "$(id -u)" = 0 ] || die "$NGINX missing: as root, apt-get install nginx-light (or run this script as root, it installs it)"
	echo "publish.sh: installing nginx-light (not started as a service)" >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx-light >/dev/null ||
		die "apt-get install nginx-light failed (apt-get update first?)"
	[ -x "$NGINX" ] || die "$NGINX still missing after installing nginx-light"
fi
source "$TOP/tests/lib/pgcluster.sh" || exit 1
PGBENCH=$PGBIN/pgbench
[ -x "$PGBENCH" ] || die "$PGBENCH missing (it comes with postgresql-15)"

T=$(mktemp -d /tmp/pgcdc-bench-publish.XXXXXX)
chmod 755 "$T"
KEYED_PUB=
PIDS=()	# background processes of the current run (timeout passes a signal on to its command)
NGINX_PID='' SINK_PID=''
cleanup() {
	local p
	for p in "${PIDS[@]}" $SINK_PID; do kill "$p" 2>/dev/null; done
	[ -n "$NGINX_PID" ] && kill -QUIT "$NGINX_PID" 2>/dev/null && wait "$NGINX_PID" 2>/dev/null
	pg_stop
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }
psql_f() { psql -X -q -v ON_ERROR_STOP=1 -d "$CONN" "$@" >/dev/null; }

# CPU ticks of a process (utime + stime), or of its reaped children (cutime + cstime)
ticks() {
	local line f
	read -r line 2>/dev/null </proc/"$1"/stat || { echo 0; return 1; }
	f=(${line##*) })
	if [ "${2:-}" = children ]; then echo $((f[13] + f[14])); else echo $((f[11] + f[12])); fi
}
# Busy CPU ticks of the whole machine
busy() {
	local cpu user nice system idle iowait irq softirq steal
	read -r cpu user nice system idle iowait irq softirq steal _ </proc/stat
	echo $((user + nice + system + irq + softirq + steal))
}
# CPU ticks of the nginx workers
sink_ticks() {
	local n=0 p
	for p in $(pgrep -P "$NGINX_PID"); do n=$((n + $(ticks "$p"))); done
	echo "$n"
}
# The sink's access log so far (it is flushed every 200 ms): lines, non-204 lines, body bytes
sink_log() {
	sleep 0.4
	LC_ALL=C awk '{ n++; if ($1 != 204) bad++; if ($2 != "-") bytes += $2 } END { printf "%d %d %d\n", n, bad, bytes }' "$T/nginx/access.log"
}
# "wall user sys rss_kB" of a /usr/bin/time -o file
time_of() { tail -1 "$1" 2>/dev/null | awk 'NF >= 4 { print $1, $2, $3, $4; ok = 1 } END { if (!ok) print "0 0 0 0" }'; }

# --- PostgreSQL, the workload, the events file ------------------------------

log "starting PostgreSQL in $T"
pg_start "$T/pg" "$(free_port)" "max_replication_slots = 16" "autovacuum = off" \
	"checkpoint_timeout = '1h'" "max_wal_size = '16GB'" "timezone = 'UTC'" "max_connections = 40" || exit 1
CONN=$(pg_conninfo)
POSTMASTER=$(head -1 "$T/pg/data/postmaster.pid")
psql_f -f "$TOP/tests/integration/workload.sql" || die "loading workload.sql failed"
psql_f -f "$HERE/workload.sql" || die "loading bench/workload.sql failed"
# the latency runs' table: one row per commit
psql_f -c "CREATE TABLE lat (id bigserial PRIMARY KEY, note text NOT NULL)"

# Slots before the workload, at the same point. pg-capture --create-slot also
# creates the publication FOR ALL TABLES named after the slot, which the other
# pgoutput slots share.
PUB=e2e_pgoutput
log "creating slots"
now=$(sql "SELECT pg_current_wal_lsn()")
"$PG_CAPTURE" -d "$CONN" -S e2e_pgoutput --create-slot --endpos "$now" >/dev/null 2>"$T/create.err" ||
	die "pg-capture --create-slot failed: $(tail -3 "$T/create.err")"
sql "SELECT pg_create_logical_replication_slot('count_pgoutput', 'pgoutput'),
            pg_create_logical_replication_slot('e2e_wal2json', 'wal2json')" >/dev/null || die "creating slots failed"
start=$(sql "SELECT pg_current_wal_lsn()")

# The workload of capture.sh: rounds of ~136 row changes in 27 transactions,
# and in the middle a few large transactions (ROWS/10 rows in the largest).
BIG=$((ROWS / 10))
ROUNDS=$(((ROWS - BIG * 3 / 2 + 68) / 136))
HALF=$((ROUNDS / 2))
log "generating about $ROWS row changes: $ROUNDS rounds, large transactions of up to $BIG rows"
w0=$(date +%s)
psql_f -c "CALL bench_rounds(1, $HALF)" &&
	psql_f -c "CALL bench_big($BIG)" &&
	psql_f -c "CALL bench_rounds($((HALF + 1)), $ROUNDS)" || die "workload failed"
END=$(sql "SELECT pg_current_wal_lsn()")
# something after END, so that every client sees a position past it
sql "SELECT pg_logical_emit_message(true, 'bench', 'end')" >/dev/null
sql "CHECKPOINT"
WAL=$(sql "SELECT pg_size_pretty(pg_wal_lsn_diff('$END', '$start'))")
log "workload done in $(($(date +%s) - w0)) s, $WAL of WAL, end $END"

# The events file for cdc-publish alone: pg-capture's output of the workload
# (also warms the page cache). Lines start with {"op":"NAME", so the op is the
# 4th "-separated field.
log "capturing the events file"
"$PG_CAPTURE" -d "$CONN" -S count_pgoutput --publication "$PUB" --endpos "$END" >"$T/events.jsonl" 2>"$T/count.err" ||
	die "capturing the events failed: $(tail -3 "$T/count.err")"
LC_ALL=C awk -F'"' '
	{ n[$4]++ }
	$4 != "begin" && $4 != "commit" { pub++; bytes += length($0) }
	$4 == "commit" { last = $0 }
	END {
		for (op in n) print "op", op, n[op]
		print "published", pub + 0, bytes + 0
		if (match(last, /"lsn":"[0-9A-F]+\/[0-9A-F]+"/)) print "last", substr(last, RSTART + 7, RLENGTH - 8)
	}' "$T/events.jsonl" >"$T/ops"
EVENTS=$(awk '$1 == "op" && $2 ~ /^(insert|update|delete)$/ { n += $3 } END { print n + 0 }' "$T/ops")
TXS=$(awk '$1 == "op" && $2 == "commit" { print $3 }' "$T/ops")
read -r PUBLISHED PUB_BYTES < <(awk '$1 == "published" { print $2, $3 }' "$T/ops")
LAST_COMMIT=$(awk '$1 == "last" { print $2 }' "$T/ops")
LINES=$(wc -l <"$T/events.jsonl")
FILE_MB=$(du -m "$T/events.jsonl" | cut -f1)
[ "$EVENTS" -gt 0 ] && [ -n "$LAST_COMMIT" ] || die "no events captured"
log "$EVENTS row events in $TXS transactions ($PUBLISHED lines to publish, $LINES lines, $FILE_MB MB), last commit $LAST_COMMIT"

# --- nginx ----------------------------------------------------------------

mkdir -p "$T/nginx"
PORT=$(free_port) || die "no free port"
sed -e "s|@DIR@|$T/nginx|g" -e "s|@PORT@|$PORT|g" -e "s|@WORKERS@|$WORKERS|g" \
	"$HERE/nginx.conf.in" >"$T/nginx/nginx.conf"
"$NGINX" -p "$T/nginx" -c "$T/nginx/nginx.conf" -e "$T/nginx/error.log" >"$T/nginx/stdout" 2>&1 &
NGINX_PID=$!
URL=http://127.0.0.1:$PORT/events
for i in $(seq 1 100); do
	curl -sf -o /dev/null "http://127.0.0.1:$PORT/status" && break
	kill -0 "$NGINX_PID" 2>/dev/null || die "nginx did not start: $(tail -3 "$T/nginx/error.log")"
	sleep 0.05
done
# keep-alive and complete requests: two POSTs with 200 kB bodies on one connection
head -c 200000 /dev/zero | tr '\0' x >"$T/big"
curl -sv --data-binary @"$T/big" "$URL" "$URL" >"$T/curl.check" 2>&1
grep -q 'Re-using existing connection' "$T/curl.check" && [ "$(grep -c '^< HTTP/1.1 204' "$T/curl.check")" = 2 ] ||
	die "nginx sink check failed: $(grep -E '^[<*]' "$T/curl.check" | tail -5)"
log "nginx $("$NGINX" -v 2>&1 | sed 's/.*: //') on $URL, $WORKERS worker(s)"

# --- 1. the sink alone: curl, sequential keep-alive POSTs -------------------

# a typical event: the published line closest to the mean length
AVG=$((PUB_BYTES / PUBLISHED))
LC_ALL=C awk -F'"' -v avg="$AVG" '$4 != "begin" && $4 != "commit" { d = length($0) - avg; if (d < 0) d = -d; if (best == "" || d < bd) { best = $0; bd = d } } END { printf "%s", best }' \
	"$T/events.jsonl" >"$T/event.json"
for ((i = 0; i < CURL_N; i++)); do printf 'url = "%s"\noutput = "/dev/null"\n' "$URL"; done >"$T/curl.cfg"
: >"$T/curl.results"
for ((rep = 1; rep <= REPEAT; rep++)); do
	log "curl run $rep: $CURL_N sequential POSTs of a $(wc -c <"$T/event.json")-byte event"
	read -r n0 _ b0 < <(sink_log)
	s0=$(sink_ticks) m0=$(busy) t0=$(date +%s%N)
	/usr/bin/time -f '%e %U %S %M' -o "$T/time" curl -s -H 'Content-Type: application/json' --data-binary @"$T/event.json" \
		-K "$T/curl.cfg" 2>"$T/curl.err"
	rc=$?
	t1=$(date +%s%N) s1=$(sink_ticks) m1=$(busy)
	read -r n1 bad _ < <(sink_log)
	read -r _ user sys rss < <(time_of "$T/time")
	# rep, rc, wall ns, user, sys, rss, sink ticks, requests, non-204, machine ticks
	echo "$rep|$rc|$((t1 - t0))|$user|$sys|$rss|$((s1 - s0))|$((n1 - n0))|$bad|$((m1 - m0))" >>"$T/curl.results"
done

# --- 2. cdc-publish alone, from the events file ----------------------------

: >"$T/pub.results"
read -r -a CFGS <<<"$CONFIGS"
# B:P:keyed: the events file without the row events that have no key (audit_log:
# no primary key, so every row has the key {} and they all share one ordering
# key, i.e. they are delivered one at a time whatever --parallel says)
if [[ " $CONFIGS " == *:keyed\ * ]]; then
	LC_ALL=C grep -v '^{"op":"\(insert\|update\|delete\)",.*,"key":{},' "$T/events.jsonl" >"$T/keyed.jsonl"
	read -r KEYED_PUB KEYED_BYTES < <(LC_ALL=C awk -F'"' '$4 != "begin" && $4 != "commit" { n++; b += length($0) } END { print n + 0, b + 0 }' "$T/keyed.jsonl")
fi
for ((rep = 1; rep <= REPEAT; rep++)); do
	for ((j = 0; j < ${#CFGS[@]}; j++)); do
		cfg=${CFGS[(j + rep - 1) % ${#CFGS[@]}]}
		IFS=: read -r b par subset <<<"$cfg"
		if [ "$subset" = keyed ]; then
			in=$T/keyed.jsonl npub=$KEYED_PUB nbytes=$KEYED_BYTES
		else
			in=$T/events.jsonl npub=$PUBLISHED nbytes=$PUB_BYTES
		fi
		log "publish run $rep: --batch $b --parallel $par < $(wc -l <"$in") lines${subset:+ ($subset)}"
		read -r n0 _ b0 < <(sink_log)
		s0=$(sink_ticks) m0=$(busy) t0=$(date +%s%N)
		timeout "$TIMEOUT" /usr/bin/time -f '%e %U %S %M' -o "$T/time" \
			"$CDC_PUBLISH" --batch "$b" --parallel "$par" "$URL" <"$in" >/dev/null 2>"$T/pub.err"
		rc=$?
		t1=$(date +%s%N) s1=$(sink_ticks) m1=$(busy)
		read -r n1 bad bytes1 < <(sink_log)
		read -r _ user sys rss < <(time_of "$T/time")
		delivered=$(sed -n 's/.*msg=exiting delivered=\([0-9]*\).*/\1/p' "$T/pub.err" | tail -1)
		reqs=$((n1 - n0))
		# bodies: the lines as they came, in a JSON array when batched ([ , ])
		if [ "$b" = 1 ]; then want=$nbytes; else want=$((nbytes + npub + reqs)); fi
		check=ok
		[ "${delivered:-0}" = "$npub" ] || check="delivered ${delivered:-?} of $npub"
		[ "$bad" = 0 ] || check="$bad answers not 204"
		[ $((bytes1 - b0)) = "$want" ] || check="$check; sink got $((bytes1 - b0)) body bytes, expected $want"
		[ "$b" != 1 ] || [ "$reqs" = "$npub" ] || check="$check; sink got $reqs requests"
		[ "$rc" = 0 ] || { log "cdc-publish exited with $rc:"; grep -v '^Command exited' "$T/pub.err" | tail -5 >&2; }
		# key, rep, rc, wall ns, user, sys, rss, sink ticks, requests, machine ticks, check, events
		echo "$cfg|$rep|$rc|$((t1 - t0))|$user|$sys|$rss|$((s1 - s0))|$reqs|$((m1 - m0))|$check|$npub" >>"$T/pub.results"
	done
done

# --- 3. end to end: PostgreSQL -> pg-capture -> cdc-publish -> nginx ----------

# e2e_contender KEY: LABEL, MASTER (the slot made before the workload), OPTS (cdc-publish options)
e2e_contender() {
	OPTS=() MASTER=e2e_pgoutput
	case $1 in
	drain) LABEL="pg-capture > /dev/null (drain rate)" ;;
	b1p1) LABEL="pg-capture + cdc-publish --batch 1" OPTS=(--batch 1 --parallel 1) ;;
	b1p8) LABEL="pg-capture + cdc-publish --batch 1 --parallel 8" OPTS=(--batch 1 --parallel 8) ;;
	b100p1) LABEL="pg-capture + cdc-publish --batch 100" OPTS=(--batch 100 --parallel 1) ;;
	b100p8) LABEL="pg-capture + cdc-publish --batch 100 --parallel 8" OPTS=(--batch 100 --parallel 8) ;;
	python) LABEL="python psycopg2 listener, POST each (wal2json)" MASTER=e2e_wal2json ;;
	*) die "unknown end-to-end contender $1" ;;
	esac
}

# e2e_run REP KEY: drains a fresh copy of the contender's slot to END
e2e_run() {
	local rep=$1 key=$2 slot rc_cap=0 rc_pub=0 t0 t1 s0 s1 m0 m1 r0 r1 n0 n1 bad seen='' conf check=ok
	local cu=0 cs=0 crss=0 pu=0 ps=0 prss=0
	e2e_contender "$key"
	slot=${MASTER}_$rep
	sql "SELECT pg_copy_logical_replication_slot('$MASTER', '$slot')" >/dev/null || die "copying $MASTER failed"
	log "end-to-end run $rep: $LABEL"
	rm -f "$T/ack" "$T/data" "$T/time.cap" "$T/time.pub"
	mkfifo -m 600 "$T/ack" "$T/data"
	read -r n0 _ _ < <(sink_log)
	r0=$(ticks "$POSTMASTER" children) s0=$(sink_ticks) m0=$(busy) t0=$(date +%s%N)
	case $key in
	drain)
		timeout "$TIMEOUT" /usr/bin/time -f '%e %U %S %M' -o "$T/time.cap" "$PG_CAPTURE" -d "$CONN" -S "$slot" \
			--publication "$PUB" --endpos "$END" --status-interval 10 >/dev/null 2>"$T/cap.err"
		rc_cap=$? ;;
	python)
		timeout "$TIMEOUT" /usr/bin/time -f '%e %U %S %M' -o "$T/time.pub" "$PYTHON" "$HERE/post_listener.py" \
			"$CONN" "$slot" "$URL" "$END" >"$T/posted" 2>"$T/pub.err"
		rc_pub=$?
		seen=$(head -1 "$T/posted") ;;
	*)
		timeout "$TIMEOUT" /usr/bin/time -f '%e %U %S %M' -o "$T/time.cap" "$PG_CAPTURE" -d "$CONN" -S "$slot" \
			--publication "$PUB" --endpos "$END" --status-interval 10 --ack-fifo "$T/ack" >"$T/data" 2>"$T/cap.err" &
		PIDS=($!)
		timeout "$TIMEOUT" /usr/bin/time -f '%e %U %S %M' -o "$T/time.pub" "$CDC_PUBLISH" "${OPTS[@]}" \
			--ack-fifo "$T/ack" "$URL" <"$T/data" >/dev/null 2>"$T/pub.err" &
		PIDS+=($!)
		wait "${PIDS[0]}"
		rc_cap=$?
		wait "${PIDS[1]}"
		rc_pub=$?
		PIDS=()
		seen=$(sed -n 's/.*msg=exiting delivered=\([0-9]*\).*/\1/p' "$T/pub.err" | tail -1) ;;
	esac
	t1=$(date +%s%N)
	# the walsender exits right after its client; the postmaster reaps it
	for i in $(seq 1 50); do
		[ "$(sql "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '$slot' AND active")" = 0 ] && break
		sleep 0.1
	done
	s1=$(sink_ticks) m1=$(busy) r1=$(ticks "$POSTMASTER" children)
	read -r n1 bad _ < <(sink_log)
	conf=$(sql "SELECT confirmed_flush_lsn || CASE WHEN confirmed_flush_lsn >= '$LAST_COMMIT' THEN '' ELSE ' <' END
	              FROM pg_replication_slots WHERE slot_name = '$slot'")
	sql "SELECT pg_drop_replication_slot('$slot')" >/dev/null
	[ -f "$T/time.cap" ] && read -r _ cu cs crss < <(time_of "$T/time.cap")
	[ -f "$T/time.pub" ] && read -r _ pu ps prss < <(time_of "$T/time.pub")
	case $key in
	drain) ;;
	python) [ "$seen" = "$EVENTS" ] || check="posted ${seen:-?} of $EVENTS row changes"
		[ $((n1 - n0)) = "${seen:-x}" ] || check="$check; sink got $((n1 - n0)) requests" ;;
	*) [ "$seen" = "$PUBLISHED" ] || check="delivered ${seen:-?} of $PUBLISHED"
		[ "$key" != b1p1 ] && [ "$key" != b1p8 ] || [ $((n1 - n0)) = "$PUBLISHED" ] || check="$check; sink got $((n1 - n0)) requests"
		[[ $conf != *' <' ]] || check="$check; slot not confirmed to the last commit" ;;
	esac
	[ "$bad" = 0 ] || check="$check; $bad answers not 204"
	if [ "$rc_cap" != 0 ] || [ "$rc_pub" != 0 ]; then
		log "$LABEL: exit statuses $rc_cap (capture) $rc_pub (publish):"
		cat "$T/cap.err" "$T/pub.err" 2>/dev/null | grep -v '^Command exited' | tail -5 >&2
	fi
	# key, label, rep, rc capture, rc publish, wall ns, capture user, sys, rss, publish/python user, sys, rss,
	# sink ticks, requests, walsender (reaped) ticks, machine ticks, slot confirmed, check
	echo "$key|$LABEL|$rep|$rc_cap|$rc_pub|$((t1 - t0))|$cu|$cs|$crss|$pu|$ps|$prss|$((s1 - s0))|$((n1 - n0))|$((r1 - r0))|$((m1 - m0))|$conf|$check" >>"$T/e2e.results"
}

: >"$T/e2e.results"
read -r -a KEYS <<<"$E2E"
for k in "${KEYS[@]}"; do e2e_contender "$k"; done
for ((rep = 1; rep <= REPEAT; rep++)); do
	for ((j = 0; j < ${#KEYS[@]}; j++)); do
		e2e_run "$rep" "${KEYS[(j + rep - 1) % ${#KEYS[@]}]}"
	done
done

# --- 4. latency at a steady commit rate ---------------------------------------

# lat_contender KEY: LABEL, PLUGIN, OPTS (cdc-publish options)
lat_contender() {
	OPTS=() PLUGIN=pgoutput
	case $1 in
	b1p1) LABEL="cdc-publish --batch 1" OPTS=(--batch 1 --parallel 1) ;;
	b1p8) LABEL="cdc-publish --batch 1 --parallel 8" OPTS=(--batch 1 --parallel 8) ;;
	b100p8) LABEL="cdc-publish --batch 100 --parallel 8 --linger $LINGER" OPTS=(--batch 100 --parallel 8 --linger "$LINGER") ;;
	b100p8l0) LABEL="cdc-publish --batch 100 --parallel 8 --linger 0" OPTS=(--batch 100 --parallel 8) ;;
	python) LABEL="python psycopg2 listener, POST each" PLUGIN=wal2json ;;
	*) die "unknown latency contender $1" ;;
	esac
}

printf 'INSERT INTO lat (note) VALUES (:client_id);\n' >"$T/lat.sql"
: >"$T/lat.results"
lat_run() {
	local key=$1 slot=lat_$1 sport i rc_cap=0 rc_pub=0 pu=0 ps=0 prss=0 stats lag
	lat_contender "$key"
	log "latency: $LABEL, $RATE commits/s for $LAT_SECONDS s"
	sql "SELECT pg_create_logical_replication_slot('$slot', '$PLUGIN')" >/dev/null || die "creating $slot failed"
	sport=$(free_port) || die "no free port"
	"$PYTHON" "$HERE/latency_sink.py" serve "$sport" "$T/lat.$key" 2>"$T/sink.err" &
	SINK_PID=$!
	for i in $(seq 1 100); do
		(echo >"/dev/tcp/127.0.0.1/$sport") 2>/dev/null && break
		sleep 0.05
	done
	rm -f "$T/ack" "$T/data" "$T/time.pub"
	mkfifo -m 600 "$T/ack" "$T/data"
	if [ "$key" = python ]; then
		timeout "$TIMEOUT" /usr/bin/time -f '%e %U %S %M' -o "$T/time.pub" "$PYTHON" "$HERE/post_listener.py" \
			"$CONN" "$slot" "http://127.0.0.1:$sport/events" >/dev/null 2>"$T/pub.err" &
		PIDS=($!)
	else
		timeout "$TIMEOUT" "$PG_CAPTURE" -d "$CONN" -S "$slot" --publication "$PUB" --ack-fifo "$T/ack" \
			>"$T/data" 2>"$T/cap.err" &
		PIDS=($!)
		timeout "$TIMEOUT" /usr/bin/time -f '%e %U %S %M' -o "$T/time.pub" "$CDC_PUBLISH" "${OPTS[@]}" \
			--ack-fifo "$T/ack" "http://127.0.0.1:$sport/events" <"$T/data" >/dev/null 2>"$T/pub.err" &
		PIDS+=($!)
	fi
	for i in $(seq 1 200); do
		[ "$(sql "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '$slot' AND active")" = 1 ] && break
		sleep 0.05
	done
	sleep 0.5
	"$PGBENCH" -n -h 127.0.0.1 -p "$PGTEST_PORT" -U postgres -c 4 -j 2 -R "$RATE" -T "$LAT_SECONDS" \
		-f "$T/lat.sql" postgres >"$T/pgbench.out" 2>&1 || log "pgbench failed: $(tail -3 "$T/pgbench.out")"
	lag=$(sed -n 's/^rate limit schedule lag: avg \([0-9.]*\).*max \([0-9.]*\).*/\1|\2/p' "$T/pgbench.out")
	sleep 1	# the tail
	# pg-capture stops on SIGTERM, closes its output; cdc-publish delivers what it has and exits.
	# The Python listener gets it alone (timeout would pass it on to /usr/bin/time too).
	if [ "$key" = python ]; then
		kill "$(pgrep -P "$(pgrep -P "${PIDS[0]}")")" 2>/dev/null
	else
		kill "${PIDS[0]}" 2>/dev/null
	fi
	wait "${PIDS[0]}"
	rc_cap=$?
	if [ "${#PIDS[@]}" = 2 ]; then
		wait "${PIDS[1]}"
		rc_pub=$?
	fi
	PIDS=()
	kill "$SINK_PID" 2>/dev/null
	wait "$SINK_PID"
	SINK_PID=
	for i in $(seq 1 50); do
		[ "$(sql "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '$slot' AND active")" = 0 ] && break
		sleep 0.1
	done
	sql "SELECT pg_drop_replication_slot('$slot')" >/dev/null
	[ -f "$T/time.pub" ] && read -r _ pu ps prss < <(time_of "$T/time.pub")
	stats=$("$PYTHON" "$HERE/latency_sink.py" stats "$T/lat.$key" lat)
	# key, label, rc capture, rc publish, events, commits/s, p50, p99, p99.9, max, user, sys, rss, pgbench lag avg max (ms)
	echo "$key|$LABEL|$rc_cap|$rc_pub|${stats// /|}|$pu|$ps|$prss|${lag:--|-}" >>"$T/lat.results"
}
read -r -a KEYS <<<"$LATENCY"
for k in "${KEYS[@]}"; do lat_contender "$k"; done
for k in "${KEYS[@]}"; do lat_run "$k"; done

# --- the report -------------------------------------------------------------

# table: rows of |-separated cells on stdin, the first one the header; the
# first column left-aligned, the others right-aligned
table() {
	awk -F'|' '
	{ for (c = 1; c <= NF; c++) { cell[NR, c] = $c; if (length($c) > w[c]) w[c] = length($c) } if (NF > nc) nc = NF }
	END {
		for (r = 1; r <= NR; r++) {
			line = ""
			for (c = 1; c <= nc; c++) line = line sprintf(c == 1 ? "%-*s" : " | %*s", w[c], cell[r, c])
			print line
			if (r == 1) { s = ""; for (c = 1; c <= nc; c++) s = s sprintf("%*s", w[c] + (c == 1 ? 0 : 3), ""); gsub(/ /, "-", s); print s }
		}
	}'
}
# median(KEY, FIELD) over v[KEY, 1..cnt[KEY], FIELD], for awk programs
AWK_MEDIAN='function median(k, f,   a, i, j, m, t) {
	m = cnt[k]
	for (i = 1; i <= m; i++) a[i] = v[k, i, f]
	for (i = 2; i <= m; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
	return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
}'

mkdir -p "$HERE/out"
REPORT=$HERE/out/publish-$(date +%Y%m%d-%H%M%S).txt
{
	echo "cdc-publish benchmark $(date '+%Y-%m-%d %H:%M:%S %z'), commit $(git -C "$TOP" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$TOP" diff --quiet HEAD -- cdc-publish pg-capture lib 2>/dev/null || echo ' (modified)')"
	echo "host: $(nproc) cores, $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1); $("$PGBIN/postgres" --version); nginx $("$NGINX" -v 2>&1 | sed 's/.*\///'), $WORKERS worker(s); $(curl --version | head -1 | cut -d' ' -f1-2)"
	echo "workload: BENCH_EVENTS=$ROWS: $EVENTS row changes in $TXS transactions, $WAL of WAL, largest transaction $BIG rows;"
	echo "  pg-capture wrote $LINES lines ($FILE_MB MB), $PUBLISHED of them published (rows and schema lines; begin/commit are not), mean $AVG bytes"
	echo "median of $REPEAT runs; 'sink' is the nginx workers' CPU; 'busy' is what the whole machine used (cores)"
	echo
	echo "1. nginx alone: curl, $CURL_N sequential keep-alive POSTs of a $(wc -c <"$T/event.json")-byte event"
	echo
	awk -F'|' -v n="$CURL_N" -v hz="$TICKS" "$AWK_MEDIAN"'
	{ i = ++cnt["c"]; v["c", i, "wall"] = $3 / 1e9; v["c", i, "cpu"] = $4 + $5; v["c", i, "sink"] = $7 / hz; v["c", i, "busy"] = $10 / hz / ($3 / 1e9)
	  if ($2 != 0 || $8 != n || $9 != 0) bad = bad sprintf(" run %d: exit %s, %s requests, %s not 204;", $1, $2, $8, $9) }
	END {
		print "client|requests|wall s|requests/s|client us/req|sink us/req|busy"
		w = median("c", "wall")
		printf "curl (one connection)|%d|%.2f|%.0f|%.1f|%.1f|%.2f\n", n, w, n / w, median("c", "cpu") * 1e6 / n, median("c", "sink") * 1e6 / n, median("c", "busy")
		if (bad) print "CHECK FAILED:" bad >"/dev/stderr"
	}' "$T/curl.results" 2>"$T/check" | table
	cat "$T/check"
	echo
	echo "2. cdc-publish alone: $LINES lines from a file, $PUBLISHED events published${KEYED_PUB:+ (rows with a key only: $KEYED_PUB)}"
	echo
	awk -F'|' -v hz="$TICKS" "$AWK_MEDIAN"'
	{
		if (!($1 in cnt)) { order[++nk] = $1; events[$1] = $12 }
		i = ++cnt[$1]; v[$1, i, "wall"] = $4 / 1e9; v[$1, i, "cpu"] = $5 + $6; v[$1, i, "sink"] = $8 / hz
		v[$1, i, "req"] = $9; v[$1, i, "busy"] = $10 / hz / ($4 / 1e9)
		if ($7 / 1024 > rss[$1]) rss[$1] = $7 / 1024
		if ($3 != 0 || $11 != "ok") bad[$1] = bad[$1] sprintf(" run %d: exit %s, %s;", $2, $3, $11)
	}
	END {
		print "options|events|requests|wall s|events/s|CPU us/event|sink us/event|peak RSS MB|busy"
		for (k = 1; k <= nk; k++) {
			key = order[k]; split(key, bp, ":"); w = median(key, "wall"); n = events[key]
			printf "--batch %s --parallel %s%s%s|%d|%d|%.2f|%.0f|%.2f|%.2f|%.1f|%.2f\n", bp[1], bp[2], (bp[3] == "keyed" ? ", rows with a key only" : ""), (key in bad ? " FAILED" : ""), n,
				median(key, "req"), w, n / w, median(key, "cpu") * 1e6 / n, median(key, "sink") * 1e6 / n, rss[key], median(key, "busy")
		}
		for (key in bad) print "CHECK FAILED --batch/--parallel " key ":" bad[key] >"/dev/stderr"
	}' "$T/pub.results" 2>"$T/check" | table
	cat "$T/check"
	echo
	echo "3. end to end: a fresh copy of a slot holding the workload drained to its end, $EVENTS row changes"
	echo
	awk -F'|' -v n="$EVENTS" -v hz="$TICKS" "$AWK_MEDIAN"'
	{
		k = $1
		if (!(k in cnt)) { order[++nk] = k; label[k] = $2 }
		i = ++cnt[k]; v[k, i, "wall"] = $6 / 1e9; v[k, i, "cap"] = $7 + $8; v[k, i, "pub"] = $10 + $11
		v[k, i, "sink"] = $13 / hz; v[k, i, "ws"] = $15 / hz; v[k, i, "req"] = $14; v[k, i, "busy"] = $16 / hz / ($6 / 1e9)
		if ($9 / 1024 > crss[k]) crss[k] = $9 / 1024
		if ($12 / 1024 > prss[k]) prss[k] = $12 / 1024
		if ($4 != 0 || $5 != 0 || $18 != "ok") bad[k] = bad[k] sprintf(" run %d: exit %s/%s, %s;", $3, $4, $5, $18)
	}
	END {
		print "pipeline|events|wall s|events/s|x drain|capture us/ev|publish us/ev|sink us/ev|walsender s|capture RSS MB|publish RSS MB|requests|busy"
		if ("drain" in cnt) drain = n / median("drain", "wall")
		for (j = 1; j <= nk; j++) {
			k = order[j]; w = median(k, "wall")
			printf "%s%s|%d|%.2f|%.0f|%s|%s|%s|%.2f|%.2f|%s|%s|%d|%.2f\n", label[k], (k in bad ? " FAILED" : ""), n, w, n / w,
				(drain ? sprintf("%.2f", n / w / drain) : "-"),
				(k == "python" ? "-" : sprintf("%.2f", median(k, "cap") * 1e6 / n)),
				(k == "drain" ? "-" : sprintf("%.2f", median(k, "pub") * 1e6 / n)),
				sprintf("%.2f", median(k, "sink") * 1e6 / n), median(k, "ws"),
				(k == "python" ? "-" : sprintf("%.1f", crss[k])),
				(k == "drain" ? "-" : sprintf("%.1f", prss[k])), median(k, "req"), median(k, "busy")
		}
		for (k in bad) print "CHECK FAILED " label[k] ":" bad[k] >"/dev/stderr"
	}' "$T/e2e.results" 2>"$T/check" | table
	cat "$T/check"
	echo "  (publish us/ev and RSS: cdc-publish, or the Python listener; walsender: CPU of the server process reaped by the postmaster;"
	echo "  RSS: the largest over the runs)"
	echo
	echo "4. commit-to-delivery latency: pgbench at $RATE commits/s (one INSERT each) for $LAT_SECONDS s, pg-capture --ack-fifo |"
	echo "   cdc-publish --ack-fifo to a Python sink stamping arrivals (latency = arrival - the event's commit ts)"
	echo
	awk -F'|' '
	{
		ok = $3 == 0 && $4 == 0 ? "" : " FAILED (exit " $3 "/" $4 ")"
		rows[++n] = sprintf("%s%s|%s|%s|%s|%s|%s|%s|%.1f|%.1f|%s / %s", $2, ok, $5, $6, $7, $8, $9, $10, ($11 + $12) * 1e6 / ($5 > 0 ? $5 : 1), $13 / 1024, $14, $15)
	}
	END {
		print "pipeline|events|commits/s|p50 ms|p99 ms|p99.9 ms|max ms|publish us/ev|RSS MB|pgbench lag avg/max ms"
		for (i = 1; i <= n; i++) print rows[i]
	}' "$T/lat.results" | table
	echo
	echo "goals (from the issue):"
	awk -F'|' "$AWK_MEDIAN"'$1 == "1:8" { v["x", ++cnt["x"], "wall"] = $4 / 1e9; n = $12 } END {
		if (!cnt["x"]) exit
		x = median("x", "wall")
		printf "  one event per request, --parallel 8: %.0f events/s (goal >= 20000): %s\n", n / x, (n / x >= 20000 ? "met" : "NOT met")
	}' "$T/pub.results"
	awk -F'|' -v n="$EVENTS" "$AWK_MEDIAN"'{ v[$1, ++cnt[$1], "wall"] = $6 / 1e9 }
	END {
		if (!("drain" in cnt)) exit
		d = n / median("drain", "wall")
		for (k in cnt) if (k ~ /^b100/) { e = n / median(k, "wall")
			printf "  batched end to end (%s): %.0f events/s = %.2fx the drain rate %.0f (goal >= 0.9x): %s\n", k, e, e / d, d, (e / d >= 0.9 ? "met" : "NOT met") }
		if ("b1p8" in cnt) printf "  (one event per request end to end, b1p8: %.2fx the drain rate)\n", n / median("b1p8", "wall") / d
	}' "$T/e2e.results"
	awk -F'|' '$1 != "python" { printf "  p99 commit to delivery at %s commits/s, %s: %s ms (goal < 10): %s\n", $6, $2, $8, ($8 != "-" && $8 < 10) ? "met" : "NOT met" }' "$T/lat.results"
	awk -F'|' 'FILENAME ~ /pub/ { if ($7 > m) m = $7 } FILENAME ~ /e2e/ && $1 != "python" && $1 != "drain" { if ($12 > m) m = $12 } FILENAME ~ /lat/ && $1 != "python" { if ($13 > m) m = $13 }
	FILENAME ~ /e2e/ && $1 != "python" { if ($1 == "drain") { if ($9 > d) d = $9 } else if ($9 > c) c = $9 }
	END {
		printf "  memory: largest cdc-publish peak RSS over every run %.1f MB (default --window 10000, transactions up to '"$BIG"' rows)\n", m / 1024
		if (c) printf "  (pg-capture peak RSS: %.1f MB draining to /dev/null, up to %.1f MB feeding cdc-publish)\n", d / 1024, c / 1024
	}' \
		"$T/pub.results" "$T/e2e.results" "$T/lat.results"
	echo
	echo "runs:"
	awk -F'|' -v hz="$TICKS" '{ printf "  curl %d: exit %s, %.2f s, curl %.2f s CPU, nginx %.2f s CPU, %s requests, %s not 204, machine busy %.2f cores\n", $1, $2, $3 / 1e9, $4 + $5, $7 / hz, $8, $9, $10 / hz / ($3 / 1e9) }' "$T/curl.results"
	awk -F'|' -v hz="$TICKS" '{ printf "  publish %d --batch/--parallel %s: exit %s, %.2f s, %.2f s CPU (%.2f user), %.1f MB, nginx %.2f s CPU, %s requests, machine busy %.2f cores, other load %.2f cores; %s\n",
		$2, $1, $3, $4 / 1e9, $5 + $6, $5, $7 / 1024, $8 / hz, $9, $10 / hz / ($4 / 1e9), ($10 / hz - $5 - $6 - $8 / hz) / ($4 / 1e9), $11 }' "$T/pub.results"
	awk -F'|' -v hz="$TICKS" '{ printf "  e2e %d %s: exit %s/%s, %.2f s, capture %.2f s CPU %.1f MB, publish %.2f s CPU %.1f MB, nginx %.2f s CPU, walsender %.2f s, %s requests, machine busy %.2f cores, other load %.2f cores, slot confirmed %s; %s\n",
		$3, $1, $4, $5, $6 / 1e9, $7 + $8, $9 / 1024, $10 + $11, $12 / 1024, $13 / hz, $15 / hz, $14, $16 / hz / ($6 / 1e9), ($16 / hz - $7 - $8 - $10 - $11 - $13 / hz - $15 / hz) / ($6 / 1e9), $17, $18 }' "$T/e2e.results"
} >"$REPORT"
cat "$REPORT"
echo "(written to ${REPORT#"$TOP"/})"
! grep -q 'FAILED' "$REPORT"
