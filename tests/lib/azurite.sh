# Throwaway Azurite queue service for the tests; sourced by bash scripts.
#
#   azurite_find              sets AZURITE_BIN, or returns 1 with the reason in AZURITE_WHY
#   azurite_start DIR [PORT]  start it on a free port of 127.0.0.1 (or on PORT, and no other),
#                             in memory, no telemetry, and wait until it answers; started again
#                             on another port when one was taken before it could bind it. With
#                             AZURITE_DISK=1 its data is kept in DIR instead: stopped and started
#                             again on the same DIR, it still has its queues and their messages
#   azurite_stop              stop it (SIGTERM, then SIGKILL after 10 s) and wait for it
#   azq COMMAND ARG...        tests/lib/azq.py against it (create, drain, peek, sas...)
#
# After azurite_start: AZURITE_PORT, AZURITE_PID, AZURITE_EP (the account's
# path-style queue endpoint), AZURITE_CONN (a connection string with the
# public development account key, for --credentials-env).

AZURITE_ACCOUNT=devstoreaccount1
AZURITE_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
AZURITE_PID=

azurite_find() {
	local npmbin
	AZURITE_BIN=$(command -v azurite-queue 2>/dev/null)
	if [ -z "$AZURITE_BIN" ] && command -v npm >/dev/null; then
		npmbin=$(npm prefix -g 2>/dev/null)
		[ -n "$npmbin" ] && [ -x "$npmbin/bin/azurite-queue" ] && AZURITE_BIN=$npmbin/bin/azurite-queue
	fi
	if [ -z "$AZURITE_BIN" ]; then
		if command -v npm >/dev/null; then
			AZURITE_WHY="azurite-queue is not installed (sh .ci/deps.sh installs npm azurite@3.35.0)"
		else
			AZURITE_WHY="azurite-queue is not installed and there is no npm to install it with"
		fi
		return 1
	fi
	command -v node >/dev/null || { AZURITE_WHY="node is not installed"; return 1; }
	return 0
}

azurite_start() {
	local dir=$1 port=${2:-} try store=(--inMemoryPersistence)
	mkdir -p "$dir"
	[ "${AZURITE_DISK:-}" = 1 ] && store=(--location "$dir")
	for try in 1 2 3 4; do
		AZURITE_PORT=${port:-$(free_port)} || return 1
		# --disableTelemetry: Azurite would send telemetry off the machine by default
		(cd "$dir" && exec "$AZURITE_BIN" --queueHost 127.0.0.1 --queuePort "$AZURITE_PORT" \
			"${store[@]}" --disableTelemetry --silent) >"$dir/azurite.log" 2>&1 &
		AZURITE_PID=$!
		AZURITE_EP=http://127.0.0.1:$AZURITE_PORT/$AZURITE_ACCOUNT
		AZURITE_CONN="DefaultEndpointsProtocol=http;AccountName=$AZURITE_ACCOUNT;AccountKey=$AZURITE_KEY;QueueEndpoint=$AZURITE_EP;"
		if wait_for 30 azq ready; then
			kill -0 "$AZURITE_PID" 2>/dev/null && return 0
		fi
		azurite_stop
		[ -z "$port" ] && grep -q EADDRINUSE "$dir/azurite.log" || break
		echo "azurite: port $AZURITE_PORT was taken, starting again on another" >&2
	done
	cat "$dir/azurite.log" >&2
	return 1
}

azurite_stop() {
	local i
	[ -n "$AZURITE_PID" ] || return 0
	kill "$AZURITE_PID" 2>/dev/null
	for ((i = 0; i < 100; i++)); do
		kill -0 "$AZURITE_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -9 "$AZURITE_PID" 2>/dev/null
	wait "$AZURITE_PID" 2>/dev/null
	AZURITE_PID=
	return 0
}

azq() {
	python3 "$TOP/tests/lib/azq.py" "$AZURITE_EP" "$@"
}
