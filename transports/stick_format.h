/* Sneakernet manifest and receipt bodies: pure encoders and strict parsers, no I/O. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/*
 * These are the plaintext bodies the CLI seals inside tern's end-to-end envelope
 * before it writes them to tern/manifests/ or tern/receipts/ on a stick
 * (docs/sneakernet.md, "Formats"). A fixed binary layout, big-endian integers,
 * entries sorted by id so that a duplicate is an out-of-order entry and a lookup is
 * a binary search over the validated buffer.
 *
 * Every parser checks the whole buffer before it calls back, so a callback never
 * sees an entry of a body that will be refused. Errors: -EBADMSG malformed (magic,
 * length, order, a zero or oversized size, an unknown kind), -ENOTSUP a version this
 * code does not know, -EFBIG a count over STICK_LIST_MAX, or the callback's own
 * error. *why (if why is not NULL) gets a short static reason on every error but a
 * callback's.
 */

/* Largest bundle tern puts on or takes from a stick: above NODE_MAX_PAYLOAD, far below 2^63. */
#define STICK_BUNDLE_MAX (64ull << 30)

/*
 * Most entries in one manifest or receipt. A body of that many manifest entries
 * (14.4 MB) still fits, sealed, in the 16 MiB a stick file may hold; an exporter with
 * more writes several manifests.
 */
#define STICK_LIST_MAX 200000u

#define STICK_FORMAT_VERSION 1

/* ---- manifest: what an exporter wrote, with sizes and hashes ---------------------- */

#define STICK_MANIFEST_HEAD  25
#define STICK_MANIFEST_ENTRY 72

struct stick_manifest {
	uint8_t version;     /* STICK_FORMAT_VERSION; set by the parser, ignored by the encoder */
	uint64_t node;	     /* ipn node number of the exporter */
	uint64_t created_ms; /* exporter's clock, Unix ms; 0 if not trusted */
	uint32_t count;	     /* set by the parser, ignored by the encoder */
};

struct stick_manifest_entry {
	uint8_t id[32];	  /* bundle id */
	uint64_t size;	  /* bytes of the bundle file (all pieces), 1..STICK_BUNDLE_MAX */
	uint8_t hash[32]; /* BLAKE2b-256 of those bytes */
};

/*
 * Encodes a manifest of n entries, in any order (they are written sorted by id), into
 * a malloc'd buffer of exactly STICK_MANIFEST_HEAD + n * STICK_MANIFEST_ENTRY bytes.
 * 0; -EINVAL (two entries with one id, a size of 0 or over STICK_BUNDLE_MAX, entries
 * NULL with n > 0), -EFBIG (n over STICK_LIST_MAX), -ENOMEM. The caller frees *out.
 */
int stick_manifest_encode(const struct stick_manifest *m, const struct stick_manifest_entry *e,
			  size_t n, uint8_t **out, size_t *outlen);

typedef int (*stick_manifest_fn)(void *ctx, const struct stick_manifest_entry *e);

/*
 * Parses a manifest body, fills *m and, once all of it is checked, calls fn (may be
 * NULL) for each entry in id order. Errors as described at the top.
 */
int stick_manifest_parse(const uint8_t *buf, size_t len, struct stick_manifest *m,
			 stick_manifest_fn fn, void *ctx, const char **why);

/*
 * Finds the entry for id in a body that stick_manifest_parse accepted (binary search,
 * no allocation). 0 and *out filled, or -ENOENT.
 */
int stick_manifest_lookup(const uint8_t *buf, size_t len, const uint8_t id[static 32],
			  struct stick_manifest_entry *out);

/* ---- receipt: what a node took custody of, or which messages it delivered --------- */

#define STICK_RECEIPT_HEAD 26

enum stick_receipt_kind {
	STICK_RECEIPT_CUSTODY = 1,  /* ids are 32-byte bundle ids, durably stored by node */
	STICK_RECEIPT_DELIVERY = 2, /* ids are 16-byte message ids (envelope), delivered at node */
};

struct stick_receipt {
	uint8_t version; /* set by the parser, ignored by the encoder */
	enum stick_receipt_kind kind;
	uint64_t node;	     /* ipn node number of the receipt's writer */
	uint64_t created_ms; /* writer's clock, Unix ms; 0 if not trusted */
	uint32_t count;	     /* set by the parser, ignored by the encoder */
};

/* Bytes per id for a kind: 32 (custody), 16 (delivery), 0 for anything else. */
size_t stick_receipt_id_len(enum stick_receipt_kind kind);

/*
 * Encodes a receipt of n ids packed back to back (n * stick_receipt_id_len(kind) bytes,
 * any order; written sorted) into a malloc'd buffer of exactly STICK_RECEIPT_HEAD +
 * that many bytes. 0; -EINVAL (unknown kind, a duplicate id, ids NULL with n > 0),
 * -EFBIG (n over STICK_LIST_MAX), -ENOMEM.
 */
int stick_receipt_encode(const struct stick_receipt *r, const uint8_t *ids, size_t n, uint8_t **out,
			 size_t *outlen);

typedef int (*stick_receipt_fn)(void *ctx, const uint8_t *id, size_t idlen);

/*
 * Parses a receipt body, fills *r and, once all of it is checked, calls fn (may be
 * NULL) for each id in order. Errors as described at the top.
 */
int stick_receipt_parse(const uint8_t *buf, size_t len, struct stick_receipt *r,
			stick_receipt_fn fn, void *ctx, const char **why);
