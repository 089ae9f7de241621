/*
 * Azure Service Bus and Event Hubs shared access signatures: the
 * connection string read, tokens made and kept until they near their
 * expiry. Pure functions: the time is a parameter, so tests pin it.
 *
 * The HMAC key is the SharedAccessKey string's own bytes, not their base64
 * decoding (that is Storage's and IoT Hub's convention, not this one's).
 */
#ifndef CDC_PUBLISH_SAS_H
#define CDC_PUBLISH_SAS_H

#include <stdint.h>

#include "../../lib/buf.h"

#define SAS_LIFETIME 3600		/* seconds a token is made for */
#define SAS_RENEW 300			/* made again when fewer seconds than this are left */

/* What a connection string holds. Every member owned; key is secret. */
struct sas_key {
	char *endpoint;			/* "sb://NS.servicebus.windows.net/" */
	char *key_name;			/* SharedAccessKeyName */
	char *key;				/* SharedAccessKey, as written */
	char *entity;			/* EntityPath, or NULL */
};

/*
 * Read "Endpoint=sb://...;SharedAccessKeyName=...;SharedAccessKey=...
 * [;EntityPath=...]" (names in any case and order, unknown names ignored,
 * a value may hold '='). Returns 0, or -1 with *why set to a static
 * message that quotes nothing of s. Free k with sas_key_free either way.
 */
int sas_key_parse(const char *s, struct sas_key *k, const char **why);

/* Wipe the key, free every member. A zeroed struct is fine. */
void sas_key_free(struct sas_key *k);

/*
 * s[0..n) percent-encoded into b: every byte but ALPHA, DIGIT and "-._~"
 * as %XX with upper-case digits (the one form used in sr= and the string
 * signed, which must be identical).
 */
void sas_encode(struct buf *b, const char *s, size_t n);

/*
 * The token for resource uri, valid until expiry (seconds since the
 * epoch): "SharedAccessSignature sr=URI&sig=SIG&se=EXPIRY&skn=NAME", with
 * URI and SIG percent-encoded and SIG = base64(HMAC-SHA256(key,
 * encoded URI "\n" expiry)). Returns it, the caller's to free with
 * secret_free.
 */
char *sas_token(const char *uri, const char *key_name, const char *key, int64_t expiry);

/* A token kept between requests. Zeroed to start. */
struct sas_cache {
	char *token;			/* secret */
	int64_t expiry;
};

/*
 * The token for uri at now: the one kept while more than SAS_RENEW
 * seconds are left of it, else a new one valid SAS_LIFETIME seconds from
 * now. Returns the cache's string (valid until the next call).
 */
const char *sas_cache_get(struct sas_cache *c, const struct sas_key *k, const char *uri,
		int64_t now);
void sas_cache_free(struct sas_cache *c);

#endif
