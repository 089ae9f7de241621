/*
 * The database's encoding. pgoutput's text reaches us converted to the
 * connection's client_encoding (UTF8); wal2json writes the database's
 * bytes as they are, so its messages are converted here, whole (every
 * server encoding keeps ASCII bytes for ASCII, so the JSON's structure is
 * unchanged). SQL_ASCII has no encoding to convert from: its bytes pass,
 * and any that are not UTF-8 are written as U+FFFD (lib/buf.c).
 */
#include <errno.h>
#include <iconv.h>
#include <string.h>

#include "capture.h"
#include "../lib/exitcode.h"
#include "../lib/log.h"

/* PostgreSQL's server encodings other than UTF8 and SQL_ASCII, with iconv's names. */
static const struct {
	const char *pg, *iconv;
} encodings[] = {
	{"LATIN1", "ISO-8859-1"}, {"LATIN2", "ISO-8859-2"}, {"LATIN3", "ISO-8859-3"},
	{"LATIN4", "ISO-8859-4"}, {"LATIN5", "ISO-8859-9"}, {"LATIN6", "ISO-8859-10"},
	{"LATIN7", "ISO-8859-13"}, {"LATIN8", "ISO-8859-14"}, {"LATIN9", "ISO-8859-15"},
	{"LATIN10", "ISO-8859-16"}, {"ISO_8859_5", "ISO-8859-5"}, {"ISO_8859_6", "ISO-8859-6"},
	{"ISO_8859_7", "ISO-8859-7"}, {"ISO_8859_8", "ISO-8859-8"}, {"WIN866", "CP866"},
	{"WIN874", "CP874"}, {"WIN1250", "CP1250"}, {"WIN1251", "CP1251"}, {"WIN1252", "CP1252"},
	{"WIN1253", "CP1253"}, {"WIN1254", "CP1254"}, {"WIN1255", "CP1255"}, {"WIN1256", "CP1256"},
	{"WIN1257", "CP1257"}, {"WIN1258", "CP1258"}, {"KOI8R", "KOI8-R"}, {"KOI8U", "KOI8-U"},
	{"EUC_JP", "EUC-JP"}, {"EUC_CN", "EUC-CN"}, {"EUC_KR", "EUC-KR"}, {"EUC_TW", "EUC-TW"},
	{"EUC_JIS_2004", "EUC-JISX0213"},
};

/*
 * Get ready to convert text in the server encoding enc (as the server
 * names it) to UTF-8, for wal2json. Returns 0 (also when nothing needs
 * converting), or EXIT_SERVERCONF after logging why it cannot be done.
 */
int
recode_open(struct capture *c, const char *enc)
{
	size_t i;

	if (c->recode || c->opt.plugin != PLUGIN_WAL2JSON || strcmp(enc, "UTF8") == 0 ||
			strcmp(enc, "SQL_ASCII") == 0)
		return 0;
	for (i = 0; i < sizeof(encodings) / sizeof(encodings[0]); i++) {
		if (strcmp(enc, encodings[i].pg) != 0)
			continue;
		c->recode = iconv_open("UTF-8", encodings[i].iconv);
		if (c->recode == (iconv_t) -1) {
			c->recode = NULL;
			break;
		}
		return 0;
	}
	log_kv(LOG_ERROR, "could not convert the database encoding to UTF-8", "slot", c->opt.slot,
			"encoding", enc, "hint", "use --plugin pgoutput, which the server converts", NULL);
	return EXIT_SERVERCONF;
}

void
recode_close(struct capture *c)
{
	if (c->recode)
		iconv_close(c->recode);
	c->recode = NULL;
	buf_free(&c->recoded);
}

/*
 * Write out what the converter holds back (CP1255 and CP1258 keep a
 * character in case a combining mark follows) and return it to its
 * initial state.
 */
static void
flush(struct capture *c)
{
	struct buf *b = &c->recoded;
	char *out;
	size_t outleft;

	buf_reserve(b, 32);
	out = b->data + b->len;
	outleft = b->cap - b->len;
	iconv(c->recode, NULL, NULL, &out, &outleft);
	b->len = (size_t) (out - b->data);
}

/*
 * Convert the message at *p, *n to UTF-8 in c->recoded and point *p, *n
 * there (owned by c, valid until the next call). A byte the encoding does
 * not define becomes U+FFFD. No-op without recode_open.
 */
void
recode(struct capture *c, const char **p, size_t *n)
{
	struct buf *b = &c->recoded;
	char *in = (char *) *p, *out;
	size_t inleft = *n, outleft;

	if (!c->recode)
		return;
	b->len = b->off = 0;
	while (inleft > 0) {
		buf_reserve(b, inleft * 4 + 16);
		out = b->data + b->len;
		outleft = b->cap - b->len;
		if (iconv(c->recode, &in, &inleft, &out, &outleft) != (size_t) -1 || errno == E2BIG) {
			b->len = (size_t) (out - b->data);
			continue;
		}
		/* EILSEQ or EINVAL: one byte it cannot read, after what came before it */
		b->len = (size_t) (out - b->data);
		flush(c);
		buf_put(b, "\xef\xbf\xbd", 3);
		in++;
		inleft--;
	}
	flush(c);
	*p = b->data;
	*n = b->len;
}
