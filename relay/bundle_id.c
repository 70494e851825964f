/* The bundle id: BLAKE2b-256 of the canonical primary fields and the payload, re-encoding-proof. */
#include "relay/bundle.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"

/*
 * Relays re-encode bundles: they switch CRC types, add and strip extension blocks,
 * update age and hop count. So the id never covers received bytes. It is keyed
 * BLAKE2b-256 (key "tern bundle id v1", for domain separation) over:
 *
 *   canonical = bundle_encode_head() of a header holding only the primary block's
 *               immutable fields (version 7, flags, dest, source, report-to,
 *               creation timestamp, lifetime, fragment offset and ADU length) and
 *               payload_len, with CRC type 0 on every block, no extension blocks and
 *               payload block flags 0;
 *   id        = BLAKE2b-256(key, canonical || payload bytes).
 *
 * The encoder writes integers in shortest form, so the canonical bytes do not depend
 * on how the bundle arrived. docs/bundle.md shows an example.
 */

static const char id_key[] = "tern bundle id v1";

struct bundle_id_state {
	struct hash *hash;
};

struct bundle_id_state *bundle_id_new(const struct bundle_header *h)
{
	struct bundle_id_state *s = calloc(1, sizeof(*s));
	struct bundle_header *c = malloc(sizeof(*c));
	uint8_t *buf = malloc(BUNDLE_HEAD_MAX);
	int n;

	if (!s || !c || !buf)
		goto fail;
	memset(c, 0, offsetof(struct bundle_header, extra));
	c->flags = h->flags;
	c->crc_type = BUNDLE_CRC_NONE;
	c->dest = h->dest;
	c->source = h->source;
	c->report_to = h->report_to;
	c->created_ms = h->created_ms;
	c->seq = h->seq;
	c->lifetime_ms = h->lifetime_ms;
	c->frag_offset = h->frag_offset;
	c->adu_length = h->adu_length;
	c->priority = BUNDLE_PRIO_NORMAL;
	c->extra_len = 0;
	c->payload_flags = 0;
	c->payload_crc_type = BUNDLE_CRC_NONE;
	c->payload_len = h->payload_len;
	n = bundle_encode_head(c, buf, BUNDLE_HEAD_MAX);
	if (n < 0)
		goto fail;
	s->hash = hash_new(32, (const uint8_t *)id_key, sizeof(id_key) - 1);
	if (!s->hash)
		goto fail;
	hash_update(s->hash, buf, (size_t)n);
	free(buf);
	free(c);
	return s;
fail:
	free(buf);
	free(c);
	free(s);
	return NULL;
}

void bundle_id_update(struct bundle_id_state *s, const uint8_t *buf, size_t len)
{
	hash_update(s->hash, buf, len);
}

void bundle_id_final(struct bundle_id_state *s, uint8_t id[static 32])
{
	hash_final(s->hash, id);
	free(s);
}

void bundle_id_free(struct bundle_id_state *s)
{
	if (!s)
		return;
	hash_free(s->hash);
	free(s);
}
