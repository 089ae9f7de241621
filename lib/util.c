#define _GNU_SOURCE	/* strptime, timegm */
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

static void *
oom(size_t n)
{
	fprintf(stderr, "%s: out of memory (%zu bytes)\n", progname, n);
	abort();
}

void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	return p ? p : oom(n);
}

void *
xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	return p ? p : oom(n * size);
}

void *
xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	return q ? q : oom(n);
}

char *
xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *
xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
rfc3339_ms(const char *s, size_t n)
{
	char copy[48], *rest;
	struct tm tm;
	int64_t ms = 0;
	int64_t secs;
	int scale = 100;

	if (n == 0 || n >= sizeof(copy))
		return 0;
	memcpy(copy, s, n);
	copy[n] = '\0';
	memset(&tm, 0, sizeof(tm));
	if (!(rest = strptime(copy, "%Y-%m-%dT%H:%M:%S", &tm)))
		return 0;
	if (*rest == '.')
		for (rest++; *rest >= '0' && *rest <= '9'; rest++, scale /= 10)
			ms += (*rest - '0') * scale;
	if (*rest != 'Z' || rest[1] != '\0')
		return 0;
	secs = (int64_t) timegm(&tm);
	return secs * 1000 + ms;
}

void
secret_free(char *s)
{
	if (!s)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}
