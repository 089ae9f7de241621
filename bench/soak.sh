#!/usr/bin/env bash
# Soak: the shipped pipeline (pg-capture | cdc-filter | cdc-publish,
# restarted whenever it exits) for an hour at 1 000 commits/s with a fault
# every 60-120 s, through tests/chaos/chaos.sh. Prints the commits/s
# reached, the events delivered, duplicates and lost, the faults and the
# recovery after them by kind, and each stage's RSS and open fds at the
# start, at the end and at most; writes that to DIR/summary.txt. Exits 1
# when check.py found a violation or a stage's RSS or fds grew, 2 when the
# run could not be set up. See bench/README.md.
#
#   bench/soak.sh                             an hour, HTTP sink, about 75 minutes in all
#   bench/soak.sh --seconds 240 --gap 30-60   a quick check, about 6 minutes
#
# Options: --seconds N (default 3600), --rate N (commits/s, default 1000),
# --sink http|rabbitmq (http), --plugin pgoutput|wal2json (pgoutput),
# --seed S, --gap LO-HI (seconds between faults, default 60-120), --faults
# K1,K2,... (only these kinds, as chaos.sh names them; default all), --out
# DIR (the run's files, default bench/out/soak-DATE-TIME).
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(dirname "$HERE")
SECS=3600 RATE=1000 SINK=http PLUGIN=pgoutput SEED=$((RANDOM * 32768 + RANDOM)) GAP=60-120 FAULTS= OUT=
usage() {
	echo "usage: bench/soak.sh [--seconds N] [--rate N] [--sink http|rabbitmq] [--plugin pgoutput|wal2json] [--seed S] [--gap LO-HI] [--faults K,...] [--out DIR]" >&2
	exit 2
}
while [ $# -gt 0 ]; do
	[ $# -ge 2 ] || usage
	case $1 in
	--seconds) SECS=$2 ;;
	--rate) RATE=$2 ;;
	--sink) SINK=$2 ;;
	--plugin) PLUGIN=$2 ;;
	--seed) SEED=$2 ;;
	--gap) GAP=$2 ;;
	--faults) FAULTS=$2 ;;
	--out) OUT=$2 ;;
	*) usage ;;
	esac
	shift 2
done
die() { echo "soak.sh: $*" >&2; exit 2; }
case $SECS$RATE$SEED in '' | *[!0-9]*) die "--seconds, --rate and --seed must be whole numbers" ;; esac
[[ $GAP =~ ^[0-9]+(\.[0-9]+)?-[0-9]+(\.[0-9]+)?$ ]] || die "--gap must be LO-HI seconds"
case $SINK in http | rabbitmq) ;; *) die "unknown sink $SINK" ;; esac
case $PLUGIN in pgoutput | wal2json) ;; *) die "unknown plugin $PLUGIN" ;; esac
OUT=${OUT:-$HERE/out/soak-$(date +%Y%m%d-%H%M%S)}
[ -e "$OUT" ] && die "$OUT exists"
mkdir -p "$OUT" || exit 2
[ -x /usr/bin/python3 ] && export PATH="/usr/bin:$PATH"
# check.py holds a small tuple per change and per delivery: about 2 kB per
# commit of this load (480 MB after 250 000 commits here)
need=$((RATE * SECS * 2 / 1024))
avail=$(awk '$1 == "MemAvailable:" { print int($2 / 1024) }' /proc/meminfo)
[ "$need" -lt "${avail:-0}" ] ||
	echo "soak.sh: warning: check.py will need about $need MB at the end, $avail MB are available now" >&2

echo "soak: $SECS s at $RATE commits/s, $PLUGIN to $SINK, a fault (${FAULTS:-any kind}) every $GAP s, seed $SEED, files in $OUT" >&2
# --one-trip: each transaction in one round trip, so that the load's own
# client keeps up (bench/README.md). chaos.sh bounds each of its programs
# and takes SECS and a few minutes; its progress (stderr) goes to the
# terminal and to chaos.err
bound=$((2 * SECS + 1800))
timeout -k 60 "$bound" bash "$TOP/tests/chaos/chaos.sh" --seconds "$SECS" --seed "$SEED" \
	--plugin "$PLUGIN" --sink "$SINK" --commit-rate "$RATE" --one-trip --gap "$GAP" ${FAULTS:+--faults "$FAULTS"} --keep "$OUT" \
	2>&1 >"$OUT/chaos.out" | timeout -k 5 $((bound + 120)) tee "$OUT/chaos.err" >&2
rc=${PIPESTATUS[0]}
fails=()
case $rc in
0) ;;
1) fails+=("check.py found violations, see $OUT/chaos.out") ;;
*) echo "soak.sh: chaos.sh ended with status $rc" >&2; exit 2 ;;
esac

# row NAME: the number after NAME in check.py's table
row() { awk -v n="$1" 'index($0, n) == 1 { v = $NF } END { print v + 0 }' "$OUT/chaos.out"; }
{
	echo "soak: $(cat "$OUT/run.txt")"
	# the load's transactions (load.json): those that committed, the
	# rolled-back ones on top; of the committed, those that wrote (the
	# server's own commits, test_decoding) and those that changed items
	# (the ledger, whose changes the sink receives)
	timeout -k 5 600 python3 - "$OUT" "$RATE" <<-'EOF'
	import json, os, sys
	d, asked = sys.argv[1], float(sys.argv[2])
	load = json.load(open(os.path.join(d, "load.json")))
	secs = load["seconds"]
	committed = sum(load.get(k, 0) for k in ("single", "multi", "savepoint"))
	wal = sum(1 for _ in open(os.path.join(d, "commits.tsv")))
	txs = set()
	with open(os.path.join(d, "ledger.csv")) as f:
	    for line in f:
	        txs.add(line.split(",", 2)[1])
	print("%-40s %10.0f" % ("commits/s asked", asked))
	print("%-40s %10.1f   (%d in %.0f s)" % ("commits/s achieved (load)", committed / secs, committed, secs))
	print("%-40s %10.1f   (%d)" % ("  writing WAL (the server's commits)", wal / secs, wal))
	print("%-40s %10.1f   (%d)" % ("  changing items (ledger)", len(txs) / secs, len(txs)))
	print("%-40s %10.1f   (%d)" % ("rolled back/s on top (load)", load.get("rollback", 0) / secs, load.get("rollback", 0)))
	if committed / secs < 0.98 * asked:
	    print("BELOW THE ASKED RATE: %.1f commits/s achieved of %.0f asked" % (committed / secs, asked))
	EOF
	# how the pipeline kept up: the end of chaos.sh's progress lines
	grep -E '^chaos: .* (caught up|not caught up|nothing written after)' "$OUT/chaos.err" | cut -d' ' -f3-
	printf '%-40s %10d\n' "changes committed" "$(row 'changes committed')" \
		"events delivered" "$(row 'changes delivered')" "deliveries" "$(row deliveries)" \
		"duplicates" "$(row duplicates)" "lost" "$(row lost)" "pipeline restarts" "$(row 'pipeline restarts')"
	echo
	# the faults and recovery seconds by kind, as check.py printed them
	awk '/^fault / { on = 1 } on { print } on && /^all / { exit }' "$OUT/chaos.out"
	echo
	timeout -k 5 600 python3 "$TOP/tests/chaos/resources.py" report "$OUT"
	res=$?
	echo
	case $res in
	0) ;;
	3) fails+=("a stage's RSS or fds grew") ;;
	*) fails+=("no resource samples") ;;
	esac
	if [ ${#fails[@]} = 0 ]; then
		echo "verdict: PASS"
	else
		printf -v why '%s; ' "${fails[@]}"
		echo "verdict: FAIL (${why%; })"
	fi
} >"$OUT/summary.txt"
cat "$OUT/summary.txt"
[[ $(tail -1 "$OUT/summary.txt") == "verdict: PASS" ]]
