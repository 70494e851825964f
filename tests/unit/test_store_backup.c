/* store_backup: one snapshot for the database and its payload files, while another writer works. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store.h"
#include "test.h"

#define MIB (1024 * 1024)

static char dir[] = "/tmp/tern-test-backup.XXXXXX";
static const struct store_clock now = {.unix_ms = 1700000000000ull, .boot_ms = 1000};

static uint8_t pat(uint64_t i, uint8_t seed)
{
	return (uint8_t)(((i + seed * 0x9e3779b97f4a7c15ull) * 0xff51afd7ed558ccdull) >> 56);
}

/* A bundle of size bytes whose id is 32 bytes of seed; from a megabyte on, in a file. */
static int put(struct store *s, uint8_t seed, uint64_t size)
{
	struct store_writer *w;
	struct store_bundle b = {0};
	uint8_t buf[4096], head[8] = {seed};
	int ret = store_writer_begin(s, &now, &w);
	if (ret)
		return ret;
	if ((ret = store_writer_expect(w, size)) != 0) {
		store_writer_abort(w);
		return ret;
	}
	for (uint64_t off = 0; off < size; off += sizeof(buf)) {
		size_t n = size - off < sizeof(buf) ? (size_t)(size - off) : sizeof(buf);
		for (size_t i = 0; i < n; i++)
			buf[i] = pat(off + i, seed);
		if ((ret = store_writer_append(w, buf, n)) != 0) {
			store_writer_abort(w);
			return ret;
		}
	}
	memset(b.id, seed, 32);
	b.state = STORE_QUEUED;
	b.dest_node = 7;
	b.lifetime_ms = 86400000;
	b.payload_len = size;
	return store_writer_commit(w, &b, head, sizeof(head), NULL);
}

struct check {
	uint8_t seed;
	uint64_t off;
	bool ok;
};

static int check_chunk(void *ctx, const uint8_t *buf, size_t len)
{
	struct check *c = ctx;
	for (size_t i = 0; i < len; i++)
		c->ok &= buf[i] == pat(c->off + i, c->seed);
	c->off += len;
	return 0;
}

static bool has(struct store *s, uint8_t seed, uint64_t size)
{
	struct store_bundle b;
	uint8_t id[32];
	memset(id, seed, 32);
	if (store_bundle_get(s, id, NULL, &b, NULL, 0, NULL) != 0)
		return false;
	struct check c = {.seed = seed, .ok = true};
	return store_payload_read(s, b.rowid, check_chunk, &c) == 0 && c.ok && c.off == size;
}

/* The fn of store_backup: copies each file into the copy's payload directory. */
struct copier {
	char dest[600];
	unsigned calls;
	const char *live; /* on the first call, another connection changes the store */
	bool change;
};

static int copy_file(void *ctx, const char *name, int fd)
{
	struct copier *c = ctx;
	char path[700];
	if (c->change && c->calls++ == 0) {
		/* The daemon goes on: a new bundle, and one of the snapshot's deleted and swept. */
		struct store *other;
		const char *why;
		uint8_t id[32];
		memset(id, 3, 32);
		CHECK_EQ(store_open(c->live, &now, &other, &why), 0);
		CHECK_EQ(put(other, 4, 10), 0);
		CHECK_EQ(store_bundle_delete(other, id), 0);
		store_close(other);
	}
	snprintf(path, sizeof(path), "%s-payloads/%s", c->dest, name);
	int out = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (out < 0)
		return -errno;
	char buf[65536];
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n)
			n = -1;
	close(out);
	return n < 0 ? -EIO : 0;
}

static struct store *open_copy(const char *path)
{
	struct store *s = NULL;
	const char *why = NULL;
	int ret = store_open(path, &now, &s, &why);
	if (ret)
		fprintf(stderr, "%s: %s\n", path, why ? why : strerror(-ret));
	return s;
}

static void run(bool change)
{
	char live[600], copy[600], payloads[700];
	struct store *s;
	const char *why;
	snprintf(live, sizeof(live), "%s/live%d.db", dir, change);
	snprintf(copy, sizeof(copy), "%s/copy%d.db", dir, change);
	CHECK_EQ(store_open(live, &now, &s, &why), 0);
	CHECK_EQ(put(s, 1, 300), 0);
	CHECK_EQ(put(s, 2, MIB + 5), 0);
	CHECK_EQ(put(s, 3, 2 * MIB), 0);

	snprintf(payloads, sizeof(payloads), "%s-payloads", copy);
	struct copier c = {.live = live, .change = change};
	snprintf(c.dest, sizeof(c.dest), "%s", copy);
	/* The caller makes the copy's file (0600) and its payload directory. */
	close(open(copy, O_WRONLY | O_CREAT | O_EXCL, 0600));
	CHECK_EQ(mkdir(payloads, 0700), 0);
	unsigned n_files = 0;
	CHECK_EQ(store_backup(s, copy, &n_files, copy_file, &c, &why), 0);
	CHECK_EQ(n_files, change ? 1 : 2);
	store_close(s);

	struct store *r = open_copy(copy);
	CHECK(r != NULL);
	if (r) {
		CHECK(has(r, 1, 300));
		CHECK(has(r, 2, MIB + 5));
		/* Deleted and swept after the snapshot began: gone from the copy, not broken in it.
		 */
		CHECK(has(r, 3, 2 * MIB) == !change);
		CHECK(!has(r, 4, 10)); /* committed after the snapshot */
		store_close(r);
	}
	/* The live store is unharmed and has what the other connection did. */
	CHECK_EQ(store_open(live, &now, &s, &why), 0);
	CHECK(has(s, 2, MIB + 5));
	CHECK(has(s, 4, 10) == change);
	CHECK(has(s, 3, 2 * MIB) == !change);
	store_close(s);
}

/* A failing fn stops the backup with its error; the store is left as it was. */
static int refuse(void *ctx, const char *name, int fd)
{
	return -ENOSPC;
}

static void test_fn_error(void)
{
	char live[600], copy[600];
	struct store *s;
	const char *why;
	unsigned n;
	snprintf(live, sizeof(live), "%s/live1.db", dir);
	snprintf(copy, sizeof(copy), "%s/copy-err.db", dir);
	CHECK_EQ(store_open(live, &now, &s, &why), 0);
	CHECK_EQ(store_backup(s, copy, &n, refuse, NULL, &why), -ENOSPC);
	/* Its read transaction ended: the store writes again. */
	CHECK_EQ(put(s, 9, 10), 0);
	store_close(s);
}

int main(void)
{
	if (!mkdtemp(dir))
		return 1;
	run(false);
	run(true);
	test_fn_error();
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
	TEST_MAIN_END();
}
