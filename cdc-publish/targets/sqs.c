/*
 * Amazon SQS through its JSON protocol: SendMessageBatch of up to 10
 * messages POSTed to the service endpoint, the queue named by its URL in
 * the body, every attempt signed with AWS Signature Version 4 at the time
 * it is sent. The answer is 200 whenever the request was understood, with
 * the entries that made it in Successful[] and the others in Failed[],
 * each with SenderFault (true: this message will never do). A FIFO queue
 * (its name ends in .fifo) gets the ordering key as MessageGroupId and
 * the message id as MessageDeduplicationId, so a message sent again
 * within 5 minutes is taken once.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "targets.h"
#include "../auth/sigv4.h"
#include "../../lib/sha256.h"
#include "../../lib/util.h"

#define SQS_MAX_ENTRIES 10
#define SQS_MAX_BYTES 1048576	/* a message, and a whole batch */
/* an entry's JSON besides its body: Id, MessageGroupId, a 128-byte MessageDeduplicationId */
#define SQS_ENTRY_COST 256
#define SQS_DEDUP_MAX 128
#define SQS_THROTTLED_MS 1000	/* the least backoff after a throttling error, which sends no Retry-After */

struct sqs {
	char *queue_url;		/* as given: named in every body */
	char *endpoint;			/* SCHEME://HOST[:PORT]/PATH where requests go */
	char *host;				/* the Host header, signed */
	char *path;				/* the endpoint's path, signed */
	char region[64];
	bool fifo;
	bool loopback;			/* the endpoint is on this machine: an emulator */
	struct sigv4_creds creds;
};

/* Part of u as a string the caller frees with curl_free; NULL if absent. */
static char *
url_part(CURLU *u, CURLUPart what)
{
	char *s = NULL;

	if (curl_url_get(u, what, &s, 0) != CURLUE_OK)
		return NULL;
	return s;
}

/*
 * The region a host names: sqs.REGION.amazonaws.com (the same inside a
 * VPC endpoint's name, ...sqs.REGION.vpce.amazonaws.com, and fauxqs's
 * sqs.REGION.localhost) or the legacy REGION.queue.amazonaws.com. Returns
 * false when it names none.
 */
static bool
region_of_host(const char *host, char *out, size_t outsz)
{
	const char *s = NULL, *q;
	size_t n;

	if (strncmp(host, "sqs.", 4) == 0)
		s = host + 4;
	else if ((q = strstr(host, ".sqs.")))
		s = q + 5;
	else if ((q = strstr(host, ".queue.amazonaws.com")) && !memchr(host, '.', (size_t) (q - host)))
		s = host;
	if (!s)
		return false;
	n = strcspn(s, ".");
	if (n == 0 || n >= outsz || s[n] != '.' || s[strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-")] != '.')
		return false;
	memcpy(out, s, n);
	out[n] = '\0';
	return true;
}

static bool
is_loopback(const char *host)
{
	return strcmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0 || strcmp(host, "[::1]") == 0;
}

/* The keys: from --credentials-env/-file (a shared credentials file, section AWS_PROFILE) or the AWS_* variables. */
static int
read_creds(struct publisher *p, struct sqs *q)
{
	const char *profile = getenv("AWS_PROFILE"), *id, *secret, *token;
	char err[160];

	if (p->cred) {
		if (sigv4_parse_credentials(p->cred, profile && *profile ? profile : "default", &q->creds,
				err, sizeof(err)) == 0)
			return 0;
		log_kv(LOG_ERROR, "could not read AWS credentials", "file",
				p->opt.cred_file ? p->opt.cred_file : p->opt.cred_env, "error", err, NULL);
		return EXIT_USAGE;
	}
	id = getenv("AWS_ACCESS_KEY_ID");
	secret = getenv("AWS_SECRET_ACCESS_KEY");
	token = getenv("AWS_SESSION_TOKEN");
	if (!id || !*id || !secret || !*secret) {
		log_kv(LOG_ERROR, "no AWS credentials", "hint",
				"set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or give --credentials-file", NULL);
		return EXIT_USAGE;
	}
	q->creds.access_key = xstrdup(id);
	q->creds.secret_key = xstrdup(secret);
	q->creds.token = token && *token ? xstrdup(token) : NULL;
	return 0;
}

/*
 * Where requests go: --endpoint (its path too), or the queue URL's
 * scheme, host and port (path /). Sets q->endpoint, host, path and
 * loopback, and the region when the host names one and the queue URL's
 * did not. Returns false after a usage error.
 */
static bool
parse_endpoint(struct sqs *q, const char *url, bool given)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL;
	bool ok = false;

	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK || !(scheme = url_part(u, CURLUPART_SCHEME)) ||
			!(host = url_part(u, CURLUPART_HOST)) || (strcmp(scheme, "http") && strcmp(scheme, "https"))) {
		usage_error("invalid %s \"%s\"", given ? "--endpoint" : "queue URL", url);
		goto out;
	}
	port = url_part(u, CURLUPART_PORT);
	path = url_part(u, CURLUPART_PATH);
	if (port && strcmp(port, strcmp(scheme, "https") == 0 ? "443" : "80") == 0) {
		curl_free(port);
		port = NULL;
	}
	q->host = xmalloc(strlen(host) + (port ? strlen(port) : 0) + 2);
	sprintf(q->host, "%s%s%s", host, port ? ":" : "", port ? port : "");
	q->path = xstrdup(given && path && *path ? path : "/");
	q->endpoint = xmalloc(strlen(scheme) + strlen(q->host) + strlen(q->path) + 4);
	sprintf(q->endpoint, "%s://%s%s", scheme, q->host, q->path);
	if (!q->region[0])
		region_of_host(host, q->region, sizeof(q->region));
	q->loopback = is_loopback(host);
	ok = true;
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(path);
	curl_url_cleanup(u);
	return ok;
}

/* The queue URL: its host's region, whether it is FIFO. Returns false after a usage error. */
static bool
parse_queue_url(struct sqs *q, const char *url)
{
	CURLU *u = curl_url();
	char *host = NULL, *path = NULL;
	const char *name;
	bool ok = false;

	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK || !(host = url_part(u, CURLUPART_HOST)) ||
			!(path = url_part(u, CURLUPART_PATH)) || !(name = strrchr(path, '/')) || !name[1]) {
		usage_error("the sqs target's URL is a queue URL "
				"(https://sqs.REGION.amazonaws.com/ACCOUNT/QUEUE), not \"%s\"", url);
		goto out;
	}
	name++;
	q->fifo = strlen(name) > 5 && strcmp(name + strlen(name) - 5, ".fifo") == 0;
	region_of_host(host, q->region, sizeof(q->region));
	ok = true;
out:
	curl_free(host);
	curl_free(path);
	curl_url_cleanup(u);
	return ok;
}

static int
sqs_setup(struct publisher *p)
{
	struct options *o = &p->opt;
	const char *env;
	struct sqs *q;
	int rc;

	if (o->body_set || o->bearer_env || o->bearer_file || o->bearer_cmd || o->basic_env || o->basic_file) {
		usage_error("the sqs target sends SendMessageBatch requests signed with AWS keys (no --body, bearer or basic credentials)");
		return EXIT_USAGE;
	}
	if (o->batch_set && o->batch > SQS_MAX_ENTRIES) {
		usage_error("--batch %d: SQS takes at most %d messages per request", o->batch, SQS_MAX_ENTRIES);
		return EXIT_USAGE;
	}
	q = xcalloc(1, sizeof(*q));
	p->tdata = q;
	if (!parse_queue_url(q, o->url) || !parse_endpoint(q, o->endpoint ? o->endpoint : o->url, o->endpoint))
		return EXIT_USAGE;
	p->post_url = q->endpoint;
	if (!q->region[0] && (((env = getenv("AWS_REGION")) && *env) || ((env = getenv("AWS_DEFAULT_REGION")) && *env)))
		snprintf(q->region, sizeof(q->region), "%s", env);
	if (!q->region[0]) {
		if (!q->loopback) {
			usage_error("could not tell the queue's region from \"%s\": set AWS_REGION", q->host);
			return EXIT_USAGE;
		}
		snprintf(q->region, sizeof(q->region), "us-east-1");
	}
	if (q->fifo && o->order_key == OKEY_NONE) {
		usage_error("a FIFO queue needs a message group: --ordering-key row or table, not none");
		return EXIT_USAGE;
	}
	if ((rc = read_creds(p, q)) != 0)
		return rc;
	q->queue_url = xstrdup(o->url);
	p->lim.messages = o->batch_set ? o->batch : SQS_MAX_ENTRIES;
	p->lim.request_bytes = SQS_MAX_BYTES - strlen(q->queue_url) - 64;
	p->lim.message_bytes = SQS_MAX_BYTES;
	return 0;
}

static void
sqs_cleanup(struct publisher *p)
{
	struct sqs *q = p->tdata;

	if (!q)
		return;
	free(q->queue_url);
	free(q->endpoint);
	free(q->host);
	free(q->path);
	sigv4_creds_free(&q->creds);
	free(q);
}

static size_t
sqs_cost(const struct publisher *p, size_t n, size_t esc)
{
	(void) p;
	return n + esc + SQS_ENTRY_COST;
}

/*
 * A MessageDeduplicationId: the message id when it is at most 128
 * characters of ASCII punctuation and alphanumerics (what SQS takes), else
 * "sha256:" and its hash, the same for the same id.
 */
static void
put_dedup_id(struct buf *b, const char *id, size_t n)
{
	unsigned char h[SHA256_LEN];
	char hex[2 * SHA256_LEN];
	struct sha256 c;
	size_t i;

	for (i = 0; i < n && id[i] > ' ' && id[i] < 0x7f && id[i] != '"' && id[i] != '\\'; i++)
		;
	if (i == n && n > 0 && n <= SQS_DEDUP_MAX) {
		buf_put(b, id, n);
		return;
	}
	/* '"' and '\\' are allowed too, but would need escaping here: hashed instead, rare as they are */
	sha256_init(&c);
	sha256_update(&c, id, n);
	sha256_final(&c, h);
	hex_encode(h, sizeof(h), hex);
	buf_putlit(b, "sha256:");
	buf_put(b, hex, sizeof(hex));
}

static void
sqs_body(struct publisher *p, struct request *r)
{
	struct sqs *q = p->tdata;
	struct buf *b = &r->body, tmp = {0};
	char key[64];
	size_t i;

	buf_putlit(b, "{\"QueueUrl\":");
	buf_put_jstr(b, q->queue_url, strlen(q->queue_url));
	buf_putlit(b, ",\"Entries\":[");
	for (i = 0; i < r->nmsgs; i++) {
		struct message *m = &r->msgs[i];

		/* the entry's Id is the message's index: the answer's Ids lead back to it */
		buf_printf(b, "%s{\"Id\":\"%zu\",\"MessageBody\":", i ? "," : "", i);
		tmp.len = 0;
		put_message_payload(p, &tmp, r, m);
		buf_put_jstr(b, tmp.data, tmp.len);
		if (q->fifo) {
			message_order_key(p, r, m, key, sizeof(key));
			buf_printf(b, ",\"MessageGroupId\":\"%s\",\"MessageDeduplicationId\":\"", key);
			tmp.len = 0;
			message_id(p, r, m, &tmp);
			put_dedup_id(b, tmp.data, tmp.len);
			buf_putc(b, '"');
		}
		buf_putc(b, '}');
	}
	buf_putlit(b, "]}");
	buf_free(&tmp);
}

static struct curl_slist *
sqs_headers(struct publisher *p, struct request *r, int64_t now)
{
	struct sqs *q = p->tdata;
	struct curl_slist *h = common_headers(p, "application/x-amz-json-1.0");
	char date[17];
	struct sigv4_header sh[] = {
		{"Host", q->host},
		{"X-Amz-Date", date},
		{"Content-Type", "application/x-amz-json-1.0"},
		{"X-Amz-Target", "AmazonSQS.SendMessageBatch"},
		{"X-Amz-Security-Token", q->creds.token},
	};
	struct sigv4_request rq = {"POST", q->path, "", sh, q->creds.token ? 5 : 4, r->body.data,
		r->body.len, q->region, "sqs", now};
	struct buf line = {0};
	size_t i;

	sigv4_amz_date(now, date);
	/* Host is set, not left to libcurl: what is signed is what is sent */
	for (i = 0; i < rq.nheaders; i++) {
		if (strcmp(sh[i].name, "Content-Type") == 0)
			continue;	/* common_headers' */
		line.len = 0;
		buf_printf(&line, "%s: %s%c", sh[i].name, sh[i].value, '\0');
		h = curl_slist_append(h, line.data);
	}
	line.len = 0;
	buf_putlit(&line, "Authorization: ");
	sigv4_authorization(&rq, &q->creds, &line, NULL);
	buf_putc(&line, '\0');
	h = curl_slist_append(h, line.data);
	explicit_bzero(line.data, line.cap);
	buf_free(&line);
	return h;
}

/* Throttling and other passing conditions: sent again, later. */
static bool
code_retriable(const char *code)
{
	static const char *const codes[] = {
		"RequestThrottled", "ThrottlingException", "Throttling", "KmsThrottled",
		"KMS.ThrottlingException", "OverLimit", "RequestExpired", "ServiceUnavailable",
		"InternalFailure", "InternalError", "RequestTimeout", NULL
	};
	size_t i;

	for (i = 0; codes[i]; i++)
		if (strcmp(code, codes[i]) == 0)
			return true;
	return false;
}

static bool
code_auth(const char *code)
{
	static const char *const codes[] = {
		"InvalidClientTokenId", "SignatureDoesNotMatch", "MissingAuthenticationToken",
		"IncompleteSignature", "AccessDenied", "AccessDeniedException", "UnrecognizedClientException",
		"ExpiredToken", "InvalidSecurity", "AuthFailure", NULL
	};
	size_t i;

	for (i = 0; codes[i]; i++)
		if (strcmp(code, codes[i]) == 0)
			return true;
	return false;
}

/* A string member of o, or "" */
static const char *
str_member(json_t *o, const char *a, const char *b)
{
	const char *s = json_string_value(json_object_get(o, a));

	if (!s && b)
		s = json_string_value(json_object_get(o, b));
	return s ? s : "";
}

/*
 * An answer other than 200: {"__type":"com.amazonaws.sqs#CODE","message":...}.
 * Throttling and server errors are retried, the rest refused with the code.
 */
static void
judge_error(struct request *r, long status, const struct buf *resp)
{
	json_t *doc = json_loadb(resp->data ? resp->data : "", resp->len, 0, NULL);
	const char *type = str_member(doc, "__type", "code"), *msg = str_member(doc, "message", "Message");
	const char *code = strrchr(type, '#') ? strrchr(type, '#') + 1 : type;
	if (!*code)
		verdict_http(r, status, resp);
	else if (code_retriable(code) || status_retriable(status)) {
		verdict_all(r, V_RETRY, "%s: %s", code, msg);
		if (strstr(code, "Throttl") || strcmp(code, "OverLimit") == 0)
			r->retry_min_ms = SQS_THROTTLED_MS;
	} else if (status == 403 || code_auth(code))
		verdict_all(r, V_STOP, "authentication failed: %s: %s", code, msg);
	else if (strcmp(code, "QueueDoesNotExist") == 0 || strcmp(code, "AWS.SimpleQueueService.NonExistentQueue") == 0)
		verdict_all(r, V_STOP, "the queue does not exist: %s", msg);
	else
		verdict_all(r, V_REJECT, "%s: %s", code, msg);
	json_decref(doc);
}

/* The message an answer's entry names by its Id, or NULL. */
static struct message *
entry_message(struct request *r, json_t *entry)
{
	const char *id = json_string_value(json_object_get(entry, "Id"));
	char *end;
	unsigned long i;

	if (!id || !*id)
		return NULL;
	errno = 0;
	i = strtoul(id, &end, 10);
	return errno || *end || i >= r->nmsgs ? NULL : &r->msgs[i];
}

static void
sqs_judge(struct publisher *p, struct request *r, long status, const struct buf *resp)
{
	json_t *doc, *ok, *failed, *e;
	struct message *m;
	size_t i;

	(void) p;
	if (status != 200) {
		judge_error(r, status, resp);
		return;
	}
	doc = json_loadb(resp->data ? resp->data : "", resp->len, 0, NULL);
	ok = json_object_get(doc, "Successful");
	failed = json_object_get(doc, "Failed");
	if (!json_is_array(ok) && !json_is_array(failed)) {
		verdict_all(r, V_RETRY, "an answer without Successful or Failed");
		json_decref(doc);
		return;
	}
	/* an entry the answer does not mention was not taken */
	verdict_all(r, V_RETRY, "not in the answer");
	json_array_foreach(ok, i, e)
		if ((m = entry_message(r, e)))
			verdict_set(m, V_OK, NULL);
	json_array_foreach(failed, i, e) {
		if (!(m = entry_message(r, e)))
			continue;
		if (json_is_true(json_object_get(e, "SenderFault")))
			verdict_set(m, V_REJECT, "%s: %s", str_member(e, "Code", NULL), str_member(e, "Message", NULL));
		else
			verdict_set(m, V_RETRY, "%s: %s", str_member(e, "Code", NULL), str_member(e, "Message", NULL));
	}
	json_decref(doc);
}

const struct target_ops target_sqs = {
	.name = "sqs",
	.partial = true,
	.setup = sqs_setup,
	.cleanup = sqs_cleanup,
	.cost = sqs_cost,
	.body = sqs_body,
	.headers = sqs_headers,
	.judge = sqs_judge,
};
