/*
 * libFuzzer target for the decoders. The input is a sequence of messages,
 * each a 2-byte big-endian length and that many bytes, fed in order to one
 * struct capture so relation state carries across them. Built twice, with
 * FUZZ_WAL2JSON or without (pgoutput); wal2json inputs of odd length are
 * taken as text of a LATIN1 database, converted. Whatever the input,
 * what is written must be valid UTF-8 with no raw line separators.
 */
#define _GNU_SOURCE	/* memmem */
#include <stdint.h>
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

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct capture c;
	size_t pos = 0, n;
	lsn_t lsn = 0x1000000;

	log_set_level(LOG_ERROR + 1);
	memset(&c, 0, sizeof(c));
	c.offline = true;
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
			c.out.len = c.out.off = 0;
		}
		check_output(&c.out);
		c.out.len = c.out.off = 0;
		pos += n;
		lsn += 0x40;
	}
	while (c.nrels)
		rel_free(c.rels[--c.nrels]);
	free(c.rels);
	free(c.vals);
	free(c.pend);
	buf_free(&c.out);
	buf_free(&c.scratch);
	jtree_free(&c.w2j);
	recode_close(&c);
	spool_free(&c);
	return 0;
}
