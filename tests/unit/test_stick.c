/* The stick module on real files: pieces, pulled sticks, hostile entries, full and RO media. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crypto/crypto.h"
#include "transports/stick.h"
#include "test.h"

static char base[64];
static int dir_seq;

/* ---- helpers ------------------------------------------------------------------------ */

static void fresh_dir(char *out, size_t cap)
{
	snprintf(out, cap, "%s/d%d", base, ++dir_seq);
	if (mkdir(out, 0755) != 0) {
		perror(out);
		exit(2);
	}
}

static void path_of(char *out, size_t cap, const char *dir, const char *sub, const char *name)
{
	snprintf(out, cap, "%s/tern/%s/%s", dir, sub, name);
}

/* Where a bundle file of that name lives: DIR/tern/bundles/<its first character>/NAME. */
static char *bundle_path(char *out, size_t cap, const char *dir, const char *name)
{
	char sub[512];
	char h = name[0] >= 'A' && name[0] <= 'F' ? (char)(name[0] + 32) : name[0];
	snprintf(sub, sizeof(sub), "%s/tern/bundles/%c", dir, h);
	mkdir(sub, 0755); /* as tern would for a bundle of its own */
	snprintf(out, cap, "%s/%s", sub, name);
	return out;
}

static void make_id(uint8_t id[32], int seed)
{
	for (int i = 0; i < 32; i++)
		id[i] = (uint8_t)(seed * 37 + i * 11);
}

static void id_name(const uint8_t id[32], const char *suffix, char *out)
{
	for (int i = 0; i < 32; i++)
		sprintf(out + 2 * i, "%02x", id[i]);
	strcpy(out + 64, suffix);
}

/* The name of a bundle file as listed: "<h>/<64 hex><suffix>". */
static void ename(const uint8_t id[32], const char *suffix, char *out)
{
	out[0] = "0123456789abcdef"[id[0] >> 4];
	out[1] = '/';
	id_name(id, suffix, out + 2);
}

static void pattern(uint8_t *buf, size_t len, uint64_t off)
{
	for (size_t i = 0; i < len; i++) {
		uint64_t x = off + i;
		buf[i] = (uint8_t)(x ^ (x >> 8) ^ (x >> 17));
	}
}

/* Writes size bytes of pattern at path; sizes over 64 MiB are made sparse. */
static void make_file(const char *path, uint64_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0) {
		perror(path);
		exit(2);
	}
	if (size > (64u << 20)) {
		CHECK_EQ(ftruncate(fd, (off_t)size), 0);
	} else if (size) {
		uint8_t *b = malloc(size);
		pattern(b, size, 0);
		CHECK_EQ(write(fd, b, size), (long long)size);
		free(b);
	}
	close(fd);
}

static bool exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	if (flag == FTW_DP || flag == FTW_D)
		chmod(path, 0755);
	return remove(path) == 0 || errno == ENOENT ? 0 : 0;
}

static void rm_rf(const char *path)
{
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/*
 * Counts names ending in suffix in dir and its one-character subdirectories (those of
 * bundles/), by hand: independent of the module.
 */
static int count_files(const char *dir, const char *suffix)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	while (d && (e = readdir(d))) {
		size_t l = strlen(e->d_name), sl = strlen(suffix);
		if (l >= sl && strcmp(e->d_name + l - sl, suffix) == 0)
			n++;
		if (l == 1 && e->d_name[0] != '.') {
			char sub[1024];
			snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name);
			n += count_files(sub, suffix);
		}
	}
	if (d)
		closedir(d);
	return n;
}

/* Counts the entries of dir but "." and "..". */
static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	while (d && (e = readdir(d)))
		n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
	if (d)
		closedir(d);
	return n;
}

static struct stick *open_ok(const char *dir, bool writable)
{
	struct stick *s = NULL;
	char why[512] = "";
	int ret = stick_open(dir, writable, &s, why, sizeof(why));
	CHECK_EQ(ret, 0);
	if (ret)
		fprintf(stderr, "  stick_open(%s): %s\n", dir, why);
	return s;
}

struct membuf {
	uint8_t *buf;
	size_t len, cap;
};

static int mem_sink(void *ctx, const uint8_t *buf, size_t len)
{
	struct membuf *m = ctx;
	if (m->len + len > m->cap) {
		m->cap = (m->len + len) * 2;
		m->buf = realloc(m->buf, m->cap);
	}
	memcpy(m->buf + m->len, buf, len);
	m->len += len;
	return 0;
}

static int null_sink(void *ctx, const uint8_t *buf, size_t len)
{
	uint64_t *n = ctx;
	(void)buf;
	*n += len;
	return 0;
}

struct entries {
	size_t n;
	struct stick_entry e[64];
};

static int collect(void *ctx, const struct stick_entry *e)
{
	struct entries *l = ctx;
	if (l->n < 64)
		l->e[l->n] = *e;
	l->n++;
	return 0;
}

static const struct stick_entry *find(const struct entries *l, const char *name)
{
	for (size_t i = 0; i < l->n && i < 64; i++)
		if (strcmp(l->e[i].name, name) == 0)
			return &l->e[i];
	return NULL;
}

/* Writes a bundle of len pattern bytes in uneven chunks and commits it. */
static int write_bundle(struct stick *s, const uint8_t id[32], uint64_t len, uint64_t hint,
			uint8_t hash[32])
{
	struct stick_writer *w;
	uint8_t chunk[7919];
	uint64_t size = 0;
	int ret = stick_bundle_begin(s, id, hint, &w);
	if (ret < 0)
		return ret;
	for (uint64_t off = 0; off < len;) {
		size_t n = (size_t)(len - off < sizeof(chunk) ? len - off : sizeof(chunk));
		n = n > 1 + off % 5000 ? 1 + off % 5000 : n; /* uneven */
		pattern(chunk, n, off);
		ret = stick_bundle_write(w, chunk, n);
		if (ret < 0) {
			stick_bundle_abort(w);
			return ret;
		}
		off += n;
	}
	ret = stick_bundle_commit(w, hash, &size);
	if (ret == 0)
		CHECK_EQ(size, len);
	return ret;
}

static void expected_hash(uint64_t len, uint8_t out[32])
{
	struct hash *h = hash_new(32, NULL, 0);
	uint8_t buf[65536];
	for (uint64_t off = 0; off < len;) {
		size_t n = (size_t)(len - off < sizeof(buf) ? len - off : sizeof(buf));
		pattern(buf, n, off);
		hash_update(h, buf, n);
		off += n;
	}
	hash_final(h, out);
}

/* Reads an entry back and checks the bytes and both hashes against the pattern. */
static void check_read_back(struct stick *s, const struct stick_entry *e, uint64_t len)
{
	struct membuf m = {0};
	uint8_t hash[32], want[32];
	int ret = stick_bundle_read(s, e, mem_sink, &m, hash);
	CHECK_EQ(ret, 0);
	if (ret)
		fprintf(stderr, "  read %s: %s\n", e->name, stick_error(s));
	CHECK_EQ(m.len, len);
	uint8_t *b = malloc(len ? len : 1);
	pattern(b, len, 0);
	CHECK(m.len == len && memcmp(m.buf, b, len) == 0);
	expected_hash(len, want);
	CHECK_MEM(hash, want, 32);
	free(b);
	free(m.buf);
}

static void set_piece_max(const char *v)
{
	if (v)
		setenv(STICK_PIECE_MAX_ENV, v, 1);
	else
		unsetenv(STICK_PIECE_MAX_ENV);
}

/* ---- open ----------------------------------------------------------------------------- */

static void test_open(void)
{
	char dir[256], p[1024], why[512];
	struct stick *s = NULL, *s2 = NULL;

	fresh_dir(dir, sizeof(dir));
	snprintf(p, sizeof(p), "%s/missing", dir);
	CHECK_EQ(stick_open(p, true, &s, why, sizeof(why)), -ENOENT);
	CHECK(s == NULL && strstr(why, p) && strstr(why, "no such directory"));

	snprintf(p, sizeof(p), "%s/file", dir);
	make_file(p, 3);
	CHECK_EQ(stick_open(p, false, &s, why, sizeof(why)), -ENOTDIR);
	CHECK(strstr(why, "not a directory") != NULL);

	/* DIR itself a symbolic link, with and without a trailing slash. */
	snprintf(p, sizeof(p), "%s/link", dir);
	CHECK_EQ(symlink(dir, p), 0);
	CHECK_EQ(stick_open(p, true, &s, why, sizeof(why)), -ELOOP);
	CHECK(strstr(why, "symbolic link") != NULL);
	strcat(p, "//");
	CHECK_EQ(stick_open(p, true, &s, why, sizeof(why)), -ELOOP);

	/* Nothing to read yet; a writable open makes the layout. */
	CHECK_EQ(stick_open(dir, false, &s, why, sizeof(why)), -ENOENT);
	CHECK(strstr(why, "no tern/ directory") != NULL);
	s = open_ok(dir, true);
	const char *subs[] = {"bundles", "manifests", "receipts"};
	for (int i = 0; i < 3; i++) {
		struct stat st;
		snprintf(p, sizeof(p), "%s/tern/%s", dir, subs[i]);
		CHECK(lstat(p, &st) == 0 && S_ISDIR(st.st_mode));
	}
	CHECK_EQ(stick_piece_max(s), STICK_PIECE_MAX_DEFAULT);
	CHECK_EQ(strcmp(stick_error(s), ""), 0);

	/* One writer per stick on this machine; readers are welcome. */
	CHECK_EQ(stick_open(dir, true, &s2, why, sizeof(why)), -EBUSY);
	CHECK(strstr(why, "another tern process") != NULL);
	s2 = open_ok(dir, false);
	stick_close(s2);
	stick_close(s);
	s = open_ok(dir, true); /* the lock went with the close */
	stick_close(s);

	/* A read-only open of a stick with only tern/: subdirectories read as empty. */
	char d2[256];
	fresh_dir(d2, sizeof(d2));
	snprintf(p, sizeof(p), "%s/tern", d2);
	mkdir(p, 0755);
	s = open_ok(d2, false);
	struct entries l = {0};
	CHECK_EQ(stick_bundle_foreach(s, collect, &l), 0);
	CHECK_EQ(l.n, 0);
	uint8_t id[32];
	make_id(id, 1);
	CHECK(!stick_has_bundle(s, id));
	struct stick_writer *w = NULL;
	CHECK_EQ(stick_bundle_begin(s, id, 10, &w), -EROFS);
	CHECK_EQ(stick_clean_temp(s, NULL), -EROFS);
	char name[STICK_NAME_MAX + 1];
	CHECK_EQ(stick_put(s, STICK_MANIFESTS, "x", 1, name), -EROFS);
	CHECK_EQ(stick_bundle_remove(s, id), -EROFS);
	stick_close(s);

	/* tern/ a file, tern/ a link, a subdirectory a link: refused, nothing followed. */
	fresh_dir(d2, sizeof(d2));
	snprintf(p, sizeof(p), "%s/tern", d2);
	make_file(p, 1);
	CHECK_EQ(stick_open(d2, true, &s, why, sizeof(why)), -ENOTDIR);
	CHECK(strstr(why, "/tern: not a directory") != NULL);
	unlink(p);
	CHECK_EQ(symlink(dir, p), 0);
	CHECK_EQ(stick_open(d2, true, &s, why, sizeof(why)), -ELOOP);
	CHECK_EQ(stick_open(d2, false, &s, why, sizeof(why)), -ELOOP);
	unlink(p);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/tern/receipts", d2);
	CHECK_EQ(symlink("/etc", p), 0);
	CHECK_EQ(stick_open(d2, true, &s, why, sizeof(why)), -ELOOP);
	CHECK(strstr(why, "tern/receipts: a symbolic link") != NULL);
	CHECK_EQ(stick_open(d2, false, &s, why, sizeof(why)), -ELOOP);

	/* The piece limit from the environment. */
	set_piece_max("abc");
	CHECK_EQ(stick_open(dir, false, &s, why, sizeof(why)), -EINVAL);
	CHECK(strstr(why, STICK_PIECE_MAX_ENV) != NULL);
	set_piece_max("0");
	CHECK_EQ(stick_open(dir, false, &s, why, sizeof(why)), -EINVAL);
	set_piece_max("-5");
	CHECK_EQ(stick_open(dir, false, &s, why, sizeof(why)), -EINVAL);
	set_piece_max("99999999999999");
	CHECK_EQ(stick_open(dir, false, &s, why, sizeof(why)), -EINVAL);
	set_piece_max("1000");
	s = open_ok(dir, false);
	CHECK_EQ(stick_piece_max(s), 1000);
	stick_close(s);
	set_piece_max(NULL);
	stick_close(NULL);
}

/* ---- round trips ---------------------------------------------------------------------- */

static void test_round_trip(void)
{
	char dir[256], p[1024];
	uint8_t id[32], hash[32], want[32];
	const uint64_t len = 600 * 1024 + 13; /* crosses the 256 KiB buffer twice */

	fresh_dir(dir, sizeof(dir));
	struct stick *s = open_ok(dir, true);
	make_id(id, 2);
	CHECK(!stick_has_bundle(s, id));
	/* A subdirectory of bundles/ is made only for a bundle that goes into it. */
	snprintf(p, sizeof(p), "%s/tern/bundles", dir);
	CHECK_EQ(count_entries(p), 0);
	CHECK_EQ(write_bundle(s, id, len, len, hash), 0);
	expected_hash(len, want);
	CHECK_MEM(hash, want, 32);
	CHECK(stick_has_bundle(s, id));
	CHECK_EQ(count_entries(p), 1);
	struct stat st;
	snprintf(p, sizeof(p), "%s/tern/bundles/%x", dir, id[0] >> 4);
	CHECK(lstat(p, &st) == 0 && S_ISDIR(st.st_mode));

	char name[80], shown[90];
	id_name(id, ".bpv", name);
	ename(id, ".bpv", shown);
	snprintf(p, sizeof(p), "%s/tern/bundles/%s", dir, shown);
	CHECK(stat(p, &st) == 0 && (uint64_t)st.st_size == len);
	snprintf(p, sizeof(p), "%s/tern/bundles", dir);
	CHECK_EQ(count_files(p, ".part"), 0);

	struct entries l = {0};
	CHECK_EQ(stick_bundle_foreach(s, collect, &l), 0);
	CHECK_EQ(l.n, 1);
	CHECK(strcmp(l.e[0].name, shown) == 0);
	CHECK_MEM(l.e[0].id, id, 32);
	CHECK_EQ(l.e[0].size, len);
	CHECK_EQ(l.e[0].pieces, 1);
	CHECK(l.e[0].problem == NULL && l.e[0].code == STICK_OK);
	check_read_back(s, &l.e[0], len);

	/* The same bundle again is refused, and the copy there is left as it was. */
	struct stick_writer *w = NULL;
	CHECK_EQ(stick_bundle_begin(s, id, len, &w), -EEXIST);
	CHECK(w == NULL && strstr(stick_error(s), "already on the stick") != NULL);
	snprintf(p, sizeof(p), "%s/tern/bundles/%s: ", dir, shown);
	CHECK(strstr(stick_error(s), p) != NULL);
	snprintf(p, sizeof(p), "%s/tern/bundles", dir);

	/* Nothing written: commit refuses and leaves nothing. */
	uint8_t id2[32];
	make_id(id2, 3);
	CHECK_EQ(stick_bundle_begin(s, id2, 0, &w), 0);
	CHECK_EQ(stick_bundle_commit(w, hash, NULL), -EINVAL);
	CHECK(!stick_has_bundle(s, id2));
	CHECK_EQ(count_files(p, ".part"), 0);

	/* Removal of a whole bundle, then nothing left to remove. */
	CHECK_EQ(stick_bundle_remove(s, id), 0);
	CHECK(!stick_has_bundle(s, id));
	CHECK_EQ(stick_bundle_remove(s, id), -ENOENT);

	/* Over the limits: refused before anything is written. */
	CHECK_EQ(stick_bundle_begin(s, id2, STICK_BUNDLE_MAX + 1, &w), -EFBIG);
	CHECK(strstr(stick_error(s), "64 GiB") != NULL);
	stick_close(s);
}

struct placed {
	uint8_t id[8][32];
	int result[8];
	int n;
};

static void on_placed(void *ctx, const uint8_t id[32], int result)
{
	struct placed *p = ctx;
	if (p->n < 8) {
		memcpy(p->id[p->n], id, 32);
		p->result[p->n++] = result;
	}
}

/* Deferred mode: commits are invisible until stick_sync, which places and reports each. */
static void test_deferred(void)
{
	char dir[256], bdir[1024], p[1024], name[80];
	uint8_t id[4][32], hash[32];
	struct placed pl = {0};

	fresh_dir(dir, sizeof(dir));
	snprintf(bdir, sizeof(bdir), "%s/tern/bundles", dir);
	struct stick *s = open_ok(dir, true);
	stick_defer_sync(s);
	for (int i = 0; i < 3; i++) {
		make_id(id[i], 40 + i);
		CHECK_EQ(write_bundle(s, id[i], 1000 + i, 1000 + i, hash), 0);
		CHECK(!stick_has_bundle(s, id[i])); /* not under its name before the sync */
	}
	CHECK_EQ(count_files(bdir, ".part"), 3);
	/* A copy written meanwhile under one of the names (another process, a race) wins. */
	id_name(id[1], ".bpv", name);
	bundle_path(p, sizeof(p), dir, name);
	make_file(p, 77);
	CHECK_EQ(stick_sync(s, on_placed, &pl), 0);
	CHECK_EQ(pl.n, 3);
	for (int i = 0; i < 3 && pl.n == 3; i++)
		CHECK_MEM(pl.id[i], id[i], 32);
	CHECK(pl.result[0] == 0 && pl.result[1] == -EEXIST && pl.result[2] == 0);
	CHECK(stick_has_bundle(s, id[0]) && stick_has_bundle(s, id[2]));
	struct stat st;
	CHECK(stat(p, &st) == 0 && st.st_size == 77); /* the other copy is left as it was */
	CHECK_EQ(count_files(bdir, ".part"), 0);

	/* Nothing pending: a sync reports nothing. A bundle over STICK_DEFER_MAX is placed at
	 * its commit and reported by the next sync. Unsynced commits vanish at close. */
	pl.n = 0;
	CHECK_EQ(stick_sync(s, on_placed, &pl), 0);
	CHECK_EQ(pl.n, 0);
	make_id(id[3], 44);
	CHECK_EQ(write_bundle(s, id[3], STICK_DEFER_MAX + 1, STICK_DEFER_MAX + 1, hash), 0);
	CHECK(stick_has_bundle(s, id[3]));
	CHECK_EQ(stick_sync(s, on_placed, &pl), 0);
	CHECK(pl.n == 1 && pl.result[0] == 0);
	uint8_t lost[32];
	make_id(lost, 45);
	CHECK_EQ(write_bundle(s, lost, 10, 10, hash), 0);
	stick_close(s);
	CHECK_EQ(count_files(bdir, ".part"), 0);
	s = open_ok(dir, false);
	CHECK(!stick_has_bundle(s, lost));
	stick_close(s);
}

static void test_pieces(void)
{
	char dir[256], p[1024], name[80];
	uint8_t id[32], hash[32], want[32];
	struct stat st;

	set_piece_max("1000");
	fresh_dir(dir, sizeof(dir));
	struct stick *s = open_ok(dir, true);
	set_piece_max(NULL);

	/* Exactly the limit is one whole file; one more byte makes two pieces. */
	const uint64_t sizes[] = {1000, 1001, 3500, 4000};
	const unsigned pieces[] = {1, 2, 4, 4};
	for (int i = 0; i < 4; i++) {
		make_id(id, 10 + i);
		/* A hint off by a few bytes, as a re-encoded head may be. */
		CHECK_EQ(write_bundle(s, id, sizes[i], sizes[i] - 3, hash), 0);
		expected_hash(sizes[i], want);
		CHECK_MEM(hash, want, 32);
		CHECK(stick_has_bundle(s, id));
		for (unsigned k = 0; k < 5; k++) {
			char suffix[16];
			snprintf(suffix, sizeof(suffix), ".bpv.%03u", k);
			id_name(id, pieces[i] == 1 ? ".bpv" : suffix, name);
			bundle_path(p, sizeof(p), dir, name);
			if (k < pieces[i]) {
				uint64_t want_size =
				    k + 1 < pieces[i] ? 1000 : sizes[i] - 1000ull * k;
				CHECK(stat(p, &st) == 0 && (uint64_t)st.st_size == want_size);
			} else if (pieces[i] > 1) {
				CHECK(!exists(p));
			}
		}
	}
	snprintf(p, sizeof(p), "%s/tern/bundles", dir);
	CHECK_EQ(count_files(p, ".part"), 0);

	struct entries l = {0};
	CHECK_EQ(stick_bundle_foreach(s, collect, &l), 0);
	CHECK_EQ(l.n, 4);
	for (size_t i = 0; i < l.n; i++) {
		int which = -1;
		for (int j = 0; j < 4; j++) {
			make_id(id, 10 + j);
			if (memcmp(id, l.e[i].id, 32) == 0)
				which = j;
		}
		CHECK(which >= 0);
		if (which < 0)
			continue;
		CHECK(l.e[i].problem == NULL);
		CHECK_EQ(l.e[i].pieces, pieces[which]);
		CHECK_EQ(l.e[i].size, sizes[which]);
		CHECK_EQ(l.e[i].piece_size, pieces[which] == 1 ? sizes[which] : 1000);
		check_read_back(s, &l.e[i], sizes[which]);
	}
	/* Name order: ids sort as their hex names do. */
	for (size_t i = 1; i < l.n; i++)
		CHECK(strcmp(l.e[i - 1].name, l.e[i].name) < 0);

	/* The piece count limit: 1000 pieces of 1000 bytes. */
	struct stick_writer *w;
	make_id(id, 20);
	CHECK_EQ(stick_bundle_begin(s, id, 1000u * 1000 + 1, &w), -EFBIG);
	CHECK(strstr(stick_error(s), "pieces") != NULL);
	CHECK_EQ(stick_bundle_begin(s, id, 10, &w), 0);
	uint8_t *big = calloc(1, 1000u * 1000 + 1);
	CHECK_EQ(stick_bundle_write(w, big, 1000u * 1000), 0);
	CHECK_EQ(stick_bundle_write(w, big, 1), -EFBIG);
	CHECK_EQ(stick_bundle_write(w, big, 1), -EFBIG); /* sticky */
	CHECK_EQ(stick_bundle_commit(w, hash, NULL), -EFBIG);
	free(big);
	CHECK_EQ(count_files(p, ".part"), 0);
	CHECK(!stick_has_bundle(s, id));

	/* Removal takes every piece. */
	make_id(id, 12);
	CHECK_EQ(stick_bundle_remove(s, id), 0);
	CHECK(!stick_has_bundle(s, id));
	id_name(id, ".bpv.000", name);
	bundle_path(p, sizeof(p), dir, name);
	CHECK(!exists(p));
	id_name(id, ".bpv.003", name);
	bundle_path(p, sizeof(p), dir, name);
	CHECK(!exists(p));
	stick_close(s);
}

/* ---- pulled sticks ---------------------------------------------------------------------- */

static void test_pulled(void)
{
	char dir[256], p[1024], name[80];
	uint8_t id[32], hash[32];
	unsigned removed = 99;

	set_piece_max("1000");
	fresh_dir(dir, sizeof(dir));
	struct stick *s = open_ok(dir, true);
	set_piece_max(NULL);
	char bdir[1024];
	snprintf(bdir, sizeof(bdir), "%s/tern/bundles", dir);

	/* An abort midway leaves nothing. */
	struct stick_writer *w;
	uint8_t buf[2500];
	pattern(buf, sizeof(buf), 0);
	make_id(id, 30);
	CHECK_EQ(stick_bundle_begin(s, id, sizeof(buf), &w), 0);
	CHECK_EQ(stick_bundle_write(w, buf, sizeof(buf)), 0);
	CHECK_EQ(count_files(bdir, ".part"), 3);
	stick_bundle_abort(w);
	stick_bundle_abort(NULL);
	CHECK_EQ(count_files(bdir, ".part"), 0);
	CHECK(!stick_has_bundle(s, id));

	/* A process killed mid-export leaves its temporaries. */
	stick_close(s);
	pid_t pid = fork();
	if (pid == 0) {
		struct stick *c = NULL;
		char why[256];
		setenv(STICK_PIECE_MAX_ENV, "1000", 1);
		if (stick_open(dir, true, &c, why, sizeof(why)) != 0 ||
		    stick_bundle_begin(c, id, sizeof(buf), &w) != 0 ||
		    stick_bundle_write(w, buf, sizeof(buf)) != 0)
			_exit(1);
		_exit(0); /* no commit, no abort: a pull */
	}
	int status = -1;
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK_EQ(count_files(bdir, ".part"), 3);

	/* Hand-made leftovers everywhere, and .part names that are not files. */
	char canary[1024];
	snprintf(canary, sizeof(canary), "%s/canary", dir);
	make_file(canary, 10);
	/* In bundles/, temporaries live in the 16 subdirectories (0/ and f/ here). */
	const char *subs[] = {"bundles/0", "manifests", "receipts"};
	const char *subs2[] = {"bundles/f", "manifests", "receipts"};
	path_of(p, sizeof(p), dir, "bundles", "f");
	mkdir(p, 0755);
	path_of(p, sizeof(p), dir, "bundles", "0");
	mkdir(p, 0755);
	for (int i = 0; i < 3; i++) {
		path_of(p, sizeof(p), dir, subs[i], "0123456789abcdef0123456789abcdef.part");
		make_file(p, 100);
		path_of(p, sizeof(p), dir, subs2[i], "other.name.part");
		make_file(p, 0);
	}
	path_of(p, sizeof(p), dir, "manifests", "link.part");
	CHECK_EQ(symlink(canary, p), 0);
	path_of(p, sizeof(p), dir, "receipts", "dir.part");
	CHECK_EQ(mkdir(p, 0755), 0);
	path_of(p, sizeof(p), dir, "bundles/0", "fifo.part");
	CHECK_EQ(mkfifo(p, 0644), 0);
	/* No temporary is ever written to bundles/ itself: one there is reported, not removed. */
	path_of(p, sizeof(p), dir, "bundles", "fedcba9876543210fedcba9876543210.part");
	make_file(p, 10);

	/* A commit pulled between renames: .001 and .002 placed, .000 never. */
	uint8_t id2[32];
	make_id(id2, 31);
	id_name(id2, ".bpv.001", name);
	bundle_path(p, sizeof(p), dir, name);
	make_file(p, 1000);
	id_name(id2, ".bpv.002", name);
	bundle_path(p, sizeof(p), dir, name);
	make_file(p, 500);

	s = open_ok(dir, true);
	CHECK_EQ(stick_clean_temp(s, &removed), 0);
	CHECK_EQ(removed, 3 + 6);
	CHECK_EQ(count_files(bdir, ".part"), 2); /* the FIFO stays, and the stray one */
	path_of(p, sizeof(p), dir, "manifests", "link.part");
	CHECK(exists(p));
	path_of(p, sizeof(p), dir, "receipts", "dir.part");
	CHECK(exists(p));
	struct stat st;
	CHECK(stat(canary, &st) == 0 && st.st_size == 10);

	/* The listing names what was left: the FIFO and the incomplete set. */
	struct entries l = {0};
	CHECK_EQ(stick_bundle_foreach(s, collect, &l), 0);
	CHECK_EQ(l.n, 3);
	const struct stick_entry *e = find(&l, "0/fifo.part");
	CHECK(e && e->code == STICK_NOT_REGULAR && strstr(e->problem, "FIFO"));
	e = find(&l, "fedcba9876543210fedcba9876543210.part");
	CHECK(e && e->code == STICK_BAD_NAME);
	ename(id2, ".bpv.000", name);
	e = find(&l, name);
	CHECK(e && e->code == STICK_PIECE_MISSING && e->pieces == 2 && e->size == 1500);
	CHECK(!stick_has_bundle(s, id2));

	/* Exporting that bundle again clears the remains and writes a complete copy. */
	CHECK_EQ(write_bundle(s, id2, 700, 700, hash), 0);
	CHECK(stick_has_bundle(s, id2));
	id_name(id2, ".bpv.001", name);
	bundle_path(p, sizeof(p), dir, name);
	CHECK(!exists(p));
	l.n = 0;
	CHECK_EQ(stick_bundle_foreach(s, collect, &l), 0);
	ename(id2, ".bpv", name);
	e = find(&l, name);
	CHECK(e && e->problem == NULL && e->size == 700);
	if (e)
		check_read_back(s, e, 700);
	stick_close(s);
}

/* ---- hostile sticks ---------------------------------------------------------------------- */

struct watch {
	int fd;
};

static void watch_add(struct watch *w, const char *path)
{
	if (w->fd < 0)
		w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	/* Any open (reading or writing), read, write, or attribute change of the inode. */
	if (inotify_add_watch(w->fd, path,
			      IN_OPEN | IN_ACCESS | IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE |
				  IN_DONT_FOLLOW) < 0) {
		perror(path);
		test_failures++;
	}
}

/* Reads the pending events; true if there were none. */
static bool watch_read(struct watch *w, bool report)
{
	char buf[4096] __attribute__((aligned(8)));
	ssize_t n = read(w->fd, buf, sizeof(buf));
	for (ssize_t off = 0; report && off < n;) {
		const struct inotify_event *ev = (const void *)(buf + off);
		fprintf(stderr, "  inotify: watch %d mask %#x\n", ev->wd, ev->mask);
		off += (ssize_t)(sizeof(*ev) + ev->len);
	}
	if (n > 0)
		while (read(w->fd, buf, sizeof(buf)) > 0)
			;
	return n < 0 && errno == EAGAIN;
}

/* True if none of the watched inodes was touched since the last look. */
static bool watch_quiet(struct watch *w)
{
	return watch_read(w, true);
}

/* Forgets what the test itself did to the watched inodes. */
static void watch_drain(struct watch *w)
{
	watch_read(w, false);
}

static void test_hostile(void)
{
	char dir[256], p[1024], name[300], canary[1024];
	uint8_t id[16][32];
	struct watch wt = {.fd = -1};
	bool root = geteuid() == 0;

	fresh_dir(dir, sizeof(dir));
	struct stick *s = open_ok(dir, true);
	snprintf(canary, sizeof(canary), "%s/canary", dir);
	make_file(canary, 10);
	for (int i = 0; i < 16; i++)
		make_id(id[i], 40 + i);

#define BUNDLE_PATH(i, suffix)                                                                     \
	(id_name(id[i], suffix, name), bundle_path(p, sizeof(p), dir, name), p)

	/* Names tern never writes, in bundles/ itself and in one of its subdirectories. */
	const char *bad[] = {"..bpv",		".hidden",	  "x", "UPPER.BPV", "a\\b\n.bpv",
			     "\x1b[31mred.bpv", "caf\xc3\xa9.bpv"};
	path_of(p, sizeof(p), dir, "bundles", "5");
	mkdir(p, 0755);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		path_of(p, sizeof(p), dir, "bundles", bad[i]);
		make_file(p, 5);
		path_of(p, sizeof(p), dir, "bundles/5", bad[i]);
		if (i == 2 || i == 4) /* "5/x", "5/a\\b\n.bpv" */
			make_file(p, 5);
	}
	char upper[80];
	id_name(id[0], ".bpv", upper);
	for (char *c = upper; *c; c++)
		if (*c >= 'a' && *c <= 'f')
			*c = (char)(*c - 32);
	bundle_path(p, sizeof(p), dir, upper);
	make_file(p, 5);
	char longname[251];
	memset(longname, 'l', 250);
	longname[250] = 0;
	path_of(p, sizeof(p), dir, "bundles", longname);
	make_file(p, 5);
	path_of(p, sizeof(p), dir, "bundles/5", longname);
	make_file(p, 5);

	/* Things that are not regular files, under good names. */
	CHECK_EQ(symlink("/etc/passwd", BUNDLE_PATH(1, ".bpv")), 0);
	CHECK_EQ(symlink(canary, BUNDLE_PATH(2, ".bpv")), 0);
	CHECK_EQ(mkfifo(BUNDLE_PATH(3, ".bpv"), 0644), 0);
	watch_add(&wt, p);
	bool have_dev = root && mknod(BUNDLE_PATH(4, ".bpv"), S_IFCHR | 0666, makedev(1, 3)) == 0;
	if (have_dev)
		watch_add(&wt, p);
	else
		fprintf(stderr, "test_stick: not root: the device-node case is skipped\n");
	CHECK_EQ(mkdir(BUNDLE_PATH(5, ".bpv"), 0755), 0);
	watch_add(&wt, canary);

	/* Piece sets gone wrong. */
	make_file(BUNDLE_PATH(6, ".bpv.000"), 100);
	make_file(BUNDLE_PATH(6, ".bpv.002"), 50);
	make_file(BUNDLE_PATH(7, ".bpv.000"), 100);
	make_file(BUNDLE_PATH(7, ".bpv.001"), 50);
	make_file(BUNDLE_PATH(7, ".bpv.002"), 10);
	make_file(BUNDLE_PATH(8, ".bpv.000"), 10);
	make_file(BUNDLE_PATH(8, ".bpv.001"), 20);
	make_file(BUNDLE_PATH(9, ".bpv.000"), 10);
	CHECK_EQ(symlink(canary, BUNDLE_PATH(10, ".bpv.001")), 0);
	make_file(BUNDLE_PATH(10, ".bpv.000"), 10);
	/* Empty, and enormous (sparse): refused unread. */
	make_file(BUNDLE_PATH(11, ".bpv"), 0);
	make_file(BUNDLE_PATH(12, ".bpv"), STICK_BUNDLE_MAX + 1);
	/* A good set with a hostile name sorting between its pieces, and a good whole file. */
	make_file(BUNDLE_PATH(13, ".bpv.000"), 10);
	make_file(BUNDLE_PATH(13, ".bpv.001"), 5);
	make_file(BUNDLE_PATH(13, ".bpv.000x"), 5);
	make_file(BUNDLE_PATH(14, ".bpv"), 10);
	watch_add(&wt, p);
	/* A regular temporary: skipped. */
	path_of(p, sizeof(p), dir, "bundles/5", "0123456789abcdef0123456789abcdef.part");
	make_file(p, 5);

	struct entries l = {0};
	CHECK_EQ(stick_bundle_foreach(s, collect, &l), 0);
	CHECK_EQ(l.n, 13 + 13 + (have_dev ? 1 : 0));
	for (size_t i = 1; i < l.n && i < 64; i++)
		CHECK(strcmp(l.e[i - 1].name, l.e[i].name) < 0);

	const struct stick_entry *e;
	for (size_t i = 0; i < 4; i++) {
		e = find(&l, bad[i]);
		CHECK(e && e->code == STICK_BAD_NAME &&
		      strstr(e->problem, "not a name tern writes"));
	}
	/* Shown escaped: no control character reaches a terminal. */
	e = find(&l, "a\\x5cb\\x0a.bpv");
	CHECK(e && e->code == STICK_BAD_NAME);
	e = find(&l, "\\x1b[31mred.bpv");
	CHECK(e && e->code == STICK_BAD_NAME);
	e = find(&l, "caf\\xc3\\xa9.bpv");
	CHECK(e && e->code == STICK_BAD_NAME);
	e = find(&l, "5/x");
	CHECK(e && e->code == STICK_BAD_NAME && strstr(e->problem, "not a name tern writes"));
	e = find(&l, "5/a\\x5cb\\x0a.bpv");
	CHECK(e && e->code == STICK_BAD_NAME);
	snprintf(name, sizeof(name), "c/%s", upper);
	e = find(&l, name);
	CHECK(e && e->code == STICK_BAD_NAME);
	int longs = 0;
	for (size_t i = 0; i < l.n && i < 64; i++) {
		if (strstr(l.e[i].name, "llll")) {
			longs++;
			CHECK(strlen(l.e[i].name) <= STICK_SHOW_MAX);
			CHECK(strstr(l.e[i].name, "...") != NULL);
		}
		for (const char *c = l.e[i].name; *c; c++)
			CHECK(*c > 0x20 && *c < 0x7f);
	}
	CHECK_EQ(longs, 2); /* in bundles/ and in 5/, both cut to fit */

	ename(id[1], ".bpv", name);
	e = find(&l, name);
	CHECK(e && e->code == STICK_SYMLINK && strstr(e->problem, "symbolic link"));
	ename(id[2], ".bpv", name);
	e = find(&l, name);
	CHECK(e && e->code == STICK_SYMLINK);
	ename(id[3], ".bpv", name);
	e = find(&l, name);
	CHECK(e && e->code == STICK_NOT_REGULAR && strstr(e->problem, "FIFO"));
	if (have_dev) {
		ename(id[4], ".bpv", name);
		e = find(&l, name);
		CHECK(e && e->code == STICK_NOT_REGULAR && strstr(e->problem, "device"));
	}
	ename(id[5], ".bpv", name);
	e = find(&l, name);
	CHECK(e && e->code == STICK_NOT_REGULAR && strstr(e->problem, "directory"));
	ename(id[6], ".bpv.001", name);
	e = find(&l, name);
	CHECK(e && e->code == STICK_PIECE_MISSING && e->pieces == 2);
	ename(id[7], ".bpv.001", name);
	e = find(&l, name);
	CHECK(e && e->code == STICK_PIECE_SIZE && strstr(e->problem, "differs"));
	ename(id[8], ".bpv.001", name);
	e = find(&l, name);
	CHECK(e && e->code == STICK_PIECE_SIZE && strstr(e->problem, "last piece larger"));
	ename(id[9], ".bpv.001", name);
	e = find(&l, name);
	CHECK(e && e->code == STICK_PIECE_MISSING && e->pieces == 1);
	ename(id[10], ".bpv.001", name);
	e = find(&l, name);
	CHECK(e && e->code == STICK_SYMLINK);
	ename(id[11], ".bpv", name);
	e = find(&l, name);
	CHECK(e && e->code == STICK_EMPTY);
	ename(id[12], ".bpv", name);
	e = find(&l, name);
	CHECK(e && e->code == STICK_TOO_BIG && e->size == STICK_BUNDLE_MAX + 1);
	ename(id[13], ".bpv.000", name);
	e = find(&l, name);
	CHECK(e && e->problem == NULL && e->pieces == 2 && e->size == 15);
	ename(id[13], ".bpv.000x", name);
	e = find(&l, name);
	CHECK(e && e->code == STICK_BAD_NAME);
	ename(id[14], ".bpv", name);
	const struct stick_entry *good = find(&l, name);
	CHECK(good && good->problem == NULL);

	/* Reading any refused entry is refused; has_bundle and begin look without opening. */
	uint8_t hash[32];
	uint64_t got = 0;
	for (size_t i = 0; i < l.n && i < 64; i++) {
		if (!l.e[i].problem)
			continue;
		CHECK_EQ(stick_bundle_read(s, &l.e[i], null_sink, &got, hash), -EINVAL);
		CHECK(strstr(stick_error(s), "refused") != NULL);
	}
	CHECK_EQ(got, 0);
	for (int i = 1; i <= 12; i++)
		CHECK(!stick_has_bundle(s, id[i]));
	CHECK(stick_has_bundle(s, id[13]));
	CHECK(stick_has_bundle(s, id[14]));
	struct stick_writer *w = NULL;
	for (int i = 1; i <= 5; i++) {
		if (i == 4 && !have_dev)
			continue;
		CHECK_EQ(stick_bundle_begin(s, id[i], 10, &w), -EEXIST);
		CHECK(strstr(stick_error(s), "in the way") != NULL);
	}
	CHECK_EQ(stick_bundle_begin(s, id[10], 10, &w), -EEXIST);
	CHECK_EQ(stick_clean_temp(s, NULL), 0);
	CHECK_EQ(stick_bundle_remove(s, id[2]), -EPERM);
	CHECK(watch_quiet(&wt));

	/* The links are still there and still links; the canary is as it was. */
	struct stat st;
	id_name(id[2], ".bpv", name);
	bundle_path(p, sizeof(p), dir, name);
	CHECK(lstat(p, &st) == 0 && S_ISLNK(st.st_mode));
	CHECK(stat(canary, &st) == 0 && st.st_size == 10);

	/* A good file that grows after the listing is refused, so is one swapped for a link. */
	if (good) {
		struct stick_entry copy = *good;
		check_read_back(s, &copy, 10);
		watch_drain(&wt); /* drains the opens of that legitimate read */
		id_name(id[14], ".bpv", name);
		bundle_path(p, sizeof(p), dir, name);
		int fd = open(p, O_WRONLY | O_APPEND);
		CHECK_EQ(write(fd, "more", 4), 4);
		close(fd);
		watch_drain(&wt); /* drains the test's own append */
		got = 0;
		CHECK_EQ(stick_bundle_read(s, &copy, null_sink, &got, hash), -ESTALE);
		CHECK(strstr(stick_error(s), "changed since it was listed") != NULL);
		CHECK(strstr(stick_error(s), name) != NULL);
		CHECK_EQ(got, 0);
		CHECK(watch_quiet(&wt)); /* refused on fstatat, never opened */
		unlink(p);
		CHECK_EQ(symlink(canary, p), 0);
		watch_drain(&wt); /* drains the unlink's events */
		CHECK_EQ(stick_bundle_read(s, &copy, null_sink, &got, hash), -ESTALE);
		CHECK(watch_quiet(&wt)); /* the canary behind the link was not opened */
		unlink(p);
		CHECK_EQ(mkfifo(p, 0644), 0);
		watch_add(&wt, p);
		CHECK_EQ(stick_bundle_read(s, &copy, null_sink, &got, hash), -ESTALE);
		CHECK_EQ(got, 0);
		CHECK(watch_quiet(&wt));
		/* The control: an open through the link is seen. */
		unlink(p);
		CHECK_EQ(symlink(canary, p), 0);
		watch_drain(&wt);
		int fd2 = open(p, O_RDONLY);
		close(fd2);
		CHECK(!watch_read(&wt, false));
	}
	/* A piece that shrinks after the listing. */
	ename(id[13], ".bpv.000", name);
	struct stick_entry set = *find(&l, name);
	id_name(id[13], ".bpv.001", name);
	bundle_path(p, sizeof(p), dir, name);
	CHECK_EQ(truncate(p, 2), 0);
	struct membuf m = {0};
	CHECK_EQ(stick_bundle_read(s, &set, mem_sink, &m, hash), -ESTALE);
	CHECK(strstr(stick_error(s), name) != NULL);
	free(m.buf);
	close(wt.fd);
	stick_close(s);
#undef BUNDLE_PATH
}

/* ---- manifests and receipts --------------------------------------------------------------- */

struct files {
	int n;
	char name[16][STICK_SHOW_MAX + 1];
	char body[16][64];
	const char *problem[16];
};

static int on_file(void *ctx, const char *name, const uint8_t *buf, size_t len, const char *problem)
{
	struct files *f = ctx;
	if (f->n < 16) {
		snprintf(f->name[f->n], sizeof(f->name[0]), "%s", name);
		f->problem[f->n] = problem;
		f->body[f->n][0] = 0;
		if (buf)
			snprintf(f->body[f->n], sizeof(f->body[0]), "%.*s",
				 (int)(len < 63 ? len : 63), (const char *)buf);
		CHECK((buf == NULL) == (problem != NULL));
	}
	f->n++;
	return 0;
}

static int find_file(const struct files *f, const char *name)
{
	for (int i = 0; i < f->n && i < 16; i++)
		if (strcmp(f->name[i], name) == 0)
			return i;
	return -1;
}

static void test_files(void)
{
	char dir[256], p[1024], canary[1024];
	char n1[STICK_NAME_MAX + 1], n2[STICK_NAME_MAX + 1], n3[STICK_NAME_MAX + 1];
	struct watch wt = {.fd = -1};

	fresh_dir(dir, sizeof(dir));
	struct stick *s = open_ok(dir, true);
	snprintf(canary, sizeof(canary), "%s/canary", dir);
	make_file(canary, 10);

	CHECK_EQ(stick_put(s, STICK_MANIFESTS, "first", 5, n1), 0);
	CHECK_EQ(stick_put(s, STICK_MANIFESTS, "first", 5, n2), 0);
	CHECK_EQ(stick_put(s, STICK_RECEIPTS, "receipt", 7, n3), 0);
	CHECK(strlen(n1) == 36 && strcmp(n1 + 32, ".man") == 0);
	CHECK(strlen(n3) == 36 && strcmp(n3 + 32, ".rcp") == 0);
	CHECK(strcmp(n1, n2) != 0); /* the same body twice: two files, nobody overwritten */
	CHECK_EQ(stick_put(s, STICK_BUNDLES, "x", 1, n3), -EINVAL);
	CHECK_EQ(stick_put(s, STICK_MANIFESTS, "x", 0, n3), -EINVAL);
	CHECK_EQ(stick_put(s, STICK_MANIFESTS, "x", STICK_FILE_MAX + 1, n3), -EINVAL);
	snprintf(p, sizeof(p), "%s/tern/manifests", dir);
	CHECK_EQ(count_files(p, ".part"), 0);

	/* Hostile entries beside them. */
	path_of(p, sizeof(p), dir, "manifests", "UPPER.MAN");
	make_file(p, 3);
	path_of(p, sizeof(p), dir, "manifests", "00000000000000000000000000000001.man");
	CHECK_EQ(symlink(canary, p), 0);
	path_of(p, sizeof(p), dir, "manifests", "00000000000000000000000000000002.man");
	CHECK_EQ(mkfifo(p, 0644), 0);
	watch_add(&wt, p);
	path_of(p, sizeof(p), dir, "manifests", "00000000000000000000000000000003.man");
	CHECK_EQ(mkdir(p, 0755), 0);
	path_of(p, sizeof(p), dir, "manifests", "00000000000000000000000000000004.man");
	make_file(p, 0);
	path_of(p, sizeof(p), dir, "manifests", "00000000000000000000000000000005.man");
	make_file(p, STICK_FILE_MAX + 1);
	path_of(p, sizeof(p), dir, "manifests", "00000000000000000000000000000006.rcp");
	make_file(p, 3);
	path_of(p, sizeof(p), dir, "manifests", "00000000000000000000000000000007.man.part");
	make_file(p, 3);
	watch_add(&wt, canary);

	struct files f = {0};
	CHECK_EQ(stick_foreach_file(s, STICK_MANIFESTS, on_file, &f), 0);
	CHECK_EQ(f.n, 9);
	for (int i = 1; i < f.n && i < 16; i++)
		CHECK(strcmp(f.name[i - 1], f.name[i]) < 0);
	int i1 = find_file(&f, n1), i2 = find_file(&f, n2);
	CHECK(i1 >= 0 && i2 >= 0 && !f.problem[i1] && strcmp(f.body[i1], "first") == 0);
	CHECK(i2 >= 0 && !f.problem[i2] && strcmp(f.body[i2], "first") == 0);
	struct {
		const char *name, *problem;
	} want[] = {
	    {"UPPER.MAN", "not a name tern writes"},
	    {"00000000000000000000000000000001.man", "symbolic link"},
	    {"00000000000000000000000000000002.man", "FIFO"},
	    {"00000000000000000000000000000003.man", "directory"},
	    {"00000000000000000000000000000004.man", "empty"},
	    {"00000000000000000000000000000005.man", "larger than 16 MiB"},
	    {"00000000000000000000000000000006.rcp", "not a name tern writes"},
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		int k = find_file(&f, want[i].name);
		CHECK(k >= 0 && f.problem[k] && strstr(f.problem[k], want[i].problem));
		if (k < 0 || !f.problem[k] || !strstr(f.problem[k], want[i].problem))
			fprintf(stderr, "  %s: %s\n", want[i].name,
				k >= 0 && f.problem[k] ? f.problem[k] : "(missing)");
	}
	CHECK(watch_quiet(&wt));

	f = (struct files){0};
	CHECK_EQ(stick_foreach_file(s, STICK_RECEIPTS, on_file, &f), 0);
	CHECK_EQ(f.n, 1);
	CHECK(strcmp(f.body[0], "receipt") == 0);
	CHECK_EQ(stick_foreach_file(s, STICK_BUNDLES, on_file, &f), -EINVAL);

	/* Removal: tern names of that directory only, regular files only. */
	CHECK_EQ(stick_remove(s, STICK_MANIFESTS, n1), 0);
	CHECK_EQ(stick_remove(s, STICK_MANIFESTS, n1), -ENOENT);
	CHECK_EQ(stick_remove(s, STICK_MANIFESTS, "../x"), -EINVAL);
	CHECK(strstr(stick_error(s), "not a name tern writes") != NULL);
	CHECK_EQ(stick_remove(s, STICK_MANIFESTS, "../../canary"), -EINVAL);
	CHECK_EQ(stick_remove(s, STICK_MANIFESTS, "UPPER.MAN"), -EINVAL);
	CHECK_EQ(stick_remove(s, STICK_RECEIPTS, n2), -EINVAL); /* a .man name in receipts/ */
	CHECK_EQ(stick_remove(s, STICK_BUNDLES, n2), -EINVAL);
	CHECK_EQ(stick_remove(s, STICK_MANIFESTS, "00000000000000000000000000000001.man"), -EPERM);
	CHECK_EQ(stick_remove(s, STICK_MANIFESTS, "00000000000000000000000000000003.man"), -EPERM);
	path_of(p, sizeof(p), dir, "manifests", "00000000000000000000000000000001.man");
	CHECK(exists(p));
	CHECK(exists(canary));
	f = (struct files){0};
	CHECK_EQ(stick_foreach_file(s, STICK_MANIFESTS, on_file, &f), 0);
	CHECK_EQ(f.n, 8);
	close(wt.fd);
	stick_close(s);
}

/* ---- several offices ---------------------------------------------------------------------- */

/* A stick of a set size (tern-sim's couriers): what its files take, in clusters, is used up. */
static void test_capacity(void)
{
	char dir[256], name[STICK_NAME_MAX + 1];
	uint8_t id[32], hash[32];
	uint64_t left = 0;

	fresh_dir(dir, sizeof(dir));
	struct stick *s = open_ok(dir, true);
	CHECK_EQ(stick_set_capacity(s, 0, 4096), -EINVAL);
	CHECK_EQ(stick_set_capacity(s, 64 * 1024, 0), -EINVAL);
	CHECK_EQ(stick_set_capacity(s, 64 * 1024, 4096), 0);
	CHECK_EQ(stick_cluster_size(s), 4096);
	CHECK_EQ(stick_free_bytes(s, &left), 0);
	CHECK_EQ(left, 64 * 1024);
	make_id(id, 1);
	CHECK_EQ(write_bundle(s, id, 5000, 5000, hash), 0);	       /* two clusters */
	CHECK_EQ(stick_put(s, STICK_RECEIPTS, "receipt", 7, name), 0); /* one */
	CHECK_EQ(stick_free_bytes(s, &left), 0);
	CHECK_EQ(left, 13 * 4096);
	make_id(id, 2);
	CHECK_EQ(write_bundle(s, id, 70000, 70000, hash), -ENOSPC); /* refused before a byte */
	CHECK(strstr(stick_error(s), "no space") != NULL);
	static uint8_t big[60 * 1024];
	CHECK_EQ(stick_put(s, STICK_MANIFESTS, big, sizeof(big), name), -ENOSPC);
	CHECK_EQ(stick_put(s, STICK_MANIFESTS, big, 12 * 4096 + 1, name), 0); /* all 13 */
	CHECK_EQ(stick_free_bytes(s, &left), 0);
	CHECK_EQ(left, 0);
	make_id(id, 1);
	CHECK_EQ(stick_bundle_remove(s, id), 0); /* a removed bundle gives its clusters back */
	CHECK_EQ(stick_free_bytes(s, &left), 0);
	CHECK_EQ(left, 2 * 4096);
	stick_close(s);
}

static void test_two_offices(void)
{
	char dir[256], n1[STICK_NAME_MAX + 1], n2[STICK_NAME_MAX + 1];
	uint8_t x[32], y[32], hash[32], hx[32];
	struct stick_writer *w = NULL;

	fresh_dir(dir, sizeof(dir));
	make_id(x, 60);
	make_id(y, 61);
	struct stick *a = open_ok(dir, true);
	CHECK_EQ(write_bundle(a, x, 5000, 5000, hx), 0);
	CHECK_EQ(stick_put(a, STICK_MANIFESTS, "office a", 8, n1), 0);
	stick_close(a);

	struct stick *b = open_ok(dir, true);
	CHECK(stick_has_bundle(b, x));
	CHECK_EQ(stick_bundle_begin(b, x, 5000, &w), -EEXIST);
	CHECK_EQ(write_bundle(b, y, 3000, 3000, hash), 0);
	CHECK_EQ(stick_put(b, STICK_MANIFESTS, "office b", 8, n2), 0);
	stick_close(b);

	struct stick *r = open_ok(dir, false);
	struct entries l = {0};
	CHECK_EQ(stick_bundle_foreach(r, collect, &l), 0);
	CHECK_EQ(l.n, 2);
	for (size_t i = 0; i < l.n; i++) {
		bool is_x = memcmp(l.e[i].id, x, 32) == 0;
		check_read_back(r, &l.e[i], is_x ? 5000 : 3000);
	}
	struct files f = {0};
	CHECK_EQ(stick_foreach_file(r, STICK_MANIFESTS, on_file, &f), 0);
	CHECK_EQ(f.n, 2);
	CHECK(find_file(&f, n1) >= 0 && find_file(&f, n2) >= 0);
	stick_close(r);
}

/* ---- the fan-out of bundles/ ------------------------------------------------------------ */

/* An id whose first hex digit is h: a bundle of bundles/<h>/. */
static void id_in(uint8_t id[32], int seed, unsigned h)
{
	make_id(id, seed);
	id[0] = (uint8_t)(h << 4 | (id[0] & 15));
}

static void test_fanout(void)
{
	char dir[256], d2[256], p[1024], name[300], target[512];
	uint8_t id[8][32], hash[32];
	struct watch wt = {.fd = -1};
	struct stick_writer *w = NULL;
	struct stat st;

	fresh_dir(dir, sizeof(dir));
	struct stick *s = open_ok(dir, true);
	const unsigned first[8] = {0, 1, 2, 0xa, 0xb, 5, 0xb, 3};
	for (int i = 0; i < 8; i++)
		id_in(id[i], 100 + i, first[i]);
	for (int i = 0; i < 4; i++)
		CHECK_EQ(write_bundle(s, id[i], 100 + (uint64_t)i, 100, hash), 0);

	/* bundles/ holds 0 to 9 and a to f, each a real directory; anything else is reported. */
	path_of(p, sizeof(p), dir, "bundles", "g"); /* a 17th subdirectory */
	mkdir(p, 0755);
	id_name(id[4], ".bpv", name);
	path_of(p, sizeof(p), dir, "bundles/g", name);
	make_file(p, 10);
	watch_add(&wt, p);
	path_of(p, sizeof(p), dir, "bundles", "10");
	mkdir(p, 0755);
	path_of(p, sizeof(p), dir, "bundles", "A");
	mkdir(p, 0755);
	path_of(p, sizeof(p), dir, "bundles", "a.txt");
	make_file(p, 3);
	path_of(p, sizeof(p), dir, "bundles", "3"); /* a file where 3/ belongs */
	make_file(p, 3);
	watch_add(&wt, p);
	path_of(p, sizeof(p), dir, "bundles", "4"); /* a FIFO where 4/ belongs */
	CHECK_EQ(mkfifo(p, 0644), 0);
	watch_add(&wt, p);
	/* b/ a link to a directory elsewhere, holding a bundle and a temporary. */
	snprintf(target, sizeof(target), "%s/elsewhere", dir);
	mkdir(target, 0755);
	snprintf(p, sizeof(p), "%s/%s", target, name);
	make_file(p, 10);
	watch_add(&wt, p);
	snprintf(p, sizeof(p), "%s/0123456789abcdef0123456789abcdef.part", target);
	make_file(p, 10);
	watch_add(&wt, p);
	path_of(p, sizeof(p), dir, "bundles", "b");
	CHECK_EQ(symlink(target, p), 0);
	/* A bundle of 5/ in bundles/ itself (the flat layout), one of b/ in a/. */
	id_name(id[5], ".bpv", name);
	path_of(p, sizeof(p), dir, "bundles", name);
	make_file(p, 10);
	id_name(id[6], ".bpv", name);
	path_of(p, sizeof(p), dir, "bundles/a", name);
	make_file(p, 10);
	watch_add(&wt, p);

	struct entries l = {0};
	CHECK_EQ(stick_bundle_foreach(s, collect, &l), 0);
	CHECK_EQ(l.n, 4 + 9);
	for (size_t i = 1; i < l.n && i < 64; i++)
		CHECK(strcmp(l.e[i - 1].name, l.e[i].name) < 0);
	for (int i = 0; i < 4; i++) {
		ename(id[i], ".bpv", name);
		const struct stick_entry *e = find(&l, name);
		CHECK(e && e->problem == NULL && e->size == 100 + (uint64_t)i);
		if (e)
			check_read_back(s, e, 100 + (uint64_t)i);
	}
	struct {
		const char *name;
		enum stick_problem code;
		const char *problem;
	} want[] = {
	    {"g", STICK_BAD_NAME, "not a name tern writes"},
	    {"10", STICK_BAD_NAME, "not a name tern writes"},
	    {"A", STICK_BAD_NAME, "not a name tern writes"},
	    {"a.txt", STICK_BAD_NAME, "not a name tern writes"},
	    {"3", STICK_NOT_REGULAR, "not a directory"},
	    {"4", STICK_NOT_REGULAR, "not a directory"},
	    {"b", STICK_SYMLINK, "symbolic link"},
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		const struct stick_entry *e = find(&l, want[i].name);
		CHECK(e && e->code == want[i].code && strstr(e->problem, want[i].problem));
		if (!e || e->code != want[i].code || !strstr(e->problem, want[i].problem))
			fprintf(stderr, "  %s: %s\n", want[i].name, e ? e->problem : "(missing)");
	}
	id_name(id[5], ".bpv", name);
	const struct stick_entry *e = find(&l, name);
	CHECK(e && e->code == STICK_BAD_NAME && strstr(e->problem, "misplaced"));
	snprintf(name, sizeof(name), "a/");
	id_name(id[6], ".bpv", name + 2);
	e = find(&l, name);
	CHECK(e && e->code == STICK_BAD_NAME && strstr(e->problem, "misplaced"));
	static const uint8_t zero[32];
	CHECK(e && memcmp(e->id, zero, 32) == 0);
	uint64_t got = 0;
	for (size_t i = 0; i < l.n && i < 64; i++)
		if (l.e[i].problem)
			CHECK_EQ(stick_bundle_read(s, &l.e[i], null_sink, &got, hash), -EINVAL);
	CHECK_EQ(got, 0);

	/* Nothing behind the link, the file or the FIFO is looked into, written or removed. */
	CHECK(!stick_has_bundle(s, id[4])); /* its copy behind b/ is not seen */
	CHECK(!stick_has_bundle(s, id[6])); /* misplaced in a/ */
	CHECK_EQ(stick_bundle_begin(s, id[4], 10, &w), -ENOTDIR);
	snprintf(p, sizeof(p), "%s/tern/bundles/b: a symbolic link", dir);
	CHECK(w == NULL && strstr(stick_error(s), p) != NULL);
	CHECK_EQ(stick_bundle_begin(s, id[7], 10, &w), -ENOTDIR);
	snprintf(p, sizeof(p), "%s/tern/bundles/3: not a directory", dir);
	CHECK(w == NULL && strstr(stick_error(s), p) != NULL);
	uint8_t in4[32];
	id_in(in4, 120, 4);
	CHECK_EQ(stick_bundle_begin(s, in4, 10, &w), -ENOTDIR);
	CHECK(stick_bundle_remove(s, id[4]) < 0);
	unsigned removed = 99;
	CHECK_EQ(stick_clean_temp(s, &removed), 0);
	CHECK_EQ(removed, 0);
	CHECK(watch_quiet(&wt));
	CHECK_EQ(count_entries(target), 2);
	path_of(p, sizeof(p), dir, "bundles", "3");
	CHECK(lstat(p, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 3);
	/* The other subdirectories still take bundles: a misplaced copy is not ours. */
	CHECK_EQ(write_bundle(s, id[5], 50, 50, hash), 0);
	uint8_t ib[32];
	memcpy(ib, id[6], 32);
	ib[0] = (uint8_t)(0xa0 | (ib[0] & 15));
	CHECK_EQ(write_bundle(s, ib, 60, 60, hash), 0);
	CHECK(stick_has_bundle(s, id[5]) && stick_has_bundle(s, ib));
	close(wt.fd);
	stick_close(s);

	/* A read-only stick with some subdirectories missing reads as empty there. */
	fresh_dir(d2, sizeof(d2));
	s = open_ok(d2, true);
	CHECK_EQ(write_bundle(s, id[0], 10, 10, hash), 0);
	CHECK_EQ(write_bundle(s, id[3], 20, 20, hash), 0);
	stick_close(s);
	snprintf(p, sizeof(p), "%s/tern/bundles", d2);
	CHECK_EQ(count_entries(p), 2);
	s = open_ok(d2, false);
	CHECK(stick_has_bundle(s, id[0]) && stick_has_bundle(s, id[3]));
	CHECK(!stick_has_bundle(s, id[1]) && !stick_has_bundle(s, id[2]));
	l.n = 0;
	CHECK_EQ(stick_bundle_foreach(s, collect, &l), 0);
	CHECK(l.n == 2 && !l.e[0].problem && !l.e[1].problem);
	stick_close(s);
	CHECK_EQ(count_entries(p), 2); /* a reader creates nothing */

	/* The group commit across subdirectories, some new: each placed, each made durable. */
	s = open_ok(d2, true);
	stick_defer_sync(s);
	struct placed pl = {0};
	uint8_t g[4][32];
	const unsigned gfirst[4] = {0xe, 0xf, 0xe, 0x0};
	for (int i = 0; i < 4; i++) {
		id_in(g[i], 130 + i, gfirst[i]);
		CHECK_EQ(write_bundle(s, g[i], 30, 30, hash), 0);
	}
	CHECK_EQ(count_files(p, ".part"), 4);
	CHECK_EQ(stick_sync(s, on_placed, &pl), 0);
	CHECK_EQ(pl.n, 4);
	for (int i = 0; i < 4 && pl.n == 4; i++) {
		CHECK_MEM(pl.id[i], g[i], 32);
		CHECK_EQ(pl.result[i], 0);
		CHECK(stick_has_bundle(s, g[i]));
	}
	CHECK_EQ(count_files(p, ".part"), 0);
	uint8_t lost[32];
	id_in(lost, 140, 7);
	CHECK_EQ(write_bundle(s, lost, 10, 10, hash), 0);
	CHECK_EQ(count_files(p, ".part"), 1);
	stick_close(s); /* an export that stops before its sync: the group goes */
	CHECK_EQ(count_files(p, ".part"), 0);
	s = open_ok(d2, false);
	CHECK(s && !stick_has_bundle(s, lost));
	stick_close(s);
}

/* ---- memory ---------------------------------------------------------------------------- */

/* Peak RSS since the last reset_peak_rss(), in KiB (VmHWM), or -1 if unknown. */
static long peak_rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kib = -1;

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
			break;
	if (f)
		fclose(f);
	return kib;
}

/* Sets the peak to the current RSS (Linux 4.0 and later: "5" to clear_refs). */
static bool reset_peak_rss(void)
{
	FILE *f = fopen("/proc/self/clear_refs", "w");
	bool ok = f && fputs("5", f) >= 0;
	if (f && fclose(f) != 0)
		ok = false;
	return ok;
}

static long current_rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kib = -1;

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	if (f)
		fclose(f);
	return kib;
}

static void test_memory_bound(void)
{
	char dir[256];
	uint8_t id[32], hash[32], want[32];
	const uint64_t len = 256ull << 20;
	const size_t chunk = 1 << 20;
	uint8_t *buf = malloc(chunk);
	struct stick_writer *w;

	/* Three pieces of 100 MiB: piece switching at size, in bounded memory. */
	set_piece_max("104857600");
	fresh_dir(dir, sizeof(dir));
	struct stick *s = open_ok(dir, true);
	set_piece_max(NULL);
	make_id(id, 70);
	pattern(buf, chunk, 0);
	bool can_measure = reset_peak_rss();
	long before = current_rss_kib();

	struct hash *h = hash_new(32, NULL, 0);
	CHECK_EQ(stick_bundle_begin(s, id, len, &w), 0);
	for (uint64_t off = 0; off < len; off += chunk) {
		buf[0] = (uint8_t)(off >> 20); /* every MiB differs */
		hash_update(h, buf, chunk);
		CHECK_EQ(stick_bundle_write(w, buf, chunk), 0);
	}
	hash_final(h, want);
	CHECK_EQ(stick_bundle_commit(w, hash, NULL), 0);
	CHECK_MEM(hash, want, 32);

	struct entries l = {0};
	CHECK_EQ(stick_bundle_foreach(s, collect, &l), 0);
	CHECK(l.n == 1 && l.e[0].pieces == 3 && l.e[0].size == len);
	uint64_t got = 0;
	CHECK_EQ(stick_bundle_read(s, &l.e[0], null_sink, &got, hash), 0);
	CHECK_EQ(got, len);
	CHECK_MEM(hash, want, 32);
	long growth = peak_rss_kib() - before;
	if (can_measure && before > 0) {
		fprintf(stderr,
			"test_stick: 256 MiB written and read in 3 pieces, peak RSS %ld KiB "
			"above the start\n",
			growth);
		CHECK(growth < 16 * 1024);
	} else {
		fprintf(stderr,
			"test_stick: cannot reset the peak RSS: memory bound not measured\n");
	}
	stick_close(s);
	rm_rf(dir);
	free(buf);
}

/* ---- full, read-only and forbidden media ---------------------------------------------------- */

/* Runs fn as user nobody in a child; returns its exit status, or -1 if it could not switch. */
static int as_nobody(int (*fn)(const char *), const char *dir)
{
	pid_t pid = fork();
	if (pid == 0) {
		if (setgid(65534) != 0 || setuid(65534) != 0)
			_exit(100);
		_exit(fn(dir));
	}
	int status = 0;
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 99;
}

static int open_denied(const char *dir)
{
	struct stick *s = NULL;
	char why[512];
	int ret = stick_open(dir, true, &s, why, sizeof(why));
	if (ret != -EACCES) {
		fprintf(stderr, "  writable open of %s: %d %s\n", dir, ret, why);
		return 1;
	}
	return strstr(why, "permission denied") ? 0 : 2;
}

static int read_denied(const char *dir)
{
	struct stick *s = NULL;
	char why[512];
	int ret = stick_open(dir, false, &s, why, sizeof(why));
	if (ret != -EACCES) {
		fprintf(stderr, "  read-only open of %s: %d %s\n", dir, ret, why);
		return 1;
	}
	return 0;
}

static void test_permissions(void)
{
	char dir[256], p[1024];

	fresh_dir(dir, sizeof(dir));
	stick_close(open_ok(dir, true));
	const char *subs[] = {"tern/bundles", "tern/manifests", "tern/receipts", "tern", ""};
	for (int i = 0; i < 5; i++) {
		snprintf(p, sizeof(p), "%s/%s", dir, subs[i]);
		chmod(p, 0555);
	}
	int status;
	if (geteuid() == 0) {
		status = as_nobody(open_denied, dir);
		if (status == 100)
			fprintf(stderr,
				"test_stick: cannot become nobody: permission case skipped\n");
		else
			CHECK_EQ(status, 0);
		chmod(dir, 0700);
		status = as_nobody(read_denied, dir);
		if (status != 100)
			CHECK_EQ(status, 0);
	} else {
		CHECK_EQ(open_denied(dir), 0);
		chmod(dir, 0000);
		CHECK_EQ(read_denied(dir), 0);
	}
	chmod(dir, 0755);
}

static int mount_tmpfs(const char *dir, const char *opts)
{
	return mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV, opts);
}

static void test_media(void)
{
	char dir[256], p[1024], why[512], name[STICK_NAME_MAX + 1];
	uint8_t id[32], hash[32];
	struct stick_writer *w;

	/* A private mount namespace: the tmpfs mounts vanish with this process. */
	if (geteuid() != 0 || unshare(CLONE_NEWNS) != 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
		fprintf(stderr, "test_stick: no mount namespace (not root?): the full-stick and "
				"read-only-medium cases are skipped\n");
		return;
	}

	/* A full stick: refused early when the size is known, cleanly when it is not. */
	fresh_dir(dir, sizeof(dir));
	if (mount_tmpfs(dir, "size=2m") != 0) {
		fprintf(stderr, "test_stick: cannot mount tmpfs (%s): full-stick case skipped\n",
			strerror(errno));
		return;
	}
	struct stick *s = open_ok(dir, true);
	uint64_t free0 = 0, free1 = 0;
	CHECK_EQ(stick_free_bytes(s, &free0), 0);
	struct statvfs vfs;
	CHECK_EQ(statvfs(dir, &vfs), 0);
	CHECK_EQ(free0, (uint64_t)vfs.f_bavail * vfs.f_frsize);
	CHECK(free0 > (1u << 20) && free0 <= (2u << 20));
	make_id(id, 80);
	CHECK_EQ(stick_bundle_begin(s, id, 3u << 20, &w), -ENOSPC);
	CHECK(strstr(stick_error(s), "no space") != NULL);
	CHECK_EQ(write_bundle(s, id, 3u << 20, 1000, hash), -ENOSPC);
	CHECK(strstr(stick_error(s), "no space left on the stick") != NULL);
	snprintf(p, sizeof(p), "%s/tern/bundles", dir);
	CHECK_EQ(count_files(p, ".part"), 0);
	CHECK_EQ(count_files(p, ".bpv"), 0);
	CHECK_EQ(stick_free_bytes(s, &free1), 0);
	CHECK_EQ(free1, free0);
	/* What fits still goes on. */
	CHECK_EQ(write_bundle(s, id, 1u << 20, 1u << 20, hash), 0);
	uint8_t *big = calloc(1, 3u << 19);
	CHECK_EQ(stick_put(s, STICK_MANIFESTS, big, 3u << 19, name), -ENOSPC);
	CHECK(strstr(stick_error(s), "no space") != NULL);
	snprintf(p, sizeof(p), "%s/tern/manifests", dir);
	CHECK_EQ(count_files(p, ".part"), 0);
	CHECK_EQ(count_files(p, ".man"), 0);
	free(big);
	stick_close(s);

	/* The same stick made read-only: readable, not writable. */
	CHECK_EQ(mount(NULL, dir, NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL), 0);
	s = NULL;
	CHECK_EQ(stick_open(dir, true, &s, why, sizeof(why)), -EROFS);
	CHECK(strstr(why, "read-only file system") != NULL);
	s = open_ok(dir, false);
	struct entries l = {0};
	CHECK_EQ(stick_bundle_foreach(s, collect, &l), 0);
	CHECK_EQ(l.n, 1);
	if (l.n == 1)
		check_read_back(s, &l.e[0], 1u << 20);
	stick_close(s);
	umount2(dir, MNT_DETACH);

	/* A fresh read-only medium: nothing to create tern/ with. */
	fresh_dir(dir, sizeof(dir));
	CHECK_EQ(mount_tmpfs(dir, "size=1m"), 0);
	CHECK_EQ(mount(NULL, dir, NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL), 0);
	CHECK_EQ(stick_open(dir, true, &s, why, sizeof(why)), -EROFS);
	CHECK(strstr(why, "read-only") != NULL);
	umount2(dir, MNT_DETACH);
}

/* ---- a real FAT32 file system (fusefat) ------------------------------------------------ */

static bool have_tool(const char *name)
{
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "command -v %s > /dev/null 2>&1", name);
	return system(cmd) == 0;
}

static int on_any_file(void *ctx, const char *name, const uint8_t *buf, size_t len,
		       const char *problem)
{
	int *n = ctx;
	(void)name;
	(void)len;
	CHECK(buf != NULL && problem == NULL);
	(*n)++;
	return 0;
}

/* Bundles written to the FAT32 image in one go. */
#define FAT_MANY 400u

/* The i-th of them: in subdirectory i % 16. */
static void many_id(uint8_t id[32], unsigned i)
{
	id_in(id, 1000 + (int)i, i % 16);
	id[1] = (uint8_t)(i >> 8);
	id[2] = (uint8_t)i;
}

struct many {
	struct stick *s;
	unsigned ok, bad, unordered, misfiled;
	unsigned subdirs; /* bit h: a bundle of h/ was listed */
	char last[STICK_SHOW_MAX + 1];
};

/* Counts a listing, checks its order and that each bundle is in its own subdirectory. */
static int count_many(void *ctx, const struct stick_entry *e)
{
	struct many *m = ctx;
	if (m->last[0] && strcmp(m->last, e->name) >= 0)
		m->unordered++;
	snprintf(m->last, sizeof(m->last), "%s", e->name);
	if (e->problem) {
		m->bad++;
		return 0;
	}
	m->ok++;
	unsigned h = e->id[0] >> 4;
	if (e->name[0] != "0123456789abcdef"[h] || e->name[1] != '/')
		m->misfiled++;
	m->subdirs |= 1u << h;
	if (m->ok % 50 == 0) { /* a sample read back */
		uint8_t hash[32];
		uint64_t got = 0;
		CHECK_EQ(stick_bundle_read(m->s, e, null_sink, &got, hash), 0);
		CHECK_EQ(got, e->size);
	}
	return 0;
}

/*
 * The module's assumptions about the file system, checked on FAT32 itself: fusefat
 * has no RENAME_NOREPLACE (the fallback runs), reports no sizes (free space unknown),
 * and matches names in any case.
 */
static void test_fat32(void)
{
	char dir[256], img[300], mnt[300], cmd[1400], p[1024], name[STICK_NAME_MAX + 1];
	uint8_t id[32], hash[32], want[32];

	if (geteuid() != 0 || access("/dev/fuse", R_OK | W_OK) != 0 || !have_tool("mkfs.vfat") ||
	    !have_tool("fusefat") || !have_tool("fusermount")) {
		fprintf(stderr, "test_stick: no root, /dev/fuse, mkfs.vfat, fusefat or fusermount: "
				"the FAT32 case is skipped\n");
		return;
	}
	fresh_dir(dir, sizeof(dir));
	snprintf(img, sizeof(img), "%s/fat32.img", dir);
	snprintf(mnt, sizeof(mnt), "%s/mnt", dir);
	mkdir(mnt, 0755);
	snprintf(cmd, sizeof(cmd),
		 "truncate -s 64M '%s' && mkfs.vfat -F 32 '%s' > /dev/null && "
		 "fusefat -o rw+ '%s' '%s' > /dev/null 2>&1",
		 img, img, img, mnt);
	if (system(cmd) != 0) {
		fprintf(stderr, "test_stick: cannot make or mount a FAT32 image: case skipped\n");
		return;
	}

	set_piece_max("3000");
	struct stick *s = open_ok(mnt, true);
	set_piece_max(NULL);
	if (!s)
		goto out;
	uint64_t avail = 0;
	CHECK_EQ(stick_free_bytes(s, &avail), 0);
	fprintf(stderr, "test_stick: FAT32 via fusefat: free space %s\n",
		avail == STICK_FREE_UNKNOWN ? "not reported" : "reported");

	/* A whole bundle and one in pieces, read back; the same bundle again is refused. */
	make_id(id, 90);
	CHECK_EQ(write_bundle(s, id, 2500, 2500, hash), 0);
	expected_hash(2500, want);
	CHECK_MEM(hash, want, 32);
	make_id(id, 91);
	CHECK_EQ(write_bundle(s, id, 7000, 7000, hash), 0);
	expected_hash(7000, want);
	CHECK_MEM(hash, want, 32);
	CHECK(stick_has_bundle(s, id));
	struct stick_writer *w = NULL;
	CHECK_EQ(stick_bundle_begin(s, id, 7000, &w), -EEXIST);

	/* A name in capitals is not taken for ours, even where the file system would match it. */
	make_id(id, 92);
	id_name(id, ".bpv", name);
	for (char *c = name; *c; c++)
		if (*c >= 'a' && *c <= 'z')
			*c = (char)(*c - 32);
	bundle_path(p, sizeof(p), mnt, name);
	make_file(p, 10);
	/* Leftovers of a pull. */
	path_of(p, sizeof(p), mnt, "receipts", "0123456789abcdef0123456789abcdef.part");
	make_file(p, 10);

	struct entries l = {0};
	CHECK_EQ(stick_bundle_foreach(s, collect, &l), 0);
	CHECK_EQ(l.n, 3);
	for (size_t i = 0; i < l.n && i < 64; i++) {
		if (l.e[i].problem) {
			CHECK_EQ(l.e[i].code, STICK_BAD_NAME);
			continue;
		}
		check_read_back(s, &l.e[i], l.e[i].pieces == 1 ? 2500 : 7000);
		CHECK_EQ(l.e[i].pieces, l.e[i].size == 2500 ? 1 : 3);
	}

	/*
	 * A few hundred bundles across the 16 subdirectories, as an export writes them (group
	 * commits), then listed in name order and found by name.
	 */
	stick_defer_sync(s);
	for (unsigned i = 0; i < FAT_MANY; i++) {
		many_id(id, i);
		CHECK_EQ(write_bundle(s, id, 100 + i % 300, 100, hash), 0);
		if (i % 100 == 99)
			CHECK_EQ(stick_sync(s, NULL, NULL), 0);
	}
	CHECK_EQ(stick_sync(s, NULL, NULL), 0);
	for (unsigned i = 0; i < FAT_MANY; i += 37) {
		many_id(id, i);
		CHECK(stick_has_bundle(s, id));
	}
	snprintf(p, sizeof(p), "%s/tern/bundles", mnt);
	CHECK_EQ(count_entries(p), 16);
	CHECK_EQ(count_files(p, ".part"), 0);
	struct many m = {.s = s};
	CHECK_EQ(stick_bundle_foreach(s, count_many, &m), 0);
	CHECK_EQ(m.ok, FAT_MANY + 2); /* and the two of before */
	CHECK_EQ(m.bad, 1);
	CHECK_EQ(m.unordered, 0);
	CHECK_EQ(m.misfiled, 0);
	CHECK_EQ(m.subdirs, 0xffff);
	fprintf(stderr, "test_stick: FAT32 via fusefat: %u bundles across 16 subdirectories\n",
		FAT_MANY);

	char n1[STICK_NAME_MAX + 1];
	CHECK_EQ(stick_put(s, STICK_RECEIPTS, "custody", 7, n1), 0);
	unsigned removed = 0;
	CHECK_EQ(stick_clean_temp(s, &removed), 0);
	CHECK_EQ(removed, 1);
	int files = 0;
	CHECK_EQ(stick_foreach_file(s, STICK_RECEIPTS, on_any_file, &files), 0);
	CHECK_EQ(files, 1);
	CHECK_EQ(stick_remove(s, STICK_RECEIPTS, n1), 0);
	make_id(id, 91);
	CHECK_EQ(stick_bundle_remove(s, id), 0);
	CHECK(!stick_has_bundle(s, id));
	stick_close(s);
out:
	snprintf(cmd, sizeof(cmd), "fusermount -u '%s'", mnt);
	if (system(cmd) != 0)
		umount2(mnt, MNT_DETACH);
}

int main(void)
{
	CHECK_EQ(tern_crypto_init(), 0);
	unsetenv(STICK_PIECE_MAX_ENV);
	snprintf(base, sizeof(base), "/tmp/tern-stick-XXXXXX");
	if (!mkdtemp(base)) {
		perror("mkdtemp");
		return 2;
	}
	chmod(base, 0755); /* user nobody must reach the directories of test_permissions */
	test_open();
	test_round_trip();
	test_deferred();
	test_pieces();
	test_pulled();
	test_hostile();
	test_fanout();
	test_files();
	test_capacity();
	test_two_offices();
	test_memory_bound();
	test_permissions();
	test_media();
	test_fat32();
	rm_rf(base);
	TEST_MAIN_END();
}
