#include "deadletter.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "jscan.h"

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
		buf_put_base64(&b, line, n);
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
	/* a pipe or a device (/dev/stderr) cannot be synced: EINVAL, and what was written stands */
	if (fwrite(b.data, 1, b.len, f) != b.len || fflush(f) != 0 || (fsync(fileno(f)) != 0 && errno != EINVAL))
		rc = -1;
	buf_free(&b);
	return rc;
}
