#!/usr/bin/env bash
# The command line: --help and the man page agree, usage errors are one
# line plus a pointer to --help, exit statuses are documented.
set -u
source "$(dirname "$0")/../lib/testlib.sh"

for prog in pg-capture cdc-filter cdc-publish; do
	bin=$TOP/$prog/$prog
	# each run bounded: a usage error that is not one would connect and stream
	help=$(timeout -k 5 10 "$bin" --help)
	is "$?" 0 "$prog --help exits 0"
	like "$help" "^$prog " "$prog --help goes to stdout"
	is "$(timeout -k 5 10 "$bin" --version)" "$prog (pgcdc) $(sed -n 's/^VERSION = //p' "$TOP/config.mk")" "$prog --version"
	manp=$(sed 's/\\-/-/g' "$TOP/man/$prog.1")
	missing=""
	for opt in $(printf '%s\n' "$help" | grep -oE -- '--[a-z][a-z-]+' | sort -u); do
		printf '%s' "$manp" | grep -q -- "$opt" || missing="$missing $opt"
	done
	is "$missing" "" "every option in $prog --help is in $prog(1)"
	missing=""
	for opt in $(printf '%s' "$manp" | grep -oE -- '^\.B[RI]? --[a-z][a-z-]+' | grep -oE -- '--[a-z-]+' | sort -u); do
		printf '%s' "$help" | grep -q -- "$opt" || missing="$missing $opt"
	done
	is "$missing" "" "every option in $prog(1) is in --help"
done
man=$(sed 's/\\-/-/g' "$TOP/man/pg-capture.1")
codes=$(printf '%s' "$man" | sed -n '/^\.SH EXIT STATUS/,/^\.SH SIGNALS/p' | grep -A1 '^\.TP' | grep -oE '^\.B [0-9]+' | cut -c4- | tr '\n' ' ')
is "$codes" "0 1 2 3 4 5 6 7 8 9 10 " "EXIT STATUS documents 0 to 10"
enum=$(grep -oE 'EXIT_[A-Z]+ = [0-9]+' "$TOP/lib/exitcode.h" | grep -oE '[0-9]+$' | tr '\n' ' ')
is "$enum" "0 1 2 3 4 5 6 7 8 9 10 " "and lib/exitcode.h has the same codes"

usage() {	# NAME WANT-REGEX ARGS...
	local name=$1 want=$2 out
	shift 2
	out=$(timeout -k 5 10 "$PG_CAPTURE" "$@" 2>&1 >/dev/null)
	local rc=$?
	is "$rc" 2 "$name: exit 2"
	like "$out" "$want" "$name: message"
	is "$(printf '%s\n' "$out" | tail -1)" "Try 'pg-capture --help' for more information." "$name: points to --help"
}
usage "unknown option" "unrecognized option '--nope'" --nope
usage "missing slot" "^pg-capture: no slot given" -d x
usage "bad slot name" 'invalid slot name "Bad-Name"' -S Bad-Name
usage "bad plugin" 'unknown plugin "test_decoding"' -S s --plugin test_decoding
usage "bad endpos" 'invalid LSN "1/2/3" for --endpos' -S s -E 1/2/3
usage "bad status interval" 'invalid --status-interval "0"' -S s --status-interval 0
usage "drop with streaming options" 'cannot be combined' -S s --drop-slot --ack-fifo x
usage "drop with --failover" 'cannot be combined' -S s --drop-slot --failover
usage "if-not-exists alone" '--if-not-exists needs --create-slot' -S s --if-not-exists
usage "publication with wal2json" 'applies to pgoutput only' -S s --plugin wal2json --publication p
usage "stray argument" 'unexpected argument "extra"' -S s extra

# a dead-letter file that is a pipe or a device cannot be fsynced: the
# record is written all the same and the program goes on (it stopped with
# status 1 and "Invalid argument" before)
in=$TOP/tests/golden/filter/dead_letter_objects/input
out=$(timeout -k 5 10 "$TOP/cdc-filter/cdc-filter" --dead-letter /dev/stderr <"$in" 2>&1 >/dev/null | cat
	echo "status ${PIPESTATUS[0]}")
is "$(printf '%s\n' "$out" | tail -1)" "status 0" "cdc-filter --dead-letter /dev/stderr into a pipe: exit 0"
is "$(printf '%s\n' "$out" | grep -c '"dead_letter":{"status":0')" 3 "and the three dead-letter records are on stderr"
done_testing
