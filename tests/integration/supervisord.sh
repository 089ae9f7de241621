#!/usr/bin/env bash
# The shipped pipeline under a real supervisord, with a filter stage: kill -9
# a stage (cdc-publish, then cdc-filter), the whole pipeline restarts and
# resumes from the slot; every change arrives at least once, deduplicating
# by id gives exactly the committed set, and the filtered table never
# arrives.
set -u
source "$(dirname "$0")/../lib/testlib.sh"
source "$TOP/tests/lib/pgcluster.sh"
command -v supervisord >/dev/null || { fail "supervisord not installed (make deps)"; done_testing; exit; }
T=$(mktemp -d /tmp/pgcdc-test.XXXXXX)
chmod 755 "$T"
ctl() { timeout -k 5 30 supervisorctl -c "$T/supervisord.conf" "$@"; }
# the pipeline's processes: their environment names its run directory
pipeline_pids() {
	local f pid
	for f in /proc/[0-9]*/environ; do
		pid=${f#/proc/}
		pid=${pid%/environ}
		{ tr '\0' '\n' <"$f" | grep -qxF "PGCDC_RUN_DIR=$T/run"; } 2>/dev/null && echo "$pid"
	done
}
# stage_pid NAME: the pipeline's process of that name (not another run's)
stage_pid() {
	local pid
	for pid in $(pipeline_pids); do
		[ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ] && echo "$pid"
	done
}
cleanup() {
	ctl shutdown >/dev/null 2>&1
	[ -n "${SPID:-}" ] && wait_exit "$SPID" 20
	# a supervisord that had to be killed leaves its programs behind
	# shellcheck disable=SC2046
	kill -KILL $(pipeline_pids) 2>/dev/null
	pg_stop
	rm -rf "$T"
}
trap cleanup EXIT
pg_start "$T/pg" "$(free_port)" || exit 1
CONN=$(pg_conninfo)
sql "CREATE TABLE t (id int PRIMARY KEY, v text)"
sql "CREATE TABLE noise (id int PRIMARY KEY)"

cat >"$T/supervisord.conf" <<CONF
[supervisord]
logfile=$T/supervisord.log
pidfile=$T/supervisord.pid
childlogdir=$T
nodaemon=true
user=root

[unix_http_server]
file=$T/supervisor.sock

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://$T/supervisor.sock

[program:pgcdc]
command=bash $TOP/examples/pipeline.sh
environment=PGCDC_SLOT="sv",PGCDC_DBNAME="$CONN",PGCDC_RUN_DIR="$T/run",PGCDC_CAPTURE_ARGS="--create-slot --if-not-exists --status-interval 0.5",PGCDC_FILTER="cdc-filter -T public.noise",PGCDC_URL="http://127.0.0.1:9/unused",PGCDC_PUBLISH_ARGS="--dry-run"
autorestart=true
startsecs=0
startretries=100
stopsignal=TERM
stopwaitsecs=20
stopasgroup=true
killasgroup=true
stdout_logfile=$T/delivered.log
stderr_logfile=$T/pipeline.log
CONF
supervisord -c "$T/supervisord.conf" >/dev/null 2>&1 &
SPID=$!

inserts() { grep -c '^{"op":"insert"' "$T/delivered.log" 2>/dev/null; }
distinct() { grep '^{"op":"insert"' "$T/delivered.log" 2>/dev/null | grep -o '"id":"[^"]*"' | sort -u | wc -l; }
at_least() { [ "$("$1")" -ge "$2" ]; }
running() { ctl status pgcdc | grep -q RUNNING; }
ended() { grep -c 'a stage ended with status' "$T/pipeline.log" 2>/dev/null; }

wait_for 30 running
fifo_there() { compgen -G "$T/run/sv.*.ack" >/dev/null; }
wait_for 30 fifo_there
wait_for 30 sql "SELECT 1 FROM pg_replication_slots WHERE slot_name = 'sv' AND active"
is "$(sql "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'sv' AND active")" 1 "supervisord started the pipeline; it created its slot"

for i in $(seq 1 10); do
	sql "INSERT INTO t SELECT g, 'a' FROM generate_series($i * 10 - 9, $i * 10) g"
	sql "INSERT INTO noise VALUES ($i)"
done
wait_for 30 at_least inserts 100
is "$(distinct)" 100 "first 100 rows delivered"

# shellcheck disable=SC2046
kill -9 $(stage_pid cdc-publish)
is "$?" 0 "kill -9 of cdc-publish"
wait_for 30 grep -q 'a stage ended with status' "$T/pipeline.log"
like "$(grep -m1 'a stage ended' "$T/pipeline.log")" 'status (1|137)' "the pipeline noticed and ended"
for i in $(seq 11 20); do sql "INSERT INTO t SELECT g, 'b' FROM generate_series($i * 10 - 9, $i * 10) g"; done
end=$(sql "SELECT pg_current_wal_lsn()")
wait_for 60 at_least distinct 200
is "$(distinct)" 200 "after the restart every row arrived: 200 distinct ids"
if [ "$(inserts)" -ge 200 ]; then pass "at least once: $(inserts) deliveries for 200 rows"; else fail "fewer deliveries than rows"; fi
like "$(grep -c 'msg=streaming' "$T/pipeline.log")" '^[2-9]' "pg-capture was started again by supervisord"
slot_past() { [ "$(sql "SELECT confirmed_flush_lsn >= '$1' FROM pg_replication_slots WHERE slot_name = 'sv'")" = t ]; }
wait_for 20 slot_past "$end"
if slot_past "$end"; then pass "the slot was confirmed past the last delivered commit"
else fail "slot stuck at $(sql "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'sv'"), want >= $end"; fi

# shellcheck disable=SC2046
kill -9 $(stage_pid cdc-filter)
is "$?" 0 "kill -9 of cdc-filter"
wait_for 30 at_least ended 2
like "$(grep 'a stage ended' "$T/pipeline.log" | tail -1)" 'status (1|137)' "the pipeline noticed and ended"
for i in $(seq 21 30); do
	sql "INSERT INTO t SELECT g, 'c' FROM generate_series($i * 10 - 9, $i * 10) g"
	sql "INSERT INTO noise VALUES ($i)"
done
end=$(sql "SELECT pg_current_wal_lsn()")
wait_for 60 at_least distinct 300
is "$(distinct)" 300 "after the second restart every row arrived: 300 distinct ids"
wait_for 20 slot_past "$end"
if slot_past "$end"; then pass "the slot was confirmed past the last commit again"
else fail "slot stuck at $(sql "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'sv'"), want >= $end"; fi
is "$(grep -c '"table":"noise"' "$T/delivered.log")" 0 "nothing of the filtered table was delivered"
# the script killed alone (not its process group): its stages stop too, and
# the restarted pipeline has FIFOs of its own
script=$(for pid in $(pipeline_pids); do
	[ "$(cat "/proc/$pid/comm" 2>/dev/null)" = bash ] && echo "$pid"
done | head -1)
old_stages=$(for n in pg-capture cdc-filter cdc-publish; do stage_pid $n; done | tr '\n' ' ')
kill -9 "$script"
gone() { local p; for p in $old_stages; do kill -0 "$p" 2>/dev/null && return 1; done; return 0; }
if wait_for 30 gone; then pass "kill -9 of the script alone: its stages stop as well (no orphans)"
else fail "kill -9 of the script alone: its stages stop as well" "still running: $old_stages"; fi
new_script() { local p; for p in $(pipeline_pids); do [ "$(cat "/proc/$p/comm" 2>/dev/null)" = bash ] && [ "$p" != "$script" ] && return 0; done; return 1; }
wait_for 30 new_script
for i in $(seq 31 40); do sql "INSERT INTO t SELECT g, 'd' FROM generate_series($i * 10 - 9, $i * 10) g"; done
wait_for 60 at_least distinct 400
is "$(distinct)" 400 "after the script was killed alone, every row arrived: 400 distinct ids"
is "$(compgen -G "$T/run/sv.$script.*" | wc -l)" 0 "the killed run's FIFOs are gone (removed by the next run)"
ctl stop pgcdc >/dev/null
is "$(ctl status pgcdc | grep -c STOPPED)" 1 "supervisorctl stop stops the pipeline"
is "$(compgen -G "$T/run/sv.*" | wc -l)" 0 "a pipeline that stops removes its FIFOs"
done_testing
