/*
 * Transaction bookkeeping shared by both decoders: the deferred begin line,
 * change numbering for ids, skipping what a previous connection already
 * delivered, --endpos, and remembering emitted commits for acknowledgement.
 */
#include <string.h>

#include "capture.h"
#include "../lib/log.h"
#include "../lib/util.h"
#include <stdlib.h>


static void
pend_push(struct capture *c, lsn_t lsn, int64_t ts_us)
{
	if (c->pend_len == c->pend_cap) {
		size_t cap = c->pend_cap ? c->pend_cap * 2 : 64, i;
		lsn_t *p = xmalloc(cap * sizeof(*p));
		int64_t *t = xmalloc(cap * sizeof(*t));

		for (i = 0; i < c->pend_len; i++) {
			p[i] = c->pend[(c->pend_head + i) % c->pend_cap];
			t[i] = c->pend_ts[(c->pend_head + i) % c->pend_cap];
		}
		free(c->pend);
		free(c->pend_ts);
		c->pend = p;
		c->pend_ts = t;
		c->pend_cap = cap;
		c->pend_head = 0;
	}
	c->pend[(c->pend_head + c->pend_len) % c->pend_cap] = lsn;
	c->pend_ts[(c->pend_head + c->pend_len) % c->pend_cap] = ts_us;
	c->pend_len++;
}

void
tx_begin(struct capture *c, uint32_t xid, lsn_t commit_lsn, lsn_t first_lsn, int64_t ts_us)
{
	memset(&c->tx, 0, sizeof(c->tx));
	c->tx.open = true;
	c->tx.xid = xid;
	c->tx.commit_lsn = commit_lsn;
	c->tx.first_lsn = first_lsn;
	c->tx.ts_us = ts_us;
	format_ts(ts_us, c->tx.ts, sizeof(c->tx.ts));
	if (c->opt.endpos != LSN_INVALID && commit_lsn > c->opt.endpos) {
		c->tx.skip = true;
		c->past_endpos = true;	/* the loop stops */
		return;
	}
	/* sent again after a reconnect: it was written in full already */
	if (commit_lsn < c->buffered_commit) {
		c->tx.skip = true;
		return;
	}
	if (c->partial_commit != LSN_INVALID && commit_lsn == c->partial_commit) {
		c->tx.begun = true;
		c->tx.resume_after = c->partial_changes;
	}
	c->partial_commit = LSN_INVALID;
}

/*
 * Count a change event; true when it is to be written. The begin line goes
 * out before the first one, carrying its position (what pgoutput does on
 * PostgreSQL 15, whatever the plugin and version).
 */
static bool
tx_change(struct capture *c, lsn_t lsn)
{
	uint64_t index;

	if (!c->tx.open)
		return false;
	index = c->tx.nchanges++;
	if (c->tx.skip || index < c->tx.resume_after)
		return false;
	if (!c->tx.begun) {
		c->tx.begun = true;
		emit_txline(c, "begin", lsn);
	}
	return true;
}

void
tx_commit(struct capture *c, lsn_t end_lsn)
{
	if (c->tx.open)
		snapshot_committed(c);
	if (!c->tx.open || c->tx.skip) {
		tx_reset(c);
		return;
	}
	if (c->tx.begun) {
		emit_txline(c, "commit", end_lsn);
		c->buffered_commit = end_lsn;
		c->buffered_ts = c->tx.ts_us;
		metric_set(M_EMITTED_LSN, (double) end_lsn);
		if (c->have_ack)
			pend_push(c, end_lsn, c->tx.ts_us);
	} else if (end_lsn > c->idle_pos) {
		/* empty transaction: nothing to deliver, confirmable like a keepalive */
		c->idle_pos = end_lsn;
	}
	memset(&c->tx, 0, sizeof(c->tx));
}

/* The connection went away: remember how much of an open transaction went out. */
void
tx_reset(struct capture *c)
{
	if (c->tx.open && c->tx.begun && !c->tx.skip) {
		c->partial_commit = c->tx.commit_lsn;
		c->partial_changes = c->tx.nchanges > c->tx.resume_after ?
				c->tx.nchanges : c->tx.resume_after;
	}
	memset(&c->tx, 0, sizeof(c->tx));
}

/* pg-capture's own tables (snapshot progress) are not streamed */
static bool
own(const struct relation *rel)
{
	return strcmp(rel->schema, OWN_SCHEMA) == 0;
}

/* A row change: written if this transaction's events are to be; a snapshot's chunk may yield to it. */
void
tx_row(struct capture *c, const char *op, const struct relation *rel, lsn_t lsn,
		const struct value *oldv, bool old_is_key, const struct value *newv)
{
	if (own(rel))
		return;
	snapshot_change(c, rel, oldv, old_is_key, newv);
	if (tx_change(c, lsn))
		emit_row(c, op, rel, lsn, oldv, old_is_key, newv);
}

void
tx_truncate(struct capture *c, const struct relation *rel, lsn_t lsn, bool cascade,
		bool restart_identity)
{
	if (own(rel))
		return;
	snapshot_truncate(c, rel);
	if (tx_change(c, lsn))
		emit_truncate(c, rel, lsn, cascade, restart_identity);
}

/* A snapshot's high watermark: the chunk's rows, in its transaction, then the snapshot moves on. */
static void
tx_reads(struct capture *c, lsn_t lsn)
{
	const struct relation *rel;
	const struct value *vals;
	const char *key;
	char id[96];

	while (snapshot_next_row(c, &rel, &vals, &key, id, sizeof(id)))
		if (tx_change(c, lsn))
			emit_read(c, rel, lsn, vals, id, key);
	snapshot_chunk_emitted(c, c->tx.commit_lsn);
}

/*
 * A message of the DDL capture trigger: a ddl event, or, when its content
 * is not what the trigger writes, a message event like any other.
 */
static void
tx_ddl(struct capture *c, lsn_t lsn, const char *content, size_t len)
{
	struct ddl d;
	bool ok = ddl_parse(content, len, &d) == 0;

	if (!ok)
		log_kv(LOG_WARN, "DDL capture message is not a JSON object with a command: written as a message",
				"slot", c->opt.slot, NULL);
	if (tx_change(c, lsn)) {
		if (ok)
			emit_ddl(c, lsn, &d);
		else
			emit_message(c, lsn, true, DDL_PREFIX, content, len);
	}
	ddl_free(&d);
}

/*
 * A logical message: a transactional one counts like a change, another is
 * written as it comes. This slot's heartbeats become heartbeat events;
 * other pg-captures' (other slots') are theirs and skipped.
 */
void
tx_message(struct capture *c, lsn_t lsn, bool transactional, const char *prefix,
		const char *content, size_t len)
{
	if (transactional && strcmp(prefix, SNAPSHOT_WATERMARK) == 0) {
		if (!c->tx.skip && snapshot_watermark(c, content, len))
			tx_reads(c, lsn);
		return;
	}
	if (transactional && strcmp(prefix, SNAPSHOT_SIGNAL) == 0) {
		if (c->tx.open && !c->tx.skip)
			snapshot_request(c, c->tx.commit_lsn, content, len);
		return;
	}
	if (transactional && strcmp(prefix, HEARTBEAT_PREFIX) == 0) {
		if (c->opt.slot && len == strlen(c->opt.slot) && memcmp(content, c->opt.slot, len) == 0 &&
				tx_change(c, lsn))
			emit_heartbeat(c, lsn);
		return;
	}
	if (transactional && strcmp(prefix, DDL_PREFIX) == 0) {
		tx_ddl(c, lsn, content, len);
		return;
	}
	if (!transactional || tx_change(c, lsn))
		emit_message(c, lsn, transactional, prefix, content, len);
}

/* A table's description, before the first event that needs it (once per definition). */
void
tx_schema(struct capture *c, struct relation *rel, lsn_t lsn)
{
	if (rel->announced || own(rel))
		return;
	rel->announced = true;
	snapshot_schema(c, rel);
	emit_schema(c, rel, lsn);
}
