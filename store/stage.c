/* Transfers being received over a link, staged in files beside the database until whole. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store_impl.h"

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
 *   the have of a new stage of the same transfer.
 */

struct store_stage {
	struct store *s;
	uint64_t peer;
	uint8_t id[32];
	uint64_t payload_len, life_ms, peer_max;
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

/* File size of the stage of (peer, id): -ENOENT if none, or not a regular file. */
static int file_size(struct store *s, uint64_t peer, const uint8_t id[32], uint64_t *size)
{
	char name[STORE_STAGE_NAME];
	struct stat st;
	stage_name(name, peer, id);
	if (fstatat(s->files_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -ENOENT;
	*size = (uint64_t)st.st_size;
	return 0;
}

int store_stage_have(struct store *s, uint64_t peer, const uint8_t id[static 32],
		     uint64_t payload_len, uint64_t *have, uint64_t *bytes)
{
	int64_t row;
	uint64_t len, h, size = 0;
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
	if (len == payload_len && file_size(s, peer, id, &size) == 0 && size >= h)
		*have = h;
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
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		int err = errno == EWOULDBLOCK ? -EBUSY : -errno;
		close(fd);
		if (err == -EBUSY)
			store_seterr(st->s, "the stage is in use by another session");
		return err;
	}
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || (uint64_t)sb.st_size < have) {
		close(fd);
		return -ESTALE;
	}
	st->row = row;
	st->fd = fd;
	st->written = from;
	st->durable = from;
	return 0;
}

int store_stage_open(struct store *s, uint64_t peer, const uint8_t id[static 32],
		     uint64_t payload_len, uint64_t from, uint64_t life_ms, uint64_t peer_max,
		     const struct store_clock *now, struct store_stage **out)
{
	int64_t row = 0;
	uint64_t len = 0, have = 0, bytes = 0;
	int ret;
	if (!s || !id || !out || from > payload_len)
		return -EINVAL;
	*out = NULL;
	if (s->files_fd < 0)
		return -EBADF;
	store_clock_observe(s, now);
	struct store_stage *st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->s = s;
	st->peer = peer;
	memcpy(st->id, id, 32);
	st->payload_len = payload_len;
	st->life_ms = life_ms;
	st->peer_max = peer_max;
	st->fd = -1;
	st->unix_ms = s->unix_ms;
	memcpy(st->boot_id, now ? now->boot_id : s->boot_id, 16);
	st->boot_ms = now ? now->boot_ms : s->boot_ms;

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
	ret = peer_bytes(s, peer, id, &bytes);
	if (ret == 0 && (bytes > peer_max || payload_len > peer_max - bytes)) {
		store_seterr(s, "stages of this peer would pass %" PRIu64 " bytes", peer_max);
		ret = -EDQUOT;
	}
	if (ret)
		goto fail;
done:
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
	uint64_t len, have, bytes = 0;
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
		ret = peer_bytes(s, st->peer, st->id, &bytes);
	}
	if (ret == 0 && (bytes > st->peer_max || st->payload_len > st->peer_max - bytes)) {
		store_seterr(s, "stages of this peer would pass %" PRIu64 " bytes", st->peer_max);
		ret = -EDQUOT;
	}
	if (ret)
		goto rollback;
	stage_name(name, st->peer, st->id);
	/* No row names it: a stale file (trash not swept yet, or a crash's orphan). */
	unlinkat(s->files_fd, name, 0);
	fd = openat(s->files_fd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) != 0 || fsync(s->files_fd) != 0) {
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
	if (!st->row && st->buf_len < STORE_STAGE_BUF)
		return 0;
	int ret = flush(st);
	if (ret)
		return st->err = ret;
	if (st->written == st->durable)
		return 0;
	if (fdatasync(st->fd) != 0) {
		ret = -errno;
		store_seterr(st->s, "stage file not written: %s", strerror(errno));
		return ret;
	}
	ret = store_unit_begin(st->s);
	if (ret)
		return ret;
	ret = store_stmt(st->s, ST_STAGE_SET_HAVE, &q);
	if (ret == 0) {
		sqlite3_bind_int64(q, 1, st->row);
		sqlite3_bind_int64(q, 2, store_i64(st->written));
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
	int ret = st->row ? delete_row(s, st->row) : 0;
	bool swept = st->row && ret == 0;
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

/* Inside store_purge_expired's unit: stages whose residence here passed their life_ms. */
int store_stage_purge(struct store *s, const struct store_clock *now)
{
	sqlite3_stmt *st;
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
	return store_step_done(s, ST_STAGE_PURGE, st);
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
