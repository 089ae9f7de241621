/*
 * One chunk of a snapshot, DBLog's watermark algorithm: write a low
 * watermark into the WAL (a logical message in its own transaction), read
 * the chunk, write a high watermark. When the stream reaches them, every
 * row of the chunk that a transaction between the two changed is dropped
 * (the change that follows in the stream is newer), and the rest are
 * delivered at the high watermark, inside its transaction. Transactions
 * that commit before the low watermark but that the chunk's SELECT could
 * not see yet (its snapshot's xip and xmax) count as inside the window too.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "snapshot.h"
#include "../lib/log.h"
#include "../lib/sha256.h"
#include "../lib/util.h"

#define PUMP_ROWS 256	/* rows handed out between reads of the next chunk's answer */
#define SEEN_PRUNE 4096	/* remembered transactions before asking which the server sees */
#define UNSEEN_RETRY_MS 50	/* a chunk that missed a delivered transaction is read again after this */

static bool forget_seen(struct snapshot *s, const struct snap_chunk *k);
static void prune_seen(struct capture *c, struct snapshot *s);

static uint64_t
hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char) *s) * 1099511628211ULL;
	return h;
}

void
chunk_clear(struct snap_chunk *k)
{
	PQclear(k->res);
	free(k->xip);
	free(k->dropped);
	free(k->keyoff);
	free(k->slots);
	free(k->vals);
	buf_free(&k->keys);
	while (k->from_key && k->from_nkey > 0)
		free(k->from_key[--k->from_nkey]);
	free(k->from_key);
	memset(k, 0, sizeof(*k));
}

/* Write a watermark: content "SLOT PID.SEQ low|high", kept in out. */
static int
watermark(struct capture *c, struct snapshot *s, struct snap_table *t, char *out, size_t outsz,
		const char *which)
{
	const char *p = out;
	PGresult *res;

	snprintf(out, outsz, "%s %ld.%lld %s", c->opt.slot, (long) getpid(), (long long) s->seq, which);
	res = catalog_exec(c, "SELECT pg_catalog.pg_logical_emit_message(true, '" SNAPSHOT_WATERMARK "', $1)",
			1, &p, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		snap_log_error(c, t, "could not write a snapshot watermark", res);
		PQclear(res);
		return -1;
	}
	PQclear(res);
	return 0;
}

/* "xmin:xmax:xip,..." of txid_current_snapshot() */
static void
parse_snapshot(struct snap_chunk *k, const char *s)
{
	char *end;
	size_t cap = 0;

	k->xmin = strtoull(s, &end, 10);
	k->xmax = *end == ':' ? strtoull(end + 1, &end, 10) : k->xmin;
	while (*end == ':' || *end == ',') {
		if (end[1] < '0' || end[1] > '9')
			break;
		if (k->nxip == cap) {
			cap = cap ? cap * 2 : 8;
			k->xip = xrealloc(k->xip, cap * sizeof(*k->xip));
		}
		k->xip[k->nxip++] = strtoull(end + 1, &end, 10);
	}
}

/* Row r's values, typed by the table's columns (or only its key's). */
static void
row_values(struct snap_chunk *k, const struct snap_table *t, int r, bool key_only)
{
	const struct relation *rel = t->rel;
	int i;

	for (i = 0; i < rel->natts; i++) {
		int f = t->src->first_col + i;

		if (key_only && !rel->cols[i].key)
			continue;
		k->vals[i].kind = PQgetisnull(k->res, r, f) ? 'n' : 't';
		k->vals[i].p = PQgetvalue(k->res, r, f);
		k->vals[i].n = (size_t) PQgetlength(k->res, r, f);
	}
}

/* Index the chunk's rows by their "key" member, as the stream's events write it. */
static void
index_keys(struct snap_chunk *k, const struct snap_table *t)
{
	int r;
	size_t h;

	k->vals = xcalloc((size_t) t->rel->natts + 1, sizeof(*k->vals));
	k->dropped = xcalloc((size_t) k->nrows + 1, sizeof(*k->dropped));
	k->keyoff = xmalloc(((size_t) k->nrows + 1) * sizeof(*k->keyoff));
	for (k->nslots = 16; k->nslots < (size_t) k->nrows * 2; k->nslots *= 2)
		;
	k->slots = xmalloc(k->nslots * sizeof(*k->slots));
	memset(k->slots, 0xff, k->nslots * sizeof(*k->slots));
	for (r = 0; r < k->nrows; r++) {
		row_values(k, t, r, true);
		k->keyoff[r] = k->keys.len;
		emit_key(&k->keys, t->rel, NULL, false, k->vals);
		buf_putc(&k->keys, '\0');
		for (h = hash_str(k->keys.data + k->keyoff[r]) & (k->nslots - 1); k->slots[h] >= 0;
				h = (h + 1) & (k->nslots - 1))
			;
		k->slots[h] = r;
	}
	k->keyoff[r] = k->keys.len;
}

/* The snapshot's connection goes. */
static void
close_conn(struct snapshot *s)
{
	PQfinish(s->conn);
	s->conn = NULL;
}

/*
 * Start reading the head table's next chunk: the low watermark, then the
 * SELECT, sent on the snapshot's own connection so that the previous
 * chunk is written out meanwhile; chunk_receive takes the answer. Returns 0
 * (sent), 1 (nothing left to read) or -1 (failed, logged: try again later).
 */
int
chunk_send(struct capture *c, struct snapshot *s, struct snap_table *t)
{
	char tn[512];
	struct buf sql = {0};
	int rc;

	if (!s->conn || PQstatus(s->conn) != CONNECTION_OK) {
		close_conn(s);
		if (!(s->conn = conn_plain(c, "snapshot")))
			return -1;
	}
	buf_puts(&sql, t->sql);
	s->read_limit = s->limit;
	rc = t->src->bounds(c, t, &sql, s->limit);
	/*
	 * Then the snapshot the SELECT's one-time filter kept (snapshot.c),
	 * read and cleared by a second statement of the same query string: one
	 * round trip, two answers. A plain SELECT, not a prepared one: EXECUTE
	 * would hold all the rows in the server before sending the first.
	 */
	buf_puts(&sql, "; SELECT pg_catalog.current_setting('" SNAPSHOT_SETTING "'), "
			"pg_catalog.set_config('" SNAPSHOT_SETTING "', '', false)");
	buf_putc(&sql, '\0');
	s->seq++;
	if (rc == 0 && watermark(c, s, t, s->low_next, sizeof(s->low_next), "low") < 0)
		rc = -1;
	if (rc == 0 && !PQsendQuery(s->conn, sql.data)) {
		log_kv(LOG_ERROR, "could not read a snapshot chunk", "slot", c->opt.slot, "table", table_name(tn, sizeof(tn), t->schema, t->table), "error", PQerrorMessage(s->conn), NULL);
		rc = -1;
	}
	buf_free(&sql);
	s->reading = rc == 0;
	return rc;
}

/* Stop reading a chunk: its connection goes, a new one reads it again. */
void
chunk_abandon_read(struct snapshot *s)
{
	if (s->reading)
		close_conn(s);
	s->reading = false;
}

/*
 * Stop reading and forget the chunk. One abandoned before it was
 * delivered is read again: the head table goes back to before it.
 */
void
chunk_abandon(struct snapshot *s)
{
	struct snap_chunk *k = &s->chunk;

	chunk_abandon_read(s);
	if (k->active && k->ahead && s->head) {
		snap_forget_position(s->head);
		s->head->key = k->from_key;
		s->head->nkey = k->from_nkey;
		k->from_key = NULL;
		k->from_nkey = 0;
	}
	chunk_clear(k);
}

/*
 * The next chunk's answer while this one waits for its high watermark:
 * taken in (the server is not to wait for us), kept until this one is
 * delivered. Returns 0, or -1 (failed, logged: read again later).
 */
int
chunk_take_in(struct capture *c, struct snapshot *s)
{
	if (PQconsumeInput(s->conn))
		return 0;
	snap_log_error(c, s->head, "could not read a snapshot chunk", NULL);
	chunk_abandon_read(s);
	return -1;
}

/*
 * The table moves past the chunk read, and the next chunk's SELECT goes
 * out unless this was the last; a failed send has the table described
 * again and read a second later (a column dropped, perhaps). Then the
 * chunk size is fitted to this chunk's rows: the chunk after next has it.
 */
void
chunk_move_on(struct capture *c, struct snapshot *s, struct snap_table *t)
{
	struct snap_chunk *k = &s->chunk;
	int rc;

	k->last = t->src->advance(t, k->res, k->nrows, k->limit);
	if (!k->last && !t->stale && (rc = chunk_send(c, s, t)) != 0) {
		k->last = rc == 1;
		if (rc < 0) {
			t->stale = true;
			s->retry_at = now_ms() + 1000;
		}
	}
	snap_adapt_limit(c, s);
}

/*
 * A source that reads ahead moves on as soon as a chunk is read, before it
 * is indexed and delivered, so that the server reads while we write. The
 * position before is kept for chunk_abandon.
 */
static void
read_ahead(struct capture *c, struct snapshot *s, struct snap_table *t)
{
	struct snap_chunk *k = &s->chunk;

	k->from_key = t->key;
	k->from_nkey = t->nkey;
	t->key = NULL;
	t->nkey = 0;
	k->ahead = true;
	chunk_move_on(c, s, t);
}

/*
 * The SELECT's answer, once it is all there; then the high watermark.
 * Returns 0 (still reading when s->reading, else a chunk is in flight),
 * 1 (nothing left to read), 2 (an empty range: go on), or -1 (failed,
 * logged: try again later).
 */
int
chunk_receive(struct capture *c, struct snapshot *s, struct snap_table *t)
{
	struct snap_chunk *k = &s->chunk;
	PGresult *res, *more, *snap;
	int rc;

	if (!PQconsumeInput(s->conn)) {
		snap_log_error(c, t, "could not read a snapshot chunk", NULL);
		chunk_abandon_read(s);
		return -1;
	}
	if (PQisBusy(s->conn))
		return 0;
	res = PQgetResult(s->conn);
	snap = NULL;
	while ((more = PQgetResult(s->conn))) {
		if (PQresultStatus(res) == PGRES_TUPLES_OK && !snap) {
			snap = more;	/* the snapshot the rows were read with */
			continue;
		}
		PQclear(more);
	}
	s->reading = false;
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		snap_log_error(c, t, "could not read a snapshot chunk", res);
		rc = -1;
	}
	else if (PQntuples(res) > 0 && !(PQresultStatus(snap) == PGRES_TUPLES_OK && PQntuples(snap) == 1 &&
			*PQgetvalue(snap, 0, 0))) {
		snap_log_error(c, t, "could not read a snapshot chunk's snapshot", snap ? snap : res);
		rc = -1;
	}
	else if (PQntuples(res) == 0)
		rc = t->src->advance(t, res, 0, s->read_limit) ? 1 : 2;
	else if (t->stale)
		rc = 2;	/* read ahead, and the stream has described the table anew since: read again as described */
	else {
		parse_snapshot(k, PQgetvalue(snap, 0, 0));
		rc = 0;
		if (forget_seen(s, k)) {
			/*
			 * The snapshot saw running a transaction whose changes the
			 * stream has delivered already (one waiting for a synchronous
			 * standby, say): they went out before this chunk's window, and
			 * its older rows would follow them.
			 */
			if (!t->said_invisible && (t->said_invisible = true))
				log_kv(LOG_WARN, "a transaction the stream delivered is not visible to snapshots yet: "
						"its chunk is read again until it is", "slot", c->opt.slot, "table", snapshot_table(c), NULL);
			s->retry_at = now_ms() + UNSEEN_RETRY_MS;
			rc = 2;
		}
		else if (watermark(c, s, t, k->high, sizeof(k->high), "high") < 0)
			rc = -1;
		if (rc != 0)
			chunk_clear(k);
		else {
			memcpy(k->low, s->low_next, sizeof(k->low));
			k->res = res;
			res = NULL;
			k->nrows = PQntuples(k->res);
			k->limit = s->read_limit;
		}
	}
	PQclear(res);
	PQclear(snap);
	if (rc != 0)
		return rc;
	if (t->src->ahead)
		read_ahead(c, s, t);
	index_keys(k, t);
	k->active = true;
	return 0;
}

/* Could the chunk's SELECT not see transaction xid (32 bits, as the stream gives it)? */
static bool
invisible(const struct snap_chunk *k, uint32_t xid)
{
	uint64_t x = (k->xmax & ~0xffffffffULL) | xid;
	size_t i;

	if (x > k->xmax + 0x80000000ULL && x >= 0x100000000ULL)
		x -= 0x100000000ULL;
	if (x >= k->xmax)
		return true;
	for (i = 0; i < k->nxip; i++)
		if (k->xip[i] == x)
			return true;
	return false;
}

/* Forget the remembered transactions that the snapshot k sees (so does every later one); true if any is left. */
static bool
forget_seen(struct snapshot *s, const struct snap_chunk *k)
{
	size_t i, n = 0;

	for (i = 0; i < s->nseen; i++)
		if (invisible(k, s->seen[i]))
			s->seen[n++] = s->seen[i];
	s->nseen = n;
	return n > 0;
}

/* Too many remembered: forget those the server's current snapshot sees. */
static void
prune_seen(struct capture *c, struct snapshot *s)
{
	struct snap_chunk now = {0};
	PGresult *res = catalog_exec(c, "SELECT pg_catalog.txid_current_snapshot()::text", 0, NULL, NULL, NULL, 0);

	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
		parse_snapshot(&now, PQgetvalue(res, 0, 0));
		forget_seen(s, &now);
	}
	PQclear(res);
	free(now.xip);
}

/* Is this change, in the transaction being decoded, about the chunk's rows? */
static bool
in_window(struct capture *c, const struct relation *rel)
{
	struct snapshot *s = c->snap;
	const struct snap_chunk *k = s ? &s->chunk : NULL;

	return k && k->active && strcmp(rel->schema, s->head->schema) == 0 &&
			strcmp(rel->table, s->head->table) == 0 &&
			(k->low_seen || invisible(k, c->tx.xid));
}

static void
drop_key(struct capture *c, const struct relation *rel, const struct value *oldv,
		bool old_is_key, const struct value *newv)
{
	struct snap_chunk *k = &c->snap->chunk;
	size_t h;
	int r;

	c->scratch.len = 0;
	emit_key(&c->scratch, rel, oldv, old_is_key, newv);
	buf_putc(&c->scratch, '\0');
	for (h = hash_str(c->scratch.data) & (k->nslots - 1); (r = k->slots[h]) >= 0;
			h = (h + 1) & (k->nslots - 1))
		if (strcmp(k->keys.data + k->keyoff[r], c->scratch.data) == 0)
			k->dropped[r] = true;
}

/*
 * A row change: within the window it supersedes the chunk's row with the
 * same key, before or after (an update can change the key). A table
 * walked by pages has no key to match: any change means reading again.
 */
void
snapshot_change(struct capture *c, const struct relation *rel, const struct value *oldv,
		bool old_is_key, const struct value *newv)
{
	struct snapshot *s = c->snap;

	if (s && s->head) {
		s->touched = true;
		s->touch_xid = c->tx.xid;
	}
	if (!in_window(c, rel))
		return;
	c->snap->chunk.changed = true;
	if (c->snap->head->src != &snap_keyset)
		return;
	if (newv)
		drop_key(c, rel, NULL, false, newv);
	if (oldv)
		drop_key(c, rel, oldv, old_is_key, NULL);
}

/*
 * The decoded transaction commits: if it changed rows, remember it until a
 * chunk's snapshot is known to see it (chunk_receive). Past SEEN_PRUNE of
 * them, those the server's current snapshot sees are forgotten.
 */
void
snapshot_committed(struct capture *c)
{
	struct snapshot *s = c->snap;

	if (!s || !s->touched || s->touch_xid != c->tx.xid)
		return;
	s->touched = false;
	if (!s->head)
		return;
	if (s->nseen == s->seen_cap) {
		if (s->nseen >= SEEN_PRUNE)
			prune_seen(c, s);
		if (s->nseen == s->seen_cap) {
			s->seen_cap = s->seen_cap ? s->seen_cap * 2 : 64;
			s->seen = xrealloc(s->seen, s->seen_cap * sizeof(*s->seen));
		}
	}
	s->seen[s->nseen++] = c->tx.xid;
}

/* A truncate within the window: none of the chunk's rows is there any more. */
void
snapshot_truncate(struct capture *c, const struct relation *rel)
{
	struct snap_chunk *k = c->snap ? &c->snap->chunk : NULL;
	int r;

	if (!in_window(c, rel))
		return;
	k->changed = true;
	for (r = 0; r < k->nrows; r++)
		k->dropped[r] = true;
}

/*
 * The next row of the delivered chunk, skipping superseded ones: its
 * columns, values, "key" member, and id "SNAPSHOT:rHASH", the same
 * whenever this snapshot reads the row again (a hash of the table and the
 * key; of the row and its place too when the table has no key).
 */
bool
snapshot_next_row(struct capture *c, const struct relation **rel, const struct value **vals,
		const char **key, char *id, size_t idsz)
{
	struct snapshot *s = c->snap;
	struct snap_chunk *k = &s->chunk;
	struct snap_table *t = s->head;
	unsigned char md[SHA256_LEN];
	const char *rowkey;
	size_t n;
	int r;

	while (k->next < k->nrows && k->dropped[k->next])
		k->next++;
	if (k->next >= k->nrows)
		return false;
	r = k->next++;
	/* take in the next chunk's answer meanwhile: the server is not to wait for this one */
	if (s->reading && r % PUMP_ROWS == 0)
		(void) PQconsumeInput(s->conn);
	row_values(k, t, r, false);
	if (!t->idstart.ctx) {
		sha256_init(&t->idstart);
		sha256_update(&t->idstart, t->schema, strlen(t->schema) + 1);
		sha256_update(&t->idstart, t->table, strlen(t->table) + 1);
	}
	rowkey = k->keys.data + k->keyoff[r];
	sha256_from(&s->idhash, &t->idstart);
	sha256_update(&s->idhash, rowkey, k->keyoff[r + 1] - k->keyoff[r] - 1);
	if (t->src != &snap_keyset) {
		c->scratch.len = 0;
		emit_tuple(&c->scratch, t->rel, k->vals);
		sha256_update(&s->idhash, PQgetvalue(k->res, r, 0), (size_t) PQgetlength(k->res, r, 0));
		sha256_update(&s->idhash, c->scratch.data, c->scratch.len);
	}
	sha256_digest(&s->idhash, md);
	n = strlen(t->snapid);
	if (n + 19 > idsz)
		n = idsz - 19;
	memcpy(id, t->snapid, n);
	memcpy(id + n, ":r", 2);
	hex_encode(md, 8, id + n + 2);
	id[n + 18] = '\0';
	*rel = t->rel;
	*vals = k->vals;
	*key = rowkey;
	return true;
}
