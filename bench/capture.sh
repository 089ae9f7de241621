#!/usr/bin/env bash
# Drain one retained workload through pg-capture, pg_recvlogical and a Python
# psycopg2 listener, each from its own slot created at the same point, and
# print a table side by side with the server's own decoding rate (no client:
# the limit), and each contender's ratio to it. See bench/README.md.
#
#   bench/capture.sh                    about 1,000,000 row changes
#   BENCH_ROWS=50000 bench/capture.sh   a quick run
#
# Environment: BENCH_ROWS (row changes to generate, default 1000000),
# BENCH_CONTENDERS (space-separated subset of: server-pgoutput server-wal2json
# pgc-pgoutput pgc-wal2json recv-pgoutput recv-wal2json recv-test_decoding
# py-wal2json; the ratio column needs server-pgoutput),
# BENCH_REPEAT (runs per contender, default 3; the table shows medians),
# BENCH_SAMPLE (walsender CPU sampling period, default 0.1 s),
# BENCH_TIMEOUT (per contender, default 900 s), PG_CAPTURE (binary).
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(dirname "$HERE")
PG_CAPTURE=${PG_CAPTURE:-$TOP/pg-capture/pg-capture}
ROWS=${BENCH_ROWS:-1000000}
SAMPLE=${BENCH_SAMPLE:-0.1}
TIMEOUT=${BENCH_TIMEOUT:-900}
REPEAT=${BENCH_REPEAT:-3}
CONTENDERS=${BENCH_CONTENDERS:-server-pgoutput server-wal2json pgc-pgoutput pgc-wal2json recv-pgoutput recv-wal2json recv-test_decoding py-wal2json}
PYTHON=/usr/bin/python3
TICKS=$(getconf CLK_TCK)

die() { echo "capture.sh: $*" >&2; exit 1; }

[ -x "$PG_CAPTURE" ] || die "$PG_CAPTURE not built (run make)"
[ -x /usr/bin/time ] || die "/usr/bin/time missing (apt-get install time)"
"$PYTHON" -c 'import psycopg2' 2>/dev/null || die "$PYTHON cannot import psycopg2 (apt-get install python3-psycopg2)"
case $ROWS$REPEAT in '' | *[!0-9]*) die "BENCH_ROWS and BENCH_REPEAT must be numbers" ;; esac
[ "$REPEAT" -ge 1 ] || die "BENCH_REPEAT must be at least 1"
[ "$ROWS" -ge 2000 ] || die "BENCH_ROWS must be at least 2000"
source "$TOP/tests/lib/pgcluster.sh" || exit 1
RECVLOGICAL=$PGBIN/pg_recvlogical

T=$(mktemp -d /tmp/pgcdc-bench.XXXXXX)
chmod 755 "$T"
SAMPLER= CLIENT=
cleanup() {
	[ -n "$CLIENT" ] && kill "$CLIENT" 2>/dev/null	# timeout passes it on to the client
	[ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null
	[ -n "${LOOKUP_PID:-}" ] && kill "$LOOKUP_PID" 2>/dev/null
	pg_stop
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }
psql_f() { psql -X -q -v ON_ERROR_STOP=1 -d "$CONN" "$@" >/dev/null; }

log "starting PostgreSQL in $T"
# no autovacuum or timed checkpoints: nothing else competes for the 2 cores
# while the slots are drained
pg_start "$T/pg" "$(free_port)" "max_replication_slots = 16" "autovacuum = off" \
	"checkpoint_timeout = '1h'" "max_wal_size = '16GB'" "timezone = 'UTC'" || exit 1
CONN=$(pg_conninfo)
POSTMASTER=$(head -1 "$T/pg/data/postmaster.pid")
psql_f -f "$TOP/tests/integration/workload.sql" || die "loading workload.sql failed"
psql_f -f "$HERE/workload.sql" || die "loading bench/workload.sql failed"

# All slots before the workload, at the same point (no changes in between).
# pg-capture --create-slot also creates the publication FOR ALL TABLES named
# after the slot, which the other pgoutput slots share.
PUB=pgc_pgoutput
log "creating slots"
now=$(sql "SELECT pg_current_wal_lsn()")
"$PG_CAPTURE" -d "$CONN" -S pgc_pgoutput --create-slot --endpos "$now" >/dev/null 2>"$T/create.err" ||
	die "pg-capture --create-slot failed: $(tail -3 "$T/create.err")"
"$PG_CAPTURE" -d "$CONN" -S pgc_wal2json --plugin wal2json --create-slot --endpos "$now" >/dev/null 2>"$T/create.err" ||
	die "pg-capture --plugin wal2json --create-slot failed: $(tail -3 "$T/create.err")"
sql "SELECT pg_create_logical_replication_slot('count_pgoutput', 'pgoutput'),
            pg_create_logical_replication_slot('recv_pgoutput', 'pgoutput'),
            pg_create_logical_replication_slot('recv_wal2json', 'wal2json'),
            pg_create_logical_replication_slot('recv_test_decoding', 'test_decoding'),
            pg_create_logical_replication_slot('py_wal2json', 'wal2json')" >/dev/null || die "creating slots failed"
start=$(sql "SELECT pg_current_wal_lsn()")

# The workload: rounds of ~136 row changes in 27 transactions, and in the
# middle a few large transactions (ROWS/10 rows in the largest, 1.5*ROWS/10 in all).
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

# The exact number of row events, counted from pg-capture's output through a
# slot of its own (also warms the page cache for everyone).
log "counting events"
# Lines start with {"op":"NAME", so the op is the 4th "-separated field.
"$PG_CAPTURE" -d "$CONN" -S count_pgoutput --publication "$PUB" --endpos "$END" 2>"$T/count.err" |
	LC_ALL=C awk -F'"' '{ n[$4]++ } $4 == "commit" { last = $0 }
	END {
		for (op in n) print "op", op, n[op]
		if (match(last, /"lsn":"[0-9A-F]+\/[0-9A-F]+"/)) print "last", substr(last, RSTART + 7, RLENGTH - 8)
	}' >"$T/ops"
[ "${PIPESTATUS[0]}" = 0 ] || die "counting run failed: $(tail -3 "$T/count.err")"
EVENTS=$(awk '$1 == "op" && $2 ~ /^(insert|update|delete)$/ { n += $3 } END { print n + 0 }' "$T/ops")
TXS=$(awk '$1 == "op" && $2 == "commit" { print $3 }' "$T/ops")
LAST_COMMIT=$(awk '$1 == "last" { print $2 }' "$T/ops")
[ "$EVENTS" -gt 0 ] && [ -n "$LAST_COMMIT" ] || die "no events counted"
log "$EVENTS row events in ${TXS:-?} transactions, last commit $LAST_COMMIT ($(awk '$1 == "op" { printf "%s%s %s", (NR > 1 ? ", " : ""), $2, $3 }' "$T/ops"))"

# CPU ticks of a process: utime + stime, or of its reaped children (cutime + cstime)
ticks() {
	local line f
	read -r line 2>/dev/null </proc/"$1"/stat || return 1
	f=(${line##*) })
	if [ "${2:-}" = children ]; then echo $((f[13] + f[14])); else echo $((f[11] + f[12])); fi
}

# Keep the last utime+stime of the walsender until it exits. No forks in the
# loop (read -t on an idle pipe sleeps), so the sampling itself costs ~nothing.
sampler() {
	local pid=$1 out=$2 line f fd
	exec {fd}<> <(:)
	while read -r line 2>/dev/null </proc/"$pid"/stat; do
		f=(${line##*) })
		echo $((f[11] + f[12])) >"$out"
		read -r -t "$SAMPLE" -u "$fd" _
	done
}

# One psql session answers the walsender look-ups, so that no backend of ours
# exits during a run: the postmaster's reaped-children CPU then grows by the
# walsender's alone. lookup QUERY sets REPLY to the first line of the result.
coproc LOOKUP { psql -X -q -At -v ON_ERROR_STOP=1 -d "$CONN" 2>&1; }
LOOKUP_PID=$LOOKUP_PID
lookup() {
	REPLY=
	echo "$1;" >&"${LOOKUP[1]}" && read -r -t 10 REPLY <&"${LOOKUP[0]}" ||
		die "walsender look-up failed"
}

# Busy CPU ticks of the whole machine, to tell when something else competed.
busy() {
	local cpu user nice system idle iowait irq softirq steal
	read -r cpu user nice system idle iowait irq softirq steal _ </proc/stat
	echo $((user + nice + system + irq + softirq + steal))
}

# run REP KEY LABEL SLOT STDOUT COMMAND...: one timed drain; appends a result line
run() {
	local rep=$1 key=$2 label=$3 slot=$4 stdout=$5 pid= cpid rc t0 t1 i reaped0 reaped1 busy0 busy1 b0 b1
	shift 5
	log "run $rep: $label from $slot"
	reaped0=$(ticks "$POSTMASTER" children)
	busy0=$(busy) b0=$(date +%s%N)
	echo 0 >"$T/ws"
	t0=$(date +%s%N)
	timeout "$TIMEOUT" /usr/bin/time -f '%e %U %S %M %w' -o "$T/time" "$@" >"$stdout" 2>"$T/err" &
	cpid=$! CLIENT=$!
	for i in $(seq 1 500); do
		lookup "SELECT coalesce(active_pid::text, '-') FROM pg_replication_slots WHERE slot_name = '$slot'"
		[ "$REPLY" != - ] && pid=$REPLY && break
		kill -0 "$cpid" 2>/dev/null || break
		sleep 0.01
	done
	if [ -n "$pid" ]; then
		sampler "$pid" "$T/ws" &
		SAMPLER=$!
	fi
	wait "$cpid"
	rc=$? CLIENT=
	t1=$(date +%s%N)
	if [ -n "$SAMPLER" ]; then
		# the walsender exits right after its client
		for i in $(seq 1 100); do kill -0 "$SAMPLER" 2>/dev/null || break; sleep 0.05; done
		kill "$SAMPLER" 2>/dev/null
		wait "$SAMPLER" 2>/dev/null
		SAMPLER=
	fi
	reaped1=$(ticks "$POSTMASTER" children)
	busy1=$(busy) b1=$(date +%s%N)
	local confirmed seen= user sys rss wakeups
	confirmed=$(sql "SELECT confirmed_flush_lsn || CASE WHEN confirmed_flush_lsn >= '$LAST_COMMIT' THEN '' ELSE ' <' END
	                   FROM pg_replication_slots WHERE slot_name = '$slot'")
	[ "$stdout" != /dev/null ] && seen=$(head -1 "$stdout" 2>/dev/null)
	read -r _ user sys rss wakeups < <(tail -1 "$T/time" 2>/dev/null)
	# 1 key, 2 label, 3 exit status, 4 wall ns, 5 user s, 6 sys s, 7 peak RSS kB,
	# 8 walsender ticks (sampled), 9 ticks reaped by the postmaster, 10 slot
	# confirmed, 11 rows seen, 12 machine busy ticks, 13 busy window ns, 14 rep,
	# 15 client voluntary context switches
	echo "$key|$label|$rc|$((t1 - t0))|${user:-0}|${sys:-0}|${rss:-0}|$(cat "$T/ws")|$((reaped1 - reaped0))|$confirmed|$seen|$((busy1 - busy0))|$((b1 - b0))|$rep|${wakeups:-0}" >>"$T/results"
	if [ "$rc" != 0 ]; then
		log "$label exited with $rc:"
		grep -v '^Command exited' "$T/err" | tail -5 >&2
	fi
}

# contender KEY SLOT: sets LABEL, MASTER (the slot made before the workload),
# STDOUT and CMD (the command draining SLOT)
contender() {
	STDOUT=/dev/null
	case $1 in
	server-pgoutput)
		# the server decoding alone: the SQL interface, no client work, the
		# rows counted where they are made
		LABEL="server-only decoding (pgoutput)" MASTER=pgc_pgoutput
		CMD=(psql -X -q -At -v ON_ERROR_STOP=1 -d "$CONN" -c "SELECT count(*) FROM pg_logical_slot_peek_binary_changes('$2', '$END', NULL,
			'proto_version', '1', 'publication_names', '$PUB', 'messages', 'true')") ;;
	server-wal2json)
		LABEL="server-only decoding (wal2json)" MASTER=pgc_wal2json
		CMD=(psql -X -q -At -v ON_ERROR_STOP=1 -d "$CONN" -c "SELECT count(*) FROM pg_logical_slot_peek_changes('$2', '$END', NULL,
			'format-version', '2', 'include-xids', '1', 'include-timestamp', '1', 'include-lsn', '1',
			'include-pk', '1', 'include-type-oids', '1', 'include-transaction', '1')") ;;
	pgc-pgoutput)
		LABEL="pg-capture (pgoutput)" MASTER=pgc_pgoutput
		CMD=("$PG_CAPTURE" -d "$CONN" -S "$2" --publication "$PUB" --endpos "$END" --status-interval 10) ;;
	pgc-wal2json)
		LABEL="pg-capture (wal2json)" MASTER=pgc_wal2json
		CMD=("$PG_CAPTURE" -d "$CONN" -S "$2" --plugin wal2json --endpos "$END" --status-interval 10) ;;
	recv-pgoutput)
		LABEL="pg_recvlogical (pgoutput)" MASTER=recv_pgoutput
		CMD=("$RECVLOGICAL" -d "$CONN" -S "$2" --start -n -E "$END" -f /dev/null --status-interval 10
			-o proto_version=1 -o publication_names="$PUB") ;;
	recv-wal2json)
		# the same options pg-capture and the listener ask for
		LABEL="pg_recvlogical (wal2json)" MASTER=recv_wal2json
		CMD=("$RECVLOGICAL" -d "$CONN" -S "$2" --start -n -E "$END" -f /dev/null --status-interval 10
			-o format-version=2 -o include-xids=1 -o include-timestamp=1 -o include-lsn=1
			-o include-pk=1 -o include-type-oids=1 -o include-transaction=1) ;;
	recv-test_decoding)
		LABEL="pg_recvlogical (test_decoding)" MASTER=recv_test_decoding
		CMD=("$RECVLOGICAL" -d "$CONN" -S "$2" --start -n -E "$END" -f /dev/null --status-interval 10) ;;
	py-wal2json)
		LABEL="python psycopg2 (wal2json)" MASTER=py_wal2json STDOUT=$T/rows
		CMD=("$PYTHON" "$HERE/listener.py" "$CONN" "$2" "$END") ;;
	*) die "unknown contender $1" ;;
	esac
}

# Each run drains a fresh copy of the contender's slot (same position, same
# WAL). Runs go round-robin, each round starting with the next contender, so
# that slow drifts of the machine hit all of them alike; the table shows the
# medians.
: >"$T/results"
read -r -a KEYS <<<"$CONTENDERS"
for k in "${KEYS[@]}"; do contender "$k" x; done
for ((rep = 1; rep <= REPEAT; rep++)); do
	for ((j = 0; j < ${#KEYS[@]}; j++)); do
		key=${KEYS[(j + rep - 1) % ${#KEYS[@]}]}
		contender "$key" "run_$rep"
		slot=${MASTER}_$rep
		sql "SELECT pg_copy_logical_replication_slot('$MASTER', '$slot')" >/dev/null || die "copying $MASTER failed"
		contender "$key" "$slot"
		run "$rep" "$key" "$LABEL" "$slot" "$STDOUT" "${CMD[@]}"
		sql "SELECT pg_drop_replication_slot('$slot')" >/dev/null
	done
done

# The report: the table, the goals, each run.
mkdir -p "$HERE/out"
REPORT=$HERE/out/capture-$(date +%Y%m%d-%H%M%S).txt
{
	echo "pg-capture benchmark $(date '+%Y-%m-%d %H:%M:%S %z'), commit $(git -C "$TOP" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$TOP" diff --quiet HEAD -- pg-capture lib 2>/dev/null || echo ' (modified)')"
	echo "host: $(nproc) cores, $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1); $("$PGBIN/postgres" --version)"
	echo "workload: BENCH_ROWS=$ROWS: $EVENTS row changes in $TXS transactions, $WAL of WAL; largest transaction $BIG rows"
	echo "median of $REPEAT runs per contender"
	echo
	awk -F'|' -v events="$EVENTS" -v hz="$TICKS" '
	function median(k, f,   a, i, j, m, t) {
		m = cnt[k]
		for (i = 1; i <= m; i++) a[i] = v[k, i, f]
		for (i = 2; i <= m; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
		return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
	}
	BEGIN {
		h[1] = "contender"; h[2] = "events"; h[3] = "wall s"; h[4] = "events/s"; h[5] = "client CPU s"
		h[6] = "us/event (client)"; h[7] = "server CPU s"; h[8] = "peak RSS MB"; h[9] = "x server"; h[10] = "x own"
	}
	{
		if (!($1 in cnt)) { order[++n] = $1; label[$1] = $2 }
		i = ++cnt[$1]
		v[$1, i, "wall"] = $4 / 1e9; v[$1, i, "cpu"] = $5 + $6; v[$1, i, "ws"] = $8 / hz
		if ($7 / 1024 > rss[$1]) rss[$1] = $7 / 1024
		if ($3 != 0) failed[$1] = failed[$1] " rc=" $3
	}
	END {
		# the server decoding alone is the limit: the rate of each as a fraction
		# of it, with pgoutput (x server) and with the same plugin (x own)
		sw = ("server-pgoutput" in cnt) ? median("server-pgoutput", "wall") : 0
		for (i = 1; i <= n; i++) {
			k = order[i]; wall = median(k, "wall"); cpu = median(k, "cpu")
			own = k; sub(/^[a-z]+-/, "server-", own)
			ow = (own in cnt) ? median(own, "wall") : 0
			r[i, 9] = (sw > 0 && wall > 0) ? sprintf("%.2f", sw / wall) : "-"
			r[i, 10] = (ow > 0 && wall > 0) ? sprintf("%.2f", ow / wall) : "-"
			if (sw > 0 && wall > 0) printf "ratio|%s|%s|%s\n", k, sw / wall, (ow > 0 ? ow / wall : "") >"/dev/stderr"
			r[i, 1] = label[k] (k in failed ? " FAILED" failed[k] : ""); r[i, 2] = events
			r[i, 3] = sprintf("%.2f", wall); r[i, 4] = sprintf("%.0f", wall > 0 ? events / wall : 0)
			r[i, 5] = sprintf("%.2f", cpu); r[i, 6] = sprintf("%.2f", cpu * 1e6 / events)
			r[i, 7] = sprintf("%.2f", median(k, "ws")); r[i, 8] = sprintf("%.1f", rss[k])
			printf "%s|%s|%s|%s\n", k, wall, cpu * 1e6 / events, rss[k] >"/dev/stderr"
		}
		for (c = 1; c <= 10; c++) {
			w[c] = length(h[c])
			for (i = 1; i <= n; i++) if (length(r[i, c]) > w[c]) w[c] = length(r[i, c])
		}
		line = ""
		for (c = 1; c <= 10; c++) line = line sprintf(c == 1 ? "%-*s" : " | %*s", w[c], h[c])
		print line
		sep = ""
		for (c = 1; c <= 10; c++) { s = sprintf("%*s", w[c] + (c == 1 ? 0 : 3), ""); gsub(/ /, "-", s); sep = sep s }
		print sep
		for (i = 1; i <= n; i++) {
			line = ""
			for (c = 1; c <= 10; c++) line = line sprintf(c == 1 ? "%-*s" : " | %*s", w[c], r[i, c])
			print line
		}
	}' "$T/results" 2>"$T/medians"
	echo
	echo "goals: pg-capture >= pg_recvlogical(pgoutput) events/s; client CPU <= 3 us/event; peak RSS < 16 MB;"
	echo "       pg-capture >= 0.7x the server-only decoding rate; wal2json's client CPU per event <= 1.1x pgoutput's"
	awk -F'|' -v events="$EVENTS" '
	$1 == "ratio" { ratio[$2] = $3; own[$2] = $4; next }
	{ eps[$1] = events / $2; us[$1] = $3; rss[$1] = $4 }
	END {
		for (k in ratio) if (k ~ /^pgc-/)
			printf "  pg-capture (%s) drains at %.2fx the server-only decoding rate (pgoutput)%s: %s\n", substr(k, 5), ratio[k],
				(own[k] != "" && substr(k, 5) != "pgoutput" ? sprintf(", %.2fx that of %s", own[k], substr(k, 5)) : ""),
				(ratio[k] >= 0.7 ? "met" : "NOT met")
		if (("pgc-pgoutput" in us) && ("pgc-wal2json" in us))
			printf "  pg-capture client CPU per event, wal2json %.2f us vs pgoutput %.2f us (%.2fx): %s\n", us["pgc-wal2json"],
				us["pgc-pgoutput"], us["pgc-wal2json"] / us["pgc-pgoutput"],
				(us["pgc-wal2json"] <= 1.1 * us["pgc-pgoutput"] ? "met" : "NOT met")
		k = "pgc-pgoutput"
		if ((k in eps) && ("recv-pgoutput" in eps))
			printf "  pg-capture (pgoutput) %.0f events/s vs pg_recvlogical (pgoutput) %.0f: %s\n", eps[k], eps["recv-pgoutput"],
				((eps[k] >= eps["recv-pgoutput"]) ? "met" : sprintf("NOT met (%.0f%%)", 100 * eps[k] / eps["recv-pgoutput"]))
		for (k in eps) if (k ~ /^pgc-/)
			printf "  pg-capture (%s): %.2f us/event %s, peak RSS %.1f MB %s\n", substr(k, 5), us[k],
				((us[k] <= 3) ? "met" : "NOT met"), rss[k], ((rss[k] < 16) ? "met" : "NOT met")
	}' "$T/medians"
	echo
	echo "runs (last workload commit $LAST_COMMIT, end LSN $END):"
	awk -F'|' -v events="$EVENTS" -v hz="$TICKS" '
	{
		st = $3 == 0 ? "exit 0" : "EXIT " $3
		conf = $10 == "" ? "-" : $10
		note = ""
		if (conf ~ / <$/) { sub(/ <$/, "", conf); note = " (short of the last commit)" }
		if ($11 != "") note = note sprintf(", rows seen %s%s", $11, ($11 == events ? "" : " MISMATCH"))
		# cores kept busy by anything but the contender and its walsender
		other = ($12 / hz - $5 - $6 - $9 / hz) / ($13 / 1e9)
		if (other < 0) other = 0
		printf "  %d %-30s %s, %6.2f s; client %5.2f s CPU (%5.2f user), %6d wakeups; walsender %5.2f s CPU (%5.2f reaped); other load %.2f cores; slot confirmed %s%s\n",
			$14, $2, st, $4 / 1e9, $5 + $6, $5, $15, $8 / hz, $9 / hz, other, conf, note
		if (other > 0.15) busy++
	}
	END {
		if (busy) printf "WARNING: in %d runs other processes kept more than 0.15 of a core busy: wall times and CPU are not representative\n", busy
	}' "$T/results"
} >"$REPORT"
cat "$REPORT"
echo "(written to ${REPORT#"$TOP"/})"
awk -F'|' '$3 != 0 { bad = 1 } END { exit bad }' "$T/results"
