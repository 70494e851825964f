/* Hooks for store/'s own unit tests only; not part of the store's interface. */
#pragma once

struct sqlite3;
struct store;

/* The store's own connection, so a test can check which pragmas are in force. */
struct sqlite3 *store_sqlite(struct store *s);
