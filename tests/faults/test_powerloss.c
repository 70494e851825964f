/* Power loss (issue 7): a receiver's disk cut mid-workload, again and again; no ACKed bundle lost.
 */
#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "relay/link.h"
#include "relay/link_msg.h"
#include "relay/node.h"
#include "store/store_testing.h"
#include "tests/faults/powerloss_vfs.h"
#include "tests/unit/test.h"
#include "tests/testnode.h"

/*
 * Two nodes through the real link engine, as tests/unit/test_link.c joins them: a sender
 * A (store on the ordinary VFS, never cut) submits small messages for B; the receiver B
 * (store through powerloss_vfs, group commit on as the daemon runs it) takes them, commits,
 * ACKs, sends receipts home. Every ACK that B hands to its transport is a promise (DESIGN.md
 * §6), noted here, in the test's memory, as it leaves. At a random count of operations on
 * B's disk (1 to MAX_OPS, seeded) the power goes: the operation fails, every file reverts to
 * its last sync (or, every other cut on average, to a random mix of synced and unsynced
 * sectors: POWERLOSS_TORN), B's handles die, and B can send nothing more. What B sent
 * before reaches A (it was on the wire). Then B's store is reopened (one reopen in eight is
 * cut again, during recovery, and retried), PRAGMA integrity_check must say ok, and every
 * bundle B ever ACKed must be there, DELIVERED, with the payload bytes A sealed (a hash);
 * each newly ACKed one is also opened from B's inbox and compared with its plaintext. The
 * workload goes on from the recovered state: A resends what was not ACKed. B gets a fresh
 * store (same identity) every TERN_POWERLOSS_GEN cuts (25), which bounds memory and the
 * checks; every cut checks all that the current store ever ACKed.
 *
 * Directory entries: by default a sync of any file also makes earlier creates and deletes
 * on B's disk durable, as ext4 and XFS do; TERN_POWERLOSS_STRICT_DIRS=1 keeps them volatile
 * until the file's own sync or xDelete's syncDir (POSIX's bare minimum). Under that model
 * the test reports losses in synchronous=FULL too: the rollback journal of the transaction
 * that switches a new, empty database to WAL is synced, then unlinked without a directory
 * sync; a cut brings it back as a hot journal, whose rollback truncates the database to its
 * original 0 pages (see docs/RELIABILITY.md, power loss).
 *
 * Limit: plaintexts stay under PLAIN_MAX (48 KiB), so every transfer is held in memory
 * (link_limits.small_max) and every payload goes into SQLite: payload files (1 MiB or more,
 * <db>-payloads/) and stage files live on the real file system, outside the shim, and are
 * not cut here.
 *
 * Then the same with store_testing_synchronous_normal: a commit no longer syncs the WAL,
 * and the test must see ACKed bundles vanish (losses > 0), or it proves nothing.
 *
 * Short form by default (200 cuts, 30 weakened); the long form:
 *   TERN_POWERLOSS_CUTS=1000 TERN_POWERLOSS_WEAK_CUTS=100 TERN_POWERLOSS_SEED=1 \
 *       build/tests/faults/test_powerloss
 * The seed drives the workload and the cuts; keys and envelopes are random, so counts of
 * operations differ a little from run to run.
 */

static uint64_t gen_cuts = 25; /* TERN_POWERLOSS_GEN */
#define MAX_OPS	  600
#define MAX_STEPS 4000
#define PLAIN_MAX (48 * 1024)
#define IN_FLIGHT 12 /* submitted and not yet ACKed, at most */

static uint64_t seed_state;

static uint64_t rnd(void)
{
	uint64_t z = (seed_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t env_u64(const char *name, uint64_t def)
{
	const char *v = getenv(name);
	return v && *v ? strtoull(v, NULL, 10) : def;
}

/* ---- what A sent, and what B promised (the test's memory, outside both nodes) ---- */

struct sent {
	uint8_t id[32];
	uint32_t seed, len;
	uint64_t hash; /* FNV-1a of the sealed payload as A stored it */
	int gen;       /* B's store generation that ACKed it */
	bool acked, verified, lost, damaged;
};

static struct {
	struct sent *v;
	size_t n, cap;
	uint32_t *slot; /* open addressing: index + 1, 0 empty */
	size_t n_slot;
	size_t *gen_acked; /* indices ACKed by the current generation of B */
	size_t n_gen, cap_gen;
	size_t n_acked;
	int gen;
	uint64_t unknown_acks;
} book;

static uint64_t id_key(const uint8_t id[32])
{
	uint64_t k;
	memcpy(&k, id, 8);
	return k;
}

static void book_index(size_t i)
{
	size_t m = book.n_slot - 1, h = id_key(book.v[i].id) & m;
	while (book.slot[h])
		h = (h + 1) & m;
	book.slot[h] = (uint32_t)(i + 1);
}

static long book_find(const uint8_t id[32])
{
	if (!book.n_slot)
		return -1;
	size_t m = book.n_slot - 1;
	for (size_t h = id_key(id) & m; book.slot[h]; h = (h + 1) & m)
		if (memcmp(book.v[book.slot[h] - 1].id, id, 32) == 0)
			return (long)book.slot[h] - 1;
	return -1;
}

static struct sent *book_add(void)
{
	if (book.n == book.cap) {
		size_t cap = book.cap ? 2 * book.cap : 1024;
		struct sent *v = realloc(book.v, cap * sizeof(*v));
		if (!v)
			abort();
		book.v = v;
		book.cap = cap;
	}
	if (2 * (book.n + 1) > book.n_slot) {
		free(book.slot);
		book.n_slot = book.n_slot ? 2 * book.n_slot : 4096;
		book.slot = calloc(book.n_slot, sizeof(*book.slot));
		if (!book.slot)
			abort();
		for (size_t i = 0; i < book.n; i++)
			book_index(i);
	}
	memset(&book.v[book.n], 0, sizeof(book.v[0]));
	return &book.v[book.n++];
}

static void book_acked(const uint8_t id[32])
{
	long i = book_find(id);
	if (i < 0) {
		book.unknown_acks++;
		return;
	}
	struct sent *e = &book.v[i];
	if (e->acked)
		return;
	e->acked = true;
	e->gen = book.gen;
	book.n_acked++;
	if (book.n_gen == book.cap_gen) {
		size_t cap = book.cap_gen ? 2 * book.cap_gen : 256;
		size_t *v = realloc(book.gen_acked, cap * sizeof(*v));
		if (!v)
			abort();
		book.gen_acked = v;
		book.cap_gen = cap;
	}
	book.gen_acked[book.n_gen++] = (size_t)i;
}

static void book_free(void)
{
	free(book.v);
	free(book.slot);
	free(book.gen_acked);
	memset(&book, 0, sizeof(book));
}

/* ---- nodes and the pipe (as in test_link.c) ------------------------------------- */

struct rec {
	uint8_t *buf;
	size_t len;
};

struct side {
	struct node n;
	char path[600];
	struct store_peer peer;	   /* the other side, as this side's store knows it */
	struct store_contact them; /* the other side as a contact */
	struct link_session *s;
	struct rec *out;
	size_t n_out, cap_out, delivered;
	bool receiver;
	int ret;
};

static int to_pipe(void *ctx, const uint8_t *rec, size_t len)
{
	struct side *x = ctx;
	if (x->receiver) {
		struct link_msg m;
		if (powerloss_vfs_is_off())
			return -EIO; /* the machine is off: nothing leaves it */
		if (link_parse(rec, len, &m, NULL) == 0 && m.type == LINK_ACK)
			for (size_t i = 0; i < m.count; i++)
				book_acked(link_ack_at(&m, i));
	}
	if (x->n_out == x->cap_out) {
		size_t cap = x->cap_out ? 2 * x->cap_out : 64;
		struct rec *r = realloc(x->out, cap * sizeof(*r));
		if (!r)
			return -ENOMEM;
		x->out = r;
		x->cap_out = cap;
	}
	uint8_t *copy = malloc(len);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, rec, len);
	x->out[x->n_out++] = (struct rec){copy, len};
	return 0;
}

static void clear_log(struct side *x)
{
	for (size_t i = 0; i < x->n_out; i++)
		free(x->out[i].buf);
	x->n_out = x->delivered = 0;
}

static bool new_identity(struct side *x)
{
	if (identity_generate(&x->n.id) < 0)
		return false;
	identity_get_public(x->n.id, &x->n.pub);
	x->n.node_num = identity_node_number(x->n.pub.sign_pk);
	testnode_clock(&x->n.now);
	return true;
}

/* The other side as peer and contact: idempotent (the same key again changes nothing). */
static bool know(struct side *x)
{
	return store_peer_add(x->n.store, &x->peer) == 0 &&
	       store_contact_add(x->n.store, &x->them) == 0;
}

static bool deliver_one(struct side *x, struct side *y, uint64_t now)
{
	if (x->delivered == x->n_out || !y->s || y->ret)
		return false;
	struct rec *r = &x->out[x->delivered++];
	int ret = link_session_input(y->s, r->buf, r->len, now);
	if (ret < 0 && !y->ret)
		y->ret = ret;
	return true;
}

/* ---- one run ---------------------------------------------------------------------- */

struct result {
	uint64_t cuts, torn, cuts_in_open, forced, submitted, acked, checks, full_checks;
	uint64_t lost, damaged, bad_integrity, bad_open, unexpected, ops, syncs, bytes_dropped;
	double seconds;
};

struct run {
	struct side a, b;
	struct link_limits lim;
	char dir_a[64], dir_b[64];
	bool weak;
	uint64_t now_ms;
	struct result r;
};

static uint64_t fnv(uint64_t h, const uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		h = (h ^ buf[i]) * 0x100000001b3ull;
	return h;
}

static int hash_chunk(void *ctx, const uint8_t *buf, size_t len)
{
	uint64_t *h = ctx;
	*h = fnv(*h, buf, len);
	return 0;
}

/* The hash of a stored bundle's payload and its state: 0, or the store's -errno (-ENOENT). */
static int stored_hash(struct store *s, const uint8_t id[32], uint64_t *hash,
		       enum store_state *state)
{
	struct store_bundle b;
	size_t hl;
	int ret = store_bundle_get(s, id, NULL, &b, NULL, 0, &hl);
	if (ret && ret != -ENOSPC)
		return ret;
	*state = b.state;
	*hash = 0xcbf29ce484222325ull;
	return store_payload_read(s, b.rowid, hash_chunk, hash);
}

static void plaintext(uint8_t *p, size_t len, uint32_t seed)
{
	uint32_t x = seed * 2654435761u + 1;
	for (size_t i = 0; i < len; i++) {
		x = x * 1103515245u + 12345u;
		p[i] = (uint8_t)(' ' + (x >> 16) % 95);
	}
}

struct mem {
	const uint8_t *buf;
	size_t len, off;
};

static long read_mem(void *ctx, uint8_t *buf, size_t cap)
{
	struct mem *m = ctx;
	size_t k = m->len - m->off < cap ? m->len - m->off : cap;
	memcpy(buf, m->buf + m->off, k);
	m->off += k;
	return (long)k;
}

static uint8_t plain_buf[PLAIN_MAX];

static bool submit_one(struct run *u)
{
	uint64_t r = rnd() % 100;
	uint32_t len = r < 60	? 1 + rnd() % 300
		       : r < 90 ? 301 + rnd() % 3796
				: 4097 + rnd() % (PLAIN_MAX - 4097);
	uint32_t seed = (uint32_t)rnd();
	plaintext(plain_buf, len, seed);
	struct mem m = {plain_buf, len, 0};
	struct submit_request req = {
	    .kind = len <= 300 ? ENVELOPE_TEXT : ENVELOPE_FILE,
	    .name = len <= 300 ? NULL : "p.bin",
	    .size = len,
	    .read = read_mem,
	    .read_ctx = &m,
	    .priority = (enum store_priority)(rnd() % 3),
	    .lifetime_ms = NODE_DEFAULT_LIFETIME_MS,
	};
	struct submit_result res;
	const char *why = NULL;
	enum store_state st;
	int ret = node_submit(&u->a.n, &u->a.them, 1, &req, &res, &why);
	if (ret < 0) {
		fprintf(stderr, "test_powerloss: submit: %s\n", why ? why : strerror(-ret));
		return false;
	}
	struct sent *e = book_add();
	memcpy(e->id, res.bundle_id[0], 32);
	book_index(book.n - 1);
	e->seed = seed;
	e->len = len;
	if (stored_hash(u->a.n.store, e->id, &e->hash, &st) != 0) {
		fprintf(stderr, "test_powerloss: cannot read back what A submitted\n");
		return false;
	}
	u->r.submitted++;
	return true;
}

static int open_receiver_store(struct run *u, const char **why)
{
	store_testing_synchronous_normal(u->weak);
	int ret = store_open(u->b.path, &u->b.n.now, &u->b.n.store, why);
	store_testing_synchronous_normal(false);
	return ret;
}

/* Opens B's store after a cut; one open in eight is itself cut (during recovery), then retried. */
static bool reopen(struct run *u)
{
	for (;;) {
		const char *why = NULL;
		bool cut_open = rnd() % 8 == 0;
		if (cut_open)
			powerloss_vfs_arm(1 + rnd() % 40, (enum powerloss_mode)(rnd() & 1), rnd());
		int ret = open_receiver_store(u, &why);
		if (powerloss_vfs_is_off()) {
			u->r.cuts_in_open++;
			store_close(u->b.n.store);
			u->b.n.store = NULL;
			powerloss_vfs_restore();
			continue;
		}
		powerloss_vfs_arm(0, POWERLOSS_DROP_ALL, 0);
		if (ret < 0) {
			fprintf(stderr, "test_powerloss: B does not open after a cut: %s\n",
				why ? why : strerror(-ret));
			u->r.bad_open++;
			return false;
		}
		return true;
	}
}

static bool integrity_ok(struct store *s)
{
	sqlite3_stmt *st = NULL;
	bool ok = false;
	if (sqlite3_prepare_v2(store_sqlite(s), "PRAGMA integrity_check", -1, &st, NULL) ==
		SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW) {
		const char *v = (const char *)sqlite3_column_text(st, 0);
		ok = v && strcmp(v, "ok") == 0 && sqlite3_step(st) == SQLITE_DONE;
		if (!ok)
			fprintf(stderr, "test_powerloss: integrity_check: %s\n", v ? v : "?");
	}
	sqlite3_finalize(st);
	return ok;
}

struct compare {
	const uint8_t *want;
	size_t len, off;
	bool ok;
};

static int compare_chunk(void *ctx, const uint8_t *buf, size_t len)
{
	struct compare *c = ctx;
	if (len > c->len - c->off || memcmp(c->want + c->off, buf, len) != 0)
		c->ok = false;
	else
		c->off += len;
	return 0;
}

static int verify_inbox_one(void *ctx, const struct store_inbox *e)
{
	struct run *u = ctx;
	long i = book_find(e->bundle_id);
	if (i < 0 || !book.v[i].acked || book.v[i].verified || book.v[i].lost)
		return 0;
	struct sent *k = &book.v[i];
	static uint8_t want[PLAIN_MAX];
	struct compare c = {want, k->len, 0, true};
	struct envelope_meta meta;
	plaintext(want, k->len, k->seed);
	if (node_open_inbox(&u->b.n, e, compare_chunk, &c, &meta) == 0 && c.ok && c.off == k->len &&
	    e->size == k->len) {
		k->verified = true;
		u->r.full_checks++;
	}
	return 0;
}

/* After a cut: everything B's current store generation ever ACKed is there and intact. */
static void check_promises(struct run *u, uint64_t cut)
{
	struct store *s = u->b.n.store;
	if (!integrity_ok(s))
		u->r.bad_integrity++;
	for (size_t j = 0; j < book.n_gen; j++) {
		struct sent *k = &book.v[book.gen_acked[j]];
		uint64_t h = 0;
		enum store_state st = 0;
		if (k->lost || k->damaged)
			continue;
		int ret = stored_hash(s, k->id, &h, &st);
		u->r.checks++;
		if (ret == -ENOENT) {
			k->lost = true;
			u->r.lost++;
			if (!u->weak)
				fprintf(stderr,
					"test_powerloss: cut %" PRIu64
					": ACKed bundle %02x%02x%02x%02x"
					" is gone\n",
					cut, k->id[0], k->id[1], k->id[2], k->id[3]);
		} else if (ret || st != STORE_DELIVERED || h != k->hash) {
			k->damaged = true;
			u->r.damaged++;
			fprintf(stderr,
				"test_powerloss: cut %" PRIu64 ": ACKed bundle %02x%02x%02x%02x"
				" is damaged (%d, state %d)\n",
				cut, k->id[0], k->id[1], k->id[2], k->id[3], ret, (int)st);
		}
	}
	store_inbox_foreach(s, verify_inbox_one, u);
	for (size_t j = 0; j < book.n_gen; j++) {
		struct sent *k = &book.v[book.gen_acked[j]];
		if (!k->lost && !k->damaged && !k->verified) {
			k->damaged = true;
			u->r.damaged++;
			fprintf(stderr,
				"test_powerloss: cut %" PRIu64 ": ACKed bundle %02x%02x%02x%02x"
				" does not open from the inbox to its plaintext\n",
				cut, k->id[0], k->id[1], k->id[2], k->id[3]);
		}
	}
}

/* A fresh store for B (same identity): the disk forgotten, a new file name. */
static bool new_generation(struct run *u)
{
	const char *why = NULL;
	store_close(u->b.n.store);
	u->b.n.store = NULL;
	if (powerloss_vfs_forget() != 0)
		return false;
	book.gen++;
	book.n_gen = 0;
	snprintf(u->b.path, sizeof(u->b.path), "%s/b%d.db", u->dir_b, book.gen);
	int ret = open_receiver_store(u, &why);
	if (ret < 0) {
		fprintf(stderr, "test_powerloss: %s: %s\n", u->b.path, why ? why : strerror(-ret));
		return false;
	}
	return know(&u->b);
}

static void note(struct side *x, int ret)
{
	if (ret < 0 && !x->ret)
		x->ret = ret;
}

/* Runs the link until B's power goes (or MAX_STEPS, then cuts it between two operations). */
static bool epoch(struct run *u, uint64_t cut)
{
	struct side *a = &u->a, *b = &u->b;
	enum powerloss_mode mode = (enum powerloss_mode)(rnd() & 1);
	bool ok = true;

	a->ret = b->ret = 0;
	if (link_session_new(&a->n, &a->peer, &u->lim, to_pipe, a, &a->s) != 0 ||
	    link_session_new(&b->n, &b->peer, &u->lim, to_pipe, b, &b->s) != 0)
		return false;
	powerloss_vfs_arm(1 + rnd() % MAX_OPS, mode, rnd());
	note(a, link_session_start(a->s, u->now_ms));
	note(b, link_session_start(b->s, u->now_ms));
	for (int step = 0; step < MAX_STEPS && !powerloss_vfs_is_off(); step++) {
		u->now_ms += 1 + rnd() % 50;
		if (book.n - book.n_acked < IN_FLIGHT && rnd() % 3 == 0) {
			for (uint64_t k = 1 + rnd() % 3; k; k--)
				if (!submit_one(u))
					return false;
			link_session_scan_new(a->s);
			note(a, link_session_tick(a->s, u->now_ms));
		}
		/* A burst of A's records reaches B, whose loop then flushes (the daemon's order).
		 */
		for (uint64_t k = 1 + rnd() % 8; k && deliver_one(a, b, u->now_ms); k--)
			;
		if (!powerloss_vfs_is_off())
			note(b, link_session_flush(b->s));
		while (deliver_one(b, a, u->now_ms))
			;
		note(a, link_session_flush(a->s));
		size_t made;
		note(a, link_session_pump(a->s, u->now_ms, 1 + rnd() % 70000, &made));
		if (!powerloss_vfs_is_off())
			note(b, link_session_pump(b->s, u->now_ms, 1 + rnd() % 70000, &made));
		if (rnd() % 16 == 0) {
			note(a, link_session_tick(a->s, u->now_ms));
			if (!powerloss_vfs_is_off())
				note(b, link_session_tick(b->s, u->now_ms));
		}
		if (a->ret || (b->ret && !powerloss_vfs_is_off())) {
			fprintf(stderr,
				"test_powerloss: cut %" PRIu64 ": a session ended: A %s, B %s\n",
				cut, link_session_why(a->s), link_session_why(b->s));
			u->r.unexpected++;
			ok = false;
			break;
		}
	}
	if (!powerloss_vfs_is_off()) {
		u->r.forced++;
		powerloss_vfs_cut(mode, rnd());
	}
	u->r.cuts++;
	u->r.torn += mode == POWERLOSS_TORN;
	/* What B sent before the cut was on the wire: it reaches A. */
	while (deliver_one(b, a, u->now_ms))
		;
	link_session_flush(a->s);
	link_session_free(a->s);
	link_session_free(b->s); /* its writes fail: the power is off */
	a->s = b->s = NULL;
	clear_log(a);
	clear_log(b);
	store_close(b->n.store); /* nothing reaches the disk either */
	b->n.store = NULL;
	powerloss_vfs_restore();
	return ok;
}

static double since(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

static bool run(struct run *u, uint64_t cuts, uint64_t seed)
{
	const char *why = NULL;
	struct timespec t0;
	struct powerloss_stats st0, st1;
	bool ok = false;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	powerloss_vfs_stats(&st0);
	seed_state = seed;
	book_free();
	link_limits_default(&u->lim);
	u->lim.keepalive_s = 0;
	u->lim.rescan_s = 0;
	u->lim.group_commit = true;
	u->a.receiver = false;
	u->b.receiver = true;
	if (!new_identity(&u->a) || !new_identity(&u->b))
		goto out;
	testnode_as_peer(&u->b.n, "b", &u->a.peer);
	testnode_as_peer(&u->a.n, "a", &u->b.peer);
	testnode_as_contact(&u->b.n, "b", &u->a.them);
	testnode_as_contact(&u->a.n, "a", &u->b.them);
	snprintf(u->a.path, sizeof(u->a.path), "%s/a-%s.db", u->dir_a, u->weak ? "weak" : "full");
	if (store_open(u->a.path, &u->a.n.now, &u->a.n.store, &why) < 0 || !know(&u->a)) {
		fprintf(stderr, "test_powerloss: %s: %s\n", u->a.path, why ? why : "cannot set up");
		goto out;
	}
	for (uint64_t cut = 0; cut < cuts; cut++) {
		if (cut % gen_cuts == 0 && !new_generation(u))
			goto out;
		if (!epoch(u, cut))
			goto out;
		if (!reopen(u))
			goto out;
		check_promises(u, cut);
		/* In the weakened mode the peer or the contact may be among what was lost. */
		if (!know(&u->b))
			goto out;
	}
	ok = true;
out:
	store_close(u->b.n.store);
	u->b.n.store = NULL;
	powerloss_vfs_forget();
	powerloss_vfs_stats(&st1);
	u->r.acked = book.n_acked;
	u->r.ops = st1.ops - st0.ops;
	u->r.syncs = st1.syncs - st0.syncs;
	u->r.bytes_dropped = st1.bytes_dropped - st0.bytes_dropped;
	u->r.seconds = since(&t0);
	if (book.unknown_acks)
		u->r.unexpected++;
	free(u->a.out);
	free(u->b.out);
	node_close(&u->a.n);
	node_close(&u->b.n);
	return ok;
}

static void report(const char *what, const struct run *u)
{
	const struct result *r = &u->r;
	printf("test_powerloss: %s: %" PRIu64 " cuts (%" PRIu64 " torn, %" PRIu64
	       " more during recovery, %" PRIu64 " between operations), %" PRIu64
	       " bundles submitted, %" PRIu64 " ACKed, %" PRIu64 " presence checks, %" PRIu64
	       " opened and compared; lost %" PRIu64 ", damaged %" PRIu64
	       ", integrity failures %" PRIu64 ", %" PRIu64 " disk operations (%" PRIu64
	       " syncs), %.1f MiB unsynced dropped, %.1f s\n",
	       what, r->cuts, r->torn, r->cuts_in_open, r->forced, r->submitted, r->acked,
	       r->checks, r->full_checks, r->lost, r->damaged, r->bad_integrity, r->ops, r->syncs,
	       (double)r->bytes_dropped / (1024.0 * 1024.0), r->seconds);
}

static bool make_dir(char *buf, size_t cap, const char *base)
{
	struct stat st;
	snprintf(buf, cap, "%s/tern-powerloss.XXXXXX", stat(base, &st) == 0 ? base : "/tmp");
	return mkdtemp(buf) != NULL;
}

static void remove_dir(const char *dir)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "test_powerloss: could not remove %s\n", dir);
}

int main(void)
{
	uint64_t cuts = env_u64("TERN_POWERLOSS_CUTS", 200);
	uint64_t weak_cuts = env_u64("TERN_POWERLOSS_WEAK_CUTS", 30);
	uint64_t seed = env_u64("TERN_POWERLOSS_SEED", 1);
	gen_cuts = env_u64("TERN_POWERLOSS_GEN", 25);
	gen_cuts = gen_cuts ? gen_cuts : 1;
	static struct run full, weak;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (tern_crypto_init() < 0)
		return 1;
	/* A's disk never loses power: tmpfs if there is one, so its fsyncs cost nothing. */
	if (!make_dir(full.dir_a, sizeof(full.dir_a), "/dev/shm") ||
	    !make_dir(full.dir_b, sizeof(full.dir_b), "/tmp")) {
		fprintf(stderr, "test_powerloss: mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	memcpy(weak.dir_a, full.dir_a, sizeof(weak.dir_a));
	memcpy(weak.dir_b, full.dir_b, sizeof(weak.dir_b));
	CHECK_EQ(powerloss_vfs_register(full.dir_b), 0);
	powerloss_vfs_strict_dirs(env_u64("TERN_POWERLOSS_STRICT_DIRS", 0) != 0);
	printf("test_powerloss: seed %" PRIu64 "\n", seed);

	CHECK(run(&full, cuts, seed));
	report("synchronous=FULL", &full);
	CHECK_EQ(full.r.cuts, cuts);
	CHECK(full.r.acked > 0);
	CHECK(full.r.full_checks > 0);
	CHECK_EQ(full.r.lost, 0);
	CHECK_EQ(full.r.damaged, 0);
	CHECK_EQ(full.r.bad_integrity, 0);
	CHECK_EQ(full.r.unexpected, 0);

	/* The test must be able to see a loss: with NORMAL, ACKed commits do vanish. */
	weak.weak = true;
	CHECK(run(&weak, weak_cuts, seed + 1));
	report("synchronous=NORMAL (weakened)", &weak);
	CHECK_EQ(weak.r.cuts, weak_cuts);
	CHECK(weak.r.lost > 0);
	CHECK_EQ(weak.r.bad_integrity, 0);
	CHECK_EQ(weak.r.unexpected, 0);

	book_free();
	remove_dir(full.dir_a);
	remove_dir(full.dir_b);
	TEST_MAIN_END();
}
