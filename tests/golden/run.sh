#!/usr/bin/env bash
# Golden tests of the decoders on recorded protocol bytes, no server needed.
#
#   bash tests/golden/run.sh        (from anywhere; after make tests/unit/decode_replay)
#
# For every tests/golden/decode/CASE/PLUGIN.in this replays the recorded
# messages through tests/unit/decode_replay and compares its output with
# CASE/expected.PLUGIN. A CASE/skip.PLUGIN file (its first line a reason)
# holds a pair back: it is reported as skipped, not compared.
#
# Then corrupted input, which must fail cleanly (exit 1, an error logged,
# no crash): pgoutput messages cut at every length, an unknown message
# type, changes out of context, wal2json messages cut or broken.
#
# Re-record the cases with tests/golden/record.sh. DECODE_REPLAY=PATH uses
# another decode_replay (an ASan build, say).
set -u
cd "$(dirname "$0")/../.."
. tests/lib/testlib.sh

REPLAY=${DECODE_REPLAY:-tests/unit/decode_replay}
DECODE=tests/golden/decode
[ -x "$REPLAY" ] || { echo "not ok - $REPLAY not built (make tests/unit/decode_replay)"; exit 1; }

work=$(mktemp -d /tmp/pgcdc-golden-run.XXXXXX)
trap 'rm -rf "$work"' EXIT

# replay PLUGIN FILE [ENCODING]: run decode_replay; sets RC, output in $work/out and $work/err
replay() {
	"$REPLAY" "$@" >"$work/out" 2>"$work/err"
	RC=$?
}

indent() { sed 's/^/#     /'; }

# ---------------------------------------------------------------- golden cases

for dir in "$DECODE"/*/; do
	c=$(basename "$dir")
	for p in pgoutput wal2json; do
		in=$dir$p.in want=${dir}expected.$p
		[ -f "$in" ] || continue
		name="decode $c $p"
		if [ -f "${dir}skip.$p" ]; then
			pass "$name # SKIP $(head -1 "${dir}skip.$p")"
			continue
		fi
		if [ ! -f "$want" ]; then
			fail "$name" "no $want (record it with tests/golden/record.sh and review it)"
			continue
		fi
		replay "$p" "$in" "$(cat "${dir}encoding" 2>/dev/null || echo UTF8)"
		if [ $RC = 0 ] && cmp -s "$want" "$work/out"; then
			pass "$name"
		else
			fail "$name" "exit status $RC; diff expected got:"
			diff -u "$want" "$work/out" | sed -n '3,22p' | cut -c1-300 | indent
			head -5 "$work/err" | indent
		fi
	done
done

# ------------------------------------------------------------- corrupted input

# expect_error NAME PLUGIN FILE [STDERR-REGEX]: decode_replay must exit 1 with
# the decoders' error line on stderr, and no sanitizer report or signal.
expect_error() {
	local name=$1 plugin=$2 file=$3 re=${4:-could not decode the replication stream}
	replay "$plugin" "$file"
	if [ $RC = 1 ] && grep -Eq -- "level=error.*$re" "$work/err" &&
			! grep -Eq 'Sanitizer|runtime error' "$work/err"; then
		return 0
	fi
	fail "$name" "exit status $RC (want 1 and an error matching /$re/); input $(basename "$file"), stderr:"
	head -5 "$work/err" | cut -c1-300 | indent
	return 1
}

# Messages of a recorded .in: "<LSN> <hex>" lines only.
messages() { grep -v '^#' "$1" | grep -v '^k ' | grep -v '^$'; }
# cuts NAME PLUGIN FILE BYTES: FILE's last message (BYTES long) cut at each
# of its lengths after the lines before it, in one decode_replay process:
# every cut must end in exit 1 with the error logged, and nothing else
cuts() {
	local name=$1 n=$4
	"$REPLAY" --cuts "$2" "$3" >"$work/out" 2>"$work/err"
	RC=$?
	if [ $RC = 0 ] && [ "$(grep -c 'level=error.*could not decode the replication stream' "$work/err")" = "$n" ] &&
			! grep -Eq 'Sanitizer|runtime error' "$work/err"; then
		pass "$name cut at each of its $n lengths fails cleanly"
	else
		fail "$name cut at each of its $n lengths fails cleanly" "exit status $RC, $(grep -c level=error "$work/err") errors logged; stderr:"
		grep -v 'could not decode the replication stream' "$work/err" | head -5 | cut -c1-300 | indent
	fi
}

# The first recorded line of each message type seen in the pgoutput cases,
# with the lines before it (its context: relations described, transaction
# open). Cut at every length, each must fail cleanly.
declare -A seen
for in in "$DECODE"/*/pgoutput.in; do
	[ -f "$in" ] || continue
	messages "$in" >"$work/msgs"
	n=0
	while read -r lsn hex; do
		n=$((n + 1))
		type=${hex:0:2}
		[ -n "${seen[$type]:-}" ] && continue
		[ ${#hex} -gt 800 ] && continue	# long tuples: the short ones cover the same code
		seen[$type]=1
		{ head -n $((n - 1)) "$work/msgs"; echo "$lsn $hex"; } >"$work/cut.in"
		cuts "pgoutput: '$(printf "\\x$type")' message ($(basename "$(dirname "$in")"))" pgoutput "$work/cut.in" $((${#hex} / 2))
	done <"$work/msgs"
done
[ ${#seen[@]} -gt 0 ] || fail "pgoutput: no recorded messages to corrupt"

first_pg=$(ls "$DECODE"/*/pgoutput.in 2>/dev/null | head -1)
if [ -n "$first_pg" ]; then
	messages "$first_pg" >"$work/msgs"

	# half a recorded change, in its context: exit 1, the lines before it still written
	n=$(grep -n -m1 -E '^[^ ]+ 49' "$work/msgs" | cut -d: -f1)
	if [ -n "$n" ]; then
		head -n $((n - 1)) "$work/msgs" >"$work/cut.in"
		sed -n "${n}p" "$work/msgs" | { read -r lsn hex; h=$((${#hex} / 4 * 2)); echo "$lsn ${hex:0:h}"; } >>"$work/cut.in"
		sed -n "$((n + 1)),\$p" "$work/msgs" >>"$work/cut.in"
		head -n $((n - 1)) "$work/msgs" >"$work/ctx.in"
		"$REPLAY" pgoutput "$work/ctx.in" >"$work/ctx.out" 2>/dev/null
		if expect_error "pgoutput: insert cut in half" pgoutput "$work/cut.in"; then
			if cmp -s "$work/out" "$work/ctx.out"; then
				pass "pgoutput: insert cut in half: exit 1, events before it kept, nothing after"
			else
				fail "pgoutput: insert cut in half: output is not exactly that of the lines before it"
			fi
		fi
	fi

	# an unknown message type byte in place of a recorded one
	messages "$first_pg" | sed -n 1p | { read -r lsn hex; echo "$lsn 5a${hex:2}"; } >"$work/bad.in"
	expect_error "pgoutput: unknown message type 'Z'" pgoutput "$work/bad.in" "unknown pgoutput message type" &&
		pass "pgoutput: unknown message type 'Z' fails cleanly"

	# a change for a relation never described (the Relation message left out)
	grep -v -E '^[^ ]+ 52' "$work/msgs" >"$work/bad.in"
	expect_error "pgoutput: change without its relation" pgoutput "$work/bad.in" "never described" &&
		pass "pgoutput: change for a relation never described fails cleanly"

	# a commit without its begin
	grep -v -E '^[^ ]+ 42' "$work/msgs" >"$work/bad.in"
	expect_error "pgoutput: commit without begin" pgoutput "$work/bad.in" "does not match its begin" &&
		pass "pgoutput: commit without a begin fails cleanly"

	# keepalives between messages change nothing
	replay pgoutput "$first_pg"
	cp "$work/out" "$work/plain.out"
	messages "$first_pg" | while read -r lsn hex; do echo "k $lsn"; echo "$lsn $hex"; echo; echo "# comment"; done >"$work/k.in"
	replay pgoutput "$work/k.in"
	if [ $RC = 0 ] && cmp -s "$work/out" "$work/plain.out"; then
		pass "keepalive, comment and blank lines change nothing"
	else
		fail "keepalive, comment and blank lines change nothing" "exit status $RC"
	fi
fi

# not hex, odd length, no LSN: a malformed replay file (exit 2), not a decoder error
for bad in "0/10 4" "0/10 zz" "nolsn 42" "0/10"; do
	echo "$bad" >"$work/bad.in"
	replay pgoutput "$work/bad.in"
	if [ $RC = 2 ]; then pass "replay file line '$bad' rejected"; else fail "replay file line '$bad' rejected" "exit status $RC, want 2"; fi
done

# wal2json: every message type cut at every length, broken JSON, unknown action
declare -A wseen
for in in "$DECODE"/*/wal2json.in; do
	[ -f "$in" ] || continue
	messages "$in" >"$work/msgs"
	n=0
	while read -r lsn hex; do
		n=$((n + 1))
		# format version 2 begins {"action":"X"
		[ "${hex:0:22}" = 7b22616374696f6e223a22 ] || continue
		type=$(printf "\\x${hex:22:2}")
		[ -n "${wseen[$type]:-}" ] && continue
		[ ${#hex} -gt 1600 ] && continue
		wseen[$type]=1
		{ head -n $((n - 1)) "$work/msgs"; echo "$lsn $hex"; } >"$work/cut.in"
		cuts "wal2json: '$type' message ($(basename "$(dirname "$in")"))" wal2json "$work/cut.in" $((${#hex} / 2))
	done <"$work/msgs"
done
[ ${#wseen[@]} -gt 0 ] || fail "wal2json: no recorded messages to corrupt"

# hexline TEXT: a replay line at 0/10 carrying TEXT
hexline() { printf '0/10 %s\n' "$(printf '%s' "$1" | od -An -v -tx1 | tr -d ' \n')"; }

n=0
while IFS= read -r json; do
	n=$((n + 1))
	hexline "$json" >"$work/bad.in"
	expect_error "wal2json: broken JSON #$n" wal2json "$work/bad.in" &&
		pass "wal2json: broken JSON fails cleanly: $json"
done <<'EOF'
{"action":"B","xid":1,"lsn":"0/10","nextlsn":"0/20","timestamp":"2024-01-01 00:00:00+00"
{"action":"B","xid":1,"lsn":"0/10" "nextlsn":"0/20"}
{"action":"I","schema":"public","table":"t","columns":[{"name":"id","type":"integer","typeoid":23,"value":1}}
{"action":"I","schema":"public","table":"t","columns":[{"name":"id","type":"integer","typeoid":23,"value":1]}
{"action":"I","schema":"public","table":"t","columns":[{"name":"id","type":"integer","typeoid":23,"value":}]}
{"action":"M","transactional":false,"prefix":"p","content":"unterminated}
{"action":"M","transactional":false,"prefix":"p","content":"bad escape \q"}
{"action":"C",}
not json at all
{}
[]
EOF

hexline '{"action":"Z","xid":1}' >"$work/bad.in"
expect_error "wal2json: unknown action" wal2json "$work/bad.in" "unknown wal2json action" &&
	pass "wal2json: unknown action 'Z' fails cleanly"

done_testing
