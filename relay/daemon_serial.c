/* The daemon's serial lines: a port, its ARQ stream, and the session riding on each stream. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relay/cli.h"
#include "relay/daemon_internal.h"
#include "relay/log.h"
#include "transports/hayes.h"
#include "transports/serial.h"
#include "transports/serial_port.h"

/* A device that cannot be opened (unplugged, a modem off) is tried again this often. */
#define REOPEN_S 5.0
/* A session that ended here gives its last words this long to go before the stream resets. */
#define CLOSING_MS 5000
/* Stream bytes waiting for the line before the session pumps more: little, so urgent
 * bundles overtake soon, as transfer records of a slow line are long to send. */
#define UNSENT_LOW 4096
/* A failed call waits redial, then twice that..., at most this long, with jitter. */
#define REDIAL_MAX_MS (30 * 60 * 1000)

struct sline {
	struct daemon *d;
	struct dpeer *p;
	struct serial_spec spec;
	char text[SERIAL_SPEC_TEXT_MAX];
	struct serial_port *port; /* NULL while the device cannot be opened */
	struct serial_arq *arq;
	ev_io io;
	ev_timer timer;
	struct conn *conn; /* the session on this stream; NULL between two */
	bool closing;	   /* the session ended here: the stream resets once its words are out */
	uint64_t closing_ms;
	bool blocked;  /* the port's buffer was full: wait until it is writable */
	int write_err; /* a write failed (-errno): the port goes at the next timer */
	/* A Hayes modem between the port and the line: calls are made and ended here. */
	struct hayes *modem; /* NULL: the port is the line */
	struct hayes_params mp;
	bool window_was_open;
	bool poll_due;			 /* a window opened: call once, to receive */
	bool want_send;			 /* bundles wait for the peer: call */
	uint64_t queue_gen, checked_gen; /* queue changes seen, and when want_send was last found */
	uint64_t next_call_ms, backoff_ms;
	uint64_t quiet_since_ms; /* online: when the session last moved a bundle byte */
	bool rescanned;		 /* quiet with bundles waiting: the queue was looked at again */
	uint64_t quiet_stream;	 /* stream bytes both ways at quiet_since_ms */
	uint64_t calls, connects, failed;
	char last_result[40];
};

static bool online(const struct sline *l)
{
	return !l->modem || hayes_state(l->modem) == HAYES_ONLINE;
}

static uint64_t nonce(void)
{
	uint64_t n = 0;
	while (!n)
		tern_random(&n, sizeof(n));
	return n;
}

static void line_service(struct sline *l);

static void arm(struct sline *l)
{
	struct daemon *d = l->d;
	ev_timer_stop(d->loop, &l->timer);
	if (!l->port) {
		ev_timer_set(&l->timer, REOPEN_S, 0);
		ev_timer_start(d->loop, &l->timer);
		return;
	}
	int events = EV_READ | (l->blocked ? EV_WRITE : 0);
	if (l->io.events != events) {
		ev_io_stop(d->loop, &l->io);
		ev_io_set(&l->io, serial_port_fd(l->port), events);
		ev_io_start(d->loop, &l->io);
	}
	uint64_t now = daemon_mono_ms();
	uint64_t due = online(l) ? serial_arq_deadline(l->arq, now) : UINT64_MAX;
	if (l->modem) {
		uint64_t m = hayes_deadline(l->modem, now);
		due = m < due ? m : due;
		if (hayes_state(l->modem) == HAYES_IDLE && (l->want_send || l->poll_due) &&
		    l->next_call_ms < due)
			due = l->next_call_ms > now ? l->next_call_ms : now;
	}
	if (l->closing && l->closing_ms + CLOSING_MS < due)
		due = l->closing_ms + CLOSING_MS;
	if (l->write_err)
		due = now;
	if (due == UINT64_MAX)
		return;
	ev_timer_set(&l->timer, due > now ? (double)(due - now) / 1000.0 : 0, 0);
	ev_timer_start(d->loop, &l->timer);
}

static void port_lost(struct sline *l, const char *why)
{
	struct daemon *d = l->d;
	log_warn("%s: serial line %s: %s; trying again every %.0f s", l->p->sp.name, l->spec.path,
		 why, REOPEN_S);
	if (l->conn)
		conn_close(l->conn, "the serial port went away");
	ev_io_stop(d->loop, &l->io);
	serial_port_close(l->port);
	l->port = NULL;
	arm(l);
}

/* Writes what the ARQ has for the line now, as far as the port takes it. */
void daemon_serial_flush(struct sline *l)
{
	if (!l->port)
		return;
	uint64_t now = daemon_mono_ms();
	l->blocked = false;
	for (;;) {
		const uint8_t *buf;
		bool data = online(l);
		size_t n =
		    data ? serial_arq_output(l->arq, now, &buf) : hayes_output(l->modem, now, &buf);
		if (!n)
			break;
		ssize_t w = serial_port_write(l->port, buf, n);
		if (w < 0) {
			/* Not here: the caller may be the session that closing the port frees. */
			l->write_err = (int)w;
			break;
		}
		if (w == 0) {
			l->blocked = true;
			break;
		}
		if (!data) {
			hayes_consumed(l->modem, (size_t)w);
			continue;
		}
		serial_arq_consumed(l->arq, (size_t)w);
		l->p->bytes_out += (size_t)w;
		if (l->modem)
			hayes_data_sent(l->modem, now);
	}
	if (l->closing && (serial_arq_idle(l->arq) || now >= l->closing_ms + CLOSING_MS)) {
		l->closing = false;
		serial_arq_reset(l->arq, nonce(), now);
		/* On a modem a session is a call: its end hangs up, on the side that called (the
		 * other waits for NO CARRIER: two escapes at once would cross). */
		if (l->modem && online(l) && l->mp.dial[0]) {
			log_info("%s: hanging up", l->p->sp.name);
			hayes_hangup(l->modem, now);
		}
	}
	arm(l);
}

bool daemon_serial_wants_pump(const struct sline *l)
{
	return serial_arq_room(l->arq) >= SERIAL_STREAM_SPACE - UNSENT_LOW;
}

size_t daemon_serial_write(struct sline *l, const uint8_t *buf, size_t len)
{
	return serial_arq_write(l->arq, buf, len);
}

void daemon_serial_session_closed(struct sline *l, struct conn *c)
{
	if (l->conn != c)
		return;
	l->conn = NULL;
	/* Its last words (a BYE) go first; then both ends start a new stream. */
	l->closing = true;
	l->closing_ms = daemon_mono_ms();
}

static int lookup(void *ctx, const uint8_t box_pk[static 32], struct identity_public *out)
{
	struct conn *c = ctx;
	/* On a serial line only its one peer may answer. */
	if (!c->peer || memcmp(c->peer->pub.box_pk, box_pk, 32))
		return -ENOENT;
	*out = c->peer->pub;
	return 0;
}

/* A new stream: a new session on it, the lower node number calling. */
static void session_start(struct sline *l)
{
	struct daemon *d = l->d;
	struct dpeer *p = l->p;
	bool caller = d->n->node_num < p->sp.node;
	struct conn *c = conn_new_serial(d, l, p, caller);
	if (!c)
		return;
	int ret = caller ? tcp_new_initiator_on(TCP_LINK_SERIAL, d->n->id, &p->pub, &c->tcp)
			 : tcp_new_responder_on(TCP_LINK_SERIAL, d->n->id, lookup, c, &c->tcp);
	if (ret < 0) {
		conn_close(c, strerror(-ret));
		return;
	}
	l->conn = c;
	log_debug("%s: serial stream up on %s; %s", p->sp.name, l->spec.path,
		  caller ? "calling" : "waiting for the call");
	conn_service(c);
}

static int on_stream(void *ctx, const uint8_t *buf, size_t len)
{
	struct sline *l = ctx;
	/* Between two sessions (the old one closing) the stream's bytes have no reader. */
	if (l->conn && !l->closing)
		conn_input(l->conn, buf, len);
	return 0;
}

/* Line bytes for the ARQ: all a direct line's, a modem's while it is online. */
static void line_input(struct sline *l, const uint8_t *buf, size_t len)
{
	l->p->bytes_in += len;
	int ret = serial_arq_input(l->arq, buf, len, daemon_mono_ms(), on_stream, l);
	if (l->conn && conn_flush(l->conn) < 0)
		return;
	if (ret == -ECONNRESET && l->conn) {
		/* The peer started over (it restarted, or its session ended). */
		struct conn *c = l->conn;
		l->conn = NULL;
		conn_close(c, "the peer started the serial stream over");
		l->closing = false;
	}
}

static void on_modem_data(void *ctx, const uint8_t *buf, size_t len)
{
	line_input(ctx, buf, len);
}

static void on_readable(struct sline *l)
{
	uint8_t buf[4096];
	for (int i = 0; i < 16 && l->port; i++) {
		ssize_t r = serial_port_read(l->port, buf, sizeof(buf));
		if (r < 0) {
			port_lost(l, strerror((int)-r));
			return;
		}
		if (r == 0)
			break;
		daemon_clock(l->d);
		if (l->modem)
			hayes_input(l->modem, buf, (size_t)r, daemon_mono_ms(), on_modem_data, l);
		else
			line_input(l, buf, (size_t)r);
	}
	line_service(l);
}

/* ---- calls, on a modem ---- */

struct queued_for {
	struct daemon *d;
	struct dpeer *p;
};

static int bundle_for(void *ctx, const struct store_bundle *b, const uint8_t *head, size_t len)
{
	struct queued_for *q = ctx;
	struct store_peer via;
	(void)head;
	(void)len;
	if (q->p->cp && b->priority < q->p->cp->min_priority)
		return 0;
	return node_next_hop(q->d->n, b->dest_node, &via) == 0 && via.node == q->p->sp.node;
}

/* True if a bundle waits whose next hop is p and that p's link may carry. */
static bool queued_for(struct daemon *d, struct dpeer *p)
{
	struct queued_for q = {d, p};
	return store_bundle_foreach(d->n->store, STORE_QUEUED, &d->n->now, bundle_for, &q) > 0;
}

static void call_later(struct sline *l, uint64_t now, uint64_t ms)
{
	uint32_t r;
	tern_random(&r, sizeof(r));
	/* Jitter, so that two offices that both failed do not call again at the same moment. */
	l->next_call_ms = now + ms / 2 + r % (ms + 1);
}

/* A new call is online: a new stream at the rate the modems agreed, if below the port's. */
static void call_connected(struct sline *l, uint64_t now)
{
	uint32_t rate = serial_spec_rate(&l->spec), bps = hayes_connect_rate(l->modem);
	/* The CONNECT rate is the line's bits per second; count 10 bits a byte, as async does. */
	if (bps && bps / 10 < rate)
		rate = bps / 10 ? bps / 10 : 1;
	struct serial_arq_params ap = {.rate_Bps = rate};
	struct serial_arq *a;
	if (serial_arq_new(&ap, nonce(), now, &a) == 0) {
		serial_arq_free(l->arq);
		l->arq = a;
	} else {
		serial_arq_reset(l->arq, nonce(), now);
	}
	l->closing = false;
	l->poll_due = false;
	l->quiet_since_ms = now;
	l->rescanned = false;
	l->backoff_ms = l->mp.redial_ms;
}

static void on_modem(void *ctx, enum hayes_event ev, const char *detail)
{
	struct sline *l = ctx;
	const char *name = l->p->sp.name;
	uint64_t now = daemon_mono_ms();
	if (ev != HAYES_EV_READY && ev != HAYES_EV_RING && ev != HAYES_EV_HUNG_UP)
		snprintf(l->last_result, sizeof(l->last_result), "%s", detail);
	switch (ev) {
	case HAYES_EV_READY:
		log_info("%s: modem on %s ready", name, l->spec.path);
		return;
	case HAYES_EV_RING:
		log_info("%s: the modem on %s rings%s", name, l->spec.path,
			 l->mp.answer && daemon_window_open(l->d, l->p) ? "; answering" : "");
		return;
	case HAYES_EV_CONNECT:
		l->connects++;
		call_connected(l, now);
		log_info("%s: %s on %s", name, detail, l->spec.path);
		return;
	case HAYES_EV_CALL_FAILED:
		l->failed++;
		if (!l->backoff_ms)
			l->backoff_ms = l->mp.redial_ms;
		call_later(l, now, l->backoff_ms);
		log_warn("%s: the call to %s failed: %s; calling again in about %" PRIu64 " s",
			 name, l->mp.dial[0] ? l->mp.dial : "us", detail,
			 (l->next_call_ms - now) / 1000);
		l->backoff_ms =
		    l->backoff_ms * 2 < REDIAL_MAX_MS ? l->backoff_ms * 2 : REDIAL_MAX_MS;
		return;
	case HAYES_EV_CARRIER_LOST:
	case HAYES_EV_HUNG_UP:
		if (l->conn) {
			struct conn *c = l->conn;
			l->conn = NULL;
			conn_close(c, "the call ended");
		}
		l->closing = false;
		serial_arq_reset(l->arq, nonce(), now);
		if (ev == HAYES_EV_CARRIER_LOST) {
			/* Hung up by the far end, or cut off: what is left is worth a call soon. */
			log_info("%s: the call on %s ended: NO CARRIER", name, l->spec.path);
			l->checked_gen = l->queue_gen - 1;
			call_later(l, now, l->mp.redial_ms);
		} else {
			log_info("%s: hung up%s%s", name, detail[0] ? ": " : "", detail);
		}
		return;
	case HAYES_EV_MODEM_FAILED:
		log_warn("%s: modem on %s: %s; trying it again in 30 s", name, l->spec.path,
			 detail);
		return;
	}
}

/* A modem on hook calls when bundles wait or a window opens; online, an idle call ends. */
static void modem_service(struct sline *l)
{
	struct daemon *d = l->d;
	struct dpeer *p = l->p;
	uint64_t now = daemon_mono_ms();
	hayes_poll(l->modem, now);
	bool open = daemon_window_open(d, p);
	hayes_set_answer(l->modem, l->mp.answer && open);
	if (open && !l->window_was_open && l->mp.dial[0])
		l->poll_due = true;
	l->window_was_open = open;
	enum hayes_state st = hayes_state(l->modem);
	if (st == HAYES_IDLE && l->mp.dial[0] && open) {
		if (l->checked_gen != l->queue_gen) {
			l->checked_gen = l->queue_gen;
			l->want_send = queued_for(d, p);
		}
		if ((l->want_send || l->poll_due) && now >= l->next_call_ms &&
		    hayes_dial(l->modem, now) == 0) {
			l->calls++;
			log_info("%s: calling %s on %s (%s)", p->sp.name, l->mp.dial, l->spec.path,
				 l->want_send ? "bundles wait" : "a contact window opened");
		}
	}
	if (st != HAYES_ONLINE || l->closing)
		return;
	struct link_session *ls = l->conn ? l->conn->ls : NULL;
	struct serial_arq_stats as;
	serial_arq_stats(l->arq, &as);
	/* A transfer in flight on a slow line may look idle to the session between records:
	 * the stream's bytes say it is not (a keepalive's few dozen bytes do not count). */
	uint64_t stream = as.stream_in + as.stream_out;
	if ((ls && !link_session_idle(ls)) || stream > l->quiet_stream + 512) {
		l->quiet_since_ms = now;
		l->quiet_stream = stream;
	}
	if (now < l->quiet_since_ms + l->mp.idle_ms)
		return;
	if (ls && !l->rescanned && queued_for(d, p)) {
		/* Bundles wait that the session has not offered: once, it looks again. */
		l->rescanned = true;
		l->quiet_since_ms = now;
		link_session_rescan(ls);
		return;
	}
	log_info("%s: nothing moved for %u s: ending the call", p->sp.name,
		 (unsigned)(l->mp.idle_ms / 1000));
	/* What could go went: the next call waits for new bundles. */
	l->want_send = false;
	l->checked_gen = l->queue_gen;
	if (ls && !link_session_why(ls)[0]) {
		link_session_close(ls); /* its BYE goes, then the call is hung up */
		l->quiet_since_ms = now;
	} else {
		/* No session came up on the call: nothing to say goodbye to. */
		hayes_hangup(l->modem, now);
	}
}

void daemon_serial_queue_changed(struct sline *l)
{
	if (!l->modem)
		return;
	l->queue_gen++;
	if (hayes_state(l->modem) == HAYES_IDLE)
		line_service(l);
}

static void line_service(struct sline *l)
{
	if (!l->port)
		return;
	/* A session on each stream, while the peer's contact windows are open. */
	daemon_clock(l->d);
	if (l->modem)
		modem_service(l);
	if (online(l) && serial_arq_established(l->arq) && !l->conn && !l->closing &&
	    daemon_window_open(l->d, l->p))
		session_start(l);
	if (l->conn)
		conn_service(l->conn); /* it flushes the line */
	else
		daemon_serial_flush(l);
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
	struct sline *l = w->data;
	(void)loop;
	if (revents & EV_READ)
		on_readable(l);
	else
		line_service(l);
}

static int open_port(struct sline *l, const char **why)
{
	int ret = serial_port_open(&l->spec, &l->port, why);
	if (ret < 0) {
		l->port = NULL;
		return ret;
	}
	log_info("%s: serial line %s open (%u baud, %u bytes/s)", l->p->sp.name, l->spec.path,
		 (unsigned)l->spec.baud, (unsigned)serial_spec_rate(&l->spec));
	ev_io_set(&l->io, serial_port_fd(l->port), EV_READ);
	ev_io_start(l->d->loop, &l->io);
	serial_arq_reset(l->arq, nonce(), daemon_mono_ms());
	l->closing = false;
	if (l->modem)
		hayes_start(l->modem, daemon_mono_ms());
	return 0;
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct sline *l = w->data;
	(void)loop;
	(void)revents;
	const char *why;
	if (l->port && l->write_err) {
		int err = l->write_err;
		l->write_err = 0;
		port_lost(l, strerror(-err));
		return;
	}
	if (!l->port && open_port(l, &why) < 0) {
		log_debug("%s: serial line %s: %s", l->p->sp.name, l->spec.path, why);
		arm(l);
		return;
	}
	line_service(l);
}

int daemon_serial_attach(struct dpeer *p, const char *text, const struct hayes_params *modem)
{
	struct daemon *d = p->d;
	struct hayes_params none;
	memset(&none, 0, sizeof(none));
	if (!modem)
		modem = &none;
	if (p->line && !strcmp(p->line->text, text) && !memcmp(&p->line->mp, modem, sizeof(none)))
		return 0;
	daemon_serial_detach(p);
	const char *why;
	struct serial_spec spec;
	if (!serial_spec_parse(text, &spec, &why)) {
		log_warn("%s: %s: %s", p->sp.name, text, why);
		return -EINVAL;
	}
	struct sline *l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->d = d;
	l->p = p;
	l->spec = spec;
	snprintf(l->text, sizeof(l->text), "%s", text);
	memcpy(&l->mp, modem, sizeof(l->mp));
	struct serial_arq_params ap = {.rate_Bps = serial_spec_rate(&spec)};
	int ret = serial_arq_new(&ap, nonce(), daemon_mono_ms(), &l->arq);
	if (ret == 0 && modem != &none)
		ret = hayes_new(modem, on_modem, l, &l->modem);
	if (ret < 0) {
		serial_arq_free(l->arq);
		free(l);
		return ret;
	}
	l->queue_gen = 1;
	l->backoff_ms = l->mp.redial_ms;
	ev_init(&l->io, on_io);
	l->io.data = l;
	ev_init(&l->timer, on_timer);
	l->timer.data = l;
	p->line = l;
	if (open_port(l, &why) < 0) {
		log_warn("%s: serial line %s: %s; trying again every %.0f s", p->sp.name, spec.path,
			 why, REOPEN_S);
		arm(l);
		return 0;
	}
	line_service(l);
	return 0;
}

void daemon_serial_detach(struct dpeer *p)
{
	struct sline *l = p->line;
	if (!l)
		return;
	if (l->conn)
		conn_close(l->conn, "the serial line was removed");
	ev_io_stop(l->d->loop, &l->io);
	ev_timer_stop(l->d->loop, &l->timer);
	serial_port_close(l->port);
	serial_arq_free(l->arq);
	hayes_free(l->modem);
	free(l);
	p->line = NULL;
}

uint32_t daemon_serial_rate(const struct sline *l)
{
	return serial_spec_rate(&l->spec);
}

void daemon_serial_kick(struct sline *l)
{
	line_service(l);
}

const char *daemon_serial_device(const struct sline *l)
{
	return l->spec.path;
}

void daemon_serial_status(const struct sline *l, FILE *out)
{
	struct serial_arq_stats st;
	serial_arq_stats(l->arq, &st);
	const char *state = !l->port ? "closed" : serial_arq_established(l->arq) ? "up" : "syncing";
	fprintf(out, ", \"serial\": {\"line\": ");
	json_string(out, l->text);
	fprintf(out,
		", \"baud\": %u, \"port\": \"%s\", "
		"\"frames_out\": %" PRIu64 ", \"frames_resent\": %" PRIu64
		", \"frames_in\": %" PRIu64 ", \"frames_bad\": %" PRIu64 ", \"resets\": %" PRIu64
		", \"srtt_ms\": %u, \"payload\": %u, \"window\": %u}",
		(unsigned)l->spec.baud, state, st.frames_out, st.frames_resent, st.frames_in,
		st.frames_bad, st.resets, (unsigned)st.srtt_ms, (unsigned)st.payload,
		(unsigned)st.window);
	if (!l->modem)
		return;
	fprintf(out, ", \"modem\": {\"state\": \"%s\", \"number\": ",
		hayes_state_name(hayes_state(l->modem)));
	json_string(out, l->mp.dial);
	fprintf(out,
		", \"calls\": %" PRIu64 ", \"connects\": %" PRIu64 ", \"failed\": %" PRIu64
		", \"last_result\": ",
		l->calls, l->connects, l->failed);
	json_string(out, l->last_result);
	fprintf(out, "}");
}
