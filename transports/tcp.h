/* The TCP link's byte layer: a Noise IK handshake, then 2-byte framed records, sans I/O. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto/crypto.h"

/*
 * docs/link.md "TCP". The initiator opens with a 6-byte preamble ("tern", framing version
 * 1, pattern 'K' for IK), which is also the Noise prologue, so a downgrade or a replay
 * across link kinds fails the handshake. Then every Noise message, handshake or transport,
 * goes as a 2-byte big-endian length and that many bytes. The responder says nothing until
 * message 1 has shown a configured peer's static key: a stranger, a bad preamble or a bad
 * message gets the connection closed without one byte in reply.
 *
 * The caller moves the bytes: tcp_input with what the socket read; tcp_output / tcp_consumed
 * for what to write. Records come out of tcp_input through a callback once the handshake is
 * over; tcp_send frames and encrypts one. Nothing here reads a clock or a socket.
 */

/* The longest record (plaintext of one transport message). */
#define TCP_RECORD_MAX (NOISE_MSG_MAX - NOISE_TRANSPORT_OVERHEAD)

struct tcp;

/*
 * Finds a configured peer by the X25519 static key a caller showed: 0 with *peer filled
 * (its certificate is checked here against the key), or -ENOENT for a stranger.
 */
typedef int (*tcp_lookup_fn)(void *ctx, const uint8_t box_pk[static 32],
			     struct identity_public *peer);
/* One record from the peer: 0 to go on, or a negative errno that ends the link. */
typedef int (*tcp_record_fn)(void *ctx, const uint8_t *rec, size_t len);

/*
 * The kind of link below, in the preamble's framing byte: a handshake made for one kind
 * fails on the other. Over a serial line the same bytes ride the ARQ's stream
 * (transports/serial.h) instead of a TCP connection.
 */
enum tcp_link {
	TCP_LINK_TCP = 1,
	TCP_LINK_SERIAL = 2,
};

/* Calls peer (its current box key, from its identity string). 0, -ENOMEM. */
int tcp_new_initiator_on(enum tcp_link link, const struct identity *self,
			 const struct identity_public *peer, struct tcp **out);
/* Answers a caller, if lookup knows it. 0, -ENOMEM. */
int tcp_new_responder_on(enum tcp_link link, const struct identity *self, tcp_lookup_fn lookup,
			 void *ctx, struct tcp **out);
/* The same, on TCP. */
int tcp_new_initiator(const struct identity *self, const struct identity_public *peer,
		      struct tcp **out);
int tcp_new_responder(const struct identity *self, tcp_lookup_fn lookup, void *ctx,
		      struct tcp **out);
/* Wipes the session keys and frees. tcp_free(NULL) is a no-op. */
void tcp_free(struct tcp *t);

/*
 * Bytes read from the socket. Handshake messages are answered into the output; records
 * go to fn (which may call tcp_send). 0 to go on; -EBADMSG (bad preamble, frame or
 * message, a decryption failure), -EACCES (a stranger), -EPROTO (bytes out of turn), or
 * fn's error: the link is over and the caller closes it, sending nothing more.
 */
int tcp_input(struct tcp *t, const uint8_t *buf, size_t len, tcp_record_fn fn, void *ctx);
/* Encrypts and frames one record (1 to TCP_RECORD_MAX bytes) into the output. 0; -EINVAL; -ENOTCONN
 * before the handshake is over; -ENOMEM; -EOVERFLOW (nonces spent). */
int tcp_send(struct tcp *t, const uint8_t *rec, size_t len);
/* Bytes waiting to be written: *buf and the count (0: none). */
size_t tcp_output(const struct tcp *t, const uint8_t **buf);
/* n of them were written. */
void tcp_consumed(struct tcp *t, size_t n);
/* True once records can flow. */
bool tcp_established(const struct tcp *t);
/* The authenticated peer (once established), else NULL. */
const struct identity_public *tcp_peer(const struct tcp *t);
