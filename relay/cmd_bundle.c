/* tern bundle export/import: queued bundles out as raw BPv7 files, and raw files in, each judged
 * alone. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "relay/cli.h"

#define IO_BUF (64 * 1024)

struct export_file {
	int fd;
	uint8_t *buf;
	size_t used;
};

static int flush_buf(struct export_file *f)
{
	size_t off = 0;
	while (off < f->used) {
		ssize_t n = write(f->fd, f->buf + off, f->used - off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		off += (size_t)n;
	}
	f->used = 0;
	return 0;
}

static int buffered_write(void *ctx, const uint8_t *buf, size_t len)
{
	struct export_file *f = ctx;
	while (len) {
		size_t n = IO_BUF - f->used < len ? IO_BUF - f->used : len;
		memcpy(f->buf + f->used, buf, n);
		f->used += n;
		buf += n;
		len -= n;
		if (f->used == IO_BUF) {
			int ret = flush_buf(f);
			if (ret < 0)
				return ret;
		}
	}
	return 0;
}

struct export_run {
	struct node *n;
	int dfd;
	const char *dir;
	struct export_file file;
	int written, failed;
	uint64_t bytes;
};

/* temp name, fsync, rename: a reader of DIR sees a whole bundle file or none. */
static int export_one(void *ctx, const struct store_bundle *b, const uint8_t *head, size_t headlen)
{
	struct export_run *r = ctx;
	char hex[65], name[80], tmp[96];
	uint64_t len = 0;
	uint8_t rnd[8];
	char rhex[17];
	hex_encode(b->id, 32, hex);
	snprintf(name, sizeof(name), "%s.bundle", hex);
	/* Our own random temp name: another exporter into DIR never shares it. */
	tern_random(rnd, sizeof(rnd));
	hex_encode(rnd, sizeof(rnd), rhex);
	snprintf(tmp, sizeof(tmp), ".%s.part", rhex);

	r->file.fd =
	    openat(r->dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (r->file.fd < 0) {
		cli_fail(r->dir, "cannot write: %s", strerror(errno));
		return -errno;
	}
	r->file.used = 0;
	int err = node_emit(r->n, b, head, headlen, buffered_write, &r->file, &len);
	if (err == 0)
		err = flush_buf(&r->file);
	if (err == 0 && fsync(r->file.fd) != 0)
		err = -errno;
	close(r->file.fd);
	if (err == 0 && renameat(r->dfd, tmp, r->dfd, name) != 0)
		err = -errno;
	if (err == 0 && fsync(r->dfd) != 0)
		err = -errno;
	if (err == -ELOOP) {
		unlinkat(r->dfd, tmp, 0);
		/* Its hop limit is spent: nobody will take it, so it leaves the queue. */
		store_bundle_delete(r->n->store, b->id);
		cli_fail(name, "dropped: one more hop would pass its hop limit");
		return 0;
	}
	if (err < 0) {
		unlinkat(r->dfd, tmp, 0);
		cli_fail(name, "not exported: %s", strerror(-err));
		r->failed++;
		/* A full or failing medium will fail the next file too; a damaged bundle will not.
		 */
		return err == -EBADMSG ? 0 : err;
	}
	printf("%s\n", name);
	r->written++;
	r->bytes += len;
	return 0;
}

static int bundle_export(int argc, char **argv)
{
	if (argc != 3)
		return cli_usage("bundle", "export takes one directory");
	struct export_run r = {.dir = argv[2]};
	r.dfd = open(r.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (r.dfd < 0)
		return cli_fail(r.dir, "%s", strerror(errno));
	struct node n;
	if (home_open(&n) != EXIT_OK) {
		close(r.dfd);
		return EXIT_FAIL;
	}
	r.n = &n;
	r.file.buf = malloc(IO_BUF);
	uint64_t purged = 0;
	int err = r.file.buf ? store_purge_expired(n.store, &n.now, &purged) : -ENOMEM;
	if (err == 0)
		err = store_bundle_foreach(n.store, STORE_QUEUED, &n.now, export_one, &r);
	char size[32];
	format_size(r.bytes, size, sizeof(size));
	fflush(stdout);
	fprintf(stderr, "exported %d bundle%s (%s) to %s", r.written, r.written == 1 ? "" : "s",
		size, r.dir);
	if (r.failed)
		fprintf(stderr, ", %d failed", r.failed);
	fputc('\n', stderr);
	free(r.file.buf);
	close(r.dfd);
	node_close(&n);
	if (err < 0 && err != -EIO && err != -ENOSPC)
		cli_fail("export", "%s", strerror(-err));
	return err < 0 || r.failed ? EXIT_FAIL : EXIT_OK;
}

/* Opens a file to import without following links or blocking on FIFOs and devices. */
static int open_bundle_file(const char *path, char *why, size_t whylen)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, whylen, "%s", errno == ELOOP ? "a symbolic link" : strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(why, whylen, "not a regular file");
		close(fd);
		return -1;
	}
	return fd;
}

static int import_one(struct node *n, const char *path, uint8_t *buf, struct import_tally *t)
{
	char why[200];
	struct ingest_result res;
	struct ingest *in = NULL;
	int fd = open_bundle_file(path, why, sizeof(why));
	if (fd < 0) {
		t->rejected++;
		return cli_fail(path, "rejected: %s", why);
	}
	int err = ingest_new(n, &in);
	ssize_t got = 0;
	while (err == 0 && (got = read(fd, buf, IO_BUF)) > 0)
		if (ingest_feed(in, buf, (size_t)got) != 0)
			break;
	close(fd);
	if (got < 0) {
		ingest_free(in);
		t->rejected++;
		return cli_fail(path, "rejected: cannot read: %s", strerror(errno));
	}
	if (err == 0)
		err = ingest_finish(in, &res);
	if (err < 0) {
		t->rejected++;
		return cli_fail(path, "not stored: %s", strerror(-err));
	}
	return cli_report_ingest(path, &res, t);
}

int cli_report_ingest(const char *path, const struct ingest_result *r, struct import_tally *t)
{
	const struct ingest_result res = *r;
	switch (res.verdict) {
	case INGEST_DELIVERED: {
		char id[33];
		hex_encode(res.inbox.msg_id, 16, id);
		printf("%s: delivered, message %.12s (%s)\n", path, id,
		       res.inbox.kind == ENVELOPE_FILE ? "file" : "text");
		t->delivered++;
		receipt_batch_add(&t->to_senders, res.inbox.sender_pk, res.inbox.msg_id);
		break;
	}
	case INGEST_RECEIPT:
		printf("%s: delivery receipt for %u message%s\n", path, res.receipts,
		       res.receipts == 1 ? "" : "s");
		t->receipts++;
		break;
	case INGEST_QUEUED:
		printf("%s: queued for ipn:%llu\n", path, (unsigned long long)res.dest_node);
		t->queued++;
		break;
	case INGEST_DUPLICATE:
		printf("%s: duplicate, already here\n", path);
		t->duplicate++;
		break;
	case INGEST_PASSED: /* only when asked for with ingest_no_relay */
		break;
	case INGEST_REJECTED:
		t->rejected++;
		fflush(stdout);
		return cli_fail(path, "rejected: %s", res.reason);
	}
	return EXIT_OK;
}

static int bundle_import(int argc, char **argv)
{
	if (argc < 3)
		return cli_usage("bundle", "import takes one or more files");
	struct node n;
	if (home_open(&n) != EXIT_OK)
		return EXIT_FAIL;
	uint8_t *buf = malloc(IO_BUF);
	struct import_tally t = {0};
	if (!buf) {
		node_close(&n);
		return cli_fail("import", "out of memory");
	}
	for (int i = 2; i < argc; i++)
		import_one(&n, argv[i], buf, &t);
	free(buf);
	cli_import_done(&n, "import", &t);
	return t.rejected ? EXIT_FAIL : EXIT_OK;
}

void cli_import_done(struct node *n, const char *what, struct import_tally *t)
{
	unsigned acks = 0;
	int err = receipt_batch_flush(n, &t->to_senders, &acks);
	if (err < 0)
		cli_fail(what, "delivery receipts not queued: %s", strerror(-err));
	node_close(n);
	api_notify_queued();
	fflush(stdout);
	fprintf(stderr, "%d delivered, %d queued, %d duplicate, %d rejected", t->delivered,
		t->queued, t->duplicate, t->rejected);
	if (t->receipts)
		fprintf(stderr, ", %d receipt%s", t->receipts, t->receipts == 1 ? "" : "s");
	if (acks)
		fprintf(stderr, "; %u delivery receipt%s queued for the senders", acks,
			acks == 1 ? "" : "s");
	fputc('\n', stderr);
}

int cmd_bundle(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "export") == 0)
		return bundle_export(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "import") == 0)
		return bundle_import(argc, argv);
	return cli_usage("bundle", "needs export DIR or import FILE...");
}
