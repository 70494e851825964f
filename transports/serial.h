/* The serial link's byte layer: CRC-checked COBS frames and a selective-repeat ARQ, sans I/O. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * docs/serial.md. A serial line (a radio, a modem call) carries bytes that may be flipped,
 * lost, or cut off for minutes, in order and at a known rate. On it this layer builds what
 * TCP gives the TCP link: a reliable, ordered byte stream, over which the same Noise
 * handshake and records run (transports/tcp.h with TCP_FRAMING_SERIAL).
 *
 * Frames: a body (type, fields, payload) and its CRC-32C (4 bytes, big-endian), COBS-encoded
 * and ended by one 0x00 byte, so the receiver finds the next frame after any damage.
 *
 * ARQ: DATA frames carry 16-bit sequence numbers; ACK frames carry the next sequence number
 * expected and a bitmap of frames received beyond it (selective acknowledgement). A frame
 * is sent again when a frame sent after it was acknowledged without it (a line does not
 * reorder: it was lost). When the retransmission timer fires, a 2-byte POLL goes instead
 * of data; its answer (POLLED) shows every frame sent before it and missing as lost, so a
 * cut costs the window it swallowed and a few bytes per timeout, nothing more. The window follows
 * the line's rate and the measured round trip; the payload size follows the measured loss. Output
 * is paced at the line rate, so nothing queues in the OS or the modem, and the round trip measures
 * the line, not a buffer.
 *
 * Streams: each side draws a random nonce when it (re)starts a stream and SYNCs until the
 * peer has echoed it; a SYNC with a new nonce from the peer means the peer restarted, and
 * the stream on both sides starts over (the session above it too: serial_arq_input says
 * -ECONNRESET).
 *
 * Nothing here reads a clock, a port or a random source: the caller passes now_ms and
 * nonces, and moves the bytes.
 */

#define SERIAL_PAYLOAD_MAX 1024 /* largest DATA payload */
#define SERIAL_PAYLOAD_MIN 32	/* the payload never shrinks below this */
#define SERIAL_WINDOW_MAX  128	/* frames in flight at most */
/* The longest frame body (a DATA frame), and on the wire after CRC, COBS and the 0x00. */
#define SERIAL_BODY_MAX	    (3 + SERIAL_PAYLOAD_MAX)
#define SERIAL_WIRE_MAX	    (SERIAL_BODY_MAX + 4 + (SERIAL_BODY_MAX + 4) / 254 + 2)
#define SERIAL_STREAM_SPACE (64u * 1024) /* stream bytes written and not yet framed, at most */

enum serial_frame_type {
	SERIAL_SYNC = 1,   /* flags u8, version u8, nonce u64, echo u64 */
	SERIAL_DATA = 2,   /* seq u16, payload (1..SERIAL_PAYLOAD_MAX) */
	SERIAL_ACK = 3,	   /* next u16, bitmap (0..16 bytes): bit i of byte j is next+1+8j+i */
	SERIAL_POLL = 4,   /* token u8: "say what you have" (a timeout's probe) */
	SERIAL_POLLED = 5, /* token u8, then as ACK: the answer to that POLL */
};

/* ---- frames ---- */

/*
 * Frames body (1..SERIAL_BODY_MAX bytes) for the wire: body, CRC-32C, COBS, 0x00.
 * Writes at most SERIAL_WIRE_MAX bytes to wire; returns how many.
 */
size_t serial_frame_wrap(const uint8_t *body, size_t len, uint8_t wire[static SERIAL_WIRE_MAX]);

/* Finds frames in bytes read from a line. */
struct serial_deframer {
	uint8_t buf[SERIAL_WIRE_MAX];
	size_t len;
	bool overlong;	    /* the frame being read is too long: skipped up to its 0x00 */
	uint64_t bad, good; /* frames that failed (COBS, length or CRC) and frames delivered */
};

/* One good frame body (its CRC checked and removed): 0 to go on, or an error to stop. */
typedef int (*serial_frame_fn)(void *ctx, const uint8_t *body, size_t len);

/* A deframer that waits for the first 0x00 (what came before it is noise or half a frame). */
void serial_deframer_init(struct serial_deframer *d);
/*
 * Bytes from the line: every good frame they end goes to fn, bad ones are counted and
 * dropped. 0, or fn's error (the bytes after that frame are not read).
 */
int serial_deframe(struct serial_deframer *d, const uint8_t *buf, size_t len, serial_frame_fn fn,
		   void *ctx);

/* ---- the ARQ ---- */

struct serial_arq;

struct serial_arq_params {
	uint32_t rate_Bps;    /* bytes per second the line carries (baud over bits per byte) */
	uint16_t payload_max; /* SERIAL_PAYLOAD_MIN..SERIAL_PAYLOAD_MAX; 0: SERIAL_PAYLOAD_MAX */
	bool fixed_payload;   /* keep payload_max whatever the loss (for tests and benchmarks) */
};

/*
 * A line's ARQ, starting a stream with nonce (random, not 0) at now_ms. 0, -EINVAL (a rate
 * of 0, a payload out of range, a nonce of 0), -ENOMEM.
 */
int serial_arq_new(const struct serial_arq_params *p, uint64_t nonce, uint64_t now_ms,
		   struct serial_arq **out);
void serial_arq_free(struct serial_arq *a); /* serial_arq_free(NULL) is a no-op */

/*
 * Drops the stream (bytes unsent, in flight, received) and starts a new one with nonce:
 * the peer, seeing it, starts over too. For a session that ended on this side.
 */
void serial_arq_reset(struct serial_arq *a, uint64_t nonce, uint64_t now_ms);

/* Stream bytes received in order, once each: 0 to go on, or an error to stop. */
typedef int (*serial_stream_fn)(void *ctx, const uint8_t *buf, size_t len);

/*
 * Bytes read from the line. The stream's new bytes go to fn, in order. 0; -ECONNRESET the
 * peer started a new stream (what came before it is over; this side resyncs at once, and
 * bytes after that point are read into the new stream); or fn's error (the caller ends
 * its session and calls serial_arq_reset).
 */
int serial_arq_input(struct serial_arq *a, const uint8_t *buf, size_t len, uint64_t now_ms,
		     serial_stream_fn fn, void *ctx);

/* How many stream bytes serial_arq_write takes now (0 until the stream is established). */
size_t serial_arq_room(const struct serial_arq *a);
/* Stream bytes to send: takes min(len, room); returns how many. */
size_t serial_arq_write(struct serial_arq *a, const uint8_t *buf, size_t len);

/*
 * Bytes for the line, as many as its rate allows at now_ms: *buf and the count (0: none
 * now; serial_arq_deadline says when). The caller writes them and says how many went.
 */
size_t serial_arq_output(struct serial_arq *a, uint64_t now_ms, const uint8_t **buf);
void serial_arq_consumed(struct serial_arq *a, size_t n);

/* When output or a timer next needs a call (a now_ms value): now_ms or later. */
uint64_t serial_arq_deadline(const struct serial_arq *a, uint64_t now_ms);

/* True once the peer has echoed this stream's nonce: stream bytes may flow. */
bool serial_arq_established(const struct serial_arq *a);
/* True if every stream byte written was acknowledged and nothing is left to send. */
bool serial_arq_idle(const struct serial_arq *a);

struct serial_arq_stats {
	uint64_t frames_out, frames_resent, frames_in, frames_bad, frames_dup;
	uint64_t wire_out, wire_in;	/* bytes on the line, both ways */
	uint64_t stream_out, stream_in; /* stream bytes acknowledged by the peer / delivered */
	uint64_t resets;		/* streams the peer started over */
	uint32_t srtt_ms;		/* smoothed round trip; 0 before a sample */
	uint16_t payload, window;	/* the DATA payload and the window (frames) now */
};
void serial_arq_stats(const struct serial_arq *a, struct serial_arq_stats *out);

/* ---- line specs (serial_spec.c): device, baud, framing, flow control ---- */

#define SERIAL_PATH_MAX 200

enum serial_flow {
	SERIAL_FLOW_NONE = 0,
	SERIAL_FLOW_RTSCTS = 1,
	SERIAL_FLOW_DTRDSR = 2,
};

/* How a line is set up. Its text form: serial:PATH,BAUD,8N1[,rtscts|dtrdsr]. */
struct serial_spec {
	char path[SERIAL_PATH_MAX + 1];
	uint32_t baud;	   /* 50..4000000 */
	uint8_t data_bits; /* 7 or 8 */
	char parity;	   /* 'N', 'E' or 'O' */
	uint8_t stop_bits; /* 1 or 2 */
	enum serial_flow flow;
};

/* 19200 baud, 8N1, no flow control, no path. */
void serial_spec_default(struct serial_spec *s);

/*
 * Each part on its own, as the CLI and tern.conf give them. Each returns false for a
 * value it does not take, with *why saying what it takes, for the caller's message.
 */
bool serial_spec_set_path(struct serial_spec *s, const char *path, const char **why);
bool serial_spec_set_baud(struct serial_spec *s, const char *baud, const char **why);
bool serial_spec_set_parity(struct serial_spec *s, const char *parity, const char **why);
bool serial_spec_set_flow(struct serial_spec *s, const char *flow, const char **why);
/* "8N1", "7E1", "8N2"...: data bits, parity, stop bits. */
bool serial_spec_set_framing(struct serial_spec *s, const char *framing, const char **why);

/* The text form, into buf (at least SERIAL_SPEC_TEXT_MAX bytes). */
#define SERIAL_SPEC_TEXT_MAX (SERIAL_PATH_MAX + 40)
void serial_spec_format(const struct serial_spec *s, char *buf, size_t len);
/* Reads the text form back: true, or false with *why. */
bool serial_spec_parse(const char *text, struct serial_spec *out, const char **why);
/* True if text is in the text form's namespace (starts with "serial:"). */
bool serial_spec_is(const char *text);

/* Bits on the wire per byte (start, data, parity, stop) and the bytes per second. */
unsigned serial_spec_bits_per_byte(const struct serial_spec *s);
uint32_t serial_spec_rate(const struct serial_spec *s);
