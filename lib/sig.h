/*
 * Signals: handlers only set flags. SIGPIPE is ignored so a vanished
 * downstream shows up as EPIPE where the write happens.
 */
#ifndef PGCDC_SIG_H
#define PGCDC_SIG_H

#include <signal.h>

extern volatile sig_atomic_t sig_stop;	/* SIGTERM or SIGINT: finish and exit */

void sig_setup(void);

#endif
