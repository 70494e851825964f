/* Unit tests of store/ schema 2: migration from v1, peers, routes, sent rows, custody, batches. */
#include <dlfcn.h>
#include <errno.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Only to look at the file from a second connection and to hook the store's own. */
#include <sqlite3.h>

#include "store/store.h"
#include "store/store_testing.h"
#include "test.h"

static char tmpdir[256];
static char pathbuf[8][512];
static int pathnext;

/* A path in this run's temporary directory; eight live at a time. */
static const char *tpath(const char *name)
{
	char *p = pathbuf[pathnext++ % 8];

	snprintf(p, sizeof(pathbuf[0]), "%s/%s", tmpdir, name);
	return p;
}

static struct store_clock clk(uint8_t boot, uint64_t boot_ms)
{
	struct store_clock c = {.unix_ms = 1700000000000ull + boot_ms, .boot_ms = boot_ms};

	memset(c.boot_id, boot, sizeof(c.boot_id));
	return c;
}

/* ---- fsync counting, by file: the test binary's fsync/fdatasync shadow libc's ------- */

static int syncs, syncs_wal, syncs_db;

static void count_sync(int fd)
{
	char link[64], target[512];
	ssize_t n;

	syncs++;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, target, sizeof(target) - 1);
	if (n > 4 && memcmp(target + n - 4, "-wal", 4) == 0)
		syncs_wal++;
	else if (n > 3 && memcmp(target + n - 3, ".db", 3) == 0)
		syncs_db++;
}

static int call_real(const char *name, int fd)
{
	int (*real)(int) = NULL;

	/* The POSIX way to turn dlsym's void * into a function pointer. */
	*(void **)(&real) = dlsym(RTLD_NEXT, name);
	return real ? real(fd) : 0;
}

int fdatasync(int fd)
{
	count_sync(fd);
	return call_real("fdatasync", fd);
}

int fsync(int fd)
{
	count_sync(fd);
	return call_real("fsync", fd);
}

static void sync_reset(void)
{
	syncs = syncs_wal = syncs_db = 0;
}

/* ---- bundles ------------------------------------------------------------------------ */

/* Bundle n's id: n in the first four bytes, then a constant. Never all zero. */
static void id_of(uint8_t id[32], uint32_t n)
{
	memset(id, 0xb0, 32);
	id[0] = (uint8_t)(n >> 24);
	id[1] = (uint8_t)(n >> 16);
	id[2] = (uint8_t)(n >> 8);
	id[3] = (uint8_t)n;
}

static void msg_of(uint8_t msg[16], uint32_t n)
{
	memset(msg, 0x3c, 16);
	msg[0] = (uint8_t)(n >> 24);
	msg[1] = (uint8_t)(n >> 16);
	msg[2] = (uint8_t)(n >> 8);
	msg[3] = (uint8_t)n;
}

static uint8_t pat(uint64_t i, uint32_t n)
{
	return (uint8_t)((i * 131 + n * 7) >> 1);
}

/*
 * Writes bundle n (size payload bytes, queued for dest), with a sent row for each
 * of nodes[0..nnodes) carrying message n. Returns what store_writer_commit did.
 */
static int put_to(struct store *s, const struct store_clock *now, uint32_t n, size_t size,
		  uint64_t dest, const uint64_t *nodes, size_t nnodes)
{
	struct store_writer *w = NULL;
	struct store_bundle b = {0};
	uint8_t buf[4096], msg[16], head[24];
	int ret = store_writer_begin(s, now, &w);

	if (ret)
		return ret;
	for (size_t off = 0; off < size; off += sizeof(buf)) {
		size_t k = size - off < sizeof(buf) ? size - off : sizeof(buf);

		for (size_t i = 0; i < k; i++)
			buf[i] = pat(off + i, n);
		ret = store_writer_append(w, buf, k);
		if (ret) {
			store_writer_abort(w);
			return ret;
		}
	}
	msg_of(msg, n);
	for (size_t i = 0; i < nnodes; i++) {
		ret = store_writer_add_sent(w, msg, nodes[i]);
		if (ret) {
			store_writer_abort(w);
			return ret;
		}
	}
	id_of(b.id, n);
	b.state = STORE_QUEUED;
	b.dest_node = dest;
	b.priority = STORE_NORMAL;
	b.lifetime_ms = 86400000;
	b.payload_len = size;
	b.local = true;
	memset(head, 0x40 ^ (uint8_t)n, sizeof(head));
	return store_writer_commit(w, &b, head, sizeof(head), NULL);
}

static int put(struct store *s, const struct store_clock *now, uint32_t n, size_t size)
{
	uint64_t node = 1000 + n;

	return put_to(s, now, n, size, node, &node, 1);
}

static bool has_bundle(struct store *s, uint32_t n)
{
	uint8_t id[32];

	id_of(id, n);
	return store_bundle_exists(s, id);
}

struct reader {
	uint32_t n;
	uint64_t off;
	bool ok;
};

static int check_chunk(void *ctx, const uint8_t *buf, size_t len)
{
	struct reader *r = ctx;

	for (size_t i = 0; i < len; i++)
		if (buf[i] != pat(r->off + i, r->n))
			r->ok = false;
	r->off += len;
	return 0;
}

static bool payload_matches(struct store *s, uint32_t n, uint64_t size)
{
	struct reader r = {.n = n, .ok = true};
	struct store_bundle b;
	uint8_t id[32];

	id_of(id, n);
	if (store_bundle_get(s, id, NULL, &b, NULL, 0, NULL) != 0)
		return false;
	return store_payload_read(s, b.rowid, check_chunk, &r) == 0 && r.ok && r.off == size;
}

/* ---- a second, raw connection ------------------------------------------------------ */

static long long raw_int(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	long long v = -1;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK) {
		sqlite3_busy_timeout(db, 5000);
		if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
		    sqlite3_step(st) == SQLITE_ROW)
			v = sqlite3_column_int64(st, 0);
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static const char *raw_text(const char *path, const char *sql, char *buf, size_t len)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;

	buf[0] = '\0';
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK) {
		sqlite3_busy_timeout(db, 5000);
		if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
		    sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
			snprintf(buf, len, "%s", (const char *)sqlite3_column_text(st, 0));
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return buf;
}

static int raw_exec(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);

	if (rc == SQLITE_OK) {
		sqlite3_busy_timeout(db, 5000);
		rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	}
	sqlite3_close(db);
	return rc;
}

static struct store *open_ok(const char *path, const struct store_clock *now)
{
	struct store *s = NULL;
	const char *why = NULL;
	int ret = store_open(path, now, &s, &why);

	if (ret)
		fprintf(stderr, "store_open %s: %d %s\n", path, ret, why ? why : "?");
	CHECK_EQ(ret, 0);
	return s;
}

/* ---- sent rows ---------------------------------------------------------------------- */

#define MAX_SEEN 16

struct sent_seen {
	int n;
	struct store_sent e[MAX_SEEN];
};

static int collect_sent(void *ctx, const struct store_sent *e)
{
	struct sent_seen *v = ctx;

	if (v->n < MAX_SEEN)
		v->e[v->n] = *e;
	v->n++;
	return 0;
}

/* The sent row of message n to node, by walking store_sent_foreach; false if none. */
static bool sent_of(struct store *s, uint32_t n, uint64_t node, struct store_sent *out)
{
	struct sent_seen v = {0};
	uint8_t msg[16];

	msg_of(msg, n);
	if (store_sent_foreach(s, collect_sent, &v) != 0)
		return false;
	for (int i = 0; i < v.n && i < MAX_SEEN; i++) {
		if (memcmp(v.e[i].msg_id, msg, 16) == 0 && v.e[i].to_node == node) {
			*out = v.e[i];
			return true;
		}
	}
	return false;
}

static int count_sent(void *ctx, const struct store_sent *e)
{
	(*(long *)ctx)++;
	return 0;
}

/* ---- tests --------------------------------------------------------------------------- */

/*
 * A store made by the v1 code (migration 1 only, as released) keeps every row when
 * this tern migrates it to v2, and the new columns and tables start empty.
 */
static void test_migration_from_v1(void)
{
	const char *path = tpath("v1.db");
	struct store_clock c = clk(1, 1000), later = clk(1, 61000);
	struct store_contact ct = {.name = "alice", .epoch = 3, .node = 42, .added_unix_ms = 5};
	struct store_peer p = {.name = "hub", .node = 77, .links = STORE_LINK_SNEAKERNET};
	struct store_bundle b;
	struct store *s;
	uint8_t id[32], head[64];
	size_t headlen = 0;
	char v[64];
	long n = 0;

	store_testing_schema_cap(1);
	s = open_ok(path, &c);
	store_testing_schema_cap(0);
	if (!s)
		return;
	CHECK_EQ(store_schema_version(s), 1);
	memset(ct.sign_pk, 1, 32);
	memset(ct.box_pk, 2, 32);
	memset(ct.cert, 3, 64);
	CHECK_EQ(store_contact_add(s, &ct), 0);
	CHECK_EQ(store_setting_set(s, "node.name", "field-7"), 0);
	/* The v1 writer: no sent rows (that table does not exist yet). */
	CHECK_EQ(put_to(s, &c, 1, 70000, 9, NULL, 0), 0);
	CHECK_EQ(put_to(s, &c, 2, 10, 9, NULL, 0), 0);
	store_close(s);
	CHECK_EQ(raw_int(path, "PRAGMA user_version"), 1);
	CHECK_EQ(raw_int(path, "SELECT count(*) FROM sqlite_schema WHERE name IN "
			       "('peers', 'routes', 'sent')"),
		 0);
	CHECK_EQ(raw_int(path, "SELECT count(*) FROM chunks"), 3);

	/* This tern opens it: migrations 2 to 7 run once, everything is still there. */
	s = open_ok(path, &later);
	if (!s)
		return;
	CHECK_EQ(store_schema_version(s), 7);
	CHECK_EQ(raw_int(path, "PRAGMA user_version"), 7);
	CHECK(strcmp(raw_text(path, "PRAGMA integrity_check", v, sizeof(v)), "ok") == 0);
	CHECK_EQ(raw_int(path, "SELECT count(*) FROM pragma_foreign_key_check"), 0);
	memset(&ct, 0, sizeof(ct));
	CHECK_EQ(store_contact_get(s, "alice", &ct), 0);
	CHECK_EQ(ct.node, 42);
	CHECK_EQ(ct.epoch, 3);
	CHECK_EQ(store_setting_get(s, "node.name", v, sizeof(v)), 0);
	CHECK(strcmp(v, "field-7") == 0);
	id_of(id, 1);
	CHECK_EQ(store_bundle_get(s, id, &later, &b, head, sizeof(head), &headlen), 0);
	CHECK_EQ(b.state, STORE_QUEUED);
	CHECK_EQ(b.dest_node, 9);
	CHECK_EQ(b.payload_len, 70000);
	CHECK_EQ(b.export_count, 0);
	CHECK_EQ(b.last_export_unix_ms, 0);
	CHECK_EQ(b.age_now_ms, 60000); /* the residence clock carried over */
	CHECK_EQ(headlen, 24);
	CHECK_EQ(head[0], 0x40 ^ 1);
	CHECK(payload_matches(s, 1, 70000));
	CHECK(payload_matches(s, 2, 10));
	/* The new tables work on the migrated file. */
	CHECK_EQ(store_sent_foreach(s, count_sent, &n), 0);
	CHECK_EQ(n, 0);
	memset(p.sign_pk, 1, 32); /* alice's identity, as a peer too */
	CHECK_EQ(store_peer_add(s, &p), 0);
	CHECK_EQ(store_route_set(s, STORE_ROUTE_DEFAULT, 77), 0);
	CHECK_EQ(store_bundle_mark_exported(s, id, 7, 123), 0);
	CHECK_EQ(put(s, &later, 3, 100), 0);
	store_close(s);

	/* Opening again changes nothing. */
	s = open_ok(path, &later);
	if (!s)
		return;
	CHECK_EQ(store_schema_version(s), 7);
	CHECK_EQ(store_bundle_get(s, id, &later, &b, NULL, 0, NULL), 0);
	CHECK_EQ(b.export_count, 1);
	CHECK_EQ(raw_int(path, "SELECT count(*) FROM bundles"), 3);
	CHECK_EQ(raw_int(path, "SELECT count(*) FROM sent"), 1);
	store_close(s);
}

static struct store_peer peer(const char *name, uint8_t key, uint64_t node, unsigned links,
			      const char *addr, uint32_t epoch, uint8_t box)
{
	struct store_peer p = {.epoch = epoch, .node = node, .links = links, .added_unix_ms = 11};

	snprintf(p.name, sizeof(p.name), "%s", name);
	snprintf(p.addr, sizeof(p.addr), "%s", addr);
	memset(p.sign_pk, key, 32);
	memset(p.box_pk, box, 32);
	memset(p.cert, box, 64);
	return p;
}

struct names {
	int n;
	char name[8][STORE_NAME_MAX + 1];
};

static int collect_peer(void *ctx, const struct store_peer *p)
{
	struct names *v = ctx;

	if (v->n < 8)
		snprintf(v->name[v->n], sizeof(v->name[0]), "%s", p->name);
	v->n++;
	return 0;
}

static void test_peers(void)
{
	const char *path = tpath("peers.db");
	struct store_clock c = clk(1, 1000);
	struct store *s = open_ok(path, &c);
	struct store_peer p, got;
	struct store_contact ct = {.name = "hub", .node = 5000};
	struct names v = {0};
	uint8_t key[32];
	uint64_t via = 0;

	if (!s)
		return;
	p = peer("hub", 1, 5000, STORE_LINK_SNEAKERNET, "", 1, 0x11);
	CHECK_EQ(store_peer_add(s, &p), 0);
	p = peer("pi", 2, 6000, STORE_LINK_TCP | STORE_LINK_SERIAL, "10.0.0.2:4556", 1, 0x22);
	CHECK_EQ(store_peer_add(s, &p), 0);
	p = peer("alpha", 3, UINT64_MAX - 1, STORE_LINK_TCP, "ion.example:4556", 1, 0x33);
	CHECK_EQ(store_peer_add(s, &p), 0);

	CHECK_EQ(store_peer_get(s, "pi", &got), 0);
	CHECK(strcmp(got.name, "pi") == 0);
	CHECK_EQ(got.node, 6000);
	CHECK_EQ(got.links, STORE_LINK_TCP | STORE_LINK_SERIAL);
	CHECK(strcmp(got.addr, "10.0.0.2:4556") == 0);
	CHECK_EQ(got.box_pk[31], 0x22);
	CHECK_EQ(got.cert[63], 0x22);
	CHECK_EQ(got.epoch, 1);
	CHECK_EQ(got.added_unix_ms, 11);
	memset(key, 1, 32);
	CHECK_EQ(store_peer_by_key(s, key, &got), 0);
	CHECK(strcmp(got.name, "hub") == 0);
	CHECK_EQ(got.addr[0], '\0');
	/* A node number above 2^63 is stored and found bit for bit. */
	CHECK_EQ(store_peer_by_node(s, UINT64_MAX - 1, &got), 0);
	CHECK(strcmp(got.name, "alpha") == 0);
	CHECK_EQ(got.node, UINT64_MAX - 1);
	CHECK_EQ(store_peer_by_node(s, 6000, &got), 0);
	CHECK(strcmp(got.name, "pi") == 0);
	CHECK_EQ(store_peer_by_node(s, 6001, &got), -ENOENT);
	CHECK_EQ(store_peer_get(s, "nobody", &got), -ENOENT);
	memset(key, 9, 32);
	CHECK_EQ(store_peer_by_key(s, key, &got), -ENOENT);

	/* The same identity may be a contact too: separate tables. */
	memset(ct.sign_pk, 1, 32);
	CHECK_EQ(store_contact_add(s, &ct), 0);

	/* -EEXIST: name taken by another key; key under another name; node of another peer. */
	p = peer("hub", 4, 7000, STORE_LINK_TCP, "", 1, 0x44);
	CHECK_EQ(store_peer_add(s, &p), -EEXIST);
	p = peer("hub2", 1, 5000, STORE_LINK_TCP, "", 1, 0x44);
	CHECK_EQ(store_peer_add(s, &p), -EEXIST);
	CHECK(strstr(store_errmsg(s), "hub") != NULL);
	p = peer("other", 5, 6000, STORE_LINK_TCP, "", 1, 0x55);
	CHECK_EQ(store_peer_add(s, &p), -EEXIST);
	CHECK(strstr(store_errmsg(s), "pi") != NULL);
	CHECK_EQ(raw_int(path, "SELECT count(*) FROM peers"), 3);
	CHECK_EQ(store_peer_get(s, "hub", &got), 0);
	CHECK_EQ(got.links, STORE_LINK_SNEAKERNET);

	/* Same name and key: links and address follow; the key only with a newer epoch. */
	p = peer("hub", 1, 5000, STORE_LINK_SNEAKERNET | STORE_LINK_TCP, "hub.example:4556", 0,
		 0x66);
	CHECK_EQ(store_peer_add(s, &p), 0);
	CHECK_EQ(store_peer_get(s, "hub", &got), 0);
	CHECK_EQ(got.links, STORE_LINK_SNEAKERNET | STORE_LINK_TCP);
	CHECK(strcmp(got.addr, "hub.example:4556") == 0);
	CHECK_EQ(got.epoch, 1);
	CHECK_EQ(got.box_pk[0], 0x11); /* older epoch: key kept */
	p = peer("hub", 1, 5000, STORE_LINK_SNEAKERNET, "", 2, 0x77);
	CHECK_EQ(store_peer_add(s, &p), 0);
	CHECK_EQ(store_peer_get(s, "hub", &got), 0);
	CHECK_EQ(got.epoch, 2);
	CHECK_EQ(got.box_pk[0], 0x77);
	CHECK_EQ(got.cert[0], 0x77);
	CHECK_EQ(got.links, STORE_LINK_SNEAKERNET);
	CHECK_EQ(got.addr[0], '\0');

	/* Bad input. */
	p = peer("", 6, 8000, 0, "", 1, 0);
	CHECK_EQ(store_peer_add(s, &p), -EINVAL);
	p = peer("x", 6, 8000, 8, "", 1, 0);
	CHECK_EQ(store_peer_add(s, &p), -EINVAL);
	p = peer("x", 6, 8000, 0, "", 1, 0);
	memset(p.addr, 'a', sizeof(p.addr));
	CHECK_EQ(store_peer_add(s, &p), -EINVAL);
	memset(p.name, 'n', sizeof(p.name));
	p.addr[0] = '\0';
	CHECK_EQ(store_peer_add(s, &p), -EINVAL);
	CHECK_EQ(raw_int(path, "SELECT count(*) FROM peers"), 3);

	/* Name order. */
	CHECK_EQ(store_peer_foreach(s, collect_peer, &v), 0);
	CHECK_EQ(v.n, 3);
	CHECK(strcmp(v.name[0], "alpha") == 0);
	CHECK(strcmp(v.name[1], "hub") == 0);
	CHECK(strcmp(v.name[2], "pi") == 0);

	/* Removing a peer leaves its routes; its name, key and node are free again. */
	CHECK_EQ(store_route_set(s, 9999, 6000), 0);
	CHECK_EQ(store_peer_remove(s, "pi"), 0);
	CHECK_EQ(store_peer_remove(s, "pi"), -ENOENT);
	CHECK_EQ(store_peer_get(s, "pi", &got), -ENOENT);
	CHECK_EQ(store_route_get(s, 9999, &via), 0);
	CHECK_EQ(via, 6000);
	p = peer("other", 5, 6000, STORE_LINK_TCP, "", 1, 0x55);
	CHECK_EQ(store_peer_add(s, &p), 0);
	CHECK_EQ(store_contact_get(s, "hub", NULL), 0);
	store_close(s);

	/* Durable. */
	s = open_ok(path, &c);
	if (!s)
		return;
	v.n = 0;
	CHECK_EQ(store_peer_foreach(s, collect_peer, &v), 0);
	CHECK_EQ(v.n, 3);
	CHECK_EQ(store_peer_get(s, "hub", &got), 0);
	CHECK_EQ(got.box_pk[0], 0x77);
	store_close(s);
}

struct routes_seen {
	int n;
	struct store_route r[8];
};

static int collect_route(void *ctx, const struct store_route *r)
{
	struct routes_seen *v = ctx;

	if (v->n < 8)
		v->r[v->n] = *r;
	v->n++;
	return 0;
}

static int stop_route(void *ctx, const struct store_route *r)
{
	(*(int *)ctx)++;
	return 42;
}

static void test_routes(void)
{
	const char *path = tpath("routes.db");
	struct store_clock c = clk(1, 1000);
	struct store *s = open_ok(path, &c);
	struct routes_seen v = {0};
	uint64_t via = 0;
	int calls = 0;

	if (!s)
		return;
	CHECK_EQ(store_route_get(s, STORE_ROUTE_DEFAULT, &via), -ENOENT);
	CHECK_EQ(store_route_set(s, 20000000, 16777300), 0);
	CHECK_EQ(store_route_get(s, 20000000, &via), 0);
	CHECK_EQ(via, 16777300);
	/* Replace. */
	CHECK_EQ(store_route_set(s, 20000000, 16777400), 0);
	CHECK_EQ(store_route_get(s, 20000000, &via), 0);
	CHECK_EQ(via, 16777400);
	CHECK_EQ(raw_int(path, "SELECT count(*) FROM routes"), 1);
	/* Exact match only: no default yet, and another dest does not match. */
	CHECK_EQ(store_route_get(s, 20000001, &via), -ENOENT);
	/* The default route. */
	CHECK_EQ(store_route_set(s, STORE_ROUTE_DEFAULT, 16777500), 0);
	CHECK_EQ(store_route_get(s, STORE_ROUTE_DEFAULT, &via), 0);
	CHECK_EQ(via, 16777500);
	CHECK_EQ(store_route_get(s, 20000001, &via), -ENOENT);
	/* Node numbers above 2^63 both ways, and the top of the signed range. */
	CHECK_EQ(store_route_set(s, UINT64_MAX, UINT64_MAX - 5), 0);
	CHECK_EQ(store_route_set(s, (uint64_t)INT64_MAX, 3), 0);
	CHECK_EQ(store_route_set(s, 1ull << 63, 4), 0);
	CHECK_EQ(store_route_get(s, UINT64_MAX, &via), 0);
	CHECK_EQ(via, UINT64_MAX - 5);
	CHECK_EQ(store_route_set(s, 5, 0), -EINVAL);

	/* Unsigned order, the default first. */
	CHECK_EQ(store_route_foreach(s, collect_route, &v), 0);
	CHECK_EQ(v.n, 5);
	CHECK_EQ(v.r[0].dest, STORE_ROUTE_DEFAULT);
	CHECK_EQ(v.r[0].via, 16777500);
	CHECK_EQ(v.r[1].dest, 20000000);
	CHECK(v.r[2].dest == (uint64_t)INT64_MAX);
	CHECK(v.r[3].dest == 1ull << 63);
	CHECK(v.r[4].dest == UINT64_MAX);
	CHECK(v.r[4].via == UINT64_MAX - 5);
	CHECK_EQ(store_route_foreach(s, stop_route, &calls), 42);
	CHECK_EQ(calls, 1);

	/* Remove. */
	CHECK_EQ(store_route_remove(s, 20000000), 0);
	CHECK_EQ(store_route_remove(s, 20000000), -ENOENT);
	CHECK_EQ(store_route_get(s, 20000000, &via), -ENOENT);
	CHECK_EQ(store_route_remove(s, STORE_ROUTE_DEFAULT), 0);
	CHECK_EQ(store_route_get(s, STORE_ROUTE_DEFAULT, &via), -ENOENT);
	store_close(s);

	s = open_ok(path, &c);
	if (!s)
		return;
	v.n = 0;
	CHECK_EQ(store_route_foreach(s, collect_route, &v), 0);
	CHECK_EQ(v.n, 3);
	CHECK(v.r[0].dest == (uint64_t)INT64_MAX);
	store_close(s);
}

/* Sent rows come and go with their bundle's transaction, never alone. */
static void test_sent_atomic(void)
{
	const char *path = tpath("sent.db");
	struct store_clock c = clk(1, 1000), c2 = clk(1, 5000);
	struct store *s = open_ok(path, &c);
	struct store_writer *w = NULL;
	struct store_sent e;
	struct sent_seen v = {0};
	uint8_t msg[16], id[32];
	uint64_t nodes[2] = {100, 200};

	if (!s)
		return;
	/* Abort: no bundle, no sent row. */
	msg_of(msg, 1);
	CHECK_EQ(store_writer_begin(s, &c, &w), 0);
	CHECK_EQ(store_writer_append(w, (const uint8_t *)"abc", 3), 0);
	CHECK_EQ(store_writer_add_sent(w, msg, 100), 0);
	store_writer_abort(w);
	CHECK_EQ(raw_int(path, "SELECT count(*) FROM sent"), 0);
	CHECK_EQ(raw_int(path, "SELECT count(*) FROM bundles"), 0);

	/* Commit: the row has the committed bundle's id and the writer's begin time. */
	CHECK_EQ(put_to(s, &c, 1, 300, 100, nodes, 1), 0);
	CHECK_EQ(raw_int(path, "SELECT count(*) FROM sent"), 1);
	CHECK(sent_of(s, 1, 100, &e));
	id_of(id, 1);
	CHECK_MEM(e.bundle_id, id, 32);
	CHECK_MEM(e.msg_id, msg, 16);
	CHECK_EQ(e.state, STORE_SENT_QUEUED);
	CHECK_EQ(e.created_unix_ms, c.unix_ms);
	CHECK_EQ(e.changed_unix_ms, c.unix_ms);

	/* A duplicate bundle: -EEXIST, and its sent rows go with it. */
	CHECK_EQ(put_to(s, &c2, 1, 300, 100, &nodes[1], 1), -EEXIST);
	CHECK(!sent_of(s, 1, 200, &e));
	CHECK_EQ(raw_int(path, "SELECT count(*) FROM sent"), 1);

	/* The same message to the same node in a new bundle: -EEXIST, the bundle is not stored. */
	{
		struct store_bundle b = {.state = STORE_QUEUED, .payload_len = 0};

		CHECK_EQ(store_writer_begin(s, &c2, &w), 0);
		CHECK_EQ(store_writer_add_sent(w, msg, 100), 0);
		id_of(b.id, 77);
		CHECK_EQ(store_writer_commit(w, &b, NULL, 0, NULL), -EEXIST);
		CHECK(!has_bundle(s, 77));
		CHECK(strstr(store_errmsg(s), "already sent") != NULL);
	}

	/* One bundle for two nodes: two rows. Newest first. */
	CHECK_EQ(put_to(s, &c2, 2, 10, 0, nodes, 2), 0);
	CHECK_EQ(put_to(s, &c2, 3, 10, 100, nodes, 1), 0);
	CHECK_EQ(store_sent_foreach(s, collect_sent, &v), 0);
	CHECK_EQ(v.n, 4);
	CHECK_EQ(v.e[0].msg_id[3], 3);
	CHECK_EQ(v.e[1].msg_id[3], 2);
	CHECK_EQ(v.e[1].to_node, 200);
	CHECK_EQ(v.e[2].msg_id[3], 2);
	CHECK_EQ(v.e[2].to_node, 100);
	CHECK_EQ(v.e[3].msg_id[3], 1);
	CHECK_EQ(v.e[1].created_unix_ms, c2.unix_ms);

	/* A writer orphaned by close takes no sent row; after an error the writer is done. */
	CHECK_EQ(store_writer_begin(s, &c, &w), 0);
	store_close(s);
	CHECK_EQ(store_writer_add_sent(w, msg, 5), -EINVAL);
	store_writer_abort(w);
	CHECK_EQ(store_writer_add_sent(NULL, msg, 5), -EINVAL);

	s = open_ok(path, &c);
	if (!s)
		return;
	v.n = 0;
	CHECK_EQ(store_sent_foreach(s, collect_sent, &v), 0);
	CHECK_EQ(v.n, 4);
	store_close(s);
}

static void test_delivered(void)
{
	const char *path = tpath("delivered.db");
	struct store_clock c = clk(1, 1000);
	struct store *s = open_ok(path, &c);
	struct store_sent e;
	uint8_t msg[16];
	uint64_t nodes[2] = {100, 200}, dropped = 99;

	if (!s)
		return;
	CHECK_EQ(put_to(s, &c, 1, 200000, 100, nodes, 1), 0); /* 4 chunks */
	CHECK_EQ(put_to(s, &c, 2, 100, 100, nodes, 1), 0);
	CHECK_EQ(raw_int(path, "SELECT count(*) FROM chunks"), 5);

	/* The receipt for message 1: its queued bundle is dropped, chunks and all. */
	msg_of(msg, 1);
	CHECK_EQ(store_sent_delivered(s, msg, 100, 1700000999000ull, &dropped), 0);
	CHECK_EQ(dropped, 1);
	CHECK(!has_bundle(s, 1));
	CHECK(has_bundle(s, 2));
	CHECK_EQ(raw_int(path, "SELECT count(*) FROM chunks"), 1);
	CHECK(sent_of(s, 1, 100, &e));
	CHECK_EQ(e.state, STORE_SENT_DELIVERED);
	CHECK_EQ(e.changed_unix_ms, 1700000999000ull);
	CHECK_EQ(e.created_unix_ms, c.unix_ms);

	/* Idempotent: nothing changes, not even the time. */
	dropped = 99;
	CHECK_EQ(store_sent_delivered(s, msg, 100, 1700000999999ull, &dropped), 0);
	CHECK_EQ(dropped, 0);
	CHECK(sent_of(s, 1, 100, &e));
	CHECK_EQ(e.state, STORE_SENT_DELIVERED);
	CHECK_EQ(e.changed_unix_ms, 1700000999000ull);
	CHECK_EQ(store_sent_delivered(s, msg, 100, 1, NULL), 0);

	/* A receipt for something never sent (or for another node). */
	CHECK_EQ(store_sent_delivered(s, msg, 200, 1, &dropped), -ENOENT);
	CHECK_EQ(dropped, 0);
	msg_of(msg, 9);
	CHECK_EQ(store_sent_delivered(s, msg, 100, 1, &dropped), -ENOENT);
	CHECK(strstr(store_errmsg(s), "no message") != NULL);

	/* One bundle for two nodes stays until the last of them confirmed. */
	CHECK_EQ(put_to(s, &c, 3, 10, 0, nodes, 2), 0);
	msg_of(msg, 3);
	CHECK_EQ(store_sent_delivered(s, msg, 200, 5, &dropped), 0);
	CHECK_EQ(dropped, 0);
	CHECK(has_bundle(s, 3));
	CHECK_EQ(store_sent_delivered(s, msg, 100, 6, &dropped), 0);
	CHECK_EQ(dropped, 1);
	CHECK(!has_bundle(s, 3));

	/* A bundle that is not queued (here: quarantined) is not dropped. */
	CHECK_EQ(put_to(s, &c, 4, 10, 100, nodes, 1), 0);
	CHECK_EQ(raw_exec(path, "UPDATE bundles SET state = 3 WHERE dest_node = 100 AND "
				"payload_len = 10"),
		 SQLITE_OK);
	msg_of(msg, 4);
	CHECK_EQ(store_sent_delivered(s, msg, 100, 7, &dropped), 0);
	CHECK_EQ(dropped, 0);
	CHECK(has_bundle(s, 4));
	store_close(s);

	s = open_ok(path, &c);
	if (!s)
		return;
	CHECK(sent_of(s, 1, 100, &e));
	CHECK_EQ(e.state, STORE_SENT_DELIVERED);
	CHECK(!has_bundle(s, 1));
	store_close(s);
}

static void test_custody(void)
{
	const char *path = tpath("custody.db");
	struct store_clock c = clk(1, 1000), c2 = clk(1, 2000);
	struct store *s = open_ok(path, &c);
	struct store_bundle b;
	struct store_sent e;
	uint8_t id[32], msg[16];
	uint64_t nodes[2] = {100, 200}, released = 99, dropped;

	if (!s)
		return;
	CHECK_EQ(put_to(s, &c, 1, 140000, 100, nodes, 1), 0); /* 3 chunks */
	CHECK_EQ(put_to(s, &c, 2, 10, 100, nodes, 1), 0);
	CHECK_EQ(put_to(s, &c, 3, 10, 0, nodes, 2), 0);

	/* Exported twice: counted, the bundle stays queued. */
	id_of(id, 1);
	CHECK_EQ(store_bundle_mark_exported(s, id, 5000, 1700000100000ull), 0);
	CHECK_EQ(store_bundle_mark_exported(s, id, 5000, 1700000200000ull), 0);
	CHECK_EQ(store_bundle_get(s, id, &c, &b, NULL, 0, NULL), 0);
	CHECK_EQ(b.export_count, 2);
	CHECK_EQ(b.last_export_unix_ms, 1700000200000ull);
	CHECK_EQ(b.state, STORE_QUEUED);
	id_of(id, 9);
	CHECK_EQ(store_bundle_mark_exported(s, id, 5000, 1), -ENOENT);

	/* A receipt from a peer it was not handed to: nothing changes. */
	store_bundle_get(s, id, &c2, NULL, NULL, 0, NULL); /* the store sees c2's wall clock */
	id_of(id, 1);
	CHECK_EQ(store_bundle_release(s, id, 6000, &released), 0);
	CHECK_EQ(released, 0);
	CHECK(has_bundle(s, 1));
	CHECK(sent_of(s, 1, 100, &e));
	CHECK_EQ(e.state, STORE_SENT_QUEUED);
	/* The next hop's receipt: bundle and chunks gone, the sent row handed over. */
	CHECK_EQ(store_bundle_release(s, id, 5000, &released), 0);
	CHECK_EQ(released, 1);
	CHECK(!has_bundle(s, 1));
	CHECK_EQ(raw_int(path, "SELECT count(*) FROM chunks"), 2);
	CHECK(sent_of(s, 1, 100, &e));
	CHECK_EQ(e.state, STORE_SENT_HANDED_OVER);
	CHECK_EQ(e.changed_unix_ms, c2.unix_ms);

	/* Again, or an id never seen: not an error, nothing released. */
	released = 99;
	CHECK_EQ(store_bundle_release(s, id, 5000, &released), 0);
	CHECK_EQ(released, 0);
	CHECK(sent_of(s, 1, 100, &e));
	CHECK_EQ(e.state, STORE_SENT_HANDED_OVER);
	id_of(id, 9);
	CHECK_EQ(store_bundle_release(s, id, 5000, &released), 0);
	CHECK_EQ(released, 0);
	CHECK_EQ(store_bundle_release(s, id, 5000, NULL), 0);

	/* The delivery receipt after custody: DELIVERED, nothing left to drop. */
	msg_of(msg, 1);
	CHECK_EQ(store_sent_delivered(s, msg, 100, 3, &dropped), 0);
	CHECK_EQ(dropped, 0);
	CHECK(sent_of(s, 1, 100, &e));
	CHECK_EQ(e.state, STORE_SENT_DELIVERED);

	/* Delivered first, then a late custody receipt: stays DELIVERED. */
	msg_of(msg, 3);
	CHECK_EQ(store_sent_delivered(s, msg, 200, 4, &dropped), 0);
	CHECK_EQ(dropped, 0); /* node 100 still waits on it */
	id_of(id, 3);
	CHECK_EQ(store_bundle_mark_exported(s, id, 5000, 5), 0);
	CHECK_EQ(store_bundle_release(s, id, 5000, &released), 0);
	CHECK_EQ(released, 1);
	CHECK(sent_of(s, 3, 200, &e));
	CHECK_EQ(e.state, STORE_SENT_DELIVERED);
	CHECK(sent_of(s, 3, 100, &e));
	CHECK_EQ(e.state, STORE_SENT_HANDED_OVER);

	/* Only a queued bundle is released: a delivered (inbox) one stays. */
	CHECK_EQ(raw_exec(path, "UPDATE bundles SET state = 2"), SQLITE_OK);
	id_of(id, 2);
	CHECK_EQ(store_bundle_mark_exported(s, id, 5000, 6), 0);
	CHECK_EQ(store_bundle_release(s, id, 5000, &released), 0);
	CHECK_EQ(released, 0);
	CHECK(has_bundle(s, 2));
	store_close(s);

	s = open_ok(path, &c);
	if (!s)
		return;
	CHECK(!has_bundle(s, 1));
	CHECK(sent_of(s, 3, 100, &e));
	CHECK_EQ(e.state, STORE_SENT_HANDED_OVER);
	store_close(s);
}

struct bundles_seen {
	int n;
	uint8_t first[32];
	size_t headlen;
};

static int collect_bundle(void *ctx, const struct store_bundle *b, const uint8_t *head,
			  size_t headlen)
{
	struct bundles_seen *v = ctx;

	if (v->n == 0) {
		memcpy(v->first, b->id, 32);
		v->headlen = headlen;
	}
	v->n++;
	return 0;
}

/* store_bundle_foreach lists quarantined bundles, and nothing else with that state. */
/* Flooding's memory: who holds a copy, kept with the bundle and gone with it. */
static void test_holders(void)
{
	const char *path = tpath("holders.db");
	struct store_clock c = clk(1, 1000);
	struct store *s = open_ok(path, &c);
	struct store_bundle b;
	uint8_t id[32];
	uint64_t nodes[1] = {100};

	if (!s)
		return;
	CHECK_EQ(put_to(s, &c, 1, 10, 100, nodes, 1), 0);
	CHECK_EQ(put_to(s, &c, 2, 10, 100, nodes, 1), 0);
	id_of(id, 1);
	CHECK_EQ(store_bundle_get(s, id, &c, &b, NULL, 0, NULL), 0);
	CHECK(!store_bundle_held_by(s, b.rowid, 5000));
	CHECK_EQ(store_bundle_add_holder(s, id, 5000), 0);
	CHECK_EQ(store_bundle_add_holder(s, id, 5000), 0); /* idempotent */
	CHECK(store_bundle_held_by(s, b.rowid, 5000));
	CHECK(!store_bundle_held_by(s, b.rowid, 6000)); /* per peer */
	CHECK(has_bundle(s, 1));			/* a holder releases nothing */
	/* Node numbers are kept bit for bit, the top bit too. */
	CHECK_EQ(store_bundle_add_holder(s, id, UINT64_MAX), 0);
	CHECK(store_bundle_held_by(s, b.rowid, UINT64_MAX));
	id_of(id, 9);
	CHECK_EQ(store_bundle_add_holder(s, id, 5000), 0); /* an unknown id: nothing, no error */
	CHECK_EQ(raw_int(path, "SELECT count(*) FROM holders"), 2);

	/* The bundle goes (custody, expiry): its holders with it. */
	id_of(id, 1);
	CHECK_EQ(store_bundle_mark_exported(s, id, 5000, 1), 0);
	CHECK_EQ(store_bundle_release(s, id, 5000, NULL), 0);
	CHECK(!has_bundle(s, 1));
	CHECK_EQ(raw_int(path, "SELECT count(*) FROM holders"), 0);
	CHECK(!store_bundle_held_by(s, b.rowid, 5000));
	store_close(s);
}

static void test_quarantine_listing(void)
{
	const char *path = tpath("qlist.db");
	struct store_clock c = clk(1, 1000);
	struct store *s = open_ok(path, &c);
	struct bundles_seen v = {0};
	uint64_t released = 9;
	uint8_t id[32];

	if (!s)
		return;
	CHECK_EQ(put(s, &c, 1, 10), 0);
	CHECK_EQ(put(s, &c, 2, 10), 0);
	CHECK_EQ(store_bundle_foreach(s, STORE_QUARANTINED, &c, collect_bundle, &v), 0);
	CHECK_EQ(v.n, 0);
	/* Rot in bundle 2's head: found by the queue walk, quarantined, then listed. */
	CHECK_EQ(raw_exec(path, "UPDATE bundles SET head = x'01' WHERE payload_len = 10 AND "
				"rowid = (SELECT max(rowid) FROM bundles)"),
		 SQLITE_OK);
	CHECK_EQ(store_bundle_foreach(s, STORE_QUEUED, &c, collect_bundle, &v), -EBADMSG);
	CHECK_EQ(v.n, 1);
	v.n = 0;
	CHECK_EQ(store_bundle_foreach(s, STORE_QUARANTINED, &c, collect_bundle, &v), 0);
	CHECK_EQ(v.n, 1);
	id_of(id, 2);
	CHECK_MEM(v.first, id, 32);
	CHECK_EQ(v.headlen, 1);
	/* Not released by a custody receipt (it waits for an operator). */
	CHECK_EQ(store_bundle_release(s, id, 5000, &released), 0);
	CHECK_EQ(released, 0);
	CHECK(has_bundle(s, 2));
	/* State 0 (a writer's placeholder) or nonsense: -EINVAL. */
	CHECK_EQ(store_bundle_foreach(s, (enum store_state)0, &c, collect_bundle, &v), -EINVAL);
	CHECK_EQ(store_bundle_foreach(s, (enum store_state)4, &c, collect_bundle, &v), -EINVAL);
	store_close(s);
}

/* ---- batches ---------------------------------------------------------------------- */

/* Sync counts at the moment the commit finished, before any checkpoint. */
struct commit_mark {
	int calls, syncs, syncs_wal, syncs_db;
};

/*
 * Stands in for SQLite's default WAL hook (sqlite3_wal_autocheckpoint): records
 * the fsyncs so far, then checkpoints past 1000 pages as the default would.
 */
static int wal_hook(void *ctx, sqlite3 *db, const char *name, int pages)
{
	struct commit_mark *m = ctx;

	m->calls++;
	m->syncs = syncs;
	m->syncs_wal = syncs_wal;
	m->syncs_db = syncs_db;
	if (pages >= 1000)
		sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	return SQLITE_OK;
}

static int settings_writes;

static void update_hook(void *ctx, int op, const char *dbname, const char *table,
			sqlite3_int64 rowid)
{
	if (strcmp(table, "settings") == 0)
		settings_writes++;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#define BATCH_N 10000

/*
 * 10,000 short bundles, each with its sent row, in one batch: no fsync while they
 * are written, one fsync of the WAL at the commit, one clock checkpoint; a
 * duplicate in the middle is skipped and the rest stays; nothing is visible to
 * another connection before the commit; everything survives a reopen.
 */
static void test_batch_10000(void)
{
	const char *path = tpath("batch.db");
	struct store_clock c = clk(1, 1000), last = clk(1, 1000 + BATCH_N);
	struct store *s = open_ok(path, &c);
	struct commit_mark m = {0};
	struct store_bundle b;
	char v[64];
	long n = 0;
	int dup = -1, ret, staged_syncs;
	double t0, t1, t2;
	uint8_t id[32];

	if (!s)
		return;
	sqlite3_wal_hook(store_sqlite(s), wal_hook, &m);
	sqlite3_update_hook(store_sqlite(s), update_hook, NULL);
	t0 = now_s();
	sync_reset();
	settings_writes = 0;
	CHECK_EQ(store_batch_begin(s), 0);
	for (uint32_t i = 0; i < BATCH_N; i++) {
		struct store_clock t = clk(1, 1000 + i + 1);

		ret = put(s, &t, i + 1, 200 + i % 300);
		if (ret)
			fprintf(stderr, "batch put %u: %d %s\n", i + 1, ret, store_errmsg(s));
		CHECK_EQ(ret, 0);
		if (i == BATCH_N / 2) {
			/* A bundle already in the batch: -EEXIST takes back this one only. */
			dup = put(s, &t, i + 1, 999);
		}
	}
	CHECK_EQ(dup, -EEXIST);
	staged_syncs = syncs;
	t1 = now_s();
	/* Not yet visible to anyone else, nor durable. */
	CHECK_EQ(raw_int(path, "SELECT count(*) FROM bundles"), 0);
	CHECK_EQ(store_batch_commit(s), 0);
	t2 = now_s();
	CHECK_EQ(staged_syncs, 0);
	CHECK_EQ(m.calls, 1); /* one commit */
	CHECK_EQ(m.syncs_wal, 1);
	CHECK_EQ(m.syncs_db, 0);
	CHECK_EQ(settings_writes, 1); /* the clock checkpoint, once */
	fprintf(stderr, "batch of %d: %.0f bundles/s staged, commit %.1f ms, %d fsyncs in all\n",
		BATCH_N, BATCH_N / (t1 - t0), (t2 - t1) * 1000, syncs);

	CHECK_EQ(raw_int(path, "SELECT count(*) FROM bundles"), BATCH_N);
	CHECK_EQ(raw_int(path, "SELECT count(*) FROM sent"), BATCH_N);
	CHECK_EQ(raw_int(path, "SELECT count(*) FROM chunks"), BATCH_N);
	CHECK_EQ(raw_int(path, "SELECT count(*) FROM bundles WHERE state = 0"), 0);
	/* The checkpoint is the latest clock a writer of the batch gave. */
	CHECK(strstr(raw_text(path, "SELECT value FROM settings WHERE key = 'store.clock'", v,
			      sizeof(v)),
		     " 11000") != NULL);
	CHECK(payload_matches(s, BATCH_N / 2 + 1, 200 + (BATCH_N / 2) % 300));
	sqlite3_wal_hook(store_sqlite(s), NULL, NULL);
	sqlite3_update_hook(store_sqlite(s), NULL, NULL);
	store_close(s);

	s = open_ok(path, &last);
	if (!s)
		return;
	CHECK_EQ(store_sent_foreach(s, count_sent, &n), 0);
	CHECK_EQ(n, BATCH_N);
	CHECK(payload_matches(s, 1, 200));
	CHECK(payload_matches(s, BATCH_N, 200 + (BATCH_N - 1) % 300));
	CHECK(payload_matches(s, BATCH_N / 2 + 1, 200 + (BATCH_N / 2) % 300));
	id_of(id, BATCH_N);
	CHECK_EQ(store_bundle_get(s, id, &last, &b, NULL, 0, NULL), 0);
	CHECK_EQ(b.state, STORE_QUEUED);
	store_close(s);
}

/* Everything a batch can hold, rolled back: the store is exactly as before. */
static void test_batch_abort(void)
{
	const char *path = tpath("batchabort.db");
	struct store_clock c = clk(1, 1000);
	struct store *s = open_ok(path, &c);
	struct store_peer p = peer("hub", 1, 5000, STORE_LINK_SNEAKERNET, "", 1, 1), got;
	struct store_contact ct = {.name = "bob", .node = 1};
	struct store_writer *w = NULL;
	struct store_bundle b;
	struct store_sent e;
	uint8_t id[32], msg[16];
	uint64_t via = 0, k = 0;
	char v[32];

	if (!s)
		return;
	/* Some state before the batch. */
	CHECK_EQ(put(s, &c, 1, 100), 0);
	CHECK_EQ(put(s, &c, 2, 100), 0);
	CHECK_EQ(store_setting_set(s, "a", "before"), 0);

	CHECK_EQ(store_batch_begin(s), 0);
	CHECK_EQ(put(s, &c, 3, 100), 0);
	CHECK_EQ(put(s, &c, 4, 70000), 0);
	CHECK(has_bundle(s, 3)); /* the batch sees its own writes */
	CHECK_EQ(store_peer_add(s, &p), 0);
	memset(ct.sign_pk, 2, 32);
	CHECK_EQ(store_contact_add(s, &ct), 0);
	CHECK_EQ(store_route_set(s, 0, 5000), 0);
	CHECK_EQ(store_setting_set(s, "a", "inside"), 0);
	id_of(id, 1);
	CHECK_EQ(store_bundle_mark_exported(s, id, 7, 5), 0);
	CHECK_EQ(store_bundle_release(s, id, 7, &k), 0);
	CHECK_EQ(k, 1);
	msg_of(msg, 2);
	CHECK_EQ(store_sent_delivered(s, msg, 1002, 6, &k), 0);
	CHECK_EQ(k, 1);
	CHECK(!has_bundle(s, 2));
	/* An open writer goes with the batch; the caller still aborts it. */
	CHECK_EQ(store_writer_begin(s, &c, &w), 0);
	CHECK_EQ(store_writer_append(w, (const uint8_t *)"xyz", 3), 0);
	store_batch_abort(s);
	CHECK_EQ(store_writer_append(w, (const uint8_t *)"xyz", 3), -EINVAL);
	id_of(b.id, 5);
	b.state = STORE_QUEUED;
	b.payload_len = 6;
	CHECK_EQ(store_writer_commit(w, &b, NULL, 0, NULL), -EINVAL);
	store_batch_abort(s); /* no batch: a no-op */
	store_batch_abort(NULL);

	CHECK_EQ(raw_int(path, "SELECT count(*) FROM bundles"), 2);
	CHECK_EQ(raw_int(path, "SELECT count(*) FROM chunks"), 2);
	CHECK_EQ(raw_int(path, "SELECT count(*) FROM sent"), 2);
	CHECK_EQ(raw_int(path, "SELECT count(*) FROM peers"), 0);
	CHECK_EQ(raw_int(path, "SELECT count(*) FROM contacts"), 0);
	CHECK_EQ(raw_int(path, "SELECT count(*) FROM routes"), 0);
	CHECK_EQ(raw_int(path, "SELECT sum(export_count) FROM bundles"), 0);
	CHECK(has_bundle(s, 1));
	CHECK(has_bundle(s, 2));
	CHECK(!has_bundle(s, 3));
	CHECK_EQ(store_peer_get(s, "hub", &got), -ENOENT);
	CHECK_EQ(store_route_get(s, 0, &via), -ENOENT);
	CHECK_EQ(store_setting_get(s, "a", v, sizeof(v)), 0);
	CHECK(strcmp(v, "before") == 0);
	CHECK(sent_of(s, 1, 1001, &e));
	CHECK_EQ(e.state, STORE_SENT_QUEUED);
	CHECK(sent_of(s, 2, 1002, &e));
	CHECK_EQ(e.state, STORE_SENT_QUEUED);

	/* The store goes on, outside a batch (durably) and in a new one. */
	CHECK_EQ(put(s, &c, 3, 100), 0);
	CHECK_EQ(store_batch_begin(s), 0);
	CHECK_EQ(put(s, &c, 4, 100), 0);
	CHECK_EQ(store_batch_commit(s), 0);
	CHECK_EQ(raw_int(path, "SELECT count(*) FROM bundles"), 4);

	/* Closing with a batch open rolls it back. */
	CHECK_EQ(store_batch_begin(s), 0);
	CHECK_EQ(put(s, &c, 5, 100), 0);
	CHECK_EQ(store_route_set(s, 0, 5000), 0);
	store_close(s);
	CHECK_EQ(raw_int(path, "SELECT count(*) FROM bundles"), 4);
	CHECK_EQ(raw_int(path, "SELECT count(*) FROM routes"), 0);
	s = open_ok(path, &c);
	CHECK(!has_bundle(s, 5));
	CHECK(has_bundle(s, 4));
	store_close(s);
}

/* The rules around a batch: one at a time, one writer at a time, units undo alone. */
static void test_batch_rules(void)
{
	const char *path = tpath("batchrules.db");
	struct store_clock c = clk(1, 1000);
	struct store *s = open_ok(path, &c);
	struct store_writer *w = NULL, *w2 = NULL;
	struct store_contact ct = {.name = "carol", .node = 1};
	struct store_peer p = peer("hub", 1, 5000, 0, "", 1, 1);
	struct store_bundle b = {.state = STORE_QUEUED, .lifetime_ms = 86400000};
	uint8_t msg[16];
	uint64_t k;

	if (!s)
		return;
	CHECK_EQ(store_batch_commit(s), -EINVAL); /* none open */
	CHECK_EQ(store_batch_begin(s), 0);
	CHECK_EQ(store_batch_begin(s), -EBUSY);

	/* One writer at a time; while it is open the other writes are -EBUSY. */
	CHECK_EQ(store_writer_begin(s, &c, &w), 0);
	CHECK_EQ(store_writer_begin(s, &c, &w2), -EBUSY);
	CHECK_EQ(store_setting_set(s, "a", "b"), -EBUSY);
	CHECK_EQ(store_route_set(s, 1, 2), -EBUSY);
	CHECK_EQ(store_batch_commit(s), -EBUSY); /* the batch stays open */
	CHECK_EQ(store_writer_append(w, (const uint8_t *)"abc", 3), 0);
	id_of(b.id, 1);
	b.payload_len = 3;
	CHECK_EQ(store_writer_commit(w, &b, NULL, 0, NULL), 0);

	/* A failed unit takes back itself only. */
	CHECK_EQ(store_peer_add(s, &p), 0);
	p.node = 6000;
	memset(p.sign_pk, 9, 32);
	CHECK_EQ(store_peer_add(s, &p), -EEXIST); /* name has another key */
	memset(ct.sign_pk, 3, 32);
	CHECK_EQ(store_contact_add(s, &ct), 0);
	CHECK_EQ(store_contact_remove(s, "nobody"), -ENOENT);
	msg_of(msg, 42);
	CHECK_EQ(store_sent_delivered(s, msg, 1, 1, &k), -ENOENT);
	b.payload_len = 4; /* a short write: -EINVAL, the bundle goes */
	CHECK_EQ(store_writer_begin(s, &c, &w), 0);
	CHECK_EQ(store_writer_append(w, (const uint8_t *)"abc", 3), 0);
	id_of(b.id, 2);
	CHECK_EQ(store_writer_commit(w, &b, NULL, 0, NULL), -EINVAL);
	CHECK_EQ(put(s, &c, 3, 10), 0);
	{
		uint64_t count = 9;

		CHECK_EQ(store_purge_expired(s, &c, &count), 0);
		CHECK_EQ(count, 0);
	}
	CHECK_EQ(store_batch_commit(s), 0);
	CHECK_EQ(store_batch_commit(s), -EINVAL);
	CHECK_EQ(raw_int(path, "SELECT count(*) FROM bundles"), 2);
	CHECK_EQ(raw_int(path, "SELECT count(*) FROM peers"), 1);
	CHECK_EQ(raw_int(path, "SELECT count(*) FROM contacts"), 1);
	CHECK(has_bundle(s, 1));
	CHECK(!has_bundle(s, 2));
	CHECK(has_bundle(s, 3));

	/* A batch can begin only without a writer open. */
	CHECK_EQ(store_writer_begin(s, &c, &w), 0);
	CHECK_EQ(store_batch_begin(s), -EBUSY);
	store_writer_abort(w);

	/* Another connection waits for the batch's write lock (here: gives up at once). */
	CHECK_EQ(store_batch_begin(s), 0);
	{
		sqlite3 *db = NULL;

		CHECK_EQ(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
		CHECK_EQ(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_BUSY);
		sqlite3_close(db);
	}
	CHECK_EQ(store_batch_commit(s), 0);
	CHECK_EQ(raw_exec(path, "BEGIN IMMEDIATE; COMMIT;"), SQLITE_OK);
	CHECK_EQ(store_batch_begin(NULL), -EINVAL);
	CHECK_EQ(store_batch_commit(NULL), -EINVAL);
	store_close(s);
}

/*
 * A full disk inside a batch. SQLite answers SQLITE_FULL on a one-row INSERT by
 * rolling back the whole transaction: the batch is lost, every later call in it
 * says so, the commit returns -ENOSPC (never 0, never -EEXIST), nothing of it is
 * stored, and the store goes on.
 */
static void test_batch_disk_full(void)
{
	const char *path = tpath("batchfull.db");
	struct store_clock c = clk(1, 1000);
	struct store *s = open_ok(path, &c);
	struct store_writer *w = NULL;
	static uint8_t buf[1 << 20];
	char sql[96];
	uint64_t via;
	int ret = 0;

	if (!s)
		return;
	CHECK_EQ(put(s, &c, 1, 100), 0);
	{
		sqlite3_stmt *st = NULL;
		long long pages = 0;

		if (sqlite3_prepare_v2(store_sqlite(s), "PRAGMA page_count", -1, &st, NULL) ==
			SQLITE_OK &&
		    sqlite3_step(st) == SQLITE_ROW)
			pages = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
		/* SQLite's own quota stands in for the disk: about 1 MiB more than now. */
		snprintf(sql, sizeof(sql), "PRAGMA max_page_count = %lld", pages + 256);
	}
	CHECK_EQ(sqlite3_exec(store_sqlite(s), sql, NULL, NULL, NULL), SQLITE_OK);

	CHECK_EQ(store_batch_begin(s), 0);
	CHECK_EQ(put(s, &c, 2, 100), 0);
	CHECK_EQ(store_route_set(s, 0, 7), 0);
	CHECK_EQ(store_writer_begin(s, &c, &w), 0);
	for (int i = 0; i < 4 && ret == 0; i++)
		ret = store_writer_append(w, buf, sizeof(buf));
	CHECK_EQ(ret, -ENOSPC);
	store_writer_abort(w);
	CHECK_EQ(
	    sqlite3_exec(store_sqlite(s), "PRAGMA max_page_count = 1073741823", NULL, NULL, NULL),
	    SQLITE_OK);
	/* The batch is gone: later units and the commit say so. */
	CHECK_EQ(put(s, &c, 3, 100), -ENOSPC);
	CHECK(strstr(store_errmsg(s), "batch") != NULL);
	CHECK_EQ(store_route_set(s, 5, 7), -ENOSPC);
	CHECK_EQ(store_batch_commit(s), -ENOSPC);
	CHECK_EQ(raw_int(path, "SELECT count(*) FROM bundles"), 1);
	CHECK_EQ(raw_int(path, "SELECT count(*) FROM routes"), 0);
	CHECK(!has_bundle(s, 2));
	CHECK_EQ(store_route_get(s, 0, &via), -ENOENT);

	/* The store goes on, in and out of batches. */
	CHECK_EQ(store_batch_commit(s), -EINVAL);
	CHECK_EQ(store_batch_begin(s), 0);
	CHECK_EQ(put(s, &c, 2, 100), 0);
	CHECK_EQ(store_batch_commit(s), 0);
	CHECK_EQ(put(s, &c, 3, 100), 0);
	CHECK_EQ(raw_int(path, "SELECT count(*) FROM bundles"), 3);
	store_close(s);
}

static int rm_entry(const char *p, const struct stat *sb, int type, struct FTW *ftw)
{
	return remove(p);
}

int main(void)
{
	const char *base = getenv("TMPDIR");

	snprintf(tmpdir, sizeof(tmpdir), "%s/tern-store2-XXXXXX", base && *base ? base : "/tmp");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	test_migration_from_v1();
	test_peers();
	test_routes();
	test_sent_atomic();
	test_delivered();
	test_custody();
	test_holders();
	test_quarantine_listing();
	test_batch_10000();
	test_batch_abort();
	test_batch_rules();
	test_batch_disk_full();
	nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	TEST_MAIN_END();
}
