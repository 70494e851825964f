/* Seals a message or file once for all its recipients and queues one bundle per recipient node. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relay/node.h"

#define SUBMIT_BUF (64 * 1024)

static void header_for(const struct node *n, const struct store_contact *rcpt,
		       const struct submit_request *req, uint64_t payload_len,
		       struct bundle_header *h)
{
	bundle_header_init(h, rcpt->node,
			   req->kind == ENVELOPE_CONTROL ? NODE_SERVICE_RECEIPTS
							 : NODE_SERVICE_MESSAGES);
	h->lifetime_ms = req->lifetime_ms;
	h->priority = (uint8_t)req->priority;
	h->payload_len = payload_len;
	/*
	 * Other BPv7 nodes tell bundles apart by (source, creation timestamp). With
	 * source dtn:none and often time 0, only a random sequence number keeps them
	 * from taking our bundles for copies of each other. A counter would link an
	 * anonymous sender's bundles, so it is random, below 2^32: 5 bytes, which
	 * the SBD budget in docs/bundle.md counts.
	 */
	uint32_t seq;
	tern_random(&seq, sizeof(seq));
	h->seq = seq;
	if (n->clock_trusted && n->now.unix_ms > BUNDLE_DTN_EPOCH_UNIX_MS) {
		h->created_ms = n->now.unix_ms - BUNDLE_DTN_EPOCH_UNIX_MS;
		h->has_age = false;
	} else {
		/* RFC 9171 §4.2.7: creation time 0 obliges a Bundle Age block. */
		h->created_ms = 0;
		h->has_age = true;
		h->age_ms = 0;
	}
}

/* Commits one bundle and, for a message (not a control record), the sender's record of it. */
static int commit_bundle(struct node *n, struct store_writer *w, const struct bundle_header *h,
			 const uint8_t id[static 32], const uint8_t *msg_id, uint8_t *head)
{
	int headlen = bundle_encode_head(h, head, BUNDLE_HEAD_MAX);
	if (headlen < 0) {
		store_writer_abort(w);
		return headlen;
	}
	if (msg_id && h->dest.service == NODE_SERVICE_MESSAGES) {
		int ret = store_writer_add_sent(w, msg_id, h->dest.node);
		if (ret < 0) {
			store_writer_abort(w);
			return ret;
		}
	}
	struct store_bundle b = {
	    .state = STORE_QUEUED,
	    .dest_node = h->dest.node,
	    .priority = (enum store_priority)h->priority,
	    .lifetime_ms = h->lifetime_ms,
	    .age_ms = 0,
	    .payload_len = h->payload_len,
	    .received_unix_ms = n->now.unix_ms,
	    .local = true,
	};
	memcpy(b.id, id, 32);
	return store_writer_commit(w, &b, head, (size_t)headlen, NULL);
}

struct seal_sink {
	struct store_writer *w;
	struct bundle_id_state **ids;
	size_t n_ids;
	uint64_t written;
};

static int seal_to_store(void *ctx, const uint8_t *buf, size_t len)
{
	struct seal_sink *s = ctx;
	for (size_t i = 0; i < s->n_ids; i++)
		bundle_id_update(s->ids[i], buf, len);
	s->written += len;
	return store_writer_append(s->w, buf, len);
}

static int copy_to_writer(void *ctx, const uint8_t *buf, size_t len)
{
	return store_writer_append(ctx, buf, len);
}

/* Reads exactly req->size bytes through the sealer. */
static int pump_plaintext(const struct submit_request *req, struct envelope_sealer *sealer,
			  const char **why)
{
	uint8_t *buf = malloc(SUBMIT_BUF);
	if (!buf)
		return -ENOMEM;
	uint64_t total = 0;
	int ret = 0;
	for (;;) {
		long got = req->read(req->read_ctx, buf, SUBMIT_BUF);
		if (got < 0) {
			ret = (int)got;
			*why = "cannot read the input";
			break;
		}
		if (got == 0)
			break;
		total += (uint64_t)got;
		if (total > req->size)
			break;
		ret = envelope_seal_update(sealer, buf, (size_t)got);
		if (ret < 0) {
			*why = "sealing failed";
			break;
		}
	}
	if (ret == 0 && total != req->size) {
		ret = -EINVAL;
		*why = "the input changed size while it was read";
	}
	free(buf);
	return ret;
}

static int check_recipients(const struct store_contact *rcpt, size_t n_rcpt, const char **why)
{
	if (n_rcpt == 0 || n_rcpt > ENVELOPE_MAX_RECIPIENTS) {
		*why = "between 1 and 64 recipients";
		return -EINVAL;
	}
	for (size_t i = 0; i < n_rcpt; i++)
		for (size_t j = 0; j < i; j++)
			if (memcmp(rcpt[i].sign_pk, rcpt[j].sign_pk, 32) == 0) {
				*why = "a recipient is named twice";
				return -EINVAL;
			}
	return 0;
}

static int submit_compact(struct node *n, const struct store_contact *rcpt,
			  const struct submit_request *req, struct submit_result *res,
			  uint8_t *head, const char **why)
{
	uint8_t text[ENVELOPE_COMPACT_MAX];
	uint8_t sealed[ENVELOPE_COMPACT_MAX + 256];
	size_t len = 0, sealed_len = 0;
	struct envelope_meta meta = {.kind = ENVELOPE_TEXT, .size = req->size};
	struct envelope_recipient r;
	struct store_writer *w = NULL;
	int ret;

	while (len < req->size) {
		long got = req->read(req->read_ctx, text + len, req->size - len);
		if (got < 0) {
			*why = "cannot read the input";
			ret = (int)got;
			goto out;
		}
		if (got == 0)
			break;
		len += (size_t)got;
	}
	if (len != req->size) {
		*why = "the input changed size while it was read";
		ret = -EINVAL;
		goto out;
	}
	memcpy(r.sign_pk, rcpt->sign_pk, 32);
	memcpy(r.box_pk, rcpt->box_pk, 32);
	ret =
	    envelope_seal_compact(n->id, &r, text, len, &meta, sealed, sizeof(sealed), &sealed_len);
	if (ret < 0) {
		*why = "sealing failed";
		goto out;
	}
	struct bundle_header h;
	header_for(n, rcpt, req, sealed_len, &h);
	struct bundle_id_state *ids = bundle_id_new(&h);
	if (!ids) {
		ret = -ENOMEM;
		goto out;
	}
	bundle_id_update(ids, sealed, sealed_len);
	bundle_id_final(ids, res->bundle_id[0]);
	ret = store_writer_begin(n->store, &n->now, &w);
	if (ret == 0)
		ret = store_writer_append(w, sealed, sealed_len);
	if (ret == 0) {
		ret = commit_bundle(n, w, &h, res->bundle_id[0], meta.msg_id, head);
		w = NULL;
	}
	if (ret < 0) {
		*why = "cannot queue the bundle";
		goto out;
	}
	res->n_bundles = 1;
	res->compact = true;
	res->bundle_len[0] =
	    (uint64_t)bundle_encode_head(&h, head, BUNDLE_HEAD_MAX) + sealed_len + 1;
	memcpy(res->msg_id, meta.msg_id, sizeof(res->msg_id));
out:
	store_writer_abort(w);
	explicit_bzero(text, sizeof(text));
	return ret;
}

/* Seals once into the first recipient's bundle, then copies the sealed bytes for the others. */
static int submit_full(struct node *n, const struct store_contact *rcpt, size_t n_rcpt,
		       const struct submit_request *req, struct submit_result *res, uint8_t *head,
		       const char **why)
{
	struct envelope_recipient r[ENVELOPE_MAX_RECIPIENTS];
	struct bundle_id_state *ids[ENVELOPE_MAX_RECIPIENTS] = {0};
	struct bundle_header *h = calloc(n_rcpt, sizeof(*h));
	struct envelope_meta meta = {
	    .kind = req->kind,
	    .size = req->size,
	};
	struct envelope_sealer *sealer = NULL;
	struct seal_sink sink = {.ids = ids, .n_ids = n_rcpt};
	int ret = -ENOMEM;

	if (!h)
		goto out;
	if (req->name)
		snprintf(meta.name, sizeof(meta.name), "%s", req->name);
	if (n->clock_trusted) {
		meta.created_ms = n->now.unix_ms;
		meta.expires_ms = n->now.unix_ms + req->lifetime_ms;
	}
	for (size_t i = 0; i < n_rcpt; i++) {
		memcpy(r[i].sign_pk, rcpt[i].sign_pk, 32);
		memcpy(r[i].box_pk, rcpt[i].box_pk, 32);
	}
	uint64_t sealed_len = envelope_sealed_size(n_rcpt, &meta);
	if (sealed_len == 0 || sealed_len > NODE_MAX_PAYLOAD) {
		*why = "too big for one bundle (4 GiB at most, what a FAT32 stick holds)";
		ret = -EFBIG;
		goto out;
	}
	for (size_t i = 0; i < n_rcpt; i++) {
		header_for(n, &rcpt[i], req, sealed_len, &h[i]);
		ids[i] = bundle_id_new(&h[i]);
		if (!ids[i])
			goto out;
	}

	ret = store_writer_begin(n->store, &n->now, &sink.w);
	if (ret == 0)
		ret = store_writer_expect(sink.w, sealed_len);
	if (ret < 0) {
		*why = "cannot write to the store";
		goto out;
	}
	ret = envelope_seal_new(n->id, r, n_rcpt, &meta, seal_to_store, &sink, &sealer);
	if (ret < 0) {
		*why = "cannot start sealing";
		goto out;
	}
	ret = pump_plaintext(req, sealer, why);
	if (ret < 0)
		goto out;
	ret = envelope_seal_final(sealer);
	sealer = NULL;
	if (ret == 0 && sink.written != sealed_len)
		ret = -EPROTO;
	if (ret < 0) {
		*why = "sealing failed";
		goto out;
	}
	for (size_t i = 0; i < n_rcpt; i++) {
		bundle_id_final(ids[i], res->bundle_id[i]);
		ids[i] = NULL;
	}
	ret = commit_bundle(n, sink.w, &h[0], res->bundle_id[0], meta.msg_id, head);
	sink.w = NULL;
	if (ret < 0) {
		*why = "cannot queue the bundle";
		goto out;
	}

	struct store_bundle first;
	size_t headlen;
	ret = store_bundle_get(n->store, res->bundle_id[0], &n->now, &first, head, BUNDLE_HEAD_MAX,
			       &headlen);
	for (size_t i = 1; ret == 0 && i < n_rcpt; i++) {
		ret = store_writer_begin(n->store, &n->now, &sink.w);
		if (ret == 0)
			ret = store_writer_expect(sink.w, sealed_len);
		if (ret == 0)
			ret = store_payload_read(n->store, first.rowid, copy_to_writer, sink.w);
		if (ret == 0)
			ret = commit_bundle(n, sink.w, &h[i], res->bundle_id[i], meta.msg_id, head);
		else
			store_writer_abort(sink.w);
		sink.w = NULL;
	}
	if (ret < 0) {
		*why = "cannot queue the bundle";
		goto out;
	}
	res->n_bundles = n_rcpt;
	for (size_t i = 0; i < n_rcpt; i++)
		res->bundle_len[i] =
		    (uint64_t)bundle_encode_head(&h[i], head, BUNDLE_HEAD_MAX) + sealed_len + 1;
	memcpy(res->msg_id, meta.msg_id, sizeof(res->msg_id));
out:
	envelope_sealer_free(sealer);
	store_writer_abort(sink.w);
	for (size_t i = 0; i < n_rcpt; i++)
		if (ids[i]) {
			uint8_t scratch[32];
			bundle_id_final(ids[i], scratch);
		}
	free(h);
	return ret;
}

int node_submit(struct node *n, const struct store_contact *rcpt, size_t n_rcpt,
		const struct submit_request *req, struct submit_result *res, const char **why)
{
	static const char *unused;
	if (!why)
		why = &unused;
	*why = "";
	memset(res, 0, sizeof(*res));
	int ret = check_recipients(rcpt, n_rcpt, why);
	if (ret < 0)
		return ret;
	uint8_t *head = malloc(BUNDLE_HEAD_MAX);
	if (!head)
		return -ENOMEM;
	if (n_rcpt == 1 && req->kind == ENVELOPE_TEXT && req->size <= ENVELOPE_COMPACT_MAX) {
		ret = submit_compact(n, rcpt, req, res, head, why);
	} else {
		/*
		 * All recipients' bundles or none: a retry must not send some of them twice.
		 * Inside the caller's batch, the caller aborts it on failure.
		 */
		bool batch = n_rcpt > 1 && !store_batch_is_open(n->store);
		ret = batch ? store_batch_begin(n->store) : 0;
		if (ret < 0)
			batch = false;
		if (ret == 0)
			ret = submit_full(n, rcpt, n_rcpt, req, res, head, why);
		if (batch && ret == 0)
			ret = store_batch_commit(n->store);
		else if (batch)
			store_batch_abort(n->store);
		if (ret < 0 && !**why)
			*why = "cannot queue the bundles";
	}
	free(head);
	return ret;
}
