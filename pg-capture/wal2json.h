/*
 * wal2json.c and wal2json_short.c: what the long way (every check, every
 * error) and the short way (a known table's row change read in one walk)
 * share. Internal to the wal2json decoder.
 */
#ifndef PG_CAPTURE_WAL2JSON_H
#define PG_CAPTURE_WAL2JSON_H

#include <stdbool.h>
#include <stddef.h>

#include "capture.h"
#include "../lib/jscan.h"

#define KEY_IS(k, lit) ((k)->n == sizeof(lit) - 1 && memcmp((k)->p, (lit), sizeof(lit) - 1) == 0)

/* The tuples of a row change, pointing into c->vals. */
struct row {
	struct value *oldv, *newv;
};

/* wal2json.c */
int tok_text(struct capture *c, const struct jtok *t, bool nul, const char **p, size_t *n);
int set_value(struct capture *c, struct value *v, const struct jtok *t, uint32_t typoid);
int settle_new(char action, const struct relation *rel, struct value *newv);
int settle_old(char action, const struct relation *rel, struct row *r);

/* wal2json_short.c */
int known_col(const struct relation *rel, const char *s, size_t n, int hint, struct jtok *val, size_t *len);
void keep_head(struct column *col, const struct jtok *el, const struct jtok *value);
int short_change(struct capture *c, const char *s, size_t n, lsn_t lsn);

#endif
