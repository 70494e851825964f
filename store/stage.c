/* Transfers being received over a link, staged in files beside the database until whole. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "store/store_impl.h"
#include "store/store_testing.h"

/*
 * A stage is a file <db>-payloads/in-<peer>-<id> and a row in stages. What keeps the
 * two consistent, as for payload files (payload_file.c):
 *
 * - the file is created (a stale one of that name removed first) inside the write unit
 *   that inserts its row, and the directory is fsynced before the row commits: a sweep,
 *   which runs under the same lock, never takes a file whose row is about to commit for
 *   an orphan, and a crash before the commit leaves an orphan the next sweep removes;
 * - have moves only after fdatasync of the file returned: after a crash the file holds
 *   at least have bytes, and what lies past have is written over by the resume;
 * - a file is removed only after its row's deletion committed: a trigger notes it in
 *   stage_trash, and the sweep unlinks it under the lock unless a row names it again;
 * - a stage belongs to one session: its file is flock'd while open. The row is found by
 *   its rowid, never reused, so a session whose stage was purged meanwhile cannot move
 *   the have of a new stage of the same transfer;
 * - a failed fdatasync poisons the stage: the kernel may have dropped the pages it could
 *   not write and a later fdatasync would not say so, so have never moves again.
 */

struct store_stage {
	struct store *s;		 /* NULL once store_close orphaned it */
	struct store_stage *prev, *next; /* the store's open stages */
	uint64_t peer;
	uint8_t id[32];
	uint64_t payload_len, life_ms;
	struct store_stage_limits lim;
	uint64_t unix_ms, boot_ms; /* the clock at open: the row's creation */
	uint8_t boot_id[16];
	int64_t row;	  /* 0 until the file and the row exist */
	int fd;		  /* -1 until then */
	uint64_t written; /* file bytes [0, written) are this transfer's */
	uint64_t durable;
	uint8_t *buf; /* appended bytes not written yet */
	size_t buf_len, buf_cap;
	int err;
};

/* Bytes a stage holds before it gets a file and a row (0 in the limits: STORE_STAGE_BUF). */
static uint64_t stage_file_min(const struct store_stage_limits *lim)
{
	return lim->file_min && lim->file_min < STORE_STAGE_BUF ? lim->file_min : STORE_STAGE_BUF;
}

void store_stage_limits_default(struct store_stage_limits *lim)
{
	*lim = (struct store_stage_limits){
	    .peer_max = 8ull << 30,
	    .total_max = 16ull << 30,
	    .reserve = 256ull << 20,
	    .reserve_pct = 5,
	    .life_max_ms = STORE_STAGE_LIFE_MAX_MS,
	};
}

static void link_stage(struct store_stage *st)
{
	st->prev = NULL;
	st->next = st->s->stages;
	if (st->next)
		st->next->prev = st;
	st->s->stages = st;
}

static void unlink_stage(struct store_stage *st)
{
	if (!st->s)
		return;
	if (st->prev)
		st->prev->next = st->next;
	else
		st->s->stages = st->next;
	if (st->next)
		st->next->prev = st->prev;
	st->prev = st->next = NULL;
}

/* Tests only (store_testing.h): the next this many stage fdatasyncs fail with EIO. */
static unsigned sync_failures;

void store_testing_stage_sync_fail(unsigned count)
{
	sync_failures = count;
}

/* Tests only: called in reopen between the row's lookup and the file's lock. */
static void (*before_lock)(void *ctx);
static void *before_lock_ctx;

void store_testing_stage_before_lock(void (*fn)(void *ctx), void *ctx)
{
	before_lock = fn;
	before_lock_ctx = ctx;
}

static int stage_fdatasync(int fd)
{
	if (sync_failures) {
		sync_failures--;
		errno = EIO;
		return -1;
	}
	return fdatasync(fd);
}

static void stage_name(char out[STORE_STAGE_NAME], uint64_t peer, const uint8_t id[32])
{
	snprintf(out, STORE_STAGE_NAME, "in-%016" PRIx64 "-", peer);
	store_hex(out + 20, id, 32);
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

bool store_stage_parse_name(const char *name, uint64_t *peer, uint8_t id[32])
{
	if (strlen(name) != STORE_STAGE_NAME - 1 || strncmp(name, "in-", 3) != 0 || name[19] != '-')
		return false;
	uint64_t p = 0;
	for (int i = 3; i < 19; i++) {
		int v = hexval(name[i]);
		if (v < 0)
			return false;
		p = p << 4 | (uint64_t)v;
	}
	for (int i = 0; i < 64; i++) {
		int v = hexval(name[20 + i]);
		if (v < 0)
			return false;
		if (i % 2 == 0)
			id[i / 2] = (uint8_t)(v << 4);
		else
			id[i / 2] |= (uint8_t)v;
	}
	*peer = p;
	return true;
}

/* The stage row of (peer, id): 0 with its fields, -ENOENT, or a store error. */
static int lookup(struct store *s, uint64_t peer, const uint8_t id[32], int64_t *row,
		  uint64_t *payload_len, uint64_t *have)
{
	sqlite3_stmt *st;
	int ret = store_stmt(s, ST_STAGE_GET, &st);
	if (ret)
		return ret;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)peer);
	sqlite3_bind_blob(st, 2, id, 32, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*row = sqlite3_column_int64(st, 0);
		*payload_len = store_u64(sqlite3_column_int64(st, 1));
		*have = store_u64(sqlite3_column_int64(st, 2));
		ret = 0;
	} else {
		ret = rc == SQLITE_DONE ? -ENOENT : store_err(s, rc);
	}
	store_stmt_done(s, ST_STAGE_GET, st);
	return ret;
}

bool store_stage_owned(struct store *s, uint64_t peer, const uint8_t id[32])
{
	int64_t row;
	uint64_t len, have;
	return lookup(s, peer, id, &row, &len, &have) != -ENOENT; /* in doubt, a file stays */
}

static int peer_bytes(struct store *s, uint64_t peer, const uint8_t id[32], uint64_t *bytes)
{
	sqlite3_stmt *st;
	int ret = store_stmt(s, ST_STAGE_PEER_BYTES, &st);
	if (ret)
		return ret;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)peer);
	sqlite3_bind_blob(st, 2, id, 32, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*bytes = store_u64(sqlite3_column_int64(st, 0));
	else
		ret = store_err(s, rc);
	store_stmt_done(s, ST_STAGE_PEER_BYTES, st);
	return ret;
}

static int total_bytes(struct store *s, uint64_t peer, const uint8_t id[32], uint64_t *bytes)
{
	sqlite3_stmt *st;
	int ret = store_stmt(s, ST_STAGE_TOTAL_BYTES, &st);
	if (ret)
		return ret;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)peer);
	sqlite3_bind_blob(st, 2, id, 32, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*bytes = store_u64(sqlite3_column_int64(st, 0));
	else
		ret = store_err(s, rc);
	store_stmt_done(s, ST_STAGE_TOTAL_BYTES, st);
	return ret;
}

/* The per-peer and total caps, for a stage of (peer, id) that is to have a row. */
static int check_caps(struct store *s, uint64_t peer, const uint8_t id[32], uint64_t payload_len,
		      const struct store_stage_limits *lim)
{
	uint64_t bytes = 0;
	int ret = peer_bytes(s, peer, id, &bytes);
	if (ret == 0 && (bytes > lim->peer_max || payload_len > lim->peer_max - bytes)) {
		store_seterr(s, "stages of this peer would pass %" PRIu64 " bytes", lim->peer_max);
		return -EDQUOT;
	}
	if (ret == 0)
		ret = total_bytes(s, peer, id, &bytes);
	if (ret == 0 && (bytes > lim->total_max || payload_len > lim->total_max - bytes)) {
		store_seterr(s, "disk full: stages would pass %" PRIu64 " bytes in all",
			     lim->total_max);
		return -ENOSPC;
	}
	return ret;
}

static int delete_row(struct store *s, int64_t row)
{
	sqlite3_stmt *st;
	int ret = store_unit_begin(s);
	if (ret)
		return ret;
	ret = store_stmt(s, ST_STAGE_DELETE, &st);
	if (ret == 0) {
		sqlite3_bind_int64(st, 1, row);
		ret = store_step_done(s, ST_STAGE_DELETE, st);
	}
	if (ret) {
		store_unit_rollback(s);
		return ret;
	}
	return store_unit_commit(s);
}

/*
 * File size of the stage of (peer, id), and the bytes allocated to it (alloc may be
 * NULL): -ENOENT if none, or not a regular file.
 */
static int file_size(struct store *s, uint64_t peer, const uint8_t id[32], uint64_t *size,
		     uint64_t *alloc)
{
	char name[STORE_STAGE_NAME];
	struct stat st;
	stage_name(name, peer, id);
	if (fstatat(s->files_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -ENOENT;
	*size = (uint64_t)st.st_size;
	if (alloc)
		*alloc = (uint64_t)st.st_blocks * 512;
	return 0;
}

int store_stage_have(struct store *s, uint64_t peer, const uint8_t id[static 32],
		     uint64_t payload_len, uint64_t *have, uint64_t *bytes)
{
	int64_t row = 0;
	uint64_t len = 0, h = 0, size = 0; /* set by lookup; GCC -O3 cannot tell */
	if (!s || !id || !have)
		return -EINVAL;
	*have = 0;
	if (bytes) {
		int ret = peer_bytes(s, peer, id, bytes);
		if (ret)
			return ret;
	}
	int ret = lookup(s, peer, id, &row, &len, &h);
	if (ret == -ENOENT)
		return 0;
	if (ret)
		return ret;
	if (len == payload_len && file_size(s, peer, id, &size, NULL) == 0 && size >= h)
		*have = h;
	return 0;
}

int store_stage_admit(struct store *s, uint64_t peer, const uint8_t id[static 32],
		      uint64_t payload_len, uint64_t have, const struct store_stage_limits *lim)
{
	struct store_stage_limits def;
	struct statvfs vfs;
	uint64_t size = 0, alloc = 0;
	if (!s || !id || have > payload_len)
		return -EINVAL;
	if (!lim) {
		store_stage_limits_default(&def);
		lim = &def;
	}
	bool filed = payload_len >= stage_file_min(lim);
	if (filed) {
		int ret = check_caps(s, peer, id, payload_len, lim);
		if (ret)
			return ret;
	}
	if (s->files_fd < 0 || fstatvfs(s->files_fd, &vfs) != 0)
		return 0;
	uint64_t avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	uint64_t disk = (uint64_t)vfs.f_blocks * vfs.f_frsize;
	uint64_t reserve = disk / 100 * lim->reserve_pct;
	if (reserve < lim->reserve)
		reserve = lim->reserve;
	/* The copy into the queue at the end, and what the stage still has to write. */
	uint64_t need = payload_len;
	if (filed) {
		uint64_t rest = payload_len - have;
		/* A stage's file was allocated whole at its creation: that is out of avail. */
		if (file_size(s, peer, id, &size, &alloc) == 0)
			rest = alloc >= payload_len ? 0 : rest;
		need = need + rest < need ? UINT64_MAX : need + rest;
	}
	if (avail < reserve || need > avail - reserve) {
		store_seterr(s,
			     "disk full: %" PRIu64 " bytes free, %" PRIu64
			     " needed over a reserve of %" PRIu64,
			     avail, need, reserve);
		return -ENOSPC;
	}
	return 0;
}

/* An existing stage to continue at from: 0 (st filled), -ESTALE unusable, -EBUSY, -errno. */
static int reopen(struct store_stage *st, int64_t row, uint64_t have, uint64_t from)
{
	char name[STORE_STAGE_NAME];
	struct stat sb;
	if (from > have)
		return -ESTALE;
	stage_name(name, st->peer, st->id);
	int fd = openat(st->s->files_fd, name, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ESTALE : -errno;
	if (before_lock) {
		void (*fn)(void *) = before_lock;
		before_lock = NULL;
		fn(before_lock_ctx);
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		int err = errno == EWOULDBLOCK ? -EBUSY : -errno;
		close(fd);
		if (err == -EBUSY)
			store_seterr(st->s, "the stage is in use by another session");
		return err;
	}
	/*
	 * Under the lock the stage is ours; its row must still be the one read before it was
	 * taken: another session may have dropped it, or made it again, meanwhile.
	 */
	int64_t row2 = 0;
	uint64_t len2 = 0, have2 = 0;
	int ret = lookup(st->s, st->peer, st->id, &row2, &len2, &have2);
	if (ret == 0 && (row2 != row || len2 != st->payload_len || have2 < from))
		ret = -ESTALE;
	if (ret == -ENOENT)
		ret = -ESTALE;
	if (ret == 0 &&
	    (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || (uint64_t)sb.st_size < have2))
		ret = -ESTALE;
	if (ret) {
		close(fd);
		return ret;
	}
	st->row = row;
	st->fd = fd;
	st->written = from;
	st->durable = from;
	return 0;
}

int store_stage_open(struct store *s, uint64_t peer, const uint8_t id[static 32],
		     uint64_t payload_len, uint64_t from, uint64_t life_ms,
		     const struct store_stage_limits *lim, const struct store_clock *now,
		     struct store_stage **out)
{
	int64_t row = 0;
	uint64_t len = 0, have = 0;
	int ret;
	if (!s || !id || !out || from > payload_len)
		return -EINVAL;
	*out = NULL;
	if (s->files_fd < 0)
		return -EBADF;
	if (s->batch) {
		/* Its units would join the batch: a have committed only if the batch is. */
		store_seterr(s, "a batch is open");
		return -EBUSY;
	}
	store_clock_observe(s, now);
	struct store_stage *st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->s = s;
	st->peer = peer;
	memcpy(st->id, id, 32);
	st->payload_len = payload_len;
	if (lim)
		st->lim = *lim;
	else
		store_stage_limits_default(&st->lim);
	st->life_ms = life_ms < st->lim.life_max_ms ? life_ms : st->lim.life_max_ms;
	st->fd = -1;
	st->unix_ms = s->unix_ms;
	memcpy(st->boot_id, now ? now->boot_id : s->boot_id, 16);
	st->boot_ms = now ? now->boot_ms : s->boot_ms;

	ret = store_stage_admit(s, peer, id, payload_len, from, &st->lim);
	if (ret)
		goto fail;
	ret = lookup(s, peer, id, &row, &len, &have);
	if (ret == 0) {
		ret = len == payload_len ? reopen(st, row, have, from) : -ESTALE;
		if (ret == 0)
			goto done;
		if (ret != -ESTALE || from > 0)
			goto fail;
		/* Starting afresh: the old stage goes (its file with the next sweep). */
		ret = delete_row(s, row);
	} else if (ret == -ENOENT) {
		ret = from > 0 ? -ESTALE : 0;
	}
	if (ret)
		goto fail;
done:
	link_stage(st);
	*out = st;
	return 0;
fail:
	free(st);
	return ret;
}

/* Gives the stage its file and row, in one write unit (see the top of the file). */
static int create(struct store_stage *st)
{
	struct store *s = st->s;
	char name[STORE_STAGE_NAME] = "";
	int64_t row;
	uint64_t len, have;
	sqlite3_stmt *q;
	int fd = -1;
	if (s->batch) {
		store_seterr(s, "a batch is open");
		return -EBUSY;
	}
	int ret = store_unit_begin(s);
	if (ret)
		return ret;
	ret = lookup(s, st->peer, st->id, &row, &len, &have);
	if (ret == 0) {
		store_seterr(s, "another session staged this transfer meanwhile");
		ret = -EBUSY;
	} else if (ret == -ENOENT) {
		/* Again under the lock: other sessions may have made stages since the open. */
		ret = check_caps(s, st->peer, st->id, st->payload_len, &st->lim);
	}
	if (ret)
		goto rollback;
	stage_name(name, st->peer, st->id);
	/* No row names it: a stale file (trash not swept yet, or a crash's orphan). */
	unlinkat(s->files_fd, name, 0);
	fd = openat(s->files_fd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) != 0) {
		ret = -errno;
		store_seterr(s, "cannot create a stage file: %s", strerror(errno));
		goto rollback;
	}
	/*
	 * The blocks of the whole payload now, so that the disk cannot fill under an admitted
	 * transfer (and statvfs counts them). fallocate, not posix_fallocate: where the file
	 * system cannot, glibc's emulation would write the whole file under the write lock.
	 */
	if (fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, (off_t)st->payload_len) != 0 &&
	    errno != EOPNOTSUPP && errno != ENOSYS) {
		ret = -errno;
		store_seterr(s, "cannot allocate a stage file: %s", strerror(errno));
		goto rollback;
	}
	if (fsync(s->files_fd) != 0) {
		ret = -errno;
		store_seterr(s, "cannot create a stage file: %s", strerror(errno));
		goto rollback;
	}
	ret = store_stmt(s, ST_STAGE_INSERT, &q);
	if (ret)
		goto rollback;
	sqlite3_bind_int64(q, 1, (sqlite3_int64)st->peer);
	sqlite3_bind_blob(q, 2, st->id, 32, SQLITE_STATIC);
	sqlite3_bind_int64(q, 3, store_i64(st->payload_len));
	sqlite3_bind_int64(q, 4, store_i64(st->life_ms));
	sqlite3_bind_int64(q, 5, store_i64(st->unix_ms));
	sqlite3_bind_blob(q, 6, st->boot_id, 16, SQLITE_STATIC);
	sqlite3_bind_int64(q, 7, store_i64(st->boot_ms));
	ret = store_step_done(s, ST_STAGE_INSERT, q);
	if (ret)
		goto rollback;
	row = sqlite3_last_insert_rowid(s->db);
	ret = store_unit_commit(s);
	if (ret) {
		close(fd); /* an orphan now: the next sweep (under the lock) removes it */
		return ret;
	}
	st->row = row;
	st->fd = fd;
	return 0;
rollback:
	if (fd >= 0) {
		unlinkat(s->files_fd, name, 0); /* still under the lock: nobody else's */
		close(fd);
	}
	store_unit_rollback(s);
	return ret;
}

static int write_all(int fd, const uint8_t *buf, size_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pwrite(fd, buf, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		buf += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* Writes the buffered bytes to the file, creating it first if need be. */
static int flush(struct store_stage *st)
{
	if (!st->buf_len)
		return 0;
	int ret = st->row ? 0 : create(st);
	if (ret == 0)
		ret = write_all(st->fd, st->buf, st->buf_len, st->written);
	if (ret == 0) {
		st->written += st->buf_len;
		st->buf_len = 0;
	}
	return ret;
}

uint64_t store_stage_length(const struct store_stage *st)
{
	return st->written + st->buf_len;
}

uint64_t store_stage_durable(const struct store_stage *st)
{
	return st->durable;
}

int store_stage_append(struct store_stage *st, const uint8_t *buf, size_t len)
{
	if (st->err)
		return st->err;
	if (len > st->payload_len - store_stage_length(st))
		return st->err = -EINVAL;
	while (len) {
		if (st->buf_len == STORE_STAGE_BUF) {
			int ret = flush(st);
			if (ret)
				return st->err = ret;
		}
		size_t need =
		    st->buf_len + len < STORE_STAGE_BUF ? st->buf_len + len : STORE_STAGE_BUF;
		if (need > st->buf_cap) {
			size_t cap = st->buf_cap ? st->buf_cap : 16384;
			while (cap < need)
				cap *= 2;
			cap = cap < STORE_STAGE_BUF ? cap : STORE_STAGE_BUF;
			uint8_t *p = realloc(st->buf, cap);
			if (!p)
				return st->err = -ENOMEM;
			st->buf = p;
			st->buf_cap = cap;
		}
		size_t n = need - st->buf_len;
		memcpy(st->buf + st->buf_len, buf, n);
		st->buf_len += n;
		buf += n;
		len -= n;
	}
	return 0;
}

int store_stage_sync(struct store_stage *st)
{
	sqlite3_stmt *q;
	if (st->err)
		return st->err;
	if (!st->row && st->buf_len < stage_file_min(&st->lim))
		return 0;
	int ret = flush(st);
	if (ret)
		return st->err = ret;
	if (st->written == st->durable)
		return 0;
	if (stage_fdatasync(st->fd) != 0) {
		ret = -errno;
		store_seterr(st->s, "stage file not written: %s", strerror(errno));
		return st->err = ret; /* poisoned: see the top of the file */
	}
	ret = store_unit_begin(st->s);
	if (ret)
		return ret;
	ret = store_stmt(st->s, ST_STAGE_SET_HAVE, &q);
	if (ret == 0) {
		sqlite3_bind_int64(q, 1, st->row);
		sqlite3_bind_int64(q, 2, store_i64(st->written));
		sqlite3_bind_blob(q, 3, st->s->boot_id, 16, SQLITE_STATIC);
		sqlite3_bind_int64(q, 4, store_i64(st->s->boot_ms));
		ret = store_step_done(st->s, ST_STAGE_SET_HAVE, q);
	}
	if (ret == 0 && sqlite3_changes(st->s->db) == 0) {
		store_seterr(st->s, "the stage expired and was purged");
		ret = -ENOENT;
	}
	if (ret) {
		store_unit_rollback(st->s);
		return ret;
	}
	ret = store_unit_commit(st->s);
	if (ret == 0)
		st->durable = st->written;
	return ret;
}

ssize_t store_stage_read(struct store_stage *st, uint64_t off, uint8_t *buf, size_t len)
{
	if (!st->s)
		return st->err;
	uint64_t end = store_stage_length(st);
	if (off >= end || !len)
		return 0;
	if (len > end - off)
		len = (size_t)(end - off);
	if (!st->row) { /* all of it is in memory */
		memcpy(buf, st->buf + off, len);
		return (ssize_t)len;
	}
	if (st->err)
		return st->err;
	int ret = flush(st);
	if (ret)
		return st->err = ret;
	for (;;) {
		ssize_t n = pread(st->fd, buf, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		return n ? n : -EIO; /* shorter than written: not ours any more */
	}
}

static void stage_free(struct store_stage *st)
{
	unlink_stage(st);
	if (st->fd >= 0)
		close(st->fd);
	free(st->buf);
	free(st);
}

int store_stage_drop(struct store_stage *st)
{
	if (!st)
		return 0;
	struct store *s = st->s;
	if (!s) {
		int err = st->err;
		stage_free(st);
		return err;
	}
	int ret = st->row ? delete_row(s, st->row) : 0;
	bool swept = st->row && ret == 0;
	/* The row stays: void its bytes, or the next session would resume from them. */
	if (st->row && ret && st->fd >= 0 && ftruncate(st->fd, 0) == 0)
		fdatasync(st->fd);
	stage_free(st);
	if (swept && !s->batch && !s->writer)
		store_files_sweep(s, false); /* best effort: else the next sweep */
	return ret;
}

void store_stage_close(struct store_stage *st)
{
	if (st)
		stage_free(st);
}

void store_stages_orphan(struct store *s)
{
	while (s->stages) {
		struct store_stage *st = s->stages;
		store_stage_sync(st); /* best effort: the next session resumes from there */
		unlink_stage(st);
		if (st->fd >= 0)
			close(st->fd);
		st->fd = -1;
		st->s = NULL;
		st->err = -EBADF;
	}
}

/* ---- for the sweep, the purge and the clock ----------------------------------------- */

bool store_stage_trash_empty(struct store *s)
{
	sqlite3_stmt *st;
	if (store_stmt(s, ST_STAGE_TRASH_NEXT, &st) != 0)
		return false;
	bool empty = sqlite3_step(st) == SQLITE_DONE;
	store_stmt_done(s, ST_STAGE_TRASH_NEXT, st);
	return empty;
}

int store_stage_sweep_trash(struct store *s, unsigned *removed)
{
	for (;;) {
		sqlite3_stmt *st;
		uint8_t id[32];
		uint64_t peer = 0;
		int ret = store_stmt(s, ST_STAGE_TRASH_NEXT, &st);
		if (ret)
			return ret;
		int rc = sqlite3_step(st);
		bool have = rc == SQLITE_ROW && sqlite3_column_bytes(st, 1) == 32;
		if (have) {
			peer = (uint64_t)sqlite3_column_int64(st, 0);
			memcpy(id, sqlite3_column_blob(st, 1), 32);
		}
		ret = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : store_err(s, rc);
		store_stmt_done(s, ST_STAGE_TRASH_NEXT, st);
		if (ret || !have)
			return ret;
		if (!store_stage_owned(s, peer, id)) {
			char name[STORE_STAGE_NAME];
			stage_name(name, peer, id);
			if (unlinkat(s->files_fd, name, 0) == 0)
				(*removed)++;
		}
		ret = store_stmt(s, ST_STAGE_TRASH_DELETE, &st);
		if (ret)
			return ret;
		sqlite3_bind_int64(st, 1, (sqlite3_int64)peer);
		sqlite3_bind_blob(st, 2, id, 32, SQLITE_STATIC);
		ret = store_step_done(s, ST_STAGE_TRASH_DELETE, st);
		if (ret)
			return ret;
	}
}

/* Inside a unit: stages past their life_ms, or idle_ms without progress (0: no idle). */
static int purge(struct store *s, const struct store_clock *now, uint64_t idle_ms, uint64_t *count)
{
	sqlite3_stmt *st;
	*count = 0;
	if (store_schema_version(s) < 5)
		return 0; /* a test's capped schema */
	int ret = store_stmt(s, ST_STAGE_PURGE, &st);
	if (ret)
		return ret;
	if (now) {
		sqlite3_bind_blob(st, 1, now->boot_id, 16, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, store_i64(now->boot_ms));
	}
	sqlite3_bind_blob(st, 3, s->boot_id, 16, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, store_i64(s->boot_ms));
	sqlite3_bind_int64(st, 5, store_i64(idle_ms ? idle_ms : UINT64_MAX));
	ret = store_step_done(s, ST_STAGE_PURGE, st);
	if (ret == 0)
		*count = (uint64_t)sqlite3_changes(s->db);
	return ret;
}

/* Inside store_purge_expired's unit. */
int store_stage_purge(struct store *s, const struct store_clock *now)
{
	uint64_t count;
	return purge(s, now, STORE_STAGE_IDLE_MS, &count);
}

int store_stage_expire(struct store *s, const struct store_clock *now, uint64_t idle_ms,
		       uint64_t *count)
{
	uint64_t n = 0;
	if (count)
		*count = 0;
	if (!s)
		return -EINVAL;
	store_clock_observe(s, now);
	int ret = store_unit_begin(s);
	if (ret)
		return ret;
	ret = purge(s, now, idle_ms, &n);
	if (ret) {
		store_unit_rollback(s);
		return ret;
	}
	ret = store_unit_commit(s);
	if (ret)
		return ret;
	if (!s->batch)
		store_files_sweep(s, false);
	if (count)
		*count = n;
	return 0;
}

/* Inside store_clock_rebase's unit: as bundles, residence up to the checkpoint folded in. */
int store_stage_rebase(struct store *s, const uint8_t *ck_id, uint64_t ck_ms,
		       const struct store_clock *now)
{
	sqlite3_stmt *st;
	if (store_schema_version(s) < 5)
		return 0; /* a test's capped schema */
	int ret = store_stmt(s, ST_STAGE_REBASE, &st);
	if (ret)
		return ret;
	if (ck_id)
		sqlite3_bind_blob(st, 1, ck_id, 16, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 1);
	sqlite3_bind_int64(st, 2, store_i64(ck_ms));
	sqlite3_bind_blob(st, 3, now->boot_id, 16, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, store_i64(now->boot_ms));
	return store_step_done(s, ST_STAGE_REBASE, st);
}
