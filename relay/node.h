/* The node: what a tern process holds open, and the three things it does with bundles. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto/crypto.h"
#include "relay/bundle.h"
#include "store/store.h"

/*
 * submit.c seals plaintext into bundles and queues them; ingest.c takes a bundle
 * byte stream from anywhere (a file, a link) and stores, delivers or rejects it;
 * emit.c streams a stored bundle out, re-encoded for the next hop. None of them
 * reads a clock or opens a file: "now" is n->now, bytes come and go through
 * callbacks. The CLI (home.c) and later the daemon and simulator fill struct node.
 */

/* ipn service numbers tern uses on every node. */
#define NODE_SERVICE_MESSAGES 1
#define NODE_SERVICE_RECEIPTS 2

/* Largest payload a node accepts from anyone (a FAT32 file holds 4 GiB - 1). */
#define NODE_MAX_PAYLOAD (4ull * 1024 * 1024 * 1024 - 1 - BUNDLE_HEAD_MAX)

#define NODE_DEFAULT_LIFETIME_MS (14ull * 24 * 3600 * 1000)
#define NODE_DEFAULT_HOP_LIMIT	 16

/* How bundles for other nodes travel (route.c). */
enum node_routing {
	/* One copy, to the next hop of the routes; custody passes with each hop's ACK. */
	NODE_ROUTING_STATIC = 0,
	/*
	 * Flooding: a copy to every peer that lacks one, kept until it expires or the
	 * destination took it. A baseline for tern-sim, against which routes are judged.
	 */
	NODE_ROUTING_EPIDEMIC,
};

struct node {
	struct identity *id; /* owned */
	struct identity_public pub;
	uint32_t node_num;
	struct store *store; /* owned */
	struct store_clock now;
	bool clock_trusted;	       /* stamp creation times; else creation time 0 + Bundle Age */
	struct envelope_opener *spare; /* owned: an opener kept for the next bundle */
	enum node_routing routing;
};

/* Closes the store and wipes the keys; the struct itself is the caller's. */
void node_close(struct node *n);
/* Writes len bytes as 2 * len lowercase hex digits and a NUL into out. */
void hex_encode(const uint8_t *buf, size_t len, char *out);

/* ---- submit.c ---------------------------------------------------------------- */

/* Pulls plaintext: returns bytes read (0 at the end) or a negative errno. */
typedef long (*node_reader)(void *ctx, uint8_t *buf, size_t cap);

struct submit_request {
	enum envelope_kind kind;
	const char *name; /* file base name, or NULL for text */
	uint64_t size;	  /* exact plaintext length */
	node_reader read;
	void *read_ctx;
	enum store_priority priority;
	uint64_t lifetime_ms;
};

struct submit_result {
	uint8_t msg_id[ENVELOPE_MSG_ID_LEN];
	size_t n_bundles;
	uint8_t bundle_id[ENVELOPE_MAX_RECIPIENTS][32];
	uint64_t bundle_len[ENVELOPE_MAX_RECIPIENTS]; /* encoded bytes */
	bool compact;
};

/*
 * Seals the plaintext once for all recipients and queues one bundle per
 * recipient node, all in one durable commit. Returns 0, -EINVAL
 * (bad request: no or too many recipients, duplicate recipient, size mismatch),
 * the reader's error, or a store error. *why says which in words. Inside a store
 * batch the bundles join it (durable with its commit) and on failure the caller
 * aborts the batch, since some recipients' bundles may be in it.
 */
int node_submit(struct node *n, const struct store_contact *rcpt, size_t n_rcpt,
		const struct submit_request *req, struct submit_result *res, const char **why);

/* ---- ingest.c ---------------------------------------------------------------- */

enum ingest_verdict {
	INGEST_DELIVERED = 1, /* for this node: opened, verified, in the inbox */
	INGEST_QUEUED,	      /* for another node: stored to forward */
	INGEST_DUPLICATE,     /* already stored or already delivered: nothing changed */
	INGEST_REJECTED,      /* bad: nothing stored; reason says why */
	INGEST_RECEIPT,	      /* a delivery receipt for messages we sent: recorded */
	INGEST_PASSED,	      /* for another node, and ingest_no_relay: not looked at further */
};

struct ingest_result {
	enum ingest_verdict verdict;
	char reason[200];
	uint8_t bundle_id[32];
	uint64_t dest_node;
	struct store_inbox inbox; /* when delivered */
	unsigned receipts;	  /* INGEST_RECEIPT: messages now known delivered */
	bool sender_unknown;	  /* INGEST_REJECTED: no contact's key verifies it (yet) */
	bool expired;		  /* INGEST_REJECTED: its lifetime is over, by age or clock */
};

struct ingest;

/* Starts taking one bundle. 0 or -ENOMEM. */
int ingest_new(struct node *n, struct ingest **out);
/*
 * Feeds bundle bytes. Returns 0 to go on, or 1 when the bundle is already
 * known to be rejected (further bytes are ignored; ingest_finish gives the reason).
 */
int ingest_feed(struct ingest *in, const uint8_t *buf, size_t len);
/*
 * Takes only bundles for this node: one for another node is passed by unchecked
 * and unstored (INGEST_PASSED), as soon as its primary block says so. For a stick
 * that carries other offices' cargo. Call before the first feed.
 */
void ingest_no_relay(struct ingest *in);
/*
 * Makes ingest_finish reject the bundle unless its id is id (a file named by its
 * id that holds another bundle was renamed or swapped). Call before the first feed.
 */
void ingest_expect_id(struct ingest *in, const uint8_t id[static 32]);
/*
 * Ends the bundle and decides. Returns 0 with res filled for every verdict, or
 * a negative errno when the store failed (nothing acknowledged: the caller must
 * not report the bundle as taken). Frees in.
 */
int ingest_finish(struct ingest *in, struct ingest_result *res);
void ingest_free(struct ingest *in);

/* ---- emit.c ------------------------------------------------------------------ */

typedef int (*node_sink)(void *ctx, const uint8_t *buf, size_t len);

/*
 * Decodes an encoded head as the store keeps it (everything up to the payload bytes):
 * 0 and *h filled, -EBADMSG if it is not a whole head, -ENOMEM.
 */
int node_decode_head(const uint8_t *head, size_t headlen, struct bundle_header *h);

/*
 * Streams a stored bundle as BPv7 bytes for the next hop: Bundle Age updated to
 * the time spent here, Hop Count incremented for bundles we did not create.
 * The Previous Node block is dropped (the next hop knows who we are from the link).
 * *len_out (if not NULL) gets the number of bytes emitted. Returns 0; -ELOOP if
 * one more hop would pass the bundle's hop limit (nothing emitted: the caller
 * drops it); -EBADMSG if the stored bundle is damaged (it is quarantined); or the
 * sink's error.
 */
int node_emit(struct node *n, const struct store_bundle *b, const uint8_t *head, size_t headlen,
	      node_sink sink, void *ctx, uint64_t *len_out);

/* ---- receipt.c: end-to-end delivery receipts ----------------------------------- */

#define RECEIPT_MAX_IDS 4096

/* Messages delivered here, grouped by sender, until they are sealed back as receipts. */
struct receipt_to {
	uint8_t sender[32];
	uint8_t *ids;
	size_t n, cap;
};
struct receipt_batch {
	struct receipt_to *to;
	size_t n;
};

void receipt_batch_add(struct receipt_batch *b, const uint8_t sender[static 32],
		       const uint8_t msg_id[static ENVELOPE_MSG_ID_LEN]);
/*
 * Queues one receipt bundle per sender that is a contact (others cannot be
 * sealed to), then empties b. *queued counts them. 0 or the first error.
 */
int receipt_batch_flush(struct node *n, struct receipt_batch *b, unsigned *queued);
void receipt_batch_free(struct receipt_batch *b);
/* Checks a receipt body; *count gets its number of message ids (at buf + 2). -EBADMSG. */
int receipt_parse(const uint8_t *buf, size_t len, size_t *count);

/* ---- record.c: node records sealed in memory (stick manifests and receipts) ------ */

/*
 * Seals body (1 byte or more) as an ENVELOPE_CONTROL full-form envelope to the
 * recipients and to this node itself (so it recognises its own records later),
 * into a malloc'd *out. 0, -EINVAL (no body, more than ENVELOPE_MAX_RECIPIENTS - 1
 * others), -ENOMEM.
 */
int node_seal_record(struct node *n, const struct envelope_recipient *rcpt, size_t n_rcpt,
		     const uint8_t *body, size_t len, uint8_t **out, size_t *outlen);
/*
 * Opens a record sealed by node_seal_record: 0 with the verified plaintext in a
 * malloc'd *body and meta filled (meta->sender_sign_pk is who signed it). -ENOKEY
 * not sealed to this node; -EBADMSG damaged, or not a full-form control record;
 * -EKEYREJECTED forged; -ENOMEM.
 */
int node_open_record(struct node *n, const uint8_t *buf, size_t len, uint8_t **body,
		     size_t *bodylen, struct envelope_meta *meta);

/* ---- route.c ---------------------------------------------------------------- */

/*
 * The peer a bundle for dest goes to next: dest itself if it is a peer, else its
 * route, else the default route. 0; -ENOENT no route (the bundle waits);
 * -EHOSTUNREACH a route names a peer that no longer exists.
 */
int node_next_hop(struct node *n, uint64_t dest, struct store_peer *via);
/* Whether bundle b, queued here, is to be offered to peer (a node number) now. */
bool node_routes_to(struct node *n, const struct store_bundle *b, uint64_t peer);
/*
 * Whether this node keeps its copy of b once peer acknowledged it: then peer is recorded
 * as a holder (store_bundle_add_holder) instead of taking custody (store_bundle_release).
 */
bool node_keeps_copy(const struct node *n, const struct store_bundle *b, uint64_t peer);
/*
 * A destination as an operator writes it: "default" (STORE_ROUTE_DEFAULT), "ipn:N", or the
 * name of a peer or contact. 0; -EINVAL malformed; -ENOENT no such name.
 */
int node_parse_dest(struct node *n, const char *s, uint64_t *dest);

/* ---- open.c: opening what was delivered ---------------------------------------- */

/* envelope_candidates over the address book: ctx is the struct node. */
void node_candidates(void *ctx, int hint, void (*fn)(void *fctx, const uint8_t pk[32]), void *fctx);

/*
 * Opens the sealed envelope of an inbox entry and streams its verified content:
 * the plaintext goes to spool (which must hold it until the end), and only when
 * 0 is returned may the caller release what it spooled. -EBADMSG / -EKEYREJECTED
 * if the stored bundle no longer verifies.
 */
int node_open_inbox(struct node *n, const struct store_inbox *e, node_sink spool, void *ctx,
		    struct envelope_meta *meta);
