/*
 * Delivery with libcurl's multi interface: up to --parallel requests over
 * keep-alive connections, events of one ordering key never in flight
 * together, retries with capped exponential backoff and jitter, and
 * --dry-run, which writes the requests instead of sending them.
 */
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "publish.h"
#include "../lib/exitcode.h"
#include "../lib/log.h"
#include "../lib/util.h"

#define RETRY_FIRST_MS 100
#define RESP_MAX 65536

/* Keys in flight or waiting behind an earlier event: a table stamped per dispatch. */
struct keyset {
	uint64_t *keys;
	unsigned *gen;
	size_t mask;
	unsigned cur;
};

static struct keyset blocked;

static bool
keyset_add(struct keyset *s, uint64_t k)	/* true if it was new */
{
	size_t i = (size_t) (k * 0x9e3779b97f4a7c15ULL) & s->mask;

	while (s->gen[i] == s->cur) {
		if (s->keys[i] == k)
			return false;
		i = (i + 1) & s->mask;
	}
	s->gen[i] = s->cur;
	s->keys[i] = k;
	return true;
}

static bool
keyset_has(const struct keyset *s, uint64_t k)
{
	size_t i = (size_t) (k * 0x9e3779b97f4a7c15ULL) & s->mask;

	while (s->gen[i] == s->cur) {
		if (s->keys[i] == k)
			return true;
		i = (i + 1) & s->mask;
	}
	return false;
}

/* Markers of a table with events in flight, and of a table behind a barrier (truncate...). */
#define TABLE_BUSY 0x5bd1e9955bd1e995ULL
#define TABLE_BARRIER 0xc2b2ae3d27d4eb4fULL

/* Must e wait for something in flight or waiting before it? */
static bool
must_wait(const struct event *e)
{
	return keyset_has(&blocked, e->key) || (e->key2 && keyset_has(&blocked, e->key2)) ||
			keyset_has(&blocked, e->tkey ^ TABLE_BARRIER) ||
			(e->barrier && keyset_has(&blocked, e->tkey ^ TABLE_BUSY));
}

/* e is in flight or waiting: what comes after it may have to wait for it. */
static void
hold(const struct event *e)
{
	keyset_add(&blocked, e->key);
	if (e->key2)
		keyset_add(&blocked, e->key2);
	keyset_add(&blocked, e->tkey ^ TABLE_BUSY);
	if (e->barrier)
		keyset_add(&blocked, e->tkey ^ TABLE_BARRIER);
}

static size_t
on_body(char *data, size_t size, size_t n, void *arg)
{
	struct request *r = arg;
	size_t len = size * n;

	if (r->resp.len < RESP_MAX)
		buf_put(&r->resp, data, len < RESP_MAX - r->resp.len ? len : RESP_MAX - r->resp.len);
	return len;
}

int
http_init(struct publisher *p)
{
	size_t n = 1;

	/* at most four keys per event (row, old row, table busy, table barrier): never full */
	while (n < (size_t) p->opt.window * 4 + 64)
		n <<= 1;
	blocked.keys = xcalloc(n, sizeof(*blocked.keys));
	blocked.gen = xcalloc(n, sizeof(*blocked.gen));
	blocked.mask = n - 1;
	p->req = xcalloc((size_t) p->opt.parallel, sizeof(*p->req));
	if (p->opt.dry_run)
		return 0;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0 || !(p->multi = curl_multi_init())) {
		log_kv(LOG_ERROR, "could not initialise libcurl", NULL);
		return -1;
	}
	curl_multi_setopt(p->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long) p->opt.parallel);
	/* jitter differs between processes, so restarted publishers do not retry in step */
	srand((unsigned) getpid() ^ (unsigned) now_ms());
	return 0;
}

void
http_cleanup(struct publisher *p)
{
	int i;

	for (i = 0; p->req && i < p->opt.parallel; i++) {
		struct request *r = &p->req[i];

		if (r->easy) {
			curl_multi_remove_handle(p->multi, r->easy);
			curl_easy_cleanup(r->easy);
		}
		curl_slist_free_all(r->headers);
		free(r->seqs);
		buf_free(&r->body);
		buf_free(&r->resp);
	}
	free(p->req);
	if (p->multi)
		curl_multi_cleanup(p->multi);
	free(blocked.keys);
	free(blocked.gen);
	curl_global_cleanup();
}

/* Where an event is, for logs: its table and id (or lsn). */
static void
where(const struct event *e, char *table, size_t tsz, char *id, size_t isz)
{
	struct ev_head h;
	const char *err, *p;
	size_t n;

	table[0] = id[0] = '\0';
	if (ev_head(e->line, e->len, &h, &err) == 0 && h.schema.type == J_STRING)
		snprintf(table, tsz, "%.*s.%.*s", (int) h.schema.n, h.schema.p, (int) h.table.n, h.table.p);
	p = strstr(e->line, "\"id\":\"");
	if (!p)
		p = strstr(e->line, "\"lsn\":\"");
	if (p) {
		p = strchr(p + 4, ':') + 2;
		n = strcspn(p, "\"");
		snprintf(id, isz, "%.*s", (int) (n < isz ? n : isz - 1), p);
	}
}

static void
write_dry_run(struct publisher *p, struct request *r)
{
	struct curl_slist *h;

	printf("POST %s\n", target_url(p));
	for (h = r->headers; h; h = h->next) {
		if (strcmp(h->data, "Expect:") == 0)
			continue;
		if (strncasecmp(h->data, "Authorization:", 14) == 0)
			printf("Authorization: [redacted]\n");
		else
			printf("%s\n", h->data);
	}
	if (p->userpwd)
		printf("Authorization: [redacted basic]\n");
	printf("\n");
	fwrite(r->body.data, 1, r->body.len, stdout);
	printf("\n\n");
	/* "delivered" means written out: flushed before anything is acknowledged */
	fflush(stdout);
}

static void
finish_ok(struct publisher *p, struct request *r)
{
	size_t i;

	for (i = 0; i < r->nseqs; i++)
		event_at(p, r->seqs[i])->state = EV_DONE;
	p->delivered += r->nseqs;
	r->nseqs = 0;
	p->inflight--;
}

/* Start (or restart) the transfer of r. */
static int
send_request(struct publisher *p, struct request *r)
{
	CURL *c;

	r->resp.len = r->resp.off = 0;
	r->retry_after_ms = -1;
	r->retry_at = 0;
	if (p->opt.dry_run) {
		write_dry_run(p, r);
		finish_ok(p, r);
		return 0;
	}
	if (!r->easy && !(r->easy = curl_easy_init()))
		return -1;
	c = r->easy;
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, target_url(p));
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, r->body.data);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) r->body.len);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, r->headers);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long) p->opt.timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long) (p->opt.timeout_ms < 10000 ? p->opt.timeout_ms : 10000));
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, r->errbuf);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_PRIVATE, r);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	if (p->opt.cacert) {	/* these CAs and no others: the system store is not consulted */
		curl_easy_setopt(c, CURLOPT_CAINFO, p->opt.cacert);
		curl_easy_setopt(c, CURLOPT_CAPATH, NULL);
	}
	if (p->opt.insecure) {
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (p->userpwd) {
		curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long) CURLAUTH_BASIC);
		curl_easy_setopt(c, CURLOPT_USERPWD, p->userpwd);
	}
	r->errbuf[0] = '\0';
	return curl_multi_add_handle(p->multi, c) == CURLM_OK ? 0 : -1;
}

static struct request *
free_slot(struct publisher *p)
{
	int i;

	for (i = 0; i < p->opt.parallel; i++)
		if (p->req[i].nseqs == 0)
			return &p->req[i];
	return NULL;
}

/* Launch r with the events gathered in it. */
static int
launch(struct publisher *p, struct request *r)
{
	size_t i;

	for (i = 0; i < r->nseqs; i++)
		event_at(p, r->seqs[i])->state = EV_INFLIGHT;
	target_body(p, r);
	curl_slist_free_all(r->headers);
	r->headers = target_headers(p, r);
	r->attempts = 0;
	r->first_failure = 0;
	p->inflight++;
	if (send_request(p, r) < 0) {
		log_kv(LOG_ERROR, "could not start a request", NULL);
		return EXIT_RUNTIME;
	}
	return 0;
}

/*
 * Gather pending events into requests while slots are free. An event
 * whose key is in flight, or behind an earlier waiting event of the same
 * key, waits. A batch not yet full waits up to --linger for company.
 */
int
http_dispatch(struct publisher *p)
{
	int max = target_max_batch(p), i, rc;
	struct request *r = NULL;
	struct event *e, *end = p->ev + p->cap;
	size_t bytes = 0, j;
	uint64_t seq;
	int64_t oldest = 0;

	p->linger_until = 0;
	if (p->halt)
		return 0;
again:
	if (++blocked.cur == 0) {	/* the stamps wrapped: forget them all, 0 stays unused */
		memset(blocked.gen, 0, (blocked.mask + 1) * sizeof(*blocked.gen));
		blocked.cur = 1;
	}
	for (i = 0; i < p->opt.parallel; i++)
		for (j = 0; j < p->req[i].nseqs; j++)
			hold(event_at(p, p->req[i].seqs[j]));
	for (seq = p->base, e = event_at(p, seq); seq < p->head; seq++, e = e + 1 == end ? p->ev : e + 1) {
		if (e->state != EV_PENDING)
			continue;
		/*
		 * Its row already waits or is in flight (the common case behind a
		 * busy key): it waits too, and holding it would add nothing.
		 */
		if (!e->barrier && !e->key2 && keyset_has(&blocked, e->key))
			continue;
		/* same row (or table, for a truncate) as an event in flight or waiting: keep the order */
		if (must_wait(e)) {
			hold(e);
			continue;
		}
		if (!r) {
			if (!(r = free_slot(p)))
				break;
			if (!r->seqs)
				r->seqs = xmalloc((size_t) (max > 0 ? max : 1) * sizeof(*r->seqs));
			bytes = 0;
			oldest = e->arrived;
		}
		r->seqs[r->nseqs++] = seq;
		bytes += e->len + 1;
		if ((int) r->nseqs >= max || (p->opt.batch_bytes && bytes >= p->opt.batch_bytes)) {
			/* from now on its keys are in flight: later events of them wait */
			for (j = 0; j < r->nseqs; j++)
				hold(event_at(p, r->seqs[j]));
			if ((rc = launch(p, r)) != 0)
				return rc;
			r = NULL;
			/* a dry run is answered at once: what it held is free again, start over */
			if (p->opt.dry_run) {
				if ((rc = events_retire(p)) != 0)
					return rc;
				goto again;
			}
		}
	}
	if (r && r->nseqs) {
		/* a partial batch: send it now unless more input may come within --linger */
		if (p->in_eof || p->opt.linger_ms == 0 || now_ms() - oldest >= p->opt.linger_ms ||
				window_full(p))
			return launch(p, r);
		for (j = 0; j < r->nseqs; j++)
			event_at(p, r->seqs[j])->state = EV_PENDING;
		r->nseqs = 0;
		p->linger_until = oldest + p->opt.linger_ms;
	}
	return 0;
}

/* A failed attempt: schedule the retry, or give up past --retry-max-time. */
static void
retry_or_give_up(struct publisher *p, struct request *r, long status, const char *why)
{
	int64_t now = now_ms(), delay, left;
	struct event *e = event_at(p, r->seqs[0]);
	char table[160], id[64], st[16], att[16], dl[24], lf[24];

	if (!r->first_failure)
		r->first_failure = now;
	r->attempts++;
	delay = RETRY_FIRST_MS << (r->attempts < 16 ? r->attempts - 1 : 15);
	if (delay > p->opt.retry_cap_ms)
		delay = p->opt.retry_cap_ms;
	delay = delay / 2 + (int64_t) (rand() % (int) (delay / 2 + 1));	/* jitter */
	if (r->retry_after_ms >= 0 && r->retry_after_ms > delay)
		delay = r->retry_after_ms;
	left = r->first_failure + p->opt.retry_max_ms - now;
	where(e, table, sizeof(table), id, sizeof(id));
	snprintf(st, sizeof(st), "%ld", status);
	snprintf(att, sizeof(att), "%d", r->attempts);
	snprintf(dl, sizeof(dl), "%lld", (long long) delay);
	snprintf(lf, sizeof(lf), "%lld", (long long) (left > 0 ? left : 0));
	if (delay > left) {
		log_kv(LOG_ERROR, "giving up: delivery kept failing past --retry-max-time", "table", table,
				"id", id, "status", status ? st : NULL, "error", why, "attempts", att, NULL);
		if (!p->exit_code)
			p->exit_code = EXIT_UNAVAILABLE;
		p->halt = true;
		r->retry_at = -1;	/* parked: never sent again, never acknowledged */
		return;
	}
	log_kv(LOG_WARN, "delivery failed, will retry", "table", table, "id", id,
			"status", status ? st : NULL, "error", why, "attempt", att, "delay_ms", dl,
			"left_ms", lf, NULL);
	r->retry_at = now + delay;
}

static void
rejected(struct publisher *p, struct request *r, long status, const char *why)
{
	struct event *e = event_at(p, r->seqs[0]);
	char table[160], id[64], st[16];
	size_t i;

	where(e, table, sizeof(table), id, sizeof(id));
	snprintf(st, sizeof(st), "%ld", status);
	if (p->dead) {
		for (i = 0; i < r->nseqs; i++)
			if (dead_letter(p, event_at(p, r->seqs[i]), status, why) < 0 && !p->exit_code) {
				p->exit_code = EXIT_RUNTIME;
				p->halt = true;
				r->retry_at = -1;
				return;
			}
		log_kv(LOG_WARN, "rejected, dead-lettered", "table", table, "id", id, "status", st,
				"error", why, "file", p->opt.dead_letter, NULL);
		p->delivered -= r->nseqs;	/* counted as dead letters, not deliveries */
		finish_ok(p, r);
		return;
	}
	log_kv(LOG_ERROR, "rejected by the queue, stopping without acknowledging it", "table", table,
			"id", id, "status", st, "error", why, "hint", "fix the target, or --dead-letter FILE", NULL);
	if (!p->exit_code)
		p->exit_code = EXIT_REJECTED;
	p->halt = true;
	r->retry_at = -1;
}

static void
completed(struct publisher *p, CURL *easy, CURLcode res)
{
	struct request *r;
	long status = 0;
	char why[300];

	curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **) &r);
	curl_multi_remove_handle(p->multi, easy);
	if (res == CURLE_OK) {
		curl_off_t after = 0;

		curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
		/* Retry-After in seconds or as an HTTP date, which libcurl turns into seconds */
		if (curl_easy_getinfo(easy, CURLINFO_RETRY_AFTER, &after) == CURLE_OK && after > 0)
			r->retry_after_ms = after < 86400 ? (long) after * 1000 : 86400000L;
	}
	switch (target_judge(p, status, &r->resp, why, sizeof(why))) {
	case JUDGE_OK:
		finish_ok(p, r);
		break;
	case JUDGE_RETRY:
		if (res != CURLE_OK)
			snprintf(why, sizeof(why), "%s", r->errbuf[0] ? r->errbuf : curl_easy_strerror(res));
		retry_or_give_up(p, r, status, why);
		break;
	default:
		rejected(p, r, status, why);
	}
}

/*
 * Run transfers, wait up to timeout_ms for sockets or stdin (when wanted),
 * handle what finished. Returns 0 or an exit status.
 */
int
http_step(struct publisher *p, int timeout_ms)
{
	struct curl_waitfd in = {.fd = p->in.fd, .events = CURL_WAIT_POLLIN};
	int64_t now = now_ms();
	int running, left, i, n, done;
	CURLMsg *m;

	if (p->opt.dry_run) {	/* nothing in flight: wait for input, or for a --linger to end */
		struct pollfd pfd = {.fd = p->in.fd, .events = POLLIN};

		if (!p->in_eof && !p->intake_done && !p->halt && !window_full(p))
			poll(&pfd, 1, timeout_ms);
		return 0;
	}
	for (i = 0; i < p->opt.parallel; i++) {
		struct request *r = &p->req[i];

		if (r->nseqs && r->retry_at > 0) {
			if (r->retry_at <= now) {
				if (send_request(p, r) < 0)
					return EXIT_RUNTIME;
			} else if (r->retry_at - now < timeout_ms)
				timeout_ms = (int) (r->retry_at - now);
		}
	}
	curl_multi_perform(p->multi, &running);
	done = 0;
	while ((m = curl_multi_info_read(p->multi, &left)))
		if (m->msg == CURLMSG_DONE) {
			completed(p, m->easy_handle, m->data.result);
			done++;
		}
	/* a freed slot is work to do now, not after the next wake-up */
	if (done)
		return 0;
	n = !p->in_eof && !p->intake_done && !p->halt && !window_full(p) ? 1 : 0;
	curl_multi_poll(p->multi, n ? &in : NULL, (unsigned) n, timeout_ms, NULL);
	curl_multi_perform(p->multi, &running);
	while ((m = curl_multi_info_read(p->multi, &left)))
		if (m->msg == CURLMSG_DONE)
			completed(p, m->easy_handle, m->data.result);
	return 0;
}
