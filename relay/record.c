/* Node records sealed in memory: the manifests and receipts a node leaves on a stick. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "relay/node.h"

struct membuf {
	uint8_t *buf;
	size_t len, cap;
};

static int membuf_append(void *ctx, const uint8_t *buf, size_t len)
{
	struct membuf *m = ctx;
	if (len > m->cap - m->len)
		return -EOVERFLOW;
	memcpy(m->buf + m->len, buf, len);
	m->len += len;
	return 0;
}

int node_seal_record(struct node *n, const struct envelope_recipient *rcpt, size_t n_rcpt,
		     const uint8_t *body, size_t len, uint8_t **out, size_t *outlen)
{
	struct envelope_recipient all[ENVELOPE_MAX_RECIPIENTS];
	if (n_rcpt + 1 > ENVELOPE_MAX_RECIPIENTS || len == 0)
		return -EINVAL;
	/* Sealed to ourselves too, so that this node recognises its own records on a stick. */
	memcpy(all[0].sign_pk, n->pub.sign_pk, 32);
	memcpy(all[0].box_pk, n->pub.box_pk, 32);
	size_t count = 1;
	for (size_t i = 0; i < n_rcpt; i++)
		if (memcmp(rcpt[i].sign_pk, n->pub.sign_pk, 32) != 0)
			all[count++] = rcpt[i];
	struct envelope_meta meta = {
	    .kind = ENVELOPE_CONTROL,
	    .size = len,
	    .created_ms = n->clock_trusted ? n->now.unix_ms : 0,
	};
	uint64_t size = envelope_sealed_size(count, &meta);
	if (size == 0 || size > SIZE_MAX)
		return -EINVAL;
	struct membuf m = {.buf = malloc((size_t)size), .cap = (size_t)size};
	if (!m.buf)
		return -ENOMEM;
	struct envelope_sealer *s;
	int ret = envelope_seal_new(n->id, all, count, &meta, membuf_append, &m, &s);
	if (ret == 0) {
		ret = envelope_seal_update(s, body, len);
		if (ret == 0)
			ret = envelope_seal_final(s);
		else
			envelope_sealer_free(s);
	}
	if (ret < 0) {
		free(m.buf);
		return ret;
	}
	*out = m.buf;
	*outlen = m.len;
	return 0;
}

int node_open_record(struct node *n, const uint8_t *buf, size_t len, uint8_t **body,
		     size_t *bodylen, struct envelope_meta *meta)
{
	struct envelope_opener *o;
	/* The plaintext is shorter than what seals it. */
	struct membuf m = {.buf = malloc(len ? len : 1), .cap = len};
	if (!m.buf)
		return -ENOMEM;
	int ret = envelope_open_new(n->id, &o);
	if (ret == 0) {
		ret = envelope_open_update(o, buf, len, membuf_append, &m);
		if (ret == 0)
			ret = envelope_open_final(o, NULL, NULL, meta);
		envelope_opener_free(o);
	}
	if (ret == 0 && (meta->kind != ENVELOPE_CONTROL || meta->compact))
		ret = -EBADMSG;
	if (ret < 0) {
		free(m.buf);
		return ret;
	}
	*body = m.buf;
	*bodylen = m.len;
	return 0;
}
