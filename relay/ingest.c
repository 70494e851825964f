/* Takes one bundle from any source: checks it, stores it durably, delivers or queues it, or says
 * why not. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relay/node.h"

/* The largest delivery receipt body we open (RECEIPT_MAX_IDS ids). */
#define RECEIPT_CTL_MAX (2 + RECEIPT_MAX_IDS * ENVELOPE_MSG_ID_LEN)

/* Returned by callbacks to stop the parser once the bundle is known to be refused. */
#define INGEST_STOP (-ECANCELED)

struct ingest {
	struct node *n;
	struct bundle_parser *parser;
	struct store_writer *w;
	struct envelope_opener *opener;
	struct bundle_header h;
	bool have_header;
	bool for_us;
	bool control; /* a delivery receipt: opened and recorded, not stored */
	uint8_t *ctl;
	size_t ctl_len;
	bool expect;   /* the bundle id the caller expects (a file name says it) */
	bool no_relay; /* ingest_no_relay: bundles for other nodes are passed by */
	bool passed;
	uint8_t expect_id[32];
	bool rejected;
	bool expired; /* rejected for its lifetime, not its bytes */
	int store_err;
	char reason[200];
};

static int reject(struct ingest *in, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int reject(struct ingest *in, const char *fmt, ...)
{
	if (!in->rejected) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(in->reason, sizeof(in->reason), fmt, ap);
		va_end(ap);
		in->rejected = true;
	}
	return INGEST_STOP;
}

static uint64_t dtn_now(const struct node *n)
{
	return n->now.unix_ms > BUNDLE_DTN_EPOCH_UNIX_MS ? n->now.unix_ms - BUNDLE_DTN_EPOCH_UNIX_MS
							 : 0;
}

/* The age the bundle has on arrival (RFC 9171 §4.4.2), as well as we can know it. */
static uint64_t age_on_arrival(const struct node *n, const struct bundle_header *h)
{
	if (h->has_age)
		return h->age_ms;
	if (h->created_ms && n->clock_trusted && dtn_now(n) > h->created_ms)
		return dtn_now(n) - h->created_ms;
	return 0;
}

static const char *open_error(int err)
{
	switch (err) {
	case -ENOKEY:
		return "cannot be opened with this node's keys (misaddressed, or damaged)";
	case -EKEYREJECTED:
		return "forged: the sender's signature does not verify";
	case -ENOENT:
		return "sender unknown: add them as a contact, then import again";
	case -E2BIG:
		return "damaged envelope: data after its end";
	default:
		return "damaged or tampered envelope";
	}
}

static int on_header(void *ctx, const struct bundle_header *h)
{
	struct ingest *in = ctx;
	struct node *n = in->n;
	in->h = *h;
	in->have_header = true;
	in->for_us = h->dest.scheme == BUNDLE_SCHEME_IPN && h->dest.node == n->node_num;
	if (!in->for_us && in->no_relay) {
		in->passed = true;
		return INGEST_STOP;
	}

	if (h->created_ms == 0 && !h->has_age)
		return reject(in, "creation time 0 without a Bundle Age block (RFC 9171 4.2.7)");
	if (h->has_hop_count && h->hop_count > h->hop_limit)
		return reject(in, "hop limit exceeded (%llu > %llu)",
			      (unsigned long long)h->hop_count, (unsigned long long)h->hop_limit);
	uint64_t age = age_on_arrival(n, h);
	in->expired = age >= h->lifetime_ms ||
		      (h->created_ms && n->clock_trusted && dtn_now(n) > h->created_ms &&
		       dtn_now(n) - h->created_ms >= h->lifetime_ms);
	if (age >= h->lifetime_ms)
		return reject(in, "expired (age %llu ms, lifetime %llu ms)",
			      (unsigned long long)age, (unsigned long long)h->lifetime_ms);
	if (h->created_ms && n->clock_trusted && dtn_now(n) > h->created_ms &&
	    dtn_now(n) - h->created_ms >= h->lifetime_ms)
		return reject(in, "expired (created %llu s before now, lifetime %llu s)",
			      (unsigned long long)((dtn_now(n) - h->created_ms) / 1000),
			      (unsigned long long)(h->lifetime_ms / 1000));

	if (in->for_us) {
		in->control = h->dest.service == NODE_SERVICE_RECEIPTS;
		if (h->dest.service != NODE_SERVICE_MESSAGES && !in->control)
			return reject(in, "for this node's service %llu, which tern does not serve",
				      (unsigned long long)h->dest.service);
		if (in->control && h->payload_len > RECEIPT_CTL_MAX)
			return reject(in, "a receipt of %llu bytes (at most %d)",
				      (unsigned long long)h->payload_len, RECEIPT_CTL_MAX);
		if (h->flags & BUNDLE_F_FRAGMENT)
			return reject(in, "a fragment for this node (reassembly is not supported)");
		if (h->flags & BUNDLE_F_ADMIN)
			return reject(in, "an administrative record (not handled yet)");
		if (n->spare) {
			in->opener = n->spare;
			n->spare = NULL;
		} else if (envelope_open_new(n->id, &in->opener) < 0) {
			return in->store_err = -ENOMEM; /* not the bundle's fault: no verdict */
		}
		if (in->control && !(in->ctl = malloc(RECEIPT_CTL_MAX)))
			return in->store_err = -ENOMEM;
		if (in->control)
			return 0;
	}
	int ret = store_writer_begin(n->store, &n->now, &in->w);
	if (ret == 0)
		ret = store_writer_expect(in->w, h->payload_len);
	if (ret < 0)
		in->store_err = ret;
	return ret;
}

static int discard(void *ctx, const uint8_t *buf, size_t len)
{
	(void)ctx;
	(void)buf;
	(void)len;
	return 0;
}

static int keep_control(void *ctx, const uint8_t *buf, size_t len)
{
	struct ingest *in = ctx;
	if (len > RECEIPT_CTL_MAX - in->ctl_len)
		return -EFBIG;
	memcpy(in->ctl + in->ctl_len, buf, len);
	in->ctl_len += len;
	return 0;
}

static int on_payload(void *ctx, const uint8_t *buf, size_t len)
{
	struct ingest *in = ctx;
	if (in->control) {
		int ret = envelope_open_update(in->opener, buf, len, keep_control, in);
		return ret < 0 ? reject(in, "%s", open_error(ret)) : 0;
	}
	if (in->opener) {
		/* Plaintext is only checked here; the inbox keeps the sealed bytes. */
		int ret = envelope_open_update(in->opener, buf, len, discard, NULL);
		if (ret < 0)
			return reject(in, "%s", open_error(ret));
	}
	int ret = store_writer_append(in->w, buf, len);
	if (ret < 0)
		in->store_err = ret;
	return ret;
}

static const struct bundle_parser_cb ingest_cb = {
    .on_header = on_header,
    .on_payload = on_payload,
};

int ingest_new(struct node *n, struct ingest **out)
{
	struct ingest *in = calloc(1, sizeof(*in));
	if (!in)
		return -ENOMEM;
	in->n = n;
	struct bundle_limits lim = {.max_payload = NODE_MAX_PAYLOAD};
	int ret = bundle_parser_new(&lim, &ingest_cb, in, &in->parser);
	if (ret < 0) {
		free(in);
		return ret;
	}
	*out = in;
	return 0;
}

void ingest_free(struct ingest *in)
{
	if (!in)
		return;
	store_writer_abort(in->w);
	if (in->opener && !in->n->spare) {
		envelope_open_reset(in->opener);
		in->n->spare = in->opener;
	} else {
		envelope_opener_free(in->opener);
	}
	free(in->ctl);
	bundle_parser_free(in->parser);
	free(in);
}

int ingest_feed(struct ingest *in, const uint8_t *buf, size_t len)
{
	if (in->rejected || in->store_err || in->passed)
		return 1;
	int ret = bundle_parser_feed(in->parser, buf, len);
	if (ret < 0 && !in->store_err && !in->passed)
		reject(in, "%s", bundle_parser_error(in->parser));
	return ret < 0 ? 1 : 0;
}

void ingest_no_relay(struct ingest *in)
{
	in->no_relay = true;
}

void ingest_expect_id(struct ingest *in, const uint8_t id[static 32])
{
	in->expect = true;
	memcpy(in->expect_id, id, 32);
}

static void result_rejected(const struct ingest *in, struct ingest_result *res)
{
	res->verdict = INGEST_REJECTED;
	snprintf(res->reason, sizeof(res->reason), "%s", in->reason);
	res->expired = in->expired;
}

/*
 * A delivery receipt speaks only for messages sent to the node that signed it, so
 * a forged or misdirected one cannot mark anyone else's message delivered.
 */
static int record_receipt(struct ingest *in, struct ingest_result *res)
{
	struct node *n = in->n;
	struct envelope_meta meta;
	size_t count = 0;
	int ret = envelope_open_final(in->opener, node_candidates, n, &meta);
	if (ret < 0) {
		reject(in, "%s", open_error(ret));
	} else if (meta.kind != ENVELOPE_CONTROL ||
		   receipt_parse(in->ctl, in->ctl_len, &count) < 0) {
		reject(in, "a malformed delivery receipt");
	}
	if (in->rejected) {
		result_rejected(in, res);
		return 0;
	}
	uint64_t from = identity_node_number(meta.sender_sign_pk);
	for (size_t i = 0; i < count; i++) {
		uint64_t dropped = 0;
		ret = store_sent_delivered(n->store, in->ctl + 2 + i * ENVELOPE_MSG_ID_LEN, from,
					   n->now.unix_ms, &dropped);
		if (ret == 0)
			res->receipts++;
		else if (ret != -ENOENT)
			return ret;
	}
	res->verdict = INGEST_RECEIPT;
	return 0;
}

static int decide(struct ingest *in, struct ingest_result *res)
{
	struct node *n = in->n;
	struct envelope_meta meta;

	if (in->store_err)
		return in->store_err;
	if (in->passed) {
		res->verdict = INGEST_PASSED;
		res->dest_node = in->h.dest.scheme == BUNDLE_SCHEME_IPN ? in->h.dest.node : 0;
		return 0;
	}
	if (!in->rejected && bundle_parser_finish(in->parser) < 0)
		reject(in, "%s", bundle_parser_error(in->parser));
	if (in->rejected) {
		result_rejected(in, res);
		return 0;
	}
	bundle_parser_id(in->parser, res->bundle_id);
	if (in->expect && memcmp(in->expect_id, res->bundle_id, 32) != 0) {
		char want[65], got[65];
		hex_encode(in->expect_id, 32, want);
		hex_encode(res->bundle_id, 32, got);
		reject(in, "named as bundle %.16s... but it is bundle %.16s...", want, got);
		result_rejected(in, res);
		return 0;
	}
	res->dest_node = in->h.dest.scheme == BUNDLE_SCHEME_IPN ? in->h.dest.node : 0;
	struct store_bundle old;
	int have = store_bundle_get(n->store, res->bundle_id, NULL, &old, NULL, 0, NULL);
	if ((have == 0 && old.state == STORE_QUARANTINED) || have == -EBADMSG) {
		/*
		 * Not a duplicate to acknowledge: the copy here rotted (quarantined, or its head
		 * failed its checksum just now, which the open writer keeps from being recorded),
		 * and a custody receipt for it would make the sender drop the last good one.
		 */
		reject(in, "a damaged copy of this bundle is quarantined here (an operator must "
			   "remove it before a good copy can be taken)");
		result_rejected(in, res);
		return 0;
	}
	if (have == 0) {
		res->verdict = INGEST_DUPLICATE;
		return 0;
	}

	if (in->control)
		return record_receipt(in, res);

	struct store_inbox inbox = {0};
	if (in->for_us) {
		int ret = envelope_open_final(in->opener, node_candidates, n, &meta);
		if (ret == 0 && meta.kind == ENVELOPE_CONTROL)
			ret = reject(in, "a control record sent as a message");
		if (ret < 0) {
			reject(in, "%s", open_error(ret));
			result_rejected(in, res);
			res->sender_unknown = ret == -ENOENT;
			return 0;
		}
		if (store_inbox_has(n->store, meta.msg_id)) {
			res->verdict = INGEST_DUPLICATE;
			return 0;
		}
		memcpy(inbox.msg_id, meta.msg_id, sizeof(inbox.msg_id));
		memcpy(inbox.bundle_id, res->bundle_id, 32);
		memcpy(inbox.sender_pk, meta.sender_sign_pk, 32);
		inbox.kind = meta.kind;
		snprintf(inbox.name, sizeof(inbox.name), "%s", meta.name);
		inbox.size = meta.size;
		inbox.created_unix_ms = meta.created_ms;
		inbox.received_unix_ms = n->now.unix_ms;
	}

	uint8_t *head = malloc(BUNDLE_HEAD_MAX);
	if (!head)
		return -ENOMEM;
	int headlen = bundle_encode_head(&in->h, head, BUNDLE_HEAD_MAX);
	if (headlen < 0) {
		free(head);
		reject(in, "cannot re-encode its header");
		result_rejected(in, res);
		return 0;
	}
	struct store_bundle b = {
	    .state = in->for_us ? STORE_DELIVERED : STORE_QUEUED,
	    .dest_node = res->dest_node,
	    .priority =
		in->h.priority <= STORE_URGENT ? (enum store_priority)in->h.priority : STORE_NORMAL,
	    .lifetime_ms = in->h.lifetime_ms,
	    .age_ms = age_on_arrival(n, &in->h),
	    .payload_len = in->h.payload_len,
	    .received_unix_ms = n->now.unix_ms,
	    .local = false,
	};
	memcpy(b.id, res->bundle_id, 32);
	int ret = store_writer_commit(in->w, &b, head, (size_t)headlen, in->for_us ? &inbox : NULL);
	in->w = NULL;
	free(head);
	if (ret == -EEXIST) {
		res->verdict = INGEST_DUPLICATE;
		return 0;
	}
	if (ret < 0)
		return ret;
	res->verdict = in->for_us ? INGEST_DELIVERED : INGEST_QUEUED;
	if (in->for_us)
		res->inbox = inbox;
	return 0;
}

int ingest_finish(struct ingest *in, struct ingest_result *res)
{
	memset(res, 0, sizeof(*res));
	int ret = decide(in, res);
	ingest_free(in);
	return ret;
}
