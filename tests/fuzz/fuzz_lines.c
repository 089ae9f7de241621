/*
 * libFuzzer target for the line-level parsers of outside input: the event
 * line head (ev_head), the JSON scanner walking a whole line, and LSNs as
 * they arrive on the ack pipe.
 */
#include <stdint.h>
#include <string.h>

#include "../../lib/buf.h"
#include "../../lib/evline.h"
#include "../../lib/jscan.h"
#include "../../lib/lsn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Visit every member and element, decoding every string. */
static void
walk(const struct jtok *t, struct buf *scratch, int depth)
{
	struct jiter it;
	struct jtok k, v;

	if (depth > 64 || jiter_begin(&it, t) < 0)
		return;
	if (t->type == J_OBJECT)
		while (jiter_member(&it, &k, &v) == 1) {
			jstr_decode(&k, scratch);
			walk(&v, scratch, depth + 1);
		}
	else
		while (jiter_elem(&it, &v) == 1)
			walk(&v, scratch, depth + 1);
	if (t->type == J_STRING)
		jstr_decode(t, scratch);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *) data, *err;
	struct ev_head h;
	struct jtok t;
	struct buf scratch = {0};
	size_t pos = 0;
	lsn_t lsn;
	char back[LSN_BUFSZ];

	if (ev_head(s, size, &h, &err) == 0 && h.opname.type != J_STRING)
		__builtin_trap();
	if (jscan_value(s, size, &pos, &t) == 0) {
		walk(&t, &scratch, 0);
		if (t.type == J_STRING)
			jstr_decode(&t, &scratch);
	}
	if (lsn_parse(s, size, &lsn) == 0) {
		lsn_t again;
		int n = lsn_format(lsn, back);

		if (lsn_parse(back, (size_t) n, &again) < 0 || again != lsn)
			__builtin_trap();
	}
	buf_free(&scratch);
	return 0;
}
