/*
 * libFuzzer target for the decoders. The input is a sequence of messages,
 * each a 2-byte big-endian length and that many bytes, fed in order to one
 * struct capture so relation state carries across them. Built twice, with
 * FUZZ_WAL2JSON or without (pgoutput); wal2json inputs of odd length are
 * taken as text of a LATIN1 database, converted. Whatever the input,
 * what is written must be valid UTF-8 with no raw line separators, and
 * the same whether the decoders take their short ways or not.
 */
#define _GNU_SOURCE	/* memmem */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../pg-capture/capture.h"
#include "../../lib/log.h"
#include "../../lib/utf8.h"

/* Valid UTF-8 without U+0085, U+2028 or U+2029, which must be escaped. */
static void
check_output(const struct buf *b)
{
	if (b->len == 0)
		return;
	if (!utf8_valid(b->data, b->len) || memmem(b->data, b->len, "\xe2\x80\xa8", 3) ||
			memmem(b->data, b->len, "\xe2\x80\xa9", 3) || memmem(b->data, b->len, "\xc2\x85", 2))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * Decode the input as the loop would, every line written appended to all;
 * returns whether a decoder failed, its reason in err. long_way: the
 * decoders' short ways off.
 */
static int
run(const uint8_t *data, size_t size, bool long_way, struct buf *all, char *err, size_t errsz)
{
	struct capture c;
	size_t pos = 0, n;
	lsn_t lsn = 0x1000000;

	memset(&c, 0, sizeof(c));
	c.offline = true;
	c.long_way = long_way;
#ifdef FUZZ_WAL2JSON
	c.opt.plugin = PLUGIN_WAL2JSON;
	if (size % 2 && recode_open(&c, "LATIN1") != 0)
		abort();
#endif
	while (pos + 2 <= size && !c.fatal) {
		n = (size_t) data[pos] << 8 | data[pos + 1];
		pos += 2;
		if (n > size - pos)
			n = size - pos;
		/* a copy of exactly n bytes, so reading past the message is caught */
		char *m = malloc(n ? n : 1);

		memcpy(m, data + pos, n);
		if ((c.opt.plugin == PLUGIN_WAL2JSON ? wal2json_decode : pgoutput_decode)(&c, lsn, m, n) < 0)
			c.fatal = 1;
		free(m);
		/* a streamed transaction committed: replayed from its spool, as stream.c does */
		while (!c.fatal && spool_replaying(&c)) {
			if (spool_replay(&c) < 0)
				c.fatal = 1;
			check_output(&c.out);
			buf_put(all, c.out.data, c.out.len);
			c.out.len = c.out.off = 0;
		}
		check_output(&c.out);
		buf_put(all, c.out.data, c.out.len);
		c.out.len = c.out.off = 0;
		pos += n;
		lsn += 0x40;
	}
	snprintf(err, errsz, "%s", c.fatal ? c.decode_err : "");
	while (c.nrels)
		rel_free(c.rels[--c.nrels]);
	free(c.rels);
	free(c.vals);
	free(c.pend);
	buf_free(&c.out);
	buf_free(&c.scratch);
	recode_close(&c);
	spool_free(&c);
	return c.fatal;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf a = {0}, b = {0};
	char ea[160], eb[160];
	int fa, fb;

	log_set_level(LOG_ERROR + 1);
	fa = run(data, size, false, &a, ea, sizeof(ea));
	/* the short ways change nothing: the same lines, the same verdict */
	fb = run(data, size, true, &b, eb, sizeof(eb));
	if (fa != fb || strcmp(ea, eb) != 0 || a.len != b.len || (a.len && memcmp(a.data, b.data, a.len) != 0))
		abort();
	buf_free(&a);
	buf_free(&b);
	return 0;
}
