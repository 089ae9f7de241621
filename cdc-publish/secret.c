#define _GNU_SOURCE	/* pipe2 */
/*
 * Secrets: read from a variable, a file or a command's output, never from
 * the command line; and the bearer token kept fresh: --bearer-file read
 * again when it changes, --bearer-command run again when its token is
 * older than --bearer-refresh or was refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "publish.h"
#include "../lib/log.h"
#include "../lib/util.h"

#define SECRET_MAX 65536

/* Trailing blanks and newlines off b, then a NUL; NULL with a log line if empty or too large. */
static char *
secret_finish(struct buf *b, const char *what, const char *name)
{
	while (b->len > 0 && strchr(" \t\r\n", b->data[b->len - 1]))
		b->len--;
	if (b->len == 0 || b->len >= SECRET_MAX) {
		log_kv(LOG_ERROR, what, "source", name, "error", b->len ? "larger than 64 KiB" : "empty", NULL);
		if (b->data)
			explicit_bzero(b->data, b->cap);
		buf_free(b);
		return NULL;
	}
	buf_putc(b, '\0');
	return b->data;
}

/*
 * A secret from an environment variable or a file (all of it, up to 64
 * KiB, without trailing blanks and newlines: a token, a connection string,
 * a service-account key). Returns it, the caller's to free with
 * secret_free; NULL with a log line.
 */
char *
read_secret(const char *env, const char *file)
{
	struct buf b = {0};
	char chunk[4096];
	size_t n;
	FILE *f;

	if (env) {
		const char *v = getenv(env);

		if (!v || !*v) {
			log_kv(LOG_ERROR, "credentials variable is not set", "variable", env, NULL);
			return NULL;
		}
		return xstrdup(v);
	}
	if (!(f = fopen(file, "r"))) {
		log_kv(LOG_ERROR, "could not read credentials file", "file", file, "error", strerror(errno), NULL);
		return NULL;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0 && b.len < SECRET_MAX)
		buf_put(&b, chunk, n);
	explicit_bzero(chunk, sizeof(chunk));
	fclose(f);
	return secret_finish(&b, "could not read credentials file", file);
}

/*
 * The standard output of sh -c CMD, waited for at most timeout_ms (then
 * killed). Its standard error is ours, so its own complaints are seen.
 * Returns the output as read_secret does, or NULL with a log line.
 */
static char *
command_secret(const char *cmd, int timeout_ms)
{
	int fd[2], status = 0;
	int64_t deadline = now_ms() + timeout_ms;
	struct buf b = {0};
	char chunk[4096];
	ssize_t n = 1;
	pid_t pid;

	if (pipe2(fd, O_CLOEXEC) < 0 || (pid = fork()) < 0) {
		log_kv(LOG_ERROR, "could not run --bearer-command", "error", strerror(errno), NULL);
		return NULL;
	}
	if (pid == 0) {
		dup2(fd[1], STDOUT_FILENO);
		signal(SIGPIPE, SIG_DFL);
		execl("/bin/sh", "sh", "-c", cmd, (char *) NULL);
		_exit(127);
	}
	close(fd[1]);
	while (n > 0 && b.len < SECRET_MAX) {
		struct pollfd pfd = {.fd = fd[0], .events = POLLIN};
		int64_t left = deadline - now_ms();

		if (left <= 0 || poll(&pfd, 1, (int) left) == 0) {
			kill(pid, SIGKILL);
			n = -2;
			break;
		}
		if ((n = read(fd[0], chunk, sizeof(chunk))) > 0)
			buf_put(&b, chunk, (size_t) n);
		else if (n < 0 && errno == EINTR)
			n = 1;
	}
	explicit_bzero(chunk, sizeof(chunk));
	close(fd[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (n == -2 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		char st[16];

		snprintf(st, sizeof(st), "%d", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		log_kv(LOG_ERROR, "--bearer-command failed", "error",
				n == -2 ? "no answer within --timeout, killed" : "exit status not 0",
				"status", n == -2 ? NULL : st, NULL);
		if (b.data)
			explicit_bzero(b.data, b.cap);
		buf_free(&b);
		return NULL;
	}
	return secret_finish(&b, "--bearer-command gave no token", "--bearer-command");
}

/*
 * p->auth from --bearer-env, --bearer-file or --bearer-command: the first
 * line. Returns false, p->auth as it was, with a log line.
 */
bool
bearer_load(struct publisher *p)
{
	struct options *o = &p->opt;
	struct stat st;
	char *tok;

	/* stat before reading: a change while we read is seen next time */
	if (o->bearer_file && stat(o->bearer_file, &st) == 0) {
		p->auth_file.mtime_ns = (int64_t) st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
		p->auth_file.size = (int64_t) st.st_size;
		p->auth_file.ino = (int64_t) st.st_ino;
	}
	tok = o->bearer_cmd ? command_secret(o->bearer_cmd, o->timeout_ms) :
			read_secret(o->bearer_env, o->bearer_file);
	if (!tok)
		return false;
	p->auth_file.loaded = now_ms();
	p->auth_file.stale = false;
	tok[strcspn(tok, "\r\n")] = '\0';	/* a header line ends there */
	secret_free(p->auth);
	p->auth = xmalloc(strlen(tok) + 32);
	sprintf(p->auth, "Authorization: Bearer %s", tok);
	secret_free(tok);
	return true;
}

/* The token was refused (a 401): the next attempt gets a new one, where one can be had. */
void
bearer_expire(struct publisher *p)
{
	p->auth_file.stale = true;
}

/*
 * Read --bearer-file again if it changed (its time, size or inode) since
 * it was read, or run --bearer-command again once its token is older than
 * --bearer-refresh or was refused: a token that something else renews.
 * Called before every attempt. When that fails, the token stays as it was.
 * Returns true if the token was read anew.
 */
bool
bearer_refresh(struct publisher *p)
{
	struct options *o = &p->opt;
	struct stat st;

	if (o->bearer_cmd) {
		if (!p->auth_file.stale && now_ms() - p->auth_file.loaded < o->bearer_refresh_ms)
			return false;
		if (!bearer_load(p))
			return false;
		log_kv(LOG_INFO, "bearer token renewed by --bearer-command", NULL);
		return true;
	}
	if (!o->bearer_file || stat(o->bearer_file, &st) != 0)
		return false;
	if (!p->auth_file.stale &&
			(int64_t) st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec == p->auth_file.mtime_ns &&
			(int64_t) st.st_size == p->auth_file.size && (int64_t) st.st_ino == p->auth_file.ino)
		return false;
	if (!bearer_load(p))
		return false;
	log_kv(LOG_INFO, "bearer token read again: the file changed", "file", o->bearer_file, NULL);
	return true;
}
