/* The local application interface: the protocol of <home>/api.sock, per connection, sans-I/O. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "relay/node.h"

/*
 * docs/api.md is the protocol. Programs on this machine connect to the daemon's
 * Unix socket and send one request per line, "VERB key=value ...", values
 * percent-encoded, with a binary body of exactly length=N bytes after the line
 * where one is given. Each request gets one reply line, a JSON object with
 * "ok"; a subscribed client also gets event lines, JSON objects with "event".
 *
 * This module is that protocol for one connection, without the connection: the
 * daemon accepts, reads and writes the socket, and passes the bytes through
 * api_client_input and api_client_output. It does what a request asks against the
 * node's store (submit, read, save files the client names), which is why it may
 * block for as long as sealing or saving the request's file takes; it never
 * touches a socket or reads a clock (n->now is the daemon's to keep current, as
 * for the link engine). Memory stays bounded whatever the client does: a line is
 * at most API_LINE_MAX bytes, an in-memory body API_BODY_MAX, pending replies
 * API_OUT_MAX, and events are made only while the pending output is short.
 */

#define API_VERSION	   1
#define API_LINE_MAX	   8192		       /* a request line, its '\n' included */
#define API_BODY_MAX	   (16u * 1024 * 1024) /* a body held in memory; path= for more */
#define API_OUT_MAX	   (4u * 1024 * 1024)  /* pending output past which input is refused */
#define API_OUT_LOW	   (256u * 1024)       /* api_client_wants_input's threshold */
#define API_EVENT_ROOM	   (64u * 1024)	       /* events are made while less is pending */
#define API_EVENT_TEXT_MAX (64u * 1024)	       /* a longer text is not inlined in its event */
#define API_READ_MAX	   (1024u * 1024)      /* the longest text `read` returns */
#define API_LIST_DEFAULT   100		       /* entries per `inbox` or `sent` reply */
#define API_LIST_MAX	   1000

/*
 * What the daemon does for the module. ctx is passed back; any member may be NULL
 * (the hooks pointer too). A hook may call api_client_notify on any client, this
 * one included, but no other api_client_* function of the client it serves.
 */
struct api_hooks {
	void *ctx;
	/*
	 * Bundles were queued in the store, by this client's `send` or by another
	 * process (`queued`, from the CLI): offer them to the peers now. As another
	 * process may also have delivered messages or receipts (tern import), the
	 * daemon should also api_client_notify every client.
	 */
	void (*queued)(void *ctx);
	/*
	 * Writes the daemon's status to out as ONE JSON object (newlines in it are
	 * replaced with spaces). 0, or a negative errno that the client gets as an error.
	 */
	int (*status)(void *ctx, FILE *out);
};

/* One connection's protocol state. Opaque. */
struct api_client;

/*
 * Starts the protocol for a new connection on node n, which must outlive the
 * client; hooks is copied. 0 or -ENOMEM (-EINVAL for a NULL n or out).
 */
int api_client_new(struct node *n, const struct api_hooks *hooks, struct api_client **out);
/* Frees the client and all it holds; NULL is a no-op. */
void api_client_free(struct api_client *c);

/*
 * Takes bytes the client sent (len 0 is allowed) and handles every request they
 * complete, in order, each appending its reply to the pending output. A request
 * that is malformed or fails gets an error reply and the connection goes on.
 * Returns 0, or a negative errno when the connection must end: -EPROTO the stream
 * cannot be parsed (a line longer than API_LINE_MAX, a length= that is not a
 * number), -ENOBUFS the client does not read its replies (more than API_OUT_MAX
 * pending before a request), -ENOMEM. The last reply line says why; the daemon
 * writes what is pending, then closes. The error sticks: later calls return it.
 * Call with no store batch open (a reply says "queued" only once it is durable).
 */
int api_client_input(struct api_client *c, const uint8_t *buf, size_t len);
/*
 * The bytes waiting to be written: *buf and their count (0: nothing now; *buf is
 * then not NULL but must not be read). A subscribed client's events are made
 * here, from the store, while less than API_EVENT_ROOM is pending: call it again
 * after each api_client_consumed and each api_client_notify. *buf stays valid
 * until the next call of any api_client_* function for c.
 */
size_t api_client_output(struct api_client *c, const uint8_t **buf);
/* n of the bytes api_client_output gave were written (n at most their count). */
void api_client_consumed(struct api_client *c, size_t n);
/*
 * False while more than API_OUT_LOW is pending, or after a fatal error: the daemon
 * should stop reading this socket until the client has taken its replies, so that
 * a client pipelining requests is slowed down rather than cut off at API_OUT_MAX.
 */
bool api_client_wants_input(const struct api_client *c);
/*
 * Messages may have been delivered, or sent messages forwarded or delivered: a
 * subscriber gets events for them. Cheap (a flag); the store is read later, by
 * api_client_output. A no-op for a client that has not subscribed.
 */
void api_client_notify(struct api_client *c);

/* ---- api_request.c: the request line, for api.c, tests and the fuzz target ---------- */

#define API_MAX_ARGS 16
#define API_KEY_MAX  15

struct api_arg {
	char key[API_KEY_MAX + 1];
	const char *val; /* percent-decoded, NUL-terminated, no NUL inside */
	size_t len;
};

struct api_request {
	char verb[API_KEY_MAX + 1];
	struct api_arg arg[API_MAX_ARGS]; /* length= and tag= are not among them */
	size_t n_arg;
	const char *tag; /* tag=, decoded; NULL if none */
	bool has_length;
	uint64_t length; /* body bytes after the line */
};

/*
 * Parses one request line of len bytes (its '\n' removed; a '\r' before it is
 * dropped), decoding values in place in line, which must have room for len + 1
 * bytes (the '\n' was there); req points into line. Returns 0;
 * 1 for a blank line, which is no request; -EINVAL with the problem in why (whylen
 * bytes, at least 1), and then req->has_length, req->length and req->tag still
 * hold what could be read, so that the body is skipped and the error reply carries
 * the tag; -EPROTO (why filled) if length= is there but not plain decimal digits,
 * or given twice: the end of the body cannot be known. Reads exactly len bytes.
 */
int api_request_parse(char *line, size_t len, struct api_request *req, char *why, size_t whylen);
/* The decoded value of key, or NULL if the request has none. */
const char *api_request_get(const struct api_request *req, const char *key);
