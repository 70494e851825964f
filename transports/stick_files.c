/* Manifests and receipts on a stick: small files, random names, written atomically, read whole. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "transports/stick_internal.h"

static bool file_dir(int which)
{
	return which == STICK_MANIFESTS || which == STICK_RECEIPTS;
}

int stick_put(struct stick *s, enum stick_dir which, const void *buf, size_t len,
	      char name_out[static STICK_NAME_MAX + 1])
{
	char tmp[STICK_TEMP_LEN + 1];
	int ret = 0, fd = -1;

	name_out[0] = '\0';
	if (!file_dir(which))
		return stick_fail(s, -EINVAL, -1, NULL, "only manifests and receipts are put");
	if (len == 0 || len > STICK_FILE_MAX)
		return stick_fail(s, -EINVAL, which, NULL, "%zu bytes: a file holds 1 to %u", len,
				  STICK_FILE_MAX);
	if (!s->writable)
		return stick_fail(s, -EROFS, which, NULL, "stick opened read-only");
	if (s->capacity) {
		uint64_t avail;
		if ((ret = stick_free_bytes(s, &avail)) < 0)
			return ret;
		if ((len + s->cluster - 1) / s->cluster * s->cluster > avail)
			return stick_fail(s, -ENOSPC, which, NULL,
					  "no space: %zu bytes to write, %llu free", len,
					  (unsigned long long)avail);
	}
	int dfd = s->fd[which];
	for (int tries = 0; fd < 0; tries++) {
		stick_temp_name(tmp);
		fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
		if (fd < 0 && (errno != EEXIST || tries == 3)) {
			int err = -errno;
			return stick_fail(s, err, which, tmp, "%s", stick_write_reason(s, err));
		}
	}
	ret = stick_write_all(fd, buf, len);
	if (ret == 0 && fsync(fd) != 0)
		ret = -errno;
	if (close(fd) != 0 && ret == 0)
		ret = -errno;
	if (ret < 0) {
		stick_fail(s, ret, which, tmp, "%s", stick_write_reason(s, ret));
		unlinkat(dfd, tmp, 0);
		return ret;
	}
	/* The temporary's random part names the file: a clash with anyone's is 2^-128. */
	memcpy(name_out, tmp, 32);
	strcpy(name_out + 32, which == STICK_MANIFESTS ? ".man" : ".rcp");
	ret = stick_rename_noreplace(dfd, tmp, name_out);
	if (ret == 0)
		ret = stick_fsync_dir(dfd);
	if (ret < 0) {
		stick_fail(s, ret, which, name_out, "%s", stick_write_reason(s, ret));
		unlinkat(dfd, tmp, 0);
		name_out[0] = '\0';
	}
	return ret;
}

/*
 * Reads a listed file of expected bytes into buf. Returns 0, or a static reason with
 * *code set when it must be refused.
 */
static const char *read_small(int dfd, const char *name, uint64_t expect, uint8_t *buf,
			      enum stick_problem *code)
{
	static const char changed[] = "changed since it was listed (not read)";
	struct stat st;

	*code = STICK_CHANGED;
	int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		*code = errno == ELOOP ? STICK_CHANGED : STICK_UNREADABLE;
		return errno == ELOOP ? changed : "cannot be opened";
	}
	const char *why = NULL;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != expect) {
		why = changed;
		goto out;
	}
	for (size_t off = 0; off < expect;) {
		ssize_t got = read(fd, buf + off, expect - off);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			*code = STICK_UNREADABLE;
			why = "read error (a damaged stick?)";
			goto out;
		}
		if (got == 0) {
			why = "shrank while being read";
			goto out;
		}
		off += (size_t)got;
	}
	uint8_t extra;
	ssize_t got;
	while ((got = read(fd, &extra, 1)) < 0 && errno == EINTR)
		;
	if (got > 0)
		why = "grew while being read";
	else if (got < 0) {
		*code = STICK_UNREADABLE;
		why = "read error (a damaged stick?)";
	}
out:
	close(fd);
	return why;
}

int stick_foreach_file(struct stick *s, enum stick_dir which, stick_file_fn fn, void *ctx)
{
	struct stick_list l;
	uint8_t *buf = NULL;
	size_t cap = 0;
	int ret;

	if (!file_dir(which))
		return stick_fail(s, -EINVAL, -1, NULL, "only manifests and receipts are files");
	ret = stick_list_dir(s, which, -1, s->fd[which], &l);
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < l.n && ret == 0; i++) {
		struct stick_rec *r = &l.recs[i];
		char name[STICK_SHOW_MAX + 1];
		enum stick_problem code;
		const char *problem = stick_type_problem(r->type, &code);

		stick_rec_name(which, r, name);
		if (!problem && r->show)
			problem = which == STICK_MANIFESTS
				      ? "not a name tern writes (<32 lowercase hex>.man)"
				      : "not a name tern writes (<32 lowercase hex>.rcp)";
		else if (!problem && r->size == 0)
			problem = "empty (0 bytes): cut short when the stick was pulled?";
		else if (!problem && r->size > STICK_FILE_MAX)
			problem = "larger than 16 MiB: refused unread";
		if (!problem && r->size > cap) {
			/* Grows to the largest file seen, at most STICK_FILE_MAX. */
			uint8_t *nb = realloc(buf, (size_t)r->size);
			if (!nb) {
				ret = stick_fail(s, -ENOMEM, which, name, "out of memory");
				break;
			}
			buf = nb;
			cap = (size_t)r->size;
		}
		if (!problem)
			problem = read_small(s->fd[which], name, r->size, buf, &code);
		if (problem)
			ret = fn(ctx, name, NULL, 0, problem);
		else
			ret = fn(ctx, name, buf, (size_t)r->size, NULL);
	}
	free(buf);
	stick_list_free(&l);
	return ret;
}

int stick_remove(struct stick *s, enum stick_dir which, const char *name)
{
	char show[STICK_SHOW_MAX + 1];
	const char *suffix = which == STICK_MANIFESTS ? ".man" : ".rcp";
	struct stat st;

	stick_show_name(name, STICK_SHOW_MAX, show);
	if (!file_dir(which))
		return stick_fail(s, -EINVAL, -1, NULL, "only manifests and receipts are removed");
	size_t len = strlen(name);
	if (len != 36 || !stick_name_ok(name) || strcmp(name + 32, suffix) != 0 ||
	    strspn(name, "0123456789abcdef") != 32)
		return stick_fail(s, -EINVAL, which, show, "not a name tern writes here");
	if (!s->writable)
		return stick_fail(s, -EROFS, which, name, "stick opened read-only");
	int dfd = s->fd[which];
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
		int err = -errno;
		return stick_fail(s, err, which, name, "%s",
				  err == -ENOENT ? "not on the stick" : strerror(-err));
	}
	if (!S_ISREG(st.st_mode)) {
		enum stick_problem code;
		return stick_fail(s, -EPERM, which, name, "left alone: %s",
				  stick_type_problem(stick_type_of(st.st_mode), &code));
	}
	if (unlinkat(dfd, name, 0) != 0) {
		int err = -errno;
		return stick_fail(s, err, which, name, "cannot remove: %s",
				  stick_write_reason(s, err));
	}
	return stick_fsync_dir(dfd);
}
