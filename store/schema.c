/* The schema as an ordered list of migrations, and the code that applies them. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "store/store_impl.h"
#include "store/store_testing.h"

/*
 * Migration n takes the schema from user_version n-1 to n. Each is applied in its
 * own transaction together with the user_version bump, so a crash leaves the store
 * at one version or the next, never between. Append only: a released migration is
 * never edited (stores in the field have run it); a change is a new entry. The
 * schema is documented column by column in docs/store.md.
 */
/* clang-format off */
static const char *const migrations[] = {
	/* 1: the initial schema. */
	"PRAGMA application_id = 1952805486;" /* STORE_APPLICATION_ID, "tern" */

	"CREATE TABLE settings ("
	"  key TEXT PRIMARY KEY NOT NULL,"
	"  value TEXT NOT NULL"
	");"

	"CREATE TABLE contacts ("
	"  name TEXT NOT NULL UNIQUE"
	"    CHECK (length(CAST(name AS BLOB)) BETWEEN 1 AND 64),"
	"  sign_pk BLOB NOT NULL UNIQUE CHECK (length(sign_pk) = 32),"
	"  box_pk BLOB NOT NULL CHECK (length(box_pk) = 32),"
	"  epoch INTEGER NOT NULL,"
	"  cert BLOB NOT NULL CHECK (length(cert) = 64),"
	"  node INTEGER NOT NULL,"
	"  added INTEGER NOT NULL"
	");"

	/*
	 * rowid is named so chunks and inbox can reference it; AUTOINCREMENT so a
	 * rowid is never reused and a stale one can only miss, never hit another
	 * bundle. id is NULL only while a writer fills the row (state 0), which no
	 * commit ever leaves behind.
	 */
	"CREATE TABLE bundles ("
	"  rowid INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  id BLOB UNIQUE CHECK (length(id) = 32),"
	"  state INTEGER NOT NULL CHECK ((state = 0) = (id IS NULL)),"
	"  dest_node INTEGER NOT NULL,"
	"  priority INTEGER NOT NULL CHECK (priority BETWEEN 0 AND 2),"
	"  lifetime_ms INTEGER NOT NULL,"
	"  age_ms INTEGER NOT NULL,"
	"  payload_len INTEGER NOT NULL,"
	"  received_unix_ms INTEGER NOT NULL,"
	"  local INTEGER NOT NULL,"
	"  head BLOB NOT NULL,"
	"  head_crc INTEGER NOT NULL,"
	"  boot_id BLOB NOT NULL,"
	"  boot_ms INTEGER NOT NULL"
	");"
	/* The queue order: state, urgent first, then arrival (rowid, implicit in the index). */
	"CREATE INDEX bundles_queue ON bundles (state, priority DESC);"
	"CREATE INDEX bundles_dest ON bundles (dest_node);"

	/*
	 * A rowid table, not WITHOUT ROWID: rows are 64 KiB, and SQLite advises
	 * WITHOUT ROWID only for rows under about 1/20 of a page. The primary key's
	 * index serves the ordered read and the ON DELETE CASCADE lookup.
	 */
	"CREATE TABLE chunks ("
	"  bundle INTEGER NOT NULL REFERENCES bundles (rowid) ON DELETE CASCADE,"
	"  seq INTEGER NOT NULL,"
	"  crc INTEGER NOT NULL,"
	"  data BLOB NOT NULL,"
	"  PRIMARY KEY (bundle, seq)"
	");"

	/*
	 * An entry outlives its bundle (bundle becomes NULL): msg_id is the
	 * recipient's dedupe record, and forgetting it would deliver a resent
	 * message twice.
	 */
	"CREATE TABLE inbox ("
	"  rowid INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  msg_id BLOB NOT NULL UNIQUE CHECK (length(msg_id) = 16),"
	"  bundle INTEGER REFERENCES bundles (rowid) ON DELETE SET NULL,"
	"  bundle_id BLOB NOT NULL CHECK (length(bundle_id) = 32),"
	"  sender_pk BLOB NOT NULL CHECK (length(sender_pk) = 32),"
	"  kind INTEGER NOT NULL,"
	"  name TEXT NOT NULL,"
	"  size INTEGER NOT NULL,"
	"  created INTEGER NOT NULL,"
	"  received INTEGER NOT NULL,"
	"  read INTEGER NOT NULL DEFAULT 0"
	");"
	"CREATE INDEX inbox_bundle ON inbox (bundle);",

	/* 2: peers and routes, the sender's record of its messages, custody counts. */
	/*
	 * A peer is a node we exchange bundles with directly; a contact is an
	 * end-to-end correspondent. The same identity may be both, so a table each.
	 * node is UNIQUE: routes name the next hop by node number.
	 */
	"CREATE TABLE peers ("
	"  name TEXT NOT NULL UNIQUE"
	"    CHECK (length(CAST(name AS BLOB)) BETWEEN 1 AND 64),"
	"  sign_pk BLOB NOT NULL UNIQUE CHECK (length(sign_pk) = 32),"
	"  box_pk BLOB NOT NULL CHECK (length(box_pk) = 32),"
	"  epoch INTEGER NOT NULL,"
	"  cert BLOB NOT NULL CHECK (length(cert) = 64),"
	"  node INTEGER NOT NULL UNIQUE,"
	"  links INTEGER NOT NULL,"
	"  addr TEXT NOT NULL CHECK (length(CAST(addr AS BLOB)) < 256),"
	"  added INTEGER NOT NULL"
	");"

	/*
	 * dest 0 is the default route. via is a node number, not a reference to
	 * peers: removing a peer leaves its routes, for the operator to see.
	 */
	"CREATE TABLE routes ("
	"  dest INTEGER PRIMARY KEY,"
	"  via INTEGER NOT NULL"
	");"

	/*
	 * One row per message and recipient node, written with the bundle that
	 * carries it. seq is the order of creation here ("newest first" needs no
	 * clock); the key is (msg_id, to_node). Rows outlive their bundle: they are
	 * the sender's record of what became of a message.
	 */
	"CREATE TABLE sent ("
	"  seq INTEGER PRIMARY KEY,"
	"  msg_id BLOB NOT NULL CHECK (length(msg_id) = 16),"
	"  to_node INTEGER NOT NULL,"
	"  bundle_id BLOB NOT NULL CHECK (length(bundle_id) = 32),"
	"  state INTEGER NOT NULL CHECK (state BETWEEN 1 AND 3),"
	"  created_unix_ms INTEGER NOT NULL,"
	"  changed_unix_ms INTEGER NOT NULL,"
	"  UNIQUE (msg_id, to_node)"
	");"
	"CREATE INDEX sent_bundle ON sent (bundle_id);"

	"ALTER TABLE bundles ADD COLUMN export_count INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE bundles ADD COLUMN last_export_unix_ms INTEGER NOT NULL DEFAULT 0;",

	/* 3: large payloads in files beside the database (payload_file.c). */
	/*
	 * payload_crcs: the CRC-32C of each STORE_CHUNK_SIZE piece of the file, 4 bytes
	 * big-endian each, what the chunks table keeps per row for small payloads.
	 */
	"ALTER TABLE bundles ADD COLUMN payload_file INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE bundles ADD COLUMN payload_crcs BLOB;"
	/*
	 * A deleted bundle's file is removed only after the deletion committed: the
	 * trigger notes it here in the same transaction, and the next sweep unlinks it.
	 */
	"CREATE TABLE payload_trash ("
	"  id BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 32)"
	");"
	"CREATE TRIGGER bundles_payload_trash AFTER DELETE ON bundles WHEN old.payload_file != 0 "
	"BEGIN INSERT OR IGNORE INTO payload_trash (id) VALUES (old.id); END;",

	/* 4: to which peers a bundle was handed, so that only they can take custody of it. */
	"CREATE TABLE exported ("
	"  bundle INTEGER NOT NULL REFERENCES bundles (rowid) ON DELETE CASCADE,"
	"  peer INTEGER NOT NULL,"
	"  PRIMARY KEY (bundle, peer)"
	") WITHOUT ROWID;",

	/* 5: transfers being received over a link, staged in files to resume after a cut (stage.c). */
	/*
	 * One row per (peer, bundle id) whose bytes are kept in <db>-payloads/in-<peer>-<id>.
	 * have: the bytes of the file that are durable (fdatasync'd before the row said so),
	 * what the next WANT may ask from. rowid: the stage's handle (AUTOINCREMENT, so a
	 * session whose stage was purged and made again never writes into the new one's row).
	 * Expiry as for bundles: age_ms plus residence on the boot clock, against life_ms.
	 */
	"CREATE TABLE stages ("
	"  rowid INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  peer INTEGER NOT NULL,"
	"  id BLOB NOT NULL CHECK (length(id) = 32),"
	"  payload_len INTEGER NOT NULL,"
	"  have INTEGER NOT NULL CHECK (have >= 0),"
	"  life_ms INTEGER NOT NULL,"
	"  age_ms INTEGER NOT NULL,"
	"  created_unix_ms INTEGER NOT NULL,"
	"  boot_id BLOB NOT NULL,"
	"  boot_ms INTEGER NOT NULL,"
	"  UNIQUE (peer, id)"
	");"
	/* As payload_trash: a stage's file is removed only after its row's deletion committed. */
	"CREATE TABLE stage_trash ("
	"  peer INTEGER NOT NULL,"
	"  id BLOB NOT NULL CHECK (length(id) = 32),"
	"  PRIMARY KEY (peer, id)"
	") WITHOUT ROWID;"
	"CREATE TRIGGER stages_trash AFTER DELETE ON stages "
	"BEGIN INSERT OR IGNORE INTO stage_trash (peer, id) VALUES (old.peer, old.id); END;",

	/*
	 * 6: which peers hold a copy of a bundle we keep (epidemic routing, route.c): they
	 * acknowledged it, or it came from them, so it is not offered to them again.
	 */
	"CREATE TABLE holders ("
	"  bundle INTEGER NOT NULL REFERENCES bundles (rowid) ON DELETE CASCADE,"
	"  peer INTEGER NOT NULL,"
	"  PRIMARY KEY (bundle, peer)"
	") WITHOUT ROWID;",

	/*
	 * 7: the order in which sent rows' states changed here, so that a subscriber
	 * (relay/api.c) follows changes as they committed, not by a wall clock that two
	 * changes may read out of order. The trigger runs once per row changed, so every
	 * change gets a number of its own; rows changed before this migration count as
	 * changed in the order they were made. 0: never changed (still queued).
	 */
	"ALTER TABLE sent ADD COLUMN change_seq INTEGER NOT NULL DEFAULT 0;"
	"UPDATE sent SET change_seq = seq WHERE state != 1;"
	"CREATE INDEX sent_change ON sent (change_seq);"
	"CREATE TRIGGER sent_changed AFTER UPDATE OF state ON sent "
	"WHEN old.state != new.state BEGIN "
	"UPDATE sent SET change_seq = (SELECT max(change_seq) FROM sent) + 1 WHERE seq = new.seq; "
	"END;",
};
/* clang-format on */

#define NMIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))

/* Tests only (store_testing.h): stop at this version, to make a store as an older tern did. */
static int schema_cap;

void store_testing_schema_cap(int version)
{
	schema_cap = version > 0 && version < NMIGRATIONS ? version : 0;
}

int store_schema_latest(void)
{
	return NMIGRATIONS;
}

static int read_int(struct store *s, const char *sql, int *v)
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
		ret = store_err(s, rc);
		goto out;
	}
	*v = sqlite3_column_int(st, 0);
	ret = 0;
out:
	sqlite3_finalize(st);
	return ret;
}

/* Is this file ours (or empty and about to become ours)? */
static int check_owner(struct store *s, int version, const char **why)
{
	int app = 0, tables = 0, ret;

	ret = read_int(s, "PRAGMA application_id", &app);
	if (ret)
		goto out;
	ret = read_int(s, "SELECT count(*) FROM sqlite_schema", &tables);
	if (ret)
		goto out;
	/* Another program's database: migrating it would scribble in someone else's data. */
	if ((app != 0 && app != STORE_APPLICATION_ID) ||
	    (version > 0 && app != STORE_APPLICATION_ID) || (version == 0 && tables > 0)) {
		*why = "not a tern store";
		ret = -EBADMSG;
		goto out;
	}
	if (version > NMIGRATIONS) {
		snprintf(s->errmsg, sizeof(s->errmsg),
			 "schema version %d is newer than this tern's (%d)", version, NMIGRATIONS);
		*why = "schema is newer than this tern";
		ret = -EPROTONOSUPPORT;
		goto out;
	}
out:
	return ret;
}

static int apply(struct store *s, int version)
{
	char bump[48];
	int rc, ret;

	rc = sqlite3_exec(s->db, migrations[version], NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		ret = store_err(s, rc);
		goto out;
	}
	snprintf(bump, sizeof(bump), "PRAGMA user_version = %d", version + 1);
	rc = sqlite3_exec(s->db, bump, NULL, NULL, NULL);
	ret = rc == SQLITE_OK ? 0 : store_err(s, rc);
out:
	return ret;
}

/*
 * Brings the schema up to date, one migration per transaction. The version is read
 * again under the write lock, so two processes opening an old store at once apply
 * each migration once.
 */
int store_migrate(struct store *s, const char **why)
{
	int target = schema_cap ? schema_cap : NMIGRATIONS;
	int version = 0, ret;

	for (;;) {
		ret = read_int(s, "PRAGMA user_version", &version);
		if (ret)
			goto err;
		ret = check_owner(s, version, why);
		if (ret || version >= target)
			goto out;
		ret = store_unit_begin(s);
		if (ret)
			goto err;
		ret = read_int(s, "PRAGMA user_version", &version);
		if (ret == 0)
			ret = check_owner(s, version, why);
		if (ret == 0 && version < target)
			ret = apply(s, version);
		if (ret) {
			store_unit_rollback(s);
			if (*why)
				goto out;
			goto err;
		}
		ret = store_unit_commit(s);
		if (ret)
			goto err;
	}
err:
	if (ret == -EBUSY)
		*why = "database is locked";
	else if (ret == -EINVAL)
		*why = "cannot update the schema";
	else
		*why = strerror(-ret);
out:
	return ret;
}
