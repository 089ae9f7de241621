#!/usr/bin/env bash
# pgcdc pipeline: pg-capture [| cdc-filter] | cdc-publish with the acknowledgement FIFO,
# for a supervisor (see supervisord.conf). Any stage ending ends the whole
# pipeline with a non-zero status, so the supervisor restarts all of it and
# it resumes from the slot: after the last commit the queue confirmed.
#
# Settings come from the environment (secrets through files, see below):
#   PGCDC_SLOT            replication slot (and publication) name    required
#   PGCDC_URL             where cdc-publish delivers                 required
#   PGCDC_DBNAME          libpq connection string (no password in it; use PGPASSFILE)
#   PGCDC_RUN_DIR         where the FIFOs live (default /run/pgcdc)
#   PGCDC_CAPTURE_ARGS    extra pg-capture options, e.g. "--create-slot --if-not-exists"
#   PGCDC_FILTER          a filter stage, e.g. "cdc-filter -t public.workitems" (optional)
#   PGCDC_PUBLISH_ARGS    extra cdc-publish options, e.g. "--target rabbitmq --routing-key q --basic-file /etc/pgcdc/rabbitmq"
set -u
set -f	# option values such as cdc-filter globs are split into words, never expanded
: "${PGCDC_SLOT:?set PGCDC_SLOT}" "${PGCDC_URL:?set PGCDC_URL}"
bin=${PGCDC_BIN:-$(dirname "$(readlink -f "$0")")/..}
PATH=$bin/pg-capture:$bin/cdc-publish:$bin/cdc-filter:$PATH
dir=${PGCDC_RUN_DIR:-/run/pgcdc}
mkdir -p -m 700 "$dir"
# FIFOs of this run only, named after this script's PID: stages of an
# earlier run still stopping (this script was killed alone) can neither
# read this run's data nor write acknowledgements into it. Those of runs
# whose script is gone are removed.
set +f
for f in "$dir/$PGCDC_SLOT".*.ack "$dir/$PGCDC_SLOT".*.data "$dir/$PGCDC_SLOT".*.kept; do
	pid=${f#"$dir/$PGCDC_SLOT".}
	pid=${pid%%.*}
	[ -p "$f" ] && [ -n "$pid" ] && [ -z "${pid//[0-9]/}" ] && ! kill -0 "$pid" 2>/dev/null && rm -f "$f"
done
set -f
ack=$dir/$PGCDC_SLOT.$$.ack
data=$dir/$PGCDC_SLOT.$$.data
kept=$dir/$PGCDC_SLOT.$$.kept
fifos=("$ack" "$data" ${PGCDC_FILTER:+"$kept"})
for f in "${fifos[@]}"; do rm -f "$f"; mkfifo -m 600 "$f"; done
trap 'rm -f "${fifos[@]}"' EXIT
# Each stage gets SIGTERM when this script dies, however it dies (kill -9
# included): no stage outlives it.
orphan=()
command -v setpriv >/dev/null && orphan=(setpriv --pdeathsig TERM)

pids=()
# SIGTERM to every stage, then at most 15 s for them to deliver what is in
# flight (cdc-publish --stop-timeout is 10 s by default) before SIGKILL
stop() {
	local i
	kill -TERM "${pids[@]}" 2>/dev/null
	for ((i = 0; i < 150; i++)); do
		kill -0 "${pids[@]}" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "${pids[@]}" 2>/dev/null
	wait
}
trap 'stop; exit 0' TERM INT

# Start order does not matter: each FIFO open waits for its other end.
# shellcheck disable=SC2086
"${orphan[@]}" pg-capture ${PGCDC_DBNAME:+-d "$PGCDC_DBNAME"} -S "$PGCDC_SLOT" --ack-fifo "$ack" \
	${PGCDC_CAPTURE_ARGS:-} >"$data" &
pids+=($!)
if [ -n "${PGCDC_FILTER:-}" ]; then
	# its own stage, so that its exit status is seen like the others'
	# shellcheck disable=SC2086
	"${orphan[@]}" $PGCDC_FILTER <"$data" >"$kept" &
	pids+=($!)
	data=$kept
fi
# shellcheck disable=SC2086
"${orphan[@]}" cdc-publish --ack-fifo "$ack" ${PGCDC_PUBLISH_ARGS:-} "$PGCDC_URL" <"$data" &
pids+=($!)

# A stage that fails ends the pipeline. A stage that ends well (--endpos
# reached, end of input) lets the others finish their work first.
wait -n -p ended "${pids[@]}"
status=$?
if [ "$status" = 0 ]; then
	for pid in "${pids[@]}"; do
		[ "$pid" = "$ended" ] && continue
		wait "$pid"
		rc=$?
		[ "$status" = 0 ] && status=$rc	# the first failure is the one to report
	done
	exit "$status"
fi
echo "pgcdc pipeline: a stage ended with status $status, stopping the others" >&2
stop
exit "$status"
