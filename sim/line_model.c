/* One direction of a serial line: bytes in at the line rate, out after the latency, damaged. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sim/line_model.h"

#define US_PER_S 1000000u

/*
 * How many unharmed trials come before the next harmed one, when each is harmed with
 * probability p (log_keep = log(1 - p)): geometric, so a low BER costs one draw per error and
 * nothing per bit. Saturates far beyond any stream.
 */
static uint64_t gap(struct sim_rng *r, double log_keep)
{
	double u = 1.0 - sim_rng_unit(r); /* (0, 1] */
	double k = floor(log(u) / log_keep);
	if (!(k < 0x1p62))
		return UINT64_C(1) << 62;
	return (uint64_t)k;
}

static uint64_t after(uint64_t pos, uint64_t skip)
{
	uint64_t next = pos + 1 + skip;
	return next < pos ? UINT64_MAX : next;
}

/* floor(us * baud / 10^6), without overflow. */
static uint64_t us_to_ticks(const struct line_dir *d, uint64_t us)
{
	return (us / US_PER_S) * d->baud + (us % US_PER_S) * d->baud / US_PER_S;
}

/* The first microsecond at which us_to_ticks reaches t: ceil(t * 10^6 / baud). */
static uint64_t ticks_to_us(const struct line_dir *d, uint64_t t)
{
	return (t / d->baud) * US_PER_S + ((t % d->baud) * US_PER_S + d->baud - 1) / d->baud;
}

static uint64_t arrival_us(const struct line_dir *d, uint64_t finish)
{
	return ticks_to_us(d, finish) + d->latency_us;
}

static bool in_range(double x)
{
	return x >= 0.0 && x < 1.0; /* false for NaN too */
}

int line_dir_init(struct line_dir *d, const struct line_params *p, unsigned which)
{
	memset(d, 0, sizeof(*d));
	if (p->baud == 0 || p->baud > LINE_BAUD_MAX || p->bits_per_byte < 7 ||
	    p->bits_per_byte > 12 || p->latency_ms > LINE_LATENCY_MS_MAX || !in_range(p->ber) ||
	    !in_range(p->drop) || which > 1)
		return -EINVAL;
	d->baud = p->baud;
	d->bits = p->bits_per_byte;
	d->latency_us = (uint64_t)p->latency_ms * 1000;
	d->burst = d->baud * 2 / (1000 * d->bits);
	if (d->burst < LINE_BURST_MIN)
		d->burst = LINE_BURST_MIN;
	/* 5 ms of late wakeup, at least a 16-byte FIFO's worth. */
	d->slack = d->baud * 5 / 1000;
	if (d->slack < 16 * d->bits)
		d->slack = 16 * d->bits;
	/*
	 * The bytes not yet arrived left the wire within the latency, or are at most burst bytes
	 * ahead of it: that many, plus slack for rounding, is all a prompt taker ever holds.
	 */
	uint64_t lat_ticks = us_to_ticks(d, d->latency_us) + 1;
	uint64_t cap = (lat_ticks + d->bits - 1) / d->bits + d->burst + 16;
	if (cap > LINE_INFLIGHT_MAX) {
		memset(d, 0, sizeof(*d));
		return -EINVAL;
	}
	d->buf = malloc(cap);
	d->dt = malloc(cap * sizeof(*d->dt));
	if (!d->buf || !d->dt) {
		line_dir_free(d);
		return -ENOMEM;
	}
	d->cap = cap;
	sim_rng_seed(&d->flip_rng, p->seed, 2 * which);
	sim_rng_seed(&d->drop_rng, p->seed, 2 * which + 1);
	d->next_flip = UINT64_MAX;
	d->next_drop = UINT64_MAX;
	if (p->ber > 0) {
		d->log_keep_bit = log1p(-p->ber);
		d->next_flip = gap(&d->flip_rng, d->log_keep_bit);
	}
	if (p->drop > 0) {
		d->log_keep_byte = log1p(-p->drop);
		d->next_drop = gap(&d->drop_rng, d->log_keep_byte);
	}
	return 0;
}

void line_dir_free(struct line_dir *d)
{
	if (!d)
		return;
	free(d->buf);
	free(d->dt);
	memset(d, 0, sizeof(*d));
}

/*
 * Where the next byte's wire time starts. A line whose last put took all the room (the
 * writer had more) and that went idle less than the slack ago stays busy from where it
 * stood: a caller that woke late (a timer's granularity, the
 * scheduler) finds the bytes a UART's FIFO would have sent on time meanwhile, so that the
 * line carries its rate whatever the caller's wakeups. Idle longer, the line starts now.
 */
static uint64_t wire_start(const struct line_dir *d, uint64_t now)
{
	if (d->wire_free >= now || (d->full && now - d->wire_free <= d->slack))
		return d->wire_free;
	return now;
}

size_t line_dir_room(const struct line_dir *d, uint64_t now_us)
{
	uint64_t now = us_to_ticks(d, now_us);
	uint64_t start = wire_start(d, now), limit = now + d->burst * d->bits;
	uint64_t room = start < limit ? (limit - start) / d->bits : 0;
	uint64_t free_ring = d->cap - d->count;
	return (size_t)(room < free_ring ? room : free_ring);
}

static void append(struct line_dir *d, uint8_t byte, uint64_t finish)
{
	size_t i = (d->head + d->count) % d->cap;
	d->buf[i] = byte;
	if (d->count == d->ready) {
		d->ref = finish;
	} else if (finish - d->last > UINT32_MAX) {
		/*
		 * After a gap this long every byte in the ring has arrived (the cap on latency
		 * keeps 2^32 ticks above latency plus burst): mark them so; this one is the new
		 * reference.
		 */
		d->ready = d->count;
		d->ref = finish;
	} else {
		d->dt[i] = (uint32_t)(finish - d->last);
	}
	d->last = finish;
	d->count++;
}

size_t line_dir_put(struct line_dir *d, const uint8_t *buf, size_t n, uint64_t now_us)
{
	size_t room = line_dir_room(d, now_us);
	if (n > room)
		n = room;
	bool full = n > 0 && n == room;
	if (n)
		d->wire_free = wire_start(d, us_to_ticks(d, now_us));
	for (size_t k = 0; k < n; k++) {
		uint8_t byte = buf[k];
		unsigned flips = 0;
		d->wire_free += d->bits;
		while (d->next_flip < d->bit_pos + 8) {
			byte ^= (uint8_t)(1u << (d->next_flip - d->bit_pos));
			flips++;
			d->next_flip = after(d->next_flip, gap(&d->flip_rng, d->log_keep_bit));
		}
		d->bit_pos += 8;
		bool dropped = d->byte_pos == d->next_drop;
		if (dropped)
			d->next_drop = after(d->next_drop, gap(&d->drop_rng, d->log_keep_byte));
		d->byte_pos++;
		/* The damage draws above run for lost bytes too: it stays a function of the index.
		 */
		if (d->cut) {
			d->stats.cut_lost++;
		} else if (dropped) {
			d->stats.dropped++;
		} else {
			d->stats.flipped_bits += flips;
			append(d, byte, d->wire_free);
		}
	}
	if (n)
		d->full = full;
	return n;
}

size_t line_dir_take(struct line_dir *d, uint64_t now_us, uint8_t *out, size_t cap)
{
	size_t n = 0;
	while (n < cap && d->count) {
		if (d->ready) {
			d->ready--;
		} else {
			if (arrival_us(d, d->ref) > now_us)
				break;
			if (d->count > 1)
				d->ref += d->dt[(d->head + 1) % d->cap];
		}
		out[n++] = d->buf[d->head];
		d->head = (d->head + 1) % d->cap;
		d->count--;
	}
	d->stats.carried += n;
	return n;
}

uint64_t line_dir_next_us(const struct line_dir *d, uint64_t now_us)
{
	if (d->ready)
		return now_us;
	uint64_t next = UINT64_MAX;
	if (d->count) {
		next = arrival_us(d, d->ref);
		if (next <= now_us)
			return now_us;
	}
	if (line_dir_room(d, now_us) == 0 && d->count < d->cap) {
		/* The wire is burst bytes ahead: room again when one fewer is still queued. */
		uint64_t t = ticks_to_us(d, d->wire_free - (d->burst - 1) * d->bits);
		if (t < next)
			next = t > now_us ? t : now_us;
	}
	return next;
}

void line_dir_set_cut(struct line_dir *d, bool cut)
{
	d->cut = cut;
}

struct line_stats line_dir_stats(const struct line_dir *d)
{
	return d->stats;
}
