/* What the daemon's files share: its state, its peers and its connections. */
#pragma once

#include <ev.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdint.h>

#include "relay/config.h"
#include "relay/daemon.h"
#include "relay/link.h"
#include "transports/tcp.h"

#define DAEMON_MAX_ADDRS 16
#define DAEMON_ADDR_MAX	 256

struct conn;
struct sline;
struct sbdline;

/* A configured peer and what the daemon knows of its link. */
struct dpeer {
	struct daemon *d;
	struct store_peer sp;
	struct identity_public pub;
	char addrs[DAEMON_MAX_ADDRS][DAEMON_ADDR_MAX]; /* to dial, in turn; none: inbound only */
	size_t n_addrs, next_addr;
	struct conn *conn;    /* the session, once authenticated */
	struct conn *dialing; /* an outbound connection not yet authenticated */
	struct sline *line;   /* its serial line, if it has one (daemon_serial.c) */
	struct sbdline *sbd;  /* its Iridium SBD modem, if it has one (daemon_sbd.c) */
	ev_timer dial_timer;
	uint64_t backoff_ms;
	uint64_t bytes_in, bytes_out; /* this run, on the wire */
	/* On the wire before this run (the store's link.N.bytes_total), and as last saved. */
	uint64_t total_in_before, total_out_before, total_saved;
	bool totals_loaded;
	uint64_t up_since_ms;	  /* unix ms the session came up; 0 while down */
	uint64_t last_contact_ms; /* unix ms of the last record received */
	bool seen;		  /* marked during a reload */
	/* Policy from tern.conf (NULL: none; points into d->cfg, renewed at each reload). */
	const struct config_peer *cp;
	/* Transfer bytes sent today (UTC), against cp->bytes_per_day; kept in the store. */
	uint64_t day, used_today;
	bool budget_logged, counters_dirty;
};

/* One TCP connection, from connect or accept to close; or one session on a serial stream. */
struct conn {
	struct daemon *d;
	struct conn *next;
	int fd;		    /* -1 on a serial line */
	struct sline *line; /* the serial line it rides, or NULL for TCP */
	ev_io io;
	ev_timer timer;
	bool outbound, connecting;
	struct tcp *tcp;
	struct link_session *ls;
	struct dpeer *peer; /* outbound: whom we called; inbound: set once authenticated */
	char where[80];	    /* the remote address, for log lines */
	uint64_t started_ms, last_rx_ms; /* monotonic */
	uint64_t received_seen;		 /* link_stats.received already announced */
	uint64_t bytes_out_seen;	 /* link_stats.bytes_out already counted */
	bool pending;			 /* an inbound caller not yet authenticated */
	char host[64];			 /* inbound: the caller's address, without the port */
	uint64_t hop_limited_seen;	 /* link_stats.hop_limited already logged */
};

struct listener {
	struct daemon *d;
	int fd;
	ev_io io;
	ev_timer pause; /* accept failed for want of descriptors: try again in a second */
	char addr[DAEMON_ADDR_MAX];
};

struct api_conn;

struct daemon {
	struct ev_loop *loop;
	struct node *n;
	const struct daemon_options *opt;
	struct config *cfg; /* tern.conf as last loaded without errors; NULL if there is none */
	struct link_limits lim;
	struct dpeer **peers;
	size_t n_peers;
	struct conn *conns;
	size_t n_pending; /* inbound connections not yet authenticated */
	uint64_t refused; /* connections that did not authenticate, this run */
	struct listener listeners[DAEMON_MAX_LISTEN];
	size_t n_listen;
	int api_fd, lock_fd;
	ev_io api_io;
	ev_timer api_pause;
	struct api_conn *api_conns;
	ev_signal sig_term, sig_int, sig_hup;
	ev_timer purge_timer, kick_timer, policy_timer;
	unsigned kick;		       /* enum daemon_kick bits waiting for kick_timer */
	uint64_t expired, hop_limited; /* bundles dropped this run */
	uint64_t last_peer_reload_ms;
	uint64_t started_unix_ms;
	bool stopping;
};

/* Opens a listener on HOST:PORT (logs why not). 0 or -errno. */
int daemon_listen(struct daemon *d, const char *addr);
/* Closes listener i (the last one takes its place). */
void daemon_unlisten(struct daemon *d, size_t i);
/* A monotonic clock in ms, for the engine's timers. */
uint64_t daemon_mono_ms(void);
/* Reads the wall and boot clocks into the node before it touches the store. */
void daemon_clock(struct daemon *d);
enum daemon_kick {
	KICK_QUEUE = 1, /* the queue or the routes changed (a local process): sessions rescan it */
	KICK_NEW = 2,	/* bundles were stored (received): sessions look at what is new */
	KICK_API = 4,	/* deliveries may have arrived: subscribers hear of them */
};
/* Bundles were queued or stored: sessions scan, subscribers are told, soon and once a burst. */
void daemon_kick(struct daemon *d, enum daemon_kick what);

/* ---- daemon_config.c ---- */
/*
 * Loads tern.conf (if there is one) and applies it: peers with an id and routes into the
 * store, listeners opened and closed, settings. At start an error fails (logged with its
 * line); on reload (SIGHUP) the old configuration stays. 0 or -errno.
 */
int daemon_config_load(struct daemon *d, bool reload);
/* The limits of a new session with p: the daemon's, with p's priority floor and budget. */
void daemon_session_limits(struct daemon *d, struct dpeer *p, struct link_limits *out);
/* Counts the transfer bytes c's session produced since the last call, against p's budget. */
void daemon_count_bytes(struct conn *c);
/* Writes p's byte counters to the store if they changed. */
void daemon_save_counters(struct dpeer *p);
/* Reads p's wire totals of earlier runs from the store, once. */
void daemon_load_totals(struct dpeer *p);
/* True if p may be dialed or talked to now (its contact windows). */
bool daemon_window_open(struct daemon *d, struct dpeer *p);
void daemon_config_free(struct daemon *d);
/* Every few seconds: a new UTC day refills budgets; windows close sessions and open dials. */
void daemon_policy_tick(struct daemon *d);

/* ---- daemon_peers.c ---- */
/* (Re)reads the peers from the store; keeps the state of those still there. 0 or -errno. */
int daemon_peers_load(struct daemon *d);
struct dpeer *daemon_peer_by_box(struct daemon *d, const uint8_t box_pk[static 32]);
void daemon_peers_free(struct daemon *d);

/* ---- daemon_conn.c ---- */
/* A session on line's new stream, with p; caller: this side starts the handshake. */
struct conn *conn_new_serial(struct daemon *d, struct sline *line, struct dpeer *p, bool caller);
/* Bytes of the session layer (a socket's, a serial stream's). 0, or -1 if c was closed. */
int conn_input(struct conn *c, const uint8_t *buf, size_t len);
/* Commits what a burst of input received and sends its ACKs. 0, or -1 if c was closed. */
int conn_flush(struct conn *c);
/* Takes a connected socket (accepted, or connected to p). 0 or -errno (fd closed). */
int conn_accept(struct daemon *d, int fd, const char *host, const char *where);
/* Dials p's next address; a failure schedules the next try. */
void conn_dial(struct dpeer *p);
/* Ends a connection now; why for the log (NULL: quietly). */
void conn_close(struct conn *c, const char *why);
/* Writes what is pending, pumps transfers while the socket takes them, rearms the timer. */
void conn_service(struct conn *c);
/* Resolves HOST:PORT or [V6]:PORT (passive: for a listener). 0, -EINVAL, -EHOSTUNREACH. */
struct addrinfo;
int daemon_resolve(const char *addr, bool passive, struct addrinfo **out);
/* Schedules p's next dial with backoff and jitter. */
void dpeer_schedule_dial(struct dpeer *p, bool failed);

/* ---- daemon_serial.c ---- */
/*
 * Opens (or keeps) p's serial line as text (serial:PATH,BAUD,FRAMING,FLOW) says, through
 * the Hayes modem modem describes (NULL: a direct line). 0 or -errno.
 */
int daemon_serial_attach(struct dpeer *p, const char *text, const struct hayes_params *modem);
/* Closes p's serial line, if it has one. */
void daemon_serial_detach(struct dpeer *p);
/* Writes what the line may carry now and rearms its timers. */
void daemon_serial_flush(struct sline *l);
/* True if the stream waits on little enough that the session may pump more. */
bool daemon_serial_wants_pump(const struct sline *l);
/* Stream bytes for the line: how many it took (0: full). */
size_t daemon_serial_write(struct sline *l, const uint8_t *buf, size_t len);
/* c, the session on l, ended: its last words go, then the stream starts over. */
void daemon_serial_session_closed(struct sline *l, struct conn *c);
/* Bundles were queued or stored: a modem on hook looks whether to call. */
void daemon_serial_queue_changed(struct sline *l);
/* Starts a session on the line's stream if there is none and its windows are open; on a
 * modem, calls or hangs up as the queue, the windows and idleness say. */
void daemon_serial_kick(struct sline *l);
/* The line's rate in bytes per second. */
uint32_t daemon_serial_rate(const struct sline *l);
/* Its device's path. */
const char *daemon_serial_device(const struct sline *l);
/* `, "serial": {...}` for the status reply: the port, the stream, the ARQ's counters. */
void daemon_serial_status(const struct sline *l, FILE *out);

/* ---- daemon_sbd.c ---- */
/*
 * Opens (or keeps) p's SBD modem on the port text says; a mailbox check every check_ms (0:
 * only when useful), a failed session tried again after retry_ms, doubling. 0 or -errno.
 */
int daemon_sbd_attach(struct dpeer *p, const char *text, uint32_t check_ms, uint32_t retry_ms);
void daemon_sbd_detach(struct dpeer *p);
/* Bundles were queued or stored: an idle modem looks for one to send. */
void daemon_sbd_queue_changed(struct sbdline *l);
/* Windows may have opened, a check may be due: starts what is. */
void daemon_sbd_kick(struct sbdline *l);
const char *daemon_sbd_device(const struct sbdline *l);
/* `, "sbd": {...}` for the status reply. */
void daemon_sbd_status(const struct sbdline *l, FILE *out);

/* ---- daemon_api.c ---- */
int daemon_api_open(struct daemon *d);
void daemon_api_notify(struct daemon *d);
void daemon_api_close(struct daemon *d);
