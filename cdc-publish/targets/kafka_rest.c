/*
 * Kafka through an HTTP proxy: Confluent's REST Proxy (API v2 or v3) and
 * Redpanda's (v2). The URL's shape picks the API:
 *
 *   .../topics/TOPIC                             v2, a batch of records
 *   .../v3/clusters/C/topics/TOPIC/records       v3, one record a request
 *   .../v3/clusters/C/topics/TOPIC/records:batch v3 batch, up to 10
 *
 * Each record's value is the event (JSON, not a string), its key the
 * row's ordering key, so a row's events go to one partition. A 2xx answer
 * is not delivery by itself: each record has its own report (v2
 * offsets[i].error_code, v3 error_code, v3 batch successes and failures),
 * and only the records that failed are sent again.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "targets.h"
#include "../../lib/util.h"

#define V3_BATCH_MAX 10	/* api.v3.produce.batch.maximum.entries' default */

enum api { API_V2, API_V3, API_V3_BATCH };

struct kafka_rest {
	enum api api;
};

static bool
ends_with(const char *s, size_t n, const char *suffix)
{
	size_t k = strlen(suffix);

	return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

static int
kafka_rest_setup(struct publisher *p)
{
	struct options *o = &p->opt;
	struct kafka_rest *k;
	size_t n = strcspn(o->url, "?#");

	if (o->body_set) {
		usage_error("the kafka-rest target writes its own body (no --body)");
		return EXIT_USAGE;
	}
	k = xcalloc(1, sizeof(*k));
	p->tdata = k;
	if (strstr(o->url, "/v3/clusters/") && ends_with(o->url, n, "/records:batch"))
		k->api = API_V3_BATCH;
	else if (strstr(o->url, "/v3/clusters/") && ends_with(o->url, n, "/records"))
		k->api = API_V3;
	else if (strstr(o->url, "/topics/") && !ends_with(o->url, n, "/") && !strstr(o->url, "/v3/"))
		k->api = API_V2;
	else {
		usage_error("URL \"%s\" is not a Kafka REST produce endpoint (.../topics/TOPIC, "
				".../v3/clusters/C/topics/TOPIC/records or .../records:batch)", o->url);
		return EXIT_USAGE;
	}
	if (k->api == API_V3 && o->batch > 1) {
		usage_error("a v3 .../records URL takes one record a request: use .../records:batch for --batch");
		return EXIT_USAGE;
	}
	p->lim.messages = k->api == API_V3 ? 1 : k->api == API_V3_BATCH && o->batch > V3_BATCH_MAX ?
			V3_BATCH_MAX : o->batch;
	return 0;
}

static void
kafka_rest_cleanup(struct publisher *p)
{
	free(p->tdata);
}

static size_t
kafka_rest_cost(const struct publisher *p, size_t n, size_t esc)
{
	(void) p;
	(void) esc;
	return n + 120;	/* the value as it is; the key, the id and the punctuation */
}

/* One record: the key (none with --ordering-key none) and the event as a JSON value. */
static void
put_record(struct publisher *p, struct buf *b, struct request *r, size_t i, enum api api)
{
	struct message *m = &r->msgs[i];
	char key[64];
	bool keyed = message_order_key(p, r, m, key, sizeof(key));

	buf_putc(b, '{');
	if (api == API_V3_BATCH)	/* ids may be [0-9a-zA-Z_-]: the index in this request */
		buf_printf(b, "\"id\":\"%zu\",", i);
	if (keyed && api == API_V2)
		buf_printf(b, "\"key\":\"%s\",", key);
	else if (keyed)
		buf_printf(b, "\"key\":{\"type\":\"STRING\",\"data\":\"%s\"},", key);
	buf_puts(b, api == API_V2 ? "\"value\":" : "\"value\":{\"type\":\"JSON\",\"data\":");
	put_message_payload(p, b, r, m);
	buf_puts(b, api == API_V2 ? "}" : "}}");
}

static void
kafka_rest_body(struct publisher *p, struct request *r)
{
	enum api api = ((struct kafka_rest *) p->tdata)->api;
	struct buf *b = &r->body;
	size_t i;

	if (api == API_V3) {
		put_record(p, b, r, 0, api);
		return;
	}
	buf_puts(b, api == API_V2 ? "{\"records\":[" : "{\"entries\":[");
	for (i = 0; i < r->nmsgs; i++) {
		if (i)
			buf_putc(b, ',');
		put_record(p, b, r, i, api);
	}
	buf_putlit(b, "]}");
}

static struct curl_slist *
kafka_rest_headers(struct publisher *p, struct request *r, int64_t now)
{
	(void) r;
	(void) now;
	if (((struct kafka_rest *) p->tdata)->api == API_V2)
		return curl_slist_append(common_headers(p, "application/vnd.kafka.json.v2+json"),
				"Accept: application/vnd.kafka.v2+json");
	return common_headers(p, "application/json");
}

/*
 * Is an error code worth retrying? Kafka REST codes are HTTP statuses or
 * five digits that begin with one (40401, 50003); 50002 is a Kafka error
 * that will not pass. Codes under 100 are Kafka protocol errors
 * (Redpanda's reports): leader elections, timeouts, too few replicas.
 */
static bool
code_retriable(long c)
{
	if (c == 50002)
		return false;
	if (c >= 10000)
		c /= 100;
	if (c >= 100)
		return status_retriable(c);
	switch (c) {
	case 5: case 6: case 7: case 8: case 13: case 14: case 15: case 19: case 20: case 56:
		return true;
	}
	return false;
}

/* An error code that means delivered: none (v2), 0 (Kafka's) or 200 (v3). */
static bool
code_ok(json_t *code)
{
	return !code || json_is_null(code) ||
			(json_is_integer(code) && (json_integer_value(code) == 0 || json_integer_value(code) == 200));
}

/* Set m's verdict from a record's error_code and message. */
static void
judge_code(struct message *m, json_t *code, const char *msg)
{
	long c = (long) json_integer_value(code);

	if (code_ok(code))
		verdict_set(m, V_OK, NULL);
	else
		verdict_set(m, code_retriable(c) ? V_RETRY : V_REJECT, "error_code %ld: %s", c,
				msg ? msg : "(no message)");
}

static void
judge_v2(struct request *r, json_t *doc)
{
	json_t *offsets = json_object_get(doc, "offsets");
	size_t i;

	for (i = 0; i < r->nmsgs; i++) {
		json_t *o = json_array_get(offsets, i);

		if (!json_is_object(o))
			verdict_set(&r->msgs[i], V_RETRY, "no report for this record in the answer");
		else
			judge_code(&r->msgs[i], json_object_get(o, "error_code"),
					json_string_value(json_object_get(o, "error")));
	}
}

/* v3 batch: each entry's report, found by its id. */
static void
judge_v3_batch(struct request *r, json_t *doc)
{
	json_t *ok = json_object_get(doc, "successes"), *bad = json_object_get(doc, "failures"), *e;
	char id[24];
	size_t i, j;

	for (i = 0; i < r->nmsgs; i++) {
		snprintf(id, sizeof(id), "%zu", i);
		verdict_set(&r->msgs[i], V_RETRY, "no report for this record in the answer");
		json_array_foreach(ok, j, e)
			if (json_is_string(json_object_get(e, "id")) && strcmp(json_string_value(json_object_get(e, "id")), id) == 0)
				verdict_set(&r->msgs[i], V_OK, NULL);
		json_array_foreach(bad, j, e)
			if (json_is_string(json_object_get(e, "id")) && strcmp(json_string_value(json_object_get(e, "id")), id) == 0)
				judge_code(&r->msgs[i], json_is_integer(json_object_get(e, "error_code")) ?
						json_object_get(e, "error_code") : json_null(),
						json_string_value(json_object_get(e, "message")));
	}
}

static void
kafka_rest_judge(struct publisher *p, struct request *r, long status, const struct buf *resp)
{
	enum api api = ((struct kafka_rest *) p->tdata)->api;
	/* v3 streams one report per record: read the first */
	json_t *doc = json_loadb(resp->data ? resp->data : "", resp->len, JSON_DISABLE_EOF_CHECK, NULL);
	const char *msg = json_string_value(json_object_get(doc, "message"));
	json_t *code = json_object_get(doc, "error_code");

	if ((status == 200 || status == 207) && json_is_object(doc)) {
		if (api == API_V2)
			judge_v2(r, doc);
		else if (api == API_V3_BATCH)
			judge_v3_batch(r, doc);
		else if (json_is_integer(code))
			judge_code(&r->msgs[0], code, msg);
		else
			verdict_all(r, V_RETRY, "HTTP %ld without a delivery report", status);
	} else if (status >= 200 && status < 300)
		verdict_all(r, V_RETRY, "HTTP %ld without a delivery report", status);
	else if (json_is_integer(code) && msg)	/* the whole request: 40401 topic not found, 42201... */
		verdict_all(r, status_retriable(status) ? V_RETRY :
				status == 401 || status == 403 || status == 404 ? V_STOP : V_REJECT, "HTTP %ld: error_code %lld: %s",
				status, (long long) json_integer_value(code), msg);
	else
		verdict_http(r, status, resp);
	json_decref(doc);
}

const struct target_ops target_kafka_rest = {
	.name = "kafka-rest",
	.partial = true,
	.setup = kafka_rest_setup,
	.cleanup = kafka_rest_cleanup,
	.cost = kafka_rest_cost,
	.body = kafka_rest_body,
	.headers = kafka_rest_headers,
	.judge = kafka_rest_judge,
};
