/*
 * The short way through wal2json's row changes (see wal2json.c's top):
 * a relation keeps the text each column element has before its value
 * (its head) and the "pk" array that fitted, and a change of a table seen
 * before is read in one walk that compares heads and reads only values.
 * Whatever does not fit is left to the long way, which starts over.
 */
#include <string.h>

#include "capture.h"
#include "wal2json.h"
#include "../lib/util.h"

/*
 * The column an element of "columns" or "identity" (at s[0..n)) stands for,
 * when it begins with the head (its text up to the value) of an element
 * that matched this relation before: its name, type and OID were checked
 * then, and only its value is left to read, into *val. Returns the index
 * and the element's length in *len, or -1 when no head fits (the element
 * is then read in full). hint is where to look first: columns come in order.
 */
int
known_col(const struct relation *rel, const char *s, size_t n, int hint, struct jtok *val, size_t *len)
{
	const struct column *col = NULL;
	size_t pos;
	int i, k = 0;

	if (hint >= rel->natts)
		hint = 0;
	for (i = 0; i < rel->natts; i++) {
		k = hint + i < rel->natts ? hint + i : hint + i - rel->natts;
		col = &rel->cols[k];
		if (col->w2j_head && col->w2j_headlen < n && memcmp(s, col->w2j_head, col->w2j_headlen) == 0)
			break;
	}
	if (i == rel->natts)
		return -1;
	pos = col->w2j_headlen;
	if (jscan_value(s, n, &pos, val) < 0 || val->type == J_OBJECT || val->type == J_ARRAY ||
			pos >= n || s[pos] != '}')
		return -1;
	*len = pos + 1;
	return k;
}

/*
 * Keep the head of element el (text up to its value, which must end it)
 * for known_col, now that column col was found to match it.
 */
void
keep_head(struct column *col, const struct jtok *el, const struct jtok *value)
{
	const char *start = value->p - (value->type == J_STRING),
			*end = value->p + value->n + (value->type == J_STRING);

	if (col->w2j_head || value->type == J_OBJECT || value->type == J_ARRAY || end != el->p + el->n - 1)
		return;
	col->w2j_head = xstrndup(el->p, (size_t) (start - el->p));
	col->w2j_headlen = (size_t) (start - el->p);
}

/*
 * The values of an array whose every element known_col knows, from s[*pos]
 * (at its '['), into v; *pos moves past it. 0, or 1 for anything else.
 */
static int
known_tuple(struct capture *c, const struct relation *rel, const char *s, size_t n,
		size_t *pos, struct value *v)
{
	struct jtok val;
	size_t len;
	int k, i = 0;

	if (*pos >= n || s[(*pos)++] != '[')
		return 1;
	if (*pos < n && s[*pos] == ']') {
		(*pos)++;
		return 0;
	}
	for (;;) {
		if ((k = known_col(rel, s + *pos, n - *pos, i++, &val, &len)) < 0 ||
				set_value(c, &v[k], &val, rel->cols[k].typoid) < 0)
			return 1;
		*pos += len;
		if (*pos >= n)
			return 1;
		if (s[(*pos)++] == ']')
			return 0;
		if (s[*pos - 1] != ',')
			return 1;
	}
}

/* The key at s[*pos] (after a '{' or ','), up to and past its ':'; 0 or 1 for anything else. */
static int
short_key(const char *s, size_t n, size_t *pos, struct jtok *key)
{
	if (jscan_value(s, n, pos, key) < 0 || key->type != J_STRING || key->esc ||
			*pos >= n || s[*pos] != ':')
		return 1;
	(*pos)++;
	return 0;
}

/*
 * The short way for a row change of a table seen before, in the shape
 * wal2json writes (members in its order, no whitespace, column elements
 * whose heads known_col knows, the "pk" text that fit before): values go
 * straight into the tuples in one walk, with no scan of the arrays first.
 * Returns 0 when the change was written, 1 when anything differs; the
 * message is then read the long way, from the start.
 */
int
short_change(struct capture *c, const char *s, size_t n, lsn_t lsn)
{
	struct jtok key, val, schema = {J_NONE, NULL, 0}, table = {J_NONE, NULL, 0};
	struct relation *rel = NULL;
	struct value *v = NULL, **tuple;
	struct row r = {NULL, NULL};
	const char *sn, *tn;
	size_t pos, len;
	bool cols;
	char action;

	if (n < 14 || memcmp(s, "{\"action\":\"", 11) != 0 || s[12] != '"' || s[n - 1] != '}')
		return 1;
	action = s[11];
	if (action != 'I' && action != 'U' && action != 'D')
		return 1;
	for (pos = 13; pos < n - 1;) {
		if (s[pos++] != ',' || short_key(s, n - 1, &pos, &key))
			return 1;
		if (KEY_IS(&key, "columns") || KEY_IS(&key, "identity")) {
			if (!rel) {
				if (schema.type != J_STRING || table.type != J_STRING ||
						tok_text(c, &schema, true, &sn, &len) < 0 ||
						tok_text(c, &table, true, &tn, &len) < 0 ||
						!(rel = rel_find(c, 0, sn, tn)))
					return 1;
				v = tuple_scratch(c, (size_t) rel->natts);
			}
			/* the new row for "columns" (not in a delete), the old for "identity" (not in an insert); once each */
			cols = KEY_IS(&key, "columns");
			tuple = cols ? &r.newv : &r.oldv;
			if (action == (cols ? 'D' : 'I') || *tuple)
				return 1;
			*tuple = cols ? v + rel->natts : v;
			if (known_tuple(c, rel, s, n - 1, &pos, *tuple))
				return 1;
		} else if (KEY_IS(&key, "pk")) {
			len = rel ? rel->w2j_pklen : 0;
			if (!rel || !rel->w2j_pk || n - 1 - pos < len || memcmp(s + pos, rel->w2j_pk, len) != 0)
				return 1;
			pos += len;
		} else if (jscan_value(s, n - 1, &pos, &val) < 0 || val.esc)
			return 1;
		else if (KEY_IS(&key, "schema") || KEY_IS(&key, "table")) {
			if (rel)
				return 1;	/* named again after the columns: the long way says which counts */
			*(KEY_IS(&key, "schema") ? &schema : &table) = val;
		}
	}
	if (!rel || (action != 'D' && (!r.newv || settle_new(action, rel, r.newv))) ||
			(action != 'I' && (!r.oldv || settle_old(action, rel, &r))))
		return 1;
	tx_row(c, action == 'I' ? "insert" : action == 'U' ? "update" : "delete", rel, lsn,
			r.oldv, false, r.newv);
	return 0;
}
