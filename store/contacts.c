/* The address book: local names bound one-to-one to signing keys, plus the current box key. */
#include <errno.h>
#include <string.h>

#include "store/store_impl.h"

/* Columns as in CONTACT_COLS (store.c). */
static void row_contact(sqlite3_stmt *st, struct store_contact *c)
{
	const unsigned char *name = sqlite3_column_text(st, 0);
	int n = sqlite3_column_bytes(st, 0);

	memset(c, 0, sizeof(*c));
	if (name && n > 0 && n <= STORE_NAME_MAX)
		memcpy(c->name, name, (size_t)n);
	if (sqlite3_column_bytes(st, 1) == 32)
		memcpy(c->sign_pk, sqlite3_column_blob(st, 1), 32);
	if (sqlite3_column_bytes(st, 2) == 32)
		memcpy(c->box_pk, sqlite3_column_blob(st, 2), 32);
	c->epoch = (uint32_t)sqlite3_column_int64(st, 3);
	if (sqlite3_column_bytes(st, 4) == 64)
		memcpy(c->cert, sqlite3_column_blob(st, 4), 64);
	c->node = (uint32_t)sqlite3_column_int64(st, 5);
	c->added_unix_ms = store_u64(sqlite3_column_int64(st, 6));
}

/* Looks a contact up by name (key NULL) or by key; -ENOENT if absent. */
static int lookup(struct store *s, const char *name, const uint8_t *key, struct store_contact *out)
{
	enum store_stmt id = key ? ST_CONTACT_BY_KEY : ST_CONTACT_BY_NAME;
	sqlite3_stmt *st;
	int rc, ret = store_stmt(s, id, &st);

	if (ret)
		return ret;
	if (key)
		sqlite3_bind_blob(st, 1, key, 32, SQLITE_STATIC);
	else
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		if (out)
			row_contact(st, out);
		ret = 0;
	} else {
		ret = rc == SQLITE_DONE ? -ENOENT : store_err(s, rc);
	}
	store_stmt_done(s, id, st);
	return ret;
}

int store_contact_add(struct store *s, const struct store_contact *c)
{
	struct store_contact have;
	sqlite3_stmt *st;
	int ret;

	if (!s || !c || !store_name_ok(c->name)) {
		ret = -EINVAL;
		goto out;
	}
	ret = store_unit_begin(s);
	if (ret)
		goto out;
	ret = lookup(s, c->name, NULL, &have);
	if (ret == 0 && memcmp(have.sign_pk, c->sign_pk, 32) != 0) {
		store_seterr(s, "contact \"%s\" has another key", c->name);
		ret = -EEXIST;
		goto rollback;
	}
	if (ret == 0) {
		/* Same name, same key: only a newer epoch changes the encryption key. */
		ret = store_stmt(s, ST_CONTACT_UPDATE_KEY, &st);
		if (ret)
			goto rollback;
		sqlite3_bind_text(st, 1, c->name, -1, SQLITE_STATIC);
		sqlite3_bind_blob(st, 2, c->box_pk, 32, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, c->epoch);
		sqlite3_bind_blob(st, 4, c->cert, 64, SQLITE_STATIC);
		ret = store_step_done(s, ST_CONTACT_UPDATE_KEY, st);
		if (ret)
			goto rollback;
		goto commit;
	}
	if (ret != -ENOENT)
		goto rollback;
	ret = lookup(s, NULL, c->sign_pk, &have);
	if (ret == 0) {
		store_seterr(s, "this key is already known as \"%s\"", have.name);
		ret = -EEXIST;
		goto rollback;
	}
	if (ret != -ENOENT)
		goto rollback;
	ret = store_stmt(s, ST_CONTACT_INSERT, &st);
	if (ret)
		goto rollback;
	sqlite3_bind_text(st, 1, c->name, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, c->sign_pk, 32, SQLITE_STATIC);
	sqlite3_bind_blob(st, 3, c->box_pk, 32, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, c->epoch);
	sqlite3_bind_blob(st, 5, c->cert, 64, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, c->node);
	sqlite3_bind_int64(st, 7, store_i64(c->added_unix_ms));
	ret = store_step_done(s, ST_CONTACT_INSERT, st);
	if (ret)
		goto rollback;
commit:
	ret = store_unit_commit(s);
	goto out;
rollback:
	store_unit_rollback(s);
out:
	return ret;
}

int store_contact_remove(struct store *s, const char *name)
{
	sqlite3_stmt *st;
	int ret;

	if (!s || !name) {
		ret = -EINVAL;
		goto out;
	}
	ret = store_unit_begin(s);
	if (ret)
		goto out;
	ret = store_stmt(s, ST_CONTACT_DELETE, &st);
	if (ret)
		goto rollback;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	ret = store_step_done(s, ST_CONTACT_DELETE, st);
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

int store_contact_get(struct store *s, const char *name, struct store_contact *out)
{
	if (!s || !name)
		return -EINVAL;
	return lookup(s, name, NULL, out);
}

int store_contact_by_key(struct store *s, const uint8_t sign_pk[static 32],
			 struct store_contact *out)
{
	if (!s)
		return -EINVAL;
	return lookup(s, NULL, sign_pk, out);
}

/* One query per contact, none open while fn runs (see the comment on iteration in store.c). */
int store_contact_foreach(struct store *s, int (*fn)(void *ctx, const struct store_contact *c),
			  void *ctx)
{
	struct store_contact c;
	char last[STORE_NAME_MAX + 1] = "";
	sqlite3_stmt *st;
	int rc, ret;

	if (!s || !fn) {
		ret = -EINVAL;
		goto out;
	}
	for (;;) {
		ret = store_stmt(s, ST_CONTACT_NEXT, &st);
		if (ret)
			goto out;
		sqlite3_bind_text(st, 1, last, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			row_contact(st, &c);
		else
			ret = rc == SQLITE_DONE ? 0 : store_err(s, rc);
		store_stmt_done(s, ST_CONTACT_NEXT, st);
		if (rc != SQLITE_ROW || !c.name[0])
			goto out;
		memcpy(last, c.name, sizeof(last));
		ret = fn(ctx, &c);
		if (ret)
			goto out;
	}
out:
	return ret;
}

int store_contact_keys_starting(struct store *s, uint8_t first,
				int (*fn)(void *ctx, const uint8_t sign_pk[32]), void *ctx)
{
	/* Every 32-byte key that starts with first lies between these two blobs. */
	uint8_t last[32], below[33];
	size_t last_len = 1;
	sqlite3_stmt *st;
	int rc, ret;

	if (!s || !fn)
		return -EINVAL;
	last[0] = first;
	below[0] = first;
	memset(below + 1, 0xff, sizeof(below) - 1);
	for (;;) {
		ret = store_stmt(s, ST_CONTACT_KEY_NEXT, &st);
		if (ret)
			return ret;
		sqlite3_bind_blob(st, 1, last, (int)last_len, SQLITE_STATIC);
		sqlite3_bind_blob(st, 2, below, sizeof(below), SQLITE_STATIC);
		rc = sqlite3_step(st);
		bool found = rc == SQLITE_ROW && sqlite3_column_bytes(st, 0) == 32;
		if (found) {
			memcpy(last, sqlite3_column_blob(st, 0), 32);
			last_len = 32;
		}
		ret = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : store_err(s, rc);
		store_stmt_done(s, ST_CONTACT_KEY_NEXT, st);
		if (!found)
			return ret;
		ret = fn(ctx, last);
		if (ret)
			return ret;
	}
}
