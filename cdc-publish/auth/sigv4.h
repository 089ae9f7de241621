/*
 * AWS Signature Version 4, as pure functions: the time is a parameter,
 * nothing is read from the environment, so the published test vectors
 * can be checked byte for byte (tests/unit/test_sigv4.c). And the
 * shared credentials file (~/.aws/credentials) these keys may come from.
 */
#ifndef CDC_PUBLISH_SIGV4_H
#define CDC_PUBLISH_SIGV4_H

#include <stddef.h>
#include <stdint.h>

#include "../../lib/buf.h"

struct sigv4_header {
	const char *name;		/* any case: signed lowercased */
	const char *value;		/* signed trimmed, inner runs of spaces as one */
};

struct sigv4_request {
	const char *method;		/* "POST" */
	const char *path;		/* the canonical URI, already URI-encoded: "/" */
	const char *query;		/* the canonical query string (sorted, encoded); "" if none */
	const struct sigv4_header *headers;	/* every header to sign, host and x-amz-date among them */
	size_t nheaders;
	const void *body;
	size_t body_len;
	const char *region, *service;
	int64_t time;			/* seconds since the epoch: the x-amz-date header's */
};

struct sigv4_creds {
	char *access_key, *secret_key;
	char *token;			/* the session token of temporary credentials, or NULL */
};

/* Max signed headers: more are a caller's mistake and are left out. */
#define SIGV4_MAX_HEADERS 16

/* t as the x-amz-date value "YYYYMMDDTHHMMSSZ" into out (17 bytes with its NUL). */
void sigv4_amz_date(int64_t t, char out[17]);

/* The signing key HMAC(HMAC(HMAC(HMAC("AWS4" secret, date), region), service), "aws4_request"). */
void sigv4_signing_key(const char *secret, const char *date8, const char *region,
		const char *service, unsigned char out[32]);

/* Append rq's canonical request to out. */
void sigv4_canonical_request(const struct sigv4_request *rq, struct buf *out);

/*
 * Append the Authorization header's value for rq signed with c
 * ("AWS4-HMAC-SHA256 Credential=AKID/SCOPE, SignedHeaders=..., Signature=HEX")
 * to out, and the signature's 64 hex digits to sig (NUL-terminated) when
 * sig is not NULL. The session token is not added: the caller signs it as
 * an x-amz-security-token header among rq's.
 */
void sigv4_authorization(const struct sigv4_request *rq, const struct sigv4_creds *c,
		struct buf *out, char *sig);

/*
 * Read the keys of section [profile] (or [profile NAME]) of a shared
 * credentials file's text: aws_access_key_id, aws_secret_access_key and
 * aws_session_token (optional). Lines starting with # or ; are comments.
 * Returns 0 with c filled (the caller's, freed by sigv4_creds_free), or
 * -1 with a reason in err and c untouched.
 */
int sigv4_parse_credentials(const char *text, const char *profile, struct sigv4_creds *c,
		char *err, size_t errsz);

/* Wipe and free c's strings. */
void sigv4_creds_free(struct sigv4_creds *c);

#endif
