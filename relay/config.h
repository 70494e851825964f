/* The daemon's configuration file (<home>/tern.conf, docs/config.md): a push-style parser. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "crypto/crypto.h"
#include "store/store.h"
#include "transports/hayes.h"
#include "transports/serial.h"

/*
 * The caller owns the I/O: config_read_init, then config_read_line for each line of the
 * file in order, then config_read_finish, which hands over a struct config that holds
 * either the settings or the errors (each with its line), never a half of each that
 * could be mistaken for a whole. config_load does all of that for a file. Nothing here
 * touches the store or the node's keys: a destination or peer that only the store knows
 * is left for the daemon to resolve.
 *
 * Limits (each one an error with its line when passed, never a crash): a line is at most
 * CONFIG_LINE_MAX bytes, the file at most CONFIG_FILE_MAX bytes (the rest is not read).
 */
#define CONFIG_LINE_MAX	   4096
#define CONFIG_FILE_MAX	   (16u << 20)
#define CONFIG_LISTEN_MAX  64
#define CONFIG_PEERS_MAX   4096
#define CONFIG_ADDRS_MAX   16 /* per peer */
#define CONFIG_WINDOWS_MAX 16 /* per peer */
#define CONFIG_ROUTES_MAX  65536
/* Errors kept with their text; more are counted in n_errors_dropped. */
#define CONFIG_ERRORS_MAX 1000
/* An address as written, "host:port" or "[v6]:port": it fits struct store_peer's addr. */
#define CONFIG_ADDR_MAX 255
#define CONFIG_HOST_MAX 253
/* "what: why", without the file name and line. */
#define CONFIG_MSG_MAX 512
/* A route's destination as written: a name (STORE_NAME_MAX) or "ipn:N.S" (at most 45). */
#define CONFIG_DEST_MAX 72

#define CONFIG_KEEPALIVE_DEFAULT_MS 30000

enum config_log_level {
	CONFIG_LOG_ERROR = 0,
	CONFIG_LOG_WARN = 1,
	CONFIG_LOG_INFO = 2,
	CONFIG_LOG_DEBUG = 3,
};

/* One HOST:PORT: a listen line or a peer's addr line. */
struct config_addr {
	char text[CONFIG_ADDR_MAX + 1]; /* as written (trimmed), e.g. "[::1]:4556" */
	char host[CONFIG_HOST_MAX + 1]; /* without brackets: "::1", "hub.example.org" */
	uint16_t port;			/* 1..65535 */
	unsigned line;
};

/*
 * Parses one HOST:PORT or [IPv6]:PORT, as tern.conf's listen and addr take it and `tern
 * peer add --addr` and `tern run --listen` too (docs/config.md): HOST an IPv4 address, a
 * host name (letters, digits, '.', '-', '_'; no empty label) or an IPv6 address in
 * brackets, perhaps with %INTERFACE; PORT 1 to 65535; at most CONFIG_ADDR_MAX bytes. Fills
 * *a but its line; 0, or -EINVAL with *why saying what is wrong ("no port: give
 * HOST:PORT"). Nothing is resolved: a field node checks its addresses offline.
 */
int config_addr_parse(const char *text, struct config_addr *a, const char **why);

/* A contact window, [start, end) in minutes after 00:00 UTC; end < start wraps midnight. */
struct config_window {
	uint16_t start_min; /* 0..1439 */
	uint16_t end_min;   /* 0..1440, never equal to start_min */
	unsigned line;
};

struct config_peer {
	char name[STORE_NAME_MAX + 1];
	unsigned line; /* of its [peer NAME] header */
	/* id = : decoded and certificate-checked; without it the peer must be in the store. */
	bool has_id;
	struct identity_public id;
	unsigned id_line;
	struct config_addr addrs[CONFIG_ADDRS_MAX]; /* none: inbound only */
	size_t n_addrs;
	bool sneakernet_set; /* sneakernet = was given; else the store's setting stands */
	bool sneakernet;
	enum store_priority min_priority;		  /* default STORE_BULK: everything */
	uint64_t bytes_per_day;				  /* 0: unlimited */
	struct config_window windows[CONFIG_WINDOWS_MAX]; /* none: always open */
	size_t n_windows;
	/* serial =, baud =, framing =, parity =, flow =: a serial line to the peer. */
	struct serial_spec spec;
	unsigned serial_line, spec_line; /* of serial =, and of the first other of them */
	unsigned framing_line, parity_line, flow_line; /* of each, 0: not given (not with sbd =) */
	char serial[SERIAL_SPEC_TEXT_MAX]; /* its text form (serial:...), once read; "" none */
	uint64_t cost_micro_per_mib;	   /* cost-per-mib =, in millionths; 0: not given */
	/* dial =, answer =, modem-init =, idle-hangup =, redial =: a Hayes modem on the line. */
	struct hayes_params modem;
	unsigned modem_line; /* of the first of them; 0: the line has no modem */
	/* sbd = PATH (with baud =...), sbd-check =, sbd-retry =: an Iridium SBD modem. */
	char sbd[SERIAL_SPEC_TEXT_MAX]; /* its port's text form (serial:...), once read; "" none */
	unsigned sbd_line;
	uint32_t sbd_check_ms; /* 0: only when useful */
	uint32_t sbd_retry_ms;
	unsigned sbd_check_line, sbd_retry_line; /* 0: not given (they need sbd =) */
};

#define CONFIG_SBD_RETRY_DEFAULT_MS 30000

enum config_dest {
	CONFIG_DEST_DEFAULT = 0, /* "default" */
	CONFIG_DEST_NODE = 1,	 /* "ipn:N", or the name of a [peer] of this file with an id */
	CONFIG_DEST_NAME = 2,	 /* another name: a contact or store peer, for the daemon */
};

struct config_route {
	enum config_dest kind;
	uint64_t dest_node;	    /* CONFIG_DEST_NODE: the node number; else 0 */
	char dest[CONFIG_DEST_MAX]; /* as written: "default", "ipn:1234", "alice" */
	char via[STORE_NAME_MAX + 1];
	size_t via_peer; /* index of the [peer] section of via in peers[] */
	unsigned line;
};

struct config_error {
	unsigned line; /* 0: the file as a whole (unreadable, too long, writable by others) */
	char msg[CONFIG_MSG_MAX];
};

/* A parsed file. Arrays are in file order; every entry keeps its line for log messages. */
struct config {
	struct config_addr *listens;
	size_t n_listens;
	uint64_t keepalive_ms; /* default CONFIG_KEEPALIVE_DEFAULT_MS */
	enum config_log_level log_level;
	struct config_peer *peers;
	size_t n_peers;
	struct config_route *routes;
	size_t n_routes;
	unsigned lines; /* lines read */
	struct config_error *errors;
	size_t n_errors; /* kept in errors[], at most CONFIG_ERRORS_MAX */
	size_t n_errors_dropped;
};

/* Parser state between lines. Opaque. */
struct config_reader;

/* Starts a parse. 0, or -ENOMEM. */
int config_read_init(struct config_reader **out);
/*
 * Feeds the next line: len bytes, with or without its "\n" or "\r\n"; it need not be
 * NUL-terminated and must not hold a '\n' before its end (that would be two lines). A
 * problem with the line is recorded with its line number and the parse goes on, so a
 * check can report every error: 0 if the line was good, -EINVAL if an error was
 * recorded, -EFBIG once the file has passed CONFIG_FILE_MAX (the caller stops feeding;
 * further lines are ignored), -ENOMEM (the parse is lost: call finish to free it).
 */
int config_read_line(struct config_reader *r, const char *line, size_t len);
/*
 * Ends a parse: checks what needs the whole file (every route's via is a [peer] here,
 * no destination twice) and frees r. *out gets the result in every case but -ENOMEM
 * (then it is NULL); the caller frees it with config_free. 0 if the file is good;
 * -EINVAL if it has errors: then (*out)->errors lists them and the rest of *out must
 * not be used.
 */
int config_read_finish(struct config_reader *r, struct config **out);

/*
 * Reads and parses the file at path. As config_read_finish, plus: a file that is
 * writable by group or others is an error (whoever can write it can add peers); -errno
 * from opening it (*out NULL: -ENOENT if there is none), or -EIO from reading it (*out
 * holds an error on line 0).
 */
int config_load(const char *path, struct config **out);

/* Frees a config; config_free(NULL) is a no-op. */
void config_free(struct config *c);

/*
 * Writes c in the file's own syntax, canonical and with every default spelled out, so
 * that parsing the output gives the same config. For a config without errors.
 */
void config_print(const struct config *c, FILE *f);

/* The [peer] section named name, or NULL. */
const struct config_peer *config_peer_find(const struct config *c, const char *name);

/* "error", "warn", "info", "debug". */
const char *config_log_level_name(enum config_log_level l);
/* Writes "HH:MM-HH:MM" (12 bytes with the NUL) to out. */
void config_window_format(const struct config_window *w, char out[static 12]);

/* True if one of p's windows is open at unix_ms (UTC), or p has none. */
bool config_window_open(const struct config_peer *p, uint64_t unix_ms);
/* Milliseconds from unix_ms until one of p's windows opens; 0 if one is open now. */
uint64_t config_window_next_open(const struct config_peer *p, uint64_t unix_ms);
/*
 * Milliseconds from unix_ms until every window of p is closed (windows that meet or
 * overlap count as one); 0 if none is open now; UINT64_MAX if p's windows never close
 * (none given, or together they cover the whole day).
 */
uint64_t config_window_next_close(const struct config_peer *p, uint64_t unix_ms);

/*
 * The store's view of a peer with an id (p->has_id): name, keys, node number, links
 * (TCP if it has addresses; sneakernet as given) and the first address, for the daemon
 * to upsert with store_peer_add. The windows and policy stay in the config.
 */
void config_peer_to_store(const struct config_peer *p, uint64_t now_unix_ms,
			  struct store_peer *out);
