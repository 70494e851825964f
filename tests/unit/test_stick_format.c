/* Manifest and receipt bodies: known bytes, round trips, and every rejection with its reason. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "transports/stick_format.h"
#include "test.h"

struct collect {
	size_t n;
	struct stick_manifest_entry e[8];
	uint8_t ids[8][32];
	size_t idlen;
	int stop_at; /* return -EINTR at this call (1-based); 0 never */
};

static int on_entry(void *ctx, const struct stick_manifest_entry *e)
{
	struct collect *c = ctx;
	if (c->n < 8)
		c->e[c->n] = *e;
	c->n++;
	return (int)c->n == c->stop_at ? -EINTR : 0;
}

static int on_id(void *ctx, const uint8_t *id, size_t idlen)
{
	struct collect *c = ctx;
	if (c->n < 8)
		memcpy(c->ids[c->n], id, idlen);
	c->idlen = idlen;
	c->n++;
	return (int)c->n == c->stop_at ? -EINTR : 0;
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

/* Parses buf as a manifest and checks the verdict and the reason; no callback may run on error. */
static void manifest_rejects(const uint8_t *buf, size_t len, int want, const char *why_want)
{
	struct stick_manifest m;
	struct collect c = {0};
	const char *why = NULL;
	int ret = stick_manifest_parse(buf, len, &m, on_entry, &c, &why);
	CHECK_EQ(ret, want);
	CHECK_EQ(c.n, 0);
	CHECK(why != NULL && strstr(why, why_want) != NULL);
	if (why && !strstr(why, why_want))
		fprintf(stderr, "  reason was \"%s\", expected \"%s\"\n", why, why_want);
}

static void receipt_rejects(const uint8_t *buf, size_t len, int want, const char *why_want)
{
	struct stick_receipt r;
	struct collect c = {0};
	const char *why = NULL;
	int ret = stick_receipt_parse(buf, len, &r, on_id, &c, &why);
	CHECK_EQ(ret, want);
	CHECK_EQ(c.n, 0);
	CHECK(why != NULL && strstr(why, why_want) != NULL);
	if (why && !strstr(why, why_want))
		fprintf(stderr, "  reason was \"%s\", expected \"%s\"\n", why, why_want);
}

static void test_manifest_known_bytes(void)
{
	/* The layout of docs/sneakernet.md, byte for byte. */
	struct stick_manifest m = {.node = 0x01020304, .created_ms = 1700000000000ull};
	struct stick_manifest_entry e = {.size = 0x1234};
	memset(e.id, 0xab, 32);
	memset(e.hash, 0xcd, 32);
	uint8_t want[STICK_MANIFEST_HEAD + STICK_MANIFEST_ENTRY];
	memcpy(want, "TMAN\x01", 5);
	put64(want + 5, 0x01020304);
	put64(want + 13, 1700000000000ull);
	put32(want + 21, 1);
	memset(want + 25, 0xab, 32);
	put64(want + 57, 0x1234);
	memset(want + 65, 0xcd, 32);

	uint8_t *out = NULL;
	size_t outlen = 0;
	CHECK_EQ(stick_manifest_encode(&m, &e, 1, &out, &outlen), 0);
	CHECK_EQ(outlen, sizeof(want));
	CHECK(out && memcmp(out, want, sizeof(want)) == 0);
	free(out);
}

static void test_manifest_round_trip(void)
{
	struct stick_manifest m = {.node = 16777217, .created_ms = 0};
	struct stick_manifest_entry e[3];
	for (int i = 0; i < 3; i++) {
		memset(e[i].id, 0x30 - 0x10 * i, 32); /* given in descending order */
		e[i].id[31] = (uint8_t)i;
		e[i].size = 1000u * (unsigned)(i + 1);
		memset(e[i].hash, 0x70 + i, 32);
	}
	e[2].size = STICK_BUNDLE_MAX; /* the largest allowed */
	uint8_t *out = NULL;
	size_t outlen = 0;
	CHECK_EQ(stick_manifest_encode(&m, e, 3, &out, &outlen), 0);
	CHECK_EQ(outlen, STICK_MANIFEST_HEAD + 3 * STICK_MANIFEST_ENTRY);

	struct stick_manifest got;
	struct collect c = {0};
	const char *why = "unset";
	CHECK_EQ(stick_manifest_parse(out, outlen, &got, on_entry, &c, &why), 0);
	CHECK_EQ(got.version, STICK_FORMAT_VERSION);
	CHECK_EQ(got.node, 16777217);
	CHECK_EQ(got.created_ms, 0);
	CHECK_EQ(got.count, 3);
	CHECK_EQ(c.n, 3);
	/* Sorted by id: the input's last entry comes first. */
	for (int i = 0; i < 3; i++) {
		CHECK_MEM(c.e[i].id, e[2 - i].id, 32);
		CHECK_EQ(c.e[i].size, e[2 - i].size);
		CHECK_MEM(c.e[i].hash, e[2 - i].hash, 32);
	}

	/* Lookup by binary search on the checked buffer. */
	for (int i = 0; i < 3; i++) {
		struct stick_manifest_entry f;
		CHECK_EQ(stick_manifest_lookup(out, outlen, e[i].id, &f), 0);
		CHECK_EQ(f.size, e[i].size);
		CHECK_MEM(f.hash, e[i].hash, 32);
	}
	uint8_t absent[32] = {0};
	struct stick_manifest_entry f;
	CHECK_EQ(stick_manifest_lookup(out, outlen, absent, &f), -ENOENT);
	memset(absent, 0xff, 32);
	CHECK_EQ(stick_manifest_lookup(out, outlen, absent, &f), -ENOENT);

	/* A callback's error stops the walk and comes back as is; NULL fn only validates. */
	c = (struct collect){.stop_at = 2};
	CHECK_EQ(stick_manifest_parse(out, outlen, &got, on_entry, &c, NULL), -EINTR);
	CHECK_EQ(c.n, 2);
	CHECK_EQ(stick_manifest_parse(out, outlen, &got, NULL, NULL, NULL), 0);
	free(out);

	/* An empty manifest is allowed: an exporter that found everything already there. */
	CHECK_EQ(stick_manifest_encode(&m, NULL, 0, &out, &outlen), 0);
	CHECK_EQ(outlen, STICK_MANIFEST_HEAD);
	CHECK_EQ(stick_manifest_parse(out, outlen, &got, on_entry, &c, NULL), 0);
	CHECK_EQ(got.count, 0);
	CHECK_EQ(stick_manifest_lookup(out, outlen, absent, &f), -ENOENT);
	free(out);
}

static void test_manifest_encode_refuses(void)
{
	struct stick_manifest m = {.node = 1};
	struct stick_manifest_entry e[2] = {{.size = 1}, {.size = 2}};
	uint8_t *out = NULL;
	size_t outlen = 0;

	CHECK_EQ(stick_manifest_encode(&m, e, 2, &out, &outlen), -EINVAL); /* same id twice */
	e[1].id[0] = 1;
	e[0].size = 0;
	CHECK_EQ(stick_manifest_encode(&m, e, 2, &out, &outlen), -EINVAL);
	e[0].size = STICK_BUNDLE_MAX + 1;
	CHECK_EQ(stick_manifest_encode(&m, e, 2, &out, &outlen), -EINVAL);
	CHECK_EQ(stick_manifest_encode(&m, NULL, 1, &out, &outlen), -EINVAL);
	CHECK_EQ(stick_manifest_encode(&m, e, STICK_LIST_MAX + 1, &out, &outlen), -EFBIG);
	CHECK(out == NULL);
}

static void test_manifest_limit(void)
{
	/* STICK_LIST_MAX entries encode and parse; sealed they still fit a 16 MiB stick file. */
	size_t n = STICK_LIST_MAX;
	struct stick_manifest_entry *e = calloc(n, sizeof(*e));
	struct stick_manifest m = {.node = 7}, got;
	uint8_t *out = NULL;
	size_t outlen = 0;
	CHECK(e != NULL);
	if (!e)
		return;
	for (size_t i = 0; i < n; i++) {
		uint32_t v = (uint32_t)(i * 2654435761u); /* a permutation: all distinct */
		put32(e[i].id, v);
		e[i].size = i + 1;
	}
	CHECK_EQ(stick_manifest_encode(&m, e, n, &out, &outlen), 0);
	CHECK_EQ(outlen, STICK_MANIFEST_HEAD + n * STICK_MANIFEST_ENTRY);
	CHECK(outlen < (16u << 20) - (64u << 10));
	CHECK_EQ(stick_manifest_parse(out, outlen, &got, NULL, NULL, NULL), 0);
	CHECK_EQ(got.count, n);
	struct stick_manifest_entry f;
	CHECK_EQ(stick_manifest_lookup(out, outlen, e[12345].id, &f), 0);
	CHECK_EQ(f.size, 12346);
	free(out);
	free(e);
}

static void test_manifest_rejections(void)
{
	struct stick_manifest m = {.node = 99, .created_ms = 5};
	struct stick_manifest_entry e[2];
	memset(e, 0, sizeof(e));
	e[0].size = 10;
	e[1].size = 20;
	e[1].id[0] = 1;
	uint8_t *good = NULL;
	size_t len = 0;
	CHECK_EQ(stick_manifest_encode(&m, e, 2, &good, &len), 0);
	uint8_t *b = malloc(len + 1);
	CHECK(good && b);
	if (!good || !b)
		return;

	manifest_rejects(good, 0, -EBADMSG, "truncated");
	manifest_rejects(good, 3, -EBADMSG, "truncated");
	manifest_rejects(good, 4, -EBADMSG, "truncated");
	manifest_rejects(good, 24, -EBADMSG, "truncated head");
	manifest_rejects(good, len - 1, -EBADMSG, "shorter than its count");
	manifest_rejects(good, STICK_MANIFEST_HEAD + STICK_MANIFEST_ENTRY, -EBADMSG,
			 "shorter than its count");

	memcpy(b, good, len);
	b[len] = 0;
	manifest_rejects(b, len + 1, -EBADMSG, "trailing bytes");

	memcpy(b, good, len);
	b[0] = 't';
	manifest_rejects(b, len, -EBADMSG, "wrong magic");
	memcpy(b, "TRCP", 4); /* a receipt is not a manifest */
	manifest_rejects(b, len, -EBADMSG, "wrong magic");

	memcpy(b, good, len);
	b[4] = 2;
	manifest_rejects(b, len, -ENOTSUP, "unknown version");
	b[4] = 0;
	manifest_rejects(b, len, -ENOTSUP, "unknown version");
	/* A newer version may be laid out differently: its length is not judged. */
	manifest_rejects(b, 5, -ENOTSUP, "unknown version");

	memcpy(b, good, len);
	put32(b + 21, STICK_LIST_MAX + 1);
	manifest_rejects(b, len, -EFBIG, "too many entries");
	put32(b + 21, 0xffffffff);
	manifest_rejects(b, len, -EFBIG, "too many entries");
	put32(b + 21, 3);
	manifest_rejects(b, len, -EBADMSG, "shorter than its count");
	put32(b + 21, 1);
	manifest_rejects(b, len, -EBADMSG, "trailing bytes");

	/* Order: the two entries swapped, then the same id twice. */
	memcpy(b, good, len);
	memcpy(b + 25, good + 25 + 72, 72);
	memcpy(b + 25 + 72, good + 25, 72);
	manifest_rejects(b, len, -EBADMSG, "not in id order");
	memcpy(b, good, len);
	memcpy(b + 25 + 72, good + 25, 32);
	manifest_rejects(b, len, -EBADMSG, "duplicate bundle id");

	memcpy(b, good, len);
	put64(b + 25 + 72 + 32, 0);
	manifest_rejects(b, len, -EBADMSG, "size 0");
	put64(b + 25 + 72 + 32, STICK_BUNDLE_MAX + 1);
	manifest_rejects(b, len, -EBADMSG, "over the bundle size limit");
	put64(b + 25 + 72 + 32, UINT64_MAX);
	manifest_rejects(b, len, -EBADMSG, "over the bundle size limit");

	free(b);
	free(good);
}

static void test_receipt_known_bytes(void)
{
	struct stick_receipt r = {
	    .kind = STICK_RECEIPT_DELIVERY, .node = 0xdeadbeef, .created_ms = 1};
	uint8_t ids[2][16];
	memset(ids[0], 0x22, 16);
	memset(ids[1], 0x11, 16);
	uint8_t want[STICK_RECEIPT_HEAD + 32];
	memcpy(want, "TRCP\x01\x02", 6);
	put64(want + 6, 0xdeadbeef);
	put64(want + 14, 1);
	put32(want + 22, 2);
	memset(want + 26, 0x11, 16);
	memset(want + 42, 0x22, 16);

	uint8_t *out = NULL;
	size_t outlen = 0;
	CHECK_EQ(stick_receipt_encode(&r, ids[0], 2, &out, &outlen), 0);
	CHECK_EQ(outlen, sizeof(want));
	CHECK(out && memcmp(out, want, sizeof(want)) == 0);
	free(out);
}

static void test_receipt_round_trip(void)
{
	for (int kind = STICK_RECEIPT_CUSTODY; kind <= STICK_RECEIPT_DELIVERY; kind++) {
		size_t idlen = stick_receipt_id_len(kind);
		CHECK_EQ(idlen, kind == STICK_RECEIPT_CUSTODY ? 32 : 16);
		struct stick_receipt r = {.kind = kind, .node = 4242, .created_ms = 77}, got;
		uint8_t ids[3 * 32];
		for (size_t i = 0; i < 3; i++)
			memset(ids + i * idlen, 0x90 - 0x20 * (int)i, idlen);
		uint8_t *out = NULL;
		size_t outlen = 0;
		CHECK_EQ(stick_receipt_encode(&r, ids, 3, &out, &outlen), 0);
		CHECK_EQ(outlen, STICK_RECEIPT_HEAD + 3 * idlen);

		struct collect c = {0};
		CHECK_EQ(stick_receipt_parse(out, outlen, &got, on_id, &c, NULL), 0);
		CHECK_EQ(got.kind, kind);
		CHECK_EQ(got.version, STICK_FORMAT_VERSION);
		CHECK_EQ(got.node, 4242);
		CHECK_EQ(got.created_ms, 77);
		CHECK_EQ(got.count, 3);
		CHECK_EQ(c.n, 3);
		CHECK_EQ(c.idlen, idlen);
		for (size_t i = 0; i < 3; i++)
			CHECK_MEM(c.ids[i], ids + (2 - i) * idlen, idlen);
		c = (struct collect){.stop_at = 1};
		CHECK_EQ(stick_receipt_parse(out, outlen, &got, on_id, &c, NULL), -EINTR);
		CHECK_EQ(c.n, 1);
		free(out);

		CHECK_EQ(stick_receipt_encode(&r, NULL, 0, &out, &outlen), 0);
		CHECK_EQ(outlen, STICK_RECEIPT_HEAD);
		CHECK_EQ(stick_receipt_parse(out, outlen, &got, NULL, NULL, NULL), 0);
		free(out);
	}
}

static void test_receipt_rejections(void)
{
	struct stick_receipt r = {.kind = STICK_RECEIPT_CUSTODY, .node = 1};
	uint8_t ids[64] = {0};
	uint8_t *out = NULL;
	size_t len = 0;

	ids[32] = 1;
	CHECK_EQ(stick_receipt_encode(&r, ids, 2, &out, &len), 0);
	uint8_t *b = malloc(len + 16);
	CHECK(out && b);
	if (!out || !b)
		return;

	receipt_rejects(out, 0, -EBADMSG, "truncated");
	receipt_rejects(out, 5, -EBADMSG, "truncated head");
	receipt_rejects(out, 25, -EBADMSG, "truncated head");
	receipt_rejects(out, len - 1, -EBADMSG, "shorter than its count");
	memcpy(b, out, len);
	b[len] = 7;
	receipt_rejects(b, len + 1, -EBADMSG, "trailing bytes");

	memcpy(b, out, len);
	memcpy(b, "TMAN", 4);
	receipt_rejects(b, len, -EBADMSG, "wrong magic");
	memcpy(b, out, len);
	b[4] = 9;
	receipt_rejects(b, len, -ENOTSUP, "unknown version");
	memcpy(b, out, len);
	b[5] = 0;
	receipt_rejects(b, len, -EBADMSG, "unknown receipt kind");
	b[5] = 3;
	receipt_rejects(b, len, -EBADMSG, "unknown receipt kind");
	/* A custody body relabelled delivery: 64 bytes of ids are 4 of 16, not the 2 it says. */
	b[5] = STICK_RECEIPT_DELIVERY;
	receipt_rejects(b, len, -EBADMSG, "trailing bytes");

	memcpy(b, out, len);
	put32(b + 22, STICK_LIST_MAX + 1);
	receipt_rejects(b, len, -EFBIG, "too many entries");

	memcpy(b, out, len);
	memcpy(b + 26 + 32, out + 26, 32);
	receipt_rejects(b, len, -EBADMSG, "duplicate id");
	memcpy(b + 26, out + 26 + 32, 32);
	memcpy(b + 26 + 32, out + 26, 32);
	receipt_rejects(b, len, -EBADMSG, "not in id order");

	/* The encoder refuses what the parser would. */
	uint8_t *o2 = NULL;
	size_t l2 = 0;
	memset(ids + 32, 0, 32);
	CHECK_EQ(stick_receipt_encode(&r, ids, 2, &o2, &l2), -EINVAL);
	r.kind = 3;
	CHECK_EQ(stick_receipt_encode(&r, ids, 1, &o2, &l2), -EINVAL);
	CHECK_EQ(stick_receipt_id_len(3), 0);
	r.kind = STICK_RECEIPT_CUSTODY;
	CHECK_EQ(stick_receipt_encode(&r, NULL, 1, &o2, &l2), -EINVAL);
	CHECK_EQ(stick_receipt_encode(&r, ids, STICK_LIST_MAX + 1, &o2, &l2), -EFBIG);
	CHECK(o2 == NULL);

	free(b);
	free(out);
}

int main(void)
{
	test_manifest_known_bytes();
	test_manifest_round_trip();
	test_manifest_encode_refuses();
	test_manifest_limit();
	test_manifest_rejections();
	test_receipt_known_bytes();
	test_receipt_round_trip();
	test_receipt_rejections();
	TEST_MAIN_END();
}
