/* Stages: transfers being received, kept in files beside the store across a cut. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"
#include "store/store_testing.h"
#include "test.h"

#define KIB    1024
#define PEER_A 0x1122334455667788ull
#define PEER_B 0x99

/* No cap, no reserve: what a test of something else opens its stages with. */
#define PEERCAP(max) (&(struct store_stage_limits){(max), UINT64_MAX, 0, 0, UINT64_MAX, 0})
#define NOLIM	     PEERCAP(UINT64_MAX)

static char dir[] = "/tmp/tern-test-stage.XXXXXX";
static int n_db;

static struct store_clock clk(uint8_t boot, uint64_t boot_ms)
{
	struct store_clock c = {.unix_ms = 1700000000000ull + boot_ms, .boot_ms = boot_ms};
	memset(c.boot_id, boot, sizeof(c.boot_id));
	return c;
}

static struct store *open_db(char *path, size_t cap, const struct store_clock *c, bool fresh)
{
	struct store *s = NULL;
	const char *why = NULL;
	if (fresh)
		snprintf(path, cap, "%s/s%d.db", dir, n_db++);
	int ret = store_open(path, c, &s, &why);
	if (ret < 0)
		fprintf(stderr, "test_store_stage: %s: %s\n", path, why ? why : strerror(-ret));
	return s;
}

static uint8_t *pattern(size_t len, unsigned seed)
{
	uint8_t *p = malloc(len);
	uint32_t x = seed * 2654435761u + 1;
	for (size_t i = 0; p && i < len; i++) {
		x = x * 1103515245u + 12345u;
		p[i] = (uint8_t)(x >> 16);
	}
	return p;
}

/* Files in the payload directory whose name starts with prefix. */
static int files(const char *db, const char *prefix)
{
	char path[600];
	snprintf(path, sizeof(path), "%s-payloads", db);
	DIR *d = opendir(path);
	int count = 0;
	struct dirent *e;
	while (d && (e = readdir(d)))
		count += e->d_name[0] != '.' && strncmp(e->d_name, prefix, strlen(prefix)) == 0;
	if (d)
		closedir(d);
	return count;
}

static uint64_t have_of(struct store *s, uint64_t peer, const uint8_t id[32], uint64_t len)
{
	uint64_t have = 12345;
	CHECK_EQ(store_stage_have(s, peer, id, len, &have, NULL), 0);
	return have;
}

/* Appends in pieces of step bytes. */
static bool append(struct store_stage *st, const uint8_t *buf, size_t len, size_t step)
{
	for (size_t off = 0; off < len; off += step)
		if (store_stage_append(st, buf + off, len - off < step ? len - off : step) != 0)
			return false;
	return true;
}

/* Reads the stage back whole (in odd pieces) and compares. */
static bool read_back(struct store_stage *st, const uint8_t *want, size_t len)
{
	uint8_t buf[10007];
	uint64_t off = 0;
	for (;;) {
		ssize_t n = store_stage_read(st, off, buf, sizeof(buf));
		if (n < 0 || (n > 0 && memcmp(buf, want + off, (size_t)n) != 0))
			return false;
		if (n == 0)
			return off == len;
		off += (uint64_t)n;
	}
}

static double seconds(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Staging, syncing, resuming at have, reading back, dropping; nobody blocked meanwhile. */
static void test_stage_resume(void)
{
	char path[512];
	struct store_clock c = clk(1, 1000);
	struct store *s = open_db(path, sizeof(path), &c, true), *s2 = NULL;
	size_t len = 1500 * KIB;
	uint8_t *p = pattern(len, 1), id[32];
	struct store_stage *st = NULL;
	memset(id, 0xab, 32);
	if (!s || !p)
		goto out;
	s2 = open_db(path, sizeof(path), &c, false);
	CHECK(s2 != NULL);
	CHECK_EQ(have_of(s, PEER_A, id, len), 0);
	CHECK_EQ(store_stage_open(s, PEER_A, id, len, 0, 3600000, NOLIM, &c, &st), 0);
	if (!st)
		goto out;

	/* A short stage stays in memory: a sync writes nothing. */
	CHECK(append(st, p, 1000, 1000));
	CHECK_EQ(store_stage_sync(st), 0);
	CHECK_EQ(store_stage_durable(st), 0);
	CHECK_EQ(files(path, "in-"), 0);
	CHECK(read_back(st, p, 1000));

	CHECK(append(st, p + 1000, 600 * KIB - 1000, 4000));
	CHECK_EQ(files(path, "in-"), 1);	  /* past STORE_STAGE_BUF: a file */
	CHECK_EQ(have_of(s, PEER_A, id, len), 0); /* not synced: nothing durable yet */
	CHECK_EQ(store_stage_sync(st), 0);
	CHECK_EQ(store_stage_durable(st), 600 * KIB);
	CHECK_EQ(have_of(s2, PEER_A, id, len), 600 * KIB); /* another handle sees it */
	CHECK_EQ(store_stage_length(st), 600 * KIB);

	/* Between calls no write lock is held: other writers go on at once. */
	double t0 = seconds();
	CHECK_EQ(store_setting_set(s2, "x", "1"), 0);
	CHECK_EQ(store_setting_set(s, "y", "2"), 0);
	CHECK(seconds() - t0 < 2.0);

	/* The same transfer cannot be staged twice at once. */
	struct store_stage *other = NULL;
	CHECK_EQ(store_stage_open(s2, PEER_A, id, len, 0, 3600000, NOLIM, &c, &other), -EBUSY);
	CHECK(other == NULL);

	/* More bytes, then a cut without a sync: the resume is at the durable count. */
	CHECK(append(st, p + 600 * KIB, 300 * KIB, 5000));
	store_stage_close(st);
	st = NULL;
	CHECK_EQ(have_of(s, PEER_A, id, len), 600 * KIB);
	CHECK_EQ(have_of(s, PEER_A, id, len + 1), 0); /* another payload length: nothing */
	CHECK_EQ(store_stage_open(s, PEER_A, id, len, 600 * KIB + 1, 3600000, NOLIM, &c, &st),
		 -ESTALE);
	CHECK_EQ(store_stage_open(s, PEER_A, id, len, 600 * KIB, 3600000, NOLIM, &c, &st), 0);
	if (!st)
		goto out;
	CHECK_EQ(store_stage_length(st), 600 * KIB);
	CHECK(append(st, p + 600 * KIB, len - 600 * KIB, 7777));
	CHECK_EQ(store_stage_append(st, p, 1), -EINVAL); /* past the payload */
	store_stage_close(st);
	st = NULL;
	/* Closed without a sync once more, so open again and finish properly. */
	CHECK_EQ(store_stage_open(s, PEER_A, id, len, 600 * KIB, 3600000, NOLIM, &c, &st), 0);
	if (!st)
		goto out;
	CHECK(append(st, p + 600 * KIB, len - 600 * KIB, 65536));
	CHECK(read_back(st, p, len));
	CHECK_EQ(store_stage_sync(st), 0);
	CHECK_EQ(have_of(s, PEER_A, id, len), len);

	/* Dropped: the row, then the file. */
	CHECK_EQ(store_stage_drop(st), 0);
	st = NULL;
	CHECK_EQ(have_of(s, PEER_A, id, len), 0);
	CHECK_EQ(files(path, "in-"), 0);
out:
	store_stage_close(st);
	store_close(s2);
	store_close(s);
	free(p);
}

/* A stage is its peer's: another peer's offer of the same id finds nothing. */
static void test_stage_peer(void)
{
	char path[512];
	struct store_clock c = clk(1, 1000);
	struct store *s = open_db(path, sizeof(path), &c, true);
	size_t len = 800 * KIB;
	uint8_t *p = pattern(len, 2), id[32];
	struct store_stage *st = NULL, *st2 = NULL;
	memset(id, 0x17, 32);
	if (!s || !p)
		goto out;
	CHECK_EQ(store_stage_open(s, PEER_A, id, len, 0, 3600000, NOLIM, &c, &st), 0);
	if (st) {
		CHECK(append(st, p, 500 * KIB, 65536));
		CHECK_EQ(store_stage_sync(st), 0);
	}
	CHECK_EQ(have_of(s, PEER_A, id, len), 500 * KIB);
	CHECK_EQ(have_of(s, PEER_B, id, len), 0);
	CHECK_EQ(store_stage_open(s, PEER_B, id, len, 500 * KIB, 3600000, NOLIM, &c, &st2),
		 -ESTALE);
	/* B stages its own copy beside A's, from 0. */
	CHECK_EQ(store_stage_open(s, PEER_B, id, len, 0, 3600000, NOLIM, &c, &st2), 0);
	if (st2) {
		CHECK(append(st2, p, 300 * KIB, 65536));
		CHECK_EQ(store_stage_sync(st2), 0);
	}
	CHECK_EQ(files(path, "in-"), 2);
	CHECK_EQ(have_of(s, PEER_A, id, len), 500 * KIB);
	CHECK_EQ(have_of(s, PEER_B, id, len), 300 * KIB);
	CHECK_EQ(store_stage_drop(st2), 0);
	st2 = NULL;
	CHECK_EQ(have_of(s, PEER_A, id, len), 500 * KIB);
	CHECK_EQ(files(path, "in-"), 1);
out:
	store_stage_close(st);
	store_stage_close(st2);
	store_close(s);
	free(p);
}

/* Stages survive a crash-like close and the sweep at the next open; orphans do not. */
static void test_stage_reopen(void)
{
	char path[512], orphan[700], tmpname[700];
	struct store_clock c = clk(1, 1000);
	struct store *s = open_db(path, sizeof(path), &c, true);
	size_t len = 2 * 1024 * KIB;
	uint8_t *p = pattern(len, 3), id[32], id2[32];
	struct store_stage *st = NULL;
	memset(id, 0x42, 32);
	memset(id2, 0x43, 32);
	if (!s || !p)
		goto out;
	CHECK_EQ(store_stage_open(s, PEER_A, id, len, 0, 3600000, NOLIM, &c, &st), 0);
	if (st) {
		CHECK(append(st, p, 700 * KIB, 65536));
		CHECK_EQ(store_stage_sync(st), 0);
		CHECK(append(st, p + 700 * KIB, 400 * KIB, 65536)); /* lost with the crash */
	}
	/* A file of a stage whose row never committed, and a temporary file. */
	snprintf(orphan, sizeof(orphan), "%s-payloads/in-%016llx-", path,
		 (unsigned long long)PEER_A);
	for (int i = 0; i < 32; i++)
		snprintf(orphan + strlen(orphan), 3, "%02x", id2[i]);
	snprintf(tmpname, sizeof(tmpname), "%s-payloads/tmp-0011223344556677", path);
	FILE *f = fopen(orphan, "w");
	CHECK(f != NULL);
	if (f)
		fclose(f);
	f = fopen(tmpname, "w");
	CHECK(f != NULL);
	if (f)
		fclose(f);
	CHECK_EQ(files(path, "in-"), 2);

	/* The crash: the stage's descriptor goes, the store is closed without more. */
	store_stage_close(st);
	st = NULL;
	store_close(s);
	c = clk(2, 500); /* and a reboot */
	s = open_db(path, sizeof(path), &c, false);
	if (!s)
		goto out;
	CHECK_EQ(files(path, "in-"), 1); /* the orphan went, the stage stayed */
	CHECK_EQ(files(path, "tmp-"), 0);
	CHECK_EQ(have_of(s, PEER_A, id, len), 700 * KIB);
	CHECK_EQ(have_of(s, PEER_A, id2, len), 0);
	CHECK_EQ(store_stage_open(s, PEER_A, id, len, 700 * KIB, 3600000, NOLIM, &c, &st), 0);
	if (st) {
		CHECK(append(st, p + 700 * KIB, len - 700 * KIB, 65536));
		CHECK(read_back(st, p, len));
		CHECK_EQ(store_stage_drop(st), 0);
		st = NULL;
	}
	CHECK_EQ(files(path, "in-"), 0);
out:
	store_stage_close(st);
	store_close(s);
	free(p);
}

/* An expired stage is dropped by store_purge_expired, its file with it; a live one stays. */
static void test_stage_expiry(void)
{
	char path[512];
	struct store_clock c = clk(1, 1000);
	struct store *s = open_db(path, sizeof(path), &c, true);
	size_t len = 600 * KIB;
	uint8_t *p = pattern(len, 4), old[32], young[32];
	struct store_stage *st = NULL;
	uint64_t count = 9;
	memset(old, 1, 32);
	memset(young, 2, 32);
	if (!s || !p)
		goto out;
	CHECK_EQ(store_stage_open(s, PEER_A, old, len, 0, 60000, NOLIM, &c, &st), 0);
	if (st) {
		CHECK(append(st, p, len, 65536));
		CHECK_EQ(store_stage_sync(st), 0);
		store_stage_close(st);
		st = NULL;
	}
	CHECK_EQ(store_stage_open(s, PEER_A, young, len, 0, 3600000, NOLIM, &c, &st), 0);
	if (st) {
		CHECK(append(st, p, len, 65536));
		CHECK_EQ(store_stage_sync(st), 0);
		store_stage_close(st);
		st = NULL;
	}
	CHECK_EQ(files(path, "in-"), 2);
	c = clk(1, 1000 + 59999);
	CHECK_EQ(store_purge_expired(s, &c, &count), 0);
	CHECK_EQ(have_of(s, PEER_A, old, len), len); /* not yet */
	c = clk(1, 1000 + 60000);
	CHECK_EQ(store_purge_expired(s, &c, &count), 0);
	CHECK_EQ(have_of(s, PEER_A, old, len), 0);
	CHECK_EQ(have_of(s, PEER_A, young, len), len);
	CHECK_EQ(files(path, "in-"), 1);

	/* Residence counts across a reboot as for bundles. */
	store_close(s);
	c = clk(2, 10);
	s = open_db(path, sizeof(path), &c, false);
	if (!s)
		goto out;
	c = clk(2, 10 + 3600000 - 60000 - 1);
	CHECK_EQ(store_purge_expired(s, &c, &count), 0);
	CHECK_EQ(have_of(s, PEER_A, young, len), len);
	c = clk(2, 10 + 3600000 - 60000 + 1);
	CHECK_EQ(store_purge_expired(s, &c, &count), 0);
	CHECK_EQ(have_of(s, PEER_A, young, len), 0);
	CHECK_EQ(files(path, "in-"), 0);
out:
	store_stage_close(st);
	store_close(s);
	free(p);
}

/* A peer can make this node stage at most peer_max payload bytes. */
static void test_stage_quota(void)
{
	char path[512];
	struct store_clock c = clk(1, 1000);
	struct store *s = open_db(path, sizeof(path), &c, true);
	size_t len = 600 * KIB;
	uint8_t *p = pattern(len, 5), a[32], b[32];
	struct store_stage *st = NULL, *st2 = NULL;
	uint64_t have = 0, bytes = 0;
	memset(a, 5, 32);
	memset(b, 6, 32);
	if (!s || !p)
		goto out;
	CHECK_EQ(store_stage_open(s, PEER_A, a, len, 0, 3600000, PEERCAP(len - 1), &c, &st),
		 -EDQUOT);
	CHECK_EQ(store_stage_open(s, PEER_A, a, len, 0, 3600000, PEERCAP(len + 1000), &c, &st), 0);
	if (st) {
		CHECK(append(st, p, len, 65536));
		CHECK_EQ(store_stage_sync(st), 0);
	}
	CHECK_EQ(store_stage_have(s, PEER_A, b, len, &have, &bytes), 0);
	CHECK_EQ(bytes, len);
	CHECK_EQ(store_stage_have(s, PEER_B, b, len, &have, &bytes), 0);
	CHECK_EQ(bytes, 0);
	CHECK_EQ(store_stage_open(s, PEER_A, b, len, 0, 3600000, PEERCAP(len + 1000), &c, &st2),
		 -EDQUOT);
	CHECK_EQ(store_stage_open(s, PEER_B, b, len, 0, 3600000, PEERCAP(len + 1000), &c, &st2), 0);
	store_stage_close(st2);
	st2 = NULL;
	/* Both open under the cap, then the first fills its file: the second is refused then. */
	CHECK_EQ(store_stage_drop(st), 0);
	st = NULL;
	CHECK_EQ(store_stage_open(s, PEER_A, a, len, 0, 3600000, PEERCAP(len + 1000), &c, &st), 0);
	CHECK_EQ(store_stage_open(s, PEER_A, b, len, 0, 3600000, PEERCAP(len + 1000), &c, &st2), 0);
	if (st && st2) {
		CHECK(append(st, p, len, 65536));
		CHECK_EQ(store_stage_sync(st), 0);
		CHECK_EQ(store_stage_append(st2, p, len), -EDQUOT);
		CHECK_EQ(store_stage_sync(st2), -EDQUOT); /* it sticks */
	}
out:
	store_stage_close(st);
	store_stage_close(st2);
	store_close(s);
	free(p);
}

/* A failed fdatasync poisons the stage: a later sync that succeeds does not move have. */
static void test_stage_sync_poison(void)
{
	char path[512];
	struct store_clock c = clk(1, 1000);
	struct store *s = open_db(path, sizeof(path), &c, true);
	size_t len = 1200 * KIB;
	uint8_t *p = pattern(len, 11), id[32];
	struct store_stage *st = NULL;
	memset(id, 0x31, 32);
	if (!s || !p)
		goto out;
	CHECK_EQ(store_stage_open(s, PEER_A, id, len, 0, 3600000, NOLIM, &c, &st), 0);
	if (!st)
		goto out;
	CHECK(append(st, p, 300 * KIB, 65536));
	CHECK_EQ(store_stage_sync(st), 0);
	CHECK_EQ(have_of(s, PEER_A, id, len), 300 * KIB);
	CHECK(append(st, p + 300 * KIB, 300 * KIB, 65536));
	store_testing_stage_sync_fail(1);
	CHECK_EQ(store_stage_sync(st), -EIO);
	/* The kernel reported it once; the next fdatasync would succeed, but have stays. */
	CHECK_EQ(store_stage_append(st, p + 600 * KIB, 1000), -EIO);
	CHECK_EQ(store_stage_sync(st), -EIO);
	CHECK_EQ(store_stage_durable(st), 300 * KIB);
	CHECK_EQ(have_of(s, PEER_A, id, len), 300 * KIB);
	CHECK_EQ(store_stage_drop(st), 0);
	st = NULL;
	CHECK_EQ(have_of(s, PEER_A, id, len), 0);
out:
	store_testing_stage_sync_fail(0);
	store_stage_close(st);
	store_close(s);
	free(p);
}

/* The store closed before its stages: they are made durable, orphaned, safe to close. */
static void test_stage_orphan(void)
{
	char path[512];
	struct store_clock c = clk(1, 1000);
	struct store *s = open_db(path, sizeof(path), &c, true);
	size_t len = 1200 * KIB;
	uint8_t *p = pattern(len, 12), id[32], id2[32], buf[16];
	struct store_stage *st = NULL, *st2 = NULL;
	memset(id, 0x32, 32);
	memset(id2, 0x33, 32);
	if (!s || !p)
		goto out;
	CHECK_EQ(store_stage_open(s, PEER_A, id, len, 0, 3600000, NOLIM, &c, &st), 0);
	CHECK_EQ(store_stage_open(s, PEER_B, id2, len, 0, 3600000, NOLIM, &c, &st2), 0);
	if (!st || !st2)
		goto out;
	CHECK(append(st, p, 700 * KIB, 65536)); /* a file, not synced */
	CHECK(append(st2, p, 1000, 1000));	/* in memory only */
	store_close(s);
	s = NULL;
	CHECK_EQ(store_stage_sync(st), -EBADF);
	CHECK_EQ(store_stage_append(st, p, 10), -EBADF);
	CHECK_EQ(store_stage_read(st, 0, buf, sizeof(buf)), -EBADF);
	CHECK_EQ(store_stage_read(st2, 0, buf, sizeof(buf)), -EBADF);
	CHECK_EQ(store_stage_drop(st2), -EBADF); /* frees it all the same */
	st2 = NULL;
	store_stage_close(st);
	st = NULL;
	s = open_db(path, sizeof(path), &c, false);
	if (!s)
		goto out;
	CHECK_EQ(have_of(s, PEER_A, id, len), 700 * KIB); /* synced when orphaned */
	CHECK_EQ(store_stage_open(s, PEER_A, id, len, 700 * KIB, 3600000, NOLIM, &c, &st), 0);
out:
	store_stage_close(st);
	store_stage_close(st2);
	store_close(s);
	free(p);
}

struct race {
	struct store *s;
	const uint8_t *id, *p;
	size_t len;
	int ret;
};

/* Another session restarts the stage from 0 and syncs less than the first one had. */
static void restart_stage(void *ctx)
{
	struct race *r = ctx;
	struct store_stage *st = NULL;
	struct store_clock c = clk(1, 1000);
	r->ret = store_stage_open(r->s, PEER_A, r->id, r->len, 0, 3600000, NOLIM, &c, &st);
	if (st && append(st, r->p, 300 * KIB, 65536))
		r->ret = store_stage_sync(st);
	store_stage_close(st);
}

/* A stage's row is read again once its file is locked: what changed meanwhile is stale. */
static void test_stage_reopen_race(void)
{
	char path[512];
	struct store_clock c = clk(1, 1000);
	struct store *s = open_db(path, sizeof(path), &c, true), *s2 = NULL;
	size_t len = 1200 * KIB;
	uint8_t *p = pattern(len, 13), id[32];
	struct store_stage *st = NULL;
	memset(id, 0x34, 32);
	if (!s || !p)
		goto out;
	s2 = open_db(path, sizeof(path), &c, false);
	CHECK_EQ(store_stage_open(s, PEER_A, id, len, 0, 3600000, NOLIM, &c, &st), 0);
	if (!st || !s2)
		goto out;
	CHECK(append(st, p, 600 * KIB, 65536));
	CHECK_EQ(store_stage_sync(st), 0);
	store_stage_close(st);
	st = NULL;
	struct race r = {s2, id, p, len, -1};
	store_testing_stage_before_lock(restart_stage, &r);
	CHECK_EQ(store_stage_open(s, PEER_A, id, len, 600 * KIB, 3600000, NOLIM, &c, &st), -ESTALE);
	CHECK_EQ(r.ret, 0);
	CHECK(st == NULL);
	CHECK_EQ(have_of(s, PEER_A, id, len), 300 * KIB);
out:
	store_testing_stage_before_lock(NULL, NULL);
	store_stage_close(st);
	store_close(s2);
	store_close(s);
	free(p);
}

/* A drop that cannot delete the row voids the stage: no resume from its bytes. */
static void test_stage_drop_fails(void)
{
	char path[512];
	struct store_clock c = clk(1, 1000);
	struct store *s = open_db(path, sizeof(path), &c, true);
	size_t len = 1200 * KIB;
	uint8_t *p = pattern(len, 14), id[32];
	struct store_stage *st = NULL;
	struct store_writer *w = NULL;
	memset(id, 0x35, 32);
	if (!s || !p)
		goto out;
	CHECK_EQ(store_stage_open(s, PEER_A, id, len, 0, 3600000, NOLIM, &c, &st), 0);
	if (!st)
		goto out;
	CHECK(append(st, p, 600 * KIB, 65536));
	CHECK_EQ(store_stage_sync(st), 0);
	CHECK_EQ(store_writer_begin(s, &c, &w), 0); /* the store's writer: no unit can begin */
	CHECK_EQ(store_stage_drop(st), -EBUSY);
	st = NULL;
	store_writer_abort(w);
	CHECK_EQ(have_of(s, PEER_A, id, len), 0);
	/* And a new transfer of it starts afresh. */
	CHECK_EQ(store_stage_open(s, PEER_A, id, len, 0, 3600000, NOLIM, &c, &st), 0);
	if (st) {
		CHECK(append(st, p, len, 65536));
		CHECK_EQ(store_stage_sync(st), 0);
		CHECK(read_back(st, p, len));
	}
	CHECK_EQ(have_of(s, PEER_A, id, len), len);
out:
	store_stage_close(st);
	store_close(s);
	free(p);
}

static uint64_t free_bytes(const char *db)
{
	struct statvfs v;
	return statvfs(db, &v) == 0 ? (uint64_t)v.f_bavail * v.f_frsize : 0;
}

/* All peers' stages together, and the disk's free space, bound what stages take. */
static void test_stage_disk(void)
{
	char path[512], file[700];
	struct store_clock c = clk(1, 1000);
	struct store *s = open_db(path, sizeof(path), &c, true);
	size_t len = 2048 * KIB;
	uint8_t *p = pattern(len, 15), a[32], b[32];
	struct store_stage *st = NULL, *st2 = NULL;
	struct store_stage_limits lim = {UINT64_MAX, 3 * len, 0, 0, UINT64_MAX, 0};
	struct stat sb;
	memset(a, 0x36, 32);
	memset(b, 0x37, 32);
	if (!s || !p)
		goto out;
	CHECK_EQ(store_stage_open(s, PEER_A, a, len, 0, 3600000, &lim, &c, &st), 0);
	if (!st)
		goto out;
	CHECK(append(st, p, 600 * KIB, 65536));
	CHECK_EQ(store_stage_sync(st), 0);
	/* Its file holds the blocks of the whole payload, not only of what came. */
	snprintf(file, sizeof(file), "%s-payloads/in-%016llx-", path, (unsigned long long)PEER_A);
	for (int i = 0; i < 32; i++)
		snprintf(file + strlen(file), 3, "%02x", a[i]);
	CHECK(stat(file, &sb) == 0 && (uint64_t)sb.st_blocks * 512 >= len);
	CHECK_EQ(sb.st_size, 600 * KIB);

	/* Another peer's stage: under the total with it, not with twice it. */
	CHECK_EQ(store_stage_admit(s, PEER_B, b, 2 * len, 0, &lim), 0);
	CHECK_EQ(store_stage_admit(s, PEER_B, b, 2 * len + 1, 0, &lim), -ENOSPC);
	CHECK(strstr(store_errmsg(s), "in all") != NULL);
	CHECK_EQ(store_stage_open(s, PEER_B, b, 2 * len + 1, 0, 3600000, &lim, &c, &st2), -ENOSPC);
	CHECK_EQ(store_stage_admit(s, PEER_A, a, 3 * len, 0, &lim), 0); /* its own is not counted */

	/* The reserve: what the disk keeps free after a transfer and its copy. */
	uint64_t avail = free_bytes(path);
	CHECK(avail > (200ull << 20));
	lim.total_max = UINT64_MAX;
	lim.reserve = avail - (100ull << 20);
	CHECK_EQ(store_stage_admit(s, PEER_B, b, 1000, 0, &lim), 0);
	CHECK_EQ(store_stage_admit(s, PEER_B, b, 40ull << 20, 0, &lim), 0);	  /* 80 MiB */
	CHECK_EQ(store_stage_admit(s, PEER_B, b, 60ull << 20, 0, &lim), -ENOSPC); /* 120 MiB */
	CHECK(strstr(store_errmsg(s), "disk full") != NULL);
	/* Resumed at 30 MiB: 90 MiB to go. */
	CHECK_EQ(store_stage_admit(s, PEER_B, b, 60ull << 20, 30ull << 20, &lim), 0);
	CHECK_EQ(store_stage_open(s, PEER_B, b, 60ull << 20, 0, 3600000, &lim, &c, &st2), -ENOSPC);
	lim.reserve = 0;
	lim.reserve_pct = 100; /* a percentage of the disk's size */
	CHECK_EQ(store_stage_admit(s, PEER_B, b, 1000, 0, &lim), -ENOSPC);
	lim.reserve_pct = 0;
	CHECK_EQ(store_stage_admit(s, PEER_B, b, 1000, 0, &lim), 0);
	/* The stage already allocated its file: a resume needs only the copy's room. */
	lim.reserve = free_bytes(path) - len - (len / 2);
	CHECK_EQ(store_stage_admit(s, PEER_A, a, len, 600 * KIB, &lim), 0);
	CHECK_EQ(store_stage_admit(s, PEER_B, b, len, 600 * KIB, &lim), -ENOSPC);
out:
	store_stage_close(st);
	store_stage_close(st2);
	store_close(s);
	free(p);
}

/* A stage's life is clamped; one without progress goes after the idle time. */
static void test_stage_life(void)
{
	char path[512];
	struct store_clock c = clk(1, 1000);
	struct store *s = open_db(path, sizeof(path), &c, true);
	size_t len = 600 * KIB;
	uint8_t *p = pattern(len, 16), a[32], b[32];
	struct store_stage *st = NULL;
	struct store_stage_limits lim = {UINT64_MAX, UINT64_MAX, 0, 0, 100000, 0};
	uint64_t count = 9, idle = 50000;
	memset(a, 0x38, 32);
	memset(b, 0x39, 32);
	if (!s || !p)
		goto out;
	/* A peer says 2^64 - 1 ms: the stage lives life_max_ms. */
	CHECK_EQ(store_stage_open(s, PEER_A, a, len, 0, UINT64_MAX, &lim, &c, &st), 0);
	if (st) {
		CHECK(append(st, p, len, 65536));
		CHECK_EQ(store_stage_sync(st), 0);
		store_stage_close(st);
		st = NULL;
	}
	c = clk(1, 1000 + 99999);
	CHECK_EQ(store_purge_expired(s, &c, &count), 0);
	CHECK_EQ(have_of(s, PEER_A, a, len), len);
	c = clk(1, 1000 + 100000);
	CHECK_EQ(store_purge_expired(s, &c, &count), 0);
	CHECK_EQ(have_of(s, PEER_A, a, len), 0);

	/* Idle: progress (a sync that moves have) restarts the clock; nothing else does. */
	c = clk(1, 200000);
	lim.life_max_ms = UINT64_MAX;
	CHECK_EQ(store_stage_open(s, PEER_A, b, len, 0, 3600000, &lim, &c, &st), 0);
	if (!st)
		goto out;
	CHECK(append(st, p, 300 * KIB, 65536));
	CHECK_EQ(store_stage_sync(st), 0);
	c = clk(1, 200000 + idle - 1);
	CHECK_EQ(store_stage_expire(s, &c, idle, &count), 0);
	CHECK_EQ(count, 0);
	CHECK(append(st, p + 300 * KIB, 100 * KIB, 65536));
	CHECK_EQ(store_stage_sync(st), 0); /* at 200000 + idle - 1 */
	c = clk(1, 200000 + idle + 10);
	CHECK_EQ(store_stage_expire(s, &c, idle, &count), 0);
	CHECK_EQ(count, 0);
	CHECK_EQ(store_stage_expire(s, &c, 0, &count), 0); /* 0: no idle limit */
	CHECK_EQ(count, 0);
	CHECK_EQ(store_stage_sync(st), 0); /* nothing new: no progress, no restart */
	c = clk(1, 200000 + 2 * idle - 1);
	CHECK_EQ(store_stage_expire(s, &c, idle, &count), 0);
	CHECK_EQ(count, 1);
	CHECK_EQ(have_of(s, PEER_A, b, len), 0);
	CHECK_EQ(files(path, "in-"), 0);
	/* The session that had it open finds out at its next sync. */
	CHECK(append(st, p + 400 * KIB, 10 * KIB, 65536));
	CHECK_EQ(store_stage_sync(st), -ENOENT);
	/* The bundle's life still counts from the creation across the restarts. */
	store_stage_close(st);
	st = NULL;
	c = clk(1, 300000);
	CHECK_EQ(store_stage_open(s, PEER_A, b, len, 0, 3600000, &lim, &c, &st), 0);
	if (st) {
		CHECK(append(st, p, 300 * KIB, 65536));
		CHECK_EQ(store_stage_sync(st), 0);
		c = clk(1, 300000 + 40000);
		CHECK_EQ(store_stage_expire(s, &c, idle, &count), 0);
		CHECK(append(st, p + 300 * KIB, 10 * KIB, 65536));
		CHECK_EQ(store_stage_sync(st), 0);
	}
	c = clk(1, 300000 + 3600000 - 1);
	CHECK_EQ(store_stage_expire(s, &c, 0, &count), 0);
	CHECK_EQ(count, 0);
	c = clk(1, 300000 + 3600000);
	CHECK_EQ(store_stage_expire(s, &c, 0, &count), 0);
	CHECK_EQ(count, 1);
out:
	store_stage_close(st);
	store_close(s);
	free(p);
}

int main(void)
{
	if (!mkdtemp(dir))
		return 1;
	test_stage_resume();
	test_stage_peer();
	test_stage_reopen();
	test_stage_expiry();
	test_stage_quota();
	test_stage_sync_poison();
	test_stage_orphan();
	test_stage_reopen_race();
	test_stage_drop_fails();
	test_stage_disk();
	test_stage_life();
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "test_store_stage: could not remove %s\n", dir);
	TEST_MAIN_END();
}
