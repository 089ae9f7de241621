/*
 * The filter's rules: table globs, the set of operations, column rules and
 * --where conditions as parsed from the command line, and what they say
 * about each table, decided once per table and cached.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "filter.h"
#include "../lib/util.h"

#define CACHE_MAX 16384		/* tables remembered; past that the cache starts over */

/*
 * Length of the UTF-8 character at s (at most n bytes): 1 for ASCII and
 * for any byte that does not start a whole, well-formed sequence.
 */
static size_t
utf8_len(const char *s, size_t n)
{
	unsigned char c = (unsigned char) s[0];
	size_t len = c >= 0xf0 && c < 0xf8 ? 4 : c >= 0xe0 && c < 0xf0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 1, i;

	if (len > n)
		return 1;
	for (i = 1; i < len; i++)
		if (((unsigned char) s[i] & 0xc0) != 0x80)
			return 1;
	return len;
}

bool
glob_match(const char *pat, const char *name, size_t n)
{
	const char *star = NULL;	/* pattern just after the last '*' */
	size_t i = 0, back = 0;		/* where that '*' resumes in name */

	for (;;) {
		if (*pat == '*') {
			star = ++pat;
			back = i;
			continue;
		}
		if (*pat && i < n) {
			if (*pat == '?') {
				i += utf8_len(name + i, n - i);
				pat++;
				continue;
			}
			if (*pat == '\\' && pat[1])
				pat++;
			if (*pat == name[i]) {
				pat++, i++;
				continue;
			}
		} else if (!*pat && i == n)
			return true;
		if (!star || back >= n)
			return false;
		/* let the last '*' take one more character and try again */
		back += utf8_len(name + back, n - back);
		pat = star;
		i = back;
	}
}

/* The first c in s not escaped by a backslash, or NULL. */
static const char *
find_unescaped(const char *s, char c)
{
	for (; *s; s++) {
		if (*s == '\\' && s[1])
			s++;
		else if (*s == c)
			return s;
	}
	return NULL;
}

/* s[0..n) with backslash escapes removed; malloc'd. */
static char *
unescape(const char *s, size_t n)
{
	char *out = xmalloc(n + 1), *o = out;
	size_t i;

	for (i = 0; i < n; i++) {
		if (s[i] == '\\' && i + 1 < n)
			i++;
		*o++ = s[i];
	}
	*o = '\0';
	return out;
}

/* "schema.table" or "table" into g. Returns 0, or -1 with a message in err. */
static int
tglob_parse(struct tglob *g, const char *s, size_t n, const char *opt, char *err, size_t errlen)
{
	char *copy = xstrndup(s, n);
	const char *dot = find_unescaped(copy, '.');

	g->schema = NULL;
	if (dot) {
		g->schema = xstrndup(copy, (size_t) (dot - copy));
		g->table = xstrdup(dot + 1);
	} else
		g->table = xstrdup(copy);
	free(copy);
	if ((g->schema && !*g->schema) || !*g->table) {
		snprintf(err, errlen, "%s \"%.*s\": empty schema or table name (want [SCHEMA.]TABLE)",
				opt, (int) n, s);
		free(g->schema);
		free(g->table);
		return -1;
	}
	return 0;
}

static void
tglob_free(struct tglob *g)
{
	free(g->schema);
	free(g->table);
}

/* Whether g matches the decoded names; a g without table matches every table. */
static bool
tglob_match(const struct tglob *g, const char *schema, size_t sn, const char *table, size_t tn)
{
	if (!g->table)
		return true;
	return (!g->schema || glob_match(g->schema, schema, sn)) && glob_match(g->table, table, tn);
}

int
rules_add_tables(struct rules *r, const char *arg, bool exclude, char *err, size_t errlen)
{
	struct tglob g;

	if (tglob_parse(&g, arg, strlen(arg), exclude ? "--exclude-table" : "--table", err, errlen) < 0)
		return -1;
	if (exclude) {
		r->excl = xrealloc(r->excl, (r->nexcl + 1) * sizeof(*r->excl));
		r->excl[r->nexcl++] = g;
	} else {
		r->incl = xrealloc(r->incl, (r->nincl + 1) * sizeof(*r->incl));
		r->incl[r->nincl++] = g;
	}
	return 0;
}

#define OPS_ALL 0xffffffffu

/*
 * --op LIST: names separated by commas; "!name" removes one from all.
 * Repeated --op options add up.
 */
int
rules_set_ops(struct rules *r, const char *arg, char *err, size_t errlen)
{
	const char *p = arg;

	while (*p) {
		const char *end = strchr(p, ',');
		size_t n = end ? (size_t) (end - p) : strlen(p);
		bool neg = n > 0 && *p == '!';
		enum ev_op op = ev_op_parse(p + neg, n - neg);

		if (op == EV_UNKNOWN) {
			snprintf(err, errlen, "--op: unknown operation \"%.*s\" (insert, update, delete, "
					"truncate, ddl, schema, message, read, heartbeat)", (int) n, p);
			return -1;
		}
		if (op == EV_BEGIN || op == EV_COMMIT) {
			snprintf(err, errlen, "--op: \"%.*s\": begin and commit lines always pass "
					"(see --drop-empty-tx)", (int) n, p);
			return -1;
		}
		if (neg)
			r->ops_negated |= 1u << op;
		else
			r->ops_named |= 1u << op;
		p += n + (end != NULL);
		if (end && !*p) {
			snprintf(err, errlen, "--op \"%s\": empty operation name after ','", arg);
			return -1;
		}
	}
	if (!*arg) {
		snprintf(err, errlen, "--op: empty list");
		return -1;
	}
	r->ops = ((r->ops_named ? r->ops_named : OPS_ALL) & ~r->ops_negated) | 1u << EV_BEGIN | 1u << EV_COMMIT;
	return 0;
}

/* --columns/--drop-columns/--mask [GLOB:]COL[,COL...] */
int
rules_add_columns(struct rules *r, const char *arg, enum colkind kind, char *err, size_t errlen)
{
	static const char *const opt[] = {"--columns", "--drop-columns", "--mask"};
	struct colrule c = {.kind = kind};
	const char *colon = find_unescaped(arg, ':'), *p = colon ? colon + 1 : arg;

	if (colon && tglob_parse(&c.tab, arg, (size_t) (colon - arg), opt[kind], err, errlen) < 0)
		return -1;
	for (;;) {
		const char *comma = find_unescaped(p, ',');
		size_t n = comma ? (size_t) (comma - p) : strlen(p);

		if (n == 0) {
			snprintf(err, errlen, "%s \"%s\": empty column name (want [TABLE:]COLUMN[,COLUMN...])",
					opt[kind], arg);
			goto fail;
		}
		c.cols = xrealloc(c.cols, (c.ncols + 1) * sizeof(*c.cols));
		c.cols[c.ncols++] = xstrndup(p, n);
		if (!comma)
			break;
		p = comma + 1;
	}
	r->cols = xrealloc(r->cols, (r->ncols + 1) * sizeof(*r->cols));
	r->cols[r->ncols++] = c;
	if (kind == COL_MASK)
		r->masking = true;
	return 0;
fail:
	while (c.ncols)
		free(c.cols[--c.ncols]);
	free(c.cols);
	tglob_free(&c.tab);
	return -1;
}

/* "new.COL", "old.COL", "key.COL": the kind, or OPD_LIT. */
static enum opdkind
colref_kind(const char *s)
{
	if (strncmp(s, "new.", 4) == 0)
		return OPD_NEW;
	if (strncmp(s, "old.", 4) == 0)
		return OPD_OLD;
	if (strncmp(s, "key.", 4) == 0)
		return OPD_KEY;
	return OPD_LIT;
}

/* One side of a condition: a column reference or, on the right, a literal. */
static int
operand_parse(struct operand *o, const char *s, size_t n, bool left, const char *spec,
		char *err, size_t errlen)
{
	char *copy = xstrndup(s, n);

	o->kind = colref_kind(copy);
	if (o->kind != OPD_LIT) {
		o->text = unescape(copy + 4, n - 4);
		o->len = strlen(o->text);
		free(copy);
		if (o->len == 0) {
			snprintf(err, errlen, "--where \"%s\": empty column name", spec);
			free(o->text);
			o->text = NULL;
			return -1;
		}
		return 0;
	}
	free(copy);
	if (left) {
		snprintf(err, errlen, "--where \"%s\": the left side must be new.COLUMN, old.COLUMN "
				"or key.COLUMN", spec);
		return -1;
	}
	o->quoted = n >= 2 && s[0] == '"' && s[n - 1] == '"';
	if (o->quoted)
		s++, n -= 2;
	o->text = xstrndup(s, n);
	o->len = n;
	return 0;
}

/* --where [GLOB:]SIDE=SIDE or SIDE!=SIDE */
int
rules_add_where(struct rules *r, const char *arg, char *err, size_t errlen)
{
	struct cond c = {.any_table = true};
	const char *cond = arg, *eq = find_unescaped(arg, '='), *colon = find_unescaped(arg, ':');
	size_t ln, bs;

	/* GLOB: comes before the first '=' and is followed by a column reference */
	if (colon && (!eq || colon < eq) && colref_kind(colon + 1) != OPD_LIT) {
		if (tglob_parse(&c.tab, arg, (size_t) (colon - arg), "--where", err, errlen) < 0)
			return -1;
		c.any_table = false;
		cond = colon + 1;
	} else if (colref_kind(arg) == OPD_LIT) {
		snprintf(err, errlen, "--where \"%s\": want [TABLE:]new.COLUMN=VALUE, "
				"old.COLUMN!=new.COLUMN and the like", arg);
		return -1;
	}
	eq = find_unescaped(cond, '=');
	if (!eq) {
		snprintf(err, errlen, "--where \"%s\": no '=' or '!='", arg);
		goto fail;
	}
	ln = (size_t) (eq - cond);
	for (bs = 0; ln >= bs + 2 && cond[ln - 2 - bs] == '\\'; bs++)
		;	/* backslashes before the '!': an odd number escapes it */
	if (ln > 0 && cond[ln - 1] == '!' && bs % 2 == 0) {
		c.neq = true;
		ln--;
	}
	if (operand_parse(&c.l, cond, ln, true, arg, err, errlen) < 0)
		goto fail;
	if (operand_parse(&c.r, eq + 1, strlen(eq + 1), false, arg, err, errlen) < 0) {
		free(c.l.text);
		goto fail;
	}
	c.spec = xstrdup(arg);
	r->conds = xrealloc(r->conds, (r->nconds + 1) * sizeof(*r->conds));
	r->conds[r->nconds++] = c;
	return 0;
fail:
	if (!c.any_table)
		tglob_free(&c.tab);
	return -1;
}

static void
cache_clear(struct rules *r)
{
	size_t i;

	for (i = 0; i < r->capcache; i++) {
		free(r->cache[i].key);
		free(r->cache[i].rules);
		free(r->cache[i].conds);
	}
	memset(r->cache, 0, r->capcache * sizeof(*r->cache));
	r->ncache = 0;
}

void
rules_free(struct rules *r)
{
	size_t i, j;

	for (i = 0; i < r->nincl; i++)
		tglob_free(&r->incl[i]);
	for (i = 0; i < r->nexcl; i++)
		tglob_free(&r->excl[i]);
	for (i = 0; i < r->ncols; i++) {
		for (j = 0; j < r->cols[i].ncols; j++)
			free(r->cols[i].cols[j]);
		free(r->cols[i].cols);
		tglob_free(&r->cols[i].tab);
	}
	for (i = 0; i < r->nconds; i++) {
		tglob_free(&r->conds[i].tab);
		free(r->conds[i].l.text);
		free(r->conds[i].r.text);
		free(r->conds[i].spec);
	}
	if (r->cache)
		cache_clear(r);
	free(r->cache);
	free(r->incl);
	free(r->excl);
	free(r->cols);
	free(r->conds);
	memset(r, 0, sizeof(*r));
}

/* A name token's text: itself when it has no escapes, else decoded into tmp. */
static const char *
name_text(const struct jtok *t, struct buf *tmp, size_t *n)
{
	if (!memchr(t->p, '\\', t->n)) {
		*n = t->n;
		return t->p;
	}
	tmp->len = 0;
	if (jstr_decode(t, tmp) < 0) {
		*n = t->n;
		return t->p;
	}
	*n = tmp->len;
	return tmp->data;
}

/* Fill in what the rules say about the table named by h. */
static void
decide(struct rules *r, struct tabinfo *t, const struct ev_head *h)
{
	struct buf sb = {0}, tb = {0};
	size_t sn, tn, i;
	const char *s = name_text(&h->schema, &sb, &sn), *tab = name_text(&h->table, &tb, &tn);

	t->keep = r->nincl == 0;
	for (i = 0; i < r->nincl && !t->keep; i++)
		t->keep = tglob_match(&r->incl[i], s, sn, tab, tn);
	for (i = 0; i < r->nexcl && t->keep; i++)
		t->keep = !tglob_match(&r->excl[i], s, sn, tab, tn);
	for (i = 0; i < r->ncols; i++) {
		if (!tglob_match(&r->cols[i].tab, s, sn, tab, tn))
			continue;
		t->rules = xrealloc(t->rules, (t->nrules + 1) * sizeof(*t->rules));
		t->rules[t->nrules++] = &r->cols[i];
		if (r->cols[i].kind == COL_KEEP)
			t->has_keep = true;
	}
	for (i = 0; i < r->nconds; i++) {
		if (!r->conds[i].any_table && !tglob_match(&r->conds[i].tab, s, sn, tab, tn))
			continue;
		t->conds = xrealloc(t->conds, (t->nconds + 1) * sizeof(*t->conds));
		t->conds[t->nconds++] = &r->conds[i];
	}
	buf_free(&sb);
	buf_free(&tb);
}

static uint64_t
hash_bytes(uint64_t h, const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		h ^= (unsigned char) p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

const struct tabinfo *
rules_table(struct rules *r, const struct ev_head *h)
{
	uint64_t hv = hash_bytes(hash_bytes(0xcbf29ce484222325ULL, h->schema.p, h->schema.n) ^ 0xff,
			h->table.p, h->table.n);
	size_t keylen = h->schema.n + 1 + h->table.n, i;
	struct tabinfo *t;

	if (r->ncache * 2 >= r->capcache) {
		if (r->capcache >= CACHE_MAX * 2)
			cache_clear(r);
		else {
			struct tabinfo *old = r->cache;
			size_t oldcap = r->capcache;

			r->capcache = oldcap ? oldcap * 2 : 64;
			r->cache = xcalloc(r->capcache, sizeof(*r->cache));
			r->ncache = 0;
			for (i = 0; i < oldcap; i++) {
				if (!old[i].key)
					continue;
				for (t = &r->cache[old[i].hash & (r->capcache - 1)]; t->key;
						t = t == &r->cache[r->capcache - 1] ? r->cache : t + 1)
					;
				*t = old[i];
				r->ncache++;
			}
			free(old);
		}
	}
	for (t = &r->cache[hv & (r->capcache - 1)]; t->key;
			t = t == &r->cache[r->capcache - 1] ? r->cache : t + 1)
		if (t->hash == hv && t->keylen == keylen && memcmp(t->key, h->schema.p, h->schema.n) == 0 &&
				memcmp(t->key + h->schema.n + 1, h->table.p, h->table.n) == 0)
			return t;
	t->key = xmalloc(keylen + 1);
	memcpy(t->key, h->schema.p, h->schema.n);
	t->key[h->schema.n] = '\0';
	memcpy(t->key + h->schema.n + 1, h->table.p, h->table.n);
	t->key[keylen] = '\0';
	t->keylen = keylen;
	t->hash = hv;
	decide(r, t, h);
	r->ncache++;
	return t;
}
