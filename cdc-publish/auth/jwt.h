/*
 * Google service-account tokens: a JWT signed RS256 (RFC 7515, RFC 7519)
 * asserting the account, exchanged at the key's token_uri for an OAuth 2
 * access token (RFC 7523). Pure functions: the time is a parameter, so a
 * test pins it; nothing here sends a request or logs.
 */
#ifndef CDC_PUBLISH_AUTH_JWT_H
#define CDC_PUBLISH_AUTH_JWT_H

#include <stddef.h>
#include <stdint.h>

#include "../../lib/buf.h"

/* What a service-account JSON key holds that a token needs. */
struct sa_key {
	char *client_email;		/* owned */
	char *token_uri;		/* owned */
	char *key_id;			/* private_key_id, owned; NULL if the key has none */
	void *pkey;				/* EVP_PKEY, RSA, owned */
};

/*
 * Read a service-account key (the JSON file Google hands out) from
 * json[0..n). Returns 0 and fills k (sa_key_free releases it), or -1 with
 * the reason in err, which never quotes the key.
 */
int sa_key_parse(const char *json, size_t n, struct sa_key *k, char *err, size_t errsz);
void sa_key_free(struct sa_key *k);

/* p[0..n) in base64url without padding (RFC 7515 section 2), appended to b. */
void b64url_put(struct buf *b, const void *p, size_t n);

/*
 * The RS256 signature (RSASSA-PKCS1-v1_5 with SHA-256) of s[0..n) with
 * pkey (an EVP_PKEY), appended to out in base64url. Returns 0, or -1 when
 * OpenSSL refused (out unchanged).
 */
int jws_rs256(void *pkey, const void *s, size_t n, struct buf *out);

/*
 * The signed assertion for scope, issued at now and good for an hour:
 * header {"alg":"RS256","typ":"JWT"[,"kid":KEY_ID]}, claims {"iss":EMAIL,
 * "scope":SCOPE,"aud":TOKEN_URI,"iat":NOW,"exp":NOW+3600}, appended to
 * out. Returns 0 or -1 (signing failed).
 */
int jwt_assertion(const struct sa_key *k, const char *scope, int64_t now, struct buf *out);

/* The token request body (application/x-www-form-urlencoded) for assertion, appended to out. */
void jwt_grant_body(const char *assertion, struct buf *out);

/*
 * Read the token endpoint's answer body[0..n): {"access_token":...,
 * "expires_in":...}. Returns 0 with *token (the caller's, free with
 * secret_free) and *expires_in (seconds; 3600 when absent), or -1 with
 * the reason in err (the answer's "error" and "error_description").
 */
int jwt_token_parse(const char *body, size_t n, char **token, int64_t *expires_in,
		char *err, size_t errsz);

#endif
