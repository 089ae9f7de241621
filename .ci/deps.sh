#!/bin/sh
# Install what building, testing and the demo need on Debian 12, skipping
# what is already there. Runs as root, or through sudo.
set -e
pkgs="build-essential pkg-config libpq-dev libjansson-dev libcurl4-openssl-dev
postgresql-15 postgresql-15-wal2json postgresql-client-15 python3 python3-psycopg2 util-linux procps time valgrind clang libclang-rt-14-dev"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
echo "installing:$missing" >&2
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
# the Debian package would start a system cluster we do not use
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
