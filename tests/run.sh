#!/usr/bin/env bash
# Run every test: lib unit tests, decoder golden tests, then the
# integration tests against throwaway PostgreSQL clusters. Prints one
# "N passed, N failed" line at the end; exits non-zero on any failure.
#
#   bash tests/run.sh [NAME]     only the scripts whose path contains NAME
#
# Integration tests run TESTS_JOBS at a time (default 2): most of their time
# is spent waiting on servers, not computing. A script whose first lines
# say "# test: alone" (it measures time or memory, or loads the machine)
# runs by itself afterwards. TESTS_JOBS=1 runs everything one after another.
# Each script is bounded by TEST_TIMEOUT seconds (default 300), or by what
# its "# test: timeout N" line says.
#
# PGCDC_ASAN=1 (make check-asan, on programs built by make asan): every
# AddressSanitizer, LeakSanitizer or UBSan report of any program a test
# runs goes to $TESTS_OUT/sanitizer/ and fails the run, whatever the test
# made of the program's exit; the fuzz targets (sanitized already) are not
# run, time limits are doubled.
set -u
cd "$(dirname "$0")/.."
export TESTS_OUT=${TESTS_OUT:-$PWD/tests/out}
# the system's python3 (make deps installs it, with psycopg2): a version
# manager's shim ahead of it in PATH costs a second per call
[ -x /usr/bin/python3 ] && export PATH="/usr/bin:$PATH"
rm -rf "$TESTS_OUT"
mkdir -p "$TESTS_OUT"
[ "$(id -u)" = 0 ] && chmod 755 "$TESTS_OUT"
JOBS=${TESTS_JOBS:-2}
SCALE=1
if [ -n "${PGCDC_ASAN:-}" ]; then
	SCALE=2
	mkdir -p "$TESTS_OUT/sanitizer"
	chmod 1777 "$TESTS_OUT/sanitizer"
	export ASAN_OPTIONS="log_path=$TESTS_OUT/sanitizer/asan:detect_leaks=1:exitcode=86:${ASAN_OPTIONS:-}"
	export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$TESTS_OUT/sanitizer/ubsan:${UBSAN_OPTIONS:-}"
fi

# run NAME CMD...: the test's output in $TESTS_OUT/NAME.log, its counts in
# NAME.result; one line (and its failures) on stdout, written at once
run() {
	local name=$1 base log start=$SECONDS rc p f out limit
	base=$(basename "$1" .sh)
	limit=$(head -20 "$1" | sed -n 's/^# test: timeout \([0-9]*\).*/\1/p')
	case $1 in tests/golden/* | tests/fuzz/*) base=$(basename "$(dirname "$1")")-$base ;; esac
	log=$TESTS_OUT/$base.log
	shift
	# -k: time for the script's own cleanup (stopping its servers) after the TERM
	timeout -k 60 $((${limit:-${TEST_TIMEOUT:-300}} * SCALE)) "$@" >"$log" 2>&1
	rc=$?
	p=$(grep -c '^ok ' "$log")
	f=$(grep -c '^not ok ' "$log")
	if [ $rc -ne 0 ] && [ "$f" = 0 ]; then
		f=1
		echo "not ok - $name exited with status $rc" >>"$log"
	fi
	echo "$p $f $name" >"$TESTS_OUT/$base.result"
	out=$(printf '%-40s %3d passed %3d failed %4ds' "$name" "$p" "$f" $((SECONDS - start)))
	[ "$f" != 0 ] && out="$out"$'\n'$(grep -A3 '^not ok' "$log" | head -40 | sed 's/^/    /')
	printf '%s\n' "$out"
}
script() {
	case $1 in
	*.sh) run "$1" bash "$1" ;;
	*) run "$1" "$1" ;;
	esac
}

only=${1:-}
chosen() { [ -e "$1" ] && { [ -z "$only" ] || [[ "$1" == *"$only"* ]]; }; }
alone() { head -20 "$1" | grep -q '^# test: alone'; }
units=()
for t in tests/unit/test_*; do
	case $t in *.c | *.o | *.d) ;; *) units+=("$t") ;; esac
done
serial=() pool=() last=()
for t in "${units[@]}"; do chosen "$t" && serial+=("$t"); done
for t in tests/golden/run.sh tests/golden/filter.sh tests/integration/*.sh; do
	chosen "$t" || continue
	if alone "$t"; then last+=("$t"); else pool+=("$t"); fi
done
chosen tests/fuzz/run.sh && [ -z "${PGCDC_ASAN:-}" ] && last+=(tests/fuzz/run.sh)

for t in "${serial[@]}"; do script "$t"; done
for t in "${pool[@]}"; do
	while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n; done
	script "$t" &
done
wait
for t in "${last[@]}"; do script "$t"; done

passed=0 failed=0 failed_names=""
for r in "$TESTS_OUT"/*.result; do
	[ -e "$r" ] || continue
	read -r p f name <"$r"
	passed=$((passed + p))
	failed=$((failed + f))
	[ "$f" != 0 ] && failed_names="$failed_names $name"
done
if [ -n "${PGCDC_ASAN:-}" ]; then
	for r in "$TESTS_OUT"/sanitizer/*; do
		[ -e "$r" ] || continue
		failed=$((failed + 1))
		failed_names="$failed_names $(basename "$r")"
		echo "not ok - sanitizer report $r"
		grep -m 1 -E 'ERROR|runtime error|SUMMARY' "$r" | sed 's/^/    /'
	done
fi
echo
[ -n "$failed_names" ] && echo "failed:$failed_names"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
