/*
 * Azure Storage Queues: Put Message, one queue message per request (the
 * API has no batch send), POST .../QUEUE/messages with the payload in
 * base64 inside <QueueMessage><MessageText>. Authorized by SharedKey
 * (an account key, each attempt signed at its own x-ms-date) or by a SAS
 * appended to the query. Only 201 Created is delivery. The service keeps
 * no message ids and no order: consumers drop repeats by the event's
 * "id" inside the payload.
 */
#include <stdlib.h>
#include <string.h>

#include "targets.h"
#include "../auth/azstorage.h"
#include "../../lib/util.h"

#define ENVELOPE_HEAD "<QueueMessage><MessageText>"
#define ENVELOPE_TAIL "</MessageText></QueueMessage>"
#define ENVELOPE (sizeof(ENVELOPE_HEAD) - 1 + sizeof(ENVELOPE_TAIL) - 1)
#define MESSAGE_MAX 65536	/* the encoded MessageText */
#define THROTTLE_MS 1000	/* 503 ServerBusy / 500 OperationTimedOut: the queue is over its rate */

struct sq {
	struct azs_cred cred;
	char *account;			/* the account that signs: the path's, else the credentials' */
	char *url;				/* .../QUEUE/messages, the user's query, the SAS (secret then) */
	char *resource;			/* SharedKey's CanonicalizedResource; NULL with a SAS */
};

/* Queue names: 3 to 63 lowercase letters, digits and single dashes, a letter or digit first and last. */
static bool
queue_name_ok(const char *s, size_t n)
{
	size_t i;

	if (n < 3 || n > 63 || s[0] == '-' || s[n - 1] == '-')
		return false;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
				(s[i] == '-' && s[i + 1] != '-')))
			return false;
	return true;
}

/* The URL taken apart: scheme and authority, path without trailing slashes, query. */
struct url_parts {
	char *base, *path, *query;	/* owned; query NULL if none */
	const char *queue;			/* in path: its last segment */
	int segs;					/* path segments, -1 for an empty one */
};

/*
 * One path segment names the queue (https://ACCOUNT.queue.core.windows.net/QUEUE);
 * two name the account and the queue (path-style: http://127.0.0.1:10001/ACCOUNT/QUEUE).
 * The caller frees u's strings.
 */
static void
split_url(const char *url, struct url_parts *u)
{
	const char *auth = strstr(url, "://") + 3, *p = auth + strcspn(auth, "/?#"), *q, *e;
	size_t n;

	q = p + strcspn(p, "?#");
	n = (size_t) (q - p);
	while (n > 0 && p[n - 1] == '/')
		n--;
	u->base = xstrndup(url, (size_t) (p - url));
	u->path = xstrndup(p, n);
	u->query = NULL;
	u->queue = NULL;
	u->segs = 0;
	if (*q == '?') {
		e = q + 1 + strcspn(q + 1, "#");
		if (e > q + 1)
			u->query = xstrndup(q + 1, (size_t) (e - q - 1));
	}
	for (e = u->path; *e; e++)
		if (*e == '/') {
			u->segs = e[1] == '/' || u->segs < 0 ? -1 : u->segs + 1;
			u->queue = e + 1;
		}
}

static void
sq_free(struct sq *q)
{
	if (!q)
		return;
	azs_cred_free(&q->cred);
	free(q->account);
	secret_free(q->url);
	free(q->resource);
	free(q);
}

/*
 * The request URL: the queue's /messages, the user's query, the SAS. The
 * CanonicalizedResource for SharedKey: a path-style path names the
 * account, which then comes twice.
 */
static void
make_url(struct sq *q, const struct url_parts *u)
{
	struct buf b = {0}, res = {0};

	buf_printf(&b, "%s%s/messages", u->base, u->path);
	if (u->query)
		buf_printf(&b, "?%s", u->query);
	if (q->cred.sas)
		buf_printf(&b, "%c%s", u->query ? '&' : '?', q->cred.sas);
	buf_putc(&b, '\0');
	q->url = b.data;
	if (q->cred.sas)
		return;
	b = (struct buf) {0};
	buf_printf(&b, "%s/messages", u->path);
	buf_putc(&b, '\0');
	azs_canonical_resource(&res, q->account, b.data, u->query);
	buf_putc(&res, '\0');
	q->resource = res.data;
	buf_free(&b);
}

static int
sq_setup(struct publisher *p)
{
	struct options *o = &p->opt;
	struct sq *q = xcalloc(1, sizeof(*q));
	struct url_parts u;
	char why[512] = "", err[256];

	split_url(o->url, &u);
	if (o->batch > 1 || o->body_set)
		snprintf(why, sizeof(why), "the storage-queue target sends one message per request (no --batch, --body)");
	else if (o->bearer_env || o->bearer_file || o->bearer_cmd || o->basic_env || o->basic_file || !p->cred)
		snprintf(why, sizeof(why), "the storage-queue target needs --credentials-env or --credentials-file: "
				"a connection string with the AccountKey, or a SAS token");
	else if (u.segs != 1 && u.segs != 2)
		snprintf(why, sizeof(why), "URL must name the queue: https://ACCOUNT.queue.core.windows.net/QUEUE, "
				"or http://HOST:PORT/ACCOUNT/QUEUE (path-style)");
	else if (!queue_name_ok(u.queue, strlen(u.queue)))
		snprintf(why, sizeof(why), "invalid queue name \"%.64s\" (3 to 63 lowercase letters, digits and "
				"single dashes)", u.queue);
	else if (u.query && (strncmp(u.query, "sig=", 4) == 0 || strstr(u.query, "&sig=")))
		snprintf(why, sizeof(why), "no SAS in the URL: give it with --credentials-env or --credentials-file");
	else if (azs_cred_parse(p->cred, &q->cred, err, sizeof(err)) < 0)
		snprintf(why, sizeof(why), "could not read the storage credentials: %s", err);
	else if (u.segs == 2) {
		q->account = xstrndup(u.path + 1, strcspn(u.path + 1, "/"));
		if (q->cred.account && strcmp(q->cred.account, q->account) != 0)
			snprintf(why, sizeof(why), "the URL's account \"%.64s\" is not the connection string's "
					"AccountName", q->account);
	} else if (q->cred.account)
		q->account = xstrdup(q->cred.account);
	if (!why[0]) {
		make_url(q, &u);
		p->tdata = q;
		p->post_url = q->url;
		p->lim.messages = 1;
		p->lim.message_bytes = MESSAGE_MAX + ENVELOPE;
	} else {
		usage_error("%s", why);
		sq_free(q);
	}
	free(u.base);
	free(u.path);
	free(u.query);
	return why[0] ? EXIT_USAGE : 0;
}

static void
sq_cleanup(struct publisher *p)
{
	sq_free(p->tdata);
}

/* The body of a payload of n bytes: its base64 in the envelope. */
static size_t
sq_cost(const struct publisher *p, size_t n, size_t esc)
{
	(void) p;
	(void) esc;
	return (n + 2) / 3 * 4 + ENVELOPE;
}

static void
sq_body(struct publisher *p, struct request *r)
{
	struct buf payload = {0};

	/* base64: the MessageText must be XML-safe, and consumers decode it as the SDKs do */
	put_message_payload(p, &payload, r, &r->msgs[0]);
	buf_putlit(&r->body, ENVELOPE_HEAD);
	buf_put_b64(&r->body, payload.data, payload.len);
	buf_putlit(&r->body, ENVELOPE_TAIL);
	buf_free(&payload);
}

static struct curl_slist *
sq_headers(struct publisher *p, struct request *r, int64_t now)
{
	struct sq *q = p->tdata;
	struct curl_slist *h = common_headers(p, "application/xml"), *u;
	char date[AZS_DATE_LEN], line[64 + AZS_DATE_LEN], sig[AZS_SIG_LEN];
	const char **lines;
	struct buf sts = {0}, auth = {0};
	size_t n = 0;

	azs_date(now, date);
	snprintf(line, sizeof(line), "x-ms-date: %s", date);
	h = curl_slist_append(h, line);
	h = curl_slist_append(h, "x-ms-version: " AZS_VERSION);
	if (q->cred.sas)
		return h;
	/* the x-ms-* headers sent, the user's -H lines among them, are signed */
	for (u = h; u; u = u->next)
		n++;
	lines = xcalloc(n, sizeof(*lines));
	for (n = 0, u = h; u; u = u->next)
		lines[n++] = u->data;
	azs_string_to_sign(&sts, "POST", r->body.len, "application/xml", lines, n, q->resource);
	azs_sign(&q->cred.key, sts.data, sts.len, sig);
	buf_printf(&auth, "Authorization: SharedKey %s:%s", q->account, sig);
	buf_putc(&auth, '\0');
	h = curl_slist_append(h, auth.data);
	free(lines);
	buf_free(&sts);
	buf_free(&auth);
	return h;
}

/* The <Code> of an error answer, printable ASCII, into code ("" if none). */
static void
error_code(const struct buf *resp, char *code, size_t size)
{
	const char *s = resp->data, *end = s ? s + resp->len : NULL, *c;
	size_t n = 0;

	code[0] = '\0';
	if (!s)
		return;
	for (c = s; c + 6 <= end; c++)
		if (memcmp(c, "<Code>", 6) == 0)
			break;
	if (c + 6 > end)
		return;
	for (c += 6; c < end && *c != '<' && n + 1 < size; c++)
		if (*c > ' ' && *c < 0x7f)
			code[n++] = *c;
	code[n] = '\0';
}

static void
sq_judge(struct publisher *p, struct request *r, long status, const struct buf *resp)
{
	char code[64], c[72];

	(void) p;
	if (status == 201) {
		verdict_all(r, V_OK, NULL);
		return;
	}
	error_code(resp, code, sizeof(code));
	snprintf(c, sizeof(c), code[0] ? " (%s)" : "%s", code);
	if (status == 403 && strcmp(code, "AuthenticationFailed") == 0)
		verdict_all(r, V_STOP, "authentication failed%s: the account key or SAS is wrong or "
				"expired, or the clock is more than 15 minutes off", c);
	else if (status == 403)
		verdict_all(r, V_STOP, "not authorized%s: a SAS must allow adding messages (sp=a)", c);
	else if (status == 404 && (strcmp(code, "QueueNotFound") == 0 || !code[0]))
		verdict_all(r, V_STOP, "queue not found%s: create it first", c);
	else if (status == 413 || (status == 400 && (strcmp(code, "RequestBodyTooLarge") == 0 ||
			strcmp(code, "MessageTooLarge") == 0)))
		verdict_all(r, V_REJECT, "message too large%s: at most %d bytes of base64", c, MESSAGE_MAX);
	else if (status == 500 || status == 503) {
		verdict_all(r, V_RETRY, "HTTP %ld%s", status, c);
		r->retry_min_ms = THROTTLE_MS;
	} else if (status_retriable(status))
		verdict_all(r, V_RETRY, "HTTP %ld%s", status, c);
	else if (status >= 200 && status < 300)
		verdict_all(r, V_REJECT, "HTTP %ld, not 201 Created: not a Put Message answer", status);
	else
		verdict_all(r, V_REJECT, "HTTP %ld%s", status, c);
}

const struct target_ops target_storage_queue = {
	.name = "storage-queue",
	.setup = sq_setup,
	.cleanup = sq_cleanup,
	.cost = sq_cost,
	.body = sq_body,
	.headers = sq_headers,
	.judge = sq_judge,
};
