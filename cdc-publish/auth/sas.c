/*
 * Shared access signatures for Azure Service Bus and Event Hubs (see
 * sas.h): learn.microsoft.com/rest/api/eventhub/generate-sas-token.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sas.h"
#include "../../lib/sha256.h"
#include "../../lib/util.h"

/* The value of member name in s[0..n) ("Name=value"), a copy; NULL if it is not that member. */
static char *
member(const char *s, size_t n, const char *name)
{
	size_t len = strlen(name);

	if (n <= len || s[len] != '=' || strncasecmp(s, name, len) != 0)
		return NULL;
	return xstrndup(s + len + 1, n - len - 1);
}

/* Keep the first value of a member given twice; a later one is wiped. */
static void
keep(char **slot, char *v)
{
	if (!v)
		return;
	if (*slot)
		secret_free(v);
	else
		*slot = v;
}

int
sas_key_parse(const char *s, struct sas_key *k, const char **why)
{
	memset(k, 0, sizeof(*k));
	while (*s) {
		size_t n = strcspn(s, ";");
		size_t lead = strspn(s, " \t\r\n");

		if (lead < n) {
			keep(&k->endpoint, member(s + lead, n - lead, "Endpoint"));
			keep(&k->key_name, member(s + lead, n - lead, "SharedAccessKeyName"));
			keep(&k->key, member(s + lead, n - lead, "SharedAccessKey"));
			keep(&k->entity, member(s + lead, n - lead, "EntityPath"));
		}
		s += n;
		if (*s == ';')
			s++;
	}
	if (!k->endpoint || !k->key_name || !k->key)
		*why = "not a connection string with Endpoint, SharedAccessKeyName and SharedAccessKey";
	else if (!*k->key_name || !*k->key)
		*why = "the connection string's SharedAccessKeyName or SharedAccessKey is empty";
	else if (strncmp(k->endpoint, "sb://", 5) != 0 && strncmp(k->endpoint, "https://", 8) != 0)
		*why = "the connection string's Endpoint is not sb://NAMESPACE/";
	else {
		if (k->entity && !*k->entity) {
			free(k->entity);
			k->entity = NULL;
		}
		return 0;
	}
	return -1;
}

void
sas_key_free(struct sas_key *k)
{
	free(k->endpoint);
	free(k->key_name);
	secret_free(k->key);
	free(k->entity);
	memset(k, 0, sizeof(*k));
}

void
sas_encode(struct buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char) s[i];

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
				c == '-' || c == '.' || c == '_' || c == '~')
			buf_putc(b, (char) c);
		else {
			buf_putc(b, '%');
			buf_putc(b, hex[c >> 4]);
			buf_putc(b, hex[c & 15]);
		}
	}
}

char *
sas_token(const char *uri, const char *key_name, const char *key, int64_t expiry)
{
	struct buf sts = {0}, sig = {0}, tok = {0};
	unsigned char mac[SHA256_LEN];
	struct hmac h;
	size_t srlen;

	sas_encode(&sts, uri, strlen(uri));
	srlen = sts.len;
	buf_printf(&sts, "\n%lld", (long long) expiry);
	hmac_init(&h, key, strlen(key));	/* the string's bytes, not decoded */
	hmac_sha256(&h, sts.data, sts.len, mac);
	hmac_free(&h);
	buf_put_b64(&sig, mac, sizeof(mac));

	buf_putlit(&tok, "SharedAccessSignature sr=");
	buf_put(&tok, sts.data, srlen);
	buf_putlit(&tok, "&sig=");
	sas_encode(&tok, sig.data, sig.len);
	buf_printf(&tok, "&se=%lld&skn=", (long long) expiry);
	sas_encode(&tok, key_name, strlen(key_name));
	buf_putc(&tok, '\0');

	explicit_bzero(mac, sizeof(mac));
	explicit_bzero(sig.data, sig.len);
	buf_free(&sts);
	buf_free(&sig);
	return tok.data;
}

const char *
sas_cache_get(struct sas_cache *c, const struct sas_key *k, const char *uri, int64_t now)
{
	if (!c->token || c->expiry - now <= SAS_RENEW) {
		secret_free(c->token);
		c->expiry = now + SAS_LIFETIME;
		c->token = sas_token(uri, k->key_name, k->key, c->expiry);
	}
	return c->token;
}

void
sas_cache_free(struct sas_cache *c)
{
	secret_free(c->token);
	c->token = NULL;
	c->expiry = 0;
}
