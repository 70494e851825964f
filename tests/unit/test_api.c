/* The API protocol (relay/api.c) driven as the daemon drives it, against real nodes and stores. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "relay/api.h"
#include "relay/node.h"
#include "tests/unit/test.h"
#include "tests/testnode.h"

static char dir[] = "/tmp/tern-test-api.XXXXXX";
static int n_nodes;

/* ---- nodes: a, the daemon's node, and b, its contact "bob" -------------------------- */

static bool open_node(struct node *n)
{
	char path[512];
	const char *why = NULL;
	memset(n, 0, sizeof(*n));
	if (identity_generate(&n->id) < 0)
		return false;
	identity_get_public(n->id, &n->pub);
	n->node_num = identity_node_number(n->pub.sign_pk);
	testnode_clock(&n->now);
	snprintf(path, sizeof(path), "%s/n%d.db", dir, n_nodes++);
	int ret = store_open(path, &n->now, &n->store, &why);
	if (ret < 0)
		fprintf(stderr, "test_api: %s: %s\n", path, why ? why : strerror(-ret));
	return ret == 0;
}

static bool pair_open(struct node *a, struct node *b)
{
	struct store_contact ca, cb;
	if (!open_node(a) || !open_node(b))
		return false;
	testnode_as_contact(b, "bob", &cb);
	testnode_as_contact(a, "alice", &ca);
	return store_contact_add(a->store, &cb) == 0 && store_contact_add(b->store, &ca) == 0;
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

/* b seals a text (or a file, if name) to alice and queues it. */
static bool b_sends(struct node *b, const char *text, const char *name)
{
	struct store_contact to;
	struct mem m = {(const uint8_t *)text, strlen(text), 0};
	struct submit_request req = {
	    .kind = name ? ENVELOPE_FILE : ENVELOPE_TEXT,
	    .name = name,
	    .size = m.len,
	    .read = read_mem,
	    .read_ctx = &m,
	    .priority = STORE_NORMAL,
	    .lifetime_ms = NODE_DEFAULT_LIFETIME_MS,
	};
	struct submit_result res;
	return store_contact_get(b->store, "alice", &to) == 0 &&
	       node_submit(b, &to, 1, &req, &res, NULL) == 0;
}

struct growbuf {
	uint8_t *buf;
	size_t len;
};

static int to_growbuf(void *ctx, const uint8_t *buf, size_t len)
{
	struct growbuf *g = ctx;
	uint8_t *p = realloc(g->buf, g->len + len);
	if (!p)
		return -ENOMEM;
	memcpy(p + g->len, buf, len);
	g->buf = p;
	g->len += len;
	return 0;
}

struct carry {
	struct node *from, *to;
	int verdicts[8];
};

/* One queued bundle of from for to: emitted, ingested by to, released by from. */
static int carry_one(void *ctx, const struct store_bundle *b, const uint8_t *head, size_t headlen)
{
	struct carry *k = ctx;
	struct growbuf g = {0};
	struct ingest *in;
	struct ingest_result res;
	if (b->dest_node != k->to->node_num)
		return 0;
	if (node_emit(k->from, b, head, headlen, to_growbuf, &g, NULL) < 0 ||
	    ingest_new(k->to, &in) < 0) {
		free(g.buf);
		return -EIO;
	}
	ingest_feed(in, g.buf, g.len);
	free(g.buf);
	if (ingest_finish(in, &res) < 0)
		return -EIO;
	if (res.verdict >= 0 && res.verdict < 8)
		k->verdicts[res.verdict]++;
	return store_bundle_delete(k->from->store, b->id);
}

/* Moves every bundle from has for to; returns how many were delivered into to's inbox. */
static int carry(struct node *from, struct node *to, int *receipts)
{
	struct carry k = {from, to, {0}};
	CHECK_EQ(store_bundle_foreach(from->store, STORE_QUEUED, &from->now, carry_one, &k), 0);
	if (receipts)
		*receipts = k.verdicts[INGEST_RECEIPT];
	return k.verdicts[INGEST_DELIVERED];
}

/* ---- a client, as the daemon would hold it -------------------------------------------- */

struct hooks_seen {
	int queued;
};

static void on_queued(void *ctx)
{
	((struct hooks_seen *)ctx)->queued++;
}

static int on_status(void *ctx, FILE *out)
{
	fprintf(out, "{\"links\": [\n{\"peer\": \"hub\", \"up\": true}]}");
	return 0;
}

/* Writes everything pending into a NUL-terminated malloc'd string (the client reads all). */
static char *drain(struct api_client *c)
{
	const uint8_t *p;
	size_t n, len = 0;
	char *s = malloc(1);
	while (s && (n = api_client_output(c, &p)) > 0) {
		char *t = realloc(s, len + n + 1);
		if (!t)
			break;
		s = t;
		memcpy(s + len, p, n);
		len += n;
		api_client_consumed(c, n);
	}
	if (s)
		s[len] = '\0';
	return s;
}

/* Sends req (a C string) and returns all that came back; *ret gets input's return. */
static char *talk(struct api_client *c, const char *req, int *ret)
{
	int r = api_client_input(c, (const uint8_t *)req, strlen(req));
	if (ret)
		*ret = r;
	else
		CHECK_EQ(r, 0);
	return drain(c);
}

static int count(const char *s, const char *what)
{
	int k = 0;
	for (const char *p = s; (p = strstr(p, what)); p += strlen(what))
		k++;
	return k;
}

static bool has(const char *s, const char *what)
{
	bool yes = strstr(s, what) != NULL;
	if (!yes)
		fprintf(stderr, "test_api: wanted %s in: %.600s\n", what, s);
	return yes;
}

/* The value of "key":"..." in s (first occurrence), copied into out. */
static bool field(const char *s, const char *key, char *out, size_t cap)
{
	char pat[64];
	snprintf(pat, sizeof(pat), "\"%s\":\"", key);
	const char *p = strstr(s, pat);
	if (!p)
		return false;
	p += strlen(pat);
	const char *q = strchr(p, '"');
	if (!q || (size_t)(q - p) >= cap)
		return false;
	memcpy(out, p, (size_t)(q - p));
	out[q - p] = '\0';
	return true;
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_basics(struct node *a)
{
	struct hooks_seen seen = {0};
	struct api_hooks hooks = {&seen, on_queued, on_status};
	struct api_client *c;
	char *r;
	CHECK_EQ(api_client_new(a, &hooks, &c), 0);

	r = talk(c, "ping\n", NULL);
	CHECK(strcmp(r, "{\"ok\":true,\"api\":1}\n") == 0);
	free(r);
	/* The tag comes back decoded, as a JSON string, on success and on error. */
	r = talk(c, "ping tag=a%20%22b%22\r\n\n  \nnonsense tag=t7\n", NULL);
	CHECK(has(r, "{\"ok\":true,\"tag\":\"a \\\"b\\\"\",\"api\":1}\n"));
	CHECK(has(r, "{\"ok\":false,\"tag\":\"t7\",\"code\":\"bad_request\",\"error\":\"no such "
		     "request: nonsense"));
	CHECK_EQ(count(r, "\n"), 2); /* blank lines are no requests */
	free(r);
	/* A request in single bytes is the same request. */
	const char *req = "ping tag=x\n";
	for (size_t i = 0; i < strlen(req); i++)
		CHECK_EQ(api_client_input(c, (const uint8_t *)req + i, 1), 0);
	r = drain(c);
	CHECK(strcmp(r, "{\"ok\":true,\"tag\":\"x\",\"api\":1}\n") == 0);
	free(r);

	r = talk(c, "queued\n", NULL);
	CHECK(strcmp(r, "{\"ok\":true}\n") == 0);
	CHECK_EQ(seen.queued, 1);
	free(r);
	r = talk(c, "status\n", NULL);
	CHECK(
	    has(r, "{\"ok\":true,\"status\":{\"links\": [ {\"peer\": \"hub\", \"up\": true}]}}\n"));
	free(r);
	api_client_free(c);

	/* Without hooks: no status, and queued still answers. */
	CHECK_EQ(api_client_new(a, NULL, &c), 0);
	r = talk(c, "status\nqueued\n", NULL);
	CHECK(has(r, "\"code\":\"unsupported\""));
	CHECK(has(r, "\n{\"ok\":true}\n"));
	free(r);
	api_client_free(c);
}

static void test_errors(struct node *a)
{
	struct hooks_seen seen = {0};
	struct api_hooks hooks = {&seen, on_queued, NULL};
	struct api_client *c;
	char *r;
	int ret;
	CHECK_EQ(api_client_new(a, &hooks, &c), 0);

	/* Each bad request gets its error, its body is skipped, and the stream goes on. */
	r = talk(c, "send to=carol length=5 tag=1\nhelloping tag=2\n", NULL);
	CHECK(has(r, "{\"ok\":false,\"tag\":\"1\",\"code\":\"not_found\",\"error\":\"no such "
		     "contact: carol\"}\n{\"ok\":true,\"tag\":\"2\""));
	free(r);
	r = talk(c, "send to=bob colour=red length=1\nxping\n", NULL);
	CHECK(has(r, "\"error\":\"send takes no colour=\"}\n{\"ok\":true"));
	free(r);
	r = talk(c, "send to=bob\n", NULL);
	CHECK(has(r, "\"code\":\"bad_request\",\"error\":\"send needs length=N"));
	free(r);
	r = talk(c, "ping length=2\nxxping\n", NULL);
	CHECK(has(r, "\"error\":\"ping takes no body (length=)\"}\n{\"ok\":true"));
	free(r);
	r = talk(c, "send to=bob priority=high length=1\nx", NULL);
	CHECK(has(r, "priority=high: bulk, normal or urgent"));
	free(r);
	r = talk(c, "send to=bob lifetime=0d length=1\nx", NULL);
	CHECK(has(r, "\"code\":\"bad_request\",\"error\":\"lifetime=0d"));
	free(r);
	r = talk(c, "send to=bob%zz length=1\nx", NULL);
	CHECK(has(r, "to=: a bad percent-escape"));
	free(r);
	r = talk(c, "send to=bob path=relative.txt\n", NULL);
	CHECK(has(r, "an absolute path"));
	free(r);
	r = talk(c, "send to=bob path=/nonexistent/x length=1\nx", NULL);
	CHECK(has(r, "not both"));
	free(r);
	r = talk(c, "send to=bob name=a/b length=1\nx", NULL);
	CHECK(has(r, "\"code\":\"bad_request\",\"error\":\"name=:"));
	free(r);
	r = talk(c, "send to=bob path=/nonexistent/x\n", NULL);
	CHECK(has(r, "\"code\":\"not_found\""));
	free(r);
	r = talk(c, "read id=zz\nread\nread id=0123\nsent id=xyz\ninbox limit=0\n", NULL);
	CHECK(has(r, "id=zz: not a message id"));
	CHECK(has(r, "read needs id="));
	CHECK(has(r, "\"code\":\"not_found\",\"error\":\"no message 0123"));
	CHECK(has(r, "id=xyz: a message id"));
	CHECK(has(r, "limit=0: a number from 1 to 1000"));
	free(r);
	r = talk(c, "send to=bob to=bob length=1\nx", NULL);
	CHECK(has(r, "to= given twice"));
	free(r);
	r = talk(c, "send\tto=bob \x01 length=1\nx", NULL);
	CHECK(has(r, "a control character"));
	free(r);
	CHECK_EQ(seen.queued, 0);

	/* A body over the cap is refused, skipped without being held, and the stream goes on. */
	char line[64];
	snprintf(line, sizeof(line), "send to=bob tag=big length=%u\n", API_BODY_MAX + 1);
	CHECK_EQ(api_client_input(c, (const uint8_t *)line, strlen(line)), 0);
	static uint8_t zeros[65536];
	size_t left = API_BODY_MAX + 1;
	while (left) {
		size_t k = left < sizeof(zeros) ? left : sizeof(zeros);
		CHECK_EQ(api_client_input(c, zeros, k), 0);
		left -= k;
		if (left) {
			const uint8_t *p;
			CHECK_EQ(api_client_output(c, &p), 0); /* the reply comes after the body */
		}
	}
	r = talk(c, "ping\n", NULL);
	CHECK(has(r, "{\"ok\":false,\"tag\":\"big\",\"code\":\"too_large\""));
	CHECK(has(r, "path=\"}\n{\"ok\":true,\"api\":1}\n"));
	free(r);
	api_client_free(c);

	/* A line too long cannot be parsed: the connection ends, saying why. */
	CHECK_EQ(api_client_new(a, &hooks, &c), 0);
	char *longline = malloc(API_LINE_MAX + 10);
	memset(longline, 'a', API_LINE_MAX + 9);
	longline[API_LINE_MAX + 9] = '\0';
	r = talk(c, longline, &ret);
	CHECK_EQ(ret, -EPROTO);
	CHECK(has(r, "{\"ok\":false,\"code\":\"protocol\",\"error\":\"a line longer than 8192"));
	free(r);
	CHECK_EQ(api_client_input(c, (const uint8_t *)"ping\n", 5), -EPROTO);
	CHECK(!api_client_wants_input(c));
	api_client_free(c);
	free(longline);

	/* So cannot a length that is no number. */
	CHECK_EQ(api_client_new(a, &hooks, &c), 0);
	r = talk(c, "ping\nsend to=bob length=12x\nhello\n", &ret);
	CHECK_EQ(ret, -EPROTO);
	CHECK(has(r, "{\"ok\":true,\"api\":1}\n{\"ok\":false,\"code\":\"protocol\","
		     "\"error\":\"length=12x is not a number"));
	free(r);
	api_client_free(c);
}

/* Sends over the API, carries to b, and checks what b got. */
static void test_send(struct node *a, struct node *b)
{
	struct hooks_seen seen = {0};
	struct api_hooks hooks = {&seen, on_queued, NULL};
	struct api_client *c;
	char *r, id[40];
	CHECK_EQ(api_client_new(a, &hooks, &c), 0);

	r = talk(c, "send to=bob priority=urgent lifetime=2d tag=m1 length=11\nhello\nworld", NULL);
	CHECK(has(r, "{\"ok\":true,\"tag\":\"m1\",\"id\":\""));
	CHECK(has(r, "\"bundles\":[{\"to\":\"bob\",\"id\":\""));
	CHECK(field(r, "id", id, sizeof(id)) && strlen(id) == 32);
	CHECK_EQ(seen.queued, 1);
	free(r);
	r = talk(c, "send to=bob name=notes%20v2.txt length=3\nabc", NULL);
	CHECK(has(r, "\"ok\":true"));
	free(r);
	char path[600];
	snprintf(path, sizeof(path), "%s/report.bin", dir);
	FILE *f = fopen(path, "wb");
	CHECK(f != NULL);
	for (int i = 0; f && i < 300000; i++)
		fputc(i * 7, f);
	if (f)
		fclose(f);
	char req[800];
	snprintf(req, sizeof(req), "send to=bob path=%s\n", path);
	r = talk(c, req, NULL);
	CHECK(has(r, "\"ok\":true"));
	free(r);
	CHECK_EQ(seen.queued, 3);

	/* What sent says before anything moved. */
	r = talk(c, "sent limit=2\n", NULL);
	CHECK_EQ(count(r, "\"state\":\"queued\""), 2);
	CHECK(has(r, "\"to\":\"bob\""));
	CHECK(has(r, "\"more\":true"));
	free(r);
	snprintf(req, sizeof(req), "sent id=%.6s\n", id);
	r = talk(c, req, NULL);
	CHECK_EQ(count(r, "\"state\":"), 1);
	CHECK(has(r, id));
	free(r);

	CHECK_EQ(carry(a, b, NULL), 3);
	struct store_inbox e;
	CHECK_EQ(store_inbox_find(b->store, id, &e), 0);
	CHECK_EQ(e.kind, ENVELOPE_TEXT);
	CHECK_EQ(e.size, 11);
	api_client_free(c);
}

/* b's side over the API: inbox, read and save of what a sent in test_send. */
static void test_inbox(struct node *b)
{
	struct api_client *c;
	char *r, id[40], req[1600];
	CHECK_EQ(api_client_new(b, NULL, &c), 0);
	r = talk(c, "inbox\n", NULL);
	CHECK_EQ(count(r, "\"seq\":"), 3);
	CHECK(has(r, "\"kind\":\"file\",\"size\":3,\"name\":\"notes v2.txt\",\"from\":\"alice\""));
	CHECK(has(r, "\"name\":\"report.bin\""));
	CHECK(has(r, "\"read\":false"));
	CHECK(has(r, "\"more\":false"));
	CHECK(field(r, "id", id, sizeof(id)));
	free(r);
	r = talk(c, "inbox limit=1 after=1\n", NULL);
	CHECK_EQ(count(r, "\"seq\":"), 1);
	CHECK(has(r, "\"seq\":2"));
	CHECK(has(r, "\"more\":true"));
	free(r);

	snprintf(req, sizeof(req), "read id=%.8s\n", id);
	r = talk(c, req, NULL);
	CHECK(has(r, "\"read\":true,\"text\":\"hello\\nworld\"}\n"));
	free(r);
	r = talk(c, "read id=", NULL);
	free(r);
	r = talk(c, "\n", NULL); /* the rest of the line, in another input */
	CHECK(has(r, "\"code\":\"bad_request\",\"error\":\"id=: not a message id"));
	free(r);

	/* save writes the verified file under its (sanitised) name, never over another. */
	struct store_inbox e;
	char sub[600];
	snprintf(sub, sizeof(sub), "%s/saved", dir);
	CHECK_EQ(mkdir(sub, 0700), 0);
	int found = 0;
	for (int64_t seq = 1; seq <= 3; seq++) {
		snprintf(req, sizeof(req), "inbox after=%" PRId64 " limit=1\n", seq - 1);
		r = talk(c, req, NULL);
		if (strstr(r, "report.bin") && field(r, "id", id, sizeof(id)))
			found++;
		free(r);
	}
	CHECK_EQ(found, 1);
	CHECK_EQ(store_inbox_find(b->store, id, &e), 0);
	snprintf(req, sizeof(req), "save id=%s dir=%s\nsave id=%s dir=%s/\n", id, sub, id, sub);
	r = talk(c, req, NULL);
	char want[800];
	snprintf(want, sizeof(want), "\"path\":\"%s/report.bin\"", sub);
	CHECK(has(r, want));
	snprintf(want, sizeof(want), "\"path\":\"%s/report (2).bin\"", sub);
	CHECK(has(r, want));
	free(r);
	snprintf(want, sizeof(want), "%s/report.bin", sub);
	FILE *f = fopen(want, "rb");
	int ok = f != NULL, ch, i = 0;
	while (f && (ch = fgetc(f)) != EOF)
		ok &= ch == ((i++ * 7) & 0xff);
	CHECK(ok && i == 300000);
	if (f)
		fclose(f);
	snprintf(req, sizeof(req), "read id=%s\n", id);
	r = talk(c, req, NULL);
	CHECK(has(r, "is a file: use save"));
	free(r);
	api_client_free(c);
}

/* Subscribers get what is delivered, existing or new, and delivery receipts of what they sent. */
static void test_subscribe(struct node *a, struct node *b)
{
	struct api_client *all, *live;
	char *r;
	CHECK_EQ(api_client_new(a, NULL, &all), 0);
	CHECK_EQ(api_client_new(a, NULL, &live), 0);

	CHECK(b_sends(b, "first \"one\"\x01", NULL));
	CHECK_EQ(carry(b, a, NULL), 1);

	r = talk(all, "subscribe after=0 tag=s\n", NULL);
	CHECK(has(r, "{\"ok\":true,\"tag\":\"s\",\"after\":0}\n"));
	CHECK(has(r, "{\"event\":\"message\",\"seq\":1,"));
	CHECK(has(r, "\"from\":\"bob\""));
	CHECK(has(r, "\"text\":\"first \\\"one\\\"\\u0001\"}\n"));
	free(r);
	r = talk(live, "subscribe\n", NULL);
	CHECK(strcmp(r, "{\"ok\":true,\"after\":1}\n") == 0);
	free(r);
	r = talk(live, "subscribe\n", NULL);
	CHECK(has(r, "already subscribed"));
	free(r);

	/* Nothing new: notify makes no event. */
	api_client_notify(all);
	r = drain(all);
	CHECK(strcmp(r, "") == 0);
	free(r);

	CHECK(b_sends(b, "x", "photo.jpg"));
	CHECK(b_sends(b, "second", NULL));
	CHECK_EQ(carry(b, a, NULL), 2);
	/* Not before the daemon says so, then each once. */
	r = drain(live);
	CHECK(strcmp(r, "") == 0);
	free(r);
	api_client_notify(all);
	api_client_notify(live);
	for (int i = 0; i < 2; i++) {
		r = drain(i ? live : all);
		CHECK_EQ(count(r, "{\"event\":"), 2);
		CHECK(has(r, "{\"event\":\"file\",\"seq\":2,"));
		CHECK(has(r, "\"name\":\"photo.jpg\""));
		CHECK(has(r, "{\"event\":\"message\",\"seq\":3,"));
		CHECK(has(r, "\"text\":\"second\""));
		free(r);
	}
	api_client_notify(live);
	r = drain(live);
	CHECK(strcmp(r, "") == 0);
	free(r);

	/* A sends to bob; b's receipt comes back; a subscriber hears it was delivered. */
	r = talk(live, "send to=bob length=2\nhi", NULL);
	char id[40], req[100];
	CHECK(field(r, "id", id, sizeof(id)));
	free(r);
	api_client_notify(live);
	r = drain(live);
	CHECK(strcmp(r, "") == 0); /* queued is no news: the reply said so */
	free(r);
	CHECK_EQ(carry(a, b, NULL), 1);
	struct store_inbox e;
	struct receipt_batch rb = {0};
	unsigned queued = 0;
	CHECK_EQ(store_inbox_find(b->store, id, &e), 0);
	receipt_batch_add(&rb, e.sender_pk, e.msg_id);
	CHECK_EQ(receipt_batch_flush(b, &rb, &queued), 0);
	CHECK_EQ(queued, 1);
	int receipts = 0;
	a->now.unix_ms += 5000;
	CHECK_EQ(carry(b, a, &receipts), 0);
	CHECK_EQ(receipts, 1);
	api_client_notify(live);
	r = drain(live);
	char want[100];
	snprintf(want, sizeof(want), "{\"event\":\"delivered\",\"id\":\"%s\",\"to\":\"bob\"", id);
	CHECK(has(r, want));
	CHECK_EQ(count(r, "\n"), 1);
	free(r);
	api_client_notify(live);
	r = drain(live);
	CHECK(strcmp(r, "") == 0);
	free(r);
	snprintf(req, sizeof(req), "sent id=%s\n", id);
	r = talk(live, req, NULL);
	CHECK(has(r, "\"state\":\"delivered\""));
	free(r);

	/* A later subscriber does not hear of it again. */
	struct api_client *late;
	CHECK_EQ(api_client_new(a, NULL, &late), 0);
	r = talk(late, "subscribe\n", NULL);
	api_client_notify(late);
	free(r);
	r = drain(late);
	CHECK(strcmp(r, "") == 0);
	free(r);
	api_client_free(late);
	api_client_free(all);
	api_client_free(live);
}

/* b's receipt for the message whose id (hex) the send reply gave; carried to a. */
static void receipt_home(struct node *a, struct node *b, const char *id)
{
	struct store_inbox e;
	struct receipt_batch rb = {0};
	unsigned queued = 0;
	int receipts = 0;
	CHECK_EQ(store_inbox_find(b->store, id, &e), 0);
	receipt_batch_add(&rb, e.sender_pk, e.msg_id);
	CHECK_EQ(receipt_batch_flush(b, &rb, &queued), 0);
	CHECK_EQ(carry(b, a, &receipts), 0);
	CHECK_EQ(receipts, 1);
}

/*
 * Changes reach a subscriber in the order they committed, whatever their wall-clock
 * stamps say: a receipt stamped before one already reported (a clock set back, or a
 * stamp taken from the latest clock the store saw) is still news.
 */
static void test_subscribe_order(struct node *a, struct node *b)
{
	struct api_client *live;
	char id[2][40], want[120];
	char *r;
	CHECK_EQ(api_client_new(a, NULL, &live), 0);
	for (int i = 0; i < 2; i++) {
		r = talk(live, "send to=bob length=2\nhi", NULL);
		CHECK(field(r, "id", id[i], sizeof(id[i])));
		free(r);
	}
	CHECK_EQ(carry(a, b, NULL), 2);
	r = talk(live, "subscribe\n", NULL);
	free(r);
	uint64_t t = a->now.unix_ms;
	a->now.unix_ms = t + 60000;
	receipt_home(a, b, id[0]);
	api_client_notify(live);
	r = drain(live);
	snprintf(want, sizeof(want), "{\"event\":\"delivered\",\"id\":\"%s\"", id[0]);
	CHECK(has(r, want));
	CHECK_EQ(count(r, "\n"), 1);
	free(r);
	a->now.unix_ms = t; /* set back a minute */
	receipt_home(a, b, id[1]);
	api_client_notify(live);
	r = drain(live);
	snprintf(want, sizeof(want), "{\"event\":\"delivered\",\"id\":\"%s\"", id[1]);
	CHECK(has(r, want));
	CHECK_EQ(count(r, "\n"), 1);
	free(r);
	api_client_notify(live);
	r = drain(live);
	CHECK(strcmp(r, "") == 0);
	free(r);
	api_client_free(live);
}

/* A client that never reads: events wait in the store, replies stop at a cap. */
static void test_bounded(struct node *a, struct node *b)
{
	struct api_client *c;
	const uint8_t *p;
	char text[1001], *r;
	enum { MESSAGES = 300 };
	memset(text, 'z', 1000);
	text[1000] = '\0';
	CHECK_EQ(store_batch_begin(b->store), 0);
	for (int i = 0; i < MESSAGES; i++)
		CHECK(b_sends(b, text, NULL));
	CHECK_EQ(store_batch_commit(b->store), 0);
	CHECK_EQ(carry(b, a, NULL), MESSAGES);

	CHECK_EQ(api_client_new(a, NULL, &c), 0);
	CHECK_EQ(api_client_input(c, (const uint8_t *)"subscribe after=3\n", 18), 0);
	size_t most = 0;
	for (int i = 0; i < 50; i++) {
		api_client_notify(c);
		size_t n = api_client_output(c, &p);
		most = n > most ? n : most;
	}
	CHECK(most >= API_EVENT_ROOM);
	CHECK(most < API_EVENT_ROOM + 2 * 1024);
	/* Reading it all gives every event, once, in order. */
	r = drain(c);
	CHECK_EQ(count(r, "{\"event\":\"message\""), MESSAGES);
	CHECK(has(r, "\"seq\":4,"));
	char last[32];
	snprintf(last, sizeof(last), "\"seq\":%d,", MESSAGES + 3);
	CHECK(has(r, last));
	free(r);
	api_client_free(c);

	/* Requests without reading their replies: cut off past API_OUT_MAX, not grown further. */
	CHECK_EQ(api_client_new(a, NULL, &c), 0);
	size_t reps = API_OUT_MAX / 20 + 1000, len = reps * 5;
	char *flood = malloc(len);
	for (size_t i = 0; i < reps; i++)
		memcpy(flood + 5 * i, "ping\n", 5);
	CHECK(api_client_wants_input(c));
	CHECK_EQ(api_client_input(c, (const uint8_t *)flood, len), -ENOBUFS);
	size_t n = api_client_output(c, &p);
	CHECK(n > API_OUT_MAX && n < API_OUT_MAX + 200);
	CHECK(!api_client_wants_input(c));
	CHECK(n > 100 && memmem(p + n - 100, 100, "\"code\":\"overloaded\"", 19) != NULL);
	free(flood);
	api_client_free(c);
}

/* Long texts: not inlined in events past API_EVENT_TEXT_MAX, not read past API_READ_MAX. */
static void test_long_texts(struct node *a, struct node *b)
{
	struct api_client *c;
	char *r, id[40], req[100];
	size_t mid = API_EVENT_TEXT_MAX + 1, big = API_READ_MAX + 1;
	char *text = malloc(big + 1);
	memset(text, 'q', big);
	text[big] = '\0';
	CHECK_EQ(api_client_new(a, NULL, &c), 0);
	r = talk(c, "subscribe\n", NULL);
	free(r);
	text[mid] = '\0';
	CHECK(b_sends(b, text, NULL));
	text[mid] = 'q';
	CHECK(b_sends(b, text, NULL));
	CHECK_EQ(carry(b, a, NULL), 2);
	api_client_notify(c);
	r = drain(c);
	CHECK_EQ(count(r, "{\"event\":\"message\""), 2);
	CHECK_EQ(count(r, "\"text\":"), 0);
	CHECK(field(r, "id", id, sizeof(id)));
	free(r);
	snprintf(req, sizeof(req), "read id=%s\n", id);
	r = talk(c, req, NULL);
	CHECK(has(r, "\"read\":true,\"text\":\"qqqq"));
	CHECK(strlen(r) > mid);
	free(r);
	r = talk(c, "inbox after=303\n", NULL);
	CHECK_EQ(count(r, "\"seq\":"), 2);
	free(r);
	r = talk(c, "inbox after=304\n", NULL);
	CHECK(field(r, "id", id, sizeof(id)));
	free(r);
	snprintf(req, sizeof(req), "read id=%s\n", id);
	r = talk(c, req, NULL);
	CHECK(has(r, "\"code\":\"too_large\""));
	free(r);
	/* One recipient twice is the sealer's to refuse, and a bad request. */
	r = talk(c, "send to=bob,bob length=1\nx", NULL);
	CHECK(has(r, "\"code\":\"bad_request\",\"error\":\"send: "));
	free(r);
	api_client_free(c);
	free(text);
}

int main(void)
{
	struct node a, b;
	if (!mkdtemp(dir) || tern_crypto_init() < 0 || !pair_open(&a, &b)) {
		fprintf(stderr, "test_api: setup failed\n");
		return 1;
	}
	test_basics(&a);
	test_errors(&a);
	test_send(&a, &b);
	test_inbox(&b);
	test_subscribe(&a, &b);
	test_subscribe_order(&a, &b);
	test_bounded(&a, &b);
	test_long_texts(&a, &b);
	node_close(&a);
	node_close(&b);
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "test_api: could not remove %s\n", dir);
	TEST_MAIN_END();
}
