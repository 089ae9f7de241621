#!/usr/bin/env bash
# Golden tests of cdc-filter: one folder per case under tests/golden/filter/
# (see its README), then the cases too big to keep in files: 10 MB lines.
#
#   bash tests/golden/filter.sh        (from anywhere; after make)
#
# CDC_FILTER=PATH runs another build (an ASan one, say).
set -u
cd "$(dirname "$0")/../.."
. tests/lib/testlib.sh

FILTER=${CDC_FILTER:-$TOP/cdc-filter/cdc-filter}
CASES=tests/golden/filter
[ -x "$FILTER" ] || { echo "not ok - $FILTER not built (make)"; exit 1; }

work=$(mktemp -d /tmp/pgcdc-filter-golden.XXXXXX)
trap 'rm -rf "$work"' EXIT
indent() { sed 's/^/#     /'; }
# stderr without the timestamps, so it can be compared
untime() { sed -E 's/^ts=[^ ]+ //' "$1"; }

for dir in "$CASES"/*/; do
	c=$(basename "$dir")
	rm -rf "$work/case"
	mkdir "$work/case"
	cp -r "$dir". "$work/case/"
	args=()
	[ -s "$dir/args" ] && mapfile -t args <"$dir/args"
	envs=()
	[ -f "$dir/env" ] && mapfile -t envs <"$dir/env"
	(cd "$work/case" && exec env "${envs[@]}" timeout -k 5 20 "$FILTER" "${args[@]}" <input >out 2>err)
	rc=$?
	want_rc=$(cat "$dir/status" 2>/dev/null || echo 0)
	problems=""
	[ "$rc" = "$want_rc" ] || problems="exit status $rc, want $want_rc"
	cmp -s "$dir/expected" "$work/case/out" || problems="$problems${problems:+; }stdout differs"
	untime "$work/case/err" >"$work/case/err.untimed"
	cmp -s "$dir/expected.err" "$work/case/err.untimed" || problems="$problems${problems:+; }stderr differs"
	if [ -f "$dir/expected.dead" ] && ! cmp -s "$dir/expected.dead" "$work/case/dead.out"; then
		problems="$problems${problems:+; }dead-letter file differs"
	fi
	for kv in "${envs[@]}"; do	# secrets given in the environment show up nowhere
		v=${kv#*=}
		if grep -qF -- "$v" "$work/case/out" "$work/case/err"; then
			problems="$problems${problems:+; }the value of ${kv%%=*} appears in the output"
		fi
	done
	if [ -z "$problems" ]; then
		pass "filter $c"
	else
		fail "filter $c" "$problems"
		diff -u "$dir/expected" "$work/case/out" | sed -n '3,14p' | cut -c1-300 | indent
		diff -u "$dir/expected.err" "$work/case/err.untimed" | sed -n '3,10p' | cut -c1-300 | indent
	fi
done

# ------------------------------------------------------------ 10 MB lines

# a row with a 10 MB value between two small transactions
python3 - "$work/long.in" <<'EOF'
import sys
big = "x\u00e9\\\"" * (10 * 1024 * 1024 // 4)	# multibyte and escapes throughout
with open(sys.argv[1], "w") as f:
    f.write('{"op":"begin","xid":1,"lsn":"0/10","commit_lsn":"0/20","ts":"2026-11-24T14:31:06.000000Z"}\n')
    f.write('{"op":"insert","schema":"public","table":"docs","id":"0/20:0","lsn":"0/10","xid":1,"ts":"2026-11-24T14:31:06.000000Z","key":{"id":1},"new":{"id":1,"body":"%s","title":"big"}}\n' % big)
    f.write('{"op":"commit","xid":1,"lsn":"0/30","commit_lsn":"0/20","ts":"2026-11-24T14:31:06.000000Z"}\n')
EOF
size=$(sed -n 2p "$work/long.in" | wc -c)

timeout -k 5 60 "$FILTER" -t docs <"$work/long.in" >"$work/long.out" 2>"$work/long.err"
is "$?" 0 "10 MB line, table kept: exit 0"
if cmp -s "$work/long.in" "$work/long.out"; then pass "10 MB line ($size bytes), table kept: output identical to input"; else fail "10 MB line, table kept: output identical to input" "$(wc -c <"$work/long.out") bytes out"; fi

timeout -k 5 60 "$FILTER" -T docs <"$work/long.in" >"$work/long.out" 2>"$work/long.err"
is "$?/$(wc -l <"$work/long.out")" "0/2" "10 MB line, table dropped: exit 0, begin and commit pass"

timeout -k 5 60 "$FILTER" --drop-columns docs:body <"$work/long.in" >"$work/long.out" 2>"$work/long.err"
is "$?" 0 "10 MB line, its big column dropped: exit 0"
is "$(sed -n 2p "$work/long.out")" '{"op":"insert","schema":"public","table":"docs","id":"0/20:0","lsn":"0/10","xid":1,"ts":"2026-11-24T14:31:06.000000Z","key":{"id":1},"new":{"id":1,"title":"big"}}' \
	"10 MB line, its big column dropped: the rest of the line exactly"

timeout -k 5 60 "$FILTER" --drop-columns docs:title <"$work/long.in" >"$work/long.out" 2>"$work/long.err"
sed -n 2p "$work/long.in" | sed 's/,"title":"big"//' >"$work/long.want"
if [ "$(sed -n 2p "$work/long.out" | cmp - "$work/long.want" 2>&1)" = "" ]; then pass "10 MB line, a small column dropped: the 10 MB value copied byte for byte"; else fail "10 MB line, a small column dropped: the 10 MB value copied byte for byte"; fi

# over --max-line: what came before passes, the line is named, nothing after it
timeout -k 5 60 "$FILTER" --max-line 1048576 <"$work/long.in" >"$work/long.out" 2>"$work/long.err"
is "$?" 3 "10 MB line over --max-line 1048576: exit 3"
is "$(cat "$work/long.out")" "$(sed -n 1p "$work/long.in")" "10 MB line over --max-line: the line before it passed, nothing after"
like "$(untime "$work/long.err" | head -1)" '^level=error prog=cdc-filter msg="bad input line, stopping before it" line=2 error="line longer than --max-line"' \
	"10 MB line over --max-line: one error line naming line 2"
timeout -k 5 60 "$FILTER" --max-line 1048576 --on-error skip <"$work/long.in" >"$work/long.out" 2>"$work/long.err"
is "$?/$(wc -l <"$work/long.out")" "0/2" "10 MB line over --max-line, --on-error skip: exit 0, begin and commit pass"

# memory stays near the longest line, not the input size
/usr/bin/time -f %M -o "$work/rss" timeout -k 5 60 "$FILTER" --drop-columns docs:title <"$work/long.in" >/dev/null 2>&1
rss=$(tail -1 "$work/rss")
rss_below 80000 "10 MB line rewritten" "$rss"

done_testing
