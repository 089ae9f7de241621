# Throwaway fauxqs (an Amazon SQS emulator, JSON protocol) for the tests
# and bench/targets.sh; sourced by bash scripts after testlib.sh.
#
#   fauxqs_find               sets FAUXQS_CLI, or returns 1 with the reason in FAUXQS_WHY
#   fauxqs_start DIR          start it on a free port of 127.0.0.1 and wait until it
#                             answers; started again on another port when one was
#                             taken before it could bind it
#   fauxqs_stop               stop it and wait for it
#   fauxqs_call ACTION JSON   one SQS JSON-protocol call, the answer on stdout
#   fauxqs_create NAME        create queue NAME (a FIFO queue when it ends in .fifo), print its URL
#   fauxqs_count QUEUE_URL    messages the queue holds (ApproximateNumberOfMessages)
#
# After fauxqs_start: FAUXQS_PORT, FAUXQS_PID, FAUXQS_EP (the endpoint to
# POST to, http://127.0.0.1:PORT/). fauxqs listens on 0.0.0.0 by itself: a
# preload moves every listener of its process to 127.0.0.1.

FAUXQS_PID=

fauxqs_find() {
	command -v node >/dev/null || { FAUXQS_WHY="node is not installed"; return 1; }
	FAUXQS_CLI=$(npm root -g 2>/dev/null)/fauxqs/dist/cli.js
	[ -f "$FAUXQS_CLI" ] && return 0
	if command -v npm >/dev/null; then
		FAUXQS_WHY="fauxqs is not installed (sh .ci/deps.sh installs npm fauxqs@1.9.2)"
	else
		FAUXQS_WHY="fauxqs is not installed and there is no npm to install it with"
	fi
	return 1
}

fauxqs_up() { curl -sf "http://127.0.0.1:$FAUXQS_PORT/health" >/dev/null; }

fauxqs_start() {
	local dir=$1 try
	mkdir -p "$dir"
	cat >"$dir/loopback-only.mjs" <<'JS'
import net from 'node:net';
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...a) {
  if (a[0] && typeof a[0] === 'object') a[0] = { ...a[0], host: '127.0.0.1' };
  return listen.apply(this, a);
};
JS
	for try in 1 2 3; do
		FAUXQS_PORT=$(free_port) || return 1
		FAUXQS_PORT=$FAUXQS_PORT node --import "$dir/loopback-only.mjs" "$FAUXQS_CLI" >"$dir/fauxqs.log" 2>&1 &
		FAUXQS_PID=$!
		FAUXQS_EP=http://127.0.0.1:$FAUXQS_PORT/
		wait_for 15 fauxqs_up && return 0
		fauxqs_stop	# the port was taken meanwhile: another one
	done
	tail -5 "$dir/fauxqs.log" >&2
	return 1
}

fauxqs_stop() {
	[ -n "$FAUXQS_PID" ] || return 0
	kill "$FAUXQS_PID" 2>/dev/null
	wait "$FAUXQS_PID" 2>/dev/null
	FAUXQS_PID=
	return 0
}

fauxqs_call() {
	curl -s -m 10 -H 'Content-Type: application/x-amz-json-1.0' -H "X-Amz-Target: AmazonSQS.$1" -d "$2" "$FAUXQS_EP"
}

fauxqs_create() {
	local attrs='{}'
	[[ $1 == *.fifo ]] && attrs='{"FifoQueue":"true"}'
	fauxqs_call CreateQueue "{\"QueueName\":\"$1\",\"Attributes\":$attrs}" | jq -er .QueueUrl
}

fauxqs_count() {
	fauxqs_call GetQueueAttributes "{\"QueueUrl\":\"$1\",\"AttributeNames\":[\"ApproximateNumberOfMessages\"]}" |
		jq -r .Attributes.ApproximateNumberOfMessages
}
