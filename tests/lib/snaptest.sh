# Helpers for the snapshot tests, sourced after testlib.sh and pgcluster.sh
# (CONN, T and HERE set by the test).
#
#   check LABEL TABLE FILES...     the table's final state is its read events plus its changes (snapcheck.py)
#   marker WORD / has_marker FILE WORD   a logical message to wait for at the end of a run
#   ack_pipeline SLOT TABLE CHUNK OUT ERR   pg-capture --snapshot-table | cdc-publish --dry-run,
#                                  acknowledging on $T/ack, in the background (PIPE: its pid)

check() {
	local label=$1 table=$2 want="missing 0 extra 0 differ 0 "
	shift 2
	local got
	got=$(timeout 120 python3 "$HERE/snapcheck.py" "$CONN" "$table" "$@" 2>&1)
	# rows without a key cannot be told apart: one changed meanwhile may come twice, none is missing
	[ "$table" = public.nk ] && got=$(echo "$got" | sed 's/^extra [0-9]*$/extra 0/') && label="$label, repeats allowed"
	if [ "$(echo "$got" | grep -E '^(missing|extra|differ) ' | tr '\n' ' ')" = "$want" ]; then
		pass "$label: $table's final state is its read events plus its changes ($(echo "$got" | grep -E '^(rows|reads) ' | tr '\n' ' '))"
	else
		fail "$label: $table's final state is its read events plus its changes" "$(echo "$got" | tail -5 | tr '\n' ' ')"
	fi
}

marker() { sql "SELECT pg_logical_emit_message(true, 'test.end', '$1')" >/dev/null; }
has_marker() { grep -q "\"prefix\":\"test.end\",\"content\":\"$2\"" "$1"; }

ack_pipeline() {
	rm -f "$T/ack"
	mkfifo -m 600 "$T/ack"
	(timeout -k 5 120 "$PG_CAPTURE" -d "$CONN" -S "$1" --snapshot-table "$2" --snapshot-chunk "$3" \
		--ack-fifo "$T/ack" 2>"$5" | tee "$4" |
		timeout -k 5 120 "$TOP/cdc-publish/cdc-publish" --dry-run --ack-fifo "$T/ack" http://127.0.0.1:9/events \
		>/dev/null 2>"$T/pub.err") &
	PIPE=$!
}
