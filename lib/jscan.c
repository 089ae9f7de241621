#include "jscan.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"
#include "util.h"

static void
skip_ws(const char *s, size_t n, size_t *pos)
{
	while (*pos < n && (s[*pos] == ' ' || s[*pos] == '\t' || s[*pos] == '\n' || s[*pos] == '\r'))
		(*pos)++;
}

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

/*
 * *pos at the opening quote; leaves *pos after the closing one. Returns 0,
 * 1 when the string holds escapes, -1 when malformed. Eight bytes at a time.
 */
static inline int
scan_string(const char *s, size_t n, size_t *pos)
{
	size_t i = *pos + 1;
	uint64_t v, m;
	int esc = 0;

	for (;;) {
		if (i + 8 <= n) {
			memcpy(&v, s + i, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
			v = __builtin_bswap64(v);	/* the first byte lowest, as below */
#endif
			if ((m = special_bytes(v)) == 0) {
				i += 8;
				continue;
			}
			i += (size_t) __builtin_ctzll(m) / 8;
		} else {
			while (i < n && s[i] != '"' && s[i] != '\\' && (unsigned char) s[i] >= 0x20)
				i++;
			if (i >= n)
				return -1;
		}
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

static int
scan_number(const char *s, size_t n, size_t *pos)
{
	size_t i = *pos;

	while (i < n && ((s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == 'e' ||
			s[i] == 'E' || s[i] == '+' || s[i] == '-'))
		i++;
	if (!jnumber_valid(s + *pos, i - *pos))
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
		t->tree = NULL;
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
	t->tree = NULL;
	return rc;
}

/* A new node at the end of t; a container's n and next are set when it closes. */
static inline size_t
add_node(struct jtree *t, enum jtype type, const char *p, size_t n, bool esc)
{
	struct jnode *nd;

	if (t->len == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 256;
		t->v = xrealloc(t->v, t->cap * sizeof(*t->v));
	}
	nd = &t->v[t->len];
	nd->type = type;
	nd->p = p;
	nd->n = n;
	nd->esc = esc;
	nd->next = t->len + 1;
	return t->len++;
}

/* A number's end at s[i], after RFC 8259's grammar, or 0 when it is none. */
static size_t
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

/*
 * One pass over the text, a state machine: value, key (in an object), and
 * after a value (a comma, or the end of the container). Whitespace is
 * rare in machine-written JSON, so it is tested for before it is skipped.
 */
#define WS(ch) ((ch) == ' ' || (ch) == '\t' || (ch) == '\n' || (ch) == '\r')
#define SKIP_WS() do { while (pos < n && WS(s[pos])) pos++; } while (0)

int
jtree_parse(struct jtree *t, const char *s, size_t n, struct jtok *root)
{
	size_t open[256], pos = 0, start, k;
	int depth = 0, rc;
	char c;

	t->len = 0;
value:
	SKIP_WS();
	if (pos >= n)
		return -1;
	start = pos;
	switch (s[pos]) {
	case '"':
		if ((rc = scan_string(s, n, &pos)) < 0)
			return -1;
		add_node(t, J_STRING, s + start + 1, pos - start - 2, rc);
		goto after;
	case '{':
	case '[':
		if (depth == (int) (sizeof(open) / sizeof(open[0])))
			return -1;
		open[depth++] = add_node(t, s[pos] == '{' ? J_OBJECT : J_ARRAY, s + pos, 0, false);
		c = s[pos++] == '{' ? '}' : ']';
		SKIP_WS();
		if (pos < n && s[pos] == c)
			goto close;
		if (c == '}')
			goto key;
		goto value;
	case 't':
		if (n - pos < 4 || memcmp(s + pos, "true", 4) != 0)
			return -1;
		pos += 4;
		add_node(t, J_TRUE, s + start, 4, false);
		goto after;
	case 'f':
		if (n - pos < 5 || memcmp(s + pos, "false", 5) != 0)
			return -1;
		pos += 5;
		add_node(t, J_FALSE, s + start, 5, false);
		goto after;
	case 'n':
		if (n - pos < 4 || memcmp(s + pos, "null", 4) != 0)
			return -1;
		pos += 4;
		add_node(t, J_NULL, s + start, 4, false);
		goto after;
	default:
		if ((pos = number_end(s, n, pos)) == 0)
			return -1;
		add_node(t, J_NUMBER, s + start, pos - start, false);
		goto after;
	}
key:
	SKIP_WS();
	if (pos >= n || s[pos] != '"')
		return -1;
	start = pos;
	if ((rc = scan_string(s, n, &pos)) < 0)
		return -1;
	add_node(t, J_STRING, s + start + 1, pos - start - 2, rc);
	SKIP_WS();
	if (pos >= n || s[pos] != ':')
		return -1;
	pos++;
	goto value;
after:
	if (depth == 0)
		goto done;
	SKIP_WS();
	if (pos >= n)
		return -1;
	c = t->v[open[depth - 1]].type == J_OBJECT ? '}' : ']';
	if (s[pos] == ',') {
		pos++;
		if (c == '}')
			goto key;
		goto value;
	}
	if (s[pos] != c)
		return -1;
close:
	k = open[--depth];
	pos++;
	t->v[k].n = (size_t) (s + pos - t->v[k].p);
	t->v[k].next = t->len;
	goto after;
done:
	SKIP_WS();
	if (pos != n)
		return -1;
	root->type = t->v[0].type;
	root->p = t->v[0].p;
	root->n = t->v[0].n;
	root->esc = t->v[0].esc;
	root->tree = t;
	root->node = 0;
	return 0;
}

#undef SKIP_WS
#undef WS

void
jtree_free(struct jtree *t)
{
	free(t->v);
	t->v = NULL;
	t->len = t->cap = 0;
}

static void
tok_from_node(const struct jtree *t, size_t i, struct jtok *tok)
{
	tok->type = t->v[i].type;
	tok->p = t->v[i].p;
	tok->n = t->v[i].n;
	tok->esc = t->v[i].esc;
	tok->tree = t;
	tok->node = i;
}

int
jiter_begin(struct jiter *it, const struct jtok *c)
{
	if (c->type != J_OBJECT && c->type != J_ARRAY)
		return -1;
	it->tree = c->tree;
	if (c->tree) {
		it->pos = c->node + 1;
		it->n = c->tree->v[c->node].next;
		return 0;
	}
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
	int rc;

	if (it->tree) {
		if (it->pos >= it->n)
			return 0;
		tok_from_node(it->tree, it->pos, key);
		tok_from_node(it->tree, it->pos + 1, val);
		it->pos = it->tree->v[it->pos + 1].next;
		return 1;
	}
	rc = next_sep(it);

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
jiter_elem(struct jiter *it, struct jtok *val)
{
	int rc;

	if (it->tree) {
		if (it->pos >= it->n)
			return 0;
		tok_from_node(it->tree, it->pos, val);
		it->pos = it->tree->v[it->pos].next;
		return 1;
	}
	rc = next_sep(it);

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
