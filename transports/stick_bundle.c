/* Bundles on a stick: written atomically in pieces, listed with a verdict, read back hashed. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto/crypto.h"
#include "transports/stick_internal.h"

/* ---- where a bundle lives ------------------------------------------------------------ */

/* Its subdirectory of bundles/: the first hex digit of its id. */
static unsigned fanout_of(const uint8_t id[32])
{
	return id[0] >> 4;
}

/* "<h>/<64 hex>.bpv[.NNN]": the name as shown, relative to bundles/. */
static void entry_name(const uint8_t id[32], int piece, char out[static STICK_SHOW_MAX + 1])
{
	out[0] = stick_fanout_name(fanout_of(id));
	out[1] = '/';
	stick_bundle_name(id, piece, out + 2);
}

/* stick_fail for a file in id's subdirectory: "DIR/tern/bundles/<h>/<name>: ...". */
static int bfail(struct stick *s, int err, const uint8_t id[32], const char *name, const char *fmt,
		 ...) __attribute__((format(printf, 5, 6)));
static int bfail(struct stick *s, int err, const uint8_t id[32], const char *name, const char *fmt,
		 ...)
{
	char path[STICK_NAME_MAX + 3];
	va_list ap;

	path[0] = stick_fanout_name(fanout_of(id));
	path[1] = '\0';
	if (name) {
		path[1] = '/';
		snprintf(path + 2, sizeof(path) - 2, "%s", name);
	}
	va_start(ap, fmt);
	stick_vfail(s, err, STICK_BUNDLES, path, fmt, ap);
	va_end(ap);
	return err;
}

/* ---- judging what is there ---------------------------------------------------------- */

/* A whole <id>.bpv: a regular file of 1 byte to STICK_BUNDLE_MAX. */
static void check_whole(const struct stick_rec *r, struct stick_entry *e)
{
	memset(e, 0, sizeof(*e));
	memcpy(e->id, r->id, 32);
	entry_name(r->id, -1, e->name);
	e->size = e->piece_size = r->size;
	e->pieces = 1;
	e->problem = stick_type_problem(r->type, &e->code);
	e->error = r->type == STICK_T_ERR ? r->err : 0;
	if (e->problem)
		return;
	if (r->size == 0) {
		e->code = STICK_EMPTY;
		e->problem = "empty (0 bytes): cut short when the stick was pulled?";
	} else if (r->size > STICK_BUNDLE_MAX) {
		e->code = STICK_TOO_BIG;
		e->problem = "larger than 64 GiB: refused unread";
	}
}

static void set_problem(struct stick_entry *e, const uint8_t id[32], int piece,
			enum stick_problem code, const char *problem)
{
	e->code = code;
	e->problem = problem;
	entry_name(id, piece, e->name);
}

/*
 * The pieces of one bundle, in piece order: they must run .000, .001, ... without a gap,
 * be regular files, all of the size of .000 but the last (1 byte to that size), be more
 * than one, and add up to at most STICK_BUNDLE_MAX. The first fault found is reported,
 * naming the piece at fault (or the first one missing).
 */
static void check_set(const struct stick_rec *const *r, size_t n, struct stick_entry *e)
{
	const uint8_t *id = r[0]->id;
	uint64_t first = r[0]->size, total = 0;

	memset(e, 0, sizeof(*e));
	memcpy(e->id, id, 32);
	entry_name(id, 0, e->name);
	e->pieces = (unsigned)n;
	e->piece_size = first;
	for (size_t k = 0; k < n; k++)
		total += r[k]->size;
	e->size = total;

	for (size_t k = 0; k < n; k++) {
		enum stick_problem code;
		const char *p;
		if (r[k]->piece != (int)k) {
			set_problem(e, id, (int)k, STICK_PIECE_MISSING,
				    "piece missing: pieces must run .000, .001, ... without a gap");
			return;
		}
		p = stick_type_problem(r[k]->type, &code);
		if (p) {
			set_problem(e, id, (int)k, code, p);
			e->error = r[k]->type == STICK_T_ERR ? r[k]->err : 0;
			return;
		}
		if (r[k]->size == 0) {
			set_problem(e, id, (int)k, STICK_PIECE_SIZE, "empty piece");
			return;
		}
		if (k > 0 && k < n - 1 && r[k]->size != first) {
			set_problem(e, id, (int)k, STICK_PIECE_SIZE,
				    "piece size differs from that of piece .000");
			return;
		}
		if (k > 0 && k == n - 1 && r[k]->size > first) {
			set_problem(e, id, (int)k, STICK_PIECE_SIZE,
				    "last piece larger than piece .000");
			return;
		}
	}
	if (n == 1)
		set_problem(e, id, 1, STICK_PIECE_MISSING,
			    "piece missing: a piece .000 alone (the rest did not arrive)");
	else if (total > STICK_BUNDLE_MAX)
		set_problem(e, id, 0, STICK_TOO_BIG, "pieces add up to more than 64 GiB: refused");
}

static void stat_rec(int dfd, const char *name, struct stick_rec *r)
{
	struct stat st;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
		r->type = STICK_T_ERR;
		r->err = -errno;
		return;
	}
	r->type = stick_type_of(st.st_mode);
	r->size = (uint64_t)st.st_size;
}

/*
 * Finds the pieces of id by name, in order, without a listing of the directory (which
 * can hold thousands of names). Only when .000 or .001 exists are the others looked up:
 * a copy is complete only with .000, and a pulled export leaves .001 before any other.
 * recs must hold STICK_PIECES_MAX. Returns the count; -errno if a lookup failed.
 */
static int probe_pieces(int dfd, const uint8_t id[32], struct stick_rec *recs)
{
	char name[STICK_NAME_MAX + 1];
	int n = 0;

	for (unsigned k = 0; k < STICK_PIECES_MAX; k++) {
		struct stick_rec *r = &recs[n];
		memset(r, 0, sizeof(*r));
		memcpy(r->id, id, 32);
		r->piece = (int16_t)k;
		stick_bundle_name(id, (int)k, name);
		stat_rec(dfd, name, r);
		if (r->type == STICK_T_ERR && r->err == -ENOENT) {
			if (k == 1 && n == 0)
				return 0;
			continue;
		}
		n++;
	}
	return n;
}

int stick_bundle_find(struct stick *s, const uint8_t id[static 32], struct stick_entry *e)
{
	char name[STICK_NAME_MAX + 1];
	struct stick_rec whole = {.piece = -1};
	bool have = false;
	int dfd;

	/* No subdirectory (or one that is not a directory): nothing of this bundle here. */
	if (stick_bundle_dir(s, fanout_of(id), false, &dfd) < 0)
		return -ENOENT;
	memcpy(whole.id, id, 32);
	stick_bundle_name(id, -1, name);
	stat_rec(dfd, name, &whole);
	check_whole(&whole, e);
	if (!e->problem)
		return 0;
	/* No .000, no complete set: the common case costs one more lookup, no allocation. */
	struct stat st;
	stick_bundle_name(id, 0, name);
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return -ENOENT;

	struct stick_rec *recs = malloc(STICK_PIECES_MAX * sizeof(*recs));
	const struct stick_rec **ptr = malloc(STICK_PIECES_MAX * sizeof(*ptr));
	int n = recs && ptr ? probe_pieces(dfd, id, recs) : 0;
	if (n > 0) {
		for (int k = 0; k < n; k++)
			ptr[k] = &recs[k];
		check_set(ptr, (size_t)n, e);
		have = !e->problem;
	}
	free(ptr);
	free(recs);
	return have ? 0 : -ENOENT;
}

bool stick_has_bundle(struct stick *s, const uint8_t id[static 32])
{
	struct stick_entry e;
	return stick_bundle_find(s, id, &e) == 0;
}

/* ---- listing ------------------------------------------------------------------------ */

/* True if a listed entry of bundles/ itself is one of the 16 subdirectories. */
static bool is_fanout_dir(const struct stick_rec *r)
{
	return r->type == STICK_T_DIR && stick_fanout_index(r->show) >= 0;
}

/*
 * bundles/ in the order its entries are shown: a subdirectory "a" as "a/", since its
 * entries are shown as "a/<name>"; so that the whole listing is in name order.
 */
static int cmp_top(const void *a, const void *b)
{
	const struct stick_rec *x = a, *y = b;
	char kx[STICK_SHOW_MAX + 2], ky[STICK_SHOW_MAX + 2];

	snprintf(kx, sizeof(kx), "%s%s", x->show, is_fanout_dir(x) ? "/" : "");
	snprintf(ky, sizeof(ky), "%s%s", y->show, is_fanout_dir(y) ? "/" : "");
	return strcmp(kx, ky);
}

/* An entry of bundles/ itself that is not a subdirectory of bundles: reported. */
static void top_entry(const struct stick_rec *r, struct stick_entry *e)
{
	uint8_t id[32];
	int piece;

	memset(e, 0, sizeof(*e));
	snprintf(e->name, sizeof(e->name), "%s", r->show);
	e->size = r->size;
	e->error = r->type == STICK_T_ERR ? r->err : 0;
	if (stick_fanout_index(r->show) >= 0 && r->type != STICK_T_LNK && r->type != STICK_T_ERR) {
		e->code = STICK_NOT_REGULAR;
		e->problem = "not a directory (a directory of bundles belongs here; not opened)";
		return;
	}
	if (r->type == STICK_T_REG || r->type == STICK_T_DIR) {
		e->code = STICK_BAD_NAME;
		e->problem = stick_parse_bundle_name(r->show, id, &piece)
				 ? "misplaced: a bundle belongs in bundles/<first hex digit of "
				   "its id>/"
				 : "not a name tern writes (bundles/ holds the directories 0 to 9 "
				   "and a to f)";
		return;
	}
	e->problem = stick_type_problem(r->type, &e->code);
}

/* A hostile entry of bundles/<h>/: its type's problem, else its name's. */
static void sub_bad_entry(unsigned h, const struct stick_rec *r, struct stick_entry *e)
{
	uint8_t id[32];
	int piece;

	memset(e, 0, sizeof(*e));
	snprintf(e->name, sizeof(e->name), "%c/%s", stick_fanout_name(h), r->show);
	e->size = r->size;
	e->problem = stick_type_problem(r->type, &e->code);
	e->error = r->type == STICK_T_ERR ? r->err : 0;
	if (!e->problem) {
		e->code = STICK_BAD_NAME;
		e->problem = stick_parse_bundle_name(r->show, id, &piece)
				 ? "misplaced: a bundle belongs in bundles/<first hex digit of "
				   "its id>/"
				 : "not a name tern writes (<64 lowercase hex>.bpv or .bpv.NNN)";
	}
}

/* Lists bundles/<h>/ and reports each entry; set holds STICK_PIECES_MAX. */
static int foreach_sub(struct stick *s, unsigned h, const struct stick_rec **set, stick_entry_fn fn,
		       void *ctx)
{
	struct stick_list l;
	struct stick_entry e;
	int dfd;
	int ret = stick_bundle_dir(s, h, false, &dfd);

	if (ret == -ENOENT)
		return 0; /* removed since bundles/ was listed */
	if (ret < 0) {
		/* Swapped for something else since bundles/ was listed, or unopenable. */
		memset(&e, 0, sizeof(e));
		e.name[0] = stick_fanout_name(h);
		e.code = ret == -ELOOP	   ? STICK_SYMLINK
			 : ret == -ENOTDIR ? STICK_NOT_REGULAR
					   : STICK_UNREADABLE;
		e.problem = ret == -ELOOP     ? "a symbolic link (not followed)"
			    : ret == -ENOTDIR ? "not a directory (a directory of bundles belongs "
						"here; not opened)"
					      : "cannot be opened (damaged file system?)";
		e.error = e.code == STICK_UNREADABLE ? ret : 0;
		return fn(ctx, &e);
	}
	ret = stick_list_dir(s, STICK_BUNDLES, (int)h, dfd, &l);
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < l.n && ret == 0; i++) {
		struct stick_rec *r = &l.recs[i];
		if (r->taken)
			continue;
		if (r->show) {
			sub_bad_entry(h, r, &e);
		} else if (r->piece < 0) {
			check_whole(r, &e);
		} else {
			/*
			 * The pieces of one id are consecutive among tern names; a hostile name
			 * may sort between two of them, so skip over those.
			 */
			size_t n = 0;
			for (size_t j = i; j < l.n && n < STICK_PIECES_MAX; j++) {
				struct stick_rec *q = &l.recs[j];
				if (q->show)
					continue;
				if (q->piece < 0 || memcmp(q->id, r->id, 32) != 0)
					break;
				q->taken = true;
				set[n++] = q;
			}
			check_set(set, n, &e);
		}
		ret = fn(ctx, &e);
	}
	stick_list_free(&l);
	return ret;
}

int stick_bundle_foreach(struct stick *s, stick_entry_fn fn, void *ctx)
{
	struct stick_list top;
	const struct stick_rec **set = NULL;
	int ret = stick_list_dir(s, STICK_BUNDLES, -1, s->fd[STICK_BUNDLES], &top);

	if (ret < 0)
		return ret;
	set = malloc(STICK_PIECES_MAX * sizeof(*set));
	if (!set) {
		stick_list_free(&top);
		return stick_fail(s, -ENOMEM, STICK_BUNDLES, NULL, "out of memory");
	}
	if (top.n > 1)
		qsort(top.recs, top.n, sizeof(*top.recs), cmp_top);
	/* One subdirectory listed at a time: at most two listings in memory. */
	for (size_t i = 0; i < top.n && ret == 0; i++) {
		struct stick_rec *r = &top.recs[i];
		struct stick_entry e;
		if (is_fanout_dir(r)) {
			ret = foreach_sub(s, (unsigned)stick_fanout_index(r->show), set, fn, ctx);
		} else {
			top_entry(r, &e);
			ret = fn(ctx, &e);
		}
	}
	free(set);
	stick_list_free(&top);
	return ret;
}

/* ---- reading ------------------------------------------------------------------------ */

static int read_piece(struct stick *s, int dfd, const uint8_t id[32], const char *name,
		      uint64_t expect, struct hash *h, stick_sink sink, void *ctx)
{
	struct stat st;
	int ret = 0;

	/* Looked at before it is opened: a FIFO or device put here since is never opened. */
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size != expect)
		return bfail(s, -ESTALE, id, name, "changed since it was listed (not read)");
	int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		int err = -errno;
		return bfail(s, err == -ELOOP ? -ESTALE : err, id, name, "cannot open: %s",
			     strerror(-err));
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != expect) {
		ret = bfail(s, -ESTALE, id, name, "changed since it was listed");
		goto out;
	}
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	for (uint64_t left = expect; left > 0;) {
		size_t want = left < STICK_IO_BUF ? (size_t)left : STICK_IO_BUF;
		ssize_t got = read(fd, s->iobuf, want);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			int err = -errno;
			ret = bfail(s, -EIO, id, name, "read error: %s", strerror(-err));
			goto out;
		}
		if (got == 0) {
			ret = bfail(s, -ESTALE, id, name, "shrank while being read");
			goto out;
		}
		hash_update(h, s->iobuf, (size_t)got);
		ret = sink(ctx, s->iobuf, (size_t)got);
		if (ret != 0) {
			bfail(s, ret, id, name, "read stopped by its receiver: %s",
			      strerror(ret < 0 ? -ret : ret));
			goto out;
		}
		left -= (uint64_t)got;
	}
	uint8_t extra;
	ssize_t got;
	while ((got = read(fd, &extra, 1)) < 0 && errno == EINTR)
		;
	if (got != 0)
		ret = bfail(s, got > 0 ? -ESTALE : -EIO, id, name,
			    got > 0 ? "grew while being read" : "read error at the end");
out:
	close(fd);
	return ret;
}

int stick_bundle_read(struct stick *s, const struct stick_entry *e, stick_sink sink, void *ctx,
		      uint8_t hash[static 32])
{
	char name[STICK_NAME_MAX + 1];
	int ret = 0;

	if (e->problem || e->code != STICK_OK || e->pieces == 0 || e->pieces > STICK_PIECES_MAX)
		return stick_fail(s, -EINVAL, STICK_BUNDLES, e->name, "refused: %s",
				  e->problem ? e->problem : "not a readable entry");
	int dfd;
	ret = stick_bundle_dir(s, fanout_of(e->id), false, &dfd);
	if (ret < 0)
		return ret == -ENOENT || ret == -ELOOP || ret == -ENOTDIR ? -ESTALE : ret;
	if (!s->iobuf && !(s->iobuf = malloc(STICK_IO_BUF)))
		return stick_fail(s, -ENOMEM, STICK_BUNDLES, e->name, "out of memory");
	struct hash *h = hash_new(HASH_LEN, NULL, 0);
	if (!h)
		return stick_fail(s, -ENOMEM, STICK_BUNDLES, e->name, "out of memory");
	for (unsigned k = 0; k < e->pieces && ret == 0; k++) {
		uint64_t expect =
		    k + 1 < e->pieces ? e->piece_size : e->size - (uint64_t)k * e->piece_size;
		stick_bundle_name(e->id, e->pieces == 1 ? -1 : (int)k, name);
		ret = read_piece(s, dfd, e->id, name, expect, h, sink, ctx);
	}
	if (ret == 0)
		hash_final(h, hash);
	else
		hash_free(h);
	return ret;
}

/* ---- writing ------------------------------------------------------------------------ */

struct stick_writer {
	struct stick *s;
	uint8_t id[32];
	int dfd; /* bundles/<h>/ of the id (cached in s) */
	uint64_t total, in_piece;
	unsigned npieces; /* temporary files created */
	int fd;		  /* of the last one, while open */
	char (*temps)[STICK_TEMP_LEN + 1];
	uint8_t *buf;
	size_t used;
	struct hash *h;
	int err; /* sticky */
};

static int writer_fail(struct stick_writer *w, int err, const char *name)
{
	w->err = bfail(w->s, err, w->id, name, "%s", stick_write_reason(w->s, err));
	return w->err;
}

/*
 * Removes whatever incomplete copy of id a pulled stick left in dfd (regular files only),
 * so that the names are free for ours. Something else in the way is an error: it is not
 * ours to remove.
 */
static int clear_remains(struct stick *s, int dfd, const uint8_t id[32])
{
	char name[STICK_NAME_MAX + 1];
	struct stick_rec whole = {.piece = -1};
	bool removed = false;
	int ret = 0;

	struct stick_rec *recs = malloc((STICK_PIECES_MAX + 1) * sizeof(*recs));
	if (!recs)
		return bfail(s, -ENOMEM, id, NULL, "out of memory");
	memcpy(whole.id, id, 32);
	stick_bundle_name(id, -1, name);
	stat_rec(dfd, name, &whole);
	recs[0] = whole;
	int n = 1 + probe_pieces(dfd, id, recs + 1);
	/* Everything in the way is looked at before anything is removed. */
	for (int i = 0; i < n && ret == 0; i++) {
		enum stick_problem code;
		const char *p = stick_type_problem(recs[i].type, &code);
		stick_bundle_name(id, recs[i].piece, name);
		if (p && !(recs[i].type == STICK_T_ERR && recs[i].err == -ENOENT))
			ret = bfail(s, -EEXIST, id, name, "in the way: %s", p);
	}
	for (int i = 0; i < n && ret == 0; i++) {
		stick_bundle_name(id, recs[i].piece, name);
		if (recs[i].type != STICK_T_REG)
			continue;
		if (unlinkat(dfd, name, 0) == 0) {
			removed = true;
		} else if (errno != ENOENT) {
			int err = -errno;
			ret = bfail(s, err, id, name, "cannot remove an incomplete copy: %s",
				    stick_write_reason(s, err));
		}
	}
	free(recs);
	if (ret == 0 && removed)
		ret = stick_fsync_dir(dfd);
	return ret;
}

static int open_piece(struct stick_writer *w)
{
	if (w->npieces == STICK_PIECES_MAX) {
		char name[STICK_NAME_MAX + 1];
		stick_bundle_name(w->id, -1, name);
		return w->err =
			   bfail(w->s, -EFBIG, w->id, name, "more than %u pieces of %llu bytes",
				 STICK_PIECES_MAX, (unsigned long long)w->s->piece_max);
	}
	for (int tries = 0;; tries++) {
		stick_temp_name(w->temps[w->npieces]);
		w->fd = openat(w->dfd, w->temps[w->npieces],
			       O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
		if (w->fd >= 0)
			break;
		if (errno != EEXIST || tries == 3)
			return writer_fail(w, -errno, w->temps[w->npieces]);
	}
	w->npieces++;
	w->in_piece = 0;
	return 0;
}

static int flush(struct stick_writer *w)
{
	int ret = stick_write_all(w->fd, w->buf, w->used);

	w->used = 0;
	return ret < 0 ? writer_fail(w, ret, w->temps[w->npieces - 1]) : 0;
}

/* Flushes, fsyncs and closes the current piece: what is renamed later is on the medium. */
static int finish_piece(struct stick_writer *w)
{
	const char *name = w->temps[w->npieces - 1];
	int ret = flush(w);

	if (ret == 0 && fsync(w->fd) != 0)
		ret = writer_fail(w, -errno, name);
	if (close(w->fd) != 0 && ret == 0)
		ret = writer_fail(w, -errno, name);
	w->fd = -1;
	return ret;
}

int stick_bundle_begin(struct stick *s, const uint8_t id[static 32], uint64_t size,
		       struct stick_writer **out)
{
	char name[STICK_NAME_MAX + 1];
	uint64_t avail;
	int dfd, ret;

	*out = NULL;
	stick_bundle_name(id, -1, name);
	if (!s->writable)
		return bfail(s, -EROFS, id, name, "stick opened read-only");
	if (size > STICK_BUNDLE_MAX)
		return bfail(s, -EFBIG, id, name, "%llu bytes: over the 64 GiB limit for a stick",
			     (unsigned long long)size);
	if (size > s->piece_max * STICK_PIECES_MAX)
		return bfail(s, -EFBIG, id, name, "%llu bytes: more than %u pieces of %llu bytes",
			     (unsigned long long)size, STICK_PIECES_MAX,
			     (unsigned long long)s->piece_max);
	if (stick_has_bundle(s, id))
		return bfail(s, -EEXIST, id, name, "already on the stick");
	/* The subdirectory is made only for a bundle that goes into it. */
	ret = stick_bundle_dir(s, fanout_of(id), false, &dfd);
	if (ret == 0)
		ret = clear_remains(s, dfd, id);
	else if (ret == -ENOENT)
		ret = 0;
	if (ret == 0)
		ret = stick_free_bytes(s, &avail);
	if (ret == 0 && avail != STICK_FREE_UNKNOWN && size > avail)
		ret = bfail(s, -ENOSPC, id, name, "no space: %llu bytes to write, %llu free",
			    (unsigned long long)size, (unsigned long long)avail);
	if (ret == 0 && dfd < 0)
		ret = stick_bundle_dir(s, fanout_of(id), true, &dfd);
	if (ret < 0) /* -ELOOP would read as a spent hop limit to a caller: one errno for both */
		return ret == -ELOOP ? -ENOTDIR : ret;

	struct stick_writer *w = calloc(1, sizeof(*w));
	if (!w)
		return bfail(s, -ENOMEM, id, name, "out of memory");
	w->s = s;
	w->fd = -1;
	w->dfd = dfd;
	memcpy(w->id, id, 32);
	w->temps = malloc(STICK_PIECES_MAX * sizeof(*w->temps));
	w->buf = malloc(STICK_IO_BUF);
	w->h = hash_new(HASH_LEN, NULL, 0);
	if (!w->temps || !w->buf || !w->h) {
		stick_bundle_abort(w);
		return bfail(s, -ENOMEM, id, name, "out of memory");
	}
	ret = open_piece(w);
	if (ret < 0) {
		stick_bundle_abort(w);
		return ret;
	}
	*out = w;
	return 0;
}

int stick_bundle_write(struct stick_writer *w, const void *data, size_t len)
{
	const uint8_t *p = data;

	while (len > 0 && w->err == 0) {
		if (w->in_piece == w->s->piece_max) {
			if (finish_piece(w) < 0 || open_piece(w) < 0)
				break;
		}
		if (w->total == STICK_BUNDLE_MAX) {
			char name[STICK_NAME_MAX + 1];
			stick_bundle_name(w->id, -1, name);
			w->err =
			    bfail(w->s, -EFBIG, w->id, name, "over the 64 GiB limit for a stick");
			break;
		}
		uint64_t n = len;
		if (n > STICK_IO_BUF - w->used)
			n = STICK_IO_BUF - w->used;
		if (n > w->s->piece_max - w->in_piece)
			n = w->s->piece_max - w->in_piece;
		if (n > STICK_BUNDLE_MAX - w->total)
			n = STICK_BUNDLE_MAX - w->total;
		memcpy(w->buf + w->used, p, (size_t)n);
		hash_update(w->h, p, (size_t)n);
		w->used += (size_t)n;
		w->in_piece += n;
		w->total += n;
		p += n;
		len -= (size_t)n;
		if (w->used == STICK_IO_BUF)
			flush(w);
	}
	return w->err;
}

/* Renames the temporaries into place: .001 and up, a directory fsync, then .000 (or whole). */
static int place(struct stick_writer *w, unsigned *placed)
{
	char name[STICK_NAME_MAX + 1];
	int ret;

	for (unsigned k = 1; k <= w->npieces; k++) {
		unsigned piece = k % w->npieces; /* 1, 2, ..., n - 1, then 0 */
		if (w->npieces > 1 && piece == 0) {
			ret = stick_fsync_dir(w->dfd);
			if (ret < 0)
				return writer_fail(w, ret, NULL);
		}
		stick_bundle_name(w->id, w->npieces == 1 ? -1 : (int)piece, name);
		ret = stick_rename_noreplace(w->dfd, w->temps[piece], name);
		if (ret == -EEXIST)
			return w->err =
				   bfail(w->s, ret, w->id, name, "another copy appeared meanwhile");
		if (ret < 0)
			return writer_fail(w, ret, name);
		w->temps[piece][0] = '\0'; /* renamed: no longer a temporary to remove */
		*placed = k;
	}
	if (w->s->defer_sync) {
		w->s->dirty |= (uint16_t)(1u << fanout_of(w->id));
		return 0;
	}
	ret = stick_fsync_dir(w->dfd);
	return ret < 0 ? writer_fail(w, ret, NULL) : 0;
}

void stick_defer_sync(struct stick *s)
{
	s->defer_sync = true;
}

static int add_pending(struct stick *s, const uint8_t id[32], const char *temp)
{
	if (s->n_pending == s->cap_pending) {
		size_t cap = s->cap_pending ? 2 * s->cap_pending : 64;
		struct stick_pending *p = realloc(s->pending, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		s->pending = p;
		s->cap_pending = cap;
	}
	struct stick_pending *p = &s->pending[s->n_pending++];
	memcpy(p->id, id, 32);
	snprintf(p->temp, sizeof(p->temp), "%s", temp);
	p->result = 0;
	return 0;
}

/*
 * Deferred commit of a small whole bundle: written and closed but neither fsynced nor
 * renamed; stick_sync makes a group of them durable with one syncfs, then renames them.
 */
static int defer_commit(struct stick_writer *w)
{
	const char *temp = w->temps[0];
	int ret = flush(w);
	if (close(w->fd) != 0 && ret == 0)
		ret = writer_fail(w, -errno, temp);
	w->fd = -1;
	if (ret == 0 && add_pending(w->s, w->id, temp) < 0)
		ret = w->err = bfail(w->s, -ENOMEM, w->id, NULL, "out of memory");
	if (ret == 0)
		w->temps[0][0] = '\0'; /* the pending list owns it now */
	return ret;
}

int stick_sync(struct stick *s, stick_placed_fn fn, void *ctx)
{
	int ret = 0;
	bool waiting = false;
	for (size_t i = 0; i < s->n_pending; i++)
		waiting |= s->pending[i].temp[0] != '\0';
	/*
	 * One flush of the medium for the whole group, before any of it gets its final name.
	 * syncfs writes the data back, but on vfat and exfat sends the device no cache
	 * flush; an fsync does (and FUSE passes it on): one more, on bundles/, per group.
	 */
	if (waiting && (syncfs(s->tern_fd) != 0 || stick_fsync_dir(s->fd[STICK_BUNDLES]) != 0)) {
		int err = errno ? -errno : -EIO;
		ret = stick_fail(s, err, STICK_BUNDLES, NULL, "%s", stick_write_reason(s, err));
	}
	for (size_t i = 0; i < s->n_pending; i++) {
		struct stick_pending *p = &s->pending[i];
		/* A writer opened the subdirectory: it stays open until stick_close. */
		int dfd = s->sub[fanout_of(p->id)];
		char name[STICK_NAME_MAX + 1];
		if (!p->temp[0])
			continue;
		stick_bundle_name(p->id, -1, name);
		p->result = ret < 0 ? ret : stick_rename_noreplace(dfd, p->temp, name);
		if (p->result == 0)
			s->dirty |= (uint16_t)(1u << fanout_of(p->id));
		else
			unlinkat(dfd, p->temp, 0);
		if (p->result == -EEXIST)
			bfail(s, -EEXIST, p->id, name, "another copy appeared meanwhile");
		else if (p->result < 0 && ret == 0)
			bfail(s, p->result, p->id, name, "%s", stick_write_reason(s, p->result));
	}
	/* One fsync per subdirectory that took a rename. */
	for (unsigned h = 0; h < STICK_FANOUT && ret == 0; h++) {
		if (!(s->dirty & (1u << h)))
			continue;
		ret = stick_fsync_dir(s->sub[h]);
		if (ret < 0) {
			char label[2] = {stick_fanout_name(h), '\0'};
			stick_fail(s, ret, STICK_BUNDLES, label, "%s", stick_write_reason(s, ret));
		} else {
			s->dirty &= (uint16_t) ~(1u << h);
		}
	}
	for (size_t i = 0; i < s->n_pending; i++) {
		struct stick_pending *p = &s->pending[i];
		/*
		 * Renamed, but its directory may not keep the name: reported as failed, so it is
		 * taken back too (best effort) rather than left where no manifest lists it.
		 */
		if (p->result == 0 && ret < 0 && p->temp[0]) {
			char name[STICK_NAME_MAX + 1];
			stick_bundle_name(p->id, -1, name);
			unlinkat(s->sub[fanout_of(p->id)], name, 0);
		}
		if (fn)
			fn(ctx, p->id, p->result == 0 && ret < 0 ? ret : p->result);
	}
	s->n_pending = 0;
	return ret;
}

void stick_drop_pending(struct stick *s)
{
	for (size_t i = 0; i < s->n_pending; i++)
		if (s->pending[i].temp[0])
			unlinkat(s->sub[fanout_of(s->pending[i].id)], s->pending[i].temp, 0);
	free(s->pending);
	s->pending = NULL;
	s->n_pending = s->cap_pending = 0;
}

int stick_bundle_commit(struct stick_writer *w, uint8_t hash[static 32], uint64_t *size)
{
	char name[STICK_NAME_MAX + 1];
	unsigned placed = 0;
	int ret = w->err;

	if (ret == 0 && w->total == 0) {
		stick_bundle_name(w->id, -1, name);
		ret = w->err = bfail(w->s, -EINVAL, w->id, name, "nothing written");
	}
	bool defer = w->s->defer_sync && w->npieces == 1 && w->total <= STICK_DEFER_MAX;
	if (ret == 0 && defer)
		ret = defer_commit(w);
	else if (ret == 0)
		ret = finish_piece(w);
	if (ret == 0 && !defer)
		ret = place(w, &placed);
	if (ret == 0 && !defer && w->s->defer_sync && add_pending(w->s, w->id, "") < 0)
		ret = w->err = bfail(w->s, -ENOMEM, w->id, NULL, "out of memory");
	if (ret < 0) {
		/* Take back what was renamed, newest first; .000 last keeps a set incomplete. */
		for (unsigned k = placed; k >= 1; k--) {
			unsigned piece = k % w->npieces;
			stick_bundle_name(w->id, w->npieces == 1 ? -1 : (int)piece, name);
			unlinkat(w->dfd, name, 0);
		}
		stick_bundle_abort(w);
		return ret;
	}
	hash_final(w->h, hash);
	w->h = NULL;
	if (size)
		*size = w->total;
	stick_bundle_abort(w); /* every temporary is renamed: this only frees */
	return 0;
}

void stick_bundle_abort(struct stick_writer *w)
{
	if (!w)
		return;
	if (w->fd >= 0)
		close(w->fd);
	for (unsigned k = 0; w->temps && k < w->npieces; k++)
		if (w->temps[k][0])
			unlinkat(w->dfd, w->temps[k], 0);
	hash_free(w->h);
	free(w->temps);
	free(w->buf);
	free(w);
}

/* ---- removing ------------------------------------------------------------------------ */

int stick_bundle_remove(struct stick *s, const uint8_t id[static 32])
{
	char name[STICK_NAME_MAX + 1];
	unsigned removed = 0, other = 0;
	int dfd, ret = 0;

	stick_bundle_name(id, -1, name);
	if (!s->writable)
		return bfail(s, -EROFS, id, name, "stick opened read-only");
	ret = stick_bundle_dir(s, fanout_of(id), false, &dfd);
	if (ret == -ENOENT)
		return bfail(s, -ENOENT, id, name, "not on the stick");
	if (ret < 0)
		return ret;
	struct stick_rec *recs = malloc((STICK_PIECES_MAX + 1) * sizeof(*recs));
	if (!recs)
		return bfail(s, -ENOMEM, id, name, "out of memory");
	memset(&recs[0], 0, sizeof(recs[0]));
	recs[0].piece = -1;
	stat_rec(dfd, name, &recs[0]);
	int n = 1 + probe_pieces(dfd, id, recs + 1);
	for (int i = 0; i < n && ret == 0; i++) {
		stick_bundle_name(id, recs[i].piece, name);
		if (recs[i].type == STICK_T_ERR && recs[i].err == -ENOENT)
			continue;
		if (recs[i].type != STICK_T_REG) {
			other++;
		} else if (unlinkat(dfd, name, 0) == 0) {
			removed++;
		} else if (errno != ENOENT) {
			int err = -errno;
			ret = bfail(s, err, id, name, "cannot remove: %s",
				    stick_write_reason(s, err));
		}
	}
	free(recs);
	if (ret == 0 && removed)
		ret = stick_fsync_dir(dfd);
	if (ret == 0 && removed == 0) {
		stick_bundle_name(id, -1, name);
		ret = other ? bfail(s, -EPERM, id, name, "not a regular file: left alone")
			    : bfail(s, -ENOENT, id, name, "not on the stick");
	}
	return ret;
}
