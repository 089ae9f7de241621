/*
 * The slow path: lines whose table has column rules or --where conditions.
 * The line is walked with the non-allocating scanner; members that stay
 * are copied as written, so values keep their exact text.
 */
#include <stdlib.h>
#include <string.h>

#include "filter.h"

/* The parts of a line the slow path looks at. */
struct parts {
	struct jtok obj;
	struct jtok row[3];	/* new, old, key objects (J_NONE when absent) */
};

enum { ROW_NEW, ROW_OLD, ROW_KEY };

/* A string token's text, decoded into tmp only when it has escapes. */
static const char *
text_of(const struct jtok *t, struct buf *tmp, size_t *n)
{
	if (!memchr(t->p, '\\', t->n)) {
		*n = t->n;
		return t->p;
	}
	tmp->len = 0;
	jstr_decode(t, tmp);	/* the line was checked: escapes are valid */
	*n = tmp->len;
	return tmp->data;
}

static bool
glob_any(char *const *globs, size_t n, const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (glob_match(globs[i], name, len))
			return true;
	return false;
}

/* What happens to the column called name[0..len) in table t. */
static enum colkind
column_fate(const struct tabinfo *t, const char *name, size_t len)
{
	bool kept = !t->has_keep, masked = false;
	size_t i;

	for (i = 0; i < t->nrules; i++) {
		const struct colrule *c = t->rules[i];

		if (!glob_any(c->cols, c->ncols, name, len))
			continue;
		if (c->kind == COL_DROP)
			return COL_DROP;
		if (c->kind == COL_KEEP)
			kept = true;
		else
			masked = true;
	}
	return !kept ? COL_DROP : masked ? COL_MASK : COL_KEEP;
}

static enum colkind
token_fate(struct filter *f, const struct tabinfo *t, const struct jtok *name)
{
	size_t n;
	const char *s = text_of(name, &f->namebuf, &n);

	return column_fate(t, s, n);
}

/* Append the keyed hash of a value as a JSON string; null stays null. */
static void
put_masked(struct filter *f, const struct jtok *v)
{
	unsigned char mac[SHA256_LEN];
	char hex[2 * SHA256_LEN];
	size_t n;
	const char *s;

	if (v->type == J_NULL) {
		buf_putlit(&f->scratch, "null");
		return;
	}
	s = v->type == J_STRING ? text_of(v, &f->namebuf, &n) : (n = v->n, v->p);
	hmac_sha256(&f->mask_key, s, n, mac);
	hex_encode(mac, sizeof(mac), hex);
	buf_putc(&f->scratch, '"');
	buf_put(&f->scratch, hex, sizeof(hex));
	buf_putc(&f->scratch, '"');
}

/* A value's text as written (a string with its quotes). */
static void
put_token(struct buf *b, const struct jtok *v)
{
	if (v->type == J_STRING)
		buf_put(b, v->p - 1, v->n + 2);
	else
		buf_put(b, v->p, v->n);
}

/* Raw "key":value text of a member, from its key's opening quote. */
static void
put_member(struct buf *b, const struct jtok *key, const struct jtok *val)
{
	const char *start = key->p - 1, *end = val->type == J_STRING ? val->p + val->n + 1 :
			val->p + val->n;

	buf_put(b, start, (size_t) (end - start));
}

/* Copy an object of columns (new, old, key, types), applying the rules. */
static bool
put_columns(struct filter *f, const struct tabinfo *t, const struct jtok *obj, bool values)
{
	struct jiter it;
	struct jtok k, v;
	bool first = true, changed = false;

	jiter_begin(&it, obj);
	buf_putc(&f->scratch, '{');
	while (jiter_member(&it, &k, &v) == 1) {
		enum colkind fate = token_fate(f, t, &k);

		if (fate == COL_DROP) {
			changed = true;
			continue;
		}
		if (!first)
			buf_putc(&f->scratch, ',');
		first = false;
		if (fate == COL_MASK && values && v.type != J_NULL) {
			buf_put(&f->scratch, k.p - 1, k.n + 2);
			buf_putc(&f->scratch, ':');
			put_masked(f, &v);
			changed = true;
		} else
			put_member(&f->scratch, &k, &v);
	}
	buf_putc(&f->scratch, '}');
	return changed;
}

/* Copy "unchanged" or "key_missing" (column names), leaving out dropped columns. */
static bool
put_names(struct filter *f, const struct tabinfo *t, const struct jtok *arr)
{
	struct jiter it;
	struct jtok v;
	bool first = true, changed = false;

	jiter_begin(&it, arr);
	buf_putc(&f->scratch, '[');
	while (jiter_elem(&it, &v) == 1) {
		if (v.type == J_STRING && token_fate(f, t, &v) == COL_DROP) {
			changed = true;
			continue;
		}
		if (!first)
			buf_putc(&f->scratch, ',');
		first = false;
		put_token(&f->scratch, &v);
	}
	buf_putc(&f->scratch, ']');
	return changed;
}

/* Copy a schema or ddl line's "columns", leaving out dropped ones and marking masked ones. */
static bool
put_schema_columns(struct filter *f, const struct tabinfo *t, const struct jtok *arr)
{
	struct jiter it, ci;
	struct jtok v, k, name;
	bool first = true, changed = false;

	jiter_begin(&it, arr);
	buf_putc(&f->scratch, '[');
	while (jiter_elem(&it, &v) == 1) {
		enum colkind fate = COL_KEEP;

		name.type = J_NONE;
		if (v.type == J_OBJECT) {
			jiter_begin(&ci, &v);
			while (jiter_member(&ci, &k, &name) == 1 && !jtok_eq(&k, "name"))
				name.type = J_NONE;
		}
		if (name.type == J_STRING)
			fate = token_fate(f, t, &name);
		if (fate == COL_DROP) {
			changed = true;
			continue;
		}
		if (!first)
			buf_putc(&f->scratch, ',');
		first = false;
		if (fate == COL_MASK) {
			buf_put(&f->scratch, v.p, v.n - 1);
			buf_putlit(&f->scratch, ",\"masked\":true}");
			changed = true;
		} else
			put_token(&f->scratch, &v);
	}
	buf_putc(&f->scratch, ']');
	return changed;
}

/* The value of column name in obj: 1 and *val, or 0 when absent. */
static int
find_column(struct filter *f, const struct jtok *obj, const char *name, size_t len, struct jtok *val)
{
	struct jiter it;
	struct jtok k;
	size_t n;
	const char *s;

	if (obj->type != J_OBJECT)
		return 0;
	jiter_begin(&it, obj);
	while (jiter_member(&it, &k, val) == 1) {
		s = text_of(&k, &f->namebuf, &n);
		if (n == len && memcmp(s, name, n) == 0)
			return 1;
	}
	return 0;
}

/*
 * A JSON number as sign, digits and exponent, the value DIGITS x 10^exp,
 * with no leading or trailing zero digit. False when it is not a number
 * or has more than cap digits.
 */
static bool
num_norm(const char *s, size_t n, bool *neg, char *d, size_t cap, size_t *nd, long *exp)
{
	size_t i, k = 0;
	long e = 0, frac = 0;
	bool in_frac = false, eneg = false;

	if (!jnumber_valid(s, n))
		return false;
	*neg = s[0] == '-';
	for (i = *neg; i < n && s[i] != 'e' && s[i] != 'E'; i++) {
		if (s[i] == '.') {
			in_frac = true;
			continue;
		}
		frac += in_frac;
		if (k == 0 && s[i] == '0')
			continue;	/* leading zeros do not change the value */
		if (k == cap)
			return false;
		d[k++] = s[i];
	}
	if (i < n) {
		i++;
		if (s[i] == '+' || s[i] == '-')
			eneg = s[i++] == '-';
		for (; i < n; i++)
			e = e < 100000000 ? e * 10 + (s[i] - '0') : e;
	}
	e = (eneg ? -e : e) - frac;
	while (k > 0 && d[k - 1] == '0')
		k--, e++;
	*nd = k;
	*exp = k ? e : 0;
	if (!k)
		*neg = false;	/* -0 is 0 */
	return true;
}

/* Two numbers as written, compared by value, every digit counting. */
static bool
numbers_equal(const char *a, size_t an, const char *b, size_t bn)
{
	char x[256], y[256];
	size_t xn, yn;
	long xe, ye;
	bool xneg, yneg;

	if (an == bn && memcmp(a, b, an) == 0)
		return true;
	if (!num_norm(a, an, &xneg, x, sizeof(x), &xn, &xe) || !num_norm(b, bn, &yneg, y, sizeof(y), &yn, &ye))
		return false;
	return xneg == yneg && xn == yn && xe == ye && memcmp(x, y, xn) == 0;
}

/* Two values as written in lines. */
static bool
values_equal(struct filter *f, const struct jtok *a, const struct jtok *b)
{
	size_t an, bn;
	const char *as, *bs;

	if (a->type != b->type)
		return false;
	if (a->type == J_NUMBER)
		return numbers_equal(a->p, a->n, b->p, b->n);
	if (a->type != J_STRING)
		return a->n == b->n && memcmp(a->p, b->p, a->n) == 0;
	as = text_of(a, &f->namebuf, &an);
	if (as == f->namebuf.data) {
		/* keep a's decoded text while b is decoded */
		f->tmp.len = 0;
		buf_put(&f->tmp, as, an);
		as = f->tmp.data;
	}
	bs = text_of(b, &f->namebuf, &bn);
	return an == bn && memcmp(as, bs, an) == 0;
}

/*
 * A value and a literal from the command line: null, true and false match
 * those JSON values only; "text" matches strings only; anything else
 * matches a string of that text or a number of that value.
 */
static bool
value_is(struct filter *f, const struct jtok *v, const struct operand *lit)
{
	static const char *const words[] = {[J_TRUE] = "true", [J_FALSE] = "false", [J_NULL] = "null"};
	size_t n;
	const char *s;
	int w;

	for (w = J_TRUE; w <= J_NULL && !lit->quoted; w++)
		if (lit->len == strlen(words[w]) && memcmp(lit->text, words[w], lit->len) == 0)
			return (int) v->type == w;
	if (v->type == J_STRING) {
		s = text_of(v, &f->namebuf, &n);
		return n == lit->len && memcmp(s, lit->text, n) == 0;
	}
	if (lit->quoted)
		return false;
	if (v->type == J_NUMBER)
		return numbers_equal(v->p, v->n, lit->text, lit->len);
	return v->n == lit->len && memcmp(v->p, lit->text, v->n) == 0;
}

/* One --where condition on a row event. A missing column equals nothing. */
static bool
cond_holds(struct filter *f, const struct cond *c, const struct parts *p)
{
	struct jtok a, b;
	bool eq;

	if (!find_column(f, &p->row[c->l.kind], c->l.text, c->l.len, &a))
		eq = false;
	else if (c->r.kind == OPD_LIT)
		eq = value_is(f, &a, &c->r);
	else
		eq = find_column(f, &p->row[c->r.kind], c->r.text, c->r.len, &b) &&
				values_equal(f, &a, &b);
	return c->neq ? !eq : eq;
}

/*
 * The whole value well formed: every member and element in place, every
 * literal and number valid, every string's escapes valid. The line check
 * before matched brackets only; what is taken apart must be sound, or a
 * rule could be skipped on what follows a broken member.
 */
static bool
well_formed(struct filter *f, const struct jtok *v, int depth)
{
	struct jiter it;
	struct jtok k, e;
	int rc;

	switch (v->type) {
	case J_STRING:	/* only escapes can be wrong: the line check saw the rest */
		if (!memchr(v->p, '\\', v->n))
			return true;
		f->tmp.len = 0;
		return jstr_decode(v, &f->tmp) == 0;
	case J_OBJECT:
	case J_ARRAY:
		if (depth > 64 || jiter_begin(&it, v) < 0)
			return false;
		while ((rc = v->type == J_OBJECT ? jiter_member(&it, &k, &e) : jiter_elem(&it, &e)) == 1)
			if ((v->type == J_OBJECT && !well_formed(f, &k, depth + 1)) || !well_formed(f, &e, depth + 1))
				return false;
		return rc == 0;
	default:
		return true;
	}
}

int
rewrite_line(struct filter *f, const struct tabinfo *t, const struct ev_head *h, const char **err)
{
	struct parts p;
	struct jiter it;
	struct jtok k, v;
	enum ev_op op = h->op;
	int rc;
	size_t i;
	bool row = op == EV_INSERT || op == EV_UPDATE || op == EV_DELETE || op == EV_READ;
	bool first = true, changed = false;

	/* one walk finds the parts and checks that all of it is well formed */
	memset(&p, 0, sizeof(p));
	p.obj = h->obj;
	if (jiter_begin(&it, &p.obj) < 0) {
		*err = "not a JSON object";
		return -1;
	}
	while ((rc = jiter_member(&it, &k, &v)) == 1) {
		if (!well_formed(f, &k, 1) || !well_formed(f, &v, 1))
			break;
		if (jtok_eq(&k, "new"))
			p.row[ROW_NEW] = v;
		else if (jtok_eq(&k, "old"))
			p.row[ROW_OLD] = v;
		else if (jtok_eq(&k, "key"))
			p.row[ROW_KEY] = v;
	}
	if (rc != 0) {
		*err = "malformed JSON (a member, value or escape)";
		return -1;
	}
	for (i = 0; row && i < t->nconds; i++)
		if (!cond_holds(f, t->conds[i], &p))
			return 0;
	if (t->nrules == 0 || !(row || op == EV_SCHEMA || op == EV_DDL))
		return 1;

	f->scratch.len = 0;
	buf_putc(&f->scratch, '{');
	jiter_begin(&it, &p.obj);
	while (jiter_member(&it, &k, &v) == 1) {
		size_t mark = f->scratch.len;

		if (!first)
			buf_putc(&f->scratch, ',');
		first = false;
		if (row && v.type == J_OBJECT && (jtok_eq(&k, "new") || jtok_eq(&k, "old") ||
				jtok_eq(&k, "key") || jtok_eq(&k, "types"))) {
			buf_put(&f->scratch, k.p - 1, k.n + 2);
			buf_putc(&f->scratch, ':');
			changed |= put_columns(f, t, &v, !jtok_eq(&k, "types"));
		} else if (row && v.type == J_ARRAY && (jtok_eq(&k, "unchanged") || jtok_eq(&k, "key_missing"))) {
			buf_put(&f->scratch, k.p - 1, k.n + 2);
			buf_putc(&f->scratch, ':');
			if (put_names(f, t, &v)) {
				changed = true;
				/* a list of names is left out when empty */
				if (f->scratch.data[f->scratch.len - 2] == '[') {
					f->scratch.len = mark;
					first = mark == 1;
				}
			}
		} else if ((op == EV_SCHEMA || op == EV_DDL) && v.type == J_ARRAY && jtok_eq(&k, "columns")) {
			buf_put(&f->scratch, k.p - 1, k.n + 2);
			buf_putc(&f->scratch, ':');
			changed |= put_schema_columns(f, t, &v);
		} else
			put_member(&f->scratch, &k, &v);
	}
	buf_putc(&f->scratch, '}');
	return changed ? 2 : 1;
}
