/* The link's session layer: preamble, Noise IK handshake, 2-byte framed transport messages. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "transports/tcp.h"

#define PREAMBLE_LEN 6

/* "tern", the framing (1 TCP, 2 serial: enum tcp_link), 'K' for IK; also the prologue. */
static void preamble_of(enum tcp_link link, uint8_t out[static PREAMBLE_LEN])
{
	memcpy(out, "tern", 4);
	out[4] = (uint8_t)link;
	out[5] = 'K';
}

struct tcp {
	bool initiator;
	uint8_t preamble[PREAMBLE_LEN];
	struct noise *hs; /* until split */
	struct noise_cipher *tx, *rx;
	struct identity_public peer;
	tcp_lookup_fn lookup;
	void *lookup_ctx;
	size_t pre_seen; /* responder: preamble bytes checked so far */
	bool dead;
	/* one frame being read: 2 length bytes, then the message */
	uint8_t *in;
	size_t in_len;
	uint8_t *plain; /* a decrypted record */
	uint8_t *out;
	size_t out_off, out_len, out_cap;
};

static int reserve(struct tcp *t, size_t more)
{
	if (t->out_off && t->out_off == t->out_len)
		t->out_off = t->out_len = 0;
	if (t->out_len + more <= t->out_cap)
		return 0;
	if (t->out_off) {
		memmove(t->out, t->out + t->out_off, t->out_len - t->out_off);
		t->out_len -= t->out_off;
		t->out_off = 0;
		if (t->out_len + more <= t->out_cap)
			return 0;
	}
	size_t cap = t->out_cap ? t->out_cap : 4096;
	while (cap < t->out_len + more)
		cap *= 2;
	uint8_t *p = realloc(t->out, cap);
	if (!p)
		return -ENOMEM;
	t->out = p;
	t->out_cap = cap;
	return 0;
}

/* Room for one framed message at the end of the output: returns where its body goes. */
static uint8_t *frame_begin(struct tcp *t)
{
	return t->out + t->out_len + 2;
}

static void frame_end(struct tcp *t, size_t len)
{
	t->out[t->out_len] = (uint8_t)(len >> 8);
	t->out[t->out_len + 1] = (uint8_t)len;
	t->out_len += 2 + len;
}

static int make(struct tcp **out, bool initiator)
{
	struct tcp *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->initiator = initiator;
	t->in = malloc(2 + NOISE_MSG_MAX);
	if (!t->in) {
		tcp_free(t);
		return -ENOMEM;
	}
	*out = t;
	return 0;
}

int tcp_new_initiator_on(enum tcp_link link, const struct identity *self,
			 const struct identity_public *peer, struct tcp **out)
{
	struct tcp *t;
	int ret = make(&t, true);
	if (ret < 0)
		return ret;
	preamble_of(link, t->preamble);
	const uint8_t *preamble = t->preamble;
	t->peer = *peer;
	size_t len;
	ret = noise_new(NOISE_IK, true, preamble, PREAMBLE_LEN, self, peer->box_pk, &t->hs);
	if (ret == 0)
		ret = reserve(t, PREAMBLE_LEN + 2 + NOISE_HANDSHAKE_OVERHEAD_MAX);
	if (ret == 0) {
		memcpy(t->out, preamble, PREAMBLE_LEN);
		t->out_len = PREAMBLE_LEN;
		/* An empty payload: IK message 1 can be replayed by anyone who saw it. */
		ret = noise_write_message(t->hs, NULL, 0, frame_begin(t),
					  t->out_cap - t->out_len - 2, &len);
	}
	if (ret < 0) {
		tcp_free(t);
		return ret;
	}
	frame_end(t, len);
	*out = t;
	return 0;
}

int tcp_new_initiator(const struct identity *self, const struct identity_public *peer,
		      struct tcp **out)
{
	return tcp_new_initiator_on(TCP_LINK_TCP, self, peer, out);
}

int tcp_new_responder_on(enum tcp_link link, const struct identity *self, tcp_lookup_fn lookup,
			 void *ctx, struct tcp **out)
{
	struct tcp *t;
	int ret = make(&t, false);
	if (ret < 0)
		return ret;
	preamble_of(link, t->preamble);
	t->lookup = lookup;
	t->lookup_ctx = ctx;
	ret = noise_new(NOISE_IK, false, t->preamble, PREAMBLE_LEN, self, NULL, &t->hs);
	if (ret < 0) {
		tcp_free(t);
		return ret;
	}
	*out = t;
	return 0;
}

int tcp_new_responder(const struct identity *self, tcp_lookup_fn lookup, void *ctx,
		      struct tcp **out)
{
	return tcp_new_responder_on(TCP_LINK_TCP, self, lookup, ctx, out);
}

void tcp_free(struct tcp *t)
{
	if (!t)
		return;
	noise_free(t->hs);
	noise_cipher_free(t->tx);
	noise_cipher_free(t->rx);
	free(t->in);
	if (t->plain)
		tern_wipe(t->plain, NOISE_MSG_MAX);
	free(t->plain);
	free(t->out);
	free(t);
}

static int split(struct tcp *t)
{
	/* Only now: a stranger's connection costs no decryption buffer. */
	t->plain = malloc(NOISE_MSG_MAX);
	if (!t->plain)
		return -ENOMEM;
	int ret = noise_split(t->hs, &t->tx, &t->rx);
	noise_free(t->hs);
	t->hs = NULL;
	return ret;
}

/* Responder: message 1 names the caller; answer only a configured peer. */
static int on_msg1(struct tcp *t, const uint8_t *msg, size_t len)
{
	uint8_t pk[32];
	size_t plen, olen;
	if (noise_read_message(t->hs, msg, len, NULL, 0, &plen) < 0)
		return -EBADMSG;
	if (noise_remote_static(t->hs, pk) < 0 || t->lookup(t->lookup_ctx, pk, &t->peer) < 0 ||
	    !noise_remote_is(t->hs, &t->peer))
		return -EACCES;
	int ret = reserve(t, 2 + NOISE_HANDSHAKE_OVERHEAD_MAX);
	if (ret < 0)
		return ret;
	ret =
	    noise_write_message(t->hs, NULL, 0, frame_begin(t), t->out_cap - t->out_len - 2, &olen);
	if (ret < 0)
		return -EBADMSG;
	frame_end(t, olen);
	return split(t);
}

static int on_message(struct tcp *t, const uint8_t *msg, size_t len, tcp_record_fn fn, void *ctx)
{
	size_t plen;
	if (t->hs) {
		if (noise_next(t->hs) != NOISE_NEXT_READ)
			return -EPROTO;
		if (!t->initiator)
			return on_msg1(t, msg, len);
		if (noise_read_message(t->hs, msg, len, NULL, 0, &plen) < 0)
			return -EBADMSG;
		return split(t);
	}
	if (noise_decrypt(t->rx, msg, len, t->plain, NOISE_MSG_MAX, &plen) < 0 || plen == 0)
		return -EBADMSG;
	return fn(ctx, t->plain, plen);
}

int tcp_input(struct tcp *t, const uint8_t *buf, size_t len, tcp_record_fn fn, void *ctx)
{
	if (t->dead)
		return -EBADMSG;
	int ret = 0;
	while (len > 0 && ret == 0) {
		if (!t->initiator && t->pre_seen < PREAMBLE_LEN) {
			if (buf[0] != t->preamble[t->pre_seen++]) {
				ret = -EBADMSG;
				break;
			}
			buf++, len--;
			continue;
		}
		size_t need = t->in_len < 2 ? 2 : 2 + ((size_t)t->in[0] << 8 | t->in[1]);
		size_t take = need - t->in_len < len ? need - t->in_len : len;
		memcpy(t->in + t->in_len, buf, take);
		t->in_len += take;
		buf += take;
		len -= take;
		if (t->in_len == 2 && need == 2 && (t->in[0] | t->in[1]) == 0) {
			ret = -EBADMSG; /* an empty message is never sent */
			break;
		}
		if (t->in_len < 2 || t->in_len < 2 + ((size_t)t->in[0] << 8 | t->in[1]))
			continue;
		size_t mlen = t->in_len - 2;
		t->in_len = 0;
		ret = on_message(t, t->in + 2, mlen, fn, ctx);
	}
	if (ret < 0)
		t->dead = true;
	return ret;
}

int tcp_send(struct tcp *t, const uint8_t *rec, size_t len)
{
	if (len == 0 || len > TCP_RECORD_MAX)
		return -EINVAL;
	if (!t->tx || t->dead)
		return -ENOTCONN;
	int ret = reserve(t, 2 + len + NOISE_TRANSPORT_OVERHEAD);
	if (ret < 0)
		return ret;
	size_t olen;
	ret = noise_encrypt(t->tx, rec, len, frame_begin(t), t->out_cap - t->out_len - 2, &olen);
	if (ret < 0)
		return ret;
	frame_end(t, olen);
	return 0;
}

size_t tcp_output(const struct tcp *t, const uint8_t **buf)
{
	static const uint8_t none[1];
	*buf = t->out ? t->out + t->out_off : none;
	return t->out_len - t->out_off;
}

void tcp_consumed(struct tcp *t, size_t n)
{
	t->out_off += n;
	if (t->out_off == t->out_len)
		t->out_off = t->out_len = 0;
}

bool tcp_established(const struct tcp *t)
{
	return t->tx && !t->dead;
}

const struct identity_public *tcp_peer(const struct tcp *t)
{
	return t->tx ? &t->peer : NULL;
}
