#define _GNU_SOURCE	/* memmem */
/*
 * What each target wants: the request body, headers, and how to read the
 * answer. A 2xx alone is not success where the API says otherwise: the
 * RabbitMQ management API answers 200 {"routed":false} for a message it
 * dropped.
 */
#include <string.h>

#include "publish.h"
#include "../lib/jscan.h"

int
target_max_batch(const struct publisher *p)
{
	/* one message per request: the RabbitMQ API has no batch call */
	return p->opt.target == TARGET_RABBITMQ || p->opt.body == BODY_EVENT ? 1 : p->opt.batch;
}

/* The raw text of the top-level string member name of a line, or NULL. */
static const char *
member(const struct event *e, const char *name, size_t *n)
{
	struct jtok obj, key, val;
	struct jiter it;
	size_t pos = 0;

	if (jscan_value(e->line, e->len, &pos, &obj) < 0 || jiter_begin(&it, &obj) < 0)
		return NULL;
	while (jiter_member(&it, &key, &val) == 1)
		if (jtok_eq(&key, name) && val.type == J_STRING) {
			*n = val.n;
			return val.p;
		}
	return NULL;
}

static void
rabbitmq_body(struct publisher *p, struct buf *b, const struct event *e)
{
	const char *id;
	size_t n;

	/* the event id (the lsn for transaction markers) lets consumers drop repeats */
	if (!(id = member(e, "id", &n)))
		id = member(e, "lsn", &n);
	buf_putlit(b, "{\"properties\":{\"delivery_mode\":2,\"content_type\":\"application/json\"");
	if (id) {
		buf_putlit(b, ",\"message_id\":\"");
		buf_put(b, id, n);	/* still JSON-escaped as it was in the line */
		buf_putc(b, '"');
	}
	buf_putlit(b, "},\"routing_key\":");
	buf_put_jstr(b, p->opt.routing_key, strlen(p->opt.routing_key));
	buf_putlit(b, ",\"payload\":");
	buf_put_jstr(b, e->line, e->len);
	buf_putlit(b, ",\"payload_encoding\":\"string\"}");
}

void
target_body(struct publisher *p, struct request *r)
{
	struct buf *b = &r->body;
	size_t i;

	b->len = b->off = 0;
	if (p->opt.target == TARGET_RABBITMQ) {
		rabbitmq_body(p, b, event_at(p, r->seqs[0]));
		return;
	}
	if (p->opt.body == BODY_ARRAY)
		buf_putc(b, '[');
	for (i = 0; i < r->nseqs; i++) {
		const struct event *e = event_at(p, r->seqs[i]);

		if (i && p->opt.body == BODY_ARRAY)
			buf_putc(b, ',');
		buf_put(b, e->line, e->len);
		if (p->opt.body == BODY_NDJSON)
			buf_putc(b, '\n');
	}
	if (p->opt.body == BODY_ARRAY)
		buf_putc(b, ']');
}

struct curl_slist *
target_headers(struct publisher *p, struct request *r)
{
	struct curl_slist *h = NULL, *u;

	(void) r;
	h = curl_slist_append(h, p->opt.body == BODY_NDJSON && p->opt.target == TARGET_HTTP ?
			"Content-Type: application/x-ndjson" : "Content-Type: application/json");
	for (u = p->opt.headers; u; u = u->next)
		h = curl_slist_append(h, u->data);
	if (p->auth)
		h = curl_slist_append(h, p->auth);
	/* no "Expect: 100-continue" round trip for large bodies */
	h = curl_slist_append(h, "Expect:");
	return h;
}

const char *
target_url(struct publisher *p)
{
	return p->opt.url;
}

/* Does the JSON body have the top-level member name set to true? */
static bool
body_true(const struct buf *resp, const char *name)
{
	struct jtok obj, key, val;
	struct jiter it;
	size_t pos = 0;

	if (!resp->data || jscan_value(resp->data, resp->len, &pos, &obj) < 0 ||
			jiter_begin(&it, &obj) < 0)
		return false;
	while (jiter_member(&it, &key, &val) == 1)
		if (jtok_eq(&key, name))
			return val.type == J_TRUE;
	return false;
}

/*
 * Read an answer (status 0: no answer, the transfer failed). Returns
 * JUDGE_OK, JUDGE_RETRY or JUDGE_REJECT, with a reason in why.
 */
int
target_judge(struct publisher *p, long status, const struct buf *resp, char *why, size_t whysz)
{
	why[0] = '\0';
	if (status == 0)
		return JUDGE_RETRY;
	if (status == 408 || status == 429 || status >= 500) {
		snprintf(why, whysz, "HTTP %ld", status);
		return JUDGE_RETRY;
	}
	if (p->opt.target == TARGET_RABBITMQ) {
		if (status == 200 && body_true(resp, "routed"))
			return JUDGE_OK;
		if (status == 200) {
			snprintf(why, whysz, "not routed: no queue is bound for routing key \"%s\"",
					p->opt.routing_key);
			return JUDGE_REJECT;
		}
		/* a queue at its limit with overflow reject-publish: the consumer will make room */
		if (status == 400 && resp->data && memmem(resp->data, resp->len, "rejected", 8)) {
			snprintf(why, whysz, "broker rejected the message (queue full?)");
			return JUDGE_RETRY;
		}
	} else if (status >= 200 && status < 300)
		return JUDGE_OK;
	snprintf(why, whysz, "HTTP %ld: %.*s", status,
			(int) (resp->len > 200 ? 200 : resp->len), resp->data ? resp->data : "");
	return JUDGE_REJECT;
}
