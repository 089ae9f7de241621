#!/usr/bin/env bash
# A throwaway PostgreSQL and RabbitMQ, the work-item schema of the README,
# the pipeline pg-capture | cdc-filter | cdc-publish delivering the committed
# changes the app's listeners need to a queue, and a listener printing what arrives in the queue while a
# scripted "team" edits work items. Everything lives in temporary
# directories on 127.0.0.1 and is removed at the end.
set -eu
TOP=$(cd "$(dirname "$0")/.." && pwd)
source "$TOP/tests/lib/pgcluster.sh"
source "$TOP/tests/lib/rabbitmq.sh"
DIR=$(mktemp -d /tmp/pgcdc-demo.XXXXXX)
chmod 755 "$DIR"
cleanup() {
	set +e	# clean up everything, whatever fails on the way
	[ -n "${LISTEN_PID:-}" ] && kill "$LISTEN_PID" 2>/dev/null
	[ -n "${PIPE_PID:-}" ] && kill -TERM "$PIPE_PID" 2>/dev/null && wait "$PIPE_PID" 2>/dev/null
	rabbit_stop >/dev/null 2>&1
	pg_stop
	rm -rf "$DIR"
}
trap cleanup EXIT
say() { printf '\n\033[1;34m-- %s\033[0m\n' "$*" >&2; }
step() { say "$1"; sql "$2" >/dev/null; sleep "${DEMO_PAUSE:-1}"; }

say "starting a throwaway PostgreSQL 15 on 127.0.0.1"
pg_start "$DIR/pg" "$(free_port)" "timezone = 'UTC'"
psql -X -q -v ON_ERROR_STOP=1 -d "$(pg_conninfo)" -f "$TOP/tests/integration/workload.sql"

say "starting a throwaway RabbitMQ (management API) on 127.0.0.1, queue \"workitems\""
rabbit_start >/dev/null
rabbit_queue_create workitems >/dev/null

say "pipeline: pg-capture --create-slot | cdc-filter -T '*.audit_log' --mask item_watchers:user_name | cdc-publish --target rabbitmq (logs in $DIR/pipeline.log)"
export DEMO_RABBITMQ=guest:guest	# credentials come from the environment, never the command line
DEMO_MASK_KEY=$(head -c 24 /dev/urandom | base64)	# a fresh masking key per demo
export DEMO_MASK_KEY
PGCDC_SLOT=demo PGCDC_RUN_DIR="$DIR/run" PGCDC_DBNAME="$(pg_conninfo)" \
	PGCDC_FILTER="cdc-filter -T *.audit_log --mask item_watchers:user_name --mask-key-env DEMO_MASK_KEY" \
	PGCDC_CAPTURE_ARGS="--create-slot --status-interval 1" PGCDC_URL="$RABBIT_URL" \
	PGCDC_PUBLISH_ARGS="--target rabbitmq --routing-key workitems --basic-env DEMO_RABBITMQ" \
	bash "$TOP/examples/pipeline.sh" 2>"$DIR/pipeline.log" &
PIPE_PID=$!

# the listener: takes what the queue holds and prints one line per message
listen() {
	while :; do
		rabbit_queue_get workitems 2>/dev/null | python3 -c '
import json, sys
for m in json.load(sys.stdin) or []:
    e = json.loads(m["payload"])
    what = e.get("new") or e.get("old") or {k: e[k] for k in ("prefix", "content") if k in e}
    print("  queue <- %-8s %-22s id=%-16s %s" % (e["op"], (e.get("schema", "") + "." + e.get("table", "")).strip("."),
          m["properties"].get("message_id", ""), json.dumps(what, ensure_ascii=False)[:90]), flush=True)
'
		sleep 0.3
	done
}
listen &
LISTEN_PID=$!
wait_slot() { [ "$(sql "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'demo' AND active")" = 1 ]; }
for _ in $(seq 100); do wait_slot && break; sleep 0.1; done

step "ana creates a release with two tasks" \
	"INSERT INTO workitems (id, parent_id, title) VALUES (1, NULL, 'Release 2.0'), (2, 1, 'Backend'), (3, 1, 'Frontend')"
step "bo starts the backend task: a trigger derives the release's status" \
	"UPDATE workitems SET status = 'in_progress' WHERE id = 2"
step "ana comments on it" \
	"INSERT INTO comments (id, workitem_id, body) VALUES (1, 2, 'API draft is up: ' || repeat('details ', 600))"
step "bo fixes a typo elsewhere in the comment row: the large body is not resent" \
	"UPDATE comments SET edited = edited + 1 WHERE id = 1"
step "the app writes its audit log: cdc-filter keeps it out of the queue" \
	"INSERT INTO audit_log VALUES (extract(epoch FROM now())::bigint, 'bo started Backend')"
step "a rolled-back edit never shows up" \
	"BEGIN; UPDATE workitems SET title = 'oops' WHERE id = 3; ROLLBACK"
step "both tasks done: the trigger closes the release in the same transaction" \
	"UPDATE workitems SET status = 'done' WHERE id IN (2, 3)"
step "the app tells listeners to refresh a board" \
	"SELECT pg_logical_emit_message(true, 'board', 'refresh 1')"
step "cy deletes the frontend task's comments and watches the release (her name arrives masked)" \
	"BEGIN; DELETE FROM comments WHERE workitem_id = 3; INSERT INTO item_watchers VALUES (1, 'cy', 'all'); COMMIT"

sleep 1
say "every change is in the queue, acknowledged: the slot is at $(sql "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'demo'")"
say "done: stopping the pipeline (SIGTERM), RabbitMQ and the database"
