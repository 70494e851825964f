/* Selective-repeat ARQ over serial frames: streams, pacing, windows and payloads sized to the line.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "transports/serial.h"

#define SYNC_VERSION	 1
#define SYNC_ESTABLISHED 1 /* flags: the sender has seen its nonce echoed */
#define RTO_INITIAL_MS	 3000
#define RTO_MIN_MS	 200
#define RTO_MAX_MS	 10000
#define SYNC_RETRY_MS	 1000 /* a SYNC unanswered is sent again after this, doubling... */
#define SYNC_RETRY_MAX	 8000 /* ...up to this */
#define ACK_FRAMES	 4    /* an ACK goes at once after this many frames received... */
#define ACK_BYTES	 512  /* ...or this many payload bytes; */
#define ACK_DELAY_MS	 20   /* else it waits this, and one more frame's time, at most */
#define IDLE_RESYNC_MS	 100  /* after this long silent, a frame is led by an extra 0x00 */
#define LOSS_SAMPLES	 16   /* frame outcomes between two choices of the payload size */
/* Frame overhead on the wire besides the payload: type, seq, CRC, delimiter, COBS's code. */
#define DATA_OVERHEAD 9

struct tx_slot {
	bool acked, lost;
	uint8_t tries;
	uint16_t len;
	uint64_t sent_ms, xmit; /* when and in which order it last went out */
	uint8_t data[SERIAL_PAYLOAD_MAX];
};

struct rx_slot {
	bool have;
	uint16_t len;
	uint8_t data[SERIAL_PAYLOAD_MAX];
};

struct serial_arq {
	struct serial_arq_params p;
	uint64_t nonce, peer_nonce; /* peer_nonce 0: not heard yet */
	bool established, sync_due, peer_established;
	uint64_t sync_at_ms, sync_retry_ms;
	/* Sending. */
	uint8_t *unsent; /* a ring of stream bytes not yet framed */
	size_t unsent_head, unsent_len;
	struct tx_slot *tx; /* [SERIAL_WINDOW_MAX], by seq % SERIAL_WINDOW_MAX */
	uint16_t snd_una, snd_nxt;
	uint64_t xmit_count;
	uint32_t srtt_ms, rttvar_ms, rto_ms;
	uint64_t probe_ms;  /* when the last timeout's POLL went; 0: not in a timeout */
	uint64_t poll_xmit; /* the transmission number of that POLL; 0: none unanswered */
	uint8_t poll_token; /* of our last POLL */
	uint8_t poll_reply; /* the peer's POLL to answer... */
	bool poll_due;	    /* ...as soon as the line allows */
	uint16_t payload, window;
	uint32_t outcomes, losses; /* since the payload was last chosen */
	double loss_rate;	   /* of DATA frames, smoothed */
	/* Receiving. */
	struct serial_deframer df;
	struct rx_slot *rx; /* [SERIAL_WINDOW_MAX], by seq % SERIAL_WINDOW_MAX */
	uint16_t rcv_nxt;
	unsigned ack_pending, ack_pending_bytes;
	bool ack_now;
	uint64_t ack_due_ms;
	/* The frame going out, as wire bytes, and the pacing credit (thousandths of a byte). */
	uint8_t wire[SERIAL_WIRE_MAX + 1];
	size_t wire_off, wire_len;
	uint64_t credit, credit_ms, last_tx_ms;
	struct serial_arq_stats st;
};

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint64_t rd64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static void wr64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

/* Distance from a to b in sequence space (b - a, mod 2^16). */
static uint16_t seq_diff(uint16_t a, uint16_t b)
{
	return (uint16_t)(b - a);
}

/* Milliseconds the line needs for n bytes (rounded up). */
static uint64_t line_ms(const struct serial_arq *a, size_t n)
{
	return ((uint64_t)n * 1000 + a->p.rate_Bps - 1) / a->p.rate_Bps;
}

/* The window: twice the bytes the line carries in a round trip, in frames of this size. */
static void size_window(struct serial_arq *a)
{
	uint64_t rtt = a->srtt_ms ? a->srtt_ms : 1000;
	uint64_t bytes = (uint64_t)a->p.rate_Bps * (rtt + ACK_DELAY_MS) * 2 / 1000;
	uint64_t w = bytes / a->payload + 4;
	a->window = (uint16_t)(w > SERIAL_WINDOW_MAX ? SERIAL_WINDOW_MAX : w);
}

/*
 * The payload size that carries most with the loss measured: a frame of L payload bytes
 * and h overhead survives with (1 - ber)^(8(L + h)), and carries L / (L + h) of the line.
 */
static void choose_payload(struct serial_arq *a)
{
	if (a->p.fixed_payload)
		return;
	double bits = 8.0 * (a->payload + DATA_OVERHEAD);
	double loss = a->loss_rate < 0.5 ? a->loss_rate : 0.5;
	double ber = -log1p(-loss) / bits;
	uint16_t best = a->payload;
	double best_eff = -1, now_eff = 0;
	for (unsigned l = SERIAL_PAYLOAD_MIN; l <= a->p.payload_max; l *= 2) {
		double h = DATA_OVERHEAD + l / 254.0;
		double eff = log(l / (l + h)) + 8 * (l + h) * log1p(-ber);
		if (l == a->payload)
			now_eff = eff;
		if (eff > best_eff) {
			best_eff = eff;
			best = (uint16_t)l;
		}
	}
	/* Hysteresis: a change must gain 2 %. */
	if (best != a->payload && best_eff - now_eff > log(1.02)) {
		a->payload = best;
		size_window(a);
	}
}

/* A DATA frame's fate; every LOSS_SAMPLES of them, the payload size is chosen again. */
static void outcome(struct serial_arq *a, bool lost)
{
	a->losses += lost;
	if (++a->outcomes >= LOSS_SAMPLES) {
		a->loss_rate = (a->loss_rate + (double)a->losses / a->outcomes) / 2;
		a->outcomes = a->losses = 0;
		choose_payload(a);
	}
}

static void start_stream(struct serial_arq *a, uint64_t nonce, uint64_t now_ms)
{
	a->nonce = nonce;
	a->established = a->peer_established = false;
	a->sync_due = true;
	a->sync_at_ms = now_ms;
	a->sync_retry_ms = SYNC_RETRY_MS;
	a->unsent_head = a->unsent_len = 0;
	memset(a->tx, 0, sizeof(*a->tx) * SERIAL_WINDOW_MAX);
	memset(a->rx, 0, sizeof(*a->rx) * SERIAL_WINDOW_MAX);
	a->snd_una = a->snd_nxt = a->rcv_nxt = 0;
	a->ack_pending = a->ack_pending_bytes = 0;
	a->ack_now = false;
	a->probe_ms = a->poll_xmit = 0;
	a->poll_due = false;
	/* A frame half written stays whole: the receiver would lose the next one too. */
}

int serial_arq_new(const struct serial_arq_params *p, uint64_t nonce, uint64_t now_ms,
		   struct serial_arq **out)
{
	struct serial_arq_params q = *p;
	if (!q.payload_max)
		q.payload_max = SERIAL_PAYLOAD_MAX;
	if (!q.rate_Bps || !nonce || q.payload_max < SERIAL_PAYLOAD_MIN ||
	    q.payload_max > SERIAL_PAYLOAD_MAX)
		return -EINVAL;
	struct serial_arq *a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->tx = calloc(SERIAL_WINDOW_MAX, sizeof(*a->tx));
	a->rx = calloc(SERIAL_WINDOW_MAX, sizeof(*a->rx));
	a->unsent = malloc(SERIAL_STREAM_SPACE);
	if (!a->tx || !a->rx || !a->unsent) {
		serial_arq_free(a);
		return -ENOMEM;
	}
	a->p = q;
	a->payload = q.payload_max;
	/* Before a sample: a slow line's round trip holds a frame each way besides the delay. */
	a->rto_ms = RTO_INITIAL_MS + 2 * (uint32_t)line_ms(a, SERIAL_WIRE_MAX);
	size_window(a);
	serial_deframer_init(&a->df);
	a->credit_ms = now_ms;
	a->last_tx_ms = 0;
	start_stream(a, nonce, now_ms);
	*out = a;
	return 0;
}

void serial_arq_free(struct serial_arq *a)
{
	if (!a)
		return;
	free(a->tx);
	free(a->rx);
	free(a->unsent);
	free(a);
}

void serial_arq_reset(struct serial_arq *a, uint64_t nonce, uint64_t now_ms)
{
	a->peer_nonce = 0;
	start_stream(a, nonce, now_ms);
}

/* ---- receiving ---- */

struct input_ctx {
	struct serial_arq *a;
	uint64_t now_ms;
	serial_stream_fn fn;
	void *ctx;
	bool reset;
};

static void on_sync(struct input_ctx *in, const uint8_t *b, size_t len)
{
	struct serial_arq *a = in->a;
	if (len != 19 || b[2] != SYNC_VERSION)
		return;
	uint64_t nonce = rd64(b + 3), echo = rd64(b + 11);
	if (nonce == 0)
		return;
	bool fresh = nonce != a->peer_nonce;
	if (fresh && a->peer_nonce) {
		/* The peer restarted its stream: ours starts over with the same nonce. */
		start_stream(a, a->nonce, in->now_ms);
		a->st.resets++;
		in->reset = true;
	}
	a->peer_nonce = nonce;
	a->peer_established = b[1] & SYNC_ESTABLISHED;
	if (echo == a->nonce && !a->established) {
		a->established = true;
		a->sync_due = false;
	}
	/* The peer waits for our echo: answer at once. */
	if (!a->peer_established || fresh) {
		a->sync_due = true;
		a->sync_at_ms = in->now_ms;
	}
}

static int on_data(struct input_ctx *in, const uint8_t *b, size_t len)
{
	struct serial_arq *a = in->a;
	if (!a->established || len < 4 || len > 3 + SERIAL_PAYLOAD_MAX)
		return 0;
	uint16_t seq = rd16(b + 1), off = seq_diff(a->rcv_nxt, seq);
	if (off >= SERIAL_WINDOW_MAX) {
		/* Old: our ACK was lost. Say again what we have. */
		a->st.frames_dup++;
		a->ack_now = true;
		return 0;
	}
	struct rx_slot *r = &a->rx[seq % SERIAL_WINDOW_MAX];
	if (r->have) {
		a->st.frames_dup++;
		a->ack_now = true;
		return 0;
	}
	r->have = true;
	r->len = (uint16_t)(len - 3);
	memcpy(r->data, b + 3, r->len);
	a->st.frames_in++;
	a->ack_pending++;
	a->ack_pending_bytes += r->len;
	if (off != 0)
		a->ack_now = true; /* a gap: the sender should hear of it now */
	while (a->rx[a->rcv_nxt % SERIAL_WINDOW_MAX].have) {
		struct rx_slot *s = &a->rx[a->rcv_nxt % SERIAL_WINDOW_MAX];
		s->have = false;
		a->rcv_nxt++;
		a->st.stream_in += s->len;
		int ret = in->fn(in->ctx, s->data, s->len);
		if (ret < 0)
			return ret;
	}
	if (a->ack_pending >= ACK_FRAMES || a->ack_pending_bytes >= ACK_BYTES)
		a->ack_now = true;
	else if (a->ack_pending == 1)
		a->ack_due_ms = in->now_ms + ACK_DELAY_MS + line_ms(a, len + DATA_OVERHEAD);
	return 0;
}

static void rtt_sample(struct serial_arq *a, uint64_t rtt)
{
	/* RFC 6298, in milliseconds. */
	if (!a->srtt_ms) {
		a->srtt_ms = (uint32_t)(rtt ? rtt : 1);
		a->rttvar_ms = (uint32_t)(rtt / 2);
	} else {
		uint64_t d = rtt > a->srtt_ms ? rtt - a->srtt_ms : a->srtt_ms - rtt;
		a->rttvar_ms = (uint32_t)((3 * (uint64_t)a->rttvar_ms + d) / 4);
		a->srtt_ms = (uint32_t)((7 * (uint64_t)a->srtt_ms + rtt) / 8);
	}
	uint64_t rto = a->srtt_ms + 4 * (uint64_t)a->rttvar_ms + line_ms(a, SERIAL_WIRE_MAX);
	a->rto_ms = (uint32_t)(rto < RTO_MIN_MS ? RTO_MIN_MS : rto > RTO_MAX_MS ? RTO_MAX_MS : rto);
	size_window(a);
}

static void acked(struct serial_arq *a, struct tx_slot *t, uint64_t now_ms, uint64_t *max_xmit)
{
	if (t->tries == 1)
		rtt_sample(a, now_ms - t->sent_ms);
	if (t->xmit > *max_xmit)
		*max_xmit = t->xmit;
	outcome(a, false);
	t->acked = true;
	t->lost = false;
	a->st.stream_out += t->len;
}

static void on_ack(struct input_ctx *in, const uint8_t *b, size_t len)
{
	struct serial_arq *a = in->a;
	if (!a->established || len < 3 || len > 3 + SERIAL_WINDOW_MAX / 8)
		return;
	uint16_t next = rd16(b + 1);
	uint16_t flight = seq_diff(a->snd_una, a->snd_nxt);
	if (seq_diff(a->snd_una, next) > flight)
		return; /* acknowledges what was never sent: stale or broken */
	uint64_t max_xmit = 0;
	for (uint16_t s = a->snd_una; s != next; s++) {
		struct tx_slot *t = &a->tx[s % SERIAL_WINDOW_MAX];
		if (!t->acked)
			acked(a, t, in->now_ms, &max_xmit);
	}
	for (size_t i = 0; i + 3 < len; i++) {
		for (unsigned bit = 0; bit < 8; bit++) {
			if (!(b[3 + i] >> bit & 1))
				continue;
			uint16_t s = (uint16_t)(next + 1 + 8 * i + bit);
			if (seq_diff(a->snd_una, s) >= flight)
				continue;
			struct tx_slot *t = &a->tx[s % SERIAL_WINDOW_MAX];
			if (!t->acked)
				acked(a, t, in->now_ms, &max_xmit);
		}
	}
	/*
	 * The line keeps order: a frame sent before one that arrived, and missing, is lost.
	 * After a timeout the window was lost at once (a cut, not bit errors), which says
	 * nothing of the payload size the line takes.
	 */
	bool burst = a->probe_ms != 0;
	for (uint16_t s = next; s != a->snd_nxt; s++) {
		struct tx_slot *t = &a->tx[s % SERIAL_WINDOW_MAX];
		if (!t->acked && !t->lost && t->xmit < max_xmit) {
			t->lost = true;
			if (!burst)
				outcome(a, true);
		}
	}
	if (max_xmit)
		a->probe_ms = 0;
	while (a->snd_una != a->snd_nxt && a->tx[a->snd_una % SERIAL_WINDOW_MAX].acked)
		a->snd_una++;
}

/*
 * The answer to our POLL: an ACK sent after the POLL arrived, so every frame sent before
 * the POLL and still missing is lost (a cut, not bit errors: the payload size stays).
 */
static void on_polled(struct input_ctx *in, const uint8_t *b, size_t len)
{
	struct serial_arq *a = in->a;
	if (!a->established || len < 4)
		return;
	/* From the token on it reads as an ACK. */
	on_ack(in, b + 1, len - 1);
	if (b[1] != a->poll_token || !a->poll_xmit)
		return; /* an earlier POLL's answer: an ACK like any other */
	for (uint16_t s = a->snd_una; s != a->snd_nxt; s++) {
		struct tx_slot *t = &a->tx[s % SERIAL_WINDOW_MAX];
		if (!t->acked && t->xmit < a->poll_xmit)
			t->lost = true;
	}
	a->poll_xmit = 0;
	a->probe_ms = 0;
}

static int on_frame(void *ctx, const uint8_t *b, size_t len)
{
	struct input_ctx *in = ctx;
	switch (b[0]) {
	case SERIAL_SYNC:
		on_sync(in, b, len);
		return 0;
	case SERIAL_DATA:
		return on_data(in, b, len);
	case SERIAL_ACK:
		on_ack(in, b, len);
		return 0;
	case SERIAL_POLL:
		if (in->a->established && len == 2) {
			in->a->poll_reply = b[1];
			in->a->poll_due = true;
		}
		return 0;
	case SERIAL_POLLED:
		on_polled(in, b, len);
		return 0;
	default:
		return 0; /* a later version's frame: ignored */
	}
}

int serial_arq_input(struct serial_arq *a, const uint8_t *buf, size_t len, uint64_t now_ms,
		     serial_stream_fn fn, void *ctx)
{
	struct input_ctx in = {.a = a, .now_ms = now_ms, .fn = fn, .ctx = ctx};
	a->st.wire_in += len;
	uint64_t bad = a->df.bad;
	int ret = serial_deframe(&a->df, buf, len, on_frame, &in);
	a->st.frames_bad += a->df.bad - bad;
	if (ret < 0)
		return ret;
	return in.reset ? -ECONNRESET : 0;
}

/* ---- sending ---- */

size_t serial_arq_room(const struct serial_arq *a)
{
	return a->established ? SERIAL_STREAM_SPACE - a->unsent_len : 0;
}

size_t serial_arq_write(struct serial_arq *a, const uint8_t *buf, size_t len)
{
	size_t room = serial_arq_room(a), n = len < room ? len : room;
	for (size_t i = 0; i < n; i++)
		a->unsent[(a->unsent_head + a->unsent_len + i) % SERIAL_STREAM_SPACE] = buf[i];
	a->unsent_len += n;
	return n;
}

static void put_wire(struct serial_arq *a, const uint8_t *body, size_t len, uint64_t now_ms)
{
	size_t off = 0;
	if (now_ms - a->last_tx_ms >= IDLE_RESYNC_MS)
		a->wire[off++] = 0; /* noise on an idle line would spoil this frame's start */
	a->wire_len = off + serial_frame_wrap(body, len, a->wire + off);
	a->wire_off = 0;
}

/* An ACK, or (polled) the answer to the peer's POLL: the same after the token. */
static void send_ack(struct serial_arq *a, uint64_t now_ms, bool polled)
{
	uint8_t frame[4 + SERIAL_WINDOW_MAX / 8] = {SERIAL_POLLED, a->poll_reply};
	uint8_t *b = polled ? frame + 1 : frame;
	b[0] = SERIAL_ACK;
	b[1] = (uint8_t)(a->rcv_nxt >> 8);
	b[2] = (uint8_t)a->rcv_nxt;
	size_t len = 3;
	for (unsigned i = 0; i < SERIAL_WINDOW_MAX; i++) {
		uint16_t s = (uint16_t)(a->rcv_nxt + 1 + i);
		if (a->rx[s % SERIAL_WINDOW_MAX].have &&
		    seq_diff(a->rcv_nxt, s) < SERIAL_WINDOW_MAX) {
			b[3 + i / 8] |= (uint8_t)(1u << (i % 8));
			if (3 + i / 8 + 1 > len)
				len = 3 + i / 8 + 1;
		}
	}
	if (polled) {
		frame[0] = SERIAL_POLLED;
		frame[1] = a->poll_reply;
		len++;
		a->poll_due = false;
	}
	put_wire(a, frame, len, now_ms);
	a->ack_pending = a->ack_pending_bytes = 0;
	a->ack_now = false;
}

static void send_poll(struct serial_arq *a, uint64_t now_ms)
{
	uint8_t b[2] = {SERIAL_POLL, ++a->poll_token};
	put_wire(a, b, sizeof(b), now_ms);
	a->poll_xmit = ++a->xmit_count;
}

static void send_sync(struct serial_arq *a, uint64_t now_ms)
{
	uint8_t b[19] = {SERIAL_SYNC, a->established ? SYNC_ESTABLISHED : 0, SYNC_VERSION};
	wr64(b + 3, a->nonce);
	wr64(b + 11, a->peer_nonce);
	put_wire(a, b, sizeof(b), now_ms);
	a->sync_due = false;
	if (!a->established) {
		/* Unanswered, it goes again, less often while the line stays dead. */
		a->sync_at_ms = now_ms + a->sync_retry_ms;
		a->sync_retry_ms =
		    a->sync_retry_ms * 2 > SYNC_RETRY_MAX ? SYNC_RETRY_MAX : a->sync_retry_ms * 2;
		a->sync_due = true;
	}
}

static void send_slot(struct serial_arq *a, uint16_t seq, uint64_t now_ms)
{
	struct tx_slot *t = &a->tx[seq % SERIAL_WINDOW_MAX];
	uint8_t b[SERIAL_BODY_MAX] = {SERIAL_DATA, (uint8_t)(seq >> 8), (uint8_t)seq};
	memcpy(b + 3, t->data, t->len);
	put_wire(a, b, 3 + (size_t)t->len, now_ms);
	if (t->tries)
		a->st.frames_resent++;
	if (t->tries < 255)
		t->tries++;
	t->lost = false;
	t->sent_ms = now_ms;
	t->xmit = ++a->xmit_count;
	a->st.frames_out++;
}

/*
 * The oldest frame to send again: one known lost. Else, if the oldest frame's timer ran
 * out, a POLL is due (*seq untouched, *poll set), and the timer backs off.
 */
static bool resend_due(struct serial_arq *a, uint64_t now_ms, uint16_t *seq, bool *poll)
{
	const struct tx_slot *oldest = NULL;
	for (uint16_t s = a->snd_una; s != a->snd_nxt; s++) {
		const struct tx_slot *t = &a->tx[s % SERIAL_WINDOW_MAX];
		if (t->acked)
			continue;
		if (t->lost) {
			*seq = s;
			return true;
		}
		if (!oldest || t->sent_ms < oldest->sent_ms)
			oldest = t;
	}
	if (!oldest || now_ms - oldest->sent_ms < a->rto_ms ||
	    (a->probe_ms && now_ms - a->probe_ms < a->rto_ms))
		return false;
	a->rto_ms = a->rto_ms * 2 > RTO_MAX_MS ? RTO_MAX_MS : a->rto_ms * 2;
	a->probe_ms = now_ms;
	*poll = true;
	return true;
}

static bool new_frame(struct serial_arq *a, uint64_t now_ms)
{
	if (!a->unsent_len || seq_diff(a->snd_una, a->snd_nxt) >= a->window)
		return false;
	uint16_t seq = a->snd_nxt++;
	struct tx_slot *t = &a->tx[seq % SERIAL_WINDOW_MAX];
	size_t n = a->unsent_len < a->payload ? a->unsent_len : a->payload;
	*t = (struct tx_slot){.len = (uint16_t)n};
	for (size_t i = 0; i < n; i++)
		t->data[i] = a->unsent[(a->unsent_head + i) % SERIAL_STREAM_SPACE];
	a->unsent_head = (a->unsent_head + n) % SERIAL_STREAM_SPACE;
	a->unsent_len -= n;
	send_slot(a, seq, now_ms);
	return true;
}

/* Puts the next frame that should go into wire[]: false if none is due. */
static bool next_frame(struct serial_arq *a, uint64_t now_ms)
{
	if (a->sync_due && now_ms >= a->sync_at_ms) {
		send_sync(a, now_ms);
		return true;
	}
	if (!a->established)
		return false;
	if (a->poll_due) {
		send_ack(a, now_ms, true);
		return true;
	}
	if (a->ack_pending || a->ack_now) {
		if (a->ack_now || now_ms >= a->ack_due_ms) {
			send_ack(a, now_ms, false);
			return true;
		}
	}
	uint16_t seq = 0;
	bool poll = false;
	if (resend_due(a, now_ms, &seq, &poll)) {
		if (poll)
			send_poll(a, now_ms);
		else
			send_slot(a, seq, now_ms);
		return true;
	}
	return new_frame(a, now_ms);
}

static void refill(struct serial_arq *a, uint64_t now_ms)
{
	if (now_ms > a->credit_ms) {
		a->credit += (now_ms - a->credit_ms) * a->p.rate_Bps;
		a->credit_ms = now_ms;
	}
	/* Idle time banks at most 20 ms of line (and 64 bytes): the line has no memory. */
	uint64_t cap = (uint64_t)a->p.rate_Bps * 20;
	if (cap < 64 * 1000)
		cap = 64 * 1000;
	if (a->credit > cap)
		a->credit = cap;
}

size_t serial_arq_output(struct serial_arq *a, uint64_t now_ms, const uint8_t **buf)
{
	refill(a, now_ms);
	if (a->wire_off == a->wire_len && !next_frame(a, now_ms))
		return 0;
	size_t allowed = (size_t)(a->credit / 1000), n = a->wire_len - a->wire_off;
	*buf = a->wire + a->wire_off;
	return n < allowed ? n : allowed;
}

void serial_arq_consumed(struct serial_arq *a, size_t n)
{
	a->wire_off += n;
	a->credit -= (uint64_t)n * 1000 < a->credit ? (uint64_t)n * 1000 : a->credit;
	a->st.wire_out += n;
	a->last_tx_ms = a->credit_ms;
}

uint64_t serial_arq_deadline(const struct serial_arq *a, uint64_t now_ms)
{
	uint64_t want = UINT64_MAX;
	if (a->wire_off < a->wire_len)
		want = now_ms;
	if (a->sync_due && a->sync_at_ms < want)
		want = a->sync_at_ms;
	if (a->established) {
		if (a->ack_now || a->poll_due ||
		    (a->unsent_len && seq_diff(a->snd_una, a->snd_nxt) < a->window))
			want = now_ms;
		else if (a->ack_pending && a->ack_due_ms < want)
			want = a->ack_due_ms;
		for (uint16_t s = a->snd_una; s != a->snd_nxt && want > now_ms; s++) {
			const struct tx_slot *t = &a->tx[s % SERIAL_WINDOW_MAX];
			if (t->acked)
				continue;
			uint64_t at = t->lost ? now_ms : t->sent_ms + a->rto_ms;
			if (!t->lost && a->probe_ms && a->probe_ms + a->rto_ms > at)
				at = a->probe_ms + a->rto_ms;
			if (at < want)
				want = at;
		}
	}
	if (want == UINT64_MAX)
		return UINT64_MAX;
	/* Nothing goes before the pacing credit covers a byte. */
	uint64_t credit_ms = a->credit_ms, credit = a->credit;
	if (now_ms > credit_ms) {
		credit += (now_ms - credit_ms) * a->p.rate_Bps;
		credit_ms = now_ms;
	}
	uint64_t ready = credit >= 1000
			     ? credit_ms
			     : credit_ms + (1000 - credit + a->p.rate_Bps - 1) / a->p.rate_Bps;
	if (want < ready)
		want = ready;
	return want < now_ms ? now_ms : want;
}

bool serial_arq_established(const struct serial_arq *a)
{
	return a->established;
}

bool serial_arq_idle(const struct serial_arq *a)
{
	return a->established && !a->unsent_len && a->snd_una == a->snd_nxt &&
	       a->wire_off == a->wire_len;
}

void serial_arq_stats(const struct serial_arq *a, struct serial_arq_stats *out)
{
	*out = a->st;
	out->srtt_ms = a->srtt_ms;
	out->payload = a->payload;
	out->window = a->window;
}
