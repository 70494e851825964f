/* The sender's record of its messages: queued, handed over to a next hop, delivered. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "store/store_impl.h"

/* Inside the writer's unit, so the record and its bundle commit or vanish together. */
int store_sent_insert(struct store *s, const uint8_t msg_id[16], uint64_t to_node,
		      const uint8_t bundle_id[32], uint64_t unix_ms)
{
	sqlite3_stmt *st;
	int ret = store_stmt(s, ST_SENT_INSERT, &st);

	if (ret)
		return ret;
	sqlite3_bind_blob(st, 1, msg_id, 16, SQLITE_STATIC);
	/* A node number is an identifier, not a quantity: stored bit for bit. */
	sqlite3_bind_int64(st, 2, (sqlite3_int64)to_node);
	sqlite3_bind_blob(st, 3, bundle_id, 32, SQLITE_STATIC);
	sqlite3_bind_int(st, 4, STORE_SENT_QUEUED);
	sqlite3_bind_int64(st, 5, store_i64(unix_ms));
	ret = store_step_done(s, ST_SENT_INSERT, st);
	if (ret == -EEXIST) {
		char hex[33];

		store_hex(hex, msg_id, 16);
		store_seterr(s, "message %s to node %llu was already sent", hex,
			     (unsigned long long)to_node);
	}
	return ret;
}

/* The bundle id of a sent row; -ENOENT if there is none. */
static int sent_bundle(struct store *s, const uint8_t msg_id[16], uint64_t to_node,
		       uint8_t bundle_id[32])
{
	sqlite3_stmt *st;
	int rc, ret = store_stmt(s, ST_SENT_GET, &st);

	if (ret)
		return ret;
	sqlite3_bind_blob(st, 1, msg_id, 16, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)to_node);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_bytes(st, 0) == 32)
		memcpy(bundle_id, sqlite3_column_blob(st, 0), 32);
	else if (rc == SQLITE_ROW || rc == SQLITE_DONE)
		ret = -ENOENT;
	else
		ret = store_err(s, rc);
	store_stmt_done(s, ST_SENT_GET, st);
	return ret;
}

/*
 * The recipient has the message: nobody needs the bundle any more, wherever it
 * is. Ours goes if it is still queued and carries the message to no other node
 * that has not confirmed it yet.
 */
int store_sent_delivered(struct store *s, const uint8_t msg_id[static 16], uint64_t to_node,
			 uint64_t unix_ms, uint64_t *dropped)
{
	uint8_t bundle_id[32];
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
	ret = sent_bundle(s, msg_id, to_node, bundle_id);
	if (ret == -ENOENT) {
		char hex[33];

		store_hex(hex, msg_id, 16);
		store_seterr(s, "no message %s was sent to node %llu", hex,
			     (unsigned long long)to_node);
	}
	if (ret)
		goto rollback;
	/* Only a change of state moves changed_unix_ms: a repeated receipt changes nothing. */
	ret = store_stmt(s, ST_SENT_DELIVERED, &st);
	if (ret)
		goto rollback;
	sqlite3_bind_blob(st, 1, msg_id, 16, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)to_node);
	sqlite3_bind_int(st, 3, STORE_SENT_DELIVERED);
	sqlite3_bind_int64(st, 4, store_i64(unix_ms));
	ret = store_step_done(s, ST_SENT_DELIVERED, st);
	if (ret)
		goto rollback;
	ret = store_stmt(s, ST_SENT_DROP_BUNDLE, &st);
	if (ret)
		goto rollback;
	sqlite3_bind_blob(st, 1, bundle_id, 32, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, STORE_QUEUED);
	sqlite3_bind_int(st, 3, STORE_SENT_QUEUED);
	ret = store_step_done(s, ST_SENT_DROP_BUNDLE, st);
	if (ret)
		goto rollback;
	n = (uint64_t)sqlite3_changes(s->db);
	ret = store_unit_commit(s);
	goto out;
rollback:
	store_unit_rollback(s);
out:
	if (dropped)
		*dropped = ret == 0 ? n : 0;
	return ret;
}

/* Columns as in SENT_COLS (store.c); returns seq. */
static int64_t row_sent(sqlite3_stmt *st, struct store_sent *e)
{
	memset(e, 0, sizeof(*e));
	if (sqlite3_column_bytes(st, 1) == 16)
		memcpy(e->msg_id, sqlite3_column_blob(st, 1), 16);
	e->to_node = (uint64_t)sqlite3_column_int64(st, 2);
	if (sqlite3_column_bytes(st, 3) == 32)
		memcpy(e->bundle_id, sqlite3_column_blob(st, 3), 32);
	e->state = (enum store_sent_state)sqlite3_column_int(st, 4);
	e->created_unix_ms = store_u64(sqlite3_column_int64(st, 5));
	e->changed_unix_ms = store_u64(sqlite3_column_int64(st, 6));
	e->change_seq = store_u64(sqlite3_column_int64(st, 7));
	return sqlite3_column_int64(st, 0);
}

/*
 * Newest first by seq, the order of creation here, which no wrong wall clock can
 * reorder. One query per row, none open while fn runs (see the comment on
 * iteration in store.c).
 */
int store_sent_foreach(struct store *s, int (*fn)(void *ctx, const struct store_sent *e), void *ctx)
{
	struct store_sent e;
	int64_t last = INT64_MAX;
	sqlite3_stmt *st;
	int rc, ret;

	if (!s || !fn) {
		ret = -EINVAL;
		goto out;
	}
	for (;;) {
		ret = store_stmt(s, ST_SENT_NEXT, &st);
		if (ret)
			goto out;
		sqlite3_bind_int64(st, 1, last);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			last = row_sent(st, &e);
		else
			ret = rc == SQLITE_DONE ? 0 : store_err(s, rc);
		store_stmt_done(s, ST_SENT_NEXT, st);
		if (rc != SQLITE_ROW)
			goto out;
		ret = fn(ctx, &e);
		if (ret)
			goto out;
	}
out:
	return ret;
}

/* In change order, one query per row as store_sent_foreach, so fn may write to the store. */
int store_sent_foreach_changed(struct store *s, uint64_t after,
			       int (*fn)(void *ctx, const struct store_sent *e), void *ctx)
{
	struct store_sent e;
	sqlite3_stmt *st;
	int rc, ret;

	if (!s || !fn) {
		ret = -EINVAL;
		goto out;
	}
	for (;;) {
		ret = store_stmt(s, ST_SENT_CHANGED_NEXT, &st);
		if (ret)
			goto out;
		sqlite3_bind_int64(st, 1, store_i64(after));
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			row_sent(st, &e);
			after = e.change_seq;
		} else {
			ret = rc == SQLITE_DONE ? 0 : store_err(s, rc);
		}
		store_stmt_done(s, ST_SENT_CHANGED_NEXT, st);
		if (rc != SQLITE_ROW)
			goto out;
		ret = fn(ctx, &e);
		if (ret)
			goto out;
	}
out:
	return ret;
}

int store_sent_last_change(struct store *s, uint64_t *seq)
{
	sqlite3_stmt *st;
	int rc, ret;

	if (!s || !seq)
		return -EINVAL;
	ret = store_stmt(s, ST_SENT_LAST_CHANGE, &st);
	if (ret)
		return ret;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*seq = store_u64(sqlite3_column_int64(st, 0));
	else
		ret = store_err(s, rc);
	store_stmt_done(s, ST_SENT_LAST_CHANGE, st);
	return ret;
}
