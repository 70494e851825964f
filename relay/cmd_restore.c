/* tern restore FILE: a backup back into a new node home, whole or not at all. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "relay/backup.h"
#include "relay/cli.h"

/* What restore puts in the home, in this order: identity.key last, so it says "done". */
static const char *const placed[] = {"store.db-payloads", "sbd",      "sbd-out",
				     "tern.conf",	  "store.db", "identity.key"};
#define N_PLACED (sizeof(placed) / sizeof(placed[0]))

struct restore {
	char stage[HOME_PATH_MAX + 32]; /* <home>/.restore-XXXXXX: the backup unpacks here */
	int out;			/* the file being written, or -1 */
	const char *name;		/* its name, for messages */
	uint64_t files, bytes, payloads;
	bool has_key, has_store;
	int err; /* errno of a failed write */
};

static int file_begin(void *ctx, const char *name, uint64_t size)
{
	struct restore *r = ctx;
	char path[HOME_PATH_MAX + 300];
	const char *slash = strchr(name, '/');
	if (slash) {
		snprintf(path, sizeof(path), "%s/%.*s", r->stage, (int)(slash - name), name);
		if (mkdir(path, 0700) != 0 && errno != EEXIST)
			return r->err = errno, -errno;
	}
	snprintf(path, sizeof(path), "%s/%s", r->stage, name);
	/* O_EXCL: a name twice in one backup is refused, not written over. */
	r->out = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (r->out < 0)
		return r->err = errno, -errno;
	r->name = name;
	r->has_key |= strcmp(name, "identity.key") == 0;
	r->has_store |= strcmp(name, "store.db") == 0;
	r->payloads += slash && strncmp(name, "store.db-payloads/", 18) == 0;
	r->files++;
	r->bytes += size;
	return 0;
}

static int file_data(void *ctx, const uint8_t *buf, size_t len)
{
	struct restore *r = ctx;
	while (len) {
		ssize_t w = write(r->out, buf, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return r->err = w < 0 ? errno : EIO, -r->err;
		buf += w;
		len -= (size_t)w;
	}
	return 0;
}

static int file_end(void *ctx)
{
	struct restore *r = ctx;
	int ret = fsync(r->out) == 0 ? 0 : -errno;
	if (close(r->out) != 0 && ret == 0)
		ret = -errno;
	r->out = -1;
	if (ret)
		r->err = -ret;
	return ret;
}

static const struct backup_reader_ops ops = {file_begin, file_data, file_end};

/* Removes a staging directory: files, and files in its subdirectories (no deeper). */
static void remove_stage(const char *stage)
{
	DIR *d = opendir(stage);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		char path[HOME_PATH_MAX + 300];
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", stage, e->d_name);
		if (unlink(path) == 0 || errno != EISDIR)
			continue;
		DIR *sub = opendir(path);
		struct dirent *f;
		while (sub && (f = readdir(sub))) {
			char p2[HOME_PATH_MAX + 600];
			snprintf(p2, sizeof(p2), "%s/%s", path, f->d_name);
			unlink(p2);
		}
		if (sub)
			closedir(sub);
		rmdir(path);
	}
	if (d)
		closedir(d);
	rmdir(stage);
}

/* What an interrupted restore left: only ever removed under the lock, with no identity here. */
static void remove_stale_stages(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (strncmp(e->d_name, ".restore-", 9) != 0)
			continue;
		char path[HOME_PATH_MAX + 300];
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		remove_stage(path);
	}
	if (d)
		closedir(d);
}

static int read_full(int fd, uint8_t *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (int)got;
}

/* Opens every chunk and unpacks it into the stage. EXIT_OK, or the error printed. */
static int unpack(const char *file, int fd, struct pwstream *ps, struct restore *r)
{
	struct backup_reader rd;
	uint8_t *ct = malloc(PWSTREAM_CHUNK_MAX + PWSTREAM_ABYTES),
		*pt = malloc(PWSTREAM_CHUNK_MAX);
	uint64_t at = PWSTREAM_HEADER_LEN;
	bool final = false;
	int ret = EXIT_FAIL;
	backup_reader_init(&rd);
	if (!ct || !pt) {
		cli_fail("restore", "out of memory");
		goto out;
	}
	while (!final) {
		uint8_t len4[4];
		int n = read_full(fd, len4, 4);
		if (n < 0) {
			cli_fail(file, "cannot read: %s", strerror(-n));
			goto out;
		}
		if (n < 4) {
			cli_fail(file, "cut short at byte %llu: the backup is incomplete",
				 (unsigned long long)at + (unsigned)n);
			goto out;
		}
		size_t len =
		    (size_t)len4[0] << 24 | (size_t)len4[1] << 16 | (size_t)len4[2] << 8 | len4[3];
		if (len < PWSTREAM_ABYTES || len > PWSTREAM_CHUNK_MAX + PWSTREAM_ABYTES) {
			cli_fail(file, "damaged at byte %llu (a chunk length of %zu)",
				 (unsigned long long)at, len);
			goto out;
		}
		n = read_full(fd, ct, len);
		if (n < 0 || (size_t)n < len) {
			cli_fail(file, "cut short at byte %llu: the backup is incomplete",
				 (unsigned long long)at + 4 + (n > 0 ? (unsigned)n : 0));
			goto out;
		}
		if (pwstream_open(ps, ct, len, pt, &final) != 0) {
			cli_fail(file,
				 "damaged at byte %llu: the chunk there does not authenticate",
				 (unsigned long long)at);
			goto out;
		}
		int err = backup_reader_push(&rd, pt, len - PWSTREAM_ABYTES, &ops, r);
		if (err == -EBADMSG && !r->err) {
			cli_fail(file, "not restored: %s", rd.err);
			goto out;
		}
		if (err) {
			cli_fail(r->name ? r->name : file, "cannot write it in %s: %s", r->stage,
				 strerror(r->err));
			goto out;
		}
		at += 4 + len;
	}
	if (read_full(fd, ct, 1) != 0) {
		cli_fail(file, "bytes after the end of the backup (at byte %llu)",
			 (unsigned long long)at);
		goto out;
	}
	if (backup_reader_finish(&rd) != 0) {
		cli_fail(file, "not restored: %s", rd.err);
		goto out;
	}
	if (!r->has_key || !r->has_store) {
		cli_fail(file, "not restored: it holds no %s", r->has_key ? "store" : "identity");
		goto out;
	}
	ret = EXIT_OK;
out:
	free(ct);
	free(pt);
	return ret;
}

/* The restored store must open (and it is migrated if the backup came from an older tern). */
static int check_store(const char *stage)
{
	char db[HOME_PATH_MAX + 64];
	snprintf(db, sizeof(db), "%s/store.db", stage);
	struct store_clock now;
	struct store *s = NULL;
	const char *why = NULL;
	clock_now(&now);
	int ret = store_open(db, &now, &s, &why);
	store_close(s);
	if (ret < 0)
		return cli_fail("restore", "the backup's store does not open: %s",
				why ? why : strerror(-ret));
	return EXIT_OK;
}

/* Moves the unpacked home into place. Nothing of it is in the home until this succeeds. */
static int place(const char *dir, const char *stage)
{
	for (size_t i = 0; i < N_PLACED; i++) {
		char from[HOME_PATH_MAX + 64], to[HOME_PATH_MAX + 64];
		snprintf(from, sizeof(from), "%s/%s", stage, placed[i]);
		snprintf(to, sizeof(to), "%s/%s", dir, placed[i]);
		if (access(from, F_OK) != 0)
			continue;
		rmdir(to); /* an empty directory left by an earlier store_open may stand there */
		if (rename(from, to) != 0) {
			int err = errno;
			/* Undo what moved, so the home is as it was. */
			while (i--) {
				snprintf(from, sizeof(from), "%s/%s", stage, placed[i]);
				snprintf(to, sizeof(to), "%s/%s", dir, placed[i]);
				rename(to, from);
			}
			return cli_fail(to, "cannot move into place: %s", strerror(err));
		}
	}
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return EXIT_OK;
}

/* A home restore may fill: no identity, and nothing restore would have to replace. */
static int check_empty(const char *dir)
{
	for (size_t i = N_PLACED; i-- > 0;) {
		char path[HOME_PATH_MAX + 64];
		snprintf(path, sizeof(path), "%s/%s", dir, placed[i]);
		if (access(path, F_OK) != 0 || rmdir(path) == 0)
			continue;
		if (strcmp(placed[i], "identity.key") == 0)
			return cli_fail(dir,
					"a node already lives here (identity.key exists): restore "
					"into a new home with --home DIR");
		return cli_fail(path,
				"already exists: restore fills only a new home; move it away");
	}
	return EXIT_OK;
}

static int take_lock(const char *dir, bool *created)
{
	char path[HOME_PATH_MAX + 32];
	snprintf(path, sizeof(path), "%s/daemon.lock", dir);
	*created = access(path, F_OK) != 0;
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return cli_fail(path, "%s", strerror(errno)), -1;
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		close(fd);
		cli_fail(dir,
			 "a tern daemon runs on this home (daemon.lock is held): stop it first");
		return -1;
	}
	return fd;
}

int cmd_restore(int argc, char **argv)
{
	if (argc != 2 || argv[1][0] == '-')
		return cli_usage("restore", argc < 2 ? "restore takes the backup FILE to read"
						     : "restore takes one FILE and no option");
	const char *file = argv[1];
	char dir[HOME_PATH_MAX], pass[256] = "", lockpath[HOME_PATH_MAX + 32];
	if (home_dir(dir, sizeof(dir)) < 0)
		return cli_fail("restore", "no home directory: give --home DIR or set TERN_HOME");
	if (home_check_owner(dir) != EXIT_OK)
		return EXIT_FAIL;
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cli_fail(file, "%s", strerror(errno));
	uint8_t header[PWSTREAM_HEADER_LEN];
	int n = read_full(fd, header, sizeof(header));
	if (n < (int)sizeof(header) || !pwstream_is_header(header, (size_t)n)) {
		close(fd);
		return cli_fail(file, "%s", n < 0 ? strerror(-n) : "not a tern backup");
	}
	bool made_home = access(dir, F_OK) != 0, made_lock = false;
	int err = home_make(dir);
	if (err < 0) {
		close(fd);
		return cli_fail(dir, "cannot create the node home: %s", strerror(-err));
	}
	struct restore r = {.out = -1};
	struct pwstream *ps = NULL;
	int ret = EXIT_FAIL;
	int lock = take_lock(dir, &made_lock);
	if (lock < 0 || check_empty(dir) != EXIT_OK)
		goto out;
	remove_stale_stages(dir);
	if (home_passphrase("Backup passphrase: ", false, pass, sizeof(pass)) < 0)
		goto out;
	err = pwstream_open_new(pass, header, &ps);
	if (err < 0) {
		cli_fail(file, "%s",
			 err == -EACCES	  ? "wrong passphrase (or a damaged header)"
			 : err == -E2BIG  ? "it asks for more Argon2id work than tern uses: not a "
					    "backup tern wrote"
			 : err == -EINVAL ? "a backup of another version of tern"
					  : "out of memory");
		goto out;
	}
	snprintf(r.stage, sizeof(r.stage), "%s/.restore-XXXXXX", dir);
	if (!mkdtemp(r.stage)) {
		r.stage[0] = '\0';
		cli_fail(dir, "cannot make a staging directory: %s", strerror(errno));
		goto out;
	}
	if (unpack(file, fd, ps, &r) != EXIT_OK || check_store(r.stage) != EXIT_OK ||
	    place(dir, r.stage) != EXIT_OK)
		goto out;
	char size[32];
	format_size(r.bytes, size, sizeof(size));
	printf("restored %s into %s: identity, store, %llu payload file(s); %llu files, %s\n", file,
	       dir, (unsigned long long)r.payloads, (unsigned long long)r.files, size);
	printf("`tern --home %s id` shows the restored identity. Never run this node and the one "
	       "it was copied from at the same time.\n",
	       dir);
	ret = EXIT_OK;
out:
	explicit_bzero(pass, sizeof(pass));
	pwstream_free(ps);
	if (r.out >= 0)
		close(r.out);
	if (r.stage[0])
		remove_stage(r.stage);
	close(fd);
	if (lock >= 0) {
		snprintf(lockpath, sizeof(lockpath), "%s/daemon.lock", dir);
		if (ret != EXIT_OK && made_lock)
			unlink(lockpath);
		close(lock);
	}
	if (ret != EXIT_OK && made_home)
		rmdir(dir);
	return ret;
}
