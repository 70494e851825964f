/* Bundles over Iridium SBD: sealed for the next hop, cut into messages, put together again. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "relay/node.h"

/*
 * docs/serial.md, "Iridium SBD". A bundle is sealed for the next hop (crypto hop_seal: the
 * gateway, its e-mail and whoever reads it see only sizes) and cut into messages of at most
 * an SBD message's bytes. Each message starts with a 9-byte head:
 *
 *   0xB1 (tern SBD parcel, version 1), parcel id (6 random bytes), index, count
 *
 * and the id, the count and 0xB1 are authenticated with the parcel. The far end keeps the
 * messages in a spool directory until a parcel is whole (they arrive in any order, over
 * days, some twice), opens it with the key of whichever peer sealed it, and takes the
 * bundle as from any link (ingest.c): a duplicate changes nothing.
 */

#define SBD_PIECE_HEAD	    9
#define SBD_PARCEL_VERSION  0xB1
#define SBD_PIECES_MAX	    255
#define SBD_SPOOL_MAX_AGE_S (30 * 86400) /* a parcel not whole in 30 days is given up */

/* The messages a bundle of len bytes takes, at most piece_max bytes each; 0: too big. */
unsigned sbd_parcel_pieces(size_t len, size_t piece_max);

typedef int (*sbd_piece_fn)(void *ctx, const uint8_t *piece, size_t len, unsigned index,
			    unsigned count);
/*
 * Seals bundle for peer and hands each message to fn, in order. 0, -EFBIG (more than
 * SBD_PIECES_MAX messages), -EINVAL (piece_max too small), -ENOMEM, or fn's error.
 */
int sbd_parcel_cut(struct node *n, const struct identity_public *peer, const uint8_t *bundle,
		   size_t len, size_t piece_max, sbd_piece_fn fn, void *ctx);

enum sbd_take_kind {
	SBD_KEPT = 1,	/* spooled: the parcel waits for more */
	SBD_DUPLICATE,	/* this message was spooled already */
	SBD_DONE,	/* the parcel was whole: opened and its bundle taken (see ingest) */
	SBD_BAD_PIECE,	/* not a tern SBD message, or damaged: why says how */
	SBD_BAD_PARCEL, /* whole, but no peer's key opens it: kept aside as .bad */
	SBD_BAD_BUNDLE, /* opened, and the bundle was refused: ingest.reason */
};

struct sbd_take_result {
	enum sbd_take_kind kind;
	unsigned have, count;	       /* messages of its parcel spooled, and how many it has */
	char parcel[13];	       /* the parcel id in hex */
	char peer[STORE_NAME_MAX + 1]; /* SBD_DONE: whose key opened it */
	char why[200];
	struct ingest_result ingest; /* SBD_DONE, SBD_BAD_BUNDLE */
};

/*
 * Takes one SBD message (a gateway's attachment, an MT message read from the modem) into
 * the spool directory spool (created if missing, mode 0700), and, if its parcel is now
 * whole, opens it and takes the bundle. Spool files older than SBD_SPOOL_MAX_AGE_S go.
 * 0 with res filled, or -errno when the spool or the store failed (nothing taken).
 */
int sbd_take(struct node *n, const char *spool, const uint8_t *msg, size_t len,
	     struct sbd_take_result *res);
