/*
 * Unit tests of cdc-publish/auth/sigv4.c against AWS's published vectors:
 * the signing-key example of "Derive a signing key for Signature Version 4"
 * (iam, 20120215), the IAM ListUsers example of "Create a signed AWS API
 * request", and three cases of the aws-sig-v4-test-suite (get-vanilla,
 * post-vanilla, post-x-www-form-urlencoded; AKIDEXAMPLE, 20150830T123600Z,
 * us-east-1, service "service"). Each checks the canonical request's hash
 * and the signature exactly.
 *
 * No published vector uses service "sqs", so one SQS request (the JSON
 * protocol's SendMessageBatch with a session token, at PGCDC_NOW=1800000000)
 * was signed independently with Python's hmac and hashlib:
 *
 *   import hashlib, hmac, time
 *   def h(k, m): return hmac.new(k, m.encode(), hashlib.sha256).digest()
 *   amz = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(1800000000))
 *   hdrs = {"content-type": "application/x-amz-json-1.0",
 *           "host": "sqs.us-east-1.amazonaws.com", "x-amz-date": amz,
 *           "x-amz-security-token": "FQoGZXIvYXdzEXAMPLETOKEN",
 *           "x-amz-target": "AmazonSQS.SendMessageBatch"}
 *   names = sorted(hdrs)
 *   creq = ("POST\n/\n\n" + "".join(f"{n}:{hdrs[n]}\n" for n in names) + "\n"
 *           + ";".join(names) + "\n" + hashlib.sha256(SQS_BODY).hexdigest())
 *   sts = (f"AWS4-HMAC-SHA256\n{amz}\n{amz[:8]}/us-east-1/sqs/aws4_request\n"
 *          + hashlib.sha256(creq.encode()).hexdigest())
 *   k = h(h(h(h(b"AWS4" + SECRET, amz[:8]), "us-east-1"), "sqs"), "aws4_request")
 *   print(hashlib.sha256(creq.encode()).hexdigest(),
 *         hmac.new(k, sts.encode(), hashlib.sha256).hexdigest())
 *
 * Then the shared credentials file reader.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../cdc-publish/auth/sigv4.h"
#include "../../lib/buf.h"
#include "../../lib/sha256.h"

static int passed, failed;

static void
check_str(const char *name, const char *got, const char *want)
{
	if (got && want && strcmp(got, want) == 0) {
		passed++;
		printf("ok - %s\n", name);
		return;
	}
	failed++;
	printf("not ok - %s\n#   got \"%s\"\n#   want \"%s\"\n", name, got ? got : "(null)", want ? want : "(null)");
}

static void
check_int(const char *name, long got, long want)
{
	char g[32], w[32];

	snprintf(g, sizeof(g), "%ld", got);
	snprintf(w, sizeof(w), "%ld", want);
	check_str(name, g, w);
}

static const char SECRET[] = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
static const struct sigv4_creds EXAMPLE = {"AKIDEXAMPLE", (char *) SECRET, NULL};
#define T_20150830 1440938160	/* 20150830T123600Z */

static void
hex(const unsigned char *p, size_t n, char *out)
{
	hex_encode(p, n, out);
	out[2 * n] = '\0';
}

/* Check rq's canonical request hash, signature and Authorization value. */
static void
check_signed(const char *name, const struct sigv4_request *rq, const struct sigv4_creds *c,
		const char *creq_hash, const char *sig, const char *authz)
{
	struct buf creq = {0}, out = {0};
	struct sha256 s;
	unsigned char h[SHA256_LEN];
	char got[2 * SHA256_LEN + 1], what[128], gsig[65];

	sigv4_canonical_request(rq, &creq);
	sha256_init(&s);
	sha256_update(&s, creq.data, creq.len);
	sha256_final(&s, h);
	hex(h, sizeof(h), got);
	snprintf(what, sizeof(what), "%s: canonical request hash", name);
	check_str(what, got, creq_hash);
	sigv4_authorization(rq, c, &out, gsig);
	snprintf(what, sizeof(what), "%s: signature", name);
	check_str(what, gsig, sig);
	buf_putc(&out, '\0');
	snprintf(what, sizeof(what), "%s: Authorization", name);
	check_str(what, out.data, authz);
	buf_free(&creq);
	buf_free(&out);
}

static void
test_dates_and_keys(void)
{
	unsigned char k[32];
	char h[65], d[17];

	sigv4_amz_date(T_20150830, d);
	check_str("amz date of 1440938160", d, "20150830T123600Z");
	sigv4_amz_date(1800000000, d);
	check_str("amz date of 1800000000", d, "20270115T080000Z");
	sigv4_signing_key(SECRET, "20120215", "us-east-1", "iam", k);
	hex(k, sizeof(k), h);
	check_str("signing key: AWS docs example (20120215, us-east-1, iam)", h,
			"f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
	sigv4_signing_key(SECRET, "20150830", "us-east-1", "iam", k);
	hex(k, sizeof(k), h);
	check_str("signing key: IAM ListUsers example (20150830)", h,
			"c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9");
}

static void
test_iam_list_users(void)
{
	const struct sigv4_header hs[] = {
		{"Host", "iam.amazonaws.com"},
		{"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"},
		{"X-Amz-Date", "20150830T123600Z"},
	};
	struct sigv4_request rq = {"GET", "/", "Action=ListUsers&Version=2010-05-08", hs, 3, "", 0,
		"us-east-1", "iam", T_20150830};
	struct buf creq = {0};

	sigv4_canonical_request(&rq, &creq);
	buf_putc(&creq, '\0');
	check_str("IAM ListUsers: canonical request", creq.data,
			"GET\n/\nAction=ListUsers&Version=2010-05-08\n"
			"content-type:application/x-www-form-urlencoded; charset=utf-8\n"
			"host:iam.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
			"content-type;host;x-amz-date\n"
			"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	buf_free(&creq);
	check_signed("IAM ListUsers", &rq, &EXAMPLE,
			"f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59",
			"5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7",
			"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, "
			"SignedHeaders=content-type;host;x-amz-date, "
			"Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7");
}

static void
test_suite(void)
{
	const struct sigv4_header vanilla[] = {
		{"Host", "example.amazonaws.com"},
		{"X-Amz-Date", "20150830T123600Z"},
	};
	const struct sigv4_header form[] = {
		{"Content-Type", "application/x-www-form-urlencoded"},
		{"Host", "example.amazonaws.com"},
		{"X-Amz-Date", "20150830T123600Z"},
	};
	struct sigv4_request get = {"GET", "/", "", vanilla, 2, NULL, 0, "us-east-1", "service", T_20150830};
	struct sigv4_request post = get, post_form = post;
	const char *pre = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, ";

	char want[256];

	snprintf(want, sizeof(want), "%sSignedHeaders=host;x-amz-date, Signature=%s", pre,
			"5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
	check_signed("get-vanilla", &get, &EXAMPLE,
			"bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
			"5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31", want);
	post.method = "POST";
	snprintf(want, sizeof(want), "%sSignedHeaders=host;x-amz-date, Signature=%s", pre,
			"5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b");
	check_signed("post-vanilla", &post, &EXAMPLE,
			"553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87",
			"5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b", want);
	post_form.method = "POST";
	post_form.headers = form;
	post_form.nheaders = 3;
	post_form.body = "Param1=value1";
	post_form.body_len = 13;
	snprintf(want, sizeof(want), "%sSignedHeaders=content-type;host;x-amz-date, Signature=%s", pre,
			"ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a");
	check_signed("post-x-www-form-urlencoded", &post_form, &EXAMPLE,
			"42a5e5bb34198acb3e84da4f085bb7927f2bc277ca766e6d19c73c2154021281",
			"ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a", want);
}

/* What cdc-publish --target sqs signs (headers in the order it sends them), checked against Python. */
static void
test_sqs(void)
{
	static const char body[] = "{\"QueueUrl\":\"https://sqs.us-east-1.amazonaws.com/123456789012/orders.fifo\","
		"\"Entries\":[{\"Id\":\"0\",\"MessageBody\":\"{\\\"op\\\":\\\"insert\\\",\\\"id\\\":\\\"0/16B3748:0\\\"}\","
		"\"MessageGroupId\":\"all\",\"MessageDeduplicationId\":\"0/16B3748:0\"}]}";
	const struct sigv4_header hs[] = {
		{"Host", "sqs.us-east-1.amazonaws.com"},
		{"X-Amz-Date", "20270115T080000Z"},
		{"Content-Type", "application/x-amz-json-1.0"},
		{"X-Amz-Target", "AmazonSQS.SendMessageBatch"},
		{"X-Amz-Security-Token", "FQoGZXIvYXdzEXAMPLETOKEN"},
	};
	struct sigv4_creds c = {"AKIDEXAMPLE", (char *) SECRET, "FQoGZXIvYXdzEXAMPLETOKEN"};
	struct sigv4_request rq = {"POST", "/", "", hs, 5, body, sizeof(body) - 1, "us-east-1", "sqs", 1800000000};

	check_signed("SQS SendMessageBatch with a session token (Python's hmac)", &rq, &c,
			"6e07ae3dac858ca64288547351f550c41869050e2847b0ef254584aa4ce8298e",
			"690b2ec8050f3992528035ec4f5184b767b9de038ce7b5cc981ff7f38f153b9d",
			"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20270115/us-east-1/sqs/aws4_request, "
			"SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, "
			"Signature=690b2ec8050f3992528035ec4f5184b767b9de038ce7b5cc981ff7f38f153b9d");
	/* blanks around a value and runs of spaces inside do not change the signature */
	{
		const struct sigv4_header sp[] = {
			{"host", "  sqs.us-east-1.amazonaws.com "},
			{"x-amz-date", "20270115T080000Z"},
			{"content-type", "application/x-amz-json-1.0\t"},
			{"x-amz-target", "AmazonSQS.SendMessageBatch"},
			{"x-amz-security-token", " FQoGZXIvYXdzEXAMPLETOKEN"},
		};
		struct buf out = {0};
		char sig[65];

		rq.headers = sp;
		sigv4_authorization(&rq, &c, &out, sig);
		check_str("header names in any case, values trimmed", sig,
				"690b2ec8050f3992528035ec4f5184b767b9de038ce7b5cc981ff7f38f153b9d");
		buf_free(&out);
	}
}

static void
test_credentials(void)
{
	static const char file[] =
		"# keys\n"
		"[default]\n"
		"aws_access_key_id = AKIDDEFAULT\n"
		"aws_secret_access_key=secret/default+key \n"
		"\n"
		"[profile ci]\r\n"
		"; a comment\r\n"
		"aws_access_key_id=AKIDCI\r\n"
		"aws_secret_access_key = ci-secret\r\n"
		"aws_session_token = tok=en==\r\n"
		"[half]\n"
		"aws_access_key_id=AKIDHALF\n"
		"[empty]\n"
		"aws_access_key_id=\n"
		"aws_secret_access_key=x\n";
	struct sigv4_creds c = {0};
	char err[128] = "";

	check_int("credentials: [default] read", sigv4_parse_credentials(file, "default", &c, err, sizeof(err)), 0);
	check_str("credentials: [default] key id", c.access_key, "AKIDDEFAULT");
	check_str("credentials: [default] secret, trimmed", c.secret_key, "secret/default+key");
	check_int("credentials: [default] has no token", c.token == NULL, 1);
	sigv4_creds_free(&c);
	check_int("credentials: [profile ci] read", sigv4_parse_credentials(file, "ci", &c, err, sizeof(err)), 0);
	check_str("credentials: CRLF lines, key id", c.access_key, "AKIDCI");
	check_str("credentials: the token, '=' inside kept", c.token, "tok=en==");
	sigv4_creds_free(&c);
	check_int("credentials: no such profile", sigv4_parse_credentials(file, "prod", &c, err, sizeof(err)), -1);
	check_str("credentials: no such profile, why", err, "no [prod] section");
	check_int("credentials: a profile without its secret",
			sigv4_parse_credentials(file, "half", &c, err, sizeof(err)), -1);
	check_str("credentials: a profile without its secret, why", err, "no aws_secret_access_key in [half]");
	check_int("credentials: an empty key id", sigv4_parse_credentials(file, "empty", &c, err, sizeof(err)), -1);
	check_str("credentials: an empty key id, why", err, "no aws_access_key_id in [empty]");
	check_int("credentials: nothing filled on failure", c.access_key == NULL && c.secret_key == NULL, 1);
}

int
main(void)
{
	test_dates_and_keys();
	test_iam_list_users();
	test_suite();
	test_sqs();
	test_credentials();
	printf("# %d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
