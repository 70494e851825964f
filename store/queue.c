/* The bundle queue: the payload writer, reads in queue order, custody, expiry, quarantine. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/crc32c.h"
#include "store/store_impl.h"

/*
 * A writer owns the store's one write transaction from begin to commit. The bundle
 * row is inserted at begin as a placeholder (state 0, id NULL) so that its rowid
 * exists for the chunks' foreign key; commit fills the row in. Chunks are inserted
 * as each fills, and SQLite spills dirty pages to the WAL when its 2 MiB cache is
 * full, so a payload of any size costs one chunk buffer of memory. Nothing is
 * visible to other connections before COMMIT, and a crash before it leaves nothing.
 *
 * Inside a batch the writer's unit is a savepoint instead (see store.c): the same
 * holds with "the batch's COMMIT" for "COMMIT".
 */
struct sent_to {
	uint8_t msg_id[16];
	uint64_t to_node;
};

struct store_writer {
	struct store *s; /* NULL once store_close() or store_batch_abort() rolled it back */
	int64_t rowid;
	int64_t seq;
	uint64_t total;
	uint64_t unix_ms;     /* now at begin: the sent rows' creation time */
	struct sent_to *sent; /* recorded at commit, when the bundle id is known */
	size_t nsent, capsent;
	size_t fill;
	int err; /* the first error: the unit can only be rolled back */
	/* store_writer_expect chose a payload file: its temporary name and chunk CRCs. */
	bool file;
	int ffd;
	char ftmp[STORE_TMP_NAME];
	uint8_t *crcs;
	size_t ncrcs, capcrcs;
	uint8_t buf[STORE_CHUNK_SIZE]; /* last: begin does not clear it */
};

/* Closes and removes an unplaced payload file (the store must still be open). */
static void writer_drop_file(struct store_writer *w)
{
	if (w->ffd >= 0)
		close(w->ffd);
	w->ffd = -1;
	if (w->s)
		store_file_discard(w->s, w->ftmp, NULL);
	w->ftmp[0] = '\0';
}

static void writer_free(struct store_writer *w)
{
	if (w) {
		if (w->ffd >= 0)
			close(w->ffd);
		free(w->crcs);
		free(w->sent);
	}
	free(w);
}

int store_writer_begin(struct store *s, const struct store_clock *now, struct store_writer **out)
{
	struct store_writer *w = NULL;
	sqlite3_stmt *st;
	int ret;

	if (!s || !now || !out) {
		ret = -EINVAL;
		goto out;
	}
	*out = NULL;
	if (s->writer) {
		store_seterr(s, "a bundle writer is open");
		ret = -EBUSY;
		goto out;
	}
	/* Not calloc: zeroing 64 KiB per bundle would show in a batch of 10,000 short ones. */
	w = malloc(sizeof(*w));
	if (!w) {
		ret = -ENOMEM;
		goto out;
	}
	memset(w, 0, offsetof(struct store_writer, buf));
	w->ffd = -1;
	store_clock_observe(s, now);
	ret = store_unit_begin(s);
	if (ret)
		goto out;
	ret = store_stmt(s, ST_BUNDLE_RESERVE, &st);
	if (ret == 0) {
		/* Residence here starts now: the row is on this boot from its first byte. */
		sqlite3_bind_int64(st, 1, store_i64(now->unix_ms));
		sqlite3_bind_blob(st, 2, now->boot_id, 16, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, store_i64(now->boot_ms));
		ret = store_step_done(s, ST_BUNDLE_RESERVE, st);
	}
	if (ret) {
		store_unit_rollback(s);
		goto out;
	}
	w->s = s;
	w->rowid = sqlite3_last_insert_rowid(s->db);
	w->unix_ms = now->unix_ms;
	s->writer = w;
	*out = w;
	w = NULL;
out:
	writer_free(w);
	return ret;
}

static int file_put(struct store_writer *w, const uint8_t *data, size_t n)
{
	if (w->ncrcs + 4 > w->capcrcs) {
		size_t cap = w->capcrcs ? 2 * w->capcrcs : 256;
		uint8_t *grown = realloc(w->crcs, cap);
		if (!grown)
			return -ENOMEM;
		w->crcs = grown;
		w->capcrcs = cap;
	}
	uint32_t crc = store_crc32c(0, data, n);
	for (int i = 0; i < 4; i++)
		w->crcs[w->ncrcs++] = (uint8_t)(crc >> (24 - 8 * i));
	while (n) {
		ssize_t put = write(w->ffd, data, n);
		if (put < 0 && errno == EINTR)
			continue;
		if (put < 0) {
			int err = -errno;
			store_seterr(w->s, "payload file: %s", strerror(errno));
			return err;
		}
		data += put;
		n -= (size_t)put;
	}
	w->seq++;
	return 0;
}

int store_writer_expect(struct store_writer *w, uint64_t payload_len)
{
	if (!w || !w->s || w->total || w->fill || w->file)
		return -EINVAL;
	if (payload_len < STORE_FILE_MIN)
		return 0;
	int ret = store_file_create(w->s, &w->ffd, w->ftmp);
	if (ret == 0)
		w->file = true;
	return ret;
}

static int chunk_put(struct store_writer *w, const uint8_t *data, size_t n)
{
	struct store *s = w->s;
	sqlite3_stmt *st;
	if (w->file)
		return file_put(w, data, n);
	int ret = store_stmt(s, ST_CHUNK_INSERT, &st);

	if (ret)
		return ret;
	sqlite3_bind_int64(st, 1, w->rowid);
	sqlite3_bind_int64(st, 2, w->seq);
	sqlite3_bind_int64(st, 3, store_crc32c(0, data, n));
	/* SQLITE_STATIC: data outlives the step, and store_stmt_done() unbinds it. */
	sqlite3_bind_blob(st, 4, data, (int)n, SQLITE_STATIC);
	ret = store_step_done(s, ST_CHUNK_INSERT, st);
	if (ret == 0)
		w->seq++;
	return ret;
}

int store_writer_append(struct store_writer *w, const uint8_t *buf, size_t len)
{
	int ret = 0;

	if (!w || !w->s || (!buf && len)) {
		ret = -EINVAL;
		goto out;
	}
	if (w->err) {
		ret = w->err;
		goto out;
	}
	if (len > UINT64_MAX - w->total) {
		ret = -EFBIG;
		goto out;
	}
	while (len > 0) {
		size_t n;

		if (w->fill == 0 && len >= STORE_CHUNK_SIZE) {
			/* A whole chunk in the caller's buffer: insert it without a copy. */
			n = STORE_CHUNK_SIZE;
			ret = chunk_put(w, buf, n);
		} else {
			n = STORE_CHUNK_SIZE - w->fill;
			if (n > len)
				n = len;
			memcpy(w->buf + w->fill, buf, n);
			w->fill += n;
			if (w->fill == STORE_CHUNK_SIZE) {
				ret = chunk_put(w, w->buf, w->fill);
				w->fill = 0;
			}
		}
		if (ret)
			goto out;
		buf += n;
		len -= n;
		w->total += n;
	}
out:
	if (ret && w && w->s)
		w->err = ret;
	return ret;
}

int store_writer_add_sent(struct store_writer *w, const uint8_t msg_id[static 16], uint64_t to_node)
{
	int ret = 0;

	if (!w || !w->s) {
		ret = -EINVAL;
		goto out;
	}
	if (w->err) {
		ret = w->err;
		goto out;
	}
	if (w->nsent == w->capsent) {
		size_t cap = w->capsent ? 2 * w->capsent : 4;
		struct sent_to *grown = realloc(w->sent, cap * sizeof(*grown));

		if (!grown) {
			ret = -ENOMEM;
			goto out;
		}
		w->sent = grown;
		w->capsent = cap;
	}
	memcpy(w->sent[w->nsent].msg_id, msg_id, 16);
	w->sent[w->nsent].to_node = to_node;
	w->nsent++;
out:
	/* Sticks, as an append error does: a commit must not drop the record silently. */
	if (ret && w && w->s)
		w->err = ret;
	return ret;
}

/* The row names its file and keeps the chunk CRCs the file's bytes must match. */
static int file_finish(struct store_writer *w, const uint8_t id[32])
{
	sqlite3_stmt *st;
	int ret = store_stmt(w->s, ST_BUNDLE_SET_FILE, &st);
	(void)id;
	if (ret)
		return ret;
	sqlite3_bind_int64(st, 1, w->rowid);
	if (w->ncrcs)
		sqlite3_bind_blob(st, 2, w->crcs, (int)w->ncrcs, SQLITE_STATIC);
	else
		sqlite3_bind_zeroblob(st, 2, 0);
	return store_step_done(w->s, ST_BUNDLE_SET_FILE, st);
}

/*
 * Last step before the unit commits: the file's bytes are made durable and it takes
 * its final name. Noted as new, so that a rollback of the transaction removes it.
 */
static int file_place(struct store_writer *w, const uint8_t id[32])
{
	int ret = store_file_place(w->s, w->ffd, w->ftmp, id, w->rowid);
	w->ffd = -1; /* closed by store_file_place in every case */
	if (ret)
		return ret; /* the temporary name is removed by the rollback path */
	w->ftmp[0] = '\0';
	if (store_files_note_new(w->s, id) < 0)
		return -ENOMEM;
	return 0;
}

/* The unit did not commit: its placed file goes (unless a whole rollback took it already). */
static void file_unplace(struct store *s, const uint8_t id[32])
{
	if (s->n_new_files && memcmp(s->new_files[s->n_new_files - 1], id, 32) == 0) {
		s->n_new_files--;
		store_file_discard(s, NULL, id);
	}
}

static int bundle_finish(struct store_writer *w, const struct store_bundle *b, const uint8_t *head,
			 size_t headlen)
{
	struct store *s = w->s;
	sqlite3_stmt *st;
	int ret = store_stmt(s, ST_BUNDLE_FINISH, &st);

	if (ret)
		return ret;
	sqlite3_bind_int64(st, 1, w->rowid);
	sqlite3_bind_blob(st, 2, b->id, 32, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, (int)b->state);
	/* A node number is an identifier, not a quantity: stored bit for bit. */
	sqlite3_bind_int64(st, 4, (sqlite3_int64)b->dest_node);
	sqlite3_bind_int(st, 5, (int)b->priority);
	sqlite3_bind_int64(st, 6, store_i64(b->lifetime_ms));
	sqlite3_bind_int64(st, 7, store_i64(b->age_ms));
	sqlite3_bind_int64(st, 8, store_i64(b->payload_len));
	sqlite3_bind_int(st, 9, b->local ? 1 : 0);
	if (headlen)
		sqlite3_bind_blob(st, 10, head, (int)headlen, SQLITE_STATIC);
	else
		sqlite3_bind_zeroblob(st, 10, 0); /* a NULL pointer would bind NULL */
	sqlite3_bind_int64(st, 11, store_crc32c(0, head, headlen));
	return store_step_done(s, ST_BUNDLE_FINISH, st);
}

int store_writer_commit(struct store_writer *w, const struct store_bundle *b, const uint8_t *head,
			size_t headlen, const struct store_inbox *inbox)
{
	struct store *s;
	int ret;

	if (!w)
		return -EINVAL;
	s = w->s;
	if (!s) {
		ret = -EINVAL; /* orphaned by store_close(): already rolled back */
		goto free;
	}
	ret = w->err;
	if (ret)
		goto rollback;
	if (!b || (!head && headlen) || headlen > INT_MAX ||
	    (b->state != STORE_QUEUED && b->state != STORE_DELIVERED) ||
	    (unsigned int)b->priority > STORE_URGENT) {
		store_seterr(s, "invalid bundle");
		ret = -EINVAL;
		goto rollback;
	}
	if (w->fill) {
		ret = chunk_put(w, w->buf, w->fill);
		w->fill = 0;
		if (ret)
			goto rollback;
	}
	/* A bundle is whole or absent: a short write upstream must not commit. */
	if (b->payload_len != w->total) {
		store_seterr(s, "payload_len is %" PRIu64 " but %" PRIu64 " bytes were appended",
			     b->payload_len, w->total);
		ret = -EINVAL;
		goto rollback;
	}
	ret = bundle_finish(w, b, head, headlen);
	if (ret == 0 && w->file)
		ret = file_finish(w, b->id);
	if (ret == 0 && inbox)
		ret = store_inbox_insert(s, w->rowid, b->id, inbox);
	for (size_t i = 0; ret == 0 && i < w->nsent; i++)
		ret =
		    store_sent_insert(s, w->sent[i].msg_id, w->sent[i].to_node, b->id, w->unix_ms);
	if (ret == 0)
		ret = store_unit_checkpoint(s);
	if (ret == 0 && w->file)
		ret = file_place(w, b->id);
	if (ret)
		goto rollback;
	/* The writer is done whatever the commit says: the unit is ended either way. */
	s->writer = NULL;
	ret = store_unit_commit(s);
	if (ret && w->file)
		file_unplace(s, b->id);
	goto free;
rollback:
	s->writer = NULL;
	store_unit_rollback(s);
	if (w->file)
		writer_drop_file(w);
free:
	writer_free(w);
	return ret;
}

void store_writer_abort(struct store_writer *w)
{
	if (!w)
		return;
	if (w->s) {
		w->s->writer = NULL;
		store_unit_rollback(w->s);
		writer_drop_file(w);
	}
	writer_free(w);
}

/* Detaches a writer whose unit the store rolled back (store_close, store_batch_abort). */
void store_writer_orphan(struct store_writer *w)
{
	writer_drop_file(w); /* now, while the store (and its directory) is still open */
	w->s = NULL;
}

/* ---- reads ---------------------------------------------------------------------- */

/* Columns as in BUNDLE_COLS (store.c). */
static void row_bundle(struct store *s, sqlite3_stmt *st, const struct store_clock *now,
		       struct store_bundle *b)
{
	const void *id = sqlite3_column_blob(st, 1);

	memset(b, 0, sizeof(*b));
	b->rowid = sqlite3_column_int64(st, 0);
	if (id && sqlite3_column_bytes(st, 1) == 32)
		memcpy(b->id, id, 32);
	b->state = (enum store_state)sqlite3_column_int(st, 2);
	b->dest_node = (uint64_t)sqlite3_column_int64(st, 3);
	b->priority = (enum store_priority)sqlite3_column_int(st, 4);
	b->lifetime_ms = store_u64(sqlite3_column_int64(st, 5));
	b->age_ms = store_u64(sqlite3_column_int64(st, 6));
	b->payload_len = store_u64(sqlite3_column_int64(st, 7));
	b->received_unix_ms = store_u64(sqlite3_column_int64(st, 8));
	b->local = sqlite3_column_int(st, 9) != 0;
	b->age_now_ms =
	    store_age_now(s, now, b->age_ms, sqlite3_column_blob(st, 12),
			  sqlite3_column_bytes(st, 12), store_u64(sqlite3_column_int64(st, 13)));
	b->export_count = store_u64(sqlite3_column_int64(st, 14));
	b->last_export_unix_ms = store_u64(sqlite3_column_int64(st, 15));
}

static bool row_head_ok(sqlite3_stmt *st)
{
	const void *head = sqlite3_column_blob(st, 10);
	int n = sqlite3_column_bytes(st, 10);

	return store_crc32c(0, head, (size_t)n) == (uint32_t)sqlite3_column_int64(st, 11);
}

/*
 * Moves a bundle whose bytes no longer match their checksums to STORE_QUARANTINED,
 * durably, and says which. Quarantined bundles are neither forwarded nor purged:
 * they wait for an operator. Always returns -EBADMSG.
 */
static int quarantine(struct store *s, int64_t rowid, const uint8_t id[32], const char *what)
{
	char hex[65], cause[sizeof(s->errmsg)];
	sqlite3_stmt *st;
	int ret;

	store_hex(hex, id, 32);
	ret = store_unit_begin(s);
	if (ret)
		goto out;
	ret = store_stmt(s, ST_BUNDLE_SET_STATE, &st);
	if (ret == 0) {
		sqlite3_bind_int64(st, 1, rowid);
		sqlite3_bind_int(st, 2, STORE_QUARANTINED);
		ret = store_step_done(s, ST_BUNDLE_SET_STATE, st);
	}
	if (ret) {
		store_unit_rollback(s);
		goto out;
	}
	ret = store_unit_commit(s);
out:
	if (ret == 0) {
		store_seterr(s, "bundle %s: %s; quarantined", hex, what);
	} else {
		memcpy(cause, s->errmsg, sizeof(cause));
		store_seterr(s, "bundle %s: %s; not quarantined: %.80s", hex, what, cause);
	}
	return -EBADMSG;
}

bool store_bundle_exists(struct store *s, const uint8_t id[static 32])
{
	sqlite3_stmt *st;
	bool found;

	if (!s || store_stmt(s, ST_BUNDLE_EXISTS, &st) != 0)
		return false;
	sqlite3_bind_blob(st, 1, id, 32, SQLITE_STATIC);
	found = sqlite3_step(st) == SQLITE_ROW;
	store_stmt_done(s, ST_BUNDLE_EXISTS, st);
	return found;
}

int store_bundle_get(struct store *s, const uint8_t id[static 32], const struct store_clock *now,
		     struct store_bundle *out, uint8_t *head, size_t cap, size_t *headlen)
{
	sqlite3_stmt *st = NULL;
	struct store_bundle b;
	size_t n;
	bool ok;
	int rc, ret;

	if (!s) {
		ret = -EINVAL;
		goto out;
	}
	store_clock_observe(s, now);
	ret = store_stmt(s, ST_BUNDLE_BY_ID, &st);
	if (ret)
		goto out;
	sqlite3_bind_blob(st, 1, id, 32, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		ret = rc == SQLITE_DONE ? -ENOENT : store_err(s, rc);
		goto out;
	}
	row_bundle(s, st, now, &b);
	ok = b.state == STORE_QUARANTINED || row_head_ok(st);
	n = (size_t)sqlite3_column_bytes(st, 10);
	if (ok && head && n > cap) {
		ret = -ENOSPC;
	} else if (ok && head && n) {
		memcpy(head, sqlite3_column_blob(st, 10), n);
	}
	if (headlen)
		*headlen = n;
	if (out)
		*out = b;
	store_stmt_done(s, ST_BUNDLE_BY_ID, st);
	st = NULL;
	if (!ok) {
		ret = quarantine(s, b.rowid, b.id, "head checksum mismatch");
		if (out)
			out->state = STORE_QUARANTINED;
	}
out:
	store_stmt_done(s, ST_BUNDLE_BY_ID, st);
	return ret;
}

/*
 * The next bundle in state at priority prio after rowid last, its head copied into
 * *buf (grown as needed). -ENOENT when there is none. The statement is released
 * before returning: see the comment on iteration in store.c.
 */
static int bundle_next(struct store *s, enum store_state state, int prio, int64_t last,
		       const struct store_clock *now, struct store_bundle *b, uint8_t **buf,
		       size_t *cap, size_t *len, bool *ok)
{
	sqlite3_stmt *st;
	size_t n;
	int rc, ret = store_stmt(s, ST_BUNDLE_NEXT, &st);

	if (ret)
		return ret;
	sqlite3_bind_int(st, 1, (int)state);
	sqlite3_bind_int(st, 2, prio);
	sqlite3_bind_int64(st, 3, last);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		ret = rc == SQLITE_DONE ? -ENOENT : store_err(s, rc);
		goto out;
	}
	row_bundle(s, st, now, b);
	*ok = row_head_ok(st);
	n = (size_t)sqlite3_column_bytes(st, 10);
	if (n > *cap) {
		uint8_t *grown = realloc(*buf, n);

		if (!grown) {
			ret = -ENOMEM;
			goto out;
		}
		*buf = grown;
		*cap = n;
	}
	if (n)
		memcpy(*buf, sqlite3_column_blob(st, 10), n);
	*len = n;
out:
	store_stmt_done(s, ST_BUNDLE_NEXT, st);
	return ret;
}

int store_bundle_foreach(struct store *s, enum store_state state, const struct store_clock *now,
			 int (*fn)(void *ctx, const struct store_bundle *b, const uint8_t *head,
				   size_t headlen),
			 void *ctx)
{
	return store_bundle_foreach_after(s, state, 0, now, fn, ctx);
}

int store_bundle_foreach_after(struct store *s, enum store_state state, int64_t after,
			       const struct store_clock *now,
			       int (*fn)(void *ctx, const struct store_bundle *b,
					 const uint8_t *head, size_t headlen),
			       void *ctx)
{
	struct store_bundle b;
	size_t cap = 256, len = 0;
	uint8_t *head = malloc(cap);
	bool bad = false;
	int ret = 0;

	/* State 0 is a writer's placeholder: no id, never to be handed out. */
	if (!s || !fn || !head ||
	    (state != STORE_QUEUED && state != STORE_DELIVERED && state != STORE_QUARANTINED)) {
		ret = head ? -EINVAL : -ENOMEM;
		goto out;
	}
	store_clock_observe(s, now);
	for (int prio = STORE_URGENT; prio >= STORE_BULK; prio--) {
		int64_t last = after > 0 ? after : 0;

		for (;;) {
			bool ok = true;

			ret = bundle_next(s, state, prio, last, now, &b, &head, &cap, &len, &ok);
			if (ret == -ENOENT)
				break;
			if (ret)
				goto out;
			last = b.rowid;
			/* A bad head is not handed on: quarantined, and reported at the end. */
			if (!ok && state != STORE_QUARANTINED) {
				quarantine(s, b.rowid, b.id, "head checksum mismatch");
				bad = true;
				continue;
			}
			ret = fn(ctx, &b, head, len);
			if (ret)
				goto out;
		}
	}
	ret = bad ? -EBADMSG : 0;
out:
	free(head);
	return ret;
}

/* The id and payload length of a committed bundle; -ENOENT if there is none. */
static int bundle_meta(struct store *s, int64_t rowid, uint8_t id[32], uint64_t *payload_len)
{
	sqlite3_stmt *st;
	int rc, ret = store_stmt(s, ST_BUNDLE_META, &st);

	if (ret)
		return ret;
	sqlite3_bind_int64(st, 1, rowid);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		if (id && sqlite3_column_bytes(st, 0) == 32)
			memcpy(id, sqlite3_column_blob(st, 0), 32);
		if (payload_len)
			*payload_len = store_u64(sqlite3_column_int64(st, 1));
	} else {
		ret = rc == SQLITE_DONE ? -ENOENT : store_err(s, rc);
	}
	store_stmt_done(s, ST_BUNDLE_META, st);
	return ret;
}

/* Whether a bundle's payload is in a file, and a copy of its chunk CRCs if so. */
static int file_meta(struct store *s, int64_t rowid, bool *file, uint8_t **crcs, size_t *n)
{
	sqlite3_stmt *st;
	int rc, ret = store_stmt(s, ST_BUNDLE_FILE_META, &st);

	if (ret)
		return ret;
	sqlite3_bind_int64(st, 1, rowid);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*file = sqlite3_column_int(st, 0) != 0;
		*n = (size_t)sqlite3_column_bytes(st, 1);
		if (*file && *n) {
			*crcs = malloc(*n);
			if (*crcs)
				memcpy(*crcs, sqlite3_column_blob(st, 1), *n);
			else
				ret = -ENOMEM;
		}
	} else {
		ret = rc == SQLITE_DONE ? -ENOENT : store_err(s, rc);
	}
	store_stmt_done(s, ST_BUNDLE_FILE_META, st);
	return ret;
}

/* Copies chunk seq of a bundle into *buf (grown as needed); -ENOENT if there is none. */
static int chunk_get(struct store *s, int64_t rowid, int64_t seq, uint8_t **buf, size_t *cap,
		     size_t *len, uint32_t *crc)
{
	sqlite3_stmt *st;
	const void *data;
	size_t n;
	int rc, ret = store_stmt(s, ST_CHUNK_GET, &st);

	if (ret)
		return ret;
	sqlite3_bind_int64(st, 1, rowid);
	sqlite3_bind_int64(st, 2, seq);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		ret = rc == SQLITE_DONE ? -ENOENT : store_err(s, rc);
		goto out;
	}
	*crc = (uint32_t)sqlite3_column_int64(st, 0);
	data = sqlite3_column_blob(st, 1);
	n = (size_t)sqlite3_column_bytes(st, 1);
	if (n > *cap) {
		uint8_t *grown = realloc(*buf, n);

		if (!grown) {
			ret = -ENOMEM;
			goto out;
		}
		*buf = grown;
		*cap = n;
	}
	if (n && !data) {
		ret = -ENOMEM;
		goto out;
	}
	if (n)
		memcpy(*buf, data, n);
	*len = n;
out:
	store_stmt_done(s, ST_CHUNK_GET, st);
	return ret;
}

/*
 * One query per chunk, copied out before fn runs: no read transaction is open
 * while fn works, so a slow consumer (a serial link) does not hold back WAL
 * checkpoints, and fn may write to the store.
 */
int store_payload_read(struct store *s, int64_t rowid,
		       int (*fn)(void *ctx, const uint8_t *buf, size_t len), void *ctx)
{
	uint8_t id[32] = {0}, *buf = NULL, *crcs = NULL;
	uint64_t payload_len = 0, total = 0;
	size_t cap = 0, n = 0, ncrcs = 0;
	bool file = false;
	int64_t seq = 0;
	uint32_t crc = 0;
	char bad[96] = "";
	int ret;

	if (!s || !fn) {
		ret = -EINVAL;
		goto out;
	}
	ret = bundle_meta(s, rowid, id, &payload_len);
	if (ret)
		goto out;
	ret = file_meta(s, rowid, &file, &crcs, &ncrcs);
	if (ret)
		goto out;
	if (file) {
		ret = store_file_read(s, id, payload_len, crcs, ncrcs, fn, ctx, bad, sizeof(bad));
		/* Deleted meanwhile (by fn, or by another process) is not corruption. */
		if (ret == 0 && bad[0])
			ret = bundle_meta(s, rowid, NULL, NULL);
		goto quarantine;
	}
	for (;; seq++) {
		ret = chunk_get(s, rowid, seq, &buf, &cap, &n, &crc);
		if (ret == -ENOENT && total == payload_len) {
			ret = 0;
			break;
		}
		if (ret == -ENOENT) {
			/* Deleted meanwhile (by fn, or by another process) is not corruption. */
			ret = bundle_meta(s, rowid, NULL, NULL);
			if (ret)
				goto out;
			snprintf(bad, sizeof(bad), "chunk %" PRId64 " missing", seq);
			break;
		}
		if (ret)
			goto out;
		if (store_crc32c(0, buf, n) != crc) {
			snprintf(bad, sizeof(bad), "chunk %" PRId64 " checksum mismatch", seq);
			break;
		}
		if (n > payload_len - total) {
			snprintf(bad, sizeof(bad), "chunk %" PRId64 " runs past the payload length",
				 seq);
			break;
		}
		total += n;
		if (n) {
			ret = fn(ctx, buf, n);
			if (ret)
				goto out;
		}
	}
quarantine:
	if (ret == 0 && bad[0])
		ret = quarantine(s, rowid, id, bad);
out:
	free(buf);
	free(crcs);
	return ret;
}

/*
 * Piece seq of a payload file into buf (n bytes, checked against its CRC in crcs).
 * 0 with bad[] empty, 0 with bad[] saying what is wrong, or a read error.
 */
static int file_piece(struct store *s, const uint8_t id[32], uint64_t payload_len,
		      const uint8_t *crcs, size_t ncrcs, uint64_t seq, uint8_t *buf, size_t n,
		      char *bad, size_t badlen)
{
	uint64_t chunks = (payload_len + STORE_CHUNK_SIZE - 1) / STORE_CHUNK_SIZE;
	char name[65];
	struct stat st;
	size_t got = 0;
	int ret = 0;

	store_hex(name, id, 32);
	int fd = openat(s->files_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT)
			return -errno;
		snprintf(bad, badlen, "payload file missing");
		return 0;
	}
	if (fstat(fd, &st) != 0) {
		ret = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != payload_len) {
		snprintf(bad, badlen, "payload file is %lld bytes, not %" PRIu64,
			 (long long)st.st_size, payload_len);
		goto out;
	}
	if (!crcs || ncrcs != chunks * 4) {
		snprintf(bad, badlen, "payload checksums do not match its length");
		goto out;
	}
	while (got < n) {
		ssize_t r = pread(fd, buf + got, n - got, (off_t)(seq * STORE_CHUNK_SIZE + got));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			ret = -errno;
			goto out;
		}
		if (r == 0) {
			snprintf(bad, badlen, "payload file shrank at chunk %" PRIu64, seq);
			goto out;
		}
		got += (size_t)r;
	}
	const uint8_t *c = crcs + 4 * seq;
	uint32_t want = (uint32_t)c[0] << 24 | (uint32_t)c[1] << 16 | (uint32_t)c[2] << 8 | c[3];
	if (store_crc32c(0, buf, n) != want)
		snprintf(bad, badlen, "payload file chunk %" PRIu64 " checksum mismatch", seq);
out:
	close(fd);
	return ret;
}

/*
 * Every chunk but the last holds STORE_CHUNK_SIZE bytes (the writer cuts them so, in
 * rows and in files alike): the chunk that holds offset is found by division.
 */
ssize_t store_payload_pread(struct store *s, int64_t rowid, uint64_t offset, uint8_t *buf,
			    size_t len)
{
	uint8_t id[32] = {0}, *chunk = NULL, *crcs = NULL;
	uint64_t payload_len = 0, seq, start;
	size_t cap = 0, n = 0, want, ncrcs = 0, skip, copy = 0;
	bool file = false;
	uint32_t crc = 0;
	char bad[96] = "";
	int ret;

	if (!s || (!buf && len)) {
		ret = -EINVAL;
		goto out;
	}
	ret = bundle_meta(s, rowid, id, &payload_len);
	if (ret || offset >= payload_len || len == 0)
		goto out;
	seq = offset / STORE_CHUNK_SIZE;
	start = seq * STORE_CHUNK_SIZE;
	want = payload_len - start < STORE_CHUNK_SIZE ? (size_t)(payload_len - start)
						      : STORE_CHUNK_SIZE;
	ret = file_meta(s, rowid, &file, &crcs, &ncrcs);
	if (ret)
		goto out;
	if (file) {
		chunk = malloc(want);
		if (!chunk) {
			ret = -ENOMEM;
			goto out;
		}
		ret =
		    file_piece(s, id, payload_len, crcs, ncrcs, seq, chunk, want, bad, sizeof(bad));
		n = want;
		/* Deleted meanwhile (by another process) is not corruption. */
		if (ret == 0 && bad[0])
			ret = bundle_meta(s, rowid, NULL, NULL);
		goto check;
	}
	ret = chunk_get(s, rowid, (int64_t)seq, &chunk, &cap, &n, &crc);
	if (ret == -ENOENT) {
		ret = bundle_meta(s, rowid, NULL, NULL);
		if (ret == 0)
			snprintf(bad, sizeof(bad), "chunk %" PRIu64 " missing", seq);
	} else if (ret == 0 && store_crc32c(0, chunk, n) != crc) {
		snprintf(bad, sizeof(bad), "chunk %" PRIu64 " checksum mismatch", seq);
	} else if (ret == 0 && n != want) {
		snprintf(bad, sizeof(bad), "chunk %" PRIu64 " is %zu bytes, not %zu", seq, n, want);
	}
check:
	if (ret)
		goto out;
	if (bad[0]) {
		ret = quarantine(s, rowid, id, bad);
		goto out;
	}
	skip = (size_t)(offset - start);
	copy = n - skip < len ? n - skip : len;
	memcpy(buf, chunk + skip, copy);
out:
	free(chunk);
	free(crcs);
	return ret ? ret : (ssize_t)copy;
}

/* ---- deletion ---------------------------------------------------------------------- */

int store_bundle_delete(struct store *s, const uint8_t id[static 32])
{
	sqlite3_stmt *st;
	int ret;

	if (!s) {
		ret = -EINVAL;
		goto out;
	}
	ret = store_unit_begin(s);
	if (ret)
		goto out;
	ret = store_stmt(s, ST_BUNDLE_DELETE, &st);
	if (ret)
		goto rollback;
	sqlite3_bind_blob(st, 1, id, 32, SQLITE_STATIC);
	ret = store_step_done(s, ST_BUNDLE_DELETE, st);
	if (ret == 0 && sqlite3_changes(s->db) == 0)
		ret = -ENOENT;
	if (ret)
		goto rollback;
	ret = store_unit_commit(s);
	goto out;
rollback:
	store_unit_rollback(s);
out:
	return ret;
}

/* ---- custody ----------------------------------------------------------------------- */

int store_bundle_mark_exported(struct store *s, const uint8_t id[static 32], uint64_t peer,
			       uint64_t unix_ms)
{
	sqlite3_stmt *st;
	int ret;

	if (!s) {
		ret = -EINVAL;
		goto out;
	}
	ret = store_unit_begin(s);
	if (ret)
		goto out;
	ret = store_stmt(s, ST_BUNDLE_EXPORTED, &st);
	if (ret)
		goto rollback;
	sqlite3_bind_blob(st, 1, id, 32, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, store_i64(unix_ms));
	ret = store_step_done(s, ST_BUNDLE_EXPORTED, st);
	if (ret == 0 && sqlite3_changes(s->db) == 0)
		ret = -ENOENT;
	if (ret == 0)
		ret = store_stmt(s, ST_BUNDLE_EXPORTED_TO, &st);
	if (ret == 0) {
		sqlite3_bind_blob(st, 1, id, 32, SQLITE_STATIC);
		/* A node number is an identifier: stored bit for bit. */
		sqlite3_bind_int64(st, 2, (sqlite3_int64)peer);
		ret = store_step_done(s, ST_BUNDLE_EXPORTED_TO, st);
	}
	if (ret)
		goto rollback;
	ret = store_unit_commit(s);
	goto out;
rollback:
	store_unit_rollback(s);
out:
	return ret;
}

/*
 * The next hop holds the bundle now: our copy goes (chunks by cascade), and the
 * sender's record says so. Only a peer the bundle was handed to can say that: a
 * receipt from anyone else, or for a bundle no longer here, changes nothing.
 */
int store_bundle_release(struct store *s, const uint8_t id[static 32], uint64_t peer,
			 uint64_t *released)
{
	sqlite3_stmt *st;
	uint64_t n = 0;
	int ret;

	if (!s) {
		ret = -EINVAL;
		goto out;
	}
	ret = store_unit_begin(s);
	if (ret)
		goto out;
	ret = store_stmt(s, ST_BUNDLE_RELEASE, &st);
	if (ret)
		goto rollback;
	sqlite3_bind_blob(st, 1, id, 32, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, STORE_QUEUED);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)peer);
	ret = store_step_done(s, ST_BUNDLE_RELEASE, st);
	if (ret)
		goto rollback;
	n = (uint64_t)sqlite3_changes(s->db);
	if (n == 0)
		goto rollback; /* nothing changed: nothing to commit */
	ret = store_stmt(s, ST_SENT_HANDED_OVER, &st);
	if (ret)
		goto rollback;
	sqlite3_bind_blob(st, 1, id, 32, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, STORE_SENT_HANDED_OVER);
	sqlite3_bind_int64(st, 3, store_i64(s->unix_ms));
	sqlite3_bind_int(st, 4, STORE_SENT_QUEUED);
	ret = store_step_done(s, ST_SENT_HANDED_OVER, st);
	if (ret)
		goto rollback;
	ret = store_unit_commit(s);
	goto out;
rollback:
	store_unit_rollback(s);
out:
	if (released)
		*released = ret == 0 ? n : 0;
	return ret;
}

int store_bundle_add_holder(struct store *s, const uint8_t id[static 32], uint64_t peer)
{
	sqlite3_stmt *st;
	int ret;

	if (!s) {
		ret = -EINVAL;
		goto out;
	}
	ret = store_unit_begin(s);
	if (ret)
		goto out;
	ret = store_stmt(s, ST_BUNDLE_HOLDER_ADD, &st);
	if (ret)
		goto rollback;
	sqlite3_bind_blob(st, 1, id, 32, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)peer);
	ret = store_step_done(s, ST_BUNDLE_HOLDER_ADD, st);
	if (ret)
		goto rollback;
	ret = store_unit_commit(s);
	goto out;
rollback:
	store_unit_rollback(s);
out:
	return ret;
}

bool store_bundle_held_by(struct store *s, int64_t rowid, uint64_t peer)
{
	sqlite3_stmt *st;
	bool found;

	if (!s || store_stmt(s, ST_BUNDLE_HELD_BY, &st) != 0)
		return false;
	sqlite3_bind_int64(st, 1, rowid);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)peer);
	found = sqlite3_step(st) == SQLITE_ROW;
	store_stmt_done(s, ST_BUNDLE_HELD_BY, st);
	return found;
}

/* ---- expiry ------------------------------------------------------------------------ */

int store_purge_expired(struct store *s, const struct store_clock *now, uint64_t *count)
{
	sqlite3_stmt *st;
	uint64_t n = 0;
	int ret;

	if (!s) {
		ret = -EINVAL;
		goto out;
	}
	store_clock_observe(s, now);
	ret = store_unit_begin(s);
	if (ret)
		goto out;
	ret = store_stmt(s, ST_BUNDLE_PURGE, &st);
	if (ret)
		goto rollback;
	if (now) {
		sqlite3_bind_blob(st, 1, now->boot_id, 16, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, store_i64(now->boot_ms));
	}
	sqlite3_bind_blob(st, 3, s->boot_id, 16, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, store_i64(s->boot_ms));
	sqlite3_bind_int(st, 5, STORE_QUEUED);
	ret = store_step_done(s, ST_BUNDLE_PURGE, st);
	if (ret)
		goto rollback;
	/* Counts the bundles only: chunks go by ON DELETE CASCADE, which changes() omits. */
	n = (uint64_t)sqlite3_changes(s->db); /* not changes64: that needs 3.37 */
	ret = store_stage_purge(s, now);
	if (ret)
		goto rollback;
	ret = store_unit_checkpoint(s);
	if (ret)
		goto rollback;
	ret = store_unit_commit(s);
	/* The files of what the purge deleted (expired stages above all) go now. */
	if (ret == 0 && !s->batch)
		store_files_sweep(s, false);
	goto out;
rollback:
	store_unit_rollback(s);
	n = 0;
out:
	if (count)
		*count = ret == 0 ? n : 0;
	return ret;
}
