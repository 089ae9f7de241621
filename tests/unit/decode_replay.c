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

int
main(int argc, char **argv)
{
	struct capture c;
	FILE *f;
	char *line = NULL, *msg, *sp;
	size_t cap = 0, len, hexlen;
	ssize_t got;
	unsigned long lineno = 0;
	lsn_t lsn;
	int rc = 0;

	log_init(argv[0]);
	if (argc < 3 || argc > 4 || (strcmp(argv[1], "pgoutput") != 0 && strcmp(argv[1], "wal2json") != 0)) {
		fprintf(stderr, "usage: %s pgoutput|wal2json FILE [ENCODING]\n", progname);
		return 2;
	}
	if (!(f = fopen(argv[2], "r"))) {
		fprintf(stderr, "%s: %s: %s\n", progname, argv[2], strerror(errno));
		return 2;
	}

	memset(&c, 0, sizeof(c));
	c.offline = true;
	c.opt.plugin = strcmp(argv[1], "pgoutput") == 0 ? PLUGIN_PGOUTPUT : PLUGIN_WAL2JSON;
	c.opt.slot = "replay";
	c.opt.endpos = LSN_INVALID;
	c.outfd = -1;
	c.partial_commit = LSN_INVALID;
	if (argc == 4 && recode_open(&c, argv[3]) != 0) {
		fclose(f);
		return 2;
	}

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
				rc = bad_line(argv[2], lineno, "bad keepalive LSN");
				break;
			}
			if (!c.tx.open && lsn > c.idle_pos)
				c.idle_pos = lsn;
			continue;
		}

		sp = memchr(line, ' ', len);
		if (!sp || lsn_parse(line, (size_t) (sp - line), &lsn) < 0) {
			rc = bad_line(argv[2], lineno, "expected \"<LSN> <hex>\"");
			break;
		}
		hexlen = len - (size_t) (sp + 1 - line);
		/* exactly the payload's size, so a sanitizer catches any read past it */
		msg = xmalloc(hexlen ? hexlen / 2 : 1);
		if (unhex(sp + 1, hexlen, msg) < 0) {
			rc = bad_line(argv[2], lineno, "payload is not hex of even length");
			free(msg);
			break;
		}
		if (lsn > c.received)
			c.received = lsn;
		if ((c.opt.plugin == PLUGIN_PGOUTPUT ? pgoutput_decode : wal2json_decode)(&c, lsn, msg,
				hexlen / 2) < 0) {
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
		rc = bad_line(argv[2], lineno, strerror(errno));
	fclose(f);
	free(line);
	flush_out(&c);
	free_capture(&c);
	if (fflush(stdout) != 0) {
		fprintf(stderr, "%s: could not write stdout: %s\n", progname, strerror(errno));
		return 2;
	}
	if (rc)
		return rc;
	return c.fatal ? 1 : 0;
}
