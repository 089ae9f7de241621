#!/usr/bin/env bash
# Metrics and operations: pg-capture | cdc-filter | cdc-publish, each with
# --metrics-listen and --metrics-file, run on a known workload; the exact
# counts, LSNs and gauges each exports (checked against the lines written,
# the HTTP requests received and the commit LSNs), the labels, promtool's
# verdict on every rendering, a real Prometheus scraping the three, the
# SIGUSR1 status lines, --stall-timeout in cdc-publish and pg-capture
# (status 10, nothing acknowledged), --log-format json, bad metrics options,
# and the metrics file replaced whole while it is read.
set -u
source "$(dirname "$0")/../lib/testlib.sh"
source "$TOP/tests/lib/pgcluster.sh"
FILTER=$TOP/cdc-filter/cdc-filter
PUBLISH=$TOP/cdc-publish/cdc-publish
STUB=$TOP/tests/lib/httpstub.py
SLOT=met_slot
T=$(mktemp -d /tmp/pgcdc-metrics.XXXXXX)

# kill_tree PID: PID and what it started (timeout's child outlives a killed timeout)
kill_tree() {
	local c
	for c in $(pgrep -P "$1"); do kill_tree "$c"; done
	kill -9 "$1" 2>/dev/null
}
cleanup() {
	local p
	for p in $(jobs -p); do kill_tree "$p"; done
	wait 2>/dev/null
	pg_stop
	rm -rf "$T"
}
trap cleanup EXIT
chmod 755 "$T"
# pg-capture warns when max_slot_wal_keep_size is unset: set, no stage has a reason to warn
pg_start "$T/pg" "$(free_port)" "max_slot_wal_keep_size = 1GB" || exit 1
CONN=$(pg_conninfo)
sql "CREATE TABLE items (id int PRIMARY KEY, name text);
	CREATE TABLE audit (id serial PRIMARY KEY, what text);
	CREATE PUBLICATION met_pub FOR TABLE items, audit" || exit 1
VERSION=$("$PG_CAPTURE" --version | awk '{ print $NF }')

# ------------------------------------------------------------------ helpers

# lsn_num X/Y: the LSN as one number, as the metrics give it
lsn_num() { echo $(((16#${1%/*} << 32) + 16#${1#*/})); }
# val FILE SERIES: the value of SERIES (name and every label, exactly) in FILE
val() { awk -v k="$2" 'substr($0, 1, length(k) + 1) == k " " { print substr($0, length(k) + 2) }' "$1"; }
# scrape PORT FILE: GET /metrics into FILE
scrape() { curl -sf --max-time 5 -o "$2" "http://127.0.0.1:$1/metrics"; }
scrape_val() { scrape "$1" "$T/scrape.tmp" && val "$T/scrape.tmp" "$2"; }
scrape_is() { [ "$(scrape_val "$1" "$2")" = "$3" ]; }
# ports PORT...: true when the ports are all different
distinct() { [ "$(printf '%s\n' "$@" | sort -u | wc -l)" = $# ]; }
# pid_of NAME PATTERN: the process called NAME whose command line has PATTERN (not its timeout)
pid_of() {
	local p
	for p in $(pgrep -f -- "$2"); do
		[ "$(cat "/proc/$p/comm" 2>/dev/null)" = "$1" ] && echo "$p"
	done
}

# Counting helpers in one place: Prometheus text, event lines and the stub's log.
cat >"$T/count.py" <<'EOF'
import json, re, sys
from collections import Counter

def series(path, name):
    """{(op, table): value} of metric name's series in a Prometheus text file"""
    out = {}
    for line in open(path):
        if not line.startswith(name + "{"):
            continue
        labels, value = line[len(name) + 1:].rsplit("} ", 1)
        d = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', labels))
        out[(d["op"], d["table"])] = float(value)
    return out

def lines(path):
    """{(op, table): count} of event lines"""
    c = Counter()
    for l in open(path):
        e = json.loads(l)
        c[(e["op"], e["schema"] + "." + e["table"] if "table" in e else "")] += 1
    return c

def stub(path):
    """{(op, table): count} of the events the stub received"""
    c = Counter()
    for l in open(path):
        body = json.loads(json.loads(l)["body"])
        for e in body if isinstance(body, list) else [body]:
            c[(e["op"], e["schema"] + "." + e["table"] if "table" in e else "")] += 1
    return c

def show(d):
    return " ".join("%s:%s=%g" % (op, t, v) for (op, t), v in sorted(d.items()) if v)

what = sys.argv[1]
if what == "series":
    print(show(series(sys.argv[2], sys.argv[3])))
elif what == "lines":
    print(show(lines(sys.argv[2])))
elif what == "stub":
    print(show(stub(sys.argv[2])))
EOF
counts() { python3 "$T/count.py" "$@"; }

# ------------------------------------------------------------------ the pipeline

python3 "$STUB" --port 0 --port-file "$T/stub.port" --log "$T/stub.log" --max-time 120 2>"$T/stub.err" &
wait_for 10 test -s "$T/stub.port" || { fail "httpstub starts" "$(cat "$T/stub.err")"; exit 1; }
SP=$(cat "$T/stub.port")
P1=$(free_port) P2=$(free_port) P3=$(free_port) PP=$(free_port)
while ! distinct "$SP" "$P1" "$P2" "$P3" "$PP"; do P2=$(free_port) P3=$(free_port) PP=$(free_port); done

# A real Prometheus scraping the three stages every second, started first: it is ready by the time they are
PROM=$(command -v prometheus || true)
if [ -n "$PROM" ]; then
	cat >"$T/prometheus.yml" <<-EOF
	global:
	  scrape_interval: 1s
	  scrape_timeout: 1s
	scrape_configs:
	  - job_name: pgcdc
	    static_configs:
	      - targets: ['127.0.0.1:$P1', '127.0.0.1:$P2', '127.0.0.1:$P3']
	EOF
	timeout -k 5 150 "$PROM" --config.file="$T/prometheus.yml" --storage.tsdb.path="$T/promdata" \
		--web.listen-address="127.0.0.1:$PP" --log.level=warn >"$T/prom.out" 2>"$T/prom.err" &
fi

mkfifo -m 600 "$T/ack"
C1="program=\"pg-capture\",slot=\"$SLOT\""
C2="program=\"cdc-filter\",slot=\"$SLOT\""
C3="program=\"cdc-publish\",target=\"http 127.0.0.1:$SP\",slot=\"$SLOT\""
(timeout -k 5 120 "$PG_CAPTURE" -d "$CONN" -S $SLOT --publication met_pub --create-slot --ack-fifo "$T/ack" \
		--metrics-listen "127.0.0.1:$P1" --metrics-file "$T/cap.prom" 2>"$T/cap.err" |
	tee "$T/cap.out" |
	timeout -k 5 120 "$FILTER" -T public.audit --metrics-listen "127.0.0.1:$P2" --metrics-file "$T/fil.prom" \
		--metrics-label slot=$SLOT 2>"$T/fil.err" |
	tee "$T/fil.out" |
	timeout -k 5 120 "$PUBLISH" --ack-fifo "$T/ack" --metrics-listen "127.0.0.1:$P3" --metrics-file "$T/pub.prom" \
		--metrics-label slot=$SLOT "http://127.0.0.1:$SP/" >"$T/pub.out" 2>"$T/pub.err"
	echo "${PIPESTATUS[*]}" >"$T/pipe.rc") &
PIPE=$!
streaming() { grep -q 'msg=streaming' "$T/cap.err"; }
all_up() { scrape "$P1" /dev/null && scrape "$P2" /dev/null && scrape "$P3" /dev/null; }
if wait_for 30 streaming && wait_for 10 all_up; then pass "the three stages run, each serving /metrics"
else fail "the pipeline starts" "$(cat "$T/cap.err" "$T/fil.err" "$T/pub.err")"; exit 1; fi
CAP=$(pid_of pg-capture "$T/cap.prom") FIL=$(pid_of cdc-filter "$T/fil.prom") PUB=$(pid_of cdc-publish "$T/pub.prom")

# the workload: 5 inserts, then 2 updates and a delete, then 4 inserts into the audit table the filter drops
sql "INSERT INTO items SELECT i, 'item ' || i FROM generate_series(1, 5) i"
sql "BEGIN; UPDATE items SET name = 'renamed' WHERE id IN (1, 2); DELETE FROM items WHERE id = 3; COMMIT"
before=$(sql "SELECT pg_current_wal_lsn()")
sql "INSERT INTO audit (what) SELECT 'entry ' || i FROM generate_series(1, 4) i"
end=$(sql "SELECT pg_current_wal_lsn()")
three_commits() { [ "$(grep -c '"op":"commit"' "$T/cap.out")" = 3 ]; }
wait_for 20 three_commits || fail "three transactions written" "$(cat "$T/cap.err")"
LAST=$(grep '"op":"commit"' "$T/cap.out" | tail -1 | python3 -c 'import json, sys; print(json.load(sys.stdin)["lsn"])')
LASTN=$(lsn_num "$LAST")
if [ "$LASTN" -gt "$(lsn_num "$before")" ] && [ "$LASTN" -le "$(lsn_num "$end")" ]; then
	pass "the last commit's LSN $LAST lies between pg_current_wal_lsn() before and after it ($before, $end)"
else fail "the last commit's LSN" "$LAST not in ($before, $end]"; fi

# everything delivered and acknowledged, as each stage's /metrics says
if wait_for 30 scrape_is "$P3" "pgcdc_acknowledged_lsn{$C3}" "$LASTN"; then
	pass "cdc-publish: pgcdc_acknowledged_lsn reaches the last commit ($LASTN = $LAST)"
else fail "cdc-publish acknowledges the last commit" "pgcdc_acknowledged_lsn $(scrape_val "$P3" "pgcdc_acknowledged_lsn{$C3}"), want $LASTN"; fi
# (then, with nothing pending, it may confirm the server's later keepalive
# positions: WAL the server writes by itself, like running-xacts records)
cap_acked() { [ "$(scrape_val "$P1" "pgcdc_acknowledged_lsn{$C1}")" -ge "$LASTN" ] 2>/dev/null; }
if wait_for 30 cap_acked; then
	pass "pg-capture: pgcdc_acknowledged_lsn reaches the last commit once confirmed"
else fail "pg-capture confirms the last commit" "pgcdc_acknowledged_lsn $(scrape_val "$P1" "pgcdc_acknowledged_lsn{$C1}"), want $LASTN"; fi
# the filter renders once a second: wait for it to show every line
wait_for 10 scrape_is "$P2" "pgcdc_lines_in_total{$C2}" "$(wc -l <"$T/cap.out")"
scrape "$P1" "$T/m1"
scrape "$P2" "$T/m2"
scrape "$P3" "$T/m3"
# within_wal NUMBER: from the last commit to the server's current position
within_wal() { [ "$1" -ge "$LASTN" ] 2>/dev/null && [ "$1" -le "$(lsn_num "$(sql "SELECT pg_current_wal_lsn()")")" ]; }
within_wal "$(lsn_num "$(sql "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '$SLOT'")")"
is "$?" 0 "the slot's confirmed_flush_lsn is the last commit or a later server position"
CAPACK=$(val "$T/m1" "pgcdc_acknowledged_lsn{$C1}")
within_wal "$CAPACK"
is "$?" 0 "pg-capture: and that is the last commit ($LASTN) or a later server position ($CAPACK)"

# pg-capture
E="pgcdc_events_out_total{$C1"
is "$(val "$T/m1" "$E,op=\"insert\",table=\"public.items\"}")" 5 "pg-capture: 5 inserts into public.items"
is "$(val "$T/m1" "$E,op=\"update\",table=\"public.items\"}")" 2 "pg-capture: 2 updates"
is "$(val "$T/m1" "$E,op=\"delete\",table=\"public.items\"}")" 1 "pg-capture: 1 delete"
is "$(val "$T/m1" "$E,op=\"insert\",table=\"public.audit\"}")" 4 "pg-capture: 4 inserts into public.audit"
is "$(val "$T/m1" "$E,op=\"commit\",table=\"\"}")" 3 "pg-capture: 3 commits (table empty)"
is "$(wc -l <"$T/cap.out")" 20 "pg-capture wrote 20 lines (3 begin, 12 rows, 2 schema, 3 commit)"
is "$(counts series "$T/m1" pgcdc_events_out_total)" "$(counts lines "$T/cap.out")" \
	"pg-capture: pgcdc_events_out_total by op and table is what it wrote, schema lines included"
is "$(val "$T/m1" "pgcdc_emitted_lsn{$C1}")" "$LASTN" "pg-capture: pgcdc_emitted_lsn is the last commit"
is "$(val "$T/m1" "pgcdc_pending_transactions{$C1}")" 0 "pg-capture: pgcdc_pending_transactions 0"
is "$(val "$T/m1" "pgcdc_lag_seconds{$C1}")" 0 "pg-capture: pgcdc_lag_seconds 0 once all is acknowledged"
server=$(val "$T/m1" "pgcdc_server_wal_lsn{$C1}")
want=$((server > CAPACK ? server - CAPACK : 0))
is "$(val "$T/m1" "pgcdc_lag_bytes{$C1}")" "$want" "pg-capture: pgcdc_lag_bytes is pgcdc_server_wal_lsn ($server) minus the acknowledged LSN"
is "$(val "$T/m1" "pgcdc_slot_wal_status{$C1,status=\"reserved\"}")" 1 "pg-capture: pgcdc_slot_wal_status{status=\"reserved\"} 1"
is "$(val "$T/m1" "pgcdc_reconnects_total{$C1}")" 0 "pg-capture: pgcdc_reconnects_total 0"
is "$(val "$T/m1" "pgcdc_build_info{$C1,version=\"$VERSION\"}")" 1 "pg-capture: pgcdc_build_info{version=\"$VERSION\"} 1"

# cdc-filter
E="{$C2"
is "$(val "$T/m2" "pgcdc_events_dropped_total$E,op=\"insert\",table=\"public.audit\"}")" 4 "cdc-filter: 4 audit inserts dropped"
is "$(val "$T/m2" "pgcdc_events_dropped_total$E,op=\"schema\",table=\"public.audit\"}")" 1 "cdc-filter: the audit table's schema line dropped"
is "$(counts series "$T/m2" pgcdc_events_in_total)" "$(counts series "$T/m1" pgcdc_events_out_total)" \
	"cdc-filter: pgcdc_events_in_total by op and table is pg-capture's pgcdc_events_out_total"
is "$(counts series "$T/m2" pgcdc_events_out_total)" "$(counts lines "$T/fil.out")" \
	"cdc-filter: pgcdc_events_out_total by op and table is what it wrote"
is "$(counts series "$T/m2" pgcdc_events_out_total)" \
	"begin:=3 commit:=3 delete:public.items=1 insert:public.items=5 schema:public.items=1 update:public.items=2" \
	"cdc-filter: kept 15 events: every transaction's begin and commit, the rows and schema of public.items"
is "$(val "$T/m2" "pgcdc_lines_in_total$E}")" 20 "cdc-filter: pgcdc_lines_in_total 20"
total() { awk -v n="$2{" 'index($0, n) == 1 { t += $NF } END { print t + 0 }' "$1"; }
is "$(total "$T/m2" pgcdc_events_in_total) = $(total "$T/m2" pgcdc_events_out_total) + $(total "$T/m2" pgcdc_events_dropped_total)" \
	"20 = 15 + 5" "cdc-filter: events in = events out + events dropped"
is "$(val "$T/m2" "pgcdc_bytes_in_total$E}")" "$(val "$T/m1" "pgcdc_bytes_out_total{$C1}")" \
	"cdc-filter: pgcdc_bytes_in_total is pg-capture's pgcdc_bytes_out_total ($(stat -c %s "$T/cap.out") bytes written)"
is "$(val "$T/m2" "pgcdc_bytes_out_total$E}")" "$(stat -c %s "$T/fil.out")" "cdc-filter: pgcdc_bytes_out_total is the size of its output"
is "$(val "$T/m2" "pgcdc_bad_lines_total$E}")" 0 "cdc-filter: no bad lines"
is "$(val "$T/m2" "pgcdc_build_info$E,version=\"$VERSION\"}")" 1 "cdc-filter: pgcdc_build_info"

# cdc-publish
E="{$C3"
REQS=$(wc -l <"$T/stub.log")
is "$(counts series "$T/m3" pgcdc_events_out_total)" "$(counts stub "$T/stub.log")" \
	"cdc-publish: pgcdc_events_out_total by op and table is what the HTTP server received"
is "$(counts series "$T/m3" pgcdc_events_out_total)" \
	"delete:public.items=1 insert:public.items=5 schema:public.items=1 update:public.items=2" \
	"cdc-publish: 9 events delivered (begin and commit are not published)"
is "$(val "$T/m3" "pgcdc_http_requests_total$E,status=\"200\"}")" "$REQS" "cdc-publish: pgcdc_http_requests_total{status=\"200\"} is the $REQS requests the server logged"
is "$(grep -c '"action": "200"' "$T/stub.log")" 9 "the HTTP server answered 9 requests with 200"
is "$(counts series "$T/m3" pgcdc_events_in_total)" "$(counts lines "$T/fil.out")" "cdc-publish: pgcdc_events_in_total is what cdc-filter wrote"
is "$(val "$T/m3" "pgcdc_acknowledged_lsn$E}")" "$LASTN" "cdc-publish: pgcdc_acknowledged_lsn is the last commit"
is "$(val "$T/m3" "pgcdc_pending_events$E}")" 0 "cdc-publish: pgcdc_pending_events 0"
is "$(val "$T/m3" "pgcdc_lag_seconds$E}")" 0 "cdc-publish: pgcdc_lag_seconds 0"
is "$(val "$T/m3" "pgcdc_requests_in_flight$E}")" 0 "cdc-publish: pgcdc_requests_in_flight 0"
is "$(val "$T/m3" "pgcdc_http_retries_total$E}")" 0 "cdc-publish: pgcdc_http_retries_total 0"
# the latency runs from an event's commit: every row event has one, a schema line none
rows=$(counts stub "$T/stub.log" | tr ' ' '\n' | grep -v '^schema:' | awk -F= '{ n += $2 } END { print n }')
is "$rows" 8 "the HTTP server received 8 row events"
is "$(val "$T/m3" "pgcdc_delivery_latency_seconds_count$E}")" "$rows" \
	"cdc-publish: pgcdc_delivery_latency_seconds_count is the $rows row events delivered"
is "$(val "$T/m3" "pgcdc_delivery_latency_seconds_bucket$E,le=\"+Inf\"}")" "$rows" "cdc-publish: the +Inf bucket is the count"
is "$(val "$T/m3" "pgcdc_build_info$E,version=\"$VERSION\"}")" 1 "cdc-publish: pgcdc_build_info"

# labels: every series carries the program's own labels first, and nothing warned
for s in "m1 pg-capture $C1" "m2 cdc-filter $C2" "m3 cdc-publish $C3"; do
	read -r f prog consts <<<"$s"
	is "$(grep -v '^#' "$T/$f" | grep -cvF "{$consts")" 0 "$prog: every series has labels $consts first"
	like "$(grep -c '^pgcdc_' "$T/$f")" '^[1-9][0-9]+$' "$prog: /metrics has series"
	is "$(grep -c '^pgcdc_last_error_timestamp_seconds' "$T/$f")" 0 "$prog: no warn or error logged, so no pgcdc_last_error_timestamp_seconds"
done
is "$(cat "$T/cap.err" "$T/fil.err" "$T/pub.err" | grep -c -e level=warn -e level=error)" 0 "no stage logged a warning or an error"

# promtool accepts each program's /metrics and its metrics file
for s in "m1 cap pg-capture" "m2 fil cdc-filter" "m3 pub cdc-publish"; do
	read -r f file prog <<<"$s"
	out=$(promtool check metrics <"$T/$f" 2>&1)
	is "$?:$out" "0:" "promtool check metrics accepts $prog's /metrics"
	cp "$T/$file.prom" "$T/$file.copy"
	out=$(promtool check metrics <"$T/$file.copy" 2>&1)
	is "$?:$out" "0:" "promtool check metrics accepts $prog's --metrics-file"
	like "$(grep -c '^pgcdc_' "$T/$file.copy")" '^[1-9][0-9]+$' "$prog's --metrics-file has series"
done

# the file is always whole: read each repeatedly across several rewrites
declare -A inode=() changes=()
bad=0 reads=0
replaced() { local f; for f in cap fil pub; do [ "${changes[$f]:-0}" -ge 2 ] || return 1; done; }
end_at=$((SECONDS + 3))
while [ $SECONDS -lt $end_at ] || ! replaced; do
	[ $SECONDS -gt $((end_at + 5)) ] && break
	for f in cap fil pub; do
		# the inode before the read: a file rewritten in place would keep its own
		i=$(stat -c %i "$T/$f.prom")
		cp "$T/$f.prom" "$T/read.prom" 2>/dev/null || { bad=$((bad + 1)); continue; }
		reads=$((reads + 1))
		[ -n "${inode[$f]:-}" ] && [ "${inode[$f]}" != "$i" ] && changes[$f]=$((${changes[$f]:-0} + 1))
		inode[$f]=$i
		# whole: ends with a newline and has the first series every program exports
		if [ "$(tail -c1 "$T/read.prom" | od -An -c | tr -d ' ')" != '\n' ] ||
			! grep -q '^pgcdc_build_info{' "$T/read.prom"; then
			bad=$((bad + 1))
			cp "$T/read.prom" "$T/bad.prom"
			continue
		fi
		sum=$(md5sum <"$T/read.prom" | cut -c1-32)
		[ -e "$T/ok.$sum" ] && continue
		if promtool check metrics <"$T/read.prom" >/dev/null 2>&1; then touch "$T/ok.$sum"
		else bad=$((bad + 1)); cp "$T/read.prom" "$T/bad.prom"; fi
	done
	sleep 0.05
done
if replaced; then pass "each metrics file was replaced by another (new inode) at least twice during $reads reads"
else fail "the metrics files are replaced every second" "changes: cap ${changes[cap]:-0} fil ${changes[fil]:-0} pub ${changes[pub]:-0}"; fi
is "$bad" 0 "every read of a metrics file was whole and passed promtool check metrics ($reads reads)"

# ------------------------------------------------------------------ Prometheus

if [ -z "$PROM" ]; then
	pass "Prometheus scraping the stages # SKIP prometheus is not installed (apt-get install prometheus)"
else
	# pq QUERY: the result as "PROGRAM=VALUE ..." sorted by program
	pq() {
		curl -sf --max-time 5 "http://127.0.0.1:$PP/api/v1/query" --data-urlencode "query=$1" |
			jq -r '.data.result | map((.metric.program // "") + "=" + .value[1]) | sort | join(" ")'
	}
	pq_is() { [ "$(pq "$1")" = "$2" ]; }
	SUMS="cdc-filter=15 cdc-publish=9 pg-capture=20"
	if wait_for 40 pq_is "sum by (program) (pgcdc_events_out_total{slot=\"$SLOT\"})" "$SUMS"; then
		pass "Prometheus: sum by (program) (pgcdc_events_out_total{slot=\"$SLOT\"}) is $SUMS"
	else fail "Prometheus scrapes the stages" "got '$(pq "sum by (program) (pgcdc_events_out_total{slot=\"$SLOT\"})")', want '$SUMS'; $(head -5 "$T/prom.err")"; fi
		is "$(pq 'count(up{job="pgcdc"} == 1)')" "=3" "Prometheus: the three targets are up"
	is "$(pq "pgcdc_acknowledged_lsn{slot=\"$SLOT\",program=\"cdc-publish\"}")" "cdc-publish=$LASTN" \
		"Prometheus: cdc-publish's pgcdc_acknowledged_lsn is the last commit"
	a=$(pq "pgcdc_acknowledged_lsn{slot=\"$SLOT\",program=\"pg-capture\"}")
	like "$a" '^pg-capture=[0-9]+$' "Prometheus: pg-capture's pgcdc_acknowledged_lsn"
	within_wal "${a#*=}"
	is "$?" 0 "Prometheus: pg-capture's is the last commit ($LASTN) or a later server position (${a#*=})"
	like "$(pq "pgcdc_lag_bytes{slot=\"$SLOT\"}")" '^pg-capture=[0-9]+$' "Prometheus: pgcdc_lag_bytes, pg-capture's"
	is "$(pq "pgcdc_lag_bytes{slot=\"$SLOT\"} == bool clamp_min(pgcdc_server_wal_lsn{slot=\"$SLOT\"} - pgcdc_acknowledged_lsn{slot=\"$SLOT\"}, 0)")" \
		"pg-capture=1" "Prometheus: pgcdc_lag_bytes is pgcdc_server_wal_lsn minus pgcdc_acknowledged_lsn"
	is "$(pq "pgcdc_events_dropped_total{slot=\"$SLOT\",op=\"insert\",table=\"public.audit\"}")" "cdc-filter=4" \
		"Prometheus: cdc-filter dropped the 4 audit inserts"
	is "$(pq "sum by (program) (pgcdc_http_requests_total{slot=\"$SLOT\",target=\"http 127.0.0.1:$SP\"})")" "cdc-publish=9" \
		"Prometheus: cdc-publish's 9 requests, under its target label"
fi

# ------------------------------------------------------------------ SIGUSR1

for s in "$CAP cap pg-capture" "$FIL fil cdc-filter" "$PUB pub cdc-publish"; do
	read -r pid f prog <<<"$s"
	if [ -n "$pid" ] && kill -USR1 "$pid"; then :; else fail "$prog: found its process" "pid '$pid'"; fi
done
has_status() { grep -q 'msg=status' "$T/$1.err"; }
for s in "cap pg-capture" "fil cdc-filter" "pub cdc-publish"; do
	read -r f prog <<<"$s"
	wait_for 10 has_status "$f" || fail "$prog: SIGUSR1 logs a status line" "$(tail -3 "$T/$f.err")"
done
L='[0-9A-F]+/[0-9A-F]+'
like "$(grep 'msg=status' "$T/cap.err")" "^ts=[^ ]+ level=info prog=pg-capture msg=status confirmed=$L emitted=$LAST events=20 slot=$SLOT .*pending=0 lag_s=0.000 " \
	"pg-capture on SIGUSR1: msg=status confirmed= emitted= events= slot= pending= lag_s="
within_wal "$(lsn_num "$(grep 'msg=status' "$T/cap.err" | sed 's/.* confirmed=\([^ ]*\) .*/\1/')")"
is "$?" 0 "pg-capture's status line: confirmed= is the last commit or a later server position"
like "$(grep 'msg=status' "$T/fil.err")" '^ts=[^ ]+ level=info prog=cdc-filter msg=status lines=20 kept=15 dropped=5 rewritten=0 bad=0 lines_per_s=[0-9]+$' \
	"cdc-filter on SIGUSR1: msg=status lines= kept= dropped="
like "$(grep 'msg=status' "$T/pub.err")" "^ts=[^ ]+ level=info prog=cdc-publish msg=status delivered=9 dead_lettered=0 skipped=0 acknowledged=$LAST .*pending=0 .*in_flight=0 http_status=200" \
	"cdc-publish on SIGUSR1: msg=status delivered= acknowledged= pending= in_flight= http_status="
is "$(cat "$T/cap.err" "$T/fil.err" "$T/pub.err" | grep -c 'msg=status')" 3 "one status line each, and nobody stopped"

# ------------------------------------------------------------------ bad metrics options

# usage ERR PROG ARGS...: exit status 2, two lines: ERR and "Try 'PROG --help'..."
usage() {
	local want=$1 prog=$2 err
	shift 2
	err=$(timeout -k 2 10 "$@" </dev/null 2>&1 >/dev/null)
	is "$?:$err" "2:$prog: $want"$'\n'"Try '$prog --help' for more information." "$prog ${*:2}: usage error, exit 2"
}
LISTEN_ERR='invalid --metrics-listen "127.0.0.1" (ADDR:PORT, e.g. 127.0.0.1:9187)'
LABEL_ERR='invalid --metrics-label "bad-name=x" (NAME=VALUE, NAME a Prometheus label name)'
usage "$LISTEN_ERR" pg-capture "$PG_CAPTURE" -S x --metrics-listen 127.0.0.1
usage "$LISTEN_ERR" cdc-filter "$FILTER" --metrics-listen 127.0.0.1
usage "$LISTEN_ERR" cdc-publish "$PUBLISH" --metrics-listen 127.0.0.1 http://127.0.0.1:9/
usage 'invalid --metrics-listen "127.0.0.1:" (ADDR:PORT, e.g. 127.0.0.1:9187)' cdc-filter "$FILTER" --metrics-listen 127.0.0.1:
usage "$LABEL_ERR" pg-capture "$PG_CAPTURE" -S x --metrics-label bad-name=x
usage "$LABEL_ERR" cdc-filter "$FILTER" --metrics-label bad-name=x
usage "$LABEL_ERR" cdc-publish "$PUBLISH" --metrics-label bad-name=x http://127.0.0.1:9/
# a port another stage listens on: status 1 (runtime error) and one error line saying why
timeout -k 2 10 "$FILTER" --metrics-listen "127.0.0.1:$P3" </dev/null >/dev/null 2>"$T/inuse.err"
is "$?" 1 "cdc-filter --metrics-listen on cdc-publish's port: exit status 1"
is "$(grep -c level=error "$T/inuse.err")" 1 "one error line"
like "$(grep level=error "$T/inuse.err")" "level=error prog=cdc-filter msg=\"could not listen for metrics\" listen=127.0.0.1:$P3 error=\"Address already in use\"$" \
	"it names the address and says it is in use"
timeout -k 2 10 "$PUBLISH" --metrics-listen "127.0.0.1:$P1" http://127.0.0.1:9/ </dev/null >/dev/null 2>"$T/inuse2.err"
is "$?" 1 "cdc-publish --metrics-listen on pg-capture's port: exit status 1"
like "$(grep level=error "$T/inuse2.err" | head -1)" "msg=\"could not listen for metrics\" listen=127.0.0.1:$P1 error=\"Address already in use\"" \
	"cdc-publish: the same error line"
scrape_is "$P3" "pgcdc_acknowledged_lsn{$C3}" "$LASTN"
is "$?" 0 "the stage on that port still answers"

# ------------------------------------------------------------------ the end of the run

kill -TERM "$CAP"
wait_exit "$PIPE" 30
is "$RC:$(cat "$T/pipe.rc" 2>/dev/null)" "0:0 0 0 0 0" "SIGTERM to pg-capture: every stage exits 0"
like "$(grep msg=exiting "$T/cap.err")" "level=info prog=pg-capture msg=exiting confirmed=$(sql "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '$SLOT'") emitted=$LAST events=20 slot=$SLOT$" \
	"pg-capture's exiting line: the figures of its metrics (confirmed= the slot's confirmed_flush_lsn)"
like "$(grep msg=done "$T/fil.err")" 'level=info prog=cdc-filter msg=done lines=20 kept=15 dropped=5 rewritten=0 bad=0$' \
	"cdc-filter's done line: the figures of its metrics"
like "$(grep msg=exiting "$T/pub.err")" "level=info prog=cdc-publish msg=exiting delivered=9 dead_lettered=0 skipped=0 acknowledged=$LAST$" \
	"cdc-publish's exiting line: the figures of its metrics"
is "$(val "$T/pub.prom" "pgcdc_acknowledged_lsn{$C3}"):$(val "$T/cap.prom" "pgcdc_events_out_total{$C1,op=\"insert\",table=\"public.items\"}")" \
	"$LASTN:5" "the metrics files written one last time at exit"
out=$(promtool check metrics <"$T/cap.prom" 2>&1)
is "$?:$out" "0:" "promtool check metrics accepts the last metrics file"

# ------------------------------------------------------------------ stall: cdc-publish

python3 "$STUB" --port 0 --port-file "$T/stub4.port" --log "$T/stub4.log" --max-time 60 --default 503 2>"$T/stub4.err" &
wait_for 10 test -s "$T/stub4.port" || fail "httpstub (503) starts" "$(cat "$T/stub4.err")"
mkfifo -m 600 "$T/ack4"
timeout -k 2 40 cat "$T/ack4" >"$T/ack4.out" &
READER=$!
t0=$SECONDS
timeout -k 5 30 "$PUBLISH" --stall-timeout 2 --ack-fifo "$T/ack4" --metrics-file "$T/stall4.prom" \
	"http://127.0.0.1:$(cat "$T/stub4.port")/" <"$T/fil.out" >/dev/null 2>"$T/stall4.err" &
wait_exit $! 20
is "$RC" 10 "cdc-publish --stall-timeout 2 against a server answering 503: exit status 10"
took=$((SECONDS - t0))
if [ "$took" -ge 2 ] && [ "$took" -le 8 ]; then pass "after the stall timeout ($took s)"
else fail "exits after the stall timeout" "$took s"; fi
first=$(grep -v -m1 -e '"op":"begin"' -e '"op":"commit"' "$T/fil.out" | python3 -c 'import json, sys; e = json.load(sys.stdin); print(e.get("id") or e["lsn"])')
like "$(grep stalled "$T/stall4.err")" "^ts=[^ ]+ level=error prog=cdc-publish msg=\"stalled: nothing acknowledged\" seconds=[23] pending=15 id=$first table=public.items http_status=503 attempt=[1-9][0-9]* " \
	"the stall line: level=error, the oldest event's id and table, http_status=503, attempt"
is "$(grep -c 'msg="stalled: nothing acknowledged"' "$T/stall4.err")" 1 "one stall line"
wait_exit "$READER" 10
is "$(wc -c <"$T/ack4.out")" 0 "nothing was acknowledged on the ack FIFO"
n503=$(grep -c '"action": "503"' "$T/stub4.log")
is "$(val "$T/stall4.prom" 'pgcdc_http_requests_total{program="cdc-publish",target="http 127.0.0.1:'"$(cat "$T/stub4.port")"'",status="503"}')" \
	"$n503" "pgcdc_http_requests_total{status=\"503\"} is the $n503 requests answered 503"
is "$(grep -c '^pgcdc_events_out_total' "$T/stall4.prom")" 0 "no event counted delivered"

# ------------------------------------------------------------------ stall: pg-capture

"$PG_CAPTURE" -d "$CONN" -S met_stall --publication met_pub --create-slot --endpos "$(sql "SELECT pg_current_wal_lsn()")" \
	>/dev/null 2>"$T/create5.err" || fail "create slot met_stall" "$(cat "$T/create5.err")"
mkfifo -m 600 "$T/ack5"
timeout -k 2 60 sleep 50 >"$T/ack5" &	# a last stage that never acknowledges, and never hangs up
HOLD=$!
(timeout -k 5 30 "$PG_CAPTURE" -d "$CONN" -S met_stall --publication met_pub --ack-fifo "$T/ack5" --stall-timeout 2 \
	2>"$T/stall5.err" | cat >"$T/stall5.out"
	echo "${PIPESTATUS[0]}" >"$T/stall5.rc") &
STALL=$!
streaming5() { grep -q 'msg=streaming' "$T/stall5.err"; }
wait_for 20 streaming5 || fail "pg-capture on met_stall streams" "$(cat "$T/stall5.err")"
t0=$SECONDS
sql "INSERT INTO items VALUES (100, 'stalled')"
wait_exit "$STALL" 20
is "$(cat "$T/stall5.rc" 2>/dev/null)" 10 "pg-capture --stall-timeout 2 whose reader never acknowledges: exit status 10"
took=$((SECONDS - t0))
if [ "$took" -ge 2 ] && [ "$took" -le 8 ]; then pass "after the stall timeout ($took s from the transaction)"
else fail "pg-capture exits after the stall timeout" "$took s"; fi
has_commit5() { grep -q '"op":"commit"' "$T/stall5.out"; }
wait_for 5 has_commit5
read -r c5 cl5 <<<"$(grep '"op":"commit"' "$T/stall5.out" | python3 -c 'import json, sys; e = json.load(sys.stdin); print(e["lsn"], e["commit_lsn"])')"
like "$(grep stalled "$T/stall5.err")" "^ts=[^ ]+ level=error prog=pg-capture msg=\"stalled: nothing acknowledged\" slot=met_stall seconds=[23] pending=1 lsn=$c5 waiting_for=acknowledgements " \
	"pg-capture --stall-timeout 2, nothing acknowledged: the stall line names the commit's LSN $c5"
like "$(grep msg=exiting "$T/stall5.err")" "level=error prog=pg-capture msg=exiting confirmed=[^ ]+ emitted=$c5 events=4 slot=met_stall" \
	"and exits with an error line: emitted the commit, 4 events (begin, schema, insert, commit)"
kill_tree "$HOLD"
wait "$HOLD" 2>/dev/null
is "$(grep -c . "$T/stall5.out")" 4 "the reader got the transaction (begin, schema, insert, commit)"
is "$(sql "SELECT confirmed_flush_lsn < '$cl5' FROM pg_replication_slots WHERE slot_name = 'met_stall'")" t \
	"the slot's confirmed_flush_lsn did not reach the unacknowledged commit"

# ------------------------------------------------------------------ --log-format json

# jsonlog LOGFMT JSON: "ok" when each JSON line is an object with ts, level,
# prog, msg and the logfmt line's other members, with the same values
cat >"$T/jsonlog.py" <<'EOF'
import json, re, sys
lf = [l for l in open(sys.argv[1]).read().splitlines()]
js = [l for l in open(sys.argv[2]).read().splitlines()]
def logfmt(l):
    return {k: (q if q is not None else v).replace('\\"', '"').replace('\\\\', '\\')
            for k, q, v in ((m.group(1), m.group(2), m.group(3)) for m in
                            re.finditer(r'(\w+)=(?:"((?:[^"\\]|\\.)*)"|(\S*))', l))}
if len(lf) != len(js) or not js:
    sys.exit("%d logfmt lines, %d json lines" % (len(lf), len(js)))
for a, b in zip(lf, js):
    try:
        o = json.loads(b)
    except ValueError as e:
        sys.exit("not JSON: %s: %s" % (b, e))
    if not isinstance(o, dict):
        sys.exit("not an object: " + b)
    missing = [k for k in ("ts", "level", "prog", "msg") if k not in o]
    if missing:
        sys.exit("no %s in %s" % (missing, b))
    want = logfmt(a)
    got = {k: str(v) for k, v in o.items()}
    del want["ts"], got["ts"]
    if got != want:
        sys.exit("%s\n  vs %s" % (b, a))
print("ok")
EOF
"$FILTER" -T public.audit <"$T/cap.out" >/dev/null 2>"$T/f6.logfmt"
"$FILTER" -T public.audit --log-format json <"$T/cap.out" >/dev/null 2>"$T/f6.json"
is "$(python3 "$T/jsonlog.py" "$T/f6.logfmt" "$T/f6.json" 2>&1)" ok "cdc-filter --log-format json: the same lines as logfmt, as JSON objects"
like "$(cat "$T/f6.json")" '^\{"ts":"[^"]+","level":"info","prog":"cdc-filter","msg":"done","lines":"20","kept":"15","dropped":"5","rewritten":"0","bad":"0"\}$' \
	"cdc-filter's done line in JSON: lines, kept, dropped"
# a line longer than the log's buffer, cut short: still one JSON object
long=$T/$(printf 'm%.0s' {1..5000})
"$FILTER" --log-format json --metrics-file "$long" </dev/null >/dev/null 2>"$T/long.json"
is "$(python3 -c '
import json, sys
lines = open(sys.argv[1], "rb").read().splitlines()
objs = [json.loads(l.decode()) for l in lines]
w = [o for o in objs if o["msg"] == "could not write the metrics file"]
print(len(lines), "lines,", len(w) and w[0]["level"], w and w[0]["file"][:len(sys.argv[2]) + 5] == sys.argv[2] + "/mmmm")
' "$T/long.json" "$T" 2>&1 | tail -1)" "$(($(wc -l <"$T/long.json"))) lines, warn True" \
	"a JSON log line cut short to fit (a 5000-byte --metrics-file path) is still a JSON object"
"$PUBLISH" --dry-run "http://127.0.0.1:9/" <"$T/fil.out" >/dev/null 2>"$T/p6.logfmt"
"$PUBLISH" --dry-run --log-format json "http://127.0.0.1:9/" <"$T/fil.out" >/dev/null 2>"$T/p6.json"
is "$(python3 "$T/jsonlog.py" "$T/p6.logfmt" "$T/p6.json" 2>&1)" ok "cdc-publish --log-format json: the same lines as logfmt, as JSON objects"
# a line with quotes, spaces and an LSN: pg-capture's stall line
(timeout -k 5 30 "$PG_CAPTURE" -d "$CONN" -S met_stall --publication met_pub --ack-fifo "$T/ack5" --stall-timeout 1 \
	--log-format json >"$T/stall6.out" 2>"$T/stall6.err") &
S3=$!
timeout -k 2 60 sleep 50 >"$T/ack5" &
HOLD=$!
wait_exit "$S3" 20
kill_tree "$HOLD"
wait "$HOLD" 2>/dev/null
is "$RC" 10 "pg-capture --log-format json stalls the same way (exit status 10)"
is "$(grep '"op":"commit"' "$T/stall6.out" | python3 -c 'import json, sys; print(json.load(sys.stdin)["lsn"])')" "$c5" \
	"a restart writes the unacknowledged transaction again"
is "$(python3 -c '
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
bad = [l for l in lines if not all(k in l for k in ("ts", "level", "prog", "msg"))]
s = [l for l in lines if l["msg"] == "stalled: nothing acknowledged"]
print("%d bad, %d stall: %s %s %s %s" % (len(bad), len(s), s[0]["level"], s[0]["lsn"], s[0]["slot"], "hint" in s[0]) if s else "%d bad, no stall line" % len(bad))
' "$T/stall6.err" 2>&1)" "0 bad, 1 stall: error $c5 met_stall True" "pg-capture's JSON lines: objects; the stall line with level, lsn, slot and hint"

done_testing
