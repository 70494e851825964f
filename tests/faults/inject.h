/* Fault injection for tests: the N-th I/O call or allocation fails, counted per kind. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/*
 * Four kinds of call, each counted on its own while the scope is on (inject_scope):
 * SQLite's file calls (through a VFS shim over "unix", made the default VFS), tern's own
 * file calls (the executable is linked with -Wl,--wrap= for each: tests/faults/meson.build),
 * tern's own allocations (malloc, calloc, realloc, aligned_alloc, sodium_malloc,
 * sodium_allocarray, the same way) and SQLite's (SQLITE_CONFIG_MALLOC over its default
 * methods). Outside the scope every call passes through, uncounted.
 */
enum inject_kind {
	INJECT_SQLITE_IO = 0,
	INJECT_TERN_IO,
	INJECT_TERN_ALLOC,
	INJECT_SQLITE_ALLOC,
	INJECT_KINDS
};

/* Installs the SQLite hooks: call before anything else uses SQLite. 0 or -1. */
int inject_init(void);
/* A short name of the kind, for a report line. */
const char *inject_kind_name(enum inject_kind k);
/* Zeroes every count; the fail_at-th call of kind k (counted from 1) fails; 0: none does. */
void inject_arm(enum inject_kind k, uint64_t fail_at);
/* Writes (write, pwrite, fallocate, xWrite) fail with ENOSPC and SQLITE_FULL, not EIO. */
void inject_full(bool on);
/* Every call of the armed kind from the fail_at-th on fails (a dying disk), not that one alone. */
void inject_persist(bool on);
/* Counting (and failing) on or off; returns what it was. */
bool inject_scope(bool on);
/* Calls of kind k counted since inject_arm. */
uint64_t inject_count(enum inject_kind k);
/* Whether the armed call failed, and which function it was ("" if none). */
bool inject_fired(void);
const char *inject_fired_what(void);
