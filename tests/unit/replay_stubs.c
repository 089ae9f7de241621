/*
 * For decode_replay only: what the decoders call that normally lives in
 * stream.c and conn.c, without a server. There is no catalog connection,
 * so catalog_describe() returns -1 and type names stay unknown (null).
 */
#include <stddef.h>

#include "../../pg-capture/capture.h"
#include "../../lib/exitcode.h"
#include "../../lib/log.h"

void
fatal_protocol(struct capture *c, const char *what)
{
	char l[LSN_BUFSZ];

	lsn_format(c->received, l);
	log_kv(LOG_ERROR, "could not decode the replication stream", "slot", c->opt.slot,
			"lsn", l, "error", what, NULL);
	if (!c->fatal)
		c->fatal = EXIT_RUNTIME;
}

void
stop_begin(struct capture *c, const char *reason)
{
	if (c->stopping)
		return;
	c->stopping = true;
	c->stop_reason = reason;
	log_kv(LOG_INFO, "stopping", "slot", c->opt.slot, "reason", reason, NULL);
}

PGconn *
catalog_conn(struct capture *c)
{
	(void) c;
	return NULL;
}
