#!/usr/bin/env bash
# cdc-filter against jq and grep -F on one file of realistic event lines:
# a table+operation selection and a column drop, lines/s, MB/s, CPU and
# peak memory, side by side. Prints the table and writes it to
# bench/out/filter-DATE-TIME.txt. See bench/README.md.
#
#   bench/filter.sh                    1,000,000 row events (~410 MB), ~2 minutes
#   BENCH_EVENTS=100000 bench/filter.sh  a quick check
#
# Environment: BENCH_EVENTS (row events, default 1000000), BENCH_REPEAT
# (runs per contender, default 3; the table shows medians), CDC_FILTER.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(dirname "$HERE")
CDC_FILTER=${CDC_FILTER:-$TOP/cdc-filter/cdc-filter}
EVENTS=${BENCH_EVENTS:-1000000}
REPEAT=${BENCH_REPEAT:-3}

die() { echo "filter.sh: $*" >&2; exit 1; }
[ -x "$CDC_FILTER" ] || die "$CDC_FILTER not built (run make)"
[ -x /usr/bin/time ] || die "/usr/bin/time missing (apt-get install time)"
command -v jq >/dev/null || die "jq missing (apt-get install jq)"
case $EVENTS$REPEAT in *[!0-9]*) die "BENCH_EVENTS and BENCH_REPEAT must be numbers" ;; esac

W=$(mktemp -d /tmp/pgcdc-bench-filter.XXXXXX)
trap 'rm -rf "$W"' EXIT
mkdir -p "$HERE/out"
REPORT=$HERE/out/filter-$(date +%Y%m%d-%H%M%S).txt
IN=$W/events.jsonl

python3 "$HERE/gen_events.py" "$EVENTS" >"$IN" || die "could not generate the events"
BYTES=$(stat -c %s "$IN")
LINES=$(wc -l <"$IN")
cat "$IN" >/dev/null	# into the page cache

# The two jobs, each in three forms. grep -F gives the same lines as the
# selection because the format puts op, schema and table first; it cannot
# drop columns. jq's output is the same events, not the same bytes (it
# reformats numbers such as 1181.70).
SEL_FILTER=("$CDC_FILTER" -t public.workitems --op update)
SEL_JQ=(jq -c 'select(.op == "begin" or .op == "commit" or (.op == "update" and .schema == "public" and .table == "workitems"))')
SEL_GREP=(grep -F -e '{"op":"begin",' -e '{"op":"commit",' -e '{"op":"update","schema":"public","table":"workitems",')
GREP1=(grep -F '"table":"workitems"')	# one pattern: grep's best case, not the same lines
DROP_FILTER=("$CDC_FILTER" --drop-columns assignee,updated_at)
DROP_JQ=(jq -c 'if .new then .new |= del(.assignee, .updated_at) else . end | if .old then .old |= del(.assignee, .updated_at) else . end')

# run NAME CMD...: time one run of CMD <IN >OUT; appends "wall cpu rss_kb" to $W/NAME.runs
run() {
	local name=$1
	shift
	/usr/bin/time -f '%e %U %S %M' -o "$W/time" "$@" <"$IN" >"$W/$name.out" 2>"$W/$name.err" ||
		die "$name failed: $(tail -2 "$W/$name.err")"
	awk '{printf "%s %.2f %s\n", $1, $2 + $3, $4}' "$W/time" >>"$W/$name.runs"
}

for i in $(seq 1 "$REPEAT"); do
	run sel_filter "${SEL_FILTER[@]}"
	run sel_jq "${SEL_JQ[@]}"
	run sel_grep "${SEL_GREP[@]}"
	run grep1 "${GREP1[@]}"
	run drop_filter "${DROP_FILTER[@]}"
	run drop_jq "${DROP_JQ[@]}"
done

# the contenders must agree before their speed means anything
check() { if [ "$2" = "$3" ]; then echo "  ok: $1"; else echo "  MISMATCH: $1 ($2 against $3)"; BAD=1; fi; }
BAD=0
{
	echo "agreement:"
	check "selection: cdc-filter and grep -F give the same bytes" "$(md5sum <"$W/sel_filter.out")" "$(md5sum <"$W/sel_grep.out")"
	check "selection: cdc-filter and jq give the same events" "$(wc -l <"$W/sel_filter.out")" "$(wc -l <"$W/sel_jq.out")"
	check "column drop: cdc-filter and jq give the same events (jq -S on both)" \
		"$(jq -c -S . "$W/drop_filter.out" | md5sum)" "$(jq -c -S . "$W/drop_jq.out" | md5sum)"
	check "column drop: no assignee or updated_at left" "$(grep -c -e '"assignee"' -e '"updated_at"' "$W/drop_filter.out")" 0
} >"$W/agree"

median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
row() {	# LABEL NAME
	local wall cpu rss
	wall=$(awk '{print $1}' "$W/$2.runs" | median)
	cpu=$(awk '{print $2}' "$W/$2.runs" | median)
	rss=$(awk '{print $3}' "$W/$2.runs" | sort -n | tail -1)
	awk -v l="$1" -v w="$wall" -v c="$cpu" -v r="$rss" -v b="$BYTES" -v n="$LINES" -v o="$(wc -l <"$W/$2.out")" 'BEGIN {
		if (w < 0.01) w = 0.01
		printf "%-52s | %7.2f | %10.0f | %7.0f | %8.2f | %7.1f | %9d\n", l, w, n / w, b / w / 1e6, c, r / 1024, o }'
}
{
	echo "cdc-filter, jq $(jq --version | sed 's/^jq-//') and grep -F ($(grep --version | head -1 | awk '{print $NF}')) on $EVENTS row events:"
	echo "$LINES lines, $((BYTES / 1000000)) MB, begin/commit included (bench/gen_events.py); medians of $REPEAT runs, input in the page cache, output to a file"
	echo
	printf '%-52s | %7s | %10s | %7s | %8s | %7s | %9s\n' "job" "wall s" "lines/s" "MB/s" "CPU s" "RSS MB" "lines out"
	printf '%.0s-' $(seq 1 118)
	echo
	row "select: cdc-filter -t public.workitems --op update" sel_filter
	row "select: jq -c 'select(...)'" sel_jq
	row "select: grep -F, 3 patterns (the same lines)" sel_grep
	row "grep -F, 1 pattern (a reference, not the same)" grep1
	row "drop: cdc-filter --drop-columns assignee,updated_at" drop_filter
	row "drop: jq -c '.new |= del(...) | .old |= ...'" drop_jq
	echo
	cat "$W/agree"
	echo
	sel=$(awk '{print $1}' "$W/sel_filter.runs" | median)
	drop=$(awk '{print $1}' "$W/drop_filter.runs" | median)
	jqs=$(awk '{print $1}' "$W/sel_jq.runs" | median)
	gr=$(awk '{print $1}' "$W/sel_grep.runs" | median)
	awk -v b="$BYTES" -v s="$sel" -v d="$drop" -v j="$jqs" -v g="$gr" 'BEGIN {
		if (g < 0.01) g = 0.01
		printf "goals (from the issue):\n"
		printf "  selection %.0f MB/s (goal >= 600): %s; %.1fx jq, %.2fx grep -F\n", b / s / 1e6, (b / s / 1e6 >= 600 ? "met" : "NOT met"), j / s, g / s
		printf "  column drop %.0f MB/s (goal >= 150): %s\n", b / d / 1e6, (b / d / 1e6 >= 150 ? "met" : "NOT met") }'
	echo "  memory: peak RSS of cdc-filter $(cat "$W"/sel_filter.runs "$W"/drop_filter.runs | awk '{print $3}' | sort -n | tail -1) kB over every run (constant: it does not grow with the input)"
} | tee "$REPORT"
echo "(written to ${REPORT#"$TOP"/})"
exit $BAD
