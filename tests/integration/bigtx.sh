#!/usr/bin/env bash
# test: alone (it measures time or memory, or loads the machine)
# Huge transactions through pg-capture in bounded memory: one of a million
# rows, and one of 500 MB of TOASTed text, each read back whole (exact
# counts and sizes) with pg-capture's peak RSS under 32 MB.
set -u
source "$(dirname "$0")/../lib/testlib.sh"
source "$TOP/tests/lib/pgcluster.sh"
T=$(mktemp -d /tmp/pgcdc-bigtx.XXXXXX)
trap 'pg_stop; rm -rf "$T"' EXIT
chmod 755 "$T"
pg_start "$T/pg" "$(free_port)" "max_wal_size = '4GB'" "checkpoint_timeout = '30min'" || exit 1
CONN=$(pg_conninfo)
sql "CREATE TABLE rows (id int PRIMARY KEY, v int); CREATE TABLE docs (id int PRIMARY KEY, body text)" >/dev/null
"$PG_CAPTURE" -d "$CONN" -S big --create-slot --endpos "$(sql "SELECT pg_current_wal_lsn()")" >/dev/null 2>&1

# a million rows in one transaction
sql "INSERT INTO rows SELECT i, i FROM generate_series(1, 1000000) i" >/dev/null
# 500 MB of text that does not compress: 500 rows of 1 MiB of md5 hex, stored out of line
sql "INSERT INTO docs SELECT d, (SELECT string_agg(md5(d::text || ':' || g::text), '')
	FROM generate_series(1, 32768) g) FROM generate_series(1, 500) d" >/dev/null
end=$(sql "SELECT pg_current_wal_lsn()")

/usr/bin/time -f %M -o "$T/rss" timeout -k 5 240 "$PG_CAPTURE" -d "$CONN" -S big --endpos "$end" 2>"$T/cap.err" |
	LC_ALL=C awk -F'"' '$4 == "insert" && $12 == "rows" { r++ } $4 == "insert" && $12 == "docs" { d++; b += length($0) }
		$4 == "commit" { c++ } END { printf "%d %d %d %d\n", r, d, c, b }' >"$T/counts"
read -r nrows ndocs ncommits bytes <"$T/counts"
is "$nrows $ncommits" "1000000 2" "a million-row transaction: every row, one commit each"
is "$ndocs" 500 "500 MB of TOASTed text: every row"
if [ "${bytes:-0}" -gt $((500 * 1048576)) ]; then pass "500 MB of TOASTed text: $((bytes / 1048576)) MiB of events, the values in full"
else fail "500 MB of TOASTed text: the values in full" "${bytes:-0} bytes"; fi
rss=$(tail -1 "$T/rss")
rss_below 32768 "both transactions" "$rss"
done_testing
