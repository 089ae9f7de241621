/*
 * Decoder for wal2json's format version 2: one JSON object per XLogData
 * message, with the options conn.c asks for (xids, timestamps, lsns,
 * primary keys, type OIDs, begin/commit). It makes the calls pgoutput.c
 * makes, so both plugins give the same events.
 *
 * wal2json names tables instead of describing them first, so a relation
 * comes from the catalog (catalog.c), checked against each message's
 * columns and re-described when they disagree (the table changed), or,
 * when the catalog cannot match the message, from the message itself.
 *
 * Messages are walked with lib/jscan, never parsed into a tree: numbers
 * keep their text, and strings without escapes are used where they lie.
 * Escaped strings are decoded into c->scratch, which gets room for the
 * whole message up front; a decoded JSON string is never longer than its
 * escaped form, so the buffer never moves while values point into it.
 *
 * Most messages are row changes of a table seen before, and wal2json
 * writes each column as {"name":..,"type":..,"typeoid":..,"value":..}
 * with the same text before the value every time. A relation keeps that
 * text per column once an element has been checked against it, and the
 * "pk" array that fitted; short_change then reads such a change in one
 * walk, comparing those heads and reading only the values. Anything else
 * (another shape, a new head, the table changed) takes the long way from
 * the start, which does every check and reports every error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture.h"
#include "wal2json.h"
#include "../lib/jscan.h"
#include "../lib/util.h"

/* The top-level members used; type J_NONE when absent. */
struct msg {
	struct jtok action, xid, timestamp, lsn, nextlsn, schema, table;
	struct jtok columns, identity, pk, transactional, prefix, content;
};

/* One element of "columns", "identity" or "pk". */
struct col {
	const char *name;
	size_t nlen;
	struct jtok type, value;
	uint32_t typoid;
	bool has_oid;
};

/* Decoding failed: the reason for the loop. Returns -1. */
static int
failed(struct capture *c, const char *what)
{
	snprintf(c->decode_err, sizeof(c->decode_err), "%s", what);
	return -1;
}

static int
malformed(struct capture *c, const char *what)
{
	snprintf(c->decode_err, sizeof(c->decode_err), "malformed wal2json message: %s", what);
	return -1;
}

#define IS_WS(ch) ((ch) == ' ' || (ch) == '\t' || (ch) == '\n' || (ch) == '\r')

/* Where a top-level member goes, or NULL for one not used. */
static struct jtok *
member_slot(struct msg *m, const struct jtok *k)
{
	if (k->n == 0)
		return NULL;
	switch (k->p[0]) {
	case 'a':
		return KEY_IS(k, "action") ? &m->action : NULL;
	case 'c':
		return KEY_IS(k, "columns") ? &m->columns : KEY_IS(k, "content") ? &m->content : NULL;
	case 'i':
		return KEY_IS(k, "identity") ? &m->identity : NULL;
	case 'l':
		return KEY_IS(k, "lsn") ? &m->lsn : NULL;
	case 'n':
		return KEY_IS(k, "nextlsn") ? &m->nextlsn : NULL;
	case 'p':
		return KEY_IS(k, "pk") ? &m->pk : KEY_IS(k, "prefix") ? &m->prefix : NULL;
	case 's':
		return KEY_IS(k, "schema") ? &m->schema : NULL;
	case 't':
		return KEY_IS(k, "table") ? &m->table : KEY_IS(k, "timestamp") ? &m->timestamp :
				KEY_IS(k, "transactional") ? &m->transactional : NULL;
	case 'x':
		return KEY_IS(k, "xid") ? &m->xid : NULL;
	default:
		return NULL;
	}
}

/*
 * Split the message into its members. The outer object is taken as it
 * stands (its members are checked as they are walked), which saves a scan.
 */
static int
parse_msg(const char *p, size_t n, struct msg *m)
{
	struct jtok obj = {J_OBJECT, NULL, 0}, key, val, *slot;
	struct jiter it;
	size_t start = 0;
	int rc;

	memset(m, 0, sizeof(*m));
	while (start < n && IS_WS(p[start]))
		start++;
	while (n > start && IS_WS(p[n - 1]))
		n--;
	if (n - start < 2 || p[start] != '{' || p[n - 1] != '}')
		return -1;
	obj.p = p + start;
	obj.n = n - start;
	if (jiter_begin(&it, &obj) < 0)
		return -1;
	while ((rc = jiter_member(&it, &key, &val)) > 0) {
		if (key.esc)
			continue;	/* none of ours is escaped */
		slot = member_slot(m, &key);
		if (slot)
			*slot = val;
	}
	return rc;
}

/*
 * A J_STRING token's text: in place when it has no escapes and nul is not
 * asked for, else decoded into c->scratch and NUL-terminated. The room
 * check keeps earlier pointers into c->scratch valid: with enough room,
 * buf_put never reallocates.
 */
int
tok_text(struct capture *c, const struct jtok *t, bool nul, const char **p, size_t *n)
{
	struct buf *s = &c->scratch;
	size_t start = s->len;

	if (t->type != J_STRING)
		return -1;
	if (!nul && !t->esc) {
		*p = t->p;
		*n = t->n;
		return 0;
	}
	if (s->cap - s->len < t->n + 1 || jstr_decode(t, s) < 0) {
		s->len = start;
		return -1;
	}
	*n = s->len - start;
	s->data[s->len++] = '\0';
	*p = s->data + start;
	return 0;
}

/* A number token holding an unsigned 32-bit integer. */
static int
tok_u32(const struct jtok *t, uint32_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (t->type != J_NUMBER || t->n == 0 || t->n > 10)
		return -1;
	for (i = 0; i < t->n; i++) {
		if (t->p[i] < '0' || t->p[i] > '9')
			return -1;
		v = v * 10 + (uint64_t) (t->p[i] - '0');
	}
	if (v > UINT32_MAX)
		return -1;
	*out = (uint32_t) v;
	return 0;
}

static int
tok_lsn(const struct jtok *t, lsn_t *out)
{
	if (t->type != J_STRING)
		return -1;
	return lsn_parse(t->p, t->n, out);
}

/* Read a column object; its name is decoded when escaped, the rest left as tokens. */
static int
parse_col(struct capture *c, const struct jtok *el, struct col *col)
{
	struct jtok key, val, name = {J_NONE, NULL, 0};
	struct jiter it;
	int rc;

	memset(col, 0, sizeof(*col));
	if (el->type != J_OBJECT || jiter_begin(&it, el) < 0)
		return -1;
	while ((rc = jiter_member(&it, &key, &val)) > 0) {
		if (KEY_IS(&key, "name"))
			name = val;
		else if (KEY_IS(&key, "value"))
			col->value = val;
		else if (KEY_IS(&key, "type"))
			col->type = val;
		else if (KEY_IS(&key, "typeoid")) {
			if (tok_u32(&val, &col->typoid) < 0)
				return -1;
			col->has_oid = true;
		}
	}
	if (rc < 0)
		return -1;
	return tok_text(c, &name, false, &col->name, &col->nlen);
}

static bool
name_is(const char *s, const char *p, size_t n)
{
	return strlen(s) == n && memcmp(s, p, n) == 0;
}

/* The relation's column named name; index hint first, as columns come in order. */
static int
col_index(const struct relation *rel, const char *name, size_t n, int hint)
{
	int i;

	if (hint < rel->natts && name_is(rel->cols[hint].name, name, n))
		return hint;
	for (i = 0; i < rel->natts; i++)
		if (name_is(rel->cols[i].name, name, n))
			return i;
	return -1;
}

/*
 * Does rel's primary key match the message's "pk"? No "pk" fits anything.
 * Returns 1 or 0, -1 when malformed.
 */
static int
pk_fits(struct capture *c, struct relation *rel, const struct jtok *pk)
{
	struct jiter it;
	struct jtok el;
	struct col col;
	size_t mark = c->scratch.len;
	int rc, k, i = 0, npk = 0, fits = 1;

	if (pk->type == J_NONE)
		return 1;
	/* the same text as one that fit: it fits */
	if (rel->w2j_pk && rel->w2j_pklen == pk->n && memcmp(rel->w2j_pk, pk->p, pk->n) == 0)
		return 1;
	if (pk->type != J_ARRAY || jiter_begin(&it, pk) < 0)
		return -1;
	while (fits && (rc = jiter_elem(&it, &el)) > 0) {
		if (parse_col(c, &el, &col) < 0)
			return -1;
		k = col_index(rel, col.name, col.nlen, i++);
		fits = k >= 0 && rel->cols[k].pk;
		c->scratch.len = mark;
	}
	if (!fits)
		return 0;
	if (rc < 0)
		return -1;
	for (k = 0; k < rel->natts; k++)
		npk += rel->cols[k].pk;
	if (npk != i)
		return 0;
	free(rel->w2j_pk);
	rel->w2j_pk = xstrndup(pk->p, pk->n);
	rel->w2j_pklen = pk->n;
	return 1;
}

/*
 * Make the message's "pk" rel's primary key: the one at the time of the
 * change, which the catalog (describing the table as it is now) may no
 * longer know; under REPLICA IDENTITY DEFAULT it is the identity too.
 * Columns it names that rel lacks are left to pk_fits.
 */
static int
apply_pk(struct capture *c, struct relation *rel, const struct jtok *pk)
{
	struct jiter it;
	struct jtok el;
	struct col col;
	size_t mark = c->scratch.len;
	int rc, k, i = 0;

	if (pk->type == J_NONE)
		return 0;
	if (pk->type != J_ARRAY || jiter_begin(&it, pk) < 0)
		return -1;
	for (k = 0; k < rel->natts; k++)
		rel->cols[k].pk = false;
	while ((rc = jiter_elem(&it, &el)) > 0) {
		if (parse_col(c, &el, &col) < 0)
			return -1;
		k = col_index(rel, col.name, col.nlen, i++);
		if (k >= 0)
			rel->cols[k].pk = true;
		c->scratch.len = mark;
	}
	if (rel->replident == 'd')
		for (k = 0; k < rel->natts; k++)
			rel->cols[k].ident = rel->cols[k].pk;
	rel_derive_key(rel);
	return rc;
}

/*
 * v from a column's JSON value: null, true/false as "t"/"f", numbers by
 * their text. wal2json writes bytea without its "\x" (hex output
 * assumed); put it back, so the value is PostgreSQL's text form as with
 * pgoutput.
 */
int
set_value(struct capture *c, struct value *v, const struct jtok *t, uint32_t typoid)
{
	struct buf *s = &c->scratch;
	size_t start = s->len;

	v->p = NULL;
	v->n = 0;
	switch (t->type) {
	case J_NULL:
		v->kind = 'n';
		return 0;
	case J_TRUE:
	case J_FALSE:
		v->kind = 't';
		v->p = t->type == J_TRUE ? "t" : "f";
		v->n = 1;
		return 0;
	case J_NUMBER:
		v->kind = 't';
		v->p = t->p;
		v->n = t->n;
		return 0;
	case J_STRING:
		v->kind = 't';
		if (typoid != 17)
			return tok_text(c, t, false, &v->p, &v->n);
		/* the quotes make room for the two bytes */
		if (s->cap - s->len < t->n + 2)
			return -1;
		buf_putlit(s, "\\x");
		if (jstr_decode(t, s) < 0)
			return -1;
		v->p = s->data + start;
		v->n = s->len - start;
		return 0;
	default:
		return -1;
	}
}

/*
 * Types of a fixed length, never TOASTed: an update that leaves out such
 * a column does so because the table changed, not to spare a value.
 */
static bool
fixed_length(uint32_t typoid)
{
	switch (typoid) {
	case 16: case 18: case 19: case 20: case 21: case 23: case 26:	/* bool char name int8 int2 int4 oid */
	case 27: case 28: case 29: case 700: case 701: case 790:		/* tid xid cid float4 float8 money */
	case 774: case 829: case 1082: case 1083: case 1114: case 1184:	/* macaddr8 macaddr date time timestamp(tz) */
	case 1186: case 1266: case 2950: case 3220:					/* interval timetz uuid pg_lsn */
	case 600: case 601: case 603: case 628: case 718:				/* point lseg box line circle */
		return true;
	default:
		return false;
	}
}

/*
 * Does the type the message names for a column (into *tp: as of the
 * change, "character varying(10)") differ from typname? False when it
 * names none.
 */
static bool
type_differs(struct capture *c, const struct jtok *type, const char *typname, const char **tp,
		size_t *tn)
{
	return type->type == J_STRING && tok_text(c, type, false, tp, tn) == 0 &&
			!(typname && name_is(typname, *tp, *tn));
}

/* Name rel's columns with the types of a "columns" or "identity" array, as of the change. */
static int
take_types(struct capture *c, struct relation *rel, const struct jtok *arr)
{
	struct jiter it;
	struct jtok el;
	struct col col;
	const char *tp;
	size_t tn, mark = c->scratch.len;
	int rc, k, i = 0;

	if (arr->type == J_NONE)
		return 0;
	if (arr->type != J_ARRAY || jiter_begin(&it, arr) < 0)
		return -1;
	while ((rc = jiter_elem(&it, &el)) > 0) {
		if (parse_col(c, &el, &col) < 0)
			return -1;
		k = col_index(rel, col.name, col.nlen, i++);
		if (k >= 0 && type_differs(c, &col.type, rel->cols[k].typname, &tp, &tn)) {
			free(rel->cols[k].typname);
			rel->cols[k].typname = xstrndup(tp, tn);
		}
		c->scratch.len = mark;
	}
	return rc;
}

/*
 * Put the values of a "columns" or "identity" array into v, by rel's column
 * indexes. Returns 0, 1 when the message names a column rel lacks or gives
 * it another type (the table changed), -1 when malformed (reported).
 * Elements whose head rel has seen take the short way (known_col).
 */
static int
fill_tuple(struct capture *c, struct relation *rel, const struct jtok *arr, struct value *v)
{
	struct jiter it;
	struct jtok el;
	struct col col;
	const char *tp, *at;
	size_t mark, tn, left, len;
	int rc, k, i = 0;

	if (arr->type != J_ARRAY || jiter_begin(&it, arr) < 0)
		return malformed(c, "column list is not an array");
	while ((rc = jiter_next(&it)) > 0) {
		at = jiter_at(&it, &left);
		if ((k = known_col(rel, at, left, i++, &el, &len)) >= 0) {
			jiter_skip(&it, len);
			if (set_value(c, &v[k], &el, rel->cols[k].typoid) < 0)
				return malformed(c, "bad column value");
			continue;
		}
		if (jiter_value(&it, &el) < 0)
			return malformed(c, "bad column list");
		mark = c->scratch.len;
		if (parse_col(c, &el, &col) < 0 || col.value.type == J_NONE)
			return malformed(c, "bad column");
		k = col_index(rel, col.name, col.nlen, i - 1);
		if (k < 0 || (col.has_oid && col.typoid != rel->cols[k].typoid) ||
				type_differs(c, &col.type, rel->cols[k].typname, &tp, &tn))
			return 1;
		c->scratch.len = mark;	/* the name is not needed any more */
		if (set_value(c, &v[k], &col.value, rel->cols[k].typoid) < 0)
			return malformed(c, "bad column value");
		keep_head(&rel->cols[k], &el, &col.value);
	}
	return rc < 0 ? malformed(c, "bad column list") : 0;
}

static bool
same_value(const struct value *a, const struct value *b)
{
	return a->kind == b->kind &&
			(a->kind != 't' || (a->n == b->n && memcmp(a->p, b->p, a->n) == 0));
}

/*
 * The new row's columns the message left out: an insert lists every
 * column, and an update leaves out only unchanged TOASTed values (marked
 * so). Returns 0, or 1 when rel has a column the table had not then.
 */
int
settle_new(char action, const struct relation *rel, struct value *newv)
{
	int i;

	for (i = 0; i < rel->natts; i++) {
		if (newv[i].kind != 0)
			continue;
		if (action == 'I' || fixed_length(rel->cols[i].typoid))
			return 1;
		newv[i].kind = 'u';
	}
	return 0;
}

/*
 * The old row from "identity": 1 when it holds other columns than rel's
 * replica identity (ALTER TABLE ... REPLICA IDENTITY changed it), else 0,
 * and none at all for an update that kept its key.
 */
int
settle_old(char action, const struct relation *rel, struct row *r)
{
	int i;

	for (i = 0; i < rel->natts; i++)
		if ((r->oldv[i].kind != 0) != rel->cols[i].ident)
			return 1;
	if (action == 'U' && rel->replident != 'f') {
		/*
		 * wal2json gives the identity of every update, from the new row
		 * when the key did not change; PostgreSQL logs (and pgoutput
		 * sends) an old key only when it did.
		 */
		for (i = 0; i < rel->natts; i++)
			if (r->oldv[i].kind != 0 && !same_value(&r->oldv[i], &r->newv[i]))
				break;
		if (i == rel->natts)
			r->oldv = NULL;
	}
	return 0;
}

/*
 * Decode an insert, update or delete against rel into r. Returns 0, 1
 * when rel does not match the message (describe again), -1 when malformed.
 */
static int
fill_change(struct capture *c, const struct msg *m, char action, struct relation *rel,
		struct row *r)
{
	struct value *v = tuple_scratch(c, (size_t) rel->natts);
	int rc = pk_fits(c, rel, &m->pk);

	r->oldv = r->newv = NULL;
	if (rc <= 0)
		return rc < 0 ? malformed(c, "bad pk") : 1;
	if (action != 'D') {
		r->newv = v + rel->natts;
		if ((rc = fill_tuple(c, rel, &m->columns, r->newv)) != 0 ||
				(rc = settle_new(action, rel, r->newv)) != 0)
			return rc;
	}
	if (action != 'I' && m->identity.type != J_NONE) {
		r->oldv = v;
		if ((rc = fill_tuple(c, rel, &m->identity, r->oldv)) != 0)
			return rc;
		return settle_old(action, rel, r);
	}
	return 0;
}

static struct relation *
new_rel(const char *schema, const char *table)
{
	struct relation *rel = xcalloc(1, sizeof(*rel));

	rel->schema = xstrdup(schema);
	rel->table = xstrdup(table);
	rel->replident = 'd';
	return rel;
}

/*
 * The table as the catalog has it, keyed by the message's "pk" and typed
 * by its columns' types; NULL when unknown.
 */
static struct relation *
catalog_rel(struct capture *c, const struct msg *m, const char *schema, const char *table)
{
	struct relation *rel = new_rel(schema, table);

	if (catalog_describe(c, rel) < 0 || apply_pk(c, rel, &m->pk) < 0 ||
			take_types(c, rel, &m->columns) < 0 || take_types(c, rel, &m->identity) < 0) {
		rel_free(rel);
		return NULL;
	}
	return rel;
}

/* Add the columns of arr that rel does not have yet; mark them all identity columns if ident. */
static int
add_cols(struct capture *c, struct relation *rel, const struct jtok *arr, bool ident)
{
	struct jiter it;
	struct jtok el;
	struct col col;
	struct column *dst;
	const char *tp;
	size_t tn, mark = c->scratch.len;
	int rc, k;

	if (arr->type == J_NONE)
		return 0;
	if (arr->type != J_ARRAY || jiter_begin(&it, arr) < 0)
		return -1;
	while ((rc = jiter_elem(&it, &el)) > 0) {
		if (parse_col(c, &el, &col) < 0)
			return -1;
		if ((k = col_index(rel, col.name, col.nlen, rel->natts)) >= 0)
			rel->cols[k].ident |= ident;
		else {
			rel->cols = xrealloc(rel->cols, (size_t) (rel->natts + 1) * sizeof(*rel->cols));
			dst = &rel->cols[rel->natts++];
			memset(dst, 0, sizeof(*dst));
			dst->name = xstrndup(col.name, col.nlen);
			dst->typoid = col.typoid;
			dst->ident = ident;
			if (col.type.type == J_STRING && tok_text(c, &col.type, false, &tp, &tn) == 0)
				dst->typname = xstrndup(tp, tn);
		}
		c->scratch.len = mark;
	}
	return rc;
}

/*
 * The table as the message shows it, for when the catalog cannot say (no
 * catalog connection, table dropped or changed since): its columns, its
 * primary key, and its replica identity taken from "identity" (the
 * primary key's columns: default; every column: full; others: an index),
 * or default when the message has none.
 */
static struct relation *
message_rel(struct capture *c, const struct msg *m, const char *schema, const char *table)
{
	struct relation *rel = new_rel(schema, table);
	bool has_ident = m->identity.type != J_NONE;
	int i, same = 0, all = 0;

	/* a delete names only the identity's columns, and perhaps a primary key besides */
	if (add_cols(c, rel, &m->columns, false) < 0 || add_cols(c, rel, &m->identity, false) < 0 ||
			add_cols(c, rel, &m->pk, false) < 0 || apply_pk(c, rel, &m->pk) < 0) {
		rel_free(rel);
		malformed(c, "bad column list");
		return NULL;
	}
	if (has_ident) {
		/* apply_pk made the primary key the identity (default): the message's own instead */
		for (i = 0; i < rel->natts; i++)
			rel->cols[i].ident = false;
		add_cols(c, rel, &m->identity, true);
		for (i = 0; i < rel->natts; i++) {
			same += rel->cols[i].ident == rel->cols[i].pk;
			all += rel->cols[i].ident;
		}
		rel->replident = same == rel->natts ? 'd' : all == rel->natts ? 'f' : 'i';
		rel_derive_key(rel);
	}
	catalog_basetypes(c, rel);
	return rel;
}

static int
rel_names(struct capture *c, const struct msg *m, const char **schema, const char **table)
{
	size_t n;

	if (tok_text(c, &m->schema, true, schema, &n) < 0 ||
			tok_text(c, &m->table, true, table, &n) < 0)
		return malformed(c, "bad or missing schema or table");
	return 0;
}

/*
 * The cached relation when it matches the message, else a new one from the
 * catalog or the message, stored and announced with a schema event.
 */
static int
on_change(struct capture *c, const struct msg *m, char action, lsn_t lsn)
{
	const char *schema, *table;
	struct relation *rel, *cand;
	struct row r;
	size_t mark;
	int rc = 1;

	if (rel_names(c, m, &schema, &table) < 0)
		return -1;
	if (action == 'D' && m->identity.type == J_NONE)
		return malformed(c, "delete without identity");
	if (action != 'D' && m->columns.type == J_NONE)
		return malformed(c, "change without columns");
	mark = c->scratch.len;
	rel = rel_find(c, 0, schema, table);
	if (rel)
		rc = fill_change(c, m, action, rel, &r);
	if (rc == 1) {
		cand = catalog_rel(c, m, schema, table);
		if (cand) {
			c->scratch.len = mark;
			rc = fill_change(c, m, action, cand, &r);
		}
		if (!cand || rc == 1) {
			rel_free(cand);
			if (!(cand = message_rel(c, m, schema, table)))
				return -1;
			c->scratch.len = mark;
			if ((rc = fill_change(c, m, action, cand, &r)) == 1)
				rc = malformed(c, "inconsistent column lists");
		}
		if (rc < 0) {
			rel_free(cand);
			return -1;
		}
		rel = rel_store(c, cand);
		tx_schema(c, rel, lsn);
	}
	if (rc < 0)
		return -1;
	/* the old row holds what "identity" gave, no more */
	tx_row(c, action == 'I' ? "insert" : action == 'U' ? "update" : "delete", rel, lsn,
			r.oldv, false, r.newv);
	return 0;
}

/*
 * One "T" per truncated table. wal2json does not say whether CASCADE or
 * RESTART IDENTITY was given: both are reported false.
 */
static int
on_truncate(struct capture *c, const struct msg *m, lsn_t lsn)
{
	const char *schema, *table;
	struct relation *rel;

	if (rel_names(c, m, &schema, &table) < 0)
		return -1;
	rel = rel_find(c, 0, schema, table);
	if (!rel) {
		rel = catalog_rel(c, m, schema, table);
		if (!rel)
			rel = new_rel(schema, table);	/* name only */
		rel = rel_store(c, rel);
	}
	tx_schema(c, rel, lsn);
	tx_truncate(c, rel, lsn, false, false);
	return 0;
}

/*
 * A logical decoding message. wal2json prints the content as a string up
 * to its first NUL byte; the rest of binary content is lost on the server.
 */
static int
on_message(struct capture *c, const struct msg *m, lsn_t lsn)
{
	const char *prefix, *content;
	size_t plen, clen;

	if (m->transactional.type != J_TRUE && m->transactional.type != J_FALSE)
		return malformed(c, "bad transactional flag");
	if (m->lsn.type != J_NONE && tok_lsn(&m->lsn, &lsn) < 0)
		return malformed(c, "bad lsn");
	if (tok_text(c, &m->prefix, true, &prefix, &plen) < 0)
		return malformed(c, "bad prefix");
	if (tok_text(c, &m->content, false, &content, &clen) < 0)
		return malformed(c, "bad content");
	tx_message(c, lsn, m->transactional.type == J_TRUE, prefix, content, clen);
	return 0;
}

static int
on_begin(struct capture *c, const struct msg *m, lsn_t lsn)
{
	uint32_t xid = 0;
	lsn_t commit_lsn;
	int64_t ts;

	if (m->xid.type != J_NULL && m->xid.type != J_NONE && tok_u32(&m->xid, &xid) < 0)
		return malformed(c, "bad xid");
	if (tok_lsn(&m->lsn, &commit_lsn) < 0)
		return malformed(c, "bad lsn in begin");
	/* before touching p: an absent member has none */
	if (m->timestamp.type != J_STRING || pgtime_parse(m->timestamp.p, m->timestamp.n, &ts) < 0)
		return malformed(c, "bad timestamp in begin");
	tx_begin(c, xid, commit_lsn, lsn, ts);
	return 0;
}

static int
on_commit(struct capture *c, const struct msg *m)
{
	lsn_t commit_lsn, end;

	if (tok_lsn(&m->lsn, &commit_lsn) < 0 || tok_lsn(&m->nextlsn, &end) < 0)
		return malformed(c, "bad lsn in commit");
	if (commit_lsn != c->tx.commit_lsn)
		return failed(c, "wal2json commit does not match its begin");
	tx_commit(c, end);
	return 0;
}

int
wal2json_decode(struct capture *c, lsn_t lsn, const char *p, size_t n)
{
	struct msg m;

	if (recode(c, &p, &n) < 0)
		return failed(c, "could not convert the message to UTF-8");
	/* room for every string the message holds, decoded (see the top) */
	c->scratch.len = c->scratch.off = 0;
	buf_reserve(&c->scratch, n + 1);
	if (!c->long_way && short_change(c, p, n, lsn) == 0)
		return 0;
	c->scratch.len = 0;
	if (parse_msg(p, n, &m) < 0)
		return malformed(c, "not a JSON object");
	if (m.action.type != J_STRING || m.action.n != 1)
		return failed(c, "unknown wal2json action");
	switch (m.action.p[0]) {
	case 'B':
		return on_begin(c, &m, lsn);
	case 'C':
		return on_commit(c, &m);
	case 'I':
	case 'U':
	case 'D':
		return on_change(c, &m, m.action.p[0], lsn);
	case 'T':
		return on_truncate(c, &m, lsn);
	case 'M':
		return on_message(c, &m, lsn);
	default:
		return failed(c, "unknown wal2json action");
	}
}
