/*
 * Unit tests for cdc-publish/auth/jwt.c: the RS256 signature against RFC
 * 7515 Appendix A.2 (the published key and signature), base64url against
 * Appendix A.1, and a service-account assertion at a pinned time compared
 * byte for byte with one made independently (openssl dgst -sha256 -sign
 * with the test key below, the header and claims written by hand).
 *
 * One line per check, "ok - NAME" or "not ok - NAME", then
 * "# N passed, M failed". Exit status 1 when any check failed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include "../../cdc-publish/auth/jwt.h"
#include "../../lib/buf.h"
#include "../../lib/util.h"

static int passed, failed;

static void
check_str(const char *name, const char *got, size_t gotlen, const char *want)
{
	if (gotlen == strlen(want) && memcmp(got, want, gotlen) == 0) {
		passed++;
		printf("ok - %s\n", name);
		return;
	}
	failed++;
	printf("not ok - %s\n#   got  \"%.*s\"\n#   want \"%s\"\n", name, (int) gotlen, got ? got : "", want);
}

static void
check(const char *name, int cond)
{
	if (cond)
		passed++;
	else
		failed++;
	printf("%s - %s\n", cond ? "ok" : "not ok", name);
}

/* ---- RFC 7515 Appendix A.2: RS256 with the published RSA key ---- */

static const char *const rfc_n =
	"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddx"
	"HmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMs"
	"D1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSH"
	"SXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdV"
	"MTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8"
	"NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ";
static const char *const rfc_e = "AQAB";
static const char *const rfc_d =
	"Eq5xpGnNCivDflJsRQBXHx1hdR1k6Ulwe2JZD50LpXyWPEAeP88vLNO97I"
	"jlA7_GQ5sLKMgvfTeXZx9SE-7YwVol2NXOoAJe46sui395IW_GO-pWJ1O0"
	"BkTGoVEn2bKVRUCgu-GjBVaYLU6f3l9kJfFNS3E0QbVdxzubSu3Mkqzjkn"
	"439X0M_V51gfpRLI9JYanrC4D4qAdGcopV_0ZHHzQlBjudU2QvXt4ehNYT"
	"CBr6XCLQUShb1juUO1ZdiYoFaFQT5Tw8bGUl_x_jTj3ccPDVZFD9pIuhLh"
	"BOneufuBiB4cS98l2SR_RQyGWSeWjnczT0QU91p1DhOVRuOopznQ";
static const char *const rfc_p =
	"4BzEEOtIpmVdVEZNCqS7baC4crd0pqnRH_5IB3jw3bcxGn6QLvnEtfdUdi"
	"YrqBdss1l58BQ3KhooKeQTa9AB0Hw_Py5PJdTJNPY8cQn7ouZ2KKDcmnPG"
	"BY5t7yLc1QlQ5xHdwW1VhvKn-nXqhJTBgIPgtldC-KDV5z-y2XDwGUc";
static const char *const rfc_q =
	"uQPEfgmVtjL0Uyyx88GZFF1fOunH3-7cepKmtH4pxhtCoHqpWmT8YAmZxa"
	"ewHgHAjLYsp1ZSe7zFYHj7C6ul7TjeLQeZD_YwD66t62wDmpe_HlB-TnBA"
	"-njbglfIsRLtXlnDzQkv5dTltRJ11BKBBypeeF6689rjcJIDEz9RWdc";
static const char *const rfc_dp =
	"BwKfV3Akq5_MFZDFZCnW-wzl-CCo83WoZvnLQwCTeDv8uzluRSnm71I3Q"
	"CLdhrqE2e9YkxvuxdBfpT_PI7Yz-FOKnu1R6HsJeDCjn12Sk3vmAktV2zb"
	"34MCdy7cpdTh_YVr7tss2u6vneTwrA86rZtu5Mbr1C1XsmvkxHQAdYo0";
static const char *const rfc_dq =
	"h_96-mK1R_7glhsum81dZxjTnYynPbZpHziZjeeHcXYsXaaMwkOlODsWa"
	"7I9xXDoRwbKgB719rrmI2oKr6N3Do9U0ajaHF-NKJnwgjMd2w9cjz3_-ky"
	"NlxAr2v4IKhGNpmM5iIgOS1VZnOZ68m6_pbLBSp3nssTdlqvd0tIiTHU";
static const char *const rfc_qi =
	"IYd7DHOhrWvxkwPQsRM2tOgrjbcrfvtQJipd-DlcxyVuuM9sQLdgjVk2o"
	"y26F0EmpScGLq2MowX7fhd_QJQ3ydy5cY7YIBi87w93IKLEdfnbJtoOPLU"
	"W0ITrJReOgo1cq9SbsxYawBgfp_gh6A5603k2-ZQwVK0JKSHuLFkuQ3U";
/* the JWS Signing Input of A.2.1 and the signature of A.2.1's end */
static const char *const rfc_input =
	"eyJhbGciOiJSUzI1NiJ9"
	".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt"
	"cGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
static const char *const rfc_sig =
	"cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7"
	"AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4"
	"BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K"
	"0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqv"
	"hJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrB"
	"p0igcN_IoypGlUPQGe77Rw";

/* A JWK number (base64url, unpadded, big-endian) as a BIGNUM. */
static BIGNUM *
jwk_bn(const char *s)
{
	size_t n = strlen(s), i, pad = (4 - n % 4) % 4;
	unsigned char *in = xmalloc(n + pad + 1), *out = xmalloc(n + pad);
	BIGNUM *bn;
	int len;

	for (i = 0; i < n; i++)
		in[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
	memset(in + n, '=', pad);
	in[n + pad] = '\0';
	len = EVP_DecodeBlock(out, in, (int) (n + pad));
	bn = BN_bin2bn(out, len - (int) pad, NULL);
	free(in);
	free(out);
	return bn;
}

/* The RFC's key, built from its JWK numbers with OpenSSL 3's EVP_PKEY_fromdata. */
static EVP_PKEY *
rfc_key(void)
{
	const char *names[] = {OSSL_PKEY_PARAM_RSA_N, OSSL_PKEY_PARAM_RSA_E, OSSL_PKEY_PARAM_RSA_D,
		OSSL_PKEY_PARAM_RSA_FACTOR1, OSSL_PKEY_PARAM_RSA_FACTOR2, OSSL_PKEY_PARAM_RSA_EXPONENT1,
		OSSL_PKEY_PARAM_RSA_EXPONENT2, OSSL_PKEY_PARAM_RSA_COEFFICIENT1};
	const char *vals[] = {rfc_n, rfc_e, rfc_d, rfc_p, rfc_q, rfc_dp, rfc_dq, rfc_qi};
	BIGNUM *bn[8];
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params;
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	EVP_PKEY *pkey = NULL;
	int i;

	for (i = 0; i < 8; i++) {
		bn[i] = jwk_bn(vals[i]);
		OSSL_PARAM_BLD_push_BN(bld, names[i], bn[i]);
	}
	params = OSSL_PARAM_BLD_to_param(bld);
	if (EVP_PKEY_fromdata_init(ctx) != 1 || EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_KEYPAIR, params) != 1)
		pkey = NULL;
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	EVP_PKEY_CTX_free(ctx);
	for (i = 0; i < 8; i++)
		BN_free(bn[i]);
	return pkey;
}

static void
test_rfc7515(void)
{
	EVP_PKEY *pkey = rfc_key();
	struct buf b = {0};
	const char *hdr = "{\"typ\":\"JWT\",\r\n \"alg\":\"HS256\"}";
	const char *claims = "{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}";

	check("RFC 7515 A.2: the key built from its JWK", pkey != NULL);
	if (pkey) {
		check("RFC 7515 A.2: jws_rs256 signs", jws_rs256(pkey, rfc_input, strlen(rfc_input), &b) == 0);
		check_str("RFC 7515 A.2: RS256 signature, exact", b.data, b.len, rfc_sig);
	}
	EVP_PKEY_free(pkey);
	b.len = 0;
	b64url_put(&b, hdr, strlen(hdr));
	check_str("RFC 7515 A.1: base64url of the header", b.data, b.len, "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9");
	b.len = 0;
	b64url_put(&b, claims, strlen(claims));
	check_str("RFC 7515 A.1: base64url of the claims (no padding)", b.data, b.len,
			"eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ");
	b.len = 0;
	b64url_put(&b, "\xfb\xff", 2);
	check_str("base64url: - and _ for + and /", b.data, b.len, "-_8");
	buf_free(&b);
}

/* ---- a service-account key and its assertion at a pinned time ---- */

/* a throwaway key made for this test (openssl genpkey -algorithm RSA) */
static const char *const test_pem =
	"-----BEGIN PRIVATE KEY-----\n"
	"MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQDKNefDwDO0Yq67\n"
	"/PosFYWhaeKeIWTJtlop9JptV/s9dgAj67F1wWXHwj1gKj47hIDV+z3HHVPh1w6o\n"
	"bulswn8VMrwwgHhsatfySiK6aAwQNBlCDrduiO5At+wXM9HFwu3dGudxNMdymihY\n"
	"LPBTY1lBHZj7zIbBL/12owpkB1lsIbW2yYfQsyvfXVfu5s33/0w7l4FxVYNt+qrg\n"
	"2LVsv6dMM5PgweYmm9Tfa3tj6yvYzAs2aK8IM75XoRn2s5lWyLGOlsGqw+eGFjsF\n"
	"MdIDUP99AkI+q3vKaRImXN0anv8Yhm4qTmqSWYLXUTgOLGxRBFif/nKVNhseMNFe\n"
	"UCVaoPl5AgMBAAECggEAA0gHqEoMrL8zNbK/vopk3j8xIb7J+2n9oZOqE98rIQ6y\n"
	"puKSwSXvyGOTCmX1F5MpYg+PK5WCwHX0c3BFUnH/jPEDU8gp7Bx5v6FLWfoJRBQM\n"
	"WuGRQXZwY1V4u9Gn9E0a/g0LN2+TUv1EbVXhWoEQuDlKO7/Qaf8k3lF8AC6MWXBV\n"
	"NVsUsif15oyL3fVzUt4c/JRkQR37huTBY2bQ9O6O12ahxoNoaAsOk4rz1o0iZW+h\n"
	"ctIIp5b1BWa4lSEcp0AgZkBPrH/uP5wVgDwPtcL87lE8czCZbG8Zyv1GTX+zij80\n"
	"rUfSJg8apOJKuGL4KwoveVGOGOS4V72LkbS5+xEFwQKBgQDvFgqDIelrhMAwZl5J\n"
	"85n7Mh8Khw7MMIjlhO7Q2b6c62U7HYU0GUl6FzNPBCMekeGVf5q4Ydy2z23HKDTr\n"
	"aQ0Y+1QMO23pXQi+NKdI6wfdC8dOpBnFyJ/g/kauNi9YrrxcluiD7yQ3pNgYgW7F\n"
	"YomW7aC/IW9ePaFK2UON+wx3UQKBgQDYhAgQD0boyq3ngINkhv+mUur22lUA7bMt\n"
	"biiiE8hoJXnvDdCDfEzKFq954iKSvH+cPX0W4DR10Dx5ejKqeK2ZNNmI0+3xwPvj\n"
	"heeVxmUhpYuloUwd/NhsOvdr99AMAdyfPVfWDqBc5H88g06rYe/7OgBxv+LYNTLl\n"
	"a9LGXM+lqQKBgQDZX1/FY9K2l6apGpmFgP6xvRst1idlDIeareb3adF9GCQcwDU4\n"
	"bfk5ENjscWWAyL+hzbedBhTG/QbhOLQMiKGI4hDDYlEHCDgHvxWNHWsz1R6raFWq\n"
	"VkLOLEGU6NzZM108jVPviECUesKiXSOaQIG6AGjS/ZIky8HWrHxYHTVzUQKBgGUA\n"
	"UnKLbdyyj6VqweBnSWLhU1KMTxL7z5XlyXayG87ZjKQDob10gq3TH1CQOOiSnkTY\n"
	"Oj4toMtEtLFGW9RCL1lE2iWGF32rNNXSZVHtFsg3XYmKUOO8S4lRiJIJLDgttili\n"
	"iFMGx7ANt30XE9/G9BgR2ps1lDCfwHpdbhmyufrhAoGBAN8PJaj7qoJ8p42FmM58\n"
	"25WnFcNz7X9LbsHPG9KkFmW2/UX2vzUWrYenMIK6L6HPbbZQUzsFPlw8vmWSskG2\n"
	"5HICFq1K4bbKCVcMq2Q24pPyE9TB5PkBW1rw6azcL2q4gI0ZhSougl8r0BX+3BKm\n"
	"Z+j/2Lrqfl1ZnJYetU6NZvX/\n"
	"-----END PRIVATE KEY-----\n";

/* made with openssl dgst -sha256 -sign on the test key, header and claims written by hand */
static const char *const test_jwt =
	"eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6IjAxMjM0NTY3ODlhYmNk"
	"ZWYifQ.eyJpc3MiOiJjZGMtdGVzdEBwZ2NkYy10ZXN0LmlhbS5nc2VydmljZWFjY"
	"291bnQuY29tIiwic2NvcGUiOiJodHRwczovL3d3dy5nb29nbGVhcGlzLmNvbS9hd"
	"XRoL3B1YnN1YiIsImF1ZCI6Imh0dHBzOi8vb2F1dGgyLmdvb2dsZWFwaXMuY29tL"
	"3Rva2VuIiwiaWF0IjoxODAwMDAwMDAwLCJleHAiOjE4MDAwMDM2MDB9.acClVBxE"
	"fiLlLIxmTp2k1Lhd9_TAtIwhhL_JH2olPZq5gLMg86BA66qhFIg63RKgufA0FUra"
	"uPIK7AdY8wJirseKB3rtqQPehucSEHcdMOJnTvg-AL_Gf8s-oitvFnWhUK4prTyT"
	"IX5oQhEtRHol_edbMjSj5z6uJ1BIuVvqyBJEdoG1ZKDOQ33SsUmva8S6X4Y8h9nC"
	"YGMUc4gcu3zJLAbio4HLlK6Jqhu_1Puvqzs2o1bKo-wFqmowH0NP06IKX4A1UuFe"
	"mW_whuzGCaFtIhUVguTYRajQJ9QKnn0nslcC1QX-0w3d3b2e0IMyuAxjBen6ytRq"
	"qfNbgrfy-Yv7Hw";

/* The key file Google hands out, as JSON, with the test key. */
static void
key_json(struct buf *b, const char *email, const char *pem)
{
	buf_putlit(b, "{\"type\":\"service_account\",\"project_id\":\"pgcdc-test\",");
	buf_putlit(b, "\"private_key_id\":\"0123456789abcdef\",\"private_key\":");
	buf_put_jstr(b, pem, strlen(pem));
	if (email) {
		buf_putlit(b, ",\"client_email\":");
		buf_put_jstr(b, email, strlen(email));
	}
	buf_putlit(b, ",\"token_uri\":\"https://oauth2.googleapis.com/token\"}");
}

static void
test_assertion(void)
{
	struct buf json = {0}, out = {0};
	struct sa_key k;
	char err[256];
	int rc;

	key_json(&json, "cdc-test@pgcdc-test.iam.gserviceaccount.com", test_pem);
	rc = sa_key_parse(json.data, json.len, &k, err, sizeof(err));
	check("sa_key_parse: a service-account key", rc == 0);
	if (rc == 0) {
		check_str("sa_key_parse: client_email", k.client_email, strlen(k.client_email),
				"cdc-test@pgcdc-test.iam.gserviceaccount.com");
		check_str("sa_key_parse: token_uri", k.token_uri, strlen(k.token_uri), "https://oauth2.googleapis.com/token");
		check_str("sa_key_parse: private_key_id", k.key_id, strlen(k.key_id), "0123456789abcdef");
		rc = jwt_assertion(&k, "https://www.googleapis.com/auth/pubsub", 1800000000, &out);
		check("jwt_assertion: signs", rc == 0);
		check_str("jwt_assertion at 1800000000: byte for byte", out.data, out.len, test_jwt);
		out.len = 0;
		jwt_grant_body("aa.bb.c-_", &out);
		check_str("jwt_grant_body: form-encoded grant", out.data, out.len,
				"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=aa.bb.c-_");
		sa_key_free(&k);
	}
	json.len = 0;
	key_json(&json, NULL, test_pem);
	rc = sa_key_parse(json.data, json.len, &k, err, sizeof(err));
	check("sa_key_parse: no client_email is refused", rc == -1 && strstr(err, "client_email"));
	json.len = 0;
	key_json(&json, "x@y", "-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n");
	rc = sa_key_parse(json.data, json.len, &k, err, sizeof(err));
	check("sa_key_parse: a broken PEM is refused", rc == -1 && strstr(err, "not a PEM private key"));
	check("sa_key_parse: the reason does not quote the key", !strstr(err, "BEGIN") && !strstr(err, "base64"));
	rc = sa_key_parse("not json", 8, &k, err, sizeof(err));
	check("sa_key_parse: not JSON is refused", rc == -1 && strstr(err, "not a JSON object"));
	buf_free(&json);
	buf_free(&out);
}

static void
test_token_answer(void)
{
	const char *ok = "{\"access_token\":\"ya29.c.b0-TOKEN\",\"expires_in\":3599,\"token_type\":\"Bearer\"}";
	const char *noexp = "{\"access_token\":\"t\"}";
	const char *evil = "{\"access_token\":\"a\\r\\nX-Evil: 1\"}";
	const char *bad = "{\"error\":\"invalid_grant\",\"error_description\":\"Invalid JWT Signature.\"}";
	char *tok = NULL, err[256];
	int64_t exp = 0;
	int rc;

	rc = jwt_token_parse(ok, strlen(ok), &tok, &exp, err, sizeof(err));
	check("jwt_token_parse: access_token and expires_in", rc == 0 && tok && strcmp(tok, "ya29.c.b0-TOKEN") == 0 && exp == 3599);
	secret_free(tok);
	rc = jwt_token_parse(noexp, strlen(noexp), &tok, &exp, err, sizeof(err));
	check("jwt_token_parse: expires_in absent is an hour", rc == 0 && exp == 3600);
	secret_free(tok);
	rc = jwt_token_parse(bad, strlen(bad), &tok, &exp, err, sizeof(err));
	check_str("jwt_token_parse: an error answer gives its reason", err, rc == -1 ? strlen(err) : 0,
			"invalid_grant: Invalid JWT Signature.");
	rc = jwt_token_parse("<html>", 6, &tok, &exp, err, sizeof(err));
	check("jwt_token_parse: not JSON", rc == -1 && tok == NULL && strstr(err, "no access_token"));
	rc = jwt_token_parse(evil, strlen(evil), &tok, &exp, err, sizeof(err));
	check("jwt_token_parse: a token with a line break is refused (header injection)", rc == -1 && tok == NULL);
}

int
main(void)
{
	test_rfc7515();
	test_assertion();
	test_token_answer();
	printf("# %d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
