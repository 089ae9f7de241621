/*
 * Walking a table by its key: keyset pagination on the primary key (or the
 * replica identity index), so each chunk is an index range scan that
 * starts after the last key delivered, whatever the table's size.
 */
#include <stdlib.h>
#include <string.h>

#include "snapshot.h"
#include "../lib/util.h"

/* WHERE (k1, k2) > ($1::t1, $2::t2) ORDER BY k1, k2 LIMIT $3: the same text for every chunk */
static int
keyset_bounds(struct capture *c, struct snap_table *t, struct buf *sql, int limit,
		const char **params, int *nparams)
{
	int i;

	(void) c;
	if (t->key && t->nkey != t->nkcol) {
		/* the key has other columns than when the position was stored: start over */
		snap_forget_position(t);
	}
	if (t->key) {
		buf_puts(sql, t->filter ? " AND (" : " WHERE (");
		for (i = 0; i < t->nkcol; i++) {
			if (i)
				buf_putlit(sql, ", ");
			buf_puts(sql, t->qcol[t->kcol[i]]);
		}
		buf_putlit(sql, ") > (");
		for (i = 0; i < t->nkcol; i++) {
			buf_printf(sql, "%s$%d::%s", i ? ", " : "", i + 1, t->rel->cols[t->kcol[i]].typname);
			params[i] = t->key[i];
		}
		buf_putc(sql, ')');
		*nparams = t->nkcol;
	}
	buf_putlit(sql, " ORDER BY ");
	for (i = 0; i < t->nkcol; i++) {
		if (i)
			buf_putlit(sql, ", ");
		buf_puts(sql, t->qcol[t->kcol[i]]);
	}
	snprintf(t->bound[0], sizeof(t->bound[0]), "%d", limit);
	params[*nparams] = t->bound[0];
	buf_printf(sql, " LIMIT $%d", ++*nparams);
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

const struct snap_source snap_keyset = {"key", true, 1, keyset_bounds, keyset_advance};
