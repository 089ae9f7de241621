/*
 * Diagnostics on stderr, one logfmt line each:
 *
 *   ts=2026-11-24T13:28:01.123Z level=error prog=pg-capture msg="could not ..." slot=app
 *
 * or with --log-format json one JSON object per line with the same keys:
 *
 *   {"ts":"2026-11-24T13:28:01.123Z","level":"error","prog":"pg-capture","msg":"could not ...","slot":"app"}
 *
 * stdout is for data only; nothing here writes to it.
 */
#ifndef PGCDC_LOG_H
#define PGCDC_LOG_H

#include <stdarg.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };
enum log_format { LOG_FORMAT_LOGFMT, LOG_FORMAT_JSON };

extern const char *progname;

/* Set progname from argv[0] (its last path component). */
void log_init(const char *argv0);
void log_set_level(enum log_level level);
int log_enabled(enum log_level level);
void log_set_format(enum log_format f);
/* Called with every line's level and message, written or not (metrics keep the last error). */
void log_set_hook(void (*fn)(int level, const char *msg));

/*
 * Write one line: msg, then key/value string pairs ending with a NULL key.
 * A pair whose value is NULL is left out. Values are quoted when needed.
 */
void log_kv(enum log_level level, const char *msg, ...);
void log_vkv(enum log_level level, const char *msg, va_list ap);
/* The same with the pairs in an array ending with a NULL key. */
void log_kv_array(enum log_level level, const char *msg, const char *const *kv);

/* "prog: MSG\nTry 'prog --help' for more information." on stderr. */
void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
