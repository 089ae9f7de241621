# Throwaway PostgreSQL 15 cluster for the tests, sourced by bash scripts.
#
#   pg_start DIR PORT [extra postgresql.conf lines...]   initdb + start
#   pg_stop                                              fast shutdown
#   pg_restart                                           stop and start again
#   sql "SELECT ..."                                     psql as the superuser, unaligned, tuples only
#
# The server listens on 127.0.0.1 only, on its own port, with wal_level=logical.
# PostgreSQL refuses to run as root, so when the tests run as root the server
# runs as "nobody". The superuser "postgres" is trusted on loopback; every
# other role must use a password (scram-sha-256).

PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/15/bin 2>/dev/null)}
[ -x "$PGBIN/postgres" ] || { echo "pgcluster: PostgreSQL 15 server not found (apt-get install postgresql-15)" >&2; return 1; }

as_pg_user() {
	if [ "$(id -u)" = 0 ]; then
		setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"
	else
		"$@"
	fi
}

pg_start() {
	PGTEST_DIR=$1 PGTEST_PORT=$2
	shift 2
	mkdir -p "$PGTEST_DIR"
	[ "$(id -u)" = 0 ] && chown nobody:nogroup "$PGTEST_DIR"
	as_pg_user "$PGBIN/initdb" -D "$PGTEST_DIR/data" -U postgres -A trust \
		--no-sync -E UTF8 --locale=C >"$PGTEST_DIR/initdb.log" 2>&1 ||
		{ cat "$PGTEST_DIR/initdb.log" >&2; return 1; }
	{
		echo "listen_addresses = '127.0.0.1'"
		echo "port = $PGTEST_PORT"
		echo "unix_socket_directories = ''"
		echo "wal_level = logical"
		echo "max_wal_senders = 10"
		echo "max_replication_slots = 10"
		echo "fsync = off"
		echo "synchronous_commit = on"
		echo "full_page_writes = off"
		echo "shared_buffers = 64MB"
		echo "log_min_messages = warning"
		# PostgreSQL 15.19+ loads only the output plugins listed here.
		# (no pipe into grep -q: under pipefail its early exit would fail the test)
		if [[ $("$PGBIN/postgres" --describe-config 2>/dev/null) == *$'\n'output_plugin_libraries* ]]; then
			echo "output_plugin_libraries = 'pgoutput, test_decoding, wal2json'"
		fi
		for line in "$@"; do echo "$line"; done
	} >>"$PGTEST_DIR/data/postgresql.conf"
	cat >"$PGTEST_DIR/data/pg_hba.conf" <<-EOF
	host all         postgres 127.0.0.1/32 trust
	host replication postgres 127.0.0.1/32 trust
	host all         all      127.0.0.1/32 scram-sha-256
	host replication all      127.0.0.1/32 scram-sha-256
	EOF
	pg_up
}

pg_up() {
	as_pg_user "$PGBIN/pg_ctl" -D "$PGTEST_DIR/data" -l "$PGTEST_DIR/server.log" \
		-w -t 60 start >/dev/null ||
		{ tail -20 "$PGTEST_DIR/server.log" >&2; return 1; }
}

pg_stop() {
	[ -n "${PGTEST_DIR:-}" ] && [ -f "$PGTEST_DIR/data/postmaster.pid" ] &&
		as_pg_user "$PGBIN/pg_ctl" -D "$PGTEST_DIR/data" -m fast -w -t 60 stop >/dev/null
	return 0
}

pg_restart() {
	pg_stop && pg_up
}

pg_conninfo() {
	echo "host=127.0.0.1 port=$PGTEST_PORT dbname=postgres user=${1:-postgres}"
}

sql() {
	PGCONNECT_TIMEOUT=10 psql -X -q -v ON_ERROR_STOP=1 -At \
		-d "$(pg_conninfo)" -c "$1"
}

# A free TCP port on 127.0.0.1, from a range unlikely to be taken.
free_port() {
	local p
	for p in $(shuf -i 20000-39999 -n 50); do
		if ! (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}
