/*
 * Catalog look-ups on the plain connection: a table's SQL type names and
 * primary key, which the replication stream does not carry (pgoutput) or
 * carries only in part (wal2json omits unchanged TOASTed columns).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture.h"
#include "../lib/log.h"
#include "../lib/util.h"

/*
 * Per column: name, type OID, SQL type name, in the primary key, in the
 * replica identity index, and the table's replica identity. Base types
 * come from basetypes_sql, by type OID.
 */
#define DESCRIBE_SQL \
	"SELECT a.attname, a.atttypid, pg_catalog.format_type(a.atttypid, a.atttypmod)," \
	"       coalesce(a.attnum = ANY (p.indkey), false), coalesce(a.attnum = ANY (r.indkey), false)," \
	"       c.relreplident" \
	"  FROM pg_catalog.pg_class c" \
	"  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace" \
	"  JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped" \
	"  LEFT JOIN pg_catalog.pg_index p ON p.indrelid = c.oid AND p.indisprimary" \
	"  LEFT JOIN pg_catalog.pg_index r ON r.indrelid = c.oid AND r.indisreplident"

/* by name (wal2json), or by OID (pgoutput: the table may have been renamed since) */
static const char describe_by_name[] = DESCRIBE_SQL
	" WHERE n.nspname = $1 AND c.relname = $2 ORDER BY a.attnum";
static const char describe_by_oid[] = DESCRIBE_SQL
	" WHERE c.oid = $1::pg_catalog.oid ORDER BY a.attnum";

/* Each type of $1 (an array of OIDs) with its domains taken off (a domain over a domain too). */
static const char basetypes_sql[] =
	"WITH RECURSIVE d(oid, base, top) AS ("
	"    SELECT t.oid, t.typbasetype, t.oid FROM pg_catalog.pg_type t"
	"     WHERE t.oid = ANY ($1::pg_catalog.oid[])"
	"  UNION ALL"
	"    SELECT t.oid, t.typbasetype, d.top FROM d JOIN pg_catalog.pg_type t ON t.oid = d.base)"
	"SELECT top, oid FROM d WHERE base = 0";

/* The SQL name of each type OID of $1 with the typmod of $2, in order ("???" for a type gone). */
static const char typnames_sql[] =
	"SELECT pg_catalog.format_type(t.oid, t.mod)"
	"  FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.oid[]), pg_catalog.unnest($2::pg_catalog.int4[]))"
	"       WITH ORDINALITY AS t(oid, mod, n)"
	" ORDER BY t.n";

enum { F_NAME, F_TYPOID, F_TYPNAME, F_PK, F_RI, F_REPLIDENT };

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
 * Run sql on the catalog connection (PQexecParams' arguments), once more
 * on a new connection when the server restarted since the last use.
 * Returns the result (the caller clears it), or NULL without a connection.
 */
PGresult *
catalog_exec(struct capture *c, const char *sql, int n, const char *const *values,
		const int *lengths, const int *formats, int result_format)
{
	PGconn *conn = catalog_conn(c);
	PGresult *res;

	if (!conn)
		return NULL;
	res = PQexecParams(conn, sql, n, NULL, values, lengths, formats, result_format);
	if (PQstatus(conn) != CONNECTION_OK) {
		PQclear(res);
		if (!(conn = catalog_conn(c)))
			return NULL;
		res = PQexecParams(conn, sql, n, NULL, values, lengths, formats, result_format);
	}
	return res;
}

/*
 * Fill in the base types of rel's columns that have none yet, from their
 * type OIDs alone, so they hold for a table the catalog no longer has
 * under that name or OID too, whose domains still type its values.
 */
void
catalog_basetypes(struct capture *c, struct relation *rel)
{
	struct buf arr = {0};
	const char *params[1];
	PGresult *res;
	int i, k;

	buf_putc(&arr, '{');
	for (i = 0; i < rel->natts; i++) {
		if (rel->cols[i].basetype)
			continue;
		if (arr.len > 1)
			buf_putc(&arr, ',');
		buf_put_u64(&arr, rel->cols[i].typoid);
	}
	buf_putlit(&arr, "}");
	buf_putc(&arr, '\0');
	params[0] = arr.data;
	res = arr.len > 3 ? catalog_exec(c, basetypes_sql, 1, params, NULL, NULL, 0) : NULL;
	for (k = 0; PQresultStatus(res) == PGRES_TUPLES_OK && k < PQntuples(res); k++)
		for (i = 0; i < rel->natts; i++)
			if (!rel->cols[i].basetype &&
					rel->cols[i].typoid == strtoul(PQgetvalue(res, k, 0), NULL, 10))
				rel->cols[i].basetype = (uint32_t) strtoul(PQgetvalue(res, k, 1), NULL, 10);
	PQclear(res);
	buf_free(&arr);
}

/*
 * Name rel's column types from their OIDs and typmods as the stream gave
 * them (pgoutput's relation message), never from the table's current
 * columns: format_type depends on nothing else, so a column retyped since
 * (varchar(10) to varchar(20), the same OID) is named as it was. Columns
 * keep their names when the look-up fails.
 */
void
catalog_typnames(struct capture *c, struct relation *rel)
{
	struct buf oids = {0}, mods = {0};
	const char *params[2];
	PGresult *res;
	int i;

	if (rel->natts == 0)
		return;
	for (i = 0; i < rel->natts; i++) {
		buf_putc(&oids, i ? ',' : '{');
		buf_put_u64(&oids, rel->cols[i].typoid);
		buf_putc(&mods, i ? ',' : '{');
		buf_put_i64(&mods, rel->cols[i].typmod);
	}
	buf_putlit(&oids, "}");
	buf_putc(&oids, '\0');
	buf_putlit(&mods, "}");
	buf_putc(&mods, '\0');
	params[0] = oids.data;
	params[1] = mods.data;
	res = catalog_exec(c, typnames_sql, 2, params, NULL, NULL, 0);
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == rel->natts) {
		for (i = 0; i < rel->natts; i++) {
			free(rel->cols[i].typname);
			rel->cols[i].typname = strcmp(PQgetvalue(res, i, 0), "???") == 0 ? NULL :
					xstrdup(PQgetvalue(res, i, 0));
		}
	}
	PQclear(res);
	buf_free(&oids);
	buf_free(&mods);
}

static bool
flag(PGresult *res, int row, int field)
{
	return PQgetvalue(res, row, field)[0] == 't';
}

/* Is the column at row of res in the replica identity? */
static bool
in_identity(PGresult *res, int row, char replident)
{
	switch (replident) {
	case 'f': return true;
	case 'i': return flag(res, row, F_RI);
	case 'n': return false;
	default: return flag(res, row, F_PK);
	}
}

/*
 * Complete rel from the catalog. With columns already known (pgoutput,
 * whose relation message says which form the replica identity), add type
 * names, base types and the primary key; with none (wal2json), take the
 * columns, the replica identity and its columns from the catalog too.
 * The key is derived from them (rel_derive_key). Returns 0, or -1 when
 * the table or the connection is not there (rel keeps what it had).
 */
int
catalog_describe(struct capture *c, struct relation *rel)
{
	char tn[512];
	const char *params[2] = {rel->schema, rel->table};
	char oid[16];
	PGresult *res;
	int i, row;

	if (rel->relid) {
		snprintf(oid, sizeof(oid), "%u", rel->relid);
		params[0] = oid;
	}
	res = catalog_exec(c, rel->relid ? describe_by_oid : describe_by_name, rel->relid ? 1 : 2,
			params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) == 0) {
		if (res && PQresultStatus(res) != PGRES_TUPLES_OK)
			log_kv(LOG_WARN, "could not look up table in the catalog", "table", table_name(tn, sizeof(tn), rel->schema, rel->table), "error", PQresultErrorMessage(res), NULL);
		PQclear(res);
		/* dropped since: its domains may still be there */
		catalog_basetypes(c, rel);
		return -1;
	}
	if (rel->natts == 0) {
		rel->natts = PQntuples(res);
		rel->cols = xcalloc((size_t) rel->natts, sizeof(*rel->cols));
		rel->replident = PQgetvalue(res, 0, F_REPLIDENT)[0];
		for (i = 0; i < rel->natts; i++) {
			rel->cols[i].name = xstrdup(PQgetvalue(res, i, F_NAME));
			rel->cols[i].typoid = (uint32_t) strtoul(PQgetvalue(res, i, F_TYPOID), NULL, 10);
			rel->cols[i].ident = in_identity(res, i, rel->replident);
		}
	}
	for (i = 0; i < rel->natts; i++) {
		struct column *col = &rel->cols[i];

		row = find_col(res, col->name);
		/* a catalog ahead of the stream (column retyped or dropped since) names nothing */
		if (row < 0 || strtoul(PQgetvalue(res, row, F_TYPOID), NULL, 10) != col->typoid)
			continue;
		/* pgoutput's: named from the stream's typmods (catalog_typnames) */
		if (!rel->relid) {
			free(col->typname);
			col->typname = xstrdup(PQgetvalue(res, row, F_TYPNAME));
		}
		col->pk = flag(res, row, F_PK);
	}
	PQclear(res);
	catalog_basetypes(c, rel);
	rel_derive_key(rel);
	return 0;
}
