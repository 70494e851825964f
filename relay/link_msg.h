/* The bundle-exchange messages every link carries (docs/link.md): encoders, strict parser. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * One message is one record of a link session (a Noise transport message over TCP, a
 * record reassembled from serial frames): a type byte and a fixed layout, big-endian.
 * No I/O and no allocation here: the engine (issue 4) owns the state; the parser only
 * says whether a record is well-formed and where its fields are. Lists (OFFER, WANT,
 * REFUSE, ACK) are read in place with the link_*_at accessors after a successful parse.
 *
 * Errors: -EBADMSG malformed (unknown type, wrong length, a count of 0 or one that does
 * not match the length, a field out of range), with a short static reason in *why;
 * -ENOSPC from an encoder whose output does not fit cap; -EINVAL from an encoder given
 * what the parser would refuse.
 */

#define LINK_VERSION 1

/* Largest record a peer may announce: a Noise message holds 65535 bytes, 16 of them MAC. */
#define LINK_RECORD_MAX 65519
/* Smallest one it may announce: a bundle head (BUNDLE_HEAD_MAX) must fit in one HEAD record. */
#define LINK_RECORD_MIN	  8192
#define LINK_ID_LEN	  32
#define LINK_BYE_TEXT_MAX 200
#define LINK_TAIL_MAX	  16

enum link_type {
	LINK_HELLO = 1,	 /* first record each way: version, node, limits */
	LINK_OFFER = 2,	 /* bundles I have for you */
	LINK_WANT = 3,	 /* of what you offered: send these, from this payload offset */
	LINK_REFUSE = 4, /* of what you offered or sent: not now, or not at all, and why */
	LINK_HEAD = 5,	 /* a transfer starts: the bundle's bytes before its payload data */
	LINK_DATA = 6,	 /* payload bytes at an offset */
	LINK_END = 7,	 /* the bundle's bytes after its payload data (payload CRC, break) */
	LINK_ACK = 8,	 /* durably stored: custody is yours no more */
	LINK_PING = 9,
	LINK_PONG = 10,
	LINK_BYE = 11, /* the session ends, and why */
};

enum link_refuse_reason {
	LINK_REFUSE_TOO_BIG = 1,   /* over what this node takes from anyone */
	LINK_REFUSE_QUOTA = 2,	   /* over what this node takes from you */
	LINK_REFUSE_DISK_FULL = 3, /* nearly full here: try later */
	LINK_REFUSE_EXPIRED = 4,   /* its lifetime is over (by its age) */
	LINK_REFUSE_POLICY = 5,	   /* not over this link (priority below its minimum, no route) */
	LINK_REFUSE_BAD = 6,	   /* what you sent failed its checks: do not send it again */
	LINK_REFUSE_LATER = 7,	   /* busy: offer it again after retry_after_s */
};
/* A few words for a reason, for logs: "too big", "busy"...; "not now" for one unknown. */
const char *link_refuse_name(uint8_t reason);

enum link_bye_reason {
	LINK_BYE_DONE = 0,     /* nothing left either way, or shutting down */
	LINK_BYE_PROTOCOL = 1, /* you sent something malformed or out of order */
	LINK_BYE_VERSION = 2,  /* no version in common */
	LINK_BYE_IDLE = 3,     /* keepalives went unanswered */
};

#define LINK_OFFER_ENTRY  49 /* id, size u64, priority u8, expires_in_ms u64 */
#define LINK_WANT_ENTRY	  40 /* id, offset u64 */
#define LINK_REFUSE_ENTRY 37 /* id, reason u8, retry_after_s u32 */
#define LINK_ACK_ENTRY	  32 /* id */

struct link_hello {
	uint8_t version;
	uint64_t node;	      /* the sender's ipn node number: must match its static key */
	uint32_t max_record;  /* LINK_RECORD_MIN..LINK_RECORD_MAX: the most it accepts */
	uint16_t keepalive_s; /* it pings after this long idle; 0 = never */
};

struct link_offer {
	uint8_t id[LINK_ID_LEN];
	uint64_t size;		/* payload bytes */
	uint8_t priority;	/* enum store_priority: 0 bulk, 1 normal, 2 urgent */
	uint64_t expires_in_ms; /* lifetime left at the sender (lifetime - age), > 0 */
};

struct link_want {
	uint8_t id[LINK_ID_LEN];
	uint64_t offset; /* first payload byte wanted: > 0 resumes a cut transfer */
};

struct link_refuse {
	uint8_t id[LINK_ID_LEN];
	uint8_t reason;		/* enum link_refuse_reason; others read as "not now" */
	uint32_t retry_after_s; /* 0: not over this session (or never, for TOO_BIG, BAD) */
};

/* A parsed record: pointers into the buffer given to link_parse, valid as long as it is. */
struct link_msg {
	enum link_type type;
	struct link_hello hello; /* HELLO */
	const uint8_t *list;	 /* OFFER, WANT, REFUSE, ACK: the entries, count of them */
	size_t count;
	const uint8_t *id;    /* HEAD, DATA, END */
	uint64_t payload_len; /* HEAD */
	uint64_t offset;      /* DATA */
	const uint8_t *bytes; /* HEAD: the head; DATA: payload bytes; END: the tail */
	size_t len;
	uint64_t token;	    /* PING, PONG */
	uint8_t bye_reason; /* BYE */
	char
	    bye_text[LINK_BYE_TEXT_MAX + 1]; /* BYE, NUL-terminated (checked: UTF-8, no controls) */
};

/*
 * Parses one record of len bytes (1..LINK_RECORD_MAX). 0 and m filled, or -EBADMSG
 * with *why (may be NULL) set. Checks every length and range the formats define;
 * what depends on the session (version, order, ids known) is the engine's business.
 */
int link_parse(const uint8_t *buf, size_t len, struct link_msg *m, const char **why);

void link_offer_at(const struct link_msg *m, size_t i, struct link_offer *out);
void link_want_at(const struct link_msg *m, size_t i, struct link_want *out);
void link_refuse_at(const struct link_msg *m, size_t i, struct link_refuse *out);
const uint8_t *link_ack_at(const struct link_msg *m, size_t i);

/* How many entries of a list type fit in a record of cap bytes (0 for other types). */
size_t link_list_fit(enum link_type type, size_t cap);

/*
 * Encoders: each writes one record into out (cap bytes) and returns its length, or
 * -ENOSPC, or -EINVAL for what link_parse would refuse (a list of 0 entries, a
 * priority over 2, an expires_in_ms of 0, a HEAD without bytes, a BYE text that is too
 * long or not clean UTF-8).
 */
int link_encode_hello(uint8_t *out, size_t cap, const struct link_hello *h);
int link_encode_offer(uint8_t *out, size_t cap, const struct link_offer *e, size_t n);
int link_encode_want(uint8_t *out, size_t cap, const struct link_want *e, size_t n);
int link_encode_refuse(uint8_t *out, size_t cap, const struct link_refuse *e, size_t n);
/* ids: n ids of LINK_ID_LEN bytes, back to back. */
int link_encode_ack(uint8_t *out, size_t cap, const uint8_t *ids, size_t n);
int link_encode_head(uint8_t *out, size_t cap, const uint8_t id[static LINK_ID_LEN],
		     uint64_t payload_len, const uint8_t *head, size_t len);
int link_encode_data(uint8_t *out, size_t cap, const uint8_t id[static LINK_ID_LEN],
		     uint64_t offset, const uint8_t *data, size_t len);
int link_encode_end(uint8_t *out, size_t cap, const uint8_t id[static LINK_ID_LEN],
		    const uint8_t *tail, size_t len);
int link_encode_ping(uint8_t *out, size_t cap, enum link_type type, uint64_t token);
int link_encode_bye(uint8_t *out, size_t cap, uint8_t reason, const char *text);
