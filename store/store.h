/* Public interface of tern's store: the SQLite queue, chunks, inbox, contacts, peers, routes. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

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
 *
 * Inside a batch (store_batch_begin, below) the functions that commit write into
 * the batch's transaction instead, and their 0 means "in the batch": durable only
 * once store_batch_commit returned 0.
 */

struct store;

/*
 * What "now" is, given by the caller (the store never reads a clock). Bundle age
 * (RFC 9171 §4.4.2) grows with the time a bundle spends here, measured on the
 * boot clock (CLOCK_BOOTTIME): it is valid within one boot; across a reboot the
 * store counts up to the last checkpoint it recorded.
 */
struct store_clock {
	uint64_t unix_ms; /* wall clock, maybe wrong */
	uint8_t boot_id[16];
	uint64_t boot_ms; /* CLOCK_BOOTTIME */
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
/*
 * Records a clock checkpoint and closes; store_close(NULL) is a no-op. An open batch
 * is rolled back, as is an open writer (which the caller still aborts to free it).
 */
void store_close(struct store *s);
const char *store_errmsg(const struct store *s);
/* Current schema version (PRAGMA user_version). */
int store_schema_version(struct store *s);

/*
 * Copies the store as it is at one moment while other processes keep writing: the database
 * into copy_path (an empty file the caller made, mode 0600), then each payload file that
 * moment names, handed to fn(ctx, name, fd) open for reading, name being its path under
 * "<store>-payloads/". Partial transfers are left out of the copy (they restart from zero).
 * *n_files counts the files given to fn. 0; -EBUSY (a batch or writer is open on s); fn's
 * error; or -errno with *why in words.
 */
int store_backup(struct store *s, const char *copy_path, unsigned *n_files,
		 int (*fn)(void *ctx, const char *name, int fd), void *ctx, const char **why);

/* ---- settings -------------------------------------------------------------- */

/* Copies the value of key into buf (NUL-terminated). -ENOENT if unset, -ENOSPC if too long. */
int store_setting_get(struct store *s, const char *key, char *buf, size_t len);
/* Keys starting with "store." are the store's own: -EPERM. Joins an open batch. */
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
 * Like every function here that writes, it joins an open batch.
 */
int store_contact_add(struct store *s, const struct store_contact *c);
int store_contact_remove(struct store *s, const char *name);			     /* -ENOENT */
int store_contact_get(struct store *s, const char *name, struct store_contact *out); /* -ENOENT */
int store_contact_by_key(struct store *s, const uint8_t sign_pk[static 32],
			 struct store_contact *out); /* -ENOENT */
/*
 * Calls fn for each contact in name order (bytewise); a non-zero return from fn
 * stops and is returned. fn may write to the store (as in store_bundle_foreach).
 */
int store_contact_foreach(struct store *s, int (*fn)(void *ctx, const struct store_contact *c),
			  void *ctx);
/*
 * Calls fn with the identity key of each contact whose key starts with the byte first, in
 * key order, by the key's index: what a compact envelope's sender hint narrows the address
 * book to. A non-zero return from fn stops and is returned.
 */
int store_contact_keys_starting(struct store *s, uint8_t first,
				int (*fn)(void *ctx, const uint8_t sign_pk[32]), void *ctx);

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
	uint64_t dest_node; /* ipn node number; 0 for other schemes */
	enum store_priority priority;
	uint64_t lifetime_ms;
	uint64_t age_ms; /* age when received or created */
	uint64_t payload_len;
	uint64_t received_unix_ms; /* local wall clock, for display only */
	bool local;		   /* created on this node */
	/* filled by reads: the age now, after the time spent here */
	uint64_t age_now_ms;
	/* filled by reads: custody (store_bundle_mark_exported); 0 until first exported */
	uint64_t export_count;
	uint64_t last_export_unix_ms;
};

/* Writes one bundle's payload in chunks inside one transaction. Opaque. */
struct store_writer;

/*
 * Starts a write transaction for one new bundle, received (or created) at now: the
 * bundle's residence here, which store_bundle_get/foreach add to its age, counts
 * from now. -EBUSY if another writer is open (of this store, or of another process
 * for longer than the busy timeout). While a writer is open, the store's other
 * writing functions return -EBUSY; reads see the writer's uncommitted rows.
 * Inside a batch the writer's bundle is a unit of the batch: see store_batch_begin.
 */
int store_writer_begin(struct store *s, const struct store_clock *now, struct store_writer **out);
/*
 * Says how many payload bytes will follow, before the first append. A payload of
 * a megabyte or more is then kept in a file beside the database (written once,
 * instead of into the WAL and again by its checkpoint), with the same guarantees:
 * durable and named only at commit, gone with a rollback, removed only after the
 * deletion of its bundle committed, checked against per-chunk CRCs when read. Without
 * the call the payload goes into the database whatever its size. 0, -EINVAL (bytes
 * already appended), or the error of creating the file.
 */
int store_writer_expect(struct store_writer *w, uint64_t payload_len);
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
	int kind;		  /* enum envelope_kind */
	char name[256];		  /* file base name or "" */
	uint64_t size;		  /* plaintext bytes */
	uint64_t created_unix_ms; /* sender's clock, 0 if unknown */
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
 * DELIVERED; other -errno with nothing stored. The sent rows given to
 * store_writer_add_sent are inserted in the same transaction (-EEXIST, nothing
 * stored, if one is already there). Frees w in every case. Inside a batch, 0 means
 * the bundle is in the batch (durable with store_batch_commit), and an error
 * (-EEXIST, say) takes back this bundle only; -EINVAL if the writer was orphaned
 * (store_close or store_batch_abort rolled it back).
 */
int store_writer_commit(struct store_writer *w, const struct store_bundle *b, const uint8_t *head,
			size_t headlen, const struct store_inbox *inbox);
/* Rolls back and frees; store_writer_abort(NULL) is a no-op. */
void store_writer_abort(struct store_writer *w);

/*
 * Records that this bundle carries message msg_id to node to_node, for the sender
 * to follow (store_sent_foreach): a sent row in state STORE_SENT_QUEUED, created
 * at the writer's begin time, with the committed bundle's id, inserted by
 * store_writer_commit in the same transaction as the bundle, so an abort or a
 * failed commit leaves none. May be called several times (one bundle for several
 * nodes). -ENOMEM; like an append error it sticks to the writer.
 */
int store_writer_add_sent(struct store_writer *w, const uint8_t msg_id[static 16],
			  uint64_t to_node);

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
 * Calls fn for each bundle in state (STORE_QUEUED, STORE_DELIVERED or
 * STORE_QUARANTINED, else -EINVAL), urgent first, then oldest first (in order of
 * arrival here, which no wrong wall clock can reorder). Quarantined bundles are
 * handed over with their head as stored, checksum or not. head is valid during the
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
 * As store_bundle_foreach, over the bundles whose rowid is above after only: those stored
 * since a scan that saw rowids up to after (rowids only grow, and rows commit in their
 * order: the store has one writer at a time). For scans that look at what is new.
 */
int store_bundle_foreach_after(struct store *s, enum store_state state, int64_t after,
			       const struct store_clock *now,
			       int (*fn)(void *ctx, const struct store_bundle *b,
					 const uint8_t *head, size_t headlen),
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
/*
 * Copies up to len payload bytes from offset on into buf, from the one chunk that
 * holds offset (a row, or a STORE_CHUNK_SIZE piece of a payload file), after checking
 * that chunk's CRC-32C: a read never crosses a chunk's end, so call again from
 * offset + the count for more. Returns the count (0 at or past the end of the
 * payload, or for len 0), -ENOENT if no such bundle, -EINVAL, or -EBADMSG after
 * quarantining the bundle as store_payload_read does (store_errmsg() names the
 * chunk). No transaction stays open between calls: a link that sends a payload a
 * segment at a time holds back neither writers nor checkpoints.
 */
ssize_t store_payload_pread(struct store *s, int64_t rowid, uint64_t offset, uint8_t *buf,
			    size_t len);
/* Deletes a bundle and its chunks (durably). -ENOENT. */
int store_bundle_delete(struct store *s, const uint8_t id[static 32]);
/*
 * Deletes queued bundles whose age now is at or past their lifetime; *count gets
 * how many. Delivered bundles stay (they are the sealed inbox), and so do
 * quarantined ones. Also records a clock checkpoint: call it periodically. Sent
 * rows of purged bundles stay STORE_SENT_QUEUED (the message was never handed on).
 * Stages past their life_ms go too (not counted), and the files of what was deleted
 * are swept at once (outside a batch).
 */
int store_purge_expired(struct store *s, const struct store_clock *now, uint64_t *count);

/* ---- stages: transfers being received over a link, kept across a cut ---------- */

/*
 * A stage holds the payload bytes received so far of one transfer from one peer, so
 * that a cut link resumes where it stopped (docs/link.md, "Resuming a cut transfer"):
 * a file beside the payload files, <db>-payloads/in-<peer>-<id>, and a row saying how
 * many of its bytes are durable ("have": what the next WANT may ask from). Nothing of
 * it is a bundle: the bytes are checked only when the whole bundle goes through ingest.
 * Files and rows follow the payload files' rules (docs/store.md, "Stages"). A stage's
 * write units are short (creation, each sync, the drop): no write lock is held between
 * calls, whatever the transfer's length. A stage is used by one session at a time (its
 * file is locked): another open of it gets -EBUSY.
 *
 * The store keeps a list of its open stages: store_close makes each durable as far as
 * it came (store_stage_sync) and orphans it, so that a session freed after the store is
 * safe. An orphaned stage answers every call with -EBADF and only waits to be closed.
 */
struct store_stage;

/* Bytes of a stage kept in memory before they go to its file; a shorter one never does. */
#define STORE_STAGE_BUF (256 * 1024)
/* A stage lives at most this long, whatever its offer's lifetime says (30 days). */
#define STORE_STAGE_LIFE_MAX_MS (30ull * 24 * 3600 * 1000)
/* A stage without progress (no sync moved its have) this long goes (7 days). */
#define STORE_STAGE_IDLE_MS (7ull * 24 * 3600 * 1000)

/*
 * What stages may take, so that no peer, nor all of them, can fill the disk:
 * - peer_max: payload bytes one peer's stages (rows) may reserve together: -EDQUOT;
 * - total_max: payload bytes all peers' stages may reserve together: -ENOSPC;
 * - reserve, reserve_pct: free space of the store's file system (statvfs) that a new
 *   transfer must leave, the larger of reserve bytes and reserve_pct % of its size,
 *   after what the transfer still needs: its bytes not yet staged and, for the copy
 *   into the queue at its end, its whole payload once more: -ENOSPC;
 * - life_max_ms: a stage's life_ms is clamped to it.
 * - file_min: a stage gets its file and row (and can be resumed) once it holds this many
 *   bytes, at most STORE_STAGE_BUF (0: STORE_STAGE_BUF); a slow line sets it low, as
 *   each byte lost to a crash is long to send again.
 * The caps count the payload lengths of stages with a file (file_min bytes or more).
 */
struct store_stage_limits {
	uint64_t peer_max;
	uint64_t total_max;
	uint64_t reserve;
	uint32_t reserve_pct;
	uint64_t life_max_ms;
	uint32_t file_min;
};

/* 8 GiB per peer, 16 GiB in all, max(256 MiB, 5 %) free, STORE_STAGE_LIFE_MAX_MS. */
void store_stage_limits_default(struct store_stage_limits *lim);

/*
 * The durable count of the stage of (peer, id) for a payload of payload_len bytes: *have
 * gets 0 if there is none, its payload length differs, or its file is missing or short.
 * *peer_bytes (may be NULL) gets the payload bytes that peer's other stages reserve.
 * Reads only. 0 or a store error.
 */
int store_stage_have(struct store *s, uint64_t peer, const uint8_t id[static 32],
		     uint64_t payload_len, uint64_t *have, uint64_t *peer_bytes);
/*
 * Whether a transfer of (peer, id), payload_len bytes wanted from have on, may be staged
 * under lim (the checks store_stage_open makes, for a receiver deciding its WANT): 0,
 * -EDQUOT over the peer's cap, -ENOSPC over the total cap or under the disk's reserve
 * (store_errmsg says which, with the numbers), or a store error. Reads only. A file
 * system that cannot say its free space (statvfs fails) is taken to have room.
 */
int store_stage_admit(struct store *s, uint64_t peer, const uint8_t id[static 32],
		      uint64_t payload_len, uint64_t have, const struct store_stage_limits *lim);
/*
 * Opens the stage of (peer, id) to continue at payload byte from (the WANT offset):
 * bytes at and past from are written over. from 0 starts afresh (a stage of another
 * payload length is dropped); from above 0 needs a stage whose have is at least from
 * (store_stage_have) and still names the same row once its file is locked, else -ESTALE.
 * store_stage_admit's checks are made first (-EDQUOT, -ENOSPC). A new stage gets a file
 * and a row only once it holds lim->file_min bytes: the caps are checked again then
 * (-EDQUOT or -ENOSPC from append or sync), and the file's blocks are allocated for the
 * whole payload (fallocate, where the file system can) so that the disk cannot fill
 * under a transfer already admitted. life_ms: the stage expires that long after its
 * creation here, by the boot clock as bundles do, clamped to lim->life_max_ms; and it
 * expires after STORE_STAGE_IDLE_MS without progress (store_purge_expired,
 * store_stage_expire). lim NULL: store_stage_limits_default. now may be NULL (the
 * latest clock the store saw). -EBUSY another session has it open, or a batch is open
 * on this store; -EINVAL.
 */
int store_stage_open(struct store *s, uint64_t peer, const uint8_t id[static 32],
		     uint64_t payload_len, uint64_t from, uint64_t life_ms,
		     const struct store_stage_limits *lim, const struct store_clock *now,
		     struct store_stage **out);
/*
 * Appends payload bytes (buffered up to STORE_STAGE_BUF). -EINVAL past payload_len;
 * -EDQUOT, -ENOSPC, -EBUSY (the store's write lock, to create the file), -EIO. An
 * error sticks: the stage can then only be dropped or closed.
 */
int store_stage_append(struct store_stage *st, const uint8_t *buf, size_t len);
/*
 * Makes every byte appended durable: the file is fdatasync'd, then the new have is
 * committed, and the stage's idle time starts again. A stage still shorter than its
 * limits' file_min is left in memory (0, have stays 0: nothing worth resuming). -ENOENT
 * if its row is gone (expired and purged). A failed write or fdatasync sticks (the
 * stage is poisoned: once a sync failed, the kernel may have dropped pages that a later
 * sync would not report, so have never moves again); a busy store (-EBUSY, have not
 * committed) does not, and a later sync may succeed.
 */
int store_stage_sync(struct store_stage *st);
/* Bytes appended (the next payload offset), and bytes durable (have as last synced here). */
uint64_t store_stage_length(const struct store_stage *st);
uint64_t store_stage_durable(const struct store_stage *st);
/* Up to len staged bytes from offset off into buf: the count, 0 at the end, or -errno. */
ssize_t store_stage_read(struct store_stage *st, uint64_t off, uint8_t *buf, size_t len);
/*
 * Ends the stage for good (its bundle committed, or was refused): the row is deleted,
 * durably, and its file removed after that. Frees st in every case. A row that could
 * not be deleted (the store busy) is voided: its file is cut to 0 bytes, so that no
 * resume uses its bytes again (the next open starts afresh), and it expires.
 * store_stage_drop(NULL) is a no-op returning 0.
 */
int store_stage_drop(struct store_stage *st);
/* Closes without a sync: what was durable stays for a resume. NULL is a no-op. */
void store_stage_close(struct store_stage *st);
/*
 * Drops the stages past their life_ms or without progress for idle_ms (0: only the
 * expired ones) as of now, and sweeps their files (outside a batch); *count (may be
 * NULL) gets how many. store_purge_expired does the same with STORE_STAGE_IDLE_MS; a
 * daemon calls this on its purge timer to choose another idle time. A stage open in a
 * session and dropped so finds out at its next sync (-ENOENT).
 */
int store_stage_expire(struct store *s, const struct store_clock *now, uint64_t idle_ms,
		       uint64_t *count);

/* ---- custody ---------------------------------------------------------------- */

/*
 * Counts one more export of a bundle to peer (node number), written to a stick or
 * sent over a link, and records when: export_count + 1, last_export_unix_ms =
 * unix_ms, and peer among those that may take custody of it. The bundle stays, in
 * its state, until one of them does (store_bundle_release). -ENOENT if no such bundle.
 */
int store_bundle_mark_exported(struct store *s, const uint8_t id[static 32], uint64_t peer,
			       uint64_t unix_ms);
/*
 * Peer took custody of bundle id (its receipt came back): if the bundle is
 * STORE_QUEUED and was exported to that peer (store_bundle_mark_exported), deletes
 * it and its chunks and moves the sent rows carried by it from STORE_SENT_QUEUED to
 * STORE_SENT_HANDED_OVER (a DELIVERED row stays so), durably, in one transaction.
 * A receipt from a peer the bundle was not handed to releases nothing: one peer
 * cannot make this node drop what another peer is to carry. *released (may be NULL)
 * gets 1 if a bundle was deleted, else 0. An unknown or already released id is not
 * an error: 0, *released = 0. The sent rows' changed time is the latest wall clock
 * the store was given (this call takes none).
 */
int store_bundle_release(struct store *s, const uint8_t id[static 32], uint64_t peer,
			 uint64_t *released);
/*
 * Records that peer holds a copy of bundle id (it acknowledged it, or sent it here), for
 * routing that keeps its copies (epidemic): the bundle stays, and is not offered to that
 * peer again. Durable, idempotent; an unknown id is not an error. 0 or a store error.
 */
int store_bundle_add_holder(struct store *s, const uint8_t id[static 32], uint64_t peer);
/* True if store_bundle_add_holder recorded peer for the bundle of this rowid. */
bool store_bundle_held_by(struct store *s, int64_t rowid, uint64_t peer);

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

/* ---- sent messages: what became of what this node sent ---------------------- */

enum store_sent_state {
	STORE_SENT_QUEUED = 1,	    /* the bundle waits here for a next hop */
	STORE_SENT_HANDED_OVER = 2, /* a next hop took custody (store_bundle_release) */
	STORE_SENT_DELIVERED = 3,   /* the recipient's delivery receipt came home */
};

struct store_sent {
	uint8_t msg_id[16];
	uint64_t to_node;
	uint8_t bundle_id[32]; /* the bundle that carried it from here */
	enum store_sent_state state;
	uint64_t created_unix_ms; /* the writer's wall clock at begin */
	uint64_t changed_unix_ms; /* when state last changed (= created while QUEUED) */
	uint64_t change_seq;	  /* the order state changes committed here; 0: never changed */
};

/*
 * Calls fn for each sent row, newest first (in order of creation here, which no
 * wrong wall clock can reorder). A non-zero return from fn stops and is returned;
 * fn may write to the store (as in store_bundle_foreach).
 */
int store_sent_foreach(struct store *s, int (*fn)(void *ctx, const struct store_sent *e),
		       void *ctx);
/*
 * Calls fn for each sent row whose state changed after change number after
 * (store_sent.change_seq), in the order the changes committed, however the wall
 * clock went. Stops and returns a non-zero return of fn, as store_sent_foreach.
 */
int store_sent_foreach_changed(struct store *s, uint64_t after,
			       int (*fn)(void *ctx, const struct store_sent *e), void *ctx);
/* The number of the latest change of a sent row's state (0 if none): where to follow from. */
int store_sent_last_change(struct store *s, uint64_t *seq);
/*
 * The recipient node to_node has message msg_id (its delivery receipt came back).
 * In one durable transaction: the sent row becomes STORE_SENT_DELIVERED (from any
 * state; changed_unix_ms = unix_ms), and the bundle that carried it is deleted if
 * it is still STORE_QUEUED here (it no longer needs forwarding) and no other sent
 * row waits on it in STORE_SENT_QUEUED (one bundle for several nodes goes with the
 * last receipt). *dropped (may be NULL) gets the number of bundles deleted, 0 or 1.
 * Idempotent: a repeated receipt returns 0, *dropped = 0 and changes nothing.
 * -ENOENT if no such sent row (a receipt for something this node never sent).
 */
int store_sent_delivered(struct store *s, const uint8_t msg_id[static 16], uint64_t to_node,
			 uint64_t unix_ms, uint64_t *dropped);

/* ---- peers: the nodes we exchange bundles with directly --------------------- */

enum store_link {
	STORE_LINK_SNEAKERNET = 1,
	STORE_LINK_TCP = 2,
	STORE_LINK_SERIAL = 4,
};

/*
 * A peer is a node we hand bundles to and take them from; a contact is an
 * end-to-end correspondent. One identity may be both (a table each). node is an
 * ipn node number of any width (an interop peer's may exceed 32 bits).
 */
struct store_peer {
	char name[STORE_NAME_MAX + 1];
	uint8_t sign_pk[32];
	uint8_t box_pk[32];
	uint32_t epoch;
	uint8_t cert[64];
	uint64_t node;
	uint64_t added_unix_ms;
	unsigned links; /* STORE_LINK_* bits */
	char addr[256]; /* link address (host:port for TCP), NUL-terminated; may be "" */
};

/*
 * Adds a peer. -EINVAL if the name is not 1 to STORE_NAME_MAX bytes, addr is not
 * NUL-terminated or links has a bit outside STORE_LINK_*. -EEXIST and nothing
 * changes if the name is taken by another key, the key is already a peer under
 * another name, or (for a new peer) the node number is already another peer's.
 * 0 if the same name and key are there: links and addr are replaced, box_pk and
 * cert too if the epoch is newer; node and added_unix_ms are not changed.
 */
int store_peer_add(struct store *s, const struct store_peer *p);
/* Removes a peer; its routes stay (they dangle until replaced or removed). -ENOENT. */
int store_peer_remove(struct store *s, const char *name);
int store_peer_get(struct store *s, const char *name, struct store_peer *out); /* -ENOENT */
int store_peer_by_key(struct store *s, const uint8_t sign_pk[static 32],
		      struct store_peer *out);					/* -ENOENT */
int store_peer_by_node(struct store *s, uint64_t node, struct store_peer *out); /* -ENOENT */
/*
 * Calls fn for each peer in name order (bytewise); a non-zero return from fn stops
 * and is returned. fn may write to the store (as in store_bundle_foreach).
 */
int store_peer_foreach(struct store *s, int (*fn)(void *ctx, const struct store_peer *p),
		       void *ctx);

/* ---- routes: destination node -> next-hop peer ------------------------------ */

#define STORE_ROUTE_DEFAULT 0 /* dest of the default route */

struct store_route {
	uint64_t dest; /* destination node number; STORE_ROUTE_DEFAULT for the default route */
	uint64_t via;  /* the next hop's node number (a peer's, but not checked) */
};

/* Sets (or replaces) the route to dest. -EINVAL if via is 0. */
int store_route_set(struct store *s, uint64_t dest, uint64_t via);
int store_route_remove(struct store *s, uint64_t dest); /* -ENOENT */
/*
 * The next hop for dest, by exact match only: -ENOENT if there is no route for
 * dest itself (the caller falls back to STORE_ROUTE_DEFAULT if it wants to).
 */
int store_route_get(struct store *s, uint64_t dest, uint64_t *via);
/*
 * Calls fn for each route in unsigned order of dest (so the default route first); a
 * non-zero return from fn stops and is returned. fn may write to the store.
 */
int store_route_foreach(struct store *s, int (*fn)(void *ctx, const struct store_route *r),
			void *ctx);

/* ---- batches: one durable commit for many writes ------------------------------ */

/*
 * Opens a batch: one write transaction (BEGIN IMMEDIATE) that the store's writing
 * functions join, each as a savepoint, until store_batch_commit or
 * store_batch_abort. Costs one fsync for the batch instead of one per call: the
 * way to import thousands of short bundles. -EBUSY if a batch or a writer is open,
 * or another process holds the write lock past the busy timeout.
 *
 * Inside a batch: each writing call (a writer's bundle, a contact, a peer, a route,
 * a setting, an export mark, a release, a delivery, a purge, a quarantine) is a
 * unit: an error from it (-EEXIST from store_writer_commit for a bundle already
 * stored, say) takes back that unit alone and the batch goes on. One writer at a
 * time as ever (-EBUSY). Reads of this store see what the batch wrote; other
 * connections see none of it until the commit, and wait for the write lock (up to
 * the busy timeout) as long as the batch is open: keep batches short.
 *
 * THE RULE: nothing written inside a batch may be acknowledged to anyone (a
 * custody receipt, a transfer acknowledgement) before store_batch_commit returned
 * 0. A 0 from a call inside the batch means "in the batch", not "durable"; and
 * -EEXIST may name a bundle staged earlier in this same batch, so an "already
 * have it" acknowledgement waits for the commit too.
 *
 * If SQLite itself rolls the whole transaction back (some I/O errors, a full disk
 * do), every later call in the batch and store_batch_commit return that error
 * (-EIO, -ENOSPC, -ENOMEM; never -EEXIST): nothing of the batch was stored.
 */
int store_batch_begin(struct store *s);
/* True while a batch is open (a caller's batch that a helper should join, not nest). */
bool store_batch_is_open(const struct store *s);
/*
 * Writes the clock checkpoint (once for the batch) and commits: 0 only once the
 * whole batch is durable, as store_writer_commit's 0 outside a batch. On error
 * nothing of the batch is stored. The batch is over in either case. -EINVAL if no
 * batch is open; -EBUSY (the batch stays open) if a writer is still open.
 */
int store_batch_commit(struct store *s);
/*
 * Rolls back everything written in the batch and ends it; a no-op without a batch.
 * An open writer is rolled back with it: the caller still aborts it to free it.
 */
void store_batch_abort(struct store *s);
