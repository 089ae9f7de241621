/*
 * DDL capture. --install-ddl-capture puts into the database an event
 * trigger (ddl_command_end and sql_drop) whose function writes each DDL
 * command as a transactional logical message, prefix "pgcdc.ddl", its
 * content a JSON object built in the trigger: the command tag, the
 * object's type, identity, schema and table, the SQL text, and a table's
 * columns as the catalog has them at that point of the transaction. The
 * message travels in commit order with the data, and a DDL rolled back
 * never appears. The decoders hand such messages to tx.c, which writes
 * them as "ddl" events once ddl_parse has checked them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture.h"
#include "../lib/exitcode.h"
#include "../lib/jscan.h"
#include "../lib/log.h"
#include "../lib/utf8.h"
#include "../lib/util.h"

#define DDL_SCHEMA "pgcdc"

/*
 * One function for both events, SECURITY DEFINER with a fixed search_path:
 * it runs as the superuser who installed it, so every role's DDL is
 * captured even where pg_logical_emit_message is not granted to it, and
 * no role can slip its own functions under its name look-ups. Left out:
 * objects in schema pgcdc, temporary objects, and what an extension's
 * script creates (CREATE EXTENSION itself is captured). sql_drop writes
 * only for DROP commands (an ALTER TABLE ... DROP COLUMN is written by
 * ddl_command_end with the columns left), for the objects named and the
 * relations dropped with them by CASCADE.
 */
static const char install_sql[] =
	"SET client_min_messages = warning;\n"
	"CREATE SCHEMA IF NOT EXISTS " DDL_SCHEMA ";\n"
	"CREATE OR REPLACE FUNCTION " DDL_SCHEMA ".capture_ddl() RETURNS event_trigger\n"
	"LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$\n"
	"DECLARE\n"
	"	r record;\n"
	"	rel oid;\n"
	"	tab record;\n"
	"BEGIN\n"
	"	IF tg_event = 'sql_drop' THEN\n"
	"		IF tg_tag NOT LIKE 'DROP %' THEN\n"
	"			RETURN;\n"
	"		END IF;\n"
	"		FOR r IN SELECT * FROM pg_event_trigger_dropped_objects() d\n"
	"				WHERE (d.original OR (d.normal AND d.classid = 'pg_class'::regclass AND d.objsubid = 0))\n"
	"				  AND NOT d.is_temporary AND d.schema_name IS DISTINCT FROM '" DDL_SCHEMA "' LOOP\n"
	"			PERFORM pg_logical_emit_message(true, '" DDL_PREFIX "', json_strip_nulls(json_build_object(\n"
	"				'command', tg_tag, 'object_type', r.object_type, 'identity', r.object_identity,\n"
	"				'schema', r.schema_name,\n"
	"				'table', CASE WHEN r.object_type IN ('table', 'foreign table') THEN r.object_name END,\n"
	"				'sql', current_query()))::text);\n"
	"		END LOOP;\n"
	"		RETURN;\n"
	"	END IF;\n"
	"	FOR r IN SELECT * FROM pg_event_trigger_ddl_commands() d\n"
	"			WHERE NOT d.in_extension AND d.schema_name IS DISTINCT FROM '" DDL_SCHEMA "'\n"
	"			  AND coalesce(d.schema_name, '') !~ '^pg_temp'\n"
	"			  AND NOT (d.object_type = 'schema' AND d.object_identity = '" DDL_SCHEMA "') LOOP\n"
	"		rel := CASE WHEN r.classid = 'pg_class'::regclass THEN\n"
	"				coalesce((SELECT i.indrelid FROM pg_index i WHERE i.indexrelid = r.objid), r.objid)\n"
	"			WHEN r.classid = 'pg_trigger'::regclass THEN\n"
	"				(SELECT t.tgrelid FROM pg_trigger t WHERE t.oid = r.objid)\n"
	"			WHEN r.classid = 'pg_policy'::regclass THEN\n"
	"				(SELECT p.polrelid FROM pg_policy p WHERE p.oid = r.objid) END;\n"
	"		SELECT c.relname, c.relpersistence INTO tab FROM pg_class c\n"
	"			WHERE c.oid = rel AND c.relkind IN ('r', 'p', 'f');\n"
	"		CONTINUE WHEN tab.relpersistence = 't';\n"
	"		PERFORM pg_logical_emit_message(true, '" DDL_PREFIX "', json_strip_nulls(json_build_object(\n"
	"			'command', r.command_tag, 'object_type', r.object_type, 'identity', r.object_identity,\n"
	"			'schema', r.schema_name, 'table', tab.relname, 'sql', current_query(),\n"
	"			'columns', CASE WHEN tab.relname IS NOT NULL THEN (\n"
	"				SELECT json_agg(json_build_object('name', a.attname,\n"
	"						'type', format_type(a.atttypid, a.atttypmod), 'not_null', a.attnotnull,\n"
	"						'primary_key', coalesce(a.attnum = ANY (i.indkey), false)) ORDER BY a.attnum)\n"
	"				FROM pg_attribute a\n"
	"				LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary\n"
	"				WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped) END))::text);\n"
	"	END LOOP;\n"
	"END\n"
	"$fn$;\n"
	"DROP EVENT TRIGGER IF EXISTS pgcdc_ddl_command_end;\n"
	"CREATE EVENT TRIGGER pgcdc_ddl_command_end ON ddl_command_end\n"
	"	EXECUTE FUNCTION " DDL_SCHEMA ".capture_ddl();\n"
	"DROP EVENT TRIGGER IF EXISTS pgcdc_sql_drop;\n"
	"CREATE EVENT TRIGGER pgcdc_sql_drop ON sql_drop EXECUTE FUNCTION " DDL_SCHEMA ".capture_ddl();\n";

/* The schema goes only when nothing else is left in it. */
static const char uninstall_sql[] =
	"SET client_min_messages = warning;\n"
	"DROP EVENT TRIGGER IF EXISTS pgcdc_ddl_command_end;\n"
	"DROP EVENT TRIGGER IF EXISTS pgcdc_sql_drop;\n"
	"DROP FUNCTION IF EXISTS " DDL_SCHEMA ".capture_ddl();\n"
	"DO $$BEGIN\n"
	"	DROP SCHEMA IF EXISTS " DDL_SCHEMA ";\n"
	"EXCEPTION WHEN dependent_objects_still_exist THEN NULL;\n"
	"END$$;\n"
	"SELECT count(*) FROM pg_catalog.pg_namespace WHERE nspname = '" DDL_SCHEMA "';\n";

/*
 * Run the script on a plain connection. Returns the result of its last
 * statement (the caller clears it), or NULL with the exit status in *rc
 * and one line logged.
 */
static PGresult *
run_script(struct capture *c, const char *sql, const char *what, int *rc)
{
	PGresult *res;
	const char *state, *primary;
	char msg[96];

	if ((*rc = conn_open_plain(c)) != 0)
		return NULL;
	res = PQexec(c->cat, sql);
	if (PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK)
		return res;
	state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	snprintf(msg, sizeof(msg), "could not %s DDL capture", what);
	if (state && strcmp(state, "42501") == 0) {
		log_kv(LOG_ERROR, msg, "error", primary, "hint",
				"event triggers need a superuser (on a managed service its admin role: see pg-capture(1))",
				NULL);
		*rc = EXIT_AUTH;
	} else {
		log_kv(LOG_ERROR, msg, "error", primary ? primary : PQerrorMessage(c->cat), NULL);
		*rc = PQstatus(c->cat) == CONNECTION_OK ? EXIT_RUNTIME : EXIT_UNAVAILABLE;
	}
	PQclear(res);
	return NULL;
}

/* --install-ddl-capture: 0, or an exit status (one line logged). */
int
ddl_install(struct capture *c)
{
	int rc, version;
	char ver[16];
	PGresult *res = run_script(c, install_sql, "install", &rc);

	if (!res)
		return rc;
	PQclear(res);
	log_kv(LOG_INFO, "installed DDL capture", "schema", DDL_SCHEMA,
			"event_triggers", "pgcdc_ddl_command_end,pgcdc_sql_drop", NULL);
	version = PQserverVersion(c->cat);
	if (version < 140000) {
		snprintf(ver, sizeof(ver), "%d.%d", version / 10000, version % 10000);
		log_kv(LOG_WARN, "pgoutput sends no logical decoding messages before PostgreSQL 14: no ddl events with it",
				"server_version", ver, "hint", "use PostgreSQL 14 or later, or --plugin wal2json", NULL);
	}
	return 0;
}

/* --uninstall-ddl-capture: 0, or an exit status (one line logged). */
int
ddl_uninstall(struct capture *c)
{
	int rc;
	PGresult *res = run_script(c, uninstall_sql, "uninstall", &rc);

	if (!res)
		return rc;
	log_kv(LOG_INFO, "uninstalled DDL capture", "schema", DDL_SCHEMA, NULL);
	if (PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "0") != 0)
		log_kv(LOG_INFO, "schema kept: it holds other objects", "schema", DDL_SCHEMA, NULL);
	PQclear(res);
	return 0;
}

void
ddl_free(struct ddl *d)
{
	free(d->schema);
	free(d->table);
	buf_free(&d->body);
	memset(d, 0, sizeof(*d));
}

/*
 * Write v into out without the blanks between tokens, strings decoded and
 * written again (escaped as every line is: buf_put_jstr), using tmp.
 * Returns 0, or -1 when v is malformed or nested deeper than 8.
 */
static int
put_compact(struct buf *out, struct buf *tmp, const struct jtok *v, int depth)
{
	bool obj = v->type == J_OBJECT, first = true;
	struct jtok k, e;
	struct jiter it;
	int rc;

	switch (v->type) {
	case J_STRING:
		tmp->len = 0;
		if (jstr_decode(v, tmp) < 0)
			return -1;
		buf_put_jstr(out, tmp->data ? tmp->data : "", tmp->len);
		return 0;
	case J_OBJECT:
	case J_ARRAY:
		if (depth > 8 || jiter_begin(&it, v) < 0)
			return -1;
		buf_putc(out, obj ? '{' : '[');
		while ((rc = obj ? jiter_member(&it, &k, &e) : jiter_elem(&it, &e)) == 1) {
			if (!first)
				buf_putc(out, ',');
			first = false;
			if (obj && put_compact(out, tmp, &k, depth + 1) < 0)
				return -1;
			if (obj)
				buf_putc(out, ':');
			if (put_compact(out, tmp, &e, depth + 1) < 0)
				return -1;
		}
		buf_putc(out, obj ? '}' : ']');
		return rc;
	case J_NONE:
		return -1;
	default:
		buf_put(out, v->p, v->n);
		return 0;
	}
}

/* A member's name as decoded text in tmp, NUL-terminated; -1 when malformed or holding a NUL. */
static int
member_name(struct buf *tmp, const struct jtok *k)
{
	tmp->len = 0;
	if (jstr_decode(k, tmp) < 0 || memchr(tmp->data ? tmp->data : "", '\0', tmp->len))
		return -1;
	buf_putc(tmp, '\0');
	return 0;
}

static bool
reserved(const char *name)
{
	static const char *const names[] = {"op", "id", "lsn", "xid", "ts"};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(name, names[i]) == 0)
			return true;
	return false;
}

/*
 * Check the content of a "pgcdc.ddl" message and take it apart into d:
 * "schema" and "table" (strings) apart, every other member compacted into
 * d->body. It must be valid UTF-8, one JSON object and nothing else, with
 * a "command" string and none of the members every event line has
 * itself. Returns 0 (d owned by the caller: ddl_free), or -1 (d empty).
 */
int
ddl_parse(const char *p, size_t n, struct ddl *d)
{
	struct buf name = {0}, tmp = {0};
	struct jtok obj, k, v;
	struct jiter it;
	size_t pos = 0;
	bool command = false;
	char **slot;
	int rc = -1;

	memset(d, 0, sizeof(*d));
	if (!utf8_valid(p, n) || jscan_value(p, n, &pos, &obj) < 0 || obj.type != J_OBJECT)
		goto done;
	while (pos < n && (p[pos] == ' ' || p[pos] == '\t' || p[pos] == '\n' || p[pos] == '\r'))
		pos++;
	if (pos != n || jiter_begin(&it, &obj) < 0)
		goto done;
	while ((rc = jiter_member(&it, &k, &v)) == 1) {
		rc = -1;
		if (member_name(&name, &k) < 0 || reserved(name.data))
			goto done;
		slot = strcmp(name.data, "schema") == 0 ? &d->schema :
				strcmp(name.data, "table") == 0 ? &d->table : NULL;
		if (slot) {
			if (*slot || v.type != J_STRING || member_name(&tmp, &v) < 0)
				goto done;
			*slot = xstrdup(tmp.data);
			continue;
		}
		command |= strcmp(name.data, "command") == 0 && v.type == J_STRING;
		buf_putc(&d->body, ',');
		buf_put_jstr(&d->body, name.data, name.len - 1);
		buf_putc(&d->body, ':');
		if (put_compact(&d->body, &tmp, &v, 1) < 0)
			goto done;
	}
	if (rc == 0 && !command)
		rc = -1;
done:
	if (rc < 0)
		ddl_free(d);
	buf_free(&name);
	buf_free(&tmp);
	return rc;
}
