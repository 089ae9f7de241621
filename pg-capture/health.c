/*
 * The slot's health and the settings that decide it: at each connection,
 * --status-interval fitted under the server's wal_sender_timeout and a
 * warning when max_slot_wal_keep_size leaves retained WAL unbounded; then,
 * every --health-interval, the slot's wal_status, the WAL it holds back
 * and (16+, 17+) conflicting, failover, synced and invalidation_reason, logged at
 * start and whenever they change (retained WAL: when it doubles past 64 MB
 * or falls back under it). A failover slot (17+) gets a warning when the
 * server's synchronized_standby_slots is empty.
 */
#include <stdlib.h>
#include <string.h>

#include "capture.h"
#include "../lib/log.h"
#include "../lib/util.h"

#define RETAINED_LOG_MIN (64LL << 20)
#define METRICS_HEALTH_MS 5000	/* polled this often at least when metrics are exported: lag in bytes */

/* A setting's value in milliseconds (wal_sender_timeout), or -1. */
static long
setting_ms(PGconn *conn, const char *name)
{
	const char *v = PQparameterStatus(conn, name);
	PGresult *res = NULL;
	char sql[256];
	long ms = -1;

	if (!v) {
		snprintf(sql, sizeof(sql), "SELECT setting::bigint * CASE unit WHEN 's' THEN 1000 "
				"WHEN 'min' THEN 60000 ELSE 1 END FROM pg_catalog.pg_settings WHERE name = '%s'", name);
		res = PQexec(conn, sql);
		if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
			v = PQgetvalue(res, 0, 0);
	}
	if (v)
		ms = strtol(v, NULL, 10);
	PQclear(res);
	return ms;
}

/*
 * A failover slot (17+) on a primary whose synchronized_standby_slots is
 * empty: nothing holds the slot back until the standbys have the WAL, so a
 * consumer can get what a standby that takes over never received.
 */
static void
check_standby_slots(struct capture *c)
{
	PGresult *res;

	/* a standby's synchronised slot: the setting is its primary's business */
	if (!c->slot_failover || PQserverVersion(c->conn) < 170000 ||
			strcmp(PQparameterStatus(c->conn, "in_hot_standby") ?: "", "on") == 0)
		return;
	res = PQexec(c->conn, "SHOW synchronized_standby_slots");
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && !*PQgetvalue(res, 0, 0))
		log_kv(LOG_WARN, "synchronized_standby_slots is empty: consumers can get ahead of the standbys",
				"slot", c->opt.slot, "hint", "set it on the primary to the standbys' physical slots; "
				"without it, after a failover the new primary may lack transactions already delivered, "
				"and its synchronised slot may be behind them (they are sent again: at-least-once)", NULL);
	PQclear(res);
}

/*
 * On the replication connection, before streaming: fit --status-interval
 * under wal_sender_timeout (when not given), and warn when
 * max_slot_wal_keep_size is unset.
 */
void
health_settings(struct capture *c)
{
	long timeout = setting_ms(c->conn, "wal_sender_timeout");
	char a[32], b[32];

	if (timeout > 0 && c->opt.status_interval_ms > timeout / 3) {
		int fit = (int) (timeout / 3 > 100 ? timeout / 3 : 100);

		snprintf(a, sizeof(a), "%.1f", timeout / 1000.0);
		snprintf(b, sizeof(b), "%.2f", fit / 1000.0);
		/* warnings once: reconnections (a standby's, every second) say nothing new */
		if (c->opt.status_interval_set && !c->settings_said)
			log_kv(LOG_WARN, "--status-interval is more than a third of the server's wal_sender_timeout: "
					"a pause in reading may lose the connection", "wal_sender_timeout_s", a, NULL);
		else if (!c->opt.status_interval_set) {
			c->opt.status_interval_ms = fit;
			log_kv(LOG_INFO, "status interval fitted under the server's wal_sender_timeout",
					"wal_sender_timeout_s", a, "status_interval_s", b, NULL);
		}
	}
	if (!c->settings_said && PQserverVersion(c->conn) >= 130000 &&
			setting_ms(c->conn, "max_slot_wal_keep_size") < 0)
		log_kv(LOG_WARN, "max_slot_wal_keep_size is unset: a stalled pipeline makes the server keep WAL "
				"until its disk is full", "slot", c->opt.slot,
				"hint", "set max_slot_wal_keep_size, and watch the retained WAL pg-capture logs", NULL);
	/* a new timeline is another server (promoted): its settings are its own */
	if (!c->settings_said || c->timeline != c->settings_tli)
		check_standby_slots(c);
	c->settings_said = true;
	c->settings_tli = c->timeline;
}

/* A band of retained bytes: 0 under 64 MB, then 1, 2, 3... per doubling. */
static int
retained_band(long long bytes)
{
	int band = 0;

	while (bytes >= RETAINED_LOG_MIN) {
		band++;
		bytes /= 2;
	}
	return band;
}

/* The slot's health, every --health-interval on the plain connection; logged when it changes. */
void
health_tick(struct capture *c, int64_t now)
{
	const char *slot = c->opt.slot;
	PGresult *res;
	PGconn *cat;
	char sql[1024], mb[32], state[160];
	int v, band;
	long long bytes;

	int interval = c->opt.health_interval_ms;
	lsn_t server;

	if (c->opt.metrics.file || c->opt.metrics.listen)
		interval = interval && interval < METRICS_HEALTH_MS ? interval : METRICS_HEALTH_MS;
	if (!interval || now < c->next_health || !(cat = catalog_conn(c)))
		return;
	c->next_health = now + interval;
	v = PQserverVersion(cat);
	snprintf(sql, sizeof(sql), "SELECT %s, pg_catalog.pg_wal_lsn_diff(w.lsn, restart_lsn)::bigint, "
			"%s, %s, %s, %s, w.lsn FROM pg_catalog.pg_replication_slots, "
			"(SELECT CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_last_wal_replay_lsn() "
			"ELSE pg_catalog.pg_current_wal_lsn() END AS lsn) w WHERE slot_name = $1",
			v >= 130000 ? "wal_status" : "''", v >= 160000 ? "conflicting::text" : "''",
			v >= 170000 ? "synced::text" : "''", v >= 170000 ? "coalesce(invalidation_reason, '')" : "''",
			v >= 170000 ? "failover::text" : "''");
	res = catalog_exec(c, sql, 1, &slot, NULL, NULL, 0);
	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		PQclear(res);
		return;
	}
	bytes = atoll(PQgetvalue(res, 0, 1));
	metric_set(M_RETAINED_WAL, (double) bytes);
	if (*PQgetvalue(res, 0, 0))
		metric_set_labelled(M_WAL_STATUS, PQgetvalue(res, 0, 0), NULL, 1);
	if (lsn_parse(PQgetvalue(res, 0, 6), strlen(PQgetvalue(res, 0, 6)), &server) == 0)
		metric_set(M_SERVER_LSN, (double) server);
	if (!c->opt.health_interval_ms) {	/* polled for the metrics only */
		PQclear(res);
		return;
	}
	band = retained_band(bytes);
	snprintf(state, sizeof(state), "%s|%s|%s|%s|%s", PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 2),
			PQgetvalue(res, 0, 3), PQgetvalue(res, 0, 4), PQgetvalue(res, 0, 5));
	if (!c->health_state || strcmp(state, c->health_state) != 0 || band != c->health_band) {
		bool bad = strcmp(PQgetvalue(res, 0, 0), "lost") == 0 || strcmp(PQgetvalue(res, 0, 0), "unreserved") == 0 ||
				strcmp(PQgetvalue(res, 0, 2), "true") == 0 || *PQgetvalue(res, 0, 4);

		snprintf(mb, sizeof(mb), "%.1f", bytes / 1048576.0);
		log_kv(bad ? LOG_WARN : band > c->health_band && c->health_state ? LOG_WARN : LOG_INFO,
				"slot health", "slot", slot,
				"wal_status", *PQgetvalue(res, 0, 0) ? PQgetvalue(res, 0, 0) : NULL,
				"retained_mb", mb,
				"conflicting", *PQgetvalue(res, 0, 2) ? PQgetvalue(res, 0, 2) : NULL,
				"failover", *PQgetvalue(res, 0, 5) ? PQgetvalue(res, 0, 5) : NULL,
				"synced", *PQgetvalue(res, 0, 3) ? PQgetvalue(res, 0, 3) : NULL,
				"invalidation_reason", *PQgetvalue(res, 0, 4) ? PQgetvalue(res, 0, 4) : NULL, NULL);
		free(c->health_state);
		c->health_state = xstrdup(state);
		c->health_band = band;
	}
	PQclear(res);
}
