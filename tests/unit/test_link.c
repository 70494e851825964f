/* The link session engine, two nodes joined by an in-memory pipe; and store_payload_pread. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "relay/link.h"
#include "relay/node.h"
#include "store/store_testing.h"
#include "tests/unit/test.h"
#include "tests/testnode.h"

static char dir[] = "/tmp/tern-test-link.XXXXXX";
static int n_nodes;

/* ---- nodes ------------------------------------------------------------------------ */

static int open_node(struct node *n, char *path, size_t cap)
{
	const char *why = NULL;
	memset(n, 0, sizeof(*n));
	if (identity_generate(&n->id) < 0)
		return -ENOMEM;
	identity_get_public(n->id, &n->pub);
	n->node_num = identity_node_number(n->pub.sign_pk);
	testnode_clock(&n->now);
	snprintf(path, cap, "%s/n%d.db", dir, n_nodes++);
	int ret = store_open(path, &n->now, &n->store, &why);
	if (ret < 0)
		fprintf(stderr, "test_link: %s: %s\n", path, why ? why : strerror(-ret));
	return ret;
}

/* ---- the pipe: each side's records go to the other's inbox ------------------------ */

struct rec {
	uint8_t *buf;
	size_t len;
};

struct side {
	struct node n;
	char path[512];
	struct store_peer peer;	   /* the other side, as this side's store knows it */
	struct store_contact them; /* the other side as a contact */
	struct link_session *s;
	struct rec *out; /* records this side sent, in order (a log: never removed) */
	size_t n_out, cap_out, delivered;
	int ret; /* the first error a call of this side's session returned */
};

static int to_pipe(void *ctx, const uint8_t *rec, size_t len)
{
	struct side *x = ctx;
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

static bool pair_open(struct side *a, struct side *b)
{
	memset(a, 0, sizeof(*a));
	memset(b, 0, sizeof(*b));
	if (open_node(&a->n, a->path, sizeof(a->path)) < 0 ||
	    open_node(&b->n, b->path, sizeof(b->path)) < 0)
		return false;
	testnode_as_peer(&b->n, "b", &a->peer);
	testnode_as_peer(&a->n, "a", &b->peer);
	testnode_as_contact(&b->n, "b", &a->them);
	testnode_as_contact(&a->n, "a", &b->them);
	return store_peer_add(a->n.store, &a->peer) == 0 &&
	       store_peer_add(b->n.store, &b->peer) == 0 &&
	       store_contact_add(a->n.store, &a->them) == 0 &&
	       store_contact_add(b->n.store, &b->them) == 0;
}

static bool session_open(struct side *x, const struct link_limits *lim)
{
	x->ret = 0;
	return link_session_new(&x->n, &x->peer, lim, to_pipe, x, &x->s) == 0;
}

static void session_close(struct side *x)
{
	link_session_free(x->s);
	x->s = NULL;
	x->delivered = x->n_out; /* what was in flight is lost with the connection */
}

static void pair_close(struct side *a, struct side *b)
{
	session_close(a);
	session_close(b);
	clear_log(a);
	clear_log(b);
	free(a->out);
	free(b->out);
	node_close(&a->n);
	node_close(&b->n);
}

static bool start(struct side *a, struct side *b, uint64_t now)
{
	return link_session_start(a->s, now) == 0 && link_session_start(b->s, now) == 0;
}

typedef bool (*stop_fn)(struct side *a, struct side *b);

/* Delivers one record from x to y; false when none waits or a session ended. */
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

/*
 * Delivers records both ways one at a time and pumps each side with budget bytes per
 * round, until nothing moves, stop says so, or a session ends. Returns rounds run.
 */
static int run(struct side *a, struct side *b, uint64_t now, size_t budget, stop_fn stop,
	       int max_rounds)
{
	int round = 0;
	for (; round < max_rounds; round++) {
		bool moved = false;
		for (;;) {
			bool one = deliver_one(a, b, now);
			one |= deliver_one(b, a, now);
			if (stop && stop(a, b))
				return round;
			if (!one)
				break;
			moved = true;
		}
		if (a->ret || b->ret)
			return round;
		struct side *xs[2] = {a, b};
		for (int i = 0; i < 2; i++) {
			size_t made = 0;
			int ret = link_session_pump(xs[i]->s, now, budget, &made);
			if (ret < 0 && !xs[i]->ret)
				xs[i]->ret = ret;
			moved |= made > 0;
		}
		if (stop && stop(a, b))
			return round;
		if (!moved && a->delivered == a->n_out && b->delivered == b->n_out)
			break;
	}
	return round;
}

/* Index in x's log of the first record of type t (for id, if not NULL) at or after from. */
static long find_rec(const struct side *x, enum link_type t, const uint8_t *id, size_t from)
{
	for (size_t i = from; i < x->n_out; i++)
		if (x->out[i].buf[0] == t && (!id || memcmp(x->out[i].buf + 1, id, 32) == 0))
			return (long)i;
	return -1;
}

static size_t count_rec(const struct side *x, enum link_type t)
{
	size_t n = 0;
	for (size_t i = 0; i < x->n_out; i++)
		n += x->out[i].buf[0] == t;
	return n;
}

/* ---- what the stores hold ---------------------------------------------------------- */

static int count_one(void *ctx, const struct store_bundle *b, const uint8_t *h, size_t hl)
{
	(void)b;
	(void)h;
	(void)hl;
	(*(int *)ctx)++;
	return 0;
}

static int count_bundles(struct node *n, enum store_state st)
{
	int count = 0;
	store_bundle_foreach(n->store, st, &n->now, count_one, &count);
	return count;
}

static int count_inbox_one(void *ctx, const struct store_inbox *e)
{
	(void)e;
	(*(int *)ctx)++;
	return 0;
}

static int count_inbox(struct node *n)
{
	int count = 0;
	store_inbox_foreach(n->store, count_inbox_one, &count);
	return count;
}

struct sent_count {
	int by_state[4];
};

static int count_sent_one(void *ctx, const struct store_sent *e)
{
	struct sent_count *c = ctx;
	if (e->state >= 1 && e->state <= 3)
		c->by_state[e->state]++;
	return 0;
}

static struct sent_count count_sent(struct node *n)
{
	struct sent_count c = {{0}};
	store_sent_foreach(n->store, count_sent_one, &c);
	return c;
}

static int payload_files(const char *db)
{
	char path[600];
	snprintf(path, sizeof(path), "%s-payloads", db);
	DIR *d = opendir(path);
	int count = 0;
	struct dirent *e;
	while (d && (e = readdir(d)))
		count += e->d_name[0] != '.';
	if (d)
		closedir(d);
	return count;
}

/* ---- messages ------------------------------------------------------------------------ */

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

static bool submit(struct side *from, const uint8_t *buf, size_t len, bool file,
		   enum store_priority prio, uint8_t id[32])
{
	struct mem m = {buf, len, 0};
	struct submit_request req = {
	    .kind = file ? ENVELOPE_FILE : ENVELOPE_TEXT,
	    .name = file ? "big.bin" : NULL,
	    .size = len,
	    .read = read_mem,
	    .read_ctx = &m,
	    .priority = prio,
	    .lifetime_ms = NODE_DEFAULT_LIFETIME_MS,
	};
	struct submit_result res;
	const char *why = NULL;
	int ret = node_submit(&from->n, &from->them, 1, &req, &res, &why);
	if (ret < 0) {
		fprintf(stderr, "test_link: submit: %s\n", why ? why : strerror(-ret));
		return false;
	}
	if (id)
		memcpy(id, res.bundle_id[0], 32);
	return true;
}

static uint8_t *pattern(size_t len, unsigned seed)
{
	uint8_t *p = malloc(len);
	uint32_t x = seed * 2654435761u + 1;
	for (size_t i = 0; p && i < len; i++) {
		x = x * 1103515245u + 12345u;
		p[i] = (uint8_t)(x >> 16);
	}
	return p;
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

struct inbox_check {
	struct node *n;
	const uint8_t *want;
	size_t len;
	int matches;
};

static int check_inbox_one(void *ctx, const struct store_inbox *e)
{
	struct inbox_check *k = ctx;
	struct compare c = {k->want, k->len, 0, true};
	struct envelope_meta meta;
	if (e->size != k->len)
		return 0;
	if (node_open_inbox(k->n, e, compare_chunk, &c, &meta) == 0 && c.ok && c.off == k->len)
		k->matches++;
	return 0;
}

/* How many inbox entries of n open to exactly these bytes. */
static int inbox_has(struct node *n, const uint8_t *want, size_t len)
{
	struct inbox_check k = {n, want, len, 0};
	store_inbox_foreach(n->store, check_inbox_one, &k);
	return k.matches;
}

/* ---- store_payload_pread ---------------------------------------------------------- */

static bool put_raw(struct store *s, const struct store_clock *c, uint8_t seed, const uint8_t *buf,
		    size_t len, bool expect, int64_t *rowid)
{
	struct store_writer *w;
	struct store_bundle b = {
	    .state = STORE_QUEUED,
	    .dest_node = 7,
	    .priority = STORE_NORMAL,
	    .lifetime_ms = 1000000,
	    .payload_len = len,
	};
	struct store_bundle got;
	uint8_t head[4] = {1, 2, 3, seed};
	memset(b.id, seed, 32);
	if (store_writer_begin(s, c, &w) < 0)
		return false;
	if ((expect && store_writer_expect(w, len) < 0) || store_writer_append(w, buf, len) < 0) {
		store_writer_abort(w);
		return false;
	}
	if (store_writer_commit(w, &b, head, sizeof(head), NULL) < 0 ||
	    store_bundle_get(s, b.id, c, &got, NULL, 0, NULL) < 0)
		return false;
	*rowid = got.rowid;
	return true;
}

/* Reads the whole payload back through pread in pieces of step bytes. */
static bool pread_all(struct store *s, int64_t rowid, const uint8_t *want, size_t len, size_t step)
{
	uint8_t *buf = malloc(step);
	uint64_t off = 0;
	bool ok = buf != NULL;
	while (ok && off < len) {
		ssize_t got = store_payload_pread(s, rowid, off, buf, step);
		ok = got > 0 && (size_t)got <= step && memcmp(buf, want + off, (size_t)got) == 0;
		off += got > 0 ? (uint64_t)got : 0;
	}
	free(buf);
	return ok && off == len;
}

static void test_pread(void)
{
	struct store_clock c;
	struct store *s = NULL;
	char path[600], sql[200];
	const char *why;
	uint8_t buf[100000];
	int64_t small = 0, big = 0;
	size_t small_len = 200000, big_len = 1536 * 1024 + 77;
	uint8_t *p1 = pattern(small_len, 1), *p2 = pattern(big_len, 2);

	testnode_clock(&c);
	snprintf(path, sizeof(path), "%s/pread.db", dir);
	CHECK_EQ(store_open(path, &c, &s, &why), 0);
	if (!s || !p1 || !p2)
		goto out;
	CHECK(put_raw(s, &c, 1, p1, small_len, false, &small));
	CHECK(put_raw(s, &c, 2, p2, big_len, true, &big));
	CHECK_EQ(payload_files(path), 1); /* the big one is in a file, the small one in rows */

	/* A read stops at the end of the chunk that holds offset. */
	CHECK_EQ(store_payload_pread(s, small, 0, buf, sizeof(buf)), 65536);
	CHECK_MEM(buf, p1, 65536);
	CHECK_EQ(store_payload_pread(s, small, 65530, buf, sizeof(buf)), 6);
	CHECK_MEM(buf, p1 + 65530, 6);
	CHECK_EQ(store_payload_pread(s, small, 70000, buf, 10), 10);
	CHECK_MEM(buf, p1 + 70000, 10);
	CHECK_EQ(store_payload_pread(s, small, 196608, buf, sizeof(buf)), 200000 - 196608);
	CHECK_MEM(buf, p1 + 196608, 200000 - 196608);
	CHECK_EQ(store_payload_pread(s, small, small_len, buf, sizeof(buf)), 0);
	CHECK_EQ(store_payload_pread(s, small, small_len + 5, buf, sizeof(buf)), 0);
	CHECK_EQ(store_payload_pread(s, small, 3, buf, 0), 0);
	CHECK_EQ(store_payload_pread(s, 99999, 0, buf, 1), -ENOENT);
	CHECK(pread_all(s, small, p1, small_len, 1000));
	CHECK(pread_all(s, small, p1, small_len, 100000));

	CHECK_EQ(store_payload_pread(s, big, 131072 + 5, buf, sizeof(buf)), 65536 - 5);
	CHECK_MEM(buf, p2 + 131072 + 5, 65536 - 5);
	CHECK_EQ(store_payload_pread(s, big, big_len - 1, buf, sizeof(buf)), 1);
	CHECK_EQ(buf[0], p2[big_len - 1]);
	CHECK_EQ(store_payload_pread(s, big, big_len, buf, sizeof(buf)), 0);
	CHECK(pread_all(s, big, p2, big_len, 4096));
	CHECK(pread_all(s, big, p2, big_len, 100000));

	/* Bit rot in chunk 2 of the rows: caught there only, quarantined, named. */
	snprintf(sql, sizeof(sql),
		 "UPDATE chunks SET data = zeroblob(65536) WHERE bundle = %lld AND seq = 2",
		 (long long)small);
	sqlite3 *db = NULL;
	CHECK_EQ(sqlite3_open(path, &db), SQLITE_OK);
	CHECK_EQ(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	CHECK_EQ(store_payload_pread(s, small, 65536, buf, 10), 10); /* chunk 1 is fine */
	CHECK_EQ(store_payload_pread(s, small, 131072 + 9, buf, 10), -EBADMSG);
	CHECK(strstr(store_errmsg(s), "chunk 2 checksum mismatch") != NULL);
	uint8_t id[32];
	struct store_bundle got;
	memset(id, 1, 32);
	CHECK(store_bundle_get(s, id, &c, &got, NULL, 0, NULL) == 0 &&
	      got.state == STORE_QUARANTINED);

	/* Bit rot in the file's chunk 20: the same. */
	char file[700];
	char hex[65];
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", 2);
	snprintf(file, sizeof(file), "%s-payloads/%s", path, hex);
	FILE *f = fopen(file, "r+b");
	CHECK(f != NULL);
	if (f) {
		fseek(f, 20 * 65536 + 100, SEEK_SET);
		fputc(p2[20 * 65536 + 100] ^ 0x40, f);
		fclose(f);
	}
	CHECK_EQ(store_payload_pread(s, big, 19 * 65536, buf, 10), 10);
	CHECK_EQ(store_payload_pread(s, big, 20 * 65536 + 3, buf, 10), -EBADMSG);
	CHECK(strstr(store_errmsg(s), "chunk 20 checksum mismatch") != NULL);
	memset(id, 2, 32);
	CHECK(store_bundle_get(s, id, &c, &got, NULL, 0, NULL) == 0 &&
	      got.state == STORE_QUARANTINED);
out:
	store_close(s);
	free(p1);
	free(p2);
}

/* ---- sessions ------------------------------------------------------------------------ */

static bool a_acked_two(struct side *a, struct side *b)
{
	struct link_stats st;
	(void)b;
	link_session_stats(a->s, &st);
	return st.acked_out >= 2;
}

/* A text and a 3 MB file from A to B: delivered, acked, released; receipts come back. */
static void test_transfer(void)
{
	struct side a, b;
	const char *text = "the generator needs diesel by friday";
	size_t big_len = 3 * 1000 * 1000;
	uint8_t *big = pattern(big_len, 3);
	struct link_stats st;

	if (!pair_open(&a, &b) || !big) {
		CHECK(!"pair");
		goto out;
	}
	CHECK(submit(&a, (const uint8_t *)text, strlen(text), false, STORE_NORMAL, NULL));
	CHECK(submit(&a, big, big_len, true, STORE_NORMAL, NULL));
	CHECK_EQ(count_bundles(&a.n, STORE_QUEUED), 2);
	CHECK(session_open(&a, NULL) && session_open(&b, NULL) && start(&a, &b, 0));

	run(&a, &b, 0, 200000, a_acked_two, 1000);
	CHECK_EQ(a.ret, 0);
	CHECK_EQ(b.ret, 0);
	/*
	 * Custody passed: both released at A. The file's sent row is handed over; the text's
	 * delivery receipt overtook the file (sent while the file was under way): delivered.
	 */
	CHECK_EQ(count_bundles(&a.n, STORE_QUEUED), 0);
	struct sent_count sc = count_sent(&a.n);
	CHECK_EQ(sc.by_state[STORE_SENT_HANDED_OVER], 1);
	CHECK_EQ(sc.by_state[STORE_SENT_DELIVERED], 1);
	CHECK_EQ(sc.by_state[STORE_SENT_QUEUED], 0);
	CHECK_EQ(count_inbox(&b.n), 2);
	CHECK_EQ(inbox_has(&b.n, (const uint8_t *)text, strlen(text)), 1);
	CHECK_EQ(inbox_has(&b.n, big, big_len), 1);
	link_session_stats(a.s, &st);
	CHECK_EQ(st.offered, 2);
	CHECK_EQ(st.released, 2);
	CHECK(st.bytes_out > big_len);
	/* Every DATA record within the peer's max_record. */
	size_t longest = 0;
	for (size_t i = 0; i < a.n_out; i++)
		if (a.out[i].len > longest)
			longest = a.out[i].len;
	CHECK(longest <= LINK_RECORD_MAX);
	CHECK(find_rec(&a, LINK_DATA, NULL, 0) >= 0);

	/* Then the delivery receipts flow back over the same session. */
	run(&a, &b, 0, 200000, NULL, 1000);
	CHECK_EQ(a.ret, 0);
	CHECK_EQ(b.ret, 0);
	sc = count_sent(&a.n);
	CHECK_EQ(sc.by_state[STORE_SENT_DELIVERED], 2);
	CHECK_EQ(count_bundles(&b.n, STORE_QUEUED), 0); /* the receipt was released at B */
	CHECK_EQ(count_bundles(&a.n, STORE_QUEUED), 0);
	link_session_stats(b.s, &st);
	CHECK_EQ(st.offered, 2); /* a receipt bundle after each delivery's commit */
	CHECK_EQ(st.released, 2);

	/* A clean end: BYE done, and the peer ends too. */
	CHECK_EQ(link_session_close(a.s), -ESHUTDOWN);
	CHECK_EQ(a.out[a.n_out - 1].buf[0], LINK_BYE);
	CHECK_EQ(a.out[a.n_out - 1].buf[1], LINK_BYE_DONE);
	deliver_one(&a, &b, 0);
	CHECK_EQ(b.ret, -ESHUTDOWN);
out:
	pair_close(&a, &b);
	free(big);
}

/* Both directions on one session at once. */
static void test_both_ways(void)
{
	struct side a, b;
	const char *ta = "from a", *tb = "from b";
	size_t big_len = 1200 * 1000;
	uint8_t *big = pattern(big_len, 4);
	if (!pair_open(&a, &b) || !big) {
		CHECK(!"pair");
		goto out;
	}
	CHECK(submit(&a, (const uint8_t *)ta, strlen(ta), false, STORE_NORMAL, NULL));
	CHECK(submit(&a, big, big_len, true, STORE_BULK, NULL));
	CHECK(submit(&b, (const uint8_t *)tb, strlen(tb), false, STORE_NORMAL, NULL));
	CHECK(submit(&b, big, big_len, true, STORE_NORMAL, NULL));
	CHECK(session_open(&a, NULL) && session_open(&b, NULL) && start(&a, &b, 0));
	run(&a, &b, 0, 30000, NULL, 5000);
	CHECK_EQ(a.ret, 0);
	CHECK_EQ(b.ret, 0);
	CHECK_EQ(inbox_has(&b.n, (const uint8_t *)ta, strlen(ta)), 1);
	CHECK_EQ(inbox_has(&b.n, big, big_len), 1);
	CHECK_EQ(inbox_has(&a.n, (const uint8_t *)tb, strlen(tb)), 1);
	CHECK_EQ(inbox_has(&a.n, big, big_len), 1);
	CHECK_EQ(count_bundles(&a.n, STORE_QUEUED), 0);
	CHECK_EQ(count_bundles(&b.n, STORE_QUEUED), 0);
	/* Transfers really ran both ways at once: B's HEAD before A's last END. */
	long b_head = find_rec(&b, LINK_HEAD, NULL, 0);
	CHECK(b_head >= 0);
	CHECK(count_rec(&a, LINK_END) >= 2 && count_rec(&b, LINK_END) >= 2);
	struct sent_count sa = count_sent(&a.n), sb = count_sent(&b.n);
	CHECK_EQ(sa.by_state[STORE_SENT_DELIVERED], 2);
	CHECK_EQ(sb.by_state[STORE_SENT_DELIVERED], 2);
out:
	pair_close(&a, &b);
	free(big);
}

static int to_buf(void *ctx, const uint8_t *buf, size_t len)
{
	struct mem *m = ctx;
	if (len > m->len - m->off)
		return -ENOSPC;
	memcpy((uint8_t *)m->buf + m->off, buf, len);
	m->off += len;
	return 0;
}

/* A bundle B already has is ACKed at the offer: no transfer, custody passes all the same. */
static void test_already_there(void)
{
	struct side a, b;
	const char *text = "sent by stick, then the link came up";
	uint8_t id[32];
	static uint8_t buf[65536];
	struct store_bundle bd;
	uint8_t head[BUNDLE_HEAD_MAX];
	size_t headlen = 0;
	struct ingest *in = NULL;
	struct ingest_result res;
	if (!pair_open(&a, &b)) {
		CHECK(!"pair");
		goto out;
	}
	CHECK(submit(&a, (const uint8_t *)text, strlen(text), false, STORE_NORMAL, id));
	/* The same bundle reaches B by another way. */
	struct mem m = {buf, sizeof(buf), 0};
	CHECK_EQ(store_bundle_get(a.n.store, id, &a.n.now, &bd, head, sizeof(head), &headlen), 0);
	CHECK_EQ(node_emit(&a.n, &bd, head, headlen, to_buf, &m, NULL), 0);
	CHECK_EQ(ingest_new(&b.n, &in), 0);
	if (in) {
		ingest_feed(in, buf, m.off);
		CHECK_EQ(ingest_finish(in, &res), 0);
		CHECK_EQ(res.verdict, INGEST_DELIVERED);
	}
	CHECK(store_bundle_exists(b.n.store, id));
	CHECK(session_open(&a, NULL) && session_open(&b, NULL) && start(&a, &b, 0));
	run(&a, &b, 0, 100000, NULL, 100);
	CHECK_EQ(a.ret, 0);
	CHECK_EQ(b.ret, 0);
	CHECK(find_rec(&a, LINK_OFFER, NULL, 0) >= 0);
	CHECK_EQ(find_rec(&a, LINK_HEAD, id, 0), -1);	/* nothing sent twice */
	CHECK_EQ(find_rec(&b, LINK_WANT, NULL, 0), -1); /* not wanted: ACKed at once */
	CHECK(find_rec(&b, LINK_ACK, NULL, 0) >= 0);
	CHECK_EQ(count_bundles(&a.n, STORE_QUEUED), 0);
	CHECK_EQ(count_sent(&a.n).by_state[STORE_SENT_HANDED_OVER], 1);
	CHECK_EQ(count_inbox(&b.n), 1);
out:
	pair_close(&a, &b);
}

/*
 * A change no one tells the session of (another process added the peer back): the periodic
 * rescans look at what is new only, and one in 30 at the whole queue, which finds it.
 */
static void test_rescan_whole(void)
{
	struct side a, b;
	const char *text = "the road to the north camp is open";
	uint8_t id[32];
	struct link_limits lim;
	link_limits_default(&lim);
	if (!pair_open(&a, &b)) {
		CHECK(!"pair");
		goto out;
	}
	CHECK_EQ(store_peer_remove(a.n.store, "b"), 0); /* no way to b: the bundle waits */
	CHECK(submit(&a, (const uint8_t *)text, strlen(text), false, STORE_NORMAL, id));
	CHECK(session_open(&a, &lim) && session_open(&b, &lim) && start(&a, &b, 0));
	run(&a, &b, 0, 100000, NULL, 100);
	CHECK_EQ(find_rec(&a, LINK_OFFER, NULL, 0), -1);
	CHECK_EQ(store_peer_add(a.n.store, &a.peer), 0);
	uint64_t t = 0;
	for (int k = 1; k < 30; k++) {
		t = 1000ull * lim.rescan_s * (uint64_t)k;
		CHECK_EQ(link_session_tick(a.s, t), 0);
		CHECK_EQ(link_session_tick(b.s, t), 0);
		run(&a, &b, t, 100000, NULL, 100);
	}
	CHECK_EQ(find_rec(&a, LINK_OFFER, NULL, 0), -1); /* nothing new was stored */
	t += 1000ull * lim.rescan_s;
	CHECK_EQ(link_session_tick(a.s, t), 0);
	run(&a, &b, t, 100000, NULL, 100);
	CHECK(find_rec(&a, LINK_OFFER, NULL, 0) >= 0);
	CHECK_EQ(a.ret, 0);
	CHECK_EQ(b.ret, 0);
	CHECK_EQ(count_inbox(&b.n), 1);
out:
	pair_close(&a, &b);
}

static bool a_data_sent(struct side *a, struct side *b)
{
	(void)b;
	return count_rec(a, LINK_DATA) >= 4;
}

/* An urgent bundle offered while a bulk one is half sent overtakes it between segments. */
static void test_overtake(void)
{
	struct side a, b;
	const char *text = "evacuate the east warehouse";
	size_t big_len = 3 * 1000 * 1000;
	uint8_t *big = pattern(big_len, 5);
	uint8_t bulk[32], urgent[32];
	struct link_limits lim;
	link_limits_default(&lim);
	if (!pair_open(&a, &b) || !big) {
		CHECK(!"pair");
		goto out;
	}
	CHECK(submit(&a, big, big_len, true, STORE_BULK, bulk));
	CHECK(session_open(&a, &lim) && session_open(&b, &lim) && start(&a, &b, 0));
	run(&a, &b, 0, 20000, a_data_sent, 1000);
	CHECK(find_rec(&a, LINK_HEAD, bulk, 0) >= 0);
	CHECK_EQ(find_rec(&a, LINK_END, bulk, 0), -1);

	CHECK(submit(&a, (const uint8_t *)text, strlen(text), false, STORE_URGENT, urgent));
	CHECK_EQ(link_session_deadline(a.s), 1000ull * lim.rescan_s);
	CHECK_EQ(link_session_tick(a.s, 1000ull * lim.rescan_s), 0); /* the rescan offers it */
	run(&a, &b, 1000ull * lim.rescan_s, 20000, NULL, 5000);
	CHECK_EQ(a.ret, 0);
	CHECK_EQ(b.ret, 0);
	long bulk_head = find_rec(&a, LINK_HEAD, bulk, 0);
	long bulk_end = find_rec(&a, LINK_END, bulk, 0);
	long urgent_head = find_rec(&a, LINK_HEAD, urgent, 0);
	long urgent_end = find_rec(&a, LINK_END, urgent, 0);
	CHECK(bulk_head >= 0 && urgent_head > bulk_head);
	CHECK(urgent_end > urgent_head && bulk_end > urgent_end);
	/* A DATA of the bulk one went out before the urgent HEAD, and after its END. */
	long d1 = find_rec(&a, LINK_DATA, bulk, 0);
	CHECK(d1 >= 0 && d1 < urgent_head);
	CHECK(find_rec(&a, LINK_DATA, bulk, (size_t)(urgent_end > 0 ? urgent_end : 0)) >
	      urgent_end);
	CHECK_EQ(inbox_has(&b.n, (const uint8_t *)text, strlen(text)), 1);
	CHECK_EQ(inbox_has(&b.n, big, big_len), 1);
	CHECK_EQ(count_bundles(&a.n, STORE_QUEUED), 0);
out:
	pair_close(&a, &b);
	free(big);
}

/* HELLO from a node other than the one the key belongs to: BYE protocol. */
static void test_wrong_node(void)
{
	struct side a, b;
	if (!pair_open(&a, &b)) {
		CHECK(!"pair");
		goto out;
	}
	b.peer.node ^= 1; /* B believes the key is another node's */
	CHECK(session_open(&a, NULL) && session_open(&b, NULL) && start(&a, &b, 0));
	CHECK(deliver_one(&a, &b, 0));
	CHECK_EQ(b.ret, -EPROTO);
	CHECK(b.n_out >= 2 && b.out[b.n_out - 1].buf[0] == LINK_BYE &&
	      b.out[b.n_out - 1].buf[1] == LINK_BYE_PROTOCOL);
	CHECK(strstr(link_session_why(b.s), "HELLO from node") != NULL);
	/* Over: every call says so, and nothing more is sent. */
	size_t sent = b.n_out;
	CHECK_EQ(link_session_tick(b.s, 100000), -EPROTO);
	CHECK_EQ(link_session_pump(b.s, 0, 100000, NULL), -EPROTO);
	CHECK_EQ(b.n_out, sent);
	/* And A, told BYE, ends too. */
	deliver_one(&b, &a, 0);
	deliver_one(&b, &a, 0);
	CHECK_EQ(a.ret, -ESHUTDOWN);
out:
	pair_close(&a, &b);
}

/* Records out of order end the session with BYE protocol. */
static void test_out_of_order(void)
{
	struct side a, b;
	uint8_t rec[256], id[32], data[10] = {0};
	int len;
	if (!pair_open(&a, &b)) {
		CHECK(!"pair");
		goto out;
	}
	memset(id, 0x5a, 32);
	/* Before HELLO. */
	CHECK(session_open(&b, NULL) && link_session_start(b.s, 0) == 0);
	len = link_encode_ping(rec, sizeof(rec), LINK_PING, 7);
	CHECK_EQ(link_session_input(b.s, rec, (size_t)len, 0), -EPROTO);
	session_close(&b);

	/* DATA without WANT (after a proper HELLO). */
	CHECK(session_open(&a, NULL) && session_open(&b, NULL) && start(&a, &b, 0));
	run(&a, &b, 0, 10000, NULL, 10);
	CHECK_EQ(b.ret, 0);
	len = link_encode_ping(rec, sizeof(rec), LINK_PING, 7);
	CHECK_EQ(link_session_input(b.s, rec, (size_t)len, 0), 0);
	CHECK_EQ(b.out[b.n_out - 1].buf[0], LINK_PONG);
	CHECK_MEM(b.out[b.n_out - 1].buf + 1, rec + 1, 8);
	len = link_encode_data(rec, sizeof(rec), id, 0, data, sizeof(data));
	CHECK_EQ(link_session_input(b.s, rec, (size_t)len, 0), -EPROTO);
	CHECK(b.out[b.n_out - 1].buf[0] == LINK_BYE &&
	      b.out[b.n_out - 1].buf[1] == LINK_BYE_PROTOCOL);
	session_close(&a);
	session_close(&b);

	/* WANT and ACK of what was never offered. */
	CHECK(session_open(&a, NULL) && session_open(&b, NULL) && start(&a, &b, 0));
	run(&a, &b, 0, 10000, NULL, 10);
	struct link_want w = {.offset = 0};
	memcpy(w.id, id, 32);
	len = link_encode_want(rec, sizeof(rec), &w, 1);
	CHECK_EQ(link_session_input(b.s, rec, (size_t)len, 0), -EPROTO);
	len = link_encode_ack(rec, sizeof(rec), id, 1);
	CHECK_EQ(link_session_input(a.s, rec, (size_t)len, 0), -EPROTO);
out:
	pair_close(&a, &b);
}

static bool b_got_data(struct side *a, struct side *b)
{
	(void)b;
	return a->delivered > 0 && count_rec(a, LINK_DATA) >= 6 &&
	       a->out[a->delivered - 1].buf[0] == LINK_DATA;
}

/* The WANT offset B asked for id in its log (-1 if no WANT for it). */
static long long want_offset(const struct side *b, const uint8_t id[32])
{
	for (size_t i = 0; i < b->n_out; i++) {
		struct link_msg m;
		const char *why = NULL;
		if (b->out[i].buf[0] != LINK_WANT ||
		    link_parse(b->out[i].buf, b->out[i].len, &m, &why) < 0)
			continue;
		for (size_t k = 0; k < m.count; k++) {
			struct link_want w;
			link_want_at(&m, k, &w);
			if (memcmp(w.id, id, 32) == 0)
				return (long long)w.offset;
		}
	}
	return -1;
}

/* Payload bytes of id that A's first upto DATA records carried, and the first DATA offset. */
static uint64_t data_bytes(const struct side *a, const uint8_t id[32], size_t upto, uint64_t *first)
{
	uint64_t n = 0;
	*first = UINT64_MAX;
	for (size_t i = 0; i < a->n_out && i < upto; i++) {
		struct link_msg m;
		const char *why = NULL;
		if (a->out[i].buf[0] != LINK_DATA ||
		    link_parse(a->out[i].buf, a->out[i].len, &m, &why) < 0 ||
		    memcmp(m.id, id, 32) != 0)
			continue;
		if (*first == UINT64_MAX)
			*first = m.offset;
		n += m.len;
	}
	return n;
}

/* Stage files in a store's payload directory. */
static int stage_files(const char *db)
{
	char path[600];
	snprintf(path, sizeof(path), "%s-payloads", db);
	DIR *d = opendir(path);
	int count = 0;
	struct dirent *e;
	while (d && (e = readdir(d)))
		count += strncmp(e->d_name, "in-", 3) == 0;
	if (d)
		closedir(d);
	return count;
}

static bool reopen_store(struct side *x)
{
	const char *why = NULL;
	store_close(x->n.store);
	x->n.store = NULL;
	return store_open(x->path, &x->n.now, &x->n.store, &why) == 0;
}

/*
 * A cut mid-transfer: nothing stored at B, the bundle kept at A, the bytes B received
 * kept in a stage that survives a restart of B's store; the next session wants the rest
 * only, and the bundle arrives whole. While the transfer was under way, other writers
 * of B's store were not held up.
 */
static void test_cut_resume(void)
{
	struct side a, b;
	size_t big_len = 3 * 1000 * 1000;
	uint8_t *big = pattern(big_len, 6);
	uint8_t id[32];
	uint64_t have = 0, first = 0;
	struct store *other = NULL;
	const char *why = NULL;
	if (!pair_open(&a, &b) || !big) {
		CHECK(!"pair");
		goto out;
	}
	CHECK(submit(&a, big, big_len, true, STORE_NORMAL, id));
	CHECK(session_open(&a, NULL) && session_open(&b, NULL) && start(&a, &b, 0));
	run(&a, &b, 0, 65536, b_got_data, 1000);
	CHECK(b_got_data(&a, &b));
	CHECK_EQ(find_rec(&a, LINK_END, NULL, 0), -1);
	CHECK_EQ(want_offset(&b, id), 0);

	/* Between HEAD and END B's store is free: another handle writes at once. */
	CHECK_EQ(store_open(b.path, &b.n.now, &other, &why), 0);
	if (other) {
		struct store_contact c;
		testnode_as_contact(&a.n, "a-again", &c);
		memset(c.sign_pk, 0x77, 32);
		CHECK_EQ(store_contact_add(other, &c), 0);
		CHECK_EQ(store_setting_set(other, "note", "written mid-transfer"), 0);
		store_close(other);
	}
	CHECK_EQ(store_setting_set(b.n.store, "note2", "and by the session's own handle"), 0);

	uint64_t got = data_bytes(&a, id, a.delivered, &first); /* what reached B */
	session_close(&a);
	session_close(&b);
	CHECK(!store_bundle_exists(b.n.store, id));
	CHECK_EQ(count_bundles(&b.n, STORE_QUEUED) + count_bundles(&b.n, STORE_DELIVERED), 0);
	CHECK_EQ(count_inbox(&b.n), 0);
	CHECK_EQ(stage_files(b.path), 1);
	CHECK_EQ(payload_files(b.path), 1); /* the stage only */
	struct store_bundle bd;
	CHECK_EQ(store_bundle_get(a.n.store, id, NULL, &bd, NULL, 0, NULL), 0);
	CHECK_EQ(bd.state, STORE_QUEUED);
	CHECK_EQ(bd.export_count, 1); /* handed out once, never taken */
	CHECK_EQ(count_sent(&a.n).by_state[STORE_SENT_QUEUED], 1);
	uint64_t plen = bd.payload_len; /* the sealed envelope's: more than the file's */

	/* B's store restarts (its sweep runs): the stage stays, durable as far as it came. */
	CHECK(reopen_store(&b));
	CHECK_EQ(stage_files(b.path), 1);
	CHECK_EQ(store_stage_have(b.n.store, a.n.node_num, id, plen, &have, NULL), 0);
	CHECK(have > 0);
	CHECK_EQ(have, got); /* all B had received was made durable when the session ended */

	clear_log(&a);
	clear_log(&b);
	CHECK(session_open(&a, NULL) && session_open(&b, NULL) && start(&a, &b, 0));
	run(&a, &b, 0, 65536, NULL, 1000);
	CHECK_EQ(a.ret, 0);
	CHECK_EQ(b.ret, 0);
	CHECK_EQ(want_offset(&b, id), (long long)have);
	CHECK_EQ(data_bytes(&a, id, SIZE_MAX, &first), plen - have); /* only the rest went */
	CHECK_EQ(first, have);
	CHECK_EQ(inbox_has(&b.n, big, big_len), 1);
	CHECK(!store_bundle_exists(a.n.store, id));
	CHECK_EQ(stage_files(b.path), 0); /* dropped once the bundle was in */
	CHECK_EQ(store_stage_have(b.n.store, a.n.node_num, id, plen, &have, NULL), 0);
	CHECK_EQ(have, 0);
out:
	pair_close(&a, &b);
	free(big);
}

/*
 * A crash (no session end, no sync) after the stage's file was made: nothing of it was
 * durable, and the next session starts the transfer from 0.
 */
static void test_crash_before_sync(void)
{
	struct side a, b;
	size_t big_len = 2 * 1000 * 1000;
	uint8_t *big = pattern(big_len, 9);
	uint8_t id[32];
	uint64_t have = 1, first = 0;
	int status = -1;
	if (!pair_open(&a, &b) || !big) {
		CHECK(!"pair");
		goto out;
	}
	CHECK(submit(&a, big, big_len, true, STORE_NORMAL, id));
	struct store_bundle bd;
	CHECK_EQ(store_bundle_get(a.n.store, id, NULL, &bd, NULL, 0, NULL), 0);
	uint64_t plen = bd.payload_len;
	fflush(stderr);
	pid_t pid = fork();
	if (pid == 0) {
		/* The child runs the first session half-way and dies without a word. */
		bool ok = session_open(&a, NULL) && session_open(&b, NULL) && start(&a, &b, 0);
		run(&a, &b, 0, 65536, b_got_data, 1000);
		_exit(ok && b_got_data(&a, &b) && stage_files(b.path) == 1 ? 0 : 1);
	}
	CHECK(pid > 0);
	if (pid > 0)
		waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK_EQ(stage_files(b.path), 1); /* the file was made, its bytes never synced */
	CHECK_EQ(store_stage_have(b.n.store, a.n.node_num, id, plen, &have, NULL), 0);
	CHECK_EQ(have, 0);

	CHECK(session_open(&a, NULL) && session_open(&b, NULL) && start(&a, &b, 0));
	run(&a, &b, 0, 65536, NULL, 1000);
	CHECK_EQ(a.ret, 0);
	CHECK_EQ(b.ret, 0);
	CHECK_EQ(want_offset(&b, id), 0);
	CHECK_EQ(data_bytes(&a, id, SIZE_MAX, &first), plen);
	CHECK_EQ(first, 0);
	CHECK_EQ(inbox_has(&b.n, big, big_len), 1);
	CHECK_EQ(stage_files(b.path), 0);
out:
	pair_close(&a, &b);
	free(big);
}

/* Keepalive with fake time: PING after keepalive_s idle, PONG back; three unanswered, BYE idle. */
static void test_keepalive(void)
{
	struct side a, b;
	struct link_limits lim;
	link_limits_default(&lim);
	lim.keepalive_s = 10;
	lim.rescan_s = 0;
	if (!pair_open(&a, &b)) {
		CHECK(!"pair");
		goto out;
	}
	CHECK(session_open(&a, &lim) && session_open(&b, &lim) && start(&a, &b, 0));
	run(&a, &b, 0, 10000, NULL, 10);
	CHECK_EQ(link_session_deadline(a.s), 10000);
	CHECK_EQ(link_session_tick(a.s, 9999), 0);
	CHECK_EQ(count_rec(&a, LINK_PING), 0);
	CHECK_EQ(link_session_tick(a.s, 10000), 0);
	CHECK_EQ(count_rec(&a, LINK_PING), 1);
	CHECK(deliver_one(&a, &b, 10000));
	CHECK_EQ(count_rec(&b, LINK_PONG), 1);
	CHECK(deliver_one(&b, &a, 10500)); /* the PONG: A counts from here */
	CHECK_EQ(link_session_deadline(a.s), 20500);

	/* B goes silent. */
	uint64_t t = 20500;
	for (int i = 0; i < 3; i++, t += 10000) {
		CHECK_EQ(link_session_tick(a.s, t), 0);
		CHECK_EQ(link_session_deadline(a.s), t + 10000);
	}
	CHECK_EQ(count_rec(&a, LINK_PING), 4);
	CHECK_EQ(link_session_tick(a.s, t - 1), 0); /* not due yet */
	CHECK_EQ(link_session_tick(a.s, t), -ETIMEDOUT);
	CHECK(a.out[a.n_out - 1].buf[0] == LINK_BYE && a.out[a.n_out - 1].buf[1] == LINK_BYE_IDLE);
	CHECK_EQ(link_session_deadline(a.s), UINT64_MAX);
out:
	pair_close(&a, &b);
}

/* More transfers at once than max_stages: the one over is refused `later`, the rest goes on. */
static void test_stage_cap(void)
{
	struct side a, b;
	size_t big_len = 2 * 1000 * 1000;
	uint8_t *big = pattern(big_len, 7), *mid = pattern(300000, 8);
	uint8_t bulk[32], urgent[32];
	struct link_limits lim;
	link_limits_default(&lim);
	lim.max_stages = 1;
	if (!pair_open(&a, &b) || !big || !mid) {
		CHECK(!"pair");
		goto out;
	}
	CHECK(submit(&a, big, big_len, true, STORE_BULK, bulk));
	CHECK(session_open(&a, &lim) && session_open(&b, &lim) && start(&a, &b, 0));
	run(&a, &b, 0, 20000, a_data_sent, 1000);
	CHECK(submit(&a, mid, 300000, true, STORE_URGENT, urgent));
	CHECK_EQ(link_session_tick(a.s, 1000ull * lim.rescan_s), 0);
	run(&a, &b, 1000ull * lim.rescan_s, 20000, NULL, 5000);
	CHECK_EQ(a.ret, 0);
	CHECK_EQ(b.ret, 0);
	CHECK(find_rec(&b, LINK_REFUSE, NULL, 0) >= 0);
	CHECK_EQ(find_rec(&a, LINK_END, urgent, 0), -1); /* stopped when refused */
	CHECK_EQ(inbox_has(&b.n, big, big_len), 1);
	CHECK_EQ(inbox_has(&b.n, mid, 300000), 0);
	CHECK(store_bundle_exists(a.n.store, urgent));
	CHECK(!store_bundle_exists(a.n.store, bulk));
	CHECK_EQ(stage_files(b.path), 0);
out:
	pair_close(&a, &b);
	free(big);
	free(mid);
}

/* ---- hardening ------------------------------------------------------------------------ */

/* The reason of the last REFUSE of id in x's log (0 none); *retry its retry_after_s. */
static int refuse_of(const struct side *x, const uint8_t id[32], uint32_t *retry)
{
	int reason = 0;
	for (size_t i = 0; i < x->n_out; i++) {
		struct link_msg m;
		const char *why = NULL;
		if (x->out[i].buf[0] != LINK_REFUSE ||
		    link_parse(x->out[i].buf, x->out[i].len, &m, &why) < 0)
			continue;
		for (size_t k = 0; k < m.count; k++) {
			struct link_refuse r;
			link_refuse_at(&m, k, &r);
			if (memcmp(r.id, id, 32) == 0) {
				reason = r.reason;
				if (retry)
					*retry = r.retry_after_s;
			}
		}
	}
	return reason;
}

/* How many times id was offered in x's log. */
static int offers_of(const struct side *x, const uint8_t id[32])
{
	int n = 0;
	for (size_t i = 0; i < x->n_out; i++) {
		struct link_msg m;
		const char *why = NULL;
		if (x->out[i].buf[0] != LINK_OFFER ||
		    link_parse(x->out[i].buf, x->out[i].len, &m, &why) < 0)
			continue;
		for (size_t k = 0; k < m.count; k++) {
			struct link_offer o;
			link_offer_at(&m, k, &o);
			n += memcmp(o.id, id, 32) == 0;
		}
	}
	return n;
}

static bool acked(const struct side *x, const uint8_t id[32])
{
	for (size_t i = 0; i < x->n_out; i++) {
		struct link_msg m;
		const char *why = NULL;
		if (x->out[i].buf[0] != LINK_ACK ||
		    link_parse(x->out[i].buf, x->out[i].len, &m, &why) < 0)
			continue;
		for (size_t k = 0; k < m.count; k++)
			if (memcmp(link_ack_at(&m, k), id, 32) == 0)
				return true;
	}
	return false;
}

/* No keepalive, no periodic rescan: the tests below move time themselves. */
static void quiet_limits(struct link_limits *lim)
{
	link_limits_default(lim);
	lim->keepalive_s = 0;
	lim->rescan_s = 0;
}

/* The disk's reserve and the stages of all peers: offers refused `disk full`, no WANT. */
static void test_disk_full(void)
{
	struct side a, b;
	uint8_t *mid = pattern(300000, 20), id[32], other[32];
	struct link_limits la, lb;
	struct store_stage *st = NULL;
	uint32_t retry = 0;
	quiet_limits(&la);
	quiet_limits(&lb);
	lb.disk_reserve = 1ull << 62; /* more than any disk has */
	if (!pair_open(&a, &b) || !mid) {
		CHECK(!"pair");
		goto out;
	}
	CHECK(submit(&a, mid, 300000, true, STORE_URGENT, id));
	CHECK(session_open(&a, &la) && session_open(&b, &lb) && start(&a, &b, 0));
	run(&a, &b, 0, 100000, NULL, 100);
	CHECK_EQ(a.ret, 0);
	CHECK_EQ(b.ret, 0);
	CHECK_EQ(refuse_of(&b, id, &retry), LINK_REFUSE_DISK_FULL);
	CHECK_EQ(retry, 600);
	CHECK_EQ(want_offset(&b, id), -1);
	CHECK(store_bundle_exists(a.n.store, id));
	session_close(&a);
	session_close(&b);
	clear_log(&a);
	clear_log(&b);

	/* Another peer's stage takes what all stages may take: `disk full` too. */
	memset(other, 0x99, 32);
	CHECK_EQ(store_stage_open(b.n.store, 12345, other, 600000, 0, 3600000, NULL, &b.n.now, &st),
		 0);
	if (st) {
		CHECK(store_stage_append(st, mid, 300000) == 0 &&
		      store_stage_append(st, mid, 300000) == 0);
		CHECK_EQ(store_stage_sync(st), 0);
		store_stage_close(st);
	}
	quiet_limits(&lb);
	lb.disk_reserve = 0;
	lb.disk_reserve_pct = 0;
	lb.stage_total_max = 800000;
	CHECK(session_open(&a, &la) && session_open(&b, &lb) && start(&a, &b, 0));
	run(&a, &b, 0, 100000, NULL, 100);
	CHECK_EQ(refuse_of(&b, id, &retry), LINK_REFUSE_DISK_FULL);
	CHECK_EQ(want_offset(&b, id), -1);
	session_close(&a);
	session_close(&b);
	clear_log(&a);
	clear_log(&b);
	lb.stage_total_max = 1000000; /* room for both (the sealed payload is a bit more) */
	CHECK(session_open(&a, &la) && session_open(&b, &lb) && start(&a, &b, 0));
	run(&a, &b, 0, 100000, NULL, 1000);
	CHECK_EQ(a.ret, 0);
	CHECK_EQ(b.ret, 0);
	CHECK_EQ(refuse_of(&b, id, &retry), 0);
	CHECK_EQ(inbox_has(&b.n, mid, 300000), 1);
out:
	pair_close(&a, &b);
	free(mid);
}

/* A failed sync of a stage: dropped, refused `later`, offered again after the retry. */
static void test_sync_poison(void)
{
	struct side a, b;
	size_t big_len = 9 * 1000 * 1000;
	uint8_t *big = pattern(big_len, 21), id[32];
	struct link_limits lim;
	uint32_t retry = 0;
	quiet_limits(&lim);
	if (!pair_open(&a, &b) || !big) {
		CHECK(!"pair");
		goto out;
	}
	CHECK(submit(&a, big, big_len, true, STORE_NORMAL, id));
	CHECK(session_open(&a, &lim) && session_open(&b, &lim) && start(&a, &b, 0));
	store_testing_stage_sync_fail(1); /* the first sync, at 4 MiB */
	run(&a, &b, 0, 65536, NULL, 5000);
	store_testing_stage_sync_fail(0);
	CHECK_EQ(a.ret, 0);
	CHECK_EQ(b.ret, 0);
	CHECK_EQ(refuse_of(&b, id, &retry), LINK_REFUSE_LATER);
	CHECK_EQ(retry, 60);
	CHECK_EQ(stage_files(b.path), 0); /* not trusted again */
	CHECK_EQ(inbox_has(&b.n, big, big_len), 0);
	CHECK_EQ(offers_of(&a, id), 1);
	CHECK_EQ(link_session_deadline(a.s), 60000);

	/* The retry: offered again in the same session, wanted from 0, delivered. */
	CHECK_EQ(link_session_tick(a.s, 59999), 0);
	CHECK_EQ(offers_of(&a, id), 1);
	CHECK_EQ(link_session_tick(a.s, 60000), 0);
	CHECK_EQ(offers_of(&a, id), 2);
	run(&a, &b, 60000, 65536, NULL, 5000);
	CHECK_EQ(a.ret, 0);
	CHECK_EQ(b.ret, 0);
	CHECK_EQ(inbox_has(&b.n, big, big_len), 1);
	CHECK(!store_bundle_exists(a.n.store, id));
out:
	store_testing_stage_sync_fail(0);
	pair_close(&a, &b);
	free(big);
}

static bool a_data_four(struct side *a, struct side *b)
{
	(void)b;
	return count_rec(a, LINK_DATA) >= 4;
}

/*
 * Transfers refused at their HEAD, and WANTs the sender could not answer, are freed:
 * they no longer count against max_offers, and later offers are still wanted.
 */
static void test_in_freed(void)
{
	struct side a, b;
	size_t big_len = 2 * 1000 * 1000;
	uint8_t *big = pattern(big_len, 22), *mid = pattern(300000, 23);
	uint8_t bulk[32], urgent[32], text_id[32], x[32], y[32];
	const char *text = "still wanted", *tx = "x", *ty = "y";
	struct link_limits la, lb;
	struct link_stats st;
	quiet_limits(&la);
	quiet_limits(&lb);
	lb.max_offers = 2;
	lb.max_stages = 1;
	if (!pair_open(&a, &b) || !big || !mid) {
		CHECK(!"pair");
		goto out;
	}
	CHECK(submit(&a, big, big_len, true, STORE_BULK, bulk));
	CHECK(session_open(&a, &la) && session_open(&b, &lb) && start(&a, &b, 0));
	run(&a, &b, 0, 20000, a_data_four, 1000);
	CHECK(submit(&a, mid, 300000, true, STORE_URGENT, urgent));
	link_session_rescan(a.s);
	CHECK_EQ(link_session_tick(a.s, 1000), 0);
	run(&a, &b, 1000, 20000, NULL, 5000);
	CHECK_EQ(refuse_of(&b, urgent, NULL), LINK_REFUSE_LATER); /* at its HEAD: max_stages */
	CHECK_EQ(inbox_has(&b.n, big, big_len), 1);
	link_session_stats(b.s, &st);
	CHECK_EQ(st.transfers_held, 0);

	/* B's two places are free: a new offer is wanted, not refused `later`. */
	CHECK(submit(&a, (const uint8_t *)text, strlen(text), false, STORE_NORMAL, text_id));
	link_session_rescan(a.s);
	CHECK_EQ(link_session_tick(a.s, 2000), 0);
	run(&a, &b, 2000, 20000, NULL, 1000);
	CHECK_EQ(refuse_of(&b, text_id, NULL), 0);
	CHECK_EQ(inbox_has(&b.n, (const uint8_t *)text, strlen(text)), 1);

	/* x and y wanted; x is gone at A before its HEAD: y's HEAD tells B, which forgets x. */
	CHECK(submit(&a, (const uint8_t *)tx, 1, false, STORE_NORMAL, x));
	CHECK(submit(&a, (const uint8_t *)ty, 1, false, STORE_NORMAL, y));
	link_session_rescan(a.s);
	CHECK_EQ(link_session_tick(a.s, 3000), 0);
	/* Both directions each round (no short circuit), until neither has a record. */
	while ((int)deliver_one(&a, &b, 3000) | (int)deliver_one(&b, &a, 3000))
		;
	CHECK(want_offset(&b, x) == 0 && want_offset(&b, y) == 0);
	CHECK_EQ(store_bundle_delete(a.n.store, x), 0);
	run(&a, &b, 3000, 20000, NULL, 1000);
	CHECK_EQ(a.ret, 0);
	CHECK_EQ(b.ret, 0);
	CHECK_EQ(inbox_has(&b.n, (const uint8_t *)ty, 1), 1);
	link_session_stats(b.s, &st);
	CHECK_EQ(st.transfers_held, 0);
out:
	pair_close(&a, &b);
	free(big);
	free(mid);
}

static size_t most_held;

static bool sample_held(struct side *a, struct side *b)
{
	struct link_stats st;
	(void)b;
	link_session_stats(a->s, &st);
	if (st.offers_held > most_held)
		most_held = st.offers_held;
	return false;
}

/* A long session keeps only its outstanding offers (and refusals): memory stays bounded. */
static void test_out_bounded(void)
{
	struct side a, b;
	struct link_limits la;
	struct link_stats st;
	int n = 150;
	quiet_limits(&la);
	la.max_offers = 8;
	if (!pair_open(&a, &b)) {
		CHECK(!"pair");
		goto out;
	}
	for (int i = 0; i < n; i++) {
		char text[32];
		snprintf(text, sizeof(text), "message %d", i);
		CHECK(submit(&a, (const uint8_t *)text, strlen(text), false, STORE_NORMAL, NULL));
	}
	CHECK(session_open(&a, &la) && session_open(&b, NULL) && start(&a, &b, 0));
	most_held = 0;
	run(&a, &b, 0, 100000, sample_held, 10000);
	CHECK_EQ(a.ret, 0);
	CHECK_EQ(b.ret, 0);
	CHECK_EQ(count_inbox(&b.n), n);
	link_session_stats(a.s, &st);
	CHECK_EQ(st.offered, n);
	CHECK(most_held <= 2 * la.max_offers + 64);
	link_session_rescan(a.s);
	CHECK_EQ(link_session_tick(a.s, 1), 0);
	link_session_stats(a.s, &st);
	CHECK_EQ(st.offers_held, 0);
	CHECK(link_session_idle(a.s));
out:
	pair_close(&a, &b);
}

/*
 * While a batch is open on the receiver's store, nothing is wanted or acknowledged (an
 * ACK could rest on what the batch rolls back): REFUSE later, in a second; then the offer
 * comes again after retry_after_s, in the same session, and goes through.
 */
static void test_batch_open(void)
{
	struct side a, b;
	const char *text = "not acknowledged inside a batch";
	uint8_t id[32];
	struct link_limits lim;
	uint32_t retry = 0;
	quiet_limits(&lim);
	if (!pair_open(&a, &b)) {
		CHECK(!"pair");
		goto out;
	}
	CHECK(submit(&a, (const uint8_t *)text, strlen(text), false, STORE_NORMAL, id));
	CHECK_EQ(store_batch_begin(b.n.store), 0);
	CHECK(session_open(&a, &lim) && session_open(&b, &lim) && start(&a, &b, 0));
	run(&a, &b, 0, 100000, NULL, 100);
	CHECK_EQ(a.ret, 0);
	CHECK_EQ(b.ret, 0);
	CHECK(!acked(&b, id));
	CHECK_EQ(refuse_of(&b, id, &retry), LINK_REFUSE_LATER);
	CHECK_EQ(retry, 1); /* the batch ends with the read burst: no minute's wait */
	store_batch_abort(b.n.store);
	CHECK_EQ(count_inbox(&b.n), 0);
	CHECK(store_bundle_exists(a.n.store, id));
	CHECK_EQ(link_session_deadline(a.s), 1000);
	CHECK(link_session_idle(a.s)); /* the refusal waits: a dialer may hang up */
	CHECK_EQ(link_session_tick(a.s, 1000), 0);
	CHECK(!link_session_idle(a.s));
	run(&a, &b, 1000, 100000, NULL, 100);
	CHECK(acked(&b, id));
	CHECK_EQ(inbox_has(&b.n, (const uint8_t *)text, strlen(text)), 1);
	CHECK(!store_bundle_exists(a.n.store, id));
out:
	pair_close(&a, &b);
}

/*
 * More offers than the receiver takes at once: the rest are refused `later`, in a second
 * (its transfers end within the burst), and arrive in the same session once retried.
 */
static void test_offers_over_max(void)
{
	struct side a, b;
	const char *t1 = "first of two", *t2 = "second of two";
	uint8_t id1[32], id2[32];
	struct link_limits la, lb;
	uint32_t retry = 0;
	quiet_limits(&la);
	quiet_limits(&lb);
	lb.max_offers = 1;
	if (!pair_open(&a, &b)) {
		CHECK(!"pair");
		goto out;
	}
	CHECK(submit(&a, (const uint8_t *)t1, strlen(t1), false, STORE_NORMAL, id1));
	CHECK(submit(&a, (const uint8_t *)t2, strlen(t2), false, STORE_NORMAL, id2));
	CHECK(session_open(&a, &la) && session_open(&b, &lb) && start(&a, &b, 0));
	run(&a, &b, 0, 100000, NULL, 100);
	CHECK(acked(&b, id1) != acked(&b, id2)); /* one taken, one refused */
	CHECK_EQ(refuse_of(&b, acked(&b, id1) ? id2 : id1, &retry), LINK_REFUSE_LATER);
	CHECK_EQ(retry, 1);
	CHECK_EQ(link_session_deadline(a.s), 1000);
	CHECK_EQ(link_session_tick(a.s, 1000), 0);
	run(&a, &b, 1000, 100000, NULL, 100);
	CHECK(acked(&b, id1) && acked(&b, id2));
	CHECK_EQ(count_inbox(&b.n), 2);
out:
	pair_close(&a, &b);
}

/* A copy of the bundle quarantined here meanwhile: at END as at the offer, `later`, 3600 s. */
static void test_end_quarantined(void)
{
	struct side a, b;
	size_t big_len = 2 * 1000 * 1000;
	uint8_t *big = pattern(big_len, 24), id[32];
	uint8_t *buf = malloc(big_len + 65536), head[BUNDLE_HEAD_MAX];
	size_t headlen = 0;
	struct store_bundle bd;
	struct ingest *in = NULL;
	struct ingest_result res;
	uint32_t retry = 0;
	if (!pair_open(&a, &b) || !big || !buf) {
		CHECK(!"pair");
		goto out;
	}
	CHECK(submit(&a, big, big_len, true, STORE_NORMAL, id));
	CHECK(session_open(&a, NULL) && session_open(&b, NULL) && start(&a, &b, 0));
	run(&a, &b, 0, 65536, b_got_data, 1000);
	CHECK(b_got_data(&a, &b));
	/* The same bundle reaches B by another way, and rots there. */
	struct mem m = {buf, big_len + 65536, 0};
	CHECK_EQ(store_bundle_get(a.n.store, id, &a.n.now, &bd, head, sizeof(head), &headlen), 0);
	CHECK_EQ(node_emit(&a.n, &bd, head, headlen, to_buf, &m, NULL), 0);
	CHECK_EQ(ingest_new(&b.n, &in), 0);
	if (in) {
		ingest_feed(in, buf, m.off);
		CHECK_EQ(ingest_finish(in, &res), 0);
	}
	sqlite3 *db = NULL;
	CHECK_EQ(sqlite3_open(b.path, &db), SQLITE_OK);
	CHECK_EQ(sqlite3_exec(db, "UPDATE bundles SET state = 3", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	run(&a, &b, 0, 65536, NULL, 1000);
	CHECK_EQ(a.ret, 0);
	CHECK_EQ(b.ret, 0);
	CHECK(find_rec(&a, LINK_END, id, 0) >= 0);
	CHECK_EQ(refuse_of(&b, id, &retry), LINK_REFUSE_LATER);
	CHECK_EQ(retry, 3600);
	CHECK(store_bundle_exists(a.n.store, id));
out:
	pair_close(&a, &b);
	free(big);
	free(buf);
}

/* The node (its store) closed before the session is freed: no use of freed memory. */
static void test_free_after_close(void)
{
	struct side a, b;
	size_t big_len = 3 * 1000 * 1000;
	uint8_t *big = pattern(big_len, 25), id[32];
	uint64_t have = 0;
	struct store *s = NULL;
	const char *why = NULL;
	if (!pair_open(&a, &b) || !big) {
		CHECK(!"pair");
		goto out;
	}
	CHECK(submit(&a, big, big_len, true, STORE_NORMAL, id));
	struct store_bundle bd;
	CHECK_EQ(store_bundle_get(a.n.store, id, NULL, &bd, NULL, 0, NULL), 0);
	CHECK(session_open(&a, NULL) && session_open(&b, NULL) && start(&a, &b, 0));
	run(&a, &b, 0, 65536, b_got_data, 1000);
	uint64_t first = 0, got = data_bytes(&a, id, a.delivered, &first);
	node_close(&b.n);
	session_close(&b);
	CHECK_EQ(store_open(b.path, &a.n.now, &s, &why), 0);
	if (s) {
		CHECK_EQ(store_stage_have(s, a.n.node_num, id, bd.payload_len, &have, NULL), 0);
		CHECK_EQ(have, got); /* the store made it durable as it closed */
		store_close(s);
	}
out:
	pair_close(&a, &b);
	free(big);
}

/* Per-link policy: a minimum priority, a byte budget, a rescan on demand, idleness. */
static void test_policy(void)
{
	struct side a, b;
	const char *t1 = "normal one", *t2 = "urgent one";
	uint8_t *mid = pattern(300000, 26), bulk[32], n1[32], u1[32];
	struct link_limits la;
	struct link_stats st;
	quiet_limits(&la);
	la.min_priority = STORE_NORMAL;
	la.budget_bytes = 3000;
	if (!pair_open(&a, &b) || !mid) {
		CHECK(!"pair");
		goto out;
	}
	CHECK(submit(&a, mid, 300000, true, STORE_BULK, bulk));
	CHECK(submit(&a, (const uint8_t *)t1, strlen(t1), false, STORE_NORMAL, n1));
	CHECK(session_open(&a, &la) && session_open(&b, NULL) && start(&a, &b, 0));
	run(&a, &b, 0, 100000, NULL, 1000);
	CHECK_EQ(offers_of(&a, bulk), 0); /* under the link's minimum priority */
	CHECK_EQ(inbox_has(&b.n, (const uint8_t *)t1, strlen(t1)), 1);
	link_session_stats(a.s, &st);
	CHECK(st.bytes_out > 0 && st.bytes_out <= 3000);
	uint64_t spent = st.bytes_out;
	CHECK(link_session_idle(a.s));

	/* Submitted now: offered at once on link_session_rescan, not at a periodic scan. */
	la.min_priority = STORE_BULK;
	CHECK(submit(&a, (const uint8_t *)t2, strlen(t2), false, STORE_URGENT, u1));
	CHECK_EQ(link_session_deadline(a.s), UINT64_MAX);
	link_session_rescan(a.s);
	link_session_rescan(a.s); /* coalesced */
	CHECK(!link_session_idle(a.s));
	CHECK_EQ(link_session_deadline(a.s), 0);
	CHECK_EQ(offers_of(&a, u1), 0);
	CHECK_EQ(link_session_tick(a.s, 5), 0);
	CHECK_EQ(offers_of(&a, u1), 1);
	CHECK_EQ(link_session_deadline(a.s), UINT64_MAX);
	run(&a, &b, 5, 100000, NULL, 1000);
	CHECK_EQ(inbox_has(&b.n, (const uint8_t *)t2, strlen(t2)), 1);
	link_session_stats(a.s, &st);
	CHECK(st.bytes_out <= 3000);
	spent = st.bytes_out;

	/* Out of budget: an urgent bundle waits too; a refill sends it, within the refill. */
	uint8_t u2[32];
	CHECK(submit(&a, mid, 300000, true, STORE_URGENT, u2));
	link_session_rescan(a.s);
	CHECK_EQ(link_session_tick(a.s, 6), 0);
	CHECK_EQ(offers_of(&a, u2), 0);
	link_session_set_budget(a.s, 200000); /* still short of it */
	CHECK_EQ(link_session_tick(a.s, 7), 0);
	CHECK_EQ(offers_of(&a, u2), 0);
	link_session_set_budget(a.s, 330000); /* 300,000 and 8 % for the records */
	CHECK_EQ(link_session_deadline(a.s), 0);
	CHECK_EQ(link_session_tick(a.s, 8), 0);
	CHECK_EQ(offers_of(&a, u2), 1);
	CHECK(!link_session_idle(a.s));
	run(&a, &b, 8, 4096, NULL, 10000); /* small pump budgets: segments stay whole */
	CHECK_EQ(a.ret, 0);
	CHECK_EQ(inbox_has(&b.n, mid, 300000), 1);
	link_session_stats(a.s, &st);
	CHECK(st.bytes_out - spent > 300000 && st.bytes_out - spent <= 330000);
	CHECK(link_session_idle(a.s));
	CHECK(store_bundle_exists(a.n.store, bulk)); /* still waits for another link */
out:
	pair_close(&a, &b);
	free(mid);
}

/* Group commit: no ACK before link_session_flush committed; a failed batch acknowledges nothing. */
static void test_group_commit(void)
{
	struct side a, b;
	const char *t1 = "first of a burst", *t2 = "second of a burst";
	uint8_t id1[32], id2[32];
	struct link_limits lim, glim;
	quiet_limits(&lim);
	glim = lim;
	glim.group_commit = true;
	if (!pair_open(&a, &b)) {
		CHECK(!"pair");
		goto out;
	}
	CHECK(submit(&a, (const uint8_t *)t1, strlen(t1), false, STORE_NORMAL, id1));
	CHECK(submit(&a, (const uint8_t *)t2, strlen(t2), false, STORE_NORMAL, id2));
	CHECK(session_open(&a, &lim) && session_open(&b, &glim) && start(&a, &b, 0));
	run(&a, &b, 0, 100000, NULL, 100);
	CHECK_EQ(a.ret, 0);
	CHECK_EQ(b.ret, 0);
	/* Both are in B's open batch, neither acknowledged, the batch B's own. */
	CHECK(!acked(&b, id1) && !acked(&b, id2));
	CHECK(store_batch_is_open(b.n.store));
	CHECK(store_bundle_exists(a.n.store, id1) && store_bundle_exists(a.n.store, id2));
	/* No receipt offered from inside the batch: it could outlive a rollback. */
	CHECK(find_rec(&b, LINK_OFFER, NULL, 0) < 0);
	CHECK_EQ(link_session_flush(b.s), 0);
	CHECK(!store_batch_is_open(b.n.store));
	CHECK(acked(&b, id1) && acked(&b, id2));
	CHECK_EQ(count_inbox(&b.n), 2);
	run(&a, &b, 0, 100000, NULL, 100);
	CHECK(!store_bundle_exists(a.n.store, id1) && !store_bundle_exists(a.n.store, id2));
	CHECK_EQ(link_session_flush(b.s), 0); /* nothing open: a no-op */

	/* A session freed with its batch open keeps the bundles; the next offer gets an ACK. */
	const char *t3 = "cut before the flush";
	uint8_t id3[32];
	CHECK(submit(&a, (const uint8_t *)t3, strlen(t3), false, STORE_NORMAL, id3));
	link_session_rescan(a.s);
	CHECK_EQ(link_session_tick(a.s, 0), 0);
	run(&a, &b, 0, 100000, NULL, 100);
	CHECK(!acked(&b, id3));
	session_close(&a);
	session_close(&b);
	CHECK(!store_batch_is_open(b.n.store));
	CHECK_EQ(count_inbox(&b.n), 3);
	CHECK(store_bundle_exists(a.n.store, id3));
	CHECK(session_open(&a, &lim) && session_open(&b, &glim) && start(&a, &b, 0));
	run(&a, &b, 0, 100000, NULL, 100);
	CHECK(acked(&b, id3)); /* already here: an ACK at the offer, no batch needed */
	run(&a, &b, 0, 100000, NULL, 100);
	CHECK(!store_bundle_exists(a.n.store, id3));
	CHECK_EQ(count_inbox(&b.n), 3);
out:
	pair_close(&a, &b);
}

/* A small bundle in the open batch, then a staged one in the same burst: no REFUSE LATER. */
static void test_group_commit_then_stage(void)
{
	struct side a, b;
	static uint8_t big[6000];
	const char *t1 = "small, into the batch";
	uint8_t id1[32], id2[32];
	struct link_limits lim, glim;
	quiet_limits(&lim);
	glim = lim;
	glim.group_commit = true;
	glim.small_max = 1024; /* as on a serial line: the file is staged */
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7 + 3);
	if (!pair_open(&a, &b)) {
		CHECK(!"pair");
		goto out;
	}
	CHECK(submit(&a, (const uint8_t *)t1, strlen(t1), false, STORE_NORMAL, id1));
	CHECK(submit(&a, big, sizeof(big), true, STORE_NORMAL, id2));
	CHECK(session_open(&a, &lim) && session_open(&b, &glim) && start(&a, &b, 0));
	for (int i = 0; i < 4; i++) {
		run(&a, &b, 0, 100000, NULL, 100);
		CHECK_EQ(link_session_flush(b.s), 0);
	}
	CHECK_EQ(a.ret, 0);
	CHECK_EQ(b.ret, 0);
	CHECK_EQ(refuse_of(&b, id2, NULL), 0);
	CHECK(acked(&b, id1) && acked(&b, id2));
	CHECK_EQ(count_inbox(&b.n), 2);
out:
	pair_close(&a, &b);
}

int main(void)
{
	if (tern_crypto_init() < 0 || !mkdtemp(dir))
		return 1;
	test_pread();
	test_transfer();
	test_both_ways();
	test_already_there();
	test_overtake();
	test_rescan_whole();
	test_stage_cap();
	test_wrong_node();
	test_out_of_order();
	test_cut_resume();
	test_crash_before_sync();
	test_keepalive();
	test_disk_full();
	test_sync_poison();
	test_in_freed();
	test_out_bounded();
	test_batch_open();
	test_offers_over_max();
	test_group_commit();
	test_group_commit_then_stage();
	test_end_quarantined();
	test_free_after_close();
	test_policy();
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "test_link: could not remove %s\n", dir);
	TEST_MAIN_END();
}
