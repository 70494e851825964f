/* Public interface of tern's store: the SQLite queue, payload chunks, inbox, contacts. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Only store/ includes sqlite3.h. The store knows nothing of BPv7 or of the
 * envelope: a bundle is an opaque encoded head (the relay's business), a few
 * columns the queue must sort and filter by, and payload bytes kept in chunks.
 *
 * Durability (DESIGN.md §6): WAL mode, synchronous=FULL; every function that
 * commits returns 0 only after COMMIT returned, and any SQLite error (an I/O
 * error, a full disk) is returned as a negative errno with nothing committed.
 * All functions return 0 or a negative errno unless said otherwise; the text of
 * the last SQLite error is in store_errmsg().
 */

struct store;

/*
 * What "now" is, given by the caller (the store never reads a clock). Bundle age
 * (RFC 9171 §4.4.2) grows with the time a bundle spends here, measured on the
 * boot clock (CLOCK_BOOTTIME): it is valid within one boot; across a reboot the
 * store counts up to the last checkpoint it recorded.
 */
struct store_clock {
	uint64_t unix_ms;   /* wall clock, maybe wrong */
	uint8_t boot_id[16];
	uint64_t boot_ms;   /* CLOCK_BOOTTIME */
};

/*
 * Opens (creating and migrating if needed) the store at path. -errno on failure;
 * *why names the cause in words where it can ("database is locked", "schema is
 * newer than this tern" with -EPROTONOSUPPORT, "not a tern store" with -EBADMSG)
 * and is NULL on success. The file and its -wal and -shm are made mode 0600. A
 * struct store is used by one thread at a time; several (in this or other
 * processes) may open the same path.
 */
int store_open(const char *path, const struct store_clock *now, struct store **out,
	       const char **why);
/* Records a clock checkpoint and closes; store_close(NULL) is a no-op. */
void store_close(struct store *s);
const char *store_errmsg(const struct store *s);
/* Current schema version (PRAGMA user_version). */
int store_schema_version(struct store *s);

/* ---- settings -------------------------------------------------------------- */

/* Copies the value of key into buf (NUL-terminated). -ENOENT if unset, -ENOSPC if too long. */
int store_setting_get(struct store *s, const char *key, char *buf, size_t len);
/* Keys starting with "store." are the store's own: -EPERM. */
int store_setting_set(struct store *s, const char *key, const char *value);

/* ---- contacts (the address book) -------------------------------------------- */

#define STORE_NAME_MAX 64

struct store_contact {
	char name[STORE_NAME_MAX + 1];
	uint8_t sign_pk[32];
	uint8_t box_pk[32];
	uint32_t epoch;
	uint8_t cert[64];
	uint32_t node;
	uint64_t added_unix_ms;
};

/*
 * Adds a contact. -EEXIST if the name is taken by another key or the key is
 * already known under another name (nothing changes); 0 if the same name and key
 * are already there (the encryption key is updated if the epoch is newer).
 */
int store_contact_add(struct store *s, const struct store_contact *c);
int store_contact_remove(struct store *s, const char *name); /* -ENOENT */
int store_contact_get(struct store *s, const char *name, struct store_contact *out); /* -ENOENT */
int store_contact_by_key(struct store *s, const uint8_t sign_pk[static 32],
			 struct store_contact *out); /* -ENOENT */
/*
 * Calls fn for each contact in name order (bytewise); a non-zero return from fn
 * stops and is returned. fn may write to the store (as in store_bundle_foreach).
 */
int store_contact_foreach(struct store *s, int (*fn)(void *ctx, const struct store_contact *c),
			  void *ctx);

/* ---- bundles: the queue ---------------------------------------------------- */

enum store_priority { STORE_BULK = 0, STORE_NORMAL = 1, STORE_URGENT = 2 };

enum store_state {
	STORE_QUEUED = 1,      /* waits for a next hop */
	STORE_DELIVERED = 2,   /* for this node, opened and verified; kept sealed for the inbox */
	STORE_QUARANTINED = 3, /* its stored bytes failed their checksum; kept for an operator */
};

struct store_bundle {
	int64_t rowid;
	uint8_t id[32];
	enum store_state state;
	uint64_t dest_node;        /* ipn node number; 0 for other schemes */
	enum store_priority priority;
	uint64_t lifetime_ms;
	uint64_t age_ms;           /* age when received or created */
	uint64_t payload_len;
	uint64_t received_unix_ms; /* local wall clock, for display only */
	bool local;                /* created on this node */
	/* filled by reads: the age now, after the time spent here */
	uint64_t age_now_ms;
};

/* Writes one bundle's payload in chunks inside one transaction. Opaque. */
struct store_writer;

/*
 * Starts a write transaction for one new bundle, received (or created) at now: the
 * bundle's residence here, which store_bundle_get/foreach add to its age, counts
 * from now. -EBUSY if another writer is open (of this store, or of another process
 * for longer than the busy timeout). While a writer is open, the store's other
 * writing functions return -EBUSY; reads see the writer's uncommitted rows.
 */
int store_writer_begin(struct store *s, const struct store_clock *now, struct store_writer **out);
/*
 * Appends payload bytes; memory stays bounded by one chunk. After an error the
 * writer can only be aborted (or committed, which then rolls back and returns it).
 */
int store_writer_append(struct store_writer *w, const uint8_t *buf, size_t len);

/* An inbox entry, committed together with a delivered bundle. */
struct store_inbox {
	int64_t rowid;
	uint8_t msg_id[16];
	uint8_t bundle_id[32];
	uint8_t sender_pk[32];
	int kind;                       /* enum envelope_kind */
	char name[256];                 /* file base name or "" */
	uint64_t size;                  /* plaintext bytes */
	uint64_t created_unix_ms;       /* sender's clock, 0 if unknown */
	uint64_t received_unix_ms;
	bool read;
};

/*
 * Commits the bundle: b->id, dest, priority, lifetime, age, payload_len, local
 * and state are read; head is the relay's encoded head. If inbox is not NULL the
 * entry is inserted in the same transaction (its bundle_id is taken from b->id).
 * Returns 0 once durable; -EEXIST and nothing stored if a bundle with that id, or
 * an inbox entry with that message id, already exists; -EINVAL and nothing stored
 * if b->payload_len differs from the bytes appended, or state is not QUEUED or
 * DELIVERED; other -errno with nothing stored. Frees w in every case.
 */
int store_writer_commit(struct store_writer *w, const struct store_bundle *b, const uint8_t *head,
			size_t headlen, const struct store_inbox *inbox);
/* Rolls back and frees; store_writer_abort(NULL) is a no-op. */
void store_writer_abort(struct store_writer *w);

/* True if a bundle with this id is stored (any state). */
bool store_bundle_exists(struct store *s, const uint8_t id[static 32]);
/*
 * Finds a bundle by id. -ENOENT. head (cap bytes) gets the encoded head, *headlen
 * its length; -ENOSPC (out and *headlen still filled) if cap is too small; head
 * may be NULL to learn the length. now may be NULL: the latest clock the store saw.
 * A head that fails its checksum quarantines the bundle: -EBADMSG.
 */
int store_bundle_get(struct store *s, const uint8_t id[static 32], const struct store_clock *now,
		     struct store_bundle *out, uint8_t *head, size_t cap, size_t *headlen);
/*
 * Calls fn for each bundle in state, urgent first, then oldest first (in order of
 * arrival here, which no wrong wall clock can reorder). head is valid during the
 * call. A non-zero return from fn stops and is returned. No read transaction is
 * open while fn runs: fn may write to the store (delete the bundle it was given,
 * say) even while other processes commit; bundles added or removed meanwhile may
 * or may not be visited. Bundles whose head fails its checksum are skipped and
 * quarantined, and -EBADMSG is returned at the end.
 */
int store_bundle_foreach(struct store *s, enum store_state state, const struct store_clock *now,
			 int (*fn)(void *ctx, const struct store_bundle *b, const uint8_t *head,
				   size_t headlen),
			 void *ctx);
/*
 * Streams a bundle's payload to fn in order, a chunk at a time, each chunk checked
 * against its CRC-32C first. On a mismatch, a missing chunk or a wrong length the
 * bundle is moved to STORE_QUARANTINED (durably), store_errmsg() names the chunk,
 * and -EBADMSG is returned: what fn was already given must then be discarded.
 * -ENOENT if no such bundle. A non-zero return from fn stops and is returned.
 */
int store_payload_read(struct store *s, int64_t rowid,
		       int (*fn)(void *ctx, const uint8_t *buf, size_t len), void *ctx);
/* Deletes a bundle and its chunks (durably). -ENOENT. */
int store_bundle_delete(struct store *s, const uint8_t id[static 32]);
/*
 * Deletes queued bundles whose age now is at or past their lifetime; *count gets
 * how many. Delivered bundles stay (they are the sealed inbox), and so do
 * quarantined ones. Also records a clock checkpoint: call it periodically.
 */
int store_purge_expired(struct store *s, const struct store_clock *now, uint64_t *count);

/* ---- inbox ------------------------------------------------------------------ */

/* Calls fn for each inbox entry, oldest first; fn may write to the store (as in bundle_foreach). */
int store_inbox_foreach(struct store *s, int (*fn)(void *ctx, const struct store_inbox *e),
			void *ctx);
/*
 * Finds the entry whose message id in hex starts with prefix (at least 4 hex
 * digits). -ENOENT none, -EEXIST more than one (ambiguous), -EINVAL not hex.
 */
int store_inbox_find(struct store *s, const char *hex_prefix, struct store_inbox *out);
/* True if a message with this id was delivered (recipient-side dedupe). */
bool store_inbox_has(struct store *s, const uint8_t msg_id[static 16]);
int store_inbox_mark_read(struct store *s, int64_t rowid);
/* The rowid of the bundle that carries an inbox entry. -ENOENT. */
int store_inbox_bundle(struct store *s, const struct store_inbox *e, int64_t *bundle_rowid);
