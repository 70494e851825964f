/* Tests the BPv7 codec: round trips, every split, each rejection, the id, external samples. */
#include <errno.h>
#include <stdint.h>
#include <sys/resource.h>

#include "crypto/crypto.h"
#include "relay/bundle.h"
#include "relay/cbor.h"
#include "crypto/crypto.h"
#include "test.h"

/* ---- helpers -------------------------------------------------------------------- */

#define PAYLOAD_KEEP (1u << 20)

/* What one parse produced, for comparing parses of the same input. */
struct outcome {
	int ret;
	char reason[128];
	bool got_header;
	int header_calls;
	struct bundle_header h;
	uint8_t id[32];
	uint64_t payload_len;
	uint8_t *payload; /* first PAYLOAD_KEEP bytes */
};

static int cb_header(void *ctx, const struct bundle_header *h)
{
	struct outcome *o = ctx;

	o->h = *h;
	o->got_header = true;
	o->header_calls++;
	return 0;
}

static int cb_payload(void *ctx, const uint8_t *buf, size_t len)
{
	struct outcome *o = ctx;

	CHECK(o->got_header);
	CHECK(len > 0);
	for (size_t i = 0; i < len; i++, o->payload_len++)
		if (o->payload_len < PAYLOAD_KEEP)
			o->payload[o->payload_len] = buf[i];
	return 0;
}

static const struct bundle_parser_cb test_cb = {.on_header = cb_header, .on_payload = cb_payload};

static void outcome_free(struct outcome *o)
{
	if (o) {
		free(o->payload);
		free(o);
	}
}

/* Parses buf fed in pieces of step bytes (0: all at once) with an optional cut point. */
static struct outcome *parse_split(const uint8_t *buf, size_t len, size_t step, size_t cut,
				   uint64_t max_payload)
{
	struct outcome *o = calloc(1, sizeof(*o));
	struct bundle_limits lim = {.max_payload = max_payload};
	struct bundle_parser *p;
	size_t off = 0;

	o->payload = malloc(PAYLOAD_KEEP);
	CHECK_EQ(bundle_parser_new(&lim, &test_cb, o, &p), 0);
	o->ret = 0;
	while (off < len && o->ret == 0) {
		size_t n = step ? step : len;

		if (cut && off < cut && off + n > cut)
			n = cut - off;
		if (n > len - off)
			n = len - off;
		o->ret = bundle_parser_feed(p, buf + off, n);
		off += n;
	}
	if (o->ret == 0)
		o->ret = bundle_parser_finish(p);
	snprintf(o->reason, sizeof(o->reason), "%s", bundle_parser_error(p));
	if (o->ret == 0)
		bundle_parser_id(p, o->id);
	bundle_parser_free(p);
	return o;
}

static struct outcome *parse(const uint8_t *buf, size_t len)
{
	return parse_split(buf, len, 0, 0, UINT64_MAX);
}

static bool eid_equal(const struct bundle_eid *a, const struct bundle_eid *b)
{
	if (a->scheme != b->scheme)
		return false;
	if (a->scheme == BUNDLE_SCHEME_IPN)
		return a->node == b->node && a->service == b->service;
	return a->none == b->none && (a->none || strcmp(a->dtn, b->dtn) == 0);
}

static bool header_equal(const struct bundle_header *a, const struct bundle_header *b)
{
	return a->flags == b->flags && a->crc_type == b->crc_type &&
	       eid_equal(&a->dest, &b->dest) && eid_equal(&a->source, &b->source) &&
	       eid_equal(&a->report_to, &b->report_to) && a->created_ms == b->created_ms &&
	       a->seq == b->seq && a->lifetime_ms == b->lifetime_ms &&
	       a->frag_offset == b->frag_offset && a->adu_length == b->adu_length &&
	       a->has_hop_count == b->has_hop_count &&
	       (!a->has_hop_count ||
		(a->hop_limit == b->hop_limit && a->hop_count == b->hop_count)) &&
	       a->has_age == b->has_age && (!a->has_age || a->age_ms == b->age_ms) &&
	       a->has_prev_node == b->has_prev_node &&
	       (!a->has_prev_node || eid_equal(&a->prev_node, &b->prev_node)) &&
	       a->priority == b->priority && a->extra_len == b->extra_len &&
	       memcmp(a->extra, b->extra, a->extra_len) == 0 &&
	       a->payload_flags == b->payload_flags && a->payload_crc_type == b->payload_crc_type &&
	       a->payload_len == b->payload_len;
}

static bool outcome_equal(const struct outcome *a, const struct outcome *b)
{
	size_t keep = a->payload_len < PAYLOAD_KEEP ? (size_t)a->payload_len : PAYLOAD_KEEP;

	return a->ret == b->ret && strcmp(a->reason, b->reason) == 0 &&
	       a->got_header == b->got_header && a->header_calls == b->header_calls &&
	       (!a->got_header || header_equal(&a->h, &b->h)) && a->payload_len == b->payload_len &&
	       memcmp(a->payload, b->payload, keep) == 0 && memcmp(a->id, b->id, 32) == 0;
}

/* Expects parsing buf to fail with err and a reason containing what. */
#define CHECK_REJECT(buf, len, err, what)                                                          \
	do {                                                                                       \
		struct outcome *_o = parse((buf), (len));                                          \
		CHECK_EQ(_o->ret, (err));                                                          \
		if (!strstr(_o->reason, (what))) {                                                 \
			fprintf(stderr, "%s:%d: reason \"%s\" lacks \"%s\"\n", __FILE__, __LINE__, \
				_o->reason, (what));                                               \
			test_failures++;                                                           \
		}                                                                                  \
		outcome_free(_o);                                                                  \
	} while (0)

static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
	size_t n = 0;

	for (; *hex; hex++) {
		unsigned v;

		if (*hex == ' ' || *hex == '\n')
			continue;
		if (n == cap || sscanf(hex, "%2x", &v) != 1)
			abort();
		out[n++] = (uint8_t)v;
		hex++;
	}
	return n;
}

static uint8_t *read_vector(const char *name, size_t *len)
{
	const char *dir = getenv("TERN_VECTORS");
	char path[1024];
	FILE *f;
	uint8_t *buf = malloc(1 << 16);

	snprintf(path, sizeof(path), "%s/bundles/%s", dir ? dir : "../vectors", name);
	f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "cannot open %s\n", path);
		test_failures++;
		*len = 0;
		return buf;
	}
	*len = fread(buf, 1, 1 << 16, f);
	fclose(f);
	return buf;
}

/* Sender-side id of (h, payload). */
static void sender_id(const struct bundle_header *h, const uint8_t *payload, uint8_t id[32])
{
	struct bundle_id_state *s = bundle_id_new(h);

	CHECK(s != NULL);
	if (!s)
		return;
	bundle_id_update(s, payload, (size_t)h->payload_len);
	bundle_id_final(s, id);
}

/* A block written by hand, with its CRC computed; for crafting inputs. */
static void put_block(struct cbor_writer *w, uint64_t type, uint64_t num, uint64_t flags,
		      enum bundle_crc crc, const void *data, size_t len)
{
	size_t start = w->len;

	cbor_put_array(w, crc ? 6 : 5);
	cbor_put_uint(w, type);
	cbor_put_uint(w, num);
	cbor_put_uint(w, flags);
	cbor_put_uint(w, crc);
	cbor_put_bytes(w, data, len);
	if (crc == BUNDLE_CRC16) {
		static const uint8_t z[2];
		cbor_put_bytes(w, z, 2);
		uint16_t c = crc16_x25(0, w->buf + start, w->len - start);
		w->buf[w->len - 2] = (uint8_t)(c >> 8);
		w->buf[w->len - 1] = (uint8_t)c;
	} else if (crc == BUNDLE_CRC32C) {
		static const uint8_t z[4];
		cbor_put_bytes(w, z, 4);
		uint32_t c = crc32c(0, w->buf + start, w->len - start);
		for (int i = 0; i < 4; i++)
			w->buf[w->len - 4 + i] = (uint8_t)(c >> (24 - 8 * i));
	}
}

/* [7, 0, 0, [2,[1,2]], [1,0], [1,0], [0,7], 1000] without CRC: a plain primary block. */
static const uint8_t plain_primary[] = {0x88, 0x07, 0x00, 0x00, 0x82, 0x02, 0x82,
					0x01, 0x02, 0x82, 0x01, 0x00, 0x82, 0x01,
					0x00, 0x82, 0x00, 0x07, 0x19, 0x03, 0xe8};

static void start_bundle(struct cbor_writer *w, uint8_t *buf, size_t cap)
{
	cbor_writer_init(w, buf, cap);
	cbor_put_raw(w, (const uint8_t[]){0x9f}, 1);
	cbor_put_raw(w, plain_primary, sizeof(plain_primary));
}

static void end_bundle(struct cbor_writer *w, const char *payload)
{
	put_block(w, 1, 1, 0, BUNDLE_CRC_NONE, payload, strlen(payload));
	cbor_put_raw(w, (const uint8_t[]){0xff}, 1);
	CHECK(!w->overflow);
}

/* A header that uses every feature the encoder has. */
static void full_header(struct bundle_header *h, const uint8_t *extra, size_t extra_len)
{
	bundle_header_init(h, 0x12345678, 1);
	h->seq = 0xdeadbeef;
	h->crc_type = BUNDLE_CRC16;
	h->age_ms = 123456;
	h->hop_count = 3;
	h->has_prev_node = true;
	h->prev_node.scheme = BUNDLE_SCHEME_DTN;
	strcpy(h->prev_node.dtn, "//relay-7/");
	h->priority = BUNDLE_PRIO_URGENT;
	memcpy(h->extra, extra, extra_len);
	h->extra_len = extra_len;
	h->payload_crc_type = BUNDLE_CRC32C;
}

/* ---- encoder ------------------------------------------------------------------------ */

static void test_header_init(void)
{
	struct bundle_header h;

	bundle_header_init(&h, 42, 1);
	CHECK_EQ(h.flags, BUNDLE_F_NO_FRAGMENT);
	CHECK_EQ(h.crc_type, BUNDLE_CRC32C);
	CHECK(h.dest.scheme == BUNDLE_SCHEME_IPN && h.dest.node == 42 && h.dest.service == 1);
	CHECK(h.source.scheme == BUNDLE_SCHEME_DTN && h.source.none);
	CHECK(h.report_to.scheme == BUNDLE_SCHEME_DTN && h.report_to.none);
	CHECK_EQ(h.created_ms, 0);
	CHECK(h.has_age && h.age_ms == 0);
	CHECK(h.has_hop_count && h.hop_limit == 16 && h.hop_count == 0);
	CHECK(!h.has_prev_node);
	CHECK_EQ(h.priority, BUNDLE_PRIO_NORMAL);
	CHECK_EQ(h.extra_len, 0);
	CHECK_EQ(h.payload_crc_type, BUNDLE_CRC_NONE);
	CHECK_EQ(h.lifetime_ms, BUNDLE_LIFETIME_DEFAULT_MS);
}

/* The annotated example of docs/bundle.md, byte for byte. */
static void test_encode_exact(void)
{
	static const char expect[] =
	    "9f"
	    "89 07 04 02 82 02 82 1a 00 bc 61 4e 01 82 01 00 82 01 00"
	    "82 00 1a 12 34 56 78 1a 9a 7e c8 00 44 00 00 00 00" /* CRC patched below */
	    "85 07 02 00 00 45 1a 00 36 ee 80"
	    "85 0a 03 00 00 43 82 10 00"
	    "85 01 01 00 00 45 68 65 6c 6c 6f"
	    "ff";
	uint8_t want[128], got[256];
	size_t n = unhex(expect, want, sizeof(want));
	struct bundle_header h;

	/* The primary block's CRC-32C, computed independently of the encoder. */
	uint32_t c = crc32c(0, want + 1, 36);
	for (int i = 0; i < 4; i++)
		want[33 + i] = (uint8_t)(c >> (24 - 8 * i));

	bundle_header_init(&h, 12345678, 1);
	h.seq = 0x12345678;
	h.age_ms = 3600000;
	h.payload_len = 5;
	int len = bundle_encode(&h, (const uint8_t *)"hello", got, sizeof(got));

	CHECK_EQ(len, n);
	CHECK_MEM(got, want, n);

	/*
	 * Its id, computed with Python's hashlib (docs/bundle.md):
	 * blake2b(canonical + b"hello", key=b"tern bundle id v1", digest_size=32).
	 */
	uint8_t id_want[32], id[32];
	unhex("6641d2b6f799287ba0a2058c8c735b337784e19000e8e142f96528844c0a976d", id_want, 32);
	struct outcome *o = parse(got, (size_t)len);
	CHECK_EQ(o->ret, 0);
	CHECK_MEM(o->id, id_want, 32);
	outcome_free(o);
	sender_id(&h, (const uint8_t *)"hello", id);
	CHECK_MEM(id, id_want, 32);
}

static void test_encode_errors(void)
{
	struct bundle_header h;
	uint8_t out[BUNDLE_HEAD_MAX];

	bundle_header_init(&h, 1, 1);
	CHECK_EQ(bundle_encode_head(&h, out, 10), -ENOSPC);
	CHECK(bundle_encode_head(&h, out, sizeof(out)) > 0);

	h.priority = 3;
	CHECK_EQ(bundle_encode_head(&h, out, sizeof(out)), -EINVAL);
	bundle_header_init(&h, 1, 1);
	h.hop_limit = 0;
	CHECK_EQ(bundle_encode_head(&h, out, sizeof(out)), -EINVAL);
	h.hop_limit = 256;
	CHECK_EQ(bundle_encode_head(&h, out, sizeof(out)), -EINVAL);
	bundle_header_init(&h, 1, 1);
	h.source.none = false;
	strcpy(h.source.dtn, "//bad\nname");
	CHECK_EQ(bundle_encode_head(&h, out, sizeof(out)), -EINVAL);
	h.source.dtn[0] = '\0';
	CHECK_EQ(bundle_encode_head(&h, out, sizeof(out)), -EINVAL);
	bundle_header_init(&h, 1, 1);
	h.dest.scheme = 0;
	CHECK_EQ(bundle_encode_head(&h, out, sizeof(out)), -EINVAL);
	bundle_header_init(&h, 1, 1);
	h.crc_type = 3;
	CHECK_EQ(bundle_encode_head(&h, out, sizeof(out)), -EINVAL);
	bundle_header_init(&h, 1, 1);
	h.flags |= BUNDLE_F_FRAGMENT;
	h.frag_offset = 10;
	h.adu_length = 20;
	h.payload_len = 11;
	CHECK_EQ(bundle_encode_head(&h, out, sizeof(out)), -EINVAL);
	h.payload_len = 10;
	CHECK(bundle_encode_head(&h, out, sizeof(out)) > 0);

	/* extra must hold whole, well-formed blocks of types we do not write ourselves. */
	bundle_header_init(&h, 1, 1);
	struct cbor_writer w;
	cbor_writer_init(&w, h.extra, sizeof(h.extra));
	put_block(&w, 200, 5, 0, BUNDLE_CRC16, "x", 1);
	h.extra_len = w.len;
	CHECK(bundle_encode_head(&h, out, sizeof(out)) > 0);
	h.extra[h.extra_len - 1] ^= 1; /* CRC now wrong */
	CHECK_EQ(bundle_encode_head(&h, out, sizeof(out)), -EINVAL);
	h.extra[h.extra_len - 1] ^= 1;
	h.extra_len--; /* cut short */
	CHECK_EQ(bundle_encode_head(&h, out, sizeof(out)), -EINVAL);
	cbor_writer_init(&w, h.extra, sizeof(h.extra));
	put_block(&w, BLOCK_TYPE_HOP_COUNT, 5, 0, BUNDLE_CRC_NONE, "x", 1);
	h.extra_len = w.len;
	CHECK_EQ(bundle_encode_head(&h, out, sizeof(out)), -EINVAL);
	cbor_writer_init(&w, h.extra, sizeof(h.extra));
	put_block(&w, 200, 1, 0, BUNDLE_CRC_NONE, "x", 1);
	h.extra_len = w.len;
	CHECK_EQ(bundle_encode_head(&h, out, sizeof(out)), -EINVAL);
	cbor_writer_init(&w, h.extra, sizeof(h.extra));
	put_block(&w, 200, 4, 0, BUNDLE_CRC_NONE, "x", 1);
	put_block(&w, 201, 4, 0, BUNDLE_CRC_NONE, "y", 1);
	h.extra_len = w.len;
	CHECK_EQ(bundle_encode_head(&h, out, sizeof(out)), -EINVAL);
}

/* The biggest header fits BUNDLE_HEAD_MAX. */
static void test_encode_max(void)
{
	struct bundle_header *h = malloc(sizeof(*h));
	uint8_t *out = malloc(BUNDLE_HEAD_MAX);
	struct bundle_eid *eids[] = {&h->dest, &h->source, &h->report_to, &h->prev_node};
	struct cbor_writer w;
	uint8_t blob[BUNDLE_EXTRA_MAX];

	bundle_header_init(h, 1, 1);
	for (size_t i = 0; i < 4; i++) {
		eids[i]->scheme = BUNDLE_SCHEME_DTN;
		eids[i]->none = false;
		memset(eids[i]->dtn, 'a', BUNDLE_DTN_URI_MAX);
		eids[i]->dtn[BUNDLE_DTN_URI_MAX] = '\0';
	}
	h->has_prev_node = true;
	h->flags = UINT64_MAX;
	h->created_ms = h->seq = h->lifetime_ms = h->age_ms = h->hop_count = UINT64_MAX;
	h->frag_offset = 0;
	h->adu_length = UINT64_MAX;
	h->hop_limit = 255;
	h->priority = BUNDLE_PRIO_BULK;
	h->payload_flags = UINT64_MAX;
	h->payload_crc_type = BUNDLE_CRC32C;
	h->payload_len = 1000;
	/* One unknown block that fills extra exactly. */
	cbor_writer_init(&w, h->extra, sizeof(h->extra));
	memset(blob, 7, sizeof(blob));
	put_block(&w, UINT64_MAX, 1000000,
		  UINT64_MAX &
		      ~(uint64_t)(BLOCK_F_DELETE_IF_UNPROCESSED | BLOCK_F_DISCARD_IF_UNPROCESSED),
		  BUNDLE_CRC32C, blob, BUNDLE_EXTRA_MAX - 1 - 9 - 5 - 9 - 1 - 3 - 5);
	CHECK(!w.overflow);
	CHECK_EQ(w.len, BUNDLE_EXTRA_MAX);
	h->extra_len = w.len;
	int n = bundle_encode_head(h, out, BUNDLE_HEAD_MAX);
	CHECK(n > 0 && n <= BUNDLE_HEAD_MAX);

	/* And it decodes to the same header. */
	struct outcome *o = parse_split(out, (size_t)n, 0, 0, UINT64_MAX);
	CHECK(o->got_header);
	if (!o->got_header)
		fprintf(stderr, "max header: %s\n", o->reason);
	CHECK(header_equal(&o->h, h));
	outcome_free(o);
	free(out);
	free(h);
}

static void test_block_numbers(void)
{
	struct bundle_header h;
	uint8_t out[512];
	struct cbor_writer w;

	/* Kept blocks use 2 and 4: ours must take 3, 5 and 6. */
	bundle_header_init(&h, 1, 1);
	h.priority = BUNDLE_PRIO_BULK;
	cbor_writer_init(&w, h.extra, sizeof(h.extra));
	put_block(&w, 200, 2, 0, BUNDLE_CRC_NONE, "a", 1);
	put_block(&w, 201, 4, 0, BUNDLE_CRC_NONE, "b", 1);
	h.extra_len = w.len;
	h.payload_len = 2;
	int n = bundle_encode(&h, (const uint8_t *)"hi", out, sizeof(out));
	CHECK(n > 0);

	/* Walk the blocks and collect (type, number). */
	struct cbor_reader r;
	uint64_t types[8], nums[8], v;
	size_t count = 0;
	const uint8_t *d;
	size_t dl;
	struct cbor_head hd;

	cbor_reader_init(&r, out + 1, (size_t)n - 2);
	CHECK_EQ(cbor_read_head(&r, &hd), 0); /* primary: skip its 9 items */
	for (int i = 0; i < 3; i++)
		CHECK_EQ(cbor_read_uint(&r, &v), 0);
	for (int i = 0; i < 3; i++) { /* three EIDs */
		CHECK_EQ(cbor_read_array(&r, &v), 0);
		CHECK_EQ(cbor_read_uint(&r, &v), 0);
		if (v == 2) {
			CHECK_EQ(cbor_read_array(&r, &v), 0);
			CHECK_EQ(cbor_read_uint(&r, &v), 0);
		}
		CHECK_EQ(cbor_read_uint(&r, &v), 0);
	}
	CHECK_EQ(cbor_read_array(&r, &v), 0);
	CHECK_EQ(cbor_read_uint(&r, &v), 0);
	CHECK_EQ(cbor_read_uint(&r, &v), 0);
	CHECK_EQ(cbor_read_uint(&r, &v), 0);
	CHECK_EQ(cbor_read_bytes(&r, &d, &dl), 0);
	while (!cbor_reader_done(&r) && count < 8) {
		CHECK_EQ(cbor_read_array(&r, &v), 0);
		CHECK_EQ(cbor_read_uint(&r, &types[count]), 0);
		CHECK_EQ(cbor_read_uint(&r, &nums[count]), 0);
		CHECK_EQ(cbor_read_uint(&r, &v), 0);
		CHECK_EQ(cbor_read_uint(&r, &v), 0);
		CHECK_EQ(cbor_read_bytes(&r, &d, &dl), 0);
		count++;
	}
	CHECK_EQ(count, 6);
	static const uint64_t want_t[] = {7, 10, 192, 200, 201, 1};
	static const uint64_t want_n[] = {3, 5, 6, 2, 4, 1};
	for (size_t i = 0; i < 6 && i < count; i++) {
		CHECK_EQ(types[i], want_t[i]);
		CHECK_EQ(nums[i], want_n[i]);
	}
}

static void test_eid_text(void)
{
	struct bundle_eid e;
	char buf[300];

	CHECK_EQ(bundle_eid_parse("ipn:977.1", &e), 0);
	CHECK(e.scheme == BUNDLE_SCHEME_IPN && e.node == 977 && e.service == 1);
	CHECK_EQ(bundle_eid_format(&e, buf, sizeof(buf)), 0);
	CHECK(strcmp(buf, "ipn:977.1") == 0);
	CHECK_EQ(bundle_eid_parse("ipn:18446744073709551615.0", &e), 0);
	CHECK(e.node == UINT64_MAX);
	CHECK_EQ(bundle_eid_parse("ipn:18446744073709551616.0", &e), -EINVAL);
	CHECK_EQ(bundle_eid_parse("ipn:1", &e), -EINVAL);
	CHECK_EQ(bundle_eid_parse("ipn:1.", &e), -EINVAL);
	CHECK_EQ(bundle_eid_parse("ipn:-1.2", &e), -EINVAL);
	CHECK_EQ(bundle_eid_parse("ipn:1.2.3", &e), -EINVAL);
	CHECK_EQ(bundle_eid_parse("dtn:none", &e), 0);
	CHECK(e.scheme == BUNDLE_SCHEME_DTN && e.none);
	CHECK_EQ(bundle_eid_format(&e, buf, sizeof(buf)), 0);
	CHECK(strcmp(buf, "dtn:none") == 0);
	CHECK_EQ(bundle_eid_parse("dtn://hub/inbox", &e), 0);
	CHECK(!e.none && strcmp(e.dtn, "//hub/inbox") == 0);
	CHECK_EQ(bundle_eid_format(&e, buf, 8), -ENOSPC);
	CHECK_EQ(bundle_eid_parse("dtn:", &e), -EINVAL);
	CHECK_EQ(bundle_eid_parse("dtn://a\tb", &e), -EINVAL);
	CHECK_EQ(bundle_eid_parse("mailto:x", &e), -EINVAL);
	memset(buf, 'a', sizeof(buf));
	memcpy(buf, "dtn:", 4);
	buf[4 + 256] = '\0';
	CHECK_EQ(bundle_eid_parse(buf, &e), -EINVAL);
	buf[4 + 255] = '\0';
	CHECK_EQ(bundle_eid_parse(buf, &e), 0);
}

/* ---- decoder ------------------------------------------------------------------------ */

static void test_round_trip(void)
{
	struct bundle_header h, plain;
	uint8_t out[1024], id[32];
	uint8_t extra[64];
	struct cbor_writer w;
	static const char payload[] = "round trip payload";

	cbor_writer_init(&w, extra, sizeof(extra));
	put_block(&w, 250, 9, BLOCK_F_REPLICATE, BUNDLE_CRC32C, "keep me", 7);
	full_header(&h, extra, w.len);
	h.payload_len = strlen(payload);
	int n = bundle_encode(&h, (const uint8_t *)payload, out, sizeof(out));
	CHECK(n > 0);
	struct outcome *o = parse(out, (size_t)n);
	CHECK_EQ(o->ret, 0);
	CHECK_EQ(o->header_calls, 1);
	CHECK(header_equal(&o->h, &h));
	CHECK_EQ(o->payload_len, strlen(payload));
	CHECK_MEM(o->payload, payload, strlen(payload));
	sender_id(&h, (const uint8_t *)payload, id);
	CHECK_MEM(o->id, id, 32);
	outcome_free(o);

	/* The plainest header: no extension blocks at all, no CRCs, empty payload. */
	bundle_header_init(&plain, 5, 2);
	plain.has_age = plain.has_hop_count = false;
	plain.created_ms = 757382400000ull;
	plain.crc_type = BUNDLE_CRC_NONE;
	n = bundle_encode(&plain, NULL, out, sizeof(out));
	CHECK(n > 0);
	o = parse(out, (size_t)n);
	CHECK_EQ(o->ret, 0);
	CHECK(header_equal(&o->h, &plain));
	CHECK_EQ(o->payload_len, 0);
	outcome_free(o);
}

/* Every way of cutting the input gives the same result as feeding it whole. */
static void check_all_splits(const uint8_t *buf, size_t len)
{
	struct outcome *whole = parse(buf, len);

	for (size_t step = 1; step <= len; step++) {
		struct outcome *o = parse_split(buf, len, step, 0, UINT64_MAX);

		if (!outcome_equal(o, whole)) {
			fprintf(stderr, "step %zu differs: %d \"%s\" vs %d \"%s\"\n", step, o->ret,
				o->reason, whole->ret, whole->reason);
			test_failures++;
		}
		outcome_free(o);
	}
	for (size_t cut = 1; cut < len; cut++) {
		struct outcome *o = parse_split(buf, len, len, cut, UINT64_MAX);

		if (!outcome_equal(o, whole)) {
			fprintf(stderr, "cut at %zu differs\n", cut);
			test_failures++;
		}
		outcome_free(o);
	}
	outcome_free(whole);
}

static void test_splits(void)
{
	struct bundle_header h;
	uint8_t out[1024], extra[64];
	struct cbor_writer w;
	static const char payload[] = "split me any way you like, the result stays the same";

	cbor_writer_init(&w, extra, sizeof(extra));
	put_block(&w, 250, 9, 0, BUNDLE_CRC16, "keep me", 7);
	full_header(&h, extra, w.len);
	h.payload_len = strlen(payload);
	int n = bundle_encode(&h, (const uint8_t *)payload, out, sizeof(out));
	CHECK(n > 0);
	check_all_splits(out, (size_t)n);

	/* Rejected inputs too: the same verdict and reason whatever the split. */
	out[n - 3] ^= 0x40; /* payload CRC */
	check_all_splits(out, (size_t)n);
	out[n - 3] ^= 0x40;
	out[n] = 0; /* a trailing byte */
	check_all_splits(out, (size_t)n + 1);

	size_t len;
	uint8_t *v = read_vector("rfc9173-a3.bundle", &len);
	check_all_splits(v, len);
	free(v);
}

/* Every proper prefix of a valid bundle is "truncated", never accepted. */
static void test_truncation(void)
{
	struct bundle_header h;
	uint8_t out[512], extra[32];
	struct cbor_writer w;

	cbor_writer_init(&w, extra, sizeof(extra));
	put_block(&w, 250, 9, 0, BUNDLE_CRC16, "k", 1);
	full_header(&h, extra, w.len);
	h.payload_len = 4;
	int n = bundle_encode(&h, (const uint8_t *)"data", out, sizeof(out));

	for (int len = 0; len < n; len++) {
		struct outcome *o = parse_split(out, (size_t)len, 1, 0, UINT64_MAX);

		CHECK_EQ(o->ret, -EBADMSG);
		CHECK(strstr(o->reason, "truncated") || strstr(o->reason, "empty"));
		outcome_free(o);
	}
}

static void test_reject_structure(void)
{
	uint8_t buf[512];
	struct cbor_writer w;

	CHECK_REJECT((const uint8_t *)"\x88", 1, -EBADMSG, "definite-length");
	CHECK_REJECT((const uint8_t *)"\x01", 1, -EBADMSG, "not a bundle");
	CHECK_REJECT((const uint8_t *)"\x9f\xff", 2, -EBADMSG, "no blocks");

	/* Version 6. */
	start_bundle(&w, buf, sizeof(buf));
	buf[2] = 0x06;
	end_bundle(&w, "x");
	CHECK_REJECT(buf, w.len, -EBADMSG, "version 6");

	/* Primary block with trailing junk after the break. */
	start_bundle(&w, buf, sizeof(buf));
	end_bundle(&w, "x");
	CHECK_REJECT(buf, w.len + 0, 0, "");
	buf[w.len] = 0x00;
	CHECK_REJECT(buf, w.len + 1, -E2BIG, "after the end");

	/* No payload block. */
	start_bundle(&w, buf, sizeof(buf));
	cbor_put_raw(&w, (const uint8_t[]){0xff}, 1);
	CHECK_REJECT(buf, w.len, -EBADMSG, "no payload block");

	/* Payload block not last; two payload blocks. */
	start_bundle(&w, buf, sizeof(buf));
	put_block(&w, 1, 1, 0, 0, "p", 1);
	put_block(&w, 200, 2, 0, 0, "q", 1);
	cbor_put_raw(&w, (const uint8_t[]){0xff}, 1);
	CHECK_REJECT(buf, w.len, -EBADMSG, "payload block is not the last block");
	start_bundle(&w, buf, sizeof(buf));
	put_block(&w, 1, 1, 0, 0, "p", 1);
	put_block(&w, 1, 1, 0, 0, "p", 1);
	cbor_put_raw(&w, (const uint8_t[]){0xff}, 1);
	CHECK_REJECT(buf, w.len, -EBADMSG, "two payload blocks");
	/* A cut-off block after the payload is still named for what it is. */
	start_bundle(&w, buf, sizeof(buf));
	put_block(&w, 1, 1, 0, 0, "p", 1);
	cbor_put_raw(&w, (const uint8_t[]){0x85, 0x07}, 2);
	CHECK_REJECT(buf, w.len, -EBADMSG, "payload block is not the last block");
	/* Something else after the payload. */
	start_bundle(&w, buf, sizeof(buf));
	put_block(&w, 1, 1, 0, 0, "p", 1);
	cbor_put_raw(&w, (const uint8_t[]){0x00}, 1);
	CHECK_REJECT(buf, w.len, -EBADMSG, "final break");

	/* Block numbers. */
	start_bundle(&w, buf, sizeof(buf));
	put_block(&w, 200, 0, 0, 0, "q", 1);
	end_bundle(&w, "x");
	CHECK_REJECT(buf, w.len, -EBADMSG, "block number 0");
	start_bundle(&w, buf, sizeof(buf));
	put_block(&w, 200, 5, 0, 0, "q", 1);
	put_block(&w, 201, 5, 0, 0, "r", 1);
	end_bundle(&w, "x");
	CHECK_REJECT(buf, w.len, -EBADMSG, "duplicate block number 5");
	start_bundle(&w, buf, sizeof(buf));
	put_block(&w, 200, 1, 0, 0, "q", 1);
	end_bundle(&w, "x");
	CHECK_REJECT(buf, w.len, -EBADMSG, "block number 1 on a block of type 200");
	start_bundle(&w, buf, sizeof(buf));
	put_block(&w, 1, 2, 0, 0, "p", 1);
	cbor_put_raw(&w, (const uint8_t[]){0xff}, 1);
	CHECK_REJECT(buf, w.len, -EBADMSG, "payload block has number 2");

	/* Block shapes. */
	start_bundle(&w, buf, sizeof(buf));
	cbor_put_raw(&w, (const uint8_t[]){0x84, 0x01, 0x01, 0x00, 0x00}, 5);
	CHECK_REJECT(buf, w.len, -EBADMSG, "4 items");
	start_bundle(&w, buf, sizeof(buf));
	cbor_put_raw(&w, (const uint8_t[]){0x9f, 0x01, 0x01, 0x00, 0x00, 0x41, 0x00, 0xff}, 8);
	CHECK_REJECT(buf, w.len, -EBADMSG, "indefinite-length block");
	start_bundle(&w, buf, sizeof(buf));
	cbor_put_raw(&w, (const uint8_t[]){0x85, 0x01, 0x01, 0x00, 0x00, 0x5f, 0x41, 0x00, 0xff},
		     9);
	CHECK_REJECT(buf, w.len, -EBADMSG, "not a definite-length byte string");
	start_bundle(&w, buf, sizeof(buf));
	cbor_put_raw(&w, (const uint8_t[]){0x85, 0x01, 0x01, 0x00, 0x00, 0x61, 0x41, 0xff}, 8);
	CHECK_REJECT(buf, w.len, -EBADMSG, "not a definite-length byte string");
	start_bundle(&w, buf, sizeof(buf));
	cbor_put_raw(&w, (const uint8_t[]){0x85, 0x01, 0x20, 0x00, 0x00, 0x41, 0x00, 0xff}, 8);
	CHECK_REJECT(buf, w.len, -EBADMSG, "block number is not an unsigned integer");
	start_bundle(&w, buf, sizeof(buf));
	cbor_put_raw(&w, (const uint8_t[]){0x85, 0x01, 0x01, 0x00, 0x03, 0x41, 0x00, 0xff}, 8);
	CHECK_REJECT(buf, w.len, -EBADMSG, "unknown CRC type 3");
	start_bundle(&w, buf, sizeof(buf));
	cbor_put_raw(&w, (const uint8_t[]){0x85, 0x01, 0x01, 0x00, 0x02, 0x41, 0x00, 0xff}, 8);
	CHECK_REJECT(buf, w.len, -EBADMSG, "do not match CRC type");
	start_bundle(&w, buf, sizeof(buf));
	cbor_put_raw(
	    &w, (const uint8_t[]){0x86, 0x01, 0x01, 0x00, 0x02, 0x41, 0x00, 0x42, 0, 0, 0xff}, 11);
	CHECK_REJECT(buf, w.len, -EBADMSG, "CRC is not a 4-byte string");
	start_bundle(&w, buf, sizeof(buf));
	cbor_put_raw(&w, (const uint8_t[]){0x85, 0x01, 0x01, 0x00, 0x00, 0x5c}, 6);
	CHECK_REJECT(buf, w.len, -EBADMSG, "malformed CBOR");
}

/* Builds 0x9f + a primary block from raw item bytes + a payload block + 0xff. */
static size_t with_primary_payload(uint8_t *buf, size_t cap, const char *primary_hex,
				   const char *payload)
{
	struct cbor_writer w;
	uint8_t prim[1400];
	size_t n = unhex(primary_hex, prim, sizeof(prim));

	cbor_writer_init(&w, buf, cap);
	cbor_put_raw(&w, (const uint8_t[]){0x9f}, 1);
	cbor_put_raw(&w, prim, n);
	end_bundle(&w, payload);
	return w.len;
}

static size_t with_primary(uint8_t *buf, size_t cap, const char *primary_hex)
{
	return with_primary_payload(buf, cap, primary_hex, "x");
}

static void test_reject_primary(void)
{
	uint8_t buf[1600];
	size_t n;

	/* Item counts against flags and CRC type. */
	n = with_primary(buf, sizeof(buf), "89 07 00 00 820100 820100 820100 820000 01 00");
	CHECK_REJECT(buf, n, -EBADMSG, "call for 8");
	n = with_primary(buf, sizeof(buf), "89 07 01 00 820100 820100 820100 820000 01 00");
	CHECK_REJECT(buf, n, -EBADMSG, "call for 10"); /* fragment flag without its fields */
	n = with_primary(buf, sizeof(buf), "87 07 00 00 820100 820100 820100 820000");
	CHECK_REJECT(buf, n, -EBADMSG, "7 items");
	n = with_primary(buf, sizeof(buf), "88 07 00 03 820100 820100 820100 820000 01");
	CHECK_REJECT(buf, n, -EBADMSG, "unknown CRC type");
	n = with_primary(buf, sizeof(buf), "01");
	CHECK_REJECT(buf, n, -EBADMSG, "not an array");
	n = with_primary(buf, sizeof(buf), "88 27 00 00 820100 820100 820100 820000 01");
	CHECK_REJECT(buf, n, -EBADMSG, "version is not an unsigned integer");

	/* Fragment fields. */
	n = with_primary(buf, sizeof(buf), "8a 07 01 00 820100 820100 820100 820000 01 05 05");
	CHECK_REJECT(buf, n, -EBADMSG, "not below total ADU length");
	n = with_primary(buf, sizeof(buf), "8a 07 01 00 820100 820100 820100 820000 01 04 05");
	CHECK_REJECT(buf, n, 0, ""); /* 1 byte at offset 4 of 5 fits */
	n = with_primary_payload(buf, sizeof(buf),
				 "8a 07 01 00 820100 820100 820100 820000 01 04 05", "xy");
	CHECK_REJECT(buf, n, -EBADMSG, "overruns total ADU length");

	/* EIDs. */
	n = with_primary(buf, sizeof(buf), "88 07 00 00 8202820120 820100 820100 820000 01");
	CHECK_REJECT(buf, n, -EBADMSG, "destination EID malformed: ipn node or service");
	n = with_primary(buf, sizeof(buf), "88 07 00 00 820100 82028301 02 03 820100 820000 01");
	CHECK_REJECT(buf, n, 0, "");
	n = with_primary(buf, sizeof(buf),
			 "88 07 00 00 820100 8202831b0000000100000000 02 03 820100 820000 01");
	CHECK_REJECT(buf, n, -EBADMSG, "source EID malformed: ipn allocator or node");
	n = with_primary(buf, sizeof(buf), "88 07 00 00 820100 820100 8203 00 820000 01");
	CHECK_REJECT(buf, n, -EBADMSG, "report-to EID malformed: unknown scheme");
	n = with_primary(buf, sizeof(buf), "88 07 00 00 820101 820100 820100 820000 01");
	CHECK_REJECT(buf, n, -EBADMSG, "integer other than 0");
	n = with_primary(buf, sizeof(buf), "88 07 00 00 82014161 820100 820100 820000 01");
	CHECK_REJECT(buf, n, -EBADMSG, "not a text string");
	n = with_primary(buf, sizeof(buf), "88 07 00 00 820160 820100 820100 820000 01");
	CHECK_REJECT(buf, n, -EBADMSG, "empty dtn SSP");
	n = with_primary(buf, sizeof(buf), "88 07 00 00 8201 63 612062 820100 820100 820000 01");
	CHECK_REJECT(buf, n, 0, ""); /* "a b": spaces are fine */
	n = with_primary(buf, sizeof(buf), "88 07 00 00 8201 63 610a62 820100 820100 820000 01");
	CHECK_REJECT(buf, n, -EBADMSG, "control character");
	n = with_primary(buf, sizeof(buf), "88 07 00 00 8201 63 610062 820100 820100 820000 01");
	CHECK_REJECT(buf, n, -EBADMSG, "control character or NUL");
	n = with_primary(buf, sizeof(buf), "88 07 00 00 01 820100 820100 820000 01");
	CHECK_REJECT(buf, n, -EBADMSG, "not a 2-item array");
	n = with_primary(buf, sizeof(buf), "88 07 00 00 8201646e6f6e65 820100 820100 820000 01");
	CHECK_REJECT(buf, n, 0, ""); /* text "none" is dtn:none */

	/* A 256-byte dtn URI is too long; 255 is fine. */
	char hex[1400];
	for (int len = 255; len <= 256; len++) {
		int off = sprintf(hex, "88 07 00 00 8201 79 %04x ", len);
		for (int i = 0; i < len; i++)
			off += sprintf(hex + off, "61");
		sprintf(hex + off, " 820100 820100 820000 01");
		n = with_primary(buf, sizeof(buf), hex);
		if (len == 255)
			CHECK_REJECT(buf, n, 0, "");
		else
			CHECK_REJECT(buf, n, -EBADMSG, "longer than 255");
	}

	/* Timestamp, lifetime; integers beyond 64 bits arrive as bignum tags. */
	n = with_primary(buf, sizeof(buf), "88 07 00 00 820100 820100 820100 8100 01");
	CHECK_REJECT(buf, n, -EBADMSG, "creation timestamp");
	n = with_primary(buf, sizeof(buf), "88 07 00 00 820100 820100 820100 820000 20");
	CHECK_REJECT(buf, n, -EBADMSG, "lifetime is not an unsigned integer");
	n = with_primary(buf, sizeof(buf),
			 "88 07 00 00 820100 820100 820100 820000 c2 49 010000000000000000");
	CHECK_REJECT(buf, n, -EBADMSG, "bignums");
	n = with_primary(buf, sizeof(buf), "88 07 00 00 820100 820100 820100 820000 00");
	CHECK_REJECT(buf, n, 0, ""); /* lifetime 0: accepted, the node decides */
	n = with_primary(buf, sizeof(buf), "88 07 00 00 820100 820100 820100 820000 f5");
	CHECK_REJECT(buf, n, -EBADMSG, "lifetime");

	/* Indefinite-length items, depth, size. */
	n = with_primary(buf, sizeof(buf), "88 07 00 00 9f0100ff 820100 820100 820000 01");
	CHECK_REJECT(buf, n, -EBADMSG, "indefinite-length item inside the primary block");
	n = with_primary(buf, sizeof(buf),
			 "88 07 00 00 8202 82 8181818100 01 820100 820100 820000 01");
	CHECK_REJECT(buf, n, -EBADMSG, "nested too deep");
	n = with_primary(buf, sizeof(buf), "88 07 00 00 820100 820100 820100 820000 01 00");
	CHECK_REJECT(buf, n, -EBADMSG, "block is not an array"); /* a 9th item, after the block */
	char big[2200];
	int off = sprintf(big, "88 07 00 00 8201 79 0400 ");
	for (int i = 0; i < 1024; i++)
		off += sprintf(big + off, "61");
	sprintf(big + off, " 820100 820100 820000 01");
	uint8_t *large = malloc(2000);
	n = with_primary(large, 2000, big);
	CHECK_REJECT(large, n, -EBADMSG, "primary block longer than 1024");
	free(large);

	/* Non-shortest forms are accepted. */
	n = with_primary(
	    buf, sizeof(buf),
	    "98 08 1807 1900 00 00 820100 820100 820100 82 1b0000000000000000 00 1a00000001");
	CHECK_REJECT(buf, n, 0, "");
}

static void test_reject_crc(void)
{
	struct bundle_header h;
	uint8_t out[512], extra[32];
	struct cbor_writer w;
	int n;

	bundle_header_init(&h, 1, 1);
	h.payload_len = 3;
	h.payload_crc_type = BUNDLE_CRC16;
	n = bundle_encode(&h, (const uint8_t *)"abc", out, sizeof(out));
	CHECK_REJECT(out, (size_t)n, 0, "");
	/* The primary block's CRC-32C value ends 1 + 4 bytes before the first block. */
	out[3] ^= 0x01; /* flags; the CRC is checked before they are believed */
	CHECK_REJECT(out, (size_t)n, -EBADMSG, "primary block CRC mismatch");
	out[3] ^= 0x01;
	out[n - 2] ^= 0x80;
	CHECK_REJECT(out, (size_t)n, -EBADMSG, "payload block CRC mismatch");
	out[n - 2] ^= 0x80;

	/* Extension blocks: a CRC on an unknown block and on a known one. */
	start_bundle(&w, out, sizeof(out));
	put_block(&w, 200, 2, 0, BUNDLE_CRC32C, "abcdef", 6);
	end_bundle(&w, "x");
	CHECK_REJECT(out, w.len, 0, "");
	out[sizeof(plain_primary) + 1 + 8] ^= 0x01;
	CHECK_REJECT(out, w.len, -EBADMSG, "CRC mismatch in block 2 (type 200)");

	start_bundle(&w, out, sizeof(out));
	struct cbor_writer d;
	cbor_writer_init(&d, extra, sizeof(extra));
	cbor_put_array(&d, 2);
	cbor_put_uint(&d, 20);
	cbor_put_uint(&d, 1);
	put_block(&w, BLOCK_TYPE_HOP_COUNT, 3, 0, BUNDLE_CRC16, extra, d.len);
	end_bundle(&w, "x");
	struct outcome *o = parse(out, w.len);
	CHECK_EQ(o->ret, 0);
	CHECK(o->h.has_hop_count && o->h.hop_limit == 20 && o->h.hop_count == 1);
	outcome_free(o);
	out[w.len - 10] ^= 0x01; /* the hop count block's CRC */
	CHECK_REJECT(out, w.len, -EBADMSG, "hop count block CRC mismatch");

	/* A primary block with CRC-16 and a bad value. */
	bundle_header_init(&h, 1, 1);
	h.crc_type = BUNDLE_CRC16;
	n = bundle_encode(&h, NULL, out, sizeof(out));
	CHECK_REJECT(out, (size_t)n, 0, "");
	out[3] ^= 0x10; /* an unknown flag */
	CHECK_REJECT(out, (size_t)n, -EBADMSG, "primary block CRC mismatch");
}

static void test_known_blocks(void)
{
	uint8_t buf[512], data[300];
	struct cbor_writer w, d;
	struct outcome *o;

	/* Two Bundle Age blocks. */
	start_bundle(&w, buf, sizeof(buf));
	put_block(&w, BLOCK_TYPE_BUNDLE_AGE, 2, 0, 0, "\x05", 1);
	put_block(&w, BLOCK_TYPE_BUNDLE_AGE, 3, 0, 0, "\x06", 1);
	end_bundle(&w, "x");
	CHECK_REJECT(buf, w.len, -EBADMSG, "two bundle age blocks");

	/* Malformed contents. */
	start_bundle(&w, buf, sizeof(buf));
	put_block(&w, BLOCK_TYPE_BUNDLE_AGE, 2, 0, 0, "\x20", 1);
	end_bundle(&w, "x");
	CHECK_REJECT(buf, w.len, -EBADMSG, "bundle age is not an unsigned integer");
	start_bundle(&w, buf, sizeof(buf));
	put_block(&w, BLOCK_TYPE_BUNDLE_AGE, 2, 0, 0, "\x05\x05", 2);
	end_bundle(&w, "x");
	CHECK_REJECT(buf, w.len, -EBADMSG, "bundle age block has bytes after its value");
	start_bundle(&w, buf, sizeof(buf));
	put_block(&w, BLOCK_TYPE_HOP_COUNT, 2, 0, 0, "\x82\x00\x00", 3);
	end_bundle(&w, "x");
	CHECK_REJECT(buf, w.len, -EBADMSG, "hop limit 0 outside 1..255");
	start_bundle(&w, buf, sizeof(buf));
	put_block(&w, BLOCK_TYPE_HOP_COUNT, 2, 0, 0, "\x81\x01", 2);
	end_bundle(&w, "x");
	CHECK_REJECT(buf, w.len, -EBADMSG, "not [limit, count]");
	start_bundle(&w, buf, sizeof(buf));
	put_block(&w, BLOCK_TYPE_TERN_PRIORITY, 2, 0, 0, "\x03", 1);
	end_bundle(&w, "x");
	CHECK_REJECT(buf, w.len, -EBADMSG, "priority block");
	start_bundle(&w, buf, sizeof(buf));
	put_block(&w, BLOCK_TYPE_PREVIOUS_NODE, 2, 0, 0, "\x82\x05\x00", 3);
	end_bundle(&w, "x");
	CHECK_REJECT(buf, w.len, -EBADMSG, "previous node EID malformed: unknown scheme");
	memset(data, 0, sizeof(data));
	start_bundle(&w, buf, sizeof(buf));
	put_block(&w, BLOCK_TYPE_PREVIOUS_NODE, 2, 0, 0, data, 301 - 1);
	end_bundle(&w, "x");
	CHECK_REJECT(buf, w.len, -EBADMSG, "previous node EID malformed");

	/* Hop count over the limit: reported, not rejected (the node decides). */
	start_bundle(&w, buf, sizeof(buf));
	put_block(&w, BLOCK_TYPE_HOP_COUNT, 2, 0, 0, "\x82\x02\x03", 3);
	cbor_writer_init(&d, data, sizeof(data));
	cbor_put_array(&d, 2);
	cbor_put_uint(&d, 2);
	cbor_put_array(&d, 2);
	cbor_put_uint(&d, 9);
	cbor_put_uint(&d, 0);
	put_block(&w, BLOCK_TYPE_PREVIOUS_NODE, 3, 0, BUNDLE_CRC16, data, d.len);
	put_block(&w, BLOCK_TYPE_TERN_PRIORITY, 4, 0, 0, "\x00", 1);
	put_block(&w, BLOCK_TYPE_BUNDLE_AGE, 5, 0, 0, "\x1a\x00\x01\x00\x00", 5);
	end_bundle(&w, "x");
	o = parse(buf, w.len);
	CHECK_EQ(o->ret, 0);
	CHECK(bundle_hop_exceeded(&o->h));
	CHECK(o->h.has_prev_node && o->h.prev_node.scheme == BUNDLE_SCHEME_IPN &&
	      o->h.prev_node.node == 9);
	CHECK_EQ(o->h.priority, BUNDLE_PRIO_BULK);
	CHECK(o->h.has_age && o->h.age_ms == 65536);
	CHECK_EQ(o->h.extra_len, 0);
	outcome_free(o);
}

static void test_unknown_blocks(void)
{
	uint8_t buf[512];
	struct cbor_writer w;
	struct outcome *o;
	size_t kept_start, kept_len;

	/* No flags: kept byte for byte. Replicate and report flags: kept too. */
	start_bundle(&w, buf, sizeof(buf));
	kept_start = w.len;
	put_block(&w, 200, 2, 0, BUNDLE_CRC16, "one", 3);
	put_block(&w, 201, 3, BLOCK_F_REPLICATE | BLOCK_F_REPORT_IF_UNPROCESSED, 0, "two", 3);
	kept_len = w.len - kept_start;
	/* Discard-if-unprocessed: dropped. */
	put_block(&w, 202, 4, BLOCK_F_DISCARD_IF_UNPROCESSED, BUNDLE_CRC32C, "three", 5);
	end_bundle(&w, "x");
	o = parse(buf, w.len);
	CHECK_EQ(o->ret, 0);
	CHECK_EQ(o->h.extra_len, kept_len);
	CHECK_MEM(o->h.extra, buf + kept_start, kept_len);

	/* Re-encoded: the kept blocks come back verbatim, the discarded one is gone. */
	uint8_t out[512];
	o->h.payload_len = 1;
	int n = bundle_encode(&o->h, (const uint8_t *)"x", out, sizeof(out));
	CHECK(n > 0);
	CHECK(memmem(out, (size_t)n, buf + kept_start, kept_len) != NULL);
	CHECK(memmem(out, (size_t)n, "three", 5) == NULL);
	struct outcome *o2 = parse(out, (size_t)n);
	CHECK_EQ(o2->ret, 0);
	CHECK_MEM(o2->id, o->id, 32);
	outcome_free(o2);
	outcome_free(o);

	/* Delete-if-unprocessed: the bundle is refused. */
	start_bundle(&w, buf, sizeof(buf));
	put_block(&w, 203, 2, BLOCK_F_DELETE_IF_UNPROCESSED, 0, "four", 4);
	end_bundle(&w, "x");
	CHECK_REJECT(buf, w.len, -ENOTSUP, "unknown block type 203 (block 2) asks for deletion");
	/* Delete wins over discard. */
	start_bundle(&w, buf, sizeof(buf));
	put_block(&w, 203, 2, BLOCK_F_DELETE_IF_UNPROCESSED | BLOCK_F_DISCARD_IF_UNPROCESSED, 0,
		  "four", 4);
	end_bundle(&w, "x");
	CHECK_REJECT(buf, w.len, -ENOTSUP, "asks for deletion");
}

static void test_limits(void)
{
	uint8_t *buf = malloc(16384), *blob = calloc(1, 5000);
	struct cbor_writer w;

	/* Kept blocks beyond BUNDLE_EXTRA_MAX bytes. */
	start_bundle(&w, buf, 16384);
	put_block(&w, 200, 2, 0, 0, blob, 3000);
	put_block(&w, 201, 3, 0, 0, blob, 1100);
	end_bundle(&w, "x");
	CHECK_REJECT(buf, w.len, -EFBIG, "over 4096 bytes");
	/* The same bytes, discarded, are fine: they are skipped, not stored. */
	start_bundle(&w, buf, 16384);
	put_block(&w, 200, 2, BLOCK_F_DISCARD_IF_UNPROCESSED, 0, blob, 5000);
	end_bundle(&w, "x");
	CHECK_REJECT(buf, w.len, 0, "");

	/* Too many blocks. */
	start_bundle(&w, buf, 16384);
	for (int i = 0; i < BUNDLE_BLOCKS_MAX; i++)
		put_block(&w, 200, 2 + (uint64_t)i, BLOCK_F_DISCARD_IF_UNPROCESSED, 0, "", 0);
	end_bundle(&w, "x");
	CHECK_REJECT(buf, w.len, -EFBIG, "more than 64 blocks");
	start_bundle(&w, buf, 16384);
	for (int i = 0; i < BUNDLE_EXTRA_BLOCKS_MAX + 1; i++)
		put_block(&w, 200, 2 + (uint64_t)i, 0, 0, "", 0);
	end_bundle(&w, "x");
	CHECK_REJECT(buf, w.len, -EFBIG, "unknown extension blocks");

	/* A known block claiming a huge size; an unknown one claiming 2^64 - 1 bytes. */
	start_bundle(&w, buf, 16384);
	cbor_put_raw(&w,
		     (const uint8_t[]){0x85, 0x07, 0x02, 0x00, 0x00, 0x5b, 0xff, 0xff, 0xff, 0xff,
				       0xff, 0xff, 0xff, 0xff},
		     14);
	CHECK_REJECT(buf, w.len, -EBADMSG, "bundle age block of 18446744073709551615 bytes");
	start_bundle(&w, buf, 16384);
	cbor_put_raw(&w,
		     (const uint8_t[]){0x85, 0x18, 0xc8, 0x02, 0x00, 0x00, 0x5b, 0xff, 0xff, 0xff,
				       0xff, 0xff, 0xff, 0xff, 0xff},
		     15);
	CHECK_REJECT(buf, w.len, -EFBIG, "over 4096 bytes");

	/* max_payload. */
	start_bundle(&w, buf, 16384);
	end_bundle(&w, "12345");
	struct outcome *o = parse_split(buf, w.len, 0, 0, 4);
	CHECK_EQ(o->ret, -EFBIG);
	CHECK(!o->got_header);
	outcome_free(o);
	o = parse_split(buf, w.len, 0, 0, 5);
	CHECK_EQ(o->ret, 0);
	outcome_free(o);

	/* A hostile 4 GiB payload length: accepted up to the header, nothing allocated. */
	start_bundle(&w, buf, 16384);
	cbor_put_raw(
	    &w,
	    (const uint8_t[]){0x85, 0x01, 0x01, 0x00, 0x00, 0x5b, 0, 0, 0, 1, 0, 0, 0, 0, 'a', 'b'},
	    16);
	o = parse(buf, w.len);
	CHECK_EQ(o->ret, -EBADMSG);
	CHECK(o->got_header && o->h.payload_len == 4294967296ull);
	CHECK_EQ(o->payload_len, 2);
	CHECK(strstr(o->reason, "truncated in the payload: 4294967294 of 4294967296"));
	outcome_free(o);
	free(blob);
	free(buf);
}

/* The callbacks' errors stop the parse and stick. */
static int refuse(void *ctx, const struct bundle_header *h)
{
	(void)ctx;
	(void)h;
	return -EACCES;
}

static void test_callback_errors(void)
{
	static const struct bundle_parser_cb cb = {.on_header = refuse};
	struct bundle_parser *p;
	struct bundle_header h;
	uint8_t out[256];

	bundle_header_init(&h, 1, 1);
	h.payload_len = 2;
	int n = bundle_encode(&h, (const uint8_t *)"hi", out, sizeof(out));
	CHECK_EQ(bundle_parser_new(NULL, &cb, NULL, &p), 0);
	CHECK_EQ(bundle_parser_feed(p, out, (size_t)n), -EACCES);
	CHECK_EQ(bundle_parser_feed(p, out, 1), -EACCES);
	CHECK_EQ(bundle_parser_finish(p), -EACCES);
	bundle_parser_free(p);
	bundle_parser_free(NULL);
	bundle_id_free(NULL);

	/* No callbacks at all is fine. */
	CHECK_EQ(bundle_parser_new(NULL, NULL, NULL, &p), 0);
	CHECK_EQ(bundle_parser_feed(p, out, (size_t)n), 0);
	CHECK_EQ(bundle_parser_finish(p), 0);
	CHECK(bundle_parser_header(p)->payload_len == 2);
	bundle_parser_free(p);
}

/* ---- the bundle id ------------------------------------------------------------------ */

static void encode_id(const struct bundle_header *h, const char *payload, uint8_t id[32])
{
	uint8_t out[2048];
	int n = bundle_encode(h, (const uint8_t *)payload, out, sizeof(out));
	struct outcome *o;

	CHECK(n > 0);
	o = parse(out, (size_t)n);
	CHECK_EQ(o->ret, 0);
	memcpy(id, o->id, 32);
	outcome_free(o);
}

static void test_id(void)
{
	static const char payload[] = "the same message";
	struct bundle_header h, v;
	uint8_t ref[32], id[32], extra[32];
	struct cbor_writer w;

	bundle_header_init(&h, 77, 1);
	h.seq = 99;
	h.payload_len = strlen(payload);
	sender_id(&h, (const uint8_t *)payload, ref);
	encode_id(&h, payload, id);
	CHECK_MEM(id, ref, 32);

	/* Whatever a relay does to CRCs and extension blocks, the id stays. */
	for (int crc = 0; crc <= 2; crc++) {
		for (int pcrc = 0; pcrc <= 2; pcrc++) {
			v = h;
			v.crc_type = (enum bundle_crc)crc;
			v.payload_crc_type = (enum bundle_crc)pcrc;
			v.has_age = crc & 1;
			v.age_ms = 5000;
			v.has_hop_count = pcrc != 1;
			v.hop_count = 7;
			v.priority = (uint8_t)pcrc;
			v.has_prev_node = crc == 2;
			v.prev_node.scheme = BUNDLE_SCHEME_IPN;
			v.prev_node.node = 3;
			v.payload_flags = (uint64_t)crc;
			cbor_writer_init(&w, v.extra, sizeof(v.extra));
			if (pcrc == 2)
				put_block(&w, 250, 20, 0, BUNDLE_CRC16, "bpsec?", 6);
			v.extra_len = w.len;
			encode_id(&v, payload, id);
			CHECK_MEM(id, ref, 32);
		}
	}

	/* Each immutable field and each payload byte changes it. */
	static const char other[] = "the same messagf";
	encode_id(&h, other, id);
	CHECK(memcmp(id, ref, 32) != 0);
	v = h;
	v.seq = 100;
	encode_id(&v, payload, id);
	CHECK(memcmp(id, ref, 32) != 0);
	v = h;
	v.dest.service = 2;
	encode_id(&v, payload, id);
	CHECK(memcmp(id, ref, 32) != 0);
	v = h;
	v.lifetime_ms++;
	encode_id(&v, payload, id);
	CHECK(memcmp(id, ref, 32) != 0);
	v = h;
	v.flags |= BUNDLE_F_ADMIN;
	encode_id(&v, payload, id);
	CHECK(memcmp(id, ref, 32) != 0);
	v = h;
	v.source.none = false;
	strcpy(v.source.dtn, "//x/");
	encode_id(&v, payload, id);
	CHECK(memcmp(id, ref, 32) != 0);

	/* Non-shortest integers on the wire do not change it either. */
	uint8_t buf[256];
	size_t n;
	n = with_primary(buf, sizeof(buf), "88 07 00 00 820100 820100 820100 820000 01");
	struct outcome *a = parse(buf, n);
	n = with_primary(buf, sizeof(buf),
			 "98 08 1807 1b0000000000000000 00 820100 820100 820100 "
			 "82 1900 00 1800 1a00000001");
	struct outcome *b = parse(buf, n);
	CHECK_EQ(a->ret, 0);
	CHECK_EQ(b->ret, 0);
	CHECK_MEM(a->id, b->id, 32);
	outcome_free(a);
	outcome_free(b);
	(void)extra;
}

/* A 1 GiB payload streamed through the decoder from a repeated buffer, in bounded memory. */
static uint64_t counted;

static int count_payload(void *ctx, const uint8_t *buf, size_t len)
{
	(void)ctx;
	(void)buf;
	counted += len;
	return 0;
}

static long max_rss_kib(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

static void test_big_payload(void)
{
	static const struct bundle_parser_cb cb = {.on_payload = count_payload};
	const uint64_t size = 1ull << 30;
	const size_t chunk = 1 << 16;
	struct bundle_header h;
	struct bundle_tail t;
	struct bundle_parser *p;
	uint8_t head[BUNDLE_HEAD_MAX], tail[BUNDLE_TAIL_MAX];
	uint8_t *block = malloc(chunk);
	long rss_before;

	for (size_t i = 0; i < chunk; i++)
		block[i] = (uint8_t)(i * 31);
	bundle_header_init(&h, 1, 1);
	h.payload_len = size;
	h.payload_crc_type = BUNDLE_CRC32C;
	int n = bundle_encode_head(&h, head, sizeof(head));
	CHECK(n > 0);
	bundle_tail_init(&t, &h);
	CHECK_EQ(bundle_parser_new(NULL, &cb, NULL, &p), 0);
	rss_before = max_rss_kib();
	CHECK_EQ(bundle_parser_feed(p, head, (size_t)n), 0);
	struct bundle_id_state *s = bundle_id_new(&h);
	for (uint64_t off = 0; off < size; off += chunk) {
		/* Odd piece sizes so pieces straddle the chunk edges. */
		CHECK_EQ(bundle_parser_feed(p, block, 1000), 0);
		CHECK_EQ(bundle_parser_feed(p, block + 1000, chunk - 1000), 0);
		bundle_tail_update(&t, block, chunk);
		bundle_id_update(s, block, chunk);
	}
	int tl = bundle_encode_tail(&t, tail, sizeof(tail));
	CHECK_EQ(tl, 6);
	CHECK_EQ(bundle_parser_feed(p, tail, (size_t)tl), 0);
	CHECK_EQ(bundle_parser_finish(p), 0);
	CHECK(counted == size);
	uint8_t id1[32], id2[32];
	bundle_parser_id(p, id1);
	bundle_id_final(s, id2);
	CHECK_MEM(id1, id2, 32);
	bundle_parser_free(p);
	/* Nothing in the decoder grows with the payload. */
	CHECK(max_rss_kib() - rss_before < 8 * 1024);
	free(block);
}

/* ---- samples written by others (tests/vectors/bundles/README.md) -------------------------- */

static struct outcome *parse_vector(const char *name, uint8_t **bytes, size_t *len)
{
	uint8_t *buf = read_vector(name, len);
	struct outcome *o = parse(buf, *len);

	if (bytes)
		*bytes = buf;
	else
		free(buf);
	return o;
}

static void check_ipn(const struct bundle_eid *e, uint64_t node, uint64_t service)
{
	CHECK(e->scheme == BUNDLE_SCHEME_IPN);
	CHECK_EQ(e->node, node);
	CHECK_EQ(e->service, service);
}

/* Re-encodes a parsed bundle and checks the id holds (and, if asked, the bytes). */
static void check_reencode(const struct outcome *o, const uint8_t *orig, size_t len, bool exact)
{
	uint8_t out[1024];
	int n = bundle_encode(&o->h, o->payload, out, sizeof(out));

	CHECK(n > 0);
	if (exact) {
		CHECK_EQ(n, len);
		CHECK(n > 0 && memcmp(out, orig, (size_t)n) == 0);
	}
	struct outcome *o2 = parse(out, (size_t)n);
	CHECK_EQ(o2->ret, 0);
	CHECK_MEM(o2->id, o->id, 32);
	CHECK(header_equal(&o2->h, &o->h));
	outcome_free(o2);
}

static void test_rfc9173(void)
{
	static const char ready[] = "Ready to generate a 32-byte payload";
	static const char *const names[] = {"rfc9173-a1.bundle", "rfc9173-a2.bundle",
					    "rfc9173-a3.bundle", "rfc9173-a4.bundle"};
	/* Security blocks: type, number, flags; A.3 also has a Bundle Age block (300 ms). */
	static const struct {
		int n;
		uint64_t type[2], num[2], flags[2];
	} sec[] = {
	    {1, {11}, {2}, {0}},
	    {1, {12}, {2}, {1}},
	    {2, {11, 12}, {3, 4}, {0, 1}},
	    {2, {11, 12}, {3, 2}, {0, 1}},
	};

	for (size_t i = 0; i < 4; i++) {
		uint8_t *bytes;
		size_t len;
		struct outcome *o = parse_vector(names[i], &bytes, &len);

		CHECK_EQ(o->ret, 0);
		if (o->ret) {
			fprintf(stderr, "%s: %s\n", names[i], o->reason);
			outcome_free(o);
			free(bytes);
			continue;
		}
		/* ipn:2.1 -> ipn:1.2, report-to ipn:2.1, [0, 40], 1,000,000 ms, no CRCs. */
		check_ipn(&o->h.dest, 1, 2);
		check_ipn(&o->h.source, 2, 1);
		check_ipn(&o->h.report_to, 2, 1);
		CHECK_EQ(o->h.flags, 0);
		CHECK_EQ(o->h.crc_type, BUNDLE_CRC_NONE);
		CHECK_EQ(o->h.created_ms, 0);
		CHECK_EQ(o->h.seq, 40);
		CHECK_EQ(o->h.lifetime_ms, 1000000);
		CHECK(!o->h.has_hop_count && !o->h.has_prev_node);
		CHECK_EQ(o->h.has_age, i == 2);
		if (i == 2)
			CHECK_EQ(o->h.age_ms, 300);
		CHECK_EQ(o->h.payload_len, 35);
		CHECK_EQ(o->h.payload_crc_type, BUNDLE_CRC_NONE);
		if (i == 0)
			CHECK_MEM(o->payload, ready, 35);

		/* The BPSec blocks (unknown to us, flags 0 or replicate) are kept as they came. */
		struct cbor_reader r;
		cbor_reader_init(&r, o->h.extra, o->h.extra_len);
		for (int b = 0; b < sec[i].n; b++) {
			uint64_t n, type, num, flags, crc;
			const uint8_t *d;
			size_t dl;

			CHECK_EQ(cbor_read_array(&r, &n), 0);
			CHECK_EQ(cbor_read_uint(&r, &type), 0);
			CHECK_EQ(cbor_read_uint(&r, &num), 0);
			CHECK_EQ(cbor_read_uint(&r, &flags), 0);
			CHECK_EQ(cbor_read_uint(&r, &crc), 0);
			CHECK_EQ(cbor_read_bytes(&r, &d, &dl), 0);
			CHECK_EQ(type, sec[i].type[b]);
			CHECK_EQ(num, sec[i].num[b]);
			CHECK_EQ(flags, sec[i].flags[b]);
			CHECK(memmem(bytes, len, d, dl) != NULL);
		}
		CHECK(cbor_reader_done(&r));

		/* Our encoder reproduces A.1, A.2 and A.4 exactly; A.3 reorders its age block. */
		check_reencode(o, bytes, len, i != 2);
		outcome_free(o);
		free(bytes);
	}
}

static void test_other_samples(void)
{
	struct outcome *o;
	uint8_t *bytes;
	size_t len;

	/* A.1 as hardy's tests carry it: creation time 1 and a CRC-16 primary block. */
	o = parse_vector("hardy-rfc9173-a1-crc16.bundle", &bytes, &len);
	CHECK_EQ(o->ret, 0);
	CHECK_EQ(o->h.crc_type, BUNDLE_CRC16);
	CHECK_EQ(o->h.created_ms, 1);
	CHECK_EQ(o->h.seq, 40);
	check_ipn(&o->h.dest, 1, 2);
	check_reencode(o, bytes, len, true);
	outcome_free(o);
	free(bytes);

	/* bpv7_elixir's test bundle: dtn EIDs, CRC-32C on every block. */
	o = parse_vector("bpv7-elixir-hello.bundle", &bytes, &len);
	CHECK_EQ(o->ret, 0);
	CHECK(o->h.dest.scheme == BUNDLE_SCHEME_DTN &&
	      strcmp(o->h.dest.dtn, "//c.dtn/bundlesink") == 0);
	CHECK(o->h.source.scheme == BUNDLE_SCHEME_DTN && strcmp(o->h.source.dtn, "//a.dtn") == 0);
	CHECK(o->h.report_to.scheme == BUNDLE_SCHEME_DTN && o->h.report_to.none);
	CHECK_EQ(o->h.crc_type, BUNDLE_CRC32C);
	CHECK(o->h.created_ms == 0x9e3a0b75cfull);
	CHECK_EQ(o->h.seq, 3);
	CHECK_EQ(o->h.lifetime_ms, 300000);
	CHECK(o->h.has_hop_count && o->h.hop_limit == 30 && o->h.hop_count == 0);
	CHECK(o->h.has_age && o->h.age_ms == 0);
	CHECK_EQ(o->h.payload_crc_type, BUNDLE_CRC32C);
	CHECK_EQ(o->h.payload_len, 12);
	CHECK_MEM(o->payload, "Hello World!", 12);
	check_reencode(o, bytes, len, false);
	outcome_free(o);
	free(bytes);
	o = parse_vector("bpv7-elixir-bad-payload-crc.bundle", NULL, &len);
	CHECK_EQ(o->ret, -EBADMSG);
	CHECK(strcmp(o->reason, "payload block CRC mismatch") == 0);
	outcome_free(o);
	o = parse_vector("bpv7-elixir-bad-primary-crc.bundle", NULL, &len);
	CHECK_EQ(o->ret, -EBADMSG);
	CHECK(strcmp(o->reason, "primary block CRC mismatch") == 0);
	outcome_free(o);

	/* bp7-rs's primary block samples (no CRC, CRC-16, CRC-32C) with its payload sample. */
	static const char *const prim[] = {"bp7rs-primary-nocrc-with-payload.bundle",
					   "bp7rs-primary-crc16-with-payload.bundle",
					   "bp7rs-primary-crc32-with-payload.bundle"};
	uint8_t ids[3][32];
	for (int i = 0; i < 3; i++) {
		o = parse_vector(prim[i], &bytes, &len);
		CHECK_EQ(o->ret, 0);
		CHECK_EQ(o->h.crc_type, (enum bundle_crc)i);
		CHECK(strcmp(o->h.dest.dtn, "n2/inbox") == 0 && strcmp(o->h.source.dtn, "n1") == 0);
		CHECK_EQ(o->h.created_ms, 2342);
		CHECK_EQ(o->h.seq, 2);
		CHECK_EQ(o->h.lifetime_ms, 60000000);
		CHECK_MEM(o->payload, "ABC", 3);
		memcpy(ids[i], o->id, 32);
		check_reencode(o, bytes, len, true);
		outcome_free(o);
		free(bytes);
	}
	/* Three CRC types, one bundle, one id. */
	CHECK_MEM(ids[0], ids[1], 32);
	CHECK_MEM(ids[0], ids[2], 32);

	/* bp7-rs samples from before RFC 9171, refused with the rule they break. */
	o = parse_vector("bp7rs-sample-nocrc-payload-not-last.bundle", NULL, &len);
	CHECK_EQ(o->ret, -EBADMSG);
	CHECK(strcmp(o->reason, "payload block is not the last block") == 0);
	outcome_free(o);
	o = parse_vector("bp7rs-rnd-old-draft.bundle", NULL, &len);
	CHECK_EQ(o->ret, -EBADMSG);
	CHECK(strcmp(o->reason, "block number 0 on a non-primary block") == 0);
	outcome_free(o);
}

/* With TERN_WRITE_BUNDLES=<dir>, writes encoder output for tests/integration/bundle_cbor2.py. */
static void write_samples(void)
{
	const char *dir = getenv("TERN_WRITE_BUNDLES");
	uint8_t out[2048], payload[274], extra[64];
	struct bundle_header h;
	struct cbor_writer w;
	char path[1024];

	if (!dir)
		return;
	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i * 13);
	for (int shape = 0; shape < 10; shape++) {
		bundle_header_init(&h, 3000000000u, 1);
		h.seq = 0x9abcdef0;
		h.age_ms = 86400000;
		h.payload_len = sizeof(payload);
		switch (shape) {
		case 1: /* trusted clock */
			h.has_age = false;
			h.created_ms = 800000000000ull;
			break;
		case 2:
			h.priority = BUNDLE_PRIO_URGENT;
			h.crc_type = BUNDLE_CRC16;
			break;
		case 3:
			full_header(&h, NULL, 0);
			h.payload_len = sizeof(payload);
			break;
		case 4:
			cbor_writer_init(&w, extra, sizeof(extra));
			put_block(&w, 250, 9, BLOCK_F_REPLICATE, BUNDLE_CRC32C, "kept", 4);
			full_header(&h, extra, w.len);
			h.payload_crc_type = BUNDLE_CRC16;
			h.payload_len = 0;
			break;
		case 5: /* a fragment needs a named source (RFC 9171 4.2.3) */
			h.flags = BUNDLE_F_FRAGMENT;
			h.frag_offset = 1000;
			h.adu_length = 5000;
			h.source.scheme = h.report_to.scheme = BUNDLE_SCHEME_IPN;
			h.source.node = h.report_to.node = 44;
			break;
		case 6:
			h.dest.scheme = BUNDLE_SCHEME_DTN;
			strcpy(h.dest.dtn, "//hub.example/inbox");
			break;
		case 7:
			h.dest.service = 2;
			h.priority = BUNDLE_PRIO_BULK;
			break;
		case 8:
			h.payload_len = 5;
			break;
		case 9:
			h.hop_count = 16;
			h.payload_crc_type = BUNDLE_CRC32C;
			break;
		}
		int n = bundle_encode(&h, payload, out, sizeof(out));
		CHECK(n > 0);
		snprintf(path, sizeof(path), "%s/tern-shape%d.bundle", dir, shape);
		FILE *f = fopen(path, "wb");
		if (f) {
			fwrite(out, 1, (size_t)n, f);
			fclose(f);
		}
	}
}

int main(void)
{
	CHECK_EQ(tern_crypto_init(), 0);
	test_header_init();
	test_encode_exact();
	test_encode_errors();
	test_encode_max();
	test_block_numbers();
	test_eid_text();
	test_round_trip();
	test_splits();
	test_truncation();
	test_reject_structure();
	test_reject_primary();
	test_reject_crc();
	test_known_blocks();
	test_unknown_blocks();
	test_limits();
	test_callback_errors();
	test_id();
	test_rfc9173();
	test_other_samples();
	write_samples();
	test_big_payload();
	TEST_MAIN_END();
}
