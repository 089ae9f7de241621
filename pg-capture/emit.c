/*
 * Writing cdc-json event lines into the output buffer. Values are typed
 * from the column's type OID: integers and floats as JSON numbers (NaN and
 * infinities as strings), bool as true/false, json/jsonb embedded, the rest
 * as PostgreSQL's text form in a string.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "capture.h"
#include "../lib/jscan.h"
#include "../lib/utf8.h"

enum { T_TEXT, T_INT, T_FLOAT, T_BOOL, T_JSON, T_JSONB };

static int
type_class(uint32_t oid)
{
	switch (oid) {
	case 20: case 21: case 23: case 26:	/* int8 int2 int4 oid */
		return T_INT;
	case 700: case 701: case 1700:		/* float4 float8 numeric */
		return T_FLOAT;
	case 16:
		return T_BOOL;
	case 114:
		return T_JSON;
	case 3802:
		return T_JSONB;
	default:
		return T_TEXT;
	}
}

static void
put_value(struct buf *b, const struct column *col, const struct value *v)
{
	if (v->kind == 'n') {
		buf_putlit(b, "null");
		return;
	}
	/* a domain's values are its base type's */
	switch (type_class(col->basetype ? col->basetype : col->typoid)) {
	case T_INT:
	case T_FLOAT:
		if (jnumber_valid(v->p, v->n)) {
			buf_put(b, v->p, v->n);
			return;
		}
		break;
	case T_BOOL:
		if (v->n == 1 && (v->p[0] == 't' || v->p[0] == 'f')) {
			if (v->p[0] == 't')
				buf_putlit(b, "true");
			else
				buf_putlit(b, "false");
			return;
		}
		break;
	case T_JSONB:
	case T_JSON:
		/* json keeps its input's layout: it may span lines */
		buf_put_json(b, v->p, v->n);
		return;
	}
	buf_put_jstr(b, v->p, v->n);
}

static void
put_lsn(struct buf *b, lsn_t lsn)
{
	char s[LSN_BUFSZ];
	int n = lsn_format(lsn, s);

	buf_putc(b, '"');
	buf_put(b, s, (size_t) n);
	buf_putc(b, '"');
}

/* ,"id":"LSN:INDEX", or "LSN:m" for a message outside any transaction (index < 0) */
static void
put_id(struct buf *b, lsn_t base, int64_t index)
{
	char s[LSN_BUFSZ];
	int n = lsn_format(base, s);

	buf_putlit(b, ",\"id\":\"");
	buf_put(b, s, (size_t) n);
	buf_putc(b, ':');
	/* a message's position can be the next commit's: a letter keeps them apart */
	if (index < 0)
		buf_putc(b, 'm');
	else
		buf_put_i64(b, index);
	buf_putc(b, '"');
}

void
format_ts(int64_t ts_us, char *out, size_t outsz)
{
	int64_t us = ts_us % 1000000;
	time_t secs = (time_t) (ts_us / 1000000 + PG_EPOCH_SECS);
	struct tm tm;

	if (us < 0) {
		us += 1000000;
		secs--;
	}
	gmtime_r(&secs, &tm);
	snprintf(out, outsz, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900,
			tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int) us);
}

/* {"op":"OP","schema":..,"table":..,"id":..,"lsn":..,"xid":..,"ts":..; id NULL: LSN:INDEX */
static void
put_head(struct capture *c, const char *op, const struct relation *rel, lsn_t lsn, const char *id)
{
	struct buf *b = &c->out;

	buf_putlit(b, "{\"op\":\"");
	buf_puts(b, op);
	buf_putc(b, '"');
	if (rel && rel->jhead)
		buf_put(b, rel->jhead, rel->jheadlen);
	else if (rel) {
		buf_putlit(b, ",\"schema\":");
		buf_put_jstr(b, rel->schema, strlen(rel->schema));
		buf_putlit(b, ",\"table\":");
		buf_put_jstr(b, rel->table, strlen(rel->table));
	}
	if (id) {
		buf_putlit(b, ",\"id\":");
		buf_put_jstr(b, id, strlen(id));
	} else
		put_id(b, c->tx.commit_lsn, (int64_t) c->tx.nchanges - 1);
	buf_putlit(b, ",\"lsn\":");
	put_lsn(b, lsn);
	buf_putlit(b, ",\"xid\":");
	buf_put_u64(b, c->tx.xid);
	buf_putlit(b, ",\"ts\":\"");
	buf_puts(b, c->tx.ts);
	buf_putc(b, '"');
	c->events++;
	watch_event(c, op, rel);
}

/* Does v hold a value (text or null) rather than nothing or an unchanged TOAST mark? */
#define HAS_VALUE(v) ((v).kind == 't' || (v).kind == 'n')

/* A column's name as a JSON string: escaped once by rel_store, or here. */
static void
put_colname(struct buf *b, const struct column *col)
{
	if (col->jname)
		buf_put(b, col->jname, col->jnamelen);
	else
		buf_put_jstr(b, col->name, strlen(col->name));
}

/* "NAME":VALUE for column col, after a comma unless it is the first. */
static void
put_member(struct buf *b, bool *first, const struct column *col, const struct value *v)
{
	if (!*first)
		buf_putc(b, ',');
	*first = false;
	put_colname(b, col);
	buf_putc(b, ':');
	put_value(b, col, v);
}

/* col's name as an element of the array ,"LIST":[...], opened by the first. */
static void
put_name(struct buf *b, bool *first, const char *list, const struct column *col)
{
	buf_puts(b, *first ? ",\"" : ",");
	if (*first) {
		buf_puts(b, list);
		buf_putlit(b, "\":[");
	}
	*first = false;
	put_colname(b, col);
}

/* ,"NAME":{col:val,...}: the values v holds, of the identity's columns only if ident_only. */
static void
put_tuple(struct buf *b, const char *name, const struct relation *rel,
		const struct value *v, bool ident_only)
{
	bool first = true;
	int i;

	buf_putlit(b, ",\"");
	buf_puts(b, name);
	buf_putlit(b, "\":{");
	for (i = 0; i < rel->natts; i++)
		if ((!ident_only || rel->cols[i].ident) && HAS_VALUE(v[i]))
			put_member(b, &first, &rel->cols[i], &v[i]);
	buf_putc(b, '}');
}

/* The value of key column i: from the new row, else from the old one; NULL when neither has it. */
static const struct value *
key_value(const struct relation *rel, int i, const struct value *oldv, bool old_is_key,
		const struct value *newv)
{
	if (newv && HAS_VALUE(newv[i]))
		return &newv[i];
	/* an unchanged TOASTed column is in the old row under REPLICA IDENTITY FULL */
	if (oldv && (!old_is_key || rel->cols[i].ident) && HAS_VALUE(oldv[i]))
		return &oldv[i];
	return NULL;
}

/*
 * ,"key":{...}, then ,"key_missing":[...] naming key columns that neither
 * row carries (a key column whose TOASTed value the server did not send),
 * so a key is either complete or says what it lacks.
 */
static void
put_key(struct buf *b, const struct relation *rel, const struct value *oldv, bool old_is_key,
		const struct value *newv)
{
	const struct value *v;
	bool first = true, missing = false;
	int i;

	buf_putlit(b, ",\"key\":{");
	for (i = 0; i < rel->natts; i++) {
		if (!rel->cols[i].key)
			continue;
		if ((v = key_value(rel, i, oldv, old_is_key, newv)))
			put_member(b, &first, &rel->cols[i], v);
		else
			missing = true;
	}
	buf_putc(b, '}');
	for (i = 0, first = true; missing && i < rel->natts; i++)
		if (rel->cols[i].key && !key_value(rel, i, oldv, old_is_key, newv))
			put_name(b, &first, "key_missing", &rel->cols[i]);
	if (!first)
		buf_putc(b, ']');
}

/*
 * A row change. oldv is the old row (NULL when the server sent none):
 * its identity columns only if old_is_key, else the whole row.
 */
void
emit_row(struct capture *c, const char *op, const struct relation *rel, lsn_t lsn,
		const struct value *oldv, bool old_is_key, const struct value *newv)
{
	struct buf *b = &c->out;
	bool first = true;
	int i;

	put_head(c, op, rel, lsn, NULL);
	put_key(b, rel, oldv, old_is_key, newv);
	if (newv)
		put_tuple(b, "new", rel, newv, false);
	if (oldv)
		put_tuple(b, "old", rel, oldv, old_is_key);
	for (i = 0; newv && i < rel->natts; i++)
		if (newv[i].kind == 'u')
			put_name(b, &first, "unchanged", &rel->cols[i]);
	if (!first)
		buf_putc(b, ']');
	buf_putlit(b, "}\n");
}

void
emit_truncate(struct capture *c, const struct relation *rel, lsn_t lsn, bool cascade,
		bool restart_identity)
{
	struct buf *b = &c->out;

	put_head(c, "truncate", rel, lsn, NULL);
	buf_puts(b, cascade ? ",\"cascade\":true" : ",\"cascade\":false");
	buf_puts(b, restart_identity ? ",\"restart_identity\":true}\n" : ",\"restart_identity\":false}\n");
}

void
emit_message(struct capture *c, lsn_t lsn, bool transactional, const char *prefix,
		const char *content, size_t len)
{
	struct buf *b = &c->out;

	if (transactional) {
		put_head(c, "message", NULL, lsn, NULL);
	} else {
		/* outside any transaction: the message's own position names it */
		buf_putlit(b, "{\"op\":\"message\"");
		put_id(b, lsn, -1);
		buf_putlit(b, ",\"lsn\":");
		put_lsn(b, lsn);
		c->events++;
		watch_event(c, "message", NULL);
	}
	buf_puts(b, transactional ? ",\"transactional\":true" : ",\"transactional\":false");
	buf_putlit(b, ",\"prefix\":");
	buf_put_jstr(b, prefix, strlen(prefix));
	if (utf8_valid(content, len)) {
		buf_putlit(b, ",\"content\":");
		buf_put_jstr(b, content, len);
	} else {
		buf_putlit(b, ",\"content_base64\":");
		buf_put_base64(b, content, len);
	}
	buf_putlit(b, "}\n");
}

static const char *
replident_name(char r)
{
	switch (r) {
	case 'f': return "full";
	case 'n': return "nothing";
	case 'i': return "index";
	default: return "default";
	}
}

void
emit_schema(struct capture *c, const struct relation *rel, lsn_t lsn)
{
	struct buf *b = &c->out;
	int i;

	/* pgoutput sends relation messages without a position of their own */
	if (lsn == LSN_INVALID)
		lsn = c->tx.open ? c->tx.first_lsn : c->received;
	buf_putlit(b, "{\"op\":\"schema\",\"schema\":");
	buf_put_jstr(b, rel->schema, strlen(rel->schema));
	buf_putlit(b, ",\"table\":");
	buf_put_jstr(b, rel->table, strlen(rel->table));
	buf_putlit(b, ",\"lsn\":");
	put_lsn(b, lsn);
	buf_putlit(b, ",\"replica_identity\":\"");
	buf_puts(b, replident_name(rel->replident));
	buf_putlit(b, "\",\"columns\":[");
	for (i = 0; i < rel->natts; i++) {
		const struct column *col = &rel->cols[i];

		buf_puts(b, i ? ",{\"name\":" : "{\"name\":");
		buf_put_jstr(b, col->name, strlen(col->name));
		buf_putlit(b, ",\"type\":");
		if (col->typname)
			buf_put_jstr(b, col->typname, strlen(col->typname));
		else
			buf_putlit(b, "null");
		buf_putlit(b, ",\"oid\":");
		buf_put_u64(b, col->typoid);
		buf_puts(b, col->key ? ",\"key\":true" : ",\"key\":false");
		buf_puts(b, col->ident ? ",\"replica_identity\":true}" : ",\"replica_identity\":false}");
	}
	buf_putlit(b, "]}\n");
	c->events++;
	watch_event(c, "schema", rel);
}

/* {"op":"heartbeat","id":..,"lsn":..,"xid":..,"ts":..}: ts is when it was written */
void
emit_heartbeat(struct capture *c, lsn_t lsn)
{
	put_head(c, "heartbeat", NULL, lsn, NULL);
	buf_putlit(&c->out, "}\n");
}

/* A snapshot's row: {"op":"read",..,"id":ID,..,"key":{..},"new":{..}}; key: its "key" member, as emit_key wrote it */
void
emit_read(struct capture *c, const struct relation *rel, lsn_t lsn, const struct value *v,
		const char *id, const char *key)
{
	put_head(c, "read", rel, lsn, id);
	buf_puts(&c->out, key);
	put_tuple(&c->out, "new", rel, v, false);
	buf_putlit(&c->out, "}\n");
}

/* The "key" member an event about this row has (snapshot.c matches rows by it). */
void
emit_key(struct buf *b, const struct relation *rel, const struct value *oldv, bool old_is_key,
		const struct value *newv)
{
	put_key(b, rel, oldv, old_is_key, newv);
}

/* The "new" member of a row */
void
emit_tuple(struct buf *b, const struct relation *rel, const struct value *v)
{
	put_tuple(b, "new", rel, v, false);
}

/*
 * {"op":"ddl","schema":..,"table":..,"id":..,"lsn":..,"xid":..,"ts":..,...}:
 * schema and table lead when the command names a table; otherwise a
 * schema follows ts. The message's other members come last, as they were.
 */
void
emit_ddl(struct capture *c, lsn_t lsn, const struct ddl *d)
{
	struct buf *b = &c->out;
	struct relation rel = {.schema = d->schema, .table = d->table};
	bool head = d->schema && d->table;

	put_head(c, "ddl", head ? &rel : NULL, lsn, NULL);
	if (!head && d->schema) {
		buf_putlit(b, ",\"schema\":");
		buf_put_jstr(b, d->schema, strlen(d->schema));
	}
	if (!head && d->table) {
		buf_putlit(b, ",\"table\":");
		buf_put_jstr(b, d->table, strlen(d->table));
	}
	buf_put(b, d->body.data, d->body.len);
	buf_putlit(b, "}\n");
}

/* {"op":"begin"|"commit","xid":..,"lsn":..,"commit_lsn":..,"ts":..} */
void
emit_txline(struct capture *c, const char *op, lsn_t lsn)
{
	struct buf *b = &c->out;

	buf_putlit(b, "{\"op\":\"");
	buf_puts(b, op);
	buf_putlit(b, "\",\"xid\":");
	buf_put_u64(b, c->tx.xid);
	buf_putlit(b, ",\"lsn\":");
	put_lsn(b, lsn);
	buf_putlit(b, ",\"commit_lsn\":");
	put_lsn(b, c->tx.commit_lsn);
	buf_putlit(b, ",\"ts\":\"");
	buf_puts(b, c->tx.ts);
	buf_putlit(b, "\"}\n");
	watch_event(c, op, NULL);
}
