/*
 * Unit tests for cdc-publish/auth/azstorage.c: Azure Storage SharedKey
 * strings to sign and signatures against the vectors of the reference
 * (computed with the public Azurite key, the algorithm verified live
 * against Azurite), dates, canonicalized resources, connection strings
 * and SAS tokens.
 *
 * One line per check, "ok - NAME" or "not ok - NAME", then
 * "# N passed, M failed". Exit status 1 when any check failed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../cdc-publish/auth/azstorage.h"
#include "../../lib/buf.h"

static int passed, failed;

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
	printf("%s - %s\n", ok ? "ok" : "not ok", name);
	if (ok)
		passed++;
	else
		failed++;
	return ok;
}

static void
check_mem(const char *name, const char *got, size_t gotn, const char *want)
{
	size_t wantn = strlen(want);

	if (report(name, got && gotn == wantn && memcmp(got, want, wantn) == 0))
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
	check_mem(name, got, got ? strlen(got) : 0, want);
}

#define CHECK_STR(name, got, want) check_str((name), (got), (want))
#define CHECK_BUF(name, b, want) check_mem((name), (b)->data, (b)->len, (want))
#define CHECK(name, cond) do { if (!report((name), (cond))) printf("#   want %s\n", #cond); } while (0)

#define KEY "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
#define ACCOUNT "devstoreaccount1"
#define CONN "DefaultEndpointsProtocol=http;AccountName=" ACCOUNT ";AccountKey=" KEY \
	";QueueEndpoint=http://127.0.0.1:10001/" ACCOUNT ";"
#define VECTOR_TIME 1795500000	/* Tue, 24 Nov 2026 06:00:00 GMT */
#define BODY_LEN 68				/* <QueueMessage><MessageText>eyJsc24iOjF9</MessageText></QueueMessage> */

static const char *const vector_headers[] = {
	"Content-Type: application/xml",
	"x-ms-version: 2021-12-02",
	"Expect:",
	"x-ms-date: Tue, 24 Nov 2026 06:00:00 GMT",
};

/* The SharedKey signature of the reference's Put Message under resource. */
static void
sign_vector(const char *name, const struct azs_cred *c, const char *path, const char *sts_want,
		const char *sig_want)
{
	struct buf res = {0}, sts = {0};
	char sig[AZS_SIG_LEN], n[160];

	azs_canonical_resource(&res, ACCOUNT, path, NULL);
	buf_putc(&res, '\0');
	azs_string_to_sign(&sts, "POST", BODY_LEN, "application/xml", vector_headers, 4, res.data);
	snprintf(n, sizeof(n), "%s: StringToSign", name);
	CHECK_BUF(n, &sts, sts_want);
	azs_sign(&c->key, sts.data, sts.len, sig);
	snprintf(n, sizeof(n), "%s: signature", name);
	CHECK_STR(n, sig, sig_want);
	buf_free(&res);
	buf_free(&sts);
}

static void
test_vectors(void)
{
	struct azs_cred c;
	char err[256], sig[AZS_SIG_LEN];
	const char *sas_sts = "a\n\n2026-11-24T07:00:00Z\n/queue/devstoreaccount1/cdc-events\n\n\nhttps,http\n2021-12-02";

	CHECK("connection string with the Azurite key parses", azs_cred_parse(CONN, &c, err, sizeof(err)) == 0);
	CHECK_STR("connection string: AccountName", c.account, ACCOUNT);
	CHECK("connection string: a key, no SAS", c.key.ctx != NULL && c.sas == NULL);
	/* the service puts the account twice in a path-style (emulator) resource: once for the account, once from the path */
	sign_vector("SharedKey path-style (emulator)", &c, "/" ACCOUNT "/cdc-events/messages",
			"POST\n\n\n68\n\napplication/xml\n\n\n\n\n\n\nx-ms-date:Tue, 24 Nov 2026 06:00:00 GMT\n"
			"x-ms-version:2021-12-02\n/devstoreaccount1/devstoreaccount1/cdc-events/messages",
			"IKo6acrcsoYNPBXV8+GblbP517RlY9JpkQxb6d157I8=");
	sign_vector("SharedKey host-style (ACCOUNT.queue.core.windows.net)", &c, "/cdc-events/messages",
			"POST\n\n\n68\n\napplication/xml\n\n\n\n\n\n\nx-ms-date:Tue, 24 Nov 2026 06:00:00 GMT\n"
			"x-ms-version:2021-12-02\n/devstoreaccount1/cdc-events/messages",
			"t0hklHByP+w8P0Y2ECXsxqicFQrqb4axBynWAe6TrFE=");
	/* the same key signs a service SAS's string (sp=a, se, resource, spr, sv) */
	azs_sign(&c.key, sas_sts, strlen(sas_sts), sig);
	CHECK_STR("service SAS string to sign under the decoded key", sig, "FYhrPrSeiCiDZrYutz8A4IW8GaHwwMIWrOKmNfTOrZM=");
	azs_cred_free(&c);
	CHECK("azs_cred_free wipes and zeroes", c.account == NULL && c.key.ctx == NULL && c.sas == NULL);
}

static void
test_string_to_sign(void)
{
	struct buf sts = {0};
	const char *hdrs[] = {
		"X-MS-Version:  2021-12-02 ",
		"Content-Type: application/xml",
		"x-ms-client-request-id: abc",
		"x-ms-date: Fri, 15 Jan 2027 08:00:00 GMT",
		"x-ms-meta-a-b: 2",
		"x-ms-meta-a: 1",
		"x-msnot: signed",
	};

	azs_string_to_sign(&sts, "POST", 0, NULL, hdrs, sizeof(hdrs) / sizeof(hdrs[0]), "/a/q/messages");
	/* empty Content-Length for 0; x-ms-* lowercased, trimmed, sorted by name ("x-ms-meta-a" before "x-ms-meta-a-b") */
	CHECK_BUF("StringToSign: no body, x-ms-* headers lowercased, trimmed, sorted by name", &sts,
			"POST\n\n\n\n\n\n\n\n\n\n\n\nx-ms-client-request-id:abc\nx-ms-date:Fri, 15 Jan 2027 08:00:00 GMT\n"
			"x-ms-meta-a:1\nx-ms-meta-a-b:2\nx-ms-version:2021-12-02\n/a/q/messages");
	buf_free(&sts);
}

static void
test_resource(void)
{
	struct buf b = {0};

	azs_canonical_resource(&b, "acct", "/q/messages", "");
	CHECK_BUF("resource: empty query adds nothing", &b, "/acct/q/messages");
	b.len = 0;
	azs_canonical_resource(&b, "acct", "/q/messages", "visibilitytimeout=0&MessageTTL=-1");
	CHECK_BUF("resource: parameters lowercased and sorted", &b,
			"/acct/q/messages\nmessagettl:-1\nvisibilitytimeout:0");
	b.len = 0;
	azs_canonical_resource(&b, "acct", "/q", "comp=list&include=b&include=a%2Cc&flag&prefix=x%20y");
	CHECK_BUF("resource: values URL-decoded, a repeated name's values sorted and joined by commas", &b,
			"/acct/q\ncomp:list\nflag:\ninclude:a,c,b\nprefix:x y");
	buf_free(&b);
}

static void
test_date(void)
{
	char d[AZS_DATE_LEN];

	azs_date(VECTOR_TIME, d);
	CHECK_STR("date: RFC 1123 of the vectors' time", d, "Tue, 24 Nov 2026 06:00:00 GMT");
	azs_date(1800000000, d);
	CHECK_STR("date: PGCDC_NOW=1800000000", d, "Fri, 15 Jan 2027 08:00:00 GMT");
	azs_date(951782400, d);
	CHECK_STR("date: a leap day, one-digit day padded", d, "Tue, 29 Feb 2000 00:00:00 GMT");
}

static void
test_parse(void)
{
	struct azs_cred c;
	char err[256];

	CHECK("SAS token sv=...", azs_cred_parse("sv=2021-12-02&se=2027-01-01T00%3A00%3A00Z&sp=a&sig=ab%2Bc%3D", &c, err, sizeof(err)) == 0);
	CHECK_STR("SAS token: kept as given", c.sas, "sv=2021-12-02&se=2027-01-01T00%3A00%3A00Z&sp=a&sig=ab%2Bc%3D");
	CHECK("SAS token: no account, no key", c.account == NULL && c.key.ctx == NULL);
	azs_cred_free(&c);
	CHECK("SAS token ?sv=...", azs_cred_parse("?sv=2021-12-02&sp=a&sig=x", &c, err, sizeof(err)) == 0);
	CHECK_STR("SAS token: the '?' dropped", c.sas, "sv=2021-12-02&sp=a&sig=x");
	azs_cred_free(&c);
	CHECK("SAS token in another order (se=...&sig=...&sv=...)", azs_cred_parse("se=2027&sp=a&sig=x&sv=2021-12-02", &c, err, sizeof(err)) == 0 && c.sas);
	azs_cred_free(&c);
	CHECK("connection string with SharedAccessSignature", azs_cred_parse(
			"QueueEndpoint=https://a.queue.core.windows.net/;SharedAccessSignature=sv=2021-12-02&ss=q&srt=o&sp=a&sig=y%3D",
			&c, err, sizeof(err)) == 0);
	CHECK_STR("connection string SAS: the SAS", c.sas, "sv=2021-12-02&ss=q&srt=o&sp=a&sig=y%3D");
	azs_cred_free(&c);
	CHECK("names are case-insensitive, blanks after ';' ignored",
			azs_cred_parse("accountname=a1; accountkey=" KEY, &c, err, sizeof(err)) == 0 && c.key.ctx &&
			strcmp(c.account, "a1") == 0);
	azs_cred_free(&c);

	CHECK("AccountKey not base64: refused", azs_cred_parse("AccountName=a;AccountKey=not*base64", &c, err, sizeof(err)) < 0);
	CHECK_STR("AccountKey not base64: why", err, "the connection string's AccountKey is not base64");
	CHECK("AccountKey with '=' inside: refused", azs_cred_parse("AccountName=a;AccountKey=ab=c", &c, err, sizeof(err)) < 0);
	CHECK("AccountKey without AccountName: refused", azs_cred_parse("AccountKey=" KEY, &c, err, sizeof(err)) < 0);
	CHECK_STR("AccountKey without AccountName: why", err, "the connection string has an AccountKey but no AccountName");
	CHECK("neither key nor SAS: refused", azs_cred_parse("AccountName=a;QueueEndpoint=http://x/", &c, err, sizeof(err)) < 0);
	CHECK("not a connection string: refused", azs_cred_parse("just-a-password", &c, err, sizeof(err)) < 0);
	CHECK("SAS without sig: refused", azs_cred_parse("sv=2021-12-02&sp=a", &c, err, sizeof(err)) < 0);
	CHECK_STR("SAS without sig: why", err, "the SAS token has no sig= parameter");
	CHECK("SAS with a blank: refused", azs_cred_parse("sv=2021-12-02&sp=a&sig=a b", &c, err, sizeof(err)) < 0);
	CHECK("an error message never quotes the secret", strstr(err, "a b") == NULL);
	CHECK("a refused parse leaves nothing held", c.account == NULL && c.key.ctx == NULL && c.sas == NULL);
}

int
main(void)
{
	test_vectors();
	test_string_to_sign();
	test_resource();
	test_date();
	test_parse();
	printf("# %d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
