/*
 * Catalog look-ups on the plain connection: a table's SQL type names and
 * primary key, which the replication stream does not carry (pgoutput) or
 * carries only in part (wal2json omits unchanged TOASTed columns).
 */
#include <stdlib.h>
#include <string.h>

#include "capture.h"
#include "../lib/log.h"
#include "../lib/util.h"

static const char describe_sql[] =
	"SELECT a.attname, a.atttypid, pg_catalog.format_type(a.atttypid, a.atttypmod),"
	"       coalesce(a.attnum = ANY (k.indkey), false), c.relreplident"
	"  FROM pg_catalog.pg_class c"
	"  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
	"  JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped"
	"  LEFT JOIN LATERAL (SELECT i.indkey FROM pg_catalog.pg_index i"
	"        WHERE i.indrelid = c.oid AND (i.indisprimary OR (c.relreplident = 'i' AND i.indisreplident))"
	"        ORDER BY i.indisprimary DESC LIMIT 1) k ON true"
	" WHERE n.nspname = $1 AND c.relname = $2"
	" ORDER BY a.attnum";

static int
find_col(PGresult *res, const char *name)
{
	int i;

	for (i = 0; i < PQntuples(res); i++)
		if (strcmp(PQgetvalue(res, i, 0), name) == 0)
			return i;
	return -1;
}

/*
 * Complete rel from the catalog. With columns already known (pgoutput),
 * add type names and, when the table has a primary key (or a replica
 * identity index), make it the key: REPLICA IDENTITY FULL marks every column. With none (wal2json), take
 * the columns from the catalog. Returns 0, or -1 when the table or the
 * connection is not there (rel keeps what it had).
 */
int
catalog_describe(struct capture *c, struct relation *rel)
{
	const char *params[2] = {rel->schema, rel->table};
	PGconn *conn = catalog_conn(c);
	PGresult *res;
	bool has_pk = false;
	int i, row;

	if (!conn)
		return -1;
	res = PQexecParams(conn, describe_sql, 2, NULL, params, NULL, NULL, 0);
	if (PQstatus(conn) != CONNECTION_OK) {
		/* the server restarted since the last look-up: once more on a new connection */
		PQclear(res);
		if (!(conn = catalog_conn(c)))
			return -1;
		res = PQexecParams(conn, describe_sql, 2, NULL, params, NULL, NULL, 0);
	}
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) == 0) {
		if (PQresultStatus(res) != PGRES_TUPLES_OK)
			log_kv(LOG_WARN, "could not look up table in the catalog", "schema", rel->schema,
					"table", rel->table, "error", PQresultErrorMessage(res), NULL);
		PQclear(res);
		return -1;
	}
	for (i = 0; i < PQntuples(res); i++)
		has_pk |= PQgetvalue(res, i, 3)[0] == 't';
	if (rel->natts == 0) {
		rel->natts = PQntuples(res);
		rel->cols = xcalloc((size_t) rel->natts, sizeof(*rel->cols));
		rel->replident = PQgetvalue(res, 0, 4)[0];
		for (i = 0; i < rel->natts; i++) {
			rel->cols[i].name = xstrdup(PQgetvalue(res, i, 0));
			rel->cols[i].typoid = (uint32_t) strtoul(PQgetvalue(res, i, 1), NULL, 10);
		}
	}
	for (i = 0; i < rel->natts; i++) {
		/* as pgoutput reports it: FULL without a primary key makes every column the key */
		if (!has_pk && rel->replident == 'f')
			rel->cols[i].key = true;
		row = find_col(res, rel->cols[i].name);
		/* a catalog ahead of the stream (column retyped or dropped since) names nothing */
		if (row < 0 || strtoul(PQgetvalue(res, row, 1), NULL, 10) != rel->cols[i].typoid)
			continue;
		free(rel->cols[i].typname);
		rel->cols[i].typname = xstrdup(PQgetvalue(res, row, 2));
		if (has_pk)
			rel->cols[i].key = PQgetvalue(res, row, 3)[0] == 't';
	}
	PQclear(res);
	return 0;
}
