/* The inbox: messages delivered to this node, and the recipient-side record of message ids. */
#include <errno.h>
#include <string.h>

#include "store/store_impl.h"

/* Inside the writer's transaction, so the entry and its bundle commit or vanish together. */
int store_inbox_insert(struct store *s, int64_t bundle_rowid, const uint8_t bundle_id[32],
		       const struct store_inbox *e)
{
	size_t namelen = strnlen(e->name, sizeof(e->name));
	sqlite3_stmt *st;
	int ret;

	if (namelen == sizeof(e->name)) {
		store_seterr(s, "inbox entry name is not terminated");
		return -EINVAL;
	}
	ret = store_stmt(s, ST_INBOX_INSERT, &st);
	if (ret)
		return ret;
	sqlite3_bind_blob(st, 1, e->msg_id, 16, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, bundle_rowid);
	/* The bundle this entry is committed with, whatever e->bundle_id says. */
	sqlite3_bind_blob(st, 3, bundle_id, 32, SQLITE_STATIC);
	sqlite3_bind_blob(st, 4, e->sender_pk, 32, SQLITE_STATIC);
	sqlite3_bind_int(st, 5, e->kind);
	sqlite3_bind_text(st, 6, e->name, (int)namelen, SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, store_i64(e->size));
	sqlite3_bind_int64(st, 8, store_i64(e->created_unix_ms));
	sqlite3_bind_int64(st, 9, store_i64(e->received_unix_ms));
	return store_step_done(s, ST_INBOX_INSERT, st);
}

/* Columns as in INBOX_COLS (store.c). */
static void row_inbox(sqlite3_stmt *st, struct store_inbox *e)
{
	const unsigned char *name = sqlite3_column_text(st, 5);
	int n = sqlite3_column_bytes(st, 5);

	memset(e, 0, sizeof(*e));
	e->rowid = sqlite3_column_int64(st, 0);
	if (sqlite3_column_bytes(st, 1) == 16)
		memcpy(e->msg_id, sqlite3_column_blob(st, 1), 16);
	if (sqlite3_column_bytes(st, 2) == 32)
		memcpy(e->bundle_id, sqlite3_column_blob(st, 2), 32);
	if (sqlite3_column_bytes(st, 3) == 32)
		memcpy(e->sender_pk, sqlite3_column_blob(st, 3), 32);
	e->kind = sqlite3_column_int(st, 4);
	if (name && n > 0 && (size_t)n < sizeof(e->name))
		memcpy(e->name, name, (size_t)n);
	e->size = store_u64(sqlite3_column_int64(st, 6));
	e->created_unix_ms = store_u64(sqlite3_column_int64(st, 7));
	e->received_unix_ms = store_u64(sqlite3_column_int64(st, 8));
	e->read = sqlite3_column_int(st, 9) != 0;
}

/* One query per entry, none open while fn runs (see the comment on iteration in store.c). */
int store_inbox_foreach(struct store *s, int (*fn)(void *ctx, const struct store_inbox *e),
			void *ctx)
{
	struct store_inbox e;
	int64_t last = 0;
	sqlite3_stmt *st;
	int rc, ret;

	if (!s || !fn) {
		ret = -EINVAL;
		goto out;
	}
	for (;;) {
		ret = store_stmt(s, ST_INBOX_NEXT, &st);
		if (ret)
			goto out;
		sqlite3_bind_int64(st, 1, last);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			row_inbox(st, &e);
		else
			ret = rc == SQLITE_DONE ? 0 : store_err(s, rc);
		store_stmt_done(s, ST_INBOX_NEXT, st);
		if (rc != SQLITE_ROW)
			goto out;
		last = e.rowid;
		ret = fn(ctx, &e);
		if (ret)
			goto out;
	}
out:
	return ret;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * A prefix is the range of ids between the prefix padded with 0 nibbles and the
 * prefix padded with f nibbles: one index range scan, at most two rows read.
 */
int store_inbox_find(struct store *s, const char *hex_prefix, struct store_inbox *out)
{
	uint8_t lo[16] = {0}, hi[16];
	sqlite3_stmt *st = NULL;
	size_t n;
	int rc, ret;

	memset(hi, 0xff, sizeof(hi));
	n = hex_prefix ? strlen(hex_prefix) : 0;
	if (!s || n < 4 || n > 32) {
		ret = -EINVAL;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		int v = hexval(hex_prefix[i]);

		if (v < 0) {
			ret = -EINVAL;
			goto out;
		}
		if (i % 2 == 0) {
			lo[i / 2] = (uint8_t)(v << 4);
			hi[i / 2] = (uint8_t)(v << 4 | 0x0f);
		} else {
			lo[i / 2] |= (uint8_t)v;
			hi[i / 2] = (uint8_t)((hi[i / 2] & 0xf0) | v);
		}
	}
	ret = store_stmt(s, ST_INBOX_RANGE, &st);
	if (ret)
		goto out;
	sqlite3_bind_blob(st, 1, lo, 16, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, hi, 16, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		ret = rc == SQLITE_DONE ? -ENOENT : store_err(s, rc);
		goto out;
	}
	if (out)
		row_inbox(st, out);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		store_seterr(s, "message id prefix %s is ambiguous", hex_prefix);
		ret = -EEXIST;
	} else if (rc != SQLITE_DONE) {
		ret = store_err(s, rc);
	}
out:
	if (st)
		store_stmt_done(s, ST_INBOX_RANGE, st);
	return ret;
}

bool store_inbox_has(struct store *s, const uint8_t msg_id[static 16])
{
	sqlite3_stmt *st;
	bool found;

	if (!s || store_stmt(s, ST_INBOX_HAS, &st) != 0)
		return false;
	sqlite3_bind_blob(st, 1, msg_id, 16, SQLITE_STATIC);
	found = sqlite3_step(st) == SQLITE_ROW;
	store_stmt_done(s, ST_INBOX_HAS, st);
	return found;
}

int store_inbox_mark_read(struct store *s, int64_t rowid)
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
	ret = store_stmt(s, ST_INBOX_MARK_READ, &st);
	if (ret)
		goto rollback;
	sqlite3_bind_int64(st, 1, rowid);
	ret = store_step_done(s, ST_INBOX_MARK_READ, st);
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

int store_inbox_bundle(struct store *s, const struct store_inbox *e, int64_t *bundle_rowid)
{
	sqlite3_stmt *st = NULL;
	int rc, ret;

	if (!s || !e || !bundle_rowid) {
		ret = -EINVAL;
		goto out;
	}
	ret = store_stmt(s, ST_INBOX_BUNDLE, &st);
	if (ret)
		goto out;
	sqlite3_bind_int64(st, 1, e->rowid);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_INTEGER) {
		*bundle_rowid = sqlite3_column_int64(st, 0);
	} else if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
		/* No such entry, or its bundle was deleted (the entry stays for dedupe). */
		ret = -ENOENT;
	} else {
		ret = store_err(s, rc);
	}
out:
	if (st)
		store_stmt_done(s, ST_INBOX_BUNDLE, st);
	return ret;
}
