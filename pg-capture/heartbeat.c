/*
 * --heartbeat: every so often a logical message, prefix "pgcdc.heartbeat"
 * and the slot's name as content, written in its own transaction on the
 * plain connection. It comes back through the slot like any change, is
 * written as a "heartbeat" event, and travels down the pipeline: the age
 * of the last heartbeat delivered says the whole pipeline is alive. Its
 * commit is acknowledged like any other, so a quiet database's slot moves
 * too.
 */
#include <string.h>

#include "capture.h"
#include "../lib/log.h"
#include "../lib/util.h"

/* Write the next heartbeat if it is due; a failure is logged once per outage. */
void
heartbeat_tick(struct capture *c, int64_t now)
{
	const char *slot = c->opt.slot;
	PGresult *res;

	if (!c->opt.heartbeat_ms || now < c->next_heartbeat)
		return;
	c->next_heartbeat = now + c->opt.heartbeat_ms;
	res = catalog_exec(c, "SELECT pg_logical_emit_message(true, '" HEARTBEAT_PREFIX "', $1)",
			1, &slot, NULL, NULL, 0);
	if (res && PQresultStatus(res) == PGRES_TUPLES_OK) {
		if (c->heartbeat_failing)
			log_kv(LOG_INFO, "heartbeats written again", "slot", slot, NULL);
		c->heartbeat_failing = false;
	} else if (!c->heartbeat_failing) {
		char err[256];

		snprintf(err, sizeof(err), "%s", res ? PQresultErrorMessage(res) : "no connection");
		err[strcspn(err, "\n")] = '\0';
		log_kv(LOG_WARN, "could not write a heartbeat", "slot", slot, "error", err,
				"hint", "the role needs EXECUTE on pg_logical_emit_message (superuser, or GRANT it)", NULL);
		c->heartbeat_failing = true;
	}
	PQclear(res);
}
