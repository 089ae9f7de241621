/*
 * Google Cloud Pub/Sub: topics.publish, up to 1000 messages and 10 MB a
 * request, each message's data the event in base64, its "id" attribute
 * the event id, its orderingKey the row's. A request holds messages of
 * one ordering key (the API's rule). Authorization: a bearer token the
 * user keeps fresh (--bearer-file), or an OAuth 2 access token this target
 * gets for a service-account key (--credentials-env/-file) and renews
 * before it expires; none for the emulator (PUBSUB_EMULATOR_HOST).
 * 200 with one messageId per message is delivery.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "targets.h"
#include "../auth/jwt.h"
#include "../../lib/util.h"

#define PUBSUB_HOST "https://pubsub.googleapis.com"
#define PUBSUB_SCOPE "https://www.googleapis.com/auth/pubsub"
#define PUBSUB_MAX_MESSAGES 1000
#define PUBSUB_MAX_BYTES 10000000	/* a request, and so a message, counted on the JSON body */
#define TOKEN_MARGIN 300			/* renew a token this many seconds before it expires */

struct pubsub {
	char *url;				/* .../v1/projects/P/topics/T:publish */
	bool emulator;
	bool have_key;
	struct sa_key key;		/* --credentials: a service-account key */
	char *auth;				/* "Authorization: Bearer ..." from the key, secret; NULL if none yet */
	int64_t renew_at;		/* seconds: get a new token from then on */
	bool unauthorized;		/* the last answer was 401 */
};

/* s[0..n) is "projects/P/topics/T" with P and T not empty and without '/'. */
static bool
topic_path(const char *s, size_t n)
{
	const char *t;

	if (n < 18 || strncmp(s, "projects/", 9) != 0)
		return false;
	s += 9, n -= 9;
	if (!(t = memchr(s, '/', n)) || t == s || (size_t) (t - s) + 8 > n || strncmp(t, "/topics/", 8) != 0)
		return false;
	n -= (size_t) (t - s) + 8;
	return n > 0 && !memchr(t + 8, '/', n);
}

/*
 * The publish URL from what the user gave: a full URL ending in
 * projects/P/topics/T (":publish" allowed), or projects/P/topics/T alone
 * (the Google endpoint, or the emulator's). Returns it (the caller's) or
 * NULL.
 */
static char *
publish_url(const char *url, bool *emulator)
{
	const char *emu = getenv("PUBSUB_EMULATOR_HOST"), *path;
	size_t n = strlen(url);
	char *out;

	*emulator = false;
	if (n > 8 && strcmp(url + n - 8, ":publish") == 0)
		n -= 8;
	if (strncmp(url, "projects/", 9) == 0) {
		if (!topic_path(url, n))
			return NULL;
		*emulator = emu && *emu;
		out = xmalloc(n + (*emulator ? strlen(emu) : 0) + 64);
		sprintf(out, "%s%s/v1/%.*s:publish", *emulator ? "http://" : PUBSUB_HOST,
				*emulator ? emu : "", (int) n, url);
		return out;
	}
	if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
		return NULL;
	for (path = strstr(url, "/projects/"); path; path = strstr(path + 1, "/projects/"))
		if (topic_path(path + 1, n - (size_t) (path + 1 - url)))
			break;
	if (!path)
		return NULL;
	out = xmalloc(n + 16);
	sprintf(out, "%.*s:publish", (int) n, url);
	return out;
}

static int
pubsub_setup(struct publisher *p)
{
	struct options *o = &p->opt;
	struct pubsub *q;
	char err[256];

	if (o->body_set) {
		usage_error("the pubsub target writes its own body (no --body)");
		return EXIT_USAGE;
	}
	q = xcalloc(1, sizeof(*q));
	p->tdata = q;
	if (!(q->url = publish_url(o->url, &q->emulator))) {
		usage_error("URL \"%s\" does not name a Pub/Sub topic (projects/PROJECT/topics/TOPIC)", o->url);
		return EXIT_USAGE;
	}
	p->post_url = q->url;
	if (p->cred && !q->emulator) {
		if (sa_key_parse(p->cred, strlen(p->cred), &q->key, err, sizeof(err)) < 0) {
			log_kv(LOG_ERROR, "could not read the service-account key", "error", err, NULL);
			return EXIT_USAGE;
		}
		q->have_key = true;
	} else if (!p->cred && !p->auth && !q->emulator) {
		usage_error("the pubsub target needs --credentials-env/-file (a service-account key) "
				"or --bearer-env/-file, unless PUBSUB_EMULATOR_HOST is set");
		return EXIT_USAGE;
	}
	if (q->emulator && p->cred)
		log_kv(LOG_INFO, "PUBSUB_EMULATOR_HOST is set: the service-account key is not used", NULL);
	p->lim.messages = o->batch < PUBSUB_MAX_MESSAGES ? o->batch : PUBSUB_MAX_MESSAGES;
	p->lim.request_bytes = PUBSUB_MAX_BYTES;
	p->lim.message_bytes = PUBSUB_MAX_BYTES;
	return 0;
}

static void
pubsub_cleanup(struct publisher *p)
{
	struct pubsub *q = p->tdata;

	if (!q)
		return;
	free(q->url);
	if (q->have_key)
		sa_key_free(&q->key);
	secret_free(q->auth);
	free(q);
}

static size_t
pubsub_cost(const struct publisher *p, size_t n, size_t esc)
{
	(void) p;
	(void) esc;
	/* base64 data; the id attribute, the ordering key and the punctuation */
	return (n + 2) / 3 * 4 + 300;
}

static void
pubsub_body(struct publisher *p, struct request *r)
{
	struct buf *b = &r->body, payload = {0};
	char key[64];
	size_t i;

	buf_putlit(b, "{\"messages\":[");
	for (i = 0; i < r->nmsgs; i++) {
		struct message *m = &r->msgs[i];

		payload.len = 0;
		put_message_payload(p, &payload, r, m);
		buf_puts(b, i ? ",{\"data\":" : "{\"data\":");
		buf_put_base64(b, payload.data, payload.len);
		/* Pub/Sub dedups nothing: the id lets consumers drop repeats */
		buf_putlit(b, ",\"attributes\":{\"id\":\"");
		message_id(p, r, m, b);
		buf_putlit(b, "\"}");
		if (message_order_key(p, r, m, key, sizeof(key))) {
			buf_putlit(b, ",\"orderingKey\":\"");
			buf_puts(b, key);
			buf_putc(b, '"');
		}
		buf_putc(b, '}');
	}
	buf_putlit(b, "]}");
	buf_free(&payload);
}

/* One ordering key per request: the message headed at seq has r's first message's. */
static bool
pubsub_joins(struct publisher *p, const struct request *r, uint64_t seq)
{
	struct request one = {.seqs = &seq, .nseqs = 1};
	struct message m = {.first = 0, .count = 1};
	char a[64], b[64];

	message_order_key(p, r, &r->msgs[0], a, sizeof(a));
	message_order_key(p, &one, &m, b, sizeof(b));
	return strcmp(a, b) == 0;
}

/* The token endpoint's answer into a buf, its first 64 KiB. */
static size_t
on_token_body(char *data, size_t size, size_t n, void *arg)
{
	struct buf *b = arg;

	if (b->len < 65536)
		buf_put(b, data, size * n < 65536 - b->len ? size * n : 65536 - b->len);
	return size * n;
}

/*
 * Get an access token for the service-account key: a JWT signed now,
 * exchanged at the key's token_uri, synchronously, within --timeout.
 * Returns 0 with q->auth set, or -1 with the reason in why (never the
 * token or the key).
 */
static int
fetch_token(struct publisher *p, struct pubsub *q, int64_t now, char *why, size_t whysz)
{
	struct buf jwt = {0}, body = {0}, resp = {0};
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/x-www-form-urlencoded");
	char errbuf[CURL_ERROR_SIZE] = "", *tok = NULL;
	long status = 0;
	int64_t expires = 0;
	CURLcode res;
	CURL *c;
	int rc = -1;

	if (jwt_assertion(&q->key, PUBSUB_SCOPE, now, &jwt) < 0) {
		snprintf(why, whysz, "could not sign the token request with the service-account key");
		goto out;
	}
	buf_putc(&jwt, '\0');
	jwt_grant_body(jwt.data, &body);
	if (!(c = curl_easy_init())) {
		snprintf(why, whysz, "could not start a token request");
		goto out;
	}
	curl_easy_setopt(c, CURLOPT_URL, q->key.token_uri);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) body.len);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_token_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long) p->opt.timeout_ms);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	if (p->opt.cacert) {
		curl_easy_setopt(c, CURLOPT_CAINFO, p->opt.cacert);
		curl_easy_setopt(c, CURLOPT_CAPATH, NULL);
	}
	if (p->opt.insecure) {
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	res = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	if (res != CURLE_OK) {
		snprintf(why, whysz, "token request: %s", errbuf[0] ? errbuf : curl_easy_strerror(res));
		goto out;
	}
	if (jwt_token_parse(resp.data, resp.len, &tok, &expires, errbuf, sizeof(errbuf)) < 0 || status != 200) {
		snprintf(why, whysz, "token endpoint answered HTTP %ld%s%s", status, tok ? "" : ": ",
				tok ? "" : errbuf);
		goto out;
	}
	secret_free(q->auth);
	q->auth = xmalloc(strlen(tok) + 32);
	sprintf(q->auth, "Authorization: Bearer %s", tok);
	q->renew_at = now + (expires > 2 * TOKEN_MARGIN ? expires - TOKEN_MARGIN : expires / 2);
	log_kv(LOG_DEBUG, "access token obtained", "account", q->key.client_email, NULL);
	rc = 0;
out:
	secret_free(tok);
	if (jwt.data)
		explicit_bzero(jwt.data, jwt.len);
	if (resp.data)
		explicit_bzero(resp.data, resp.len);
	buf_free(&jwt);
	buf_free(&body);
	buf_free(&resp);
	curl_slist_free_all(h);
	return rc;
}

static struct curl_slist *
pubsub_headers(struct publisher *p, struct request *r, int64_t now)
{
	struct pubsub *q = p->tdata;
	char why[512];

	if (!q->have_key)
		return common_headers(p, "application/json");
	if (p->opt.dry_run) {	/* redacted on output: nothing is asked of the token endpoint */
		if (!q->auth)
			q->auth = xstrdup("Authorization: Bearer (an access token for the key)");
	} else if (!q->auth || now >= q->renew_at) {
		if (fetch_token(p, q, now, why, sizeof(why)) < 0) {
			verdict_all(r, V_RETRY, "%s", why);
			return NULL;
		}
	}
	return curl_slist_append(common_headers(p, "application/json"), q->auth);
}

/* The error's "status: message" of a Google API answer, or its first bytes. */
static void
google_error(const struct buf *resp, char *out, size_t outsz)
{
	json_t *doc = json_loadb(resp->data ? resp->data : "", resp->len, 0, NULL);
	json_t *err = json_object_get(doc, "error");
	const char *st = json_string_value(json_object_get(err, "status"));
	const char *msg = json_string_value(json_object_get(err, "message"));

	if (msg)
		snprintf(out, outsz, "%s%s%s", st ? st : "", st ? ": " : "", msg);
	else
		snprintf(out, outsz, "%.*s", (int) (resp->len > 200 ? 200 : resp->len), resp->data ? resp->data : "");
	json_decref(doc);
}

static void
pubsub_judge(struct publisher *p, struct request *r, long status, const struct buf *resp)
{
	struct pubsub *q = p->tdata;
	bool unauthorized = q->unauthorized;
	char err[400];
	json_t *doc, *ids;

	q->unauthorized = status == 401;
	if (status == 200) {
		doc = json_loadb(resp->data ? resp->data : "", resp->len, 0, NULL);
		ids = json_object_get(doc, "messageIds");
		if (json_is_array(ids) && json_array_size(ids) == r->nmsgs)
			verdict_all(r, V_OK, NULL);
		else	/* not an answer to this request: a proxy's, say */
			verdict_all(r, V_RETRY, "HTTP 200 without a messageId for each of the %zu messages", r->nmsgs);
		json_decref(doc);
		return;
	}
	google_error(resp, err, sizeof(err));
	/*
	 * A token revoked or expired early: a new one (from the key, the file
	 * read again or the command run again) is tried once; a second 401 in
	 * a row is a refusal.
	 */
	if (status == 401 && !unauthorized && (q->have_key || p->opt.bearer_file || p->opt.bearer_cmd)) {
		secret_free(q->auth);
		q->auth = NULL;
		if (!q->have_key)
			bearer_expire(p);	/* the file read, or the command run, again */
		verdict_all(r, V_RETRY, "HTTP 401: %s", err);
	} else if (status_retriable(status))
		verdict_all(r, V_RETRY, "HTTP %ld: %s", status, err);
	else	/* credentials, permission or a missing topic stop; a bad message is refused */
		verdict_all(r, status == 401 || status == 403 || status == 404 ? V_STOP : V_REJECT,
				"HTTP %ld: %s", status, err);
}

const struct target_ops target_pubsub = {
	.name = "pubsub",
	.own_url = true,
	.setup = pubsub_setup,
	.cleanup = pubsub_cleanup,
	.cost = pubsub_cost,
	.body = pubsub_body,
	.joins = pubsub_joins,
	.headers = pubsub_headers,
	.judge = pubsub_judge,
};
