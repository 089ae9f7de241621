#!/usr/bin/env bash
# A seeded chaos run: the shipped pipeline (examples/pipeline.sh, restarted
# whenever it exits, as supervisord would) streams a throwaway PostgreSQL 15
# to a sink while a write load runs and faults strike at seeded random
# times; then tests/chaos/check.py compares what the sink received with the
# ledger the database kept, prints a table and fails on any violation.
#
#   tests/chaos/chaos.sh [--seconds N] [--seed S] [--plugin pgoutput|wal2json]
#                        [--sink http|rabbitmq|storage-queue] [--rate TX_PER_S | --commit-rate N] [--one-trip]
#                        [--faults K1,K2,...] [--gap LO-HI] [--keep DIR]
#
# --seconds: how long the load and the faults last (default 60); the
# catch-up and the check come after. --keep DIR: copy the run's files
# there (the ledger, the sink's log, samples, faults, every log), for
# check.py to be run on again. --faults: only these kinds (below). --gap:
# seconds between faults (default 1.5-4). --rate: transactions a second,
# rolled-back ones included (default 80); --commit-rate N: about N
# transactions a second meant to commit, the rolled-back ones on top;
# --one-trip: each transaction sent in one query string (load.py). Exit
# status: check.py's (0: no violation), or 2 when the run could not be set up.
#
# While the load runs, tests/chaos/resources.py samples each stage's RSS
# and open fds every 5 s into resources.tsv and, after check.py's table,
# prints whether they stayed flat; that is reported only, not part of the
# exit status (bench/soak.sh makes it one).
#
# Faults (one at a time, a seeded --gap apart, kinds in a seeded order; a
# fault starts while --seconds have not passed):
#   kill_capture kill_filter kill_publish   kill -9 of one stage
#   kill_group                              kill -9 of the pipeline's process group
#   pg_crash                                pg_ctl -m immediate stop, then start
#   sink_down                               the sink stopped for 2-5 s, started again on its port
#   sink_503 sink_reset sink_hang           http: every request answered so for 2-5 s
#   sink_hang                               rabbitmq: the broker SIGSTOPped for 2-5 s;
#                                           storage-queue: Azurite's node process so
#   stop_capture stop_publish               SIGSTOP past wal_sender_timeout (5 s), then SIGCONT
# Each is logged in faults.tsv with its start and end time.
#
# Sinks: http is tests/lib/httpstub.py; rabbitmq a throwaway node, its queue
# emptied by tests/chaos/rabbit_drain.py; storage-queue Azurite (Azure
# Storage queues, tests/lib/azurite.sh) with its data on disk, not in
# memory, so that sink_down (SIGTERM, started again on its port) keeps the
# messages not drained yet (--keep keeps that data too: what the queue
# still held); tests/chaos/azq_drain.py takes each message and deletes it.
set -u
set -o pipefail
SECS=60 SEED=$((RANDOM * 32768 + RANDOM)) PLUGIN=pgoutput SINK=http RATE=80 KEEP= ONLY= GAP=1.5-4
RATE_OPT=--rate TRIPS=
while [ $# -gt 0 ]; do
	case $1 in
	--seconds) SECS=$2; shift 2 ;;
	--seed) SEED=$2; shift 2 ;;
	--plugin) PLUGIN=$2; shift 2 ;;
	--sink) SINK=$2; shift 2 ;;
	--rate) RATE=$2 RATE_OPT=--rate; shift 2 ;;
	--commit-rate) RATE=$2 RATE_OPT=--commit-rate; shift 2 ;;
	--one-trip) TRIPS=--one-trip; shift ;;
	--keep) KEEP=$2; shift 2 ;;
	--faults) ONLY=$2; shift 2 ;;
	--gap) GAP=$2; shift 2 ;;
	*) echo "usage: chaos.sh [--seconds N] [--seed S] [--plugin pgoutput|wal2json] [--sink http|rabbitmq|storage-queue] [--rate N | --commit-rate N] [--one-trip] [--faults K,...] [--gap LO-HI] [--keep DIR]" >&2; exit 2 ;;
	esac
done
case $PLUGIN in pgoutput | wal2json) ;; *) echo "chaos: unknown plugin $PLUGIN" >&2; exit 2 ;; esac
case $SINK in http | rabbitmq | storage-queue) ;; *) echo "chaos: unknown sink $SINK" >&2; exit 2 ;; esac
[[ $GAP =~ ^[0-9]+(\.[0-9]+)?-[0-9]+(\.[0-9]+)?$ ]] || { echo "chaos: --gap must be LO-HI seconds, e.g. 1.5-4" >&2; exit 2; }
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
# the system's python3, which has psycopg2 (see tests/run.sh)
[ -x /usr/bin/python3 ] && export PATH="/usr/bin:$PATH"
source "$TOP/tests/lib/pgcluster.sh" || exit 2
[ "$SINK" = rabbitmq ] && { source "$TOP/tests/lib/rabbitmq.sh" || exit 2; }
if [ "$SINK" = storage-queue ]; then
	source "$TOP/tests/lib/azurite.sh" || exit 2
	azurite_find || { echo "chaos: $AZURITE_WHY" >&2; exit 2; }
fi
for p in pg-capture/pg-capture cdc-filter/cdc-filter cdc-publish/cdc-publish; do
	[ -x "$TOP/$p" ] || { echo "chaos: $p is not built (make)" >&2; exit 2; }
done

T=$(mktemp -d /tmp/pgcdc-chaos.XXXXXX)
chmod 755 "$T"
RUN=$T/run
WST=5	# wal_sender_timeout, seconds
# every program is bounded: nothing may outlive the run by more than this
# (the last fault may start one gap after --seconds)
gap_hi=${GAP#*-}
LIMIT=$((SECS + 300 + ${gap_hi%.*} + 1))
say() { echo "chaos: $(date +%H:%M:%S) $*" >&2; }
now() { date +%s.%N | cut -c1-17; }

# --- cleanup: stop what was started, by pid -------------------------------
PIDS_BG=()
cleanup() {
	local pid
	touch "$T/stop"
	[ -n "${FAULT_CONT:-}" ] && kill -CONT "$FAULT_CONT" 2>/dev/null
	[ -n "${BEAM_PID:-}" ] && kill -CONT "$BEAM_PID" 2>/dev/null
	stop_pipeline
	for pid in "${PIDS_BG[@]}" ${STUB_PID:-}; do kill -TERM "$pid" 2>/dev/null; done
	for pid in "${PIDS_BG[@]}" ${STUB_PID:-}; do wait_gone "$pid" 10 || kill -KILL "$pid" 2>/dev/null; done
	# shellcheck disable=SC2046
	kill -KILL $(pipeline_pids) 2>/dev/null
	[ "$SINK" = rabbitmq ] && rabbit_stop
	[ "$SINK" = storage-queue ] && azurite_stop
	pg_stop
	if [ -n "$KEEP" ]; then
		mkdir -p "$KEEP" && cp -a "$T/." "$KEEP/" 2>/dev/null
		rm -rf "$KEEP/pg/data" "$KEEP/run"
	fi
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 2' INT TERM

wait_gone() {	# PID SECONDS: poll until PID is gone
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		kill -0 "$1" 2>/dev/null || { wait "$1" 2>/dev/null; return 0; }
		sleep 0.1
	done
	return 1
}
wait_for() {	# SECONDS COMMAND...: poll every 0.1 s until COMMAND succeeds
	local limit=$1 i
	shift
	for ((i = 0; i < limit * 10; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}

# --- the pipeline, restarted whenever it exits ------------------------------
# its processes, for cleanup: their environment names its run directory
pipeline_pids() {
	local f pid
	for f in /proc/[0-9]*/environ; do
		pid=${f#/proc/}
		pid=${pid%/environ}
		[ "$pid" = "$$" ] && continue
		grep -qzxF "PGCDC_RUN_DIR=$RUN" "$f" 2>/dev/null && echo "$pid"
	done
}
# stage_pid NAME: the running pipeline's process of that name (each run of
# the pipeline is a session of its own, whose id is in pipeline.pid)
stage_pid() {
	local sid
	sid=$(cat "$T/pipeline.pid" 2>/dev/null) || return 1
	ps -o pid=,comm= -s "$sid" 2>/dev/null | awk -v n="$1" '$2 == n { print $1; f = 1; exit } END { exit !f }'
}
supervise() {
	local rc
	export PGCDC_SLOT=chaos PGCDC_DBNAME=$CONN PGCDC_RUN_DIR=$RUN PGCDC_URL=$SINK_URL \
		PGCDC_CAPTURE_ARGS="--plugin $PLUGIN --status-interval 1" \
		PGCDC_FILTER="cdc-filter -t public.items" PGCDC_PUBLISH_ARGS="$PUBLISH_ARGS" RMQ=guest:guest
	while [ ! -e "$T/stop" ]; do
		# its own session and process group, like supervisord's stopasgroup
		setsid timeout -s KILL "$LIMIT" bash "$TOP/examples/pipeline.sh" 2>>"$T/pipeline.log" &
		echo $! >"$T/pipeline.pid"
		wait $!
		rc=$?
		echo "chaos: $(now) pipeline exited with status $rc" >>"$T/pipeline.log"
		echo "$(now) $rc" >>"$T/restarts.txt"
		# supervisord restarts at once; a moment's pause keeps a crash loop from spinning
		[ -e "$T/stop" ] || sleep 0.3
	done
}
stop_pipeline() {
	local pgid
	[ -n "${SUP_PID:-}" ] || return 0
	touch "$T/stop"
	pgid=$(cat "$T/pipeline.pid" 2>/dev/null)
	# SIGTERM to pipeline.sh (the child of timeout, whose pid is the
	# group's): it stops the stages, which finish what is in flight
	# shellcheck disable=SC2046
	[ -n "$pgid" ] && kill -TERM $(ps -o pid= --ppid "$pgid") 2>/dev/null
	if ! wait_gone "$SUP_PID" 30; then
		[ -n "$pgid" ] && kill -KILL -- "-$pgid" 2>/dev/null
		wait_gone "$SUP_PID" 5 || kill -KILL "$SUP_PID" 2>/dev/null
	fi
	SUP_PID=
}

# --- the sink ---------------------------------------------------------------
start_stub() {
	rm -f "$T/stub.port"
	timeout -s KILL "$LIMIT" python3 "$TOP/tests/lib/httpstub.py" --port "${STUB_PORT:-0}" --port-file "$T/stub.port" \
		--log "$T/sink.jsonl" --control "$T/stub.control" --max-time "$LIMIT" 2>>"$T/stub.err" &
	STUB_PID=$!
	wait_for 10 test -s "$T/stub.port" || { say "the HTTP stub did not start"; return 1; }
	STUB_PORT=$(cat "$T/stub.port")
}
stop_stub() {
	kill -TERM "$STUB_PID" 2>/dev/null
	wait_gone "$STUB_PID" 5 || kill -KILL "$STUB_PID" 2>/dev/null
	STUB_PID=
}

# --- setup ------------------------------------------------------------------
say "seed $SEED, $SECS s, plugin $PLUGIN, sink $SINK, files in $T"
pg_start "$T/pg" "$(free_port)" "wal_sender_timeout = '${WST}s'" || exit 2
CONN=$(pg_conninfo)
timeout -k 5 120 psql -X -q -v ON_ERROR_STOP=1 -d "$CONN" -f "$HERE/schema.sql" >/dev/null || exit 2
# the oracle: the server's own test_decoding says which transactions
# committed and at which end LSN (what a slot is confirmed to)
sql "SELECT 1 FROM pg_create_logical_replication_slot('oracle', 'test_decoding')" >/dev/null || exit 2
# the pipeline's slot exists before the first change
timeout -k 5 60 "$TOP/pg-capture/pg-capture" -d "$CONN" -S chaos --plugin "$PLUGIN" --create-slot \
	--endpos "$(sql "SELECT pg_current_wal_lsn()")" >/dev/null 2>"$T/create.log" || { cat "$T/create.log" >&2; exit 2; }

KINDS=(kill_capture kill_filter kill_publish kill_group pg_crash sink_down sink_hang stop_capture stop_publish)
if [ "$SINK" = http ]; then
	start_stub || exit 2
	SINK_URL=http://127.0.0.1:$STUB_PORT/events
	# batches of several events, several requests in flight, short timeouts
	PUBLISH_ARGS="--body array --batch 10 --parallel 4 --timeout 2 --retry-max-delay 1 --retry-max-time 600"
	KINDS+=(sink_503 sink_reset)
elif [ "$SINK" = storage-queue ]; then
	AZURITE_DISK=1 azurite_start "$T/azurite" || exit 2
	azq create chaos || exit 2
	SINK_URL=$AZURITE_EP/chaos
	# the connection string (Azurite's public development key) through the environment
	export CHAOS_AZ_CONN=$AZURITE_CONN
	PUBLISH_ARGS="--target storage-queue --credentials-env CHAOS_AZ_CONN --parallel 4 --timeout 2 --retry-max-delay 1 --retry-max-time 600"
	timeout -s KILL "$LIMIT" python3 "$HERE/azq_drain.py" "$AZURITE_EP" chaos "$T/sink.jsonl" &
	DRAIN_PID=$!
	PIDS_BG+=("$DRAIN_PID")
else
	rabbit_start 2>"$T/rabbit.err" || { cat "$T/rabbit.err" >&2; exit 2; }
	rabbit_queue_create chaos || exit 2
	SINK_URL=$RABBIT_URL
	BEAM_PID=
	PUBLISH_ARGS="--target rabbitmq --routing-key chaos --basic-env RMQ --parallel 4 --timeout 2 --retry-max-delay 1 --retry-max-time 600"
	timeout -s KILL "$LIMIT" python3 "$HERE/rabbit_drain.py" "$RABBIT_API" chaos "$T/sink.jsonl" &
	DRAIN_PID=$!
	PIDS_BG+=("$DRAIN_PID")
fi

if [ -n "$ONLY" ]; then
	IFS=, read -ra want <<<"$ONLY"
	for k in "${want[@]}"; do
		[[ " ${KINDS[*]} " == *" $k "* ]] || { echo "chaos: no fault $k with sink $SINK (${KINDS[*]})" >&2; exit 2; }
	done
	KINDS=("${want[@]}")
fi

timeout -s KILL "$LIMIT" python3 "$HERE/sample.py" "$CONN" chaos "$T/samples.txt" &
PIDS_BG+=($!)
SAMPLER_PID=$!
supervise 2>>"$T/pipeline.log" &
SUP_PID=$!
wait_for 30 stage_pid cdc-publish || { say "the pipeline did not start"; tail "$T/pipeline.log" >&2; exit 2; }

# shellcheck disable=SC2086
timeout -s KILL "$LIMIT" python3 "$HERE/load.py" "$CONN" $((SECS + 240)) "$SEED" "$RATE_OPT" "$RATE" $TRIPS \
	--stats "$T/load.json" --stop-file "$T/load.stop" 2>"$T/load.err" &
LOAD_PID=$!
PIDS_BG+=("$LOAD_PID")
# the stages' RSS and fds, every 5 s while the load runs
timeout -s KILL "$LIMIT" python3 "$HERE/resources.py" sample "$T/pipeline.pid" "$T/resources.tsv" 5 &
RES_PID=$!
PIDS_BG+=("$RES_PID")

# --- faults -----------------------------------------------------------------
RANDOM=$SEED
# the kinds in a seeded order, again and again: short runs see many kinds
order=()
shuffle() {
	local i j tmp
	order=("${KINDS[@]}")
	for ((i = ${#order[@]} - 1; i > 0; i--)); do
		j=$((RANDOM % (i + 1)))
		tmp=${order[i]} order[i]=${order[j]} order[j]=$tmp
	done
}
between() { echo "$1 $2" | awk -v r=$RANDOM '{ printf "%.1f", $1 + ($2 - $1) * r / 32767 }'; }

# fault KIND: strike, hold, heal; one line in faults.tsv: kind start end detail
fault() {
	local kind=$1 start end detail="" pid hold
	start=$(now)
	case $kind in
	kill_capture | kill_filter | kill_publish)
		pid=$(stage_pid "$(sed 's/kill_capture/pg-capture/; s/kill_filter/cdc-filter/; s/kill_publish/cdc-publish/' <<<"$kind")") ||
			{ say "$kind: no such stage running now, skipped"; return; }
		start=$(now)
		kill -KILL "$pid"
		detail="pid=$pid" ;;
	kill_group)
		pid=$(cat "$T/pipeline.pid")
		kill -KILL -- "-$pid" 2>/dev/null || { say "$kind: no pipeline running now, skipped"; return; }
		detail="pgid=$pid" ;;
	pg_crash)
		pg_crash
		pg_up || { say "PostgreSQL did not start again"; return 1; }
		detail="server restarted" ;;
	sink_down)
		hold=$(between 2 5)
		if [ "$SINK" = http ]; then
			stop_stub
			sleep "$hold"
			start_stub || return 1
		elif [ "$SINK" = storage-queue ]; then
			azurite_stop
			sleep "$hold"
			AZURITE_DISK=1 azurite_start "$T/azurite" "$AZURITE_PORT" || return 1
		else
			rabbit_ctl stop_app >>"$T/rabbit.err" 2>&1
			sleep "$hold"
			rabbit_ctl start_app >>"$T/rabbit.err" 2>&1
			wait_for 30 curl -sf -m 2 -u guest:guest "$RABBIT_API/queues/%2F/chaos"
		fi
		detail="for ${hold}s" ;;
	sink_503 | sink_reset)
		hold=$(between 2 5)
		echo "${kind#sink_}" >"$T/stub.control"
		sleep "$hold"
		rm -f "$T/stub.control"
		detail="for ${hold}s" ;;
	sink_hang)
		hold=$(between 2 5)
		if [ "$SINK" = http ]; then
			echo hang >"$T/stub.control"
			sleep "$hold"
			rm -f "$T/stub.control"
		elif [ "$SINK" = storage-queue ]; then
			FAULT_CONT=$AZURITE_PID
			kill -STOP "$AZURITE_PID"
			sleep "$hold"
			kill -CONT "$AZURITE_PID"
			FAULT_CONT=
		else
			BEAM_PID=$(cat "$RABBIT_DIR/beam.pid")
			kill -STOP "$BEAM_PID"
			sleep "$hold"
			kill -CONT "$BEAM_PID"
			BEAM_PID=
		fi
		detail="for ${hold}s" ;;
	stop_capture | stop_publish)
		pid=$(stage_pid "$(sed 's/stop_capture/pg-capture/; s/stop_publish/cdc-publish/' <<<"$kind")") ||
			{ say "$kind: no such stage running now, skipped"; return; }
		hold=$(between $((WST + 1)) $((WST + 3)))
		start=$(now)
		FAULT_CONT=$pid
		kill -STOP "$pid"
		sleep "$hold"
		kill -CONT "$pid"
		FAULT_CONT=
		detail="pid=$pid for ${hold}s" ;;
	esac
	end=$(now)
	printf '%s\t%s\t%s\t%s\n' "$kind" "$start" "$end" "$detail" >>"$T/faults.tsv"
	say "$kind $detail"
}

: >"$T/faults.tsv"
t_end=$(($(date +%s) + SECS))
i=0
while :; do
	[ $((i % ${#KINDS[@]})) = 0 ] && shuffle
	gap=$(between "${GAP%-*}" "${GAP#*-}")
	sleep "$gap"
	[ "$(date +%s)" -lt "$t_end" ] || break
	fault "${order[i % ${#KINDS[@]}]}" || exit 2
	i=$((i + 1))
done

# --- the end: the load goes on until what it wrote after the last fault is
# confirmed (so every fault's recovery is seen), then stops; the pipeline
# catches up. The oracle's and the ledger's exports, and check.py, are
# bounded by LIMIT like the helpers: after an hour's load they take longer
# than the two minutes that did for short runs -----------------------------
slot_past() { [ "$(sql "SELECT confirmed_flush_lsn >= '$1' FROM pg_replication_slots WHERE slot_name = 'chaos'")" = t ]; }
after=$(sql "SELECT pg_current_wal_lsn()")
wait_for 60 slot_past "$after" || say "nothing written after the last fault was confirmed within 60 s"
kill -TERM "$RES_PID" 2>/dev/null
wait_gone "$RES_PID" 5
touch "$T/load.stop"
wait_gone "$LOAD_PID" 30 || { say "the load did not stop"; exit 2; }
cat "$T/load.err" >&2
timeout -k 5 "$LIMIT" psql -X -q -At -d "$CONN" -c "COPY (SELECT lsn, xid FROM pg_logical_slot_peek_changes('oracle', NULL, NULL,
	'include-xids', '1', 'skip-empty-xacts', '1') WHERE data LIKE 'COMMIT%') TO STDOUT" >"$T/commits.tsv" || exit 2
target=$(python3 <"$T/commits.tsv" -c 'import sys
best = max((tuple(int(x, 16) for x in l.split()[0].split("/")) for l in sys.stdin), default=(0, 0))
print("%X/%X" % best)')
t0=$(now)
if wait_for 120 slot_past "$target"; then
	say "caught up: the slot is confirmed to $target after $(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }') s"
else
	say "not caught up after 120 s: the slot is at $(sql "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'chaos'"), the last commit ends at $target"
	echo "$target" >"$T/not_caught_up"
fi
stop_pipeline
kill -TERM "$SAMPLER_PID"
wait_gone "$SAMPLER_PID" 5
if [ "$SINK" = http ]; then
	stop_stub
else
	# the drainer takes what is left, then stops
	kill -TERM "$DRAIN_PID"
	wait_gone "$DRAIN_PID" 30 || say "the queue did not drain"
fi
timeout -k 5 "$LIMIT" psql -X -q -At -d "$CONN" -c "COPY (SELECT n, txid, item, op, ver, prev_ver, val, extract(epoch FROM at)
	FROM ledger ORDER BY n) TO STDOUT WITH (FORMAT csv)" >"$T/ledger.csv" || exit 2
echo "seed=$SEED seconds=$SECS plugin=$PLUGIN sink=$SINK ${RATE_OPT#--}=$RATE${TRIPS:+ one-trip=yes}" >"$T/run.txt"
cp "$T/pg/server.log" "$T/server.log" 2>/dev/null
timeout -k 5 "$LIMIT" python3 "$HERE/check.py" "$T"
rc=$?
echo
timeout -k 5 120 python3 "$HERE/resources.py" report "$T"
exit "$rc"
