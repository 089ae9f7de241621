/*
 * Which waiting events may be sent now, and together in which request.
 * Events of one row are never in flight together, and one that waits
 * holds back the later events of its row (or table, for a truncate). A
 * queue message (one event, or several packed) goes whole or not at all;
 * a request takes messages while the target's limits and --batch allow.
 * No libcurl here: http.c sends what this gathers.
 */
#include <stdlib.h>
#include <string.h>

#include "publish.h"
#include "../lib/exitcode.h"
#include "../lib/log.h"
#include "../lib/util.h"

/* Markers of a table with events in flight, and of a table behind a barrier (truncate...). */
#define TABLE_BUSY 0x5bd1e9955bd1e995ULL
#define TABLE_BARRIER 0xc2b2ae3d27d4eb4fULL

static bool
keyset_add(struct keyset *s, uint64_t k)	/* true if it was new */
{
	size_t i = (size_t) (k * 0x9e3779b97f4a7c15ULL) & s->mask;

	while (s->gen[i] == s->cur) {
		if (s->keys[i] == k)
			return false;
		i = (i + 1) & s->mask;
	}
	s->gen[i] = s->cur;
	s->keys[i] = k;
	return true;
}

static bool
keyset_has(const struct keyset *s, uint64_t k)
{
	size_t i = (size_t) (k * 0x9e3779b97f4a7c15ULL) & s->mask;

	while (s->gen[i] == s->cur) {
		if (s->keys[i] == k)
			return true;
		i = (i + 1) & s->mask;
	}
	return false;
}

/* Forget every key: a new stamp (0 stays unused, so a wrap clears the table). */
static void
keyset_clear(struct keyset *s)
{
	if (++s->cur == 0) {
		memset(s->gen, 0, (s->mask + 1) * sizeof(*s->gen));
		s->cur = 1;
	}
}

int
order_init(struct publisher *p)
{
	size_t n = 1;

	/* at most four keys per event (row, old row, table busy, table barrier): never full */
	while (n < (size_t) p->opt.window * 4 + 64)
		n <<= 1;
	p->blocked.keys = xcalloc(n, sizeof(*p->blocked.keys));
	p->blocked.gen = xcalloc(n, sizeof(*p->blocked.gen));
	p->blocked.mask = n - 1;
	return 0;
}

void
order_free(struct publisher *p)
{
	free(p->blocked.keys);
	free(p->blocked.gen);
}

/* Must e wait for something in flight or waiting before it? */
static bool
must_wait(const struct keyset *b, const struct event *e)
{
	return keyset_has(b, e->key) || (e->key2 && keyset_has(b, e->key2)) ||
			keyset_has(b, e->tkey ^ TABLE_BARRIER) ||
			(e->barrier && keyset_has(b, e->tkey ^ TABLE_BUSY));
}

/* e is in flight or waiting: what comes after it may have to wait for it. */
static void
hold(struct keyset *b, const struct event *e)
{
	keyset_add(b, e->key);
	if (e->key2)
		keyset_add(b, e->key2);
	keyset_add(b, e->tkey ^ TABLE_BUSY);
	if (e->barrier)
		keyset_add(b, e->tkey ^ TABLE_BARRIER);
}

static void
hold_request(struct publisher *p, const struct request *r)
{
	size_t j;

	for (j = 0; j < r->nseqs; j++)
		hold(&p->blocked, event_at(p, r->seqs[j]));
}

static struct request *
free_slot(struct publisher *p)
{
	int i;

	for (i = 0; i < p->opt.parallel; i++)
		if (p->req[i].nseqs == 0)
			return &p->req[i];
	return NULL;
}

/*
 * The event after seq in seq's message, when left (events of it still to
 * come) is above 0; else seq itself. A message's events are in input
 * order but not always next to each other: transaction markers that are
 * not sent lie between them.
 */
static uint64_t
msg_next(struct publisher *p, uint64_t seq, uint64_t left)
{
	if (left == 0)
		return seq;
	do
		seq++;
	while (seq < p->head && !event_at(p, seq)->in_msg);
	return seq;
}

/* Add the message of n events headed at seq to r. */
static void
add_message(struct publisher *p, struct request *r, uint64_t seq, uint32_t n)
{
	struct message *m;
	uint32_t i;

	if (r->nseqs + n > r->seqcap) {
		r->seqcap = (r->nseqs + n) * 2;
		r->seqs = xrealloc(r->seqs, r->seqcap * sizeof(*r->seqs));
	}
	if (r->nmsgs == r->msgcap) {
		r->msgcap = r->msgcap ? r->msgcap * 2 : 16;
		r->msgs = xrealloc(r->msgs, r->msgcap * sizeof(*r->msgs));
	}
	m = &r->msgs[r->nmsgs++];
	memset(m, 0, sizeof(*m));
	m->first = r->nseqs;
	m->count = n;
	for (i = 0; i < n; i++, seq = msg_next(p, seq, n - i))
		r->seqs[r->nseqs++] = seq;
}

/* Bytes the message of n events from seq takes in a request body. */
static size_t
message_cost(struct publisher *p, uint64_t seq, uint32_t n)
{
	size_t len = 0, esc = 0;
	uint32_t i;

	for (i = 0; i < n; i++, seq = msg_next(p, seq, n - i)) {
		const struct event *e = event_at(p, seq);

		len += e->len;
		esc += e->esc;
	}
	if (p->opt.pack)
		len += n + 1;	/* a JSON array: brackets and commas */
	return p->t->cost ? p->t->cost(p, len, esc) : len + 1;
}

/*
 * Messages a request takes at most, and its bytes at most (0: no limit)
 * by the target's rule. --batch-bytes is softer: a request is sent once it
 * has reached that size.
 */
static void
request_limits(const struct publisher *p, size_t *msgs, size_t *bytes)
{
	*msgs = p->lim.messages ? (size_t) p->lim.messages : (size_t) p->opt.batch;
	if (p->opt.batch < (int) *msgs && p->opt.batch > 1)
		*msgs = (size_t) p->opt.batch;
	*bytes = p->lim.request_bytes;
}

/* The message heading at seq is too large for the target: send it alone, to be refused. */
static bool
too_large(const struct publisher *p, size_t cost)
{
	return p->lim.message_bytes && cost > p->lim.message_bytes;
}

/* Send r: from now on its rows are in flight. A dry run is answered at once. */
static int
launch(struct publisher *p, struct request *r)
{
	int rc;

	hold_request(p, r);
	if ((rc = http_launch(p, r)) != 0)
		return rc;
	return p->opt.dry_run ? events_retire(p) : 0;
}

/*
 * Gather pending messages into requests while slots are free and launch
 * them. A message whose rows are in flight, or behind an earlier waiting
 * event of the same row, waits. A request not yet full waits up to
 * --linger for company. Returns 0 or an exit status.
 */
int
order_dispatch(struct publisher *p)
{
	struct request *r = NULL;
	struct event *e;
	size_t maxmsgs, maxbytes, bytes = 0, cost;
	uint64_t seq, s, i;
	int64_t oldest = 0;
	bool wait;
	int rc;

	p->linger_until = 0;
	if (p->halt)
		return 0;
	request_limits(p, &maxmsgs, &maxbytes);
again:
	keyset_clear(&p->blocked);
	for (i = 0; i < (uint64_t) p->opt.parallel; i++)
		hold_request(p, &p->req[i]);
	for (seq = p->base; seq < p->head; seq++) {
		e = event_at(p, seq);
		if (e->state != EV_PENDING || e->in_msg)
			continue;
		if (e->msg_len == 0)	/* a message still being packed: nothing after it is ready */
			break;
		/*
		 * Its row already waits or is in flight (the common case behind
		 * a busy key): it waits too, and holding it would add nothing.
		 */
		if (e->msg_len == 1 && !e->barrier && !e->key2 && keyset_has(&p->blocked, e->key))
			continue;
		for (wait = false, i = 0, s = seq; i < e->msg_len && !wait; i++, s = msg_next(p, s, e->msg_len - i))
			wait = must_wait(&p->blocked, event_at(p, s));
		if (wait) {
			for (i = 0, s = seq; i < e->msg_len; i++, s = msg_next(p, s, e->msg_len - i))
				hold(&p->blocked, event_at(p, s));
			continue;
		}
		cost = message_cost(p, seq, e->msg_len);
		/* it does not fit in r: send r, then look at e again, behind what r holds */
		if (r && ((maxbytes && bytes + cost > maxbytes) || too_large(p, cost) ||
				(p->t->joins && !p->t->joins(p, r, seq)))) {
			if ((rc = launch(p, r)) != 0)
				return rc;
			r = NULL;
			if (p->opt.dry_run)
				goto again;
			seq--;
			continue;
		}
		if (!r) {
			if (!(r = free_slot(p)))
				break;
			bytes = 0;
			oldest = e->arrived;
		}
		add_message(p, r, seq, e->msg_len);
		bytes += cost;
		if (p->t->partial)
			for (i = 0, s = seq; i < e->msg_len; i++, s = msg_next(p, s, e->msg_len - i))
				hold(&p->blocked, event_at(p, s));
		/* full (or alone, too large, to be refused with the reason): send it */
		if (r->nmsgs >= maxmsgs || (p->opt.batch_bytes && bytes >= p->opt.batch_bytes) ||
				too_large(p, cost)) {
			if ((rc = launch(p, r)) != 0)
				return rc;
			r = NULL;
			if (p->opt.dry_run)
				goto again;
		}
	}
	if (r && r->nmsgs) {
		/* a partial request: send it now unless more input may come within --linger */
		if (r->nmsgs >= maxmsgs || p->in_eof || p->opt.linger_ms == 0 ||
				now_ms() - oldest >= p->opt.linger_ms || window_full(p))
			return http_launch(p, r);
		request_clear(r);
		p->linger_until = oldest + p->opt.linger_ms;
	}
	return 0;
}
