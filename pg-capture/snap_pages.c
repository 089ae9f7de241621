/*
 * Walking a table that has no key by ranges of pages (ctid): the fallback
 * for tables without a primary key or replica identity index. PostgreSQL
 * 14 and later read a range with a TID range scan; before, each chunk
 * scans the table. Rows cannot be told apart, so a chunk during which the
 * table changed is read again rather than resolved row by row (chunk.c).
 */
#include <stdio.h>
#include <stdlib.h>

#include "snapshot.h"

/* AND ctid >= '(P,0)' AND ctid < '(P+n,0)', once the table's size says there is more */
static int
pages_bounds(struct capture *c, struct snap_table *t, struct buf *sql, int limit)
{
	const char *p = t->qname;
	PGresult *res;
	int64_t nblocks;

	(void) limit;
	res = catalog_exec(c, "SELECT pg_catalog.pg_relation_size($1::pg_catalog.regclass) / "
			"pg_catalog.current_setting('block_size')::int", 1, &p, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		snap_log_error(c, t, "could not read the table's size", res);
		PQclear(res);
		return -1;
	}
	nblocks = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	if (t->page >= nblocks)
		return 1;
	buf_printf(sql, " AND ctid >= '(%lld,0)'::pg_catalog.tid AND ctid < '(%lld,0)'::pg_catalog.tid",
			(long long) t->page, (long long) (t->page + SNAP_PAGES));
	return 0;
}

static bool
pages_advance(struct snap_table *t, PGresult *res, int nrows, int limit)
{
	(void) res, (void) nrows, (void) limit;
	t->page += SNAP_PAGES;
	return false;	/* the next bounds() tells */
}

const struct snap_source snap_pages = {"pages", false, 1, pages_bounds, pages_advance};
