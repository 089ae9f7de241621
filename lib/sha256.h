/*
 * SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104), for keyed hashes of
 * column values and for request signatures. No outside library.
 */
#ifndef PGCDC_SHA256_H
#define PGCDC_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_LEN 32

struct sha256 {
	uint32_t h[8];
	uint64_t len;			/* bytes hashed so far */
	unsigned char blk[64];
	size_t fill;			/* bytes waiting in blk */
};

void sha256_init(struct sha256 *c);
void sha256_update(struct sha256 *c, const void *p, size_t n);
void sha256_final(struct sha256 *c, unsigned char out[SHA256_LEN]);

/*
 * HMAC-SHA256 with a key prepared once: hmac_init keeps the inner and outer
 * states after the padded key, so each hmac_sha256 call hashes only data.
 */
struct hmac {
	struct sha256 inner, outer;
};

void hmac_init(struct hmac *h, const void *key, size_t keylen);
void hmac_sha256(const struct hmac *h, const void *p, size_t n, unsigned char out[SHA256_LEN]);

/* n bytes as 2n lowercase hex digits into out (2n bytes, no terminator). */
void hex_encode(const unsigned char *p, size_t n, char *out);

#endif
