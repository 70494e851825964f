/*
 * Hooks for unit tests (the store's and its callers') and for tern-sim; not part of the store's
 * interface.
 */
#pragma once

#include <stdbool.h>

struct sqlite3;
struct store;

/* The store's own connection, so a test can check which pragmas are in force. */
struct sqlite3 *store_sqlite(struct store *s);
/*
 * Makes store_open migrate no further than version (0: all the way), so a test can
 * make a store file as an older tern left it. Process-wide; not thread-safe.
 */
void store_testing_schema_cap(int version);
/*
 * Makes the next count fdatasyncs of stage files fail with EIO (0: none), so a test
 * can see a failed sync poison its stage. Process-wide; not thread-safe.
 */
void store_testing_stage_sync_fail(unsigned count);
/*
 * Calls fn(ctx) once, in the next reopen of a stage, after its row was read and before
 * its file is locked: what another session may do in between.
 */
void store_testing_stage_before_lock(void (*fn)(void *ctx), void *ctx);
/*
 * Makes every later store_open take SQLite's exclusive locking mode: no file lock per
 * transaction and no -shm file, and no second handle on the same store. For tern-sim, which
 * runs every node's store in one process. Process-wide; not thread-safe.
 */
void store_testing_exclusive_locking(bool on);
/*
 * Makes every later store_open set synchronous=NORMAL instead of FULL (and accept it): commits
 * that a power cut can take back. Only to prove that the power-loss test (tests/faults/
 * test_powerloss.c) sees such a loss. Process-wide; not thread-safe.
 */
void store_testing_synchronous_normal(bool on);
