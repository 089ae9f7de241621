#!/usr/bin/env bash
# test: alone (it measures time or memory, or loads the machine)
# A short seeded chaos run per plugin (tests/chaos/chaos.sh: the shipped
# pipeline, restarted whenever it exits, under a write load with rollbacks
# and savepoints while stages are killed or stopped, PostgreSQL crashes and
# the HTTP sink goes down, answers 503, resets or hangs), checked against
# the ledger the database kept; then the checker is shown to fail on a
# copy of the sink's log with one event dropped, one id reused, one
# rolled-back value added, two changes of one key swapped.
set -u
source "$(dirname "$0")/../lib/testlib.sh"
T=$(mktemp -d /tmp/pgcdc-test.XXXXXX)
trap 'rm -rf "$T"' EXIT
CHAOS=$TOP/tests/chaos
[ -x /usr/bin/python3 ] && export PATH="/usr/bin:$PATH"

# count NAME FILE: the number after NAME in check.py's table
count() { awk -v n="$1" 'index($0, n) == 1 { v = $NF } END { print v }' "$2"; }

# run NAME SEED PLUGIN FAULTS
run() {
	local name=$1 seed=$2 plugin=$3 faults=$4
	timeout -k 10 150 bash "$CHAOS/chaos.sh" --seconds 28 --seed "$seed" --plugin "$plugin" \
		--faults "$faults" --gap 1-2 --keep "$T/$name" >"$T/$name.out" 2>"$T/$name.err"
	local rc=$?
	sed 's/^/# /' "$T/$name.out"
	is "$rc" 0 "$name: chaos.sh exits 0 (check.py found no violation)"
	is "$(count verdict: "$T/$name.out")" PASS "$name: verdict PASS"
	is "$(count lost "$T/$name.out")" 0 "$name: lost 0"
	is "$(count 'changes delivered' "$T/$name.out")" "$(count 'changes committed' "$T/$name.out")" \
		"$name: every committed change delivered"
	is "$(wc -l <"$T/$name/ledger.csv")" "$(count 'changes committed' "$T/$name.out")" "$name: the table counts the whole ledger"
	local v total=0
	for v in $(awk '/^violations: / { print $NF }' "$T/$name.out"); do total=$((total + v)); done
	is "$(grep -c '^violations: ' "$T/$name.out") $total" "15 0" "$name: 15 checks, no violation"
	like "$(cat "$T/$name/load.json")" '"rollback": [1-9].*"savepoint": [1-9]' "$name: the load rolled back transactions and savepoints"
	# a fault starts while the 28 s last; none takes over 9 s, gaps 2 s at most: three fit
	like "$(wc -l <"$T/$name/faults.tsv")" '^([3-9]|1[0-9])$' "$name: at least three faults struck"
	like "$(count 'slot samples' "$T/$name.out")" '^[0-9]{2,}$' "$name: the slot was sampled throughout"
	[ "$rc" = 0 ] || sed 's/^/#   /' "$T/$name.err" | tail -20
}

run pgoutput 20261202 pgoutput kill_group,pg_crash,sink_503,stop_publish,kill_filter
run wal2json 4242 wal2json stop_capture,kill_capture,sink_down,sink_hang,kill_publish,sink_reset

# the checker fails when the sink's log is spoiled: exactly the violation made
# spoil MODE REGEX: REGEX matches the table's non-zero violation lines
spoil() {
	local mode=$1 want=$2
	if ! python3 "$CHAOS/mutate.py" "$T/pgoutput" "$T/m-$mode" "$mode" >"$T/m-$mode.what" 2>&1; then
		fail "spoiled log ($mode)" "$(cat "$T/m-$mode.what")"
		return
	fi
	python3 "$CHAOS/check.py" "$T/m-$mode" >"$T/m-$mode.out" 2>&1
	is "$?" 1 "$mode: check.py fails ($(cat "$T/m-$mode.what"))"
	like "$(awk '/^violations: / && $NF != 0 { sub(/^violations: /, ""); print }' "$T/m-$mode.out" | tr -s ' ' | tr '\n' '|')" \
		"$want" "$mode: exactly that violation"
}
if [ -d "$T/pgoutput" ]; then
	# a dropped change is lost, and the slot was confirmed past it
	spoil drop '^lost 1\|slot confirmed ahead of the sink [1-9][0-9]*\|$'
	spoil steal-id '^several changes under one id 1\|$'
	spoil rollback '^rolled-back change delivered 1\|$'
	spoil swap '^out of per-key commit order 1\|$'
	is "$(count lost "$T/m-drop.out")" 1 "drop: lost 1 in the table"
else
	fail "no kept run to spoil"
fi
done_testing
