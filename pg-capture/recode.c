/*
 * The database's encoding. pgoutput's text reaches us converted to the
 * connection's client_encoding (UTF8) by the server; wal2json writes the
 * database's bytes as they are, so its messages are converted here, whole
 * (every server encoding keeps ASCII bytes for ASCII, so the JSON's
 * structure is unchanged, and a message of ASCII alone needs nothing).
 *
 * The conversion must be PostgreSQL's own: its tables differ from
 * iconv's (EUC_JP's NEC and IBM rows, WIN1258's combining marks). LATIN1
 * maps each byte to the code point of that number, so it is done here;
 * any other encoding is converted by the server, convert(bytes, ENC,
 * 'UTF8') on the catalog connection, one round trip per message that
 * holds non-ASCII text (pg-capture(1) says pgoutput needs none).
 *
 * SQL_ASCII has no encoding to convert from: its bytes pass, and any that
 * are not UTF-8 are written as U+FFFD (lib/buf.c).
 */
#include <stdlib.h>
#include <string.h>

#include "capture.h"
#include "../lib/log.h"
#include "../lib/utf8.h"
#include "../lib/util.h"

/*
 * Note the database encoding enc (as the server names it) for wal2json's
 * messages. Returns 0.
 */
int
recode_open(struct capture *c, const char *enc)
{
	if (c->opt.plugin != PLUGIN_WAL2JSON || strcmp(enc, "UTF8") == 0 ||
			strcmp(enc, "SQL_ASCII") == 0 || (c->recode && strcmp(c->recode, enc) == 0))
		return 0;
	free(c->recode);
	c->recode = xstrdup(enc);
	return 0;
}

void
recode_close(struct capture *c)
{
	free(c->recode);
	c->recode = NULL;
	buf_free(&c->recoded);
}

static void
from_latin1(struct buf *b, const unsigned char *s, size_t n)
{
	size_t i;

	buf_reserve(b, 2 * n);
	for (i = 0; i < n; i++) {
		if (s[i] < 0x80)
			b->data[b->len++] = (char) s[i];
		else {
			b->data[b->len++] = (char) (0xc0 | s[i] >> 6);
			b->data[b->len++] = (char) (0x80 | (s[i] & 0x3f));
		}
	}
}

/* The server's conversion of s[0..n) from c->recode to UTF-8 into b; -1 when it failed (logged). */
static int
by_server(struct capture *c, struct buf *b, const char *s, size_t n)
{
	static const char sql[] = "SELECT pg_catalog.convert($1::pg_catalog.bytea, $2, 'UTF8')";
	const char *values[2] = {s, c->recode};
	int lengths[2] = {(int) n, 0}, formats[2] = {1, 0};
	PGresult *res = catalog_exec(c, sql, 2, values, lengths, formats, 1);

	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		log_kv(LOG_ERROR, "could not convert wal2json's text to UTF-8", "slot", c->opt.slot,
				"encoding", c->recode, "error", res ? PQresultErrorMessage(res) : "no catalog connection",
				NULL);
		PQclear(res);
		return -1;
	}
	buf_put(b, PQgetvalue(res, 0, 0), (size_t) PQgetlength(res, 0, 0));
	PQclear(res);
	return 0;
}

/*
 * Convert the message at *p, *n to UTF-8 and point *p, *n at the result
 * (in c->recoded, owned by c, valid until the next call; the message
 * itself when it needs nothing). Returns 0, or -1 when the server could
 * not convert it.
 */
int
recode(struct capture *c, const char **p, size_t *n)
{
	struct buf *b = &c->recoded;

	if (!c->recode || utf8_all_ascii(*p, *n))
		return 0;
	b->len = b->off = 0;
	if (strcmp(c->recode, "LATIN1") == 0)
		from_latin1(b, (const unsigned char *) *p, *n);
	else if (by_server(c, b, *p, *n) < 0)
		return -1;
	*p = b->data;
	*n = b->len;
	return 0;
}
