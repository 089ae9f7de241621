#include "evline.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

#define LR_READ (256 * 1024)

static const char *const op_names[] = {
	[EV_UNKNOWN] = "", [EV_BEGIN] = "begin", [EV_COMMIT] = "commit", [EV_INSERT] = "insert",
	[EV_UPDATE] = "update", [EV_DELETE] = "delete", [EV_TRUNCATE] = "truncate",
	[EV_SCHEMA] = "schema", [EV_DDL] = "ddl", [EV_MESSAGE] = "message", [EV_READ] = "read",
	[EV_HEARTBEAT] = "heartbeat",
};

void
lr_init(struct linereader *r, int fd, size_t max)
{
	memset(r, 0, sizeof(*r));
	r->fd = fd;
	r->max = max;
}

void
lr_free(struct linereader *r)
{
	free(r->buf);
	r->buf = NULL;
}

/* Read more into the buffer, moving the unread part to the front. 0, or -1 at EOF/error. */
static int
fill(struct linereader *r)
{
	ssize_t n;

	if (r->start > 0) {
		memmove(r->buf, r->buf + r->start, r->end - r->start);
		r->end -= r->start;
		r->start = 0;
	}
	if (r->cap - r->end < LR_READ) {
		r->cap = r->end + LR_READ;
		r->buf = xrealloc(r->buf, r->cap);
	}
	n = read(r->fd, r->buf + r->end, r->cap - r->end);	/* EINTR: the caller looks at its signal flags */
	if (n <= 0) {
		r->eof = n == 0;
		return -1;
	}
	r->end += (size_t) n;
	return 0;
}

int
lr_next(struct linereader *r, const char **line, size_t *len)
{
	size_t scanned = r->scanned;	/* a line arriving in pieces is not searched again */
	char *nl;

	for (;;) {
		nl = r->end > r->start + scanned ?
				memchr(r->buf + r->start + scanned, '\n', r->end - r->start - scanned) : NULL;
		if (nl) {
			size_t n = (size_t) (nl - (r->buf + r->start));

			r->lineno++;
			*line = r->buf + r->start;
			*len = n;
			r->start += n + 1;
			r->scanned = 0;
			if (r->skipping || n > r->max) {
				r->skipping = false;
				return LR_TOOLONG;
			}
			return LR_LINE;
		}
		scanned = r->end - r->start;
		if (scanned > r->max) {
			/* drop what is there: an oversize line must not need its size in memory */
			r->skipping = true;
			r->start = r->end;
			scanned = 0;
		}
		if (r->eof || fill(r) < 0) {
			r->scanned = scanned;
			if (!r->eof)
				return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? LR_AGAIN : LR_ERROR;
			r->scanned = 0;
			if (r->end == r->start && !r->skipping)
				return LR_EOF;
			r->lineno++;
			*line = r->buf + r->start;
			*len = r->end - r->start;
			r->start = r->end;
			if (r->skipping) {
				r->skipping = false;
				return LR_TOOLONG;
			}
			return LR_PARTIAL;
		}
	}
}

enum ev_op
ev_op_parse(const char *s, size_t n)
{
	size_t i;

	for (i = 1; i < sizeof(op_names) / sizeof(op_names[0]); i++)
		if (strlen(op_names[i]) == n && memcmp(op_names[i], s, n) == 0)
			return (enum ev_op) i;
	return EV_UNKNOWN;
}

const char *
ev_op_name(enum ev_op op)
{
	return op_names[op];
}

int
ev_head(const char *line, size_t n, struct ev_head *h, const char **err)
{
	struct jiter it = {line, n, 0, 1};
	struct jtok key, val;
	int i;

	memset(h, 0, sizeof(*h));
	while (it.pos < n && (line[it.pos] == ' ' || line[it.pos] == '\t'))
		it.pos++;
	if (it.pos >= n || line[it.pos] != '{') {
		*err = "not a JSON object";
		return -1;
	}
	it.pos++;
	for (i = 0; i < 3; i++) {
		if (jiter_member(&it, &key, &val) != 1)
			break;
		if (i == 0) {
			if (!jtok_eq(&key, "op") || val.type != J_STRING) {
				*err = "\"op\" is not the first member";
				return -1;
			}
			h->opname = val;
			h->op = ev_op_parse(val.p, val.n);
		} else if (i == 1 && jtok_eq(&key, "schema") && val.type == J_STRING)
			h->schema = val;
		else if (i == 2 && h->schema.type && jtok_eq(&key, "table") && val.type == J_STRING)
			h->table = val;
		else
			break;
	}
	if (h->opname.type != J_STRING) {
		*err = "no \"op\" member";
		return -1;
	}
	return 0;
}

int
ev_check(const char *line, size_t n, struct ev_head *h, const char **err)
{
	struct jtok whole;
	size_t pos = 0;

	while (pos < n && (line[pos] == ' ' || line[pos] == '\t'))
		pos++;
	if (pos == n) {
		*err = "empty line";
		return -1;
	}
	if (line[pos] != '{') {
		*err = "not a JSON object";
		return -1;
	}
	if (jscan_value(line, n, &pos, &whole) < 0) {
		*err = "broken JSON: unclosed string or bracket, or a raw control character";
		return -1;
	}
	while (pos < n && (line[pos] == ' ' || line[pos] == '\t' || line[pos] == '\r'))
		pos++;
	if (pos != n) {
		*err = "text after the JSON object";
		return -1;
	}
	if (jutf8_check(line, n, &pos, err) < 0)
		return -1;
	if (ev_head(line, n, h, err) < 0) {
		struct jiter it;
		struct jtok k = {0}, v = {0};

		/* say which: no "op" at all, or not where it belongs */
		if (jiter_begin(&it, &whole) == 0) {
			while (jiter_member(&it, &k, &v) == 1 && !jtok_eq(&k, "op"))
				;
			if (!jtok_eq(&k, "op"))
				*err = "no \"op\" member";
			else if (v.type != J_STRING)
				*err = "\"op\" is not a string";
		}
		return -1;
	}
	if (h->op == EV_UNKNOWN) {
		*err = "unknown op";
		return -1;
	}
	h->obj = whole;
	return 0;
}
