/*
 * Signals: handlers only set flags. SIGPIPE is ignored so a vanished
 * downstream shows up as EPIPE where the write happens.
 */
#ifndef PGCDC_SIG_H
#define PGCDC_SIG_H

#include <signal.h>

extern volatile sig_atomic_t sig_stop;	/* SIGTERM or SIGINT: finish and exit */
extern volatile sig_atomic_t sig_status;	/* SIGUSR1: print a status line (the program clears it) */

/*
 * Readable once a stop signal has arrived (after sig_setup; -1 before):
 * poll it with what you wait for, so a signal landing between a look at
 * sig_stop and the poll() still wakes it.
 */
extern int sig_fd;

void sig_setup(void);
/* Read what the handlers wrote to sig_fd, once their flags are handled. */
void sig_drain(void);

#endif
