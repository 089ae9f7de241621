/*
 * Decoder for pgoutput's logical replication protocol, version 1 (plus
 * logical decoding messages, PostgreSQL 14+), and version 2's transactions
 * streamed in progress, which spool.c keeps until they commit and then
 * replays through this decoder as version 1 messages. Every read is bounds-checked:
 * a short or malformed message is a protocol error, never a crash.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture.h"
#include "../lib/log.h"
#include "../lib/util.h"

struct rd {
	const unsigned char *p, *end;
	bool bad;
};

static bool
rd_need(struct rd *r, size_t n)
{
	if (r->bad || (size_t) (r->end - r->p) < n) {
		r->bad = true;
		return false;
	}
	return true;
}

static uint8_t
rd_u8(struct rd *r)
{
	return rd_need(r, 1) ? *r->p++ : 0;
}

static uint16_t
rd_u16(struct rd *r)
{
	uint16_t v;

	if (!rd_need(r, 2))
		return 0;
	v = (uint16_t) (r->p[0] << 8 | r->p[1]);
	r->p += 2;
	return v;
}

static uint32_t
rd_u32(struct rd *r)
{
	uint32_t v;

	if (!rd_need(r, 4))
		return 0;
	v = (uint32_t) r->p[0] << 24 | (uint32_t) r->p[1] << 16 | (uint32_t) r->p[2] << 8 | r->p[3];
	r->p += 4;
	return v;
}

static uint64_t
rd_u64(struct rd *r)
{
	uint64_t hi = rd_u32(r);

	return hi << 32 | rd_u32(r);
}

/* A NUL-terminated string inside the message; "" when malformed. */
static const char *
rd_str(struct rd *r)
{
	const unsigned char *nul;
	const char *s;

	if (r->bad)
		return "";
	nul = memchr(r->p, '\0', (size_t) (r->end - r->p));
	if (!nul) {
		r->bad = true;
		return "";
	}
	s = (const char *) r->p;
	r->p = nul + 1;
	return s;
}

static int
bad(struct capture *c, const char *what)
{
	snprintf(c->decode_err, sizeof(c->decode_err), "%s", what);
	return -1;
}

static struct relation *
need_rel(struct capture *c, uint32_t relid)
{
	/* 0 is no relation: rel_find would look it up by name */
	struct relation *rel = relid ? rel_find(c, relid, NULL, NULL) : NULL;

	if (!rel)
		bad(c, "pgoutput change for a relation never described");
	return rel;
}

/* Read TupleData into v[0..natts). */
static int
read_tuple(struct rd *r, const struct relation *rel, struct value *v)
{
	int i, natts = rd_u16(r);
	uint32_t len;

	if (r->bad || natts != rel->natts)
		return -1;
	for (i = 0; i < natts; i++) {
		v[i].kind = (char) rd_u8(r);
		v[i].p = NULL;
		v[i].n = 0;
		switch (v[i].kind) {
		case 'n':
		case 'u':
			break;
		case 't':
			len = rd_u32(r);
			if (!rd_need(r, len))
				return -1;
			v[i].p = (const char *) r->p;
			v[i].n = len;
			r->p += len;
			break;
		default:
			return -1;	/* 'b' (binary) is never asked for */
		}
	}
	return r->bad ? -1 : 0;
}

static int
on_relation(struct capture *c, struct rd *r)
{
	struct relation *rel = xcalloc(1, sizeof(*rel));
	int i;

	rel->relid = rd_u32(r);
	rel->schema = xstrdup(rd_str(r));
	rel->table = xstrdup(rd_str(r));
	rel->replident = (char) rd_u8(r);
	rel->natts = rd_u16(r);
	rel->cols = xcalloc((size_t) rel->natts, sizeof(*rel->cols));
	for (i = 0; i < rel->natts && !r->bad; i++) {
		rel->cols[i].ident = rd_u8(r) & 1;
		rel->cols[i].name = xstrdup(rd_str(r));
		rel->cols[i].typoid = rd_u32(r);
		rel->cols[i].typmod = (int32_t) rd_u32(r);	/* as of the change: names the type */
	}
	if (r->bad) {
		rel->natts = i;
		rel_free(rel);
		return bad(c, "malformed pgoutput relation message");
	}
	if (catalog_describe(c, rel) < 0)
		rel_derive_key(rel);
	catalog_typnames(c, rel);
	/*
	 * The schema event waits for the first event that names the relation:
	 * with publish_via_partition_root the server describes a partition
	 * too, whose changes are published as its root's.
	 */
	rel_store(c, rel);
	return 0;
}

static int
on_change(struct capture *c, struct rd *r, char kind, lsn_t lsn)
{
	struct relation *rel = need_rel(c, rd_u32(r));
	struct value *oldv = NULL, *newv = NULL, *vals;
	bool old_is_key = false;
	uint8_t t;

	if (!rel)
		return -1;
	vals = tuple_scratch(c, (size_t) rel->natts);
	t = rd_u8(r);
	if (kind != 'I' && (t == 'K' || t == 'O')) {
		oldv = vals;
		old_is_key = t == 'K';
		if (read_tuple(r, rel, oldv) < 0)
			return bad(c, "malformed pgoutput old tuple");
		if (kind == 'U')
			t = rd_u8(r);
	}
	if (kind != 'D') {
		if (t != 'N')
			return bad(c, "pgoutput change without a new tuple");
		newv = vals + rel->natts;
		if (read_tuple(r, rel, newv) < 0)
			return bad(c, "malformed pgoutput new tuple");
	} else if (!oldv)
		return bad(c, "pgoutput delete without an old tuple");
	tx_schema(c, rel, lsn);
	tx_row(c, kind == 'I' ? "insert" : kind == 'U' ? "update" : "delete", rel, lsn,
			oldv, old_is_key, newv);
	return 0;
}

static int
on_truncate(struct capture *c, struct rd *r, lsn_t lsn)
{
	uint32_t i, nrels = rd_u32(r);
	uint8_t flags = rd_u8(r);

	for (i = 0; i < nrels && !r->bad; i++) {
		struct relation *rel = need_rel(c, rd_u32(r));

		if (!rel)
			return -1;
		tx_schema(c, rel, lsn);
		tx_truncate(c, rel, lsn, flags & 1, flags & 2);
	}
	return r->bad ? bad(c, "malformed pgoutput truncate message") : 0;
}

static int
on_message(struct capture *c, struct rd *r)
{
	uint8_t flags = rd_u8(r);
	lsn_t lsn = rd_u64(r);
	const char *prefix = rd_str(r);
	uint32_t len = rd_u32(r);

	if (!rd_need(r, len))
		return bad(c, "malformed pgoutput message");
	tx_message(c, lsn, flags & 1, prefix, (const char *) r->p, len);
	return 0;
}

/*
 * Protocol version 2's stream messages, and inside a stream block a
 * transaction's messages, which carry its (or its subtransaction's) xid
 * after the type byte and are spooled without it.
 */
static int
on_stream(struct capture *c, struct rd *r, char kind, lsn_t lsn)
{
	uint32_t xid, sub;
	uint8_t first;
	lsn_t a, b;
	int64_t ts;

	switch (kind) {
	case 'S':
		xid = rd_u32(r);
		first = rd_u8(r);
		return r->bad ? bad(c, "malformed pgoutput stream start") : spool_start(c, xid, first == 1, lsn);
	case 'E':
		return spool_stop(c);
	case 'c':
		xid = rd_u32(r);
		(void) rd_u8(r);
		a = rd_u64(r);
		b = rd_u64(r);
		ts = (int64_t) rd_u64(r);
		return r->bad ? bad(c, "malformed pgoutput stream commit") : spool_commit(c, xid, a, b, ts);
	case 'A':
		/* abort lsn and time follow only with parallel streaming, never asked for */
		xid = rd_u32(r);
		sub = rd_u32(r);
		return r->bad ? bad(c, "malformed pgoutput stream abort") : spool_abort(c, xid, sub);
	case 'O':	/* origin: no xid */
		return 0;
	case 'R':
	case 'Y':
	case 'I':
	case 'U':
	case 'D':
	case 'T':
	case 'M':
		xid = rd_u32(r);
		if (r->bad)
			return bad(c, "malformed pgoutput streamed message");
		return spool_append(c, xid, lsn, kind, r->p, (size_t) (r->end - r->p));
	default:
		return bad(c, "unexpected pgoutput message inside a stream");
	}
}

int
pgoutput_decode(struct capture *c, lsn_t lsn, const char *p, size_t n)
{
	struct rd r = {(const unsigned char *) p, (const unsigned char *) p + n, false};
	char kind = (char) rd_u8(&r);
	lsn_t a, b;
	int64_t ts;
	uint32_t xid;

	if (spool_in_block(c) || kind == 'S' || kind == 'E' || kind == 'c' || kind == 'A')
		return on_stream(c, &r, kind, lsn);
	switch (kind) {
	case 'B':
		a = rd_u64(&r);
		ts = (int64_t) rd_u64(&r);
		xid = rd_u32(&r);
		if (r.bad)
			return bad(c, "malformed pgoutput begin");
		tx_begin(c, xid, a, lsn, ts);
		return 0;
	case 'C':
		(void) rd_u8(&r);
		a = rd_u64(&r);
		b = rd_u64(&r);
		(void) rd_u64(&r);
		if (r.bad || a != c->tx.commit_lsn)
			return bad(c, "pgoutput commit does not match its begin");
		tx_commit(c, b);
		return 0;
	case 'R':
		return on_relation(c, &r);
	case 'I':
	case 'U':
	case 'D':
		return on_change(c, &r, kind, lsn);
	case 'T':
		return on_truncate(c, &r, lsn);
	case 'M':
		return on_message(c, &r);
	case 'O':	/* origin */
	case 'Y':	/* type: the catalog names types */
		return 0;
	default:
		return bad(c, "unknown pgoutput message type");
	}
}
