/*
 * How a running pg-capture is doing: its metrics (lib/metrics.c's table),
 * the status line SIGUSR1 asks for, and the stall check of
 * --stall-timeout. Nothing here decides what is written or acknowledged.
 */
#include <stdio.h>
#include <string.h>

#include "capture.h"
#include "snapshot.h"
#include "../lib/exitcode.h"
#include "../lib/log.h"
#include "../lib/metrics.h"
#include "../lib/sig.h"
#include "../lib/util.h"

static const struct metric_field fields[] = {
	{M_ACKED_LSN, "confirmed"}, {M_EMITTED_LSN, "emitted"}, {M_EVENTS_OUT, "events"},
};

int
watch_start(struct capture *c)
{
	static const enum metric used[] = {
		M_EVENTS_OUT, M_BYTES_OUT, M_EMITTED_LSN, M_ACKED_LSN, M_SERVER_LSN, M_LAG_BYTES, M_LAG_SECONDS,
		M_PENDING_TX, M_RETAINED_WAL, M_WAL_STATUS, M_SNAP_ROWS, M_SNAP_ESTIMATE, M_SNAP_PENDING,
		M_RECONNECTS,
	};

	c->m_bytes_out = metric_series(M_BYTES_OUT, NULL, NULL);
	c->progress_at = now_ms();
	return metrics_start(&c->opt.metrics, used, sizeof(used) / sizeof(used[0]), "slot", c->opt.slot, NULL);
}

/* insert update delete ddl truncate schema read message heartbeat begin commit */
static int
op_index(const char *op)
{
	switch (op[0]) {
	case 'i': return 0;
	case 'u': return 1;
	case 'd': return op[1] == 'e' ? 2 : 3;
	case 't': return 4;
	case 's': return 5;
	case 'r': return 6;
	case 'm': return 7;
	case 'h': return 8;
	case 'b': return 9;
	default: return 10;
	}
}

/*
 * An event written: counted by op and table. The series is kept in the
 * relation (a cache: the relation is not otherwise changed), so a row costs
 * an addition.
 */
void
watch_event(struct capture *c, const char *op, const struct relation *rel)
{
	int i = op_index(op);
	struct series **s = rel ? &((struct relation *) rel)->m_events[i] : &c->m_events[i];

	if (!*s) {
		char table[512];

		*s = metric_series(M_EVENTS_OUT, op, rel ? table_name(table, sizeof(table), rel->schema, rel->table) : "");
	}
	metric_add(*s, 1);
}

/* The oldest commit written and not acknowledged: its position and commit time (µs); false if none. */
static bool
oldest_pending(const struct capture *c, lsn_t *lsn, int64_t *ts_us)
{
	if (c->have_ack) {
		if (!c->pend_len)
			return false;
		*lsn = c->pend[c->pend_head];
		*ts_us = c->pend_ts[c->pend_head];
		return true;
	}
	/* without acknowledgements, a commit is done once written */
	if (c->written_commit == c->buffered_commit)
		return false;
	*lsn = c->buffered_commit;
	*ts_us = c->buffered_ts;
	return true;
}

static void
stall_or_status(struct capture *c, int64_t now, bool stalled, lsn_t lsn, bool pending)
{
	char l[LSN_BUFSZ], secs[24], pend[24], lag[24], lagb[24], rate[24];

	lsn_format(lsn, l);
	snprintf(pend, sizeof(pend), "%zu", c->have_ack ? c->pend_len : (size_t) pending);
	snprintf(lag, sizeof(lag), "%.3f", metric_get(M_LAG_SECONDS));
	snprintf(lagb, sizeof(lagb), "%.0f", metric_get(M_LAG_BYTES));
	if (!stalled) {
		snprintf(rate, sizeof(rate), "%.0f", metric_rate(M_EVENTS_OUT, now));
		metrics_log(LOG_INFO, "status", fields, sizeof(fields) / sizeof(fields[0]), "slot", c->opt.slot,
				"events_per_s", rate, "pending", pend, "lag_s", lag, "lag_bytes", lagb,
				"oldest_lsn", pending ? l : NULL, "table", snapshot_table(c), "last_error", metrics_last_error(),
				NULL);
		return;
	}
	snprintf(secs, sizeof(secs), "%.0f", (double) (now - c->progress_at) / 1000.0);
	log_kv(LOG_ERROR, "stalled: nothing acknowledged", "slot", c->opt.slot, "seconds", secs, "pending", pend,
			"lsn", l, "waiting_for", c->have_ack ? "acknowledgements" : "the next stage to read",
			"last_error", metrics_last_error(),
			"hint", "the next stage is stuck or slow: see its log; --stall-timeout to wait longer", NULL);
}

/*
 * Once a loop: the gauges, the metrics once a second, the status line on
 * SIGUSR1, and the stall check. Returns 0, or EXIT_STALLED (logged).
 */
int
watch_tick(struct capture *c, int64_t now)
{
	lsn_t lsn = 0;
	int64_t ts_us = 0, wall_us = wall_ms() * 1000;
	bool pending = oldest_pending(c, &lsn, &ts_us);
	bool stalled;

	metric_set(M_ACKED_LSN, (double) c->confirmed);
	metric_set(M_PENDING_TX, (double) c->pend_len);
	ts_us += PG_EPOCH_SECS * 1000000;
	metric_set(M_LAG_SECONDS, pending && wall_us > ts_us ? (double) (wall_us - ts_us) / 1e6 : 0);
	if (metric_get(M_SERVER_LSN) > 0)
		metric_set(M_LAG_BYTES, metric_get(M_SERVER_LSN) > (double) c->confirmed ?
				metric_get(M_SERVER_LSN) - (double) c->confirmed : 0);
	metric_set(M_SNAP_PENDING, snapshot_tables_pending(c));
	metrics_tick(now, false);
	/* progress: an acknowledgement, or output taken by the next stage */
	if (!pending || c->confirmed != c->watch_confirmed || c->m_bytes_out->v != c->watch_bytes) {
		c->watch_confirmed = c->confirmed;
		c->watch_bytes = c->m_bytes_out->v;
		c->progress_at = now;
	}
	stalled = c->opt.stall_timeout_ms && pending && now - c->progress_at >= c->opt.stall_timeout_ms;
	if (sig_status || stalled) {
		sig_status = 0;
		stall_or_status(c, now, stalled, lsn, pending);
	}
	return stalled ? EXIT_STALLED : 0;
}

void
watch_stop(struct capture *c, int rc)
{
	metric_set(M_ACKED_LSN, (double) c->confirmed);
	metrics_log(rc ? LOG_ERROR : LOG_INFO, "exiting", fields, sizeof(fields) / sizeof(fields[0]),
			"slot", c->opt.slot, NULL);
	metrics_stop();
}
