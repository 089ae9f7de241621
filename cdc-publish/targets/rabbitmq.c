#define _GNU_SOURCE	/* memmem */
/*
 * RabbitMQ through its management HTTP API: one message per request to
 * /api/exchanges/VHOST/EXCHANGE/publish. The broker answers after its
 * publisher confirm, and a 200 is delivery only with {"routed":true}: a
 * message no queue is bound for is dropped with 200 {"routed":false}.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "targets.h"
#include "../../lib/util.h"

struct rabbitmq {
	char *url;		/* .../api/exchanges/VHOST/EXCHANGE/publish */
};

static int
rabbitmq_setup(struct publisher *p)
{
	struct options *o = &p->opt;
	const char *rest = strstr(o->url, "://") + 3;
	bool tls = strncmp(o->url, "rabbitmqs://", 12) == 0 || strncmp(o->url, "https://", 8) == 0;
	struct rabbitmq *q;
	char *vhost, *exch;
	size_t n = strlen(rest);

	if (o->batch > 1 || o->body_set) {
		usage_error("the rabbitmq target sends one message per request (no --batch, --body)");
		return EXIT_USAGE;
	}
	if (!o->routing_key) {
		usage_error("the rabbitmq target needs --routing-key");
		return EXIT_USAGE;
	}
	q = xcalloc(1, sizeof(*q));
	vhost = curl_easy_escape(NULL, o->vhost, 0);
	exch = curl_easy_escape(NULL, o->exchange, 0);
	while (n > 0 && rest[n - 1] == '/')
		n--;
	q->url = xmalloc(n + strlen(vhost) + strlen(exch) + 64);
	sprintf(q->url, "%s://%.*s/api/exchanges/%s/%s/publish", tls ? "https" : "http", (int) n, rest,
			vhost, exch);
	curl_free(vhost);
	curl_free(exch);
	p->tdata = q;
	p->post_url = q->url;
	p->lim.messages = 1;
	return 0;
}

static void
rabbitmq_cleanup(struct publisher *p)
{
	struct rabbitmq *q = p->tdata;

	if (q)
		free(q->url);
	free(q);
}

static size_t
rabbitmq_cost(const struct publisher *p, size_t n, size_t esc)
{
	(void) p;
	return n + esc + 200;	/* the payload as a JSON string, and the properties */
}

static void
rabbitmq_body(struct publisher *p, struct request *r)
{
	struct buf *b = &r->body, payload = {0};
	struct message *m = &r->msgs[0];

	/* the message id (the event's) lets consumers drop repeats */
	buf_putlit(b, "{\"properties\":{\"delivery_mode\":2,\"content_type\":\"application/json\"");
	buf_putlit(b, ",\"message_id\":\"");
	message_id(p, r, m, b);
	buf_putlit(b, "\"},\"routing_key\":");
	buf_put_jstr(b, p->opt.routing_key, strlen(p->opt.routing_key));
	buf_putlit(b, ",\"payload\":");
	put_message_payload(p, &payload, r, m);
	buf_put_jstr(b, payload.data, payload.len);
	buf_putlit(b, ",\"payload_encoding\":\"string\"}");
	buf_free(&payload);
}

static struct curl_slist *
rabbitmq_headers(struct publisher *p, struct request *r, int64_t now)
{
	(void) r;
	(void) now;
	return common_headers(p, "application/json");
}

/*
 * A broker shutting down or starting answers for a moment as if the
 * exchange or vhost were missing (404) or nothing were bound (not routed).
 * Such an answer is a refusal only once it has lasted REFUSAL_GRACE_MS
 * with no message accepted meanwhile; until then it is retried.
 */
#define REFUSAL_GRACE_MS 10000

static void
refusal(struct publisher *p, struct request *r, const char *why)
{
	int64_t now = now_ms();

	if (!p->refusing_since)
		p->refusing_since = now;
	if (now - p->refusing_since < REFUSAL_GRACE_MS)
		verdict_all(r, V_RETRY, "%s (retried for %d s: the broker may be restarting)", why,
				REFUSAL_GRACE_MS / 1000);
	else
		verdict_all(r, V_REJECT, "%s", why);
}

static void
rabbitmq_judge(struct publisher *p, struct request *r, long status, const struct buf *resp)
{
	json_t *doc = NULL;
	char why[300];

	if (status == 200) {
		doc = json_loadb(resp->data ? resp->data : "", resp->len, 0, NULL);
		if (json_is_true(json_object_get(doc, "routed"))) {
			verdict_all(r, V_OK, NULL);
			p->refusing_since = 0;
		} else {
			snprintf(why, sizeof(why), "not routed: no queue is bound for routing key \"%s\"",
					p->opt.routing_key);
			refusal(p, r, why);
		}
		json_decref(doc);
		return;
	}
	if (status == 404) {
		snprintf(why, sizeof(why), "HTTP 404: %.*s", (int) (resp->len > 200 ? 200 : resp->len),
				resp->data ? resp->data : "");
		refusal(p, r, why);
		return;
	}
	/* a queue at its limit with overflow reject-publish: the consumer will make room */
	if (status == 400 && resp->data && memmem(resp->data, resp->len, "rejected", 8)) {
		verdict_all(r, V_RETRY, "broker rejected the message (queue full?)");
		return;
	}
	verdict_http(r, status, resp);
}

const struct target_ops target_rabbitmq = {
	.name = "rabbitmq",
	.setup = rabbitmq_setup,
	.cleanup = rabbitmq_cleanup,
	.cost = rabbitmq_cost,
	.body = rabbitmq_body,
	.headers = rabbitmq_headers,
	.judge = rabbitmq_judge,
};
