#include "log.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

const char *progname = "pgcdc";
static enum log_level min_level = LOG_INFO;
static enum log_format format = LOG_FORMAT_LOGFMT;
static void (*hook)(int level, const char *msg);

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

void
log_set_format(enum log_format f)
{
	format = f;
}

void
log_set_hook(void (*fn)(int level, const char *msg))
{
	hook = fn;
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

/*
 * Append s to line as a JSON string, closed even when s is cut short to
 * fit, and then not in the middle of a UTF-8 character.
 */
static void
append_json(char *line, size_t *len, size_t cap, const char *s)
{
	size_t n = *len, start;

	if (n < cap)
		line[n++] = '"';
	start = n;
	for (; *s && n + 7 < cap; s++) {
		unsigned char ch = (unsigned char) *s;

		if (ch == '"' || ch == '\\') {
			line[n++] = '\\';
			line[n++] = (char) ch;
		} else if (ch == '\n' || ch == '\r' || ch == '\t') {
			line[n++] = '\\';
			line[n++] = ch == '\n' ? 'n' : ch == '\r' ? 'r' : 't';
		} else if (ch < 0x20 || ch == 0x7f)
			n += (size_t) snprintf(line + n, cap - n, "\\u%04x", ch);
		else
			line[n++] = (char) ch;
	}
	if (*s) {
		size_t lead = n;

		while (lead > start && ((unsigned char) line[lead - 1] & 0xc0) == 0x80)
			lead--;
		if (lead > start && (unsigned char) line[lead - 1] >= 0xc0) {
			unsigned char c = (unsigned char) line[lead - 1];
			size_t need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;

			if (n - (lead - 1) < need)
				n = lead - 1;
		}
	}
	if (n < cap)
		line[n++] = '"';
	*len = n;
}

void
log_kv_array(enum log_level level, const char *msg, const char *const *kv)
{
	char line[4096], ts[40], tsfull[48];
	size_t len = 0, cap = sizeof(line) - 2;
	struct timeval tv;
	struct tm tm;
	size_t i;

	if (hook)
		hook(level, msg);
	if (level < min_level)
		return;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(tsfull, sizeof(tsfull), "%s.%03dZ", ts, (int) (tv.tv_usec / 1000));
	if (format == LOG_FORMAT_JSON) {
		len = (size_t) snprintf(line, cap, "{\"ts\":\"%s\",\"level\":\"%s\",\"prog\":", tsfull,
				level_names[level]);
		append_json(line, &len, cap, progname);
		append_raw(line, &len, cap, ",\"msg\":");
		append_json(line, &len, cap, msg);
		/*
		 * A line cut short is still an object: a pair goes in only when its
		 * key and an empty value fit, and values stop short of the room the
		 * closing brace needs.
		 */
		for (i = 0; kv[i]; i += 2) {
			if (kv[i + 1] == NULL)
				continue;
			if (len + strlen(kv[i]) + 16 > cap)
				break;
			append_raw(line, &len, cap, ",");
			append_json(line, &len, cap, kv[i]);
			append_raw(line, &len, cap, ":");
			append_json(line, &len, cap - 1, kv[i + 1]);
		}
		if (len > cap - 1)
			len = cap - 1;
		line[len++] = '}';
	} else {
		len = (size_t) snprintf(line, cap, "ts=%s level=%s prog=", tsfull, level_names[level]);
		append_value(line, &len, cap, progname);
		append_raw(line, &len, cap, " msg=");
		append_value(line, &len, cap, msg);
		for (i = 0; kv[i]; i += 2) {
			if (kv[i + 1] == NULL)
				continue;
			append_raw(line, &len, cap, " ");
			append_raw(line, &len, cap, kv[i]);
			append_raw(line, &len, cap, "=");
			append_value(line, &len, cap, kv[i + 1]);
		}
	}
	line[len++] = '\n';
	/* one write() so lines from the stages of a pipeline do not interleave */
	if (write(STDERR_FILENO, line, len) < 0)
		return;
}

void
log_vkv(enum log_level level, const char *msg, va_list ap)
{
	const char *kv[2 * 32 + 1];
	size_t n = 0;

	while (n < 2 * 32 && (kv[n] = va_arg(ap, const char *)) != NULL) {
		kv[n + 1] = va_arg(ap, const char *);
		n += 2;
	}
	kv[n] = NULL;
	log_kv_array(level, msg, kv);
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
