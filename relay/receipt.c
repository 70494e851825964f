/* End-to-end delivery receipts: which messages reached this node, sealed back to each sender. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "relay/node.h"

/*
 * The body of a receipt bundle (service NODE_SERVICE_RECEIPTS, envelope kind
 * CONTROL): version 1, type 1 (delivered), then 16-byte message ids. The
 * sender's node number is not in it: it is the signer's, so a receipt can only
 * speak for messages sent to the node that signed it.
 */
#define RECEIPT_VERSION	  1
#define RECEIPT_DELIVERED 1

int receipt_parse(const uint8_t *buf, size_t len, size_t *count)
{
	if (len < 2 || buf[0] != RECEIPT_VERSION || buf[1] != RECEIPT_DELIVERED ||
	    (len - 2) % ENVELOPE_MSG_ID_LEN || (len - 2) / ENVELOPE_MSG_ID_LEN > RECEIPT_MAX_IDS)
		return -EBADMSG;
	*count = (len - 2) / ENVELOPE_MSG_ID_LEN;
	return 0;
}

void receipt_batch_add(struct receipt_batch *b, const uint8_t sender[static 32],
		       const uint8_t msg_id[static ENVELOPE_MSG_ID_LEN])
{
	size_t i = 0;
	while (i < b->n && memcmp(b->to[i].sender, sender, 32))
		i++;
	if (i == b->n) {
		void *tmp = realloc(b->to, (b->n + 1) * sizeof(*b->to));
		if (!tmp)
			return; /* a receipt is a courtesy: losing one loses no message */
		b->to = tmp;
		memset(&b->to[i], 0, sizeof(b->to[i]));
		memcpy(b->to[i].sender, sender, 32);
		b->n++;
	}
	struct receipt_to *t = &b->to[i];
	if (t->n == RECEIPT_MAX_IDS)
		return;
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		uint8_t *tmp = realloc(t->ids, cap * ENVELOPE_MSG_ID_LEN);
		if (!tmp)
			return;
		t->ids = tmp;
		t->cap = cap;
	}
	memcpy(t->ids + t->n * ENVELOPE_MSG_ID_LEN, msg_id, ENVELOPE_MSG_ID_LEN);
	t->n++;
}

struct body_reader {
	const uint8_t *buf;
	size_t len, off;
};

static long read_body(void *ctx, uint8_t *buf, size_t cap)
{
	struct body_reader *r = ctx;
	size_t k = r->len - r->off < cap ? r->len - r->off : cap;
	memcpy(buf, r->buf + r->off, k);
	r->off += k;
	return (long)k;
}

int receipt_batch_flush(struct node *n, struct receipt_batch *b, unsigned *queued)
{
	int ret = 0;
	*queued = 0;
	for (size_t i = 0; i < b->n; i++) {
		struct receipt_to *t = &b->to[i];
		struct store_contact c;
		/*
		 * Only a contact's encryption key lets us seal the receipt to them. A sender
		 * whose ids could not be added (memory ran out) has none: no empty receipt.
		 */
		if (t->n == 0 || store_contact_by_key(n->store, t->sender, &c) < 0)
			continue;
		size_t len = 2 + t->n * ENVELOPE_MSG_ID_LEN;
		uint8_t *body = malloc(len);
		if (!body) {
			ret = -ENOMEM;
			break;
		}
		body[0] = RECEIPT_VERSION;
		body[1] = RECEIPT_DELIVERED;
		memcpy(body + 2, t->ids, t->n * ENVELOPE_MSG_ID_LEN);
		struct body_reader r = {body, len, 0};
		struct submit_request req = {
		    .kind = ENVELOPE_CONTROL,
		    .size = len,
		    .read = read_body,
		    .read_ctx = &r,
		    .priority = STORE_NORMAL,
		    .lifetime_ms = NODE_DEFAULT_LIFETIME_MS,
		};
		struct submit_result *res = malloc(sizeof(*res));
		int err = res ? node_submit(n, &c, 1, &req, res, NULL) : -ENOMEM;
		free(res);
		free(body);
		if (err < 0) {
			ret = err;
			break;
		}
		(*queued)++;
	}
	receipt_batch_free(b);
	return ret;
}

void receipt_batch_free(struct receipt_batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		free(b->to[i].ids);
	free(b->to);
	b->to = NULL;
	b->n = 0;
}
