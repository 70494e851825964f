/* The daemon's peer table: read from the store at start, on SIGHUP and when a stranger calls. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relay/daemon_internal.h"
#include "relay/log.h"
#include "transports/serial.h"

static void on_dial_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	conn_dial(w->data);
}

struct load_ctx {
	struct daemon *d;
	struct dpeer **next;
	size_t n, cap;
	int err;
};

static struct dpeer *find(struct daemon *d, const struct store_peer *sp)
{
	for (size_t i = 0; i < d->n_peers; i++)
		if (!memcmp(d->peers[i]->sp.sign_pk, sp->sign_pk, 32))
			return d->peers[i];
	return NULL;
}

static int add_one(void *ctx, const struct store_peer *sp)
{
	struct load_ctx *l = ctx;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct dpeer **p = realloc(l->next, cap * sizeof(*p));
		if (!p)
			return l->err = -ENOMEM;
		l->next = p;
		l->cap = cap;
	}
	struct dpeer *p = find(l->d, sp);
	bool fresh = !p;
	if (fresh) {
		p = calloc(1, sizeof(*p));
		if (!p)
			return l->err = -ENOMEM;
		p->d = l->d;
		ev_init(&p->dial_timer, on_dial_timer);
		p->dial_timer.data = p;
	}
	p->sp = *sp;
	memcpy(p->pub.sign_pk, sp->sign_pk, 32);
	memcpy(p->pub.box_pk, sp->box_pk, 32);
	memcpy(p->pub.cert, sp->cert, sizeof(p->pub.cert));
	p->pub.epoch = sp->epoch;
	/* tern.conf's addresses, if it names the peer; else the one `tern peer add` gave. */
	p->cp = l->d->cfg ? config_peer_find(l->d->cfg, sp->name) : NULL;
	char addrs[DAEMON_MAX_ADDRS][DAEMON_ADDR_MAX];
	size_t n = 0;
	for (size_t i = 0; p->cp && i < p->cp->n_addrs && n < DAEMON_MAX_ADDRS; i++)
		snprintf(addrs[n++], DAEMON_ADDR_MAX, "%s", p->cp->addrs[i].text);
	const char *serial = p->cp && p->cp->serial[0] ? p->cp->serial : "";
	if (!serial[0] && serial_spec_is(sp->addr))
		serial = sp->addr;
	else if (n == 0 && sp->addr[0])
		snprintf(addrs[n++], DAEMON_ADDR_MAX, "%s", sp->addr);
	if (n != p->n_addrs || memcmp(addrs, p->addrs, n * DAEMON_ADDR_MAX)) {
		memcpy(p->addrs, addrs, n * DAEMON_ADDR_MAX);
		p->n_addrs = n;
		p->next_addr = 0;
		if (!fresh && !p->conn && !p->dialing) {
			p->backoff_ms = 0; /* a new address: try it now */
			dpeer_schedule_dial(p, false);
		}
	}
	p->seen = true;
	l->next[l->n++] = p;
	if (serial[0])
		daemon_serial_attach(p, serial,
				     p->cp && p->cp->serial[0] && p->cp->modem_line ? &p->cp->modem
										    : NULL);
	else
		daemon_serial_detach(p);
	if (p->cp && p->cp->sbd[0])
		daemon_sbd_attach(p, p->cp->sbd, p->cp->sbd_check_ms, p->cp->sbd_retry_ms);
	else
		daemon_sbd_detach(p);
	if (fresh)
		daemon_load_totals(p);
	if (fresh && p->n_addrs)
		dpeer_schedule_dial(p, false);
	return 0;
}

int daemon_peers_load(struct daemon *d)
{
	struct load_ctx l = {.d = d};
	for (size_t i = 0; i < d->n_peers; i++)
		d->peers[i]->seen = false;
	daemon_clock(d);
	int ret = store_peer_foreach(d->n->store, add_one, &l);
	if (ret < 0 || l.err < 0) {
		/* Keep the table we had; the new entries made so far are in l.next only. */
		for (size_t i = 0; i < l.n; i++) {
			if (!find(d, &l.next[i]->sp)) {
				ev_timer_stop(d->loop, &l.next[i]->dial_timer);
				free(l.next[i]);
			}
		}
		free(l.next);
		log_warn("cannot read the peers: %s", store_errmsg(d->n->store));
		return ret < 0 ? ret : l.err;
	}
	for (size_t i = 0; i < d->n_peers; i++) {
		struct dpeer *p = d->peers[i];
		if (p->seen)
			continue;
		log_info("%s: no longer a peer", p->sp.name);
		if (p->conn)
			conn_close(p->conn, "removed from the peers");
		if (p->dialing)
			conn_close(p->dialing, NULL);
		for (struct conn *c = d->conns; c; c = c->next)
			if (c->peer == p)
				c->peer =
				    NULL; /* a handshake in progress: it finds no peer at the end */
		ev_timer_stop(d->loop, &p->dial_timer);
		daemon_serial_detach(p);
		daemon_sbd_detach(p);
		daemon_save_counters(p);
		free(p);
	}
	free(d->peers);
	d->peers = l.next;
	d->n_peers = l.n;
	return 0;
}

struct dpeer *daemon_peer_by_box(struct daemon *d, const uint8_t box_pk[static 32])
{
	for (size_t i = 0; i < d->n_peers; i++)
		if (!memcmp(d->peers[i]->pub.box_pk, box_pk, 32))
			return d->peers[i];
	return NULL;
}

void daemon_peers_free(struct daemon *d)
{
	for (size_t i = 0; i < d->n_peers; i++) {
		ev_timer_stop(d->loop, &d->peers[i]->dial_timer);
		daemon_serial_detach(d->peers[i]);
		daemon_sbd_detach(d->peers[i]);
		daemon_save_counters(d->peers[i]);
		free(d->peers[i]);
	}
	free(d->peers);
	d->peers = NULL;
	d->n_peers = 0;
}
