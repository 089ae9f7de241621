/*
 * The relation cache: tables seen on this stream, by pgoutput relation OID
 * or, for wal2json, by schema and table name.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture.h"
#include "../lib/log.h"
#include "../lib/util.h"

struct relation *
rel_find(struct capture *c, uint32_t relid, const char *schema, const char *table)
{
	size_t i;

	for (i = 0; i < c->nrels; i++) {
		struct relation *r = c->rels[i];

		if (relid ? r->relid == relid :
				strcmp(r->schema, schema) == 0 && strcmp(r->table, table) == 0)
			return r;
	}
	return NULL;
}

void
rel_free(struct relation *rel)
{
	int i;

	if (!rel)
		return;
	for (i = 0; i < rel->natts; i++) {
		free(rel->cols[i].name);
		free(rel->cols[i].typname);
		free(rel->cols[i].w2j_head);
		free(rel->cols[i].jname);
	}
	free(rel->cols);
	free(rel->w2j_pk);
	free(rel->jhead);
	free(rel->schema);
	free(rel->table);
	free(rel);
}

static bool
str_eq(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

bool
rel_same(const struct relation *a, const struct relation *b)
{
	int i;

	if (a->natts != b->natts || a->replident != b->replident ||
			strcmp(a->schema, b->schema) != 0 || strcmp(a->table, b->table) != 0)
		return false;
	for (i = 0; i < a->natts; i++) {
		if (strcmp(a->cols[i].name, b->cols[i].name) != 0 ||
				a->cols[i].typoid != b->cols[i].typoid || a->cols[i].key != b->cols[i].key ||
				a->cols[i].ident != b->cols[i].ident || a->cols[i].basetype != b->cols[i].basetype ||
				!str_eq(a->cols[i].typname, b->cols[i].typname))
			return false;
	}
	return true;
}

/*
 * Choose the columns of an event's "key" from the replica identity and
 * the primary key. The key names the row in every event about it, and
 * deletes carry only what the identity sends, so: the identity's columns
 * (DEFAULT: the primary key; USING INDEX: the index's columns); under
 * FULL the primary key when there is one, else every column; under
 * NOTHING the primary key, which only inserts can show.
 */
void
rel_derive_key(struct relation *rel)
{
	bool has_pk = false;
	int i;

	for (i = 0; i < rel->natts; i++)
		has_pk |= rel->cols[i].pk;
	for (i = 0; i < rel->natts; i++) {
		struct column *col = &rel->cols[i];

		switch (rel->replident) {
		case 'f':
			col->key = has_pk ? col->pk : true;
			break;
		case 'n':
			col->key = col->pk;
			break;
		default:
			col->key = col->ident;
		}
	}
}

/*
 * Without identity columns (NOTHING, or DEFAULT without a primary key) the
 * server has nothing to name an updated or deleted row by: pgoutput's
 * publications refuse such updates, wal2json drops them with a warning in
 * the server's log only. Say it here, where the operator looks.
 */
static void
warn_no_identity(const struct capture *c, const struct relation *rel)
{
	char tn[512];
	int i;

	if (rel->replident == 'f' || rel->natts == 0)
		return;
	for (i = 0; i < rel->natts; i++)
		if (rel->cols[i].ident)
			return;
	log_kv(LOG_WARN, "table has no replica identity: its updates and deletes cannot be captured",
			"slot", c->opt.slot, "table", table_name(tn, sizeof(tn), rel->schema, rel->table),
			"hint", "add a primary key or ALTER TABLE ... REPLICA IDENTITY FULL", NULL);
}

/* prefix, then s as a JSON string, into a new allocation (*n bytes, NUL-terminated); owned by the caller. */
static char *
json_dup(const char *prefix, const char *s, const char *prefix2, const char *s2, size_t *n)
{
	struct buf b = {0};

	buf_puts(&b, prefix);
	buf_put_jstr(&b, s, strlen(s));
	if (prefix2) {
		buf_puts(&b, prefix2);
		buf_put_jstr(&b, s2, strlen(s2));
	}
	buf_putc(&b, '\0');
	*n = b.len - 1;
	return b.data;
}

/*
 * The table's and its columns' names as JSON, escaped once here rather
 * than for every event (emit.c writes them as they are). rel_store does
 * it for the relations it keeps; others call it once complete.
 */
void
rel_prepare_json(struct relation *rel)
{
	int i;

	if (!rel->jhead)
		rel->jhead = json_dup(",\"schema\":", rel->schema, ",\"table\":", rel->table, &rel->jheadlen);
	for (i = 0; i < rel->natts; i++)
		if (!rel->cols[i].jname)
			rel->cols[i].jname = json_dup("", rel->cols[i].name, NULL, NULL, &rel->cols[i].jnamelen);
}

/*
 * Take ownership of rel and put it in the cache, replacing the entry for the
 * same table. An unchanged definition keeps its "announced" mark, so a
 * schema event goes out only for new or changed tables. Returns rel.
 */
struct relation *
rel_store(struct capture *c, struct relation *rel)
{
	size_t i;

	rel_prepare_json(rel);
	for (i = 0; i < c->nrels; i++) {
		struct relation *old = c->rels[i];
		bool same;

		if (rel->relid ? old->relid == rel->relid :
				strcmp(old->schema, rel->schema) == 0 && strcmp(old->table, rel->table) == 0) {
			same = rel_same(old, rel);
			rel->announced = old->announced && same;
			if (!same)
				warn_no_identity(c, rel);
			rel_free(old);
			c->rels[i] = rel;
			return rel;
		}
	}
	warn_no_identity(c, rel);
	c->rels = xrealloc(c->rels, (c->nrels + 1) * sizeof(*c->rels));
	c->rels[c->nrels++] = rel;
	return rel;
}

/* Room for two tuples of n values (old, then new), zeroed; owned by c. */
struct value *
tuple_scratch(struct capture *c, size_t n)
{
	if (c->nvals < 2 * n || !c->vals) {
		free(c->vals);
		c->nvals = 2 * n;
		c->vals = xmalloc(c->nvals * sizeof(*c->vals));
	}
	memset(c->vals, 0, 2 * n * sizeof(*c->vals));
	return c->vals;
}

const char *
table_name(char *buf, size_t n, const char *schema, const char *table)
{
	snprintf(buf, n, "%s.%s", schema, table);
	return buf;
}
