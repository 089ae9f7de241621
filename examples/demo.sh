#!/usr/bin/env bash
# A throwaway PostgreSQL, the work-item schema of the README, pg-capture
# streaming its slot to this terminal while a scripted "team" edits work
# items. Everything lives in a temporary directory and is removed at the end.
set -eu
TOP=$(cd "$(dirname "$0")/.." && pwd)
source "$TOP/tests/lib/pgcluster.sh"
DIR=$(mktemp -d /tmp/pgcdc-demo.XXXXXX)
chmod 755 "$DIR"
cleanup() {
	[ -n "${CAPTURE_PID:-}" ] && kill -TERM "$CAPTURE_PID" 2>/dev/null && wait "$CAPTURE_PID" 2>/dev/null
	pg_stop
	rm -rf "$DIR"
}
trap cleanup EXIT
say() { printf '\n\033[1;34m-- %s\033[0m\n' "$*" >&2; }
step() { say "$1"; sql "$2" >/dev/null; sleep "${DEMO_PAUSE:-1}"; }

say "starting a throwaway PostgreSQL 15 on 127.0.0.1"
pg_start "$DIR/pg" "$(free_port)" "timezone = 'UTC'"
psql -X -q -v ON_ERROR_STOP=1 -d "$(pg_conninfo)" -f "$TOP/tests/integration/workload.sql"

say "pg-capture --create-slot: every committed change from here on, one JSON line each"
"$TOP/pg-capture/pg-capture" -d "$(pg_conninfo)" -S demo --create-slot --status-interval 1 &
CAPTURE_PID=$!
sleep 1

step "ana creates a release with two tasks" \
	"INSERT INTO workitems (id, parent_id, title) VALUES (1, NULL, 'Release 2.0'), (2, 1, 'Backend'), (3, 1, 'Frontend')"
step "bo starts the backend task: a trigger derives the release's status" \
	"UPDATE workitems SET status = 'in_progress' WHERE id = 2"
step "ana comments on it" \
	"INSERT INTO comments (id, workitem_id, body) VALUES (1, 2, 'API draft is up: ' || repeat('details ', 600))"
step "bo fixes a typo elsewhere in the comment row: the large body is not resent" \
	"UPDATE comments SET edited = edited + 1 WHERE id = 1"
step "a rolled-back edit never shows up" \
	"BEGIN; UPDATE workitems SET title = 'oops' WHERE id = 3; ROLLBACK"
step "both tasks done: the trigger closes the release in the same transaction" \
	"UPDATE workitems SET status = 'done' WHERE id IN (2, 3)"
step "the app tells listeners to refresh a board" \
	"SELECT pg_logical_emit_message(true, 'board', 'refresh 1')"
step "cy deletes the frontend task's comments and watches the release" \
	"BEGIN; DELETE FROM comments WHERE workitem_id = 3; INSERT INTO item_watchers VALUES (1, 'cy', 'all'); COMMIT"

say "done: stopping pg-capture (SIGTERM) and removing the database"
