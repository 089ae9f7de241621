/*
 * Service-account JWTs signed RS256 with OpenSSL's EVP interface, and the
 * token exchange's body and answer (see jwt.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "jwt.h"
#include "../../lib/util.h"

#define JWT_LIFETIME 3600	/* the longest Google accepts */

/* A string member of o, copied; NULL if absent or empty. */
static char *
member(json_t *o, const char *name)
{
	const char *s = json_string_value(json_object_get(o, name));

	return s && *s ? xstrdup(s) : NULL;
}

int
sa_key_parse(const char *json, size_t n, struct sa_key *k, char *err, size_t errsz)
{
	json_t *doc = json_loadb(json, n, 0, NULL);
	json_t *pk = json_object_get(doc, "private_key");
	const char *pem = json_string_value(pk);
	BIO *bio = NULL;
	int rc = -1;

	memset(k, 0, sizeof(*k));
	if (!json_is_object(doc)) {
		snprintf(err, errsz, "not a JSON object");
		goto out;
	}
	k->client_email = member(doc, "client_email");
	k->token_uri = member(doc, "token_uri");
	k->key_id = member(doc, "private_key_id");
	if (!k->client_email || !k->token_uri || !pem) {
		snprintf(err, errsz, "a service-account key needs client_email, token_uri and private_key");
		goto out;
	}
	if (strncmp(k->token_uri, "https://", 8) != 0 && strncmp(k->token_uri, "http://", 7) != 0) {
		snprintf(err, errsz, "token_uri is not an http(s) URL");
		goto out;
	}
	if (!(bio = BIO_new_mem_buf(pem, (int) json_string_length(pk))) ||
			!(k->pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, (void *) ""))) {
		snprintf(err, errsz, "private_key is not a PEM private key");
		goto out;
	}
	if (!EVP_PKEY_is_a(k->pkey, "RSA")) {
		snprintf(err, errsz, "private_key is not an RSA key");
		goto out;
	}
	rc = 0;
out:
	BIO_free(bio);
	if (pem)	/* jansson frees without wiping */
		explicit_bzero((char *) pem, json_string_length(pk));
	json_decref(doc);
	if (rc < 0)
		sa_key_free(k);
	return rc;
}

void
sa_key_free(struct sa_key *k)
{
	free(k->client_email);
	free(k->token_uri);
	free(k->key_id);
	EVP_PKEY_free(k->pkey);
	memset(k, 0, sizeof(*k));
}

void
b64url_put(struct buf *b, const void *p, size_t n)
{
	size_t i, start = b->len;

	buf_put_b64(b, p, n);
	while (b->len > start && b->data[b->len - 1] == '=')
		b->len--;
	for (i = start; i < b->len; i++)
		if (b->data[i] == '+')
			b->data[i] = '-';
		else if (b->data[i] == '/')
			b->data[i] = '_';
}

int
jws_rs256(void *pkey, const void *s, size_t n, struct buf *out)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char *sig = NULL;
	size_t len = 0;
	int rc = -1;

	/* RSA keys sign with PKCS#1 v1.5 padding unless told otherwise: RS256 */
	if (!ctx || EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, pkey) != 1 ||
			EVP_DigestSign(ctx, NULL, &len, s, n) != 1)
		goto out;
	sig = xmalloc(len);
	if (EVP_DigestSign(ctx, sig, &len, s, n) != 1)
		goto out;
	b64url_put(out, sig, len);
	rc = 0;
out:
	free(sig);
	EVP_MD_CTX_free(ctx);
	return rc;
}

int
jwt_assertion(const struct sa_key *k, const char *scope, int64_t now, struct buf *out)
{
	struct buf part = {0};
	size_t start = out->len;
	int rc;

	buf_putlit(&part, "{\"alg\":\"RS256\",\"typ\":\"JWT\"");
	if (k->key_id) {
		buf_putlit(&part, ",\"kid\":");
		buf_put_jstr(&part, k->key_id, strlen(k->key_id));
	}
	buf_putc(&part, '}');
	b64url_put(out, part.data, part.len);
	buf_putc(out, '.');
	part.len = 0;
	buf_putlit(&part, "{\"iss\":");
	buf_put_jstr(&part, k->client_email, strlen(k->client_email));
	buf_putlit(&part, ",\"scope\":");
	buf_put_jstr(&part, scope, strlen(scope));
	buf_putlit(&part, ",\"aud\":");
	buf_put_jstr(&part, k->token_uri, strlen(k->token_uri));
	buf_printf(&part, ",\"iat\":%lld,\"exp\":%lld}", (long long) now, (long long) now + JWT_LIFETIME);
	b64url_put(out, part.data, part.len);
	/* the signature covers header.claims as written */
	part.len = 0;
	if ((rc = jws_rs256(k->pkey, out->data + start, out->len - start, &part)) == 0) {
		buf_putc(out, '.');
		buf_put(out, part.data, part.len);
	}
	buf_free(&part);
	return rc;
}

void
jwt_grant_body(const char *assertion, struct buf *out)
{
	/* the assertion is base64url and dots: nothing in it needs escaping */
	buf_putlit(out, "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=");
	buf_puts(out, assertion);
}

int
jwt_token_parse(const char *body, size_t n, char **token, int64_t *expires_in, char *err, size_t errsz)
{
	json_t *doc = json_loadb(body ? body : "", n, 0, NULL);
	json_t *tok = json_object_get(doc, "access_token"), *exp = json_object_get(doc, "expires_in");
	const char *e = json_string_value(json_object_get(doc, "error"));
	const char *d = json_string_value(json_object_get(doc, "error_description"));
	int rc = -1;

	*token = NULL;
	*expires_in = 0;
	if (json_is_string(tok) && json_string_length(tok) > 0 &&
			strcspn(json_string_value(tok), "\r\n") == json_string_length(tok)) {
		*token = xstrdup(json_string_value(tok));
		*expires_in = json_is_integer(exp) ? (int64_t) json_integer_value(exp) : JWT_LIFETIME;
		if (*expires_in <= 0)
			*expires_in = JWT_LIFETIME;
		rc = 0;
	} else if (e || d)
		snprintf(err, errsz, "%s%s%s", e ? e : "", e && d ? ": " : "", d ? d : "");
	else
		snprintf(err, errsz, "no access_token in the answer");
	if (json_is_string(tok))	/* jansson frees without wiping */
		explicit_bzero((char *) json_string_value(tok), json_string_length(tok));
	json_decref(doc);
	return rc;
}
