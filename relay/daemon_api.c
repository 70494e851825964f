/* The daemon's side of the local API: the Unix socket in the node home and its clients. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "relay/api.h"
#include "relay/cli.h"
#include "relay/daemon_internal.h"
#include "relay/log.h"

#define MAX_CLIENTS 64

struct api_conn {
	struct daemon *d;
	struct api_conn *next;
	int fd;
	ev_io io;
	struct api_client *cl;
	bool closing; /* the client's last request failed: write what is pending, then close */
};

static void client_close(struct api_conn *a)
{
	struct daemon *d = a->d;
	ev_io_stop(d->loop, &a->io);
	close(a->fd);
	api_client_free(a->cl);
	for (struct api_conn **pp = &d->api_conns; *pp; pp = &(*pp)->next) {
		if (*pp == a) {
			*pp = a->next;
			break;
		}
	}
	free(a);
}

/* Writes what the client has pending; false if the connection was closed. */
static bool client_flush(struct api_conn *a)
{
	const uint8_t *buf;
	size_t n;
	while ((n = api_client_output(a->cl, &buf)) > 0) {
		ssize_t w = send(a->fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (w <= 0) {
			client_close(a);
			return false;
		}
		api_client_consumed(a->cl, (size_t)w);
	}
	if (n == 0 && a->closing) {
		client_close(a);
		return false;
	}
	int events =
	    (a->closing || !api_client_wants_input(a->cl) ? 0 : EV_READ) | (n > 0 ? EV_WRITE : 0);
	if (a->io.events != events) {
		ev_io_stop(a->d->loop, &a->io);
		ev_io_set(&a->io, a->fd, events);
		ev_io_start(a->d->loop, &a->io);
	}
	return true;
}

static void on_client(struct ev_loop *loop, ev_io *w, int revents)
{
	struct api_conn *a = w->data;
	(void)loop;
	if (revents & EV_READ) {
		uint8_t buf[16384];
		ssize_t r = recv(a->fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (r <= 0) {
			client_close(a);
			return;
		}
		daemon_clock(a->d);
		if (api_client_input(a->cl, buf, (size_t)r) < 0)
			a->closing = true;
	}
	client_flush(a);
}

static void queued(void *ctx)
{
	struct daemon *d = ctx;
	/* The CLI says so after peer add or remove too: read the peers again, at most 1/s. */
	uint64_t now = daemon_mono_ms();
	if (now - d->last_peer_reload_ms > 1000) {
		d->last_peer_reload_ms = now;
		daemon_peers_load(d);
	}
	daemon_kick(d, KICK_QUEUE | KICK_API);
}

struct hop_count {
	struct daemon *d;
	uint64_t *count; /* per peer index; the last slot: no route */
};

static int count_hop(void *ctx, const struct store_bundle *b, const uint8_t *head, size_t len)
{
	struct hop_count *h = ctx;
	struct store_peer via;
	(void)head;
	(void)len;
	size_t slot = h->d->n_peers;
	if (node_next_hop(h->d->n, b->dest_node, &via) == 0)
		for (size_t i = 0; i < h->d->n_peers; i++)
			if (h->d->peers[i]->sp.node == via.node)
				slot = i;
	h->count[slot]++;
	return 0;
}

static void json_time(FILE *out, const char *key, uint64_t unix_ms)
{
	char t[40];
	format_time(unix_ms, t, sizeof(t));
	/* Unknown is null, as everywhere in the API (docs/api.md). */
	if (unix_ms)
		fprintf(out, ", \"%s\": \"%s\"", key, t);
	else
		fprintf(out, ", \"%s\": null", key);
}

static int status(void *ctx, FILE *out)
{
	struct daemon *d = ctx;
	struct hop_count h = {d, calloc(d->n_peers + 1, sizeof(uint64_t))};
	if (!h.count)
		return -ENOMEM;
	daemon_clock(d);
	int ret = store_bundle_foreach(d->n->store, STORE_QUEUED, &d->n->now, count_hop, &h);
	if (ret < 0) {
		free(h.count);
		return ret;
	}
	fprintf(out, "{\"node\": \"ipn:%u\", \"pid\": %ld", d->n->node_num, (long)getpid());
	json_time(out, "started", d->started_unix_ms);
	fprintf(out, ", \"listen\": [");
	for (size_t i = 0; i < d->n_listen; i++) {
		fprintf(out, "%s", i ? ", " : "");
		json_string(out, d->listeners[i].addr);
	}
	fprintf(out,
		"], \"expired\": %" PRIu64 ", \"hop_limited\": %" PRIu64 ", \"no_route\": %" PRIu64
		", \"refused_calls\": %" PRIu64 ", \"peers\": [",
		d->expired, d->hop_limited, h.count[d->n_peers], d->refused);
	for (size_t i = 0; i < d->n_peers; i++) {
		struct dpeer *p = d->peers[i];
		fprintf(out, "%s{\"name\": ", i ? ", " : "");
		json_string(out, p->sp.name);
		fprintf(out, ", \"node\": \"ipn:%" PRIu64 "\", \"up\": %s, \"direction\": \"%s\"",
			p->sp.node, p->conn ? "true" : "false",
			!p->conn	    ? ""
			: p->conn->outbound ? "outbound"
					    : "inbound");
		fprintf(out, ", \"addr\": ");
		json_string(out, p->line      ? daemon_serial_device(p->line)
				 : p->sbd     ? daemon_sbd_device(p->sbd)
				 : p->conn    ? p->conn->where
				 : p->n_addrs ? p->addrs[0]
					      : "");
		fprintf(out,
			", \"queued\": %" PRIu64 ", \"bytes_in\": %" PRIu64
			", \"bytes_out\": %" PRIu64,
			h.count[i], p->bytes_in, p->bytes_out);
		uint64_t tin = p->total_in_before + p->bytes_in;
		uint64_t tout = p->total_out_before + p->bytes_out;
		fprintf(out, ", \"bytes_in_total\": %" PRIu64 ", \"bytes_out_total\": %" PRIu64,
			tin, tout);
		if (p->cp && p->cp->cost_micro_per_mib) {
			/* Both ways: metered links bill what they carry. */
			double cost = (double)(tin + tout) / 1048576.0 *
				      (double)p->cp->cost_micro_per_mib / 1e6;
			fprintf(out, ", \"cost\": \"%.2f\"", cost);
		}
		if (p->line)
			daemon_serial_status(p->line, out);
		if (p->sbd)
			daemon_sbd_status(p->sbd, out);
		json_time(out, "up_since", p->up_since_ms);
		json_time(out, "last_contact", p->last_contact_ms);
		if (p->conn && p->conn->ls) {
			struct link_stats st;
			link_session_stats(p->conn->ls, &st);
			fprintf(out,
				", \"session\": {\"offered\": %" PRIu64 ", \"sent\": %" PRIu64
				", \"received\": %" PRIu64 ", \"refused_by_peer\": %" PRIu64 "}",
				st.offered, st.acked_out, st.acked_in, st.refused_out);
		}
		fprintf(out, "}");
	}
	fprintf(out, "]}");
	free(h.count);
	return 0;
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
	struct daemon *d = w->data;
	(void)loop;
	(void)revents;
	int fd = accept4(d->api_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
			/* Still readable: pause, or the loop spins on it. */
			ev_io_stop(d->loop, &d->api_io);
			ev_timer_set(&d->api_pause, 1.0, 0);
			ev_timer_start(d->loop, &d->api_pause);
		}
		return;
	}
	size_t n = 0;
	for (struct api_conn *a = d->api_conns; a; a = a->next)
		n++;
	struct api_conn *a = n < MAX_CLIENTS ? calloc(1, sizeof(*a)) : NULL;
	static const struct api_hooks hooks_template = {.queued = queued, .status = status};
	struct api_hooks hooks = hooks_template;
	hooks.ctx = d;
	if (!a || api_client_new(d->n, &hooks, &a->cl) < 0) {
		free(a);
		close(fd);
		return;
	}
	a->d = d;
	a->fd = fd;
	ev_io_init(&a->io, on_client, fd, EV_READ);
	a->io.data = a;
	ev_io_start(d->loop, &a->io);
	a->next = d->api_conns;
	d->api_conns = a;
}

static void on_api_pause(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct daemon *d = w->data;
	(void)revents;
	ev_io_start(loop, &d->api_io);
}

int daemon_api_open(struct daemon *d)
{
	char path[HOME_PATH_MAX];
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (home_path("api.sock", path, sizeof(path)) < 0 || strlen(path) >= sizeof(sa.sun_path)) {
		log_error("api.sock: the node home's path is too long for a Unix socket");
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1); /* fits: checked above */
	/* We hold daemon.lock: a socket left here is a dead daemon's. */
	unlink(path);
	d->api_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	mode_t old = umask(0177); /* born 0600: no moment when others may connect */
	int ret = d->api_fd < 0 || bind(d->api_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
			  listen(d->api_fd, 16) < 0
		      ? -errno
		      : 0;
	umask(old);
	if (ret < 0) {
		log_error("%s: %s", path, strerror(-ret));
		return ret;
	}
	ev_io_init(&d->api_io, on_accept, d->api_fd, EV_READ);
	d->api_io.data = d;
	ev_init(&d->api_pause, on_api_pause);
	d->api_pause.data = d;
	ev_io_start(d->loop, &d->api_io);
	return 0;
}

void daemon_api_notify(struct daemon *d)
{
	struct api_conn *next;
	for (struct api_conn *a = d->api_conns; a; a = next) {
		next = a->next;
		api_client_notify(a->cl);
		client_flush(a);
	}
}

void daemon_api_close(struct daemon *d)
{
	while (d->api_conns)
		client_close(d->api_conns);
	if (d->api_fd >= 0) {
		char path[HOME_PATH_MAX];
		ev_io_stop(d->loop, &d->api_io);
		ev_timer_stop(d->loop, &d->api_pause);
		close(d->api_fd);
		if (home_path("api.sock", path, sizeof(path)) == 0)
			unlink(path);
	}
}
