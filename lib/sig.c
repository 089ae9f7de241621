#define _GNU_SOURCE	/* pipe2 */
#include "sig.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

volatile sig_atomic_t sig_stop;
volatile sig_atomic_t sig_status;
int sig_fd = -1;
static int sig_wfd = -1;

static void
on_stop(int signo)
{
	int saved = errno;

	sig_stop = signo;
	if (sig_wfd >= 0)
		(void) !write(sig_wfd, "", 1);	/* wakes a poll() that started just before */
	errno = saved;
}

static void
on_status(int signo)
{
	int saved = errno;

	(void) signo;
	sig_status = 1;
	if (sig_wfd >= 0)
		(void) !write(sig_wfd, "", 1);
	errno = saved;
}

/* Empty the wake pipe (after a status line: the next poll() must wait again). */
void
sig_drain(void)
{
	char junk[64];

	if (sig_fd >= 0)
		while (read(sig_fd, junk, sizeof(junk)) > 0)
			;
}

void
sig_setup(void)
{
	struct sigaction sa;

	if (sig_fd < 0) {
		int p[2];

		if (pipe2(p, O_NONBLOCK | O_CLOEXEC) == 0) {
			sig_fd = p[0];
			sig_wfd = p[1];
		}
	}
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	/* no SA_RESTART: a blocked poll() or write() returns EINTR and we look at the flag */
	sa.sa_handler = on_stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = on_status;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
}
