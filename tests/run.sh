#!/usr/bin/env bash
# Run every test: lib unit tests, decoder golden tests, then the
# integration tests against throwaway PostgreSQL clusters. Prints one
# "N passed, N failed" line at the end; exits non-zero on any failure.
set -u
cd "$(dirname "$0")/.."
export TESTS_OUT=${TESTS_OUT:-$PWD/tests/out}
# the system's python3 (make deps installs it, with psycopg2): a version
# manager's shim ahead of it in PATH costs a second per call
[ -x /usr/bin/python3 ] && export PATH="/usr/bin:$PATH"
rm -rf "$TESTS_OUT"
mkdir -p "$TESTS_OUT"
[ "$(id -u)" = 0 ] && chmod 755 "$TESTS_OUT"

passed=0 failed=0 failed_names=""
run() {
	local name=$1 log="$TESTS_OUT/$(basename "$1" .sh).log" start=$SECONDS
	shift
	timeout -k 10 "${TEST_TIMEOUT:-300}" "$@" >"$log" 2>&1
	local rc=$?
	local p f
	p=$(grep -c '^ok ' "$log")
	f=$(grep -c '^not ok ' "$log")
	if [ $rc -ne 0 ] && [ "$f" = 0 ]; then
		f=1
		echo "not ok - $name exited with status $rc" >>"$log"
	fi
	passed=$((passed + p))
	failed=$((failed + f))
	printf '%-40s %3d passed %3d failed %4ds\n' "$name" "$p" "$f" $((SECONDS - start))
	if [ "$f" != 0 ]; then
		failed_names="$failed_names $name"
		grep -A3 '^not ok' "$log" | head -40 | sed 's/^/    /'
	fi
}

only=${1:-}
units=()
for t in tests/unit/test_*; do
	case $t in *.c | *.o | *.d) ;; *) units+=("$t") ;; esac
done
for t in "${units[@]}" tests/golden/run.sh tests/golden/filter.sh tests/integration/*.sh tests/fuzz/run.sh; do
	[ -e "$t" ] || continue
	[ -n "$only" ] && [[ "$t" != *"$only"* ]] && continue
	case $t in
	*.sh) run "$t" bash "$t" ;;
	*) run "$t" "$t" ;;
	esac
done
echo
[ -n "$failed_names" ] && echo "failed:$failed_names"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
