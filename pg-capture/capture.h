/*
 * pg-capture: state shared by its files. One struct capture per process,
 * passed explicitly; see main.c for the options and stream.c for the loop.
 */
#ifndef PG_CAPTURE_H
#define PG_CAPTURE_H

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "../lib/ack.h"
#include "../lib/buf.h"
#include "../lib/jscan.h"
#include "../lib/metrics.h"
#include "../lib/lsn.h"

enum plugin { PLUGIN_PGOUTPUT, PLUGIN_WAL2JSON };

struct spooler;			/* spool.c */

struct options {
	const char *dbname;
	const char *slot;
	enum plugin plugin;
	const char *publication;
	const char *ack_fifo;
	const char *output;
	bool create_slot;
	bool if_not_exists;
	bool drop_slot;
	bool failover;			/* --failover: the slot is synchronised to standbys (17+) */
	lsn_t endpos;			/* LSN_INVALID: none */
	int status_interval_ms;
	int retry_max_s;		/* 0: reconnect forever */
	int stop_timeout_ms;	/* bound on the graceful stop */
	int heartbeat_ms;		/* --heartbeat: 0 for none */
	bool status_interval_set;	/* given: not fitted to wal_sender_timeout */
	int health_interval_ms;	/* --health-interval: 0 for none */
	bool snapshot;			/* --snapshot: every published table, once per slot */
	const char **snapshot_tables;	/* --snapshot-table, as given */
	int nsnapshot_tables;
	int snapshot_chunk;		/* --snapshot-chunk rows; 0: fitted to the rows' size */
	bool install_ddl;		/* --install-ddl-capture: act and exit */
	bool uninstall_ddl;		/* --uninstall-ddl-capture: act and exit */
	int verbose;
	bool stream_in_progress;	/* pgoutput protocol 2: big transactions spooled as they run */
	int stall_timeout_ms;	/* --stall-timeout: 0 for never */
	struct metrics_opt metrics;
};

/* PostgreSQL's times count from 2000-01-01 UTC, this many seconds after the Unix epoch */
#define PG_EPOCH_SECS 946684800LL

/* The prefix of --heartbeat's logical messages; their content is the slot's name. */
#define HEARTBEAT_PREFIX "pgcdc.heartbeat"
/* Snapshot watermarks (snapshot.c) and requests a user writes with SQL */
#define SNAPSHOT_WATERMARK "pgcdc.watermark"
#define SNAPSHOT_SIGNAL "pgcdc.snapshot"
/* pg-capture's own schema: its tables are neither streamed nor read */
#define OWN_SCHEMA "pgcdc"

struct snapshot;

/* The prefix of the DDL capture trigger's logical messages (ddl.c); their content is JSON. */
#define DDL_PREFIX "pgcdc.ddl"

/* A table's column as the decoder knows it. */
struct column {
	char *name;
	uint32_t typoid;
	int32_t typmod;			/* pgoutput's, from the stream: -1 none or unknown */
	uint32_t basetype;		/* typoid, or a domain's base type (from the catalog) */
	char *typname;			/* SQL type name, or NULL when unknown */
	bool pk;				/* in the primary key (catalog, or wal2json's "pk") */
	bool ident;				/* in the replica identity: what an old key tuple carries */
	bool key;				/* in the event's "key" (rel_derive_key) */
	char *jname;			/* the name as a JSON string, quoted (rel_store), or NULL */
	size_t jnamelen;
	char *w2j_head;			/* wal2json: its elements' text up to the value, once checked (wal2json.c) */
	size_t w2j_headlen;
};

/* A table: from pgoutput Relation messages or wal2json plus the catalog. */
struct relation {
	uint32_t relid;			/* pgoutput relation OID; 0 for wal2json */
	char *schema, *table;
	char replident;			/* 'd', 'n', 'f', 'i' */
	int natts;
	struct column *cols;
	bool announced;			/* schema event written for this definition */
	char *jhead;			/* ,"schema":"S","table":"T" as JSON (rel_store), or NULL */
	size_t jheadlen;
	char *w2j_pk;			/* wal2json: a "pk" array found to fit, as text (wal2json.c) */
	size_t w2j_pklen;
	struct series *m_events[11];	/* its events' counters by op (watch.c), found once */
};

/* A DDL command from the trigger's message, checked (ddl_parse); owned, ddl_free. */
struct ddl {
	char *schema, *table;	/* NULL when the message names none */
	struct buf body;		/* its other members, each as ,"name":value */
};

/* One column value of a tuple: kind 'n' null, 'u' unchanged TOAST, 't' text. */
struct value {
	char kind;
	const char *p;
	size_t n;
};

/* The transaction being decoded. */
struct tx {
	bool open;				/* between begin and commit */
	bool begun;				/* begin line written (deferred until content) */
	bool skip;				/* already emitted in full before a reconnect */
	uint32_t xid;
	lsn_t commit_lsn;		/* LSN of the commit record; ids are built on it */
	lsn_t first_lsn;
	int64_t ts_us;			/* commit time, microseconds since 2000-01-01 UTC */
	char ts[32];			/* the same, RFC 3339 */
	uint64_t nchanges;		/* change events seen so far (the id index) */
	uint64_t resume_after;	/* changes already written before a reconnect */
};

struct capture {
	struct options opt;
	char *conninfo;			/* the replication conninfo (secret-bearing: never logged) */
	PGconn *conn;			/* replication connection, NULL while reconnecting */
	PGconn *cat;			/* plain connection for catalog look-ups, lazy */
	int64_t reconnect_at;	/* ms, when conn is NULL */
	int reconnect_delay_ms;
	int64_t down_since;		/* ms, first failure of the current outage; 0 when up */

	/* output */
	int outfd;
	bool out_file;			/* regular file from -o: fsync before acknowledging */
	int out_flags;			/* original fcntl flags, restored at exit */
	struct buf out;
	lsn_t buffered_commit;	/* last commit lsn put into out */
	int64_t buffered_ts;	/* its commit time (as tx.ts_us) */
	lsn_t written_commit;	/* last commit lsn written (and fsynced) */
	lsn_t partial_commit;	/* commit_lsn of a transaction cut by a lost connection */
	uint64_t partial_changes;

	/* acknowledgement */
	bool have_ack;
	struct ack_reader ack;
	lsn_t *pend;			/* ring of emitted, unacknowledged commit lsns */
	int64_t *pend_ts;		/* and their commit times (as tx.ts_us) */
	size_t pend_head, pend_len, pend_cap;
	lsn_t confirmed;		/* flush position reported to the server */
	lsn_t received;			/* highest position received */
	lsn_t idle_pos;			/* keepalive position, confirmable when nothing is pending */
	bool status_due;
	int64_t next_status;

	/* decoding */
	struct tx tx;
	struct relation **rels;
	size_t nrels;
	struct buf scratch;
	struct value *vals;		/* decoder scratch tuples */
	size_t nvals;
	char *recode;			/* the database encoding wal2json's text is converted from, or NULL */
	struct buf recoded;		/* the last message, converted */

	/* stopping */
	bool stopping;
	const char *stop_reason;
	int64_t stop_deadline;
	uint64_t events;
	bool batching;			/* busy stream: wake for 64 kB or 1 ms, not every segment */
	size_t pumped;			/* bytes decoded by the last pump */
	size_t win_bytes;		/* bytes decoded since win_start */
	int64_t win_start;
	bool downstream_gone;
	bool ack_hup;			/* every writer of the released ack pipe closed it */	/* the reader of our stdout pipe went away */
	bool backlog;			/* libpq may hold complete messages not yet decoded */
	int fatal;				/* exit status once a fatal error was reported */
	bool slot_ready;		/* slot checked or created on a first connection */
	bool slot_created;		/* this process created the slot: no snapshot of it can exist yet */
	bool slot_busy;			/* the last attempt found the slot in use by another process */
	bool busy_said;			/* and that was logged: once until the slot is taken */
	bool settings_said;		/* health_settings logged what it had to, at the first connection */
	uint32_t settings_tli;	/* the timeline it looked at the standby slots on */
	bool slot_failover;		/* the slot is a failover slot (17+), or --failover */
	uint32_t timeline;		/* the server's, at the last connection; 0 before the first */
	bool w2j_no_numeric_strings;	/* the server's wal2json lacks numeric-data-types-as-string */
	int64_t next_heartbeat;	/* ms */
	int64_t next_health;	/* ms */
	char *health_state;		/* the slot's health last logged, owned */
	int health_band;		/* its retained WAL's band (health.c) */
	bool heartbeat_failing;	/* the last one could not be written (logged once) */
	bool offline;			/* no server: decoders fed recorded messages (tests) */
	bool long_way;			/* decoders take no short ways (tests compare the two) */
	bool past_endpos;		/* a transaction committed after --endpos began: the loop stops */
	char decode_err[160];	/* why the last decode failed */
	struct snapshot *snap;	/* snapshots asked and in progress (snapshot.c), or NULL */
	struct spooler *spool;	/* transactions streamed in progress (spool.c), lazy */

	/* watch.c */
	struct series *m_events[11];	/* events without a table, by op */
	struct series *m_bytes_out;
	int64_t progress_at;	/* ms: last acknowledgement or output taken, or nothing pending */
	lsn_t watch_confirmed;
	double watch_bytes;
};

/* conn.c */
int conn_open(struct capture *c, bool start_streaming);
int conn_drop_slot(struct capture *c);
void conn_close(struct capture *c);
int conn_send_status(struct capture *c, bool reply_requested);
int conn_result_error(struct capture *c, PGresult *res, const char *what);
PGconn *catalog_conn(struct capture *c);
PGconn *conn_plain(struct capture *c, const char *what);
int conn_open_plain(struct capture *c);

/* catalog.c */
int catalog_describe(struct capture *c, struct relation *rel);
void catalog_basetypes(struct capture *c, struct relation *rel);
void catalog_typnames(struct capture *c, struct relation *rel);
PGresult *catalog_exec(struct capture *c, const char *sql, int n, const char *const *values,
		const int *lengths, const int *formats, int result_format);

/* relation.c */
/* "schema.table" in buf (n bytes), for a log line's table=; returns buf */
const char *table_name(char *buf, size_t n, const char *schema, const char *table);

/* stream.c */
int stream_run(struct capture *c);

/* watch.c */
int watch_start(struct capture *c);
void watch_event(struct capture *c, const char *op, const struct relation *rel);
int watch_tick(struct capture *c, int64_t now);
void watch_stop(struct capture *c, int rc);

/*
 * tx.c: what the decoders found goes here, and tx.c decides what is
 * written and when (the deferred begin line, what a reconnect already
 * delivered, --endpos); emit.c formats it. Calls go one way: stream.c ->
 * decoders -> tx.c -> emit.c.
 */
void tx_begin(struct capture *c, uint32_t xid, lsn_t commit_lsn, lsn_t first_lsn, int64_t ts_us);
void tx_commit(struct capture *c, lsn_t end_lsn);
void tx_reset(struct capture *c);
void tx_row(struct capture *c, const char *op, const struct relation *rel, lsn_t lsn,
		const struct value *oldv, bool old_is_key, const struct value *newv);
void tx_truncate(struct capture *c, const struct relation *rel, lsn_t lsn, bool cascade,
		bool restart_identity);
void tx_message(struct capture *c, lsn_t lsn, bool transactional, const char *prefix,
		const char *content, size_t len);
void tx_schema(struct capture *c, struct relation *rel, lsn_t lsn);

/*
 * spool.c: transactions streamed while in progress, kept in temporary
 * files until their Stream Commit, then replayed through the decoder one
 * record per spool_replay call. The spool_* functions return 0, or -1 with
 * the reason in c->decode_err.
 */
bool spool_in_block(const struct capture *c);
bool spool_replaying(const struct capture *c);
int spool_start(struct capture *c, uint32_t xid, bool first, lsn_t lsn);
int spool_stop(struct capture *c);
int spool_append(struct capture *c, uint32_t xid, lsn_t lsn, char kind, const void *body, size_t n);
int spool_abort(struct capture *c, uint32_t xid, uint32_t subxid);
int spool_commit(struct capture *c, uint32_t xid, lsn_t commit_lsn, lsn_t end_lsn, int64_t ts);
int spool_replay(struct capture *c);
void spool_reset(struct capture *c);
void spool_free(struct capture *c);
/* ddl.c */
int ddl_install(struct capture *c);
int ddl_uninstall(struct capture *c);
int ddl_parse(const char *content, size_t len, struct ddl *d);
void ddl_free(struct ddl *d);

/* heartbeat.c */
void heartbeat_tick(struct capture *c, int64_t now);

/* health.c */
void health_settings(struct capture *c);
void health_tick(struct capture *c, int64_t now);

/*
 * snapshot.c, chunk.c: tables read as "read" events between watermarks
 * while the stream goes on. The loop calls start, tick, confirmed and
 * reset; tx.c passes changes, watermarks and requests in and writes the
 * rows snapshot_next_row hands out.
 */
int snapshot_start(struct capture *c);
bool snapshot_ready(const struct capture *c);
int snapshot_socket(const struct capture *c);
bool snapshot_holds(const struct capture *c);
void snapshot_tick(struct capture *c);
void snapshot_confirmed(struct capture *c);
void snapshot_reset(struct capture *c);
void snapshot_free(struct capture *c);
void snapshot_forget(struct capture *c);
void snapshot_change(struct capture *c, const struct relation *rel, const struct value *oldv,
		bool old_is_key, const struct value *newv);
void snapshot_truncate(struct capture *c, const struct relation *rel);
bool snapshot_watermark(struct capture *c, const char *content, size_t len);
void snapshot_committed(struct capture *c);
bool snapshot_next_row(struct capture *c, const struct relation **rel, const struct value **vals,
		const char **key, char *id, size_t idsz);
void snapshot_chunk_emitted(struct capture *c, lsn_t commit_lsn);
void snapshot_request(struct capture *c, lsn_t lsn, const char *content, size_t len);
void snapshot_schema(struct capture *c, const struct relation *rel);
/* The table a snapshot reads now ("schema.table", for logs), or NULL; and how many are left. */
const char *snapshot_table(struct capture *c);
int snapshot_tables_pending(const struct capture *c);

/* emit.c: formatting only */
void emit_row(struct capture *c, const char *op, const struct relation *rel, lsn_t lsn,
		const struct value *oldv, bool old_is_key, const struct value *newv);
void emit_truncate(struct capture *c, const struct relation *rel, lsn_t lsn, bool cascade,
		bool restart_identity);
void emit_message(struct capture *c, lsn_t lsn, bool transactional, const char *prefix,
		const char *content, size_t len);
void emit_schema(struct capture *c, const struct relation *rel, lsn_t lsn);
void emit_txline(struct capture *c, const char *op, lsn_t lsn);
void emit_heartbeat(struct capture *c, lsn_t lsn);
void emit_read(struct capture *c, const struct relation *rel, lsn_t lsn, const struct value *v,
		const char *id, const char *key);
void emit_key(struct buf *b, const struct relation *rel, const struct value *oldv, bool old_is_key,
		const struct value *newv);
void emit_tuple(struct buf *b, const struct relation *rel, const struct value *v);
void emit_ddl(struct capture *c, lsn_t lsn, const struct ddl *d);
void format_ts(int64_t ts_us, char *out, size_t outsz);

/* pgtime.c */
int pgtime_parse(const char *p, size_t n, int64_t *out);

/* relation.c */
struct relation *rel_find(struct capture *c, uint32_t relid, const char *schema,
		const char *table);
struct relation *rel_store(struct capture *c, struct relation *rel);
void rel_free(struct relation *rel);
bool rel_same(const struct relation *a, const struct relation *b);
void rel_derive_key(struct relation *rel);
void rel_prepare_json(struct relation *rel);
struct value *tuple_scratch(struct capture *c, size_t n);

/* recode.c */
int recode_open(struct capture *c, const char *enc);
void recode_close(struct capture *c);
int recode(struct capture *c, const char **p, size_t *n);

/*
 * pgoutput.c, wal2json.c: decode one message. Returns 0, or -1 with the
 * reason in c->decode_err (the loop reports it and stops).
 */
int pgoutput_decode(struct capture *c, lsn_t lsn, const char *p, size_t n);
int wal2json_decode(struct capture *c, lsn_t lsn, const char *p, size_t n);

#endif
