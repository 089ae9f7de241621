#!/bin/sh
# Install what building, testing and the demo need on Debian 12, skipping
# what is already there. Runs as root, or through sudo. Nothing installed is
# upgraded: postgresql-15 stays at the minor it has (15.18 on a fresh image),
# and the tests adapt to it (README, "Two commands").
set -e
pkgs="build-essential pkg-config libpq-dev libjansson-dev libcurl4-openssl-dev libssl-dev
postgresql-15 postgresql-15-wal2json postgresql-client-15 python3 python3-psycopg2 util-linux procps time valgrind clang libclang-rt-14-dev rabbitmq-server supervisor curl jq iproute2 openssl
libmicrohttpd-dev prometheus"
# npm installs the other PostgreSQL versions the tests run against
# (pgversions.sh) and the queue emulators below; a node and npm installed
# some other way will do
command -v npm >/dev/null || pkgs="$pkgs nodejs npm"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
if [ -n "$missing" ]; then
	echo "installing:$missing" >&2
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	# packages must not start their own services (a system PostgreSQL, RabbitMQ or
	# supervisord listening on all interfaces): the tests start what they need
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
		$SUDO chmod 755 /usr/sbin/policy-rc.d
		trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
	fi
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

# npm_tool BIN PACKAGE@VERSION: a queue emulator the tests start on loopback,
# installed globally unless BIN is already there
npm_tool() {
	command -v "$1" >/dev/null && return 0
	prefix=$(npm prefix -g 2>/dev/null) || prefix=""
	[ -n "$prefix" ] && [ -x "$prefix/bin/$1" ] && return 0
	echo "installing: npm $2" >&2
	$SUDO npm install -g --no-audit --no-fund --loglevel=error "$2" >/dev/null
}
# Azurite (Azure Storage queues) and fauxqs (Amazon SQS): the newest
# releases that run on Debian 12's Node 20
npm_tool azurite-queue azurite@3.35.0
npm_tool fauxqs fauxqs@1.9.2
