/*
 * The table of targets, chosen once by name, and what several targets
 * share: verdicts, a message's payload, id and ordering key.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "publish.h"
#include "targets/targets.h"
#include "../lib/util.h"

static const struct target_ops *const targets[] = {
	&target_http,
	&target_rabbitmq,
	/* servicebus, eventhubs */
	&target_servicebus,
	&target_eventhubs,

	/* storage-queue */
	&target_storage_queue,

	/* sqs */
	&target_sqs,

	/* pubsub, kafka-rest */
	&target_pubsub,
	&target_kafka_rest,
};

const struct target_ops *
target_find(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(targets) / sizeof(targets[0]); i++)
		if (strcmp(targets[i]->name, name) == 0)
			return targets[i];
	return NULL;
}

/* "http, rabbitmq, ..." into out (size outsz, cut if too small), for messages; returns out. */
const char *
target_names(char *out, size_t outsz)
{
	size_t i, n = 0;
	int w;

	out[0] = '\0';
	for (i = 0; i < sizeof(targets) / sizeof(targets[0]) && n < outsz; i++) {
		w = snprintf(out + n, outsz - n, "%s%s", i ? ", " : "", targets[i]->name);
		if (w < 0)
			break;
		n += (size_t) w;
	}
	return out;
}

struct curl_slist *
common_headers(struct publisher *p, const char *content_type)
{
	struct curl_slist *h = NULL, *u;
	char ct[128];

	snprintf(ct, sizeof(ct), "Content-Type: %s", content_type);
	h = curl_slist_append(h, ct);
	for (u = p->opt.headers; u; u = u->next)
		h = curl_slist_append(h, u->data);
	if (p->auth)
		h = curl_slist_append(h, p->auth);
	/* no "Expect: 100-continue" round trip for large bodies */
	return curl_slist_append(h, "Expect:");
}

static void
set_why(struct message *m, enum verdict v, const char *fmt, va_list ap)
{
	char why[512];

	m->v = v;
	free(m->why);
	m->why = NULL;
	if (fmt) {
		vsnprintf(why, sizeof(why), fmt, ap);
		m->why = xstrdup(why);
	}
}

void
verdict_set(struct message *m, enum verdict v, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	set_why(m, v, fmt, ap);
	va_end(ap);
}

void
verdict_all(struct request *r, enum verdict v, const char *fmt, ...)
{
	va_list ap;
	size_t i;

	for (i = 0; i < r->nmsgs; i++) {
		va_start(ap, fmt);
		set_why(&r->msgs[i], v, fmt, ap);
		va_end(ap);
	}
}

/* No answer, a timeout, throttling or a server error: worth trying again. */
bool
status_retriable(long status)
{
	return status == 0 || status == 408 || status == 429 || status >= 500;
}

/*
 * The plain HTTP reading: 2xx delivered, retriable statuses retried,
 * credentials refused (401, 403, 407) stop whatever --dead-letter says,
 * the rest refused.
 */
void
verdict_http(struct request *r, long status, const struct buf *resp)
{
	int n = (int) (resp->len > 200 ? 200 : resp->len);

	if (status >= 200 && status < 300)
		verdict_all(r, V_OK, NULL);
	else if (status_retriable(status))
		verdict_all(r, V_RETRY, "HTTP %ld", status);
	else if (status == 401 || status == 403 || status == 407)
		verdict_all(r, V_STOP, "HTTP %ld: %.*s", status, n, resp->data ? resp->data : "");
	else
		verdict_all(r, V_REJECT, "HTTP %ld: %.*s", status, n, resp->data ? resp->data : "");
}

/* The payload of m: its event line, or with --pack a JSON array of its events. */
void
put_message_payload(struct publisher *p, struct buf *b, const struct request *r,
		const struct message *m)
{
	size_t i;

	if (!p->opt.pack) {
		const struct event *e = event_at(p, r->seqs[m->first]);

		buf_put(b, e->line, e->len);
		return;
	}
	buf_putc(b, '[');
	for (i = 0; i < m->count; i++) {
		const struct event *e = event_at(p, r->seqs[m->first + i]);

		if (i)
			buf_putc(b, ',');
		buf_put(b, e->line, e->len);
	}
	buf_putc(b, ']');
}

/* Bytes of m's payload, and its escapes (for a JSON string) in *esc. */
size_t
payload_len(struct publisher *p, const struct request *r, const struct message *m, size_t *esc)
{
	size_t i, n = p->opt.pack ? m->count + 1 : 0;

	*esc = 0;
	for (i = 0; i < m->count; i++) {
		const struct event *e = event_at(p, r->seqs[m->first + i]);

		n += e->len;
		*esc += e->esc;
	}
	return n;
}

/* One event's id for deduplication: its "id"; an event without one adds its table's hash to its lsn. */
static void
put_event_id(struct buf *b, const struct event *e)
{
	const char *s;
	size_t n;

	event_id(e, &s, &n);
	buf_put(b, s, n);
	if (e->id_is_lsn && e->tbl_len)	/* schema lines of several tables share an lsn */
		buf_printf(b, ":%016llx", (unsigned long long) e->tkey);
}

/*
 * The message id of m, the same whenever the same events are sent again:
 * the event's id, or for a packed message its first and last events' ids
 * joined by "..". Ids are JSON-safe ASCII as pg-capture writes them.
 */
void
message_id(struct publisher *p, const struct request *r, const struct message *m, struct buf *b)
{
	put_event_id(b, event_at(p, r->seqs[m->first]));
	if (m->count > 1) {
		buf_putlit(b, "..");
		put_event_id(b, event_at(p, r->seqs[m->first + m->count - 1]));
	}
}

/*
 * The ordering key of m as text (16 hex digits): the row's (the table's
 * for truncate, schema and other whole-table events) or, with
 * --ordering-key table, the table's. A packed message spans rows and
 * tables: its key is one for the whole stream, "all". Returns false, out
 * empty, with --ordering-key none.
 */
bool
message_order_key(struct publisher *p, const struct request *r, const struct message *m,
		char *out, size_t outsz)
{
	const struct event *e = event_at(p, r->seqs[m->first]);

	out[0] = '\0';
	if (p->opt.order_key == OKEY_NONE)
		return false;
	if (p->opt.pack)
		snprintf(out, outsz, "all");
	else
		snprintf(out, outsz, "%016llx", (unsigned long long)
				(p->opt.order_key == OKEY_TABLE || e->barrier ? e->tkey : e->key));
	return true;
}
