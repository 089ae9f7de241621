/*
 * Unit tests for lib/: lsn, buf, jscan, evline, deadletter, sha256, ack, log,
 * util, sig, metrics.
 *
 * One line per check, "ok - NAME" or "not ok - NAME" followed by
 * "#   got ..., want ...", then "# N passed, M failed". Exit status 1 when
 * any check failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../../lib/ack.h"
#include "../../lib/buf.h"
#include "../../lib/deadletter.h"
#include "../../lib/exitcode.h"
#include "../../lib/evline.h"
#include "../../lib/jscan.h"
#include "../../lib/log.h"
#include "../../lib/lsn.h"
#include "../../lib/metrics.h"
#include "../../lib/sha256.h"
#include "../../lib/sig.h"
#include "../../lib/util.h"

/* ---- the check macros ---- */

static int passed, failed;

/* Show bytes readably in a failure line. */
static void
show(const char *s, size_t n)
{
	size_t i;

	putchar('"');
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char) s[i];

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c == '\n')
			fputs("\\n", stdout);
		else if (c < 0x20 || c >= 0x7f)
			printf("\\x%02x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static int
report(const char *name, int ok)
{
	if (ok) {
		passed++;
		printf("ok - %s\n", name);
	} else {
		failed++;
		printf("not ok - %s\n", name);
	}
	return ok;
}

static void
check_int(const char *name, long long got, long long want)
{
	if (!report(name, got == want))
		printf("#   got %lld, want %lld\n", got, want);
}

static void
check_u64(const char *name, uint64_t got, uint64_t want)
{
	if (!report(name, got == want))
		printf("#   got %" PRIu64 " (0x%" PRIX64 "), want %" PRIu64 " (0x%" PRIX64 ")\n",
				got, got, want, want);
}

static void
check_mem(const char *name, const char *got, size_t gotn, const char *want, size_t wantn)
{
	if (report(name, got != NULL && gotn == wantn && memcmp(got, want, wantn) == 0))
		return;
	fputs("#   got ", stdout);
	if (got)
		show(got, gotn);
	else
		fputs("NULL", stdout);
	fputs(", want ", stdout);
	show(want, wantn);
	putchar('\n');
}

static void
check_str(const char *name, const char *got, const char *want)
{
	check_mem(name, got, got ? strlen(got) : 0, want, strlen(want));
}

static void
check_contains(const char *name, const char *got, const char *want)
{
	if (report(name, got != NULL && strstr(got, want) != NULL))
		return;
	fputs("#   got ", stdout);
	if (got)
		show(got, strlen(got));
	else
		fputs("NULL", stdout);
	fputs(", want a string containing ", stdout);
	show(want, strlen(want));
	putchar('\n');
}

static void
check_true(const char *name, int cond, const char *what)
{
	if (!report(name, cond))
		printf("#   got false, want %s\n", what);
}

#define CHECK_INT(name, got, want)	check_int((name), (long long) (got), (long long) (want))
#define CHECK_U64(name, got, want)	check_u64((name), (uint64_t) (got), (uint64_t) (want))
#define CHECK_STR(name, got, want)	check_str((name), (got), (want))
#define CHECK_MEM(name, got, gotn, want, wantn)	check_mem((name), (got), (gotn), (want), (wantn))
#define CHECK_BUF(name, b, want)	check_mem((name), (b)->data, buf_pending(b), (want), sizeof(want) - 1)
#define CHECK_CONTAINS(name, got, want)	check_contains((name), (got), (want))
#define CHECK(name, cond)	check_true((name), (cond), #cond)

/* A check name built with printf; valid until the next call. */
static const char *
nm(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static const char *
nm(const char *fmt, ...)
{
	static char name[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(name, sizeof(name), fmt, ap);
	va_end(ap);
	return name;
}

static void
die(const char *what)
{
	printf("Bail out! %s: %s\n", what, strerror(errno));
	exit(2);
}

/* ---- lsn ---- */

static void
test_lsn(void)
{
	static const char *const bad[] = {
		"", "/", "1/", "/1", "123456789/0", "0/123456789", "1/2/3", "1/2 ", " 1/2",
		"g/1", "1/g", "1-2", "12", "1//2", "+1/2", "0x1/2",
	};
	char out[LSN_BUFSZ];
	lsn_t l;
	size_t i;
	int rc;

	rc = lsn_parse("16/B374D848", 11, &l);
	CHECK_INT("lsn_parse 16/B374D848 returns 0", rc, 0);
	CHECK_U64("lsn_parse 16/B374D848 value", l, 0x16B374D848ULL);
	rc = lsn_format(l, out);
	CHECK_INT("lsn_format 16/B374D848 length", rc, 11);
	CHECK_STR("lsn_format 16/B374D848 text", out, "16/B374D848");

	l = 0;
	rc = lsn_parse("16/b374d848", 11, &l);
	CHECK_INT("lsn_parse lower-case hex returns 0", rc, 0);
	CHECK_U64("lsn_parse lower-case hex value", l, 0x16B374D848ULL);
	lsn_format(l, out);
	CHECK_STR("lsn_format prints upper case", out, "16/B374D848");

	l = 99;
	rc = lsn_parse("0/0", 3, &l);
	CHECK_INT("lsn_parse 0/0 returns 0", rc, 0);
	CHECK_U64("lsn_parse 0/0 value", l, 0);
	rc = lsn_format(0, out);
	CHECK_INT("lsn_format 0 length", rc, 3);
	CHECK_STR("lsn_format 0 text", out, "0/0");

	rc = lsn_parse("FFFFFFFF/FFFFFFFF", 17, &l);
	CHECK_INT("lsn_parse FFFFFFFF/FFFFFFFF returns 0", rc, 0);
	CHECK_U64("lsn_parse FFFFFFFF/FFFFFFFF value", l, UINT64_MAX);
	rc = lsn_format(UINT64_MAX, out);
	CHECK_INT("lsn_format max length", rc, 17);
	CHECK_STR("lsn_format max text", out, "FFFFFFFF/FFFFFFFF");

	rc = lsn_parse("00000001/00000002", 17, &l);
	CHECK_INT("lsn_parse 8+8 digits with leading zeros returns 0", rc, 0);
	CHECK_U64("lsn_parse 00000001/00000002 value", l, 0x100000002ULL);
	lsn_format(l, out);
	CHECK_STR("lsn_format drops leading zeros", out, "1/2");

	lsn_format(0x1ULL << 32, out);
	CHECK_STR("lsn_format 1/0", out, "1/0");
	lsn_format(0xABCDEFULL, out);
	CHECK_STR("lsn_format 0/ABCDEF", out, "0/ABCDEF");

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		l = 12345;
		rc = lsn_parse(bad[i], strlen(bad[i]), &l);
		CHECK_INT(nm("lsn_parse rejects \"%s\"", bad[i]), rc, -1);
		CHECK_U64(nm("lsn_parse \"%s\" leaves *out alone", bad[i]), l, 12345);
	}

	rc = lsn_parse("1/2xyz", 3, &l);
	CHECK_INT("lsn_parse \"1/2xyz\" len 3 returns 0", rc, 0);
	CHECK_U64("lsn_parse \"1/2xyz\" len 3 value", l, 0x100000002ULL);
	rc = lsn_parse("1/2xyz", 4, &l);
	CHECK_INT("lsn_parse \"1/2xyz\" len 4 rejected", rc, -1);
	rc = lsn_parse("1/23", 2, &l);
	CHECK_INT("lsn_parse \"1/23\" len 2 rejected (no low part)", rc, -1);
	rc = lsn_parse("AB/CD\n", 5, &l);
	CHECK_INT("lsn_parse \"AB/CD\\n\" len 5 returns 0", rc, 0);
	CHECK_U64("lsn_parse \"AB/CD\\n\" len 5 value", l, 0xAB000000CDULL);

	/* round trip over a few values */
	{
		static const lsn_t vals[] = {1, 0xFFFFFFFFULL, 0x100000000ULL, 0x123456789ABCDEFULL,
				UINT64_MAX - 1};
		lsn_t back;

		for (i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
			back = 0;
			rc = lsn_format(vals[i], out);
			CHECK_INT(nm("lsn round trip %s parses", out), lsn_parse(out, (size_t) rc, &back), 0);
			CHECK_U64(nm("lsn round trip %s value", out), back, vals[i]);
		}
	}
}

/* ---- buf ---- */

static void
test_buf_basic(void)
{
	struct buf b = {0};
	size_t i;
	int ok;

	buf_put(&b, "ab", 2);
	buf_putc(&b, 'c');
	buf_puts(&b, "def");
	buf_putlit(&b, "gh");
	buf_put(&b, "zzz", 0);
	CHECK_BUF("buf_put/putc/puts/putlit append in order", &b, "abcdefgh");
	CHECK_INT("buf len after appends", b.len, 8);
	CHECK_INT("buf off after appends", b.off, 0);
	CHECK("buf cap >= len", b.cap >= b.len);
	buf_free(&b);
	CHECK("buf_free clears data", b.data == NULL);
	CHECK_INT("buf_free clears len+off+cap", b.len + b.off + b.cap, 0);

	buf_put_u64(&b, 0);
	CHECK_BUF("buf_put_u64 0", &b, "0");
	b.len = 0;
	buf_put_u64(&b, 7);
	CHECK_BUF("buf_put_u64 7", &b, "7");
	b.len = 0;
	buf_put_u64(&b, 1000000);
	CHECK_BUF("buf_put_u64 1000000", &b, "1000000");
	b.len = 0;
	buf_put_u64(&b, UINT64_MAX);
	CHECK_BUF("buf_put_u64 UINT64_MAX", &b, "18446744073709551615");

	b.len = 0;
	buf_put_i64(&b, 0);
	CHECK_BUF("buf_put_i64 0", &b, "0");
	b.len = 0;
	buf_put_i64(&b, -1);
	CHECK_BUF("buf_put_i64 -1", &b, "-1");
	b.len = 0;
	buf_put_i64(&b, -1234567890123LL);
	CHECK_BUF("buf_put_i64 -1234567890123", &b, "-1234567890123");
	b.len = 0;
	buf_put_i64(&b, INT64_MAX);
	CHECK_BUF("buf_put_i64 INT64_MAX", &b, "9223372036854775807");
	b.len = 0;
	buf_put_i64(&b, INT64_MIN);
	CHECK_BUF("buf_put_i64 INT64_MIN", &b, "-9223372036854775808");
	b.len = 0;
	buf_put_u64(&b, 1);
	buf_putc(&b, ',');
	buf_put_i64(&b, -2);
	CHECK_BUF("buf_put_u64/i64 append after existing bytes", &b, "1,-2");
	buf_free(&b);

	/* growth over many appends: 10000 x "0123456789" + one char each */
	for (i = 0; i < 10000; i++) {
		buf_puts(&b, "0123456789");
		buf_putc(&b, (char) ('a' + i % 26));
	}
	CHECK_INT("buf growth: len after 10000 appends", b.len, 110000);
	CHECK("buf growth: cap >= len", b.cap >= b.len);
	ok = 1;
	for (i = 0; i < 10000 && ok; i++)
		ok = memcmp(b.data + i * 11, "0123456789", 10) == 0 && b.data[i * 11 + 10] == (char) ('a' + i % 26);
	CHECK_INT(nm("buf growth: content intact (first bad record %zu)", ok ? (size_t) 0 : i - 1), ok, 1);
	buf_free(&b);

	/* one big put into an empty buffer */
	{
		char *big = xmalloc(100000);

		memset(big, 'x', 100000);
		big[99999] = 'y';
		buf_putc(&b, '<');
		buf_put(&b, big, 100000);
		CHECK_INT("buf big put: len", b.len, 100001);
		CHECK("buf big put: last byte", b.data[100000] == 'y' && b.data[0] == '<' && b.data[1] == 'x');
		free(big);
		buf_free(&b);
	}

	/*
	 * A reader that always leaves some bytes pending: written bytes are
	 * reclaimed, so the buffer does not grow with the total passed through.
	 */
	{
		char rec[100];
		size_t maxcap = 0;

		memset(rec, 'r', sizeof(rec));
		for (i = 0; i < 100000; i++) {
			buf_put(&b, rec, sizeof(rec));
			if (buf_pending(&b) > 1000)
				b.off = b.len - 500;	/* "wrote" all but the last 500 bytes */
			if (b.cap > maxcap)
				maxcap = b.cap;
		}
		CHECK(nm("buf steady slow reader: capacity stays small (%zu after 10 MB)", maxcap), maxcap <= 4096);
		CHECK_INT("buf steady slow reader: pending bytes kept", buf_pending(&b) <= 1100 && b.data[b.len - 1] == 'r', 1);
		buf_free(&b);
	}
}

static void
test_buf_jstr(void)
{
	struct buf b = {0};

#define JSTR(name, in, want) do { \
		b.len = b.off = 0; \
		buf_put_jstr(&b, (in), sizeof(in) - 1); \
		CHECK_BUF(name, &b, want); \
	} while (0)

	JSTR("buf_put_jstr empty", "", "\"\"");
	JSTR("buf_put_jstr plain", "hello world", "\"hello world\"");
	JSTR("buf_put_jstr quote", "a\"b", "\"a\\\"b\"");
	JSTR("buf_put_jstr backslash", "a\\b", "\"a\\\\b\"");
	JSTR("buf_put_jstr \\n", "a\nb", "\"a\\nb\"");
	JSTR("buf_put_jstr \\r", "a\rb", "\"a\\rb\"");
	JSTR("buf_put_jstr \\t", "a\tb", "\"a\\tb\"");
	JSTR("buf_put_jstr \\b", "a\bb", "\"a\\bb\"");
	JSTR("buf_put_jstr \\f", "a\fb", "\"a\\fb\"");
	JSTR("buf_put_jstr 0x01 -> \\u0001", "a\x01z", "\"a\\u0001z\"");
	JSTR("buf_put_jstr 0x0b -> \\u000b", "\x0b", "\"\\u000b\"");
	JSTR("buf_put_jstr 0x1f -> \\u001f", "\x1f", "\"\\u001f\"");
	JSTR("buf_put_jstr DEL untouched", "a\x7f" "b", "\"a\x7f" "b\"");
	JSTR("buf_put_jstr UTF-8 passthrough", "caf\xc3\xa9", "\"caf\xc3\xa9\"");
	JSTR("buf_put_jstr 4-byte UTF-8 passthrough", "\xf0\x9f\x98\x80", "\"\xf0\x9f\x98\x80\"");
	JSTR("buf_put_jstr embedded NUL -> \\u0000", "a\0b", "\"a\\u0000b\"");
	JSTR("buf_put_jstr slash untouched", "a/b", "\"a/b\"");
	JSTR("buf_put_jstr all escapes in a row", "\"\\\n\r\t\b\f\x01",
			"\"\\\"\\\\\\n\\r\\t\\b\\f\\u0001\"");
	JSTR("buf_put_jstr escapes at both ends", "\nmid\n", "\"\\nmid\\n\"");
#undef JSTR

	/* explicit length shorter than the string */
	b.len = 0;
	buf_put_jstr(&b, "abcdef", 3);
	CHECK_BUF("buf_put_jstr honours n", &b, "\"abc\"");

	/* appends after existing content */
	b.len = 0;
	buf_putlit(&b, "{\"k\":");
	buf_put_jstr(&b, "v", 1);
	buf_putc(&b, '}');
	CHECK_BUF("buf_put_jstr appends", &b, "{\"k\":\"v\"}");

	/* worst case growth: 1000 control bytes -> 6000 + 2 */
	{
		char ctl[1000];
		size_t i;
		int ok = 1;

		memset(ctl, 0x02, sizeof(ctl));
		buf_free(&b);
		buf_put_jstr(&b, ctl, sizeof(ctl));
		CHECK_INT("buf_put_jstr 1000 control bytes: length", b.len, 6002);
		for (i = 0; i < 1000 && ok; i++)
			ok = memcmp(b.data + 1 + i * 6, "\\u0002", 6) == 0;
		CHECK_INT("buf_put_jstr 1000 control bytes: content", ok, 1);
	}

	/* valid UTF-8 passes, line separators are escaped, anything else becomes U+FFFD */
	{
		static const struct {
			const char *name, *in, *want;
		} cases[] = {
			{"2, 3 and 4 byte sequences pass", "\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf",
				"\"\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf\""},
			{"U+2028 U+2029 U+0085 escaped", "a\xe2\x80\xa8" "b\xe2\x80\xa9" "c\xc2\x85" "d",
				"\"a\\u2028b\\u2029c\\u0085d\""},
			{"separators in a long ASCII run", "0123456789abcdef\xe2\x80\xa8" "0123456789",
				"\"0123456789abcdef\\u2028" "0123456789\""},
			{"LATIN1 byte", "caf\xe9!", "\"caf\\ufffd!\""},
			{"sequence cut short", "x\xe2\x80", "\"x\\ufffd\\ufffd\""},
			{"overlong form", "\xc0\xaf", "\"\\ufffd\\ufffd\""},
			{"surrogate", "\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\""},
			{"above U+10FFFF", "\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""},
		};
		size_t k;
		char name[96];

		for (k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
			b.len = 0;
			buf_put_jstr(&b, cases[k].in, strlen(cases[k].in));
			snprintf(name, sizeof(name), "buf_put_jstr: %s", cases[k].name);
			CHECK_MEM(name, b.data, b.len, cases[k].want, strlen(cases[k].want));
		}
	}

	/* buf_put_base64: RFC 4648's test vectors */
	{
		static const char *const vec[][2] = {
			{"", "\"\""}, {"f", "\"Zg==\""}, {"fo", "\"Zm8=\""}, {"foo", "\"Zm9v\""},
			{"foob", "\"Zm9vYg==\""}, {"fooba", "\"Zm9vYmE=\""}, {"foobar", "\"Zm9vYmFy\""},
		};
		size_t k;
		char name[64];

		for (k = 0; k < sizeof(vec) / sizeof(vec[0]); k++) {
			b.len = 0;
			buf_put_base64(&b, vec[k][0], strlen(vec[k][0]));
			snprintf(name, sizeof(name), "buf_put_base64 \"%s\"", vec[k][0]);
			CHECK_MEM(name, b.data, b.len, vec[k][1], strlen(vec[k][1]));
		}
	}

	/* buf_put_json: json text on one line, separators escaped inside strings */
	{
		const char *in = "{\n  \"a\xe2\x80\xa8\": [1,\r\n 2],\"b\": \"\xc2\x85\xff\"}";
		const char *want = "{   \"a\\u2028\": [1,   2],\"b\": \"\\u0085\\ufffd\"}";

		b.len = 0;
		buf_put_json(&b, in, strlen(in));
		CHECK_MEM("buf_put_json: one line, escapes", b.data, b.len, want, strlen(want));
	}

	/* every ASCII byte survives buf_put_jstr -> jscan_value -> jstr_decode; others are U+FFFD */
	{
		char all[256], want[128 + 128 * 3];
		struct buf dec = {0};
		struct jtok t;
		size_t pos = 0;
		int i, rc;

		for (i = 0; i < 256; i++)
			all[i] = (char) i;
		b.len = 0;
		buf_put_jstr(&b, all, sizeof(all));
		rc = jscan_value(b.data, b.len, &pos, &t);
		CHECK_INT("all 256 bytes: jscan_value accepts buf_put_jstr output", rc, 0);
		CHECK_INT("all 256 bytes: jscan_value consumed it all", pos, b.len);
		CHECK_INT("all 256 bytes: token is a string", t.type, J_STRING);
		if (rc == 0)	/* t is not filled in on failure */
			rc = jstr_decode(&t, &dec);
		else
			t.n = 0;
		CHECK_INT("all 256 bytes: jstr_decode returns 0", rc, 0);
		for (i = 0; i < 128; i++)
			want[i] = (char) i;
		for (i = 0; i < 128; i++)
			memcpy(want + 128 + i * 3, "\xef\xbf\xbd", 3);
		CHECK_MEM("all 256 bytes: ASCII round trip identical, each other byte U+FFFD", dec.data, dec.len,
				want, sizeof(want));
		buf_free(&dec);
	}
	buf_free(&b);
}

static int
set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* Read whatever a non-blocking fd has into out. Returns bytes read. */
static size_t
drain(int fd, struct buf *out)
{
	char tmp[65536];
	size_t total = 0;
	ssize_t n;

	while ((n = read(fd, tmp, sizeof(tmp))) > 0) {
		buf_put(out, tmp, (size_t) n);
		total += (size_t) n;
	}
	return total;
}

static void
test_buf_write_fd(void)
{
	struct buf b = {0}, got = {0};
	int p[2], rc, saved_errno;
	char rd[64];
	ssize_t n;

	if (pipe(p) < 0)
		die("pipe");
	buf_putlit(&b, "hello, pipe\n");
	rc = buf_write_fd(&b, p[1]);
	CHECK_INT("buf_write_fd to a pipe returns 0", rc, 0);
	CHECK_INT("buf_write_fd leaves nothing pending", buf_pending(&b), 0);
	CHECK_INT("buf_write_fd resets len", b.len, 0);
	CHECK_INT("buf_write_fd resets off", b.off, 0);
	n = read(p[0], rd, sizeof(rd));
	CHECK_MEM("buf_write_fd bytes read back", rd, n < 0 ? 0 : (size_t) n, "hello, pipe\n", 12);

	rc = buf_write_fd(&b, p[1]);
	CHECK_INT("buf_write_fd with nothing pending returns 0", rc, 0);
	close(p[0]);
	close(p[1]);
	buf_free(&b);

	/* a full non-blocking pipe: 1 with bytes kept, then the rest after draining */
	{
		const size_t total = 1 << 20;
		size_t i, got_total = 0;
		char *want = xmalloc(total);
		int rounds = 0, ok;

		for (i = 0; i < total; i++)
			want[i] = (char) (i * 7 % 251);
		if (pipe(p) < 0)
			die("pipe");
		if (set_nonblock(p[0]) < 0 || set_nonblock(p[1]) < 0)
			die("fcntl");
		buf_put(&b, want, total);
		rc = buf_write_fd(&b, p[1]);
		CHECK_INT("buf_write_fd on a full non-blocking pipe returns 1", rc, 1);
		CHECK("buf_write_fd full pipe: some bytes written", b.off > 0);
		CHECK("buf_write_fd full pipe: bytes still pending", buf_pending(&b) > 0);
		CHECK_INT("buf_write_fd full pipe: len kept", b.len, total);
		CHECK_INT("buf_write_fd full pipe: off + pending == total", b.off + buf_pending(&b), total);
		while (rc == 1 && rounds < 100000) {
			got_total += drain(p[0], &got);
			rc = buf_write_fd(&b, p[1]);
			rounds++;
		}
		CHECK_INT("buf_write_fd after draining eventually returns 0", rc, 0);
		got_total += drain(p[0], &got);
		CHECK_INT("buf_write_fd full pipe: total bytes read", got_total, total);
		ok = got.len == total && memcmp(got.data, want, total) == 0;
		CHECK_INT("buf_write_fd full pipe: bytes identical", ok, 1);
		CHECK_INT("buf_write_fd full pipe: nothing pending at the end", buf_pending(&b), 0);

		/* the buffer is reusable after being written out */
		buf_putlit(&b, "again");
		CHECK_BUF("buf reusable after buf_write_fd", &b, "again");
		rc = buf_write_fd(&b, p[1]);
		CHECK_INT("buf_write_fd reuse returns 0", rc, 0);
		n = read(p[0], rd, sizeof(rd));
		CHECK_MEM("buf_write_fd reuse bytes", rd, n < 0 ? 0 : (size_t) n, "again", 5);
		close(p[0]);
		close(p[1]);
		free(want);
		buf_free(&b);
		buf_free(&got);
	}

	/* appending while bytes are pending keeps them in order */
	{
		size_t i;
		int ok;

		if (pipe(p) < 0)
			die("pipe");
		if (set_nonblock(p[0]) < 0 || set_nonblock(p[1]) < 0)
			die("fcntl");
		for (i = 0; i < 200000; i++)
			buf_putc(&b, (char) ('A' + i % 26));
		rc = buf_write_fd(&b, p[1]);
		CHECK_INT("buf_write_fd pending then append: first write returns 1", rc, 1);
		for (i = 200000; i < 300000; i++)
			buf_putc(&b, (char) ('A' + i % 26));
		while (rc == 1) {
			drain(p[0], &got);
			rc = buf_write_fd(&b, p[1]);
		}
		drain(p[0], &got);
		CHECK_INT("buf_write_fd pending then append: total", got.len, 300000);
		ok = got.len == 300000;
		for (i = 0; i < got.len && ok; i++)
			ok = got.data[i] == (char) ('A' + i % 26);
		CHECK_INT("buf_write_fd pending then append: order kept", ok, 1);
		close(p[0]);
		close(p[1]);
		buf_free(&b);
		buf_free(&got);
	}

	/* a vanished reader: -1 with EPIPE (SIGPIPE ignored by sig_setup) */
	sig_setup();
	if (pipe(p) < 0)
		die("pipe");
	close(p[0]);
	buf_putlit(&b, "x");
	errno = 0;
	rc = buf_write_fd(&b, p[1]);
	saved_errno = errno;
	CHECK_INT("buf_write_fd to a closed pipe returns -1", rc, -1);
	CHECK_INT("buf_write_fd to a closed pipe sets EPIPE", saved_errno, EPIPE);
	CHECK_INT("buf_write_fd error keeps the bytes pending", buf_pending(&b), 1);
	close(p[1]);
	buf_free(&b);
}

/* ---- jscan ---- */

/* Walk a value completely with jiter, as a validator: 0 or -1. */
static int
walk(const struct jtok *t, int depth)
{
	struct jiter it;
	struct jtok k, v;
	int rc;

	if (depth > 64)
		return -1;
	if (t->type != J_OBJECT && t->type != J_ARRAY)
		return 0;
	if (jiter_begin(&it, t) < 0)
		return -1;
	if (t->type == J_OBJECT) {
		while ((rc = jiter_member(&it, &k, &v)) == 1)
			if (walk(&v, depth + 1) < 0)
				return -1;
	} else {
		while ((rc = jiter_elem(&it, &v)) == 1)
			if (walk(&v, depth + 1) < 0)
				return -1;
	}
	return rc;
}

/* Scan a whole document: one value, then only whitespace. 0 or -1. */
static int
parse_doc(const char *s)
{
	struct jtok t;
	size_t pos = 0, n = strlen(s);

	if (jscan_value(s, n, &pos, &t) < 0)
		return -1;
	while (pos < n && (s[pos] == ' ' || s[pos] == '\n'))
		pos++;
	if (pos != n)
		return -1;
	return walk(&t, 0);
}

static void
check_tok(const char *name, const struct jtok *t, enum jtype type, const char *raw)
{
	char full[300];

	snprintf(full, sizeof(full), "%s: type", name);
	CHECK_INT(full, t->type, type);
	snprintf(full, sizeof(full), "%s: span", name);
	CHECK_MEM(full, t->p, t->n, raw, strlen(raw));
}

static void
test_jscan_value(void)
{
	const char *s;
	struct jtok t;
	size_t pos;
	int rc;

	s = "{\"a\":{\"b\":\"}\"},\"c\":[\"]\",\"\\\"}\",{\"d\":[[]]}],\"e\":\"{[\"} tail";
	pos = 0;
	rc = jscan_value(s, strlen(s), &pos, &t);
	CHECK_INT("jscan_value nested object with braces in strings returns 0", rc, 0);
	CHECK_INT("jscan_value nested object: type", t.type, J_OBJECT);
	CHECK_INT("jscan_value nested object: pos after the closing brace", pos, strlen(s) - 5);
	CHECK_INT("jscan_value nested object: span length", t.n, strlen(s) - 5);
	CHECK("jscan_value nested object: span starts at s", t.p == s);
	CHECK_INT("jscan_value nested object: walks cleanly", walk(&t, 0), 0);

	s = "  \t\n[1, \"]\", [2, [3]], {\"x\": \"\\\\\"}]  ";
	pos = 0;
	rc = jscan_value(s, strlen(s), &pos, &t);
	CHECK_INT("jscan_value array with leading whitespace returns 0", rc, 0);
	check_tok("jscan_value array", &t, J_ARRAY, "[1, \"]\", [2, [3]], {\"x\": \"\\\\\"}]");
	CHECK_INT("jscan_value array: pos", pos, strlen(s) - 2);

	s = "\"a\\\"b\\\\\" rest";
	pos = 0;
	rc = jscan_value(s, strlen(s), &pos, &t);
	CHECK_INT("jscan_value string with escaped quote returns 0", rc, 0);
	check_tok("jscan_value string", &t, J_STRING, "a\\\"b\\\\");
	CHECK_INT("jscan_value string: pos after closing quote", pos, 8);

	/* two values in a row, pos carried over */
	s = "12 -3.5e+2 true false null \"\"";
	pos = 0;
	rc = jscan_value(s, strlen(s), &pos, &t);
	CHECK_INT("jscan_value sequence 1 returns 0", rc, 0);
	check_tok("jscan_value sequence 1", &t, J_NUMBER, "12");
	rc = jscan_value(s, strlen(s), &pos, &t);
	CHECK_INT("jscan_value sequence 2 returns 0", rc, 0);
	check_tok("jscan_value sequence 2", &t, J_NUMBER, "-3.5e+2");
	rc = jscan_value(s, strlen(s), &pos, &t);
	check_tok("jscan_value sequence 3", &t, J_TRUE, "true");
	rc = jscan_value(s, strlen(s), &pos, &t);
	check_tok("jscan_value sequence 4", &t, J_FALSE, "false");
	rc = jscan_value(s, strlen(s), &pos, &t);
	check_tok("jscan_value sequence 5", &t, J_NULL, "null");
	rc = jscan_value(s, strlen(s), &pos, &t);
	CHECK_INT("jscan_value sequence 6 returns 0", rc, 0);
	check_tok("jscan_value sequence 6 (empty string)", &t, J_STRING, "");
	CHECK_INT("jscan_value sequence: pos at end", pos, strlen(s));
	rc = jscan_value(s, strlen(s), &pos, &t);
	CHECK_INT("jscan_value at end of input returns -1", rc, -1);

	/* length bound respected: the closing brace is outside n */
	s = "{\"a\":1}";
	pos = 0;
	CHECK_INT("jscan_value object cut short by n returns -1", jscan_value(s, 6, &pos, &t), -1);
	s = "\"abc\"";
	pos = 0;
	CHECK_INT("jscan_value string cut short by n returns -1", jscan_value(s, 4, &pos, &t), -1);
	s = "true";
	pos = 0;
	CHECK_INT("jscan_value literal cut short by n returns -1", jscan_value(s, 3, &pos, &t), -1);
}

static void
test_jiter(void)
{
	const char *s = "{\"op\":\"insert\",\"schema\":\"s\",\"n\":-1.5e3,\"t\":true,\"f\":false,"
			"\"z\":null,\"a\":[1,{\"b\":2}],\"o\":{}}";
	static const struct {
		const char *key;
		enum jtype type;
		const char *raw;
	} want[] = {
		{"op", J_STRING, "insert"},
		{"schema", J_STRING, "s"},
		{"n", J_NUMBER, "-1.5e3"},
		{"t", J_TRUE, "true"},
		{"f", J_FALSE, "false"},
		{"z", J_NULL, "null"},
		{"a", J_ARRAY, "[1,{\"b\":2}]"},
		{"o", J_OBJECT, "{}"},
	};
	struct jtok obj, k, v, e;
	struct jiter it, ait, oit;
	size_t pos = 0, i;
	int rc;

	rc = jscan_value(s, strlen(s), &pos, &obj);
	CHECK_INT("jiter: scan the event object", rc, 0);
	CHECK_INT("jiter: object type", obj.type, J_OBJECT);
	rc = rc < 0 ? -1 : jiter_begin(&it, &obj);
	CHECK_INT("jiter_begin on an object returns 0", rc, 0);
	for (i = 0; rc == 0 && i < sizeof(want) / sizeof(want[0]); i++) {
		rc = jiter_member(&it, &k, &v);
		CHECK_INT(nm("jiter_member #%zu returns 1", i), rc, 1);
		if (rc != 1) {
			rc = -1;
			break;
		}
		rc = 0;
		CHECK_INT(nm("jiter_member #%zu key is a string", i), k.type, J_STRING);
		CHECK_MEM(nm("jiter_member #%zu key", i), k.p, k.n, want[i].key, strlen(want[i].key));
		CHECK_INT(nm("jiter_member \"%s\" value type", want[i].key), v.type, want[i].type);
		CHECK_MEM(nm("jiter_member \"%s\" value span", want[i].key), v.p, v.n, want[i].raw,
				strlen(want[i].raw));
		if (i == 6 && v.type == J_ARRAY) {	/* "a": [1,{"b":2}] */
			CHECK_INT("jiter_begin on the array returns 0", jiter_begin(&ait, &v), 0);
			rc = jiter_elem(&ait, &e);
			CHECK_INT("jiter_elem a[0] returns 1", rc, 1);
			check_tok("jiter_elem a[0]", &e, J_NUMBER, "1");
			rc = jiter_elem(&ait, &e);
			CHECK_INT("jiter_elem a[1] returns 1", rc, 1);
			check_tok("jiter_elem a[1]", &e, J_OBJECT, "{\"b\":2}");
			if (rc != 1 || e.type != J_OBJECT) {
				rc = 0;
				continue;
			}
			CHECK_INT("jiter_begin on a[1] returns 0", jiter_begin(&oit, &e), 0);
			rc = jiter_member(&oit, &k, &v);
			CHECK_INT("jiter_member a[1].b returns 1", rc, 1);
			CHECK("jiter_member a[1] key is b", jtok_eq(&k, "b"));
			check_tok("jiter_member a[1].b", &v, J_NUMBER, "2");
			CHECK_INT("jiter_member a[1] end returns 0", jiter_member(&oit, &k, &v), 0);
			CHECK_INT("jiter_elem a end returns 0", jiter_elem(&ait, &e), 0);
			CHECK_INT("jiter_elem a end again returns 0", jiter_elem(&ait, &e), 0);
			rc = 0;
		}
		if (i == 7 && v.type == J_OBJECT) {	/* "o": {} */
			CHECK_INT("jiter_begin on {} returns 0", jiter_begin(&oit, &v), 0);
			CHECK_INT("jiter_member on {} returns 0", jiter_member(&oit, &k, &v), 0);
		}
	}
	if (rc == 0)
		CHECK_INT("jiter_member after the last member returns 0", jiter_member(&it, &k, &v), 0);
	else
		CHECK_INT("jiter_member after the last member returns 0 (not reached)", rc, 0);

	/* jiter_begin type mismatch */
	{
		struct jtok str = {J_STRING, "x", 1}, num = {J_NUMBER, "1", 1};

		CHECK_INT("jiter_begin on a string returns -1", jiter_begin(&it, &str), -1);
		CHECK_INT("jiter_begin on a number returns -1", jiter_begin(&it, &num), -1);
	}

	/* arrays */
	{
		static const char *const empties[] = {"[]", "[ ]", "[\n\t ]"};
		const char *arr = "[ \"x\" , -0.5 ,[],{ } ,null ]";

		for (i = 0; i < sizeof(empties) / sizeof(empties[0]); i++) {
			pos = 0;
			rc = jscan_value(empties[i], strlen(empties[i]), &pos, &v);
			CHECK_INT(nm("jscan_value empty array #%zu returns 0", i), rc, 0);
			rc = rc < 0 ? -1 : jiter_begin(&ait, &v);
			CHECK_INT(nm("jiter_begin empty array #%zu", i), rc, 0);
			if (rc == 0)
				CHECK_INT(nm("jiter_elem empty array #%zu returns 0", i), jiter_elem(&ait, &e), 0);
		}
		pos = 0;
		rc = jscan_value(arr, strlen(arr), &pos, &v);
		CHECK_INT("jscan_value mixed array returns 0", rc, 0);
		if (rc < 0 || jiter_begin(&ait, &v) < 0)
			return;
		CHECK_INT("jiter_elem mixed[0] returns 1", jiter_elem(&ait, &e), 1);
		check_tok("jiter_elem mixed[0]", &e, J_STRING, "x");
		CHECK_INT("jiter_elem mixed[1] returns 1", jiter_elem(&ait, &e), 1);
		check_tok("jiter_elem mixed[1]", &e, J_NUMBER, "-0.5");
		CHECK_INT("jiter_elem mixed[2] returns 1", jiter_elem(&ait, &e), 1);
		check_tok("jiter_elem mixed[2]", &e, J_ARRAY, "[]");
		CHECK_INT("jiter_elem mixed[3] returns 1", jiter_elem(&ait, &e), 1);
		check_tok("jiter_elem mixed[3]", &e, J_OBJECT, "{ }");
		CHECK_INT("jiter_elem mixed[4] returns 1", jiter_elem(&ait, &e), 1);
		check_tok("jiter_elem mixed[4]", &e, J_NULL, "null");
		CHECK_INT("jiter_elem mixed end returns 0", jiter_elem(&ait, &e), 0);
	}

	/* whitespace around keys, colons and commas */
	{
		const char *ws = "{ \"k\" :\t\"v\" ,\n \"n\" : 10 }";

		pos = 0;
		rc = jscan_value(ws, strlen(ws), &pos, &obj);
		CHECK_INT("jscan_value object with whitespace returns 0", rc, 0);
		if (rc < 0 || jiter_begin(&it, &obj) < 0)
			return;
		rc = jiter_member(&it, &k, &v);
		CHECK_INT("jiter_member with whitespace #0 returns 1", rc, 1);
		CHECK("jiter_member with whitespace #0 key k", jtok_eq(&k, "k"));
		check_tok("jiter_member with whitespace #0 value", &v, J_STRING, "v");
		rc = jiter_member(&it, &k, &v);
		CHECK_INT("jiter_member with whitespace #1 returns 1", rc, 1);
		check_tok("jiter_member with whitespace #1 value", &v, J_NUMBER, "10");
		CHECK_INT("jiter_member with whitespace end returns 0", jiter_member(&it, &k, &v), 0);
	}
}

/* Documents every scanner must reject, and some it must take. */
static const struct {
const char *name, *doc;
} jbad[] = {
	{"unterminated string", "\"abc"},
	{"unterminated string in object", "{\"a\":\"xyz}"},
	{"unterminated string ending in backslash", "{\"a\":\"x\\"},
	{"missing colon", "{\"a\" 1}"},
	{"double comma", "{\"a\":1,,\"b\":2}"},
	{"leading comma", "{,\"a\":1}"},
	{"trailing comma in object", "{\"a\":1,}"},
	{"trailing comma in array", "[1,2,]"},
	{"missing comma in array", "[1 2]"},
	{"missing comma between numbers", "[1 22]"},
	{"garbage instead of comma in object", "{\"a\":1 x\"b\":2}"},
	{"garbage instead of comma in array", "[1 x2]"},
	{"trailing garbage inside object", "{\"a\":1 x}"},
	{"trailing garbage after number inside object", "{\"a\":1x}"},
	{"trailing garbage after literal inside object", "{\"a\":truex}"},
	{"raw tab in string", "{\"a\":\"x\ty\"}"},
	{"raw newline in string", "\"x\ny\""},
	{"raw 0x01 in key", "{\"a\x01\":1}"},
	{"bare word", "hello"},
	{"bare word as value", "{\"a\":hello}"},
	{"bare word as key", "{a:1}"},
	{"non-string key", "{1:2}"},
	{"unclosed object", "{\"a\":1"},
	{"unclosed array", "[1,[2]"},
	{"lone minus", "-"},
	{"minus then letter", "-x"},
	{"empty input", ""},
	{"only whitespace", "   "},
	{"truncated literal", "nul"},
	{"missing value", "{\"a\":}"},
	{"close without open", "}"},
	{"mismatched brackets", "[1}"},
	{"mismatched nested brackets", "{\"a\":[1}]"},
	{"minus inside number", "1-2"},
	{"exponent without digits", "1e"},
	{"leading zero", "01"},
	{"fraction without digits", "1."},
};
static const char *const jgood[] = {
	"{}", "[]", "0", "-0", "\"\"", "{\"a\":[{\"b\":[]}]}", "[\"\\\"\",\"\\\\\"]",
	"{\"a\":\"}{][\"}", " {\"x\" : [ 1 , 2 ] } ", "-1.5e+3", "0.25", "1E-7",
};
static void
test_jscan_malformed(void)
{
	size_t i;

	for (i = 0; i < sizeof(jbad) / sizeof(jbad[0]); i++)
		CHECK_INT(nm("jscan rejects %s", jbad[i].name), parse_doc(jbad[i].doc), -1);
	for (i = 0; i < sizeof(jgood) / sizeof(jgood[0]); i++)
		CHECK_INT(nm("jscan accepts %s", jgood[i]), parse_doc(jgood[i]), 0);
}

/* doc (n bytes) through jscan_value: one whole value, walked in full. */
static int
scan_doc(const char *doc, size_t n, struct jtok *t)
{
	size_t pos = 0;

	if (jscan_value(doc, n, &pos, t) < 0)
		return -1;
	while (pos < n && (doc[pos] == ' ' || doc[pos] == '\t' || doc[pos] == '\n' || doc[pos] == '\r'))
		pos++;
	return pos == n ? walk(t, 0) : -1;
}

static void
test_jscan_strings(void)
{
	static const char *const docs[] = {
		"{\"action\":\"I\",\"xid\":738,\"columns\":[{\"name\":\"id\",\"type\":\"bigint\",\"typeoid\":20,"
			"\"value\":100},{\"name\":\"meta\",\"type\":\"jsonb\",\"value\":\"{\\\"a\\\": [1]}\"},"
			"{\"name\":\"n\",\"value\":null},{\"name\":\"b\",\"value\":true}],\"pk\":[]}",
		"[[[[]]],{},[{}],{\"a\":{\"b\":{\"c\":[1,2,{\"d\":false}]}}}]",
		" \t\n{ \"a\" :\n[ 1 , \t2 ] , \"b\" : { } }\r\n",
		"\"a string alone, longer than sixteen bytes, with \\u00e9 and \\\" in it\"",
	};
	static const struct {
		const char *num;
		int ok;
	} nums[] = {
		{"0", 1}, {"-0", 1}, {"12", 1}, {"-12.5e-3", 1}, {"1E+7", 1}, {"0.5", 1},
		{"1-2", 0}, {"01", 0}, {"1.", 0}, {"-", 0}, {"1e+", 0}, {"1.5.3", 0}, {"1e5e5", 0},
		{"+1", 0}, {".5", 0}, {"1.e3", 0}, {"--1", 0}, {"1ee3", 0},
	};
	char doc[600], name[80];
	struct jtok t;
	size_t i, len, at, pos;

	for (i = 0; i < sizeof(docs) / sizeof(docs[0]); i++)
		CHECK_INT(nm("jscan takes document %zu", i), scan_doc(docs[i], strlen(docs[i]), &t), 0);
	for (i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
		pos = 0;
		CHECK_INT(nm("jscan_value on %s", nums[i].num), jscan_value(nums[i].num, strlen(nums[i].num), &pos, &t) == 0 &&
				pos == strlen(nums[i].num), nums[i].ok);
		CHECK_INT(nm("jnumber_valid agrees on %s", nums[i].num), jnumber_valid(nums[i].num, strlen(nums[i].num)),
				nums[i].ok);
	}

	/*
	 * Strings of every length around the 8- and 16-byte steps, with an
	 * escape or a control character at every offset: the scan that takes
	 * many bytes at a time must find each where a byte-at-a-time one would.
	 */
	for (len = 0; len <= 40; len++) {
		doc[0] = '[';
		doc[1] = '"';
		memset(doc + 2, 'x', len);
		snprintf(doc + 2 + len, 8, "\",1]");
		snprintf(name, sizeof(name), "a string of %zu bytes", len);
		pos = 1;
		CHECK_INT(nm("jscan_value takes %s", name), jscan_value(doc, strlen(doc), &pos, &t), 0);
		CHECK_INT(nm("%s: length", name), t.n, len);
		CHECK_INT(nm("%s: not escaped", name), t.esc, 0);
		CHECK_INT(nm("%s: in an array", name), scan_doc(doc, strlen(doc), &t), 0);
		for (at = 0; at < len; at++) {
			doc[2 + at] = '\x1f';
			CHECK_INT(nm("jscan rejects a control byte at %zu of %zu", at, len), scan_doc(doc, strlen(doc), &t), -1);
			doc[2 + at] = '\\';
			pos = 1;
			if (at + 1 < len) {
				doc[3 + at] = '"';
				CHECK_INT(nm("jscan_value takes an escaped quote at %zu of %zu", at, len),
						jscan_value(doc, strlen(doc), &pos, &t), 0);
				CHECK(nm("an escaped quote at %zu of %zu: escaped, whole", at, len), t.esc && t.n == len);
				doc[3 + at] = 'x';
			} else
				CHECK_INT(nm("jscan rejects a backslash before the closing quote, %zu", len),
						scan_doc(doc, strlen(doc), &t), -1);
			doc[2 + at] = 'x';
		}
		/* cut short at every length: never taken, never read past n */
		for (at = 0; at < strlen(doc); at++)
			CHECK_INT(nm("jscan rejects %s cut at %zu", name, at), scan_doc(doc, at, &t), -1);
	}

	/* nesting: 256 levels are taken, 257 are not */
	for (len = 256; len <= 257; len++) {
		memset(doc, '[', len);
		memset(doc + len, ']', len);
		pos = 0;
		CHECK_INT(nm("jscan_value with %zu levels", len), jscan_value(doc, 2 * len, &pos, &t), len == 256 ? 0 : -1);
	}
}

static void
test_jtok_eq(void)
{
	struct jtok t = {J_STRING, "insert", 6};
	struct jtok part = {J_STRING, "insertX", 6};
	struct jtok num = {J_NUMBER, "12", 2};
	struct jtok esc = {J_STRING, "a\\\"b", 4};
	struct jtok empty = {J_STRING, "", 0};

	CHECK_INT("jtok_eq equal", jtok_eq(&t, "insert"), 1);
	CHECK_INT("jtok_eq different", jtok_eq(&t, "update"), 0);
	CHECK_INT("jtok_eq prefix of token", jtok_eq(&t, "ins"), 0);
	CHECK_INT("jtok_eq token is prefix", jtok_eq(&t, "inserts"), 0);
	CHECK_INT("jtok_eq uses n, not NUL", jtok_eq(&part, "insert"), 1);
	CHECK_INT("jtok_eq not a string", jtok_eq(&num, "12"), 0);
	CHECK_INT("jtok_eq raw escapes compared", jtok_eq(&esc, "a\\\"b"), 1);
	CHECK_INT("jtok_eq escapes not decoded", jtok_eq(&esc, "a\"b"), 0);
	CHECK_INT("jtok_eq empty", jtok_eq(&empty, ""), 1);
	CHECK_INT("jtok_eq empty vs non-empty", jtok_eq(&empty, "x"), 0);
}

static void
test_jstr_decode(void)
{
	struct buf out = {0};
	struct jtok t;
	int rc;

#define DEC(name, in, want) do { \
		t.type = J_STRING; t.p = (in); t.n = sizeof(in) - 1; \
		out.len = out.off = 0; \
		rc = jstr_decode(&t, &out); \
		CHECK_INT(name " returns 0", rc, 0); \
		CHECK_MEM(name, out.data, out.len, (want), sizeof(want) - 1); \
	} while (0)
#define DECBAD(name, in) do { \
		t.type = J_STRING; t.p = (in); t.n = sizeof(in) - 1; \
		out.len = out.off = 0; \
		rc = jstr_decode(&t, &out); \
		CHECK_INT(name " returns -1", rc, -1); \
	} while (0)

	DEC("jstr_decode plain", "hello", "hello");
	DEC("jstr_decode empty", "", "");
	DEC("jstr_decode \\\"", "a\\\"b", "a\"b");
	DEC("jstr_decode \\\\", "a\\\\b", "a\\b");
	DEC("jstr_decode \\/", "a\\/b", "a/b");
	DEC("jstr_decode \\n", "a\\nb", "a\nb");
	DEC("jstr_decode \\r \\t \\b \\f", "\\r\\t\\b\\f", "\r\t\b\f");
	DEC("jstr_decode \\u00e9", "caf\\u00e9", "caf\xc3\xa9");
	DEC("jstr_decode \\u00E9 upper-case hex", "\\u00E9", "\xc3\xa9");
	DEC("jstr_decode \\u0041", "\\u0041", "A");
	DEC("jstr_decode \\u0000", "a\\u0000b", "a\0b");
	DEC("jstr_decode \\u07ff (2-byte max)", "\\u07ff", "\xdf\xbf");
	DEC("jstr_decode \\u0800 (3-byte min)", "\\u0800", "\xe0\xa0\x80");
	DEC("jstr_decode \\u20ac", "\\u20ac", "\xe2\x82\xac");
	DEC("jstr_decode \\uffff", "\\uffff", "\xef\xbf\xbf");
	DEC("jstr_decode surrogate pair \\ud83d\\ude00", "\\ud83d\\ude00", "\xf0\x9f\x98\x80");
	DEC("jstr_decode surrogate pair \\udbff\\udfff", "x\\udbff\\udfffy", "x\xf4\x8f\xbf\xbfy");
	DEC("jstr_decode raw UTF-8 passthrough", "\xc3\xa9", "\xc3\xa9");
	DEC("jstr_decode escapes back to back", "\\n\\n\\\\\\\"", "\n\n\\\"");

	DECBAD("jstr_decode lone low surrogate \\ude00", "\\ude00");
	DECBAD("jstr_decode lone high surrogate \\ud83d", "\\ud83dx");
	DECBAD("jstr_decode high surrogate at end", "\\ud83d");
	DECBAD("jstr_decode high surrogate then non-surrogate", "\\ud83d\\u0041");
	DECBAD("jstr_decode high surrogate then high surrogate", "\\ud83d\\ud83d");
	DECBAD("jstr_decode bad escape \\x", "a\\xb");
	DECBAD("jstr_decode short \\u12", "\\u12");
	DECBAD("jstr_decode non-hex \\u12g4", "\\u12g4");
	DECBAD("jstr_decode trailing backslash", "abc\\");
#undef DEC
#undef DECBAD

	/* appends to what is already in out */
	out.len = 0;
	buf_putlit(&out, ">");
	t.type = J_STRING;
	t.p = "a\\tb";
	t.n = 4;
	rc = jstr_decode(&t, &out);
	CHECK_INT("jstr_decode appends: returns 0", rc, 0);
	CHECK_MEM("jstr_decode appends", out.data, out.len, ">a\tb", 4);

	/* decode a token straight from jscan_value */
	{
		const char *s = "{\"k\":\"line1\\nline2 \\u00e9\"}";
		struct jtok obj, k, v;
		struct jiter it;
		size_t pos = 0;

		out.len = 0;
		rc = -1;
		if (jscan_value(s, strlen(s), &pos, &obj) == 0 && jiter_begin(&it, &obj) == 0 &&
				jiter_member(&it, &k, &v) == 1)
			rc = jstr_decode(&v, &out);
		CHECK_INT("jstr_decode from jiter_member returns 0", rc, 0);
		CHECK_MEM("jstr_decode from jiter_member", out.data, out.len, "line1\nline2 \xc3\xa9", 14);
	}
	buf_free(&out);
}

/* ---- ack ---- */

static char tmpdir[64];

static void
write_all(int fd, const char *s)
{
	if (write(fd, s, strlen(s)) != (ssize_t) strlen(s))
		die("write");
}

static void
test_ack(void)
{
	struct ack_reader r;
	char path[128], path2[128], path3[128], regular[128], err[256];
	struct stat st;
	lsn_t l;
	int rc, wfd, fd;

	snprintf(path, sizeof(path), "%s/ack", tmpdir);
	err[0] = '\0';
	rc = ack_reader_open(&r, path, err, sizeof(err));
	CHECK_INT("ack_reader_open returns 0", rc, 0);
	if (rc < 0)
		printf("#   err: %s\n", err);
	CHECK_INT("ack_reader_open: stat the path", stat(path, &st), 0);
	CHECK("ack_reader_open creates a FIFO", S_ISFIFO(st.st_mode));
	CHECK_INT("ack_reader_open: mode 0600", st.st_mode & 07777, 0600);
	CHECK("ack_reader_open: read fd open", r.fd >= 0);
	CHECK("ack_reader_open: keep fd open", r.keep_fd >= 0);
	CHECK("ack_reader_open: read fd non-blocking", (fcntl(r.fd, F_GETFL) & O_NONBLOCK) != 0);

	rc = ack_reader_next(&r, &l, err, sizeof(err));
	CHECK_INT("ack_reader_next with no writer yet returns 0", rc, 0);

	wfd = ack_writer_open(path, err, sizeof(err));
	CHECK("ack_writer_open returns a descriptor", wfd >= 0);
	if (wfd < 0) {
		printf("#   err: %s\n", err);
		ack_reader_close(&r);
		return;
	}
	CHECK_INT("ack_write 1", ack_write(wfd, 0x16B374D848ULL), 0);
	CHECK_INT("ack_write 2", ack_write(wfd, 0x16B374D900ULL), 0);
	CHECK_INT("ack_write 3", ack_write(wfd, 0x1700000000ULL), 0);

	l = 0;
	rc = ack_reader_next(&r, &l, err, sizeof(err));
	CHECK_INT("ack_reader_next #1 returns 1", rc, 1);
	CHECK_U64("ack_reader_next #1 LSN", l, 0x16B374D848ULL);
	rc = ack_reader_next(&r, &l, err, sizeof(err));
	CHECK_INT("ack_reader_next #2 returns 1", rc, 1);
	CHECK_U64("ack_reader_next #2 LSN", l, 0x16B374D900ULL);
	rc = ack_reader_next(&r, &l, err, sizeof(err));
	CHECK_INT("ack_reader_next #3 returns 1", rc, 1);
	CHECK_U64("ack_reader_next #3 LSN", l, 0x1700000000ULL);
	rc = ack_reader_next(&r, &l, err, sizeof(err));
	CHECK_INT("ack_reader_next with nothing left returns 0", rc, 0);

	/* partial line, then the rest */
	write_all(wfd, "1/2");
	rc = ack_reader_next(&r, &l, err, sizeof(err));
	CHECK_INT("ack_reader_next on a partial line returns 0", rc, 0);
	rc = ack_reader_next(&r, &l, err, sizeof(err));
	CHECK_INT("ack_reader_next on a partial line again returns 0", rc, 0);
	write_all(wfd, "3\n");
	l = 0;
	rc = ack_reader_next(&r, &l, err, sizeof(err));
	CHECK_INT("ack_reader_next after the rest returns 1", rc, 1);
	CHECK_U64("ack_reader_next joined line is 1/23", l, 0x100000023ULL);
	rc = ack_reader_next(&r, &l, err, sizeof(err));
	CHECK_INT("ack_reader_next after joined line returns 0", rc, 0);

	/* a writer that goes away is not EOF: keep_fd holds the pipe open */
	close(wfd);
	rc = ack_reader_next(&r, &l, err, sizeof(err));
	CHECK_INT("ack_reader_next after the writer closed returns 0", rc, 0);
	wfd = ack_writer_open(path, err, sizeof(err));
	CHECK("ack_writer_open again on the existing FIFO", wfd >= 0);
	if (wfd >= 0) {
		ack_write(wfd, 0x2A);
		rc = ack_reader_next(&r, &l, err, sizeof(err));
		CHECK_INT("ack_reader_next from a second writer returns 1", rc, 1);
		CHECK_U64("ack_reader_next from a second writer LSN", l, 0x2A);
		close(wfd);
	}
	ack_reader_close(&r);
	CHECK_INT("ack_reader_close resets fds", r.fd + r.keep_fd, -2);
	ack_reader_close(&r);	/* twice is harmless */

	/* reopening an existing FIFO works */
	rc = ack_reader_open(&r, path, err, sizeof(err));
	CHECK_INT("ack_reader_open on an existing FIFO returns 0", rc, 0);
	ack_reader_close(&r);

	/* garbage line: -1, with the line number */
	snprintf(path2, sizeof(path2), "%s/ack2", tmpdir);
	rc = ack_reader_open(&r, path2, err, sizeof(err));
	CHECK_INT("ack_reader_open second FIFO returns 0", rc, 0);
	wfd = ack_writer_open(path2, err, sizeof(err));
	if (wfd < 0)
		die("ack_writer_open");
	write_all(wfd, "0/10\nhello\n");
	rc = ack_reader_next(&r, &l, err, sizeof(err));
	CHECK_INT("ack_reader_next good line before garbage returns 1", rc, 1);
	CHECK_U64("ack_reader_next good line before garbage LSN", l, 0x10);
	err[0] = '\0';
	rc = ack_reader_next(&r, &l, err, sizeof(err));
	CHECK_INT("ack_reader_next on \"hello\" returns -1", rc, -1);
	CHECK_CONTAINS("ack_reader_next garbage: err has the line number", err, "line 2");
	CHECK_CONTAINS("ack_reader_next garbage: err says not an LSN", err, "not an LSN");
	CHECK_CONTAINS("ack_reader_next garbage: err shows the line", err, "hello");
	CHECK_STR("ack_reader_next garbage: whole message", err,
			"ack pipe line 2 is not an LSN: \"hello\"");
	close(wfd);
	ack_reader_close(&r);

	/* overlong line */
	snprintf(path3, sizeof(path3), "%s/ack3", tmpdir);
	rc = ack_reader_open(&r, path3, err, sizeof(err));
	CHECK_INT("ack_reader_open third FIFO returns 0", rc, 0);
	wfd = ack_writer_open(path3, err, sizeof(err));
	if (wfd < 0)
		die("ack_writer_open");
	{
		char as[81];

		memset(as, 'A', 80);
		as[80] = '\0';
		write_all(wfd, as);
	}
	err[0] = '\0';
	rc = ack_reader_next(&r, &l, err, sizeof(err));
	CHECK_INT("ack_reader_next on 80 bytes without newline returns -1", rc, -1);
	CHECK_CONTAINS("ack_reader_next overlong: err says too long", err, "too long");
	CHECK_CONTAINS("ack_reader_next overlong: err has the line number", err, "line 1");
	close(wfd);
	ack_reader_close(&r);

	/* a regular file in the way */
	snprintf(regular, sizeof(regular), "%s/regular", tmpdir);
	fd = open(regular, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (fd < 0)
		die("create regular file");
	close(fd);
	err[0] = '\0';
	rc = ack_reader_open(&r, regular, err, sizeof(err));
	CHECK_INT("ack_reader_open on a regular file returns -1", rc, -1);
	CHECK_CONTAINS("ack_reader_open on a regular file: err says not a FIFO", err, "not a FIFO");
	CHECK_INT("ack_reader_open failure leaves fds at -1", r.fd + r.keep_fd, -2);
	err[0] = '\0';
	rc = ack_writer_open(regular, err, sizeof(err));
	CHECK_INT("ack_writer_open on a regular file returns -1", rc, -1);
	CHECK_CONTAINS("ack_writer_open on a regular file: err says not a FIFO", err, "not a FIFO");

	/* a directory that does not exist */
	{
		char missing[160];

		snprintf(missing, sizeof(missing), "%s/nodir/ack", tmpdir);
		err[0] = '\0';
		rc = ack_reader_open(&r, missing, err, sizeof(err));
		CHECK_INT("ack_reader_open in a missing directory returns -1", rc, -1);
		CHECK_CONTAINS("ack_reader_open in a missing directory: err", err, "could not create");
	}

	/* ack_write line format, read raw from a plain pipe */
	{
		int p[2];
		char rd[64];
		ssize_t n;

		if (pipe(p) < 0)
			die("pipe");
		ack_write(p[1], 0x16B374D848ULL);
		ack_write(p[1], 0);
		n = read(p[0], rd, sizeof(rd));
		CHECK_MEM("ack_write line format", rd, n < 0 ? 0 : (size_t) n, "16/B374D848\n0/0\n", 16);
		close(p[0]);
		close(p[1]);
	}

	unlink(path);
	unlink(path2);
	unlink(path3);
	unlink(regular);
}

/* ---- log ---- */

static int saved_stderr = -1, capture_fd = -1;

static void
capture_begin(void)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/stderr.XXXXXX", tmpdir);
	capture_fd = mkstemp(path);
	if (capture_fd < 0)
		die("mkstemp");
	unlink(path);
	fflush(stderr);
	saved_stderr = dup(STDERR_FILENO);
	if (saved_stderr < 0 || dup2(capture_fd, STDERR_FILENO) < 0)
		die("dup2");
}

/* Restore stderr; return what was written (caller frees). */
static char *
capture_end(size_t *lenp)
{
	struct buf b = {0};
	char tmp[4096];
	ssize_t n;

	fflush(stderr);
	if (dup2(saved_stderr, STDERR_FILENO) < 0)
		die("dup2");
	close(saved_stderr);
	if (lseek(capture_fd, 0, SEEK_SET) < 0)
		die("lseek");
	while ((n = read(capture_fd, tmp, sizeof(tmp))) > 0)
		buf_put(&b, tmp, (size_t) n);
	close(capture_fd);
	buf_putc(&b, '\0');
	*lenp = b.len - 1;
	return b.data;
}

/* "ts=YYYY-MM-DDTHH:MM:SS.mmmZ " */
static int
ts_ok(const char *s)
{
	static const char pat[] = "ts=dddd-dd-ddTdd:dd:dd.dddZ ";
	size_t i;

	for (i = 0; i < sizeof(pat) - 1; i++) {
		if (s[i] == '\0')
			return 0;
		if (pat[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != pat[i])
			return 0;
	}
	return 1;
}

/* The line after "ts=... ": from " level=". */
static const char *
after_ts(const char *s)
{
	const char *p = strstr(s, " level=");

	return p ? p + 1 : s;
}

/* After ack_reader_release, the read end hangs up once no writer is left, whether the last one left before or after. */
static void
test_ack_release(void)
{
	struct ack_reader r;
	char path[128], err[256];
	struct pollfd p = {.events = POLLIN};
	int w, order;
	lsn_t l;

	for (order = 0; order < 2; order++) {
		snprintf(path, sizeof(path), "%s/ack_release%d", tmpdir, order);
		if (ack_reader_open(&r, path, err, sizeof(err)) < 0) {
			CHECK("ack_release: open", 0);
			return;
		}
		w = open(path, O_WRONLY | O_NONBLOCK);
		CHECK_INT("ack_release: an acknowledgement written", ack_write(w, 0x1000), 0);
		if (order == 0)
			close(w);	/* the acknowledging stage died before the stop */
		CHECK_INT("ack_release: released", ack_reader_release(&r, false, err, sizeof(err)), 0);
		p.fd = r.fd;
		p.revents = 0;
		poll(&p, 1, 0);
		if (order == 0)
			CHECK("ack_release: writer gone before: hang-up seen", (p.revents & POLLHUP) != 0);
		else {
			CHECK("ack_release: writer still there: no hang-up yet", (p.revents & POLLHUP) == 0);
			close(w);
			p.revents = 0;
			poll(&p, 1, 0);
			CHECK("ack_release: writer gone after: hang-up seen", (p.revents & POLLHUP) != 0);
		}
		CHECK_INT("ack_release: the acknowledgement is still read", ack_reader_next(&r, &l, err, sizeof(err)), 1);
		CHECK_U64("ack_release: its LSN", l, 0x1000);
		ack_reader_close(&r);
	}
	/* awaiting a writer: none there yet, no hang-up until one came and went */
	snprintf(path, sizeof(path), "%s/ack_release_await", tmpdir);
	if (ack_reader_open(&r, path, err, sizeof(err)) < 0) {
		CHECK("ack_release: open", 0);
		return;
	}
	CHECK_INT("ack_release await: released", ack_reader_release(&r, true, err, sizeof(err)), 0);
	p.fd = r.fd;
	p.revents = 0;
	poll(&p, 1, 0);
	CHECK("ack_release await: no writer yet, no hang-up", (p.revents & POLLHUP) == 0);
	w = open(path, O_WRONLY | O_NONBLOCK);
	ack_write(w, 0x2000);
	close(w);
	p.revents = 0;
	poll(&p, 1, 0);
	CHECK("ack_release await: a writer came and went: hang-up", (p.revents & POLLHUP) != 0);
	CHECK_INT("ack_release await: its acknowledgement read", ack_reader_next(&r, &l, err, sizeof(err)), 1);
	ack_reader_close(&r);
}

static void
test_log(void)
{
	char *out;
	size_t len;

	CHECK_STR("log_init sets progname from argv[0]", progname, "test_lib");
	CHECK_INT("log_enabled(LOG_INFO) at default level", log_enabled(LOG_INFO), 1);
	CHECK_INT("log_enabled(LOG_DEBUG) at default level", log_enabled(LOG_DEBUG), 0);

	capture_begin();
	log_kv(LOG_ERROR, "could not x", "key", "value", "q", "a b", "skipped", (const char *) NULL,
			"e", "", (const char *) NULL);
	out = capture_end(&len);
	CHECK("log_kv line starts with ts=", strncmp(out, "ts=", 3) == 0);
	CHECK("log_kv ts is YYYY-MM-DDTHH:MM:SS.mmmZ", ts_ok(out));
	CHECK_STR("log_kv error line", after_ts(out),
			"level=error prog=test_lib msg=\"could not x\" key=value q=\"a b\" e=\"\"\n");
	CHECK_INT("log_kv writes one line", (long long) (strchr(out, '\n') - out), (long long) len - 1);
	free(out);

	capture_begin();
	log_kv(LOG_WARN, "quotes", "a", "say \"hi\"", "b", "x=y", "c", "l1\nl2", "d", "back\\slash",
			"t", "tab\there", "r", "cr\r", (const char *) NULL);
	out = capture_end(&len);
	CHECK_STR("log_kv escapes quote, =, newline, backslash, tab, CR", after_ts(out),
			"level=warn prog=test_lib msg=quotes a=\"say \\\"hi\\\"\" b=\"x=y\" c=\"l1\\nl2\" "
			"d=\"back\\\\slash\" t=\"tab\\there\" r=\"cr\\r\"\n");
	free(out);

	capture_begin();
	log_kv(LOG_INFO, "started", (const char *) NULL);
	out = capture_end(&len);
	CHECK_STR("log_kv info line without pairs", after_ts(out),
			"level=info prog=test_lib msg=started\n");
	free(out);

	capture_begin();
	log_kv(LOG_DEBUG, "hidden", "k", "v", (const char *) NULL);
	out = capture_end(&len);
	CHECK_INT("log_kv debug suppressed at default level", len, 0);
	free(out);

	log_set_level(LOG_DEBUG);
	CHECK_INT("log_enabled(LOG_DEBUG) after log_set_level(LOG_DEBUG)", log_enabled(LOG_DEBUG), 1);
	capture_begin();
	log_kv(LOG_DEBUG, "shown", "k", "v", (const char *) NULL);
	out = capture_end(&len);
	CHECK("log_kv debug line starts with ts=", strncmp(out, "ts=", 3) == 0);
	CHECK_STR("log_kv debug shown after log_set_level(LOG_DEBUG)", after_ts(out),
			"level=debug prog=test_lib msg=shown k=v\n");
	free(out);

	log_set_level(LOG_ERROR);
	CHECK_INT("log_enabled(LOG_WARN) at LOG_ERROR", log_enabled(LOG_WARN), 0);
	capture_begin();
	log_kv(LOG_WARN, "hidden", (const char *) NULL);
	log_kv(LOG_INFO, "hidden", (const char *) NULL);
	out = capture_end(&len);
	CHECK_INT("log_kv warn and info suppressed at LOG_ERROR", len, 0);
	free(out);
	log_set_level(LOG_INFO);

	/* a very long value is cut, but the line still ends in one newline */
	{
		char *big = xmalloc(10000);

		memset(big, 'v', 9999);
		big[9999] = '\0';
		capture_begin();
		log_kv(LOG_ERROR, "long", "k", big, (const char *) NULL);
		out = capture_end(&len);
		CHECK("log_kv long value: line ends with a newline", len > 0 && out[len - 1] == '\n');
		CHECK("log_kv long value: only one newline", strchr(out, '\n') == out + len - 1);
		CHECK("log_kv long value: at most 4096 bytes", len <= 4096);
		free(out);
		free(big);
	}

	capture_begin();
	usage_error("bad option '%s'", "-z");
	out = capture_end(&len);
	CHECK_STR("usage_error text", out,
			"test_lib: bad option '-z'\nTry 'test_lib --help' for more information.\n");
	free(out);

	{
		const char *saved = progname;

		log_init("plainname");
		CHECK_STR("log_init without a slash", progname, "plainname");
		log_init("/usr/local/bin/pg-capture");
		CHECK_STR("log_init with an absolute path", progname, "pg-capture");
		progname = saved;
	}
}

/* ---- util, sig, exitcode ---- */

static void
test_util(void)
{
	char *p;
	int64_t t0, t1, prev;
	int i, mono = 1;
	struct timespec ts = {0, 20 * 1000000};

	p = xstrndup("hello world", 5);
	CHECK_STR("xstrndup copies n bytes", p, "hello");
	free(p);
	p = xstrndup("abc", 0);
	CHECK_STR("xstrndup n=0 gives empty string", p, "");
	free(p);
	{
		const char notnul[3] = {'x', 'y', 'z'};

		p = xstrndup(notnul, 3);
		CHECK_STR("xstrndup terminates an unterminated source", p, "xyz");
		free(p);
	}
	p = xstrndup("a\0b", 3);
	CHECK_MEM("xstrndup copies past an embedded NUL", p, 4, "a\0b\0", 4);
	free(p);
	p = xstrdup("dup me");
	CHECK_STR("xstrdup", p, "dup me");
	free(p);
	p = xmalloc(0);
	CHECK("xmalloc(0) is not NULL", p != NULL);
	free(p);
	{
		unsigned char *z = xcalloc(64, 4);
		int allzero = 1;

		for (i = 0; i < 256; i++)
			allzero &= z[i] == 0;
		CHECK_INT("xcalloc zeroes", allzero, 1);
		z = xrealloc(z, 100000);
		z[99999] = 1;
		CHECK_INT("xrealloc keeps content", z[255], 0);
		free(z);
	}

	prev = now_ms();
	CHECK("now_ms positive", prev > 0);
	for (i = 0; i < 100000; i++) {
		t1 = now_ms();
		if (t1 < prev)
			mono = 0;
		prev = t1;
	}
	CHECK_INT("now_ms non-decreasing over 100000 calls", mono, 1);
	t0 = now_ms();
	nanosleep(&ts, NULL);
	t1 = now_ms();
	CHECK(nm("now_ms advances by at least 20 over a 20ms sleep (got %lld)", (long long) (t1 - t0)),
			t1 - t0 >= 20);
}

static void
test_sig(void)
{
	struct sigaction sa;

	sig_setup();
	sig_stop = 0;
	sigaction(SIGPIPE, NULL, &sa);
	CHECK("sig_setup ignores SIGPIPE", sa.sa_handler == SIG_IGN);
	sigaction(SIGTERM, NULL, &sa);
	CHECK("sig_setup: SIGTERM without SA_RESTART", (sa.sa_flags & SA_RESTART) == 0);
	raise(SIGTERM);
	CHECK_INT("SIGTERM sets sig_stop", sig_stop, SIGTERM);
	sig_stop = 0;
	raise(SIGINT);
	CHECK_INT("SIGINT sets sig_stop", sig_stop, SIGINT);
	sig_stop = 0;
}

static void
test_exitcode(void)
{
	CHECK_INT("EXIT_OK", EXIT_OK, 0);
	CHECK_INT("EXIT_RUNTIME", EXIT_RUNTIME, 1);
	CHECK_INT("EXIT_USAGE", EXIT_USAGE, 2);
	CHECK_INT("EXIT_BADINPUT", EXIT_BADINPUT, 3);
	CHECK_INT("EXIT_UNAVAILABLE", EXIT_UNAVAILABLE, 4);
	CHECK_INT("EXIT_AUTH", EXIT_AUTH, 5);
	CHECK_INT("EXIT_NOSLOT", EXIT_NOSLOT, 6);
	CHECK_INT("EXIT_SLOTLOST", EXIT_SLOTLOST, 7);
	CHECK_INT("EXIT_SERVERCONF", EXIT_SERVERCONF, 8);
	CHECK_INT("EXIT_REJECTED", EXIT_REJECTED, 9);
}

/* A file with the given bytes, opened for reading at offset 0. */
static int
bytes_fd(const char *data, size_t n)
{
	FILE *f = tmpfile();
	int fd;

	if (!f)
		return -1;
	if (n && fwrite(data, 1, n, f) != n)
		return -1;
	fflush(f);
	fd = dup(fileno(f));
	fclose(f);
	lseek(fd, 0, SEEK_SET);
	return fd;
}

static void
test_linereader(void)
{
	struct linereader r;
	const char *line;
	size_t len;
	int fd = bytes_fd("a\nbb\n\nccc", 9), rc;

	lr_init(&r, fd, 100);
	rc = lr_next(&r, &line, &len);
	CHECK_INT("lr_next line 1", rc, LR_LINE);
	CHECK_MEM("lr_next line 1 text", line, len, "a", 1);
	rc = lr_next(&r, &line, &len);
	CHECK_MEM("lr_next line 2 text", line, len, "bb", 2);
	rc = lr_next(&r, &line, &len);
	CHECK_INT("lr_next empty line", rc, LR_LINE);
	CHECK_INT("lr_next empty line length", len, 0);
	rc = lr_next(&r, &line, &len);
	CHECK_INT("lr_next last line without newline is partial", rc, LR_PARTIAL);
	CHECK_MEM("lr_next partial text", line, len, "ccc", 3);
	CHECK_INT("lr_next partial line number", r.lineno, 4);
	CHECK_INT("lr_next then EOF", lr_next(&r, &line, &len), LR_EOF);
	CHECK_INT("lr_next EOF again", lr_next(&r, &line, &len), LR_EOF);
	lr_free(&r);
	close(fd);

	/* an oversize line is refused and skipped; the next one reads fine */
	{
		size_t big = 3 * 1024 * 1024, i;
		char *data = malloc(big + 16);

		for (i = 0; i < big; i++)
			data[i] = 'x';
		memcpy(data + big, "\nok\n", 4);
		fd = bytes_fd(data, big + 4);
		lr_init(&r, fd, 1024 * 1024);
		CHECK_INT("lr_next oversize line", lr_next(&r, &line, &len), LR_TOOLONG);
		CHECK_INT("lr_next oversize line number", r.lineno, 1);
		CHECK("lr_next oversize line not buffered whole", r.cap < 2 * 1024 * 1024);
		rc = lr_next(&r, &line, &len);
		CHECK_INT("lr_next after oversize", rc, LR_LINE);
		CHECK_MEM("lr_next after oversize text", line, len, "ok", 2);
		CHECK_INT("lr_next after oversize line number", r.lineno, 2);
		lr_free(&r);
		close(fd);
		/* a long line under the limit, across many reads */
		data[big] = '\n';
		fd = bytes_fd(data, big + 1);
		lr_init(&r, fd, 4 * 1024 * 1024);
		rc = lr_next(&r, &line, &len);
		CHECK_INT("lr_next 3 MB line", rc, LR_LINE);
		CHECK_INT("lr_next 3 MB line length", len, big);
		lr_free(&r);
		close(fd);
		free(data);
	}
}

static void
test_ev_head(void)
{
	struct ev_head h;
	const char *err = NULL;
	const char *row = "{\"op\":\"update\",\"schema\":\"public\",\"table\":\"work\\\"items\",\"id\":\"0/1:0\"}";
	const char *tx = "{\"op\":\"commit\",\"xid\":7,\"lsn\":\"0/16\"}";

	CHECK_INT("ev_head row", ev_head(row, strlen(row), &h, &err), 0);
	CHECK_INT("ev_head row op", h.op, EV_UPDATE);
	CHECK_MEM("ev_head row schema", h.schema.p, h.schema.n, "public", 6);
	CHECK_MEM("ev_head row table still escaped", h.table.p, h.table.n, "work\\\"items", 11);
	CHECK_INT("ev_head commit", ev_head(tx, strlen(tx), &h, &err), 0);
	CHECK_INT("ev_head commit op", h.op, EV_COMMIT);
	CHECK_INT("ev_head commit has no schema", h.schema.type, J_NONE);
	CHECK_INT("ev_head unknown op", ev_head("{\"op\":\"merge\"}", 14, &h, &err), 0);
	CHECK_INT("ev_head unknown op is EV_UNKNOWN", h.op, EV_UNKNOWN);
	CHECK_INT("ev_head op not first", ev_head("{\"xid\":1,\"op\":\"begin\"}", 22, &h, &err), -1);
	CHECK_STR("ev_head op not first message", err, "\"op\" is not the first member");
	CHECK_INT("ev_head not an object", ev_head("[1]", 3, &h, &err), -1);
	CHECK_STR("ev_head not an object message", err, "not a JSON object");
	CHECK_INT("ev_head empty object", ev_head("{}", 2, &h, &err), -1);
	CHECK_INT("ev_head op not a string", ev_head("{\"op\":1}", 8, &h, &err), -1);
	CHECK_INT("ev_head broken JSON", ev_head("{\"op\":\"ins", 10, &h, &err), -1);
	CHECK_INT("ev_op_parse message", ev_op_parse("message", 7), EV_MESSAGE);
	CHECK_INT("ev_op_parse prefix is not a match", ev_op_parse("ins", 3), EV_UNKNOWN);
	CHECK_STR("ev_op_name", ev_op_name(EV_TRUNCATE), "truncate");
}

static void
test_ev_check(void)
{
	struct ev_head h;
	const char *err = NULL;

#define EVC(name, lit, want) CHECK_INT(name, ev_check((lit), sizeof(lit) - 1, &h, &err), (want))
	EVC("ev_check row", "{\"op\":\"insert\",\"schema\":\"s\",\"table\":\"t\",\"new\":{\"a\":[1,{\"b\":null}]}}", 0);
	CHECK_INT("ev_check row op", h.op, EV_INSERT);
	EVC("ev_check trailing blanks", "{\"op\":\"begin\"} \t\r", 0);
	EVC("ev_check unknown op", "{\"op\":\"merge\"}", -1);
	CHECK_STR("ev_check unknown op message", err, "unknown op");
	EVC("ev_check text after object", "{\"op\":\"begin\"}x", -1);
	CHECK_STR("ev_check text after object message", err, "text after the JSON object");
	EVC("ev_check two objects", "{\"op\":\"begin\"}{\"op\":\"commit\"}", -1);
	EVC("ev_check unclosed object", "{\"op\":\"insert\",\"new\":{\"a\":1}", -1);
	CHECK_STR("ev_check unclosed message", err, "broken JSON: unclosed string or bracket, or a raw control character");
	EVC("ev_check unclosed string deep inside", "{\"op\":\"insert\",\"new\":{\"a\":\"x}}", -1);
	EVC("ev_check raw control character", "{\"op\":\"insert\",\"new\":{\"a\":\"x\001\"}}", -1);
	EVC("ev_check array", "[{\"op\":\"insert\"}]", -1);
	EVC("ev_check no op", "{\"table\":\"t\"}", -1);
	CHECK_STR("ev_check no op message", err, "no \"op\" member");
	EVC("ev_check op not first", "{\"table\":\"t\",\"op\":\"insert\"}", -1);
	CHECK_STR("ev_check op not first message", err, "\"op\" is not the first member");
	EVC("ev_check op not a string", "{\"op\":1}", -1);
	CHECK_STR("ev_check op not a string message", err, "\"op\" is not a string");
	EVC("ev_check empty object", "{}", -1);
	CHECK_STR("ev_check empty object message", err, "no \"op\" member");
	EVC("ev_check empty line", "", -1);
	CHECK_STR("ev_check empty line message", err, "empty line");
	EVC("ev_check a string", "\"op\"", -1);
	CHECK_STR("ev_check a string message", err, "not a JSON object");
	EVC("ev_check LATIN1 byte in a string", "{\"op\":\"insert\",\"schema\":\"s\",\"table\":\"caf\xe9\"}", -1);
	CHECK_STR("ev_check LATIN1 byte in a string message", err, "invalid UTF-8: sequence cut short");
	EVC("ev_check surrogate in a value", "{\"op\":\"insert\",\"new\":{\"a\":\"\xed\xa0\x80\"}}", -1);
	CHECK_STR("ev_check surrogate in a value message", err, "invalid UTF-8: surrogate (U+D800 to U+DFFF)");
	EVC("ev_check overlong slash in a key", "{\"op\":\"insert\",\"new\":{\"\xc0\xaf\":1}}", -1);
	CHECK_STR("ev_check overlong slash in a key message", err, "invalid UTF-8: overlong form");
	EVC("ev_check valid 2, 3 and 4-byte characters, U+2028 raw",
			"{\"op\":\"insert\",\"new\":{\"\xc3\xa9\":\"\xe2\x80\xa8\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\"}}", 0);
	EVC("ev_check escaped surrogate pair (ASCII on the line)", "{\"op\":\"insert\",\"new\":{\"a\":\"\\ud83d\\ude00\"}}", 0);
#undef EVC
}

/* jutf8_check on each invalid form, alone and inside ASCII long enough for the 16-byte steps */
static void
test_jutf8_check(void)
{
	static const struct {
		const char *name, *s, *why;
		size_t at;	/* of the first bad byte */
	} bad[] = {
		{"overlong 2-byte (C0 AF)", "\xc0\xaf", "invalid UTF-8: overlong form", 0},
		{"overlong 2-byte (C1 BF)", "\xc1\xbf", "invalid UTF-8: overlong form", 0},
		{"overlong 3-byte (E0 80 AF)", "\xe0\x80\xaf", "invalid UTF-8: overlong form", 0},
		{"overlong 3-byte (E0 9F BF)", "\xe0\x9f\xbf", "invalid UTF-8: overlong form", 0},
		{"overlong 4-byte (F0 80 80 AF)", "\xf0\x80\x80\xaf", "invalid UTF-8: overlong form", 0},
		{"overlong 4-byte (F0 8F BF BF)", "\xf0\x8f\xbf\xbf", "invalid UTF-8: overlong form", 0},
		{"surrogate U+D800", "\xed\xa0\x80", "invalid UTF-8: surrogate (U+D800 to U+DFFF)", 0},
		{"surrogate U+DBFF", "\xed\xaf\xbf", "invalid UTF-8: surrogate (U+D800 to U+DFFF)", 0},
		{"surrogate U+DC00", "\xed\xb0\x80", "invalid UTF-8: surrogate (U+D800 to U+DFFF)", 0},
		{"surrogate U+DFFF", "\xed\xbf\xbf", "invalid UTF-8: surrogate (U+D800 to U+DFFF)", 0},
		{"surrogate pair encoded as two sequences", "\xed\xa0\xbd\xed\xb8\x80",
			"invalid UTF-8: surrogate (U+D800 to U+DFFF)", 0},
		{"U+110000 (F4 90 80 80)", "\xf4\x90\x80\x80", "invalid UTF-8: code point above U+10FFFF", 0},
		{"U+13FFFF (F4 BF BF BF)", "\xf4\xbf\xbf\xbf", "invalid UTF-8: code point above U+10FFFF", 0},
		{"lead byte F5", "\xf5\x80\x80\x80", "invalid UTF-8: code point above U+10FFFF", 0},
		{"lead byte F7", "\xf7\xbf\xbf\xbf", "invalid UTF-8: code point above U+10FFFF", 0},
		{"byte F8 (old 5-byte form)", "\xf8\x88\x80\x80\x80",
			"invalid UTF-8: byte 0xF8 to 0xFF, which never occurs in UTF-8", 0},
		{"byte FE", "\xfe", "invalid UTF-8: byte 0xF8 to 0xFF, which never occurs in UTF-8", 0},
		{"byte FF", "\xff", "invalid UTF-8: byte 0xF8 to 0xFF, which never occurs in UTF-8", 0},
		{"2-byte cut at the end", "\xc3", "invalid UTF-8: sequence cut short", 0},
		{"3-byte cut at the end", "\xe2\x82", "invalid UTF-8: sequence cut short", 0},
		{"4-byte cut at the end", "\xf0\x9f\x98", "invalid UTF-8: sequence cut short", 0},
		{"2-byte cut by ASCII", "\xc3(", "invalid UTF-8: sequence cut short", 0},
		{"3-byte cut by ASCII", "\xe2\x82\"", "invalid UTF-8: sequence cut short", 0},
		{"4-byte cut by a new lead", "\xf0\x9f\xc3\xa9", "invalid UTF-8: sequence cut short", 0},
		{"LATIN1 e-acute before a quote", "caf\xe9\"", "invalid UTF-8: sequence cut short", 3},
		{"stray continuation 80", "\x80", "invalid UTF-8: stray continuation byte", 0},
		{"stray continuation BF", "\xbf", "invalid UTF-8: stray continuation byte", 0},
		{"continuation after a whole sequence", "\xc3\xa9\xa9", "invalid UTF-8: stray continuation byte", 2},
	};
	static const struct {
		const char *name, *s;
	} good[] = {
		{"ASCII", "plain \"text\" {}"},
		{"2-byte U+0080", "\xc2\x80"},
		{"2-byte U+00E9", "caf\xc3\xa9"},
		{"2-byte U+07FF", "\xdf\xbf"},
		{"3-byte U+0800", "\xe0\xa0\x80"},
		{"3-byte U+2028 (line separator)", "a\xe2\x80\xa8" "b"},
		{"3-byte U+D7FF", "\xed\x9f\xbf"},
		{"3-byte U+E000", "\xee\x80\x80"},
		{"3-byte U+FFFD", "\xef\xbf\xbd"},
		{"3-byte U+FFFF", "\xef\xbf\xbf"},
		{"4-byte U+10000", "\xf0\x90\x80\x80"},
		{"4-byte U+1F600", "\xf0\x9f\x98\x80"},
		{"4-byte U+10FFFF", "\xf4\x8f\xbf\xbf"},
		{"empty", ""},
	};
	char pad[128];
	const char *why;
	size_t i, at, n, pre = 37;	/* not a multiple of 16: the bad byte lands mid-step */

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why = NULL;
		at = 99;
		CHECK_INT(nm("jutf8_check %s: refused", bad[i].name), jutf8_check(bad[i].s, strlen(bad[i].s), &at, &why), -1);
		CHECK_STR(nm("jutf8_check %s: reason", bad[i].name), why, bad[i].why);
		CHECK_INT(nm("jutf8_check %s: offset", bad[i].name), at, bad[i].at);
		/* the same after 37 ASCII bytes and before 40 more */
		n = strlen(bad[i].s);
		memset(pad, 'x', sizeof(pad));
		memcpy(pad + pre, bad[i].s, n);
		why = NULL;
		CHECK_INT(nm("jutf8_check %s, inside ASCII: refused", bad[i].name),
				jutf8_check(pad, pre + n + 40, &at, &why), -1);
		CHECK_INT(nm("jutf8_check %s, inside ASCII: offset", bad[i].name), at, pre + bad[i].at);
		CHECK_STR(nm("jutf8_check %s, inside ASCII: reason", bad[i].name), why, bad[i].why);
	}
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		n = strlen(good[i].s);
		CHECK_INT(nm("jutf8_check %s: valid", good[i].name), jutf8_check(good[i].s, n, &at, &why), 0);
		memset(pad, 'x', sizeof(pad));
		memcpy(pad + pre, good[i].s, n);
		CHECK_INT(nm("jutf8_check %s, inside ASCII: valid", good[i].name), jutf8_check(pad, pre + n + 40, &at, &why), 0);
	}
	/* a sequence is not read past n: U+00E9 cut by the length, not by the bytes */
	CHECK_INT("jutf8_check stops at n: 2-byte sequence cut by the length", jutf8_check("ab\xc3\xa9", 3, &at, &why), -1);
	CHECK_INT("jutf8_check stops at n: offset", at, 2);
	CHECK_STR("jutf8_check stops at n: reason", why, "invalid UTF-8: sequence cut short");
	/* a NUL byte is ASCII (JSON strings cannot hold it raw: the scanner refuses it) */
	CHECK_INT("jutf8_check NUL byte is valid UTF-8", jutf8_check("a\0b", 3, &at, &why), 0);
}

static void
test_deadletter(void)
{
	char path[128], got[1024];
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "%s/dead", tmpdir);
	f = fopen(path, "w+");
	if (f == NULL)
		die("fopen dead-letter file");
	CHECK_INT("dl_append event", dl_append(f, "{\"op\":\"insert\",\"id\":\"0/1:0\"}", 28, 7, 400,
			"Bad \"request\""), 0);
	CHECK_INT("dl_append non-object", dl_append(f, "oops\t\"x", 7, 9, 0, "not a JSON object"), 0);
	CHECK_INT("dl_append bad input line", dl_append(f, "{\"x\":1 2}", 9, 10, 0, "broken"), 0);
	/* not UTF-8: the bytes kept exactly, in base64 (1, 3 and 4 bytes: both paddings and none) */
	CHECK_INT("dl_append LATIN1 line", dl_append(f, "caf\xe9", 4, 11, 0, "invalid UTF-8"), 0);
	CHECK_INT("dl_append 3 bytes not UTF-8", dl_append(f, "ab\xff", 3, 12, 0, "invalid UTF-8"), 0);
	CHECK_INT("dl_append 1 byte not UTF-8", dl_append(f, "\xc3", 1, 13, 0, "invalid UTF-8"), 0);
	CHECK_INT("dl_append an object with a surrogate", dl_append(f, "{\"a\":\"\xed\xa0\x80\"}", 11, 14, 0, "invalid UTF-8"), 0);
	CHECK_INT("dl_append valid UTF-8 line", dl_append(f, "caf\xc3\xa9", 5, 15, 0, "x"), 0);
	rewind(f);
	n = fread(got, 1, sizeof(got) - 1, f);
	got[n] = '\0';
	fclose(f);
	unlink(path);
	CHECK_STR("dl_append lines",
			got,
			"{\"op\":\"insert\",\"id\":\"0/1:0\",\"dead_letter\":{\"status\":400,\"input_line\":7,"
			"\"error\":\"Bad \\\"request\\\"\"}}\n"
			"{\"op\":\"invalid\",\"line\":\"oops\\t\\\"x\",\"dead_letter\":{\"status\":0,"
			"\"input_line\":9,\"error\":\"not a JSON object\"}}\n"
			"{\"op\":\"invalid\",\"line\":\"{\\\"x\\\":1 2}\",\"dead_letter\":{\"status\":0,"
			"\"input_line\":10,\"error\":\"broken\"}}\n"
			"{\"op\":\"invalid\",\"line_base64\":\"Y2Fm6Q==\",\"dead_letter\":{\"status\":0,"
			"\"input_line\":11,\"error\":\"invalid UTF-8\"}}\n"
			"{\"op\":\"invalid\",\"line_base64\":\"YWL/\",\"dead_letter\":{\"status\":0,"
			"\"input_line\":12,\"error\":\"invalid UTF-8\"}}\n"
			"{\"op\":\"invalid\",\"line_base64\":\"ww==\",\"dead_letter\":{\"status\":0,"
			"\"input_line\":13,\"error\":\"invalid UTF-8\"}}\n"
			"{\"op\":\"invalid\",\"line_base64\":\"eyJhIjoi7aCAIn0=\",\"dead_letter\":{\"status\":0,"
			"\"input_line\":14,\"error\":\"invalid UTF-8\"}}\n"
			"{\"op\":\"invalid\",\"line\":\"caf\xc3\xa9\",\"dead_letter\":{\"status\":0,"
			"\"input_line\":15,\"error\":\"x\"}}\n");
}

static void
hexof(const unsigned char *d, char *out)
{
	hex_encode(d, SHA256_LEN, out);
	out[2 * SHA256_LEN] = '\0';
}

static void
test_sha256(void)
{
	struct sha256 c;
	struct hmac h;
	unsigned char d[SHA256_LEN], key[131];
	char hex[2 * SHA256_LEN + 1];
	static char million[1000000];
	size_t i;

	sha256_init(&c);
	sha256_final(&c, d);
	hexof(d, hex);
	CHECK_STR("sha256 empty", hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	sha256_init(&c);
	sha256_update(&c, "abc", 3);
	sha256_final(&c, d);
	hexof(d, hex);
	CHECK_STR("sha256 abc", hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	sha256_init(&c);
	sha256_update(&c, "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56);
	sha256_final(&c, d);
	hexof(d, hex);
	CHECK_STR("sha256 56 bytes (two blocks of padding)", hex,
			"248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	{
		struct sha256 start, row = {0};

		/* a common start hashed once, then twice continued: each as if hashed whole */
		sha256_init(&start);
		sha256_update(&start, "ab", 2);
		sha256_from(&row, &start);
		sha256_update(&row, "c", 1);
		sha256_digest(&row, d);
		hexof(d, hex);
		CHECK_STR("sha256 from a common start", hex,
				"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
		sha256_from(&row, &start);
		sha256_update(&row, "cdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 54);
		sha256_digest(&row, d);
		hexof(d, hex);
		CHECK_STR("sha256 from a common start, context reused", hex,
				"248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
		sha256_final(&start, d);
		hexof(d, hex);
		CHECK_STR("sha256 common start left as it was", hex,
				"fb8e20fc2e4c3f248c60c39bd652f3c1347298bb977b8b4d5903b85055620603");
		sha256_free(&row);
		sha256_free(&row);
	}
	memset(million, 'a', sizeof(million));
	sha256_init(&c);
	for (i = 0; i < sizeof(million); i += 997)	/* uneven pieces cross block edges */
		sha256_update(&c, million + i, sizeof(million) - i < 997 ? sizeof(million) - i : 997);
	sha256_final(&c, d);
	hexof(d, hex);
	CHECK_STR("sha256 a million a in pieces", hex,
			"cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");

	/* RFC 4231 */
	memset(key, 0x0b, 20);
	hmac_init(&h, key, 20);
	hmac_sha256(&h, "Hi There", 8, d);
	hexof(d, hex);
	CHECK_STR("hmac-sha256 RFC 4231 case 1", hex,
			"b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
	hmac_free(&h);
	hmac_init(&h, "Jefe", 4);
	hmac_sha256(&h, "what do ya want for nothing?", 28, d);
	hexof(d, hex);
	CHECK_STR("hmac-sha256 RFC 4231 case 2", hex,
			"5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
	hmac_sha256(&h, "what do ya want for nothing?", 28, d);
	hexof(d, hex);
	CHECK_STR("hmac-sha256 prepared key reused", hex,
			"5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
	hmac_free(&h);
	memset(key, 0xaa, 131);
	hmac_init(&h, key, 131);
	hmac_sha256(&h, "Test Using Larger Than Block-Size Key - Hash Key First", 54, d);
	hexof(d, hex);
	CHECK_STR("hmac-sha256 RFC 4231 case 6 (key longer than a block)", hex,
			"60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
	hmac_free(&h);
}

/* A line arriving in pieces through a pipe is returned whole, once. */
static void
test_linereader_pieces(void)
{
	struct linereader r;
	const char *line;
	size_t len;
	int fds[2], rc;

	if (pipe(fds) < 0)
		die("pipe");
	fcntl(fds[0], F_SETFL, O_NONBLOCK);
	lr_init(&r, fds[0], 100);
	CHECK_INT("lr pieces: nothing yet", lr_next(&r, &line, &len), LR_AGAIN);
	(void) !write(fds[1], "{\"op\":", 6);
	CHECK_INT("lr pieces: first piece is not a line", lr_next(&r, &line, &len), LR_AGAIN);
	(void) !write(fds[1], "\"begin\"", 7);
	CHECK_INT("lr pieces: second piece is not a line", lr_next(&r, &line, &len), LR_AGAIN);
	(void) !write(fds[1], "}\n{\"op\"", 7);
	rc = lr_next(&r, &line, &len);
	CHECK_INT("lr pieces: line complete", rc, LR_LINE);
	if (rc == LR_LINE)
		CHECK_MEM("lr pieces: whole line", line, len, "{\"op\":\"begin\"}", 14);
	CHECK_INT("lr pieces: rest waits", lr_next(&r, &line, &len), LR_AGAIN);
	(void) !write(fds[1], ":\"commit\"}\n", 11);
	rc = lr_next(&r, &line, &len);
	CHECK_INT("lr pieces: second line", rc, LR_LINE);
	if (rc == LR_LINE)
		CHECK_MEM("lr pieces: second line bytes", line, len, "{\"op\":\"commit\"}", 15);
	CHECK_INT("lr pieces: line numbers", r.lineno, 2);
	close(fds[1]);
	CHECK_INT("lr pieces: EOF", lr_next(&r, &line, &len), LR_EOF);
	lr_free(&r);
	close(fds[0]);
}

static void
test_log_json(void)
{
	char *out;
	size_t len;

	log_set_format(LOG_FORMAT_JSON);
	capture_begin();
	log_kv(LOG_WARN, "delivery failed", "table", "public.t", "q", "say \"hi\"\n\x01", "skipped",
			(const char *) NULL, (const char *) NULL);
	out = capture_end(&len);
	log_set_format(LOG_FORMAT_LOGFMT);
	CHECK("json: starts with {\"ts\":\"", strncmp(out, "{\"ts\":\"", 7) == 0);
	CHECK_STR("json: the rest of the object, escaped, NULL values left out", strstr(out, "\"level\""),
			"\"level\":\"warn\",\"prog\":\"test_lib\",\"msg\":\"delivery failed\",\"table\":\"public.t\","
			"\"q\":\"say \\\"hi\\\"\\n\\u0001\"}\n");
	CHECK_INT("json: one line", (long long) (strchr(out, '\n') - out), (long long) len - 1);
	free(out);
}

static void
test_metrics(void)
{
	static const enum metric used[] = {M_EVENTS_OUT, M_BYTES_OUT, M_LATENCY, M_ACKED_LSN, M_WAL_STATUS};
	struct metrics_opt o = {.labels = {"slot=a\"b"}, .nlabels = 1};
	struct series *s, *t;
	char *text, *out, path[300];
	size_t len, i;
	FILE *f;
	static const struct metric_field fields[] = {{M_EVENTS_OUT, "events"}, {M_ACKED_LSN, "confirmed"}};

	capture_begin();
	CHECK_INT("metrics_option: --metrics-label bad name", metrics_option(&o, OPT_METRICS_LABEL, "1x=y"), -1);
	CHECK_INT("metrics_option: --metrics-listen without a port", metrics_option(&o, OPT_METRICS_LISTEN, "127.0.0.1"), -1);
	out = capture_end(&len);
	CHECK_CONTAINS("metrics_option: the usage error names the option", out, "invalid --metrics-label \"1x=y\"");
	free(out);
	CHECK_INT("metrics_option: not ours", metrics_option(&o, 'v', "x"), 0);
	snprintf(path, sizeof(path), "%s/m.prom", tmpdir);
	CHECK_INT("metrics_option: --metrics-file", metrics_option(&o, OPT_METRICS_FILE, path), 1);
	CHECK_INT("metrics_start", metrics_start(&o, used, sizeof(used) / sizeof(used[0]), "target", "http x", NULL), 0);
	s = metric_series(M_EVENTS_OUT, "insert", "public.t");
	t = metric_series(M_EVENTS_OUT, "insert", "public.t");
	CHECK("the same labels: the same series", s == t);
	metric_add(s, 3);
	metric_add(metric_seriesn(M_EVENTS_OUT, "delete", 6, "public.u\"x", 10), 2);
	metric_set(M_ACKED_LSN, 23805272);
	metric_set_labelled(M_WAL_STATUS, "reserved", NULL, 1);
	metric_set_labelled(M_WAL_STATUS, "extended", NULL, 1);
	for (i = 0; i < 5; i++)
		metric_observe(metric_series(M_LATENCY, NULL, NULL), i == 4 ? 100 : 0.02);
	text = metrics_render();
	CHECK_CONTAINS("render: a counter with constant and own labels, escaped", text,
			"pgcdc_events_out_total{program=\"test_lib\",target=\"http x\",slot=\"a\\\"b\",op=\"insert\",table=\"public.t\"} 3\n");
	CHECK_CONTAINS("render: a label value with a quote", text, "table=\"public.u\\\"x\"} 2\n");
	CHECK_CONTAINS("render: TYPE counter", text, "# TYPE pgcdc_events_out_total counter\n");
	CHECK_CONTAINS("render: an unlabelled metric shows 0 before any update", text,
			"pgcdc_bytes_out_total{program=\"test_lib\",target=\"http x\",slot=\"a\\\"b\"} 0\n");
	CHECK_CONTAINS("render: an LSN as a number", text, "pgcdc_acknowledged_lsn{program=\"test_lib\",target=\"http x\",slot=\"a\\\"b\"} 23805272\n");
	CHECK_CONTAINS("render: wal_status one-hot (old status 0)", text, "status=\"reserved\"} 0\n");
	CHECK_CONTAINS("render: wal_status one-hot (new status 1)", text, "status=\"extended\"} 1\n");
	CHECK_CONTAINS("render: histogram bucket, cumulative", text, "le=\"0.025\"} 4\n");
	CHECK_CONTAINS("render: histogram +Inf", text, "le=\"+Inf\"} 5\n");
	CHECK_CONTAINS("render: histogram count", text, "pgcdc_delivery_latency_seconds_count{program=\"test_lib\",target=\"http x\",slot=\"a\\\"b\"} 5\n");
	CHECK_CONTAINS("render: build info", text, "pgcdc_build_info{program=\"test_lib\",target=\"http x\",slot=\"a\\\"b\",version=\"");
	CHECK("render: a metric not used is left out", strstr(text, "pgcdc_lag_bytes") == NULL);
	free(text);

	capture_begin();
	metrics_log(LOG_INFO, "exiting", fields, 2, "slot", "a", (const char *) NULL);
	log_kv(LOG_ERROR, "could not \"x\"", (const char *) NULL);
	out = capture_end(&len);
	CHECK_CONTAINS("metrics_log: values from the table, an LSN formatted", out,
			"msg=exiting events=5 confirmed=0/16B3D58 slot=a\n");
	free(out);
	CHECK_STR("the last error is kept", metrics_last_error(), "could not \"x\"");
	text = metrics_render();
	CHECK_CONTAINS("render: last error as labels", text, "level=\"error\",msg=\"could not \\\"x\\\"\"}");
	free(text);

	/* cardinality: past the limit, tables are counted together */
	capture_begin();
	for (i = 0; i < METRIC_MAX_SERIES + 10; i++) {
		char tb[32];

		snprintf(tb, sizeof(tb), "public.t%zu", i);
		metric_add(metric_series(M_EVENTS_OUT, "update", tb), 1);
	}
	out = capture_end(&len);
	CHECK_CONTAINS("cardinality: one warning", out, "too many tables to count apart");
	free(out);
	CHECK("cardinality: _other counts the rest",
			metric_series(M_EVENTS_OUT, "update", "_other")->v >= 10);

	metrics_tick(0, true);
	f = fopen(path, "r");
	CHECK("metrics file written", f != NULL);
	if (f) {
		char line[256];
		int found = 0;

		while (fgets(line, sizeof(line), f))
			found |= strstr(line, "pgcdc_acknowledged_lsn{") != NULL;
		fclose(f);
		CHECK("metrics file has the metrics", found);
	}
	metrics_stop();
	unlink(path);
}

int
main(int argc, char **argv)
{
	(void) argc;
	log_init(argv[0]);
	setvbuf(stdout, NULL, _IOLBF, 0);

	snprintf(tmpdir, sizeof(tmpdir), "%s/test_lib.XXXXXX",
			getenv("TMPDIR") && strlen(getenv("TMPDIR")) < 32 ? getenv("TMPDIR") : "/tmp");
	if (mkdtemp(tmpdir) == NULL)
		die("mkdtemp");

	test_lsn();
	test_buf_basic();
	test_buf_jstr();
	test_buf_write_fd();
	test_jscan_value();
	test_jiter();
	test_jscan_malformed();
	test_jscan_strings();
	test_linereader();
	test_linereader_pieces();
	test_ev_check();
	test_jutf8_check();
	test_deadletter();
	test_sha256();
	test_ev_head();
	test_jtok_eq();
	test_jstr_decode();
	test_ack();
	test_ack_release();
	test_log();
	test_log_json();
	test_metrics();
	test_util();
	test_sig();
	test_exitcode();

	rmdir(tmpdir);
	printf("# %d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
