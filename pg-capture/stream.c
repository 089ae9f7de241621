/*
 * The streaming loop: receive from the server, decode, write lines, read
 * acknowledgements, report the confirmed position. One poll() waits on all
 * of it, so status updates keep going out while stdout is blocked by a slow
 * reader, and reading from the server pauses while too much output waits.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "capture.h"
#include "../lib/exitcode.h"
#include "../lib/log.h"
#include "../lib/sig.h"
#include "../lib/util.h"

#define OUT_HIGH (1 << 20)		/* pause reading the server above this much pending output */
#define STATUS_MIN_MS 100		/* at most this often for a moved flush position */
#define BATCH_BYTES (256 << 10)	/* a busy stream wakes us for this much (SO_RCVLOWAT) */
#define BATCH_WAIT_MS 2			/* or after this long */
#define RECONNECT_FIRST_MS 500
#define RECONNECT_MAX_MS 15000
#define SLOT_BUSY_RETRY_MS 1000	/* a slot in use is tried this often: a standby takes over within a second */

static void
fatal_protocol(struct capture *c, const char *what)
{
	char l[LSN_BUFSZ];

	lsn_format(c->received, l);
	log_kv(LOG_ERROR, "could not decode the replication stream", "slot", c->opt.slot,
			"lsn", l, "error", what, NULL);
	if (!c->fatal)
		c->fatal = EXIT_RUNTIME;
}

/* A stop was asked for (a signal), rather than --endpos reached. */
static bool
stop_asked(const struct capture *c)
{
	return c->stopping && strcmp(c->stop_reason, "signal") == 0;
}

/*
 * The reader of our output went away: an error, unless a stop was asked
 * for (the stages of a pipeline stop together, in any order). Either way
 * what it did not acknowledge is sent again next time. Returns the exit
 * status.
 */
static int
downstream_gone(struct capture *c)
{
	if (stop_asked(c)) {
		log_kv(LOG_INFO, "stopping: the next stage is gone, what it did not acknowledge will be sent again",
				"slot", c->opt.slot, NULL);
		return 0;
	}
	log_kv(LOG_ERROR, "downstream closed its end of the pipe", "slot", c->opt.slot, NULL);
	return EXIT_RUNTIME;
}

static void
stop_begin(struct capture *c, const char *reason)
{
	if (c->stopping)
		return;
	c->stopping = true;
	c->stop_reason = reason;
	log_kv(LOG_INFO, "stopping", "slot", c->opt.slot, "reason", reason, NULL);
}

/* One CopyData message from the server. */
static void
handle_copy(struct capture *c, const char *m, int n)
{
	lsn_t start, end;
	int i;

	if (n < 1)
		return fatal_protocol(c, "empty CopyData message");
	if (m[0] == 'w' && n >= 25) {
		for (start = end = 0, i = 1; i < 9; i++) {
			start = start << 8 | (unsigned char) m[i];
			end = end << 8 | (unsigned char) m[i + 8];
		}
		if (start > c->received)
			c->received = start;
		if (!c->tx.open && c->opt.endpos != LSN_INVALID && start > c->opt.endpos) {
			stop_begin(c, "endpos");
			return;
		}
		if ((c->opt.plugin == PLUGIN_PGOUTPUT ? pgoutput_decode : wal2json_decode)(c, start,
				m + 25, (size_t) n - 25) < 0)
			return fatal_protocol(c, c->decode_err);
		if (c->past_endpos)	/* a transaction committed after it began: not ours */
			stop_begin(c, "endpos");
	} else if (m[0] == 'k' && n >= 18) {
		for (end = 0, i = 1; i < 9; i++)
			end = end << 8 | (unsigned char) m[i];
		if (!c->tx.open) {
			if (end > c->idle_pos)
				c->idle_pos = end;
			if (c->opt.endpos != LSN_INVALID && end >= c->opt.endpos)
				stop_begin(c, "endpos");
		}
		if (m[17])
			c->status_due = true;
	} else
		fatal_protocol(c, "unknown CopyData message");
}

/* Log a broken connection with libpq's reason; returns -1 (reconnect). */
static int
conn_lost(struct capture *c)
{
	char err[256], l[LSN_BUFSZ];

	snprintf(err, sizeof(err), "%s", PQerrorMessage(c->conn));
	err[strcspn(err, "\n")] = '\0';
	lsn_format(c->received, l);
	log_kv(LOG_WARN, "lost the connection, will reconnect", "slot", c->opt.slot, "lsn", l,
			"error", err, NULL);
	return -1;
}

/* Decode what libpq has. Returns 0, an exit status, or -1 when the connection is gone. */
static int
pump(struct capture *c)
{
	char *msg;
	int n, rc;
	PGresult *res;

	if (!PQconsumeInput(c->conn))
		return conn_lost(c);
	c->backlog = true;
	c->pumped = 0;
	while (!c->stopping && !c->fatal && buf_pending(&c->out) < OUT_HIGH && !snapshot_holds(c)) {
		/* a streamed transaction's commit: its spool first, the server waits */
		if (spool_replaying(c)) {
			if (spool_replay(c) < 0)
				fatal_protocol(c, c->decode_err);
			continue;
		}
		n = PQgetCopyData(c->conn, &msg, 1);
		if (n == 0) {
			c->backlog = false;
			break;
		}
		if (n == -2)
			return conn_lost(c);
		if (n == -1) {
			res = PQgetResult(c->conn);
			rc = PQresultStatus(res) == PGRES_FATAL_ERROR ?
					conn_result_error(c, res, "stream from replication slot") : -1;
			if (rc < 0)
				log_kv(LOG_WARN, "server ended the stream, will reconnect", "slot", c->opt.slot, NULL);
			PQclear(res);
			return rc;
		}
		handle_copy(c, msg, n);
		PQfreemem(msg);
		c->pumped += (size_t) n;
	}
	return c->fatal;
}

static void
lose_conn(struct capture *c)
{
	int64_t now = now_ms();

	tx_reset(c);
	snapshot_reset(c);
	spool_reset(c);		/* the server streams open transactions again */
	c->batching = false;	/* the next socket starts with the default */
	conn_close(c);
	if (!c->down_since)
		c->down_since = now;
	if (c->slot_busy) {
		c->reconnect_at = now + SLOT_BUSY_RETRY_MS;
		return;
	}
	c->reconnect_at = now + c->reconnect_delay_ms;
	c->reconnect_delay_ms = c->reconnect_delay_ms * 2 > RECONNECT_MAX_MS ?
			RECONNECT_MAX_MS : c->reconnect_delay_ms * 2;
}

/* Returns 0, or an exit status when connecting cannot succeed. */
static int
reconnect(struct capture *c)
{
	bool again = c->timeline != 0;	/* connected before */
	int rc;

	c->slot_busy = false;
	rc = conn_open(c, true);

	if (rc == 0 && again)
		metric_inc(M_RECONNECTS, 1);
	if (rc == 0 && !c->snap && (rc = snapshot_start(c)) != 0)
		return rc;
	if (rc == 0) {
		if (c->busy_said)
			log_kv(LOG_INFO, "replication slot is free: taken", "slot", c->opt.slot, NULL);
		c->busy_said = false;
		c->down_since = 0;
		c->reconnect_delay_ms = RECONNECT_FIRST_MS;
		c->status_due = true;
		return 0;
	}
	if (rc > 0)
		return rc;
	lose_conn(c);
	/* no point waiting for an attempt that would come after the deadline */
	if (c->opt.retry_max_s > 0 &&
			c->reconnect_at - c->down_since > (int64_t) c->opt.retry_max_s * 1000) {
		log_kv(LOG_ERROR, "giving up: server unreachable past --retry-max-time", "slot",
				c->opt.slot, NULL);
		return EXIT_UNAVAILABLE;
	}
	return 0;
}

/*
 * While the server streams fast, let the socket collect BATCH_BYTES (or wait
 * at most BATCH_WAIT_MS) before waking us: a wake-up per TCP segment costs
 * more CPU than decoding does, and on two cores every wake-up takes time
 * from the walsender (256 kB and 2 ms drained a backlog about a quarter
 * faster than 64 kB and 1 ms; 1 MB and 10 ms slower again). An idle stream
 * wakes for every byte, so latency stays low.
 */
static void
adapt_batching(struct capture *c)
{
	int64_t now = now_ms();
	bool busy;
	int lowat;

	/* measured over 10 ms windows: busy above about 6 MB/s */
	c->win_bytes += c->pumped;
	if (now - c->win_start < 10)
		return;
	busy = c->win_bytes >= 65536;
	c->win_bytes = 0;
	c->win_start = now;
	lowat = busy ? BATCH_BYTES : 1;
	if (busy == c->batching)
		return;
	if (setsockopt(PQsocket(c->conn), SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof(lowat)) == 0)
		c->batching = busy;
}

/* Write pending output. Returns 0 or an exit status. */
static int
flush_output(struct capture *c)
{
	char err[256];
	int rc;

	if (c->outfd < 0)
		return 0;
	if (buf_pending(&c->out)) {
		size_t before = buf_pending(&c->out);

		rc = buf_write_fd(&c->out, c->outfd);
		metric_add(c->m_bytes_out, (double) (before - buf_pending(&c->out)));
		if (rc < 0 && errno == EPIPE) {
			c->downstream_gone = true;	/* the loop ends: downstream_gone() */
			return 0;
		}
		if (rc < 0) {
			log_kv(LOG_ERROR, "could not write output", "slot", c->opt.slot, "error", strerror(errno), NULL);
			return EXIT_RUNTIME;
		}
		if (rc > 0)
			return 0;
	}
	if (c->written_commit != c->buffered_commit) {
		if (c->out_file && fsync(c->outfd) < 0) {
			log_kv(LOG_ERROR, "could not fsync output file", "file", c->opt.output,
					"error", strerror(errno), NULL);
			return EXIT_RUNTIME;
		}
		c->written_commit = c->buffered_commit;
	}
	if (c->stopping) {
		/* end of stream for the next stage: it delivers, acknowledges and exits */
		if (close(c->outfd) < 0 && errno != EINTR) {
			log_kv(LOG_ERROR, "could not close output", "error", strerror(errno), NULL);
			return EXIT_RUNTIME;
		}
		c->outfd = -1;
		/* from now on acknowledgements can only come from writers already there */
		/* after --endpos, acknowledgements may come from a writer still to come */
		if (c->have_ack && ack_reader_release(&c->ack, !stop_asked(c),
				err, sizeof(err)) < 0) {
			log_kv(LOG_ERROR, err, NULL);
			return EXIT_RUNTIME;
		}
	}
	return 0;
}

static int
handle_ack(struct capture *c, lsn_t lsn)
{
	char l[LSN_BUFSZ];

	size_t i, n;

	if (lsn <= c->confirmed)
		return 0;	/* repeated or already covered */
	/* acknowledgements are cumulative: find it, then drop it and all before */
	for (n = 0; n < c->pend_len && c->pend[(c->pend_head + n) % c->pend_cap] < lsn; n++)
		;
	lsn_format(lsn, l);
	if (n == c->pend_len || c->pend[(c->pend_head + n) % c->pend_cap] != lsn) {
		log_kv(LOG_ERROR, "acknowledgement for a position never emitted", "slot", c->opt.slot,
				"lsn", l, "hint", "only the \"lsn\" of a commit line may be acknowledged", NULL);
		return EXIT_BADINPUT;
	}
	for (i = 0; i <= n; i++) {
		c->pend_head = (c->pend_head + 1) % c->pend_cap;
		c->pend_len--;
	}
	c->confirmed = lsn;
	log_kv(LOG_DEBUG, "acknowledged", "slot", c->opt.slot, "lsn", l, NULL);
	return 0;
}

static int
read_acks(struct capture *c)
{
	char err[256];
	lsn_t lsn;
	int rc;

	while ((rc = ack_reader_next(&c->ack, &lsn, err, sizeof(err))) == 1)
		if ((rc = handle_ack(c, lsn)) != 0)
			return rc;
	if (rc < 0) {
		log_kv(LOG_ERROR, "bad acknowledgement", "slot", c->opt.slot, "error", err, NULL);
		return EXIT_BADINPUT;
	}
	return 0;
}

/* Everything emitted is delivered (and acknowledged) and no transaction is open. */
static bool
idle(const struct capture *c)
{
	return !c->tx.open && c->partial_commit == LSN_INVALID && buf_pending(&c->out) == 0 &&
			(c->have_ack ? c->pend_len == 0 : c->written_commit == c->buffered_commit);
}

/* Move the flush position as far as is safe. Returns true when it moved. */
static bool
update_confirmed(struct capture *c)
{
	lsn_t target = c->confirmed;

	if (!c->have_ack && c->written_commit > target)
		target = c->written_commit;
	/* an idle stream's server position: lets an idle database recycle WAL */
	if (idle(c) && c->idle_pos > target)
		target = c->idle_pos;
	if (target == c->confirmed)
		return false;
	c->confirmed = target;
	return true;
}

static void
wait_events(struct capture *c, int64_t deadline)
{
	struct pollfd fds[4];
	int nfds = 0, timeout, out = -1, ack = -1;
	int64_t now = now_ms();

	if (c->conn) {
		fds[nfds].fd = PQsocket(c->conn);
		fds[nfds].events = (!c->stopping && buf_pending(&c->out) < OUT_HIGH && !snapshot_holds(c) ? POLLIN : 0) |
				(PQflush(c->conn) == 1 ? POLLOUT : 0);
		nfds++;
	}
	/* a pipe is watched even with nothing to write: its reader dying must end us */
	if (c->outfd >= 0 && (buf_pending(&c->out) || c->out_flags >= 0)) {
		out = nfds;
		fds[nfds].fd = c->outfd;
		fds[nfds++].events = buf_pending(&c->out) ? POLLOUT : 0;
	}
	if (c->have_ack) {
		ack = nfds;
		fds[nfds].fd = c->ack.fd;
		fds[nfds++].events = POLLIN;
	}
	if (snapshot_socket(c) >= 0) {
		fds[nfds].fd = snapshot_socket(c);
		fds[nfds++].events = POLLIN;
	}
	timeout = deadline - now < 0 ? 0 : deadline - now > 1000 ? 1000 : (int) (deadline - now);
	if (poll(fds, (nfds_t) nfds, timeout) < 0 && errno != EINTR)
		log_kv(LOG_WARN, "poll failed", "error", strerror(errno), NULL);
	else {
		if (out >= 0 && !buf_pending(&c->out) && (fds[out].revents & (POLLERR | POLLHUP)))
			c->downstream_gone = true;
		if (ack >= 0 && c->ack.keep_fd < 0 && (fds[ack].revents & POLLHUP))
			c->ack_hup = true;
	}
}

/* Report the final position and say goodbye to the server. */
static int
finish(struct capture *c, int rc)
{
	if (c->conn) {
		/* after a failure, report only what was already known to be safe */
		if (rc == 0)
			update_confirmed(c);
		PQsetnonblocking(c->conn, 0);
		if (conn_send_status(c, false) == 0)
			PQflush(c->conn);
		PQputCopyEnd(c->conn, NULL);
		PQflush(c->conn);
	}
	snapshot_confirmed(c);
	watch_stop(c, rc);
	return rc;
}

int
stream_run(struct capture *c)
{
	int64_t now, last_status = 0, deadline;
	bool moved = false, signalled = false;
	lsn_t before;
	int rc;

	c->reconnect_delay_ms = RECONNECT_FIRST_MS;
	c->next_status = now_ms();
	for (;;) {
		now = now_ms();
		if (sig_stop && !signalled) {
			signalled = true;
			stop_begin(c, "signal");
			c->stop_deadline = now + c->opt.stop_timeout_ms;
		}
		if (!c->conn && !c->stopping && now >= c->reconnect_at && (rc = reconnect(c)) != 0)
			return finish(c, rc);
		/* while a snapshot chunk is read and none waits for its high watermark, the stream waits: the window is not open yet */
		if (c->conn && !c->stopping && buf_pending(&c->out) < OUT_HIGH && !snapshot_holds(c)) {
			rc = pump(c);
			if (rc > 0)
				return finish(c, rc);
			if (rc < 0)
				lose_conn(c);
			else
				adapt_batching(c);
		}
		before = c->confirmed;
		if ((rc = flush_output(c)) != 0 || (c->have_ack && (rc = read_acks(c)) != 0))
			return finish(c, rc);
		if (c->downstream_gone)
			return finish(c, downstream_gone(c));
		/* an acknowledgement reaches the server within STATUS_MIN_MS, not at the next interval */
		moved |= c->confirmed != before;
		moved |= update_confirmed(c);
		/* acknowledgements move c->confirmed too: snapshot progress follows either */
		snapshot_confirmed(c);
		now = now_ms();
		if (c->conn && !c->stopping) {
			heartbeat_tick(c, now);
			health_tick(c, now);
			snapshot_tick(c);
		}
		if ((rc = watch_tick(c, now)) != 0)
			return finish(c, rc);
		if (c->fatal)	/* the snapshot's, e.g. a table the role may not read */
			return finish(c, c->fatal);
		if (c->conn && (c->status_due || now >= c->next_status ||
				(moved && now - last_status >= STATUS_MIN_MS))) {
			/* when idle, ask for a keepalive: its position is ours to confirm */
			if (conn_send_status(c, idle(c)) < 0) {
				conn_lost(c);
				lose_conn(c);
			}
			c->status_due = moved = false;
			last_status = now;
			c->next_status = now + c->opt.status_interval_ms;
		}
		if (c->stopping && buf_pending(&c->out) == 0 && (!c->have_ack || c->pend_len == 0))
			return finish(c, 0);
		if (c->ack_hup && c->pend_len > 0 && signalled) {
			char n[24];

			/* a stop was asked: what was not acknowledged is sent again next time */
			snprintf(n, sizeof(n), "%zu", c->pend_len);
			log_kv(LOG_INFO, "stopping: the acknowledging stage is gone, transactions left unacknowledged "
					"will be sent again", "slot", c->opt.slot, "unacknowledged", n, NULL);
			return finish(c, 0);
		}
		if (c->ack_hup && c->pend_len > 0) {
			char n[24];

			snprintf(n, sizeof(n), "%zu", c->pend_len);
			log_kv(LOG_ERROR, "the acknowledging stage closed the ack pipe before acknowledging everything",
					"slot", c->opt.slot, "unacknowledged", n, NULL);
			return finish(c, EXIT_RUNTIME);
		}
		if (c->stopping && c->stop_deadline && now >= c->stop_deadline) {
			char n[24];

			snprintf(n, sizeof(n), "%zu", c->pend_len);
			log_kv(LOG_WARN, "stop timeout: leaving transactions unacknowledged, they will be sent again",
					"slot", c->opt.slot, "unacknowledged", n, NULL);
			return finish(c, 0);
		}
		/* without a connection there is no status to send: wait for the reconnect */
		deadline = c->conn ? c->next_status : now + 1000;
		if (moved && c->conn && last_status + STATUS_MIN_MS < deadline)
			deadline = last_status + STATUS_MIN_MS;
		if (!c->conn && !c->stopping && c->reconnect_at < deadline)
			deadline = c->reconnect_at;
		if (c->stop_deadline && c->stop_deadline < deadline)
			deadline = c->stop_deadline;
		if (c->opt.heartbeat_ms && c->conn && !c->stopping && c->next_heartbeat < deadline)
			deadline = c->next_heartbeat;
		if (c->opt.health_interval_ms && c->conn && !c->stopping && c->next_health < deadline)
			deadline = c->next_health;
		if (c->conn && !c->stopping && snapshot_ready(c))
			deadline = now;
		if (c->batching && c->conn && now + BATCH_WAIT_MS < deadline)
			deadline = now + BATCH_WAIT_MS;
		/* complete messages may still sit in libpq's buffer: no waiting for the socket */
		if (c->backlog && c->conn && !c->stopping && buf_pending(&c->out) < OUT_HIGH &&
				!snapshot_holds(c))
			deadline = now;
		wait_events(c, deadline);
		if (c->downstream_gone)
			return finish(c, downstream_gone(c));
	}
}
