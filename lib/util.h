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

#endif
