/*
 * libFuzzer target for the line-level parsers of outside input: the event
 * line head (ev_head), the JSON scanner walking a whole line, the UTF-8
 * check (against the table of well-formed sequences in the Unicode
 * standard, 3.9), and LSNs as they arrive on the ack pipe. A line that
 * ev_check accepts is valid UTF-8, and so is every string decoded from it.
 * Strings and numbers the scanner takes hold up against byte-at-a-time
 * references.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "../../lib/buf.h"
#include "../../lib/evline.h"
#include "../../lib/jscan.h"
#include "../../lib/lsn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * Offset of the first byte of s[0..n) not in a well-formed sequence, or n:
 * Unicode 15, table 3-7, byte by byte.
 */
static size_t
utf8_reference(const uint8_t *s, size_t n)
{
	static const struct {
		uint8_t lo0, hi0, lo1, hi1;
		int len;
	} rows[] = {
		{0x00, 0x7f, 0, 0, 1}, {0xc2, 0xdf, 0x80, 0xbf, 2}, {0xe0, 0xe0, 0xa0, 0xbf, 3},
		{0xe1, 0xec, 0x80, 0xbf, 3}, {0xed, 0xed, 0x80, 0x9f, 3}, {0xee, 0xef, 0x80, 0xbf, 3},
		{0xf0, 0xf0, 0x90, 0xbf, 4}, {0xf1, 0xf3, 0x80, 0xbf, 4}, {0xf4, 0xf4, 0x80, 0x8f, 4},
	};
	size_t i = 0, r, k;

	while (i < n) {
		for (r = 0; r < sizeof(rows) / sizeof(rows[0]); r++)
			if (s[i] >= rows[r].lo0 && s[i] <= rows[r].hi0)
				break;
		if (r == sizeof(rows) / sizeof(rows[0]) || i + (size_t) rows[r].len > n)
			return i;
		if (rows[r].len > 1 && (s[i + 1] < rows[r].lo1 || s[i + 1] > rows[r].hi1))
			return i;
		for (k = 2; k < (size_t) rows[r].len; k++)
			if (s[i + k] < 0x80 || s[i + k] > 0xbf)
				return i;
		i += (size_t) rows[r].len;
	}
	return n;
}

/*
 * A scanned string or number against byte-at-a-time references: a string
 * (scanned a word at a time) holds no raw quote or control character,
 * every backslash escapes the next byte, and esc says whether there is
 * one; a number (scanned in one pass) is one by the grammar.
 */
static void
check_scalar(const struct jtok *t)
{
	size_t i;
	bool esc = false;

	if (t->type == J_NUMBER && !jnumber_valid(t->p, t->n))
		__builtin_trap();
	if (t->type != J_STRING)
		return;
	for (i = 0; i < t->n; i++) {
		if (t->p[i] == '"' || (unsigned char) t->p[i] < 0x20)
			__builtin_trap();
		if (t->p[i] == '\\') {
			esc = true;
			if (++i == t->n)
				__builtin_trap();
		}
	}
	if (esc != t->esc || t->p[t->n] != '"')
		__builtin_trap();
}

/* Visit every member and element, decoding every string. */
static void
walk(const struct jtok *t, struct buf *scratch, int depth)
{
	struct jiter it;
	struct jtok k, v;

	check_scalar(t);
	if (depth > 64 || jiter_begin(&it, t) < 0)
		return;
	if (t->type == J_OBJECT)
		while (jiter_member(&it, &k, &v) == 1) {
			check_scalar(&k);
			jstr_decode(&k, scratch);
			walk(&v, scratch, depth + 1);
		}
	else
		while (jiter_elem(&it, &v) == 1)
			walk(&v, scratch, depth + 1);
	if (t->type == J_STRING)
		jstr_decode(t, scratch);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *) data, *err;
	struct ev_head h;
	struct jtok t;
	struct buf scratch = {0};
	size_t pos = 0, at = size, want = utf8_reference(data, size);
	lsn_t lsn;
	char back[LSN_BUFSZ];
	int checked;

	if (ev_head(s, size, &h, &err) == 0 && h.opname.type != J_STRING)
		__builtin_trap();
	/* the fast check agrees with the reference, on where the first bad byte is too */
	if ((jutf8_check(s, size, &at, &err) == 0) != (want == size) || at != want)
		__builtin_trap();
	checked = ev_check(s, size, &h, &err) == 0;
	if (checked && want != size)
		__builtin_trap();
	if (jscan_value(s, size, &pos, &t) == 0) {
		walk(&t, &scratch, 0);
		if (t.type == J_STRING)
			jstr_decode(&t, &scratch);
		/* escapes decode to valid UTF-8: no lone surrogate gets through */
		if (checked && scratch.len && utf8_reference((const uint8_t *) scratch.data, scratch.len) != scratch.len)
			__builtin_trap();
	}
	if (lsn_parse(s, size, &lsn) == 0) {
		lsn_t again;
		int n = lsn_format(lsn, back);

		if (lsn_parse(back, (size_t) n, &again) < 0 || again != lsn)
			__builtin_trap();
	}
	buf_free(&scratch);
	return 0;
}
