/*
 * cdc-filter: read cdc-json lines on stdin, write the ones the rules keep
 * to stdout, unchanged or with columns dropped or masked. See cdc-filter(1).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "filter.h"
#include "../lib/deadletter.h"
#include "../lib/exitcode.h"
#include "../lib/log.h"
#include "../lib/metrics.h"
#include "../lib/sig.h"
#include "../lib/util.h"

#ifndef PGCDC_VERSION
#define PGCDC_VERSION "dev"
#endif

#define OUT_FLUSH (256 * 1024)	/* write out once this much is waiting */
#define STOP_WRITE_MS 5000		/* after SIGTERM, how long a stuck reader gets */

enum {
	OPT_OP = 256, OPT_COLUMNS, OPT_DROP, OPT_MASK, OPT_KEY_FILE, OPT_KEY_ENV, OPT_WHERE,
	OPT_EMPTY_TX, OPT_ON_ERROR, OPT_DEAD, OPT_MAX_LINE, OPT_VERSION
};

static const struct option longopts[] = {
	{"table", required_argument, NULL, 't'},
	{"exclude-table", required_argument, NULL, 'T'},
	{"op", required_argument, NULL, OPT_OP},
	{"columns", required_argument, NULL, OPT_COLUMNS},
	{"drop-columns", required_argument, NULL, OPT_DROP},
	{"mask", required_argument, NULL, OPT_MASK},
	{"mask-key-file", required_argument, NULL, OPT_KEY_FILE},
	{"mask-key-env", required_argument, NULL, OPT_KEY_ENV},
	{"where", required_argument, NULL, OPT_WHERE},
	{"drop-empty-tx", no_argument, NULL, OPT_EMPTY_TX},
	{"on-error", required_argument, NULL, OPT_ON_ERROR},
	{"dead-letter", required_argument, NULL, OPT_DEAD},
	{"max-line", required_argument, NULL, OPT_MAX_LINE},
	{"verbose", no_argument, NULL, 'v'},
	METRICS_LONGOPTS,
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, OPT_VERSION},
	{NULL, 0, NULL, 0}
};

static void
help(void)
{
	printf("%s keeps the cdc-json events of stdin that the rules select and writes\n"
		"them to stdout, unchanged or with columns dropped or masked. begin and commit\n"
		"lines always pass.\n\n"
		"Usage:\n  %s [OPTION]...\n\n"
		"Rows:\n"
		"  -t, --table=GLOB         keep only tables matching [SCHEMA.]TABLE (* and ?;\n"
		"                           repeatable; a bare TABLE means any schema)\n"
		"  -T, --exclude-table=GLOB drop tables matching it (repeatable)\n"
		"      --op=LIST            operations to keep: insert,update,delete,truncate,\n"
		"                           ddl,schema,message,read,heartbeat (default all);\n"
		"                           !OP drops one\n"
		"      --where=[GLOB:]COND  keep row events where new.COL=VALUE, old.COL!=new.COL,\n"
		"                           key.COL=\"text\"... (repeatable: all must hold)\n"
		"      --drop-empty-tx      drop the begin of a transaction left empty (its\n"
		"                           commit still passes)\n\n"
		"Columns ([GLOB:] limits a rule to matching tables):\n"
		"      --columns=[GLOB:]COL,...      keep only these columns\n"
		"      --drop-columns=[GLOB:]COL,... drop these columns\n"
		"      --mask=[GLOB:]COL,...         replace values by HMAC-SHA256 hex\n"
		"      --mask-key-file=FILE  the masking key, from FILE\n"
		"      --mask-key-env=VAR    the masking key, from environment variable VAR\n\n"
		"Bad input:\n"
		"      --on-error=ACTION    stop (default), skip, or dead-letter\n"
		"      --dead-letter=FILE   append bad lines to FILE (implies --on-error\n"
		"                           dead-letter)\n"
		"      --max-line=BYTES     longest input line (default 67108864)\n\n"
		"  -v, --verbose            log debug lines\n"
		METRICS_USAGE
		"  -h, --help               show this help and exit\n"
		"      --version            show the version and exit\n\n"
		"Exit status: 0 ok, 1 runtime error (downstream gone), 2 usage, 3 bad input line.\n",
		progname, progname);
}

#define USAGE(...) do { usage_error(__VA_ARGS__); return EXIT_USAGE; } while (0)

/* The masking key from a file or a variable; never logged. NULL on error. */
static char *
read_key(const char *env, const char *file, size_t *len)
{
	char *key;
	size_t n = 0;

	if (env) {
		const char *v = getenv(env);

		if (!v || !*v) {
			usage_error("--mask-key-env: variable %s is not set or empty", env);
			return NULL;
		}
		key = xstrdup(v);
		n = strlen(key);
	} else {
		FILE *f = fopen(file, "rb");
		size_t got;

		if (!f) {
			usage_error("--mask-key-file: cannot read %s: %s", file, strerror(errno));
			return NULL;
		}
		key = xmalloc(4097);
		got = fread(key, 1, 4097, f);
		fclose(f);
		if (got > 4096) {
			usage_error("--mask-key-file: %s is longer than 4096 bytes", file);
			free(key);
			return NULL;
		}
		n = got;
	}
	/* a key file written by echo or an editor ends with a newline: not part of the key */
	if (!env && n > 0 && key[n - 1] == '\n')
		n--;
	if (n == 0) {
		usage_error("%s: the masking key is empty", env ? "--mask-key-env" : "--mask-key-file");
		free(key);
		return NULL;
	}
	*len = n;
	return key;
}

static int
parse_options(struct filter *f, int argc, char **argv)
{
	const char *key_env = NULL, *key_file = NULL;
	bool on_error_set = false;
	char err[512], *end;
	int ch, rc;
	long long v;

	f->r.ops = ~0u;
	f->in.max = 64 << 20;
	opterr = 0;	/* our own messages, naming the program as usage errors do */
	while ((ch = getopt_long(argc, argv, ":t:T:vh", longopts, NULL)) != -1) {
		rc = 0;
		switch (ch) {
		case 't':
		case 'T':
			rc = rules_add_tables(&f->r, optarg, ch == 'T', err, sizeof(err));
			break;
		case OPT_OP: rc = rules_set_ops(&f->r, optarg, err, sizeof(err)); break;
		case OPT_COLUMNS: rc = rules_add_columns(&f->r, optarg, COL_KEEP, err, sizeof(err)); break;
		case OPT_DROP: rc = rules_add_columns(&f->r, optarg, COL_DROP, err, sizeof(err)); break;
		case OPT_MASK: rc = rules_add_columns(&f->r, optarg, COL_MASK, err, sizeof(err)); break;
		case OPT_WHERE: rc = rules_add_where(&f->r, optarg, err, sizeof(err)); break;
		case OPT_KEY_FILE: key_file = optarg; break;
		case OPT_KEY_ENV: key_env = optarg; break;
		case OPT_EMPTY_TX: f->drop_empty_tx = true; break;
		case OPT_ON_ERROR:
			on_error_set = true;
			if (strcmp(optarg, "stop") == 0)
				f->on_error = ONERR_STOP;
			else if (strcmp(optarg, "skip") == 0)
				f->on_error = ONERR_SKIP;
			else if (strcmp(optarg, "dead-letter") == 0)
				f->on_error = ONERR_DEADLETTER;
			else
				USAGE("unknown --on-error action \"%s\" (stop, skip or dead-letter)", optarg);
			break;
		case OPT_DEAD: f->dead_letter = optarg; break;
		case OPT_MAX_LINE:
			errno = 0;
			v = strtoll(optarg, &end, 10);
			if (errno || end == optarg || *end || v < 64 || v > (1LL << 32))
				USAGE("invalid --max-line \"%s\" (64 to 4294967296 bytes)", optarg);
			f->in.max = (size_t) v;
			break;
		case 'v': log_set_level(LOG_DEBUG); break;
		case OPT_METRICS_FILE:
		case OPT_METRICS_LISTEN:
		case OPT_METRICS_LABEL:
		case OPT_LOG_FORMAT:
			if (metrics_option(&f->metrics, ch, optarg) < 0)
				return EXIT_USAGE;
			break;
		case 'h': help(); return -1;
		case OPT_VERSION: printf("%s (pgcdc) %s\n", progname, PGCDC_VERSION); return -1;
		case ':':	/* argv[optind - 1] is the option, unless it was -t/-T inside a cluster */
			if (strncmp(argv[optind - 1], "--", 2) != 0 && optopt < 256)
				USAGE("option -%c needs a value", optopt);
			USAGE("option %s needs a value", argv[optind - 1]);
		default:
			if (optopt > 0 && optopt < 256)
				USAGE("unknown option -%c", optopt);
			USAGE("unknown option %s", argv[optind - 1]);
		}
		if (rc < 0)
			USAGE("%s", err);
	}
	if (optind < argc)
		USAGE("unexpected argument \"%s\" (cdc-filter reads stdin only)", argv[optind]);
	if (key_env && key_file)
		USAGE("--mask-key-file and --mask-key-env: give one");
	if (f->r.masking && !key_env && !key_file)
		USAGE("--mask needs a key: --mask-key-file FILE or --mask-key-env VAR");
	if (key_env || key_file) {
		size_t n;
		char *key = read_key(key_env, key_file, &n);

		if (!key)
			return EXIT_USAGE;
		if (n < 16)
			log_kv(LOG_WARN, "masking key shorter than 16 bytes: masked values are easier to guess", NULL);
		hmac_init(&f->mask_key, key, n);
		memset(key, 0, n);
		free(key);
	}
	if (f->dead_letter && !on_error_set)
		f->on_error = ONERR_DEADLETTER;
	if (f->on_error == ONERR_DEADLETTER && !f->dead_letter)
		USAGE("--on-error dead-letter needs --dead-letter FILE");
	if (f->dead_letter && f->on_error != ONERR_DEADLETTER)
		USAGE("--dead-letter FILE with --on-error %s: pick one", f->on_error == ONERR_SKIP ? "skip" : "stop");
	return 0;
}

static const struct metric_field fields[] = {
	{M_LINES_IN, "lines"}, {M_EVENTS_OUT, "kept"}, {M_EVENTS_DROPPED, "dropped"},
	{M_EVENTS_REWRITTEN, "rewritten"}, {M_BAD_LINES, "bad"},
};

/* SIGUSR1: one line of figures; and the metrics, once a second. */
static void
status(struct filter *f)
{
	int64_t now = now_ms();
	char rate[32];

	metrics_tick(now, false);
	if (!sig_status)
		return;
	sig_status = 0;
	if (!sig_stop)
		sig_drain();
	snprintf(rate, sizeof(rate), "%.0f", metric_rate(M_LINES_IN, now));
	metrics_log(LOG_INFO, "status", fields, sizeof(fields) / sizeof(fields[0]), "lines_per_s", rate, NULL);
	(void) f;
}

/* Write what is waiting in f->out. 0, or an exit status. */
static int
flush_out(struct filter *f)
{
	int64_t give_up = 0;
	struct pollfd pfd[2] = {{.fd = STDOUT_FILENO, .events = POLLOUT}, {.fd = sig_fd, .events = POLLIN}};
	size_t total = buf_pending(&f->out);
	int rc;

	while (buf_pending(&f->out)) {
		rc = buf_write_fd(&f->out, STDOUT_FILENO);
		if (rc < 0) {
			if (errno == EPIPE)
				log_kv(LOG_ERROR, "downstream gone: stdout closed", NULL);
			else
				log_kv(LOG_ERROR, "could not write to stdout", "error", strerror(errno), NULL);
			return EXIT_RUNTIME;
		}
		if (rc == 0)
			break;
		/* a full non-blocking pipe, or a signal: wait, but not forever once stopping */
		if (sig_stop && !give_up)
			give_up = now_ms() + STOP_WRITE_MS;
		if (give_up && now_ms() >= give_up) {
			char n[24];

			snprintf(n, sizeof(n), "%zu", buf_pending(&f->out));
			log_kv(LOG_ERROR, "stopping: downstream is not reading, output left unwritten",
					"bytes", n, NULL);
			return EXIT_RUNTIME;
		}
		poll(pfd, give_up ? 1 : 2, give_up ? 100 : 1000);	/* once stopping, the signal pipe stays readable */
		status(f);
	}
	f->out.len = f->out.off = 0;
	metric_inc(M_BYTES_OUT, (double) total);
	return 0;
}

static void
emit(struct filter *f, const struct ev_head *h, const char *line, size_t n)
{
	if (f->held.len) {	/* the first event of the transaction: its begin goes first */
		buf_put(&f->out, f->held.data, f->held.len);
		f->held.len = 0;
		metric_add(metric_series(M_EVENTS_OUT, "begin", ""), 1);
	}
	buf_put(&f->out, line, n);
	buf_putc(&f->out, '\n');
	metric_add(metric_event(M_EVENTS_OUT, h), 1);
}

static void
drop(const struct ev_head *h)
{
	metric_add(metric_event(M_EVENTS_DROPPED, h), 1);
}

/* A line that is not a valid event. 0 to go on, or an exit status. */
static int
bad_line(struct filter *f, const char *line, size_t n, const char *why)
{
	char ln[24];

	snprintf(ln, sizeof(ln), "%lu", f->in.lineno);
	if (f->on_error == ONERR_STOP) {
		log_kv(LOG_ERROR, "bad input line, stopping before it", "line", ln, "error", why,
				"hint", "--on-error skip|dead-letter to go on", NULL);
		return EXIT_BADINPUT;
	}
	log_kv(LOG_WARN, f->on_error == ONERR_SKIP ? "bad input line skipped" :
			"bad input line dead-lettered", "line", ln, "error", why, NULL);
	metric_inc(M_BAD_LINES, 1);
	if (f->on_error == ONERR_DEADLETTER && dl_append(f->dead, line, n, f->in.lineno, 0, why) < 0) {
		log_kv(LOG_ERROR, "could not write the dead-letter file", "file", f->dead_letter,
				"error", strerror(errno), NULL);
		return EXIT_RUNTIME;
	}
	return 0;
}

/* Decide one line. 0, or an exit status. */
static int
filter_line(struct filter *f, const char *line, size_t n)
{
	struct ev_head h;
	const struct tabinfo *t;
	const char *err;
	int rc;

	if (ev_check(line, n, &h, &err) < 0)
		return bad_line(f, line, n, err);
	metric_add(metric_event(M_EVENTS_IN, &h), 1);
	switch (h.op) {
	case EV_BEGIN:
		if (!f->drop_empty_tx)
			break;
		if (f->held.len)
			metric_add(metric_series(M_EVENTS_DROPPED, "begin", ""), 1);	/* a begin without its commit: nothing of it was kept */
		f->held.len = 0;
		buf_put(&f->held, line, n);
		buf_putc(&f->held, '\n');
		return 0;
	case EV_COMMIT:
		if (f->held.len) {	/* nothing kept: the begin goes, the commit stays */
			f->held.len = 0;
			metric_add(metric_series(M_EVENTS_DROPPED, "begin", ""), 1);
		}
		break;
	default:
		if (!(f->r.ops & 1u << h.op)) {
			drop(&h);
			return 0;
		}
		if (h.table.type != J_STRING) {
			/* a table's event must name it where the rules look, or they would not apply */
			if (h.op == EV_INSERT || h.op == EV_UPDATE || h.op == EV_DELETE || h.op == EV_READ ||
					h.op == EV_TRUNCATE || h.op == EV_SCHEMA)
				return bad_line(f, line, n, "\"schema\" and \"table\" must follow \"op\"");
			break;	/* messages, heartbeats: no table to select on */
		}
		t = rules_table(&f->r, &h);
		if (!t->keep) {
			drop(&h);
			return 0;
		}
		if (!t->nrules && !t->nconds)
			break;
		rc = rewrite_line(f, t, &h, &err);
		if (rc < 0)
			return bad_line(f, line, n, err);
		if (rc == 0) {
			drop(&h);
			return 0;
		}
		if (rc == 2) {
			metric_inc(M_EVENTS_REWRITTEN, 1);
			emit(f, &h, f->scratch.data, f->scratch.len);
			return 0;
		}
	}
	emit(f, &h, line, n);
	return 0;
}

/*
 * Pipes non-blocking: stdin, so we can write out while waiting for input;
 * stdout, so a reader that stops cannot hold us in write() past a signal.
 */
static int
set_nonblocking(int fd)
{
	struct stat st;
	int fl = -1;

	if (fstat(fd, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)) &&
			(fl = fcntl(fd, F_GETFL)) >= 0)
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	return fl;	/* the flags to put back before exit: the pipe may be shared */
}

static int
run(struct filter *f, bool blocking_in)
{
	/* input, and the signal pipe: a stop signal wakes the wait whenever it lands */
	struct pollfd pfd[2] = {{.fd = STDIN_FILENO, .events = POLLIN}, {.fd = sig_fd, .events = POLLIN}};
	const char *line;
	size_t n;
	int rc = 0, lr;

	while (!sig_stop) {
		/* input that can block (a terminal): write out what we have before a read may wait */
		if (blocking_in && buf_pending(&f->out) && poll(pfd, 1, 0) == 0 && (rc = flush_out(f)) != 0)
			return rc;
		lr = lr_next(&f->in, &line, &n);
		if (lr == LR_LINE || lr == LR_TOOLONG || lr == LR_PARTIAL) {
			metric_inc(M_LINES_IN, 1);
			metric_inc(M_BYTES_IN, (double) n + 1);
			if ((++f->ticks & 1023) == 0)
				status(f);
		}
		switch (lr) {
		case LR_LINE:
			rc = filter_line(f, line, n);
			break;
		case LR_AGAIN:
			/* nothing more for now: what we have goes downstream before we wait */
			if ((rc = flush_out(f)) == 0 && !sig_stop && poll(pfd, 2, 1000) < 0 && errno != EINTR) {
				log_kv(LOG_ERROR, "could not wait for input", "error", strerror(errno), NULL);
				rc = EXIT_RUNTIME;
			}
			status(f);
			break;
		case LR_EOF:
			metric_add(metric_series(M_EVENTS_DROPPED, "begin", ""), f->held.len > 0);	/* a begin whose transaction never ended */
			return flush_out(f);
		case LR_ERROR:
			log_kv(LOG_ERROR, "could not read input", "error", strerror(errno), NULL);
			rc = EXIT_RUNTIME;
			break;
		case LR_TOOLONG:
			rc = bad_line(f, line, n, "line longer than --max-line");
			break;
		case LR_PARTIAL:
			rc = bad_line(f, line, n, "last line has no newline (input cut short?)");
			break;
		}
		if (rc) {
			/* what came before the bad line still goes downstream */
			int wrc = flush_out(f);

			return wrc ? wrc : rc;
		}
		if (buf_pending(&f->out) >= OUT_FLUSH && (rc = flush_out(f)) != 0)
			return rc;
	}
	log_kv(LOG_INFO, "stopping on signal after a whole line", NULL);
	return flush_out(f);
}

int
main(int argc, char **argv)
{
	static const enum metric used[] = {
		M_LINES_IN, M_EVENTS_IN, M_EVENTS_OUT, M_EVENTS_DROPPED, M_EVENTS_REWRITTEN,
		M_BYTES_IN, M_BYTES_OUT, M_BAD_LINES,
	};
	struct filter f;
	int rc, in_flags, out_flags;
	struct stat st;

	memset(&f, 0, sizeof(f));
	log_init(argv[0]);
	lr_init(&f.in, STDIN_FILENO, 0);
	rc = parse_options(&f, argc, argv);
	if (rc) {
		rules_free(&f.r);
		return rc < 0 ? EXIT_OK : rc;
	}
	sig_setup();
	if ((rc = metrics_start(&f.metrics, used, sizeof(used) / sizeof(used[0]), NULL)) != 0 ||
			(f.dead_letter && !(f.dead = fopen(f.dead_letter, "a")))) {
		if (!rc)
			log_kv(LOG_ERROR, "could not open the dead-letter file", "file", f.dead_letter,
					"error", strerror(errno), NULL);
		metrics_stop();
		rules_free(&f.r);
		return rc ? rc : EXIT_RUNTIME;
	}
	in_flags = set_nonblocking(STDIN_FILENO);
	out_flags = set_nonblocking(STDOUT_FILENO);
	rc = run(&f, in_flags < 0 && fstat(STDIN_FILENO, &st) == 0 && !S_ISREG(st.st_mode));
	if (in_flags >= 0)
		fcntl(STDIN_FILENO, F_SETFL, in_flags);
	if (out_flags >= 0)
		fcntl(STDOUT_FILENO, F_SETFL, out_flags);
	metrics_log(rc ? LOG_WARN : LOG_INFO, "done", fields, sizeof(fields) / sizeof(fields[0]), NULL);
	if (f.dead && fclose(f.dead) != 0 && !rc) {
		log_kv(LOG_ERROR, "could not close the dead-letter file", "error", strerror(errno), NULL);
		rc = EXIT_RUNTIME;
	}
	if (close(STDOUT_FILENO) < 0 && !rc) {
		log_kv(LOG_ERROR, "could not write to stdout", "error", strerror(errno), NULL);
		rc = EXIT_RUNTIME;
	}
	metrics_stop();
	rules_free(&f.r);
	hmac_free(&f.mask_key);
	lr_free(&f.in);
	buf_free(&f.out);
	buf_free(&f.held);
	buf_free(&f.scratch);
	buf_free(&f.namebuf);
	buf_free(&f.tmp);
	return rc;
}
