/*
 * A small non-allocating JSON scanner: walks a buffer and hands back raw
 * spans of values, so a number keeps every digit it was written with and a
 * line can be inspected without being rebuilt. Used where speed or exact
 * number text matters (wal2json messages, event-line routing); full
 * parsing elsewhere goes through jansson.
 */
#ifndef PGCDC_JSCAN_H
#define PGCDC_JSCAN_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

enum jtype { J_NONE, J_STRING, J_NUMBER, J_TRUE, J_FALSE, J_NULL, J_OBJECT, J_ARRAY };

struct jtok {
	enum jtype type;
	const char *p;	/* J_STRING: inside the quotes, still escaped; else the raw value */
	size_t n;
	bool esc;		/* J_STRING: holds a backslash escape */
};

struct jiter {
	const char *s;
	size_t n, pos;
	int first;
};

/*
 * Scan one value at s[*pos], skipping leading whitespace; on success fill t,
 * advance *pos past the value and return 0. Returns -1 on malformed input.
 */
int jscan_value(const char *s, size_t n, size_t *pos, struct jtok *t);

/* Start iterating an object or array token. Returns 0, or -1 on a type mismatch. */
int jiter_begin(struct jiter *it, const struct jtok *container);

/* Next member of an object: 1 (key, val set), 0 at the end, -1 malformed. */
int jiter_member(struct jiter *it, struct jtok *key, struct jtok *val);

/* Next element of an array: 1, 0 at the end, -1 malformed. */
int jiter_elem(struct jiter *it, struct jtok *val);

/*
 * An array walked by hand, for a caller that reads some elements itself:
 * jiter_next steps over the separator (1: an element starts at jiter_at,
 * 0: the end, -1: malformed); then either jiter_value scans it, or the
 * caller reads it from jiter_at and jiter_skip moves past what it read.
 */
int jiter_next(struct jiter *it);
int jiter_value(struct jiter *it, struct jtok *val);
const char *jiter_at(const struct jiter *it, size_t *left);
void jiter_skip(struct jiter *it, size_t len);

/* s[0..n) is exactly a JSON number (RFC 8259 grammar). */
int jnumber_valid(const char *s, size_t n);

/* A J_STRING token's text equals the C string s (no escapes considered). */
int jtok_eq(const struct jtok *t, const char *s);

/*
 * Append a J_STRING token's decoded text (UTF-8) to out. Returns 0, or -1
 * on a bad escape.
 */
int jstr_decode(const struct jtok *t, struct buf *out);

/*
 * Check that s[0..n) is valid UTF-8 as lib/utf8.h defines it (JSON text
 * must be). Returns 0, or -1 with *at set to the offset of the first bad
 * byte and *why to what is wrong there (static text, e.g. "invalid UTF-8:
 * overlong form"). ASCII is checked many bytes at a time.
 */
int jutf8_check(const char *s, size_t n, size_t *at, const char **why);

#endif
