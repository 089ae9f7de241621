/*
 * Azure Storage authorization: credentials (a connection string or a SAS
 * token) and SharedKey request signatures. Pure functions: no publisher,
 * no libcurl, the time a parameter.
 */
#ifndef CDC_PUBLISH_AZSTORAGE_H
#define CDC_PUBLISH_AZSTORAGE_H

#include <stddef.h>
#include <stdint.h>

#include "../../lib/buf.h"
#include "../../lib/sha256.h"

/* The x-ms-version every request names: pinned, so the answers keep one shape. */
#define AZS_VERSION "2021-12-02"

/* RFC 1123 dates: "Tue, 24 Nov 2026 06:00:00 GMT" (29 bytes) and a NUL, with room to spare. */
#define AZS_DATE_LEN 64

/* base64 of an HMAC-SHA256 and a NUL */
#define AZS_SIG_LEN 45

/*
 * Credentials: SharedKey (account and its keyed HMAC) or a SAS (the query
 * to append). Every member is secret but the account name.
 */
struct azs_cred {
	char *account;			/* AccountName; NULL for a bare SAS */
	struct hmac key;		/* keyed with the decoded AccountKey; ctx NULL without one */
	char *sas;				/* the SAS query, without '?'; NULL with a key */
};

/*
 * Parse s: a connection string ("AccountName=...;AccountKey=...;..." or
 * with "SharedAccessSignature=..."), or a SAS token ("sv=...&sig=...",
 * a leading '?' allowed). An AccountKey wins over a SharedAccessSignature.
 * Returns 0 with c filled (free with azs_cred_free), or -1 with the reason
 * in err, which never quotes the secret.
 */
int azs_cred_parse(const char *s, struct azs_cred *c, char *err, size_t errsz);

/* Wipe and free what c holds; c may be zeroed. */
void azs_cred_free(struct azs_cred *c);

/* t (seconds since the epoch) as an RFC 1123 date, in English whatever the locale. */
void azs_date(int64_t t, char out[AZS_DATE_LEN]);

/*
 * The CanonicalizedResource of SharedKey: "/" ACCOUNT PATH, then for each
 * query parameter of query (without '?'; NULL or "" for none) a line
 * "\nname:value", names lowercased and sorted, values URL-decoded, the
 * values of a repeated name sorted and joined with commas. path begins
 * with '/' (a path-style URL's path keeps its account: it then appears
 * twice). Appended to b.
 */
void azs_canonical_resource(struct buf *b, const char *account, const char *path, const char *query);

/*
 * The SharedKey StringToSign of a request, appended to b: verb, the
 * standard headers (Content-Length empty when 0, Date empty since
 * x-ms-date is sent), the x-ms-* lines among hdrs (nhdrs "Name: value"
 * lines; others ignored) lowercased, trimmed and sorted, then resource
 * (from azs_canonical_resource).
 */
void azs_string_to_sign(struct buf *b, const char *verb, size_t content_length,
		const char *content_type, const char *const *hdrs, size_t nhdrs, const char *resource);

/* base64(HMAC-SHA256(key, s[0..n))) into out. */
void azs_sign(const struct hmac *key, const char *s, size_t n, char out[AZS_SIG_LEN]);

#endif
