/*
 * AWS Signature Version 4 (docs.aws.amazon.com, "Create a signed AWS API
 * request"): a canonical request, its hash in a string to sign, a key
 * derived from the secret for one day, region and service, and the HMAC.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "sigv4.h"
#include "../../lib/sha256.h"
#include "../../lib/util.h"

void
sigv4_amz_date(int64_t t, char out[17])
{
	time_t tt = (time_t) t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

static void
hmac_once(const void *key, size_t keylen, const char *data, unsigned char out[SHA256_LEN])
{
	struct hmac h;

	hmac_init(&h, key, keylen);
	hmac_sha256(&h, data, strlen(data), out);
	hmac_free(&h);
}

void
sigv4_signing_key(const char *secret, const char *date8, const char *region,
		const char *service, unsigned char out[32])
{
	size_t n = strlen(secret);
	char *k = xmalloc(n + 5);
	unsigned char a[SHA256_LEN], b[SHA256_LEN];

	memcpy(k, "AWS4", 4);
	memcpy(k + 4, secret, n + 1);
	hmac_once(k, n + 4, date8, a);
	hmac_once(a, sizeof(a), region, b);
	hmac_once(b, sizeof(b), service, a);
	hmac_once(a, sizeof(a), "aws4_request", out);
	explicit_bzero(k, n + 4);
	explicit_bzero(a, sizeof(a));
	explicit_bzero(b, sizeof(b));
	free(k);
}

/* The headers' indexes in order of their lowercased names; returns how many (at most SIGV4_MAX_HEADERS). */
static size_t
sorted_headers(const struct sigv4_request *rq, size_t idx[SIGV4_MAX_HEADERS])
{
	size_t i, j, n = rq->nheaders < SIGV4_MAX_HEADERS ? rq->nheaders : SIGV4_MAX_HEADERS;

	for (i = 0; i < n; i++) {
		for (j = i; j > 0 && strcasecmp(rq->headers[idx[j - 1]].name, rq->headers[i].name) > 0; j--)
			idx[j] = idx[j - 1];
		idx[j] = i;
	}
	return n;
}

static void
put_lower(struct buf *b, const char *s)
{
	for (; *s; s++)
		buf_putc(b, (char) tolower((unsigned char) *s));
}

/* A header value as signed: no blanks at either end, a run of spaces inside as one. */
static void
put_trimmed(struct buf *b, const char *s)
{
	const char *end = s + strlen(s);

	while (*s == ' ' || *s == '\t')
		s++;
	while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	for (; s < end; s++)
		if (*s != ' ' || s[-1] != ' ')
			buf_putc(b, *s);
}

static void
put_signed_headers(struct buf *b, const struct sigv4_request *rq)
{
	size_t idx[SIGV4_MAX_HEADERS], i, n = sorted_headers(rq, idx);

	for (i = 0; i < n; i++) {
		if (i)
			buf_putc(b, ';');
		put_lower(b, rq->headers[idx[i]].name);
	}
}

static void
put_sha256_hex(struct buf *b, const void *p, size_t n)
{
	struct sha256 c;
	unsigned char h[SHA256_LEN];
	char hex[2 * SHA256_LEN];

	sha256_init(&c);
	sha256_update(&c, p, n);
	sha256_final(&c, h);
	hex_encode(h, sizeof(h), hex);
	buf_put(b, hex, sizeof(hex));
}

void
sigv4_canonical_request(const struct sigv4_request *rq, struct buf *out)
{
	size_t idx[SIGV4_MAX_HEADERS], i, n = sorted_headers(rq, idx);

	buf_printf(out, "%s\n%s\n%s\n", rq->method, rq->path, rq->query ? rq->query : "");
	for (i = 0; i < n; i++) {
		put_lower(out, rq->headers[idx[i]].name);
		buf_putc(out, ':');
		put_trimmed(out, rq->headers[idx[i]].value);
		buf_putc(out, '\n');
	}
	buf_putc(out, '\n');
	put_signed_headers(out, rq);
	buf_putc(out, '\n');
	put_sha256_hex(out, rq->body ? rq->body : "", rq->body_len);
}

void
sigv4_authorization(const struct sigv4_request *rq, const struct sigv4_creds *c,
		struct buf *out, char *sig)
{
	struct buf creq = {0}, sts = {0};
	unsigned char key[SHA256_LEN], mac[SHA256_LEN];
	char amz[17], date8[9], hex[2 * SHA256_LEN + 1];
	struct hmac h;

	sigv4_amz_date(rq->time, amz);
	memcpy(date8, amz, 8);
	date8[8] = '\0';
	sigv4_canonical_request(rq, &creq);
	buf_printf(&sts, "AWS4-HMAC-SHA256\n%s\n%s/%s/%s/aws4_request\n", amz, date8, rq->region,
			rq->service);
	put_sha256_hex(&sts, creq.data, creq.len);
	sigv4_signing_key(c->secret_key, date8, rq->region, rq->service, key);
	hmac_init(&h, key, sizeof(key));
	hmac_sha256(&h, sts.data, sts.len, mac);
	hmac_free(&h);
	explicit_bzero(key, sizeof(key));
	hex_encode(mac, sizeof(mac), hex);
	hex[2 * SHA256_LEN] = '\0';
	buf_printf(out, "AWS4-HMAC-SHA256 Credential=%s/%s/%s/%s/aws4_request, SignedHeaders=",
			c->access_key, date8, rq->region, rq->service);
	put_signed_headers(out, rq);
	buf_printf(out, ", Signature=%s", hex);
	if (sig)
		memcpy(sig, hex, sizeof(hex));
	buf_free(&creq);
	buf_free(&sts);
}

/* ------------------------------------------------------------- credentials file */

/* s[0..n) without blanks at either end: sets *start and returns the length. */
static size_t
trim(const char *s, size_t n, const char **start)
{
	while (n > 0 && isspace((unsigned char) *s))
		s++, n--;
	while (n > 0 && isspace((unsigned char) s[n - 1]))
		n--;
	*start = s;
	return n;
}

/* Is the section header's name (between the brackets) profile's? "[NAME]" or "[profile NAME]". */
static bool
is_section(const char *s, size_t n, const char *profile)
{
	size_t pn = strlen(profile);

	n = trim(s, n, &s);
	if (n > 8 && strncmp(s, "profile ", 8) == 0)
		n = trim(s + 8, n - 8, &s);
	return n == pn && memcmp(s, profile, n) == 0;
}

int
sigv4_parse_credentials(const char *text, const char *profile, struct sigv4_creds *c,
		char *err, size_t errsz)
{
	static const char *const keys[] = {"aws_access_key_id", "aws_secret_access_key", "aws_session_token"};
	char *val[3] = {NULL, NULL, NULL};
	const char *line = text, *eol, *s, *eq;
	bool in = false, found = false;
	size_t n, k, i;

	for (; *line; line = *eol ? eol + 1 : eol) {
		eol = line + strcspn(line, "\n");
		n = trim(line, (size_t) (eol - line), &s);
		if (n == 0 || *s == '#' || *s == ';')
			continue;
		if (*s == '[') {
			in = s[n - 1] == ']' && is_section(s + 1, n - 2, profile);
			found |= in;
			continue;
		}
		if (!in || !(eq = memchr(s, '=', n)))
			continue;
		k = trim(s, (size_t) (eq - s), &s);
		for (i = 0; i < 3; i++)
			if (strlen(keys[i]) == k && strncasecmp(s, keys[i], k) == 0) {
				secret_free(val[i]);
				n = trim(eq + 1, (size_t) (eol - eq - 1), &s);
				val[i] = xstrndup(s, n);
			}
	}
	if (!found || !val[0] || !*val[0] || !val[1] || !*val[1]) {
		if (!found)
			snprintf(err, errsz, "no [%s] section", profile);
		else
			snprintf(err, errsz, "no %s in [%s]", val[0] && *val[0] ? keys[1] : keys[0], profile);
		for (i = 0; i < 3; i++)
			secret_free(val[i]);
		return -1;
	}
	if (val[2] && !*val[2]) {
		free(val[2]);
		val[2] = NULL;
	}
	c->access_key = val[0];
	c->secret_key = val[1];
	c->token = val[2];
	return 0;
}

void
sigv4_creds_free(struct sigv4_creds *c)
{
	secret_free(c->access_key);
	secret_free(c->secret_key);
	secret_free(c->token);
	c->access_key = c->secret_key = c->token = NULL;
}
