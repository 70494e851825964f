/* SBD parcels: a bundle sealed for the next hop and cut up; messages spooled until whole. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "relay/cli.h"
#include "relay/sbd.h"

#define ID_LEN	   6
#define NONCE_TAG  "tern-sbd"
#define SPOOL_NAME 20 /* "<12 hex>.<3 digits>" and the NUL */

static void nonce_of(const uint8_t id[static ID_LEN], uint8_t nonce[static HOP_NONCE_LEN])
{
	memset(nonce, 0, HOP_NONCE_LEN);
	memcpy(nonce, NONCE_TAG, 8);
	memcpy(nonce + 8, id, ID_LEN);
}

static void ad_of(const uint8_t id[static ID_LEN], unsigned count, uint8_t ad[static 8])
{
	ad[0] = SBD_PARCEL_VERSION;
	memcpy(ad + 1, id, ID_LEN);
	ad[7] = (uint8_t)count;
}

unsigned sbd_parcel_pieces(size_t len, size_t piece_max)
{
	if (piece_max <= SBD_PIECE_HEAD)
		return 0;
	size_t body = piece_max - SBD_PIECE_HEAD, sealed = len + HOP_TAG_LEN;
	size_t n = (sealed + body - 1) / body;
	return n <= SBD_PIECES_MAX ? (unsigned)n : 0;
}

int sbd_parcel_cut(struct node *n, const struct identity_public *peer, const uint8_t *bundle,
		   size_t len, size_t piece_max, sbd_piece_fn fn, void *ctx)
{
	if (piece_max <= SBD_PIECE_HEAD)
		return -EINVAL;
	unsigned count = sbd_parcel_pieces(len, piece_max);
	if (!count)
		return -EFBIG;
	size_t sealed = len + HOP_TAG_LEN, body = piece_max - SBD_PIECE_HEAD;
	uint8_t *ct = malloc(sealed), *piece = malloc(piece_max);
	int ret = ct && piece ? 0 : -ENOMEM;
	uint8_t id[ID_LEN], nonce[HOP_NONCE_LEN], ad[8];
	tern_random(id, sizeof(id));
	nonce_of(id, nonce);
	ad_of(id, count, ad);
	if (ret == 0)
		ret = hop_seal(n->id, peer, nonce, ad, sizeof(ad), bundle, len, ct);
	for (unsigned i = 0; ret == 0 && i < count; i++) {
		size_t off = (size_t)i * body, take = sealed - off < body ? sealed - off : body;
		memcpy(piece, ad, 7);
		piece[7] = (uint8_t)i;
		piece[8] = (uint8_t)count;
		memcpy(piece + SBD_PIECE_HEAD, ct + off, take);
		ret = fn(ctx, piece, SBD_PIECE_HEAD + take, i, count);
	}
	free(ct);
	free(piece);
	return ret;
}

/* ---- the spool ---- */

static int write_file(const char *dir, const char *name, const uint8_t *buf, size_t len)
{
	char tmp[4096], path[4096];
	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	int ret = 0;
	if (write(fd, buf, len) != (ssize_t)len || fsync(fd) < 0)
		ret = errno ? -errno : -EIO;
	if (close(fd) < 0 && ret == 0)
		ret = -errno;
	if (ret == 0 && rename(tmp, path) < 0)
		ret = -errno;
	if (ret < 0) {
		unlink(tmp);
		return ret;
	}
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
}

/* Reads a spooled message (at most cap bytes): its length, or -errno. */
static ssize_t read_file(const char *dir, const char *name, uint8_t *buf, size_t cap)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, cap);
	int err = errno;
	close(fd);
	return n < 0 ? -err : n;
}

/* Removes spool files older than SBD_SPOOL_MAX_AGE_S, and leftovers of a crashed write. */
static void sweep(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	time_t now = time(NULL);
	struct dirent *e;
	while ((e = readdir(d))) {
		struct stat st;
		if (e->d_name[0] == '.' && strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
		    fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    now - st.st_mtime > 3600)
			unlinkat(dirfd(d), e->d_name, 0);
		else if (e->d_name[0] != '.' &&
			 fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			 now - st.st_mtime > SBD_SPOOL_MAX_AGE_S)
			unlinkat(dirfd(d), e->d_name, 0);
	}
	closedir(d);
}

static void piece_name(const char *hexid, unsigned index, char out[static SPOOL_NAME])
{
	snprintf(out, SPOOL_NAME, "%s.%03u", hexid, index);
}

struct opening {
	struct node *n;
	const uint8_t *nonce, *ad, *ct;
	size_t len;
	uint8_t *out;
	struct store_peer who;
};

static int try_peer(void *ctx, const struct store_peer *p)
{
	struct opening *o = ctx;
	struct identity_public pub = {.epoch = p->epoch};
	memcpy(pub.sign_pk, p->sign_pk, 32);
	memcpy(pub.box_pk, p->box_pk, 32);
	if (hop_open(o->n->id, &pub, o->nonce, o->ad, 8, o->ct, o->len, o->out) < 0)
		return 0;
	o->who = *p;
	return 1;
}

/* The parcel is whole: its sealed bytes in order, opened, the bundle taken. */
static int open_parcel(struct node *n, const char *spool, const uint8_t id[static ID_LEN],
		       unsigned count, struct sbd_take_result *res)
{
	uint8_t piece[SBD_PIECE_HEAD + 4096];
	uint8_t *ct = malloc((size_t)count * sizeof(piece)), *pt = NULL;
	if (!ct)
		return -ENOMEM;
	size_t len = 0;
	char name[SPOOL_NAME];
	for (unsigned i = 0; i < count; i++) {
		piece_name(res->parcel, i, name);
		ssize_t r = read_file(spool, name, piece, sizeof(piece));
		if (r <= SBD_PIECE_HEAD) {
			/* Changed on disk since it was checked: taken again when it comes again. */
			free(ct);
			return r < 0 ? (int)r : -EIO;
		}
		memcpy(ct + len, piece + SBD_PIECE_HEAD, (size_t)r - SBD_PIECE_HEAD);
		len += (size_t)r - SBD_PIECE_HEAD;
	}
	uint8_t nonce[HOP_NONCE_LEN], ad[8];
	nonce_of(id, nonce);
	ad_of(id, count, ad);
	int ret = 0;
	pt = malloc(len);
	if (!pt) {
		free(ct);
		return -ENOMEM;
	}
	struct opening o = {.n = n, .nonce = nonce, .ad = ad, .ct = ct, .len = len, .out = pt};
	ret = len > HOP_TAG_LEN ? store_peer_foreach(n->store, try_peer, &o) : 0;
	if (ret < 0)
		goto out;
	if (ret == 0) {
		/* Kept aside, not deleted: a peer added later may be the one who sealed it. */
		res->kind = SBD_BAD_PARCEL;
		snprintf(res->why, sizeof(res->why),
			 "parcel %s is whole (%u messages) but no peer's key opens it: it is "
			 "damaged, or from a node that is not a peer here",
			 res->parcel, count);
		for (unsigned i = 0; i < count; i++) {
			char from[4096], to[4096];
			piece_name(res->parcel, i, name);
			snprintf(from, sizeof(from), "%s/%s", spool, name);
			snprintf(to, sizeof(to), "%s/%s.bad", spool, name);
			rename(from, to);
		}
		ret = 0;
		goto out;
	}
	snprintf(res->peer, sizeof(res->peer), "%s", o.who.name);
	struct ingest *in;
	ret = ingest_new(n, &in);
	if (ret < 0)
		goto out;
	ingest_feed(in, pt, len - HOP_TAG_LEN);
	ret = ingest_finish(in, &res->ingest);
	if (ret < 0)
		goto out; /* the store failed: the messages stay spooled for the next try */
	res->kind = res->ingest.verdict == INGEST_REJECTED ? SBD_BAD_BUNDLE : SBD_DONE;
	if (res->kind == SBD_BAD_BUNDLE)
		snprintf(res->why, sizeof(res->why), "%s", res->ingest.reason);
	for (unsigned i = 0; i < count; i++) {
		char path[4096];
		piece_name(res->parcel, i, name);
		snprintf(path, sizeof(path), "%s/%s", spool, name);
		unlink(path);
	}
out:
	free(ct);
	free(pt);
	return ret;
}

int sbd_take(struct node *n, const char *spool, const uint8_t *msg, size_t len,
	     struct sbd_take_result *res)
{
	memset(res, 0, sizeof(*res));
	res->kind = SBD_BAD_PIECE;
	if (len <= SBD_PIECE_HEAD || msg[0] != SBD_PARCEL_VERSION || msg[8] == 0 ||
	    msg[7] >= msg[8] || len > SBD_PIECE_HEAD + 4096) {
		snprintf(res->why, sizeof(res->why), "%s",
			 len <= SBD_PIECE_HEAD		? "too short for a tern SBD message"
			 : msg[0] != SBD_PARCEL_VERSION ? "not a tern SBD message (its first byte)"
			 : len > SBD_PIECE_HEAD + 4096	? "longer than any SBD message"
							: "its index is not below its count");
		return 0;
	}
	const uint8_t *id = msg + 1;
	unsigned index = msg[7], count = msg[8];
	hex_encode(id, ID_LEN, res->parcel);
	res->count = count;
	if (mkdir(spool, 0700) < 0 && errno != EEXIST)
		return -errno;
	sweep(spool);
	char name[SPOOL_NAME];
	piece_name(res->parcel, index, name);
	uint8_t old[SBD_PIECE_HEAD + 4096];
	ssize_t r = read_file(spool, name, old, sizeof(old));
	if (r >= 0 && (size_t)r == len && !memcmp(old, msg, len)) {
		res->kind = SBD_DUPLICATE;
	} else {
		/* A different message under the same name is damage (or a forgery): the parcel's
		 * tag decides which copy was right, so the newer one is tried too. */
		int ret = write_file(spool, name, msg, len);
		if (ret < 0)
			return ret;
		res->kind = SBD_KEPT;
	}
	/* Whole? Every index present, each with this count. */
	for (unsigned i = 0; i < count; i++) {
		piece_name(res->parcel, i, name);
		r = read_file(spool, name, old, SBD_PIECE_HEAD);
		if (r == SBD_PIECE_HEAD && old[8] == count)
			res->have++;
	}
	if (res->have < count)
		return 0;
	/* Whole (perhaps since a try the store failed): opened now. */
	return open_parcel(n, spool, id, count, res);
}
