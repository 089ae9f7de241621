/*
 * The window of events: input lines read in order, their ordering keys,
 * and retirement in input order, which is when commit positions are
 * acknowledged. Bad lines and dead letters are handled here too.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "publish.h"
#include "../lib/ack.h"
#include "../lib/deadletter.h"
#include "../lib/exitcode.h"
#include "../lib/log.h"
#include "../lib/util.h"

struct event *
event_at(struct publisher *p, uint64_t seq)
{
	return &p->ev[seq % p->cap];
}

bool
window_full(const struct publisher *p)
{
	return p->head - p->base >= p->cap;
}

static uint64_t
fnv(uint64_t h, const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		h ^= (unsigned char) s[i];
		h *= 0x100000001b3ULL;
	}
	return h ^ 0xff;	/* a separator between parts */
}

/* Hash of the key columns' names, with their values as found in row. */
static uint64_t
key_of(uint64_t k, const struct jtok *keyobj, const struct jtok *row)
{
	struct jiter ki, ri;
	struct jtok name, val, rname, rval;
	bool found;

	if (jiter_begin(&ki, keyobj) < 0)
		return k;
	while (jiter_member(&ki, &name, &val) == 1) {
		k = fnv(k, name.p, name.n);
		found = row == keyobj;
		if (!found && jiter_begin(&ri, row) == 0)
			while (!found && jiter_member(&ri, &rname, &rval) == 1)
				found = rname.n == name.n && memcmp(rname.p, name.p, name.n) == 0;
		if (found && row != keyobj)
			val = rval;
		k = found ? fnv(k, val.p, val.n) : fnv(k, "", 0);
	}
	return k;
}

/* Does obj have a member whose name is not one of keyobj's? */
static bool
has_other_member(const struct jtok *obj, const struct jtok *keyobj)
{
	struct jiter it, ki;
	struct jtok name, val, kname, kval;
	bool found;

	if (jiter_begin(&it, obj) < 0)
		return false;
	while (jiter_member(&it, &name, &val) == 1) {
		found = false;
		if (jiter_begin(&ki, keyobj) == 0)
			while (!found && jiter_member(&ki, &kname, &kval) == 1)
				found = kname.n == name.n && memcmp(kname.p, name.p, name.n) == 0;
		if (!found)
			return true;
	}
	return false;
}

/* What take_line finds in a line's members, in one pass. */
struct found {
	struct jtok id, lsn, ts, keyobj, old, unchanged;
	bool missing;
};

/*
 * The ordering key of a row event: schema, table and the key columns'
 * names and values. Events of one row share it. An update that changed
 * the key (or any column, under REPLICA IDENTITY FULL without a primary
 * key) also has the row's key before it in *key2, so it is ordered after
 * what came before under the old key too; 0 when there is none.
 * Truncate and schema lines use the table alone, messages their prefix.
 * f receives the members the rest of take_line needs.
 */
static uint64_t
order_key(const char *line, size_t n, const struct ev_head *h, struct found *f, uint64_t *tkey,
		uint64_t *key2, bool *whole_table)
{
	uint64_t k = 0xcbf29ce484222325ULL, k2;
	struct jtok obj, key, val;
	struct jiter it;
	size_t pos = 0;

	memset(f, 0, sizeof(*f));
	k = fnv(k, h->schema.p ? h->schema.p : "", h->schema.n);
	k = fnv(k, h->table.p ? h->table.p : "", h->table.n);
	*tkey = k;
	*key2 = 0;
	*whole_table = false;
	if (jscan_value(line, n, &pos, &obj) < 0 || jiter_begin(&it, &obj) < 0)
		return k;
	while (jiter_member(&it, &key, &val) == 1) {
		if (jtok_eq(&key, "id") && val.type == J_STRING)
			f->id = val;
		else if (jtok_eq(&key, "lsn") && val.type == J_STRING)
			f->lsn = val;
		else if (jtok_eq(&key, "ts") && val.type == J_STRING)
			f->ts = val;
		else if (jtok_eq(&key, "key") && val.type == J_OBJECT)
			f->keyobj = val;
		else if (jtok_eq(&key, "old") && val.type == J_OBJECT)
			f->old = val;
		else if (jtok_eq(&key, "unchanged") && val.type == J_ARRAY)
			f->unchanged = val;
		else if (jtok_eq(&key, "key_missing"))
			f->missing = true;
		else if (h->op == EV_MESSAGE && jtok_eq(&key, "prefix"))
			k = fnv(k, val.p, val.n);
	}
	if ((h->op == EV_INSERT || h->op == EV_UPDATE || h->op == EV_DELETE) && f->keyobj.type == J_OBJECT) {
		k2 = k;
		k = key_of(k, &f->keyobj, &f->keyobj);
		if (h->op == EV_UPDATE && f->old.type == J_OBJECT && (k2 = key_of(k2, &f->keyobj, &f->old)) != k)
			*key2 = k2;
		/*
		 * A key that lacks columns (key_missing: the server sent no value
		 * for them) is not the row's: such an event is ordered with its
		 * whole table. So is an update whose key leaves out unchanged
		 * TOAST columns that its old row has (REPLICA IDENTITY FULL,
		 * written by a pg-capture before key_missing).
		 */
		*whole_table = f->missing || (h->op == EV_UPDATE && f->unchanged.n > 2 &&
				f->old.type == J_OBJECT && has_other_member(&f->old, &f->keyobj));
	}
	return k;
}

/*
 * A line replayed from a dead-letter file ends with a top-level
 * "dead_letter" member we appended: the offset of the comma before it, or
 * n when there is none.
 */
static size_t
dead_letter_member(const char *line, size_t n)
{
	struct jtok obj, key, val;
	struct jiter it;
	size_t pos = 0, before = n, last = n;

	if (jscan_value(line, n, &pos, &obj) < 0 || jiter_begin(&it, &obj) < 0)
		return n;
	for (;;) {
		before = (size_t) (it.s - line) + it.pos;
		if (jiter_member(&it, &key, &val) != 1)
			break;
		last = jtok_eq(&key, "dead_letter") && val.type == J_OBJECT ? before : n;
	}
	return last;
}

/* e's op, schema and table as an event head, for the metrics */
static void
head_of(const struct event *e, struct ev_head *h)
{
	memset(h, 0, sizeof(*h));
	h->op = e->op;
	if (e->tbl_len) {
		h->schema = (struct jtok) {J_STRING, e->line + e->tbl_off, e->tbl_len};
		h->table = (struct jtok) {J_STRING, e->line + e->tname_off, e->tname_len};
	}
}

/* The queue has e: count it, and how long it took from its commit. */
void
event_delivered(struct publisher *p, const struct event *e, int64_t wall)
{
	struct ev_head h;

	head_of(e, &h);
	metric_add(metric_event(M_EVENTS_OUT, &h), 1);
	if (e->commit_ms) {
		metric_observe(p->m_latency, wall > e->commit_ms ? (double) (wall - e->commit_ms) / 1000.0 : 0);
		if (e->op == EV_HEARTBEAT)
			metric_set(M_LAST_HEARTBEAT, (double) e->commit_ms / 1000.0);
	}
}

int
dead_letter(struct publisher *p, struct event *e, long status, const char *why)
{
	char table[160], id[64];

	event_where(e, table, sizeof(table), id, sizeof(id));
	metric_add(metric_series(M_DEAD_LETTERED, table, NULL), 1);
	p->progress_at = now_ms();
	if (dl_append(p->dead, e->line, e->len, e->lineno, status, why) < 0) {
		log_kv(LOG_ERROR, "could not write dead-letter file", "file", p->opt.dead_letter,
				"error", strerror(errno), NULL);
		return -1;
	}
	return 0;
}

/* A line that cannot be published: per --on-error. Returns 0 to go on, or an exit status. */
static int
bad_line(struct publisher *p, const char *line, size_t n, const char *why)
{
	char ln[24];

	snprintf(ln, sizeof(ln), "%lu", p->in.lineno);
	if (p->opt.on_error == ONERR_STOP) {
		log_kv(LOG_ERROR, "bad input line, stopping before it", "line", ln, "error", why,
				"hint", "--on-error skip|dead-letter to go on", NULL);
		return EXIT_BADINPUT;
	}
	log_kv(LOG_WARN, p->opt.on_error == ONERR_SKIP ? "bad input line skipped" :
			"bad input line dead-lettered", "line", ln, "error", why, NULL);
	metric_inc(M_BAD_LINES, 1);
	if (p->opt.on_error == ONERR_DEADLETTER) {
		struct event e = {.line = (char *) line, .len = n, .lineno = p->in.lineno};

		if (dead_letter(p, &e, 0, why) < 0)
			return EXIT_RUNTIME;
	}
	return 0;
}

/* The id of e for logs and message ids: "id", else "lsn", else empty. */
void
event_id(const struct event *e, const char **s, size_t *n)
{
	*s = e->line + e->id_off;
	*n = e->id_len;
}

/* Count what escaping e as a JSON string adds: a backslash before each '"' and '\\'. */
static uint32_t
escapes(const char *s, size_t n)
{
	uint32_t c = 0;
	size_t i;

	for (i = 0; i < n; i++)
		c += s[i] == '"' || s[i] == '\\';
	return c;
}

/* ------------------------------------------------------------- packing */

/*
 * With --pack, consecutive events share one queue message. A message
 * holds whole transactions (--pack tx: exactly one) and is cut inside a
 * transaction only when that transaction alone passes the limit, counted
 * from the transaction's start. So a replay, which starts at a
 * transaction, packs the same events together and the message ids repeat.
 */

static size_t
pack_cost(const struct publisher *p, size_t len, size_t esc, size_t n)
{
	len += n + 1;	/* a JSON array */
	return p->t->cost ? p->t->cost(p, len, esc) : len;
}

static void
pack_close(struct publisher *p)
{
	if (p->pk.open)
		event_at(p, p->pk.head)->msg_len = p->pk.count;
	p->pk.open = false;
}

static void
pack_open(struct publisher *p, uint64_t seq)
{
	struct event *e = event_at(p, seq);

	p->pk.open = true;
	p->pk.head = seq;
	p->pk.count = 1;
	p->pk.len = e->len;
	p->pk.esc = e->esc;
	p->pk.opened = e->arrived;
}

static bool
pack_full(const struct publisher *p, const struct event *e)
{
	if (p->opt.pack > 0 && p->pk.count + 1 > (uint32_t) p->opt.pack)
		return true;
	return p->lim.message_bytes &&
			pack_cost(p, p->pk.len + e->len, p->pk.esc + e->esc, p->pk.count + 1) > p->lim.message_bytes;
}

/*
 * The open message began before the current transaction: the
 * transaction's events move to a message of their own. Returns false when
 * the message holds nothing before the transaction.
 */
static bool
pack_split(struct publisher *p)
{
	uint64_t seq, first = p->head;
	uint32_t moved = 0;
	struct event *e;

	if (!p->in_tx || p->tx_first <= p->pk.head)
		return false;
	p->pk.len = p->pk.esc = 0;
	for (seq = p->tx_first; seq < p->head; seq++) {
		e = event_at(p, seq);
		if (!e->in_msg)
			continue;
		if (first == p->head)
			first = seq;
		moved++;
		p->pk.len += e->len;
		p->pk.esc += e->esc;
	}
	if (!moved)
		return false;
	event_at(p, p->pk.head)->msg_len = p->pk.count - moved;
	event_at(p, first)->in_msg = false;
	p->pk.head = first;
	p->pk.count = moved;
	return true;
}

/* A deliverable event joins the message being packed (or is one alone). */
static void
pack_add(struct publisher *p, uint64_t seq)
{
	struct event *e = event_at(p, seq);

	if (!p->opt.pack) {
		e->msg_len = 1;
		return;
	}
	if (p->pk.open && pack_full(p, e) && !(pack_split(p) && !pack_full(p, e)))
		pack_close(p);
	if (!p->pk.open) {
		pack_open(p, seq);
		return;
	}
	e->in_msg = true;
	p->pk.count++;
	p->pk.len += e->len;
	p->pk.esc += e->esc;
}

/* A transaction (or an event outside one) ended at seq. */
static void
pack_tx_end(struct publisher *p)
{
	if (p->pk.open && (p->opt.pack < 0 || p->pk.count >= (uint32_t) p->opt.pack))
		pack_close(p);
}

/*
 * Input is idle: --pack N sends a message of whole transactions once
 * --linger has passed since it opened. Sets p->pk.until while it waits.
 */
static void
pack_idle(struct publisher *p)
{
	p->pk.until = 0;
	if (!p->pk.open || p->in_tx || p->opt.pack < 0)
		return;
	if (p->opt.linger_ms == 0 || now_ms() - p->pk.opened >= p->opt.linger_ms)
		pack_close(p);
	else
		p->pk.until = p->pk.opened + p->opt.linger_ms;
}

/* Validate and take one line into the window. Returns 0 or an exit status. */
static int
take_line(struct publisher *p, const char *line, size_t n)
{
	struct ev_head h;
	struct found f;
	const char *err;
	struct event *e;
	size_t cut = dead_letter_member(line, n);
	bool whole_table, send;
	uint64_t seq = p->head;
	int rc;

	if (cut < n) {
		/* replayed from a dead-letter file: send the event as it first came */
		char *orig = xmalloc(cut + 1);

		memcpy(orig, line, cut);
		orig[cut] = '}';
		rc = take_line(p, orig, cut + 1);
		free(orig);
		return rc;
	}
	if (ev_check(line, n, &h, &err) < 0)
		return bad_line(p, line, n, err);
	e = event_at(p, seq);
	memset(e, 0, sizeof(*e));
	e->op = h.op;
	e->key = order_key(line, n, &h, &f, &e->tkey, &e->key2, &whole_table);
	e->barrier = h.op == EV_TRUNCATE || h.op == EV_SCHEMA || h.op == EV_DDL || whole_table;
	if (h.op == EV_COMMIT && (f.lsn.type != J_STRING || lsn_parse(f.lsn.p, f.lsn.n, &e->lsn) < 0 ||
			e->lsn == LSN_INVALID))
		return bad_line(p, line, n, "commit without a valid \"lsn\"");
	if (f.id.type != J_STRING) {
		f.id = f.lsn;
		e->id_is_lsn = true;
	}
	if (f.id.type == J_STRING) {
		e->id_off = (uint32_t) (f.id.p - line);
		e->id_len = (uint32_t) f.id.n;
	}
	if (h.schema.type == J_STRING && h.table.type == J_STRING) {
		e->tbl_off = (uint32_t) (h.schema.p - line);
		e->tbl_len = (uint32_t) h.schema.n;
		e->tname_off = (uint32_t) (h.table.p - line);
		e->tname_len = (uint32_t) h.table.n;
	}
	e->line = xstrndup(line, n);
	e->len = n;
	e->esc = escapes(line, n);
	e->lineno = p->in.lineno;
	e->arrived = now_ms();
	/* the commit time: a begin line's, for the events of its transaction */
	e->commit_ms = h.op == EV_BEGIN || !p->in_tx ? (f.ts.type == J_STRING ? rfc3339_ms(f.ts.p, f.ts.n) : 0) :
			p->tx_commit_ms;
	if (h.op == EV_BEGIN)
		p->tx_commit_ms = e->commit_ms;
	metric_add(metric_event(M_EVENTS_IN, &h), 1);
	if (p->base == p->head)
		p->progress_at = e->arrived;	/* a stall is counted from the first event waiting */
	/* transaction markers are delivered only when asked for */
	send = !((h.op == EV_BEGIN || h.op == EV_COMMIT) && !p->opt.tx_markers);
	e->state = send ? EV_PENDING : EV_DONE;
	p->head++;
	if (h.op == EV_BEGIN) {
		if (p->opt.pack < 0)
			pack_close(p);
		p->in_tx = true;
		p->tx_first = seq;
	} else if (!p->in_tx)
		p->tx_first = seq;
	if (send)
		pack_add(p, seq);
	if (h.op == EV_COMMIT || !p->in_tx) {
		p->in_tx = false;
		pack_tx_end(p);
	}
	return 0;
}

/*
 * Read what stdin has (without blocking when it is a pipe) while the window
 * has room. Returns 0 or an exit status; sets p->in_eof at the end.
 */
int
events_read(struct publisher *p)
{
	const char *line;
	size_t n;
	int rc;

	while (!p->in_eof && !p->intake_done && !p->halt && !window_full(p)) {
		rc = lr_next(&p->in, &line, &n);
		if (rc == LR_LINE || rc == LR_TOOLONG || rc == LR_PARTIAL) {
			metric_add(p->m_lines, 1);
			metric_add(p->m_bytes_in, (double) n + 1);
		}
		switch (rc) {
		case LR_AGAIN:
			pack_idle(p);
			return 0;
		case LR_EOF:
			p->in_eof = true;
			pack_close(p);
			return 0;
		case LR_ERROR:
			log_kv(LOG_ERROR, "could not read input", "error", strerror(errno), NULL);
			return EXIT_RUNTIME;
		case LR_TOOLONG:
			rc = bad_line(p, line, n, "line longer than --max-line");
			break;
		case LR_PARTIAL:
			rc = bad_line(p, line, n, "last line has no newline (input cut short?)");
			break;
		default:
			rc = take_line(p, line, n);
		}
		if (rc) {
			pack_close(p);	/* what came before the bad line still goes */
			return rc;
		}
	}
	/*
	 * A message that fills the window alone cannot wait for more: nothing
	 * before it is left to make room. (A window full of earlier events
	 * waits for them to be delivered.)
	 */
	if (window_full(p) && p->pk.open && p->pk.head == p->base)
		pack_close(p);
	return 0;
}

/*
 * Drop delivered events from the front of the window, acknowledging each
 * commit on the way: everything up to it is delivered. Returns 0 or an
 * exit status.
 */
int
events_retire(struct publisher *p)
{
	struct event *e;

	while (p->base < p->head && (e = event_at(p, p->base))->state == EV_DONE) {
		if (e->op == EV_COMMIT && e->lsn > p->acked) {
			if (p->ackfd >= 0 && ack_write(p->ackfd, e->lsn) < 0) {
				log_kv(LOG_ERROR, "could not write acknowledgement", "file", p->opt.ack_fifo,
						"error", strerror(errno), NULL);
				return EXIT_RUNTIME;
			}
			p->acked = e->lsn;
			metric_set(M_ACKED_LSN, (double) e->lsn);
		}
		free(e->line);
		e->line = NULL;
		p->base++;
	}
	return 0;
}
