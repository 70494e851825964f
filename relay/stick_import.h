/* Sneakernet import: what a stick carries for a node (receipts, manifests, bundles), file by file.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "relay/node.h"
#include "transports/stick.h"

/* What an import tells its caller as it goes; every function may be NULL. */
struct stick_import_hooks {
	void *ctx;
	/* A problem that is no one file's verdict, as "what: why". */
	void (*problem)(void *ctx, const char *what, const char *why);
	/*
	 * One file's verdict: sub is "receipts", "manifests" or "bundles", name the file as
	 * shown below it, verdict one word or two ("delivered", "rejected", ...), detail ""
	 * or the why.
	 */
	void (*file)(void *ctx, const char *sub, const char *name, const char *verdict,
		     const char *detail);
};

struct stick_import_result {
	unsigned delivered, queued, duplicate, rejected, left;
	unsigned receipts;	  /* end-to-end delivery receipts among the bundles */
	unsigned released;	  /* bundles released here by custody receipts */
	unsigned custody_written; /* bundles this import wrote custody receipts for */
	unsigned acks;		  /* delivery receipts queued for the senders */
};

/*
 * Imports an open stick into n (docs/sneakernet.md, "Import"): custody receipts sealed to
 * n release what it exported (their copies and the receipt leave the stick), manifests
 * sealed to n by a peer are kept to check bundles against, then each bundle is checked
 * and taken in (delivered, stored to forward, or rejected with its reason), committed in
 * batches; custody receipts go back onto the stick for what committed, and delivery
 * receipts are queued for the senders. writable false: nothing is written to or removed
 * from the stick. dir names the stick in problems; n->now is the time. *res is filled
 * either way. 0, or -errno if something failed that is not one file's verdict (told to
 * hooks->problem); a rejected file counts in res->rejected only.
 */
int stick_import(struct node *n, struct stick *stick, const char *dir, bool writable,
		 const struct stick_import_hooks *hooks, struct stick_import_result *res);
