# Assertions for the bash tests. Each test script prints TAP-like lines
# ("ok - name" / "not ok - name") and exits non-zero if any failed.

TESTS_FAILED=0
TESTS_PASSED=0
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PG_CAPTURE=${PG_CAPTURE:-$TOP/pg-capture/pg-capture}

pass() { TESTS_PASSED=$((TESTS_PASSED + 1)); echo "ok - $1"; }
fail() { TESTS_FAILED=$((TESTS_FAILED + 1)); echo "not ok - $1"; [ -n "${2:-}" ] && echo "#   $2"; return 0; }
# rss_below KB NAME RSS_KB: a peak RSS bound; not asked of sanitizer builds
# (make check-asan), whose shadow memory is several times the program's own
rss_below() {
	if [ -n "${PGCDC_ASAN:-}" ]; then pass "$2 # SKIP sanitizer build (${3:-?} kB)"
	elif [ "${3:-99999999}" -lt "$1" ] 2>/dev/null; then pass "$2: peak RSS $3 kB < $1 kB"
	else fail "$2: peak RSS under $1 kB" "${3:-?} kB"; fi
}

# is GOT WANT NAME
is() {
	if [ "$1" == "$2" ]; then pass "$3"; else fail "$3" "got '$1', want '$2'"; fi
}

# like TEXT REGEX NAME
like() {
	if printf '%s' "$1" | grep -Eq -- "$2"; then pass "$3"; else fail "$3" "'$(printf '%s' "$1" | head -c 400)' does not match /$2/"; fi
}

# wait_for SECONDS COMMAND...: poll every 0.1 s until COMMAND succeeds
# sanitizer builds (make check-asan) run slower: every wait may last twice as long
TIME_SCALE=1
[ -n "${PGCDC_ASAN:-}" ] && TIME_SCALE=2
wait_for() {
	local limit=$(($1 * TIME_SCALE)) i=0
	shift
	while ! "$@" >/dev/null 2>&1; do
		i=$((i + 1))
		[ $i -ge $((limit * 10)) ] && return 1
		sleep 0.1
	done
	return 0
}

# wait_exit PID SECONDS: wait for a background job of this shell and set RC
# to its exit status (124 when it had to be killed after SECONDS).
# Not in $(...): a subshell cannot wait for its parent's jobs.
wait_exit() {
	local pid=$1 limit=$(($2 * TIME_SCALE)) i=0
	RC=
	while kill -0 "$pid" 2>/dev/null; do
		i=$((i + 1))
		if [ $i -ge $((limit * 10)) ]; then
			kill -9 "$pid" 2>/dev/null
			wait "$pid" 2>/dev/null
			RC=124
			return
		fi
		sleep 0.1
	done
	wait "$pid"
	RC=$?
}

# to_fifo SECONDS FIFO LINE...: write the lines to FIFO; opening a FIFO
# waits for its reader, so give up (status 124) when none comes in SECONDS
to_fifo() {
	local limit=$1 fifo=$2
	shift 2
	timeout -k 2 "$limit" bash -c 'f=$1; shift; printf "%s\n" "$@" >"$f"' to_fifo "$fifo" "$@"
}

done_testing() {
	echo "# $TESTS_PASSED passed, $TESTS_FAILED failed"
	[ "$TESTS_FAILED" = 0 ]
}
