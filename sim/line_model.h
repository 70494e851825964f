/* One direction of a serial line as a sans-I/O model: rate, latency, bit errors, drops and cuts. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sim/rng.h"

#define LINE_BAUD_MAX	    4000000u
#define LINE_LATENCY_MS_MAX 600000u	/* ten minutes */
#define LINE_INFLIGHT_MAX   (16u << 20) /* bytes in flight (latency x rate): 16 MiB */
#define LINE_BURST_MIN	    16u		/* bytes the sender may queue ahead, like a UART FIFO */

struct line_params {
	uint32_t baud;	       /* bits per second on the wire: 1..LINE_BAUD_MAX */
	uint8_t bits_per_byte; /* wire bits per byte, start and stop bits too: 10 for 8N1; 7..12 */
	uint32_t latency_ms;   /* one way, from a byte's last bit leaving: 0..LINE_LATENCY_MS_MAX */
	double ber;	       /* each of a byte's 8 data bits flipped independently: [0, 1) */
	double drop;	       /* each byte lost: [0, 1) */
	uint64_t seed;
};

struct line_stats {
	uint64_t carried;      /* bytes taken at the far end */
	uint64_t flipped_bits; /* bits flipped in bytes that were neither dropped nor cut */
	uint64_t dropped;      /* bytes lost to the drop probability */
	uint64_t cut_lost;     /* bytes put while the line was cut */
};

/*
 * One direction of a line. The fields are private (use the functions); the struct is in the
 * header so that a caller can hold one by value. Time is in ticks of 1/baud seconds inside.
 */
struct line_dir {
	uint64_t baud, bits, latency_us, burst;
	uint64_t slack; /* ticks a line stays busy through a late caller (wire_start) */
	bool full;	/* the last put took all the room */
	double log_keep_bit, log_keep_byte; /* log(1 - ber), log(1 - drop) */
	struct sim_rng flip_rng, drop_rng;
	uint64_t bit_pos, next_flip;  /* data bits put so far; index of the next flipped one */
	uint64_t byte_pos, next_drop; /* bytes put so far; index of the next dropped one */
	bool cut;
	uint64_t wire_free; /* tick at which the last byte put has left the wire */
	/* In flight: a ring of bytes, each with its finish tick minus the previous byte's. */
	uint8_t *buf;
	uint32_t *dt;
	size_t cap, head, count;
	size_t ready;  /* bytes at the head known to have arrived, whatever their ticks */
	uint64_t ref;  /* finish tick of the byte at head + ready */
	uint64_t last; /* finish tick of the last byte in the ring */
	struct line_stats stats;
};

/*
 * Sets d up for one direction of a line with parameters p; which (0 or 1) picks a random
 * stream of its own, so the two directions of one seed are damaged differently. Returns 0,
 * -EINVAL if a parameter is out of its range above or latency x rate exceeds
 * LINE_INFLIGHT_MAX bytes, or -ENOMEM. On failure line_dir_free(d) is still safe. The ring of
 * bytes in flight is allocated here, once: nothing grows afterwards.
 */
int line_dir_init(struct line_dir *d, const struct line_params *p, unsigned which);

/* Frees what line_dir_init allocated; a no-op for NULL or a zeroed or freed line_dir. */
void line_dir_free(struct line_dir *d);

/*
 * In all the calls below now_us is the caller's clock (real or virtual), in microseconds;
 * it must never decrease from one call to the next.
 */

/*
 * How many bytes the line accepts at now_us. A byte takes bits_per_byte/baud seconds on the
 * wire, one after the other; the sender may queue at most burst bytes ahead of the wire
 * (LINE_BURST_MIN, or 2 ms of bytes when that is more), so that a writer feels the line
 * rate as back-pressure. A caller whose last put filled the room and who comes back late,
 * by up to 5 ms (or 16 bytes' time) after the wire went idle, finds the bytes it would
 * have sent meanwhile, as a UART's FIFO would have sent them. Also
 * never more than the free room in the ring of bytes in flight, which fills only when the caller
 * stops taking.
 */
size_t line_dir_room(const struct line_dir *d, uint64_t now_us);

/*
 * Puts bytes onto the wire at now_us and returns how many were accepted: min(n, room). Each
 * byte is damaged by a function of the seed and its index in the stream alone (never of the
 * timing): its data bits flipped with probability ber, the byte dropped with probability
 * drop. Bytes put while the line is cut take their time on the wire and are lost.
 */
size_t line_dir_put(struct line_dir *d, const uint8_t *buf, size_t n, uint64_t now_us);

/*
 * Copies into out (at most cap) the bytes that have arrived by now_us, in order, and returns
 * their count. A byte arrives latency_ms after its last bit left the wire.
 */
size_t line_dir_take(struct line_dir *d, uint64_t now_us, uint8_t *out, size_t cap);

/*
 * When the caller next has something to do: now_us if a byte has arrived and is waiting to be
 * taken, else the next arrival, or, if the room is 0 now, when it becomes non-zero, whichever
 * comes first. UINT64_MAX if nothing is in flight and there is room: only a new put can
 * change anything then. So an event loop can sleep exactly until then.
 */
uint64_t line_dir_next_us(const struct line_dir *d, uint64_t now_us);

/* Cuts the line (cut) or mends it (!cut): see line_dir_put. Bytes already in flight arrive. */
void line_dir_set_cut(struct line_dir *d, bool cut);

/* The counters so far. */
struct line_stats line_dir_stats(const struct line_dir *d);
