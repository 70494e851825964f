/* The daemon's loop: listeners, signals, the purge timer, and the wake-ups after new bundles. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "relay/cli.h"
#include "relay/daemon_internal.h"
#include "relay/log.h"

#define PURGE_EVERY_S 60.0
/* Sessions rescan the queue at most this often after bundles were queued: one scan per burst. */
#define KICK_DELAY_S 0.005

uint64_t daemon_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void daemon_clock(struct daemon *d)
{
	clock_now(&d->n->now);
}

void daemon_kick(struct daemon *d, enum daemon_kick what)
{
	d->kick |= what;
	if (!ev_is_active(&d->kick_timer)) {
		ev_timer_set(&d->kick_timer, KICK_DELAY_S, 0);
		ev_timer_start(d->loop, &d->kick_timer);
	}
}

static void on_kick(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct daemon *d = w->data;
	(void)loop;
	(void)revents;
	unsigned what = d->kick;
	d->kick = 0;
	if (what & (KICK_QUEUE | KICK_NEW)) {
		struct conn *next;
		for (struct conn *c = d->conns; c; c = next) {
			next = c->next;
			if (!c->ls)
				continue;
			if (what & KICK_QUEUE)
				link_session_rescan(c->ls);
			else
				link_session_scan_new(c->ls);
			conn_service(c);
		}
		for (size_t i = 0; i < d->n_peers; i++)
			if (d->peers[i]->line)
				daemon_serial_queue_changed(d->peers[i]->line);
			else if (d->peers[i]->sbd)
				daemon_sbd_queue_changed(d->peers[i]->sbd);
	}
	if (what & KICK_API)
		daemon_api_notify(d);
}

static void on_purge(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct daemon *d = w->data;
	(void)loop;
	(void)revents;
	uint64_t count = 0;
	daemon_clock(d);
	int ret = store_purge_expired(d->n->store, &d->n->now, &count);
	if (ret < 0)
		log_warn("purge: %s", store_errmsg(d->n->store));
	if (count) {
		d->expired += count;
		log_info("purge: %llu expired bundles dropped", (unsigned long long)count);
	}
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
	struct listener *l = w->data;
	struct daemon *d = l->d;
	(void)loop;
	(void)revents;
	for (int i = 0; i < 64; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int fd = accept4(l->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				/* Still readable: without a pause this would spin and flood the
				 * log. */
				log_warn("%s: accept: %s; not accepting for a second", l->addr,
					 strerror(errno));
				ev_io_stop(d->loop, &l->io);
				ev_timer_set(&l->pause, 1.0, 0);
				ev_timer_start(d->loop, &l->pause);
			} else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
				log_warn("%s: accept: %s", l->addr, strerror(errno));
			}
			return;
		}
		/* Numeric forms only: an IPv6 address with its scope fits 64 bytes. */
		char host[64] = "?", port[8] = "?", where[80];
		getnameinfo((struct sockaddr *)&ss, len, host, sizeof(host), port, sizeof(port),
			    NI_NUMERICHOST | NI_NUMERICSERV);
		snprintf(where, sizeof(where), "%s:%s", host, port);
		conn_accept(d, fd, host, where);
	}
}

static void on_accept_pause(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct listener *l = w->data;
	(void)revents;
	ev_io_start(loop, &l->io);
}

int daemon_listen(struct daemon *d, const char *addr)
{
	struct addrinfo *ai = NULL;
	if (d->n_listen == DAEMON_MAX_LISTEN)
		return -E2BIG;
	int ret = daemon_resolve(addr, true, &ai);
	if (ret < 0) {
		log_error("listen %s: give HOST:PORT (a name or address that resolves)", addr);
		return ret;
	}
	int fd =
	    socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
	int one = 1;
	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 128) < 0) {
		ret = -errno;
		log_error("listen %s: %s", addr, strerror(errno));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		return ret;
	}
	freeaddrinfo(ai);
	struct listener *l = &d->listeners[d->n_listen++];
	l->fd = fd;
	l->d = d;
	snprintf(l->addr, sizeof(l->addr), "%s", addr);
	ev_io_init(&l->io, on_accept, fd, EV_READ);
	l->io.data = l;
	ev_io_start(d->loop, &l->io);
	ev_init(&l->pause, on_accept_pause);
	l->pause.data = l;
	log_info("listening on %s", addr);
	return 0;
}

void daemon_unlisten(struct daemon *d, size_t i)
{
	struct listener *l = &d->listeners[i];
	ev_io_stop(d->loop, &l->io);
	ev_timer_stop(d->loop, &l->pause);
	close(l->fd);
	log_info("no longer listening on %s", l->addr);
	if (i + 1 < d->n_listen) {
		/* The watcher's data points at its listener: move it by restarting it. */
		struct listener *last = &d->listeners[d->n_listen - 1];
		bool paused = ev_is_active(&last->pause);
		ev_io_stop(d->loop, &last->io);
		ev_timer_stop(d->loop, &last->pause);
		*l = *last;
		ev_io_init(&l->io, on_accept, l->fd, EV_READ);
		l->io.data = l;
		ev_init(&l->pause, on_accept_pause);
		l->pause.data = l;
		if (paused) {
			ev_timer_set(&l->pause, 1.0, 0);
			ev_timer_start(d->loop, &l->pause);
		} else {
			ev_io_start(d->loop, &l->io);
		}
	}
	d->n_listen--;
}

static void on_policy(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	daemon_policy_tick(w->data);
}

static void stop(struct daemon *d, const char *why)
{
	if (d->stopping)
		return;
	d->stopping = true;
	log_info("%s: closing links", why);
	struct conn *next;
	for (struct conn *c = d->conns; c; c = next) {
		next = c->next;
		if (c->ls) {
			link_session_close(c->ls);
			conn_service(c); /* the BYE, if the socket takes it now */
		}
	}
	ev_break(d->loop, EVBREAK_ALL);
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct daemon *d = w->data;
	(void)loop;
	(void)revents;
	if (w->signum == SIGHUP) {
		log_info("SIGHUP: reading the configuration and the peers again");
		daemon_config_load(d, true);
		daemon_kick(d, KICK_QUEUE);
		return;
	}
	stop(d, w->signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* One daemon per node home: a second would fight the first over links and stages. */
static int take_lock(struct daemon *d)
{
	char path[HOME_PATH_MAX];
	if (home_path("daemon.lock", path, sizeof(path)) < 0)
		return -ENAMETOOLONG;
	d->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (d->lock_fd < 0) {
		log_error("%s: %s", path, strerror(errno));
		return -errno;
	}
	if (flock(d->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		log_error("another tern run is using this node home (%s is locked)", path);
		return -EBUSY;
	}
	return 0;
}

static void teardown(struct daemon *d)
{
	while (d->conns)
		conn_close(d->conns, NULL);
	daemon_api_close(d);
	while (d->n_listen)
		daemon_unlisten(d, d->n_listen - 1);
	daemon_peers_free(d);
	daemon_config_free(d);
	if (d->lock_fd >= 0)
		close(d->lock_fd);
	ev_loop_destroy(d->loop);
}

int daemon_run(struct node *n, const struct daemon_options *opt)
{
	struct daemon d = {.n = n, .opt = opt, .api_fd = -1, .lock_fd = -1};
	int ret;
	signal(SIGPIPE, SIG_IGN);
	/* Each link may hold stage files open: take every descriptor the hard limit allows. */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	d.loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
	if (!d.loop)
		return -ENOMEM;
	link_limits_default(&d.lim);
	/* A read burst's bundles share one durable commit: one fsync, not one per message. */
	d.lim.group_commit = true;
	daemon_clock(&d);
	d.started_unix_ms = n->now.unix_ms;
	ev_init(&d.kick_timer, on_kick);
	d.kick_timer.data = &d;
	ev_timer_init(&d.purge_timer, on_purge, 1.0, PURGE_EVERY_S);
	d.purge_timer.data = &d;
	ev_timer_start(d.loop, &d.purge_timer);
	ev_signal_init(&d.sig_term, on_signal, SIGTERM);
	ev_signal_init(&d.sig_int, on_signal, SIGINT);
	ev_signal_init(&d.sig_hup, on_signal, SIGHUP);
	d.sig_term.data = d.sig_int.data = d.sig_hup.data = &d;
	ev_signal_start(d.loop, &d.sig_term);
	ev_signal_start(d.loop, &d.sig_int);
	ev_signal_start(d.loop, &d.sig_hup);

	ev_timer_init(&d.policy_timer, on_policy, 5.0, 5.0);
	d.policy_timer.data = &d;
	ev_timer_start(d.loop, &d.policy_timer);

	ret = take_lock(&d);
	if (ret == 0)
		ret = daemon_api_open(&d);
	if (ret == 0)
		ret = daemon_config_load(&d, false);
	if (ret == 0) {
		log_info("tern run: node ipn:%u, %zu peers", n->node_num, d.n_peers);
		ev_run(d.loop, 0);
		log_info("stopped");
	}
	teardown(&d);
	return ret;
}
