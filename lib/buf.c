#include "buf.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "util.h"

void
buf_reserve(struct buf *b, size_t need)
{
	size_t cap;

	if (b->off > 0 && b->off >= b->len - b->off) {
		/*
		 * Written bytes outnumber pending ones: move the pending ones to
		 * the front (cheap, amortised over what was written) rather than
		 * grow, so a steady slower reader does not make the buffer grow.
		 */
		memmove(b->data, b->data + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
	}
	if (b->cap - b->len >= need)
		return;
	if (need > SIZE_MAX / 4 - b->len)
		xrealloc(NULL, SIZE_MAX);	/* reports out of memory */
	cap = b->cap ? b->cap : 256;
	while (cap - b->len < need)
		cap *= 2;
	b->data = xrealloc(b->data, cap);
	b->cap = cap;
}

void
buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->off = b->cap = 0;
}

void
buf_put_u64(struct buf *b, uint64_t v)
{
	char tmp[20];
	int i = sizeof(tmp);

	do {
		tmp[--i] = (char) ('0' + v % 10);
		v /= 10;
	} while (v);
	buf_put(b, tmp + i, sizeof(tmp) - (size_t) i);
}

void
buf_put_i64(struct buf *b, int64_t v)
{
	if (v < 0) {
		buf_putc(b, '-');
		buf_put_u64(b, (uint64_t) 0 - (uint64_t) v);
	} else
		buf_put_u64(b, (uint64_t) v);
}

/* 0: copy as is; otherwise the character after the backslash ('u' for \u00XX) */
static const char jesc[256] = {
	['\b'] = 'b', ['\t'] = 't', ['\n'] = 'n', ['\f'] = 'f', ['\r'] = 'r',
	[0x00] = 'u', [0x01] = 'u', [0x02] = 'u', [0x03] = 'u', [0x04] = 'u',
	[0x05] = 'u', [0x06] = 'u', [0x07] = 'u', [0x0b] = 'u', [0x0e] = 'u',
	[0x0f] = 'u', [0x10] = 'u', [0x11] = 'u', [0x12] = 'u', [0x13] = 'u',
	[0x14] = 'u', [0x15] = 'u', [0x16] = 'u', [0x17] = 'u', [0x18] = 'u',
	[0x19] = 'u', [0x1a] = 'u', [0x1b] = 'u', [0x1c] = 'u', [0x1d] = 'u',
	[0x1e] = 'u', [0x1f] = 'u', ['"'] = '"', ['\\'] = '\\',
};

void
buf_put_jstr(struct buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, start = 0;
	char e;

	/* worst case 6 bytes per input byte; reserve once for the common case */
	buf_reserve(b, n + 2);
	buf_putc(b, '"');
	for (i = 0; i < n; i++) {
		/* skip 8 plain bytes at a time: none below 0x20, no '"', no '\\' */
		while (i + 8 <= n) {
			uint64_t w, ctl, quo, bsl;

			memcpy(&w, s + i, 8);
			ctl = (w - 0x2020202020202020ULL) & ~w;
			quo = ((w ^ 0x2222222222222222ULL) - 0x0101010101010101ULL) & ~(w ^ 0x2222222222222222ULL);
			bsl = ((w ^ 0x5c5c5c5c5c5c5c5cULL) - 0x0101010101010101ULL) & ~(w ^ 0x5c5c5c5c5c5c5c5cULL);
			if ((ctl | quo | bsl) & 0x8080808080808080ULL)
				break;
			i += 8;
		}
		if (i >= n)
			break;
		e = jesc[(unsigned char) s[i]];
		if (e == 0)
			continue;
		buf_put(b, s + start, i - start);
		start = i + 1;
		if (e == 'u') {
			char u[6] = {'\\', 'u', '0', '0', hex[(unsigned char) s[i] >> 4], hex[s[i] & 15]};

			buf_put(b, u, 6);
		} else {
			char u[2] = {'\\', e};

			buf_put(b, u, 2);
		}
	}
	buf_put(b, s + start, n - start);
	buf_putc(b, '"');
}

int
buf_write_fd(struct buf *b, int fd)
{
	ssize_t w;

	while (b->off < b->len) {
		w = write(fd, b->data + b->off, b->len - b->off);
		if (w < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				return 1;
			return -1;
		}
		b->off += (size_t) w;
	}
	b->off = b->len = 0;
	return 0;
}
