/*
 * pg-capture: stream committed changes from a PostgreSQL logical
 * replication slot to stdout as cdc-json lines (see pg-capture(1)).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "capture.h"
#include "../lib/exitcode.h"
#include "../lib/log.h"
#include "../lib/metrics.h"
#include "../lib/sig.h"
#include "../lib/util.h"

#ifndef PGCDC_VERSION
#define PGCDC_VERSION "dev"
#endif

enum {
	OPT_PLUGIN = 256, OPT_PUBLICATION, OPT_CREATE, OPT_IF_NOT_EXISTS, OPT_DROP,
	OPT_ACK_FIFO, OPT_STATUS, OPT_RETRY, OPT_STOP_TIMEOUT, OPT_VERSION, OPT_HEARTBEAT, OPT_HEALTH, OPT_STALL,
	OPT_FAILOVER, OPT_SNAPSHOT, OPT_SNAPSHOT_TABLE, OPT_SNAPSHOT_CHUNK, OPT_STREAM_IN_PROGRESS,
	OPT_INSTALL_DDL, OPT_UNINSTALL_DDL
};

static const struct option longopts[] = {
	/* connection and slot */
	{"dbname", required_argument, NULL, 'd'},
	{"slot", required_argument, NULL, 'S'},
	{"plugin", required_argument, NULL, OPT_PLUGIN},
	{"publication", required_argument, NULL, OPT_PUBLICATION},
	{"create-slot", no_argument, NULL, OPT_CREATE},
	{"if-not-exists", no_argument, NULL, OPT_IF_NOT_EXISTS},
	{"drop-slot", no_argument, NULL, OPT_DROP},
	{"failover", no_argument, NULL, OPT_FAILOVER},
	{"install-ddl-capture", no_argument, NULL, OPT_INSTALL_DDL},
	{"uninstall-ddl-capture", no_argument, NULL, OPT_UNINSTALL_DDL},
	/* streaming */
	{"endpos", required_argument, NULL, 'E'},
	{"ack-fifo", required_argument, NULL, OPT_ACK_FIFO},
	{"output", required_argument, NULL, 'o'},
	{"status-interval", required_argument, NULL, OPT_STATUS},
	{"heartbeat", required_argument, NULL, OPT_HEARTBEAT},
	{"health-interval", required_argument, NULL, OPT_HEALTH},
	{"stall-timeout", required_argument, NULL, OPT_STALL},
	METRICS_LONGOPTS,
	{"retry-max-time", required_argument, NULL, OPT_RETRY},
	{"stop-timeout", required_argument, NULL, OPT_STOP_TIMEOUT},
	/* snapshots */
	{"snapshot", no_argument, NULL, OPT_SNAPSHOT},
	{"snapshot-table", required_argument, NULL, OPT_SNAPSHOT_TABLE},
	{"snapshot-chunk", required_argument, NULL, OPT_SNAPSHOT_CHUNK},
	{"stream-in-progress", no_argument, NULL, OPT_STREAM_IN_PROGRESS},
	/* general */
	{"verbose", no_argument, NULL, 'v'},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, OPT_VERSION},
	{NULL, 0, NULL, 0}
};

static void
help(void)
{
	printf("%s streams committed changes from a PostgreSQL logical replication slot\n"
		"to stdout, one cdc-json event per line.\n\n"
		"Usage:\n  %s [OPTION]... -S SLOT\n"
		"  %s [-d CONNINFO] --install-ddl-capture | --uninstall-ddl-capture\n\n"
		"Connection and slot:\n"
		"  -d, --dbname=CONNINFO    connection string or URI (default: PG* variables)\n"
		"  -S, --slot=NAME          logical replication slot to stream from\n"
		"      --plugin=NAME        pgoutput (default) or wal2json\n"
		"      --publication=NAME   pgoutput publication (default: the slot name)\n"
		"      --create-slot        create the slot (and for pgoutput a publication FOR\n"
		"                           ALL TABLES when missing), then stream\n"
		"      --if-not-exists      with --create-slot: use the slot if it exists\n"
		"      --drop-slot          drop the slot and exit\n"
		"      --failover           make the slot a failover slot, synchronised to\n"
		"                           standbys (created as one, or turned on; PostgreSQL 17+)\n"
		"      --install-ddl-capture    install the event trigger that writes DDL\n"
		"                           commands into the WAL (\"ddl\" events; superuser), exit\n"
		"      --uninstall-ddl-capture  remove it and exit\n\n"
		"Streaming:\n"
		"  -E, --endpos=LSN         exit 0 after the last transaction committed at or\n"
		"                           before LSN (with --ack-fifo: once it is acknowledged)\n"
		"      --ack-fifo=PATH      confirm only positions acknowledged on this FIFO\n"
		"  -o, --output=FILE        append to FILE instead of stdout, fsync before confirming\n"
		"      --status-interval=SECS  status update period (default 10, or a third of\n"
		"                           the server's wal_sender_timeout when that is less)\n"
		"      --health-interval=SECS  log the slot's health when it changed, checked\n"
		"                           every SECS (default 60; 0: never)\n"
		"      --stall-timeout=SECS exit (status 10) when nothing was acknowledged (or,\n"
		"                           without --ack-fifo, read) for SECS while transactions\n"
		"                           waited (default 0: never)\n"
		"      --heartbeat=SECS     write a heartbeat into the WAL every SECS; it comes\n"
		"                           back as a \"heartbeat\" event (PostgreSQL 14+ with\n"
		"                           pgoutput, or wal2json)\n"
		"      --retry-max-time=SECS   give up reconnecting after SECS (default 0: never)\n"
		"      --stop-timeout=SECS  on SIGTERM/SIGINT, wait this long for acknowledgements\n"
		"                           (default 10)\n"
		"      --stream-in-progress  have the server stream big transactions while they\n"
		"                           run, spooled to a temporary file here until they\n"
		"                           commit (pgoutput, PostgreSQL 14+)\n\n"
		"Snapshots (PostgreSQL 14+ with pgoutput, or wal2json):\n"
		"      --snapshot           read every published table as \"read\" events while\n"
		"                           streaming, once per slot; resumed after a restart\n"
		"      --snapshot-table=NAME  read this table (repeatable); later ones on demand:\n"
		"                           SELECT pg_logical_emit_message(true, 'pgcdc.snapshot', 'NAME')\n"
		"      --snapshot-chunk=ROWS  rows per chunk (default: about 2 MB of rows)\n\n"
		"General:\n"
		"  -v, --verbose            log debug lines\n"
		METRICS_USAGE
		"  -h, --help               show this help and exit\n"
		"      --version            show the version and exit\n\n"
		"Exit status: 0 ok, 1 runtime error, 2 usage, 3 bad acknowledgement, 4 server\n"
		"unreachable, 5 authentication or permission, 6 no such slot, 7 slot invalidated,\n"
		"8 server configuration (wal_level, plugin, publication), 10 stalled.\n", progname, progname, progname);
}

/* Seconds (fractions allowed) to milliseconds; -1 if s is not a number in range. */
static int
parse_secs(const char *s, double min)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || v < min || v > 86400 * 7)
		return -1;
	return (int) (v * 1000);
}

static bool
valid_slot_name(const char *s)
{
	size_t n = strlen(s);

	return n > 0 && n < 64 && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_") == n;
}

/* Parse argv into c->opt. Returns 0, -1 for --help/--version done, or EXIT_USAGE. */
static int
parse_options(struct capture *c, int argc, char **argv)
{
	struct options *o = &c->opt;
	int ch, ms;

	o->status_interval_ms = 10000;
	o->health_interval_ms = 60000;
	o->stop_timeout_ms = 10000;
	while ((ch = getopt_long(argc, argv, "d:S:E:o:vh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'd': o->dbname = optarg; break;
		case 'S': o->slot = optarg; break;
		case OPT_PLUGIN:
			if (strcmp(optarg, "pgoutput") == 0)
				o->plugin = PLUGIN_PGOUTPUT;
			else if (strcmp(optarg, "wal2json") == 0)
				o->plugin = PLUGIN_WAL2JSON;
			else
				return usage_error("unknown plugin \"%s\" (pgoutput or wal2json)", optarg), EXIT_USAGE;
			break;
		case OPT_PUBLICATION: o->publication = optarg; break;
		case OPT_CREATE: o->create_slot = true; break;
		case OPT_IF_NOT_EXISTS: o->if_not_exists = true; break;
		case OPT_DROP: o->drop_slot = true; break;
		case OPT_FAILOVER: o->failover = true; break;
		case OPT_INSTALL_DDL: o->install_ddl = true; break;
		case OPT_UNINSTALL_DDL: o->uninstall_ddl = true; break;
		case 'E':
			if (lsn_parse(optarg, strlen(optarg), &o->endpos) < 0 || o->endpos == LSN_INVALID)
				return usage_error("invalid LSN \"%s\" for --endpos", optarg), EXIT_USAGE;
			break;
		case OPT_ACK_FIFO: o->ack_fifo = optarg; break;
		case 'o': o->output = optarg; break;
		case OPT_STATUS:
			if ((ms = parse_secs(optarg, 0.01)) < 0)
				return usage_error("invalid --status-interval \"%s\"", optarg), EXIT_USAGE;
			o->status_interval_ms = ms;
			o->status_interval_set = true;
			break;
		case OPT_HEALTH:
			if ((ms = parse_secs(optarg, 0)) < 0 || (ms > 0 && ms < 100))
				return usage_error("invalid --health-interval \"%s\" (0, or at least 0.1)", optarg), EXIT_USAGE;
			o->health_interval_ms = ms;
			break;
		case OPT_STALL:
			if ((ms = parse_secs(optarg, 0)) < 0)
				return usage_error("invalid --stall-timeout \"%s\"", optarg), EXIT_USAGE;
			o->stall_timeout_ms = ms;
			break;
		case OPT_METRICS_FILE:
		case OPT_METRICS_LISTEN:
		case OPT_METRICS_LABEL:
		case OPT_LOG_FORMAT:
			if (metrics_option(&o->metrics, ch, optarg) < 0)
				return EXIT_USAGE;
			break;
		case OPT_HEARTBEAT:
			if ((ms = parse_secs(optarg, 0.1)) < 0)
				return usage_error("invalid --heartbeat \"%s\"", optarg), EXIT_USAGE;
			o->heartbeat_ms = ms;
			break;
		case OPT_RETRY:
			if ((ms = parse_secs(optarg, 0)) < 0)
				return usage_error("invalid --retry-max-time \"%s\"", optarg), EXIT_USAGE;
			o->retry_max_s = (ms + 999) / 1000;
			break;
		case OPT_STOP_TIMEOUT:
			if ((ms = parse_secs(optarg, 0)) < 0)
				return usage_error("invalid --stop-timeout \"%s\"", optarg), EXIT_USAGE;
			o->stop_timeout_ms = ms;
			break;
		case OPT_SNAPSHOT: o->snapshot = true; break;
		case OPT_SNAPSHOT_TABLE:
			o->snapshot_tables = xrealloc(o->snapshot_tables,
					(size_t) (o->nsnapshot_tables + 1) * sizeof(*o->snapshot_tables));
			o->snapshot_tables[o->nsnapshot_tables++] = optarg;
			break;
		case OPT_SNAPSHOT_CHUNK: {
			char *end;
			long n = strtol(optarg, &end, 10);

			if (end == optarg || *end || n < 1 || n > 1000000)
				return usage_error("invalid --snapshot-chunk \"%s\" (1 to 1000000 rows)", optarg), EXIT_USAGE;
			o->snapshot_chunk = (int) n;
			break;
		}
		case OPT_STREAM_IN_PROGRESS: o->stream_in_progress = true; break;
		case 'v': o->verbose++; break;
		case 'h': help(); return -1;
		case OPT_VERSION: printf("%s (pgcdc) %s\n", progname, PGCDC_VERSION); return -1;
		default:
			fprintf(stderr, "Try '%s --help' for more information.\n", progname);
			return EXIT_USAGE;
		}
	}

	/* validation */
	if (optind < argc)
		return usage_error("unexpected argument \"%s\"", argv[optind]), EXIT_USAGE;
	if (o->install_ddl || o->uninstall_ddl) {
		if (o->install_ddl && o->uninstall_ddl)
			return usage_error("--install-ddl-capture and --uninstall-ddl-capture exclude each other"), EXIT_USAGE;
		if (o->slot || o->drop_slot || o->create_slot || o->endpos || o->ack_fifo || o->output ||
				o->publication || o->heartbeat_ms)
			return usage_error("--%s-ddl-capture takes no slot or streaming options",
					o->install_ddl ? "install" : "uninstall"), EXIT_USAGE;
		if (o->verbose)
			log_set_level(LOG_DEBUG);
		return 0;
	}
	if (!o->slot)
		return usage_error("no slot given (-S NAME)"), EXIT_USAGE;
	if (!valid_slot_name(o->slot))
		return usage_error("invalid slot name \"%s\" (lower-case letters, digits, _; at most 63)", o->slot), EXIT_USAGE;
	if (o->drop_slot && (o->create_slot || o->failover || o->endpos || o->ack_fifo || o->output ||
			o->snapshot || o->nsnapshot_tables))
		return usage_error("--drop-slot cannot be combined with streaming options"), EXIT_USAGE;
	if (o->if_not_exists && !o->create_slot)
		return usage_error("--if-not-exists needs --create-slot"), EXIT_USAGE;
	if (o->publication && o->plugin != PLUGIN_PGOUTPUT)
		return usage_error("--publication applies to pgoutput only"), EXIT_USAGE;
	if (o->stream_in_progress && o->plugin != PLUGIN_PGOUTPUT)
		return usage_error("--stream-in-progress applies to pgoutput only"), EXIT_USAGE;
	if (!o->publication)
		o->publication = o->slot;
	if (o->verbose)
		log_set_level(LOG_DEBUG);
	return 0;
}

/* Set up c->outfd: the -o file, or stdout made non-blocking when it is a pipe. */
static int
open_output(struct capture *c)
{
	struct stat st;

	if (c->opt.output) {
		c->outfd = open(c->opt.output, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (c->outfd < 0) {
			log_kv(LOG_ERROR, "could not open output file", "file", c->opt.output,
					"error", strerror(errno), NULL);
			return EXIT_RUNTIME;
		}
		/* a character device or a pipe cannot be synced (EINVAL): say so once */
		c->out_file = fstat(c->outfd, &st) == 0 && S_ISREG(st.st_mode);
		if (!c->out_file)
			log_kv(LOG_INFO, "output is not a regular file: written without fsync", "file",
					c->opt.output, NULL);
		return 0;
	}
	c->outfd = STDOUT_FILENO;
	c->out_flags = -1;
	/* a pipe must not block us: status updates go on while the reader is slow */
	if (fstat(c->outfd, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))) {
		c->out_flags = fcntl(c->outfd, F_GETFL);
		if (c->out_flags >= 0)
			fcntl(c->outfd, F_SETFL, c->out_flags | O_NONBLOCK);
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct capture c;
	char err[512];
	int rc;

	memset(&c, 0, sizeof(c));
	log_init(argv[0]);
	/*
	 * Snapshot chunks and big messages come and go by the megabyte: keep
	 * freed memory for the next one instead of handing it back and taking
	 * page faults on it again (glibc's defaults trim above 128 kB).
	 */
	mallopt(M_MMAP_THRESHOLD, 4 << 20);
	mallopt(M_TRIM_THRESHOLD, 8 << 20);
	rc = parse_options(&c, argc, argv);
	if (rc)
		return rc < 0 ? EXIT_OK : rc;
	sig_setup();

	if (c.opt.install_ddl || c.opt.uninstall_ddl) {
		rc = c.opt.install_ddl ? ddl_install(&c) : ddl_uninstall(&c);
		PQfinish(c.cat);
		return rc;
	}
	if (c.opt.drop_slot) {
		rc = conn_open(&c, false);
		if (rc == 0)
			rc = conn_drop_slot(&c);
		if (rc == 0)
			snapshot_forget(&c);
		conn_close(&c);
		PQfinish(c.cat);
		return rc < 0 ? EXIT_UNAVAILABLE : rc;
	}
	if (c.opt.ack_fifo) {
		if (ack_reader_open(&c.ack, c.opt.ack_fifo, err, sizeof(err)) < 0) {
			log_kv(LOG_ERROR, err, NULL);
			return EXIT_RUNTIME;
		}
		c.have_ack = true;
	}
	if ((rc = open_output(&c)) != 0 || (rc = watch_start(&c)) != 0) {
		metrics_stop();
		return rc;
	}

	rc = stream_run(&c);

	if (c.conn)
		conn_close(&c);
	PQfinish(c.cat);
	if (c.outfd >= 0 && c.outfd != STDOUT_FILENO)
		close(c.outfd);
	else if (c.outfd == STDOUT_FILENO && c.out_flags >= 0)
		fcntl(c.outfd, F_SETFL, c.out_flags);
	if (c.have_ack)
		ack_reader_close(&c.ack);
	while (c.nrels)
		rel_free(c.rels[--c.nrels]);
	free(c.rels);
	free(c.pend);
	free(c.pend_ts);
	free(c.vals);
	free(c.health_state);
	snapshot_free(&c);
	free(c.opt.snapshot_tables);
	spool_free(&c);
	buf_free(&c.out);
	buf_free(&c.scratch);
	recode_close(&c);
	return rc;
}
