/* The small CBOR (RFC 8949) writer, reader and push scanner the bundle codec is built on. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Internal to relay/'s bundle codec. Only what BPv7 needs: unsigned integers, byte and
 * text strings, arrays (definite; the bundle's outer indefinite array is handled by
 * the codec), and enough of the other major types to skip or reject them. Nothing
 * here allocates.
 */

enum cbor_major {
	CBOR_UINT = 0,
	CBOR_NEGINT = 1,
	CBOR_BYTES = 2,
	CBOR_TEXT = 3,
	CBOR_ARRAY = 4,
	CBOR_MAP = 5,
	CBOR_TAG = 6,
	CBOR_SIMPLE = 7,
};

#define CBOR_INDEF_ARRAY 0x9f
#define CBOR_BREAK	 0xff
/* Longest item head: initial byte plus an 8-byte argument. */
#define CBOR_HEAD_MAX 9

/* A decoded item head. For CBOR_SIMPLE, arg is the simple value or the float's bits. */
struct cbor_head {
	enum cbor_major major;
	bool indef;   /* additional info 31: indefinite length (or the break, for major 7) */
	uint8_t size; /* bytes of the head itself, 1..9 */
	uint64_t arg;
};

/* ---- writer ---------------------------------------------------------------------- */

/*
 * Appends to buf. A write that does not fit sets overflow and writes nothing more,
 * so a sequence of puts needs one check at the end. len counts what was written.
 */
struct cbor_writer {
	uint8_t *buf;
	size_t cap, len;
	bool overflow;
};

void cbor_writer_init(struct cbor_writer *w, uint8_t *buf, size_t cap);
/* Writes a head in the shortest form for arg. */
void cbor_put_head(struct cbor_writer *w, enum cbor_major major, uint64_t arg);
void cbor_put_uint(struct cbor_writer *w, uint64_t v);
void cbor_put_array(struct cbor_writer *w, uint64_t n);
void cbor_put_bytes(struct cbor_writer *w, const void *buf, size_t len);
void cbor_put_text(struct cbor_writer *w, const char *s, size_t len);
/* Appends bytes as they are (already encoded items, string contents). */
void cbor_put_raw(struct cbor_writer *w, const void *buf, size_t len);

/* Encodes the shortest head for (major, arg) into out; returns its size (1..9). */
size_t cbor_encode_head(uint8_t out[static CBOR_HEAD_MAX], enum cbor_major major, uint64_t arg);
/* Size of the shortest head for arg. */
size_t cbor_head_size(uint64_t arg);

/* ---- reader over a complete buffer -------------------------------------------------- */

struct cbor_reader {
	const uint8_t *buf;
	size_t len, pos;
};

void cbor_reader_init(struct cbor_reader *r, const uint8_t *buf, size_t len);
/*
 * Reads one head. Non-shortest forms are accepted. Returns 0, -ENODATA if the buffer
 * ends inside the head, -EBADMSG for reserved additional information (28..30) or an
 * indefinite length on a major type that cannot have one.
 */
int cbor_read_head(struct cbor_reader *r, struct cbor_head *h);
/* Each returns 0, -ENODATA if truncated, or -EBADMSG if the item has another type. */
int cbor_read_uint(struct cbor_reader *r, uint64_t *v);
/* A definite-length array head; *n is its item count. */
int cbor_read_array(struct cbor_reader *r, uint64_t *n);
/* A definite-length string whose bytes lie inside the buffer; *p points into it. */
int cbor_read_bytes(struct cbor_reader *r, const uint8_t **p, size_t *len);
int cbor_read_text(struct cbor_reader *r, const uint8_t **p, size_t *len);
static inline bool cbor_reader_done(const struct cbor_reader *r)
{
	return r->pos == r->len;
}

/* ---- push decoding ------------------------------------------------------------------ */

/* Assembles one head from bytes fed one at a time. Zero it to start. */
struct cbor_head_dec {
	uint8_t buf[CBOR_HEAD_MAX];
	uint8_t have, need;
};

/*
 * Feeds one byte. Returns 1 when the head is complete (in *h; the decoder is reset
 * for the next head), 0 if more bytes are needed, -EBADMSG on reserved additional
 * information.
 */
int cbor_head_feed(struct cbor_head_dec *d, uint8_t byte, struct cbor_head *h);

/* Deepest nesting cbor_scan accepts: a BPv7 primary block needs 3 (block, EID, ipn SSP). */
#define CBOR_SCAN_DEPTH 4

/*
 * Finds where one definite-length CBOR item ends in a byte stream without buffering
 * it: arrays and maps are counted, string contents skipped. Tags and indefinite
 * lengths are refused (BPv7 blocks have neither). Zero it to start.
 */
struct cbor_scan {
	struct cbor_head_dec head;
	uint64_t skip;			/* string bytes still to pass */
	uint64_t left[CBOR_SCAN_DEPTH]; /* items still due in each open container */
	uint8_t depth;
};

/* Why cbor_scan_feed failed, for error messages. */
enum cbor_scan_err {
	CBOR_SCAN_OK = 0,
	CBOR_SCAN_RESERVED, /* additional information 28..30 */
	CBOR_SCAN_INDEF,    /* an indefinite-length item or a stray break */
	CBOR_SCAN_TAG,	    /* a tag */
	CBOR_SCAN_DEEP,	    /* nested deeper than CBOR_SCAN_DEPTH */
};

/*
 * Feeds up to len bytes and sets *used to how many were consumed: fewer than len only
 * when the item ended, which sets *done. Returns 0, or -EBADMSG with *err set.
 */
int cbor_scan_feed(struct cbor_scan *s, const uint8_t *buf, size_t len, size_t *used, bool *done,
		   enum cbor_scan_err *err);
