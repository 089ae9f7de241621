/*
 * Walking a table by its key: keyset pagination on the primary key (or the
 * replica identity index), so each chunk is an index range scan that
 * starts after the last key delivered, whatever the table's size.
 */
#include <stdlib.h>
#include <string.h>

#include "snapshot.h"
#include "../lib/log.h"
#include "../lib/util.h"

/* AND (k1, k2) > ('v1'::t1, 'v2'::t2) ORDER BY k1, k2 LIMIT n */
static int
keyset_bounds(struct capture *c, struct snap_table *t, struct buf *sql, int limit)
{
	PGconn *conn = catalog_conn(c);
	int i;

	if (t->key && t->nkey != t->nkcol) {
		/* the key has other columns than when the position was stored: start over */
		snap_forget_position(t);
	}
	if (t->key) {
		buf_putlit(sql, " AND (");
		for (i = 0; i < t->nkcol; i++) {
			if (i)
				buf_putlit(sql, ", ");
			buf_puts(sql, t->qcol[t->kcol[i]]);
		}
		buf_putlit(sql, ") > (");
		for (i = 0; i < t->nkcol; i++) {
			char *lit = PQescapeLiteral(conn, t->key[i], strlen(t->key[i]));

			if (!lit) {
				char tn[512];

				log_kv(LOG_ERROR, "could not read a snapshot chunk", "slot", c->opt.slot,
						"table", table_name(tn, sizeof(tn), t->schema, t->table),
						"error", PQerrorMessage(conn), NULL);
				return -1;
			}
			buf_printf(sql, "%s%s::%s", i ? ", " : "", lit, t->rel->cols[t->kcol[i]].typname);
			PQfreemem(lit);
		}
		buf_putc(sql, ')');
	}
	buf_putlit(sql, " ORDER BY ");
	for (i = 0; i < t->nkcol; i++) {
		if (i)
			buf_putlit(sql, ", ");
		buf_puts(sql, t->qcol[t->kcol[i]]);
	}
	buf_printf(sql, " LIMIT %d", limit);
	return 0;
}

/* The next chunk starts after the last row read, delivered or superseded. */
static bool
keyset_advance(struct snap_table *t, PGresult *res, int nrows, int limit)
{
	int i;

	if (nrows == 0)
		return true;
	if (!t->key) {
		t->key = xcalloc((size_t) t->nkcol, sizeof(*t->key));
		t->nkey = t->nkcol;
	}
	for (i = 0; i < t->nkey; i++) {
		free(t->key[i]);
		t->key[i] = xstrdup(PQgetvalue(res, nrows - 1, snap_keyset.first_col + t->kcol[i]));
	}
	return nrows < limit;
}

const struct snap_source snap_keyset = {"key", true, 0, keyset_bounds, keyset_advance};
