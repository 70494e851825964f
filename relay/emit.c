/* Streams a stored bundle out as BPv7 bytes, re-encoded for the next hop. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "relay/node.h"

struct head_capture {
	struct bundle_header *h;
	bool done;
};

static int capture_header(void *ctx, const struct bundle_header *h)
{
	struct head_capture *c = ctx;
	*c->h = *h;
	c->done = true;
	return 0;
}

static int no_payload(void *ctx, const uint8_t *buf, size_t len)
{
	(void)ctx;
	(void)buf;
	(void)len;
	return -EPROTO;
}

int node_decode_head(const uint8_t *head, size_t headlen, struct bundle_header *h)
{
	static const struct bundle_parser_cb cb = {
	    .on_header = capture_header,
	    .on_payload = no_payload,
	};
	struct head_capture c = {.h = h};
	struct bundle_limits lim = {.max_payload = UINT64_MAX};
	struct bundle_parser *p;
	int ret = bundle_parser_new(&lim, &cb, &c, &p);
	if (ret < 0)
		return ret;
	ret = bundle_parser_feed(p, head, headlen);
	bundle_parser_free(p);
	if (ret == 0 && !c.done)
		ret = -EBADMSG;
	return ret;
}

struct emit_ctx {
	struct bundle_tail tail;
	node_sink sink;
	void *ctx;
	uint64_t len;
};

static int emit_payload(void *ctx, const uint8_t *buf, size_t len)
{
	struct emit_ctx *e = ctx;
	bundle_tail_update(&e->tail, buf, len);
	e->len += len;
	return e->sink(e->ctx, buf, len);
}

int node_emit(struct node *n, const struct store_bundle *b, const uint8_t *head, size_t headlen,
	      node_sink sink, void *ctx, uint64_t *len_out)
{
	struct emit_ctx e = {.sink = sink, .ctx = ctx};
	uint8_t tail[BUNDLE_TAIL_MAX];
	struct bundle_header *h = malloc(sizeof(*h));
	uint8_t *out = malloc(BUNDLE_HEAD_MAX);
	int ret = -ENOMEM;

	if (!h || !out)
		goto out;
	ret = node_decode_head(head, headlen, h);
	if (ret < 0)
		goto out;
	if (!b->local && h->has_hop_count)
		h->hop_count++;
	/* The next hop would refuse it: sending it only spends a metered link. */
	if (bundle_hop_exceeded(h)) {
		ret = -ELOOP;
		goto out;
	}
	/* RFC 9171 §4.4.1: a forwarder replaces the Previous Node block; we name no one. */
	h->has_prev_node = false;
	if (h->has_age || h->created_ms == 0) {
		h->has_age = true;
		h->age_ms = b->age_now_ms;
	}
	int len = bundle_encode_head(h, out, BUNDLE_HEAD_MAX);
	if (len < 0) {
		ret = len;
		goto out;
	}
	e.len = (uint64_t)len;
	ret = sink(ctx, out, (size_t)len);
	if (ret < 0)
		goto out;
	bundle_tail_init(&e.tail, h);
	ret = store_payload_read(n->store, b->rowid, emit_payload, &e);
	if (ret < 0)
		goto out;
	len = bundle_encode_tail(&e.tail, tail, sizeof(tail));
	if (len < 0) {
		ret = len;
		goto out;
	}
	e.len += (uint64_t)len;
	ret = sink(ctx, tail, (size_t)len);
	if (ret == 0 && len_out)
		*len_out = e.len;
out:
	free(out);
	free(h);
	return ret;
}
