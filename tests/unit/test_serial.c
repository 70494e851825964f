/* Serial frames and ARQ: two ARQs over a virtual line with a rate, latency, bit errors and cuts. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "crypto/crypto.h"
#include "test.h"
#include "transports/serial.h"

/* ---- frames ---- */

struct got {
	uint8_t body[8][SERIAL_BODY_MAX];
	size_t len[8], n;
};

static int keep(void *ctx, const uint8_t *body, size_t len)
{
	struct got *g = ctx;
	if (g->n < 8) {
		memcpy(g->body[g->n], body, len);
		g->len[g->n++] = len;
	}
	return 0;
}

static void test_frames(void)
{
	uint8_t body[SERIAL_BODY_MAX], wire[4 * SERIAL_WIRE_MAX];
	struct serial_deframer d;
	struct got g = {0};
	/* Zeros, runs of 254 and 255 non-zero bytes, the largest body. */
	size_t lens[] = {1, 2, 254, 255, 256, 508, SERIAL_BODY_MAX};
	for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
		for (size_t i = 0; i < lens[k]; i++)
			body[i] = (uint8_t)(k == 0 ? 0 : i % 7 == 3 && k < 3 ? 0 : 1 + i % 250);
		size_t n = serial_frame_wrap(body, lens[k], wire);
		CHECK(n <= SERIAL_WIRE_MAX);
		CHECK(memchr(wire, 0, n - 1) == NULL);
		CHECK_EQ(wire[n - 1], 0);
		serial_deframer_init(&d);
		g.n = 0;
		uint8_t lead = 0;
		serial_deframe(&d, &lead, 1, keep, &g);
		CHECK_EQ(serial_deframe(&d, wire, n, keep, &g), 0);
		CHECK_EQ(g.n, 1);
		CHECK_EQ(g.len[0], lens[k]);
		CHECK_MEM(g.body[0], body, lens[k]);
	}
	/* Noise before the first delimiter, a flipped byte, a frame too long: all dropped. */
	serial_deframer_init(&d);
	g.n = 0;
	uint8_t junk[] = {1, 2, 3, 4, 5};
	serial_deframe(&d, junk, sizeof(junk), keep, &g);
	memcpy(body, "hello", 5);
	size_t n = serial_frame_wrap(body, 5, wire);
	serial_deframe(&d, wire, n, keep, &g);
	CHECK_EQ(g.n, 0); /* before the first delimiter: skipped, perhaps half a frame */
	CHECK_EQ(d.bad, 0);
	serial_deframe(&d, wire, n, keep, &g);
	CHECK_EQ(g.n, 1);
	wire[2] ^= 0x10;
	serial_deframe(&d, wire, n, keep, &g);
	CHECK_EQ(g.n, 1);
	CHECK_EQ(d.bad, 1);
	uint8_t ff[SERIAL_WIRE_MAX + 10];
	memset(ff, 0xff, sizeof(ff));
	serial_deframe(&d, ff, sizeof(ff), keep, &g);
	uint8_t z = 0;
	serial_deframe(&d, &z, 1, keep, &g);
	CHECK_EQ(g.n, 1);
	CHECK_EQ(d.bad, 2);
	wire[2] ^= 0x10;
	serial_deframe(&d, wire, n, keep, &g);
	CHECK_EQ(g.n, 2);
	CHECK_EQ(d.good, 2);
}

/* ---- a virtual line ---- */

#define LINE_CAP (1u << 20)

struct dir {
	uint8_t *buf;
	uint64_t *at; /* when each byte arrives */
	size_t head, len;
	uint64_t free_ms; /* the wire is busy until then (thousandths of a ms) */
};

struct line {
	uint32_t rate;
	uint64_t latency_ms;
	uint64_t rng;
	double ber;
	uint64_t cut_from, cut_to; /* [from, to) ms: everything is lost */
	struct dir d[2];
	uint64_t flipped;
};

static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void line_init(struct line *l, uint32_t rate, uint64_t latency_ms, double ber)
{
	memset(l, 0, sizeof(*l));
	l->rate = rate;
	l->latency_ms = latency_ms;
	l->ber = ber;
	l->rng = 42;
	for (int i = 0; i < 2; i++) {
		l->d[i].buf = malloc(LINE_CAP);
		l->d[i].at = malloc(LINE_CAP * sizeof(uint64_t));
	}
}

static void line_free(struct line *l)
{
	for (int i = 0; i < 2; i++) {
		free(l->d[i].buf);
		free(l->d[i].at);
	}
}

/* Bytes onto the wire from side i at now: each takes 1/rate s after the one before. */
static void line_put(struct line *l, int i, const uint8_t *buf, size_t n, uint64_t now_ms)
{
	struct dir *d = &l->d[i];
	if (d->free_ms < now_ms * 1000)
		d->free_ms = now_ms * 1000;
	for (size_t k = 0; k < n; k++) {
		d->free_ms += 1000000 / l->rate;
		uint64_t done = d->free_ms / 1000;
		if (done >= l->cut_from && done < l->cut_to)
			continue;
		uint8_t b = buf[k];
		for (int bit = 0; bit < 8 && l->ber > 0; bit++) {
			if ((double)(rng_next(&l->rng) >> 11) / 9007199254740992.0 < l->ber) {
				b ^= (uint8_t)(1u << bit);
				l->flipped++;
			}
		}
		size_t at = (d->head + d->len) % LINE_CAP;
		d->buf[at] = b;
		d->at[at] = done + l->latency_ms;
		d->len++;
	}
}

struct side {
	struct serial_arq *a;
	uint8_t *got;
	size_t got_len, got_cap;
	int resets;
};

static int collect(void *ctx, const uint8_t *buf, size_t len)
{
	struct side *s = ctx;
	if (s->got_len + len <= s->got_cap)
		memcpy(s->got + s->got_len, buf, len);
	s->got_len += len;
	return 0;
}

/* Delivers what has arrived at side i by now. */
static void line_deliver(struct line *l, int from, struct side *to, uint64_t now_ms)
{
	struct dir *d = &l->d[from];
	uint8_t tmp[4096];
	while (d->len && d->at[d->head] <= now_ms) {
		size_t n = 0;
		while (d->len && d->at[d->head] <= now_ms && n < sizeof(tmp)) {
			tmp[n++] = d->buf[d->head];
			d->head = (d->head + 1) % LINE_CAP;
			d->len--;
		}
		if (serial_arq_input(to->a, tmp, n, now_ms, collect, to) == -ECONNRESET)
			to->resets++;
	}
}

/* Writes side s's source bytes into its ARQ as room allows. */
static void feed(struct side *s, const uint8_t *src, size_t len, size_t *fed)
{
	if (*fed < len)
		*fed += serial_arq_write(s->a, src + *fed, len - *fed);
}

struct run {
	struct line l;
	struct side s[2];
	const uint8_t *src[2];
	size_t len[2], fed[2];
	uint64_t now;
};

/* Runs the two sides until both have everything, or until limit_ms. Returns the time. */
static uint64_t run_until(struct run *r, uint64_t limit_ms)
{
	while (r->now < limit_ms) {
		for (int i = 0; i < 2; i++) {
			line_deliver(&r->l, 1 - i, &r->s[i], r->now);
			feed(&r->s[i], r->src[i], r->len[i], &r->fed[i]);
			const uint8_t *out;
			size_t n;
			while ((n = serial_arq_output(r->s[i].a, r->now, &out)) > 0) {
				line_put(&r->l, i, out, n, r->now);
				serial_arq_consumed(r->s[i].a, n);
				feed(&r->s[i], r->src[i], r->len[i], &r->fed[i]);
			}
		}
		if (r->s[0].got_len >= r->len[1] && r->s[1].got_len >= r->len[0] &&
		    serial_arq_idle(r->s[0].a) && serial_arq_idle(r->s[1].a))
			return r->now;
		uint64_t next = UINT64_MAX;
		for (int i = 0; i < 2; i++) {
			uint64_t due = serial_arq_deadline(r->s[i].a, r->now);
			if (due < next)
				next = due;
			if (r->l.d[i].len && r->l.d[i].at[r->l.d[i].head] < next)
				next = r->l.d[i].at[r->l.d[i].head];
		}
		CHECK(next >= r->now);
		if (next == UINT64_MAX)
			break;
		r->now = next > r->now ? next : r->now + 1;
	}
	return r->now;
}

/* The same bytes every run, so that the figures printed are the same every run. */
static uint8_t *random_bytes(size_t n)
{
	uint8_t *b = malloc(n);
	uint64_t seed = n;
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)rng_next(&seed);
	return b;
}

static void run_init(struct run *r, uint32_t rate, uint64_t latency, double ber, size_t len0,
		     size_t len1, bool fixed)
{
	memset(r, 0, sizeof(*r));
	line_init(&r->l, rate, latency, ber);
	struct serial_arq_params p = {.rate_Bps = rate, .fixed_payload = fixed};
	for (int i = 0; i < 2; i++) {
		CHECK_EQ(serial_arq_new(&p, 1000 + (uint64_t)i, 0, &r->s[i].a), 0);
		r->len[i] = i ? len1 : len0;
		r->src[i] = random_bytes(r->len[i] ? r->len[i] : 1);
		r->s[i].got_cap = i ? len0 : len1;
		r->s[i].got = malloc(r->s[i].got_cap + 1);
	}
	r->l.cut_to = 0;
}

static void run_free(struct run *r)
{
	for (int i = 0; i < 2; i++) {
		serial_arq_free(r->s[i].a);
		free((void *)r->src[i]);
		free(r->s[i].got);
	}
	line_free(&r->l);
}

static void check_delivered(struct run *r)
{
	CHECK_EQ(r->s[1].got_len, r->len[0]);
	CHECK_EQ(r->s[0].got_len, r->len[1]);
	CHECK(memcmp(r->s[1].got, r->src[0], r->len[0]) == 0);
	CHECK(memcmp(r->s[0].got, r->src[1], r->len[1]) == 0);
}

static void test_clean(void)
{
	/* 9600 baud, 8N1: 960 bytes/s; 64 KiB one way and 16 KiB back, both at once. */
	struct run r;
	run_init(&r, 960, 50, 0, 64 * 1024, 16 * 1024, false);
	uint64_t t = run_until(&r, 600 * 1000);
	check_delivered(&r);
	struct serial_arq_stats st;
	serial_arq_stats(r.s[0].a, &st);
	CHECK_EQ(st.frames_resent, 0);
	CHECK_EQ(st.frames_bad, 0);
	/* The goodput of the busier direction, as a share of the line (deterministic time). */
	double share = (double)r.len[0] / ((double)t / 1000.0) / 960.0;
	printf("clean: 64 KiB in %.1f s: %.3f of the line, window %u, srtt %u ms\n", t / 1000.0,
	       share, st.window, st.srtt_ms);
	CHECK(share > 0.90);
	run_free(&r);
}

static void test_errors(void)
{
	/* BER 1e-4 (a bad line): a 1 KiB frame is lost more often than not; frames shrink. */
	struct run r;
	run_init(&r, 960, 50, 1e-4, 32 * 1024, 4 * 1024, false);
	uint64_t t = run_until(&r, 3600 * 1000);
	check_delivered(&r);
	struct serial_arq_stats st[2];
	serial_arq_stats(r.s[0].a, &st[0]);
	serial_arq_stats(r.s[1].a, &st[1]);
	CHECK(r.l.flipped > 0);
	CHECK(st[0].frames_resent > 0);
	CHECK(st[1].frames_bad > 0);
	CHECK(st[0].payload < SERIAL_PAYLOAD_MAX);
	double share = (double)r.len[0] / ((double)t / 1000.0) / 960.0;
	printf("ber 1e-4: %.3f of the line, payload %u, %llu resent, %llu flipped bits\n", share,
	       st[0].payload, (unsigned long long)st[0].frames_resent,
	       (unsigned long long)r.l.flipped);
	run_free(&r);
	/* At 1e-5 the goal of docs/serial.md: 0.80 of the line at least. */
	run_init(&r, 960, 50, 1e-5, 64 * 1024, 0, false);
	t = run_until(&r, 3600 * 1000);
	check_delivered(&r);
	share = (double)r.len[0] / ((double)t / 1000.0) / 960.0;
	serial_arq_stats(r.s[0].a, &st[0]);
	printf("ber 1e-5: %.3f of the line, payload %u\n", share, st[0].payload);
	CHECK(share > 0.80);
	run_free(&r);
}

static void test_cut(void)
{
	/* A 30 s cut in the middle: everything arrives; what was resent is about one window. */
	struct run r;
	run_init(&r, 960, 50, 0, 48 * 1024, 0, false);
	r.l.cut_from = 20 * 1000;
	r.l.cut_to = 50 * 1000;
	run_until(&r, 3600 * 1000);
	check_delivered(&r);
	struct serial_arq_stats st;
	serial_arq_stats(r.s[0].a, &st);
	printf("cut: %llu frames resent, window %u\n", (unsigned long long)st.frames_resent,
	       st.window);
	CHECK(st.frames_resent > 0);
	/* The window in flight at the cut, no more: timeouts send POLLs, not data. */
	CHECK(st.frames_resent <= (uint64_t)st.window);
	CHECK_EQ(r.s[0].resets + r.s[1].resets, 0);
	run_free(&r);
}

static void test_restart(void)
{
	struct run r;
	run_init(&r, 960, 20, 0, 16 * 1024, 0, false);
	run_until(&r, 5 * 1000);
	CHECK(serial_arq_established(r.s[1].a));
	CHECK(r.s[1].got_len > 0 && r.s[1].got_len < r.len[0]);
	/* Side 1 restarts (a new process: a new ARQ, a new nonce): side 0's stream ends. */
	serial_arq_free(r.s[1].a);
	struct serial_arq_params p = {.rate_Bps = 960};
	CHECK_EQ(serial_arq_new(&p, 77, r.now, &r.s[1].a), 0);
	r.s[1].got_len = 0;
	uint64_t limit = r.now + 10 * 1000;
	while (r.now < limit && !(r.s[0].resets && serial_arq_established(r.s[0].a) &&
				  serial_arq_established(r.s[1].a)))
		run_until(&r, r.now + 100);
	CHECK_EQ(r.s[0].resets, 1);
	CHECK(serial_arq_established(r.s[1].a));
	/* The new stream carries bytes from its start, the old one's left behind. */
	r.fed[0] = 0;
	run_until(&r, r.now + 120 * 1000);
	check_delivered(&r);
	/* This side resets its own stream (its session ended): the peer hears it. */
	serial_arq_reset(r.s[0].a, 99, r.now);
	CHECK(!serial_arq_established(r.s[0].a));
	limit = r.now + 10 * 1000;
	while (r.now < limit && !(r.s[1].resets && serial_arq_established(r.s[0].a) &&
				  serial_arq_established(r.s[1].a)))
		run_until(&r, r.now + 100);
	CHECK_EQ(r.s[1].resets, 1);
	CHECK(serial_arq_established(r.s[0].a));
	CHECK(serial_arq_established(r.s[1].a));
	run_free(&r);
}

static void test_params(void)
{
	struct serial_arq *a = NULL;
	struct serial_arq_params p = {.rate_Bps = 0};
	CHECK_EQ(serial_arq_new(&p, 1, 0, &a), -EINVAL);
	p.rate_Bps = 960;
	CHECK_EQ(serial_arq_new(&p, 0, 0, &a), -EINVAL);
	p.payload_max = SERIAL_PAYLOAD_MIN - 1;
	CHECK_EQ(serial_arq_new(&p, 1, 0, &a), -EINVAL);
	p.payload_max = SERIAL_PAYLOAD_MAX + 1;
	CHECK_EQ(serial_arq_new(&p, 1, 0, &a), -EINVAL);
	p.payload_max = 0;
	CHECK_EQ(serial_arq_new(&p, 1, 0, &a), 0);
	/* Not established: no stream bytes taken, a SYNC to send. */
	CHECK_EQ(serial_arq_room(a), 0);
	CHECK_EQ(serial_arq_write(a, (const uint8_t *)"x", 1), 0);
	const uint8_t *out;
	CHECK(serial_arq_output(a, 1000, &out) > 0);
	/* Garbage in: nothing breaks. */
	uint8_t junk[3000];
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)(i * 7 % 5);
	CHECK_EQ(serial_arq_input(a, junk, sizeof(junk), 1000, collect, NULL), 0);
	serial_arq_free(a);
	serial_arq_free(NULL);
}

int main(void)
{
	if (tern_crypto_init() < 0)
		return 1;
	test_frames();
	test_params();
	test_clean();
	test_errors();
	test_cut();
	test_restart();
	TEST_MAIN_END();
}
