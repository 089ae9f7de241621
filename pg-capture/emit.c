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
put_value(struct buf *b, uint32_t typoid, const struct value *v)
{
	size_t i, start;

	if (v->kind == 'n') {
		buf_putlit(b, "null");
		return;
	}
	switch (type_class(typoid)) {
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
		buf_put(b, v->p, v->n);
		return;
	case T_JSON:
		/* json keeps its input's layout; raw newlines can only be whitespace */
		for (i = start = 0; i < v->n; i++) {
			if (v->p[i] == '\n' || v->p[i] == '\r') {
				buf_put(b, v->p + start, i - start);
				buf_putc(b, ' ');
				start = i + 1;
			}
		}
		buf_put(b, v->p + start, v->n - start);
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
	/* PostgreSQL's epoch is 2000-01-01, 946684800 s after the Unix one */
	int64_t us = ts_us % 1000000;
	time_t secs = (time_t) (ts_us / 1000000 + 946684800);
	struct tm tm;

	if (us < 0) {
		us += 1000000;
		secs--;
	}
	gmtime_r(&secs, &tm);
	snprintf(out, outsz, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900,
			tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int) us);
}

/* {"op":"OP","schema":..,"table":..,"id":..,"lsn":..,"xid":..,"ts":.. */
static void
put_head(struct capture *c, const char *op, const struct relation *rel, lsn_t lsn)
{
	struct buf *b = &c->out;

	buf_putlit(b, "{\"op\":\"");
	buf_puts(b, op);
	buf_putc(b, '"');
	if (rel) {
		buf_putlit(b, ",\"schema\":");
		buf_put_jstr(b, rel->schema, strlen(rel->schema));
		buf_putlit(b, ",\"table\":");
		buf_put_jstr(b, rel->table, strlen(rel->table));
	}
	put_id(b, c->tx.commit_lsn, (int64_t) c->tx.nchanges - 1);
	buf_putlit(b, ",\"lsn\":");
	put_lsn(b, lsn);
	buf_putlit(b, ",\"xid\":");
	buf_put_u64(b, c->tx.xid);
	buf_putlit(b, ",\"ts\":\"");
	buf_puts(b, c->tx.ts);
	buf_putc(b, '"');
	c->events++;
}

/* ,"NAME":{col:val,...} with the columns selected by keys_only. */
static void
put_tuple(struct buf *b, const char *name, const struct relation *rel,
		const struct value *v, bool keys_only)
{
	bool first = true;
	int i;

	buf_putlit(b, ",\"");
	buf_puts(b, name);
	buf_putlit(b, "\":{");
	for (i = 0; i < rel->natts; i++) {
		if ((keys_only && !rel->cols[i].key) || v[i].kind == 'u' || v[i].kind == 0)
			continue;
		if (!first)
			buf_putc(b, ',');
		first = false;
		buf_put_jstr(b, rel->cols[i].name, strlen(rel->cols[i].name));
		buf_putc(b, ':');
		put_value(b, rel->cols[i].typoid, &v[i]);
	}
	buf_putc(b, '}');
}

void
emit_row(struct capture *c, const char *op, const struct relation *rel, lsn_t lsn,
		const struct value *oldv, bool old_is_key, const struct value *newv)
{
	struct buf *b = &c->out;
	bool first = true;
	int i;

	if (!tx_change(c, lsn))
		return;
	put_head(c, op, rel, lsn);
	put_tuple(b, "key", rel, newv ? newv : oldv, true);
	if (newv)
		put_tuple(b, "new", rel, newv, false);
	if (oldv) {
		/* a key-only old tuple carries the replica identity columns only */
		put_tuple(b, "old", rel, oldv, old_is_key);
	}
	for (i = 0; newv && i < rel->natts; i++) {
		if (newv[i].kind != 'u')
			continue;
		buf_puts(b, first ? ",\"unchanged\":[" : ",");
		first = false;
		buf_put_jstr(b, rel->cols[i].name, strlen(rel->cols[i].name));
	}
	if (!first)
		buf_putc(b, ']');
	buf_putlit(b, "}\n");
}

void
emit_truncate(struct capture *c, const struct relation *rel, lsn_t lsn, bool cascade,
		bool restart_identity)
{
	struct buf *b = &c->out;

	if (!tx_change(c, lsn))
		return;
	put_head(c, "truncate", rel, lsn);
	buf_puts(b, cascade ? ",\"cascade\":true" : ",\"cascade\":false");
	buf_puts(b, restart_identity ? ",\"restart_identity\":true}\n" : ",\"restart_identity\":false}\n");
}

static bool
valid_utf8(const unsigned char *s, size_t n)
{
	size_t i = 0, k, len;
	uint32_t cp;

	while (i < n) {
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		if ((s[i] & 0xe0) == 0xc0)
			len = 2, cp = s[i] & 0x1f;
		else if ((s[i] & 0xf0) == 0xe0)
			len = 3, cp = s[i] & 0x0f;
		else if ((s[i] & 0xf8) == 0xf0)
			len = 4, cp = s[i] & 0x07;
		else
			return false;
		if (i + len > n)
			return false;
		for (k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
				cp > 0x10ffff || (cp >= 0xd800 && cp < 0xe000))
			return false;
		i += len;
	}
	return true;
}

static void
put_base64(struct buf *b, const unsigned char *s, size_t n)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i;
	char q[4];

	buf_putc(b, '"');
	for (i = 0; i + 2 < n; i += 3) {
		q[0] = tab[s[i] >> 2];
		q[1] = tab[(s[i] & 3) << 4 | s[i + 1] >> 4];
		q[2] = tab[(s[i + 1] & 15) << 2 | s[i + 2] >> 6];
		q[3] = tab[s[i + 2] & 63];
		buf_put(b, q, 4);
	}
	if (i < n) {
		q[0] = tab[s[i] >> 2];
		q[1] = tab[(s[i] & 3) << 4 | (i + 1 < n ? s[i + 1] >> 4 : 0)];
		q[2] = i + 1 < n ? tab[(s[i + 1] & 15) << 2] : '=';
		q[3] = '=';
		buf_put(b, q, 4);
	}
	buf_putc(b, '"');
}

void
emit_message(struct capture *c, lsn_t lsn, bool transactional, const char *prefix,
		const char *content, size_t len)
{
	struct buf *b = &c->out;

	if (transactional) {
		if (!tx_change(c, lsn))
			return;
		put_head(c, "message", NULL, lsn);
	} else {
		/* outside any transaction: the message's own position names it */
		buf_putlit(b, "{\"op\":\"message\"");
		put_id(b, lsn, -1);
		buf_putlit(b, ",\"lsn\":");
		put_lsn(b, lsn);
		c->events++;
	}
	buf_puts(b, transactional ? ",\"transactional\":true" : ",\"transactional\":false");
	buf_putlit(b, ",\"prefix\":");
	buf_put_jstr(b, prefix, strlen(prefix));
	if (valid_utf8((const unsigned char *) content, len)) {
		buf_putlit(b, ",\"content\":");
		buf_put_jstr(b, content, len);
	} else {
		buf_putlit(b, ",\"content_base64\":");
		put_base64(b, (const unsigned char *) content, len);
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
emit_schema(struct capture *c, struct relation *rel, lsn_t lsn)
{
	struct buf *b = &c->out;
	int i;

	if (rel->announced)
		return;
	rel->announced = true;
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
		buf_puts(b, col->key ? ",\"key\":true}" : ",\"key\":false}");
	}
	buf_putlit(b, "]}\n");
	c->events++;
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
}
