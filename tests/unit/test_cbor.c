/* Tests the CBOR writer (shortest forms), the buffer reader and the push scanner. */
#include <errno.h>
#include <stdint.h>

#include "relay/cbor.h"
#include "test.h"

static size_t put(uint64_t v, uint8_t *out)
{
	struct cbor_writer w;

	cbor_writer_init(&w, out, 16);
	cbor_put_uint(&w, v);
	CHECK(!w.overflow);
	return w.len;
}

static void test_shortest(void)
{
	static const struct {
		uint64_t v;
		size_t len;
		uint8_t first, last;
	} cases[] = {
	    {0, 1, 0x00, 0x00},
	    {23, 1, 0x17, 0x17},
	    {24, 2, 0x18, 0x18},
	    {255, 2, 0x18, 0xff},
	    {256, 3, 0x19, 0x00},
	    {65535, 3, 0x19, 0xff},
	    {65536, 5, 0x1a, 0x00},
	    {UINT32_MAX, 5, 0x1a, 0xff},
	    {(uint64_t)UINT32_MAX + 1, 9, 0x1b, 0x00},
	    {UINT64_MAX, 9, 0x1b, 0xff},
	};
	uint8_t out[16];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = put(cases[i].v, out);

		CHECK_EQ(n, cases[i].len);
		CHECK_EQ(out[0], cases[i].first);
		CHECK_EQ(out[n - 1], cases[i].last);
		CHECK_EQ(cbor_head_size(cases[i].v), cases[i].len);

		struct cbor_reader r;
		uint64_t v = 0;

		cbor_reader_init(&r, out, n);
		CHECK_EQ(cbor_read_uint(&r, &v), 0);
		CHECK(v == cases[i].v);
		CHECK(cbor_reader_done(&r));
	}
}

static void test_writer_overflow(void)
{
	uint8_t out[4];
	struct cbor_writer w;

	cbor_writer_init(&w, out, sizeof(out));
	cbor_put_bytes(&w, "abc", 3);
	CHECK(!w.overflow);
	CHECK_EQ(w.len, 4);
	cbor_put_uint(&w, 1);
	CHECK(w.overflow);
	CHECK_EQ(w.len, 4);
	cbor_put_uint(&w, 0); /* nothing more once overflowed */
	CHECK_EQ(w.len, 4);
}

static void test_reader(void)
{
	/* Non-shortest forms are accepted: 0x18 0x05 is 5, 0x1b ... 0x07 is 7. */
	static const uint8_t in[] = {0x18, 0x05, 0x1b, 0,   0,	 0,   0,    0,	 0,   0,
				     0x07, 0x82, 0x43, 'a', 'b', 'c', 0x62, 'h', 'i', 0x20};
	struct cbor_reader r;
	uint64_t v, n;
	const uint8_t *p;
	size_t len;

	cbor_reader_init(&r, in, sizeof(in));
	CHECK_EQ(cbor_read_uint(&r, &v), 0);
	CHECK_EQ(v, 5);
	CHECK_EQ(cbor_read_uint(&r, &v), 0);
	CHECK_EQ(v, 7);
	CHECK_EQ(cbor_read_bytes(&r, &p, &len), -EBADMSG); /* an array, not bytes */
	CHECK_EQ(cbor_read_array(&r, &n), 0);
	CHECK_EQ(n, 2);
	CHECK_EQ(cbor_read_text(&r, &p, &len), -EBADMSG); /* bytes, not text */
	CHECK_EQ(cbor_read_bytes(&r, &p, &len), 0);
	CHECK_EQ(len, 3);
	CHECK_MEM(p, "abc", 3);
	CHECK_EQ(cbor_read_text(&r, &p, &len), 0);
	CHECK_MEM(p, "hi", 2);
	CHECK_EQ(cbor_read_uint(&r, &v), -EBADMSG); /* -1 */
	struct cbor_head h;

	CHECK_EQ(cbor_read_head(&r, &h), 0);
	CHECK_EQ(h.major, CBOR_NEGINT);
	CHECK(cbor_reader_done(&r));
	CHECK_EQ(cbor_read_head(&r, &h), -ENODATA);
}

static void test_reader_bounds(void)
{
	/* A string whose length runs past the buffer, a head cut short, reserved AI. */
	static const uint8_t longstr[] = {0x45, 'a', 'b'};
	static const uint8_t cut[] = {0x1a, 0x00, 0x01};
	static const uint8_t reserved[] = {0x1c};
	static const uint8_t indef_uint[] = {0x1f};
	struct cbor_reader r;
	const uint8_t *p;
	size_t len;
	uint64_t v;

	cbor_reader_init(&r, longstr, sizeof(longstr));
	CHECK_EQ(cbor_read_bytes(&r, &p, &len), -ENODATA);
	CHECK_EQ(r.pos, 0);
	cbor_reader_init(&r, cut, sizeof(cut));
	CHECK_EQ(cbor_read_uint(&r, &v), -ENODATA);
	cbor_reader_init(&r, reserved, sizeof(reserved));
	CHECK_EQ(cbor_read_uint(&r, &v), -EBADMSG);
	cbor_reader_init(&r, indef_uint, sizeof(indef_uint));
	CHECK_EQ(cbor_read_uint(&r, &v), -EBADMSG);
}

static void test_head_feed(void)
{
	static const uint8_t in[] = {0x1b, 1, 2, 3, 4, 5, 6, 7, 8, 0x9f, 0x5f, 0x17};
	struct cbor_head_dec d = {0};
	struct cbor_head h;
	int got = 0;

	for (size_t i = 0; i < 9; i++)
		got = cbor_head_feed(&d, in[i], &h);
	CHECK_EQ(got, 1);
	CHECK(h.arg == 0x0102030405060708ull);
	CHECK_EQ(h.size, 9);
	CHECK_EQ(cbor_head_feed(&d, in[9], &h), 1);
	CHECK(h.major == CBOR_ARRAY && h.indef);
	CHECK_EQ(cbor_head_feed(&d, in[10], &h), 1);
	CHECK(h.major == CBOR_BYTES && h.indef);
	CHECK_EQ(cbor_head_feed(&d, in[11], &h), 1);
	CHECK(h.major == CBOR_UINT && h.arg == 23);
	CHECK_EQ(cbor_head_feed(&d, 0x3d, &h), -EBADMSG);
}

/* Scans buf fed in pieces of step bytes; returns the offset where the item ended or -err. */
static long scan(const uint8_t *buf, size_t len, size_t step, enum cbor_scan_err *why)
{
	struct cbor_scan s;
	size_t off = 0;

	memset(&s, 0, sizeof(s));
	while (off < len) {
		size_t n = len - off < step ? len - off : step, used;
		bool done;

		if (cbor_scan_feed(&s, buf + off, n, &used, &done, why) < 0)
			return -1;
		off += used;
		if (done)
			return (long)off;
		CHECK_EQ(used, n);
	}
	return 0; /* not done */
}

static void test_scan(void)
{
	/* [7, [1, "ab"], {1: h'00'}, [[]], -3, 1.5(half)] then a trailing 0x00 */
	static const uint8_t item[] = {0x86, 0x07, 0x82, 0x01, 0x62, 'a',  'b',	 0xa1, 0x01,
				       0x41, 0x00, 0x81, 0x80, 0x22, 0xf9, 0x3e, 0x00, 0x00};
	enum cbor_scan_err why;

	for (size_t step = 1; step <= sizeof(item); step++)
		CHECK_EQ(scan(item, sizeof(item), step, &why), sizeof(item) - 1);

	static const uint8_t indef[] = {0x82, 0x9f, 0xff, 0x00};
	static const uint8_t indef_str[] = {0x5f, 0x41, 0x00, 0xff};
	static const uint8_t tag[] = {0x82, 0xc2, 0x41, 0x01, 0x00};
	static const uint8_t stray_break[] = {0x82, 0xff};
	static const uint8_t deep[] = {0x81, 0x81, 0x81, 0x81, 0x81, 0x00};
	static const uint8_t ok_deep[] = {0x81, 0x81, 0x81, 0x81, 0x00};

	CHECK_EQ(scan(indef, sizeof(indef), 1, &why), -1);
	CHECK_EQ(why, CBOR_SCAN_INDEF);
	CHECK_EQ(scan(indef_str, sizeof(indef_str), 4, &why), -1);
	CHECK_EQ(why, CBOR_SCAN_INDEF);
	CHECK_EQ(scan(tag, sizeof(tag), 2, &why), -1);
	CHECK_EQ(why, CBOR_SCAN_TAG);
	CHECK_EQ(scan(stray_break, sizeof(stray_break), 2, &why), -1);
	CHECK_EQ(why, CBOR_SCAN_INDEF);
	CHECK_EQ(scan(deep, sizeof(deep), 3, &why), -1);
	CHECK_EQ(why, CBOR_SCAN_DEEP);
	CHECK_EQ(scan(ok_deep, sizeof(ok_deep), 3, &why), (long)sizeof(ok_deep));

	/* A huge claimed string only counts down; nothing is buffered. */
	static const uint8_t huge[] = {0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2};
	CHECK_EQ(scan(huge, sizeof(huge), 5, &why), 0);
}

int main(void)
{
	test_shortest();
	test_writer_overflow();
	test_reader();
	test_reader_bounds();
	test_head_feed();
	test_scan();
	TEST_MAIN_END();
}
