/* libFuzzer target for the BPv7 decoder: two splits must agree, and what decodes must re-encode. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "relay/bundle.h"

/*
 * Properties checked on every input:
 * 1. Fed whole and fed in pieces whose sizes come from the input itself, the decoder
 *    gives the same verdict, reason, header, payload (length and CRC) and id.
 * 2. A bundle that decodes re-encodes (the encoder accepts every header the decoder
 *    produces), and the re-encoded bundle decodes to the same header and id.
 * A violated property aborts, which the fuzzer reports as a crash.
 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct result {
	int ret;
	char reason[128];
	bool got_header;
	struct bundle_header h;
	uint64_t payload_len;
	uint32_t payload_sum;
	uint8_t id[32];
	uint8_t *payload; /* kept only for re-encoding small bundles */
	size_t payload_cap;
};

static int on_header(void *ctx, const struct bundle_header *h)
{
	struct result *r = ctx;

	if (r->got_header)
		abort(); /* called twice */
	r->h = *h;
	r->got_header = true;
	return 0;
}

static int on_payload(void *ctx, const uint8_t *buf, size_t len)
{
	struct result *r = ctx;

	if (!r->got_header || len == 0)
		abort();
	for (size_t i = 0; i < len; i++) {
		r->payload_sum = r->payload_sum * 31 + buf[i];
		if (r->payload && r->payload_len + i < r->payload_cap)
			r->payload[r->payload_len + i] = buf[i];
	}
	r->payload_len += len;
	return 0;
}

static const struct bundle_parser_cb cb = {.on_header = on_header, .on_payload = on_payload};

/* Decodes buf; with pieces, piece sizes cycle through the given list. */
static void decode(const uint8_t *buf, size_t len, const uint8_t *sizes, size_t nsizes,
		   struct result *r)
{
	struct bundle_limits lim = {.max_payload = 1 << 20};
	struct bundle_parser *p;
	size_t off = 0, k = 0;

	if (bundle_parser_new(&lim, &cb, r, &p) < 0)
		abort();
	r->ret = 0;
	while (off < len && r->ret == 0) {
		size_t n = nsizes ? (size_t)sizes[k++ % nsizes] % 17 + 1 : len;

		if (n > len - off)
			n = len - off;
		r->ret = bundle_parser_feed(p, buf + off, n);
		off += n;
	}
	if (r->ret == 0)
		r->ret = bundle_parser_finish(p);
	strncpy(r->reason, bundle_parser_error(p), sizeof(r->reason) - 1);
	if (r->ret == 0)
		bundle_parser_id(p, r->id);
	bundle_parser_free(p);
}

static bool eid_eq(const struct bundle_eid *a, const struct bundle_eid *b)
{
	if (a->scheme != b->scheme)
		return false;
	if (a->scheme == BUNDLE_SCHEME_IPN)
		return a->node == b->node && a->service == b->service;
	return a->none == b->none && (a->none || strcmp(a->dtn, b->dtn) == 0);
}

static bool header_eq(const struct bundle_header *a, const struct bundle_header *b)
{
	return a->flags == b->flags && a->crc_type == b->crc_type && eid_eq(&a->dest, &b->dest) &&
	       eid_eq(&a->source, &b->source) && eid_eq(&a->report_to, &b->report_to) &&
	       a->created_ms == b->created_ms && a->seq == b->seq &&
	       a->lifetime_ms == b->lifetime_ms && a->frag_offset == b->frag_offset &&
	       a->adu_length == b->adu_length && a->has_hop_count == b->has_hop_count &&
	       a->hop_limit == b->hop_limit && a->hop_count == b->hop_count &&
	       a->has_age == b->has_age && a->age_ms == b->age_ms &&
	       a->has_prev_node == b->has_prev_node &&
	       (!a->has_prev_node || eid_eq(&a->prev_node, &b->prev_node)) &&
	       a->priority == b->priority && a->extra_len == b->extra_len &&
	       memcmp(a->extra, b->extra, a->extra_len) == 0 &&
	       a->payload_flags == b->payload_flags && a->payload_crc_type == b->payload_crc_type &&
	       a->payload_len == b->payload_len;
}

static void same(const struct result *a, const struct result *b)
{
	if (a->ret != b->ret || strcmp(a->reason, b->reason) != 0 ||
	    a->got_header != b->got_header || (a->got_header && !header_eq(&a->h, &b->h)) ||
	    a->payload_len != b->payload_len || a->payload_sum != b->payload_sum ||
	    memcmp(a->id, b->id, 32) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct result *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	struct result *c = NULL;
	uint8_t *out = NULL;

	if (!a || !b)
		abort();
	a->payload_cap = 1 << 16;
	a->payload = malloc(a->payload_cap);
	decode(data, size, NULL, 0, a);
	/* The input's own bytes choose the piece sizes, so the fuzzer explores splits. */
	decode(data, size, data, size < 64 ? size : 64, b);
	same(a, b);

	if (a->ret == 0 && a->payload_len <= a->payload_cap) {
		size_t cap = BUNDLE_HEAD_MAX + (size_t)a->payload_len + BUNDLE_TAIL_MAX;
		int n;

		out = malloc(cap);
		c = calloc(1, sizeof(*c));
		if (!out || !c)
			abort();
		n = bundle_encode(&a->h, a->payload, out, cap);
		if (n < 0)
			abort(); /* the encoder must take whatever the decoder accepted */
		decode(out, (size_t)n, NULL, 0, c);
		if (c->ret != 0 || !header_eq(&a->h, &c->h) || memcmp(a->id, c->id, 32) != 0 ||
		    c->payload_sum != a->payload_sum)
			abort();
	}
	free(out);
	free(c);
	free(a->payload);
	free(a);
	free(b);
	return 0;
}
