/*
 * UTF-8: one decoder of a single sequence, used wherever text is checked
 * or escaped, so every program agrees on what valid UTF-8 is (RFC 3629:
 * no overlong forms, no surrogates, nothing above U+10FFFF).
 */
#ifndef PGCDC_UTF8_H
#define PGCDC_UTF8_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/*
 * The length (1 to 4) of the valid UTF-8 sequence at s[0..n), its code
 * point in *cp; 0 when s does not start with a valid sequence (n > 0).
 */
static inline size_t
utf8_seq(const unsigned char *s, size_t n, uint32_t *cp)
{
	size_t len, k;
	uint32_t v;

	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, v = s[0] & 0x1f;
	else if ((s[0] & 0xf0) == 0xe0)
		len = 3, v = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, v = s[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (k = 1; k < len; k++) {
		if ((s[k] & 0xc0) != 0x80)
			return 0;
		v = v << 6 | (s[k] & 0x3f);
	}
	if ((len == 3 && v < 0x800) || (len == 4 && v < 0x10000) || v > 0x10ffff ||
			(v >= 0xd800 && v < 0xe000))
		return 0;
	*cp = v;
	return len;
}

/* Is s[0..n) valid UTF-8 throughout? */
static inline int
utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *) s;
	size_t i = 0, len;
	uint32_t cp;

	while (i < n) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		if ((len = utf8_seq(p + i, n - i, &cp)) == 0)
			return 0;
		i += len;
	}
	return 1;
}

/* s[0..n) is all ASCII: no high bit anywhere, looked at without a branch per word. */
static inline int
utf8_all_ascii(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *) s;
	uint64_t acc = 0, w[4];
	size_t i = 0;

	if (n < 8) {
		unsigned char c = 0;

		for (; i < n; i++)
			c |= u[i];
		return !(c & 0x80);
	}
	for (; i + 32 <= n; i += 32) {
		memcpy(w, u + i, 32);
		acc |= w[0] | w[1] | w[2] | w[3];
	}
	for (; i + 8 <= n; i += 8) {
		memcpy(w, u + i, 8);
		acc |= w[0];
	}
	memcpy(w, u + n - 8, 8);	/* the last bytes, overlapping what was seen */
	return !((acc | w[0]) & 0x8080808080808080ULL);
}

#endif
