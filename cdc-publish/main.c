/*
 * cdc-publish: deliver cdc-json events to a queue's REST endpoint and
 * acknowledge delivered commit positions (see cdc-publish(1)).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "publish.h"
#include "../lib/ack.h"
#include "../lib/exitcode.h"
#include "../lib/log.h"
#include "../lib/metrics.h"
#include "../lib/sig.h"
#include "../lib/util.h"

#ifndef PGCDC_VERSION
#define PGCDC_VERSION "dev"
#endif

enum {
	OPT_TARGET = 256, OPT_EXCHANGE, OPT_ROUTING_KEY, OPT_VHOST, OPT_BODY, OPT_BATCH,
	OPT_BATCH_BYTES, OPT_LINGER, OPT_PARALLEL, OPT_BEARER_ENV, OPT_BEARER_FILE, OPT_BASIC_ENV,
	OPT_BASIC_FILE, OPT_CACERT, OPT_INSECURE, OPT_TIMEOUT, OPT_RETRY_MAX, OPT_RETRY_DELAY,
	OPT_DEAD, OPT_ON_ERROR, OPT_ACK, OPT_TX, OPT_DRY, OPT_WINDOW, OPT_MAX_LINE, OPT_STOP, OPT_STALL, OPT_VERSION,
	OPT_CRED_ENV, OPT_CRED_FILE, OPT_PACK, OPT_MAX_MESSAGE, OPT_ORDER_KEY, OPT_ENDPOINT,
	OPT_BEARER_CMD, OPT_BEARER_REFRESH
};

static const struct option longopts[] = {
	/* target */
	{"target", required_argument, NULL, OPT_TARGET},
	{"exchange", required_argument, NULL, OPT_EXCHANGE},
	{"routing-key", required_argument, NULL, OPT_ROUTING_KEY},
	{"vhost", required_argument, NULL, OPT_VHOST},
	{"endpoint", required_argument, NULL, OPT_ENDPOINT},
	{"header", required_argument, NULL, 'H'},
	{"bearer-env", required_argument, NULL, OPT_BEARER_ENV},
	{"bearer-file", required_argument, NULL, OPT_BEARER_FILE},
	{"bearer-command", required_argument, NULL, OPT_BEARER_CMD},
	{"bearer-refresh", required_argument, NULL, OPT_BEARER_REFRESH},
	{"basic-env", required_argument, NULL, OPT_BASIC_ENV},
	{"basic-file", required_argument, NULL, OPT_BASIC_FILE},
	{"credentials-env", required_argument, NULL, OPT_CRED_ENV},
	{"credentials-file", required_argument, NULL, OPT_CRED_FILE},
	{"cacert", required_argument, NULL, OPT_CACERT},
	{"insecure", no_argument, NULL, OPT_INSECURE},
	/* batching and concurrency */
	{"body", required_argument, NULL, OPT_BODY},
	{"batch", required_argument, NULL, OPT_BATCH},
	{"batch-bytes", required_argument, NULL, OPT_BATCH_BYTES},
	{"linger", required_argument, NULL, OPT_LINGER},
	{"parallel", required_argument, NULL, OPT_PARALLEL},
	{"window", required_argument, NULL, OPT_WINDOW},
	{"pack", required_argument, NULL, OPT_PACK},
	{"max-message", required_argument, NULL, OPT_MAX_MESSAGE},
	{"ordering-key", required_argument, NULL, OPT_ORDER_KEY},
	/* failures */
	{"timeout", required_argument, NULL, OPT_TIMEOUT},
	{"retry-max-time", required_argument, NULL, OPT_RETRY_MAX},
	{"retry-max-delay", required_argument, NULL, OPT_RETRY_DELAY},
	{"dead-letter", required_argument, NULL, OPT_DEAD},
	{"on-error", required_argument, NULL, OPT_ON_ERROR},
	{"max-line", required_argument, NULL, OPT_MAX_LINE},
	/* pipeline */
	{"ack-fifo", required_argument, NULL, OPT_ACK},
	{"tx-markers", no_argument, NULL, OPT_TX},
	{"dry-run", no_argument, NULL, OPT_DRY},
	{"stop-timeout", required_argument, NULL, OPT_STOP},
	{"stall-timeout", required_argument, NULL, OPT_STALL},
	{"verbose", no_argument, NULL, 'v'},
	METRICS_LONGOPTS,
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, OPT_VERSION},
	{NULL, 0, NULL, 0}
};

static void
help(void)
{
	char names[256];

	printf("%s delivers cdc-json events from stdin to a queue's REST endpoint and\n"
		"acknowledges delivered commit positions.\n\n"
		"Usage:\n  %s [OPTION]... URL\n\n"
		"Target:\n"
		"      --target=NAME        the queue API URL belongs to (default http):\n"
		"                           %s\n"
		"                           (rabbitmq://HOST:PORT means --target rabbitmq)\n"
		"      --exchange=NAME      rabbitmq exchange (default amq.default)\n"
		"      --routing-key=KEY    rabbitmq routing key (the queue, for amq.default)\n"
		"      --vhost=NAME         rabbitmq virtual host (default /)\n"
		"      --endpoint=URL       sqs: POST here instead of the queue URL's host\n"
		"                           (a VPC endpoint, an emulator)\n"
		"      --credentials-env=VAR   the target's credentials (connection string, SAS,\n"
		"                           service-account key) from environment variable VAR\n"
		"      --credentials-file=FILE the same from FILE\n"
		"  -H, --header='NAME: VALUE'  extra request header (repeatable)\n"
		"      --bearer-env=VAR     bearer token from environment variable VAR\n"
		"      --bearer-file=FILE   bearer token from FILE (read again when it changes)\n"
		"      --bearer-command=CMD bearer token printed by sh -c CMD (e.g. a cloud CLI's\n"
		"                           print-access-token), run again every --bearer-refresh\n"
		"      --bearer-refresh=SECS  renew --bearer-command's token (default 300)\n"
		"      --basic-env=VAR      basic credentials USER:PASSWORD from VAR\n"
		"      --basic-file=FILE    basic credentials USER:PASSWORD from FILE\n"
		"      --cacert=FILE        CA certificates to verify the server with\n"
		"      --insecure           do not verify TLS certificates (logged loudly)\n\n"
		"Batching and concurrency:\n"
		"      --body=FORM          event (one per request, default), array or ndjson\n"
		"      --batch=N            events per request (default 1; array or ndjson)\n"
		"      --batch-bytes=B      close a batch at B bytes\n"
		"      --linger=MS          wait up to MS for a batch to fill (default 0)\n"
		"      --parallel=N         requests in flight (default 1); events of one row\n"
		"                           are never in flight together\n"
		"      --window=N           events held in memory at most (default 10000)\n"
		"      --pack=tx|N          several events per queue message, a JSON array: one\n"
		"                           transaction, or up to N events of whole transactions\n"
		"      --max-message=BYTES  the queue's message size limit (Service Bus Premium)\n"
		"      --ordering-key=KIND  row (default), table or none: the session, group or\n"
		"                           partition key targets that have one are given\n\n"
		"Failures:\n"
		"      --timeout=SECS       per request (default 30)\n"
		"      --retry-max-time=SECS  give up on a failing request after SECS (default 300)\n"
		"      --retry-max-delay=SECS longest wait between retries (default 5)\n"
		"      --dead-letter=FILE   append refused events to FILE and go on\n"
		"      --on-error=ACTION    bad input line: stop (default), skip or dead-letter\n"
		"      --max-line=BYTES     longest input line (default 67108864)\n\n"
		"Pipeline:\n"
		"      --ack-fifo=PATH      write delivered commit LSNs to this FIFO\n"
		"      --tx-markers         publish begin and commit lines too\n"
		"      --dry-run            write the requests to stdout instead of sending them\n"
		"      --stop-timeout=SECS  on SIGTERM/SIGINT, finish requests for SECS (default 10)\n"
		"      --stall-timeout=SECS exit (status 10) when nothing was delivered for SECS\n"
		"                           while events waited (default 0: never)\n"
		"  -v, --verbose            log debug lines\n"
		METRICS_USAGE
		"  -h, --help               show this help and exit\n"
		"      --version            show the version and exit\n\n"
		"Exit status: 0 ok, 1 runtime error, 2 usage, 3 bad input line, 4 queue\n"
		"unreachable past --retry-max-time, 9 event refused by the queue, 10 stalled.\n", progname, progname,
		target_names(names, sizeof(names)));
}

static long
parse_num(const char *s, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return -1;
	return v;
}

static int
parse_secs_ms(const char *s)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || v < 0 || v > 86400 * 7)
		return -1;
	return (int) (v * 1000);
}

#define USAGE(...) do { usage_error(__VA_ARGS__); return EXIT_USAGE; } while (0)

static int
parse_options(struct publisher *p, int argc, char **argv)
{
	struct options *o = &p->opt;
	char names[256];
	long v;
	int ch;

	o->batch = 1;
	o->parallel = 1;
	o->timeout_ms = 30000;
	o->retry_max_ms = 300000;
	o->retry_cap_ms = 5000;
	o->window = 10000;
	o->max_line = 64 << 20;
	o->stop_timeout_ms = 10000;
	o->bearer_refresh_ms = 300000;
	o->exchange = "amq.default";
	o->vhost = "/";
	while ((ch = getopt_long(argc, argv, "H:vh", longopts, NULL)) != -1) {
		switch (ch) {
		case OPT_TARGET:
			if (!(o->target = target_find(optarg)))
				USAGE("unknown target \"%s\" (%s)", optarg, target_names(names, sizeof(names)));
			break;
		case OPT_EXCHANGE: o->exchange = optarg; break;
		case OPT_ROUTING_KEY: o->routing_key = optarg; break;
		case OPT_VHOST: o->vhost = optarg; break;
		case OPT_ENDPOINT: o->endpoint = optarg; break;
		case 'H':
			if (!strchr(optarg, ':') || optarg[0] == ':')
				USAGE("invalid header \"%s\" (NAME: VALUE)", optarg);
			if (strncasecmp(optarg, "Authorization:", 14) == 0)
				USAGE("no credentials on the command line: use --bearer-env or --basic-env");
			o->headers = curl_slist_append(o->headers, optarg);
			break;
		case OPT_BEARER_ENV: o->bearer_env = optarg; break;
		case OPT_BEARER_FILE: o->bearer_file = optarg; break;
		case OPT_BEARER_CMD: o->bearer_cmd = optarg; break;
		case OPT_BEARER_REFRESH:
			if ((o->bearer_refresh_ms = parse_secs_ms(optarg)) <= 0)
				USAGE("invalid --bearer-refresh \"%s\"", optarg);
			break;
		case OPT_BASIC_ENV: o->basic_env = optarg; break;
		case OPT_BASIC_FILE: o->basic_file = optarg; break;
		case OPT_CRED_ENV: o->cred_env = optarg; break;
		case OPT_CRED_FILE: o->cred_file = optarg; break;
		case OPT_CACERT: o->cacert = optarg; break;
		case OPT_INSECURE: o->insecure = true; break;
		case OPT_BODY:
			o->body_set = true;
			if (strcmp(optarg, "event") == 0)
				o->body = BODY_EVENT;
			else if (strcmp(optarg, "array") == 0)
				o->body = BODY_ARRAY;
			else if (strcmp(optarg, "ndjson") == 0)
				o->body = BODY_NDJSON;
			else
				USAGE("unknown body form \"%s\" (event, array or ndjson)", optarg);
			break;
		case OPT_BATCH:
			if ((v = parse_num(optarg, 1, 100000)) < 0)
				USAGE("invalid --batch \"%s\" (1 to 100000)", optarg);
			o->batch = (int) v;
			o->batch_set = true;
			break;
		case OPT_BATCH_BYTES:
			if ((v = parse_num(optarg, 1, 1L << 30)) < 0)
				USAGE("invalid --batch-bytes \"%s\"", optarg);
			o->batch_bytes = (size_t) v;
			break;
		case OPT_LINGER:
			if ((v = parse_num(optarg, 0, 60000)) < 0)
				USAGE("invalid --linger \"%s\" (0 to 60000 ms)", optarg);
			o->linger_ms = (int) v;
			break;
		case OPT_PARALLEL:
			if ((v = parse_num(optarg, 1, 256)) < 0)
				USAGE("invalid --parallel \"%s\" (1 to 256)", optarg);
			o->parallel = (int) v;
			break;
		case OPT_PACK:
			if (strcmp(optarg, "tx") == 0)
				o->pack = -1;
			else if ((v = parse_num(optarg, 1, 100000)) < 0)
				USAGE("invalid --pack \"%s\" (tx, or 1 to 100000 events)", optarg);
			else
				o->pack = (int) v;
			break;
		case OPT_MAX_MESSAGE:
			if ((v = parse_num(optarg, 1024, 1L << 30)) < 0)
				USAGE("invalid --max-message \"%s\" (1024 bytes to 1 GiB)", optarg);
			o->max_message = (size_t) v;
			break;
		case OPT_ORDER_KEY:
			o->order_key_set = true;
			if (strcmp(optarg, "row") == 0)
				o->order_key = OKEY_ROW;
			else if (strcmp(optarg, "table") == 0)
				o->order_key = OKEY_TABLE;
			else if (strcmp(optarg, "none") == 0)
				o->order_key = OKEY_NONE;
			else
				USAGE("unknown --ordering-key \"%s\" (row, table or none)", optarg);
			break;
		case OPT_WINDOW:
			if ((v = parse_num(optarg, 1, 10000000)) < 0)
				USAGE("invalid --window \"%s\"", optarg);
			o->window = (int) v;
			break;
		case OPT_TIMEOUT:
			if ((o->timeout_ms = parse_secs_ms(optarg)) <= 0)
				USAGE("invalid --timeout \"%s\"", optarg);
			break;
		case OPT_RETRY_MAX:
			if ((o->retry_max_ms = parse_secs_ms(optarg)) < 0)
				USAGE("invalid --retry-max-time \"%s\"", optarg);
			break;
		case OPT_RETRY_DELAY:
			if ((o->retry_cap_ms = parse_secs_ms(optarg)) <= 0)
				USAGE("invalid --retry-max-delay \"%s\"", optarg);
			break;
		case OPT_DEAD: o->dead_letter = optarg; break;
		case OPT_ON_ERROR:
			if (strcmp(optarg, "stop") == 0)
				o->on_error = ONERR_STOP;
			else if (strcmp(optarg, "skip") == 0)
				o->on_error = ONERR_SKIP;
			else if (strcmp(optarg, "dead-letter") == 0)
				o->on_error = ONERR_DEADLETTER;
			else
				USAGE("unknown --on-error \"%s\" (stop, skip or dead-letter)", optarg);
			break;
		case OPT_MAX_LINE:
			if ((v = parse_num(optarg, 64, 1L << 31)) < 0)
				USAGE("invalid --max-line \"%s\"", optarg);
			o->max_line = (size_t) v;
			break;
		case OPT_ACK: o->ack_fifo = optarg; break;
		case OPT_TX: o->tx_markers = true; break;
		case OPT_DRY: o->dry_run = true; break;
		case OPT_STOP:
			if ((o->stop_timeout_ms = parse_secs_ms(optarg)) < 0)
				USAGE("invalid --stop-timeout \"%s\"", optarg);
			break;
		case OPT_STALL:
			if ((o->stall_timeout_ms = parse_secs_ms(optarg)) < 0)
				USAGE("invalid --stall-timeout \"%s\"", optarg);
			break;
		case OPT_METRICS_FILE:
		case OPT_METRICS_LISTEN:
		case OPT_METRICS_LABEL:
		case OPT_LOG_FORMAT:
			if (metrics_option(&o->metrics, ch, optarg) < 0)
				return EXIT_USAGE;
			break;
		case 'v': o->verbose++; break;
		case 'h': help(); return -1;
		case OPT_VERSION: printf("%s (pgcdc) %s\n", progname, PGCDC_VERSION); return -1;
		default:
			fprintf(stderr, "Try '%s --help' for more information.\n", progname);
			return EXIT_USAGE;
		}
	}

	/* validation */
	if (optind >= argc)
		USAGE("no URL given");
	if (optind + 1 < argc)
		USAGE("unexpected argument \"%s\"", argv[optind + 1]);
	o->url = argv[optind];
	if (strncmp(o->url, "rabbitmq://", 11) == 0 || strncmp(o->url, "rabbitmqs://", 12) == 0)
		o->target = target_find("rabbitmq");
	else if (strncmp(o->url, "http://", 7) != 0 && strncmp(o->url, "https://", 8) != 0 &&
			!(o->target && o->target->own_url))
		USAGE("URL \"%s\" is not http://, https:// or rabbitmq://", o->url);
	if (!o->target)
		o->target = target_find("http");
	if (o->pack > 0 && o->pack > o->window / 2)
		USAGE("--pack %d needs a --window of at least %d", o->pack, o->pack * 2);
	if ((o->cred_env || o->cred_file) &&
			(o->bearer_env || o->bearer_file || o->bearer_cmd || o->basic_env || o->basic_file))
		USAGE("give --credentials-env/-file or bearer/basic credentials, not both");
	if (o->cred_env && o->cred_file)
		USAGE("give --credentials-env or --credentials-file, not both");
	if (o->on_error == ONERR_DEADLETTER && !o->dead_letter)
		USAGE("--on-error dead-letter needs --dead-letter FILE");
	if (!!o->bearer_env + !!o->bearer_file + !!o->bearer_cmd > 1)
		USAGE("give one of --bearer-env, --bearer-file and --bearer-command");
	if ((o->bearer_env || o->bearer_file || o->bearer_cmd) && (o->basic_env || o->basic_file))
		USAGE("give bearer or basic credentials, not both");
	if (o->verbose)
		log_set_level(LOG_DEBUG);
	return 0;
}

/*
 * A --cacert file that cannot be read or holds no certificate is a mistake
 * no retry can mend: say so at start instead of after --retry-max-time.
 * A certificate here is a PEM block: a BEGIN line, base64 lines, its END
 * line. (Whether the base64 holds a valid certificate is left to TLS.)
 */
static int
check_cacert(const char *file)
{
	char line[512];
	int state = 0, found = 0;	/* state: 0 outside a block, n > 0 inside after n - 1 lines */
	FILE *f = fopen(file, "r");

	if (!f) {
		log_kv(LOG_ERROR, "could not read --cacert file", "file", file, "error", strerror(errno), NULL);
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\r\n")] = '\0';
		if (state == 0)
			state = strcmp(line, "-----BEGIN CERTIFICATE-----") == 0 ||
					strcmp(line, "-----BEGIN TRUSTED CERTIFICATE-----") == 0;
		else if (strncmp(line, "-----END ", 9) == 0) {
			found += state > 1;
			state = 0;
		} else if (line[strspn(line, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")] == '\0')
			state++;
		else
			state = 0;	/* not base64: not a certificate block */
	}
	fclose(f);
	if (!found)
		log_kv(LOG_ERROR, "--cacert file holds no PEM certificate", "file", file, NULL);
	return found ? 0 : -1;
}

/* Credentials, the RabbitMQ endpoint, the ack pipe, the dead-letter file, stdin. */
static int
setup(struct publisher *p)
{
	struct options *o = &p->opt;
	struct stat st;
	char err[512];
	int fl, rc;

	if (o->bearer_env || o->bearer_file || o->bearer_cmd) {
		if (!bearer_load(p))
			return EXIT_USAGE;
	} else if ((o->basic_env || o->basic_file) &&
			!(p->userpwd = read_secret(o->basic_env, o->basic_file)))
		return EXIT_USAGE;
	if (o->cacert && check_cacert(o->cacert) < 0)
		return EXIT_USAGE;
	if ((o->cred_env || o->cred_file) && !(p->cred = read_secret(o->cred_env, o->cred_file)))
		return EXIT_USAGE;
	if (o->insecure)
		log_kv(LOG_WARN, "TLS certificate verification is OFF (--insecure): anyone on the path can read and change events", NULL);
	p->t = o->target;
	if ((rc = p->t->setup(p)) != 0)
		return rc;
	if (o->max_message)
		p->lim.message_bytes = o->max_message;
	if (o->dead_letter && !(p->dead = fopen(o->dead_letter, "a"))) {
		log_kv(LOG_ERROR, "could not open dead-letter file", "file", o->dead_letter,
				"error", strerror(errno), NULL);
		return EXIT_RUNTIME;
	}
	p->ackfd = -1;
	if (o->ack_fifo && (p->ackfd = ack_writer_open(o->ack_fifo, err, sizeof(err))) < 0) {
		log_kv(LOG_ERROR, err, NULL);
		return EXIT_RUNTIME;
	}
	lr_init(&p->in, STDIN_FILENO, o->max_line);
	/* a pipe is read without blocking, so deliveries go on while input is quiet */
	if (fstat(STDIN_FILENO, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)) &&
			(fl = fcntl(STDIN_FILENO, F_GETFL)) >= 0)
		fcntl(STDIN_FILENO, F_SETFL, fl | O_NONBLOCK);
	p->cap = (size_t) o->window;
	p->ev = xcalloc(p->cap, sizeof(*p->ev));
	return 0;
}

/* Undo what parse_options and setup made, whether setup ended or not (p->ackfd -1 until opened). */
static void
teardown(struct publisher *p)
{
	while (p->ev && p->base < p->head)
		free(event_at(p, p->base++)->line);
	free(p->ev);
	lr_free(&p->in);
	curl_slist_free_all(p->opt.headers);
	if (p->t && p->t->cleanup)
		p->t->cleanup(p);
	secret_free(p->auth);
	secret_free(p->userpwd);
	secret_free(p->cred);
	if (p->dead)
		fclose(p->dead);
	if (p->ackfd >= 0)
		close(p->ackfd);
}

/* "KIND HOST[:PORT]" of the URL: no user, password, path or query (they may hold secrets) */
static void
target_label(const struct publisher *p, char *out, size_t outsz)
{
	const char *u = p->opt.url, *h = strstr(u, "://"), *at, *end;

	h = h ? h + 3 : u;
	end = h + strcspn(h, "/?#");
	at = memchr(h, '@', (size_t) (end - h));
	if (at)
		h = at + 1;
	snprintf(out, outsz, "%s %.*s", p->opt.target ? p->opt.target->name : "http", (int) (end - h), h);
}

static int64_t
wall_clock(void)
{
	return (int64_t) time(NULL);
}

/*
 * PGCDC_NOW=SECONDS pins the clock signatures and tokens are made with,
 * so a test can compare them byte for byte (cdc-publish(1), ENVIRONMENT).
 */
static int64_t
pinned_clock(void)
{
	const char *s = getenv("PGCDC_NOW");

	return s && *s ? strtoll(s, NULL, 10) : 0;
}

static const struct metric_field fields[] = {
	{M_EVENTS_OUT, "delivered"}, {M_DEAD_LETTERED, "dead_lettered"}, {M_BAD_LINES, "skipped"},
	{M_ACKED_LSN, "acknowledged"},
};

/* The oldest event not yet delivered, or NULL. */
static const struct event *
oldest_pending(struct publisher *p)
{
	uint64_t s;

	for (s = p->base; s < p->head; s++)
		if (event_at(p, s)->state != EV_DONE)
			return event_at(p, s);
	return NULL;
}

/*
 * Once a loop: the gauges, the metrics once a second, a status line on
 * SIGUSR1, and the stall check. Returns 0, or EXIT_STALLED (logged).
 */
static int
watch(struct publisher *p, int64_t now)
{
	const struct event *e = oldest_pending(p);
	int64_t wall = wall_ms();
	char table[160] = "", id[64] = "", st[16], att[16], infl[16], secs[24], pend[24], rate[24];

	metric_set(M_PENDING_EVENTS, (double) (p->head - p->base));
	metric_set(M_IN_FLIGHT, p->inflight);
	metric_set(M_LAG_SECONDS, e && e->commit_ms && wall > e->commit_ms ? (double) (wall - e->commit_ms) / 1000.0 : 0);
	metrics_tick(now, false);
	if (!sig_status && !(p->opt.stall_timeout_ms && e && now - p->progress_at >= p->opt.stall_timeout_ms))
		return 0;
	if (e)
		event_where(e, table, sizeof(table), id, sizeof(id));
	snprintf(st, sizeof(st), "%ld", p->last_status);
	snprintf(att, sizeof(att), "%d", p->last_attempt);
	snprintf(pend, sizeof(pend), "%llu", (unsigned long long) (p->head - p->base));
	snprintf(infl, sizeof(infl), "%d", p->inflight);
	if (sig_status) {
		sig_status = 0;
		snprintf(rate, sizeof(rate), "%.0f", metric_rate(M_EVENTS_OUT, now));
		snprintf(secs, sizeof(secs), "%.3f", metric_get(M_LAG_SECONDS));
		metrics_log(LOG_INFO, "status", fields, sizeof(fields) / sizeof(fields[0]), "events_per_s", rate,
				"pending", pend, "lag_s", secs, "in_flight", infl,
				"oldest_id", e ? id : NULL, "table", e && *table ? table : NULL,
				"http_status", p->last_status ? st : NULL, "last_error", metrics_last_error(), NULL);
		return 0;
	}
	snprintf(secs, sizeof(secs), "%.0f", (double) (now - p->progress_at) / 1000.0);
	log_kv(LOG_ERROR, "stalled: nothing acknowledged", "seconds", secs, "pending", pend, "id", id,
			"table", *table ? table : NULL, "http_status", p->last_status ? st : NULL,
			"attempt", p->last_attempt ? att : NULL, "last_error", metrics_last_error(),
			"hint", "the queue is not taking events: see the lines before; --stall-timeout to wait longer", NULL);
	return EXIT_STALLED;
}

static int
run(struct publisher *p)
{
	int64_t deadline = 0, now;
	int rc, wait;

	for (;;) {
		now = now_ms();
		if (sig_stop && !deadline) {
			log_kv(LOG_INFO, "stopping: finishing requests in flight", NULL);
			p->halt = true;
			deadline = now + p->opt.stop_timeout_ms;
		}
		/* a bad line ends intake; what came before it is still delivered */
		if (!p->intake_done && !p->halt && (rc = events_read(p)) != 0) {
			p->exit_code = rc;
			p->intake_done = true;
		}
		if ((rc = order_dispatch(p)) != 0 || (rc = events_retire(p)) != 0 || (rc = watch(p, now)) != 0)
			return rc;
		if (p->inflight == 0 && (p->halt || ((p->in_eof || p->intake_done) && p->base == p->head)))
			break;
		if (deadline && now >= deadline) {
			log_kv(LOG_WARN, "stop timeout: requests still in flight will be sent again next run", NULL);
			break;
		}
		/* stopped by a refusal: only requests still retrying are left; they cannot succeed now */
		if (p->halt && !deadline && p->exit_code && p->inflight > 0) {
			int i, waiting = 0;

			for (i = 0; i < p->opt.parallel; i++)
				waiting += p->req[i].nseqs && p->req[i].retry_at != 0;
			if (waiting == p->inflight)
				break;
		}
		wait = 1000;	/* a partial batch is sent when its --linger is up, not later */
		if (p->linger_until)
			wait = p->linger_until - now_ms() > 1 ? (int) (p->linger_until - now_ms()) : 1;
		if (p->pk.until && p->pk.until - now_ms() < wait)
			wait = p->pk.until - now_ms() > 1 ? (int) (p->pk.until - now_ms()) : 1;
		if ((rc = http_step(p, wait)) != 0)
			return rc;
	}
	return events_retire(p) ? EXIT_RUNTIME : p->exit_code;
}

int
main(int argc, char **argv)
{
	static const enum metric used[] = {
		M_LINES_IN, M_EVENTS_IN, M_EVENTS_OUT, M_BYTES_IN, M_BYTES_OUT, M_BAD_LINES, M_ACKED_LSN,
		M_LAG_SECONDS, M_PENDING_EVENTS, M_IN_FLIGHT, M_HTTP_REQUESTS, M_HTTP_RETRIES, M_DEAD_LETTERED,
		M_LATENCY, M_LAST_HEARTBEAT,
	};
	struct publisher p;
	char target[300];
	int rc;

	memset(&p, 0, sizeof(p));
	p.ackfd = -1;
	log_init(argv[0]);
	rc = parse_options(&p, argc, argv);
	if (rc)
		return rc < 0 ? EXIT_OK : rc;
	p.clock = pinned_clock() ? pinned_clock : wall_clock;
	sig_setup();
	p.m_lines = metric_series(M_LINES_IN, NULL, NULL);
	p.m_bytes_in = metric_series(M_BYTES_IN, NULL, NULL);
	p.m_bytes_out = metric_series(M_BYTES_OUT, NULL, NULL);
	p.m_retries = metric_series(M_HTTP_RETRIES, NULL, NULL);
	p.m_latency = metric_series(M_LATENCY, NULL, NULL);
	target_label(&p, target, sizeof(target));
	if ((rc = metrics_start(&p.opt.metrics, used, sizeof(used) / sizeof(used[0]), "target", target, NULL)) != 0 ||
			(rc = setup(&p)) != 0 || order_init(&p) < 0 || http_init(&p) < 0) {
		rc = rc ? rc : EXIT_RUNTIME;
		goto out;
	}
	rc = run(&p);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		log_kv(LOG_ERROR, "could not write to stdout", "error", strerror(errno), NULL);
		rc = rc ? rc : EXIT_RUNTIME;
	}
	metrics_log(rc ? LOG_ERROR : LOG_INFO, "exiting", fields, sizeof(fields) / sizeof(fields[0]), NULL);
out:
	metrics_stop();
	http_cleanup(&p);
	order_free(&p);
	teardown(&p);
	return rc;
}
