#include "jscan.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include <stdint.h>
#include <string.h>

#include "utf8.h"

static void
skip_ws(const char *s, size_t n, size_t *pos)
{
	while (*pos < n && (s[*pos] == ' ' || s[*pos] == '\t' || s[*pos] == '\n' || s[*pos] == '\r'))
		(*pos)++;
}

#ifndef __SSE2__
/*
 * A mask with the high bit set in each byte of v that is '"', '\\' or a
 * control character (below 0x20); the lowest set bit marks the first such
 * byte exactly (bits above it may be false alarms from borrows).
 */
static inline uint64_t
special_bytes(uint64_t v)
{
	const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
	uint64_t q = v ^ (ones * '"'), b = v ^ (ones * '\\');

	return ((q - ones) & ~q & high) | ((b - ones) & ~b & high) | ((v - ones * 0x20) & ~v & high);
}
#endif

/*
 * *pos at the opening quote; leaves *pos after the closing one. Returns 0,
 * 1 when the string holds escapes, -1 when malformed. Sixteen bytes at a
 * time with SSE2 (every x86-64 has it), else eight.
 */
static inline int
scan_string(const char *s, size_t n, size_t *pos)
{
	size_t i = *pos + 1;
	int esc = 0;

	for (;;) {
#ifdef __SSE2__
		const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'),
				ctl = _mm_set1_epi8(0x1f);
		unsigned mask;

		for (; i + 16 <= n; i += 16) {
			__m128i v = _mm_loadu_si128((const __m128i *) (s + i));

			/* '"', '\\', or a byte no greater than 0x1f */
			mask = (unsigned) _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote),
					_mm_cmpeq_epi8(v, bslash)), _mm_cmpeq_epi8(_mm_max_epu8(v, ctl), ctl)));
			if (mask) {
				i += (size_t) __builtin_ctz(mask);
				goto found;
			}
		}
#else
		uint64_t v, m;

		for (; i + 8 <= n; i += 8) {
			memcpy(&v, s + i, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
			v = __builtin_bswap64(v);	/* the first byte lowest, as below */
#endif
			if ((m = special_bytes(v)) != 0) {
				i += (size_t) __builtin_ctzll(m) / 8;
				goto found;
			}
		}
#endif
		while (i < n && s[i] != '"' && s[i] != '\\' && (unsigned char) s[i] >= 0x20)
			i++;
		if (i >= n)
			return -1;
found:
		if (s[i] == '"') {
			*pos = i + 1;
			return esc;
		}
		if (s[i] != '\\' || (i += 2) > n)
			return -1;	/* a raw control character, or a backslash at the end */
		esc = 1;
	}
}

/* *pos at '{' or '['; leaves *pos after the matching close. Nesting up to 256. */
static int
scan_container(const char *s, size_t n, size_t *pos)
{
	char stack[256];
	int depth = 0;
	size_t i = *pos;

	while (i < n) {
		char c = s[i];

		if (c == '"') {
			if (scan_string(s, n, &i) < 0)
				return -1;
			continue;
		}
		if (c == '{' || c == '[') {
			if (depth == (int) sizeof(stack))
				return -1;
			stack[depth++] = c == '{' ? '}' : ']';
		} else if (c == '}' || c == ']') {
			if (stack[--depth] != c)
				return -1;
			if (depth == 0) {
				*pos = i + 1;
				return 0;
			}
		} else if ((unsigned char) c < 0x20 && c != '\t' && c != '\n' && c != '\r')
			return -1;	/* a raw control character outside strings */
		i++;
	}
	return -1;
}

static int
scan_literal(const char *s, size_t n, size_t *pos, const char *lit)
{
	size_t len = strlen(lit);

	if (n - *pos < len || memcmp(s + *pos, lit, len) != 0)
		return -1;
	*pos += len;
	return 0;
}

int
jnumber_valid(const char *s, size_t n)
{
	size_t i = 0, d;

	if (i < n && s[i] == '-')
		i++;
	for (d = i; i < n && s[i] >= '0' && s[i] <= '9'; i++)
		;
	if (i == d || (s[d] == '0' && i - d > 1))
		return 0;
	if (i < n && s[i] == '.') {
		for (d = ++i; i < n && s[i] >= '0' && s[i] <= '9'; i++)
			;
		if (i == d)
			return 0;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		for (d = i; i < n && s[i] >= '0' && s[i] <= '9'; i++)
			;
		if (i == d)
			return 0;
	}
	return i == n;
}

/* A number's end at s[i], after RFC 8259's grammar, or 0 when it is none. */
static inline size_t
number_end(const char *s, size_t n, size_t i)
{
#define DIGIT(k) ((k) < n && s[k] >= '0' && s[k] <= '9')
	if (i < n && s[i] == '-')
		i++;
	if (i < n && s[i] == '0')
		i++;
	else if (DIGIT(i))
		while (DIGIT(i))
			i++;
	else
		return 0;
	if (i < n && s[i] == '.') {
		if (!DIGIT(i + 1))
			return 0;
		for (i++; DIGIT(i); i++)
			;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		if (!DIGIT(i))
			return 0;
		while (DIGIT(i))
			i++;
	}
	return i;
#undef DIGIT
}

/* A number at s[*pos], in one pass; one that runs on into number characters is not one. */
static int
scan_number(const char *s, size_t n, size_t *pos)
{
	size_t i = number_end(s, n, *pos);

	if (i == 0 || (i < n && ((s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == 'e' ||
			s[i] == 'E' || s[i] == '+' || s[i] == '-')))
		return -1;
	*pos = i;
	return 0;
}

int
jscan_value(const char *s, size_t n, size_t *pos, struct jtok *t)
{
	size_t start;
	int rc;

	skip_ws(s, n, pos);
	if (*pos >= n)
		return -1;
	start = *pos;
	switch (s[start]) {
	case '"':
		rc = scan_string(s, n, pos);
		t->type = J_STRING;
		t->p = s + start + 1;
		t->n = *pos - start - 2;
		t->esc = rc > 0;
		return rc < 0 ? -1 : 0;
	case '{':
	case '[':
		t->type = s[start] == '{' ? J_OBJECT : J_ARRAY;
		rc = scan_container(s, n, pos);
		break;
	case 't':
		t->type = J_TRUE;
		rc = scan_literal(s, n, pos, "true");
		break;
	case 'f':
		t->type = J_FALSE;
		rc = scan_literal(s, n, pos, "false");
		break;
	case 'n':
		t->type = J_NULL;
		rc = scan_literal(s, n, pos, "null");
		break;
	default:
		t->type = J_NUMBER;
		rc = scan_number(s, n, pos);
		break;
	}
	t->p = s + start;
	t->n = *pos - start;
	t->esc = false;
	return rc;
}

int
jiter_begin(struct jiter *it, const struct jtok *c)
{
	if (c->type != J_OBJECT && c->type != J_ARRAY)
		return -1;
	it->s = c->p;
	it->n = c->n - 1;	/* stop before the closing bracket */
	it->pos = 1;
	it->first = 1;
	return 0;
}

/* Before an element: ',' unless first. 0 at the end, 1 more to come, -1 bad. */
static int
next_sep(struct jiter *it)
{
	skip_ws(it->s, it->n, &it->pos);
	if (it->pos >= it->n)
		return 0;
	if (!it->first) {
		if (it->s[it->pos] != ',')
			return -1;
		it->pos++;
	}
	it->first = 0;
	return 1;
}

int
jiter_member(struct jiter *it, struct jtok *key, struct jtok *val)
{
	int rc = next_sep(it);

	if (rc <= 0)
		return rc;
	if (jscan_value(it->s, it->n, &it->pos, key) < 0 || key->type != J_STRING)
		return -1;
	skip_ws(it->s, it->n, &it->pos);
	if (it->pos >= it->n || it->s[it->pos] != ':')
		return -1;
	it->pos++;
	return jscan_value(it->s, it->n, &it->pos, val) < 0 ? -1 : 1;
}

int
jiter_next(struct jiter *it)
{
	int rc = next_sep(it);

	if (rc > 0)
		skip_ws(it->s, it->n, &it->pos);
	return rc;
}

int
jiter_value(struct jiter *it, struct jtok *val)
{
	return jscan_value(it->s, it->n, &it->pos, val);
}

const char *
jiter_at(const struct jiter *it, size_t *left)
{
	*left = it->n - it->pos;
	return it->s + it->pos;
}

void
jiter_skip(struct jiter *it, size_t len)
{
	it->pos += len;
}

int
jiter_elem(struct jiter *it, struct jtok *val)
{
	int rc = next_sep(it);

	if (rc <= 0)
		return rc;
	return jscan_value(it->s, it->n, &it->pos, val) < 0 ? -1 : 1;
}

int
jtok_eq(const struct jtok *t, const char *s)
{
	size_t len = strlen(s);

	return t->type == J_STRING && t->n == len && memcmp(t->p, s, len) == 0;
}

static int
hex4(const char *p, unsigned *out)
{
	unsigned v = 0;
	int i;

	for (i = 0; i < 4; i++) {
		char c = p[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned) (c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned) (c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned) (c - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

static void
put_utf8(struct buf *out, unsigned cp)
{
	char u[4];

	if (cp < 0x80) {
		buf_putc(out, (char) cp);
	} else if (cp < 0x800) {
		u[0] = (char) (0xc0 | cp >> 6);
		u[1] = (char) (0x80 | (cp & 0x3f));
		buf_put(out, u, 2);
	} else if (cp < 0x10000) {
		u[0] = (char) (0xe0 | cp >> 12);
		u[1] = (char) (0x80 | (cp >> 6 & 0x3f));
		u[2] = (char) (0x80 | (cp & 0x3f));
		buf_put(out, u, 3);
	} else {
		u[0] = (char) (0xf0 | cp >> 18);
		u[1] = (char) (0x80 | (cp >> 12 & 0x3f));
		u[2] = (char) (0x80 | (cp >> 6 & 0x3f));
		u[3] = (char) (0x80 | (cp & 0x3f));
		buf_put(out, u, 4);
	}
}

int
jstr_decode(const struct jtok *t, struct buf *out)
{
	const char *p = t->p, *end = t->p + t->n, *run = p;
	unsigned cp, lo;

	while (p < end) {
		if (*p != '\\') {
			p++;
			continue;
		}
		buf_put(out, run, (size_t) (p - run));
		if (++p >= end)
			return -1;
		switch (*p) {
		case '"': case '\\': case '/':
			buf_putc(out, *p);
			break;
		case 'b': buf_putc(out, '\b'); break;
		case 'f': buf_putc(out, '\f'); break;
		case 'n': buf_putc(out, '\n'); break;
		case 'r': buf_putc(out, '\r'); break;
		case 't': buf_putc(out, '\t'); break;
		case 'u':
			if (end - p < 5 || hex4(p + 1, &cp) < 0)
				return -1;
			p += 4;
			if (cp >= 0xd800 && cp < 0xdc00) {
				if (end - p < 7 || p[1] != '\\' || p[2] != 'u' || hex4(p + 3, &lo) < 0 ||
						lo < 0xdc00 || lo > 0xdfff)
					return -1;
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				p += 6;
			} else if (cp >= 0xdc00 && cp < 0xe000)
				return -1;
			put_utf8(out, cp);
			break;
		default:
			return -1;
		}
		run = ++p;
	}
	buf_put(out, run, (size_t) (end - run));
	return 0;
}

/* What is wrong with the sequence at s[0..n), which utf8_seq refused. */
static const char *
utf8_why(const unsigned char *s, size_t n)
{
	size_t len, k;

	if (s[0] < 0xc0)
		return "invalid UTF-8: stray continuation byte";
	if (s[0] < 0xc2)
		return "invalid UTF-8: overlong form";
	if (s[0] > 0xf7)
		return "invalid UTF-8: byte 0xF8 to 0xFF, which never occurs in UTF-8";
	if (s[0] > 0xf4)
		return "invalid UTF-8: code point above U+10FFFF";
	len = s[0] < 0xe0 ? 2 : s[0] < 0xf0 ? 3 : 4;
	for (k = 1; k < len; k++)
		if (k >= n || (s[k] & 0xc0) != 0x80)
			return "invalid UTF-8: sequence cut short";
	if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xf0 && s[1] < 0x90))
		return "invalid UTF-8: overlong form";
	if (s[0] == 0xed && s[1] >= 0xa0)
		return "invalid UTF-8: surrogate (U+D800 to U+DFFF)";
	return "invalid UTF-8: code point above U+10FFFF";	/* f4 90.. */
}

int
jutf8_check(const char *s, size_t n, size_t *at, const char **why)
{
	const unsigned char *u = (const unsigned char *) s;
	size_t i = 0, len;
	uint32_t cp;

	if (utf8_all_ascii(s, n))	/* most event lines */
		return 0;
	while (i < n) {
		/* text is mostly ASCII even here: 32 bytes per step while no high bit is set */
		while (i + 32 <= n) {
			uint64_t w[4];

			memcpy(w, u + i, 32);
			if ((w[0] | w[1] | w[2] | w[3]) & 0x8080808080808080ULL)
				break;
			i += 32;
		}
		while (i + 8 <= n) {
			uint64_t w;

			memcpy(&w, u + i, 8);
			if (w & 0x8080808080808080ULL)
				break;
			i += 8;
		}
		while (i < n && u[i] < 0x80)
			i++;
		if (i >= n)
			break;
		if ((len = utf8_seq(u + i, n - i, &cp)) == 0) {
			*at = i;
			*why = utf8_why(u + i, n - i);
			return -1;
		}
		i += len;
	}
	return 0;
}
