/* The daemon's Iridium SBD modems: bundles out as parcels of MO messages, MT messages in. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "relay/cli.h"
#include "relay/daemon_internal.h"
#include "relay/log.h"
#include "relay/sbd.h"
#include "transports/sbd.h"
#include "transports/serial_port.h"

/*
 * docs/serial.md, "Iridium SBD". Every session costs credit, so one is started only to send a
 * message of a parcel, or to check the mailbox when that is worth it: the modem rang (an MT
 * message waits), the last session said more are queued, or the peer's sbd-check interval
 * came. A session that sends also brings an MT message if one waits, for nothing more.
 */

#define REOPEN_S     5.0
#define RETRY_MAX_MS (30 * 60 * 1000)

struct sbdline {
	struct daemon *d;
	struct dpeer *p;
	struct serial_spec spec;
	char text[SERIAL_SPEC_TEXT_MAX];
	uint32_t check_ms, retry_ms;
	struct serial_port *port;
	struct sbd *modem;
	ev_io io;
	ev_timer timer;
	bool blocked;
	int write_err;
	/* The parcel being sent: its messages, and how many went. */
	uint8_t (*pieces)[SBD_MO_MAX];
	size_t piece_len[SBD_PIECES_MAX];
	unsigned n_pieces, sent;
	uint8_t bundle_id[32];
	uint64_t next_try_ms, backoff_ms, next_check_ms;
	bool check_due;
	uint64_t queue_gen, checked_gen;
	uint64_t sessions, failed, mo_messages, mt_messages, parcels_out, parcels_in;
	char last[80];
};

static void sbd_service(struct sbdline *l);

static void arm(struct sbdline *l)
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
	uint64_t now = daemon_mono_ms(), due = sbd_deadline(l->modem, now);
	if (sbd_state(l->modem) == SBD_IDLE) {
		if (l->n_pieces && l->next_try_ms < due)
			due = l->next_try_ms;
		if (l->check_ms && l->next_check_ms < due)
			due = l->next_check_ms;
	}
	if (l->write_err)
		due = now;
	if (due == UINT64_MAX)
		return;
	ev_timer_set(&l->timer, due > now ? (double)(due - now) / 1000.0 : 0, 0);
	ev_timer_start(d->loop, &l->timer);
}

static void flush(struct sbdline *l)
{
	uint64_t now = daemon_mono_ms();
	const uint8_t *buf;
	size_t n;
	l->blocked = false;
	while (l->port && (n = sbd_output(l->modem, now, &buf)) > 0) {
		ssize_t w = serial_port_write(l->port, buf, n);
		if (w < 0) {
			l->write_err = (int)w;
			break;
		}
		if (w == 0) {
			l->blocked = true;
			break;
		}
		sbd_consumed(l->modem, (size_t)w);
	}
	arm(l);
}

static void port_lost(struct sbdline *l, const char *why)
{
	log_warn("%s: SBD modem %s: %s; trying again every %.0f s", l->p->sp.name, l->spec.path,
		 why, REOPEN_S);
	ev_io_stop(l->d->loop, &l->io);
	serial_port_close(l->port);
	l->port = NULL;
	arm(l);
}

/* ---- the parcel in flight, kept across a restart: its messages are paid for ---- */

/*
 * <home>/sbd-out/<peer node>.parcel holds the parcel's messages as cut (a new cut would
 * be another parcel, and what the gateway has of this one would be wasted); the store's
 * setting sbd.<peer node>.sent says how many went. The file: "TSP1", the bundle id, the
 * count, then each message as a u16be length and its bytes.
 */
#define PARCEL_MAGIC "TSP1"

static int parcel_path(const struct sbdline *l, char *out, size_t len, bool mkdir_too)
{
	char dir[HOME_PATH_MAX];
	if (home_path("sbd-out", dir, sizeof(dir)) < 0)
		return -ENAMETOOLONG;
	if (mkdir_too && mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	snprintf(out, len, "%s/%" PRIu64 ".parcel", dir, l->p->sp.node);
	return 0;
}

static void save_sent(struct sbdline *l)
{
	char key[64], value[80];
	snprintf(key, sizeof(key), "sbd.%" PRIu64 ".sent", l->p->sp.node);
	hex_encode(l->bundle_id, 32, value);
	snprintf(value + 64, sizeof(value) - 64, " %u", l->sent);
	if (store_setting_set(l->d->n->store, key, l->n_pieces ? value : "") < 0)
		log_warn("%s: the SBD parcel's progress was not saved", l->p->sp.name);
}

static void save_parcel(struct sbdline *l)
{
	char path[HOME_PATH_MAX + 32], tmp[HOME_PATH_MAX + 40];
	uint8_t head[4 + 32 + 1];
	if (parcel_path(l, path, sizeof(path), true) < 0)
		return;
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	bool ok = fd >= 0;
	memcpy(head, PARCEL_MAGIC, 4);
	memcpy(head + 4, l->bundle_id, 32);
	head[36] = (uint8_t)l->n_pieces;
	ok = ok && write(fd, head, sizeof(head)) == (ssize_t)sizeof(head);
	for (unsigned i = 0; ok && i < l->n_pieces; i++) {
		uint8_t len[2] = {(uint8_t)(l->piece_len[i] >> 8), (uint8_t)l->piece_len[i]};
		ok = write(fd, len, 2) == 2 &&
		     write(fd, l->pieces[i], l->piece_len[i]) == (ssize_t)l->piece_len[i];
	}
	ok = ok && fsync(fd) == 0;
	if (fd >= 0)
		close(fd);
	if (!ok || rename(tmp, path) < 0) {
		unlink(tmp);
		log_warn(
		    "%s: the SBD parcel was not saved: a restart sends it again from the start",
		    l->p->sp.name);
		return;
	}
	save_sent(l);
}

/* A parcel an earlier run was sending, if its bundle still waits: taken up where it was. */
static void load_parcel(struct sbdline *l)
{
	char path[HOME_PATH_MAX + 32], key[64], value[80] = "";
	uint8_t head[4 + 32 + 1];
	if (parcel_path(l, path, sizeof(path), false) < 0)
		return;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return;
	bool ok = read(fd, head, sizeof(head)) == (ssize_t)sizeof(head) &&
		  !memcmp(head, PARCEL_MAGIC, 4) && head[36] > 0;
	if (ok)
		l->pieces = malloc((size_t)head[36] * SBD_MO_MAX);
	for (unsigned i = 0; ok && l->pieces && i < head[36]; i++) {
		uint8_t len[2];
		ok = read(fd, len, 2) == 2;
		size_t n = ok ? (size_t)len[0] << 8 | len[1] : 0;
		ok = ok && n > SBD_PIECE_HEAD && n <= SBD_MO_MAX &&
		     read(fd, l->pieces[i], n) == (ssize_t)n;
		l->piece_len[i] = n;
	}
	close(fd);
	snprintf(key, sizeof(key), "sbd.%" PRIu64 ".sent", l->p->sp.node);
	char hex[65];
	hex_encode(head + 4, 32, hex);
	unsigned sent = 0;
	ok = ok && l->pieces && store_setting_get(l->d->n->store, key, value, sizeof(value)) == 0 &&
	     !strncmp(value, hex, 64) && sscanf(value + 64, " %u", &sent) == 1 && sent < head[36] &&
	     store_bundle_exists(l->d->n->store, head + 4);
	if (!ok) {
		free(l->pieces);
		l->pieces = NULL;
		unlink(path);
		return;
	}
	memcpy(l->bundle_id, head + 4, 32);
	l->n_pieces = head[36];
	l->sent = sent;
	log_info("%s: bundle %.12s goes on over SBD: %u of %u messages were sent", l->p->sp.name,
		 hex, sent, l->n_pieces);
}

/* The parcel out of memory; still on disk for the next run. */
static void free_parcel(struct sbdline *l)
{
	free(l->pieces);
	l->pieces = NULL;
	l->n_pieces = l->sent = 0;
}

/* The parcel is done with (sent, or never to be): out of memory and off the disk. */
static void drop_parcel(struct sbdline *l)
{
	char path[HOME_PATH_MAX + 32];
	bool had = l->n_pieces > 0;
	free_parcel(l);
	if (had && parcel_path(l, path, sizeof(path), false) == 0) {
		unlink(path);
		save_sent(l);
	}
}

/* ---- the next parcel ---- */

struct pick {
	struct sbdline *l;
	uint8_t *buf;
	size_t len, cap;
	bool found;
};

static int mem_sink(void *ctx, const uint8_t *buf, size_t len)
{
	struct pick *k = ctx;
	if (k->len + len > k->cap)
		return -EFBIG;
	memcpy(k->buf + k->len, buf, len);
	k->len += len;
	return 0;
}

static int keep_piece(void *ctx, const uint8_t *piece, size_t len, unsigned index, unsigned count)
{
	struct sbdline *l = ctx;
	(void)count;
	memcpy(l->pieces[index], piece, len);
	l->piece_len[index] = len;
	return 0;
}

static int pick_one(void *ctx, const struct store_bundle *b, const uint8_t *head, size_t headlen)
{
	struct pick *k = ctx;
	struct sbdline *l = k->l;
	struct dpeer *p = l->p;
	struct store_peer via;
	if ((p->cp && b->priority < p->cp->min_priority) ||
	    node_next_hop(l->d->n, b->dest_node, &via) < 0 || via.node != p->sp.node ||
	    store_bundle_held_by(l->d->n->store, b->rowid, p->sp.node))
		return 0;
	char hex[65];
	hex_encode(b->id, 32, hex);
	k->len = 0;
	int err = node_emit(l->d->n, b, head, headlen, mem_sink, k, NULL);
	unsigned count = err == 0 ? sbd_parcel_pieces(k->len, SBD_MO_MAX) : 0;
	if (err == -ELOOP) {
		store_bundle_delete(l->d->n->store, b->id);
		return 0;
	}
	if (err < 0 || !count) {
		/* Left for another link: marked as held, it is not tried here again. */
		log_warn("%s: bundle %.12s cannot go over SBD: %s", p->sp.name, hex,
			 err == -EFBIG || !count ? "too big (more than 255 messages)"
						 : strerror(-err));
		store_bundle_add_holder(l->d->n->store, b->id, p->sp.node);
		return 0;
	}
	l->pieces = malloc((size_t)count * SBD_MO_MAX);
	if (!l->pieces)
		return -ENOMEM;
	err = sbd_parcel_cut(l->d->n, &p->pub, k->buf, k->len, SBD_MO_MAX, keep_piece, l);
	if (err < 0) {
		drop_parcel(l);
		return err;
	}
	l->n_pieces = count;
	l->sent = 0;
	memcpy(l->bundle_id, b->id, 32);
	save_parcel(l);
	log_info("%s: bundle %.12s (%zu bytes) goes over SBD in %u message%s", p->sp.name, hex,
		 k->len, count, count == 1 ? "" : "s");
	k->found = true;
	return 1;
}

static void next_parcel(struct sbdline *l)
{
	struct pick k = {.l = l, .cap = (size_t)SBD_PIECES_MAX * (SBD_MO_MAX - SBD_PIECE_HEAD)};
	k.buf = malloc(k.cap);
	if (!k.buf)
		return;
	daemon_clock(l->d);
	store_bundle_foreach(l->d->n->store, STORE_QUEUED, &l->d->n->now, pick_one, &k);
	free(k.buf);
	if (!k.found)
		l->checked_gen = l->queue_gen; /* nothing more until the queue changes */
}

/* ---- the modem's events ---- */

static void parcel_sent(struct sbdline *l)
{
	struct daemon *d = l->d;
	struct dpeer *p = l->p;
	char hex[65];
	hex_encode(l->bundle_id, 32, hex);
	daemon_clock(d);
	/* Handed to the gateway: not sent again; a receipt from the peer may release it. */
	int err =
	    store_bundle_mark_exported(d->n->store, l->bundle_id, p->sp.node, d->n->now.unix_ms);
	if (err == 0)
		err = store_bundle_add_holder(d->n->store, l->bundle_id, p->sp.node);
	if (err < 0 && err != -ENOENT)
		log_warn("%s: bundle %.12s: sent over SBD, but not recorded: %s", p->sp.name, hex,
			 strerror(-err));
	log_info("%s: bundle %.12s sent over SBD (%u message%s)", p->sp.name, hex, l->n_pieces,
		 l->n_pieces == 1 ? "" : "s");
	l->parcels_out++;
	drop_parcel(l);
	l->checked_gen = l->queue_gen - 1; /* look for the next one */
}

static void take_mt(struct sbdline *l, const uint8_t *mt, size_t len)
{
	struct daemon *d = l->d;
	char spool[HOME_PATH_MAX];
	struct sbd_take_result res;
	l->mt_messages++;
	l->p->bytes_in += len;
	daemon_clock(d);
	int err = home_path("sbd", spool, sizeof(spool));
	if (err == 0)
		err = sbd_take(d->n, spool, mt, len, &res);
	if (err < 0) {
		log_warn("%s: an SBD message could not be kept: %s", l->p->sp.name, strerror(-err));
		return;
	}
	if (res.kind == SBD_KEPT || res.kind == SBD_DUPLICATE) {
		log_info("%s: SBD parcel %s: %u of %u messages here", l->p->sp.name, res.parcel,
			 res.have, res.count);
		return;
	}
	if (res.kind != SBD_DONE) {
		log_warn("%s: an SBD message was refused: %s", l->p->sp.name, res.why);
		return;
	}
	l->parcels_in++;
	char hex[65];
	hex_encode(res.ingest.bundle_id, 32, hex);
	log_info("%s: bundle %.12s came over SBD from %s (%s)", l->p->sp.name, hex, res.peer,
		 res.ingest.verdict == INGEST_DELIVERED	  ? "delivered"
		 : res.ingest.verdict == INGEST_QUEUED	  ? "queued to forward"
		 : res.ingest.verdict == INGEST_DUPLICATE ? "a duplicate"
							  : "a receipt");
	if (res.ingest.verdict == INGEST_DELIVERED) {
		struct receipt_batch rb = {0};
		unsigned acks = 0;
		receipt_batch_add(&rb, res.ingest.inbox.sender_pk, res.ingest.inbox.msg_id);
		receipt_batch_flush(d->n, &rb, &acks);
	}
	daemon_kick(d, KICK_NEW | KICK_API);
}

static void on_modem(void *ctx, enum sbd_event ev, const struct sbd_result *r, const uint8_t *mt,
		     size_t mt_len, const char *detail)
{
	struct sbdline *l = ctx;
	const char *name = l->p->sp.name;
	uint64_t now = daemon_mono_ms();
	if (detail[0])
		snprintf(l->last, sizeof(l->last), "%s", detail);
	switch (ev) {
	case SBD_EV_READY:
		log_info("%s: SBD modem on %s ready", name, l->spec.path);
		break;
	case SBD_EV_SENT:
	case SBD_EV_CHECKED:
		l->sessions++;
		l->backoff_ms = l->retry_ms;
		l->check_due = r->mt_queued > 0;
		if (l->check_ms)
			l->next_check_ms = now + l->check_ms;
		if (ev == SBD_EV_SENT && l->n_pieces) {
			l->mo_messages++;
			l->p->bytes_out += l->piece_len[l->sent];
			if (++l->sent == l->n_pieces)
				parcel_sent(l);
			else
				save_sent(l);
		}
		break;
	case SBD_EV_SESSION_FAILED: {
		l->sessions += r->mo_status >= 0;
		l->failed++;
		uint32_t jitter;
		tern_random(&jitter, sizeof(jitter));
		uint64_t wait = l->backoff_ms / 2 + jitter % (l->backoff_ms + 1);
		l->next_try_ms = now + wait;
		if (l->check_due || !l->n_pieces)
			l->next_check_ms = now + wait;
		log_warn("%s: SBD session failed: %s; trying again in about %" PRIu64 " s", name,
			 detail, wait / 1000);
		l->backoff_ms = l->backoff_ms * 2 < RETRY_MAX_MS ? l->backoff_ms * 2 : RETRY_MAX_MS;
		break;
	}
	case SBD_EV_MT:
		take_mt(l, mt, mt_len);
		break;
	case SBD_EV_MT_FAILED:
		log_warn("%s: an SBD message could not be read: %s", name, detail);
		break;
	case SBD_EV_RING:
		log_info("%s: the SBD modem rang: a message waits at the gateway", name);
		l->check_due = true;
		break;
	case SBD_EV_MODEM_FAILED:
		log_warn("%s: SBD modem on %s: %s", name, l->spec.path, detail);
		break;
	}
	/* The next session is started from the timer, outside the modem's own call. */
	ev_timer_stop(l->d->loop, &l->timer);
	ev_timer_set(&l->timer, 0, 0);
	ev_timer_start(l->d->loop, &l->timer);
}

static void sbd_service(struct sbdline *l)
{
	if (!l->port)
		return;
	uint64_t now = daemon_mono_ms();
	sbd_poll(l->modem, now);
	daemon_clock(l->d);
	if (sbd_state(l->modem) == SBD_IDLE && daemon_window_open(l->d, l->p)) {
		if (!l->n_pieces && l->checked_gen != l->queue_gen) {
			l->checked_gen = l->queue_gen;
			next_parcel(l);
		}
		if (l->n_pieces && now >= l->next_try_ms) {
			if (sbd_mo_loaded(l->modem))
				sbd_retry(l->modem, now);
			else
				sbd_send(l->modem, l->pieces[l->sent], l->piece_len[l->sent], now);
		} else if (!l->n_pieces && now >= l->next_check_ms &&
			   (l->check_due || l->check_ms)) {
			log_info("%s: checking the SBD mailbox (%s)", l->p->sp.name,
				 l->check_due ? "a message waits" : "sbd-check");
			l->check_due = false;
			l->next_check_ms = now + (l->check_ms ? l->check_ms : l->retry_ms);
			sbd_check(l->modem, now);
		}
	}
	flush(l);
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
	struct sbdline *l = w->data;
	(void)loop;
	if (revents & EV_READ) {
		uint8_t buf[1024];
		for (int i = 0; i < 16 && l->port; i++) {
			ssize_t r = serial_port_read(l->port, buf, sizeof(buf));
			if (r < 0) {
				port_lost(l, strerror((int)-r));
				return;
			}
			if (r == 0)
				break;
			sbd_input(l->modem, buf, (size_t)r, daemon_mono_ms());
		}
	}
	sbd_service(l);
}

static int open_port(struct sbdline *l, const char **why)
{
	int ret = serial_port_open(&l->spec, &l->port, why);
	if (ret < 0) {
		l->port = NULL;
		return ret;
	}
	log_info("%s: SBD modem %s open (%u baud)", l->p->sp.name, l->spec.path,
		 (unsigned)l->spec.baud);
	ev_io_set(&l->io, serial_port_fd(l->port), EV_READ);
	ev_io_start(l->d->loop, &l->io);
	sbd_start(l->modem, daemon_mono_ms());
	return 0;
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct sbdline *l = w->data;
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
		log_debug("%s: SBD modem %s: %s", l->p->sp.name, l->spec.path, why);
		arm(l);
		return;
	}
	sbd_service(l);
}

int daemon_sbd_attach(struct dpeer *p, const char *text, uint32_t check_ms, uint32_t retry_ms)
{
	if (p->sbd && !strcmp(p->sbd->text, text) && p->sbd->check_ms == check_ms &&
	    p->sbd->retry_ms == retry_ms)
		return 0;
	daemon_sbd_detach(p);
	const char *why;
	struct serial_spec spec;
	if (!serial_spec_parse(text, &spec, &why)) {
		log_warn("%s: %s: %s", p->sp.name, text, why);
		return -EINVAL;
	}
	struct sbdline *l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->d = p->d;
	l->p = p;
	l->spec = spec;
	snprintf(l->text, sizeof(l->text), "%s", text);
	l->check_ms = check_ms;
	l->retry_ms = l->backoff_ms = retry_ms;
	l->queue_gen = 1;
	l->next_check_ms = check_ms ? daemon_mono_ms() + check_ms : 0;
	int ret = sbd_new(on_modem, l, &l->modem);
	if (ret < 0) {
		free(l);
		return ret;
	}
	ev_init(&l->io, on_io);
	l->io.data = l;
	ev_init(&l->timer, on_timer);
	l->timer.data = l;
	p->sbd = l;
	load_parcel(l);
	if (open_port(l, &why) < 0) {
		log_warn("%s: SBD modem %s: %s; trying again every %.0f s", p->sp.name, spec.path,
			 why, REOPEN_S);
		arm(l);
		return 0;
	}
	sbd_service(l);
	return 0;
}

void daemon_sbd_detach(struct dpeer *p)
{
	struct sbdline *l = p->sbd;
	if (!l)
		return;
	ev_io_stop(l->d->loop, &l->io);
	ev_timer_stop(l->d->loop, &l->timer);
	serial_port_close(l->port);
	sbd_free(l->modem);
	free_parcel(l);
	free(l);
	p->sbd = NULL;
}

void daemon_sbd_queue_changed(struct sbdline *l)
{
	l->queue_gen++;
	if (l->port && sbd_state(l->modem) == SBD_IDLE && !l->n_pieces)
		sbd_service(l);
}

void daemon_sbd_kick(struct sbdline *l)
{
	sbd_service(l);
}

const char *daemon_sbd_device(const struct sbdline *l)
{
	return l->spec.path;
}

void daemon_sbd_status(const struct sbdline *l, FILE *out)
{
	fprintf(out, ", \"sbd\": {\"device\": ");
	json_string(out, l->spec.path);
	fprintf(out,
		", \"state\": \"%s\", \"sessions\": %" PRIu64 ", \"failed\": %" PRIu64
		", \"mo_messages\": %" PRIu64 ", \"mt_messages\": %" PRIu64
		", \"parcels_out\": %" PRIu64 ", \"parcels_in\": %" PRIu64
		", \"parcel_sent\": %u, \"parcel_messages\": %u, \"last\": ",
		!l->port ? "closed" : sbd_state_name(sbd_state(l->modem)), l->sessions, l->failed,
		l->mo_messages, l->mt_messages, l->parcels_out, l->parcels_in, l->sent,
		l->n_pieces);
	json_string(out, l->last);
	fprintf(out, "}");
}
