/*
 * cdc-filter: keep or drop cdc-json events by table, operation and row
 * values, and drop or mask columns (see cdc-filter(1)).
 *
 * rules.c parses the command-line rules and decides per table (cached);
 * rewrite.c evaluates --where and rebuilds lines whose columns change;
 * main.c holds the options and the line loop.
 */
#ifndef CDC_FILTER_H
#define CDC_FILTER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "../lib/buf.h"
#include "../lib/evline.h"
#include "../lib/metrics.h"
#include "../lib/sha256.h"

/* schema.table pattern; schema NULL means any schema. Backslash escapes. */
struct tglob {
	char *schema;
	char *table;
};

enum colkind { COL_KEEP, COL_DROP, COL_MASK };

struct colrule {
	struct tglob tab;
	enum colkind kind;
	char **cols;		/* column name globs */
	size_t ncols;
};

enum opdkind { OPD_NEW, OPD_OLD, OPD_KEY, OPD_LIT };

struct operand {
	enum opdkind kind;
	char *text;			/* column name, or the literal */
	size_t len;
	bool quoted;		/* a literal written as "...": only a string equals it */
};

struct cond {
	struct tglob tab;
	bool any_table;		/* no GLOB: part */
	struct operand l, r;
	bool neq;
	char *spec;			/* as given, for messages */
};

/* What the rules say about one table, computed once and cached. */
struct tabinfo {
	char *key;			/* raw schema, NUL, raw table, as written in lines */
	size_t keylen;
	uint64_t hash;
	bool keep;
	struct colrule **rules;	/* column rules that apply */
	size_t nrules;
	bool has_keep;		/* one of them is a --columns list */
	struct cond **conds;	/* --where conditions that apply */
	size_t nconds;
};

struct rules {
	struct tglob *incl, *excl;
	size_t nincl, nexcl;
	unsigned ops;			/* bit (1 << enum ev_op) set: the op passes */
	unsigned ops_named, ops_negated;	/* as --op options gave them */
	struct colrule *cols;
	size_t ncols;
	bool masking;
	struct cond *conds;
	size_t nconds;
	/* table decisions, open addressing; emptied when full */
	struct tabinfo *cache;
	size_t ncache, capcache;
};

enum onerr { ONERR_STOP, ONERR_SKIP, ONERR_DEADLETTER };

struct filter {
	struct rules r;
	struct hmac mask_key;
	bool drop_empty_tx;
	enum onerr on_error;
	const char *dead_letter;
	FILE *dead;
	struct linereader in;
	struct buf out;
	struct buf held;		/* a begin line not written yet (--drop-empty-tx) */
	struct buf scratch;		/* a rewritten line */
	struct buf namebuf, tmp;	/* decoded names and values */
	struct metrics_opt metrics;
	unsigned ticks;			/* lines read: the clock is looked at every 1024 */
};

/* rules.c */

/*
 * Parse one option argument into r; on a syntax error return -1 with a
 * message naming the bad part in err (size errlen).
 */
int rules_add_tables(struct rules *r, const char *arg, bool exclude, char *err, size_t errlen);
int rules_set_ops(struct rules *r, const char *arg, char *err, size_t errlen);
int rules_add_columns(struct rules *r, const char *arg, enum colkind kind, char *err, size_t errlen);
int rules_add_where(struct rules *r, const char *arg, char *err, size_t errlen);
void rules_free(struct rules *r);

/*
 * What the rules say about the table named by the head's schema and table
 * tokens (raw, still escaped). Borrowed: valid until the next call.
 */
const struct tabinfo *rules_table(struct rules *r, const struct ev_head *h);

/*
 * Match name[0..n) against a glob: * any run, ? one character (UTF-8),
 * \x the character x. Returns true on a match.
 */
bool glob_match(const char *pat, const char *name, size_t n);

/* rewrite.c */

/*
 * Decide a row, schema or ddl line that the table's column rules or conditions
 * touch, its head as ev_check filled it: 0 drop, 1 keep as is, 2 keep as rewritten into f->scratch; -1
 * malformed, with a reason in *err.
 */
int rewrite_line(struct filter *f, const struct tabinfo *t, const struct ev_head *h, const char **err);

#endif
