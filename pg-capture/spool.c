/*
 * Transactions streamed while in progress (--stream-in-progress, pgoutput
 * protocol version 2): each top-level transaction's messages go to a
 * temporary file of its own, unlinked as soon as it is made, and at its
 * Stream Commit the file is replayed through the decoder as one ordinary
 * transaction (begin, the changes in order, commit), so the events and
 * their ids are those the transaction would have had without streaming.
 * Memory stays bounded: one write buffer for the open stream block, one
 * read buffer for the replay, and per transaction a few words for each of
 * its subtransactions.
 *
 * A record in a file: xid (4 bytes), length (4), the message's LSN (8),
 * then the message as pgoutput sends it outside a stream (its type byte
 * and what follows the xid), in host byte order: the file never leaves
 * this process.
 *
 * Subtransactions: pgoutput marks a streamed change with the xid of the
 * subtransaction that made it, and a Stream Abort naming a subtransaction
 * discards that subtransaction (its own Stream Abort comes for each of its
 * aborted children too). Everything streamed after a subtransaction's first
 * change, until its abort, is that subtransaction's or its children's (a
 * backend runs one subtransaction at a time, and a stream sends changes in
 * WAL order), so an abort discards a range: from the subtransaction's first
 * record to the end of the file. Relation messages in that range are kept:
 * pgoutput counts a relation as described to the whole top-level
 * transaction once it was sent in any of its subtransactions, and will not
 * describe it again before the transaction's next change of that table.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capture.h"
#include "../lib/log.h"
#include "../lib/util.h"

#define WBUF_MAX 65536			/* write the open block's records out beyond this */
#define RBUF_MIN 65536

struct rec_hdr {
	uint32_t xid;
	uint32_t len;
	uint64_t lsn;
};

struct subx {
	uint32_t xid;
	off_t off;					/* its first record */
};

struct range {
	off_t from, to;				/* records in [from, to) are skipped, relations aside */
};

/* One streamed top-level transaction in progress. */
struct stx {
	uint32_t xid;
	int fd;
	off_t size;					/* bytes in the file, the write buffer's included */
	lsn_t first_lsn;			/* where its first stream began */
	off_t rel_end;				/* end of its last relation or type record */
	uint32_t last_xid;			/* xid of its last record: a run needs no look-up */
	struct subx *subs;			/* its subtransactions, by first record */
	size_t nsubs, subcap;
	struct range *skip;			/* aborted subtransactions, sorted, disjoint */
	size_t nskip, skipcap;
};

struct spooler {
	struct stx **txs;
	size_t ntxs;
	struct stx *cur;			/* transaction of the open stream block, or NULL */
	struct buf wbuf;			/* cur's records not yet written */
	struct stx *replay;			/* transaction being replayed, or NULL */
	lsn_t end_lsn;				/* its end position: the commit line's lsn */
	off_t roff;					/* file offset of rbuf's first byte */
	struct buf rbuf;			/* bytes [off, len) read ahead */
	size_t rskip;				/* first range of replay->skip not yet passed */
};

static int
fail(struct capture *c, const char *what, int err)
{
	if (err)
		snprintf(c->decode_err, sizeof(c->decode_err), "%s: %s", what, strerror(err));
	else
		snprintf(c->decode_err, sizeof(c->decode_err), "%s", what);
	return -1;
}

static struct spooler *
spooler(struct capture *c)
{
	if (!c->spool)
		c->spool = xcalloc(1, sizeof(*c->spool));
	return c->spool;
}

static struct stx *
find(struct spooler *s, uint32_t xid)
{
	size_t i;

	for (i = 0; i < s->ntxs; i++)
		if (s->txs[i]->xid == xid)
			return s->txs[i];
	return NULL;
}

/* Close a transaction's file and forget it. */
static void
drop(struct spooler *s, struct stx *t)
{
	size_t i;

	for (i = 0; i < s->ntxs && s->txs[i] != t; i++)
		;
	if (i < s->ntxs)
		s->txs[i] = s->txs[--s->ntxs];
	if (s->cur == t) {
		s->cur = NULL;
		s->wbuf.len = s->wbuf.off = 0;
	}
	if (s->replay == t)
		s->replay = NULL;
	close(t->fd);
	free(t->subs);
	free(t->skip);
	free(t);
}

/* A new, already unlinked temporary file in $TMPDIR. Returns its fd, or -1 with errno. */
static int
tmpfile_fd(void)
{
	const char *dir = getenv("TMPDIR");
	char path[4096];
	int fd, n;

	n = snprintf(path, sizeof(path), "%s/pg-capture-stream.XXXXXX", dir && *dir ? dir : "/tmp");
	if (n < 0 || (size_t) n >= sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = mkstemp(path);
	if (fd >= 0) {
		unlink(path);
		fcntl(fd, F_SETFD, FD_CLOEXEC);
	}
	return fd;
}

/* Write the open block's buffered records to its file. Returns 0, or -1 with c->decode_err. */
static int
flush_block(struct capture *c)
{
	struct spooler *s = c->spool;
	ssize_t n;

	while (s->cur && buf_pending(&s->wbuf)) {
		/* at an explicit offset: an abort may have cut the file short */
		n = pwrite(s->cur->fd, s->wbuf.data + s->wbuf.off, buf_pending(&s->wbuf),
				s->cur->size - (off_t) buf_pending(&s->wbuf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return fail(c, "could not write the stream spool file", errno);
		s->wbuf.off += (size_t) n;
	}
	s->wbuf.len = s->wbuf.off = 0;
	return 0;
}

bool
spool_in_block(const struct capture *c)
{
	return c->spool && c->spool->cur;
}

bool
spool_replaying(const struct capture *c)
{
	return c->spool && c->spool->replay;
}

/* Stream Start: first is true for the transaction's first block. */
int
spool_start(struct capture *c, uint32_t xid, bool first, lsn_t lsn)
{
	struct spooler *s = spooler(c);
	struct stx *t = find(s, xid);
	char x[16];

	if (s->cur || s->replay)
		return fail(c, "pgoutput stream start inside a stream", 0);
	if (!first && !t)
		return fail(c, "pgoutput stream continues a transaction whose start was not received", 0);
	if (first) {
		if (t)
			drop(s, t);
		t = xcalloc(1, sizeof(*t));
		t->xid = t->last_xid = xid;
		t->first_lsn = lsn;
		if ((t->fd = tmpfile_fd()) < 0) {
			free(t);
			return fail(c, "could not create the stream spool file", errno);
		}
		s->txs = xrealloc(s->txs, (s->ntxs + 1) * sizeof(*s->txs));
		s->txs[s->ntxs++] = t;
		snprintf(x, sizeof(x), "%u", xid);
		log_kv(LOG_DEBUG, "streaming a transaction in progress", "slot", c->opt.slot, "xid", x, NULL);
	}
	s->cur = t;
	return 0;
}

/* Stream Stop. */
int
spool_stop(struct capture *c)
{
	int rc;

	if (!spool_in_block(c))
		return fail(c, "pgoutput stream stop outside a stream", 0);
	rc = flush_block(c);
	c->spool->cur = NULL;
	return rc;
}

/* Remember where subtransaction xid's records begin (the first time it is seen). */
static void
note_subx(struct stx *t, uint32_t xid)
{
	size_t i;

	if (xid == t->last_xid || xid == t->xid)
		return;
	t->last_xid = xid;
	for (i = t->nsubs; i > 0; i--)
		if (t->subs[i - 1].xid == xid)
			return;
	if (t->nsubs == t->subcap) {
		t->subcap = t->subcap ? t->subcap * 2 : 16;
		t->subs = xrealloc(t->subs, t->subcap * sizeof(*t->subs));
	}
	t->subs[t->nsubs].xid = xid;
	t->subs[t->nsubs++].off = t->size;
}

/*
 * A message inside a stream block: kind, then body[0..n) (what follows
 * the xid). Returns 0, or -1 with c->decode_err.
 */
int
spool_append(struct capture *c, uint32_t xid, lsn_t lsn, char kind, const void *body, size_t n)
{
	struct spooler *s = c->spool;
	struct stx *t = s->cur;
	struct rec_hdr h;

	if (n >= UINT32_MAX)
		return fail(c, "pgoutput message too large to spool", 0);
	if (xid != t->xid)
		note_subx(t, xid);
	else
		t->last_xid = xid;
	h.xid = xid;
	h.len = (uint32_t) n + 1;
	h.lsn = lsn;
	buf_put(&s->wbuf, &h, sizeof(h));
	buf_putc(&s->wbuf, kind);
	buf_put(&s->wbuf, body, n);
	t->size += (off_t) (sizeof(h) + n + 1);
	if (kind == 'R' || kind == 'Y')
		t->rel_end = t->size;
	return buf_pending(&s->wbuf) > WBUF_MAX ? flush_block(c) : 0;
}

/* Skip [from, t->size) at replay: drop the ranges it covers, extend or add one. */
static void
skip_range(struct stx *t, off_t from)
{
	while (t->nskip && t->skip[t->nskip - 1].from >= from)
		t->nskip--;
	if (t->nskip && t->skip[t->nskip - 1].to >= from) {
		t->skip[t->nskip - 1].to = t->size;
		return;
	}
	if (t->nskip == t->skipcap) {
		t->skipcap = t->skipcap ? t->skipcap * 2 : 8;
		t->skip = xrealloc(t->skip, t->skipcap * sizeof(*t->skip));
	}
	t->skip[t->nskip].from = from;
	t->skip[t->nskip++].to = t->size;
}

/*
 * Stream Abort: subxid == xid discards the transaction, another discards
 * that subtransaction's records. With no relation among them the file is
 * cut short; else they are skipped at replay.
 */
int
spool_abort(struct capture *c, uint32_t xid, uint32_t subxid)
{
	struct spooler *s = spooler(c);
	struct stx *t = find(s, xid);
	size_t i;

	if (s->cur || s->replay)
		return fail(c, "pgoutput stream abort inside a stream", 0);
	if (!t)
		return 0;	/* nothing of it was streamed on this connection */
	if (subxid == xid) {
		drop(s, t);
		return 0;
	}
	for (i = t->nsubs; i > 0 && t->subs[i - 1].xid != subxid; i--)
		;
	if (i == 0)
		return 0;	/* none of its changes were streamed */
	i--;
	/* later subtransactions began inside it: aborted with it */
	t->nsubs = i;
	t->last_xid = t->xid;
	if (t->rel_end <= t->subs[i].off) {
		if (ftruncate(t->fd, t->subs[i].off) < 0)
			return fail(c, "could not truncate the stream spool file", errno);
		t->size = t->subs[i].off;
		while (t->nskip && t->skip[t->nskip - 1].from >= t->size)
			t->nskip--;
		if (t->nskip && t->skip[t->nskip - 1].to > t->size)
			t->skip[t->nskip - 1].to = t->size;
		return 0;
	}
	skip_range(t, t->subs[i].off);
	return 0;
}

/*
 * Stream Commit: open the transaction and make its file the one replayed
 * (spool_replay, called by the loop while output has room). Returns 0, or
 * -1 with c->decode_err.
 */
int
spool_commit(struct capture *c, uint32_t xid, lsn_t commit_lsn, lsn_t end_lsn, int64_t ts)
{
	struct spooler *s = spooler(c);
	struct stx *t = find(s, xid);

	if (s->cur || s->replay)
		return fail(c, "pgoutput stream commit inside a stream", 0);
	if (!t)
		return fail(c, "pgoutput stream commit for a transaction never streamed", 0);
	tx_begin(c, xid, commit_lsn, t->first_lsn, ts);
	if (c->tx.skip) {	/* delivered before a reconnect, or after --endpos */
		tx_commit(c, end_lsn);
		drop(s, t);
		return 0;
	}
	s->replay = t;
	s->end_lsn = end_lsn;
	s->roff = 0;
	s->rskip = 0;
	s->rbuf.len = s->rbuf.off = 0;
	return 0;
}

/*
 * Make the next n bytes of the replayed file readable at rbuf.data +
 * rbuf.off. Returns 1, 0 at the end of the file, -1 with c->decode_err.
 */
static int
fill(struct capture *c, size_t n)
{
	struct spooler *s = c->spool;
	struct buf *b = &s->rbuf;
	size_t want;
	ssize_t got;

	while (buf_pending(b) < n) {
		if (b->off) {
			memmove(b->data, b->data + b->off, buf_pending(b));
			s->roff += (off_t) b->off;
			b->len -= b->off;
			b->off = 0;
		}
		want = n > RBUF_MIN ? n : RBUF_MIN;
		if (b->cap < want)
			buf_reserve(b, want - b->len);
		got = pread(s->replay->fd, b->data + b->len, b->cap - b->len, s->roff + (off_t) b->len);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return fail(c, "could not read the stream spool file", errno);
		if (got == 0)
			return buf_pending(b) ? fail(c, "stream spool file cut short", 0) : 0;
		b->len += (size_t) got;
	}
	return 1;
}

/* Whether the record at offset off, of kind kind, lies in an aborted subtransaction. */
static bool
skipped(struct spooler *s, off_t off, char kind)
{
	struct stx *t = s->replay;

	while (s->rskip < t->nskip && t->skip[s->rskip].to <= off)
		s->rskip++;
	return s->rskip < t->nskip && t->skip[s->rskip].from <= off && kind != 'R' && kind != 'Y';
}

/* The transaction is replayed: commit it and close its file. */
static void
replay_done(struct capture *c)
{
	struct spooler *s = c->spool;
	struct stx *t = s->replay;
	char x[16], sz[24];

	snprintf(x, sizeof(x), "%u", t->xid);
	snprintf(sz, sizeof(sz), "%lld", (long long) t->size);
	log_kv(LOG_DEBUG, "replayed a streamed transaction", "slot", c->opt.slot, "xid", x,
			"spooled_bytes", sz, NULL);
	tx_commit(c, s->end_lsn);
	drop(s, t);
}

/*
 * Replay the next record of the committed transaction through the
 * decoder, or end the transaction after its last. Returns 0, or -1 with
 * c->decode_err.
 */
int
spool_replay(struct capture *c)
{
	struct spooler *s = c->spool;
	struct rec_hdr h;
	off_t off;
	int rc;

	if ((rc = fill(c, sizeof(h))) <= 0) {
		if (rc == 0)
			replay_done(c);
		return rc;
	}
	memcpy(&h, s->rbuf.data + s->rbuf.off, sizeof(h));
	if ((rc = fill(c, sizeof(h) + h.len)) <= 0)
		return rc < 0 ? rc : fail(c, "stream spool file cut short", 0);
	off = s->roff + (off_t) s->rbuf.off;
	s->rbuf.off += sizeof(h) + h.len;
	if (skipped(s, off, s->rbuf.data[s->rbuf.off - h.len]))
		return 0;
	return pgoutput_decode(c, h.lsn, s->rbuf.data + s->rbuf.off - h.len, h.len);
}

/* The connection is gone: the server streams every open transaction again. */
void
spool_reset(struct capture *c)
{
	struct spooler *s = c->spool;

	if (!s)
		return;
	while (s->ntxs)
		drop(s, s->txs[0]);
}

void
spool_free(struct capture *c)
{
	if (!c->spool)
		return;
	spool_reset(c);
	free(c->spool->txs);
	buf_free(&c->spool->wbuf);
	buf_free(&c->spool->rbuf);
	free(c->spool);
	c->spool = NULL;
}
