#include "deadletter.h"

#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "jscan.h"

/* s[0..n) in base64 (RFC 4648), as a JSON string. */
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

int
dl_append(FILE *f, const char *line, size_t n, unsigned long lineno, long status, const char *why)
{
	struct buf b = {0};
	struct jtok t, k, v;
	struct jiter it;
	size_t end = 0, pos = 0;
	const char *bad;
	int rc = 0, empty = 0;

	/* a bad input line (status 0) is kept whole as text: it may not be JSON at all */
	if (status != 0 && jscan_value(line, n, &pos, &t) == 0 && t.type == J_OBJECT) {
		end = (size_t) (t.p - line) + t.n;
		jiter_begin(&it, &t);
		empty = jiter_member(&it, &k, &v) == 0;
	}
	if (end == 0 && jutf8_check(line, n, &pos, &bad) == 0) {
		buf_putlit(&b, "{\"op\":\"invalid\",\"line\":");
		buf_put_jstr(&b, line, n);
	} else if (end == 0) {
		/* a JSON string cannot hold bytes that are not UTF-8: keep them exactly */
		buf_putlit(&b, "{\"op\":\"invalid\",\"line_base64\":");
		put_base64(&b, (const unsigned char *) line, n);
	} else
		buf_put(&b, line, end - 1);	/* up to, not including, the closing brace */
	if (!empty)
		buf_putc(&b, ',');
	buf_putlit(&b, "\"dead_letter\":{\"status\":");
	buf_put_i64(&b, status);
	buf_putlit(&b, ",\"input_line\":");
	buf_put_u64(&b, lineno);
	buf_putlit(&b, ",\"error\":");
	buf_put_jstr(&b, why, strlen(why));
	buf_putlit(&b, "}}\n");
	if (fwrite(b.data, 1, b.len, f) != b.len || fflush(f) != 0 || fsync(fileno(f)) != 0)
		rc = -1;
	buf_free(&b);
	return rc;
}
