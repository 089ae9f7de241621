/*
 * The generic target: POST events to a URL, one per request (--body
 * event), or a batch as a JSON array or newline-delimited JSON. Any 2xx
 * answer is delivery.
 */
#include "targets.h"

static int
http_setup(struct publisher *p)
{
	if (p->opt.batch > 1 && !p->opt.body_set)
		p->opt.body = BODY_ARRAY;
	if (p->opt.batch > 1 && p->opt.body == BODY_EVENT) {
		usage_error("--batch %d needs --body array or ndjson", p->opt.batch);
		return EXIT_USAGE;
	}
	p->lim.messages = p->opt.body == BODY_EVENT ? 1 : p->opt.batch;
	return 0;
}

static void
http_body(struct publisher *p, struct request *r)
{
	struct buf *b = &r->body;
	size_t i;

	if (p->opt.body == BODY_ARRAY)
		buf_putc(b, '[');
	for (i = 0; i < r->nmsgs; i++) {
		if (i && p->opt.body == BODY_ARRAY)
			buf_putc(b, ',');
		put_message_payload(p, b, r, &r->msgs[i]);
		if (p->opt.body == BODY_NDJSON)
			buf_putc(b, '\n');
	}
	if (p->opt.body == BODY_ARRAY)
		buf_putc(b, ']');
}

static struct curl_slist *
http_headers(struct publisher *p, struct request *r, int64_t now)
{
	(void) r;
	(void) now;
	return common_headers(p, p->opt.body == BODY_NDJSON ? "application/x-ndjson" : "application/json");
}

const struct target_ops target_http = {
	.name = "http",
	.setup = http_setup,
	.body = http_body,
	.headers = http_headers,
};
