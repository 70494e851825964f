/* Opens a stick directory safely, names and lists its files, removes what a pull left. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "crypto/crypto.h"
#include "transports/stick_internal.h"

static const char *const dir_names[3] = {"bundles", "manifests", "receipts"};

const char *stick_dir_name(int which)
{
	return which >= 0 && which < 3 ? dir_names[which] : "";
}

int stick_fail(struct stick *s, int err, int which, const char *name, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	stick_vfail(s, err, which, name, fmt, ap);
	va_end(ap);
	return err;
}

int stick_vfail(struct stick *s, int err, int which, const char *name, const char *fmt, va_list ap)
{
	int n;

	if (which < 0)
		n = snprintf(s->err, sizeof(s->err), "%s/tern%s%s: ", s->dir, name ? "/" : "",
			     name ? name : "");
	else
		n = snprintf(s->err, sizeof(s->err), "%s/tern/%s%s%s: ", s->dir, dir_names[which],
			     name ? "/" : "", name ? name : "");
	if (n < 0 || (size_t)n >= sizeof(s->err))
		n = 0;
	vsnprintf(s->err + n, sizeof(s->err) - (size_t)n, fmt, ap);
	return err;
}

const char *stick_error(const struct stick *s)
{
	return s->err;
}

uint64_t stick_piece_max(const struct stick *s)
{
	return s->piece_max;
}

/* ---- names ----------------------------------------------------------------------- */

bool stick_name_ok(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > STICK_NAME_MAX || name[0] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '.' || c == '_' ||
		      c == '-'))
			return false;
	}
	return true;
}

void stick_show_name(const char *name, size_t max, char out[static STICK_SHOW_MAX + 1])
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	if (max > STICK_SHOW_MAX)
		max = STICK_SHOW_MAX;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		/* Room for one escape and the "..." that marks a cut. */
		if (o + 4 + 3 > max) {
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
		if (*p > 0x20 && *p < 0x7f && *p != '\\') {
			out[o++] = (char)*p;
		} else {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
		}
	}
	out[o] = '\0';
}

int stick_fanout_index(const char *name)
{
	char c = name[0];

	if (name[0] == '\0' || name[1] != '\0')
		return -1;
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

char stick_fanout_name(unsigned h)
{
	return "0123456789abcdef"[h & 15];
}

static void hex_lower(const uint8_t *buf, size_t len, char *out)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = hex[buf[i] >> 4];
		out[2 * i + 1] = hex[buf[i] & 15];
	}
	out[2 * len] = '\0';
}

/* Lowercase hex only: the name must be the one tern wrote, byte for byte. */
static bool unhex_lower(const char *s, size_t len, uint8_t *out)
{
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		int v;
		if (c >= '0' && c <= '9')
			v = c - '0';
		else if (c >= 'a' && c <= 'f')
			v = c - 'a' + 10;
		else
			return false;
		if (i % 2 == 0)
			out[i / 2] = (uint8_t)(v << 4);
		else
			out[i / 2] |= (uint8_t)v;
	}
	return true;
}

void stick_bundle_name(const uint8_t id[static 32], int piece, char out[static STICK_NAME_MAX + 1])
{
	hex_lower(id, 32, out);
	if (piece < 0)
		memcpy(out + 64, ".bpv", 5);
	else
		snprintf(out + 64, STICK_NAME_MAX + 1 - 64, ".bpv.%03d", piece);
}

bool stick_parse_bundle_name(const char *name, uint8_t id[static 32], int *piece)
{
	size_t len = strlen(name);

	if ((len != 68 && len != 72) || memcmp(name + 64, ".bpv", 4) != 0 ||
	    !unhex_lower(name, 64, id))
		return false;
	if (len == 68) {
		*piece = -1;
		return true;
	}
	const char *d = name + 68;
	if (d[0] != '.' || d[1] < '0' || d[1] > '9' || d[2] < '0' || d[2] > '9' || d[3] < '0' ||
	    d[3] > '9')
		return false;
	*piece = (d[1] - '0') * 100 + (d[2] - '0') * 10 + (d[3] - '0');
	return true;
}

static const char *const file_suffix[3] = {"", ".man", ".rcp"};

/* "<32 hex>.man" in manifests/, "<32 hex>.rcp" in receipts/. */
static bool parse_file_name(int which, const char *name, uint8_t id[16])
{
	return strlen(name) == 36 && strcmp(name + 32, file_suffix[which]) == 0 &&
	       unhex_lower(name, 32, id);
}

static void file_name(int which, const uint8_t id[16], char out[static STICK_NAME_MAX + 1])
{
	hex_lower(id, 16, out);
	strcpy(out + 32, file_suffix[which]);
}

void stick_temp_name(char out[static STICK_TEMP_LEN + 1])
{
	uint8_t r[16];

	tern_random(r, sizeof(r));
	hex_lower(r, sizeof(r), out);
	memcpy(out + 32, ".part", 6);
}

bool stick_is_temp(const char *name)
{
	size_t len = strlen(name);

	return len > 5 && strcmp(name + len - 5, ".part") == 0;
}

/* ---- safe file helpers ------------------------------------------------------------ */

int stick_fsync_dir(int dfd)
{
	if (fsync(dfd) == 0 || errno == EINVAL || errno == ENOTSUP || errno == ENOSYS)
		return 0;
	return -errno;
}

int stick_rename_noreplace(int dfd, const char *from, const char *to)
{
	if (renameat2(dfd, from, dfd, to, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
		return -errno;
	/*
	 * A file system without RENAME_NOREPLACE (older FUSE): look, then rename. The flock
	 * taken by stick_open keeps other tern processes of this machine out of the gap.
	 */
	struct stat st;
	if (fstatat(dfd, to, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return -EEXIST;
	if (errno != ENOENT)
		return -errno;
	return renameat(dfd, from, dfd, to) == 0 ? 0 : -errno;
}

uint8_t stick_type_of(unsigned mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG:
		return STICK_T_REG;
	case S_IFLNK:
		return STICK_T_LNK;
	case S_IFDIR:
		return STICK_T_DIR;
	case S_IFIFO:
		return STICK_T_FIFO;
	case S_IFCHR:
	case S_IFBLK:
		return STICK_T_DEV;
	case S_IFSOCK:
		return STICK_T_SOCK;
	}
	return STICK_T_OTHER;
}

const char *stick_type_problem(uint8_t type, enum stick_problem *code)
{
	*code = STICK_NOT_REGULAR;
	switch (type) {
	case STICK_T_REG:
		*code = STICK_OK;
		return NULL;
	case STICK_T_LNK:
		*code = STICK_SYMLINK;
		return "a symbolic link (not followed)";
	case STICK_T_DIR:
		return "a directory where a file should be";
	case STICK_T_FIFO:
		return "a FIFO, not a file (not opened)";
	case STICK_T_DEV:
		return "a device file (not opened)";
	case STICK_T_SOCK:
		return "a socket, not a file (not opened)";
	case STICK_T_ERR:
		*code = STICK_UNREADABLE;
		return "cannot be examined (damaged file system?)";
	}
	return "not a regular file (not opened)";
}

int stick_write_all(int fd, const uint8_t *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

const char *stick_write_reason(struct stick *s, int err)
{
	struct statvfs vfs;

	switch (err) {
	case -ENOSPC:
		if (s->capacity)
			return "no space left on the stick";
		/*
		 * FAT32 refuses a 65,537th directory slot with ENOSPC while clusters are free;
		 * out of data space, fewer than a cluster or so is left.
		 */
		if (fstatvfs(s->tern_fd, &vfs) != 0 || vfs.f_blocks == 0)
			return "no space left on the stick (or, on FAT32, in its directory: "
			       "65,536 slots, about 9,360 bundle names)";
		if ((uint64_t)vfs.f_bavail * vfs.f_frsize > (uint64_t)vfs.f_bsize * 4 &&
		    (uint64_t)vfs.f_bavail * vfs.f_frsize > (1u << 20))
			return "no space: the directory is full (FAT32 holds 65,536 slots per "
			       "directory, about 9,360 bundle names)";
		return "no space left on the stick";
	case -EFBIG:
		return "the file system refuses a file this big (FAT32 holds 4 GiB - 1; "
		       "lower TERN_STICK_PIECE_MAX?)";
	case -EROFS:
		return "read-only file system (write-protect switch, or remounted read-only "
		       "after errors?)";
	case -EIO:
		return "I/O error (a damaged or pulled stick?)";
	case -EDQUOT:
		return "disk quota exceeded";
	}
	return strerror(-err);
}

/* ---- open and close --------------------------------------------------------------- */

static int open_reason(struct stick *s, int err, int which, const char *name, char *why,
		       size_t whylen)
{
	const char *r;

	switch (err) {
	case -ENOENT:
		r = name ? "no such directory" : "no such directory (is the stick mounted?)";
		break;
	case -ELOOP:
		r = "a symbolic link (not followed; give the real directory)";
		break;
	case -ENOTDIR:
		r = "not a directory";
		break;
	case -EACCES:
	case -EPERM:
		r = "permission denied";
		break;
	default:
		r = stick_write_reason(s, err);
	}
	if (which == -2) /* DIR itself */
		snprintf(s->err, sizeof(s->err), "%s: %s", s->dir, r);
	else
		stick_fail(s, err, which, name, "%s", r);
	if (why && whylen)
		snprintf(why, whylen, "%s", s->err);
	return err;
}

/*
 * Opens (creating if writable) a directory below dfd, never through a link. A directory
 * created is made durable in its parent at once: files fsynced into it later would be
 * lost with it otherwise.
 */
static int open_subdir(int dfd, const char *name, bool create, int *out)
{
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0 && errno == ENOENT && create) {
		if (mkdirat(dfd, name, 0755) != 0 && errno != EEXIST)
			return -errno;
		int ret = stick_fsync_dir(dfd);
		if (ret < 0)
			return ret;
		fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	}
	if (fd < 0) {
		/* O_DIRECTORY | O_NOFOLLOW on a link gives ENOTDIR on some kernels. */
		struct stat st;
		int err = -errno;
		if (err == -ENOTDIR && fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISLNK(st.st_mode))
			err = -ELOOP;
		return err;
	}
	*out = fd;
	return 0;
}

static int piece_max_from_env(uint64_t *out)
{
	const char *v = getenv(STICK_PIECE_MAX_ENV);
	char *end;

	*out = STICK_PIECE_MAX_DEFAULT;
	if (!v || !*v)
		return 0;
	errno = 0;
	unsigned long long n = strtoull(v, &end, 10);
	if (errno || *end || v[0] < '0' || v[0] > '9' || n == 0 || n > STICK_PIECE_MAX_DEFAULT)
		return -EINVAL;
	*out = n;
	return 0;
}

int stick_open(const char *dir, bool writable, struct stick **out, char *why, size_t whylen)
{
	struct stick *s = calloc(1, sizeof(*s));
	int ret = -ENOMEM;

	*out = NULL;
	if (!s || !(s->dir = strdup(dir))) {
		if (why && whylen)
			snprintf(why, whylen, "%s: out of memory", dir);
		free(s);
		return -ENOMEM;
	}
	s->writable = writable;
	s->root_fd = s->tern_fd = s->fd[0] = s->fd[1] = s->fd[2] = -1;
	for (unsigned h = 0; h < STICK_FANOUT; h++)
		s->sub[h] = -1;
	/* A trailing slash would make open() follow a final symbolic link despite O_NOFOLLOW. */
	for (size_t len = strlen(s->dir); len > 1 && s->dir[len - 1] == '/'; len--)
		s->dir[len - 1] = '\0';

	if (piece_max_from_env(&s->piece_max) < 0) {
		ret = -EINVAL;
		snprintf(s->err, sizeof(s->err), "%s: not a number of bytes from 1 to %llu",
			 STICK_PIECE_MAX_ENV, (unsigned long long)STICK_PIECE_MAX_DEFAULT);
		if (why && whylen)
			snprintf(why, whylen, "%s", s->err);
		goto fail;
	}
	s->root_fd = open(s->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (s->root_fd < 0) {
		ret = -errno;
		struct stat st;
		if (ret == -ENOTDIR && lstat(s->dir, &st) == 0 && S_ISLNK(st.st_mode))
			ret = -ELOOP;
		open_reason(s, ret, -2, NULL, why, whylen);
		goto fail;
	}
	ret = open_subdir(s->root_fd, "tern", writable, &s->tern_fd);
	if (ret == -ENOENT && !writable) {
		stick_fail(s, ret, -1, NULL, "no tern/ directory here (nothing exported to it)");
		if (why && whylen)
			snprintf(why, whylen, "%s", s->err);
		goto fail;
	}
	if (ret < 0) {
		open_reason(s, ret, -1, NULL, why, whylen);
		goto fail;
	}
	if (writable && flock(s->tern_fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
		ret = stick_fail(s, -EBUSY, -1, NULL, "another tern process is writing this stick");
		if (why && whylen)
			snprintf(why, whylen, "%s", s->err);
		goto fail;
	}
	for (int i = 0; i < 3; i++) {
		ret = open_subdir(s->tern_fd, dir_names[i], writable, &s->fd[i]);
		if (ret == -ENOENT && !writable)
			continue;
		if (ret < 0) {
			open_reason(s, ret, i, NULL, why, whylen);
			goto fail;
		}
	}
	if (writable) {
		/* Existing directories open fine on read-only media: ask before the first write. */
		struct statvfs vfs;
		if (fstatvfs(s->tern_fd, &vfs) == 0 && (vfs.f_flag & ST_RDONLY)) {
			ret = open_reason(s, -EROFS, -2, NULL, why, whylen);
			goto fail;
		}
		for (int i = 0; i < 3; i++) {
			if (faccessat(s->fd[i], ".", W_OK, AT_EACCESS) != 0) {
				ret = open_reason(s, -errno, i, NULL, why, whylen);
				goto fail;
			}
		}
	}
	s->err[0] = '\0';
	*out = s;
	return 0;
fail:
	stick_close(s);
	return ret;
}

void stick_close(struct stick *s)
{
	if (!s)
		return;
	stick_drop_pending(s);
	for (unsigned h = 0; h < STICK_FANOUT; h++)
		if (s->sub[h] >= 0)
			close(s->sub[h]);
	for (int i = 0; i < 3; i++)
		if (s->fd[i] >= 0)
			close(s->fd[i]);
	/* Closing the descriptor releases the flock. */
	if (s->tern_fd >= 0)
		close(s->tern_fd);
	if (s->root_fd >= 0)
		close(s->root_fd);
	free(s->iobuf);
	free(s->dir);
	free(s);
}

int stick_bundle_dir(struct stick *s, unsigned h, bool create, int *out)
{
	char name[2] = {stick_fanout_name(h), '\0'};
	int ret;

	*out = -1;
	if (h >= STICK_FANOUT)
		return stick_fail(s, -EINVAL, STICK_BUNDLES, NULL, "no subdirectory %u", h);
	if (s->sub[h] >= 0) {
		*out = s->sub[h];
		return 0;
	}
	if (s->fd[STICK_BUNDLES] < 0)
		return stick_fail(s, -ENOENT, STICK_BUNDLES, NULL, "no such directory");
	ret = open_subdir(s->fd[STICK_BUNDLES], name, create && s->writable, &s->sub[h]);
	switch (ret) {
	case 0:
		*out = s->sub[h];
		return 0;
	case -ENOENT:
		return stick_fail(s, ret, STICK_BUNDLES, name, "no such directory");
	case -ELOOP:
		return stick_fail(s, ret, STICK_BUNDLES, name,
				  "a symbolic link where a directory of bundles belongs (not "
				  "followed)");
	case -ENOTDIR:
		return stick_fail(s, ret, STICK_BUNDLES, name,
				  "not a directory (a directory of bundles belongs here)");
	case -EACCES:
	case -EPERM:
		return stick_fail(s, ret, STICK_BUNDLES, name, "permission denied");
	}
	return stick_fail(s, ret, STICK_BUNDLES, name, "cannot open or create: %s",
			  stick_write_reason(s, ret));
}

/* Adds what the regular files of directory dfd take, in clusters. */
static int add_used(struct stick *s, int dfd, uint64_t *used)
{
	int lfd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = lfd >= 0 ? fdopendir(lfd) : NULL;
	struct dirent *de;

	if (!d) {
		if (lfd >= 0)
			close(lfd);
		return -errno;
	}
	while ((de = readdir(d))) {
		struct stat st;
		if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
			*used += ((uint64_t)st.st_size + s->cluster - 1) / s->cluster * s->cluster;
	}
	closedir(d);
	return 0;
}

static int capacity_left(struct stick *s, uint64_t *out)
{
	uint64_t used = 0;
	int ret = 0;

	for (int which = STICK_MANIFESTS; which <= STICK_RECEIPTS && ret == 0; which++)
		if (s->fd[which] >= 0)
			ret = add_used(s, s->fd[which], &used);
	for (unsigned h = 0; h < STICK_FANOUT && ret == 0; h++) {
		int dfd;
		ret = stick_bundle_dir(s, h, false, &dfd);
		if (ret == 0)
			ret = add_used(s, dfd, &used);
		else if (ret == -ENOENT || ret == -ELOOP || ret == -ENOTDIR)
			ret = 0; /* holds nothing of ours */
	}
	if (ret < 0)
		return stick_fail(s, ret, -1, NULL, "cannot add up its files: %s", strerror(-ret));
	*out = used < s->capacity ? s->capacity - used : 0;
	return 0;
}

int stick_set_capacity(struct stick *s, uint64_t bytes, uint64_t cluster)
{
	if (!bytes || !cluster)
		return -EINVAL;
	s->capacity = bytes;
	s->cluster = cluster;
	return 0;
}

int stick_free_bytes(struct stick *s, uint64_t *out)
{
	struct statvfs vfs;

	if (s->capacity)
		return capacity_left(s, out);
	if (fstatvfs(s->tern_fd, &vfs) != 0)
		return stick_fail(s, -errno, -1, NULL, "statvfs: %s", strerror(errno));
	*out = vfs.f_blocks == 0 ? STICK_FREE_UNKNOWN : (uint64_t)vfs.f_bavail * vfs.f_frsize;
	return 0;
}

uint64_t stick_cluster_size(struct stick *s)
{
	struct statvfs vfs;
	if (s->cluster)
		return s->cluster;
	if (fstatvfs(s->tern_fd, &vfs) != 0 || vfs.f_frsize == 0)
		return 4096;
	return vfs.f_frsize;
}

/* ---- listings --------------------------------------------------------------------- */

void stick_rec_name(int which, const struct stick_rec *r, char out[static STICK_SHOW_MAX + 1])
{
	if (r->show)
		snprintf(out, STICK_SHOW_MAX + 1, "%s", r->show);
	else if (which == STICK_BUNDLES)
		stick_bundle_name(r->id, r->piece, out);
	else
		file_name(which, r->id, out);
}

static int cmp_rec(const void *a, const void *b, void *which_p)
{
	const struct stick_rec *x = a, *y = b;
	int which = *(int *)which_p;

	if (!x->show && !y->show) {
		/* Hex order is byte order, and "<id>.bpv" sorts before "<id>.bpv.000". */
		int c = memcmp(x->id, y->id, which == STICK_BUNDLES ? 32 : 16);
		return c ? c : (x->piece > y->piece) - (x->piece < y->piece);
	}
	char nx[STICK_SHOW_MAX + 1], ny[STICK_SHOW_MAX + 1];
	stick_rec_name(which, x, nx);
	stick_rec_name(which, y, ny);
	return strcmp(nx, ny);
}

void stick_list_free(struct stick_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->recs[i].show);
	free(l->recs);
	l->recs = NULL;
	l->n = l->cap = 0;
}

/*
 * Classifies one directory entry: 1 to keep it, 0 to skip it (a regular temporary file,
 * or gone), -ENOMEM. sub as for stick_list_dir.
 */
static int list_one(int which, int sub, int dfd, const char *name, struct stick_rec *r)
{
	bool top = which == STICK_BUNDLES && sub < 0;
	struct stat st;

	memset(r, 0, sizeof(*r));
	r->piece = -1;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
		if (errno == ENOENT)
			return 0; /* removed since readdir */
		r->type = STICK_T_ERR;
		r->err = -errno;
	} else {
		r->type = stick_type_of(st.st_mode);
		r->size = (uint64_t)st.st_size;
	}
	/* No temporary is ever written to bundles/ itself: one there is reported. */
	if (!top && r->type == STICK_T_REG && stick_name_ok(name) && stick_is_temp(name))
		return 0;

	int piece = -1;
	bool ok = false;
	if (which == STICK_BUNDLES && !top)
		ok = stick_parse_bundle_name(name, r->id, &piece) &&
		     name[0] == stick_fanout_name((unsigned)sub);
	else if (!top)
		ok = parse_file_name(which, name, r->id);
	r->piece = (int16_t)(ok ? piece : -1);
	if (!ok) {
		/* Inside bundles/<h>/ the entry is shown as "<h>/<name>": room for the prefix. */
		char show[STICK_SHOW_MAX + 1];
		stick_show_name(
		    name, which == STICK_BUNDLES && !top ? STICK_SHOW_MAX - 2 : STICK_SHOW_MAX,
		    show);
		r->show = strdup(show);
		if (!r->show)
			return -ENOMEM;
	}
	return 1;
}

int stick_list_dir(struct stick *s, int which, int sub, int dfd, struct stick_list *l)
{
	char subname[2] = {sub >= 0 ? stick_fanout_name((unsigned)sub) : '\0', '\0'};
	const char *label = sub >= 0 ? subname : NULL;
	int ret = 0;

	memset(l, 0, sizeof(*l));
	if (dfd < 0)
		return 0;
	/* A fresh open file description: its own read position, closed by closedir. */
	int lfd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = lfd >= 0 ? fdopendir(lfd) : NULL;
	if (!d) {
		ret = stick_fail(s, -errno, which, label, "cannot list: %s", strerror(errno));
		if (lfd >= 0)
			close(lfd);
		return ret;
	}
	for (;;) {
		errno = 0;
		struct dirent *e = readdir(d);
		if (!e) {
			if (errno)
				ret = stick_fail(s, -errno, which, label, "cannot list: %s",
						 strerror(errno));
			break;
		}
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (l->n == STICK_DIR_MAX) {
			ret = stick_fail(s, -EFBIG, which, label, "more than %u entries: refused",
					 STICK_DIR_MAX);
			break;
		}
		if (l->n == l->cap) {
			size_t cap = l->cap ? l->cap * 2 : 64;
			struct stick_rec *recs = realloc(l->recs, cap * sizeof(*recs));
			if (!recs) {
				ret = stick_fail(s, -ENOMEM, which, label, "out of memory");
				break;
			}
			l->recs = recs;
			l->cap = cap;
		}
		int r = list_one(which, sub, lfd, e->d_name, &l->recs[l->n]);
		if (r < 0) {
			ret = stick_fail(s, r, which, label, "out of memory");
			break;
		}
		if (r > 0)
			l->n++;
	}
	closedir(d);
	if (ret < 0) {
		stick_list_free(l);
		return ret;
	}
	if (l->n > 1) /* an empty directory has no array to sort (NULL) */
		qsort_r(l->recs, l->n, sizeof(*l->recs), cmp_rec, &which);
	return 0;
}

/* ---- temporaries ------------------------------------------------------------------ */

/* Removes the regular *.part files of one directory; label names it in messages. */
static int clean_dir(struct stick *s, int which, const char *label, int dirfd, unsigned *count)
{
	int ret = 0, removed = 0;
	int dfd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;

	if (!d) {
		ret = stick_fail(s, -errno, which, label, "cannot list: %s", strerror(errno));
		if (dfd >= 0)
			close(dfd);
		return ret;
	}
	for (;;) {
		errno = 0;
		struct dirent *e = readdir(d);
		struct stat st;
		if (!e) {
			if (errno)
				ret = stick_fail(s, -errno, which, label, "cannot list: %s",
						 strerror(errno));
			break;
		}
		if (!stick_is_temp(e->d_name) ||
		    fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
			continue;
		/*
		 * unlinkat never follows: if the name was swapped for a link since the
		 * fstatat, the link itself goes, which is harmless.
		 */
		if (unlinkat(dfd, e->d_name, 0) == 0) {
			removed++;
		} else if (errno != ENOENT) {
			int err = -errno;
			char show[STICK_SHOW_MAX + 1], path[STICK_SHOW_MAX + 3];
			stick_show_name(e->d_name, STICK_SHOW_MAX, show);
			snprintf(path, sizeof(path), "%s%s%s", label ? label : "", label ? "/" : "",
				 show);
			ret = stick_fail(s, err, which, path, "cannot remove: %s",
					 stick_write_reason(s, err));
			break;
		}
	}
	closedir(d);
	*count += (unsigned)removed;
	if (ret == 0 && removed)
		ret = stick_fsync_dir(dirfd);
	return ret;
}

int stick_clean_temp(struct stick *s, unsigned *removed)
{
	unsigned count = 0;
	int ret = 0;

	if (removed)
		*removed = 0;
	if (!s->writable)
		return stick_fail(s, -EROFS, -1, NULL, "opened read-only");
	/* Only the 16 subdirectories of bundles/ get temporaries; one that is not a
	 * directory is left for the listing to report. */
	for (unsigned h = 0; h < STICK_FANOUT && ret == 0; h++) {
		char label[2] = {stick_fanout_name(h), '\0'};
		int dfd;
		ret = stick_bundle_dir(s, h, false, &dfd);
		if (ret == -ENOENT || ret == -ELOOP || ret == -ENOTDIR)
			ret = 0;
		else if (ret == 0)
			ret = clean_dir(s, STICK_BUNDLES, label, dfd, &count);
	}
	for (int which = STICK_MANIFESTS; which <= STICK_RECEIPTS && ret == 0; which++)
		ret = clean_dir(s, which, NULL, s->fd[which], &count);
	if (removed)
		*removed = count;
	return ret;
}
