#include "ack.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* mkfifo unless present; an existing non-FIFO is an error. */
static int
ensure_fifo(const char *path, char *err, size_t errsz)
{
	struct stat st;

	if (mkfifo(path, 0600) == 0)
		return 0;
	if (errno != EEXIST) {
		snprintf(err, errsz, "could not create ack pipe \"%s\": %s", path, strerror(errno));
		return -1;
	}
	if (stat(path, &st) < 0) {
		snprintf(err, errsz, "could not stat ack pipe \"%s\": %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISFIFO(st.st_mode)) {
		snprintf(err, errsz, "ack pipe \"%s\" exists and is not a FIFO", path);
		return -1;
	}
	return 0;
}

int
ack_reader_open(struct ack_reader *r, const char *path, char *err, size_t errsz)
{
	memset(r, 0, sizeof(*r));
	r->fd = r->keep_fd = -1;
	if (ensure_fifo(path, err, errsz) < 0)
		return -1;
	r->path = path;
	r->fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (r->fd >= 0)
		r->keep_fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	if (r->fd < 0 || r->keep_fd < 0) {
		snprintf(err, errsz, "could not open ack pipe \"%s\": %s", path, strerror(errno));
		ack_reader_close(r);
		return -1;
	}
	return 0;
}

void
ack_reader_close(struct ack_reader *r)
{
	if (r->fd >= 0)
		close(r->fd);
	if (r->keep_fd >= 0)
		close(r->keep_fd);
	r->fd = r->keep_fd = -1;
}

int
ack_reader_release(struct ack_reader *r, bool await_writer, char *err, size_t errsz)
{
	struct pollfd p = {.events = POLLIN};
	int fd;

	if (r->keep_fd < 0)
		return 0;
	/*
	 * Our write end goes, so that the last writer leaving is seen as a
	 * hang-up. Linux reports POLLHUP on a FIFO's read end when no writer
	 * is left, except on a read end opened while there was none: that one
	 * waits for a writer to come and go first. The first read end saw our
	 * write end come after it, so it hangs up as soon as no writer is
	 * left: when the acknowledging stage is gone already (killed before
	 * the stop), it says so at once. Otherwise, or when a writer is
	 * awaited (acknowledgements written by hand after --endpos), a read end
	 * opened now reports the last writer leaving, from now on.
	 */
	close(r->keep_fd);
	r->keep_fd = -1;
	fd = open(r->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errsz, "could not reopen ack pipe \"%s\": %s", r->path, strerror(errno));
		return -1;
	}
	p.fd = r->fd;
	if (!await_writer && poll(&p, 1, 0) == 1 && (p.revents & POLLHUP)) {
		close(fd);	/* no writer left: the first read end says so */
		return 0;
	}
	/* unread acknowledgements stay in the pipe: any read end reads them */
	close(r->fd);
	r->fd = fd;
	return 0;
}

/* Printable excerpt of a bad line for messages. */
static void
excerpt(const char *s, size_t n, char *out, size_t outsz)
{
	size_t i, j = 0;

	for (i = 0; i < n && j + 5 < outsz; i++)
		out[j++] = (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"') ? s[i] : '?';
	if (i < n)
		out[j++] = '.', out[j++] = '.', out[j++] = '.';
	out[j] = '\0';
}

int
ack_reader_next(struct ack_reader *r, lsn_t *lsn, char *err, size_t errsz)
{
	char *nl, show[40];
	ssize_t n;
	size_t linelen;

	for (;;) {
		nl = memchr(r->line, '\n', r->len);
		if (nl)
			break;
		if (r->len == sizeof(r->line)) {
			r->lineno++;
			excerpt(r->line, r->len, show, sizeof(show));
			snprintf(err, errsz, "ack pipe line %lu too long: \"%s\"", r->lineno, show);
			return -1;
		}
		n = read(r->fd, r->line + r->len, sizeof(r->line) - r->len);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return 0;
		if (n < 0) {
			snprintf(err, errsz, "could not read ack pipe: %s", strerror(errno));
			return -1;
		}
		if (n == 0)
			return 0;	/* cannot happen while keep_fd is open */
		r->len += (size_t) n;
	}
	linelen = (size_t) (nl - r->line);
	r->lineno++;
	if (lsn_parse(r->line, linelen, lsn) < 0) {
		excerpt(r->line, linelen, show, sizeof(show));
		snprintf(err, errsz, "ack pipe line %lu is not an LSN: \"%s\"", r->lineno, show);
		return -1;
	}
	r->len -= linelen + 1;
	memmove(r->line, nl + 1, r->len);
	return 1;
}

int
ack_writer_open(const char *path, char *err, size_t errsz)
{
	int fd;

	if (ensure_fifo(path, err, errsz) < 0)
		return -1;
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		snprintf(err, errsz, "could not open ack pipe \"%s\": %s", path, strerror(errno));
	return fd;
}

int
ack_write(int fd, lsn_t lsn)
{
	char line[LSN_BUFSZ + 1];
	int n = lsn_format(lsn, line);
	ssize_t w;

	line[n++] = '\n';
	/* shorter than PIPE_BUF, so the write is atomic */
	do
		w = write(fd, line, (size_t) n);
	while (w < 0 && errno == EINTR);
	return w == n ? 0 : -1;
}
