/* tern backup FILE: the node's identity, store and configuration, sealed with a passphrase. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "relay/backup.h"
#include "relay/cli.h"

/* Plaintext gathered into chunks, sealed and written with their length in front. */
struct sealer {
	int fd;
	struct pwstream *ps;
	size_t n;
	uint64_t files, bytes, payloads;
	int err; /* the first write error (-errno): everything after it is skipped */
	uint8_t pt[PWSTREAM_CHUNK_MAX];
	uint8_t io[PWSTREAM_CHUNK_MAX]; /* what add_fd reads */
	uint8_t ct[4 + PWSTREAM_CHUNK_MAX + PWSTREAM_ABYTES];
};

static int write_all(int fd, const uint8_t *buf, size_t len)
{
	while (len) {
		ssize_t w = write(fd, buf, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		buf += w;
		len -= (size_t)w;
	}
	return 0;
}

static int seal_chunk(struct sealer *s, bool final)
{
	size_t len = s->n + PWSTREAM_ABYTES;
	s->ct[0] = (uint8_t)(len >> 24);
	s->ct[1] = (uint8_t)(len >> 16);
	s->ct[2] = (uint8_t)(len >> 8);
	s->ct[3] = (uint8_t)len;
	if (!s->err)
		s->err = pwstream_seal(s->ps, s->pt, s->n, final, s->ct + 4);
	if (!s->err)
		s->err = write_all(s->fd, s->ct, 4 + len);
	s->n = 0;
	return s->err;
}

static int seal_put(struct sealer *s, const uint8_t *buf, size_t len)
{
	while (len && !s->err) {
		size_t n = sizeof(s->pt) - s->n < len ? sizeof(s->pt) - s->n : len;
		memcpy(s->pt + s->n, buf, n);
		s->n += n;
		buf += n;
		len -= n;
		if (s->n == sizeof(s->pt))
			seal_chunk(s, false);
	}
	return s->err;
}

/* One file record from an open file; the file must not change while it is read. */
static int add_fd(struct sealer *s, const char *name, int fd)
{
	struct stat st;
	uint8_t head[BACKUP_HEAD_LEN + BACKUP_NAME_MAX];
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		return cli_fail(name, "not a regular file"), -EINVAL;
	uint64_t size = (uint64_t)st.st_size, got = 0;
	seal_put(s, head, backup_head(head, BACKUP_REC_FILE, name, size));
	ssize_t n;
	while (!s->err && got < size && (n = read(fd, s->io, sizeof(s->io))) > 0) {
		if ((uint64_t)n > size - got)
			n = (ssize_t)(size - got);
		seal_put(s, s->io, (size_t)n);
		got += (uint64_t)n;
	}
	if (s->err)
		return cli_fail("backup", "cannot write: %s", strerror(-s->err)), s->err;
	if (got != size)
		return cli_fail(name, "it shrank while being read"), -EIO;
	s->files++;
	s->bytes += size;
	return 0;
}

/* A file of the node home, or nothing if it is absent and optional. */
static int add_path(struct sealer *s, const char *dir, const char *name, bool optional)
{
	char path[HOME_PATH_MAX + 256];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT && optional)
			return 0;
		return cli_fail(path, "%s",
				errno == ENOENT ? "no identity here: run `tern init` first"
						: strerror(errno)),
		       -errno;
	}
	int ret = add_fd(s, name, fd);
	close(fd);
	return ret;
}

static int add_payload(void *ctx, const char *name, int fd)
{
	struct sealer *s = ctx;
	char rec[BACKUP_NAME_MAX + 1];
	snprintf(rec, sizeof(rec), "store.db-payloads/%s", name);
	int ret = add_fd(s, rec, fd);
	s->payloads += ret == 0;
	return ret;
}

/* The SBD spools: plain files only (a name restore would refuse is not a spool file). */
static int add_spool(struct sealer *s, const char *dir, const char *sub)
{
	char path[HOME_PATH_MAX + 64];
	snprintf(path, sizeof(path), "%s/%s", dir, sub);
	DIR *d = opendir(path);
	if (!d)
		return errno == ENOENT ? 0 : (cli_fail(path, "%s", strerror(errno)), -errno);
	struct dirent *e;
	int ret = 0;
	while (ret == 0 && (e = readdir(d))) {
		char name[BACKUP_NAME_MAX + 1];
		if (snprintf(name, sizeof(name), "%s/%s", sub, e->d_name) >= (int)sizeof(name) ||
		    !backup_name_ok(name) || e->d_type == DT_DIR)
			continue;
		ret = add_path(s, dir, name, true);
	}
	closedir(d);
	return ret;
}

/* The store, copied at one moment while a daemon may go on writing, and its payload files. */
static int add_store(struct sealer *s, const char *dir)
{
	char db[HOME_PATH_MAX + 32], copy[HOME_PATH_MAX + 64];
	snprintf(db, sizeof(db), "%s/store.db", dir);
	/* In the node home, not /tmp: the copy is as private as the store it copies. */
	snprintf(copy, sizeof(copy), "%s/.backup-%ld.db", dir, (long)getpid());
	struct store_clock now;
	struct store *store = NULL;
	const char *why = NULL;
	clock_now(&now);
	if (access(db, F_OK) != 0)
		return cli_fail(db, "no store here"), -ENOENT;
	int ret = store_open(db, &now, &store, &why);
	if (ret < 0)
		return cli_fail(db, "cannot open the store: %s", why ? why : strerror(-ret)), ret;
	int fd = open(copy, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		ret = -errno;
		cli_fail(copy, "cannot make the store's copy: %s", strerror(errno));
		goto out;
	}
	close(fd);
	unsigned n_files;
	ret = store_backup(store, copy, &n_files, add_payload, s, &why);
	if (ret < 0 && why)
		cli_fail(db, "cannot copy the store: %s", why);
	if (ret == 0) {
		fd = open(copy, O_RDONLY | O_CLOEXEC);
		ret = fd < 0 ? -errno : add_fd(s, "store.db", fd);
		if (fd >= 0)
			close(fd);
	}
out:
	store_close(store);
	unlink(copy);
	strcat(copy, "-journal");
	unlink(copy);
	return ret;
}

int cmd_backup(int argc, char **argv)
{
	if (argc != 2 || argv[1][0] == '-')
		return cli_usage("backup", argc < 2 ? "backup takes the FILE to write"
						    : "backup takes one FILE and no option");
	const char *file = argv[1];
	char dir[HOME_PATH_MAX], key[HOME_PATH_MAX + 16], pass[256] = "";
	if (home_dir(dir, sizeof(dir)) < 0)
		return cli_fail("backup", "no home directory: give --home DIR or set TERN_HOME");
	if (home_check_owner(dir) != EXIT_OK)
		return EXIT_FAIL;
	snprintf(key, sizeof(key), "%s/identity.key", dir);
	if (access(key, F_OK) != 0)
		return cli_fail(key, "no identity here: run `tern init` first");

	struct sealer *s = calloc(1, sizeof(*s));
	uint8_t header[PWSTREAM_HEADER_LEN];
	int ret = EXIT_FAIL;
	if (!s)
		return cli_fail("backup", "out of memory");
	s->fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (s->fd < 0) {
		cli_fail(file, "%s",
			 errno == EEXIST ? "already exists: a backup never replaces a file"
					 : strerror(errno));
		free(s);
		return EXIT_FAIL;
	}
	if (home_passphrase("Backup passphrase: ", true, pass, sizeof(pass)) < 0)
		goto out;
	if (pwstream_seal_new(pass, header, &s->ps) < 0) {
		cli_fail("backup", "cannot derive the key: out of memory");
		goto out;
	}
	if ((s->err = write_all(s->fd, header, sizeof(header))) != 0) {
		cli_fail(file, "cannot write: %s", strerror(-s->err));
		goto out;
	}
	if (add_path(s, dir, "identity.key", false) || add_path(s, dir, "tern.conf", true) ||
	    add_store(s, dir) || add_spool(s, dir, "sbd") || add_spool(s, dir, "sbd-out"))
		goto out;
	uint8_t end[BACKUP_HEAD_LEN];
	seal_put(s, end, backup_head(end, BACKUP_REC_END, "", s->files));
	seal_chunk(s, true);
	if (!s->err && fsync(s->fd) != 0)
		s->err = -errno;
	if (s->err) {
		cli_fail(file, "cannot write: %s", strerror(-s->err));
		goto out;
	}
	char size[32];
	format_size(s->bytes, size, sizeof(size));
	printf("backup of %s written to %s: identity, store, %llu payload file(s); "
	       "%llu files, %s in all\n",
	       dir, file, (unsigned long long)s->payloads, (unsigned long long)s->files, size);
	ret = EXIT_OK;
out:
	explicit_bzero(pass, sizeof(pass));
	pwstream_free(s->ps);
	if (close(s->fd) != 0 && ret == EXIT_OK)
		ret = cli_fail(file, "cannot write: %s", strerror(errno));
	if (ret != EXIT_OK)
		unlink(file);
	free(s);
	return ret;
}
