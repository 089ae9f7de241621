#include "log.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

const char *progname = "pgcdc";
static enum log_level min_level = LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void
log_init(const char *argv0)
{
	const char *slash = strrchr(argv0, '/');

	progname = slash ? slash + 1 : argv0;
}

void
log_set_level(enum log_level level)
{
	min_level = level;
}

int
log_enabled(enum log_level level)
{
	return level >= min_level;
}

/* Append s to line (at *len, capacity cap), quoted and escaped when logfmt needs it. */
static void
append_value(char *line, size_t *len, size_t cap, const char *s)
{
	int quote = *s == '\0' || strpbrk(s, " =\"\\\t\n\r") != NULL;
	size_t n = *len;

	if (quote && n < cap)
		line[n++] = '"';
	for (; *s && n + 2 < cap; s++) {
		if (*s == '"' || *s == '\\') {
			line[n++] = '\\';
			line[n++] = *s;
		} else if (*s == '\n' || *s == '\r' || *s == '\t') {
			line[n++] = '\\';
			line[n++] = *s == '\n' ? 'n' : *s == '\r' ? 'r' : 't';
		} else if ((unsigned char) *s < 0x20 || *s == 0x7f)
			line[n++] = '?';	/* no terminal escapes in logs */
		else
			line[n++] = *s;
	}
	if (quote && n < cap)
		line[n++] = '"';
	*len = n;
}

static void
append_raw(char *line, size_t *len, size_t cap, const char *s)
{
	size_t n = strlen(s);

	if (n > cap - *len)
		n = cap - *len;
	memcpy(line + *len, s, n);
	*len += n;
}

void
log_vkv(enum log_level level, const char *msg, va_list ap)
{
	char line[4096], ts[40];
	size_t len = 0, cap = sizeof(line) - 1;
	struct timeval tv;
	struct tm tm;
	const char *key, *val;

	if (level < min_level)
		return;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	len = (size_t) snprintf(line, cap, "ts=%s.%03dZ level=%s prog=", ts,
			(int) (tv.tv_usec / 1000), level_names[level]);
	append_value(line, &len, cap, progname);
	append_raw(line, &len, cap, " msg=");
	append_value(line, &len, cap, msg);
	while ((key = va_arg(ap, const char *)) != NULL) {
		val = va_arg(ap, const char *);
		if (val == NULL)
			continue;
		append_raw(line, &len, cap, " ");
		append_raw(line, &len, cap, key);
		append_raw(line, &len, cap, "=");
		append_value(line, &len, cap, val);
	}
	line[len++] = '\n';
	/* one write() so lines from the stages of a pipeline do not interleave */
	if (write(STDERR_FILENO, line, len) < 0)
		return;
}

void
log_kv(enum log_level level, const char *msg, ...)
{
	va_list ap;

	va_start(ap, msg);
	log_vkv(level, msg, ap);
	va_end(ap);
}

void
usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry '%s --help' for more information.\n", progname);
}
