/*
 * Reading cdc-json event lines: a bounded line reader over a file
 * descriptor (large reads, line numbers) and the one place that decodes a
 * line's head ("op", then "schema" and "table") without parsing the rest.
 * The format is in cdc-json(7).
 */
#ifndef PGCDC_EVLINE_H
#define PGCDC_EVLINE_H

#include <stdbool.h>
#include <stddef.h>

#include "jscan.h"

enum ev_op {
	EV_UNKNOWN, EV_BEGIN, EV_COMMIT, EV_INSERT, EV_UPDATE, EV_DELETE, EV_TRUNCATE,
	EV_SCHEMA, EV_DDL, EV_MESSAGE, EV_READ, EV_HEARTBEAT
};

struct linereader {
	int fd;
	char *buf;
	size_t cap, start, end;
	size_t max;				/* longest line accepted, newline excluded */
	unsigned long lineno;	/* of the line last returned */
	bool eof;
	size_t scanned;			/* bytes after start known to hold no newline */
	bool skipping;			/* inside an oversize line */
};

enum { LR_EOF = 0, LR_LINE = 1, LR_ERROR = -1, LR_TOOLONG = -2, LR_PARTIAL = -3, LR_AGAIN = -4 };

/* Set up r to read fd; lines longer than max bytes are refused. */
void lr_init(struct linereader *r, int fd, size_t max);
void lr_free(struct linereader *r);

/*
 * Next line, without its newline; *line stays valid until the next call.
 * Returns LR_LINE, LR_EOF, LR_ERROR (errno set), LR_TOOLONG (the line is
 * skipped and counted), LR_PARTIAL (input ended without a final newline;
 * *line holds the fragment) or LR_AGAIN when no whole line is there yet
 * and a non-blocking descriptor has nothing more, or a signal interrupted
 * the read (look at the signal flags, then call again).
 */
int lr_next(struct linereader *r, const char **line, size_t *len);

struct ev_head {
	enum ev_op op;
	struct jtok opname;		/* the "op" string as written */
	struct jtok schema;		/* J_NONE when the line has none */
	struct jtok table;
	struct jtok obj;		/* the whole object, set by ev_check only */
};

/*
 * Decode the head of an event line. Returns 0, or -1 with a reason in *err
 * when the line is not an object or "op" is not its first member.
 */
int ev_head(const char *line, size_t n, struct ev_head *h, const char **err);

/*
 * Check a whole event line: one JSON object (brackets matched, strings
 * closed, no raw control characters), nothing after it but blanks, valid
 * UTF-8 throughout, "op" first and known. Fills h like ev_head. Returns 0, or -1 with a reason
 * in *err.
 */
int ev_check(const char *line, size_t n, struct ev_head *h, const char **err);

/* The op named by s[0..n), EV_UNKNOWN if none. */
enum ev_op ev_op_parse(const char *s, size_t n);
const char *ev_op_name(enum ev_op op);

#endif
