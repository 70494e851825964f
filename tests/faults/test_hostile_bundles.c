/* Hostile bundles through the real node ingest and link engine: seeded single-byte tampers of
 * sealed bundles, a bundle re-addressed to a node it is not sealed to, a peer over its quota. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "relay/cbor.h"
#include "relay/link.h"
#include "relay/node.h"
#include "tests/unit/test.h"
#include "tests/testnode.h"

/*
 * TERN_TAMPERS (default 10000) single-byte changes, split between two bundles: a compact
 * text (creation time 0, Bundle Age and Hop Count blocks, as a field Pi sends it) and a
 * full-form file for two recipients, re-encoded as a relay may (CRC-16 on the primary
 * block, CRC-32C on the payload block). Half the positions are uniform over the bundle,
 * half uniform over its regions (so that a 4-byte CRC is hit as often as the ciphertext);
 * each replacement is a seeded random other value (TERN_TAMPER_SEED, default 1). Every
 * tampered bundle goes through ingest_new/feed/finish at the recipient inside a store
 * batch that is then rolled back, so that each one meets a store that has never seen the
 * bundle. Outcomes: rejected (nothing stored, inbox empty), or delivered with exactly the
 * plaintext and sender that were sealed; anything else fails. The figures go to stdout.
 */

static char dir[] = "/tmp/tern-test-hostile.XXXXXX";
static int n_nodes;
static uint64_t rng = 1;

static uint64_t next_rand(void)
{
	/* splitmix64: seeded, the same sequence on every platform */
	uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static size_t rand_below(size_t n)
{
	return (size_t)(next_rand() % n);
}

/* ---- nodes --------------------------------------------------------------------------- */

static bool open_node(struct node *n, char *path, size_t cap, bool trusted)
{
	const char *why = NULL;
	memset(n, 0, sizeof(*n));
	if (identity_generate(&n->id) < 0)
		return false;
	identity_get_public(n->id, &n->pub);
	n->node_num = identity_node_number(n->pub.sign_pk);
	n->clock_trusted = trusted;
	testnode_clock(&n->now);
	snprintf(path, cap, "%s/n%d.db", dir, n_nodes++);
	int ret = store_open(path, &n->now, &n->store, &why);
	if (ret < 0)
		fprintf(stderr, "test_hostile_bundles: %s: %s\n", path, why ? why : strerror(-ret));
	return ret == 0;
}

/* ---- bundles as bytes -------------------------------------------------------------- */

struct membuf {
	uint8_t *p;
	size_t len, cap;
};

static int to_membuf(void *ctx, const uint8_t *buf, size_t len)
{
	struct membuf *m = ctx;
	if (m->len + len > m->cap) {
		size_t cap = (m->len + len) * 2;
		uint8_t *p = realloc(m->p, cap);
		if (!p)
			return -ENOMEM;
		m->p = p;
		m->cap = cap;
	}
	memcpy(m->p + m->len, buf, len);
	m->len += len;
	return 0;
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

/* Seals buf from `from` to the contacts and emits the bundle for rcpt[0] into out. */
static bool seal(struct node *from, const struct store_contact *rcpt, size_t n_rcpt,
		 const uint8_t *buf, size_t len, bool file, struct membuf *out)
{
	struct mem m = {buf, len, 0};
	struct submit_request req = {
	    .kind = file ? ENVELOPE_FILE : ENVELOPE_TEXT,
	    .name = file ? "report.txt" : NULL,
	    .size = len,
	    .read = read_mem,
	    .read_ctx = &m,
	    .priority = STORE_NORMAL,
	    .lifetime_ms = NODE_DEFAULT_LIFETIME_MS,
	};
	struct submit_result res;
	struct store_bundle bd;
	uint8_t head[BUNDLE_HEAD_MAX];
	size_t headlen = 0;
	const char *why = NULL;
	int ret = node_submit(from, rcpt, n_rcpt, &req, &res, &why);
	if (ret < 0) {
		fprintf(stderr, "test_hostile_bundles: submit: %s\n", why ? why : strerror(-ret));
		return false;
	}
	out->len = 0;
	return store_bundle_get(from->store, res.bundle_id[0], &from->now, &bd, head, sizeof(head),
				&headlen) == 0 &&
	       node_emit(from, &bd, head, headlen, to_membuf, out, NULL) == 0;
}

/* Decodes a whole bundle: its header, and where its payload bytes start. */
struct decoded {
	struct bundle_header h;
	size_t payload_at, fed;
	bool seen;
};

static int dec_header(void *ctx, const struct bundle_header *h)
{
	((struct decoded *)ctx)->h = *h;
	return 0;
}

static int dec_payload(void *ctx, const uint8_t *buf, size_t len)
{
	struct decoded *d = ctx;
	(void)buf;
	(void)len;
	if (!d->seen)
		d->payload_at = d->fed;
	d->seen = true;
	return 0;
}

static bool decode(const uint8_t *buf, size_t len, struct decoded *d)
{
	static const struct bundle_parser_cb cb = {.on_header = dec_header,
						   .on_payload = dec_payload};
	struct bundle_limits lim = {.max_payload = NODE_MAX_PAYLOAD};
	struct bundle_parser *p;
	bool ok = true;
	memset(d, 0, sizeof(*d));
	if (bundle_parser_new(&lim, &cb, d, &p) < 0)
		return false;
	/* Byte by byte, so that the first payload callback tells where the payload starts. */
	for (d->fed = 0; ok && d->fed < len; d->fed++)
		ok = bundle_parser_feed(p, buf + d->fed, 1) == 0;
	ok = ok && bundle_parser_finish(p) == 0 && (d->seen || d->h.payload_len == 0);
	bundle_parser_free(p);
	return ok;
}

/* Re-encodes a bundle with header h (the payload as it was), as a relay would. */
static bool reencode(const struct membuf *in, const struct bundle_header *h, struct membuf *out)
{
	struct decoded d;
	uint8_t head[BUNDLE_HEAD_MAX], tail[BUNDLE_TAIL_MAX];
	struct bundle_tail t;
	if (!decode(in->p, in->len, &d))
		return false;
	int hl = bundle_encode_head(h, head, sizeof(head));
	if (hl < 0 || h->payload_len != d.h.payload_len)
		return false;
	bundle_tail_init(&t, h);
	bundle_tail_update(&t, in->p + d.payload_at, d.h.payload_len);
	int tl = bundle_encode_tail(&t, tail, sizeof(tail));
	out->len = 0;
	return tl > 0 && to_membuf(out, head, (size_t)hl) == 0 &&
	       to_membuf(out, in->p + d.payload_at, d.h.payload_len) == 0 &&
	       to_membuf(out, tail, (size_t)tl) == 0;
}

/* ---- what the receiver holds --------------------------------------------------------- */

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

static int count_one(void *ctx, const struct store_bundle *b, const uint8_t *h, size_t hl)
{
	(void)b;
	(void)h;
	(void)hl;
	(*(int *)ctx)++;
	return 0;
}

static int count_bundles(struct node *n)
{
	int count = 0;
	store_bundle_foreach(n->store, STORE_QUEUED, &n->now, count_one, &count);
	store_bundle_foreach(n->store, STORE_DELIVERED, &n->now, count_one, &count);
	return count;
}

struct opened {
	struct node *n;
	struct membuf plain;
	struct envelope_meta meta;
	int entries, ret;
};

static int open_one(void *ctx, const struct store_inbox *e)
{
	struct opened *o = ctx;
	o->entries++;
	o->plain.len = 0;
	o->ret = node_open_inbox(o->n, e, to_membuf, &o->plain, &o->meta);
	return 0;
}

/* Whether n's inbox is exactly one entry that opens to want, signed by sender. */
static bool inbox_is(struct node *n, const uint8_t *want, size_t len, const uint8_t *sender)
{
	struct opened o = {.n = n};
	store_inbox_foreach(n->store, open_one, &o);
	bool ok = o.entries == 1 && o.ret == 0 && o.plain.len == len &&
		  memcmp(o.plain.p, want, len) == 0 &&
		  memcmp(o.meta.sender_sign_pk, sender, 32) == 0;
	free(o.plain.p);
	return ok;
}

/* Whether needle occurs in the file at path (read whole: the test's files are small). */
static bool file_has(const char *path, const uint8_t *needle, size_t nlen)
{
	FILE *f = fopen(path, "rb");
	struct membuf m = {0};
	uint8_t buf[65536];
	size_t r;
	bool found = false;
	if (!f)
		return false;
	while ((r = fread(buf, 1, sizeof(buf), f)) > 0)
		to_membuf(&m, buf, r);
	fclose(f);
	for (size_t i = 0; !found && m.len >= nlen && i <= m.len - nlen; i++)
		found = memcmp(m.p + i, needle, nlen) == 0;
	free(m.p);
	return found;
}

/* Whether needle is in the store at db: its file, WAL, shared memory or payload files. */
static bool store_has(const char *db, const uint8_t *needle, size_t nlen)
{
	char path[700];
	bool found = file_has(db, needle, nlen);
	static const char *const sfx[] = {"-wal", "-shm", "-journal"};
	for (size_t i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s%s", db, sfx[i]);
		found |= file_has(path, needle, nlen);
	}
	snprintf(path, sizeof(path), "%s-payloads", db);
	DIR *d = opendir(path);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		char p2[1000];
		if (e->d_name[0] == '.')
			continue;
		snprintf(p2, sizeof(p2), "%s/%s", path, e->d_name);
		found |= file_has(p2, needle, nlen);
	}
	if (d)
		closedir(d);
	return found;
}

/* ---- regions of a bundle ---------------------------------------------------------- */

#define MAX_REGIONS 32

struct regions {
	const char *names[MAX_REGIONS];
	size_t n;
	uint8_t *of; /* of[i]: the region of byte i */
	size_t len;
};

static uint8_t region_id(struct regions *r, const char *name)
{
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->names[i], name) == 0)
			return (uint8_t)i;
	if (r->n == MAX_REGIONS)
		return (uint8_t)(r->n - 1);
	r->names[r->n] = name;
	return (uint8_t)r->n++;
}

static void mark(struct regions *r, size_t from, size_t to, const char *name)
{
	uint8_t id = region_id(r, name);
	for (size_t i = from; i < to && i < r->len; i++)
		r->of[i] = id;
}

/* Skips one CBOR item of a well-formed bundle (our own, untampered). */
static int skip_item(struct cbor_reader *rd)
{
	struct cbor_head h;
	int ret = cbor_read_head(rd, &h);
	if (ret < 0)
		return ret;
	switch (h.major) {
	case CBOR_BYTES:
	case CBOR_TEXT:
		if (h.arg > rd->len - rd->pos)
			return -EBADMSG;
		rd->pos += h.arg;
		return 0;
	case CBOR_ARRAY:
		for (uint64_t i = 0; i < h.arg && ret == 0; i++)
			ret = skip_item(rd);
		return ret;
	case CBOR_MAP:
		for (uint64_t i = 0; i < 2 * h.arg && ret == 0; i++)
			ret = skip_item(rd);
		return ret;
	case CBOR_TAG:
		return skip_item(rd);
	default:
		return 0;
	}
}

/* The bundle map_regions maps. */
static const uint8_t *region_bytes;

/* The envelope's parts, docs/envelope.md "Wire format". */
static void mark_envelope(struct regions *r, size_t at, size_t len)
{
	mark(r, at, at + 1, "envelope form byte");
	if (len == 0)
		return;
	const uint8_t *p = region_bytes + at;
	if (p[0] == 0x02 || p[0] == 0x03) { /* compact, versions 1 and 2 */
		mark(r, at + 1, at + 33, "compact eph_pk");
		mark(r, at + 33, at + len - 16, "compact ciphertext");
		mark(r, at + len - 16, at + len, "compact AEAD tag");
		return;
	}
	size_t n = p[1];
	mark(r, at + 1, at + 2, "full: recipient count");
	mark(r, at + 2, at + 26, "full: secretstream header");
	for (size_t i = 0; i < n; i++) {
		size_t s = at + 26 + 80 * i;
		mark(r, s, s + 32, "full: stanza eph_pk");
		mark(r, s + 32, s + 80, "full: stanza wrapped key");
	}
	size_t pos = 26 + 80 * n;
	mark(r, at + pos, at + pos + 32, "full: header MAC");
	pos += 32;
	for (int chunk = 0; pos + 4 <= len; chunk++) {
		uint32_t l = (uint32_t)p[pos] << 24 | (uint32_t)p[pos + 1] << 16 |
			     (uint32_t)p[pos + 2] << 8 | p[pos + 3];
		mark(r, at + pos, at + pos + 4, "full: chunk length");
		pos += 4;
		bool last = pos + l >= len;
		const char *body = chunk == 0 ? "full: inner header chunk"
				   : last     ? "full: signature chunk"
					      : "full: data chunk";
		mark(r, at + pos, at + pos + l - 16, body);
		mark(r, at + pos + l - 16, at + pos + l, "full: chunk MAC");
		pos += l;
	}
}

static const char *block_name(uint64_t type)
{
	switch (type) {
	case 6:
		return "Previous Node block";
	case 7:
		return "Bundle Age block";
	case 10:
		return "Hop Count block";
	default:
		return "other extension block";
	}
}

static bool map_regions(const uint8_t *buf, size_t len, struct regions *r)
{
	struct cbor_reader rd;
	struct cbor_head h;
	memset(r, 0, sizeof(*r));
	r->of = calloc(len, 1);
	r->len = len;
	region_bytes = buf;
	if (!r->of)
		return false;
	mark(r, 0, 1, "bundle array start");
	cbor_reader_init(&rd, buf, len);
	rd.pos = 1;
	for (int block = 0; rd.pos < len && buf[rd.pos] != 0xff; block++) {
		size_t start = rd.pos;
		uint64_t items;
		if (cbor_read_array(&rd, &items) < 0)
			return false;
		if (block == 0) {
			size_t before_crc = rd.pos;
			for (uint64_t i = 0; i < items; i++) {
				before_crc = rd.pos;
				if (skip_item(&rd) < 0)
					return false;
			}
			/* buf[start + 3] is the CRC type (array head, version, flags: 1 byte each).
			 */
			bool crc = buf[start + 3] != 0;
			mark(r, start, crc ? before_crc : rd.pos, "primary block");
			if (crc)
				mark(r, before_crc, rd.pos, "primary CRC");
			continue;
		}
		uint64_t type = 0, num, flags, crc_type;
		if (cbor_read_uint(&rd, &type) < 0 || cbor_read_uint(&rd, &num) < 0 ||
		    cbor_read_uint(&rd, &flags) < 0 || cbor_read_uint(&rd, &crc_type) < 0)
			return false;
		size_t data_head = rd.pos;
		if (cbor_read_head(&rd, &h) < 0 || h.major != CBOR_BYTES || h.arg > len - rd.pos)
			return false;
		size_t data = rd.pos;
		rd.pos += h.arg;
		if (type == 1) {
			mark(r, start, data, "payload block header");
			mark_envelope(r, data, h.arg);
		} else {
			mark(r, start, data_head, block_name(type));
			mark(r, data_head, rd.pos, block_name(type));
		}
		if (crc_type) {
			size_t crc_at = rd.pos;
			if (skip_item(&rd) < 0)
				return false;
			mark(r, crc_at, rd.pos, type == 1 ? "payload CRC" : "extension block CRC");
		}
	}
	mark(r, rd.pos, len, "bundle break");
	return true;
}

/* ---- the tampers -------------------------------------------------------------------- */

struct tally {
	unsigned tried, rejected, identical, other;
};

static struct tally total;

static void tamper_run(const char *what, struct node *to, const char *to_db, struct membuf *bundle,
		       const uint8_t *plain, size_t plain_len, const uint8_t *sender,
		       unsigned count)
{
	struct regions r;
	struct tally per[MAX_REGIONS] = {{0}};
	struct ingest *in;
	struct ingest_result res;
	if (!map_regions(bundle->p, bundle->len, &r)) {
		CHECK(!"the bundle maps to its regions");
		free(r.of);
		return;
	}
	/* The bytes of each region in turn: region i's are by_region[first[i] .. first[i + 1]). */
	size_t first[MAX_REGIONS + 1] = {0}, fill[MAX_REGIONS] = {0};
	size_t *by_region = malloc(bundle->len * sizeof(*by_region));
	if (!by_region) {
		CHECK(!"memory");
		free(r.of);
		return;
	}
	for (size_t i = 0; i < bundle->len; i++)
		first[r.of[i] + 1]++;
	for (size_t i = 0; i < r.n; i++)
		first[i + 1] += first[i];
	for (size_t i = 0; i < bundle->len; i++)
		by_region[first[r.of[i]] + fill[r.of[i]]++] = i;
	/* The untampered bundle is delivered (else every rejection below proves nothing). */
	CHECK_EQ(store_batch_begin(to->store), 0);
	CHECK_EQ(ingest_new(to, &in), 0);
	ingest_feed(in, bundle->p, bundle->len);
	CHECK_EQ(ingest_finish(in, &res), 0);
	CHECK_EQ(res.verdict, INGEST_DELIVERED);
	CHECK(inbox_is(to, plain, plain_len, sender));
	store_batch_abort(to->store);
	CHECK_EQ(count_inbox(to), 0);

	for (unsigned k = 0; k < count; k++) {
		/* Uniform over the bundle, or a region at random and then a byte of it. */
		size_t pos = rand_below(bundle->len);
		if (k % 2) {
			uint8_t want = (uint8_t)rand_below(r.n);
			pos = by_region[first[want] + rand_below(first[want + 1] - first[want])];
		}
		uint8_t old = bundle->p[pos];
		bundle->p[pos] = (uint8_t)(old ^ (1 + rand_below(255)));
		struct tally *t = &per[r.of[pos]];
		t->tried++;

		if (store_batch_begin(to->store) != 0) {
			CHECK(!"a batch for each tamper");
			bundle->p[pos] = old;
			break;
		}
		int ret = ingest_new(to, &in);
		CHECK_EQ(ret, 0);
		if (ret == 0) {
			/* In one to three pieces, split anywhere. */
			size_t a = rand_below(bundle->len + 1), b = rand_below(bundle->len + 1);
			if (a > b) {
				size_t x = a;
				a = b;
				b = x;
			}
			if (!ingest_feed(in, bundle->p, a) &&
			    !ingest_feed(in, bundle->p + a, b - a))
				ingest_feed(in, bundle->p + b, bundle->len - b);
			ret = ingest_finish(in, &res);
		}
		CHECK_EQ(ret, 0);
		int inbox = count_inbox(to), stored = count_bundles(to);
		if (ret == 0 && res.verdict == INGEST_REJECTED && inbox == 0 && stored == 0) {
			t->rejected++;
		} else if (ret == 0 && res.verdict == INGEST_DELIVERED && stored == 1 &&
			   inbox_is(to, plain, plain_len, sender)) {
			t->identical++;
			printf("  accepted, same plaintext: byte %zu (%s) %02x -> %02x\n", pos,
			       r.names[r.of[pos]], old, bundle->p[pos]);
		} else {
			t->other++;
			fprintf(stderr,
				"test_hostile_bundles: %s: byte %zu (%s) %02x -> %02x: ret %d, "
				"verdict %d (%s), inbox %d, stored %d\n",
				what, pos, r.names[r.of[pos]], old, bundle->p[pos], ret,
				ret == 0 ? (int)res.verdict : 0, ret == 0 ? res.reason : "", inbox,
				stored);
		}
		store_batch_abort(to->store);
		bundle->p[pos] = old;
	}
	CHECK_EQ(count_inbox(to), 0);
	CHECK(!store_has(to_db, plain, plain_len < 24 ? plain_len : 24));

	struct tally sum = {0};
	printf("%s (%zu bytes), up to its envelope:", what, bundle->len);
	for (size_t i = 0; i < bundle->len && i < 64; i++)
		printf("%s%02x", i % 16 ? " " : "\n  ", bundle->p[i]);
	printf("\n");
	printf("  %-28s %7s %9s %9s %6s\n", "region", "tried", "rejected", "identical", "other");
	for (size_t i = 0; i < r.n; i++) {
		printf("  %-28s %7u %9u %9u %6u\n", r.names[i], per[i].tried, per[i].rejected,
		       per[i].identical, per[i].other);
		sum.tried += per[i].tried;
		sum.rejected += per[i].rejected;
		sum.identical += per[i].identical;
		sum.other += per[i].other;
	}
	printf("  %-28s %7u %9u %9u %6u\n", "all", sum.tried, sum.rejected, sum.identical,
	       sum.other);
	CHECK_EQ(sum.other, 0);
	total.tried += sum.tried;
	total.rejected += sum.rejected;
	total.identical += sum.identical;
	total.other += sum.other;
	free(by_region);
	free(r.of);
}

static void test_tampers(unsigned count)
{
	struct node a, b, c;
	char pa[512], pb[512], pc[512];
	struct store_contact ca, cb[2], cc;
	struct membuf text = {0}, file = {0}, relayed = {0};
	static const char msg[] = "convoy leaves the north gate at 06:00; bring the cold chain box";
	uint8_t *doc = malloc(70000);
	struct decoded d;
	for (size_t i = 0; doc && i < 70000; i++)
		doc[i] = (uint8_t)("field report, water points and stock levels\n"[i % 44]);
	if (!doc || !open_node(&a, pa, sizeof(pa), false) || !open_node(&b, pb, sizeof(pb), true) ||
	    !open_node(&c, pc, sizeof(pc), true)) {
		CHECK(!"nodes");
		free(doc);
		return;
	}
	testnode_as_contact(&a, "a", &ca);
	testnode_as_contact(&b, "b", &cb[0]);
	testnode_as_contact(&c, "c", &cb[1]);
	testnode_as_contact(&c, "c", &cc);
	CHECK(store_contact_add(b.store, &ca) == 0 && store_contact_add(a.store, &cb[0]) == 0 &&
	      store_contact_add(a.store, &cc) == 0);
	CHECK(seal(&a, cb, 1, (const uint8_t *)msg, strlen(msg), false, &text));
	/* A file for b and c, sealed once: b's bundle, its envelope with two stanzas. */
	a.clock_trusted = true;
	CHECK(seal(&a, cb, 2, doc, 70000, true, &file));
	CHECK(decode(file.p, file.len, &d));
	d.h.crc_type = BUNDLE_CRC16;
	d.h.payload_crc_type = BUNDLE_CRC32C;
	CHECK(reencode(&file, &d.h, &relayed));
	CHECK(text.len > 0 && text.p[0] == 0x9f && relayed.len > 70000);
	if (text.len && relayed.len) {
		tamper_run("compact text, creation time 0, Bundle Age", &b, pb, &text,
			   (const uint8_t *)msg, strlen(msg), a.pub.sign_pk, count - count / 2);
		tamper_run("full-form file, two recipients, CRC-16 primary, CRC-32C payload", &b,
			   pb, &relayed, doc, 70000, a.pub.sign_pk, count / 2);
	}
	printf("tampers: %u tried, %u rejected, %u accepted with identical plaintext, %u other\n",
	       total.tried, total.rejected, total.identical, total.other);

	/* For real now: both delivered once; the store holds no plaintext, only sealed bytes. */
	struct ingest *in;
	struct ingest_result res;
	struct membuf *both[2] = {&text, &relayed};
	for (int i = 0; i < 2; i++) {
		for (int again = 0; again < 2; again++) {
			CHECK_EQ(ingest_new(&b, &in), 0);
			ingest_feed(in, both[i]->p, both[i]->len);
			CHECK_EQ(ingest_finish(in, &res), 0);
			CHECK_EQ(res.verdict, again ? INGEST_DUPLICATE : INGEST_DELIVERED);
		}
	}
	CHECK_EQ(count_inbox(&b), 2);
	CHECK(!store_has(pb, (const uint8_t *)msg, 24));
	CHECK(!store_has(pb, doc, 44));
	node_close(&a);
	node_close(&b);
	node_close(&c);
	free(text.p);
	free(file.p);
	free(relayed.p);
	free(doc);
}

/* ---- addressed to one node, sealed to another --------------------------------------- */

static void test_wrong_recipient(void)
{
	struct node a, b, c;
	char pa[512], pb[512], pc[512];
	struct store_contact ca, cc;
	struct membuf for_c = {0}, readdressed = {0};
	struct decoded d;
	struct ingest *in;
	struct ingest_result res;
	static const char msg[] = "for carol only: the new radio schedule";
	if (!open_node(&a, pa, sizeof(pa), false) || !open_node(&b, pb, sizeof(pb), true) ||
	    !open_node(&c, pc, sizeof(pc), true)) {
		CHECK(!"nodes");
		return;
	}
	testnode_as_contact(&a, "a", &ca);
	testnode_as_contact(&c, "c", &cc);
	CHECK(store_contact_add(b.store, &ca) == 0 && store_contact_add(c.store, &ca) == 0 &&
	      store_contact_add(a.store, &cc) == 0);
	CHECK(seal(&a, &cc, 1, (const uint8_t *)msg, strlen(msg), false, &for_c));

	/* For c, arriving at b: not opened, kept to forward (no route yet: it waits). */
	CHECK_EQ(ingest_new(&b, &in), 0);
	ingest_feed(in, for_c.p, for_c.len);
	CHECK_EQ(ingest_finish(in, &res), 0);
	CHECK_EQ(res.verdict, INGEST_QUEUED);
	CHECK_EQ(res.dest_node, c.node_num);
	CHECK_EQ(count_inbox(&b), 0);
	/* From a stick that carries other offices' cargo: passed by, not looked at further. */
	CHECK_EQ(ingest_new(&b, &in), 0);
	ingest_no_relay(in);
	ingest_feed(in, for_c.p, for_c.len);
	CHECK_EQ(ingest_finish(in, &res), 0);
	CHECK_EQ(res.verdict, INGEST_PASSED);
	CHECK_EQ(count_inbox(&b), 0);
	/* Where it is addressed, it opens. */
	CHECK_EQ(ingest_new(&c, &in), 0);
	ingest_feed(in, for_c.p, for_c.len);
	CHECK_EQ(ingest_finish(in, &res), 0);
	CHECK_EQ(res.verdict, INGEST_DELIVERED);
	CHECK(inbox_is(&c, (const uint8_t *)msg, strlen(msg), a.pub.sign_pk));

	/* Re-addressed to b, its envelope still sealed to c: rejected at b, nothing delivered. */
	CHECK(decode(for_c.p, for_c.len, &d));
	d.h.dest.node = b.node_num;
	CHECK(reencode(&for_c, &d.h, &readdressed));
	CHECK_EQ(ingest_new(&b, &in), 0);
	ingest_feed(in, readdressed.p, readdressed.len);
	CHECK_EQ(ingest_finish(in, &res), 0);
	CHECK_EQ(res.verdict, INGEST_REJECTED);
	CHECK(strstr(res.reason, "cannot be opened with this node's keys") != NULL);
	CHECK_EQ(count_inbox(&b), 0);
	CHECK_EQ(count_bundles(&b), 1); /* the one for c, waiting; nothing else */
	CHECK(!store_has(pb, (const uint8_t *)msg, 24));
	node_close(&a);
	node_close(&b);
	node_close(&c);
	free(for_c.p);
	free(readdressed.p);
}

/* ---- a peer over its quota, over a link -------------------------------------------- */

struct rec {
	uint8_t *buf;
	size_t len;
};

struct side {
	struct node n;
	char path[512];
	struct store_peer peer;
	struct store_contact them;
	struct link_session *s;
	struct rec *out;
	size_t n_out, cap_out, delivered;
	int ret;
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

/* Records both ways and pumps, until nothing moves or a session ends. */
static void run(struct side *a, struct side *b, uint64_t now)
{
	struct side *xs[2] = {a, b};
	for (int round = 0; round < 10000; round++) {
		bool moved = false;
		for (int i = 0; i < 2; i++) {
			struct side *x = xs[i], *y = xs[1 - i];
			while (x->delivered < x->n_out && !y->ret) {
				struct rec *r = &x->out[x->delivered++];
				int ret = link_session_input(y->s, r->buf, r->len, now);
				if (ret < 0)
					y->ret = ret;
				moved = true;
			}
		}
		for (int i = 0; i < 2 && !a->ret && !b->ret; i++) {
			size_t made = 0;
			int ret = link_session_pump(xs[i]->s, now, 100000, &made);
			if (ret < 0)
				xs[i]->ret = ret;
			moved |= made > 0;
		}
		if (!moved || a->ret || b->ret)
			return;
	}
}

/* Counts in x's log: REFUSEs of id with reason (and the last retry), WANTs of id, ACKs. */
static int refusals(const struct side *x, const uint8_t id[32], uint8_t reason, uint32_t *retry)
{
	int n = 0;
	for (size_t i = 0; i < x->n_out; i++) {
		struct link_msg m;
		if (link_parse(x->out[i].buf, x->out[i].len, &m, NULL) < 0 || m.type != LINK_REFUSE)
			continue;
		for (size_t k = 0; k < m.count; k++) {
			struct link_refuse r;
			link_refuse_at(&m, k, &r);
			if (memcmp(r.id, id, 32) == 0 && r.reason == reason) {
				n++;
				*retry = r.retry_after_s;
			}
		}
	}
	return n;
}

static int count_type(const struct side *x, enum link_type t)
{
	int n = 0;
	for (size_t i = 0; i < x->n_out; i++)
		n += x->out[i].buf[0] == t;
	return n;
}

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

static void test_quota(void)
{
	struct side a = {0}, b = {0};
	struct link_limits la, lb;
	struct store_stage *st = NULL;
	uint8_t filler[32], id[32];
	uint32_t retry = 0;
	size_t len = 300000;
	uint8_t *doc = malloc(len);
	for (size_t i = 0; doc && i < len; i++)
		doc[i] = (uint8_t)(i * 7 + i / 251);
	memset(filler, 0x5a, 32);
	link_limits_default(&la);
	la.keepalive_s = 0;
	la.rescan_s = 0;
	lb = la;
	lb.stage_peer_max = 1000000; /* a's stages here: 1 MB */
	lb.disk_reserve = 0;
	lb.disk_reserve_pct = 0;
	if (!doc || !open_node(&a.n, a.path, sizeof(a.path), true) ||
	    !open_node(&b.n, b.path, sizeof(b.path), true)) {
		CHECK(!"nodes");
		free(doc);
		return;
	}
	testnode_as_peer(&b.n, "b", &a.peer);
	testnode_as_peer(&a.n, "a", &b.peer);
	testnode_as_contact(&b.n, "b", &a.them);
	testnode_as_contact(&a.n, "a", &b.them);
	CHECK(store_peer_add(a.n.store, &a.peer) == 0 && store_peer_add(b.n.store, &b.peer) == 0 &&
	      store_contact_add(a.n.store, &a.them) == 0 &&
	      store_contact_add(b.n.store, &b.them) == 0);
	/* A transfer of a's under way here reserves 800 kB of the 1 MB. */
	CHECK_EQ(store_stage_open(b.n.store, a.n.node_num, filler, 800000, 0, 3600000, NULL,
				  &b.n.now, &st),
		 0);
	if (st) {
		CHECK_EQ(store_stage_append(st, doc, len), 0);
		CHECK_EQ(store_stage_sync(st), 0);
		store_stage_close(st);
		st = NULL;
	}
	CHECK_EQ(stage_files(b.path), 1);
	struct membuf sealed = {0};
	CHECK(seal(&a.n, &a.them, 1, doc, len, true, &sealed));
	CHECK_EQ(link_session_new(&a.n, &a.peer, &la, to_pipe, &a, &a.s), 0);
	CHECK_EQ(link_session_new(&b.n, &b.peer, &lb, to_pipe, &b, &b.s), 0);
	if (!a.s || !b.s)
		goto out;
	/* The bundle's id: the one a offers. */
	{
		struct bundle_parser *p;
		struct bundle_limits bl = {.max_payload = NODE_MAX_PAYLOAD};
		static const struct bundle_parser_cb none = {0};
		CHECK_EQ(bundle_parser_new(&bl, &none, NULL, &p), 0);
		CHECK_EQ(bundle_parser_feed(p, sealed.p, sealed.len), 0);
		CHECK_EQ(bundle_parser_finish(p), 0);
		bundle_parser_id(p, id);
		bundle_parser_free(p);
	}
	CHECK_EQ(link_session_start(a.s, 0), 0);
	CHECK_EQ(link_session_start(b.s, 0), 0);
	run(&a, &b, 0);
	CHECK_EQ(a.ret, 0);
	CHECK_EQ(b.ret, 0);
	/* Refused `quota`, to be offered again in ten minutes; nothing wanted, nothing staged. */
	CHECK_EQ(refusals(&b, id, LINK_REFUSE_QUOTA, &retry), 1);
	CHECK_EQ(retry, 600);
	CHECK_EQ(count_type(&b, LINK_WANT), 0);
	CHECK_EQ(count_type(&a, LINK_HEAD), 0);
	CHECK_EQ(stage_files(b.path), 1);
	CHECK_EQ(count_inbox(&b.n), 0);
	CHECK(store_bundle_exists(a.n.store, id));

	/* Ten minutes on, still over: refused again, the same way. */
	CHECK_EQ(link_session_tick(a.s, 601000), 0);
	run(&a, &b, 601000);
	CHECK_EQ(refusals(&b, id, LINK_REFUSE_QUOTA, &retry), 2);
	CHECK_EQ(count_type(&b, LINK_WANT), 0);

	/* The transfer under way ends (refused, say): its reservation goes. */
	CHECK_EQ(store_stage_open(b.n.store, a.n.node_num, filler, 800000, 0, 3600000, NULL,
				  &b.n.now, &st),
		 0);
	CHECK_EQ(store_stage_drop(st), 0);
	CHECK_EQ(stage_files(b.path), 0);
	CHECK_EQ(link_session_tick(a.s, 1202000), 0);
	run(&a, &b, 1202000);
	CHECK_EQ(a.ret, 0);
	CHECK_EQ(b.ret, 0);
	CHECK_EQ(refusals(&b, id, LINK_REFUSE_QUOTA, &retry), 2);
	CHECK_EQ(count_type(&b, LINK_WANT), 1);
	CHECK(count_type(&b, LINK_ACK) >= 1);
	CHECK(inbox_is(&b.n, doc, len, a.n.pub.sign_pk));
	CHECK(!store_bundle_exists(a.n.store, id));
	CHECK_EQ(stage_files(b.path), 0);
out:
	link_session_free(a.s);
	link_session_free(b.s);
	for (size_t i = 0; i < a.n_out; i++)
		free(a.out[i].buf);
	for (size_t i = 0; i < b.n_out; i++)
		free(b.out[i].buf);
	free(a.out);
	free(b.out);
	node_close(&a.n);
	node_close(&b.n);
	free(sealed.p);
	free(doc);
}

int main(void)
{
	const char *n = getenv("TERN_TAMPERS"), *seed = getenv("TERN_TAMPER_SEED");
	unsigned count = n && *n ? (unsigned)strtoul(n, NULL, 10) : 10000;
	rng = seed && *seed ? strtoull(seed, NULL, 10) : 1;
	if (tern_crypto_init() < 0 || !mkdtemp(dir))
		return 1;
	printf("seed %" PRIu64 "\n", rng);
	test_tampers(count);
	test_wrong_recipient();
	test_quota();
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "test_hostile_bundles: could not remove %s\n", dir);
	TEST_MAIN_END();
}
