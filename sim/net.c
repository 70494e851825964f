/* tern-sim's links: the real Noise transport and link sessions over a simulated line. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "relay/bundle.h"
#include "relay/link_msg.h"
#include "sim/sim.h"

/*
 * A connection is what relay/daemon_conn.c makes of a socket, with the socket replaced by a
 * line: bytes written are cut into chunks, each reaches the far end when the line has
 * clocked it out (rate) plus the latency. A sender keeps at most a window of bytes on the
 * line, as a TCP sender does, so a slow link holds its records back in the engine, where
 * urgent ones can overtake, and not in an unbounded buffer.
 */
#define CHUNK_MAX     (16u * 1024)
#define WINDOW_MIN    (16u * 1024 + BUNDLE_HEAD_MAX)
#define WINDOW_MAX    (4u * 1024 * 1024)
#define US_PER_MS     1000ll
#define US_PER_S      1000000ll
#define REDIAL_MIN_US US_PER_S
#define REDIAL_MAX_US (300 * US_PER_S)
/* A session that lasted this long was a success: the next failure backs off from the start. */
#define SESSION_GOOD_US (60 * US_PER_S)

static struct sim_node *end_node(struct sim_world *w, const struct sim_link *l, int side)
{
	return &w->nodes[side ? l->sl->b : l->sl->a];
}

static uint64_t now_ms(const struct sim_world *w)
{
	return (uint64_t)(w->now / US_PER_MS);
}

/* One second of the line, within bounds: enough to keep it busy, never unbounded. */
static uint64_t window(const struct sim_link *l)
{
	uint64_t win = l->sl->rate_bps / 8;
	return win < WINDOW_MIN ? WINDOW_MIN : win > WINDOW_MAX ? WINDOW_MAX : win;
}

/* What the serial limits of relay/daemon_config.c (daemon_session_limits) need. */
#define SERIAL_BITS_PER_BYTE 10

static int send_record(void *ctx, const uint8_t *rec, size_t len)
{
	struct sim_end *e = ctx;
	return tcp_send(e->tcp, rec, len);
}

int sim_end_lookup(void *ctx, const uint8_t box_pk[static 32], struct identity_public *peer)
{
	struct sim_end *e = ctx;
	const struct sim_node *caller = end_node(e->w, e->l, !e->side);
	if (memcmp(box_pk, caller->pub.box_pk, 32) != 0)
		return -ENOENT;
	*peer = caller->pub;
	return 0;
}

int sim_end_start_session(struct sim_world *w, struct sim_end *e)
{
	struct sim_node *self = end_node(w, e->l, e->side);
	struct store_peer peer;
	sim_node_as_peer(end_node(w, e->l, !e->side), &peer);
	struct link_limits lim;
	link_limits_default(&lim);
	lim.group_commit = true;
	if (e->l->sl->kind == SCENARIO_LINK_SERIAL) {
		/* As daemon_session_limits for a serial peer: short records, stages durable
		 * every ten seconds of the line, anything over 1 KiB staged. */
		uint64_t rate = e->l->sl->rate_bps / SERIAL_BITS_PER_BYTE;
		lim.max_record = LINK_RECORD_MIN;
		lim.stage_sync_bytes = rate * 10 > 8192 ? (uint32_t)(rate * 10) : 8192;
		lim.small_max = 1024;
	}
	int ret = link_session_new(&self->n, &peer, &lim, send_record, e, &e->ls);
	if (ret < 0)
		return ret;
	sim_node_clock(w, self);
	return link_session_start(e->ls, now_ms(w));
}

int sim_end_record(void *ctx, const uint8_t *rec, size_t len)
{
	struct sim_end *e = ctx;
	int ret = 0;
	/* The answering end starts its session on the caller's first record, as the daemon. */
	if (!e->ls && (ret = sim_end_start_session(e->w, e)) < 0)
		return ret;
	return link_session_input(e->ls, rec, len, now_ms(e->w));
}

static void end_free(struct sim_world *w, struct sim_link *l, int side)
{
	struct sim_end *e = &l->end[side];
	if (e->ls) {
		struct link_stats st;
		link_session_stats(e->ls, &st);
		w->hop_limited += st.hop_limited;
		sim_node_clock(w, end_node(w, l, side));
		link_session_free(e->ls);
	}
	if (e->arq) {
		struct serial_arq_stats st;
		serial_arq_stats(e->arq, &st);
		l->frames_out += st.frames_out;
		l->frames_resent += st.frames_resent;
		l->frames_in += st.frames_in;
		l->frames_bad += st.frames_bad;
		serial_arq_free(e->arq);
		e->arq = NULL;
	}
	tcp_free(e->tcp);
	e->ls = NULL;
	e->tcp = NULL;
	e->inflight = 0;
	e->timer_gen++;
	e->timer_at = INT64_MAX;
	e->received_seen = 0;
}

void sim_link_drop(struct sim_world *w, struct sim_link *l)
{
	if (!l->connected)
		return;
	end_free(w, l, 0);
	end_free(w, l, 1);
	sim_serial_free(l);
	l->connected = false;
	l->gen++; /* what is still on the line belongs to no one */
	l->up_total += w->now - l->up_since;
}

/* A session ended by one side: both go, and the dialer calls again later if it still can. */
int sim_link_end_session(struct sim_world *w, struct sim_link *l, int side, int err)
{
	struct sim_end *e = &l->end[side];
	bool good = w->now - l->up_since >= SESSION_GOOD_US;
	if (err != -ESHUTDOWN) {
		l->session_errors++;
		const char *why = e->ls ? link_session_why(e->ls) : "";
		snprintf(l->last_error, sizeof(l->last_error), "%s: %s",
			 end_node(w, l, side)->sn->name, why[0] ? why : strerror(-err));
	}
	sim_link_drop(w, l);
	if (good || err == -ESHUTDOWN)
		l->failures = 0;
	else if (l->failures < 16)
		l->failures++;
	int64_t wait = REDIAL_MIN_US << (l->failures ? l->failures - 1 : 0);
	if (wait > REDIAL_MAX_US)
		wait = REDIAL_MAX_US;
	l->redial_pending = true;
	struct sim_event ev = {.at = w->now + wait, .kind = EV_REDIAL, .a = l->index};
	return sim_queue_push(&w->q, ev);
}

/* Puts len bytes on the line from end side: they arrive when clocked out, plus the latency. */
static int transmit(struct sim_world *w, struct sim_link *l, int side, const uint8_t *buf,
		    size_t len)
{
	struct sim_end *e = &l->end[side];
	int64_t start = e->line_free > w->now ? e->line_free : w->now;
	int64_t tx_us =
	    (int64_t)(((uint64_t)len * 8 * US_PER_S + l->sl->rate_bps - 1) / l->sl->rate_bps);
	e->line_free = start + tx_us;
	struct sim_event ev = {.at = e->line_free + l->sl->latency_us,
			       .kind = EV_DATA,
			       .a = l->index,
			       .gen = l->gen,
			       .end = !side,
			       .len = len};
	ev.buf = malloc(len);
	if (!ev.buf)
		return -ENOMEM;
	memcpy(ev.buf, buf, len);
	e->inflight += len;
	l->bytes[side] += len;
	return sim_queue_push(&w->q, ev);
}

/* The next tick of end side's session, no earlier than not_before. */
static int arm_timer(struct sim_world *w, struct sim_link *l, int side, int64_t not_before)
{
	struct sim_end *e = &l->end[side];
	uint64_t due = e->ls ? link_session_deadline(e->ls) : UINT64_MAX;
	if (due == UINT64_MAX) {
		e->timer_at = INT64_MAX;
		return 0;
	}
	int64_t at = due > (uint64_t)(INT64_MAX / US_PER_MS) ? INT64_MAX : (int64_t)due * US_PER_MS;
	if (at < not_before)
		at = not_before;
	if (at == e->timer_at)
		return 0;
	e->timer_at = at;
	struct sim_event ev = {.at = at,
			       .kind = EV_TIMER,
			       .a = l->index,
			       .gen = l->gen,
			       .gen2 = ++e->timer_gen,
			       .end = side};
	return sim_queue_push(&w->q, ev);
}

/*
 * Writes what the transport holds while the window has room, then lets the engine pump
 * transfer records into the room left, as conn_service does with a socket's free space.
 * 0, or -errno for a fault of the simulator itself; a session that ends is not one.
 */
static int service(struct sim_world *w, struct sim_link *l, int side, int64_t timer_not_before)
{
	struct sim_end *e = &l->end[side];
	const uint64_t win = window(l);
	uint64_t gen = l->gen;
	int ret;
	for (;;) {
		const uint8_t *buf;
		size_t n;
		while ((n = tcp_output(e->tcp, &buf)) > 0 && e->inflight < win) {
			size_t chunk = n < CHUNK_MAX ? n : CHUNK_MAX;
			if ((ret = transmit(w, l, side, buf, chunk)) < 0)
				return ret;
			tcp_consumed(e->tcp, chunk);
		}
		if (n > 0 || !e->ls || e->inflight >= win || !link_session_wants_pump(e->ls))
			break;
		size_t made = 0;
		sim_node_clock(w, end_node(w, l, side));
		ret = link_session_pump(e->ls, now_ms(w), (size_t)(win - e->inflight), &made);
		if (ret < 0)
			return sim_link_end_session(w, l, side, ret);
		if (made == 0)
			break;
	}
	return l->connected && l->gen == gen ? arm_timer(w, l, side, timer_not_before) : 0;
}

static int connect_link(struct sim_world *w, struct sim_link *l)
{
	if (l->sl->kind == SCENARIO_LINK_SERIAL)
		return sim_serial_connect(w, l);
	struct sim_node *a = end_node(w, l, 0), *b = end_node(w, l, 1);
	l->gen++;
	for (int side = 0; side < 2; side++) {
		struct sim_end *e = &l->end[side];
		e->inflight = 0;
		e->line_free = w->now;
		e->timer_at = INT64_MAX;
		e->received_seen = 0;
	}
	int ret = tcp_new_initiator(a->n.id, &b->pub, &l->end[0].tcp);
	if (ret == 0)
		ret = tcp_new_responder(b->n.id, sim_end_lookup, &l->end[1], &l->end[1].tcp);
	if (ret < 0) {
		tcp_free(l->end[0].tcp);
		l->end[0].tcp = NULL;
		return ret;
	}
	l->connected = true;
	l->sessions++;
	l->up_since = w->now;
	return service(w, l, 0, w->now);
}

int sim_link_update(struct sim_world *w, struct sim_link *l)
{
	bool want = l->planned_up && end_node(w, l, 0)->up && end_node(w, l, 1)->up;
	if (want && !l->connected && !l->redial_pending)
		return connect_link(w, l);
	if (!want && l->connected)
		sim_link_drop(w, l);
	return 0;
}

int sim_node_kick(struct sim_world *w, struct sim_node *nd)
{
	for (size_t i = 0; i < nd->n_links; i++) {
		struct sim_link *l = &w->links[nd->links[i]];
		int side = l->sl->a == nd->index ? 0 : 1;
		if (!l->connected || !l->end[side].ls)
			continue;
		link_session_scan_new(l->end[side].ls);
		int ret = l->sl->kind == SCENARIO_LINK_SERIAL ? sim_serial_service(w, l)
							      : service(w, l, side, w->now);
		if (ret < 0)
			return ret;
	}
	return 0;
}

int sim_link_stored_new(struct sim_world *w, struct sim_link *l, int side)
{
	struct sim_end *e = &l->end[side];
	if (!e->ls)
		return 0;
	struct link_stats st;
	link_session_stats(e->ls, &st);
	if (st.received == e->received_seen)
		return 0;
	e->received_seen = st.received;
	struct sim_node *nd = end_node(w, l, side);
	sim_node_deliveries(w, nd);
	return sim_node_kick(w, nd);
}

int sim_link_data(struct sim_world *w, const struct sim_event *ev)
{
	struct sim_link *l = &w->links[ev->a];
	if (!l->connected || ev->gen != l->gen)
		return 0;
	const uint64_t gen = l->gen;
	const int side = ev->end;
	struct sim_end *e = &l->end[side];
	l->end[!side].inflight -= ev->len;
	sim_node_clock(w, end_node(w, l, side));
	int ret = tcp_input(e->tcp, ev->buf, ev->len, sim_end_record, e);
	if (ret == 0 && !e->ls && side == 0 && tcp_established(e->tcp))
		ret = sim_end_start_session(w, e);
	/* The chunk's bundles commit together, then their ACKs go (link.h group_commit). */
	if (ret == 0 && e->ls)
		ret = link_session_flush(e->ls);
	if (ret < 0)
		return sim_link_end_session(w, l, side, ret);
	if ((ret = sim_link_stored_new(w, l, side)) < 0)
		return ret;
	if (!l->connected || l->gen != gen)
		return 0;
	if ((ret = service(w, l, side, w->now)) < 0)
		return ret;
	/* The chunk left the other end's window: it may send more. */
	if (!l->connected || l->gen != gen)
		return 0;
	return service(w, l, !side, w->now);
}

int sim_link_timer(struct sim_world *w, const struct sim_event *ev)
{
	struct sim_link *l = &w->links[ev->a];
	struct sim_end *e = &l->end[ev->end];
	if (!l->connected || ev->gen != l->gen || ev->gen2 != e->timer_gen || !e->ls)
		return 0;
	e->timer_at = INT64_MAX;
	sim_node_clock(w, end_node(w, l, ev->end));
	int ret = link_session_tick(e->ls, now_ms(w));
	if (ret < 0)
		return sim_link_end_session(w, l, ev->end, ret);
	/* A deadline that stays "now" after its tick would spin: the next look is 1 ms on. */
	return service(w, l, ev->end, w->now + US_PER_MS);
}
