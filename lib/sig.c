#include "sig.h"

#include <string.h>

volatile sig_atomic_t sig_stop;

static void
on_stop(int signo)
{
	sig_stop = signo;
}

void
sig_setup(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	/* no SA_RESTART: a blocked poll() or write() returns EINTR and we look at the flag */
	sa.sa_handler = on_stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
}
