/* Hooks for store/'s own unit tests only; not part of the store's interface. */
#pragma once

struct sqlite3;
struct store;

/* The store's own connection, so a test can check which pragmas are in force. */
struct sqlite3 *store_sqlite(struct store *s);
/*
 * Makes store_open migrate no further than version (0: all the way), so a test can
 * make a store file as an older tern left it. Process-wide; not thread-safe.
 */
void store_testing_schema_cap(int version);
