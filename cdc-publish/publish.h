/*
 * cdc-publish: state shared by its files. One struct publisher per process.
 * events.c reads input and keeps the window of events in order; http.c
 * sends them with libcurl; target.c knows what each queue API wants.
 */
#ifndef CDC_PUBLISH_H
#define CDC_PUBLISH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <curl/curl.h>

#include "../lib/buf.h"
#include "../lib/evline.h"
#include "../lib/lsn.h"

enum body_kind { BODY_EVENT, BODY_ARRAY, BODY_NDJSON };
enum target_kind { TARGET_HTTP, TARGET_RABBITMQ };
enum on_error { ONERR_STOP, ONERR_SKIP, ONERR_DEADLETTER };

struct options {
	const char *url;
	enum target_kind target;
	const char *exchange, *routing_key, *vhost;	/* rabbitmq */
	enum body_kind body;
	int batch;
	size_t batch_bytes;
	int linger_ms;
	int parallel;
	struct curl_slist *headers;
	const char *bearer_env, *bearer_file, *basic_env, *basic_file;
	const char *cacert;
	bool insecure;
	int timeout_ms;
	int retry_max_ms;			/* give up on a request after this long failing */
	int retry_cap_ms;
	const char *dead_letter;
	enum on_error on_error;
	const char *ack_fifo;
	bool tx_markers;
	bool dry_run;
	int window;					/* events held at most */
	size_t max_line;
	int stop_timeout_ms;
	int verbose;
};

enum ev_state { EV_PENDING, EV_INFLIGHT, EV_DONE };

struct event {
	char *line;				/* owned, without its newline */
	size_t len;
	enum ev_op op;
	uint64_t key;			/* ordering key: schema, table and key columns */
	uint64_t key2;			/* an update's key before it, when that differs; else 0 */
	uint64_t tkey;			/* the table alone */
	bool barrier;			/* truncate, schema, ddl: ordered with every event of its table */
	lsn_t lsn;				/* commit lines: the position to acknowledge */
	unsigned long lineno;
	enum ev_state state;
	int64_t arrived;		/* ms */
};

struct request {
	CURL *easy;
	uint64_t first, count;	/* events [first, first + count) minus those skipped */
	uint64_t *seqs;			/* the events it carries */
	size_t nseqs;
	struct buf body, resp;
	struct curl_slist *headers;
	int attempts;
	int64_t first_failure;	/* ms, 0 if none yet */
	int64_t retry_at;		/* ms, 0 when not waiting */
	long retry_after_ms;	/* from a Retry-After header, -1 if none */
	char errbuf[CURL_ERROR_SIZE];
};

struct publisher {
	struct options opt;
	struct linereader in;
	bool in_eof;
	char *auth;				/* "Authorization: ..." header line, secret */
	char *userpwd;			/* basic credentials, secret */

	/* the window: events [base, head) in input order */
	struct event *ev;
	size_t cap;
	uint64_t base, head;

	/* delivery */
	CURLM *multi;
	struct request *req;	/* opt.parallel slots */
	int inflight;

	/* acknowledgement */
	int ackfd;
	lsn_t acked;

	FILE *dead;
	bool halt;				/* no new requests: signal, refusal, giving up */
	int64_t linger_until;	/* ms: a partial batch waits until then, 0 if none */
	bool intake_done;		/* no more input taken: a bad line */
	int exit_code;			/* once a fatal error stopped intake */
	uint64_t delivered, dead_lettered, skipped;
};

/* events.c */
int events_read(struct publisher *p);
int events_retire(struct publisher *p);
struct event *event_at(struct publisher *p, uint64_t seq);
int dead_letter(struct publisher *p, struct event *e, long status, const char *why);
bool window_full(const struct publisher *p);

/* http.c */
int http_init(struct publisher *p);
void http_cleanup(struct publisher *p);
int http_dispatch(struct publisher *p);
int http_step(struct publisher *p, int timeout_ms);

/* target.c */
void target_body(struct publisher *p, struct request *r);
struct curl_slist *target_headers(struct publisher *p, struct request *r);
const char *target_url(struct publisher *p);
int target_judge(struct publisher *p, long status, const struct buf *resp, char *why, size_t whysz);
int target_max_batch(const struct publisher *p);

enum { JUDGE_OK, JUDGE_RETRY, JUDGE_REJECT };

#endif
