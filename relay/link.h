/* The link session engine: docs/link.md's bundle exchange over one peer session, sans I/O. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "relay/link_msg.h"
#include "relay/node.h"

/*
 * One struct link_session per authenticated peer session: the caller has done the Noise
 * handshake and hands the engine plaintext records. The engine never reads a clock,
 * never touches a socket and never sleeps. Inputs are calls with now_ms (any monotonic
 * millisecond clock: it only times keepalives and rescans); outputs are records handed
 * to the send callback, and a deadline for the next link_session_tick. The store's own
 * clock stays n->now, which the caller keeps current as for every node function.
 *
 * Control records (HELLO, OFFER, WANT, REFUSE, ACK, PING, PONG, BYE) are sent as they
 * arise, from any call; transfer records (HEAD, DATA, END) only from link_session_pump,
 * within the byte budget the caller gives it (a socket's free space), so the caller
 * controls the flow.
 *
 * Custody (DESIGN.md §6): an ACK is sent only after the bundle's commit returned; an
 * ACK received releases the bundle (store_bundle_release) for this peer only.
 *
 * Receiving: each transfer is staged (store_stage_*: bytes in a file beside the store,
 * tied to this peer and the bundle id) from its HEAD to its END, and made durable every
 * few MiB and when the session is freed; only at END does ingest check and commit the
 * whole bundle, with the store's writer open for that local pass alone, so a slow link
 * holds no write lock. An offered id with a stage here is wanted from the stage's
 * durable count (WANT offset): a cut transfer resumes. Transfers may interleave (up to
 * link_limits.max_stages at once); none is kept in memory beyond a stage's buffer.
 *
 * Return values: 0, or a negative errno when the session is over and the caller closes
 * the connection (the engine sent BYE first where the protocol says so): -EPROTO the
 * peer broke the protocol (BYE protocol sent), -EPROTONOSUPPORT no common version (BYE
 * version sent), -ESHUTDOWN the peer said BYE or link_session_close was called,
 * -ETIMEDOUT keepalives unanswered (BYE idle sent), -ENOMEM, a store error (nothing
 * acknowledged), or the send callback's error. Once over, every call returns the same.
 * link_session_why says why in words, for a log line.
 */

struct link_limits {
	uint32_t max_record;  /* announced in HELLO: the largest record we take */
	uint16_t keepalive_s; /* PING after this long without a record from the peer; 0 never */
	uint64_t max_payload; /* offers over this are refused `too big` */
	uint64_t min_life_ms; /* offers with less lifetime left are refused `expired` */
	uint32_t max_offers;  /* offers outstanding (not yet ACKed or REFUSEd) at a time */
	uint32_t rescan_s;    /* how often tick looks for newly queued bundles to offer; 0 never */
	uint32_t max_stages;  /* transfers received at once (HEAD to END); more: REFUSE later */
	uint64_t stage_peer_max; /* payload bytes this peer's stages may reserve; more: quota */
	/* Disk (store_stage_limits): offers that would pass these are refused `disk full`. */
	uint64_t stage_total_max;   /* payload bytes all peers' stages may reserve together */
	uint64_t disk_reserve;	    /* free bytes the store's file system keeps, at least... */
	uint8_t disk_reserve_pct;   /* ...and this percentage of its size (0 to 100) */
	uint64_t stage_life_max_ms; /* a stage lives at most this long, whatever the offer says */
	/* Policy of this link (DESIGN.md §7), for what we offer. */
	enum store_priority min_priority; /* bundles below it are not offered on this session */
	uint64_t budget_bytes; /* transfer bytes pump may produce; UINT64_MAX unlimited */
	/*
	 * Group commit: bundles received are committed together in one store batch, which
	 * link_session_flush commits (then sends their ACKs). The caller must call it before
	 * it returns to its loop, and nothing else may use the store in between. Off by
	 * default: every bundle is committed and acknowledged alone.
	 */
	bool group_commit;
	/*
	 * A transfer received is made durable every stage_sync_bytes (what a crash of this
	 * process loses of it), from its first stage_sync_bytes on if that is under
	 * STORE_STAGE_BUF; one of small_max bytes at most (64 KiB) is held in memory
	 * instead of staged. A slow line wants both small: a serial line resumes a bundle
	 * where a crash stopped it, and its bytes are dear.
	 */
	uint32_t stage_sync_bytes, small_max;
};

/*
 * max_record LINK_RECORD_MAX, keepalive 30 s, NODE_MAX_PAYLOAD, 1 s, 1,000 offers, 10 s,
 * 8 stages, 8 GiB per peer, 16 GiB in all, a reserve of max(256 MiB, 5 %), stages live
 * 30 days at most (STORE_STAGE_LIFE_MAX_MS), every priority, no budget (UINT64_MAX), stages
 * made durable every 4 MiB, transfers up to 64 KiB held in memory.
 */
void link_limits_default(struct link_limits *lim);

/* Hands one record (at most the peer's max_record bytes) to the transport: 0 or -errno. */
typedef int (*link_send_fn)(void *ctx, const uint8_t *rec, size_t len);

struct link_session;

/*
 * A session with peer (copied), on node n (which must outlive it). lim NULL means
 * link_limits_default. Sends nothing yet. 0, -EINVAL (a limit out of range), -ENOMEM.
 */
int link_session_new(struct node *n, const struct store_peer *peer, const struct link_limits *lim,
		     link_send_fn send, void *ctx, struct link_session **out);
/*
 * Ends the session without a word (the connection is gone): transfers being received
 * are made durable as far as they came (their stages stay, for the next session to
 * resume), custody marks and releases not yet written are written.
 * link_session_free(NULL) is a no-op.
 */
void link_session_free(struct link_session *s);

/* What happened to one bundle on the link, for the daemon's log (and nothing else). */
enum link_event_kind {
	LINK_EVENT_ACKED_IN = 1, /* the peer's bundle is committed here; our ACK goes out */
	LINK_EVENT_REFUSED_IN,	 /* we refuse the peer's offer or transfer (reason, retry_s) */
	LINK_EVENT_ACKED_OUT,	 /* the peer acknowledged ours: custody passed (size) */
	LINK_EVENT_REFUSED_OUT,	 /* the peer refused ours (reason, retry_s) */
	LINK_EVENT_REJECTED_IN,	 /* the peer's bundle failed here (why); a REFUSED_IN follows */
};
struct link_event {
	enum link_event_kind kind;
	const uint8_t *id; /* 32 bytes */
	uint64_t size;	   /* ACKED_OUT: the bundle's payload bytes; else 0 */
	uint8_t reason;	   /* REFUSED_*: enum link_refuse_reason */
	uint32_t retry_s;
	const char *why; /* REJECTED_IN: what ingest said, in words; else NULL */
};
typedef void (*link_event_fn)(void *ctx, const struct link_event *ev);
/* Calls fn for every event from now on; NULL stops. fn must not call back into s. */
void link_session_on_event(struct link_session *s, link_event_fn fn, void *ctx);

/* Sends HELLO, then OFFERs of the bundles queued for this peer, urgent first, then oldest. */
int link_session_start(struct link_session *s, uint64_t now_ms);
/* One record from the peer (len bytes, the plaintext of one transport message). */
int link_session_input(struct link_session *s, const uint8_t *rec, size_t len, uint64_t now_ms);
/*
 * Produces transfer records, each whole, while they fit in budget bytes: urgent
 * transfers overtake others between two segments. *produced (may be NULL) gets the
 * bytes handed to send. 0 or an error as above.
 */
int link_session_pump(struct link_session *s, uint64_t now_ms, size_t budget, size_t *produced);
/* True if pump has transfer records to produce. */
bool link_session_wants_pump(const struct link_session *s);
/*
 * With group_commit: commits the bundles received since the last call (one durable
 * commit, delivery receipts included) and sends their ACKs. 0 or an error as above (a
 * failed commit ends the session with nothing acknowledged). A no-op otherwise.
 */
int link_session_flush(struct link_session *s);
/* Keepalives and rescans that are due at now_ms. */
int link_session_tick(struct link_session *s, uint64_t now_ms);
/* When tick is next due (a now_ms value); UINT64_MAX if never. */
uint64_t link_session_deadline(const struct link_session *s);
/*
 * Makes the next link_session_tick or link_session_pump scan the queue for bundles to
 * offer (the daemon calls it when a local process queued one: `tern send` goes at once,
 * not at the next rescan_s). Only marks the session: calls coalesce into one scan, so it
 * is cheap enough for every submitted bundle; link_session_deadline then says "now" (0),
 * and the caller must call tick (or pump) for the scan to happen.
 */
void link_session_rescan(struct link_session *s);
/*
 * As link_session_rescan, but the scan looks only at bundles stored since the last scan
 * that finished (cost: what is new, not the queue's length). For bundles just queued or
 * received; a change of route, policy or budget needs link_session_rescan.
 */
void link_session_scan_new(struct link_session *s);
/*
 * Sets the transfer bytes pump may still produce on this session (a daily refill, say);
 * UINT64_MAX: unlimited. Bytes count as in link_stats.bytes_out (HEAD, DATA and END
 * records; control records are not counted). A bundle is offered only while what is
 * left, less what the outstanding offers may still cost, covers its whole transfer
 * (head, payload, record overhead): else it is not offered, urgent ones too, and waits
 * for a refill or another link. Offers already made are finished. A refill rescans.
 */
void link_session_set_budget(struct link_session *s, uint64_t bytes);
/*
 * True if this side has nothing under way: none of our offers outstanding, none of the
 * peer's transfers wanted or being received, no custody write or rescan pending. (Offers
 * that the peer refused with a retry_after_s wait for it, or for the next session.) A
 * dialer on a metered link may hang up then. False once the session is over.
 */
bool link_session_idle(const struct link_session *s);
/*
 * Changes the priority floor of what this session offers (a reloaded policy); offers
 * already made stand. A lower floor rescans. A value above STORE_URGENT is ignored.
 */
void link_session_set_min_priority(struct link_session *s, enum store_priority p);
/* Sends BYE done and ends the session (it returns -ESHUTDOWN from then on). */
int link_session_close(struct link_session *s);
/* Why the session ended, in words ("" while it runs). */
const char *link_session_why(const struct link_session *s);

/* Counters, for a log line and for tests. */
struct link_stats {
	uint64_t offered, acked_out, refused_out; /* our bundles: offered, ACKed, REFUSEd by peer */
	uint64_t received, acked_in, refused_in;  /* theirs: stored here (or dup), ACKed, refused */
	uint64_t released;			  /* our bundles released by the peer's ACKs */
	uint64_t bytes_out;			  /* transfer record bytes produced by pump */
	uint64_t hop_limited;		      /* ours deleted: one more hop passes their limit */
	uint64_t offers_held, transfers_held; /* entries kept now (memory: bounded by limits) */
};
void link_session_stats(const struct link_session *s, struct link_stats *out);
