/*
 * Snapshots: the content of tables as "read" events, chunk by chunk
 * between watermarks (chunk.c), while the stream goes on. What is asked
 * and how far each table got lives in the table pgcdc.snapshot_progress,
 * one row per slot and table, updated once a chunk's transaction is
 * acknowledged; a restarted pg-capture continues from there. Asked by
 * --snapshot (every published table, once per slot), --snapshot-table, or
 * a logical message with prefix "pgcdc.snapshot" (again, on demand).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "snapshot.h"
#include "../lib/exitcode.h"
#include "../lib/log.h"
#include "../lib/util.h"

#define CHUNK_BYTES (2 << 20)	/* aim for chunks of about this much row data */
#define OUT_LOW (2 << 20)		/* read a chunk only when less output than this waits */
#define REPORT_MS 10000

/*
 * One statement string, one transaction: the lock keeps two pg-captures
 * starting together apart. What exists is not created again (CREATE ... IF
 * NOT EXISTS would need the right to create it even then): a role may be
 * given the schema, or the table, by its owner.
 */
static const char progress_ddl[] =
	"SELECT pg_catalog.pg_advisory_xact_lock(4242, 1);"
	"DO $pgcdc$ BEGIN"
	" IF pg_catalog.to_regnamespace('pgcdc') IS NULL THEN CREATE SCHEMA pgcdc; END IF;"
	" IF pg_catalog.to_regclass('pgcdc.snapshot_progress') IS NULL THEN"
	" CREATE TABLE pgcdc.snapshot_progress ("
	" slot_name name NOT NULL, schema_name name NOT NULL, table_name name NOT NULL,"
	" snapshot text NOT NULL, after_key text[], after_page bigint,"
	" rows_done bigint NOT NULL DEFAULT 0, done boolean NOT NULL DEFAULT false,"
	" requested timestamptz NOT NULL DEFAULT now(), updated timestamptz NOT NULL DEFAULT now(),"
	" PRIMARY KEY (slot_name, schema_name, table_name));"
	" END IF; END $pgcdc$";

/* Ask for a table once: an existing row (finished or not) stays as it is. */
static const char ask_sql[] =
	"INSERT INTO pgcdc.snapshot_progress (slot_name, schema_name, table_name, snapshot)"
	" VALUES ($1, $2, $3, pg_catalog.pg_current_wal_lsn()::text) ON CONFLICT DO NOTHING";

/* Ask again (a signal): a new snapshot unless this one (its LSN) was seen already. */
static const char again_sql[] =
	"INSERT INTO pgcdc.snapshot_progress AS p (slot_name, schema_name, table_name, snapshot)"
	" VALUES ($1, $2, $3, $4) ON CONFLICT (slot_name, schema_name, table_name) DO UPDATE"
	" SET snapshot = $4, after_key = NULL, after_page = NULL, rows_done = 0, done = false,"
	" requested = now(), updated = now() WHERE p.snapshot <> $4 RETURNING 1";

/* A table's schema and name from a name as SQL takes it (quoted, qualified, or on the search path). */
static const char resolve_sql[] =
	"SELECT n.nspname, c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n"
	" ON n.oid = c.relnamespace WHERE c.oid = pg_catalog.to_regclass($1)";

static const char load_sql[] =
	"SELECT schema_name, table_name, snapshot, after_page, rows_done,"
	" after_key::text"
	" FROM pgcdc.snapshot_progress WHERE slot_name = $1 AND NOT done ORDER BY requested, 1, 2";

static const char save_sql[] =
	"UPDATE pgcdc.snapshot_progress SET after_key = $5::text[], after_page = $6, rows_done = $7,"
	" done = $8, updated = now()"
	" WHERE slot_name = $1 AND schema_name = $2 AND table_name = $3 AND snapshot = $4";

void
snap_log_error(struct capture *c, const struct snap_table *t, const char *what, PGresult *res)
{
	char tn[512];
	char err[256];

	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	bool denied = state && strcmp(state, "42501") == 0;

	snprintf(err, sizeof(err), "%s", res ? PQresultErrorMessage(res) : "no connection");
	err[strcspn(err, "\n")] = '\0';
	log_kv(LOG_ERROR, what, "slot", c->opt.slot, "table", t ? table_name(tn, sizeof(tn), t->schema, t->table) : NULL,
			"error", err, "hint", denied ? "GRANT SELECT on the published tables to the role pg-capture connects as" :
			NULL, NULL);
	/* trying again cannot help until someone grants it: status 5, as for any missing permission */
	if (denied && !c->fatal)
		c->fatal = EXIT_AUTH;
}

static PGresult *
exec3(struct capture *c, const char *sql, const char *a, const char *b, const char *d)
{
	const char *p[3] = {a, b, d};

	return catalog_exec(c, sql, d ? 3 : b ? 2 : a ? 1 : 0, p, NULL, NULL, 0);
}

static bool
ok(PGresult *res)
{
	ExecStatusType st = PQresultStatus(res);

	return st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK;
}

/*
 * Does pgcdc.snapshot_progress exist? With create, make it when it does
 * not. Returns 1 (it is there), 0 (it is not), or -1 (logged).
 */
static int
have_table(struct capture *c, struct snapshot *s, bool create)
{
	PGresult *res;

	if (s->have_table)
		return 1;
	res = exec3(c, "SELECT pg_catalog.to_regclass('pgcdc.snapshot_progress') IS NOT NULL", NULL, NULL, NULL);
	s->have_table = ok(res) && PQgetvalue(res, 0, 0)[0] == 't';
	PQclear(res);
	if (s->have_table || !create)
		return s->have_table;
	res = catalog_conn(c) ? PQexec(catalog_conn(c), progress_ddl) : NULL;
	if (!ok(res)) {
		snap_log_error(c, NULL, "could not create the snapshot progress table pgcdc.snapshot_progress", res);
		PQclear(res);
		return -1;
	}
	PQclear(res);
	s->have_table = true;
	return 1;
}

static void
progress_free(struct snap_progress *p)
{
	free(p->schema);
	free(p->table);
	free(p->snapid);
	free(p->key);
	free(p);
}

/* Forget what describe() found; the next chunk describes the table again. */
static void
forget_description(struct snap_table *t)
{
	int i;

	for (i = 0; t->qcol && t->rel && i < t->rel->natts; i++)
		PQfreemem(t->qcol[i]);
	free(t->qcol);
	free(t->sql);
	free(t->filter);
	free(t->qname);
	free(t->kcol);
	rel_free(t->rel);
	t->qcol = NULL, t->sql = t->filter = t->qname = NULL, t->kcol = NULL, t->rel = NULL;
	t->nkcol = 0;
	t->stale = t->anew = false;
}

/* Start the table from its first row again. */
void
snap_forget_position(struct snap_table *t)
{
	int i;

	for (i = 0; t->key && i < t->nkey; i++)
		free(t->key[i]);
	free(t->key);
	t->key = NULL;
	t->nkey = 0;
}

static void
table_free(struct snap_table *t)
{
	forget_description(t);
	snap_forget_position(t);
	free(t->schema);
	free(t->table);
	free(t->snapid);
	sha256_free(&t->idstart);
	free(t);
}

/* Parse a text[] of key values ("{a,\"b c\"}") as text[]::text writes it. */
static void
parse_key(struct snap_table *t, const char *s)
{
	struct buf v = {0};
	const char *p = s + 1;
	bool quoted;

	if (!s || s[0] != '{')
		return;
	while (*p && *p != '}') {
		v.len = 0;
		quoted = *p == '"';
		for (p += quoted; *p && (quoted ? *p != '"' : *p != ',' && *p != '}'); p++) {
			if (*p == '\\' && p[1])
				p++;
			buf_putc(&v, *p);
		}
		p += quoted && *p == '"';
		buf_putc(&v, '\0');
		t->key = xrealloc(t->key, (size_t) (t->nkey + 1) * sizeof(*t->key));
		t->key[t->nkey++] = xstrdup(v.data);
		if (*p == ',')
			p++;
	}
	buf_free(&v);
}

/* Queue a table (replacing its earlier entry: a snapshot asked again starts over). */
static void
enqueue(struct capture *c, struct snapshot *s, const char *schema, const char *table,
		const char *snapid, const char *page, const char *rows, const char *key)
{
	char tn[512];
	struct snap_table *t = xcalloc(1, sizeof(*t)), **pp, *old;

	for (pp = &s->head; (old = *pp); pp = &old->next)
		if (strcmp(old->schema, schema) == 0 && strcmp(old->table, table) == 0) {
			if (old == s->head)
				chunk_abandon(s);
			*pp = old->next;
			if (s->tail == old)
				s->tail = NULL;
			table_free(old);
			break;
		}
	if (!s->tail)
		for (s->tail = s->head; s->tail && s->tail->next; s->tail = s->tail->next)
			;
	t->schema = xstrdup(schema);
	t->table = xstrdup(table);
	t->snapid = xstrdup(snapid);
	t->page = page && *page ? strtoll(page, NULL, 10) : 0;
	t->rows = rows && *rows ? strtoll(rows, NULL, 10) : 0;
	parse_key(t, key);
	if (s->tail)
		s->tail->next = t;
	else
		s->head = t;
	s->tail = t;
	log_kv(LOG_INFO, t->rows ? "snapshot resumes" : "snapshot asked", "slot", c->opt.slot,
			"table", table_name(tn, sizeof(tn), schema, table), "snapshot", snapid, "rows_done", rows, NULL);
}

/* The unfinished snapshots of this slot, from the progress table. */
static int
load(struct capture *c, struct snapshot *s)
{
	PGresult *res = exec3(c, load_sql, c->opt.slot, NULL, NULL);
	int i;

	if (!ok(res)) {
		snap_log_error(c, NULL, "could not read pgcdc.snapshot_progress", res);
		PQclear(res);
		return -1;
	}
	for (i = 0; i < PQntuples(res); i++)
		enqueue(c, s, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), PQgetvalue(res, i, 2),
				PQgetvalue(res, i, 3), PQgetvalue(res, i, 4),
				PQgetisnull(res, i, 5) ? NULL : PQgetvalue(res, i, 5));
	PQclear(res);
	return 0;
}

enum { D_RELKIND, D_RELTUPLES, D_NAME, D_TYPOID, D_TYPNAME, D_PK, D_RI, D_REPLIDENT,
	D_PUBLISHED, D_FILTER, D_PKPOS, D_RIPOS };

/*
 * The columns to read: those the stream sends (the publication's column
 * list, no generated columns before PostgreSQL 18), typed, with the
 * primary key and replica identity, and the publication's row filter.
 */
static PGresult *
describe_query(struct capture *c, struct snap_table *t)
{
	PGconn *conn = catalog_conn(c);
	int v = conn ? PQserverVersion(conn) : 0;
	bool pgo = c->opt.plugin == PLUGIN_PGOUTPUT;
	char sql[2048];

	if (!conn)
		return NULL;
	snprintf(sql, sizeof(sql),
			"SELECT c.relkind, c.reltuples, a.attname, a.atttypid,"
			" pg_catalog.format_type(a.atttypid, a.atttypmod),"
			" coalesce(a.attnum = ANY (p.indkey), false), coalesce(a.attnum = ANY (r.indkey), false),"
			" c.relreplident, %s, %s,"
			" pg_catalog.array_position(p.indkey::int2[], a.attnum) - pg_catalog.array_lower(p.indkey::int2[], 1),"
			" pg_catalog.array_position(r.indkey::int2[], a.attnum) - pg_catalog.array_lower(r.indkey::int2[], 1)"
			" FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
			" JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped"
			" LEFT JOIN pg_catalog.pg_index p ON p.indrelid = c.oid AND p.indisprimary"
			" LEFT JOIN pg_catalog.pg_index r ON r.indrelid = c.oid AND r.indisreplident"
			" %s WHERE n.nspname = $1 AND c.relname = $2 AND %s AND %s ORDER BY a.attnum",
			pgo ? "pt.pubname IS NOT NULL" : "true",
			pgo && v >= 150000 ? "pt.rowfilter" : "NULL",
			pgo ? "LEFT JOIN pg_catalog.pg_publication_tables pt ON pt.pubname = $3"
				" AND pt.schemaname = n.nspname AND pt.tablename = c.relname" : "",
			pgo && v >= 150000 ? "(pt.attnames IS NULL OR a.attname = ANY (pt.attnames))" : "true",
			(pgo && v >= 180000) || v < 120000 ? "true" : "a.attgenerated = ''");
	return exec3(c, sql, t->schema, t->table, pgo ? c->opt.publication : NULL);
}

static bool
dflag(PGresult *res, int row, int field)
{
	return PQgetvalue(res, row, field)[0] == 't';
}

/* The keyset's columns in the index's order: the primary key, else the identity index. */
static void
choose_source(struct snap_table *t, PGresult *res)
{
	int field = -1, pos, i, n = PQntuples(res);

	for (i = 0; i < n && field < 0; i++)
		if (dflag(res, i, D_PK))
			field = D_PK;
	for (i = 0; i < n && field < 0; i++)
		if (t->rel->replident == 'i' && dflag(res, i, D_RI))
			field = D_RI;
	t->src = field < 0 ? &snap_pages : &snap_keyset;
	if (field < 0)
		return;
	t->kcol = xcalloc((size_t) n, sizeof(*t->kcol));
	for (pos = 0; t->nkcol < n; pos++) {
		int found = -1;

		for (i = 0; i < n; i++)
			if (dflag(res, i, field) && atoi(PQgetvalue(res, i, field == D_PK ? D_PKPOS : D_RIPOS)) == pos)
				found = i;
		if (found < 0)
			break;
		t->kcol[t->nkcol++] = found;
	}
}

static void
build_sql(struct capture *c, struct snap_table *t, char relkind)
{
	PGconn *conn = catalog_conn(c);
	struct buf b = {0};
	char *q;
	int i;

	q = PQescapeIdentifier(conn, t->schema, strlen(t->schema));
	buf_puts(&b, q);
	PQfreemem(q);
	buf_putc(&b, '.');
	q = PQescapeIdentifier(conn, t->table, strlen(t->table));
	buf_puts(&b, q);
	PQfreemem(q);
	buf_putc(&b, '\0');
	t->qname = xstrdup(b.data);
	b.len = 0;
	t->qcol = xcalloc((size_t) t->rel->natts, sizeof(*t->qcol));
	buf_puts(&b, t->src->first_col > 0 ? "SELECT ctid::text" : "SELECT ");
	for (i = 0; i < t->rel->natts; i++) {
		t->qcol[i] = PQescapeIdentifier(conn, t->rel->cols[i].name, strlen(t->rel->cols[i].name));
		buf_printf(&b, "%s%s", i || t->src->first_col ? ", " : "", t->qcol[i]);
	}
	/* a partitioned table's rows are its partitions'; an inheritance parent's are its own */
	buf_printf(&b, " FROM %s%s", relkind == 'p' ? "" : "ONLY ", t->qname);
	/*
	 * The statement's snapshot, once (an InitPlan in a one-time filter),
	 * kept in a setting that the next statement of the same query string
	 * reads (chunk.c): it is the snapshot that reads the rows, taken after
	 * the statement's locks, so a table rewritten (ALTER TABLE) or
	 * truncated by a transaction that commits while we wait for its lock
	 * is not seen as empty. Not a column of every row: that cost the
	 * server about a twentieth of its time.
	 */
	buf_puts(&b, " WHERE (SELECT pg_catalog.set_config('" SNAPSHOT_SETTING "', "
			"pg_catalog.txid_current_snapshot()::text, false)) IS NOT NULL");
	if (t->filter)
		buf_printf(&b, " AND (%s)", t->filter);
	buf_putc(&b, '\0');
	t->sql = xstrdup(b.data);
	buf_free(&b);
}

/* Describe the head table. Returns 0, 1 when there is nothing to read (logged), -1 to retry. */
static int
describe(struct capture *c, struct snap_table *t)
{
	char tn[512];
	PGresult *res = describe_query(c, t);
	struct relation *rel;
	int i, n;

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		snap_log_error(c, t, "could not describe a table to snapshot", res);
		PQclear(res);
		return -1;
	}
	n = PQntuples(res);
	if (n == 0 || !dflag(res, 0, D_PUBLISHED)) {
		log_kv(LOG_WARN, n ? "table to snapshot is not in the publication: not read" :
				"table to snapshot does not exist: not read", "slot", c->opt.slot,
				"table", table_name(tn, sizeof(tn), t->schema, t->table), "publication",
				c->opt.plugin == PLUGIN_PGOUTPUT ? c->opt.publication : NULL, NULL);
		PQclear(res);
		return 1;
	}
	rel = t->rel = xcalloc(1, sizeof(*rel));
	rel->schema = xstrdup(t->schema);
	rel->table = xstrdup(t->table);
	rel->replident = PQgetvalue(res, 0, D_REPLIDENT)[0];
	rel->natts = n;
	rel->cols = xcalloc((size_t) n, sizeof(*rel->cols));
	for (i = 0; i < n; i++) {
		struct column *col = &rel->cols[i];

		col->name = xstrdup(PQgetvalue(res, i, D_NAME));
		col->typoid = (uint32_t) strtoul(PQgetvalue(res, i, D_TYPOID), NULL, 10);
		col->typname = xstrdup(PQgetvalue(res, i, D_TYPNAME));
		col->pk = dflag(res, i, D_PK);
		col->ident = rel->replident == 'f' || (rel->replident == 'i' && dflag(res, i, D_RI)) ||
				(rel->replident == 'd' && col->pk);
	}
	t->estimate = strtod(PQgetvalue(res, 0, D_RELTUPLES), NULL);
	metric_set_labelled(M_SNAP_ESTIMATE, snapshot_table(c), NULL, t->estimate);
	if (!PQgetisnull(res, 0, D_FILTER))
		t->filter = xstrdup(PQgetvalue(res, 0, D_FILTER));
	choose_source(t, res);
	build_sql(c, t, PQgetvalue(res, 0, D_RELKIND)[0]);
	PQclear(res);
	catalog_basetypes(c, rel);
	rel_derive_key(rel);
	rel_prepare_json(rel);
	if (t->src != &snap_keyset && !t->said_pages && (t->said_pages = true))
		log_kv(LOG_WARN, "table has no primary key or replica identity index: read by pages, "
				"a chunk read again whenever the table changes meanwhile", "slot", c->opt.slot,
				"table", table_name(tn, sizeof(tn), t->schema, t->table), NULL);
	return 0;
}

/* The keyset position as a text[] literal ("{\"a\",\"b\"}"), or NULL; owned by the caller. */
char *
snap_key_literal(const struct snap_table *t)
{
	struct buf b = {0};
	const char *p;
	char *r;
	int i;

	if (!t->key)
		return NULL;
	buf_putc(&b, '{');
	for (i = 0; i < t->nkey; i++) {
		buf_puts(&b, i ? ",\"" : "\"");
		for (p = t->key[i]; *p; p++) {
			if (*p == '"' || *p == '\\')
				buf_putc(&b, '\\');
			buf_putc(&b, *p);
		}
		buf_putc(&b, '"');
	}
	buf_putlit(&b, "}");
	buf_putc(&b, '\0');
	r = xstrdup(b.data);
	buf_free(&b);
	return r;
}

/* Rows per chunk: about CHUNK_BYTES of them, from the size of the last full chunk. */
void
snap_adapt_limit(struct capture *c, struct snapshot *s)
{
	const struct snap_chunk *k = &s->chunk;
	size_t bytes = 0, want;
	int r, i;

	if (c->opt.snapshot_chunk || k->nrows != k->limit)
		return;
	for (r = 0; r < k->nrows; r++)
		for (i = s->head->src->first_col; i < PQnfields(k->res); i++)
			bytes += (size_t) PQgetlength(k->res, r, i) + 8;
	want = CHUNK_BYTES / (bytes / (size_t) k->nrows + 1);
	s->limit = want < 16 ? 16 : want > 100000 ? 100000 : (int) want;
}

/* Remember t's position, to be stored once the commit at after is acknowledged (0: at once). */
static void
progress_push(struct snapshot *s, const struct snap_table *t, lsn_t after, bool done)
{
	struct snap_progress *p = xcalloc(1, sizeof(*p));

	p->after = after;
	p->schema = xstrdup(t->schema);
	p->table = xstrdup(t->table);
	p->snapid = xstrdup(t->snapid);
	p->key = snap_key_literal(t);
	p->page = t->page;
	p->rows = t->rows;
	p->done = done;
	if (s->prog_tail)
		s->prog_tail->next = p;
	else
		s->prog = p;
	s->prog_tail = p;
}

static double
rate(const struct snap_table *t, int64_t now)
{
	double secs = (double) (now - t->started_ms) / 1000.0;

	return secs > 0 ? (double) (t->rows - t->rows_at_start) / secs : 0;
}

/* A progress line every REPORT_MS; on a terminal, a live bar too. */
static void
report(struct capture *c, struct snapshot *s, int64_t now, bool force)
{
	char tn[512];
	struct snap_table *t = s->head;
	char rows[24], est[24], rps[24], pct[16];

	if (!t || !t->started_ms)
		return;
	snprintf(rows, sizeof(rows), "%lld", (long long) t->rows);
	snprintf(est, sizeof(est), "%.0f", t->estimate);
	snprintf(rps, sizeof(rps), "%.0f", rate(t, now));
	snprintf(pct, sizeof(pct), "%.1f", t->estimate > 0 ? 100.0 * (double) t->rows / t->estimate : 0);
	if (s->tty)
		fprintf(stderr, "\033[Ksnapshot %s.%s: %s of ~%s rows (%s%%), %s rows/s\r", t->schema, t->table,
				rows, t->estimate > 0 ? est : "?", pct, rps);
	if (!force && now < s->next_report)
		return;
	s->next_report = now + REPORT_MS;
	log_kv(LOG_INFO, "snapshot progress", "slot", c->opt.slot, "table", table_name(tn, sizeof(tn), t->schema, t->table),
			"rows", rows, "estimate", t->estimate >= 0 ? est : NULL, "percent", t->estimate > 0 ? pct : NULL,
			"rows_per_s", rps, NULL);
}

/* The head table is read through: log it, forget it. */
void
snap_table_done(struct capture *c, struct snapshot *s, lsn_t after)
{
	char tn[512];
	struct snap_table *t = s->head;
	int64_t now = now_ms();
	char rows[24], secs[24], rps[24];

	chunk_abandon(s);
	progress_push(s, t, after, true);
	snprintf(rows, sizeof(rows), "%lld", (long long) t->rows);
	snprintf(secs, sizeof(secs), "%.1f", t->started_ms ? (double) (now - t->started_ms) / 1000.0 : 0.0);
	snprintf(rps, sizeof(rps), "%.0f", t->started_ms ? rate(t, now) : 0.0);
	if (s->tty)
		fputs("\033[K", stderr);
	log_kv(LOG_INFO, "snapshot of table done", "slot", c->opt.slot, "table", table_name(tn, sizeof(tn), t->schema, t->table), "snapshot", t->snapid, "rows", rows, "seconds", secs, "rows_per_s", rps, NULL);
	s->head = t->next;
	if (s->tail == t)
		s->tail = NULL;
	table_free(t);
}

/* Is a chunk to be read now? (The loop does not wait while one is.) */
bool
snapshot_ready(const struct capture *c)
{
	const struct snapshot *s = c->snap;

	return s && s->head && !s->chunk.active && !s->reading && now_ms() >= s->retry_at &&
			buf_pending(&c->out) < OUT_LOW;
}

/* The socket a chunk's answer comes on while one is read, else -1. */
int
snapshot_socket(const struct capture *c)
{
	return c->snap && c->snap->reading ? PQsocket(c->snap->conn) : -1;
}

/*
 * Must the stream wait? While a chunk is read and none waits for its high
 * watermark: the chunk's window is to be open before the stream goes on.
 */
bool
snapshot_holds(const struct capture *c)
{
	return c->snap && c->snap->reading && !c->snap->chunk.active;
}

static void
chunk_result(struct capture *c, struct snapshot *s, int rc, int64_t now)
{
	if (rc == 1)
		snap_table_done(c, s, 0);
	else if (rc < 0) {
		/* a column dropped or renamed since, perhaps: describe the table again */
		s->head->stale = true;
		s->retry_at = now + 1000;
	}
	else
		report(c, s, now, false);
}

/* Read the next chunk when none is in flight. */
void
snapshot_tick(struct capture *c)
{
	struct snapshot *s = c->snap;
	struct snap_table *t;
	int64_t now = now_ms();
	int rc;

	if (s && s->reading && s->chunk.active) {
		if (chunk_take_in(c, s) < 0)
			chunk_result(c, s, -1, now);
		return;
	}
	if (s && s->reading) {
		rc = chunk_receive(c, s, s->head);
		if (!s->reading)
			chunk_result(c, s, rc, now);
		return;
	}
	if (!snapshot_ready(c))
		return;
	t = s->head;
	if (t->stale)
		forget_description(t);
	if (!t->rel && (rc = describe(c, t)) != 0) {
		if (rc > 0)
			snap_table_done(c, s, 0);
		else
			s->retry_at = now + 5000;
		return;
	}
	if (!t->started_ms) {
		t->started_ms = now;
		t->rows_at_start = t->rows;
		s->next_report = now + REPORT_MS;
	}
	if ((rc = chunk_send(c, s, t)) != 0)
		chunk_result(c, s, rc, now);
}

/*
 * A watermark from the stream. The chunk's low one opens its window; its
 * high one returns true: the chunk's rows go out now (snapshot_next_row),
 * and the next chunk is read meanwhile (or already, read ahead). A chunk
 * is read again instead when the stream described its table anew in the
 * window (a column added, say: its rows lack it), and a table without a
 * key when it changed in the window (thrice at most, then delivered as
 * read). Others' watermarks are ignored.
 */
bool
snapshot_watermark(struct capture *c, const char *content, size_t len)
{
	struct snapshot *s = c->snap;
	struct snap_chunk *k = s ? &s->chunk : NULL;
	struct snap_table *t;

	if (!k || !k->active)
		return false;
	if (len == strlen(k->low) && memcmp(content, k->low, len) == 0) {
		k->low_seen = true;
		return false;
	}
	if (len != strlen(k->high) || memcmp(content, k->high, len) != 0)
		return false;
	t = s->head;
	if (t->anew && t->retries < 3) {
		/* the stream described the table anew in the window: the rows were read as it was */
		t->retries++;
		chunk_abandon(s);
		return false;
	}
	if (t->src != &snap_keyset && k->changed && t->retries < 3) {
		t->retries++;
		chunk_clear(k);
		return false;
	}
	t->retries = 0;
	if (!k->ahead)
		chunk_move_on(c, s, t);
	return true;
}

/* The chunk went out in the transaction committed at commit_lsn: remember how far the table got. */
void
snapshot_chunk_emitted(struct capture *c, lsn_t commit_lsn)
{
	struct snapshot *s = c->snap;
	struct snap_chunk *k = &s->chunk;
	struct snap_table *t = s->head;
	bool last = k->last;
	int64_t before = t->rows;
	int r;

	for (r = 0; r < k->nrows; r++)
		t->rows += !k->dropped[r];
	metric_add(metric_series(M_SNAP_ROWS, snapshot_table(c), NULL), (double) (t->rows - before));
	chunk_clear(k);
	if (last)
		snap_table_done(c, s, commit_lsn);
	else {
		progress_push(s, t, commit_lsn, false);
		report(c, s, now_ms(), false);
	}
}

const char *
snapshot_table(struct capture *c)
{
	struct snapshot *s = c->snap;

	if (!s || !s->head)
		return NULL;
	return table_name(s->head_name, sizeof(s->head_name), s->head->schema, s->head->table);
}

int
snapshot_tables_pending(const struct capture *c)
{
	const struct snap_table *t;
	int n = 0;

	for (t = c->snap ? c->snap->head : NULL; t; t = t->next)
		n++;
	return n;
}

/* One name of a request: resolved as SQL would (to_regclass), then asked again. */
static void
request_one(struct capture *c, struct snapshot *s, lsn_t lsn, const char *name)
{
	char snapid[LSN_BUFSZ];
	const char *p[4];
	PGresult *res;

	res = exec3(c, resolve_sql, name, NULL, NULL);
	if (!ok(res) || PQntuples(res) != 1) {
		log_kv(LOG_WARN, "snapshot asked for a table that does not exist: ignored", "slot", c->opt.slot,
				"table", name, NULL);
		PQclear(res);
		return;
	}
	lsn_format(lsn, snapid);
	p[0] = c->opt.slot, p[1] = PQgetvalue(res, 0, 0), p[2] = PQgetvalue(res, 0, 1), p[3] = snapid;
	{
		PGresult *up = catalog_exec(c, again_sql, 4, p, NULL, NULL, 0);

		if (!ok(up))
			snap_log_error(c, NULL, "could not record a snapshot request", up);
		else if (PQntuples(up) == 1)
			enqueue(c, s, p[1], p[2], snapid, NULL, NULL, NULL);
		PQclear(up);
	}
	PQclear(res);
}

/*
 * A logical message "pgcdc.snapshot" (committed at lsn): the tables it
 * names, separated by commas, are read again. The message's position is
 * the new snapshot's identity, so seeing it again after a restart changes
 * nothing.
 */
void
snapshot_request(struct capture *c, lsn_t lsn, const char *content, size_t len)
{
	struct snapshot *s = c->snap;
	char *list, *name, *save = NULL;

	if (!s || have_table(c, s, true) < 0)
		return;
	list = xmalloc(len + 1);
	memcpy(list, content, len);
	list[len] = '\0';
	for (name = strtok_r(list, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
		size_t n;

		name += strspn(name, " \t\n");
		for (n = strlen(name); n > 0 && strchr(" \t\n", name[n - 1]); n--)
			name[n - 1] = '\0';
		if (*name)
			request_one(c, s, lsn, name);
	}
	free(list);
}

/* Ask for tables at start: every published one (--snapshot), and those named. */
static int
ask(struct capture *c)
{
	bool pgo = c->opt.plugin == PLUGIN_PGOUTPUT;
	PGresult *res, *r;
	int i, rc = 0;

	res = c->opt.snapshot ? exec3(c, pgo ?
			"SELECT schemaname, tablename FROM pg_catalog.pg_publication_tables"
			" WHERE pubname = $1 AND schemaname <> 'pgcdc' ORDER BY 1, 2" :
			"SELECT n.nspname, c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n"
			" ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND c.relpersistence = 'p'"
			" AND n.nspname NOT IN ('information_schema', 'pgcdc') AND n.nspname NOT LIKE 'pg\\_%'"
			" ORDER BY 1, 2", pgo ? c->opt.publication : NULL, NULL, NULL) : NULL;
	if (c->opt.snapshot && !ok(res)) {
		snap_log_error(c, NULL, "could not list the tables to snapshot", res);
		rc = EXIT_RUNTIME;
	}
	for (i = 0; rc == 0 && res && i < PQntuples(res); i++) {
		r = exec3(c, ask_sql, c->opt.slot, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
		rc = ok(r) ? 0 : (snap_log_error(c, NULL, "could not record a snapshot request", r), EXIT_RUNTIME);
		PQclear(r);
	}
	PQclear(res);
	for (i = 0; rc == 0 && i < c->opt.nsnapshot_tables; i++) {
		res = exec3(c, resolve_sql, c->opt.snapshot_tables[i], NULL, NULL);
		if (!ok(res) || PQntuples(res) != 1) {
			log_kv(LOG_ERROR, "table to snapshot does not exist", "slot", c->opt.slot,
					"table", c->opt.snapshot_tables[i], NULL);
			rc = EXIT_USAGE;
		} else {
			r = exec3(c, ask_sql, c->opt.slot, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1));
			rc = ok(r) ? 0 : (snap_log_error(c, NULL, "could not record a snapshot request", r), EXIT_RUNTIME);
			PQclear(r);
		}
		PQclear(res);
	}
	return rc;
}

/*
 * At the first connection: record what --snapshot and --snapshot-table ask
 * and load what this slot has not finished. Returns 0 or an exit status.
 */
int
snapshot_start(struct capture *c)
{
	bool asked = c->opt.snapshot || c->opt.nsnapshot_tables;
	struct snapshot *s;
	PGconn *conn;
	int rc;

	if (c->snap)
		return 0;
	s = c->snap = xcalloc(1, sizeof(*s));
	s->limit = c->opt.snapshot_chunk ? c->opt.snapshot_chunk : 1000;
	s->tty = isatty(STDERR_FILENO) == 1;
	if (!(conn = catalog_conn(c)))
		return asked ? EXIT_UNAVAILABLE : 0;
	/* a slot just created has no snapshots: rows under its name are a dropped namesake's */
	if (c->slot_created) {
		snapshot_forget(c);
		c->slot_created = false;
	}
	if (asked && c->opt.plugin == PLUGIN_PGOUTPUT && PQserverVersion(conn) < 140000) {
		log_kv(LOG_ERROR, "snapshots need logical decoding messages, which pgoutput sends from PostgreSQL 14 on",
				"slot", c->opt.slot, "hint", "use PostgreSQL 14 or later, or --plugin wal2json", NULL);
		return EXIT_SERVERCONF;
	}
	if ((rc = have_table(c, s, asked)) <= 0)
		return rc < 0 ? EXIT_AUTH : 0;
	if ((rc = ask(c)) != 0)
		return rc;
	return load(c, s) < 0 ? EXIT_RUNTIME : 0;
}

/* Store the progress of chunks whose transactions are acknowledged now. */
void
snapshot_confirmed(struct capture *c)
{
	struct snapshot *s = c->snap;
	struct snap_progress *p;
	char page[24], rows[24];
	const char *v[8];
	PGresult *res;

	while (s && (p = s->prog) && (p->after == 0 || c->confirmed > p->after)) {
		snprintf(page, sizeof(page), "%lld", (long long) p->page);
		snprintf(rows, sizeof(rows), "%lld", (long long) p->rows);
		v[0] = c->opt.slot, v[1] = p->schema, v[2] = p->table, v[3] = p->snapid;
		v[4] = p->key, v[5] = page, v[6] = rows, v[7] = p->done ? "true" : "false";
		res = catalog_exec(c, save_sql, 8, v, NULL, NULL, 0);
		if (!ok(res)) {
			snap_log_error(c, NULL, "could not store snapshot progress, will try again", res);
			PQclear(res);
			return;
		}
		PQclear(res);
		s->prog = p->next;
		if (!s->prog)
			s->prog_tail = NULL;
		progress_free(p);
	}
}

/*
 * The connection was lost: the chunk in flight is read again later, on a
 * new connection that follows the replication one (after a failover, to
 * the new primary).
 */
void
snapshot_reset(struct capture *c)
{
	if (!c->snap)
		return;
	chunk_abandon(c->snap);
	PQfinish(c->snap->conn);
	c->snap->conn = NULL;
}

void
snapshot_free(struct capture *c)
{
	struct snapshot *s = c->snap;
	struct snap_table *t;

	if (!s)
		return;
	while ((t = s->head)) {
		s->head = t->next;
		table_free(t);
	}
	s->tail = NULL;
	chunk_abandon(s);
	PQfinish(s->conn);
	sha256_free(&s->idhash);
	free(s->seen);
	while (s->prog) {
		struct snap_progress *p = s->prog;

		s->prog = p->next;
		progress_free(p);
	}
	free(s);
	c->snap = NULL;
}

/* --drop-slot: the slot's snapshot progress goes with it, so a new slot of that name starts afresh. */
void
snapshot_forget(struct capture *c)
{
	struct snapshot s = {0};
	PGresult *res;

	if (have_table(c, &s, false) != 1)
		return;
	res = exec3(c, "DELETE FROM pgcdc.snapshot_progress WHERE slot_name = $1", c->opt.slot, NULL, NULL);
	if (!ok(res))
		snap_log_error(c, NULL, "could not delete the slot's rows from pgcdc.snapshot_progress", res);
	PQclear(res);
}

/* The stream describes a table anew (schema event): a snapshot reading it describes it again too. */
void
snapshot_schema(struct capture *c, const struct relation *rel)
{
	struct snapshot *s = c->snap;

	if (s && s->head && strcmp(s->head->schema, rel->schema) == 0 &&
			strcmp(s->head->table, rel->table) == 0)
		s->head->stale = s->head->anew = true;
}
