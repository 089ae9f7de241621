/*
 * Snapshots, inside pg-capture: the tables to read, the chunk in flight
 * and the progress waiting for acknowledgement. snapshot.c runs them
 * (requests, progress table, logs), chunk.c reads and resolves one chunk,
 * snap_keyset.c and snap_pages.c are the two ways to walk a table.
 */
#ifndef PG_CAPTURE_SNAPSHOT_H
#define PG_CAPTURE_SNAPSHOT_H

#include "capture.h"
#include "../lib/sha256.h"

/* A table being read: the head of the queue, or waiting behind it. */
struct snap_table {
	char *schema, *table;
	char *snapid;			/* the snapshot's identity (an LSN): part of every read id */
	const struct snap_source *src;	/* chosen when the table is described */
	struct relation *rel;	/* the columns read, typed as the stream types them */
	char *qname;			/* "schema"."table" */
	char **qcol;			/* rel's column names, quoted */
	char *sql;				/* SELECT snapshot, [ctid,] columns FROM ... (without the chunk's bounds) */
	char *filter;			/* the publication's row filter, or NULL */
	int *kcol;				/* keyset: the columns it is ordered by (rel's) */
	int nkcol;
	char **key;				/* keyset: the last key delivered (text), NULL before the first */
	int nkey;
	bool stale;				/* the table changed: describe it again before the next chunk */
	bool anew;				/* the stream described it anew: the chunk waiting is read again */
	bool said_pages;		/* the warning that it is read by pages is out */
	bool said_invisible;	/* the warning that a chunk waits for a transaction to be visible is out */
	int64_t page;			/* pages: the next page to read */
	int64_t rows;			/* read events so far, this snapshot */
	double estimate;		/* pg_class.reltuples, -1 unknown */
	int64_t started_ms, rows_at_start;
	int retries;			/* keyless chunks read again because the table changed meanwhile */
	struct sha256 idstart;	/* schema and table hashed: where each read id's hash starts */
	struct snap_table *next;
};

/* One chunk: read between a low and a high watermark, delivered at the high one. */
struct snap_chunk {
	bool active;
	char low[64], high[64];	/* the watermarks' contents */
	bool low_seen;
	PGresult *res;			/* the snapshot, ctid (by pages), then the table's columns */
	int nrows;
	bool last;				/* the table ends with this chunk (known at its high watermark) */
	uint64_t xmin, xmax;	/* the SELECT's snapshot: what it could not see */
	uint64_t *xip;
	size_t nxip;
	bool *dropped;			/* per row: superseded by a change in the window */
	bool changed;			/* the table changed in the window (keyless tables) */
	struct buf keys;		/* per row: its "key" member, NUL-terminated */
	size_t *keyoff;
	int *slots;				/* hash table of row numbers by key, -1 free */
	size_t nslots;
	int limit;				/* the rows it was read with: fewer, and the table ends */
	int next;				/* next row to hand out */
	struct value *vals;
	bool ahead;				/* the table's position is past this chunk: the next is read meanwhile */
	char **from_key;		/* ahead: the position before it, put back if it is abandoned undelivered */
	int from_nkey;
};

/* Progress to store once the chunk's transaction is acknowledged. */
struct snap_progress {
	lsn_t after;			/* stored once confirmed passes this commit; 0: at the queue's head */
	char *schema, *table, *snapid;
	char *key;				/* text[] literal, or NULL */
	int64_t page, rows;
	bool done;
	struct snap_progress *next;
};

struct snapshot {
	struct snap_table *head, *tail;
	struct snap_chunk chunk;
	PGconn *conn;			/* chunks are read on a connection of their own */
	bool reading;			/* a chunk's SELECT is out on it (the next one's, while chunk is active) */
	struct sha256 idhash;	/* a read id's hash, its context kept from row to row */
	uint32_t *seen;			/* transactions the stream delivered changes of, maybe not visible to all yet */
	size_t nseen, seen_cap;
	uint32_t touch_xid;		/* the transaction being decoded changed rows (touched) */
	bool touched;
	char low_next[64];		/* the low watermark of the chunk being read */
	char head_name[512];	/* "schema.table" of head, for snapshot_table */
	struct snap_progress *prog, *prog_tail;
	int limit;				/* rows per chunk, adapted to their size unless fixed */
	int read_limit;			/* the limit of the chunk being read */
	int64_t seq;			/* watermarks of this process */
	int64_t retry_at;		/* after a failure, ms */
	int64_t next_report;	/* progress line, ms */
	bool have_table;		/* pgcdc.snapshot_progress exists */
	bool tty;				/* stderr is a terminal: a live progress bar */
};

/*
 * How a table is walked: by its key (keyset pagination) or, without one,
 * by ranges of pages (ctid). bounds() appends the chunk's conditions and
 * order to sql; it returns 1 when nothing is left
 * to read. advance() moves past a chunk read and says whether it was the
 * last. position() is what snapshot_progress keeps. A source that reads
 * ahead moves past a chunk as soon as it is read and reads the next one
 * while this one waits for its high watermark; one that does not (pages,
 * read again when the table changed in the window) moves at the high
 * watermark.
 */
struct snap_source {
	const char *name;
	bool ahead;
	int first_col;			/* result columns before the table's: the snapshot (and ctid) */
	int (*bounds)(struct capture *c, struct snap_table *t, struct buf *sql, int limit);
	bool (*advance)(struct snap_table *t, PGresult *res, int nrows, int limit);
};

extern const struct snap_source snap_keyset, snap_pages;

/* where a chunk's SELECT keeps the snapshot it read with, for the next statement */
#define SNAPSHOT_SETTING "pgcdc.chunk_snapshot"
#define SNAP_PAGES 64			/* pages per chunk when walking by pages */

/* chunk.c */
int chunk_send(struct capture *c, struct snapshot *s, struct snap_table *t);
int chunk_receive(struct capture *c, struct snapshot *s, struct snap_table *t);
int chunk_take_in(struct capture *c, struct snapshot *s);
void chunk_move_on(struct capture *c, struct snapshot *s, struct snap_table *t);
void chunk_abandon_read(struct snapshot *s);
void chunk_abandon(struct snapshot *s);
void chunk_clear(struct snap_chunk *k);

/* snapshot.c */
void snap_table_done(struct capture *c, struct snapshot *s, lsn_t after);
char *snap_key_literal(const struct snap_table *t);
void snap_forget_position(struct snap_table *t);
void snap_adapt_limit(struct capture *c, struct snapshot *s);
void snap_log_error(struct capture *c, const struct snap_table *t, const char *what, PGresult *res);

#endif
