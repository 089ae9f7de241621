#include "sha256.h"

#include <stdio.h>
#include <stdlib.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>

/* OpenSSL fails only for want of memory here: end the process, as xmalloc does. */
static void *
need(void *p)
{
	if (!p) {
		fputs("out of memory (OpenSSL)\n", stderr);
		abort();
	}
	return p;
}

/*
 * SHA-256 fetched from the provider once: EVP_sha256() would look it up,
 * under a lock, for every hash (a read event's id is one per row).
 */
static const EVP_MD *
sha256_md(void)
{
	static EVP_MD *md;

	if (!md)
		md = need(EVP_MD_fetch(NULL, "SHA256", NULL));
	return md;
}

void
sha256_init(struct sha256 *c)
{
	c->ctx = need(EVP_MD_CTX_new());
	if (!EVP_DigestInit_ex(c->ctx, sha256_md(), NULL))
		need(NULL);
}

void
sha256_update(struct sha256 *c, const void *p, size_t n)
{
	if (!EVP_DigestUpdate(c->ctx, p, n))
		need(NULL);
}

void
sha256_final(struct sha256 *c, unsigned char out[SHA256_LEN])
{
	if (!EVP_DigestFinal_ex(c->ctx, out, NULL))
		need(NULL);
	EVP_MD_CTX_free(c->ctx);
	c->ctx = NULL;
}

void
sha256_from(struct sha256 *c, const struct sha256 *start)
{
	if (!c->ctx)
		c->ctx = need(EVP_MD_CTX_new());
	if (!EVP_MD_CTX_copy_ex(c->ctx, start->ctx))
		need(NULL);
}

void
sha256_digest(struct sha256 *c, unsigned char out[SHA256_LEN])
{
	if (!EVP_DigestFinal_ex(c->ctx, out, NULL))
		need(NULL);
}

void
sha256_free(struct sha256 *c)
{
	EVP_MD_CTX_free(c->ctx);
	c->ctx = NULL;
}

void
hmac_init(struct hmac *h, const void *key, size_t keylen)
{
	EVP_MAC *mac = need(EVP_MAC_fetch(NULL, "HMAC", NULL));
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
		OSSL_PARAM_construct_end(),
	};
	static const unsigned char none;

	h->ctx = need(EVP_MAC_CTX_new(mac));
	EVP_MAC_free(mac);
	/* an empty key must still be a key, not "keep the old one" */
	if (!EVP_MAC_init(h->ctx, keylen ? key : &none, keylen, params))
		need(NULL);
}

void
hmac_sha256(const struct hmac *h, const void *p, size_t n, unsigned char out[SHA256_LEN])
{
	EVP_MAC_CTX *c = need(EVP_MAC_CTX_dup(h->ctx));
	size_t len;

	if (!EVP_MAC_update(c, p, n) || !EVP_MAC_final(c, out, &len, SHA256_LEN))
		need(NULL);
	EVP_MAC_CTX_free(c);
}

void
hmac_free(struct hmac *h)
{
	EVP_MAC_CTX_free(h->ctx);
	h->ctx = NULL;
}

void
hex_encode(const unsigned char *p, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = hex[p[i] >> 4];
		out[2 * i + 1] = hex[p[i] & 15];
	}
}
