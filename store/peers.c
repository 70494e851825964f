/* Peers (the nodes we exchange bundles with directly) and the static routes through them. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "store/store_impl.h"

#define LINKS_KNOWN (STORE_LINK_SNEAKERNET | STORE_LINK_TCP | STORE_LINK_SERIAL)

/* Columns as in PEER_COLS (store.c). */
static void row_peer(sqlite3_stmt *st, struct store_peer *p)
{
	const unsigned char *name = sqlite3_column_text(st, 0);
	const unsigned char *addr = sqlite3_column_text(st, 8);
	int n = sqlite3_column_bytes(st, 0);
	int na = sqlite3_column_bytes(st, 8);

	memset(p, 0, sizeof(*p));
	if (name && n > 0 && n <= STORE_NAME_MAX)
		memcpy(p->name, name, (size_t)n);
	if (sqlite3_column_bytes(st, 1) == 32)
		memcpy(p->sign_pk, sqlite3_column_blob(st, 1), 32);
	if (sqlite3_column_bytes(st, 2) == 32)
		memcpy(p->box_pk, sqlite3_column_blob(st, 2), 32);
	p->epoch = (uint32_t)sqlite3_column_int64(st, 3);
	if (sqlite3_column_bytes(st, 4) == 64)
		memcpy(p->cert, sqlite3_column_blob(st, 4), 64);
	p->node = (uint64_t)sqlite3_column_int64(st, 5);
	p->added_unix_ms = store_u64(sqlite3_column_int64(st, 6));
	p->links = (unsigned int)sqlite3_column_int64(st, 7);
	if (addr && na > 0 && (size_t)na < sizeof(p->addr))
		memcpy(p->addr, addr, (size_t)na);
}

/* Looks a peer up by name, key or node, whichever lookup id says; -ENOENT if absent. */
static int lookup(struct store *s, enum store_stmt id, const char *name, const uint8_t *key,
		  uint64_t node, struct store_peer *out)
{
	sqlite3_stmt *st;
	int rc, ret = store_stmt(s, id, &st);

	if (ret)
		return ret;
	if (id == ST_PEER_BY_NAME)
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	else if (id == ST_PEER_BY_KEY)
		sqlite3_bind_blob(st, 1, key, 32, SQLITE_STATIC);
	else
		sqlite3_bind_int64(st, 1, (sqlite3_int64)node); /* bit for bit, as stored */
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		if (out)
			row_peer(st, out);
		ret = 0;
	} else {
		ret = rc == SQLITE_DONE ? -ENOENT : store_err(s, rc);
	}
	store_stmt_done(s, id, st);
	return ret;
}

static int peer_update(struct store *s, const struct store_peer *p, size_t addrlen)
{
	sqlite3_stmt *st;
	int ret = store_stmt(s, ST_PEER_UPDATE, &st);

	if (ret)
		return ret;
	sqlite3_bind_text(st, 1, p->name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, p->links);
	sqlite3_bind_text(st, 3, p->addr, (int)addrlen, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, p->epoch);
	sqlite3_bind_blob(st, 5, p->box_pk, 32, SQLITE_STATIC);
	sqlite3_bind_blob(st, 6, p->cert, 64, SQLITE_STATIC);
	return store_step_done(s, ST_PEER_UPDATE, st);
}

static int peer_insert(struct store *s, const struct store_peer *p, size_t addrlen)
{
	sqlite3_stmt *st;
	int ret = store_stmt(s, ST_PEER_INSERT, &st);

	if (ret)
		return ret;
	sqlite3_bind_text(st, 1, p->name, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, p->sign_pk, 32, SQLITE_STATIC);
	sqlite3_bind_blob(st, 3, p->box_pk, 32, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, p->epoch);
	sqlite3_bind_blob(st, 5, p->cert, 64, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, (sqlite3_int64)p->node);
	sqlite3_bind_int64(st, 7, store_i64(p->added_unix_ms));
	sqlite3_bind_int64(st, 8, p->links);
	sqlite3_bind_text(st, 9, p->addr, (int)addrlen, SQLITE_STATIC);
	return store_step_done(s, ST_PEER_INSERT, st);
}

int store_peer_add(struct store *s, const struct store_peer *p)
{
	struct store_peer have;
	size_t addrlen;
	int ret;

	if (!s || !p || !store_name_ok(p->name) || (p->links & ~(unsigned int)LINKS_KNOWN)) {
		ret = -EINVAL;
		goto out;
	}
	addrlen = strnlen(p->addr, sizeof(p->addr));
	if (addrlen == sizeof(p->addr)) {
		store_seterr(s, "peer address is not terminated");
		ret = -EINVAL;
		goto out;
	}
	ret = store_unit_begin(s);
	if (ret)
		goto out;
	ret = lookup(s, ST_PEER_BY_NAME, p->name, NULL, 0, &have);
	if (ret == 0 && memcmp(have.sign_pk, p->sign_pk, 32) != 0) {
		store_seterr(s, "peer \"%s\" has another key", p->name);
		ret = -EEXIST;
		goto rollback;
	}
	if (ret == 0) {
		/* Same name, same key: links and address follow; the key only if newer. */
		ret = peer_update(s, p, addrlen);
		if (ret)
			goto rollback;
		goto commit;
	}
	if (ret != -ENOENT)
		goto rollback;
	ret = lookup(s, ST_PEER_BY_KEY, NULL, p->sign_pk, 0, &have);
	if (ret == 0) {
		store_seterr(s, "this key is already the peer \"%s\"", have.name);
		ret = -EEXIST;
		goto rollback;
	}
	if (ret != -ENOENT)
		goto rollback;
	ret = lookup(s, ST_PEER_BY_NODE, NULL, NULL, p->node, &have);
	if (ret == 0) {
		/* Two keys on one node number: routing could not tell them apart. */
		store_seterr(s, "node %llu is already the peer \"%s\"", (unsigned long long)p->node,
			     have.name);
		ret = -EEXIST;
		goto rollback;
	}
	if (ret != -ENOENT)
		goto rollback;
	ret = peer_insert(s, p, addrlen);
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

int store_peer_remove(struct store *s, const char *name)
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
	ret = store_stmt(s, ST_PEER_DELETE, &st);
	if (ret)
		goto rollback;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	ret = store_step_done(s, ST_PEER_DELETE, st);
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

int store_peer_get(struct store *s, const char *name, struct store_peer *out)
{
	if (!s || !name)
		return -EINVAL;
	return lookup(s, ST_PEER_BY_NAME, name, NULL, 0, out);
}

int store_peer_by_key(struct store *s, const uint8_t sign_pk[static 32], struct store_peer *out)
{
	if (!s)
		return -EINVAL;
	return lookup(s, ST_PEER_BY_KEY, NULL, sign_pk, 0, out);
}

int store_peer_by_node(struct store *s, uint64_t node, struct store_peer *out)
{
	if (!s)
		return -EINVAL;
	return lookup(s, ST_PEER_BY_NODE, NULL, NULL, node, out);
}

/* One query per peer, none open while fn runs (see the comment on iteration in store.c). */
int store_peer_foreach(struct store *s, int (*fn)(void *ctx, const struct store_peer *p), void *ctx)
{
	struct store_peer p;
	char last[STORE_NAME_MAX + 1] = "";
	sqlite3_stmt *st;
	int rc, ret;

	if (!s || !fn) {
		ret = -EINVAL;
		goto out;
	}
	for (;;) {
		ret = store_stmt(s, ST_PEER_NEXT, &st);
		if (ret)
			goto out;
		sqlite3_bind_text(st, 1, last, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			row_peer(st, &p);
		else
			ret = rc == SQLITE_DONE ? 0 : store_err(s, rc);
		store_stmt_done(s, ST_PEER_NEXT, st);
		if (rc != SQLITE_ROW || !p.name[0])
			goto out;
		memcpy(last, p.name, sizeof(last));
		ret = fn(ctx, &p);
		if (ret)
			goto out;
	}
out:
	return ret;
}

/* ---- routes ------------------------------------------------------------------------ */

int store_route_set(struct store *s, uint64_t dest, uint64_t via)
{
	sqlite3_stmt *st;
	int ret;

	/* ipn node 0 is the null endpoint: nothing to hand a bundle to. */
	if (!s || via == 0) {
		ret = -EINVAL;
		goto out;
	}
	ret = store_unit_begin(s);
	if (ret)
		goto out;
	ret = store_stmt(s, ST_ROUTE_SET, &st);
	if (ret)
		goto rollback;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)dest);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)via);
	ret = store_step_done(s, ST_ROUTE_SET, st);
	if (ret)
		goto rollback;
	ret = store_unit_commit(s);
	goto out;
rollback:
	store_unit_rollback(s);
out:
	return ret;
}

int store_route_remove(struct store *s, uint64_t dest)
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
	ret = store_stmt(s, ST_ROUTE_DELETE, &st);
	if (ret)
		goto rollback;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)dest);
	ret = store_step_done(s, ST_ROUTE_DELETE, st);
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

int store_route_get(struct store *s, uint64_t dest, uint64_t *via)
{
	sqlite3_stmt *st;
	int rc, ret;

	if (!s || !via)
		return -EINVAL;
	ret = store_stmt(s, ST_ROUTE_GET, &st);
	if (ret)
		return ret;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)dest);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*via = (uint64_t)sqlite3_column_int64(st, 0);
	else
		ret = rc == SQLITE_DONE ? -ENOENT : store_err(s, rc);
	store_stmt_done(s, ST_ROUTE_GET, st);
	return ret;
}

/*
 * In unsigned order of destination: the stored values 0 .. INT64_MAX, then the
 * ones above 2^63, which are stored as negative numbers. One query per route.
 */
int store_route_foreach(struct store *s, int (*fn)(void *ctx, const struct store_route *r),
			void *ctx)
{
	static const sqlite3_int64 half[2][2] = {{0, INT64_MAX}, {INT64_MIN, -1}};
	struct store_route r;
	sqlite3_stmt *st;
	int rc, ret = 0;

	if (!s || !fn) {
		ret = -EINVAL;
		goto out;
	}
	for (int h = 0; h < 2; h++) {
		sqlite3_int64 from = half[h][0];

		for (;;) {
			sqlite3_int64 dest = 0;

			ret = store_stmt(s, ST_ROUTE_NEXT, &st);
			if (ret)
				goto out;
			sqlite3_bind_int64(st, 1, from);
			sqlite3_bind_int64(st, 2, half[h][1]);
			rc = sqlite3_step(st);
			if (rc == SQLITE_ROW) {
				dest = sqlite3_column_int64(st, 0);
				r.dest = (uint64_t)dest;
				r.via = (uint64_t)sqlite3_column_int64(st, 1);
			} else {
				ret = rc == SQLITE_DONE ? 0 : store_err(s, rc);
			}
			store_stmt_done(s, ST_ROUTE_NEXT, st);
			if (rc != SQLITE_ROW)
				break;
			ret = fn(ctx, &r);
			if (ret)
				goto out;
			if (dest == half[h][1])
				break; /* the top of this half: dest + 1 would overflow */
			from = dest + 1;
		}
		if (ret)
			goto out;
	}
out:
	return ret;
}
