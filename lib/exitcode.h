/*
 * Exit statuses shared by every pgcdc program (see EXIT STATUS in the man
 * pages). A supervisor can tell from the number alone whether a restart can
 * help: 1, 4, 7 and 10 may heal by themselves; 2, 3, 5, 6 and 8 need a person.
 */
#ifndef PGCDC_EXITCODE_H
#define PGCDC_EXITCODE_H

enum {
	EXIT_OK = 0,
	EXIT_RUNTIME = 1,		/* I/O error, out of memory, downstream gone */
	EXIT_USAGE = 2,			/* bad command line */
	EXIT_BADINPUT = 3,		/* malformed input line or acknowledgement */
	EXIT_UNAVAILABLE = 4,	/* upstream unreachable until the retry deadline */
	EXIT_AUTH = 5,			/* authentication failed or permission denied */
	EXIT_NOSLOT = 6,		/* replication slot does not exist */
	EXIT_SLOTLOST = 7,		/* replication slot invalidated or in use too long */
	EXIT_SERVERCONF = 8,	/* server not set up for it: wal_level, plugin */
	EXIT_REJECTED = 9,		/* the queue refused an event for good */
	EXIT_STALLED = 10		/* nothing acknowledged for --stall-timeout while work waited */
};

#endif
