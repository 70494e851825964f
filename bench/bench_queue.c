/* Queues and delivers N short messages through the real node code, against raw SQLite inserts of
 * the same rows. */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "relay/node.h"
#include "tests/testnode.h"

/*
 * The baseline is what the store must at least do: one durable commit per
 * bundle in WAL mode with synchronous=FULL, inserting a row of the same size.
 * It includes sqlite3.h only to measure that floor; tern itself does not.
 */

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int open_node(struct node *n, const char *dir, const char *name)
{
	char path[512];
	const char *why = NULL;
	memset(n, 0, sizeof(*n));
	if (identity_generate(&n->id) < 0)
		return -ENOMEM;
	identity_get_public(n->id, &n->pub);
	n->node_num = identity_node_number(n->pub.sign_pk);
	testnode_clock(&n->now);
	snprintf(path, sizeof(path), "%s/%s.db", dir, name);
	int ret = store_open(path, &n->now, &n->store, &why);
	if (ret < 0)
		fprintf(stderr, "bench: %s: %s\n", path, why ? why : strerror(-ret));
	return ret;
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

struct wire {
	uint8_t buf[1024];
	size_t len;
};

static int to_wire(void *ctx, const uint8_t *buf, size_t len)
{
	struct wire *w = ctx;
	if (w->len + len > sizeof(w->buf))
		return -ENOSPC;
	memcpy(w->buf + w->len, buf, len);
	w->len += len;
	return 0;
}

struct deliver {
	struct node *from, *to;
	int delivered, failed;
};

static int deliver_one(void *ctx, const struct store_bundle *b, const uint8_t *head, size_t headlen)
{
	struct deliver *d = ctx;
	struct wire w = {.len = 0};
	struct ingest *in;
	struct ingest_result res;
	if (node_emit(d->from, b, head, headlen, to_wire, &w, NULL) < 0 ||
	    ingest_new(d->to, &in) < 0) {
		d->failed++;
		return 0;
	}
	ingest_feed(in, w.buf, w.len);
	if (ingest_finish(in, &res) == 0 && res.verdict == INGEST_DELIVERED)
		d->delivered++;
	else
		d->failed++;
	return 0;
}

/* The floor: the same number of rows of the same size, one durable commit each. */
static double raw_sqlite(const char *dir, int count, size_t row_bytes)
{
	char path[512];
	sqlite3 *db;
	sqlite3_stmt *st;
	snprintf(path, sizeof(path), "%s/raw.db", dir);
	if (sqlite3_open(path, &db) != SQLITE_OK)
		return -1;
	sqlite3_exec(db,
		     "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
		     "CREATE TABLE t(id BLOB UNIQUE, dest INTEGER, prio INTEGER, data BLOB);",
		     NULL, NULL, NULL);
	sqlite3_prepare_v2(db, "INSERT INTO t VALUES(?, ?, ?, ?)", -1, &st, NULL);
	uint8_t *data = calloc(1, row_bytes);
	double t0 = now_s();
	for (int i = 0; i < count; i++) {
		uint8_t id[32] = {0};
		memcpy(id, &i, sizeof(i));
		sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
		sqlite3_bind_blob(st, 1, id, 32, SQLITE_STATIC);
		sqlite3_bind_int(st, 2, 7);
		sqlite3_bind_int(st, 3, 1);
		sqlite3_bind_blob(st, 4, data, (int)row_bytes, SQLITE_STATIC);
		sqlite3_step(st);
		sqlite3_reset(st);
		sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	}
	double dt = now_s() - t0;
	free(data);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return dt;
}

int main(int argc, char **argv)
{
	int count = argc > 1 ? atoi(argv[1]) : 10000;
	char dir[] = "/tmp/tern-bench-queue.XXXXXX";
	struct node a, b;
	struct store_contact to_b, to_a;
	if (count <= 0 || tern_crypto_init() < 0 || !mkdtemp(dir))
		return 1;
	if (open_node(&a, dir, "a") < 0 || open_node(&b, dir, "b") < 0)
		return 1;
	testnode_as_contact(&b, "b", &to_b);
	testnode_as_contact(&a, "a", &to_a);
	if (store_contact_add(a.store, &to_b) < 0 || store_contact_add(b.store, &to_a) < 0)
		return 1;

	char text[161];
	memset(text, 'x', 160);
	text[160] = 0;
	struct submit_result res;
	double t0 = now_s();
	for (int i = 0; i < count; i++) {
		struct mem m = {(const uint8_t *)text, 160, 0};
		struct submit_request req = {
		    .kind = ENVELOPE_TEXT,
		    .size = 160,
		    .read = read_mem,
		    .read_ctx = &m,
		    .priority = STORE_NORMAL,
		    .lifetime_ms = NODE_DEFAULT_LIFETIME_MS,
		};
		const char *why;
		if (node_submit(&a, &to_b, 1, &req, &res, &why) < 0) {
			fprintf(stderr, "bench: submit %d: %s\n", i, why);
			return 1;
		}
	}
	double t_queue = now_s() - t0;

	struct deliver d = {.from = &a, .to = &b};
	t0 = now_s();
	store_bundle_foreach(a.store, STORE_QUEUED, &a.now, deliver_one, &d);
	double t_deliver = now_s() - t0;
	double t_raw = raw_sqlite(dir, count, (size_t)res.bundle_len[0]);

	printf("messages:          %d x 160-byte text, %llu-byte bundles (compact)\n", count,
	       (unsigned long long)res.bundle_len[0]);
	printf("raw SQLite insert: %8.0f rows/s (WAL, synchronous=FULL, one commit each)\n",
	       count / t_raw);
	printf("queue (seal+commit):    %8.0f msg/s  ratio %.2f\n", count / t_queue,
	       t_raw / t_queue);
	printf("deliver (emit+ingest+open+commit): %8.0f msg/s  ratio %.2f  (%d delivered, %d "
	       "failed)\n",
	       count / t_deliver, t_raw / t_deliver, d.delivered, d.failed);
	node_close(&a);
	node_close(&b);
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 && d.failed == 0 ? 0 : 1;
}
