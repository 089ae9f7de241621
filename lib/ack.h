/*
 * The acknowledgement pipe: a FIFO (mode 0600) carrying one LSN per line,
 * "16/B374D848\n", non-decreasing, from the last stage back to pg-capture.
 * The only place ack lines are read or written.
 */
#ifndef PGCDC_ACK_H
#define PGCDC_ACK_H

#include <stdbool.h>
#include <stddef.h>

#include "lsn.h"

#define ACK_LINE_MAX 64

struct ack_reader {
	int fd;			/* read end, non-blocking */
	int keep_fd;	/* our own write end: no EOF when writers come and go */
	char line[ACK_LINE_MAX];
	size_t len;
	unsigned long lineno;
	const char *path;	/* borrowed from the caller */
};

/*
 * Create the FIFO at path (mode 0600) unless it exists, and open it for
 * reading without blocking. Returns 0, or -1 with a message in err.
 */
int ack_reader_open(struct ack_reader *r, const char *path, char *err, size_t errsz);
void ack_reader_close(struct ack_reader *r);

/*
 * Stop holding our own write end, so poll() reports POLLHUP once no writer
 * is left: for the end of a run, when a vanished writer means no
 * acknowledgement will ever come. When no writer is there any more (the
 * acknowledging stage died before), POLLHUP comes at once, unless
 * await_writer: then a writer that comes later is waited for (and its
 * leaving reported). Returns 0, or -1 with a message in err.
 */
int ack_reader_release(struct ack_reader *r, bool await_writer, char *err, size_t errsz);

/*
 * Take the next complete line. Returns 1 and sets *lsn, 0 when no complete
 * line is available yet, -1 on a malformed line or read error (message in
 * err, with the line number).
 */
int ack_reader_next(struct ack_reader *r, lsn_t *lsn, char *err, size_t errsz);

/*
 * Create the FIFO unless it exists and open it for writing. Blocks until a
 * reader has it open. Returns the descriptor or -1 with a message in err.
 */
int ack_writer_open(const char *path, char *err, size_t errsz);

/* Write one acknowledgement line. Returns 0 or -1 (errno set). */
int ack_write(int fd, lsn_t lsn);

#endif
