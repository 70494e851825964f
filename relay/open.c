/* Opens what was delivered: the inbox keeps envelopes sealed and they are opened again on reading.
 */
#include <errno.h>
#include <string.h>

#include "relay/node.h"

struct candidate_walk {
	void (*fn)(void *fctx, const uint8_t pk[32]);
	void *fctx;
};

static int offer_contact(void *ctx, const struct store_contact *c)
{
	struct candidate_walk *walk = ctx;
	walk->fn(walk->fctx, c->sign_pk);
	return 0;
}

static int offer_key(void *ctx, const uint8_t sign_pk[32])
{
	struct candidate_walk *walk = ctx;
	walk->fn(walk->fctx, sign_pk);
	return 0;
}

void node_candidates(void *ctx, int hint, void (*fn)(void *fctx, const uint8_t pk[32]), void *fctx)
{
	struct node *n = ctx;
	struct candidate_walk walk = {.fn = fn, .fctx = fctx};
	/* At a hub with a thousand contacts, the hint makes this a handful of index lookups. */
	if (hint == ENVELOPE_HINT_NONE)
		store_contact_foreach(n->store, offer_contact, &walk);
	else
		store_contact_keys_starting(n->store, (uint8_t)hint, offer_key, &walk);
}

struct open_ctx {
	struct envelope_opener *o;
	node_sink spool;
	void *ctx;
};

static int open_chunk(void *ctx, const uint8_t *buf, size_t len)
{
	struct open_ctx *oc = ctx;
	return envelope_open_update(oc->o, buf, len, oc->spool, oc->ctx);
}

struct inbox_candidates {
	struct node *n;
	const uint8_t *sender;
};

/* The sender recorded at delivery first: it was verified then, even if no longer a contact. */
static void inbox_candidates(void *ctx, int hint, void (*fn)(void *fctx, const uint8_t pk[32]),
			     void *fctx)
{
	struct inbox_candidates *c = ctx;
	fn(fctx, c->sender);
	node_candidates(c->n, hint, fn, fctx);
}

int node_open_inbox(struct node *n, const struct store_inbox *e, node_sink spool, void *ctx,
		    struct envelope_meta *meta)
{
	int64_t rowid;
	int ret = store_inbox_bundle(n->store, e, &rowid);
	if (ret < 0)
		return ret;
	struct open_ctx oc = {.spool = spool, .ctx = ctx};
	ret = envelope_open_new(n->id, &oc.o);
	if (ret < 0)
		return ret;
	ret = store_payload_read(n->store, rowid, open_chunk, &oc);
	if (ret == 0)
		ret = envelope_open_final(oc.o, inbox_candidates,
					  &(struct inbox_candidates){n, e->sender_pk}, meta);
	if (ret == 0 && memcmp(meta->msg_id, e->msg_id, sizeof(e->msg_id)) != 0)
		ret = -EBADMSG;
	envelope_opener_free(oc.o);
	return ret;
}
