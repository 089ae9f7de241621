#include "buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "utf8.h"
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

/* \uXXXX for a code point below 0x10000 */
static void
put_uescape(struct buf *b, uint32_t cp)
{
	static const char hex[] = "0123456789abcdef";
	char u[6] = {'\\', 'u', hex[cp >> 12 & 15], hex[cp >> 8 & 15], hex[cp >> 4 & 15], hex[cp & 15]};

	buf_put(b, u, 6);
}

/*
 * The sequence at s[0..n), which starts with a byte from 0x80: its length
 * in *len, and the code point to write as an escape, or 0 to copy it as it
 * is. Line separators that Unicode-aware readers split lines at (U+0085,
 * U+2028, U+2029) are escaped; a byte that starts no valid sequence
 * becomes U+FFFD, so what is written is always valid UTF-8.
 */
static uint32_t
high_escape(const unsigned char *s, size_t n, size_t *len)
{
	uint32_t cp;

	if ((*len = utf8_seq(s, n, &cp)) == 0) {
		*len = 1;
		return 0xfffd;
	}
	return cp == 0x85 || cp == 0x2028 || cp == 0x2029 ? cp : 0;
}

void
buf_put_jstr(struct buf *b, const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *) s;
	size_t i = 0, start = 0, len;
	uint32_t cp;
	char e;

	/* worst case 6 bytes per input byte; reserve once for the common case */
	buf_reserve(b, n + 2);
	buf_putc(b, '"');
	while (i < n) {
		/* skip 8 plain ASCII bytes at a time: none below 0x20 or above 0x7f, no '"', no '\\' */
		while (i + 8 <= n) {
			uint64_t w, ctl, quo, bsl;

			memcpy(&w, s + i, 8);
			ctl = (w - 0x2020202020202020ULL) & ~w;
			quo = ((w ^ 0x2222222222222222ULL) - 0x0101010101010101ULL) & ~(w ^ 0x2222222222222222ULL);
			bsl = ((w ^ 0x5c5c5c5c5c5c5c5cULL) - 0x0101010101010101ULL) & ~(w ^ 0x5c5c5c5c5c5c5c5cULL);
			if ((ctl | quo | bsl | w) & 0x8080808080808080ULL)
				break;
			i += 8;
		}
		if (i >= n)
			break;
		if (u[i] >= 0x80) {
			if ((cp = high_escape(u + i, n - i, &len)) != 0) {
				buf_put(b, s + start, i - start);
				put_uescape(b, cp);
				start = i + len;
			}
			i += len;
			continue;
		}
		e = jesc[u[i]];
		if (e == 0) {
			i++;
			continue;
		}
		buf_put(b, s + start, i - start);
		if (e == 'u')
			put_uescape(b, u[i]);
		else {
			char esc[2] = {'\\', e};

			buf_put(b, esc, 2);
		}
		start = ++i;
	}
	buf_put(b, s + start, n - start);
	buf_putc(b, '"');
}

void
buf_put_json(struct buf *b, const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *) s;
	size_t i = 0, start = 0, len;
	uint32_t cp;

	buf_reserve(b, n);
	while (i < n) {
		if (u[i] == '\n' || u[i] == '\r') {
			/* raw line breaks can only be whitespace between tokens */
			buf_put(b, s + start, i - start);
			buf_putc(b, ' ');
			start = ++i;
		} else if (u[i] >= 0x80 && (cp = high_escape(u + i, n - i, &len)) != 0) {
			/* only inside a string, where an escape means the same */
			buf_put(b, s + start, i - start);
			put_uescape(b, cp);
			start = i += len;
		} else
			i += u[i] >= 0x80 ? len : 1;
	}
	buf_put(b, s + start, n - start);
}

void
buf_put_b64(struct buf *b, const void *s, size_t n)
{
	const unsigned char *u = s;
	size_t chunk;

	/* EVP_EncodeBlock takes an int: a block at a time, a multiple of 3 */
	while (n > 0) {
		chunk = n > 3 << 20 ? 3 << 20 : n;
		buf_reserve(b, (chunk + 2) / 3 * 4 + 1);
		b->len += (size_t) EVP_EncodeBlock((unsigned char *) b->data + b->len, u, (int) chunk);
		u += chunk;
		n -= chunk;
	}
}

void
buf_put_base64(struct buf *b, const void *s, size_t n)
{
	buf_putc(b, '"');
	buf_put_b64(b, s, n);
	buf_putc(b, '"');
}

void
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n <= 0)
		return;
	buf_reserve(b, (size_t) n + 1);
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t) n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t) n;
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
