/* Payloads of a megabyte or more: files beside the database, written once, named by bundle id. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/crc32c.h"
#include "store/store_impl.h"

/*
 * In SQLite a payload is written twice (into the WAL, then copied into the database
 * by the checkpoint), four kilobytes at a time. In a file it is written once, in big
 * writes, and fdatasync'd. The database keeps the row (head, state, per-chunk CRCs)
 * and the file only bytes. What keeps the two consistent:
 *
 * - a file gets its final name (<64 hex id>) only once its bytes are on the disk,
 *   inside the write unit of the row that names it; a crash between the rename and
 *   the COMMIT leaves an orphan, which the sweep at the next open removes;
 * - a file is removed only after the deletion of its row committed: a trigger notes
 *   the id in payload_trash in the deleting transaction, and a later sweep unlinks;
 * - everything that can race another process (placing a file, sweeping) runs under
 *   the database's write lock, so a sweep never sees a file whose row is about to
 *   commit, and a new file for an id is never taken for the trash of an old one.
 */

#define TMP_PREFIX "tmp-"

int store_files_open(struct store *s, const char *db_path, const char **why)
{
	char dir[PATH_MAX];
	if (snprintf(dir, sizeof(dir), "%s-payloads", db_path) >= (int)sizeof(dir)) {
		*why = "path too long";
		return -ENAMETOOLONG;
	}
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		*why = "cannot create the payload directory beside the store";
		return -errno;
	}
	s->files_fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (s->files_fd < 0) {
		*why = "cannot open the payload directory beside the store";
		return -errno;
	}
	return 0;
}

void store_files_close(struct store *s)
{
	if (s->files_fd >= 0)
		close(s->files_fd);
	s->files_fd = -1;
	free(s->new_files);
	s->new_files = NULL;
	s->n_new_files = s->cap_new_files = 0;
}

static int sync_dir(struct store *s)
{
	return fsync(s->files_fd) == 0 ? 0 : -errno;
}

int store_file_create(struct store *s, int *fd, char tmp[static STORE_TMP_NAME])
{
	uint8_t rnd[8];
	for (int tries = 0; tries < 4; tries++) {
		if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
			return -EIO;
		memcpy(tmp, TMP_PREFIX, sizeof(TMP_PREFIX) - 1);
		store_hex(tmp + sizeof(TMP_PREFIX) - 1, rnd, sizeof(rnd));
		*fd = openat(s->files_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			     0600);
		if (*fd >= 0)
			return 0;
		if (errno != EEXIST)
			break;
	}
	int err = -errno;
	store_seterr(s, "cannot create a payload file: %s", strerror(errno));
	tmp[0] = '\0';
	return err;
}

/*
 * True if a row other than except (a writer's own, not committed yet) names this file:
 * a committed one, or one staged earlier in the caller's batch.
 */
static bool owned(struct store *s, const uint8_t id[32], int64_t except)
{
	sqlite3_stmt *st;
	if (store_stmt(s, ST_FILE_OWNED, &st) != 0)
		return true; /* when in doubt, a file stays */
	sqlite3_bind_blob(st, 1, id, 32, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, except);
	bool found = sqlite3_step(st) == SQLITE_ROW;
	store_stmt_done(s, ST_FILE_OWNED, st);
	return found;
}

static int trash_forget(struct store *s, const uint8_t id[32])
{
	sqlite3_stmt *st;
	int ret = store_stmt(s, ST_TRASH_DELETE, &st);
	if (ret == 0) {
		sqlite3_bind_blob(st, 1, id, 32, SQLITE_STATIC);
		ret = store_step_done(s, ST_TRASH_DELETE, st);
	}
	return ret;
}

static int rename_noreplace(int dfd, const char *from, const char *to)
{
	if (renameat2(dfd, from, dfd, to, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
		return -errno;
	/* A file system without RENAME_NOREPLACE: a hard link fails on an existing name too. */
	if (linkat(dfd, from, dfd, to, 0) != 0)
		return -errno;
	unlinkat(dfd, from, 0);
	return 0;
}

int store_file_place(struct store *s, int fd, const char *tmp, const uint8_t id[32], int64_t rowid)
{
	char name[65];
	int ret = fdatasync(fd) == 0 ? 0 : -errno;
	if (close(fd) != 0 && ret == 0)
		ret = -errno;
	if (ret) {
		store_seterr(s, "payload file not written: %s", strerror(-ret));
		return ret;
	}
	store_hex(name, id, 32);
	ret = rename_noreplace(s->files_fd, tmp, name);
	if (ret == -EEXIST && !owned(s, id, rowid)) {
		/* The file of a deleted bundle with this id, not swept yet: it goes now. */
		if (unlinkat(s->files_fd, name, 0) != 0 && errno != ENOENT)
			ret = -errno;
		else if ((ret = trash_forget(s, id)) == 0)
			ret = rename_noreplace(s->files_fd, tmp, name);
	}
	if (ret == -EEXIST) {
		store_seterr(s, "a payload file for this bundle exists: it is stored already");
		return ret;
	}
	if (ret == 0)
		ret = sync_dir(s);
	if (ret)
		store_seterr(s, "payload file not placed: %s", strerror(-ret));
	return ret;
}

void store_file_discard(struct store *s, const char *tmp, const uint8_t *id)
{
	char name[65];
	if (tmp && tmp[0])
		unlinkat(s->files_fd, tmp, 0);
	if (id) {
		store_hex(name, id, 32);
		unlinkat(s->files_fd, name, 0);
	}
}

int store_files_note_new(struct store *s, const uint8_t id[32])
{
	if (s->n_new_files == s->cap_new_files) {
		size_t cap = s->cap_new_files ? 2 * s->cap_new_files : 16;
		uint8_t(*grown)[32] = realloc(s->new_files, cap * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		s->new_files = grown;
		s->cap_new_files = cap;
	}
	memcpy(s->new_files[s->n_new_files++], id, 32);
	return 0;
}

void store_files_committed(struct store *s)
{
	s->n_new_files = 0;
}

/* The transaction that named them is gone: so are they (else the sweep would find orphans). */
void store_files_rolled_back(struct store *s)
{
	for (size_t i = 0; i < s->n_new_files; i++)
		store_file_discard(s, NULL, s->new_files[i]);
	if (s->n_new_files)
		sync_dir(s);
	s->n_new_files = 0;
}

static int read_exact(int fd, uint8_t *buf, size_t n)
{
	while (n) {
		ssize_t got = read(fd, buf, n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return got < 0 ? -errno : -ENODATA;
		buf += got;
		n -= (size_t)got;
	}
	return 0;
}

int store_file_read(struct store *s, const uint8_t id[32], uint64_t payload_len,
		    const uint8_t *crcs, size_t crcs_len,
		    int (*fn)(void *ctx, const uint8_t *buf, size_t len), void *ctx, char *bad,
		    size_t badlen)
{
	char name[65];
	struct stat st;
	store_hex(name, id, 32);
	int fd = openat(s->files_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT)
			return -errno;
		snprintf(bad, badlen, "payload file missing");
		return 0;
	}
	uint64_t chunks = (payload_len + STORE_CHUNK_SIZE - 1) / STORE_CHUNK_SIZE;
	uint8_t *buf = NULL;
	int ret = 0;
	if (fstat(fd, &st) != 0) {
		ret = -errno;
	} else if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != payload_len) {
		snprintf(bad, badlen, "payload file is %lld bytes, not %llu", (long long)st.st_size,
			 (unsigned long long)payload_len);
	} else if (!crcs || crcs_len != chunks * 4) {
		snprintf(bad, badlen, "payload checksums do not match its length");
	} else if (!(buf = malloc(STORE_CHUNK_SIZE))) {
		ret = -ENOMEM;
	}
	for (uint64_t i = 0; ret == 0 && buf && i < chunks; i++) {
		uint64_t left = payload_len - i * STORE_CHUNK_SIZE;
		size_t n = left < STORE_CHUNK_SIZE ? (size_t)left : STORE_CHUNK_SIZE;
		const uint8_t *c = crcs + 4 * i;
		uint32_t want =
		    (uint32_t)c[0] << 24 | (uint32_t)c[1] << 16 | (uint32_t)c[2] << 8 | c[3];
		ret = read_exact(fd, buf, n);
		if (ret == -ENODATA) {
			snprintf(bad, badlen, "payload file shrank at chunk %llu",
				 (unsigned long long)i);
			ret = 0;
			break;
		}
		if (ret == 0 && store_crc32c(0, buf, n) != want) {
			snprintf(bad, badlen, "payload file chunk %llu checksum mismatch",
				 (unsigned long long)i);
			break;
		}
		if (ret == 0)
			ret = fn(ctx, buf, n);
	}
	free(buf);
	close(fd);
	return ret;
}

static bool parse_id(const char *name, uint8_t id[32])
{
	if (strlen(name) != 64)
		return false;
	for (int i = 0; i < 64; i++) {
		char c = name[i];
		int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
		if (v < 0)
			return false;
		if (i % 2 == 0)
			id[i / 2] = (uint8_t)(v << 4);
		else
			id[i / 2] |= (uint8_t)v;
	}
	return true;
}

static int sweep_trash(struct store *s, unsigned *removed)
{
	for (;;) {
		sqlite3_stmt *st;
		uint8_t id[32];
		int ret = store_stmt(s, ST_TRASH_NEXT, &st);
		if (ret)
			return ret;
		int rc = sqlite3_step(st);
		bool have = rc == SQLITE_ROW && sqlite3_column_bytes(st, 0) == 32;
		if (have)
			memcpy(id, sqlite3_column_blob(st, 0), 32);
		ret = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : store_err(s, rc);
		store_stmt_done(s, ST_TRASH_NEXT, st);
		if (ret || !have)
			return ret;
		if (!owned(s, id, -1)) {
			char name[65];
			store_hex(name, id, 32);
			if (unlinkat(s->files_fd, name, 0) == 0)
				(*removed)++;
		}
		ret = trash_forget(s, id);
		if (ret)
			return ret;
	}
}

static bool trash_empty(struct store *s)
{
	sqlite3_stmt *st;
	if (store_stmt(s, ST_TRASH_NEXT, &st) != 0)
		return false;
	bool empty = sqlite3_step(st) == SQLITE_DONE;
	store_stmt_done(s, ST_TRASH_NEXT, st);
	return empty;
}

static int sweep_orphans(struct store *s, unsigned *removed)
{
	int dfd = openat(s->files_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (!d) {
		if (dfd >= 0)
			close(dfd);
		return -errno;
	}
	struct dirent *e;
	while ((e = readdir(d))) {
		uint8_t id[32];
		uint64_t peer;
		bool tmp = strncmp(e->d_name, TMP_PREFIX, sizeof(TMP_PREFIX) - 1) == 0;
		/* Under the write lock no writer is between create and commit: a tmp file is dead.
		 * A stage file is one as long as a row names it (stage.c creates both in one unit).
		 */
		if ((tmp || (parse_id(e->d_name, id) && !owned(s, id, -1)) ||
		     (store_stage_parse_name(e->d_name, &peer, id) &&
		      !store_stage_owned(s, peer, id))) &&
		    unlinkat(s->files_fd, e->d_name, 0) == 0)
			(*removed)++;
	}
	closedir(d);
	return 0;
}

/* Anything for a sweep to look at, seen without the lock (a process that only reads takes none). */
static bool sweep_needed(struct store *s, bool orphans)
{
	if (!trash_empty(s) || !store_stage_trash_empty(s))
		return true;
	if (!orphans)
		return false;
	int dfd = openat(s->files_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	bool needed = !d;
	struct dirent *e;
	while (d && !needed && (e = readdir(d))) {
		uint8_t id[32];
		uint64_t peer;
		needed = strncmp(e->d_name, TMP_PREFIX, sizeof(TMP_PREFIX) - 1) == 0 ||
			 (parse_id(e->d_name, id) && !owned(s, id, -1)) ||
			 (store_stage_parse_name(e->d_name, &peer, id) &&
			  !store_stage_owned(s, peer, id));
	}
	if (d)
		closedir(d);
	else if (dfd >= 0)
		close(dfd);
	return needed;
}

/*
 * Removes the files of deleted bundles and stages and, with orphans, what a crash left
 * (temporary files, payload and stage files whose row never committed). Takes the write lock
 * without waiting: if another process holds it, the sweep is left for later (its files are in use).
 */
int store_files_sweep(struct store *s, bool orphans)
{
	unsigned removed = 0;
	if (s->batch || s->writer || s->files_fd < 0 || !sweep_needed(s, orphans))
		return 0;
	sqlite3_busy_timeout(s->db, 0);
	int ret = store_unit_begin(s);
	sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS);
	if (ret)
		return ret == -EBUSY ? 0 : ret;
	ret = sweep_trash(s, &removed);
	if (ret == 0)
		ret = store_stage_sweep_trash(s, &removed);
	if (ret == 0 && orphans)
		ret = sweep_orphans(s, &removed);
	if (ret) {
		store_unit_rollback(s);
		return ret;
	}
	ret = store_unit_commit(s);
	if (removed && ret == 0)
		ret = sync_dir(s);
	return ret;
}
