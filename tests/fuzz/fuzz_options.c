/*
 * libFuzzer target for command lines: the input is arguments separated by
 * NUL bytes, given to one program's own option parser (built once per
 * program: -DFUZZ_CAPTURE, -DFUZZ_FILTER or -DFUZZ_PUBLISH). For
 * cdc-publish the first field is the value of PGCDC_FUZZ_CRED, which the
 * arguments may name with --credentials-env, --basic-env or --bearer-env,
 * and a command line it accepts is then set up as the program would:
 * credentials and connection strings read, the target's URLs derived.
 * What must hold whatever the input: the parser answers 0, -1 (--help,
 * --version) or the usage status, and nothing leaks.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(FUZZ_CAPTURE)
#define main pg_capture_main
#include "../../pg-capture/main.c"
#elif defined(FUZZ_FILTER)
#define main cdc_filter_main
#include "../../cdc-filter/main.c"
#elif defined(FUZZ_PUBLISH)
#define main cdc_publish_main
#include "../../cdc-publish/main.c"
#else
#error "build with -DFUZZ_CAPTURE, -DFUZZ_FILTER or -DFUZZ_PUBLISH"
#endif
#undef main

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAXARGS 40

#if defined(FUZZ_CAPTURE)
static int
parse(int argc, char **argv)
{
	struct capture c;
	int rc;

	memset(&c, 0, sizeof(c));
	rc = parse_options(&c, argc, argv);
	free(c.opt.snapshot_tables);
	return rc;
}
#elif defined(FUZZ_FILTER)
static int
parse(int argc, char **argv)
{
	struct filter f;
	int rc;

	memset(&f, 0, sizeof(f));
	rc = parse_options(&f, argc, argv);
	rules_free(&f.r);
	return rc;
}
#else
static int
parse(int argc, char **argv)
{
	struct publisher p;
	struct options *o = &p.opt;
	int rc;

	memset(&p, 0, sizeof(p));
	p.ackfd = -1;
	rc = parse_options(&p, argc, argv);
	/* set up as main does, but run nothing and create no file */
	if (rc == 0 && !o->bearer_cmd && !o->ack_fifo && !o->dead_letter)
		rc = setup(&p);
	teardown(&p);
	return rc;
}
#endif

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy = malloc(size + 1), *argv[MAXARGS + 2];
	size_t i, start = 0;
	int argc = 0, rc;

	memcpy(copy, data, size);
	copy[size] = '\0';
	argv[argc++] = "fuzz";
#if defined(FUZZ_PUBLISH)
	start = strlen(copy) + 1;
	setenv("PGCDC_FUZZ_CRED", copy, 1);
	if (start > size) {
		free(copy);
		return 0;
	}
#endif
	for (i = start; i <= size && argc <= MAXARGS; i++)
		if (i == size || copy[i] == '\0') {
			argv[argc++] = copy + start;
			start = i + 1;
		}
	argv[argc] = NULL;
	optind = 0;	/* glibc: start getopt afresh */
	log_set_level(LOG_ERROR);
	log_set_format(LOG_FORMAT_LOGFMT);
	rc = parse(argc, argv);
	if (rc != 0 && rc != -1 && rc != EXIT_USAGE && rc != EXIT_RUNTIME)
		__builtin_trap();
	free(copy);
	return 0;
}
