/*
 * decode_replay PLUGIN FILE [ENCODING]: feed recorded replication messages through a
 * decoder and write the event lines it produces to stdout, so the decoders
 * can be tested against golden files without a server.
 *
 * FILE holds one message per line:
 *
 *   <LSN> <hex of the payload>    a message: the bytes after XLogData's 25-byte header
 *   k <LSN>                       a keepalive at LSN
 *   # ...                         comment (blank lines are ignored too)
 *
 * PLUGIN is pgoutput or wal2json; ENCODING is the database's, as the
 * server names it (default UTF8), which wal2json's text is in. Decoding stops at the first fatal error,
 * as pg-capture's stream loop does. Exit status: 0, 1 when a decoder
 * reported a fatal error, 2 for a bad command line or a malformed FILE.
 *
 * decode_replay --cuts PLUGIN FILE [ENCODING]: FILE's last message cut at
 * each of its lengths, after the rest of FILE, in one process; each replay
 * must end with a decoder's fatal error (status 1). Exit status 0 when
 * every cut did (the whole FILE must replay cleanly first), 3 when one did
 * not (said on stderr), 2 as above.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../pg-capture/capture.h"
#include "../../lib/exitcode.h"
#include "../../lib/log.h"
#include "../../lib/util.h"

static int
hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* Decode n hex digits of s into out (n/2 bytes); -1 when s is not hex of even length. */
static int
unhex(const char *s, size_t n, char *out)
{
	size_t i;
	int hi, lo;

	if (n % 2)
		return -1;
	for (i = 0; i < n; i += 2) {
		hi = hexval((unsigned char) s[i]);
		lo = hexval((unsigned char) s[i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i / 2] = (char) (hi << 4 | lo);
	}
	return 0;
}

static void
flush_out(struct capture *c)
{
	if (buf_pending(&c->out) &&
			fwrite(c->out.data + c->out.off, 1, buf_pending(&c->out), stdout) != buf_pending(&c->out)) {
		fprintf(stderr, "%s: could not write stdout: %s\n", progname, strerror(errno));
		exit(2);
	}
	c->out.off = c->out.len = 0;
}

/* Free what the decoders keep, so a leak checker sees only real leaks. */
static void
free_capture(struct capture *c)
{
	size_t i;

	for (i = 0; i < c->nrels; i++)
		rel_free(c->rels[i]);
	free(c->rels);
	free(c->vals);
	free(c->pend);
	buf_free(&c->out);
	buf_free(&c->scratch);
	recode_close(c);
	spool_free(c);
}

static int
bad_line(const char *file, unsigned long lineno, const char *what)
{
	fprintf(stderr, "%s: %s:%lu: %s\n", progname, file, lineno, what);
	return 2;
}

/*
 * Replay FILE (open) through a fresh decoder for plugin, writing events to
 * stdout. When cut_line is not 0, the message on that line is cut to its
 * first cut_bytes bytes. Returns 0, 1 when a decoder reported a fatal
 * error, 2 for a malformed FILE; *last_line and *last_bytes tell where the
 * last message was and how long.
 */
static int
replay(enum plugin plugin, FILE *f, const char *path, const char *encoding,
		unsigned long cut_line, size_t cut_bytes, unsigned long *last_line, size_t *last_bytes)
{
	struct capture c;
	char *line = NULL, *msg, *sp;
	size_t cap = 0, len, hexlen;
	ssize_t got;
	unsigned long lineno = 0;
	lsn_t lsn;
	int rc = 0;

	memset(&c, 0, sizeof(c));
	c.offline = true;
	c.opt.plugin = plugin;
	c.opt.slot = "replay";
	c.opt.endpos = LSN_INVALID;
	c.outfd = -1;
	c.partial_commit = LSN_INVALID;
	if (encoding && recode_open(&c, encoding) != 0)
		return 2;

	while (rc == 0 && !c.fatal && !c.stopping && (got = getline(&line, &cap, f)) >= 0) {
		lineno++;
		len = (size_t) got;
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			len--;
		line[len] = '\0';
		if (len == 0 || line[0] == '#')
			continue;

		if (line[0] == 'k' && line[1] == ' ') {
			/* keepalive: what stream.c does with one outside a transaction */
			if (lsn_parse(line + 2, len - 2, &lsn) < 0) {
				rc = bad_line(path, lineno, "bad keepalive LSN");
				break;
			}
			if (!c.tx.open && lsn > c.idle_pos)
				c.idle_pos = lsn;
			continue;
		}

		sp = memchr(line, ' ', len);
		if (!sp || lsn_parse(line, (size_t) (sp - line), &lsn) < 0) {
			rc = bad_line(path, lineno, "expected \"<LSN> <hex>\"");
			break;
		}
		hexlen = len - (size_t) (sp + 1 - line);
		*last_line = lineno;
		*last_bytes = hexlen / 2;
		if (lineno == cut_line && hexlen > 2 * cut_bytes)
			hexlen = 2 * cut_bytes;
		/* exactly the payload's size, so a sanitizer catches any read past it */
		msg = xmalloc(hexlen ? hexlen / 2 : 1);
		if (unhex(sp + 1, hexlen, msg) < 0) {
			rc = bad_line(path, lineno, "payload is not hex of even length");
			free(msg);
			break;
		}
		if (lsn > c.received)
			c.received = lsn;
		if ((plugin == PLUGIN_PGOUTPUT ? pgoutput_decode : wal2json_decode)(&c, lsn, msg, hexlen / 2) < 0) {
			char l[LSN_BUFSZ];

			lsn_format(lsn, l);
			log_kv(LOG_ERROR, "could not decode the replication stream", "lsn", l,
					"error", c.decode_err, NULL);
			c.fatal = EXIT_RUNTIME;
		}
		/* a streamed transaction committed: replayed from its spool, as stream.c does */
		while (!c.fatal && spool_replaying(&c)) {
			if (spool_replay(&c) < 0) {
				log_kv(LOG_ERROR, "could not decode the replication stream", "error", c.decode_err, NULL);
				c.fatal = EXIT_RUNTIME;
			}
			flush_out(&c);
		}
		free(msg);
		flush_out(&c);
	}
	if (rc == 0 && ferror(f))
		rc = bad_line(path, lineno, strerror(errno));
	free(line);
	flush_out(&c);
	free_capture(&c);
	if (rc)
		return rc;
	return c.fatal ? 1 : 0;
}

int
main(int argc, char **argv)
{
	bool cuts = argc > 1 && strcmp(argv[1], "--cuts") == 0;
	unsigned long last_line = 0;
	size_t last_bytes = 0, n;
	enum plugin plugin;
	FILE *f;
	int rc;

	log_init(argv[0]);
	argv += cuts;
	argc -= cuts;
	if (argc < 3 || argc > 4 || (strcmp(argv[1], "pgoutput") != 0 && strcmp(argv[1], "wal2json") != 0)) {
		fprintf(stderr, "usage: %s [--cuts] pgoutput|wal2json FILE [ENCODING]\n", progname);
		return 2;
	}
	if (!(f = fopen(argv[2], "r"))) {
		fprintf(stderr, "%s: %s: %s\n", progname, argv[2], strerror(errno));
		return 2;
	}
	plugin = strcmp(argv[1], "pgoutput") == 0 ? PLUGIN_PGOUTPUT : PLUGIN_WAL2JSON;
	rc = replay(plugin, f, argv[2], argc == 4 ? argv[3] : NULL, 0, 0, &last_line, &last_bytes);
	/* --cuts: the whole file replayed, then again with its last message cut at each length */
	for (n = 0; cuts && rc == 0 && n < last_bytes; n++) {
		rewind(f);
		if ((rc = replay(plugin, f, argv[2], argc == 4 ? argv[3] : NULL, last_line, n, &last_line,
				&last_bytes)) == 1)
			rc = 0;
		else {
			fprintf(stderr, "%s: %s: the last message cut to %zu bytes: status %d, not 1\n",
					progname, argv[2], n, rc);
			rc = rc ? rc : 3;
		}
	}
	fclose(f);
	if (fflush(stdout) != 0) {
		fprintf(stderr, "%s: could not write stdout: %s\n", progname, strerror(errno));
		return 2;
	}
	return rc;
}
