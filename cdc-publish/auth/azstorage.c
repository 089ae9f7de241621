/*
 * Azure Storage authorization (see azstorage.h): connection strings and
 * SAS tokens read, SharedKey strings to sign built byte for byte as the
 * service does ("Authorize with Shared Key", version 2009-09-19 and
 * later), signed with HMAC-SHA256 under the decoded account key.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/evp.h>

#include "azstorage.h"
#include "../../lib/util.h"

static int
fail(char *err, size_t errsz, const char *why)
{
	snprintf(err, errsz, "%s", why);
	return -1;
}

/* Is name=... one of the '&'-separated parameters of q? */
static bool
has_param(const char *q, const char *name)
{
	size_t n = strlen(name);

	for (; q; q = strchr(q, '&') ? strchr(q, '&') + 1 : NULL)
		if (strncmp(q, name, n) == 0 && q[n] == '=')
			return true;
	return false;
}

/* A SAS is a query string: printable, no blanks, no fragment, with a signature. */
static int
sas_check(const char *s, char *err, size_t errsz)
{
	const char *c;

	for (c = s; *c; c++)
		if (*c <= ' ' || *c == 0x7f || *c == '#' || *c == '?' || *c == ';')
			return fail(err, errsz, "the SAS token holds a character a URL query cannot");
	if (!has_param(s, "sig"))
		return fail(err, errsz, "the SAS token has no sig= parameter");
	return 0;
}

/*
 * s in base64 decoded into a new buffer (*out, *outlen), the caller's to
 * wipe and free. Returns -1 when s is not base64.
 */
static int
b64_decode(const char *s, unsigned char **out, size_t *outlen)
{
	size_t n = strlen(s), pad = 0;
	int len;

	if (n == 0 || n % 4 != 0 || n > 4096 || strspn(s,
			"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") != n)
		return -1;
	while (pad < 2 && s[n - 1 - pad] == '=')
		pad++;
	if (strchr(s, '=') != s + n - pad)
		return -1;
	*out = xmalloc(n / 4 * 3);
	if ((len = EVP_DecodeBlock(*out, (const unsigned char *) s, (int) n)) < 0 || (size_t) len < pad) {
		free(*out);
		return -1;
	}
	*outlen = (size_t) len - pad;	/* EVP_DecodeBlock counts the padding as zero bytes */
	return 0;
}

static int
parse_connection_string(char *s, struct azs_cred *c, char *err, size_t errsz)
{
	char *part, *save = NULL, *eq, *key = NULL, *sas = NULL;
	unsigned char *raw;
	size_t rawlen;

	for (part = strtok_r(s, ";", &save); part; part = strtok_r(NULL, ";", &save)) {
		while (isspace((unsigned char) *part))
			part++;
		if (!*part)
			continue;
		if (!(eq = strchr(part, '=')))
			return fail(err, errsz, "neither a connection string (NAME=VALUE;...) nor a SAS token (sv=...&sig=...)");
		*eq = '\0';
		if (strcasecmp(part, "AccountName") == 0) {
			free(c->account);
			c->account = xstrdup(eq + 1);
		} else if (strcasecmp(part, "AccountKey") == 0)
			key = eq + 1;
		else if (strcasecmp(part, "SharedAccessSignature") == 0)
			sas = eq + 1;
	}
	if (key) {
		if (!c->account || !*c->account)
			return fail(err, errsz, "the connection string has an AccountKey but no AccountName");
		if (b64_decode(key, &raw, &rawlen) < 0)
			return fail(err, errsz, "the connection string's AccountKey is not base64");
		hmac_init(&c->key, raw, rawlen);
		explicit_bzero(raw, rawlen);
		free(raw);
		return 0;
	}
	if (!sas)
		return fail(err, errsz, "the connection string has neither an AccountKey nor a SharedAccessSignature");
	if (*sas == '?')
		sas++;
	if (sas_check(sas, err, errsz) < 0)
		return -1;
	c->sas = xstrdup(sas);
	return 0;
}

int
azs_cred_parse(const char *s, struct azs_cred *c, char *err, size_t errsz)
{
	char *copy;
	int rc;

	memset(c, 0, sizeof(*c));
	if (*s == '?' || strncmp(s, "sv=", 3) == 0 || (!strchr(s, ';') && has_param(s, "sig"))) {
		s += *s == '?';
		if (sas_check(s, err, errsz) < 0)
			return -1;
		c->sas = xstrdup(s);
		return 0;
	}
	copy = xstrdup(s);
	rc = parse_connection_string(copy, c, err, errsz);
	secret_free(copy);
	if (rc < 0)
		azs_cred_free(c);
	return rc;
}

void
azs_cred_free(struct azs_cred *c)
{
	free(c->account);
	hmac_free(&c->key);
	secret_free(c->sas);
	memset(c, 0, sizeof(*c));
}

void
azs_date(int64_t t, char out[AZS_DATE_LEN])
{
	static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug",
		"Sep", "Oct", "Nov", "Dec"};
	time_t tt = (time_t) t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	snprintf(out, AZS_DATE_LEN, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday],
			tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static int
hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch = tolower(ch);
	return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* s[0..n) URL-decoded (%XX) into a new string; lower: ASCII lowercased too. */
static char *
url_decode(const char *s, size_t n, bool lower)
{
	char *out = xmalloc(n + 1), *o = out;
	size_t i;

	for (i = 0; i < n; i++) {
		if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
			*o++ = (char) (hexval(s[i + 1]) << 4 | hexval(s[i + 2]));
			i += 2;
		} else
			*o++ = s[i];
		if (lower)
			o[-1] = (char) tolower((unsigned char) o[-1]);
	}
	*o = '\0';
	return out;
}

struct param {
	char *name, *value;
};

static int
param_cmp(const void *a, const void *b)
{
	const struct param *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : strcmp(x->value, y->value);
}

void
azs_canonical_resource(struct buf *b, const char *account, const char *path, const char *query)
{
	struct param *ps = NULL;
	size_t n = 0, i;
	const char *q, *end, *eq;

	buf_putc(b, '/');
	buf_puts(b, account);
	buf_puts(b, path);
	for (q = query; q && *q; q = *end ? end + 1 : end) {
		end = q + strcspn(q, "&");
		if (end == q)
			continue;
		eq = memchr(q, '=', (size_t) (end - q));
		ps = xrealloc(ps, (n + 1) * sizeof(*ps));
		ps[n].name = url_decode(q, (size_t) ((eq ? eq : end) - q), true);
		ps[n].value = eq ? url_decode(eq + 1, (size_t) (end - eq - 1), false) : xstrdup("");
		n++;
	}
	if (n)	/* qsort's base may not be NULL, even for no elements */
		qsort(ps, n, sizeof(*ps), param_cmp);
	for (i = 0; i < n; i++) {
		if (i == 0 || strcmp(ps[i].name, ps[i - 1].name) != 0)
			buf_printf(b, "\n%s:", ps[i].name);
		else
			buf_putc(b, ',');
		buf_puts(b, ps[i].value);
	}
	for (i = 0; i < n; i++) {
		free(ps[i].name);
		free(ps[i].value);
	}
	free(ps);
}

struct hdr {
	char *name;				/* lowercased */
	const char *value;		/* trimmed: value[0..vlen) */
	size_t vlen;
};

static int
hdr_cmp(const void *a, const void *b)
{
	return strcmp(((const struct hdr *) a)->name, ((const struct hdr *) b)->name);
}

void
azs_string_to_sign(struct buf *b, const char *verb, size_t content_length,
		const char *content_type, const char *const *hdrs, size_t nhdrs, const char *resource)
{
	struct hdr *hs = xcalloc(nhdrs ? nhdrs : 1, sizeof(*hs));
	size_t i, n = 0, nl;
	const char *colon, *v;
	char *lc;

	buf_puts(b, verb);
	buf_putlit(b, "\n\n\n");	/* Content-Encoding, Content-Language */
	if (content_length)
		buf_printf(b, "%zu", content_length);
	buf_putlit(b, "\n\n");		/* Content-MD5 */
	buf_puts(b, content_type ? content_type : "");
	/* Date (x-ms-date is sent instead), If-Modified-Since, If-Match, If-None-Match, If-Unmodified-Since, Range */
	buf_putlit(b, "\n\n\n\n\n\n\n");
	for (i = 0; i < nhdrs; i++) {
		if (strncasecmp(hdrs[i], "x-ms-", 5) != 0 || !(colon = strchr(hdrs[i], ':')))
			continue;
		nl = (size_t) (colon - hdrs[i]);
		hs[n].name = xstrndup(hdrs[i], nl);
		for (lc = hs[n].name; *lc; lc++)
			*lc = (char) tolower((unsigned char) *lc);
		for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
			;
		hs[n].value = v;
		hs[n].vlen = strlen(v);
		while (hs[n].vlen && (v[hs[n].vlen - 1] == ' ' || v[hs[n].vlen - 1] == '\t'))
			hs[n].vlen--;
		n++;
	}
	qsort(hs, n, sizeof(*hs), hdr_cmp);
	for (i = 0; i < n; i++) {
		buf_puts(b, hs[i].name);
		buf_putc(b, ':');
		buf_put(b, hs[i].value, hs[i].vlen);
		buf_putc(b, '\n');
		free(hs[i].name);
	}
	free(hs);
	buf_puts(b, resource);
}

void
azs_sign(const struct hmac *key, const char *s, size_t n, char out[AZS_SIG_LEN])
{
	unsigned char mac[SHA256_LEN];

	hmac_sha256(key, s, n, mac);
	EVP_EncodeBlock((unsigned char *) out, mac, SHA256_LEN);
}
