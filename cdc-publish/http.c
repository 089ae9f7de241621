/*
 * Requests with libcurl's multi interface: up to --parallel over
 * keep-alive connections, each attempt signed afresh by the target,
 * retries with capped exponential backoff and jitter, the answer judged
 * per message, and --dry-run, which writes the requests instead of
 * sending them.
 */
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>

#include "publish.h"
#include "../lib/exitcode.h"
#include "../lib/log.h"
#include "../lib/util.h"

#define RETRY_FIRST_MS 100
#define RESP_MAX 65536

struct transfer {
	CURL *easy;
	char errbuf[CURL_ERROR_SIZE];
};

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
	int i;

	p->req = xcalloc((size_t) p->opt.parallel, sizeof(*p->req));
	for (i = 0; i < p->opt.parallel; i++)
		p->req[i].xfer = xcalloc(1, sizeof(struct transfer));
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

/* Empty r's messages (not its buffers): the slot is free. */
void
request_clear(struct request *r)
{
	size_t i;

	for (i = 0; i < r->nmsgs; i++)
		free(r->msgs[i].why);
	r->nmsgs = r->nseqs = 0;
}

void
http_cleanup(struct publisher *p)
{
	int i;

	for (i = 0; p->req && i < p->opt.parallel; i++) {
		struct request *r = &p->req[i];

		if (r->xfer && r->xfer->easy) {
			curl_multi_remove_handle(p->multi, r->xfer->easy);
			curl_easy_cleanup(r->xfer->easy);
		}
		request_clear(r);
		free(r->xfer);
		curl_slist_free_all(r->headers);
		free(r->seqs);
		free(r->msgs);
		buf_free(&r->body);
		buf_free(&r->resp);
	}
	free(p->req);
	if (p->multi)
		curl_multi_cleanup(p->multi);
	if (!p->opt.dry_run)
		curl_global_cleanup();
}

/* Where an event is, for logs: its table and id. */
void
event_where(const struct event *e, char *table, size_t tsz, char *id, size_t isz)
{
	const char *s;
	size_t n;

	table[0] = '\0';
	if (e->tbl_len)
		snprintf(table, tsz, "%.*s.%.*s", (int) e->tbl_len, e->line + e->tbl_off,
				(int) e->tname_len, e->line + e->tname_off);
	event_id(e, &s, &n);
	snprintf(id, isz, "%.*s", (int) (n < isz ? n : isz - 1), s);
}

/* A URL for the terminal: a SAS signature in its query is a secret. */
static void
print_url(const char *url)
{
	const char *s = strstr(url, "sig=");

	if (s && (s == url || s[-1] == '?' || s[-1] == '&')) {
		printf("%.*ssig=[redacted]%s\n", (int) (s - url), url, s + strcspn(s, "&"));
		return;
	}
	printf("%s\n", url);
}

static void
write_dry_run(struct publisher *p, struct request *r, const char *url)
{
	struct curl_slist *h;

	printf("POST ");
	print_url(url);
	for (h = r->headers; h; h = h->next) {
		if (strcmp(h->data, "Expect:") == 0)
			continue;
		if (strncasecmp(h->data, "Authorization:", 14) == 0)
			printf("Authorization: [redacted]\n");
		else if (strncasecmp(h->data, "X-Amz-Security-Token:", 21) == 0)	/* a session's secret */
			printf("X-Amz-Security-Token: [redacted]\n");
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

static void settle(struct publisher *p, struct request *r);

/* Start (or restart) the transfer of r: its headers are made for this attempt. */
static int
send_request(struct publisher *p, struct request *r)
{
	const char *url = p->post_url ? p->post_url : p->opt.url;
	CURL *c;

	r->resp.len = r->resp.off = 0;
	r->retry_after_ms = -1;
	r->retry_min_ms = 0;
	r->retry_at = 0;
	r->status = 0;
	curl_slist_free_all(r->headers);
	bearer_refresh(p);
	if (!(r->headers = p->t->headers(p, r, p->clock()))) {
		settle(p, r);	/* could not be signed: the target said why */
		return 0;
	}
	metric_add(p->m_bytes_out, (double) r->body.len);
	if (p->opt.dry_run) {
		write_dry_run(p, r, url);
		verdict_all(r, V_OK, NULL);
		settle(p, r);
		return 0;
	}
	if (!r->xfer->easy && !(r->xfer->easy = curl_easy_init()))
		return -1;
	c = r->xfer->easy;
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, r->body.data ? r->body.data : "");
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) r->body.len);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, r->headers);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long) p->opt.timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long) (p->opt.timeout_ms < 10000 ? p->opt.timeout_ms : 10000));
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, r->xfer->errbuf);
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
	r->xfer->errbuf[0] = '\0';
	return curl_multi_add_handle(p->multi, c) == CURLM_OK ? 0 : -1;
}

/*
 * Launch r with the messages gathered in it. A message over the target's
 * limit is refused here, unsent, with the reason. Returns 0 or an exit
 * status.
 */
int
http_launch(struct publisher *p, struct request *r)
{
	size_t i;

	for (i = 0; i < r->nseqs; i++)
		event_at(p, r->seqs[i])->state = EV_INFLIGHT;
	r->attempts = 0;
	r->first_failure = 0;
	p->inflight++;
	r->body.len = r->body.off = 0;
	p->t->body(p, r);
	if (r->nmsgs == 1 && p->lim.message_bytes && r->body.len > p->lim.message_bytes) {
		verdict_all(r, V_REJECT, "too large for the target: %zu bytes, the limit is %zu",
				r->body.len, p->lim.message_bytes);
		settle(p, r);
		return p->exit_code == EXIT_RUNTIME ? EXIT_RUNTIME : 0;
	}
	if (send_request(p, r) < 0) {
		log_kv(LOG_ERROR, "could not start a request", NULL);
		return EXIT_RUNTIME;
	}
	return 0;
}

/* A failed attempt: schedule the retry, or give up past --retry-max-time. */
static void
retry_or_give_up(struct publisher *p, struct request *r, const char *why)
{
	int64_t now = now_ms(), delay, left;
	struct event *e = event_at(p, r->seqs[0]);
	char table[160], id[64], st[16], att[16], dl[24], lf[24];

	if (!r->first_failure)
		r->first_failure = now;
	r->attempts++;
	p->last_attempt = r->attempts;
	delay = RETRY_FIRST_MS << (r->attempts < 16 ? r->attempts - 1 : 15);
	if (delay > p->opt.retry_cap_ms)
		delay = p->opt.retry_cap_ms;
	delay = delay / 2 + (int64_t) (rand() % (int) (delay / 2 + 1));	/* jitter */
	if (r->retry_after_ms >= 0 && r->retry_after_ms > delay)
		delay = r->retry_after_ms;
	else if (r->retry_min_ms > delay)
		delay = r->retry_min_ms;
	left = r->first_failure + p->opt.retry_max_ms - now;
	event_where(e, table, sizeof(table), id, sizeof(id));
	snprintf(st, sizeof(st), "%ld", r->status);
	snprintf(att, sizeof(att), "%d", r->attempts);
	snprintf(dl, sizeof(dl), "%lld", (long long) delay);
	snprintf(lf, sizeof(lf), "%lld", (long long) (left > 0 ? left : 0));
	if (delay > left) {
		log_kv(LOG_ERROR, "giving up: delivery kept failing past --retry-max-time", "table", table,
				"id", id, "http_status", r->status ? st : NULL, "error", why, "attempt", att, NULL);
		if (!p->exit_code)
			p->exit_code = EXIT_UNAVAILABLE;
		p->halt = true;
		r->retry_at = -1;	/* parked: never sent again, never acknowledged */
		return;
	}
	metric_add(p->m_retries, 1);
	log_kv(LOG_WARN, "delivery failed, will retry", "table", table, "id", id,
			"http_status", r->status ? st : NULL, "error", why, "attempt", att, "delay_ms", dl,
			"left_ms", lf, NULL);
	r->retry_at = now + delay;
}

/*
 * The target took a request: it is up again. Requests waiting out their
 * backoff go now, so that recovery after an outage takes one retry, not as
 * long as the outage (acknowledgements wait for the oldest in commit order).
 * A wait a Retry-After or the target's throttling asked for is kept.
 */
static void
wake_waiting(struct publisher *p, const struct request *ok)
{
	int64_t now = now_ms();
	int i;

	for (i = 0; i < p->opt.parallel; i++) {
		struct request *r = &p->req[i];

		if (r != ok && r->nseqs && r->retry_at > now && r->retry_after_ms < 0 && r->retry_min_ms == 0)
			r->retry_at = now;
	}
}

/* m was refused: dead-letter its events, or stop. Returns false when it stops. */
static bool
refuse(struct publisher *p, struct request *r, struct message *m)
{
	struct event *e = event_at(p, r->seqs[m->first]);
	const char *why = m->why ? m->why : "refused";
	char table[160], id[64], st[16];
	size_t i;

	event_where(e, table, sizeof(table), id, sizeof(id));
	snprintf(st, sizeof(st), "%ld", r->status);
	if (m->v == V_STOP) {
		log_kv(LOG_ERROR, "refused by the queue for a reason no event can mend, stopping without "
				"acknowledging", "table", table, "id", id, "http_status", st, "error", why, NULL);
		if (!p->exit_code)
			p->exit_code = EXIT_REJECTED;
		return false;
	}
	if (!p->dead) {
		log_kv(LOG_ERROR, "rejected by the queue, stopping without acknowledging it", "table", table,
				"id", id, "http_status", st, "error", why, "hint", "fix the target, or --dead-letter FILE", NULL);
		if (!p->exit_code)
			p->exit_code = EXIT_REJECTED;
		return false;
	}
	for (i = 0; i < m->count; i++)
		if (dead_letter(p, event_at(p, r->seqs[m->first + i]), r->status, why) < 0) {
			if (!p->exit_code)
				p->exit_code = EXIT_RUNTIME;
			return false;
		}
	log_kv(LOG_WARN, "rejected, dead-lettered", "table", table, "id", id, "http_status", st,
			"error", why, "file", p->opt.dead_letter, NULL);
	for (i = 0; i < m->count; i++)
		event_at(p, r->seqs[m->first + i])->state = EV_DONE;
	return true;
}

/*
 * Act on the verdicts: delivered messages are done, refused ones
 * dead-lettered (or the publisher stops), and the rest stay in r to be
 * sent again, alone.
 */
static void
settle(struct publisher *p, struct request *r)
{
	size_t i, j, kept = 0, nseqs = 0;
	const char *why = NULL;
	bool stop = false, answered = false;
	int64_t wall = wall_ms();

	for (i = 0; i < r->nmsgs; i++) {
		struct message *m = &r->msgs[i];

		if (m->v == V_OK) {
			for (j = 0; j < m->count; j++) {
				struct event *e = event_at(p, r->seqs[m->first + j]);

				e->state = EV_DONE;
				event_delivered(p, e, wall);
			}
			p->progress_at = now_ms();
			answered = true;
		} else if ((m->v == V_REJECT || m->v == V_STOP) && !stop && refuse(p, r, m)) {
			/* dead-lettered */
		} else {
			if (m->v == V_REJECT || m->v == V_STOP)
				stop = true;
			else if (!why)
				why = m->why;
			/* kept: moved to the front, its events too */
			memmove(&r->seqs[nseqs], &r->seqs[m->first], m->count * sizeof(*r->seqs));
			m->first = nseqs;
			nseqs += m->count;
			r->msgs[kept++] = *m;
			continue;
		}
		free(m->why);
	}
	r->nmsgs = kept;
	r->nseqs = nseqs;
	if (answered)
		wake_waiting(p, r);
	if (kept == 0) {
		request_clear(r);
		p->inflight--;
		return;
	}
	if (stop) {
		p->halt = true;
		r->retry_at = -1;
		return;
	}
	/* what is left goes again, with a body of its own */
	r->body.len = r->body.off = 0;
	p->t->body(p, r);
	retry_or_give_up(p, r, why ? why : "failed");
}

static void
completed(struct publisher *p, CURL *easy, CURLcode res)
{
	struct request *r;

	curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **) &r);
	curl_multi_remove_handle(p->multi, easy);
	r->status = 0;
	if (res == CURLE_OK) {
		curl_off_t after = 0;

		curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &r->status);
		/* Retry-After in seconds or as an HTTP date, which libcurl turns into seconds */
		if (curl_easy_getinfo(easy, CURLINFO_RETRY_AFTER, &after) == CURLE_OK && after > 0)
			r->retry_after_ms = after < 86400 ? (long) after * 1000 : 86400000L;
	}
	{
		char st[16];

		snprintf(st, sizeof(st), "%ld", r->status);
		metric_add(metric_series(M_HTTP_REQUESTS, res == CURLE_OK ? st : "error", NULL), 1);
		p->last_status = r->status;
	}
	if (res != CURLE_OK)
		verdict_all(r, V_RETRY, "%s", r->xfer->errbuf[0] ? r->xfer->errbuf : curl_easy_strerror(res));
	else if (p->t->judge)
		p->t->judge(p, r, r->status, &r->resp);
	else
		verdict_http(r, r->status, &r->resp);
	settle(p, r);
}

static void
read_completions(struct publisher *p, int *done)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(p->multi, &left)))
		if (m->msg == CURLMSG_DONE) {
			completed(p, m->easy_handle, m->data.result);
			(*done)++;
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
	int running, i, n, done = 0;

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
	if (p->opt.dry_run) {	/* nothing in flight: wait for input, a --linger or a retry */
		struct pollfd pfd = {.fd = p->in.fd, .events = POLLIN};

		if (!p->in_eof && !p->intake_done && !p->halt && !window_full(p))
			poll(&pfd, 1, timeout_ms);
		else
			poll(NULL, 0, timeout_ms);
		return 0;
	}
	curl_multi_perform(p->multi, &running);
	read_completions(p, &done);
	/* a freed slot is work to do now, not after the next wake-up */
	if (done)
		return 0;
	n = !p->in_eof && !p->intake_done && !p->halt && !window_full(p) ? 1 : 0;
	curl_multi_poll(p->multi, n ? &in : NULL, (unsigned) n, timeout_ms, NULL);
	curl_multi_perform(p->multi, &running);
	read_completions(p, &done);
	return 0;
}
