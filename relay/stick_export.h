/* Sneakernet export: what travels by stick to some next hops, written onto it with manifests. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "relay/node.h"
#include "transports/stick.h"

/* One manifest is sealed to each next hop and to the exporter: at most this many hops. */
#define STICK_EXPORT_TARGETS_MAX (ENVELOPE_MAX_RECIPIENTS - 1)

struct stick_export_opts {
	const struct store_peer *to; /* the next hops this trip is for */
	size_t n_to;		     /* 1 to STICK_EXPORT_TARGETS_MAX */
	enum store_priority min_prio;
	uint64_t max_bytes; /* UINT64_MAX: no limit but the stick's space */
};

/* What an export tells its caller as it goes; every function may be NULL. */
struct stick_export_hooks {
	void *ctx;
	/* A problem, as "what: why" (what names a bundle id, the stick or "export"). */
	void (*problem)(void *ctx, const char *what, const char *why);
	/* The bundles are about to be written: total bytes planned, for a progress bar. */
	void (*start)(void *ctx, uint64_t total);
	/* Bytes written or hashed since the last call. */
	void (*progress)(void *ctx, uint64_t bytes);
	/* The bundles are written; the manifests come next. */
	void (*end)(void *ctx);
};

struct stick_export_result {
	size_t exported;   /* bundle files written */
	uint64_t bytes;	   /* their bytes */
	unsigned adopted;  /* copies already on the stick, listed in a manifest too */
	unsigned on_stick; /* already on the stick, written by another process meanwhile */
	unsigned no_fit, low_prio, no_route, failed, dropped, temp_removed;
	unsigned manifests;
	bool full; /* the stick filled up */
	bool ok;   /* nothing failed: the CLI's exit 0 */
};

/*
 * Exports to an open, writable stick what n has queued for the next hops of opts
 * (docs/sneakernet.md, "Using it"): expired bundles purged, leftover temporary files
 * removed, the bundles written urgent first then oldest first while they fit (within
 * max_bytes and the stick's free space less a reserve), one manifest per next hop sealed
 * to it, and each bundle on the stick marked exported to its next hop (custody stays
 * here until a receipt comes back). dir names the stick in problems. n->now is the time.
 * Returns 0 once the export ran, with *res filled (res->ok false if anything failed, each
 * failure told to hooks->problem); -errno if it could not start (told too).
 */
int stick_export(struct node *n, struct stick *stick, const char *dir,
		 const struct stick_export_opts *opts, const struct stick_export_hooks *hooks,
		 struct stick_export_result *res);
