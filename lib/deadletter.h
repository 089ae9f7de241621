/*
 * Dead-letter files: events that could not be taken or delivered, kept
 * with the reason so that nothing is lost and a person can replay them.
 */
#ifndef PGCDC_DEADLETTER_H
#define PGCDC_DEADLETTER_H

#include <stdio.h>

/*
 * Append one line to f: an event the queue refused (STATUS, its HTTP
 * status, not 0) as it came with a last top-level member
 *   "dead_letter":{"status":STATUS,"input_line":LINENO,"error":WHY}
 * or a bad input line (STATUS 0), or a line that is not a JSON object, as
 * {"op":"invalid","line":"<line>","dead_letter":{...}}, with "line_base64"
 * in place of "line" when the line is not valid UTF-8. Flushed and fsynced
 * before returning 0; -1 with errno set on a write error.
 */
int dl_append(FILE *f, const char *line, size_t n, unsigned long lineno, long status,
		const char *why);

#endif
