/* tern inbox, read, save: what was delivered, opened again from its sealed form only when asked
 * for. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "relay/cli.h"

#define MEM_SPOOL_MAX (1024 * 1024)

static void sender_label(struct node *n, const uint8_t pk[static 32], char *out, size_t len)
{
	struct store_contact c;
	if (store_contact_by_key(n->store, pk, &c) == 0) {
		snprintf(out, len, "%s", c.name);
		return;
	}
	char fpr[IDENTITY_FINGERPRINT_LEN];
	identity_fingerprint(pk, fpr);
	snprintf(out, len, "unknown %.11s", fpr);
}

/* A time for --json: a UTC string, or null where unknown (docs/api.md, as the API says it). */
static void json_time(uint64_t unix_ms)
{
	char t[32];
	format_time(unix_ms, t, sizeof(t));
	if (unix_ms == 0 || !strcmp(t, "unknown"))
		printf("null");
	else
		printf("\"%s\"", t);
}

struct inbox_list {
	struct node *n;
	bool json;
	int count;
};

static int print_entry(void *ctx, const struct store_inbox *e)
{
	struct inbox_list *l = ctx;
	char id[33], who[96], when[32], size[32];
	hex_encode(e->msg_id, 16, id);
	sender_label(l->n, e->sender_pk, who, sizeof(who));
	format_time(e->received_unix_ms, when, sizeof(when));
	const char *kind = e->kind == ENVELOPE_FILE ? "file" : "text";
	if (l->json) {
		printf("%s\n  {\"id\": \"%s\", \"from\": ", l->count ? "," : "", id);
		json_string(stdout, who);
		printf(", \"received\": ");
		json_time(e->received_unix_ms);
		printf(", \"sent\": ");
		json_time(e->created_unix_ms);
		printf(", \"kind\": \"%s\", \"size\": %llu, \"name\": ", kind,
		       (unsigned long long)e->size);
		json_string(stdout, e->name);
		printf(", \"read\": %s}", e->read ? "true" : "false");
	} else {
		char name[sizeof(e->name) * 2];
		safe_text(e->name, name, sizeof(name));
		format_size(e->size, size, sizeof(size));
		printf("%.12s  %-20s %s  %s %10s  %s\n", id, who, when, kind, size, name);
	}
	l->count++;
	return 0;
}

int cmd_inbox(int argc, char **argv)
{
	static const struct option opts[] = {{"json", no_argument, NULL, 'j'}, {0}};
	struct inbox_list l = {0};
	int c;
	optind = 0;
	while ((c = getopt_long(argc, argv, "j", opts, NULL)) != -1) {
		if (c != 'j')
			return cli_usage("inbox", "unknown option %s", argv[optind - 1]);
		l.json = true;
	}
	if (optind != argc)
		return cli_usage("inbox", "unexpected argument %s", argv[optind]);
	struct node n;
	if (home_open(&n) != EXIT_OK)
		return EXIT_FAIL;
	l.n = &n;
	if (l.json)
		printf("[");
	int err = store_inbox_foreach(n.store, print_entry, &l);
	if (l.json)
		printf("%s]\n", l.count ? "\n" : "");
	else if (l.count == 0)
		fprintf(stderr, "the inbox is empty\n");
	node_close(&n);
	return err < 0 ? cli_fail("inbox", "%s", strerror(-err)) : EXIT_OK;
}

static int find_entry(struct node *n, const char *id, struct store_inbox *e)
{
	int err = store_inbox_find(n->store, id, e);
	if (err == -ENOENT)
		return cli_fail(id, "no such message in the inbox");
	if (err == -EEXIST)
		return cli_fail(id, "more than one message starts so: give more digits");
	if (err == -EINVAL)
		return cli_fail(id, "not a message id (at least 4 hex digits)");
	if (err < 0)
		return cli_fail(id, "%s", strerror(-err));
	return EXIT_OK;
}

static int open_failed(const char *id, int err)
{
	if (err == -EBADMSG || err == -EKEYREJECTED)
		return cli_fail(id, "the stored message no longer verifies (damaged store?)");
	return cli_fail(id, "cannot open: %s", strerror(-err));
}

struct file_sink {
	int fd;
};

static int write_all(void *ctx, const uint8_t *buf, size_t len)
{
	struct file_sink *f = ctx;
	while (len) {
		ssize_t n = write(f->fd, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Holds plaintext until it is verified: in memory while small, then in an unnamed file. */
struct spool {
	uint8_t *mem;
	size_t len;
	int fd;
	const char *dir;
};

static int spool_write(void *ctx, const uint8_t *buf, size_t len)
{
	struct spool *s = ctx;
	if (s->fd < 0 && s->len + len <= MEM_SPOOL_MAX) {
		memcpy(s->mem + s->len, buf, len);
		s->len += len;
		return 0;
	}
	if (s->fd < 0) {
		/* Unnamed: a crash leaves no unverified plaintext behind. */
		s->fd = open(s->dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		if (s->fd < 0)
			return -errno;
		int ret = write_all(&(struct file_sink){s->fd}, s->mem, s->len);
		if (ret < 0)
			return ret;
	}
	return write_all(&(struct file_sink){s->fd}, buf, len);
}

/* On a terminal, the sender's text must not drive it: controls other than \n and \t go. */
static void defang(uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if ((buf[i] < 0x20 && buf[i] != '\n' && buf[i] != '\t') || buf[i] == 0x7f)
			buf[i] = '?';
		else if (buf[i] == 0xc2 && i + 1 < len && buf[i + 1] >= 0x80 && buf[i + 1] < 0xa0)
			buf[i] = buf[i + 1] = '?';
	}
}

static int spool_release(struct spool *s, FILE *out, bool tty)
{
	if (s->fd < 0) {
		if (tty)
			defang(s->mem, s->len);
		return fwrite(s->mem, 1, s->len, out) == s->len ? 0 : -EIO;
	}
	if (lseek(s->fd, 0, SEEK_SET) != 0)
		return -errno;
	ssize_t got;
	s->len = MEM_SPOOL_MAX;
	while ((got = read(s->fd, s->mem, MEM_SPOOL_MAX)) > 0) {
		if (tty)
			defang(s->mem, (size_t)got);
		if (fwrite(s->mem, 1, (size_t)got, out) != (size_t)got)
			return -EIO;
	}
	return got < 0 ? -errno : 0;
}

int cmd_read(int argc, char **argv)
{
	if (argc != 2)
		return cli_usage("read", "name one message id");
	struct node n;
	struct store_inbox e;
	struct envelope_meta meta;
	char dir[HOME_PATH_MAX];
	struct spool s = {.fd = -1, .dir = dir};
	int ret = EXIT_FAIL;
	if (home_dir(dir, sizeof(dir)) < 0 || home_open(&n) != EXIT_OK)
		return EXIT_FAIL;
	if (find_entry(&n, argv[1], &e) != EXIT_OK)
		goto out;
	if (e.kind != ENVELOPE_TEXT) {
		char name[sizeof(e.name) * 2];
		safe_text(e.name, name, sizeof(name));
		cli_fail(argv[1], "is a file (%s): use `tern save %s DIR`", name, argv[1]);
		goto out;
	}
	s.mem = malloc(MEM_SPOOL_MAX);
	if (!s.mem) {
		cli_fail("read", "out of memory");
		goto out;
	}
	int err = node_open_inbox(&n, &e, spool_write, &s, &meta);
	if (err < 0) {
		open_failed(argv[1], err);
		goto out;
	}
	err = spool_release(&s, stdout, isatty(STDOUT_FILENO));
	if (err == 0 && s.len && s.mem[s.len - 1] != '\n' && s.fd < 0 && isatty(STDOUT_FILENO))
		putchar('\n');
	if (err < 0 || fflush(stdout) != 0) {
		cli_fail("stdout", "cannot write");
		goto out;
	}
	store_inbox_mark_read(n.store, e.rowid);
	ret = EXIT_OK;
out:
	if (s.mem) {
		explicit_bzero(s.mem, s.len);
		free(s.mem);
	}
	if (s.fd >= 0)
		close(s.fd);
	node_close(&n);
	return ret;
}

/* A name from the envelope is the sender's word: keep only a harmless base name. */
static void safe_name(const char *name, const char *id, char *out, size_t len)
{
	const char *base = name;
	for (const char *p = name; *p; p++)
		if (*p == '/' || *p == '\\')
			base = p + 1;
	snprintf(out, len, "%s", base);
	for (char *p = out; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '_';
	if (out[0] == '.')
		out[0] = '_';
	if (!out[0] || strcmp(out, "_") == 0 || strcmp(out, "_.") == 0)
		snprintf(out, len, "received-%.12s", id);
}

/*
 * Gives the verified file its name, or "name (2)" and so on; never replaces a file.
 * With an unnamed O_TMPFILE (tmp == NULL) linkat names it; else tmp is renamed.
 */
static int place_file(int dfd, int fd, const char *tmp, const char *name, char *final, size_t len)
{
	const char *dot = strrchr(name, '.');
	size_t stem = dot && dot != name ? (size_t)(dot - name) : strlen(name);
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	for (int i = 1; i < 1000; i++) {
		if (i == 1)
			snprintf(final, len, "%s", name);
		else
			snprintf(final, len, "%.*s (%d)%s", (int)stem, name, i, name + stem);
		int r = tmp ? renameat2(dfd, tmp, dfd, final, RENAME_NOREPLACE)
			    : linkat(AT_FDCWD, proc, dfd, final, AT_SYMLINK_FOLLOW);
		if (r == 0)
			return 0;
		if (errno == EEXIST)
			continue;
		if (!tmp || (errno != EINVAL && errno != ENOSYS))
			return -errno;
		/* The filesystem cannot refuse to replace; check first (racy, but only with
		 * ourselves). */
		if (faccessat(dfd, final, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
			continue;
		return renameat(dfd, tmp, dfd, final) == 0 ? 0 : -errno;
	}
	return -EEXIST;
}

/*
 * Plaintext is written before it is verified, so it goes to an unnamed file that
 * vanishes with a crash; where the filesystem has no O_TMPFILE (FAT), to a random
 * hidden name that nobody else uses.
 */
static int open_unverified(int dfd, char *tmp, size_t len, bool *named)
{
	int fd = openat(dfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
	*named = false;
	if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
		return fd;
	uint8_t rnd[8];
	char hex[17];
	tern_random(rnd, sizeof(rnd));
	hex_encode(rnd, sizeof(rnd), hex);
	snprintf(tmp, len, ".tern-%s.part", hex);
	*named = true;
	return openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
}

int cmd_save(int argc, char **argv)
{
	if (argc != 3)
		return cli_usage("save", "name one message id and one directory");
	const char *id = argv[1], *dir = argv[2];
	struct node n;
	struct store_inbox e;
	struct envelope_meta meta;
	char name[ENVELOPE_NAME_MAX + 1], final[ENVELOPE_NAME_MAX + 16], tmp[64];
	struct file_sink sink = {.fd = -1};
	bool named = false;
	int ret = EXIT_FAIL;

	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return cli_fail(dir, "%s", strerror(errno));
	if (home_open(&n) != EXIT_OK) {
		close(dfd);
		return EXIT_FAIL;
	}
	if (find_entry(&n, id, &e) != EXIT_OK)
		goto out;
	char hex[33];
	hex_encode(e.msg_id, 16, hex);
	safe_name(e.kind == ENVELOPE_FILE ? e.name : "", hex, name, sizeof(name));
	sink.fd = open_unverified(dfd, tmp, sizeof(tmp), &named);
	if (sink.fd < 0) {
		cli_fail(dir, "cannot write here: %s", strerror(errno));
		goto out;
	}
	int err = node_open_inbox(&n, &e, write_all, &sink, &meta);
	if (err < 0) {
		open_failed(id, err);
		goto out;
	}
	/* Received files stay 0600: they may be sensitive, and the user can widen that. */
	if (fsync(sink.fd) != 0) {
		cli_fail(dir, "cannot write the file: %s", strerror(errno));
		goto out;
	}
	err = place_file(dfd, sink.fd, named ? tmp : NULL, name, final, sizeof(final));
	if (err < 0) {
		cli_fail(dir, "cannot place the file: %s", strerror(-err));
		goto out;
	}
	named = false;
	if (fsync(dfd) != 0) {
		cli_fail(dir, "cannot make the file durable: %s", strerror(errno));
		goto out;
	}
	store_inbox_mark_read(n.store, e.rowid);
	printf("%s/%s\n", dir, final);
	ret = EXIT_OK;
out:
	if (named)
		unlinkat(dfd, tmp, 0);
	if (sink.fd >= 0)
		close(sink.fd);
	close(dfd);
	node_close(&n);
	return ret;
}
