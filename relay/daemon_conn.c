/* The daemon's TCP connections: connect or accept, handshake, session, flow control, close. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "relay/cli.h"
#include "relay/daemon_internal.h"
#include "relay/log.h"

/*
 * Transfer records are pumped only while less than OUT_SOFT bytes wait for the socket; past
 * OUT_HARD (control records from a peer that sends but does not read) the connection stops
 * reading that peer until it drains, so memory stays bounded whatever a peer does.
 */
#define OUT_SOFT	    (256u * 1024)
#define OUT_HARD	    (4u * 1024 * 1024)
#define HANDSHAKE_TIMEOUT_S 10.0
/* A serial line's handshake crosses a slow line, and perhaps a few lost frames. */
#define SERIAL_HANDSHAKE_TIMEOUT_S 90.0
/* Transfer records are pumped this much at a time on a serial line (it is slow). */
#define SERIAL_PUMP	  (16u * 1024)
#define CONNECT_TIMEOUT_S 15.0
#define MAX_PENDING	  64
#define PENDING_PER_HOST  8
#define BACKOFF_MIN_MS	  1000
#define BACKOFF_MAX_MS	  (5 * 60 * 1000)
/* A session that lasted this long was a success: the next failure backs off from the start. */
#define SESSION_GOOD_MS (60 * 1000)

static void on_io(struct ev_loop *loop, ev_io *w, int revents);
static void on_timer(struct ev_loop *loop, ev_timer *w, int revents);

static const char *peer_name(const struct conn *c)
{
	return c->peer ? c->peer->sp.name : c->where;
}

static struct conn *conn_new(struct daemon *d, int fd, bool outbound, const char *where)
{
	struct conn *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->d = d;
	c->fd = fd;
	c->outbound = outbound;
	snprintf(c->where, sizeof(c->where), "%s", where);
	c->started_ms = c->last_rx_ms = daemon_mono_ms();
	ev_io_init(&c->io, on_io, fd, EV_READ);
	c->io.data = c;
	ev_init(&c->timer, on_timer);
	c->timer.data = c;
	c->next = d->conns;
	d->conns = c;
	return c;
}

static void arm_timer(struct conn *c, double after_s)
{
	ev_timer_stop(c->d->loop, &c->timer);
	ev_timer_set(&c->timer, after_s < 0 ? 0 : after_s, 0);
	ev_timer_start(c->d->loop, &c->timer);
}

/*
 * The first failure since the peer was last reached is worth an operator's eye (a wrong
 * address, a firewall); the retries that follow, every backoff, are not.
 */
static void dial_failed(struct dpeer *p, const char *where, int err)
{
	if (p->backoff_ms == 0)
		log_info(
		    "%s: cannot connect to %s: %s (retrying with backoff; again at debug level)",
		    p->sp.name, where, strerror(err));
	else
		log_debug("%s: cannot connect to %s: %s", p->sp.name, where, strerror(err));
}

void dpeer_schedule_dial(struct dpeer *p, bool failed)
{
	struct daemon *d = p->d;
	if (!p->n_addrs || d->stopping)
		return;
	if (failed)
		p->backoff_ms = p->backoff_ms ? p->backoff_ms * 2 : BACKOFF_MIN_MS;
	if (p->backoff_ms > BACKOFF_MAX_MS)
		p->backoff_ms = BACKOFF_MAX_MS;
	/* Half the backoff plus a random half: peers cut by one outage do not all call at once. */
	uint32_t r;
	tern_random(&r, sizeof(r));
	uint64_t wait = p->backoff_ms / 2 + (p->backoff_ms ? r % (p->backoff_ms / 2 + 1) : 0);
	if (p->cp) {
		/* Outside the contact windows: call when the next one opens, within a second. */
		daemon_clock(d);
		uint64_t until = config_window_next_open(p->cp, d->n->now.unix_ms);
		if (until > wait)
			wait = until + r % 1000;
	}
	ev_timer_stop(d->loop, &p->dial_timer);
	ev_timer_set(&p->dial_timer, (double)wait / 1000.0, 0);
	ev_timer_start(d->loop, &p->dial_timer);
}

void conn_close(struct conn *c, const char *why)
{
	struct daemon *d = c->d;
	struct dpeer *p = c->peer;
	daemon_clock(d);
	if (c->ls) {
		struct link_stats st;
		link_session_stats(c->ls, &st);
		if (why)
			log_info("%s: link down (%s): %llu sent, %llu received", peer_name(c), why,
				 (unsigned long long)st.acked_out, (unsigned long long)st.acked_in);
		daemon_count_bytes(c);
		if (p)
			daemon_save_counters(p);
		link_session_free(c->ls);
	} else if (why) {
		log_debug("%s: closed before a session: %s", peer_name(c), why);
	}
	if (c->pending)
		d->n_pending--;
	tcp_free(c->tcp);
	ev_io_stop(d->loop, &c->io);
	ev_timer_stop(d->loop, &c->timer);
	if (c->line)
		daemon_serial_session_closed(c->line, c);
	else
		close(c->fd);
	for (struct conn **pp = &d->conns; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	if (p && p->conn == c) {
		p->conn = NULL;
		p->up_since_ms = 0;
		bool good = daemon_mono_ms() - c->started_ms >= SESSION_GOOD_MS;
		if (good)
			p->backoff_ms = 0;
		dpeer_schedule_dial(p, true);
	} else if (p && p->dialing == c) {
		p->dialing = NULL;
		dpeer_schedule_dial(p, true);
	}
	free(c);
}

/* Ends the session after its last words (a BYE the engine queued) went out, if they can. */
static void conn_end(struct conn *c, int err)
{
	const char *why = c->ls ? link_session_why(c->ls) : "";
	char text[160];
	safe_text(why[0] ? why : strerror(-err), text, sizeof(text));
	const uint8_t *buf;
	size_t n = c->tcp ? tcp_output(c->tcp, &buf) : 0;
	/* Best effort: a peer that does not read does not hear the BYE. */
	if (n > 0 && c->line)
		daemon_serial_write(c->line, buf, n);
	else if (n > 0 && send(c->fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		log_debug("%s: the last words were not sent: %s", peer_name(c), strerror(errno));
	conn_close(c, text);
}

static int send_record(void *ctx, const uint8_t *rec, size_t len)
{
	struct conn *c = ctx;
	return tcp_send(c->tcp, rec, len);
}

/* The connection whose dialer has the lower node number stays when two cross. */
static bool keep_new(const struct conn *old, const struct conn *fresh)
{
	struct daemon *d = fresh->d;
	uint64_t idle = daemon_mono_ms() - old->last_rx_ms;
	if (old->outbound == fresh->outbound || idle > 2000ull * d->lim.keepalive_s)
		return true; /* the peer called again: the old one is dead or dying */
	uint64_t peer_num = fresh->peer->sp.node;
	uint64_t fresh_dialer = fresh->outbound ? fresh->d->n->node_num : peer_num;
	uint64_t old_dialer = old->outbound ? fresh->d->n->node_num : peer_num;
	return fresh_dialer < old_dialer;
}

/* One debug line per bundle event: ids and sizes only, which is all a relay knows anyway. */
static void on_link_event(void *ctx, const struct link_event *ev)
{
	struct conn *c = ctx;
	char id[17], size[32];
	hex_encode(ev->id, 8, id);
	switch (ev->kind) {
	case LINK_EVENT_ACKED_IN:
		log_debug("%s: bundle %s stored here, acknowledged", peer_name(c), id);
		break;
	case LINK_EVENT_REFUSED_IN:
		log_debug("%s: bundle %s refused: %s (retry after %u s)", peer_name(c), id,
			  link_refuse_name(ev->reason), ev->retry_s);
		break;
	case LINK_EVENT_ACKED_OUT:
		format_size(ev->size, size, sizeof(size));
		log_debug("%s: bundle %s (%s) acknowledged: custody passed", peer_name(c), id,
			  size);
		break;
	case LINK_EVENT_REJECTED_IN:
		/* An operator can act on this one (a contact to add, a peer sending junk). */
		log_warn("%s: bundle %s not taken: %s", peer_name(c), id, ev->why);
		break;
	case LINK_EVENT_REFUSED_OUT:
		log_debug("%s: bundle %s refused by the peer: %s (retry after %u s)", peer_name(c),
			  id, link_refuse_name(ev->reason), ev->retry_s);
		break;
	}
}

static int authenticated(struct conn *c)
{
	struct daemon *d = c->d;
	const struct identity_public *who = tcp_peer(c->tcp);
	if (!c->peer) {
		c->peer = daemon_peer_by_box(d, who->box_pk);
		if (!c->peer)
			return -EACCES; /* removed while we talked */
	}
	struct dpeer *p = c->peer;
	if (p->dialing == c)
		p->dialing = NULL;
	daemon_clock(d);
	if (!daemon_window_open(d, p)) {
		log_info("%s: called outside its contact windows; closed", p->sp.name);
		return -EAGAIN;
	}
	if (p->conn) {
		if (!keep_new(p->conn, c)) {
			log_debug("%s: a second connection crossed ours; keeping ours", p->sp.name);
			return -EALREADY;
		}
		conn_close(p->conn, "replaced by a new connection");
	}
	struct link_limits lim;
	daemon_session_limits(d, p, &lim);
	int ret = link_session_new(d->n, &p->sp, &lim, send_record, c, &c->ls);
	if (ret < 0)
		return ret;
	link_session_on_event(c->ls, on_link_event, c);
	if (c->pending) {
		c->pending = false;
		d->n_pending--;
	}
	p->conn = c;
	p->up_since_ms = d->n->now.unix_ms;
	p->last_contact_ms = d->n->now.unix_ms;
	ev_timer_stop(d->loop, &p->dial_timer);
	log_info("%s: link up (%s, %s)", p->sp.name, c->outbound ? "outbound" : "inbound",
		 c->where);
	return link_session_start(c->ls, daemon_mono_ms());
}

static int on_record(void *ctx, const uint8_t *rec, size_t len)
{
	struct conn *c = ctx;
	int ret = 0;
	if (!c->ls && (ret = authenticated(c)) < 0)
		return ret;
	c->last_rx_ms = daemon_mono_ms();
	c->peer->last_contact_ms = c->d->n->now.unix_ms;
	ret = link_session_input(c->ls, rec, len, c->last_rx_ms);
	struct link_stats st;
	link_session_stats(c->ls, &st);
	if (st.received != c->received_seen) {
		/* Something was stored here: a bundle to forward, a delivery, a receipt. */
		c->received_seen = st.received;
		daemon_kick(c->d, KICK_NEW | KICK_API);
	}
	return ret;
}

static int lookup(void *ctx, const uint8_t box_pk[static 32], struct identity_public *out)
{
	struct conn *c = ctx;
	struct dpeer *p = daemon_peer_by_box(c->d, box_pk);
	if (!p) {
		/* Perhaps added with `tern peer add` since we last read the store. */
		uint64_t now = daemon_mono_ms();
		if (now - c->d->last_peer_reload_ms > 1000) {
			c->d->last_peer_reload_ms = now;
			daemon_peers_load(c->d);
			p = daemon_peer_by_box(c->d, box_pk);
		}
	}
	if (!p)
		return -ENOENT;
	c->peer = p;
	*out = p->pub;
	return 0;
}

void conn_service(struct conn *c)
{
	struct daemon *d = c->d;
	uint64_t now = daemon_mono_ms();
	const uint8_t *buf;
	size_t n = 0;
	for (;;) {
		while ((n = tcp_output(c->tcp, &buf)) > 0) {
			if (c->line) {
				/* The serial line counts its own bytes, on the wire. */
				size_t w = daemon_serial_write(c->line, buf, n);
				tcp_consumed(c->tcp, w);
				if (w < n)
					break;
				continue;
			}
			ssize_t w = send(c->fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				break;
			if (w <= 0) {
				conn_close(c, strerror(errno));
				return;
			}
			tcp_consumed(c->tcp, (size_t)w);
			if (c->peer)
				c->peer->bytes_out += (size_t)w;
		}
		n = tcp_output(c->tcp, &buf);
		if (n > 0 || !c->ls || !link_session_wants_pump(c->ls) ||
		    (c->line && !daemon_serial_wants_pump(c->line)))
			break;
		size_t made = 0;
		daemon_clock(d);
		int ret = link_session_pump(c->ls, now, c->line ? SERIAL_PUMP : OUT_SOFT, &made);
		if (ret < 0) {
			conn_end(c, ret);
			return;
		}
		daemon_count_bytes(c);
		if (made == 0)
			break;
	}
	int events = n > OUT_HARD ? 0 : EV_READ;
	if (n > 0)
		events |= EV_WRITE;
	if (c->line) {
		daemon_serial_flush(c->line);
	} else if (c->io.events != events) {
		ev_io_stop(d->loop, &c->io);
		ev_io_set(&c->io, c->fd, events);
		ev_io_start(d->loop, &c->io);
	}
	if (c->ls && link_session_why(c->ls)[0]) {
		/* Over (BYE sent): close once the last words are out, or give them 5 s. */
		if (n == 0)
			conn_end(c, -ESHUTDOWN);
		else
			arm_timer(c, 5.0);
	} else if (c->ls) {
		uint64_t due = link_session_deadline(c->ls);
		if (due != UINT64_MAX)
			arm_timer(c, due > now ? (double)(due - now) / 1000.0 : 0);
		else
			ev_timer_stop(d->loop, &c->timer);
	}
}

int conn_input(struct conn *c, const uint8_t *buf, size_t len)
{
	daemon_clock(c->d);
	int ret = tcp_input(c->tcp, buf, len, on_record, c);
	/*
	 * The caller's first record confirms the session keys (an IK message 1 can be
	 * replayed by anyone): the answering side waits for it in on_record before it
	 * starts a session, says "link up" or sends a word of its own.
	 */
	if (ret == 0 && !c->ls && c->outbound && tcp_established(c->tcp))
		ret = authenticated(c);
	if (ret == -EACCES || ret == -EBADMSG) {
		/* A stranger or garbage: closed without a word (no BYE, no reply). */
		if (!c->ls) {
			/* Debug only: a stranger must not be able to fill the disk. */
			log_debug("%s: refused a connection that did not authenticate", c->where);
			c->d->refused++;
		}
		conn_close(c, c->ls ? "a record failed to decrypt: closed without a word" : NULL);
		return -1;
	}
	if (ret < 0) {
		conn_end(c, ret);
		return -1;
	}
	return 0;
}

int conn_flush(struct conn *c)
{
	/* The burst's bundles commit together, then their ACKs go (link.h group_commit). */
	int ret = c->ls ? link_session_flush(c->ls) : 0;
	if (ret < 0) {
		conn_end(c, ret);
		return -1;
	}
	return 0;
}

static void on_readable(struct conn *c)
{
	uint8_t buf[64 * 1024];
	/* At most 16 reads per wakeup, so one busy peer cannot starve the others. */
	for (int i = 0; i < 16; i++) {
		ssize_t r = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (r <= 0) {
			conn_end(c, r == 0 ? -ECONNRESET : -errno);
			return;
		}
		if (c->peer)
			c->peer->bytes_in += (size_t)r;
		if (conn_input(c, buf, (size_t)r) < 0)
			return;
		const uint8_t *out;
		if (tcp_output(c->tcp, &out) > OUT_HARD)
			break;
	}
	if (conn_flush(c) == 0)
		conn_service(c);
}

static void on_connected(struct conn *c)
{
	int err = 0;
	socklen_t len = sizeof(err);
	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err) {
		dial_failed(c->peer, c->where, err);
		conn_close(c, NULL);
		return;
	}
	c->connecting = false;
	int ret = tcp_new_initiator(c->d->n->id, &c->peer->pub, &c->tcp);
	if (ret < 0) {
		conn_close(c, strerror(-ret));
		return;
	}
	arm_timer(c, HANDSHAKE_TIMEOUT_S);
	conn_service(c);
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
	struct conn *c = w->data;
	(void)loop;
	if (c->connecting) {
		on_connected(c);
		return;
	}
	if (revents & EV_WRITE) {
		conn_service(c);
		return; /* c may be gone; a read event comes again */
	}
	if (revents & EV_READ)
		on_readable(c);
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct conn *c = w->data;
	(void)loop;
	(void)revents;
	if (!c->ls) {
		conn_close(c, c->connecting ? "connect timed out" : "handshake timed out");
		return;
	}
	daemon_clock(c->d);
	int ret = link_session_tick(c->ls, daemon_mono_ms());
	if (ret < 0) {
		conn_end(c, ret);
		return;
	}
	conn_service(c);
}

static void nodelay(int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* The oldest unauthenticated caller, from host if given. */
static struct conn *oldest_pending(struct daemon *d, const char *host, size_t *count)
{
	struct conn *old = NULL;
	*count = 0;
	for (struct conn *c = d->conns; c; c = c->next) {
		if (!c->pending || (host && strcmp(c->host, host)))
			continue;
		++*count;
		if (!old || c->started_ms <= old->started_ms)
			old = c;
	}
	return old;
}

struct conn *conn_new_serial(struct daemon *d, struct sline *line, struct dpeer *p, bool caller)
{
	struct conn *c = conn_new(d, -1, caller, p->sp.name);
	if (!c)
		return NULL;
	snprintf(c->where, sizeof(c->where), "serial");
	c->line = line;
	c->peer = p;
	arm_timer(c, SERIAL_HANDSHAKE_TIMEOUT_S);
	return c;
}

int conn_accept(struct daemon *d, int fd, const char *host, const char *where)
{
	if (d->stopping) {
		close(fd);
		return -ESHUTDOWN;
	}
	/*
	 * Callers that have not authenticated cost a handshake each and hold a descriptor:
	 * at most MAX_PENDING of them, PENDING_PER_HOST from one address. Past that the
	 * oldest gives way, so silent connections cannot lock real peers out for long.
	 */
	size_t n;
	struct conn *old = oldest_pending(d, host, &n);
	if (n >= PENDING_PER_HOST ||
	    (d->n_pending >= MAX_PENDING && (old = oldest_pending(d, NULL, &n)) != NULL)) {
		log_debug("%s: too many callers waiting: the oldest gives way", old->where);
		d->refused++;
		conn_close(old, NULL);
	}
	nodelay(fd);
	struct conn *c = conn_new(d, fd, false, where);
	if (!c) {
		close(fd);
		return -ENOMEM;
	}
	snprintf(c->host, sizeof(c->host), "%s", host);
	c->pending = true;
	d->n_pending++;
	int ret = tcp_new_responder(d->n->id, lookup, c, &c->tcp);
	if (ret < 0) {
		conn_close(c, NULL);
		return ret;
	}
	ev_io_start(d->loop, &c->io);
	arm_timer(c, HANDSHAKE_TIMEOUT_S);
	return 0;
}

/* Splits HOST:PORT or [V6]:PORT. */
static int split_addr(const char *addr, char *host, size_t hlen, char *port, size_t plen)
{
	const char *colon = strrchr(addr, ':');
	if (!colon || !colon[1])
		return -EINVAL;
	const char *h = addr;
	size_t n = (size_t)(colon - addr);
	if (n >= 2 && addr[0] == '[' && addr[n - 1] == ']') {
		h++;
		n -= 2;
	}
	if (n == 0 || n >= hlen || strlen(colon + 1) >= plen)
		return -EINVAL;
	memcpy(host, h, n);
	host[n] = '\0';
	snprintf(port, plen, "%s", colon + 1);
	return 0;
}

int daemon_resolve(const char *addr, bool passive, struct addrinfo **out)
{
	char host[DAEMON_ADDR_MAX], port[16];
	if (split_addr(addr, host, sizeof(host), port, sizeof(port)) < 0)
		return -EINVAL;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = passive ? AI_PASSIVE : 0};
	int ret = getaddrinfo(host, port, &hints, out);
	return ret == 0 ? 0 : -EHOSTUNREACH;
}

void conn_dial(struct dpeer *p)
{
	struct daemon *d = p->d;
	if (p->conn || p->dialing || !p->n_addrs || d->stopping)
		return;
	daemon_clock(d);
	if (!daemon_window_open(d, p)) {
		dpeer_schedule_dial(p, false);
		return;
	}
	size_t round = p->next_addr / p->n_addrs;
	const char *addr = p->addrs[p->next_addr++ % p->n_addrs];
	struct addrinfo *ai = NULL;
	/* A blocking lookup: peers are usually given by number; a name costs one resolver wait. */
	if (daemon_resolve(addr, false, &ai) < 0) {
		log_warn("%s: cannot resolve %s", p->sp.name, addr);
		dpeer_schedule_dial(p, true);
		return;
	}
	/*
	 * A name may give several addresses (localhost: ::1, then 127.0.0.1): each round over
	 * the configured addresses takes the next of them, so a peer listening on one family
	 * only is reached all the same.
	 */
	size_t n_ai = 0;
	for (const struct addrinfo *x = ai; x; x = x->ai_next)
		n_ai++;
	const struct addrinfo *pick = ai;
	for (size_t i = round % n_ai; i > 0; i--)
		pick = pick->ai_next;
	int fd = socket(pick->ai_family, pick->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			pick->ai_protocol);
	int ret = fd < 0 ? -errno : 0;
	if (ret == 0 && connect(fd, pick->ai_addr, pick->ai_addrlen) < 0 && errno != EINPROGRESS)
		ret = -errno;
	freeaddrinfo(ai);
	if (ret < 0) {
		dial_failed(p, addr, -ret);
		if (fd >= 0)
			close(fd);
		dpeer_schedule_dial(p, true);
		return;
	}
	nodelay(fd);
	struct conn *c = conn_new(d, fd, true, addr);
	if (!c) {
		close(fd);
		dpeer_schedule_dial(p, true);
		return;
	}
	c->peer = p;
	c->connecting = true;
	p->dialing = c;
	ev_io_set(&c->io, fd, EV_WRITE);
	ev_io_start(d->loop, &c->io);
	arm_timer(c, CONNECT_TIMEOUT_S);
}
