/*
 * Allocation wrappers and small helpers. The wrappers print one line and
 * abort on out-of-memory: the one place lib/ may end the process.
 */
#ifndef PGCDC_UTIL_H
#define PGCDC_UTIL_H

#include <stddef.h>
#include <stdint.h>

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* Wipe a NUL-terminated secret, then free it. NULL is fine. */
void secret_free(char *s);

/* Monotonic clock in milliseconds. */
int64_t now_ms(void);
/* Wall clock, milliseconds since the epoch. */
int64_t wall_ms(void);
/* An RFC 3339 UTC time as events write it ("2026-11-24T14:31:06.112398Z") in ms since the epoch; 0 if it is not one. */
int64_t rfc3339_ms(const char *s, size_t n);

#endif
