/* Unit tests of store/: durability, chunking, dedupe, expiry across reboots, quarantine. */
#include <dlfcn.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Only to read pragmas and to corrupt a stored chunk from a second connection. */
#include <sqlite3.h>

#include "store/crc32c.h"
#include "store/store.h"
#include "store/store_testing.h"
#include "test.h"

#define MIB (1024 * 1024)

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

/* ---- fsync counting: the test binary's fsync/fdatasync shadow libc's ------------ */

static int syncs;

static int call_real(const char *name, int fd)
{
	int (*real)(int) = NULL;

	/* The POSIX way to turn dlsym's void * into a function pointer. */
	*(void **)(&real) = dlsym(RTLD_NEXT, name);
	return real ? real(fd) : 0;
}

int fdatasync(int fd)
{
	syncs++;
	return call_real("fdatasync", fd);
}

int fsync(int fd)
{
	syncs++;
	return call_real("fsync", fd);
}

/* ---- payloads: byte i of payload "seed" is a function of (i, seed) --------------- */

static uint8_t pat(uint64_t i, uint8_t seed)
{
	uint64_t x = (i + seed * 0x9e3779b97f4a7c15ull) * 0xff51afd7ed558ccdull;

	return (uint8_t)(x >> 56);
}

static void fill(uint8_t *buf, uint64_t off, size_t n, uint8_t seed)
{
	for (size_t i = 0; i < n; i++)
		buf[i] = pat(off + i, seed);
}

struct bspec {
	uint8_t seed; /* id is 32 bytes of seed */
	uint64_t size;
	size_t piece; /* append size */
	enum store_priority prio;
	enum store_state state;
	uint64_t lifetime, age;
	bool file; /* announce the size (store_writer_expect): a payload file if big enough */
};

static int put(struct store *s, const struct store_clock *now, const struct bspec *sp,
	       const struct store_inbox *inbox)
{
	struct store_writer *w = NULL;
	struct store_bundle b = {0};
	size_t piece = sp->piece ? sp->piece : 4096;
	uint8_t *buf = malloc(piece);
	uint8_t head[16];
	int ret;

	if (!buf)
		return -ENOMEM;
	ret = store_writer_begin(s, now, &w);
	if (ret)
		goto out;
	if (sp->file && (ret = store_writer_expect(w, sp->size)) != 0) {
		store_writer_abort(w);
		goto out;
	}
	for (uint64_t off = 0; off < sp->size; off += piece) {
		size_t n = sp->size - off < piece ? (size_t)(sp->size - off) : piece;

		fill(buf, off, n, sp->seed);
		ret = store_writer_append(w, buf, n);
		if (ret) {
			store_writer_abort(w);
			goto out;
		}
	}
	memset(b.id, sp->seed, 32);
	b.state = sp->state ? sp->state : STORE_QUEUED;
	b.dest_node = 7;
	b.priority = sp->prio;
	b.lifetime_ms = sp->lifetime ? sp->lifetime : 86400000;
	b.age_ms = sp->age;
	b.payload_len = sp->size;
	memset(head, 0xa0 ^ sp->seed, sizeof(head));
	ret = store_writer_commit(w, &b, head, sizeof(head), inbox);
out:
	free(buf);
	return ret;
}

static void id_of(uint8_t id[32], uint8_t seed)
{
	memset(id, seed, 32);
}

struct reader {
	uint8_t seed;
	uint64_t off;
	bool ok;
	size_t calls, max;
};

static int check_chunk(void *ctx, const uint8_t *buf, size_t len)
{
	struct reader *r = ctx;

	for (size_t i = 0; i < len; i++)
		if (buf[i] != pat(r->off + i, r->seed))
			r->ok = false;
	r->off += len;
	r->calls++;
	if (len > r->max)
		r->max = len;
	return 0;
}

static int64_t rowid_of(struct store *s, uint8_t seed)
{
	struct store_bundle b;
	uint8_t id[32];

	id_of(id, seed);
	if (store_bundle_get(s, id, NULL, &b, NULL, 0, NULL) != 0)
		return -1;
	return b.rowid;
}

/* Reads the whole payload back and compares it with what put() wrote. */
static bool payload_matches(struct store *s, uint8_t seed, uint64_t size)
{
	struct reader r = {.seed = seed, .ok = true};
	int ret = store_payload_read(s, rowid_of(s, seed), check_chunk, &r);

	return ret == 0 && r.ok && r.off == size;
}

/* ---- a second, raw connection ---------------------------------------------------- */

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

static int raw_exec(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);

	if (rc == SQLITE_OK) {
		sqlite3_busy_timeout(db, 5000);
		rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	}
	sqlite3_close(db);
	return rc;
}

static long long pragma_of(struct store *s, const char *sql)
{
	sqlite3_stmt *st = NULL;
	long long v = -1;

	if (sqlite3_prepare_v2(store_sqlite(s), sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static const char *pragma_text(struct store *s, const char *sql, char *buf, size_t len)
{
	sqlite3_stmt *st = NULL;

	buf[0] = '\0';
	if (sqlite3_prepare_v2(store_sqlite(s), sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		snprintf(buf, len, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return buf;
}

/* Flips one byte of chunk seq of a bundle, as bit rot would. */
static int raw_corrupt_chunk(const char *path, int64_t rowid, int seq, int at)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	uint8_t *copy = NULL;
	int n = 0, rc;

	rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(
		    db, "SELECT data FROM chunks WHERE bundle = ?1 AND seq = ?2", -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, rowid);
		sqlite3_bind_int(st, 2, seq);
		rc = sqlite3_step(st) == SQLITE_ROW ? SQLITE_OK : SQLITE_ERROR;
	}
	if (rc == SQLITE_OK) {
		n = sqlite3_column_bytes(st, 0);
		copy = malloc((size_t)n);
		memcpy(copy, sqlite3_column_blob(st, 0), (size_t)n);
		copy[at] ^= 0x10;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(
		    db, "UPDATE chunks SET data = ?3 WHERE bundle = ?1 AND seq = ?2", -1, &st,
		    NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, rowid);
		sqlite3_bind_int(st, 2, seq);
		sqlite3_bind_blob(st, 3, copy, n, SQLITE_STATIC);
		rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	free(copy);
	return rc;
}

static int file_mode(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (int)(st.st_mode & 07777) : -1;
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

/* ---- tests -------------------------------------------------------------------- */

static void test_crc(void)
{
	uint8_t zeros[32] = {0};

	CHECK_EQ(store_crc32c(0, "123456789", 9), 0xe3069283u);
	/* RFC 3720 B.4 */
	CHECK_EQ(store_crc32c(0, zeros, 32), 0x8a9136aau);
	/* Incremental equals one-shot, across the 8-byte fast path. */
	CHECK_EQ(store_crc32c(store_crc32c(0, "12345", 5), "6789", 4), 0xe3069283u);
}

static void test_open_pragmas(void)
{
	const char *path = tpath("pragmas.db");
	struct store_clock c = clk(1, 1000);
	struct store *s;
	char mode[16];
	mode_t old = umask(0);

	s = open_ok(path, &c);
	umask(old);
	if (!s)
		return;
	CHECK(strcmp(pragma_text(s, "PRAGMA journal_mode", mode, sizeof(mode)), "wal") == 0);
	CHECK_EQ(pragma_of(s, "PRAGMA synchronous"), 2); /* FULL */
	CHECK_EQ(pragma_of(s, "PRAGMA foreign_keys"), 1);
	CHECK_EQ(pragma_of(s, "PRAGMA cache_size"), -2048);
	CHECK(pragma_of(s, "PRAGMA busy_timeout") >= 1000);
	CHECK_EQ(pragma_of(s, "PRAGMA application_id"), 0x7465726e);
	CHECK_EQ(store_schema_version(s), 7);
	CHECK_EQ(pragma_of(s, "PRAGMA user_version"), 7);
	CHECK_EQ(store_setting_set(s, "k", "v"), 0);
	/* Private even with umask 0, and so are the files SQLite creates beside it. */
	CHECK_EQ(file_mode(path), 0600);
	CHECK_EQ(file_mode(tpath("pragmas.db-wal")), 0600);
	CHECK_EQ(file_mode(tpath("pragmas.db-shm")), 0600);
	store_close(s);
}

/* A commit that returned 0 was fsynced: the test would catch synchronous=NORMAL. */
static void test_commit_syncs(void)
{
	struct store_clock c = clk(1, 1000);
	struct store *s = open_ok(tpath("sync.db"), &c);
	struct bspec sp = {.seed = 1, .size = 1000};

	if (!s)
		return;
	syncs = 0;
	CHECK_EQ(put(s, &c, &sp, NULL), 0);
	CHECK(syncs >= 1);
	syncs = 0;
	CHECK_EQ(store_bundle_delete(s, (uint8_t[32]){1}), -ENOENT);
	{
		uint8_t id[32];

		id_of(id, 1);
		CHECK_EQ(store_bundle_delete(s, id), 0);
		CHECK(syncs >= 1);
	}
	/* The control: with NORMAL a WAL commit does not sync, so the count is meaningful. */
	CHECK_EQ(sqlite3_exec(store_sqlite(s), "PRAGMA synchronous = NORMAL", NULL, NULL, NULL),
		 SQLITE_OK);
	syncs = 0;
	sp.seed = 2;
	CHECK_EQ(put(s, &c, &sp, NULL), 0);
	CHECK_EQ(syncs, 0);
	store_close(s);
}

static int count_inbox(void *ctx, const struct store_inbox *e)
{
	(*(int *)ctx)++;
	return 0;
}

static void test_reopen(void)
{
	const char *path = tpath("reopen.db");
	struct store_clock c = clk(1, 1000);
	struct store *s = open_ok(path, &c);
	struct store_contact ct = {.name = "alice", .epoch = 3, .node = 42, .added_unix_ms = 5};
	struct store_inbox in = {.kind = 1, .name = "file.txt", .size = 99, .received_unix_ms = 7};
	struct bspec sp = {.seed = 9, .size = 200000, .piece = 777, .state = STORE_DELIVERED};
	struct store_bundle b;
	uint8_t id[32], head[64];
	size_t headlen = 0;
	char v[32];
	int n = 0;

	if (!s)
		return;
	memset(ct.sign_pk, 1, 32);
	memset(ct.box_pk, 2, 32);
	memset(ct.cert, 3, 64);
	memset(in.msg_id, 0x5a, 16);
	CHECK_EQ(store_contact_add(s, &ct), 0);
	CHECK_EQ(store_setting_set(s, "node.name", "field-7"), 0);
	CHECK_EQ(put(s, &c, &sp, &in), 0);
	store_close(s);

	s = open_ok(path, &c);
	if (!s)
		return;
	memset(&ct, 0, sizeof(ct));
	CHECK_EQ(store_contact_get(s, "alice", &ct), 0);
	CHECK_EQ(ct.epoch, 3);
	CHECK_EQ(ct.node, 42);
	CHECK_EQ(ct.box_pk[31], 2);
	CHECK_EQ(ct.cert[63], 3);
	CHECK_EQ(store_setting_get(s, "node.name", v, sizeof(v)), 0);
	CHECK(strcmp(v, "field-7") == 0);
	id_of(id, 9);
	CHECK(store_bundle_exists(s, id));
	CHECK_EQ(store_bundle_get(s, id, &c, &b, head, sizeof(head), &headlen), 0);
	CHECK_EQ(headlen, 16);
	CHECK_EQ(head[0], 0xa0 ^ 9);
	CHECK_EQ(b.state, STORE_DELIVERED);
	CHECK_EQ(b.payload_len, 200000);
	CHECK_EQ(b.dest_node, 7);
	CHECK_EQ(b.received_unix_ms, c.unix_ms);
	CHECK(payload_matches(s, 9, 200000));
	CHECK_EQ(store_inbox_foreach(s, count_inbox, &n), 0);
	CHECK_EQ(n, 1);
	CHECK(store_inbox_has(s, in.msg_id));
	store_close(s);
}

static void test_duplicates(void)
{
	const char *path = tpath("dup.db");
	struct store_clock c = clk(1, 1000);
	struct store *s = open_ok(path, &c);
	struct bspec a = {.seed = 1, .size = 150000}, b = {.seed = 2, .size = 70000};
	struct store_inbox in = {.kind = 1};
	uint8_t id[32];

	if (!s)
		return;
	memset(in.msg_id, 0x11, 16);
	CHECK_EQ(put(s, &c, &a, &in), 0);
	CHECK_EQ(raw_int(path, "SELECT count(*) FROM bundles"), 1);
	CHECK_EQ(raw_int(path, "SELECT count(*) FROM chunks"), 3);

	/* Same bundle id again: refused, and its chunks went with the rollback. */
	a.size = 300000;
	CHECK_EQ(put(s, &c, &a, NULL), -EEXIST);
	CHECK_EQ(raw_int(path, "SELECT count(*) FROM bundles"), 1);
	CHECK_EQ(raw_int(path, "SELECT count(*) FROM chunks"), 3);
	CHECK(payload_matches(s, 1, 150000));

	/* A new bundle carrying a message already in the inbox: nothing of it stays. */
	CHECK_EQ(put(s, &c, &b, &in), -EEXIST);
	id_of(id, 2);
	CHECK(!store_bundle_exists(s, id));
	CHECK_EQ(raw_int(path, "SELECT count(*) FROM bundles"), 1);
	CHECK_EQ(raw_int(path, "SELECT count(*) FROM chunks"), 3);
	CHECK_EQ(raw_int(path, "SELECT count(*) FROM inbox"), 1);

	/* And the store goes on. */
	CHECK_EQ(put(s, &c, &b, NULL), 0);
	CHECK(store_bundle_exists(s, id));
	CHECK_EQ(raw_int(path, "SELECT count(*) FROM bundles"), 2);
	store_close(s);
}

static void test_abort_and_busy(void)
{
	const char *path = tpath("abort.db");
	struct store_clock c = clk(1, 1000);
	struct store *s = open_ok(path, &c);
	struct store_writer *w = NULL, *w2 = NULL;
	struct store_contact ct = {.name = "x"};
	struct store_bundle b = {.state = STORE_QUEUED};
	uint8_t buf[100000];

	if (!s)
		return;
	fill(buf, 0, sizeof(buf), 3);
	CHECK_EQ(store_writer_begin(s, &c, &w), 0);
	CHECK_EQ(store_writer_append(w, buf, sizeof(buf)), 0);
	CHECK_EQ(store_writer_begin(s, &c, &w2), -EBUSY);
	CHECK_EQ(store_setting_set(s, "a", "b"), -EBUSY);
	CHECK_EQ(store_contact_add(s, &ct), -EBUSY);
	store_writer_abort(w);
	store_writer_abort(NULL);
	CHECK_EQ(raw_int(path, "SELECT count(*) FROM bundles"), 0);
	CHECK_EQ(raw_int(path, "SELECT count(*) FROM chunks"), 0);
	CHECK_EQ(store_setting_set(s, "a", "b"), 0);

	/* payload_len must match what was appended: a short write never commits. */
	CHECK_EQ(store_writer_begin(s, &c, &w), 0);
	CHECK_EQ(store_writer_append(w, buf, sizeof(buf)), 0);
	memset(b.id, 3, 32);
	b.payload_len = sizeof(buf) + 1;
	CHECK_EQ(store_writer_commit(w, &b, (const uint8_t *)"h", 1, NULL), -EINVAL);
	CHECK_EQ(raw_int(path, "SELECT count(*) FROM bundles"), 0);
	CHECK_EQ(raw_int(path, "SELECT count(*) FROM chunks"), 0);

	/* An empty head and an empty payload are fine. */
	CHECK_EQ(store_writer_begin(s, &c, &w), 0);
	b.payload_len = 0;
	CHECK_EQ(store_writer_commit(w, &b, NULL, 0, NULL), 0);
	CHECK(store_bundle_exists(s, b.id));

	/* Closing with a writer open rolls it back; the caller still frees it. */
	CHECK_EQ(store_writer_begin(s, &c, &w), 0);
	CHECK_EQ(store_writer_append(w, buf, sizeof(buf)), 0);
	store_close(s);
	CHECK_EQ(store_writer_append(w, buf, 1), -EINVAL);
	store_writer_abort(w);
	CHECK_EQ(raw_int(path, "SELECT count(*) FROM bundles"), 1);
	CHECK_EQ(raw_int(path, "SELECT count(*) FROM chunks"), 0);
}

/* A full disk in the middle of a payload: -ENOSPC, nothing stored, the store goes on. */
static void test_disk_full(void)
{
	const char *path = tpath("full.db");
	struct store_clock c = clk(1, 1000);
	struct store *s = open_ok(path, &c);
	struct store_writer *w = NULL;
	struct store_bundle b = {.state = STORE_QUEUED, .payload_len = 4 * MIB};
	static uint8_t buf[MIB];
	char sql[64];
	int ret = 0;

	if (!s)
		return;
	CHECK_EQ(put(s, &c, &(struct bspec){.seed = 1, .size = 1000}, NULL), 0);
	/* SQLite's own quota stands in for the disk: about 1 MiB more than now. */
	snprintf(sql, sizeof(sql), "PRAGMA max_page_count = %lld",
		 pragma_of(s, "PRAGMA page_count") + 256);
	CHECK_EQ(sqlite3_exec(store_sqlite(s), sql, NULL, NULL, NULL), SQLITE_OK);
	CHECK_EQ(store_writer_begin(s, &c, &w), 0);
	for (int i = 0; i < 4 && ret == 0; i++) {
		fill(buf, (uint64_t)i * MIB, MIB, 2);
		ret = store_writer_append(w, buf, MIB);
	}
	CHECK_EQ(ret, -ENOSPC);
	CHECK_EQ(store_writer_append(w, buf, 1), -ENOSPC); /* sticky */
	memset(b.id, 2, 32);
	CHECK_EQ(store_writer_commit(w, &b, (const uint8_t *)"h", 1, NULL), -ENOSPC);
	CHECK_EQ(raw_int(path, "SELECT count(*) FROM bundles"), 1);
	CHECK_EQ(raw_int(path, "SELECT count(*) FROM chunks"), 1);
	CHECK_EQ(store_setting_set(s, "after", "full"), 0);
	CHECK_EQ(
	    sqlite3_exec(store_sqlite(s), "PRAGMA max_page_count = 1073741823", NULL, NULL, NULL),
	    SQLITE_OK);
	CHECK_EQ(put(s, &c, &(struct bspec){.seed = 2, .size = 4 * MIB, .piece = MIB}, NULL), 0);
	CHECK(payload_matches(s, 2, 4 * MIB));
	CHECK(payload_matches(s, 1, 1000));
	store_close(s);
}

static void test_chunk_boundaries(void)
{
	static const uint64_t sizes[] = {0, 1, 65535, 65536, 65537, 131072, 3 * MIB + 7};
	static const size_t pieces[] = {1000, 65536, 100003, 1, 7, 65536, 333333};
	const char *path = tpath("chunks.db");
	struct store_clock c = clk(1, 1000);
	struct store *s = open_ok(path, &c);

	if (!s)
		return;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct bspec sp = {.seed = (uint8_t)(20 + i), .size = sizes[i], .piece = pieces[i]};
		struct reader r = {.seed = sp.seed, .ok = true};
		char sql[128];

		CHECK_EQ(put(s, &c, &sp, NULL), 0);
		CHECK_EQ(store_payload_read(s, rowid_of(s, sp.seed), check_chunk, &r), 0);
		CHECK(r.ok);
		CHECK_EQ(r.off, sizes[i]);
		CHECK_EQ(r.calls, (sizes[i] + 65535) / 65536);
		CHECK(r.max <= 65536);
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM chunks WHERE bundle = %lld",
			 (long long)rowid_of(s, sp.seed));
		CHECK_EQ(raw_int(path, sql), (long long)((sizes[i] + 65535) / 65536));
	}
	CHECK_EQ(store_payload_read(s, 999999, check_chunk, &(struct reader){0}), -ENOENT);
	store_close(s);
}

struct seen {
	uint8_t seeds[16];
	uint64_t ages[16];
	int n;
};

static int collect(void *ctx, const struct store_bundle *b, const uint8_t *head, size_t headlen)
{
	struct seen *v = ctx;

	if (v->n < 16) {
		v->seeds[v->n] = b->id[0];
		v->ages[v->n] = b->age_now_ms;
	}
	v->n++;
	return 0;
}

static void test_priority_order(void)
{
	struct store_clock c = clk(1, 1000);
	struct store *s = open_ok(tpath("prio.db"), &c);
	static const enum store_priority prio[] = {STORE_BULK,	 STORE_URGENT, STORE_NORMAL,
						   STORE_URGENT, STORE_BULK,   STORE_NORMAL};
	static const uint8_t want[] = {2, 4, 3, 6, 1, 5};
	struct seen v = {0};

	if (!s)
		return;
	for (int i = 0; i < 6; i++) {
		struct bspec sp = {.seed = (uint8_t)(i + 1), .size = 10, .prio = prio[i]};

		CHECK_EQ(put(s, &c, &sp, NULL), 0);
	}
	{
		struct bspec sp = {.seed = 7, .size = 10, .state = STORE_DELIVERED};

		CHECK_EQ(put(s, &c, &sp, NULL), 0);
	}
	CHECK_EQ(store_bundle_foreach(s, STORE_QUEUED, &c, collect, &v), 0);
	CHECK_EQ(v.n, 6);
	CHECK_MEM(v.seeds, want, 6);
	v.n = 0;
	CHECK_EQ(store_bundle_foreach(s, STORE_DELIVERED, &c, collect, &v), 0);
	CHECK_EQ(v.n, 1);
	CHECK_EQ(v.seeds[0], 7);
	store_close(s);
}

struct deleter {
	struct store *s, *other;
	int n, nested;
	bool ok;
};

static int count_bundle(void *ctx, const struct store_bundle *b, const uint8_t *h, size_t hl)
{
	(*(int *)ctx)++;
	return 0;
}

static int delete_each(void *ctx, const struct store_bundle *b, const uint8_t *head, size_t len)
{
	struct deleter *d = ctx;
	int n = 0;

	/* Re-entering the same query must not disturb the outer one. */
	if (store_bundle_foreach(d->s, STORE_QUEUED, NULL, count_bundle, &n) != 0)
		d->ok = false;
	d->nested += n;
	/* Another connection commits meanwhile, as the CLI would beside the daemon. */
	if (store_setting_set(d->other, "poke", "x") != 0)
		d->ok = false;
	if (store_bundle_delete(d->s, b->id) != 0)
		d->ok = false;
	/* 0 from delete means committed: another connection sees it at once. */
	if (store_bundle_exists(d->other, b->id))
		d->ok = false;
	d->n++;
	return 0;
}

static int stop_at_two(void *ctx, const struct store_bundle *b, const uint8_t *h, size_t hl)
{
	return ++*(int *)ctx == 2 ? 42 : 0;
}

static void test_foreach_reentry(void)
{
	const char *path = tpath("reentry.db");
	struct store_clock c = clk(1, 1000);
	struct store *s = open_ok(path, &c), *s2 = open_ok(path, &c);
	struct deleter d = {.s = s, .other = s2, .ok = true};
	int n = 0;

	if (!s || !s2)
		goto out;
	for (int i = 1; i <= 3; i++) {
		struct bspec sp = {.seed = (uint8_t)i, .size = 70000};

		CHECK_EQ(put(s, &c, &sp, NULL), 0);
	}
	CHECK_EQ(store_bundle_foreach(s, STORE_QUEUED, &c, stop_at_two, &n), 42);
	CHECK_EQ(n, 2);
	CHECK_EQ(store_bundle_foreach(s, STORE_QUEUED, &c, delete_each, &d), 0);
	CHECK(d.ok);
	CHECK_EQ(d.n, 3);
	CHECK_EQ(d.nested, 3 + 2 + 1);
	CHECK_EQ(raw_int(path, "SELECT count(*) FROM chunks"), 0);
out:
	store_close(s2);
	store_close(s);
}

static uint64_t age_of(struct store *s, uint8_t seed, const struct store_clock *now)
{
	struct store_bundle b = {0};
	uint8_t id[32];

	id_of(id, seed);
	CHECK_EQ(store_bundle_get(s, id, now, &b, NULL, 0, NULL), 0);
	return b.age_now_ms;
}

static void test_expiry_same_boot(void)
{
	struct store_clock c = clk(1, 1000);
	struct store *s = open_ok(tpath("expiry.db"), &c);
	struct bspec q = {.seed = 1, .size = 100, .lifetime = 10000, .age = 2000};
	struct bspec d = {.seed = 2, .size = 100, .lifetime = 10000, .state = STORE_DELIVERED};
	uint64_t n = 99;
	struct store_clock t;

	if (!s)
		return;
	CHECK_EQ(put(s, &c, &q, NULL), 0);
	CHECK_EQ(put(s, &c, &d, NULL), 0);
	t = clk(1, 5000);
	CHECK_EQ(age_of(s, 1, &t), 6000);
	t = clk(1, 8999);
	CHECK_EQ(store_purge_expired(s, &t, &n), 0);
	CHECK_EQ(n, 0);
	t = clk(1, 9000); /* 2000 + 8000 = lifetime: expired */
	CHECK_EQ(store_purge_expired(s, &t, &n), 0);
	CHECK_EQ(n, 1);
	CHECK_EQ(rowid_of(s, 1), -1);
	/* Delivered bundles are the sealed inbox: never purged. */
	t = clk(1, 1000000);
	CHECK_EQ(store_purge_expired(s, &t, &n), 0);
	CHECK_EQ(n, 0);
	CHECK_EQ(age_of(s, 2, &t), 999000);
	store_close(s);
}

/* Residence counted across a clean close and a reboot, via the checkpoint close writes. */
static void test_expiry_reboot_after_close(void)
{
	const char *path = tpath("reboot.db");
	struct store_clock c = clk(1, 1000), t;
	struct store *s = open_ok(path, &c);
	struct bspec q = {.seed = 1, .size = 100, .lifetime = 10000};
	struct seen v = {0};
	uint64_t n = 0;

	if (!s)
		return;
	CHECK_EQ(put(s, &c, &q, NULL), 0);
	t = clk(1, 8000);
	CHECK_EQ(store_bundle_foreach(s, STORE_QUEUED, &t, collect, &v), 0);
	CHECK_EQ(v.ages[0], 7000);
	store_close(s); /* checkpoint: boot 1 at 8000 */

	/* Same boot again: the boot clock still runs, no rebase. */
	t = clk(1, 8500);
	s = open_ok(path, &t);
	if (!s)
		return;
	CHECK_EQ(age_of(s, 1, &t), 7500);
	store_close(s);

	/* Reboot: residence up to the checkpoint (8500) is folded in, then the new clock runs. */
	t = clk(2, 50);
	s = open_ok(path, &t);
	if (!s)
		return;
	CHECK_EQ(age_of(s, 1, &t), 7500);
	t = clk(2, 2549);
	CHECK_EQ(store_purge_expired(s, &t, &n), 0);
	CHECK_EQ(n, 0);
	store_close(s);

	/* Reopening on the same new boot counts nothing twice. */
	t = clk(2, 2549);
	s = open_ok(path, &t);
	if (!s)
		return;
	CHECK_EQ(age_of(s, 1, &t), 9999);
	t = clk(2, 2550);
	CHECK_EQ(store_purge_expired(s, &t, &n), 0);
	CHECK_EQ(n, 1);
	store_close(s);
}

/* Power cut: no close; the last commit's checkpoint is what survives. */
static void test_expiry_reboot_after_crash(void)
{
	const char *path = tpath("crash.db");
	struct store_clock t;
	struct store *s;
	uint64_t n = 0;
	pid_t pid;
	int status = 0;

	pid = fork();
	if (pid == 0) {
		struct store_clock c0 = clk(1, 1000), c1 = clk(1, 2000), c2 = clk(1, 7000);
		struct bspec q = {.seed = 1, .size = 100000, .lifetime = 10000, .age = 500};
		struct bspec r = {.seed = 2, .size = 10, .lifetime = 10000};
		struct store *cs = NULL;

		if (store_open(path, &c0, &cs, NULL) != 0 || put(cs, &c1, &q, NULL) != 0 ||
		    put(cs, &c2, &r, NULL) != 0)
			_exit(1);
		_exit(0); /* no store_close: as if the power went */
	}
	CHECK(pid > 0);
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	t = clk(2, 10);
	s = open_ok(path, &t);
	if (!s)
		return;
	/* Bundle 1: 500 at receipt + 5000 here until the checkpoint of the last commit. */
	CHECK_EQ(age_of(s, 1, &t), 5500);
	CHECK_EQ(age_of(s, 2, &t), 0);
	t = clk(2, 4509);
	CHECK_EQ(store_purge_expired(s, &t, &n), 0);
	CHECK_EQ(n, 0);
	t = clk(2, 4510);
	CHECK_EQ(store_purge_expired(s, &t, &n), 0);
	CHECK_EQ(n, 1);
	CHECK(payload_matches(s, 2, 10));
	store_close(s);
}

static void test_quarantine(void)
{
	const char *path = tpath("quarantine.db");
	struct store_clock c = clk(1, 1000), t;
	struct store *s = open_ok(path, &c);
	struct bspec a = {.seed = 1, .size = 3 * 65536 - 10, .lifetime = 5000};
	struct bspec b = {.seed = 2, .size = 3 * 65536 - 10};
	struct bspec h1 = {.seed = 3, .size = 10}, h2 = {.seed = 4, .size = 10};
	struct reader r = {.seed = 1, .ok = true};
	struct store_bundle got;
	struct seen v = {0};
	uint8_t id[32];
	char sql[128];
	uint64_t n = 0;

	if (!s)
		return;
	CHECK_EQ(put(s, &c, &a, NULL), 0);
	CHECK_EQ(put(s, &c, &b, NULL), 0);
	CHECK_EQ(put(s, &c, &h1, NULL), 0);
	CHECK_EQ(put(s, &c, &h2, NULL), 0);

	/* Bit rot in the middle chunk of bundle 1. */
	CHECK_EQ(raw_corrupt_chunk(path, rowid_of(s, 1), 1, 1234), SQLITE_OK);
	CHECK_EQ(store_payload_read(s, rowid_of(s, 1), check_chunk, &r), -EBADMSG);
	CHECK_EQ(r.calls, 1); /* chunk 0 went out, chunk 1 did not */
	CHECK(strstr(store_errmsg(s), "chunk 1") != NULL);
	CHECK(strstr(store_errmsg(s), "quarantined") != NULL);
	id_of(id, 1);
	CHECK_EQ(store_bundle_get(s, id, &c, &got, NULL, 0, NULL), 0);
	CHECK_EQ(got.state, STORE_QUARANTINED);

	/* A missing last chunk of bundle 2. */
	snprintf(sql, sizeof(sql), "DELETE FROM chunks WHERE bundle = %lld AND seq = 2",
		 (long long)rowid_of(s, 2));
	CHECK_EQ(raw_exec(path, sql), SQLITE_OK);
	r = (struct reader){.seed = 2, .ok = true};
	CHECK_EQ(store_payload_read(s, rowid_of(s, 2), check_chunk, &r), -EBADMSG);
	CHECK(strstr(store_errmsg(s), "chunk 2 missing") != NULL);

	/* Bad heads: get quarantines one, foreach holds back and quarantines the other. */
	snprintf(sql, sizeof(sql), "UPDATE bundles SET head = x'00' WHERE rowid IN (%lld, %lld)",
		 (long long)rowid_of(s, 3), (long long)rowid_of(s, 4));
	CHECK_EQ(raw_exec(path, sql), SQLITE_OK);
	id_of(id, 3);
	CHECK_EQ(store_bundle_get(s, id, &c, &got, NULL, 0, NULL), -EBADMSG);
	CHECK_EQ(got.state, STORE_QUARANTINED);
	CHECK_EQ(store_bundle_foreach(s, STORE_QUEUED, &c, collect, &v), -EBADMSG);
	CHECK_EQ(v.n, 0);
	store_close(s);

	/* Durable, out of the queue, and not purged when their lifetime is up. */
	s = open_ok(path, &c);
	if (!s)
		return;
	v.n = 0;
	CHECK_EQ(store_bundle_foreach(s, STORE_QUEUED, &c, collect, &v), 0);
	CHECK_EQ(v.n, 0);
	CHECK_EQ(store_bundle_foreach(s, STORE_QUARANTINED, &c, collect, &v), 0);
	CHECK_EQ(v.n, 4);
	t = clk(1, 100000);
	CHECK_EQ(store_purge_expired(s, &t, &n), 0);
	CHECK_EQ(n, 0);
	/* An operator can still delete one. */
	id_of(id, 1);
	CHECK_EQ(store_bundle_delete(s, id), 0);
	store_close(s);
}

/* Entries of the payload directory of the store at path: files, and how many are temporary. */
static int payload_files(const char *path, int *tmp)
{
	char dir[600];
	int n = 0;
	snprintf(dir, sizeof(dir), "%s-payloads", path);
	DIR *d = opendir(dir);
	struct dirent *e;
	if (tmp)
		*tmp = 0;
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		n++;
		if (tmp && strncmp(e->d_name, "tmp-", 4) == 0)
			(*tmp)++;
	}
	if (d)
		closedir(d);
	return n;
}

static void payload_file_of(const char *path, uint8_t seed, char *out, size_t len)
{
	char hex[65];
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", seed);
	snprintf(out, len, "%s-payloads/%s", path, hex);
}

static void flip_byte(const char *file, long at)
{
	FILE *f = fopen(file, "r+b");
	int c;
	CHECK(f != NULL);
	if (!f)
		return;
	fseek(f, at, SEEK_SET);
	c = fgetc(f);
	fseek(f, at, SEEK_SET);
	fputc(c ^ 0x10, f);
	fclose(f);
}

/* Payloads of a megabyte or more live in files: written once, removed only after their row. */
static void test_payload_files(void)
{
	const char *path = tpath("files.db");
	struct store_clock c = clk(1, 1000);
	struct store *s = open_ok(path, &c);
	const uint64_t big = 2 * 1024 * 1024 + 12345;
	struct bspec a = {.seed = 1, .size = big, .piece = 50000, .file = true};
	struct bspec small = {.seed = 2, .size = 70000, .file = true};
	struct bspec b = {.seed = 3, .size = big, .file = true};
	char file[700];
	int tmp;
	uint8_t id[32];
	struct store_bundle got;

	if (!s)
		return;
	/* A big payload goes to a file and reads back whole; a small one stays in the database. */
	CHECK_EQ(put(s, &c, &a, NULL), 0);
	CHECK_EQ(put(s, &c, &small, NULL), 0);
	CHECK_EQ(payload_files(path, &tmp), 1);
	CHECK_EQ(tmp, 0);
	payload_file_of(path, 1, file, sizeof(file));
	struct stat st;
	CHECK(stat(file, &st) == 0 && (uint64_t)st.st_size == big && (st.st_mode & 0777) == 0600);
	CHECK(payload_matches(s, 1, big));
	CHECK(payload_matches(s, 2, small.size));
	CHECK_EQ(raw_int(path, "SELECT count(*) FROM chunks"), 2); /* only the small one's */

	/* The same id again: refused, the first copy untouched, nothing left behind. */
	CHECK_EQ(put(s, &c, &a, NULL), -EEXIST);
	CHECK_EQ(payload_files(path, &tmp), 1);
	CHECK(payload_matches(s, 1, big));

	/* An aborted writer leaves no file; nor does a short payload that cannot commit. */
	struct store_writer *w;
	uint8_t buf[1000] = {0};
	CHECK_EQ(store_writer_begin(s, &c, &w), 0);
	CHECK_EQ(store_writer_expect(w, big), 0);
	CHECK_EQ(store_writer_append(w, buf, sizeof(buf)), 0);
	CHECK_EQ(store_writer_expect(w, big), -EINVAL); /* bytes already appended */
	CHECK_EQ(payload_files(path, &tmp), 2);
	CHECK_EQ(tmp, 1);
	store_writer_abort(w);
	CHECK_EQ(payload_files(path, NULL), 1);
	struct bspec shortp = {.seed = 9, .size = big, .file = true};
	CHECK_EQ(store_writer_begin(s, &c, &w), 0);
	CHECK_EQ(store_writer_expect(w, big), 0);
	CHECK_EQ(store_writer_append(w, buf, sizeof(buf)), 0);
	struct store_bundle bb = {.state = STORE_QUEUED, .payload_len = shortp.size};
	id_of(bb.id, 9);
	CHECK_EQ(store_writer_commit(w, &bb, buf, 16, NULL), -EINVAL);
	CHECK_EQ(payload_files(path, NULL), 1);

	/* A batch that rolls back takes its files with it; one that commits keeps them. */
	CHECK_EQ(store_batch_begin(s), 0);
	CHECK_EQ(put(s, &c, &b, NULL), 0);
	CHECK_EQ(payload_files(path, NULL), 2);
	store_batch_abort(s);
	CHECK_EQ(payload_files(path, NULL), 1);
	CHECK_EQ(rowid_of(s, 3), -1);
	CHECK_EQ(store_batch_begin(s), 0);
	CHECK_EQ(put(s, &c, &b, NULL), 0);
	CHECK_EQ(store_batch_commit(s), 0);
	CHECK_EQ(payload_files(path, NULL), 2);
	CHECK(payload_matches(s, 3, big));

	/* Bit rot in the file: caught by its chunk CRC, quarantined, named. */
	flip_byte(file, 65536 + 777);
	struct reader r = {.seed = 1, .ok = true};
	CHECK_EQ(store_payload_read(s, rowid_of(s, 1), check_chunk, &r), -EBADMSG);
	CHECK_EQ(r.calls, 1);
	CHECK(strstr(store_errmsg(s), "chunk 1 checksum mismatch") != NULL);
	id_of(id, 1);
	CHECK(store_bundle_get(s, id, &c, &got, NULL, 0, NULL) == 0 &&
	      got.state == STORE_QUARANTINED);
	/* A file gone: quarantined too, not a crash, not a silent short read. */
	payload_file_of(path, 3, file, sizeof(file));
	CHECK_EQ(unlink(file), 0);
	r = (struct reader){.seed = 3, .ok = true};
	CHECK_EQ(store_payload_read(s, rowid_of(s, 3), check_chunk, &r), -EBADMSG);
	CHECK(strstr(store_errmsg(s), "payload file missing") != NULL);

	/* Deleted: the file stays until the deletion committed and a sweep ran (close). */
	CHECK_EQ(store_bundle_delete(s, id), 0);
	payload_file_of(path, 1, file, sizeof(file));
	CHECK(stat(file, &st) == 0);
	/* Received again before the sweep: the stale file makes way for the new one. */
	CHECK_EQ(put(s, &c, &a, NULL), 0);
	CHECK(payload_matches(s, 1, big));
	store_close(s);
	CHECK(stat(file, &st) == 0); /* owned again: the sweep leaves it */
	s = open_ok(path, &c);
	CHECK(s && payload_matches(s, 1, big));
	CHECK_EQ(store_bundle_delete(s, id), 0);
	store_close(s);
	CHECK(stat(file, &st) != 0 && errno == ENOENT);
	CHECK_EQ(raw_int(path, "SELECT count(*) FROM payload_trash"), 0);

	/* What a crash leaves (a temporary file, a file whose row never committed) goes at open. */
	char orphan[700], tmpf[700];
	payload_file_of(path, 0x55, orphan, sizeof(orphan));
	snprintf(tmpf, sizeof(tmpf), "%s-payloads/tmp-0123456789abcdef", path);
	FILE *f1 = fopen(orphan, "w"), *f2 = fopen(tmpf, "w");
	CHECK(f1 && f2);
	if (f1)
		fclose(f1);
	if (f2)
		fclose(f2);
	CHECK_EQ(payload_files(path, NULL), 2);
	s = open_ok(path, &c);
	CHECK_EQ(payload_files(path, NULL), 0);
	store_close(s);
}

static void test_migrations(void)
{
	const char *empty = tpath("empty.db"), *junk = tpath("junk.db");
	const char *foreign = tpath("foreign.db"), *newer = tpath("newer.db");
	struct store_clock c = clk(1, 1000);
	struct store *s = NULL;
	const char *why = NULL;
	FILE *f;

	/* An empty file is an empty database: migrated from version 0. */
	f = fopen(empty, "w");
	CHECK(f != NULL);
	if (f)
		fclose(f);
	s = open_ok(empty, &c);
	CHECK_EQ(store_schema_version(s), 7);
	store_close(s);

	f = fopen(junk, "w");
	CHECK(f != NULL);
	if (f) {
		for (int i = 0; i < 300; i++)
			fputs("this is a text file, not a database\n", f);
		fclose(f);
	}
	s = NULL;
	CHECK_EQ(store_open(junk, &c, &s, &why), -EBADMSG);
	CHECK(s == NULL);
	CHECK(why && strcmp(why, "not a tern store") == 0);

	/* Someone else's SQLite database: not ours to migrate. */
	CHECK_EQ(raw_exec(foreign, "CREATE TABLE t (x); INSERT INTO t VALUES (1);"), SQLITE_OK);
	why = NULL;
	CHECK_EQ(store_open(foreign, &c, &s, &why), -EBADMSG);
	CHECK(why && strcmp(why, "not a tern store") == 0);
	CHECK_EQ(raw_int(foreign, "SELECT count(*) FROM sqlite_schema"), 1);

	/* A store from a newer tern is refused and left as it is. */
	s = open_ok(newer, &c);
	store_close(s);
	CHECK_EQ(raw_exec(newer, "PRAGMA user_version = 99"), SQLITE_OK);
	why = NULL;
	s = NULL;
	CHECK_EQ(store_open(newer, &c, &s, &why), -EPROTONOSUPPORT);
	CHECK(s == NULL);
	CHECK(why && strstr(why, "newer") != NULL);
	CHECK_EQ(raw_int(newer, "PRAGMA user_version"), 99);
}

/* Run as an unprivileged user (root ignores permission bits). */
static int unprivileged_checks(const char *rodir, const char *rodb)
{
	struct store_clock c = clk(1, 1000);
	struct store *s = NULL;
	const char *why = NULL;
	char p[600];
	int fails = 0, ret;

	snprintf(p, sizeof(p), "%s/new.db", rodir);
	ret = store_open(p, &c, &s, &why);
	if (ret != -EACCES || s || !why) {
		fprintf(stderr, "new store in read-only dir: %d %s\n", ret, why ? why : "(null)");
		fails++;
	}
	/* A writable store in a read-only directory: WAL cannot create its -wal. */
	why = NULL;
	ret = store_open(rodb, &c, &s, &why);
	if (ret >= 0 || s || !why) {
		fprintf(stderr, "store in read-only dir: %d %s\n", ret, why ? why : "(null)");
		fails++;
	}
	store_close(s);
	return fails;
}

static void test_permissions(void)
{
	const char *wide = tpath("wide.db"), *notdir = tpath("plainfile");
	const char *rodir = tpath("rodir"), *rodb = tpath("rodir/store.db");
	struct store_clock c = clk(1, 1000);
	struct store *s = NULL;
	const char *why = NULL;
	char p[600];
	FILE *f;

	/* An existing store with a wide mode is tightened. */
	CHECK_EQ(raw_exec(wide, "PRAGMA journal_mode = WAL"), SQLITE_OK);
	CHECK_EQ(chmod(wide, 0644), 0);
	s = open_ok(wide, &c);
	CHECK_EQ(file_mode(wide), 0600);
	store_close(s);

	/* Unusable paths give an error and a reason, not a crash. */
	f = fopen(notdir, "w");
	if (f)
		fclose(f);
	snprintf(p, sizeof(p), "%s/x.db", notdir);
	s = NULL;
	CHECK_EQ(store_open(p, &c, &s, &why), -ENOTDIR);
	CHECK(s == NULL && why != NULL);
	snprintf(p, sizeof(p), "%s/no/such/dir/x.db", tmpdir);
	why = NULL;
	CHECK_EQ(store_open(p, &c, &s, &why), -ENOENT);
	CHECK(why != NULL);
	why = NULL;
	CHECK_EQ(store_open(tmpdir, &c, &s, &why), -EINVAL); /* a directory */
	CHECK(why != NULL);
	CHECK_EQ(store_open(NULL, &c, &s, &why), -EINVAL);

	/* Read-only directory. */
	CHECK_EQ(mkdir(rodir, 0755), 0);
	s = open_ok(rodb, &c);
	store_close(s);
	CHECK_EQ(chmod(rodir, 0555), 0);
	if (geteuid() != 0) {
		CHECK_EQ(unprivileged_checks(rodir, rodb), 0);
	} else {
		pid_t pid;
		int status = 0;

		/* Let nobody reach the directory and write the store file, not the directory. */
		CHECK_EQ(chmod(tmpdir, 0711), 0);
		CHECK_EQ(chown(rodb, 65534, 65534), 0);
		pid = fork();
		if (pid == 0) {
			if (setgid(65534) != 0 || setuid(65534) != 0)
				_exit(100);
			_exit(unprivileged_checks(rodir, rodb));
		}
		CHECK(waitpid(pid, &status, 0) == pid);
		CHECK(WIFEXITED(status));
		CHECK_EQ(WEXITSTATUS(status), 0);
		CHECK_EQ(chmod(tmpdir, 0700), 0);
	}
	CHECK_EQ(chmod(rodir, 0755), 0);
}

struct names {
	char list[8][STORE_NAME_MAX + 1];
	int n;
};

static int collect_name(void *ctx, const struct store_contact *c)
{
	struct names *v = ctx;

	if (v->n < 8)
		snprintf(v->list[v->n], sizeof(v->list[0]), "%s", c->name);
	v->n++;
	return 0;
}

static struct store_contact contact(const char *name, uint8_t key, uint8_t box, uint32_t epoch)
{
	struct store_contact c = {.epoch = epoch, .node = key, .added_unix_ms = 1};

	snprintf(c.name, sizeof(c.name), "%s", name);
	memset(c.sign_pk, key, 32);
	memset(c.box_pk, box, 32);
	memset(c.cert, box, 64);
	return c;
}

static void test_contacts(void)
{
	struct store_clock clock = clk(1, 1000);
	struct store *s = open_ok(tpath("contacts.db"), &clock);
	struct store_contact c, got;
	struct names v = {0};
	uint8_t key[32];

	if (!s)
		return;
	c = contact("alice", 1, 10, 1);
	CHECK_EQ(store_contact_add(s, &c), 0);
	CHECK_EQ(store_contact_add(s, &c), 0); /* idempotent */
	c = contact("alice", 2, 10, 1);
	CHECK_EQ(store_contact_add(s, &c), -EEXIST); /* name taken by another key */
	c = contact("mallory", 1, 10, 1);
	CHECK_EQ(store_contact_add(s, &c), -EEXIST); /* key known under another name */
	CHECK_EQ(store_contact_get(s, "mallory", &got), -ENOENT);

	c = contact("alice", 1, 11, 2); /* newer epoch: the encryption key moves on */
	CHECK_EQ(store_contact_add(s, &c), 0);
	CHECK_EQ(store_contact_get(s, "alice", &got), 0);
	CHECK_EQ(got.epoch, 2);
	CHECK_EQ(got.box_pk[0], 11);
	CHECK_EQ(got.cert[0], 11);
	c = contact("alice", 1, 9, 1); /* older epoch: ignored, still 0 */
	CHECK_EQ(store_contact_add(s, &c), 0);
	CHECK_EQ(store_contact_get(s, "alice", &got), 0);
	CHECK_EQ(got.epoch, 2);
	CHECK_EQ(got.box_pk[0], 11);

	c = contact("carol", 3, 30, 1);
	CHECK_EQ(store_contact_add(s, &c), 0);
	c = contact("bob", 2, 20, 1);
	CHECK_EQ(store_contact_add(s, &c), 0);
	memset(key, 2, 32);
	CHECK_EQ(store_contact_by_key(s, key, &got), 0);
	CHECK(strcmp(got.name, "bob") == 0);
	CHECK_EQ(got.node, 2);
	CHECK_EQ(store_contact_foreach(s, collect_name, &v), 0);
	CHECK_EQ(v.n, 3);
	CHECK(strcmp(v.list[0], "alice") == 0 && strcmp(v.list[1], "bob") == 0 &&
	      strcmp(v.list[2], "carol") == 0);

	CHECK_EQ(store_contact_remove(s, "bob"), 0);
	CHECK_EQ(store_contact_remove(s, "bob"), -ENOENT);
	CHECK_EQ(store_contact_by_key(s, key, &got), -ENOENT);

	c = contact("", 5, 5, 1);
	CHECK_EQ(store_contact_add(s, &c), -EINVAL);
	memset(c.name, 'x', sizeof(c.name)); /* 65 bytes, no terminator */
	CHECK_EQ(store_contact_add(s, &c), -EINVAL);
	store_close(s);
}

struct keys_seen {
	size_t n;
	uint8_t key[8][32];
};

static int collect_key(void *ctx, const uint8_t sign_pk[32])
{
	struct keys_seen *k = ctx;
	if (k->n < 8)
		memcpy(k->key[k->n], sign_pk, 32);
	k->n++;
	return 0;
}

/* A compact envelope's sender hint: the contacts whose key starts with one byte, and no other. */
static void test_contact_keys_starting(void)
{
	struct store_clock clock = clk(1, 1000);
	struct store *s = open_ok(tpath("contact_keys.db"), &clock);
	/* First bytes at both ends of the range, and neighbours that must not match. */
	static const uint8_t firsts[] = {0x00, 0x00, 0x01, 0x7f, 0x80, 0x80, 0xfe, 0xff, 0xff};
	struct keys_seen k;

	if (!s)
		return;
	for (size_t i = 0; i < sizeof(firsts); i++) {
		char name[16];
		snprintf(name, sizeof(name), "c%zu", i);
		struct store_contact c = contact(name, (uint8_t)(i + 1), 1, 1);
		c.sign_pk[0] = firsts[i];
		if (i % 2)
			memset(c.sign_pk + 1, 0xff, 31); /* the largest key with this first byte */
		CHECK_EQ(store_contact_add(s, &c), 0);
	}
	static const struct {
		uint8_t first;
		size_t n;
	} want[] = {{0x00, 2}, {0x01, 1}, {0x02, 0}, {0x7f, 1}, {0x80, 2}, {0xfe, 1}, {0xff, 2}};
	for (size_t w = 0; w < sizeof(want) / sizeof(want[0]); w++) {
		memset(&k, 0, sizeof(k));
		CHECK_EQ(store_contact_keys_starting(s, want[w].first, collect_key, &k), 0);
		CHECK_EQ(k.n, want[w].n);
		for (size_t i = 0; i < k.n && i < 8; i++)
			CHECK_EQ(k.key[i][0], want[w].first);
		if (k.n == 2)
			CHECK(memcmp(k.key[0], k.key[1], 32) < 0); /* key order, each once */
	}
	CHECK_EQ(store_contact_keys_starting(s, 0, NULL, NULL), -EINVAL);
	store_close(s);
}

static struct store_inbox inbox_entry(const uint8_t msg_id[16], const char *name)
{
	struct store_inbox e = {
	    .kind = 2, .size = 12345, .created_unix_ms = 1, .received_unix_ms = 2};

	memcpy(e.msg_id, msg_id, 16);
	memset(e.sender_pk, 0x77, 32);
	snprintf(e.name, sizeof(e.name), "%s", name);
	return e;
}

static int collect_inbox(void *ctx, const struct store_inbox *e)
{
	struct store_inbox *list = ctx;

	for (int i = 0; i < 4; i++) {
		if (list[i].rowid == 0) {
			list[i] = *e;
			break;
		}
	}
	return 0;
}

static void test_inbox(void)
{
	static const uint8_t m1[16] = {0xab, 0xcd, 0x01, 9}, m2[16] = {0xab, 0xcd, 0x02, 9};
	static const uint8_t m3[16] = {0x12, 0x34, 0x56};
	struct store_clock c = clk(1, 1000);
	struct store *s = open_ok(tpath("inbox.db"), &c);
	struct store_inbox e, list[4] = {{0}};
	int64_t rowid = 0;
	uint8_t id[32];

	if (!s)
		return;
	e = inbox_entry(m1, "report.pdf");
	CHECK_EQ(put(s, &c, &(struct bspec){.seed = 1, .size = 100, .state = STORE_DELIVERED}, &e),
		 0);
	e = inbox_entry(m2, "");
	CHECK_EQ(put(s, &c, &(struct bspec){.seed = 2, .size = 100, .state = STORE_DELIVERED}, &e),
		 0);
	e = inbox_entry(m3, "x");
	CHECK_EQ(put(s, &c, &(struct bspec){.seed = 3, .size = 100, .state = STORE_DELIVERED}, &e),
		 0);

	CHECK_EQ(store_inbox_foreach(s, collect_inbox, list), 0);
	CHECK_MEM(list[0].msg_id, m1, 16);
	CHECK_MEM(list[1].msg_id, m2, 16);
	CHECK_MEM(list[2].msg_id, m3, 16);
	CHECK(strcmp(list[0].name, "report.pdf") == 0);
	CHECK_EQ(list[0].kind, 2);
	CHECK_EQ(list[0].size, 12345);
	CHECK_EQ(list[0].bundle_id[0], 1);
	CHECK_EQ(list[0].sender_pk[31], 0x77);
	CHECK(!list[0].read);

	CHECK_EQ(store_inbox_find(s, "abcd", &e), -EEXIST);
	CHECK_EQ(store_inbox_find(s, "abcd0", &e), -EEXIST);
	CHECK_EQ(store_inbox_find(s, "abcd01", &e), 0);
	CHECK_MEM(e.msg_id, m1, 16);
	CHECK_EQ(store_inbox_find(s, "ABCD02", &e), 0);
	CHECK_MEM(e.msg_id, m2, 16);
	CHECK_EQ(store_inbox_find(s, "1234", &e), 0);
	CHECK_MEM(e.msg_id, m3, 16);
	CHECK_EQ(store_inbox_find(s, "ffff", &e), -ENOENT);
	CHECK_EQ(store_inbox_find(s, "123", &e), -EINVAL);
	CHECK_EQ(store_inbox_find(s, "12g4", &e), -EINVAL);
	CHECK_EQ(store_inbox_find(s, "abcd01090000000000000000000000000", &e), -EINVAL);
	CHECK_EQ(store_inbox_find(s, "abcd0109000000000000000000000000", &e), 0);

	CHECK(store_inbox_has(s, m1));
	CHECK(!store_inbox_has(s, (uint8_t[16]){0}));
	CHECK_EQ(store_inbox_find(s, "abcd01", &e), 0);
	CHECK_EQ(store_inbox_mark_read(s, e.rowid), 0);
	CHECK_EQ(store_inbox_mark_read(s, 999999), -ENOENT);
	CHECK_EQ(store_inbox_find(s, "abcd01", &e), 0);
	CHECK(e.read);

	CHECK_EQ(store_inbox_bundle(s, &e, &rowid), 0);
	CHECK_EQ(rowid, rowid_of(s, 1));
	CHECK(payload_matches(s, 1, 100));

	/* The bundle goes; the entry stays, as the record that this message arrived. */
	id_of(id, 1);
	CHECK_EQ(store_bundle_delete(s, id), 0);
	CHECK_EQ(store_inbox_bundle(s, &e, &rowid), -ENOENT);
	CHECK(store_inbox_has(s, m1));
	CHECK_EQ(store_inbox_find(s, "abcd01", &e), 0);
	store_close(s);
}

static void test_settings(void)
{
	struct store_clock c = clk(1, 1000);
	struct store *s = open_ok(tpath("settings.db"), &c);
	char v[8];

	if (!s)
		return;
	CHECK_EQ(store_setting_get(s, "k", v, sizeof(v)), -ENOENT);
	CHECK_EQ(store_setting_set(s, "k", "one"), 0);
	CHECK_EQ(store_setting_get(s, "k", v, sizeof(v)), 0);
	CHECK(strcmp(v, "one") == 0);
	CHECK_EQ(store_setting_set(s, "k", "seven77"), 0);
	CHECK_EQ(store_setting_get(s, "k", v, sizeof(v)), 0);
	CHECK(strcmp(v, "seven77") == 0);
	CHECK_EQ(store_setting_set(s, "k", "eight888"), 0);
	CHECK_EQ(store_setting_get(s, "k", v, sizeof(v)), -ENOSPC);
	CHECK_EQ(store_setting_set(s, "store.clock", "0"), -EPERM);
	store_close(s);
	store_close(NULL);
}

static long vm_hwm_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kib = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/* Resets the peak RSS to the current RSS (Linux 4.0+), so only this test's peak counts. */
static void reset_hwm(void)
{
	int fd = open("/proc/self/clear_refs", O_WRONLY);

	if (fd >= 0) {
		if (write(fd, "5", 1) != 1)
			fprintf(stderr, "clear_refs: cannot reset VmHWM\n");
		close(fd);
	}
}

/* A 256 MiB payload written and read back: RSS must not follow the payload size. */
static void test_memory_bound(void)
{
	const char *path = tpath("big.db");
	struct store_clock c = clk(1, 1000);
	struct store *s = open_ok(path, &c);
	struct bspec sp = {.seed = 5, .size = 256ull * MIB, .piece = 100000};
	struct reader r = {.seed = 5, .ok = true};
	long before, after;

	if (!s)
		return;
	reset_hwm();
	before = vm_hwm_kib();
	CHECK_EQ(put(s, &c, &sp, NULL), 0);
	CHECK_EQ(store_payload_read(s, rowid_of(s, 5), check_chunk, &r), 0);
	after = vm_hwm_kib();
	CHECK(r.ok);
	CHECK_EQ(r.off, 256ull * MIB);
	fprintf(stderr, "256 MiB payload: VmHWM %ld KiB -> %ld KiB (+%ld KiB)\n", before, after,
		after - before);
#if defined(__SANITIZE_ADDRESS__)
	/* ASan's quarantine keeps freed blocks resident: report, do not judge. */
#else
	CHECK(before > 0 && after - before < 24 * 1024);
#endif
	store_close(s);
	unlink(path);
}

static int rm_entry(const char *p, const struct stat *sb, int type, struct FTW *ftw)
{
	return remove(p);
}

int main(void)
{
	const char *base = getenv("TMPDIR");

	snprintf(tmpdir, sizeof(tmpdir), "%s/tern-store-XXXXXX", base && *base ? base : "/tmp");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	test_crc();
	test_memory_bound(); /* first: the cleanest baseline */
	test_open_pragmas();
	test_commit_syncs();
	test_reopen();
	test_duplicates();
	test_abort_and_busy();
	test_chunk_boundaries();
	test_disk_full();
	test_priority_order();
	test_foreach_reentry();
	test_expiry_same_boot();
	test_expiry_reboot_after_close();
	test_expiry_reboot_after_crash();
	test_quarantine();
	test_payload_files();
	test_migrations();
	test_permissions();
	test_contacts();
	test_contact_keys_starting();
	test_inbox();
	test_settings();
	nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	TEST_MAIN_END();
}
