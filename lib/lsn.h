/*
 * Log sequence numbers: 64-bit WAL positions written "16/B374D848", the
 * form PostgreSQL prints. The only place LSNs are parsed or formatted.
 */
#ifndef PGCDC_LSN_H
#define PGCDC_LSN_H

#include <stddef.h>
#include <stdint.h>

typedef uint64_t lsn_t;

#define LSN_INVALID ((lsn_t) 0)
#define LSN_BUFSZ 18		/* "FFFFFFFF/FFFFFFFF" + NUL */

/*
 * Parse exactly len bytes of s as an LSN: 1 to 8 hex digits, "/", 1 to 8 hex
 * digits, nothing else. Returns 0 and sets *out, or -1 if s is not one.
 */
int lsn_parse(const char *s, size_t len, lsn_t *out);

/* Format lsn into buf (LSN_BUFSZ bytes) with upper-case hex; returns length. */
int lsn_format(lsn_t lsn, char *buf);

#endif
