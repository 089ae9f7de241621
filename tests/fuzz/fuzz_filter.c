/*
 * libFuzzer target for cdc-filter: the line reader and the decision on
 * each line, under a handful of rule sets (the first input byte picks one),
 * through the program's own code. It checks what must hold whatever the
 * input:
 *   - every line written is a valid event line (ev_check accepts it);
 *   - without column rules, a kept line is written byte for byte as read;
 *   - every valid commit line is written.
 */
#define _GNU_SOURCE
#include <sys/mman.h>

#define main cdc_filter_main
#include "../../cdc-filter/main.c"
#undef main

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NSETS 5

static struct filter sets[NSETS];

static void
must(int rc)
{
	if (rc < 0)
		__builtin_trap();
}

static void
setup(void)
{
	char err[256];
	int i;

	log_set_level(LOG_ERROR);
	for (i = 0; i < NSETS; i++) {
		sets[i].r.ops = ~0u;
		sets[i].on_error = ONERR_SKIP;
		hmac_init(&sets[i].mask_key, "fuzz-mask-key-0123456789", 24);
	}
	/* 0: nothing; 1: tables and operations only (the fast path) */
	must(rules_add_tables(&sets[1].r, "public.w*", false, err, sizeof(err)));
	must(rules_add_tables(&sets[1].r, "t?", false, err, sizeof(err)));
	must(rules_add_tables(&sets[1].r, "*.audit\\*", true, err, sizeof(err)));
	must(rules_set_ops(&sets[1].r, "!update,!message", err, sizeof(err)));
	/* 2: columns kept, dropped and masked */
	must(rules_add_columns(&sets[2].r, "id,st*,a,b,\xc3\xa9*", COL_KEEP, err, sizeof(err)));
	must(rules_add_columns(&sets[2].r, "public.*:st?tus", COL_DROP, err, sizeof(err)));
	must(rules_add_columns(&sets[2].r, "a,b", COL_MASK, err, sizeof(err)));
	/* 3: conditions, empty transactions dropped */
	must(rules_add_where(&sets[3].r, "new.status=done", err, sizeof(err)));
	must(rules_add_where(&sets[3].r, "old.a!=new.a", err, sizeof(err)));
	sets[3].drop_empty_tx = true;
	/* 4: everything at once */
	must(rules_add_tables(&sets[4].r, "*", false, err, sizeof(err)));
	must(rules_add_where(&sets[4].r, "t*:key.id!=\"7\"", err, sizeof(err)));
	must(rules_add_where(&sets[4].r, "new.n!=null", err, sizeof(err)));
	must(rules_add_columns(&sets[4].r, "t*:x", COL_DROP, err, sizeof(err)));
	must(rules_add_columns(&sets[4].r, "*", COL_MASK, err, sizeof(err)));
	must(rules_set_ops(&sets[4].r, "insert,update,delete,schema,truncate", err, sizeof(err)));
	sets[4].drop_empty_tx = true;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	struct filter *f;
	const char *line, *err, *p, *end;
	struct ev_head h;
	size_t n, before, commits = 0, written = 0;
	int fd, rc, which;
	bool rewrites;

	if (!ready) {
		setup();
		ready = 1;
	}
	if (size < 1)
		return 0;
	which = data[0] % NSETS;
	f = &sets[which];
	rewrites = which >= 2;
	fd = memfd_create("input", 0);
	if (fd < 0 || write(fd, data + 1, size - 1) != (ssize_t) (size - 1) || lseek(fd, 0, SEEK_SET) != 0)
		__builtin_trap();
	lr_init(&f->in, fd, 4096);
	f->out.len = f->out.off = 0;
	f->held.len = 0;
	while ((rc = lr_next(&f->in, &line, &n)) != LR_EOF && rc != LR_ERROR && rc != LR_AGAIN) {
		if (rc != LR_LINE)
			continue;
		before = f->out.len;
		if (ev_check(line, n, &h, &err) == 0 && h.op == EV_COMMIT)
			commits++;
		if (filter_line(f, line, n) != 0)
			__builtin_trap();	/* with --on-error skip nothing stops it */
		/* a line kept unchanged is the last thing written, byte for byte */
		if (!rewrites && f->out.len > before &&
				(f->out.len - before < n + 1 || memcmp(f->out.data + f->out.len - n - 1, line, n) != 0))
			__builtin_trap();
	}
	close(fd);
	lr_free(&f->in);
	/* every line written is a valid event line; every valid commit is there */
	p = end = f->out.data;
	if (f->out.len)
		end += f->out.len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t) (end - p));

		if (!nl || ev_check(p, (size_t) (nl - p), &h, &err) < 0)
			__builtin_trap();
		written += h.op == EV_COMMIT;
		p = nl + 1;
	}
	if (written != commits)
		__builtin_trap();
	return 0;
}
