/*
 * SHA-256 and HMAC-SHA256 for keyed hashes of column values and for
 * request signatures, from OpenSSL's libcrypto (EVP), never our own.
 * Out of memory inside OpenSSL ends the process like xmalloc.
 */
#ifndef PGCDC_SHA256_H
#define PGCDC_SHA256_H

#include <stddef.h>

#define SHA256_LEN 32

/* A running hash: sha256_init, any number of sha256_update, sha256_final (which frees). */
struct sha256 {
	void *ctx;				/* EVP_MD_CTX */
};

void sha256_init(struct sha256 *c);
void sha256_update(struct sha256 *c, const void *p, size_t n);
void sha256_final(struct sha256 *c, unsigned char out[SHA256_LEN]);

/*
 * Many hashes that start alike (one per row, after the table's name):
 * hash the common start once into a running hash, then for each
 * sha256_from copies it into c (whose context, if it has one, is reused),
 * sha256_update adds the rest and sha256_digest gives the hash, keeping
 * the context for the next sha256_from. sha256_free releases it (and may
 * be called on a zeroed struct).
 */
void sha256_from(struct sha256 *c, const struct sha256 *start);
void sha256_digest(struct sha256 *c, unsigned char out[SHA256_LEN]);
void sha256_free(struct sha256 *c);

/*
 * HMAC-SHA256 with a key prepared once: hmac_init keys a context that each
 * hmac_sha256 call copies, so only the data is hashed per call. hmac_free
 * releases it (and may be called on a zeroed struct).
 */
struct hmac {
	void *ctx;				/* EVP_MAC_CTX, keyed */
};

void hmac_init(struct hmac *h, const void *key, size_t keylen);
void hmac_sha256(const struct hmac *h, const void *p, size_t n, unsigned char out[SHA256_LEN]);
void hmac_free(struct hmac *h);

/* n bytes as 2n lowercase hex digits into out (2n bytes, no terminator). */
void hex_encode(const unsigned char *p, size_t n, char *out);

#endif
