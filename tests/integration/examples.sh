#!/usr/bin/env bash
# The operator's examples: the systemd unit passes systemd-analyze, the
# alerting rules and scrape config pass promtool and their unit tests, the
# dashboard is JSON whose queries parse, and every metric and log message
# they name is one the programs have.
set -u
source "$(dirname "$0")/../lib/testlib.sh"
EX=$TOP/examples
T=$(mktemp -d /tmp/pgcdc-examples.XXXXXX)
trap 'rm -rf "$T"' EXIT

# The metrics the programs expose (README, Monitoring); histograms by their
# base name. A name in an example that is not here is a typo or a metric
# that does not exist.
METRICS="pgcdc_build_info pgcdc_start_time_seconds pgcdc_last_error_timestamp_seconds
pgcdc_events_in_total pgcdc_events_out_total pgcdc_events_dropped_total
pgcdc_bytes_in_total pgcdc_bytes_out_total pgcdc_bad_lines_total
pgcdc_emitted_lsn pgcdc_acknowledged_lsn pgcdc_server_wal_lsn pgcdc_lag_bytes
pgcdc_lag_seconds pgcdc_pending_transactions pgcdc_slot_retained_wal_bytes
pgcdc_slot_wal_status pgcdc_snapshot_rows_total pgcdc_snapshot_rows_estimate
pgcdc_snapshot_tables_pending pgcdc_reconnects_total
pgcdc_http_requests_total pgcdc_http_retries_total pgcdc_events_dead_lettered_total
pgcdc_delivery_latency_seconds pgcdc_pending_events pgcdc_requests_in_flight
pgcdc_last_heartbeat_timestamp_seconds"

# --- systemd unit --------------------------------------------------------

if ! command -v systemd-analyze >/dev/null; then
	pass "pgcdc@.service # SKIP systemd-analyze not found"
else
	# verify wants ExecStart to exist: the checked-out pipeline.sh stands in
	# for the installed one
	n=$(grep -c '^ExecStart=/usr/local/share/pgcdc/pipeline.sh$' "$EX/pgcdc@.service")
	is "$n" 1 "pgcdc@.service runs the installed pipeline.sh"
	mkdir "$T/unit" "$T/broken"
	sed "s|^ExecStart=.*|ExecStart=$EX/pipeline.sh|" "$EX/pgcdc@.service" >"$T/unit/pgcdc@.service"
	out=$(timeout -k 5 60 systemd-analyze verify --man=no "$T/unit/pgcdc@test.service" 2>&1)
	rc=$?
	is "$rc:$out" "0:" "systemd-analyze verify pgcdc@.service: no error, no warning"
	# the same check must see a broken unit (an unknown key, a bad value)
	sed 's/^Restart=always/Restart=sometimes/; s/^NoNewPrivileges=/NoNewPrivilege=/' \
		"$T/unit/pgcdc@.service" >"$T/broken/pgcdc@.service"
	out=$(timeout -k 5 60 systemd-analyze verify --man=no "$T/broken/pgcdc@test.service" 2>&1)
	like "$out" "NoNewPrivilege.*ignoring" "systemd-analyze verify reports a broken copy: unknown key"
	like "$out" "restart specifier.*sometimes" "systemd-analyze verify reports a broken copy: bad value"
	for key in EnvironmentFile=/etc/pgcdc/%i.env Restart=always KillMode=control-group KillSignal=SIGTERM \
			User=pgcdc NoNewPrivileges=yes ProtectSystem=strict PrivateTmp=yes; do
		grep -qx -- "$key" "$EX/pgcdc@.service" && pass "pgcdc@.service: $key" || fail "pgcdc@.service: $key" "no such line"
	done
	# stopping must outlast pipeline.sh's own 15 s grace before SIGKILL
	stop=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)s\{0,1\}$/\1/p' "$EX/pgcdc@.service")
	grace=$(grep -oE 'i < [0-9]+; i\+\+' "$EX/pipeline.sh" | grep -oE '[0-9]+')
	[ -n "$stop" ] && [ -n "$grace" ] && [ "$stop" -gt $((grace / 10)) ] &&
		pass "TimeoutStopSec=$stop outlasts pipeline.sh's $((grace / 10)) s" ||
		fail "TimeoutStopSec outlasts pipeline.sh's grace" "TimeoutStopSec=$stop, pipeline.sh waits $grace tenths"
	# the hardening stays: exposure 2.0 at most (the scale is 0-100 here)
	out=$(timeout -k 5 60 systemd-analyze security --offline=yes --man=no --threshold=20 \
		"$T/unit/pgcdc@test.service" 2>&1)
	rc=$?
	if printf '%s' "$out" | grep -q 'unrecognized option'; then
		pass "systemd-analyze security # SKIP this systemd has no --offline"
	else
		is "$rc" 0 "systemd-analyze security: exposure at most 2.0 ($(printf '%s\n' "$out" | grep -oE 'exposure level[^:]*: [0-9.]+' | grep -oE '[0-9.]+$'))"
	fi
	# the variables pgcdc.env.example sets are the ones pipeline.sh reads
	for v in $(grep -oE '^#?(PGCDC_[A-Z_]+|PGPASSFILE)=' "$EX/pgcdc.env.example" | tr -d '#=' | sort -u); do
		if [ "$v" = PGPASSFILE ] || grep -q "\b$v\b" "$EX/pipeline.sh"; then
			pass "pgcdc.env.example: $v is read"
		else
			fail "pgcdc.env.example: $v is read" "pipeline.sh does not use $v"
		fi
	done
fi

# --- Prometheus ----------------------------------------------------------

if ! command -v promtool >/dev/null; then
	pass "alerts.yml, prometheus.yml # SKIP promtool not found (apt-get install prometheus)"
else
	out=$(cd "$EX/prometheus" && timeout -k 5 60 promtool check rules alerts.yml 2>&1)
	rc=$?
	is "$rc" 0 "promtool check rules alerts.yml"
	[ "$rc" = 0 ] || printf '%s\n' "$out" | head -20 | sed 's/^/#   /'
	out=$(cd "$EX/prometheus" && timeout -k 5 120 promtool test rules alerts_test.yml 2>&1)
	rc=$?
	is "$rc" 0 "promtool test rules alerts_test.yml"
	[ "$rc" = 0 ] || printf '%s\n' "$out" | head -40 | sed 's/^/#   /'
	out=$(cd "$EX/prometheus" && timeout -k 5 60 promtool check config prometheus.yml 2>&1)
	is "$?" 0 "promtool check config prometheus.yml"
	like "$out" "SUCCESS: 1 rule files found" "prometheus.yml loads alerts.yml"

	# every alert has a severity and the three annotations, and fires in a test
	alerts=$(grep -oE '^ *- alert: [A-Za-z]+' "$EX/prometheus/alerts.yml" | awk '{print $3}')
	nrules=$(printf '%s\n' "$alerts" | grep -c .)
	like "$nrules" '^[1-9][0-9]*$' "alerts.yml has alerts ($nrules)"
	is "$(grep -cE '^ +severity: (critical|warning|info)$' "$EX/prometheus/alerts.yml")" "$nrules" "every alert has a severity"
	for a in log metric fix summary; do
		is "$(grep -cE "^ +$a: " "$EX/prometheus/alerts.yml")" "$nrules" "every alert has a $a annotation"
	done
	missing=""
	for a in $alerts; do
		grep -A1 'exp_labels:' "$EX/prometheus/alerts_test.yml" | grep -qx " *alertname: $a" || missing="$missing $a"
	done
	is "$missing" "" "alerts_test.yml makes every alert fire"
	like "$(grep -c 'exp_alerts: \[\]' "$EX/prometheus/alerts_test.yml")" '^[1-9]' "alerts_test.yml checks alerts that must not fire"
	# and the tests can fail: an alert that can no longer fire is caught
	mkdir "$T/prom"
	sed 's/pgcdc_lag_seconds > 300/pgcdc_lag_seconds > 3000/' "$EX/prometheus/alerts.yml" >"$T/prom/alerts.yml"
	cp "$EX/prometheus/alerts_test.yml" "$T/prom/"
	out=$(cd "$T/prom" && timeout -k 5 120 promtool test rules alerts_test.yml 2>&1)
	rc=$?
	is "$rc" 1 "promtool test rules fails on a changed threshold"
	like "$out" 'alertname: PgcdcLagSeconds' "and names the alert"
fi

# --- Grafana -------------------------------------------------------------

dash=$EX/grafana/pgcdc.json
if command -v jq >/dev/null; then
	timeout -k 5 30 jq empty "$dash" 2>/dev/null
	is "$?" 0 "pgcdc.json is JSON"
	is "$(jq -r '.templating.list[] | select(.name == "datasource") | "\(.type) \(.query)"' "$dash")" \
		"datasource prometheus" "pgcdc.json: a datasource variable of type prometheus"
	is "$(jq -r '.templating.list[] | select(.name == "slot") | .type' "$dash")" query "pgcdc.json: a slot variable"
	is "$(jq -r '[.panels[] | select(.type != "row") | .datasource.uid] | unique | join(" ")' "$dash")" \
		'${datasource}' "every panel uses the datasource variable"
	like "$(jq '.schemaVersion' "$dash")" '^(3[6-9]|4[0-9])$' "pgcdc.json: schemaVersion 36 or later"
	is "$(jq '[.panels[] | .gridPos | select(.x + .w > 24)] | length' "$dash")" 0 "every panel fits the 24-column grid"
	is "$(jq '[.panels[].id] | (length == (unique | length))' "$dash")" true "panel ids are unique"
	jq -r '.. | objects | select(has("expr")) | .expr' "$dash" >"$T/exprs"
	like "$(grep -c . "$T/exprs")" '^[1-9]' "pgcdc.json has queries"
	if command -v promtool >/dev/null; then
		# each query, with Grafana's variables filled in, as a recording rule
		{
			printf 'groups:\n  - name: dashboard\n    rules:\n'
			sed 's/\$__rate_interval/1m/g; s/\$__range/1h/g; s/\$slot/.*/g; s/\$__interval/1m/g' "$T/exprs" |
				awk '{ gsub(/\x27/, "\x27\x27"); printf "      - record: dashboard:expr_%d\n        expr: \x27%s\x27\n", NR, $0 }'
		} >"$T/dashboard.rules.yml"
		out=$(timeout -k 5 60 promtool check rules "$T/dashboard.rules.yml" 2>&1)
		rc=$?
		is "$rc" 0 "every query in pgcdc.json parses as PromQL"
		[ "$rc" = 0 ] || printf '%s\n' "$out" | head -20 | sed 's/^/#   /'
	else
		pass "pgcdc.json queries parse # SKIP promtool not found"
	fi
elif command -v python3 >/dev/null; then
	timeout -k 5 30 python3 -m json.tool "$dash" >/dev/null 2>&1
	is "$?" 0 "pgcdc.json is JSON"
	pass "pgcdc.json variables and queries # SKIP jq not found"
else
	pass "pgcdc.json # SKIP neither jq nor python3 found"
fi

# --- names ---------------------------------------------------------------

# every metric name in the examples is a documented one
for f in prometheus/alerts.yml prometheus/alerts_test.yml grafana/pgcdc.json ../README.md pgcdc.env.example README.md; do
	[ -e "$EX/$f" ] || { fail "$f exists"; continue; }
	unknown=""
	for m in $(grep -oE 'pgcdc_[a-z_]+' "$EX/$f" | sed -E 's/_(bucket|sum|count)$//' | sort -u); do
		printf '%s\n' $METRICS | grep -qx -- "$m" || unknown="$unknown $m"
	done
	is "$unknown" "" "$f names only documented metrics"
done
used=$(cat "$EX/prometheus/alerts.yml" "$EX/grafana/pgcdc.json" | grep -oE 'pgcdc_[a-z_]+' | sed -E 's/_(bucket|sum|count)$//' | sort -u)
unused=""
for m in $METRICS; do
	printf '%s\n' "$used" | grep -qx -- "$m" || unused="$unused $m"
done
is "$unused" "" "every documented metric is on the dashboard or in an alert"

# every msg="..." quoted in the examples is logged by a program: the sources
# with adjacent string literals joined (a message may be split over lines)
src=$(cat "$TOP"/pg-capture/*.c "$TOP"/cdc-filter/*.c "$TOP"/cdc-publish/*.c "$TOP"/lib/*.c |
	tr '\n\t' '  ' | sed 's/"[[:space:]]*"//g')
for f in prometheus/alerts.yml grafana/pgcdc.json ../README.md; do
	[ -e "$EX/$f" ] || continue
	while IFS= read -r msg; do
		case $msg in "{{"*) continue ;; esac
		if printf '%s' "$src" | grep -qF -- "\"$msg\""; then
			pass "$f: msg=\"$msg\" is logged"
		else
			fail "$f: msg=\"$msg\" is logged" "no such message in pg-capture/, cdc-filter/, cdc-publish/ or lib/"
		fi
	done < <(grep -oE 'msg=\\?"[^"\\]+' "$EX/$f" | sed -E 's/^msg=\\?"//' | sort -u)
done
# the exit statuses README's troubleshooting names are lib/exitcode.h's
codes=" $(grep -oE '= [0-9]+' "$TOP/lib/exitcode.h" | grep -oE '[0-9]+' | tr '\n' ' ')"
bad=""
for c in $(sed -n '/^### Troubleshooting/,/^## /p' "$TOP/README.md" | grep -oE 'status [0-9]+' | grep -oE '[0-9]+' | sort -un); do
	case $codes in *" $c "*) ;; *) bad="$bad $c" ;; esac
done
is "$bad" "" "README's troubleshooting names only exit statuses that exist"
done_testing
