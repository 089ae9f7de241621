/*
 * A growable byte buffer, used to build event lines and to hold output
 * until the file descriptor takes it. Bytes [off, len) are pending.
 */
#ifndef PGCDC_BUF_H
#define PGCDC_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct buf {
	char *data;
	size_t len;		/* bytes used */
	size_t off;		/* bytes already written out by buf_write_fd */
	size_t cap;
};

/*
 * Make room for need more bytes. May move data, and may drop bytes already
 * written (off becomes 0): keep offsets into a buffer only while nothing
 * is written out of it.
 */
void buf_reserve(struct buf *b, size_t need);
void buf_free(struct buf *b);

static inline size_t
buf_pending(const struct buf *b)
{
	return b->len - b->off;
}

static inline void
buf_put(struct buf *b, const void *p, size_t n)
{
	if (n == 0)
		return;
	if (b->cap - b->len < n)
		buf_reserve(b, n);
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

static inline void
buf_putc(struct buf *b, char c)
{
	if (b->cap == b->len)
		buf_reserve(b, 1);
	b->data[b->len++] = c;
}

#define buf_putlit(b, lit) buf_put((b), (lit), sizeof(lit) - 1)

static inline void
buf_puts(struct buf *b, const char *s)
{
	buf_put(b, s, strlen(s));
}

void buf_put_u64(struct buf *b, uint64_t v);
void buf_put_i64(struct buf *b, int64_t v);

/*
 * s[0..n) as a JSON string literal, quotes included. The result is valid
 * UTF-8 on one line: U+0085, U+2028 and U+2029 are escaped, and a byte
 * that is not part of valid UTF-8 becomes \ufffd.
 */
void buf_put_jstr(struct buf *b, const char *s, size_t n);

/*
 * The JSON text s[0..n) (PostgreSQL's json or jsonb output, already
 * valid JSON) on one line: raw CR and LF, whitespace there, become spaces;
 * inside strings U+0085, U+2028, U+2029 and bytes that are not valid
 * UTF-8 are escaped as buf_put_jstr does.
 */
void buf_put_json(struct buf *b, const char *s, size_t n);

/* s[0..n) in base64 (RFC 4648, OpenSSL's encoder) as a JSON string, quotes included. */
void buf_put_base64(struct buf *b, const void *s, size_t n);
/* The same without the quotes. */
void buf_put_b64(struct buf *b, const void *s, size_t n);

/* printf into b. */
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Write pending bytes to fd. Returns 0 when all were written, 1 when fd
 * would block with bytes left, -1 on error (errno set). Interrupted writes
 * return 1 so the caller can look at its signal flags.
 */
int buf_write_fd(struct buf *b, int fd);

#endif
