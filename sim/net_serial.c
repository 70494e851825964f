/* tern-sim's serial links: the daemon's frames, ARQ and session over the line model. */
#include <errno.h>
#include <string.h>

#include "sim/sim.h"

/*
 * relay/daemon_serial.c binds a port to an ARQ stream and a Noise session in TCP_LINK_SERIAL
 * framing; here the port is the line model (sim/line_model.h), one line_dir each way, with the
 * link's rate, latency and bit errors. What each end writes goes through the real
 * serial_arq (transports/serial_arq.c, with serial_frame.c's COBS and CRC), so flipped bits are
 * found by the CRC and the frames sent again by the ARQ, as on a real line.
 *
 * The line takes bytes a UART FIFO at a time (16 bytes, or 2 ms of them), so both its ends
 * are looked at in gulps of that time: what is to be written goes when the FIFO has room
 * again, and what arrived is read a gulp at a time, as a UART's receive FIFO interrupts.
 * One event per link and gulp, not one per byte.
 */
#define US_PER_MS     1000ll
#define US_PER_S      1000000ll
#define BITS_PER_BYTE 10 /* 8N1 */
/* As relay/daemon_serial.c (UNSENT_LOW) and relay/daemon_conn.c (SERIAL_PUMP). */
#define UNSENT_LOW  4096
#define SERIAL_PUMP (16u * 1024)

static struct sim_node *end_node(struct sim_world *w, const struct sim_link *l, int side)
{
	return &w->nodes[side ? l->sl->b : l->sl->a];
}

static uint64_t now_ms(const struct sim_world *w)
{
	return (uint64_t)(w->now / US_PER_MS);
}

static bool alive(const struct sim_link *l, uint64_t gen)
{
	return l->connected && l->gen == gen;
}

static uint64_t nonce(struct sim_rng *r)
{
	uint64_t n;
	while ((n = sim_rng_next(r)) == 0)
		;
	return n;
}

/* The line's FIFO: 16 bytes, or 2 ms of bytes at high rates, as line_dir_init makes it. */
static int64_t gulp_us(uint64_t baud)
{
	uint64_t burst = baud * 2 / (1000 * BITS_PER_BYTE);
	if (burst < LINE_BURST_MIN)
		burst = LINE_BURST_MIN;
	return (int64_t)((burst * BITS_PER_BYTE * US_PER_S + baud - 1) / baud);
}

void sim_serial_free(struct sim_link *l)
{
	if (l->sl->kind != SCENARIO_LINK_SERIAL)
		return;
	for (int i = 0; i < 2; i++) {
		l->bits_flipped += line_dir_stats(&l->line[i]).flipped_bits;
		line_dir_free(&l->line[i]);
	}
	l->line_gen++;
	l->line_at = INT64_MAX;
}

int sim_serial_connect(struct sim_world *w, struct sim_link *l)
{
	const struct scenario_link *sl = l->sl;
	l->gen++;
	for (int side = 0; side < 2; side++) {
		struct sim_end *e = &l->end[side];
		e->inflight = 0;
		e->timer_at = INT64_MAX;
		e->received_seen = 0;
	}
	l->connected = true;
	l->sessions++;
	l->up_since = w->now;
	l->line_at = INT64_MAX;
	l->gulp_us = gulp_us(sl->rate_bps);
	struct sim_node *a = end_node(w, l, 0), *b = end_node(w, l, 1);
	l->caller = a->n.node_num < b->n.node_num ? 0 : 1;
	/* Each connection damages its bytes afresh: a seed of its own, drawn from the link's. */
	struct line_params lp = {
	    .baud = (uint32_t)sl->rate_bps,
	    .bits_per_byte = BITS_PER_BYTE,
	    .latency_ms = (uint32_t)(sl->latency_us / US_PER_MS),
	    .ber = sl->ber,
	    .seed = sim_rng_next(&l->line_rng),
	};
	struct serial_arq_params ap = {.rate_Bps = (uint32_t)(sl->rate_bps / BITS_PER_BYTE)};
	int ret = 0;
	for (int side = 0; side < 2 && ret == 0; side++) {
		struct sim_end *e = &l->end[side];
		struct sim_node *self = end_node(w, l, side), *peer = end_node(w, l, !side);
		ret = line_dir_init(&l->line[side], &lp, (unsigned)side);
		if (ret == 0)
			ret = serial_arq_new(&ap, nonce(&l->line_rng), now_ms(w), &e->arq);
		/* The caller's handshake waits in its transport until the stream is up. */
		if (ret == 0 && side == l->caller)
			ret =
			    tcp_new_initiator_on(TCP_LINK_SERIAL, self->n.id, &peer->pub, &e->tcp);
		else if (ret == 0)
			ret = tcp_new_responder_on(TCP_LINK_SERIAL, self->n.id, sim_end_lookup, e,
						   &e->tcp);
	}
	if (ret < 0) {
		sim_link_drop(w, l);
		return ret;
	}
	return sim_serial_service(w, l);
}

/* Stream bytes for end e's transport; its records go to the session. */
static int on_stream(void *ctx, const uint8_t *buf, size_t len)
{
	struct sim_end *e = ctx;
	return tcp_input(e->tcp, buf, len, sim_end_record, e);
}

/* Bytes that arrived at end side from the line. */
static int end_input(struct sim_world *w, struct sim_link *l, int side, const uint8_t *buf,
		     size_t len)
{
	struct sim_end *e = &l->end[side];
	sim_node_clock(w, end_node(w, l, side));
	int ret = serial_arq_input(e->arq, buf, len, now_ms(w), on_stream, e);
	/* The caller's session starts once the handshake is over, as conn_input does it. */
	if (ret == 0 && !e->ls && side == l->caller && tcp_established(e->tcp))
		ret = sim_end_start_session(w, e);
	/* The bundles of what arrived commit together, then their ACKs go (group commit). */
	if (ret == 0 && e->ls)
		ret = link_session_flush(e->ls);
	if (ret < 0)
		return sim_link_end_session(w, l, side, ret);
	return sim_link_stored_new(w, l, side);
}

/*
 * End side's transport into its ARQ stream, the session pumping transfer records while
 * little waits (as conn_service with daemon_serial_wants_pump), then the ARQ's frames onto
 * the line as far as its FIFO takes them.
 */
static int end_output(struct sim_world *w, struct sim_link *l, int side)
{
	struct sim_end *e = &l->end[side];
	for (;;) {
		const uint8_t *buf;
		size_t n, put;
		while ((n = tcp_output(e->tcp, &buf)) > 0 &&
		       (put = serial_arq_write(e->arq, buf, n)) > 0)
			tcp_consumed(e->tcp, put);
		if (n > 0 || !e->ls || !link_session_wants_pump(e->ls) ||
		    serial_arq_room(e->arq) < SERIAL_STREAM_SPACE - UNSENT_LOW)
			break;
		size_t made = 0;
		sim_node_clock(w, end_node(w, l, side));
		int ret = link_session_pump(e->ls, now_ms(w), SERIAL_PUMP, &made);
		if (ret < 0)
			return sim_link_end_session(w, l, side, ret);
		if (made == 0)
			break;
	}
	for (;;) {
		const uint8_t *buf;
		size_t n = serial_arq_output(e->arq, now_ms(w), &buf);
		size_t put = n ? line_dir_put(&l->line[side], buf, n, (uint64_t)w->now) : 0;
		if (put == 0)
			break;
		serial_arq_consumed(e->arq, put);
		l->bytes[side] += put;
		if (put < n)
			break;
	}
	return 0;
}

/* One look at the link: sessions' deadlines, what arrived, what is to be written. */
static int step(struct sim_world *w, struct sim_link *l)
{
	const uint64_t gen = l->gen;
	int ret;
	for (int side = 0; side < 2; side++) {
		struct sim_end *e = &l->end[side];
		if (!e->ls || link_session_deadline(e->ls) > now_ms(w))
			continue;
		sim_node_clock(w, end_node(w, l, side));
		if ((ret = link_session_tick(e->ls, now_ms(w))) < 0)
			return sim_link_end_session(w, l, side, ret);
	}
	for (int from = 0; from < 2; from++) {
		uint8_t buf[2048];
		size_t n;
		while ((n = line_dir_take(&l->line[from], (uint64_t)w->now, buf, sizeof(buf))) > 0)
			if ((ret = end_input(w, l, !from, buf, n)) < 0 || !alive(l, gen))
				return ret;
	}
	for (int side = 0; side < 2; side++)
		if ((ret = end_output(w, l, side)) < 0 || !alive(l, gen))
			return ret;
	return 0;
}

static int64_t later(int64_t a, int64_t b)
{
	return a > b ? a : b;
}

static int64_t earlier(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

static int64_t ms_to_us(uint64_t ms)
{
	return ms > (uint64_t)(INT64_MAX / US_PER_MS) ? INT64_MAX : (int64_t)ms * US_PER_MS;
}

/* The next look: a session's deadline, an ARQ's, the line's next gulp each way. */
static int schedule(struct sim_world *w, struct sim_link *l)
{
	const int64_t now = w->now, soon = now + US_PER_MS, gulp = now + l->gulp_us;
	int64_t next = INT64_MAX;
	for (int side = 0; side < 2; side++) {
		struct sim_end *e = &l->end[side];
		/* A deadline that is still now after its look would spin: the next is 1 ms on. */
		if (e->ls)
			next = earlier(next, later(ms_to_us(link_session_deadline(e->ls)), soon));
		int64_t t = later(ms_to_us(serial_arq_deadline(e->arq, now_ms(w))), soon);
		/* A full FIFO: the ARQ's next bytes go when it has drained. */
		if (line_dir_room(&l->line[side], (uint64_t)now) == 0)
			t = later(t, gulp);
		next = earlier(next, t);
		/* What end side sent arrives a gulp at a time. */
		uint64_t rx = line_dir_next_us(&l->line[side], (uint64_t)now);
		if (rx != UINT64_MAX)
			next = earlier(next, later((int64_t)rx, gulp));
	}
	if (next == l->line_at)
		return 0;
	l->line_at = next;
	if (next == INT64_MAX)
		return 0;
	struct sim_event ev = {
	    .at = next, .kind = EV_LINE, .a = l->index, .gen = l->gen, .gen2 = ++l->line_gen};
	return sim_queue_push(&w->q, ev);
}

int sim_serial_service(struct sim_world *w, struct sim_link *l)
{
	/* A session that stored something kicks its node's links, this one too: once more. */
	if (l->busy) {
		l->again = true;
		return 0;
	}
	const uint64_t gen = l->gen;
	int ret;
	l->busy = true;
	do {
		l->again = false;
		ret = step(w, l);
	} while (ret == 0 && l->again && alive(l, gen));
	l->busy = false;
	return ret == 0 && alive(l, gen) ? schedule(w, l) : ret;
}

int sim_serial_event(struct sim_world *w, const struct sim_event *ev)
{
	struct sim_link *l = &w->links[ev->a];
	if (!l->connected || ev->gen != l->gen || ev->gen2 != l->line_gen)
		return 0;
	l->line_at = INT64_MAX;
	return sim_serial_service(w, l);
}
