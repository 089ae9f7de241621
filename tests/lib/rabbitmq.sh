# Throwaway RabbitMQ node with the management HTTP API, for the tests; sourced by bash scripts.
#
#   rabbit_start                          start a node on 127.0.0.1 and wait until its API and AMQP
#                                         listener answer; started again on other ports (up to 4
#                                         times) when one was taken before the node could bind it
#   rabbit_stop                           stop it and its epmd, remove its directory; no process left
#   rabbit_api METHOD PATH [BODY]         curl as guest:guest to $RABBIT_API$PATH (PATH: /queues/%2F/q);
#                                         prints the answer, fails on no answer or HTTP >= 400
#   rabbit_queue_create NAME [ARGS-JSON]  durable queue on vhost / (ARGS: {"x-max-length":1,...})
#   rabbit_queue_delete NAME
#   rabbit_queue_purge NAME
#   rabbit_queue_get NAME                 take every message (ackmode ack_requeue_false): one JSON array
#   rabbit_queue_depth NAME               messages in the queue (management statistics, 0.5 s old at most)
#   rabbit_log                            the node's log, for failure reports
#   rabbit_ctl ARG...                     rabbitmqctl against the node, for debugging
#
# After rabbit_start: RABBIT_URL (management base, http://127.0.0.1:PORT),
# RABBIT_API ($RABBIT_URL/api), RABBIT_AMQP_PORT, RABBIT_DIR.
# RABBIT_PORTS_FIRST="AMQP MGMT DIST EPMD" (or the first few) makes the
# first start take those ports, free or not: the test of the retry.
#
# Nothing outside the node's own temporary directory is used or changed:
# /etc/rabbitmq and /var/lib/rabbitmq stay untouched. The Debian wrapper
# /usr/sbin/rabbitmq-server (which cds to /var/lib/rabbitmq and su's to
# rabbitmq) is bypassed: the real script /usr/lib/rabbitmq/bin/rabbitmq-server
# runs with RABBITMQ_* variables pointing into the directory: config,
# enabled plugins, mnesia, logs, pid file, its own Erlang cookie ($HOME) and
# an env file in place of /etc/rabbitmq/rabbitmq-env.conf. The AMQP,
# management, distribution and epmd ports are free ports on 127.0.0.1 (its
# own epmd, so a system node on 5672/15672/4369 is neither needed nor
# disturbed). As root the node runs as the rabbitmq user.
#
# Idempotent: rabbit_start first stops any node a previous run left behind
# (a directory whose owning shell is gone), then starts a fresh one.

RABBIT_BIN=${RABBIT_BIN:-/usr/lib/rabbitmq/bin}
RABBIT_START_TIMEOUT=${RABBIT_START_TIMEOUT:-45}
RABBIT_STOP_TIMEOUT=${RABBIT_STOP_TIMEOUT:-20}
RABBIT_AUTH=${RABBIT_AUTH:-guest:guest}	# guest: loopback only, which is all we use

# Four distinct TCP ports nobody listens on, below the ephemeral range and
# away from RabbitMQ's defaults (5672, 15672, 25672, rabbitmqctl's
# 35672-35682), in _RABBIT_PORTS. RABBIT_PORTS_FIRST (for the test of the
# retry below) lists ports to take first, as they are.
_rabbit_pick_ports() {
	local p u
	_RABBIT_PORTS=
	for p in ${RABBIT_PORTS_FIRST:-} $(shuf -i 20000-32000 -n 200); do
		[ "$p" = 25672 ] && continue
		for u in $_RABBIT_PORTS; do [ "$u" = "$p" ] && continue 2; done
		if [[ " ${RABBIT_PORTS_FIRST:-} " == *" $p "* ]] || ! (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			_RABBIT_PORTS="$_RABBIT_PORTS $p"
			[ "$(wc -w <<<"$_RABBIT_PORTS")" = 4 ] && return 0
		fi
	done
	return 1
}

# Processes started for directory $1: their environment names it.
_rabbit_pids_of() {
	local f pid
	for f in /proc/[0-9]*/environ; do
		pid=${f#/proc/}
		pid=${pid%/environ}
		[ "$pid" = "$$" ] && continue
		{ tr '\0' '\n' <"$f" | grep -qxF "RABBITMQ_MNESIA_BASE=$1/mnesia"; } 2>/dev/null && echo "$pid"
	done
}

# Stop the node of directory $1 (bounded), its epmd, anything else it
# started, and remove the directory.
_rabbit_stop_dir() {
	local d=$1 pid i pids
	[ -d "$d" ] || return 0
	pid=$(cat "$d/beam.pid" 2>/dev/null)
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		# SIGTERM: the Erlang VM stops the node gracefully (init:stop)
		kill -TERM "$pid" 2>/dev/null
		for ((i = 0; i < RABBIT_STOP_TIMEOUT * 10; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -0 "$pid" 2>/dev/null && { echo "rabbitmq: node did not stop in ${RABBIT_STOP_TIMEOUT}s, killing it" >&2; kill -KILL "$pid" 2>/dev/null; }
	fi
	# its own epmd (on its own port) outlives the node
	if [ -s "$d/epmd.port" ]; then
		ERL_EPMD_PORT=$(cat "$d/epmd.port") ERL_EPMD_ADDRESS=127.0.0.1 timeout 5 epmd -kill >/dev/null 2>&1
	fi
	# whatever is left (the wrapper shell, a stuck epmd): by identity, not by name
	for i in 1 2 3 4 5 6 7 8 9 10; do
		pids=$(_rabbit_pids_of "$d")
		[ -z "$pids" ] && break
		# shellcheck disable=SC2086
		kill -TERM $pids 2>/dev/null
		sleep 0.2
		# shellcheck disable=SC2086
		[ "$i" -ge 5 ] && kill -KILL $pids 2>/dev/null
	done
	rm -rf "$d"
}

# Nodes left by earlier runs whose shell is gone.
_rabbit_sweep() {
	local d owner
	for d in "${TMPDIR:-/tmp}"/pgcdc-rabbitmq.*; do
		[ -d "$d" ] || continue
		owner=$(cat "$d/owner" 2>/dev/null)
		if [ -n "$owner" ] && [ "$owner" != "$$" ] && kill -0 "$owner" 2>/dev/null; then
			continue	# another test run is using it
		fi
		echo "rabbitmq: stopping a node left by an earlier run ($d)" >&2
		_rabbit_stop_dir "$d"
	done
}

rabbit_log() {
	[ -n "${RABBIT_DIR:-}" ] || return 0
	tail -n 40 "$RABBIT_DIR"/log/*.log "$RABBIT_DIR/startup.log" 2>/dev/null
}

# A port found free can be taken by another process before the node binds
# it (tests run side by side): the node then exits while starting, and
# rabbit_start starts a fresh one on other ports, a few times.
rabbit_start() {
	local try rc
	if [ ! -x "$RABBIT_BIN/rabbitmq-server" ] || ! command -v erl >/dev/null; then
		echo "rabbitmq: rabbitmq-server is not installed (apt-get install rabbitmq-server)" >&2
		return 1
	fi
	command -v curl >/dev/null || { echo "rabbitmq: curl is not installed" >&2; return 1; }
	[ -n "${RABBIT_DIR:-}" ] && rabbit_stop
	_rabbit_sweep
	for try in 1 2 3 4; do
		_rabbit_start_once
		rc=$?
		[ $rc = 2 ] || return $rc
		echo "rabbitmq: $_RABBIT_CLASH was taken before the node could bind it, starting again on other ports" >&2
		rabbit_stop
		RABBIT_PORTS_FIRST=
	done
	echo "rabbitmq: ports kept being taken, giving up after $try starts" >&2
	return 1
}

# Did the node of $RABBIT_DIR fail because a port of its was taken? Sets
# _RABBIT_CLASH to which one: a port that answers though the node is gone
# (its epmd's port: when no epmd of its own runs), or its log saying so.
_rabbit_port_clash() {
	local name port pid own_epmd=
	_RABBIT_CLASH=
	if cat "$RABBIT_DIR/startup.log" "$RABBIT_DIR"/log/*.log 2>/dev/null | grep -qiE 'eaddrinuse|address already in use'; then
		_RABBIT_CLASH="a port"
	fi
	for pid in $(_rabbit_pids_of "$RABBIT_DIR"); do
		[ "$(cat "/proc/$pid/comm" 2>/dev/null)" = epmd ] && own_epmd=1
	done
	for name in amqp mgmt dist epmd; do
		[ "$name" = epmd ] && [ -n "$own_epmd" ] && continue
		port=$(cat "$RABBIT_DIR/$name.port" 2>/dev/null)
		if [ -n "$port" ] && (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			_RABBIT_CLASH="port $port ($name)"
		fi
	done
	[ -n "$_RABBIT_CLASH" ]
}

# One start: 0 when the node answers, 2 when a port was taken, 1 otherwise.
_rabbit_start_once() {
	local amqp mgmt dist epmdp d runas=() deadline
	d=$(mktemp -d "${TMPDIR:-/tmp}/pgcdc-rabbitmq.XXXXXX") || return 1
	RABBIT_DIR=$d
	echo $$ >"$d/owner"
	_rabbit_pick_ports || { echo "rabbitmq: no free port" >&2; return 1; }
	read -r amqp mgmt dist epmdp <<<"$_RABBIT_PORTS"
	echo "$amqp" >"$d/amqp.port"
	echo "$mgmt" >"$d/mgmt.port"
	echo "$dist" >"$d/dist.port"
	echo "$epmdp" >"$d/epmd.port"
	mkdir -p "$d/mnesia" "$d/log" "$d/home"
	cat >"$d/rabbitmq.conf" <<-EOF
	listeners.tcp.default = 127.0.0.1:$amqp
	management.tcp.ip = 127.0.0.1
	management.tcp.port = $mgmt
	loopback_users.guest = true
	collect_statistics_interval = 500
	log.console = false
	log.file.level = info
	EOF
	echo '[rabbitmq_management].' >"$d/enabled_plugins"
	: >"$d/rabbitmq-env.conf"	# instead of /etc/rabbitmq/rabbitmq-env.conf
	# its own Erlang cookie, so the node never reads another one
	head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$d/home/.erlang.cookie"
	chmod 400 "$d/home/.erlang.cookie"
	if [ "$(id -u)" = 0 ]; then
		id rabbitmq >/dev/null 2>&1 || { echo "rabbitmq: no rabbitmq user (is rabbitmq-server installed?)" >&2; return 1; }
		chown -R rabbitmq:rabbitmq "$d"
		chmod 755 "$d"
		runas=(setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups --)
	fi
	RABBIT_URL=http://127.0.0.1:$mgmt
	RABBIT_API=$RABBIT_URL/api
	RABBIT_AMQP_PORT=$amqp
	(
		cd "$d" || exit 1
		exec setsid "${runas[@]}" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$d/home" LANG=C.UTF-8 \
			RABBITMQ_CONF_ENV_FILE="$d/rabbitmq-env.conf" \
			RABBITMQ_CONFIG_FILE="$d/rabbitmq.conf" \
			RABBITMQ_ADVANCED_CONFIG_FILE="$d/advanced.config" \
			RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins" \
			RABBITMQ_MNESIA_BASE="$d/mnesia" \
			RABBITMQ_LOG_BASE="$d/log" \
			RABBITMQ_PID_FILE="$d/beam.pid" \
			RABBITMQ_NODENAME=pgcdc@localhost \
			RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
			RABBITMQ_NODE_PORT="$amqp" \
			RABBITMQ_DIST_PORT="$dist" \
			ERL_EPMD_PORT="$epmdp" \
			ERL_EPMD_ADDRESS=127.0.0.1 \
			RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
			"$RABBIT_BIN/rabbitmq-server"
	) </dev/null >"$d/startup.log" 2>&1 &
	echo $! >"$d/wrapper.pid"
	disown $! 2>/dev/null
	# ready when the default vhost is up and the AMQP listener too: the
	# management API answers before the listeners start, and a listener
	# that cannot bind its port still fails the boot after that
	deadline=$((SECONDS + RABBIT_START_TIMEOUT))
	while [ "$SECONDS" -lt "$deadline" ]; do
		if curl -sf -m 2 -u "$RABBIT_AUTH" "$RABBIT_API/health/checks/virtual-hosts" >/dev/null 2>&1 &&
				curl -sf -m 2 -u "$RABBIT_AUTH" "$RABBIT_API/health/checks/port-listener/$amqp" >/dev/null 2>&1; then
			return 0
		fi
		if ! kill -0 "$(cat "$d/wrapper.pid")" 2>/dev/null; then
			_rabbit_port_clash && return 2
			echo "rabbitmq: the node exited while starting:" >&2
			rabbit_log >&2
			return 1
		fi
		sleep 0.2
	done
	echo "rabbitmq: the management API did not answer within ${RABBIT_START_TIMEOUT}s on $RABBIT_URL" >&2
	rabbit_log >&2
	return 1
}

rabbit_stop() {
	[ -n "${RABBIT_DIR:-}" ] || return 0
	_rabbit_stop_dir "$RABBIT_DIR"
	RABBIT_DIR=
	return 0
}

# rabbitmqctl against the node (same cookie, same epmd), for debugging.
rabbit_ctl() {
	local runas=()
	[ "$(id -u)" = 0 ] && runas=(setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups --)
	"${runas[@]}" env HOME="$RABBIT_DIR/home" RABBITMQ_CONF_ENV_FILE="$RABBIT_DIR/rabbitmq-env.conf" \
		ERL_EPMD_PORT="$(cat "$RABBIT_DIR/epmd.port")" RABBITMQ_NODENAME=pgcdc@localhost \
		"$RABBIT_BIN/rabbitmqctl" "$@"
}

rabbit_api() {
	local args=(-sS --fail-with-body -m 30 -u "$RABBIT_AUTH" -X "$1")
	[ $# -ge 3 ] && args+=(-H 'content-type: application/json' --data-binary "$3")
	curl "${args[@]}" "$RABBIT_API$2"
}

rabbit_queue_create() {
	local qargs=${2:-'{}'}
	rabbit_api PUT "/queues/%2F/$1" "{\"durable\":true,\"auto_delete\":false,\"arguments\":$qargs}" >/dev/null
}

rabbit_queue_delete() {
	rabbit_api DELETE "/queues/%2F/$1" >/dev/null 2>&1
	return 0
}

rabbit_queue_purge() {
	rabbit_api DELETE "/queues/%2F/$1/contents" >/dev/null
}

# Every message, taken in chunks until the queue answers none, as one JSON array.
rabbit_queue_get() {
	local chunk all="" n
	while :; do
		chunk=$(rabbit_api POST "/queues/%2F/$1/get" \
			'{"count":5000,"ackmode":"ack_requeue_false","encoding":"auto"}') || return 1
		[ "$chunk" = "[]" ] && break
		chunk=${chunk#\[}
		all="${all:+$all,}${chunk%\]}"
		n=$((${n:-0} + 1))
		[ "$n" -gt 1000 ] && { echo "rabbitmq: queue $1 does not drain" >&2; return 1; }
	done
	printf '[%s]\n' "$all"
}

rabbit_queue_depth() {
	rabbit_api GET "/queues/%2F/$1" |
		python3 -c 'import json, sys; print(json.load(sys.stdin).get("messages", 0))'
}
