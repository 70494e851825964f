/* Opening and closing the store, errors, the statement cache, transactions, the clock, settings. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include "store/store_impl.h"
#include "store/store_testing.h"

#if SQLITE_VERSION_NUMBER < 3035000
#error "tern's store needs SQLite 3.35 or newer"
#endif

/* The daemon and the CLI share the file: wait this long for the other's write lock. */

#define BUNDLE_COLS                                                                                \
	"rowid, id, state, dest_node, priority, lifetime_ms, age_ms, payload_len, "                \
	"received_unix_ms, local, head, head_crc, boot_id, boot_ms, export_count, "                \
	"last_export_unix_ms"
#define CONTACT_COLS "name, sign_pk, box_pk, epoch, cert, node, added"
#define INBOX_COLS   "rowid, msg_id, bundle_id, sender_pk, kind, name, size, created, received, read"
#define PEER_COLS    "name, sign_pk, box_pk, epoch, cert, node, added, links, addr"
#define SENT_COLS                                                                                  \
	"seq, msg_id, to_node, bundle_id, state, created_unix_ms, changed_unix_ms, change_seq"

/*
 * Every statement, by id. Values are always bound, never spliced into the text.
 *
 * Iteration (the foreach functions, the payload reader) fetches one row per query,
 * continuing after the last key seen, and copies it out before calling back. No
 * statement is active while the caller's function runs, so no read transaction
 * spans it: the callback may write (a write from inside an open read would fail
 * with SQLITE_BUSY_SNAPSHOT once another process has committed), and a slow
 * callback does not hold back WAL checkpoints. Each query is an index seek.
 *
 * The residence expression of purge mirrors store_age_now(): the time since boot_ms
 * when the row's boot is "now"'s boot, else up to the checkpoint when it is the
 * checkpoint's boot, else nothing.
 *
 * Route destinations are walked in unsigned order: non-negative as stored first,
 * then the node numbers above 2^63 (stored bit for bit, so negative); ?1 and ?2
 * bound the half being walked.
 */
/* clang-format off */
static const char *const stmt_sql[ST__COUNT] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_SAVEPOINT] = "SAVEPOINT tern_unit",
	[ST_RELEASE] = "RELEASE tern_unit",
	[ST_ROLLBACK_TO] = "ROLLBACK TO tern_unit",
	[ST_USER_VERSION] = "PRAGMA user_version",
	[ST_SETTING_GET] = "SELECT value FROM settings WHERE key = ?1",
	[ST_SETTING_SET] = "INSERT INTO settings (key, value) VALUES (?1, ?2) "
			   "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
	[ST_CONTACT_BY_NAME] = "SELECT " CONTACT_COLS " FROM contacts WHERE name = ?1",
	[ST_CONTACT_BY_KEY] = "SELECT " CONTACT_COLS " FROM contacts WHERE sign_pk = ?1",
	[ST_CONTACT_INSERT] = "INSERT INTO contacts (" CONTACT_COLS ") "
			      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	[ST_CONTACT_UPDATE_KEY] = "UPDATE contacts SET box_pk = ?2, epoch = ?3, cert = ?4 "
				  "WHERE name = ?1 AND epoch < ?3",
	[ST_CONTACT_DELETE] = "DELETE FROM contacts WHERE name = ?1",
	[ST_CONTACT_NEXT] = "SELECT " CONTACT_COLS " FROM contacts WHERE name > ?1 "
			    "ORDER BY name LIMIT 1",
	[ST_CONTACT_KEY_NEXT] = "SELECT sign_pk FROM contacts WHERE sign_pk > ?1 AND sign_pk < ?2 "
				"ORDER BY sign_pk LIMIT 1",
	[ST_BUNDLE_RESERVE] = "INSERT INTO bundles (id, state, dest_node, priority, lifetime_ms, "
			      "age_ms, payload_len, received_unix_ms, local, head, head_crc, "
			      "boot_id, boot_ms) "
			      "VALUES (NULL, 0, 0, 0, 0, 0, 0, ?1, 0, x'', 0, ?2, ?3)",
	[ST_BUNDLE_FINISH] = "UPDATE bundles SET id = ?2, state = ?3, dest_node = ?4, "
			     "priority = ?5, lifetime_ms = ?6, age_ms = ?7, payload_len = ?8, "
			     "local = ?9, head = ?10, head_crc = ?11 WHERE rowid = ?1",
	[ST_CHUNK_INSERT] = "INSERT INTO chunks (bundle, seq, crc, data) VALUES (?1, ?2, ?3, ?4)",
	[ST_BUNDLE_EXISTS] = "SELECT 1 FROM bundles WHERE id = ?1",
	[ST_BUNDLE_BY_ID] = "SELECT " BUNDLE_COLS " FROM bundles WHERE id = ?1",
	[ST_BUNDLE_NEXT] = "SELECT " BUNDLE_COLS " FROM bundles "
			   "WHERE state = ?1 AND priority = ?2 AND rowid > ?3 ORDER BY rowid LIMIT 1",
	[ST_BUNDLE_META] = "SELECT id, payload_len FROM bundles WHERE rowid = ?1 AND state != 0",
	[ST_CHUNK_GET] = "SELECT crc, data FROM chunks WHERE bundle = ?1 AND seq = ?2",
	[ST_BUNDLE_DELETE] = "DELETE FROM bundles WHERE id = ?1",
	[ST_BUNDLE_SET_STATE] = "UPDATE bundles SET state = ?2 WHERE rowid = ?1 AND state != 0",
	[ST_BUNDLE_PURGE] = "DELETE FROM bundles WHERE state = ?5 AND age_ms + CASE "
			    "WHEN boot_id = ?1 THEN max(?2 - boot_ms, 0) "
			    "WHEN boot_id = ?3 THEN max(?4 - boot_ms, 0) "
			    "ELSE 0 END >= lifetime_ms",
	[ST_BUNDLE_REBASE] = "UPDATE bundles SET age_ms = age_ms + CASE "
			     "WHEN boot_id = ?1 THEN max(?2 - boot_ms, 0) ELSE 0 END, "
			     "boot_id = ?3, boot_ms = ?4 WHERE boot_id != ?3",
	[ST_INBOX_INSERT] = "INSERT INTO inbox (msg_id, bundle, bundle_id, sender_pk, kind, name, "
			    "size, created, received, read) "
			    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0)",
	[ST_INBOX_NEXT] = "SELECT " INBOX_COLS " FROM inbox WHERE rowid > ?1 ORDER BY rowid LIMIT 1",
	[ST_INBOX_RANGE] = "SELECT " INBOX_COLS " FROM inbox WHERE msg_id BETWEEN ?1 AND ?2 "
			   "ORDER BY msg_id LIMIT 2",
	[ST_INBOX_HAS] = "SELECT 1 FROM inbox WHERE msg_id = ?1",
	[ST_INBOX_MARK_READ] = "UPDATE inbox SET read = 1 WHERE rowid = ?1",
	[ST_INBOX_BUNDLE] = "SELECT bundle FROM inbox WHERE rowid = ?1",
	[ST_PEER_BY_NAME] = "SELECT " PEER_COLS " FROM peers WHERE name = ?1",
	[ST_PEER_BY_KEY] = "SELECT " PEER_COLS " FROM peers WHERE sign_pk = ?1",
	[ST_PEER_BY_NODE] = "SELECT " PEER_COLS " FROM peers WHERE node = ?1",
	[ST_PEER_INSERT] = "INSERT INTO peers (" PEER_COLS ") "
			   "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
	/* The right-hand sides all see the old row: the epoch test holds for all three. */
	[ST_PEER_UPDATE] = "UPDATE peers SET links = ?2, addr = ?3, "
			   "box_pk = CASE WHEN epoch < ?4 THEN ?5 ELSE box_pk END, "
			   "cert = CASE WHEN epoch < ?4 THEN ?6 ELSE cert END, "
			   "epoch = max(epoch, ?4) WHERE name = ?1",
	[ST_PEER_DELETE] = "DELETE FROM peers WHERE name = ?1",
	[ST_PEER_NEXT] = "SELECT " PEER_COLS " FROM peers WHERE name > ?1 ORDER BY name LIMIT 1",
	[ST_ROUTE_SET] = "INSERT INTO routes (dest, via) VALUES (?1, ?2) "
			 "ON CONFLICT (dest) DO UPDATE SET via = excluded.via",
	[ST_ROUTE_GET] = "SELECT via FROM routes WHERE dest = ?1",
	[ST_ROUTE_DELETE] = "DELETE FROM routes WHERE dest = ?1",
	[ST_ROUTE_NEXT] = "SELECT dest, via FROM routes WHERE dest >= ?1 AND dest <= ?2 "
			  "ORDER BY dest LIMIT 1",
	[ST_SENT_INSERT] = "INSERT INTO sent (msg_id, to_node, bundle_id, state, created_unix_ms, "
			   "changed_unix_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
	[ST_SENT_GET] = "SELECT bundle_id FROM sent WHERE msg_id = ?1 AND to_node = ?2",
	[ST_SENT_DELIVERED] = "UPDATE sent SET state = ?3, changed_unix_ms = ?4 "
			      "WHERE msg_id = ?1 AND to_node = ?2 AND state != ?3",
	/* A bundle carrying the message to several nodes waits for the last of them. */
	[ST_SENT_DROP_BUNDLE] = "DELETE FROM bundles WHERE id = ?1 AND state = ?2 AND NOT EXISTS "
				"(SELECT 1 FROM sent WHERE bundle_id = ?1 AND state = ?3)",
	[ST_SENT_HANDED_OVER] = "UPDATE sent SET state = ?2, changed_unix_ms = ?3 "
				"WHERE bundle_id = ?1 AND state = ?4",
	[ST_SENT_NEXT] = "SELECT " SENT_COLS " FROM sent WHERE seq < ?1 ORDER BY seq DESC LIMIT 1",
	[ST_SENT_CHANGED_NEXT] = "SELECT " SENT_COLS " FROM sent WHERE change_seq > ?1 "
				 "ORDER BY change_seq LIMIT 1",
	[ST_SENT_LAST_CHANGE] = "SELECT coalesce(max(change_seq), 0) FROM sent",
	[ST_BUNDLE_FILE_META] = "SELECT payload_file, payload_crcs FROM bundles WHERE rowid = ?1",
	[ST_BUNDLE_SET_FILE] = "UPDATE bundles SET payload_file = 1, payload_crcs = ?2 "
			       "WHERE rowid = ?1",
	[ST_FILE_OWNED] = "SELECT 1 FROM bundles WHERE id = ?1 AND payload_file != 0 AND rowid != ?2",
	[ST_TRASH_NEXT] = "SELECT id FROM payload_trash LIMIT 1",
	[ST_TRASH_DELETE] = "DELETE FROM payload_trash WHERE id = ?1",
	[ST_STAGE_GET] = "SELECT rowid, payload_len, have FROM stages WHERE peer = ?1 AND id = ?2",
	[ST_STAGE_PEER_BYTES] = "SELECT coalesce(sum(payload_len), 0) FROM stages "
				"WHERE peer = ?1 AND id != ?2",
	[ST_STAGE_INSERT] = "INSERT INTO stages (peer, id, payload_len, have, life_ms, age_ms, "
			    "created_unix_ms, boot_id, boot_ms) "
			    "VALUES (?1, ?2, ?3, 0, ?4, 0, ?5, ?6, ?7)",
	[ST_STAGE_TOTAL_BYTES] = "SELECT coalesce(sum(payload_len), 0) FROM stages "
				 "WHERE NOT (peer = ?1 AND id = ?2)",
	/* Progress restarts the idle clock: the residence so far is taken off life_ms. */
	[ST_STAGE_SET_HAVE] = "UPDATE stages SET have = ?2, life_ms = max(life_ms - (age_ms + CASE "
			      "WHEN boot_id = ?3 THEN max(?4 - boot_ms, 0) ELSE 0 END), 0), "
			      "age_ms = 0, boot_id = ?3, boot_ms = ?4 WHERE rowid = ?1",
	[ST_STAGE_DELETE] = "DELETE FROM stages WHERE rowid = ?1",
	[ST_STAGE_PURGE] = "DELETE FROM stages WHERE age_ms + CASE "
			   "WHEN boot_id = ?1 THEN max(?2 - boot_ms, 0) "
			   "WHEN boot_id = ?3 THEN max(?4 - boot_ms, 0) "
			   "ELSE 0 END >= min(life_ms, ?5)",
	[ST_STAGE_REBASE] = "UPDATE stages SET age_ms = age_ms + CASE "
			    "WHEN boot_id = ?1 THEN max(?2 - boot_ms, 0) ELSE 0 END, "
			    "boot_id = ?3, boot_ms = ?4 WHERE boot_id != ?3",
	[ST_STAGE_TRASH_NEXT] = "SELECT peer, id FROM stage_trash LIMIT 1",
	[ST_STAGE_TRASH_DELETE] = "DELETE FROM stage_trash WHERE peer = ?1 AND id = ?2",
	[ST_BUNDLE_EXPORTED] = "UPDATE bundles SET export_count = export_count + 1, "
			       "last_export_unix_ms = ?2 WHERE id = ?1 AND state != 0",
	[ST_BUNDLE_EXPORTED_TO] = "INSERT OR IGNORE INTO exported (bundle, peer) "
				  "SELECT rowid, ?2 FROM bundles WHERE id = ?1 AND state != 0",
	[ST_BUNDLE_RELEASE] = "DELETE FROM bundles WHERE id = ?1 AND state = ?2 AND EXISTS "
			      "(SELECT 1 FROM exported WHERE bundle = bundles.rowid AND peer = ?3)",
	[ST_BUNDLE_HOLDER_ADD] = "INSERT OR IGNORE INTO holders (bundle, peer) "
				 "SELECT rowid, ?2 FROM bundles WHERE id = ?1 AND state != 0",
	[ST_BUNDLE_HELD_BY] = "SELECT 1 FROM holders WHERE bundle = ?1 AND peer = ?2",
};
/* clang-format on */

/* ---- errors ------------------------------------------------------------------ */

int store_errno(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return 0;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_IOERR:
		return rc == SQLITE_IOERR_NOMEM ? -ENOMEM : -EIO;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
	case SQLITE_PROTOCOL:
		return -EBUSY;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return -EBADMSG;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_CONSTRAINT:
		if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
			return -EEXIST;
		if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
			return -ENOENT;
		return -EINVAL;
	case SQLITE_READONLY:
		return -EROFS;
	case SQLITE_CANTOPEN:
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	case SQLITE_TOOBIG:
		return -E2BIG;
	case SQLITE_NOLFS:
		return -EFBIG;
	case SQLITE_INTERRUPT:
		return -EINTR;
	case SQLITE_ABORT:
		return -ECANCELED;
	case SQLITE_SCHEMA:
		return -EAGAIN;
	default:
		/* SQLITE_ERROR, MISUSE, RANGE, MISMATCH: a bug here or bad input. */
		return -EINVAL;
	}
}

int store_err(struct store *s, int rc)
{
	int ret = store_errno(rc);

	/* "unable to open database file" hides the useful part: which errno. */
	if ((rc & 0xff) == SQLITE_CANTOPEN && sqlite3_system_errno(s->db) > 0)
		ret = -sqlite3_system_errno(s->db);
	snprintf(s->errmsg, sizeof(s->errmsg), "%s", sqlite3_errmsg(s->db));
	s->last_err = ret;
	return ret;
}

void store_seterr(struct store *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->errmsg, sizeof(s->errmsg), fmt, ap);
	va_end(ap);
}

const char *store_errmsg(const struct store *s)
{
	return s ? s->errmsg : "no store";
}

void store_hex(char *out, const uint8_t *buf, size_t len)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[buf[i] >> 4];
		out[2 * i + 1] = digits[buf[i] & 15];
	}
	out[2 * len] = '\0';
}

/* ---- statements and transactions --------------------------------------------- */

/*
 * Hands out the cached statement for id, reset and unbound. If it is in use (a
 * callback of a foreach re-entered the store), a private copy is prepared instead;
 * store_stmt_done() tells the two apart.
 */
int store_stmt(struct store *s, enum store_stmt id, sqlite3_stmt **out)
{
	sqlite3_stmt *st = s->stmt[id];
	int rc;

	*out = NULL;
	if (st && !sqlite3_stmt_busy(st)) {
		*out = st;
		return 0;
	}
	rc = sqlite3_prepare_v3(s->db, stmt_sql[id], -1, st ? 0 : SQLITE_PREPARE_PERSISTENT, &st,
				NULL);
	if (rc != SQLITE_OK)
		return store_err(s, rc);
	if (!s->stmt[id])
		s->stmt[id] = st;
	*out = st;
	return 0;
}

/* Resets (so no read snapshot stays open) and unbinds, or finalizes a private copy. */
void store_stmt_done(struct store *s, enum store_stmt id, sqlite3_stmt *st)
{
	if (!st)
		return;
	if (st == s->stmt[id]) {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
	} else {
		sqlite3_finalize(st);
	}
}

/* Steps a statement that returns no rows, then releases it. */
int store_step_done(struct store *s, enum store_stmt id, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	int ret = 0;

	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		ret = store_err(s, rc);
	store_stmt_done(s, id, st);
	return ret;
}

/*
 * Every write is an explicit BEGIN IMMEDIATE ... COMMIT, even a single statement:
 * an autocommit statement run inside a foreach callback would only commit when the
 * outer read finished, and the caller would take 0 for "durable" too early.
 *
 * What one call writes is a write unit, begun and ended by the store_unit_*()
 * helpers below and nowhere else. Outside a batch a unit is its own transaction.
 * Inside one (store_batch_begin) it is a savepoint of the batch's transaction:
 * an error rolls back that unit and no more, and the one COMMIT, the one fsync,
 * is store_batch_commit's.
 */
static int tx_run(struct store *s, enum store_stmt id)
{
	sqlite3_stmt *st;
	int ret = store_stmt(s, id, &st);

	if (ret == 0)
		ret = store_step_done(s, id, st);
	return ret;
}

/* Rolls back the whole transaction if one is open; keeps the error message of what failed. */
static void tx_rollback(struct store *s)
{
	char keep[sizeof(s->errmsg)];

	s->saved = false;
	store_files_rolled_back(s);
	if (sqlite3_get_autocommit(s->db))
		return; /* SQLite already rolled back (some I/O and full-disk errors do) */
	memcpy(keep, s->errmsg, sizeof(keep));
	sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	memcpy(s->errmsg, keep, sizeof(keep));
}

/* 0 only once COMMIT returned, which with synchronous=FULL means the WAL was fsynced. */
static int tx_commit(struct store *s)
{
	int ret = tx_run(s, ST_COMMIT);

	if (ret)
		tx_rollback(s);
	else
		store_files_committed(s);
	return ret;
}

/*
 * SQLite may answer an I/O error, a full disk or a failed allocation by rolling
 * back the whole transaction, the batch's with every unit in it. The batch is then
 * over: later units and store_batch_commit return the error until the caller ends
 * it. Never -EEXIST (a caller could take that for "already stored").
 */
static bool batch_lost(struct store *s)
{
	if (!s->batch_err && sqlite3_get_autocommit(s->db))
		s->batch_err =
		    s->last_err == -ENOSPC || s->last_err == -ENOMEM ? s->last_err : -EIO;
	return s->batch_err != 0;
}

int store_unit_begin(struct store *s)
{
	if (s->writer) {
		store_seterr(s, "a bundle writer is open");
		return -EBUSY;
	}
	if (!s->batch)
		return tx_run(s, ST_BEGIN);
	if (batch_lost(s)) {
		store_seterr(s, "the batch was rolled back by an earlier error: %s",
			     strerror(-s->batch_err));
		return s->batch_err;
	}
	return tx_run(s, ST_SAVEPOINT);
}

/* Outside a batch, 0 only once durable; inside one, the unit joins the batch. */
int store_unit_commit(struct store *s)
{
	int ret;

	if (!s->batch)
		return tx_commit(s);
	ret = tx_run(s, ST_RELEASE);
	if (ret)
		store_unit_rollback(s);
	return ret;
}

/* Undoes the open unit, and only it; keeps the error message of what failed. */
void store_unit_rollback(struct store *s)
{
	char keep[sizeof(s->errmsg)];

	if (!s->batch) {
		tx_rollback(s);
		return;
	}
	s->saved = false;
	if (batch_lost(s))
		return;
	memcpy(keep, s->errmsg, sizeof(keep));
	/* ROLLBACK TO leaves the savepoint open; RELEASE ends it. */
	if (tx_run(s, ST_ROLLBACK_TO) != 0 || tx_run(s, ST_RELEASE) != 0) {
		/* Rather the whole batch than half a bundle committed with it. */
		tx_rollback(s);
		batch_lost(s);
	}
	memcpy(s->errmsg, keep, sizeof(keep));
}

/* A bundle commit or a purge writes the clock checkpoint; a batch writes it once, at commit. */
int store_unit_checkpoint(struct store *s)
{
	return s->batch ? 0 : store_clock_save(s);
}

int store_batch_begin(struct store *s)
{
	int ret;

	if (!s)
		return -EINVAL;
	if (s->batch || s->writer) {
		store_seterr(s, s->batch ? "a batch is open" : "a bundle writer is open");
		return -EBUSY;
	}
	ret = tx_run(s, ST_BEGIN);
	if (ret == 0) {
		s->batch = true;
		s->batch_err = 0;
	}
	return ret;
}

bool store_batch_is_open(const struct store *s)
{
	return s && s->batch;
}

int store_batch_commit(struct store *s)
{
	int ret;

	if (!s)
		return -EINVAL;
	if (!s->batch) {
		store_seterr(s, "no batch is open");
		return -EINVAL;
	}
	if (s->writer) {
		store_seterr(s, "a bundle writer is open");
		return -EBUSY;
	}
	if (batch_lost(s)) {
		store_seterr(s, "the batch was rolled back by an earlier error: %s",
			     strerror(-s->batch_err));
		ret = s->batch_err;
		store_files_rolled_back(s);
		goto out;
	}
	ret = store_clock_save(s);
	if (ret) {
		tx_rollback(s);
		goto out;
	}
	ret = tx_commit(s);
out:
	s->batch = false;
	s->batch_err = 0;
	return ret;
}

void store_batch_abort(struct store *s)
{
	if (!s || !s->batch)
		return;
	if (s->writer) {
		/* Its savepoint goes with the batch; the caller still aborts (frees) it. */
		store_writer_orphan(s->writer);
		s->writer = NULL;
	}
	tx_rollback(s);
	s->batch = false;
	s->batch_err = 0;
}

/* ---- the clock ----------------------------------------------------------------- */

/*
 * The checkpoint is the latest boot-clock reading known on the boot the store was
 * opened in. It is kept in memory (every call that takes a "now" advances it) and
 * written to settings at every bundle commit, every purge and at close, so that
 * after a power cut the time spent here is counted at least up to the last commit.
 */
void store_clock_observe(struct store *s, const struct store_clock *now)
{
	if (now)
		s->unix_ms = now->unix_ms;
	if (now && memcmp(now->boot_id, s->boot_id, 16) == 0 && now->boot_ms > s->boot_ms)
		s->boot_ms = now->boot_ms;
}

/* The value is "<boot id in hex> <boot ms>"; one key so it changes atomically. */
static bool clock_parse(const char *v, uint8_t id[16], uint64_t *ms)
{
	char *end;

	if (strlen(v) < 34 || v[32] != ' ')
		return false;
	for (int i = 0; i < 16; i++) {
		unsigned int byte;

		if (sscanf(v + 2 * i, "%2x", &byte) != 1)
			return false;
		id[i] = (uint8_t)byte;
	}
	errno = 0;
	*ms = strtoull(v + 33, &end, 10);
	return errno == 0 && *end == '\0';
}

static int clock_load(struct store *s, bool *have, uint8_t id[16], uint64_t *ms)
{
	char v[64];
	int ret = store_setting_get(s, STORE_CLOCK_KEY, v, sizeof(v));

	*have = false;
	if (ret == -ENOENT || ret == -ENOSPC)
		return 0; /* no checkpoint, or not one we wrote: count nothing before it */
	if (ret)
		return ret;
	*have = clock_parse(v, id, ms);
	return 0;
}

static int setting_put(struct store *s, const char *key, const char *value)
{
	sqlite3_stmt *st;
	int ret = store_stmt(s, ST_SETTING_SET, &st);

	if (ret)
		return ret;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
	return store_step_done(s, ST_SETTING_SET, st);
}

/* Writes the checkpoint; inside a transaction. Never moves it back within a boot. */
int store_clock_save(struct store *s)
{
	uint8_t id[16];
	uint64_t ms;
	bool have;
	char v[64];
	int ret = clock_load(s, &have, id, &ms);

	if (ret)
		return ret;
	if (have && memcmp(id, s->boot_id, 16) == 0 && ms >= s->boot_ms) {
		s->boot_ms = ms; /* another process on this boot saw a later time */
		goto saved;
	}
	store_hex(v, s->boot_id, 16);
	snprintf(v + 32, sizeof(v) - 32, " %" PRIu64, s->boot_ms);
	ret = setting_put(s, STORE_CLOCK_KEY, v);
	if (ret)
		return ret;
saved:
	/* Provisional: store_unit_rollback() forgets it if the transaction does not commit. */
	s->saved = true;
	s->saved_ms = s->boot_ms;
	return 0;
}

/*
 * On a new boot, folds each row's residence up to the checkpoint into its age_ms and
 * moves the row onto the new boot, all in one transaction, so that a crash halfway
 * cannot count a residence twice.
 */
int store_clock_rebase(struct store *s, const struct store_clock *now)
{
	uint8_t ck_id[16];
	uint64_t ck_ms = 0;
	bool have;
	sqlite3_stmt *st = NULL;
	int ret;

	memcpy(s->boot_id, now->boot_id, 16);
	s->boot_ms = now->boot_ms;
	s->unix_ms = now->unix_ms;
	/* Same boot (the daemon already rebased): no write lock needed to find out. */
	ret = clock_load(s, &have, ck_id, &ck_ms);
	if (ret)
		goto out;
	if (have && memcmp(ck_id, now->boot_id, 16) == 0) {
		s->saved = true;
		s->saved_ms = ck_ms;
		if (ck_ms > s->boot_ms)
			s->boot_ms = ck_ms;
		goto out;
	}
	ret = store_unit_begin(s);
	if (ret)
		goto out;
	/* Read again under the write lock: another process may have rebased meanwhile. */
	ret = clock_load(s, &have, ck_id, &ck_ms);
	if (ret)
		goto rollback;
	if (!have || memcmp(ck_id, now->boot_id, 16) != 0) {
		ret = store_stmt(s, ST_BUNDLE_REBASE, &st);
		if (ret)
			goto rollback;
		if (have)
			sqlite3_bind_blob(st, 1, ck_id, 16, SQLITE_STATIC);
		else
			sqlite3_bind_null(st, 1); /* matches no row: nothing is known */
		sqlite3_bind_int64(st, 2, store_i64(ck_ms));
		sqlite3_bind_blob(st, 3, now->boot_id, 16, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, store_i64(now->boot_ms));
		ret = store_step_done(s, ST_BUNDLE_REBASE, st);
		if (ret == 0)
			ret = store_stage_rebase(s, have ? ck_id : NULL, ck_ms, now);
		if (ret)
			goto rollback;
	}
	ret = store_clock_save(s);
	if (ret)
		goto rollback;
	ret = store_unit_commit(s);
	goto out;
rollback:
	store_unit_rollback(s);
out:
	return ret;
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

uint64_t store_age_now(const struct store *s, const struct store_clock *now, uint64_t age_ms,
		       const void *row_boot_id, int row_boot_id_len, uint64_t row_boot_ms)
{
	uint64_t until = row_boot_ms;

	if (row_boot_id_len != 16)
		return age_ms;
	if (now && memcmp(row_boot_id, now->boot_id, 16) == 0)
		until = now->boot_ms;
	else if (memcmp(row_boot_id, s->boot_id, 16) == 0)
		until = s->boot_ms;
	return until > row_boot_ms ? sat_add(age_ms, until - row_boot_ms) : age_ms;
}

/* ---- opening and closing ------------------------------------------------------ */

/*
 * The file is created 0600 before SQLite sees it (SQLite would create it 0644 and
 * gives -wal and -shm the mode of the database file), and an existing one is
 * tightened: it says who talks to whom. Only paths are used here, never a file
 * descriptor: closing any descriptor of a file drops the POSIX locks that another
 * SQLite connection of this process holds on it.
 */
static int make_private(const char *path, bool create, const char **why)
{
	struct stat st;
	int fd;

	if (stat(path, &st) == 0) {
		if (!S_ISREG(st.st_mode)) {
			*why = "not a regular file";
			return -EINVAL;
		}
		if ((st.st_mode & 07777) != 0600 && chmod(path, 0600) != 0)
			goto err;
		return 0;
	}
	if (errno != ENOENT)
		goto err;
	if (!create)
		return 0;
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		if (errno == EEXIST)
			return make_private(path, false, why); /* created meanwhile by another */
		goto err;
	}
	close(fd);
	return 0;
err:
	*why = strerror(errno);
	return -errno;
}

static int make_all_private(const char *path, const char **why)
{
	static const char *const suffix[] = {"-wal", "-shm", "-journal"};
	size_t n = strlen(path);
	char *aux = malloc(n + 16);
	int ret;

	if (!aux) {
		*why = strerror(ENOMEM);
		return -ENOMEM;
	}
	ret = make_private(path, true, why);
	for (size_t i = 0; ret == 0 && i < sizeof(suffix) / sizeof(suffix[0]); i++) {
		memcpy(aux, path, n);
		strcpy(aux + n, suffix[i]);
		ret = make_private(aux, false, why);
	}
	free(aux);
	return ret;
}

static int pragma_text(struct store *s, const char *sql, char *buf, size_t len)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
	int ret;

	if (rc != SQLITE_OK) {
		ret = store_err(s, rc);
		goto out;
	}
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		ret = rc == SQLITE_DONE ? -ENOTSUP : store_err(s, rc);
		goto out;
	}
	snprintf(buf, len, "%s", (const char *)sqlite3_column_text(st, 0));
	ret = 0;
out:
	sqlite3_finalize(st);
	return ret;
}

/* A short reason for *why that outlives the store: SQLite's fixed texts or ours. */
static const char *open_why(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_NOTADB:
		return "not a tern store";
	case SQLITE_CORRUPT:
		return "store is corrupt";
	default:
		return sqlite3_errstr(rc);
	}
}

/* store_testing.h: every store this process opens keeps its lock until it closes. */
static bool exclusive_locking;

void store_testing_exclusive_locking(bool on)
{
	exclusive_locking = on;
}

/* store_testing.h: synchronous=NORMAL, to prove the power-loss test sees a loss. */
static bool synchronous_normal;

void store_testing_synchronous_normal(bool on)
{
	synchronous_normal = on;
}

static int configure(struct store *s, const char **why)
{
	/*
	 * synchronous=FULL: in WAL mode NORMAL syncs only at checkpoints, so the last
	 * commits can vanish on power loss, and a commit is a promise to another node.
	 * cache_size -2048 (2 MiB) bounds RSS: a large payload spills to the WAL
	 * instead of growing the cache. journal_size_limit truncates the WAL after a
	 * checkpoint, so one 1 GiB bundle does not leave a 1 GiB -wal file behind.
	 */
	static const char *const pragmas = "PRAGMA synchronous = FULL;"
					   "PRAGMA foreign_keys = ON;"
					   "PRAGMA cache_size = -2048;"
					   "PRAGMA journal_size_limit = 16777216;"
					   "PRAGMA trusted_schema = OFF;"
					   "PRAGMA cell_size_check = ON;";
	char v[32];
	int rc, ret;

	/*
	 * Before WAL is chosen, so the WAL index lives on the heap and no transaction takes a
	 * file lock: tern-sim keeps a thousand stores in one process, each used by one handle.
	 */
	if (exclusive_locking) {
		ret = pragma_text(s, "PRAGMA locking_mode = EXCLUSIVE", v, sizeof(v));
		if (ret) {
			*why = open_why(sqlite3_extended_errcode(s->db));
			goto out;
		}
	}
	/*
	 * EXTRA while a new store switches to WAL: that switch is a rollback-journal
	 * transaction, and only EXTRA syncs the directory after the journal's unlink. A
	 * cut that brings the journal back makes it hot, and its rollback would truncate
	 * the database, WAL and all, on a file system that does not order the unlink
	 * before later fsyncs (tests/faults/test_powerloss.c, TERN_POWERLOSS_STRICT_DIRS).
	 * The pragmas below set FULL.
	 */
	rc = sqlite3_exec(s->db, "PRAGMA synchronous = EXTRA", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		ret = store_err(s, rc);
		*why = open_why(rc);
		goto out;
	}
	/* The first statement reads the header: a file that is not a database fails here. */
	ret = pragma_text(s, "PRAGMA journal_mode = WAL", v, sizeof(v));
	if (ret) {
		*why = ret == -EBADMSG ? "not a tern store"
				       : open_why(sqlite3_extended_errcode(s->db));
		goto out;
	}
	if (strcmp(v, "wal") != 0) {
		*why = "the file system does not support WAL mode";
		ret = -ENOTSUP;
		goto out;
	}
	if (sqlite3_db_readonly(s->db, "main") == 1) {
		*why = "store file is read-only";
		ret = -EROFS;
		goto out;
	}
	rc = sqlite3_exec(s->db, pragmas, NULL, NULL, NULL);
	if (rc == SQLITE_OK && synchronous_normal)
		rc = sqlite3_exec(s->db, "PRAGMA synchronous = NORMAL;", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		ret = store_err(s, rc);
		*why = open_why(rc);
		goto out;
	}
	/* Check they took: a build without foreign keys would silently keep orphan chunks. */
	ret = pragma_text(s, "PRAGMA synchronous", v, sizeof(v));
	if (ret == 0 && strcmp(v, synchronous_normal ? "1" : "2") != 0)
		ret = -ENOTSUP;
	if (ret == 0)
		ret = pragma_text(s, "PRAGMA foreign_keys", v, sizeof(v));
	if (ret == 0 && strcmp(v, "1") != 0)
		ret = -ENOTSUP;
	if (ret)
		*why = "SQLite refused synchronous=FULL or foreign_keys=ON";
out:
	return ret;
}

static void store_free(struct store *s)
{
	if (!s)
		return;
	store_files_close(s);
	for (int i = 0; i < ST__COUNT; i++)
		sqlite3_finalize(s->stmt[i]);
	sqlite3_close(s->db);
	free(s);
}

int store_open(const char *path, const struct store_clock *now, struct store **out,
	       const char **why)
{
	struct store *s = NULL;
	const char *why_unused;
	int rc, ret;

	if (!why)
		why = &why_unused;
	*why = NULL;
	if (!out || !path || !now) {
		*why = "invalid argument";
		ret = -EINVAL;
		goto out;
	}
	*out = NULL;
	ret = make_all_private(path, why);
	if (ret)
		goto out;
	s = calloc(1, sizeof(*s));
	if (!s) {
		*why = strerror(ENOMEM);
		ret = -ENOMEM;
		goto out;
	}
	s->files_fd = -1;
	rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE, NULL);
	if (rc != SQLITE_OK) {
		ret = s->db ? store_err(s, rc) : -ENOMEM;
		*why = ret == -ENOMEM ? strerror(ENOMEM) : strerror(-ret);
		goto out;
	}
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS);
	ret = configure(s, why);
	if (ret)
		goto out;
	ret = store_migrate(s, why);
	if (ret)
		goto out;
	ret = store_clock_rebase(s, now);
	if (ret) {
		*why = open_why(sqlite3_extended_errcode(s->db));
		goto out;
	}
	ret = store_files_open(s, path, why);
	if (ret)
		goto out;
	/* What a crash left among the payload files; best effort, a later open retries. */
	store_files_sweep(s, true);
	/* -wal and -shm exist now; in case an old one had a wider mode. */
	ret = make_all_private(path, why);
	if (ret)
		goto out;
	*out = s;
	s = NULL;
out:
	store_free(s);
	return ret;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	/* Nothing in an open batch was acknowledged: it goes, and so does an open writer. */
	store_batch_abort(s);
	if (s->writer) {
		/* The caller still owns the writer: it is rolled back and left to be freed. */
		store_unit_rollback(s);
		store_writer_orphan(s->writer);
		s->writer = NULL;
	}
	/* A session's stages outlive the store: made durable, then orphaned (stage.c). */
	store_stages_orphan(s);
	/* Files of bundles deleted by this process go now that their deletion committed. */
	store_files_sweep(s, false);
	/* A CLI that only read need not take the write lock (nor fsync) to close. */
	if ((!s->saved || s->saved_ms != s->boot_ms) && tx_run(s, ST_BEGIN) == 0) {
		if (store_clock_save(s) == 0)
			tx_commit(s);
		else
			tx_rollback(s);
	}
	store_free(s);
}

int store_schema_version(struct store *s)
{
	sqlite3_stmt *st;
	int rc, ret = store_stmt(s, ST_USER_VERSION, &st);

	if (ret)
		return ret;
	rc = sqlite3_step(st);
	ret = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : store_err(s, rc);
	store_stmt_done(s, ST_USER_VERSION, st);
	return ret;
}

struct sqlite3 *store_sqlite(struct store *s)
{
	return s->db;
}

/* ---- settings ----------------------------------------------------------------- */

int store_setting_get(struct store *s, const char *key, char *buf, size_t len)
{
	sqlite3_stmt *st = NULL;
	const unsigned char *v;
	int rc, n, ret;

	if (!s || !key || (!buf && len)) {
		ret = -EINVAL;
		goto out;
	}
	ret = store_stmt(s, ST_SETTING_GET, &st);
	if (ret)
		goto out;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		ret = -ENOENT;
		goto out;
	}
	if (rc != SQLITE_ROW) {
		ret = store_err(s, rc);
		goto out;
	}
	v = sqlite3_column_text(st, 0);
	n = sqlite3_column_bytes(st, 0);
	if (!v) {
		ret = -ENOMEM;
		goto out;
	}
	if ((size_t)n + 1 > len) {
		ret = -ENOSPC;
		goto out;
	}
	memcpy(buf, v, (size_t)n + 1);
	ret = 0;
out:
	if (st)
		store_stmt_done(s, ST_SETTING_GET, st);
	return ret;
}

int store_setting_set(struct store *s, const char *key, const char *value)
{
	int ret;

	if (!s || !key || !value) {
		ret = -EINVAL;
		goto out;
	}
	if (strncmp(key, "store.", 6) == 0) {
		store_seterr(s, "settings under \"store.\" belong to the store");
		ret = -EPERM;
		goto out;
	}
	ret = store_unit_begin(s);
	if (ret)
		goto out;
	ret = setting_put(s, key, value);
	if (ret) {
		store_unit_rollback(s);
		goto out;
	}
	ret = store_unit_commit(s);
out:
	return ret;
}
