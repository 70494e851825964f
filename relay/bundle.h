/* BPv7 bundles (RFC 9171): the streaming encoder, the push decoder, the bundle id. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * What tern emits is specified in docs/bundle.md. In short: an indefinite-length
 * CBOR array; a primary block with CRC-32C; Hop Count (type 10) and, when the clock
 * is not trusted, Bundle Age (type 7) extension blocks; the payload block last
 * (number 1). The decoder reads what other BPv7 nodes send too (CRC-16, no CRC on
 * extension blocks, unknown blocks handled by their processing flags).
 */

enum bundle_crc { BUNDLE_CRC_NONE = 0, BUNDLE_CRC16 = 1, BUNDLE_CRC32C = 2 };

enum bundle_scheme { BUNDLE_SCHEME_DTN = 1, BUNDLE_SCHEME_IPN = 2 };

/* Bundle processing control flags (RFC 9171 §4.2.3). */
#define BUNDLE_F_FRAGMENT	  0x000001u
#define BUNDLE_F_ADMIN		  0x000002u
#define BUNDLE_F_NO_FRAGMENT	  0x000004u
#define BUNDLE_F_ACK_REQUESTED	  0x000020u
#define BUNDLE_F_STATUS_TIME	  0x000040u
#define BUNDLE_F_REPORT_RECEPTION 0x004000u
#define BUNDLE_F_REPORT_FORWARD	  0x010000u
#define BUNDLE_F_REPORT_DELIVERY  0x020000u
#define BUNDLE_F_REPORT_DELETION  0x040000u

/* Block processing control flags (RFC 9171 §4.2.4). */
#define BLOCK_F_REPLICATE	       0x01u
#define BLOCK_F_REPORT_IF_UNPROCESSED  0x02u
#define BLOCK_F_DELETE_IF_UNPROCESSED  0x04u
#define BLOCK_F_DISCARD_IF_UNPROCESSED 0x10u

#define BLOCK_TYPE_PAYLOAD	 1
#define BLOCK_TYPE_PREVIOUS_NODE 6
#define BLOCK_TYPE_BUNDLE_AGE	 7
#define BLOCK_TYPE_HOP_COUNT	 10
/* tern's priority block (private-use type): uint 0 bulk, 1 normal, 2 urgent; none = normal. */
#define BLOCK_TYPE_TERN_PRIORITY 192

/* Longest dtn: URI we accept (scheme-specific part, bytes). */
#define BUNDLE_DTN_URI_MAX 255
/* Most bytes of unknown extension blocks kept for re-encoding. */
#define BUNDLE_EXTRA_MAX 4096
/* Most blocks in a bundle, primary and payload included; more is refused (-EFBIG). */
#define BUNDLE_BLOCKS_MAX 64
/* Most unknown blocks kept in extra: room is left for the primary, payload and our 4. */
#define BUNDLE_EXTRA_BLOCKS_MAX (BUNDLE_BLOCKS_MAX - 6)

/* What bundle_header_init sets. */
#define BUNDLE_HOP_LIMIT_DEFAULT   16
#define BUNDLE_LIFETIME_DEFAULT_MS (30ull * 24 * 3600 * 1000)

enum bundle_priority { BUNDLE_PRIO_BULK = 0, BUNDLE_PRIO_NORMAL = 1, BUNDLE_PRIO_URGENT = 2 };

/*
 * An endpoint id: dtn:none, dtn://node/service, or ipn:node.service. The decoder fills
 * ipn's node with the fully-qualified node number (RFC 9758: allocator << 32 | node
 * when a 3-element ipn EID arrives); the encoder always writes the 2-element form.
 */
struct bundle_eid {
	enum bundle_scheme scheme;
	bool none;			  /* dtn:none */
	uint64_t node, service;		  /* ipn */
	char dtn[BUNDLE_DTN_URI_MAX + 1]; /* dtn: scheme-specific part, e.g. "//hub/inbox" */
};

/*
 * True if e can be encoded: ipn with any numbers, dtn:none, or a dtn SSP of 1..255
 * bytes without control characters (and not the text "none", which is dtn:none).
 */
bool bundle_eid_valid(const struct bundle_eid *e);
/* Writes "ipn:N.S", "dtn:none" or "dtn:<ssp>" to out. 0, -ENOSPC, or -EINVAL (not valid). */
int bundle_eid_format(const struct bundle_eid *e, char *out, size_t cap);
/* Parses the forms bundle_eid_format writes. 0 or -EINVAL. */
int bundle_eid_parse(const char *s, struct bundle_eid *e);

/* Everything in a bundle but the payload bytes. */
struct bundle_header {
	/* primary block */
	uint64_t flags;
	enum bundle_crc crc_type;
	struct bundle_eid dest, source, report_to;
	uint64_t created_ms; /* DTN time (ms since 2000-01-01 UTC); 0 = clock unknown */
	uint64_t seq;
	uint64_t lifetime_ms;
	uint64_t frag_offset, adu_length; /* when BUNDLE_F_FRAGMENT */

	/* extension blocks tern understands */
	bool has_hop_count;
	uint64_t hop_limit, hop_count;
	bool has_age;
	uint64_t age_ms;
	bool has_prev_node;
	struct bundle_eid prev_node;
	uint8_t priority; /* enum bundle_priority; normal means no priority block */

	/* other extension blocks, their encoded bytes kept for re-encoding */
	size_t extra_len;
	uint8_t extra[BUNDLE_EXTRA_MAX];

	/* payload block */
	uint64_t payload_flags;
	enum bundle_crc payload_crc_type;
	uint64_t payload_len;
};

/*
 * Sets h to what tern emits by default: dest ipn:node.service; source and report-to
 * dtn:none; must-not-fragment, no status reports; CRC-32C on the primary block;
 * creation time 0 with a Bundle Age block of 0 ms (the caller sets created_ms and
 * clears has_age when its clock is trusted); Hop Count block with limit 16; priority
 * normal (no block); lifetime 30 days; payload block without CRC; seq 0.
 *
 * Set seq to a fresh random value below 2^32 for every bundle: with source dtn:none and
 * creation time 0, (source, timestamp) is what other BPv7 nodes take as the bundle's
 * identity (RFC 9171 §4.2.7), and equal ones may be dropped as duplicates.
 */
void bundle_header_init(struct bundle_header *h, uint64_t dest_node, uint64_t dest_service);

/* True if the bundle has been forwarded more times than its hop limit allows. */
static inline bool bundle_hop_exceeded(const struct bundle_header *h)
{
	return h->has_hop_count && h->hop_count > h->hop_limit;
}

/* ---- encoder ------------------------------------------------------------------ */

/* The most bytes bundle_encode_head can write. */
#define BUNDLE_HEAD_MAX (BUNDLE_EXTRA_MAX + 4 * (BUNDLE_DTN_URI_MAX + 16) + 256)
#define BUNDLE_TAIL_MAX 8

/*
 * Writes the start of the bundle: array start, primary block, extension blocks and
 * the payload block up to and including the byte-string header of the payload
 * (h->payload_len bytes follow). Our extension blocks (Previous Node, Bundle Age, Hop
 * Count, priority) carry no CRC and take the lowest block numbers from 2 up that the
 * blocks kept in h->extra do not use; those are written back byte for byte. Returns
 * the number of bytes written, or -ENOSPC, or -EINVAL: an EID not bundle_eid_valid, a
 * CRC type, priority or hop limit (1..255) out of range, fragment fields that do not
 * hold the payload, or h->extra not a sequence of well-formed blocks.
 */
int bundle_encode_head(const struct bundle_header *h, uint8_t *out, size_t cap);

/*
 * Streaming state for the payload block's CRC when h->payload_crc_type is not NONE.
 * Feed every payload byte through bundle_tail_update, then bundle_encode_tail
 * writes the payload CRC (if any) and the array's break byte.
 */
struct bundle_tail {
	enum bundle_crc type;
	uint32_t crc;
};
void bundle_tail_init(struct bundle_tail *t, const struct bundle_header *h);
void bundle_tail_update(struct bundle_tail *t, const uint8_t *buf, size_t len);
int bundle_encode_tail(struct bundle_tail *t, uint8_t *out, size_t cap);

/* Encodes a whole bundle with a small payload into out. Bytes written, -ENOSPC or -EINVAL. */
int bundle_encode(const struct bundle_header *h, const uint8_t *payload, uint8_t *out, size_t cap);

/* ---- decoder ------------------------------------------------------------------ */

struct bundle_limits {
	uint64_t max_payload; /* larger payloads are refused */
};

struct bundle_parser;

/* Callbacks; each returns 0 or a negative errno that stops the parse. */
struct bundle_parser_cb {
	/* All blocks before the payload data are parsed and checked. */
	int (*on_header)(void *ctx, const struct bundle_header *h);
	/* A piece of payload data, in order. */
	int (*on_payload)(void *ctx, const uint8_t *buf, size_t len);
};

int bundle_parser_new(const struct bundle_limits *lim, const struct bundle_parser_cb *cb, void *ctx,
		      struct bundle_parser **out);
void bundle_parser_free(struct bundle_parser *p);
/*
 * Feeds len bytes, split anywhere. Returns 0, or a negative errno: -EBADMSG malformed
 * (a CRC, a type, a structure), -EFBIG over a limit (max_payload, BUNDLE_EXTRA_MAX,
 * BUNDLE_BLOCKS_MAX), -ENOTSUP an unknown block whose flags say delete the bundle,
 * -E2BIG bytes after the end of the bundle, -ENOMEM, or the error a callback
 * returned. Errors stick: later calls return the same. The reason is in
 * bundle_parser_error.
 */
int bundle_parser_feed(struct bundle_parser *p, const uint8_t *buf, size_t len);
/* Declares the end of input. 0 if a whole bundle was parsed; -EBADMSG if truncated. */
int bundle_parser_finish(struct bundle_parser *p);
/* A short human reason for the last error ("primary block CRC mismatch"). */
const char *bundle_parser_error(const struct bundle_parser *p);
/* The parsed header; valid once on_header has been called. */
const struct bundle_header *bundle_parser_header(const struct bundle_parser *p);
/*
 * The bundle id (DESIGN.md §3, docs/bundle.md): BLAKE2b-256 over the canonical encoding
 * of the primary block's immutable fields (without CRC) and the payload bytes. Valid
 * after bundle_parser_finish returned 0.
 */
void bundle_parser_id(const struct bundle_parser *p, uint8_t id[static 32]);

/* ---- bundle id on the sending side --------------------------------------------- */

struct bundle_id_state;
/*
 * Starts the id of a bundle with header h (h->payload_len must be set: it is part of
 * the canonical encoding); feed the payload, then finish. Only the primary block's
 * immutable fields and payload_len are used. NULL on allocation failure or if the
 * header cannot be encoded.
 */
struct bundle_id_state *bundle_id_new(const struct bundle_header *h);
void bundle_id_update(struct bundle_id_state *s, const uint8_t *buf, size_t len);
/* Writes the id and frees s. */
void bundle_id_final(struct bundle_id_state *s, uint8_t id[static 32]);
/* Frees an unfinished state; bundle_id_free(NULL) is a no-op. */
void bundle_id_free(struct bundle_id_state *s);

/* ---- time ---------------------------------------------------------------------- */

/* Milliseconds between the Unix epoch and the DTN epoch (2000-01-01T00:00:00Z). */
#define BUNDLE_DTN_EPOCH_UNIX_MS 946684800000ull
