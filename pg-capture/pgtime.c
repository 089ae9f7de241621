/*
 * PostgreSQL's timestamps as text (wal2json's commit times), read back
 * into the microseconds that format_ts writes out.
 */
#include <string.h>
#include <time.h>

#include "capture.h"

/* The separator sep (unless 0), then min to max decimal digits into *v. */
static int
field(const char **s, const char *e, char sep, int min, int max, long *v)
{
	int k = 0;

	if (sep && (*s >= e || *(*s)++ != sep))
		return -1;
	for (*v = 0; *s < e && k < max && **s >= '0' && **s <= '9'; k++)
		*v = *v * 10 + (*(*s)++ - '0');
	return k >= min ? 0 : -1;
}

/*
 * A commit time p[0..n) as PostgreSQL's ISO style prints it in the
 * server's time zone, "YYYY-MM-DD HH:MM:SS[.ffffff]+HH[:MM[:SS]]" (or
 * -HH...), into *out as microseconds since 2000-01-01 00:00:00 UTC.
 * Returns 0, or -1 when p is not such a time.
 */
int
pgtime_parse(const char *p, size_t n, int64_t *out)
{
	const char *s, *e, *f;
	struct tm tm;
	long year, mon, day, hh, mi, ss, us = 0, oh, om = 0, os = 0;
	int sign, k;
	time_t secs;

	s = p;
	e = p + n;
	if (field(&s, e, 0, 4, 9, &year) < 0 || field(&s, e, '-', 2, 2, &mon) < 0 ||
			field(&s, e, '-', 2, 2, &day) < 0 || field(&s, e, ' ', 2, 2, &hh) < 0 ||
			field(&s, e, ':', 2, 2, &mi) < 0 || field(&s, e, ':', 2, 2, &ss) < 0)
		return -1;
	if (s < e && *s == '.') {
		f = s + 1;
		if (field(&s, e, '.', 1, 6, &us) < 0)
			return -1;
		for (k = (int) (s - f); k < 6; k++)
			us *= 10;
	}
	if (s >= e || (*s != '+' && *s != '-'))
		return -1;
	sign = *s == '-' ? -1 : 1;
	if (field(&s, e, *s, 2, 2, &oh) < 0 || (s < e && field(&s, e, ':', 2, 2, &om) < 0) ||
			(s < e && field(&s, e, ':', 2, 2, &os) < 0))
		return -1;
	if (s != e || mon < 1 || mon > 12 || day < 1 || day > 31 || hh > 24 || mi > 59 || ss > 60)
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = (int) (year - 1900);
	tm.tm_mon = (int) (mon - 1);
	tm.tm_mday = (int) day;
	tm.tm_hour = (int) hh;
	tm.tm_min = (int) mi;
	tm.tm_sec = (int) ss;
	secs = timegm(&tm);
	secs -= (time_t) sign * (oh * 3600 + om * 60 + os);
	*out = ((int64_t) secs - PG_EPOCH_SECS) * 1000000 + us;
	return 0;
}
