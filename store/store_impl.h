/* Internals shared by the store's source files; nothing outside store/ includes this. */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <sqlite3.h>

#include "store/store.h"

/*
 * Payload chunk size. A payload is kept as rows of at most this many bytes, so a
 * writer or a reader holds one chunk in memory whatever the payload size. 64 KiB
 * is 16 overflow pages of 4 KiB: big enough that per-row overhead is noise, small
 * enough to be nothing next to the 2 MiB page cache. Changing it needs no
 * migration: readers only rely on the seq order and on each row's own CRC.
 */
#define STORE_CHUNK_SIZE (64 * 1024)

/* How long a writer waits for another process's write lock before -EBUSY. */
#define STORE_BUSY_TIMEOUT_MS 5000

/* State of a bundle row while its writer is open; never committed (see queue.c). */
#define STORE_WRITING 0

/* "tern" in ASCII, PRAGMA application_id of every tern store (from migration 1). */
#define STORE_APPLICATION_ID 0x7465726e

/* Settings keys under this prefix belong to the store itself. */
#define STORE_CLOCK_KEY "store.clock"

/* Every statement the store runs, prepared once per store on first use. */
enum store_stmt {
	ST_BEGIN,
	ST_COMMIT,
	ST_SAVEPOINT,
	ST_RELEASE,
	ST_ROLLBACK_TO,
	ST_USER_VERSION,
	ST_SETTING_GET,
	ST_SETTING_SET,
	ST_CONTACT_BY_NAME,
	ST_CONTACT_BY_KEY,
	ST_CONTACT_INSERT,
	ST_CONTACT_UPDATE_KEY,
	ST_CONTACT_DELETE,
	ST_CONTACT_NEXT,
	ST_CONTACT_KEY_NEXT,
	ST_BUNDLE_RESERVE,
	ST_BUNDLE_FINISH,
	ST_CHUNK_INSERT,
	ST_BUNDLE_EXISTS,
	ST_BUNDLE_BY_ID,
	ST_BUNDLE_NEXT,
	ST_BUNDLE_META,
	ST_CHUNK_GET,
	ST_BUNDLE_DELETE,
	ST_BUNDLE_SET_STATE,
	ST_BUNDLE_PURGE,
	ST_BUNDLE_REBASE,
	ST_INBOX_INSERT,
	ST_INBOX_NEXT,
	ST_INBOX_RANGE,
	ST_INBOX_HAS,
	ST_INBOX_MARK_READ,
	ST_INBOX_BUNDLE,
	ST_PEER_BY_NAME,
	ST_PEER_BY_KEY,
	ST_PEER_BY_NODE,
	ST_PEER_INSERT,
	ST_PEER_UPDATE,
	ST_PEER_DELETE,
	ST_PEER_NEXT,
	ST_ROUTE_SET,
	ST_ROUTE_GET,
	ST_ROUTE_DELETE,
	ST_ROUTE_NEXT,
	ST_SENT_INSERT,
	ST_SENT_GET,
	ST_SENT_DELIVERED,
	ST_SENT_DROP_BUNDLE,
	ST_SENT_HANDED_OVER,
	ST_SENT_NEXT,
	ST_SENT_CHANGED_NEXT,
	ST_SENT_LAST_CHANGE,
	ST_BUNDLE_EXPORTED,
	ST_BUNDLE_EXPORTED_TO,
	ST_BUNDLE_RELEASE,
	ST_BUNDLE_HOLDER_ADD,
	ST_BUNDLE_HELD_BY,
	ST_BUNDLE_FILE_META,
	ST_BUNDLE_SET_FILE,
	ST_FILE_OWNED,
	ST_TRASH_NEXT,
	ST_TRASH_DELETE,
	ST_STAGE_GET,
	ST_STAGE_PEER_BYTES,
	ST_STAGE_TOTAL_BYTES,
	ST_STAGE_INSERT,
	ST_STAGE_SET_HAVE,
	ST_STAGE_DELETE,
	ST_STAGE_PURGE,
	ST_STAGE_REBASE,
	ST_STAGE_TRASH_NEXT,
	ST_STAGE_TRASH_DELETE,
	ST__COUNT
};

struct store {
	sqlite3 *db;
	sqlite3_stmt *stmt[ST__COUNT];
	struct store_writer *writer; /* the open writer, if any: it owns the write unit */
	bool batch;	  /* store_batch_begin() opened a transaction: units are savepoints */
	int batch_err;	  /* SQLite rolled the whole batch back on this error */
	int last_err;	  /* the errno of the last SQLite failure (store_err) */
	uint64_t unix_ms; /* the latest wall clock given (display only, maybe wrong) */
	/* The latest clock seen on the boot the store was opened in: the checkpoint. */
	uint8_t boot_id[16];
	uint64_t boot_ms;
	uint64_t saved_ms; /* boot_ms as last written or read back; close skips an equal one */
	bool saved;
	int files_fd; /* the payload files directory, <path>-payloads (payload_file.c) */
	uint8_t (*new_files)[32];   /* placed in the open batch: removed if it rolls back */
	struct store_stage *stages; /* open stages: orphaned by store_close (stage.c) */
	size_t n_new_files, cap_new_files;
	char errmsg[256];
};

/* store.c */
int store_errno(int rc);
int store_err(struct store *s, int rc);
void store_seterr(struct store *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int store_stmt(struct store *s, enum store_stmt id, sqlite3_stmt **out);
void store_stmt_done(struct store *s, enum store_stmt id, sqlite3_stmt *st);
int store_step_done(struct store *s, enum store_stmt id, sqlite3_stmt *st);
int store_unit_begin(struct store *s);
int store_unit_commit(struct store *s);
void store_unit_rollback(struct store *s);
int store_unit_checkpoint(struct store *s);
void store_clock_observe(struct store *s, const struct store_clock *now);
int store_clock_save(struct store *s);
int store_clock_rebase(struct store *s, const struct store_clock *now);
uint64_t store_age_now(const struct store *s, const struct store_clock *now, uint64_t age_ms,
		       const void *row_boot_id, int row_boot_id_len, uint64_t row_boot_ms);
void store_hex(char *out, const uint8_t *buf, size_t len);

/* Values above INT64_MAX do not fit an SQLite integer; they saturate (292 million years of ms). */
static inline sqlite3_int64 store_i64(uint64_t v)
{
	return v > INT64_MAX ? INT64_MAX : (sqlite3_int64)v;
}

static inline uint64_t store_u64(sqlite3_int64 v)
{
	return v < 0 ? 0 : (uint64_t)v;
}

/* A name as contacts and peers take it: 1 to STORE_NAME_MAX bytes before the NUL. */
static inline bool store_name_ok(const char *name)
{
	size_t n = name ? strnlen(name, STORE_NAME_MAX + 1) : 0;

	return n >= 1 && n <= STORE_NAME_MAX;
}

/* schema.c */
int store_migrate(struct store *s, const char **why);
int store_schema_latest(void);

/* queue.c */
void store_writer_orphan(struct store_writer *w);

/* sent.c */
int store_sent_insert(struct store *s, const uint8_t msg_id[16], uint64_t to_node,
		      const uint8_t bundle_id[32], uint64_t unix_ms);

/* payload_file.c: payloads of STORE_FILE_MIN bytes or more, in files beside the database */
#define STORE_FILE_MIN (1024 * 1024)
#define STORE_TMP_NAME 32
int store_files_open(struct store *s, const char *db_path, const char **why);
void store_files_close(struct store *s);
int store_file_create(struct store *s, int *fd, char tmp[static STORE_TMP_NAME]);
int store_file_place(struct store *s, int fd, const char *tmp, const uint8_t id[32], int64_t rowid);
void store_file_discard(struct store *s, const char *tmp, const uint8_t *id);
int store_files_note_new(struct store *s, const uint8_t id[32]);
void store_files_committed(struct store *s);
void store_files_rolled_back(struct store *s);
int store_file_read(struct store *s, const uint8_t id[32], uint64_t payload_len,
		    const uint8_t *crcs, size_t crcs_len,
		    int (*fn)(void *ctx, const uint8_t *buf, size_t len), void *ctx, char *bad,
		    size_t badlen);
int store_files_sweep(struct store *s, bool orphans);

/* stage.c: transfers being received, staged in files beside the database */
#define STORE_STAGE_NAME 85 /* "in-" 16 hex "-" 64 hex, and the NUL */
bool store_stage_parse_name(const char *name, uint64_t *peer, uint8_t id[32]);
bool store_stage_owned(struct store *s, uint64_t peer, const uint8_t id[32]);
bool store_stage_trash_empty(struct store *s);
int store_stage_sweep_trash(struct store *s, unsigned *removed);
int store_stage_purge(struct store *s, const struct store_clock *now);
void store_stages_orphan(struct store *s);
int store_stage_rebase(struct store *s, const uint8_t *ck_id, uint64_t ck_ms,
		       const struct store_clock *now);

/* inbox.c */
int store_inbox_insert(struct store *s, int64_t bundle_rowid, const uint8_t bundle_id[32],
		       const struct store_inbox *e);
