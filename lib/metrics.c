#define _GNU_SOURCE	/* getaddrinfo flags */
#include "metrics.h"

#include <errno.h>
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "buf.h"
#include "evline.h"
#include "exitcode.h"
#include "lsn.h"
#include "util.h"

/* The table: every metric of every program. Each program exposes those it names at start. */
const struct metric_def metric_defs[M__COUNT] = {
	[M_BUILD_INFO] = {"pgcdc_build_info", 'g', {"version"}, MU_COUNT, "Always 1: the program's version."},
	[M_START_TIME] = {"pgcdc_start_time_seconds", 'g', {NULL}, MU_TIME, "When the process started (Unix time)."},
	[M_LAST_ERROR] = {"pgcdc_last_error_timestamp_seconds", 'g', {"level", "msg"}, MU_TIME,
		"When the latest warn or error log line was written; its level and message are labels."},
	[M_LINES_IN] = {"pgcdc_lines_in_total", 'c', {NULL}, MU_COUNT, "Input lines read, well-formed or not."},
	[M_EVENTS_IN] = {"pgcdc_events_in_total", 'c', {"op", "table"}, MU_COUNT, "Events read."},
	[M_EVENTS_OUT] = {"pgcdc_events_out_total", 'c', {"op", "table"}, MU_COUNT,
		"Events passed on: written (pg-capture), kept (cdc-filter), delivered to the queue (cdc-publish)."},
	[M_EVENTS_DROPPED] = {"pgcdc_events_dropped_total", 'c', {"op", "table"}, MU_COUNT,
		"Events the filter did not keep."},
	[M_EVENTS_REWRITTEN] = {"pgcdc_events_rewritten_total", 'c', {NULL}, MU_COUNT,
		"Events whose columns were dropped, kept or masked."},
	[M_BYTES_IN] = {"pgcdc_bytes_in_total", 'c', {NULL}, MU_BYTES, "Bytes of input lines read."},
	[M_BYTES_OUT] = {"pgcdc_bytes_out_total", 'c', {NULL}, MU_BYTES,
		"Bytes written out (pg-capture, cdc-filter) or sent in request bodies (cdc-publish)."},
	[M_BAD_LINES] = {"pgcdc_bad_lines_total", 'c', {NULL}, MU_COUNT,
		"Input lines that were not a valid event (skipped or dead-lettered)."},
	[M_EMITTED_LSN] = {"pgcdc_emitted_lsn", 'g', {NULL}, MU_LSN, "Commit position of the last transaction written."},
	[M_ACKED_LSN] = {"pgcdc_acknowledged_lsn", 'g', {NULL}, MU_LSN,
		"Last position acknowledged: confirmed to the server (pg-capture), written to the ack pipe (cdc-publish)."},
	[M_SERVER_LSN] = {"pgcdc_server_wal_lsn", 'g', {NULL}, MU_LSN, "The server's current WAL position, as last polled."},
	[M_LAG_BYTES] = {"pgcdc_lag_bytes", 'g', {NULL}, MU_BYTES,
		"The server's WAL position minus the acknowledged position."},
	[M_LAG_SECONDS] = {"pgcdc_lag_seconds", 'g', {NULL}, MU_SECONDS,
		"Age of the oldest unacknowledged commit (0 when nothing is pending)."},
	[M_PENDING_TX] = {"pgcdc_pending_transactions", 'g', {NULL}, MU_COUNT,
		"Transactions written and not yet acknowledged."},
	[M_PENDING_EVENTS] = {"pgcdc_pending_events", 'g', {NULL}, MU_COUNT, "Events read and not yet acknowledged."},
	[M_RETAINED_WAL] = {"pgcdc_slot_retained_wal_bytes", 'g', {NULL}, MU_BYTES,
		"WAL the server keeps for the slot (current position minus restart_lsn)."},
	[M_WAL_STATUS] = {"pgcdc_slot_wal_status", 'g', {"status"}, MU_COUNT,
		"1 for the slot's wal_status (reserved, extended, unreserved, lost), 0 for the others seen."},
	[M_SNAP_ROWS] = {"pgcdc_snapshot_rows_total", 'c', {"table"}, MU_COUNT, "Rows a snapshot delivered as read events."},
	[M_SNAP_ESTIMATE] = {"pgcdc_snapshot_rows_estimate", 'g', {"table"}, MU_COUNT,
		"The table's row estimate (pg_class.reltuples) when its snapshot started."},
	[M_SNAP_PENDING] = {"pgcdc_snapshot_tables_pending", 'g', {NULL}, MU_COUNT, "Tables a snapshot has still to read."},
	[M_RECONNECTS] = {"pgcdc_reconnects_total", 'c', {NULL}, MU_COUNT, "Replication connections made again after a loss."},
	[M_HTTP_REQUESTS] = {"pgcdc_http_requests_total", 'c', {"status"}, MU_COUNT,
		"Requests answered, by HTTP status (\"error\": no answer)."},
	[M_HTTP_RETRIES] = {"pgcdc_http_retries_total", 'c', {NULL}, MU_COUNT, "Requests sent again after a failure."},
	[M_DEAD_LETTERED] = {"pgcdc_events_dead_lettered_total", 'c', {"table"}, MU_COUNT,
		"Events the queue refused for good, written to --dead-letter."},
	[M_LATENCY] = {"pgcdc_delivery_latency_seconds", 'h', {NULL}, MU_SECONDS,
		"From an event's commit to the queue's acceptance."},
	[M_IN_FLIGHT] = {"pgcdc_requests_in_flight", 'g', {NULL}, MU_COUNT, "Requests sent or waiting to be sent again."},
	[M_LAST_HEARTBEAT] = {"pgcdc_last_heartbeat_timestamp_seconds", 'g', {NULL}, MU_TIME,
		"Commit time of the last heartbeat event delivered."},
};

static const double latency_le[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
#define NBUCKETS (sizeof(latency_le) / sizeof(latency_le[0]))

#define HASH_SIZE 4096

struct evcache {
	int op;
	char table[256];
	size_t n;
	struct series *s;
};
#define TICK_MS 1000

static struct {
	bool used[M__COUNT];
	struct series *head[M__COUNT], **tail[M__COUNT];
	size_t nseries[M__COUNT];
	struct series *plain[M__COUNT];	/* the one series of an unlabelled metric */
	struct series *hash[HASH_SIZE];
	struct evcache evcache[M__COUNT];	/* metric_event's last series */
	struct buf consts;				/* program="...",slot="..." */
	char *file, *tmpfile;
	int64_t next_tick, started_ms;
	double rate_v[M__COUNT];		/* metric_rate's last reading, and when */
	int64_t rate_at[M__COUNT];
	bool started, warned_cap;
	/* the latest warn/error line */
	char last_msg[200];
	int last_level;
	double last_at;
	/* the HTTP server's copy of the text */
	struct MHD_Daemon *mhd;
	pthread_mutex_t lock;
	pthread_t main_thread;
	char *served;
	size_t served_len;
} M = {.lock = PTHREAD_MUTEX_INITIALIZER};

static double
wall_now(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (double) tv.tv_sec + tv.tv_usec / 1e6;
}

static uint64_t
hash_bytes(uint64_t h, const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		h = (h ^ (unsigned char) s[i]) * 1099511628211ULL;
	return (h ^ 0xff) * 1099511628211ULL;	/* separates ("ab","c") from ("a","bc") */
}

static bool
same(const char *have, const char *v, size_t n)
{
	if (!have)
		return v == NULL;
	return v && strncmp(have, v, n) == 0 && have[n] == '\0';
}

struct series *
metric_seriesn(enum metric m, const char *v1, size_t n1, const char *v2, size_t n2)
{
	const struct metric_def *d = &metric_defs[m];
	struct series *s;
	uint64_t h = 1469598103934665603ULL ^ (uint64_t) m;

	if (!d->labels[0])
		v1 = NULL;
	if (!d->labels[1])
		v2 = NULL;
	if (v1)
		h = hash_bytes(h, v1, n1);
	if (v2)
		h = hash_bytes(h, v2, n2);
	for (s = M.hash[h % HASH_SIZE]; s; s = s->hnext)
		if (s->m == m && same(s->lv[0], v1, n1) && same(s->lv[1], v2, n2))
			return s;
	if (M.nseries[m] >= METRIC_MAX_SERIES) {
		/* bounded cardinality: past the limit, tables are counted together */
		int t = d->labels[0] && strcmp(d->labels[0], "table") == 0 ? 0 :
				d->labels[1] && strcmp(d->labels[1], "table") == 0 ? 1 : -1;

		if (!M.warned_cap) {
			M.warned_cap = true;
			log_kv(LOG_WARN, "too many tables to count apart: the others are counted as table=_other",
					"metric", d->name, NULL);
		}
		if (t == 0 && !same(v1, "_other", 6))
			return metric_seriesn(m, "_other", 6, v2, n2);
		if (t == 1 && !same(v2, "_other", 6))
			return metric_seriesn(m, v1, n1, "_other", 6);
	}
	s = xcalloc(1, sizeof(*s));
	s->m = m;
	s->lv[0] = v1 ? xstrndup(v1, n1) : NULL;
	s->lv[1] = v2 ? xstrndup(v2, n2) : NULL;
	if (d->type == 'h')
		s->buckets = xcalloc(NBUCKETS + 1, sizeof(*s->buckets));
	s->hnext = M.hash[h % HASH_SIZE];
	M.hash[h % HASH_SIZE] = s;
	if (!M.tail[m])
		M.tail[m] = &M.head[m];
	*M.tail[m] = s;
	M.tail[m] = &s->next;
	M.nseries[m]++;
	return s;
}

struct series *
metric_series(enum metric m, const char *v1, const char *v2)
{
	return metric_seriesn(m, v1, v1 ? strlen(v1) : 0, v2, v2 ? strlen(v2) : 0);
}

static struct series *
plain(enum metric m)
{
	if (!M.plain[m])
		M.plain[m] = metric_series(m, NULL, NULL);
	return M.plain[m];
}

struct series *
metric_event(enum metric m, const struct ev_head *h)
{
	/* events come in runs of one table: the last one's series is kept per metric */
	struct evcache *last = M.evcache;
	char t[256];
	size_t n = 0;

	if (h->table.type == J_STRING && h->schema.n + h->table.n + 1 < sizeof(t)) {
		memcpy(t, h->schema.p, h->schema.n);
		t[h->schema.n] = '.';
		memcpy(t + h->schema.n + 1, h->table.p, h->table.n);
		n = h->schema.n + 1 + h->table.n;
	}
	if (last[m].s && last[m].op == (int) h->op && last[m].n == n && memcmp(last[m].table, t, n) == 0)
		return last[m].s;
	last[m].op = (int) h->op;
	last[m].n = n;
	memcpy(last[m].table, t, n);
	return last[m].s = metric_seriesn(m, ev_op_name(h->op), strlen(ev_op_name(h->op)), t, n);
}

void
metric_inc(enum metric m, double d)
{
	plain(m)->v += d;
}

void
metric_set(enum metric m, double v)
{
	plain(m)->v = v;
}

double
metric_get(enum metric m)
{
	return plain(m)->v;
}

double
metric_total(enum metric m)
{
	const struct series *s;
	double t = 0;

	for (s = M.head[m]; s; s = s->next)
		t += s->v;
	return t;
}

double
metric_rate(enum metric m, int64_t now)
{
	double v = metric_defs[m].labels[0] ? metric_total(m) : metric_get(m), r;
	int64_t since = M.rate_at[m] ? M.rate_at[m] : M.started_ms;

	r = now > since ? (v - M.rate_v[m]) * 1000.0 / (double) (now - since) : 0;
	M.rate_v[m] = v;
	M.rate_at[m] = now;
	return r;
}

void
metric_observe(struct series *s, double v)
{
	size_t i;

	for (i = 0; i < NBUCKETS && v > latency_le[i]; i++)
		;
	s->buckets[i]++;
	s->v++;
	s->sum += v;
}

void
metric_set_labelled(enum metric m, const char *v1, const char *v2, double v)
{
	struct series *s;

	if (m == M_WAL_STATUS)
		for (s = M.head[m]; s; s = s->next)
			s->v = 0;
	metric_series(m, v1, v2)->v = v;
}

/* The latest warn or error line, for M_LAST_ERROR (log.c calls this). */
static void
on_log(int level, const char *msg)
{
	/* the HTTP server's thread logs too: only the program's own lines count, and only its thread writes here */
	if (level < LOG_WARN || !pthread_equal(pthread_self(), M.main_thread))
		return;
	snprintf(M.last_msg, sizeof(M.last_msg), "%s", msg);
	M.last_level = level;
	M.last_at = wall_now();
}

const char *
metrics_last_error(void)
{
	return M.last_at ? M.last_msg : NULL;
}

/* ---- the text format ---- */

static void
put_label_value(struct buf *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			buf_putc(b, '\\'), buf_putc(b, *s);
		else if (*s == '\n')
			buf_puts(b, "\\n");
		else
			buf_putc(b, *s);
	}
}

static void
put_number(struct buf *b, double v)
{
	if (isnan(v))
		buf_puts(b, "NaN");
	else if (isinf(v))
		buf_puts(b, v > 0 ? "+Inf" : "-Inf");
	else if (v == floor(v) && fabs(v) < 1e15)
		buf_printf(b, "%.0f", v);
	else
		buf_printf(b, "%.17g", v);
}

/* name{consts,labels[,le]} */
static void
put_name(struct buf *b, const char *name, const char *suffix, const struct series *s, const char *const *lv,
		const char *le)
{
	const struct metric_def *d = &metric_defs[s->m];
	int i;

	buf_puts(b, name);
	buf_puts(b, suffix);
	buf_putc(b, '{');
	buf_put(b, M.consts.data, M.consts.len);
	for (i = 0; i < 2 && d->labels[i]; i++) {
		buf_printf(b, ",%s=\"", d->labels[i]);
		put_label_value(b, lv[i] ? lv[i] : "");
		buf_putc(b, '"');
	}
	if (le)
		buf_printf(b, ",le=\"%s\"", le);
	buf_puts(b, "} ");
}

char *
metrics_render(void)
{
	struct buf b = {0};
	const struct series *s;
	int m;
	size_t i;

	for (m = 0; m < M__COUNT; m++) {
		const struct metric_def *d = &metric_defs[m];

		if (!M.used[m])
			continue;
		if (m == M_LAST_ERROR) {
			const char *lv[2] = {M.last_level == LOG_ERROR ? "error" : "warn", M.last_msg};
			struct series e = {.m = M_LAST_ERROR};

			if (M.last_at == 0)
				continue;
			buf_printf(&b, "# HELP %s %s\n# TYPE %s gauge\n", d->name, d->help, d->name);
			put_name(&b, d->name, "", &e, lv, NULL);
			put_number(&b, floor(M.last_at * 1000) / 1000);
			buf_putc(&b, '\n');
			continue;
		}
		if (!M.head[m])
			continue;
		buf_printf(&b, "# HELP %s %s\n# TYPE %s %s\n", d->name, d->help, d->name,
				d->type == 'c' ? "counter" : d->type == 'h' ? "histogram" : "gauge");
		for (s = M.head[m]; s; s = s->next) {
			const char *const *lv = (const char *const *) s->lv;

			if (d->type != 'h') {
				put_name(&b, d->name, "", s, lv, NULL);
				put_number(&b, s->v);
				buf_putc(&b, '\n');
				continue;
			}
			{
				uint64_t cum = 0;
				char le[32];

				for (i = 0; i <= NBUCKETS; i++) {
					cum += s->buckets[i];
					if (i < NBUCKETS)
						snprintf(le, sizeof(le), "%g", latency_le[i]);
					put_name(&b, d->name, "_bucket", s, lv, i < NBUCKETS ? le : "+Inf");
					buf_printf(&b, "%llu\n", (unsigned long long) cum);
				}
				put_name(&b, d->name, "_sum", s, lv, NULL);
				put_number(&b, s->sum);
				buf_putc(&b, '\n');
				put_name(&b, d->name, "_count", s, lv, NULL);
				put_number(&b, s->v);
				buf_putc(&b, '\n');
			}
		}
	}
	buf_putc(&b, '\0');
	return b.data;
}

/* ---- file and server ---- */

static void
write_file(const char *text)
{
	FILE *f;

	if (!M.file)
		return;
	/* write + rename: a reader sees the old file or the new one, never half of one */
	if (!(f = fopen(M.tmpfile, "w"))) {
		log_kv(LOG_WARN, "could not write the metrics file", "file", M.tmpfile, "error", strerror(errno), NULL);
		return;
	}
	fputs(text, f);
	if (fclose(f) != 0 || rename(M.tmpfile, M.file) != 0) {
		log_kv(LOG_WARN, "could not write the metrics file", "file", M.file, "error", strerror(errno), NULL);
		unlink(M.tmpfile);
	}
}

static enum MHD_Result
answer(void *cls, struct MHD_Connection *conn, const char *url, const char *method, const char *version,
		const char *upload, size_t *upload_size, void **state)
{
	struct MHD_Response *r;
	enum MHD_Result rc;
	bool found = strcmp(url, "/metrics") == 0;
	char *copy = NULL;
	size_t len = 0;

	(void) cls, (void) version, (void) upload, (void) upload_size, (void) state;
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		r = MHD_create_response_from_buffer(0, (void *) "", MHD_RESPMEM_PERSISTENT);
		MHD_add_response_header(r, "Allow", "GET, HEAD");
		rc = MHD_queue_response(conn, MHD_HTTP_METHOD_NOT_ALLOWED, r);
		MHD_destroy_response(r);
		return rc;
	}
	if (found) {
		pthread_mutex_lock(&M.lock);
		if (M.served) {
			len = M.served_len;
			copy = xmalloc(len + 1);
			memcpy(copy, M.served, len + 1);
		}
		pthread_mutex_unlock(&M.lock);
	}
	if (copy)
		r = MHD_create_response_from_buffer(len, copy, MHD_RESPMEM_MUST_FREE);
	else
		r = MHD_create_response_from_buffer(10, (void *) "not found\n", MHD_RESPMEM_PERSISTENT);
	MHD_add_response_header(r, "Content-Type", found ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain");
	rc = MHD_queue_response(conn, found ? MHD_HTTP_OK : MHD_HTTP_NOT_FOUND, r);
	MHD_destroy_response(r);
	return rc;
}

static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[256];
	size_t n;

	(void) cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	log_kv(LOG_WARN, "metrics server", "error", msg, NULL);
}

/* "ADDR:PORT", "[ADDR6]:PORT" or ":PORT" (every address) */
static int
start_server(const char *listen)
{
	char host[256];
	const char *colon = strrchr(listen, ':');
	const char *port = colon ? colon + 1 : "";
	struct addrinfo hints = {.ai_flags = AI_PASSIVE | AI_NUMERICSERV, .ai_socktype = SOCK_STREAM}, *ai = NULL;
	size_t n = colon ? (size_t) (colon - listen) : 0;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
	int rc;

	if (n && listen[0] == '[' && listen[n - 1] == ']')
		listen++, n -= 2;
	if (n >= sizeof(host))
		n = sizeof(host) - 1;
	memcpy(host, listen, n);
	host[n] = '\0';
	if ((rc = getaddrinfo(n ? host : NULL, port, &hints, &ai)) != 0) {
		log_kv(LOG_ERROR, "could not listen for metrics", "listen", listen, "error", gai_strerror(rc), NULL);
		return EXIT_USAGE;
	}
	if (ai->ai_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	/* the logger first: libmicrohttpd warns (through its own logger) when it is not */
	M.mhd = MHD_start_daemon(flags, 0, NULL, NULL, answer, NULL,
			MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
			MHD_OPTION_SOCK_ADDR, ai->ai_addr,
			MHD_OPTION_CONNECTION_LIMIT, (unsigned) 16,
			MHD_OPTION_CONNECTION_TIMEOUT, (unsigned) 10,
			MHD_OPTION_END);
	freeaddrinfo(ai);
	if (!M.mhd) {
		log_kv(LOG_ERROR, "could not listen for metrics", "listen", listen,
				"error", errno ? strerror(errno) : "refused", NULL);
		return EXIT_RUNTIME;
	}
	return 0;
}

/* ---- options and start ---- */

static bool
label_name_ok(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || (n >= 2 && s[0] == '_' && s[1] == '_'))
		return false;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || s[i] == '_' ||
				(i > 0 && s[i] >= '0' && s[i] <= '9')))
			return false;
	return true;
}

int
metrics_option(struct metrics_opt *o, int opt, const char *val)
{
	const char *eq;

	switch (opt) {
	case OPT_METRICS_FILE:
		if (!*val)
			return usage_error("--metrics-file needs a path"), -1;
		o->file = val;
		return 1;
	case OPT_METRICS_LISTEN:
		if (!strchr(val, ':') || !*(strrchr(val, ':') + 1))
			return usage_error("invalid --metrics-listen \"%s\" (ADDR:PORT, e.g. 127.0.0.1:9187)", val), -1;
		o->listen = val;
		return 1;
	case OPT_METRICS_LABEL:
		eq = strchr(val, '=');
		if (!eq || !label_name_ok(val, (size_t) (eq - val)) || strncmp(val, "le=", 3) == 0)
			return usage_error("invalid --metrics-label \"%s\" (NAME=VALUE, NAME a Prometheus label name)", val), -1;
		if (o->nlabels == (int) (sizeof(o->labels) / sizeof(o->labels[0])))
			return usage_error("too many --metrics-label options (8 at most)"), -1;
		o->labels[o->nlabels++] = val;
		return 1;
	case OPT_LOG_FORMAT:
		if (strcmp(val, "json") == 0)
			log_set_format(LOG_FORMAT_JSON);
		else if (strcmp(val, "logfmt") == 0)
			log_set_format(LOG_FORMAT_LOGFMT);
		else
			return usage_error("invalid --log-format \"%s\" (logfmt or json)", val), -1;
		return 1;
	}
	return 0;
}

static void
add_const(const char *name, size_t n, const char *value)
{
	if (M.consts.len)
		buf_putc(&M.consts, ',');
	buf_put(&M.consts, name, n);
	buf_puts(&M.consts, "=\"");
	put_label_value(&M.consts, value);
	buf_putc(&M.consts, '"');
}

int
metrics_start(const struct metrics_opt *o, const enum metric *used, size_t n, ...)
{
	const char *name, *value;
	va_list ap;
	size_t i;
	int rc;

	add_const("program", 7, progname);
	va_start(ap, n);
	while ((name = va_arg(ap, const char *)) != NULL) {
		value = va_arg(ap, const char *);
		if (value)
			add_const(name, strlen(name), value);
	}
	va_end(ap);
	for (i = 0; i < (size_t) o->nlabels; i++) {
		const char *eq = strchr(o->labels[i], '=');

		add_const(o->labels[i], (size_t) (eq - o->labels[i]), eq + 1);
	}
	M.used[M_BUILD_INFO] = M.used[M_START_TIME] = M.used[M_LAST_ERROR] = true;
	metric_series(M_BUILD_INFO, PGCDC_VERSION, NULL)->v = 1;
	metric_set(M_START_TIME, floor(wall_now()));
	for (i = 0; i < n; i++) {
		M.used[used[i]] = true;
		if (!metric_defs[used[i]].labels[0])
			plain(used[i]);
	}
	M.main_thread = pthread_self();
	log_set_hook(on_log);
	M.started = true;
	M.started_ms = now_ms();
	if (o->file) {
		M.file = xstrdup(o->file);
		M.tmpfile = xmalloc(strlen(o->file) + 32);
		sprintf(M.tmpfile, "%s.tmp.%ld", o->file, (long) getpid());
	}
	if (o->listen && (rc = start_server(o->listen)) != 0)
		return rc;
	metrics_tick(0, true);
	return 0;
}

void
metrics_tick(int64_t now, bool force)
{
	char *text;

	if (!M.started || (!M.file && !M.mhd) || (!force && now < M.next_tick))
		return;
	M.next_tick = now + TICK_MS;
	text = metrics_render();
	write_file(text);
	if (M.mhd) {
		pthread_mutex_lock(&M.lock);
		free(M.served);
		M.served = text;
		M.served_len = strlen(text);
		pthread_mutex_unlock(&M.lock);
	}
	else
		free(text);
}

/* ---- log lines fed by the table ---- */

static void
format_value(const struct metric_def *d, double v, char *out, size_t outsz)
{
	if (d->unit == MU_LSN)
		lsn_format((lsn_t) v, out);
	else if (d->unit == MU_SECONDS)
		snprintf(out, outsz, "%.3f", v);
	else
		snprintf(out, outsz, "%.0f", v);
}

void
metrics_log(enum log_level level, const char *msg, const struct metric_field *fields, size_t n, ...)
{
	/* log_vkv takes its pairs from a va_list: build one line's pairs here, then pass them through */
	char vals[16][32];
	const char *kv[2 * 16 + 24];
	const char *k, *v;
	size_t i, j = 0;
	va_list ap;

	if (n > 16)
		n = 16;
	for (i = 0; i < n; i++) {
		const struct metric_def *d = &metric_defs[fields[i].m];

		format_value(d, d->labels[0] || d->type == 'h' ? metric_total(fields[i].m) : metric_get(fields[i].m),
				vals[i], sizeof(vals[i]));
		kv[j++] = fields[i].key;
		kv[j++] = vals[i];
	}
	va_start(ap, n);
	while (j + 2 < sizeof(kv) / sizeof(kv[0]) && (k = va_arg(ap, const char *)) != NULL) {
		v = va_arg(ap, const char *);
		kv[j++] = k;
		kv[j++] = v;
	}
	va_end(ap);
	kv[j] = NULL;
	log_kv_array(level, msg, kv);
}

void
metrics_stop(void)
{
	struct series *s, *next;
	int m;

	if (!M.started)
		return;
	if (M.mhd)
		MHD_stop_daemon(M.mhd);
	M.mhd = NULL;
	metrics_tick(0, true);
	log_set_hook(NULL);
	for (m = 0; m < M__COUNT; m++)
		for (s = M.head[m]; s; s = next) {
			next = s->next;
			free(s->lv[0]);
			free(s->lv[1]);
			free(s->buckets);
			free(s);
		}
	free(M.served);
	free(M.file);
	free(M.tmpfile);
	buf_free(&M.consts);
	memset(&M.used, 0, sizeof(M.used));
	memset(&M.head, 0, sizeof(M.head));
	memset(&M.tail, 0, sizeof(M.tail));
	memset(&M.nseries, 0, sizeof(M.nseries));
	memset(&M.plain, 0, sizeof(M.plain));
	memset(&M.hash, 0, sizeof(M.hash));
	memset(&M.evcache, 0, sizeof(M.evcache));
	memset(&M.rate_v, 0, sizeof(M.rate_v));
	memset(&M.rate_at, 0, sizeof(M.rate_at));
	M.served = M.file = M.tmpfile = NULL;
	M.started = false;
}
