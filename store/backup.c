/* A consistent copy of a live store: SQLite's online backup and the payload files, in one snapshot.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "store/store_impl.h"

/*
 * Why one read transaction spans both: the database copy and the list of payload files
 * must describe the same moment. In WAL mode a reader holds its snapshot while the daemon
 * goes on committing, and sqlite3_backup_step reads through a connection's open read
 * transaction rather than starting its own. Files are write-once and named by bundle id, so
 * a file the snapshot names is complete; only a sweep may remove it, after its row's
 * deletion committed (later than the snapshot). Such a bundle was gone from the store by
 * the time the copy ends, and it goes from the copy too.
 */

static int copy_database(struct store *s, sqlite3 *dst, const char **why)
{
	sqlite3_backup *b = sqlite3_backup_init(dst, "main", s->db, "main");
	if (!b) {
		*why = sqlite3_errmsg(dst);
		return store_errno(sqlite3_errcode(dst));
	}
	int rc = sqlite3_backup_step(b, -1);
	int fin = sqlite3_backup_finish(b);
	if (rc != SQLITE_DONE || fin != SQLITE_OK) {
		*why = sqlite3_errstr(rc != SQLITE_DONE ? rc : fin);
		return store_errno(rc != SQLITE_DONE ? rc : fin);
	}
	return 0;
}

/* Hands each payload file of the snapshot to fn; notes in dst the ones already swept. */
static int copy_files(struct store *s, sqlite3 *dst, unsigned *n_files,
		      int (*fn)(void *ctx, const char *name, int fd), void *ctx, const char **why)
{
	sqlite3_stmt *st = NULL, *del = NULL;
	int ret = 0, rc;
	if (sqlite3_prepare_v2(s->db,
			       "SELECT id FROM bundles WHERE payload_file != 0 AND id IS NOT NULL",
			       -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(dst, "DELETE FROM bundles WHERE id = ?", -1, &del, NULL) !=
		SQLITE_OK) {
		*why = "cannot list the payload files";
		ret = -EIO;
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		char name[65];
		if (sqlite3_column_bytes(st, 0) != 32)
			continue;
		store_hex(name, sqlite3_column_blob(st, 0), 32);
		int fd = openat(s->files_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 && errno == ENOENT) {
			sqlite3_bind_blob(del, 1, sqlite3_column_blob(st, 0), 32, SQLITE_TRANSIENT);
			rc = sqlite3_step(del);
			sqlite3_reset(del);
			if (rc != SQLITE_DONE) {
				*why = sqlite3_errmsg(dst);
				ret = store_errno(rc);
				goto out;
			}
			continue;
		}
		if (fd < 0) {
			*why = "cannot open a payload file";
			ret = -errno;
			goto out;
		}
		ret = fn(ctx, name, fd);
		close(fd);
		if (ret) {
			*why = NULL; /* fn said why */
			goto out;
		}
		(*n_files)++;
	}
	if (rc != SQLITE_DONE) {
		*why = sqlite3_errmsg(s->db);
		ret = store_errno(rc);
	}
out:
	sqlite3_finalize(st);
	sqlite3_finalize(del);
	return ret;
}

/*
 * What a restored node cannot use goes: partial transfers (their files are not copied;
 * peers resend from the start), and the trash of files that were never copied.
 */
static const char *const tidy_copy = "DELETE FROM stages;"
				     "DELETE FROM stage_trash;"
				     "DELETE FROM payload_trash;"
				     "PRAGMA journal_mode = DELETE;";

int store_backup(struct store *s, const char *copy_path, unsigned *n_files,
		 int (*fn)(void *ctx, const char *name, int fd), void *ctx, const char **why)
{
	sqlite3 *dst = NULL;
	bool in_txn = false;
	int ret, rc;

	*why = NULL;
	*n_files = 0;
	if (s->batch || s->writer)
		return -EBUSY;
	rc = sqlite3_open_v2(copy_path, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc != SQLITE_OK) {
		*why = dst ? sqlite3_errmsg(dst) : "out of memory";
		ret = store_errno(rc);
		goto out;
	}
	sqlite3_exec(dst, "PRAGMA foreign_keys = ON", NULL, NULL, NULL);
	/* BEGIN is deferred: the SELECT takes the snapshot that both copies share. */
	rc = sqlite3_exec(s->db, "BEGIN; SELECT count(*) FROM bundles;", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		*why = sqlite3_errmsg(s->db);
		ret = store_errno(rc);
		goto out;
	}
	in_txn = true;
	ret = copy_database(s, dst, why);
	if (ret == 0)
		ret = copy_files(s, dst, n_files, fn, ctx, why);
	if (ret)
		goto out;
	rc = sqlite3_exec(dst, tidy_copy, NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		*why = sqlite3_errmsg(dst);
		ret = store_errno(rc);
	}
out:
	if (in_txn)
		sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
	if (dst && sqlite3_close(dst) != SQLITE_OK && ret == 0) {
		*why = "cannot close the copy";
		ret = -EIO;
	}
	return ret;
}
