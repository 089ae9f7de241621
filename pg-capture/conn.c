/*
 * Connections: the replication connection (slot checks and creation,
 * START_REPLICATION, status updates) and the plain one for catalog look-ups.
 * Failures are sorted into those a retry can heal and those a person must
 * fix, each with its exit status and a line saying what to do.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "capture.h"
#include "../lib/exitcode.h"
#include "../lib/log.h"
#include "../lib/util.h"

/*
 * Session settings that make values' text forms independent of the
 * server's, the database's and the role's defaults (ALTER DATABASE/ROLE
 * ... SET): every setting an output function reads. Options given in the
 * connection take precedence over both. pg-capture(1) lists them.
 * search_path decides how regclass and the other reg* types print names.
 */
#define SESSION_OPTIONS "-c datestyle=ISO,MDY -c intervalstyle=postgres -c extra_float_digits=3 " \
	"-c timezone=UTC -c bytea_output=hex -c lc_monetary=C -c search_path=\"$user\",public"

/* The server's notices and warnings as log lines; libpq would print them raw. */
static void
on_notice(void *arg, const PGresult *res)
{
	const struct capture *c = arg;
	const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);

	log_kv(sev && strcmp(sev, "WARNING") == 0 ? LOG_WARN : LOG_INFO, "server notice",
			"slot", c->opt.slot, "severity", sev,
			"error", PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY),
			"detail", PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL),
			"hint", PQresultErrorField(res, PG_DIAG_MESSAGE_HINT), NULL);
}

static PGconn *
connect_db(struct capture *c, bool replication)
{
	const char *keys[6], *vals[6];
	char *user_opts = NULL, *opts;
	PQconninfoOption *parsed, *o;
	PGconn *conn;
	int n = 0;

	/* keep the user's own "options", put ours after them */
	parsed = c->opt.dbname ? PQconninfoParse(c->opt.dbname, NULL) : NULL;
	for (o = parsed; o && o->keyword; o++)
		if (strcmp(o->keyword, "options") == 0 && o->val)
			user_opts = o->val;
	if (!user_opts)
		user_opts = getenv("PGOPTIONS");
	opts = xmalloc((user_opts ? strlen(user_opts) : 0) + sizeof(SESSION_OPTIONS) + 2);
	sprintf(opts, "%s%s%s", user_opts ? user_opts : "", user_opts ? " " : "", SESSION_OPTIONS);

	keys[n] = "dbname", vals[n++] = c->opt.dbname ? c->opt.dbname : "";
	if (replication)
		keys[n] = "replication", vals[n++] = "database";
	keys[n] = "fallback_application_name", vals[n++] = "pg-capture";
	keys[n] = "client_encoding", vals[n++] = "UTF8";
	keys[n] = "options", vals[n++] = opts;
	keys[n] = NULL, vals[n] = NULL;
	conn = PQconnectdbParams(keys, vals, 1);
	free(opts);
	PQconninfoFree(parsed);
	PQsetNoticeReceiver(conn, on_notice, c);
	/*
	 * SQL_ASCII is converted to nothing, only checked: a byte that is not
	 * UTF-8 would end the stream. Taken as it is, it becomes U+FFFD here.
	 */
	if (PQstatus(conn) == CONNECTION_OK &&
			strcmp(PQparameterStatus(conn, "server_encoding") ?: "", "SQL_ASCII") == 0)
		PQsetClientEncoding(conn, "SQL_ASCII");
	return conn;
}

/* The first line of a libpq error, without its trailing newline. */
static char *
first_line(const char *msg, char *out, size_t outsz)
{
	size_t n = strcspn(msg, "\n");

	if (n >= outsz)
		n = outsz - 1;
	memcpy(out, msg, n);
	out[n] = '\0';
	return out;
}

static int
fail(struct capture *c, int code, const char *msg, const char *error, const char *hint)
{
	log_kv(LOG_ERROR, msg, "slot", c->opt.slot, "error", error, "hint", hint, NULL);
	return code;
}

/* Sort a failed connection attempt: an exit status, or -1 to retry. */
static int
classify_connect(struct capture *c, PGconn *conn)
{
	char err[512];
	const char *m = first_line(PQerrorMessage(conn), err, sizeof(err));

	if (strstr(m, "password authentication failed") || strstr(m, "no pg_hba.conf entry") ||
			strstr(m, "authentication failed") || strstr(m, "no password supplied"))
		return fail(c, EXIT_AUTH, "could not connect to server: authentication failed", m,
				"check the user and the password (PGPASSWORD or ~/.pgpass) and pg_hba.conf");
	if (strstr(m, "must be superuser or replication role") || strstr(m, "permission denied"))
		return fail(c, EXIT_AUTH, "could not connect to server: permission denied", m,
				"the role needs the REPLICATION attribute: ALTER ROLE name REPLICATION");
	if (strstr(m, "does not exist") && (strstr(m, "role") || strstr(m, "database")))
		return fail(c, EXIT_AUTH, "could not connect to server", m,
				"check the user and database names in the connection string");
	log_kv(LOG_WARN, "could not connect to server, will reconnect", "slot", c->opt.slot,
			"error", m, NULL);
	return -1;
}

/* Sort a failed command by SQLSTATE: an exit status, or -1 to retry. */
static int
classify_result(struct capture *c, PGresult *res, const char *what)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
	char err[512], msg[128];

	snprintf(err, sizeof(err), "%s%s%s", primary ? primary : PQresultErrorMessage(res),
			detail ? ": " : "", detail ? detail : "");
	snprintf(msg, sizeof(msg), "could not %s", what);
	if (!state)
		state = "";
	if (strcmp(state, "42704") == 0 && strstr(err, "replication slot"))
		return fail(c, EXIT_NOSLOT, msg, err, "create it with --create-slot");
	if (strcmp(state, "42704") == 0 && strstr(err, "publication"))
		return fail(c, EXIT_SERVERCONF, msg, err,
				"create the publication (CREATE PUBLICATION name FOR ALL TABLES) or use --create-slot");
	if (strcmp(state, "55006") == 0) {
		/* another pg-capture streams it (a standby copy waits here): said once, then tried every second */
		log_kv(c->busy_said ? LOG_DEBUG : LOG_WARN, "replication slot is in use, will take it when it is free",
				"slot", c->opt.slot, "error", err, NULL);
		c->slot_busy = c->busy_said = true;
		return -1;
	}
	/* a standby's synchronised slot (17+): usable once it is promoted */
	if (strcmp(state, "55000") == 0 && strstr(err, "being synchronized"))
		return log_kv(LOG_WARN, "replication slot is synchronised from a primary: this server is a standby, "
				"will reconnect", "slot", c->opt.slot, "error", err,
				"hint", "add target_session_attrs=primary to the connection string with every host", NULL), -1;
	if (strstr(err, "invalidated") || strstr(err, "cannot read from logical replication slot"))
		return fail(c, EXIT_SLOTLOST, msg, err,
				"the slot lost WAL it needed (max_slot_wal_keep_size): drop it, create it again and resynchronise consumers");
	if (strstr(err, "output_plugin_libraries") || strstr(err, "not allowed as an output plugin") ||
			(strstr(err, "output plugin") && strcmp(state, "42501") == 0))
		return fail(c, EXIT_SERVERCONF, msg, err,
				"add the plugin to output_plugin_libraries in postgresql.conf and reload");
	if (strcmp(state, "58P01") == 0) {
		char hint[128];

		snprintf(hint, sizeof(hint), "install the output plugin on the server (e.g. apt-get install postgresql-%d-wal2json)",
				PQserverVersion(c->conn) / 10000);
		return fail(c, EXIT_SERVERCONF, msg, err, hint);
	}
	if (strstr(err, "wal_level"))
		return fail(c, EXIT_SERVERCONF, msg, err,
				"set wal_level = logical in postgresql.conf and restart the server");
	if (strcmp(state, "42501") == 0 || strncmp(state, "28", 2) == 0)
		return fail(c, EXIT_AUTH, msg, err, "grant the role REPLICATION or use a role that has it");
	if (strncmp(state, "08", 2) == 0 || strncmp(state, "57", 2) == 0 || !*state) {
		log_kv(LOG_WARN, "lost the connection, will reconnect", "slot", c->opt.slot, "error", err, NULL);
		return -1;
	}
	return fail(c, EXIT_RUNTIME, msg, err, NULL);
}

/* Run a simple query; on failure classify it. Returns the result or NULL with *rc set. */
static PGresult *
run(struct capture *c, const char *sql, ExecStatusType want, const char *what, int *rc)
{
	PGresult *res = PQexec(c->conn, sql);

	if (PQresultStatus(res) == want)
		return res;
	*rc = res ? classify_result(c, res, what) : -1;
	if (!res)
		log_kv(LOG_WARN, "lost the connection, will reconnect", "error", PQerrorMessage(c->conn), NULL);
	PQclear(res);
	return NULL;
}

static char *
quote_ident(struct capture *c, const char *s)
{
	char *q = PQescapeIdentifier(c->conn, s, strlen(s));
	char *r = xstrdup(q ? q : "\"\"");

	PQfreemem(q);
	return r;
}

static char *
quote_literal(struct capture *c, const char *s)
{
	char *q = PQescapeLiteral(c->conn, s, strlen(s));
	char *r = xstrdup(q ? q : "''");

	PQfreemem(q);
	return r;
}

static const char *
plugin_name(const struct capture *c)
{
	return c->opt.plugin == PLUGIN_WAL2JSON ? "wal2json" : "pgoutput";
}

static int
check_wal_level(struct capture *c)
{
	int rc = -1;
	PGresult *res = run(c, "SHOW wal_level", PGRES_TUPLES_OK, "read wal_level", &rc);

	if (!res)
		return rc;
	if (strcmp(PQgetvalue(res, 0, 0), "logical") != 0) {
		char err[96];

		snprintf(err, sizeof(err), "wal_level is \"%s\"", PQgetvalue(res, 0, 0));
		PQclear(res);
		return fail(c, EXIT_SERVERCONF, "logical decoding is not enabled on the server", err,
				"set wal_level = logical in postgresql.conf and restart the server");
	}
	PQclear(res);
	return 0;
}

static int
create_slot(struct capture *c)
{
	char *slot = quote_ident(c, c->opt.slot), sql[512];
	PGresult *res;
	int rc = 0;

	snprintf(sql, sizeof(sql), "CREATE_REPLICATION_SLOT %s LOGICAL %s%s", slot, plugin_name(c),
			c->opt.failover ? " (FAILOVER)" : "");
	free(slot);
	res = run(c, sql, PGRES_TUPLES_OK, "create replication slot", &rc);
	if (!res)
		return rc;
	log_kv(LOG_INFO, "created replication slot", "slot", c->opt.slot, "plugin", plugin_name(c),
			"lsn", PQgetvalue(res, 0, 1), "failover", c->opt.failover ? "true" : NULL, NULL);
	PQclear(res);
	c->slot_created = true;
	return 0;
}

static int
ensure_publication(struct capture *c)
{
	char *lit = quote_literal(c, c->opt.publication), *ident, sql[1024];
	PGresult *res;
	int rc = 0, found;

	if (c->opt.plugin != PLUGIN_PGOUTPUT) {
		free(lit);
		return 0;
	}
	snprintf(sql, sizeof(sql), "SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = %s", lit);
	free(lit);
	res = run(c, sql, PGRES_TUPLES_OK, "look up publication", &rc);
	if (!res)
		return rc;
	found = PQntuples(res);
	PQclear(res);
	if (found)
		return 0;
	if (!c->opt.create_slot)
		return fail(c, EXIT_SERVERCONF, "publication does not exist", c->opt.publication,
				"create it (CREATE PUBLICATION name FOR ALL TABLES) or use --create-slot");
	ident = quote_ident(c, c->opt.publication);
	snprintf(sql, sizeof(sql), "CREATE PUBLICATION %s FOR ALL TABLES", ident);
	free(ident);
	res = run(c, sql, PGRES_COMMAND_OK, "create publication", &rc);
	if (!res)
		return rc;
	PQclear(res);
	log_kv(LOG_INFO, "created publication for all tables", "publication", c->opt.publication, NULL);
	return 0;
}

/* --failover needs failover slots: PostgreSQL 17 or later. */
static int
check_failover_version(struct capture *c)
{
	int v = PQserverVersion(c->conn);
	char err[64];

	if (!c->opt.failover || v >= 170000)
		return 0;
	snprintf(err, sizeof(err), "server version %d.%d", v / 10000, v % 10000);
	return fail(c, EXIT_SERVERCONF, "--failover needs PostgreSQL 17 or later", err,
			"on an older server, after a failover create the slot again on the new primary and take a new snapshot");
}

/* --failover on an existing slot that is not a failover slot: turn it on (17+). */
static int
enable_failover(struct capture *c)
{
	char *slot = quote_ident(c, c->opt.slot), sql[512];
	PGresult *res;
	int rc = 0;

	snprintf(sql, sizeof(sql), "ALTER_REPLICATION_SLOT %s (FAILOVER true)", slot);
	free(slot);
	res = run(c, sql, PGRES_COMMAND_OK, "turn failover on for the replication slot", &rc);
	if (!res)
		return rc;
	PQclear(res);
	log_kv(LOG_INFO, "turned failover on for the replication slot: standbys will synchronise it",
			"slot", c->opt.slot, NULL);
	return 0;
}

/*
 * An invalidated slot: say why when the server tells (invalidation_reason,
 * PostgreSQL 17+; reason is "" before) and how to recover. Returns EXIT_SLOTLOST.
 */
static int
slot_lost(struct capture *c, const char *reason)
{
	static const struct {
		const char *reason, *why;
	} whys[] = {
		{"rows_removed", "the primary removed rows the slot still needed (hot_standby_feedback off on this standby)"},
		{"wal_level_insufficient", "wal_level on the primary was lowered below logical"},
		{"idle_timeout", "the slot was unused for longer than idle_replication_slot_timeout"},
	};
	const char *why = "the slot lost WAL it needed (max_slot_wal_keep_size)";
	char err[160], hint[320];
	size_t i;

	for (i = 0; i < sizeof(whys) / sizeof(whys[0]); i++)
		if (strcmp(reason, whys[i].reason) == 0)
			why = whys[i].why;
	snprintf(err, sizeof(err), "%s%s%s", c->opt.slot, *reason ? ": " : "", reason);
	snprintf(hint, sizeof(hint), "%s: drop it, create it again and resynchronise consumers", why);
	return fail(c, EXIT_SLOTLOST, "replication slot has been invalidated", err, hint);
}

/* Check the slot (creating it when asked); sets c->confirmed. */
static int
check_slot(struct capture *c)
{
	char *lit = quote_literal(c, c->opt.slot), sql[512];
	PGresult *res;
	int rc = 0;
	lsn_t flush;
	const char *v;

	/* wal_status is new in 13 (no slot is ever invalidated before), invalidation_reason in 17 */
	snprintf(sql, sizeof(sql), "SELECT plugin, confirmed_flush_lsn, %s, database, %s, %s"
			" FROM pg_catalog.pg_replication_slots WHERE slot_name = %s",
			PQserverVersion(c->conn) >= 130000 ? "wal_status" : "NULL",
			PQserverVersion(c->conn) >= 170000 ? "invalidation_reason" : "NULL",
			PQserverVersion(c->conn) >= 170000 ? "failover" : "false", lit);
	free(lit);
	res = run(c, sql, PGRES_TUPLES_OK, "look up replication slot", &rc);
	if (!res)
		return rc;
	if (PQntuples(res) == 0) {
		PQclear(res);
		if (!c->opt.create_slot || c->slot_ready)
			return fail(c, EXIT_NOSLOT, "replication slot does not exist", c->opt.slot,
					"create it with --create-slot");
		if ((rc = create_slot(c)) != 0)
			return rc;
		c->slot_ready = true;
		return check_slot(c);
	}
	if (c->opt.create_slot && !c->opt.if_not_exists && !c->slot_ready) {
		PQclear(res);
		return fail(c, EXIT_USAGE, "replication slot already exists", c->opt.slot,
				"use --if-not-exists to stream from it");
	}
	if (strcmp(PQgetvalue(res, 0, 0), plugin_name(c)) != 0) {
		char err[160];

		snprintf(err, sizeof(err), "slot uses plugin \"%s\"", PQgetvalue(res, 0, 0));
		PQclear(res);
		return fail(c, EXIT_USAGE, "replication slot has another output plugin", err,
				"run with --plugin matching the slot");
	}
	if (strcmp(PQgetvalue(res, 0, 2), "lost") == 0) {
		rc = slot_lost(c, PQgetvalue(res, 0, 4));
		PQclear(res);
		return rc;
	}
	v = PQgetvalue(res, 0, 1);
	if (lsn_parse(v, strlen(v), &flush) == 0 && flush > c->confirmed)
		c->confirmed = flush;
	c->slot_failover = strcmp(PQgetvalue(res, 0, 5), "t") == 0;
	PQclear(res);
	if (c->opt.failover && !c->slot_failover) {
		if ((rc = enable_failover(c)) != 0)
			return rc;
		c->slot_failover = true;
	}
	return 0;
}

/* Where timeline old ended in the history of timeline tli (TIMELINE_HISTORY); 0 when not in it. */
static int
timeline_switch(struct capture *c, uint32_t tli, uint32_t old, lsn_t *at)
{
	char sql[64], *end;
	const char *p, *l;
	PGresult *res;
	int rc = 0;

	*at = 0;
	snprintf(sql, sizeof(sql), "TIMELINE_HISTORY %u", tli);
	if (!(res = run(c, sql, PGRES_TUPLES_OK, "read the timeline history", &rc)))
		return rc;
	/* lines "parent_tli<TAB>switch_lsn<TAB>reason"; comments start with # */
	for (p = PQgetvalue(res, 0, 1); *p; p += strcspn(p, "\n"), p += *p == '\n') {
		if (strtoul(p, &end, 10) != old || end == p)
			continue;
		l = end + strspn(end, " \t");
		if (lsn_parse(l, strcspn(l, " \t\n"), at) < 0)
			*at = 0;
	}
	PQclear(res);
	return 0;
}

/*
 * After a failover (or a recovery to a point in time) the server is on a
 * new timeline, whose history left the old one at a switch point. What
 * this process wrote from beyond it is not in the new history: going on
 * would skip the new primary's own transactions at those positions, so
 * stop (the next run resumes from the slot, which is never past it).
 * Positions only confirmed (keepalives) are taken back to the switch.
 */
static int
check_timeline(struct capture *c)
{
	char err[160], sw[LSN_BUFSZ], wr[LSN_BUFSZ], was[16], now[16];
	PGresult *res;
	uint32_t tli;
	lsn_t at;
	int rc = 0;

	if (!(res = run(c, "IDENTIFY_SYSTEM", PGRES_TUPLES_OK, "identify the server", &rc)))
		return rc;
	tli = (uint32_t) strtoul(PQgetvalue(res, 0, 1), NULL, 10);
	PQclear(res);
	if (!c->timeline || tli == c->timeline) {
		c->timeline = tli;
		return 0;
	}
	if ((rc = timeline_switch(c, tli, c->timeline, &at)) != 0)
		return rc;
	lsn_format(at, sw);
	lsn_format(c->buffered_commit, wr);
	snprintf(was, sizeof(was), "%u", c->timeline);
	snprintf(now, sizeof(now), "%u", tli);
	log_kv(LOG_INFO, "the server is on a new timeline: a standby was promoted, or the server recovered",
			"slot", c->opt.slot, "timeline", now, "previous_timeline", was, "switch_lsn", sw, NULL);
	if (c->buffered_commit > at || (c->partial_commit != LSN_INVALID && c->partial_commit >= at)) {
		snprintf(err, sizeof(err), "written up to %s, the server's timeline %s left timeline %s at %s",
				wr, now, was, sw);
		return fail(c, EXIT_RUNTIME, "changes already written are not in the server's history", err,
				"the promoted standby never received them (set synchronized_standby_slots on the primary); "
				"start pg-capture again to resume from the slot");
	}
	if (c->confirmed > at)
		c->confirmed = at;
	if (c->idle_pos > at)
		c->idle_pos = at;
	c->received = c->confirmed;
	c->timeline = tli;
	return 0;
}

/*
 * Say once, at the first start, what this server cannot send that a newer
 * one would: pgoutput sends logical decoding messages from PostgreSQL 14 on,
 * and before 13 a publication cannot publish a partitioned table as itself.
 */
static void
log_server_limits(struct capture *c)
{
	int version = PQserverVersion(c->conn);
	char ver[16];
	PGresult *res;

	if (c->opt.plugin != PLUGIN_PGOUTPUT || version >= 140000)
		return;
	snprintf(ver, sizeof(ver), "%d.%d", version / 10000, version % 10000);
	log_kv(LOG_WARN, "pgoutput sends no logical decoding messages before PostgreSQL 14: no message events",
			"slot", c->opt.slot, "server_version", ver,
			"hint", "use PostgreSQL 14 or later, or --plugin wal2json", NULL);
	if (version >= 130000)
		return;
	res = PQexec(c->conn, "SELECT count(*) FROM pg_catalog.pg_class WHERE relkind = 'p'");
	if (PQresultStatus(res) == PGRES_TUPLES_OK && strcmp(PQgetvalue(res, 0, 0), "0") != 0)
		log_kv(LOG_INFO, "partitioned tables are published as their partitions",
				"slot", c->opt.slot, "server_version", ver, "partitioned_tables", PQgetvalue(res, 0, 0),
				"hint", "PostgreSQL 13 or later can publish them under their own name (publish_via_partition_root)", NULL);
	PQclear(res);
}

/* Enter COPY BOTH mode from the confirmed position; first: the process's first start. */
static int
start_streaming(struct capture *c, bool first)
{
	char *slot = quote_ident(c, c->opt.slot), *pub, sql[1024], lsn[LSN_BUFSZ];
	PGresult *res;
	int rc;

	/* before COPY BOTH mode, which takes no more queries */
	if (c->opt.stream_in_progress && PQserverVersion(c->conn) < 140000) {
		free(slot);
		snprintf(sql, sizeof(sql), "server version %d", PQserverVersion(c->conn) / 10000);
		return fail(c, EXIT_SERVERCONF, "--stream-in-progress needs PostgreSQL 14 or later", sql,
				"leave it out: big transactions then reach pg-capture once committed");
	}
	if (first)
		log_server_limits(c);
	lsn_format(c->confirmed, lsn);
	if (c->opt.plugin == PLUGIN_PGOUTPUT) {
		/* the option value is a list of identifiers */
		pub = PQescapeLiteral(c->conn, c->opt.publication, strlen(c->opt.publication));
		/* version 2 streams big transactions in progress (spool.c) */
		snprintf(sql, sizeof(sql), "START_REPLICATION SLOT %s LOGICAL %s (proto_version '%s', "
				"publication_names %s%s%s)", slot, lsn, c->opt.stream_in_progress ? "2" : "1",
				pub ? pub : "''", PQserverVersion(c->conn) >= 140000 ? ", messages 'true'" : "",
				c->opt.stream_in_progress ? ", streaming 'on'" : "");
		PQfreemem(pub);
	} else {
		/* numbers as strings (wal2json 2.6+): NaN and infinities would be null otherwise */
		snprintf(sql, sizeof(sql), "START_REPLICATION SLOT %s LOGICAL %s (\"format-version\" '2', "
				"\"include-xids\" '1', \"include-timestamp\" '1', \"include-lsn\" '1', "
				"\"include-pk\" '1', \"include-type-oids\" '1', \"include-transaction\" '1'%s)",
				slot, lsn, c->w2j_no_numeric_strings ? "" : ", \"numeric-data-types-as-string\" '1'");
	}
	free(slot);
	res = PQexec(c->conn, sql);
	if (PQresultStatus(res) != PGRES_COPY_BOTH && c->opt.plugin == PLUGIN_WAL2JSON &&
			!c->w2j_no_numeric_strings && strstr(PQresultErrorMessage(res), "numeric-data-types-as-string")) {
		/* the walsender takes commands again after a failed one */
		PQclear(res);
		c->w2j_no_numeric_strings = true;
		log_kv(LOG_WARN, "this wal2json sends NaN and infinite numbers as null, like NULL",
				"slot", c->opt.slot, "hint", "use wal2json 2.6 or later, or --plugin pgoutput, to keep them", NULL);
		return start_streaming(c, false);
	}
	if (PQresultStatus(res) != PGRES_COPY_BOTH) {
		rc = res ? classify_result(c, res, "start replication") : -1;
		PQclear(res);
		return rc;
	}
	PQclear(res);
	PQsetnonblocking(c->conn, 1);
	log_kv(LOG_INFO, "streaming", "slot", c->opt.slot, "plugin", plugin_name(c), "lsn", lsn, NULL);
	return 0;
}

/*
 * Text from the database is written as UTF-8 whatever its encoding:
 * pgoutput's is converted by the server (client_encoding), wal2json's by
 * recode.c. SQL_ASCII names no encoding to convert from.
 */
static int
check_encoding(struct capture *c)
{
	const char *enc = PQparameterStatus(c->conn, "server_encoding");

	if (!enc)
		return 0;
	if (strcmp(enc, "SQL_ASCII") == 0 && !c->slot_ready)
		log_kv(LOG_WARN, "database encoding is SQL_ASCII: bytes that are not UTF-8 are written as U+FFFD",
				"slot", c->opt.slot, NULL);
	return recode_open(c, enc);
}

/*
 * Connect, check the server and the slot (creating slot and publication
 * when asked) and, if start_streaming, enter COPY BOTH mode. Returns 0, an
 * exit status for failures a retry cannot heal, or -1 to retry later.
 */
int
conn_open(struct capture *c, bool start)
{
	bool first = !c->slot_ready;
	int rc;

	/* the catalog follows the replication connection to whichever server it reaches */
	PQfinish(c->cat);
	c->cat = NULL;
	c->conn = connect_db(c, true);
	if (PQstatus(c->conn) != CONNECTION_OK) {
		rc = classify_connect(c, c->conn);
		conn_close(c);
		return rc;
	}
	/*
	 * The publication before the slot: the slot decodes with the catalog as
	 * of each change, where a publication created after it does not exist
	 * yet for changes written in between ("publication does not exist").
	 */
	if ((rc = check_wal_level(c)) != 0 || (start && (rc = check_failover_version(c)) != 0) ||
			(start && (rc = check_timeline(c)) != 0) ||
			(start && (rc = check_encoding(c)) != 0) ||
			(start && c->opt.create_slot && (rc = ensure_publication(c)) != 0) ||
			(start && (rc = check_slot(c)) != 0) ||
			(start && !c->opt.create_slot && (rc = ensure_publication(c)) != 0) ||
			(start && (health_settings(c), 0)) ||
			(start && (rc = start_streaming(c, first)) != 0)) {
		conn_close(c);
		return rc;
	}
	c->slot_ready = true;
	return 0;
}

int
conn_drop_slot(struct capture *c)
{
	char *slot = quote_ident(c, c->opt.slot), sql[512];
	PGresult *res;
	int rc = 0;

	snprintf(sql, sizeof(sql), "DROP_REPLICATION_SLOT %s", slot);
	free(slot);
	res = run(c, sql, PGRES_COMMAND_OK, "drop replication slot", &rc);
	if (!res)
		return rc < 0 ? EXIT_UNAVAILABLE : rc;
	PQclear(res);
	log_kv(LOG_INFO, "dropped replication slot", "slot", c->opt.slot, NULL);
	return 0;
}

void
conn_close(struct capture *c)
{
	PQfinish(c->conn);
	c->conn = NULL;
}

static void
put64(char *p, uint64_t v)
{
	int i;

	for (i = 7; i >= 0; i--, v >>= 8)
		p[i] = (char) (v & 0xff);
}

/* Send a standby status update: received, and confirmed as flushed and applied. */
int
conn_send_status(struct capture *c, bool reply)
{
	char m[34];
	struct timeval tv;
	int64_t now;
	lsn_t write = c->received > c->confirmed ? c->received : c->confirmed;

	gettimeofday(&tv, NULL);
	now = ((int64_t) tv.tv_sec - PG_EPOCH_SECS) * 1000000 + tv.tv_usec;
	m[0] = 'r';
	put64(m + 1, write);
	put64(m + 9, c->confirmed);
	put64(m + 17, c->confirmed);
	put64(m + 25, (uint64_t) now);
	m[33] = reply;
	if (PQputCopyData(c->conn, m, sizeof(m)) <= 0 || PQflush(c->conn) < 0)
		return -1;
	if (log_enabled(LOG_DEBUG)) {
		char l[LSN_BUFSZ];

		lsn_format(c->confirmed, l);
		log_kv(LOG_DEBUG, "sent status", "slot", c->opt.slot, "flush", l, NULL);
	}
	return 0;
}

/* A new plain connection with the session settings, or NULL (logged); owned by the caller. */
PGconn *
conn_plain(struct capture *c, const char *what)
{
	PGconn *conn = connect_db(c, false);

	if (PQstatus(conn) != CONNECTION_OK) {
		char err[512], msg[96];

		snprintf(msg, sizeof(msg), "could not open %s connection", what);
		log_kv(LOG_WARN, msg, "error", first_line(PQerrorMessage(conn), err, sizeof(err)), NULL);
		PQfinish(conn);
		return NULL;
	}
	return conn;
}

/* The plain connection for catalog look-ups, opened on first use; NULL if it cannot be. */
PGconn *
catalog_conn(struct capture *c)
{
	if (c->offline)
		return NULL;
	if (c->cat && PQstatus(c->cat) == CONNECTION_OK)
		return c->cat;
	PQfinish(c->cat);
	c->cat = conn_plain(c, "catalog");
	return c->cat;
}

/* Sort the error that ended a stream: an exit status, or -1 to reconnect. */
int
conn_result_error(struct capture *c, PGresult *res, const char *what)
{
	return classify_result(c, res, what);
}

/*
 * The plain connection alone, for what acts and exits (--install-ddl-capture):
 * 0, or an exit status with the failure logged.
 */
int
conn_open_plain(struct capture *c)
{
	int rc;

	c->cat = connect_db(c, false);
	if (PQstatus(c->cat) == CONNECTION_OK)
		return 0;
	rc = classify_connect(c, c->cat);
	PQfinish(c->cat);
	c->cat = NULL;
	return rc < 0 ? EXIT_UNAVAILABLE : rc;
}
