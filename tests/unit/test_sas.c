/*
 * Unit tests for cdc-publish/auth/sas.c: the Service Bus / Event Hubs
 * shared access signature against the vector of the queue reference
 * (§3.3, computed independently with Python's hmac and openssl), the
 * key used as its string and not base64-decoded, the connection string,
 * and the token kept until it nears its expiry.
 *
 * "ok - NAME" / "not ok - NAME" lines, then "# N passed, M failed"; exit
 * status 1 when any check failed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "../../cdc-publish/auth/sas.h"
#include "../../lib/buf.h"
#include "../../lib/log.h"
#include "../../lib/sha256.h"
#include "../../lib/util.h"

static int passed, failed;

static void
check_str(const char *name, const char *got, const char *want)
{
	if (got && strcmp(got, want) == 0) {
		passed++;
		printf("ok - %s\n", name);
		return;
	}
	failed++;
	printf("not ok - %s\n#   got \"%s\"\n#   want \"%s\"\n", name, got ? got : "(null)", want);
}

static void
check(const char *name, int cond, const char *what)
{
	if (cond) {
		passed++;
		printf("ok - %s\n", name);
	} else {
		failed++;
		printf("not ok - %s\n#   want %s\n", name, what);
	}
}
#define CHECK(name, cond) check((name), (cond), #cond)

#define URI "https://contoso.servicebus.windows.net/cdc-events"
#define KEY "0123456789abcdefghijklmnopqrstuvwxyzABCDEF="
#define KEYNAME "RootManageSharedAccessKey"
#define SIG "ihQ2nrGS4d/Qq5qPXSjMFASTfVwadhKlJotPInGxk1Y="
#define TOKEN "SharedAccessSignature sr=https%3A%2F%2Fcontoso.servicebus.windows.net%2Fcdc-events" \
	"&sig=ihQ2nrGS4d%2FQq5qPXSjMFASTfVwadhKlJotPInGxk1Y%3D&se=1800000000&skn=RootManageSharedAccessKey"

static void
test_vector(void)
{
	char *tok = sas_token(URI, KEYNAME, KEY, 1800000000);

	check_str("sas: the reference vector, byte for byte", tok, TOKEN);
	secret_free(tok);
}

/*
 * The likely bug: the key base64-decoded first (Storage's and IoT Hub's
 * convention). That signature, computed here, must not be the one made.
 */
static void
test_not_decoded(void)
{
	const char *sts = "https%3A%2F%2Fcontoso.servicebus.windows.net%2Fcdc-events\n1800000000";
	unsigned char raw[64], mac[SHA256_LEN];
	struct buf sig = {0};
	struct hmac h;
	int n = EVP_DecodeBlock(raw, (const unsigned char *) KEY "=", (int) strlen(KEY "="));
	char *tok;

	CHECK("sas: the key decodes as base64 (lenient padding)", n == 33);
	n -= 2;	/* the "==" padding */
	hmac_init(&h, raw, (size_t) n);
	hmac_sha256(&h, sts, strlen(sts), mac);
	hmac_free(&h);
	buf_put_b64(&sig, mac, sizeof(mac));
	buf_putc(&sig, '\0');
	check_str("sas: negative: the signature with the key decoded", sig.data,
			"avcZuIZTuloCtDn9+lyHClFGNm2vfXQYFL0ltdLpYV8=");
	CHECK("sas: negative: it differs from the vector's", strcmp(sig.data, SIG) != 0);
	tok = sas_token(URI, KEYNAME, KEY, 1800000000);
	CHECK("sas: negative: the token is not signed with the decoded key",
			strstr(tok, "avcZuIZTuloCtDn9") == NULL && strstr(tok, "ihQ2nrGS4d") != NULL);
	secret_free(tok);
	buf_free(&sig);
}

static void
test_encode(void)
{
	struct buf b = {0};
	const char s[] = "http://127.0.0.1:8080/a b/c~d_e-f.g+h=&\xc3\xa9";

	sas_encode(&b, s, sizeof(s) - 1);
	buf_putc(&b, '\0');
	check_str("sas: encoding: unreserved kept, the rest %XX upper case", b.data,
			"http%3A%2F%2F127.0.0.1%3A8080%2Fa%20b%2Fc~d_e-f.g%2Bh%3D%26%C3%A9");
	buf_free(&b);
}

static void
test_parse(void)
{
	struct sas_key k;
	const char *why = NULL;

	CHECK("conn: a namespace connection string",
			sas_key_parse("Endpoint=sb://contoso.servicebus.windows.net/;SharedAccessKeyName="
				KEYNAME ";SharedAccessKey=" KEY, &k, &why) == 0);
	check_str("conn: Endpoint", k.endpoint, "sb://contoso.servicebus.windows.net/");
	check_str("conn: SharedAccessKeyName", k.key_name, KEYNAME);
	check_str("conn: SharedAccessKey keeps its '='", k.key, KEY);
	CHECK("conn: no EntityPath", k.entity == NULL);
	sas_key_free(&k);

	CHECK("conn: names in any case and order, blanks, a trailing ';', unknown names",
			sas_key_parse(" entitypath=hub;sharedaccesskey=a==; SHAREDACCESSKEYNAME=send;"
				"UseDevelopmentEmulator=true;Endpoint=sb://ns.servicebus.windows.net/;", &k, &why) == 0);
	check_str("conn: EntityPath", k.entity, "hub");
	check_str("conn: the key", k.key, "a==");
	check_str("conn: the key name", k.key_name, "send");
	sas_key_free(&k);

	why = NULL;
	CHECK("conn: a bare key is refused",
			sas_key_parse(KEY, &k, &why) == -1 && why && !strstr(why, "0123456789"));
	sas_key_free(&k);
	CHECK("conn: an empty key is refused",
			sas_key_parse("Endpoint=sb://a/;SharedAccessKeyName=n;SharedAccessKey=", &k, &why) == -1);
	sas_key_free(&k);
	CHECK("conn: an Endpoint that is not sb:// is refused",
			sas_key_parse("Endpoint=ftp://a/;SharedAccessKeyName=n;SharedAccessKey=k", &k, &why) == -1);
	sas_key_free(&k);
	CHECK("conn: an empty EntityPath is none",
			sas_key_parse("Endpoint=sb://a/;SharedAccessKeyName=n;SharedAccessKey=k;EntityPath=", &k, &why) == 0 &&
			k.entity == NULL);
	sas_key_free(&k);
}

/* The token is kept while more than SAS_RENEW seconds are left, then made anew. */
static void
test_cache(void)
{
	struct sas_key k = {.key_name = KEYNAME, .key = KEY};
	struct sas_cache c = {0};
	char *first;
	const char *t;

	t = sas_cache_get(&c, &k, URI, 1800000000 - SAS_LIFETIME);
	check_str("cache: the first token expires SAS_LIFETIME from now", t, TOKEN);
	first = xstrdup(t);
	t = sas_cache_get(&c, &k, URI, 1800000000 - SAS_RENEW - 1);
	check_str("cache: kept while more than SAS_RENEW seconds are left", t, first);
	t = sas_cache_get(&c, &k, URI, 1800000000 - SAS_RENEW);
	CHECK("cache: made anew when SAS_RENEW seconds are left", strcmp(t, first) != 0 &&
			c.expiry == 1800000000 - SAS_RENEW + SAS_LIFETIME && strstr(t, "&se=1800003300&"));
	t = sas_cache_get(&c, &k, URI, 1800000000 + 7200);
	CHECK("cache: a retry after the expiry gets a token valid from then",
			c.expiry == 1800000000 + 7200 + SAS_LIFETIME && strstr(t, "&se=1800010800&"));
	free(first);
	sas_cache_free(&c);
}

int
main(int argc, char **argv)
{
	(void) argc;
	log_init(argv[0]);
	setvbuf(stdout, NULL, _IOLBF, 0);
	test_vector();
	test_not_decoded();
	test_encode();
	test_parse();
	test_cache();
	printf("# %d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
