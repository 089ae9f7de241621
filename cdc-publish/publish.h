/*
 * cdc-publish: state shared by its files. One struct publisher per process.
 *
 *   main.c      options, set-up, the loop
 *   events.c    input lines into the window: what each carries, found once;
 *               packing; retirement in order and acknowledgements
 *   order.c     which waiting events may go now (per-row order) and into
 *               which request; no libcurl
 *   http.c      the requests with libcurl: attempts, retries, answers
 *   target.c    the table of targets; targets/NAME.c one queue API each
 */
#ifndef CDC_PUBLISH_H
#define CDC_PUBLISH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "../lib/buf.h"
#include "../lib/evline.h"
#include "../lib/lsn.h"
#include "../lib/metrics.h"

struct curl_slist;
struct transfer;			/* http.c's, one per request slot */
struct target_ops;

enum body_kind { BODY_EVENT, BODY_ARRAY, BODY_NDJSON };
enum on_error { ONERR_STOP, ONERR_SKIP, ONERR_DEADLETTER };
enum order_key_kind { OKEY_ROW, OKEY_TABLE, OKEY_NONE };

struct options {
	const char *url;
	const struct target_ops *target;
	const char *exchange, *routing_key, *vhost;	/* rabbitmq */
	const char *endpoint;		/* sqs: where requests go, when not the queue URL's host */
	enum body_kind body;
	bool body_set;
	int batch;
	bool batch_set;
	size_t batch_bytes;
	int linger_ms;
	int parallel;
	int pack;					/* 0: none; -1: one message per transaction; N: up to N events */
	size_t max_message;			/* the target's message limit, when the user sets it */
	enum order_key_kind order_key;
	bool order_key_set;
	struct curl_slist *headers;
	const char *bearer_env, *bearer_file, *bearer_cmd, *basic_env, *basic_file;
	int bearer_refresh_ms;		/* --bearer-command's token is renewed this often */
	const char *cred_env, *cred_file;
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
	int stall_timeout_ms;		/* 0: never */
	struct metrics_opt metrics;
	int verbose;
};

enum ev_state { EV_PENDING, EV_INFLIGHT, EV_DONE };

/*
 * One input line and what it carries, found once when it is read: its
 * op, id, table, ordering keys. Offsets point into line.
 */
struct event {
	char *line;				/* owned, without its newline */
	size_t len;
	enum ev_op op;
	uint32_t id_off, id_len;	/* "id", or "lsn" for lines without one; 0 length if neither */
	bool id_is_lsn;
	uint32_t tbl_off, tbl_len;	/* the raw "schema" value (its text); 0 length if none */
	uint32_t tname_off, tname_len;	/* the raw "table" value */
	uint32_t esc;			/* '"' and '\\' in line: what escaping it as a JSON string adds */
	uint64_t key;			/* ordering key: schema, table and key columns */
	uint64_t key2;			/* an update's key before it, when that differs; else 0 */
	uint64_t tkey;			/* the table alone */
	bool barrier;			/* truncate, schema, ddl: ordered with every event of its table */
	lsn_t lsn;				/* commit lines: the position to acknowledge */
	unsigned long lineno;
	enum ev_state state;
	uint32_t msg_len;		/* first event of a queue message: its events (0 while open); else 0 */
	bool in_msg;			/* part of a message that another event heads */
	int64_t arrived;		/* ms */
	int64_t commit_ms;		/* its transaction's commit time (wall clock, ms), 0 if unknown */
};

/*
 * What the answer said about one message of a request: delivered; try
 * again; refused for what it holds (dead-lettered with --dead-letter);
 * refused for what no event can mend (credentials, a missing queue):
 * stop without acknowledging, whatever --dead-letter says.
 */
enum verdict { V_OK, V_RETRY, V_REJECT, V_STOP };

struct message {
	size_t first, count;	/* its events: seqs[first, first + count) */
	enum verdict v;
	char *why;				/* owned, for V_REJECT and V_RETRY; NULL if none */
};

struct request {
	struct transfer *xfer;	/* http.c's */
	uint64_t *seqs;			/* the events it carries, in input order */
	size_t nseqs, seqcap;
	struct message *msgs;	/* how they are grouped into queue messages */
	size_t nmsgs, msgcap;
	struct buf body, resp;
	struct curl_slist *headers;
	long status;			/* of the last answer, 0 if none */
	int attempts;
	int64_t first_failure;	/* ms, 0 if none yet */
	int64_t retry_at;		/* ms, 0 when not waiting, -1 when parked for good */
	long retry_after_ms;	/* from a Retry-After header, -1 if none */
	long retry_min_ms;		/* the target's least backoff for this answer (throttling) */
	void *tstate;			/* the target's, per request (ids of batch entries...) */
};

/* The target's limits, set by its setup: 0 means none. */
struct limits {
	int messages;			/* queue messages per request */
	size_t request_bytes;	/* body of one request */
	size_t message_bytes;	/* one queue message as the API counts it */
};

struct publisher {
	struct options opt;
	const struct target_ops *t;
	void *tdata;			/* the target's own state (credentials, URLs) */
	const char *post_url;	/* where requests go, when the target's setup derived it (in tdata); else opt.url */
	struct limits lim;
	struct linereader in;
	bool in_eof;
	char *auth;				/* "Authorization: ..." header line, secret */
	struct {				/* the --bearer-file as auth was read from it */
		int64_t mtime_ns, size, ino;
		int64_t loaded;		/* ms: when the token was had */
		bool stale;			/* refused: have another before the next attempt */
	} auth_file;
	char *userpwd;			/* basic credentials, secret */
	char *cred;				/* --credentials-env/-file, secret */
	int64_t (*clock)(void);	/* wall clock, seconds since the epoch: signatures and tokens */

	/* the window: events [base, head) in input order */
	struct event *ev;
	size_t cap;
	uint64_t base, head;
	bool in_tx;				/* between a begin and its commit */
	uint64_t tx_first;		/* the current transaction's first line */
	struct {				/* --pack: the message being packed */
		bool open;
		uint64_t head;		/* its first event */
		uint32_t count;
		size_t len, esc;	/* its events' bytes and escapes */
		int64_t opened;		/* ms */
		int64_t until;		/* ms: it is sent then if input stays idle; 0 if not waiting */
	} pk;

	/* order.c: keys in flight or waiting, stamped per dispatch */
	struct keyset {
		uint64_t *keys;
		unsigned *gen;
		size_t mask;
		unsigned cur;
	} blocked;

	/* delivery */
	void *multi;			/* http.c's CURLM */
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
	int64_t tx_commit_ms;	/* the current transaction's commit time, from its begin line */
	int64_t refusing_since;	/* ms: refusals that may be a broker restarting began; 0 after an acceptance */
	int64_t progress_at;	/* ms: when an event was last delivered or dead-lettered */
	long last_status;		/* the last answer's HTTP status, 0 if none */
	int last_attempt;		/* the attempt of the last failure */
	struct series *m_lines, *m_bytes_in, *m_bytes_out, *m_retries, *m_latency;
};

/*
 * A queue API. One file per target fills one of these; the loop calls
 * through it and never names a target. Every function but setup may be
 * NULL where the generic behaviour (target.c) fits.
 */
struct target_ops {
	const char *name;
	/*
	 * The answer can accept some messages of a request and not others: a
	 * message is then never in a request with an earlier one of its row,
	 * which a retry would overtake.
	 */
	bool partial;
	/*
	 * setup reads URL itself, which need not be http(s):// (Pub/Sub's
	 * projects/P/topics/T); it comes with --target.
	 */
	bool own_url;
	/*
	 * Check the options, read credentials (p->cred), derive the request
	 * URL, set p->lim. Returns 0, or an exit status after one log line.
	 */
	int (*setup)(struct publisher *p);
	void (*cleanup)(struct publisher *p);
	/* Bytes one message of payload n bytes (esc escapes, see struct event) takes in a body. */
	size_t (*cost)(const struct publisher *p, size_t n, size_t esc);
	/* Write r's body from its messages into r->body (emptied first). */
	void (*body)(struct publisher *p, struct request *r);
	/*
	 * May the message headed at seq join r, which has messages already
	 * (Pub/Sub: one ordering key per request)? NULL: always.
	 */
	bool (*joins)(struct publisher *p, const struct request *r, uint64_t seq);
	/*
	 * The request's URL and headers for one attempt, signed at now
	 * (seconds since the epoch): called again on every retry. The list is
	 * the caller's to free. NULL when it cannot be signed now (a token
	 * could not be had): the target has set the verdicts (V_RETRY with
	 * the reason, or V_REJECT) and nothing is sent.
	 */
	struct curl_slist *(*headers)(struct publisher *p, struct request *r, int64_t now);
	/*
	 * Read an answer (status 0: none, the transfer failed) and set each
	 * message's verdict; r->retry_min_ms for throttling that sends no
	 * Retry-After.
	 */
	void (*judge)(struct publisher *p, struct request *r, long status, const struct buf *resp);
};

/* events.c */
int events_read(struct publisher *p);
int events_retire(struct publisher *p);
struct event *event_at(struct publisher *p, uint64_t seq);
int dead_letter(struct publisher *p, struct event *e, long status, const char *why);
void event_delivered(struct publisher *p, const struct event *e, int64_t wall);
/* "schema.table" (empty if none) and the id of e, for logs */
void event_where(const struct event *e, char *table, size_t tsz, char *id, size_t isz);
bool window_full(const struct publisher *p);
void event_id(const struct event *e, const char **s, size_t *n);

/* main.c */
/* secret.c */
char *read_secret(const char *env, const char *file);
bool bearer_load(struct publisher *p);
bool bearer_refresh(struct publisher *p);
void bearer_expire(struct publisher *p);

/* order.c */
int order_init(struct publisher *p);
void order_free(struct publisher *p);
int order_dispatch(struct publisher *p);

/* http.c */
int http_init(struct publisher *p);
void http_cleanup(struct publisher *p);
int http_launch(struct publisher *p, struct request *r);
int http_step(struct publisher *p, int timeout_ms);
void request_clear(struct request *r);

/* target.c: the table, and what several targets share */
const struct target_ops *target_find(const char *name);
const char *target_names(char *out, size_t outsz);
void verdict_all(struct request *r, enum verdict v, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void verdict_set(struct message *m, enum verdict v, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
bool status_retriable(long status);
void verdict_http(struct request *r, long status, const struct buf *resp);
void put_message_payload(struct publisher *p, struct buf *b, const struct request *r,
		const struct message *m);
void message_id(struct publisher *p, const struct request *r, const struct message *m,
		struct buf *b);
bool message_order_key(struct publisher *p, const struct request *r, const struct message *m,
		char *out, size_t outsz);
size_t payload_len(struct publisher *p, const struct request *r, const struct message *m,
		size_t *esc);

#endif
