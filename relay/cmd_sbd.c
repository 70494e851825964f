/* tern sbd ingest/outbox: Iridium SBD messages in from the gateway, and out for it. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "relay/cli.h"
#include "relay/sbd.h"
#include "transports/sbd.h"

/* One message: an SBD attachment is at most SBD_MO_MAX bytes; a little more is refused. */
#define MSG_CAP 4096

static int read_message(const char *path, uint8_t *buf, size_t *len)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return cli_fail(path, "rejected: %s",
				errno == ELOOP ? "a symbolic link" : strerror(errno));
	struct stat st;
	ssize_t n = -1;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size <= MSG_CAP)
		n = read(fd, buf, MSG_CAP);
	int err = errno;
	close(fd);
	if (!S_ISREG(st.st_mode))
		return cli_fail(path, "rejected: not a regular file");
	if (st.st_size > MSG_CAP)
		return cli_fail(path, "rejected: %lld bytes, larger than any SBD message",
				(long long)st.st_size);
	if (n < 0)
		return cli_fail(path, "rejected: cannot read: %s", strerror(err));
	*len = (size_t)n;
	return EXIT_OK;
}

/* A message of this run that went into the spool: it waits unless its parcel comes whole. */
struct waiting {
	char parcel[13];
	unsigned index;
};

/* Notes a spooled message once (a file given twice is one message). */
static void wait_add(struct waiting *w, size_t *n, const char *parcel, unsigned index)
{
	for (size_t i = 0; i < *n; i++)
		if (w[i].index == index && !strcmp(w[i].parcel, parcel))
			return;
	snprintf(w[*n].parcel, sizeof(w[*n].parcel), "%s", parcel);
	w[(*n)++].index = index;
}

/* The parcel was opened (or set aside): none of its messages waits any more. */
static void wait_drop(struct waiting *w, size_t *n, const char *parcel)
{
	for (size_t i = 0; i < *n;)
		if (!strcmp(w[i].parcel, parcel))
			w[i] = w[--*n];
		else
			i++;
}

/* "1 message waits for the rest of its parcel", "5 messages wait for the rest of their parcels". */
static void wait_report(const struct waiting *w, size_t n)
{
	size_t parcels = 0;
	for (size_t i = 0; i < n; i++) {
		size_t j = 0;
		while (j < i && strcmp(w[j].parcel, w[i].parcel))
			j++;
		parcels += j == i;
	}
	if (n == 1)
		fprintf(stderr, "1 message waits for the rest of its parcel\n");
	else if (n)
		fprintf(stderr, "%zu messages wait for the rest of their parcel%s\n", n,
			parcels == 1 ? "" : "s");
}

static int sbd_ingest(int argc, char **argv)
{
	if (argc < 3)
		return cli_usage("sbd", "ingest takes one or more files (SBD messages)");
	char spool[4096];
	if (home_path("sbd", spool, sizeof(spool)) < 0)
		return cli_fail("sbd", "the node home's path is too long");
	struct node n;
	if (home_open(&n) != EXIT_OK)
		return EXIT_FAIL;
	struct import_tally t = {0};
	int bad = 0;
	uint8_t *buf = malloc(MSG_CAP);
	struct waiting *waiting = calloc((size_t)argc, sizeof(*waiting));
	size_t n_waiting = 0;
	if (!buf || !waiting) {
		free(buf);
		free(waiting);
		node_close(&n);
		return cli_fail("sbd", "out of memory");
	}
	for (int i = 2; i < argc; i++) {
		size_t len = 0;
		if (read_message(argv[i], buf, &len) != EXIT_OK) {
			bad++;
			continue;
		}
		struct sbd_take_result res;
		int err = sbd_take(&n, spool, buf, len, &res);
		if (err < 0) {
			cli_fail(argv[i], "not taken: %s", strerror(-err));
			bad++;
			continue;
		}
		switch (res.kind) {
		case SBD_KEPT:
		case SBD_DUPLICATE:
			printf("%s: parcel %s, %u of %u messages here%s\n", argv[i], res.parcel,
			       res.have, res.count,
			       res.kind == SBD_DUPLICATE ? " (this one twice)" : "");
			wait_add(waiting, &n_waiting, res.parcel,
				 buf[7] /* its index, in the head (relay/sbd.h) */);
			break;
		case SBD_DONE:
			cli_report_ingest(argv[i], &res.ingest, &t);
			wait_drop(waiting, &n_waiting, res.parcel);
			break;
		case SBD_BAD_PIECE:
		case SBD_BAD_PARCEL:
		case SBD_BAD_BUNDLE:
			fflush(stdout);
			cli_fail(argv[i], "rejected: %s", res.why);
			if (res.kind != SBD_BAD_PIECE)
				wait_drop(waiting, &n_waiting, res.parcel);
			bad++;
			break;
		}
	}
	free(buf);
	t.rejected += bad;
	cli_import_done(&n, "sbd", &t);
	/* Only what still waits now: a parcel made whole by a later file of this run is not. */
	wait_report(waiting, n_waiting);
	free(waiting);
	return bad ? EXIT_FAIL : EXIT_OK;
}

/* ---- outbox: bundles for a peer as MT messages, one file each, for the gateway ---- */

struct membuf {
	uint8_t *buf;
	size_t len, cap;
};

static int mem_sink(void *ctx, const uint8_t *buf, size_t len)
{
	struct membuf *m = ctx;
	if (m->len + len > m->cap)
		return -EFBIG;
	memcpy(m->buf + m->len, buf, len);
	m->len += len;
	return 0;
}

struct outbox {
	struct node *n;
	struct store_peer peer;
	struct identity_public pub;
	const char *dir;
	struct membuf m;
	char parcel[16];
	int bundles, messages, failed, too_big;
};

static int write_piece(void *ctx, const uint8_t *piece, size_t len, unsigned index, unsigned count)
{
	struct outbox *o = ctx;
	(void)count;
	char name[64], path[4096], tmp[4096];
	hex_encode(piece + 1, 6, o->parcel);
	snprintf(name, sizeof(name), "%s-%03u.sbd", o->parcel, index);
	snprintf(path, sizeof(path), "%s/%s", o->dir, name);
	snprintf(tmp, sizeof(tmp), "%s/.%s.part", o->dir, name);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	int err = write(fd, piece, len) == (ssize_t)len && fsync(fd) == 0 ? 0 : -EIO;
	close(fd);
	if (err == 0 && rename(tmp, path) < 0)
		err = -errno;
	if (err < 0) {
		unlink(tmp);
		return err;
	}
	printf("%s\n", path);
	o->messages++;
	return 0;
}

static int outbox_one(void *ctx, const struct store_bundle *b, const uint8_t *head, size_t headlen)
{
	struct outbox *o = ctx;
	struct store_peer via;
	if (node_next_hop(o->n, b->dest_node, &via) < 0 || via.node != o->peer.node ||
	    store_bundle_held_by(o->n->store, b->rowid, o->peer.node))
		return 0;
	char hex[65];
	hex_encode(b->id, 32, hex);
	o->m.len = 0;
	int err = node_emit(o->n, b, head, headlen, mem_sink, &o->m, NULL);
	if (err == 0 && !sbd_parcel_pieces(o->m.len, SBD_MT_MAX))
		err = -EFBIG;
	if (err == -EFBIG || err == -ELOOP || err == -EBADMSG) {
		cli_fail(hex, "not written: %s",
			 err == -EFBIG	 ? "too big for SBD (more than 255 messages)"
			 : err == -ELOOP ? "one more hop would pass its hop limit"
					 : "damaged in the store (quarantined)");
		o->too_big++;
		return 0;
	}
	if (err == 0)
		err = sbd_parcel_cut(o->n, &o->pub, o->m.buf, o->m.len, SBD_MT_MAX, write_piece, o);
	/* Handed over once written: the gateway takes it from here, and it is not written again. */
	if (err == 0)
		err =
		    store_bundle_mark_exported(o->n->store, b->id, o->peer.node, o->n->now.unix_ms);
	if (err == 0)
		err = store_bundle_add_holder(o->n->store, b->id, o->peer.node);
	if (err < 0) {
		cli_fail(hex, "not written: %s", strerror(-err));
		o->failed++;
		return err == -ENOSPC || err == -EIO ? err : 0;
	}
	o->bundles++;
	return 0;
}

static int sbd_outbox(int argc, char **argv)
{
	if (argc != 4)
		return cli_usage("sbd", "outbox takes a peer and a directory");
	struct stat st;
	if (stat(argv[3], &st) < 0 || !S_ISDIR(st.st_mode))
		return cli_fail(argv[3], "%s", errno ? strerror(errno) : "not a directory");
	struct node n;
	if (home_open(&n) != EXIT_OK)
		return EXIT_FAIL;
	struct outbox o = {.n = &n, .dir = argv[3]};
	if (store_peer_get(n.store, argv[2], &o.peer) < 0) {
		node_close(&n);
		return cli_fail(argv[2], "no such peer (tern peer list shows them)");
	}
	memcpy(o.pub.sign_pk, o.peer.sign_pk, 32);
	memcpy(o.pub.box_pk, o.peer.box_pk, 32);
	o.pub.epoch = o.peer.epoch;
	o.m.cap = (size_t)SBD_PIECES_MAX * (SBD_MT_MAX - SBD_PIECE_HEAD);
	o.m.buf = malloc(o.m.cap);
	int err =
	    o.m.buf ? store_bundle_foreach(n.store, STORE_QUEUED, &n.now, outbox_one, &o) : -ENOMEM;
	free(o.m.buf);
	node_close(&n);
	fflush(stdout);
	fprintf(stderr, "%d bundle%s for %s in %d SBD message%s (at most %d bytes each) in %s\n",
		o.bundles, o.bundles == 1 ? "" : "s", argv[2], o.messages,
		o.messages == 1 ? "" : "s", SBD_MT_MAX, argv[3]);
	if (err < 0)
		cli_fail("sbd", "%s", strerror(-err));
	return err < 0 || o.failed || o.too_big ? EXIT_FAIL : EXIT_OK;
}

int cmd_sbd(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "ingest") == 0)
		return sbd_ingest(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "outbox") == 0)
		return sbd_outbox(argc, argv);
	return cli_usage("sbd", "needs ingest FILE... or outbox PEER DIR");
}
