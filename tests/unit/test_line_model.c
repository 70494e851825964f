/* Tests the serial line model: rate, latency, seeded damage, drops, cuts and its bounds. */
#include <errno.h>
#include <math.h>
#include <stdint.h>

#include "sim/line_model.h"
#include "test.h"

static struct line_params params(uint32_t baud, uint32_t latency_ms, double ber, double drop)
{
	struct line_params p = {.baud = baud,
				.bits_per_byte = 10,
				.latency_ms = latency_ms,
				.ber = ber,
				.drop = drop,
				.seed = 1};
	return p;
}

static void fill(uint8_t *buf, size_t n, uint64_t seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		buf[i] = (uint8_t)(seed >> 56);
	}
}

/*
 * A writer as greedy as the line lets it be and a prompt reader, from start_us in steps of
 * step_us, until everything has arrived: returns how many bytes came out.
 */
static size_t stream(struct line_dir *d, const uint8_t *in, size_t n, uint8_t *out, size_t cap,
		     uint64_t start_us, uint64_t step_us)
{
	size_t put = 0, got = 0;
	uint64_t now = start_us;
	for (;;) {
		got += line_dir_take(d, now, out + got, cap - got);
		if (put < n)
			put += line_dir_put(d, in + put, n - put, now);
		if (put == n && line_dir_next_us(d, now) == UINT64_MAX)
			break;
		now += step_us;
	}
	return got;
}

static unsigned popcount8(uint8_t x)
{
	unsigned n = 0;
	for (; x; x &= (uint8_t)(x - 1))
		n++;
	return n;
}

static void test_rate(void)
{
	static const uint32_t bauds[] = {300, 9600, 115200, 1000000};
	static uint8_t in[20000];

	fill(in, sizeof(in), 7);
	for (size_t b = 0; b < sizeof(bauds) / sizeof(bauds[0]); b++) {
		struct line_params p = params(bauds[b], 0, 0, 0);
		struct line_dir d;
		uint8_t out[4096];
		size_t put = 0, got = 0;
		CHECK_EQ(line_dir_init(&d, &p, 0), 0);
		size_t burst = line_dir_room(&d, 0);
		CHECK(burst >= LINE_BURST_MIN);
		size_t n = bauds[b] / 10 * 2; /* two seconds' worth */
		if (n > sizeof(in))
			n = sizeof(in);
		for (uint64_t now = 0; got < n; now += 37) {
			got += line_dir_take(&d, now, out, sizeof(out));
			put += line_dir_put(&d, in + put, n - put, now);
			/* Never faster than the rate, never more accepted than rate plus burst. */
			double on_wire = (double)now * bauds[b] / 10 / 1e6;
			CHECK(got <= on_wire + 1e-9);
			CHECK(put <= on_wire + burst + 1);
			/* Nor slower: a greedy writer keeps the wire busy. */
			CHECK(got + 2 >= on_wire || got == n);
			if (now > 100000000)
				break;
		}
		CHECK_EQ(got, n);
		line_dir_free(&d);
	}
}

static void test_latency(void)
{
	struct line_params p = params(9600, 250, 0, 0);
	struct line_dir d;
	uint8_t b = 0x5a, out[4];

	CHECK_EQ(line_dir_init(&d, &p, 0), 0);
	CHECK_EQ(line_dir_next_us(&d, 0), UINT64_MAX);
	CHECK_EQ(line_dir_put(&d, &b, 1, 1000), 1);
	/* Put at tick 9 (1000 us at 9600 baud), off the wire at tick 19 = 1979.2 us, then 250 ms.
	 */
	uint64_t due = 1980 + 250000;
	CHECK_EQ(line_dir_next_us(&d, 1000), due);
	CHECK_EQ(line_dir_take(&d, due - 1, out, sizeof(out)), 0);
	CHECK_EQ(line_dir_next_us(&d, due - 1), due);
	CHECK_EQ(line_dir_take(&d, due, out, sizeof(out)), 1);
	CHECK_EQ(out[0], 0x5a);
	CHECK_EQ(line_dir_next_us(&d, due), UINT64_MAX);
	line_dir_free(&d);

	/* A stream: every byte arrives no sooner than the latency after its last bit. */
	static uint8_t in[3000], got[3000];
	fill(in, sizeof(in), 3);
	p = params(38400, 100, 0, 0);
	CHECK_EQ(line_dir_init(&d, &p, 1), 0);
	size_t put = 0, n = 0;
	for (uint64_t now = 0; n < sizeof(in); now += 100) {
		size_t k = line_dir_take(&d, now, got + n, sizeof(got) - n);
		/* Byte i left the wire at (i + 1) * 10 / 38400 s at the earliest. */
		if (k)
			CHECK((double)now >= 100000 + (double)(n + k) * 1e7 / 38400 - 1);
		n += k;
		put += line_dir_put(&d, in + put, sizeof(in) - put, now);
		if (now > 10000000)
			break;
	}
	CHECK_EQ(n, sizeof(in));
	CHECK_MEM(got, in, sizeof(in));
	line_dir_free(&d);
}

static void test_clean(void)
{
	static uint8_t in[100000], out[100000];
	struct line_params p = params(115200, 20, 0, 0);
	struct line_dir d;

	fill(in, sizeof(in), 11);
	CHECK_EQ(line_dir_init(&d, &p, 0), 0);
	CHECK_EQ(stream(&d, in, sizeof(in), out, sizeof(out), 5, 1000), sizeof(in));
	CHECK_MEM(out, in, sizeof(in));
	struct line_stats s = line_dir_stats(&d);
	CHECK_EQ(s.carried, sizeof(in));
	CHECK_EQ(s.flipped_bits, 0);
	CHECK_EQ(s.dropped, 0);
	CHECK_EQ(s.cut_lost, 0);
	line_dir_free(&d);
}

static void test_ber(void)
{
	/* 10^6 data bits at BER 1e-3: 1000 flips expected, sd 31.6; the bound is 6 sd wide. */
	static uint8_t in[125000], out[125000];
	struct line_params p = params(1000000, 0, 1e-3, 0);
	struct line_dir d;

	fill(in, sizeof(in), 5);
	CHECK_EQ(line_dir_init(&d, &p, 0), 0);
	CHECK_EQ(stream(&d, in, sizeof(in), out, sizeof(out), 0, 1000), sizeof(in));
	uint64_t diff = 0;
	for (size_t i = 0; i < sizeof(in); i++)
		diff += popcount8(in[i] ^ out[i]);
	struct line_stats s = line_dir_stats(&d);
	CHECK_EQ(s.flipped_bits, diff);
	CHECK(diff >= 810 && diff <= 1190);
	line_dir_free(&d);

	/* A tiny BER costs nothing per byte and flips about what it should. */
	p = params(1000000, 0, 1e-6, 0);
	CHECK_EQ(line_dir_init(&d, &p, 0), 0);
	for (int round = 0; round < 80; round++) /* 10^8 bits: 100 expected */
		CHECK_EQ(stream(&d, in, sizeof(in), out, sizeof(out), 0, 100000), sizeof(in));
	s = line_dir_stats(&d);
	CHECK(s.flipped_bits >= 50 && s.flipped_bits <= 150);
	line_dir_free(&d);
}

static void damaged(const struct line_params *p, unsigned which, const uint8_t *in, size_t n,
		    uint8_t *out, uint64_t step, size_t *got)
{
	struct line_dir d;
	CHECK_EQ(line_dir_init(&d, p, which), 0);
	*got = stream(&d, in, n, out, n, 0, step);
	line_dir_free(&d);
}

static void test_same_seed(void)
{
	static uint8_t in[20000], a[20000], b[20000], c[20000];
	struct line_params p = params(57600, 30, 1e-3, 0.01);
	size_t na, nb, nc;

	fill(in, sizeof(in), 9);
	/* Same seed, different timing: the same damage. */
	damaged(&p, 0, in, sizeof(in), a, 50, &na);
	damaged(&p, 0, in, sizeof(in), b, 7919, &nb);
	CHECK_EQ(na, nb);
	CHECK(na < sizeof(in));
	CHECK_MEM(a, b, na);
	/* The other direction and another seed: other damage. */
	damaged(&p, 1, in, sizeof(in), c, 50, &nc);
	CHECK(nc != na || memcmp(a, c, na) != 0);
	p.seed = 2;
	damaged(&p, 0, in, sizeof(in), c, 50, &nc);
	CHECK(nc != na || memcmp(a, c, na) != 0);
	/* Drops do not move the bit flips: with drop 0, the flips of seed 1 are where they were. */
	p.seed = 1;
	p.drop = 0;
	damaged(&p, 0, in, sizeof(in), c, 50, &nc);
	CHECK_EQ(nc, sizeof(in));
	/* a is c with bytes left out (greedy matching finds a subsequence if there is one). */
	size_t j = 0;
	for (size_t i = 0; i < nc && j < na; i++)
		if (a[j] == c[i])
			j++;
	CHECK_EQ(j, na);
}

static void test_cut(void)
{
	uint8_t in[250], out[250];
	struct line_params p = params(9600, 10, 0, 0);
	struct line_dir d;
	uint64_t now = 0;
	size_t got = 0;

	fill(in, sizeof(in), 13);
	CHECK_EQ(line_dir_init(&d, &p, 0), 0);
	size_t put = 0;
	for (; put < 250; now += 500) {
		line_dir_set_cut(&d, put >= 100 && put < 150);
		size_t room = line_dir_room(&d, now);
		/* One byte at a time, so the cut falls exactly on bytes 100..149. */
		if (room)
			put += line_dir_put(&d, in + put, 1, now);
		got += line_dir_take(&d, now, out + got, sizeof(out) - got);
	}
	line_dir_set_cut(&d, false);
	for (; line_dir_next_us(&d, now) != UINT64_MAX; now += 500)
		got += line_dir_take(&d, now, out + got, sizeof(out) - got);
	CHECK_EQ(got, 200);
	CHECK_MEM(out, in, 100);
	CHECK_MEM(out + 100, in + 150, 100);
	struct line_stats s = line_dir_stats(&d);
	CHECK_EQ(s.cut_lost, 50);
	CHECK_EQ(s.carried, 200);
	line_dir_free(&d);

	/* A cut loses bytes but not wire time: the writer still goes at the line rate. */
	CHECK_EQ(line_dir_init(&d, &p, 0), 0);
	line_dir_set_cut(&d, true);
	put = 0;
	for (now = 0; now <= 1000000; now += 1000)
		put += line_dir_put(&d, in, sizeof(in), now);
	CHECK(put <= 960 + LINE_BURST_MIN + 1);
	CHECK(put >= 950);
	CHECK_EQ(line_dir_take(&d, now + 1000000, out, sizeof(out)), 0);
	CHECK_EQ(line_dir_stats(&d).cut_lost, put);
	line_dir_free(&d);
}

static void test_drop(void)
{
	static uint8_t in[100000], out[100000];
	struct line_params p = params(1000000, 5, 0, 0.01);
	struct line_dir d;

	fill(in, sizeof(in), 17);
	CHECK_EQ(line_dir_init(&d, &p, 0), 0);
	size_t got = stream(&d, in, sizeof(in), out, sizeof(out), 0, 1000);
	struct line_stats s = line_dir_stats(&d);
	CHECK_EQ(s.carried, got);
	CHECK_EQ(s.carried + s.dropped, sizeof(in));
	/* 1000 expected, sd 31.5. */
	CHECK(s.dropped >= 810 && s.dropped <= 1190);
	/* What arrives is the stream with bytes left out, in order. */
	size_t j = 0;
	for (size_t i = 0; i < sizeof(in) && j < got; i++)
		if (in[i] == out[j])
			j++;
	CHECK_EQ(j, got);
	line_dir_free(&d);
}

static void test_bounded(void)
{
	/* A taker that never takes: the ring fills, then the room is 0 and stays so. */
	struct line_params p = params(9600, 1000, 0, 0);
	struct line_dir d;
	uint8_t in[64] = {0};
	size_t put = 0;

	CHECK_EQ(line_dir_init(&d, &p, 0), 0);
	uint64_t now;
	for (now = 0; now < 60000000; now += 10000)
		put += line_dir_put(&d, in, sizeof(in), now);
	/* 960 bytes a second in flight for 1 s, plus the burst and a little slack. */
	CHECK(put <= 960 + 16 + 16 + 2);
	CHECK(put >= 960);
	CHECK_EQ(line_dir_room(&d, now), 0);
	CHECK_EQ(line_dir_next_us(&d, now), now);
	uint8_t out[2000];
	CHECK_EQ(line_dir_take(&d, now, out, sizeof(out)), put);
	CHECK(line_dir_room(&d, now) > 0);
	line_dir_free(&d);

	/* The room comes back when next_us says. */
	p = params(9600, 0, 0, 0);
	CHECK_EQ(line_dir_init(&d, &p, 0), 0);
	CHECK_EQ(line_dir_put(&d, in, sizeof(in), 0), LINE_BURST_MIN);
	CHECK_EQ(line_dir_room(&d, 0), 0);
	uint64_t t = line_dir_next_us(&d, 0);
	CHECK(t > 0 && t != UINT64_MAX);
	CHECK(line_dir_room(&d, t) > 0);
	CHECK_EQ(line_dir_room(&d, t - 1), 0);
	line_dir_free(&d);
}

static void test_long_idle(void)
{
	/* Bytes left untaken across an idle gap of days (beyond 2^32 ticks) still come in order. */
	struct line_params p = params(115200, 500, 0, 0);
	struct line_dir d;
	uint8_t out[8];
	uint64_t day = 86400ull * 1000000;

	CHECK_EQ(line_dir_init(&d, &p, 0), 0);
	CHECK_EQ(line_dir_put(&d, (const uint8_t *)"ab", 2, 0), 2);
	CHECK_EQ(line_dir_put(&d, (const uint8_t *)"cd", 2, 2 * day), 2);
	CHECK_EQ(line_dir_next_us(&d, 2 * day), 2 * day);
	CHECK_EQ(line_dir_take(&d, 2 * day, out, sizeof(out)), 2);
	CHECK_MEM(out, "ab", 2);
	CHECK_EQ(line_dir_take(&d, 2 * day + 500000, out, sizeof(out)), 0);
	CHECK_EQ(line_dir_take(&d, 2 * day + 501000, out, sizeof(out)), 2);
	CHECK_MEM(out, "cd", 2);
	line_dir_free(&d);
}

static void test_bad_params(void)
{
	struct line_params good = params(9600, 0, 0, 0), p;
	struct line_dir d;

#define BAD(field, value)                                                                          \
	do {                                                                                       \
		p = good;                                                                          \
		p.field = value;                                                                   \
		CHECK_EQ(line_dir_init(&d, &p, 0), -EINVAL);                                       \
		line_dir_free(&d);                                                                 \
	} while (0)
	BAD(baud, 0);
	BAD(baud, LINE_BAUD_MAX + 1);
	BAD(bits_per_byte, 6);
	BAD(bits_per_byte, 13);
	BAD(latency_ms, LINE_LATENCY_MS_MAX + 1);
	BAD(ber, -0.1);
	BAD(ber, 1.0);
	BAD(ber, NAN);
	BAD(drop, 1.0);
	BAD(drop, -1e-9);
	BAD(drop, NAN);
#undef BAD
	CHECK_EQ(line_dir_init(&d, &good, 2), -EINVAL);
	/* Four megabaud for ten minutes is 240 MB in flight: refused, not allocated. */
	p = params(LINE_BAUD_MAX, LINE_LATENCY_MS_MAX, 0, 0);
	CHECK_EQ(line_dir_init(&d, &p, 0), -EINVAL);
	/* The edges that are allowed. */
	p = params(9600, LINE_LATENCY_MS_MAX, 0.999, 0.999);
	p.bits_per_byte = 7;
	CHECK_EQ(line_dir_init(&d, &p, 1), 0);
	line_dir_free(&d);
	p = params(LINE_BAUD_MAX, 1000, 0, 0);
	p.bits_per_byte = 12;
	CHECK_EQ(line_dir_init(&d, &p, 0), 0);
	line_dir_free(&d);
	line_dir_free(&d);
	line_dir_free(NULL);
}

/* A greedy writer that wakes only every 3 ms still has the line carry its rate. */
static void test_late_wakeups(void)
{
	struct line_params p = params(115200, 0, 0, 0);
	struct line_dir d;
	static uint8_t in[20000], out[20000];
	size_t put = 0, got = 0;
	CHECK_EQ(line_dir_init(&d, &p, 0), 0);
	for (uint64_t now = 0; now <= 1000000; now += 3000) {
		got += line_dir_take(&d, now, out, sizeof(out));
		put += line_dir_put(&d, in, sizeof(in) - put, now);
	}
	/* 11,520 bytes a second: all of them but the last wakeup's, never more. */
	CHECK(got >= 11520 - 40 && got <= 11520 + 1);
	/* An idle line starts when the byte comes, not in the past. */
	uint8_t b = 1;
	CHECK_EQ(line_dir_take(&d, 3000000, out, sizeof(out)), put - got);
	CHECK_EQ(line_dir_put(&d, &b, 1, 3000000), 1);
	CHECK_EQ(line_dir_take(&d, 3000000 + 86, out, sizeof(out)), 0);
	CHECK_EQ(line_dir_take(&d, 3000000 + 87, out, sizeof(out)), 1);
	line_dir_free(&d);
}

int main(void)
{
	test_rate();
	test_late_wakeups();
	test_latency();
	test_clean();
	test_ber();
	test_same_seed();
	test_cut();
	test_drop();
	test_bounded();
	test_long_idle();
	test_bad_params();
	TEST_MAIN_END();
}
