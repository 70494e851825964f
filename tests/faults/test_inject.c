/*
 * Custody under injected faults (issue 7): a transfer between two nodes through the real link
 * engine, with the N-th I/O call or allocation of the receiver failing, for every N (or every
 * TERN_INJECT_STRIDE-th) up to the count of a clean run. After each: the receiver's store
 * reopens and checks; each bundle is either acknowledged and stored, intact, or not
 * acknowledged and absent (or stored, not acknowledged: the window between a commit and its
 * ACK, which the next session must close with an ACK and no second delivery); and a second,
 * fault-free session delivers the rest, each bundle once.
 *
 * Environment: TERN_INJECT_STRIDE (default 29: the short form; 1 is the long form),
 * TERN_INJECT_TMP (where the stores go: default /dev/shm if there is one, for speed: the faults
 * are injected, not the disk's), TERN_INJECT_MODES (a comma list of sqlite-io, tern-io, tern-alloc,
 * sqlite-alloc; default all), TERN_INJECT_GROUP (0: a commit per bundle, 1: the daemon's group
 * commit; default both), TERN_INJECT_FULL=1 (writes fail with ENOSPC and SQLITE_FULL instead of
 * EIO), TERN_INJECT_PERSIST=1 (every call from the N-th on fails: a dying disk, memory gone),
 * TERN_INJECT_SENDER=1 (the sender's calls fail instead: it must keep what was not ACKed),
 * TERN_INJECT_ONLY=mode:N (one run, verbose), TERN_INJECT_VERBOSE=1.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "relay/link.h"
#include "relay/node.h"
#include "store/store_testing.h"
#include "tests/faults/inject.h"
#include "tests/unit/test.h"
#include "tests/testnode.h"

/* LeakSanitizer's per-run check, where the build has it (ASan). */
int __lsan_do_recoverable_leak_check(void) __attribute__((weak));

static char dir[400];
static char tmpl[600], work[600];
static bool verbose;
static bool sender_faulty; /* TERN_INJECT_SENDER: the faults hit the sender instead */
static bool group; /* the daemon's group commit (link_limits.group_commit), or one per bundle */

/* ---- the bundles ----------------------------------------------------------------------- */

struct spec {
	size_t len;
	bool file;
	enum store_priority prio;
	bool to_c; /* for a third node: queued at the receiver, not delivered */
};

/*
 * Mixed sizes: texts; files held in memory (64 KiB at most); staged in memory only; staged
 * in a file synced every 256 KiB; and 1.3 MB, whose payload the store keeps in a file.
 */
static const struct spec specs[] = {
    {12, false, STORE_NORMAL, false},	  {300, false, STORE_URGENT, false},
    {2000, false, STORE_NORMAL, false},	  {20000, true, STORE_NORMAL, false},
    {60000, true, STORE_BULK, false},	  {70000, true, STORE_NORMAL, false},
    {200000, true, STORE_NORMAL, false},  {600000, true, STORE_NORMAL, false},
    {1300000, true, STORE_NORMAL, false}, {40, false, STORE_NORMAL, true},
    {100000, true, STORE_URGENT, true},	  {5000, true, STORE_BULK, false},
};
#define N_BUNDLES (sizeof(specs) / sizeof(specs[0]))

struct expect {
	uint8_t id[32];
	uint8_t *plain;	 /* what was sent */
	uint8_t *sealed; /* the payload as stored at the sender: the same bytes at the receiver */
	size_t sealed_len;
};
static struct expect want[N_BUNDLES];

/* ---- nodes ------------------------------------------------------------------------------ */

static struct identity *id_a, *id_b, *id_c;

static void node_init(struct node *n, struct identity *id)
{
	memset(n, 0, sizeof(*n));
	n->id = id;
	identity_get_public(id, &n->pub);
	n->node_num = identity_node_number(n->pub.sign_pk);
	testnode_clock(&n->now);
}

/* Closes what a run opened; the identity is kept for the next run. */
static void node_end(struct node *n)
{
	store_close(n->store);
	envelope_opener_free(n->spare);
	n->store = NULL;
	n->spare = NULL;
}

static int node_open_store(struct node *n, const char *path)
{
	const char *why = NULL;
	int ret = store_open(path, &n->now, &n->store, &why);
	if (ret < 0 && verbose)
		fprintf(stderr, "test_inject: %s: %s\n", path, why ? why : strerror(-ret));
	return ret;
}

/* ---- the pipe (as in tests/unit/test_link.c); the receiver's calls run in the scope ------ */

struct rec {
	uint8_t *buf;
	size_t len;
};

struct side {
	struct node n;
	char path[700];
	struct store_peer peer; /* the other side */
	struct link_session *s;
	struct rec *out; /* records this side sent, in order */
	size_t n_out, cap_out, delivered;
	int ret;
	bool faulty; /* the receiver: its calls are counted and may fail */
};

static int to_pipe(void *ctx, const uint8_t *rec, size_t len)
{
	struct side *x = ctx;
	bool was = inject_scope(false); /* the harness's own memory */
	int ret = 0;
	if (x->n_out == x->cap_out) {
		size_t cap = x->cap_out ? 2 * x->cap_out : 64;
		struct rec *r = realloc(x->out, cap * sizeof(*r));
		if (!r) {
			ret = -ENOMEM;
			goto out;
		}
		x->out = r;
		x->cap_out = cap;
	}
	uint8_t *copy = malloc(len);
	if (!copy) {
		ret = -ENOMEM;
		goto out;
	}
	memcpy(copy, rec, len);
	x->out[x->n_out++] = (struct rec){copy, len};
out:
	inject_scope(was);
	return ret;
}

static void clear_log(struct side *x)
{
	for (size_t i = 0; i < x->n_out; i++)
		free(x->out[i].buf);
	free(x->out);
	x->out = NULL;
	x->n_out = x->cap_out = x->delivered = 0;
}

static void quiet_limits(struct link_limits *lim)
{
	link_limits_default(lim);
	lim->keepalive_s = 0;
	lim->rescan_s = 0;
	lim->disk_reserve = 0;
	lim->disk_reserve_pct = 0;
	lim->stage_sync_bytes = 256 * 1024; /* the 600 kB and 1.3 MB ones: a file, several syncs */
	lim->group_commit = group;
}

static bool session_open(struct side *x)
{
	struct link_limits lim;
	quiet_limits(&lim);
	x->ret = 0;
	bool was = inject_scope(x->faulty);
	int ret = link_session_new(&x->n, &x->peer, &lim, to_pipe, x, &x->s);
	inject_scope(was);
	if (ret < 0)
		x->ret = ret;
	return ret == 0;
}

static void session_free(struct side *x)
{
	bool was = inject_scope(x->faulty);
	link_session_free(x->s);
	inject_scope(was);
	x->s = NULL;
}

static void start(struct side *x, uint64_t now)
{
	if (!x->s)
		return;
	bool was = inject_scope(x->faulty);
	int ret = link_session_start(x->s, now);
	inject_scope(was);
	if (ret < 0 && !x->ret)
		x->ret = ret;
}

static void tick(struct side *x, uint64_t now)
{
	if (!x->s || x->ret)
		return;
	bool was = inject_scope(x->faulty);
	int ret = link_session_tick(x->s, now);
	inject_scope(was);
	if (ret < 0 && !x->ret)
		x->ret = ret;
}

static bool deliver_one(struct side *x, struct side *y, uint64_t now)
{
	if (x->delivered == x->n_out || !y->s || y->ret)
		return false;
	struct rec *r = &x->out[x->delivered++];
	bool was = inject_scope(y->faulty);
	int ret = link_session_input(y->s, r->buf, r->len, now);
	inject_scope(was);
	if (ret < 0 && !y->ret)
		y->ret = ret;
	return true;
}

/* As the daemon does after each read burst: the group's commit, then its ACKs. */
static void flush(struct side *x)
{
	if (!x->s || x->ret)
		return;
	bool was = inject_scope(x->faulty);
	int ret = link_session_flush(x->s);
	inject_scope(was);
	if (ret < 0 && !x->ret)
		x->ret = ret;
}

/* Records both ways (bursts of 16 at most) and pumps, until nothing moves or a session ends. */
static void run(struct side *a, struct side *b, uint64_t now)
{
	for (int round = 0; round < 100000; round++) {
		bool moved = false;
		for (int burst = 0;; burst++) {
			bool one = deliver_one(a, b, now);
			one |= deliver_one(b, a, now);
			if (!one || burst % 16 == 15) {
				flush(a);
				flush(b);
			}
			if (!one)
				break;
			moved = true;
		}
		if (a->ret || b->ret || !a->s || !b->s)
			return;
		struct side *xs[2] = {a, b};
		for (int i = 0; i < 2; i++) {
			size_t made = 0;
			bool was = inject_scope(xs[i]->faulty);
			int ret = link_session_pump(xs[i]->s, now, 65536, &made);
			inject_scope(was);
			if (ret < 0 && !xs[i]->ret)
				xs[i]->ret = ret;
			moved |= made > 0;
		}
		flush(a);
		flush(b);
		if (!moved && a->delivered == a->n_out && b->delivered == b->n_out)
			return;
	}
}

/* Whether x sent an ACK of id among its first upto records. */
static bool acked(const struct side *x, const uint8_t id[32], size_t upto)
{
	for (size_t i = 0; i < x->n_out && i < upto; i++) {
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

static bool sent_head(const struct side *x, const uint8_t id[32])
{
	for (size_t i = 0; i < x->n_out; i++)
		if (x->out[i].buf[0] == LINK_HEAD && memcmp(x->out[i].buf + 1, id, 32) == 0)
			return true;
	return false;
}

/* ---- files: a template of both stores, copied for each run ---------------------------- */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(path);
}

static void rm_tree(const char *path)
{
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int copy_file(const char *from, const char *to)
{
	static uint8_t buf[1 << 16];
	int in = open(from, O_RDONLY | O_CLOEXEC);
	int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int ret = in >= 0 && out >= 0 ? 0 : -1;
	for (ssize_t n; ret == 0 && (n = read(in, buf, sizeof(buf))) != 0;)
		ret = n > 0 && write(out, buf, (size_t)n) == n ? 0 : -1;
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	return ret;
}

/* Copies a directory of files and directories of files. */
static int copy_tree(const char *from, const char *to)
{
	DIR *d = opendir(from);
	struct dirent *e;
	int ret = d && mkdir(to, 0700) == 0 ? 0 : -1;
	while (ret == 0 && (e = readdir(d))) {
		char a[1200], b[1200];
		struct stat st;
		if (e->d_name[0] == '.')
			continue;
		snprintf(a, sizeof(a), "%s/%s", from, e->d_name);
		snprintf(b, sizeof(b), "%s/%s", to, e->d_name);
		if (lstat(a, &st) != 0)
			ret = -1;
		else if (S_ISDIR(st.st_mode))
			ret = copy_tree(a, b);
		else
			ret = copy_file(a, b);
	}
	if (d)
		closedir(d);
	return ret;
}

/* ---- messages ------------------------------------------------------------------------------ */

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

static uint8_t *pattern(size_t len, unsigned seed)
{
	uint8_t *p = malloc(len ? len : 1);
	uint32_t x = seed * 2654435761u + 1;
	for (size_t i = 0; p && i < len; i++) {
		x = x * 1103515245u + 12345u;
		p[i] = (uint8_t)(x >> 16);
	}
	return p;
}

struct grab {
	uint8_t *buf;
	size_t len, cap;
};

static int grab_chunk(void *ctx, const uint8_t *buf, size_t len)
{
	struct grab *g = ctx;
	if (g->len + len > g->cap) {
		size_t cap = g->cap ? g->cap : 65536;
		while (cap < g->len + len)
			cap *= 2;
		uint8_t *p = realloc(g->buf, cap);
		if (!p)
			return -ENOMEM;
		g->buf = p;
		g->cap = cap;
	}
	memcpy(g->buf + g->len, buf, len);
	g->len += len;
	return 0;
}

/* The payload bytes of a stored bundle, in a malloc'd *out. */
static int read_payload(struct store *s, const uint8_t id[32], uint8_t **out, size_t *len)
{
	struct store_bundle b;
	struct grab g = {0};
	int ret = store_bundle_get(s, id, NULL, &b, NULL, 0, NULL);
	if (ret == 0)
		ret = store_payload_read(s, b.rowid, grab_chunk, &g);
	if (ret < 0) {
		free(g.buf);
		return ret;
	}
	*out = g.buf;
	*len = g.len;
	return 0;
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
	int matches, entries;
};

static int check_inbox_one(void *ctx, const struct store_inbox *e)
{
	struct inbox_check *k = ctx;
	struct compare c = {k->want, k->len, 0, true};
	struct envelope_meta meta;
	k->entries++;
	if (!k->want || e->size != k->len)
		return 0;
	if (node_open_inbox(k->n, e, compare_chunk, &c, &meta) == 0 && c.ok && c.off == k->len)
		k->matches++;
	return 0;
}

/* How many inbox entries of n open to exactly these bytes; *entries (may be NULL) all. */
static int inbox_has(struct node *n, const uint8_t *plain, size_t len, int *entries)
{
	struct inbox_check k = {n, plain, len, 0, 0};
	store_inbox_foreach(n->store, check_inbox_one, &k);
	if (entries)
		*entries = k.entries;
	return k.matches;
}

static bool submit(struct node *from, const struct store_contact *to, const uint8_t *buf,
		   size_t len, bool file, enum store_priority prio, uint8_t id[32])
{
	struct mem m = {buf, len, 0};
	struct submit_request req = {
	    .kind = file ? ENVELOPE_FILE : ENVELOPE_TEXT,
	    .name = file ? "f.bin" : NULL,
	    .size = len,
	    .read = read_mem,
	    .read_ctx = &m,
	    .priority = prio,
	    .lifetime_ms = NODE_DEFAULT_LIFETIME_MS,
	};
	struct submit_result res;
	const char *why = NULL;
	int ret = node_submit(from, to, 1, &req, &res, &why);
	if (ret < 0) {
		fprintf(stderr, "test_inject: submit: %s\n", why ? why : strerror(-ret));
		return false;
	}
	memcpy(id, res.bundle_id[0], 32);
	return true;
}

/* Two stores in tmpl: a with the bundles queued for b (and for c, through b), b empty. */
static bool make_template(void)
{
	struct node a, b, c;
	struct store_peer p;
	struct store_contact k;
	char path[700];
	bool ok = false;
	node_init(&a, id_a);
	node_init(&b, id_b);
	node_init(&c, id_c);
	snprintf(tmpl, sizeof(tmpl), "%s/tmpl", dir);
	snprintf(work, sizeof(work), "%s/run", dir);
	if (mkdir(tmpl, 0700) != 0)
		return false;
	snprintf(path, sizeof(path), "%s/a.db", tmpl);
	if (node_open_store(&a, path) < 0)
		goto out;
	snprintf(path, sizeof(path), "%s/b.db", tmpl);
	if (node_open_store(&b, path) < 0)
		goto out;
	testnode_as_peer(&b, "b", &p);
	if (store_peer_add(a.store, &p) < 0)
		goto out;
	testnode_as_peer(&a, "a", &p);
	if (store_peer_add(b.store, &p) < 0)
		goto out;
	testnode_as_contact(&a, "a", &k);
	if (store_contact_add(b.store, &k) < 0)
		goto out;
	struct store_contact to_b, to_c;
	testnode_as_contact(&b, "b", &to_b);
	testnode_as_contact(&c, "c", &to_c);
	if (store_contact_add(a.store, &to_b) < 0 || store_contact_add(a.store, &to_c) < 0 ||
	    store_route_set(a.store, c.node_num, b.node_num) < 0)
		goto out;
	for (size_t i = 0; i < N_BUNDLES; i++) {
		const struct spec *sp = &specs[i];
		want[i].plain = pattern(sp->len, (unsigned)i + 1);
		if (!want[i].plain || !submit(&a, sp->to_c ? &to_c : &to_b, want[i].plain, sp->len,
					      sp->file, sp->prio, want[i].id))
			goto out;
		if (read_payload(a.store, want[i].id, &want[i].sealed, &want[i].sealed_len) < 0)
			goto out;
	}
	ok = true;
out:
	node_end(&a);
	node_end(&b);
	return ok;
}

/* ---- one run --------------------------------------------------------------------------- */

struct outcome {
	uint64_t runs, fired;
	uint64_t acked_stored, absent, window; /* bundles, over all runs */
	uint64_t violations;
	double seconds;
};

static void violation(struct outcome *o, enum inject_kind k, uint64_t n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void violation(struct outcome *o, enum inject_kind k, uint64_t n, const char *fmt, ...)
{
	va_list ap;
	o->violations++;
	test_failures++;
	fprintf(stderr,
		"test_inject: VIOLATION %s N=%" PRIu64 " (failed: %s): ", inject_kind_name(k), n,
		inject_fired_what());
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* What the receiver holds of bundle i: 1 stored and intact, 0 absent, -1 stored but wrong. */
static int held(struct side *b, size_t i, char *what, size_t cap)
{
	struct store_bundle bd;
	uint8_t *got = NULL;
	size_t len = 0;
	int ret = store_bundle_get(b->n.store, want[i].id, NULL, &bd, NULL, 0, NULL);
	if (ret == -ENOENT)
		return 0;
	if (ret < 0) {
		snprintf(what, cap, "unreadable (%s)", strerror(-ret));
		return -1;
	}
	enum store_state st = specs[i].to_c ? STORE_QUEUED : STORE_DELIVERED;
	if (bd.state != st) {
		snprintf(what, cap, "in state %d, not %d", bd.state, st);
		return -1;
	}
	ret = read_payload(b->n.store, want[i].id, &got, &len);
	bool same = ret == 0 && len == want[i].sealed_len && memcmp(got, want[i].sealed, len) == 0;
	free(got);
	if (!same) {
		snprintf(what, cap, "payload differs (%s)", ret < 0 ? strerror(-ret) : "bytes");
		return -1;
	}
	if (!specs[i].to_c && inbox_has(&b->n, want[i].plain, specs[i].len, NULL) != 1) {
		snprintf(what, cap, "not once in the inbox");
		return -1;
	}
	return 1;
}

static int count_one(void *ctx, const struct store_bundle *b, const uint8_t *h, size_t hl)
{
	(void)b;
	(void)h;
	(void)hl;
	(*(unsigned *)ctx)++;
	return 0;
}

static bool integrity_ok(struct store *s)
{
	sqlite3_stmt *q = NULL;
	bool ok = sqlite3_prepare_v2(store_sqlite(s), "PRAGMA integrity_check", -1, &q, NULL) ==
		      SQLITE_OK &&
		  sqlite3_step(q) == SQLITE_ROW &&
		  strcmp((const char *)sqlite3_column_text(q, 0), "ok") == 0;
	sqlite3_finalize(q);
	return ok;
}

/*
 * One run: the first session with the N-th call of kind k failing at the receiver (0: none),
 * the checks, then a fault-free session and its checks. *calls gets the count of kind k in
 * the first session.
 */
static void one_run(enum inject_kind k, uint64_t n, struct outcome *o, uint64_t *calls)
{
	struct side a, b;
	bool window[N_BUNDLES] = {false};
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	o->runs++;
	rm_tree(work);
	if (copy_tree(tmpl, work) < 0) {
		violation(o, k, n, "cannot copy the template");
		return;
	}
	node_init(&a.n, id_a);
	node_init(&b.n, id_b);
	b.faulty = !sender_faulty;
	a.faulty = sender_faulty;
	testnode_as_peer(&b.n, "b", &a.peer);
	testnode_as_peer(&a.n, "a", &b.peer);
	snprintf(a.path, sizeof(a.path), "%s/a.db", work);
	snprintf(b.path, sizeof(b.path), "%s/b.db", work);
	if (node_open_store(&a.n, a.path) < 0 || node_open_store(&b.n, b.path) < 0) {
		violation(o, k, n, "cannot open the stores");
		goto out;
	}

	/* The first session: the receiver's calls from its session's start to its store's close. */
	inject_arm(k, n);
	if (session_open(&a) && session_open(&b)) {
		start(&a, 0);
		start(&b, 0);
		run(&a, &b, 0);
	}
	session_free(&a);
	session_free(&b);
	inject_scope(true);
	node_end(sender_faulty ? &a.n : &b.n);
	inject_scope(false);
	if (calls)
		*calls = inject_count(k);
	o->fired += inject_fired();
	inject_arm(k, 0);
	if (verbose)
		fprintf(stderr, "test_inject: %s N=%" PRIu64 ": %s failed; a: %s; b: %s\n",
			inject_kind_name(k), n, inject_fired() ? inject_fired_what() : "nothing",
			a.s ? "" : strerror(a.ret < 0 ? -a.ret : 0),
			strerror(b.ret < 0 ? -b.ret : 0));

	/* The faulty store, reopened without faults: whole, and what it says it holds. */
	struct side *f = sender_faulty ? &a : &b;
	if (node_open_store(&f->n, f->path) < 0) {
		violation(o, k, n, "the %s's store does not reopen",
			  sender_faulty ? "sender" : "receiver");
		goto out;
	}
	if (!integrity_ok(f->n.store))
		violation(o, k, n, "integrity_check failed");
	int stored_for_b = 0, entries = 0;
	for (size_t i = 0; i < N_BUNDLES; i++) {
		char what[120] = "";
		bool ack = acked(&b, want[i].id, b.delivered);
		int h = held(&b, i, what, sizeof(what));
		if (h < 0)
			violation(o, k, n, "bundle %zu: stored but %s", i, what);
		else if (!ack && !store_bundle_exists(a.n.store, want[i].id))
			violation(o, k, n, "bundle %zu: not ACKed, gone from the sender", i);
		else if (ack && h == 0)
			violation(o, k, n, "bundle %zu: ACKed, not stored", i);
		else if (ack)
			o->acked_stored++;
		else if (h == 0)
			o->absent++;
		else
			window[i] =
			    true; /* committed, ACK lost: counted once the next session ACKs */
		stored_for_b += h > 0 && !specs[i].to_c;
	}
	inbox_has(&b.n, NULL, 0, &entries);
	if (entries != stored_for_b)
		violation(o, k, n, "%d inbox entries for %d bundles delivered", entries,
			  stored_for_b);

	/* The second session, fault-free: the rest arrives, each bundle once. */
	clear_log(&a);
	clear_log(&b);
	a.ret = b.ret = 0;
	for (int attempt = 0; attempt < 4; attempt++) {
		/* Refusals `later` (60 s; 3600 s for a damaged copy) are waited out. */
		uint64_t now = attempt ? 3700000ull * (uint64_t)attempt : 0;
		if (!a.s && !session_open(&a))
			break;
		if (!b.s && !session_open(&b))
			break;
		if (attempt == 0) {
			start(&a, now);
			start(&b, now);
		} else {
			tick(&a, now);
			tick(&b, now);
		}
		run(&a, &b, now);
		if (a.ret || b.ret)
			break;
	}
	if (a.ret || b.ret)
		violation(o, k, n, "the fault-free session ended: a %s, b %s (%s)",
			  strerror(-a.ret), strerror(-b.ret), b.s ? link_session_why(b.s) : "");
	for (size_t i = 0; i < N_BUNDLES; i++) {
		char what[120] = "";
		int h = held(&b, i, what, sizeof(what));
		if (h < 0)
			violation(o, k, n, "after the second session, bundle %zu: %s", i, what);
		else if (h == 0)
			violation(o, k, n, "after the second session, bundle %zu is not there", i);
		if (store_bundle_exists(a.n.store, want[i].id))
			violation(o, k, n, "after the second session, bundle %zu is still at a", i);
		if (window[i]) {
			if (!acked(&b, want[i].id, b.delivered) || sent_head(&a, want[i].id))
				violation(o, k, n,
					  "bundle %zu stored, not ACKed: not ACKed at the offer",
					  i);
			else
				o->window++;
		}
	}
	int for_b = 0;
	for (size_t i = 0; i < N_BUNDLES; i++)
		for_b += !specs[i].to_c;
	inbox_has(&b.n, NULL, 0, &entries);
	if (entries != for_b)
		violation(o, k, n, "%d inbox entries after the second session, not %d", entries,
			  for_b);
	if (!integrity_ok(b.n.store))
		violation(o, k, n, "integrity_check failed after the second session");
out:
	session_free(&a);
	session_free(&b);
	clear_log(&a);
	clear_log(&b);
	node_end(&a.n);
	node_end(&b.n);
	if (__lsan_do_recoverable_leak_check && __lsan_do_recoverable_leak_check())
		violation(o, k, n, "LeakSanitizer found leaks");
}

/*
 * Found by this test (group commit, tern-alloc): receipt_batch_add's first realloc (the
 * sender's entry) succeeded and its second (the ids) failed, leaving a sender with no ids;
 * receipt_batch_flush then sealed and queued an empty receipt, from memcpy(body, NULL, 0).
 */
static void test_receipt_no_ids(void)
{
	struct node b;
	struct receipt_batch rb = {0};
	struct store_contact k;
	struct node a;
	char path[700];
	uint8_t msg[ENVELOPE_MSG_ID_LEN] = {1, 2, 3};
	unsigned queued = 99;
	node_init(&a, id_a);
	node_init(&b, id_b);
	snprintf(path, sizeof(path), "%s/receipt.db", dir);
	if (node_open_store(&b, path) < 0) {
		CHECK(!"store");
		return;
	}
	testnode_as_contact(&a, "a", &k);
	CHECK_EQ(store_contact_add(b.store, &k), 0);
	inject_arm(INJECT_TERN_ALLOC, 2); /* the ids' realloc */
	inject_scope(true);
	receipt_batch_add(&rb, a.pub.sign_pk, msg);
	inject_scope(false);
	CHECK(inject_fired());
	inject_arm(INJECT_TERN_ALLOC, 0);
	CHECK_EQ(receipt_batch_flush(&b, &rb, &queued), 0);
	CHECK_EQ(queued, 0);
	CHECK_EQ(store_bundle_foreach(b.store, STORE_QUEUED, NULL, count_one, &queued), 0);
	CHECK_EQ(queued, 0);
	receipt_batch_free(&rb);
	node_end(&b);
}

static uint64_t env_u64(const char *name, uint64_t def)
{
	const char *v = getenv(name);
	return v && *v ? strtoull(v, NULL, 10) : def;
}

static double seconds(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(void)
{
	const char *tmp = getenv("TERN_INJECT_TMP");
	if (!tmp || !*tmp)
		tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	snprintf(dir, sizeof(dir), "%s/tern-test-inject.XXXXXX", tmp);
	if (inject_init() < 0 || tern_crypto_init() < 0 || !mkdtemp(dir))
		return 1;
	verbose = env_u64("TERN_INJECT_VERBOSE", 0) != 0;
	inject_full(env_u64("TERN_INJECT_FULL", 0) != 0);
	inject_persist(env_u64("TERN_INJECT_PERSIST", 0) != 0);
	sender_faulty = env_u64("TERN_INJECT_SENDER", 0) != 0;
	uint64_t stride = env_u64("TERN_INJECT_STRIDE", 29);
	const char *modes = getenv("TERN_INJECT_MODES");
	const char *only = getenv("TERN_INJECT_ONLY");
	if (stride == 0)
		stride = 1;
	if (identity_generate(&id_a) < 0 || identity_generate(&id_b) < 0 ||
	    identity_generate(&id_c) < 0 || !make_template()) {
		fprintf(stderr, "test_inject: cannot set up\n");
		return 1;
	}

	test_receipt_no_ids();
	const char *g = getenv("TERN_INJECT_GROUP"); /* 0, 1, or both if unset */
	for (int cfg = 0; cfg < 2; cfg++) {
		if (g && *g && atoi(g) != cfg)
			continue;
		group = cfg == 1;
		const char *how = group ? "group" : "single";
		/* The clean run: everything ACKed and stored, and the counts of every kind. */
		struct outcome clean = {0};
		uint64_t calls[INJECT_KINDS] = {0};
		for (int k = 0; k < INJECT_KINDS; k++)
			one_run((enum inject_kind)k, 0, &clean, &calls[k]);
		CHECK_EQ(clean.acked_stored, INJECT_KINDS * N_BUNDLES);
		CHECK_EQ(clean.violations, 0);

		for (int k = 0; k < INJECT_KINDS; k++) {
			const char *name = inject_kind_name((enum inject_kind)k);
			uint64_t from = 1, to = calls[k], step = stride;
			if (only) {
				size_t l = strlen(name);
				if (strncmp(only, name, l) != 0 || only[l] != ':')
					continue;
				from = to = strtoull(only + l + 1, NULL, 10);
				verbose = true;
			} else if (modes && !strstr(modes, name)) {
				continue;
			}
			struct outcome o = {0};
			double t0 = seconds();
			uint64_t tested = 0;
			for (uint64_t n = from; n <= to; n += step) {
				one_run((enum inject_kind)k, n, &o, NULL);
				tested++;
				/* The last call too, whatever the stride. */
				if (n < to && n + step > to && step > 1)
					n = to - step;
			}
			o.seconds = seconds() - t0;
			printf("%-6s %-12s clean-run calls %5" PRIu64 ", N tested %5" PRIu64
			       " (stride %" PRIu64 "), fired %5" PRIu64
			       "; bundles: ACKed+stored %6" PRIu64 ", not ACKed+absent %6" PRIu64
			       ", stored-not-ACKed-then-reACKed %4" PRIu64 "; violations %" PRIu64
			       "; %.1f s\n",
			       how, name, calls[k], tested, step, o.fired, o.acked_stored, o.absent,
			       o.window, o.violations, o.seconds);
			fflush(stdout);
		}
	}
	for (size_t i = 0; i < N_BUNDLES; i++) {
		free(want[i].plain);
		free(want[i].sealed);
	}
	identity_free(id_a);
	identity_free(id_b);
	identity_free(id_c);
	rm_tree(dir);
	TEST_MAIN_END();
}
