#define _GNU_SOURCE	/* memmem, strcasestr */
/*
 * Azure Service Bus (a queue or topic) and Azure Event Hubs (a hub) over
 * their REST send API, which both share: POST .../ENTITY/messages signed
 * with a SAS token made from the connection string's key. One message per
 * request with its BrokerProperties in a header, or with --batch a JSON
 * array of {"Body","BrokerProperties"} as
 * application/vnd.microsoft.servicebus.json. 201 is delivery; the whole
 * request is accepted or refused together.
 *
 * Service Bus: MessageId is the event's id, so duplicate detection on the
 * entity drops a repeat; SessionId is the ordering key only when
 * --ordering-key asks for one (the entity must then require sessions).
 * Event Hubs: PartitionKey is the ordering key (the row's by default).
 */
#include <stdlib.h>
#include <string.h>

#include "targets.h"
#include "../auth/sas.h"
#include "../../lib/util.h"

#define SB_LIMIT 262144		/* Standard tier: a message, and a whole batch */
#define EH_LIMIT 1048576	/* Event Hubs Standard: a batch */
#define THROTTLED_MS 2000	/* "Please wait 2 seconds and try again" (50009) */

struct azure {
	bool hubs;				/* Event Hubs */
	bool batch;				/* the batch format: --batch above 1 */
	char *uri;				/* https://NS.servicebus.windows.net/ENTITY: what tokens are for */
	char *url;				/* uri/messages and the URL's query: where to POST */
	struct sas_key key;
	struct sas_cache tok;
};

/*
 * The entity's URI and the URL to POST to, from the URL (its path names
 * the entity, "/messages" optional) or, for a URL that is only the
 * namespace, the connection string's EntityPath. Returns 0 or EXIT_USAGE.
 */
static int
entity_urls(struct publisher *p, struct azure *a)
{
	const char *url = p->opt.url, *host = strstr(url, "://") + 3;
	const char *path = host + strcspn(host, "/?");
	const char *query = path + strcspn(path, "?");
	size_t n = (size_t) (query - path);
	struct buf b = {0};

	while (n > 0 && path[n - 1] == '/')
		n--;
	if (n >= 9 && memcmp(path + n - 9, "/messages", 9) == 0)
		n -= 9;
	while (n > 0 && path[0] == '/')
		path++, n--;
	if (n == 0 && !a->key.entity) {
		usage_error("URL \"%s\" names no %s and the connection string has no EntityPath",
				url, a->hubs ? "event hub" : "queue or topic");
		return EXIT_USAGE;
	}
	if (n > 0 && a->key.entity && (strlen(a->key.entity) != n || memcmp(a->key.entity, path, n) != 0)) {
		usage_error("URL \"%s\" names \"%.*s\" but the connection string's EntityPath is \"%s\"",
				url, (int) n, path, a->key.entity);
		return EXIT_USAGE;
	}
	buf_put(&b, url, (size_t) (host - url) + strcspn(host, "/?"));
	buf_putc(&b, '/');
	if (n)
		buf_put(&b, path, n);
	else
		buf_puts(&b, a->key.entity);
	buf_putc(&b, '\0');
	a->uri = b.data;
	a->url = xmalloc(strlen(a->uri) + strlen(query) + 16);
	sprintf(a->url, "%s/messages%s", a->uri, query);
	return 0;
}

static int
azure_setup(struct publisher *p, bool hubs)
{
	const char *name = hubs ? "eventhubs" : "servicebus", *why;
	struct options *o = &p->opt;
	struct azure *a;
	size_t limit;

	if (!p->cred) {
		usage_error("the %s target needs --credentials-env or --credentials-file (its connection string)", name);
		return EXIT_USAGE;
	}
	if (o->body_set) {
		usage_error("the %s target writes its own body (no --body)", name);
		return EXIT_USAGE;
	}
	p->tdata = a = xcalloc(1, sizeof(*a));
	a->hubs = hubs;
	a->batch = o->batch > 1;
	if (sas_key_parse(p->cred, &a->key, &why) < 0) {
		usage_error("could not read the %s credentials: %s", name, why);
		return EXIT_USAGE;
	}
	if (entity_urls(p, a) != 0)
		return EXIT_USAGE;
	p->post_url = a->url;
	/* the whole batch must fit the limit; the margin is for what the service adds */
	limit = o->max_message ? o->max_message : hubs ? EH_LIMIT : SB_LIMIT;
	p->lim.messages = o->batch;
	p->lim.request_bytes = limit / 100 * 95;
	p->lim.message_bytes = p->lim.request_bytes;	/* --max-message replaces it after setup */
	return 0;
}

static int
servicebus_setup(struct publisher *p)
{
	return azure_setup(p, false);
}

static int
eventhubs_setup(struct publisher *p)
{
	return azure_setup(p, true);
}

static void
azure_cleanup(struct publisher *p)
{
	struct azure *a = p->tdata;

	if (!a)
		return;
	free(a->uri);
	free(a->url);
	sas_key_free(&a->key);
	sas_cache_free(&a->tok);
	free(a);
}

/*
 * The payload as a JSON string and the wrapping around it, ids and keys
 * at their longest ("first..last" packed ids); alone, only the payload
 * (the properties go in a header).
 */
static size_t
azure_cost(const struct publisher *p, size_t n, size_t esc)
{
	return ((struct azure *) p->tdata)->batch ? n + esc + 200 : n;
}

/*
 * m's BrokerProperties members: MessageId, then Service Bus's SessionId
 * (only when --ordering-key was given) or Event Hubs' PartitionKey.
 */
static void
put_properties(struct publisher *p, struct buf *b, const struct request *r, const struct message *m)
{
	struct azure *a = p->tdata;
	char key[64];

	buf_putlit(b, "{\"MessageId\":\"");
	message_id(p, r, m, b);
	buf_putc(b, '"');
	if ((a->hubs || p->opt.order_key_set) && message_order_key(p, r, m, key, sizeof(key))) {
		buf_puts(b, a->hubs ? ",\"PartitionKey\":\"" : ",\"SessionId\":\"");
		buf_puts(b, key);
		buf_putc(b, '"');
	}
	buf_putc(b, '}');
}

static void
azure_body(struct publisher *p, struct request *r)
{
	struct buf *b = &r->body, payload = {0};
	size_t i;

	if (!((struct azure *) p->tdata)->batch) {
		put_message_payload(p, b, r, &r->msgs[0]);
		return;
	}
	buf_putc(b, '[');
	for (i = 0; i < r->nmsgs; i++) {
		if (i)
			buf_putc(b, ',');
		payload.len = 0;
		put_message_payload(p, &payload, r, &r->msgs[i]);
		buf_putlit(b, "{\"Body\":");
		buf_put_jstr(b, payload.data, payload.len);
		buf_putlit(b, ",\"BrokerProperties\":");
		put_properties(p, b, r, &r->msgs[i]);
		buf_putc(b, '}');
	}
	buf_putc(b, ']');
	buf_free(&payload);
}

/* Signed at now with a token kept until it nears its expiry. */
static struct curl_slist *
azure_headers(struct publisher *p, struct request *r, int64_t now)
{
	struct azure *a = p->tdata;
	struct curl_slist *h;
	struct buf line = {0};

	/* exactly this type, no charset, or the array is stored as one message */
	h = common_headers(p, a->batch ? "application/vnd.microsoft.servicebus.json" : "application/json");
	buf_putlit(&line, "Authorization: ");
	buf_puts(&line, sas_cache_get(&a->tok, &a->key, a->uri, now));
	buf_putc(&line, '\0');
	h = curl_slist_append(h, line.data);
	explicit_bzero(line.data, line.len);
	if (!a->batch) {
		line.len = 0;
		buf_putlit(&line, "BrokerProperties: ");
		put_properties(p, &line, r, &r->msgs[0]);
		buf_putc(&line, '\0');
		h = curl_slist_append(h, line.data);
	}
	buf_free(&line);
	return h;
}

/* The answer's <Detail> (Service Bus errors are XML), else its start; for reasons. */
static void
detail(const struct buf *resp, char *out, size_t outsz)
{
	const char *s = resp->data ? resp->data : "", *d;
	size_t n = resp->len;

	if ((d = memmem(s, n, "<Detail>", 8))) {
		n -= (size_t) (d + 8 - s);
		s = d + 8;
		if ((d = memmem(s, n, "</Detail>", 9)))
			n = (size_t) (d - s);
	}
	snprintf(out, outsz, "%.*s", (int) (n > 300 ? 300 : n), s);
	out[strcspn(out, "\r\n")] = '\0';
}

/* Does the answer say so (case aside)? */
static bool
says(const char *text, const char *what)
{
	return strcasestr(text, what) != NULL;
}

/*
 * 201 is delivery. A message too large is refused with the service's
 * words; an entity full (403 quota) waits for consumers like throttling
 * (at least 2 s between attempts: the service asks for that and sends no
 * Retry-After); an entity gone, bad credentials or a missing claim are
 * refused.
 */
static void
azure_judge(struct publisher *p, struct request *r, long status, const struct buf *resp)
{
	char why[320];

	(void) p;
	detail(resp, why, sizeof(why));
	if (status == 201)
		verdict_all(r, V_OK, NULL);
	else if (status == 0 || status == 408 || status == 429 || status >= 500 || says(why, "50009")) {
		if (status == 500 || status == 503 || says(why, "50009"))
			r->retry_min_ms = THROTTLED_MS;
		verdict_all(r, V_RETRY, "HTTP %ld%s%s", status, why[0] ? ": " : "", why);
	} else if (says(why, "MessageSizeExceeded") || says(why, "too large") ||
			says(why, "exceeds the limit") || says(why, "larger than") || status == 413)
		verdict_all(r, V_REJECT, "message too large for the entity (HTTP %ld, %zu bytes in %zu message%s; "
				"a Premium entity's limit goes in --max-message): %s", status, r->body.len, r->nmsgs,
				r->nmsgs == 1 ? "" : "s", why);
	else if (status == 403 && (says(why, "quota") || says(why, "maximum entity size"))) {
		r->retry_min_ms = THROTTLED_MS;
		verdict_all(r, V_RETRY, "entity full, waiting for consumers (HTTP 403: %s)", why);
	} else if (status == 404 || status == 410)
		verdict_all(r, V_STOP, "the entity does not exist (HTTP %ld: %s)", status, why);
	else if (status == 401 || status == 403)
		verdict_all(r, V_STOP, "HTTP %ld: %s", status, why);
	else
		verdict_all(r, V_REJECT, "HTTP %ld: %s", status, why);
}

const struct target_ops target_servicebus = {
	.name = "servicebus",
	.setup = servicebus_setup,
	.cleanup = azure_cleanup,
	.cost = azure_cost,
	.body = azure_body,
	.headers = azure_headers,
	.judge = azure_judge,
};

const struct target_ops target_eventhubs = {
	.name = "eventhubs",
	.setup = eventhubs_setup,
	.cleanup = azure_cleanup,
	.cost = azure_cost,
	.body = azure_body,
	.headers = azure_headers,
	.judge = azure_judge,
};
