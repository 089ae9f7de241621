#include "lsn.h"


static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Parse 1..8 hex digits from s[*i] up to stop; -1 when there are none or too many. */
static int
hexpart(const char *s, size_t len, size_t *i, uint32_t *out)
{
	size_t start = *i;
	uint32_t v = 0;
	int d;

	while (*i < len && (d = hexval(s[*i])) >= 0) {
		v = v << 4 | (uint32_t) d;
		(*i)++;
	}
	if (*i == start || *i - start > 8)
		return -1;
	*out = v;
	return 0;
}

int
lsn_parse(const char *s, size_t len, lsn_t *out)
{
	size_t i = 0;
	uint32_t hi, lo;

	if (hexpart(s, len, &i, &hi) < 0 || i >= len || s[i] != '/')
		return -1;
	i++;
	if (hexpart(s, len, &i, &lo) < 0 || i != len)
		return -1;
	*out = (lsn_t) hi << 32 | lo;
	return 0;
}

/* Upper-case hex of v without leading zeros ("0" for 0); returns length. */
static int
put_hex(uint32_t v, char *out)
{
	static const char hex[] = "0123456789ABCDEF";
	int n = 0, shift;

	for (shift = 28; shift > 0 && (v >> shift) == 0; shift -= 4)
		;
	for (; shift >= 0; shift -= 4)
		out[n++] = hex[(v >> shift) & 15];
	return n;
}

int
lsn_format(lsn_t lsn, char *buf)
{
	/* by hand: this runs several times per event */
	int n = put_hex((uint32_t) (lsn >> 32), buf);

	buf[n++] = '/';
	n += put_hex((uint32_t) lsn, buf + n);
	buf[n] = '\0';
	return n;
}
