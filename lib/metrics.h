/*
 * Metrics: one table of every pgcdc metric, series of label values, the
 * Prometheus text format, a file rewritten atomically for node_exporter's
 * textfile collector, and an HTTP endpoint (libmicrohttpd) serving
 * /metrics. The same table feeds the closing log line and the SIGUSR1
 * status line: programs name metrics, they do not format numbers.
 *
 * Series are updated on the program's own thread and cost an addition;
 * metrics_tick renders the text once a second and the HTTP server's
 * thread serves the last rendering.
 */
#ifndef PGCDC_METRICS_H
#define PGCDC_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"

enum metric {
	M_BUILD_INFO,
	M_START_TIME,
	M_LAST_ERROR,
	M_LINES_IN,
	M_EVENTS_IN,
	M_EVENTS_OUT,
	M_EVENTS_DROPPED,
	M_EVENTS_REWRITTEN,
	M_BYTES_IN,
	M_BYTES_OUT,
	M_BAD_LINES,
	M_EMITTED_LSN,
	M_ACKED_LSN,
	M_SERVER_LSN,
	M_LAG_BYTES,
	M_LAG_SECONDS,
	M_PENDING_TX,
	M_PENDING_EVENTS,
	M_RETAINED_WAL,
	M_WAL_STATUS,
	M_SNAP_ROWS,
	M_SNAP_ESTIMATE,
	M_SNAP_PENDING,
	M_RECONNECTS,
	M_HTTP_REQUESTS,
	M_HTTP_RETRIES,
	M_DEAD_LETTERED,
	M_LATENCY,
	M_IN_FLIGHT,
	M_LAST_HEARTBEAT,
	M__COUNT
};

/* How a value reads in a log line. */
enum metric_unit { MU_COUNT, MU_LSN, MU_BYTES, MU_SECONDS, MU_TIME };

struct metric_def {
	const char *name;
	char type;					/* 'c' counter, 'g' gauge, 'h' histogram */
	const char *labels[2];		/* label names, unused ones NULL */
	enum metric_unit unit;
	const char *help;
};

extern const struct metric_def metric_defs[M__COUNT];

struct series {
	struct series *next;		/* its metric's series, in order of creation */
	struct series *hnext;
	enum metric m;
	char *lv[2];				/* label values */
	double v;					/* a histogram's count */
	double sum;					/* a histogram's sum */
	uint64_t *buckets;			/* a histogram's counts per bucket (not cumulative) */
};

/* Limits: series per metric; past it, label "table" reads "_other". */
#define METRIC_MAX_SERIES 2000

struct metrics_opt {
	const char *file;			/* --metrics-file, or NULL */
	const char *listen;			/* --metrics-listen ADDR:PORT, or NULL */
	const char *labels[8];		/* --metrics-label NAME=VALUE */
	int nlabels;
};

/*
 * Parse the options every program shares. Returns 1 when opt was one of
 * them (val consumed), 0 when not, -1 on a bad value (usage error
 * printed). The option ids are in the getopt table the program builds
 * with METRICS_LONGOPTS.
 */
enum { OPT_METRICS_FILE = 0x4d00, OPT_METRICS_LISTEN, OPT_METRICS_LABEL, OPT_LOG_FORMAT };
#define METRICS_LONGOPTS \
	{"metrics-file", required_argument, NULL, OPT_METRICS_FILE}, \
	{"metrics-listen", required_argument, NULL, OPT_METRICS_LISTEN}, \
	{"metrics-label", required_argument, NULL, OPT_METRICS_LABEL}, \
	{"log-format", required_argument, NULL, OPT_LOG_FORMAT}
#define METRICS_USAGE \
	"      --metrics-file=PATH    write metrics (Prometheus text) to PATH every second\n" \
	"      --metrics-listen=ADDR:PORT  serve them on http://ADDR:PORT/metrics\n" \
	"      --metrics-label=NAME=VALUE  add a label to every series (repeatable)\n" \
	"      --log-format=FORMAT    logfmt (default) or json\n"
int metrics_option(struct metrics_opt *o, int opt, const char *val);

/*
 * Start: the program's metrics (used[], n of them: only these are
 * exposed; those without labels show 0 before any update), its own
 * constant labels (NAME, VALUE pairs, NULL-terminated; "program" is
 * always there), then the file and the server. Returns 0, or an exit
 * status (logged) when the server cannot listen.
 */
int metrics_start(const struct metrics_opt *o, const enum metric *used, size_t n, ...);

/* The series of metric m with these label values (NULL for none). Never NULL. */
struct series *metric_series(enum metric m, const char *v1, const char *v2);
/* The same with label values as byte ranges (not NUL-terminated). */
struct series *metric_seriesn(enum metric m, const char *v1, size_t n1, const char *v2, size_t n2);

/* An event metric's series (labels op and table, "schema.table" as the line writes them) for an event's head. */
struct ev_head;
struct series *metric_event(enum metric m, const struct ev_head *h);

static inline void
metric_add(struct series *s, double d)
{
	s->v += d;
}

/* An unlabelled metric's one series. */
void metric_inc(enum metric m, double d);
void metric_set(enum metric m, double v);
double metric_get(enum metric m);
/* The sum over a metric's series. */
double metric_total(enum metric m);
/* Per second since the last call for m (since start the first time). */
double metric_rate(enum metric m, int64_t now_ms);
/* A histogram observation. */
void metric_observe(struct series *s, double v);
/* Labelled gauges: set one series; for M_WAL_STATUS, 1 on value v1 and 0 on the others. */
void metric_set_labelled(enum metric m, const char *v1, const char *v2, double v);

/* Render and publish (file, server) when a second has passed since the last time, or now when force. */
void metrics_tick(int64_t now_ms, bool force);

/*
 * A log line whose values come from the table: fields[] pairs a metric
 * with the key it has in this line; then key/value string pairs of the
 * program's own, NULL-terminated, as log_kv.
 */
struct metric_field {
	enum metric m;
	const char *key;
};
void metrics_log(enum log_level level, const char *msg, const struct metric_field *fields, size_t n, ...);

/* The message of the latest warn or error line, NULL if none yet. */
const char *metrics_last_error(void);

/* Stop the server, write the file one last time, free everything. */
void metrics_stop(void);

/* The rendering (for tests): a malloc'd NUL-terminated string. */
char *metrics_render(void);

#endif
